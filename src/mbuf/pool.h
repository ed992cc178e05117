/*
 * src/mbuf/pool.h - private interface between the pool and the chain code.
 */
#ifndef RPCTLS_MBUF_POOL_H
#define RPCTLS_MBUF_POOL_H

#include "rpctls/mbuf.h"
#include "mbuf/mbuf_test.h"

/* Link and store objects come from the pool's slab caches (no malloc per op). */
struct mb_store *mb__store_alloc(void);
void mb__store_free(struct mb_store *st);
struct mb *mb__link_alloc(void);
void mb__link_free(struct mb *m);

/* Counts a malloc made on behalf of the buffer layer (cluster storage). */
void mb__note_malloc(void);

/* Guard mode: mprotect a page-vector store's pages read-only / back to RW. */
void mb__guard_store(struct mb_store *st);
void mb__unguard_store(struct mb_store *st);

#endif
