/*
 * src/krpc/clnt.c - the RPC client: calls, XIDs, replies, timeouts and
 * retransmission from the retained message, the blocking wrapper, status
 * messages and counters. Connection handling is in clnt_conn.c.
 *
 * A call message is encoded once: the header by krpc_encode_call_hdr, then
 * the caller's argument chain linked in by reference. The client keeps that
 * chain (call->msg) until the reply arrives; every send, the first and each
 * retransmission, hands the connection a copy-by-reference of it. The pages
 * are therefore shared while in flight, which makes the record layer (in
 * auto mode) encrypt out of place and leave the retained bytes intact.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "krpc/clnt_int.h"

/* ---- loop-callback nesting and deferred close ---------------------------- */

static void close_teardown(struct krpc_clnt *cl);
static void close_timer_fn(struct krpc_loop *loop, struct krpc_timer *t, void *arg);

void krpc__clnt_enter(struct krpc_clnt *cl)
{
    cl->depth++;
}

void krpc__clnt_leave(struct krpc_clnt *cl)
{
    if (--cl->depth > 0)
        return;
    if (cl->close_pending)
        close_teardown(cl);
    else
        krpc__clnt_close_progress(cl);
}

/* ---- XID table ------------------------------------------------------------ */

static size_t bucket_of(const struct krpc_clnt *cl, uint32_t xid)
{
    return (size_t)((xid * 2654435761u) >> 8) & (cl->nbuckets - 1);
}

static struct clnt_call *call_lookup(const struct krpc_clnt *cl, uint32_t xid)
{
    struct clnt_call *c;

    for (c = cl->buckets[bucket_of(cl, xid)]; c; c = c->hnext)
        if (c->xid == xid)
            return c;
    return NULL;
}

static void table_grow(struct krpc_clnt *cl)
{
    size_t n = cl->nbuckets * 2, old = cl->nbuckets;
    struct clnt_call **nb = calloc(n, sizeof *nb), **ob = cl->buckets;

    if (!nb)
        return; /* longer chains; still correct */
    cl->buckets = nb;
    cl->nbuckets = n;
    for (size_t i = 0; i < old; i++) {
        struct clnt_call *c = ob[i], *next;
        for (; c; c = next) {
            size_t b = bucket_of(cl, c->xid);
            next = c->hnext;
            c->hnext = nb[b];
            nb[b] = c;
        }
    }
    free(ob);
}

static void call_link(struct krpc_clnt *cl, struct clnt_call *c)
{
    size_t b;

    if (cl->ncalls + 1 > cl->nbuckets)
        table_grow(cl);
    b = bucket_of(cl, c->xid);
    c->hnext = cl->buckets[b];
    cl->buckets[b] = c;
    c->next = NULL;
    c->prev = cl->tail;
    if (cl->tail)
        cl->tail->next = c;
    else
        cl->head = c;
    cl->tail = c;
    cl->ncalls++;
}

static void call_unlink(struct krpc_clnt *cl, struct clnt_call *c)
{
    struct clnt_call **pp = &cl->buckets[bucket_of(cl, c->xid)];

    for (; *pp; pp = &(*pp)->hnext) {
        if (*pp == c) {
            *pp = c->hnext;
            break;
        }
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        cl->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        cl->tail = c->prev;
    c->prev = c->next = c->hnext = NULL;
    cl->ncalls--;
}

uint32_t krpc__clnt_alloc_xid(struct krpc_clnt *cl)
{
    uint32_t x;

    do
        x = cl->next_xid++;
    while (call_lookup(cl, x) || (x == cl->probe_xid && cl->state == CL_PROBING));
    return x;
}

/* ---- completion ------------------------------------------------------------- */

/* Ends a call: the retained message is released, then the callback runs -
 * directly when we are inside a loop callback, otherwise from a 0 ms timer,
 * so that it never runs inside an API call such as krpc_call_async. */
static void complete_call(struct krpc_clnt *cl, struct clnt_call *c, int status, struct krpc_reply *reply)
{
    call_unlink(cl, c);
    krpc_timer_cancel(cl->loop, &c->timer);
    mb_chain_free(&c->msg);
    if (status == 0)
        cl->stats.replies++;
    else
        cl->stats.failures++;
    if (cl->depth == 0) {
        c->status = status;
        c->done_next = NULL;
        if (cl->done_tail)
            cl->done_tail->done_next = c;
        else
            cl->done_head = c;
        cl->done_tail = c;
        krpc_timer_arm(cl->loop, &cl->done_timer, 0);
        return;
    }
    c->fn(cl, status, reply, c->arg);
    free(c);
}

static void deliver_done(struct krpc_clnt *cl)
{
    struct clnt_call *c;

    while ((c = cl->done_head) != NULL) {
        cl->done_head = c->done_next;
        if (!cl->done_head)
            cl->done_tail = NULL;
        c->fn(cl, c->status, NULL, c->arg);
        free(c);
    }
}

static void done_timer_fn(struct krpc_loop *loop, struct krpc_timer *t, void *arg)
{
    struct krpc_clnt *cl = arg;

    (void)loop;
    (void)t;
    krpc__clnt_enter(cl);
    deliver_done(cl);
    krpc__clnt_leave(cl);
}

void krpc__clnt_fail_all(struct krpc_clnt *cl, int err)
{
    /* Only the calls outstanding now: a callback may start new ones. */
    unsigned n = cl->ncalls;

    while (n-- > 0 && cl->head)
        complete_call(cl, cl->head, err, NULL);
}

/* ---- sending ---------------------------------------------------------------- */

static int retries_allowed(const struct krpc_clnt *cl)
{
    return cl->cfg.max_retries < 0 ? 0 : cl->cfg.max_retries;
}

/* TLS records left under a key, beyond what a call needs, below which the
 * client reconnects for a fresh key rather than send the call. Costs nothing
 * against AES-GCM's 2^24.5 records; keeps KeyUpdate answers and close_notify
 * clear of the limit. */
#define CLNT_REKEY_MARGIN 16

/* TLS records a call message of len bytes takes: its record marks (one per
 * fragment) and bytes, cut into records of at most max_record bytes. */
static uint64_t call_records(const struct krpc_clnt *cl, size_t len)
{
    size_t rec = cl->cfg.tlscfg.max_record, nfrag = 1;

    if (rec == 0 || rec > KTLS_MAX_PLAINTEXT)
        rec = KTLS_MAX_PLAINTEXT;
    if (cl->cfg.max_frag > 0 && len > cl->cfg.max_frag)
        nfrag = (len + cl->cfg.max_frag - 1) / cl->cfg.max_frag;
    return ((uint64_t)len + 4 * (uint64_t)nfrag + rec - 1) / rec;
}

/* 1 when sending c would take the connection's TLS key within the margin of
 * its usage limit. A fresh connection is never replaced: another one would
 * have the same limit. */
static int rekey_due(const struct krpc_clnt *cl, const struct clnt_call *c)
{
    uint64_t left = krpc_conn_tls_records_left(cl->ctx->conn);

    if (left == UINT64_MAX || cl->ctx->calls_sent == 0)
        return 0;
    return left < call_records(cl, c->msg.len) + CLNT_REKEY_MARGIN;
}

/* 1 when some call sent on the current connection awaits its reply. */
static int calls_in_flight(const struct krpc_clnt *cl)
{
    for (const struct clnt_call *c = cl->head; c; c = c->next)
        if (c->sent_gen == cl->gen)
            return 1;
    return 0;
}

/* Waiting for a fresh TLS key and nothing is in flight any more: reconnect. */
static void rekey_if_drained(struct krpc_clnt *cl)
{
    /* Not for a client closed from the reply's callback. */
    if (cl->rekey_wait && !cl->closing && cl->state == CL_READY && cl->ctx && !calls_in_flight(cl))
        krpc__clnt_rekey_reconnect(cl);
}

/* Returns -EPIPE when the connection is closing (on_close follows),
 * -ENOTCONN when there is no ready connection, -EAGAIN when the call waits
 * for a connection with a fresh TLS key (it goes out on the new connection). */
static int send_call(struct krpc_clnt *cl, struct clnt_call *c)
{
    struct mb_chain m = MB_CHAIN_INIT;
    int rc;

    if (cl->state != CL_READY || !cl->ctx)
        return -ENOTCONN;
    if (cl->rekey_wait || rekey_due(cl, c)) {
        /* Replies to the calls in flight come back on this connection;
         * closing it now would throw them away and make every one of them a
         * retransmission. So new calls wait until those are answered, then
         * the client reconnects. A retransmission (the call is in flight
         * here and got no reply) means the wait is over: reconnect now. */
        cl->rekey_wait = 1;
        if (c->sent_gen == cl->gen || !calls_in_flight(cl)) {
            krpc__clnt_rekey_reconnect(cl);
            return -ENOTCONN;
        }
        return -EAGAIN;
    }
    cl->ctx->calls_sent++;
    /* Never a re-encode: a reference to the retained message. */
    rc = mb_chain_copy_ref(&m, &c->msg, 0, c->msg.len);
    if (rc == 0)
        rc = krpc_conn_send(cl->ctx->conn, &m);
    mb_chain_free(&m);
    if (rc < 0)
        krpc_log(KRPC_LOG_DEBUG, "krpc client: %s: sending xid %08x: %s", cl->label, c->xid, strerror(-rc));
    /* Even after a failed send: the timer retries, a closing connection
     * leads to a reconnect and a resend. */
    c->sent_gen = cl->gen;
    krpc_timer_arm(cl->loop, &c->timer, (uint64_t)cl->cfg.timeout_ms);
    return rc;
}

void krpc__clnt_on_ready(struct krpc_clnt *cl)
{
    struct clnt_call *c, *next;
    unsigned n = cl->ncalls;
    int rc;

    for (c = cl->head; c && n > 0; c = next, n--) {
        next = c->next;
        if (cl->state != CL_READY)
            break;
        if (c->sent_gen == cl->gen)
            continue;
        if (c->sent_gen != 0) {
            /* Sent on an earlier connection: a resend counts as a retransmission. */
            if (c->tries >= retries_allowed(cl)) {
                complete_call(cl, c, -ETIMEDOUT, NULL);
                continue;
            }
            c->tries++;
            cl->stats.retransmits++;
        }
        rc = send_call(cl, c);
        if (rc == -EPIPE || rc == -EAGAIN)
            break; /* closing, or waiting for a fresh TLS key: the rest goes out on the next connection */
    }
}

void krpc__clnt_disconnected(struct krpc_clnt *cl)
{
    for (struct clnt_call *c = cl->head; c; c = c->next)
        krpc_timer_cancel(cl->loop, &c->timer);
}

static void call_timer_fn(struct krpc_loop *loop, struct krpc_timer *t, void *arg)
{
    struct clnt_call *c = arg;
    struct krpc_clnt *cl = c->cl;

    (void)loop;
    (void)t;
    krpc__clnt_enter(cl);
    if (cl->state == CL_READY && cl->ctx) {
        if (c->tries >= retries_allowed(cl)) {
            krpc_log(KRPC_LOG_INFO, "krpc client: %s: xid %08x proc %u: no reply after %d retransmissions",
                     cl->label, c->xid, c->proc, c->tries);
            complete_call(cl, c, -ETIMEDOUT, NULL);
            rekey_if_drained(cl);
        } else {
            c->tries++;
            cl->stats.retransmits++;
            krpc_log(KRPC_LOG_DEBUG, "krpc client: %s: retransmitting xid %08x (%d)", cl->label, c->xid, c->tries);
            send_call(cl, c);
        }
    }
    /* Not connected: the call is resent once the connection is back. */
    krpc__clnt_leave(cl);
}

/* ---- replies ---------------------------------------------------------------- */

void krpc_reply_free(struct krpc_reply *r)
{
    if (!r)
        return;
    mb_chain_free(&r->msg);
    memset(&r->res, 0, sizeof r->res);
    r->res.c = &r->msg;
    r->res.err = -EBADMSG;
}

void krpc_reply_move(struct krpc_reply *dst, struct krpc_reply *src)
{
    dst->hdr = src->hdr;
    mb_chain_init(&dst->msg);
    mb_chain_concat(&dst->msg, &src->msg);
    /* Links move unchanged, so the decoder's cursor cache stays valid. */
    dst->res = src->res;
    dst->res.c = &dst->msg;
    krpc_reply_free(src);
}

void krpc__clnt_on_reply(struct krpc_clnt *cl, struct mb_chain *msg, uint32_t xid)
{
    struct clnt_call *c = call_lookup(cl, xid);
    struct krpc_reply rep;

    if (!c) {
        /* A late duplicate (answered already) or a stranger: drop it. */
        krpc_log(KRPC_LOG_DEBUG, "krpc client: %s: reply for unknown xid %08x dropped", cl->label, xid);
        return;
    }
    memset(&rep, 0, sizeof rep);
    mb_chain_init(&rep.msg);
    mb_chain_concat(&rep.msg, msg);
    krpc_xdr_dec_init(&rep.res, &rep.msg, 0, rep.msg.len);
    if (krpc_decode_reply_hdr(&rep.res, &rep.hdr) < 0) {
        krpc_log(KRPC_LOG_WARN, "krpc client: %s: undecodable reply for xid %08x", cl->label, xid);
        krpc_reply_free(&rep);
        complete_call(cl, c, -EBADMSG, NULL);
        rekey_if_drained(cl);
        return;
    }
    complete_call(cl, c, 0, &rep);
    krpc_reply_free(&rep);
    rekey_if_drained(cl);
}

/* ---- API -------------------------------------------------------------------- */

static char *dup_opt(const char *s, int *err)
{
    char *d;

    if (!s)
        return NULL;
    d = strdup(s);
    if (!d)
        *err = -ENOMEM;
    return d;
}

static void free_cfg_strings(struct krpc_clnt *cl)
{
    free((char *)cl->cfg.name);
    free((char *)cl->cfg.tlscfg.cert_file);
    free((char *)cl->cfg.tlscfg.key_file);
    free((char *)cl->cfg.tlscfg.ca_file);
    free((char *)cl->cfg.tlscfg.server_name);
    free((char *)cl->cfg.tlscfg.ciphersuites);
    free((char *)cl->cfg.tlscfg.keylog_file);
    ktls_ctx_unref(cl->cfg.tls_ctx);
}

static uint32_t random_xid(void)
{
    uint32_t x;

    if (getrandom(&x, sizeof x, GRND_NONBLOCK) != (ssize_t)sizeof x) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        x = (uint32_t)ts.tv_nsec ^ (uint32_t)ts.tv_sec ^ ((uint32_t)getpid() << 16);
    }
    return x;
}

int krpc_clnt_new(struct krpc_loop *loop, const struct krpc_clnt_config *cfg, struct krpc_clnt **out)
{
    struct krpc_clnt *cl;
    int err = 0;
    char addr[80];

    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!loop || !cfg || cfg->addrlen == 0 || cfg->addrlen > sizeof cfg->addr ||
        cfg->nalt_addrs > KRPC_MAX_ADDRS - 1 ||
        (cfg->tls != KRPC_TLS_OFF && cfg->tls != KRPC_TLS_OPPORTUNISTIC && cfg->tls != KRPC_TLS_REQUIRED) ||
        (cfg->cred.flavor != KRPC_AUTH_NONE && cfg->cred.flavor != KRPC_AUTH_SYS) ||
        cfg->cred.ngids > KRPC_AUTH_SYS_MAX_GIDS)
        return -EINVAL;
    cl = calloc(1, sizeof *cl);
    if (!cl)
        return -ENOMEM;
    cl->loop = loop;
    cl->cfg = *cfg;
    if (cfg->tls_ctx != NULL)
        ktls_ctx_ref(cfg->tls_ctx);
    cl->cfg.name = dup_opt(cfg->name, &err);
    cl->cfg.tlscfg.cert_file = dup_opt(cfg->tlscfg.cert_file, &err);
    cl->cfg.tlscfg.key_file = dup_opt(cfg->tlscfg.key_file, &err);
    cl->cfg.tlscfg.ca_file = dup_opt(cfg->tlscfg.ca_file, &err);
    if (cfg->tlscfg.server_name == NULL && cfg->tls != KRPC_TLS_OFF) {
        /* No name given: check the certificate against the address we
         * connect to, never against nothing. */
        char host[INET6_ADDRSTRLEN] = "";
        const struct sockaddr *sa = (const struct sockaddr *)&cfg->addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, host, sizeof host);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, host, sizeof host);
        cl->cfg.tlscfg.server_name = host[0] ? dup_opt(host, &err) : NULL;
        cl->name_from_addr = 1;
    } else {
        cl->cfg.tlscfg.server_name = dup_opt(cfg->tlscfg.server_name, &err);
    }
    cl->cfg.tlscfg.ciphersuites = dup_opt(cfg->tlscfg.ciphersuites, &err);
    cl->cfg.tlscfg.keylog_file = dup_opt(cfg->tlscfg.keylog_file, &err);
    cl->cfg.tlscfg.role = KTLS_CLIENT;
    cl->cfg.tlscfg.alpn = KRPC_ALPN; /* require_alpn: the caller's (strict mode) */
    if (cl->cfg.timeout_ms <= 0)
        cl->cfg.timeout_ms = 5000;
    if (cl->cfg.max_retries == 0)
        cl->cfg.max_retries = 5;
    if (cl->cfg.connect_timeout_ms <= 0)
        cl->cfg.connect_timeout_ms = 10000;
    if (cl->cfg.reconnect_delay_ms <= 0)
        cl->cfg.reconnect_delay_ms = 100;
    if (cl->cfg.max_reconnects == 0)
        cl->cfg.max_reconnects = 10;
    if (cl->cfg.cred.flavor == KRPC_AUTH_SYS)
        cl->cfg.cred.machine[KRPC_AUTH_SYS_MAX_MACHINE] = '\0';
    if (cl->cfg.name)
        snprintf(cl->label, sizeof cl->label, "%s", cl->cfg.name);
    else
        snprintf(cl->label, sizeof cl->label, "server %s",
                 krpc_format_addr((const struct sockaddr *)&cl->cfg.addr, addr, sizeof addr));
    cl->nbuckets = 64;
    cl->buckets = calloc(cl->nbuckets, sizeof *cl->buckets);
    if (!cl->buckets || err) {
        free(cl->buckets);
        free_cfg_strings(cl);
        free(cl);
        return -ENOMEM;
    }
    cl->next_xid = random_xid();
    krpc_timer_init(&cl->conn_timer, krpc__clnt_conn_timer_fn, cl);
    krpc_timer_init(&cl->reconnect_timer, krpc__clnt_reconnect_fn, cl);
    krpc_timer_init(&cl->done_timer, done_timer_fn, cl);
    krpc_timer_init_close(&cl->close_timer, close_timer_fn, cl);
    krpc__clnt_start_connect(cl);
    *out = cl;
    return 0;
}

int krpc_call_async(struct krpc_clnt *cl, uint32_t proc, struct mb_chain *args, krpc_call_fn fn, void *arg,
                    uint32_t *xid)
{
    return krpc_call_async_cred(cl, proc, NULL, args, fn, arg, xid);
}

int krpc_call_async_cred(struct krpc_clnt *cl, uint32_t proc, const struct krpc_cred *cred, struct mb_chain *args,
                         krpc_call_fn fn, void *arg, uint32_t *xid)
{
    struct krpc_call_hdr h;
    struct krpc_xdr_enc x;
    struct clnt_call *c;
    int rc;

    if (!cl || !fn) {
        if (args)
            mb_chain_free(args);
        return -EINVAL;
    }
    if (cl->closing) {
        if (args)
            mb_chain_free(args);
        return -ECANCELED;
    }
    if (cred && ((cred->flavor != KRPC_AUTH_NONE && cred->flavor != KRPC_AUTH_SYS) ||
                 cred->ngids > KRPC_AUTH_SYS_MAX_GIDS)) {
        if (args)
            mb_chain_free(args);
        return -EINVAL;
    }
    c = calloc(1, sizeof *c);
    if (!c) {
        if (args)
            mb_chain_free(args);
        return -ENOMEM;
    }
    c->cl = cl;
    c->proc = proc;
    c->fn = fn;
    c->arg = arg;
    c->xid = krpc__clnt_alloc_xid(cl);
    mb_chain_init(&c->msg);
    memset(&h, 0, sizeof h);
    h.xid = c->xid;
    h.rpcvers = KRPC_RPCVERS;
    h.prog = cl->cfg.prog;
    h.vers = cl->cfg.vers;
    h.proc = proc;
    h.cred = cred ? *cred : cl->cfg.cred;
    h.cred.machine[KRPC_AUTH_SYS_MAX_MACHINE] = '\0';
    h.verf_flavor = KRPC_AUTH_NONE;
    krpc_xdr_enc_init(&x, &c->msg);
    krpc_encode_call_hdr(&x, &h);
    rc = krpc_xdr_enc_error(&x);
    if (rc < 0) {
        if (args)
            mb_chain_free(args);
        mb_chain_free(&c->msg);
        free(c);
        return rc;
    }
    if (args)
        mb_chain_concat(&c->msg, args); /* by reference: the links move, no byte is copied */
    krpc_timer_init(&c->timer, call_timer_fn, c);
    call_link(cl, c);
    cl->stats.calls++;
    if (xid)
        *xid = c->xid;
    switch (cl->state) {
    case CL_IDLE:
        cl->failures = 0;
        krpc__clnt_start_connect(cl);
        break;
    case CL_READY:
        send_call(cl, c);
        break;
    default:
        break; /* sent when the connection is ready */
    }
    return 0;
}

struct blocking_call {
    int done;
    int status;
    struct krpc_reply *out;
};

static void blocking_cb(struct krpc_clnt *cl, int status, struct krpc_reply *reply, void *arg)
{
    struct blocking_call *b = arg;

    (void)cl;
    b->status = status;
    if (status == 0 && reply)
        krpc_reply_move(b->out, reply);
    b->done = 1;
}

static void cancel_call(struct krpc_clnt *cl, uint32_t xid, int err)
{
    struct clnt_call *c = call_lookup(cl, xid);

    if (c) {
        krpc__clnt_enter(cl); /* the callback (blocking_cb) runs now */
        complete_call(cl, c, err, NULL);
        cl->depth--; /* not krpc__clnt_leave: blocking_cb closes nothing, and cl is used below */
    }
    /* Or the completion is already queued on the done list. */
    for (struct clnt_call **pp = &cl->done_head; *pp; pp = &(*pp)->done_next) {
        if ((*pp)->xid == xid && (*pp)->fn == blocking_cb) {
            struct clnt_call *d = *pp;
            *pp = d->done_next;
            if (cl->done_tail == d) {
                cl->done_tail = NULL;
                for (struct clnt_call *e = cl->done_head; e; e = e->done_next)
                    cl->done_tail = e;
            }
            d->fn(cl, d->status, NULL, d->arg);
            free(d);
            break;
        }
    }
}

int krpc_call(struct krpc_clnt *cl, uint32_t proc, struct mb_chain *args, struct krpc_reply *reply)
{
    return krpc_call_cred(cl, proc, NULL, args, reply);
}

int krpc_call_cred(struct krpc_clnt *cl, uint32_t proc, const struct krpc_cred *cred, struct mb_chain *args,
                   struct krpc_reply *reply)
{
    struct blocking_call b;
    uint32_t xid;
    int rc;

    if (!reply) {
        if (args)
            mb_chain_free(args);
        return -EINVAL;
    }
    memset(reply, 0, sizeof *reply);
    mb_chain_init(&reply->msg);
    krpc_reply_free(reply);
    memset(&b, 0, sizeof b);
    b.out = reply;
    rc = krpc_call_async_cred(cl, proc, cred, args, blocking_cb, &b, &xid);
    if (rc < 0)
        return rc;
    while (!b.done) {
        rc = krpc_loop_run(cl->loop, &b.done, -1);
        if (b.done)
            break;
        /* krpc_loop_stop() or a loop error: give up on this call. */
        cancel_call(cl, xid, rc < 0 ? rc : -EINTR);
        if (!b.done) {
            b.done = 1;
            b.status = rc < 0 ? rc : -EINTR;
        }
    }
    return b.status;
}

int krpc_reply_status(const struct krpc_reply_hdr *h, char *buf, size_t len)
{
    char tmp[160];
    int rc;

    if (!buf || len == 0) {
        buf = tmp;
        len = sizeof tmp;
    }
    if (h->reply_stat == KRPC_MSG_ACCEPTED) {
        switch (h->accept_stat) {
        case KRPC_SUCCESS:
            snprintf(buf, len, "SUCCESS");
            return 0;
        case KRPC_PROG_UNAVAIL:
            snprintf(buf, len, "PROG_UNAVAIL (the server does not export the program)");
            return -EPFNOSUPPORT;
        case KRPC_PROG_MISMATCH:
            snprintf(buf, len, "PROG_MISMATCH (supported %u..%u)", h->mismatch_low, h->mismatch_high);
            return -EPROTONOSUPPORT;
        case KRPC_PROC_UNAVAIL:
            snprintf(buf, len, "PROC_UNAVAIL (the program does not have the procedure)");
            return -EOPNOTSUPP;
        case KRPC_GARBAGE_ARGS:
            snprintf(buf, len, "GARBAGE_ARGS (the server could not decode the arguments)");
            return -EINVAL;
        case KRPC_SYSTEM_ERR:
            snprintf(buf, len, "SYSTEM_ERR (the server failed to process the call)");
            return -EREMOTEIO;
        default:
            snprintf(buf, len, "unknown accept_stat %u", h->accept_stat);
            return -EBADMSG;
        }
    }
    if (h->reply_stat == KRPC_MSG_DENIED) {
        if (h->reject_stat == KRPC_RPC_MISMATCH) {
            snprintf(buf, len, "RPC_MISMATCH (supported %u..%u)", h->mismatch_low, h->mismatch_high);
            return -EPROTONOSUPPORT;
        }
        if (h->reject_stat == KRPC_AUTH_ERROR) {
            switch (h->auth_stat) {
            case KRPC_AUTH_BADCRED:
            case KRPC_AUTH_REJECTEDCRED:
            case KRPC_AUTH_BADVERF:
            case KRPC_AUTH_REJECTEDVERF:
            case KRPC_AUTH_TOOWEAK:
                snprintf(buf, len, "AUTH_ERROR: %s", krpc_auth_stat_name(h->auth_stat));
                break;
            default:
                snprintf(buf, len, "AUTH_ERROR: auth_stat %u", h->auth_stat);
                break;
            }
            return -EACCES;
        }
        snprintf(buf, len, "MSG_DENIED with unknown reject_stat %u", h->reject_stat);
        return -EBADMSG;
    }
    snprintf(buf, len, "unknown reply_stat %u", h->reply_stat);
    rc = -EBADMSG;
    return rc;
}

unsigned krpc_clnt_outstanding(const struct krpc_clnt *cl)
{
    return cl->ncalls;
}

void krpc_clnt_stats_get(const struct krpc_clnt *cl, struct krpc_clnt_stats *out)
{
    /* cl->stats counts the bytes of closed connections; the live ones add theirs. */
    *out = cl->stats;
    for (const struct clnt_connctx *ctx = cl->ctxs; ctx; ctx = ctx->next) {
        out->bytes_sent += krpc_conn_bytes_sent(ctx->conn);
        out->bytes_received += krpc_conn_bytes_received(ctx->conn);
    }
}

const struct krpc_clnt_stats *krpc_clnt_stats(struct krpc_clnt *cl)
{
    krpc_clnt_stats_get(cl, &cl->stats_out);
    return &cl->stats_out;
}

void krpc_clnt_tls_stats(const struct krpc_clnt *cl, struct ktls_stats *out)
{
    *out = cl->tls_closed;
    for (struct clnt_connctx *ctx = cl->ctxs; ctx; ctx = ctx->next) {
        const struct ktls_stats *s = krpc_conn_tls_stats(ctx->conn);
        if (!s)
            continue;
        out->tx_records_inplace += s->tx_records_inplace;
        out->tx_bytes_inplace += s->tx_bytes_inplace;
        out->tx_records_outofplace += s->tx_records_outofplace;
        out->tx_bytes_outofplace += s->tx_bytes_outofplace;
        out->tx_records_copied += s->tx_records_copied;
        out->tx_bytes_copied += s->tx_bytes_copied;
        out->tx_pages_allocated += s->tx_pages_allocated;
        out->tx_record_buffers += s->tx_record_buffers;
        out->tx_control_records += s->tx_control_records;
        out->tx_key_updates += s->tx_key_updates;
        out->rx_records += s->rx_records;
        out->rx_bytes += s->rx_bytes;
        out->rx_key_updates += s->rx_key_updates;
        out->rx_bad_records += s->rx_bad_records;
    }
}

int krpc_clnt_is_tls(const struct krpc_clnt *cl)
{
    return cl->ctx && cl->state == CL_READY && krpc_conn_is_tls(cl->ctx->conn);
}

const char *krpc_clnt_last_error(const struct krpc_clnt *cl)
{
    return cl->last_error;
}

struct krpc_loop *krpc_clnt_loop(const struct krpc_clnt *cl)
{
    return cl->loop;
}

/* ---- closing ------------------------------------------------------------------ */

/* Ends every call and closes every connection; the client then waits for
 * their on_close (krpc__clnt_close_progress). Runs with no callback of the client
 * on the stack: from krpc_clnt_close, or from krpc__clnt_leave. */
static void close_teardown(struct krpc_clnt *cl)
{
    cl->close_pending = 0;
    krpc_timer_cancel(cl->loop, &cl->conn_timer);
    krpc_timer_cancel(cl->loop, &cl->reconnect_timer);
    krpc_timer_cancel(cl->loop, &cl->done_timer);
    krpc__clnt_enter(cl); /* the callbacks below run directly; a close inside one is ignored */
    deliver_done(cl);
    while (cl->head)
        complete_call(cl, cl->head, -ECANCELED, NULL);
    krpc__clnt_conn_close_all(cl);
    krpc__clnt_leave(cl); /* with no connection left, the close timer is armed now */
}

void krpc__clnt_close_progress(struct krpc_clnt *cl)
{
    /* Not while a callback of ours is on the stack: krpc__clnt_leave calls again. */
    if (!cl->closing || cl->close_pending || cl->depth > 0 || cl->ctxs != NULL)
        return;
    if (krpc_timer_arm(cl->loop, &cl->close_timer, 0) < 0) {
        /* No memory for the timer's heap slot: finish now rather than
         * never (the one case where cb runs inside the caller's frame). */
        close_timer_fn(cl->loop, &cl->close_timer, cl);
    }
}

/* Every connection has closed: the last word is the owner's, then the
 * memory goes. From the loop, or from krpc_loop_free. */
static void close_timer_fn(struct krpc_loop *loop, struct krpc_timer *t, void *arg)
{
    struct krpc_clnt *cl = arg;

    (void)loop;
    (void)t;
    if (cl->close_cb != NULL)
        cl->close_cb(cl, cl->close_arg);
    free(cl->buckets);
    free_cfg_strings(cl);
    free(cl);
}

void krpc_clnt_close(struct krpc_clnt *cl, krpc_clnt_close_fn cb, void *arg)
{
    if (!cl || cl->closing)
        return;
    cl->closing = 1;
    cl->close_cb = cb;
    cl->close_arg = arg;
    if (cl->depth > 0) {
        /* Inside one of our callbacks: pulling the calls and connections
         * from under it could break what it is doing. */
        cl->close_pending = 1;
        return;
    }
    close_teardown(cl);
}

void krpc_clnt_free(struct krpc_clnt *cl)
{
    krpc_clnt_close(cl, NULL, NULL);
}
