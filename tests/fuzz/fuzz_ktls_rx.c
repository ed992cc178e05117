/*
 * fuzz_ktls_rx.c - the record-layer RX parser against hostile input.
 *
 * Byte 0 picks the shape:
 *   even: the rest is raw wire bytes, fed in pieces whose sizes come from
 *         byte 1 (exercises header checks and reassembly; tags never verify);
 *   odd:  the rest describes authentic records (inner type, length, data)
 *         that our own TX seals with the peer's keys, then optionally one
 *         byte is flipped: this reaches the inner-plaintext parsers (alerts,
 *         KeyUpdate, NewSessionTicket, padding) that raw bytes cannot.
 * Whatever happens, RX must stay within its buffers, never deliver more
 * than was sent, and keep failing once failed.
 */
#include <stdint.h>
#include <string.h>

#include "ktls/ktls_int.h"

static const uint8_t secret_a[32] = {1, 2, 3}, secret_b[32] = {4, 5, 6};

static struct ktls_conn *conn(const uint8_t *tx, const uint8_t *rx)
{
    struct ktls_conn_params p = {.cipher = KTLS_AES_128_GCM_SHA256, .tx_secret = tx, .rx_secret = rx,
                                 .engine = &ktls_aead_openssl};
    struct ktls_conn *c = NULL;

    ktls_conn_new(&p, &c);
    return c;
}

static void feed(struct ktls_conn *rx, const uint8_t *wire, size_t len, size_t piece, size_t sent_app)
{
    struct mb_chain app = MB_CHAIN_INIT;
    int failed = 0;

    for (size_t off = 0; off < len;) {
        size_t k = piece < len - off ? piece : len - off;
        int ret;
        if (ktls_rx_feed(rx, wire + off, k) != 0)
            break;
        off += k;
        ret = ktls_rx_process(rx, &app);
        if (failed && ret >= 0)
            __builtin_trap(); /* errors must be sticky */
        if (ret < 0)
            failed = 1;
    }
    if (app.len > sent_app)
        __builtin_trap();
    mb_chain_free(&app);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ktls_conn *tx, *rx;

    if (size < 2)
        return 0;
    tx = conn(secret_a, secret_b);
    rx = conn(secret_b, secret_a);
    if (tx == NULL || rx == NULL)
        goto exit;
    if ((data[0] & 1) == 0) {
        feed(rx, data + 2, size - 2, 1 + data[1] % 64 * 97, size);
    } else {
        struct mb_chain out = MB_CHAIN_INIT;
        size_t pos = 2, sent_app = 0, flip = data[1];
        while (pos + 2 <= size) {
            uint8_t type = data[pos] % 4 == 0 ? data[pos] : (uint8_t)(20 + data[pos] % 4);
            size_t n = data[pos + 1] % 64;
            pos += 2;
            if (n > size - pos)
                n = size - pos;
            /* A type-0 record whose data ends in 0x17 and zeros reads as
             * application data (padding is stripped first), so every
             * record's bytes count towards the bound. */
            sent_app += n;
            if (n > 0 || type != KTLS_CT_APPLICATION_DATA)
                ktls_tx_control_record(tx, type, data + pos, n);
            pos += n;
        }
        ktls_tx_flush_control(tx, &out);
        if (out.len > 0) {
            uint8_t wire[70000 * 2];
            size_t len = out.len < sizeof(wire) ? out.len : sizeof(wire);
            mb_chain_copy_out(&out, 0, len, wire);
            if (flip < 128 && len > 0)
                wire[(flip * 131) % len] ^= (uint8_t)(1u << (flip % 8));
            feed(rx, wire, len, 1 + flip % 40, sent_app);
        }
        mb_chain_free(&out);
    }
exit:
    ktls_conn_free(tx);
    ktls_conn_free(rx);
    return 0;
}
