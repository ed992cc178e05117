/*
 * drc.h - the server's duplicate-request cache (private to src/krpc).
 *
 * A call is identified by the client's IP address (not the port: a client
 * that reconnects comes from a new port and must still hit the cache), the
 * XID, program, version and procedure, the argument length and a 64-bit
 * checksum of every argument byte (guards against a client reusing an XID
 * for different arguments), and who sent it: the credential's flavor, for
 * AUTH_SYS the uid and gid, and a checksum of the AUTH_SYS group list and
 * the TLS peer certificate's subject (two users on one host whose XIDs and
 * arguments happen to match must not get each other's reply).
 *
 * An entry is IN_PROGRESS from the first arrival until the reply exists, then
 * DONE with the whole reply message kept by reference (copy-by-reference of
 * the chain that was sent). A hit on a DONE entry yields another
 * copy-by-reference of it, so every resend shares the same pages: the record
 * layer must never encrypt them in place, and does not (shared stores are
 * sealed out of place).
 *
 * Bounded LRU: at most max_entries entries; when full, the least recently
 * used DONE entry is evicted. IN_PROGRESS entries are pinned (a pending call
 * refers to its entry) and are never evicted; if every entry is in progress
 * the cache grows past the bound until calls complete (their number is
 * bounded by the server's connection and outstanding-call limits).
 *
 * Thread-safe: every function takes the cache's mutex, so the loops of one
 * server share one cache (a completed entry's reply is handed out by
 * reference to connections on any loop; chain reference counts are atomic).
 */
#ifndef RPCTLS_KRPC_DRC_H
#define RPCTLS_KRPC_DRC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "rpctls/krpc.h"
#include "rpctls/mbuf.h"

struct krpc_drc;
struct krpc_drc_entry;

struct krpc_drc_key {
    uint8_t addr[16]; /* IPv4 in the first 4 bytes; v4-mapped IPv6 is folded to IPv4 */
    uint16_t family;  /* AF_INET, AF_INET6, or 0 for anything else */
    uint32_t xid, prog, vers, proc;
    uint32_t arglen;
    uint64_t csum;
    uint32_t flavor, uid, gid; /* uid, gid: AUTH_SYS only, else 0 */
    uint64_t who;              /* checksum of the AUTH_SYS gids and the TLS peer subject */
};

enum krpc_drc_result {
    KRPC_DRC_NEW = 0,         /* not seen: an IN_PROGRESS entry was made (or *entry is NULL: not cached) */
    KRPC_DRC_IN_PROGRESS = 1, /* the original is still running: drop the retransmission */
    KRPC_DRC_DONE = 2,        /* the cached reply was appended to the caller's chain by reference */
};

int krpc__drc_new(unsigned max_entries, struct krpc_drc **out);
/* Frees every entry, pinned ones included (the caller forgets them). */
void krpc__drc_free(struct krpc_drc *d);

/* Fills key->addr/family from a socket address (the port is ignored). */
void krpc__drc_key_set_addr(struct krpc_drc_key *key, const struct sockaddr *sa, socklen_t len);
/* Fills key->flavor/uid/gid/who from the call's credential and the TLS peer
 * certificate's subject (NULL or "" when none). The AUTH_SYS stamp and
 * machine name are left out: they say nothing about the user. */
void krpc__drc_key_set_cred(struct krpc_drc_key *key, const struct krpc_cred *cred, const char *subject);
/* Checksum of [off, off + len) of c: a function of the bytes only, not of
 * how they are split into links (a retransmission arrives segmented
 * differently). */
uint64_t krpc__drc_checksum(const struct mb_chain *c, size_t off, size_t len);

/* Looks key up. KRPC_DRC_NEW: *entry is a fresh pinned IN_PROGRESS entry to
 * be completed with krpc__drc_complete or dropped with krpc__drc_forget; it is
 * NULL when no memory was available (the call then simply runs uncached).
 * KRPC_DRC_DONE: the reply was appended to reply by reference. */
enum krpc_drc_result krpc__drc_lookup(struct krpc_drc *d, const struct krpc_drc_key *key,
                                      struct krpc_drc_entry **entry, struct mb_chain *reply);
/* Stores a copy-by-reference of reply in e and marks it DONE (it becomes
 * evictable). On allocation failure the entry is dropped instead. */
void krpc__drc_complete(struct krpc_drc *d, struct krpc_drc_entry *e, const struct mb_chain *reply);
/* Removes e (a call that will never be answered). */
void krpc__drc_forget(struct krpc_drc *d, struct krpc_drc_entry *e);

struct krpc_drc_info {
    unsigned entries, in_progress, done;
    uint64_t evictions;
};
void krpc__drc_info(const struct krpc_drc *d, struct krpc_drc_info *out);

#endif
