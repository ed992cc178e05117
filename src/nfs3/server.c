/*
 * server.c - MOUNT v3 and NFSv3 dispatch for the rpctls server: decode the
 * arguments (a decode failure is GARBAGE_ARGS), resolve handles, call the
 * backend, map errno to nfsstat3, encode the result with the RFC's
 * attributes (post_op_attr, wcc_data) in both arms.
 *
 * Procedures (DECISIONS, see docs/nfs3-server.md):
 *   - all of RFC 1813; MKNOD makes FIFOs and sockets, and answers
 *     NFS3ERR_NOTSUPP for device nodes (a client's device node would hand
 *     out the device);
 *   - the duplicate-request cache holds the non-idempotent ones: SETATTR,
 *     CREATE, MKDIR, SYMLINK, MKNOD, REMOVE, RMDIR, RENAME, LINK. WRITE is
 *     flagged idempotent: a retransmitted WRITE writes the same bytes at
 *     the same offset again, and keeping it out of the cache spares the
 *     cache's checksum pass over every data byte (our clients never send
 *     overlapping WRITEs whose reordering could matter);
 *   - MOUNT: an export is mounted by its absolute path (with or without a
 *     trailing slash), or a directory beneath it by its absolute path (as
 *     the kernel's mountd allows; libnfs mounts the URL's directory); the
 *     longest exported path wins. A path in no export, or a client that
 *     none of the export's client specs matches, is MNT3ERR_ACCES (as
 *     mountd); a missing directory beneath an export MNT3ERR_NOENT. DUMP
 *     answers an empty list (no mount table is kept); UMNT and UMNTALL do
 *     nothing.
 *
 * Threads: every NFS procedure and MNT is decoded on the event loop and
 * runs as a job (struct srv_job) on the worker pool (pool.c), or on the
 * loop with io_threads 0. A job resolves its handles itself
 * (job_resolve): the export a handle belongs to gives the options for this
 * client, and those decide who the call runs as (ident.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "nfs3/nfsd_int.h"
#include "rpctls/krpc.h"
#include "rpctls/krpc_svc.h"

#define READDIR_MAX_REPLY (1u << 20) /* cap on the count a client may ask for */

/* Calls of one connection queued or running on the pool at a time; the
 * rest wait in order (the RPC layer bounds them: max_outstanding). */
#define PER_CONN_JOBS 16

/* Counters are bumped by workers and loops at once. */
#define STAT_ADD(field, n) __atomic_fetch_add(&(field), (uint64_t)(n), __ATOMIC_RELAXED)

struct nfs3_srv {
    struct krpc_svc *svc;
    struct nfsd_exports ex; /* one namespace per export; the table is immutable after nfs3_srv_new */
    uint8_t write_verf[NFS3_WRITEVERFSIZE];
    char *state_dir;
    struct nfs3_srv_stats st;  /* atomic counters (STAT_ADD); walks is counted by each export */
    struct nfs3_srv_stats snap; /* what nfs3_srv_stats() last returned */
    struct nfsd_idctx idc;     /* the server's own ids; can_switch */
    char domain[256];          /* tlscertuser: the domain client certificates must name */
    struct nfsd_pool *pool;    /* NULL: io_threads 0, file-system work on the loop */
    unsigned commit_delay_ms;  /* test hook: RPCTLS_TEST_COMMIT_DELAY_MS */
    int svc_gone;              /* krpc_svc_free ran (its free hook): svc and its requests are gone */
};

/* One call's work, from decoding (on the loop) to the encoded results (on
 * a worker, or on the loop with io_threads 0) and the reply (on the loop).
 * What the worker touches is in here: the decoded arguments (WRITE data by
 * reference to the received pages: the chain is the job's own, its pages
 * are shared read-only and reference-counted), the results, and a copy of
 * the request's credential. The worker also reads the request's peer
 * address, TLS state and certificate subject (nfsd_export_for_fh): the
 * service sets them before the handler runs and frees the request only in
 * krpc_svc_reply, after the job has finished. */
struct srv_job;
typedef int (*exec_fn)(struct srv_job *job, struct krpc_xdr_enc *x);

struct srv_job {
    struct nfsd_job j; /* first: the pool hands back &j */
    struct nfs3_srv *s;
    struct krpc_svc_req *req; /* answered by job_finish, on the loop */
    exec_fn exec;
    uint32_t xid, prog, proc;
    struct krpc_cred cred;
    int tls;
    int as_server;     /* MOUNT: runs as the server, as mountd does */
    int entered;       /* switched to the caller's identity (job_resolve); job_work switches back */
    int switch_failed; /* that switch did not take: the call answers SYSTEM_ERR */
    char peer[64];
    char peer_user[256]; /* "user@domain" of the client certificate, "" if none */
    int status;
    struct mb_chain res;
    union {
        struct nfs3_fh_args getattr, readlink, fsstat, fsinfo, pathconf;
        struct nfs3_setattr_args setattr;
        struct nfs3_diropargs lookup, remove;
        struct nfs3_access_args access;
        struct nfs3_read_args read;
        struct nfs3_write_args write;
        struct nfs3_create_args create;
        struct nfs3_mkdir_args mkdir;
        struct nfs3_symlink_args symlink;
        struct nfs3_mknod_args mknod;
        struct nfs3_rename_args rename;
        struct nfs3_link_args link;
        struct nfs3_readdir_args readdir;
        struct nfs3_readdirplus_args readdirplus;
        struct nfs3_commit_args commit;
        struct nfs3_mnt_args mnt;
    } a;
};

/* ---- helpers -------------------------------------------------------------- */

static uint32_t stat_of(struct nfs3_srv *s, int e)
{
    uint32_t r;

    switch (-e) {
    case 0: return NFS3_OK;
    case EPERM: r = NFS3ERR_PERM; break;
    case ENOENT: r = NFS3ERR_NOENT; break;
    case ENXIO: r = NFS3ERR_NXIO; break;
    case EACCES: case ETXTBSY: r = NFS3ERR_ACCES; break;
    case EEXIST: r = NFS3ERR_EXIST; break;
    case EXDEV: r = NFS3ERR_XDEV; break;
    case ENODEV: r = NFS3ERR_NODEV; break;
    case ENOTDIR: r = NFS3ERR_NOTDIR; break;
    case EISDIR: r = NFS3ERR_ISDIR; break;
    case EINVAL: case ELOOP: r = NFS3ERR_INVAL; break;
    case EFBIG: r = NFS3ERR_FBIG; break;
    case ENOSPC: r = NFS3ERR_NOSPC; break;
    case EROFS: r = NFS3ERR_ROFS; break;
    case EMLINK: r = NFS3ERR_MLINK; break;
    case ENAMETOOLONG: r = NFS3ERR_NAMETOOLONG; break;
    case ENOTEMPTY: r = NFS3ERR_NOTEMPTY; break;
    case EDQUOT: r = NFS3ERR_DQUOT; break;
    case ESTALE: r = NFS3ERR_STALE; STAT_ADD(s->st.stale, 1); break;
    case EOPNOTSUPP: r = NFS3ERR_NOTSUPP; break;
    case NFSD_EBADHANDLE: r = NFS3ERR_BADHANDLE; STAT_ADD(s->st.badhandle, 1); break;
    case NFSD_ETOOSMALL: r = NFS3ERR_TOOSMALL; break;
    case NFSD_EBADTYPE: r = NFS3ERR_BADTYPE; break;
    case ENOMEM: case EAGAIN: r = NFS3ERR_JUKEBOX; break;
    case EIO: default: r = NFS3ERR_IO; break;
    }
    STAT_ADD(s->st.errors, 1);
    return r;
}

static int done(const struct srv_job *job, struct krpc_xdr_enc *x, uint32_t status)
{
    if (status != NFS3_OK)
        krpc_log(KRPC_LOG_DEBUG, "nfsd: xid %08x %s: %s", job->xid, nfs3_proc_name(job->proc), nfs3_stat_name(status));
    return krpc_xdr_enc_error(x) ? KRPC_SYSTEM_ERR : KRPC_SUCCESS;
}

static void post_attr_st(const struct nfsd_be *be, const struct stat *st, struct nfs3_post_attr *pa)
{
    pa->present = 1;
    nfsd_fattr(be, st, &pa->attr);
}

/* be: the object's export (NULL when it was not resolved, o->fd < 0). */
static void obj_post_attr(const struct nfsd_be *be, const struct nfsd_obj *o, struct nfs3_post_attr *pa)
{
    memset(pa, 0, sizeof(*pa));
    if (o->fd >= 0)
        nfsd_post_attr_fd(be, o->fd, pa);
}

/* wcc_data of an object resolved before the operation. */
static void obj_wcc(const struct nfsd_be *be, const struct nfsd_obj *o, struct nfs3_wcc *w)
{
    memset(w, 0, sizeof(*w));
    if (o->fd < 0)
        return;
    nfsd_pre_attr(&o->st, &w->before);
    nfsd_post_attr_fd(be, o->fd, &w->after);
}

static void obj_init(struct nfsd_obj *o)
{
    o->fd = -1;
    o->path[0] = '\0';
}

/* Handle -> export (for this caller: client spec, xprtsec) -> object.
 * write: the procedure changes the export, NFS3ERR_ROFS on a ro export
 * (after the access checks and the resolution, as knfsd's nfsd_permission
 * comes after fh_verify). *bep gets the export's namespace once the object
 * is resolved (so wcc_data can be returned with ROFS), else NULL; *optsp
 * the options that apply to this caller (set with *bep). The namespace is
 * walked as the server (nfsd_be_resolve). */
static int resolve(struct nfs3_srv *s, const struct krpc_svc_req *req, const struct nfs3_fh *fh, int write,
                   struct nfsd_obj *o, struct nfsd_be **bep, const struct nfs3_export_opts **optsp)
{
    const struct nfs3_export_opts *opts;
    struct nfsd_export *x;
    int e;

    *bep = NULL;
    *optsp = NULL;
    e = nfsd_export_for_fh(&s->ex, req, fh, &x, &opts);
    if (e == 0)
        e = nfsd_be_resolve(&x->be, fh, o);
    if (e != 0)
        return e;
    *bep = &x->be;
    *optsp = opts;
    return write && opts->ro ? -EROFS : 0;
}

#define SRV(arg) ((struct nfs3_srv *)(arg))

/* ---- identity ---------------------------------------------------------------- */

/* Who a call of this job runs as under opts, the options of the export and
 * client spec it reached. 0, or -EACCES (logged with the reason) when the
 * export maps users from client certificates (tlscertuser) and this call
 * has no usable one: FreeBSD -tlscertuser, the certificate's user replaces
 * AUTH_SYS. */
static int job_ident(const struct srv_job *job, const struct nfs3_export_opts *opts, struct nfsd_ident *id)
{
    const struct nfs3_srv *s = job->s;
    char why[300];

    if (!opts->tlscertuser) {
        nfsd_ident_from_cred(opts, &job->cred, id);
        return 0;
    }
    if (!job->tls)
        snprintf(why, sizeof(why), "not inside TLS (the export maps users from client certificates)");
    else if (nfsd_ident_from_cert_user(job->peer_user, s->domain, id, why, sizeof(why)) == 0) {
        nfsd_ident_squash(opts, id);
        return 0;
    }
    krpc_log(job->prog == NFS3_MNT_PROGRAM ? KRPC_LOG_WARN : KRPC_LOG_INFO, "nfsd: %s: %s refused: %s", job->peer,
             job->prog == NFS3_MNT_PROGRAM ? "MNT" : nfs3_proc_name(job->proc), why);
    return -EACCES;
}

/* Switches the thread to the caller's identity under opts (once per job;
 * job_work switches back). 0, -EACCES (tlscertuser refusal), or -EIO when
 * the switch did not take (the call then answers SYSTEM_ERR). */
static int job_enter(struct srv_job *job, const struct nfs3_export_opts *opts)
{
    struct nfs3_srv *s = job->s;
    struct nfsd_ident id;
    int ret;

    ret = job_ident(job, opts, &id);
    if (ret != 0)
        return ret;
    job->entered = 1; /* also on failure: job_work switches back from whatever took */
    ret = nfsd_ident_enter(&s->idc, &id);
    if (ret != 0) {
        krpc_log(KRPC_LOG_ERROR, "nfsd: xid %08x: cannot switch to uid %u gid %u: %s; answering SYSTEM_ERR",
                 job->xid, (unsigned)id.uid, (unsigned)id.gid, strerror(-ret));
        job->switch_failed = 1;
        return -EIO;
    }
    return 0;
}

/* ---- jobs ------------------------------------------------------------------- */

static struct srv_job *job_new(struct nfs3_srv *s, struct krpc_svc_req *req, exec_fn exec)
{
    struct srv_job *job = calloc(1, sizeof(*job));

    if (job == NULL)
        return NULL;
    job->s = s;
    job->req = req;
    job->exec = exec;
    job->xid = req->xid;
    job->prog = req->prog;
    job->proc = req->proc;
    job->cred = req->cred;
    job->tls = req->tls;
    krpc_format_addr((const struct sockaddr *)&req->peer, job->peer, sizeof(job->peer));
    snprintf(job->peer_user, sizeof(job->peer_user), "%s", req->peer_user != NULL ? req->peer_user : "");
    mb_chain_init(&job->res);
    if (req->prog == NFS3_PROGRAM)
        STAT_ADD(s->st.ops[req->proc < NFS3_NPROCS ? req->proc : 0], 1);
    return job;
}

static void job_release(struct srv_job *job)
{
    if (job->prog == NFS3_PROGRAM && job->proc == NFS3_PROC_WRITE)
        nfs3_write_args_free(&job->a.write); /* drops the references to the received pages */
    mb_chain_free(&job->res);
    free(job);
}

/* The work of a call; on a worker or (io_threads 0) on the loop. Returns
 * the RPC status; results are encoded into x. An NFS call starts as the
 * server and becomes its caller when job_resolve has found the export of
 * its first handle (the export's options for this client say who that
 * is); here it becomes the server again. */
static int job_work(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    int status, ret;

    status = job->exec(job, x);
    if (!job->entered)
        return status; /* MNT (as the server), or no handle got that far: nothing ran as a caller */
    if (job->switch_failed)
        status = KRPC_SYSTEM_ERR;
    ret = nfsd_ident_leave(&s->idc);
    job->entered = 0;
    if (ret != 0) {
        /* The thread's next call switches again from scratch; this one
         * must not claim success for work done as an unknown identity. */
        krpc_log(KRPC_LOG_ERROR, "nfsd: xid %08x: cannot switch back to the server's ids: %s; answering SYSTEM_ERR",
                 job->xid, strerror(-ret));
        status = KRPC_SYSTEM_ERR;
    }
    return status;
}

static struct srv_job *job_of(struct nfsd_job *j)
{
    return (struct srv_job *)j;
}

static void job_run(struct nfsd_job *j) /* worker */
{
    struct srv_job *job = job_of(j);
    struct krpc_xdr_enc x;

    krpc_xdr_enc_init(&x, &job->res);
    job->status = job_work(job, &x);
}

static void job_finish(struct nfsd_job *j) /* the request's loop */
{
    struct srv_job *job = job_of(j);

    krpc_svc_reply(job->req, job->status, &job->res);
    job_release(job);
}

static void job_drop(struct nfsd_job *j) /* shutdown: the request is gone or will be */
{
    job_release(job_of(j));
}

/* From a handler on the loop, arguments decoded: runs the job now (no
 * pool) or hands it to the pool and defers the answer. */
static int job_start(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    int status;

    /* A detached service (no loop) has nobody to hand replies back to. */
    if (s->pool != NULL && krpc_svc_req_loop(job->req) != NULL) {
        job->j.connkey = job->req->conn; /* opaque: calls of one connection share it */
        job->j.run = job_run;
        job->j.finish = job_finish;
        job->j.drop = job_drop;
        if (nfsd_pool_submit(s->pool, krpc_svc_req_loop(job->req), &job->j) == 0)
            return KRPC_SVC_DEFER;
        /* No port for this loop (out of memory): answer on the loop. */
    }
    status = job_work(job, x);
    job_release(job);
    return status;
}

/* Handle -> export -> object for the job (resolve), on the thread that
 * runs it. The first handle of a call also decides who the call runs as:
 * the identity policy (squashing, anonuid, tlscertuser) is that of the
 * handle's export for this client, so it is known only now; the other
 * handle of RENAME or LINK is in the same export or the call fails with
 * XDEV. A refused caller (tlscertuser) gets -EACCES and nothing opened. */
static int job_resolve(struct srv_job *job, const struct nfs3_fh *fh, int write, struct nfsd_obj *o,
                       struct nfsd_be **bep, const struct nfs3_export_opts **optsp)
{
    const struct nfs3_export_opts *opts;
    int e, ret;

    e = resolve(job->s, job->req, fh, write, o, bep, &opts);
    if (*bep != NULL && !job->entered) {
        ret = job_enter(job, opts);
        if (ret != 0) {
            nfsd_obj_close(o);
            obj_init(o);
            *bep = NULL;
            opts = NULL;
            e = ret;
        }
    }
    if (optsp != NULL)
        *optsp = opts;
    return e;
}

/* A handler: decode on the loop, then job_start. */
#define HANDLER(name, decfn, member)                                                                             \
    static int p_##name(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)    \
    {                                                                                                            \
        struct srv_job *job = job_new(SRV(arg), req, x_##name);                                                  \
        if (job == NULL)                                                                                         \
            return KRPC_SYSTEM_ERR;                                                                              \
        if (decfn(d, &job->a.member) != 0) {                                                                     \
            job_release(job);                                                                                    \
            return KRPC_GARBAGE_ARGS;                                                                            \
        }                                                                                                        \
        return job_start(job, x);                                                                                \
    }

/* ---- NFSv3 procedures ------------------------------------------------------- */

static int x_getattr(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    struct nfs3_fh_args *a = &job->a.getattr;
    struct nfsd_be *be = NULL;
    struct nfs3_getattr_res r;
    struct nfsd_obj o;
    int e;

    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = job_resolve(job, &a->fh, 0, &o, &be, NULL);
    if (e == 0)
        nfsd_fattr(be, &o.st, &r.attr);
    r.status = stat_of(s, e);
    nfs3_enc_getattr_res(x, &r);
    nfsd_obj_close(&o);
    return done(job, x, r.status);
}
HANDLER(getattr, nfs3_dec_getattr_args, getattr)

static int x_setattr(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    struct nfs3_setattr_args *a = &job->a.setattr;
    struct nfsd_be *be = NULL;
    struct nfs3_wcc_res r;
    struct nfsd_obj o;
    int e;

    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = job_resolve(job, &a->fh, 1, &o, &be, NULL);
    if (e == 0 && a->guard_check &&
        (a->guard_ctime.seconds != (uint32_t)o.st.st_ctim.tv_sec ||
         a->guard_ctime.nseconds != (uint32_t)o.st.st_ctim.tv_nsec))
        r.status = NFS3ERR_NOT_SYNC;
    else {
        if (e == 0)
            e = nfsd_op_setattr(be, &o, &a->attr);
        r.status = stat_of(s, e);
    }
    obj_wcc(be, &o, &r.wcc);
    nfs3_enc_setattr_res(x, &r);
    nfsd_obj_close(&o);
    return done(job, x, r.status);
}
HANDLER(setattr, nfs3_dec_setattr_args, setattr)

static int x_lookup(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    struct nfs3_diropargs *a = &job->a.lookup;
    struct nfsd_be *be = NULL;
    struct nfs3_lookup_res r;
    struct nfsd_lookup l;
    struct nfsd_obj o;
    int e;

    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = job_resolve(job, &a->dir, 0, &o, &be, NULL);
    if (e == 0)
        e = nfsd_op_lookup(be, &o, a->name, &l);
    if (e == 0) {
        r.fh = l.fh;
        post_attr_st(be, &l.st, &r.obj_attr);
    }
    r.status = stat_of(s, e);
    obj_post_attr(be, &o, &r.dir_attr);
    nfs3_enc_lookup_res(x, &r);
    nfsd_obj_close(&o);
    return done(job, x, r.status);
}
HANDLER(lookup, nfs3_dec_lookup_args, lookup)

static int x_access(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    struct nfs3_access_args *a = &job->a.access;
    const struct nfs3_export_opts *opts = NULL;
    struct nfsd_be *be = NULL;
    struct nfs3_access_res r;
    struct nfsd_obj o;
    int e;

    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = job_resolve(job, &a->fh, 0, &o, &be, &opts);
    if (e == 0)
        r.access = nfsd_op_access(&o, a->access); /* for the caller: we run as it */
    if (e == 0 && opts->ro) /* what nfsd_permission would refuse with EROFS */
        r.access &= ~(NFS3_ACCESS_MODIFY | NFS3_ACCESS_EXTEND | NFS3_ACCESS_DELETE);
    r.status = stat_of(s, e);
    if (e == 0)
        post_attr_st(be, &o.st, &r.obj_attr);
    nfs3_enc_access_res(x, &r);
    nfsd_obj_close(&o);
    return done(job, x, r.status);
}
HANDLER(access, nfs3_dec_access_args, access)

static int x_readlink(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    struct nfs3_fh_args *a = &job->a.readlink;
    struct nfsd_be *be = NULL;
    struct nfs3_readlink_res *r;
    struct nfsd_obj o;
    int e, ret;

    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return KRPC_SYSTEM_ERR;
    obj_init(&o);
    e = job_resolve(job, &a->fh, 0, &o, &be, NULL);
    if (e == 0)
        e = nfsd_op_readlink(&o, r->data, sizeof(r->data));
    r->status = stat_of(s, e);
    if (o.fd >= 0)
        post_attr_st(be, &o.st, &r->symlink_attr);
    nfs3_enc_readlink_res(x, r);
    nfsd_obj_close(&o);
    ret = done(job, x, r->status);
    free(r);
    return ret;
}
HANDLER(readlink, nfs3_dec_readlink_args, readlink)

static int x_read(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    struct nfs3_read_args *a = &job->a.read;
    struct nfsd_be *be = NULL;
    struct nfs3_read_res r;
    struct nfsd_obj o;
    struct stat post;
    int e;

    memset(&r, 0, sizeof(r));
    mb_chain_init(&r.data);
    obj_init(&o);
    e = job_resolve(job, &a->fh, 0, &o, &be, NULL);
    if (e == 0)
        e = nfsd_op_read(be, &o, a->offset, a->count, &r.data, &r.eof, &post);
    r.status = stat_of(s, e);
    if (e == 0) {
        r.count = (uint32_t)r.data.len;
        STAT_ADD(s->st.bytes_read, r.data.len);
        post_attr_st(be, &post, &r.file_attr);
    } else {
        obj_post_attr(be, &o, &r.file_attr);
    }
    nfs3_enc_read_res(x, &r); /* links the pages in by reference */
    nfs3_read_res_free(&r);
    nfsd_obj_close(&o);
    return done(job, x, r.status);
}
HANDLER(read, nfs3_dec_read_args, read)

static int x_write(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    struct nfs3_write_args *a = &job->a.write;
    struct nfsd_be *be = NULL;
    struct nfs3_write_res r;
    struct nfsd_obj o;
    struct stat pre, post;
    int e;

    /* count != data length fails to decode: GARBAGE_ARGS (nfs3.h). */
    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = job_resolve(job, &a->fh, 1, &o, &be, NULL);
    /* More than the wtmax FSINFO advertised (--max-io): INVAL, nothing
     * written. (The decoder takes up to NFS3_MAX_DATA; a short write would
     * be legal too, but a client that ignores wtmax is broken.) */
    if (e == 0 && a->count > be->wtmax)
        e = -EINVAL;
    if (e == 0) {
        e = nfsd_op_write(be, &o, a->offset, &a->data, a->stable, &r.committed, &pre, &post);
        if (e == 0) {
            r.count = (uint32_t)a->data.len;
            STAT_ADD(s->st.bytes_written, a->data.len);
            if (r.committed != NFS3_UNSTABLE)
                STAT_ADD(s->st.syncs, 1);
            nfsd_pre_attr(&pre, &r.file_wcc.before);
            post_attr_st(be, &post, &r.file_wcc.after);
        }
    }
    r.status = stat_of(s, e);
    if (e != 0)
        obj_wcc(be, &o, &r.file_wcc);
    memcpy(r.verf, s->write_verf, sizeof(r.verf)); /* server-wide: also when the handle is refused */
    nfs3_enc_write_res(x, &r);
    nfsd_obj_close(&o);
    return done(job, x, r.status);
}
HANDLER(write, nfs3_dec_write_args, write)

/* CREATE, MKDIR, SYMLINK, MKNOD share the result shape. */
static void diropres_fill(struct nfs3_srv *s, const struct nfsd_be *be, int e, const struct nfsd_lookup *l,
                          const struct nfsd_obj *dir, struct nfs3_diropres *r)
{
    r->status = stat_of(s, e);
    if (e == 0) {
        r->fh_present = 1;
        r->fh = l->fh;
        post_attr_st(be, &l->st, &r->obj_attr);
    }
    obj_wcc(be, dir, &r->dir_wcc);
}

static int x_create(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    struct nfs3_create_args *a = &job->a.create;
    struct nfsd_be *be = NULL;
    struct nfs3_diropres r;
    struct nfsd_lookup l;
    struct nfsd_obj o;
    int e;

    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = job_resolve(job, &a->where.dir, 1, &o, &be, NULL);
    if (e == 0)
        e = nfsd_op_create(be, &o, a, &l);
    diropres_fill(s, be, e, &l, &o, &r);
    nfs3_enc_create_res(x, &r);
    nfsd_obj_close(&o);
    return done(job, x, r.status);
}
HANDLER(create, nfs3_dec_create_args, create)

static int x_mkdir(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    struct nfs3_mkdir_args *a = &job->a.mkdir;
    struct nfsd_be *be = NULL;
    struct nfs3_diropres r;
    struct nfsd_lookup l;
    struct nfsd_obj o;
    int e;

    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = job_resolve(job, &a->where.dir, 1, &o, &be, NULL);
    if (e == 0)
        e = nfsd_op_mkdir(be, &o, a->where.name, &a->attr, &l);
    diropres_fill(s, be, e, &l, &o, &r);
    nfs3_enc_mkdir_res(x, &r);
    nfsd_obj_close(&o);
    return done(job, x, r.status);
}
HANDLER(mkdir, nfs3_dec_mkdir_args, mkdir)

static int x_symlink(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    struct nfs3_symlink_args *a = &job->a.symlink;
    struct nfsd_be *be = NULL;
    struct nfs3_diropres r;
    struct nfsd_lookup l;
    struct nfsd_obj o;
    int e;

    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = job_resolve(job, &a->where.dir, 1, &o, &be, NULL);
    if (e == 0)
        e = nfsd_op_symlink(be, &o, a->where.name, a->data, &a->attr, &l);
    diropres_fill(s, be, e, &l, &o, &r);
    nfs3_enc_symlink_res(x, &r);
    nfsd_obj_close(&o);
    return done(job, x, r.status);
}
HANDLER(symlink, nfs3_dec_symlink_args, symlink)

static int x_mknod(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    struct nfs3_mknod_args *a = &job->a.mknod;
    struct nfsd_be *be = NULL;
    struct nfs3_diropres r;
    struct nfsd_lookup l;
    struct nfsd_obj o;
    int e;

    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = job_resolve(job, &a->where.dir, 1, &o, &be, NULL);
    if (e == 0)
        e = nfsd_op_mknod(be, &o, a, &l); /* FIFOs and sockets; device nodes NOTSUPP */
    diropres_fill(s, be, e, &l, &o, &r);
    nfs3_enc_mknod_res(x, &r);
    nfsd_obj_close(&o);
    return done(job, x, r.status);
}
HANDLER(mknod, nfs3_dec_mknod_args, mknod)

static int remove_common(struct srv_job *job, struct krpc_xdr_enc *x, int rmdir)
{
    struct nfs3_srv *s = job->s;
    struct nfs3_diropargs *a = &job->a.remove;
    struct nfsd_be *be = NULL;
    struct nfs3_wcc_res r;
    struct nfsd_obj o;
    int e;

    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = job_resolve(job, &a->dir, 1, &o, &be, NULL);
    if (e == 0)
        e = nfsd_op_remove(be, &o, a->name, rmdir);
    r.status = stat_of(s, e);
    obj_wcc(be, &o, &r.wcc);
    if (rmdir)
        nfs3_enc_rmdir_res(x, &r);
    else
        nfs3_enc_remove_res(x, &r);
    nfsd_obj_close(&o);
    return done(job, x, r.status);
}

static int x_remove(struct srv_job *job, struct krpc_xdr_enc *x)
{
    return remove_common(job, x, 0);
}

static int x_rmdir(struct srv_job *job, struct krpc_xdr_enc *x)
{
    return remove_common(job, x, 1);
}
HANDLER(remove, nfs3_dec_remove_args, remove)
HANDLER(rmdir, nfs3_dec_rmdir_args, remove)

static int x_rename(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    struct nfs3_rename_args *a = &job->a.rename;
    struct nfsd_be *be = NULL, *tbe = NULL;
    struct nfs3_rename_res r;
    struct nfsd_obj *from, *to;
    int e;

    from = malloc(2 * sizeof(*from)); /* two PATH_MAX buffers: not on the thread's stack */
    if (from == NULL)
        return KRPC_SYSTEM_ERR;
    to = from + 1;
    memset(&r, 0, sizeof(r));
    obj_init(from);
    obj_init(to);
    e = job_resolve(job, &a->from.dir, 1, from, &be, NULL);
    if (e == 0)
        e = job_resolve(job, &a->to.dir, 1, to, &tbe, NULL);
    if (e == 0 && be != tbe)
        e = -EXDEV; /* across exports (knfsd: nfserr_xdev) */
    if (e == 0)
        e = nfsd_op_rename(be, from, a->from.name, to, a->to.name);
    r.status = stat_of(s, e);
    obj_wcc(be, from, &r.fromdir_wcc);
    obj_wcc(tbe, to, &r.todir_wcc);
    nfs3_enc_rename_res(x, &r);
    nfsd_obj_close(from);
    nfsd_obj_close(to);
    free(from);
    return done(job, x, r.status);
}
HANDLER(rename, nfs3_dec_rename_args, rename)

static int x_link(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    struct nfs3_link_args *a = &job->a.link;
    struct nfsd_be *be = NULL, *dbe = NULL;
    struct nfs3_link_res r;
    struct nfsd_obj *file, *dir;
    int e;

    file = malloc(2 * sizeof(*file));
    if (file == NULL)
        return KRPC_SYSTEM_ERR;
    dir = file + 1;
    memset(&r, 0, sizeof(r));
    obj_init(file);
    obj_init(dir);
    e = job_resolve(job, &a->fh, 1, file, &be, NULL);
    if (e == 0)
        e = job_resolve(job, &a->link.dir, 1, dir, &dbe, NULL);
    if (e == 0 && be != dbe)
        e = -EXDEV; /* across exports (knfsd: nfserr_xdev) */
    if (e == 0)
        e = nfsd_op_link(be, file, dir, a->link.name);
    r.status = stat_of(s, e);
    obj_post_attr(be, file, &r.file_attr);
    obj_wcc(dbe, dir, &r.linkdir_wcc);
    nfs3_enc_link_res(x, &r);
    nfsd_obj_close(file);
    nfsd_obj_close(dir);
    free(file);
    return done(job, x, r.status);
}
HANDLER(link, nfs3_dec_link_args, link)

static int readdir_common(struct srv_job *job, struct krpc_xdr_enc *x, int plus, const struct nfs3_fh *fh,
                          uint64_t cookie, uint32_t dircount, uint32_t maxcount)
{
    struct nfs3_srv *s = job->s;
    struct nfsd_be *be = NULL;
    struct nfs3_readdir_enc enc;
    struct nfs3_readdir_res r;
    struct nfsd_obj o;
    int e;

    /* The encoder reads 0 as "no limit"; from a client 0 means a reply that
     * cannot hold anything (NFS3ERR_TOOSMALL), and a dircount of 0 is no hint. */
    if (maxcount == 0)
        maxcount = 1;
    if (maxcount > READDIR_MAX_REPLY)
        maxcount = READDIR_MAX_REPLY;
    if (dircount == 0 || dircount > maxcount)
        dircount = maxcount;
    memset(&r, 0, sizeof(r));
    obj_init(&o);
    nfs3_readdir_enc_begin(&enc, plus, maxcount, dircount);
    e = job_resolve(job, fh, 0, &o, &be, NULL);
    if (e == 0)
        e = nfsd_op_readdir(be, &o, cookie, plus, &enc, &r.eof);
    r.status = stat_of(s, e);
    /* The cookie verifier is always zero: cookies are d_off values, which
     * stay meaningful while the directory changes (as knfsd does). */
    obj_post_attr(be, &o, &r.dir_attr);
    nfs3_readdir_enc_end(&enc, x, &r);
    nfsd_obj_close(&o);
    return done(job, x, r.status);
}

static int x_readdir(struct srv_job *job, struct krpc_xdr_enc *x)
{
    const struct nfs3_readdir_args *a = &job->a.readdir;
    return readdir_common(job, x, 0, &a->dir, a->cookie, 0, a->count);
}
HANDLER(readdir, nfs3_dec_readdir_args, readdir)

static int x_readdirplus(struct srv_job *job, struct krpc_xdr_enc *x)
{
    const struct nfs3_readdirplus_args *a = &job->a.readdirplus;
    return readdir_common(job, x, 1, &a->dir, a->cookie, a->dircount, a->maxcount);
}
HANDLER(readdirplus, nfs3_dec_readdirplus_args, readdirplus)

static int x_fsstat(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    struct nfs3_fh_args *a = &job->a.fsstat;
    struct nfsd_be *be = NULL;
    struct nfs3_fsstat_res r;
    struct nfsd_obj o;
    struct statvfs v;
    int e;

    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = job_resolve(job, &a->fh, 0, &o, &be, NULL);
    if (e == 0 && fstatvfs(o.fd, &v) != 0)
        e = -errno;
    if (e == 0) {
        r.tbytes = (uint64_t)v.f_blocks * v.f_frsize;
        r.fbytes = (uint64_t)v.f_bfree * v.f_frsize;
        r.abytes = (uint64_t)v.f_bavail * v.f_frsize;
        r.tfiles = v.f_files;
        r.ffiles = v.f_ffree;
        r.afiles = v.f_favail;
        r.invarsec = 0;
    }
    r.status = stat_of(s, e);
    obj_post_attr(be, &o, &r.obj_attr);
    nfs3_enc_fsstat_res(x, &r);
    nfsd_obj_close(&o);
    return done(job, x, r.status);
}
HANDLER(fsstat, nfs3_dec_fsstat_args, fsstat)

static int x_fsinfo(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    struct nfs3_fh_args *a = &job->a.fsinfo;
    struct nfsd_be *be = NULL;
    struct nfs3_fsinfo_res r;
    struct nfsd_obj o;
    int e;

    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = job_resolve(job, &a->fh, 0, &o, &be, NULL);
    if (e == 0) {
        r.rtmax = be->rtmax;
        r.rtpref = be->rtmax;
        r.rtmult = MB_PAGE_SIZE;
        r.wtmax = be->wtmax;
        r.wtpref = be->wtmax;
        r.wtmult = MB_PAGE_SIZE;
        r.dtpref = 65536;
        r.maxfilesize = (uint64_t)INT64_MAX;
        r.time_delta.seconds = 0;
        r.time_delta.nseconds = 1;
        r.properties = NFS3_FSF_LINK | NFS3_FSF_SYMLINK | NFS3_FSF_HOMOGENEOUS | NFS3_FSF_CANSETTIME;
    }
    r.status = stat_of(s, e);
    obj_post_attr(be, &o, &r.obj_attr);
    nfs3_enc_fsinfo_res(x, &r);
    nfsd_obj_close(&o);
    return done(job, x, r.status);
}
HANDLER(fsinfo, nfs3_dec_fsinfo_args, fsinfo)

static int x_pathconf(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    struct nfs3_fh_args *a = &job->a.pathconf;
    struct nfsd_be *be = NULL;
    struct nfs3_pathconf_res r;
    struct nfsd_obj o;
    int e;

    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = job_resolve(job, &a->fh, 0, &o, &be, NULL);
    if (e == 0) {
        long lm = fpathconf(o.fd, _PC_LINK_MAX);
        long nm = fpathconf(o.fd, _PC_NAME_MAX);
        r.linkmax = lm > 0 && lm < (long)UINT32_MAX ? (uint32_t)lm : 1;
        r.name_max = nm > 0 && nm < NFS3_MAXNAMLEN ? (uint32_t)nm : NFS3_MAXNAMLEN;
        r.no_trunc = 1;
        r.chown_restricted = 1;
        r.case_insensitive = 0;
        r.case_preserving = 1;
    }
    r.status = stat_of(s, e);
    obj_post_attr(be, &o, &r.obj_attr);
    nfs3_enc_pathconf_res(x, &r);
    nfsd_obj_close(&o);
    return done(job, x, r.status);
}
HANDLER(pathconf, nfs3_dec_pathconf_args, pathconf)

static int x_commit(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    struct nfs3_commit_args *a = &job->a.commit;
    struct nfsd_be *be = NULL;
    struct nfs3_commit_res r;
    struct nfsd_obj o;
    struct stat post;
    int e;

    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = job_resolve(job, &a->fh, 1, &o, &be, NULL);
    if (e == 0) {
        /* Test hook: a slow disk, on whichever thread runs the call. */
        if (s->commit_delay_ms != 0)
            nfsd_pool_sleep_ms(s->pool, s->commit_delay_ms);
        /* The whole file, whatever the range: fdatasync has no range. */
        e = nfsd_op_commit(be, &o, &post);
        if (e == 0) {
            STAT_ADD(s->st.syncs, 1);
            nfsd_pre_attr(&o.st, &r.file_wcc.before);
            post_attr_st(be, &post, &r.file_wcc.after);
        }
    }
    r.status = stat_of(s, e);
    if (e != 0)
        obj_wcc(be, &o, &r.file_wcc);
    memcpy(r.verf, s->write_verf, sizeof(r.verf)); /* server-wide: also when the handle is refused */
    nfs3_enc_commit_res(x, &r);
    nfsd_obj_close(&o);
    return done(job, x, r.status);
}
HANDLER(commit, nfs3_dec_commit_args, commit)

/* ---- MOUNT v3 -------------------------------------------------------------- */

static int x_mnt(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    const struct nfs3_mnt_args *a = &job->a.mnt;
    const struct nfs3_export_opts *opts = NULL;
    struct nfsd_export *xp = NULL;
    struct nfs3_mnt_res r;
    struct nfsd_ident id;
    const char *rel = NULL;
    int e;

    memset(&r, 0, sizeof(r));
    /* An export this client may use (else ACCES, as mountd); a caller the
     * export cannot map to a user (tlscertuser without a usable certificate
     * user: job_ident logs why) is refused too. Then the export itself or
     * (as the kernel's mountd allows) a directory beneath it, reached
     * without symlinks or "..". */
    e = nfsd_export_for_path(&s->ex, job->req, a->dirpath, &xp, &opts, &rel);
    if (e == 0)
        e = job_ident(job, opts, &id); /* MNT itself runs as the server; only the refusal matters */
    if (e == 0 && rel[0] == '\0') {
        nfsd_fh_make(&xp->be.fh, xp->be.rootino, xp->be.rootgen, &r.fh);
    } else if (e == 0) {
        struct stat st;
        uint32_t gen = 0;
        e = nfsd_be_lookup_path(&xp->be, rel, &st, &gen);
        if (e == 0)
            nfsd_be_fh(&xp->be, &st, gen, &r.fh);
    }
    if (e == 0) {
        r.status = MNT3_OK;
        r.nflavors = 2;
        r.flavors[0] = KRPC_AUTH_SYS;
        r.flavors[1] = KRPC_AUTH_NONE;
        krpc_log(KRPC_LOG_INFO, "nfsd: %s mounted %s%s%s", job->peer, a->dirpath, opts->ro ? " (ro)" : "",
                 job->tls ? " (TLS)" : "");
    } else {
        r.status = e == -ENOENT         ? MNT3ERR_NOENT
                   : e == -ENOTDIR      ? MNT3ERR_NOTDIR
                   : e == -ENAMETOOLONG ? MNT3ERR_NAMETOOLONG
                   : e == -EACCES       ? MNT3ERR_ACCES
                                        : MNT3ERR_IO;
        memset(&r.fh, 0, sizeof(r.fh));
        krpc_log(KRPC_LOG_INFO, "nfsd: %s: MNT %s: %s", job->peer, a->dirpath, nfs3_mnt_stat_name(r.status));
    }
    nfs3_mnt_enc_mnt_res(x, &r);
    return krpc_xdr_enc_error(x) ? KRPC_SYSTEM_ERR : KRPC_SUCCESS;
}

/* MNT walks directories: on the pool, as the server (mountd runs as root;
 * the export's policy decides who may mount, not file permissions). */
static int m_mnt(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    struct nfs3_srv *s = SRV(arg);
    struct srv_job *job;

    STAT_ADD(s->st.mnt_ops[NFS3_MNT_PROC_MNT], 1);
    job = job_new(s, req, x_mnt);
    if (job == NULL)
        return KRPC_SYSTEM_ERR;
    if (nfs3_mnt_dec_mnt_args(d, &job->a.mnt) != 0) {
        job_release(job);
        return KRPC_GARBAGE_ARGS;
    }
    job->as_server = 1;
    return job_start(job, x);
}

static int m_dump(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    STAT_ADD(SRV(arg)->st.mnt_ops[NFS3_MNT_PROC_DUMP], 1);
    nfs3_mnt_enc_dump_res(x, NULL, 0);
    return krpc_xdr_enc_error(x) ? KRPC_SYSTEM_ERR : KRPC_SUCCESS;
}

static int m_umnt(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    struct nfs3_mnt_args a;

    STAT_ADD(SRV(arg)->st.mnt_ops[NFS3_MNT_PROC_UMNT], 1);
    if (nfs3_mnt_dec_umnt_args(d, &a) != 0)
        return KRPC_GARBAGE_ARGS;
    return KRPC_SUCCESS;
}

static int m_umntall(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    STAT_ADD(SRV(arg)->st.mnt_ops[NFS3_MNT_PROC_UMNTALL], 1);
    return KRPC_SUCCESS;
}

/* On the loop: the table is in memory, nothing blocks. */
static int m_export(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    struct nfs3_srv *s = SRV(arg);
    struct nfs3_mnt_export *ex;

    STAT_ADD(s->st.mnt_ops[NFS3_MNT_PROC_EXPORT], 1);
    ex = calloc(s->ex.n, sizeof(*ex));
    if (ex == NULL)
        return KRPC_SYSTEM_ERR;
    /* Every export with its client specs as written, to every client (as
     * mountd). The codec carries at most NFS3_MNT_MAXGROUPS per export. */
    for (size_t i = 0; i < s->ex.n; i++) {
        const struct nfs3_export_entry *e = s->ex.v[i].ent;
        snprintf(ex[i].dir, sizeof(ex[i].dir), "%s", s->ex.v[i].be.export_path);
        for (size_t j = 0; j < e->nclients && ex[i].ngroups < NFS3_MNT_MAXGROUPS; j++)
            snprintf(ex[i].groups[ex[i].ngroups++], sizeof(ex[i].groups[0]), "%s", e->clients[j].spec);
    }
    nfs3_mnt_enc_export_res(x, ex, (uint32_t)s->ex.n);
    free(ex);
    return krpc_xdr_enc_error(x) ? KRPC_SYSTEM_ERR : KRPC_SUCCESS;
}

/* ---- registration ------------------------------------------------------------ */

#define IDEM KRPC_PROC_IDEMPOTENT

static const struct krpc_proc_desc nfs_procs[NFS3_NPROCS] = {
    [NFS3_PROC_NULL] = {NULL, IDEM, "NULL"},
    [NFS3_PROC_GETATTR] = {p_getattr, IDEM, "GETATTR"},
    [NFS3_PROC_SETATTR] = {p_setattr, 0, "SETATTR"},
    [NFS3_PROC_LOOKUP] = {p_lookup, IDEM, "LOOKUP"},
    [NFS3_PROC_ACCESS] = {p_access, IDEM, "ACCESS"},
    [NFS3_PROC_READLINK] = {p_readlink, IDEM, "READLINK"},
    [NFS3_PROC_READ] = {p_read, IDEM, "READ"},
    [NFS3_PROC_WRITE] = {p_write, IDEM, "WRITE"},
    [NFS3_PROC_CREATE] = {p_create, 0, "CREATE"},
    [NFS3_PROC_MKDIR] = {p_mkdir, 0, "MKDIR"},
    [NFS3_PROC_SYMLINK] = {p_symlink, 0, "SYMLINK"},
    [NFS3_PROC_MKNOD] = {p_mknod, 0, "MKNOD"},
    [NFS3_PROC_REMOVE] = {p_remove, 0, "REMOVE"},
    [NFS3_PROC_RMDIR] = {p_rmdir, 0, "RMDIR"},
    [NFS3_PROC_RENAME] = {p_rename, 0, "RENAME"},
    [NFS3_PROC_LINK] = {p_link, 0, "LINK"},
    [NFS3_PROC_READDIR] = {p_readdir, IDEM, "READDIR"},
    [NFS3_PROC_READDIRPLUS] = {p_readdirplus, IDEM, "READDIRPLUS"},
    [NFS3_PROC_FSSTAT] = {p_fsstat, IDEM, "FSSTAT"},
    [NFS3_PROC_FSINFO] = {p_fsinfo, IDEM, "FSINFO"},
    [NFS3_PROC_PATHCONF] = {p_pathconf, IDEM, "PATHCONF"},
    [NFS3_PROC_COMMIT] = {p_commit, IDEM, "COMMIT"},
};

static const struct krpc_proc_desc mnt_procs[NFS3_MNT_NPROCS] = {
    [NFS3_MNT_PROC_NULL] = {NULL, IDEM, "NULL"},
    [NFS3_MNT_PROC_MNT] = {m_mnt, IDEM, "MNT"},
    [NFS3_MNT_PROC_DUMP] = {m_dump, IDEM, "DUMP"},
    [NFS3_MNT_PROC_UMNT] = {m_umnt, IDEM, "UMNT"},
    [NFS3_MNT_PROC_UMNTALL] = {m_umntall, IDEM, "UMNTALL"},
    [NFS3_MNT_PROC_EXPORT] = {m_export, IDEM, "EXPORT"},
};

/* krpc_svc_free is under way: its deferred requests are about to be freed.
 * Join the workers and drop every job, answered or not. */
static void srv_svc_gone(void *arg)
{
    struct nfs3_srv *s = arg;

    s->svc_gone = 1;
    nfsd_pool_shutdown(s->pool);
}

/* Whether some client of some export maps users from certificates. */
static int any_tlscertuser(const struct nfsd_exports *xs)
{
    for (size_t i = 0; i < xs->n; i++)
        for (size_t j = 0; j < xs->v[i].ent->nclients; j++)
            if (xs->v[i].ent->clients[j].opts.tlscertuser)
                return 1;
    return 0;
}

/* Identity and workers, once the exports are open. */
static int srv_setup_calls(struct nfs3_srv *s, const struct nfs3_srv_config *cfg, char *err, size_t errlen)
{
    const char *delay;
    int ret;

    if (!nfsd_idctx_init(&s->idc))
        krpc_log(KRPC_LOG_WARN,
                 "nfsd: not root (no CAP_SETUID/CAP_SETGID): every call runs as uid %u gid %u, whatever its "
                 "credential says",
                 (unsigned)s->idc.uid, (unsigned)s->idc.gid);
    if (cfg->domain != NULL && cfg->domain[0] != '\0')
        snprintf(s->domain, sizeof(s->domain), "%s", cfg->domain);
    else if (any_tlscertuser(&s->ex) && nfsd_default_domain(s->domain, sizeof(s->domain)) != 0)
        krpc_log(KRPC_LOG_WARN, "nfsd: tlscertuser: the host has no domain (set one with --domain): every "
                                "certificate user will be refused");
    delay = getenv("RPCTLS_TEST_COMMIT_DELAY_MS");
    if (delay != NULL)
        s->commit_delay_ms = (unsigned)strtoul(delay, NULL, 10);
    if (cfg->io_threads > 0) {
        ret = nfsd_pool_new(cfg->io_threads, PER_CONN_JOBS, &s->pool);
        if (ret != 0) {
            snprintf(err, errlen, "starting %u I/O threads: %s", cfg->io_threads, strerror(-ret));
            return ret;
        }
    }
    return 0;
}

int nfs3_srv_new(struct krpc_svc *svc, const struct nfs3_srv_config *cfg, struct nfs3_srv **out, char *err,
                 size_t errlen)
{
    static const struct nfs3_export_opts zero_opts;
    struct nfs3_srv *s;
    struct nfs3_exports one = {NULL, 0};
    const struct nfs3_exports *table = cfg->exports;
    uint8_t key[NFSD_FH_KEYLEN], verf[NFS3_WRITEVERFSIZE];
    uint32_t rtmax, wtmax;
    char sdir[PATH_MAX], dummy[8];
    int ret;

    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    *out = NULL;
    if (cfg->state_dir != NULL) {
        if ((size_t)snprintf(sdir, sizeof(sdir), "%s", cfg->state_dir) >= sizeof(sdir)) {
            snprintf(err, errlen, "state directory name too long");
            return -ENAMETOOLONG;
        }
    } else if ((ret = nfs3_srv_default_state_dir(sdir, sizeof(sdir))) != 0) {
        snprintf(err, errlen, "no default state directory (set --state-dir)");
        return ret;
    }
    if (table == NULL) {
        /* One directory for every client that reaches the listener, with
         * cfg->opts (default: rw, root squashed): the exports line
         * "PATH *(OPTS)". Options are taken as given: an explicit anonuid
         * 0 stays 0, as in an exports file. */
        struct nfs3_export_opts o = cfg->opts;
        if (memcmp(&cfg->opts, &zero_opts, sizeof(zero_opts)) == 0)
            nfs3_export_opts_default(&o);
        if (cfg->export_path == NULL) {
            snprintf(err, errlen, "no export");
            return -EINVAL;
        }
        if (nfs3_exports_add_any(&one, cfg->export_path, &o) != 0) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
        table = &one;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        nfs3_exports_free(&one);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    s->svc = svc;
    s->state_dir = strdup(sdir);
    if (s->state_dir == NULL) {
        snprintf(err, errlen, "out of memory");
        ret = -ENOMEM;
        goto fail;
    }
    ret = nfsd_fh_key_load(s->state_dir, key, err, errlen);
    if (ret != 0)
        goto fail;
    rtmax = cfg->rtmax ? cfg->rtmax : NFS3_SRV_DEFAULT_TMAX;
    wtmax = cfg->wtmax ? cfg->wtmax : NFS3_SRV_DEFAULT_TMAX;
    if (rtmax > NFS3_MAX_DATA)
        rtmax = NFS3_MAX_DATA;
    if (wtmax > NFS3_MAX_DATA)
        wtmax = NFS3_MAX_DATA;
    if (cfg->write_verf != NULL) {
        memcpy(verf, cfg->write_verf, NFS3_WRITEVERFSIZE);
    } else {
        /* A new verifier on every start: the start time in nanoseconds. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t v = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        for (int i = 7; i >= 0; i--, v >>= 8)
            verf[i] = (uint8_t)v;
    }
    memcpy(s->write_verf, verf, sizeof(verf));
    ret = nfsd_exports_open(&s->ex, table, key, rtmax, wtmax, verf, err, errlen);
    memset(key, 0, sizeof(key));
    if (ret != 0)
        goto fail;
    ret = srv_setup_calls(s, cfg, err, errlen);
    if (ret != 0)
        goto fail;
    {
        /* MOUNT in the clear too, unless told otherwise: Linux, FreeBSD and
         * libnfs clients reach mountd before (or without) TLS. Both programs
         * are MT_SAFE: handlers only decode and hand a job to the pool (or
         * run it inline under each namespace's lock); the stats are atomic;
         * the export table is immutable; every loop gets its own pool port.
         * So the server's loops run them in parallel. */
        struct krpc_prog_desc p = {NFS3_MNT_PROGRAM, NFS3_MNT_VERSION, NFS3_MNT_NPROCS, mnt_procs, s,
                                   KRPC_PROG_MT_SAFE | (cfg->mount_requires_tls ? 0u : KRPC_PROG_PLAIN_OK)};
        struct krpc_prog_desc n = {NFS3_PROGRAM, NFS3_VERSION, NFS3_NPROCS, nfs_procs, s, KRPC_PROG_MT_SAFE};
        ret = krpc_svc_register(svc, &p);
        if (ret != 0) {
            snprintf(err, errlen, "registering MOUNT: %s", strerror(-ret));
            goto fail;
        }
        ret = krpc_svc_register(svc, &n);
        if (ret != 0) {
            /* MOUNT's handlers point at s, which is freed below. */
            krpc_svc_unregister(svc, NFS3_MNT_PROGRAM, NFS3_MNT_VERSION);
            snprintf(err, errlen, "registering NFS: %s", strerror(-ret));
            goto fail;
        }
    }
    krpc_svc_set_free_hook(svc, srv_svc_gone, s);
    nfs3_exports_free(&one);
    *out = s;
    return 0;
fail:
    memset(key, 0, sizeof(key));
    nfs3_exports_free(&one);
    nfsd_pool_free(s->pool);
    nfsd_exports_close(&s->ex);
    free(s->state_dir);
    free(s);
    return ret;
}

void nfs3_srv_free(struct nfs3_srv *s)
{
    if (s == NULL)
        return;
    /* Normally krpc_svc_free ran first and its hook stopped the pool; if
     * not, the service must not call back into us. */
    if (!s->svc_gone)
        krpc_svc_set_free_hook(s->svc, NULL, NULL);
    nfsd_pool_free(s->pool);
    nfsd_exports_close(&s->ex);
    free(s->state_dir);
    free(s);
}

const char *nfs3_srv_export_path(const struct nfs3_srv *s)
{
    return s->ex.v[0].be.export_path;
}

size_t nfs3_srv_export_count(const struct nfs3_srv *s)
{
    return s->ex.n;
}

const char *nfs3_srv_export_path_at(const struct nfs3_srv *s, size_t i)
{
    return i < s->ex.n ? s->ex.v[i].be.export_path : NULL;
}

const char *nfs3_srv_state_dir(const struct nfs3_srv *s)
{
    return s->state_dir;
}

void nfs3_srv_write_verf(const struct nfs3_srv *s, uint8_t out[NFS3_WRITEVERFSIZE])
{
    memcpy(out, s->write_verf, NFS3_WRITEVERFSIZE);
}

void nfs3_srv_root_fh(const struct nfs3_srv *s, struct nfs3_fh *out)
{
    const struct nfsd_be *be = &s->ex.v[0].be;
    nfsd_fh_make(&be->fh, be->rootino, be->rootgen, out);
}

void nfs3_srv_stats_get(const struct nfs3_srv *s, struct nfs3_srv_stats *out)
{
    /* Every field is a uint64_t counter that workers and loops bump at
     * once: copy them one by one with atomic loads. */
    const uint64_t *src = (const uint64_t *)&s->st;
    uint64_t *dst = (uint64_t *)out;

    _Static_assert(sizeof(struct nfs3_srv_stats) % sizeof(uint64_t) == 0, "stats are uint64_t counters");
    for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
    out->walks = 0;
    for (size_t i = 0; i < s->ex.n; i++)
        out->walks += nfsd_be_walks(&s->ex.v[i].be); /* under each namespace's lock: workers walk meanwhile */
}

const struct nfs3_srv_stats *nfs3_srv_stats(struct nfs3_srv *s)
{
    nfs3_srv_stats_get(s, &s->snap);
    return &s->snap;
}
