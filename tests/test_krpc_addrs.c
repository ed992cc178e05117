/*
 * tests/test_krpc_addrs.c - finding a server: the RPC client's alternate
 * addresses (the first refuses, the next one answers; every address named
 * in the error when all refuse), and the portmapper client
 * (krpc_pmap_getport) against hand-made portmappers on loopback: portmap v2
 * GETPORT over IPv4, rpcbind v4 GETADDR over IPv6, the fall back to v3,
 * "not registered", no portmapper at all; universal address parsing.
 */
#include "krpc_svc_util.h"
#include "rpctls/krpc_clnt.h"
#include "rpctls/krpc_pmap.h"
#include "test.h"

/* A TCP port on 127.0.0.1 that refuses connections: bound, not listening.
 * Keeping the socket open keeps anyone else from listening there. */
static int refusing_port(uint16_t *port)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

static void v4addr(struct sockaddr_storage *ss, socklen_t *len, uint16_t port)
{
    char s[32];
    snprintf(s, sizeof s, "127.0.0.1:%u", port);
    krpc_parse_addr(s, ss, len);
}

/* ---- alternate addresses ------------------------------------------------------ */

static void test_alt_addr_after_refusal(void)
{
    struct krpc_svc_config sc;
    struct test_server ts;
    struct krpc_clnt_config cc;
    struct krpc_loop *loop;
    struct krpc_clnt *cl;
    struct krpc_reply rep;
    struct mb_chain args = MB_CHAIN_INIT;
    uint16_t dead;
    int dfd = refusing_port(&dead);

    REQUIRE(dfd >= 0);
    memset(&sc, 0, sizeof sc);
    REQUIRE(ts_start(&ts, &sc) == 0);
    REQUIRE(krpc_loop_new(&loop) == 0);
    memset(&cc, 0, sizeof cc);
    v4addr(&cc.addr, &cc.addrlen, dead);
    v4addr(&cc.alt_addrs[0], &cc.alt_addrlens[0], ts.port);
    cc.nalt_addrs = 1;
    cc.prog = TP_PROG;
    cc.vers = TP_VERS_LO;
    cc.reconnect_delay_ms = 10;
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    CHECK_EQ(krpc_call(cl, TP_NULL, &args, &rep), 0);
    CHECK_EQ(krpc_reply_status(&rep.hdr, NULL, 0), 0);
    krpc_reply_free(&rep);
    CHECK_EQ(krpc_clnt_stats(cl)->reconnects, 1); /* one refusal, then the second address */
    /* The second call stays on the address that answers. */
    CHECK_EQ(krpc_call(cl, TP_NULL, &args, &rep), 0);
    krpc_reply_free(&rep);
    CHECK_EQ(krpc_clnt_stats(cl)->reconnects, 1);
    krpc_clnt_free(cl);
    krpc_loop_free(loop);
    ts_stop(&ts);
    close(dfd);
}

static void test_all_addrs_refuse(void)
{
    struct krpc_clnt_config cc;
    struct krpc_loop *loop;
    struct krpc_clnt *cl;
    struct krpc_reply rep;
    struct mb_chain args = MB_CHAIN_INIT;
    uint16_t p1, p2;
    int f1 = refusing_port(&p1), f2 = refusing_port(&p2);
    char want[160];

    REQUIRE(f1 >= 0 && f2 >= 0);
    REQUIRE(krpc_loop_new(&loop) == 0);
    memset(&cc, 0, sizeof cc);
    v4addr(&cc.addr, &cc.addrlen, p1);
    v4addr(&cc.alt_addrs[0], &cc.alt_addrlens[0], p2);
    cc.nalt_addrs = 1;
    cc.prog = TP_PROG;
    cc.vers = TP_VERS_LO;
    cc.reconnect_delay_ms = 10;
    cc.max_reconnects = 3; /* p1, p2, p1 */
    cc.name = "server.example";
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    CHECK_EQ(krpc_call(cl, TP_NULL, &args, &rep), -ECONNREFUSED);
    snprintf(want, sizeof want, "connection to server.example (127.0.0.1:%u) failed: Connection refused", p1);
    CHECK(strcmp(krpc_clnt_last_error(cl), want) == 0);
    if (strcmp(krpc_clnt_last_error(cl), want) != 0)
        fprintf(stderr, "got \"%s\"\nwant \"%s\"\n", krpc_clnt_last_error(cl), want);
    CHECK_EQ(krpc_clnt_stats(cl)->reconnects, 2);
    /* Next call: the round robin goes on with p2. */
    CHECK_EQ(krpc_call(cl, TP_NULL, &args, &rep), -ECONNREFUSED);
    snprintf(want, sizeof want, "connection to server.example (127.0.0.1:%u) failed: Connection refused", p2);
    CHECK(strcmp(krpc_clnt_last_error(cl), want) == 0);
    krpc_clnt_free(cl);
    krpc_loop_free(loop);
    close(f1);
    close(f2);
}

/* ---- hand-made portmappers ---------------------------------------------------- */

#define MNT_PORT 20048

/* PMAPPROC_GETPORT: 100005 v3 tcp is at MNT_PORT; nothing else is known. */
static int pm_getport(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res, void *arg)
{
    uint32_t prog = krpc_xdr_get_u32(args), vers = krpc_xdr_get_u32(args), prot = krpc_xdr_get_u32(args);

    (void)req;
    (void)arg;
    krpc_xdr_get_u32(args);
    if (krpc_xdr_dec_error(args))
        return KRPC_GARBAGE_ARGS;
    krpc_xdr_put_u32(res, prog == 100005 && vers == 3 && prot == KRPC_IPPROTO_TCP ? MNT_PORT : 0);
    return KRPC_SUCCESS;
}

/* RPCBPROC_GETADDR: 100005 v3 tcp6 at ::1.78.80 (20048); else "". */
static int pm_getaddr(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res, void *arg)
{
    char netid[32], a[64], owner[64];
    uint32_t prog = krpc_xdr_get_u32(args), vers = krpc_xdr_get_u32(args);

    (void)req;
    (void)arg;
    if (krpc_xdr_get_string(args, netid, sizeof netid) < 0 || krpc_xdr_get_string(args, a, sizeof a) < 0 ||
        krpc_xdr_get_string(args, owner, sizeof owner) < 0 || krpc_xdr_dec_error(args))
        return KRPC_GARBAGE_ARGS;
    krpc_xdr_put_string(res, prog == 100005 && vers == 3 && strcmp(netid, "tcp6") == 0 ? "::1.78.80" : "");
    return KRPC_SUCCESS;
}

static const struct krpc_proc_desc pm_procs[] = {
    {NULL, KRPC_PROC_IDEMPOTENT, "NULL"},
    {NULL, 0, "SET"},
    {NULL, 0, "UNSET"},
    {pm_getport, KRPC_PROC_IDEMPOTENT, "GETPORT"},
};
static const struct krpc_proc_desc rb_procs[] = {
    {NULL, KRPC_PROC_IDEMPOTENT, "NULL"},
    {NULL, 0, "SET"},
    {NULL, 0, "UNSET"},
    {pm_getaddr, KRPC_PROC_IDEMPOTENT, "GETADDR"},
};

/* A server on addr ("127.0.0.1:0", "[::1]:0") that speaks the given
 * portmapper versions (2, 3, 4). */
static int pm_start(struct test_server *ts, const char *addr, int v2, int v3, int v4)
{
    struct krpc_svc_config sc;
    struct krpc_prog_desc p;

    memset(&sc, 0, sizeof sc);
    if (krpc_parse_addr(addr, &sc.addr, &sc.addrlen) < 0 || ts_start(ts, &sc) < 0)
        return -1;
    ts_pause(ts);
    memset(&p, 0, sizeof p);
    p.prog = KRPC_PMAP_PROG;
    p.nprocs = 4;
    if (v2) {
        p.vers = 2;
        p.procs = pm_procs;
        krpc_svc_register(ts->svc, &p);
    }
    p.procs = rb_procs;
    if (v3) {
        p.vers = 3;
        krpc_svc_register(ts->svc, &p);
    }
    if (v4) {
        p.vers = 4;
        krpc_svc_register(ts->svc, &p);
    }
    ts_resume(ts);
    return 0;
}

static void test_pmap_v2(void)
{
    struct test_server ts;
    struct sockaddr_storage ss;
    socklen_t len;
    uint16_t port = 0;
    char err[256], want[256];

    REQUIRE(pm_start(&ts, "127.0.0.1:0", 1, 0, 0) == 0);
    v4addr(&ss, &len, ts.port);
    CHECK_EQ(krpc_pmap_getport((struct sockaddr *)&ss, len, 100005, 3, 2000, &port, err, sizeof err), 0);
    CHECK_EQ(port, MNT_PORT);
    snprintf(want, sizeof want, "portmapper 127.0.0.1:%u: 100005 v3 tcp is at port 20048", ts.port);
    CHECK(strcmp(err, want) == 0);
    CHECK_EQ(krpc_pmap_getport((struct sockaddr *)&ss, len, 100003, 3, 2000, &port, err, sizeof err), -ENOENT);
    snprintf(want, sizeof want, "portmapper 127.0.0.1:%u: 100003 v3 tcp: not registered", ts.port);
    CHECK(strcmp(err, want) == 0);
    if (strcmp(err, want) != 0)
        fprintf(stderr, "got \"%s\"\n", err);
    ts_stop(&ts);
}

static void test_pmap_v6(void)
{
    struct test_server ts;
    struct sockaddr_storage ss;
    socklen_t len;
    uint16_t port = 0;
    char err[256], a[64], want[256];

    /* rpcbind v4 */
    if (pm_start(&ts, "[::1]:0", 0, 1, 1) < 0) {
        fprintf(stderr, "no IPv6 loopback: skipping the IPv6 portmapper cases\n");
        return;
    }
    snprintf(a, sizeof a, "[::1]:%u", ts.port);
    REQUIRE(krpc_parse_addr(a, &ss, &len) == 0);
    CHECK_EQ(krpc_pmap_getport((struct sockaddr *)&ss, len, 100005, 3, 2000, &port, err, sizeof err), 0);
    CHECK_EQ(port, MNT_PORT);
    CHECK_EQ(krpc_pmap_getport((struct sockaddr *)&ss, len, 100003, 3, 2000, &port, err, sizeof err), -ENOENT);
    snprintf(want, sizeof want, "portmapper [::1]:%u: 100003 v3 tcp6: not registered", ts.port);
    CHECK(strcmp(err, want) == 0);
    ts_stop(&ts);

    /* rpcbind v3 only: v4 answers PROG_MISMATCH, the client asks v3 */
    REQUIRE(pm_start(&ts, "[::1]:0", 0, 1, 0) == 0);
    snprintf(a, sizeof a, "[::1]:%u", ts.port);
    REQUIRE(krpc_parse_addr(a, &ss, &len) == 0);
    port = 0;
    CHECK_EQ(krpc_pmap_getport((struct sockaddr *)&ss, len, 100005, 3, 2000, &port, err, sizeof err), 0);
    CHECK_EQ(port, MNT_PORT);
    ts_stop(&ts);
}

static void test_pmap_absent(void)
{
    struct sockaddr_storage ss;
    socklen_t len;
    uint16_t dead, port = 0;
    int fd = refusing_port(&dead);
    char err[256], want[256];

    REQUIRE(fd >= 0);
    v4addr(&ss, &len, dead);
    CHECK_EQ(krpc_pmap_getport((struct sockaddr *)&ss, len, 100005, 3, 2000, &port, err, sizeof err),
             -ECONNREFUSED);
    snprintf(want, sizeof want, "portmapper 127.0.0.1:%u: 100005 v3 tcp: Connection refused", dead);
    CHECK(strcmp(err, want) == 0);
    if (strcmp(err, want) != 0)
        fprintf(stderr, "got \"%s\"\n", err);
    close(fd);
}

static void test_uaddr(void)
{
    struct sockaddr_storage ss;
    socklen_t len;
    uint16_t port;
    char buf[80];

    CHECK_EQ(krpc_uaddr_parse("127.0.0.1.0.111", &ss, &len, &port), 0);
    CHECK_EQ(port, 111);
    CHECK(strcmp(krpc_format_addr((struct sockaddr *)&ss, buf, sizeof buf), "127.0.0.1:111") == 0);
    CHECK_EQ(krpc_uaddr_parse("::1.8.1", &ss, &len, &port), 0);
    CHECK_EQ(port, 2049);
    CHECK(strcmp(krpc_format_addr((struct sockaddr *)&ss, buf, sizeof buf), "[::1]:2049") == 0);
    CHECK_EQ(krpc_uaddr_parse("fe80::1:2.255.255", &ss, &len, &port), 0);
    CHECK_EQ(port, 65535);
    CHECK_EQ(krpc_uaddr_parse("::.0.0", NULL, NULL, &port), 0);
    CHECK_EQ(krpc_uaddr_parse("", NULL, NULL, &port), -EINVAL);
    CHECK_EQ(krpc_uaddr_parse("127.0.0.1", NULL, NULL, &port), -EINVAL); /* 127.0 is no address */
    CHECK_EQ(krpc_uaddr_parse("127.0.0.1.256.1", NULL, NULL, &port), -EINVAL);
    CHECK_EQ(krpc_uaddr_parse("127.0.0.1.1.x", NULL, NULL, &port), -EINVAL);
    CHECK_EQ(krpc_uaddr_parse("127.0.0.1.1.", NULL, NULL, &port), -EINVAL);
    CHECK_EQ(krpc_uaddr_parse(".1.1", NULL, NULL, &port), -EINVAL);
    CHECK_EQ(krpc_uaddr_parse("1.1", NULL, NULL, &port), -EINVAL);
    CHECK_EQ(krpc_uaddr_parse("host.example.1.1", NULL, NULL, &port), -EINVAL);
}

int main(void)
{
    TEST_RUN(test_uaddr);
    TEST_RUN(test_alt_addr_after_refusal);
    TEST_RUN(test_all_addrs_refuse);
    TEST_RUN(test_pmap_v2);
    TEST_RUN(test_pmap_v6);
    TEST_RUN(test_pmap_absent);
    return test_summary();
}
