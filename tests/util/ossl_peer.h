/*
 * tests/util/ossl_peer.h - a stock OpenSSL TLS peer in a thread.
 *
 * The peer runs on one end of a connected socket, does a normal OpenSSL
 * handshake and then a scripted exchange with plain SSL_read/SSL_write. It
 * pumps the socket through memory BIOs itself, which lets a client put its
 * Finished and its first application data in one write (coalesce_first_write)
 * - the case the hand-off of buffered bytes exists for.
 */
#ifndef RPCTLS_TEST_OSSL_PEER_H
#define RPCTLS_TEST_OSSL_PEER_H

#include <stddef.h>
#include <stdint.h>

#include "rpctls/ktls.h"

enum tu_op_kind {
    TU_OP_END = 0,
    /* Send n bytes of stream seed in writes cycling through tu_write_sizes
     * (starting at index first_size); with key_update_at > 0 call
     * SSL_key_update(SSL_KEY_UPDATE_REQUESTED) after that many bytes. */
    TU_OP_SEND,
    /* Receive exactly n bytes (hashed into the receive digest). */
    TU_OP_RECV,
    /* Receive (and hash) until the other side's close_notify. */
    TU_OP_RECV_EOF,
    /* SSL_key_update(SSL_KEY_UPDATE_REQUESTED) now (goes out with the next write). */
    TU_OP_KEY_UPDATE,
    /* Send close_notify (SSL_shutdown); unless the other side's close_notify
     * already arrived, wait for it (data arriving meanwhile is hashed). */
    TU_OP_CLOSE,
};

struct tu_op {
    enum tu_op_kind kind;
    uint64_t n;
    uint64_t key_update_at;
    uint32_t seed;
    unsigned first_size;
};

#define TU_PEER_MAX_OPS 16

struct tu_peer_cfg {
    enum ktls_role role;       /* the peer's role */
    const char *cert_file;     /* NULL: none */
    const char *key_file;
    const char *ca_file;       /* verify the other side against this (NULL: no verification) */
    int require_peer_cert;     /* server: fail without a client certificate */
    const char *verify_host;   /* client: name to check ("localhost", "127.0.0.1"); NULL: none */
    const char *ciphersuites;  /* NULL: OpenSSL default */
    const char *alpn;          /* client: offered (a comma-separated list); server: accepted
                                  if offered. NULL: none */
    int alpn_select_always;    /* server: select alpn even when the client did not offer it */
    int tls12_only;            /* min = max = TLS 1.2 */
    int no_tickets;            /* server: send no NewSessionTickets */
    int coalesce_first_write;  /* client: first SEND write goes out with the Finished */
    int timeout_ms;            /* socket timeouts; 0: 30000 */
    struct tu_op ops[TU_PEER_MAX_OPS]; /* ends at TU_OP_END */
};

struct tu_peer_result {
    int ok;               /* handshake and whole script succeeded */
    int handshake_ok;
    char err[512];        /* first failure */
    char alpn[64];        /* negotiated, "" if none */
    char cipher[64];      /* negotiated suite name */
    uint64_t sent, received;
    uint8_t sent_sha[32], recv_sha[32];
    int got_close_notify;
    int key_updates;      /* SSL_key_update calls made */
};

struct tu_peer;

/* Starts the peer thread on fd; the peer owns fd from now on and closes it. */
int tu_peer_start(const struct tu_peer_cfg *cfg, int fd, struct tu_peer **out);
/* Waits for the peer to finish its script, fills res, frees the peer. */
void tu_peer_join(struct tu_peer *p, struct tu_peer_result *res);

/* ---- an rpc.tlsservd-like TLS server, as a util/rpc_peer.h transport ------
 *
 * FreeBSD's rpc.tlsservd (usr.sbin/rpc.tlsservd/rpc.tlsservd.c,
 * rpctls_setup_ssl() and rpctls_server()): SSL_CTX_new(TLS_server_method()),
 * SSL_CTX_set_ecdh_auto(), TLS 1.3 only (rpctls_mintls defaults to
 * TLS1_3_VERSION, the maximum is TLS1_3_VERSION), the certificate and key,
 * with -m (mutual) a client certificate asked for with SSL_VERIFY_PEER and a
 * verify callback that lets every handshake through (the kernel applies
 * the policy afterwards), no ALPN callback, and the NewSessionTicket count
 * left at OpenSSL's default: 2 tickets go out right after the handshake.
 * Then SSL_set_fd() and a blocking SSL_accept() on the socket that the
 * kernel (sys/rpc/rpcsec_tls/rpctls_impl.c) handed over after its
 * STARTTLS reply. */
struct tu_ossl_srv_cfg {
    const char *cert_file;
    const char *key_file;
    const char *ca_file; /* with mutual: the CA list sent to clients */
    int mutual;          /* rpc.tlsservd -m */
};

struct tu_xprt;
/* tu_srv_cfg.start_tls (arg: a struct tu_ossl_srv_cfg) and describe. */
int tu_ossl_srv_start_tls(struct tu_xprt *x, int fd, void *arg);
/* "TLSv1.3 TLS_AES_128_GCM_SHA256 alpn=none tickets=2 client-cert=1" */
void tu_ossl_describe(struct tu_xprt *x, char *buf, size_t len);

#endif
