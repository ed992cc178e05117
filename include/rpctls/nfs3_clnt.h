/*
 * rpctls/nfs3_clnt.h - an NFSv3 client on the krpc RPC client: MOUNT,
 * path lookup and create, pipelined READ, WRITE, COMMIT, GETATTR, FSINFO.
 *
 * One struct nfs3_clnt is one NFS connection (a struct krpc_clnt for
 * program 100003 version 3) on a struct krpc_loop, with everything that
 * implies: retransmission of retained requests, reconnect with a fresh RFC
 * 9289 probe and TLS handshake. MOUNT calls go through a short-lived second
 * RPC client, because a krpc_clnt speaks one program, to the port that
 * struct nfs3_clnt_opts below describes (given, the portmapper's, or the
 * NFS port: rpctls-nfsd serves both programs on one port).
 *
 * Status convention for every function and callback here:
 *     0      success
 *     < 0    a negative errno from the RPC layer or a decode (-ETIMEDOUT,
 *            -ECONNREFUSED, -EPROTO, -EBADMSG, -EACCES for AUTH_ERROR ...)
 *     > 0    an NFS status (enum nfs3_stat) or, for nfs3_mount, a
 *            mountstat3 (enum nfs3_mnt_stat)
 * nfs3_clnt_error() has the last failure in words.
 *
 * Asynchronous calls run their callback later from the loop, never inside
 * the call that started them. Blocking helpers run the client's loop until
 * the answer arrives (bounded by the RPC client's timeouts and retries); do
 * not call them from inside a loop callback.
 */
#ifndef RPCTLS_NFS3_CLNT_H
#define RPCTLS_NFS3_CLNT_H

#include <stddef.h>
#include <stdint.h>

#include "rpctls/krpc_clnt.h"
#include "rpctls/nfs3.h"

#include "rpctls/visibility.h"

#ifdef __cplusplus
extern "C" {
#endif

struct nfs3_clnt;

/* cfg: address, TLS policy and configuration, timeouts, credential, name.
 * prog and vers are ignored (set to NFS v3). A zero credential flavor gives
 * AUTH_SYS with this process's uid and gid. The connection starts at once.
 * Same as nfs3_clnt_new_opts with opts NULL. */
RPCTLS_API int nfs3_clnt_new(struct krpc_loop *loop, const struct krpc_clnt_config *cfg, struct nfs3_clnt **out);

/* Where MOUNT and NFS are found. The order for MOUNT (at the first
 * nfs3_mount or nfs3_mount_prefix):
 *   1. mount_port, when given;
 *   2. else the server's portmapper (port 111: portmap v2 GETPORT over
 *      IPv4, rpcbind GETADDR tcp6 over IPv6) for 100005 v3 tcp, provided
 *      the portmapper describes this server: when it registers NFS v3 at a
 *      port other than the one this client uses, its MOUNT belongs to
 *      another server on the host and is not used;
 *   3. else the NFS port (rpctls-nfsd serves both programs on one port).
 * MOUNT on its own port tries RPC-with-TLS there and falls back to plain
 * only when the server refuses the probe (KRPC_TLS_OPPORTUNISTIC), whatever
 * cfg->tls says; NFS keeps cfg->tls. MOUNT on the NFS port keeps cfg->tls.
 * The NFS port is cfg's; with find_nfs_port (the port in cfg is only the
 * default, 2049, because the URL gave none), nfs3_clnt_new_opts first sends
 * a plain NULL call for NFS v3 there, and when nothing answers it or the
 * answer is PROG_UNAVAIL / PROG_MISMATCH / RPC_MISMATCH, it asks the
 * portmapper for 100003 v3 tcp (and keeps the default when that fails too).
 * So nfs3_clnt_new_opts may block for about 2 * pmap_timeout_ms. */
struct nfs3_clnt_opts {
    uint16_t mount_port; /* 0: portmapper, then the NFS port */
    int find_nfs_port;   /* see above */
    int pmap_timeout_ms; /* each portmapper query and the NULL probe; 0: 3000 */
};
RPCTLS_API int nfs3_clnt_new_opts(struct krpc_loop *loop, const struct krpc_clnt_config *cfg,
                                  const struct nfs3_clnt_opts *opts, struct nfs3_clnt **out);
/* How a program travelled, for reports: prog NFS3_PROGRAM or
 * NFS3_MNT_PROGRAM; e.g. "127.0.0.1:2049 TLS (TLS_AES_128_GCM_SHA256)",
 * "127.0.0.1:20048 plain (server refused the RPC-with-TLS probe)"; "" when
 * that program has not been reached yet. */
RPCTLS_API const char *nfs3_clnt_transport(const struct nfs3_clnt *nc, uint32_t prog);
/* Fails outstanding calls with -ECANCELED (their callbacks run) and closes. */
RPCTLS_API void nfs3_clnt_free(struct nfs3_clnt *nc);
RPCTLS_API struct krpc_clnt *nfs3_clnt_rpc(const struct nfs3_clnt *nc);
RPCTLS_API struct krpc_loop *nfs3_clnt_loop(const struct nfs3_clnt *nc);
/* The last failure in words ("" if none). */
RPCTLS_API const char *nfs3_clnt_error(const struct nfs3_clnt *nc);
/* A status in words: "NFS3ERR_NOENT", "Connection refused", ... */
RPCTLS_API const char *nfs3_status_str(int status, char *buf, size_t len);

/* ---- several threads -------------------------------------------------------- */

/* Threaded mode, for callers with many threads (rpctls-mount's FUSE
 * workers). Once started, one thread (the loop thread) owns the loop, the
 * RPC client and the connection; any other thread may call every blocking
 * helper below and every *_async call: the call goes to the loop thread
 * through a queue and an eventfd, and a blocking helper waits on a condition
 * variable for its reply, which it then decodes itself. Async callbacks run
 * on the loop thread (lock what they share). Mount (nfs3_mount,
 * nfs3_mount_prefix) before starting; nfs3_read_pipelined runs the loop
 * itself and is for unthreaded clients only. A blocking helper called from
 * the loop thread (inside a callback) fails with -EDEADLK.
 * nfs3_clnt_error() is the last failure of any thread. nfs3_clnt_free stops
 * the thread first; nothing else may still be calling then. */
RPCTLS_API int nfs3_clnt_start_thread(struct nfs3_clnt *nc);
/* Stops the loop thread (outstanding calls stay with the RPC client; queued
 * ones fail with -ECANCELED). The client is unthreaded again. */
RPCTLS_API void nfs3_clnt_stop_thread(struct nfs3_clnt *nc);
/* The credential of every call this thread starts from now on (NULL: the
 * client's), e.g. the AUTH_SYS uid, gid and groups of the process a FUSE
 * request comes from. Per thread: a thread-local copy. */
RPCTLS_API void nfs3_clnt_set_thread_cred(const struct krpc_cred *cred);

/* ---- asynchronous calls -------------------------------------------------- */

/* WRITE: data (consumed) is linked into the call by reference. */
typedef void (*nfs3_write_fn)(struct nfs3_clnt *nc, int status, const struct nfs3_write_res *res, void *arg);
RPCTLS_API int nfs3_write_async(struct nfs3_clnt *nc, const struct nfs3_fh *fh, uint64_t offset, uint32_t stable,
                                struct mb_chain *data, nfs3_write_fn fn, void *arg);

/* READ: res->data refers to the reply's storage; take it with
 * mb_chain_concat inside the callback to keep it. A reply with more data
 * than count fails with -EBADMSG (logged). */
typedef void (*nfs3_read_fn)(struct nfs3_clnt *nc, int status, struct nfs3_read_res *res, void *arg);
RPCTLS_API int nfs3_read_async(struct nfs3_clnt *nc, const struct nfs3_fh *fh, uint64_t offset, uint32_t count,
                               nfs3_read_fn fn, void *arg);

typedef void (*nfs3_commit_fn)(struct nfs3_clnt *nc, int status, const struct nfs3_commit_res *res, void *arg);
RPCTLS_API int nfs3_commit_async(struct nfs3_clnt *nc, const struct nfs3_fh *fh, uint64_t offset, uint32_t count,
                                 nfs3_commit_fn fn, void *arg);

typedef void (*nfs3_getattr_fn)(struct nfs3_clnt *nc, int status, const struct nfs3_fattr *attr, void *arg);
RPCTLS_API int nfs3_getattr_async(struct nfs3_clnt *nc, const struct nfs3_fh *fh, nfs3_getattr_fn fn, void *arg);

/* ---- blocking helpers ------------------------------------------------------ */

/* MNT of export_path; *root gets the export's root file handle. */
RPCTLS_API int nfs3_mount(struct nfs3_clnt *nc, const char *export_path, struct nfs3_fh *root);
/* Finds the export within path ("/srv/data/dir/file"): MNT of the longest
 * proper prefix that the server mounts ("/srv/data"). *rest_off gets the
 * offset in path of the remainder ("dir/file", without the slash). */
RPCTLS_API int nfs3_mount_prefix(struct nfs3_clnt *nc, const char *path, struct nfs3_fh *root, size_t *rest_off);

RPCTLS_API int nfs3_getattr(struct nfs3_clnt *nc, const struct nfs3_fh *fh, struct nfs3_fattr *attr);
RPCTLS_API int nfs3_fsinfo(struct nfs3_clnt *nc, const struct nfs3_fh *fh, struct nfs3_fsinfo_res *res);
RPCTLS_API int nfs3_lookup(struct nfs3_clnt *nc, const struct nfs3_fh *dir, const char *name, struct nfs3_fh *fh,
                           struct nfs3_fattr *attr);
/* CREATE UNCHECKED (size 0 when truncate: an existing file is emptied). */
RPCTLS_API int nfs3_create(struct nfs3_clnt *nc, const struct nfs3_fh *dir, const char *name, uint32_t mode,
                           int truncate, struct nfs3_fh *fh);
RPCTLS_API int nfs3_mkdir(struct nfs3_clnt *nc, const struct nfs3_fh *dir, const char *name, uint32_t mode,
                          struct nfs3_fh *fh);

/* SETATTR of what sa says (set_* flags; times DONT_CHANGE,
 * SET_TO_SERVER_TIME or SET_TO_CLIENT_TIME). guard_ctime (may be NULL):
 * only when the object's ctime is still that (else NFS3ERR_NOT_SYNC). attr
 * (may be NULL) gets the attributes after. */
RPCTLS_API int nfs3_setattr(struct nfs3_clnt *nc, const struct nfs3_fh *fh, const struct nfs3_sattr *sa,
                            const struct nfs3_time *guard_ctime, struct nfs3_fattr *attr);
/* ACCESS: *granted gets the bits of want (NFS3_ACCESS_*) that are allowed. */
RPCTLS_API int nfs3_access(struct nfs3_clnt *nc, const struct nfs3_fh *fh, uint32_t want, uint32_t *granted);
/* READLINK into buf (NUL-terminated); -ENAMETOOLONG when it does not fit. */
RPCTLS_API int nfs3_readlink(struct nfs3_clnt *nc, const struct nfs3_fh *fh, char *buf, size_t len);
/* One READ of at most count bytes at offset, appended to data by
 * reference; *eof (may be NULL) gets the server's eof flag. A reply longer
 * than count is -EBADMSG. */
RPCTLS_API int nfs3_read(struct nfs3_clnt *nc, const struct nfs3_fh *fh, uint64_t offset, uint32_t count,
                         struct mb_chain *data, int *eof);
/* CREATE with how NFS3_CREATE_UNCHECKED, _GUARDED (NFS3ERR_EXIST when the
 * name exists) or _EXCLUSIVE (verf makes a retransmitted CREATE succeed
 * once; sa, when given, is applied with a SETATTR afterwards, as RFC 1813
 * says). fh and attr (may be NULL) get the new file's handle and attributes
 * (asked for when the reply leaves them out). */
RPCTLS_API int nfs3_create_how(struct nfs3_clnt *nc, const struct nfs3_fh *dir, const char *name, uint32_t how,
                               const struct nfs3_sattr *sa, const uint8_t verf[NFS3_CREATEVERFSIZE], struct nfs3_fh *fh,
                               struct nfs3_fattr *attr);
/* MKDIR with attributes sa; fh and attr (may be NULL) as for create. */
RPCTLS_API int nfs3_mkdir_attr(struct nfs3_clnt *nc, const struct nfs3_fh *dir, const char *name,
                               const struct nfs3_sattr *sa, struct nfs3_fh *fh, struct nfs3_fattr *attr);
/* SYMLINK name -> target (sa may be NULL). */
RPCTLS_API int nfs3_symlink(struct nfs3_clnt *nc, const struct nfs3_fh *dir, const char *name, const char *target,
                            const struct nfs3_sattr *sa, struct nfs3_fh *fh, struct nfs3_fattr *attr);
/* MKNOD of type NFS3_FIFO, NFS3_SOCK (spec ignored), NFS3_CHR, NFS3_BLK
 * (spec1/spec2: major/minor). */
RPCTLS_API int nfs3_mknod(struct nfs3_clnt *nc, const struct nfs3_fh *dir, const char *name, uint32_t type,
                          const struct nfs3_sattr *sa, uint32_t spec1, uint32_t spec2, struct nfs3_fh *fh,
                          struct nfs3_fattr *attr);
RPCTLS_API int nfs3_remove(struct nfs3_clnt *nc, const struct nfs3_fh *dir, const char *name);
RPCTLS_API int nfs3_rmdir(struct nfs3_clnt *nc, const struct nfs3_fh *dir, const char *name);
RPCTLS_API int nfs3_rename(struct nfs3_clnt *nc, const struct nfs3_fh *fromdir, const char *fromname,
                           const struct nfs3_fh *todir, const char *toname);
/* LINK: a new name for fh in dir; attr (may be NULL) gets fh's attributes
 * after (its new link count). */
RPCTLS_API int nfs3_link(struct nfs3_clnt *nc, const struct nfs3_fh *fh, const struct nfs3_fh *dir, const char *name,
                         struct nfs3_fattr *attr);
RPCTLS_API int nfs3_fsstat(struct nfs3_clnt *nc, const struct nfs3_fh *fh, struct nfs3_fsstat_res *res);
/* The whole directory with READDIRPLUS, page after page (each page at most
 * maxcount bytes, dircount of names and cookies; 0: 65536 and 8192), going
 * on from the last cookie with the server's cookie verifier. fn gets each
 * entry once, "." and ".." included, in the server's order (its non-zero
 * return stops the listing and is returned: use a negative errno). Loop
 * protection: a cookie seen twice in one listing, or cookie 0, fails with
 * -ELOOP / -EIO, as does a page with no entry and no eof; each is logged.
 * Names: one longer than NFS3_MAXNAMLEN fails the listing with
 * -ENAMETOOLONG; an empty one, or one with a '/' or a NUL byte, with -EIO
 * (logged). NFS3ERR_BAD_COOKIE (the directory changed under a stale verifier) is
 * returned as is. */
RPCTLS_API int nfs3_readdirplus(struct nfs3_clnt *nc, const struct nfs3_fh *dir, uint32_t dircount, uint32_t maxcount,
                                nfs3_dirent_fn fn, void *arg);

#define NFS3_OPEN_CREATE 0x1 /* create the last component (CREATE UNCHECKED) if missing */
#define NFS3_OPEN_TRUNC 0x2  /* create it empty, or empty it when it exists */
#define NFS3_OPEN_MKDIRS 0x4 /* create missing intermediate directories (MKDIR) */
/* Walks relpath ("a/b/file"; empty: dir itself) from dir with LOOKUP,
 * creating as flags say. attr (may be NULL) gets the final object's
 * attributes. */
RPCTLS_API int nfs3_open_path(struct nfs3_clnt *nc, const struct nfs3_fh *dir, const char *relpath, int flags,
                              struct nfs3_fh *fh, struct nfs3_fattr *attr);

RPCTLS_API int nfs3_write(struct nfs3_clnt *nc, const struct nfs3_fh *fh, uint64_t offset, uint32_t stable,
                          struct mb_chain *data, struct nfs3_write_res *res);
RPCTLS_API int nfs3_commit(struct nfs3_clnt *nc, const struct nfs3_fh *fh, uint64_t offset, uint32_t count,
                           uint8_t verf[NFS3_WRITEVERFSIZE]);

/* Pipelined READ of [offset, offset + length) with up to depth calls of
 * rsize bytes in flight. sink receives the data in file order (data is the
 * sink's: free or keep it); a non-zero return stops the read and is
 * returned. Ends at length or at the end of the file; *got (may be NULL)
 * receives the bytes delivered. */
typedef int (*nfs3_sink_fn)(void *arg, uint64_t offset, struct mb_chain *data);
RPCTLS_API int nfs3_read_pipelined(struct nfs3_clnt *nc, const struct nfs3_fh *fh, uint64_t offset, uint64_t length,
                                   uint32_t rsize, unsigned depth, nfs3_sink_fn sink, void *arg, uint64_t *got);

/* ---- URLs ----------------------------------------------------------------- */

/* nfs://HOST[:PORT]/PATH[?OPTIONS], OPTIONS joined with '&' and spelled as
 * libnfs spells them: mountport=N (MOUNT's port), nfsport=N (NFS's port;
 * the same as :PORT), version=3 (any other version is an error). An unknown
 * option is an error that names it. HOST is a name, an IPv4 literal or an
 * [IPv6] literal (stored without the brackets). */
struct nfs3_url {
    char host[256];
    uint16_t port;      /* :PORT; 0 when the URL has none */
    uint16_t nfsport;   /* :PORT or ?nfsport=; 0 when neither is given */
    uint16_t mountport; /* ?mountport=; 0 when not given */
    unsigned version;   /* 3 */
    char path[NFS3_MAXPATHLEN + 1]; /* "/EXPORT/PATH", without the options */
};
/* Returns 0, or -EINVAL with the reason in err (without the URL), e.g.
 * "unknown URL option \"foo\" (known: mountport=N, nfsport=N, version=3)". */
RPCTLS_API int nfs3_url_parse(const char *url, struct nfs3_url *u, char *err, size_t errlen);

/* Pipelined writing from a file (one or several servers, UNSTABLE + COMMIT,
 * resends on a verifier change) is nfs3_mirror_write() in nfs3_mirror.h. */

#ifdef __cplusplus
}
#endif

#endif
