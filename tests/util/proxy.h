/*
 * tests/util/proxy.h - a fault-injecting loopback TCP proxy in its own
 * thread, for RPC fault tests.
 *
 * The proxy listens on 127.0.0.1 (port 0) and forwards every accepted
 * connection to a target address, byte for byte, in both directions. Rules
 * inject faults at byte offsets of one direction of a connection:
 *
 *   TU_PX_RESET      after `after` bytes have been forwarded, both sides of
 *                    the connection are reset (RST, SO_LINGER 0);
 *   TU_PX_DELAY      bytes from offset `after` on are withheld for `ms`
 *                    milliseconds from the moment the first of them arrives
 *                    (later bytes queue behind them: order is kept);
 *   TU_PX_BLACKHOLE  bytes from offset `after` on are discarded; after `ms`
 *                    milliseconds (> 0) the connection is reset, with 0 it
 *                    stays open and silent;
 *   TU_PX_FLIP       the byte at stream offset `after` is forwarded with
 *                    its lowest bit flipped (a tampered TLS record).
 *
 * A rule applies to the accepted connection with index `conn` (0 = the
 * first), or to every connection when conn < 0; it fires at most once per
 * connection. Rules can be added while the proxy runs; they apply to
 * connections accepted afterwards and to open ones.
 */
#ifndef RPCTLS_TEST_PROXY_H
#define RPCTLS_TEST_PROXY_H

#include <stdint.h>
#include <sys/socket.h>

enum tu_px_dir { TU_PX_C2S = 0, TU_PX_S2C = 1 };
enum tu_px_action { TU_PX_RESET = 1, TU_PX_DELAY = 2, TU_PX_BLACKHOLE = 3, TU_PX_FLIP = 4 };

struct tu_px_rule {
    int conn;
    enum tu_px_dir dir;
    enum tu_px_action action;
    uint64_t after;
    int ms;
};

#define TU_PX_MAX_RULES 16

struct tu_proxy_stats {
    uint64_t conns;          /* connections accepted */
    uint64_t resets;         /* connections reset by a rule */
    uint64_t delays;         /* DELAY rules that fired */
    uint64_t blackholed;     /* bytes discarded */
    uint64_t flips;          /* bytes flipped by FLIP rules */
    uint64_t bytes[2];       /* forwarded, per direction */
};

struct tu_proxy;

/* Starts the proxy thread; 0 or -1 (message on stderr). */
int tu_proxy_start(const struct sockaddr *target, socklen_t len, struct tu_proxy **out);
uint16_t tu_proxy_port(const struct tu_proxy *p);
/* The proxy's listening address, for a client configuration. */
void tu_proxy_addr(const struct tu_proxy *p, struct sockaddr_storage *ss, socklen_t *len);
/* 0, or -1 when TU_PX_MAX_RULES rules exist. */
int tu_proxy_add_rule(struct tu_proxy *p, const struct tu_px_rule *r);
void tu_proxy_clear_rules(struct tu_proxy *p);
void tu_proxy_get_stats(struct tu_proxy *p, struct tu_proxy_stats *out);
/* Stops the thread, closes every connection, frees p. */
void tu_proxy_stop(struct tu_proxy *p);

#endif
