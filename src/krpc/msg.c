/*
 * src/krpc/msg.c - RPC v2 call and reply headers (RFC 5531 sections 8-9,
 * appendix A for AUTH_SYS).
 */
#include <errno.h>
#include <string.h>

#include "rpctls/krpc.h"

/* ---- credentials --------------------------------------------------------- */

static size_t auth_sys_body_len(size_t mlen, uint32_t ngids)
{
    return 4 + 4 + mlen + KRPC_XDR_PAD(mlen) + 4 + 4 + 4 + 4 * (size_t)ngids;
}

static void encode_cred(struct krpc_xdr_enc *x, const struct krpc_cred *c)
{
    krpc_xdr_put_u32(x, c->flavor);
    if (c->flavor != KRPC_AUTH_SYS) {
        krpc_xdr_put_u32(x, 0); /* AUTH_NONE, AUTH_TLS: empty body */
        return;
    }
    size_t mlen = strnlen(c->machine, sizeof c->machine);
    if (mlen > KRPC_AUTH_SYS_MAX_MACHINE || c->ngids > KRPC_AUTH_SYS_MAX_GIDS) {
        if (!x->err)
            x->err = -EINVAL;
        return;
    }
    krpc_xdr_put_u32(x, (uint32_t)auth_sys_body_len(mlen, c->ngids));
    krpc_xdr_put_u32(x, c->stamp);
    krpc_xdr_put_opaque(x, c->machine, mlen);
    krpc_xdr_put_u32(x, c->uid);
    krpc_xdr_put_u32(x, c->gid);
    krpc_xdr_put_u32(x, c->ngids);
    for (uint32_t i = 0; i < c->ngids; i++)
        krpc_xdr_put_u32(x, c->gids[i]);
}

/* Decodes an AUTH_SYS body occupying exactly [d->off, d->off + len). */
static int decode_auth_sys(struct krpc_xdr_dec *d, size_t len, struct krpc_cred *c)
{
    struct krpc_xdr_dec b = *d;
    b.end = b.off + len; /* the caller checked len against the bound */
    c->stamp = krpc_xdr_get_u32(&b);
    if (krpc_xdr_get_string(&b, c->machine, sizeof c->machine) < 0)
        return -EBADMSG;
    c->uid = krpc_xdr_get_u32(&b);
    c->gid = krpc_xdr_get_u32(&b);
    c->ngids = krpc_xdr_get_u32(&b);
    if (b.err || c->ngids > KRPC_AUTH_SYS_MAX_GIDS)
        return -EBADMSG;
    for (uint32_t i = 0; i < c->ngids; i++)
        c->gids[i] = krpc_xdr_get_u32(&b);
    if (b.err || krpc_xdr_remaining(&b) != 0)
        return -EBADMSG;
    /* Carry the cursor cache over. */
    d->off = b.off;
    d->link = b.link;
    d->link_start = b.link_start;
    d->link_idx = b.link_idx;
    return 0;
}

/* Reads an opaque_auth length and checks it against 400 and the bound. */
static int auth_len(struct krpc_xdr_dec *d, size_t *len)
{
    uint32_t n = krpc_xdr_get_u32(d);
    if (d->err)
        return -EBADMSG;
    if (n > KRPC_MAX_AUTH_BYTES || (size_t)n + KRPC_XDR_PAD(n) > krpc_xdr_remaining(d))
        return -EBADMSG;
    *len = n;
    return 0;
}

static int decode_cred(struct krpc_xdr_dec *d, struct krpc_cred *c)
{
    size_t len;
    memset(c, 0, sizeof *c);
    c->flavor = krpc_xdr_get_u32(d);
    if (auth_len(d, &len) < 0)
        return -EBADMSG;
    if (c->flavor == KRPC_AUTH_SYS) {
        if (decode_auth_sys(d, len, c) < 0)
            return -EBADMSG;
        return krpc_xdr_skip(d, KRPC_XDR_PAD(len)) < 0 ? -EBADMSG : 0;
    }
    /* AUTH_NONE, AUTH_TLS (RFC 9289 says empty) and flavors we do not know:
     * the body is skipped; the caller judges the flavor. */
    return krpc_xdr_skip(d, len + KRPC_XDR_PAD(len)) < 0 ? -EBADMSG : 0;
}

/* Marks the decoder failed (sticky) and returns -EBADMSG. */
static int malformed(struct krpc_xdr_dec *d)
{
    if (!d->err)
        d->err = -EBADMSG;
    return d->err == -ENOMEM ? -ENOMEM : -EBADMSG;
}

/* ---- calls --------------------------------------------------------------- */

void krpc_encode_call_hdr(struct krpc_xdr_enc *x, const struct krpc_call_hdr *h)
{
    krpc_xdr_put_u32(x, h->xid);
    krpc_xdr_put_u32(x, KRPC_MSG_CALL);
    krpc_xdr_put_u32(x, KRPC_RPCVERS);
    krpc_xdr_put_u32(x, h->prog);
    krpc_xdr_put_u32(x, h->vers);
    krpc_xdr_put_u32(x, h->proc);
    encode_cred(x, &h->cred);
    krpc_xdr_put_u32(x, h->verf_flavor);
    krpc_xdr_put_u32(x, 0); /* empty verifier body */
}

int krpc_decode_call_hdr(struct krpc_xdr_dec *d, struct krpc_call_hdr *h)
{
    size_t vlen;
    memset(h, 0, sizeof *h);
    h->xid = krpc_xdr_get_u32(d);
    if (krpc_xdr_get_u32(d) != KRPC_MSG_CALL)
        return malformed(d);
    h->rpcvers = krpc_xdr_get_u32(d);
    h->prog = krpc_xdr_get_u32(d);
    h->vers = krpc_xdr_get_u32(d);
    h->proc = krpc_xdr_get_u32(d);
    if (d->err || decode_cred(d, &h->cred) < 0)
        return malformed(d);
    h->verf_flavor = krpc_xdr_get_u32(d);
    if (auth_len(d, &vlen) < 0 || krpc_xdr_skip(d, vlen + KRPC_XDR_PAD(vlen)) < 0)
        return malformed(d);
    return 0;
}

/* ---- replies ------------------------------------------------------------- */

void krpc_encode_reply_hdr(struct krpc_xdr_enc *x, const struct krpc_reply_hdr *h)
{
    krpc_xdr_put_u32(x, h->xid);
    krpc_xdr_put_u32(x, KRPC_MSG_REPLY);
    krpc_xdr_put_u32(x, h->reply_stat);
    if (h->reply_stat == KRPC_MSG_ACCEPTED) {
        if (h->verf_len > KRPC_MAX_AUTH_BYTES) {
            if (!x->err)
                x->err = -EINVAL;
            return;
        }
        krpc_xdr_put_u32(x, h->verf_flavor);
        krpc_xdr_put_opaque(x, h->verf, h->verf_len);
        krpc_xdr_put_u32(x, h->accept_stat);
        if (h->accept_stat == KRPC_PROG_MISMATCH) {
            krpc_xdr_put_u32(x, h->mismatch_low);
            krpc_xdr_put_u32(x, h->mismatch_high);
        }
    } else if (h->reply_stat == KRPC_MSG_DENIED) {
        krpc_xdr_put_u32(x, h->reject_stat);
        if (h->reject_stat == KRPC_RPC_MISMATCH) {
            krpc_xdr_put_u32(x, h->mismatch_low);
            krpc_xdr_put_u32(x, h->mismatch_high);
        } else if (h->reject_stat == KRPC_AUTH_ERROR) {
            krpc_xdr_put_u32(x, h->auth_stat);
        } else if (!x->err) {
            x->err = -EINVAL;
        }
    } else if (!x->err) {
        x->err = -EINVAL;
    }
}

int krpc_decode_reply_hdr(struct krpc_xdr_dec *d, struct krpc_reply_hdr *h)
{
    memset(h, 0, sizeof *h);
    h->xid = krpc_xdr_get_u32(d);
    if (krpc_xdr_get_u32(d) != KRPC_MSG_REPLY)
        return malformed(d);
    h->reply_stat = krpc_xdr_get_u32(d);
    if (d->err)
        return malformed(d);
    if (h->reply_stat == KRPC_MSG_ACCEPTED) {
        size_t vlen;
        h->verf_flavor = krpc_xdr_get_u32(d);
        if (auth_len(d, &vlen) < 0 || krpc_xdr_get_fixed(d, h->verf, vlen) < 0)
            return malformed(d);
        h->verf_len = (uint32_t)vlen;
        /* Unknown accept_stat values have a void body (RFC 5531: default:
         * void); the caller treats them as errors. */
        h->accept_stat = krpc_xdr_get_u32(d);
        if (h->accept_stat == KRPC_PROG_MISMATCH) {
            h->mismatch_low = krpc_xdr_get_u32(d);
            h->mismatch_high = krpc_xdr_get_u32(d);
        }
    } else if (h->reply_stat == KRPC_MSG_DENIED) {
        h->reject_stat = krpc_xdr_get_u32(d);
        if (d->err)
            return malformed(d);
        if (h->reject_stat == KRPC_RPC_MISMATCH) {
            h->mismatch_low = krpc_xdr_get_u32(d);
            h->mismatch_high = krpc_xdr_get_u32(d);
        } else if (h->reject_stat == KRPC_AUTH_ERROR) {
            h->auth_stat = krpc_xdr_get_u32(d);
        } else {
            return malformed(d);
        }
    } else {
        return malformed(d);
    }
    return d->err ? malformed(d) : 0;
}

const char *krpc_accept_stat_name(uint32_t s)
{
    static const char *const names[] = {"SUCCESS",       "PROG_UNAVAIL", "PROG_MISMATCH",
                                        "PROC_UNAVAIL",  "GARBAGE_ARGS", "SYSTEM_ERR"};
    return s < sizeof names / sizeof names[0] ? names[s] : "UNKNOWN_ACCEPT_STAT";
}

const char *krpc_auth_stat_name(uint32_t s)
{
    static const char *const names[] = {"AUTH_OK",        "AUTH_BADCRED", "AUTH_REJECTEDCRED", "AUTH_BADVERF",
                                        "AUTH_REJECTEDVERF", "AUTH_TOOWEAK", "AUTH_INVALIDRESP", "AUTH_FAILED"};
    if (s < sizeof names / sizeof names[0])
        return names[s];
    if (s == 13)
        return "RPCSEC_GSS_CREDPROBLEM";
    if (s == 14)
        return "RPCSEC_GSS_CTXPROBLEM";
    return "UNKNOWN_AUTH_STAT";
}
