/*
 * test_ktls_interop.c - our record layer against stock OpenSSL over loopback.
 *
 * For each TLS 1.3 suite and both roles: the handshake is done by OpenSSL on
 * both sides, then our side runs the record layer alone while the peer keeps
 * using SSL_read/SSL_write. 64 MiB go each way in varied write sizes (ours
 * as page-vector chains through ktls_send), each side sends a KeyUpdate that
 * requests one back mid-stream, and both sides close with close_notify. The
 * SHA-256 of each stream is compared with the sender's.
 *
 * The directions are sequenced (we send, then the peer sends) because a
 * ktls_conn is not shared between threads. RPCTLS_INTEROP_MIB changes the
 * volume (default 64).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rpctls/ktls.h"
#include "test.h"
#include "util/certs.h"
#include "util/net.h"
#include "util/ossl_peer.h"
#include "util/stream.h"

#define OUR_SEED 11
#define PEER_SEED 22

static struct tu_certs certs;
static uint64_t volume;
static uint8_t our_sha[32], peer_sha[32];

static const struct {
    const char *suite;
    enum ktls_cipher cipher;
} suites[] = {
    {"TLS_AES_128_GCM_SHA256", KTLS_AES_128_GCM_SHA256},
    {"TLS_AES_256_GCM_SHA384", KTLS_AES_256_GCM_SHA384},
    {"TLS_CHACHA20_POLY1305_SHA256", KTLS_CHACHA20_POLY1305_SHA256},
};

/* Sends volume bytes of stream OUR_SEED in chunks cycling through
 * tu_write_sizes, with a KeyUpdate (requesting one back) half way. Every
 * other chunk is also retained by reference while it is sent, like an RPC
 * client keeping a request for retransmission; it must come back intact. */
static int send_all(struct ktls_conn *c, int fd, unsigned first_size, unsigned char *buf, unsigned char *check)
{
    uint64_t pos = 0;
    unsigned idx = first_size, k = 0;
    int ku_done = 0, ret = 0;

    while (pos < volume && ret == 0) {
        struct mb_chain ch = MB_CHAIN_INIT, kept = MB_CHAIN_INIT;
        size_t n = tu_write_sizes[idx++ % tu_nwrite_sizes];

        if (n > volume - pos)
            n = (size_t)(volume - pos);
        if (!ku_done && pos >= volume / 2) {
            ret = ktls_tx_key_update(c, 1);
            ku_done = 1;
            if (ret != 0)
                break;
        }
        tu_stream_fill(OUR_SEED, pos, buf, n);
        ret = mb_chain_append_pages_from_buf(&ch, buf, n);
        if (ret == 0 && (k++ & 1))
            ret = mb_chain_copy_ref(&kept, &ch, 0, ch.len);
        if (ret == 0)
            ret = ktls_send(c, fd, &ch);
        if (ret == 0 && kept.len > 0) {
            if (kept.len != n || mb_chain_copy_out(&kept, 0, n, check) != 0 || memcmp(check, buf, n) != 0) {
                fprintf(stderr, "  retained plaintext changed at %llu\n", (unsigned long long)pos);
                ret = -EIO;
            }
        }
        mb_chain_free(&ch);
        mb_chain_free(&kept);
        pos += n;
    }
    return ret;
}

static int send_close(struct ktls_conn *c, int fd)
{
    struct mb_chain out = MB_CHAIN_INIT;
    int ret = ktls_tx_flush_control(c, &out);

    if (ret == 0)
        ret = ktls_tx_close_notify(c, &out);
    if (ret == 0)
        ret = ktls_write_chain(fd, &out);
    mb_chain_free(&out);
    return ret;
}

static void run_one(int si, enum ktls_role our_role)
{
    struct ktls_config cfg;
    struct tu_peer_cfg pc;
    struct tu_peer_result res;
    struct tu_peer *peer;
    struct ktls_conn *c = NULL;
    struct tu_sha rx;
    uint8_t sha[32];
    unsigned char *buf = malloc(1 << 20), *check = malloc(1 << 20);
    char err[512] = "";
    int cfd, sfd, ours, theirs, ret, eof = 0;

    fprintf(stderr, "  %s, we are the %s\n", suites[si].suite, our_role == KTLS_CLIENT ? "client" : "server");
    REQUIRE(buf && check);
    REQUIRE(tu_tcp_pair(&cfd, &sfd) == 0);
    ours = our_role == KTLS_CLIENT ? cfd : sfd;
    theirs = our_role == KTLS_CLIENT ? sfd : cfd;

    memset(&pc, 0, sizeof(pc));
    pc.role = our_role == KTLS_CLIENT ? KTLS_SERVER : KTLS_CLIENT;
    pc.cert_file = pc.role == KTLS_SERVER ? certs.server_cert : certs.client_cert;
    pc.key_file = pc.role == KTLS_SERVER ? certs.server_key : certs.client_key;
    pc.ca_file = certs.ca_cert;
    pc.require_peer_cert = 1;
    pc.verify_host = "127.0.0.1";
    pc.ciphersuites = suites[si].suite;
    pc.alpn = "sunrpc";
    pc.timeout_ms = 30000;
    pc.ops[0] = (struct tu_op){.kind = TU_OP_RECV, .n = volume};
    pc.ops[1] = (struct tu_op){
        .kind = TU_OP_SEND, .n = volume, .seed = PEER_SEED, .key_update_at = volume / 2, .first_size = (unsigned)si};
    pc.ops[2] = (struct tu_op){.kind = TU_OP_CLOSE};
    REQUIRE(tu_peer_start(&pc, theirs, &peer) == 0);

    memset(&cfg, 0, sizeof(cfg));
    cfg.role = our_role;
    cfg.cert_file = our_role == KTLS_SERVER ? certs.server_cert : certs.client_cert;
    cfg.key_file = our_role == KTLS_SERVER ? certs.server_key : certs.client_key;
    cfg.ca_file = certs.ca_cert;
    cfg.verify_peer = our_role == KTLS_SERVER ? 2 : 1;
    cfg.server_name = "localhost";
    cfg.alpn = "sunrpc";
    cfg.require_alpn = 1;
    /* Only our suite: the peer enforces it too, this checks we agree. */
    cfg.ciphersuites = suites[si].suite;
    /* Both engines: the default (multi-buffer when built) and OpenSSL EVP. */
    cfg.engine = our_role == KTLS_SERVER ? &ktls_aead_openssl : NULL;
    cfg.timeout_ms = 30000;
    ret = ktls_handshake(&cfg, ours, &c, err, sizeof(err));
    if (ret != 0)
        fprintf(stderr, "  handshake: %s\n", err);
    CHECK_EQ(ret, 0);

    if (c != NULL) {
        CHECK_EQ(ktls_conn_cipher(c), suites[si].cipher);
        /* Our stream to the peer, then the peer's to us. */
        CHECK_EQ(send_all(c, ours, (unsigned)si + 3, buf, check), 0);
        tu_sha_init(&rx);
        for (;;) {
            struct mb_chain app = MB_CHAIN_INIT;
            ret = ktls_recv(c, ours, &app);
            tu_sha_update_chain(&rx, &app);
            mb_chain_free(&app);
            if (ret != 0)
                break;
        }
        CHECK_EQ(ret, KTLS_RX_EOF);
        eof = ret == KTLS_RX_EOF;
        CHECK_EQ(rx.bytes, volume);
        tu_sha_final(&rx, sha);
        CHECK(memcmp(sha, peer_sha, 32) == 0);
        /* Our close_notify goes after the KeyUpdate answer we owe. */
        CHECK_EQ(send_close(c, ours), 0);

        const struct ktls_stats *st = ktls_conn_stats(c);
        CHECK_EQ(st->tx_key_updates, 2); /* ours + the answer to the peer's */
        CHECK_EQ(st->rx_key_updates, 2); /* the peer's answer + its own */
        CHECK_EQ(st->rx_bad_records, 0);
        ktls_conn_free(c);
    }
    shutdown(ours, SHUT_WR);
    if (c == NULL || !eof)
        shutdown(ours, SHUT_RDWR);
    tu_peer_join(peer, &res);
    close(ours);
    if (!res.ok)
        fprintf(stderr, "  %s\n", res.err);
    CHECK(res.ok);
    CHECK(res.handshake_ok);
    CHECK_EQ(strcmp(res.cipher, suites[si].suite), 0);
    CHECK_EQ(strcmp(res.alpn, "sunrpc"), 0);
    CHECK_EQ(res.received, volume);
    CHECK(memcmp(res.recv_sha, our_sha, 32) == 0);
    CHECK_EQ(res.sent, volume);
    CHECK(memcmp(res.sent_sha, peer_sha, 32) == 0);
    CHECK(res.got_close_notify);
    CHECK_EQ(res.key_updates, 1);
    free(buf);
    free(check);
}

static void test_interop_client(void)
{
    for (int i = 0; i < 3; i++)
        run_one(i, KTLS_CLIENT);
}

static void test_interop_server(void)
{
    for (int i = 0; i < 3; i++)
        run_one(i, KTLS_SERVER);
}

int main(void)
{
    const char *mib = getenv("RPCTLS_INTEROP_MIB");

    signal(SIGPIPE, SIG_IGN);
    volume = (uint64_t)(mib && atoi(mib) > 0 ? atoi(mib) : 64) << 20;
    if (tu_certs_create(&certs) != 0)
        return 1;
    tu_stream_sha(OUR_SEED, volume, our_sha);
    tu_stream_sha(PEER_SEED, volume, peer_sha);
    TEST_RUN(test_interop_client);
    TEST_RUN(test_interop_server);
    tu_certs_destroy(&certs);
    CHECK_EQ(mb_pool_shutdown(), 0);
    return test_summary();
}
