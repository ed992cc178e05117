/*
 * test_ktls_alerts.c - alerts on the wire, against a stock OpenSSL peer:
 * a tampered record makes us send bad_record_mac, which OpenSSL reports,
 * and a fatal alert from OpenSSL ends our receive with an error.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test.h"
#include "util/certs.h"
#include "util/net.h"
#include "util/ossl_peer.h"

static struct tu_certs certs;

/* The peer (client) sends 64 KiB; we read its records off the socket
 * ourselves, flip one bit, and let the record layer judge them. */
static void test_tampered_record_alerts_peer(void)
{
    struct tu_peer_cfg pc = {.role = KTLS_CLIENT, .ca_file = certs.ca_cert, .verify_host = "127.0.0.1",
                             .no_tickets = 1, .timeout_ms = 10000};
    struct ktls_config cfg = {.role = KTLS_SERVER, .cert_file = certs.server_cert, .key_file = certs.server_key};
    struct ktls_conn *c = NULL;
    struct tu_peer *peer;
    struct tu_peer_result res;
    struct mb_chain app = MB_CHAIN_INIT, out = MB_CHAIN_INIT;
    uint8_t buf[70000];
    size_t have = 0;
    char err[256];
    int cfd, sfd, ret = 0;

    /* The peer sends only after our first byte, so its records start on the
     * socket at a record boundary (nothing was read past the handshake). */
    pc.ops[0] = (struct tu_op){.kind = TU_OP_RECV, .n = 1};
    pc.ops[1] = (struct tu_op){.kind = TU_OP_SEND, .n = 65536, .seed = 5};
    pc.ops[2] = (struct tu_op){.kind = TU_OP_RECV_EOF};
    REQUIRE(tu_tcp_pair(&cfd, &sfd) == 0);
    REQUIRE(tu_peer_start(&pc, cfd, &peer) == 0);
    REQUIRE(ktls_handshake(&cfg, sfd, &c, err, sizeof(err)) == 0);
    tu_set_timeouts(sfd, 10000);
    REQUIRE(mb_chain_append_bytes(&out, "!", 1) == 0);
    REQUIRE(ktls_send(c, sfd, &out) == 0);
    /* Read until the first two records are here; flip a bit in the second. */
    size_t rec1 = 0, rec2 = 0;
    for (;;) {
        if (have >= 5)
            rec1 = 5 + ((size_t)buf[3] << 8 | buf[4]);
        if (rec1 && have >= rec1 + 5)
            rec2 = 5 + ((size_t)buf[rec1 + 3] << 8 | buf[rec1 + 4]);
        if (rec2 && have >= rec1 + rec2)
            break;
        ssize_t n = read(sfd, buf + have, sizeof(buf) - have);
        REQUIRE(n > 0);
        have += (size_t)n;
    }
    buf[rec1 + 5 + (rec2 - 5) / 2] ^= 0x01;
    CHECK_EQ(ktls_rx_feed(c, buf, rec1 + rec2), 0);
    ret = ktls_rx_process(c, &app);
    CHECK_EQ(ret, -EBADMSG);
    CHECK_EQ(app.len, rec1 - 5 - 17); /* the first record was authentic; nothing of the second */
    CHECK_EQ(ktls_tx_flush_control(c, &out), 0);
    CHECK(out.len > 0);
    CHECK_EQ(ktls_write_chain(sfd, &out), 0);
    shutdown(sfd, SHUT_WR);
    tu_peer_join(peer, &res);
    CHECK(!res.ok);
    CHECK(strstr(res.err, "bad record mac") != NULL);
    if (strstr(res.err, "bad record mac") == NULL)
        fprintf(stderr, "  peer said: %s\n", res.err);
    mb_chain_free(&app);
    ktls_conn_free(c);
    close(sfd);
}

/* A stock peer answers a record that does not authenticate with a fatal
 * bad_record_mac; our receive ends with -EPROTO and the alert's code. */
static void test_peer_fatal_alert(void)
{
    struct tu_peer_cfg pc = {.role = KTLS_SERVER, .cert_file = certs.server_cert, .key_file = certs.server_key,
                             .no_tickets = 1, .timeout_ms = 10000};
    struct ktls_config cfg = {.role = KTLS_CLIENT, .ca_file = certs.ca_cert, .server_name = "127.0.0.1"};
    struct ktls_conn *c = NULL;
    struct tu_peer *peer;
    struct tu_peer_result res;
    struct mb_chain app = MB_CHAIN_INIT;
    /* A well-formed header over 17 bytes that cannot authenticate. */
    uint8_t junk[5 + 17] = {23, 3, 3, 0, 17};
    char err[256];
    int cfd, sfd;

    pc.ops[0] = (struct tu_op){.kind = TU_OP_RECV_EOF};
    REQUIRE(tu_tcp_pair(&cfd, &sfd) == 0);
    REQUIRE(tu_peer_start(&pc, sfd, &peer) == 0);
    REQUIRE(ktls_handshake(&cfg, cfd, &c, err, sizeof(err)) == 0);
    tu_set_timeouts(cfd, 10000);
    CHECK_EQ(write(cfd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
    CHECK_EQ(ktls_recv(c, cfd, &app), -EPROTO);
    CHECK_EQ(ktls_rx_alert(c), 20); /* bad_record_mac */
    CHECK_EQ(app.len, 0);
    ktls_conn_free(c);
    close(cfd); /* the peer lingers until we close */
    tu_peer_join(peer, &res);
    CHECK(!res.ok);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (tu_certs_create(&certs) != 0)
        return 1;
    TEST_RUN(test_tampered_record_alerts_peer);
    TEST_RUN(test_peer_fatal_alert);
    tu_certs_destroy(&certs);
    CHECK_EQ(mb_pool_shutdown(), 0);
    return test_summary();
}
