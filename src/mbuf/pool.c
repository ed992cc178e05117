/*
 * src/mbuf/pool.c - page pool, link/store object caches, guard mode.
 *
 * Three kinds of objects are pooled: 4 KiB pages (carved from 4 MiB mmap'd
 * arenas), store objects and link objects (carved from malloc'd slabs).
 * Each kind has a global free stack (an array of pointers, guarded by one
 * mutex) and a per-thread stash of up to TC_MAX entries. A thread moves
 * TC_BATCH entries at a time between its stash and the global stack, so the
 * mutex is taken at most once per TC_BATCH operations, and freeing a page
 * never touches the page itself.
 *
 * The counters live in the thread's stash too (owner-only relaxed stores, no
 * shared cache line on the hot path) and are folded into the global counters
 * whenever the thread takes the mutex anyway; mb_pool_get_stats() and
 * mb_pool_shutdown() add up the registered threads' unfolded deltas, so the
 * in-use counts are exact whenever no other thread is mid-operation.
 */
#include "mbuf/store.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#define MB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MB_ASAN 1
#endif
#endif

#ifdef MB_ASAN
#include <sanitizer/asan_interface.h>
/* Pooled objects are poisoned while free, so ASan still catches use after
 * free of links, stores and pages even though they are recycled. */
#define MB_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define MB_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define MB_POISON(p, n) ((void)(p), (void)(n))
#define MB_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define ARENA_PAGES 1024 /* 4 MiB per arena */
#define TC_MAX 64
#define TC_BATCH 32
#define SLAB_BYTES (64 * 1024)

_Static_assert((MB_PAGE_SIZE & (MB_PAGE_SIZE - 1)) == 0,
               "MB_PAGE_SIZE must be a power of two: mb_page_free and the guard code test alignment with a mask");
_Static_assert(TC_BATCH >= 1 && TC_BATCH <= TC_MAX,
               "a refill moves TC_BATCH objects into an empty stash, a flush moves TC_BATCH out of a full one");
_Static_assert(ARENA_PAGES >= TC_BATCH, "one new arena must be enough for a refill");

enum { K_PAGE, K_STORE, K_LINK, K_REC, K_N };

static const size_t obj_size[K_N] = {MB_PAGE_SIZE, sizeof(struct mb_store), sizeof(struct mb), MB_REC_SIZE};

/* Record buffers (K_REC) are carved from arenas of the same size as page
 * arenas, REC_PER_ARENA to an arena, so every buffer is 128-byte aligned. */
#define REC_PER_ARENA (ARENA_PAGES * MB_PAGE_SIZE / MB_REC_SIZE)
_Static_assert(MB_REC_SIZE % 128 == 0, "record buffers stay 128-byte aligned");
_Static_assert(REC_PER_ARENA >= TC_BATCH, "a record arena fills at least one stash batch");

struct gstack {
    void **v;
    size_t n;   /* free entries */
    size_t cap; /* == objects created of this kind */
};

/* Slab header; objects follow at an aligned offset. */
struct slab {
    struct slab *next;
    size_t bytes;
};
#define SLAB_HDR ((sizeof(struct slab) + 63) & ~(size_t)63)
_Static_assert(sizeof(struct mb_store) <= SLAB_BYTES - SLAB_HDR && sizeof(struct mb) <= SLAB_BYTES - SLAB_HDR,
               "a slab must hold at least one store and one link object");

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gstack g_free[K_N];
static void **g_arenas;
static size_t g_narenas, g_arenas_cap;
static struct slab *g_slabs;
static uint64_t g_arena_allocs; /* under g_lock */
static atomic_uint g_gen;       /* bumped by a successful shutdown */
static atomic_int g_guard;

/* Global counters, under g_lock. In-use counts are signed: one thread may
 * fold the free of a page another thread has not yet folded the alloc of. */
static int64_t g_in_use[K_N];
static uint64_t g_page_allocs, g_pages_peak;
static atomic_uint_fast64_t g_obj_mallocs;

struct tcache {
    unsigned gen;
    int registered;
    struct tcache *reg_next; /* registry of live threads' stashes, under g_lock */
    /* Unfolded counter deltas; written only by the owner, read by stats. */
    _Atomic int64_t d_in_use[K_N];
    _Atomic int64_t d_page_allocs;
    int64_t d_page_max; /* highest d_in_use[K_PAGE] since the last fold */
    unsigned n[K_N];
    void *v[K_N][TC_MAX];
};
static _Thread_local struct tcache tc;
static struct tcache *g_reg; /* under g_lock */

static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_key;
static int g_key_ok;

/* Owner-only update: a plain load and store, no locked instruction. */
static inline void d_add(_Atomic int64_t *x, int64_t v)
{
    atomic_store_explicit(x, atomic_load_explicit(x, memory_order_relaxed) + v, memory_order_relaxed);
}

/* ---- global stacks ------------------------------------------------------ */

/* Makes room in g_free[k] for `more` additional objects. Under g_lock. */
static int gstack_grow(int k, size_t more)
{
    struct gstack *g = &g_free[k];
    void **nv = realloc(g->v, (g->cap + more) * sizeof(void *));
    if (!nv)
        return -ENOMEM;
    g->v = nv;
    return 0;
}

/* Maps one arena of pages (K_PAGE) or record buffers (K_REC). Under g_lock. */
static int add_arena_kind(int k, int populate)
{
    if (g_narenas == g_arenas_cap) {
        size_t ncap = g_arenas_cap ? 2 * g_arenas_cap : 16;
        void **na = realloc(g_arenas, ncap * sizeof(void *));
        if (!na)
            return -ENOMEM;
        g_arenas = na;
        g_arenas_cap = ncap;
    }
    size_t nobj = k == K_REC ? REC_PER_ARENA : ARENA_PAGES;
    if (gstack_grow(k, nobj) < 0)
        return -ENOMEM;
    size_t bytes = (size_t)ARENA_PAGES * MB_PAGE_SIZE;
    unsigned char *a =
        mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | (populate ? MAP_POPULATE : 0), -1, 0);
    if (a == MAP_FAILED)
        return -ENOMEM;
    MB_POISON(a, bytes);
    g_arenas[g_narenas++] = a;
    g_arena_allocs++;
    struct gstack *g = &g_free[k];
    /* Pushed highest first so that pages pop in ascending address order:
     * consecutive allocations are then often adjacent in memory, and
     * mb_chain_to_iovec merges them. */
    for (size_t i = nobj; i-- > 0;)
        g->v[g->n++] = a + i * obj_size[k];
    g->cap += nobj;
    return 0;
}

static int add_arena(int populate)
{
    return add_arena_kind(K_PAGE, populate);
}

/* Under g_lock. */
static int add_slab(int k)
{
    size_t sz = obj_size[k];
    size_t nobj = (SLAB_BYTES - SLAB_HDR) / sz;
    if (gstack_grow(k, nobj) < 0)
        return -ENOMEM;
    struct slab *s = malloc(SLAB_HDR + nobj * sz);
    if (!s)
        return -ENOMEM;
    atomic_fetch_add_explicit(&g_obj_mallocs, 1, memory_order_relaxed);
    s->next = g_slabs;
    s->bytes = SLAB_HDR + nobj * sz;
    g_slabs = s;
    unsigned char *base = (unsigned char *)s + SLAB_HDR;
    MB_POISON(base, nobj * sz);
    struct gstack *g = &g_free[k];
    for (size_t i = nobj; i-- > 0;)
        g->v[g->n++] = base + i * sz;
    g->cap += nobj;
    return 0;
}

/* ---- per-thread stash ----------------------------------------------------- */

/* Moves t's counter deltas into the globals. Under g_lock; t is the calling
 * thread's stash, or an idle thread's (shutdown). */
static void tc_fold_locked(struct tcache *t)
{
    int64_t peak = g_in_use[K_PAGE] + t->d_page_max;
    if (peak > 0 && (uint64_t)peak > g_pages_peak)
        g_pages_peak = (uint64_t)peak;
    for (int k = 0; k < K_N; k++) {
        g_in_use[k] += atomic_load_explicit(&t->d_in_use[k], memory_order_relaxed);
        atomic_store_explicit(&t->d_in_use[k], 0, memory_order_relaxed);
    }
    g_page_allocs += (uint64_t)atomic_load_explicit(&t->d_page_allocs, memory_order_relaxed);
    atomic_store_explicit(&t->d_page_allocs, 0, memory_order_relaxed);
    t->d_page_max = 0;
}

static void tc_flush_locked(struct tcache *t, int k, unsigned count)
{
    struct gstack *g = &g_free[k];
    RPCTLS_CHECK(count <= t->n[k]);
    /* The oldest entries (bottom of the stash) go back; the most recently
     * freed, cache-warm ones stay. */
    RPCTLS_CHECK(g->n + count <= g->cap && "mb pool: free stack overflow (double free?)");
    memcpy(&g->v[g->n], &t->v[k][0], count * sizeof(void *));
    g->n += count;
    t->n[k] -= count;
    memmove(&t->v[k][0], &t->v[k][count], t->n[k] * sizeof(void *));
}

/* Under g_lock. */
static void tc_flush_all_locked(struct tcache *t)
{
    tc_fold_locked(t);
    if (t->gen != atomic_load_explicit(&g_gen, memory_order_relaxed)) {
        memset(t->n, 0, sizeof(t->n)); /* stale: those objects are gone */
        return;
    }
    for (int k = 0; k < K_N; k++)
        if (t->n[k])
            tc_flush_locked(t, k, t->n[k]);
}

static void tc_thread_exit(void *arg)
{
    struct tcache *t = arg;
    pthread_mutex_lock(&g_lock);
    tc_flush_all_locked(t);
    for (struct tcache **pp = &g_reg; *pp; pp = &(*pp)->reg_next)
        if (*pp == t) {
            *pp = t->reg_next;
            break;
        }
    t->registered = 0;
    pthread_mutex_unlock(&g_lock);
}

static void key_init(void)
{
    g_key_ok = pthread_key_create(&g_key, tc_thread_exit) == 0;
}

static void __attribute__((noinline)) tc_register(struct tcache *t)
{
    pthread_once(&g_key_once, key_init);
    t->registered = 1;
    /* Without the key (out of keys) the thread cannot unregister at exit,
     * so it stays out of the registry: its stash is not flushed at exit and
     * its unfolded counter deltas are not seen by mb_pool_get_stats. */
    if (!g_key_ok || pthread_setspecific(g_key, t) != 0)
        return;
    pthread_mutex_lock(&g_lock);
    t->reg_next = g_reg;
    g_reg = t;
    pthread_mutex_unlock(&g_lock);
}

static inline struct tcache *tc_get(void)
{
    struct tcache *t = &tc;
    if (__builtin_expect(!t->registered, 0))
        tc_register(t);
    unsigned gen = atomic_load_explicit(&g_gen, memory_order_acquire);
    if (__builtin_expect(t->gen != gen, 0)) {
        /* The pool was shut down and rebuilt since this thread last used it;
         * whatever the stash held was unmapped or freed. */
        memset(t->n, 0, sizeof(t->n));
        t->gen = gen;
    }
    return t;
}

static int tc_refill(struct tcache *t, int k)
{
    pthread_mutex_lock(&g_lock);
    tc_fold_locked(t);
    struct gstack *g = &g_free[k];
    if (g->n == 0) {
        int r = k == K_PAGE || k == K_REC ? add_arena_kind(k, 0) : add_slab(k);
        if (r < 0) {
            pthread_mutex_unlock(&g_lock);
            return r;
        }
    }
    unsigned take = g->n < TC_BATCH ? (unsigned)g->n : TC_BATCH;
    RPCTLS_CHECK(t->n[k] + take <= TC_MAX);
    memcpy(&t->v[k][t->n[k]], &g->v[g->n - take], take * sizeof(void *));
    g->n -= take;
    t->n[k] += take;
    pthread_mutex_unlock(&g_lock);
    return 0;
}

static inline void *obj_get(int k)
{
    struct tcache *t = tc_get();
    if (__builtin_expect(t->n[k] == 0, 0) && tc_refill(t, k) < 0)
        return NULL;
    void *p = t->v[k][--t->n[k]];
    MB_UNPOISON(p, obj_size[k]);
    d_add(&t->d_in_use[k], 1);
    if (k == K_PAGE) {
        d_add(&t->d_page_allocs, 1);
        int64_t d = atomic_load_explicit(&t->d_in_use[K_PAGE], memory_order_relaxed);
        if (d > t->d_page_max)
            t->d_page_max = d;
    }
    return p;
}

#ifdef RPCTLS_INVARIANTS
/* A free of an object that is still in this thread's stash is a double free
 * (one that has moved on to the global stack is caught at shutdown by the
 * accounting check). */
static void stash_check(const struct tcache *t, int k, const void *p)
{
    RPCTLS_CHECK(t->n[k] <= TC_MAX && "mb pool: stash overflow");
    for (unsigned i = 0; i < t->n[k]; i++)
        RPCTLS_CHECK(t->v[k][i] != p && "mb pool: object freed twice");
}
#define POOL_STASH_CHECK(t, k, p) stash_check((t), (k), (p))
#else
#define POOL_STASH_CHECK(t, k, p) ((void)0)
#endif

static inline void obj_put(int k, void *p)
{
    struct tcache *t = tc_get();
    POOL_STASH_CHECK(t, k, p);
    MB_POISON(p, obj_size[k]);
    d_add(&t->d_in_use[k], -1);
    if (__builtin_expect(t->n[k] == TC_MAX, 0)) {
        pthread_mutex_lock(&g_lock);
        tc_fold_locked(t);
        tc_flush_locked(t, k, TC_BATCH);
        pthread_mutex_unlock(&g_lock);
    }
    t->v[k][t->n[k]++] = p;
}

/* ---- public page API and private object API ------------------------------ */

void *mb_page_alloc(void)
{
    return obj_get(K_PAGE);
}

void mb_page_free(void *page)
{
    if (!page)
        return;
    RPCTLS_CHECK(((uintptr_t)page & (MB_PAGE_SIZE - 1)) == 0 && "mb_page_free: not a page");
    obj_put(K_PAGE, page);
}

struct mb_store *mb__store_alloc(void)
{
    return obj_get(K_STORE);
}

void mb__store_free(struct mb_store *st)
{
    obj_put(K_STORE, st);
}

struct mb *mb__link_alloc(void)
{
    return obj_get(K_LINK);
}

void mb__link_free(struct mb *m)
{
    obj_put(K_LINK, m);
}

void *mb_rec_alloc(void)
{
    return obj_get(K_REC);
}

void mb_rec_free(void *rec)
{
    if (!rec)
        return;
    assert(((uintptr_t)rec & 127) == 0 && "mb_rec_free: not a record buffer");
    obj_put(K_REC, rec);
}

static void rec_ext_free(void *base, void *arg)
{
    (void)base;
    mb_rec_free(arg);
}

struct mb *mb_append_rec(struct mb_chain *c, size_t off, size_t len)
{
    if (len == 0 || off > MB_REC_SIZE || len > MB_REC_SIZE - off)
        return NULL;
    unsigned char *rec = mb_rec_alloc();
    if (!rec)
        return NULL;
    /* A writable external store over [off, off + len) of the buffer; the
     * buffer goes back to this thread's stash with the last reference. */
    struct mb *m = mb_append_ext(c, rec + off, len, 0, rec_ext_free, rec);
    if (!m)
        mb_rec_free(rec);
    return m;
}

void mb__note_malloc(void)
{
    atomic_fetch_add_explicit(&g_obj_mallocs, 1, memory_order_relaxed);
}

/* ---- stats, reserve, shutdown ------------------------------------------- */

static uint64_t nonneg(int64_t v)
{
    return v > 0 ? (uint64_t)v : 0;
}

void mb_pool_get_stats(struct mb_pool_stats *out)
{
    int64_t in_use[K_N];
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&g_lock);
    uint64_t allocs = g_page_allocs;
    for (int k = 0; k < K_N; k++)
        in_use[k] = g_in_use[k];
    for (struct tcache *t = g_reg; t; t = t->reg_next) {
        for (int k = 0; k < K_N; k++)
            in_use[k] += atomic_load_explicit(&t->d_in_use[k], memory_order_relaxed);
        allocs += (uint64_t)atomic_load_explicit(&t->d_page_allocs, memory_order_relaxed);
    }
    if (in_use[K_PAGE] > 0 && (uint64_t)in_use[K_PAGE] > g_pages_peak)
        g_pages_peak = (uint64_t)in_use[K_PAGE];
    out->pages_in_use = nonneg(in_use[K_PAGE]);
    out->pages_peak = g_pages_peak;
    out->pages_total = g_free[K_PAGE].cap;
    out->arena_allocs = g_arena_allocs;
    out->page_allocs = allocs;
    out->stores_in_use = nonneg(in_use[K_STORE]);
    out->links_in_use = nonneg(in_use[K_LINK]);
    out->recs_in_use = nonneg(in_use[K_REC]);
    out->recs_total = g_free[K_REC].cap;
    pthread_mutex_unlock(&g_lock);
    out->obj_mallocs = atomic_load_explicit(&g_obj_mallocs, memory_order_relaxed);
}

int mb_pool_reserve(size_t npages)
{
    int r = 0;
    pthread_mutex_lock(&g_lock);
    while (g_free[K_PAGE].cap < npages) {
        r = add_arena(1); /* MAP_POPULATE: pre-faulted, writable */
        if (r < 0)
            break;
    }
    pthread_mutex_unlock(&g_lock);
    return r;
}

#ifdef RPCTLS_INVARIANTS
/* The pool's accounting, under g_lock with every counter folded and every
 * other thread idle: no kind has more frees than allocations, and every
 * object created is either in use, on the global stack, or in the stash of a
 * live thread of this generation. */
static void pool_check_locked(void)
{
    unsigned gen = atomic_load_explicit(&g_gen, memory_order_relaxed);
    for (int k = 0; k < K_N; k++) {
        int64_t stashed = 0;
        RPCTLS_CHECK(g_in_use[k] >= 0 && "mb pool: more frees than allocations");
        RPCTLS_CHECK(g_free[k].n <= g_free[k].cap && "mb pool: free stack overflow");
        for (const struct tcache *t = g_reg; t; t = t->reg_next) {
            RPCTLS_CHECK(t->n[k] <= TC_MAX && "mb pool: stash overflow");
            if (t->gen == gen)
                stashed += t->n[k];
        }
        RPCTLS_CHECK((int64_t)g_free[k].n + stashed + g_in_use[k] == (int64_t)g_free[k].cap &&
                     "mb pool: objects lost or counted twice (free + stashed + in use != created)");
    }
}
#define POOL_CHECK_LOCKED() pool_check_locked()
#else
#define POOL_CHECK_LOCKED() ((void)0)
#endif

int mb_pool_shutdown(void)
{
    struct tcache *self = tc_get();
    pthread_mutex_lock(&g_lock);
    /* Other threads must be idle: their counters are folded here too. */
    for (struct tcache *t = g_reg; t; t = t->reg_next)
        tc_fold_locked(t);
    tc_flush_all_locked(self);
    POOL_CHECK_LOCKED();
    if (g_in_use[K_PAGE] || g_in_use[K_STORE] || g_in_use[K_LINK] || g_in_use[K_REC]) {
        pthread_mutex_unlock(&g_lock);
        return -EBUSY;
    }
    /* Anything not in the global stacks now sits in other threads' stashes;
     * those threads see the new generation on their next pool call and drop
     * their stale stashes without touching them. */
    for (size_t i = 0; i < g_narenas; i++) {
        size_t bytes = (size_t)ARENA_PAGES * MB_PAGE_SIZE;
        MB_UNPOISON(g_arenas[i], bytes);
        munmap(g_arenas[i], bytes);
    }
    free(g_arenas);
    g_arenas = NULL;
    g_narenas = g_arenas_cap = 0;
    while (g_slabs) {
        struct slab *s = g_slabs;
        g_slabs = s->next;
        MB_UNPOISON(s, s->bytes);
        free(s);
    }
    for (int k = 0; k < K_N; k++) {
        free(g_free[k].v);
        memset(&g_free[k], 0, sizeof(g_free[k]));
    }
    g_arena_allocs = 0;
    g_page_allocs = 0;
    g_pages_peak = 0;
    atomic_store(&g_obj_mallocs, 0);
    atomic_fetch_add_explicit(&g_gen, 1, memory_order_release);
    self->gen = atomic_load(&g_gen);
    pthread_mutex_unlock(&g_lock);
    return 0;
}

/* ---- guard mode --------------------------------------------------------- */

void mb__guard_set(int on)
{
    atomic_store(&g_guard, on ? 1 : 0);
}

int mb__guard_get(void)
{
    return atomic_load_explicit(&g_guard, memory_order_relaxed);
}

/* Applies prot to the store's pages, one mprotect per run of pages that are
 * adjacent in memory. */
static void protect_pages(struct mb_store *st, int prot)
{
    uint32_t i = 0;
    while (i < st->npages) {
        unsigned char *start = st->u.pages[i];
        uint32_t j = i + 1;
        while (j < st->npages && (unsigned char *)st->u.pages[j] == start + (size_t)(j - i) * MB_PAGE_SIZE)
            j++;
        /* Failure (e.g. out of VMAs) leaves the pages writable: guard mode
         * then catches less, but the flag still makes them non-writable for
         * mb_chain_is_writable. */
        (void)mprotect(start, (size_t)(j - i) * MB_PAGE_SIZE, prot);
        i = j;
    }
}

void mb__guard_store(struct mb_store *st)
{
    RPCTLS_CHECK(st->kind == MB_ST_PAGES && "mb__guard_store: not a page vector");
    if (st->flags & MB_STF_GUARDED)
        return;
    protect_pages(st, PROT_READ);
    /* Two threads may share one store at once; mprotect is idempotent and
     * the flag is set atomically. */
    __atomic_fetch_or(&st->flags, (uint16_t)MB_STF_GUARDED, __ATOMIC_RELEASE);
}

void mb__unguard_store(struct mb_store *st)
{
    if (!(st->flags & MB_STF_GUARDED))
        return;
    protect_pages(st, PROT_READ | PROT_WRITE);
    st->flags &= (uint16_t)~MB_STF_GUARDED;
}
