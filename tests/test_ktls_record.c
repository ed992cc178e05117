/*
 * test_ktls_record.c - the record layer on its own: framing, every TX mode,
 * any RX segmentation, KeyUpdate both ways, close_notify, and rejection of
 * tampered, oversize and malformed records; the AEAD usage limit per key
 * (no KeyUpdate initiated by default, -EKEYEXPIRED at the limit, KeyUpdate
 * before the limit when opted in).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ktls/ktls_int.h"
#include "ktls/ktls_test.h"
#include "mbuf/mbuf_test.h"
#include "ktls_pair.h"
#include "test.h"
#include "util/hex.h"

static const enum ktls_cipher ciphers[] = {KTLS_AES_128_GCM_SHA256, KTLS_AES_256_GCM_SHA384,
                                           KTLS_CHACHA20_POLY1305_SHA256};
static const enum ktls_tx_mode modes[] = {KTLS_TX_AUTO, KTLS_TX_OUTOFPLACE, KTLS_TX_COPY, KTLS_TX_UNSAFE_INPLACE};

static void fill_random(uint8_t *buf, size_t len, unsigned *seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)rand_r(seed);
}

/* Builds a chain holding buf using a random mix of storage kinds. */
static int build_chain(struct mb_chain *c, const uint8_t *buf, size_t len, unsigned *seed)
{
    size_t off = 0;
    int ret = 0;

    while (off < len && ret == 0) {
        size_t k = 1 + (size_t)rand_r(seed) % 70000;
        struct mb *m;
        if (k > len - off)
            k = len - off;
        switch (rand_r(seed) % 3) {
        case 0:
            ret = mb_chain_append_pages_from_buf(c, buf + off, k);
            break;
        case 1:
            if ((m = mb_append_cluster(c, k)) == NULL)
                return -ENOMEM;
            memcpy(mb_store_ptr(m->st, m->off), buf + off, k);
            break;
        default:
            if (k > MB_INLINE_SIZE)
                k = MB_INLINE_SIZE;
            if ((m = mb_append_inline(c, k)) == NULL)
                return -ENOMEM;
            memcpy(mb_store_ptr(m->st, m->off), buf + off, k);
            break;
        }
        off += k;
    }
    return ret;
}

/* RFC 8448 section 3 (Simple 1-RTT Handshake): application traffic secrets
 * and the complete application_data records both sides send. */
#define RFC8448_C_AP_SECRET "9e 40 64 6c e7 9a 7f 9d c0 5a f8 88 9b ce 65 52 87 5a fa 0b 06 df 00 87 f7 92 eb b7 c1 75 04 a5"
#define RFC8448_S_AP_SECRET "a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32 82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 16 43"
#define RFC8448_C_APP_RECORD                                                                     \
    "17 03 03 00 43 a2 3f 70 54 b6 2c 94 d0 af fa fe 82 28 ba 55 cb ef ac ea 42 f9 14 aa 66 bc " \
    "ab 3f 2b 98 19 a8 a5 b4 6b 39 5b d5 4a 9a 20 44 1e 2b 62 97 4e 1f 5a 62 92 a2 97 70 14 bd " \
    "1e 3d ea e6 3a ee bb 21 69 49 15 e4"
#define RFC8448_S_APP_RECORD                                                                     \
    "17 03 03 00 43 2e 93 7e 11 ef 4a c7 40 e5 38 ad 36 00 5f c4 a4 69 32 fc 32 25 d0 5f 82 aa " \
    "1b 36 e3 0e fa f9 7d 90 e6 df fc 60 2d cb 50 1a 59 a8 fc c4 9c 4b f2 e5 f0 a2 1c 00 47 c2 " \
    "ab f3 32 54 0d d0 32 e1 67 c2 95 5d"

/* Our TX, given the client's key at sequence 0, produces the published
 * client record; our RX opens the published server record (sequence 1: the
 * server's NewSessionTicket took sequence 0). Every engine, every TX mode. */
static void test_rfc8448_known_answer(void)
{
    uint8_t csec[32], ssec[32], crec[72], srec[72], data[50];
    const struct ktls_aead_engine *engines[] = {&ktls_aead_openssl, ktls_aead_ipsecmb};

    REQUIRE(tu_unhex(RFC8448_C_AP_SECRET, csec, 32) == 32 && tu_unhex(RFC8448_S_AP_SECRET, ssec, 32) == 32);
    REQUIRE(tu_unhex(RFC8448_C_APP_RECORD, crec, 72) == 72 && tu_unhex(RFC8448_S_APP_RECORD, srec, 72) == 72);
    for (int i = 0; i < 50; i++)
        data[i] = (uint8_t)i;
    for (size_t e = 0; e < 2; e++) {
        if (engines[e] == NULL)
            continue;
        for (size_t mi = 0; mi < 4; mi++) {
            struct ktls_conn_params prm = {.role = KTLS_CLIENT, .cipher = KTLS_AES_128_GCM_SHA256, .tx_secret = csec,
                                           .rx_secret = ssec, .engine = engines[e], .tx_mode = modes[mi]};
            struct mb_chain plain = MB_CHAIN_INIT, out = MB_CHAIN_INIT, app = MB_CHAIN_INIT;
            struct ktls_conn *c;
            uint8_t wire[72];

            REQUIRE(ktls_conn_new(&prm, &c) == 0);
            CHECK_EQ(mb_chain_append_pages_from_buf(&plain, data, 50), 0);
            CHECK_EQ(ktls_tx_seal(c, &plain, &out), 0);
            CHECK_EQ(out.len, 72);
            if (out.len == 72) {
                mb_chain_copy_out(&out, 0, 72, wire);
                CHECK(memcmp(wire, crec, 72) == 0);
            }
            mb_chain_free(&out);
            ktls__conn_set_seq(c, 99, 1);
            CHECK_EQ(ktls_rx_feed(c, srec, 72), 0);
            CHECK_EQ(ktls_rx_process(c, &app), 0);
            CHECK(chain_equals(&app, data, 50));
            mb_chain_free(&app);
            ktls_conn_free(c);
        }
    }
}

/* Chains of n separate 3-byte pieces, n around the sizes of the record
 * layer's stack iovec arrays (64 per record, 256 per message out of place,
 * one entry of each kept for the inner content type): the iovecs fill the
 * stack array in one walk when they fit and go to the heap when not, and
 * either way the records open to the same bytes. Out of place the source,
 * still referenced elsewhere, must come out unchanged. */
static void test_many_pieces(void)
{
    static const int counts[] = {1, 62, 63, 64, 65, 254, 255, 256, 257, 600};
    static const enum ktls_tx_mode pmodes[] = {KTLS_TX_OUTOFPLACE, KTLS_TX_UNSAFE_INPLACE, KTLS_TX_COPY};
    unsigned seed = 99;

    for (size_t mi = 0; mi < sizeof(pmodes) / sizeof(pmodes[0]); mi++) {
        struct ktls_pair p;
        REQUIRE(ktls_pair_open(&p, KTLS_AES_128_GCM_SHA256, NULL, pmodes[mi], 7) == 0);
        for (size_t ci = 0; ci < sizeof(counts) / sizeof(counts[0]); ci++) {
            int n = counts[ci];
            size_t len = (size_t)n * 3;
            uint8_t *buf = malloc(len);
            struct mb_chain plain = MB_CHAIN_INIT, app = MB_CHAIN_INIT, kept = MB_CHAIN_INIT;
            uint64_t recbufs = ktls_conn_stats(p.a)->tx_record_buffers;
            REQUIRE(buf != NULL);
            fill_random(buf, len, &seed);
            for (int i = 0; i < n; i++) {
                struct mb *m = mb_append_inline(&plain, 3);
                REQUIRE(m != NULL);
                memcpy(mb_store_ptr(m->st, m->off), buf + 3 * (size_t)i, 3);
            }
            CHECK_EQ(mb_chain_iovec_count(&plain, 0, plain.len), n);
            CHECK_EQ(mb_chain_copy_ref(&kept, &plain, 0, plain.len), 0);
            CHECK_EQ(ktls_pair_transfer(p.a, p.b, &plain, 1000, &seed, &app), 0);
            CHECK(chain_equals(&app, buf, len));
            if (pmodes[mi] != KTLS_TX_UNSAFE_INPLACE)
                CHECK(chain_equals(&kept, buf, len));
            if (pmodes[mi] == KTLS_TX_OUTOFPLACE)
                CHECK_EQ(ktls_conn_stats(p.a)->tx_record_buffers, recbufs + 1);
            mb_chain_free(&kept);
            mb_chain_free(&app);
            free(buf);
        }
        ktls_pair_close(&p);
    }
}

/* Random chains through every cipher and mode, RX fed in random pieces. */
static void test_roundtrip_all(void)
{
    unsigned seed = 1234;
    size_t sizes[] = {1, 17, 4095, 4096, 16383, 16384, 16385, 100000, 300001};

    for (size_t ci = 0; ci < 3; ci++) {
        for (size_t mi = 0; mi < 4; mi++) {
            struct ktls_pair p;
            REQUIRE(ktls_pair_open(&p, ciphers[ci], NULL, modes[mi], (unsigned)(ci * 4 + mi)) == 0);
            for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
                size_t len = sizes[si];
                uint8_t *buf = malloc(len);
                struct mb_chain plain = MB_CHAIN_INIT, app = MB_CHAIN_INIT;
                REQUIRE(buf != NULL);
                fill_random(buf, len, &seed);
                CHECK_EQ(build_chain(&plain, buf, len, &seed), 0);
                size_t maxpiece = si % 3 == 0 ? 1 : (si % 3 == 1 ? 7 : 40000);
                if (len > 20000 && maxpiece == 1)
                    maxpiece = 3;
                CHECK_EQ(ktls_pair_transfer(p.a, p.b, &plain, maxpiece, &seed, &app), 0);
                CHECK(plain.len == 0);
                CHECK(chain_equals(&app, buf, len));
                mb_chain_free(&app);
                free(buf);
            }
            const struct ktls_stats *st = ktls_conn_stats(p.a);
            uint64_t total = st->tx_bytes_inplace + st->tx_bytes_outofplace + st->tx_bytes_copied;
            CHECK(total == 1 + 17 + 4095 + 4096 + 16383 + 16384 + 16385 + 100000 + 300001);
            if (modes[mi] == KTLS_TX_COPY)
                CHECK(st->tx_bytes_copied == total);
            if (modes[mi] == KTLS_TX_UNSAFE_INPLACE)
                CHECK(st->tx_bytes_inplace == total);
            if (modes[mi] == KTLS_TX_OUTOFPLACE)
                CHECK(st->tx_bytes_outofplace == total && st->tx_record_buffers > 0 && st->tx_pages_allocated == 0);
            /* Exclusively owned fresh chains: auto seals in place. */
            if (modes[mi] == KTLS_TX_AUTO)
                CHECK(st->tx_bytes_inplace == total);
            ktls_pair_close(&p);
        }
    }
}

/* Record framing: sizes and header bytes on the wire. */
static void test_framing(void)
{
    struct ktls_pair p;
    struct mb_chain plain = MB_CHAIN_INIT, out = MB_CHAIN_INIT;
    uint8_t *buf = calloc(1, 40000), *wire;
    size_t len;

    REQUIRE(buf != NULL);
    REQUIRE(ktls_pair_open(&p, KTLS_AES_128_GCM_SHA256, NULL, KTLS_TX_OUTOFPLACE, 9) == 0);
    CHECK_EQ(mb_chain_append_pages_from_buf(&plain, buf, 40000), 0);
    CHECK_EQ(ktls_tx_seal(p.a, &plain, &out), 0);
    /* 16384 + 16384 + 7232, each + 5 header + 1 type + 16 tag. */
    CHECK_EQ(out.len, 40000 + 3 * 22);
    wire = chain_flatten(&out, &len);
    REQUIRE(wire != NULL);
    CHECK(wire[0] == 23 && wire[1] == 3 && wire[2] == 3);
    CHECK_EQ((wire[3] << 8 | wire[4]), 16384 + 17);
    size_t second = 5 + 16384 + 17;
    CHECK(wire[second] == 23);
    CHECK_EQ((wire[second + 3] << 8 | wire[second + 4]), 16384 + 17);
    size_t third = 2 * second;
    CHECK_EQ((wire[third + 3] << 8 | wire[third + 4]), 7232 + 17);
    free(wire);
    ktls_pair_close(&p);

    /* A smaller maximum record size. */
    struct ktls_conn *c;
    uint8_t s[32] = {1};
    struct ktls_conn_params prm = {.cipher = KTLS_AES_128_GCM_SHA256, .tx_secret = s, .rx_secret = s, .max_record = 1000};
    REQUIRE(ktls_conn_new(&prm, &c) == 0);
    CHECK_EQ(mb_chain_append_pages_from_buf(&plain, buf, 2500), 0);
    CHECK_EQ(ktls_tx_seal(c, &plain, &out), 0);
    CHECK_EQ(out.len, 2500 + 3 * 22);
    mb_chain_free(&out);
    ktls_conn_free(c);
    free(buf);
}

/* KeyUpdate from each side, the answer to update_requested, and automatic
 * updates after a byte count. */
static void test_key_update(void)
{
    unsigned seed = 77;
    uint8_t buf[50000];
    struct ktls_pair p;
    struct mb_chain plain = MB_CHAIN_INIT, app = MB_CHAIN_INIT, out = MB_CHAIN_INIT;

    fill_random(buf, sizeof(buf), &seed);
    for (size_t ci = 0; ci < 3; ci++) {
        REQUIRE(ktls_pair_open(&p, ciphers[ci], NULL, KTLS_TX_AUTO, 3) == 0);
        /* a asks b to update too. */
        CHECK_EQ(ktls_tx_key_update(p.a, 1), 0);
        CHECK_EQ(mb_chain_append_bytes(&plain, buf, 1000), 0);
        CHECK_EQ(ktls_pair_transfer(p.a, p.b, &plain, 13, &seed, &app), 0);
        CHECK(chain_equals(&app, buf, 1000));
        mb_chain_free(&app);
        CHECK_EQ(ktls_conn_stats(p.b)->rx_key_updates, 1);
        /* b owes an update; it goes out ahead of b's next data. */
        CHECK_EQ(mb_chain_append_bytes(&plain, buf, 3000), 0);
        CHECK_EQ(ktls_pair_transfer(p.b, p.a, &plain, 5000, &seed, &app), 0);
        CHECK(chain_equals(&app, buf, 3000));
        mb_chain_free(&app);
        CHECK_EQ(ktls_conn_stats(p.b)->tx_key_updates, 1);
        CHECK_EQ(ktls_conn_stats(p.a)->rx_key_updates, 1);
        /* b updates on its own, not requesting: a must not answer. */
        CHECK_EQ(ktls_tx_key_update(p.b, 0), 0);
        CHECK_EQ(ktls_tx_flush_control(p.b, &out), 0);
        CHECK(out.len > 0);
        size_t len;
        uint8_t *wire = chain_flatten(&out, &len);
        CHECK_EQ(ktls_feed_pieces(p.a, wire, len, 3, &seed, &app), 0);
        free(wire);
        CHECK_EQ(ktls_tx_flush_control(p.a, &out), 0);
        CHECK_EQ(out.len, 0);
        CHECK_EQ(ktls_conn_stats(p.a)->rx_key_updates, 2);
        ktls_pair_close(&p);
    }

    /* Automatic KeyUpdate every 16384 bytes. */
    uint8_t s1[32] = {3}, s2[32] = {4};
    struct ktls_conn_params pa = {.cipher = KTLS_AES_128_GCM_SHA256, .tx_secret = s1, .rx_secret = s2,
                                  .key_update_bytes = 16384};
    struct ktls_conn_params pb = {.cipher = KTLS_AES_128_GCM_SHA256, .tx_secret = s2, .rx_secret = s1};
    REQUIRE(ktls_conn_new(&pa, &p.a) == 0 && ktls_conn_new(&pb, &p.b) == 0);
    CHECK_EQ(mb_chain_append_pages_from_buf(&plain, buf, sizeof(buf)), 0);
    CHECK_EQ(ktls_pair_transfer(p.a, p.b, &plain, 9999, &seed, &app), 0);
    CHECK(chain_equals(&app, buf, sizeof(buf)));
    mb_chain_free(&app);
    /* 16 KiB records: an update before each of records 2, 3 and 4. */
    CHECK_EQ(ktls_conn_stats(p.a)->tx_key_updates, 3);
    CHECK_EQ(ktls_conn_stats(p.b)->rx_key_updates, 3);
    ktls_pair_close(&p);
}

/* Seals n records of len bytes each on tx, one message per record, and
 * feeds them to rx; the bytes must arrive. Returns ktls_tx_seal's result. */
static int send_records(struct ktls_conn *tx, struct ktls_conn *rx, int n, size_t len, unsigned *seed)
{
    uint8_t buf[100];
    int ret = 0;

    for (int i = 0; i < n && ret == 0; i++) {
        struct mb_chain plain = MB_CHAIN_INIT, app = MB_CHAIN_INIT;
        fill_random(buf, len, seed);
        CHECK_EQ(mb_chain_append_bytes(&plain, buf, len), 0);
        ret = ktls_pair_transfer(tx, rx, &plain, 64, seed, &app);
        if (ret == 0)
            CHECK(chain_equals(&app, buf, len));
        mb_chain_free(&app);
    }
    return ret;
}

/* The AEAD usage limits (RFC 8446 5.5) and what TX does at them. */
static void test_record_limit(void)
{
    unsigned seed = 91;
    struct ktls_pair p;
    struct mb_chain plain = MB_CHAIN_INIT, out = MB_CHAIN_INIT, app = MB_CHAIN_INIT;
    uint8_t big[9 * 16384];
    size_t len;
    uint8_t *wire;

    CHECK_EQ(ktls_cipher_record_limit(KTLS_AES_128_GCM_SHA256), 23726566);
    CHECK_EQ(ktls_cipher_record_limit(KTLS_AES_256_GCM_SHA384), 23726566);
    CHECK(ktls_cipher_record_limit(KTLS_CHACHA20_POLY1305_SHA256) == UINT64_MAX);
    CHECK_EQ(ktls_cipher_record_limit((enum ktls_cipher)0x1305), 0); /* TLS_AES_128_CCM_8_SHA256 */

    for (size_t ci = 0; ci < 3; ci++) {
        uint64_t limit = ktls_cipher_record_limit(ciphers[ci]);

        REQUIRE(ktls_pair_open(&p, ciphers[ci], NULL, KTLS_TX_AUTO, 5) == 0);
        /* By default no KeyUpdate is initiated, and the whole limit is ours
         * but for the control reserve. */
        CHECK_EQ(ktls_conn_key_update_enabled(p.a), 0);
        CHECK(ktls_conn_tx_records_left(p.a) == limit - KTLS_TX_CONTROL_RESERVE);

        /* The real limit: one record left before it. */
        ktls__conn_set_seq(p.a, limit - KTLS_TX_CONTROL_RESERVE - 1, 0);
        ktls__conn_set_seq(p.b, 0, limit - KTLS_TX_CONTROL_RESERVE - 1);
        CHECK_EQ(ktls_conn_tx_records_left(p.a), 1);
        CHECK_EQ(send_records(p.a, p.b, 1, 100, &seed), 0);
        CHECK_EQ(ktls_conn_tx_records_left(p.a), 0);
        CHECK_EQ(mb_chain_append_bytes(&plain, big, 1), 0);
        CHECK_EQ(ktls_tx_seal(p.a, &plain, &out), -EKEYEXPIRED);
        CHECK_EQ(plain.len, 0); /* consumed, as on every error */
        CHECK_EQ(out.len, 0);   /* nothing sealed */
        /* close_notify still goes out, from the reserve, and is accepted. */
        CHECK_EQ(ktls_tx_close_notify(p.a, &out), 0);
        wire = chain_flatten(&out, &len);
        CHECK_EQ(ktls_feed_pieces(p.b, wire, len, 7, &seed, &app), KTLS_RX_EOF);
        free(wire);
        CHECK_EQ(ktls_conn_stats(p.a)->tx_key_updates, 0);
        ktls_pair_close(&p);
    }

    /* The test hook: 10 records per key, 8 of them for data. */
    REQUIRE(ktls_pair_open(&p, KTLS_AES_128_GCM_SHA256, NULL, KTLS_TX_AUTO, 6) == 0);
    ktls__conn_set_record_limit(p.a, 10);
    CHECK_EQ(ktls_conn_tx_records_left(p.a), 8);
    CHECK_EQ(send_records(p.a, p.b, 3, 50, &seed), 0);
    CHECK_EQ(ktls_conn_tx_records_left(p.a), 5);
    /* A message that needs 9 records is refused whole. */
    memset(big, 7, sizeof(big));
    CHECK_EQ(mb_chain_append_bytes(&plain, big, sizeof(big)), 0);
    CHECK_EQ(ktls_tx_seal(p.a, &plain, &out), -EKEYEXPIRED);
    CHECK_EQ(out.len, 0);
    CHECK_EQ(ktls_conn_tx_records_left(p.a), 5);
    /* Exactly the records left fit: 5 records of 16 KiB. */
    CHECK_EQ(mb_chain_append_bytes(&plain, big, 5 * 16384), 0);
    CHECK_EQ(ktls_pair_transfer(p.a, p.b, &plain, 20000, &seed, &app), 0);
    CHECK(chain_equals(&app, big, 5 * 16384));
    mb_chain_free(&app);
    CHECK_EQ(ktls_conn_tx_records_left(p.a), 0);
    CHECK_EQ(send_records(p.a, p.b, 1, 1, &seed), -EKEYEXPIRED);

    /* At the limit a's peer asks for a KeyUpdate: a still answers (from the
     * reserve), and the fresh key has the full limit again. */
    CHECK_EQ(ktls_tx_key_update(p.b, 1), 0);
    CHECK_EQ(ktls_tx_flush_control(p.b, &out), 0);
    wire = chain_flatten(&out, &len);
    CHECK_EQ(ktls_feed_pieces(p.a, wire, len, 3, &seed, &app), 0);
    free(wire);
    CHECK_EQ(send_records(p.a, p.b, 8, 30, &seed), 0);
    CHECK_EQ(ktls_conn_stats(p.a)->tx_key_updates, 1); /* the answer, nothing of our own */
    CHECK_EQ(ktls_conn_stats(p.b)->rx_key_updates, 1);
    CHECK_EQ(ktls_conn_tx_records_left(p.a), 0);
    /* Out-of-range hook values are clamped. */
    ktls__conn_set_record_limit(p.a, 0);
    CHECK_EQ(ktls_conn_tx_records_left(p.a), 0);
    ktls__conn_set_record_limit(p.a, UINT64_MAX);
    CHECK_EQ(ktls_conn_tx_records_left(p.a), KTLS_AES_GCM_RECORD_LIMIT - KTLS_TX_CONTROL_RESERVE - 8);
    ktls_pair_close(&p);

    /* KeyUpdate opted in (a byte count it never reaches): TX rekeys before
     * the record limit by itself and never refuses. */
    uint8_t s1[32] = {5}, s2[32] = {6};
    struct ktls_conn_params pa = {.cipher = KTLS_AES_128_GCM_SHA256, .tx_secret = s1, .rx_secret = s2,
                                  .key_update_bytes = 1ull << 40, .record_limit = 10};
    struct ktls_conn_params pb = {.cipher = KTLS_AES_128_GCM_SHA256, .tx_secret = s2, .rx_secret = s1};
    REQUIRE(ktls_conn_new(&pa, &p.a) == 0 && ktls_conn_new(&pb, &p.b) == 0);
    CHECK_EQ(ktls_conn_key_update_enabled(p.a), 1);
    CHECK(ktls_conn_tx_records_left(p.a) == UINT64_MAX);
    CHECK_EQ(send_records(p.a, p.b, 50, 20, &seed), 0);
    /* 8 data records per key: updates before records 9, 17, 25, 33, 41, 49. */
    CHECK_EQ(ktls_conn_stats(p.a)->tx_key_updates, 6);
    CHECK_EQ(ktls_conn_stats(p.b)->rx_key_updates, 6);
    ktls_pair_close(&p);
}

static void test_close_notify(void)
{
    unsigned seed = 5;
    struct ktls_pair p;
    struct mb_chain plain = MB_CHAIN_INIT, app = MB_CHAIN_INIT, out = MB_CHAIN_INIT;
    uint8_t data[100] = {42};
    size_t len;

    REQUIRE(ktls_pair_open(&p, KTLS_CHACHA20_POLY1305_SHA256, NULL, KTLS_TX_AUTO, 1) == 0);
    CHECK_EQ(mb_chain_append_bytes(&plain, data, sizeof(data)), 0);
    CHECK_EQ(ktls_tx_seal(p.a, &plain, &out), 0);
    CHECK_EQ(ktls_tx_close_notify(p.a, &out), 0);
    uint8_t *wire = chain_flatten(&out, &len);
    CHECK_EQ(ktls_rx_feed(p.b, wire, len), 0);
    /* Data before close_notify first, then end of stream; the end is
     * already known when the data is handed out (ktls_rx_eof). */
    CHECK_EQ(ktls_rx_eof(p.b), 0);
    CHECK_EQ(ktls_rx_process(p.b, &app), 0);
    CHECK(chain_equals(&app, data, sizeof(data)));
    CHECK_EQ(ktls_rx_eof(p.b), 1);
    CHECK_EQ(ktls_rx_process(p.b, &app), KTLS_RX_EOF);
    CHECK_EQ(ktls_rx_alert(p.b), 0);
    /* Sending after close_notify is refused. */
    CHECK_EQ(mb_chain_append_bytes(&plain, data, 1), 0);
    CHECK_EQ(ktls_tx_seal(p.a, &plain, &out), -EPIPE);
    CHECK(plain.len == 0 && out.len == 0);
    mb_chain_free(&app);
    free(wire);
    (void)seed;
    ktls_pair_close(&p);
}

/* One bit flipped anywhere in a record: bad_record_mac, nothing delivered
 * from that record, the connection dead, and the alert reaches the peer. */
static void test_tampered(void)
{
    unsigned seed = 99;
    uint8_t data[40000];

    fill_random(data, sizeof(data), &seed);
    for (int where = 0; where < 4; where++) {
        struct ktls_pair p;
        struct mb_chain plain = MB_CHAIN_INIT, app = MB_CHAIN_INIT, out = MB_CHAIN_INIT;
        size_t len;
        uint8_t *wire;

        REQUIRE(ktls_pair_open(&p, ciphers[where % 3], NULL, KTLS_TX_OUTOFPLACE, 8) == 0);
        CHECK_EQ(mb_chain_append_pages_from_buf(&plain, data, sizeof(data)), 0);
        CHECK_EQ(ktls_tx_seal(p.a, &plain, &out), 0);
        wire = chain_flatten(&out, &len);
        REQUIRE(wire != NULL);
        /* Flip a bit in the second record: ciphertext, tag, header length-neutral byte, inner type. */
        size_t rec2 = 5 + 16384 + 17;
        size_t pos[4] = {rec2 + 5 + 100, rec2 + 5 + 16384 + 16, rec2 + 2, rec2 + 5 + 16384};
        wire[pos[where]] ^= 0x10;
        int ret = ktls_feed_pieces(p.b, wire, len, 1000, &seed, &app);
        CHECK_EQ(ret, -EBADMSG);
        /* The first record was authentic and delivered; nothing of the second. */
        CHECK(chain_equals(&app, data, 16384));
        CHECK_EQ(ktls_conn_stats(p.b)->rx_bad_records, 1);
        CHECK_EQ(ktls_rx_process(p.b, &app), -EBADMSG); /* sticky */
        CHECK_EQ(app.len, 16384);
        mb_chain_free(&app);
        free(wire);
        /* b sends bad_record_mac; a sees a fatal alert. */
        CHECK_EQ(ktls_tx_flush_control(p.b, &out), 0);
        CHECK(out.len > 0);
        wire = chain_flatten(&out, &len);
        CHECK_EQ(ktls_rx_feed(p.a, wire, len), 0);
        CHECK_EQ(ktls_rx_process(p.a, &app), -EPROTO);
        CHECK_EQ(ktls_rx_alert(p.a), 20);
        free(wire);
        /* b's TX is closed after a fatal alert. */
        CHECK_EQ(mb_chain_append_bytes(&plain, data, 10), 0);
        CHECK_EQ(ktls_tx_seal(p.b, &plain, &out), -EPIPE);
        ktls_pair_close(&p);
    }
}

/* Headers that must be refused before any decryption. */
static void test_bad_headers(void)
{
    struct {
        uint8_t hdr[5];
        int want;
    } cases[] = {
        {{23, 3, 3, 0x41, 0x01}, -EMSGSIZE}, /* 16641 > 2^14 + 256 */
        {{23, 3, 3, 0xff, 0xff}, -EMSGSIZE},
        {{0x42, 3, 3, 0, 40}, -EPROTO},      /* unknown content type */
        {{22, 3, 3, 0, 40}, -EPROTO},        /* plaintext handshake after hand-off */
        {{21, 3, 3, 0, 2}, -EPROTO},         /* plaintext alert */
        {{23, 9, 3, 0, 40}, -EPROTO},        /* not TLS */
        {{23, 3, 3, 0, 16}, -EPROTO},        /* too short to hold type + tag */
        {{23, 3, 3, 0x40, 0x12}, -EMSGSIZE}, /* inner plaintext 16386 > 2^14 + 1 */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ktls_pair p;
        struct mb_chain app = MB_CHAIN_INIT, out = MB_CHAIN_INIT;
        REQUIRE(ktls_pair_open(&p, KTLS_AES_128_GCM_SHA256, NULL, KTLS_TX_AUTO, 2) == 0);
        CHECK_EQ(ktls_rx_feed(p.b, cases[i].hdr, 5), 0);
        CHECK_EQ(ktls_rx_process(p.b, &app), cases[i].want);
        CHECK_EQ(app.len, 0);
        /* An alert is queued for the peer. */
        CHECK_EQ(ktls_tx_flush_control(p.b, &out), 0);
        CHECK(out.len > 0);
        mb_chain_free(&out);
        ktls_pair_close(&p);
    }
}

/* Authentic records with bad contents: all-zero inner plaintext, unknown
 * inner type, a KeyUpdate not at the end of its record or with a bad
 * request_update, a long alert, a NewSessionTicket sent to a server. Each
 * is refused with the alert RFC 8446 names, and that alert reaches the
 * peer: illegal_parameter for a KeyUpdate that decodes but asks for 2 or 7
 * (4.6.3), unexpected_message for a ticket from a client (4.6.1). */
static void test_bad_inner(void)
{
    uint8_t zeros[10] = {0}, bad_ku[6] = {24, 0, 0, 1, 0, 0}, ku_value7[5] = {24, 0, 0, 1, 7},
            ku_value2[5] = {24, 0, 0, 1, 2}, ku_long[6] = {24, 0, 0, 2, 0, 0}, long_alert[3] = {2, 40, 0},
            unknown_hs[4] = {1, 0, 0, 0}, bad_level[2] = {0, 40}, nst[4 + 20] = {4, 0, 0, 20};
    struct {
        uint8_t ct;
        const uint8_t *data;
        size_t len;
        int alert;
    } cases[] = {
        {0, zeros, sizeof(zeros), 10},
        {99, zeros, 3, 10},
        {KTLS_CT_HANDSHAKE, bad_ku, sizeof(bad_ku), 10},
        {KTLS_CT_HANDSHAKE, ku_value7, sizeof(ku_value7), 47},
        {KTLS_CT_HANDSHAKE, ku_value2, sizeof(ku_value2), 47},
        {KTLS_CT_HANDSHAKE, ku_long, sizeof(ku_long), 50},
        {KTLS_CT_ALERT, long_alert, sizeof(long_alert), 50},
        {KTLS_CT_ALERT, bad_level, sizeof(bad_level), 50},
        {KTLS_CT_HANDSHAKE, unknown_hs, sizeof(unknown_hs), 10},
        {KTLS_CT_CHANGE_CIPHER_SPEC, zeros, 1, 10},
        {KTLS_CT_HANDSHAKE, nst, sizeof(nst), 10}, /* a is the client, b the server */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ktls_pair p;
        struct mb_chain app = MB_CHAIN_INIT, out = MB_CHAIN_INIT;
        size_t len;
        REQUIRE(ktls_pair_open(&p, KTLS_AES_256_GCM_SHA384, NULL, KTLS_TX_AUTO, 2) == 0);
        CHECK_EQ(ktls__tx_control_record(p.a, cases[i].ct, cases[i].data, cases[i].len), 0);
        CHECK_EQ(ktls_tx_flush_control(p.a, &out), 0);
        uint8_t *wire = chain_flatten(&out, &len);
        CHECK_EQ(ktls_rx_feed(p.b, wire, len), 0);
        int ret = ktls_rx_process(p.b, &app);
        CHECK(ret == -EPROTO);
        CHECK_EQ(app.len, 0);
        free(wire);
        CHECK_EQ(ktls_tx_alert(p.b), cases[i].alert);
        CHECK_EQ(ktls_rx_alert(p.b), -1); /* b received no alert: it sent one */
        /* The alert b queued is the one a receives. */
        CHECK_EQ(ktls_tx_flush_control(p.b, &out), 0);
        wire = chain_flatten(&out, &len);
        CHECK_EQ(ktls_rx_feed(p.a, wire, len), 0);
        CHECK_EQ(ktls_rx_process(p.a, &app), -EPROTO);
        CHECK_EQ(ktls_rx_alert(p.a), cases[i].alert);
        CHECK_EQ(ktls_tx_alert(p.a), -1); /* a fatal alert is never answered */
        if (ktls_rx_alert(p.a) != cases[i].alert)
            fprintf(stderr, "  case %zu: %s, want %s\n", i, ktls_alert_name(ktls_rx_alert(p.a)),
                    ktls_alert_name(cases[i].alert));
        free(wire);
        ktls_pair_close(&p);
    }
}

/* NewSessionTicket from the server after the hand-off: the client consumes
 * it silently (we never resume). */
static void test_ticket_consumed(void)
{
    uint8_t nst[4 + 20] = {4, 0, 0, 20};
    struct ktls_pair p;
    struct mb_chain app = MB_CHAIN_INIT, out = MB_CHAIN_INIT, plain = MB_CHAIN_INIT;
    size_t len;

    REQUIRE(ktls_pair_open(&p, KTLS_AES_128_GCM_SHA256, NULL, KTLS_TX_AUTO, 4) == 0);
    /* Two, as FreeBSD's and OpenSSL's servers send by default. */
    CHECK_EQ(ktls__tx_control_record(p.b, KTLS_CT_HANDSHAKE, nst, sizeof(nst)), 0);
    CHECK_EQ(ktls__tx_control_record(p.b, KTLS_CT_HANDSHAKE, nst, sizeof(nst)), 0);
    CHECK_EQ(mb_chain_append_bytes(&plain, "hello", 5), 0);
    CHECK_EQ(ktls_tx_seal(p.b, &plain, &out), 0);
    uint8_t *wire = chain_flatten(&out, &len);
    CHECK_EQ(ktls_rx_feed(p.a, wire, len), 0);
    CHECK_EQ(ktls_rx_process(p.a, &app), 0);
    CHECK(chain_equals(&app, (const uint8_t *)"hello", 5));
    CHECK_EQ(ktls_tx_alert(p.a), -1);
    mb_chain_free(&app);
    free(wire);
    ktls_pair_close(&p);
}

/* Alert names are RFC 8446's, from a table covering section 6; the last
 * alert sent is reported, close_notify included. */
static void test_alert_names(void)
{
    struct ktls_pair p;
    struct mb_chain out = MB_CHAIN_INIT;

    CHECK(strcmp(ktls_alert_name(0), "close_notify") == 0);
    CHECK(strcmp(ktls_alert_name(10), "unexpected_message") == 0);
    CHECK(strcmp(ktls_alert_name(20), "bad_record_mac") == 0);
    CHECK(strcmp(ktls_alert_name(22), "record_overflow") == 0);
    CHECK(strcmp(ktls_alert_name(47), "illegal_parameter") == 0);
    CHECK(strcmp(ktls_alert_name(50), "decode_error") == 0);
    CHECK(strcmp(ktls_alert_name(80), "internal_error") == 0);
    CHECK(strcmp(ktls_alert_name(90), "user_canceled") == 0);
    CHECK(strcmp(ktls_alert_name(109), "missing_extension") == 0);
    CHECK(strcmp(ktls_alert_name(116), "certificate_required") == 0);
    CHECK(strcmp(ktls_alert_name(120), "no_application_protocol") == 0);
    CHECK(strcmp(ktls_alert_name(121), "unknown_alert") == 0);
    CHECK(strcmp(ktls_alert_name(-1), "unknown_alert") == 0);
    CHECK(strcmp(ktls_alert_name(255), "unknown_alert") == 0);
    REQUIRE(ktls_pair_open(&p, KTLS_AES_128_GCM_SHA256, NULL, KTLS_TX_AUTO, 4) == 0);
    CHECK_EQ(ktls_tx_alert(p.a), -1);
    CHECK_EQ(ktls_rx_alert(p.a), -1);
    CHECK_EQ(ktls_tx_close_notify(p.a, &out), 0);
    CHECK_EQ(ktls_tx_alert(p.a), 0);
    mb_chain_free(&out);
    ktls_pair_close(&p);
}

/* A chain that references its own bytes twice is shared with itself: auto
 * must not seal it in place (the first record's output still points at the
 * bytes the second would overwrite). */
static void test_auto_self_alias(void)
{
    unsigned seed = 31;
    uint8_t buf[6000], want[12000];
    struct ktls_pair p;
    struct mb_chain plain = MB_CHAIN_INIT, app = MB_CHAIN_INIT;

    fill_random(buf, sizeof(buf), &seed);
    memcpy(want, buf, sizeof(buf));
    memcpy(want + sizeof(buf), buf, sizeof(buf));
    struct ktls_conn_params prm = {.cipher = KTLS_AES_128_GCM_SHA256, .max_record = 4096};
    uint8_t s1[32] = {9}, s2[32] = {10};
    struct ktls_conn_params pb = prm;
    prm.tx_secret = s1, prm.rx_secret = s2, pb.tx_secret = s2, pb.rx_secret = s1;
    REQUIRE(ktls_conn_new(&prm, &p.a) == 0 && ktls_conn_new(&pb, &p.b) == 0);
    CHECK_EQ(mb_chain_append_pages_from_buf(&plain, buf, sizeof(buf)), 0);
    CHECK_EQ(mb_chain_copy_ref(&plain, &plain, 0, sizeof(buf)), 0);
    CHECK_EQ(ktls_pair_transfer(p.a, p.b, &plain, 500, &seed, &app), 0);
    CHECK(chain_equals(&app, want, sizeof(want)));
    CHECK_EQ(ktls_conn_stats(p.a)->tx_bytes_inplace, 0);
    mb_chain_free(&app);
    ktls_pair_close(&p);
}

/* One message of owned, shared, owned pages in auto mode: the owned
 * records go in place, the shared ones out of place into record buffers,
 * in one ktls_tx_seal, and the shared pages are left untouched. Record
 * boundaries fall inside pages (max_record 5000) so both paths cut links. */
static void test_auto_mixed(void)
{
    unsigned seed = 37;
    enum { A = 3 * 4096, B = 5 * 4096 + 100, C = 2 * 4096 };
    static uint8_t buf[A + B + C], keep[B];
    struct ktls_pair p;
    struct mb_chain plain = MB_CHAIN_INIT, shared = MB_CHAIN_INIT, tail = MB_CHAIN_INIT, app = MB_CHAIN_INIT;
    struct mb_pool_stats s0, s1;

    fill_random(buf, sizeof(buf), &seed);
    memcpy(keep, buf + A, B);
    struct ktls_conn_params prm = {.cipher = KTLS_AES_128_GCM_SHA256, .max_record = 5000};
    uint8_t s1k[32] = {11}, s2k[32] = {12};
    struct ktls_conn_params pb = prm;
    prm.tx_secret = s1k, prm.rx_secret = s2k, pb.tx_secret = s2k, pb.rx_secret = s1k;
    REQUIRE(ktls_conn_new(&prm, &p.a) == 0 && ktls_conn_new(&pb, &p.b) == 0);
    mb_pool_get_stats(&s0);
    CHECK_EQ(mb_chain_append_pages_from_buf(&plain, buf, A), 0);
    CHECK_EQ(mb_chain_append_pages_from_buf(&shared, buf + A, B), 0);
    CHECK_EQ(mb_chain_copy_ref(&plain, &shared, 0, B), 0); /* shared keeps a reference */
    CHECK_EQ(mb_chain_append_pages_from_buf(&tail, buf + A + B, C), 0);
    mb_chain_concat(&plain, &tail);
    CHECK_EQ(ktls_pair_transfer(p.a, p.b, &plain, 700, &seed, &app), 0);
    CHECK(chain_equals(&app, buf, sizeof(buf)));
    CHECK(chain_equals(&shared, keep, B));
    const struct ktls_stats *st = ktls_conn_stats(p.a);
    CHECK(st->tx_bytes_inplace > 0 && st->tx_bytes_outofplace > 0);
    CHECK_EQ(st->tx_bytes_inplace + st->tx_bytes_outofplace, sizeof(buf));
    CHECK_EQ(st->tx_record_buffers, st->tx_records_outofplace);
    mb_chain_free(&app);
    mb_chain_free(&shared);
    ktls_pair_close(&p);
    mb_pool_get_stats(&s1);
    CHECK_EQ(s1.recs_in_use, s0.recs_in_use);
    CHECK_EQ(s1.pages_in_use, s0.pages_in_use);
}

/* The two halves of a split share a store but no byte: auto seals each in
 * place (mbuf's ownership rule), and sealing one leaves the other's bytes
 * alone. A copy-by-reference of the second half then makes it shared: out
 * of place, and the copy stays intact. */
static void test_auto_split_halves(void)
{
    unsigned seed = 41;
    enum { N = 3 * 4096 + 500, CUT = 5000 };
    static uint8_t buf[N];
    struct ktls_pair p;
    struct mb_chain first = MB_CHAIN_INIT, second = MB_CHAIN_INIT, keep = MB_CHAIN_INIT, app = MB_CHAIN_INIT;

    fill_random(buf, sizeof(buf), &seed);
    REQUIRE(ktls_pair_open(&p, KTLS_AES_128_GCM_SHA256, NULL, KTLS_TX_AUTO, 8) == 0);
    CHECK_EQ(mb_chain_append_pages_from_buf(&first, buf, N), 0);
    CHECK_EQ(mb_chain_split(&first, CUT, &second), 0); /* one store, two chains */
    CHECK_EQ(ktls_pair_transfer(p.a, p.b, &first, 900, &seed, &app), 0);
    CHECK(chain_equals(&app, buf, CUT));
    CHECK_EQ(ktls_conn_stats(p.a)->tx_bytes_inplace, CUT);
    CHECK(chain_equals(&second, buf + CUT, N - CUT)); /* untouched by the in-place seal */
    mb_chain_free(&app);
    CHECK_EQ(mb_chain_copy_ref(&keep, &second, 0, second.len), 0);
    CHECK_EQ(ktls_pair_transfer(p.a, p.b, &second, 900, &seed, &app), 0);
    CHECK(chain_equals(&app, buf + CUT, N - CUT));
    CHECK_EQ(ktls_conn_stats(p.a)->tx_bytes_inplace, CUT);
    CHECK_EQ(ktls_conn_stats(p.a)->tx_bytes_outofplace, N - CUT);
    CHECK(chain_equals(&keep, buf + CUT, N - CUT));
    mb_chain_free(&keep);
    mb_chain_free(&app);
    ktls_pair_close(&p);
}

/* 16 KiB of zero padding arriving one byte at a time: processed, and the
 * receive buffer stays one link per store (no quadratic walk). */
static void test_padding_bytewise(void)
{
    unsigned seed = 3;
    uint8_t rec[16385];
    struct ktls_pair p;
    struct mb_chain app = MB_CHAIN_INIT, out = MB_CHAIN_INIT;
    size_t len;

    memset(rec, 0, sizeof(rec));
    memcpy(rec, "hi", 2);
    rec[2] = KTLS_CT_APPLICATION_DATA; /* then 16382 bytes of padding */
    REQUIRE(ktls_pair_open(&p, KTLS_AES_128_GCM_SHA256, NULL, KTLS_TX_AUTO, 6) == 0);
    /* Sealed as inner type 0 with the real type inside: the wire bytes are
     * those of a padded record. */
    CHECK_EQ(ktls__tx_control_record(p.a, 0, rec, sizeof(rec) - 1), 0);
    CHECK_EQ(ktls_tx_flush_control(p.a, &out), 0);
    uint8_t *wire = chain_flatten(&out, &len);
    CHECK_EQ(len, 5 + 16385 + 16);
    CHECK_EQ(ktls_feed_pieces(p.b, wire, len, 1, &seed, &app), 0);
    CHECK(chain_equals(&app, (const uint8_t *)"hi", 2));
    mb_chain_free(&app);
    free(wire);
    ktls_pair_close(&p);
}

/* Receiving under guard mode: delivered data is shared (and so write-
 * protected); reads and in-place decryption move to fresh stores instead of
 * faulting. */
static void test_rx_guard_mode(void)
{
    unsigned seed = 8;
    static uint8_t buf[200000];
    struct ktls_pair p;
    struct mb_chain plain = MB_CHAIN_INIT, app = MB_CHAIN_INIT, kept = MB_CHAIN_INIT;

    fill_random(buf, sizeof(buf), &seed);
    mb__guard_set(1);
    REQUIRE(ktls_pair_open(&p, KTLS_AES_128_GCM_SHA256, NULL, KTLS_TX_AUTO, 7) == 0);
    for (int round = 0; round < 3; round++) {
        CHECK_EQ(mb_chain_append_pages_from_buf(&plain, buf, sizeof(buf)), 0);
        CHECK_EQ(ktls_pair_transfer(p.a, p.b, &plain, 3000, &seed, &app), 0);
        CHECK(chain_equals(&app, buf, sizeof(buf)));
        /* Keep a reference: the receive pages become shared and guarded. */
        CHECK_EQ(mb_chain_copy_ref(&kept, &app, 0, app.len), 0);
        mb_chain_free(&app);
    }
    CHECK_EQ(kept.len, 3 * sizeof(buf));
    mb_chain_free(&kept);
    ktls_pair_close(&p);
    mb__guard_set(0);
}

/* Writing to a peer that has gone returns -EPIPE instead of raising SIGPIPE. */
static void test_write_to_closed_peer(void)
{
    int sv[2];
    struct mb_chain c = MB_CHAIN_INIT;

    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    close(sv[1]);
    CHECK_EQ(mb_chain_append_bytes(&c, "x", 1), 0);
    CHECK_EQ(ktls_write_chain(sv[0], &c), -EPIPE);
    CHECK_EQ(c.len, 0);
    close(sv[0]);
}

/* ktls_recv over data and close_notify that arrive in one read: the data
 * first, then KTLS_RX_EOF from what was already read, without waiting for
 * bytes that will not come (the writer stays open, as a peer waiting for
 * our close_notify does; an alarm ends the test if the read blocks). */
static void test_recv_data_then_eof_one_read(void)
{
    struct ktls_pair p;
    struct mb_chain plain = MB_CHAIN_INIT, out = MB_CHAIN_INIT, app = MB_CHAIN_INIT;
    int sv[2];

    REQUIRE(ktls_pair_open(&p, KTLS_AES_128_GCM_SHA256, NULL, KTLS_TX_AUTO, 12) == 0);
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK_EQ(mb_chain_append_bytes(&plain, "last call", 9), 0);
    CHECK_EQ(ktls_tx_seal(p.a, &plain, &out), 0);
    CHECK_EQ(ktls_tx_close_notify(p.a, &out), 0);
    CHECK_EQ(ktls_write_chain(sv[1], &out), 0);
    alarm(10);
    CHECK_EQ(ktls_recv(p.b, sv[0], &app), 0);
    CHECK(chain_equals(&app, (const uint8_t *)"last call", 9));
    CHECK_EQ(ktls_rx_eof(p.b), 1);
    CHECK_EQ(ktls_recv(p.b, sv[0], &app), KTLS_RX_EOF);
    alarm(0);
    CHECK_EQ(app.len, 9);
    mb_chain_free(&app);
    close(sv[0]);
    close(sv[1]);
    ktls_pair_close(&p);
}

int main(void)
{
    TEST_RUN(test_rfc8448_known_answer);
    TEST_RUN(test_framing);
    TEST_RUN(test_roundtrip_all);
    TEST_RUN(test_many_pieces);
    TEST_RUN(test_key_update);
    TEST_RUN(test_record_limit);
    TEST_RUN(test_close_notify);
    TEST_RUN(test_tampered);
    TEST_RUN(test_bad_headers);
    TEST_RUN(test_bad_inner);
    TEST_RUN(test_ticket_consumed);
    TEST_RUN(test_alert_names);
    TEST_RUN(test_auto_self_alias);
    TEST_RUN(test_auto_mixed);
    TEST_RUN(test_auto_split_halves);
    TEST_RUN(test_padding_bytewise);
    TEST_RUN(test_rx_guard_mode);
    TEST_RUN(test_write_to_closed_peer);
    TEST_RUN(test_recv_data_then_eof_one_read);
    CHECK_EQ(mb_pool_shutdown(), 0);
    return test_summary();
}
