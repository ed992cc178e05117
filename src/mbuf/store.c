/*
 * src/mbuf/store.c - storage objects: constructors, addressing, references.
 */
#include "mbuf/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

_Static_assert((uint64_t)MB_PV_MAXPAGES * MB_PAGE_SIZE <= UINT32_MAX,
               "a page vector's capacity (npages * MB_PAGE_SIZE) is kept in the uint32_t st->size");
_Static_assert(MB_INLINE_SIZE <= UINT32_MAX, "an inline store's capacity is kept in the uint32_t st->size");

static void store_init(struct mb_store *st, uint16_t kind, uint16_t flags, uint32_t size)
{
    atomic_init(&st->refs, 1u);
    st->kind = kind;
    st->flags = flags;
    st->size = size;
    st->npages = 0;
    atomic_init(&st->shared_end, 0u);
    st->free_next = NULL;
}

void mb__store_ref(struct mb_store *st)
{
    unsigned old = atomic_fetch_add_explicit(&st->refs, 1, memory_order_relaxed);
    RPCTLS_CHECK(old > 0 && "mb__store_ref: reference to a freed store");
    (void)old;
}

void mb__store_share(struct mb_store *st, size_t end)
{
    RPCTLS_CHECK(end <= st->size && "mb__store_share: shared range past the end of the store");
    /* Mark and guard before the new reference exists, so that by the time
     * anyone else can reach the bytes the ownership rule says they are
     * shared, and their pages are read-only. Only copy-by-reference shares
     * bytes; split's second reference covers bytes the first no longer does. */
    uint32_t cur = atomic_load_explicit(&st->shared_end, memory_order_relaxed);
    while (cur < end && !atomic_compare_exchange_weak_explicit(&st->shared_end, &cur, (uint32_t)end,
                                                               memory_order_release, memory_order_relaxed))
        ;
    if (st->kind == MB_ST_PAGES && !(st->flags & MB_STF_GUARDED) && mb__guard_get())
        mb__guard_store(st);
    mb__store_ref(st);
}

void mb__store_unref(struct mb_store *st)
{
    unsigned old = atomic_fetch_sub_explicit(&st->refs, 1, memory_order_acq_rel);
    RPCTLS_CHECK(old > 0 && "mb__store_unref: store freed twice");
    if (old != 1)
        return;
    switch (st->kind) {
    case MB_ST_PAGES:
        mb__unguard_store(st);
        for (uint32_t i = 0; i < st->npages; i++)
            mb_page_free(st->u.pages[i]);
        break;
    case MB_ST_CLUSTER:
        free(st->u.ext.base);
        break;
    case MB_ST_EXT:
        if (st->u.ext.free_fn)
            st->u.ext.free_fn(st->u.ext.base, st->u.ext.arg);
        break;
    default:
        break;
    }
    mb__store_free(st);
}

struct mb_store *mb__pages_store_new(uint32_t npages)
{
    RPCTLS_CHECK(npages > 0 && npages <= MB_PV_MAXPAGES && "mb__pages_store_new: bad page count");
    struct mb_store *st = mb__store_alloc();
    if (!st)
        return NULL;
    store_init(st, MB_ST_PAGES, 0, npages * MB_PAGE_SIZE);
    for (uint32_t i = 0; i < npages; i++) {
        void *p = mb_page_alloc();
        if (!p) {
            for (uint32_t j = 0; j < i; j++)
                mb_page_free(st->u.pages[j]);
            mb__store_free(st);
            return NULL;
        }
        st->u.pages[i] = p;
    }
    st->npages = npages;
    return st;
}

/* Hangs one link of [0, len) of st on c; releases st on failure. */
static struct mb *append_new_store(struct mb_chain *c, struct mb_store *st, size_t off, size_t len)
{
    struct mb *m = mb__link_alloc();
    if (!m) {
        mb__store_unref(st);
        return NULL;
    }
    m->st = st;
    m->off = off;
    m->len = len;
    mb__link_append(c, m);
    return m;
}

struct mb *mb_append_inline(struct mb_chain *c, size_t len)
{
    MB_CHAIN_INVARIANT(c);
    if (len == 0 || len > MB_INLINE_SIZE)
        return NULL;
    struct mb_store *st = mb__store_alloc();
    if (!st)
        return NULL;
    store_init(st, MB_ST_INLINE, 0, MB_INLINE_SIZE);
    return append_new_store(c, st, 0, len);
}

struct mb *mb_append_cluster(struct mb_chain *c, size_t len)
{
    MB_CHAIN_INVARIANT(c);
    if (len == 0 || len > UINT32_MAX)
        return NULL;
    struct mb_store *st = mb__store_alloc();
    if (!st)
        return NULL;
    unsigned char *buf = malloc(len);
    if (!buf) {
        mb__store_free(st);
        return NULL;
    }
    mb__note_malloc();
    store_init(st, MB_ST_CLUSTER, 0, (uint32_t)len);
    st->u.ext.base = buf;
    st->u.ext.free_fn = NULL;
    st->u.ext.arg = NULL;
    return append_new_store(c, st, 0, len);
}

struct mb *mb_append_ext(struct mb_chain *c, void *base, size_t len, uint16_t flags, mb_ext_free_fn free_fn,
                         void *arg)
{
    MB_CHAIN_INVARIANT(c);
    if (!base || len == 0 || len > UINT32_MAX)
        return NULL;
    struct mb_store *st = mb__store_alloc();
    if (!st)
        return NULL;
    store_init(st, MB_ST_EXT, flags & MB_STF_RDONLY, (uint32_t)len);
    st->u.ext.base = base;
    st->u.ext.free_fn = NULL; /* on link failure the caller keeps ownership */
    st->u.ext.arg = arg;
    struct mb *m = append_new_store(c, st, 0, len);
    if (m)
        st->u.ext.free_fn = free_fn;
    return m;
}

int mb_append_pages(struct mb_chain *c, size_t first_off, size_t len)
{
    MB_CHAIN_INVARIANT(c);
    if (first_off >= MB_PAGE_SIZE)
        return -EINVAL;
    struct mb_chain t = MB_CHAIN_INIT;
    size_t fo = first_off;
    while (len > 0) {
        size_t n = (size_t)MB_PV_MAXPAGES * MB_PAGE_SIZE - fo;
        if (n > len)
            n = len;
        uint32_t np = (uint32_t)((fo + n + MB_PAGE_SIZE - 1) / MB_PAGE_SIZE);
        struct mb_store *st = mb__pages_store_new(np);
        if (!st || !append_new_store(&t, st, fo, n)) {
            mb_chain_free(&t);
            return -ENOMEM;
        }
        len -= n;
        fo = 0;
    }
    mb_chain_concat(c, &t);
    return 0;
}

unsigned char *mb_store_ptr(const struct mb_store *st, size_t off)
{
    size_t contig;
    return mb__store_at(st, off, &contig);
}

size_t mb_store_contig(const struct mb_store *st, size_t off)
{
    size_t contig;
    if (off >= st->size)
        return 0;
    mb__store_at(st, off, &contig);
    return contig;
}

void mb_store_set_rdonly(struct mb_store *st)
{
    __atomic_fetch_or(&st->flags, (uint16_t)MB_STF_RDONLY, __ATOMIC_RELEASE);
    if (st->kind == MB_ST_PAGES && mb__guard_get())
        mb__guard_store(st);
}
