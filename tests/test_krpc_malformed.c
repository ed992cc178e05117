/*
 * test_krpc_malformed.c - hostile input to a live server: random bytes,
 * truncated headers, absurd lengths, wrong RPC versions, huge record marks,
 * zero-length records, REPLY messages. Each gets the right RPC error or a
 * closed connection, and between every case a separate good client, on a
 * connection kept open throughout and on a fresh one, is still answered.
 */
#include "krpc_svc_util.h"
#include "test.h"

static struct test_server ts;
static struct tc good;
static uint32_t good_xid = 0x60000000;

/* The long-lived good client and a fresh one both get answers. */
static int others_served(void)
{
    struct krpc_reply_hdr h;
    int ok = tc_call(&good, ++good_xid, TP_PROG, TP_VERS_LO, TP_NULL, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) == 0 &&
             rh_accepted(&h, good_xid, KRPC_SUCCESS);
    return ok && tc_ping(ts.port);
}

static void put32(unsigned char *p, uint32_t v)
{
    v = htonl(v);
    memcpy(p, &v, 4);
}

/* Sends raw bytes on a fresh connection. */
static int send_raw(struct tc *t, const void *buf, size_t len)
{
    if (tc_open(t, ts.port) != 0)
        return -1;
    return tc_write(t, buf, len);
}

/* Outcome of one hostile message: the reply header if one came, else closed. */
enum { OUT_REPLY = 1, OUT_CLOSED = 2, OUT_OTHER = 3 };

static int outcome(struct tc *t, struct krpc_reply_hdr *h)
{
    int r = tc_reply_recv(t, h, NULL, 0, NULL);
    if (r == 0)
        return OUT_REPLY;
    if (r == -1)
        return OUT_CLOSED;
    return OUT_OTHER;
}

static void test_truncated_headers(void)
{
    unsigned char call[512];
    size_t n = tc_encode_call(call, sizeof(call), 0x1234, TP_PROG, TP_VERS_LO, TP_NULL, KRPC_AUTH_SYS, NULL, 0);

    REQUIRE(n > 40);
    for (size_t k = 0; k < n; k++) {
        struct tc t;
        struct krpc_reply_hdr h;
        int o;
        REQUIRE(tc_open(&t, ts.port) == 0);
        CHECK(tc_send_msg(&t, call, k) == 0);
        o = outcome(&t, &h);
        if (k < 8) {
            /* Not even a message type: closed. */
            CHECK_EQ(o, OUT_CLOSED);
        } else {
            /* The XID is there: GARBAGE_ARGS with it, and the connection stays. */
            CHECK_EQ(o, OUT_REPLY);
            CHECK(rh_accepted(&h, 0x1234, KRPC_GARBAGE_ARGS));
            if (o == OUT_REPLY) {
                CHECK(tc_call(&t, 0x99, TP_PROG, TP_VERS_LO, TP_NULL, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) == 0);
                CHECK(rh_accepted(&h, 0x99, KRPC_SUCCESS));
            }
        }
        tc_close(&t);
        if (k % 8 == 0)
            CHECK(others_served());
    }
    CHECK(others_served());
}

static void test_absurd_lengths(void)
{
    unsigned char call[512];
    size_t n = tc_encode_call(call, sizeof(call), 0x2000, TP_PROG, TP_VERS_LO, TP_NULL, KRPC_AUTH_SYS, NULL, 0);
    /* Offsets in an AUTH_SYS call: cred flavor 24, cred length 28, stamp 32,
     * machine name length 36. */
    static const struct {
        size_t off;
        uint32_t v;
        const char *what;
    } cases[] = {
        {28, 0xffffffffu, "credential length 0xffffffff"},
        {28, 401, "credential length 401"},
        {28, 4, "credential length shorter than its AUTH_SYS body"},
        {36, 0xffffffffu, "machine name length 0xffffffff"},
        {36, 256, "machine name length 256"},
    };

    REQUIRE(n > 60);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned char m[512];
        struct tc t;
        struct krpc_reply_hdr h;
        memcpy(m, call, n);
        put32(m, 0x2000 + (uint32_t)i);
        put32(m + cases[i].off, cases[i].v);
        REQUIRE(tc_open(&t, ts.port) == 0);
        CHECK(tc_send_msg(&t, m, n) == 0);
        CHECK_EQ(outcome(&t, &h), OUT_REPLY);
        if (!rh_accepted(&h, 0x2000 + (uint32_t)i, KRPC_GARBAGE_ARGS))
            fprintf(stderr, "case %s: not GARBAGE_ARGS\n", cases[i].what);
        CHECK(rh_accepted(&h, 0x2000 + (uint32_t)i, KRPC_GARBAGE_ARGS));
        tc_close(&t);
        CHECK(others_served());
    }
    /* The verifier length (last word of an AUTH_NONE header, offset 36). */
    n = tc_encode_call(call, sizeof(call), 0x2100, TP_PROG, TP_VERS_LO, TP_NULL, KRPC_AUTH_NONE, NULL, 0);
    REQUIRE(n == 40);
    put32(call + 36, 0xfffffff0u);
    {
        struct tc t;
        struct krpc_reply_hdr h;
        REQUIRE(tc_open(&t, ts.port) == 0);
        CHECK(tc_send_msg(&t, call, n) == 0);
        CHECK_EQ(outcome(&t, &h), OUT_REPLY);
        CHECK(rh_accepted(&h, 0x2100, KRPC_GARBAGE_ARGS));
        tc_close(&t);
    }
    CHECK(others_served());
}

static void test_rpc_versions(void)
{
    static const uint32_t vers[] = {0, 1, 3, 0xffffffffu};
    unsigned char call[512];
    size_t n = tc_encode_call(call, sizeof(call), 0x3000, TP_PROG, TP_VERS_LO, TP_NULL, KRPC_AUTH_NONE, NULL, 0);
    struct tc t;

    REQUIRE(tc_open(&t, ts.port) == 0);
    for (size_t i = 0; i < sizeof(vers) / sizeof(vers[0]); i++) {
        struct krpc_reply_hdr h;
        put32(call, 0x3000 + (uint32_t)i);
        put32(call + 8, vers[i]);
        CHECK(tc_send_msg(&t, call, n) == 0);
        CHECK_EQ(outcome(&t, &h), OUT_REPLY);
        CHECK(h.xid == 0x3000 + i && h.reply_stat == KRPC_MSG_DENIED && h.reject_stat == KRPC_RPC_MISMATCH &&
              h.mismatch_low == 2 && h.mismatch_high == 2);
    }
    /* Just the first three words with a wrong version: still RPC_MISMATCH. */
    {
        struct krpc_reply_hdr h;
        put32(call, 0x3100);
        put32(call + 8, 5);
        CHECK(tc_send_msg(&t, call, 12) == 0);
        CHECK_EQ(outcome(&t, &h), OUT_REPLY);
        CHECK(h.xid == 0x3100 && h.reject_stat == KRPC_RPC_MISMATCH);
    }
    tc_close(&t);
    CHECK(others_served());
}

static void test_record_marks(void)
{
    unsigned char buf[64];
    struct tc t;
    struct krpc_reply_hdr h;
    uint64_t m0 = ts_stats(&ts).closed_malformed;

    /* A huge last fragment and a huge non-last fragment: closed at the header. */
    put32(buf, 0xffffffffu);
    CHECK(send_raw(&t, buf, 4) == 0);
    CHECK(tc_wait_closed(t.fd, 3000));
    tc_close(&t);
    put32(buf, 0x7fffffffu);
    CHECK(send_raw(&t, buf, 4) == 0);
    CHECK(tc_wait_closed(t.fd, 3000));
    tc_close(&t);
    CHECK(others_served());
    /* Just over the limit (4 MiB default). */
    put32(buf, KRPC_RM_LAST | (KRPC_RM_DEFAULT_MAX_MSG + 1));
    CHECK(send_raw(&t, buf, 4) == 0);
    CHECK(tc_wait_closed(t.fd, 3000));
    tc_close(&t);
    CHECK_EQ(ts_stats(&ts).closed_malformed, m0 + 3);
    CHECK(others_served());

    /* A zero-length record: no XID to answer: closed. */
    put32(buf, KRPC_RM_LAST);
    CHECK(send_raw(&t, buf, 4) == 0);
    CHECK_EQ(outcome(&t, &h), OUT_CLOSED);
    tc_close(&t);
    CHECK(others_served());

    /* Zero-length non-last fragments before a good call are harmless. */
    {
        unsigned char call[128];
        size_t n = tc_encode_call(call, sizeof(call), 0x4000, TP_PROG, TP_VERS_LO, TP_NULL, KRPC_AUTH_NONE, NULL, 0);
        put32(buf, 0);
        put32(buf + 4, 0);
        REQUIRE(tc_open(&t, ts.port) == 0);
        CHECK(tc_write(&t, buf, 8) == 0);
        CHECK(tc_send_msg(&t, call, n) == 0);
        CHECK_EQ(outcome(&t, &h), OUT_REPLY);
        CHECK(rh_accepted(&h, 0x4000, KRPC_SUCCESS));
        /* A good call cut into one-byte fragments. */
        for (size_t i = 0; i < n; i++) {
            put32(buf, (i + 1 == n ? KRPC_RM_LAST : 0) | 1);
            buf[4] = call[i];
            CHECK(tc_write(&t, buf, 5) == 0);
        }
        CHECK_EQ(outcome(&t, &h), OUT_REPLY);
        CHECK(rh_accepted(&h, 0x4000, KRPC_SUCCESS));
        tc_close(&t);
    }
    /* A peer that closes in the middle of a message. */
    put32(buf, KRPC_RM_LAST | 100);
    CHECK(send_raw(&t, buf, 20) == 0);
    shutdown(t.fd, SHUT_WR);
    CHECK(tc_wait_closed(t.fd, 3000));
    tc_close(&t);
    CHECK(others_served());
}

static void test_not_calls(void)
{
    unsigned char m[64];
    struct tc t;
    struct krpc_reply_hdr h;
    uint64_t m0 = ts_stats(&ts).closed_malformed;

    /* A REPLY (accepted, SUCCESS): closed, not answered. */
    put32(m, 0x5000);
    put32(m + 4, KRPC_MSG_REPLY);
    put32(m + 8, KRPC_MSG_ACCEPTED);
    put32(m + 12, 0);
    put32(m + 16, 0);
    put32(m + 20, 0);
    REQUIRE(tc_open(&t, ts.port) == 0);
    CHECK(tc_send_msg(&t, m, 24) == 0);
    CHECK_EQ(outcome(&t, &h), OUT_CLOSED);
    tc_close(&t);
    CHECK(others_served());
    /* Message type 7. */
    put32(m + 4, 7);
    REQUIRE(tc_open(&t, ts.port) == 0);
    CHECK(tc_send_msg(&t, m, 24) == 0);
    CHECK_EQ(outcome(&t, &h), OUT_CLOSED);
    tc_close(&t);
    /* Four bytes: an XID and nothing else. */
    REQUIRE(tc_open(&t, ts.port) == 0);
    CHECK(tc_send_msg(&t, m, 4) == 0);
    CHECK_EQ(outcome(&t, &h), OUT_CLOSED);
    tc_close(&t);
    CHECK(ts_stats(&ts).closed_malformed >= m0 + 3);
    CHECK(others_served());
}

/* Random bytes, raw and record-marked: whatever comes back must be a
 * well-formed reply, and the server must either answer or close. */
static void test_random(void)
{
    unsigned seed = 4242;
    unsigned char buf[2048];

    for (int i = 0; i < 200; i++) {
        struct tc t;
        struct krpc_reply_hdr h;
        size_t len = (size_t)rand_r(&seed) % 600 + 1;
        int marked = i % 2, o, replies = 0;
        for (size_t k = 0; k < len; k++)
            buf[k] = (unsigned char)rand_r(&seed);
        if (i % 4 == 1 && len >= 8) {
            /* Make it look like a call more often. */
            put32(buf + 4, KRPC_MSG_CALL);
            if (len >= 12)
                put32(buf + 8, 2);
        }
        REQUIRE(tc_open(&t, ts.port) == 0);
        tu_set_timeouts(t.fd, 3000);
        if (marked)
            CHECK(tc_send_msg(&t, buf, len) == 0);
        else
            CHECK(tc_write(&t, buf, len) == 0);
        shutdown(t.fd, SHUT_WR); /* a partial message then ends in EOF */
        while ((o = outcome(&t, &h)) == OUT_REPLY)
            replies++;
        CHECK_EQ(o, OUT_CLOSED);
        if (marked && replies == 1 && len >= 8) {
            uint32_t x;
            memcpy(&x, buf, 4);
            CHECK(h.xid == ntohl(x));
        }
        tc_close(&t);
        if (i % 20 == 0)
            CHECK(others_served());
    }
    CHECK(others_served());
}

int main(void)
{
    struct krpc_svc_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    krpc_log_set_level(KRPC_LOG_ERROR); /* hundreds of expected warnings */
    if (ts_start(&ts, &cfg) != 0 || tc_open(&good, ts.port) != 0)
        return 1;
    TEST_RUN(test_truncated_headers);
    TEST_RUN(test_absurd_lengths);
    TEST_RUN(test_rpc_versions);
    TEST_RUN(test_record_marks);
    TEST_RUN(test_not_calls);
    TEST_RUN(test_random);
    CHECK(others_served());
    tc_close(&good);
    ts_stop(&ts);
    CHECK_EQ(mb_pool_shutdown(), 0);
    return test_summary();
}
