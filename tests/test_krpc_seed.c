/*
 * tests/test_krpc_seed.c - the seed's scenario at the RPC level.
 *
 * One megabyte of page-vector data P is written, by reference, to two
 * servers over RPC-with-TLS: two clients each call WRITE with arguments
 * {u32 id; opaque data<>} where data is a copy-by-reference of the same P
 * (krpc_xdr_put_opaque_chain). Each call is retransmitted at least once: the
 * server defers its first answer past the client's timeout, so the client
 * resends its retained message on the same TLS session; in the safe modes
 * the proxy in front of the first server also resets the first connection
 * in the middle of the call, so the message is resent again on a new
 * session after a new probe and handshake.
 *
 * The WRITE procedure is registered idempotent, so the duplicate-request
 * cache stays out of the way and the handler runs - and hashes the opaque
 * it received - for every copy of the call that reaches a server.
 *
 * auto, outofplace, copy: every received argument matches the source, the
 * replies carry the source's SHA-256, and P is unchanged afterwards.
 * unsafe-inplace (the old, unsafe behaviour): the first client to seal encrypts P
 * in place, so the other client encrypts ciphertext and its server receives
 * corrupted arguments; P itself no longer holds the source bytes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "rpctls/krpc_clnt.h"
#include "rpctls/krpc_svc.h"
#include "mbuf/mbuf_test.h"
#include "test.h"
#include "util/certs.h"
#include "util/proxy.h"
#include "util/stream.h"

#define PROG 0x40000dd0u
#define VERS 1
#define P_WRITE 1
#define DATA_LEN (1024 * 1024)
#define DEFER_MS 700
#define TIMEOUT_MS 250

static struct tu_certs certs;
static uint8_t src_sha[32];

struct server {
    struct krpc_loop *loop;
    struct krpc_svc *svc;
    struct tu_proxy *px;
    int execs, good, bad;
    int deferred_once;
    struct krpc_svc_req *held;
    struct mb_chain held_res;
    struct krpc_timer timer;
};

static void release_held(struct krpc_loop *loop, struct krpc_timer *t, void *arg)
{
    struct server *s = arg;

    (void)loop;
    (void)t;
    if (s->held) {
        krpc_svc_reply(s->held, KRPC_SUCCESS, &s->held_res);
        s->held = NULL;
    }
}

static int h_write(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res, void *arg)
{
    struct server *s = arg;
    struct mb_chain data = MB_CHAIN_INIT;
    struct tu_sha sha;
    uint8_t got[32];
    uint32_t id = krpc_xdr_get_u32(args);

    if (krpc_xdr_get_opaque_ref(args, 2 * DATA_LEN, &data) < 0 || krpc_xdr_dec_error(args)) {
        mb_chain_free(&data);
        return KRPC_GARBAGE_ARGS;
    }
    s->execs++;
    tu_sha_init(&sha);
    tu_sha_update_chain(&sha, &data);
    tu_sha_final(&sha, got);
    if (data.len == DATA_LEN && memcmp(got, src_sha, 32) == 0)
        s->good++;
    else
        s->bad++;
    mb_chain_free(&data);
    krpc_xdr_put_u32(res, id);
    krpc_xdr_put_fixed(res, got, 32);
    if (!s->deferred_once) {
        /* The first answer comes late: the client retransmits meanwhile. */
        struct krpc_xdr_enc x;
        s->deferred_once = 1;
        s->held = req;
        mb_chain_init(&s->held_res);
        krpc_xdr_enc_init(&x, &s->held_res);
        krpc_xdr_put_u32(&x, id);
        krpc_xdr_put_fixed(&x, got, 32);
        krpc_timer_arm(s->loop, &s->timer, DEFER_MS);
        return KRPC_SVC_DEFER;
    }
    return KRPC_SUCCESS;
}

static struct krpc_proc_desc procs[2];

static int start_server(struct krpc_loop *loop, struct server *s)
{
    struct krpc_svc_config sc;
    struct krpc_prog_desc pd = {PROG, VERS, 2, procs, s, 0};
    struct sockaddr_storage ss;
    socklen_t sl;

    memset(s, 0, sizeof *s);
    s->loop = loop;
    krpc_timer_init(&s->timer, release_held, s);
    memset(&sc, 0, sizeof sc);
    krpc_parse_addr("127.0.0.1:0", &sc.addr, &sc.addrlen);
    sc.tls = KRPC_SVC_TLS_REQUIRED;
    sc.tlscfg.cert_file = certs.server_cert;
    sc.tlscfg.key_file = certs.server_key;
    sc.tlscfg.ca_file = certs.ca_cert;
    sc.tlscfg.verify_peer = 2;
    if (krpc_svc_new(loop, &sc, &s->svc) < 0 || krpc_svc_register(s->svc, &pd) < 0)
        return -1;
    krpc_svc_addr(s->svc, &ss, &sl);
    return tu_proxy_start((struct sockaddr *)&ss, sl, &s->px);
}

static void stop_server(struct server *s)
{
    krpc_timer_cancel(s->loop, &s->timer);
    if (s->held) {
        mb_chain_free(&s->held_res);
        s->held = NULL; /* freed with the server's deferred calls */
    }
    krpc_svc_free(s->svc);
    krpc_loop_run(s->loop, NULL, 30);
    tu_proxy_stop(s->px);
}

struct result {
    int done, status, sha_ok;
};

static void write_cb(struct krpc_clnt *cl, int status, struct krpc_reply *reply, void *arg)
{
    struct result *r = arg;
    uint8_t sha[32];

    (void)cl;
    r->status = status;
    if (status == 0) {
        r->status = krpc_reply_status(&reply->hdr, NULL, 0);
        krpc_xdr_get_u32(&reply->res);
        r->sha_ok = krpc_xdr_get_fixed(&reply->res, sha, 32) == 0 && memcmp(sha, src_sha, 32) == 0;
    }
    r->done = 1;
}

static void sha_of_chain(const struct mb_chain *c, uint8_t out[32])
{
    struct tu_sha sha;

    tu_sha_init(&sha);
    tu_sha_update_chain(&sha, c);
    tu_sha_final(&sha, out);
}

static void run_mode(enum ktls_tx_mode mode)
{
    int unsafe = mode == KTLS_TX_UNSAFE_INPLACE;
    struct krpc_loop *loop;
    struct server srv[2];
    struct krpc_clnt *cl[2] = {NULL, NULL};
    struct result res[2];
    struct mb_chain pages = MB_CHAIN_INIT;
    unsigned char *buf;
    uint8_t after[32];
    int all_done = 0;

    fprintf(stderr, "-- tx mode %s\n", ktls_tx_mode_name(mode));
    buf = malloc(DATA_LEN);
    REQUIRE(buf);
    tu_stream_fill(9289, 0, buf, DATA_LEN);
    REQUIRE(mb_chain_append_pages_from_buf(&pages, buf, DATA_LEN) == 0);
    free(buf);
    sha_of_chain(&pages, src_sha);

    REQUIRE(krpc_loop_new(&loop) == 0);
    REQUIRE(start_server(loop, &srv[0]) == 0);
    REQUIRE(start_server(loop, &srv[1]) == 0);
    if (!unsafe) {
        /* Cut the first connection to mirror 0 in the middle of the call. */
        struct tu_px_rule r = {0, TU_PX_C2S, TU_PX_RESET, 300000, 0};
        tu_proxy_add_rule(srv[0].px, &r);
    }
    if (!unsafe)
        mb__guard_set(1); /* any write to the shared pages would fault */

    memset(res, 0, sizeof res);
    for (int i = 0; i < 2; i++) {
        struct krpc_clnt_config cc;
        struct mb_chain args = MB_CHAIN_INIT, ref = MB_CHAIN_INIT;
        struct krpc_xdr_enc x;

        memset(&cc, 0, sizeof cc);
        tu_proxy_addr(srv[i].px, &cc.addr, &cc.addrlen);
        cc.prog = PROG;
        cc.vers = VERS;
        cc.tls = KRPC_TLS_REQUIRED;
        cc.tlscfg.ca_file = certs.ca_cert;
        cc.tlscfg.cert_file = certs.client_cert;
        cc.tlscfg.key_file = certs.client_key;
        cc.tlscfg.server_name = "localhost";
        cc.tlscfg.tx_mode = mode;
        cc.timeout_ms = TIMEOUT_MS;
        cc.max_retries = unsafe ? 2 : 8;
        cc.reconnect_delay_ms = 20;
        cc.max_reconnects = 4;
        cc.name = i == 0 ? "mirror 0" : "mirror 1";
        REQUIRE(krpc_clnt_new(loop, &cc, &cl[i]) == 0);
        /* The same pages for both mirrors, by reference. */
        REQUIRE(mb_chain_copy_ref(&ref, &pages, 0, pages.len) == 0);
        krpc_xdr_enc_init(&x, &args);
        krpc_xdr_put_u32(&x, (uint32_t)i);
        krpc_xdr_put_opaque_chain(&x, &ref);
        REQUIRE(krpc_xdr_enc_error(&x) == 0);
        CHECK(krpc_call_async(cl[i], P_WRITE, &args, write_cb, &res[i], NULL) == 0);
    }
    while (!(res[0].done && res[1].done)) {
        all_done = 0;
        if (krpc_loop_run_once(loop, 100) < 0)
            break;
    }
    all_done = res[0].done && res[1].done;
    CHECK(all_done);
    /* Let the deferred first answers go out (and be dropped as late duplicates). */
    krpc_loop_run(loop, NULL, unsafe ? 50 : DEFER_MS);

    sha_of_chain(&pages, after);
    for (int i = 0; i < 2; i++) {
        const struct krpc_clnt_stats *st = krpc_clnt_stats(cl[i]);
        struct ktls_stats ts;
        krpc_clnt_tls_stats(cl[i], &ts);
        fprintf(stderr,
                "  mirror %d: status %d reply-sha %s | client retransmits %llu reconnects %llu handshakes %llu | "
                "records inplace %llu outofplace %llu copied %llu | server execs %d good %d bad %d\n",
                i, res[i].status, res[i].sha_ok ? "ok" : "bad", (unsigned long long)st->retransmits,
                (unsigned long long)st->reconnects, (unsigned long long)st->tls_handshakes,
                (unsigned long long)ts.tx_records_inplace, (unsigned long long)ts.tx_records_outofplace,
                (unsigned long long)ts.tx_records_copied, srv[i].execs, srv[i].good, srv[i].bad);
        CHECK(st->retransmits >= 1);
        if (unsafe) {
            CHECK(ts.tx_records_inplace > 0);
            continue;
        }
        CHECK_EQ(res[i].status, 0);
        CHECK(res[i].sha_ok);
        CHECK(srv[i].execs >= 2); /* the first execution and at least one retransmission */
        CHECK_EQ(srv[i].bad, 0);
        CHECK_EQ(srv[i].good, srv[i].execs);
        CHECK_EQ(ts.tx_bytes_inplace, 0); /* the shared pages were never sealed in place */
        if (mode == KTLS_TX_COPY)
            CHECK(ts.tx_records_copied > 0);
        else
            CHECK(ts.tx_records_outofplace > 0);
    }
    if (unsafe) {
        /* The second sealer encrypted ciphertext: its server got garbage. */
        CHECK(srv[0].bad + srv[1].bad >= 1);
        CHECK(memcmp(after, src_sha, 32) != 0);
    } else {
        CHECK(memcmp(after, src_sha, 32) == 0); /* the retained pages are unchanged */
        CHECK(krpc_clnt_stats(cl[0])->reconnects >= 1);
        CHECK(krpc_svc_stats(srv[0].svc)->tls_handshakes >= 2);
    }

    mb__guard_set(0);
    krpc_clnt_free(cl[0]);
    krpc_clnt_free(cl[1]);
    stop_server(&srv[0]);
    stop_server(&srv[1]);
    mb_chain_free(&pages);
    krpc_loop_free(loop);
}

static void test_auto(void)
{
    run_mode(KTLS_TX_AUTO);
}
static void test_outofplace(void)
{
    run_mode(KTLS_TX_OUTOFPLACE);
}
static void test_copy(void)
{
    run_mode(KTLS_TX_COPY);
}
static void test_inplace_corrupts(void)
{
    run_mode(KTLS_TX_UNSAFE_INPLACE);
}

int main(void)
{
    procs[P_WRITE].fn = h_write;
    procs[P_WRITE].flags = KRPC_PROC_IDEMPOTENT;
    procs[P_WRITE].name = "write";
    if (tu_certs_create(&certs) < 0) {
        CHECK(0);
        return test_summary();
    }
    TEST_RUN(test_auto);
    TEST_RUN(test_outofplace);
    TEST_RUN(test_copy);
    TEST_RUN(test_inplace_corrupts);
    tu_certs_destroy(&certs);
    CHECK_EQ(mb_pool_shutdown(), 0);
    return test_summary();
}
