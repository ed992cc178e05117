/*
 * tests/util/hex.h - known-answer vectors written as hex text.
 */
#ifndef RPCTLS_TEST_HEX_H
#define RPCTLS_TEST_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Parses hex digits (whitespace ignored) into out; returns the byte count.
 * Aborts on a non-hex character, an odd digit count or more than cap bytes:
 * a broken test vector is a bug in the test. */
size_t tu_unhex(const char *s, uint8_t *out, size_t cap);

#endif
