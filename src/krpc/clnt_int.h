/*
 * src/krpc/clnt_int.h - private state of the RPC client, shared by clnt.c
 * (calls, replies, timeouts, API) and clnt_conn.c (connect, RFC 9289 probe,
 * TLS handshake, reconnect with backoff).
 */
#ifndef RPCTLS_KRPC_CLNT_INT_H
#define RPCTLS_KRPC_CLNT_INT_H

#include "rpctls/krpc_clnt.h"

struct clnt_call {
    struct clnt_call *hnext;      /* XID hash chain */
    struct clnt_call *prev, *next; /* issue order (resend order after a reconnect) */
    struct krpc_clnt *cl;
    uint32_t xid, proc;
    struct mb_chain msg;          /* the encoded call, retained until the reply */
    krpc_call_fn fn;
    void *arg;
    struct krpc_timer timer;
    int tries;                    /* retransmissions so far */
    uint64_t sent_gen;            /* connection generation last sent on; 0: never */
    int status;                   /* on the done list: the status to report */
    struct clnt_call *done_next;
};

/* One per connection. The client lives until every one of its contexts
 * has closed (krpc_clnt_close), so cl is always valid here. */
struct clnt_connctx {
    struct krpc_clnt *cl;
    struct krpc_conn *conn;
    struct clnt_connctx *next;    /* the client's live contexts */
    uint64_t gen;
    int closing;                  /* we asked it to close; ignore messages */
    int got_msg;                  /* some message arrived: the TCP connection was made */
    int fatal;                    /* on close: fail outstanding calls with this (not retry) */
    uint64_t calls_sent;          /* call messages handed to this connection */
};

enum clnt_state {
    CL_IDLE = 0,      /* no connection, nothing to send */
    CL_PROBING,       /* connecting; AUTH_TLS probe sent, waiting for its reply */
    CL_HANDSHAKING,   /* krpc_conn_start_tls running */
    CL_READY,         /* calls flow */
    CL_WAIT,          /* waiting to reconnect (backoff timer armed) */
};

struct krpc_clnt {
    struct krpc_loop *loop;
    struct krpc_clnt_config cfg;  /* defaults filled in; strings owned */
    char label[160];              /* "server 127.0.0.1:2049" or cfg.name */
    enum clnt_state state;

    struct clnt_connctx *ctx;     /* current connection, NULL when none */
    struct clnt_connctx *ctxs;    /* every live context (current and closing) */
    uint64_t gen;                 /* connection generation counter */
    unsigned attempts;            /* connection attempts started */
    unsigned failures;            /* consecutive failed attempts */
    unsigned addr_idx;            /* address in use: 0 cfg.addr, i cfg.alt_addrs[i - 1] */
    int name_from_addr;           /* tlscfg.server_name is the address's IP: follows addr_idx */
    int tls_ctx_loaded;           /* cfg.tls_ctx is the one start_tls loaded (not the caller's) */
    char target[256];             /* label and the address being tried, for messages */
    char transport[160];          /* krpc_clnt_transport() */
    uint32_t probe_xid;
    int rekey_wait;               /* the TLS key is near its limit: new calls wait for the calls in
                                     flight to be answered, then the client reconnects */

    struct krpc_timer conn_timer;      /* connect + probe + handshake deadline */
    struct krpc_timer reconnect_timer; /* backoff */
    struct krpc_timer done_timer;      /* delivers completions queued outside the loop */

    uint32_t next_xid;
    struct clnt_call **buckets;
    size_t nbuckets;
    unsigned ncalls;
    struct clnt_call *head, *tail; /* issue order */
    struct clnt_call *done_head, *done_tail;

    /* Closing (krpc_clnt_close), as libuv's uv_close: closing is set at
     * once (no new calls, no reconnects); the teardown (calls cancelled,
     * connections closed) runs at once, or, when closed inside one of the
     * client's own callbacks (depth > 0), as the outermost of them returns
     * (close_pending). Once ctxs is empty close_timer runs close_cb and
     * frees the client, from the loop (or from krpc_loop_free). */
    int depth;                    /* nesting of loop callbacks into this client */
    int closing;
    int close_pending;            /* the teardown waits for depth to reach 0 */
    krpc_clnt_close_fn close_cb;
    void *close_arg;
    struct krpc_timer close_timer; /* a close timer: krpc_loop_free finishes it */

    int last_err;                 /* negative errno of the last connection-level failure */
    char last_error[512];

    struct krpc_clnt_stats stats; /* bytes of closed connections only */
    struct krpc_clnt_stats stats_out; /* what krpc_clnt_stats() last returned */
    struct ktls_stats tls_closed; /* sessions already closed */
};

/* clnt.c */
/* Around every loop callback into the client. The client's memory stays
 * valid across krpc__clnt_leave: it is only ever freed by its close timer. */
void krpc__clnt_enter(struct krpc_clnt *cl);
void krpc__clnt_leave(struct krpc_clnt *cl);
/* A closing client's connection has closed: finish when it was the last. */
void krpc__clnt_close_progress(struct krpc_clnt *cl);
void krpc__clnt_on_ready(struct krpc_clnt *cl);
void krpc__clnt_on_reply(struct krpc_clnt *cl, struct mb_chain *msg, uint32_t xid);
void krpc__clnt_fail_all(struct krpc_clnt *cl, int err);
void krpc__clnt_disconnected(struct krpc_clnt *cl);
uint32_t krpc__clnt_alloc_xid(struct krpc_clnt *cl);

/* clnt_conn.c */
void krpc__clnt_start_connect(struct krpc_clnt *cl);
void krpc__clnt_conn_close_all(struct krpc_clnt *cl);
void krpc__clnt_rekey_reconnect(struct krpc_clnt *cl);
void krpc__clnt_set_error(struct krpc_clnt *cl, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void krpc__clnt_fold_conn_stats(struct krpc_clnt *cl, struct krpc_conn *conn);
void krpc__clnt_reconnect_fn(struct krpc_loop *loop, struct krpc_timer *t, void *arg);
void krpc__clnt_conn_timer_fn(struct krpc_loop *loop, struct krpc_timer *t, void *arg);

#endif
