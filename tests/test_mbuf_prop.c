/*
 * tests/test_mbuf_prop.c - randomized property test for buffer chains.
 *
 * A handful of chains are built from random mixes of storage kinds and put
 * through random operations; each chain is mirrored by a flat byte array
 * (its model). After every step every chain must equal its model byte for
 * byte, have exact len/nlinks, and every store's reference count must equal
 * the number of links pointing at it. Writes go only through ranges that
 * mb_chain_is_writable or mb_chain_writable_ranges approves (the ownership
 * rule, which lets split halves write their own bytes); since all other
 * chains are compared after the write, a write that leaked into bytes
 * another chain can see shows up as a mismatch.
 * The second half runs in guard mode, where such a write would also fault.
 *
 * RPCTLS_SEED overrides the seed, RPCTLS_PROP_STEPS the number of steps.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "mbuf/store.h" /* white-box: reference counts, flags, kinds */
#include "rpctls/mbuf.h"
#include "mbuf/mbuf_test.h"
#include "test.h"

#define NCH 6
#define MAXLEN 150000

static uint64_t rng_s;
static uint64_t rnd(void)
{
    /* splitmix64 */
    uint64_t z = (rng_s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static size_t rn(size_t n) /* [0, n) */
{
    return n ? (size_t)(rnd() % n) : 0;
}

struct model {
    unsigned char *b;
    size_t len;
};

static struct mb_chain ch[NCH];
static struct model md[NCH];
static unsigned char *scratch;
static long ext_live;
static long step_no;
static long op_count[16]; /* [13]: writes through writable_ranges */

static void model_append(struct model *m, const unsigned char *p, size_t n)
{
    if (!n)
        return;
    m->b = realloc(m->b, m->len + n);
    memcpy(m->b + m->len, p, n);
    m->len += n;
}

static void rand_bytes(unsigned char *p, size_t n)
{
    uint64_t v = rnd();
    for (size_t i = 0; i < n; i++) {
        if ((i & 7) == 0)
            v = rnd();
        p[i] = (unsigned char)(v >> (8 * (i & 7)));
    }
}

/* Fills the freshly constructed tail link of c with random bytes, mirroring them. */
static void fill_tail(int i)
{
    struct mb *m = ch[i].tail;
    unsigned char *tmp = malloc(m->len);
    rand_bytes(tmp, m->len);
    for (size_t k = 0; k < m->len; k++)
        *mb_store_ptr(m->st, m->off + k) = tmp[k];
    model_append(&md[i], tmp, m->len);
    free(tmp);
}

static void ext_free(void *base, void *arg)
{
    (void)arg;
    free(base);
    ext_live--;
}

/* Appends one random piece of a random storage kind to chain i. */
static void add_piece(int i)
{
    size_t n;
    unsigned char *tmp;
    switch (rn(6)) {
    case 0:
        if (mb_append_inline(&ch[i], 1 + rn(MB_INLINE_SIZE)))
            fill_tail(i);
        break;
    case 1:
        if (mb_append_cluster(&ch[i], 1 + rn(9000)))
            fill_tail(i);
        break;
    case 2: {
        n = 1 + rn(6000);
        tmp = malloc(n);
        rand_bytes(tmp, n);
        uint16_t fl = rn(2) ? MB_STF_RDONLY : 0;
        if (mb_append_ext(&ch[i], tmp, n, fl, ext_free, NULL)) {
            ext_live++;
            model_append(&md[i], tmp, n);
        } else {
            free(tmp);
        }
        break;
    }
    case 3: {
        size_t fo = rn(4) ? rn(MB_PAGE_SIZE) : 0;
        n = 1 + rn(rn(4) ? 20000 : 140000);
        struct mb_chain t = MB_CHAIN_INIT;
        if (mb_append_pages(&t, fo, n) == 0) {
            tmp = malloc(n);
            rand_bytes(tmp, n);
            size_t pos = 0;
            for (struct mb *m = t.head; m; m = m->next)
                for (size_t k = 0; k < m->len; k++)
                    *mb_store_ptr(m->st, m->off + k) = tmp[pos++];
            mb_chain_concat(&ch[i], &t);
            model_append(&md[i], tmp, n);
            free(tmp);
        }
        break;
    }
    case 4:
        n = 1 + rn(rn(2) ? 300 : 10000);
        tmp = malloc(n);
        rand_bytes(tmp, n);
        if (mb_chain_append_bytes(&ch[i], tmp, n) == 0)
            model_append(&md[i], tmp, n);
        free(tmp);
        break;
    default:
        n = 1 + rn(30000);
        tmp = malloc(n);
        rand_bytes(tmp, n);
        if (mb_chain_append_pages_from_buf(&ch[i], tmp, n) == 0)
            model_append(&md[i], tmp, n);
        free(tmp);
        break;
    }
}

static void drop(int i)
{
    mb_chain_free(&ch[i]);
    md[i].len = 0;
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y;
}

/* Every chain equals its model; every store's refs equals its link count. */
static int verify(void)
{
    int ok = 1;
    size_t nl = 0;
    for (int i = 0; i < NCH; i++) {
        if (mb_chain_check(&ch[i]) != 0 || ch[i].len != md[i].len) {
            fprintf(stderr, "step %ld: chain %d inconsistent (len %zu model %zu)\n", step_no, i, ch[i].len,
                    md[i].len);
            return 0;
        }
        if (mb_chain_copy_out(&ch[i], 0, ch[i].len, scratch) != 0 || memcmp(scratch, md[i].b, md[i].len) != 0) {
            fprintf(stderr, "step %ld: chain %d differs from its model\n", step_no, i);
            ok = 0;
        }
        nl += ch[i].nlinks;
        if (ch[i].len && rn(8) == 0) { /* spot checks through other read paths */
            size_t off = rn(ch[i].len);
            if (mb_chain_byte(&ch[i], off) != md[i].b[off])
                ok = 0;
            size_t len = rn(ch[i].len - off + 1);
            int cnt = mb_chain_iovec_count(&ch[i], off, len);
            struct iovec *iov = malloc(sizeof(*iov) * (size_t)(cnt + 1));
            int got = mb_chain_to_iovec(&ch[i], off, len, iov, cnt);
            size_t pos = off;
            for (int k = 0; k < got; k++) {
                if (memcmp(iov[k].iov_base, md[i].b + pos, iov[k].iov_len) != 0)
                    ok = 0;
                if (k > 0 && (unsigned char *)iov[k - 1].iov_base + iov[k - 1].iov_len == iov[k].iov_base)
                    ok = 0; /* mergeable entries were not merged */
                pos += iov[k].iov_len;
            }
            if (got != cnt || pos != off + len) {
                fprintf(stderr, "step %ld: to_iovec %d vs count %d\n", step_no, got, cnt);
                ok = 0;
            }
            if (cnt > 0 && mb_chain_to_iovec(&ch[i], off, len, iov, cnt - 1) != -ERANGE)
                ok = 0;
            free(iov);
        }
    }
    void **sts = malloc(sizeof(void *) * (nl + 1));
    size_t k = 0;
    for (int i = 0; i < NCH; i++)
        for (struct mb *m = ch[i].head; m; m = m->next)
            sts[k++] = m->st;
    qsort(sts, nl, sizeof(void *), cmp_ptr);
    for (size_t a = 0; a < nl;) {
        size_t b = a;
        while (b < nl && sts[b] == sts[a])
            b++;
        struct mb_store *st = sts[a];
        if (atomic_load(&st->refs) != b - a) {
            fprintf(stderr, "step %ld: store refs %u, links %zu\n", step_no, atomic_load(&st->refs), b - a);
            ok = 0;
        }
        a = b;
    }
    free(sts);
    return ok;
}

static void step(void)
{
    int a = (int)rn(NCH), b = (int)rn(NCH);
    struct model *ma = &md[a], *mbm = &md[b];
    size_t off, len;
    int op = (int)rn(13);
    op_count[op]++;
    switch (op) {
    case 0: /* grow with fresh pieces */
    case 1:
        for (int k = 1 + (int)rn(3); k > 0; k--)
            add_piece(a);
        break;
    case 2: /* copy_ref (a may equal b) */
        off = rn(mbm->len + 1);
        len = rn(mbm->len - off + 1);
        {
            unsigned char *src = malloc(len + 1);
            memcpy(src, mbm->b + off, len);
            struct mb *old_tail = ch[a].tail;
            CHECK_EQ(mb_chain_copy_ref(&ch[a], &ch[b], off, len), 0);
            model_append(ma, src, len);
            /* guard mode: every page vector shared by reference is guarded */
            for (struct mb *m = old_tail ? old_tail->next : ch[a].head; m && mb__guard_get(); m = m->next)
                if (m->st->kind == MB_ST_PAGES && !(m->st->flags & MB_STF_GUARDED)) {
                    fprintf(stderr, "step %ld: page store shared by copy_ref but not guarded\n", step_no);
                    CHECK(0);
                }
            free(src);
        }
        break;
    case 3: /* copy_deep / copy_to_pages */
        off = rn(mbm->len + 1);
        len = rn(mbm->len - off + 1);
        {
            unsigned char *src = malloc(len + 1);
            memcpy(src, mbm->b + off, len);
            struct mb_chain t = MB_CHAIN_INIT;
            int r = rn(2) ? mb_chain_copy_deep(&t, &ch[b], off, len) : mb_chain_copy_to_pages(&t, &ch[b], off, len);
            CHECK_EQ(r, 0);
            CHECK(mb_chain_is_writable(&t, 0, t.len));
            mb_chain_concat(&ch[a], &t);
            model_append(ma, src, len);
            free(src);
        }
        break;
    case 4: /* split a into b */
        if (a == b)
            break;
        off = rn(ma->len + 1);
        CHECK_EQ(mb_chain_split(&ch[a], off, &ch[b]), 0);
        model_append(mbm, ma->b + off, ma->len - off);
        ma->len = off;
        break;
    case 5: /* concat b onto a */
        if (a == b)
            break;
        mb_chain_concat(&ch[a], &ch[b]);
        model_append(ma, mbm->b, mbm->len);
        mbm->len = 0;
        break;
    case 6: /* trims, sometimes past the end */
        len = rn(ma->len + 100);
        if (rn(2)) {
            mb_chain_trim_head(&ch[a], len);
            if (len > ma->len)
                len = ma->len;
            memmove(ma->b, ma->b + len, ma->len - len);
            ma->len -= len;
        } else {
            mb_chain_trim_tail(&ch[a], len);
            ma->len = len > ma->len ? 0 : ma->len - len;
        }
        break;
    case 7: { /* pullup */
        size_t lim = ma->len < MB_PAGE_SIZE ? ma->len : MB_PAGE_SIZE;
        len = rn(lim + 1);
        if (!ch[a].head)
            break;
        unsigned char *p = mb_chain_pullup(&ch[a], len);
        CHECK(p != NULL);
        if (p)
            CHECK(memcmp(p, ma->b, len) == 0);
        if (ma->len)
            CHECK(mb_chain_pullup(&ch[a], ma->len + 1) == NULL);
        break;
    }
    case 8: /* append_bytes */
    {
        len = 1 + rn(rn(2) ? 64 : 5000);
        unsigned char *tmp = malloc(len);
        rand_bytes(tmp, len);
        CHECK_EQ(mb_chain_append_bytes(&ch[a], tmp, len), 0);
        model_append(ma, tmp, len);
        free(tmp);
        break;
    }
    case 9: /* in-place writes through approved ranges */
    case 10:
        for (int k = 0; k < 4; k++) {
            off = rn(ma->len + 1);
            len = rn(ma->len - off + 1);
            if (rn(2) && len > 2000)
                len = rn(2000);
            if (rn(2)) {
                /* a piece of one of the ranges writable_ranges reports */
                struct mb_range r[8];
                int nr = mb_chain_writable_ranges(&ch[a], r, 8);
                if (nr == 0)
                    continue;
                int pick = (int)rn((size_t)nr);
                CHECK(r[pick].len > 0 && r[pick].off + r[pick].len <= ma->len);
                off = r[pick].off + rn(r[pick].len);
                len = rn(r[pick].off + r[pick].len - off + 1);
                op_count[13]++;
            } else if (!mb_chain_is_writable(&ch[a], off, len)) {
                continue;
            }
            int cnt = mb_chain_iovec_count(&ch[a], off, len);
            struct iovec *iov = malloc(sizeof(*iov) * (size_t)(cnt + 1));
            CHECK_EQ(mb_chain_to_iovec(&ch[a], off, len, iov, cnt), cnt);
            size_t pos = off;
            for (int j = 0; j < cnt; j++) {
                rand_bytes(iov[j].iov_base, iov[j].iov_len);
                memcpy(ma->b + pos, iov[j].iov_base, iov[j].iov_len);
                pos += iov[j].iov_len;
            }
            free(iov);
        }
        break;
    case 11: /* free */
        if (rn(3) == 0)
            drop(a);
        break;
    default: /* copy_ref a whole chain then copy_deep it back: reshuffles sharing */
        if (mbm->len) {
            struct mb_chain t = MB_CHAIN_INIT;
            CHECK_EQ(mb_chain_copy_ref(&t, &ch[b], 0, mbm->len), 0);
            mb_chain_free(&ch[b]);
            CHECK_EQ(mb_chain_copy_deep(&ch[b], &t, 0, t.len), 0);
            mb_chain_free(&t);
        }
        break;
    }
    /* keep chains bounded so that the full comparisons stay cheap */
    for (int i = 0; i < NCH; i++)
        if (md[i].len > MAXLEN || ch[i].nlinks > 200) {
            size_t cut = md[i].len > MAXLEN / 2 ? md[i].len - MAXLEN / 2 : 0;
            mb_chain_trim_head(&ch[i], cut);
            memmove(md[i].b, md[i].b + cut, md[i].len - cut);
            md[i].len -= cut;
            if (ch[i].nlinks > 200)
                drop(i);
        }
}

int main(void)
{
    uint64_t seed = 0x5eed2024ull;
    const char *e = getenv("RPCTLS_SEED");
    if (e && *e)
        seed = strtoull(e, NULL, 0);
    long steps = 30000;
    e = getenv("RPCTLS_PROP_STEPS");
    if (e && *e)
        steps = strtol(e, NULL, 0);
    fprintf(stderr, "test_mbuf_prop: seed 0x%llx (set RPCTLS_SEED to reproduce), %ld steps\n",
            (unsigned long long)seed, steps);
    rng_s = seed;
    scratch = malloc(2 * MAXLEN + 300000);
    for (int i = 0; i < NCH; i++) {
        mb_chain_init(&ch[i]);
        md[i].b = malloc(1);
    }

    int failed = 0;
    for (step_no = 0; step_no < steps && !failed; step_no++) {
        if (step_no == steps / 2) {
            mb__guard_set(1); /* second half: a stray write into a shared page faults */
            for (int i = 0; i < NCH; i++)
                drop(i);
        }
        step();
        if (!verify()) {
            failed = 1;
            CHECK(!"chains diverged from their models");
        }
    }
    fprintf(stderr, "ops:");
    for (int i = 0; i < 14; i++)
        fprintf(stderr, " %ld", op_count[i]);
    fprintf(stderr, "\n");
    for (int i = 0; i < NCH; i++) {
        drop(i);
        free(md[i].b);
    }
    mb__guard_set(0);
    CHECK_EQ(ext_live, 0);
    struct mb_pool_stats s;
    mb_pool_get_stats(&s);
    CHECK_EQ(s.pages_in_use, 0);
    CHECK_EQ(s.stores_in_use, 0);
    CHECK_EQ(s.links_in_use, 0);
    fprintf(stderr, "pool: page_allocs %llu peak %llu total %llu arenas %llu obj_mallocs %llu\n",
            (unsigned long long)s.page_allocs, (unsigned long long)s.pages_peak, (unsigned long long)s.pages_total,
            (unsigned long long)s.arena_allocs, (unsigned long long)s.obj_mallocs);
    CHECK_EQ(mb_pool_shutdown(), 0);
    free(scratch);
    return test_summary();
}
