/*
 * rpctls/xdr.h - XDR (RFC 4506) encoding and decoding directly on buffer
 * chains.
 *
 * Encoding appends to a chain. Variable-length opaque data given as a chain
 * is linked in by reference (plus padding), never copied.
 *
 * Decoding walks a cursor bounded by [off, off + len) of a chain: nothing
 * past the bound is ever read. Errors are sticky: after the first failure
 * every get returns 0 / fails and krpc_xdr_dec_error() reports it
 * (-EBADMSG: ran past the bound or malformed; -EMSGSIZE: a length above the
 * caller's limit; -ENOMEM). Opaque data can be taken by reference: the
 * result is a sub-chain pointing into the decoded message's storage.
 */
#ifndef RPCTLS_XDR_H
#define RPCTLS_XDR_H

#include <stddef.h>
#include <stdint.h>

#include "rpctls/mbuf.h"

#include "rpctls/visibility.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KRPC_XDR_PAD(n) ((4 - ((n) & 3)) & 3)

struct krpc_xdr_enc {
    struct mb_chain *c;
    int err;
};

RPCTLS_API void krpc_xdr_enc_init(struct krpc_xdr_enc *x, struct mb_chain *c);
static inline int krpc_xdr_enc_error(const struct krpc_xdr_enc *x)
{
    return x->err;
}
RPCTLS_API void krpc_xdr_put_u32(struct krpc_xdr_enc *x, uint32_t v);
RPCTLS_API void krpc_xdr_put_u64(struct krpc_xdr_enc *x, uint64_t v);
/* opaque[n]: the bytes then zero padding to a multiple of 4. */
RPCTLS_API void krpc_xdr_put_fixed(struct krpc_xdr_enc *x, const void *p, size_t n);
/* opaque<>: length, bytes (copied), padding. */
RPCTLS_API void krpc_xdr_put_opaque(struct krpc_xdr_enc *x, const void *p, size_t n);
RPCTLS_API void krpc_xdr_put_string(struct krpc_xdr_enc *x, const char *s);
/* opaque<> from a chain, linked by reference; data is consumed (empty after). */
RPCTLS_API void krpc_xdr_put_opaque_chain(struct krpc_xdr_enc *x, struct mb_chain *data);
/* Appends n (<= MB_INLINE_SIZE) bytes and returns a pointer to them, to be
 * filled in later (e.g. a count known only after the items). NULL on error. */
RPCTLS_API void *krpc_xdr_reserve(struct krpc_xdr_enc *x, size_t n);
/* Stores v big-endian at p (a pointer from krpc_xdr_reserve). */
RPCTLS_API void krpc_xdr_store_u32(void *p, uint32_t v);

struct krpc_xdr_dec {
    const struct mb_chain *c;
    size_t off; /* next byte, as an offset into c */
    size_t end; /* bound: never read at or past this offset */
    int err;
    /* Cursor cache: the link holding off and the chain offset it starts at. */
    const struct mb *link;
    size_t link_start;
    unsigned link_idx; /* its index in c (a view from it on has c->nlinks - link_idx links) */
};

RPCTLS_API void krpc_xdr_dec_init(struct krpc_xdr_dec *d, const struct mb_chain *c, size_t off, size_t len);
static inline int krpc_xdr_dec_error(const struct krpc_xdr_dec *d)
{
    return d->err;
}
static inline size_t krpc_xdr_remaining(const struct krpc_xdr_dec *d)
{
    return d->err ? 0 : d->end - d->off;
}
RPCTLS_API uint32_t krpc_xdr_get_u32(struct krpc_xdr_dec *d);
RPCTLS_API uint64_t krpc_xdr_get_u64(struct krpc_xdr_dec *d);
/* bool: 0 or 1; anything else is an error. */
RPCTLS_API int krpc_xdr_get_bool(struct krpc_xdr_dec *d);
/* opaque[n] into p (padding skipped and required to be within the bound). */
RPCTLS_API int krpc_xdr_get_fixed(struct krpc_xdr_dec *d, void *p, size_t n);
/* opaque<max> copied into p; *len gets the length. */
RPCTLS_API int krpc_xdr_get_opaque(struct krpc_xdr_dec *d, void *p, size_t max, size_t *len);
/* string<max> into buf (bufsize > max), NUL-terminated; an embedded NUL is an error. */
RPCTLS_API int krpc_xdr_get_string(struct krpc_xdr_dec *d, char *buf, size_t bufsize);
/* opaque<max> by reference: appended to out without copying. */
RPCTLS_API int krpc_xdr_get_opaque_ref(struct krpc_xdr_dec *d, size_t max, struct mb_chain *out);
RPCTLS_API int krpc_xdr_skip(struct krpc_xdr_dec *d, size_t n);

#ifdef __cplusplus
}
#endif

#endif
