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

struct nfs3_srv {
    struct krpc_svc *svc;
    struct nfsd_exports ex; /* one namespace per export; immutable after nfs3_srv_new */
    uint8_t write_verf[NFS3_WRITEVERFSIZE];
    char *state_dir;
    struct nfs3_srv_stats st;
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
    case ESTALE: r = NFS3ERR_STALE; s->st.stale++; break;
    case EOPNOTSUPP: r = NFS3ERR_NOTSUPP; break;
    case NFSD_EBADHANDLE: r = NFS3ERR_BADHANDLE; s->st.badhandle++; break;
    case NFSD_ETOOSMALL: r = NFS3ERR_TOOSMALL; break;
    case ENOMEM: case EAGAIN: r = NFS3ERR_JUKEBOX; break;
    case EIO: default: r = NFS3ERR_IO; break;
    }
    s->st.errors++;
    return r;
}

static int done(struct nfs3_srv *s, struct krpc_svc_req *req, struct krpc_xdr_enc *x, uint32_t status)
{
    if (status != NFS3_OK)
        krpc_log(KRPC_LOG_DEBUG, "nfsd: xid %08x %s: %s", req->xid, nfs3_proc_name(req->proc), nfs3_stat_name(status));
    (void)s;
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

/* Handle -> export (for this caller: client spec, xprtsec) -> object.
 * write: the procedure changes the export, NFS3ERR_ROFS on a ro export
 * (after the access checks and the resolution, as knfsd's nfsd_permission
 * comes after fh_verify). *bep gets the export's namespace once the object
 * is resolved (so wcc_data can be returned with ROFS), else NULL; *optsp
 * (may be NULL) the options that apply to this caller. */
static int resolve(struct nfs3_srv *s, struct krpc_svc_req *req, const struct nfs3_fh *fh, int write,
                   struct nfsd_obj *o, struct nfsd_be **bep, const struct nfs3_export_opts **optsp)
{
    const struct nfs3_export_opts *opts;
    struct nfsd_export *x;
    int e;

    *bep = NULL;
    e = nfsd_export_for_fh(&s->ex, req, fh, &x, &opts);
    if (e == 0)
        e = nfsd_be_resolve(&x->be, fh, o);
    if (e != 0)
        return e;
    *bep = &x->be;
    if (optsp != NULL)
        *optsp = opts;
    return write && opts->ro ? -EROFS : 0;
}

static void obj_init(struct nfsd_obj *o)
{
    o->fd = -1;
    o->path[0] = '\0';
}

#define SRV(arg) ((struct nfs3_srv *)(arg))
#define COUNT(s, req) ((s)->st.ops[(req)->proc < NFS3_NPROCS ? (req)->proc : 0]++)

/* ---- NFSv3 procedures ------------------------------------------------------- */

static int p_getattr(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    struct nfs3_srv *s = SRV(arg);
    struct nfsd_be *be = NULL;
    struct nfs3_fh_args a;
    struct nfs3_getattr_res r;
    struct nfsd_obj o;
    int e;

    COUNT(s, req);
    if (nfs3_dec_getattr_args(d, &a) != 0)
        return KRPC_GARBAGE_ARGS;
    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = resolve(s, req, &a.fh, 0, &o, &be, NULL);
    if (e == 0)
        nfsd_fattr(be, &o.st, &r.attr);
    r.status = stat_of(s, e);
    nfs3_enc_getattr_res(x, &r);
    nfsd_obj_close(&o);
    return done(s, req, x, r.status);
}

static int p_setattr(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    struct nfs3_srv *s = SRV(arg);
    struct nfsd_be *be = NULL;
    struct nfs3_setattr_args a;
    struct nfs3_wcc_res r;
    struct nfsd_obj o;
    int e;

    COUNT(s, req);
    if (nfs3_dec_setattr_args(d, &a) != 0)
        return KRPC_GARBAGE_ARGS;
    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = resolve(s, req, &a.fh, 1, &o, &be, NULL);
    if (e == 0 && a.guard_check &&
        (a.guard_ctime.seconds != (uint32_t)o.st.st_ctim.tv_sec ||
         a.guard_ctime.nseconds != (uint32_t)o.st.st_ctim.tv_nsec))
        r.status = NFS3ERR_NOT_SYNC;
    else {
        if (e == 0)
            e = nfsd_op_setattr(be, &o, &a.attr);
        r.status = stat_of(s, e);
    }
    obj_wcc(be, &o, &r.wcc);
    nfs3_enc_setattr_res(x, &r);
    nfsd_obj_close(&o);
    return done(s, req, x, r.status);
}

static int p_lookup(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    struct nfs3_srv *s = SRV(arg);
    struct nfsd_be *be = NULL;
    struct nfs3_diropargs a;
    struct nfs3_lookup_res r;
    struct nfsd_lookup l;
    struct nfsd_obj o;
    int e;

    COUNT(s, req);
    if (nfs3_dec_lookup_args(d, &a) != 0)
        return KRPC_GARBAGE_ARGS;
    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = resolve(s, req, &a.dir, 0, &o, &be, NULL);
    if (e == 0)
        e = nfsd_op_lookup(be, &o, a.name, &l);
    if (e == 0) {
        r.fh = l.fh;
        post_attr_st(be, &l.st, &r.obj_attr);
    }
    r.status = stat_of(s, e);
    obj_post_attr(be, &o, &r.dir_attr);
    nfs3_enc_lookup_res(x, &r);
    nfsd_obj_close(&o);
    return done(s, req, x, r.status);
}

static int p_access(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    struct nfs3_srv *s = SRV(arg);
    struct nfsd_be *be = NULL;
    struct nfs3_access_args a;
    struct nfs3_access_res r;
    struct nfsd_obj o;
    const struct nfs3_export_opts *opts = NULL;
    int e;

    COUNT(s, req);
    if (nfs3_dec_access_args(d, &a) != 0)
        return KRPC_GARBAGE_ARGS;
    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = resolve(s, req, &a.fh, 0, &o, &be, &opts);
    if (e == 0)
        r.access = nfsd_op_access(&o.st, a.access);
    if (e == 0 && opts->ro) /* what nfsd_permission would refuse with EROFS */
        r.access &= ~(NFS3_ACCESS_MODIFY | NFS3_ACCESS_EXTEND | NFS3_ACCESS_DELETE);
    r.status = stat_of(s, e);
    if (e == 0)
        post_attr_st(be, &o.st, &r.obj_attr);
    nfs3_enc_access_res(x, &r);
    nfsd_obj_close(&o);
    return done(s, req, x, r.status);
}

static int p_readlink(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    struct nfs3_srv *s = SRV(arg);
    struct nfsd_be *be = NULL;
    struct nfs3_fh_args a;
    struct nfs3_readlink_res *r;
    struct nfsd_obj o;
    int e, ret;

    COUNT(s, req);
    if (nfs3_dec_readlink_args(d, &a) != 0)
        return KRPC_GARBAGE_ARGS;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return KRPC_SYSTEM_ERR;
    obj_init(&o);
    e = resolve(s, req, &a.fh, 0, &o, &be, NULL);
    if (e == 0)
        e = nfsd_op_readlink(&o, r->data, sizeof(r->data));
    r->status = stat_of(s, e);
    if (o.fd >= 0)
        post_attr_st(be, &o.st, &r->symlink_attr);
    nfs3_enc_readlink_res(x, r);
    nfsd_obj_close(&o);
    ret = done(s, req, x, r->status);
    free(r);
    return ret;
}

static int p_read(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    struct nfs3_srv *s = SRV(arg);
    struct nfsd_be *be = NULL;
    struct nfs3_read_args a;
    struct nfs3_read_res r;
    struct nfsd_obj o;
    struct stat post;
    int e;

    COUNT(s, req);
    if (nfs3_dec_read_args(d, &a) != 0)
        return KRPC_GARBAGE_ARGS;
    memset(&r, 0, sizeof(r));
    mb_chain_init(&r.data);
    obj_init(&o);
    e = resolve(s, req, &a.fh, 0, &o, &be, NULL);
    if (e == 0)
        e = nfsd_op_read(be, &o, a.offset, a.count, &r.data, &r.eof, &post);
    r.status = stat_of(s, e);
    if (e == 0) {
        r.count = (uint32_t)r.data.len;
        s->st.bytes_read += r.data.len;
        post_attr_st(be, &post, &r.file_attr);
    } else {
        obj_post_attr(be, &o, &r.file_attr);
    }
    nfs3_enc_read_res(x, &r); /* links the pages in by reference */
    nfs3_read_res_free(&r);
    nfsd_obj_close(&o);
    return done(s, req, x, r.status);
}

static int p_write(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    struct nfs3_srv *s = SRV(arg);
    struct nfsd_be *be = NULL;
    struct nfs3_write_args a;
    struct nfs3_write_res r;
    struct nfsd_obj o;
    struct stat pre, post;
    int e;

    COUNT(s, req);
    /* count != data length fails to decode: GARBAGE_ARGS (nfs3.h). */
    if (nfs3_dec_write_args(d, &a) != 0)
        return KRPC_GARBAGE_ARGS;
    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = resolve(s, req, &a.fh, 1, &o, &be, NULL);
    /* More than the wtmax FSINFO advertised (--max-io): INVAL, nothing
     * written. (The decoder takes up to NFS3_MAX_DATA; a short write would
     * be legal too, but a client that ignores wtmax is broken.) */
    if (e == 0 && a.count > be->wtmax)
        e = -EINVAL;
    if (e == 0) {
        e = nfsd_op_write(be, &o, a.offset, &a.data, a.stable, &r.committed, &pre, &post);
        if (e == 0) {
            r.count = (uint32_t)a.data.len;
            s->st.bytes_written += a.data.len;
            if (r.committed != NFS3_UNSTABLE)
                s->st.syncs++;
            nfsd_pre_attr(&pre, &r.file_wcc.before);
            post_attr_st(be, &post, &r.file_wcc.after);
        }
    }
    r.status = stat_of(s, e);
    if (e != 0)
        obj_wcc(be, &o, &r.file_wcc);
    memcpy(r.verf, s->write_verf, sizeof(r.verf)); /* server-wide: also when the handle is refused */
    nfs3_enc_write_res(x, &r);
    nfs3_write_args_free(&a);
    nfsd_obj_close(&o);
    return done(s, req, x, r.status);
}

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

static int p_create(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    struct nfs3_srv *s = SRV(arg);
    struct nfsd_be *be = NULL;
    struct nfs3_create_args a;
    struct nfs3_diropres r;
    struct nfsd_lookup l;
    struct nfsd_obj o;
    int e;

    COUNT(s, req);
    if (nfs3_dec_create_args(d, &a) != 0)
        return KRPC_GARBAGE_ARGS;
    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = resolve(s, req, &a.where.dir, 1, &o, &be, NULL);
    if (e == 0)
        e = nfsd_op_create(be, &o, &a, &l);
    diropres_fill(s, be, e, &l, &o, &r);
    nfs3_enc_create_res(x, &r);
    nfsd_obj_close(&o);
    return done(s, req, x, r.status);
}

static int p_mkdir(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    struct nfs3_srv *s = SRV(arg);
    struct nfsd_be *be = NULL;
    struct nfs3_mkdir_args a;
    struct nfs3_diropres r;
    struct nfsd_lookup l;
    struct nfsd_obj o;
    int e;

    COUNT(s, req);
    if (nfs3_dec_mkdir_args(d, &a) != 0)
        return KRPC_GARBAGE_ARGS;
    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = resolve(s, req, &a.where.dir, 1, &o, &be, NULL);
    if (e == 0)
        e = nfsd_op_mkdir(be, &o, a.where.name, &a.attr, &l);
    diropres_fill(s, be, e, &l, &o, &r);
    nfs3_enc_mkdir_res(x, &r);
    nfsd_obj_close(&o);
    return done(s, req, x, r.status);
}

static int p_symlink(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    struct nfs3_srv *s = SRV(arg);
    struct nfsd_be *be = NULL;
    struct nfs3_symlink_args *a;
    struct nfs3_diropres r;
    struct nfsd_lookup l;
    struct nfsd_obj o;
    int e, ret;

    COUNT(s, req);
    a = malloc(sizeof(*a));
    if (a == NULL)
        return KRPC_SYSTEM_ERR;
    if (nfs3_dec_symlink_args(d, a) != 0) {
        free(a);
        return KRPC_GARBAGE_ARGS;
    }
    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = resolve(s, req, &a->where.dir, 1, &o, &be, NULL);
    if (e == 0)
        e = nfsd_op_symlink(be, &o, a->where.name, a->data, &a->attr, &l);
    diropres_fill(s, be, e, &l, &o, &r);
    nfs3_enc_symlink_res(x, &r);
    nfsd_obj_close(&o);
    ret = done(s, req, x, r.status);
    free(a);
    return ret;
}

static int p_mknod(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    struct nfs3_srv *s = SRV(arg);
    struct nfsd_be *be = NULL;
    struct nfs3_mknod_args a;
    struct nfs3_diropres r;
    struct nfsd_obj o;
    int e;

    COUNT(s, req);
    if (nfs3_dec_mknod_args(d, &a) != 0)
        return KRPC_GARBAGE_ARGS;
    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = resolve(s, req, &a.where.dir, 1, &o, &be, NULL);
    if (e == 0)
        e = -EOPNOTSUPP; /* no device nodes, FIFOs or sockets made for clients */
    diropres_fill(s, be, e, NULL, &o, &r);
    nfs3_enc_mknod_res(x, &r);
    nfsd_obj_close(&o);
    return done(s, req, x, r.status);
}

static int remove_common(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg,
                         int rmdir)
{
    struct nfs3_srv *s = SRV(arg);
    struct nfsd_be *be = NULL;
    struct nfs3_diropargs a;
    struct nfs3_wcc_res r;
    struct nfsd_obj o;
    int e;

    COUNT(s, req);
    if ((rmdir ? nfs3_dec_rmdir_args(d, &a) : nfs3_dec_remove_args(d, &a)) != 0)
        return KRPC_GARBAGE_ARGS;
    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = resolve(s, req, &a.dir, 1, &o, &be, NULL);
    if (e == 0)
        e = nfsd_op_remove(be, &o, a.name, rmdir);
    r.status = stat_of(s, e);
    obj_wcc(be, &o, &r.wcc);
    if (rmdir)
        nfs3_enc_rmdir_res(x, &r);
    else
        nfs3_enc_remove_res(x, &r);
    nfsd_obj_close(&o);
    return done(s, req, x, r.status);
}

static int p_remove(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    return remove_common(req, d, x, arg, 0);
}

static int p_rmdir(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    return remove_common(req, d, x, arg, 1);
}

static int p_rename(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    struct nfs3_srv *s = SRV(arg);
    struct nfs3_rename_args a;
    struct nfs3_rename_res r;
    struct nfsd_obj *from, *to;
    struct nfsd_be *be = NULL, *tbe = NULL;
    int e;

    COUNT(s, req);
    if (nfs3_dec_rename_args(d, &a) != 0)
        return KRPC_GARBAGE_ARGS;
    from = malloc(2 * sizeof(*from)); /* two PATH_MAX buffers: not on the loop's stack */
    if (from == NULL)
        return KRPC_SYSTEM_ERR;
    to = from + 1;
    memset(&r, 0, sizeof(r));
    obj_init(from);
    obj_init(to);
    e = resolve(s, req, &a.from.dir, 1, from, &be, NULL);
    if (e == 0)
        e = resolve(s, req, &a.to.dir, 1, to, &tbe, NULL);
    if (e == 0 && be != tbe)
        e = -EXDEV; /* across exports (knfsd: nfserr_xdev) */
    if (e == 0)
        e = nfsd_op_rename(be, from, a.from.name, to, a.to.name);
    r.status = stat_of(s, e);
    obj_wcc(be, from, &r.fromdir_wcc);
    obj_wcc(tbe, to, &r.todir_wcc);
    nfs3_enc_rename_res(x, &r);
    nfsd_obj_close(from);
    nfsd_obj_close(to);
    free(from);
    return done(s, req, x, r.status);
}

static int p_link(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    struct nfs3_srv *s = SRV(arg);
    struct nfs3_link_args a;
    struct nfs3_link_res r;
    struct nfsd_obj *file, *dir;
    struct nfsd_be *be = NULL, *dbe = NULL;
    int e;

    COUNT(s, req);
    if (nfs3_dec_link_args(d, &a) != 0)
        return KRPC_GARBAGE_ARGS;
    file = malloc(2 * sizeof(*file));
    if (file == NULL)
        return KRPC_SYSTEM_ERR;
    dir = file + 1;
    memset(&r, 0, sizeof(r));
    obj_init(file);
    obj_init(dir);
    e = resolve(s, req, &a.fh, 1, file, &be, NULL);
    if (e == 0)
        e = resolve(s, req, &a.link.dir, 1, dir, &dbe, NULL);
    if (e == 0 && be != dbe)
        e = -EXDEV; /* across exports (knfsd: nfserr_xdev) */
    if (e == 0)
        e = nfsd_op_link(be, file, dir, a.link.name);
    r.status = stat_of(s, e);
    obj_post_attr(be, file, &r.file_attr);
    obj_wcc(dbe, dir, &r.linkdir_wcc);
    nfs3_enc_link_res(x, &r);
    nfsd_obj_close(file);
    nfsd_obj_close(dir);
    free(file);
    return done(s, req, x, r.status);
}

static int readdir_common(struct nfs3_srv *s, struct krpc_svc_req *req, struct krpc_xdr_enc *x, int plus,
                          const struct nfs3_fh *fh, uint64_t cookie, uint32_t dircount, uint32_t maxcount)
{
    struct nfs3_readdir_enc enc;
    struct nfs3_readdir_res r;
    struct nfsd_obj o;
    struct nfsd_be *be = NULL;
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
    e = resolve(s, req, fh, 0, &o, &be, NULL);
    if (e == 0)
        e = nfsd_op_readdir(be, &o, cookie, plus, &enc, &r.eof);
    r.status = stat_of(s, e);
    /* The cookie verifier is always zero: cookies are d_off values, which
     * stay meaningful while the directory changes (as knfsd does). */
    obj_post_attr(be, &o, &r.dir_attr);
    nfs3_readdir_enc_end(&enc, x, &r);
    nfsd_obj_close(&o);
    return done(s, req, x, r.status);
}

static int p_readdir(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    struct nfs3_srv *s = SRV(arg);
    struct nfs3_readdir_args a;

    COUNT(s, req);
    if (nfs3_dec_readdir_args(d, &a) != 0)
        return KRPC_GARBAGE_ARGS;
    return readdir_common(s, req, x, 0, &a.dir, a.cookie, 0, a.count);
}

static int p_readdirplus(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    struct nfs3_srv *s = SRV(arg);
    struct nfs3_readdirplus_args a;

    COUNT(s, req);
    if (nfs3_dec_readdirplus_args(d, &a) != 0)
        return KRPC_GARBAGE_ARGS;
    return readdir_common(s, req, x, 1, &a.dir, a.cookie, a.dircount, a.maxcount);
}

static int p_fsstat(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    struct nfs3_srv *s = SRV(arg);
    struct nfsd_be *be = NULL;
    struct nfs3_fh_args a;
    struct nfs3_fsstat_res r;
    struct nfsd_obj o;
    struct statvfs v;
    int e;

    COUNT(s, req);
    if (nfs3_dec_fsstat_args(d, &a) != 0)
        return KRPC_GARBAGE_ARGS;
    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = resolve(s, req, &a.fh, 0, &o, &be, NULL);
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
    return done(s, req, x, r.status);
}

static int p_fsinfo(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    struct nfs3_srv *s = SRV(arg);
    struct nfsd_be *be = NULL;
    struct nfs3_fh_args a;
    struct nfs3_fsinfo_res r;
    struct nfsd_obj o;
    int e;

    COUNT(s, req);
    if (nfs3_dec_fsinfo_args(d, &a) != 0)
        return KRPC_GARBAGE_ARGS;
    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = resolve(s, req, &a.fh, 0, &o, &be, NULL);
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
    return done(s, req, x, r.status);
}

static int p_pathconf(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    struct nfs3_srv *s = SRV(arg);
    struct nfsd_be *be = NULL;
    struct nfs3_fh_args a;
    struct nfs3_pathconf_res r;
    struct nfsd_obj o;
    int e;

    COUNT(s, req);
    if (nfs3_dec_pathconf_args(d, &a) != 0)
        return KRPC_GARBAGE_ARGS;
    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = resolve(s, req, &a.fh, 0, &o, &be, NULL);
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
    return done(s, req, x, r.status);
}

static int p_commit(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    struct nfs3_srv *s = SRV(arg);
    struct nfsd_be *be = NULL;
    struct nfs3_commit_args a;
    struct nfs3_commit_res r;
    struct nfsd_obj o;
    struct stat post;
    int e;

    COUNT(s, req);
    if (nfs3_dec_commit_args(d, &a) != 0)
        return KRPC_GARBAGE_ARGS;
    memset(&r, 0, sizeof(r));
    obj_init(&o);
    e = resolve(s, req, &a.fh, 1, &o, &be, NULL);
    if (e == 0) {
        /* The whole file, whatever the range: fdatasync has no range. */
        e = nfsd_op_commit(be, &o, &post);
        if (e == 0) {
            s->st.syncs++;
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
    return done(s, req, x, r.status);
}

/* ---- MOUNT v3 -------------------------------------------------------------- */

static int m_mnt(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    struct nfs3_srv *s = SRV(arg);
    struct nfs3_mnt_args a;
    struct nfs3_mnt_res r;
    struct nfsd_export *xp = NULL;
    const struct nfs3_export_opts *opts = NULL;
    const char *rel = NULL;
    char peer[64];
    int e;

    s->st.mnt_ops[NFS3_MNT_PROC_MNT]++;
    if (nfs3_mnt_dec_mnt_args(d, &a) != 0)
        return KRPC_GARBAGE_ARGS;
    memset(&r, 0, sizeof(r));
    krpc_format_addr((const struct sockaddr *)&req->peer, peer, sizeof(peer));
    /* An export this client may use (else ACCES, as mountd), then the
     * export itself or (as the kernel's mountd allows) a directory beneath
     * it, reached without symlinks or "..". */
    e = nfsd_export_for_path(&s->ex, req, a.dirpath, &xp, &opts, &rel);
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
        krpc_log(KRPC_LOG_INFO, "nfsd: %s mounted %s%s%s", peer, a.dirpath, opts->ro ? " (ro)" : "",
                 req->tls ? " (TLS)" : "");
    } else {
        r.status = e == -ENOENT         ? MNT3ERR_NOENT
                   : e == -ENOTDIR      ? MNT3ERR_NOTDIR
                   : e == -ENAMETOOLONG ? MNT3ERR_NAMETOOLONG
                   : e == -EACCES       ? MNT3ERR_ACCES
                                        : MNT3ERR_IO;
        memset(&r.fh, 0, sizeof(r.fh));
        krpc_log(KRPC_LOG_INFO, "nfsd: %s: MNT %s: %s", peer, a.dirpath, nfs3_mnt_stat_name(r.status));
    }
    nfs3_mnt_enc_mnt_res(x, &r);
    return krpc_xdr_enc_error(x) ? KRPC_SYSTEM_ERR : KRPC_SUCCESS;
}

static int m_dump(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    SRV(arg)->st.mnt_ops[NFS3_MNT_PROC_DUMP]++;
    nfs3_mnt_enc_dump_res(x, NULL, 0);
    return krpc_xdr_enc_error(x) ? KRPC_SYSTEM_ERR : KRPC_SUCCESS;
}

static int m_umnt(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    struct nfs3_mnt_args a;

    SRV(arg)->st.mnt_ops[NFS3_MNT_PROC_UMNT]++;
    if (nfs3_mnt_dec_umnt_args(d, &a) != 0)
        return KRPC_GARBAGE_ARGS;
    return KRPC_SUCCESS;
}

static int m_umntall(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    SRV(arg)->st.mnt_ops[NFS3_MNT_PROC_UMNTALL]++;
    return KRPC_SUCCESS;
}

static int m_export(struct krpc_svc_req *req, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x, void *arg)
{
    struct nfs3_srv *s = SRV(arg);
    struct nfs3_mnt_export *ex;

    s->st.mnt_ops[NFS3_MNT_PROC_EXPORT]++;
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

int nfs3_srv_new(struct krpc_svc *svc, const struct nfs3_srv_config *cfg, struct nfs3_srv **out, char *err,
                 size_t errlen)
{
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
        /* One directory for every client that reaches the listener, read
         * and write, root squashed: the exports line "PATH *(rw)". */
        struct nfs3_export_opts o;
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
    nfs3_exports_free(&one);
    *out = s;
    return 0;
fail:
    memset(key, 0, sizeof(key));
    nfs3_exports_free(&one);
    nfsd_exports_close(&s->ex);
    free(s->state_dir);
    free(s);
    return ret;
}

void nfs3_srv_free(struct nfs3_srv *s)
{
    if (s == NULL)
        return;
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

const struct nfs3_srv_stats *nfs3_srv_stats(const struct nfs3_srv *s)
{
    uint64_t walks = 0;
    for (size_t i = 0; i < s->ex.n; i++)
        walks += s->ex.v[i].be.walks;
    ((struct nfs3_srv *)s)->st.walks = walks;
    return &s->st;
}
