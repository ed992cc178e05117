/*
 * src/mbuf/check.h - invariant checks that run (build option RPCTLS_INVARIANTS).
 *
 * RPCTLS_CHECK(cond): with RPCTLS_INVARIANTS, aborts with file:line, the
 * function and the violated condition when cond is false, whatever NDEBUG
 * says; otherwise it is assert(cond) (compiled out under NDEBUG).
 *
 * MB_CHAIN_INVARIANT(c): the chain invariant (mb_chain_check(c) == 0) as
 * precondition and postcondition of a chain operation. Put it at the top of
 * the operation's body: it checks c on entry and again on every return
 * (a cleanup variable), so no exit path is missed. Without
 * RPCTLS_INVARIANTS it is nothing.
 */
#ifndef RPCTLS_MBUF_CHECK_H
#define RPCTLS_MBUF_CHECK_H

#include <assert.h>

#include "rpctls/mbuf.h"

#ifdef RPCTLS_INVARIANTS

__attribute__((noreturn, cold)) void rpctls__check_fail(const char *file, int line, const char *func,
                                                       const char *cond);

#define RPCTLS_CHECK(cond) \
    (__builtin_expect(!!(cond), 1) ? (void)0 : rpctls__check_fail(__FILE__, __LINE__, __func__, #cond))

/* 0 when c holds the chain invariant. Chains of up to MB_INV_FULL_LINKS
 * links are walked whole (mb_chain_check); longer ones get the O(1) checks
 * only (head, tail, emptiness), so that building a long chain piece by
 * piece (a send queue of 70,000 small replies) does not become quadratic. */
#define MB_INV_FULL_LINKS 128
int mb__chain_invariant(const struct mb_chain *c);

/* The postcondition, run when the guard variable goes out of scope. */
struct mb__inv {
    const struct mb_chain *c;
    const char *file;
    int line;
    const char *func;
};
void mb__chain_invariant_post(const struct mb__inv *v);

#define MB__INV_CAT2(a, b) a##b
#define MB__INV_CAT(a, b) MB__INV_CAT2(a, b)
#define MB_CHAIN_INVARIANT(c)                                                                        \
    RPCTLS_CHECK(mb__chain_invariant(c) == 0 && "precondition: chain invariant");                         \
    const struct mb__inv MB__INV_CAT(mb_inv_, __LINE__)                                              \
        __attribute__((cleanup(mb__chain_invariant_post), unused)) = {(c), __FILE__, __LINE__, __func__}

#else

#define RPCTLS_CHECK(cond) assert(cond)
#define MB_CHAIN_INVARIANT(c) ((void)0)

#endif

#endif
