/*
 * xdr3_dir.c - READDIR / READDIRPLUS (RFC 1813 sections 3.3.16, 3.3.17):
 * arguments, the size-tracking reply builder and the entry-list decoder.
 */
#include <errno.h>
#include <string.h>

#include "nfs3/xdr3_int.h"

/* Reply bytes outside the entries: status, post_op_attr (largest),
 * cookieverf, end-of-list marker, eof. */
#define RD_OVERHEAD (4 + NFS3_POST_ATTR_XDR_MAX + NFS3_COOKIEVERFSIZE + 4 + 4)

/* ---- arguments ----------------------------------------------------------- */

void nfs3_enc_readdir_args(struct krpc_xdr_enc *x, const struct nfs3_readdir_args *a)
{
    nfs3_enc_fh(x, &a->dir);
    krpc_xdr_put_u64(x, a->cookie);
    krpc_xdr_put_fixed(x, a->cookieverf, NFS3_COOKIEVERFSIZE);
    krpc_xdr_put_u32(x, a->count);
}

int nfs3_dec_readdir_args(struct krpc_xdr_dec *d, struct nfs3_readdir_args *a)
{
    memset(a, 0, sizeof *a);
    nfs3_dec_fh(d, &a->dir);
    a->cookie = krpc_xdr_get_u64(d);
    krpc_xdr_get_fixed(d, a->cookieverf, NFS3_COOKIEVERFSIZE);
    a->count = krpc_xdr_get_u32(d);
    if (d->err)
        memset(a, 0, sizeof *a);
    return d->err;
}

void nfs3_enc_readdirplus_args(struct krpc_xdr_enc *x, const struct nfs3_readdirplus_args *a)
{
    nfs3_enc_fh(x, &a->dir);
    krpc_xdr_put_u64(x, a->cookie);
    krpc_xdr_put_fixed(x, a->cookieverf, NFS3_COOKIEVERFSIZE);
    krpc_xdr_put_u32(x, a->dircount);
    krpc_xdr_put_u32(x, a->maxcount);
}

int nfs3_dec_readdirplus_args(struct krpc_xdr_dec *d, struct nfs3_readdirplus_args *a)
{
    memset(a, 0, sizeof *a);
    nfs3_dec_fh(d, &a->dir);
    a->cookie = krpc_xdr_get_u64(d);
    krpc_xdr_get_fixed(d, a->cookieverf, NFS3_COOKIEVERFSIZE);
    a->dircount = krpc_xdr_get_u32(d);
    a->maxcount = krpc_xdr_get_u32(d);
    if (d->err)
        memset(a, 0, sizeof *a);
    return d->err;
}

/* ---- reply builder ------------------------------------------------------- */

void nfs3_readdir_enc_begin(struct nfs3_readdir_enc *e, int plus, uint32_t maxcount, uint32_t dircount)
{
    memset(e, 0, sizeof *e);
    e->plus = plus ? 1 : 0;
    e->maxcount = maxcount;
    e->dircount = plus ? dircount : 0;
    e->used = RD_OVERHEAD;
    mb_chain_init(&e->entries);
    krpc_xdr_enc_init(&e->x, &e->entries);
}

int nfs3_readdir_enc_entry(struct nfs3_readdir_enc *e, uint64_t fileid, const char *name, uint64_t cookie,
                           const struct nfs3_post_attr *attr, const struct nfs3_fh *fh)
{
    static const struct nfs3_post_attr absent;
    size_t nlen = strnlen(name, NFS3_MAXNAMLEN + 1);
    size_t dsize, size;

    if (e->x.err)
        return e->x.err;
    if (nlen > NFS3_MAXNAMLEN)
        return -ENAMETOOLONG;
    if (e->plus && fh && fh->len > NFS3_FHSIZE)
        return -EINVAL;
    /* value_follows, fileid, name, cookie */
    dsize = 4 + 8 + 4 + nlen + KRPC_XDR_PAD(nlen) + 8;
    size = dsize;
    if (e->plus)
        size += nfs3__xdr_post_attr_size(attr) + nfs3__xdr_post_fh_size(fh != NULL, fh);
    if (e->maxcount && e->used + size > e->maxcount)
        return -ENOSPC;
    if (e->dircount && e->dir_used + dsize > e->dircount)
        return -ENOSPC;
    krpc_xdr_put_u32(&e->x, 1);
    krpc_xdr_put_u64(&e->x, fileid);
    krpc_xdr_put_opaque(&e->x, name, nlen);
    krpc_xdr_put_u64(&e->x, cookie);
    if (e->plus) {
        nfs3_enc_post_attr(&e->x, attr ? attr : &absent);
        nfs3__xdr_put_post_fh(&e->x, fh != NULL, fh);
    }
    if (e->x.err)
        return e->x.err;
    e->used += size;
    e->dir_used += dsize;
    e->nentries++;
    return 0;
}

void nfs3_readdir_enc_end(struct nfs3_readdir_enc *e, struct krpc_xdr_enc *x, const struct nfs3_readdir_res *r)
{
    krpc_xdr_put_u32(x, r->status);
    nfs3_enc_post_attr(x, &r->dir_attr);
    if (r->status == NFS3_OK) {
        krpc_xdr_put_fixed(x, r->cookieverf, NFS3_COOKIEVERFSIZE);
        if (e->x.err)
            nfs3x_enc_fail(x, e->x.err);
        if (!x->err)
            mb_chain_concat(x->c, &e->entries);
        krpc_xdr_put_u32(x, 0);
        krpc_xdr_put_u32(x, r->eof ? 1 : 0);
    }
    nfs3_readdir_enc_abort(e);
}

void nfs3_readdir_enc_abort(struct nfs3_readdir_enc *e)
{
    mb_chain_free(&e->entries);
    e->nentries = 0;
    e->used = RD_OVERHEAD;
    e->dir_used = 0;
}

static void enc_dir_res(struct krpc_xdr_enc *x, const struct nfs3_readdir_res *r, const struct nfs3_dirent *ents,
                        uint32_t n, int plus)
{
    struct nfs3_readdir_enc e;
    nfs3_readdir_enc_begin(&e, plus, 0, 0);
    for (uint32_t i = 0; r->status == NFS3_OK && i < n; i++) {
        int rc = nfs3_readdir_enc_entry(&e, ents[i].fileid, ents[i].name, ents[i].cookie, &ents[i].attr,
                                        ents[i].fh_present ? &ents[i].fh : NULL);
        if (rc < 0) {
            nfs3x_enc_fail(x, rc == -ENAMETOOLONG ? -EMSGSIZE : rc);
            break;
        }
    }
    nfs3_readdir_enc_end(&e, x, r);
}

void nfs3_enc_readdir_res(struct krpc_xdr_enc *x, const struct nfs3_readdir_res *r, const struct nfs3_dirent *ents,
                          uint32_t n)
{
    enc_dir_res(x, r, ents, n, 0);
}

void nfs3_enc_readdirplus_res(struct krpc_xdr_enc *x, const struct nfs3_readdir_res *r,
                              const struct nfs3_dirent *ents, uint32_t n)
{
    enc_dir_res(x, r, ents, n, 1);
}

/* ---- decoder ------------------------------------------------------------- */

/* An entry's name (filename3): a length over NFS3_MAXNAMLEN fails the
 * decoder with -ENAMETOOLONG and a NUL inside the name with -EILSEQ, so
 * that the client can say which rule the server broke (any other failure
 * is the usual -EBADMSG / -EMSGSIZE). */
static void get_entry_name(struct krpc_xdr_dec *d, char *buf)
{
    uint32_t n = krpc_xdr_get_u32(d);

    buf[0] = '\0';
    if (d->err)
        return;
    if (n > NFS3_MAXNAMLEN) {
        nfs3x_dec_fail(d, -ENAMETOOLONG);
        return;
    }
    krpc_xdr_get_fixed(d, buf, n);
    if (d->err) {
        buf[0] = '\0';
        return;
    }
    if (memchr(buf, '\0', n)) {
        buf[0] = '\0';
        nfs3x_dec_fail(d, -EILSEQ);
        return;
    }
    buf[n] = '\0';
}

/* Every entry takes at least 24 bytes of the message, so the loop is
 * bounded by the decoder's bound. */
static int dec_dir_res(struct krpc_xdr_dec *d, struct nfs3_readdir_res *r, nfs3_dirent_fn fn, void *arg, int plus)
{
    struct nfs3_dirent ent;

    memset(r, 0, sizeof *r);
    r->status = krpc_xdr_get_u32(d);
    nfs3_dec_post_attr(d, &r->dir_attr);
    if (r->status != NFS3_OK || d->err)
        goto out;
    krpc_xdr_get_fixed(d, r->cookieverf, NFS3_COOKIEVERFSIZE);
    while (krpc_xdr_get_bool(d) == 1) {
        memset(&ent, 0, sizeof ent);
        ent.fileid = krpc_xdr_get_u64(d);
        get_entry_name(d, ent.name);
        ent.cookie = krpc_xdr_get_u64(d);
        if (plus) {
            nfs3_dec_post_attr(d, &ent.attr);
            nfs3__xdr_get_post_fh(d, &ent.fh_present, &ent.fh);
        }
        if (d->err)
            goto out;
        r->nentries++;
        if (fn) {
            int rc = fn(arg, &ent);
            if (rc)
                return rc;
        }
    }
    r->eof = krpc_xdr_get_bool(d) == 1;
out:
    if (d->err)
        memset(r, 0, sizeof *r);
    return d->err;
}

int nfs3_dec_readdir_res(struct krpc_xdr_dec *d, struct nfs3_readdir_res *r, nfs3_dirent_fn fn, void *arg)
{
    return dec_dir_res(d, r, fn, arg, 0);
}

int nfs3_dec_readdirplus_res(struct krpc_xdr_dec *d, struct nfs3_readdir_res *r, nfs3_dirent_fn fn, void *arg)
{
    return dec_dir_res(d, r, fn, arg, 1);
}
