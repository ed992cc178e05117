/*
 * test_xdr.c - XDR on chains: round trips, padding, by-reference opaques,
 * bounds, hostile lengths, sticky errors.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rpctls/mbuf.h"
#include "rpctls/xdr.h"
#include "test.h"

static unsigned seed = 4242;

/* A chain holding bytes p[0..n) in links of random sizes (1..maxpiece),
 * each over its own cluster store. */
static void chain_from(struct mb_chain *c, const void *p, size_t n, size_t maxpiece)
{
    const unsigned char *b = p;
    while (n) {
        size_t k = 1 + (size_t)rand_r(&seed) % maxpiece;
        if (k > n)
            k = n;
        struct mb *m = mb_append_cluster(c, k);
        memcpy(mb_store_ptr(m->st, m->off), b, k);
        b += k;
        n -= k;
    }
}

/* The same bytes in one-byte links (copied). */
static void resegment(struct mb_chain *dst, const struct mb_chain *src, size_t maxpiece)
{
    unsigned char *buf = malloc(src->len + 1);
    mb_chain_copy_out(src, 0, src->len, buf);
    chain_from(dst, buf, src->len, maxpiece);
    free(buf);
}

static void test_round_trip(void)
{
    struct mb_chain c = MB_CHAIN_INIT, data = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    static const unsigned char blob[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    size_t expect = 0;

    krpc_xdr_enc_init(&x, &c);
    krpc_xdr_put_u32(&x, 0);
    krpc_xdr_put_u32(&x, 0xdeadbeef);
    krpc_xdr_put_u32(&x, UINT32_MAX);
    krpc_xdr_put_u64(&x, 0x0123456789abcdefull);
    krpc_xdr_put_u64(&x, UINT64_MAX);
    expect += 3 * 4 + 2 * 8;
    for (size_t n = 0; n <= 9; n++) {
        krpc_xdr_put_fixed(&x, blob, n);
        krpc_xdr_put_opaque(&x, blob, n);
        expect += 2 * (n + KRPC_XDR_PAD(n)) + 4;
    }
    krpc_xdr_put_string(&x, "");
    krpc_xdr_put_string(&x, "hello");
    expect += 4 + 4 + 8;
    krpc_xdr_put_u32(&x, 1); /* a bool */
    krpc_xdr_put_u32(&x, 0);
    expect += 8;
    unsigned char *resv = krpc_xdr_reserve(&x, 4);
    REQUIRE(resv != NULL);
    expect += 4;
    mb_chain_append_bytes(&data, "chain", 5);
    krpc_xdr_put_opaque_chain(&x, &data);
    expect += 4 + 8;
    CHECK_EQ(data.len, 0);
    krpc_xdr_put_u32(&x, 77);
    expect += 4;
    krpc_xdr_store_u32(resv, 0xfeedf00d);
    CHECK_EQ(krpc_xdr_enc_error(&x), 0);
    CHECK_EQ(c.len, expect);
    CHECK_EQ(mb_chain_check(&c), 0);
    CHECK_EQ(c.len % 4, 0);

    /* Decode from the chain as built, and from copies in tiny links so that
     * every item spans links. */
    for (int pass = 0; pass < 3; pass++) {
        struct mb_chain seg = MB_CHAIN_INIT;
        const struct mb_chain *src = &c;
        if (pass > 0) {
            resegment(&seg, &c, pass == 1 ? 1 : 7);
            src = &seg;
        }
        struct krpc_xdr_dec d;
        unsigned char buf[16];
        char s[16];
        size_t len;
        krpc_xdr_dec_init(&d, src, 0, src->len);
        CHECK_EQ(krpc_xdr_get_u32(&d), 0);
        CHECK_EQ(krpc_xdr_get_u32(&d), 0xdeadbeef);
        CHECK_EQ(krpc_xdr_get_u32(&d), UINT32_MAX);
        CHECK(krpc_xdr_get_u64(&d) == 0x0123456789abcdefull);
        CHECK(krpc_xdr_get_u64(&d) == UINT64_MAX);
        for (size_t n = 0; n <= 9; n++) {
            memset(buf, 0xee, sizeof buf);
            CHECK_EQ(krpc_xdr_get_fixed(&d, buf, n), 0);
            CHECK(memcmp(buf, blob, n) == 0);
            CHECK_EQ(buf[n], 0xee);
            CHECK_EQ(krpc_xdr_get_opaque(&d, buf, 9, &len), 0);
            CHECK_EQ(len, n);
            CHECK(memcmp(buf, blob, n) == 0);
        }
        CHECK_EQ(krpc_xdr_get_string(&d, s, sizeof s), 0);
        CHECK(strcmp(s, "") == 0);
        CHECK_EQ(krpc_xdr_get_string(&d, s, sizeof s), 0);
        CHECK(strcmp(s, "hello") == 0);
        CHECK_EQ(krpc_xdr_get_bool(&d), 1);
        CHECK_EQ(krpc_xdr_get_bool(&d), 0);
        CHECK_EQ(krpc_xdr_get_u32(&d), 0xfeedf00d);
        struct mb_chain ref = MB_CHAIN_INIT;
        CHECK_EQ(krpc_xdr_get_opaque_ref(&d, 100, &ref), 0);
        CHECK_EQ(ref.len, 5);
        memset(buf, 0, sizeof buf);
        mb_chain_copy_out(&ref, 0, ref.len, buf);
        CHECK(memcmp(buf, "chain", 5) == 0);
        mb_chain_free(&ref);
        CHECK_EQ(krpc_xdr_get_u32(&d), 77);
        CHECK_EQ(krpc_xdr_dec_error(&d), 0);
        CHECK_EQ(krpc_xdr_remaining(&d), 0);
        mb_chain_free(&seg);
    }
    mb_chain_free(&c);
}

/* Padding bytes are zero, including when the padding lands in the spare
 * room of a store that held other bytes before. */
static void test_padding_zero(void)
{
    struct mb_chain c = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    krpc_xdr_enc_init(&x, &c);
    size_t pos = 0;
    for (size_t n = 1; n <= 7; n++) {
        krpc_xdr_put_fixed(&x, "\xff\xff\xff\xff\xff\xff\xff", n);
        pos += n;
        for (size_t i = 0; i < KRPC_XDR_PAD(n); i++)
            CHECK_EQ(mb_chain_byte(&c, pos + i), 0);
        pos += KRPC_XDR_PAD(n);
        krpc_xdr_put_opaque(&x, "\xff\xff\xff\xff\xff\xff\xff", n);
        pos += 4 + n;
        for (size_t i = 0; i < KRPC_XDR_PAD(n); i++)
            CHECK_EQ(mb_chain_byte(&c, pos + i), 0);
        pos += KRPC_XDR_PAD(n);
    }
    CHECK_EQ(c.len, pos);

    /* An opaque chain whose store is dirty past its bytes. */
    struct mb_chain data = MB_CHAIN_INIT;
    struct mb *m = mb_append_cluster(&data, 64);
    memset(mb_store_ptr(m->st, 0), 0xab, 64);
    mb_chain_trim_tail(&data, 61); /* 3 bytes of 0xab, 61 dirty bytes of room */
    krpc_xdr_put_opaque_chain(&x, &data);
    CHECK_EQ(krpc_xdr_enc_error(&x), 0);
    CHECK_EQ(c.len, pos + 4 + 4);
    CHECK_EQ(mb_chain_byte(&c, pos + 4 + 2), 0xab);
    CHECK_EQ(mb_chain_byte(&c, pos + 4 + 3), 0);
    mb_chain_free(&c);
}

static int in_stores(struct mb_store **set, size_t n, const struct mb_store *st)
{
    for (size_t i = 0; i < n; i++)
        if (set[i] == st)
            return 1;
    return 0;
}

/* 1 MiB opaque by reference both ways: no bytes copied, no pages allocated. */
static void test_by_reference(void)
{
    const size_t big = 1u << 20;
    unsigned char *src = malloc(big + 3);
    for (size_t i = 0; i < big + 3; i++)
        src[i] = (unsigned char)(i * 7 + 3);

    for (size_t extra = 0; extra <= 3; extra += 3) { /* 1 MiB, then 1 MiB + 3 (padding) */
        size_t n = big + extra;
        struct mb_chain data = MB_CHAIN_INIT, msg = MB_CHAIN_INIT;
        REQUIRE(mb_chain_append_pages_from_buf(&data, src, n) == 0);
        struct mb_store *stores[64];
        size_t nst = 0;
        for (struct mb *m = data.head; m; m = m->next)
            if (nst < 64 && !in_stores(stores, nst, m->st))
                stores[nst++] = m->st;

        struct krpc_xdr_enc x;
        krpc_xdr_enc_init(&x, &msg);
        krpc_xdr_put_u32(&x, 0x11111111);
        struct mb_pool_stats s0, s1, s2;
        mb_pool_get_stats(&s0);
        krpc_xdr_put_opaque_chain(&x, &data);
        krpc_xdr_put_u32(&x, 0x22222222);
        mb_pool_get_stats(&s1);
        CHECK_EQ(krpc_xdr_enc_error(&x), 0);
        CHECK_EQ(s1.pages_in_use, s0.pages_in_use);
        CHECK_EQ(msg.len, 4 + 4 + n + KRPC_XDR_PAD(n) + 4);
        /* The payload links of the message are the data's links (same stores). */
        size_t covered = 0;
        for (struct mb *m = msg.head; m; m = m->next)
            if (in_stores(stores, nst, m->st))
                covered += m->len;
        CHECK(covered >= n);

        struct krpc_xdr_dec d;
        struct mb_chain ref = MB_CHAIN_INIT;
        krpc_xdr_dec_init(&d, &msg, 0, msg.len);
        CHECK_EQ(krpc_xdr_get_u32(&d), 0x11111111);
        mb_pool_get_stats(&s1);
        CHECK_EQ(krpc_xdr_get_opaque_ref(&d, n - 1, &ref), -EMSGSIZE); /* just over the limit */
        CHECK_EQ(ref.len, 0);
        krpc_xdr_dec_init(&d, &msg, 4, msg.len - 4);
        CHECK_EQ(krpc_xdr_get_opaque_ref(&d, n, &ref), 0);
        mb_pool_get_stats(&s2);
        CHECK_EQ(s2.pages_in_use, s1.pages_in_use);
        CHECK_EQ(ref.len, n);
        int all_in = 1;
        for (struct mb *m = ref.head; m; m = m->next)
            all_in &= in_stores(stores, nst, m->st);
        CHECK(all_in);
        unsigned char *back = malloc(n);
        mb_chain_copy_out(&ref, 0, n, back);
        CHECK(memcmp(back, src, n) == 0);
        free(back);
        CHECK_EQ(krpc_xdr_get_u32(&d), 0x22222222);
        CHECK_EQ(krpc_xdr_remaining(&d), 0);
        CHECK_EQ(krpc_xdr_dec_error(&d), 0);
        mb_chain_free(&ref);
        mb_chain_free(&msg);
    }
    free(src);
}

/* Every get exactly at the bound succeeds and one past it fails, with the
 * bound placed inside a longer chain (bytes past it are never read). */
static void test_bounds(void)
{
    unsigned char bytes[64];
    for (size_t i = 0; i < sizeof bytes; i++)
        bytes[i] = 0;
    struct mb_chain c = MB_CHAIN_INIT;
    chain_from(&c, bytes, sizeof bytes, 5);
    const size_t off = 8;
    struct krpc_xdr_dec d;
    unsigned char buf[64];
    char s[64];
    size_t len;

    for (size_t lim = 0; lim <= 16; lim++) {
        /* u32 */
        krpc_xdr_dec_init(&d, &c, off, lim);
        for (size_t k = 0; k < lim / 4; k++)
            krpc_xdr_get_u32(&d);
        CHECK_EQ(krpc_xdr_dec_error(&d), 0);
        krpc_xdr_get_u32(&d);
        CHECK_EQ(krpc_xdr_dec_error(&d), -EBADMSG);
        /* u64 */
        krpc_xdr_dec_init(&d, &c, off, lim);
        for (size_t k = 0; k < lim / 8; k++)
            krpc_xdr_get_u64(&d);
        CHECK_EQ(krpc_xdr_dec_error(&d), 0);
        krpc_xdr_get_u64(&d);
        CHECK_EQ(krpc_xdr_dec_error(&d), -EBADMSG);
        /* fixed: n plus padding must fit */
        size_t fit = lim & ~(size_t)3;
        krpc_xdr_dec_init(&d, &c, off, lim);
        CHECK_EQ(krpc_xdr_get_fixed(&d, buf, fit), 0);
        krpc_xdr_dec_init(&d, &c, off, lim);
        CHECK_EQ(krpc_xdr_get_fixed(&d, buf, fit + 1), -EBADMSG);
        /* skip */
        krpc_xdr_dec_init(&d, &c, off, lim);
        CHECK_EQ(krpc_xdr_skip(&d, lim), 0);
        CHECK_EQ(krpc_xdr_remaining(&d), 0);
        krpc_xdr_dec_init(&d, &c, off, lim);
        CHECK_EQ(krpc_xdr_skip(&d, lim + 1), -EBADMSG);
    }

    /* Length-prefixed items whose length word says exactly the remaining
     * bytes, then one more. */
    for (uint32_t n = 0; n <= 12; n++) {
        struct mb_chain m = MB_CHAIN_INIT;
        struct krpc_xdr_enc x;
        krpc_xdr_enc_init(&x, &m);
        krpc_xdr_put_u32(&x, n);
        krpc_xdr_put_fixed(&x, "abcdefghijkl", n);
        size_t total = m.len;
        krpc_xdr_put_u32(&x, 0x5a5a5a5a); /* beyond the bound */
        struct mb_chain ref = MB_CHAIN_INIT;

        krpc_xdr_dec_init(&d, &m, 0, total);
        CHECK_EQ(krpc_xdr_get_opaque(&d, buf, 64, &len), 0);
        CHECK_EQ(len, n);
        krpc_xdr_dec_init(&d, &m, 0, total);
        CHECK_EQ(krpc_xdr_get_string(&d, s, sizeof s), 0);
        CHECK_EQ(strlen(s), n);
        krpc_xdr_dec_init(&d, &m, 0, total);
        CHECK_EQ(krpc_xdr_get_opaque_ref(&d, 64, &ref), 0);
        CHECK_EQ(ref.len, n);
        mb_chain_free(&ref);

        /* Bound one short: the data or its padding would cross it. */
        krpc_xdr_dec_init(&d, &m, 0, total - 1);
        CHECK_EQ(krpc_xdr_get_opaque(&d, buf, 64, &len), -EBADMSG);
        CHECK_EQ(len, 0);
        krpc_xdr_dec_init(&d, &m, 0, total - 1);
        CHECK_EQ(krpc_xdr_get_string(&d, s, sizeof s), -EBADMSG);
        krpc_xdr_dec_init(&d, &m, 0, total - 1);
        CHECK_EQ(krpc_xdr_get_opaque_ref(&d, 64, &ref), -EBADMSG);
        CHECK_EQ(ref.len, 0);
        mb_chain_free(&m);
    }

    /* The bound itself must lie inside the chain. */
    krpc_xdr_dec_init(&d, &c, 60, 5);
    CHECK_EQ(krpc_xdr_dec_error(&d), -EBADMSG);
    CHECK_EQ(krpc_xdr_remaining(&d), 0);
    krpc_xdr_dec_init(&d, &c, 65, 0);
    CHECK_EQ(krpc_xdr_dec_error(&d), -EBADMSG);
    krpc_xdr_dec_init(&d, &c, 64, 0);
    CHECK_EQ(krpc_xdr_dec_error(&d), 0);
    krpc_xdr_dec_init(&d, &c, 1, SIZE_MAX);
    CHECK_EQ(krpc_xdr_dec_error(&d), -EBADMSG);
    mb_chain_free(&c);
}

static void chain_words(struct mb_chain *c, const uint32_t *w, size_t n)
{
    struct krpc_xdr_enc x;
    krpc_xdr_enc_init(&x, c);
    for (size_t i = 0; i < n; i++)
        krpc_xdr_put_u32(&x, w[i]);
}

/* Lengths from the wire that are absurd or above the caller's limit. */
static void test_hostile_lengths(void)
{
    static const uint32_t lens[] = {0xffffffffu, 0xfffffffdu, 0xfffffffcu, 0x80000000u, 0x7fffffffu, 101, 9};
    unsigned char buf[128];
    char s[101];
    size_t len;
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        uint32_t w[8] = {lens[i], 1, 2, 3, 4, 5, 6, 7};
        struct mb_chain c = MB_CHAIN_INIT, ref = MB_CHAIN_INIT;
        struct krpc_xdr_dec d;
        int past_bound = lens[i] > 28;
        chain_words(&c, w, 8);

        krpc_xdr_dec_init(&d, &c, 0, c.len);
        CHECK_EQ(krpc_xdr_get_opaque(&d, buf, 100, &len), lens[i] > 100 ? -EMSGSIZE : 0);
        /* With no limit of its own, the bound still holds. */
        krpc_xdr_dec_init(&d, &c, 0, c.len);
        CHECK_EQ(krpc_xdr_get_opaque_ref(&d, SIZE_MAX, &ref), past_bound ? -EBADMSG : 0);
        CHECK_EQ(ref.len, past_bound ? 0 : lens[i]);
        mb_chain_free(&ref);
        krpc_xdr_dec_init(&d, &c, 0, c.len);
        CHECK_EQ(krpc_xdr_get_string(&d, s, sizeof s), lens[i] > 100 ? -EMSGSIZE : -EBADMSG /* NUL inside */);
        CHECK_EQ(s[0], 0);
        mb_chain_free(&c);
    }
}

static void test_strings(void)
{
    struct mb_chain c = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    struct krpc_xdr_dec d;
    char s[8];
    krpc_xdr_enc_init(&x, &c);
    krpc_xdr_put_opaque(&x, "ab\0cd", 5); /* embedded NUL */
    krpc_xdr_put_string(&x, "1234567");  /* exactly fits s[8] */
    krpc_xdr_put_string(&x, "12345678"); /* one too many */
    size_t first = 4 + 8;
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    CHECK_EQ(krpc_xdr_get_string(&d, s, sizeof s), -EBADMSG);
    CHECK_EQ(s[0], 0);
    krpc_xdr_dec_init(&d, &c, first, c.len - first);
    CHECK_EQ(krpc_xdr_get_string(&d, s, sizeof s), 0);
    CHECK(strcmp(s, "1234567") == 0);
    CHECK_EQ(krpc_xdr_get_string(&d, s, sizeof s), -EMSGSIZE);
    CHECK_EQ(krpc_xdr_get_string(&d, s, 0), -EMSGSIZE); /* sticky, and no write to a 0-byte buffer */
    mb_chain_free(&c);
}

static void test_bool_and_sticky(void)
{
    uint32_t w[] = {0, 1, 2, 7, 9};
    struct mb_chain c = MB_CHAIN_INIT, ref = MB_CHAIN_INIT;
    struct krpc_xdr_dec d;
    unsigned char buf[8];
    size_t len = 99;
    chain_words(&c, w, 5);
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    CHECK_EQ(krpc_xdr_get_bool(&d), 0);
    CHECK_EQ(krpc_xdr_get_bool(&d), 1);
    CHECK_EQ(krpc_xdr_dec_error(&d), 0);
    CHECK_EQ(krpc_xdr_get_bool(&d), 0); /* 2 is not a bool */
    CHECK_EQ(krpc_xdr_dec_error(&d), -EBADMSG);
    /* Everything after fails and returns 0, although bytes remain. */
    CHECK_EQ(krpc_xdr_remaining(&d), 0);
    CHECK_EQ(krpc_xdr_get_u32(&d), 0);
    CHECK(krpc_xdr_get_u64(&d) == 0);
    CHECK_EQ(krpc_xdr_get_fixed(&d, buf, 4), -EBADMSG);
    CHECK_EQ(krpc_xdr_get_opaque(&d, buf, 8, &len), -EBADMSG);
    CHECK_EQ(len, 0);
    CHECK_EQ(krpc_xdr_get_opaque_ref(&d, 8, &ref), -EBADMSG);
    CHECK_EQ(ref.len, 0);
    CHECK_EQ(krpc_xdr_skip(&d, 0), -EBADMSG);
    CHECK_EQ(krpc_xdr_dec_error(&d), -EBADMSG);
    /* The first error is the one kept. */
    uint32_t w2[] = {50, 0};
    struct mb_chain c2 = MB_CHAIN_INIT;
    chain_words(&c2, w2, 2);
    krpc_xdr_dec_init(&d, &c2, 0, c2.len);
    CHECK_EQ(krpc_xdr_get_opaque(&d, buf, 8, &len), -EMSGSIZE);
    krpc_xdr_get_u32(&d);
    CHECK_EQ(krpc_xdr_dec_error(&d), -EMSGSIZE);
    mb_chain_free(&c2);
    mb_chain_free(&c);
}

/* put_u32 writes into the tail store only while it is exclusively ours. */
static void test_encoder_tail(void)
{
    struct mb_chain c = MB_CHAIN_INIT, shot = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    krpc_xdr_enc_init(&x, &c);
    for (uint32_t i = 0; i < 60; i++)
        krpc_xdr_put_u32(&x, i);
    CHECK_EQ(c.nlinks, 1); /* 240 bytes: one inline store */
    /* Share the tail: further puts must not touch it. */
    REQUIRE(mb_chain_copy_ref(&shot, &c, 0, c.len) == 0);
    for (uint32_t i = 60; i < 200; i++)
        krpc_xdr_put_u32(&x, i);
    CHECK_EQ(krpc_xdr_enc_error(&x), 0);
    CHECK_EQ(c.len, 800);
    CHECK_EQ(shot.len, 240);
    CHECK(c.head->st != c.tail->st);
    struct krpc_xdr_dec d;
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    int ok = 1;
    for (uint32_t i = 0; i < 200; i++)
        ok &= krpc_xdr_get_u32(&d) == i;
    CHECK(ok);
    mb_chain_free(&shot);

    /* reserve: contiguous, zeroed, limited to MB_INLINE_SIZE. */
    unsigned char *p = krpc_xdr_reserve(&x, MB_INLINE_SIZE);
    REQUIRE(p != NULL);
    CHECK_EQ(p[0] | p[MB_INLINE_SIZE - 1], 0);
    CHECK_EQ(c.len, 800 + MB_INLINE_SIZE);
    CHECK(krpc_xdr_reserve(&x, MB_INLINE_SIZE + 1) == NULL);
    CHECK_EQ(krpc_xdr_enc_error(&x), -EINVAL);
    /* The encoder error is sticky; an opaque chain is still consumed. */
    struct mb_chain data = MB_CHAIN_INIT;
    mb_chain_append_bytes(&data, "xyz", 3);
    krpc_xdr_put_opaque_chain(&x, &data);
    CHECK_EQ(data.len, 0);
    krpc_xdr_put_u32(&x, 1);
    CHECK_EQ(c.len, 800 + MB_INLINE_SIZE);
    mb_chain_free(&c);
}

/* Many small links: the cursor cache keeps sequential decoding linear. */
static void test_many_links(void)
{
    const size_t n = 20000;
    struct mb_chain c = MB_CHAIN_INIT;
    for (size_t i = 0; i < n; i++) {
        struct mb *m = mb_append_inline(&c, 4);
        krpc_xdr_store_u32(mb_store_ptr(m->st, 0), (uint32_t)i);
    }
    struct krpc_xdr_dec d;
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    int ok = 1;
    for (size_t i = 0; i < n; i++)
        ok &= krpc_xdr_get_u32(&d) == (uint32_t)i;
    CHECK(ok);
    CHECK_EQ(krpc_xdr_remaining(&d), 0);
    mb_chain_free(&c);
}

int main(void)
{
    TEST_RUN(test_round_trip);
    TEST_RUN(test_padding_zero);
    TEST_RUN(test_by_reference);
    TEST_RUN(test_bounds);
    TEST_RUN(test_hostile_lengths);
    TEST_RUN(test_strings);
    TEST_RUN(test_bool_and_sticky);
    TEST_RUN(test_encoder_tail);
    TEST_RUN(test_many_links);
    CHECK_EQ(mb_pool_shutdown(), 0);
    return test_summary();
}
