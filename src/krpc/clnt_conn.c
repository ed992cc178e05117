/*
 * src/krpc/clnt_conn.c - the client's connection life cycle: non-blocking
 * connect, the RFC 9289 AUTH_TLS probe and STARTTLS check, the TLS
 * handshake, and reconnection with exponential backoff.
 *
 * Every connection attempt gets a fresh struct clnt_connctx, the argument of
 * the krpc_conn callbacks. A closing client waits for every context's
 * on_close before it goes (krpc__clnt_close_progress).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "krpc/conn_int.h"
#include "krpc/clnt_int.h"

void krpc__clnt_set_error(struct krpc_clnt *cl, int err, const char *fmt, ...)
{
    va_list ap;

    cl->last_err = err;
    va_start(ap, fmt);
    vsnprintf(cl->last_error, sizeof cl->last_error, fmt, ap);
    va_end(ap);
    krpc_log(KRPC_LOG_INFO, "krpc client: %s", cl->last_error);
}

static void add_tls_stats(struct ktls_stats *d, const struct ktls_stats *s)
{
    d->tx_records_inplace += s->tx_records_inplace;
    d->tx_bytes_inplace += s->tx_bytes_inplace;
    d->tx_records_outofplace += s->tx_records_outofplace;
    d->tx_bytes_outofplace += s->tx_bytes_outofplace;
    d->tx_records_copied += s->tx_records_copied;
    d->tx_bytes_copied += s->tx_bytes_copied;
    d->tx_pages_allocated += s->tx_pages_allocated;
    d->tx_record_buffers += s->tx_record_buffers;
    d->tx_control_records += s->tx_control_records;
    d->tx_key_updates += s->tx_key_updates;
    d->rx_records += s->rx_records;
    d->rx_bytes += s->rx_bytes;
    d->rx_key_updates += s->rx_key_updates;
    d->rx_bad_records += s->rx_bad_records;
}

void krpc__clnt_fold_conn_stats(struct krpc_clnt *cl, struct krpc_conn *conn)
{
    const struct ktls_stats *ts = krpc_conn_tls_stats(conn);

    cl->stats.bytes_sent += krpc_conn_bytes_sent(conn);
    cl->stats.bytes_received += krpc_conn_bytes_received(conn);
    if (ts)
        add_tls_stats(&cl->tls_closed, ts);
}

static void ctx_unlink(struct krpc_clnt *cl, struct clnt_connctx *ctx)
{
    struct clnt_connctx **pp;

    for (pp = &cl->ctxs; *pp; pp = &(*pp)->next) {
        if (*pp == ctx) {
            *pp = ctx->next;
            ctx->next = NULL;
            return;
        }
    }
}

#define STARTTLS_NO_HANDSHAKE                                                                                  \
    " (the server accepted the RPC-with-TLS probe with STARTTLS but did not complete the TLS handshake; a "      \
    "server whose TLS handshake agent is not running, such as knfsd without tlshd, does this)"

/* The address of attempt addr_idx: cfg.addr, then the alternates. */
static const struct sockaddr *current_addr(const struct krpc_clnt *cl, socklen_t *len)
{
    if (cl->addr_idx == 0 || cl->addr_idx > cl->cfg.nalt_addrs || cl->cfg.alt_addrlens[cl->addr_idx - 1] == 0 ||
        cl->cfg.alt_addrlens[cl->addr_idx - 1] > sizeof cl->cfg.alt_addrs[0]) {
        *len = cl->cfg.addrlen;
        return (const struct sockaddr *)&cl->cfg.addr;
    }
    *len = cl->cfg.alt_addrlens[cl->addr_idx - 1];
    return (const struct sockaddr *)&cl->cfg.alt_addrs[cl->addr_idx - 1];
}

/* An attempt that got no byte back from this address (refused,
 * unreachable, timed out): the next attempt tries the next address. */
static void next_addr(struct krpc_clnt *cl)
{
    if (cl->cfg.nalt_addrs > 0)
        cl->addr_idx = (cl->addr_idx + 1) % (cl->cfg.nalt_addrs + 1);
}

/* Points messages and, when the certificate is checked against the
 * address, the TLS server name at the address about to be tried. */
static void use_addr(struct krpc_clnt *cl, const struct sockaddr *sa)
{
    char addr[80], host[INET6_ADDRSTRLEN] = "";
    size_t n;

    krpc_format_addr(sa, addr, sizeof addr);
    n = strlen(addr);
    /* "server 127.0.0.1:2049" already names it; a cfg.name may not. */
    if (strlen(cl->label) >= n && strcmp(cl->label + strlen(cl->label) - n, addr) == 0)
        snprintf(cl->target, sizeof cl->target, "%s", cl->label);
    else
        snprintf(cl->target, sizeof cl->target, "%s (%s)", cl->label, addr);
    if (!cl->name_from_addr || cl->cfg.nalt_addrs == 0)
        return;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, host, sizeof host);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, host, sizeof host);
    if (host[0] && strcmp(host, cl->cfg.tlscfg.server_name ? cl->cfg.tlscfg.server_name : "") != 0) {
        char *d = strdup(host);
        if (d) {
            free((char *)cl->cfg.tlscfg.server_name);
            cl->cfg.tlscfg.server_name = d;
        }
    }
}

/* Starts the handshake on conn with the client's TLS context, loaded from
 * cfg.tlscfg at the first handshake and kept for the reconnects that
 * follow (an SSL_CTX and a CA file cost about 0.7 ms), unless the caller
 * gave one. A handshake that fails drops a context loaded here, so that
 * renewed certificate, key or CA files are read at the next attempt. The
 * name checked is the connection's: the context's own when it has one,
 * else cfg.tlscfg.server_name (the URL's host, --server-name, or the
 * address being tried). */
static int start_tls(struct krpc_clnt *cl, struct krpc_conn *conn)
{
    const char *name;

    if (cl->cfg.tls_ctx == NULL) {
        struct ktls_config k = cl->cfg.tlscfg;
        char err[512];
        int ret;
        k.server_name = NULL;
        if ((ret = ktls_ctx_new(&k, &cl->cfg.tls_ctx, err, sizeof err)) < 0)
            /* Fails like a handshake, with the reason naming the file. */
            return krpc__conn_fail_tls(conn, ret, err);
        cl->tls_ctx_loaded = 1;
    }
    name = ktls_ctx_config(cl->cfg.tls_ctx)->server_name;
    return krpc_conn_start_tls_name(conn, cl->cfg.tls_ctx, name != NULL ? NULL : cl->cfg.tlscfg.server_name);
}

/* Errors that say "the transport broke", worth another attempt, as opposed
 * to a definite answer (certificate rejected, no ALPN, ...). */
static int is_transient(int err)
{
    switch (-err) {
    case 0:
    case ECONNRESET:
    case EPIPE:
    case ETIMEDOUT:
    case ECONNABORTED:
    case ECONNREFUSED:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ENOTCONN:
    case EAGAIN:
    case EINTR:
        return 1;
    default:
        return 0;
    }
}

/* Stops using the current connection without treating its closing as a lost
 * connection (on_close then only folds its counters). */
static void detach_current(struct krpc_clnt *cl, int err)
{
    struct clnt_connctx *ctx = cl->ctx;

    if (!ctx)
        return;
    cl->ctx = NULL;
    krpc_timer_cancel(cl->loop, &cl->conn_timer);
    krpc__clnt_disconnected(cl);
    if (!ctx->closing) {
        ctx->closing = 1;
        krpc_conn_close(ctx->conn, err);
    }
}

static void schedule_reconnect(struct krpc_clnt *cl)
{
    uint64_t delay;

    if (cl->closing)
        return;
    if (cl->ncalls == 0) {
        cl->state = CL_IDLE;
        return;
    }
    if (cl->failures >= cl->cfg.max_reconnects) {
        int err = cl->last_err ? cl->last_err : -ECONNRESET;
        /* A client allowed a single attempt (a portmapper query, a port
         * probe) expects to fail and says so itself: no warning. */
        krpc_log(cl->cfg.max_reconnects > 1 ? KRPC_LOG_WARN : KRPC_LOG_INFO,
                 "krpc client: %s: giving up after %u failed connection attempts: %s", cl->label, cl->failures,
                 cl->last_error);
        cl->failures = 0;
        cl->state = CL_IDLE;
        krpc__clnt_fail_all(cl, err);
        return;
    }
    delay = (uint64_t)cl->cfg.reconnect_delay_ms;
    for (unsigned i = 0; i < cl->failures && delay < 2000; i++)
        delay *= 2;
    if (delay > 2000)
        delay = 2000;
    cl->state = CL_WAIT;
    krpc_timer_arm(cl->loop, &cl->reconnect_timer, delay);
}

/* The connection can carry calls: plain (OFF or opportunistic fallback) or
 * after the handshake. */
static const char *suite_name(int cipher)
{
    switch (cipher) {
    case KTLS_AES_128_GCM_SHA256:
        return "TLS_AES_128_GCM_SHA256";
    case KTLS_AES_256_GCM_SHA384:
        return "TLS_AES_256_GCM_SHA384";
    case KTLS_CHACHA20_POLY1305_SHA256:
        return "TLS_CHACHA20_POLY1305_SHA256";
    default:
        return "?";
    }
}

/* Remembers how this connection travels, for krpc_clnt_transport(). Called
 * while the state still says how we got here: HANDSHAKING after TLS, the
 * probe's PROBING after an opportunistic fall back (and, transitionally,
 * for KRPC_TLS_OFF). */
static void note_transport(struct krpc_clnt *cl)
{
    char addr[80];
    socklen_t len;

    krpc_format_addr(current_addr(cl, &len), addr, sizeof addr);
    if (cl->state == CL_HANDSHAKING && cl->ctx && krpc_conn_is_tls(cl->ctx->conn))
        snprintf(cl->transport, sizeof cl->transport, "%s TLS (%s)", addr,
                 suite_name(krpc_conn_tls_cipher(cl->ctx->conn)));
    else if (cl->cfg.tls != KRPC_TLS_OFF)
        snprintf(cl->transport, sizeof cl->transport, "%s plain (server refused the RPC-with-TLS probe)", addr);
    else
        snprintf(cl->transport, sizeof cl->transport, "%s plain", addr);
}

const char *krpc_clnt_transport(const struct krpc_clnt *cl)
{
    return cl->transport;
}

static void connection_ready(struct krpc_clnt *cl, int established)
{
    note_transport(cl);
    if (established) {
        krpc_timer_cancel(cl->loop, &cl->conn_timer);
        cl->failures = 0;
    }
    cl->state = CL_READY;
    krpc__clnt_on_ready(cl);
}

static void describe_probe_reply(const struct krpc_reply_hdr *h, char *buf, size_t len)
{
    if (h->reply_stat == KRPC_MSG_DENIED) {
        if (h->reject_stat == KRPC_AUTH_ERROR)
            snprintf(buf, len, "AUTH_ERROR %s", krpc_auth_stat_name(h->auth_stat));
        else
            snprintf(buf, len, "RPC_MISMATCH (supported %u..%u)", h->mismatch_low, h->mismatch_high);
    } else if (h->accept_stat == KRPC_SUCCESS) {
        snprintf(buf, len, "SUCCESS without the STARTTLS verifier");
    } else {
        snprintf(buf, len, "%s", krpc_accept_stat_name(h->accept_stat));
    }
}

static void handle_probe_reply(struct krpc_clnt *cl, struct clnt_connctx *ctx, struct mb_chain *msg)
{
    struct krpc_reply_hdr h;
    struct krpc_xdr_dec d;
    char why[160];
    int rc;

    krpc_xdr_dec_init(&d, msg, 0, msg->len);
    rc = krpc_decode_reply_hdr(&d, &h);
    /* The STARTTLS verifier means "start TLS", whatever the accept status:
     * knfsd writes the verifier before it looks at the program, so a probe
     * for a program or version it does not serve comes back as STARTTLS
     * with PROG_UNAVAIL or PROG_MISMATCH, and knfsd then waits for a
     * ClientHello (net/sunrpc/svc.c, svc_process_common). */
    if (rc == 0 && h.reply_stat == KRPC_MSG_ACCEPTED && h.verf_flavor == KRPC_AUTH_NONE && h.verf_len == 8 &&
        memcmp(h.verf, KRPC_STARTTLS_VERF, 8) == 0) {
        if (h.accept_stat != KRPC_SUCCESS)
            krpc_log(KRPC_LOG_INFO, "krpc client: %s answered the RPC-with-TLS probe with STARTTLS and %s; starting TLS",
                     cl->label, krpc_accept_stat_name(h.accept_stat));
        cl->state = CL_HANDSHAKING;
        rc = start_tls(cl, ctx->conn);
        if (rc < 0) {
            krpc__clnt_set_error(cl, -EPROTO, "%s: cannot start TLS: %s", cl->label, strerror(-rc));
            detach_current(cl, -EPROTO);
            cl->state = CL_IDLE;
            krpc__clnt_fail_all(cl, -EPROTO);
        }
        return;
    }
    if (rc < 0)
        snprintf(why, sizeof why, "undecodable reply");
    else
        describe_probe_reply(&h, why, sizeof why);
    if (cl->cfg.tls == KRPC_TLS_REQUIRED) {
        krpc__clnt_set_error(cl, -EPROTONOSUPPORT, "%s does not offer RPC-with-TLS (reply: %s)", cl->label, why);
        /* A definite answer from the server: retrying will not change it. */
        detach_current(cl, 0);
        cl->state = CL_IDLE;
        cl->failures = 0;
        krpc__clnt_fail_all(cl, -EPROTONOSUPPORT);
        return;
    }
    krpc_log(KRPC_LOG_INFO, "krpc client: %s does not offer RPC-with-TLS (reply: %s); continuing in plain",
             cl->label, why);
    connection_ready(cl, 1);
}

static void on_msg(struct krpc_conn *c, struct mb_chain *msg, void *arg)
{
    struct clnt_connctx *ctx = arg;
    struct krpc_clnt *cl = ctx->cl;
    struct krpc_xdr_dec d;
    uint32_t xid;

    (void)c;
    if (cl->ctx != ctx || ctx->closing) {
        mb_chain_free(msg);
        return;
    }
    ctx->got_msg = 1;
    krpc_xdr_dec_init(&d, msg, 0, msg->len);
    xid = krpc_xdr_get_u32(&d);
    if (krpc_xdr_dec_error(&d)) {
        krpc_log(KRPC_LOG_DEBUG, "krpc client: %s: dropping a %zu-byte message", cl->label, msg->len);
        mb_chain_free(msg);
        return;
    }
    krpc__clnt_enter(cl);
    if (cl->state == CL_PROBING && xid == cl->probe_xid)
        handle_probe_reply(cl, ctx, msg);
    else if (cl->state == CL_READY)
        krpc__clnt_on_reply(cl, msg, xid);
    else
        krpc_log(KRPC_LOG_DEBUG, "krpc client: %s: dropping message xid %08x", cl->label, xid);
    mb_chain_free(msg);
    krpc__clnt_leave(cl);
}

static void on_tls(struct krpc_conn *c, int err, const char *msg, void *arg)
{
    struct clnt_connctx *ctx = arg;
    struct krpc_clnt *cl = ctx->cl;

    (void)c;
    if (cl->ctx != ctx || ctx->closing)
        return;
    krpc__clnt_enter(cl);
    if (err == 0) {
        cl->stats.tls_handshakes++;
        connection_ready(cl, 1);
    } else {
        if (cl->tls_ctx_loaded) { /* read the files again next time */
            ktls_ctx_unref(cl->cfg.tls_ctx);
            cl->cfg.tls_ctx = NULL;
            cl->tls_ctx_loaded = 0;
        }
        /* A server that accepts the probe and then never answers the
         * handshake, or drops the connection, is usually one whose TLS
         * handshake agent is not running: knfsd without tlshd. */
        krpc__clnt_set_error(cl, is_transient(err) ? err : -EPROTO, "TLS handshake with %s failed: %s%s", cl->label,
                             msg && *msg ? msg : strerror(-err), is_transient(err) ? STARTTLS_NO_HANDSHAKE : "");
        if (!is_transient(err)) {
            /* Certificates, versions, ALPN: a new attempt would fail the same way. */
            detach_current(cl, -EPROTO);
            cl->state = CL_IDLE;
            cl->failures = 0;
            krpc__clnt_fail_all(cl, -EPROTO);
        } else {
            ctx->fatal = 1; /* error already recorded; on_close counts a failed attempt */
        }
    }
    krpc__clnt_leave(cl);
}

static void on_close(struct krpc_conn *c, int err, void *arg)
{
    struct clnt_connctx *ctx = arg;
    struct krpc_clnt *cl = ctx->cl;
    int was_ready, established, heard;

    krpc__clnt_fold_conn_stats(cl, c);
    ctx_unlink(cl, ctx);
    if (cl->ctx != ctx) {
        /* One we had let go of: replaced, or the client is closing. */
        free(ctx);
        krpc__clnt_close_progress(cl);
        return;
    }
    krpc__clnt_enter(cl);
    established = ctx->got_msg || krpc_conn_bytes_sent(c) > 0;
    was_ready = cl->state == CL_READY;
    cl->ctx = NULL;
    krpc_timer_cancel(cl->loop, &cl->conn_timer);
    if (!ctx->fatal) {
        int e = err ? err : -ECONNRESET;
        /* A record-layer failure says more than its errno: which alert was
         * sent or received ("a record failed authentication; sent alert
         * bad_record_mac (20)"). */
        const char *tls_why = krpc_conn_tls_error(c);
        const char *why = tls_why[0] ? tls_why : err ? strerror(-err) : "closed by the server";
        krpc__clnt_set_error(cl, e, "connection to %s %s: %s", cl->target, was_ready && established ? "lost" : "failed",
                             why);
    }
    heard = ctx->got_msg || krpc_conn_bytes_received(c) > 0;
    free(ctx);
    krpc__clnt_disconnected(cl);
    if (was_ready && established) {
        cl->failures = 0;
    } else {
        cl->failures++;
        if (!heard)
            next_addr(cl);
    }
    schedule_reconnect(cl);
    krpc__clnt_leave(cl);
}

static const struct krpc_conn_ops clnt_conn_ops = {
    .on_msg = on_msg,
    .on_close = on_close,
    .on_tls = on_tls,
};

static int send_probe(struct krpc_clnt *cl, struct krpc_conn *conn)
{
    struct krpc_call_hdr h;
    struct krpc_xdr_enc x;
    struct mb_chain m = MB_CHAIN_INIT;
    int rc;

    memset(&h, 0, sizeof h);
    cl->probe_xid = krpc__clnt_alloc_xid(cl);
    h.xid = cl->probe_xid;
    h.rpcvers = KRPC_RPCVERS;
    h.prog = cl->cfg.prog;
    h.vers = cl->cfg.vers;
    h.proc = 0;
    h.cred.flavor = KRPC_AUTH_TLS;
    h.verf_flavor = KRPC_AUTH_NONE;
    krpc_xdr_enc_init(&x, &m);
    krpc_encode_call_hdr(&x, &h);
    rc = krpc_xdr_enc_error(&x);
    if (rc == 0)
        rc = krpc_conn_send(conn, &m);
    mb_chain_free(&m);
    return rc;
}

/* A connection attempt that failed before a krpc_conn existed. */
static void attempt_failed_now(struct krpc_clnt *cl)
{
    cl->failures++;
    next_addr(cl);
    schedule_reconnect(cl);
}

void krpc__clnt_start_connect(struct krpc_clnt *cl)
{
    const struct sockaddr *sa;
    socklen_t salen;
    struct krpc_conn_config ccfg;
    struct clnt_connctx *ctx;
    int fd, one = 1, rc;

    if (cl->closing || cl->ctx)
        return;
    sa = current_addr(cl, &salen);
    use_addr(cl, sa);
    krpc_timer_cancel(cl->loop, &cl->reconnect_timer);
    cl->rekey_wait = 0; /* a new connection, a new key */
    cl->gen++;
    if (cl->attempts++ > 0)
        cl->stats.reconnects++;
    cl->state = CL_PROBING; /* a transitional state until the outcome is known */

    fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        krpc__clnt_set_error(cl, -errno, "socket for %s: %s", cl->target, strerror(errno));
        attempt_failed_now(cl);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* A chosen source address (e.g. 127.0.0.2 for a server's client checks). */
    if (cl->cfg.src_addrlen != 0 && bind(fd, (const struct sockaddr *)&cl->cfg.src_addr, cl->cfg.src_addrlen) != 0) {
        krpc__clnt_set_error(cl, -errno, "bind for %s: %s", cl->target, strerror(errno));
        close(fd);
        attempt_failed_now(cl);
        return;
    }
    if (connect(fd, sa, salen) < 0 && errno != EINPROGRESS) {
        krpc__clnt_set_error(cl, -errno, "connect to %s: %s", cl->target, strerror(errno));
        close(fd);
        attempt_failed_now(cl);
        return;
    }
    ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        close(fd);
        krpc__clnt_set_error(cl, -ENOMEM, "connect to %s: out of memory", cl->label);
        attempt_failed_now(cl);
        return;
    }
    memset(&ccfg, 0, sizeof ccfg);
    ccfg.max_msg = cl->cfg.max_msg;
    ccfg.max_frag = cl->cfg.max_frag;
    rc = krpc_conn_new(cl->loop, fd, &ccfg, &clnt_conn_ops, ctx, &ctx->conn);
    if (rc < 0) {
        /* krpc_conn_new owns fd only on success. */
        close(fd);
        free(ctx);
        krpc__clnt_set_error(cl, rc, "connect to %s: %s", cl->label, strerror(-rc));
        attempt_failed_now(cl);
        return;
    }
    ctx->cl = cl;
    ctx->gen = cl->gen;
    ctx->next = cl->ctxs;
    cl->ctxs = ctx;
    cl->ctx = ctx;
    krpc_timer_arm(cl->loop, &cl->conn_timer, (uint64_t)cl->cfg.connect_timeout_ms);

    if (cl->cfg.tls == KRPC_TLS_OFF) {
        /* Calls queue in the connection until the TCP connect completes. */
        connection_ready(cl, 0);
        return;
    }
    cl->state = CL_PROBING;
    rc = send_probe(cl, ctx->conn);
    if (rc < 0) {
        krpc__clnt_set_error(cl, rc, "%s: cannot send the RPC-with-TLS probe: %s", cl->label, strerror(-rc));
        ctx->fatal = 1;
        ctx->closing = 1;
        krpc_conn_close(ctx->conn, rc);
    }
}

void krpc__clnt_conn_timer_fn(struct krpc_loop *loop, struct krpc_timer *t, void *arg)
{
    struct krpc_clnt *cl = arg;
    struct clnt_connctx *ctx = cl->ctx;
    static const char *const stage[] = {"idle", "TCP connect or RPC-with-TLS probe", "TLS handshake", "TCP connect",
                                        "wait"};

    (void)loop;
    (void)t;
    if (!ctx)
        return;
    krpc__clnt_enter(cl);
    if (cl->state == CL_READY &&
        (ctx->got_msg || krpc_conn_bytes_sent(ctx->conn) > 0 || krpc_conn_send_queued(ctx->conn) == 0)) {
        /* Plain connection that has carried bytes (or has none to carry): fine. */
    } else {
        krpc__clnt_set_error(cl, -ETIMEDOUT, "%s: %s did not complete within %d ms%s", cl->target, stage[cl->state],
                             cl->cfg.connect_timeout_ms, cl->state == CL_HANDSHAKING ? STARTTLS_NO_HANDSHAKE : "");
        ctx->fatal = 1;
        ctx->closing = 1;
        krpc_conn_close(ctx->conn, -ETIMEDOUT);
    }
    krpc__clnt_leave(cl);
}

void krpc__clnt_reconnect_fn(struct krpc_loop *loop, struct krpc_timer *t, void *arg)
{
    struct krpc_clnt *cl = arg;

    (void)loop;
    (void)t;
    krpc__clnt_enter(cl);
    if (cl->state == CL_WAIT && !cl->ctx)
        krpc__clnt_start_connect(cl);
    krpc__clnt_leave(cl);
}

/* The current connection's TLS key is near its AEAD usage limit and the
 * record layer does not rekey (kernel-TLS peers cannot follow a KeyUpdate):
 * close it cleanly (close_notify) and connect again for a fresh probe,
 * handshake and key. The calls waiting to be sent go out on the new
 * connection (krpc__clnt_on_ready); any still unanswered on the old one are resent
 * from their retained chains, as after any reconnect. */
void krpc__clnt_rekey_reconnect(struct krpc_clnt *cl)
{
    krpc_log(KRPC_LOG_INFO,
             "krpc client: %s: TLS key near its usage limit (%llu records left); reconnecting for a fresh key",
             cl->label, (unsigned long long)(cl->ctx ? krpc_conn_tls_records_left(cl->ctx->conn) : 0));
    cl->stats.rekey_reconnects++;
    detach_current(cl, 0);
    krpc__clnt_start_connect(cl);
}

void krpc__clnt_conn_close_all(struct krpc_clnt *cl)
{
    struct clnt_connctx *ctx, *next;

    cl->ctx = NULL;
    /* next first: a close that cannot arm its timer runs on_close at once,
     * which unlinks and frees the context. */
    for (ctx = cl->ctxs; ctx; ctx = next) {
        next = ctx->next;
        if (!ctx->closing) {
            ctx->closing = 1;
            krpc_conn_close(ctx->conn, -ECANCELED);
        }
    }
}
