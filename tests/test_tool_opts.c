/*
 * test_tool_opts.c - the option parsing the tools share (tools/common/opts.c):
 * tool_parse_size with each flag the tools use (suffixes, overflow, empty,
 * trailing text, negatives, bases) and tool_check_tls's defaults and
 * refusals, with the exact messages rpctls-cp and rpctls-mount print.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/opts.h"
#include "test.h"

#define G TOOL_SIZE_G
#define IB TOOL_SIZE_IB
#define C TOOL_SIZE_C_BASES
#define NONE 0u
#define ALL (G | IB | C)

static const struct {
    const char *s;
    unsigned flags;
    int ret;
    uint64_t v; /* when ret is TOOL_SIZE_OK */
} cases[] = {
    /* plain numbers */
    {"0", NONE, TOOL_SIZE_OK, 0},
    {"4096", NONE, TOOL_SIZE_OK, 4096},
    {"+7", NONE, TOOL_SIZE_OK, 7},
    {" 12", NONE, TOOL_SIZE_OK, 12},
    {"18446744073709551615", NONE, TOOL_SIZE_OK, UINT64_MAX},
    /* K and M always, either case; G only with TOOL_SIZE_G */
    {"4K", NONE, TOOL_SIZE_OK, 4096},
    {"4k", NONE, TOOL_SIZE_OK, 4096},
    {"3M", NONE, TOOL_SIZE_OK, 3u << 20},
    {"3m", NONE, TOOL_SIZE_OK, 3u << 20},
    {"0K", NONE, TOOL_SIZE_OK, 0},
    {"1G", NONE, TOOL_SIZE_TRAILING, 0},
    {"1G", G, TOOL_SIZE_OK, 1u << 30},
    {"2g", G, TOOL_SIZE_OK, 2ull << 30},
    {"16777215M", G, TOOL_SIZE_OK, 16777215ull << 20},
    /* KiB, KB, Ki only with TOOL_SIZE_IB, only after a suffix, "i" then "B" */
    {"4KiB", NONE, TOOL_SIZE_TRAILING, 0},
    {"4KiB", IB, TOOL_SIZE_OK, 4096},
    {"4KB", IB, TOOL_SIZE_OK, 4096},
    {"4Ki", IB, TOOL_SIZE_OK, 4096},
    {"1MiB", IB, TOOL_SIZE_OK, 1u << 20},
    {"1GiB", IB, TOOL_SIZE_TRAILING, 0},
    {"1GiB", G | IB, TOOL_SIZE_OK, 1u << 30},
    {"4Kb", IB, TOOL_SIZE_TRAILING, 0},  /* b is bits */
    {"4KIB", IB, TOOL_SIZE_TRAILING, 0},
    {"4KBi", IB, TOOL_SIZE_TRAILING, 0},
    {"4B", ALL, TOOL_SIZE_TRAILING, 0},  /* no B without a suffix */
    {"4KiBx", ALL, TOOL_SIZE_TRAILING, 0},
    /* 0x and octal only with TOOL_SIZE_C_BASES */
    {"0x1000", NONE, TOOL_SIZE_TRAILING, 0},
    {"0x1000", C, TOOL_SIZE_OK, 4096},
    {"0x10K", C, TOOL_SIZE_OK, 16u << 10},
    {"010", NONE, TOOL_SIZE_OK, 10},
    {"010", C, TOOL_SIZE_OK, 8},
    {"09", C, TOOL_SIZE_TRAILING, 0},
    /* overflow: as written, or once multiplied */
    {"99999999999999999999", ALL, TOOL_SIZE_RANGE, 0},
    {"18446744073709551616", NONE, TOOL_SIZE_RANGE, 0},
    {"99999999999999999999x", ALL, TOOL_SIZE_RANGE, 0},
    {"17179869184G", G, TOOL_SIZE_RANGE, 0},         /* 2^34 G = 2^64 (wrapped to 0 before) */
    {"17179869183G", G, TOOL_SIZE_OK, 17179869183ull << 30},
    {"17179869185G", G, TOOL_SIZE_RANGE, 0},         /* wrapped to 1G before */
    {"18014398509481984K", NONE, TOOL_SIZE_RANGE, 0}, /* 2^54 K */
    {"17592186044416M", NONE, TOOL_SIZE_RANGE, 0},    /* 2^44 M */
    {"17592186044415M", NONE, TOOL_SIZE_OK, 17592186044415ull << 20},
    /* no number */
    {"", ALL, TOOL_SIZE_NOT_NUMBER, 0},
    {"   ", ALL, TOOL_SIZE_NOT_NUMBER, 0},
    {"K", ALL, TOOL_SIZE_NOT_NUMBER, 0},
    {"x", ALL, TOOL_SIZE_NOT_NUMBER, 0},
    {"-abc", ALL, TOOL_SIZE_NOT_NUMBER, 0},
    /* trailing text */
    {"4x", ALL, TOOL_SIZE_TRAILING, 0},
    {"4KK", ALL, TOOL_SIZE_TRAILING, 0},
    {"4 ", ALL, TOOL_SIZE_TRAILING, 0},
    {"1.5M", ALL, TOOL_SIZE_TRAILING, 0},
    {"1e6", ALL, TOOL_SIZE_TRAILING, 0},
    {"4T", ALL, TOOL_SIZE_TRAILING, 0},
    /* negatives: refused, after the trailing-text check */
    {"-1", ALL, TOOL_SIZE_NEGATIVE, 0},
    {"-0", NONE, TOOL_SIZE_NEGATIVE, 0},
    {" -1", ALL, TOOL_SIZE_NEGATIVE, 0},
    {"-1K", ALL, TOOL_SIZE_NEGATIVE, 0},
    {"-1x", ALL, TOOL_SIZE_TRAILING, 0},
    {"-99999999999999999999", ALL, TOOL_SIZE_RANGE, 0},
};

static void test_sizes(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t v = 0xdeadbeef;
        int ret = tool_parse_size(cases[i].s, cases[i].flags, &v);

        if (ret != cases[i].ret || (ret == TOOL_SIZE_OK && v != cases[i].v) ||
            (ret != TOOL_SIZE_OK && v != 0xdeadbeef)) {
            fprintf(stderr, "\"%s\" flags %#x: want %d %llu, got %d %llu\n", cases[i].s, cases[i].flags,
                    cases[i].ret, (unsigned long long)cases[i].v, ret, (unsigned long long)v);
            CHECK(0);
        } else {
            CHECK(1);
        }
    }
}

static const char *const NO_TLS_MSG = "--ca/--cert/--key/--keylog/--server-name given with --no-tls";
static const char *const PAIR_MSG = "--cert and --key go together";

static int same(const char *got, const char *want)
{
    if (got == NULL || want == NULL)
        return got == want;
    return strcmp(got, want) == 0;
}

static void test_tls(void)
{
    int tls;

    /* the default follows --ca */
    tls = -1;
    CHECK(same(tool_check_tls(&tls, NULL, NULL, NULL, NULL, NULL), NULL));
    CHECK_EQ(tls, 0);
    tls = -1;
    CHECK(same(tool_check_tls(&tls, "ca.pem", NULL, NULL, NULL, NULL), NULL));
    CHECK_EQ(tls, 1);
    tls = -1;
    CHECK(same(tool_check_tls(&tls, "ca.pem", "c.pem", "k.pem", "keys.log", "srv"), NULL));
    CHECK_EQ(tls, 1);
    /* --tls without --ca: the system's CA store */
    tls = 1;
    CHECK(same(tool_check_tls(&tls, NULL, NULL, NULL, NULL, NULL), NULL));
    CHECK_EQ(tls, 1);
    tls = 1;
    CHECK(same(tool_check_tls(&tls, NULL, "c.pem", "k.pem", NULL, NULL), NULL));
    /* plain TCP with nothing TLS */
    tls = 0;
    CHECK(same(tool_check_tls(&tls, NULL, NULL, NULL, NULL, NULL), NULL));
    CHECK_EQ(tls, 0);
    /* each TLS option with --no-tls */
    tls = 0;
    CHECK(same(tool_check_tls(&tls, "ca.pem", NULL, NULL, NULL, NULL), NO_TLS_MSG));
    tls = 0;
    CHECK(same(tool_check_tls(&tls, NULL, "c.pem", "k.pem", NULL, NULL), NO_TLS_MSG));
    tls = 0;
    CHECK(same(tool_check_tls(&tls, NULL, NULL, NULL, "keys.log", NULL), NO_TLS_MSG));
    tls = 0;
    CHECK(same(tool_check_tls(&tls, NULL, NULL, NULL, NULL, "srv"), NO_TLS_MSG));
    /* without --ca and --tls, --cert, --keylog, --server-name mean plain TCP */
    tls = -1;
    CHECK(same(tool_check_tls(&tls, NULL, "c.pem", "k.pem", NULL, NULL), NO_TLS_MSG));
    /* --cert and --key only together */
    tls = -1;
    CHECK(same(tool_check_tls(&tls, "ca.pem", "c.pem", NULL, NULL, NULL), PAIR_MSG));
    tls = 1;
    CHECK(same(tool_check_tls(&tls, NULL, NULL, "k.pem", NULL, NULL), PAIR_MSG));
}

int main(void)
{
    TEST_RUN(test_sizes);
    TEST_RUN(test_tls);
    return test_summary();
}
