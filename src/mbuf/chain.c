/*
 * src/mbuf/chain.c - chain operations.
 *
 * Operations that can fail build their result in a private chain first and
 * concatenate it at the end, so the caller's chain is unchanged on failure
 * (and dst == src works for the copy functions).
 */
#include "mbuf/store.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Static_assert(MB_INLINE_SIZE < MB_PAGE_SIZE,
               "pullup copies len <= MB_PAGE_SIZE bytes into one inline store or one page: both must be contiguous");

/* [off, off + len) lies inside [0, total). */
static inline int range_ok(size_t total, size_t off, size_t len)
{
    return off <= total && len <= total - off;
}

/* Link holding byte off (off < c->len) and the offset within it. */
static struct mb *seek(const struct mb_chain *c, size_t off, size_t *lo)
{
    struct mb *m = c->head;
    while (m && off >= m->len) {
        off -= m->len;
        m = m->next;
    }
    *lo = off;
    return m;
}

/* ---- the segment iterator ------------------------------------------------ */

int mb_seg_iter_init(struct mb_seg_iter *it, const struct mb_chain *c, size_t off, size_t len)
{
    it->lo = 0;
    it->m = NULL;
    it->left = 0;
    if (!range_ok(c->len, off, len))
        return -ERANGE;
    it->left = len;
    if (len)
        it->m = seek(c, off, &it->lo);
    return 0;
}

/* mb_seg_next for mbuf's own loops (to_iovec and iovec_count run for every
 * record TX seals): inlined there, while calls to the exported, interposable
 * symbol in this position-independent code are not. */
static inline size_t seg_next(struct mb_seg_iter *it, unsigned char **p)
{
    if (it->left == 0)
        return 0;
    while (it->lo == it->m->len) {
        it->m = it->m->next;
        it->lo = 0;
        RPCTLS_CHECK(it->m && "mb_seg_next: chain shorter than the range");
    }
    size_t n;
    *p = mb__store_at(it->m->st, it->m->off + it->lo, &n);
    if (n > it->m->len - it->lo)
        n = it->m->len - it->lo;
    if (n > it->left)
        n = it->left;
    it->lo += n;
    it->left -= n;
    return n;
}

size_t mb_seg_next(struct mb_seg_iter *it, unsigned char **p)
{
    return seg_next(it, p);
}

int mb_seg_iovec(struct mb_seg_iter *it, struct iovec *iov, int max, size_t *bytes)
{
    int cnt = 0;
    size_t sum = 0;

    if (max <= 0)
        return -EINVAL;
    while (it->left > 0) {
        struct mb_seg_iter before = *it;
        unsigned char *p;
        size_t n = seg_next(it, &p);
        if (cnt > 0 && (unsigned char *)iov[cnt - 1].iov_base + iov[cnt - 1].iov_len == p) {
            iov[cnt - 1].iov_len += n;
        } else if (cnt == max) {
            *it = before; /* no room: the segment stays for the next call */
            break;
        } else {
            iov[cnt].iov_base = p;
            iov[cnt].iov_len = n;
            cnt++;
        }
        sum += n;
    }
    *bytes = sum;
    return cnt;
}

int mb_chain_apply(const struct mb_chain *c, size_t off, size_t len, int (*fn)(void *arg, const void *p, size_t n),
                   void *arg)
{
    MB_CHAIN_INVARIANT(c);
    struct mb_seg_iter it;
    unsigned char *p;
    size_t n;
    int r = mb_seg_iter_init(&it, c, off, len);
    if (r != 0)
        return r;
    while ((n = seg_next(&it, &p)) > 0)
        if ((r = fn(arg, p, n)) != 0)
            return r;
    return 0;
}

/* Copies bytes from iterator s into iterator d (which must cover fresh,
 * writable storage) until either ends. */
static void seg_copy(struct mb_seg_iter *d, struct mb_seg_iter *s)
{
    unsigned char *dp = NULL, *sp = NULL;
    size_t dn = 0, sn = 0;
    for (;;) {
        if (!dn) {
            dn = seg_next(d, &dp);
            if (dn)
                RPCTLS_CHECK(mb__may_write(d->m->st, 1, d->m->off) && "mb chain copy: destination may not be written");
        }
        if (!sn)
            sn = seg_next(s, &sp);
        if (!dn || !sn)
            break;
        size_t n = dn < sn ? dn : sn;
        memcpy(dp, sp, n);
        dp += n;
        sp += n;
        dn -= n;
        sn -= n;
    }
}

/* Writes n bytes into the free room of store st at soff (the room after
 * the one link to st, which the ownership rule allows). */
static void store_write(struct mb_store *st, size_t soff, const unsigned char *src, size_t n)
{
    RPCTLS_CHECK(mb__may_write(st, 1, MB_ROOM) && "mb store write: room may not be written");
    while (n) {
        size_t k;
        unsigned char *p = mb__store_at(st, soff, &k);
        if (k > n)
            k = n;
        memcpy(p, src, k);
        soff += k;
        src += k;
        n -= k;
    }
}

/* Fills fresh chain c with len bytes from src. */
static void chain_write(struct mb_chain *c, const unsigned char *src, size_t len)
{
    struct mb_seg_iter w;
    unsigned char *p;
    size_t n;
    mb_seg_iter_init(&w, c, 0, len);
    while ((n = seg_next(&w, &p)) > 0) {
        RPCTLS_CHECK(mb__may_write(w.m->st, 1, w.m->off) && "mb chain write: store may not be written");
        memcpy(p, src, n);
        src += n;
    }
}

/* Fresh writable storage for len > 0 bytes: inline when it fits, else pages. */
static int alloc_fresh(struct mb_chain *t, size_t len, int pages_only)
{
    if (!pages_only && len <= MB_INLINE_SIZE)
        return mb_append_inline(t, len) ? 0 : -ENOMEM;
    return mb_append_pages(t, 0, len);
}

/* ---- basics ------------------------------------------------------------- */

void mb_chain_init(struct mb_chain *c)
{
    c->head = c->tail = NULL;
    c->len = 0;
    c->nlinks = 0;
}

void mb_chain_free(struct mb_chain *c)
{
    MB_CHAIN_INVARIANT(c);
    struct mb *m = c->head;
    while (m) {
        struct mb *next = m->next;
        mb__store_unref(m->st);
        mb__link_free(m);
        m = next;
    }
    mb_chain_init(c);
}

void mb_chain_concat(struct mb_chain *dst, struct mb_chain *src)
{
    MB_CHAIN_INVARIANT(dst);
    MB_CHAIN_INVARIANT(src);
    RPCTLS_CHECK(dst != src && "mb_chain_concat: dst == src");
    if (!src->head)
        return;
    /* The two ends are adjacent bytes of one store (a chain split and joined
     * again, or a receive buffer filled piece by piece): one link covers
     * both, so chains built from many small reads stay short. */
    if (dst->tail && dst->tail->st == src->head->st && dst->tail->off + dst->tail->len == src->head->off) {
        struct mb *m = src->head;
        dst->tail->len += m->len;
        dst->len += m->len;
        src->head = m->next;
        src->len -= m->len;
        src->nlinks--;
        if (src->tail == m)
            src->tail = NULL;
        mb__store_unref(m->st);
        mb__link_free(m);
        if (!src->head) {
            mb_chain_init(src);
            return;
        }
    }
    if (dst->tail)
        dst->tail->next = src->head;
    else
        dst->head = src->head;
    dst->tail = src->tail;
    dst->len += src->len;
    dst->nlinks += src->nlinks;
    mb_chain_init(src);
}

#ifdef RPCTLS_INVARIANTS
void rpctls__check_fail(const char *file, int line, const char *func, const char *cond)
{
    fprintf(stderr, "%s:%d: %s: invariant violated: %s\n", file, line, func, cond);
    fflush(stderr);
    abort();
}

int mb__chain_invariant(const struct mb_chain *c)
{
    if (c->nlinks <= MB_INV_FULL_LINKS)
        return mb_chain_check(c);
    if (!c->head || !c->tail || c->tail->next || c->head->len == 0 || c->tail->len == 0 ||
        c->len < c->head->len + c->tail->len)
        return -EINVAL;
    return 0;
}

void mb__chain_invariant_post(const struct mb__inv *v)
{
    if (mb__chain_invariant(v->c) != 0)
        rpctls__check_fail(v->file, v->line, v->func, "postcondition: chain invariant");
}
#endif

int mb_chain_check(const struct mb_chain *c)
{
    size_t len = 0;
    unsigned n = 0;
    const struct mb *last = NULL;
    for (const struct mb *m = c->head; m; m = m->next) {
        if (m->len == 0 || !m->st || m->off > m->st->size || m->len > m->st->size - m->off)
            return -EINVAL;
        if (atomic_load(&((struct mb_store *)m->st)->refs) == 0)
            return -EINVAL;
        /* A page vector's pages cover its size. */
        if (m->st->kind == MB_ST_PAGES &&
            (m->st->npages > MB_PV_MAXPAGES || (size_t)m->st->npages * MB_PAGE_SIZE < m->st->size))
            return -EINVAL;
        if (m->st->kind < MB_ST_INLINE || m->st->kind > MB_ST_PAGES)
            return -EINVAL;
        len += m->len;
        n++;
        last = m;
    }
    if (len != c->len || n != c->nlinks || last != c->tail)
        return -EINVAL;
    return 0;
}

int mb_chain_byte(const struct mb_chain *c, size_t off)
{
    MB_CHAIN_INVARIANT(c);
    if (off >= c->len)
        return -ERANGE;
    size_t lo;
    struct mb *m = seek(c, off, &lo);
    return *mb_store_ptr(m->st, m->off + lo);
}

/* ---- copies ------------------------------------------------------------- */

int mb_chain_copy_ref(struct mb_chain *dst, const struct mb_chain *src, size_t off, size_t len)
{
    MB_CHAIN_INVARIANT(dst);
    MB_CHAIN_INVARIANT(src);
    if (!range_ok(src->len, off, len))
        return -ERANGE;
    struct mb_chain t = MB_CHAIN_INIT;
    size_t lo;
    struct mb *m = len ? seek(src, off, &lo) : NULL;
    while (len) {
        struct mb *n = mb__link_alloc();
        if (!n) {
            mb_chain_free(&t);
            return -ENOMEM;
        }
        size_t k = m->len - lo;
        if (k > len)
            k = len;
        mb__store_share(m->st, m->off + lo + k);
        n->st = m->st;
        n->off = m->off + lo;
        n->len = k;
        mb__link_append(&t, n);
        len -= k;
        m = m->next;
        lo = 0;
    }
    mb_chain_concat(dst, &t);
    return 0;
}

static int copy_fresh(struct mb_chain *dst, const struct mb_chain *src, size_t off, size_t len, int pages_only)
{
    MB_CHAIN_INVARIANT(dst);
    MB_CHAIN_INVARIANT(src);
    if (!range_ok(src->len, off, len))
        return -ERANGE;
    if (len == 0)
        return 0;
    struct mb_chain t = MB_CHAIN_INIT;
    int r = alloc_fresh(&t, len, pages_only);
    if (r < 0)
        return r;
    struct mb_seg_iter d, s;
    mb_seg_iter_init(&d, &t, 0, len);
    mb_seg_iter_init(&s, src, off, len);
    seg_copy(&d, &s);
    mb_chain_concat(dst, &t);
    return 0;
}

int mb_chain_copy_deep(struct mb_chain *dst, const struct mb_chain *src, size_t off, size_t len)
{
    return copy_fresh(dst, src, off, len, 0);
}

int mb_chain_copy_to_pages(struct mb_chain *dst, const struct mb_chain *src, size_t off, size_t len)
{
    return copy_fresh(dst, src, off, len, 1);
}

int mb_chain_copy_out(const struct mb_chain *c, size_t off, size_t len, void *out)
{
    MB_CHAIN_INVARIANT(c);
    if (!range_ok(c->len, off, len))
        return -ERANGE;
    unsigned char *o = out, *p;
    size_t n;
    struct mb_seg_iter w;
    mb_seg_iter_init(&w, c, off, len);
    while ((n = seg_next(&w, &p)) > 0) {
        memcpy(o, p, n);
        o += n;
    }
    return 0;
}

/* ---- appending data ----------------------------------------------------- */

int mb_chain_append_bytes(struct mb_chain *c, const void *data, size_t len)
{
    MB_CHAIN_INVARIANT(c);
    if (len == 0)
        return 0;
    if (!data)
        return -EINVAL;
    const unsigned char *src = data;
    struct mb *tail = c->tail;
    size_t room = 0;
    if (tail && mb__may_write(tail->st, 1, MB_ROOM))
        room = tail->st->size - (tail->off + tail->len);
    size_t n = room < len ? room : len;
    struct mb_chain t = MB_CHAIN_INIT;
    if (len > n) {
        int r = alloc_fresh(&t, len - n, 0);
        if (r < 0)
            return r;
        chain_write(&t, src + n, len - n);
    }
    if (n) {
        store_write(tail->st, tail->off + tail->len, src, n);
        tail->len += n;
        c->len += n;
    }
    mb_chain_concat(c, &t);
    return 0;
}

int mb_chain_append_pages_from_buf(struct mb_chain *c, const void *buf, size_t len)
{
    MB_CHAIN_INVARIANT(c);
    if (len == 0)
        return 0;
    if (!buf)
        return -EINVAL;
    struct mb_chain t = MB_CHAIN_INIT;
    int r = mb_append_pages(&t, 0, len);
    if (r < 0)
        return r;
    chain_write(&t, buf, len);
    mb_chain_concat(c, &t);
    return 0;
}

#define FD_IOV 64

int mb_chain_append_pages_from_fd(struct mb_chain *c, int fd, off_t pos, size_t len)
{
    MB_CHAIN_INVARIANT(c);
    if (len == 0)
        return 0;
    struct mb_chain t = MB_CHAIN_INIT;
    int r = mb_append_pages(&t, 0, len);
    if (r < 0)
        return r;
    size_t done = 0;
    while (done < len) {
        /* Read straight into the pages: one iovec per run of contiguous
         * memory, at most FD_IOV per system call. */
        struct iovec iov[FD_IOV];
        struct mb_seg_iter w;
        size_t bytes;
        mb_seg_iter_init(&w, &t, done, len - done);
        int cnt = mb_seg_iovec(&w, iov, FD_IOV, &bytes);
        ssize_t got = pos < 0 ? readv(fd, iov, cnt) : preadv(fd, iov, cnt, pos + (off_t)done);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            r = -errno;
            goto fail;
        }
        if (got == 0) {
            r = -EIO; /* the file is shorter than asked */
            goto fail;
        }
        done += (size_t)got;
    }
    mb_chain_concat(c, &t);
    return 0;
fail:
    mb_chain_free(&t);
    return r;
}

/* ---- splitting and trimming --------------------------------------------- */

int mb_chain_split(struct mb_chain *c, size_t off, struct mb_chain *tail)
{
    MB_CHAIN_INVARIANT(c);
    MB_CHAIN_INVARIANT(tail);
    RPCTLS_CHECK(c != tail && "mb_chain_split: c == tail");
    if (off > c->len)
        return -ERANGE;
    if (off == c->len)
        return 0;
    if (off == 0) {
        mb_chain_concat(tail, c);
        return 0;
    }
    struct mb *prev = NULL, *m = c->head;
    unsigned kept = 0;
    size_t lo = off;
    while (lo >= m->len) {
        lo -= m->len;
        prev = m;
        m = m->next;
        kept++;
    }
    struct mb_chain r;
    r.tail = c->tail;
    r.len = c->len - off;
    if (lo == 0) {
        /* On a link boundary: just cut the list. */
        prev->next = NULL;
        c->tail = prev;
        r.head = m;
        r.nlinks = c->nlinks - kept;
    } else {
        struct mb *n = mb__link_alloc();
        if (!n)
            return -ENOMEM;
        mb__store_ref(m->st); /* both halves point into the store (not guarded) */
        n->st = m->st;
        n->off = m->off + lo;
        n->len = m->len - lo;
        n->next = m->next;
        m->len = lo;
        m->next = NULL;
        if (r.tail == m)
            r.tail = n;
        c->tail = m;
        kept++;
        r.head = n;
        r.nlinks = c->nlinks - kept + 1;
    }
    c->len = off;
    c->nlinks = kept;
    mb_chain_concat(tail, &r);
    return 0;
}

void mb_chain_trim_head(struct mb_chain *c, size_t n)
{
    MB_CHAIN_INVARIANT(c);
    if (n > c->len)
        n = c->len;
    c->len -= n;
    while (n) {
        struct mb *m = c->head;
        if (m->len > n) {
            m->off += n;
            m->len -= n;
            break;
        }
        n -= m->len;
        c->head = m->next;
        c->nlinks--;
        mb__store_unref(m->st);
        mb__link_free(m);
    }
    if (!c->head)
        c->tail = NULL;
}

void mb_chain_trim_tail(struct mb_chain *c, size_t n)
{
    MB_CHAIN_INVARIANT(c);
    if (n >= c->len) {
        mb_chain_free(c);
        return;
    }
    if (n == 0)
        return;
    size_t keep = c->len - n;
    /* Find the link holding byte keep - 1; it becomes the tail. */
    struct mb *m = c->head;
    size_t pos = 0;
    unsigned cnt = 1;
    while (pos + m->len < keep) {
        pos += m->len;
        m = m->next;
        cnt++;
    }
    m->len = keep - pos;
    struct mb *rest = m->next;
    m->next = NULL;
    c->tail = m;
    c->len = keep;
    c->nlinks = cnt;
    while (rest) {
        struct mb *next = rest->next;
        mb__store_unref(rest->st);
        mb__link_free(rest);
        rest = next;
    }
}

void *mb_chain_pullup(struct mb_chain *c, size_t len)
{
    MB_CHAIN_INVARIANT(c);
    if (len > c->len || len > MB_PAGE_SIZE || !c->head)
        return NULL;
    struct mb *h = c->head;
    size_t avail = mb_store_contig(h->st, h->off);
    if (avail > h->len)
        avail = h->len;
    if (avail >= len)
        return mb_store_ptr(h->st, h->off);

    size_t room = mb_store_contig(h->st, h->off);
    if (mb__may_write(h->st, 1, MB_ROOM) && room >= len) {
        /* The head store is ours alone and has space right after the head's
         * bytes (m_pullup's "fits in the first mbuf" case): pull the rest
         * in. Only h points into this store, so no other link aliases it. */
        size_t need = len - h->len;
        unsigned char *dst = mb_store_ptr(h->st, h->off) + h->len;
        mb_chain_copy_out(c, h->len, need, dst);
        c->head = h->next;
        c->len -= h->len;
        c->nlinks--;
        if (!c->head)
            c->tail = NULL;
        mb_chain_trim_head(c, need);
        h->len += need;
        h->next = c->head;
        c->head = h;
        if (!c->tail)
            c->tail = h;
        c->len += h->len;
        c->nlinks++;
        return mb_store_ptr(h->st, h->off);
    }

    /* Copy into a fresh store; never write a shared or read-only one. */
    struct mb_chain t = MB_CHAIN_INIT;
    int r;
    if (len <= MB_INLINE_SIZE)
        r = mb_append_inline(&t, len) ? 0 : -ENOMEM;
    else
        r = mb_append_pages(&t, 0, len); /* offset 0, len <= one page: contiguous */
    if (r < 0)
        return NULL;
    struct mb *n = t.head;
    mb_chain_copy_out(c, 0, len, mb_store_ptr(n->st, 0));
    mb_chain_trim_head(c, len);
    n->next = c->head;
    c->head = n;
    if (!c->tail)
        c->tail = n;
    c->len += len;
    c->nlinks++;
    return mb_store_ptr(n->st, 0);
}

/* ---- iovecs and writability --------------------------------------------- */

int mb_chain_to_iovec(const struct mb_chain *c, size_t off, size_t len, struct iovec *iov, int maxiov)
{
    MB_CHAIN_INVARIANT(c);
    if (!range_ok(c->len, off, len) || maxiov < 0)
        return -EINVAL;
    struct mb_seg_iter w;
    unsigned char *p;
    size_t n;
    int cnt = 0;
    mb_seg_iter_init(&w, c, off, len);
    while ((n = seg_next(&w, &p)) > 0) {
        if (cnt > 0 && (unsigned char *)iov[cnt - 1].iov_base + iov[cnt - 1].iov_len == p) {
            iov[cnt - 1].iov_len += n;
            continue;
        }
        if (cnt == maxiov)
            return -ERANGE;
        iov[cnt].iov_base = p;
        iov[cnt].iov_len = n;
        cnt++;
    }
    return cnt;
}

int mb_chain_iovec_count(const struct mb_chain *c, size_t off, size_t len)
{
    MB_CHAIN_INVARIANT(c);
    if (!range_ok(c->len, off, len))
        return -EINVAL;
    struct mb_seg_iter w;
    unsigned char *p, *end = NULL;
    size_t n;
    int cnt = 0;
    mb_seg_iter_init(&w, c, off, len);
    while ((n = seg_next(&w, &p)) > 0) {
        if (p != end) {
            if (cnt == INT_MAX)
                return -ERANGE;
            cnt++;
        }
        end = p + n;
    }
    return cnt;
}

/* ---- the ownership rule applied to chains -------------------------------- */

/*
 * Reports to emit(arg, off, len) each maximal range of c (chain offsets,
 * increasing) that the holder of c may write, judging every link by the
 * ownership rule (mb__may_write). A run of adjacent links to one store
 * counts as the chain's own references to it when the links cover disjoint,
 * increasing bytes (the pieces of one split range); links to the same bytes
 * twice share them with the chain itself. Stops when emit returns non-zero.
 */
static void writable_walk(const struct mb_chain *c, int (*emit)(void *arg, size_t off, size_t len), void *arg)
{
    size_t pos = 0, start = 0, end = 0; /* pending range [start, end) */
    int have = 0;

    for (const struct mb *m = c->head; m != NULL;) {
        const struct mb *run = m;
        unsigned nlinks = 0;
        int disjoint = 1;
        for (const struct mb *prev = NULL, *q = run; q != NULL && q->st == run->st; prev = q, q = q->next) {
            if (prev != NULL && q->off < prev->off + prev->len)
                disjoint = 0;
            nlinks++;
        }
        for (unsigned mine = disjoint ? nlinks : 0; nlinks > 0; nlinks--, m = m->next) {
            if (mb__may_write(m->st, mine, m->off)) {
                if (have && end == pos) {
                    end += m->len;
                } else {
                    if (have && emit(arg, start, end - start))
                        return;
                    start = pos;
                    end = pos + m->len;
                    have = 1;
                }
            }
            pos += m->len;
        }
    }
    if (have)
        (void)emit(arg, start, end - start);
}

struct cover_q {
    size_t off, end; /* the range asked about */
    int yes;
};

static int cover_emit(void *arg, size_t off, size_t len)
{
    struct cover_q *q = arg;
    if (off > q->off)
        return 1; /* ranges only increase: none later holds q->off */
    if (off + len >= q->end) {
        q->yes = 1;
        return 1;
    }
    return 0;
}

int mb_chain_is_writable(const struct mb_chain *c, size_t off, size_t len)
{
    MB_CHAIN_INVARIANT(c);
    if (!range_ok(c->len, off, len))
        return 0;
    if (len == 0)
        return 1;
    struct cover_q q = {off, off + len, 0};
    writable_walk(c, cover_emit, &q);
    return q.yes;
}

struct ranges_q {
    struct mb_range *out;
    int max, n;
};

static int ranges_emit(void *arg, size_t off, size_t len)
{
    struct ranges_q *q = arg;
    q->out[q->n].off = off;
    q->out[q->n].len = len;
    return ++q->n == q->max;
}

int mb_chain_writable_ranges(const struct mb_chain *c, struct mb_range *out, int max)
{
    MB_CHAIN_INVARIANT(c);
    struct ranges_q q = {out, max, 0};
    if (max <= 0)
        return 0;
    writable_walk(c, ranges_emit, &q);
    return q.n;
}

void *mb_chain_extend_tail(struct mb_chain *c, size_t n)
{
    MB_CHAIN_INVARIANT(c);
    struct mb *t = c->tail;
    size_t pos, contig;
    unsigned char *p;

    if (t == NULL || n == 0 || !mb__may_write(t->st, 1, MB_ROOM))
        return NULL;
    pos = t->off + t->len;
    if (pos >= t->st->size)
        return NULL;
    p = mb__store_at(t->st, pos, &contig);
    if (contig < n)
        return NULL;
    t->len += n;
    c->len += n;
    return p;
}
