/*
 * src/krpc/recmark.c - record marking (RFC 5531 section 11) on chains.
 *
 * Both directions work by reference: a message is cut into fragments with
 * mb_chain_split and received fragment bodies are split out of the input
 * chain, so no payload byte is copied. Only the 4-byte headers are.
 */
#include <errno.h>

#include "rpctls/krpc.h"

#define RM_MAX_FRAG 0x7fffffffu
_Static_assert(RM_MAX_FRAG == (uint32_t)~KRPC_RM_LAST,
               "a record-marking header is the last-fragment bit plus a 31-bit length (RFC 5531 11)");
_Static_assert(KRPC_RM_DEFAULT_MAX_MSG <= RM_MAX_FRAG, "the default message limit fits one fragment's length");

int krpc_rm_frame(struct mb_chain *msg, size_t max_frag, struct mb_chain *out)
{
    struct mb_chain t = MB_CHAIN_INIT, rest = MB_CHAIN_INIT;
    size_t frag = max_frag && max_frag < RM_MAX_FRAG ? max_frag : RM_MAX_FRAG;
    int r = 0;

    do {
        size_t n = msg->len < frag ? msg->len : frag;
        int last = n == msg->len;
        unsigned char h[4];
        krpc_xdr_store_u32(h, (uint32_t)n | (last ? KRPC_RM_LAST : 0));
        if ((r = mb_chain_append_bytes(&t, h, 4)) < 0 || (r = mb_chain_split(msg, n, &rest)) < 0)
            goto fail;
        mb_chain_concat(&t, msg);
        mb_chain_concat(msg, &rest);
    } while (msg->len);
    mb_chain_concat(out, &t);
    return 0;
fail:
    mb_chain_free(&t);
    mb_chain_free(msg);
    return r;
}

void krpc_rm_reader_init(struct krpc_rm_reader *r, size_t max_msg)
{
    r->max_msg = max_msg ? max_msg : KRPC_RM_DEFAULT_MAX_MSG;
    mb_chain_init(&r->in);
    mb_chain_init(&r->msg);
    r->frag_left = 0;
    r->in_frag = 0;
    r->last = 0;
    r->err = 0;
}

void krpc_rm_reader_free(struct krpc_rm_reader *r)
{
    mb_chain_free(&r->in);
    mb_chain_free(&r->msg);
    r->frag_left = 0;
    r->in_frag = 0;
    r->last = 0;
}

void krpc_rm_reader_feed(struct krpc_rm_reader *r, struct mb_chain *data)
{
    if (r->err) {
        mb_chain_free(data); /* the reader is dead; do not hoard input */
        return;
    }
    mb_chain_concat(&r->in, data);
}

static int rm_fail(struct krpc_rm_reader *r, int err)
{
    r->err = err;
    mb_chain_free(&r->in);
    mb_chain_free(&r->msg);
    return err;
}

int krpc_rm_reader_next(struct krpc_rm_reader *r, struct mb_chain *msg)
{
    if (r->err)
        return r->err;
    for (;;) {
        if (!r->in_frag) {
            unsigned char h[4];
            if (r->in.len < 4)
                return 0;
            mb_chain_copy_out(&r->in, 0, 4, h);
            mb_chain_trim_head(&r->in, 4);
            uint32_t w = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
            r->frag_left = w & ~KRPC_RM_LAST;
            r->last = (w & KRPC_RM_LAST) != 0;
            r->in_frag = 1;
            /* Refuse as soon as the header says so, before any body bytes. */
            if (r->frag_left > r->max_msg - r->msg.len)
                return rm_fail(r, -EMSGSIZE);
        }
        if (r->frag_left) {
            size_t take = r->in.len < r->frag_left ? r->in.len : r->frag_left;
            struct mb_chain rest = MB_CHAIN_INIT;
            if (take == 0)
                return 0;
            int e = mb_chain_split(&r->in, take, &rest);
            if (e < 0)
                return rm_fail(r, e);
            mb_chain_concat(&r->msg, &r->in);
            mb_chain_concat(&r->in, &rest);
            r->frag_left -= (uint32_t)take;
            if (r->frag_left)
                return 0;
        }
        r->in_frag = 0;
        if (r->last) {
            r->last = 0;
            mb_chain_concat(msg, &r->msg);
            return 1;
        }
    }
}
