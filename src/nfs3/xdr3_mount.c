/*
 * xdr3_mount.c - MOUNT v3 (RFC 1813 appendix I) codecs.
 */
#include <errno.h>
#include <string.h>

#include "nfs3/xdr3_int.h"

const char *nfs3_mnt_stat_name(uint32_t stat)
{
    switch (stat) {
    case MNT3_OK: return "MNT3_OK";
    case MNT3ERR_PERM: return "MNT3ERR_PERM";
    case MNT3ERR_NOENT: return "MNT3ERR_NOENT";
    case MNT3ERR_IO: return "MNT3ERR_IO";
    case MNT3ERR_ACCES: return "MNT3ERR_ACCES";
    case MNT3ERR_NOTDIR: return "MNT3ERR_NOTDIR";
    case MNT3ERR_INVAL: return "MNT3ERR_INVAL";
    case MNT3ERR_NAMETOOLONG: return "MNT3ERR_NAMETOOLONG";
    case MNT3ERR_NOTSUPP: return "MNT3ERR_NOTSUPP";
    case MNT3ERR_SERVERFAULT: return "MNT3ERR_SERVERFAULT";
    default: return "MNT3ERR_?";
    }
}

const char *nfs3_mnt_proc_name(uint32_t proc)
{
    static const char *const names[NFS3_MNT_NPROCS] = {"NULL", "MNT", "DUMP", "UMNT", "UMNTALL", "EXPORT"};
    return proc < NFS3_MNT_NPROCS ? names[proc] : "?";
}

/* ---- MNT / UMNT ---------------------------------------------------------- */

void nfs3_mnt_enc_mnt_args(struct krpc_xdr_enc *x, const struct nfs3_mnt_args *a)
{
    nfs3__xdr_put_str(x, a->dirpath, NFS3_MAXPATHLEN);
}

int nfs3_mnt_dec_mnt_args(struct krpc_xdr_dec *d, struct nfs3_mnt_args *a)
{
    memset(a, 0, sizeof *a);
    nfs3__xdr_get_str(d, a->dirpath, NFS3_MAXPATHLEN);
    if (d->err)
        memset(a, 0, sizeof *a);
    return d->err;
}

void nfs3_mnt_enc_umnt_args(struct krpc_xdr_enc *x, const struct nfs3_mnt_args *a)
{
    nfs3_mnt_enc_mnt_args(x, a);
}

int nfs3_mnt_dec_umnt_args(struct krpc_xdr_dec *d, struct nfs3_mnt_args *a)
{
    return nfs3_mnt_dec_mnt_args(d, a);
}

void nfs3_mnt_enc_mnt_res(struct krpc_xdr_enc *x, const struct nfs3_mnt_res *r)
{
    krpc_xdr_put_u32(x, r->status);
    if (r->status != MNT3_OK)
        return;
    nfs3_enc_fh(x, &r->fh);
    if (r->nflavors > NFS3_MNT_MAXFLAVORS) {
        nfs3x_enc_fail(x, -EMSGSIZE);
        return;
    }
    krpc_xdr_put_u32(x, r->nflavors);
    for (uint32_t i = 0; i < r->nflavors; i++)
        krpc_xdr_put_u32(x, r->flavors[i]);
}

int nfs3_mnt_dec_mnt_res(struct krpc_xdr_dec *d, struct nfs3_mnt_res *r)
{
    memset(r, 0, sizeof *r);
    r->status = krpc_xdr_get_u32(d);
    if (r->status == MNT3_OK && !d->err) {
        nfs3_dec_fh(d, &r->fh);
        r->nflavors = krpc_xdr_get_u32(d);
        if (r->nflavors > NFS3_MNT_MAXFLAVORS)
            nfs3x_dec_fail(d, -EMSGSIZE);
        for (uint32_t i = 0; i < r->nflavors && !d->err; i++)
            r->flavors[i] = krpc_xdr_get_u32(d);
    }
    if (d->err)
        memset(r, 0, sizeof *r);
    return d->err;
}

/* ---- EXPORT -------------------------------------------------------------- */

void nfs3_mnt_enc_export_res(struct krpc_xdr_enc *x, const struct nfs3_mnt_export *ex, uint32_t n)
{
    for (uint32_t i = 0; i < n && !x->err; i++) {
        krpc_xdr_put_u32(x, 1);
        nfs3__xdr_put_str(x, ex[i].dir, NFS3_MAXPATHLEN);
        if (ex[i].ngroups > NFS3_MNT_MAXGROUPS) {
            nfs3x_enc_fail(x, -EMSGSIZE);
            return;
        }
        for (uint32_t g = 0; g < ex[i].ngroups; g++) {
            krpc_xdr_put_u32(x, 1);
            nfs3__xdr_put_str(x, ex[i].groups[g], NFS3_MNT_NAMLEN);
        }
        krpc_xdr_put_u32(x, 0);
    }
    krpc_xdr_put_u32(x, 0);
}

/* Lists are bounded by the message: every node takes at least 8 bytes. */
int nfs3_mnt_dec_export_res(struct krpc_xdr_dec *d, struct nfs3_mnt_export *ex, uint32_t max, uint32_t *n)
{
    *n = 0;
    while (krpc_xdr_get_bool(d) == 1) {
        if (*n >= max) {
            nfs3x_dec_fail(d, -EMSGSIZE);
            break;
        }
        struct nfs3_mnt_export *e = &ex[*n];
        memset(e, 0, sizeof *e);
        nfs3__xdr_get_str(d, e->dir, NFS3_MAXPATHLEN);
        while (krpc_xdr_get_bool(d) == 1) {
            if (e->ngroups >= NFS3_MNT_MAXGROUPS) {
                nfs3x_dec_fail(d, -EMSGSIZE);
                break;
            }
            nfs3__xdr_get_str(d, e->groups[e->ngroups], NFS3_MNT_NAMLEN);
            if (d->err)
                break;
            e->ngroups++;
        }
        if (d->err)
            break;
        (*n)++;
    }
    if (d->err)
        *n = 0;
    return d->err;
}

/* ---- DUMP ---------------------------------------------------------------- */

void nfs3_mnt_enc_dump_res(struct krpc_xdr_enc *x, const struct nfs3_mnt_mount *m, uint32_t n)
{
    for (uint32_t i = 0; i < n && !x->err; i++) {
        krpc_xdr_put_u32(x, 1);
        nfs3__xdr_put_str(x, m[i].hostname, NFS3_MNT_NAMLEN);
        nfs3__xdr_put_str(x, m[i].dir, NFS3_MAXPATHLEN);
    }
    krpc_xdr_put_u32(x, 0);
}

int nfs3_mnt_dec_dump_res(struct krpc_xdr_dec *d, struct nfs3_mnt_mount *m, uint32_t max, uint32_t *n)
{
    *n = 0;
    while (krpc_xdr_get_bool(d) == 1) {
        if (*n >= max) {
            nfs3x_dec_fail(d, -EMSGSIZE);
            break;
        }
        memset(&m[*n], 0, sizeof m[*n]);
        nfs3__xdr_get_str(d, m[*n].hostname, NFS3_MNT_NAMLEN);
        nfs3__xdr_get_str(d, m[*n].dir, NFS3_MAXPATHLEN);
        if (d->err)
            break;
        (*n)++;
    }
    if (d->err)
        *n = 0;
    return d->err;
}
