/*
 * src/mbuf/store.h - the storage object, the ownership rule, and private
 * helpers shared by store.c, chain.c and pool.c.
 *
 * struct mb_store is opaque outside src/mbuf: other layers hold pointers to
 * it (struct mb's st) and reach its bytes through mb_store_ptr,
 * mb_store_contig and the segment iterator, but never read its reference
 * count or flags. Whether bytes may be written is mbuf's answer alone
 * (mb__may_write below, reached through mb_chain_is_writable,
 * mb_chain_writable_ranges, mb_chain_extend_tail and the receive buffer).
 * White-box tests include this header to look inside.
 */
#ifndef RPCTLS_MBUF_STORE_H
#define RPCTLS_MBUF_STORE_H

#include <assert.h>
#include <stdatomic.h>
#include <stdint.h>

#include "mbuf/check.h"
#include "mbuf/pool.h"

/*
 * A storage object: the bytes that links point into. Every field but
 * free_next is set before the store's first link exists; refs, flags and
 * shared_end change later and are read with atomics.
 */
struct mb_store {
    atomic_uint refs;            /* links (in any chain) that point here */
    uint16_t kind;               /* enum mb_store_kind */
    uint16_t flags;              /* MB_STF_*: RDONLY by the owner, GUARDED when shared in guard mode */
    uint32_t size;               /* capacity in bytes */
    uint32_t npages;             /* MB_ST_PAGES: entries used in u.pages */
    _Atomic uint32_t shared_end; /* every byte ever shared by copy-by-reference lies below it */
    union {
        unsigned char data[MB_INLINE_SIZE];           /* MB_ST_INLINE */
        struct {
            unsigned char *base;
            mb_ext_free_fn free_fn;                   /* NULL for MB_ST_CLUSTER (free()) */
            void *arg;
        } ext;                                        /* MB_ST_CLUSTER, MB_ST_EXT */
        void *pages[MB_PV_MAXPAGES];                  /* MB_ST_PAGES, page aligned */
    } u;
    struct mb_store *free_next; /* pool free list; not valid while in use */
};

/*
 * THE OWNERSHIP RULE (the invariant; FreeBSD's
 * M_WRITABLE; docs/mbuf.md). This is its one home: every answer mbuf gives
 * about writing in place comes from mb__may_write.
 *
 * A byte of a store may be written only when no link that anybody else
 * holds can reach it, and the store is neither read-only (MB_STF_RDONLY,
 * caller memory) nor guarded (MB_STF_GUARDED, mprotect()ed in guard mode).
 * "Nobody else can reach it" is known in one of two ways:
 *
 *  (a) every reference to the store is one of the caller's own links:
 *      refs == mine, where mine counts the caller's links to the store,
 *      which must cover disjoint bytes (a chain that holds the same bytes
 *      twice shares them with itself: pass mine = 0);
 *  (b) the bytes were never shared: they lie in the caller's own links at
 *      or past shared_end. Only copy-by-reference (mb_chain_copy_ref) ever
 *      gives a byte a second link, and it raises shared_end past the bytes
 *      it shares before the new link exists; split hands each byte to
 *      exactly one of the two halves, concat and trim only join or shrink
 *      links. So a byte at or past shared_end is reached by one link: the
 *      caller's. This is what lets the record layer decrypt the
 *      not-yet-delivered bytes of a receive store in place while the user
 *      still holds the delivered ones, and lets each half of a split write
 *      its own bytes.
 *
 * `from` is the store offset of the first byte asked about, all of them in
 * the caller's links; MB_ROOM asks about bytes no link covers (the free
 * room after a tail link, which append_bytes, pullup and extend_tail fill):
 * another link may cover them, so only (a), with the caller's one link, can
 * allow that.
 *
 * shared_end only grows. A link to the bytes in another thread was handed
 * over with synchronization after the copy_ref that made it, so the caller
 * sees the raised mark; a concurrent copy_ref of other bytes can only raise
 * the mark, which errs toward "not writable".
 */
#define MB_ROOM SIZE_MAX

static inline int mb__may_write(const struct mb_store *st, unsigned mine, size_t from)
{
    if (__atomic_load_n(&st->flags, __ATOMIC_ACQUIRE) & (MB_STF_RDONLY | MB_STF_GUARDED))
        return 0;
    if (atomic_load_explicit(&((struct mb_store *)st)->refs, memory_order_acquire) == mine)
        return 1;
    return from != MB_ROOM &&
           from >= atomic_load_explicit(&((struct mb_store *)st)->shared_end, memory_order_acquire);
}

/* Pointer to byte off of st (off < st->size); *contig gets the bytes
 * contiguous in memory from there (to the end of its page or buffer). */
static inline unsigned char *mb__store_at(const struct mb_store *st, size_t off, size_t *contig)
{
    RPCTLS_CHECK(off < st->size && "mb store: offset past the end of the store");
    switch (st->kind) {
    case MB_ST_INLINE:
        *contig = st->size - off;
        return (unsigned char *)st->u.data + off;
    case MB_ST_CLUSTER:
    case MB_ST_EXT:
        *contig = st->size - off;
        return st->u.ext.base + off;
    case MB_ST_PAGES: {
        size_t n = MB_PAGE_SIZE - off % MB_PAGE_SIZE;
        *contig = n < st->size - off ? n : st->size - off;
        return (unsigned char *)st->u.pages[off / MB_PAGE_SIZE] + off % MB_PAGE_SIZE;
    }
    default:
        RPCTLS_CHECK(!"mb store: bad store kind");
        *contig = 0;
        return NULL;
    }
}

/* Takes one more reference on st for a link over bytes no other link
 * covers (split's second half). */
void mb__store_ref(struct mb_store *st);
/* The same for copy-by-reference of store bytes [0, end): raises the shared
 * mark to end, and in guard mode mprotect()s a page vector read-only, both
 * before the new reference exists. */
void mb__store_share(struct mb_store *st, size_t end);
/* Drops one reference; the last one releases the storage. */
void mb__store_unref(struct mb_store *st);

/* Appends link m (already filled in) to c. */
static inline void mb__link_append(struct mb_chain *c, struct mb *m)
{
    RPCTLS_CHECK(m->len > 0 && "mb__link_append: empty link");
    RPCTLS_CHECK(m->off + m->len <= m->st->size && "mb__link_append: link past the end of its store");
    m->next = NULL;
    if (c->tail)
        c->tail->next = m;
    else
        c->head = m;
    c->tail = m;
    c->len += m->len;
    c->nlinks++;
}

/* Allocates a page-vector store of npages pages (refs 1), or NULL. */
struct mb_store *mb__pages_store_new(uint32_t npages);

#endif
