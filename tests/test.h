/*
 * tests/test.h - the smallest test harness that says where it failed.
 *
 * CHECK(cond) records a failure with file and line and carries on;
 * REQUIRE(cond) also returns from the test function. A test program runs its
 * cases with TEST_RUN(fn) and ends main with `return test_summary();`.
 */
#ifndef RPCTLS_TEST_H
#define RPCTLS_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures;
static int test_checks;

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        test_checks++;                                                                   \
        if (!(cond)) {                                                                   \
            test_failures++;                                                             \
            fprintf(stderr, "%s:%d: %s: CHECK failed: %s\n", __FILE__, __LINE__, __func__, #cond); \
        }                                                                                \
    } while (0)

#define REQUIRE(cond)                                                                    \
    do {                                                                                 \
        test_checks++;                                                                   \
        if (!(cond)) {                                                                   \
            test_failures++;                                                             \
            fprintf(stderr, "%s:%d: %s: REQUIRE failed: %s\n", __FILE__, __LINE__, __func__, #cond); \
            return;                                                                      \
        }                                                                                \
    } while (0)

#define CHECK_EQ(a, b)                                                                   \
    do {                                                                                 \
        long long a_ = (long long)(a), b_ = (long long)(b);                              \
        test_checks++;                                                                   \
        if (a_ != b_) {                                                                  \
            test_failures++;                                                             \
            fprintf(stderr, "%s:%d: %s: CHECK_EQ failed: %s == %lld, %s == %lld\n", __FILE__, __LINE__, \
                    __func__, #a, a_, #b, b_);                                           \
        }                                                                                \
    } while (0)

#define TEST_RUN(fn)                                                                     \
    do {                                                                                 \
        int before_ = test_failures;                                                     \
        fn();                                                                            \
        fprintf(stderr, "%s %s\n", test_failures == before_ ? "ok  " : "FAIL", #fn);     \
    } while (0)

static inline int test_summary(void)
{
    fprintf(stderr, "%d checks, %d failures\n", test_checks, test_failures);
    return test_failures ? 1 : 0;
}

#endif
