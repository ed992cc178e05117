/*
 * src/krpc/krpc_test.h - test hooks of the RPC layer: functions only tests
 * call directly. They are not part of the public API (include/rpctls/) and
 * are not exported from librpctls.so; tests reach them through the static
 * library and the private include directory (src/).
 */
#ifndef RPCTLS_KRPC_TEST_H
#define RPCTLS_KRPC_TEST_H

#include <stdint.h>

#include "rpctls/krpc_rpcb.h"
#include "rpctls/xdr.h"

/* Wire encodings of the registration calls (rpcb_reg.c): the arguments of
 * rpcbind v3 SET/UNSET (struct rpcb) and of portmap v2 SET/UNSET (struct
 * mapping). */
void krpc__rpcb_encode_map(struct krpc_xdr_enc *x, const struct krpc_rpcb_map *m, const char *owner);
void krpc__pmap_encode_mapping(struct krpc_xdr_enc *x, uint32_t prog, uint32_t vers, uint32_t prot, uint32_t port);

#endif
