/*
 * tests/test_mbuf_guard.c - guard mode: shared or read-only page vectors are
 * mprotect()ed, so a write to them faults at the writing instruction.
 *
 * Faulting writes run in a forked child whose own SIGSEGV handler _exit(77)s
 * (installed with sigaction, so it also works under ASan, which otherwise
 * reports the fault itself).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mbuf/store.h" /* white-box: reference counts, flags, kinds */
#include "rpctls/mbuf.h"
#include "mbuf/mbuf_test.h"
#include "test.h"

#define FAULTED 77

static void on_segv(int sig)
{
    (void)sig;
    _exit(FAULTED);
}

/* Runs a one-byte write to p in a child; returns the child's exit code
 * (FAULTED if the write faulted, 0 if it went through), or -1. */
static int child_write(void *p)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_segv;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, NULL);
        sigaction(SIGBUS, &sa, NULL);
        *(volatile unsigned char *)p = 0x5a;
        _exit(0);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

static void fill(struct mb_chain *c, unsigned char v)
{
    for (struct mb *m = c->head; m; m = m->next)
        for (size_t k = 0; k < m->len; k++)
            *mb_store_ptr(m->st, m->off + k) = (unsigned char)(v + k);
}

static void test_shared_faults(void)
{
    mb__guard_set(1);
    CHECK_EQ(mb__guard_get(), 1);
    struct mb_chain c = MB_CHAIN_INIT, d = MB_CHAIN_INIT;
    REQUIRE(mb_append_pages(&c, 100, 3 * MB_PAGE_SIZE) == 0);
    struct mb_store *st = c.head->st;
    CHECK(!(st->flags & MB_STF_GUARDED));
    fill(&c, 1);
    /* unshared: still writable, in this process and in a child */
    CHECK(mb_chain_is_writable(&c, 0, c.len));
    CHECK_EQ(child_write(mb_store_ptr(st, 5000)), 0);
    *mb_store_ptr(st, 5000) = 9;

    REQUIRE(mb_chain_copy_ref(&d, &c, 0, c.len) == 0); /* refs 1 -> 2 */
    CHECK(st->flags & MB_STF_GUARDED);
    CHECK(!mb_chain_is_writable(&c, 0, 1));
    CHECK(!mb_chain_is_writable(&d, 0, 1));
    for (uint32_t i = 0; i < st->npages; i++)
        CHECK_EQ(child_write(st->u.pages[i]), FAULTED);
    CHECK_EQ(child_write(mb_store_ptr(st, 100)), FAULTED);
    /* reading is fine */
    CHECK_EQ(mb_chain_byte(&d, 0), 1);
    CHECK_EQ(mb_chain_byte(&d, 4900), 9);

    /* back to one reference: still guarded, still not writable */
    mb_chain_free(&d);
    CHECK_EQ(atomic_load(&st->refs), 1);
    CHECK(st->flags & MB_STF_GUARDED);
    CHECK(!mb_chain_is_writable(&c, 0, 1));
    CHECK_EQ(child_write(mb_store_ptr(st, 200)), FAULTED);

    /* freed: the pages come back writable. The pool is LIFO, so allocating
     * again returns the same pages; write every byte of each. */
    void *old[MB_PV_MAXPAGES];
    uint32_t n = st->npages;
    memcpy(old, st->u.pages, n * sizeof(void *));
    mb_chain_free(&c);
    void *again[64];
    int seen = 0;
    for (int i = 0; i < 64; i++) {
        again[i] = mb_page_alloc();
        REQUIRE(again[i]);
        for (uint32_t k = 0; k < n; k++)
            seen += again[i] == old[k];
    }
    CHECK_EQ(seen, (int)n);
    for (int i = 0; i < 64; i++)
        CHECK_EQ(child_write(again[i]), 0);
    for (int i = 0; i < 64; i++)
        memset(again[i], 0x77, MB_PAGE_SIZE);
    for (int i = 0; i < 64; i++)
        mb_page_free(again[i]);
    mb__guard_set(0);
}

static void test_split_and_rdonly(void)
{
    mb__guard_set(1);
    struct mb_chain c = MB_CHAIN_INIT, t = MB_CHAIN_INIT;
    /* a split inside a page store gives two links over disjoint ranges: no
     * byte is shared, so each half may write its own bytes (the ownership
     * rule), and the store is not guarded */
    REQUIRE(mb_append_pages(&c, 0, 2 * MB_PAGE_SIZE) == 0);
    REQUIRE(mb_chain_split(&c, MB_PAGE_SIZE + 10, &t) == 0);
    CHECK(!(c.head->st->flags & MB_STF_GUARDED));
    CHECK(mb_chain_is_writable(&c, 0, c.len));
    CHECK(mb_chain_is_writable(&t, 0, t.len));
    CHECK_EQ(child_write(mb_store_ptr(t.head->st, MB_PAGE_SIZE + 20)), 0);
    /* a copy-by-reference of either piece does guard it */
    struct mb_chain r = MB_CHAIN_INIT;
    REQUIRE(mb_chain_copy_ref(&r, &t, 0, 1) == 0);
    CHECK(c.head->st->flags & MB_STF_GUARDED);
    CHECK(!mb_chain_is_writable(&c, 0, 1));
    CHECK(!mb_chain_is_writable(&t, 1, 1));
    CHECK_EQ(child_write(mb_store_ptr(t.head->st, MB_PAGE_SIZE + 20)), FAULTED);
    CHECK_EQ(child_write(mb_store_ptr(c.head->st, 0)), FAULTED);
    mb_chain_free(&r);
    mb_chain_free(&c);
    mb_chain_free(&t);

    /* read-only page store: guarded without being shared */
    REQUIRE(mb_append_pages(&c, 0, MB_PAGE_SIZE) == 0);
    fill(&c, 3);
    mb_store_set_rdonly(c.head->st);
    CHECK(c.head->st->flags & MB_STF_GUARDED);
    CHECK(c.head->st->flags & MB_STF_RDONLY);
    CHECK(!mb_chain_is_writable(&c, 0, 1));
    CHECK_EQ(child_write(mb_store_ptr(c.head->st, 0)), FAULTED);
    /* pullup of a guarded store copies instead of writing */
    CHECK_EQ(mb_chain_append_bytes(&c, "abc", 3), 0);
    unsigned char *p = mb_chain_pullup(&c, MB_PAGE_SIZE); /* contiguous already: no copy */
    CHECK(p == mb_store_ptr(c.head->st, 0));
    CHECK(!mb_chain_is_writable(&c, 0, 1));
    mb_chain_trim_head(&c, 1); /* now the first page's worth spans two links */
    p = mb_chain_pullup(&c, MB_PAGE_SIZE);
    REQUIRE(p);
    CHECK_EQ(p[0], 4);
    CHECK_EQ(p[MB_PAGE_SIZE - 1], 'a');
    CHECK(mb_chain_is_writable(&c, 0, MB_PAGE_SIZE));
    mb_chain_free(&c);

    /* non-page stores are never mprotected (they are not page aligned) */
    struct mb_chain e = MB_CHAIN_INIT;
    REQUIRE(mb_append_cluster(&c, 5000));
    REQUIRE(mb_chain_copy_ref(&e, &c, 0, c.len) == 0);
    CHECK(!(c.head->st->flags & MB_STF_GUARDED));
    CHECK(!mb_chain_is_writable(&c, 0, 1));
    mb_chain_free(&e);
    mb_chain_free(&c);
    mb__guard_set(0);
}

static void test_guard_off(void)
{
    mb__guard_set(0);
    CHECK_EQ(mb__guard_get(), 0);
    struct mb_chain c = MB_CHAIN_INIT, d = MB_CHAIN_INIT;
    REQUIRE(mb_append_pages(&c, 0, MB_PAGE_SIZE) == 0);
    REQUIRE(mb_chain_copy_ref(&d, &c, 0, c.len) == 0);
    CHECK(!(c.head->st->flags & MB_STF_GUARDED));
    CHECK(!mb_chain_is_writable(&c, 0, 1)); /* shared is shared, guard or not */
    /* without guard mode a (buggy) write is not caught */
    CHECK_EQ(child_write(mb_store_ptr(c.head->st, 0)), 0);
    mb_chain_free(&d);
    CHECK(mb_chain_is_writable(&c, 0, 1));
    mb_chain_free(&c);
}

int main(void)
{
    TEST_RUN(test_shared_faults);
    TEST_RUN(test_split_and_rdonly);
    TEST_RUN(test_guard_off);
    CHECK_EQ(mb_pool_shutdown(), 0);
    return test_summary();
}
