/*
 * tests/test_nfs3_faults.c - the mirrored writer under faults, two
 * rpctls-nfsd over RPC-with-TLS:
 *   - connection resets at random points (seeded; RPCTLS_TEST_SEED to
 *     replay) in both directions, through a loopback proxy per mirror;
 *   - replies stalled past the RPC timeout (retransmissions);
 *   - a server killed (SIGKILL) mid-copy and restarted on the same port and
 *     state directory: its write verifier changes, the COMMIT finds the
 *     uncommitted ranges lost and they are written again;
 *   - a server killed mid-copy that stays down: that mirror fails, named,
 *     within the configured retry budget; the other mirror completes.
 * Every copy that succeeds has byte-identical mirrors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "rpctls/nfs3_clnt.h"
#include "rpctls/nfs3_mirror.h"
#include "test.h"
#include "util/certs.h"
#include "util/nfsd.h"
#include "util/proxy.h"

#define FILE_SIZE (24u << 20)

static struct tu_certs certs;
static struct tu_nfsd srv[2];
static char base[PATH_MAX];
static char src[PATH_MAX];
static uint8_t src_sha[32];
static uint64_t rng;

static uint64_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1Dull;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int identical(const struct tu_nfsd *s, const char *name)
{
    char path[PATH_MAX + 80];
    uint8_t sha[32];

    TU_FMT(path, "%s/%s", s->export_dir, name);
    return tu_sha256_file(path, sha) == 0 && memcmp(sha, src_sha, 32) == 0;
}

static void report(const char *what, const struct nfs3_mirror_result *r, int n)
{
    for (int i = 0; i < n; i++)
        fprintf(stderr,
                "  %s mirror %d: status %d %s; retransmits %" PRIu64 ", reconnects %" PRIu64
                ", commits %u, verifier changes %u, resent %" PRIu64 "\n",
                what, i, r[i].status, r[i].status ? r[i].error : "", r[i].rpc.retransmits, r[i].rpc.reconnects,
                r[i].commits, r[i].verifier_changes, r[i].bytes_resent);
}

/* A copy through proxies carrying rules[i] (n rules each). */
static void proxied_copy(const char *name, struct tu_px_rule rules[2][4], int nrules)
{
    struct tu_proxy *px[2];
    struct tu_dest dst[2];
    struct nfs3_mirror_dest md[2];
    struct nfs3_mirror_result res[2];
    struct nfs3_mirror_config cfg;
    int fd, rc;

    for (int i = 0; i < 2; i++) {
        struct sockaddr_storage ss;
        socklen_t len;
        char addr[32];
        snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)srv[i].port);
        REQUIRE(krpc_parse_addr(addr, &ss, &len) == 0);
        REQUIRE(tu_proxy_start((struct sockaddr *)&ss, len, &px[i]) == 0);
        for (int k = 0; k < nrules; k++)
            tu_proxy_add_rule(px[i], &rules[i][k]);
        tu_dest_init(&dst[i], &srv[i], tu_proxy_port(px[i]), name, &certs, KTLS_TX_AUTO);
        dst[i].d.rpc.timeout_ms = 400;
        dst[i].d.rpc.max_retries = 10;
        dst[i].d.rpc.reconnect_delay_ms = 20;
        dst[i].d.rpc.max_reconnects = 20;
        md[i] = dst[i].d;
    }
    memset(&cfg, 0, sizeof cfg);
    cfg.wsize = 512u << 10;
    cfg.depth = 6;
    cfg.verify = 1;
    fd = open(src, O_RDONLY);
    REQUIRE(fd >= 0);
    rc = nfs3_mirror_write(fd, FILE_SIZE, md, 2, &cfg, res, NULL);
    close(fd);
    for (int i = 0; i < 2; i++) {
        struct tu_proxy_stats ps;
        tu_proxy_get_stats(px[i], &ps);
        fprintf(stderr, "  %s proxy %d: %" PRIu64 " connections, %" PRIu64 " resets, %" PRIu64 " delays\n", name, i,
                ps.conns, ps.resets, ps.delays);
        tu_proxy_stop(px[i]);
    }
    report(name, res, 2);
    CHECK_EQ(rc, 0);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(res[i].status, 0);
        CHECK(identical(&srv[i], name));
    }
}

static void test_random_resets(void)
{
    for (int iter = 0; iter < 4; iter++) {
        struct tu_px_rule rules[2][4];
        char name[32];
        for (int i = 0; i < 2; i++) {
            for (int k = 0; k < 3; k++) {
                rules[i][k].conn = (int)(rnd() % 4);        /* NFS, MOUNT, reconnections */
                rules[i][k].dir = (enum tu_px_dir)(rnd() % 2);
                rules[i][k].action = TU_PX_RESET;
                /* Anywhere from the probe to past the end of the data. */
                rules[i][k].after = rules[i][k].dir == TU_PX_C2S ? rnd() % (FILE_SIZE + (1u << 20))
                                                                 : rnd() % 20000;
                rules[i][k].ms = 0;
            }
        }
        snprintf(name, sizeof name, "resets-%d.bin", iter);
        proxied_copy(name, rules, 3);
    }
}

static void test_stalled_replies(void)
{
    struct tu_px_rule rules[2][4];

    for (int i = 0; i < 2; i++) {
        /* Replies withheld for 1.5 s (the RPC timeout is 0.4 s), twice per connection. */
        rules[i][0] = (struct tu_px_rule){-1, TU_PX_S2C, TU_PX_DELAY, 3000 + rnd() % 3000, 1500};
        rules[i][1] = (struct tu_px_rule){0, TU_PX_C2S, TU_PX_DELAY, (8u << 20) + rnd() % (8u << 20), 1200};
    }
    proxied_copy("stalled.bin", rules, 2);
}

/* Reading back through resets and stalls: the pipelined reader gets every
 * byte in order. */
static int sha_sink(void *arg, uint64_t off, struct mb_chain *data)
{
    EVP_MD_CTX *ctx = arg;
    (void)off;
    for (const struct mb *l = data->head; l; l = l->next) {
        size_t o = l->off, end = l->off + l->len;
        while (o < end) {
            size_t k = mb_store_contig(l->st, o);
            if (k > end - o)
                k = end - o;
            EVP_DigestUpdate(ctx, mb_store_ptr(l->st, o), k);
            o += k;
        }
    }
    return 0;
}

static void test_read_through_faults(void)
{
    struct tu_px_rule rules[3] = {
        /* Connection 0 is NFS, 1 MOUNT, 2 and 3 NFS reconnections. */
        {0, TU_PX_S2C, TU_PX_RESET, (4u << 20) + rnd() % (8u << 20), 0}, /* mid-reply */
        {2, TU_PX_S2C, TU_PX_DELAY, (1u << 20) + rnd() % (2u << 20), 1200}, /* stalled replies */
        {2, TU_PX_C2S, TU_PX_RESET, 3000 + rnd() % 3000, 0},                /* among READ calls */
    };
    struct tu_proxy *px;
    struct sockaddr_storage ss;
    socklen_t len;
    struct tu_dest t;
    struct krpc_loop *loop;
    struct nfs3_clnt *nc;
    struct nfs3_fh root, fh;
    EVP_MD_CTX *ctx;
    uint8_t sha[32];
    unsigned sl = 32;
    uint64_t got = 0;
    size_t rest = 0;
    char addr[32];
    int rc;

    /* The file written by the stalled-replies test is on mirror 0. */
    snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)srv[0].port);
    REQUIRE(krpc_parse_addr(addr, &ss, &len) == 0);
    REQUIRE(tu_proxy_start((struct sockaddr *)&ss, len, &px) == 0);
    for (int i = 0; i < 3; i++)
        tu_proxy_add_rule(px, &rules[i]);
    tu_dest_init(&t, &srv[0], tu_proxy_port(px), "stalled.bin", &certs, KTLS_TX_AUTO);
    t.d.rpc.timeout_ms = 400;
    t.d.rpc.max_retries = 10;
    t.d.rpc.reconnect_delay_ms = 20;
    REQUIRE(krpc_loop_new(&loop) == 0);
    REQUIRE(nfs3_clnt_new(loop, &t.d.rpc, &nc) == 0);
    ctx = EVP_MD_CTX_new();
    REQUIRE(ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1);
    rc = nfs3_mount_prefix(nc, t.path, &root, &rest);
    if (rc == 0)
        rc = nfs3_open_path(nc, &root, t.path + rest, 0, &fh, NULL);
    if (rc == 0)
        rc = nfs3_read_pipelined(nc, &fh, 0, UINT64_MAX, 256u << 10, 6, sha_sink, ctx, &got);
    if (rc != 0)
        fprintf(stderr, "  read: %s\n", nfs3_clnt_error(nc));
    CHECK_EQ(rc, 0);
    CHECK_EQ(got, FILE_SIZE);
    EVP_DigestFinal_ex(ctx, sha, &sl);
    CHECK(memcmp(sha, src_sha, 32) == 0);
    fprintf(stderr, "  read: retransmits %" PRIu64 ", reconnects %" PRIu64 "\n",
            krpc_clnt_stats(nfs3_clnt_rpc(nc))->retransmits, krpc_clnt_stats(nfs3_clnt_rpc(nc))->reconnects);
    CHECK(krpc_clnt_stats(nfs3_clnt_rpc(nc))->reconnects > 0);
    EVP_MD_CTX_free(ctx);
    nfs3_clnt_free(nc);
    krpc_loop_free(loop);
    tu_proxy_stop(px);
}

/* ---- killing a server mid-copy ---------------------------------------------------- */

struct killer {
    pid_t pid;               /* the server to kill */
    uint64_t at;             /* when this many bytes are written everywhere */
    atomic_int killed;
};

static void kill_progress(void *arg, uint64_t done, uint64_t total)
{
    struct killer *k = arg;

    (void)total;
    if (done >= k->at && !atomic_exchange(&k->killed, 1))
        kill(k->pid, SIGKILL); /* reaped by the test thread */
}

struct copy_job {
    struct nfs3_mirror_dest md[2];
    struct nfs3_mirror_result res[2];
    struct nfs3_mirror_config cfg;
    int rc;
    double seconds;
};

static void *copy_thread(void *arg)
{
    struct copy_job *j = arg;
    double t0 = now_s();
    int fd = open(src, O_RDONLY);

    j->rc = fd < 0 ? -errno : nfs3_mirror_write(fd, FILE_SIZE, j->md, 2, &j->cfg, j->res, NULL);
    if (fd >= 0)
        close(fd);
    j->seconds = now_s() - t0;
    return NULL;
}

static void start_killed_copy(struct copy_job *j, struct tu_dest dst[2], struct killer *k, const char *name,
                              int timeout_ms, int retries, unsigned reconnects)
{
    memset(j, 0, sizeof *j);
    for (int i = 0; i < 2; i++) {
        tu_dest_init(&dst[i], &srv[i], srv[i].port, name, &certs, KTLS_TX_AUTO);
        dst[i].d.rpc.timeout_ms = timeout_ms;
        dst[i].d.rpc.max_retries = retries;
        dst[i].d.rpc.max_reconnects = reconnects;
        dst[i].d.rpc.reconnect_delay_ms = 100;
        dst[i].d.rpc.connect_timeout_ms = 2000;
        j->md[i] = dst[i].d;
    }
    j->cfg.wsize = 256u << 10;
    j->cfg.depth = 4;
    j->cfg.max_chunks = 4; /* keep the writer close behind the servers */
    j->cfg.verify = 1;
    j->cfg.progress = kill_progress;
    j->cfg.progress_arg = k;
    k->pid = srv[1].pid;
    k->at = FILE_SIZE / 4;
    atomic_init(&k->killed, 0);
}

static int wait_killed(struct killer *k)
{
    for (int i = 0; i < 6000 && !atomic_load(&k->killed); i++) /* 60 s */
        usleep(10000);
    if (!atomic_load(&k->killed))
        return -1;
    waitpid(k->pid, NULL, 0);
    srv[1].pid = -1;
    return 0;
}

static void test_server_restart(void)
{
    struct copy_job j;
    struct tu_dest dst[2];
    struct killer k;
    pthread_t th;
    uint16_t port = srv[1].port;

    start_killed_copy(&j, dst, &k, "restart.bin", 1000, 10, 30);
    REQUIRE(pthread_create(&th, NULL, copy_thread, &j) == 0);
    CHECK(wait_killed(&k) == 0);
    usleep(300000); /* the client sees the connection gone and starts reconnecting */
    /* Same port, same state directory (the file handles stay valid), new verifier. */
    CHECK(tu_nfsd_start(&srv[1], port) == 0);
    pthread_join(th, NULL);
    report("restart", j.res, 2);
    CHECK_EQ(j.rc, 0);
    CHECK_EQ(j.res[0].status, 0);
    CHECK_EQ(j.res[1].status, 0);
    CHECK(j.res[1].rpc.reconnects >= 1);
    CHECK(j.res[1].verifier_changes >= 1); /* the COMMIT saw the new verifier... */
    CHECK(j.res[1].bytes_resent > 0);      /* ...and the lost ranges were written again */
    CHECK(j.res[1].commits >= 2);
    CHECK_EQ(j.res[0].verifier_changes, 0);
    CHECK(identical(&srv[0], "restart.bin"));
    CHECK(identical(&srv[1], "restart.bin"));
}

static void test_server_stays_down(void)
{
    struct copy_job j;
    struct tu_dest dst[2];
    struct killer k;
    pthread_t th;
    char prefix[PATH_MAX + 100];
    /* Retry budget: 3 reconnects (backoff 0.1, 0.2, 0.4 s, connect timeout 2 s
     * each) and 2 retransmissions of 0.5 s: well under 15 s. */
    const double budget = 3 * (2.0 + 0.4) + 3 * 0.5 + 5.0;

    start_killed_copy(&j, dst, &k, "down.bin", 500, 2, 3);
    REQUIRE(pthread_create(&th, NULL, copy_thread, &j) == 0);
    CHECK(wait_killed(&k) == 0);
    pthread_join(th, NULL);
    report("down", j.res, 2);
    CHECK_EQ(j.rc, -EIO);
    CHECK_EQ(j.res[0].status, 0);
    CHECK(identical(&srv[0], "down.bin"));
    CHECK(j.res[1].status != 0);
    TU_FMT(prefix, "mirror %s: ", dst[1].label);
    CHECK(strncmp(j.res[1].error, prefix, strlen(prefix)) == 0);
    /* Bounded by the configured retries, not by luck (a loose upper bound). */
    fprintf(stderr, "  down: failed after %.1f s (budget %.1f s)\n", j.seconds, budget);
    CHECK(j.seconds < budget * 3);
    /* Bring it back for whatever runs next. */
    CHECK(tu_nfsd_start(&srv[1], 0) == 0);
}

int main(void)
{
    char real[PATH_MAX];
    const char *seed = getenv("RPCTLS_TEST_SEED");

    rng = seed ? strtoull(seed, NULL, 0) : (uint64_t)time(NULL);
    if (rng == 0)
        rng = 1;
    fprintf(stderr, "RPCTLS_TEST_SEED=%" PRIu64 "\n", rng);
    if (tu_certs_create(&certs) < 0 || tu_mkdtemp(base, sizeof base, "nfs3-faults") < 0)
        return 1;
    if (realpath(base, real))
        TU_FMT(base, "%s", real);
    TU_FMT(src, "%s/source.bin", base);
    if (tu_write_random_file(src, FILE_SIZE, 77) < 0 || tu_sha256_file(src, src_sha) < 0)
        return 1;
    for (int i = 0; i < 2; i++) {
        char name[16];
        snprintf(name, sizeof name, "mirror%d", i);
        if (tu_nfsd_init(&srv[i], base, name, "required", &certs) < 0 || tu_nfsd_start(&srv[i], 0) < 0) {
            if (i == 1)
                tu_nfsd_stop(&srv[0]);
            return 1;
        }
    }
    TEST_RUN(test_random_resets);
    TEST_RUN(test_stalled_replies);
    TEST_RUN(test_read_through_faults);
    TEST_RUN(test_server_restart);
    TEST_RUN(test_server_stays_down);
    for (int i = 0; i < 2; i++)
        tu_nfsd_stop(&srv[i]);
    CHECK_EQ(mb_pool_shutdown(), 0);
    tu_rmtree(base);
    tu_certs_destroy(&certs);
    return test_summary();
}
