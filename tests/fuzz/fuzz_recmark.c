/*
 * fuzz_recmark.c - record-marking reassembly against an arbitrary stream.
 *
 * Bytes 0-1 pick max_msg (small, so limits are hit) and seed the
 * segmentation; the rest is the stream, fed in random pieces (sometimes one
 * byte at a time). Invariants: the bytes delivered never exceed the bytes
 * fed, no message exceeds max_msg, every delivered chain is consistent, an
 * error is sticky, and the reader frees everything it holds. Each delivered
 * message is then framed again (random max_frag) and re-read: it must come
 * back identical.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rpctls/krpc.h"
#include "rpctls/mbuf.h"

static unsigned next_rand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 16;
}

static int same(const struct mb_chain *a, const struct mb_chain *b)
{
    if (a->len != b->len)
        return 0;
    for (size_t i = 0; i < a->len; i++)
        if (mb_chain_byte(a, i) != mb_chain_byte(b, i))
            return 0;
    return 1;
}

static void reframe(const struct mb_chain *msg, unsigned *rs)
{
    struct mb_chain copy = MB_CHAIN_INIT, wire = MB_CHAIN_INIT, back = MB_CHAIN_INIT;
    if (mb_chain_copy_ref(&copy, msg, 0, msg->len) != 0)
        return;
    if (krpc_rm_frame(&copy, next_rand(rs) % 40, &wire) != 0)
        return;
    struct krpc_rm_reader r;
    krpc_rm_reader_init(&r, msg->len ? msg->len : 1);
    krpc_rm_reader_feed(&r, &wire);
    if (krpc_rm_reader_next(&r, &back) != 1 || !same(&back, msg))
        __builtin_trap();
    if (krpc_rm_reader_next(&r, &back) != 0 || r.in.len != 0)
        __builtin_trap();
    krpc_rm_reader_free(&r);
    mb_chain_free(&back);
}

/* Every link and store taken during one input is given back. */
static void pool_counts(uint64_t *links, uint64_t *stores)
{
    struct mb_pool_stats st;
    mb_pool_get_stats(&st);
    *links = st.links_in_use;
    *stores = st.stores_in_use;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint64_t links0, stores0, links1, stores1;
    pool_counts(&links0, &stores0);
    size_t max_msg = 1 + (size_t)data[0] * 16;
    unsigned rs = data[1];
    int one_byte = data[1] & 1;
    data += 2;
    size -= 2;

    struct krpc_rm_reader r;
    krpc_rm_reader_init(&r, max_msg);
    size_t fed = 0, delivered = 0;
    int failed = 0;
    for (size_t off = 0; off < size;) {
        size_t k = one_byte ? 1 : 1 + next_rand(&rs) % 64;
        if (k > size - off)
            k = size - off;
        struct mb_chain seg = MB_CHAIN_INIT;
        if (mb_chain_append_bytes(&seg, data + off, k) != 0)
            break;
        krpc_rm_reader_feed(&r, &seg);
        if (seg.len != 0)
            __builtin_trap(); /* consumed */
        off += k;
        fed += k;
        for (;;) {
            struct mb_chain msg = MB_CHAIN_INIT;
            int ret = krpc_rm_reader_next(&r, &msg);
            if (failed && ret != -EMSGSIZE)
                __builtin_trap(); /* sticky */
            if (ret < 0) {
                if (ret != -EMSGSIZE || msg.len != 0)
                    __builtin_trap();
                failed = 1;
                break;
            }
            if (ret == 0) {
                if (msg.len != 0)
                    __builtin_trap();
                break;
            }
            if (msg.len > max_msg || mb_chain_check(&msg) != 0)
                __builtin_trap();
            delivered += msg.len;
            if (delivered > fed)
                __builtin_trap();
            reframe(&msg, &rs);
            mb_chain_free(&msg);
        }
        /* Unparsed plus assembled bytes never exceed what came in. */
        if (delivered + r.in.len + r.msg.len > fed)
            __builtin_trap();
    }
    krpc_rm_reader_free(&r);
    pool_counts(&links1, &stores1);
    if (links1 != links0 || stores1 != stores0)
        __builtin_trap();
    return 0;
}
