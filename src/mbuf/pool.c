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
 * The in-use counters are atomics updated on every operation so that they
 * are exact (they are what mb_pool_shutdown() checks).
 */
#include "mbuf/pool.h"

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

enum { K_PAGE, K_STORE, K_LINK, K_N };

static const size_t obj_size[K_N] = {MB_PAGE_SIZE, sizeof(struct mb_store), sizeof(struct mb)};

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

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gstack g_free[K_N];
static void **g_arenas;
static size_t g_narenas, g_arenas_cap;
static struct slab *g_slabs;
static uint64_t g_arena_allocs; /* under g_lock */
static atomic_uint g_gen;       /* bumped by a successful shutdown */
static atomic_int g_guard;

/* Hot counters, each on its own cache line. */
static struct {
    _Alignas(64) atomic_uint_fast64_t pages_in_use;
    atomic_uint_fast64_t page_allocs;
    atomic_uint_fast64_t pages_peak;
    _Alignas(64) atomic_uint_fast64_t stores_in_use;
    _Alignas(64) atomic_uint_fast64_t links_in_use;
    _Alignas(64) atomic_uint_fast64_t obj_mallocs;
} g_st;

struct tcache {
    unsigned gen;
    int registered;
    unsigned n[K_N];
    void *v[K_N][TC_MAX];
};
static _Thread_local struct tcache tc;

static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_key;
static int g_key_ok;

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

/* Under g_lock. */
static int add_arena(int populate)
{
    if (g_narenas == g_arenas_cap) {
        size_t ncap = g_arenas_cap ? 2 * g_arenas_cap : 16;
        void **na = realloc(g_arenas, ncap * sizeof(void *));
        if (!na)
            return -ENOMEM;
        g_arenas = na;
        g_arenas_cap = ncap;
    }
    if (gstack_grow(K_PAGE, ARENA_PAGES) < 0)
        return -ENOMEM;
    size_t bytes = (size_t)ARENA_PAGES * MB_PAGE_SIZE;
    unsigned char *a =
        mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | (populate ? MAP_POPULATE : 0), -1, 0);
    if (a == MAP_FAILED)
        return -ENOMEM;
    MB_POISON(a, bytes);
    g_arenas[g_narenas++] = a;
    g_arena_allocs++;
    struct gstack *g = &g_free[K_PAGE];
    /* Pushed highest first so that pages pop in ascending address order:
     * consecutive allocations are then often adjacent in memory, and
     * mb_chain_to_iovec merges them. */
    for (size_t i = ARENA_PAGES; i-- > 0;)
        g->v[g->n++] = a + i * MB_PAGE_SIZE;
    g->cap += ARENA_PAGES;
    return 0;
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
    atomic_fetch_add_explicit(&g_st.obj_mallocs, 1, memory_order_relaxed);
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

static void tc_flush_locked(struct tcache *t, int k, unsigned count)
{
    struct gstack *g = &g_free[k];
    assert(count <= t->n[k]);
    /* The oldest entries (bottom of the stash) go back; the most recently
     * freed, cache-warm ones stay. */
    assert(g->n + count <= g->cap && "mb pool: free stack overflow (double free?)");
    memcpy(&g->v[g->n], &t->v[k][0], count * sizeof(void *));
    g->n += count;
    t->n[k] -= count;
    memmove(&t->v[k][0], &t->v[k][count], t->n[k] * sizeof(void *));
}

static void tc_flush_all(struct tcache *t)
{
    if (t->gen != atomic_load_explicit(&g_gen, memory_order_acquire)) {
        memset(t->n, 0, sizeof(t->n));
        return;
    }
    pthread_mutex_lock(&g_lock);
    for (int k = 0; k < K_N; k++)
        if (t->n[k])
            tc_flush_locked(t, k, t->n[k]);
    pthread_mutex_unlock(&g_lock);
}

static void tc_thread_exit(void *arg)
{
    struct tcache *t = arg;
    tc_flush_all(t);
    t->registered = 0;
}

static void key_init(void)
{
    g_key_ok = pthread_key_create(&g_key, tc_thread_exit) == 0;
}

static inline struct tcache *tc_get(void)
{
    struct tcache *t = &tc;
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
    if (!t->registered) {
        pthread_once(&g_key_once, key_init);
        if (g_key_ok && pthread_setspecific(g_key, t) == 0)
            t->registered = 1;
    }
    pthread_mutex_lock(&g_lock);
    struct gstack *g = &g_free[k];
    if (g->n == 0) {
        int r = k == K_PAGE ? add_arena(0) : add_slab(k);
        if (r < 0) {
            pthread_mutex_unlock(&g_lock);
            return r;
        }
    }
    unsigned take = g->n < TC_BATCH ? (unsigned)g->n : TC_BATCH;
    assert(t->n[k] + take <= TC_MAX);
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
    return p;
}

static inline void obj_put(int k, void *p)
{
    struct tcache *t = tc_get();
    MB_POISON(p, obj_size[k]);
    if (__builtin_expect(t->n[k] == TC_MAX, 0)) {
        pthread_mutex_lock(&g_lock);
        tc_flush_locked(t, k, TC_BATCH);
        pthread_mutex_unlock(&g_lock);
    }
    t->v[k][t->n[k]++] = p;
}

/* ---- public page API ---------------------------------------------------- */

void *mb_page_alloc(void)
{
    void *p = obj_get(K_PAGE);
    if (!p)
        return NULL;
    uint_fast64_t now = atomic_fetch_add_explicit(&g_st.pages_in_use, 1, memory_order_relaxed) + 1;
    atomic_fetch_add_explicit(&g_st.page_allocs, 1, memory_order_relaxed);
    uint_fast64_t peak = atomic_load_explicit(&g_st.pages_peak, memory_order_relaxed);
    while (now > peak &&
           !atomic_compare_exchange_weak_explicit(&g_st.pages_peak, &peak, now, memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
    return p;
}

void mb_page_free(void *page)
{
    if (!page)
        return;
    assert(((uintptr_t)page & (MB_PAGE_SIZE - 1)) == 0 && "mb_page_free: not a page");
    uint_fast64_t old = atomic_fetch_sub_explicit(&g_st.pages_in_use, 1, memory_order_relaxed);
    assert(old > 0 && "mb_page_free: more pages freed than allocated");
    (void)old;
    obj_put(K_PAGE, page);
}

/* ---- private object API ------------------------------------------------- */

struct mb_store *mb__store_alloc(void)
{
    struct mb_store *st = obj_get(K_STORE);
    if (st)
        atomic_fetch_add_explicit(&g_st.stores_in_use, 1, memory_order_relaxed);
    return st;
}

void mb__store_free(struct mb_store *st)
{
    uint_fast64_t old = atomic_fetch_sub_explicit(&g_st.stores_in_use, 1, memory_order_relaxed);
    assert(old > 0 && "mb__store_free: more stores freed than allocated");
    (void)old;
    obj_put(K_STORE, st);
}

struct mb *mb__link_alloc(void)
{
    struct mb *m = obj_get(K_LINK);
    if (m)
        atomic_fetch_add_explicit(&g_st.links_in_use, 1, memory_order_relaxed);
    return m;
}

void mb__link_free(struct mb *m)
{
    uint_fast64_t old = atomic_fetch_sub_explicit(&g_st.links_in_use, 1, memory_order_relaxed);
    assert(old > 0 && "mb__link_free: more links freed than allocated");
    (void)old;
    obj_put(K_LINK, m);
}

void mb__note_malloc(void)
{
    atomic_fetch_add_explicit(&g_st.obj_mallocs, 1, memory_order_relaxed);
}

/* ---- stats, reserve, shutdown ------------------------------------------- */

void mb_pool_get_stats(struct mb_pool_stats *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&g_lock);
    out->pages_total = g_free[K_PAGE].cap;
    out->arena_allocs = g_arena_allocs;
    pthread_mutex_unlock(&g_lock);
    out->pages_in_use = atomic_load_explicit(&g_st.pages_in_use, memory_order_relaxed);
    out->pages_peak = atomic_load_explicit(&g_st.pages_peak, memory_order_relaxed);
    out->page_allocs = atomic_load_explicit(&g_st.page_allocs, memory_order_relaxed);
    out->stores_in_use = atomic_load_explicit(&g_st.stores_in_use, memory_order_relaxed);
    out->links_in_use = atomic_load_explicit(&g_st.links_in_use, memory_order_relaxed);
    out->obj_mallocs = atomic_load_explicit(&g_st.obj_mallocs, memory_order_relaxed);
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

int mb_pool_shutdown(void)
{
    struct tcache *t = tc_get();
    tc_flush_all(t);
    pthread_mutex_lock(&g_lock);
    if (atomic_load(&g_st.pages_in_use) || atomic_load(&g_st.stores_in_use) || atomic_load(&g_st.links_in_use)) {
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
    atomic_store(&g_st.page_allocs, 0);
    atomic_store(&g_st.pages_peak, 0);
    atomic_store(&g_st.obj_mallocs, 0);
    atomic_fetch_add_explicit(&g_gen, 1, memory_order_release);
    t->gen = atomic_load(&g_gen);
    pthread_mutex_unlock(&g_lock);
    return 0;
}

/* ---- guard mode --------------------------------------------------------- */

void mb_guard_set(int on)
{
    atomic_store(&g_guard, on ? 1 : 0);
}

int mb_guard_get(void)
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
    assert(st->kind == MB_ST_PAGES && "mb__guard_store: not a page vector");
    if (st->flags & MB_STF_GUARDED)
        return;
    protect_pages(st, PROT_READ);
    st->flags |= MB_STF_GUARDED;
}

void mb__unguard_store(struct mb_store *st)
{
    if (!(st->flags & MB_STF_GUARDED))
        return;
    protect_pages(st, PROT_READ | PROT_WRITE);
    st->flags &= (uint16_t)~MB_STF_GUARDED;
}
