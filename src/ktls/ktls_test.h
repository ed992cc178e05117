/*
 * src/ktls/ktls_test.h - test hooks of the record layer: functions only
 * tests call. They are not part of the public API (include/rpctls/) and are
 * not exported from librpctls.so; tests reach them through the static
 * library and the private include directory (src/).
 */
#ifndef RPCTLS_KTLS_TEST_H
#define RPCTLS_KTLS_TEST_H

#include <stdint.h>

#include "rpctls/ktls.h"

/* Sets the next TX/RX record sequence numbers. */
void ktls__conn_set_seq(struct ktls_conn *c, uint64_t tx_seq, uint64_t rx_seq);
/* Lowers the TX record limit per key (see record_limit in struct
 * ktls_conn_params); a value above the cipher's limit or below
 * KTLS_TX_CONTROL_RESERVE + 1 is clamped. */
void ktls__conn_set_record_limit(struct ktls_conn *c, uint64_t records);

#endif
