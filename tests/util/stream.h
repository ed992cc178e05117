/*
 * tests/util/stream.h - a deterministic pseudo-random byte stream (byte k of
 * stream `seed` is a function of seed and k only, so any chunking of a
 * transfer produces the same bytes) and an incremental SHA-256.
 */
#ifndef RPCTLS_TEST_STREAM_H
#define RPCTLS_TEST_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "rpctls/mbuf.h"

/* Writes bytes [pos, pos + len) of stream seed into buf. */
void tu_stream_fill(uint32_t seed, uint64_t pos, void *buf, size_t len);

struct tu_sha {
    void *md; /* EVP_MD_CTX */
    uint64_t bytes;
};
int tu_sha_init(struct tu_sha *s);
void tu_sha_update(struct tu_sha *s, const void *data, size_t len);
/* Hashes every byte of chain c (without consuming it). */
void tu_sha_update_chain(struct tu_sha *s, const struct mb_chain *c);
void tu_sha_final(struct tu_sha *s, uint8_t out[32]);
/* SHA-256 of the first n bytes of stream seed. */
void tu_stream_sha(uint32_t seed, uint64_t n, uint8_t out[32]);

/* Write sizes the interop tests cycle through. */
extern const size_t tu_write_sizes[];
extern const size_t tu_nwrite_sizes;

#endif
