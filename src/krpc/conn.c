/*
 * conn.c - a stream connection on the event loop: record-marked RPC
 * messages over plain TCP, or over the ktls record layer after an RFC 9289
 * STARTTLS upgrade.
 *
 * Send: a message is framed (record marking) and appended to the send
 * queue; under TLS the framed bytes are sealed first, which consumes the
 * plaintext and leaves ciphertext records in the queue. The queue is written
 * with sendmsg (writev with MSG_NOSIGNAL) straight from the chain; EPOLLOUT
 * is armed only while bytes wait.
 *
 * Receive: one loop for both modes reads into a receive buffer (struct
 * mb_rcvbuf: reserve, readv, commit). Plain mode uses the connection's own
 * and hands what arrived to the record-marking reader by reference; TLS
 * mode uses the record layer's (ktls_rx_space/ktls_rx_commit) and runs the
 * record layer. mbuf decides whether the rest of a receive store may still
 * be read into.
 *
 * Lifetime: krpc_conn_close only marks the connection closed and closes the
 * socket; on_tls (if owed) and on_close run from a zero-delay loop timer,
 * then the connection is freed. So every callback may close the connection
 * and the connection stays valid until our own frame returns.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "krpc/conn_int.h"
#include "rpctls/krpc.h"

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif
#define CONN_MAX_IOV IOV_MAX
#define CONN_RX_CHUNK MB_RCVBUF_CHUNK /* plain-mode receive store */
#define CONN_RX_IOV 32
#define CONN_READ_BUDGET 16 /* reads per readiness event, for fairness */
#define CONN_HS_TIMEOUT_MS 30000

enum conn_state {
    CS_OPEN = 0, /* plain record-marked messages (maybe still connecting) */
    CS_HS_FLUSH, /* start_tls called: writing out what was queued in the clear */
    CS_HS,       /* handshake running */
    CS_TLS,      /* record layer */
    CS_CLOSED,   /* on_close pending */
};

struct krpc_conn {
    struct krpc_loop *loop;
    int fd;
    enum conn_state state;
    int connecting;  /* waiting for connect() to complete */
    uint32_t events; /* current epoll interest */
    unsigned depth;  /* our callbacks on the stack (nested loop runs) */

    struct krpc_conn_config cfg;
    struct krpc_conn_ops ops;
    void *arg;

    struct mb_chain sendq;  /* wire bytes: framed plaintext or TLS records */
    struct mb_chain held;   /* framed plaintext waiting for the handshake */
    struct mb_rcvbuf rx;    /* plain mode: receive space not yet filled */
    struct krpc_rm_reader rm;

    struct ktls_hs *hs;
    struct ktls_conn *tls;
    int tls_dead; /* the record layer failed: no close_notify */
    char tls_error[256]; /* why the record layer failed, naming the alert; "" if it did not */
    int hs_timeout_ms;
    struct krpc_timer hs_timer;

    struct krpc_timer close_timer;
    int close_err;
    int tls_owed; /* on_tls must still report a failure */
    int tls_err;
    char tls_msg[512];
    char peer_subject[512];
    char peer_user[KTLS_MAX_PEER_USER + 1]; /* from a verified client certificate, "" if none */

    uint64_t bytes_sent, bytes_received;
    uint64_t last_io_ms; /* krpc_now_ms() of the last byte read or written, or of creation */
    /* Bytes read since the last message was delivered (a message, or a TLS
     * record of one, under way): when the first of them came (0: none has)
     * and bytes_received before them, for the server's slow-message check. */
    uint64_t partial_since_ms, partial_bytes0;

    struct krpc_membudget *budget;   /* NULL: not counted */
    size_t charged;                  /* what this connection has charged to budget */
};

static void conn_update_events(struct krpc_conn *c);

/* ---- helpers ------------------------------------------------------------- */

/* iovecs for the first bytes of ch (at most max entries); *bytes their sum. */
static int chain_iov_prefix(const struct mb_chain *ch, struct iovec *iov, int max, size_t *bytes)
{
    struct mb_seg_iter it;

    mb_seg_iter_init(&it, ch, 0, ch->len);
    return mb_seg_iovec(&it, iov, max, bytes);
}

static int reader_partial(const struct krpc_rm_reader *r)
{
    return r->in.len > 0 || r->msg.len > 0 || r->in_frag;
}

size_t krpc_conn_mem(const struct krpc_conn *c)
{
    if (c == NULL)
        return 0;
    return c->sendq.len + c->held.len + c->rx.fill.len + c->rm.in.len + c->rm.msg.len;
}

/* Brings the connection's charge to its budget up to date. With may_cut,
 * a connection that grew while the budget is over its limit, and holds more
 * than the floor, is closed (-ENOBUFS); returns -1 then, else 0. */
static int conn_charge(struct krpc_conn *c, int may_cut)
{
    struct krpc_membudget *b = c->budget;
    size_t now;
    uint64_t used;

    if (b == NULL)
        return 0;
    now = c->state == CS_CLOSED ? 0 : krpc_conn_mem(c);
    if (now == c->charged)
        return 0;
    if (now > c->charged)
        used = __atomic_add_fetch(&b->used, (uint64_t)(now - c->charged), __ATOMIC_RELAXED);
    else
        used = __atomic_sub_fetch(&b->used, (uint64_t)(c->charged - now), __ATOMIC_RELAXED);
    if (may_cut && now > c->charged && b->limit > 0 && used > b->limit && now > b->floor) {
        c->charged = now;
        krpc_log(KRPC_LOG_INFO, "krpc conn fd %d: holds %zu buffer bytes while the budget is over its %llu-byte "
                                "limit; closing",
                 c->fd, now, (unsigned long long)b->limit);
        krpc_conn_close(c, -ENOBUFS);
        return -1;
    }
    c->charged = now;
    return 0;
}

void krpc_conn_set_membudget(struct krpc_conn *c, struct krpc_membudget *b)
{
    if (c == NULL)
        return;
    if (c->budget != NULL && c->charged > 0)
        __atomic_sub_fetch(&c->budget->used, (uint64_t)c->charged, __ATOMIC_RELAXED);
    c->charged = 0;
    c->budget = b;
    (void)conn_charge(c, 0);
}

void krpc_conn_set_rx_limits(struct krpc_conn *c, size_t max_msg, size_t rx_chunk)
{
    if (c == NULL)
        return;
    c->rm.max_msg = max_msg > 0 ? max_msg : c->cfg.max_msg;
    c->rx.chunk = rx_chunk > 0 ? rx_chunk : CONN_RX_CHUNK;
}

static void conn_set_events(struct krpc_conn *c, uint32_t ev)
{
    int ret;

    if (c->fd < 0 || ev == c->events)
        return;
    if ((ret = krpc_loop_mod_fd(c->loop, c->fd, ev)) < 0)
        krpc_log(KRPC_LOG_WARN, "krpc conn fd %d: epoll update failed: %s", c->fd, strerror(-ret));
    else
        c->events = ev;
}

/* Writes as much of the send queue as the socket takes. 0 (done or would
 * block) or -errno. */
static int conn_flush(struct krpc_conn *c)
{
    while (c->sendq.len > 0) {
        struct iovec iov[CONN_MAX_IOV];
        struct msghdr mh;
        size_t bytes;
        int n = chain_iov_prefix(&c->sendq, iov, CONN_MAX_IOV, &bytes);
        ssize_t w;

        memset(&mh, 0, sizeof(mh));
        mh.msg_iov = iov;
        mh.msg_iovlen = (size_t)n;
        w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == ENOTSOCK)
            w = writev(c->fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -errno;
        }
        c->bytes_sent += (uint64_t)w;
        if (w > 0)
            c->last_io_ms = krpc_now_ms();
        mb_chain_trim_head(&c->sendq, (size_t)w);
        if ((size_t)w < bytes)
            return 0; /* socket buffer full: wait for EPOLLOUT */
    }
    return 0;
}

/* ---- closing ------------------------------------------------------------- */

static void conn_free(struct krpc_conn *c)
{
    krpc_conn_set_membudget(c, NULL); /* give back what it charged */
    if (c->fd >= 0) {
        (void)krpc_loop_del_fd(c->loop, c->fd);
        close(c->fd);
    }
    krpc_timer_cancel(c->loop, &c->hs_timer);
    krpc_timer_cancel(c->loop, &c->close_timer);
    ktls_hs_free(c->hs);
    ktls_conn_free(c->tls);
    mb_chain_free(&c->sendq);
    mb_chain_free(&c->held);
    mb_rcvbuf_free(&c->rx);
    krpc_rm_reader_free(&c->rm);
    free(c);
}

static void conn_close_timer(struct krpc_loop *loop, struct krpc_timer *t, void *arg)
{
    struct krpc_conn *c = arg;

    /* A callback of ours is still on the stack (it runs a nested loop):
     * freeing now would pull the connection from under it. */
    if (c->depth > 0) {
        (void)krpc_timer_arm(loop, t, 1);
        return;
    }
    c->depth++;
    if (c->tls_owed) {
        c->tls_owed = 0;
        if (c->ops.on_tls != NULL)
            c->ops.on_tls(c, c->tls_err, c->tls_msg, c->arg);
    }
    if (c->ops.on_close != NULL)
        c->ops.on_close(c, c->close_err, c->arg);
    c->depth--;
    conn_free(c);
}

void krpc_conn_free(struct krpc_conn *c)
{
    if (c == NULL)
        return;
    /* The owner is going away: no callback may reach it any more. */
    c->ops.on_msg = NULL;
    c->ops.on_close = NULL;
    c->ops.on_tls = NULL;
    c->tls_owed = 0;
    if (c->depth > 0) {
        /* Inside one of this connection's callbacks: finish from the loop. */
        krpc_conn_close(c, 0);
        return;
    }
    if (c->state != CS_CLOSED && c->state == CS_TLS && c->tls != NULL && !c->tls_dead) {
        (void)ktls_tx_close_notify(c->tls, &c->sendq);
        if (!c->connecting && c->fd >= 0)
            (void)conn_flush(c);
    }
    conn_free(c);
}

void krpc_conn_close(struct krpc_conn *c, int err)
{
    enum conn_state prev;

    if (c == NULL || c->state == CS_CLOSED)
        return;
    prev = c->state;
    c->state = CS_CLOSED;
    c->close_err = err;
    if ((prev == CS_HS_FLUSH || prev == CS_HS) && !c->tls_owed) {
        /* Every start_tls that returned 0 gets one on_tls. */
        c->tls_owed = 1;
        c->tls_err = err != 0 ? err : -ECANCELED;
        snprintf(c->tls_msg, sizeof(c->tls_msg), "connection closed during the TLS handshake%s%s",
                 err != 0 ? ": " : "", err != 0 ? strerror(-err) : "");
    }
    if (err != 0)
        krpc_log(KRPC_LOG_DEBUG, "krpc conn fd %d: closing: %s", c->fd, strerror(-err));

    /* Best effort, without waiting: what is queued, and our close_notify. */
    if (prev == CS_TLS && c->tls != NULL && !c->tls_dead)
        (void)ktls_tx_close_notify(c->tls, &c->sendq);
    if ((prev == CS_TLS || prev == CS_OPEN) && !c->connecting && c->fd >= 0)
        (void)conn_flush(c);

    krpc_timer_cancel(c->loop, &c->hs_timer);
    if (c->fd >= 0) {
        (void)krpc_loop_del_fd(c->loop, c->fd);
        close(c->fd);
        c->fd = -1;
    }
    if (krpc_timer_arm(c->loop, &c->close_timer, 0) < 0) {
        /* No memory for the heap slot: report now rather than never. */
        conn_close_timer(c->loop, &c->close_timer, c);
    }
}

/* A failure of the upgrade: on_tls(err, msg) then on_close(err). */
static void conn_tls_fail(struct krpc_conn *c, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void conn_tls_fail(struct krpc_conn *c, int err, const char *fmt, ...)
{
    va_list ap;

    if (c->state == CS_CLOSED)
        return;
    c->tls_owed = 1;
    c->tls_err = err;
    va_start(ap, fmt);
    vsnprintf(c->tls_msg, sizeof(c->tls_msg), fmt, ap);
    va_end(ap);
    krpc_log(KRPC_LOG_INFO, "krpc conn fd %d: %s", c->fd, c->tls_msg);
    krpc_conn_close(c, err);
}

/* ---- receiving ----------------------------------------------------------- */

/* Hands complete messages to on_msg while messages are being delivered. */
static void conn_deliver(struct krpc_conn *c)
{
    while (c->state == CS_OPEN || c->state == CS_TLS) {
        struct mb_chain msg = MB_CHAIN_INIT;
        int ret = krpc_rm_reader_next(&c->rm, &msg);

        if (ret == 0)
            return;
        c->partial_since_ms = 0; /* a message completed: the next starts with the next bytes read */
        if (ret < 0) {
            if (ret == -EMSGSIZE)
                krpc_log(KRPC_LOG_WARN, "krpc conn fd %d: record mark announces a message over %zu bytes; closing",
                         c->fd, c->rm.max_msg);
            else
                krpc_log(KRPC_LOG_WARN, "krpc conn fd %d: bad record marking (%s); closing", c->fd, strerror(-ret));
            krpc_conn_close(c, ret);
            return;
        }
        if (c->ops.on_msg != NULL)
            c->ops.on_msg(c, &msg, c->arg); /* msg is the callee's now */
        else
            mb_chain_free(&msg);
    }
}

/* Orderly end of the byte stream (TCP FIN in plain mode, close_notify in
 * TLS): an error if it cuts a message. */
static void conn_eof(struct krpc_conn *c)
{
    if (reader_partial(&c->rm)) {
        krpc_log(KRPC_LOG_INFO, "krpc conn fd %d: peer closed in the middle of a message", c->fd);
        krpc_conn_close(c, -ECONNRESET);
    } else {
        krpc_conn_close(c, 0);
    }
}

/* Says why the record layer failed, naming the alert by its RFC 8446 name:
 * "a record failed authentication; sent alert bad_record_mac (20)". A fatal
 * alert of ours (RX refused something) is what the peer sees; without one,
 * the failure was the peer's fatal alert (RX never answers those). */
static void conn_describe_tls_error(struct krpc_conn *c, int err)
{
    int sent = ktls_tx_alert(c->tls), rcvd = ktls_rx_alert(c->tls);
    const char *why;

    if (sent > 0) { /* 0 would be our close_notify: not a reason */
        if (err == -EBADMSG)
            why = "a record failed authentication";
        else if (err == -EMSGSIZE)
            why = "a record over the TLS size limit";
        else if (err == -EPROTO)
            why = "the peer broke the TLS protocol";
        else
            why = strerror(-err);
        snprintf(c->tls_error, sizeof(c->tls_error), "%s; sent alert %s (%d)", why, ktls_alert_name(sent), sent);
    } else if (err == -EPROTO && rcvd > 0) {
        snprintf(c->tls_error, sizeof(c->tls_error), "the peer ended the session; received alert %s (%d)",
                 ktls_alert_name(rcvd), rcvd);
    } else {
        snprintf(c->tls_error, sizeof(c->tls_error), "%s", strerror(-err));
    }
}

/* Runs the record layer over what it has buffered. 0 to go on reading,
 * -1 when the connection closed or stopped delivering. */
static int conn_tls_process(struct krpc_conn *c)
{
    struct mb_chain app = MB_CHAIN_INIT;
    int ret = ktls_rx_process(c->tls, &app), fret;

    if (app.len > 0)
        krpc_rm_reader_feed(&c->rm, &app);
    mb_chain_free(&app);
    /* KeyUpdate answers and alerts the RX side owes the peer. */
    fret = ktls_tx_flush_control(c->tls, &c->sendq);
    if (ret < 0) {
        c->tls_dead = 1;
        conn_describe_tls_error(c, ret);
        conn_deliver(c); /* data of the records before the bad one */
        if (c->state == CS_TLS) {
            krpc_log(KRPC_LOG_INFO, "krpc conn fd %d: TLS receive failed: %s", c->fd, c->tls_error);
            (void)conn_flush(c); /* our alert */
            krpc_conn_close(c, ret);
        }
        return -1;
    }
    if (fret < 0) {
        krpc_conn_close(c, fret);
        return -1;
    }
    conn_deliver(c);
    if (c->state != CS_TLS)
        return -1;
    /* close_notify that came in the same read as the data before it: the
     * record layer handed out the data (ret 0) and would say KTLS_RX_EOF
     * only when called again, but no more bytes and so no EPOLLIN will
     * come to call it. Answer and close now. */
    if (ret == KTLS_RX_EOF || ktls_rx_eof(c->tls)) {
        conn_eof(c);
        return -1;
    }
    if (c->sendq.len > 0 && (fret = conn_flush(c)) < 0) {
        krpc_conn_close(c, fret);
        return -1;
    }
    return 0;
}

/* What a read brought: plain mode feeds the record-marking reader and
 * delivers; TLS mode runs the record layer. 0 to go on reading, -1 when
 * the connection closed or stopped delivering. */
static int conn_read_commit(struct krpc_conn *c, size_t n)
{
    struct mb_chain got = MB_CHAIN_INIT;
    int ret;

    if (c->state == CS_TLS) {
        ktls_rx_commit(c->tls, n);
        return conn_tls_process(c);
    }
    if ((ret = mb_rcvbuf_commit(&c->rx, n, &got)) != 0) {
        krpc_conn_close(c, ret);
        return -1;
    }
    krpc_rm_reader_feed(&c->rm, &got);
    conn_deliver(c);
    return 0;
}

/* The peer closed its end: in TLS mode without close_notify (close_notify
 * is handled by conn_tls_process), possibly a truncation attack. */
static void conn_read_eof(struct krpc_conn *c)
{
    if (c->state == CS_TLS) {
        krpc_log(KRPC_LOG_INFO, "krpc conn fd %d: TLS peer closed without close_notify", c->fd);
        c->tls_dead = 1;
        krpc_conn_close(c, -ECONNRESET);
        return;
    }
    conn_eof(c);
}

/* Reads while the socket has bytes, up to CONN_READ_BUDGET reads, as long as
 * the connection stays in the state (plain or TLS) it started in. */
static void conn_read(struct krpc_conn *c)
{
    const enum conn_state mode = c->state; /* CS_OPEN or CS_TLS */

    for (int i = 0; i < CONN_READ_BUDGET && c->state == mode; i++) {
        struct iovec iov[CONN_RX_IOV];
        size_t space = 0;
        ssize_t r;
        int n = mode == CS_TLS ? ktls_rx_space(c->tls, iov, CONN_RX_IOV) : mb_rcvbuf_reserve(&c->rx, iov, CONN_RX_IOV);

        if (n < 0) {
            krpc_conn_close(c, n);
            break;
        }
        for (int k = 0; k < n; k++)
            space += iov[k].iov_len;
        r = readv(c->fd, iov, n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                krpc_conn_close(c, -errno);
            break;
        }
        if (r == 0) {
            conn_read_eof(c);
            break;
        }
        c->bytes_received += (uint64_t)r;
        c->last_io_ms = krpc_now_ms();
        if (c->partial_since_ms == 0) {
            c->partial_since_ms = c->last_io_ms;
            c->partial_bytes0 = c->bytes_received - (uint64_t)r;
        }
        if (conn_read_commit(c, (size_t)r) < 0 || (size_t)r < space)
            break; /* closed, or drained */
    }
    if (c->state != CS_CLOSED)
        (void)conn_charge(c, 1);
}

/* ---- the TLS upgrade ----------------------------------------------------- */

static void conn_hs_timeout(struct krpc_loop *loop, struct krpc_timer *t, void *arg)
{
    struct krpc_conn *c = arg;

    c->depth++;
    conn_tls_fail(c, -ETIMEDOUT, "TLS handshake timed out after %d ms", c->hs_timeout_ms);
    c->depth--;
}

static void conn_hs_done(struct krpc_conn *c)
{
    int ret = ktls_hs_finish(c->hs, &c->tls);

    if (ret < 0) {
        conn_tls_fail(c, ret, "%s", ktls_hs_error(c->hs));
        return;
    }
    snprintf(c->peer_subject, sizeof(c->peer_subject), "%s", ktls_hs_peer_subject(c->hs));
    snprintf(c->peer_user, sizeof(c->peer_user), "%s", ktls_hs_peer_user(c->hs));
    if (*ktls_hs_peer_user_error(c->hs) != '\0')
        krpc_log(KRPC_LOG_WARN, "krpc conn fd %d: client certificate %s names no usable user: %s", c->fd,
                 c->peer_subject, ktls_hs_peer_user_error(c->hs));
    ktls_hs_free(c->hs);
    c->hs = NULL;
    krpc_timer_cancel(c->loop, &c->hs_timer);
    c->state = CS_TLS;
    /* Messages queued during the handshake go first, in order. */
    if (c->held.len > 0 && (ret = ktls_tx_seal(c->tls, &c->held, &c->sendq)) < 0) {
        krpc_conn_close(c, ret);
        return;
    }
    if (c->ops.on_tls != NULL)
        c->ops.on_tls(c, 0, "", c->arg);
    if (c->state != CS_TLS)
        return;
    if ((ret = conn_flush(c)) < 0) {
        krpc_conn_close(c, ret);
        return;
    }
    /* Records that came with the peer's last flight are already read. */
    if (conn_tls_process(c) < 0)
        return;
    conn_update_events(c);
}

static void conn_hs_drive(struct krpc_conn *c)
{
    int want_write = 0, ret = ktls_hs_step(c->hs, &want_write);

    if (ret == -EAGAIN) {
        conn_set_events(c, want_write ? EPOLLOUT : EPOLLIN);
        return;
    }
    if (ret < 0) {
        conn_tls_fail(c, ret, "%s", ktls_hs_error(c->hs));
        return;
    }
    conn_hs_done(c);
}

int krpc_conn_start_tls_ctx(struct krpc_conn *c, struct ktls_ctx *ctx)
{
    return krpc_conn_start_tls_name(c, ctx, NULL);
}

int krpc_conn_start_tls_name(struct krpc_conn *c, struct ktls_ctx *ctx, const char *server_name)
{
    int ret, timeout_ms;

    if (c == NULL || ctx == NULL)
        return -EINVAL;
    if (c->state == CS_CLOSED)
        return -EPIPE;
    if (c->state != CS_OPEN)
        return -EALREADY;
    if (server_name != NULL && strlen(server_name) > KTLS_MAX_SERVER_NAME)
        return krpc__conn_fail_tls(c, -EINVAL, "server name longer than 255 bytes (KTLS_MAX_SERVER_NAME)");
    timeout_ms = ktls_ctx_config(ctx)->timeout_ms;
    c->hs_timeout_ms = timeout_ms > 0 ? timeout_ms : CONN_HS_TIMEOUT_MS;
    c->state = CS_HS_FLUSH; /* no more messages delivered */
    mb_rcvbuf_free(&c->rx);

    /* The peer must wait for the upgrade before sending TLS; plaintext that
     * followed the triggering message is a protocol violation. */
    if (reader_partial(&c->rm)) {
        conn_tls_fail(c, -EPROTO, "TLS upgrade refused: %zu bytes of plaintext followed the STARTTLS point",
                      c->rm.in.len + c->rm.msg.len);
        return 0;
    }
    if ((ret = ktls_hs_new_ctx_name(ctx, c->fd, server_name, &c->hs)) < 0) {
        conn_tls_fail(c, ret, "TLS setup failed: %s", strerror(-ret));
        return 0;
    }
    if ((ret = krpc_timer_arm(c->loop, &c->hs_timer, (uint64_t)c->hs_timeout_ms)) < 0) {
        conn_tls_fail(c, ret, "TLS setup failed: %s", strerror(-ret));
        return 0;
    }
    /* Flush (and then step the handshake) from the loop, not from here. */
    conn_set_events(c, EPOLLOUT);
    return 0;
}

int krpc__conn_fail_tls(struct krpc_conn *c, int err, const char *why)
{
    if (c == NULL)
        return -EINVAL;
    if (c->state == CS_CLOSED)
        return -EPIPE;
    if (c->state != CS_OPEN)
        return -EALREADY;
    c->state = CS_HS_FLUSH;
    conn_tls_fail(c, err, "TLS setup failed: %s", why);
    return 0;
}

int krpc_conn_start_tls(struct krpc_conn *c, const struct ktls_config *cfg)
{
    struct ktls_config k;
    struct ktls_ctx *ctx;
    char err[512];
    int ret;

    if (c == NULL || cfg == NULL)
        return -EINVAL;
    if (c->state == CS_CLOSED)
        return -EPIPE;
    if (c->state != CS_OPEN)
        return -EALREADY;
    k = *cfg;
    /* RFC 9289's ALPN "sunrpc"; strict only when the caller's require_alpn
     * says so, since deployed peers negotiate none. */
    k.alpn = KRPC_ALPN;
    if ((ret = ktls_ctx_new(&k, &ctx, err, sizeof err)) < 0)
        return krpc__conn_fail_tls(c, ret, err);
    ret = krpc_conn_start_tls_ctx(c, ctx);
    ktls_ctx_unref(ctx); /* the handshake holds its own reference */
    return ret;
}

/* ---- events -------------------------------------------------------------- */

static void conn_update_events(struct krpc_conn *c)
{
    (void)conn_charge(c, 0); /* after every send and flush */
    switch (c->state) {
    case CS_OPEN:
    case CS_TLS:
        if (c->connecting)
            conn_set_events(c, EPOLLOUT);
        else
            conn_set_events(c, EPOLLIN | (c->sendq.len > 0 ? EPOLLOUT : 0));
        break;
    case CS_HS_FLUSH:
        conn_set_events(c, EPOLLOUT);
        break;
    default:
        break; /* CS_HS: the handshake says; CS_CLOSED: not registered */
    }
}

/* 0 when connected, -1 when the connect failed (closed) or still runs. */
static int conn_check_connect(struct krpc_conn *c, uint32_t events)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err != 0) {
        krpc_log(KRPC_LOG_INFO, "krpc conn fd %d: connect failed: %s", c->fd, strerror(err));
        krpc_conn_close(c, -err);
        return -1;
    }
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
        return -1;
    c->connecting = 0;
    return 0;
}

static void conn_event(struct krpc_loop *loop, int fd, uint32_t events, void *arg)
{
    struct krpc_conn *c = arg;
    int ret;

    c->depth++;
    if (c->connecting && conn_check_connect(c, events) < 0)
        goto out;
    switch (c->state) {
    case CS_OPEN:
    case CS_TLS:
        if (c->sendq.len > 0 && (ret = conn_flush(c)) < 0) {
            krpc_conn_close(c, ret);
            break;
        }
        if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
            conn_read(c);
        conn_update_events(c);
        break;
    case CS_HS_FLUSH:
        if ((ret = conn_flush(c)) < 0) {
            conn_tls_fail(c, ret, "TLS upgrade failed: cannot send queued messages: %s", strerror(-ret));
            break;
        }
        if (c->sendq.len > 0)
            break;
        c->state = CS_HS;
        conn_hs_drive(c);
        break;
    case CS_HS:
        conn_hs_drive(c);
        break;
    case CS_CLOSED:
        break;
    }
out:
    c->depth--;
}

/* ---- public -------------------------------------------------------------- */

int krpc_conn_new(struct krpc_loop *loop, int fd, const struct krpc_conn_config *cfg,
                  const struct krpc_conn_ops *ops, void *arg, struct krpc_conn **out)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    struct krpc_conn *c;
    int fl, ret;

    if (out != NULL)
        *out = NULL;
    if (loop == NULL || fd < 0 || ops == NULL || out == NULL)
        return -EINVAL;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return -ENOMEM;
    c->loop = loop;
    c->fd = fd;
    c->state = CS_OPEN;
    if (cfg != NULL)
        c->cfg = *cfg;
    if (c->cfg.max_msg == 0)
        c->cfg.max_msg = KRPC_RM_DEFAULT_MAX_MSG;
    c->ops = *ops;
    c->arg = arg;
    c->last_io_ms = krpc_now_ms();
    mb_chain_init(&c->sendq);
    mb_chain_init(&c->held);
    mb_rcvbuf_init(&c->rx, CONN_RX_CHUNK);
    krpc_rm_reader_init(&c->rm, c->cfg.max_msg);
    krpc_timer_init(&c->hs_timer, conn_hs_timeout, c);
    krpc_timer_init_close(&c->close_timer, conn_close_timer, c); /* krpc_loop_free finishes it */

    if ((fl = fcntl(fd, F_GETFL)) < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)) {
        ret = -errno;
        goto fail;
    }
    /* Not yet connected: EPOLLOUT will say when connect() is through. */
    c->connecting = getpeername(fd, (struct sockaddr *)&ss, &sl) < 0;
    c->events = c->connecting ? EPOLLOUT : EPOLLIN;
    if ((ret = krpc_loop_add_fd(loop, fd, c->events, conn_event, c)) < 0)
        goto fail;
    *out = c;
    return 0;
fail:
    krpc_rm_reader_free(&c->rm);
    free(c);
    return ret; /* the caller still owns fd */
}

int krpc_conn_send(struct krpc_conn *c, struct mb_chain *msg)
{
    struct mb_chain framed = MB_CHAIN_INIT;
    int ret;

    if (c == NULL || msg == NULL)
        return -EINVAL;
    if (c->state == CS_CLOSED) {
        mb_chain_free(msg);
        return -EPIPE;
    }
    if (c->cfg.max_send_queue > 0 && krpc_conn_send_queued(c) + msg->len > c->cfg.max_send_queue) {
        mb_chain_free(msg);
        return -ENOBUFS;
    }
    ret = krpc_rm_frame(msg, c->cfg.max_frag, &framed);
    mb_chain_free(msg);
    if (ret < 0) {
        mb_chain_free(&framed);
        return ret;
    }
    switch (c->state) {
    case CS_HS_FLUSH:
    case CS_HS:
        mb_chain_concat(&c->held, &framed);
        (void)conn_charge(c, 0);
        return 0;
    case CS_TLS:
        if ((ret = ktls_tx_seal(c->tls, &framed, &c->sendq)) < 0) {
            if (ret == -EKEYEXPIRED)
                krpc_log(KRPC_LOG_INFO, "krpc conn fd %d: the TLS key reached its usage limit; closing so that "
                         "the peer reconnects with a fresh handshake", c->fd);
            krpc_conn_close(c, ret);
            return ret;
        }
        break;
    default:
        mb_chain_concat(&c->sendq, &framed);
        break;
    }
    if (c->connecting)
        return 0;
    /* Write now; a failure is reported through on_close. */
    if ((ret = conn_flush(c)) < 0) {
        krpc_conn_close(c, ret);
        return 0;
    }
    conn_update_events(c);
    return 0;
}

int krpc_conn_is_tls(const struct krpc_conn *c)
{
    return c != NULL && c->tls != NULL;
}

const char *krpc_conn_peer_subject(const struct krpc_conn *c)
{
    return c != NULL ? c->peer_subject : "";
}

const char *krpc_conn_peer_user(const struct krpc_conn *c)
{
    return c != NULL ? c->peer_user : "";
}

const char *krpc_conn_tls_error(const struct krpc_conn *c)
{
    return c != NULL ? c->tls_error : "";
}

int krpc_conn_tls_cipher(const struct krpc_conn *c)
{
    return c != NULL && c->tls != NULL ? (int)ktls_conn_cipher(c->tls) : 0;
}

const struct ktls_stats *krpc_conn_tls_stats(const struct krpc_conn *c)
{
    return c != NULL && c->tls != NULL ? ktls_conn_stats(c->tls) : NULL;
}

uint64_t krpc_conn_tls_records_left(const struct krpc_conn *c)
{
    return c != NULL && c->tls != NULL ? ktls_conn_tx_records_left(c->tls) : UINT64_MAX;
}

size_t krpc_conn_send_queued(const struct krpc_conn *c)
{
    return c != NULL ? c->sendq.len + c->held.len : 0;
}

int krpc_conn_fd(const struct krpc_conn *c)
{
    return c != NULL ? c->fd : -1;
}

uint64_t krpc_conn_bytes_sent(const struct krpc_conn *c)
{
    return c != NULL ? c->bytes_sent : 0;
}

uint64_t krpc_conn_bytes_received(const struct krpc_conn *c)
{
    return c != NULL ? c->bytes_received : 0;
}

int krpc_conn_partial_msg(const struct krpc_conn *c, uint64_t *since_ms, uint64_t *bytes)
{
    if (c == NULL || c->partial_since_ms == 0)
        return 0;
    *since_ms = c->partial_since_ms;
    *bytes = c->bytes_received - c->partial_bytes0;
    return 1;
}

uint64_t krpc_conn_last_io_ms(const struct krpc_conn *c)
{
    return c != NULL ? c->last_io_ms : 0;
}
