/*
 * tests/krpc_svc_util.h - shared by the server tests (test_krpc_svc,
 * test_krpc_rpcinfo, test_krpc_tls_refusals, test_krpc_malformed): a test
 * server on its own loop thread with a small test program, and a raw
 * blocking RPC client (calls encoded by hand, record marking, replies
 * decoded with krpc_decode_reply_hdr), plain or through stock OpenSSL.
 *
 * Everything the loop owns (server, counters) is touched only by the loop
 * thread, or by the test thread while the loop thread is stopped
 * (ts_pause / ts_resume).
 */
#ifndef RPCTLS_TEST_KRPC_SVC_UTIL_H
#define RPCTLS_TEST_KRPC_SVC_UTIL_H

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "rpctls/krpc.h"
#include "rpctls/krpc_svc.h"
#include "util/net.h"

#define TU_UNUSED __attribute__((unused))

/* ---- the test program ----------------------------------------------------- */

#define TP_PROG 0x20001234u
#define TP_VERS_LO 2u
#define TP_VERS_HI 3u
enum {
    TP_NULL = 0,    /* no handler: the server answers */
    TP_ECHO = 1,    /* idempotent: results = args */
    TP_COUNT = 2,   /* not idempotent: executions++, result u32 executions */
    TP_GARBAGE = 3, /* GARBAGE_ARGS */
    TP_SYSERR = 4,  /* SYSTEM_ERR */
    TP_NOPROC = 5,  /* NULL fn: PROC_UNAVAIL */
    TP_DEFER = 6,   /* not idempotent: executions++, answered after defer_ms with u32 executions */
    TP_ADD = 7,     /* idempotent: two u32 args, result their sum; GARBAGE_ARGS if they do not decode */
    TP_NPROCS = 8,
};

struct ts_defer {
    struct krpc_timer t;
    struct krpc_svc_req *req;
    uint32_t value;
    struct ts_defer *next;
    struct test_server *ts;
};

struct test_server {
    struct krpc_loop *loop;
    struct krpc_svc *svc;
    pthread_t thr;
    int running;
    uint16_t port;
    unsigned count_execs, defer_execs;
    int defer_ms;
    struct ts_defer *defers; /* pending deferred answers */
};

static int tp_echo(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res, void *arg)
{
    size_t n = krpc_xdr_remaining(args);
    struct mb_chain c = MB_CHAIN_INIT;

    if (mb_chain_copy_ref(&c, &req->msg, args->off, n) != 0)
        return KRPC_SYSTEM_ERR;
    mb_chain_concat(res->c, &c);
    return KRPC_SUCCESS;
}

static int tp_count(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res, void *arg)
{
    struct test_server *ts = arg;
    krpc_xdr_put_u32(res, ++ts->count_execs);
    return KRPC_SUCCESS;
}

static int tp_garbage(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res, void *arg)
{
    krpc_xdr_put_u32(res, 0xdeadbeef); /* must be discarded */
    return KRPC_GARBAGE_ARGS;
}

static int tp_syserr(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res, void *arg)
{
    return KRPC_SYSTEM_ERR;
}

static void tp_defer_fire(struct krpc_loop *loop, struct krpc_timer *t, void *arg)
{
    struct ts_defer *d = arg, **pp;
    struct mb_chain res = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;

    for (pp = &d->ts->defers; *pp != d; pp = &(*pp)->next)
        ;
    *pp = d->next;
    krpc_xdr_enc_init(&x, &res);
    krpc_xdr_put_u32(&x, d->value);
    krpc_svc_reply(d->req, KRPC_SUCCESS, &res);
    free(d);
}

static int tp_defer(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res, void *arg)
{
    struct test_server *ts = arg;
    struct ts_defer *d = calloc(1, sizeof(*d));

    if (d == NULL)
        return KRPC_SYSTEM_ERR;
    d->req = req;
    d->ts = ts;
    d->value = ++ts->defer_execs;
    krpc_timer_init(&d->t, tp_defer_fire, d);
    krpc_timer_arm(ts->loop, &d->t, (uint64_t)ts->defer_ms);
    d->next = ts->defers;
    ts->defers = d;
    return KRPC_SVC_DEFER;
}

static int tp_add(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res, void *arg)
{
    uint32_t a = krpc_xdr_get_u32(args), b = krpc_xdr_get_u32(args);
    if (krpc_xdr_dec_error(args) != 0)
        return KRPC_GARBAGE_ARGS;
    krpc_xdr_put_u32(res, a + b);
    return KRPC_SUCCESS;
}

static const struct krpc_proc_desc tp_procs[TP_NPROCS] = {
    [TP_NULL] = {NULL, KRPC_PROC_IDEMPOTENT, "NULL"},
    [TP_ECHO] = {tp_echo, KRPC_PROC_IDEMPOTENT, "ECHO"},
    [TP_COUNT] = {tp_count, 0, "COUNT"},
    [TP_GARBAGE] = {tp_garbage, 0, "GARBAGE"},
    [TP_SYSERR] = {tp_syserr, 0, "SYSERR"},
    [TP_NOPROC] = {NULL, 0, "NOPROC"},
    [TP_DEFER] = {tp_defer, 0, "DEFER"},
    [TP_ADD] = {tp_add, KRPC_PROC_IDEMPOTENT, "ADD"},
};

static void *ts_thread(void *arg)
{
    struct test_server *ts = arg;
    krpc_loop_run(ts->loop, NULL, -1);
    return NULL;
}

static TU_UNUSED void ts_resume(struct test_server *ts)
{
    if (!ts->running && pthread_create(&ts->thr, NULL, ts_thread, ts) == 0)
        ts->running = 1;
}

static TU_UNUSED void ts_pause(struct test_server *ts)
{
    if (ts->running) {
        krpc_loop_stop(ts->loop);
        pthread_join(ts->thr, NULL);
        ts->running = 0;
    }
}

/* A consistent copy of the server's counters. */
static TU_UNUSED struct krpc_svc_stats ts_stats(struct test_server *ts)
{
    struct krpc_svc_stats s;
    int was = ts->running;
    ts_pause(ts);
    s = *krpc_svc_stats(ts->svc);
    if (was)
        ts_resume(ts);
    return s;
}

/* Starts a server for cfg (address: 127.0.0.1, any port, unless set) with
 * the test program, versions TP_VERS_LO and TP_VERS_HI, registered with
 * flags (KRPC_PROG_*), running. */
static TU_UNUSED int ts_start_flags(struct test_server *ts, const struct krpc_svc_config *cfg_in, unsigned flags)
{
    struct krpc_svc_config cfg = *cfg_in;
    struct krpc_prog_desc p = {TP_PROG, TP_VERS_LO, TP_NPROCS, tp_procs, ts, flags};
    int ret;

    memset(ts, 0, sizeof(*ts));
    ts->defer_ms = 300;
    if (krpc_loop_new(&ts->loop) < 0)
        return -1;
    if (cfg.addrlen == 0 && krpc_parse_addr("127.0.0.1:0", &cfg.addr, &cfg.addrlen) < 0)
        return -1;
    if ((ret = krpc_svc_new(ts->loop, &cfg, &ts->svc)) < 0) {
        fprintf(stderr, "krpc_svc_new: %d\n", ret);
        krpc_loop_free(ts->loop);
        return -1;
    }
    if (krpc_svc_register(ts->svc, &p) < 0)
        return -1;
    p.vers = TP_VERS_HI;
    if (krpc_svc_register(ts->svc, &p) < 0 || krpc_svc_register(ts->svc, &p) != -EEXIST)
        return -1;
    ts->port = krpc_svc_port(ts->svc);
    ts_resume(ts);
    return 0;
}

static TU_UNUSED int ts_start(struct test_server *ts, const struct krpc_svc_config *cfg_in)
{
    return ts_start_flags(ts, cfg_in, 0);
}

static TU_UNUSED void ts_stop(struct test_server *ts)
{
    ts_pause(ts);
    while (ts->defers != NULL) {
        struct ts_defer *d = ts->defers;
        ts->defers = d->next;
        krpc_timer_cancel(ts->loop, &d->t);
        free(d); /* the request itself is freed by krpc_svc_free */
    }
    krpc_svc_free(ts->svc);
    /* Let the connections finish closing (their on_close runs from the loop). */
    for (int i = 0; i < 10; i++)
        krpc_loop_run_once(ts->loop, 1);
    krpc_loop_free(ts->loop);
}

/* ---- a raw client ---------------------------------------------------------- */

/* A blocking client socket to 127.0.0.1:port with 5 s timeouts, or -1. */
static TU_UNUSED int tc_connect(uint16_t port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

    if (fd < 0)
        return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    tu_set_timeouts(fd, 5000);
    return fd;
}

/* The transport under a raw client: a socket, or an OpenSSL session on it. */
struct tc {
    int fd;
    SSL *ssl;
    SSL_CTX *ctx;
};

static TU_UNUSED int tc_write(struct tc *t, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    while (len > 0) {
        ssize_t n;
        if (t->ssl != NULL) {
            int r = SSL_write(t->ssl, p, (int)len);
            n = r > 0 ? r : -1;
        } else {
            n = send(t->fd, p, len, MSG_NOSIGNAL);
        }
        if (n < 0 && errno == EINTR && t->ssl == NULL)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads exactly len bytes: 0, or -1 on EOF / error / timeout. */
static TU_UNUSED int tc_read_full(struct tc *t, void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t n;
        if (t->ssl != NULL) {
            int r = SSL_read(t->ssl, p, (int)len);
            n = r > 0 ? r : -1;
        } else {
            n = recv(t->fd, p, len, 0);
        }
        if (n < 0 && errno == EINTR && t->ssl == NULL)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Appends the record mark and sends msg (one fragment). */
static TU_UNUSED int tc_send_msg(struct tc *t, const void *msg, size_t len)
{
    unsigned char *buf = malloc(len + 4);
    uint32_t mark = htonl(KRPC_RM_LAST | (uint32_t)len);
    int ret;

    if (buf == NULL)
        return -1;
    memcpy(buf, &mark, 4);
    if (len > 0)
        memcpy(buf + 4, msg, len);
    ret = tc_write(t, buf, len + 4);
    free(buf);
    return ret;
}

/* The credential tc_encode_call sends for a flavor: AUTH_SYS is uid 1000,
 * gid 100, gids {100, 27} on "testhost". */
static TU_UNUSED void tc_default_cred(struct krpc_cred *cred, uint32_t flavor)
{
    memset(cred, 0, sizeof(*cred));
    cred->flavor = flavor;
    if (flavor == KRPC_AUTH_SYS) {
        strcpy(cred->machine, "testhost");
        cred->uid = 1000;
        cred->gid = 100;
        cred->ngids = 2;
        cred->gids[0] = 100;
        cred->gids[1] = 27;
    }
}

/* Encodes a call header (rpcvers 2) with this credential into buf, then the
 * args; returns the length. */
static TU_UNUSED size_t tc_encode_call_cred(unsigned char *buf, size_t cap, uint32_t xid, uint32_t prog,
                                            uint32_t vers, uint32_t proc, const struct krpc_cred *cred,
                                            const void *args, size_t arglen)
{
    struct mb_chain c = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    struct krpc_call_hdr h;
    size_t n;

    memset(&h, 0, sizeof(h));
    h.xid = xid;
    h.prog = prog;
    h.vers = vers;
    h.proc = proc;
    h.cred = *cred;
    h.verf_flavor = KRPC_AUTH_NONE;
    krpc_xdr_enc_init(&x, &c);
    krpc_encode_call_hdr(&x, &h);
    if (args != NULL && arglen > 0)
        krpc_xdr_put_fixed(&x, args, arglen);
    n = c.len;
    if (krpc_xdr_enc_error(&x) != 0 || n > cap || mb_chain_copy_out(&c, 0, n, buf) != 0)
        n = 0;
    mb_chain_free(&c);
    return n;
}

/* tc_encode_call_cred with tc_default_cred(flavor). */
static TU_UNUSED size_t tc_encode_call(unsigned char *buf, size_t cap, uint32_t xid, uint32_t prog, uint32_t vers,
                                       uint32_t proc, uint32_t flavor, const void *args, size_t arglen)
{
    struct krpc_cred cred;

    tc_default_cred(&cred, flavor);
    return tc_encode_call_cred(buf, cap, xid, prog, vers, proc, &cred, args, arglen);
}

static TU_UNUSED int tc_call_send(struct tc *t, uint32_t xid, uint32_t prog, uint32_t vers, uint32_t proc,
                                  uint32_t flavor, const void *args, size_t arglen)
{
    unsigned char buf[2048];
    size_t n = tc_encode_call(buf, sizeof(buf), xid, prog, vers, proc, flavor, args, arglen);
    return n == 0 ? -1 : tc_send_msg(t, buf, n);
}

/* Reads one reply (any number of fragments, up to 1 MiB). The header is
 * decoded into h; the results (bytes after the header) go to res (up to
 * rescap; *reslen gets the length). Returns 0, -1 (EOF, error, timeout),
 * -2 (not a decodable reply). */
static TU_UNUSED int tc_reply_recv(struct tc *t, struct krpc_reply_hdr *h, void *res, size_t rescap, size_t *reslen)
{
    unsigned char *msg = NULL;
    size_t len = 0;
    int last = 0, ret;
    struct mb_chain c = MB_CHAIN_INIT;
    struct krpc_xdr_dec d;

    while (!last) {
        uint32_t mark;
        size_t flen;
        unsigned char *m;
        if (tc_read_full(t, &mark, 4) != 0) {
            free(msg);
            return -1;
        }
        mark = ntohl(mark);
        last = (mark & KRPC_RM_LAST) != 0;
        flen = mark & ~KRPC_RM_LAST;
        if (len + flen > (1u << 20) || (m = realloc(msg, len + flen + 1)) == NULL) {
            free(msg);
            return -2;
        }
        msg = m;
        if (flen > 0 && tc_read_full(t, msg + len, flen) != 0) {
            free(msg);
            return -1;
        }
        len += flen;
    }
    if (len == 0 || mb_chain_append_bytes(&c, msg, len) != 0) {
        free(msg);
        return -2;
    }
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    ret = krpc_decode_reply_hdr(&d, h) == 0 ? 0 : -2;
    if (ret == 0 && reslen != NULL) {
        size_t n = krpc_xdr_remaining(&d);
        *reslen = n;
        if (res != NULL && n <= rescap)
            mb_chain_copy_out(&c, d.off, n, res);
    }
    mb_chain_free(&c);
    free(msg);
    return ret;
}

/* 1 when the peer closes (EOF or reset) within ms, reading and discarding. */
static TU_UNUSED int tc_wait_closed(int fd, int ms)
{
    char buf[4096];
    uint64_t end = krpc_now_ms() + (uint64_t)ms;

    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        uint64_t now = krpc_now_ms();
        ssize_t n;
        if (now >= end)
            return 0;
        if (poll(&p, 1, (int)(end - now)) <= 0)
            continue;
        n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return 1;
    }
}

static TU_UNUSED void tc_close(struct tc *t)
{
    if (t->ssl != NULL)
        SSL_free(t->ssl);
    if (t->ctx != NULL)
        SSL_CTX_free(t->ctx);
    if (t->fd >= 0)
        close(t->fd);
    t->ssl = NULL;
    t->ctx = NULL;
    t->fd = -1;
}

static TU_UNUSED int tc_open(struct tc *t, uint16_t port)
{
    t->ssl = NULL;
    t->ctx = NULL;
    t->fd = tc_connect(port);
    return t->fd < 0 ? -1 : 0;
}

/* One call on t; 0 and the reply header, or -1/-2 as tc_reply_recv. */
static TU_UNUSED int tc_call(struct tc *t, uint32_t xid, uint32_t prog, uint32_t vers, uint32_t proc, uint32_t flavor,
                             const void *args, size_t arglen, struct krpc_reply_hdr *h, void *res, size_t rescap,
                             size_t *reslen)
{
    if (tc_call_send(t, xid, prog, vers, proc, flavor, args, arglen) != 0)
        return -1;
    return tc_reply_recv(t, h, res, rescap, reslen);
}

/* tc_call with an explicit credential. */
static TU_UNUSED int tc_call_cred(struct tc *t, uint32_t xid, uint32_t prog, uint32_t vers, uint32_t proc,
                                  const struct krpc_cred *cred, const void *args, size_t arglen,
                                  struct krpc_reply_hdr *h, void *res, size_t rescap, size_t *reslen)
{
    unsigned char buf[2048];
    size_t n = tc_encode_call_cred(buf, sizeof(buf), xid, prog, vers, proc, cred, args, arglen);

    if (n == 0 || tc_send_msg(t, buf, n) != 0)
        return -1;
    return tc_reply_recv(t, h, res, rescap, reslen);
}

/* Accepted with this accept_stat. */
static TU_UNUSED int rh_accepted(const struct krpc_reply_hdr *h, uint32_t xid, uint32_t stat)
{
    return h->xid == xid && h->reply_stat == KRPC_MSG_ACCEPTED && h->accept_stat == stat;
}

/* Denied with AUTH_ERROR and this auth_stat. */
static TU_UNUSED int rh_auth_error(const struct krpc_reply_hdr *h, uint32_t xid, uint32_t auth)
{
    return h->xid == xid && h->reply_stat == KRPC_MSG_DENIED && h->reject_stat == KRPC_AUTH_ERROR &&
           h->auth_stat == auth;
}

/* A fresh plain connection makes a NULL call and an ADD call (1 + 2) and
 * gets SUCCESS for both: the server still serves. */
static TU_UNUSED int tc_ping(uint16_t port)
{
    static uint32_t xid = 0x70000000;
    struct tc t;
    struct krpc_reply_hdr h;
    uint32_t args[2] = {htonl(1), htonl(2)}, sum = 0;
    size_t rl = 0;
    int ok;

    if (tc_open(&t, port) != 0)
        return 0;
    ok = tc_call(&t, ++xid, TP_PROG, TP_VERS_LO, TP_NULL, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) == 0 &&
         rh_accepted(&h, xid, KRPC_SUCCESS);
    ok = ok && tc_call(&t, ++xid, TP_PROG, TP_VERS_HI, TP_ADD, KRPC_AUTH_SYS, args, 8, &h, &sum, 4, &rl) == 0 &&
         rh_accepted(&h, xid, KRPC_SUCCESS) && rl == 4 && ntohl(sum) == 3;
    tc_close(&t);
    return ok;
}

/* ---- OpenSSL clients --------------------------------------------------------- */

struct tls_opts {
    const char *ca_file;   /* verify the server against this */
    const char *cert_file; /* client certificate, or NULL */
    const char *key_file;
    const char *alpn;      /* offered ALPN protocol, or NULL for none */
    int tls12_only;
    int no_probe;          /* skip the RFC 9289 probe (straight to TLS) */
};

/* Sends the AUTH_TLS NULL probe on a plain transport: 1 when the server
 * answers SUCCESS with the STARTTLS verifier. */
static TU_UNUSED int tc_probe(struct tc *t, uint32_t xid)
{
    struct krpc_reply_hdr h;

    if (tc_call(t, xid, TP_PROG, TP_VERS_LO, 0, KRPC_AUTH_TLS, NULL, 0, &h, NULL, 0, NULL) != 0)
        return 0;
    return rh_accepted(&h, xid, KRPC_SUCCESS) && h.verf_flavor == KRPC_AUTH_NONE && h.verf_len == 8 &&
           memcmp(h.verf, KRPC_STARTTLS_VERF, 8) == 0;
}

/* Connects, probes, and runs a stock OpenSSL handshake with o. Returns 0
 * when SSL_connect succeeded (the session may still be refused by the
 * server right after, in TLS 1.3), -1 when the TCP/probe step failed, -2
 * when SSL_connect failed; err gets OpenSSL's reason. */
static TU_UNUSED int tc_open_tls(struct tc *t, uint16_t port, const struct tls_opts *o, char *err, size_t errlen)
{
    static uint32_t xid = 0x71000000;
    int r;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (tc_open(t, port) != 0)
        return -1;
    if (!o->no_probe && !tc_probe(t, ++xid)) {
        tc_close(t);
        return -1;
    }
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (t->ctx == NULL)
        goto fail;
    if (o->tls12_only) {
        SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
        SSL_CTX_set_max_proto_version(t->ctx, TLS1_2_VERSION);
    }
    if (o->ca_file != NULL) {
        SSL_CTX_load_verify_locations(t->ctx, o->ca_file, NULL);
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
    }
    if (o->cert_file != NULL && (SSL_CTX_use_certificate_chain_file(t->ctx, o->cert_file) != 1 ||
                                 SSL_CTX_use_PrivateKey_file(t->ctx, o->key_file, SSL_FILETYPE_PEM) != 1))
        goto fail;
    if (o->alpn != NULL) {
        unsigned char wire[64];
        size_t n = strlen(o->alpn);
        wire[0] = (unsigned char)n;
        memcpy(wire + 1, o->alpn, n);
        if (SSL_CTX_set_alpn_protos(t->ctx, wire, (unsigned)n + 1) != 0)
            goto fail;
    }
    t->ssl = SSL_new(t->ctx);
    if (t->ssl == NULL || SSL_set_fd(t->ssl, t->fd) != 1)
        goto fail;
    r = SSL_connect(t->ssl);
    if (r != 1) {
        if (err != NULL)
            ERR_error_string_n(ERR_peek_last_error(), err, errlen);
        ERR_clear_error();
        return -2;
    }
    return 0;
fail:
    ERR_clear_error();
    return -2;
}

#endif
