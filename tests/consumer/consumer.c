/*
 * tests/consumer/consumer.c - a program that uses librpctls the way an
 * outside program does: the installed headers (<rpctls/...>), the shared
 * library only, the public API only. tests/shared_consumer.sh builds it
 * against an installed copy of the library and runs it.
 *
 * It includes every public header (each must compile on its own terms in
 * strict C11), then touches each layer: an XDR round trip on a buffer chain,
 * TLS records sealed by one record-layer connection and opened by its peer
 * (fixed secrets, no handshake), NFSv3 names, and the page pool's
 * accounting at the end. Exit status 0 when every check holds.
 */
#include <rpctls/aead.h>
#include <rpctls/krpc.h>
#include <rpctls/krpc_clnt.h>
#include <rpctls/krpc_pmap.h>
#include <rpctls/krpc_rpcb.h>
#include <rpctls/krpc_svc.h>
#include <rpctls/ktls.h>
#include <rpctls/mbuf.h>
#include <rpctls/nfs3.h>
#include <rpctls/nfs3_clnt.h>
#include <rpctls/nfs3_export.h>
#include <rpctls/nfs3_mirror.h>
#include <rpctls/nfs3_srv.h>
#include <rpctls/pki.h>
#include <rpctls/xdr.h>

#include <stdio.h>
#include <string.h>

static int failures;

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "consumer: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                             \
        }                                                                           \
    } while (0)

static void xdr_round_trip(void)
{
    struct mb_chain c = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    struct krpc_xdr_dec d;
    char s[16];

    krpc_xdr_enc_init(&x, &c);
    krpc_xdr_put_u32(&x, 100003);
    krpc_xdr_put_string(&x, "rpctls");
    CHECK(krpc_xdr_enc_error(&x) == 0);
    CHECK(c.len == 4 + 4 + 8); /* u32, length, "rpctls" padded to 8 */
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    CHECK(krpc_xdr_get_u32(&d) == 100003);
    CHECK(krpc_xdr_get_string(&d, s, sizeof s) == 0 && strcmp(s, "rpctls") == 0);
    CHECK(krpc_xdr_dec_error(&d) == 0 && krpc_xdr_remaining(&d) == 0);
    mb_chain_free(&c);
}

static void tls_records(void)
{
    static const char msg[] = "sealed by one side, opened by the other";
    uint8_t s1[48], s2[48];
    struct ktls_conn_params pa = {0}, pb;
    struct ktls_conn *a = NULL, *b = NULL;
    struct mb_chain plain = MB_CHAIN_INIT, wire = MB_CHAIN_INIT, app = MB_CHAIN_INIT;
    char out[sizeof msg];
    unsigned char buf[4096];
    size_t off;

    for (int i = 0; i < 48; i++) {
        s1[i] = (uint8_t)(i * 13 + 1);
        s2[i] = (uint8_t)(i * 29 + 5);
    }
    pa.role = KTLS_CLIENT;
    pa.cipher = KTLS_AES_128_GCM_SHA256;
    pa.tx_secret = s1;
    pa.rx_secret = s2;
    pb = pa;
    pb.role = KTLS_SERVER;
    pb.tx_secret = s2;
    pb.rx_secret = s1;
    CHECK(ktls_conn_new(&pa, &a) == 0 && ktls_conn_new(&pb, &b) == 0);
    if (a == NULL || b == NULL)
        goto out;

    CHECK(mb_chain_append_bytes(&plain, msg, sizeof msg) == 0);
    CHECK(ktls_tx_seal(a, &plain, &wire) == 0);
    CHECK(plain.len == 0 && wire.len == KTLS_HDR_LEN + sizeof msg + 1 + KTLS_AEAD_TAG_LEN);
    CHECK(ktls_conn_stats(a)->tx_records_inplace + ktls_conn_stats(a)->tx_records_outofplace +
              ktls_conn_stats(a)->tx_records_copied == 1);
    for (off = 0; off < wire.len && off < sizeof buf; off++)
        buf[off] = (unsigned char)mb_chain_byte(&wire, off);
    CHECK(ktls_rx_feed(b, buf, off) == 0);
    CHECK(ktls_rx_process(b, &app) == 0);
    CHECK(app.len == sizeof msg && mb_chain_copy_out(&app, 0, sizeof msg, out) == 0 &&
          memcmp(out, msg, sizeof msg) == 0);
    CHECK(ktls_conn_stats(b)->rx_records == 1);

out:
    mb_chain_free(&plain);
    mb_chain_free(&wire);
    mb_chain_free(&app);
    ktls_conn_free(a);
    ktls_conn_free(b);
}

static void names(void)
{
    enum ktls_tx_mode m;

    CHECK(strcmp(nfs3_stat_name(NFS3ERR_NOENT), "NFS3ERR_NOENT") == 0);
    CHECK(strcmp(ktls_cipher_name(KTLS_AES_128_GCM_SHA256), "aes128gcm") == 0);
    CHECK(ktls_tx_mode_from_name("outofplace", &m) == 0 && m == KTLS_TX_OUTOFPLACE);
    CHECK(strcmp(ktls_tx_mode_name(KTLS_TX_COPY), "copy") == 0);
    /* The unsafe mode is asked for by its full name only. */
    CHECK(ktls_tx_mode_from_name("unsafe-inplace", &m) == 0 && m == KTLS_TX_UNSAFE_INPLACE);
    CHECK(ktls_tx_mode_from_name("inplace", &m) < 0);
    CHECK(strcmp(ktls_tx_mode_name(KTLS_TX_UNSAFE_INPLACE), "unsafe-inplace") == 0);
    CHECK(ktls_aead_find("openssl") == &ktls_aead_openssl);
}

int main(void)
{
    xdr_round_trip();
    tls_records();
    names();
    /* Every page, store and link went back to the pool. */
    CHECK(mb_pool_shutdown() == 0);
    if (failures == 0)
        printf("consumer: ok\n");
    return failures == 0 ? 0 : 1;
}
