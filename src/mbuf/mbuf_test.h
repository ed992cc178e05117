/*
 * src/mbuf/mbuf_test.h - test hooks of the buffer layer. They are not part
 * of the public API (include/rpctls/) and are not exported from
 * librpctls.so; tests reach them through the static library and the private
 * include directory (src/).
 */
#ifndef RPCTLS_MBUF_TEST_H
#define RPCTLS_MBUF_TEST_H

/* Guard mode (docs/mbuf.md): while on, a page-vector store that becomes
 * shared (reference count above one) or read-only is mprotect()ed
 * PROT_READ, so a write to it faults at the writing instruction. */
void mb__guard_set(int on);
int mb__guard_get(void);

#endif
