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

/* Calls of one connection queued or running on the pool at a time: half
 * the workers, at least 1. So with io_threads >= 2 one connection never
 * holds every worker: while it has its maximum in flight, at least
 * io_threads - io_threads/2 workers are free for the calls of other
 * connections. With io_threads 1 a connection can hold the only worker
 * (there is no better rule with one worker). The rest of a connection's
 * calls wait in order (the RPC layer bounds them: max_outstanding). */
static unsigned per_conn_jobs(unsigned io_threads)
{
    return io_threads >= 2 ? io_threads / 2 : 1;
}

/* Counters are bumped by workers and loops at once. */
#define STAT_ADD(field, n) __atomic_fetch_add(&(field), (uint64_t)(n), __ATOMIC_RELAXED)

struct nfs3_srv {
    struct krpc_svc *svc;
    struct nfsd_exports ex; /* one namespace per export; the table is immutable after nfs3_srv_new */
    uint8_t write_verf[NFS3_WRITEVERFSIZE];
    char *state_dir;
    struct nfs3_srv_stats st;  /* atomic counters (STAT_ADD); walks is counted by each export */
    struct nfs3_srv_stats snap; /* what nfs3_srv_stats() last returned */
    struct krpc_proc_desc nfs_procs[NFS3_NPROCS]; /* what the RPC layer sees of nfs_table */
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
 * address, TLS state and certificate subject (nfs3__export_for_fh): the
 * service sets them before the handler runs and frees the request only in
 * krpc_svc_reply, after the job has finished. */
struct srv_job;
typedef int (*exec_fn)(struct srv_job *job, struct krpc_xdr_enc *x);

/* Every procedure's arguments. */
union srv_args {
    struct nfs3_fh_args getattr, readlink, fsstat, fsinfo, pathconf;
    struct nfs3_setattr_args setattr;
    struct nfs3_diropargs lookup, remove; /* remove: REMOVE and RMDIR */
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
};

/* Every NFSv3 procedure's result. Each begins with its nfsstat3, which
 * status reads whatever member was filled (a common initial member). */
union srv_res {
    uint32_t status;
    struct nfs3_getattr_res getattr;
    struct nfs3_wcc_res wcc; /* SETATTR, REMOVE, RMDIR */
    struct nfs3_lookup_res lookup;
    struct nfs3_access_res access;
    struct nfs3_readlink_res readlink;
    struct nfs3_read_res read;
    struct nfs3_write_res write;
    struct nfs3_diropres dirop; /* CREATE, MKDIR, SYMLINK, MKNOD */
    struct nfs3_rename_res rename;
    struct nfs3_link_res link;
    struct {
        struct nfs3_readdir_res r;
        struct nfs3_readdir_enc enc; /* the entries, collected while reading the directory */
    } readdir;                        /* READDIR, READDIRPLUS */
    struct nfs3_fsstat_res fsstat;
    struct nfs3_fsinfo_res fsinfo;
    struct nfs3_pathconf_res pathconf;
    struct nfs3_commit_res commit;
};

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
    int too_weak;      /* tlscertuser refused the caller (job_ident): AUTH_TOOWEAK, no results */
    char peer[64];
    char peer_user[256]; /* "user@domain" of the client certificate, "" if none */
    int status;
    struct mb_chain res;
    union srv_args a;         /* the decoded arguments */
    union srv_res result;     /* NFS: the result, before encoding */
    struct nfsd_obj obj[2];   /* NFS: the objects of the call's handles (x_nfs); PATH_MAX each, so here
                                 rather than on the stack of the thread that runs the job */
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
    nfs3__fattr(be, st, &pa->attr);
}

/* be: the object's export (NULL when it was not resolved, o->fd < 0). */
static void obj_post_attr(const struct nfsd_be *be, const struct nfsd_obj *o, struct nfs3_post_attr *pa)
{
    memset(pa, 0, sizeof(*pa));
    if (o->fd >= 0)
        nfs3__post_attr_fd(be, o->fd, pa);
}

/* wcc_data of an object resolved before the operation. */
static void obj_wcc(const struct nfsd_be *be, const struct nfsd_obj *o, struct nfs3_wcc *w)
{
    memset(w, 0, sizeof(*w));
    if (o->fd < 0)
        return;
    nfs3__pre_attr(&o->st, &w->before);
    nfs3__post_attr_fd(be, o->fd, &w->after);
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
 * walked as the server (nfs3__be_resolve). */
static int resolve(struct nfs3_srv *s, const struct krpc_svc_req *req, const struct nfs3_fh *fh, int write,
                   struct nfsd_obj *o, struct nfsd_be **bep, const struct nfs3_export_opts **optsp)
{
    const struct nfs3_export_opts *opts;
    struct nfsd_export *x;
    int e;

    *bep = NULL;
    *optsp = NULL;
    e = nfs3__export_for_fh(&s->ex, req, fh, &x, &opts);
    if (e == 0)
        e = nfs3__be_resolve(&x->be, fh, o);
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
static int job_ident(struct srv_job *job, const struct nfs3_export_opts *opts, struct nfsd_ident *id)
{
    const struct nfs3_srv *s = job->s;
    char why[300];

    if (!opts->tlscertuser) {
        nfs3__ident_from_cred(opts, &job->cred, id);
        return 0;
    }
    if (!job->tls)
        snprintf(why, sizeof(why), "not inside TLS (the export maps users from client certificates)");
    else if (nfs3__ident_from_cert_user(job->peer_user, s->domain, id, why, sizeof(why)) == 0) {
        nfs3__ident_squash(opts, id);
        return 0;
    }
    krpc_log(job->prog == NFS3_MNT_PROGRAM ? KRPC_LOG_WARN : KRPC_LOG_INFO, "nfsd: %s: %s refused: %s", job->peer,
             job->prog == NFS3_MNT_PROGRAM ? "MNT" : nfs3_proc_name(job->proc), why);
    /* draft-cel-nfsv4-rpc-tls-othername sections 3.1 and 3.2: every
     * non-NULL call of a peer whose identity is refused gets MSG_DENIED
     * AUTH_ERROR AUTH_TOOWEAK, MNT included. */
    job->too_weak = 1;
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
    ret = nfs3__ident_enter(&s->idc, &id);
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
    ret = nfs3__ident_leave(&s->idc);
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
        if (nfs3__pool_submit(s->pool, krpc_svc_req_loop(job->req), &job->j) == 0)
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
            nfs3__obj_close(o);
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

/* ---- NFSv3 procedures ------------------------------------------------------- */

/*
 * Every NFSv3 call takes one path (p_nfs on the loop, x_nfs where the job
 * runs): decode the arguments into the job; resolve the first file handle
 * (for a procedure that changes the export, ROFS on a read-only one); run
 * the procedure's own part (an nfs_op, which fills the result, its
 * nfsstat3 included); encode the result; close the objects. The table
 * nfs_table below says, per procedure, which decoder, op and encoder, and
 * the flags.
 */

/* What an nfs_op works with. */
struct nfs_call {
    struct srv_job *job;
    struct nfs3_srv *s;
    const union srv_args *a;
    union srv_res *r;
    struct nfsd_obj *o;                 /* the first handle's object (fd < 0: not resolved) */
    struct nfsd_obj *o2;                /* RENAME's and LINK's second handle's */
    struct nfsd_be *be;                 /* the first handle's export, NULL when not resolved */
    const struct nfs3_export_opts *opts; /* its options for this caller (with be) */
    int e;                              /* 0, or why the first handle did not resolve */
};

typedef void (*nfs_op_fn)(struct nfs_call *c);

static void op_getattr(struct nfs_call *c)
{
    struct nfs3_getattr_res *r = &c->r->getattr;

    if (c->e == 0)
        nfs3__fattr(c->be, &c->o->st, &r->attr);
    r->status = stat_of(c->s, c->e);
}

static void op_setattr(struct nfs_call *c)
{
    const struct nfs3_setattr_args *a = &c->a->setattr;
    struct nfs3_wcc_res *r = &c->r->wcc;
    int e = c->e;

    if (e == 0 && a->guard_check &&
        (a->guard_ctime.seconds != (uint32_t)c->o->st.st_ctim.tv_sec ||
         a->guard_ctime.nseconds != (uint32_t)c->o->st.st_ctim.tv_nsec))
        r->status = NFS3ERR_NOT_SYNC;
    else {
        if (e == 0)
            e = nfs3__op_setattr(c->be, c->o, &a->attr);
        r->status = stat_of(c->s, e);
    }
    obj_wcc(c->be, c->o, &r->wcc);
}

static void op_lookup(struct nfs_call *c)
{
    struct nfs3_lookup_res *r = &c->r->lookup;
    struct nfsd_lookup l;
    int e = c->e;

    if (e == 0)
        e = nfs3__op_lookup(c->be, c->o, c->a->lookup.name, &l);
    if (e == 0) {
        r->fh = l.fh;
        post_attr_st(c->be, &l.st, &r->obj_attr);
    }
    r->status = stat_of(c->s, e);
    obj_post_attr(c->be, c->o, &r->dir_attr);
}

static void op_access(struct nfs_call *c)
{
    struct nfs3_access_res *r = &c->r->access;

    if (c->e == 0)
        r->access = nfs3__op_access(c->o, c->a->access.access); /* for the caller: we run as it */
    if (c->e == 0 && c->opts->ro) /* what nfsd_permission would refuse with EROFS */
        r->access &= ~(NFS3_ACCESS_MODIFY | NFS3_ACCESS_EXTEND | NFS3_ACCESS_DELETE);
    r->status = stat_of(c->s, c->e);
    if (c->e == 0)
        post_attr_st(c->be, &c->o->st, &r->obj_attr);
}

static void op_readlink(struct nfs_call *c)
{
    struct nfs3_readlink_res *r = &c->r->readlink;
    int e = c->e;

    if (e == 0)
        e = nfs3__op_readlink(c->o, r->data, sizeof(r->data));
    r->status = stat_of(c->s, e);
    if (c->o->fd >= 0)
        post_attr_st(c->be, &c->o->st, &r->symlink_attr);
}

static void op_read(struct nfs_call *c)
{
    const struct nfs3_read_args *a = &c->a->read;
    struct nfs3_read_res *r = &c->r->read;
    struct stat post;
    int e = c->e;

    mb_chain_init(&r->data);
    if (e == 0)
        e = nfs3__op_read(c->be, c->o, a->offset, a->count, &r->data, &r->eof, &post);
    r->status = stat_of(c->s, e);
    if (e == 0) {
        r->count = (uint32_t)r->data.len;
        STAT_ADD(c->s->st.bytes_read, r->data.len);
        post_attr_st(c->be, &post, &r->file_attr);
    } else {
        obj_post_attr(c->be, c->o, &r->file_attr);
    }
}

static void op_write(struct nfs_call *c)
{
    struct nfs3_write_args *a = &c->job->a.write; /* the data is written from (and stays with) the job */
    struct nfs3_write_res *r = &c->r->write;
    struct stat pre, post;
    int e = c->e;

    /* count != data length fails to decode: GARBAGE_ARGS (nfs3.h). More
     * than the wtmax FSINFO advertised (--max-io): INVAL, nothing written.
     * (The decoder takes up to NFS3_MAX_DATA; a short write would be legal
     * too, but a client that ignores wtmax is broken.) */
    if (e == 0 && a->count > c->be->wtmax)
        e = -EINVAL;
    if (e == 0) {
        e = nfs3__op_write(c->be, c->o, a->offset, &a->data, a->stable, &r->committed, &pre, &post);
        if (e == 0) {
            r->count = (uint32_t)a->data.len;
            STAT_ADD(c->s->st.bytes_written, a->data.len);
            if (r->committed != NFS3_UNSTABLE)
                STAT_ADD(c->s->st.syncs, 1);
            nfs3__pre_attr(&pre, &r->file_wcc.before);
            post_attr_st(c->be, &post, &r->file_wcc.after);
        }
    }
    r->status = stat_of(c->s, e);
    if (e != 0)
        obj_wcc(c->be, c->o, &r->file_wcc);
    memcpy(r->verf, c->s->write_verf, sizeof(r->verf)); /* server-wide: also when the handle is refused */
}

/* CREATE, MKDIR, SYMLINK, MKNOD: the new object's handle and attributes,
 * and the directory's wcc_data. e is the operation's result. */
static void diropres_fill(struct nfs_call *c, int e, const struct nfsd_lookup *l)
{
    struct nfs3_diropres *r = &c->r->dirop;

    r->status = stat_of(c->s, e);
    if (e == 0) {
        r->fh_present = 1;
        r->fh = l->fh;
        post_attr_st(c->be, &l->st, &r->obj_attr);
    }
    obj_wcc(c->be, c->o, &r->dir_wcc);
}

static void op_create(struct nfs_call *c)
{
    struct nfsd_lookup l;
    int e = c->e;

    if (e == 0)
        e = nfs3__op_create(c->be, c->o, &c->a->create, &l);
    diropres_fill(c, e, &l);
}

static void op_mkdir(struct nfs_call *c)
{
    const struct nfs3_mkdir_args *a = &c->a->mkdir;
    struct nfsd_lookup l;
    int e = c->e;

    if (e == 0)
        e = nfs3__op_mkdir(c->be, c->o, a->where.name, &a->attr, &l);
    diropres_fill(c, e, &l);
}

static void op_symlink(struct nfs_call *c)
{
    const struct nfs3_symlink_args *a = &c->a->symlink;
    struct nfsd_lookup l;
    int e = c->e;

    if (e == 0)
        e = nfs3__op_symlink(c->be, c->o, a->where.name, a->data, &a->attr, &l);
    diropres_fill(c, e, &l);
}

static void op_mknod(struct nfs_call *c)
{
    struct nfsd_lookup l;
    int e = c->e;

    if (e == 0)
        e = nfs3__op_mknod(c->be, c->o, &c->a->mknod, &l); /* FIFOs and sockets; device nodes NOTSUPP */
    diropres_fill(c, e, &l);
}

static void remove_common(struct nfs_call *c, int rmdir)
{
    struct nfs3_wcc_res *r = &c->r->wcc;
    int e = c->e;

    if (e == 0)
        e = nfs3__op_remove(c->be, c->o, c->a->remove.name, rmdir);
    r->status = stat_of(c->s, e);
    obj_wcc(c->be, c->o, &r->wcc);
}

static void op_remove(struct nfs_call *c)
{
    remove_common(c, 0);
}

static void op_rmdir(struct nfs_call *c)
{
    remove_common(c, 1);
}

static void op_rename(struct nfs_call *c)
{
    const struct nfs3_rename_args *a = &c->a->rename;
    struct nfs3_rename_res *r = &c->r->rename;
    struct nfsd_be *tbe = NULL;
    int e = c->e;

    if (e == 0)
        e = job_resolve(c->job, &a->to.dir, 1, c->o2, &tbe, NULL);
    if (e == 0 && c->be != tbe)
        e = -EXDEV; /* across exports (knfsd: nfserr_xdev) */
    if (e == 0)
        e = nfs3__op_rename(c->be, c->o, a->from.name, c->o2, a->to.name);
    r->status = stat_of(c->s, e);
    obj_wcc(c->be, c->o, &r->fromdir_wcc);
    obj_wcc(tbe, c->o2, &r->todir_wcc);
}

static void op_link(struct nfs_call *c)
{
    const struct nfs3_link_args *a = &c->a->link;
    struct nfs3_link_res *r = &c->r->link;
    struct nfsd_be *dbe = NULL;
    int e = c->e;

    if (e == 0)
        e = job_resolve(c->job, &a->link.dir, 1, c->o2, &dbe, NULL);
    if (e == 0 && c->be != dbe)
        e = -EXDEV; /* across exports (knfsd: nfserr_xdev) */
    if (e == 0)
        e = nfs3__op_link(c->be, c->o, c->o2, a->link.name);
    r->status = stat_of(c->s, e);
    obj_post_attr(c->be, c->o, &r->file_attr);
    obj_wcc(dbe, c->o2, &r->linkdir_wcc);
}

static void readdir_common(struct nfs_call *c, int plus, uint64_t cookie, uint32_t dircount, uint32_t maxcount)
{
    struct nfs3_readdir_res *r = &c->r->readdir.r;
    int e = c->e;

    /* The encoder reads 0 as "no limit"; from a client 0 means a reply that
     * cannot hold anything (NFS3ERR_TOOSMALL), and a dircount of 0 is no hint. */
    if (maxcount == 0)
        maxcount = 1;
    if (maxcount > READDIR_MAX_REPLY)
        maxcount = READDIR_MAX_REPLY;
    if (dircount == 0 || dircount > maxcount)
        dircount = maxcount;
    nfs3_readdir_enc_begin(&c->r->readdir.enc, plus, maxcount, dircount);
    if (e == 0)
        e = nfs3__op_readdir(c->be, c->o, cookie, plus, &c->r->readdir.enc, &r->eof);
    r->status = stat_of(c->s, e);
    /* The cookie verifier is always zero: cookies are d_off values, which
     * stay meaningful while the directory changes (as knfsd does). */
    obj_post_attr(c->be, c->o, &r->dir_attr);
}

static void op_readdir(struct nfs_call *c)
{
    const struct nfs3_readdir_args *a = &c->a->readdir;

    readdir_common(c, 0, a->cookie, 0, a->count);
}

static void op_readdirplus(struct nfs_call *c)
{
    const struct nfs3_readdirplus_args *a = &c->a->readdirplus;

    readdir_common(c, 1, a->cookie, a->dircount, a->maxcount);
}

static void op_fsstat(struct nfs_call *c)
{
    struct nfs3_fsstat_res *r = &c->r->fsstat;
    struct statvfs v;
    int e = c->e;

    if (e == 0 && fstatvfs(c->o->fd, &v) != 0)
        e = -errno;
    if (e == 0) {
        r->tbytes = (uint64_t)v.f_blocks * v.f_frsize;
        r->fbytes = (uint64_t)v.f_bfree * v.f_frsize;
        r->abytes = (uint64_t)v.f_bavail * v.f_frsize;
        r->tfiles = v.f_files;
        r->ffiles = v.f_ffree;
        r->afiles = v.f_favail;
        r->invarsec = 0;
    }
    r->status = stat_of(c->s, e);
    obj_post_attr(c->be, c->o, &r->obj_attr);
}

static void op_fsinfo(struct nfs_call *c)
{
    struct nfs3_fsinfo_res *r = &c->r->fsinfo;

    if (c->e == 0) {
        r->rtmax = c->be->rtmax;
        r->rtpref = c->be->rtmax;
        r->rtmult = MB_PAGE_SIZE;
        r->wtmax = c->be->wtmax;
        r->wtpref = c->be->wtmax;
        r->wtmult = MB_PAGE_SIZE;
        r->dtpref = 65536;
        r->maxfilesize = (uint64_t)INT64_MAX;
        r->time_delta.seconds = 0;
        r->time_delta.nseconds = 1;
        r->properties = NFS3_FSF_LINK | NFS3_FSF_SYMLINK | NFS3_FSF_HOMOGENEOUS | NFS3_FSF_CANSETTIME;
    }
    r->status = stat_of(c->s, c->e);
    obj_post_attr(c->be, c->o, &r->obj_attr);
}

static void op_pathconf(struct nfs_call *c)
{
    struct nfs3_pathconf_res *r = &c->r->pathconf;

    if (c->e == 0) {
        long lm = fpathconf(c->o->fd, _PC_LINK_MAX);
        long nm = fpathconf(c->o->fd, _PC_NAME_MAX);
        r->linkmax = lm > 0 && lm < (long)UINT32_MAX ? (uint32_t)lm : 1;
        r->name_max = nm > 0 && nm < NFS3_MAXNAMLEN ? (uint32_t)nm : NFS3_MAXNAMLEN;
        r->no_trunc = 1;
        r->chown_restricted = 1;
        r->case_insensitive = 0;
        r->case_preserving = 1;
    }
    r->status = stat_of(c->s, c->e);
    obj_post_attr(c->be, c->o, &r->obj_attr);
}

static void op_commit(struct nfs_call *c)
{
    struct nfs3_commit_res *r = &c->r->commit;
    struct stat post;
    int e = c->e;

    if (e == 0) {
        /* Test hook: a slow disk, on whichever thread runs the call. */
        if (c->s->commit_delay_ms != 0)
            nfs3__pool_sleep_ms(c->s->pool, c->s->commit_delay_ms);
        /* The whole file, whatever the range: fdatasync has no range. */
        e = nfs3__op_commit(c->be, c->o, &post);
        if (e == 0) {
            STAT_ADD(c->s->st.syncs, 1);
            nfs3__pre_attr(&c->o->st, &r->file_wcc.before);
            post_attr_st(c->be, &post, &r->file_wcc.after);
        }
    }
    r->status = stat_of(c->s, e);
    if (e != 0)
        obj_wcc(c->be, c->o, &r->file_wcc);
    memcpy(r->verf, c->s->write_verf, sizeof(r->verf)); /* server-wide: also when the handle is refused */
}

/* The codecs under one type per direction, for the table: P's arguments
 * decode into member A of the job's arguments, its result encodes from
 * member R of the job's result. */
#define NFS_CODEC(P, A, R)                                                                                      \
    static int dec_##P(struct krpc_xdr_dec *d, union srv_args *a)                                               \
    {                                                                                                           \
        return nfs3_dec_##P##_args(d, &a->A);                                                                   \
    }                                                                                                           \
    static void enc_##P(struct krpc_xdr_enc *x, union srv_res *r)                                               \
    {                                                                                                           \
        nfs3_enc_##P##_res(x, &r->R);                                                                           \
    }
NFS_CODEC(getattr, getattr, getattr)
NFS_CODEC(setattr, setattr, wcc)
NFS_CODEC(lookup, lookup, lookup)
NFS_CODEC(access, access, access)
NFS_CODEC(readlink, readlink, readlink)
NFS_CODEC(read, read, read)
NFS_CODEC(write, write, write)
NFS_CODEC(create, create, dirop)
NFS_CODEC(mkdir, mkdir, dirop)
NFS_CODEC(symlink, symlink, dirop)
NFS_CODEC(mknod, mknod, dirop)
NFS_CODEC(remove, remove, wcc)
NFS_CODEC(rmdir, remove, wcc)
NFS_CODEC(rename, rename, rename)
NFS_CODEC(link, link, link)
NFS_CODEC(fsstat, fsstat, fsstat)
NFS_CODEC(fsinfo, fsinfo, fsinfo)
NFS_CODEC(pathconf, pathconf, pathconf)
NFS_CODEC(commit, commit, commit)

static int dec_readdir(struct krpc_xdr_dec *d, union srv_args *a)
{
    return nfs3_dec_readdir_args(d, &a->readdir);
}

static int dec_readdirplus(struct krpc_xdr_dec *d, union srv_args *a)
{
    return nfs3_dec_readdirplus_args(d, &a->readdirplus);
}

/* READDIR and READDIRPLUS: the builder that collected the entries writes the result. */
static void enc_readdir(struct krpc_xdr_enc *x, union srv_res *r)
{
    nfs3_readdir_enc_end(&r->readdir.enc, x, &r->readdir.r);
}

/* READ's result holds the data pages; the encoder linked them in by reference. */
static void read_res_free(union srv_res *r)
{
    nfs3_read_res_free(&r->read);
}

#define NP_WRITE 0x1 /* changes the export: its handles resolve for writing (NFS3ERR_ROFS on a ro export) */
#define NP_ONCE 0x2  /* must not run twice: the reply is kept in the duplicate-request cache (RPC
                        layer); every other procedure is flagged KRPC_PROC_IDEMPOTENT */

/* One NFSv3 procedure. Every argument structure begins with a file handle
 * (fh_off is where): the one resolved before the op runs. Every result
 * begins with its nfsstat3. */
struct nfs_proc {
    const char *name;
    unsigned flags; /* NP_* */
    size_t fh_off;  /* offset of the first handle in union srv_args */
    int (*dec)(struct krpc_xdr_dec *d, union srv_args *a);
    nfs_op_fn op;   /* NULL: NULL, answered by the RPC layer */
    void (*enc)(struct krpc_xdr_enc *x, union srv_res *r);
    void (*res_free)(union srv_res *r); /* after encoding, when the result holds references */
};

#define FH(member) offsetof(union srv_args, member)

/* WRITE and COMMIT change the export but are not cached: a retransmitted
 * WRITE writes the same bytes at the same offset again, and keeping it out
 * of the cache spares the cache's checksum pass over every data byte (our
 * clients never send overlapping WRITEs whose reordering could matter); a
 * COMMIT twice is a second fdatasync. */
static const struct nfs_proc nfs_table[NFS3_NPROCS] = {
    [NFS3_PROC_NULL] = {"NULL", 0, 0, NULL, NULL, NULL, NULL},
    [NFS3_PROC_GETATTR] = {"GETATTR", 0, FH(getattr.fh), dec_getattr, op_getattr, enc_getattr, NULL},
    [NFS3_PROC_SETATTR] = {"SETATTR", NP_WRITE | NP_ONCE, FH(setattr.fh), dec_setattr, op_setattr, enc_setattr,
                           NULL},
    [NFS3_PROC_LOOKUP] = {"LOOKUP", 0, FH(lookup.dir), dec_lookup, op_lookup, enc_lookup, NULL},
    [NFS3_PROC_ACCESS] = {"ACCESS", 0, FH(access.fh), dec_access, op_access, enc_access, NULL},
    [NFS3_PROC_READLINK] = {"READLINK", 0, FH(readlink.fh), dec_readlink, op_readlink, enc_readlink, NULL},
    [NFS3_PROC_READ] = {"READ", 0, FH(read.fh), dec_read, op_read, enc_read, read_res_free},
    [NFS3_PROC_WRITE] = {"WRITE", NP_WRITE, FH(write.fh), dec_write, op_write, enc_write, NULL},
    [NFS3_PROC_CREATE] = {"CREATE", NP_WRITE | NP_ONCE, FH(create.where.dir), dec_create, op_create, enc_create,
                          NULL},
    [NFS3_PROC_MKDIR] = {"MKDIR", NP_WRITE | NP_ONCE, FH(mkdir.where.dir), dec_mkdir, op_mkdir, enc_mkdir, NULL},
    [NFS3_PROC_SYMLINK] = {"SYMLINK", NP_WRITE | NP_ONCE, FH(symlink.where.dir), dec_symlink, op_symlink,
                           enc_symlink, NULL},
    [NFS3_PROC_MKNOD] = {"MKNOD", NP_WRITE | NP_ONCE, FH(mknod.where.dir), dec_mknod, op_mknod, enc_mknod, NULL},
    [NFS3_PROC_REMOVE] = {"REMOVE", NP_WRITE | NP_ONCE, FH(remove.dir), dec_remove, op_remove, enc_remove, NULL},
    [NFS3_PROC_RMDIR] = {"RMDIR", NP_WRITE | NP_ONCE, FH(remove.dir), dec_rmdir, op_rmdir, enc_rmdir, NULL},
    [NFS3_PROC_RENAME] = {"RENAME", NP_WRITE | NP_ONCE, FH(rename.from.dir), dec_rename, op_rename, enc_rename,
                          NULL},
    [NFS3_PROC_LINK] = {"LINK", NP_WRITE | NP_ONCE, FH(link.fh), dec_link, op_link, enc_link, NULL},
    [NFS3_PROC_READDIR] = {"READDIR", 0, FH(readdir.dir), dec_readdir, op_readdir, enc_readdir, NULL},
    [NFS3_PROC_READDIRPLUS] = {"READDIRPLUS", 0, FH(readdirplus.dir), dec_readdirplus, op_readdirplus,
                               enc_readdir, NULL},
    [NFS3_PROC_FSSTAT] = {"FSSTAT", 0, FH(fsstat.fh), dec_fsstat, op_fsstat, enc_fsstat, NULL},
    [NFS3_PROC_FSINFO] = {"FSINFO", 0, FH(fsinfo.fh), dec_fsinfo, op_fsinfo, enc_fsinfo, NULL},
    [NFS3_PROC_PATHCONF] = {"PATHCONF", 0, FH(pathconf.fh), dec_pathconf, op_pathconf, enc_pathconf, NULL},
    [NFS3_PROC_COMMIT] = {"COMMIT", NP_WRITE, FH(commit.fh), dec_commit, op_commit, enc_commit, NULL},
};

/* Where the job runs: resolve the first handle, the op, the result. */
static int x_nfs(struct srv_job *job, struct krpc_xdr_enc *x)
{
    const struct nfs_proc *np = &nfs_table[job->proc];
    const struct nfs3_fh *fh = (const struct nfs3_fh *)((const char *)&job->a + np->fh_off);
    struct nfs_call c;

    memset(&c, 0, sizeof(c));
    c.job = job;
    c.s = job->s;
    c.a = &job->a;
    c.r = &job->result;
    c.o = &job->obj[0];
    c.o2 = &job->obj[1];
    obj_init(c.o);
    obj_init(c.o2);
    c.e = job_resolve(job, fh, (np->flags & NP_WRITE) != 0, c.o, &c.be, &c.opts);
    if (job->too_weak)
        return KRPC_SVC_AUTH_TOOWEAK; /* nothing was opened */
    np->op(&c);
    np->enc(x, c.r);
    if (np->res_free != NULL)
        np->res_free(c.r);
    nfs3__obj_close(c.o);
    nfs3__obj_close(c.o2);
    return done(job, x, c.r->status);
}

/* The handler of every NFSv3 procedure, on the loop: decode into a job,
 * then run it (job_start). The RPC layer calls it only for procedures
 * below NFS3_NPROCS with an op (nfs3_srv_new registers it for those). */
static int p_nfs(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    const struct nfs_proc *np = &nfs_table[req->proc];
    struct srv_job *job = job_new(SRV(arg), req, x_nfs);

    if (job == NULL)
        return KRPC_SYSTEM_ERR;
    if (np->dec(d, &job->a) != 0) {
        job_release(job);
        return KRPC_GARBAGE_ARGS;
    }
    return job_start(job, x);
}

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
    e = nfs3__export_for_path(&s->ex, job->req, a->dirpath, &xp, &opts, &rel);
    if (e == 0)
        e = job_ident(job, opts, &id); /* MNT itself runs as the server; only the refusal matters */
    if (job->too_weak)
        return KRPC_SVC_AUTH_TOOWEAK;
    if (e == 0 && rel[0] == '\0') {
        nfs3__fh_make(&xp->be.fh, xp->be.rootino, xp->be.rootgen, &r.fh);
    } else if (e == 0) {
        struct stat st;
        uint32_t gen = 0;
        e = nfs3__be_lookup_path(&xp->be, rel, &st, &gen);
        if (e == 0)
            nfs3__be_fh(&xp->be, &st, gen, &r.fh);
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

/* What the RPC layer sees of nfs_table: p_nfs for every procedure with an
 * op (NULL it answers itself), idempotent unless NP_ONCE. */
static void nfs_procs_init(struct krpc_proc_desc *d)
{
    for (size_t i = 0; i < NFS3_NPROCS; i++) {
        d[i].fn = nfs_table[i].op != NULL ? p_nfs : NULL;
        d[i].flags = nfs_table[i].flags & NP_ONCE ? 0u : KRPC_PROC_IDEMPOTENT;
        d[i].name = nfs_table[i].name;
    }
}

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
    nfs3__pool_shutdown(s->pool);
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

    if (!nfs3__idctx_init(&s->idc))
        krpc_log(KRPC_LOG_WARN,
                 "nfsd: not root (no CAP_SETUID/CAP_SETGID): every call runs as uid %u gid %u, whatever its "
                 "credential says",
                 (unsigned)s->idc.uid, (unsigned)s->idc.gid);
    if (cfg->domain != NULL && cfg->domain[0] != '\0')
        snprintf(s->domain, sizeof(s->domain), "%s", cfg->domain);
    else if (any_tlscertuser(&s->ex) && nfs3__default_domain(s->domain, sizeof(s->domain)) != 0)
        krpc_log(KRPC_LOG_WARN, "nfsd: tlscertuser: the host has no domain (set one with --domain): every "
                                "certificate user will be refused");
    delay = getenv("RPCTLS_TEST_COMMIT_DELAY_MS");
    if (delay != NULL)
        s->commit_delay_ms = (unsigned)strtoul(delay, NULL, 10);
    if (cfg->io_threads > 0) {
        ret = nfs3__pool_new(cfg->io_threads, per_conn_jobs(cfg->io_threads), &s->pool);
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
        /* One directory for the local host, with cfg->opts (default: rw,
         * root squashed): the exports line "PATH 127.0.0.1(OPTS)
         * ::1(OPTS)". Other clients need an exports table. Options are
         * taken as given: an explicit anonuid 0 stays 0, as in a file. */
        struct nfs3_export_opts o = cfg->opts;
        char real[PATH_MAX];
        if (memcmp(&cfg->opts, &zero_opts, sizeof(zero_opts)) == 0)
            nfs3_export_opts_default(&o);
        if (cfg->export_path == NULL) {
            snprintf(err, errlen, "no export");
            return -EINVAL;
        }
        /* Absolute and canonical, as an exports file's paths are. */
        if (realpath(cfg->export_path, real) == NULL) {
            ret = -errno;
            snprintf(err, errlen, "export %s: %s", cfg->export_path, strerror(errno));
            return ret;
        }
        if ((ret = nfs3_exports_add(&one, real, "127.0.0.1", &o)) != 0 ||
            (ret = nfs3_exports_add(&one, real, "::1", &o)) != 0) {
            nfs3_exports_free(&one);
            snprintf(err, errlen, "export %s: %s", real, strerror(-ret));
            return ret;
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
    ret = nfs3__fh_key_load(s->state_dir, key, err, errlen);
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
    ret = nfs3__exports_open(&s->ex, table, key, rtmax, wtmax, verf, err, errlen);
    memset(key, 0, sizeof(key));
    if (ret != 0)
        goto fail;
    ret = srv_setup_calls(s, cfg, err, errlen);
    if (ret != 0)
        goto fail;
    nfs_procs_init(s->nfs_procs);
    {
        /* MOUNT in the clear too, unless told otherwise: Linux, FreeBSD and
         * libnfs clients reach mountd before (or without) TLS. Both programs
         * are MT_SAFE: handlers only decode and hand a job to the pool (or
         * run it inline under each namespace's lock); the stats are atomic;
         * the export table is immutable; every loop gets its own pool port.
         * So the server's loops run them in parallel. */
        struct krpc_prog_desc p = {NFS3_MNT_PROGRAM, NFS3_MNT_VERSION, NFS3_MNT_NPROCS, mnt_procs, s,
                                   KRPC_PROG_MT_SAFE | (cfg->mount_requires_tls ? 0u : KRPC_PROG_PLAIN_OK)};
        struct krpc_prog_desc n = {NFS3_PROGRAM, NFS3_VERSION, NFS3_NPROCS, s->nfs_procs, s, KRPC_PROG_MT_SAFE};
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
    nfs3__pool_free(s->pool);
    nfs3__exports_close(&s->ex);
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
    nfs3__pool_free(s->pool);
    nfs3__exports_close(&s->ex);
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
    nfs3__fh_make(&be->fh, be->rootino, be->rootgen, out);
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
        out->walks += nfs3__be_walks(&s->ex.v[i].be); /* under each namespace's lock: workers walk meanwhile */
}

const struct nfs3_srv_stats *nfs3_srv_stats(struct nfs3_srv *s)
{
    nfs3_srv_stats_get(s, &s->snap);
    return &s->snap;
}
