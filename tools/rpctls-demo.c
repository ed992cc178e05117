/*
 * rpctls-demo - the seed's scenario on loopback, against stock OpenSSL peers.
 *
 * For each TX mode (auto, outofplace, copy, unsafe-inplace) one page-vector
 * chain of pseudo-random data is copied by reference to two mirrors (each its
 * own TLS 1.3 session, our record layer on the client side, a plain OpenSSL
 * server in a thread on the other) and a third reference is retained for a
 * retransmission. The chain goes to mirror 1, then mirror 2, then the retained
 * copy is retransmitted to mirror 1. The OpenSSL peers hash every delivery;
 * the demo compares the hashes with the source and checks that the retained
 * pages still hold the source bytes.
 *
 * Wire format of a delivery: an 8-byte big-endian length in its own small
 * chain (its own ktls_send, so its own record), then that many data bytes.
 * The client ends a connection with close_notify and waits for the peer's.
 *
 * Expected: unsafe-inplace corrupts the second delivery and the retransmission
 * (and the retained pages); the other modes deliver intact every time. The
 * exit status is 0 only when exactly that happens.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <openssl/ssl.h>

#include "rpctls/ktls.h"

#include "common/opts.h"

#define DEMO_HDR_LEN 8
#define DEMO_MAX_DELIVERIES 4
#define DEMO_DEFAULT_SIZE (8u * 1024 * 1024)
#define DEMO_MAX_SIZE (1ull << 30)
#define DEMO_DEFAULT_TIMEOUT 120
#define DEMO_SOCK_TIMEOUT_S 30

struct opts {
    const char *cert, *key, *ca;
    const char *client_cert, *client_key;
    size_t size;
    enum ktls_cipher cipher;
    const char *engine_name;
    const char *keylog;
    unsigned timeout_s;
    int verbose;
};

/* ---- small helpers ------------------------------------------------------- */

static const char *prog = "rpctls-demo";

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_alarm(int sig)
{
    static const char msg[] = "rpctls-demo: timed out (see --timeout); giving up\n";

    (void)sig;
    if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
        /* nothing more we can do */
    }
    _exit(3);
}

/* First OpenSSL error of this thread as text (the queue is per thread). */
static void ssl_errstr(char *buf, size_t len, const char *what)
{
    unsigned long e = ERR_get_error();
    char reason[200] = "no OpenSSL error queued";

    if (e != 0)
        ERR_error_string_n(e, reason, sizeof(reason));
    ERR_clear_error();
    snprintf(buf, len, "%s: %s", what, reason);
}

static void sha256_init(EVP_MD_CTX **ctx)
{
    *ctx = EVP_MD_CTX_new();
    if (*ctx == NULL || EVP_DigestInit_ex(*ctx, EVP_sha256(), NULL) != 1)
        die("SHA-256 unavailable");
}

static void sha256_final(EVP_MD_CTX *ctx, uint8_t out[32])
{
    unsigned n = 32;

    if (EVP_DigestFinal_ex(ctx, out, &n) != 1)
        die("SHA-256 failed");
    EVP_MD_CTX_free(ctx);
}

/* SHA-256 of a chain's bytes, read in place, segment by segment. */
static void sha256_chain(const struct mb_chain *c, uint8_t out[32])
{
    struct mb_seg_iter it;
    unsigned char *p;
    EVP_MD_CTX *ctx;
    size_t n;

    sha256_init(&ctx);
    mb_seg_iter_init(&it, c, 0, c->len);
    while ((n = mb_seg_next(&it, &p)) > 0)
        EVP_DigestUpdate(ctx, p, n);
    sha256_final(ctx, out);
}

static void hex8(const uint8_t *sha, char *out)
{
    for (int i = 0; i < 8; i++)
        sprintf(out + 2 * i, "%02x", sha[i]);
}

/* ---- the stock OpenSSL peer (server role) -------------------------------- */

struct peer {
    SSL_CTX *ctx;    /* shared by the peers; SSL_new is thread-safe */
    int abort_fd;    /* readable: stop waiting for a connection */
    int lfd; /* listening socket, owned by the peer */
    uint16_t port;
    pthread_t th;
    int started;
    /* results, valid after join */
    int ok;
    char err[300];
    char cipher[64];
    int ndeliv;
    uint64_t len[DEMO_MAX_DELIVERIES];
    uint8_t sha[DEMO_MAX_DELIVERIES][32];
    int got_close_notify;
    int aborted;
};

static SSL_CTX *peer_ctx_new(const struct opts *o, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    const char *suite = o->cipher == KTLS_AES_256_GCM_SHA384        ? "TLS_AES_256_GCM_SHA384"
                        : o->cipher == KTLS_CHACHA20_POLY1305_SHA256 ? "TLS_CHACHA20_POLY1305_SHA256"
                                                                    : "TLS_AES_128_GCM_SHA256";

    if (ctx == NULL) {
        ssl_errstr(err, errlen, "SSL_CTX_new");
        return NULL;
    }
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) || !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_ciphersuites(ctx, suite)) {
        ssl_errstr(err, errlen, "TLS 1.3 setup of the OpenSSL peer");
        goto fail;
    }
    /* The client never reads tickets; none are needed. */
    SSL_CTX_set_num_tickets(ctx, 0);
    if (SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1) {
        ssl_errstr(err, errlen, "cannot load --cert");
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, o->key, SSL_FILETYPE_PEM) != 1) {
        ssl_errstr(err, errlen, "cannot load --key");
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_errstr(err, errlen, "--key does not match --cert");
        goto fail;
    }
    if (o->client_cert != NULL) {
        /* Mutual authentication, as RFC 9289 expects. */
        if (SSL_CTX_load_verify_locations(ctx, o->ca, NULL) != 1) {
            ssl_errstr(err, errlen, "cannot load --ca");
            goto fail;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* Reads exactly n bytes (into buf, or hashed when buf is NULL). Returns 1,
 * 0 on a clean close_notify before the first byte, -1 on error. */
static int peer_read(struct peer *p, SSL *ssl, uint8_t *buf, uint64_t n, EVP_MD_CTX *md)
{
    static __thread uint8_t chunk[65536];
    uint64_t got = 0;

    while (got < n) {
        size_t want = n - got;
        uint8_t *dst = buf ? buf + got : chunk;
        int r;

        if (buf == NULL && want > sizeof(chunk))
            want = sizeof(chunk);
        r = SSL_read(ssl, dst, (int)(want > INT32_MAX ? INT32_MAX : want));
        if (r <= 0) {
            int e = SSL_get_error(ssl, r);
            if (e == SSL_ERROR_ZERO_RETURN && got == 0) {
                p->got_close_notify = 1;
                return 0;
            }
            if (e == SSL_ERROR_ZERO_RETURN)
                snprintf(p->err, sizeof(p->err), "close_notify in the middle of a delivery");
            else if (e == SSL_ERROR_SYSCALL)
                snprintf(p->err, sizeof(p->err), "SSL_read: %s",
                         errno ? strerror(errno) : "connection closed without close_notify");
            else
                ssl_errstr(p->err, sizeof(p->err), "SSL_read");
            return -1;
        }
        if (md != NULL)
            EVP_DigestUpdate(md, dst, (size_t)r);
        got += (uint64_t)r;
    }
    return 1;
}

static void *peer_main(void *arg)
{
    struct peer *p = arg;
    SSL *ssl = NULL;
    int fd = -1, r;
    struct pollfd pfd[2] = {{.fd = p->lfd, .events = POLLIN}, {.fd = p->abort_fd, .events = POLLIN}};
    struct timeval tv = {.tv_sec = DEMO_SOCK_TIMEOUT_S};

    do
        r = poll(pfd, 2, DEMO_SOCK_TIMEOUT_S * 1000);
    while (r < 0 && errno == EINTR);
    if (r > 0 && pfd[1].revents != 0) {
        p->aborted = 1;
        snprintf(p->err, sizeof(p->err), "no connection (the client gave up)");
        goto out;
    }
    if (r <= 0) {
        snprintf(p->err, sizeof(p->err), "no connection within %d s", DEMO_SOCK_TIMEOUT_S);
        goto out;
    }
    fd = accept(p->lfd, NULL, NULL);
    if (fd < 0) {
        snprintf(p->err, sizeof(p->err), "accept: %s", strerror(errno));
        goto out;
    }
    /* A peer that stops hearing from the client fails instead of hanging. */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    ssl = SSL_new(p->ctx);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
        ssl_errstr(p->err, sizeof(p->err), "SSL_new");
        goto out;
    }
    if (SSL_accept(ssl) != 1) {
        ssl_errstr(p->err, sizeof(p->err), "TLS handshake (SSL_accept) failed");
        goto out;
    }
    snprintf(p->cipher, sizeof(p->cipher), "%s", SSL_get_cipher_name(ssl));

    for (;;) {
        uint8_t hdr[DEMO_HDR_LEN];
        uint64_t n = 0;
        EVP_MD_CTX *md;

        r = peer_read(p, ssl, hdr, sizeof(hdr), NULL);
        if (r == 0)
            break;
        if (r < 0)
            goto out;
        for (int i = 0; i < DEMO_HDR_LEN; i++)
            n = n << 8 | hdr[i];
        if (p->ndeliv == DEMO_MAX_DELIVERIES || n > DEMO_MAX_SIZE) {
            snprintf(p->err, sizeof(p->err), "unexpected delivery header (length %" PRIu64 ")", n);
            goto out;
        }
        sha256_init(&md);
        r = peer_read(p, ssl, NULL, n, md);
        if (r <= 0) {
            EVP_MD_CTX_free(md);
            if (r == 0)
                snprintf(p->err, sizeof(p->err), "close_notify in the middle of a delivery");
            goto out;
        }
        sha256_final(md, p->sha[p->ndeliv]);
        p->len[p->ndeliv++] = n;
    }
    /* Answer the client's close_notify with ours. */
    if (SSL_shutdown(ssl) < 0) {
        ssl_errstr(p->err, sizeof(p->err), "SSL_shutdown");
        goto out;
    }
    p->ok = 1;
out:
    SSL_free(ssl);
    if (fd >= 0)
        close(fd);
    close(p->lfd);
    p->lfd = -1;
    return NULL;
}

static int peer_start(struct peer *p, SSL_CTX *ctx, int abort_fd)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);

    memset(p, 0, sizeof(*p));
    p->ctx = ctx;
    p->abort_fd = abort_fd;
    p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (p->lfd < 0 || bind(p->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(p->lfd, 1) != 0 ||
        getsockname(p->lfd, (struct sockaddr *)&a, &alen) != 0) {
        fprintf(stderr, "%s: listening socket on 127.0.0.1: %s\n", prog, strerror(errno));
        if (p->lfd >= 0)
            close(p->lfd);
        return -1;
    }
    p->port = ntohs(a.sin_port);
    if (pthread_create(&p->th, NULL, peer_main, p) != 0) {
        fprintf(stderr, "%s: cannot start a peer thread\n", prog);
        close(p->lfd);
        return -1;
    }
    p->started = 1;
    return 0;
}

static void peer_join(struct peer *p)
{
    if (p->started)
        pthread_join(p->th, NULL);
    p->started = 0;
}

/* ---- the rpctls client side ---------------------------------------------- */

struct mirror {
    int fd;
    struct ktls_conn *conn;
};

static int mirror_open(struct mirror *m, const struct opts *o, const struct ktls_aead_engine *engine,
                       enum ktls_tx_mode mode, int index, uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct ktls_config cfg;
    char err[512];
    int ret;

    memset(m, 0, sizeof(*m));
    m->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (m->fd < 0 || connect(m->fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        fprintf(stderr, "%s: [%s] mirror %d: connect to 127.0.0.1:%u: %s\n", prog, ktls_tx_mode_name(mode), index,
                port, strerror(errno));
        return -1;
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.role = KTLS_CLIENT;
    cfg.cert_file = o->client_cert;
    cfg.key_file = o->client_key;
    cfg.ca_file = o->ca;
    cfg.verify_peer = 1;
    cfg.server_name = "127.0.0.1";
    cfg.ciphersuites = o->cipher == KTLS_AES_256_GCM_SHA384        ? "TLS_AES_256_GCM_SHA384"
                       : o->cipher == KTLS_CHACHA20_POLY1305_SHA256 ? "TLS_CHACHA20_POLY1305_SHA256"
                                                                   : "TLS_AES_128_GCM_SHA256";
    cfg.keylog_file = o->keylog;
    cfg.engine = engine;
    cfg.tx_mode = mode;
    cfg.timeout_ms = DEMO_SOCK_TIMEOUT_S * 1000;
    ret = ktls_handshake(&cfg, m->fd, &m->conn, err, sizeof(err));
    if (ret != 0) {
        fprintf(stderr, "%s: [%s] mirror %d: %s\n", prog, ktls_tx_mode_name(mode), index,
                err[0] ? err : strerror(-ret));
        return -1;
    }
    return 0;
}

/* One delivery: the length in its own small chain, then the data (consumed). */
static int mirror_deliver(struct mirror *m, struct mb_chain *data, const char *what)
{
    struct mb_chain hdr = MB_CHAIN_INIT;
    uint8_t h[DEMO_HDR_LEN];
    uint64_t n = data->len;
    int ret;

    for (int i = DEMO_HDR_LEN - 1; i >= 0; i--, n >>= 8)
        h[i] = (uint8_t)n;
    ret = mb_chain_append_bytes(&hdr, h, sizeof(h));
    if (ret == 0)
        ret = ktls_send(m->conn, m->fd, &hdr);
    else
        mb_chain_free(&hdr);
    if (ret == 0)
        ret = ktls_send(m->conn, m->fd, data);
    else
        mb_chain_free(data);
    if (ret != 0)
        fprintf(stderr, "%s: sending %s failed: %s\n", prog, what, strerror(-ret));
    return ret;
}

/* close_notify, then wait for the peer's. */
static int mirror_close(struct mirror *m)
{
    struct mb_chain out = MB_CHAIN_INIT, app = MB_CHAIN_INIT;
    int ret = 0;

    if (m->conn != NULL) {
        ret = ktls_tx_close_notify(m->conn, &out);
        if (ret == 0)
            ret = ktls_write_chain(m->fd, &out);
        else
            mb_chain_free(&out);
        while (ret == 0) {
            ret = ktls_recv(m->conn, m->fd, &app);
            mb_chain_free(&app); /* the peer sends no data */
            if (ret == KTLS_RX_EOF) {
                ret = 0;
                break;
            }
        }
        if (ret != 0)
            fprintf(stderr, "%s: closing a mirror: %s\n", prog, strerror(-ret));
    }
    return ret;
}

static void mirror_free(struct mirror *m)
{
    ktls_conn_free(m->conn);
    m->conn = NULL;
    if (m->fd >= 0)
        close(m->fd);
    m->fd = -1;
}

/* ---- one mode ------------------------------------------------------------ */

struct mode_result {
    enum ktls_tx_mode mode;
    int ran;                  /* no errors: the fields below are meaningful */
    int delivered[3];         /* mirror 1, mirror 2, retransmit: 1 intact */
    int retained_ok;
    struct ktls_stats st;     /* both connections summed */
    char engine[32];
    enum ktls_cipher cipher;
    char peer_cipher[64];
    double secs;
};

static void stats_add(struct ktls_stats *a, const struct ktls_stats *b)
{
    a->tx_records_inplace += b->tx_records_inplace;
    a->tx_bytes_inplace += b->tx_bytes_inplace;
    a->tx_records_outofplace += b->tx_records_outofplace;
    a->tx_bytes_outofplace += b->tx_bytes_outofplace;
    a->tx_records_copied += b->tx_records_copied;
    a->tx_bytes_copied += b->tx_bytes_copied;
    a->tx_pages_allocated += b->tx_pages_allocated;
    a->tx_record_buffers += b->tx_record_buffers;
}

static void run_mode(const struct opts *o, SSL_CTX *peer_ctx, const struct ktls_aead_engine *engine,
                     enum ktls_tx_mode mode, const uint8_t *src, const uint8_t src_sha[32], struct mode_result *r)
{
    int abort_pipe[2];
    struct peer peers[2];
    struct mirror mir[2] = {{.fd = -1}, {.fd = -1}};
    struct mb_chain pages = MB_CHAIN_INIT, to1 = MB_CHAIN_INIT, to2 = MB_CHAIN_INIT, retained = MB_CHAIN_INIT,
                    resend = MB_CHAIN_INIT;
    uint8_t sha[32];
    int ok = 1, ret;
    double t0 = now_s();

    memset(r, 0, sizeof(*r));
    r->mode = mode;
    if (pipe(abort_pipe) != 0)
        die("pipe: %s", strerror(errno));
    for (int i = 0; i < 2; i++)
        if (peer_start(&peers[i], peer_ctx, abort_pipe[0]) != 0)
            die("cannot start the OpenSSL peers");
    for (int i = 0; i < 2 && ok; i++)
        ok = mirror_open(&mir[i], o, engine, mode, i + 1, peers[i].port) == 0;
    if (!ok)
        goto out;
    snprintf(r->engine, sizeof(r->engine), "%s", ktls_conn_engine(mir[0].conn)->name);
    r->cipher = ktls_conn_cipher(mir[0].conn);

    /* One set of pages, three references: two mirrors and the retry copy. */
    ret = mb_chain_append_pages_from_buf(&pages, src, o->size);
    if (ret == 0)
        ret = mb_chain_copy_ref(&to1, &pages, 0, pages.len);
    if (ret == 0)
        ret = mb_chain_copy_ref(&to2, &pages, 0, pages.len);
    if (ret == 0)
        ret = mb_chain_copy_ref(&retained, &pages, 0, pages.len);
    /* The references alone keep the pages now, as in an RPC client. */
    mb_chain_free(&pages);
    if (ret != 0) {
        fprintf(stderr, "%s: building the page chain: %s\n", prog, strerror(-ret));
        ok = 0;
        goto out;
    }

    ok = mirror_deliver(&mir[0], &to1, "to mirror 1") == 0 && mirror_deliver(&mir[1], &to2, "to mirror 2") == 0;
    /* The reply from mirror 1 "is lost": resend from the retained reference. */
    if (ok && (ret = mb_chain_copy_ref(&resend, &retained, 0, retained.len)) != 0) {
        fprintf(stderr, "%s: copying the retained chain: %s\n", prog, strerror(-ret));
        ok = 0;
    }
    if (ok)
        ok = mirror_deliver(&mir[0], &resend, "the retransmission to mirror 1") == 0;
    if (ok) {
        sha256_chain(&retained, sha);
        r->retained_ok = retained.len == o->size && memcmp(sha, src_sha, 32) == 0;
    }
    for (int i = 0; i < 2 && ok; i++)
        ok = mirror_close(&mir[i]) == 0;

out:
    mb_chain_free(&to1);
    mb_chain_free(&to2);
    mb_chain_free(&resend);
    mb_chain_free(&retained);
    if (!ok) {
        /* Unblock the peers: a connected one sees the connection end, one
         * still waiting for a connection sees the abort pipe. */
        for (int i = 0; i < 2; i++)
            if (mir[i].fd >= 0)
                shutdown(mir[i].fd, SHUT_RDWR);
        close(abort_pipe[1]);
        abort_pipe[1] = -1;
    }
    for (int i = 0; i < 2; i++) {
        peer_join(&peers[i]);
        if (mir[i].conn != NULL)
            stats_add(&r->st, ktls_conn_stats(mir[i].conn));
        mirror_free(&mir[i]);
        if (!peers[i].ok && !peers[i].aborted) {
            fprintf(stderr, "%s: [%s] mirror %d peer: %s\n", prog, ktls_tx_mode_name(mode), i + 1,
                    peers[i].err[0] ? peers[i].err : "failed");
        }
        if (!peers[i].ok)
            ok = 0;
    }
    close(abort_pipe[0]);
    if (abort_pipe[1] >= 0)
        close(abort_pipe[1]);
    r->secs = now_s() - t0;
    if (!ok)
        return;
    if (peers[0].ndeliv != 2 || peers[1].ndeliv != 1) {
        fprintf(stderr, "%s: [%s] peers saw %d and %d deliveries, expected 2 and 1\n", prog, ktls_tx_mode_name(mode),
                peers[0].ndeliv, peers[1].ndeliv);
        return;
    }
    snprintf(r->peer_cipher, sizeof(r->peer_cipher), "%s", peers[0].cipher);
    r->delivered[0] = peers[0].len[0] == o->size && memcmp(peers[0].sha[0], src_sha, 32) == 0;
    r->delivered[1] = peers[1].len[0] == o->size && memcmp(peers[1].sha[0], src_sha, 32) == 0;
    r->delivered[2] = peers[0].len[1] == o->size && memcmp(peers[0].sha[1], src_sha, 32) == 0;
    if (o->verbose) {
        char h[3][17];
        hex8(peers[0].sha[0], h[0]);
        hex8(peers[1].sha[0], h[1]);
        hex8(peers[0].sha[1], h[2]);
        printf("  [%s] sha256 prefixes: mirror1 %s  mirror2 %s  retransmit %s\n", ktls_tx_mode_name(mode), h[0], h[1],
               h[2]);
    }
    r->ran = 1;
}

/* Small records that may be sealed in place in the safe modes: the
 * exclusively owned 8-byte length headers (auto). Shared data must never be. */
#define DEMO_INPLACE_SLACK 64

/* What the demo asserts: unsafe-inplace corrupts exactly the second delivery,
 * the retransmission and the retained pages; the safe modes deliver intact
 * and never seal shared data in place. */
static int as_expected(const struct mode_result *r, size_t size)
{
    if (!r->ran)
        return 0;
    if (r->mode == KTLS_TX_UNSAFE_INPLACE)
        return r->delivered[0] && !r->delivered[1] && !r->delivered[2] && !r->retained_ok;
    if (!r->delivered[0] || !r->delivered[1] || !r->delivered[2] || !r->retained_ok)
        return 0;
    if (r->st.tx_bytes_inplace > DEMO_INPLACE_SLACK)
        return 0;
    if (r->mode == KTLS_TX_COPY)
        return r->st.tx_bytes_copied >= 3 * (uint64_t)size;
    return r->st.tx_bytes_outofplace >= 3 * (uint64_t)size;
}

/* ---- command line -------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s --cert FILE --key FILE --ca FILE [options]\n"
            "\n"
            "The seed scenario on loopback: for each TX mode (auto, outofplace, copy,\n"
            "unsafe-inplace) one page-vector chain of pseudo-random data is copied by\n"
            "reference to two mirrors (two TLS 1.3 sessions: the rpctls record layer as\n"
            "client, a stock OpenSSL server in a thread of this program as each peer) and\n"
            "a third reference is retained. It is sent to mirror 1, to mirror 2, then the\n"
            "retained copy is retransmitted to mirror 1. The peers hash every delivery\n"
            "(SHA-256), which is compared with the source; the retained pages are\n"
            "checked too. A table shows the results and the record-layer counters.\n"
            "\n"
            "Exit status 0 only when: unsafe-inplace corrupts the second delivery, the\n"
            "retransmission and the retained pages (the first delivery is intact);\n"
            "auto, outofplace and copy deliver intact every time without sealing shared\n"
            "pages in place; and every pool page is returned at the end.\n"
            "1: the outcome differed; 2: usage, setup or run-time error; 3: timed out.\n"
            "\n"
            "options:\n"
            "  --cert FILE         server certificate (PEM) for the OpenSSL peers\n"
            "  --key FILE          server private key (PEM)\n"
            "  --ca FILE           CA (PEM) the client verifies the server against, with\n"
            "                      the server name 127.0.0.1 (the certificate needs\n"
            "                      subjectAltName IP:127.0.0.1)\n"
            "  --client-cert FILE  also present this client certificate; the peers then\n"
            "                      require one and verify it against --ca\n"
            "  --client-key FILE   its private key (default: --client-cert)\n"
            "  --size BYTES        bytes per delivery (default %u); suffixes k, M, G\n"
            "                      (powers of 1024) are accepted; at most 1G\n"
            "  --cipher NAME       aes128gcm (default), aes256gcm or chacha20\n"
            "  --engine NAME       AEAD engine of the record layer: openssl, ipsecmb or\n"
            "                      auto (default: the fastest that runs the cipher here,\n"
            "                      honouring RPCTLS_AEAD_ENGINE)\n"
            "  --keylog FILE       append NSS key-log lines for the client sessions\n"
            "                      (default: $SSLKEYLOGFILE, if set)\n"
            "  --timeout SECONDS   give up after this long (default %d)\n"
            "  -v, --verbose       also print SHA-256 prefixes of each delivery\n"
            "  -h, --help          this text\n",
            prog, DEMO_DEFAULT_SIZE, DEMO_DEFAULT_TIMEOUT);
}

/* --size: decimal with k, M or G (as --help says), 1 byte to 1G. */
static size_t parse_size(const char *s)
{
    uint64_t v = 0;
    int r = tool_parse_size(s, TOOL_SIZE_G, &v);

    if (r == TOOL_SIZE_NOT_NUMBER || r == TOOL_SIZE_RANGE || r == TOOL_SIZE_NEGATIVE)
        die("bad --size '%s'", s);
    if (r != TOOL_SIZE_OK || v == 0 || v > DEMO_MAX_SIZE) /* trailing text */
        die("bad --size '%s' (1 byte to 1G)", s);
    return (size_t)v;
}

static void parse_args(int argc, char **argv, struct opts *o)
{
    enum { O_CERT = 256, O_KEY, O_CA, O_CCERT, O_CKEY, O_SIZE, O_CIPHER, O_ENGINE, O_KEYLOG, O_TIMEOUT };
    static const struct option lo[] = {
        {"cert", required_argument, NULL, O_CERT},
        {"key", required_argument, NULL, O_KEY},
        {"ca", required_argument, NULL, O_CA},
        {"client-cert", required_argument, NULL, O_CCERT},
        {"client-key", required_argument, NULL, O_CKEY},
        {"size", required_argument, NULL, O_SIZE},
        {"cipher", required_argument, NULL, O_CIPHER},
        {"engine", required_argument, NULL, O_ENGINE},
        {"keylog", required_argument, NULL, O_KEYLOG},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    memset(o, 0, sizeof(*o));
    o->size = DEMO_DEFAULT_SIZE;
    o->cipher = KTLS_AES_128_GCM_SHA256;
    o->engine_name = "auto";
    o->timeout_s = DEMO_DEFAULT_TIMEOUT;
    while ((c = getopt_long(argc, argv, "vh", lo, NULL)) != -1) {
        switch (c) {
        case O_CERT: o->cert = optarg; break;
        case O_KEY: o->key = optarg; break;
        case O_CA: o->ca = optarg; break;
        case O_CCERT: o->client_cert = optarg; break;
        case O_CKEY: o->client_key = optarg; break;
        case O_SIZE: o->size = parse_size(optarg); break;
        case O_CIPHER:
            if (strcmp(optarg, "aes128gcm") != 0 && strcmp(optarg, "aes256gcm") != 0 && strcmp(optarg, "chacha20") != 0)
                die("bad --cipher '%s' (aes128gcm, aes256gcm or chacha20)", optarg);
            if (ktls_cipher_from_name(optarg, &o->cipher) != 0)
                die("bad --cipher '%s'", optarg);
            break;
        case O_ENGINE:
            if (strcmp(optarg, "openssl") != 0 && strcmp(optarg, "ipsecmb") != 0 && strcmp(optarg, "auto") != 0)
                die("bad --engine '%s' (openssl, ipsecmb or auto)", optarg);
            o->engine_name = optarg;
            break;
        case O_KEYLOG: o->keylog = optarg; break;
        case O_TIMEOUT: {
            char *end;
            unsigned long t = strtoul(optarg, &end, 10);
            if (end == optarg || *end != '\0' || t == 0 || t > 86400)
                die("bad --timeout '%s' (1 to 86400 seconds)", optarg);
            o->timeout_s = (unsigned)t;
            break;
        }
        case 'v': o->verbose = 1; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind < argc)
        die("unexpected argument '%s' (see --help)", argv[optind]);
    if (o->cert == NULL || o->key == NULL || o->ca == NULL)
        die("--cert, --key and --ca are required (see --help)");
    if (o->client_key != NULL && o->client_cert == NULL)
        die("--client-key needs --client-cert");
    if (o->client_cert != NULL && o->client_key == NULL)
        o->client_key = o->client_cert;
    {
        const char *files[] = {o->cert, o->key, o->ca, o->client_cert};
        const char *names[] = {"--cert", "--key", "--ca", "--client-cert"};
        for (int i = 0; i < 4; i++)
            if (files[i] != NULL && access(files[i], R_OK) != 0)
                die("%s %s: %s", names[i], files[i], strerror(errno));
    }
}

static const struct ktls_aead_engine *pick_engine(const struct opts *o)
{
    const struct ktls_aead_engine *e;

    if (strcmp(o->engine_name, "auto") == 0)
        return ktls_aead_default(o->cipher);
    e = ktls_aead_find(o->engine_name);
    if (e == NULL)
        die("AEAD engine '%s' is not available in this build%s", o->engine_name,
            strcmp(o->engine_name, "ipsecmb") == 0 ? " (built without libIPSec_MB)" : "");
    if (!e->supports(o->cipher))
        die("AEAD engine '%s' cannot run %s on this machine", e->name, ktls_cipher_name(o->cipher));
    return e;
}

/* Fast deterministic pseudo-random bytes (xorshift64*). */
static void fill_random(uint8_t *p, size_t n)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;

    for (size_t i = 0; i < n; i += 8) {
        uint64_t v;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v = x * 0x2545f4914f6cdd1dull;
        memcpy(p + i, &v, n - i < 8 ? n - i : 8);
    }
}

static void fmt_rb(char *buf, size_t len, uint64_t recs, uint64_t bytes)
{
    snprintf(buf, len, "%" PRIu64 "/%" PRIu64, recs, bytes);
}

int main(int argc, char **argv)
{
    static const enum ktls_tx_mode modes[] = {KTLS_TX_AUTO, KTLS_TX_OUTOFPLACE, KTLS_TX_COPY, KTLS_TX_UNSAFE_INPLACE};
    struct mode_result res[4];
    struct opts o;
    const struct ktls_aead_engine *engine;
    SSL_CTX *peer_ctx;
    struct mb_pool_stats ps;
    struct sigaction sa;
    uint8_t *src, src_sha[32];
    EVP_MD_CTX *md;
    int all_expected = 1, ran_all = 1;
    char shahex[17];

    if (argc > 0 && argv[0] != NULL) {
        const char *slash = strrchr(argv[0], '/');
        prog = slash ? slash + 1 : argv[0];
    }
    parse_args(argc, argv, &o);
    engine = pick_engine(&o);
    /* Loads and checks the server certificate and key before anything runs. */
    {
        char err[300];
        peer_ctx = peer_ctx_new(&o, err, sizeof(err));
        if (peer_ctx == NULL)
            die("%s", err);
    }

    /* A peer that has gone away must give an error, not kill us. */
    signal(SIGPIPE, SIG_IGN);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    alarm(o.timeout_s);

    src = malloc(o.size);
    if (src == NULL)
        die("cannot allocate %zu bytes", o.size);
    fill_random(src, o.size);
    sha256_init(&md);
    EVP_DigestUpdate(md, src, o.size);
    sha256_final(md, src_sha);
    hex8(src_sha, shahex);

    printf("rpctls-demo: shared pages, two mirrors and a retransmission, per TX mode\n");
    printf("  data:    %zu bytes of pseudo-random data in page vectors, sha256 %s...\n", o.size, shahex);
    printf("  peers:   stock OpenSSL servers (%s), TLS 1.3, in threads, on 127.0.0.1\n", OPENSSL_VERSION_TEXT);
    printf("  client:  rpctls record layer after ktls_handshake; engine %s, cipher %s%s\n", engine->name,
           ktls_cipher_name(o.cipher), o.client_cert ? ", with a client certificate" : "");
    printf("  order:   mirror 1, mirror 2, then the retained reference again to mirror 1\n\n");
    fflush(stdout);

    memset(res, 0, sizeof(res));
    for (size_t i = 0; i < 4; i++)
        res[i].mode = modes[i];
    for (size_t i = 0; i < 4 && ran_all; i++) {
        run_mode(&o, peer_ctx, engine, modes[i], src, src_sha, &res[i]);
        /* A setup error (certificates, handshake) would repeat: stop at the first. */
        if (!res[i].ran)
            ran_all = 0;
    }
    free(src);
    SSL_CTX_free(peer_ctx);

    printf("%-14s  %-9s  %-9s  %-10s  %-9s  %-15s  %-18s  %-18s  %-8s  %-6s  %s\n", "mode", "mirror1", "mirror2",
           "retransmit", "retained", "in place r/B", "out of place r/B", "copied r/B", "pages", "secs", "expected");
    for (size_t i = 0; i < 4; i++) {
        const struct mode_result *r = &res[i];
        char a[32], b[32], c[32];
        int exp = as_expected(r, o.size);

        if (!exp)
            all_expected = 0;
        if (!r->ran) {
            printf("%-14s  (failed or not run: see the errors above)\n", ktls_tx_mode_name(r->mode));
            continue;
        }
        fmt_rb(a, sizeof(a), r->st.tx_records_inplace, r->st.tx_bytes_inplace);
        fmt_rb(b, sizeof(b), r->st.tx_records_outofplace, r->st.tx_bytes_outofplace);
        fmt_rb(c, sizeof(c), r->st.tx_records_copied, r->st.tx_bytes_copied);
        printf("%-14s  %-9s  %-9s  %-10s  %-9s  %-15s  %-18s  %-18s  %-8" PRIu64 "  %-6.2f  %s\n",
               ktls_tx_mode_name(r->mode), r->delivered[0] ? "intact" : "CORRUPTED",
               r->delivered[1] ? "intact" : "CORRUPTED", r->delivered[2] ? "intact" : "CORRUPTED",
               r->retained_ok ? "intact" : "CORRUPTED", a, b, c, r->st.tx_pages_allocated, r->secs,
               exp ? "yes" : "NO");
    }
    if (ran_all)
        printf("\nengine %s, cipher %s (peer negotiated %s); counters are both mirrors' connections summed\n"
               "(r/B = records/bytes; the 8-byte length headers and the close_notify alerts are records of\n"
               " their own: in auto the headers, exclusively owned, are sealed in place)\n",
               res[0].engine, ktls_cipher_name(res[0].cipher), res[0].peer_cipher);

    mb_pool_get_stats(&ps);
    if (mb_pool_shutdown() == 0) {
        printf("pool: all %" PRIu64 " pool pages returned (peak in use %" PRIu64 ", %" PRIu64 " page allocations)\n",
               ps.pages_total, ps.pages_peak, ps.page_allocs);
    } else {
        printf("pool: NOT all pages returned: %" PRIu64 " pages, %" PRIu64 " stores, %" PRIu64 " links still in use\n",
               ps.pages_in_use, ps.stores_in_use, ps.links_in_use);
        all_expected = 0;
    }
    if (!ran_all) {
        printf("result: FAILED (errors above)\n");
        return 2;
    }
    printf("result: %s\n", all_expected ? "as expected: unsafe-inplace corrupts shared pages; auto, outofplace and "
                                          "copy deliver intact"
                                        : "UNEXPECTED outcome (see the table)");
    return all_expected ? 0 : 1;
}
