/*
 * nfsd_int.h - private to the NFSv3 server (src/nfs3/server.c, fh.c,
 * backend_ns.c, backend_ops.c).
 *
 *   fh.c          handle key in the state directory, handle make / check
 *   backend_ns.c  the export's namespace: inode -> (parent, name) map, its
 *                 lazy rebuild by walking the export, opening beneath the
 *                 export root without following symlinks, handle -> object
 *   backend_ops.c the file operations on resolved objects
 *   server.c      RPC dispatch: decode, call the backend, map errno to
 *                 nfsstat3, encode
 *   pool.c        the worker pool the file-system work runs on, and the
 *                 hand-back of replies to the loop that owns each request
 *   ident.c       the identity (fsuid, fsgid, groups) a call runs with
 *   srv_exports.c the export table: one namespace (nfsd_be) per export,
 *                 handle -> export and MNT path -> export for a caller
 *
 * Threading: with a worker pool, backend functions run on several threads
 * at once. Each export's namespace map, negative cache and walk state are
 * under its own nfsd_be.lock; the export table is read-only after start;
 * everything else a worker touches is its own (the job's arguments and
 * results).
 *
 * Backend functions return 0 or a negative errno; two codes of our own
 * stand for NFS3ERR_BADHANDLE and NFS3ERR_TOOSMALL (ESTALE is STALE).
 */
#ifndef RPCTLS_NFSD_INT_H
#define RPCTLS_NFSD_INT_H

#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "rpctls/mbuf.h"
#include "rpctls/krpc.h"
#include "rpctls/krpc_svc.h"
#include "rpctls/nfs3.h"
#include "rpctls/nfs3_export.h"
#include "rpctls/nfs3_srv.h"

#define NFSD_EBADHANDLE 10001 /* returned negated */
#define NFSD_ETOOSMALL 10005
#define NFSD_EBADTYPE 10007 /* MKNOD of a type that is no special file: NFS3ERR_BADTYPE */

/* ---- file handles (fh.c) ------------------------------------------------ */

#define NFSD_FH_VERSION 1
#define NFSD_FH_KEYLEN 32
#define NFSD_FH_TAGLEN 16
#define NFSD_FH_LEN 40 /* 1 version + 3 zero + 8 export id + 8 inode + 4 generation + 16 tag */

struct nfsd_fhctx {
    uint8_t key[NFSD_FH_KEYLEN];
    uint8_t export_id[8];
};

/* Creates dir (0700) if missing, then reads DIR/fh.key or makes it (0600,
 * random). 0 or -errno with a message in err. */
int nfs3__fh_key_load(const char *state_dir, uint8_t key[NFSD_FH_KEYLEN], char *err, size_t errlen);
/* export_id = HMAC(key, export path) truncated. */
int nfs3__fh_init(struct nfsd_fhctx *k, const uint8_t key[NFSD_FH_KEYLEN], const char *export_path);
void nfs3__fh_make(const struct nfsd_fhctx *k, uint64_t ino, uint32_t gen, struct nfs3_fh *out);
/* 0 with the inode number and generation, or -NFSD_EBADHANDLE (length, version, export id or tag). */
int nfs3__fh_parse(const struct nfsd_fhctx *k, const struct nfs3_fh *fh, uint64_t *ino, uint32_t *gen);
/* The export id of a handle made with key: 0, or -NFSD_EBADHANDLE (length,
 * version, zero bytes or tag wrong: not a handle of ours). */
int nfs3__fh_export_id(const uint8_t key[NFSD_FH_KEYLEN], const struct nfs3_fh *fh, uint8_t id[8]);

/* ---- namespace (backend_ns.c) ------------------------------------------- */

struct nfsd_ment;

/* An inode (and generation) recently found absent from the export. */
#define NFSD_NEG_ENTRIES 256
struct nfsd_neg {
    uint64_t ino;
    uint64_t when_ns; /* CLOCK_MONOTONIC; 0 = free slot */
    uint32_t gen;
    int anygen;       /* removed by us: stale whatever the generation */
};

struct nfsd_be {
    /* Guards the map (buckets, count), the negative cache, the epochs, the
     * walk state and walks. Taken for map updates and lookups, and held for
     * a whole walk (bounded); never while the caller holds another lock. */
    pthread_mutex_t lock;
    int rootfd;        /* O_PATH | O_DIRECTORY on the export */
    dev_t dev;
    uint64_t rootino;
    uint32_t rootgen;
    char *export_path;
    struct nfsd_fhctx fh;
    struct nfsd_ment **buckets;
    size_t nbuckets, count;
    int no_openat2;     /* openat2 missing: component walk instead (atomic: any thread may set it) */
    uint64_t walks;     /* under lock */
    /* Negative cache and walk rate limit: map_epoch counts the times the
     * map learned an entry outside a walk (or was cleared); the negative
     * cache is only good for the epoch it was filled in, and a walk that
     * ended without finding its inode is not repeated within a second in
     * the same epoch. */
    struct nfsd_neg neg[NFSD_NEG_ENTRIES];
    unsigned neg_next;
    uint64_t map_epoch, neg_epoch;
    uint64_t failed_walk_ns, failed_walk_epoch; /* failed_walk_ns 0: none */
    int in_walk;
    uint8_t write_verf[NFS3_WRITEVERFSIZE];
    uint32_t rtmax, wtmax;
};

/* A resolved object: fd is O_PATH (never followed), st its attributes,
 * path relative to the export root ("" for the root). */
struct nfsd_obj {
    int fd;
    struct stat st;
    uint32_t gen;
    char path[PATH_MAX];
};

int nfs3__be_open(struct nfsd_be *be, const char *export_path, char *err, size_t errlen);
void nfs3__be_close(struct nfsd_be *be);

/* Handle of a (stat'ed) object whose generation is gen. */
void nfs3__be_fh(const struct nfsd_be *be, const struct stat *st, uint32_t gen, struct nfs3_fh *out);
/* Generation of name in dirfd (FS_IOC_GETVERSION on a regular file or
 * directory; 0 when unknown). */
uint32_t nfs3__be_gen_at(int dirfd, const char *name, const struct stat *st);

/* Handle -> object: -NFSD_EBADHANDLE, -ESTALE, or 0 with o filled (close
 * with nfs3__obj_close). */
int nfs3__be_resolve(struct nfsd_be *be, const struct nfs3_fh *fh, struct nfsd_obj *o);
/* Export walks so far (the stats counter). */
uint64_t nfs3__be_walks(struct nfsd_be *be);
void nfs3__obj_close(struct nfsd_obj *o);
/* Opens the resolved object again with real access flags (O_RDONLY,
 * O_WRONLY, O_DIRECTORY...), never following a symlink, and checks it is
 * the same inode (-ESTALE if it was swapped meanwhile). Returns the fd. */
int nfs3__obj_reopen(struct nfsd_be *be, const struct nfsd_obj *o, int flags);
/* Opens path (relative to the export, "" = root) beneath the root with
 * flags | O_NOFOLLOW: no symlink anywhere, no escape, no mount crossing. */
int nfs3__be_open_beneath(struct nfsd_be *be, const char *path, int flags);

/* A directory path beneath the root ("a/b", "" = root) for MNT: every
 * component a directory of the export's file system, no symlink, no "..";
 * fills the map on the way. */
int nfs3__be_lookup_path(struct nfsd_be *be, const char *rel, struct stat *st, uint32_t *gen);
/* Map maintenance: name (a single component) in directory dirino is ino. */
void nfs3__map_add(struct nfsd_be *be, uint64_t ino, uint64_t dirino, const char *name);
void nfs3__map_del(struct nfsd_be *be, uint64_t ino);
/* st (stat'ed before) was unlinked, or replaced by a rename: forgets it and,
 * when that was its last name, remembers its handles as STALE. */
/* After dirfd/name (directory inode dirino) was unlinked: forget st's inode
 * unless it already names a newer object (parallel calls reuse inodes). */
void nfs3__map_gone(struct nfsd_be *be, int dirfd, uint64_t dirino, const char *name, const struct stat *st);
void nfs3__map_clear(struct nfsd_be *be);

/* 1 when name is usable as a new directory entry: not empty, no '/', not
 * "." or "..". */
int nfs3__name_ok(const char *name);

/* ---- the export table (srv_exports.c) ------------------------------------
 *
 * One nfsd_be per exports(5) line: its own root, inode map and handle
 * namespace (the export id in every handle is HMAC(key, canonical path), so
 * it is the same after a restart). The table (v, n, table) is immutable
 * once nfs3__exports_open returned: handlers on several threads may read it
 * without a lock; each nfsd_be's map is the backend's business.
 */

struct nfsd_export {
    struct nfsd_be be;                   /* be.export_path: the canonical path; be.fh: its export id */
    const struct nfs3_export_entry *ent; /* the line: path as written, client specs and their options */
};

struct nfsd_exports {
    struct nfsd_export *v;
    size_t n;
    struct nfs3_exports table; /* owned copy of the configuration */
    uint8_t key[NFSD_FH_KEYLEN];
};

/* Opens every export of table (copied) with the handle key: each must be a
 * directory, and no two the same directory. rtmax/wtmax/write_verf go into
 * every nfsd_be. 0 or -errno with a message. */
int nfs3__exports_open(struct nfsd_exports *xs, const struct nfs3_exports *table, const uint8_t key[NFSD_FH_KEYLEN],
                       uint32_t rtmax, uint32_t wtmax, const uint8_t write_verf[NFS3_WRITEVERFSIZE], char *err,
                       size_t errlen);
void nfs3__exports_close(struct nfsd_exports *xs);

/*
 * The export a file handle belongs to, for this caller, with the options
 * that apply to it (the matching client spec's). The checks knfsd makes
 * (fh_verify, check_nfsd_access), in its order:
 *   -NFSD_EBADHANDLE  not a handle of this server (length, version, tag);
 *   -ESTALE           a genuine handle of an export that is no longer
 *                     exported (as knfsd: the export is not found);
 *   -EACCES           the client's address matches no client spec of the
 *                     export, or its transport is not in the spec's
 *                     xprtsec= (knfsd answers nfserr_acces to NFSv3 for
 *                     both; AUTH_TOOWEAK is not used per export).
 * A refusal is logged (INFO) with the peer, the export and the reason.
 */
int nfs3__export_for_fh(const struct nfsd_exports *xs, const struct krpc_svc_req *req, const struct nfs3_fh *fh,
                        struct nfsd_export **exp, const struct nfs3_export_opts **opts);

/*
 * The export MNT of path reaches: the export whose path (canonical, or as
 * written in the exports file) is path or its longest prefix at a '/'.
 * *rel gets the rest ("" for the export itself). -EACCES when no export
 * contains path or the client matches none of its specs (MNT3ERR_ACCES, as
 * mountd); xprtsec= is not checked here: Linux, FreeBSD and libnfs clients
 * mount in the clear before they start TLS for NFS.
 */
int nfs3__export_for_path(const struct nfsd_exports *xs, const struct krpc_svc_req *req, const char *path,
                          struct nfsd_export **exp, const struct nfs3_export_opts **opts, const char **rel);

/* ---- operations (backend_ops.c) ----------------------------------------- */

void nfs3__fattr(const struct nfsd_be *be, const struct stat *st, struct nfs3_fattr *out);
void nfs3__post_attr_fd(const struct nfsd_be *be, int fd, struct nfs3_post_attr *out);
void nfs3__pre_attr(const struct stat *st, struct nfs3_pre_attr *out);

struct nfsd_lookup {
    struct nfs3_fh fh;
    struct stat st;
};
/* dir must be a directory. "." and ".." handled; ".." at the root is the root. */
int nfs3__op_lookup(struct nfsd_be *be, struct nfsd_obj *dir, const char *name, struct nfsd_lookup *out);
int nfs3__op_setattr(struct nfsd_be *be, struct nfsd_obj *o, const struct nfs3_sattr *sa);
/* The ACCESS bits of want that the calling thread's identity has on o. */
uint32_t nfs3__op_access(const struct nfsd_obj *o, uint32_t want);
int nfs3__op_readlink(struct nfsd_obj *o, char *buf, size_t len);
/* Appends up to count bytes at offset to data (pool pages); *eof set. */
int nfs3__op_read(struct nfsd_be *be, struct nfsd_obj *o, uint64_t offset, uint32_t count, struct mb_chain *data,
                  int *eof, struct stat *post);
/* pwritev straight from data's iovecs; *committed is what was synced. */
int nfs3__op_write(struct nfsd_be *be, struct nfsd_obj *o, uint64_t offset, const struct mb_chain *data,
                   uint32_t stable, uint32_t *committed, struct stat *pre, struct stat *post);
int nfs3__op_commit(struct nfsd_be *be, struct nfsd_obj *o, struct stat *post);
/* CREATE / MKDIR / SYMLINK: out gets the new object's handle and stat. */
int nfs3__op_create(struct nfsd_be *be, struct nfsd_obj *dir, const struct nfs3_create_args *a,
                    struct nfsd_lookup *out);
int nfs3__op_mkdir(struct nfsd_be *be, struct nfsd_obj *dir, const char *name, const struct nfs3_sattr *sa,
                   struct nfsd_lookup *out);
/* MKNOD: FIFOs and sockets; device nodes are refused (-EOPNOTSUPP). */
int nfs3__op_mknod(struct nfsd_be *be, struct nfsd_obj *dir, const struct nfs3_mknod_args *a, struct nfsd_lookup *out);
int nfs3__op_symlink(struct nfsd_be *be, struct nfsd_obj *dir, const char *name, const char *target,
                     const struct nfs3_sattr *sa, struct nfsd_lookup *out);
int nfs3__op_remove(struct nfsd_be *be, struct nfsd_obj *dir, const char *name, int rmdir);
int nfs3__op_rename(struct nfsd_be *be, struct nfsd_obj *from, const char *fname, struct nfsd_obj *to,
                    const char *tname);
int nfs3__op_link(struct nfsd_be *be, struct nfsd_obj *file, struct nfsd_obj *dir, const char *name);
/* READDIR / READDIRPLUS entries into the builder, from cookie on. */
int nfs3__op_readdir(struct nfsd_be *be, struct nfsd_obj *dir, uint64_t cookie, int plus,
                     struct nfs3_readdir_enc *enc, int *eof);

/* ---- identity (ident.c) ------------------------------------------------- */

#define NFSD_IDENT_MAX_GROUPS 128

/* Who a call runs as. */
struct nfsd_ident {
    uid_t uid;
    gid_t gid;
    unsigned ngroups;
    gid_t groups[NFSD_IDENT_MAX_GROUPS];
};

/* The server's own identity, and whether it may switch to others. */
struct nfsd_idctx {
    int can_switch; /* root, or CAP_SETUID + CAP_SETGID */
    uid_t uid;
    gid_t gid;
    unsigned ngroups;
    gid_t groups[NFSD_IDENT_MAX_GROUPS];
};

/* The calling thread's fsuid and fsgid (per thread: see ident.c). */
long nfs3__cur_fsuid(void);
long nfs3__cur_fsgid(void);
/* Reads the process's ids and finds out (by trying) whether it can
 * switch; returns can_switch. */
int nfs3__idctx_init(struct nfsd_idctx *c);
/* The identity for an RPC credential under the export's policy: AUTH_SYS
 * squashed as knfsd does, anything else anonymous. */
void nfs3__ident_from_cred(const struct nfs3_export_opts *o, const struct krpc_cred *cred, struct nfsd_ident *id);
/* Squashing alone (root_squash: uid 0, gid 0 and group 0 -> anon;
 * all_squash: everything -> anon, no groups). */
void nfs3__ident_squash(const struct nfs3_export_opts *o, struct nfsd_ident *id);
/* Switches this thread to id (no-op without can_switch): 0, or -errno
 * when the switch did not take (the call must fail). */
int nfs3__ident_enter(const struct nfsd_idctx *c, const struct nfsd_ident *id);
/* Back to the server's ids; 0, or -errno when that did not work. */
int nfs3__ident_leave(const struct nfsd_idctx *c);
/* Between enter and leave: runs a stretch as the server's fsuid (handle
 * resolution and export walks: a handle is a capability, as in knfsd, and
 * a walk must see the whole export whoever asked). Nests. */
void nfs3__ident_server_begin(void);
void nfs3__ident_server_end(void);
/* tlscertuser: "user@domain" from the client certificate -> that local
 * user and its groups (getpwnam_r, getgrouplist). The domain must equal
 * domain (case-insensitive). 0, or -EACCES (no user, foreign domain,
 * unknown user) / -ENOMEM with the reason in err. */
int nfs3__ident_from_cert_user(const char *user_at_domain, const char *domain, struct nfsd_ident *out, char *err,
                               size_t errlen);
/* The host's domain: the part after the first dot of its fully qualified
 * name, else getdomainname() unless "(none)". 0 or -ENOENT. */
int nfs3__default_domain(char *buf, size_t len);

/* ---- worker pool (pool.c) ------------------------------------------------ */

struct nfsd_pool;
struct nfsd_port;

/* A piece of work: prepared on the request's loop, run on a worker,
 * finished on the loop again. */
struct nfsd_job {
    struct nfsd_job *next;          /* pool-private */
    struct nfsd_port *port;         /* pool-private: the loop to hand back to */
    void *connkey;                  /* per-connection limit: jobs with the same key */
    void (*run)(struct nfsd_job *j);    /* on a worker: the work */
    void (*finish)(struct nfsd_job *j); /* on the loop: answer, then free the job */
    void (*drop)(struct nfsd_job *j);   /* at shutdown instead of finish: free, answer nothing */
};

/* nthreads workers; at most per_conn jobs of one connection queued or
 * running at a time (the rest wait in order). */
int nfs3__pool_new(unsigned nthreads, unsigned per_conn, struct nfsd_pool **out);
/* On the loop thread that owns the request: queues j; its finish runs
 * later on that same loop. 0 or -errno (j untouched). */
int nfs3__pool_submit(struct nfsd_pool *p, struct krpc_loop *loop, struct nfsd_job *j);
/* Stops and joins the workers (each finishes its current job) and drops
 * every job not finished: their replies are never sent. Idempotent. Call
 * with the loops stopped. */
void nfs3__pool_shutdown(struct nfsd_pool *p);
void nfs3__pool_free(struct nfsd_pool *p);
/* Sleeps ms, or less when the pool shuts down (test hooks). p NULL: a
 * plain sleep. */
void nfs3__pool_sleep_ms(struct nfsd_pool *p, unsigned ms);

#endif
