/*
 * xdr3.c - NFSv3 (RFC 1813) XDR codecs on buffer chains: basic types and
 * every procedure except READDIR / READDIRPLUS (xdr3_dir.c). MOUNT is in
 * xdr3_mount.c.
 *
 * Decoders rely on the krpc_xdr_dec's sticky error: they read field after
 * field and report the first error at the end; nothing is read past the
 * bound and every length is checked against its RFC limit by the get.
 */
#include <errno.h>
#include <string.h>

#include "nfs3/xdr3_int.h"

/* ---- names -------------------------------------------------------------- */

const char *nfs3_stat_name(uint32_t stat)
{
    switch (stat) {
    case NFS3_OK: return "NFS3_OK";
    case NFS3ERR_PERM: return "NFS3ERR_PERM";
    case NFS3ERR_NOENT: return "NFS3ERR_NOENT";
    case NFS3ERR_IO: return "NFS3ERR_IO";
    case NFS3ERR_NXIO: return "NFS3ERR_NXIO";
    case NFS3ERR_ACCES: return "NFS3ERR_ACCES";
    case NFS3ERR_EXIST: return "NFS3ERR_EXIST";
    case NFS3ERR_XDEV: return "NFS3ERR_XDEV";
    case NFS3ERR_NODEV: return "NFS3ERR_NODEV";
    case NFS3ERR_NOTDIR: return "NFS3ERR_NOTDIR";
    case NFS3ERR_ISDIR: return "NFS3ERR_ISDIR";
    case NFS3ERR_INVAL: return "NFS3ERR_INVAL";
    case NFS3ERR_FBIG: return "NFS3ERR_FBIG";
    case NFS3ERR_NOSPC: return "NFS3ERR_NOSPC";
    case NFS3ERR_ROFS: return "NFS3ERR_ROFS";
    case NFS3ERR_MLINK: return "NFS3ERR_MLINK";
    case NFS3ERR_NAMETOOLONG: return "NFS3ERR_NAMETOOLONG";
    case NFS3ERR_NOTEMPTY: return "NFS3ERR_NOTEMPTY";
    case NFS3ERR_DQUOT: return "NFS3ERR_DQUOT";
    case NFS3ERR_STALE: return "NFS3ERR_STALE";
    case NFS3ERR_REMOTE: return "NFS3ERR_REMOTE";
    case NFS3ERR_BADHANDLE: return "NFS3ERR_BADHANDLE";
    case NFS3ERR_NOT_SYNC: return "NFS3ERR_NOT_SYNC";
    case NFS3ERR_BAD_COOKIE: return "NFS3ERR_BAD_COOKIE";
    case NFS3ERR_NOTSUPP: return "NFS3ERR_NOTSUPP";
    case NFS3ERR_TOOSMALL: return "NFS3ERR_TOOSMALL";
    case NFS3ERR_SERVERFAULT: return "NFS3ERR_SERVERFAULT";
    case NFS3ERR_BADTYPE: return "NFS3ERR_BADTYPE";
    case NFS3ERR_JUKEBOX: return "NFS3ERR_JUKEBOX";
    default: return "NFS3ERR_?";
    }
}

const char *nfs3_proc_name(uint32_t proc)
{
    static const char *const names[NFS3_NPROCS] = {
        "NULL",  "GETATTR", "SETATTR", "LOOKUP", "ACCESS", "READLINK",    "READ",   "WRITE",
        "CREATE", "MKDIR",  "SYMLINK", "MKNOD",  "REMOVE", "RMDIR",       "RENAME", "LINK",
        "READDIR", "READDIRPLUS", "FSSTAT", "FSINFO", "PATHCONF", "COMMIT",
    };
    return proc < NFS3_NPROCS ? names[proc] : "?";
}

/* ---- shared helpers ------------------------------------------------------ */

void nfs3__xdr_put_str(struct krpc_xdr_enc *x, const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n > max) {
        nfs3x_enc_fail(x, -EMSGSIZE);
        return;
    }
    krpc_xdr_put_opaque(x, s, n);
}

void nfs3__xdr_get_str(struct krpc_xdr_dec *d, char *buf, size_t max)
{
    buf[0] = '\0';
    krpc_xdr_get_string(d, buf, max + 1);
}

void nfs3__xdr_put_time(struct krpc_xdr_enc *x, const struct nfs3_time *t)
{
    krpc_xdr_put_u32(x, t->seconds);
    krpc_xdr_put_u32(x, t->nseconds);
}

void nfs3__xdr_get_time(struct krpc_xdr_dec *d, struct nfs3_time *t)
{
    t->seconds = krpc_xdr_get_u32(d);
    t->nseconds = krpc_xdr_get_u32(d);
}

void nfs3__xdr_put_post_fh(struct krpc_xdr_enc *x, int present, const struct nfs3_fh *fh)
{
    krpc_xdr_put_u32(x, present ? 1 : 0);
    if (present)
        nfs3_enc_fh(x, fh);
}

void nfs3__xdr_get_post_fh(struct krpc_xdr_dec *d, int *present, struct nfs3_fh *fh)
{
    *present = krpc_xdr_get_bool(d) == 1;
    if (*present)
        nfs3_dec_fh(d, fh);
}

size_t nfs3__xdr_post_attr_size(const struct nfs3_post_attr *a)
{
    return a && a->present ? NFS3_POST_ATTR_XDR_MAX : 4;
}

size_t nfs3__xdr_post_fh_size(int present, const struct nfs3_fh *fh)
{
    return present && fh ? 8 + fh->len + KRPC_XDR_PAD(fh->len) : 4;
}

/* ---- basic types --------------------------------------------------------- */

void nfs3_enc_fh(struct krpc_xdr_enc *x, const struct nfs3_fh *fh)
{
    if (fh->len > NFS3_FHSIZE) {
        nfs3x_enc_fail(x, -EMSGSIZE);
        return;
    }
    krpc_xdr_put_opaque(x, fh->data, fh->len);
}

int nfs3_dec_fh(struct krpc_xdr_dec *d, struct nfs3_fh *fh)
{
    size_t n = 0;
    krpc_xdr_get_opaque(d, fh->data, NFS3_FHSIZE, &n);
    fh->len = (uint32_t)n;
    if (d->err)
        fh->len = 0;
    return d->err;
}

void nfs3_enc_fattr(struct krpc_xdr_enc *x, const struct nfs3_fattr *a)
{
    _Static_assert(NFS3_FATTR_XDR_SIZE == 5 * 4 + 2 * 8 + 2 * 4 + 2 * 8 + 3 * 8,
                   "fattr3 on the wire (RFC 1813 2.6): 5 u32, size and used, specdata3, fsid and fileid, 3 nfstime3; "
                   "reply size accounting relies on it");
    krpc_xdr_put_u32(x, a->type);
    krpc_xdr_put_u32(x, a->mode);
    krpc_xdr_put_u32(x, a->nlink);
    krpc_xdr_put_u32(x, a->uid);
    krpc_xdr_put_u32(x, a->gid);
    krpc_xdr_put_u64(x, a->size);
    krpc_xdr_put_u64(x, a->used);
    krpc_xdr_put_u32(x, a->rdev1);
    krpc_xdr_put_u32(x, a->rdev2);
    krpc_xdr_put_u64(x, a->fsid);
    krpc_xdr_put_u64(x, a->fileid);
    nfs3__xdr_put_time(x, &a->atime);
    nfs3__xdr_put_time(x, &a->mtime);
    nfs3__xdr_put_time(x, &a->ctime);
}

int nfs3_dec_fattr(struct krpc_xdr_dec *d, struct nfs3_fattr *a)
{
    a->type = krpc_xdr_get_u32(d);
    a->mode = krpc_xdr_get_u32(d);
    a->nlink = krpc_xdr_get_u32(d);
    a->uid = krpc_xdr_get_u32(d);
    a->gid = krpc_xdr_get_u32(d);
    a->size = krpc_xdr_get_u64(d);
    a->used = krpc_xdr_get_u64(d);
    a->rdev1 = krpc_xdr_get_u32(d);
    a->rdev2 = krpc_xdr_get_u32(d);
    a->fsid = krpc_xdr_get_u64(d);
    a->fileid = krpc_xdr_get_u64(d);
    nfs3__xdr_get_time(d, &a->atime);
    nfs3__xdr_get_time(d, &a->mtime);
    nfs3__xdr_get_time(d, &a->ctime);
    return d->err;
}

void nfs3_enc_post_attr(struct krpc_xdr_enc *x, const struct nfs3_post_attr *a)
{
    krpc_xdr_put_u32(x, a->present ? 1 : 0);
    if (a->present)
        nfs3_enc_fattr(x, &a->attr);
}

int nfs3_dec_post_attr(struct krpc_xdr_dec *d, struct nfs3_post_attr *a)
{
    a->present = krpc_xdr_get_bool(d) == 1;
    if (a->present)
        nfs3_dec_fattr(d, &a->attr);
    return d->err;
}

void nfs3_enc_wcc(struct krpc_xdr_enc *x, const struct nfs3_wcc *w)
{
    krpc_xdr_put_u32(x, w->before.present ? 1 : 0);
    if (w->before.present) {
        krpc_xdr_put_u64(x, w->before.size);
        nfs3__xdr_put_time(x, &w->before.mtime);
        nfs3__xdr_put_time(x, &w->before.ctime);
    }
    nfs3_enc_post_attr(x, &w->after);
}

int nfs3_dec_wcc(struct krpc_xdr_dec *d, struct nfs3_wcc *w)
{
    w->before.present = krpc_xdr_get_bool(d) == 1;
    if (w->before.present) {
        w->before.size = krpc_xdr_get_u64(d);
        nfs3__xdr_get_time(d, &w->before.mtime);
        nfs3__xdr_get_time(d, &w->before.ctime);
    }
    return nfs3_dec_post_attr(d, &w->after);
}

static void put_set_time(struct krpc_xdr_enc *x, uint32_t how, const struct nfs3_time *t)
{
    if (how > NFS3_SET_TO_CLIENT_TIME) {
        nfs3x_enc_fail(x, -EINVAL);
        return;
    }
    krpc_xdr_put_u32(x, how);
    if (how == NFS3_SET_TO_CLIENT_TIME)
        nfs3__xdr_put_time(x, t);
}

static void get_set_time(struct krpc_xdr_dec *d, uint32_t *how, struct nfs3_time *t)
{
    *how = krpc_xdr_get_u32(d);
    if (*how > NFS3_SET_TO_CLIENT_TIME) {
        nfs3x_dec_fail(d, -EBADMSG);
        *how = 0;
        return;
    }
    if (*how == NFS3_SET_TO_CLIENT_TIME)
        nfs3__xdr_get_time(d, t);
}

void nfs3_enc_sattr(struct krpc_xdr_enc *x, const struct nfs3_sattr *s)
{
    krpc_xdr_put_u32(x, s->set_mode ? 1 : 0);
    if (s->set_mode)
        krpc_xdr_put_u32(x, s->mode);
    krpc_xdr_put_u32(x, s->set_uid ? 1 : 0);
    if (s->set_uid)
        krpc_xdr_put_u32(x, s->uid);
    krpc_xdr_put_u32(x, s->set_gid ? 1 : 0);
    if (s->set_gid)
        krpc_xdr_put_u32(x, s->gid);
    krpc_xdr_put_u32(x, s->set_size ? 1 : 0);
    if (s->set_size)
        krpc_xdr_put_u64(x, s->size);
    put_set_time(x, s->atime_how, &s->atime);
    put_set_time(x, s->mtime_how, &s->mtime);
}

int nfs3_dec_sattr(struct krpc_xdr_dec *d, struct nfs3_sattr *s)
{
    if ((s->set_mode = krpc_xdr_get_bool(d) == 1))
        s->mode = krpc_xdr_get_u32(d);
    if ((s->set_uid = krpc_xdr_get_bool(d) == 1))
        s->uid = krpc_xdr_get_u32(d);
    if ((s->set_gid = krpc_xdr_get_bool(d) == 1))
        s->gid = krpc_xdr_get_u32(d);
    if ((s->set_size = krpc_xdr_get_bool(d) == 1))
        s->size = krpc_xdr_get_u64(d);
    get_set_time(d, &s->atime_how, &s->atime);
    get_set_time(d, &s->mtime_how, &s->mtime);
    return d->err;
}

static void put_diropargs(struct krpc_xdr_enc *x, const struct nfs3_diropargs *a)
{
    nfs3_enc_fh(x, &a->dir);
    nfs3__xdr_put_str(x, a->name, NFS3_MAXNAMLEN);
}

static void get_diropargs(struct krpc_xdr_dec *d, struct nfs3_diropargs *a)
{
    nfs3_dec_fh(d, &a->dir);
    nfs3__xdr_get_str(d, a->name, NFS3_MAXNAMLEN);
}

/* Every decoder starts from a zeroed output and ends with the sticky error;
 * a failed decode leaves a zeroed output. */
#define DEC_BEGIN(p) memset((p), 0, sizeof *(p))
#define DEC_END(d, p)                    \
    do {                                 \
        if ((d)->err)                    \
            memset((p), 0, sizeof *(p)); \
        return (d)->err;                 \
    } while (0)

/* ---- file-handle-only arguments ----------------------------------------- */

static void enc_fh_args(struct krpc_xdr_enc *x, const struct nfs3_fh_args *a)
{
    nfs3_enc_fh(x, &a->fh);
}

static int dec_fh_args(struct krpc_xdr_dec *d, struct nfs3_fh_args *a)
{
    DEC_BEGIN(a);
    nfs3_dec_fh(d, &a->fh);
    DEC_END(d, a);
}

void nfs3_enc_getattr_args(struct krpc_xdr_enc *x, const struct nfs3_fh_args *a) { enc_fh_args(x, a); }
int nfs3_dec_getattr_args(struct krpc_xdr_dec *d, struct nfs3_fh_args *a) { return dec_fh_args(d, a); }
void nfs3_enc_readlink_args(struct krpc_xdr_enc *x, const struct nfs3_fh_args *a) { enc_fh_args(x, a); }
int nfs3_dec_readlink_args(struct krpc_xdr_dec *d, struct nfs3_fh_args *a) { return dec_fh_args(d, a); }
void nfs3_enc_fsstat_args(struct krpc_xdr_enc *x, const struct nfs3_fh_args *a) { enc_fh_args(x, a); }
int nfs3_dec_fsstat_args(struct krpc_xdr_dec *d, struct nfs3_fh_args *a) { return dec_fh_args(d, a); }
void nfs3_enc_fsinfo_args(struct krpc_xdr_enc *x, const struct nfs3_fh_args *a) { enc_fh_args(x, a); }
int nfs3_dec_fsinfo_args(struct krpc_xdr_dec *d, struct nfs3_fh_args *a) { return dec_fh_args(d, a); }
void nfs3_enc_pathconf_args(struct krpc_xdr_enc *x, const struct nfs3_fh_args *a) { enc_fh_args(x, a); }
int nfs3_dec_pathconf_args(struct krpc_xdr_dec *d, struct nfs3_fh_args *a) { return dec_fh_args(d, a); }

/* ---- wcc-only results (SETATTR, REMOVE, RMDIR) --------------------------- */

static void enc_wcc_res(struct krpc_xdr_enc *x, const struct nfs3_wcc_res *r)
{
    krpc_xdr_put_u32(x, r->status);
    nfs3_enc_wcc(x, &r->wcc);
}

static int dec_wcc_res(struct krpc_xdr_dec *d, struct nfs3_wcc_res *r)
{
    DEC_BEGIN(r);
    r->status = krpc_xdr_get_u32(d);
    nfs3_dec_wcc(d, &r->wcc);
    DEC_END(d, r);
}

void nfs3_enc_setattr_res(struct krpc_xdr_enc *x, const struct nfs3_wcc_res *r) { enc_wcc_res(x, r); }
int nfs3_dec_setattr_res(struct krpc_xdr_dec *d, struct nfs3_wcc_res *r) { return dec_wcc_res(d, r); }
void nfs3_enc_remove_res(struct krpc_xdr_enc *x, const struct nfs3_wcc_res *r) { enc_wcc_res(x, r); }
int nfs3_dec_remove_res(struct krpc_xdr_dec *d, struct nfs3_wcc_res *r) { return dec_wcc_res(d, r); }
void nfs3_enc_rmdir_res(struct krpc_xdr_enc *x, const struct nfs3_wcc_res *r) { enc_wcc_res(x, r); }
int nfs3_dec_rmdir_res(struct krpc_xdr_dec *d, struct nfs3_wcc_res *r) { return dec_wcc_res(d, r); }

/* ---- diropargs-only arguments (LOOKUP, REMOVE, RMDIR) -------------------- */

static int dec_diropargs(struct krpc_xdr_dec *d, struct nfs3_diropargs *a)
{
    DEC_BEGIN(a);
    get_diropargs(d, a);
    DEC_END(d, a);
}

void nfs3_enc_lookup_args(struct krpc_xdr_enc *x, const struct nfs3_diropargs *a) { put_diropargs(x, a); }
int nfs3_dec_lookup_args(struct krpc_xdr_dec *d, struct nfs3_diropargs *a) { return dec_diropargs(d, a); }
void nfs3_enc_remove_args(struct krpc_xdr_enc *x, const struct nfs3_diropargs *a) { put_diropargs(x, a); }
int nfs3_dec_remove_args(struct krpc_xdr_dec *d, struct nfs3_diropargs *a) { return dec_diropargs(d, a); }
void nfs3_enc_rmdir_args(struct krpc_xdr_enc *x, const struct nfs3_diropargs *a) { put_diropargs(x, a); }
int nfs3_dec_rmdir_args(struct krpc_xdr_dec *d, struct nfs3_diropargs *a) { return dec_diropargs(d, a); }

/* ---- diropres3 (CREATE, MKDIR, SYMLINK, MKNOD) --------------------------- */

static void enc_diropres(struct krpc_xdr_enc *x, const struct nfs3_diropres *r)
{
    krpc_xdr_put_u32(x, r->status);
    if (r->status == NFS3_OK) {
        nfs3__xdr_put_post_fh(x, r->fh_present, &r->fh);
        nfs3_enc_post_attr(x, &r->obj_attr);
    }
    nfs3_enc_wcc(x, &r->dir_wcc);
}

static int dec_diropres(struct krpc_xdr_dec *d, struct nfs3_diropres *r)
{
    DEC_BEGIN(r);
    r->status = krpc_xdr_get_u32(d);
    if (r->status == NFS3_OK && !d->err) {
        nfs3__xdr_get_post_fh(d, &r->fh_present, &r->fh);
        nfs3_dec_post_attr(d, &r->obj_attr);
    }
    nfs3_dec_wcc(d, &r->dir_wcc);
    DEC_END(d, r);
}

void nfs3_enc_create_res(struct krpc_xdr_enc *x, const struct nfs3_diropres *r) { enc_diropres(x, r); }
int nfs3_dec_create_res(struct krpc_xdr_dec *d, struct nfs3_diropres *r) { return dec_diropres(d, r); }
void nfs3_enc_mkdir_res(struct krpc_xdr_enc *x, const struct nfs3_diropres *r) { enc_diropres(x, r); }
int nfs3_dec_mkdir_res(struct krpc_xdr_dec *d, struct nfs3_diropres *r) { return dec_diropres(d, r); }
void nfs3_enc_symlink_res(struct krpc_xdr_enc *x, const struct nfs3_diropres *r) { enc_diropres(x, r); }
int nfs3_dec_symlink_res(struct krpc_xdr_dec *d, struct nfs3_diropres *r) { return dec_diropres(d, r); }
void nfs3_enc_mknod_res(struct krpc_xdr_enc *x, const struct nfs3_diropres *r) { enc_diropres(x, r); }
int nfs3_dec_mknod_res(struct krpc_xdr_dec *d, struct nfs3_diropres *r) { return dec_diropres(d, r); }

/* ---- GETATTR ------------------------------------------------------------- */

void nfs3_enc_getattr_res(struct krpc_xdr_enc *x, const struct nfs3_getattr_res *r)
{
    krpc_xdr_put_u32(x, r->status);
    if (r->status == NFS3_OK)
        nfs3_enc_fattr(x, &r->attr);
}

int nfs3_dec_getattr_res(struct krpc_xdr_dec *d, struct nfs3_getattr_res *r)
{
    DEC_BEGIN(r);
    r->status = krpc_xdr_get_u32(d);
    if (r->status == NFS3_OK)
        nfs3_dec_fattr(d, &r->attr);
    DEC_END(d, r);
}

/* ---- SETATTR ------------------------------------------------------------- */

void nfs3_enc_setattr_args(struct krpc_xdr_enc *x, const struct nfs3_setattr_args *a)
{
    nfs3_enc_fh(x, &a->fh);
    nfs3_enc_sattr(x, &a->attr);
    krpc_xdr_put_u32(x, a->guard_check ? 1 : 0);
    if (a->guard_check)
        nfs3__xdr_put_time(x, &a->guard_ctime);
}

int nfs3_dec_setattr_args(struct krpc_xdr_dec *d, struct nfs3_setattr_args *a)
{
    DEC_BEGIN(a);
    nfs3_dec_fh(d, &a->fh);
    nfs3_dec_sattr(d, &a->attr);
    if ((a->guard_check = krpc_xdr_get_bool(d) == 1))
        nfs3__xdr_get_time(d, &a->guard_ctime);
    DEC_END(d, a);
}

/* ---- LOOKUP -------------------------------------------------------------- */

void nfs3_enc_lookup_res(struct krpc_xdr_enc *x, const struct nfs3_lookup_res *r)
{
    krpc_xdr_put_u32(x, r->status);
    if (r->status == NFS3_OK) {
        nfs3_enc_fh(x, &r->fh);
        nfs3_enc_post_attr(x, &r->obj_attr);
    }
    nfs3_enc_post_attr(x, &r->dir_attr);
}

int nfs3_dec_lookup_res(struct krpc_xdr_dec *d, struct nfs3_lookup_res *r)
{
    DEC_BEGIN(r);
    r->status = krpc_xdr_get_u32(d);
    if (r->status == NFS3_OK && !d->err) {
        nfs3_dec_fh(d, &r->fh);
        nfs3_dec_post_attr(d, &r->obj_attr);
    }
    nfs3_dec_post_attr(d, &r->dir_attr);
    DEC_END(d, r);
}

/* ---- ACCESS -------------------------------------------------------------- */

void nfs3_enc_access_args(struct krpc_xdr_enc *x, const struct nfs3_access_args *a)
{
    nfs3_enc_fh(x, &a->fh);
    krpc_xdr_put_u32(x, a->access);
}

int nfs3_dec_access_args(struct krpc_xdr_dec *d, struct nfs3_access_args *a)
{
    DEC_BEGIN(a);
    nfs3_dec_fh(d, &a->fh);
    a->access = krpc_xdr_get_u32(d);
    DEC_END(d, a);
}

void nfs3_enc_access_res(struct krpc_xdr_enc *x, const struct nfs3_access_res *r)
{
    krpc_xdr_put_u32(x, r->status);
    nfs3_enc_post_attr(x, &r->obj_attr);
    if (r->status == NFS3_OK)
        krpc_xdr_put_u32(x, r->access);
}

int nfs3_dec_access_res(struct krpc_xdr_dec *d, struct nfs3_access_res *r)
{
    DEC_BEGIN(r);
    r->status = krpc_xdr_get_u32(d);
    nfs3_dec_post_attr(d, &r->obj_attr);
    if (r->status == NFS3_OK)
        r->access = krpc_xdr_get_u32(d);
    DEC_END(d, r);
}

/* ---- READLINK ------------------------------------------------------------ */

void nfs3_enc_readlink_res(struct krpc_xdr_enc *x, const struct nfs3_readlink_res *r)
{
    krpc_xdr_put_u32(x, r->status);
    nfs3_enc_post_attr(x, &r->symlink_attr);
    if (r->status == NFS3_OK)
        nfs3__xdr_put_str(x, r->data, NFS3_MAXPATHLEN);
}

int nfs3_dec_readlink_res(struct krpc_xdr_dec *d, struct nfs3_readlink_res *r)
{
    DEC_BEGIN(r);
    r->status = krpc_xdr_get_u32(d);
    nfs3_dec_post_attr(d, &r->symlink_attr);
    if (r->status == NFS3_OK)
        nfs3__xdr_get_str(d, r->data, NFS3_MAXPATHLEN);
    DEC_END(d, r);
}

/* ---- READ ---------------------------------------------------------------- */

void nfs3_enc_read_args(struct krpc_xdr_enc *x, const struct nfs3_read_args *a)
{
    nfs3_enc_fh(x, &a->fh);
    krpc_xdr_put_u64(x, a->offset);
    krpc_xdr_put_u32(x, a->count);
}

int nfs3_dec_read_args(struct krpc_xdr_dec *d, struct nfs3_read_args *a)
{
    DEC_BEGIN(a);
    nfs3_dec_fh(d, &a->fh);
    a->offset = krpc_xdr_get_u64(d);
    a->count = krpc_xdr_get_u32(d);
    DEC_END(d, a);
}

void nfs3_enc_read_res(struct krpc_xdr_enc *x, struct nfs3_read_res *r)
{
    krpc_xdr_put_u32(x, r->status);
    nfs3_enc_post_attr(x, &r->file_attr);
    if (r->status != NFS3_OK) {
        mb_chain_free(&r->data);
        return;
    }
    krpc_xdr_put_u32(x, r->count);
    krpc_xdr_put_u32(x, r->eof ? 1 : 0);
    if (r->data.len > NFS3_MAX_DATA) {
        nfs3x_enc_fail(x, -EMSGSIZE);
        mb_chain_free(&r->data);
        return;
    }
    krpc_xdr_put_opaque_chain(x, &r->data);
}

int nfs3_dec_read_res(struct krpc_xdr_dec *d, struct nfs3_read_res *r)
{
    DEC_BEGIN(r);
    mb_chain_init(&r->data);
    r->status = krpc_xdr_get_u32(d);
    nfs3_dec_post_attr(d, &r->file_attr);
    if (r->status == NFS3_OK && !d->err) {
        r->count = krpc_xdr_get_u32(d);
        r->eof = krpc_xdr_get_bool(d) == 1;
        if (krpc_xdr_get_opaque_ref(d, NFS3_MAX_DATA, &r->data) == 0 && r->data.len != r->count)
            nfs3x_dec_fail(d, -EBADMSG);
    }
    if (d->err) {
        mb_chain_free(&r->data);
        memset(r, 0, sizeof *r);
    }
    return d->err;
}

void nfs3_read_res_free(struct nfs3_read_res *r)
{
    mb_chain_free(&r->data);
}

/* ---- WRITE --------------------------------------------------------------- */

void nfs3_enc_write_args(struct krpc_xdr_enc *x, struct nfs3_write_args *a)
{
    nfs3_enc_fh(x, &a->fh);
    krpc_xdr_put_u64(x, a->offset);
    krpc_xdr_put_u32(x, a->count);
    krpc_xdr_put_u32(x, a->stable);
    if (a->data.len > NFS3_MAX_DATA) {
        nfs3x_enc_fail(x, -EMSGSIZE);
        mb_chain_free(&a->data);
        return;
    }
    krpc_xdr_put_opaque_chain(x, &a->data);
}

int nfs3_dec_write_args(struct krpc_xdr_dec *d, struct nfs3_write_args *a)
{
    DEC_BEGIN(a);
    mb_chain_init(&a->data);
    nfs3_dec_fh(d, &a->fh);
    a->offset = krpc_xdr_get_u64(d);
    a->count = krpc_xdr_get_u32(d);
    a->stable = krpc_xdr_get_u32(d);
    if (a->stable > NFS3_FILE_SYNC)
        nfs3x_dec_fail(d, -EBADMSG);
    /* count must equal the opaque length: decided as GARBAGE_ARGS (see nfs3.h). */
    if (krpc_xdr_get_opaque_ref(d, NFS3_MAX_DATA, &a->data) == 0 && a->data.len != a->count)
        nfs3x_dec_fail(d, -EBADMSG);
    if (d->err) {
        mb_chain_free(&a->data);
        memset(a, 0, sizeof *a);
    }
    return d->err;
}

void nfs3_write_args_free(struct nfs3_write_args *a)
{
    mb_chain_free(&a->data);
}

void nfs3_enc_write_res(struct krpc_xdr_enc *x, const struct nfs3_write_res *r)
{
    krpc_xdr_put_u32(x, r->status);
    nfs3_enc_wcc(x, &r->file_wcc);
    if (r->status == NFS3_OK) {
        krpc_xdr_put_u32(x, r->count);
        krpc_xdr_put_u32(x, r->committed);
        krpc_xdr_put_fixed(x, r->verf, NFS3_WRITEVERFSIZE);
    }
}

int nfs3_dec_write_res(struct krpc_xdr_dec *d, struct nfs3_write_res *r)
{
    DEC_BEGIN(r);
    r->status = krpc_xdr_get_u32(d);
    nfs3_dec_wcc(d, &r->file_wcc);
    if (r->status == NFS3_OK && !d->err) {
        r->count = krpc_xdr_get_u32(d);
        r->committed = krpc_xdr_get_u32(d);
        if (r->committed > NFS3_FILE_SYNC)
            nfs3x_dec_fail(d, -EBADMSG);
        krpc_xdr_get_fixed(d, r->verf, NFS3_WRITEVERFSIZE);
    }
    DEC_END(d, r);
}

/* ---- CREATE -------------------------------------------------------------- */

void nfs3_enc_create_args(struct krpc_xdr_enc *x, const struct nfs3_create_args *a)
{
    put_diropargs(x, &a->where);
    if (a->mode > NFS3_CREATE_EXCLUSIVE) {
        nfs3x_enc_fail(x, -EINVAL);
        return;
    }
    krpc_xdr_put_u32(x, a->mode);
    if (a->mode == NFS3_CREATE_EXCLUSIVE)
        krpc_xdr_put_fixed(x, a->verf, NFS3_CREATEVERFSIZE);
    else
        nfs3_enc_sattr(x, &a->attr);
}

int nfs3_dec_create_args(struct krpc_xdr_dec *d, struct nfs3_create_args *a)
{
    DEC_BEGIN(a);
    get_diropargs(d, &a->where);
    a->mode = krpc_xdr_get_u32(d);
    if (d->err) {
    } else if (a->mode == NFS3_CREATE_EXCLUSIVE) {
        krpc_xdr_get_fixed(d, a->verf, NFS3_CREATEVERFSIZE);
    } else if (a->mode == NFS3_CREATE_UNCHECKED || a->mode == NFS3_CREATE_GUARDED) {
        nfs3_dec_sattr(d, &a->attr);
    } else {
        nfs3x_dec_fail(d, -EBADMSG);
    }
    DEC_END(d, a);
}

/* ---- MKDIR --------------------------------------------------------------- */

void nfs3_enc_mkdir_args(struct krpc_xdr_enc *x, const struct nfs3_mkdir_args *a)
{
    put_diropargs(x, &a->where);
    nfs3_enc_sattr(x, &a->attr);
}

int nfs3_dec_mkdir_args(struct krpc_xdr_dec *d, struct nfs3_mkdir_args *a)
{
    DEC_BEGIN(a);
    get_diropargs(d, &a->where);
    nfs3_dec_sattr(d, &a->attr);
    DEC_END(d, a);
}

/* ---- SYMLINK ------------------------------------------------------------- */

void nfs3_enc_symlink_args(struct krpc_xdr_enc *x, const struct nfs3_symlink_args *a)
{
    put_diropargs(x, &a->where);
    nfs3_enc_sattr(x, &a->attr);
    nfs3__xdr_put_str(x, a->data, NFS3_MAXPATHLEN);
}

int nfs3_dec_symlink_args(struct krpc_xdr_dec *d, struct nfs3_symlink_args *a)
{
    DEC_BEGIN(a);
    get_diropargs(d, &a->where);
    nfs3_dec_sattr(d, &a->attr);
    nfs3__xdr_get_str(d, a->data, NFS3_MAXPATHLEN);
    DEC_END(d, a);
}

/* ---- MKNOD --------------------------------------------------------------- */

void nfs3_enc_mknod_args(struct krpc_xdr_enc *x, const struct nfs3_mknod_args *a)
{
    put_diropargs(x, &a->where);
    if (a->type < NFS3_REG || a->type > NFS3_FIFO) {
        nfs3x_enc_fail(x, -EINVAL);
        return;
    }
    krpc_xdr_put_u32(x, a->type);
    switch (a->type) {
    case NFS3_CHR:
    case NFS3_BLK:
        nfs3_enc_sattr(x, &a->attr);
        krpc_xdr_put_u32(x, a->spec1);
        krpc_xdr_put_u32(x, a->spec2);
        break;
    case NFS3_SOCK:
    case NFS3_FIFO:
        nfs3_enc_sattr(x, &a->attr);
        break;
    default:
        break;
    }
}

int nfs3_dec_mknod_args(struct krpc_xdr_dec *d, struct nfs3_mknod_args *a)
{
    DEC_BEGIN(a);
    get_diropargs(d, &a->where);
    a->type = krpc_xdr_get_u32(d);
    if (d->err)
        DEC_END(d, a);
    switch (a->type) {
    case NFS3_CHR:
    case NFS3_BLK:
        nfs3_dec_sattr(d, &a->attr);
        a->spec1 = krpc_xdr_get_u32(d);
        a->spec2 = krpc_xdr_get_u32(d);
        break;
    case NFS3_SOCK:
    case NFS3_FIFO:
        nfs3_dec_sattr(d, &a->attr);
        break;
    case NFS3_REG:
    case NFS3_DIR:
    case NFS3_LNK:
        break;
    default:
        nfs3x_dec_fail(d, -EBADMSG);
        break;
    }
    DEC_END(d, a);
}

/* ---- RENAME -------------------------------------------------------------- */

void nfs3_enc_rename_args(struct krpc_xdr_enc *x, const struct nfs3_rename_args *a)
{
    put_diropargs(x, &a->from);
    put_diropargs(x, &a->to);
}

int nfs3_dec_rename_args(struct krpc_xdr_dec *d, struct nfs3_rename_args *a)
{
    DEC_BEGIN(a);
    get_diropargs(d, &a->from);
    get_diropargs(d, &a->to);
    DEC_END(d, a);
}

void nfs3_enc_rename_res(struct krpc_xdr_enc *x, const struct nfs3_rename_res *r)
{
    krpc_xdr_put_u32(x, r->status);
    nfs3_enc_wcc(x, &r->fromdir_wcc);
    nfs3_enc_wcc(x, &r->todir_wcc);
}

int nfs3_dec_rename_res(struct krpc_xdr_dec *d, struct nfs3_rename_res *r)
{
    DEC_BEGIN(r);
    r->status = krpc_xdr_get_u32(d);
    nfs3_dec_wcc(d, &r->fromdir_wcc);
    nfs3_dec_wcc(d, &r->todir_wcc);
    DEC_END(d, r);
}

/* ---- LINK ---------------------------------------------------------------- */

void nfs3_enc_link_args(struct krpc_xdr_enc *x, const struct nfs3_link_args *a)
{
    nfs3_enc_fh(x, &a->fh);
    put_diropargs(x, &a->link);
}

int nfs3_dec_link_args(struct krpc_xdr_dec *d, struct nfs3_link_args *a)
{
    DEC_BEGIN(a);
    nfs3_dec_fh(d, &a->fh);
    get_diropargs(d, &a->link);
    DEC_END(d, a);
}

void nfs3_enc_link_res(struct krpc_xdr_enc *x, const struct nfs3_link_res *r)
{
    krpc_xdr_put_u32(x, r->status);
    nfs3_enc_post_attr(x, &r->file_attr);
    nfs3_enc_wcc(x, &r->linkdir_wcc);
}

int nfs3_dec_link_res(struct krpc_xdr_dec *d, struct nfs3_link_res *r)
{
    DEC_BEGIN(r);
    r->status = krpc_xdr_get_u32(d);
    nfs3_dec_post_attr(d, &r->file_attr);
    nfs3_dec_wcc(d, &r->linkdir_wcc);
    DEC_END(d, r);
}

/* ---- FSSTAT -------------------------------------------------------------- */

void nfs3_enc_fsstat_res(struct krpc_xdr_enc *x, const struct nfs3_fsstat_res *r)
{
    krpc_xdr_put_u32(x, r->status);
    nfs3_enc_post_attr(x, &r->obj_attr);
    if (r->status != NFS3_OK)
        return;
    krpc_xdr_put_u64(x, r->tbytes);
    krpc_xdr_put_u64(x, r->fbytes);
    krpc_xdr_put_u64(x, r->abytes);
    krpc_xdr_put_u64(x, r->tfiles);
    krpc_xdr_put_u64(x, r->ffiles);
    krpc_xdr_put_u64(x, r->afiles);
    krpc_xdr_put_u32(x, r->invarsec);
}

int nfs3_dec_fsstat_res(struct krpc_xdr_dec *d, struct nfs3_fsstat_res *r)
{
    DEC_BEGIN(r);
    r->status = krpc_xdr_get_u32(d);
    nfs3_dec_post_attr(d, &r->obj_attr);
    if (r->status == NFS3_OK) {
        r->tbytes = krpc_xdr_get_u64(d);
        r->fbytes = krpc_xdr_get_u64(d);
        r->abytes = krpc_xdr_get_u64(d);
        r->tfiles = krpc_xdr_get_u64(d);
        r->ffiles = krpc_xdr_get_u64(d);
        r->afiles = krpc_xdr_get_u64(d);
        r->invarsec = krpc_xdr_get_u32(d);
    }
    DEC_END(d, r);
}

/* ---- FSINFO -------------------------------------------------------------- */

void nfs3_enc_fsinfo_res(struct krpc_xdr_enc *x, const struct nfs3_fsinfo_res *r)
{
    krpc_xdr_put_u32(x, r->status);
    nfs3_enc_post_attr(x, &r->obj_attr);
    if (r->status != NFS3_OK)
        return;
    krpc_xdr_put_u32(x, r->rtmax);
    krpc_xdr_put_u32(x, r->rtpref);
    krpc_xdr_put_u32(x, r->rtmult);
    krpc_xdr_put_u32(x, r->wtmax);
    krpc_xdr_put_u32(x, r->wtpref);
    krpc_xdr_put_u32(x, r->wtmult);
    krpc_xdr_put_u32(x, r->dtpref);
    krpc_xdr_put_u64(x, r->maxfilesize);
    nfs3__xdr_put_time(x, &r->time_delta);
    krpc_xdr_put_u32(x, r->properties);
}

int nfs3_dec_fsinfo_res(struct krpc_xdr_dec *d, struct nfs3_fsinfo_res *r)
{
    DEC_BEGIN(r);
    r->status = krpc_xdr_get_u32(d);
    nfs3_dec_post_attr(d, &r->obj_attr);
    if (r->status == NFS3_OK) {
        r->rtmax = krpc_xdr_get_u32(d);
        r->rtpref = krpc_xdr_get_u32(d);
        r->rtmult = krpc_xdr_get_u32(d);
        r->wtmax = krpc_xdr_get_u32(d);
        r->wtpref = krpc_xdr_get_u32(d);
        r->wtmult = krpc_xdr_get_u32(d);
        r->dtpref = krpc_xdr_get_u32(d);
        r->maxfilesize = krpc_xdr_get_u64(d);
        nfs3__xdr_get_time(d, &r->time_delta);
        r->properties = krpc_xdr_get_u32(d);
    }
    DEC_END(d, r);
}

/* ---- PATHCONF ------------------------------------------------------------ */

void nfs3_enc_pathconf_res(struct krpc_xdr_enc *x, const struct nfs3_pathconf_res *r)
{
    krpc_xdr_put_u32(x, r->status);
    nfs3_enc_post_attr(x, &r->obj_attr);
    if (r->status != NFS3_OK)
        return;
    krpc_xdr_put_u32(x, r->linkmax);
    krpc_xdr_put_u32(x, r->name_max);
    krpc_xdr_put_u32(x, r->no_trunc ? 1 : 0);
    krpc_xdr_put_u32(x, r->chown_restricted ? 1 : 0);
    krpc_xdr_put_u32(x, r->case_insensitive ? 1 : 0);
    krpc_xdr_put_u32(x, r->case_preserving ? 1 : 0);
}

int nfs3_dec_pathconf_res(struct krpc_xdr_dec *d, struct nfs3_pathconf_res *r)
{
    DEC_BEGIN(r);
    r->status = krpc_xdr_get_u32(d);
    nfs3_dec_post_attr(d, &r->obj_attr);
    if (r->status == NFS3_OK) {
        r->linkmax = krpc_xdr_get_u32(d);
        r->name_max = krpc_xdr_get_u32(d);
        r->no_trunc = krpc_xdr_get_bool(d) == 1;
        r->chown_restricted = krpc_xdr_get_bool(d) == 1;
        r->case_insensitive = krpc_xdr_get_bool(d) == 1;
        r->case_preserving = krpc_xdr_get_bool(d) == 1;
    }
    DEC_END(d, r);
}

/* ---- COMMIT -------------------------------------------------------------- */

void nfs3_enc_commit_args(struct krpc_xdr_enc *x, const struct nfs3_commit_args *a)
{
    nfs3_enc_fh(x, &a->fh);
    krpc_xdr_put_u64(x, a->offset);
    krpc_xdr_put_u32(x, a->count);
}

int nfs3_dec_commit_args(struct krpc_xdr_dec *d, struct nfs3_commit_args *a)
{
    DEC_BEGIN(a);
    nfs3_dec_fh(d, &a->fh);
    a->offset = krpc_xdr_get_u64(d);
    a->count = krpc_xdr_get_u32(d);
    DEC_END(d, a);
}

void nfs3_enc_commit_res(struct krpc_xdr_enc *x, const struct nfs3_commit_res *r)
{
    krpc_xdr_put_u32(x, r->status);
    nfs3_enc_wcc(x, &r->file_wcc);
    if (r->status == NFS3_OK)
        krpc_xdr_put_fixed(x, r->verf, NFS3_WRITEVERFSIZE);
}

int nfs3_dec_commit_res(struct krpc_xdr_dec *d, struct nfs3_commit_res *r)
{
    DEC_BEGIN(r);
    r->status = krpc_xdr_get_u32(d);
    nfs3_dec_wcc(d, &r->file_wcc);
    if (r->status == NFS3_OK)
        krpc_xdr_get_fixed(d, r->verf, NFS3_WRITEVERFSIZE);
    DEC_END(d, r);
}
