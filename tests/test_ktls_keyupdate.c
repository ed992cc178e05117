/*
 * test_ktls_keyupdate.c - KeyUpdate policy of the record layer against a
 * stock OpenSSL peer over loopback.
 *
 * Kernel TLS in Linux and FreeBSD cannot rekey an RPC socket, so our side
 * must never initiate a KeyUpdate unless asked to, yet must answer one that
 * the peer sends. Checked here:
 *   - a peer-initiated KeyUpdate (update_requested) is answered and data
 *     keeps flowing both ways, in both roles;
 *   - the default configuration sends many times the opt-in threshold and
 *     sends no KeyUpdate;
 *   - the opt-in configuration (key_update_bytes, and a low record limit
 *     through the test hook) does send KeyUpdates, and the stock peer
 *     follows them;
 *   - without KeyUpdate, TX stops at the record limit (-EKEYEXPIRED) and
 *     can still close cleanly: the peer gets every byte and close_notify.
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

#define OUR_SEED 31
#define PEER_SEED 32
#define CHUNK 65536
/* The opt-in threshold; the default run sends eight times as much. */
#define OPT_IN_BYTES (1u << 20)

static struct tu_certs certs;

struct run {
    enum ktls_role our_role;
    uint64_t key_update_bytes; /* our config */
    uint64_t record_limit;     /* our config (test hook) */
    uint64_t peer_bytes;       /* the peer sends first, this many */
    uint64_t peer_key_update_at; /* ... requesting a KeyUpdate after this many (0: none) */
    uint64_t our_bytes;        /* then we send this many */

    /* results */
    int send_ret;              /* ktls_send's first error (0: none) */
    uint64_t sent;             /* bytes we sent before it */
    struct ktls_stats st;
    struct tu_peer_result res;
};

/* Sends r->our_bytes of OUR_SEED in CHUNK pieces; stops at the first error. */
static void send_ours(struct ktls_conn *c, int fd, struct run *r)
{
    unsigned char *buf = malloc(CHUNK);

    REQUIRE(buf != NULL);
    while (r->sent < r->our_bytes) {
        struct mb_chain ch = MB_CHAIN_INIT;
        size_t n = r->our_bytes - r->sent < CHUNK ? (size_t)(r->our_bytes - r->sent) : CHUNK;
        int ret;

        tu_stream_fill(OUR_SEED, r->sent, buf, n);
        ret = mb_chain_append_pages_from_buf(&ch, buf, n);
        if (ret == 0)
            ret = ktls_send(c, fd, &ch);
        mb_chain_free(&ch);
        if (ret != 0) {
            r->send_ret = ret;
            break;
        }
        r->sent += n;
    }
    free(buf);
}

static int send_close(struct ktls_conn *c, int fd)
{
    struct mb_chain out = MB_CHAIN_INIT;
    int ret = ktls_tx_close_notify(c, &out);

    if (ret == 0)
        ret = ktls_write_chain(fd, &out);
    mb_chain_free(&out);
    return ret;
}

/* The peer sends, we receive all of it; we send, we close; the peer
 * receives until our close_notify and then closes too. */
static void run(struct run *r)
{
    struct ktls_config cfg;
    struct tu_peer_cfg pc;
    struct tu_peer *peer;
    struct ktls_conn *c = NULL;
    struct tu_sha rx;
    uint8_t sha[32], want[32];
    char err[512] = "";
    int cfd, sfd, ours, theirs, i = 0, ret;

    REQUIRE(tu_tcp_pair(&cfd, &sfd) == 0);
    ours = r->our_role == KTLS_CLIENT ? cfd : sfd;
    theirs = r->our_role == KTLS_CLIENT ? sfd : cfd;

    memset(&pc, 0, sizeof(pc));
    pc.role = r->our_role == KTLS_CLIENT ? KTLS_SERVER : KTLS_CLIENT;
    pc.cert_file = pc.role == KTLS_SERVER ? certs.server_cert : certs.client_cert;
    pc.key_file = pc.role == KTLS_SERVER ? certs.server_key : certs.client_key;
    pc.ca_file = certs.ca_cert;
    pc.verify_host = "localhost";
    pc.timeout_ms = 30000;
    if (r->peer_bytes)
        pc.ops[i++] = (struct tu_op){
            .kind = TU_OP_SEND, .n = r->peer_bytes, .seed = PEER_SEED, .key_update_at = r->peer_key_update_at};
    pc.ops[i++] = (struct tu_op){.kind = TU_OP_RECV_EOF};
    pc.ops[i++] = (struct tu_op){.kind = TU_OP_CLOSE};
    REQUIRE(tu_peer_start(&pc, theirs, &peer) == 0);

    memset(&cfg, 0, sizeof(cfg));
    cfg.role = r->our_role;
    cfg.cert_file = r->our_role == KTLS_SERVER ? certs.server_cert : certs.client_cert;
    cfg.key_file = r->our_role == KTLS_SERVER ? certs.server_key : certs.client_key;
    cfg.ca_file = certs.ca_cert;
    cfg.verify_peer = r->our_role == KTLS_SERVER ? 2 : 1;
    cfg.server_name = "localhost";
    cfg.alpn = "sunrpc";
    cfg.key_update_bytes = r->key_update_bytes;
    cfg.record_limit = r->record_limit;
    cfg.timeout_ms = 30000;
    ret = ktls_handshake(&cfg, ours, &c, err, sizeof(err));
    if (ret != 0)
        fprintf(stderr, "  handshake: %s\n", err);
    CHECK_EQ(ret, 0);
    if (c != NULL) {
        tu_sha_init(&rx);
        while (rx.bytes < r->peer_bytes) {
            struct mb_chain app = MB_CHAIN_INIT;
            ret = ktls_recv(c, ours, &app);
            tu_sha_update_chain(&rx, &app);
            mb_chain_free(&app);
            if (ret != 0)
                break;
        }
        CHECK_EQ(ret, 0);
        CHECK_EQ(rx.bytes, r->peer_bytes);
        tu_sha_final(&rx, sha);
        tu_stream_sha(PEER_SEED, r->peer_bytes, want);
        CHECK(memcmp(sha, want, 32) == 0);
        send_ours(c, ours, r);
        CHECK_EQ(send_close(c, ours), 0);
        /* The peer's close_notify. */
        for (;;) {
            struct mb_chain app = MB_CHAIN_INIT;
            ret = ktls_recv(c, ours, &app);
            CHECK_EQ(app.len, 0);
            mb_chain_free(&app);
            if (ret != 0)
                break;
        }
        CHECK_EQ(ret, KTLS_RX_EOF);
        r->st = *ktls_conn_stats(c);
        CHECK_EQ(r->st.rx_bad_records, 0);
        ktls_conn_free(c);
    }
    shutdown(ours, SHUT_WR);
    if (c == NULL)
        shutdown(ours, SHUT_RDWR);
    tu_peer_join(peer, &r->res);
    close(ours);
    if (!r->res.ok)
        fprintf(stderr, "  %s\n", r->res.err);
    CHECK(r->res.ok);
    CHECK(r->res.got_close_notify);
    /* The peer got exactly what we sent, intact. */
    CHECK_EQ(r->res.received, r->sent);
    tu_stream_sha(OUR_SEED, r->sent, want);
    CHECK(memcmp(r->res.recv_sha, want, 32) == 0);
}

/* The peer asks for a KeyUpdate mid-stream: we answer it (one KeyUpdate,
 * not requesting another) and data keeps flowing both ways afterwards. */
static void test_peer_key_update_answered(void)
{
    for (int role = 0; role < 2; role++) {
        struct run r = {.our_role = role == 0 ? KTLS_CLIENT : KTLS_SERVER,
                        .peer_bytes = 3 << 20,
                        .peer_key_update_at = 1 << 20,
                        .our_bytes = 2 << 20};
        run(&r);
        CHECK_EQ(r.send_ret, 0);
        CHECK_EQ(r.sent, r.our_bytes);
        CHECK_EQ(r.res.key_updates, 1);
        CHECK_EQ(r.st.rx_key_updates, 1);
        CHECK_EQ(r.st.tx_key_updates, 1); /* the answer, nothing of our own */
        CHECK_EQ(r.res.sent, r.peer_bytes);
    }
}

/* Default configuration: eight times the opt-in threshold, no KeyUpdate. */
static void test_default_never_initiates(void)
{
    for (int role = 0; role < 2; role++) {
        struct run r = {.our_role = role == 0 ? KTLS_CLIENT : KTLS_SERVER, .our_bytes = 8 * OPT_IN_BYTES};
        run(&r);
        CHECK_EQ(r.send_ret, 0);
        CHECK_EQ(r.sent, r.our_bytes);
        CHECK_EQ(r.st.tx_key_updates, 0);
        CHECK_EQ(r.st.rx_key_updates, 0);
        CHECK_EQ(r.st.tx_control_records, 1); /* close_notify only */
    }
}

/* Opt-in: a KeyUpdate every OPT_IN_BYTES, and the stock peer follows. */
static void test_opt_in_key_update(void)
{
    struct run r = {.our_role = KTLS_CLIENT, .key_update_bytes = OPT_IN_BYTES, .our_bytes = 8 * OPT_IN_BYTES};

    run(&r);
    CHECK_EQ(r.send_ret, 0);
    CHECK_EQ(r.sent, r.our_bytes);
    CHECK_EQ(r.st.tx_key_updates, 7); /* before the 2nd .. 8th MiB */
    CHECK_EQ(r.st.rx_key_updates, 0); /* not requested */

    /* Opted in with a low record limit (test hook): the update comes before
     * the limit, whatever the byte count. 64 records of 16 KiB, 18 data
     * records per key: updates before records 19, 37 and 55. */
    struct run r2 = {.our_role = KTLS_SERVER, .key_update_bytes = UINT64_MAX - 1, .record_limit = 20,
                     .our_bytes = 64 * 16384};
    run(&r2);
    CHECK_EQ(r2.send_ret, 0);
    CHECK_EQ(r2.sent, r2.our_bytes);
    CHECK_EQ(r2.st.tx_key_updates, 3);
}

/* Not opted in, low record limit: TX refuses at the limit with
 * -EKEYEXPIRED and nothing half-sent; close_notify still goes out. */
static void test_limit_without_key_update(void)
{
    struct run r = {.our_role = KTLS_CLIENT, .record_limit = 20, .our_bytes = 64 * 16384};

    run(&r);
    CHECK_EQ(r.send_ret, -EKEYEXPIRED);
    /* 18 data records of 16 KiB: 4 chunks of 64 KiB went, the 5th did not fit. */
    CHECK_EQ(r.sent, 4 * CHUNK);
    CHECK_EQ(r.st.tx_key_updates, 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (tu_certs_create(&certs) != 0)
        return 1;
    TEST_RUN(test_peer_key_update_answered);
    TEST_RUN(test_default_never_initiates);
    TEST_RUN(test_opt_in_key_update);
    TEST_RUN(test_limit_without_key_update);
    tu_certs_destroy(&certs);
    CHECK_EQ(mb_pool_shutdown(), 0);
    return test_summary();
}
