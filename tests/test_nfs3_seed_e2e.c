/*
 * tests/test_nfs3_seed_e2e.c - the seed's scenario end to end: one file
 * mirrored to two rpctls-nfsd over RPC-with-TLS, the same pages shared by
 * both mirrors and retained by the RPC client, under a fault schedule (a
 * loopback proxy in front of each server) that forces retransmissions on the
 * same TLS session (requests withheld past the RPC timeout) and on a new one
 * (a connection reset mid-copy).
 *
 *   --tx-mode unsafe-inplace: shared pages are encrypted in place, so a
 *     mirror gets doubly encrypted data and retransmissions are garbage: the
 *     mirrors differ from the source (the bug the seed reports);
 *   auto, outofplace, copy: under the same schedule every mirror is
 *     byte-identical to the source, and the schedule did force
 *     retransmissions and a reconnect.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rpctls/nfs3_mirror.h"
#include "test.h"
#include "util/certs.h"
#include "util/nfsd.h"
#include "util/proxy.h"

#define FILE_SIZE (8u << 20)
#define WSIZE (256u << 10)

static struct tu_certs certs;
static struct tu_nfsd srv[2];
static char base[PATH_MAX];
static char src[PATH_MAX];
static uint8_t src_sha[32];

struct outcome {
    int rc;
    int identical[2];
    struct nfs3_mirror_result res[2];
};

/* One mirrored copy through two fresh proxies carrying the fault schedule. */
static int run(enum ktls_tx_mode mode, struct outcome *o)
{
    struct tu_proxy *px[2] = {NULL, NULL};
    struct tu_dest dst[2];
    struct nfs3_mirror_dest md[2];
    struct nfs3_mirror_config cfg;
    char name[64];
    int fd;

    memset(o, 0, sizeof *o);
    snprintf(name, sizeof name, "seed-%s.bin", ktls_tx_mode_name(mode));
    for (int i = 0; i < 2; i++) {
        struct sockaddr_storage ss;
        socklen_t len;
        char addr[32];
        /* Requests withheld past the RPC timeout: resent on the same session. */
        struct tu_px_rule delay = {-1, TU_PX_C2S, TU_PX_DELAY, (2u << 20) + 1000u * (unsigned)i, 1500};
        /* A reset mid-copy: reconnect, probe, handshake, resend on a new session. */
        struct tu_px_rule reset = {-1, TU_PX_C2S, TU_PX_RESET, (5u << 20) + 3000u * (unsigned)i, 0};

        snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)srv[i].port);
        if (krpc_parse_addr(addr, &ss, &len) < 0 || tu_proxy_start((struct sockaddr *)&ss, len, &px[i]) < 0)
            return -1;
        tu_proxy_add_rule(px[i], &delay);
        tu_proxy_add_rule(px[i], &reset);
        tu_dest_init(&dst[i], &srv[i], tu_proxy_port(px[i]), name, &certs, mode);
        dst[i].d.rpc.timeout_ms = 400;
        dst[i].d.rpc.max_retries = 8;
        dst[i].d.rpc.reconnect_delay_ms = 50;
        md[i] = dst[i].d;
    }
    memset(&cfg, 0, sizeof cfg);
    cfg.wsize = WSIZE;
    cfg.depth = 4;
    cfg.verify = 1;
    fd = open(src, O_RDONLY);
    if (fd < 0)
        return -1;
    o->rc = nfs3_mirror_write(fd, FILE_SIZE, md, 2, &cfg, o->res, NULL);
    close(fd);
    for (int i = 0; i < 2; i++) {
        struct tu_proxy_stats ps;
        char path[PATH_MAX + 80];
        uint8_t sha[32];

        tu_proxy_get_stats(px[i], &ps);
        tu_proxy_stop(px[i]);
        TU_FMT(path, "%s/%s", srv[i].export_dir, name);
        o->identical[i] = tu_sha256_file(path, sha) == 0 && memcmp(sha, src_sha, 32) == 0;
        fprintf(stderr,
                "  %-10s mirror %d: status %d%s%s; retransmits %" PRIu64 ", reconnects %" PRIu64
                ", records in place %" PRIu64 ", out of place %" PRIu64 ", copied %" PRIu64
                "; proxy: %" PRIu64 " connections, %" PRIu64 " resets, %" PRIu64 " delays; on disk: %s\n",
                ktls_tx_mode_name(mode), i, o->res[i].status, o->res[i].status ? " " : "",
                o->res[i].status ? o->res[i].error : "", o->res[i].rpc.retransmits, o->res[i].rpc.reconnects,
                o->res[i].tls_stats.tx_records_inplace, o->res[i].tls_stats.tx_records_outofplace,
                o->res[i].tls_stats.tx_records_copied, ps.conns, ps.resets, ps.delays,
                o->identical[i] ? "identical" : "DIFFERS");
    }
    return 0;
}

static void test_inplace_corrupts(void)
{
    struct outcome o;

    REQUIRE(run(KTLS_TX_UNSAFE_INPLACE, &o) == 0);
    /* The mirrors differ from the source; the copy cannot be reported good. */
    CHECK(!o.identical[0] || !o.identical[1]);
    CHECK(o.rc != 0);
    CHECK(o.res[0].status != 0 || o.res[1].status != 0);
}

static void safe_mode(enum ktls_tx_mode mode)
{
    struct outcome o;
    uint64_t retrans = 0, reconn = 0;

    REQUIRE(run(mode, &o) == 0);
    CHECK_EQ(o.rc, 0);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(o.res[i].status, 0);
        CHECK(o.identical[i]);
        CHECK(o.res[i].verified);
        CHECK(memcmp(o.res[i].sha256, src_sha, 32) == 0);
        retrans += o.res[i].rpc.retransmits;
        reconn += o.res[i].rpc.reconnects;
        if (mode == KTLS_TX_OUTOFPLACE || mode == KTLS_TX_AUTO)
            CHECK_EQ(o.res[i].tls_stats.tx_bytes_inplace, 0); /* every data page was shared */
        if (mode == KTLS_TX_COPY)
            CHECK(o.res[i].tls_stats.tx_bytes_copied >= FILE_SIZE);
    }
    /* The schedule did what it is for. */
    CHECK(retrans > 0);
    CHECK(reconn > 0);
}

static void test_auto(void)
{
    safe_mode(KTLS_TX_AUTO);
}

static void test_outofplace(void)
{
    safe_mode(KTLS_TX_OUTOFPLACE);
}

static void test_copy(void)
{
    safe_mode(KTLS_TX_COPY);
}

int main(void)
{
    char real[PATH_MAX];

    if (tu_certs_create(&certs) < 0 || tu_mkdtemp(base, sizeof base, "nfs3-seed") < 0)
        return 1;
    if (realpath(base, real))
        TU_FMT(base, "%s", real);
    TU_FMT(src, "%s/source.bin", base);
    if (tu_write_random_file(src, FILE_SIZE, 2020) < 0 || tu_sha256_file(src, src_sha) < 0)
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
    TEST_RUN(test_inplace_corrupts);
    TEST_RUN(test_auto);
    TEST_RUN(test_outofplace);
    TEST_RUN(test_copy);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(tu_nfsd_stop(&srv[i]), 0);
    CHECK_EQ(mb_pool_shutdown(), 0);
    tu_rmtree(base);
    tu_certs_destroy(&certs);
    return test_summary();
}
