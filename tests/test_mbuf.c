/*
 * tests/test_mbuf.c - unit tests for every buffer-chain operation.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "mbuf/store.h" /* white-box: reference counts, flags, kinds */
#include "rpctls/mbuf.h"
#include "test.h"

static unsigned char pat(size_t i, unsigned seed)
{
    return (unsigned char)((i * 131u + seed * 7u + (i >> 8)) & 0xff);
}

/* Writes pattern bytes into every byte of c (c must be writable). */
static void fill(struct mb_chain *c, unsigned seed)
{
    size_t pos = 0;
    for (struct mb *m = c->head; m; m = m->next)
        for (size_t k = 0; k < m->len; k++)
            *mb_store_ptr(m->st, m->off + k) = pat(pos++, seed);
}

/* 1 when [0, c->len) equals exp, checked both by copy_out and by byte. */
static int chain_eq(const struct mb_chain *c, const unsigned char *exp, size_t len)
{
    if (c->len != len || mb_chain_check(c) != 0)
        return 0;
    unsigned char *buf = malloc(len ? len : 1);
    int ok = mb_chain_copy_out(c, 0, len, buf) == 0 && memcmp(buf, exp, len) == 0;
    free(buf);
    for (size_t i = 0; ok && i < len; i += 1 + i / 7)
        ok = mb_chain_byte(c, i) == exp[i];
    return ok;
}

static unsigned char *flat(const struct mb_chain *c)
{
    unsigned char *b = malloc(c->len ? c->len : 1);
    mb_chain_copy_out(c, 0, c->len, b);
    return b;
}

static struct mb_pool_stats stats(void)
{
    struct mb_pool_stats s;
    mb_pool_get_stats(&s);
    return s;
}

static int ext_calls;
static void *ext_last_base;
static void ext_free(void *base, void *arg)
{
    ext_calls++;
    ext_last_base = base;
    (void)arg;
}

/* ---- storage ------------------------------------------------------------ */

static void test_inline_cluster(void)
{
    struct mb_chain c = MB_CHAIN_INIT;
    CHECK(mb_append_inline(&c, 0) == NULL);
    CHECK(mb_append_inline(&c, MB_INLINE_SIZE + 1) == NULL);
    CHECK(mb_append_cluster(&c, 0) == NULL);
    CHECK_EQ(c.len, 0);
    CHECK(c.head == NULL && c.tail == NULL);

    struct mb *a = mb_append_inline(&c, 100);
    REQUIRE(a);
    CHECK_EQ(a->st->kind, MB_ST_INLINE);
    CHECK_EQ(a->off, 0);
    CHECK_EQ(a->len, 100);
    CHECK_EQ(atomic_load(&a->st->refs), 1);
    CHECK(mb_store_ptr(a->st, 10) == a->st->u.data + 10);
    CHECK_EQ(mb_store_contig(a->st, 10), MB_INLINE_SIZE - 10);
    struct mb *b = mb_append_cluster(&c, 10000);
    REQUIRE(b);
    CHECK_EQ(b->st->kind, MB_ST_CLUSTER);
    CHECK_EQ(b->st->size, 10000);
    CHECK(mb_store_ptr(b->st, 5000) == b->st->u.ext.base + 5000);
    CHECK_EQ(mb_store_contig(b->st, 5000), 5000);
    CHECK_EQ(mb_store_contig(b->st, 10000), 0);
    CHECK_EQ(c.len, 10100);
    CHECK_EQ(c.nlinks, 2);
    CHECK(c.head == a && c.tail == b && a->next == b);
    CHECK_EQ(mb_chain_check(&c), 0);
    CHECK(mb_chain_is_writable(&c, 0, c.len));
    fill(&c, 1);
    CHECK_EQ(mb_chain_byte(&c, 99), pat(99, 1));
    CHECK_EQ(mb_chain_byte(&c, 100), pat(100, 1));
    CHECK_EQ(mb_chain_byte(&c, 10099), pat(10099, 1));
    CHECK_EQ(mb_chain_byte(&c, 10100), -ERANGE);
    CHECK_EQ(stats().stores_in_use, 2);
    CHECK_EQ(stats().links_in_use, 2);
    mb_chain_free(&c);
    CHECK_EQ(c.len, 0);
    CHECK_EQ(c.nlinks, 0);
    CHECK(c.head == NULL && c.tail == NULL);
    CHECK_EQ(stats().stores_in_use, 0);
    CHECK_EQ(stats().links_in_use, 0);
}

static void test_ext(void)
{
    static unsigned char mem[3000];
    for (size_t i = 0; i < sizeof(mem); i++)
        mem[i] = pat(i, 2);
    struct mb_chain c = MB_CHAIN_INIT, d = MB_CHAIN_INIT;
    ext_calls = 0;
    CHECK(mb_append_ext(&c, NULL, 10, 0, ext_free, NULL) == NULL);
    CHECK(mb_append_ext(&c, mem, 0, 0, ext_free, NULL) == NULL);
    struct mb *m = mb_append_ext(&c, mem, sizeof(mem), MB_STF_RDONLY, ext_free, &c);
    REQUIRE(m);
    CHECK_EQ(m->st->kind, MB_ST_EXT);
    CHECK(m->st->flags & MB_STF_RDONLY);
    CHECK(mb_store_ptr(m->st, 7) == mem + 7);
    CHECK(!mb_chain_is_writable(&c, 0, 1));
    CHECK(chain_eq(&c, mem, sizeof(mem)));
    CHECK_EQ(mb_chain_copy_ref(&d, &c, 100, 200), 0);
    CHECK_EQ(atomic_load(&m->st->refs), 2);
    mb_chain_free(&c);
    CHECK_EQ(ext_calls, 0);
    CHECK(chain_eq(&d, mem + 100, 200));
    mb_chain_free(&d);
    CHECK_EQ(ext_calls, 1);
    CHECK(ext_last_base == mem);
    mb_chain_free(&d); /* freeing an empty chain is a no-op */
    CHECK_EQ(ext_calls, 1);

    /* A writable ext store with one reference is writable. */
    m = mb_append_ext(&c, mem, 100, 0, NULL, NULL);
    REQUIRE(m);
    CHECK(mb_chain_is_writable(&c, 0, 100));
    mb_chain_free(&c);
    CHECK_EQ(ext_calls, 1);
}

static void test_pages(void)
{
    struct mb_chain c = MB_CHAIN_INIT;
    CHECK_EQ(mb_append_pages(&c, MB_PAGE_SIZE, 10), -EINVAL);
    CHECK_EQ(mb_append_pages(&c, 0, 0), 0);
    CHECK_EQ(c.nlinks, 0);

    /* first_off != 0 and a length that crosses page boundaries */
    CHECK_EQ(mb_append_pages(&c, 1000, 10000), 0);
    REQUIRE(c.nlinks == 1);
    struct mb *m = c.head;
    CHECK_EQ(m->st->kind, MB_ST_PAGES);
    CHECK_EQ(m->off, 1000);
    CHECK_EQ(m->len, 10000);
    CHECK_EQ(m->st->npages, 3); /* 1000 + 10000 = 11000 bytes -> 3 pages */
    CHECK_EQ(m->st->size, 3 * MB_PAGE_SIZE);
    for (uint32_t i = 0; i < m->st->npages; i++)
        CHECK(((uintptr_t)m->st->u.pages[i] & (MB_PAGE_SIZE - 1)) == 0);
    for (size_t k = 0; k < m->st->size; k += 777)
        CHECK(mb_store_ptr(m->st, k) == (unsigned char *)m->st->u.pages[k / MB_PAGE_SIZE] + k % MB_PAGE_SIZE);
    CHECK_EQ(mb_store_contig(m->st, 1000), MB_PAGE_SIZE - 1000);
    CHECK_EQ(mb_store_contig(m->st, MB_PAGE_SIZE), MB_PAGE_SIZE);
    CHECK_EQ(mb_store_contig(m->st, 3 * MB_PAGE_SIZE - 1), 1);
    CHECK_EQ(stats().pages_in_use, 3);
    fill(&c, 3);
    for (size_t i = 0; i < 10000; i += 999)
        CHECK_EQ(mb_chain_byte(&c, i), pat(i, 3));
    mb_chain_free(&c);
    CHECK_EQ(stats().pages_in_use, 0);

    /* More than one store's worth: several links, later ones at offset 0. */
    size_t big = (size_t)MB_PV_MAXPAGES * MB_PAGE_SIZE * 2 + 5000;
    CHECK_EQ(mb_append_pages(&c, 100, big), 0);
    CHECK_EQ(c.len, big);
    CHECK_EQ(c.nlinks, 3);
    CHECK_EQ(c.head->off, 100);
    CHECK_EQ(c.head->len, (size_t)MB_PV_MAXPAGES * MB_PAGE_SIZE - 100);
    CHECK_EQ(c.head->next->off, 0);
    CHECK_EQ(c.head->next->st->npages, MB_PV_MAXPAGES);
    CHECK_EQ(c.tail->st->npages, 2);
    CHECK_EQ(mb_chain_check(&c), 0);
    CHECK_EQ(stats().pages_in_use, 2 * MB_PV_MAXPAGES + 2);
    mb_chain_free(&c);
    CHECK_EQ(stats().pages_in_use, 0);

    void *p = mb_page_alloc();
    REQUIRE(p);
    CHECK(((uintptr_t)p & (MB_PAGE_SIZE - 1)) == 0);
    memset(p, 0xab, MB_PAGE_SIZE);
    CHECK_EQ(stats().pages_in_use, 1);
    mb_page_free(p);
    mb_page_free(NULL);
    CHECK_EQ(stats().pages_in_use, 0);
}

/* ---- copies ------------------------------------------------------------- */

/* inline(50) + pages(first_off 3000, 9000) + cluster(700): 9750 bytes */
static void build_mixed(struct mb_chain *c, unsigned seed)
{
    mb_append_inline(c, 50);
    mb_append_pages(c, 3000, 9000);
    mb_append_cluster(c, 700);
    fill(c, seed);
}

static void test_copy_ref(void)
{
    struct mb_chain c = MB_CHAIN_INIT, d = MB_CHAIN_INIT;
    build_mixed(&c, 4);
    REQUIRE(c.len == 9750 && c.nlinks == 3);
    unsigned char *exp = flat(&c);
    uint64_t pages = stats().pages_in_use;

    CHECK_EQ(mb_chain_copy_ref(&d, &c, 0, c.len + 1), -ERANGE);
    CHECK_EQ(mb_chain_copy_ref(&d, &c, c.len + 1, 0), -ERANGE);
    CHECK_EQ(mb_chain_copy_ref(&d, &c, SIZE_MAX, 2), -ERANGE);
    CHECK_EQ(mb_chain_copy_ref(&d, &c, 5, 0), 0);
    CHECK_EQ(mb_chain_copy_ref(&d, &c, c.len, 0), 0);
    CHECK_EQ(d.len, 0);

    /* off in the middle of link 0, end in the middle of link 2 */
    CHECK_EQ(mb_chain_copy_ref(&d, &c, 10, 9700), 0);
    CHECK_EQ(d.nlinks, 3);
    CHECK(chain_eq(&d, exp + 10, 9700));
    CHECK_EQ(stats().pages_in_use, pages); /* no new pages: nothing copied */
    struct mb *cm = c.head, *dm = d.head;
    for (; cm && dm; cm = cm->next, dm = dm->next) {
        CHECK(cm->st == dm->st);
        CHECK_EQ(atomic_load(&cm->st->refs), 2);
    }
    CHECK(mb_store_ptr(d.head->st, d.head->off) == mb_store_ptr(c.head->st, 10));
    CHECK(!mb_chain_is_writable(&c, 0, 1));
    CHECK(!mb_chain_is_writable(&d, 0, 1));

    /* exactly at link boundaries: [50, 9050) is the whole page link */
    struct mb_chain e = MB_CHAIN_INIT;
    CHECK_EQ(mb_chain_copy_ref(&e, &c, 50, 9000), 0);
    CHECK_EQ(e.nlinks, 1);
    CHECK_EQ(e.head->off, 3000);
    CHECK(e.head->st == c.head->next->st);
    CHECK_EQ(atomic_load(&e.head->st->refs), 3);
    CHECK(chain_eq(&e, exp + 50, 9000));
    /* appending to a non-empty dst; dst == src works too */
    CHECK_EQ(mb_chain_copy_ref(&e, &e, 0, 100), 0);
    CHECK_EQ(e.nlinks, 2);
    CHECK_EQ(e.len, 9100);
    CHECK_EQ(mb_chain_check(&e), 0);
    CHECK_EQ(atomic_load(&e.head->st->refs), 4);
    mb_chain_free(&e);
    CHECK_EQ(atomic_load(&c.head->next->st->refs), 2);

    mb_chain_free(&d);
    for (cm = c.head; cm; cm = cm->next)
        CHECK_EQ(atomic_load(&cm->st->refs), 1);
    CHECK(mb_chain_is_writable(&c, 0, c.len)); /* back to one reference */
    CHECK(chain_eq(&c, exp, 9750));
    mb_chain_free(&c);
    free(exp);
    CHECK_EQ(stats().pages_in_use, 0);
}

static void test_copy_deep_and_pages(void)
{
    struct mb_chain c = MB_CHAIN_INIT, d = MB_CHAIN_INIT, p = MB_CHAIN_INIT;
    build_mixed(&c, 5);
    unsigned char *exp = flat(&c);
    CHECK_EQ(mb_chain_copy_deep(&d, &c, 0, c.len + 1), -ERANGE);
    CHECK_EQ(mb_chain_copy_deep(&d, &c, 3, 0), 0);
    CHECK_EQ(d.len, 0);

    CHECK_EQ(mb_chain_copy_deep(&d, &c, 20, 100), 0); /* small: inline */
    CHECK_EQ(d.nlinks, 1);
    CHECK_EQ(d.head->st->kind, MB_ST_INLINE);
    CHECK(chain_eq(&d, exp + 20, 100));
    CHECK_EQ(mb_chain_copy_deep(&d, &c, 40, 9000), 0); /* large: pages */
    CHECK_EQ(d.tail->st->kind, MB_ST_PAGES);
    CHECK_EQ(d.len, 9100);
    CHECK(mb_chain_is_writable(&d, 0, d.len));
    CHECK(mb_chain_is_writable(&c, 0, c.len)); /* source not shared */
    for (struct mb *m = c.head; m; m = m->next)
        CHECK_EQ(atomic_load(&m->st->refs), 1);
    unsigned char *got = flat(&d);
    CHECK(memcmp(got, exp + 20, 100) == 0);
    CHECK(memcmp(got + 100, exp + 40, 9000) == 0);
    free(got);
    /* writing the copy leaves the source alone */
    fill(&d, 99);
    CHECK(chain_eq(&c, exp, c.len));

    CHECK_EQ(mb_chain_copy_to_pages(&p, &c, 0, c.len + 1), -ERANGE);
    CHECK_EQ(mb_chain_copy_to_pages(&p, &c, 7, 30), 0); /* small still goes to pages */
    CHECK_EQ(p.head->st->kind, MB_ST_PAGES);
    CHECK_EQ(p.head->off, 0);
    mb_chain_free(&p);
    CHECK_EQ(mb_chain_copy_to_pages(&p, &c, 0, c.len), 0);
    CHECK(chain_eq(&p, exp, c.len));
    for (struct mb *m = p.head; m; m = m->next) {
        CHECK_EQ(m->st->kind, MB_ST_PAGES);
        CHECK_EQ(m->off % MB_PAGE_SIZE, 0);
    }
    CHECK_EQ(p.head->st->npages, 3); /* 9750 bytes from page offset 0 */
    CHECK(mb_chain_is_writable(&p, 0, p.len));
    mb_chain_free(&c);
    mb_chain_free(&d);
    mb_chain_free(&p);
    free(exp);
}

static void test_copy_out(void)
{
    struct mb_chain c = MB_CHAIN_INIT;
    build_mixed(&c, 6);
    unsigned char *exp = flat(&c), buf[9750];
    CHECK_EQ(mb_chain_copy_out(&c, 0, 9751, buf), -ERANGE);
    CHECK_EQ(mb_chain_copy_out(&c, 9751, 0, buf), -ERANGE);
    CHECK_EQ(mb_chain_copy_out(&c, 9750, 0, buf), 0);
    CHECK_EQ(mb_chain_copy_out(&c, 49, 2, buf), 0); /* across the first boundary */
    CHECK(memcmp(buf, exp + 49, 2) == 0);
    CHECK_EQ(mb_chain_copy_out(&c, 1096 + 50, 1, buf), 0); /* last byte of first page */
    CHECK(buf[0] == exp[1146]);
    CHECK_EQ(mb_chain_copy_out(&c, 9049, 701, buf), 0);
    CHECK(memcmp(buf, exp + 9049, 701) == 0);
    mb_chain_free(&c);
    free(exp);
}

static void test_concat(void)
{
    struct mb_chain a = MB_CHAIN_INIT, b = MB_CHAIN_INIT;
    mb_chain_concat(&a, &b);
    CHECK(a.head == NULL && a.len == 0);
    mb_append_inline(&b, 10);
    fill(&b, 7);
    mb_chain_concat(&a, &b); /* into empty */
    CHECK_EQ(a.len, 10);
    CHECK_EQ(a.nlinks, 1);
    CHECK(b.head == NULL && b.tail == NULL && b.len == 0 && b.nlinks == 0);
    mb_append_cluster(&b, 20);
    mb_append_inline(&b, 30);
    mb_chain_concat(&a, &b);
    CHECK_EQ(a.len, 60);
    CHECK_EQ(a.nlinks, 3);
    CHECK_EQ(mb_chain_check(&a), 0);
    mb_chain_concat(&a, &b); /* empty src */
    CHECK_EQ(a.len, 60);
    mb_chain_free(&a);
}

/* ---- appending ---------------------------------------------------------- */

static void test_append_bytes(void)
{
    unsigned char src[20000];
    for (size_t i = 0; i < sizeof(src); i++)
        src[i] = pat(i, 8);
    struct mb_chain c = MB_CHAIN_INIT, r = MB_CHAIN_INIT;
    CHECK_EQ(mb_chain_append_bytes(&c, NULL, 0), 0);
    CHECK_EQ(mb_chain_append_bytes(&c, NULL, 3), -EINVAL);
    CHECK_EQ(mb_chain_append_bytes(&c, src, 10), 0); /* empty chain: new inline */
    CHECK_EQ(c.nlinks, 1);
    CHECK_EQ(c.head->st->kind, MB_ST_INLINE);
    CHECK_EQ(mb_chain_append_bytes(&c, src + 10, 20), 0); /* fills the tail's room */
    CHECK_EQ(c.nlinks, 1);
    CHECK_EQ(c.head->len, 30);
    CHECK(chain_eq(&c, src, 30));
    /* overflow the inline store: rest goes to new storage */
    CHECK_EQ(mb_chain_append_bytes(&c, src + 30, 300), 0);
    CHECK_EQ(c.head->len, MB_INLINE_SIZE);
    CHECK(chain_eq(&c, src, 330));
    CHECK_EQ(mb_chain_append_bytes(&c, src + 330, 19670), 0);
    CHECK(chain_eq(&c, src, 20000));

    /* a shared tail is never written: new storage instead */
    CHECK_EQ(mb_chain_copy_ref(&r, &c, 0, c.len), 0);
    unsigned n0 = c.nlinks;
    struct mb_store *tst = c.tail->st;
    size_t tend = c.tail->off + c.tail->len;
    REQUIRE(tend < tst->size);
    unsigned char before = *mb_store_ptr(tst, tend);
    CHECK_EQ(mb_chain_append_bytes(&c, "xyz", 3), 0);
    CHECK_EQ(c.nlinks, n0 + 1);
    CHECK(*mb_store_ptr(tst, tend) == before);
    CHECK(chain_eq(&r, src, 20000));
    CHECK_EQ(mb_chain_byte(&c, 20000), 'x');
    CHECK_EQ(mb_chain_byte(&c, 20002), 'z');
    mb_chain_free(&r);

    /* a read-only tail is never written either */
    static unsigned char ro[64];
    struct mb_chain e = MB_CHAIN_INIT;
    mb_append_ext(&e, ro, 32, MB_STF_RDONLY, NULL, NULL);
    CHECK_EQ(mb_chain_append_bytes(&e, "abc", 3), 0);
    CHECK_EQ(e.nlinks, 2);
    CHECK(ro[32] == 0 && ro[0] == 0);
    mb_chain_free(&e);
    mb_chain_free(&c);
}

static void test_append_pages_from_buf(void)
{
    size_t len = 3 * MB_PAGE_SIZE + 17;
    unsigned char *src = malloc(len);
    for (size_t i = 0; i < len; i++)
        src[i] = pat(i, 9);
    struct mb_chain c = MB_CHAIN_INIT;
    CHECK_EQ(mb_chain_append_pages_from_buf(&c, src, 0), 0);
    CHECK_EQ(c.len, 0);
    CHECK_EQ(mb_chain_append_pages_from_buf(&c, NULL, 5), -EINVAL);
    CHECK_EQ(mb_chain_append_pages_from_buf(&c, src, len), 0);
    CHECK_EQ(c.nlinks, 1);
    CHECK_EQ(c.head->st->kind, MB_ST_PAGES);
    CHECK_EQ(c.head->off, 0);
    CHECK_EQ(c.head->st->npages, 4);
    CHECK(chain_eq(&c, src, len));
    mb_chain_free(&c);
    free(src);
}

static void test_append_pages_from_fd(void)
{
    char path[] = "/tmp/test_mbuf_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    unlink(path);
    size_t flen = 300000; /* > 2 stores, > 64 pages: several preadv calls */
    unsigned char *src = malloc(flen);
    for (size_t i = 0; i < flen; i++)
        src[i] = pat(i, 10);
    REQUIRE(write(fd, src, flen) == (ssize_t)flen);

    struct mb_chain c = MB_CHAIN_INIT;
    CHECK_EQ(mb_chain_append_pages_from_fd(&c, fd, 0, 0), 0);
    CHECK_EQ(mb_chain_append_pages_from_fd(&c, fd, 1234, flen - 1234), 0);
    CHECK(chain_eq(&c, src + 1234, flen - 1234));
    mb_chain_free(&c);

    /* pos < 0: from the current position, which advances */
    REQUIRE(lseek(fd, 100, SEEK_SET) == 100);
    CHECK_EQ(mb_chain_append_pages_from_fd(&c, fd, -1, 5000), 0);
    CHECK_EQ(mb_chain_append_pages_from_fd(&c, fd, -1, 7000), 0);
    CHECK_EQ(lseek(fd, 0, SEEK_CUR), 12100);
    CHECK(chain_eq(&c, src + 100, 12000));

    /* short file: -EIO and the chain is unchanged, no pages leaked */
    uint64_t pages = stats().pages_in_use;
    unsigned n = c.nlinks;
    CHECK_EQ(mb_chain_append_pages_from_fd(&c, fd, (off_t)flen - 10, 11), -EIO);
    CHECK_EQ(mb_chain_append_pages_from_fd(&c, fd, (off_t)flen + 10, 1), -EIO);
    REQUIRE(lseek(fd, -20, SEEK_END) >= 0);
    CHECK_EQ(mb_chain_append_pages_from_fd(&c, fd, -1, 50), -EIO);
    CHECK_EQ(mb_chain_append_pages_from_fd(&c, -1, 0, 10), -EBADF);
    CHECK_EQ(c.nlinks, n);
    CHECK(chain_eq(&c, src + 100, 12000));
    CHECK_EQ(stats().pages_in_use, pages);
    mb_chain_free(&c);
    close(fd);
    free(src);
}

/* ---- split / trim ------------------------------------------------------- */

static void test_split(void)
{
    struct mb_chain c = MB_CHAIN_INIT, t = MB_CHAIN_INIT;
    build_mixed(&c, 11);
    unsigned char *exp = flat(&c);
    CHECK_EQ(mb_chain_split(&c, 9751, &t), -ERANGE);
    CHECK_EQ(mb_chain_split(&c, 9750, &t), 0); /* at the end: nothing moves */
    CHECK_EQ(c.len, 9750);
    CHECK_EQ(t.len, 0);

    /* on a link boundary: no new link, stores not shared */
    CHECK_EQ(mb_chain_split(&c, 50, &t), 0);
    CHECK_EQ(c.nlinks, 1);
    CHECK_EQ(t.nlinks, 2);
    CHECK(chain_eq(&c, exp, 50));
    CHECK(chain_eq(&t, exp + 50, 9700));
    CHECK(mb_chain_is_writable(&t, 0, t.len));
    mb_chain_concat(&c, &t);

    /* inside a link: both halves point into the store, over disjoint bytes
     * that each half may still write */
    CHECK_EQ(mb_chain_split(&c, 4000, &t), 0);
    CHECK_EQ(c.nlinks, 2);
    CHECK_EQ(t.nlinks, 2);
    CHECK(c.tail->st == t.head->st);
    CHECK_EQ(atomic_load(&t.head->st->refs), 2);
    CHECK(mb_chain_is_writable(&c, 3999, 1));
    CHECK(mb_chain_is_writable(&t, 0, 1));
    CHECK(mb_chain_is_writable(&c, 0, 50));
    CHECK(chain_eq(&c, exp, 4000));
    CHECK(chain_eq(&t, exp + 4000, 5750));

    /* at 0: everything moves, appended to a non-empty tail */
    struct mb_chain u = MB_CHAIN_INIT;
    mb_append_inline(&u, 5);
    fill(&u, 12);
    CHECK_EQ(mb_chain_split(&t, 0, &u), 0);
    CHECK_EQ(t.len, 0);
    CHECK(t.head == NULL && t.tail == NULL && t.nlinks == 0);
    CHECK_EQ(u.len, 5755);
    CHECK_EQ(u.nlinks, 3);
    CHECK_EQ(mb_chain_check(&u), 0);
    unsigned char *g = flat(&u);
    CHECK(memcmp(g + 5, exp + 4000, 5750) == 0);
    free(g);

    /* split inside the last link: tail pointer moves to the new link */
    struct mb_chain v = MB_CHAIN_INIT;
    CHECK_EQ(mb_chain_split(&u, u.len - 1, &v), 0);
    CHECK_EQ(v.len, 1);
    CHECK_EQ(v.nlinks, 1);
    CHECK_EQ(mb_chain_check(&u), 0);
    CHECK_EQ(mb_chain_byte(&v, 0), exp[9749]);
    mb_chain_free(&c);
    mb_chain_free(&u);
    mb_chain_free(&v);
    free(exp);
}

static void test_trim(void)
{
    struct mb_chain c = MB_CHAIN_INIT;
    build_mixed(&c, 13);
    unsigned char *exp = flat(&c);
    mb_chain_trim_head(&c, 0);
    mb_chain_trim_tail(&c, 0);
    CHECK(chain_eq(&c, exp, 9750));
    mb_chain_trim_head(&c, 10); /* partial first link */
    CHECK_EQ(c.nlinks, 3);
    CHECK(chain_eq(&c, exp + 10, 9740));
    mb_chain_trim_head(&c, 40); /* exactly the rest of the first link */
    CHECK_EQ(c.nlinks, 2);
    CHECK_EQ(c.head->off, 3000);
    CHECK(chain_eq(&c, exp + 50, 9700));
    mb_chain_trim_head(&c, 5000); /* off moves past page boundaries */
    CHECK_EQ(c.head->off, 8000);
    CHECK(chain_eq(&c, exp + 5050, 4700));
    mb_chain_trim_tail(&c, 700); /* exactly the last link */
    CHECK_EQ(c.nlinks, 1);
    CHECK(chain_eq(&c, exp + 5050, 4000));
    mb_chain_trim_tail(&c, 1);
    CHECK(chain_eq(&c, exp + 5050, 3999));
    mb_chain_trim_tail(&c, 100000); /* more than there is: empties */
    CHECK_EQ(c.len, 0);
    CHECK(c.head == NULL && c.tail == NULL && c.nlinks == 0);
    CHECK_EQ(stats().pages_in_use, 0);

    build_mixed(&c, 13);
    mb_chain_trim_head(&c, 100000);
    CHECK(c.head == NULL && c.tail == NULL && c.nlinks == 0 && c.len == 0);
    build_mixed(&c, 13);
    mb_chain_trim_tail(&c, 9700); /* leaves the 50-byte inline link only */
    CHECK_EQ(c.nlinks, 1);
    CHECK(c.head == c.tail);
    CHECK(chain_eq(&c, exp, 50));
    mb_chain_free(&c);
    free(exp);
}

/* ---- pullup ------------------------------------------------------------- */

static void test_pullup(void)
{
    struct mb_chain c = MB_CHAIN_INIT, r = MB_CHAIN_INIT;
    build_mixed(&c, 14);
    unsigned char *exp = flat(&c);
    CHECK(mb_chain_pullup(&c, c.len + 1) == NULL);
    CHECK(mb_chain_pullup(&c, MB_PAGE_SIZE + 1) == NULL);
    /* already contiguous: the pointer is into the existing storage */
    unsigned char *p = mb_chain_pullup(&c, 50);
    CHECK(p == c.head->st->u.data);
    CHECK_EQ(c.nlinks, 3);

    /* spans links, head writable with room: pulled into the head store */
    p = mb_chain_pullup(&c, 200);
    REQUIRE(p);
    CHECK(p == c.head->st->u.data);
    CHECK(memcmp(p, exp, 200) == 0);
    CHECK_EQ(c.head->len, 200);
    CHECK_EQ(c.nlinks, 3);
    CHECK(chain_eq(&c, exp, 9750));

    /* too big for the inline head: a fresh page, offset 0 */
    struct mb_store *old = c.head->st;
    p = mb_chain_pullup(&c, 3000);
    REQUIRE(p);
    CHECK(memcmp(p, exp, 3000) == 0);
    CHECK(c.head->st != old);
    CHECK_EQ(c.head->st->kind, MB_ST_PAGES);
    CHECK(chain_eq(&c, exp, 9750));
    mb_chain_free(&c);

    /* shared head: never written, copied into a fresh store */
    build_mixed(&c, 14);
    CHECK_EQ(mb_chain_copy_ref(&r, &c, 0, c.len), 0);
    old = c.head->st;
    unsigned char tailbyte = old->u.data[50];
    p = mb_chain_pullup(&c, 100);
    REQUIRE(p);
    CHECK(c.head->st != old);
    CHECK(old->u.data[50] == tailbyte);
    CHECK(memcmp(p, exp, 100) == 0);
    CHECK(chain_eq(&c, exp, 9750));
    CHECK(chain_eq(&r, exp, 9750));
    CHECK(mb_chain_is_writable(&c, 0, 100));
    mb_chain_free(&r);
    mb_chain_free(&c);

    /* read-only head with bytes after it: never written */
    static unsigned char ro[100];
    for (size_t i = 0; i < sizeof(ro); i++)
        ro[i] = (unsigned char)i;
    mb_append_ext(&c, ro, 40, MB_STF_RDONLY, NULL, NULL);
    CHECK_EQ(mb_chain_append_bytes(&c, "HELLO", 5), 0);
    p = mb_chain_pullup(&c, 45);
    REQUIRE(p);
    CHECK(p != ro);
    CHECK(memcmp(p, ro, 40) == 0 && memcmp(p + 40, "HELLO", 5) == 0);
    CHECK(ro[40] == 40 && ro[44] == 44);
    CHECK_EQ(c.len, 45);
    CHECK_EQ(c.nlinks, 1);
    mb_chain_free(&c);

    /* page store with first_off != 0, range crossing a page boundary */
    mb_append_pages(&c, 4000, 300);
    fill(&c, 15);
    unsigned char *e2 = flat(&c);
    p = mb_chain_pullup(&c, 96);
    CHECK(p == mb_store_ptr(c.head->st, 4000));
    p = mb_chain_pullup(&c, 200);
    REQUIRE(p);
    CHECK(memcmp(p, e2, 200) == 0);
    CHECK(chain_eq(&c, e2, 300));
    free(e2);
    mb_chain_free(&c);

    /* a whole page's worth across links */
    mb_append_inline(&c, 10);
    mb_append_pages(&c, 100, MB_PAGE_SIZE);
    fill(&c, 16);
    e2 = flat(&c);
    p = mb_chain_pullup(&c, MB_PAGE_SIZE);
    REQUIRE(p);
    CHECK(memcmp(p, e2, MB_PAGE_SIZE) == 0);
    CHECK(chain_eq(&c, e2, MB_PAGE_SIZE + 10));
    free(e2);
    mb_chain_free(&c);
    free(exp);
}

/* ---- iovecs, writability ------------------------------------------------ */

static void test_iovec(void)
{
    struct mb_chain c = MB_CHAIN_INIT;
    struct iovec iov[64];
    CHECK_EQ(mb_chain_to_iovec(&c, 0, 0, iov, 4), 0);
    CHECK_EQ(mb_chain_iovec_count(&c, 0, 0), 0);
    CHECK_EQ(mb_chain_to_iovec(&c, 0, 1, iov, 4), -EINVAL);
    CHECK_EQ(mb_chain_iovec_count(&c, 1, 0), -EINVAL);

    build_mixed(&c, 17);
    unsigned char *exp = flat(&c);
    int n = mb_chain_iovec_count(&c, 0, c.len);
    CHECK(n >= 3 && n <= 5); /* inline, 3 pages (maybe adjacent), cluster */
    CHECK_EQ(mb_chain_to_iovec(&c, 0, c.len, iov, 64), n);
    CHECK_EQ(mb_chain_to_iovec(&c, 0, c.len, iov, n - 1), -ERANGE);
    size_t tot = 0;
    for (int i = 0; i < n; i++) {
        CHECK(memcmp(iov[i].iov_base, exp + tot, iov[i].iov_len) == 0);
        tot += iov[i].iov_len;
    }
    CHECK_EQ(tot, c.len);
    CHECK_EQ(mb_chain_to_iovec(&c, 20, 10, iov, 1), 1);
    CHECK(iov[0].iov_base == c.head->st->u.data + 20 && iov[0].iov_len == 10);
    CHECK_EQ(mb_chain_to_iovec(&c, 0, 0, iov, 0), 0);
    CHECK_EQ(mb_chain_to_iovec(&c, 45, 10, iov, 1), -ERANGE);
    CHECK_EQ(mb_chain_to_iovec(&c, 45, 10, iov, 2), 2);
    mb_chain_free(&c);

    /* links cut from one page store and put back together: merged */
    mb_append_pages(&c, 0, 1000);
    fill(&c, 18);
    struct mb_chain t = MB_CHAIN_INIT, u = MB_CHAIN_INIT;
    mb_chain_split(&c, 300, &t);
    mb_chain_split(&t, 200, &u);
    mb_chain_concat(&c, &t);
    mb_chain_concat(&c, &u);
    CHECK_EQ(c.nlinks, 1); /* concat joins adjacent pieces of one store into one link */
    CHECK_EQ(c.head->st->refs, 1);
    CHECK_EQ(mb_chain_iovec_count(&c, 0, 1000), 1);
    CHECK_EQ(mb_chain_to_iovec(&c, 0, 1000, iov, 1), 1);
    CHECK(iov[0].iov_len == 1000 && iov[0].iov_base == c.head->st->u.pages[0]);
    /* the same bytes referenced twice are not adjacent: two entries */
    CHECK_EQ(mb_chain_copy_ref(&c, &c, 0, 100), 0);
    CHECK_EQ(mb_chain_iovec_count(&c, 0, c.len), 2);
    mb_chain_free(&c);

    /* pages that are not adjacent in memory never merge */
    void *p1 = mb_page_alloc(), *p2 = mb_page_alloc();
    mb_page_free(p1);
    mb_page_free(p2);
    mb_append_pages(&c, 0, 2 * MB_PAGE_SIZE);
    struct mb_store *st = c.head->st;
    int adjacent = (unsigned char *)st->u.pages[1] == (unsigned char *)st->u.pages[0] + MB_PAGE_SIZE;
    CHECK_EQ(mb_chain_iovec_count(&c, 0, c.len), adjacent ? 1 : 2);
    CHECK_EQ(mb_chain_iovec_count(&c, MB_PAGE_SIZE - 1, 2), adjacent ? 1 : 2);
    CHECK_EQ(mb_chain_to_iovec(&c, 0, c.len, iov, 64), adjacent ? 1 : 2);
    mb_chain_free(&c);
    free(exp);
}

static void test_writable(void)
{
    struct mb_chain c = MB_CHAIN_INIT, d = MB_CHAIN_INIT;
    CHECK(mb_chain_is_writable(&c, 0, 0));
    CHECK(!mb_chain_is_writable(&c, 0, 1));
    build_mixed(&c, 19);
    CHECK(mb_chain_is_writable(&c, 0, c.len));
    CHECK(mb_chain_is_writable(&c, c.len, 0));
    CHECK(!mb_chain_is_writable(&c, c.len, 1));
    CHECK(!mb_chain_is_writable(&c, 1, SIZE_MAX));
    /* share only the page link */
    CHECK_EQ(mb_chain_copy_ref(&d, &c, 100, 10), 0);
    CHECK(mb_chain_is_writable(&c, 0, 50));
    CHECK(!mb_chain_is_writable(&c, 0, 51));
    CHECK(!mb_chain_is_writable(&c, 60, 1));
    CHECK(mb_chain_is_writable(&c, 9050, 700));
    CHECK(!mb_chain_is_writable(&d, 0, 10));
    mb_chain_free(&d);
    CHECK(mb_chain_is_writable(&c, 0, c.len));
    /* marking read-only */
    mb_store_set_rdonly(c.tail->st);
    CHECK(!mb_chain_is_writable(&c, 9050, 1));
    CHECK(mb_chain_is_writable(&c, 0, 9050));
    mb_chain_free(&c);
}

/* ---- pool --------------------------------------------------------------- */

static void test_pool_counters(void)
{
    struct mb_pool_stats s0 = stats();
    CHECK_EQ(s0.pages_in_use, 0);
    struct mb_chain c = MB_CHAIN_INIT;
    mb_append_pages(&c, 0, 5 * MB_PAGE_SIZE);
    mb_append_inline(&c, 1);
    struct mb_pool_stats s1 = stats();
    CHECK_EQ(s1.pages_in_use, 5);
    CHECK_EQ(s1.page_allocs, s0.page_allocs + 5);
    CHECK(s1.pages_peak >= 5);
    CHECK_EQ(s1.stores_in_use, 2);
    CHECK_EQ(s1.links_in_use, 2);
    CHECK(s1.pages_total >= 1024);
    CHECK(s1.arena_allocs >= 1);
    CHECK_EQ(s1.pages_total % 1024, 0);
    CHECK_EQ(mb_pool_shutdown(), -EBUSY);
    mb_chain_free(&c);
    struct mb_pool_stats s2 = stats();
    CHECK_EQ(s2.pages_in_use, 0);
    CHECK_EQ(s2.stores_in_use, 0);
    CHECK_EQ(s2.links_in_use, 0);
    CHECK_EQ(s2.pages_peak, s1.pages_peak);
    CHECK_EQ(mb_pool_reserve(3000), 0);
    CHECK(stats().pages_total >= 3000);
    void *p = mb_page_alloc();
    CHECK_EQ(mb_pool_shutdown(), -EBUSY);
    mb_page_free(p);
    CHECK_EQ(mb_pool_shutdown(), 0);
    struct mb_pool_stats s3 = stats();
    CHECK_EQ(s3.pages_total, 0);
    CHECK_EQ(s3.arena_allocs, 0);
    CHECK_EQ(s3.obj_mallocs, 0);
    CHECK_EQ(s3.pages_peak, 0);
    /* the pool starts afresh */
    CHECK_EQ(mb_append_pages(&c, 0, 100), 0);
    CHECK_EQ(stats().arena_allocs, 1);
    mb_chain_free(&c);
}

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Record buffers: contiguous, aligned, reused last-in first-out (the one
 * freed last comes back first, still in cache), counted, and held ones
 * keep the pool from shutting down. */
static void test_record_buffers(void)
{
    struct mb_chain c = MB_CHAIN_INIT;
    struct mb_pool_stats s0 = stats(), s1;
    struct mb *m = mb_append_rec(&c, 59, 16406);

    REQUIRE(m != NULL);
    CHECK_EQ(c.len, 16406);
    CHECK_EQ(c.nlinks, 1);
    CHECK(mb_chain_is_writable(&c, 0, c.len));
    unsigned char *p = mb_store_ptr(m->st, 0);
    CHECK_EQ((uintptr_t)(p + 5) % 64, 0);
    CHECK_EQ(mb_store_contig(m->st, 0), 16406);
    memset(p, 0xab, 16406);
    s1 = stats();
    CHECK_EQ(s1.recs_in_use, s0.recs_in_use + 1);
    mb_chain_free(&c);
    m = mb_append_rec(&c, 59, 100);
    REQUIRE(m != NULL);
    CHECK(mb_store_ptr(m->st, 0) == p); /* LIFO */
    mb_chain_free(&c);
    CHECK(mb_append_rec(&c, 0, MB_REC_SIZE + 1) == NULL);
    CHECK(mb_append_rec(&c, 1, MB_REC_SIZE) == NULL);
    CHECK(mb_append_rec(&c, 0, 0) == NULL);
    void *r = mb_rec_alloc();
    REQUIRE(r != NULL);
    CHECK_EQ((uintptr_t)r % 128, 0);
    CHECK_EQ(mb_pool_shutdown(), -EBUSY);
    mb_rec_free(r);
    s1 = stats();
    CHECK_EQ(s1.recs_in_use, s0.recs_in_use);
    CHECK(s1.recs_total > 0);
}

static void test_steady_state(void)
{
    struct mb_chain c = MB_CHAIN_INIT;
    for (int i = 0; i < 1000; i++) { /* warm-up */
        mb_append_pages(&c, 0, 4 * MB_PAGE_SIZE);
        mb_chain_free(&c);
    }
    struct mb_pool_stats s0 = stats();
    double t0 = now_sec();
    int fails = 0;
    for (int i = 0; i < 100000; i++) {
        /* one link + one store + 4 pages, as for one 16 KiB TLS record */
        if (mb_append_pages(&c, 0, 4 * MB_PAGE_SIZE) != 0 || c.nlinks != 1 || c.head->st->npages != 4)
            fails++;
        mb_chain_free(&c);
    }
    double dt = now_sec() - t0;
    struct mb_pool_stats s1 = stats();
    CHECK_EQ(fails, 0);
    CHECK_EQ(s1.arena_allocs, s0.arena_allocs);
    CHECK_EQ(s1.obj_mallocs, s0.obj_mallocs);
    CHECK_EQ(s1.pages_total, s0.pages_total);
    CHECK_EQ(s1.page_allocs, s0.page_allocs + 400000);
    CHECK_EQ(s1.pages_in_use, 0);
    fprintf(stderr, "  steady state: %.1f ns per (link + store + 4 pages) alloc+free cycle\n", dt / 100000 * 1e9);

    /* the same with copy_ref + copy_deep + split on the way */
    for (int i = 0; i < 1000; i++) {
        struct mb_chain d = MB_CHAIN_INIT, e = MB_CHAIN_INIT;
        mb_append_pages(&c, 0, 4 * MB_PAGE_SIZE);
        mb_chain_copy_ref(&d, &c, 0, c.len);
        mb_chain_copy_deep(&e, &d, 100, 9000);
        mb_chain_split(&e, 4000, &d);
        mb_chain_free(&c);
        mb_chain_free(&d);
        mb_chain_free(&e);
    }
    s0 = stats();
    for (int i = 0; i < 20000; i++) {
        struct mb_chain d = MB_CHAIN_INIT, e = MB_CHAIN_INIT;
        mb_append_pages(&c, 0, 4 * MB_PAGE_SIZE);
        mb_chain_copy_ref(&d, &c, 0, c.len);
        mb_chain_copy_deep(&e, &d, 100, 9000);
        mb_chain_split(&e, 4000, &d);
        mb_chain_free(&c);
        mb_chain_free(&d);
        mb_chain_free(&e);
    }
    s1 = stats();
    CHECK_EQ(s1.arena_allocs, s0.arena_allocs);
    CHECK_EQ(s1.obj_mallocs, s0.obj_mallocs);
}

/* Two threads allocate pages and hand them to each other to free, as two
 * connections' encrypt threads do. */
#define XT_N 200000
struct xt {
    void *volatile ring[256];
    atomic_uint head, tail;
    atomic_int done;
    unsigned nfree;
};

static void *xt_producer(void *arg)
{
    struct xt *x = arg;
    for (int i = 0; i < XT_N; i++) {
        struct mb_chain c = MB_CHAIN_INIT;
        mb_append_pages(&c, 0, 2 * MB_PAGE_SIZE);
        void *p = mb_page_alloc();
        if (p)
            memset(p, i & 0xff, 64);
        mb_chain_free(&c);
        while (atomic_load(&x->tail) - atomic_load(&x->head) == 256)
            sched_yield();
        x->ring[atomic_load(&x->tail) % 256] = p;
        atomic_fetch_add(&x->tail, 1);
    }
    atomic_store(&x->done, 1);
    return NULL;
}

static void *xt_consumer(void *arg)
{
    struct xt *x = arg;
    for (;;) {
        unsigned h = atomic_load(&x->head);
        if (h == atomic_load(&x->tail)) {
            if (atomic_load(&x->done) && h == atomic_load(&x->tail))
                break;
            sched_yield();
            continue;
        }
        void *p = x->ring[h % 256];
        atomic_store(&x->head, h + 1);
        mb_page_free(p);
        x->nfree++;
        /* and some allocation of its own */
        void *q = mb_page_alloc();
        mb_page_free(q);
    }
    return NULL;
}

static void test_threads(void)
{
    static struct xt x;
    pthread_t a, b;
    REQUIRE(pthread_create(&a, NULL, xt_producer, &x) == 0);
    REQUIRE(pthread_create(&b, NULL, xt_consumer, &x) == 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    CHECK_EQ(x.nfree, XT_N);
    struct mb_pool_stats s = stats();
    CHECK_EQ(s.pages_in_use, 0);
    CHECK_EQ(s.stores_in_use, 0);
    CHECK_EQ(s.links_in_use, 0);
    /* the exited threads' stashes were flushed: everything is back */
    CHECK_EQ(mb_pool_shutdown(), 0);
}

/* Counters are exact while another thread is alive and idle, with its
 * counts not yet folded into the globals. */
static pthread_barrier_t idle_bar;
static void *idle_thread(void *arg)
{
    void *p[3];
    for (int i = 0; i < 3; i++)
        p[i] = mb_page_alloc();
    pthread_barrier_wait(&idle_bar); /* 1: holding 3 pages */
    pthread_barrier_wait(&idle_bar); /* 2: main has looked */
    for (int i = 0; i < 3; i++)
        mb_page_free(p[i]);
    pthread_barrier_wait(&idle_bar); /* 3: freed, still alive */
    pthread_barrier_wait(&idle_bar); /* 4: main has looked */
    (void)arg;
    return NULL;
}

static void test_idle_thread_counters(void)
{
    pthread_t th;
    uint64_t allocs = stats().page_allocs;
    REQUIRE(pthread_barrier_init(&idle_bar, NULL, 2) == 0);
    REQUIRE(pthread_create(&th, NULL, idle_thread, NULL) == 0);
    pthread_barrier_wait(&idle_bar);
    CHECK_EQ(stats().pages_in_use, 3);
    CHECK_EQ(stats().page_allocs, allocs + 3);
    CHECK(stats().pages_peak >= 3);
    CHECK_EQ(mb_pool_shutdown(), -EBUSY);
    pthread_barrier_wait(&idle_bar);
    pthread_barrier_wait(&idle_bar);
    CHECK_EQ(stats().pages_in_use, 0);
    pthread_barrier_wait(&idle_bar);
    pthread_join(th, NULL);
    CHECK_EQ(stats().pages_in_use, 0);
    CHECK_EQ(mb_pool_shutdown(), 0);
    pthread_barrier_destroy(&idle_bar);
}

int main(void)
{
    TEST_RUN(test_inline_cluster);
    TEST_RUN(test_ext);
    TEST_RUN(test_pages);
    TEST_RUN(test_copy_ref);
    TEST_RUN(test_copy_deep_and_pages);
    TEST_RUN(test_copy_out);
    TEST_RUN(test_concat);
    TEST_RUN(test_append_bytes);
    TEST_RUN(test_append_pages_from_buf);
    TEST_RUN(test_append_pages_from_fd);
    TEST_RUN(test_split);
    TEST_RUN(test_trim);
    TEST_RUN(test_pullup);
    TEST_RUN(test_iovec);
    TEST_RUN(test_writable);
    TEST_RUN(test_pool_counters);
    TEST_RUN(test_record_buffers);
    TEST_RUN(test_steady_state);
    TEST_RUN(test_threads);
    TEST_RUN(test_idle_thread_counters);
    CHECK_EQ(mb_pool_shutdown(), 0);
    return test_summary();
}
