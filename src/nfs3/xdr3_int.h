/*
 * xdr3_int.h - helpers shared by the NFSv3 / MOUNT v3 codecs.
 */
#ifndef RPCTLS_NFS3_XDR3_INT_H
#define RPCTLS_NFS3_XDR3_INT_H

#include <errno.h>
#include <string.h>

#include "rpctls/nfs3.h"

static inline void nfs3x_enc_fail(struct krpc_xdr_enc *x, int err)
{
    if (x->err == 0)
        x->err = err;
}

static inline void nfs3x_dec_fail(struct krpc_xdr_dec *d, int err)
{
    if (d->err == 0)
        d->err = err;
}

/* A bounded C string: -EMSGSIZE on the encoder when it is longer than max
 * (or not terminated within max + 1 bytes). */
void nfs3__xdr_put_str(struct krpc_xdr_enc *x, const char *s, size_t max);
/* A string<max> into buf[max + 1]. */
void nfs3__xdr_get_str(struct krpc_xdr_dec *d, char *buf, size_t max);
void nfs3__xdr_put_time(struct krpc_xdr_enc *x, const struct nfs3_time *t);
void nfs3__xdr_get_time(struct krpc_xdr_dec *d, struct nfs3_time *t);
void nfs3__xdr_put_post_fh(struct krpc_xdr_enc *x, int present, const struct nfs3_fh *fh);
void nfs3__xdr_get_post_fh(struct krpc_xdr_dec *d, int *present, struct nfs3_fh *fh);
/* XDR size of a post_op_attr / post_op_fh3. */
size_t nfs3__xdr_post_attr_size(const struct nfs3_post_attr *a);
size_t nfs3__xdr_post_fh_size(int present, const struct nfs3_fh *fh);

#endif
