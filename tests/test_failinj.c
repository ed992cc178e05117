/*
 * tests/test_failinj.c - allocation-failure injection over whole scenarios
 * (issue 9, "invariants that run").
 *
 * Each scenario runs once counting its allocations (pool objects, malloc &
 * co. in the library, OpenSSL), then again with the Nth allocation failing,
 for N = 1, 2, 3, ... of each kind in turn (pool objects, malloc & co.,
 * OpenSSL). The first `dense` values of N are walked one by one; past them
 * N steps by a stride chosen so that a kind takes about `budget` runs
 * (rpc_tls: 30 / 60, mirror: 10 / 25; RPCTLS_FAILINJ_RUNS overrides the
 * budget; the strides are printed). A kind's walk ends when a run no longer
 * reaches its Nth allocation (it then completed normally), and one run past
 * the count must succeed. Every run must end cleanly:
 *   - each API call returns 0 or a negative errno, no crash, no abort;
 *   - data that does come back is intact;
 *   - after teardown the pool is empty (mb_pool_shutdown() == 0);
 *   - no leak: run under ASan (scripts/test --asan -- -R failinj).
 * Scenarios: (a) rpc_tls: a TLS RPC client and server on one loop in this
 * process: probe, handshake, NULL and three echo calls of 1 KiB to 40 KB;
 * (b) mirror: nfs3_mirror_write of 200 KB to two in-process TLS servers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "failinj/failinj.h"
#include "rpctls/krpc_clnt.h"
#include "rpctls/krpc_svc.h"
#include "rpctls/nfs3_mirror.h"
#include "test.h"
#include "util/certs.h"
#include "util/nfsd.h"
#include "util/nfsrv.h"


static struct tu_certs certs;
static char g_base[256];

static int is_errno(int r)
{
    return r == 0 || (r < 0 && r > -4096);
}

/* ---- (a) TLS RPC exchange ---------------------------------------------------- */

#define PROG 0x40000777u
#define VERS 1

static int h_echo(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res, void *arg)
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
    [0] = {NULL, KRPC_PROC_IDEMPOTENT, "null"},
    [1] = {h_echo, KRPC_PROC_IDEMPOTENT, "echo"},
};
static const struct krpc_prog_desc prog = {PROG, VERS, 2, procs, NULL, 0};

static unsigned char pattern[40000 + 8]; /* sizes[i] bytes from pattern + i */

/* One run; returns the first error (0 when everything worked) and counts
 * protocol violations (non-errno returns, corrupted data) as failures. */
static int scenario_rpc(void)
{
    struct krpc_loop *loop = NULL;
    struct krpc_svc *svc = NULL;
    struct krpc_clnt *cl = NULL;
    struct krpc_svc_config sc;
    struct krpc_clnt_config cc;
    struct krpc_reply rep;
    int first = 0, r;
    static const size_t sizes[] = {1024, 17000, 40000};

#define NOTE(expr)                                                                 \
    do {                                                                           \
        r = (expr);                                                                \
        CHECK(is_errno(r));                                                        \
        if (r != 0 && first == 0)                                                  \
            first = r < 0 ? r : -EINVAL;                                           \
    } while (0)

    NOTE(krpc_loop_new(&loop));
    if (r != 0)
        return first;
    memset(&sc, 0, sizeof sc);
    krpc_parse_addr("127.0.0.1:0", &sc.addr, &sc.addrlen);
    sc.tls = KRPC_SVC_TLS_REQUIRED;
    sc.tlscfg.cert_file = certs.server_cert;
    sc.tlscfg.key_file = certs.server_key;
    sc.tlscfg.ca_file = certs.ca_cert;
    sc.tlscfg.verify_peer = 1;
    NOTE(krpc_svc_new(loop, &sc, &svc));
    if (r == 0)
        NOTE(krpc_svc_register(svc, &prog));
    if (r == 0) {
        memset(&cc, 0, sizeof cc);
        krpc_svc_addr(svc, &cc.addr, &cc.addrlen);
        cc.prog = PROG;
        cc.vers = VERS;
        cc.tls = KRPC_TLS_REQUIRED;
        cc.tlscfg.ca_file = certs.ca_cert;
        cc.tlscfg.cert_file = certs.client_cert;
        cc.tlscfg.key_file = certs.client_key;
        cc.tlscfg.server_name = "127.0.0.1";
        cc.timeout_ms = 300;
        cc.max_retries = 2;
        cc.connect_timeout_ms = 2000;
        cc.reconnect_delay_ms = 5;
        cc.max_reconnects = 2;
        NOTE(krpc_clnt_new(loop, &cc, &cl));
    }
    if (cl != NULL) {
        memset(&rep, 0, sizeof rep);
        NOTE(krpc_call(cl, 0, NULL, &rep));
        if (r == 0) {
            NOTE(krpc_reply_status(&rep.hdr, NULL, 0));
            krpc_reply_free(&rep);
        }
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            struct mb_chain a = MB_CHAIN_INIT, got = MB_CHAIN_INIT;
            struct krpc_xdr_enc x;

            krpc_xdr_enc_init(&x, &a);
            krpc_xdr_put_opaque(&x, pattern + i, sizes[i]);
            if ((r = krpc_xdr_enc_error(&x)) != 0) {
                NOTE(r);
                mb_chain_free(&a);
                continue;
            }
            memset(&rep, 0, sizeof rep);
            NOTE(krpc_call(cl, 1, &a, &rep));
            if (r != 0)
                continue;
            NOTE(krpc_reply_status(&rep.hdr, NULL, 0));
            if (r == 0) {
                NOTE(krpc_xdr_get_opaque_ref(&rep.res, 1 << 20, &got));
                if (r == 0) {
                    unsigned char *buf = malloc(sizes[i]);
                    /* The data that came back is what was sent. */
                    CHECK_EQ(got.len, sizes[i]);
                    if (buf != NULL && got.len == sizes[i]) {
                        mb_chain_copy_out(&got, 0, sizes[i], buf);
                        CHECK(memcmp(buf, pattern + i, sizes[i]) == 0);
                    }
                    free(buf);
                }
                mb_chain_free(&got);
            }
            krpc_reply_free(&rep);
        }
        krpc_clnt_free(cl);
    }
    if (svc != NULL) {
        krpc_svc_free(svc);
        krpc_loop_run(loop, NULL, 20);
    }
    krpc_loop_free(loop);
#undef NOTE
    return first;
}

/* ---- (b) mirrored write ------------------------------------------------------- */

#define MIRROR_SIZE 200000
static char src_path[320];
static uint8_t src_sha[32];

static int scenario_mirror_prepare(void);

struct mirror_ctx {
    struct tu_nfsrv srv[2];
    char export[2][320];
    char state[320];
};
static struct mirror_ctx M;

static char last_err[1200]; /* the mirrors' errors in the last run, to explain a failure */

static int mirror_servers_start(void)
{
    for (int i = 0; i < 2; i++) {
        struct nfs3_srv_config scfg;

        memset(&scfg, 0, sizeof scfg);
        scfg.export_path = M.export[i];
        scfg.state_dir = M.state;
        nfs3_export_opts_default(&scfg.opts);
        scfg.opts.squash = NFS3_SQUASH_NONE;
        if (tu_nfsrv_start_tls(&M.srv[i], &scfg, certs.server_cert, certs.server_key, certs.ca_cert) != 0) {
            if (i == 1)
                tu_nfsrv_stop(&M.srv[0]);
            return -1;
        }
    }
    return 0;
}

static int scenario_mirror(void)
{
    struct nfs3_mirror_dest d[2];
    struct nfs3_mirror_result res[2];
    struct nfs3_mirror_config cfg;
    char path[2][400], label[2][440];
    uint8_t sha[32];
    int fd, r;

    memset(d, 0, sizeof d);
    for (int i = 0; i < 2; i++) {
        struct krpc_clnt_config *c = &d[i].rpc;
        char addr[32];

        snprintf(path[i], sizeof path[i], "%.320s/f", M.export[i]);
        snprintf(label[i], sizeof label[i], "nfs://127.0.0.1:%u%.400s", (unsigned)M.srv[i].port, path[i]);
        snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)M.srv[i].port);
        krpc_parse_addr(addr, &c->addr, &c->addrlen);
        c->tls = KRPC_TLS_REQUIRED;
        c->tlscfg.ca_file = certs.ca_cert;
        c->tlscfg.cert_file = certs.client_cert;
        c->tlscfg.key_file = certs.client_key;
        c->tlscfg.server_name = "127.0.0.1";
        c->cred = tu_nfs_cred_sys(getuid(), getgid());
        /* Short timeouts keep the runs where a server drops a reply quick;
         * enough retries that a loaded machine (ctest -j2 next to the FUSE
         * tests) does not turn a slow COMMIT into a failure. */
        c->timeout_ms = 300;
        c->max_retries = 8;
        c->connect_timeout_ms = 2000;
        c->reconnect_delay_ms = 5;
        c->max_reconnects = 8;
        c->name = label[i];
        d[i].label = label[i];
        d[i].path = path[i];
        d[i].ports.mount_port = M.srv[i].port;
    }
    memset(&cfg, 0, sizeof cfg);
    cfg.wsize = 64 * 1024;
    cfg.depth = 2;
    cfg.verify = 1;
    memset(res, 0, sizeof res);
    fd = open(src_path, O_RDONLY);
    if (fd < 0)
        return -errno;
    r = nfs3_mirror_write(fd, MIRROR_SIZE, d, 2, &cfg, res, sha);
    close(fd);
    CHECK(is_errno(r));
    last_err[0] = '\0';
    for (int i = 0; i < 2; i++)
        if (res[i].status != 0)
            snprintf(last_err + strlen(last_err), sizeof last_err - strlen(last_err), "%s (%d); ", res[i].error,
                     res[i].status);
    for (int i = 0; i < 2; i++) {
        /* 0, a negative errno, or an NFS status from a server (whose own
         * allocation failed): NFS3ERR_IO, NFS3ERR_SERVERFAULT ... */
        CHECK(is_errno(res[i].status) || (res[i].status > 0 && res[i].status <= NFS3ERR_JUKEBOX));
        if (r == 0 && res[i].status == 0) {
            /* A mirror reported good has the source's bytes. */
            CHECK(res[i].verified);
            CHECK(memcmp(res[i].sha256, src_sha, 32) == 0);
        }
    }
    if (r == 0)
        CHECK(memcmp(sha, src_sha, 32) == 0);
    return r;
}

static int scenario_mirror_run(void)
{
    return scenario_mirror();
}

/* ---- the walk ---------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *const kind_name[FI_NKINDS] = {"pool", "malloc", "OpenSSL"};
static int last_r; /* the last run's result */

/* One armed run: fail the nth allocation of kind k. Returns 1 when the nth
 * allocation happened (the walk goes on), 0 when the scenario made fewer. */
static int one_run(const char *name, int (*run)(void), int (*setup)(void), void (*teardown)(void), int k, long n)
{
    struct fi_report rep;
    int before = test_failures, r;

    if (getenv("RPCTLS_FAILINJ_VERBOSE"))
        fprintf(stderr, "%s: failing %s allocation N = %ld\n", name, kind_name[k], n);
    if (setup && setup() != 0) {
        CHECK(!"setup failed");
        return 0;
    }
    failinj_arm_kind((enum fi_kind)k, n);
    r = last_r = run();
    failinj_disarm(&rep);
    if (teardown)
        teardown();
    CHECK(is_errno(r));
    CHECK_EQ(mb_pool_shutdown(), 0); /* every page, store and link came back */
    if (test_failures != before)
        fprintf(stderr, "%s: failing %s allocation N = %ld (%s): see above\n", name, kind_name[k], n,
                rep.fired ? "it failed" : "not reached");
    if (!rep.fired && r != 0)
        fprintf(stderr, "%s: nothing injected, yet it failed (%d): %s\n", name, r, last_err);
    return rep.fired;
}

/* setup/teardown run unarmed around each run (may be NULL). For each kind
 * of allocation, N walks 1..dense one by one, then by a stride that keeps
 * the kind's runs near budget, until a run no longer reaches its Nth
 * allocation of that kind; a last run with N past the count checks that
 * the scenario then succeeds. */
static void walk(const char *name, int (*run)(void), int (*setup)(void), void (*teardown)(void), long dense,
                 long budget)
{
    struct fi_report rep;
    double t0 = now_s();
    int r;

    if (getenv("RPCTLS_FAILINJ_ONLY")) { /* "KIND:N" (0 pool, 1 malloc, 2 OpenSSL): one run, for debugging */
        int k = atoi(getenv("RPCTLS_FAILINJ_ONLY"));
        const char *c = strchr(getenv("RPCTLS_FAILINJ_ONLY"), ':');
        if (setup)
            REQUIRE(setup() == 0);
        failinj_arm(0);
        (void)run();
        failinj_disarm(&rep);
        if (teardown)
            teardown();
        one_run(name, run, setup, teardown, k, c ? atol(c + 1) : 1);
        return;
    }
    if (getenv("RPCTLS_FAILINJ_RUNS"))
        budget = atol(getenv("RPCTLS_FAILINJ_RUNS"));
    if (budget <= dense)
        budget = dense + 1;
    /* Counting run: also warms up OpenSSL's global state. */
    if (setup)
        REQUIRE(setup() == 0);
    failinj_arm(0);
    r = run();
    failinj_disarm(&rep);
    if (teardown)
        teardown();
    CHECK_EQ(r, 0);
    CHECK_EQ(mb_pool_shutdown(), 0);
    fprintf(stderr, "%s: %ld pool, %ld malloc, %ld OpenSSL allocations\n", name, rep.count[FI_POOL],
            rep.count[FI_MALLOC], rep.count[FI_OPENSSL]);
    for (int k = 0; k < FI_NKINDS; k++) {
        long total = rep.count[k], stride, n, runs = 0;
        double t1 = now_s();

        /* Every kind is hooked (a wrap that stops working shows here). */
        CHECK(total > 0);
        stride = total > dense ? (total - dense) / (budget - dense) + 1 : 1;
        for (n = 1; runs <= 4 * budget; n += n < dense ? 1 : stride) {
            runs++;
            if (!one_run(name, run, setup, teardown, k, n)) {
                CHECK_EQ(last_r, 0); /* no allocation failed: it succeeded */
                break;
            }
        }
        CHECK(runs <= 4 * budget);
        /* Past the count (with room: with threads the count varies a
         * little): the scenario runs to the end and succeeds. */
        if (n <= total) {
            runs++;
            CHECK(!one_run(name, run, setup, teardown, k, 2 * total + 100));
            CHECK_EQ(last_r, 0);
        }
        fprintf(stderr, "%s: %s: %ld runs, N = 1..%ld then stride %ld, up to %ld; %.1f s\n", name, kind_name[k],
                runs, dense, stride, n, now_s() - t1);
    }
    fprintf(stderr, "%s: %.1f s\n", name, now_s() - t0);
}

static void test_rpc_tls(void)
{
    walk("rpc_tls", scenario_rpc, NULL, NULL, 30, 60);
}

static void mirror_teardown(void)
{
    tu_nfsrv_stop(&M.srv[0]);
    tu_nfsrv_stop(&M.srv[1]);
}

static void test_mirror(void)
{
    REQUIRE(scenario_mirror_prepare() == 0);
    walk("mirror", scenario_mirror_run, mirror_servers_start, mirror_teardown, 10, 25);
}

static int scenario_mirror_prepare(void)
{
    FILE *f;

    snprintf(M.state, sizeof M.state, "%s/state", g_base);
    for (int i = 0; i < 2; i++) {
        snprintf(M.export[i], sizeof M.export[i], "%s/export%d", g_base, i);
        if (mkdir(M.export[i], 0755) != 0)
            return -1;
    }
    snprintf(src_path, sizeof src_path, "%s/src", g_base);
    if ((f = fopen(src_path, "w")) == NULL)
        return -1;
    for (size_t i = 0; i < MIRROR_SIZE; i++)
        fputc((int)((i * 7919) >> 3 & 0xff), f);
    fclose(f);
    return tu_sha256_file(src_path, src_sha);
}

int main(void)
{
    if (failinj_init() != 0) {
        fprintf(stderr, "failinj: CRYPTO_set_mem_functions refused (OpenSSL already allocated)\n");
        return 1;
    }
    for (size_t i = 0; i < sizeof pattern; i++)
        pattern[i] = (unsigned char)(i * 131 + 7);
    snprintf(g_base, sizeof g_base, "/tmp/rpctls-failinj-XXXXXX");
    if (mkdtemp(g_base) == NULL || tu_certs_create(&certs) != 0) {
        fprintf(stderr, "failinj: cannot create the test directory or certificates\n");
        return 1;
    }
    TEST_RUN(test_rpc_tls);
    TEST_RUN(test_mirror);
    tu_certs_destroy(&certs);
    {
        char cmd[PATH_MAX + 16];
        snprintf(cmd, sizeof cmd, "rm -rf %s", g_base);
        if (system(cmd) != 0)
            fprintf(stderr, "failinj: could not remove %s\n", g_base);
    }
    return test_summary();
}
