/*
 * rpctls/krpc.h - ONC RPC v2 (RFC 5531) on buffer chains: message headers,
 * record marking, the event loop and stream connections (plain TCP or the
 * ktls record layer after an RFC 9289 STARTTLS). The client is in
 * krpc_clnt.h, the server in krpc_svc.h.
 *
 * Threading: a struct krpc_loop and everything attached to it (timers,
 * connections, clients, servers) belong to the thread that runs the loop.
 * Run several loops in several threads to use several cores.
 */
#ifndef RPCTLS_KRPC_H
#define RPCTLS_KRPC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "rpctls/ktls.h"
#include "rpctls/mbuf.h"
#include "rpctls/xdr.h"

#include "rpctls/visibility.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- protocol constants (RFC 5531, RFC 9289) ----------------------------- */

#define KRPC_RPCVERS 2
#define KRPC_MSG_CALL 0
#define KRPC_MSG_REPLY 1
#define KRPC_MSG_ACCEPTED 0
#define KRPC_MSG_DENIED 1

enum krpc_accept_stat {
    KRPC_SUCCESS = 0,
    KRPC_PROG_UNAVAIL = 1,
    KRPC_PROG_MISMATCH = 2,
    KRPC_PROC_UNAVAIL = 3,
    KRPC_GARBAGE_ARGS = 4,
    KRPC_SYSTEM_ERR = 5,
};
enum krpc_reject_stat { KRPC_RPC_MISMATCH = 0, KRPC_AUTH_ERROR = 1 };
enum krpc_auth_stat {
    KRPC_AUTH_OK = 0,
    KRPC_AUTH_BADCRED = 1,
    KRPC_AUTH_REJECTEDCRED = 2,
    KRPC_AUTH_BADVERF = 3,
    KRPC_AUTH_REJECTEDVERF = 4,
    KRPC_AUTH_TOOWEAK = 5,
};
enum krpc_auth_flavor { KRPC_AUTH_NONE = 0, KRPC_AUTH_SYS = 1, KRPC_AUTH_TLS = 7 };

#define KRPC_MAX_AUTH_BYTES 400 /* RFC 5531: opaque_auth body <= 400 bytes */
#define KRPC_AUTH_SYS_MAX_MACHINE 255
#define KRPC_AUTH_SYS_MAX_GIDS 16
#define KRPC_STARTTLS_VERF "STARTTLS" /* RFC 9289: verifier body of the probe reply */
#define KRPC_ALPN "sunrpc"

/* A credential. AUTH_NONE and AUTH_TLS have empty bodies. */
struct krpc_cred {
    uint32_t flavor;
    uint32_t stamp;
    char machine[KRPC_AUTH_SYS_MAX_MACHINE + 1];
    uint32_t uid, gid;
    uint32_t ngids;
    uint32_t gids[KRPC_AUTH_SYS_MAX_GIDS];
};

struct krpc_call_hdr {
    uint32_t xid;
    uint32_t rpcvers; /* decoded as sent; encoders write KRPC_RPCVERS */
    uint32_t prog, vers, proc;
    struct krpc_cred cred;
    uint32_t verf_flavor; /* verifier body is not kept (AUTH_NONE/SYS have none) */
};

struct krpc_reply_hdr {
    uint32_t xid;
    uint32_t reply_stat;  /* KRPC_MSG_ACCEPTED or KRPC_MSG_DENIED */
    uint32_t accept_stat; /* enum krpc_accept_stat, when accepted */
    uint32_t reject_stat; /* enum krpc_reject_stat, when denied */
    uint32_t auth_stat;   /* enum krpc_auth_stat, when denied with AUTH_ERROR */
    uint32_t mismatch_low, mismatch_high; /* PROG_MISMATCH / RPC_MISMATCH */
    uint32_t verf_flavor;
    uint32_t verf_len;
    uint8_t verf[KRPC_MAX_AUTH_BYTES];
};

RPCTLS_API void krpc_encode_call_hdr(struct krpc_xdr_enc *x, const struct krpc_call_hdr *h);
/* Decodes a call header up to the start of the arguments. Returns 0, or
 * -EBADMSG for a malformed header (credential over 400 bytes, AUTH_SYS body
 * inconsistent, not a call). An RPC version other than 2 decodes fine (the
 * caller answers RPC_MISMATCH). */
RPCTLS_API int krpc_decode_call_hdr(struct krpc_xdr_dec *d, struct krpc_call_hdr *h);
/* Encodes an accepted reply header up to the results (or the mismatch
 * range for PROG_MISMATCH), or a denied reply in full. */
RPCTLS_API void krpc_encode_reply_hdr(struct krpc_xdr_enc *x, const struct krpc_reply_hdr *h);
RPCTLS_API int krpc_decode_reply_hdr(struct krpc_xdr_dec *d, struct krpc_reply_hdr *h);
RPCTLS_API const char *krpc_accept_stat_name(uint32_t s);
RPCTLS_API const char *krpc_auth_stat_name(uint32_t s);

/* ---- record marking (RFC 5531 section 11) -------------------------------- */

#define KRPC_RM_LAST 0x80000000u
#define KRPC_RM_DEFAULT_MAX_MSG (4u << 20)

/* Prepends fragment headers to msg (consumed), cutting it into fragments of
 * at most max_frag bytes (0: one fragment), and appends the result to out.
 * An empty msg gives one empty last fragment. On failure (-ENOMEM) msg is
 * freed and out is unchanged. */
RPCTLS_API int krpc_rm_frame(struct mb_chain *msg, size_t max_frag, struct mb_chain *out);

/* Reassembles messages from stream bytes in any segmentation. */
struct krpc_rm_reader {
    size_t max_msg;        /* larger messages are an error */
    struct mb_chain in;    /* bytes received, not yet parsed */
    struct mb_chain msg;   /* fragments of the message being assembled */
    uint32_t frag_left;    /* bytes still due in the current fragment */
    int in_frag;           /* a fragment header has been read */
    int last;              /* the current fragment is the last */
    int err;               /* sticky: the error next() returned, 0 while fine */
};

/* max_msg 0: KRPC_RM_DEFAULT_MAX_MSG. */
RPCTLS_API void krpc_rm_reader_init(struct krpc_rm_reader *r, size_t max_msg);
RPCTLS_API void krpc_rm_reader_free(struct krpc_rm_reader *r);
/* Appends stream bytes (consumed). */
RPCTLS_API void krpc_rm_reader_feed(struct krpc_rm_reader *r, struct mb_chain *data);
/* Moves the next complete message to msg (empty on entry). Returns 1 when a
 * message was produced, 0 when more bytes are needed, -EMSGSIZE when the
 * message being assembled exceeds max_msg (checked as soon as a fragment
 * header announces it). After an error the reader is unusable. */
RPCTLS_API int krpc_rm_reader_next(struct krpc_rm_reader *r, struct mb_chain *msg);

/* ---- logging ------------------------------------------------------------- */

enum krpc_log_level { KRPC_LOG_ERROR = 0, KRPC_LOG_WARN = 1, KRPC_LOG_INFO = 2, KRPC_LOG_DEBUG = 3 };
/* Messages at or below the level go to stderr (default: WARN; env
 * RPCTLS_LOG=error|warn|info|debug). */
RPCTLS_API void krpc_log_set_level(enum krpc_log_level level);
RPCTLS_API void krpc_log(enum krpc_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- event loop ---------------------------------------------------------- */

struct krpc_loop;

RPCTLS_API uint64_t krpc_now_ms(void); /* CLOCK_MONOTONIC */

RPCTLS_API int krpc_loop_new(struct krpc_loop **out);
/* Every fd must have been removed and every timer cancelled, except the
 * closes still under way (close timers, krpc_timer_init_close): those are
 * finished here, so that a client or connection closed just before its
 * loop is freed is still released (krpc_clnt_free(cl); krpc_loop_free(loop)
 * leaks nothing). Only close timers run; any other timer still armed is
 * dropped without running. */
RPCTLS_API void krpc_loop_free(struct krpc_loop *loop);

/* epoll events: EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP. */
typedef void (*krpc_fd_fn)(struct krpc_loop *loop, int fd, uint32_t events, void *arg);
RPCTLS_API int krpc_loop_add_fd(struct krpc_loop *loop, int fd, uint32_t events, krpc_fd_fn fn, void *arg);
RPCTLS_API int krpc_loop_mod_fd(struct krpc_loop *loop, int fd, uint32_t events);
RPCTLS_API int krpc_loop_del_fd(struct krpc_loop *loop, int fd);

struct krpc_timer;
typedef void (*krpc_timer_fn)(struct krpc_loop *loop, struct krpc_timer *t, void *arg);
struct krpc_timer {
    uint64_t due_ms;   /* valid while armed */
    krpc_timer_fn fn;
    void *arg;
    int armed;
    int closes;        /* finishes a close: krpc_loop_free runs it (krpc_timer_init_close) */
    size_t heap_index; /* loop-private */
};
RPCTLS_API void krpc_timer_init(struct krpc_timer *t, krpc_timer_fn fn, void *arg);
/* A timer that finishes closing an object (its last callbacks, then its
 * memory): it runs from the loop as any timer, and krpc_loop_free runs it
 * too if it is still armed then. Its callback must not re-arm it for ever:
 * it runs from krpc_loop_free with nothing else of the loop running. */
RPCTLS_API void krpc_timer_init_close(struct krpc_timer *t, krpc_timer_fn fn, void *arg);
/* (Re)arms t to fire once, after_ms from now. */
RPCTLS_API int krpc_timer_arm(struct krpc_loop *loop, struct krpc_timer *t, uint64_t after_ms);
RPCTLS_API void krpc_timer_cancel(struct krpc_loop *loop, struct krpc_timer *t);

/* Waits at most timeout_ms (-1: until something happens) and dispatches
 * ready fds and due timers once. Returns the number dispatched or -errno. */
RPCTLS_API int krpc_loop_run_once(struct krpc_loop *loop, int timeout_ms);
/* Runs until *done becomes non-zero, krpc_loop_stop() is called, or
 * timeout_ms passes (-1: no limit). Returns 0, -ETIMEDOUT or -errno. */
RPCTLS_API int krpc_loop_run(struct krpc_loop *loop, const int *done, int timeout_ms);
/* Makes krpc_loop_run return; safe from another thread (eventfd). */
RPCTLS_API void krpc_loop_stop(struct krpc_loop *loop);

/* ---- stream connections -------------------------------------------------- */

struct krpc_conn;

struct krpc_conn_ops {
    /* A complete RPC message (record marks removed). msg is the callee's. */
    void (*on_msg)(struct krpc_conn *c, struct mb_chain *msg, void *arg);
    /* The connection is closed (err: 0 orderly, else -errno / -EPROTO /
     * -EMSGSIZE / -EBADMSG). Called once; the conn is freed after it returns. */
    void (*on_close)(struct krpc_conn *c, int err, void *arg);
    /* After krpc_conn_start_tls: 0 when the record layer runs, else the
     * failure (the connection then closes, on_close follows). */
    void (*on_tls)(struct krpc_conn *c, int err, const char *msg, void *arg);
};

struct krpc_conn_config {
    size_t max_msg;          /* 0: KRPC_RM_DEFAULT_MAX_MSG */
    size_t max_frag;         /* fragment size when sending; 0: one fragment per message */
    size_t max_send_queue;   /* krpc_conn_send fails with -ENOBUFS beyond this; 0: no limit */
};

/* Takes ownership of a connected (or connecting) non-blocking TCP socket
 * on success; on failure the caller still owns fd. */
RPCTLS_API int krpc_conn_new(struct krpc_loop *loop, int fd, const struct krpc_conn_config *cfg,
                             const struct krpc_conn_ops *ops, void *arg, struct krpc_conn **out);
/* Queues one RPC message (consumed) for sending; record marks are added
 * here and the bytes go through TLS when it is on. While a handshake runs,
 * messages wait. */
RPCTLS_API int krpc_conn_send(struct krpc_conn *c, struct mb_chain *msg);
/* Stops delivering messages, then runs the TLS handshake (cfg->role says
 * client or server; ALPN "sunrpc", strict only with cfg->require_alpn) on
 * the same socket. Messages already queued before the call go out in the
 * clear first. */
RPCTLS_API int krpc_conn_start_tls(struct krpc_conn *c, const struct ktls_config *cfg);
/* The same with a context loaded once (ktls_ctx_new; its ALPN should be
 * KRPC_ALPN); the handshake takes its own reference. */
RPCTLS_API int krpc_conn_start_tls_ctx(struct krpc_conn *c, struct ktls_ctx *ctx);
/* The same for a client connecting to server_name (ktls_hs_new_ctx_name):
 * one context for connections to several servers. */
RPCTLS_API int krpc_conn_start_tls_name(struct krpc_conn *c, struct ktls_ctx *ctx, const char *server_name);
/* Closes now: on_close(err) runs from the loop, not from inside this call. */
RPCTLS_API void krpc_conn_close(struct krpc_conn *c, int err);
/* For an owner going away: closes (a best-effort close_notify in TLS) and
 * frees at once, with no further callbacks. Called from inside one of the
 * connection's own callbacks, the freeing finishes from the loop. */
RPCTLS_API void krpc_conn_free(struct krpc_conn *c);
RPCTLS_API int krpc_conn_is_tls(const struct krpc_conn *c);
RPCTLS_API const char *krpc_conn_peer_subject(const struct krpc_conn *c); /* "" when none */
/* "user@domain" from the verified client certificate's otherName
 * subjectAltName (ktls_hs_peer_user), "" when none. */
RPCTLS_API const char *krpc_conn_peer_user(const struct krpc_conn *c);
/* Why the record layer ended the connection, naming the alert sent or
 * received by its RFC 8446 name ("a record failed authentication; sent
 * alert bad_record_mac (20)"); "" when it did not. Valid in on_close. */
RPCTLS_API const char *krpc_conn_tls_error(const struct krpc_conn *c);
/* Record-layer counters, NULL when not TLS. */
RPCTLS_API const struct ktls_stats *krpc_conn_tls_stats(const struct krpc_conn *c);
/* The TLS 1.3 cipher suite (enum ktls_cipher, e.g. 0x1301), 0 when not TLS. */
RPCTLS_API int krpc_conn_tls_cipher(const struct krpc_conn *c);
/* Application-data records the TLS key can still protect before the
 * connection must be replaced (ktls_conn_tx_records_left); UINT64_MAX when
 * not TLS or when the record layer rekeys itself (KeyUpdate opt-in). */
RPCTLS_API uint64_t krpc_conn_tls_records_left(const struct krpc_conn *c);
RPCTLS_API size_t krpc_conn_send_queued(const struct krpc_conn *c);
RPCTLS_API int krpc_conn_fd(const struct krpc_conn *c);
RPCTLS_API uint64_t krpc_conn_bytes_sent(const struct krpc_conn *c);     /* wire bytes */
RPCTLS_API uint64_t krpc_conn_bytes_received(const struct krpc_conn *c);
/* krpc_now_ms() when the last byte was read or written through our own
 * socket I/O (as the byte counters count), or when the connection was made. */
RPCTLS_API uint64_t krpc_conn_last_io_ms(const struct krpc_conn *c);
/* 1 while bytes have arrived that are not yet a whole message (a message
 * or a TLS record of one under way): *since_ms gets when the first of them
 * came (krpc_now_ms), *bytes the wire bytes read since then, themselves
 * included. 0 once a message is delivered, until more bytes come. */
RPCTLS_API int krpc_conn_partial_msg(const struct krpc_conn *c, uint64_t *since_ms, uint64_t *bytes);

/*
 * Limits a server sets on a connection it does not trust yet, and lifts
 * later. max_msg: largest message the record-marking reader accepts from now
 * on (0: the config's); checked at the next record mark. rx_chunk: size of
 * the plain-mode receive store allocated from now on (0: 64 KiB); a small
 * store keeps an idle or dripping connection from pinning 64 KiB of pages.
 */
RPCTLS_API void krpc_conn_set_rx_limits(struct krpc_conn *c, size_t max_msg, size_t rx_chunk);

/*
 * Buffer memory shared by many connections, on any number of threads: each
 * attached connection charges the bytes it holds (send queue, messages held
 * for a handshake, incomplete received messages, its unfilled receive store)
 * and updates the charge after reads and sends. When a read makes a
 * connection's charge grow while `used` is over `limit`, and the connection
 * holds more than `floor`, it is closed with -ENOBUFS: the connection that
 * grows is the one cut, small ones carry on. limit 0: count only.
 */
struct krpc_membudget {
    uint64_t limit;
    uint64_t used;  /* updated with __atomic builtins; read it with __atomic_load_n */
    uint64_t floor;
};
/* Attaches c to b (NULL detaches), charging what c holds now. b must outlive c. */
RPCTLS_API void krpc_conn_set_membudget(struct krpc_conn *c, struct krpc_membudget *b);
/* Bytes c holds in buffers now (what it charges to its budget). */
RPCTLS_API size_t krpc_conn_mem(const struct krpc_conn *c);

/* Address helpers: "HOST:PORT", "[V6]:PORT" or "PORT" (127.0.0.1). HOST is
 * numeric or "localhost"; this never blocks on DNS. */
RPCTLS_API int krpc_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len);

/* Resolves host (a DNS name, an IPv4 literal or an IPv6 literal, with or
 * without brackets) with getaddrinfo for TCP and fills up to max addresses
 * with port set, in the resolver's order, duplicates dropped. passive: for a
 * listener (AI_PASSIVE). Returns the number of addresses (>= 1) or a
 * negative errno (-ENOENT: the name does not resolve; -EINVAL: bad
 * arguments); err (may be NULL) receives "host: gai_strerror" on failure. */
#define KRPC_MAX_ADDRS 8
RPCTLS_API int krpc_resolve(const char *host, uint16_t port, int passive, struct sockaddr_storage *out, socklen_t *lens,
                            unsigned max, char *err, size_t errlen);
/* Splits "HOST:PORT", "[V6]:PORT" or "HOST" (port = default_port) into its
 * parts; host receives the name without brackets. Returns 0 or -EINVAL. */
RPCTLS_API int krpc_split_hostport(const char *s, uint16_t default_port, char *host, size_t hostlen, uint16_t *port);
/* "a.b.c.d:port" / "[v6]:port" into buf. */
RPCTLS_API const char *krpc_format_addr(const struct sockaddr *sa, char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif
