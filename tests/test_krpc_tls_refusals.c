/*
 * test_krpc_tls_refusals.c - RFC 9289 on the server, against stock OpenSSL
 * clients: a good client (plain AUTH_TLS probe, then SSL_connect with ALPN
 * "sunrpc" and a client certificate, then record-marked calls through
 * SSL_write) is served; a TLS 1.2-only client, a client without ALPN or
 * with another ALPN, a client without a certificate or with one from an
 * unknown CA, plain calls to a TLS-only server, AUTH_TLS on a non-NULL
 * procedure and AUTH_TLS inside TLS are each refused, and after every
 * refusal a good client is still served.
 */
#include "krpc_svc_util.h"
#include "test.h"
#include "util/certs.h"

static struct tu_certs certs;
static struct test_server ts;

/* The TLS handshake and refusal counters move from the loop thread: wait a
 * little for them. */
static struct krpc_svc_stats wait_stats(uint64_t min_failures, uint64_t min_handshakes)
{
    struct krpc_svc_stats st = ts_stats(&ts);
    for (int i = 0; i < 200 && (st.tls_failures < min_failures || st.tls_handshakes < min_handshakes); i++) {
        usleep(10000);
        st = ts_stats(&ts);
    }
    return st;
}

static struct tls_opts good_opts(void)
{
    struct tls_opts o;
    memset(&o, 0, sizeof(o));
    o.ca_file = certs.ca_cert;
    o.cert_file = certs.client_cert;
    o.key_file = certs.client_key;
    o.alpn = KRPC_ALPN;
    return o;
}

/* A good TLS client: probe, handshake, NULL and ADD over TLS. */
static int good_client(void)
{
    static uint32_t xid = 0x10000;
    struct tls_opts o = good_opts();
    struct tc t;
    struct krpc_reply_hdr h;
    uint32_t args[2] = {htonl(20), htonl(22)}, sum = 0;
    size_t rl = 0;
    char err[256];
    int ok;

    if (tc_open_tls(&t, ts.port, &o, err, sizeof(err)) != 0) {
        fprintf(stderr, "good client: handshake failed: %s\n", err);
        tc_close(&t);
        return 0;
    }
    ok = strcmp(SSL_get_version(t.ssl), "TLSv1.3") == 0;
    {
        const unsigned char *sel = NULL;
        unsigned sellen = 0;
        SSL_get0_alpn_selected(t.ssl, &sel, &sellen);
        ok = ok && sellen == 6 && memcmp(sel, "sunrpc", 6) == 0;
    }
    ok = ok && tc_call(&t, ++xid, TP_PROG, TP_VERS_LO, TP_NULL, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) == 0 &&
         rh_accepted(&h, xid, KRPC_SUCCESS);
    ok = ok && tc_call(&t, ++xid, TP_PROG, TP_VERS_HI, TP_ADD, KRPC_AUTH_SYS, args, 8, &h, &sum, 4, &rl) == 0 &&
         rh_accepted(&h, xid, KRPC_SUCCESS) && rl == 4 && ntohl(sum) == 42;
    SSL_shutdown(t.ssl);
    tc_close(&t);
    if (!ok)
        fprintf(stderr, "good client: not served\n");
    return ok;
}

/* A refused handshake: SSL_connect fails, or (TLS 1.3: the server judges
 * the client certificate after the client is done) the first call over
 * TLS gets no reply. */
static int handshake_refused(const struct tls_opts *o, const char *what)
{
    struct tc t;
    struct krpc_reply_hdr h;
    char err[256];
    int ret = tc_open_tls(&t, ts.port, o, err, sizeof(err)), refused;

    if (ret == -1) {
        fprintf(stderr, "%s: probe failed\n", what);
        tc_close(&t);
        return 0;
    }
    if (ret == -2) {
        fprintf(stderr, "%s: refused in the handshake (%s)\n", what, err);
        refused = 1;
    } else {
        refused = tc_call(&t, 1, TP_PROG, TP_VERS_LO, TP_NULL, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) != 0;
        fprintf(stderr, "%s: handshake completed on the client side; first call %s\n", what,
                refused ? "got no reply (refused)" : "was ANSWERED");
    }
    ERR_clear_error();
    tc_close(&t);
    return refused;
}

static void start_server(int verify_peer)
{
    struct krpc_svc_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    cfg.tls = KRPC_SVC_TLS_REQUIRED;
    cfg.tlscfg.cert_file = certs.server_cert;
    cfg.tlscfg.key_file = certs.server_key;
    cfg.tlscfg.ca_file = certs.ca_cert;
    cfg.tlscfg.verify_peer = verify_peer;
    cfg.handshake_timeout_ms = 3000;
    if (ts_start(&ts, &cfg) != 0) {
        fprintf(stderr, "cannot start the server\n");
        exit(1);
    }
}

static void test_good_client(void)
{
    uint64_t hs0 = ts_stats(&ts).tls_handshakes;
    CHECK(good_client());
    CHECK(good_client());
    CHECK(wait_stats(0, hs0 + 2).tls_handshakes == hs0 + 2);
    CHECK_EQ(ts_stats(&ts).tls_failures, 0);
}

static void test_tls12_client(void)
{
    struct tls_opts o = good_opts();
    uint64_t f0 = ts_stats(&ts).tls_failures;

    o.tls12_only = 1;
    CHECK(handshake_refused(&o, "TLS 1.2-only client"));
    CHECK(wait_stats(f0 + 1, 0).tls_failures == f0 + 1);
    CHECK(good_client());
}

static void test_alpn(void)
{
    struct tls_opts o = good_opts();
    uint64_t f0 = ts_stats(&ts).tls_failures;

    o.alpn = NULL;
    CHECK(handshake_refused(&o, "client without ALPN"));
    CHECK(wait_stats(f0 + 1, 0).tls_failures == f0 + 1);
    CHECK(good_client());
    o.alpn = "nfs";
    CHECK(handshake_refused(&o, "client with ALPN nfs"));
    CHECK(wait_stats(f0 + 2, 0).tls_failures == f0 + 2);
    CHECK(good_client());
}

static void test_client_certs(void)
{
    struct tls_opts o = good_opts();
    uint64_t f0 = ts_stats(&ts).tls_failures;

    o.cert_file = certs.other_client_cert;
    o.key_file = certs.other_client_key;
    CHECK(handshake_refused(&o, "client certificate from an unknown CA"));
    CHECK(wait_stats(f0 + 1, 0).tls_failures == f0 + 1);
    CHECK(good_client());
    o.cert_file = o.key_file = NULL;
    CHECK(handshake_refused(&o, "client without a certificate"));
    CHECK(wait_stats(f0 + 2, 0).tls_failures == f0 + 2);
    CHECK(good_client());
}

static void test_plain_refusals(void)
{
    struct tc t;
    struct krpc_reply_hdr h;
    struct krpc_svc_stats st0 = ts_stats(&ts), st;

    REQUIRE(tc_open(&t, ts.port) == 0);
    /* Plain calls to a TLS-only server: NULL is answered (pings), the
     * rest is AUTH_TOOWEAK. */
    CHECK(tc_call(&t, 1, TP_PROG, TP_VERS_LO, TP_NULL, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) == 0);
    CHECK(rh_accepted(&h, 1, KRPC_SUCCESS));
    CHECK(tc_call(&t, 2, TP_PROG, TP_VERS_LO, TP_COUNT, KRPC_AUTH_SYS, NULL, 0, &h, NULL, 0, NULL) == 0);
    CHECK(rh_auth_error(&h, 2, KRPC_AUTH_TOOWEAK));
    CHECK(tc_call(&t, 4, TP_PROG, TP_VERS_HI, TP_ECHO, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) == 0);
    CHECK(rh_auth_error(&h, 4, KRPC_AUTH_TOOWEAK));
    /* AUTH_TLS on a procedure other than NULL. */
    CHECK(tc_call(&t, 3, TP_PROG, TP_VERS_LO, TP_ECHO, KRPC_AUTH_TLS, NULL, 0, &h, NULL, 0, NULL) == 0);
    CHECK(rh_auth_error(&h, 3, KRPC_AUTH_BADCRED));
    tc_close(&t);
    CHECK(good_client());
    st = ts_stats(&ts);
    CHECK_EQ(st.auth_tooweak - st0.auth_tooweak, 2);
    CHECK_EQ(st.auth_badcred - st0.auth_badcred, 1);
    CHECK_EQ(ts.count_execs, 0);
}

/* AUTH_TLS inside a TLS session: AUTH_BADCRED, and the session goes on. */
static void test_auth_tls_inside_tls(void)
{
    struct tls_opts o = good_opts();
    struct tc t;
    struct krpc_reply_hdr h;
    char err[256];
    uint64_t bc0 = ts_stats(&ts).auth_badcred;

    REQUIRE(tc_open_tls(&t, ts.port, &o, err, sizeof(err)) == 0);
    CHECK(tc_call(&t, 1, TP_PROG, TP_VERS_LO, 0, KRPC_AUTH_TLS, NULL, 0, &h, NULL, 0, NULL) == 0);
    CHECK(rh_auth_error(&h, 1, KRPC_AUTH_BADCRED));
    CHECK(tc_call(&t, 2, TP_PROG, TP_VERS_LO, TP_ECHO, KRPC_AUTH_TLS, NULL, 0, &h, NULL, 0, NULL) == 0);
    CHECK(rh_auth_error(&h, 2, KRPC_AUTH_BADCRED));
    CHECK(tc_call(&t, 3, TP_PROG, TP_VERS_LO, TP_NULL, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) == 0);
    CHECK(rh_accepted(&h, 3, KRPC_SUCCESS));
    tc_close(&t);
    CHECK_EQ(ts_stats(&ts).auth_badcred - bc0, 2);
    CHECK(good_client());
}

/* A client that skips the probe and starts TLS at once: the server reads
 * a ClientHello as a record mark (0x16030100 has the top bit clear: a
 * fragment of 369 MB) and closes the connection as malformed. */
static void test_no_probe(void)
{
    struct tls_opts o = good_opts();
    uint64_t m0 = ts_stats(&ts).closed_malformed;

    o.no_probe = 1;
    CHECK(handshake_refused(&o, "client without the STARTTLS probe"));
    for (int i = 0; i < 200 && ts_stats(&ts).closed_malformed == m0; i++)
        usleep(10000);
    CHECK_EQ(ts_stats(&ts).closed_malformed, m0 + 1);
    CHECK(good_client());
}

/* verify_peer 1 (optional): a client without a certificate is served; one
 * with a certificate from an unknown CA is refused. */
static void test_optional_client_cert(void)
{
    struct tls_opts o = good_opts();
    uint64_t f0;

    ts_stop(&ts);
    start_server(1);
    f0 = ts_stats(&ts).tls_failures;
    o.cert_file = o.key_file = NULL;
    {
        struct tc t;
        struct krpc_reply_hdr h;
        char err[256];
        REQUIRE(tc_open_tls(&t, ts.port, &o, err, sizeof(err)) == 0);
        CHECK(tc_call(&t, 1, TP_PROG, TP_VERS_LO, TP_NULL, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) == 0);
        CHECK(rh_accepted(&h, 1, KRPC_SUCCESS));
        tc_close(&t);
    }
    o.cert_file = certs.other_client_cert;
    o.key_file = certs.other_client_key;
    CHECK(handshake_refused(&o, "verify_peer 1: certificate from an unknown CA"));
    CHECK(wait_stats(f0 + 1, 0).tls_failures == f0 + 1);
    CHECK(good_client());
}

int main(void)
{
    if (tu_certs_create(&certs) != 0)
        return 1;
    start_server(2);
    TEST_RUN(test_good_client);
    TEST_RUN(test_tls12_client);
    TEST_RUN(test_alpn);
    TEST_RUN(test_client_certs);
    TEST_RUN(test_plain_refusals);
    TEST_RUN(test_auth_tls_inside_tls);
    TEST_RUN(test_no_probe);
    TEST_RUN(test_optional_client_cert);
    ts_stop(&ts);
    tu_certs_destroy(&certs);
    CHECK_EQ(mb_pool_shutdown(), 0);
    return test_summary();
}
