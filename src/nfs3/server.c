/*
 * server.c - MOUNT v3 and NFSv3 dispatch for the rpctls server: decode the
 * arguments (a decode failure is GARBAGE_ARGS), resolve handles, call the
 * backend, map errno to nfsstat3, encode the result with the RFC's
 * attributes (post_op_attr, wcc_data) in both arms.
 *
 * Procedures (DECISIONS, see docs/nfs3-server.md):
 *   - all of RFC 1813 except MKNOD, which answers NFS3ERR_NOTSUPP;
 *   - the duplicate-request cache holds the non-idempotent ones: SETATTR,
 *     CREATE, MKDIR, SYMLINK, MKNOD, REMOVE, RMDIR, RENAME, LINK. WRITE is
 *     flagged idempotent: a retransmitted WRITE writes the same bytes at
 *     the same offset again, and keeping it out of the cache spares the
 *     cache's checksum pass over every data byte (our clients never send
 *     overlapping WRITEs whose reordering could matter);
 *   - MOUNT: the export is mounted by its absolute path (with or without a
 *     trailing slash), or a directory beneath it by its absolute path (as
 *     the kernel's mountd allows; libnfs mounts the URL's directory);
 *     anything else is MNT3ERR_NOENT (ACCES through a symlink or ".."). DUMP answers an
 *     empty list (no mount table is kept); UMNT and UMNTALL do nothing.
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
    struct nfsd_be be;
    char *state_dir;
    struct nfs3_srv_stats st;
    struct nfs3_export_opts opts;
    struct nfsd_idctx idc;     /* the server's own ids; can_switch */
    char domain[256];          /* tlscertuser: the domain client certificates must name */
    struct nfsd_pool *pool;    /* NULL: io_threads 0, file-system work on the loop */
    unsigned commit_delay_ms;  /* test hook: RPCTLS_TEST_COMMIT_DELAY_MS */
    int svc_gone;              /* krpc_svc_free ran (its free hook): svc and its requests are gone */
};

/* One call's work, from decoding (on the loop) to the encoded results (on
 * a worker, or on the loop with io_threads 0) and the reply (on the loop).
 * Everything the worker touches is in here: a copy of what it needs from
 * the request, the decoded arguments (WRITE data by reference to the
 * received pages: the chain is the job's own, its pages are shared
 * read-only and reference-counted), the results. */
struct srv_job;
typedef int (*exec_fn)(struct srv_job *job, struct krpc_xdr_enc *x);

struct srv_job {
    struct nfsd_job j; /* first: the pool hands back &j */
    struct nfs3_srv *s;
    struct krpc_svc_req *req; /* loop only: answered by job_finish */
    exec_fn exec;
    uint32_t xid, prog, proc;
    struct krpc_cred cred;
    int tls;
    int as_server;  /* MOUNT: runs as the server, as mountd does */
    int refuse;     /* -EACCES: the caller has no identity here (tlscertuser) */
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

static void post_attr_st(const struct nfs3_srv *s, const struct stat *st, struct nfs3_post_attr *pa)
{
    pa->present = 1;
    nfsd_fattr(&s->be, st, &pa->attr);
}

static void obj_post_attr(const struct nfs3_srv *s, const struct nfsd_obj *o, struct nfs3_post_attr *pa)
{
    memset(pa, 0, sizeof(*pa));
    if (o->fd >= 0)
        nfsd_post_attr_fd(&s->be, o->fd, pa);
}

/* wcc_data of an object resolved before the operation. */
static void obj_wcc(const struct nfs3_srv *s, const struct nfsd_obj *o, struct nfs3_wcc *w)
{
    memset(w, 0, sizeof(*w));
    if (o->fd < 0)
        return;
    nfsd_pre_attr(&o->st, &w->before);
    nfsd_post_attr_fd(&s->be, o->fd, &w->after);
}

static void obj_init(struct nfsd_obj *o)
{
    o->fd = -1;
    o->path[0] = '\0';
}

#define SRV(arg) ((struct nfs3_srv *)(arg))

/* tlsctx adds req->peer_user ("user@domain" from the client certificate);
 * until then no call carries one. LEAD: return req->peer_user. */
static const char *req_peer_user(const struct krpc_svc_req *req)
{
    (void)req;
    return "";
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
    snprintf(job->peer_user, sizeof(job->peer_user), "%s", req_peer_user(req));
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

/* Who the call runs as. Sets job->refuse when it may not run at all. */
static void job_ident(struct srv_job *job, struct nfsd_ident *id)
{
    const struct nfs3_srv *s = job->s;
    char why[300];

    if (!s->opts.tlscertuser) {
        nfsd_ident_from_cred(&s->opts, &job->cred, id);
        return;
    }
    /* FreeBSD -tlscertuser: the certificate's user replaces AUTH_SYS. */
    if (!job->tls)
        snprintf(why, sizeof(why), "not inside TLS (the export maps users from client certificates)");
    else if (nfsd_ident_from_cert_user(job->peer_user, s->domain, id, why, sizeof(why)) == 0) {
        nfsd_ident_squash(&s->opts, id);
        return;
    }
    job->refuse = -EACCES;
    nfsd_ident_from_cred(&s->opts, &(struct krpc_cred){0}, id); /* anonymous; nothing runs anyway */
    krpc_log(job->prog == NFS3_MNT_PROGRAM ? KRPC_LOG_WARN : KRPC_LOG_INFO, "nfsd: %s: %s refused: %s", job->peer,
             job->prog == NFS3_MNT_PROGRAM ? "MNT" : nfs3_proc_name(job->proc), why);
}

/* The work of a call, as its caller; on a worker or (io_threads 0) on the
 * loop. Returns the RPC status; results are encoded into x. */
static int job_work(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    struct nfsd_ident id;
    int status, ret;

    job_ident(job, &id);
    if (job->as_server)
        return job->exec(job, x);
    ret = nfsd_ident_enter(&s->idc, &id);
    if (ret != 0) {
        krpc_log(KRPC_LOG_ERROR, "nfsd: xid %08x: cannot switch to uid %u gid %u: %s; answering SYSTEM_ERR",
                 job->xid, (unsigned)id.uid, (unsigned)id.gid, strerror(-ret));
        nfsd_ident_leave(&s->idc);
        return KRPC_SYSTEM_ERR;
    }
    status = job->exec(job, x);
    ret = nfsd_ident_leave(&s->idc);
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

/* Handle -> object for the job (refused callers get ACCES, nothing opened). */
static int job_resolve(struct srv_job *job, const struct nfs3_fh *fh, struct nfsd_obj *o)
{
    if (job->refuse != 0) {
        o->fd = -1;
        o->path[0] = '\0';
        return job->refuse;
    }
    return nfsd_be_resolve(&job->s->be, fh, o);
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
    struct nfs3_getattr_res r;
    struct nfsd_obj o;
    int e;

    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = job_resolve(job, &a->fh, &o);
    if (e == 0)
        nfsd_fattr(&s->be, &o.st, &r.attr);
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
    struct nfs3_wcc_res r;
    struct nfsd_obj o;
    int e;

    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = job_resolve(job, &a->fh, &o);
    if (e == 0 && a->guard_check &&
        (a->guard_ctime.seconds != (uint32_t)o.st.st_ctim.tv_sec ||
         a->guard_ctime.nseconds != (uint32_t)o.st.st_ctim.tv_nsec))
        r.status = NFS3ERR_NOT_SYNC;
    else {
        if (e == 0)
            e = nfsd_op_setattr(&s->be, &o, &a->attr);
        r.status = stat_of(s, e);
    }
    obj_wcc(s, &o, &r.wcc);
    nfs3_enc_setattr_res(x, &r);
    nfsd_obj_close(&o);
    return done(job, x, r.status);
}
HANDLER(setattr, nfs3_dec_setattr_args, setattr)

static int x_lookup(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    struct nfs3_diropargs *a = &job->a.lookup;
    struct nfs3_lookup_res r;
    struct nfsd_lookup l;
    struct nfsd_obj o;
    int e;

    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = job_resolve(job, &a->dir, &o);
    if (e == 0)
        e = nfsd_op_lookup(&s->be, &o, a->name, &l);
    if (e == 0) {
        r.fh = l.fh;
        post_attr_st(s, &l.st, &r.obj_attr);
    }
    r.status = stat_of(s, e);
    obj_post_attr(s, &o, &r.dir_attr);
    nfs3_enc_lookup_res(x, &r);
    nfsd_obj_close(&o);
    return done(job, x, r.status);
}
HANDLER(lookup, nfs3_dec_lookup_args, lookup)

static int x_access(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    struct nfs3_access_args *a = &job->a.access;
    struct nfs3_access_res r;
    struct nfsd_obj o;
    int e;

    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = job_resolve(job, &a->fh, &o);
    if (e == 0)
        r.access = nfsd_op_access(&o, a->access); /* for the caller: we run as it */
    r.status = stat_of(s, e);
    if (e == 0)
        post_attr_st(s, &o.st, &r.obj_attr);
    nfs3_enc_access_res(x, &r);
    nfsd_obj_close(&o);
    return done(job, x, r.status);
}
HANDLER(access, nfs3_dec_access_args, access)

static int x_readlink(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    struct nfs3_fh_args *a = &job->a.readlink;
    struct nfs3_readlink_res *r;
    struct nfsd_obj o;
    int e, ret;

    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return KRPC_SYSTEM_ERR;
    obj_init(&o);
    e = job_resolve(job, &a->fh, &o);
    if (e == 0)
        e = nfsd_op_readlink(&o, r->data, sizeof(r->data));
    r->status = stat_of(s, e);
    if (o.fd >= 0)
        post_attr_st(s, &o.st, &r->symlink_attr);
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
    struct nfs3_read_res r;
    struct nfsd_obj o;
    struct stat post;
    int e;

    memset(&r, 0, sizeof(r));
    mb_chain_init(&r.data);
    obj_init(&o);
    e = job_resolve(job, &a->fh, &o);
    if (e == 0)
        e = nfsd_op_read(&s->be, &o, a->offset, a->count, &r.data, &r.eof, &post);
    r.status = stat_of(s, e);
    if (e == 0) {
        r.count = (uint32_t)r.data.len;
        STAT_ADD(s->st.bytes_read, r.data.len);
        post_attr_st(s, &post, &r.file_attr);
    } else {
        obj_post_attr(s, &o, &r.file_attr);
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
    struct nfs3_write_res r;
    struct nfsd_obj o;
    struct stat pre, post;
    int e;

    /* count != data length fails to decode: GARBAGE_ARGS (nfs3.h). */
    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = job_resolve(job, &a->fh, &o);
    /* More than the wtmax FSINFO advertised (--max-io): INVAL, nothing
     * written. (The decoder takes up to NFS3_MAX_DATA; a short write would
     * be legal too, but a client that ignores wtmax is broken.) */
    if (e == 0 && a->count > s->be.wtmax)
        e = -EINVAL;
    if (e == 0) {
        e = nfsd_op_write(&s->be, &o, a->offset, &a->data, a->stable, &r.committed, &pre, &post);
        if (e == 0) {
            r.count = (uint32_t)a->data.len;
            STAT_ADD(s->st.bytes_written, a->data.len);
            if (r.committed != NFS3_UNSTABLE)
                STAT_ADD(s->st.syncs, 1);
            nfsd_pre_attr(&pre, &r.file_wcc.before);
            post_attr_st(s, &post, &r.file_wcc.after);
        }
    }
    r.status = stat_of(s, e);
    if (e != 0)
        obj_wcc(s, &o, &r.file_wcc);
    memcpy(r.verf, s->be.write_verf, sizeof(r.verf));
    nfs3_enc_write_res(x, &r);
    nfsd_obj_close(&o);
    return done(job, x, r.status);
}
HANDLER(write, nfs3_dec_write_args, write)

/* CREATE, MKDIR, SYMLINK, MKNOD share the result shape. */
static void diropres_fill(struct nfs3_srv *s, int e, const struct nfsd_lookup *l, const struct nfsd_obj *dir,
                          struct nfs3_diropres *r)
{
    r->status = stat_of(s, e);
    if (e == 0) {
        r->fh_present = 1;
        r->fh = l->fh;
        post_attr_st(s, &l->st, &r->obj_attr);
    }
    obj_wcc(s, dir, &r->dir_wcc);
}

static int x_create(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    struct nfs3_create_args *a = &job->a.create;
    struct nfs3_diropres r;
    struct nfsd_lookup l;
    struct nfsd_obj o;
    int e;

    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = job_resolve(job, &a->where.dir, &o);
    if (e == 0)
        e = nfsd_op_create(&s->be, &o, a, &l);
    diropres_fill(s, e, &l, &o, &r);
    nfs3_enc_create_res(x, &r);
    nfsd_obj_close(&o);
    return done(job, x, r.status);
}
HANDLER(create, nfs3_dec_create_args, create)

static int x_mkdir(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    struct nfs3_mkdir_args *a = &job->a.mkdir;
    struct nfs3_diropres r;
    struct nfsd_lookup l;
    struct nfsd_obj o;
    int e;

    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = job_resolve(job, &a->where.dir, &o);
    if (e == 0)
        e = nfsd_op_mkdir(&s->be, &o, a->where.name, &a->attr, &l);
    diropres_fill(s, e, &l, &o, &r);
    nfs3_enc_mkdir_res(x, &r);
    nfsd_obj_close(&o);
    return done(job, x, r.status);
}
HANDLER(mkdir, nfs3_dec_mkdir_args, mkdir)

static int x_symlink(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    struct nfs3_symlink_args *a = &job->a.symlink;
    struct nfs3_diropres r;
    struct nfsd_lookup l;
    struct nfsd_obj o;
    int e;

    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = job_resolve(job, &a->where.dir, &o);
    if (e == 0)
        e = nfsd_op_symlink(&s->be, &o, a->where.name, a->data, &a->attr, &l);
    diropres_fill(s, e, &l, &o, &r);
    nfs3_enc_symlink_res(x, &r);
    nfsd_obj_close(&o);
    return done(job, x, r.status);
}
HANDLER(symlink, nfs3_dec_symlink_args, symlink)

static int x_mknod(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    struct nfs3_mknod_args *a = &job->a.mknod;
    struct nfs3_diropres r;
    struct nfsd_obj o;
    int e;

    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = job_resolve(job, &a->where.dir, &o);
    if (e == 0)
        e = -EOPNOTSUPP; /* no device nodes, FIFOs or sockets made for clients */
    diropres_fill(s, e, NULL, &o, &r);
    nfs3_enc_mknod_res(x, &r);
    nfsd_obj_close(&o);
    return done(job, x, r.status);
}
HANDLER(mknod, nfs3_dec_mknod_args, mknod)

static int remove_common(struct srv_job *job, struct krpc_xdr_enc *x, int rmdir)
{
    struct nfs3_srv *s = job->s;
    struct nfs3_diropargs *a = &job->a.remove;
    struct nfs3_wcc_res r;
    struct nfsd_obj o;
    int e;

    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = job_resolve(job, &a->dir, &o);
    if (e == 0)
        e = nfsd_op_remove(&s->be, &o, a->name, rmdir);
    r.status = stat_of(s, e);
    obj_wcc(s, &o, &r.wcc);
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
    struct nfs3_rename_res r;
    struct nfsd_obj *from, *to;
    int e;

    from = malloc(2 * sizeof(*from)); /* two PATH_MAX buffers: not on the loop's stack */
    if (from == NULL)
        return KRPC_SYSTEM_ERR;
    to = from + 1;
    memset(&r, 0, sizeof(r));
    obj_init(from);
    obj_init(to);
    e = job_resolve(job, &a->from.dir, from);
    if (e == 0)
        e = job_resolve(job, &a->to.dir, to);
    if (e == 0)
        e = nfsd_op_rename(&s->be, from, a->from.name, to, a->to.name);
    r.status = stat_of(s, e);
    obj_wcc(s, from, &r.fromdir_wcc);
    obj_wcc(s, to, &r.todir_wcc);
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
    e = job_resolve(job, &a->fh, file);
    if (e == 0)
        e = job_resolve(job, &a->link.dir, dir);
    if (e == 0)
        e = nfsd_op_link(&s->be, file, dir, a->link.name);
    r.status = stat_of(s, e);
    obj_post_attr(s, file, &r.file_attr);
    obj_wcc(s, dir, &r.linkdir_wcc);
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
    e = job_resolve(job, fh, &o);
    if (e == 0)
        e = nfsd_op_readdir(&s->be, &o, cookie, plus, &enc, &r.eof);
    r.status = stat_of(s, e);
    /* The cookie verifier is always zero: cookies are d_off values, which
     * stay meaningful while the directory changes (as knfsd does). */
    obj_post_attr(s, &o, &r.dir_attr);
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
    struct nfs3_fsstat_res r;
    struct nfsd_obj o;
    struct statvfs v;
    int e;

    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = job_resolve(job, &a->fh, &o);
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
    obj_post_attr(s, &o, &r.obj_attr);
    nfs3_enc_fsstat_res(x, &r);
    nfsd_obj_close(&o);
    return done(job, x, r.status);
}
HANDLER(fsstat, nfs3_dec_fsstat_args, fsstat)

static int x_fsinfo(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    struct nfs3_fh_args *a = &job->a.fsinfo;
    struct nfs3_fsinfo_res r;
    struct nfsd_obj o;
    int e;

    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = job_resolve(job, &a->fh, &o);
    if (e == 0) {
        r.rtmax = s->be.rtmax;
        r.rtpref = s->be.rtmax;
        r.rtmult = MB_PAGE_SIZE;
        r.wtmax = s->be.wtmax;
        r.wtpref = s->be.wtmax;
        r.wtmult = MB_PAGE_SIZE;
        r.dtpref = 65536;
        r.maxfilesize = (uint64_t)INT64_MAX;
        r.time_delta.seconds = 0;
        r.time_delta.nseconds = 1;
        r.properties = NFS3_FSF_LINK | NFS3_FSF_SYMLINK | NFS3_FSF_HOMOGENEOUS | NFS3_FSF_CANSETTIME;
    }
    r.status = stat_of(s, e);
    obj_post_attr(s, &o, &r.obj_attr);
    nfs3_enc_fsinfo_res(x, &r);
    nfsd_obj_close(&o);
    return done(job, x, r.status);
}
HANDLER(fsinfo, nfs3_dec_fsinfo_args, fsinfo)

static int x_pathconf(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    struct nfs3_fh_args *a = &job->a.pathconf;
    struct nfs3_pathconf_res r;
    struct nfsd_obj o;
    int e;

    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = job_resolve(job, &a->fh, &o);
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
    obj_post_attr(s, &o, &r.obj_attr);
    nfs3_enc_pathconf_res(x, &r);
    nfsd_obj_close(&o);
    return done(job, x, r.status);
}
HANDLER(pathconf, nfs3_dec_pathconf_args, pathconf)

static int x_commit(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    struct nfs3_commit_args *a = &job->a.commit;
    struct nfs3_commit_res r;
    struct nfsd_obj o;
    struct stat post;
    int e;

    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = job_resolve(job, &a->fh, &o);
    if (e == 0) {
        /* Test hook: a slow disk, on whichever thread runs the call. */
        if (s->commit_delay_ms != 0)
            nfsd_pool_sleep_ms(s->pool, s->commit_delay_ms);
        /* The whole file, whatever the range: fdatasync has no range. */
        e = nfsd_op_commit(&s->be, &o, &post);
        if (e == 0) {
            STAT_ADD(s->st.syncs, 1);
            nfsd_pre_attr(&o.st, &r.file_wcc.before);
            post_attr_st(s, &post, &r.file_wcc.after);
        }
    }
    r.status = stat_of(s, e);
    if (e != 0)
        obj_wcc(s, &o, &r.file_wcc);
    memcpy(r.verf, s->be.write_verf, sizeof(r.verf));
    nfs3_enc_commit_res(x, &r);
    nfsd_obj_close(&o);
    return done(job, x, r.status);
}
HANDLER(commit, nfs3_dec_commit_args, commit)

/* ---- MOUNT v3 -------------------------------------------------------------- */

/* 0: dirpath is the export (with or without trailing slashes); 1: it is
 * beneath the export, *rel points at the rest; -1: neither. */
static int export_match(const struct nfs3_srv *s, const char *path, const char **rel)
{
    size_t n = strlen(path), m = strlen(s->be.export_path);

    while (n > 1 && path[n - 1] == '/')
        n--; /* "/srv/data/" mounts "/srv/data" */
    if (n == m && memcmp(path, s->be.export_path, n) == 0)
        return 0;
    if (m == 1 && path[0] == '/') { /* the export is "/" */
        *rel = path + 1;
        return 1;
    }
    if (n > m && memcmp(path, s->be.export_path, m) == 0 && path[m] == '/') {
        *rel = path + m + 1;
        return 1;
    }
    return -1;
}

static int x_mnt(struct srv_job *job, struct krpc_xdr_enc *x)
{
    struct nfs3_srv *s = job->s;
    const struct nfs3_mnt_args *a = &job->a.mnt;
    struct nfs3_mnt_res r;
    const char *rel = NULL;
    int m, e = 0;

    memset(&r, 0, sizeof(r));
    /* The export, or (as the kernel's mountd allows) a directory beneath
     * it, reached without symlinks or "..". */
    m = export_match(s, a->dirpath, &rel);
    if (job->refuse != 0)
        e = job->refuse; /* tlscertuser without a usable certificate user (logged) */
    else if (m == 1) {
        struct stat st;
        uint32_t gen = 0;
        e = nfsd_be_lookup_path(&s->be, rel, &st, &gen);
        if (e == 0)
            nfsd_be_fh(&s->be, &st, gen, &r.fh);
    }
    if (m == 0 && e == 0)
        nfs3_srv_root_fh(s, &r.fh);
    if (m >= 0 && e == 0) {
        r.status = MNT3_OK;
        r.nflavors = 2;
        r.flavors[0] = KRPC_AUTH_SYS;
        r.flavors[1] = KRPC_AUTH_NONE;
        krpc_log(KRPC_LOG_INFO, "nfsd: %s mounted %s%s", job->peer, a->dirpath, job->tls ? " (TLS)" : "");
    } else {
        r.status = e == -EACCES                ? MNT3ERR_ACCES
                   : m < 0 || e == -ENOENT     ? MNT3ERR_NOENT
                   : e == -ENOTDIR             ? MNT3ERR_NOTDIR
                   : e == -ENAMETOOLONG        ? MNT3ERR_NAMETOOLONG
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

static int m_export(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    struct nfs3_srv *s = SRV(arg);
    struct nfs3_mnt_export *ex;

    STAT_ADD(s->st.mnt_ops[NFS3_MNT_PROC_EXPORT], 1);
    ex = calloc(1, sizeof(*ex));
    if (ex == NULL)
        return KRPC_SYSTEM_ERR;
    snprintf(ex->dir, sizeof(ex->dir), "%s", s->be.export_path);
    ex->ngroups = 0; /* no host restriction */
    nfs3_mnt_enc_export_res(x, ex, 1);
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

/* Policy, identity, workers: the parts of nfs3_srv_new this slice adds. */
static int srv_setup_calls(struct nfs3_srv *s, const struct nfs3_srv_config *cfg, char *err, size_t errlen)
{
    static const struct nfs3_export_opts zero;
    const char *delay;
    int ret;

    if (memcmp(&cfg->opts, &zero, sizeof(zero)) == 0)
        nfs3_export_opts_default(&s->opts);
    else
        s->opts = cfg->opts;
    if (s->opts.anonuid == 0 && s->opts.anongid == 0 && s->opts.squash != NFS3_SQUASH_NONE)
        s->opts.anonuid = s->opts.anongid = NFS3_ANON_ID;
    if (s->opts.xprtsec == 0)
        s->opts.xprtsec = NFS3_XPRTSEC_ALL;
    if (!nfsd_idctx_init(&s->idc))
        krpc_log(KRPC_LOG_WARN,
                 "nfsd: not root (no CAP_SETUID/CAP_SETGID): every call runs as uid %u gid %u, whatever its "
                 "credential says",
                 (unsigned)s->idc.uid, (unsigned)s->idc.gid);
    if (cfg->domain != NULL && cfg->domain[0] != '\0')
        snprintf(s->domain, sizeof(s->domain), "%s", cfg->domain);
    else if (s->opts.tlscertuser && nfsd_default_domain(s->domain, sizeof(s->domain)) != 0)
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
    struct nfs3_srv *s;
    uint8_t key[NFSD_FH_KEYLEN];
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
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    s->svc = svc;
    s->state_dir = strdup(sdir);
    if (s->state_dir == NULL) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    ret = nfsd_be_open(&s->be, cfg->export_path, err, errlen);
    if (ret != 0) {
        free(s->state_dir);
        free(s);
        return ret;
    }
    {
        struct stat st;
        if (fstat(s->be.rootfd, &st) != 0 || !S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "export %s: not a directory", s->be.export_path);
            ret = -ENOTDIR;
            goto fail;
        }
    }
    ret = nfsd_fh_key_load(s->state_dir, key, err, errlen);
    if (ret != 0)
        goto fail;
    ret = nfsd_fh_init(&s->be.fh, key, s->be.export_path);
    memset(key, 0, sizeof(key));
    if (ret != 0) {
        snprintf(err, errlen, "handle key: %s", strerror(-ret));
        goto fail;
    }
    s->be.rtmax = cfg->rtmax ? cfg->rtmax : NFS3_SRV_DEFAULT_TMAX;
    s->be.wtmax = cfg->wtmax ? cfg->wtmax : NFS3_SRV_DEFAULT_TMAX;
    if (s->be.rtmax > NFS3_MAX_DATA)
        s->be.rtmax = NFS3_MAX_DATA;
    if (s->be.wtmax > NFS3_MAX_DATA)
        s->be.wtmax = NFS3_MAX_DATA;
    ret = srv_setup_calls(s, cfg, err, errlen);
    if (ret != 0)
        goto fail;
    if (cfg->write_verf != NULL) {
        memcpy(s->be.write_verf, cfg->write_verf, NFS3_WRITEVERFSIZE);
    } else {
        /* A new verifier on every start: the start time in nanoseconds. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t v = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        for (int i = 7; i >= 0; i--, v >>= 8)
            s->be.write_verf[i] = (uint8_t)v;
    }
    {
        /* MOUNT in the clear too, unless told otherwise: Linux, FreeBSD and
         * libnfs clients reach mountd before (or without) TLS. */
        struct krpc_prog_desc p = {NFS3_MNT_PROGRAM, NFS3_MNT_VERSION, NFS3_MNT_NPROCS, mnt_procs, s,
                                   cfg->mount_requires_tls ? 0u : KRPC_PROG_PLAIN_OK};
        ret = krpc_svc_register(svc, &p);
        if (ret == 0) {
            struct krpc_prog_desc n = {NFS3_PROGRAM, NFS3_VERSION, NFS3_NPROCS, nfs_procs, s, 0};
            ret = krpc_svc_register(svc, &n);
        }
        if (ret != 0) {
            snprintf(err, errlen, "registering MOUNT/NFS programs: %s", strerror(-ret));
            goto fail;
        }
    }
    krpc_svc_set_free_hook(svc, srv_svc_gone, s);
    *out = s;
    return 0;
fail:
    nfsd_pool_free(s->pool);
    nfsd_be_close(&s->be);
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
    nfsd_be_close(&s->be);
    free(s->state_dir);
    free(s);
}

const char *nfs3_srv_export_path(const struct nfs3_srv *s)
{
    return s->be.export_path;
}

const char *nfs3_srv_state_dir(const struct nfs3_srv *s)
{
    return s->state_dir;
}

void nfs3_srv_write_verf(const struct nfs3_srv *s, uint8_t out[NFS3_WRITEVERFSIZE])
{
    memcpy(out, s->be.write_verf, NFS3_WRITEVERFSIZE);
}

void nfs3_srv_root_fh(const struct nfs3_srv *s, struct nfs3_fh *out)
{
    nfsd_fh_make(&s->be.fh, s->be.rootino, s->be.rootgen, out);
}

const struct nfs3_srv_stats *nfs3_srv_stats(const struct nfs3_srv *s)
{
    ((struct nfs3_srv *)s)->st.walks = nfsd_be_walks((struct nfsd_be *)&s->be);
    return &s->st;
}
