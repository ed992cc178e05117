/*
 * tests/test_krpc_svc_loops.c - a server with several event loops, and its
 * limits for connections that have not authenticated yet:
 *  - connections are spread over the loops; a non-idempotent call
 *    retransmitted on a new connection that lands on the other loop is
 *    answered from the one duplicate-request cache, executed once;
 *  - 8 clients x 200 calls at once on 2 loops: every call answered, the
 *    counters exact (atomic);
 *  - a stranger is cut handshake_timeout_ms after accept, also one that
 *    drips a byte every 100 ms (the idle timer alone would never cut it);
 *  - over max_unauth_conns the oldest stranger goes, an established client
 *    keeps its connection and a new client is served;
 *  - before TLS under _REQUIRED a record mark over 1 KiB (2 KiB with a
 *    program served in the clear) closes at once;
 *  - max_memory: plaintext clients each sending most of a 4 MiB message are
 *    cut once the budget is full, with the log line; the bytes held stay
 *    under the budget plus one read batch per connection; a small client is
 *    still served; when they are gone the budget is back to zero.
 */
#include "krpc_svc_util.h"
#include "test.h"
#include "util/certs.h"
#include "util/logcap.h"

static struct tu_certs certs;

/* Stops the capture; 1 when what it caught contains every needle. */
static int log_stop_has(struct tu_logcap *lc, const char *a, const char *b)
{
    char *txt = tu_logcap_text(lc);
    int ok = txt != NULL && strstr(txt, a) != NULL && (b == NULL || strstr(txt, b) != NULL);

    tu_logcap_stop(lc);
    free(txt);
    return ok;
}

/* A second program: procedure 1 says which loop ran it (0: the caller's). */
#define WHERE_PROG 0x20001235u
static int where_fn(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res, void *arg)
{
    struct test_server *ts = arg;
    (void)args;
    krpc_xdr_put_u32(res, krpc_svc_req_loop(req) == ts->loop ? 0 : 1);
    return KRPC_SUCCESS;
}
static const struct krpc_proc_desc where_procs[2] = {
    {NULL, 0, "NULL"},
    {where_fn, KRPC_PROC_IDEMPOTENT, "WHERE"},
};

static int where(struct tc *t, uint32_t xid)
{
    struct krpc_reply_hdr h;
    uint32_t v = 0;
    size_t rl = 0;

    if (tc_call(t, xid, WHERE_PROG, 1, 1, KRPC_AUTH_NONE, NULL, 0, &h, &v, 4, &rl) != 0 ||
        !rh_accepted(&h, xid, KRPC_SUCCESS) || rl != 4)
        return -1;
    return (int)ntohl(v);
}

static int count(struct tc *t, uint32_t xid, uint32_t *value)
{
    struct krpc_reply_hdr h;
    uint32_t a[2] = {htonl(7), htonl(9)}, v = 0;
    size_t rl = 0;

    if (tc_call(t, xid, TP_PROG, TP_VERS_LO, TP_COUNT, KRPC_AUTH_SYS, a, sizeof(a), &h, &v, 4, &rl) != 0 ||
        !rh_accepted(&h, xid, KRPC_SUCCESS) || rl != 4)
        return -1;
    *value = ntohl(v);
    return 0;
}

static int start_loops(struct test_server *ts, struct krpc_svc_config *cfg)
{
    struct krpc_prog_desc w = {WHERE_PROG, 1, 2, where_procs, ts, KRPC_PROG_MT_SAFE};

    if (ts_start(ts, cfg) != 0)
        return -1;
    if (krpc_svc_register(ts->svc, &w) != 0 || krpc_svc_start(ts->svc) != 0)
        return -1;
    /* Programs are fixed once the loops run. */
    w.vers = 2;
    if (krpc_svc_register(ts->svc, &w) != -EBUSY)
        return -1;
    return 0;
}

static void test_drc_across_loops(void)
{
    struct krpc_svc_config cfg;
    struct test_server ts;
    struct tc t1, t2;
    struct krpc_svc_stats st;
    uint32_t v = 0;
    int w1, w2;

    memset(&cfg, 0, sizeof(cfg));
    cfg.threads = 2;
    REQUIRE(start_loops(&ts, &cfg) == 0);
    CHECK_EQ(krpc_svc_threads(ts.svc), 2);
    /* The second connection goes to the loop with fewer connections. */
    REQUIRE(tc_open(&t1, ts.port) == 0);
    w1 = where(&t1, 1);
    REQUIRE(tc_open(&t2, ts.port) == 0);
    w2 = where(&t2, 2);
    CHECK(w1 >= 0 && w2 >= 0);
    CHECK(w1 != w2);
    /* A non-idempotent call on one loop, retransmitted on the other. */
    CHECK(count(&t1, 0x800, &v) == 0);
    CHECK_EQ(v, 1);
    tc_close(&t1);
    CHECK(count(&t2, 0x800, &v) == 0);
    CHECK_EQ(v, 1); /* the cached reply */
    CHECK_EQ(ts.count_execs, 1);
    st = ts_stats(&ts);
    CHECK_EQ(st.drc_hits, 1);
    /* Another XID runs. */
    CHECK(count(&t2, 0x801, &v) == 0);
    CHECK_EQ(v, 2);
    tc_close(&t2);
    ts_stop(&ts);
}

struct hammer {
    uint16_t port;
    unsigned ok;
    int loop;
};

static void *hammer_fn(void *arg)
{
    struct hammer *h = arg;
    struct tc t;

    if (tc_open(&t, h->port) != 0)
        return NULL;
    h->loop = where(&t, 1);
    for (unsigned i = 0; i < 200; i++) {
        struct krpc_reply_hdr r;
        if (tc_call(&t, 100 + i, TP_PROG, TP_VERS_LO, TP_NULL, KRPC_AUTH_NONE, NULL, 0, &r, NULL, 0, NULL) == 0 &&
            rh_accepted(&r, 100 + i, KRPC_SUCCESS))
            h->ok++;
    }
    tc_close(&t);
    return NULL;
}

static void test_many_clients(void)
{
    struct krpc_svc_config cfg;
    struct test_server ts;
    struct hammer h[8];
    pthread_t thr[8];
    struct krpc_svc_stats st;
    int on[2] = {0, 0};

    memset(&cfg, 0, sizeof(cfg));
    cfg.threads = 2;
    REQUIRE(start_loops(&ts, &cfg) == 0);
    for (int i = 0; i < 8; i++) {
        memset(&h[i], 0, sizeof(h[i]));
        h[i].port = ts.port;
        h[i].loop = -1;
        REQUIRE(pthread_create(&thr[i], NULL, hammer_fn, &h[i]) == 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(thr[i], NULL);
        CHECK_EQ(h[i].ok, 200);
        if (h[i].loop == 0 || h[i].loop == 1)
            on[h[i].loop]++;
    }
    CHECK(on[0] > 0 && on[1] > 0); /* both loops served */
    for (int i = 0; i < 100 && ts_stats(&ts).conns_open != 0; i++)
        usleep(10000);
    st = ts_stats(&ts);
    CHECK_EQ(st.calls, 8 * 201);
    CHECK_EQ(st.replies, 8 * 201);
    CHECK_EQ(st.conns_accepted, 8);
    CHECK_EQ(st.conns_open, 0);
    CHECK_EQ(st.conns_unauth, 0);
    ts_stop(&ts);
}

/* 1 when the server closed fd (EOF or reset) within ms. */
static int closed_within(int fd, int ms)
{
    return tc_wait_closed(fd, ms);
}

static void test_handshake_deadline(void)
{
    struct krpc_svc_config cfg;
    struct test_server ts;
    struct krpc_svc_stats st;
    uint64_t t0;
    int quiet, drip, cut = 0;
    /* A call of 40 bytes, one byte at a time: a valid start that never ends in time. */
    static const unsigned char call[44] = {0x80, 0, 0, 40};
    struct tu_logcap lc;

    memset(&cfg, 0, sizeof(cfg));
    cfg.handshake_timeout_ms = 500;
    cfg.idle_timeout_ms = 300000;
    REQUIRE(tu_logcap_start(&lc) == 0);
    REQUIRE(ts_start(&ts, &cfg) == 0);
    t0 = krpc_now_ms();
    quiet = tc_connect(ts.port);
    drip = tc_connect(ts.port);
    REQUIRE(quiet >= 0 && drip >= 0);
    /* One byte every 100 ms keeps the idle timer happy, not the deadline. */
    for (int i = 0; i < 30 && !cut; i++) {
        if (send(drip, &call[i], 1, MSG_NOSIGNAL) != 1)
            cut = 1;
        else
            usleep(100 * 1000);
    }
    CHECK(closed_within(drip, 2000));
    CHECK(closed_within(quiet, 2000));
    CHECK(krpc_now_ms() - t0 >= 450);  /* not before the deadline */
    CHECK(krpc_now_ms() - t0 < 3500);  /* generous: the cut did happen */
    close(quiet);
    close(drip);
    CHECK(tc_ping(ts.port)); /* a real client is served */
    st = ts_stats(&ts);
    CHECK_EQ(st.closed_handshake_timeout, 2);
    CHECK_EQ(st.closed_idle, 0);
    ts_stop(&ts);
    CHECK(log_stop_has(&lc, "not authenticated", "no complete call yet"));
}

static void test_unauth_budget(void)
{
    struct krpc_svc_config cfg;
    struct test_server ts;
    struct krpc_svc_stats st;
    struct tc est;
    struct krpc_reply_hdr h;
    int s[6];

    memset(&cfg, 0, sizeof(cfg));
    cfg.max_conns = 8;
    cfg.max_unauth_conns = 4;
    cfg.handshake_timeout_ms = 60000; /* only the budget cuts here */
    REQUIRE(ts_start(&ts, &cfg) == 0);
    REQUIRE(tc_open(&est, ts.port) == 0);
    CHECK(tc_call(&est, 1, TP_PROG, TP_VERS_LO, 0, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) == 0);
    for (int i = 0; i < 6; i++) {
        s[i] = tc_connect(ts.port);
        REQUIRE(s[i] >= 0);
        usleep(20 * 1000); /* accepted in this order */
    }
    /* Six strangers, room for four: the two oldest went. */
    CHECK(closed_within(s[0], 2000));
    CHECK(closed_within(s[1], 2000));
    CHECK(!closed_within(s[5], 100));
    /* The established client and a new one are served. */
    CHECK(tc_call(&est, 2, TP_PROG, TP_VERS_LO, 0, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) == 0);
    CHECK(rh_accepted(&h, 2, KRPC_SUCCESS));
    CHECK(tc_ping(ts.port));
    st = ts_stats(&ts);
    CHECK(st.closed_unauth_evicted >= 2);
    CHECK_EQ(st.conns_refused, 0);
    CHECK(st.conns_unauth <= 4);
    for (int i = 0; i < 6; i++)
        close(s[i]);
    tc_close(&est);
    ts_stop(&ts);
}

/* A NULL call with the largest AUTH_SYS credential (255-byte machine name,
 * 16 groups) padded with argument bytes to msglen bytes in all, sent in the
 * clear. 0, or -1 when msglen is too small or the send failed. */
static int send_null_of(struct tc *t, uint32_t xid, size_t msglen)
{
    static const unsigned char pad[4096];
    unsigned char buf[4096];
    struct krpc_cred cred;
    size_t n;

    memset(&cred, 0, sizeof(cred));
    cred.flavor = KRPC_AUTH_SYS;
    memset(cred.machine, 'm', KRPC_AUTH_SYS_MAX_MACHINE);
    cred.ngids = KRPC_AUTH_SYS_MAX_GIDS;
    n = tc_encode_call_cred(buf, sizeof(buf), xid, TP_PROG, TP_VERS_LO, 0, &cred, NULL, 0);
    if (n == 0 || msglen < n || msglen > sizeof(buf))
        return -1;
    n = tc_encode_call_cred(buf, sizeof(buf), xid, TP_PROG, TP_VERS_LO, 0, &cred, pad, msglen - n);
    return n == msglen ? tc_send_msg(t, buf, n) : -1;
}

/* Before TLS on a TLS-only server a message may be as large as the calls
 * served in the clear need: 1 KiB (NULL) with no program marked
 * KRPC_PROG_PLAIN_OK, 2 KiB (a MNT) with one. A message of exactly the
 * limit is served; one byte more closes at the record mark, before a byte
 * of the body is buffered. */
static void test_pretls_limit(void)
{
    static const struct {
        unsigned flags;
        size_t limit;
        const char *log;
    } rows[] = {
        {0, 1024, "over the 1024-byte limit (before TLS on a TLS-only server)"},
        {KRPC_PROG_PLAIN_OK, 2048, "over the 2048-byte limit (before TLS on a TLS-only server)"},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct krpc_svc_config cfg;
        struct test_server ts;
        struct tc t;
        struct krpc_reply_hdr h;
        uint32_t over = (uint32_t)rows[i].limit + 1;
        unsigned char mark[4] = {0x80, (unsigned char)(over >> 16), (unsigned char)(over >> 8), (unsigned char)over};
        int fd;
        struct tu_logcap lc;

        memset(&cfg, 0, sizeof(cfg));
        cfg.tls = KRPC_SVC_TLS_REQUIRED;
        cfg.tlscfg.cert_file = certs.server_cert;
        cfg.tlscfg.key_file = certs.server_key;
        REQUIRE(tu_logcap_start(&lc) == 0);
        REQUIRE(ts_start_flags(&ts, &cfg, rows[i].flags) == 0);
        fd = tc_connect(ts.port);
        REQUIRE(fd >= 0);
        CHECK(send(fd, mark, 4, MSG_NOSIGNAL) == 4);
        CHECK(closed_within(fd, 2000));
        close(fd);
        /* Exactly the limit: served in the clear. */
        REQUIRE(tc_open(&t, ts.port) == 0);
        CHECK(send_null_of(&t, 5, rows[i].limit) == 0);
        CHECK(tc_reply_recv(&t, &h, NULL, 0, NULL) == 0 && rh_accepted(&h, 5, KRPC_SUCCESS));
        /* A MNT-sized message (1,400 bytes) only where MOUNT may be. */
        CHECK(send_null_of(&t, 6, 1400) == 0);
        if (rows[i].flags & KRPC_PROG_PLAIN_OK)
            CHECK(tc_reply_recv(&t, &h, NULL, 0, NULL) == 0 && rh_accepted(&h, 6, KRPC_SUCCESS));
        else
            CHECK(closed_within(t.fd, 2000));
        tc_close(&t);
        CHECK_EQ(ts_stats(&ts).closed_malformed, (rows[i].flags & KRPC_PROG_PLAIN_OK) ? 1 : 2);
        ts_stop(&ts);
        CHECK(log_stop_has(&lc, rows[i].log, NULL));
    }
}

static void test_max_memory(void)
{
    enum { N = 25, CHUNK = 64 * 1024 };
    struct krpc_svc_config cfg;
    struct test_server ts;
    struct krpc_svc_stats st;
    static unsigned char buf[CHUNK];
    int fd[N], cut = 0;
    uint64_t limit = 8u << 20;
    struct tu_logcap lc;

    memset(&cfg, 0, sizeof(cfg));
    cfg.tls = KRPC_SVC_TLS_OFF;
    cfg.max_memory = limit;
    cfg.threads = 2;
    REQUIRE(tu_logcap_start(&lc) == 0);
    REQUIRE(ts_start(&ts, &cfg) == 0);
    REQUIRE(krpc_svc_start(ts.svc) == 0);
    memset(buf, 0x5a, sizeof(buf));
    buf[0] = 0x80; /* one fragment of 4 MiB - 4 */
    buf[1] = 0x3f;
    buf[2] = 0xff;
    buf[3] = 0xfc;
    for (int i = 0; i < N; i++) {
        fd[i] = tc_connect(ts.port);
        if (fd[i] < 0) {
            cut++; /* refused at accept: the budget is full */
            continue;
        }
        /* Most of the message, never its end: 3 MiB. */
        for (int k = 0; k < 48; k++) {
            if (send(fd[i], buf, CHUNK, MSG_NOSIGNAL) != CHUNK)
                break;
            buf[0] = 0x5a, buf[1] = 0x5a, buf[2] = 0x5a, buf[3] = 0x5a;
        }
        buf[0] = 0x80, buf[1] = 0x3f, buf[2] = 0xff, buf[3] = 0xfc;
        st = ts_stats(&ts);
        /* Bounded: the budget plus one read batch (16 x 64 KiB) per loop. */
        CHECK(st.mem_used <= limit + 2 * 16 * 65536);
    }
    CHECK(tc_ping(ts.port) || ts_stats(&ts).conns_refused > 0);
    for (int i = 0; i < N; i++)
        if (fd[i] >= 0 && closed_within(fd[i], 50))
            cut++;
    CHECK(cut > 0);
    st = ts_stats(&ts);
    CHECK(st.closed_memory > 0);
    for (int i = 0; i < N; i++)
        if (fd[i] >= 0)
            close(fd[i]);
    for (int i = 0; i < 200 && ts_stats(&ts).conns_open != 0; i++)
        usleep(10000);
    st = ts_stats(&ts);
    CHECK_EQ(st.mem_used, 0);
    CHECK(tc_ping(ts.port)); /* served again */
    ts_stop(&ts);
    CHECK(log_stop_has(&lc, "max_memory", NULL));
}

int main(void)
{
    if (tu_certs_create(&certs) < 0)
        return 1;
    krpc_log_set_level(KRPC_LOG_INFO);
    TEST_RUN(test_drc_across_loops);
    TEST_RUN(test_many_clients);
    TEST_RUN(test_handshake_deadline);
    TEST_RUN(test_unauth_budget);
    TEST_RUN(test_pretls_limit);
    TEST_RUN(test_max_memory);
    tu_certs_destroy(&certs);
    return test_summary();
}
