/*
 * src/mbuf/store.h - private helpers shared by store.c and chain.c.
 */
#ifndef RPCTLS_MBUF_STORE_H
#define RPCTLS_MBUF_STORE_H

#include <assert.h>

#include "mbuf/check.h"
#include "mbuf/pool.h"

/* Takes one more reference on st (a new link will point at it). */
void mb__store_ref(struct mb_store *st);
/* The same for copy-by-reference: in guard mode a page vector is mprotect()ed
 * read-only first. */
void mb__store_share(struct mb_store *st);
/* Drops one reference; the last one releases the storage. */
void mb__store_unref(struct mb_store *st);

/* 1 when st may be written in place: one reference, not read-only, not guarded. */
static inline int mb__store_writable(const struct mb_store *st)
{
    return atomic_load_explicit(&((struct mb_store *)st)->refs, memory_order_acquire) == 1 &&
           !(st->flags & (MB_STF_RDONLY | MB_STF_GUARDED));
}

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
