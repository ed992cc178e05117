/*
 * tests/util/rpc_peer.h - hand-written RPC peers that behave like the
 * deployed implementations (Linux, FreeBSD, libnfs), for interop tests.
 *
 * None of this uses the project's connection, client or server code: a peer
 * talks blocking record-marked RPC over a struct tu_xprt, which is plain TCP
 * or a TLS session of some other stack (GnuTLS in util/gnutls_peer.c, plain
 * OpenSSL with SSL_set_fd in util/ossl_peer.c). Only the XDR codecs of the
 * library are used, to build and parse message bodies.
 *
 *   tu_rpc_*       messages, calls and the RFC 9289 probe, client side;
 *   tu_mini_nfs    an in-memory NFSv3 service (one file behind one handle);
 *   tu_srv         a threaded server that answers the probe the way knfsd
 *                  or FreeBSD do, starts TLS through a callback and serves
 *                  tu_mini_nfs inside it.
 *
 * Every socket has receive/send timeouts, so a peer that is never answered
 * fails instead of hanging.
 */
#ifndef RPCTLS_TEST_RPC_PEER_H
#define RPCTLS_TEST_RPC_PEER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "rpctls/krpc_clnt.h"
#include "rpctls/mbuf.h"
#include "rpctls/nfs3.h"

/* ---- transports ----------------------------------------------------------- */

struct tu_xprt {
    int fd;
    void *tls; /* the TLS stack's session (gnutls_session_t, SSL *); NULL: plain TCP */
    /* Bytes read (> 0), 0 at the end of the stream, -1 on error (err says). */
    int (*read)(struct tu_xprt *x, void *buf, size_t len);
    /* Bytes written (> 0) or -1 on error. */
    int (*write)(struct tu_xprt *x, const void *buf, size_t len);
    /* Sends close_notify and frees the session; the fd stays open. */
    void (*end_tls)(struct tu_xprt *x);
    char err[256];
};

/* Plain TCP on fd (not owned). */
void tu_xprt_plain(struct tu_xprt *x, int fd);
/* Ends TLS (when on) and closes the fd. */
void tu_xprt_close(struct tu_xprt *x);

/* Connects to 127.0.0.1:port (blocking, timeouts of timeout_ms); fd or -1. */
int tu_connect_loopback(uint16_t port, int timeout_ms);

/* ---- messages and calls -------------------------------------------------- */

/* Frames msg (consumed) with record marks, fragments of at most max_frag
 * bytes (0: one fragment), and writes it all. 0 or -EIO. */
int tu_rpc_send(struct tu_xprt *x, struct mb_chain *msg, size_t max_frag);
/* Reads one whole message (all fragments) into msg (empty on entry).
 * 0, -ECONNRESET at the end of the stream before a message began, -EIO on
 * a transport error or a stream cut inside a message, -EMSGSIZE above max. */
int tu_rpc_recv(struct tu_xprt *x, struct mb_chain *msg, size_t max);

/* One call: the header (xid, prog, vers, proc, cred, AUTH_NONE verifier) and
 * args (consumed, may be NULL) are sent, then the reply with that xid is
 * read into reply (free with krpc_reply_free); reply->res is positioned at
 * the results. 0 when a reply arrived (check reply->hdr), else -errno. */
int tu_rpc_call(struct tu_xprt *x, uint32_t xid, uint32_t prog, uint32_t vers, uint32_t proc,
                const struct krpc_cred *cred, struct mb_chain *args, struct krpc_reply *reply);

/* The RFC 9289 probe as Linux encodes it (net/sunrpc/auth_tls.c,
 * tls_marshal(): credential AUTH_TLS with an empty body, verifier AUTH_NONE
 * with an empty body; procedure 0 of the client's program and version,
 * no arguments), libnfs sends the same bytes (lib/pdu.c,
 * rpc_allocate_pdu2() with the AUTH_TLS bit). The reply header goes to h.
 * 0 when a reply arrived, else -errno. */
int tu_rpc_probe(struct tu_xprt *x, uint32_t xid, uint32_t prog, uint32_t vers, struct krpc_reply_hdr *h);
/* 1 when h carries the STARTTLS verifier (AUTH_NONE, 8 bytes "STARTTLS"):
 * the only test Linux makes (auth_tls.c, tls_validate()) and libnfs makes
 * (lib/pdu.c, expect_starttls). */
int tu_is_starttls(const struct krpc_reply_hdr *h);

/* AUTH_SYS as the Linux client and libnfs send it. */
void tu_cred_sys(struct krpc_cred *c, const char *machine);

/* ---- client sequences, as the deployed clients send them ----------------- */

/* MOUNT on its own plaintext connection to 127.0.0.1:port, as mount.nfs
 * (libtirpc, to mountd) and libnfs (lib/libnfs.c, rpc_connect_program_4_cb:
 * only the NFS program is probed for TLS) do it: MOUNT v3 NULL with
 * ping_cred (NULL: AUTH_NONE, as libtirpc's clnt_create; libnfs pings with
 * its AUTH_SYS), then MNT of path with cred. Returns the mountstat3
 * (MNT3_OK: *root is set), or -errno for an RPC failure; err says what
 * happened. */
int tu_mount_plain(uint16_t port, const char *path, const struct krpc_cred *ping_cred, const struct krpc_cred *cred,
                   struct nfs3_fh *root, char *err, size_t errlen);

/* The NFS part of a mount and a copy, inside whatever x carries:
 *   NULL with ping_cred (the Linux client's rpc_ping() uses AUTH_NONE),
 *   FSINFO and GETATTR of the root (what the Linux client and libnfs do
 *   right after connecting), CREATE name (UNCHECKED, size 0),
 *   WRITE UNSTABLE of size bytes of stream seed in wsize chunks, COMMIT,
 *   READ back in rsize chunks compared byte for byte, GETATTR of the file.
 * wsize and rsize are FSINFO's wtmax / rtmax capped at max_io. */
struct tu_nfs_job {
    struct nfs3_fh root;
    const char *name;
    uint64_t size;
    uint32_t seed;
    uint32_t max_io;
    struct krpc_cred ping_cred; /* for NULL (flavor 0: AUTH_NONE) */
    struct krpc_cred cred;      /* for everything else */
};

struct tu_nfs_result {
    char err[512];                 /* the first failure, "" when all went well */
    uint32_t wsize, rsize;
    uint32_t writes, reads;
    uint64_t written, read;        /* bytes acknowledged / received */
    uint64_t first_mismatch;       /* offset of the first differing byte read back, or UINT64_MAX */
    int commit_verf_matches;       /* COMMIT's verifier equals every WRITE's */
    struct nfs3_fattr root_attr, file_attr;
};

/* 0 when every step succeeded; -1 with r->err naming the step otherwise. */
int tu_nfs_run(struct tu_xprt *x, uint32_t *xid, const struct tu_nfs_job *job, struct tu_nfs_result *r);

/* ---- an in-memory NFSv3 service ----------------------------------------- */

struct tu_mini_nfs {
    pthread_mutex_t lock;
    struct nfs3_fh fh;        /* the only handle: a regular file */
    uint8_t *data;            /* its contents */
    uint64_t size, cap;       /* a WRITE past cap is NFS3ERR_FBIG */
    uint8_t verf[NFS3_WRITEVERFSIZE];
    uint64_t calls[NFS3_NPROCS];
    uint64_t other_prog_calls; /* calls for another program or version */
};

/* cap: the largest file the service keeps. 0 or -ENOMEM. */
int tu_mini_nfs_init(struct tu_mini_nfs *m, uint64_t cap);
void tu_mini_nfs_free(struct tu_mini_nfs *m);
/* Answers one call (hdr already decoded; d positioned at the arguments):
 * NFS v3 NULL, GETATTR, READ, WRITE, FSINFO, COMMIT; PROC_UNAVAIL for
 * other procedures, PROG_MISMATCH 3..3 for other NFS versions, PROG_UNAVAIL
 * for other programs. The reply message is appended to reply. */
int tu_mini_nfs_dispatch(struct tu_mini_nfs *m, const struct krpc_call_hdr *hdr, struct krpc_xdr_dec *d,
                         struct mb_chain *reply);

/* ---- a threaded server --------------------------------------------------- */

enum tu_probe_style {
    /* knfsd (net/sunrpc/svcauth_unix.c, svcauth_tls_accept()): the STARTTLS
     * verifier is written during authentication, before svc_process_common()
     * looks the program up, so a probe for a program or version that is not
     * served comes back STARTTLS + PROG_UNAVAIL / PROG_MISMATCH, and then
     * the server waits for a ClientHello all the same. */
    TU_PROBE_KNFSD = 1,
    /* FreeBSD (sys/rpc/rpcsec_tls/rpctls_impl.c, _svcauth_rpcsec_tls()): the
     * probe is answered SUCCESS with the STARTTLS verifier by
     * svc_sendreply() whatever the program, then rpc.tlsservd does
     * SSL_accept() on the socket. */
    TU_PROBE_FREEBSD = 2,
};

struct tu_srv_cfg {
    enum tu_probe_style probe;
    /* Starts TLS as a server on fd (the probe reply is already out) and
     * fills x; 0, or -1 with a reason in x->err. */
    int (*start_tls)(struct tu_xprt *x, int fd, void *arg);
    void *tls_arg;
    /* Describes the session after the handshake into buf (e.g. its ALPN). */
    void (*describe)(struct tu_xprt *x, char *buf, size_t len);
    struct tu_mini_nfs *nfs;
    int timeout_ms; /* socket timeouts; 0: 20000 */
};

struct tu_srv_stats {
    unsigned conns;              /* connections accepted */
    unsigned probes;             /* probes answered (STARTTLS) */
    unsigned probes_unavail;     /* ... with PROG_UNAVAIL */
    unsigned probes_mismatch;    /* ... with PROG_MISMATCH */
    unsigned handshakes;         /* TLS sessions established */
    unsigned handshake_failures;
    unsigned plain_calls;        /* calls other than the probe outside TLS */
    unsigned tls_calls;          /* calls answered inside TLS */
    char session[256];           /* describe() of the last session */
    char err[512];               /* the first failure, "" if none */
};

struct tu_srv;

/* Listens on 127.0.0.1 (port 0) and serves every connection in its own
 * thread. 0 or -1. */
int tu_srv_start(const struct tu_srv_cfg *cfg, struct tu_srv **out);
uint16_t tu_srv_port(const struct tu_srv *s);
/* Stops accepting, cuts the open connections, joins the threads, fills st
 * (may be NULL) and frees s. */
void tu_srv_stop(struct tu_srv *s, struct tu_srv_stats *st);

#endif
