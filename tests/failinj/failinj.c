/*
 * tests/failinj/failinj.c - see failinj.h.
 */
#define _GNU_SOURCE
#include "failinj/failinj.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <openssl/crypto.h>

#include "rpctls/mbuf.h"
#include "mbuf/pool.h"

static atomic_int fi_on;
static atomic_long fi_countdown; /* > 0: that many more allocations, the last fails */
static atomic_long fi_count[FI_NKINDS];
static atomic_int fi_fired, fi_fired_kind;
static atomic_int fi_kind_only = -1; /* -1: the countdown counts every kind */

/* 1 when this allocation is to fail. */
static int fi_hit(enum fi_kind k)
{
    if (!atomic_load_explicit(&fi_on, memory_order_relaxed))
        return 0;
    atomic_fetch_add(&fi_count[k], 1);
    int only = atomic_load_explicit(&fi_kind_only, memory_order_relaxed);
    if (only >= 0 && only != (int)k)
        return 0;
    if (atomic_load(&fi_countdown) <= 0)
        return 0;
    if (atomic_fetch_sub(&fi_countdown, 1) != 1)
        return 0;
    atomic_store(&fi_fired_kind, (int)k);
    atomic_store(&fi_fired, 1);
    errno = ENOMEM;
    return 1;
}

void failinj_arm_kind(enum fi_kind kind, long n)
{
    for (int k = 0; k < FI_NKINDS; k++)
        atomic_store(&fi_count[k], 0);
    atomic_store(&fi_fired, 0);
    atomic_store(&fi_kind_only, (int)kind);
    atomic_store(&fi_countdown, n);
    atomic_store(&fi_on, 1);
}

void failinj_arm(long n)
{
    atomic_store(&fi_kind_only, -1);
    for (int k = 0; k < FI_NKINDS; k++)
        atomic_store(&fi_count[k], 0);
    atomic_store(&fi_fired, 0);
    atomic_store(&fi_countdown, n);
    atomic_store(&fi_on, 1);
}

void failinj_disarm(struct fi_report *out)
{
    atomic_store(&fi_on, 0);
    atomic_store(&fi_countdown, 0);
    if (out) {
        for (int k = 0; k < FI_NKINDS; k++)
            out->count[k] = atomic_load(&fi_count[k]);
        out->fired = atomic_load(&fi_fired);
        out->fired_kind = (enum fi_kind)atomic_load(&fi_fired_kind);
    }
}

/* ---- libc allocators (ld --wrap) ------------------------------------------ */

void *__real_malloc(size_t n);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void *__real_aligned_alloc(size_t al, size_t n);
void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);

void *__wrap_malloc(size_t n)
{
    return fi_hit(FI_MALLOC) ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t a, size_t b)
{
    return fi_hit(FI_MALLOC) ? NULL : __real_calloc(a, b);
}

void *__wrap_realloc(void *p, size_t n)
{
    return fi_hit(FI_MALLOC) ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    return fi_hit(FI_MALLOC) ? NULL : __real_strdup(s);
}

void *__wrap_aligned_alloc(size_t al, size_t n)
{
    return fi_hit(FI_MALLOC) ? NULL : __real_aligned_alloc(al, n);
}

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    /* Only anonymous mappings are allocations (the pool's arenas). */
    if ((flags & MAP_ANONYMOUS) && fi_hit(FI_MALLOC))
        return MAP_FAILED;
    return __real_mmap(addr, len, prot, flags, fd, off);
}

/* ---- pool objects ---------------------------------------------------------- */

void *__real_mb_page_alloc(void);
struct mb_store *__real_mb__store_alloc(void);
struct mb *__real_mb__link_alloc(void);

void *__wrap_mb_page_alloc(void)
{
    return fi_hit(FI_POOL) ? NULL : __real_mb_page_alloc();
}

struct mb_store *__wrap_mb__store_alloc(void)
{
    return fi_hit(FI_POOL) ? NULL : __real_mb__store_alloc();
}

struct mb *__wrap_mb__link_alloc(void)
{
    return fi_hit(FI_POOL) ? NULL : __real_mb__link_alloc();
}

/* The record-sized buffers that out-of-place sealing takes (pool class). */
struct mb *__real_mb_append_rec(struct mb_chain *c, size_t off, size_t len);
struct mb *__wrap_mb_append_rec(struct mb_chain *c, size_t off, size_t len);
struct mb *__wrap_mb_append_rec(struct mb_chain *c, size_t off, size_t len)
{
    return fi_hit(FI_POOL) ? NULL : __real_mb_append_rec(c, off, len);
}

/* ---- OpenSSL ------------------------------------------------------------------ */

static void *ossl_malloc(size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    return fi_hit(FI_OPENSSL) ? NULL : __real_malloc(n);
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    return fi_hit(FI_OPENSSL) ? NULL : __real_realloc(p, n);
}

static void ossl_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    free(p);
}

int failinj_init(void)
{
    return CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free) ? 0 : -1;
}
