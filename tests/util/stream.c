/*
 * tests/util/stream.c - deterministic stream and SHA-256 helpers.
 */
#include "util/stream.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

const size_t tu_write_sizes[] = {1, 100, 4095, 16384, 16385, 65536, 1048576};
const size_t tu_nwrite_sizes = sizeof(tu_write_sizes) / sizeof(tu_write_sizes[0]);

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t word_at(uint32_t seed, uint64_t idx)
{
    return mix64(((uint64_t)seed << 40) ^ (idx * 0x9e3779b97f4a7c15ULL) ^ 0x5851f42d4c957f2dULL);
}

void tu_stream_fill(uint32_t seed, uint64_t pos, void *buf, size_t len)
{
    unsigned char *p = buf;

    /* Unaligned head and tail byte by byte, whole words in between. */
    while (len > 0 && (pos & 7) != 0) {
        *p++ = (unsigned char)(word_at(seed, pos >> 3) >> (8 * (pos & 7)));
        pos++;
        len--;
    }
    while (len >= 8) {
        uint64_t w = word_at(seed, pos >> 3);
        for (int i = 0; i < 8; i++)
            p[i] = (unsigned char)(w >> (8 * i));
        p += 8;
        pos += 8;
        len -= 8;
    }
    while (len > 0) {
        *p++ = (unsigned char)(word_at(seed, pos >> 3) >> (8 * (pos & 7)));
        pos++;
        len--;
    }
}

int tu_sha_init(struct tu_sha *s)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    s->md = ctx;
    s->bytes = 0;
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        return -1;
    return 0;
}

void tu_sha_update(struct tu_sha *s, const void *data, size_t len)
{
    if (len > 0)
        EVP_DigestUpdate(s->md, data, len);
    s->bytes += len;
}

void tu_sha_update_chain(struct tu_sha *s, const struct mb_chain *c)
{
    struct mb_seg_iter it;
    unsigned char *p;
    size_t n;

    mb_seg_iter_init(&it, c, 0, c->len);
    while ((n = mb_seg_next(&it, &p)) > 0)
        tu_sha_update(s, p, n);
}

void tu_sha_final(struct tu_sha *s, uint8_t out[32])
{
    unsigned int n = 32;

    EVP_DigestFinal_ex(s->md, out, &n);
    EVP_MD_CTX_free(s->md);
    s->md = NULL;
}

void tu_stream_sha(uint32_t seed, uint64_t n, uint8_t out[32])
{
    enum { CHUNK = 1 << 16 };
    unsigned char *buf = malloc(CHUNK);
    struct tu_sha s;

    tu_sha_init(&s);
    for (uint64_t pos = 0; pos < n && buf;) {
        size_t k = n - pos < CHUNK ? (size_t)(n - pos) : CHUNK;
        tu_stream_fill(seed, pos, buf, k);
        tu_sha_update(&s, buf, k);
        pos += k;
    }
    tu_sha_final(&s, out);
    free(buf);
}
