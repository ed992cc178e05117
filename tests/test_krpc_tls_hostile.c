/*
 * test_krpc_tls_hostile.c - the RPC server against TLS peers that send
 * what a well-behaved stack would not, and the log lines it writes for
 * them (issue 7, item 8):
 *
 *  - a stock OpenSSL client whose call and close_notify arrive in one
 *    write: the call is answered, then close_notify comes back and the
 *    connection closes at once (not at the idle cut, 300 s later);
 *  - through our own record layer as a client (OpenSSL cannot send these):
 *    KeyUpdate with request_update = 2 (illegal_parameter back), a
 *    NewSessionTicket from the client (unexpected_message back), a record
 *    that fails authentication (bad_record_mac), an oversize record
 *    (record_overflow), a record too short for a tag (decode_error), and a
 *    fatal alert from the client; each time the client receives the alert
 *    the RFC names, and the server's log line names the alert sent or
 *    received by its RFC 8446 name;
 *  - the idle cut reports the true idle time, measured from the last byte.
 */
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>

#include "krpc_svc_util.h"
#include "ktls/ktls_int.h"
#include "ktls_pair.h"
#include "test.h"
#include "util/certs.h"
#include "util/logcap.h"

static struct tu_certs certs;
static struct test_server ts;
static struct tu_logcap logcap;

/* "127.0.0.1:PORT" of our end of fd: how the server names us in its log. */
static void local_name(int fd, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
        snprintf(buf, len, "?");
    else
        krpc_format_addr((const struct sockaddr *)&ss, buf, len);
}

/* ---- a client on our own record layer ---------------------------------- */

/* Plain probe, then our own TLS 1.3 handshake (ALPN "sunrpc"): the record
 * layer is then ours to misuse. 0 or -1. */
static int hc_open(struct tc *t, struct ktls_conn **conn)
{
    static uint32_t xid = 0x40000000;
    struct ktls_config cfg = {.role = KTLS_CLIENT, .ca_file = certs.ca_cert, .server_name = "127.0.0.1",
                              .alpn = KRPC_ALPN};
    char err[256];

    *conn = NULL;
    if (tc_open(t, ts.port) != 0)
        return -1;
    if (!tc_probe(t, ++xid)) {
        fprintf(stderr, "hostile client: probe not answered with STARTTLS\n");
        return -1;
    }
    if (ktls_handshake(&cfg, t->fd, conn, err, sizeof(err)) != 0) {
        fprintf(stderr, "hostile client: handshake failed: %s\n", err);
        return -1;
    }
    return 0;
}

/* Seals one record with inner content type ct around data and writes it. */
static int hc_send_record(struct ktls_conn *conn, int fd, uint8_t ct, const void *data, size_t len)
{
    struct mb_chain out = MB_CHAIN_INIT;

    if (ktls__tx_control_record(conn, ct, data, len) != 0 || ktls_tx_flush_control(conn, &out) != 0) {
        mb_chain_free(&out);
        return -1;
    }
    return ktls_write_chain(fd, &out) == 0 ? 0 : -1;
}

/* A record-marked NULL call as application data. */
static int hc_send_null_call(struct ktls_conn *conn, int fd, uint32_t xid)
{
    unsigned char buf[256];
    size_t n = tc_encode_call(buf + 4, sizeof(buf) - 4, xid, TP_PROG, TP_VERS_LO, TP_NULL, KRPC_AUTH_NONE, NULL, 0);
    uint32_t mark = htonl(KRPC_RM_LAST | (uint32_t)n);

    if (n == 0)
        return -1;
    memcpy(buf, &mark, 4);
    return hc_send_record(conn, fd, KTLS_CT_APPLICATION_DATA, buf, n + 4);
}

/* Reads and opens records for at most ms: the first ktls_rx_process result
 * that is not "need more" (an error, or KTLS_RX_EOF), 0 when application
 * data arrived (appended to app), -ECONNRESET when the server closed TCP
 * first, -ETIMEDOUT when nothing decisive came. */
static int hc_recv(struct ktls_conn *conn, int fd, struct mb_chain *app, int ms)
{
    uint64_t end = krpc_now_ms() + (uint64_t)ms;

    for (;;) {
        unsigned char buf[4096];
        struct pollfd p = {fd, POLLIN, 0};
        uint64_t now = krpc_now_ms();
        size_t before = app->len;
        ssize_t n;
        int ret;

        if (now >= end)
            return -ETIMEDOUT;
        if (poll(&p, 1, (int)(end - now)) <= 0)
            continue;
        n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            return -ECONNRESET;
        if ((ret = ktls_rx_feed(conn, buf, (size_t)n)) != 0)
            return ret;
        ret = ktls_rx_process(conn, app);
        if (ret != 0 || app->len > before)
            return ret;
    }
}

/* Expects the server to answer with the fatal alert want, then close; its
 * log line names the alert as "sent alert NAME (N)", and names us. */
static void expect_alert_back(struct tc *t, struct ktls_conn *conn, int want, const char *sent_text)
{
    struct mb_chain app = MB_CHAIN_INIT;
    char me[64], line[1024];
    int ret = hc_recv(conn, t->fd, &app, 3000);

    CHECK_EQ(ret, -EPROTO);
    CHECK_EQ(ktls_rx_alert(conn), want);
    CHECK_EQ(app.len, 0);
    mb_chain_free(&app);
    CHECK(tc_wait_closed(t->fd, 3000));
    local_name(t->fd, me, sizeof(me));
    {
        const char *needles[] = {"rpc server: TLS error from ", me, sent_text, NULL};
        int found = tu_logcap_wait_line(&logcap, 3000, line, sizeof(line), needles);
        CHECK(found);
        if (!found)
            fprintf(stderr, "  no server line naming %s and \"%s\"\n", me, sent_text);
    }
}

/* ---- close_notify right behind a call ----------------------------------- */

/* A stock OpenSSL client writes one call and its close_notify in a single
 * write (its write BIO is a memory BIO until both are in it). The server
 * must answer the call, send close_notify and close, well before its idle
 * cut (the default, 300 s): the end of the stream must not wait for an
 * EPOLLIN that never comes. */
static void test_close_notify_with_call(void)
{
    struct tls_opts o = {.ca_file = certs.ca_cert, .alpn = KRPC_ALPN};
    struct tc t;
    struct krpc_reply_hdr h;
    uint32_t args[2] = {htonl(40), htonl(2)}, sum = 0;
    unsigned char call[256], rec[260];
    size_t n, rl = 0;
    char err[256], *wire = NULL, c;
    long wlen;
    uint64_t t0, took;
    BIO *mem;
    uint32_t mark;
    int r;

    REQUIRE(tc_open_tls(&t, ts.port, &o, err, sizeof(err)) == 0);
    tu_set_timeouts(t.fd, 2000);
    mem = BIO_new(BIO_s_mem());
    REQUIRE(mem != NULL);
    SSL_set0_wbio(t.ssl, mem); /* the SSL owns it now; reads still come from the socket */
    n = tc_encode_call(call, sizeof(call), 0x5150, TP_PROG, TP_VERS_HI, TP_ADD, KRPC_AUTH_SYS, args, 8);
    REQUIRE(n > 0);
    mark = htonl(KRPC_RM_LAST | (uint32_t)n);
    memcpy(rec, &mark, 4);
    memcpy(rec + 4, call, n);
    REQUIRE(SSL_write(t.ssl, rec, (int)n + 4) == (int)n + 4);
    REQUIRE(SSL_shutdown(t.ssl) == 0); /* close_notify written, the server's not yet read */
    wlen = BIO_get_mem_data(mem, &wire);
    REQUIRE(wlen > 0);
    t0 = krpc_now_ms();
    REQUIRE(send(t.fd, wire, (size_t)wlen, MSG_NOSIGNAL) == wlen);

    CHECK_EQ(tc_reply_recv(&t, &h, &sum, sizeof(sum), &rl), 0);
    CHECK(rh_accepted(&h, 0x5150, KRPC_SUCCESS) && rl == 4 && ntohl(sum) == 42);
    /* Then the server's close_notify: SSL_read says the stream ended. */
    r = SSL_read(t.ssl, &c, 1);
    CHECK_EQ(r, 0);
    CHECK_EQ(SSL_get_error(t.ssl, r), SSL_ERROR_ZERO_RETURN);
    ERR_clear_error();
    /* And the socket closes. */
    CHECK(tc_wait_closed(t.fd, 2000));
    took = krpc_now_ms() - t0;
    CHECK(took < 2000);
    fprintf(stderr, "  call + close_notify in one write: answered and closed after %llu ms\n",
            (unsigned long long)took);
    tc_close(&t);
    CHECK(tc_ping(ts.port));
}

/* ---- bad records, and the alert the server sends for each -------------- */

/* KeyUpdate's request_update is 0 or 1; 2 is illegal_parameter (RFC 8446
 * 4.6.3), not decode_error: the message decodes, the value is wrong. */
static void test_key_update_bad_value(void)
{
    static const uint8_t ku[5] = {KTLS_HS_KEY_UPDATE, 0, 0, 1, 2};
    struct ktls_conn *conn;
    struct tc t;

    REQUIRE(hc_open(&t, &conn) == 0);
    REQUIRE(hc_send_record(conn, t.fd, KTLS_CT_HANDSHAKE, ku, sizeof(ku)) == 0);
    expect_alert_back(&t, conn, 47, "; sent alert illegal_parameter (47)");
    ktls_conn_free(conn);
    tc_close(&t);
    CHECK(tc_ping(ts.port));
}

/* NewSessionTicket travels from server to client only (RFC 8446 4.6.1): a
 * server receiving one answers unexpected_message. The NULL call behind it
 * would be answered if the ticket had been swallowed. */
static void test_ticket_from_client(void)
{
    uint8_t nst[4 + 20] = {KTLS_HS_NEW_SESSION_TICKET, 0, 0, 20};
    struct ktls_conn *conn;
    struct tc t;

    REQUIRE(hc_open(&t, &conn) == 0);
    REQUIRE(hc_send_record(conn, t.fd, KTLS_CT_HANDSHAKE, nst, sizeof(nst)) == 0);
    REQUIRE(hc_send_null_call(conn, t.fd, 0x6001) == 0);
    expect_alert_back(&t, conn, 10, "; sent alert unexpected_message (10)");
    ktls_conn_free(conn);
    tc_close(&t);
    CHECK(tc_ping(ts.port));
}

/* A call whose record has one bit flipped: the server sends bad_record_mac
 * and says a record failed authentication, not "bad framing". */
static void test_bad_record_mac(void)
{
    unsigned char call[256];
    struct mb_chain plain = MB_CHAIN_INIT, out = MB_CHAIN_INIT;
    struct ktls_conn *conn;
    struct tc t;
    size_t n, len;
    uint32_t mark;
    uint8_t *wire;

    REQUIRE(hc_open(&t, &conn) == 0);
    n = tc_encode_call(call + 4, sizeof(call) - 4, 0x6002, TP_PROG, TP_VERS_LO, TP_NULL, KRPC_AUTH_NONE, NULL, 0);
    mark = htonl(KRPC_RM_LAST | (uint32_t)n);
    memcpy(call, &mark, 4);
    REQUIRE(mb_chain_append_bytes(&plain, call, n + 4) == 0);
    REQUIRE(ktls_tx_seal(conn, &plain, &out) == 0);
    wire = chain_flatten(&out, &len);
    REQUIRE(wire != NULL && len > 5 + 20);
    wire[5 + 10] ^= 0x04; /* ciphertext */
    CHECK_EQ(send(t.fd, wire, len, MSG_NOSIGNAL), (ssize_t)len);
    free(wire);
    expect_alert_back(&t, conn, 20, ": a record failed authentication; sent alert bad_record_mac (20)");
    ktls_conn_free(conn);
    tc_close(&t);
}

/* A header announcing 2^14 + 257 bytes: record_overflow, and the log says
 * so (not the RPC message size limit, which is another thing). */
static void test_record_overflow(void)
{
    static const uint8_t hdr[5] = {23, 3, 3, 0x41, 0x01};
    struct ktls_conn *conn;
    struct tc t;

    REQUIRE(hc_open(&t, &conn) == 0);
    CHECK_EQ(send(t.fd, hdr, sizeof(hdr), MSG_NOSIGNAL), 5);
    expect_alert_back(&t, conn, 22, "; sent alert record_overflow (22)");
    ktls_conn_free(conn);
    tc_close(&t);
}

/* A record too short to hold a type byte and a tag: decode_error; the
 * connection layer's own line names it too (it used to say "(alert 0)"). */
static void test_decode_error(void)
{
    static const uint8_t hdr[5 + 16] = {23, 3, 3, 0, 16};
    struct ktls_conn *conn;
    struct tc t;
    char line[1024];
    const char *needles[] = {"krpc conn fd ", ": TLS receive failed: ", "; sent alert decode_error (50)", NULL};

    REQUIRE(hc_open(&t, &conn) == 0);
    CHECK_EQ(send(t.fd, hdr, sizeof(hdr), MSG_NOSIGNAL), (ssize_t)sizeof(hdr));
    expect_alert_back(&t, conn, 50, "; sent alert decode_error (50)");
    CHECK(tu_logcap_wait_line(&logcap, 3000, line, sizeof(line), needles));
    ktls_conn_free(conn);
    tc_close(&t);
}

/* The client ends the session with a fatal alert: the server sends none
 * back (RFC 8446 6.2), closes, and logs the alert it received. */
static void test_alert_received(void)
{
    struct ktls_conn *conn;
    struct tc t;
    struct mb_chain out = MB_CHAIN_INIT, app = MB_CHAIN_INIT;
    char me[64], line[1024];

    REQUIRE(hc_open(&t, &conn) == 0);
    local_name(t.fd, me, sizeof(me));
    ktls__tx_queue_alert(conn, 20);
    REQUIRE(ktls_tx_flush_control(conn, &out) == 0);
    REQUIRE(ktls_write_chain(t.fd, &out) == 0);
    CHECK_EQ(hc_recv(conn, t.fd, &app, 3000), -ECONNRESET); /* closed, nothing sent back */
    CHECK_EQ(app.len, 0);
    {
        const char *needles[] = {"rpc server: TLS error from ", me, "; received alert bad_record_mac (20)", NULL};
        CHECK(tu_logcap_wait_line(&logcap, 3000, line, sizeof(line), needles));
    }
    mb_chain_free(&app);
    ktls_conn_free(conn);
    tc_close(&t);
    CHECK(tc_ping(ts.port));
}

/* The RPC size limit keeps its own words, with the limit, on a plain
 * connection: a record mark announcing 2^31 - 1 bytes. */
static void test_rpc_size_limit_named(void)
{
    static const uint8_t mark[4] = {0x7f, 0xff, 0xff, 0xff};
    struct tc t;
    char me[64], line[1024], limit[128];
    const char *needles[] = {"rpc server: malformed input from ", NULL, NULL, NULL};

    REQUIRE(tc_open(&t, ts.port) == 0);
    local_name(t.fd, me, sizeof(me));
    snprintf(limit, sizeof(limit), ": RPC record mark announces a message over the %u-byte limit",
             (unsigned)KRPC_RM_DEFAULT_MAX_MSG);
    needles[1] = me;
    needles[2] = limit;
    CHECK_EQ(send(t.fd, mark, sizeof(mark), MSG_NOSIGNAL), 4);
    CHECK(tc_wait_closed(t.fd, 3000));
    CHECK(tu_logcap_wait_line(&logcap, 3000, line, sizeof(line), needles));
    tc_close(&t);
}

/* No line of the whole run misnames what happened. */
static void test_no_misnamed_lines(void)
{
    char *text = tu_logcap_text(&logcap);

    REQUIRE(text != NULL);
    CHECK(strstr(text, "(alert 0)") == NULL);
    CHECK(strstr(text, "bad framing") == NULL);
    CHECK(strstr(text, "record larger than the message size limit") == NULL);
    free(text);
}

/* ---- the idle cut --------------------------------------------------------- */

#define IDLE_MS 400

/* A client sends two bytes of a record mark (wire traffic, but no message)
 * 100 ms after connecting, then nothing. The server must cut it IDLE_MS
 * after those bytes and report the idle time it really saw: at least
 * IDLE_MS, and within 150 ms of what the client measured. The sampling
 * idle check reported "idle for 400 ms" here after 700 ms. */
static void test_idle_cut_reports_true_time(void)
{
    struct test_server its;
    struct krpc_svc_config cfg;
    struct tc t;
    char me[64], line[1024], *p;
    const char *needles[] = {"rpc server: closing ", NULL, ": idle for ", NULL};
    uint64_t sent_at, closed_at, real;
    unsigned long long said;

    memset(&cfg, 0, sizeof(cfg));
    cfg.idle_timeout_ms = IDLE_MS;
    REQUIRE(ts_start(&its, &cfg) == 0);
    REQUIRE(tc_open(&t, its.port) == 0);
    local_name(t.fd, me, sizeof(me));
    needles[1] = me;
    usleep(100 * 1000);
    sent_at = krpc_now_ms();
    REQUIRE(send(t.fd, "\x80\x00", 2, MSG_NOSIGNAL) == 2);
    CHECK(tc_wait_closed(t.fd, 4 * IDLE_MS));
    closed_at = krpc_now_ms();
    real = closed_at - sent_at;
    CHECK(tu_logcap_wait_line(&logcap, 2000, line, sizeof(line), needles));
    p = strstr(line, ": idle for ");
    REQUIRE(p != NULL && sscanf(p, ": idle for %llu ms", &said) == 1);
    fprintf(stderr, "  idle cut: server said %llu ms, client saw %llu ms\n", said, (unsigned long long)real);
    CHECK(said >= IDLE_MS);
    CHECK(said <= real + 20); /* the client's clock started before the bytes reached the server */
    CHECK(said + 150 >= real);
    CHECK(real < IDLE_MS + 200); /* cut on time: the sampling check cut at 700 ms */
    CHECK_EQ(ts_stats(&its).closed_idle, 1);
    tc_close(&t);
    ts_stop(&its);
}

int main(void)
{
    struct krpc_svc_config cfg;

    signal(SIGPIPE, SIG_IGN);
    if (tu_certs_create(&certs) != 0)
        return 1;
    krpc_log_set_level(KRPC_LOG_INFO);
    if (tu_logcap_start(&logcap) != 0)
        return 1;
    memset(&cfg, 0, sizeof(cfg));
    cfg.tls = KRPC_SVC_TLS_OPTIONAL; /* plain pings check the server is still up */
    cfg.tlscfg.cert_file = certs.server_cert;
    cfg.tlscfg.key_file = certs.server_key;
    cfg.tlscfg.ca_file = certs.ca_cert;
    cfg.handshake_timeout_ms = 3000;
    if (ts_start(&ts, &cfg) != 0) {
        tu_logcap_stop(&logcap);
        fprintf(stderr, "cannot start the server\n");
        return 1;
    }
    TEST_RUN(test_close_notify_with_call);
    TEST_RUN(test_key_update_bad_value);
    TEST_RUN(test_ticket_from_client);
    TEST_RUN(test_bad_record_mac);
    TEST_RUN(test_record_overflow);
    TEST_RUN(test_decode_error);
    TEST_RUN(test_alert_received);
    TEST_RUN(test_rpc_size_limit_named);
    TEST_RUN(test_idle_cut_reports_true_time);
    TEST_RUN(test_no_misnamed_lines);
    ts_stop(&ts);
    tu_logcap_stop(&logcap);
    tu_certs_destroy(&certs);
    CHECK_EQ(mb_pool_shutdown(), 0);
    return test_summary();
}
