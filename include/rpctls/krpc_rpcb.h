/*
 * rpctls/krpc_rpcb.h - registering a server's programs with the local
 * rpcbind (RFC 1833), so that clients that ask the portmapper (libnfs,
 * mount(8), FreeBSD mount_nfs) find them.
 *
 * How rpcbind is reached, in order:
 *   1. rpcbind v3 SET / UNSET on its AF_UNIX socket (/run/rpcbind.sock on
 *      Debian), as libtirpc's rpcb_set() does. rpcbind learns the caller's
 *      uid from the socket (SO_PEERCRED) and records it as the owner
 *      ("superuser" for root); any netid (tcp, tcp6) can be registered.
 *   2. When that socket is absent or refuses: portmap v2 PMAPPROC_SET /
 *      UNSET on TCP 127.0.0.1:111. Only netid "tcp" can be registered this
 *      way (portmap knows IPv4 only); rpcbind records the owner as
 *      "unknown" (it cannot see who is calling).
 *
 * Every call is blocking, on its own connection, bounded by a timeout
 * (default 2 s). Meant for a server's start and exit, not for hot paths.
 */
#ifndef RPCTLS_KRPC_RPCB_H
#define RPCTLS_KRPC_RPCB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "rpctls/xdr.h"

#include "rpctls/visibility.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KRPC_RPCB_PROG 100000
#define KRPC_RPCB_VERS 3 /* rpcbind v3: SET/UNSET take a struct rpcb */
#define KRPC_PMAP_VERS 2u /* portmap v2: SET/UNSET take a struct mapping (as in krpc_pmap.h: the two must match) */
#define KRPC_RPCBPROC_SET 1   /* same number as PMAPPROC_SET */
#define KRPC_RPCBPROC_UNSET 2 /* same number as PMAPPROC_UNSET */
#define KRPC_PMAP_IPPROTO_TCP 6

#define KRPC_RPCB_SOCK_PATH "/run/rpcbind.sock"
#define KRPC_RPCB_TCP_ADDR "127.0.0.1:111"
#define KRPC_RPCB_TIMEOUT_MS 2000
/* Longest netid, universal address or owner this code sends. */
#define KRPC_RPCB_MAX_STR 128

struct krpc_rpcb_config {
    const char *sock_path; /* rpcbind's AF_UNIX socket; NULL: KRPC_RPCB_SOCK_PATH; "": not tried */
    const char *tcp_addr;  /* portmap v2 fallback, "ADDR:PORT"; NULL: KRPC_RPCB_TCP_ADDR; "": not tried */
    int timeout_ms;        /* per call, connect included; 0: KRPC_RPCB_TIMEOUT_MS */
};

/* One registration (RFC 1833 struct rpcb). */
struct krpc_rpcb_map {
    uint32_t prog, vers;
    const char *netid; /* "tcp" or "tcp6" (anything rpcbind knows) */
    const char *uaddr; /* universal address, e.g. "127.0.0.1.8.1" (port 2049); UNSET ignores it */
    const char *owner; /* NULL: the effective uid in decimal, as libtirpc sends it
                          (rpcbind replaces it with what it sees on the socket) */
};

/*
 * Registers m: 0 when rpcbind said TRUE. Errors, with a one-line reason in
 * err (may be NULL):
 *   -ENOENT / -ECONNREFUSED  no rpcbind (socket absent, nothing on the port);
 *                            the error of the last place tried
 *   -ETIMEDOUT               rpcbind did not answer in time
 *   -EACCES                  rpcbind answered FALSE: (prog, vers, netid) is
 *                            registered at another address (UNSET it first),
 *                            or owned by another user
 *   -EAFNOSUPPORT            only portmap v2 was reachable and netid is not "tcp"
 *   -EPROTO                  the reply was not SUCCESS, or malformed
 *   -EINVAL                  bad arguments (a string longer than KRPC_RPCB_MAX_STR,
 *                            a uaddr without a port)
 */
RPCTLS_API int krpc_rpcb_set(const struct krpc_rpcb_config *cfg, const struct krpc_rpcb_map *m, char *err,
                             size_t errlen);
/* Removes every registration of (prog, vers, netid), whatever its address;
 * 0 also when there was none. Same errors; -EACCES: owned by another user. */
RPCTLS_API int krpc_rpcb_unset(const struct krpc_rpcb_config *cfg, const struct krpc_rpcb_map *m, char *err,
                               size_t errlen);

/* The universal address of an IPv4 or IPv6 socket address (RFC 5665 §5.2.3):
 * "h1.h2.h3.h4.p1.p2" or "v6addr.p1.p2". Returns 0, or -EINVAL (another
 * family, buffer too small). */
RPCTLS_API int krpc_rpcb_uaddr(const struct sockaddr *sa, char *buf, size_t len);

/*
 * The registrations a TCP listener bound to sa needs, for one program
 * version: netid "tcp" for IPv4; "tcp6" for IPv6; both for the IPv6
 * wildcard when dual_stack (IPV6_V6ONLY off; the IPv4 entry then has
 * address 0.0.0.0). Fills up to 2 entries of out (netid and uaddr point into
 * bufs, which must outlive them) and returns their number, or -EINVAL.
 */
struct krpc_rpcb_bufs {
    char uaddr[2][64];
};
RPCTLS_API int krpc_rpcb_listener_maps(const struct sockaddr *sa, int dual_stack, uint32_t prog, uint32_t vers,
                                       struct krpc_rpcb_map out[2], struct krpc_rpcb_bufs *bufs);

#ifdef __cplusplus
}
#endif

#endif
