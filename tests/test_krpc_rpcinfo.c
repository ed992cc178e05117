/*
 * test_krpc_rpcinfo.c - interop with libtirpc in plain TCP: the stock
 * `rpcinfo -n PORT -t 127.0.0.1 PROG VERS` (Debian package rpcbind) pings
 * our server's NULL procedure. A wrong version shows the PROG_MISMATCH
 * range; without a version rpcinfo walks that range.
 *
 * rpcinfo is required: without it the test FAILS (CI installs rpcbind).
 */
#include <sys/un.h>
#include <sys/wait.h>

#include "krpc_svc_util.h"
#include "test.h"

static const char *find_rpcinfo(void)
{
    static const char *const paths[] = {"/usr/sbin/rpcinfo", "/usr/bin/rpcinfo", "/sbin/rpcinfo", "/bin/rpcinfo"};
    const char *env = getenv("RPCTLS_RPCINFO");

    if (env != NULL && access(env, X_OK) == 0)
        return env;
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        if (access(paths[i], X_OK) == 0)
            return paths[i];
    return NULL;
}

/* Runs rpcinfo with args; its stdout+stderr into out. Returns the exit status or -1. */
static int run_rpcinfo(const char *rpcinfo, const char *args, char *out, size_t outlen)
{
    char cmd[512];
    FILE *p;
    size_t n = 0;
    int st;

    snprintf(cmd, sizeof(cmd), "timeout 20 %s %s 2>&1", rpcinfo, args);
    p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    while (n + 1 < outlen) {
        size_t k = fread(out + n, 1, outlen - 1 - n, p);
        if (k == 0)
            break;
        n += k;
    }
    out[n] = '\0';
    st = pclose(p);
    fprintf(stderr, "$ rpcinfo %s\n%s", args, out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- where rpcinfo learns our port ------------------------------------------
 *
 * rpcbind 1.2.6 (Debian 12) ignores -n: its ip_ping always asks the
 * portmapper on HOST:111 for the program's port (rpcb_getaddr), then calls
 * that port. So the test needs something answering there:
 *   - nothing listens on 127.0.0.1:111 (a container): we serve a minimal
 *     portmapper ourselves (our own server, program 100000 versions 2-4,
 *     GETPORT / GETADDR) that points rpcinfo at the test server;
 *   - a real rpcbind listens (systemd enabled rpcbind.socket): we register
 *     the test programs with it over its local socket (RPCBPROC_SET, as
 *     root) and unset them afterwards.
 * -n PORT is passed all the same: older rpcinfo versions (FreeBSD's, and
 * rpcbind before the rewrite) use it directly. */

#define PMAP_PROG 100000u
#define PMAP_PORT 111

static uint16_t fake_target_port;

/* PMAPPROC_GETPORT (v2): pmap {prog, vers, prot, port} -> port, 0 when unknown. */
static int pmap_getport(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res, void *arg)
{
    uint32_t prog = krpc_xdr_get_u32(args);
    if (krpc_xdr_dec_error(args) != 0)
        return KRPC_GARBAGE_ARGS;
    krpc_xdr_put_u32(res, prog == TP_PROG || prog == TP_PROG + 1 ? fake_target_port : 0);
    return KRPC_SUCCESS;
}

/* RPCBPROC_GETADDR (v3, v4): rpcb {prog, vers, netid, addr, owner} -> uaddr, "" when unknown. */
static int rpcb_getaddr_proc(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res,
                             void *arg)
{
    uint32_t prog = krpc_xdr_get_u32(args);
    char uaddr[64] = "";
    if (krpc_xdr_dec_error(args) != 0)
        return KRPC_GARBAGE_ARGS;
    if (prog == TP_PROG || prog == TP_PROG + 1)
        snprintf(uaddr, sizeof(uaddr), "127.0.0.1.%u.%u", fake_target_port >> 8, fake_target_port & 0xff);
    krpc_xdr_put_string(res, uaddr);
    return KRPC_SUCCESS;
}

static const struct krpc_proc_desc pmap_procs[4] = {
    [3] = {pmap_getport, KRPC_PROC_IDEMPOTENT, "PMAPPROC_GETPORT"},
};
static const struct krpc_proc_desc rpcb_procs[4] = {
    [3] = {rpcb_getaddr_proc, KRPC_PROC_IDEMPOTENT, "RPCBPROC_GETADDR"},
};

/* RPCBPROC_SET / UNSET (v3) of prog/vers on tcp at port, through rpcbind's
 * local socket. Returns 1 when rpcbind said TRUE. */
static int rpcbind_set(int set, uint32_t prog, uint32_t vers, uint16_t port)
{
    static const char *const socks[] = {"/run/rpcbind.sock", "/var/run/rpcbind.sock"};
    static uint32_t xid = 0x52000000;
    struct sockaddr_un sun;
    struct tc t = {-1, NULL, NULL};
    struct krpc_reply_hdr h;
    unsigned char buf[512];
    struct mb_chain c = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    char uaddr[64];
    uint32_t ok = 0;
    size_t n, rl = 0;

    for (size_t i = 0; i < 2 && t.fd < 0; i++) {
        memset(&sun, 0, sizeof(sun));
        sun.sun_family = AF_UNIX;
        snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", socks[i]);
        t.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (t.fd >= 0 && connect(t.fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
            close(t.fd);
            t.fd = -1;
        }
    }
    if (t.fd < 0) {
        fprintf(stderr, "cannot reach rpcbind's local socket: %s\n", strerror(errno));
        return 0;
    }
    tu_set_timeouts(t.fd, 5000);
    snprintf(uaddr, sizeof(uaddr), "127.0.0.1.%u.%u", port >> 8, port & 0xff);
    krpc_xdr_enc_init(&x, &c);
    krpc_xdr_put_u32(&x, prog);
    krpc_xdr_put_u32(&x, vers);
    krpc_xdr_put_string(&x, "tcp");
    krpc_xdr_put_string(&x, set ? uaddr : "");
    krpc_xdr_put_string(&x, "superuser");
    n = c.len;
    if (krpc_xdr_enc_error(&x) == 0 && n <= sizeof(buf))
        mb_chain_copy_out(&c, 0, n, buf);
    mb_chain_free(&c);
    if (tc_call(&t, ++xid, PMAP_PROG, 3, set ? 1 : 2, KRPC_AUTH_NONE, buf, n, &h, &ok, 4, &rl) != 0 ||
        !rh_accepted(&h, xid, KRPC_SUCCESS) || rl != 4) {
        fprintf(stderr, "rpcbind %s of %u/%u failed\n", set ? "SET" : "UNSET", prog, vers);
        ok = 0;
    }
    tc_close(&t);
    return ntohl(ok) == 1;
}

static void test_rpcinfo(void)
{
    const char *rpcinfo = find_rpcinfo();
    struct krpc_svc_config cfg, pcfg;
    struct test_server ts;
    struct krpc_svc *pmap = NULL;
    struct krpc_svc_stats st;
    char args[128], out[4096], want[128];
    int ret, real_rpcbind = 0;

    if (rpcinfo == NULL) {
        fprintf(stderr, "FAIL: rpcinfo (libtirpc) not found in /usr/sbin or /usr/bin: "
                        "install the Debian package 'rpcbind' (apt-get install rpcbind)\n");
        CHECK(rpcinfo != NULL);
        return;
    }
    memset(&cfg, 0, sizeof(cfg));
    REQUIRE(ts_start(&ts, &cfg) == 0);
    fake_target_port = ts.port;

    /* Our portmapper on 127.0.0.1:111, on the test server's loop. */
    ts_pause(&ts);
    memset(&pcfg, 0, sizeof(pcfg));
    REQUIRE(krpc_parse_addr("127.0.0.1:111", &pcfg.addr, &pcfg.addrlen) == 0);
    ret = krpc_svc_new(ts.loop, &pcfg, &pmap);
    if (ret == 0) {
        struct krpc_prog_desc p2 = {PMAP_PROG, 2, 4, pmap_procs, NULL, 0};
        struct krpc_prog_desc p3 = {PMAP_PROG, 3, 4, rpcb_procs, NULL, 0};
        struct krpc_prog_desc p4 = {PMAP_PROG, 4, 4, rpcb_procs, NULL, 0};
        CHECK(krpc_svc_register(pmap, &p2) == 0 && krpc_svc_register(pmap, &p3) == 0 &&
              krpc_svc_register(pmap, &p4) == 0);
        fprintf(stderr, "serving a minimal portmapper on 127.0.0.1:111 for rpcinfo\n");
    } else if (ret == -EADDRINUSE) {
        real_rpcbind = 1;
        fprintf(stderr, "rpcbind runs on port 111: registering the test programs with it\n");
        CHECK(rpcbind_set(1, TP_PROG, TP_VERS_LO, ts.port));
        CHECK(rpcbind_set(1, TP_PROG, TP_VERS_HI, ts.port));
        CHECK(rpcbind_set(1, TP_PROG + 1, 1, ts.port));
    } else {
        fprintf(stderr, "FAIL: cannot listen on 127.0.0.1:111 (%s) and no rpcbind runs there; rpcinfo "
                        "needs a portmapper: run as root, or start rpcbind\n", strerror(-ret));
        CHECK(ret == 0);
        ts_stop(&ts);
        return;
    }
    ts_resume(&ts);

    /* Both registered versions answer. */
    for (uint32_t v = TP_VERS_LO; v <= TP_VERS_HI; v++) {
        snprintf(args, sizeof(args), "-n %u -t 127.0.0.1 %u %u", ts.port, TP_PROG, v);
        ret = run_rpcinfo(rpcinfo, args, out, sizeof(out));
        snprintf(want, sizeof(want), "program %u version %u ready and waiting", TP_PROG, v);
        CHECK_EQ(ret, 0);
        CHECK(strstr(out, want) != NULL);
    }

    /* A version we do not have: PROG_MISMATCH with our range. */
    snprintf(args, sizeof(args), "-n %u -t 127.0.0.1 %u 7", ts.port, TP_PROG);
    ret = run_rpcinfo(rpcinfo, args, out, sizeof(out));
    CHECK(ret != 0);
    CHECK(strstr(out, "low version = 2") != NULL);
    CHECK(strstr(out, "high version = 3") != NULL);
    snprintf(want, sizeof(want), "program %u version 7 is not available", TP_PROG);
    CHECK(strstr(out, want) != NULL);

    /* No version: rpcinfo learns the range from PROG_MISMATCH and pings each. */
    snprintf(args, sizeof(args), "-n %u -t 127.0.0.1 %u", ts.port, TP_PROG);
    ret = run_rpcinfo(rpcinfo, args, out, sizeof(out));
    CHECK_EQ(ret, 0);
    snprintf(want, sizeof(want), "program %u version 2 ready and waiting", TP_PROG);
    CHECK(strstr(out, want) != NULL);
    snprintf(want, sizeof(want), "program %u version 3 ready and waiting", TP_PROG);
    CHECK(strstr(out, want) != NULL);

    /* A program the portmapper knows but our server does not serve. */
    snprintf(args, sizeof(args), "-n %u -t 127.0.0.1 %u 1", ts.port, TP_PROG + 1);
    ret = run_rpcinfo(rpcinfo, args, out, sizeof(out));
    CHECK(ret != 0);
    CHECK(strstr(out, "Program unavailable") != NULL);

    CHECK(tc_ping(ts.port));
    st = ts_stats(&ts);
    CHECK(st.prog_mismatch >= 2);
    CHECK_EQ(st.prog_unavail, 1);
    CHECK_EQ(st.closed_malformed, 0);
    CHECK_EQ(st.garbage_args, 0);

    ts_pause(&ts);
    if (real_rpcbind) {
        CHECK(rpcbind_set(0, TP_PROG, TP_VERS_LO, 0));
        CHECK(rpcbind_set(0, TP_PROG, TP_VERS_HI, 0));
        CHECK(rpcbind_set(0, TP_PROG + 1, 1, 0));
    }
    krpc_svc_free(pmap);
    ts_stop(&ts);
}

int main(void)
{
    TEST_RUN(test_rpcinfo);
    CHECK_EQ(mb_pool_shutdown(), 0);
    return test_summary();
}
