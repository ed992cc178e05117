/*
 * rpctls/krpc_svc.h - the RPC server: a listener, per-connection state, a
 * dispatch table by program, version and procedure, correct RPC errors, a
 * duplicate-request cache, limits, and RFC 9289 RPC-with-TLS.
 */
#ifndef RPCTLS_KRPC_SVC_H
#define RPCTLS_KRPC_SVC_H

#include "rpctls/krpc.h"

#include "rpctls/visibility.h"

#ifdef __cplusplus
extern "C" {
#endif

enum krpc_svc_tls {
    KRPC_SVC_TLS_OFF = 0,      /* no TLS: the AUTH_TLS probe is denied with AUTH_BADCRED, like a server that does not know the flavor */
    KRPC_SVC_TLS_OPTIONAL = 1, /* plain and TLS clients are both served */
    KRPC_SVC_TLS_REQUIRED = 2, /* outside TLS only the probe, the NULL procedure of every program and
                                  programs registered with KRPC_PROG_PLAIN_OK are served; the rest
                                  gets AUTH_TOOWEAK (the kernel servers' policy: NFS needs TLS,
                                  mountd and pings do not) */
};

struct krpc_svc;
struct krpc_svc_req;

/*
 * A procedure handler. args is bounded to the call's arguments; the handler
 * appends its results to res. Return KRPC_SUCCESS, KRPC_GARBAGE_ARGS (args
 * did not decode: res is discarded), KRPC_SYSTEM_ERR, KRPC_SVC_AUTH_TOOWEAK
 * (the caller's credential is not good enough for this call: MSG_DENIED
 * AUTH_ERROR AUTH_TOOWEAK, res discarded), or KRPC_SVC_DEFER to answer later
 * with krpc_svc_reply() (res is then ignored; its status may be any of the
 * others).
 */
#define KRPC_SVC_DEFER 1000
#define KRPC_SVC_AUTH_TOOWEAK 1001
typedef int (*krpc_proc_fn)(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res,
                            void *arg);

#define KRPC_PROC_IDEMPOTENT 0x1 /* replies are not kept in the duplicate-request cache */

struct krpc_proc_desc {
    krpc_proc_fn fn; /* NULL: PROC_UNAVAIL */
    unsigned flags;
    const char *name;
};

/* Under KRPC_SVC_TLS_REQUIRED, this program is served outside TLS too (and
 * inside it): MOUNT, which Linux, FreeBSD and libnfs clients send in the
 * clear before they start TLS for NFS. */
#define KRPC_PROG_PLAIN_OK 0x1
/* The program's handlers may run at the same time on several loops (a
 * server with cfg.threads > 1). Without it they run one at a time, under a
 * server-wide mutex, whatever loop the call arrived on. */
#define KRPC_PROG_MT_SAFE 0x2

struct krpc_prog_desc {
    uint32_t prog, vers;
    uint32_t nprocs;
    const struct krpc_proc_desc *procs; /* indexed by procedure number */
    void *arg;                          /* passed to every handler */
    unsigned flags;                     /* KRPC_PROG_PLAIN_OK, KRPC_PROG_MT_SAFE */
};

/* What a handler may know about the call. */
struct krpc_svc_req {
    uint32_t xid, prog, vers, proc;
    struct krpc_cred cred;
    int tls;                        /* arrived inside TLS */
    const char *peer_subject;       /* client certificate subject, "" if none */
    const char *peer_user;          /* "user@domain" from the client certificate's otherName SAN, "" if none
                                       (only from a certificate verified against the CA; see
                                       ktls_hs_peer_user for the rules) */
    struct sockaddr_storage peer;
    socklen_t peerlen;
    struct mb_chain msg;            /* the whole call message (args point into it) */
    /* private */
    struct krpc_svc *svc;
    void *conn;
    void *drc;
    void *home; /* the server loop the call arrived on */
};

struct krpc_svc_config {
    struct sockaddr_storage addr;   /* listen address (port 0: any) */
    socklen_t addrlen;
    enum krpc_svc_tls tls;
    struct ktls_config tlscfg;      /* role forced to server, ALPN "sunrpc" selected when offered;
                                       a client without ALPN is served unless require_alpn */
    size_t max_msg;                 /* 0: KRPC_RM_DEFAULT_MAX_MSG */
    unsigned max_conns;             /* all connections; 0: 4096 */
    unsigned max_outstanding;       /* calls in progress per connection; 0: 64 */
    int idle_timeout_ms;            /* 0: 300000; <0: never */
    /* Slow messages: an authenticated connection whose bytes of a message
     * (or of a TLS record) have been arriving for slow_msg_grace_ms, at
     * less than slow_msg_min_rate bytes per second on average since its
     * first byte, is cut (the idle timeout cannot see a peer that sends a
     * byte now and then). 0: 30000 ms and 1024 B/s; grace < 0: never. */
    int slow_msg_grace_ms;
    unsigned slow_msg_min_rate;
    unsigned drc_entries;           /* duplicate-request cache size; 0: 1024 */
    int handshake_timeout_ms;       /* a connection not yet authenticated (TLS under _REQUIRED, else its
                                       first call) this long after accept is cut; also the TLS handshake's
                                       own deadline. 0: 10000 */
    unsigned max_unauth_conns;      /* connections not yet authenticated; when full, a new one pushes the
                                       oldest out. 0: 256 (at most max_conns) */
    uint64_t max_memory;            /* bytes all connections may hold in buffers (received, queued);
                                       0: 1 GiB */
    unsigned threads;               /* event loops; 0 or 1: only the caller's. More: the server makes
                                       threads - 1 loops of its own, run by krpc_svc_start() */
    /* TLS context from ktls_ctx_new (the server takes a reference; its
     * config should be tlscfg's with alpn KRPC_ALPN). NULL: krpc_svc_new
     * loads one from tlscfg, failing with -EINVAL and an error log line
     * naming the file when it cannot. */
    struct ktls_ctx *tls_ctx;
};

struct krpc_svc_stats {
    uint64_t conns_accepted, conns_refused, conns_open;
    uint64_t calls, replies;
    uint64_t drc_hits;        /* retransmissions answered from the cache */
    uint64_t drc_in_progress; /* retransmissions dropped while the original runs */
    uint64_t rpc_mismatch, prog_unavail, prog_mismatch, proc_unavail, garbage_args, system_err;
    uint64_t auth_badcred, auth_tooweak;
    uint64_t tls_probes, tls_handshakes, tls_failures;
    uint64_t closed_malformed;  /* connections closed for bad framing or undecodable calls */
    uint64_t closed_idle;
    uint64_t closed_slow;       /* a message arriving below slow_msg_min_rate (authenticated peers) */
    uint64_t calls_dropped;     /* over max_outstanding, or too many unsent reply bytes */
    uint64_t conns_unauth;      /* gauge: open connections not yet authenticated */
    uint64_t closed_handshake_timeout; /* not authenticated within handshake_timeout_ms of accept */
    uint64_t closed_unauth_evicted;    /* pushed out by a newer one over max_unauth_conns */
    uint64_t closed_memory;     /* cut, or refused at accept, over max_memory */
    uint64_t log_suppressed;    /* connection log lines over the rate limit */
    uint64_t mem_used;          /* gauge: buffer bytes connections hold now */
};

RPCTLS_API int krpc_svc_new(struct krpc_loop *loop, const struct krpc_svc_config *cfg, struct krpc_svc **out);
/* Registers one program version (several versions: several calls). */
RPCTLS_API int krpc_svc_register(struct krpc_svc *svc, const struct krpc_prog_desc *prog);
/* Removes a registration (the owner of its handler argument is going away).
 * -ENOENT when not registered, -EBUSY once krpc_svc_start has run (the
 * table is then read by every loop without a lock). */
RPCTLS_API int krpc_svc_unregister(struct krpc_svc *svc, uint32_t prog, uint32_t vers);
/* The bound address (useful with port 0). */
RPCTLS_API int krpc_svc_addr(const struct krpc_svc *svc, struct sockaddr_storage *ss, socklen_t *len);
RPCTLS_API uint16_t krpc_svc_port(const struct krpc_svc *svc);
/* Answers a deferred call: status as a handler returns it; res (consumed)
 * holds the results for KRPC_SUCCESS. Frees req. */
RPCTLS_API void krpc_svc_reply(struct krpc_svc_req *req, int status, struct mb_chain *res);
/* The counters, refreshed on each call into one snapshot per server: call it
 * from one thread at a time. Counters are kept with atomic operations, so
 * krpc_svc_stats_get() copies them from any thread, also while loops run. */
RPCTLS_API const struct krpc_svc_stats *krpc_svc_stats(struct krpc_svc *svc);
/* Loads cfg (certificate, key, CA, policy; role, ALPN and the handshake
 * timeout as krpc_svc_new sets them) into a new TLS context for the
 * connections accepted from now on; connections already up, and handshakes
 * already running, keep the context they started with. On failure returns
 * a negative errno with err naming the file and the problem, and the
 * current context stays. Safe from any thread. */
RPCTLS_API int krpc_svc_reload_tls(struct krpc_svc *svc, const struct ktls_config *cfg, char *err, size_t errlen);
RPCTLS_API void krpc_svc_stats_get(const struct krpc_svc *svc, struct krpc_svc_stats *out);

/*
 * Several event loops (cfg.threads > 1). The caller's loop accepts and
 * serves connections too; krpc_svc_start() runs the server's other loops,
 * one thread each, and from then on accepted connections are handed to the
 * loop with the fewest connections. Register every program before. The
 * caller keeps running its own loop. krpc_svc_stop() stops and joins those
 * threads (connections on them stay until krpc_svc_free). Both return 0 or
 * -errno; with one loop they do nothing.
 */
RPCTLS_API int krpc_svc_start(struct krpc_svc *svc);
RPCTLS_API void krpc_svc_stop(struct krpc_svc *svc);
RPCTLS_API unsigned krpc_svc_threads(const struct krpc_svc *svc);
/* The loop that owns the request's connection. A deferred call must be
 * answered with krpc_svc_reply() on that loop's thread. NULL for a detached
 * server. */
RPCTLS_API struct krpc_loop *krpc_svc_req_loop(const struct krpc_svc_req *req);
/* fn(arg) runs at the start of krpc_svc_free, before deferred requests are
 * freed: a holder of deferred requests (a worker pool) stops and forgets
 * them there. One hook; NULL removes it. */
RPCTLS_API void krpc_svc_set_free_hook(struct krpc_svc *svc, void (*fn)(void *arg), void *arg);
/* Stops the server's threads, closes the listener and every connection;
 * deferred calls are dropped. */
RPCTLS_API void krpc_svc_free(struct krpc_svc *svc);

#ifdef __cplusplus
}
#endif

#endif
