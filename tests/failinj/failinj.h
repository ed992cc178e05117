/*
 * tests/failinj/failinj.h - allocation-failure injection, for tests only
 * (not part of the library or its public headers).
 *
 * A program linked with failinj.c and the linker options in
 * tests/CMakeLists.txt (-Wl,--wrap=SYMBOL for each allocator below) has
 * every allocation made by the statically linked library go through a
 * counter:
 *   FI_POOL     mb_page_alloc, mb__store_alloc, mb__link_alloc (pool objects)
 *   FI_MALLOC   malloc, calloc, realloc, strdup, aligned_alloc, and mmap
 *               (the pool's arenas) called from the library or the test
 *   FI_OPENSSL  every OpenSSL allocation (CRYPTO_set_mem_functions)
 * failinj_arm(n) makes the nth counted allocation from now fail (NULL /
 * MAP_FAILED, errno ENOMEM); failinj_arm_kind(k, n) the nth of kind k;
 * failinj_arm(0) only counts. Counting is off
 * until the first failinj_arm and after failinj_disarm. Allocations by
 * other shared libraries (libc internals, GnuTLS, ...) are not counted.
 */
#ifndef RPCTLS_TEST_FAILINJ_H
#define RPCTLS_TEST_FAILINJ_H

enum fi_kind { FI_POOL, FI_MALLOC, FI_OPENSSL, FI_NKINDS };

struct fi_report {
    long count[FI_NKINDS]; /* allocations seen while armed */
    int fired;             /* the nth allocation happened (and failed) */
    enum fi_kind fired_kind;
};

/* Installs the OpenSSL hooks: call first in main, before any OpenSSL use.
 * 0, or -1 when OpenSSL has allocated already. */
int failinj_init(void);
void failinj_arm(long n);
/* The same, counting (for n) only allocations of one kind. */
void failinj_arm_kind(enum fi_kind kind, long n);
void failinj_disarm(struct fi_report *out);

#endif
