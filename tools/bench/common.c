/*
 * tools/bench/common.c - helpers shared by the rpctls-bench commands.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rpctls/aead.h"
#include "rpctls/ktls.h"
#include "rpctls/mbuf.h"

#include "bench.h"

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double bench_thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double bench_process_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int bench_parse_size(const char *s, uint64_t *out)
{
    char *end;
    double v = strtod(s, &end);

    if (end == s || v < 0)
        return -1;
    switch (*end) {
    case 'k': case 'K': v *= 1024; end++; break;
    case 'm': case 'M': v *= 1024 * 1024; end++; break;
    case 'g': case 'G': v *= 1024.0 * 1024 * 1024; end++; break;
    default: break;
    }
    if (*end == 'i' || *end == 'I')
        end++;
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end != '\0')
        return -1;
    *out = (uint64_t)v;
    return 0;
}

int bench_parse_modes(const char *s, int modes[4])
{
    enum ktls_tx_mode m;

    if (strcmp(s, "all") == 0) {
        modes[0] = modes[1] = modes[2] = modes[3] = 1;
        return 0;
    }
    if (ktls_tx_mode_from_name(s, &m) != 0) {
        fprintf(stderr, "rpctls-bench: unknown mode '%s'%s\n", s,
                strcmp(s, "inplace") == 0 ? " (it is spelled unsafe-inplace)" : "");
        return -1;
    }
    memset(modes, 0, 4 * sizeof(modes[0]));
    modes[m] = 1;
    return 0;
}

int bench_cipher_cost(double *seal_s_per_gib, double *open_s_per_gib)
{
    const struct ktls_aead_engine *e = ktls_aead_default(KTLS_AES_128_GCM_SHA256);
    const size_t len = 256u << 20, rec = 16384;
    uint8_t key[16] = {1}, nonce[12] = {0}, aad[5] = {23, 3, 3, 0x40, 0x11}, tag[16];
    struct ktls_aead_key *k;
    uint8_t *buf = malloc(len), *dst = mb_rec_alloc();
    double t;

    if (buf == NULL || dst == NULL || e->key_new(KTLS_AES_128_GCM_SHA256, key, &k) != 0) {
        free(buf);
        mb_rec_free(dst);
        return -1;
    }
    memset(buf, 0x5a, len);
    /* Seal out of place into one reused record buffer (the warmest
     * destination there is), as the record layer seals shared pages. */
    t = bench_thread_cpu();
    for (size_t off = 0; off < 2 * len; off += rec) {
        struct iovec s = {buf + off % len, rec}, d = {dst + 64, rec};
        e->seal(k, nonce, aad, sizeof(aad), &s, 1, &d, 1, tag);
    }
    *seal_s_per_gib = (bench_thread_cpu() - t) / ((double)(2 * len) / (1u << 30));
    /* Open in place, as the receiver does (the tags do not verify; the work
     * is the same). */
    t = bench_thread_cpu();
    for (size_t off = 0; off < 2 * len; off += rec) {
        struct iovec s = {buf + off % len, rec};
        (void)e->open(k, nonce, aad, sizeof(aad), &s, 1, &s, 1, tag);
    }
    *open_s_per_gib = (bench_thread_cpu() - t) / ((double)(2 * len) / (1u << 30));
    e->key_free(k);
    free(buf);
    mb_rec_free(dst);
    return 0;
}
