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
 * ever written. A byte may be written in place only when no link anybody
 * else holds can reach it, and its store is neither read-only nor guarded.
 * mbuf alone answers that, by one rule (mb__may_write in src/mbuf/store.h):
 * either every reference to the store is one of the asking chain's own
 * links, or the bytes were never shared by copy-by-reference (split hands
 * each byte to exactly one link, so the two halves of a split may each write
 * their own bytes). The questions: mb_chain_is_writable (a range),
 * mb_chain_writable_ranges (all of a chain, for TX auto mode),
 * mb_chain_extend_tail (free room after the tail), and the receive buffer
 * (struct mb_rcvbuf) for the space it reads into. struct mb_store is opaque:
 * nothing outside mbuf reads its reference count or flags. Debug builds
 * assert the rule wherever mbuf itself writes.
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

/* Opaque outside mbuf (defined in src/mbuf/store.h): its reference count
 * and flags are the ownership rule's to read. Reach its bytes through
 * mb_store_ptr/mb_store_contig or, better, the segment iterator. */
struct mb_store;

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

/* Pointer to byte off of store st (off below its capacity). */
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
/* 1 when the holder of c may write [off, off + len) of it in place under
 * the ownership rule (see the top of this header): for every store under the
 * range, either all its references are links of c (over disjoint bytes), or
 * the bytes were never shared by reference; and no store is read-only or
 * guarded. 1 for an empty range inside c, 0 for a range outside it. */
RPCTLS_API int mb_chain_is_writable(const struct mb_chain *c, size_t off, size_t len);

/* A byte range of a chain: chain offsets [off, off + len). */
struct mb_range {
    size_t off;
    size_t len;
};
/* The parts of c that its holder may write in place (the ownership rule,
 * judged link by link on the whole chain): fills out[0..max) with maximal
 * ranges in increasing order, adjacent writable links joined, and returns
 * how many. Past the max-th range everything counts as not writable, which
 * is always safe. Judge before cutting the chain: cutting a link of a store
 * whose references are all the chain's own makes two chains share it. */
RPCTLS_API int mb_chain_writable_ranges(const struct mb_chain *c, struct mb_range *out, int max);
/* Grows the tail link of c over n bytes of free room right after it and
 * returns a pointer to them (contiguous, contents undefined), when the
 * tail's store is the tail link's alone, writable, and has n contiguous
 * free bytes there; else NULL and c is unchanged. For encoders that write
 * small items straight into the tail. */
RPCTLS_API void *mb_chain_extend_tail(struct mb_chain *c, size_t n);

/* ---- walking a chain ---------------------------------------------------- */

/*
 * A segment iterator (FreeBSD's m_apply, as a cursor): walks a byte range of
 * a chain one segment at a time, a segment being the longest piece that is
 * contiguous in memory within one link (a page of a page vector, or a whole
 * inline/cluster/ext link). Code outside mbuf walks chains with this rather
 * than with struct mb and mb_store_ptr. The chain must not change while an
 * iterator is in use. The bytes may be written through the pointers only
 * when mb_chain_is_writable says so.
 */
struct mb_seg_iter {
    const struct mb *m; /* link holding the next byte */
    size_t lo;          /* offset of the next byte within m */
    size_t left;        /* bytes still to visit */
};
/* Starts at byte off of c, for len bytes. -ERANGE (and an empty iterator)
 * when [off, off + len) is not inside c. */
RPCTLS_API int mb_seg_iter_init(struct mb_seg_iter *it, const struct mb_chain *c, size_t off, size_t len);
/* Starts at byte lo of link m, for len bytes (which the chain holding m
 * must have from there): for callers that keep their own link cursor. */
static inline void mb_seg_iter_init_link(struct mb_seg_iter *it, const struct mb *m, size_t lo, size_t len)
{
    it->m = m;
    it->lo = lo;
    it->left = len;
}
/* The next segment: sets *p and returns its length (> 0), or returns 0 when
 * the range is done. */
RPCTLS_API size_t mb_seg_next(struct mb_seg_iter *it, unsigned char **p);
/* Fills at most max iovec entries with the next segments, joining segments
 * adjacent in memory, and moves the iterator past them. Returns the count
 * (0 when done) and the bytes they hold in *bytes. For readv/writev loops
 * that go on where the last call stopped. */
RPCTLS_API int mb_seg_iovec(struct mb_seg_iter *it, struct iovec *iov, int max, size_t *bytes);
/* Calls fn(arg, p, n) for each segment of [off, off + len) of c, in order
 * (FreeBSD's m_apply). Stops at the first non-zero return and returns it;
 * 0 when every call returned 0; -ERANGE when the range is not inside c. */
RPCTLS_API int mb_chain_apply(const struct mb_chain *c, size_t off, size_t len, int (*fn)(void *arg, const void *p, size_t n),
                   void *arg);

/* ---- receive buffer ----------------------------------------------------- */

/*
 * Reading from a socket straight into pool pages: reserve space, read into
 * it, then commit the bytes that arrived. The buffer holds the unfilled rest
 * of a page-vector receive store; committing splits the filled bytes off its
 * head and appends them to the caller's chain by reference (no copy, and no
 * copy-by-reference that would share or guard the store). The space is the
 * buffer's alone under the ownership rule until then; when it is not (a user
 * marked the store read-only, or shared delivered data from it in guard
 * mode) reserve abandons it and starts a fresh store.
 */
struct mb_rcvbuf {
    struct mb_chain fill; /* reserved space not yet filled */
    size_t chunk;         /* bytes of a fresh receive store; 0: MB_RCVBUF_CHUNK */
};
#define MB_RCVBUF_CHUNK (16 * MB_PAGE_SIZE)
#define MB_RCVBUF_INIT {MB_CHAIN_INIT, 0}

RPCTLS_API void mb_rcvbuf_init(struct mb_rcvbuf *rb, size_t chunk);
/* Drops the unfilled space. The buffer stays usable (reserve starts afresh). */
RPCTLS_API void mb_rcvbuf_free(struct mb_rcvbuf *rb);
/* Fills at most maxiov (> 0) iovec entries with space to read into, taking
 * a fresh store when there is none; returns the count, or -EINVAL / -ENOMEM. */
RPCTLS_API int mb_rcvbuf_reserve(struct mb_rcvbuf *rb, struct iovec *iov, int maxiov);
/* The first n bytes of the reserved space arrived: appends them to dst.
 * 0, -EINVAL when n is more than was reserved, -ENOMEM. */
RPCTLS_API int mb_rcvbuf_commit(struct mb_rcvbuf *rb, size_t n, struct mb_chain *dst);
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
