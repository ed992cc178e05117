/*
 * rpctls/krpc_clnt.h - the RPC client: asynchronous calls on one connection,
 * retransmission from retained references, reconnection with a fresh RFC
 * 9289 probe and TLS handshake, AUTH_NONE / AUTH_SYS.
 *
 * Every call message (header + arguments) is encoded once and kept by
 * reference until its reply arrives; timeouts and reconnects resend that
 * same chain, bit for bit, never a re-encoding. Sending goes through the
 * record layer, which never encrypts the retained pages in place (unless the
 * connection's TX mode is the unsafe KTLS_TX_UNSAFE_INPLACE).
 *
 * The client never sends a TLS KeyUpdate (unless tlscfg.key_update_bytes
 * opts in): kernel-TLS servers cannot follow one. Before a call would take
 * the connection's key near its AEAD usage limit, the client closes the
 * connection and reconnects with a fresh probe and handshake; calls in
 * flight are resent from their retained chains (stats.rekey_reconnects).
 */
#ifndef RPCTLS_KRPC_CLNT_H
#define RPCTLS_KRPC_CLNT_H

#include "rpctls/krpc.h"

#include "rpctls/visibility.h"

#ifdef __cplusplus
extern "C" {
#endif

enum krpc_tls_policy {
    KRPC_TLS_OFF = 0,           /* plain TCP */
    KRPC_TLS_OPPORTUNISTIC = 1, /* TLS when the server offers it, else plain */
    KRPC_TLS_REQUIRED = 2,      /* fail when the server does not offer TLS */
};

struct krpc_clnt_config {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    /* More addresses of the same server (a host name that resolved to
     * several, from krpc_resolve): a connection attempt that fails before
     * any byte came back moves on to the next address, round robin. */
    struct sockaddr_storage alt_addrs[KRPC_MAX_ADDRS - 1];
    socklen_t alt_addrlens[KRPC_MAX_ADDRS - 1];
    unsigned nalt_addrs;
    uint32_t prog, vers;
    struct krpc_cred cred;        /* flavor KRPC_AUTH_NONE (0) or KRPC_AUTH_SYS */
    enum krpc_tls_policy tls;
    struct ktls_config tlscfg;    /* role, alpn forced to client / "sunrpc" (offered; the server
                                     may select none unless require_alpn); server_name NULL:
                                     the address's IP is checked against the certificate */
    int timeout_ms;               /* per attempt before a retransmission; 0: 5000 */
    int max_retries;              /* retransmissions per call before -ETIMEDOUT; 0: 5, <0: none */
    int connect_timeout_ms;       /* TCP connect + probe + handshake; 0: 10000 */
    int reconnect_delay_ms;       /* wait before reconnecting; 0: 100 (doubles, up to 2 s) */
    unsigned max_reconnects;      /* consecutive failed reconnects before outstanding calls fail; 0: 10 */
    size_t max_msg;               /* largest reply; 0: KRPC_RM_DEFAULT_MAX_MSG */
    size_t max_frag;              /* record-marking fragment size when sending; 0: one fragment */
    const char *name;             /* for log and error messages, e.g. "mirror 127.0.0.1:2049" */
    struct sockaddr_storage src_addr; /* bound before connecting when src_addrlen != 0 (port 0: any) */
    socklen_t src_addrlen;
    /* A TLS context loaded once (ktls_ctx_new: role KTLS_CLIENT, alpn
     * KRPC_ALPN) for every handshake of this client, and possibly of other
     * clients, to other servers too (each takes its own reference). The
     * name checked against the certificate is the context's server_name
     * when it has one, else tlscfg.server_name or the address tried. NULL:
     * the client loads one from tlscfg at its first handshake and keeps it
     * for its reconnects until a handshake fails (then the next attempt
     * reads the files again: renewed certificates are picked up). */
    struct ktls_ctx *tls_ctx;
};

struct krpc_clnt_stats {
    uint64_t calls;        /* calls started */
    uint64_t replies;      /* calls that got a reply */
    uint64_t failures;     /* calls that ended without a reply */
    uint64_t retransmits;  /* resends after a timeout or a reconnect */
    uint64_t reconnects;   /* connections made after the first */
    uint64_t rekey_reconnects; /* of those, made because the TLS key neared its usage limit */
    uint64_t tls_handshakes;
    uint64_t bytes_sent;   /* wire bytes, all connections */
    uint64_t bytes_received;
};

/* A reply. For an accepted SUCCESS, decode the results with res, which is
 * bounded to the message; the bytes stay valid until krpc_reply_free. */
struct krpc_reply {
    struct krpc_reply_hdr hdr;
    struct mb_chain msg;
    struct krpc_xdr_dec res;
};
RPCTLS_API void krpc_reply_free(struct krpc_reply *r);
/* Moves a reply to dst (header, message and a decoder repointed at dst's
 * message); src is left empty. A callback's reply lives only until the
 * callback returns: keep it with krpc_reply_move. */
RPCTLS_API void krpc_reply_move(struct krpc_reply *dst, struct krpc_reply *src);

struct krpc_clnt;

/* status: 0 when a reply arrived (check reply->hdr; it is the callee's to
 * krpc_reply_free or krpc_reply_move; whatever is left when the callback
 * returns is freed by the client), or a negative errno with reply NULL: -ETIMEDOUT (retry
 * limit), -ECONNREFUSED / -EHOSTUNREACH ... (could not reconnect),
 * -EPROTONOSUPPORT (TLS required, server does not offer it), -EPROTO
 * (handshake or protocol failure), -ECANCELED (client freed). */
typedef void (*krpc_call_fn)(struct krpc_clnt *cl, int status, struct krpc_reply *reply, void *arg);

RPCTLS_API int krpc_clnt_new(struct krpc_loop *loop, const struct krpc_clnt_config *cfg, struct krpc_clnt **out);
/*
 * Closing, asynchronous as libuv's uv_close. krpc_clnt_close fails every
 * outstanding call with -ECANCELED -- their callbacks run before it
 * returns, so nothing the caller owns is touched by the client afterwards
 * -- makes new calls fail with -ECANCELED and closes the connections. When
 * every connection has closed (its socket is gone from the loop), cb (if
 * not NULL) runs from the loop, never inside krpc_clnt_close, and the
 * client's memory is released after cb returns. Called inside one of the
 * client's own callbacks (a reply's, say), the same happens as that
 * callback returns. The client must not be used after krpc_clnt_close
 * except by cb; closing it again before cb has run is ignored.
 *
 * The loop must run, or be freed, for the close to finish: krpc_loop_free
 * finishes every close still under way (cb runs then), so
 * "krpc_clnt_free(cl); krpc_loop_free(loop);" leaks nothing. Nothing but
 * this client's callbacks runs inside krpc_clnt_close or krpc_clnt_free.
 */
typedef void (*krpc_clnt_close_fn)(struct krpc_clnt *cl, void *arg);
RPCTLS_API void krpc_clnt_close(struct krpc_clnt *cl, krpc_clnt_close_fn cb, void *arg);
/* krpc_clnt_close without a callback. */
RPCTLS_API void krpc_clnt_free(struct krpc_clnt *cl);
/* Starts a call; args (consumed) are the encoded arguments. The callback
 * always runs later from the loop, never from inside this call. *xid (if not
 * NULL) receives the call's XID. */
RPCTLS_API int krpc_call_async(struct krpc_clnt *cl, uint32_t proc, struct mb_chain *args, krpc_call_fn fn, void *arg,
                               uint32_t *xid);
/* The same with the credential of this one call (NULL: the client's
 * cfg.cred), for a client that acts for several users (rpctls-mount: the
 * calling process's uid, gid and groups). -EINVAL for a flavor other than
 * AUTH_NONE / AUTH_SYS or more than KRPC_AUTH_SYS_MAX_GIDS groups. */
RPCTLS_API int krpc_call_async_cred(struct krpc_clnt *cl, uint32_t proc, const struct krpc_cred *cred,
                                    struct mb_chain *args, krpc_call_fn fn, void *arg, uint32_t *xid);
/* Blocking wrapper: runs the client's loop until the call completes. */
RPCTLS_API int krpc_call(struct krpc_clnt *cl, uint32_t proc, struct mb_chain *args, struct krpc_reply *reply);
RPCTLS_API int krpc_call_cred(struct krpc_clnt *cl, uint32_t proc, const struct krpc_cred *cred, struct mb_chain *args,
                              struct krpc_reply *reply);
/* Maps a reply header to 0 (accepted SUCCESS) or a negative errno-style
 * code, with a message in buf: "PROG_MISMATCH (supported 2..3)",
 * "AUTH_ERROR: AUTH_TOOWEAK" and so on. */
RPCTLS_API int krpc_reply_status(const struct krpc_reply_hdr *h, char *buf, size_t len);
RPCTLS_API unsigned krpc_clnt_outstanding(const struct krpc_clnt *cl);
/* The counters, copied into out. */
RPCTLS_API void krpc_clnt_stats_get(const struct krpc_clnt *cl, struct krpc_clnt_stats *out);
/* The same into a snapshot kept in the client, refreshed on each call. */
RPCTLS_API const struct krpc_clnt_stats *krpc_clnt_stats(struct krpc_clnt *cl);
/* Record-layer counters summed over every TLS session this client made. */
RPCTLS_API void krpc_clnt_tls_stats(const struct krpc_clnt *cl, struct ktls_stats *out);
RPCTLS_API int krpc_clnt_is_tls(const struct krpc_clnt *cl); /* current connection */
/* How the last connection that became usable travelled, for reports:
 * "127.0.0.1:2049 TLS (TLS_AES_128_GCM_SHA256)", "127.0.0.1:2049 plain",
 * "127.0.0.1:20048 plain (server refused the RPC-with-TLS probe)"; "" when
 * no connection has become usable yet. */
RPCTLS_API const char *krpc_clnt_transport(const struct krpc_clnt *cl);
/* The last connection-level error in words ("" if none), for messages. */
RPCTLS_API const char *krpc_clnt_last_error(const struct krpc_clnt *cl);
RPCTLS_API struct krpc_loop *krpc_clnt_loop(const struct krpc_clnt *cl);

#ifdef __cplusplus
}
#endif

#endif
