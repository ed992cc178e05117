/*
 * tests/util/gnutls_peer.h - GnuTLS sessions configured as the deployed
 * GnuTLS users of RPC-with-TLS configure theirs, as struct tu_xprt
 * transports for util/rpc_peer.h. Linked only into the tests that need it
 * (Debian: libgnutls28-dev).
 *
 * Profiles, from the peers' sources:
 *
 *   TU_GT_TLSHD   ktls-utils tlshd (src/tlshd/ktls.c,
 *                 tlshd_gnutls_priority_init(): the system default priority
 *                 with "-COMP-ALL:-VERS-ALL:+VERS-TLS1.3:%NO_TICKETS:
 *                 -CIPHER-ALL:+CHACHA20-POLY1305:+AES-256-GCM:+AES-128-GCM
 *                 :+AES-128-CCM" appended, GNUTLS_PRIORITY_INIT_DEF_APPEND).
 *                 Client (src/tlshd/client.c): SNI and certificate check
 *                 against the peer name; x509 ("mtls") mode presents a
 *                 client certificate, anonymous ("tls") mode none. Server
 *                 (src/tlshd/server.c): GNUTLS_CERT_REQUEST (a client
 *                 certificate is asked for, not required). Neither side sets
 *                 ALPN. The handshake runs in the daemon; the kernel then
 *                 takes the socket with kTLS, so nothing after the
 *                 handshake may be a handshake message.
 *   TU_GT_LIBNFS  libnfs (tls/handshake.c, do_tls_handshake()): client only,
 *                 gnutls_init(GNUTLS_CLIENT), priority
 *                 "PERFORMANCE:-CIPHER-ALL:+AES-128-GCM" (set with
 *                 gnutls_priority_set_direct; TLS 1.2 is not excluded and
 *                 tickets are not refused), SNI and
 *                 gnutls_session_set_verify_cert() with the server name from
 *                 the URL, a client certificate only when
 *                 LIBNFS_TLS_CLIENT_CERT_PEM/KEY_PEM are set (tls_global_init),
 *                 no ALPN. After the handshake libnfs also moves the socket
 *                 to kTLS (setup_ktls) and frees the GnuTLS session.
 */
#ifndef RPCTLS_TEST_GNUTLS_PEER_H
#define RPCTLS_TEST_GNUTLS_PEER_H

#include <stddef.h>

#include "util/rpc_peer.h"

enum tu_gt_profile { TU_GT_TLSHD = 1, TU_GT_LIBNFS = 2 };

struct tu_gt_cfg {
    enum tu_gt_profile profile;
    int server;              /* 0: client */
    const char *ca_file;     /* trust anchors (client: the server is verified against them) */
    const char *cert_file;   /* own certificate; NULL: none (a client in "tls" mode) */
    const char *key_file;
    const char *server_name; /* client: SNI and the name the certificate must carry */
    int timeout_ms;          /* handshake deadline; 0: 20000 */
};

/* What the session negotiated, read right after the handshake. */
struct tu_gt_info {
    char version[16];        /* "TLS1.3" */
    char cipher[32];         /* "AES-128-GCM" */
    char alpn[32];           /* selected ALPN, "" for none */
    int peer_cert;           /* the peer presented a certificate */
    unsigned tickets;        /* NewSessionTickets received so far (client) */
};

/* Runs the handshake on fd (blocking; the socket has timeouts) and makes x
 * a TLS transport on it. 0, or -1 with the reason in x->err. */
int tu_gt_start(struct tu_xprt *x, int fd, const struct tu_gt_cfg *cfg);
void tu_gt_info(struct tu_xprt *x, struct tu_gt_info *out);
/* tu_srv_cfg.start_tls / describe for a GnuTLS server (arg: a struct tu_gt_cfg). */
int tu_gt_srv_start_tls(struct tu_xprt *x, int fd, void *arg);
void tu_gt_describe(struct tu_xprt *x, char *buf, size_t len);

#endif
