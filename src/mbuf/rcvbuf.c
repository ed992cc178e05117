/*
 * src/mbuf/rcvbuf.c - the receive buffer: reserve space in pool pages, read
 * into it, commit what arrived.
 *
 * The space is the unfilled rest of a page-vector store. Committed bytes
 * are split off its head, never copied by reference, so the space stays
 * past the store's shared mark: under the ownership rule it is the
 * buffer's alone even while the user holds (or shares) the bytes delivered
 * before it. Should the rule say otherwise (the store was marked read-only,
 * or guard mode protected it when delivered bytes were shared), the rest of
 * the store is abandoned and reading goes on in a fresh one.
 */
#include "mbuf/store.h"

#include <errno.h>

void mb_rcvbuf_init(struct mb_rcvbuf *rb, size_t chunk)
{
    mb_chain_init(&rb->fill);
    rb->chunk = chunk;
}

void mb_rcvbuf_free(struct mb_rcvbuf *rb)
{
    mb_chain_free(&rb->fill);
}

int mb_rcvbuf_reserve(struct mb_rcvbuf *rb, struct iovec *iov, int maxiov)
{
    struct mb_seg_iter it;
    size_t bytes;
    int ret;

    if (maxiov <= 0)
        return -EINVAL;
    if (rb->fill.len > 0 && !mb_chain_is_writable(&rb->fill, 0, rb->fill.len))
        mb_chain_free(&rb->fill);
    if (rb->fill.len == 0 &&
        (ret = mb_append_pages(&rb->fill, 0, rb->chunk > 0 ? rb->chunk : MB_RCVBUF_CHUNK)) != 0)
        return ret;
    mb_seg_iter_init(&it, &rb->fill, 0, rb->fill.len);
    return mb_seg_iovec(&it, iov, maxiov, &bytes);
}

int mb_rcvbuf_commit(struct mb_rcvbuf *rb, size_t n, struct mb_chain *dst)
{
    struct mb_chain rest = MB_CHAIN_INIT;
    int ret;

    if (n == 0)
        return 0;
    if (n > rb->fill.len)
        return -EINVAL;
    if (n < rb->fill.len && (ret = mb_chain_split(&rb->fill, n, &rest)) != 0)
        return ret;
    mb_chain_concat(dst, &rb->fill);
    rb->fill = rest;
    return 0;
}
