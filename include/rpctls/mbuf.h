/*
 * rpctls/mbuf.h - reference-counted buffer chains with page vectors.
 *
 * A chain (struct mb_chain) is a list of links (struct mb). Each link names a
 * byte range [off, off + len) of one storage object (struct mb_store). Storage
 * is reference counted; copy-by-reference makes new links that point at the
 * same storage and never copies bytes.
 *
 * Storage kinds:
 *   MB_ST_INLINE   MB_INLINE_SIZE bytes inside the store object itself.
 *   MB_ST_CLUSTER  one contiguous malloc'd buffer of any size.
 *   MB_ST_EXT      caller memory, released through a callback (often read-only).
 *   MB_ST_PAGES    a page vector: up to MB_PV_MAXPAGES 4 KiB pool pages that
 *                  need not be adjacent in memory (FreeBSD M_EXTPG). Byte k of
 *                  the store lives at pages[k / MB_PAGE_SIZE] + k % MB_PAGE_SIZE,
 *                  so a link's first-page offset is off % MB_PAGE_SIZE and its
 *                  last-page length is (off + len - 1) % MB_PAGE_SIZE + 1.
 *
 * THE INVARIANT (docs/mbuf.md, "The invariant"): no byte that anybody else can see is
 * ever written. A store whose reference count is above one, or which carries
 * MB_STF_RDONLY, is not written -- with one precise exception: splitting a
 * link (mb_chain_split) gives two links to one store over disjoint byte
 * ranges, both still the splitter's, and the owner may write its own range.
 * The record layer relies on this twice: TX in auto mode seals in place the
 * records cut from a chain it owns alone (judged before cutting), and RX
 * decrypts the not-yet-delivered bytes of its receive stores in place.
 * Copy-by-reference (mb_chain_copy_ref) shares bytes; split does not, and
 * guard mode protects only the former. Other code that writes in place asks
 * mb_chain_is_writable() first; debug builds assert.
 *
 * Functions return 0 or a negative errno value (-ENOMEM, -EINVAL, -ERANGE).
 * All functions are thread-safe with respect to the pool and reference
 * counts; a single chain must not be used by two threads at once.
 */
#ifndef RPCTLS_MBUF_H
#define RPCTLS_MBUF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "rpctls/visibility.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MB_PAGE_SIZE 4096
#define MB_INLINE_SIZE 256
#define MB_PV_MAXPAGES 32 /* 128 KiB per page-vector store */
/* One pooled record buffer: a full TLS record (16 KiB of payload, header,
 * inner type and tag) contiguous, with room to align the payload. */
#define MB_REC_SIZE (16384 + 128)

enum mb_store_kind {
    MB_ST_INLINE = 1,
    MB_ST_CLUSTER = 2,
    MB_ST_EXT = 3,
    MB_ST_PAGES = 4,
};

/* Store flags. */
#define MB_STF_RDONLY 0x0001  /* never written, whatever the reference count */
#define MB_STF_GUARDED 0x0002 /* pages are mprotect()ed read-only (guard mode) */

typedef void (*mb_ext_free_fn)(void *base, void *arg);

struct mb_store {
    atomic_uint refs;  /* links (in any chain) that point here */
    uint16_t kind;     /* enum mb_store_kind */
    uint16_t flags;    /* MB_STF_* ; set before the store is shared */
    uint32_t size;     /* capacity in bytes */
    uint32_t npages;   /* MB_ST_PAGES: entries used in u.pages */
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

struct mb {
    struct mb *next;
    struct mb_store *st; /* holds one reference */
    size_t off;          /* first byte within the store */
    size_t len;          /* > 0 for every link in a chain */
};

struct mb_chain {
    struct mb *head;
    struct mb *tail;
    size_t len;      /* sum of link lengths */
    unsigned nlinks;
};

#define MB_CHAIN_INIT {NULL, NULL, 0, 0}

/* ---- page pool ---------------------------------------------------------- */

struct mb_pool_stats {
    uint64_t pages_in_use;   /* pages handed out and not yet returned */
    uint64_t pages_peak;
    uint64_t pages_total;    /* pages carved from arenas */
    uint64_t arena_allocs;   /* mmap calls for page arenas */
    uint64_t page_allocs;    /* cumulative page allocations */
    uint64_t stores_in_use;  /* store objects live (all kinds) */
    uint64_t links_in_use;   /* struct mb links live */
    uint64_t obj_mallocs;    /* malloc calls for link/store slabs and clusters */
    uint64_t recs_in_use;    /* record buffers handed out and not yet returned */
    uint64_t recs_total;     /* record buffers carved from arenas */
};

RPCTLS_API void mb_pool_get_stats(struct mb_pool_stats *out);
/* Pre-fault arenas so that at least npages pages exist. */
RPCTLS_API int mb_pool_reserve(size_t npages);
/* Returns 0 when every page, store and link has been returned, else -EBUSY.
 * On 0 the arenas are unmapped; the pool starts afresh on next use. */
RPCTLS_API int mb_pool_shutdown(void);

RPCTLS_API void *mb_page_alloc(void);           /* one 4 KiB page, page aligned, or NULL */
RPCTLS_API void mb_page_free(void *page);
/* Record buffers: MB_REC_SIZE contiguous bytes, 128-byte aligned, pooled like
 * pages (per-thread LIFO stash, so the buffer freed last is reused first,
 * still in cache). Counted in recs_in_use; arena_allocs counts their arenas. */
RPCTLS_API void *mb_rec_alloc(void);
RPCTLS_API void mb_rec_free(void *rec);
/* Appends one link over [off, off + len) of a fresh record buffer (a
 * writable MB_ST_EXT store, one reference; the buffer returns to the pool
 * with the last reference) and returns it, or NULL. */
RPCTLS_API struct mb *mb_append_rec(struct mb_chain *c, size_t off, size_t len);

/* ---- storage ------------------------------------------------------------ */

/* Each constructor appends one link of length len (0 < len <= capacity)
 * over a fresh store to chain c, and returns the link. */
RPCTLS_API struct mb *mb_append_inline(struct mb_chain *c, size_t len);
RPCTLS_API struct mb *mb_append_cluster(struct mb_chain *c, size_t len);
/* Caller memory: free_fn(base, arg) runs when the last reference goes.
 * flags is usually MB_STF_RDONLY. */
RPCTLS_API struct mb *mb_append_ext(struct mb_chain *c, void *base, size_t len, uint16_t flags, mb_ext_free_fn free_fn,
                                    void *arg);
/* Page vectors: appends links covering len bytes of fresh pool pages, starting
 * at first_off (< MB_PAGE_SIZE) in the first page. Contents uninitialised. */
RPCTLS_API int mb_append_pages(struct mb_chain *c, size_t first_off, size_t len);

/* Pointer to byte off of store st (off < st->size). */
RPCTLS_API unsigned char *mb_store_ptr(const struct mb_store *st, size_t off);
/* Contiguous bytes available at off within st (to the end of its page or buffer). */
RPCTLS_API size_t mb_store_contig(const struct mb_store *st, size_t off);
/* Marks st read-only (MB_STF_RDONLY); in guard mode a page-vector store is
 * also mprotect()ed. Call before the store is shared. */
RPCTLS_API void mb_store_set_rdonly(struct mb_store *st);

/* ---- chain operations --------------------------------------------------- */

RPCTLS_API void mb_chain_init(struct mb_chain *c);
/* Drops every reference; c is empty afterwards. */
RPCTLS_API void mb_chain_free(struct mb_chain *c);
/* Moves src to the end of dst; src is empty afterwards. */
RPCTLS_API void mb_chain_concat(struct mb_chain *dst, struct mb_chain *src);
/* Appends a copy-by-reference of [off, off + len) of src to dst. */
RPCTLS_API int mb_chain_copy_ref(struct mb_chain *dst, const struct mb_chain *src, size_t off, size_t len);
/* Appends a deep copy (fresh writable storage; page vectors when len is large). */
RPCTLS_API int mb_chain_copy_deep(struct mb_chain *dst, const struct mb_chain *src, size_t off, size_t len);
/* The mb_mapped_to_unmapped analogue: appends [off, off+len) of src copied
 * into fresh page vectors starting at page offset 0. */
RPCTLS_API int mb_chain_copy_to_pages(struct mb_chain *dst, const struct mb_chain *src, size_t off, size_t len);
/* Copies [off, off + len) of c to out. */
RPCTLS_API int mb_chain_copy_out(const struct mb_chain *c, size_t off, size_t len, void *out);
/* Appends bytes (copied) to the chain, filling free room in a writable,
 * exclusively owned tail first. */
RPCTLS_API int mb_chain_append_bytes(struct mb_chain *c, const void *data, size_t len);
/* Fills fresh page vectors with len bytes from buf / from fd at offset pos
 * (pos < 0: read from the current position). Short files give -EIO. */
RPCTLS_API int mb_chain_append_pages_from_buf(struct mb_chain *c, const void *buf, size_t len);
RPCTLS_API int mb_chain_append_pages_from_fd(struct mb_chain *c, int fd, off_t pos, size_t len);
/* Splits c at byte off: c keeps [0, off), tail receives the rest (appended
 * to tail, which must be initialised; normally it is empty). */
RPCTLS_API int mb_chain_split(struct mb_chain *c, size_t off, struct mb_chain *tail);
RPCTLS_API void mb_chain_trim_head(struct mb_chain *c, size_t n);
RPCTLS_API void mb_chain_trim_tail(struct mb_chain *c, size_t n);
/* Makes the first len bytes contiguous (copying into a fresh store if they
 * span links or are not writable-safe) and returns a pointer to them, or NULL
 * (len > c->len, len > MB_PAGE_SIZE, or no memory). The bytes must not be
 * written through the pointer unless mb_chain_is_writable says so. */
RPCTLS_API void *mb_chain_pullup(struct mb_chain *c, size_t len);
/* Fills at most maxiov entries for [off, off + len) of c; returns the number
 * used, or -ERANGE if more would be needed. */
RPCTLS_API int mb_chain_to_iovec(const struct mb_chain *c, size_t off, size_t len, struct iovec *iov, int maxiov);
/* Number of iovec entries [off, off+len) needs. */
RPCTLS_API int mb_chain_iovec_count(const struct mb_chain *c, size_t off, size_t len);
/* 1 when every store under [off, off + len) has one reference, is not
 * read-only and is not guarded: the range may be written in place. */
RPCTLS_API int mb_chain_is_writable(const struct mb_chain *c, size_t off, size_t len);
/* Byte at position off (off < c->len). For tests and small parsers. */
RPCTLS_API int mb_chain_byte(const struct mb_chain *c, size_t off);
/* Consistency check for tests and debugging: 0 when len and nlinks are exact,
 * tail is the last link and every link has 0 < len and lies inside its store;
 * else -EINVAL. */
RPCTLS_API int mb_chain_check(const struct mb_chain *c);

#ifdef __cplusplus
}
#endif

#endif
