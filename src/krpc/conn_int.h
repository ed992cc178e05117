/*
 * src/krpc/conn_int.h - connection functions the client shares with conn.c.
 */
#ifndef RPCTLS_KRPC_CONN_INT_H
#define RPCTLS_KRPC_CONN_INT_H

#include "rpctls/krpc.h"

/* Fails c's TLS upgrade before a handshake could start (no context: a file
 * could not be loaded), the way a failed handshake does: on_tls(err, "TLS
 * setup failed: WHY") from the loop, then the close. 0, or -EPIPE /
 * -EALREADY as krpc_conn_start_tls. */
int krpc__conn_fail_tls(struct krpc_conn *c, int err, const char *why);

#endif
