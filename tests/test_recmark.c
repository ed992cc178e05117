/*
 * test_recmark.c - record marking (RFC 5531 section 11): fragmentation on
 * send, reassembly across any segmentation on receive, the size limit
 * enforced at the fragment header, by-reference handling of bodies.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rpctls/krpc.h"
#include "rpctls/mbuf.h"
#include "test.h"

static unsigned seed = 777;

static void fill(unsigned char *p, size_t n, unsigned salt)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 31 + salt);
}

static void put_word(struct mb_chain *c, uint32_t w)
{
    unsigned char b[4];
    krpc_xdr_store_u32(b, w);
    mb_chain_append_bytes(c, b, 4);
}

static uint32_t word_at(const struct mb_chain *c, size_t off)
{
    unsigned char b[4];
    mb_chain_copy_out(c, off, 4, b);
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static int chain_equals(const struct mb_chain *c, const unsigned char *p, size_t n)
{
    if (c->len != n)
        return 0;
    unsigned char *b = malloc(n + 1);
    mb_chain_copy_out(c, 0, n, b);
    int eq = memcmp(b, p, n) == 0;
    free(b);
    return eq;
}

/* Feeds the stream to the reader in pieces (piece 0: random sizes up to
 * 3000) and collects every message; returns how many, or a negative error. */
static int feed_pieces(struct krpc_rm_reader *r, const struct mb_chain *stream, size_t piece, struct mb_chain *msgs,
                       int maxmsgs)
{
    int got = 0;
    struct mb_chain all = MB_CHAIN_INIT;
    mb_chain_copy_ref(&all, stream, 0, stream->len);
    while (all.len) {
        size_t k = piece ? piece : 1 + (size_t)rand_r(&seed) % 3000;
        if (k > all.len)
            k = all.len;
        struct mb_chain rest = MB_CHAIN_INIT;
        mb_chain_split(&all, k, &rest); /* all keeps the piece */
        krpc_rm_reader_feed(r, &all);
        mb_chain_concat(&all, &rest);
        int ret;
        while ((ret = krpc_rm_reader_next(r, &msgs[got < maxmsgs ? got : maxmsgs - 1])) == 1)
            got++;
        if (ret < 0) {
            mb_chain_free(&all);
            return ret;
        }
    }
    return got;
}

/* Fragmentation on send with several fragment sizes, read back with one-byte,
 * fixed and random segmentation. */
static void test_frame_and_reassemble(void)
{
    static const size_t frags[] = {0, 1, 3, 4, 7, 100, 4096, 65536};
    static const size_t sizes[] = {0, 1, 4, 5, 99, 100, 101, 4096, 70001};
    static unsigned char src[70001];
    fill(src, sizeof src, 5);
    for (size_t fi = 0; fi < sizeof frags / sizeof frags[0]; fi++) {
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            size_t n = sizes[si], mf = frags[fi];
            if (mf == 1 && n > 5000)
                continue; /* 4x blow-up of one-byte fragments fed one byte at a time: slow, nothing new */
            struct mb_chain msg = MB_CHAIN_INIT, wire = MB_CHAIN_INIT;
            if (n > 4096)
                mb_chain_append_pages_from_buf(&msg, src, n);
            else
                mb_chain_append_bytes(&msg, src, n);
            REQUIRE(krpc_rm_frame(&msg, mf, &wire) == 0);
            CHECK_EQ(msg.len, 0);
            CHECK_EQ(mb_chain_check(&wire), 0);

            /* Walk the fragments by hand. */
            size_t off = 0, total = 0, nfrag = 0, eff = mf ? mf : SIZE_MAX;
            int last = 0, shape_ok = 1;
            while (off < wire.len && !last) {
                uint32_t h = word_at(&wire, off);
                size_t fl = h & 0x7fffffffu;
                last = (h & KRPC_RM_LAST) != 0;
                shape_ok &= fl <= eff;
                shape_ok &= last || fl == eff; /* all but the last are full */
                off += 4 + fl;
                total += fl;
                nfrag++;
            }
            CHECK(shape_ok);
            CHECK(last);
            CHECK_EQ(off, wire.len);
            CHECK_EQ(total, n);
            CHECK_EQ(nfrag, mf == 0 || n == 0 ? 1 : (n + mf - 1) / mf);

            static const size_t pieces[] = {1, 3, 4096, 0};
            for (size_t pi = 0; pi < 4; pi++) {
                if (pieces[pi] == 1 && wire.len > 20000)
                    continue;
                struct krpc_rm_reader r;
                struct mb_chain out[2] = {MB_CHAIN_INIT, MB_CHAIN_INIT};
                krpc_rm_reader_init(&r, 1u << 20);
                CHECK_EQ(feed_pieces(&r, &wire, pieces[pi], out, 2), 1);
                CHECK(chain_equals(&out[0], src, n));
                CHECK_EQ(mb_chain_check(&out[0]), 0);
                CHECK_EQ(r.in.len, 0);
                mb_chain_free(&out[0]);
                mb_chain_free(&out[1]);
                krpc_rm_reader_free(&r);
            }
            mb_chain_free(&wire);
        }
    }
}

/* Bodies are never copied: on send the message's page links go out as they
 * are, on receive the message's links point into the fed stores. */
static void test_by_reference(void)
{
    const size_t n = 300000;
    unsigned char *src = malloc(n);
    fill(src, n, 9);
    struct mb_chain msg = MB_CHAIN_INIT, wire = MB_CHAIN_INIT, got = MB_CHAIN_INIT;
    REQUIRE(mb_chain_append_pages_from_buf(&msg, src, n) == 0);
    struct mb_store *pst = msg.head->st;
    struct mb_pool_stats s0, s1;
    mb_pool_get_stats(&s0);
    REQUIRE(krpc_rm_frame(&msg, 50000, &wire) == 0);
    mb_pool_get_stats(&s1);
    CHECK_EQ(s1.pages_in_use, s0.pages_in_use);
    int seen = 0;
    for (struct mb *m = wire.head; m; m = m->next)
        seen |= m->st == pst;
    CHECK(seen);

    struct krpc_rm_reader r;
    krpc_rm_reader_init(&r, 0);
    CHECK_EQ(r.max_msg, KRPC_RM_DEFAULT_MAX_MSG);
    krpc_rm_reader_feed(&r, &wire);
    CHECK_EQ(krpc_rm_reader_next(&r, &got), 1);
    mb_pool_get_stats(&s1);
    CHECK_EQ(s1.pages_in_use, s0.pages_in_use);
    CHECK(chain_equals(&got, src, n));
    CHECK(got.head->st == pst);
    CHECK_EQ(krpc_rm_reader_next(&r, &got), 0);
    mb_chain_free(&got);
    krpc_rm_reader_free(&r);
    free(src);
}

/* A message of exactly max_msg passes; one byte more fails as soon as the
 * header that announces it is in, before any body byte arrives. */
static void test_size_limit(void)
{
    const size_t max = 1000;
    static unsigned char src[1001];
    fill(src, sizeof src, 1);
    for (int split = 0; split < 2; split++) {
        /* At the limit: one fragment, or 600 + 400. */
        struct krpc_rm_reader r;
        struct mb_chain wire = MB_CHAIN_INIT, msg = MB_CHAIN_INIT, got = MB_CHAIN_INIT;
        mb_chain_append_bytes(&msg, src, max);
        krpc_rm_frame(&msg, split ? 600 : 0, &wire);
        krpc_rm_reader_init(&r, max);
        krpc_rm_reader_feed(&r, &wire);
        CHECK_EQ(krpc_rm_reader_next(&r, &got), 1);
        CHECK(chain_equals(&got, src, max));
        mb_chain_free(&got);
        krpc_rm_reader_free(&r);
    }

    /* One over, in one fragment: only the header is fed. */
    struct krpc_rm_reader r;
    struct mb_chain hdr = MB_CHAIN_INIT, got = MB_CHAIN_INIT, more = MB_CHAIN_INIT;
    krpc_rm_reader_init(&r, max);
    put_word(&hdr, KRPC_RM_LAST | (uint32_t)(max + 1));
    krpc_rm_reader_feed(&r, &hdr);
    CHECK_EQ(krpc_rm_reader_next(&r, &got), -EMSGSIZE);
    CHECK_EQ(got.len, 0);
    /* Dead: more bytes change nothing, and are not hoarded. */
    mb_chain_append_bytes(&more, src, 100);
    krpc_rm_reader_feed(&r, &more);
    CHECK_EQ(r.in.len, 0);
    CHECK_EQ(krpc_rm_reader_next(&r, &got), -EMSGSIZE);
    krpc_rm_reader_free(&r);

    /* One over, across fragments: 600 (not last) then a header for 401. */
    krpc_rm_reader_init(&r, max);
    put_word(&hdr, 600);
    mb_chain_append_bytes(&hdr, src, 600);
    krpc_rm_reader_feed(&r, &hdr);
    CHECK_EQ(krpc_rm_reader_next(&r, &got), 0);
    put_word(&hdr, KRPC_RM_LAST | 401);
    krpc_rm_reader_feed(&r, &hdr);
    CHECK_EQ(krpc_rm_reader_next(&r, &got), -EMSGSIZE);
    krpc_rm_reader_free(&r);

    /* Many small fragments adding up to one over. */
    krpc_rm_reader_init(&r, max);
    int ret = 0;
    for (size_t total = 0; total < max && ret == 0; total += 10) {
        put_word(&hdr, 10);
        mb_chain_append_bytes(&hdr, src, 10);
        krpc_rm_reader_feed(&r, &hdr);
        ret = krpc_rm_reader_next(&r, &got);
    }
    CHECK_EQ(ret, 0); /* exactly max so far, in fragments of 10 */
    put_word(&hdr, 1);
    krpc_rm_reader_feed(&r, &hdr);
    CHECK_EQ(krpc_rm_reader_next(&r, &got), -EMSGSIZE);
    krpc_rm_reader_free(&r);

    /* Huge record marks fail at once, with the default limit too. */
    static const uint32_t huge[] = {0x7fffffffu, 0xffffffffu, KRPC_RM_LAST | (KRPC_RM_DEFAULT_MAX_MSG + 1)};
    for (size_t i = 0; i < 3; i++) {
        krpc_rm_reader_init(&r, 0);
        put_word(&hdr, huge[i]);
        krpc_rm_reader_feed(&r, &hdr);
        CHECK_EQ(krpc_rm_reader_next(&r, &got), -EMSGSIZE);
        krpc_rm_reader_free(&r);
    }
    /* ... and exactly the default limit is accepted as an announcement. */
    krpc_rm_reader_init(&r, 0);
    put_word(&hdr, KRPC_RM_LAST | KRPC_RM_DEFAULT_MAX_MSG);
    krpc_rm_reader_feed(&r, &hdr);
    CHECK_EQ(krpc_rm_reader_next(&r, &got), 0);
    krpc_rm_reader_free(&r);
    CHECK_EQ(got.len, 0);
}

static void test_zero_length(void)
{
    struct krpc_rm_reader r;
    struct mb_chain s = MB_CHAIN_INIT, got = MB_CHAIN_INIT;
    /* 5 bytes, then a zero-length last fragment ends the message. */
    put_word(&s, 5);
    mb_chain_append_bytes(&s, "hello", 5);
    put_word(&s, 0);
    put_word(&s, 0);
    put_word(&s, KRPC_RM_LAST);
    /* An empty message. */
    put_word(&s, KRPC_RM_LAST);
    /* And a normal one after. */
    put_word(&s, KRPC_RM_LAST | 3);
    mb_chain_append_bytes(&s, "abc", 3);
    for (size_t piece = 0; piece <= 1; piece++) {
        struct mb_chain out[4] = {MB_CHAIN_INIT, MB_CHAIN_INIT, MB_CHAIN_INIT, MB_CHAIN_INIT};
        krpc_rm_reader_init(&r, 16);
        CHECK_EQ(feed_pieces(&r, &s, piece, out, 4), 3);
        CHECK(chain_equals(&out[0], (const unsigned char *)"hello", 5));
        CHECK_EQ(out[1].len, 0);
        CHECK(out[1].head == NULL);
        CHECK(chain_equals(&out[2], (const unsigned char *)"abc", 3));
        for (int i = 0; i < 4; i++)
            mb_chain_free(&out[i]);
        krpc_rm_reader_free(&r);
    }
    /* An empty message framed. */
    struct mb_chain empty = MB_CHAIN_INIT, wire = MB_CHAIN_INIT;
    CHECK_EQ(krpc_rm_frame(&empty, 8, &wire), 0);
    CHECK_EQ(wire.len, 4);
    CHECK_EQ(word_at(&wire, 0), KRPC_RM_LAST);
    mb_chain_free(&wire);
    mb_chain_free(&s);
    (void)got;
}

/* Hundreds of messages back to back in one feed. */
static void test_back_to_back(void)
{
    enum { N = 300 };
    static unsigned char src[2000];
    fill(src, sizeof src, 3);
    struct mb_chain wire = MB_CHAIN_INIT;
    size_t lens[N];
    for (int i = 0; i < N; i++) {
        struct mb_chain m = MB_CHAIN_INIT;
        lens[i] = (size_t)rand_r(&seed) % 2000;
        mb_chain_append_bytes(&m, src, lens[i]);
        REQUIRE(krpc_rm_frame(&m, (size_t)(i % 5) * 97, &wire) == 0);
    }
    struct krpc_rm_reader r;
    krpc_rm_reader_init(&r, 2000);
    krpc_rm_reader_feed(&r, &wire);
    int ok = 1;
    for (int i = 0; i < N; i++) {
        struct mb_chain got = MB_CHAIN_INIT;
        ok &= krpc_rm_reader_next(&r, &got) == 1;
        ok &= chain_equals(&got, src, lens[i]);
        mb_chain_free(&got);
    }
    CHECK(ok);
    struct mb_chain got = MB_CHAIN_INIT;
    CHECK_EQ(krpc_rm_reader_next(&r, &got), 0);
    CHECK_EQ(r.in.len, 0);
    krpc_rm_reader_free(&r);
}

/* A partial message stays inside the reader until the rest arrives. */
static void test_partial(void)
{
    struct krpc_rm_reader r;
    struct mb_chain s = MB_CHAIN_INIT, got = MB_CHAIN_INIT;
    krpc_rm_reader_init(&r, 100);
    put_word(&s, KRPC_RM_LAST | 8);
    mb_chain_append_bytes(&s, "1234", 4);
    krpc_rm_reader_feed(&r, &s);
    CHECK_EQ(krpc_rm_reader_next(&r, &got), 0);
    CHECK_EQ(got.len, 0);
    CHECK_EQ(krpc_rm_reader_next(&r, &got), 0);
    mb_chain_append_bytes(&s, "5678", 4);
    put_word(&s, KRPC_RM_LAST);
    krpc_rm_reader_feed(&r, &s);
    CHECK_EQ(krpc_rm_reader_next(&r, &got), 1);
    CHECK(chain_equals(&got, (const unsigned char *)"12345678", 8));
    mb_chain_free(&got);
    CHECK_EQ(krpc_rm_reader_next(&r, &got), 1);
    CHECK_EQ(got.len, 0);
    /* Freed with a half message inside: nothing leaks (pool check at the end). */
    put_word(&s, 50);
    mb_chain_append_bytes(&s, "xx", 2);
    krpc_rm_reader_feed(&r, &s);
    CHECK_EQ(krpc_rm_reader_next(&r, &got), 0);
    krpc_rm_reader_free(&r);
}

int main(void)
{
    TEST_RUN(test_frame_and_reassemble);
    TEST_RUN(test_by_reference);
    TEST_RUN(test_size_limit);
    TEST_RUN(test_zero_length);
    TEST_RUN(test_back_to_back);
    TEST_RUN(test_partial);
    CHECK_EQ(mb_pool_shutdown(), 0);
    return test_summary();
}
