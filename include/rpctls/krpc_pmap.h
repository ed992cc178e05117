/*
 * rpctls/krpc_pmap.h - asking a server's portmapper where a program listens:
 * portmap v2 PMAPPROC_GETPORT (RFC 1833 section 3) for IPv4, rpcbind v4 and
 * then v3 RPCBPROC_GETADDR with netid "tcp6" for IPv6 (the answer is a
 * universal address, "h1:...:h8.p1.p2"). Always TCP, always plain (no
 * portmapper speaks RPC-with-TLS), AUTH_NONE.
 */
#ifndef RPCTLS_KRPC_PMAP_H
#define RPCTLS_KRPC_PMAP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "rpctls/visibility.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KRPC_PMAP_PROG 100000u
#define KRPC_PMAP_PORT 111
#define KRPC_PMAP_VERS 2u
#define KRPC_RPCB_VERS4 4u
#define KRPC_RPCB_VERS3 3u
#define KRPC_PMAP_PROC_GETPORT 3u
#define KRPC_RPCB_PROC_GETADDR 3u
#define KRPC_IPPROTO_TCP 6u

/* Asks the portmapper of server (its address; the port in it is the
 * portmapper's, 0 meaning 111) for the TCP port of prog/vers. The query
 * takes at most about 2 * timeout_ms (0: 3000): connect + one call, and for
 * IPv6 a second call when rpcbind v4 is not there. Returns 0 with *port set,
 * or:
 *   -ENOENT          the portmapper answered: not registered (port 0, or an
 *                    empty universal address)
 *   -ECONNREFUSED,
 *   -ETIMEDOUT ...   no portmapper answered
 *   -EBADMSG         the answer does not decode (or a universal address for
 *                    another family)
 *   other < 0        an RPC error reply (-EPFNOSUPPORT PROG_UNAVAIL ...)
 * err (may be NULL) receives the outcome in words either way, e.g.
 * "portmapper 127.0.0.1:111: 100005 v3 tcp not registered". */
RPCTLS_API int krpc_pmap_getport(const struct sockaddr *server, socklen_t len, uint32_t prog, uint32_t vers,
                                 int timeout_ms, uint16_t *port, char *err, size_t errlen);

/* Parses a universal address for TCP over IPv4 ("h1.h2.h3.h4.p1.p2") or
 * IPv6 ("x:x:...:x.p1.p2", RFC 5665 section 5.2.3.4) into *port (p1 * 256 +
 * p2) and, when sa is not NULL, a socket address. Returns 0, or -EINVAL. */
RPCTLS_API int krpc_uaddr_parse(const char *uaddr, struct sockaddr_storage *sa, socklen_t *salen, uint16_t *port);

#ifdef __cplusplus
}
#endif

#endif
