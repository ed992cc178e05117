/*
 * test_krpc_svc.c - the RPC server over real loopback sockets: every RPC
 * error it must produce (calls encoded by hand, replies decoded with
 * krpc_decode_reply_hdr), the duplicate-request cache (plain and deferred
 * handlers, reconnecting clients, argument checksums), the connection and
 * outstanding-call limits and the idle timeout; a separate client checks
 * after every case that the server still serves.
 */
#include "krpc_svc_util.h"
#include "test.h"
#include "util/certs.h"

#include "../src/krpc/svc_int.h"

static struct tu_certs certs;

static void test_errors(void)
{
    struct krpc_svc_config cfg;
    struct test_server ts;
    struct tc t;
    struct krpc_reply_hdr h;
    struct krpc_svc_stats st;
    unsigned char buf[512];
    uint32_t res[4], args[2] = {htonl(40), htonl(2)};
    size_t rl, n;

    memset(&cfg, 0, sizeof(cfg));
    REQUIRE(ts_start(&ts, &cfg) == 0);
    REQUIRE(tc_open(&t, ts.port) == 0);

    /* NULL without a handler, in both versions, AUTH_NONE and AUTH_SYS. */
    CHECK(tc_call(&t, 1, TP_PROG, TP_VERS_LO, TP_NULL, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, &rl) == 0);
    CHECK(rh_accepted(&h, 1, KRPC_SUCCESS) && rl == 0);
    CHECK(tc_call(&t, 2, TP_PROG, TP_VERS_HI, TP_NULL, KRPC_AUTH_SYS, NULL, 0, &h, NULL, 0, &rl) == 0);
    CHECK(rh_accepted(&h, 2, KRPC_SUCCESS) && rl == 0);
    CHECK(tc_call(&t, 3, TP_PROG, TP_VERS_LO, TP_ADD, KRPC_AUTH_SYS, args, 8, &h, res, sizeof(res), &rl) == 0);
    CHECK(rh_accepted(&h, 3, KRPC_SUCCESS) && rl == 4 && ntohl(res[0]) == 42);

    /* RPC_MISMATCH: rpcvers is the third word. */
    n = tc_encode_call(buf, sizeof(buf), 10, TP_PROG, TP_VERS_LO, TP_NULL, KRPC_AUTH_NONE, NULL, 0);
    REQUIRE(n > 12);
    buf[11] = 3;
    CHECK(tc_send_msg(&t, buf, n) == 0);
    CHECK(tc_reply_recv(&t, &h, NULL, 0, NULL) == 0);
    CHECK(h.xid == 10 && h.reply_stat == KRPC_MSG_DENIED && h.reject_stat == KRPC_RPC_MISMATCH);
    CHECK(h.mismatch_low == 2 && h.mismatch_high == 2);

    /* PROG_UNAVAIL, PROG_MISMATCH with the range, PROC_UNAVAIL (NULL fn and out of range). */
    CHECK(tc_call(&t, 11, 0x20009999, 1, 0, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) == 0);
    CHECK(rh_accepted(&h, 11, KRPC_PROG_UNAVAIL));
    CHECK(tc_call(&t, 12, TP_PROG, 9, 0, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) == 0);
    CHECK(rh_accepted(&h, 12, KRPC_PROG_MISMATCH) && h.mismatch_low == TP_VERS_LO && h.mismatch_high == TP_VERS_HI);
    CHECK(tc_call(&t, 13, TP_PROG, TP_VERS_LO, TP_NOPROC, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) == 0);
    CHECK(rh_accepted(&h, 13, KRPC_PROC_UNAVAIL));
    CHECK(tc_call(&t, 14, TP_PROG, TP_VERS_LO, 1000, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) == 0);
    CHECK(rh_accepted(&h, 14, KRPC_PROC_UNAVAIL));

    /* GARBAGE_ARGS from a handler (its results discarded), and from args that do not decode. */
    CHECK(tc_call(&t, 15, TP_PROG, TP_VERS_LO, TP_GARBAGE, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, &rl) == 0);
    CHECK(rh_accepted(&h, 15, KRPC_GARBAGE_ARGS) && rl == 0);
    CHECK(tc_call(&t, 16, TP_PROG, TP_VERS_LO, TP_ADD, KRPC_AUTH_NONE, args, 4, &h, NULL, 0, &rl) == 0);
    CHECK(rh_accepted(&h, 16, KRPC_GARBAGE_ARGS) && rl == 0);
    /* SYSTEM_ERR. */
    CHECK(tc_call(&t, 17, TP_PROG, TP_VERS_LO, TP_SYSERR, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) == 0);
    CHECK(rh_accepted(&h, 17, KRPC_SYSTEM_ERR));

    /* AUTH_BADCRED: AUTH_TLS on a non-NULL procedure; the probe on a server
     * with TLS off; an unknown flavor. */
    CHECK(tc_call(&t, 18, TP_PROG, TP_VERS_LO, TP_ECHO, KRPC_AUTH_TLS, NULL, 0, &h, NULL, 0, NULL) == 0);
    CHECK(rh_auth_error(&h, 18, KRPC_AUTH_BADCRED));
    CHECK(tc_call(&t, 19, TP_PROG, TP_VERS_LO, 0, KRPC_AUTH_TLS, NULL, 0, &h, NULL, 0, NULL) == 0);
    CHECK(rh_auth_error(&h, 19, KRPC_AUTH_BADCRED));
    CHECK(tc_call(&t, 20, TP_PROG, TP_VERS_LO, 0, 42, NULL, 0, &h, NULL, 0, NULL) == 0);
    CHECK(rh_auth_error(&h, 20, KRPC_AUTH_BADCRED));

    /* Still the same connection, still served. */
    CHECK(tc_call(&t, 21, TP_PROG, TP_VERS_LO, TP_NULL, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) == 0);
    CHECK(rh_accepted(&h, 21, KRPC_SUCCESS));
    tc_close(&t);
    CHECK(tc_ping(ts.port));

    st = ts_stats(&ts);
    CHECK_EQ(st.rpc_mismatch, 1);
    CHECK_EQ(st.prog_unavail, 1);
    CHECK_EQ(st.prog_mismatch, 1);
    CHECK_EQ(st.proc_unavail, 2);
    CHECK_EQ(st.garbage_args, 2);
    CHECK_EQ(st.system_err, 1);
    CHECK_EQ(st.auth_badcred, 3);
    CHECK_EQ(st.auth_tooweak, 0);
    CHECK_EQ(st.closed_malformed, 0);
    CHECK_EQ(st.calls, st.replies);
    ts_stop(&ts);
}

/* Under REQUIRED: plain calls get AUTH_TOOWEAK except NULL (of any
 * program) and programs registered KRPC_PROG_PLAIN_OK (MOUNT's case); the
 * probe gets STARTTLS, AUTH_TLS on non-NULL gets AUTH_BADCRED. (The TLS
 * side is in test_krpc_tls_refusals.) */
#define TP_PLAIN_PROG 0x20001235u
static void test_tls_policy_plain_side(void)
{
    struct krpc_svc_config cfg;
    struct test_server ts;
    struct tc t;
    struct krpc_reply_hdr h;
    struct krpc_svc_stats st;
    uint32_t execs = 0;
    size_t rl = 0;

    memset(&cfg, 0, sizeof(cfg));
    cfg.tls = KRPC_SVC_TLS_REQUIRED;
    cfg.tlscfg.cert_file = certs.server_cert;
    cfg.tlscfg.key_file = certs.server_key;
    cfg.tlscfg.ca_file = certs.ca_cert;
    REQUIRE(ts_start(&ts, &cfg) == 0);
    {
        struct krpc_prog_desc p = {TP_PLAIN_PROG, TP_VERS_LO, TP_NPROCS, tp_procs, &ts, KRPC_PROG_PLAIN_OK};
        ts_pause(&ts);
        REQUIRE(krpc_svc_register(ts.svc, &p) == 0);
        ts_resume(&ts);
    }
    REQUIRE(tc_open(&t, ts.port) == 0);
    /* NULL answers in the clear: pings and rpcinfo work. */
    CHECK(tc_call(&t, 1, TP_PROG, TP_VERS_LO, TP_NULL, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) == 0);
    CHECK(rh_accepted(&h, 1, KRPC_SUCCESS));
    CHECK(tc_call(&t, 2, TP_PROG, TP_VERS_LO, TP_COUNT, KRPC_AUTH_SYS, NULL, 0, &h, NULL, 0, NULL) == 0);
    CHECK(rh_auth_error(&h, 2, KRPC_AUTH_TOOWEAK));
    CHECK(tc_call(&t, 3, TP_PROG, TP_VERS_LO, TP_ECHO, KRPC_AUTH_TLS, NULL, 0, &h, NULL, 0, NULL) == 0);
    CHECK(rh_auth_error(&h, 3, KRPC_AUTH_BADCRED));
    /* A PLAIN_OK program runs in the clear. */
    CHECK(tc_call(&t, 6, TP_PLAIN_PROG, TP_VERS_LO, TP_COUNT, KRPC_AUTH_SYS, NULL, 0, &h, &execs, 4, &rl) == 0);
    CHECK(rh_accepted(&h, 6, KRPC_SUCCESS));
    CHECK_EQ(rl, 4);
    CHECK_EQ(ntohl(execs), 1);
    /* Unknown programs and versions keep their truthful answers. */
    CHECK(tc_call(&t, 7, 0x20009999, 1, 1, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) == 0);
    CHECK(rh_accepted(&h, 7, KRPC_PROG_UNAVAIL));
    /* The probe, for any program number. */
    CHECK(tc_probe(&t, 4));
    tc_close(&t);
    REQUIRE(tc_open(&t, ts.port) == 0);
    CHECK(tc_call(&t, 5, 0x20005555, 1, 0, KRPC_AUTH_TLS, NULL, 0, &h, NULL, 0, NULL) == 0);
    CHECK(rh_accepted(&h, 5, KRPC_SUCCESS) && h.verf_len == 8 && memcmp(h.verf, "STARTTLS", 8) == 0);
    tc_close(&t);
    st = ts_stats(&ts);
    CHECK_EQ(st.auth_tooweak, 1);
    CHECK_EQ(st.auth_badcred, 1);
    CHECK_EQ(st.tls_probes, 2);
    CHECK_EQ(ts.count_execs, 1);
    ts_stop(&ts);
}

static int count_call(struct tc *t, uint32_t xid, uint32_t proc, const void *args, size_t arglen, uint32_t *value,
                      struct krpc_reply_hdr *hout)
{
    struct krpc_reply_hdr h;
    uint32_t v = 0;
    size_t rl = 0;

    if (tc_call(t, xid, TP_PROG, TP_VERS_LO, proc, KRPC_AUTH_SYS, args, arglen, &h, &v, 4, &rl) != 0)
        return -1;
    if (!rh_accepted(&h, xid, KRPC_SUCCESS) || rl != 4)
        return -2;
    *value = ntohl(v);
    if (hout != NULL)
        *hout = h;
    return 0;
}

static void test_drc(void)
{
    struct krpc_svc_config cfg;
    struct test_server ts;
    struct tc t, t2;
    struct krpc_svc_stats st;
    uint32_t v1 = 0, v2 = 0, v3 = 0, v4 = 0, a1[2] = {1, 2}, a2[2] = {1, 3};

    memset(&cfg, 0, sizeof(cfg));
    REQUIRE(ts_start(&ts, &cfg) == 0);
    REQUIRE(tc_open(&t, ts.port) == 0);
    /* The same call twice: executed once, the same reply twice. */
    CHECK(count_call(&t, 100, TP_COUNT, a1, 8, &v1, NULL) == 0);
    CHECK(count_call(&t, 100, TP_COUNT, a1, 8, &v2, NULL) == 0);
    CHECK_EQ(v1, 1);
    CHECK_EQ(v2, 1);
    /* From a new connection (a new source port): still the cached reply. */
    REQUIRE(tc_open(&t2, ts.port) == 0);
    CHECK(count_call(&t2, 100, TP_COUNT, a1, 8, &v3, NULL) == 0);
    CHECK_EQ(v3, 1);
    /* Same XID, different arguments: a different call, executed. */
    CHECK(count_call(&t2, 100, TP_COUNT, a2, 8, &v4, NULL) == 0);
    CHECK_EQ(v4, 2);
    /* A new XID: executed. */
    CHECK(count_call(&t, 101, TP_COUNT, a1, 8, &v4, NULL) == 0);
    CHECK_EQ(v4, 3);
    CHECK_EQ(ts_stats(&ts).drc_hits, 2);
    CHECK_EQ(ts.count_execs, 3);
    tc_close(&t2);

    /* Deferred: a retransmission while the call is in progress is dropped,
     * not executed; the one reply comes when the handler answers; a later
     * retransmission gets the cached reply. */
    {
        struct krpc_reply_hdr h;
        uint32_t v = 0;
        size_t rl = 0;
        uint64_t t0 = krpc_now_ms();
        CHECK(tc_call_send(&t, 200, TP_PROG, TP_VERS_LO, TP_DEFER, KRPC_AUTH_SYS, a1, 8) == 0);
        CHECK(tc_call_send(&t, 200, TP_PROG, TP_VERS_LO, TP_DEFER, KRPC_AUTH_SYS, a1, 8) == 0);
        CHECK(tc_reply_recv(&t, &h, &v, 4, &rl) == 0);
        CHECK(rh_accepted(&h, 200, KRPC_SUCCESS) && rl == 4 && ntohl(v) == 1);
        CHECK(krpc_now_ms() - t0 >= 250);
        CHECK(count_call(&t, 200, TP_DEFER, a1, 8, &v, NULL) == 0);
        CHECK_EQ(v, 1);
        st = ts_stats(&ts);
        CHECK_EQ(ts.defer_execs, 1);
        CHECK_EQ(st.drc_in_progress, 1);
        CHECK_EQ(st.drc_hits, 3);
    }
    /* Deferred, and the connection is gone before the answer: the reply is
     * cached and the client's retransmission on a new connection gets it. */
    {
        uint32_t v = 0;
        CHECK(tc_call_send(&t, 300, TP_PROG, TP_VERS_LO, TP_DEFER, KRPC_AUTH_SYS, a2, 8) == 0);
        tc_close(&t);
        usleep(500 * 1000);
        REQUIRE(tc_open(&t, ts.port) == 0);
        CHECK(count_call(&t, 300, TP_DEFER, a2, 8, &v, NULL) == 0);
        CHECK_EQ(v, 2);
        CHECK_EQ(ts.defer_execs, 2);
    }
    /* Idempotent procedures bypass the cache: ECHO twice runs twice (it
     * still answers the same). */
    {
        struct krpc_reply_hdr h;
        uint32_t back[2];
        size_t rl = 0;
        uint64_t hits = ts_stats(&ts).drc_hits;
        CHECK(tc_call(&t, 400, TP_PROG, TP_VERS_LO, TP_ECHO, KRPC_AUTH_NONE, a1, 8, &h, back, 8, &rl) == 0);
        CHECK(rh_accepted(&h, 400, KRPC_SUCCESS) && rl == 8 && memcmp(back, a1, 8) == 0);
        CHECK(tc_call(&t, 400, TP_PROG, TP_VERS_LO, TP_ECHO, KRPC_AUTH_NONE, a1, 8, &h, back, 8, &rl) == 0);
        CHECK(rh_accepted(&h, 400, KRPC_SUCCESS) && rl == 8);
        CHECK_EQ(ts_stats(&ts).drc_hits, hits);
    }
    tc_close(&t);
    CHECK(tc_ping(ts.port));
    ts_stop(&ts);
}

/* COUNT with an explicit credential: the value, or 0 on any failure. */
static uint32_t count_cred(struct tc *t, uint32_t xid, const struct krpc_cred *cred, const uint32_t args[2])
{
    struct krpc_reply_hdr h;
    uint32_t v = 0;
    size_t rl = 0;

    if (tc_call_cred(t, xid, TP_PROG, TP_VERS_LO, TP_COUNT, cred, args, 8, &h, &v, 4, &rl) != 0 ||
        !rh_accepted(&h, xid, KRPC_SUCCESS) || rl != 4)
        return 0;
    return ntohl(v);
}

/* The cache tells users apart: the same XID and arguments from one host
 * under another uid, gid, group list, flavor or TLS client certificate is
 * another call; the same user retransmitting (on a new connection too) is
 * the cached one. */
static void test_drc_cred(void)
{
    struct krpc_svc_config cfg;
    struct test_server ts;
    struct tc t, t2, tt;
    struct krpc_cred alice, bob, alice_gid, alice_gids, none;
    uint32_t a[2] = {4, 2};
    char err[256];

    memset(&cfg, 0, sizeof(cfg));
    cfg.tls = KRPC_SVC_TLS_OPTIONAL;
    cfg.tlscfg.cert_file = certs.server_cert;
    cfg.tlscfg.key_file = certs.server_key;
    cfg.tlscfg.ca_file = certs.ca_cert;
    cfg.tlscfg.verify_peer = 1;
    REQUIRE(ts_start(&ts, &cfg) == 0);
    tc_default_cred(&alice, KRPC_AUTH_SYS);
    bob = alice;
    bob.uid = 1001;
    alice_gid = alice;
    alice_gid.gid = 0;
    alice_gids = alice;
    alice_gids.gids[1] = 0; /* the same uid and gid, another group list */
    tc_default_cred(&none, KRPC_AUTH_NONE);

    REQUIRE(tc_open(&t, ts.port) == 0);
    REQUIRE(tc_open(&t2, ts.port) == 0);
    CHECK_EQ(count_cred(&t, 700, &alice, a), 1);
    CHECK_EQ(count_cred(&t2, 700, &bob, a), 2);       /* another uid: executed */
    CHECK_EQ(count_cred(&t2, 700, &alice_gid, a), 3); /* another gid */
    CHECK_EQ(count_cred(&t2, 700, &alice_gids, a), 4);
    CHECK_EQ(count_cred(&t2, 700, &none, a), 5);      /* another flavor */
    /* Each one retransmitting gets its own reply, from the cache. */
    CHECK_EQ(count_cred(&t, 700, &alice, a), 1);
    CHECK_EQ(count_cred(&t2, 700, &alice, a), 1); /* another connection, another port: still cached */
    CHECK_EQ(count_cred(&t, 700, &bob, a), 2);
    CHECK_EQ(count_cred(&t, 700, &alice_gid, a), 3);
    CHECK_EQ(count_cred(&t, 700, &alice_gids, a), 4);
    CHECK_EQ(count_cred(&t, 700, &none, a), 5);
    CHECK_EQ(ts.count_execs, 5);
    CHECK_EQ(ts_stats(&ts).drc_hits, 6);
    /* The AUTH_SYS stamp and machine name do not make another user. */
    {
        struct krpc_cred c = alice;
        c.stamp = 12345;
        strcpy(c.machine, "renamed");
        CHECK_EQ(count_cred(&t, 700, &c, a), 1);
    }

    /* The same credential under TLS with a client certificate: another
     * peer subject, another call; its retransmission is cached. */
    {
        struct tls_opts o;
        memset(&o, 0, sizeof(o));
        o.ca_file = certs.ca_cert;
        o.cert_file = certs.client_cert;
        o.key_file = certs.client_key;
        o.alpn = "sunrpc";
        REQUIRE(tc_open_tls(&tt, ts.port, &o, err, sizeof(err)) == 0);
        CHECK_EQ(count_cred(&tt, 700, &alice, a), 6);
        CHECK_EQ(count_cred(&tt, 700, &alice, a), 6);
        CHECK_EQ(ts.count_execs, 6);
        tc_close(&tt);
        /* TLS without a client certificate: no subject, the plain entry. */
        o.cert_file = o.key_file = NULL;
        REQUIRE(tc_open_tls(&tt, ts.port, &o, err, sizeof(err)) == 0);
        CHECK_EQ(count_cred(&tt, 700, &alice, a), 1);
        CHECK_EQ(ts.count_execs, 6);
        tc_close(&tt);
    }
    tc_close(&t);
    tc_close(&t2);
    ts_stop(&ts);
}

/* The cache's bound: with 4 entries, the oldest completed call is evicted
 * and its retransmission runs again. */
static void test_drc_lru(void)
{
    struct krpc_svc_config cfg;
    struct test_server ts;
    struct tc t;
    uint32_t v = 0, a[2] = {7, 7};

    memset(&cfg, 0, sizeof(cfg));
    cfg.drc_entries = 4;
    REQUIRE(ts_start(&ts, &cfg) == 0);
    REQUIRE(tc_open(&t, ts.port) == 0);
    for (uint32_t x = 1; x <= 6; x++)
        CHECK(count_call(&t, 500 + x, TP_COUNT, a, 8, &v, NULL) == 0);
    CHECK_EQ(ts.count_execs, 6);
    CHECK(count_call(&t, 506, TP_COUNT, a, 8, &v, NULL) == 0); /* recent: cached */
    CHECK_EQ(v, 6);
    CHECK(count_call(&t, 501, TP_COUNT, a, 8, &v, NULL) == 0); /* evicted: runs again */
    CHECK_EQ(v, 7);
    CHECK_EQ(ts.count_execs, 7);
    tc_close(&t);
    ts_stop(&ts);
}

static void test_max_conns(void)
{
    struct krpc_svc_config cfg;
    struct test_server ts;
    struct tc a, b;
    struct krpc_reply_hdr h;
    int c;

    memset(&cfg, 0, sizeof(cfg));
    cfg.max_conns = 2;
    REQUIRE(ts_start(&ts, &cfg) == 0);
    REQUIRE(tc_open(&a, ts.port) == 0);
    REQUIRE(tc_open(&b, ts.port) == 0);
    CHECK(tc_call(&a, 1, TP_PROG, TP_VERS_LO, 0, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) == 0);
    CHECK(tc_call(&b, 2, TP_PROG, TP_VERS_LO, 0, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) == 0);
    /* The third is accepted, then closed at once. */
    c = tc_connect(ts.port);
    REQUIRE(c >= 0);
    CHECK(tc_wait_closed(c, 3000));
    close(c);
    CHECK_EQ(ts_stats(&ts).conns_refused, 1);
    CHECK_EQ(ts_stats(&ts).conns_open, 2);
    /* The two keep working; after one goes, a new one is served. */
    CHECK(tc_call(&a, 3, TP_PROG, TP_VERS_LO, 0, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) == 0);
    CHECK(rh_accepted(&h, 3, KRPC_SUCCESS));
    tc_close(&b);
    for (int i = 0; i < 100 && ts_stats(&ts).conns_open != 1; i++)
        usleep(10000);
    CHECK(tc_ping(ts.port));
    tc_close(&a);
    ts_stop(&ts);
}

static void test_idle_timeout(void)
{
    struct krpc_svc_config cfg;
    struct test_server ts;
    struct tc busy;
    struct krpc_reply_hdr h;
    struct krpc_svc_stats st;
    int idle;
    uint64_t t0;

    memset(&cfg, 0, sizeof(cfg));
    cfg.idle_timeout_ms = 300;
    REQUIRE(ts_start(&ts, &cfg) == 0);
    t0 = krpc_now_ms();
    idle = tc_connect(ts.port);
    REQUIRE(idle >= 0);
    REQUIRE(tc_open(&busy, ts.port) == 0);
    /* The busy connection calls every 100 ms and survives; the idle one is closed. */
    for (int i = 0; i < 8; i++) {
        CHECK(tc_call(&busy, 10 + i, TP_PROG, TP_VERS_LO, 0, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) == 0);
        usleep(100 * 1000);
    }
    CHECK(tc_wait_closed(idle, 2000));
    CHECK(krpc_now_ms() - t0 >= 250);
    close(idle);
    CHECK(tc_call(&busy, 99, TP_PROG, TP_VERS_LO, 0, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) == 0);
    CHECK(rh_accepted(&h, 99, KRPC_SUCCESS));
    st = ts_stats(&ts);
    CHECK_EQ(st.closed_idle, 1);
    /* Then the busy one goes quiet and is closed too. */
    CHECK(tc_wait_closed(busy.fd, 2000));
    tc_close(&busy);
    CHECK_EQ(ts_stats(&ts).closed_idle, 2);
    CHECK(tc_ping(ts.port));
    ts_stop(&ts);
}

/* An authenticated peer that sends a message a byte at a time, slowly: the
 * idle check sees activity and lets it be; the slow-message check cuts it
 * (counted in closed_slow, not closed_idle). A peer that sends a message
 * slowly but above the minimum rate, for longer than the grace period, is
 * answered; other clients are served throughout. */
static void test_slow_message(void)
{
    struct krpc_svc_config cfg;
    struct test_server ts;
    struct tc drip, slow;
    struct krpc_reply_hdr h;
    struct krpc_svc_stats st;
    unsigned char msg[600], args[240], res[300];
    size_t n, reslen = 0;
    uint32_t mark;
    uint64_t t0;

    memset(&cfg, 0, sizeof(cfg));
    cfg.idle_timeout_ms = 20000;
    cfg.slow_msg_grace_ms = 300;
    cfg.slow_msg_min_rate = 200; /* bytes per second */
    REQUIRE(ts_start(&ts, &cfg) == 0);
    REQUIRE(tc_open(&drip, ts.port) == 0);
    REQUIRE(tc_open(&slow, ts.port) == 0);
    /* Both authenticate with a whole call first. */
    CHECK(tc_call(&drip, 1, TP_PROG, TP_VERS_LO, 0, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) == 0);
    CHECK(tc_call(&slow, 2, TP_PROG, TP_VERS_LO, 0, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) == 0);

    /* slow: an ECHO of 240 bytes, about 290 bytes on the wire, one byte
     * every 2 ms (~500 B/s, over the 200 minimum) for ~0.6 s, twice the
     * grace period: answered in full. */
    for (size_t i = 0; i < sizeof(args); i++)
        args[i] = (unsigned char)(i * 7);
    n = tc_encode_call(msg + 4, sizeof(msg) - 4, 3, TP_PROG, TP_VERS_LO, TP_ECHO, KRPC_AUTH_NONE, args, sizeof(args));
    REQUIRE(n > 0);
    mark = htonl(0x80000000u | (uint32_t)n);
    memcpy(msg, &mark, 4);
    t0 = krpc_now_ms();
    for (size_t i = 0; i < n + 4; i++) {
        REQUIRE(tc_write(&slow, msg + i, 1) == 0);
        usleep(2000);
    }
    CHECK(krpc_now_ms() - t0 > 300);
    CHECK(tc_reply_recv(&slow, &h, res, sizeof(res), &reslen) == 0);
    CHECK(rh_accepted(&h, 3, KRPC_SUCCESS));
    CHECK(reslen == sizeof(args) && memcmp(res, args, sizeof(args)) == 0);

    /* drip: a record mark announcing 400 bytes, then a byte every 50 ms
     * (20 B/s) until the server closes; a bounded loop of 3 s. */
    mark = htonl(0x80000000u | 400u);
    REQUIRE(tc_write(&drip, &mark, 4) == 0);
    t0 = krpc_now_ms();
    for (int i = 0; i < 60; i++) {
        unsigned char b = 0;
        if (tc_write(&drip, &b, 1) != 0)
            break;
        usleep(50000);
        if (ts_stats(&ts).closed_slow == 1)
            break;
    }
    CHECK(tc_wait_closed(drip.fd, 2000));
    CHECK(krpc_now_ms() - t0 >= 300); /* not before the grace period */
    st = ts_stats(&ts);
    CHECK_EQ(st.closed_slow, 1);
    CHECK_EQ(st.closed_idle, 0);
    CHECK(tc_ping(ts.port));
    tc_close(&drip);
    tc_close(&slow);
    ts_stop(&ts);
}

/* max_outstanding 1: a second deferred call on the same connection is
 * dropped (counted); the first completes; another connection is served. */
static void test_max_outstanding(void)
{
    struct krpc_svc_config cfg;
    struct test_server ts;
    struct tc t;
    struct krpc_reply_hdr h;
    uint32_t v = 0, a[2] = {5, 6};
    size_t rl = 0;

    memset(&cfg, 0, sizeof(cfg));
    cfg.max_outstanding = 1;
    REQUIRE(ts_start(&ts, &cfg) == 0);
    REQUIRE(tc_open(&t, ts.port) == 0);
    CHECK(tc_call_send(&t, 1, TP_PROG, TP_VERS_LO, TP_DEFER, KRPC_AUTH_NONE, a, 8) == 0);
    CHECK(tc_call_send(&t, 2, TP_PROG, TP_VERS_LO, TP_DEFER, KRPC_AUTH_NONE, a, 8) == 0);
    CHECK(tc_ping(ts.port));
    CHECK(tc_reply_recv(&t, &h, &v, 4, &rl) == 0);
    CHECK(rh_accepted(&h, 1, KRPC_SUCCESS) && ntohl(v) == 1);
    CHECK_EQ(ts_stats(&ts).calls_dropped, 1);
    /* The dropped call was not cached: its retransmission now runs. */
    CHECK(count_call(&t, 2, TP_DEFER, a, 8, &v, NULL) == 0);
    CHECK_EQ(v, 2);
    tc_close(&t);
    ts_stop(&ts);
}

/* A server bound to ::1 (IPv6) serves too. */
static void test_ipv6(void)
{
    struct krpc_svc_config cfg;
    struct test_server ts;
    struct sockaddr_in6 sa;
    struct tc t;
    struct krpc_reply_hdr h;

    memset(&cfg, 0, sizeof(cfg));
    if (krpc_parse_addr("[::1]:0", &cfg.addr, &cfg.addrlen) != 0 || ts_start(&ts, &cfg) != 0) {
        fprintf(stderr, "no IPv6 loopback here; IPv6 listener not tested\n");
        return;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(ts.port);
    sa.sin6_addr = in6addr_loopback;
    t.ssl = NULL;
    t.ctx = NULL;
    t.fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(t.fd >= 0);
    tu_set_timeouts(t.fd, 5000);
    CHECK(connect(t.fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    CHECK(tc_call(&t, 1, TP_PROG, TP_VERS_LO, 0, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) == 0);
    CHECK(rh_accepted(&h, 1, KRPC_SUCCESS));
    tc_close(&t);
    ts_stop(&ts);
}

/* The internal dispatch entry point (what the fuzz target drives). */
static void test_detached_dispatch(void)
{
    struct krpc_svc_config cfg;
    struct krpc_svc *svc;
    struct krpc_prog_desc p = {TP_PROG, TP_VERS_LO, TP_NPROCS, tp_procs, NULL, 0};
    struct test_server dummy;
    unsigned char buf[256];
    struct mb_chain msg = MB_CHAIN_INIT, reply = MB_CHAIN_INIT;
    struct krpc_xdr_dec d;
    struct krpc_reply_hdr h;
    size_t n;

    memset(&cfg, 0, sizeof(cfg));
    memset(&dummy, 0, sizeof(dummy));
    p.arg = &dummy;
    REQUIRE(krpc__svc_new_detached(&cfg, &svc) == 0);
    REQUIRE(krpc_svc_register(svc, &p) == 0);
    n = tc_encode_call(buf, sizeof(buf), 77, TP_PROG, TP_VERS_LO, TP_COUNT, KRPC_AUTH_NONE, "abcd", 4);
    for (int i = 0; i < 2; i++) {
        REQUIRE(mb_chain_append_bytes(&msg, buf, n) == 0);
        CHECK_EQ(krpc__svc_dispatch_msg(svc, NULL, 0, 0, &msg, &reply), KRPC_SVC_ACT_REPLY);
        krpc_xdr_dec_init(&d, &reply, 0, reply.len);
        CHECK(krpc_decode_reply_hdr(&d, &h) == 0 && rh_accepted(&h, 77, KRPC_SUCCESS));
        CHECK_EQ(krpc_xdr_get_u32(&d), 1);
        mb_chain_free(&reply);
    }
    /* A REPLY message: close. */
    REQUIRE(mb_chain_append_bytes(&msg, "\0\0\0\1\0\0\0\1\0\0\0\0", 12) == 0);
    CHECK_EQ(krpc__svc_dispatch_msg(svc, NULL, 0, 0, &msg, &reply), KRPC_SVC_ACT_CLOSE);
    CHECK_EQ(reply.len, 0);
    CHECK_EQ(msg.len, 0);
    CHECK_EQ(dummy.count_execs, 1);
    krpc_svc_free(svc);
}

/* Every way dispatch ends, on a detached server: the action, the reply, and
 * exactly one counter of its own moved (besides calls and replies), so no
 * outcome is counted twice or not at all. */
static struct krpc_svc_req *vd_held;
static unsigned vd_execs;

static int vd_count(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res, void *arg)
{
    (void)req;
    (void)args;
    (void)arg;
    krpc_xdr_put_u32(res, ++vd_execs);
    return KRPC_SUCCESS;
}

static int vd_defer(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res, void *arg)
{
    (void)args;
    (void)res;
    (void)arg;
    vd_held = req;
    return KRPC_SVC_DEFER;
}

enum { VD_NULL = 0, VD_COUNT = 1, VD_DEFER = 2, VD_NOPROC = 3, VD_NPROCS = 4 };
static const struct krpc_proc_desc vd_procs[VD_NPROCS] = {
    [VD_NULL] = {NULL, KRPC_PROC_IDEMPOTENT, "NULL"},
    [VD_COUNT] = {vd_count, 0, "COUNT"},
    [VD_DEFER] = {vd_defer, 0, "DEFER"},
    [VD_NOPROC] = {NULL, 0, "NOPROC"},
};

#define NO_FIELD SIZE_MAX
#define FIELD(f) offsetof(struct krpc_svc_stats, f)

static void test_verdicts_counted_once(void)
{
    enum mangle { M_NONE, M_SHORT, M_REPLY, M_RPCVERS, M_BIGCRED };
    static const struct {
        const char *what;
        enum krpc_svc_tls tls;
        uint32_t xid, prog, vers, proc, flavor;
        enum mangle mangle;
        int act;                  /* enum krpc_svc_action */
        uint32_t reply_stat, stat, auth; /* stat: accept_stat, or reject_stat when denied */
        size_t field;             /* the one other counter that moves by one */
        int call, reply;          /* calls and replies move by this */
    } cases[] = {
        {"too short", KRPC_SVC_TLS_OFF, 1, TP_PROG, TP_VERS_LO, VD_NULL, KRPC_AUTH_NONE, M_SHORT,
         KRPC_SVC_ACT_CLOSE, 0, 0, 0, FIELD(closed_malformed), 0, 0},
        {"a REPLY", KRPC_SVC_TLS_OFF, 2, TP_PROG, TP_VERS_LO, VD_NULL, KRPC_AUTH_NONE, M_REPLY, KRPC_SVC_ACT_CLOSE,
         0, 0, 0, FIELD(closed_malformed), 0, 0},
        {"RPC version 3", KRPC_SVC_TLS_OFF, 3, TP_PROG, TP_VERS_LO, VD_NULL, KRPC_AUTH_NONE, M_RPCVERS,
         KRPC_SVC_ACT_REPLY, KRPC_MSG_DENIED, KRPC_RPC_MISMATCH, 0, FIELD(rpc_mismatch), 1, 1},
        {"credential over 400 bytes", KRPC_SVC_TLS_OFF, 4, TP_PROG, TP_VERS_LO, VD_NULL, KRPC_AUTH_NONE, M_BIGCRED,
         KRPC_SVC_ACT_REPLY, KRPC_MSG_ACCEPTED, KRPC_GARBAGE_ARGS, 0, FIELD(garbage_args), 1, 1},
        {"probe, TLS off", KRPC_SVC_TLS_OFF, 5, TP_PROG, TP_VERS_LO, VD_NULL, KRPC_AUTH_TLS, M_NONE,
         KRPC_SVC_ACT_REPLY, KRPC_MSG_DENIED, KRPC_AUTH_ERROR, KRPC_AUTH_BADCRED, FIELD(auth_badcred), 1, 1},
        {"probe", KRPC_SVC_TLS_OPTIONAL, 6, TP_PROG, TP_VERS_LO, VD_NULL, KRPC_AUTH_TLS, M_NONE,
         KRPC_SVC_ACT_STARTTLS, KRPC_MSG_ACCEPTED, KRPC_SUCCESS, 0, FIELD(tls_probes), 1, 1},
        {"flavor 42", KRPC_SVC_TLS_OFF, 7, TP_PROG, TP_VERS_LO, VD_NULL, 42, M_NONE, KRPC_SVC_ACT_REPLY,
         KRPC_MSG_DENIED, KRPC_AUTH_ERROR, KRPC_AUTH_BADCRED, FIELD(auth_badcred), 1, 1},
        {"unknown program", KRPC_SVC_TLS_OFF, 8, 0x20009999, 1, VD_NULL, KRPC_AUTH_NONE, M_NONE, KRPC_SVC_ACT_REPLY,
         KRPC_MSG_ACCEPTED, KRPC_PROG_UNAVAIL, 0, FIELD(prog_unavail), 1, 1},
        {"unknown version", KRPC_SVC_TLS_OFF, 9, TP_PROG, 9, VD_NULL, KRPC_AUTH_NONE, M_NONE, KRPC_SVC_ACT_REPLY,
         KRPC_MSG_ACCEPTED, KRPC_PROG_MISMATCH, 0, FIELD(prog_mismatch), 1, 1},
        {"plain on a TLS-only server", KRPC_SVC_TLS_REQUIRED, 10, TP_PROG, TP_VERS_LO, VD_COUNT, KRPC_AUTH_SYS,
         M_NONE, KRPC_SVC_ACT_REPLY, KRPC_MSG_DENIED, KRPC_AUTH_ERROR, KRPC_AUTH_TOOWEAK, FIELD(auth_tooweak), 1, 1},
        {"NULL", KRPC_SVC_TLS_OFF, 11, TP_PROG, TP_VERS_HI, VD_NULL, KRPC_AUTH_SYS, M_NONE, KRPC_SVC_ACT_REPLY,
         KRPC_MSG_ACCEPTED, KRPC_SUCCESS, 0, NO_FIELD, 1, 1},
        {"no such procedure", KRPC_SVC_TLS_OFF, 12, TP_PROG, TP_VERS_LO, VD_NOPROC, KRPC_AUTH_NONE, M_NONE,
         KRPC_SVC_ACT_REPLY, KRPC_MSG_ACCEPTED, KRPC_PROC_UNAVAIL, 0, FIELD(proc_unavail), 1, 1},
        {"a call", KRPC_SVC_TLS_OFF, 13, TP_PROG, TP_VERS_LO, VD_COUNT, KRPC_AUTH_SYS, M_NONE, KRPC_SVC_ACT_REPLY,
         KRPC_MSG_ACCEPTED, KRPC_SUCCESS, 0, NO_FIELD, 1, 1},
        {"its retransmission", KRPC_SVC_TLS_OFF, 13, TP_PROG, TP_VERS_LO, VD_COUNT, KRPC_AUTH_SYS, M_NONE,
         KRPC_SVC_ACT_REPLY, KRPC_MSG_ACCEPTED, KRPC_SUCCESS, 0, FIELD(drc_hits), 1, 1},
        {"a deferred call", KRPC_SVC_TLS_OFF, 14, TP_PROG, TP_VERS_LO, VD_DEFER, KRPC_AUTH_SYS, M_NONE,
         KRPC_SVC_ACT_NONE, 0, 0, 0, NO_FIELD, 1, 0},
        {"its retransmission in progress", KRPC_SVC_TLS_OFF, 14, TP_PROG, TP_VERS_LO, VD_DEFER, KRPC_AUTH_SYS,
         M_NONE, KRPC_SVC_ACT_NONE, 0, 0, 0, FIELD(drc_in_progress), 1, 0},
    };
    struct krpc_svc *svcs[3] = {NULL, NULL, NULL};

    vd_execs = 0;
    vd_held = NULL;
    for (int t = KRPC_SVC_TLS_OFF; t <= KRPC_SVC_TLS_REQUIRED; t++) {
        struct krpc_svc_config cfg;
        struct krpc_prog_desc p = {TP_PROG, TP_VERS_LO, VD_NPROCS, vd_procs, NULL, 0};
        memset(&cfg, 0, sizeof(cfg));
        cfg.tls = (enum krpc_svc_tls)t;
        /* A detached server loads no TLS context: the names only need to be set. */
        cfg.tlscfg.cert_file = certs.server_cert;
        cfg.tlscfg.key_file = certs.server_key;
        REQUIRE(krpc__svc_new_detached(&cfg, &svcs[t]) == 0);
        REQUIRE(krpc_svc_register(svcs[t], &p) == 0);
        p.vers = TP_VERS_HI;
        REQUIRE(krpc_svc_register(svcs[t], &p) == 0);
    }
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct krpc_svc *svc = svcs[cases[i].tls];
        struct krpc_svc_stats before, after;
        struct mb_chain msg = MB_CHAIN_INIT, reply = MB_CHAIN_INIT;
        unsigned char buf[1024];
        size_t n;
        int act, bad = 0, failures = test_failures;

        n = tc_encode_call(buf, sizeof(buf), cases[i].xid, cases[i].prog, cases[i].vers, cases[i].proc,
                           cases[i].flavor, NULL, 0);
        REQUIRE(n >= 40);
        switch (cases[i].mangle) {
        case M_NONE:
            break;
        case M_SHORT:
            n = 4;
            break;
        case M_REPLY:
            buf[7] = KRPC_MSG_REPLY;
            break;
        case M_RPCVERS:
            buf[11] = 3;
            break;
        case M_BIGCRED:
            buf[28] = 0x01; /* credential length 0x1xx: over 400 */
            buf[29] = 0xff;
            break;
        }
        REQUIRE(mb_chain_append_bytes(&msg, buf, n) == 0);
        krpc_svc_stats_get(svc, &before);
        act = krpc__svc_dispatch_msg(svc, NULL, 0, 0, &msg, &reply);
        krpc_svc_stats_get(svc, &after);
        CHECK_EQ(msg.len, 0);
        CHECK_EQ(act, cases[i].act);
        if (cases[i].act != KRPC_SVC_ACT_REPLY && cases[i].act != KRPC_SVC_ACT_STARTTLS) {
            CHECK_EQ(reply.len, 0);
        } else {
            struct krpc_xdr_dec d;
            struct krpc_reply_hdr h;
            krpc_xdr_dec_init(&d, &reply, 0, reply.len);
            CHECK(krpc_decode_reply_hdr(&d, &h) == 0);
            CHECK_EQ(h.xid, cases[i].xid);
            CHECK_EQ(h.reply_stat, cases[i].reply_stat);
            if (h.reply_stat == KRPC_MSG_ACCEPTED) {
                CHECK_EQ(h.accept_stat, cases[i].stat);
                if (h.accept_stat == KRPC_PROG_MISMATCH)
                    CHECK(h.mismatch_low == TP_VERS_LO && h.mismatch_high == TP_VERS_HI);
                if (cases[i].flavor == KRPC_AUTH_TLS)
                    CHECK(h.verf_len == 8 && memcmp(h.verf, KRPC_STARTTLS_VERF, 8) == 0);
            } else {
                CHECK_EQ(h.reject_stat, cases[i].stat);
                if (h.reject_stat == KRPC_AUTH_ERROR)
                    CHECK_EQ(h.auth_stat, cases[i].auth);
            }
        }
        mb_chain_free(&reply);
        /* Exactly the expected counters moved. */
        for (size_t off = 0; off < sizeof(before); off += sizeof(uint64_t)) {
            uint64_t b, a, want = 0;
            memcpy(&b, (const char *)&before + off, sizeof(b));
            memcpy(&a, (const char *)&after + off, sizeof(a));
            if (off == FIELD(calls))
                want = (uint64_t)cases[i].call;
            else if (off == FIELD(replies))
                want = (uint64_t)cases[i].reply;
            else if (off == cases[i].field)
                want = 1;
            if (a - b != want)
                bad = 1;
        }
        CHECK(!bad);
        if (test_failures != failures)
            fprintf(stderr, "  case %zu: %s\n", i, cases[i].what);
    }
    CHECK_EQ(vd_execs, 1); /* the retransmission was not run again */
    REQUIRE(vd_held != NULL);
    krpc_svc_reply(vd_held, KRPC_SUCCESS, NULL);
    CHECK_EQ(krpc__svc_deferred(svcs[KRPC_SVC_TLS_OFF]), 0);
    for (int t = 0; t < 3; t++)
        krpc_svc_free(svcs[t]);
}

/* A client that sends calls and never reads a reply: the server queues at
 * most twice its send-queue limit, then closes that connection, and serves
 * others meanwhile. Unsupported procedures are answered by dispatch itself,
 * so this also covers replies that never reach a handler. */
static void test_unread_replies(void)
{
    struct krpc_svc_config cfg = {.max_outstanding = 1, .max_msg = 65536};
    struct test_server ts;
    unsigned char call[256], batch[64 * 1024];
    size_t n, len = 0, sent = 0;
    int fd, closed = 0;

    REQUIRE(ts_start(&ts, &cfg) == 0);
    n = tc_encode_call(call + 4, sizeof(call) - 4, 77, TP_PROG, TP_VERS_LO, 999, KRPC_AUTH_NONE, NULL, 0);
    REQUIRE(n > 0);
    krpc_xdr_store_u32(call, KRPC_RM_LAST | (uint32_t)n);
    while (len + n + 4 <= sizeof(batch)) {
        memcpy(batch + len, call, n + 4);
        len += n + 4;
    }
    REQUIRE((fd = tc_connect(ts.port)) >= 0);
    /* Bounded: 2 x 1 MiB of replies queue long before 400 MB of calls. */
    while (sent < (400u << 20)) {
        ssize_t w = send(fd, batch, len, MSG_NOSIGNAL);
        if (w <= 0) {
            closed = 1;
            break;
        }
        sent += (size_t)w;
    }
    CHECK(closed);
    CHECK(ts_stats(&ts).calls_dropped >= 1);
    CHECK(tc_ping(ts.port)); /* others are still served */
    close(fd);
    ts_stop(&ts);
}

int main(void)
{
    if (tu_certs_create(&certs) != 0)
        return 1;
    TEST_RUN(test_errors);
    TEST_RUN(test_tls_policy_plain_side);
    TEST_RUN(test_drc);
    TEST_RUN(test_drc_cred);
    TEST_RUN(test_drc_lru);
    TEST_RUN(test_max_conns);
    TEST_RUN(test_idle_timeout);
    TEST_RUN(test_slow_message);
    TEST_RUN(test_max_outstanding);
    TEST_RUN(test_unread_replies);
    TEST_RUN(test_ipv6);
    TEST_RUN(test_detached_dispatch);
    TEST_RUN(test_verdicts_counted_once);
    tu_certs_destroy(&certs);
    CHECK_EQ(mb_pool_shutdown(), 0);
    return test_summary();
}
