/*
 * src/krpc/xdr.c - XDR (RFC 4506) on buffer chains.
 *
 * Encoding appends to the chain: small items are written straight into the
 * room after the tail link when mbuf says the chain may write there
 * (mb_chain_extend_tail: the common case, since a fresh inline store has 256
 * bytes), else through mb_chain_append_bytes. Opaque chains are linked in by
 * reference.
 *
 * Decoding keeps a cursor cache (the link holding off and where it starts),
 * so sequential gets cost O(1) amortised whatever the number of links; bytes
 * are read through mbuf's segment iterator started at that link. Every
 * length from the wire is checked against the remaining bound and the
 * caller's limit before it is used; errors are sticky.
 */
#include "rpctls/xdr.h"

#include <errno.h>
#include <string.h>

static const unsigned char zeros[4];
_Static_assert(KRPC_XDR_PAD(1) == 3 && KRPC_XDR_PAD(2) == 2 && KRPC_XDR_PAD(3) == 1 && KRPC_XDR_PAD(4) == 0 &&
                   sizeof(zeros) >= 3,
               "XDR pads every opaque to a multiple of 4 bytes with zeros (RFC 4506 4.10) taken from zeros[]");

/* ---- encoding ------------------------------------------------------------ */

void krpc_xdr_enc_init(struct krpc_xdr_enc *x, struct mb_chain *c)
{
    x->c = c;
    x->err = 0;
}

static inline void enc_fail(struct krpc_xdr_enc *x, int err)
{
    if (!x->err)
        x->err = err;
}

static void put_bytes(struct krpc_xdr_enc *x, const void *p, size_t n)
{
    if (x->err || n == 0)
        return;
    int r = mb_chain_append_bytes(x->c, p, n);
    if (r < 0)
        enc_fail(x, r);
}

void krpc_xdr_store_u32(void *p, uint32_t v)
{
    unsigned char *b = p;
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
}

static inline uint32_t load_u32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

void krpc_xdr_put_u32(struct krpc_xdr_enc *x, uint32_t v)
{
    if (x->err)
        return;
    unsigned char *p = mb_chain_extend_tail(x->c, 4);
    if (p) {
        krpc_xdr_store_u32(p, v);
        return;
    }
    unsigned char b[4];
    krpc_xdr_store_u32(b, v);
    put_bytes(x, b, 4);
}

void krpc_xdr_put_u64(struct krpc_xdr_enc *x, uint64_t v)
{
    krpc_xdr_put_u32(x, (uint32_t)(v >> 32));
    krpc_xdr_put_u32(x, (uint32_t)v);
}

void krpc_xdr_put_fixed(struct krpc_xdr_enc *x, const void *p, size_t n)
{
    if (x->err)
        return;
    if (n && !p) {
        enc_fail(x, -EINVAL);
        return;
    }
    put_bytes(x, p, n);
    put_bytes(x, zeros, KRPC_XDR_PAD(n));
}

void krpc_xdr_put_opaque(struct krpc_xdr_enc *x, const void *p, size_t n)
{
    if (x->err)
        return;
    if (n > UINT32_MAX) {
        enc_fail(x, -EMSGSIZE);
        return;
    }
    krpc_xdr_put_u32(x, (uint32_t)n);
    krpc_xdr_put_fixed(x, p, n);
}

void krpc_xdr_put_string(struct krpc_xdr_enc *x, const char *s)
{
    if (!s) {
        enc_fail(x, -EINVAL);
        return;
    }
    krpc_xdr_put_opaque(x, s, strlen(s));
}

void krpc_xdr_put_opaque_chain(struct krpc_xdr_enc *x, struct mb_chain *data)
{
    size_t n = data->len;
    if (!x->err && n > UINT32_MAX)
        enc_fail(x, -EMSGSIZE);
    krpc_xdr_put_u32(x, (uint32_t)n);
    if (x->err) {
        mb_chain_free(data); /* consumed whatever happens */
        return;
    }
    mb_chain_concat(x->c, data);
    put_bytes(x, zeros, KRPC_XDR_PAD(n));
}

void *krpc_xdr_reserve(struct krpc_xdr_enc *x, size_t n)
{
    if (x->err)
        return NULL;
    if (n == 0 || n > MB_INLINE_SIZE) {
        enc_fail(x, -EINVAL);
        return NULL;
    }
    unsigned char *p = mb_chain_extend_tail(x->c, n);
    if (!p) {
        struct mb *m = mb_append_inline(x->c, n);
        if (!m) {
            enc_fail(x, -ENOMEM);
            return NULL;
        }
        p = mb_store_ptr(m->st, m->off);
    }
    memset(p, 0, n);
    return p;
}

/* ---- decoding ------------------------------------------------------------ */

static inline void dec_fail(struct krpc_xdr_dec *d, int err)
{
    if (!d->err)
        d->err = err;
}

void krpc_xdr_dec_init(struct krpc_xdr_dec *d, const struct mb_chain *c, size_t off, size_t len)
{
    d->c = c;
    d->err = 0;
    d->link = NULL;
    d->link_start = 0;
    d->link_idx = 0;
    if (off > c->len || len > c->len - off) {
        d->off = d->end = 0;
        d->err = -EBADMSG;
        return;
    }
    d->off = off;
    d->end = off + len;
}

/* Points the cursor cache at the link holding d->off (< c->len). */
static inline void dec_seek(struct krpc_xdr_dec *d)
{
    const struct mb *m = d->link;
    size_t start = d->link_start;
    unsigned idx = d->link_idx;
    if (!m || d->off < start) {
        m = d->c->head;
        start = 0;
        idx = 0;
    }
    while (d->off - start >= m->len) {
        start += m->len;
        m = m->next;
        idx++;
    }
    d->link = m;
    d->link_start = start;
    d->link_idx = idx;
}

/* Copies n bytes (n <= end - off, checked by the caller) and advances. */
static void dec_copy(struct krpc_xdr_dec *d, void *out, size_t n)
{
    struct mb_seg_iter it;
    unsigned char *o = out, *p;
    size_t k;

    dec_seek(d);
    mb_seg_iter_init_link(&it, d->link, d->off - d->link_start, n);
    while ((k = mb_seg_next(&it, &p)) > 0) {
        memcpy(o, p, k);
        o += k;
    }
    d->off += n;
}

/* The bytes [off, off + n) (n > 0) when they are contiguous in memory, else NULL. */
static inline const unsigned char *dec_contig(struct krpc_xdr_dec *d, size_t n)
{
    struct mb_seg_iter it;
    unsigned char *p;

    dec_seek(d);
    mb_seg_iter_init_link(&it, d->link, d->off - d->link_start, n);
    return mb_seg_next(&it, &p) == n ? p : NULL;
}

uint32_t krpc_xdr_get_u32(struct krpc_xdr_dec *d)
{
    if (d->err)
        return 0;
    if (d->end - d->off < 4) {
        dec_fail(d, -EBADMSG);
        return 0;
    }
    const unsigned char *p = dec_contig(d, 4);
    if (p) {
        d->off += 4;
        return load_u32(p);
    }
    unsigned char b[4];
    dec_copy(d, b, 4);
    return load_u32(b);
}

uint64_t krpc_xdr_get_u64(struct krpc_xdr_dec *d)
{
    if (d->err)
        return 0;
    if (d->end - d->off < 8) {
        dec_fail(d, -EBADMSG);
        return 0;
    }
    uint64_t hi = krpc_xdr_get_u32(d);
    return hi << 32 | krpc_xdr_get_u32(d);
}

int krpc_xdr_get_bool(struct krpc_xdr_dec *d)
{
    uint32_t v = krpc_xdr_get_u32(d);
    if (d->err)
        return 0;
    if (v > 1) {
        dec_fail(d, -EBADMSG);
        return 0;
    }
    return (int)v;
}

/* Checks that n bytes plus their padding lie within the bound. Written so
 * that nothing overflows for any n (n + pad could wrap a size_t). */
static int fits_padded(struct krpc_xdr_dec *d, size_t n)
{
    size_t left = d->end - d->off;
    if (n > left || KRPC_XDR_PAD(n) > left - n) {
        dec_fail(d, -EBADMSG);
        return 0;
    }
    return 1;
}

int krpc_xdr_get_fixed(struct krpc_xdr_dec *d, void *p, size_t n)
{
    if (d->err)
        return d->err;
    if (!fits_padded(d, n))
        return d->err;
    if (n)
        dec_copy(d, p, n);
    d->off += KRPC_XDR_PAD(n);
    return 0;
}

/* Reads an opaque<max> length word and checks it against max and the bound. */
static int get_len(struct krpc_xdr_dec *d, size_t max, size_t *len)
{
    uint32_t n = krpc_xdr_get_u32(d);
    if (d->err)
        return d->err;
    if (n > max) {
        dec_fail(d, -EMSGSIZE);
        return d->err;
    }
    if (!fits_padded(d, n))
        return d->err;
    *len = n;
    return 0;
}

int krpc_xdr_get_opaque(struct krpc_xdr_dec *d, void *p, size_t max, size_t *len)
{
    size_t n = 0;
    *len = 0;
    if (get_len(d, max, &n) < 0)
        return d->err;
    if (n)
        dec_copy(d, p, n);
    d->off += KRPC_XDR_PAD(n);
    *len = n;
    return 0;
}

int krpc_xdr_get_string(struct krpc_xdr_dec *d, char *buf, size_t bufsize)
{
    size_t n = 0;
    if (bufsize == 0) {
        dec_fail(d, -EINVAL);
        return d->err;
    }
    buf[0] = '\0';
    if (get_len(d, bufsize - 1, &n) < 0)
        return d->err;
    if (n)
        dec_copy(d, buf, n);
    d->off += KRPC_XDR_PAD(n);
    if (memchr(buf, '\0', n)) {
        buf[0] = '\0';
        dec_fail(d, -EBADMSG);
        return d->err;
    }
    buf[n] = '\0';
    return 0;
}

int krpc_xdr_get_opaque_ref(struct krpc_xdr_dec *d, size_t max, struct mb_chain *out)
{
    size_t n = 0;
    if (get_len(d, max, &n) < 0)
        return d->err;
    if (n) {
        dec_seek(d);
        /* A view of the chain from the cached link on, so that copy_ref
         * starts there instead of walking from the head. */
        struct mb_chain view = {(struct mb *)d->link, d->c->tail, d->c->len - d->link_start,
                                d->c->nlinks - d->link_idx};
        int r = mb_chain_copy_ref(out, &view, d->off - d->link_start, n);
        if (r < 0) {
            dec_fail(d, r);
            return d->err;
        }
    }
    d->off += n + KRPC_XDR_PAD(n);
    return 0;
}

int krpc_xdr_skip(struct krpc_xdr_dec *d, size_t n)
{
    if (d->err)
        return d->err;
    if (n > d->end - d->off) {
        dec_fail(d, -EBADMSG);
        return d->err;
    }
    d->off += n;
    return 0;
}
