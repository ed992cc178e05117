/*
 * rpctls/nfs3_srv.h - the NFSv3 data server: MOUNT v3 and NFSv3 (RFC 1813)
 * for exported local directories (one, or an exports(5) table), registered
 * on a struct krpc_svc, so both programs share one TCP port (and its TLS
 * policy).
 *
 * File handles are 40 bytes: version | export id | inode | generation |
 * HMAC-SHA256 tag (16 bytes) keyed by a secret kept in the state directory;
 * they survive server restarts and cannot be forged (docs/nfs3-server.md).
 * Every file-system operation runs as the caller: the AUTH_SYS uid, gid and
 * groups, squashed as knfsd does (root_squash by default), AUTH_NONE as
 * the anonymous user, or (tlscertuser) the local user the client
 * certificate names. That needs root or CAP_SETUID + CAP_SETGID; without,
 * every call runs as the server's user (logged at start).
 *
 * Threading: arguments are decoded and replies sent on the request's loop
 * thread; the file-system work runs on io_threads worker threads (0: on
 * the loop thread, which then stalls while a disk is slow).
 */
#ifndef RPCTLS_NFS3_SRV_H
#define RPCTLS_NFS3_SRV_H

#include <stddef.h>
#include <stdint.h>

#include "rpctls/krpc_svc.h"
#include "rpctls/nfs3.h"
#include "rpctls/nfs3_export.h"

#include "rpctls/visibility.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NFS3_SRV_DEFAULT_TMAX (1u << 20) /* rtmax / wtmax advertised in FSINFO */

struct nfs3_srv_config {
    const char *export_path; /* an existing directory; made absolute and canonical */
    const char *state_dir;   /* NULL: nfs3_srv_default_state_dir() */
    uint32_t rtmax, wtmax;   /* 0: NFS3_SRV_DEFAULT_TMAX; at most NFS3_MAX_DATA */
    /* Write verifier; NULL: derived from the start time in nanoseconds (a
     * new value on every start, as RFC 1813 wants). For tests. */
    const uint8_t *write_verf;
    /* With the service's TLS policy REQUIRED, MOUNT is served in the clear
     * as well as inside TLS (what Linux, FreeBSD and libnfs clients need;
     * export paths and the root file handle then travel in the clear). Set
     * this to require TLS for MOUNT too. No effect under OFF / OPTIONAL. */
    int mount_requires_tls;
    /* Several exports with their client specs and options (exports(5),
     * rpctls/nfs3_export.h); copied. NULL: export_path alone, to the
     * local host, with opts: the exports line
     * "export_path 127.0.0.1(opts) ::1(opts)". */
    const struct nfs3_exports *exports;
    /* The policy of export_path when exports is NULL (ignored otherwise:
     * every client spec of the table has its own); all zero:
     * nfs3_export_opts_default (rw, root_squash, anonuid = anongid = 65534).
     * Otherwise taken as written (anonuid 0 is uid 0). */
    struct nfs3_export_opts opts;
    /* Worker threads for the file-system work; 0: all on the loop thread.
     * rpctls-nfsd's default is NFS3_SRV_DEFAULT_IO_THREADS. */
    unsigned io_threads;
    /* tlscertuser: the domain of the certificates' "user@domain"; NULL:
     * the host's (the part after the first dot of its fully qualified
     * name, else getdomainname()). */
    const char *domain;
};

#define NFS3_SRV_DEFAULT_IO_THREADS 8 /* as knfsd's default thread count */

struct nfs3_srv_stats {
    uint64_t ops[NFS3_NPROCS];      /* NFSv3 calls per procedure */
    uint64_t mnt_ops[NFS3_MNT_NPROCS];
    uint64_t errors;                /* replies with a status other than NFS3_OK */
    uint64_t badhandle, stale;
    uint64_t bytes_read, bytes_written;
    uint64_t syncs;                 /* fsync/fdatasync calls (stable WRITEs, COMMIT) */
    uint64_t walks;                 /* export walks to find an unknown inode */
};

struct nfs3_srv;

/* Opens the export and the state directory (creating it 0700 and the
 * handle key 0600 on first use) and registers MOUNT v3 and NFSv3 on svc.
 * On failure returns a negative errno and, when err is given, a message.
 * Handlers refer to the server: free it only after krpc_svc_free(svc) (or
 * once the loop never runs again). */
RPCTLS_API int nfs3_srv_new(struct krpc_svc *svc, const struct nfs3_srv_config *cfg, struct nfs3_srv **out, char *err,
                            size_t errlen);
RPCTLS_API void nfs3_srv_free(struct nfs3_srv *s);

/* The canonical path of the first export (what MNT expects). */
RPCTLS_API const char *nfs3_srv_export_path(const struct nfs3_srv *s);
/* The number of exports, and the canonical path of export i (NULL past the end). */
RPCTLS_API size_t nfs3_srv_export_count(const struct nfs3_srv *s);
RPCTLS_API const char *nfs3_srv_export_path_at(const struct nfs3_srv *s, size_t i);
RPCTLS_API const char *nfs3_srv_state_dir(const struct nfs3_srv *s);
RPCTLS_API void nfs3_srv_write_verf(const struct nfs3_srv *s, uint8_t out[NFS3_WRITEVERFSIZE]);
/* The root file handle of the first export (what MNT returns). */
RPCTLS_API void nfs3_srv_root_fh(const struct nfs3_srv *s, struct nfs3_fh *out);
/* The counters, copied into out; from any thread, also while calls run. */
RPCTLS_API void nfs3_srv_stats_get(const struct nfs3_srv *s, struct nfs3_srv_stats *out);
/* The same into a snapshot kept in the server, refreshed on each call:
 * call it from one thread at a time. */
RPCTLS_API const struct nfs3_srv_stats *nfs3_srv_stats(struct nfs3_srv *s);

/* The default state directory: $XDG_STATE_HOME/rpctls-nfsd when set, else
 * /var/lib/rpctls-nfsd for root, else $HOME/.local/state/rpctls-nfsd.
 * Returns 0 or -ENAMETOOLONG / -ENOENT (no HOME). */
RPCTLS_API int nfs3_srv_default_state_dir(char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif
