/*
 * fuzz_xdr_msg.c - RPC header and XDR decoders against arbitrary bytes.
 *
 * Byte 0 seeds the shape: the rest is laid out either as one link or as a
 * chain cut into several links at places chosen from the seed, and decoded
 * with a bound that may stop short of the chain's end. Each input goes
 * through the call decoder, the reply decoder and a run of assorted gets.
 * Invariants: nothing is read past the bound (ASan catches reads past the
 * links; the bound is checked through remaining()), errors are sticky,
 * by-reference opaques are no longer than the limit and point into the
 * message.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "rpctls/krpc.h"
#include "rpctls/mbuf.h"

static unsigned next_rand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 16;
}

/* Each link over its own exactly sized cluster, so that ASan sees any read
 * past a link's bytes. */
static void build(struct mb_chain *c, const uint8_t *p, size_t n, unsigned *rs, int split)
{
    while (n) {
        size_t k = split ? 1 + next_rand(rs) % 13 : n;
        if (k > n)
            k = n;
        struct mb *m = mb_append_cluster(c, k);
        if (!m)
            return;
        memcpy(mb_store_ptr(m->st, m->off), p, k);
        p += k;
        n -= k;
    }
}

static void check_sticky(struct krpc_xdr_dec *d)
{
    int e = krpc_xdr_dec_error(d);
    if (!e)
        return;
    if (krpc_xdr_get_u32(d) != 0 || krpc_xdr_remaining(d) != 0 || krpc_xdr_dec_error(d) != e)
        __builtin_trap();
}

static void gets(struct krpc_xdr_dec *d, const struct mb_chain *c, unsigned *rs)
{
    unsigned char buf[64];
    char s[32];
    size_t len;
    for (int i = 0; i < 24 && !krpc_xdr_dec_error(d); i++) {
        size_t before = krpc_xdr_remaining(d);
        switch (next_rand(rs) % 8) {
        case 0:
            krpc_xdr_get_u32(d);
            break;
        case 1:
            krpc_xdr_get_u64(d);
            break;
        case 2:
            krpc_xdr_get_bool(d);
            break;
        case 3:
            krpc_xdr_get_fixed(d, buf, next_rand(rs) % 20);
            break;
        case 4:
            if (krpc_xdr_get_opaque(d, buf, sizeof buf, &len) == 0 && len > sizeof buf)
                __builtin_trap();
            break;
        case 5:
            if (krpc_xdr_get_string(d, s, sizeof s) == 0 && strlen(s) >= sizeof s)
                __builtin_trap();
            break;
        case 6: {
            struct mb_chain ref = MB_CHAIN_INIT;
            size_t max = next_rand(rs) % 3 == 0 ? SIZE_MAX : 100;
            if (krpc_xdr_get_opaque_ref(d, max, &ref) == 0) {
                if (ref.len > max || ref.len > before || mb_chain_check(&ref) != 0)
                    __builtin_trap();
                for (struct mb *m = ref.head; m; m = m->next) {
                    int found = 0;
                    for (const struct mb *o = c->head; o && !found; o = o->next)
                        found = o->st == m->st;
                    if (!found)
                        __builtin_trap(); /* not by reference */
                }
            } else if (ref.len != 0) {
                __builtin_trap();
            }
            mb_chain_free(&ref);
            break;
        }
        default:
            krpc_xdr_skip(d, next_rand(rs) % 9);
            break;
        }
        if (krpc_xdr_remaining(d) > before)
            __builtin_trap();
    }
    check_sticky(d);
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
    if (size < 1)
        return 0;
    uint64_t links0, stores0, links1, stores1;
    pool_counts(&links0, &stores0);
    unsigned rs = data[0];
    data++;
    size--;
    for (int split = 0; split < 2; split++) {
        struct mb_chain c = MB_CHAIN_INIT;
        build(&c, data, size, &rs, split);
        if (c.len != size) {
            mb_chain_free(&c);
            return 0;
        }
        /* A bound that sometimes stops short of the end of the chain. */
        size_t bound = size;
        if (size && next_rand(&rs) % 3 == 0)
            bound = next_rand(&rs) % (size + 1);

        struct krpc_xdr_dec d;
        struct krpc_call_hdr ch;
        krpc_xdr_dec_init(&d, &c, 0, bound);
        int r = krpc_decode_call_hdr(&d, &ch);
        if (r != 0 && r != -EBADMSG)
            __builtin_trap();
        if (r == 0 && (ch.cred.ngids > KRPC_AUTH_SYS_MAX_GIDS || strlen(ch.cred.machine) > KRPC_AUTH_SYS_MAX_MACHINE))
            __builtin_trap();
        if (r != 0 && krpc_xdr_dec_error(&d) == 0)
            __builtin_trap();
        check_sticky(&d);
        if (r == 0)
            gets(&d, &c, &rs); /* the "arguments" */

        struct krpc_reply_hdr rh;
        krpc_xdr_dec_init(&d, &c, 0, bound);
        r = krpc_decode_reply_hdr(&d, &rh);
        if (r != 0 && r != -EBADMSG)
            __builtin_trap();
        if (r == 0 && rh.verf_len > KRPC_MAX_AUTH_BYTES)
            __builtin_trap();
        check_sticky(&d);
        if (r == 0)
            gets(&d, &c, &rs);

        krpc_xdr_dec_init(&d, &c, 0, bound);
        gets(&d, &c, &rs);
        mb_chain_free(&c);
    }
    pool_counts(&links1, &stores1);
    if (links1 != links0 || stores1 != stores0)
        __builtin_trap();
    return 0;
}
