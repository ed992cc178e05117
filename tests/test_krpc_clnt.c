/*
 * tests/test_krpc_clnt.c - the RPC client against our server (krpc_svc) and
 * against a hand-made misbehaving server on loopback: many outstanding
 * calls, AUTH_SYS, the blocking wrapper, retransmission and -ETIMEDOUT,
 * connect failures, RPC-with-TLS required / opportunistic, error replies,
 * late duplicates and undecodable replies, freeing with calls outstanding;
 * reconnection before the TLS key's usage limit (client side) and after
 * the server closes at its limit, with no KeyUpdate sent.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rpctls/krpc_clnt.h"
#include "rpctls/krpc_svc.h"
#include "test.h"
#include "util/certs.h"

#define PROG 0x40000123u
#define VERS 1

enum { P_NULL = 0, P_ECHO = 1, P_WHOAMI = 2, P_BLACKHOLE = 3, P_BLOB = 4 };

static struct tu_certs certs;
static int have_certs;
static struct krpc_svc_req *held[64];
static int nheld;

/* ECHO: {u32 a; string s<>} -> {u32 a + 1; string s} */
static int h_echo(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res, void *arg)
{
    char s[256];
    uint32_t a = krpc_xdr_get_u32(args);

    (void)req;
    (void)arg;
    if (krpc_xdr_get_string(args, s, sizeof s) < 0 || krpc_xdr_dec_error(args))
        return KRPC_GARBAGE_ARGS;
    krpc_xdr_put_u32(res, a + 1);
    krpc_xdr_put_string(res, s);
    return KRPC_SUCCESS;
}

/* WHOAMI: the credential as the server saw it. */
static int h_whoami(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res, void *arg)
{
    (void)args;
    (void)arg;
    krpc_xdr_put_u32(res, req->cred.flavor);
    krpc_xdr_put_u32(res, req->cred.uid);
    krpc_xdr_put_u32(res, req->cred.gid);
    krpc_xdr_put_string(res, req->cred.machine);
    krpc_xdr_put_u32(res, req->cred.ngids);
    for (uint32_t i = 0; i < req->cred.ngids; i++)
        krpc_xdr_put_u32(res, req->cred.gids[i]);
    krpc_xdr_put_u32(res, (uint32_t)req->tls);
    return KRPC_SUCCESS;
}

/* BLACKHOLE: never answered (kept until the end of the test). */
static int h_blackhole(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res, void *arg)
{
    (void)args;
    (void)res;
    (void)arg;
    if (nheld < 64)
        held[nheld++] = req;
    return KRPC_SVC_DEFER;
}

/* BLOB: opaque data<> -> the same opaque, by reference. */
static int h_blob(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res, void *arg)
{
    struct mb_chain data = MB_CHAIN_INIT;

    (void)req;
    (void)arg;
    if (krpc_xdr_get_opaque_ref(args, 1 << 20, &data) < 0 || krpc_xdr_remaining(args) != 0) {
        mb_chain_free(&data);
        return KRPC_GARBAGE_ARGS;
    }
    krpc_xdr_put_opaque_chain(res, &data);
    mb_chain_free(&data);
    return KRPC_SUCCESS;
}

static const struct krpc_proc_desc procs[] = {
    [P_NULL] = {NULL, KRPC_PROC_IDEMPOTENT, "null"},
    [P_ECHO] = {h_echo, 0, "echo"},
    [P_WHOAMI] = {h_whoami, KRPC_PROC_IDEMPOTENT, "whoami"},
    [P_BLACKHOLE] = {h_blackhole, 0, "blackhole"},
    [P_BLOB] = {h_blob, 0, "blob"},
};
static const struct krpc_prog_desc prog = {PROG, VERS, 5, procs, NULL, 0};

/* record_limit: the server's TLS records per key (test hook; 0: real limit). */
static struct krpc_svc *start_svc_limit(struct krpc_loop *loop, enum krpc_svc_tls tls, uint64_t record_limit)
{
    struct krpc_svc_config sc;
    struct krpc_svc *svc = NULL;

    memset(&sc, 0, sizeof sc);
    krpc_parse_addr("127.0.0.1:0", &sc.addr, &sc.addrlen);
    sc.tls = tls;
    if (tls != KRPC_SVC_TLS_OFF) {
        sc.tlscfg.cert_file = certs.server_cert;
        sc.tlscfg.key_file = certs.server_key;
        sc.tlscfg.ca_file = certs.ca_cert;
        sc.tlscfg.verify_peer = 1;
        sc.tlscfg.record_limit = record_limit;
    }
    if (krpc_svc_new(loop, &sc, &svc) < 0 || krpc_svc_register(svc, &prog) < 0)
        return NULL;
    return svc;
}

static struct krpc_svc *start_svc(struct krpc_loop *loop, enum krpc_svc_tls tls)
{
    return start_svc_limit(loop, tls, 0);
}

/* The server's connections close from the loop: run it briefly. */
static void svc_free_drain(struct krpc_loop *loop, struct krpc_svc *svc)
{
    krpc_svc_free(svc);
    krpc_loop_run(loop, NULL, 30);
}

static void base_cfg(struct krpc_clnt_config *cc, const struct krpc_svc *svc)
{
    memset(cc, 0, sizeof *cc);
    krpc_svc_addr(svc, &cc->addr, &cc->addrlen);
    cc->prog = PROG;
    cc->vers = VERS;
    cc->timeout_ms = 2000;
    cc->reconnect_delay_ms = 10;
}

static void tls_client_cfg(struct krpc_clnt_config *cc, enum krpc_tls_policy pol)
{
    cc->tls = pol;
    cc->tlscfg.ca_file = certs.ca_cert;
    cc->tlscfg.cert_file = certs.client_cert;
    cc->tlscfg.key_file = certs.client_key;
    cc->tlscfg.server_name = "127.0.0.1";
}

static void echo_args(struct mb_chain *c, uint32_t a, const char *s)
{
    struct krpc_xdr_enc x;

    mb_chain_init(c);
    krpc_xdr_enc_init(&x, c);
    krpc_xdr_put_u32(&x, a);
    krpc_xdr_put_string(&x, s);
}

/* ---- many outstanding calls ------------------------------------------------- */

#define NCALLS 300

struct many {
    int in_async;
    int reentrant;
    int done;
    int status[NCALLS];
    uint32_t got[NCALLS];
    int str_ok[NCALLS];
    int completions;
};
static struct many M;

static void many_cb(struct krpc_clnt *cl, int status, struct krpc_reply *reply, void *arg)
{
    int i = (int)(intptr_t)arg;
    char s[64], want[64];

    (void)cl;
    if (M.in_async)
        M.reentrant++;
    M.status[i] = status;
    if (status == 0 && krpc_reply_status(&reply->hdr, NULL, 0) == 0) {
        M.got[i] = krpc_xdr_get_u32(&reply->res);
        snprintf(want, sizeof want, "call-%d", i);
        M.str_ok[i] = krpc_xdr_get_string(&reply->res, s, sizeof s) == 0 && strcmp(s, want) == 0 &&
                      krpc_xdr_remaining(&reply->res) == 0;
        krpc_reply_free(reply);
    }
    if (++M.completions == NCALLS)
        M.done = 1;
}

static void test_many_outstanding(void)
{
    struct krpc_loop *loop;
    struct krpc_svc *svc;
    struct krpc_clnt *cl;
    struct krpc_clnt_config cc;
    uint32_t xids[NCALLS];
    int ok = 0, uniq = 1;

    REQUIRE(krpc_loop_new(&loop) == 0);
    svc = start_svc(loop, KRPC_SVC_TLS_OFF);
    REQUIRE(svc);
    base_cfg(&cc, svc);
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    memset(&M, 0, sizeof M);
    for (int i = 0; i < NCALLS; i++) {
        struct mb_chain a;
        char s[64];
        snprintf(s, sizeof s, "call-%d", i);
        echo_args(&a, (uint32_t)i * 7, s);
        M.in_async = 1;
        CHECK(krpc_call_async(cl, P_ECHO, &a, many_cb, (void *)(intptr_t)i, &xids[i]) == 0);
        M.in_async = 0;
        CHECK_EQ(a.len, 0);
    }
    CHECK_EQ(M.completions, 0); /* nothing completes inside krpc_call_async */
    CHECK_EQ(krpc_clnt_outstanding(cl), NCALLS);
    for (int i = 1; i < NCALLS; i++)
        if (xids[i] != xids[i - 1] + 1)
            uniq = 0;
    CHECK(uniq);
    CHECK(krpc_loop_run(loop, &M.done, 30000) == 0);
    for (int i = 0; i < NCALLS; i++)
        if (M.status[i] == 0 && M.got[i] == (uint32_t)i * 7 + 1 && M.str_ok[i])
            ok++;
    CHECK_EQ(ok, NCALLS);
    CHECK_EQ(M.reentrant, 0);
    CHECK_EQ(krpc_clnt_outstanding(cl), 0);
    CHECK_EQ(krpc_clnt_stats(cl)->calls, NCALLS);
    CHECK_EQ(krpc_clnt_stats(cl)->replies, NCALLS);
    CHECK_EQ(krpc_clnt_stats(cl)->retransmits, 0);
    CHECK_EQ(krpc_clnt_stats(cl)->reconnects, 0);
    CHECK(krpc_clnt_stats(cl)->bytes_sent > 0 && krpc_clnt_stats(cl)->bytes_received > 0);
    CHECK_EQ(krpc_svc_stats(svc)->calls, NCALLS);
    CHECK(!krpc_clnt_is_tls(cl));
    krpc_clnt_free(cl);
    svc_free_drain(loop, svc);
    krpc_loop_free(loop);
}

/* ---- counters ------------------------------------------------------------------------------------ */

/* krpc_clnt_stats_get fills the caller's struct from a const client, so two
 * snapshots can be compared; krpc_clnt_stats returns the client's own
 * snapshot, which the next call overwrites. */
static void test_stats_snapshots(void)
{
    struct krpc_loop *loop;
    struct krpc_svc *svc;
    struct krpc_clnt *cl;
    const struct krpc_clnt *ccl;
    struct krpc_clnt_config cc;
    struct krpc_clnt_stats before, after;
    struct krpc_svc_stats ss;
    struct krpc_reply rep;

    REQUIRE(krpc_loop_new(&loop) == 0);
    svc = start_svc(loop, KRPC_SVC_TLS_OFF);
    REQUIRE(svc);
    base_cfg(&cc, svc);
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    ccl = cl;
    krpc_clnt_stats_get(ccl, &before);
    CHECK(krpc_call(cl, P_NULL, NULL, &rep) == 0);
    krpc_reply_free(&rep);
    krpc_clnt_stats_get(ccl, &after);
    CHECK_EQ(before.calls, 0);
    CHECK_EQ(after.calls - before.calls, 1);
    CHECK_EQ(after.replies - before.replies, 1);
    CHECK(after.bytes_sent > before.bytes_sent && after.bytes_received > before.bytes_received);
    CHECK_EQ(krpc_clnt_stats(cl)->calls, after.calls);
    CHECK_EQ(krpc_clnt_stats(cl)->bytes_sent, after.bytes_sent);
    krpc_svc_stats_get(svc, &ss);
    CHECK_EQ(ss.calls, 1);
    CHECK_EQ(krpc_svc_stats(svc)->calls, ss.calls);
    krpc_clnt_free(cl);
    svc_free_drain(loop, svc);
    krpc_loop_free(loop);
}

/* ---- AUTH_SYS and the blocking wrapper ------------------------------------------ */

static void test_auth_sys_blocking(void)
{
    struct krpc_loop *loop;
    struct krpc_svc *svc;
    struct krpc_clnt *cl;
    struct krpc_clnt_config cc;
    struct krpc_reply rep;
    char machine[300];
    uint32_t v[8];
    char buf[128];

    REQUIRE(krpc_loop_new(&loop) == 0);
    svc = start_svc(loop, KRPC_SVC_TLS_OFF);
    REQUIRE(svc);
    base_cfg(&cc, svc);
    cc.cred.flavor = KRPC_AUTH_SYS;
    cc.cred.stamp = 99;
    snprintf(cc.cred.machine, sizeof cc.cred.machine, "client.example");
    cc.cred.uid = 1234;
    cc.cred.gid = 5678;
    cc.cred.ngids = 3;
    cc.cred.gids[0] = 10;
    cc.cred.gids[1] = 20;
    cc.cred.gids[2] = 30;
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    CHECK(krpc_call(cl, P_WHOAMI, NULL, &rep) == 0);
    CHECK(krpc_reply_status(&rep.hdr, buf, sizeof buf) == 0);
    CHECK(strcmp(buf, "SUCCESS") == 0);
    v[0] = krpc_xdr_get_u32(&rep.res);
    v[1] = krpc_xdr_get_u32(&rep.res);
    v[2] = krpc_xdr_get_u32(&rep.res);
    CHECK(krpc_xdr_get_string(&rep.res, machine, sizeof machine) == 0);
    v[3] = krpc_xdr_get_u32(&rep.res);
    for (int i = 0; i < 3; i++)
        v[4 + i] = krpc_xdr_get_u32(&rep.res);
    v[7] = krpc_xdr_get_u32(&rep.res);
    CHECK(krpc_xdr_dec_error(&rep.res) == 0);
    CHECK_EQ(v[0], KRPC_AUTH_SYS);
    CHECK_EQ(v[1], 1234);
    CHECK_EQ(v[2], 5678);
    CHECK(strcmp(machine, "client.example") == 0);
    CHECK_EQ(v[3], 3);
    CHECK_EQ(v[4], 10);
    CHECK_EQ(v[5], 20);
    CHECK_EQ(v[6], 30);
    CHECK_EQ(v[7], 0);
    krpc_reply_free(&rep);

    /* Blocking ECHO with the default AUTH_NONE on a second client. */
    {
        struct krpc_clnt *c2;
        struct mb_chain a;
        char s[64];
        base_cfg(&cc, svc);
        REQUIRE(krpc_clnt_new(loop, &cc, &c2) == 0);
        echo_args(&a, 41, "blocking");
        CHECK(krpc_call(c2, P_ECHO, &a, &rep) == 0);
        CHECK(krpc_reply_status(&rep.hdr, NULL, 0) == 0);
        CHECK_EQ(krpc_xdr_get_u32(&rep.res), 42);
        CHECK(krpc_xdr_get_string(&rep.res, s, sizeof s) == 0 && strcmp(s, "blocking") == 0);
        krpc_reply_free(&rep);
        CHECK(krpc_call(c2, P_WHOAMI, NULL, &rep) == 0);
        CHECK_EQ(krpc_xdr_get_u32(&rep.res), KRPC_AUTH_NONE);
        krpc_reply_free(&rep);
        krpc_clnt_free(c2);
    }
    krpc_clnt_free(cl);
    svc_free_drain(loop, svc);
    krpc_loop_free(loop);
}

/* ---- error replies ----------------------------------------------------------------- */

static void test_error_replies(void)
{
    struct krpc_loop *loop;
    struct krpc_svc *svc;
    struct krpc_clnt *cl, *c2, *c3;
    struct krpc_clnt_config cc;
    struct krpc_reply rep;
    struct krpc_reply_hdr h;
    struct mb_chain a;
    char buf[128];

    REQUIRE(krpc_loop_new(&loop) == 0);
    svc = start_svc(loop, KRPC_SVC_TLS_OFF);
    REQUIRE(svc);
    base_cfg(&cc, svc);
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);

    /* Unknown procedure. */
    CHECK(krpc_call(cl, 9, NULL, &rep) == 0);
    CHECK(krpc_reply_status(&rep.hdr, buf, sizeof buf) == -EOPNOTSUPP);
    CHECK(strstr(buf, "PROC_UNAVAIL") != NULL);
    krpc_reply_free(&rep);
    /* Garbage arguments (ECHO without its string). */
    mb_chain_init(&a);
    {
        struct krpc_xdr_enc x;
        krpc_xdr_enc_init(&x, &a);
        krpc_xdr_put_u32(&x, 5);
    }
    CHECK(krpc_call(cl, P_ECHO, &a, &rep) == 0);
    CHECK(krpc_reply_status(&rep.hdr, buf, sizeof buf) == -EINVAL);
    CHECK(strstr(buf, "GARBAGE_ARGS") != NULL);
    krpc_reply_free(&rep);

    /* Wrong version: PROG_MISMATCH with the range. */
    cc.vers = 7;
    REQUIRE(krpc_clnt_new(loop, &cc, &c2) == 0);
    CHECK(krpc_call(c2, P_NULL, NULL, &rep) == 0);
    CHECK(krpc_reply_status(&rep.hdr, buf, sizeof buf) == -EPROTONOSUPPORT);
    CHECK(strcmp(buf, "PROG_MISMATCH (supported 1..1)") == 0);
    krpc_reply_free(&rep);
    /* Unknown program. */
    cc.vers = VERS;
    cc.prog = PROG + 1;
    REQUIRE(krpc_clnt_new(loop, &cc, &c3) == 0);
    CHECK(krpc_call(c3, P_NULL, NULL, &rep) == 0);
    CHECK(krpc_reply_status(&rep.hdr, buf, sizeof buf) == -EPFNOSUPPORT);
    CHECK(strstr(buf, "PROG_UNAVAIL") != NULL);
    krpc_reply_free(&rep);

    /* Every other status, from headers. */
    memset(&h, 0, sizeof h);
    h.reply_stat = KRPC_MSG_ACCEPTED;
    h.accept_stat = KRPC_SYSTEM_ERR;
    CHECK(krpc_reply_status(&h, buf, sizeof buf) == -EREMOTEIO && strstr(buf, "SYSTEM_ERR"));
    h.accept_stat = 77;
    CHECK(krpc_reply_status(&h, buf, sizeof buf) == -EBADMSG && strstr(buf, "77"));
    h.reply_stat = KRPC_MSG_DENIED;
    h.reject_stat = KRPC_RPC_MISMATCH;
    h.mismatch_low = h.mismatch_high = 2;
    CHECK(krpc_reply_status(&h, buf, sizeof buf) == -EPROTONOSUPPORT && strcmp(buf, "RPC_MISMATCH (supported 2..2)") == 0);
    h.reject_stat = KRPC_AUTH_ERROR;
    h.auth_stat = KRPC_AUTH_TOOWEAK;
    CHECK(krpc_reply_status(&h, buf, sizeof buf) == -EACCES && strcmp(buf, "AUTH_ERROR: AUTH_TOOWEAK") == 0);
    h.auth_stat = KRPC_AUTH_BADCRED;
    CHECK(krpc_reply_status(&h, buf, sizeof buf) == -EACCES && strcmp(buf, "AUTH_ERROR: AUTH_BADCRED") == 0);
    for (uint32_t s = KRPC_AUTH_REJECTEDCRED; s <= KRPC_AUTH_REJECTEDVERF; s++) {
        h.auth_stat = s;
        CHECK(krpc_reply_status(&h, buf, sizeof buf) == -EACCES && strncmp(buf, "AUTH_ERROR: AUTH_", 17) == 0);
    }
    h.reject_stat = 9;
    CHECK(krpc_reply_status(&h, buf, sizeof buf) == -EBADMSG);
    h.reply_stat = 5;
    CHECK(krpc_reply_status(&h, buf, sizeof buf) == -EBADMSG);

    krpc_clnt_free(c3);
    krpc_clnt_free(c2);
    krpc_clnt_free(cl);
    svc_free_drain(loop, svc);
    krpc_loop_free(loop);
}

/* ---- retransmission and the retry limit ----------------------------------------------- */

static void test_timeout_retry_limit(void)
{
    struct krpc_loop *loop;
    struct krpc_svc *svc;
    struct krpc_clnt *cl;
    struct krpc_clnt_config cc;
    struct krpc_reply rep;

    REQUIRE(krpc_loop_new(&loop) == 0);
    svc = start_svc(loop, KRPC_SVC_TLS_OFF);
    REQUIRE(svc);
    base_cfg(&cc, svc);
    cc.timeout_ms = 40;
    cc.max_retries = 3;
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    nheld = 0;
    CHECK(krpc_call(cl, P_BLACKHOLE, NULL, &rep) == -ETIMEDOUT);
    CHECK_EQ(krpc_clnt_stats(cl)->retransmits, 3);
    CHECK_EQ(krpc_clnt_stats(cl)->failures, 1);
    CHECK_EQ(krpc_clnt_stats(cl)->replies, 0);
    CHECK_EQ(krpc_clnt_outstanding(cl), 0);
    /* The server executed it once: the cache dropped the retransmissions
     * that arrived while it was in progress. */
    CHECK_EQ(nheld, 1);
    /* The connection still works. */
    CHECK(krpc_call(cl, P_NULL, NULL, &rep) == 0);
    krpc_reply_free(&rep);

    /* No retransmissions at all. */
    krpc_clnt_free(cl);
    cc.max_retries = -1;
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    CHECK(krpc_call(cl, P_BLACKHOLE, NULL, &rep) == -ETIMEDOUT);
    CHECK_EQ(krpc_clnt_stats(cl)->retransmits, 0);
    krpc_clnt_free(cl);
    svc_free_drain(loop, svc); /* drops the deferred calls */
    nheld = 0;
    krpc_loop_free(loop);
}

/* ---- connect failures ------------------------------------------------------------------ */

static void test_connect_refused(void)
{
    struct krpc_loop *loop;
    struct krpc_clnt *cl;
    struct krpc_clnt_config cc;
    struct krpc_reply rep;
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    int fd;

    REQUIRE(krpc_loop_new(&loop) == 0);
    /* A port nobody listens on: bind one and close it. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && getsockname(fd, (struct sockaddr *)&sa, &sl) == 0);
    close(fd);
    memset(&cc, 0, sizeof cc);
    memcpy(&cc.addr, &sa, sizeof sa);
    cc.addrlen = sizeof sa;
    cc.prog = PROG;
    cc.vers = VERS;
    cc.reconnect_delay_ms = 5;
    cc.max_reconnects = 3;
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    CHECK(krpc_call(cl, P_NULL, NULL, &rep) == -ECONNREFUSED);
    CHECK(strstr(krpc_clnt_last_error(cl), "refused") != NULL);
    CHECK_EQ(krpc_clnt_stats(cl)->reconnects, 2);
    CHECK_EQ(krpc_clnt_stats(cl)->failures, 1);
    krpc_clnt_free(cl);
    krpc_loop_free(loop);
}

/* ---- RPC-with-TLS policies ---------------------------------------------------------------- */

static void test_tls_required_refused(void)
{
    struct krpc_loop *loop;
    struct krpc_svc *svc;
    struct krpc_clnt *cl;
    struct krpc_clnt_config cc;
    struct krpc_reply rep;
    char want[128];

    REQUIRE(have_certs);
    REQUIRE(krpc_loop_new(&loop) == 0);
    svc = start_svc(loop, KRPC_SVC_TLS_OFF);
    REQUIRE(svc);
    base_cfg(&cc, svc);
    tls_client_cfg(&cc, KRPC_TLS_REQUIRED);
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    CHECK(krpc_call(cl, P_NULL, NULL, &rep) == -EPROTONOSUPPORT);
    snprintf(want, sizeof want, "server 127.0.0.1:%u does not offer RPC-with-TLS (reply: AUTH_ERROR AUTH_BADCRED)",
             krpc_svc_port(svc));
    CHECK(strcmp(krpc_clnt_last_error(cl), want) == 0);
    if (strcmp(krpc_clnt_last_error(cl), want) != 0)
        fprintf(stderr, "  last error: %s\n", krpc_clnt_last_error(cl));
    CHECK_EQ(krpc_svc_stats(svc)->auth_badcred, 1);
    CHECK(!krpc_clnt_is_tls(cl));
    krpc_clnt_free(cl);
    svc_free_drain(loop, svc);
    krpc_loop_free(loop);
}

static void test_tls_opportunistic_fallback(void)
{
    struct krpc_loop *loop;
    struct krpc_svc *svc;
    struct krpc_clnt *cl;
    struct krpc_clnt_config cc;
    struct krpc_reply rep;
    struct mb_chain a;

    REQUIRE(have_certs);
    REQUIRE(krpc_loop_new(&loop) == 0);
    svc = start_svc(loop, KRPC_SVC_TLS_OFF);
    REQUIRE(svc);
    base_cfg(&cc, svc);
    tls_client_cfg(&cc, KRPC_TLS_OPPORTUNISTIC);
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    echo_args(&a, 1, "plain after all");
    CHECK(krpc_call(cl, P_ECHO, &a, &rep) == 0);
    CHECK(krpc_reply_status(&rep.hdr, NULL, 0) == 0);
    CHECK_EQ(krpc_xdr_get_u32(&rep.res), 2);
    krpc_reply_free(&rep);
    CHECK(!krpc_clnt_is_tls(cl));
    CHECK_EQ(krpc_clnt_stats(cl)->tls_handshakes, 0);
    krpc_clnt_free(cl);
    svc_free_drain(loop, svc);
    krpc_loop_free(loop);
}

static void test_tls_ok(void)
{
    struct krpc_loop *loop;
    struct krpc_svc *svc;
    struct krpc_clnt *cl;
    struct krpc_clnt_config cc;
    struct krpc_reply rep;
    struct ktls_stats ts;
    struct mb_chain a;

    REQUIRE(have_certs);
    REQUIRE(krpc_loop_new(&loop) == 0);
    svc = start_svc(loop, KRPC_SVC_TLS_REQUIRED);
    REQUIRE(svc);
    for (int pol = KRPC_TLS_OPPORTUNISTIC; pol <= KRPC_TLS_REQUIRED; pol++) {
        base_cfg(&cc, svc);
        tls_client_cfg(&cc, (enum krpc_tls_policy)pol);
        cc.cred.flavor = KRPC_AUTH_SYS;
        cc.cred.uid = 7;
        snprintf(cc.cred.machine, sizeof cc.cred.machine, "m");
        REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
        CHECK(krpc_call(cl, P_WHOAMI, NULL, &rep) == 0);
        CHECK(krpc_reply_status(&rep.hdr, NULL, 0) == 0);
        CHECK_EQ(krpc_xdr_get_u32(&rep.res), KRPC_AUTH_SYS);
        CHECK_EQ(krpc_xdr_get_u32(&rep.res), 7);
        krpc_reply_free(&rep);
        CHECK(krpc_clnt_is_tls(cl));
        CHECK_EQ(krpc_clnt_stats(cl)->tls_handshakes, 1);
        krpc_clnt_tls_stats(cl, &ts);
        CHECK(ts.rx_records > 0);
        CHECK(ts.tx_records_inplace + ts.tx_records_outofplace + ts.tx_records_copied > 0);
        krpc_clnt_free(cl);
    }
    CHECK_EQ(krpc_svc_stats(svc)->tls_probes, 2);
    CHECK_EQ(krpc_svc_stats(svc)->tls_handshakes, 2);
    CHECK_EQ(krpc_svc_stats(svc)->auth_tooweak, 0);

    /* TLS off at the client against a TLS-only server: NULL is answered
     * (a ping), any other procedure gets AUTH_TOOWEAK. */
    base_cfg(&cc, svc);
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    CHECK(krpc_call(cl, P_NULL, NULL, &rep) == 0);
    CHECK(krpc_reply_status(&rep.hdr, NULL, 0) == 0);
    krpc_reply_free(&rep);
    mb_chain_init(&a);
    CHECK(krpc_call(cl, P_ECHO, &a, &rep) == 0);
    CHECK(krpc_reply_status(&rep.hdr, NULL, 0) == -EACCES);
    CHECK_EQ(rep.hdr.auth_stat, KRPC_AUTH_TOOWEAK);
    krpc_reply_free(&rep);
    krpc_clnt_free(cl);

    /* A client that does not trust the server's CA: -EPROTO, clear message. */
    base_cfg(&cc, svc);
    tls_client_cfg(&cc, KRPC_TLS_REQUIRED);
    cc.tlscfg.ca_file = certs.other_ca_cert;
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    CHECK(krpc_call(cl, P_NULL, NULL, &rep) == -EPROTO);
    CHECK(strstr(krpc_clnt_last_error(cl), "TLS handshake") != NULL);
    krpc_clnt_free(cl);
    svc_free_drain(loop, svc);
    krpc_loop_free(loop);
}

/* ---- reconnection before the TLS key's usage limit ------------------------------------------ */

#define NBLOB 120

/* Blob i: i * 331 % 40000 bytes of a pattern of i, so 1 to 3 TLS records. */
static size_t blob_len(int i)
{
    return (size_t)i * 331 % 40000;
}

static void blob_args(struct mb_chain *c, int i)
{
    static unsigned char buf[40000];
    struct krpc_xdr_enc x;
    size_t n = blob_len(i);

    for (size_t k = 0; k < n; k++)
        buf[k] = (unsigned char)(i * 7 + k * 13);
    mb_chain_init(c);
    krpc_xdr_enc_init(&x, c);
    krpc_xdr_put_opaque(&x, buf, n);
}

/* 1 when reply carries exactly blob i. */
static int blob_reply_ok(struct krpc_reply *reply, int i)
{
    static unsigned char got[40000];
    size_t n = 0;

    if (krpc_reply_status(&reply->hdr, NULL, 0) != 0 ||
        krpc_xdr_get_opaque(&reply->res, got, sizeof got, &n) < 0 || krpc_xdr_remaining(&reply->res) != 0 ||
        n != blob_len(i))
        return 0;
    for (size_t k = 0; k < n; k++)
        if (got[k] != (unsigned char)(i * 7 + k * 13))
            return 0;
    return 1;
}

struct blobs {
    int done, completions, ok;
};
static struct blobs B;

static void blob_cb(struct krpc_clnt *cl, int status, struct krpc_reply *reply, void *arg)
{
    (void)cl;
    if (status == 0 && blob_reply_ok(reply, (int)(intptr_t)arg))
        B.ok++;
    if (++B.completions == NBLOB)
        B.done = 1;
}

/* Sequential calls with the blocking wrapper, then NBLOB calls in flight at
 * once; every reply must hold exactly what was sent. */
static void blob_calls(struct krpc_loop *loop, struct krpc_clnt *cl)
{
    struct krpc_reply rep;
    int ok = 0;

    for (int i = 0; i < 60; i++) {
        struct mb_chain a;
        blob_args(&a, i);
        if (krpc_call(cl, P_BLOB, &a, &rep) == 0 && blob_reply_ok(&rep, i))
            ok++;
        krpc_reply_free(&rep);
    }
    CHECK_EQ(ok, 60);
    memset(&B, 0, sizeof B);
    for (int i = 0; i < NBLOB; i++) {
        struct mb_chain a;
        blob_args(&a, i + 1000);
        CHECK(krpc_call_async(cl, P_BLOB, &a, blob_cb, (void *)(intptr_t)(i + 1000), NULL) == 0);
    }
    CHECK(krpc_loop_run(loop, &B.done, 30000) == 0);
    CHECK_EQ(B.ok, NBLOB);
}

/* The client's key has a low limit (test hook): before a call would take
 * it near the limit, the client lets the calls in flight be answered, then
 * reconnects with a fresh probe and handshake. Nothing is resent, nothing
 * is lost, and no KeyUpdate is ever sent. */
static void test_tls_rekey_reconnect(void)
{
    struct krpc_loop *loop;
    struct krpc_svc *svc;
    struct krpc_clnt *cl;
    struct krpc_clnt_config cc;
    const struct krpc_clnt_stats *st;
    struct ktls_stats ts;

    REQUIRE(have_certs);
    REQUIRE(krpc_loop_new(&loop) == 0);
    svc = start_svc(loop, KRPC_SVC_TLS_REQUIRED);
    REQUIRE(svc);
    base_cfg(&cc, svc);
    tls_client_cfg(&cc, KRPC_TLS_REQUIRED);
    cc.tlscfg.record_limit = 60;
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    blob_calls(loop, cl);
    st = krpc_clnt_stats(cl);
    fprintf(stderr, "  calls %llu, rekey reconnects %llu, reconnects %llu, handshakes %llu\n",
            (unsigned long long)st->calls, (unsigned long long)st->rekey_reconnects,
            (unsigned long long)st->reconnects, (unsigned long long)st->tls_handshakes);
    CHECK(st->rekey_reconnects >= 5);
    CHECK_EQ(st->reconnects, st->rekey_reconnects);
    CHECK_EQ(st->tls_handshakes, st->reconnects + 1);
    CHECK_EQ(st->retransmits, 0);
    CHECK_EQ(st->failures, 0);
    /* Each call ran once; the server counts the probes as calls too. */
    CHECK_EQ(krpc_svc_stats(svc)->tls_probes, st->tls_handshakes);
    CHECK_EQ(krpc_svc_stats(svc)->calls, st->calls + st->tls_handshakes);
    krpc_clnt_tls_stats(cl, &ts);
    CHECK_EQ(ts.tx_key_updates, 0);
    CHECK_EQ(ts.rx_key_updates, 0);
    krpc_clnt_free(cl);

    /* The same client with the real limit: no reconnect at all. */
    base_cfg(&cc, svc);
    tls_client_cfg(&cc, KRPC_TLS_REQUIRED);
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    blob_calls(loop, cl);
    CHECK_EQ(krpc_clnt_stats(cl)->rekey_reconnects, 0);
    CHECK_EQ(krpc_clnt_stats(cl)->reconnects, 0);
    krpc_clnt_free(cl);
    svc_free_drain(loop, svc);
    krpc_loop_free(loop);
}

/* A client loads its TLS context once: the CA file is read for the first
 * handshake and not again, so its reconnects (forced here by the key-limit
 * hook) work after the file is gone. One context also serves clients of
 * different servers: each checks its own name against the certificate. */
static void test_tls_context_once(void)
{
    struct krpc_loop *loop;
    struct krpc_svc *svc;
    struct krpc_clnt *cl;
    struct krpc_clnt_config cc;
    struct krpc_reply rep;
    struct ktls_config k;
    struct ktls_ctx *ctx;
    char ca[PATH_MAX + 8], cmd[2 * PATH_MAX + 16], err[512];
    const struct krpc_clnt_stats *st;

    REQUIRE(have_certs);
    REQUIRE(krpc_loop_new(&loop) == 0);
    svc = start_svc(loop, KRPC_SVC_TLS_REQUIRED);
    REQUIRE(svc);
    snprintf(ca, sizeof ca, "%s.copy", certs.ca_cert);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", certs.ca_cert, ca);
    REQUIRE(system(cmd) == 0);
    base_cfg(&cc, svc);
    tls_client_cfg(&cc, KRPC_TLS_REQUIRED);
    cc.tlscfg.ca_file = ca;
    cc.tlscfg.record_limit = 60;
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    CHECK(krpc_call(cl, P_NULL, NULL, &rep) == 0);
    krpc_reply_free(&rep);
    CHECK_EQ(unlink(ca), 0);
    blob_calls(loop, cl);
    st = krpc_clnt_stats(cl);
    CHECK(st->rekey_reconnects >= 5);
    CHECK_EQ(st->tls_handshakes, st->reconnects + 1);
    CHECK_EQ(st->failures, 0);
    krpc_clnt_free(cl);
    /* A new client must read the file, and says which one is missing. */
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    CHECK(krpc_call(cl, P_NULL, NULL, &rep) < 0);
    CHECK(strstr(krpc_clnt_last_error(cl), ca) != NULL);
    if (strstr(krpc_clnt_last_error(cl), ca) == NULL)
        fprintf(stderr, "  last error: %s\n", krpc_clnt_last_error(cl));
    krpc_clnt_free(cl);

    /* A failed handshake drops the loaded context: with the wrong CA the
     * call fails; once the file holds the right CA, the same client's next
     * call reads it and works. */
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", certs.other_ca_cert, ca);
    REQUIRE(system(cmd) == 0);
    cc.tlscfg.record_limit = 0;
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    CHECK(krpc_call(cl, P_NULL, NULL, &rep) < 0);
    CHECK(strstr(krpc_clnt_last_error(cl), "certificate verify failed") != NULL);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", certs.ca_cert, ca);
    REQUIRE(system(cmd) == 0);
    CHECK(krpc_call(cl, P_NULL, NULL, &rep) == 0);
    krpc_reply_free(&rep);
    krpc_clnt_free(cl);
    unlink(ca);

    /* One context without a name, three clients with theirs. */
    memset(&k, 0, sizeof k);
    k.role = KTLS_CLIENT;
    k.ca_file = certs.ca_cert;
    k.alpn = KRPC_ALPN;
    REQUIRE(ktls_ctx_new(&k, &ctx, err, sizeof err) == 0);
    static const struct {
        const char *name;
        int ok;
    } names[] = {{"127.0.0.1", 1}, {"localhost", 1}, {"wrong.example", 0}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        base_cfg(&cc, svc);
        cc.tls = KRPC_TLS_REQUIRED;
        cc.tlscfg.server_name = names[i].name;
        cc.tls_ctx = ctx;
        cc.max_reconnects = 1;
        REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
        CHECK_EQ(krpc_call(cl, P_NULL, NULL, &rep) == 0, names[i].ok);
        krpc_reply_free(&rep);
        if (!names[i].ok) {
            const char *e = krpc_clnt_last_error(cl);
            CHECK(strstr(e, "hostname mismatch") != NULL && strstr(e, "checked \"wrong.example\"") != NULL);
            if (strstr(e, "checked \"wrong.example\"") == NULL)
                fprintf(stderr, "  last error: %s\n", e);
        }
        krpc_clnt_free(cl);
    }
    ktls_ctx_unref(ctx);
    svc_free_drain(loop, svc);
    krpc_loop_free(loop);
}

/* The server's key has a low limit: a reply that does not fit closes the
 * connection (close_notify); the client reconnects and resends, and the
 * duplicate-request cache answers. No KeyUpdate either way. */
static void test_tls_server_limit(void)
{
    struct krpc_loop *loop;
    struct krpc_svc *svc;
    struct krpc_clnt *cl;
    struct krpc_clnt_config cc;
    const struct krpc_clnt_stats *st;
    struct ktls_stats ts;
    struct krpc_reply rep;
    int ok = 0;

    REQUIRE(have_certs);
    REQUIRE(krpc_loop_new(&loop) == 0);
    svc = start_svc_limit(loop, KRPC_SVC_TLS_REQUIRED, 40);
    REQUIRE(svc);
    base_cfg(&cc, svc);
    tls_client_cfg(&cc, KRPC_TLS_REQUIRED);
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    for (int i = 0; i < 100; i++) {
        struct mb_chain a;
        blob_args(&a, i);
        if (krpc_call(cl, P_BLOB, &a, &rep) == 0 && blob_reply_ok(&rep, i))
            ok++;
        krpc_reply_free(&rep);
    }
    CHECK_EQ(ok, 100);
    st = krpc_clnt_stats(cl);
    fprintf(stderr, "  reconnects %llu, retransmits %llu, server calls %llu, cache hits %llu\n",
            (unsigned long long)st->reconnects, (unsigned long long)st->retransmits,
            (unsigned long long)krpc_svc_stats(svc)->calls, (unsigned long long)krpc_svc_stats(svc)->drc_hits);
    CHECK(st->reconnects >= 3);
    CHECK_EQ(st->rekey_reconnects, 0); /* the client's own key is far from its limit */
    CHECK_EQ(st->retransmits, st->reconnects);
    CHECK_EQ(krpc_svc_stats(svc)->drc_hits, st->retransmits); /* never run twice */
    CHECK_EQ(st->failures, 0);
    krpc_clnt_tls_stats(cl, &ts);
    CHECK_EQ(ts.tx_key_updates, 0);
    CHECK_EQ(ts.rx_key_updates, 0);
    krpc_clnt_free(cl);
    svc_free_drain(loop, svc);
    krpc_loop_free(loop);
}

/* ---- freeing with calls outstanding ---------------------------------------------------------- */

static int cancelled;
static void cancel_cb(struct krpc_clnt *cl, int status, struct krpc_reply *reply, void *arg)
{
    (void)cl;
    (void)reply;
    (void)arg;
    if (status == -ECANCELED)
        cancelled++;
}

static int free_in_cb_done;
static void free_in_cb(struct krpc_clnt *cl, int status, struct krpc_reply *reply, void *arg)
{
    (void)status;
    (void)reply;
    (void)arg;
    krpc_clnt_free(cl); /* from inside the client's own callback */
    free_in_cb_done = 1;
}

static void test_free_outstanding(void)
{
    struct krpc_loop *loop;
    struct krpc_svc *svc;
    struct krpc_clnt *cl;
    struct krpc_clnt_config cc;

    REQUIRE(krpc_loop_new(&loop) == 0);
    svc = start_svc(loop, KRPC_SVC_TLS_OFF);
    REQUIRE(svc);
    base_cfg(&cc, svc);
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    cancelled = 0;
    for (int i = 0; i < 5; i++) {
        struct mb_chain a;
        echo_args(&a, 1, "x");
        CHECK(krpc_call_async(cl, P_BLACKHOLE, &a, cancel_cb, NULL, NULL) == 0);
    }
    krpc_loop_run(loop, NULL, 50);
    krpc_clnt_free(cl);
    CHECK_EQ(cancelled, 5);

    /* krpc_clnt_free inside a callback, with other calls outstanding. */
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    cancelled = 0;
    free_in_cb_done = 0;
    CHECK(krpc_call_async(cl, P_NULL, NULL, free_in_cb, NULL, NULL) == 0);
    CHECK(krpc_call_async(cl, P_BLACKHOLE, NULL, cancel_cb, NULL, NULL) == 0);
    CHECK(krpc_loop_run(loop, &free_in_cb_done, 5000) == 0);
    CHECK_EQ(cancelled, 1);
    krpc_loop_run(loop, NULL, 50); /* the connection's close finishes */
    svc_free_drain(loop, svc);
    nheld = 0;
    krpc_loop_free(loop);
}

/* ---- a misbehaving server: duplicates, garbage, unknown XIDs ------------------------------------ */

struct raw_srv {
    struct krpc_loop *loop;
    int lfd;
    struct krpc_conn *conn;
    int closed;
    int calls;
};

static void put_reply_hdr(struct mb_chain *m, uint32_t xid)
{
    struct krpc_xdr_enc x;
    struct krpc_reply_hdr h;

    memset(&h, 0, sizeof h);
    h.xid = xid;
    h.reply_stat = KRPC_MSG_ACCEPTED;
    h.accept_stat = KRPC_SUCCESS;
    krpc_xdr_enc_init(&x, m);
    krpc_encode_reply_hdr(&x, &h);
}

static void raw_on_msg(struct krpc_conn *c, struct mb_chain *msg, void *arg)
{
    struct raw_srv *rs = arg;
    struct krpc_xdr_dec d;
    struct krpc_call_hdr h;
    struct mb_chain r;
    struct krpc_xdr_enc x;

    krpc_xdr_dec_init(&d, msg, 0, msg->len);
    if (krpc_decode_call_hdr(&d, &h) < 0) {
        mb_chain_free(msg);
        return;
    }
    mb_chain_free(msg);
    rs->calls++;
    switch (h.proc) {
    case 1: /* a stranger's reply first, then the answer twice */
        mb_chain_init(&r);
        put_reply_hdr(&r, h.xid ^ 0x5a5a5a5a);
        krpc_conn_send(c, &r);
        for (int i = 0; i < 2; i++) {
            mb_chain_init(&r);
            put_reply_hdr(&r, h.xid);
            krpc_xdr_enc_init(&x, &r);
            krpc_xdr_put_u32(&x, 1000 + (uint32_t)i);
            krpc_conn_send(c, &r);
        }
        break;
    case 2: /* an undecodable reply for a known XID */
        mb_chain_init(&r);
        krpc_xdr_enc_init(&x, &r);
        krpc_xdr_put_u32(&x, h.xid);
        krpc_xdr_put_u32(&x, KRPC_MSG_REPLY);
        krpc_xdr_put_u32(&x, 9); /* no such reply_stat */
        krpc_conn_send(c, &r);
        break;
    case 3: /* a two-byte message: not even an XID */
        mb_chain_init(&r);
        mb_chain_append_bytes(&r, "\1\2", 2);
        krpc_conn_send(c, &r);
        mb_chain_init(&r);
        put_reply_hdr(&r, h.xid);
        krpc_conn_send(c, &r);
        break;
    default:
        mb_chain_init(&r);
        put_reply_hdr(&r, h.xid);
        krpc_conn_send(c, &r);
        break;
    }
}

static void raw_on_close(struct krpc_conn *c, int err, void *arg)
{
    struct raw_srv *rs = arg;
    (void)c;
    (void)err;
    rs->conn = NULL;
    rs->closed = 1;
}

static const struct krpc_conn_ops raw_ops = {raw_on_msg, raw_on_close, NULL};

static void raw_accept(struct krpc_loop *loop, int fd, uint32_t events, void *arg)
{
    struct raw_srv *rs = arg;
    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    (void)loop;
    (void)events;
    if (cfd < 0)
        return;
    if (rs->conn || krpc_conn_new(rs->loop, cfd, NULL, &raw_ops, rs, &rs->conn) < 0)
        close(cfd);
}

static void test_misbehaving_server(void)
{
    struct krpc_loop *loop;
    struct raw_srv rs;
    struct krpc_clnt *cl;
    struct krpc_clnt_config cc;
    struct krpc_reply rep;
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;

    REQUIRE(krpc_loop_new(&loop) == 0);
    memset(&rs, 0, sizeof rs);
    rs.loop = loop;
    rs.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(rs.lfd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(rs.lfd, 4) == 0 &&
            getsockname(rs.lfd, (struct sockaddr *)&sa, &sl) == 0);
    REQUIRE(krpc_loop_add_fd(loop, rs.lfd, EPOLLIN, raw_accept, &rs) == 0);
    memset(&cc, 0, sizeof cc);
    memcpy(&cc.addr, &sa, sizeof sa);
    cc.addrlen = sizeof sa;
    cc.prog = PROG;
    cc.vers = VERS;
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);

    CHECK(krpc_call(cl, 1, NULL, &rep) == 0);
    CHECK_EQ(krpc_xdr_get_u32(&rep.res), 1000); /* the first answer wins; the duplicate is dropped */
    krpc_reply_free(&rep);
    CHECK(krpc_call(cl, 2, NULL, &rep) == -EBADMSG);
    CHECK(krpc_call(cl, 3, NULL, &rep) == 0); /* the 2-byte message was dropped */
    krpc_reply_free(&rep);
    CHECK(krpc_call(cl, 4, NULL, &rep) == 0); /* the connection was kept throughout */
    krpc_reply_free(&rep);
    CHECK_EQ(krpc_clnt_stats(cl)->reconnects, 0);
    CHECK_EQ(krpc_clnt_stats(cl)->replies, 3);
    CHECK_EQ(krpc_clnt_stats(cl)->failures, 1);
    CHECK_EQ(rs.calls, 4);
    krpc_clnt_free(cl);
    krpc_loop_run(loop, &rs.closed, 2000);
    CHECK(rs.closed);
    krpc_loop_del_fd(loop, rs.lfd);
    close(rs.lfd);
    krpc_loop_free(loop);
}

static void pool_report(const char *after)
{
    struct mb_pool_stats ps;
    mb_pool_get_stats(&ps);
    if (ps.pages_in_use || ps.stores_in_use || ps.links_in_use)
        fprintf(stderr, "  after %s: pages %llu stores %llu links %llu in use\n", after,
                (unsigned long long)ps.pages_in_use, (unsigned long long)ps.stores_in_use,
                (unsigned long long)ps.links_in_use);
}
#undef TEST_RUN
#define TEST_RUN(fn)                                                                     \
    do {                                                                                 \
        int before_ = test_failures;                                                     \
        fn();                                                                            \
        fprintf(stderr, "%s %s\n", test_failures == before_ ? "ok  " : "FAIL", #fn);     \
        pool_report(#fn);                                                                \
    } while (0)

int main(void)
{
    have_certs = tu_certs_create(&certs) == 0;
    TEST_RUN(test_many_outstanding);
    TEST_RUN(test_stats_snapshots);
    TEST_RUN(test_auth_sys_blocking);
    TEST_RUN(test_error_replies);
    TEST_RUN(test_timeout_retry_limit);
    TEST_RUN(test_connect_refused);
    TEST_RUN(test_tls_required_refused);
    TEST_RUN(test_tls_opportunistic_fallback);
    TEST_RUN(test_tls_ok);
    TEST_RUN(test_tls_rekey_reconnect);
    TEST_RUN(test_tls_server_limit);
    TEST_RUN(test_tls_context_once);
    TEST_RUN(test_free_outstanding);
    TEST_RUN(test_misbehaving_server);
    if (have_certs)
        tu_certs_destroy(&certs);
    CHECK_EQ(mb_pool_shutdown(), 0);
    return test_summary();
}
