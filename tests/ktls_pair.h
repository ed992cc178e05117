/*
 * tests/ktls_pair.h - two record-layer connections wired back to back in
 * memory (no handshake, no socket), for tests of TX and RX themselves.
 */
#ifndef RPCTLS_TESTS_KTLS_PAIR_H
#define RPCTLS_TESTS_KTLS_PAIR_H

#include <stdlib.h>
#include <string.h>

#include "rpctls/ktls.h"

struct ktls_pair {
    struct ktls_conn *a; /* client side */
    struct ktls_conn *b; /* server side */
};

static inline int ktls_pair_open(struct ktls_pair *p, enum ktls_cipher cipher, const struct ktls_aead_engine *engine,
                                  enum ktls_tx_mode mode, unsigned seed)
{
    uint8_t s1[48], s2[48];
    struct ktls_conn_params pa = {0}, pb = {0};

    for (int i = 0; i < 48; i++) {
        s1[i] = (uint8_t)(seed * 7 + (unsigned)i * 13 + 1);
        s2[i] = (uint8_t)(seed * 11 + (unsigned)i * 29 + 5);
    }
    pa.role = KTLS_CLIENT;
    pa.cipher = cipher;
    pa.tx_secret = s1;
    pa.rx_secret = s2;
    pa.engine = engine;
    pa.tx_mode = mode;
    pb = pa;
    pb.role = KTLS_SERVER;
    pb.tx_secret = s2;
    pb.rx_secret = s1;
    p->a = p->b = NULL;
    if (ktls_conn_new(&pa, &p->a) != 0 || ktls_conn_new(&pb, &p->b) != 0) {
        ktls_conn_free(p->a);
        ktls_conn_free(p->b);
        return -1;
    }
    return 0;
}

static inline void ktls_pair_close(struct ktls_pair *p)
{
    ktls_conn_free(p->a);
    ktls_conn_free(p->b);
    p->a = p->b = NULL;
}

/* Flattens a chain into a malloc'd buffer (consumes the chain). */
static inline uint8_t *chain_flatten(struct mb_chain *c, size_t *len)
{
    uint8_t *buf = malloc(c->len ? c->len : 1);
    *len = c->len;
    if (buf != NULL && c->len > 0)
        mb_chain_copy_out(c, 0, c->len, buf);
    mb_chain_free(c);
    return buf;
}

/* Feeds wire bytes to rx in pieces of random size (1..maxpiece) and
 * processes after each piece; appends app data. Returns the last
 * ktls_rx_process result. */
static inline int ktls_feed_pieces(struct ktls_conn *rx, const uint8_t *wire, size_t len, size_t maxpiece,
                                   unsigned *seed, struct mb_chain *app)
{
    int ret = 0;
    size_t off = 0;

    while (off < len) {
        size_t k = maxpiece <= 1 ? 1 : 1 + (size_t)rand_r(seed) % maxpiece;
        if (k > len - off)
            k = len - off;
        if ((ret = ktls_rx_feed(rx, wire + off, k)) != 0)
            return ret;
        off += k;
        if ((ret = ktls_rx_process(rx, app)) != 0)
            return ret;
    }
    return ktls_rx_process(rx, app);
}

/* Seals plain on tx (consumed) and feeds the records to rx. */
static inline int ktls_pair_transfer(struct ktls_conn *tx, struct ktls_conn *rx, struct mb_chain *plain,
                                     size_t maxpiece, unsigned *seed, struct mb_chain *app)
{
    struct mb_chain out = MB_CHAIN_INIT;
    size_t len;
    uint8_t *wire;
    int ret = ktls_tx_seal(tx, plain, &out);

    if (ret != 0) {
        mb_chain_free(&out);
        return ret;
    }
    wire = chain_flatten(&out, &len);
    if (wire == NULL)
        return -12;
    ret = ktls_feed_pieces(rx, wire, len, maxpiece, seed, app);
    free(wire);
    return ret;
}

/* 1 when chain c holds exactly the bytes of buf. */
static inline int chain_equals(const struct mb_chain *c, const uint8_t *buf, size_t len)
{
    uint8_t *tmp;
    int eq;

    if (c->len != len)
        return 0;
    if (len == 0)
        return 1;
    if ((tmp = malloc(len)) == NULL)
        return 0;
    mb_chain_copy_out(c, 0, len, tmp);
    eq = memcmp(tmp, buf, len) == 0;
    free(tmp);
    return eq;
}

#endif
