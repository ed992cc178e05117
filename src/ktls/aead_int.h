/*
 * aead_int.h - what the AEAD engines share: walking a source and a
 * destination iovec list in step.
 */
#ifndef RPCTLS_AEAD_INT_H
#define RPCTLS_AEAD_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* One overlapping piece: n bytes from in to out. Returns 0 or -errno. */
typedef int (*ktls_aead_piece_fn)(void *arg, uint8_t *out, const uint8_t *in, size_t n);

/* Calls fn on each overlapping piece of src and dst, in order, so the two
 * lists may be split at different places. Returns -EINVAL when a list is
 * malformed or the totals differ (before any call), fn's first error, or 0. */
int ktls__aead_walk(const struct iovec *src, int nsrc, const struct iovec *dst, int ndst, ktls_aead_piece_fn fn,
                    void *arg);

#endif
