/*
 * fuzz_ktls_rx.c - the record-layer RX parser against hostile input.
 *
 * Byte 0 picks the shape; byte 1 the cipher, engine, piece size and whether
 * guard mode is on:
 *   even: the rest is raw wire bytes, fed in pieces (header checks and
 *         reassembly; tags never verify);
 *   odd:  the rest describes authentic records (inner type, 2-byte length,
 *         data) that our own TX seals with the peer's keys, then maybe one
 *         bit is flipped: this reaches the inner-plaintext parsers (alerts,
 *         KeyUpdate, NewSessionTicket, padding, length limits).
 * Whatever happens, RX stays within its buffers, keeps failing once failed,
 * and what it delivers is exactly a prefix of the application data that was
 * sealed (as RX must read it: padding stripped, type = last non-zero byte).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ktls/ktls_int.h"
#include "mbuf/mbuf_test.h"

static const uint8_t secret_a[48] = {1, 2, 3}, secret_b[48] = {4, 5, 6};

static struct ktls_conn *conn(enum ktls_cipher cipher, const struct ktls_aead_engine *e, const uint8_t *tx,
                              const uint8_t *rx)
{
    struct ktls_conn_params p = {.cipher = cipher, .tx_secret = tx, .rx_secret = rx, .engine = e};
    struct ktls_conn *c = NULL;

    ktls_conn_new(&p, &c);
    return c;
}

/* Feeds wire to rx in pieces, alternating the copying and the zero-copy
 * receive paths; checks stickiness; returns what was delivered. */
static void feed(struct ktls_conn *rx, const uint8_t *wire, size_t len, size_t piece, struct mb_chain *app)
{
    int failed = 0;

    for (size_t off = 0; off < len;) {
        size_t k = piece < len - off ? piece : len - off;
        int ret;
        if ((off / piece) % 2 == 0) {
            if (ktls_rx_feed(rx, wire + off, k) != 0)
                break;
        } else {
            struct iovec iov[4];
            int n = ktls_rx_space(rx, iov, 4);
            size_t done = 0;
            if (n < 0)
                break;
            for (int i = 0; i < n && done < k; i++) {
                size_t m = iov[i].iov_len < k - done ? iov[i].iov_len : k - done;
                memcpy(iov[i].iov_base, wire + off + done, m);
                done += m;
            }
            ktls_rx_commit(rx, done);
            k = done;
        }
        off += k;
        ret = ktls_rx_process(rx, app);
        if (failed && ret >= 0)
            __builtin_trap(); /* errors must be sticky */
        if (ret < 0)
            failed = 1;
    }
}

static void check_prefix(const struct mb_chain *app, const uint8_t *want, size_t wantlen)
{
    uint8_t *got;

    if (app->len > wantlen)
        __builtin_trap();
    if (app->len == 0)
        return;
    if ((got = malloc(app->len)) == NULL)
        return;
    mb_chain_copy_out(app, 0, app->len, got);
    if (memcmp(got, want, app->len) != 0)
        __builtin_trap();
    free(got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum ktls_cipher ciphers[3] = {KTLS_AES_128_GCM_SHA256, KTLS_AES_256_GCM_SHA384,
                                                KTLS_CHACHA20_POLY1305_SHA256};
    struct mb_chain app = MB_CHAIN_INIT, out = MB_CHAIN_INIT;
    const struct ktls_aead_engine *e;
    struct ktls_conn *tx, *rx;
    uint8_t *want = NULL, *wire = NULL;
    size_t wantlen = 0, piece;

    if (size < 2)
        return 0;
    e = (data[1] & 4) && ktls_aead_ipsecmb != NULL ? ktls_aead_ipsecmb : &ktls_aead_openssl;
    piece = 1 + (size_t)(data[1] >> 4) * 997;
    mb__guard_set(data[1] & 8 ? 1 : 0);
    tx = conn(ciphers[data[1] % 3], e, secret_a, secret_b);
    rx = conn(ciphers[data[1] % 3], e, secret_b, secret_a);
    if (tx == NULL || rx == NULL)
        goto exit;
    if ((data[0] & 1) == 0) {
        feed(rx, data + 2, size - 2, piece, &app);
        goto exit;
    }
    if ((want = malloc(size)) == NULL)
        goto exit;
    size_t pos = 2, flip = data[0] >> 1;
    while (pos + 3 <= size) {
        /* Mostly the four real types; sometimes anything. */
        uint8_t type = data[pos] % 8 == 0 ? data[pos] : (uint8_t)(20 + data[pos] % 4);
        size_t n = ((size_t)data[pos + 1] << 8 | data[pos + 2]) % 17000;
        const uint8_t *d = data + pos + 3, *inner_end;
        pos += 3;
        if (n > size - pos)
            n = size - pos;
        if (n + 1 > KTLS_MAX_PLAINTEXT + 1)
            break; /* our TX refuses it: nothing more to send */
        ktls__tx_control_record(tx, type, d, n);
        /* What RX must see: strip zeros from d || type, the last byte left is the type. */
        if (type == 0) {
            inner_end = d + n;
            while (inner_end > d && inner_end[-1] == 0)
                inner_end--;
            if (inner_end > d && inner_end[-1] == KTLS_CT_APPLICATION_DATA) {
                memcpy(want + wantlen, d, (size_t)(inner_end - 1 - d));
                wantlen += (size_t)(inner_end - 1 - d);
            }
        } else if (type == KTLS_CT_APPLICATION_DATA) {
            memcpy(want + wantlen, d, n);
            wantlen += n;
        }
        pos += n;
    }
    ktls_tx_flush_control(tx, &out);
    if (out.len > 0 && (wire = malloc(out.len)) != NULL) {
        size_t len = out.len;
        mb_chain_copy_out(&out, 0, len, wire);
        if (flip < 100)
            wire[(flip * 131) % len] ^= (uint8_t)(1u << (flip % 8));
        feed(rx, wire, len, piece, &app);
        check_prefix(&app, want, wantlen);
    }
exit:
    mb_chain_free(&out);
    mb_chain_free(&app);
    ktls_conn_free(tx);
    ktls_conn_free(rx);
    free(want);
    free(wire);
    mb__guard_set(0);
    return 0;
}
