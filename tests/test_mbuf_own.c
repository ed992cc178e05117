/*
 * tests/test_mbuf_own.c - the ownership rule (who may write a byte in place),
 * the segment iterator and the receive buffer.
 *
 * The rule has one home (mb__may_write in src/mbuf/store.h) and three public
 * questions: mb_chain_is_writable, mb_chain_writable_ranges and
 * mb_chain_extend_tail (plus the receive buffer, which asks it for the space
 * it reads into). Each case below builds a chain whose answer is known and
 * checks all the questions agree with it, byte range for byte range.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/uio.h>

#include "rpctls/mbuf.h"
#include "mbuf/mbuf_test.h"
#include "test.h"

/* Writes a pattern into every byte of fresh chain c. */
static void fill(struct mb_chain *c, unsigned seed)
{
    struct mb_seg_iter it;
    unsigned char *p;
    size_t n, pos = 0;

    mb_seg_iter_init(&it, c, 0, c->len);
    while ((n = mb_seg_next(&it, &p)) > 0)
        for (size_t k = 0; k < n; k++)
            p[k] = (unsigned char)((pos++ * 131u + seed) & 0xff);
}

/* 1 when writable_ranges(c) is exactly want[0..n). */
static int ranges_are(const struct mb_chain *c, const struct mb_range *want, int n)
{
    struct mb_range got[16];
    int k = mb_chain_writable_ranges(c, got, 16);

    if (k != n) {
        fprintf(stderr, "  writable_ranges: %d ranges, wanted %d\n", k, n);
        for (int i = 0; i < k; i++)
            fprintf(stderr, "    [%zu, +%zu)\n", got[i].off, got[i].len);
        return 0;
    }
    for (int i = 0; i < n; i++)
        if (got[i].off != want[i].off || got[i].len != want[i].len) {
            fprintf(stderr, "  range %d: [%zu, +%zu), wanted [%zu, +%zu)\n", i, got[i].off, got[i].len, want[i].off,
                    want[i].len);
            return 0;
        }
    return 1;
}

/* is_writable agrees with the ranges: every range is writable, and one byte
 * either side of it (inside the chain, outside every range) is not. */
static int agrees(const struct mb_chain *c)
{
    struct mb_range r[16];
    int n = mb_chain_writable_ranges(c, r, 16);

    for (int i = 0; i < n; i++) {
        if (!mb_chain_is_writable(c, r[i].off, r[i].len))
            return 0;
        if (r[i].off > 0 && mb_chain_is_writable(c, r[i].off - 1, 1))
            return 0;
        if (r[i].off + r[i].len < c->len && mb_chain_is_writable(c, r[i].off + r[i].len, 1))
            return 0;
    }
    return 1;
}

static void noop_free(void *base, void *arg)
{
    (void)base;
    (void)arg;
}

/* ---- the rule ------------------------------------------------------------- */

static void test_sole_owner(void)
{
    struct mb_chain c = MB_CHAIN_INIT;
    REQUIRE(mb_append_inline(&c, 100) != NULL);
    REQUIRE(mb_append_pages(&c, 300, 9000) == 0);
    REQUIRE(mb_append_cluster(&c, 500) != NULL);
    REQUIRE(mb_append_inline(&c, 50) != NULL);
    fill(&c, 1);
    CHECK(mb_chain_is_writable(&c, 0, c.len));
    struct mb_range all[] = {{0, 9650}};
    CHECK(ranges_are(&c, all, 1));
    CHECK(agrees(&c));
    /* the room after a sole owner's tail may be filled in place */
    unsigned char *p = mb_chain_extend_tail(&c, 8);
    CHECK(p != NULL && p == mb_store_ptr(c.tail->st, 50));
    CHECK_EQ(c.len, 9658);
    CHECK_EQ(c.tail->len, 58);
    CHECK(mb_chain_extend_tail(&c, MB_INLINE_SIZE) == NULL); /* more than the inline store has left */
    CHECK_EQ(c.len, 9658);
    mb_chain_free(&c);
    struct mb_range none[1];
    CHECK_EQ(mb_chain_writable_ranges(&c, none, 1), 0);
    CHECK(mb_chain_is_writable(&c, 0, 0));
    CHECK(!mb_chain_is_writable(&c, 0, 1));
    CHECK(mb_chain_extend_tail(&c, 4) == NULL);
}

static void test_copy_ref_shares(void)
{
    struct mb_chain c = MB_CHAIN_INIT, d = MB_CHAIN_INIT;
    REQUIRE(mb_append_inline(&c, 100) != NULL);
    REQUIRE(mb_append_pages(&c, 0, 9000) == 0);
    REQUIRE(mb_append_cluster(&c, 500) != NULL);
    REQUIRE(mb_append_inline(&c, 20) != NULL);
    fill(&c, 2);
    /* share 10 bytes of the page link: the whole page store is out, for
     * both chains; the inline and cluster links stay c's */
    REQUIRE(mb_chain_copy_ref(&d, &c, 200, 10) == 0);
    struct mb_range want[] = {{0, 100}, {9100, 520}};
    CHECK(ranges_are(&c, want, 2));
    CHECK(agrees(&c));
    CHECK(!mb_chain_is_writable(&c, 5000, 1)); /* not shared itself, but below the shared mark */
    CHECK(!mb_chain_is_writable(&d, 0, 1));
    CHECK(ranges_are(&d, NULL, 0));
    /* the copy goes: all references are c's again */
    mb_chain_free(&d);
    CHECK(mb_chain_is_writable(&c, 0, c.len));
    /* sharing the tail stops room writes after it */
    REQUIRE(mb_chain_copy_ref(&d, &c, c.len - 1, 1) == 0);
    CHECK(mb_chain_extend_tail(&c, 1) == NULL);
    CHECK(!mb_chain_is_writable(&c, c.len - 1, 1));
    mb_chain_free(&d);
    CHECK(mb_chain_extend_tail(&c, 1) != NULL);
    mb_chain_free(&c);
}

static void test_split(void)
{
    struct mb_chain c = MB_CHAIN_INIT, t = MB_CHAIN_INIT, d = MB_CHAIN_INIT;
    REQUIRE(mb_append_pages(&c, 0, 3 * MB_PAGE_SIZE) == 0);
    fill(&c, 3);
    REQUIRE(mb_chain_split(&c, 5000, &t) == 0);
    /* two chains, one store, disjoint bytes: each may write its own */
    struct mb_range wc[] = {{0, 5000}}, wt[] = {{0, 3 * MB_PAGE_SIZE - 5000}};
    CHECK(ranges_are(&c, wc, 1));
    CHECK(ranges_are(&t, wt, 1));
    /* but not the room after c's tail, which t covers */
    CHECK(mb_chain_extend_tail(&c, 4) == NULL);
    /* t shares a byte: from then on neither half may write, wherever the
     * shared byte lies (the shared mark is one offset per store) */
    REQUIRE(mb_chain_copy_ref(&d, &t, 100, 1) == 0);
    CHECK(!mb_chain_is_writable(&c, 0, 1));
    CHECK(!mb_chain_is_writable(&t, 0, 1));
    CHECK(!mb_chain_is_writable(&t, t.len - 1, 1)); /* past the shared byte, but in a link that starts below it */
    mb_chain_free(&d);
    /* the copy is gone, yet two chains still hold the store: still no */
    CHECK(!mb_chain_is_writable(&c, 0, 1));
    /* joined again: one link, one reference, the chain's own */
    mb_chain_concat(&c, &t);
    CHECK_EQ(c.nlinks, 1);
    CHECK(mb_chain_is_writable(&c, 0, c.len));
    mb_chain_free(&c);
}

/* A run of a chain's own links to one store (what TX cuts records from)
 * is the chain's when the links cover disjoint, increasing bytes and are all
 * the store's references; a chain that holds the same bytes twice shares
 * them with itself. */
static void test_runs(void)
{
    struct mb_chain c = MB_CHAIN_INIT, t = MB_CHAIN_INIT, d = MB_CHAIN_INIT;
    REQUIRE(mb_append_pages(&c, 0, 2 * MB_PAGE_SIZE) == 0);
    fill(&c, 4);
    /* share then drop a copy: the mark stays, so only refs can answer */
    REQUIRE(mb_chain_copy_ref(&d, &c, 0, c.len) == 0);
    mb_chain_free(&d);
    REQUIRE(mb_chain_split(&c, 100, &t) == 0);
    mb_chain_trim_head(&t, 50);
    mb_chain_concat(&c, &t); /* [0,100) and [150,8192): not adjacent, two links */
    CHECK_EQ(c.nlinks, 2);
    CHECK(mb_chain_is_writable(&c, 0, c.len)); /* refs 2 == the run's 2 links */
    struct mb_range all[] = {{0, 2 * MB_PAGE_SIZE - 50}};
    CHECK(ranges_are(&c, all, 1));
    /* another chain takes part of the run away: refs 2, run of 1 */
    REQUIRE(mb_chain_split(&c, 100, &t) == 0);
    CHECK(!mb_chain_is_writable(&c, 0, 1));
    CHECK(!mb_chain_is_writable(&t, 0, 1));
    mb_chain_concat(&c, &t);
    CHECK(mb_chain_is_writable(&c, 0, c.len));
    /* the same bytes twice in one chain */
    REQUIRE(mb_chain_copy_ref(&c, &c, 0, 100) == 0);
    CHECK(ranges_are(&c, NULL, 0));
    mb_chain_free(&c);

    /* the same holds when the bytes were never shared at all */
    REQUIRE(mb_append_pages(&c, 0, MB_PAGE_SIZE) == 0);
    REQUIRE(mb_chain_split(&c, 10, &t) == 0);
    mb_chain_trim_head(&t, 10);
    mb_chain_concat(&c, &t);
    CHECK_EQ(c.nlinks, 2);
    CHECK(mb_chain_is_writable(&c, 0, c.len));
    mb_chain_free(&c);
}

static void test_rdonly_and_guarded(void)
{
    static unsigned char mem[300], mem2[20];
    struct mb_chain c = MB_CHAIN_INIT, d = MB_CHAIN_INIT;
    REQUIRE(mb_append_inline(&c, 10) != NULL);
    REQUIRE(mb_append_ext(&c, mem, sizeof mem, MB_STF_RDONLY, noop_free, NULL) != NULL);
    REQUIRE(mb_append_ext(&c, mem2, sizeof mem2, 0, noop_free, NULL) != NULL);
    struct mb_range want[] = {{0, 10}, {310, 20}};
    CHECK(ranges_are(&c, want, 2));
    CHECK(agrees(&c));
    CHECK(!mb_chain_is_writable(&c, 10, 1)); /* read-only, though c holds its only reference */
    mb_chain_free(&c);

    /* read-only marked later, and the room after it */
    REQUIRE(mb_append_inline(&c, 10) != NULL);
    mb_store_set_rdonly(c.head->st);
    CHECK(!mb_chain_is_writable(&c, 0, 1));
    CHECK(mb_chain_extend_tail(&c, 4) == NULL);
    mb_chain_free(&c);

    /* guarded: stays out even after the sharer lets go */
    mb__guard_set(1);
    REQUIRE(mb_append_pages(&c, 0, MB_PAGE_SIZE) == 0);
    REQUIRE(mb_chain_copy_ref(&d, &c, 0, 1) == 0);
    mb_chain_free(&d);
    CHECK(!mb_chain_is_writable(&c, 0, 1));
    CHECK(ranges_are(&c, NULL, 0));
    mb_chain_free(&c);
    mb__guard_set(0);
}

/* More ranges than asked for: the rest counts as not writable. */
static void test_ranges_limit(void)
{
    struct mb_chain c = MB_CHAIN_INIT, keep = MB_CHAIN_INIT;
    for (int i = 0; i < 6; i++) {
        REQUIRE(mb_append_inline(&c, 10) != NULL);
        REQUIRE(mb_append_inline(&c, 10) != NULL);
        REQUIRE(mb_chain_copy_ref(&keep, &c, c.len - 10, 10) == 0); /* every other link shared */
    }
    struct mb_range r[3];
    CHECK_EQ(mb_chain_writable_ranges(&c, r, 3), 3);
    CHECK(r[0].off == 0 && r[0].len == 10 && r[1].off == 20 && r[2].off == 40 && r[2].len == 10);
    CHECK_EQ(mb_chain_writable_ranges(&c, r, 0), 0);
    mb_chain_free(&keep);
    CHECK_EQ(mb_chain_writable_ranges(&c, r, 3), 1); /* adjacent writable links join */
    CHECK(r[0].off == 0 && r[0].len == 120);
    mb_chain_free(&c);
}

/* ---- the segment iterator ------------------------------------------------ */

static int sum_fn(void *arg, const void *p, size_t n)
{
    uint64_t *s = arg;
    for (size_t i = 0; i < n; i++)
        s[0] += ((const unsigned char *)p)[i];
    s[1] += n;
    s[2]++;
    return s[3] != 0 && s[2] == s[3] ? 7 : 0;
}

static void test_iterator(void)
{
    struct mb_chain c = MB_CHAIN_INIT;
    REQUIRE(mb_append_inline(&c, 100) != NULL);
    REQUIRE(mb_append_pages(&c, 4000, 3 * MB_PAGE_SIZE) == 0);
    REQUIRE(mb_append_cluster(&c, 700) != NULL);
    fill(&c, 5);
    size_t total = c.len;
    unsigned char *flat = malloc(total);
    REQUIRE(flat != NULL);
    REQUIRE(mb_chain_copy_out(&c, 0, total, flat) == 0);

    /* every sub-range: segments concatenate to the bytes, none is empty,
     * none crosses a page of the page vector */
    size_t offs[] = {0, 1, 99, 100, 196, 197, 5000, total - 1, total};
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        for (size_t len = 0; offs[i] + len <= total; len = len * 3 + 1) {
            struct mb_seg_iter it;
            unsigned char *p;
            size_t n, pos = offs[i];
            int ok = 1;
            REQUIRE(mb_seg_iter_init(&it, &c, offs[i], len) == 0);
            while ((n = mb_seg_next(&it, &p)) > 0) {
                ok &= memcmp(p, flat + pos, n) == 0;
                ok &= ((uintptr_t)p & (MB_PAGE_SIZE - 1)) + n <= MB_PAGE_SIZE || n <= 700;
                pos += n;
            }
            CHECK(ok);
            CHECK_EQ(pos, offs[i] + len);
            CHECK_EQ(mb_seg_next(&it, &p), 0);
        }
    }
    struct mb_seg_iter it;
    CHECK_EQ(mb_seg_iter_init(&it, &c, total, 1), -ERANGE);
    unsigned char *p;
    CHECK_EQ(mb_seg_next(&it, &p), 0);
    CHECK_EQ(mb_seg_iter_init(&it, &c, 1, SIZE_MAX), -ERANGE);

    /* iovecs two at a time resume where they stopped and add up */
    struct iovec iov[2];
    size_t bytes, pos = 10;
    int n, calls = 0;
    mb_seg_iter_init(&it, &c, 10, total - 10);
    while ((n = mb_seg_iovec(&it, iov, 2, &bytes)) > 0) {
        size_t sum = 0;
        for (int k = 0; k < n; k++) {
            CHECK(memcmp(iov[k].iov_base, flat + pos + sum, iov[k].iov_len) == 0);
            sum += iov[k].iov_len;
        }
        CHECK_EQ(sum, bytes);
        pos += bytes;
        calls++;
    }
    CHECK_EQ(pos, total);
    CHECK(calls >= 2);
    CHECK_EQ(mb_seg_iovec(&it, iov, 0, &bytes), -EINVAL);
    /* the whole range in one go merges what to_iovec merges */
    struct iovec big[64];
    mb_seg_iter_init(&it, &c, 0, total);
    CHECK_EQ(mb_seg_iovec(&it, big, 64, &bytes), mb_chain_iovec_count(&c, 0, total));
    CHECK_EQ(bytes, total);

    /* apply: every byte once, in order; a non-zero return stops the walk */
    uint64_t s[4] = {0, 0, 0, 0}, want = 0;
    for (size_t i = 3; i < total - 3; i++)
        want += flat[i];
    CHECK_EQ(mb_chain_apply(&c, 3, total - 6, sum_fn, s), 0);
    CHECK_EQ(s[0], want);
    CHECK_EQ(s[1], total - 6);
    uint64_t stop[4] = {0, 0, 0, 2};
    CHECK_EQ(mb_chain_apply(&c, 0, total, sum_fn, stop), 7);
    CHECK_EQ(stop[2], 2);
    CHECK_EQ(mb_chain_apply(&c, total, 1, sum_fn, s), -ERANGE);
    free(flat);
    mb_chain_free(&c);
}

/* ---- the receive buffer -------------------------------------------------- */

/* "Reads" n bytes of a pattern into the reserved space. */
static size_t fake_read(struct iovec *iov, int n, size_t want, unsigned char seed)
{
    size_t done = 0;
    for (int i = 0; i < n && done < want; i++) {
        size_t k = iov[i].iov_len < want - done ? iov[i].iov_len : want - done;
        for (size_t j = 0; j < k; j++)
            ((unsigned char *)iov[i].iov_base)[j] = (unsigned char)(seed + done + j);
        done += k;
    }
    return done;
}

static void test_rcvbuf(void)
{
    struct mb_rcvbuf rb;
    struct mb_chain got = MB_CHAIN_INIT, user = MB_CHAIN_INIT;
    struct iovec iov[8];
    int n;

    mb_rcvbuf_init(&rb, 4 * MB_PAGE_SIZE);
    CHECK_EQ(mb_rcvbuf_reserve(&rb, iov, 0), -EINVAL);
    n = mb_rcvbuf_reserve(&rb, iov, 8);
    REQUIRE(n > 0);
    CHECK_EQ(rb.fill.len, 4 * MB_PAGE_SIZE);
    size_t r = fake_read(iov, n, 1000, 1);
    CHECK_EQ(mb_rcvbuf_commit(&rb, r, &got), 0);
    CHECK_EQ(got.len, 1000);
    CHECK_EQ(rb.fill.len, 4 * MB_PAGE_SIZE - 1000);
    CHECK_EQ(mb_chain_byte(&got, 999), (unsigned char)(1 + 999));
    CHECK_EQ(mb_rcvbuf_commit(&rb, 0, &got), 0);
    CHECK_EQ(mb_rcvbuf_commit(&rb, rb.fill.len + 1, &got), -EINVAL);

    /* the user shares what arrived: the space after it is still the
     * buffer's, so the next read goes on in the same store, right after */
    REQUIRE(mb_chain_copy_ref(&user, &got, 0, got.len) == 0);
    unsigned char *end = (unsigned char *)iov[0].iov_base + 1000;
    n = mb_rcvbuf_reserve(&rb, iov, 8);
    REQUIRE(n > 0);
    CHECK(iov[0].iov_base == end);
    r = fake_read(iov, n, 500, 2);
    CHECK_EQ(mb_rcvbuf_commit(&rb, r, &got), 0);
    CHECK_EQ(got.nlinks, 1); /* adjacent bytes of one store: one link */
    CHECK(!mb_chain_is_writable(&got, 0, 1000)); /* shared */
    /* one link, judged whole: it starts below the shared mark */
    CHECK(!mb_chain_is_writable(&got, 1000, 500));
    /* cut off (as the record layer cuts a record), the new bytes are ours */
    struct mb_chain rec = MB_CHAIN_INIT;
    REQUIRE(mb_chain_split(&got, 1000, &rec) == 0);
    CHECK(mb_chain_is_writable(&rec, 0, rec.len));
    CHECK(!mb_chain_is_writable(&got, 0, 1));
    mb_chain_concat(&got, &rec);

    /* the space fills up: a fresh store */
    n = mb_rcvbuf_reserve(&rb, iov, 8);
    r = fake_read(iov, n, rb.fill.len, 3);
    CHECK_EQ(mb_rcvbuf_commit(&rb, r, &got), 0);
    CHECK_EQ(rb.fill.len, 0);
    n = mb_rcvbuf_reserve(&rb, iov, 8);
    CHECK(n > 0);
    CHECK_EQ(rb.fill.len, 4 * MB_PAGE_SIZE);
    mb_chain_free(&user);
    mb_chain_free(&got);

    /* a user marks the store read-only: the rest of it is abandoned */
    n = mb_rcvbuf_reserve(&rb, iov, 8);
    r = fake_read(iov, n, 10, 4);
    CHECK_EQ(mb_rcvbuf_commit(&rb, r, &got), 0);
    end = (unsigned char *)iov[0].iov_base + 10;
    mb_store_set_rdonly(got.head->st);
    n = mb_rcvbuf_reserve(&rb, iov, 8);
    REQUIRE(n > 0);
    CHECK(iov[0].iov_base != end);
    CHECK_EQ(rb.fill.len, 4 * MB_PAGE_SIZE);
    mb_chain_free(&got);

    /* guard mode: sharing delivered bytes write-protects the whole store */
    mb__guard_set(1);
    n = mb_rcvbuf_reserve(&rb, iov, 8);
    r = fake_read(iov, n, 10, 5);
    CHECK_EQ(mb_rcvbuf_commit(&rb, r, &got), 0);
    end = (unsigned char *)iov[0].iov_base + 10;
    REQUIRE(mb_chain_copy_ref(&user, &got, 0, 10) == 0);
    n = mb_rcvbuf_reserve(&rb, iov, 8);
    REQUIRE(n > 0);
    CHECK(iov[0].iov_base != end);
    CHECK(mb_chain_is_writable(&rb.fill, 0, rb.fill.len));
    mb_chain_free(&user);
    mb_chain_free(&got);
    mb__guard_set(0);

    /* the default chunk */
    mb_rcvbuf_free(&rb);
    CHECK_EQ(rb.fill.len, 0);
    struct mb_rcvbuf zero = MB_RCVBUF_INIT;
    CHECK(mb_rcvbuf_reserve(&zero, iov, 8) > 0);
    CHECK_EQ(zero.fill.len, MB_RCVBUF_CHUNK);
    mb_rcvbuf_free(&zero);
}

int main(void)
{
    TEST_RUN(test_sole_owner);
    TEST_RUN(test_copy_ref_shares);
    TEST_RUN(test_split);
    TEST_RUN(test_runs);
    TEST_RUN(test_rdonly_and_guarded);
    TEST_RUN(test_ranges_limit);
    TEST_RUN(test_iterator);
    TEST_RUN(test_rcvbuf);
    CHECK_EQ(mb_pool_shutdown(), 0);
    return test_summary();
}
