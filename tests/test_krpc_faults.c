/*
 * tests/test_krpc_faults.c - our client and our server with a
 * fault-injecting proxy (tests/util/proxy.h) between them.
 *
 * The server's APPEND procedure is not idempotent: it appends to a counter
 * and returns the new value, and the handler counts how often it ran for
 * each call. Whatever the proxy does - reset a connection after N bytes in
 * either direction (also in the middle of a TLS handshake), withhold the
 * replies past the client's timeout, swallow a connection's bytes and then
 * reset it - every call must complete, each call must have been executed
 * exactly once at the server (the duplicate-request cache answers the
 * retransmissions), and the counters must show the retransmits and
 * reconnects. With TLS every reconnect repeats the probe and the handshake.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "rpctls/krpc_clnt.h"
#include "rpctls/krpc_svc.h"
#include "test.h"
#include "util/certs.h"
#include "util/logcap.h"
#include "util/proxy.h"

#define PROG 0x40000abcu
#define VERS 1
#define P_APPEND 1
#define NCALLS 300
#define PAD 200

static struct tu_certs certs;
static int have_certs;

static uint32_t counter;
static unsigned execs[NCALLS];
static unsigned bad_ids;

/* APPEND: {u32 id; opaque pad<>} -> {u32 id; u32 counter after the append} */
static int h_append(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res, void *arg)
{
    uint32_t id = krpc_xdr_get_u32(args);
    unsigned char pad[PAD];
    size_t n;

    (void)req;
    (void)arg;
    if (krpc_xdr_get_opaque(args, pad, sizeof pad, &n) < 0 || krpc_xdr_dec_error(args))
        return KRPC_GARBAGE_ARGS;
    if (id < NCALLS)
        execs[id]++;
    else
        bad_ids++;
    counter++;
    krpc_xdr_put_u32(res, id);
    krpc_xdr_put_u32(res, counter);
    return KRPC_SUCCESS;
}

static const struct krpc_proc_desc procs[] = {
    {NULL, KRPC_PROC_IDEMPOTENT, "null"},
    {h_append, 0, "append"},
};
static const struct krpc_prog_desc prog = {PROG, VERS, 2, procs, NULL, 0};

static struct {
    int done, completions, ok;
    int status[NCALLS];
    uint32_t order[NCALLS];
} R;

static void append_cb(struct krpc_clnt *cl, int status, struct krpc_reply *reply, void *arg)
{
    int i = (int)(intptr_t)arg;

    (void)cl;
    R.status[i] = status;
    if (status == 0) {
        if (krpc_reply_status(&reply->hdr, NULL, 0) != 0 || krpc_xdr_get_u32(&reply->res) != (uint32_t)i)
            R.status[i] = -EBADMSG;
        R.order[i] = krpc_xdr_get_u32(&reply->res);
        if (krpc_xdr_dec_error(&reply->res))
            R.status[i] = -EBADMSG;
    }
    if (R.status[i] == 0)
        R.ok++;
    if (++R.completions == NCALLS)
        R.done = 1;
}

struct expect {
    int min_retransmits;
    int min_reconnects;
    int min_tls_handshakes; /* client */
    int min_probes;         /* server */
    int min_drc_hits;       /* server: retransmissions answered from the cache */
};

static void run_scenario(const char *what, int tls, const struct tu_px_rule *rules, int nrules,
                         const struct expect *ex)
{
    struct krpc_loop *loop;
    struct krpc_svc *svc = NULL;
    struct krpc_svc_config sc;
    struct krpc_clnt_config cc;
    struct krpc_clnt *cl;
    struct tu_proxy *px;
    struct tu_proxy_stats ps;
    struct sockaddr_storage ss;
    socklen_t sl;
    const struct krpc_clnt_stats *st;
    const struct krpc_svc_stats *ss_st;
    unsigned once = 0, distinct = 1;
    static unsigned char seen[NCALLS + 1];

    fprintf(stderr, "-- %s%s\n", what, tls ? " (TLS)" : "");
    memset(execs, 0, sizeof execs);
    memset(&R, 0, sizeof R);
    counter = 0;
    bad_ids = 0;
    REQUIRE(krpc_loop_new(&loop) == 0);
    memset(&sc, 0, sizeof sc);
    krpc_parse_addr("127.0.0.1:0", &sc.addr, &sc.addrlen);
    if (tls) {
        sc.tls = KRPC_SVC_TLS_REQUIRED;
        sc.tlscfg.cert_file = certs.server_cert;
        sc.tlscfg.key_file = certs.server_key;
        sc.tlscfg.ca_file = certs.ca_cert;
        sc.tlscfg.verify_peer = 2;
    }
    REQUIRE(krpc_svc_new(loop, &sc, &svc) == 0);
    REQUIRE(krpc_svc_register(svc, &prog) == 0);
    krpc_svc_addr(svc, &ss, &sl);
    REQUIRE(tu_proxy_start((struct sockaddr *)&ss, sl, &px) == 0);
    for (int i = 0; i < nrules; i++)
        REQUIRE(tu_proxy_add_rule(px, &rules[i]) == 0);

    memset(&cc, 0, sizeof cc);
    tu_proxy_addr(px, &cc.addr, &cc.addrlen);
    cc.prog = PROG;
    cc.vers = VERS;
    cc.timeout_ms = 150;
    cc.max_retries = 40;
    cc.reconnect_delay_ms = 20;
    cc.max_reconnects = 10;
    cc.connect_timeout_ms = 5000;
    cc.cred.flavor = KRPC_AUTH_SYS;
    cc.cred.uid = 1000;
    snprintf(cc.cred.machine, sizeof cc.cred.machine, "faults");
    if (tls) {
        cc.tls = KRPC_TLS_REQUIRED;
        cc.tlscfg.ca_file = certs.ca_cert;
        cc.tlscfg.cert_file = certs.client_cert;
        cc.tlscfg.key_file = certs.client_key;
        cc.tlscfg.server_name = "localhost";
    }
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    for (int i = 0; i < NCALLS; i++) {
        struct mb_chain a = MB_CHAIN_INIT;
        struct krpc_xdr_enc x;
        unsigned char pad[PAD];
        memset(pad, i & 0xff, sizeof pad);
        krpc_xdr_enc_init(&x, &a);
        krpc_xdr_put_u32(&x, (uint32_t)i);
        krpc_xdr_put_opaque(&x, pad, sizeof pad);
        CHECK(krpc_call_async(cl, P_APPEND, &a, append_cb, (void *)(intptr_t)i, NULL) == 0);
    }
    CHECK(krpc_loop_run(loop, &R.done, 120000) == 0);

    CHECK_EQ(R.completions, NCALLS);
    CHECK_EQ(R.ok, NCALLS);
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < NCALLS; i++) {
        if (execs[i] == 1)
            once++;
        else
            fprintf(stderr, "  call %d executed %u times (status %d)\n", i, execs[i], R.status[i]);
        if (R.status[i] == 0) {
            if (R.order[i] == 0 || R.order[i] > NCALLS || seen[R.order[i]])
                distinct = 0;
            else
                seen[R.order[i]] = 1;
        }
    }
    CHECK_EQ(once, NCALLS);  /* exactly once per call */
    CHECK_EQ(counter, NCALLS);
    CHECK(distinct);         /* every reply reports its own execution */
    CHECK_EQ(bad_ids, 0);

    st = krpc_clnt_stats(cl);
    ss_st = krpc_svc_stats(svc);
    tu_proxy_get_stats(px, &ps);
    fprintf(stderr,
            "  client: calls %llu replies %llu retransmits %llu reconnects %llu tls_handshakes %llu\n"
            "  server: calls %llu drc_hits %llu drc_in_progress %llu tls_probes %llu tls_handshakes %llu "
            "tls_failures %llu\n"
            "  proxy: conns %llu resets %llu delays %llu blackholed %llu\n",
            (unsigned long long)st->calls, (unsigned long long)st->replies, (unsigned long long)st->retransmits,
            (unsigned long long)st->reconnects, (unsigned long long)st->tls_handshakes,
            (unsigned long long)ss_st->calls, (unsigned long long)ss_st->drc_hits,
            (unsigned long long)ss_st->drc_in_progress, (unsigned long long)ss_st->tls_probes,
            (unsigned long long)ss_st->tls_handshakes, (unsigned long long)ss_st->tls_failures,
            (unsigned long long)ps.conns, (unsigned long long)ps.resets, (unsigned long long)ps.delays,
            (unsigned long long)ps.blackholed);
    CHECK_EQ(st->calls, NCALLS);
    CHECK_EQ(st->replies, NCALLS);
    CHECK_EQ(st->failures, 0);
    CHECK(st->retransmits >= (uint64_t)ex->min_retransmits);
    CHECK(st->reconnects >= (uint64_t)ex->min_reconnects);
    CHECK_EQ(st->reconnects + 1, ps.conns);
    CHECK(st->tls_handshakes >= (uint64_t)ex->min_tls_handshakes);
    CHECK(ss_st->tls_probes >= (uint64_t)ex->min_probes);
    if (tls) {
        CHECK_EQ(ss_st->tls_handshakes, st->tls_handshakes);
        CHECK_EQ(ss_st->auth_tooweak, 0);
        CHECK(krpc_clnt_is_tls(cl));
    }
    /* Retransmissions of executed calls were answered from the cache. */
    CHECK(ss_st->drc_hits >= (uint64_t)ex->min_drc_hits);
    CHECK_EQ(krpc_clnt_outstanding(cl), 0);

    krpc_clnt_free(cl);
    krpc_svc_free(svc);
    krpc_loop_run(loop, NULL, 30);
    krpc_loop_free(loop);
    tu_proxy_stop(px);
}

/* Resets in both directions on the first connections. */
static void test_resets(void)
{
    const struct tu_px_rule r[] = {
        {0, TU_PX_C2S, TU_PX_RESET, 5000, 0},
        {1, TU_PX_S2C, TU_PX_RESET, 1500, 0},
        {2, TU_PX_C2S, TU_PX_RESET, 30000, 0},
    };
    const struct expect ex = {1, 3, 0, 0, 1};
    run_scenario("connection resets after N bytes", 0, r, 3, &ex);
}

/* Replies withheld past the timeout: retransmissions on the same connection. */
static void test_withheld_replies(void)
{
    const struct tu_px_rule r[] = {
        {0, TU_PX_S2C, TU_PX_DELAY, 600, 500},
    };
    const struct expect ex = {1, 0, 0, 0, 1};
    run_scenario("replies withheld for 500 ms", 0, r, 1, &ex);
}

/* A connection's bytes vanish for a while, then it is reset: first the
 * replies (the calls ran: the cache must answer their resends), then the
 * calls. */
static void test_blackhole(void)
{
    const struct tu_px_rule r[] = {
        {0, TU_PX_S2C, TU_PX_BLACKHOLE, 1000, 400},
        {1, TU_PX_C2S, TU_PX_BLACKHOLE, 8000, 400},
    };
    const struct expect ex = {1, 2, 0, 0, 1};
    run_scenario("bytes dropped, then reset", 0, r, 2, &ex);
}

static void test_tls_faults(void)
{
    const struct tu_px_rule r[] = {
        {0, TU_PX_C2S, TU_PX_RESET, 200, 0},     /* inside the ClientHello */
        {1, TU_PX_S2C, TU_PX_RESET, 600, 0},     /* inside the server's handshake flight */
        {2, TU_PX_C2S, TU_PX_RESET, 25000, 0},   /* among the calls */
        {3, TU_PX_S2C, TU_PX_DELAY, 4000, 500},  /* replies withheld: retransmissions */
        {3, TU_PX_S2C, TU_PX_RESET, 9000, 0},    /* and then a reset as well */
    };
    const struct expect ex = {1, 4, 2, 5, 1};

    REQUIRE(have_certs);
    run_scenario("resets (also mid-handshake) and withheld replies", 1, r, 5, &ex);
}

/* Tampered TLS records (one bit flipped by the proxy): a reply the client
 * cannot authenticate, then a call the server cannot. Each side sends
 * bad_record_mac and closes; the client reconnects, resends, and the
 * server's cache answers calls that already ran. The log lines name the
 * alert by its RFC 8446 name. */
static void test_tls_tampered(void)
{
    const struct tu_px_rule r[] = {
        {0, TU_PX_S2C, TU_PX_FLIP, 8000, 0},  /* inside a reply, past the handshake */
        {1, TU_PX_C2S, TU_PX_FLIP, 12000, 0}, /* inside a call */
    };
    const struct expect ex = {1, 2, 3, 3, 1};
    const char *sent[] = {"krpc client: connection to ",
                          " lost: a record failed authentication; sent alert bad_record_mac (20)", NULL};
    /* The server's side of the tampered call. (Whether the client then reads
     * the server's alert or a reset first depends on timing: the server
     * closes with the client's next calls unread, and TCP answers those
     * with RST, which may overtake the alert.) */
    const char *received[] = {"rpc server: TLS error from ",
                              ": a record failed authentication; sent alert bad_record_mac (20)", NULL};
    struct tu_logcap lc;

    REQUIRE(have_certs);
    REQUIRE(tu_logcap_start(&lc) == 0);
    krpc_log_set_level(KRPC_LOG_INFO);
    run_scenario("tampered records both ways", 1, r, 2, &ex);
    krpc_log_set_level(KRPC_LOG_WARN);
    CHECK(tu_logcap_wait_line(&lc, 0, NULL, 0, sent));
    CHECK(tu_logcap_wait_line(&lc, 0, NULL, 0, received));
    tu_logcap_stop(&lc);
}

int main(void)
{
    have_certs = tu_certs_create(&certs) == 0;
    TEST_RUN(test_resets);
    TEST_RUN(test_withheld_replies);
    TEST_RUN(test_blackhole);
    TEST_RUN(test_tls_faults);
    TEST_RUN(test_tls_tampered);
    if (have_certs)
        tu_certs_destroy(&certs);
    CHECK_EQ(mb_pool_shutdown(), 0);
    return test_summary();
}
