/*
 * tests/test_nfs3_concurrency.c - many clients at once against one
 * rpctls-nfsd --threads 2 --io-threads 8 --tls optional:
 *   1. 16 rpctls-cp processes, even ones over TLS (client certificate),
 *      odd ones plain, each write its own file of FILE_MIB MiB, read it back
 *      over NFS and compare it with the source, all at the same time;
 *   2. 1,000 idle TLS connections (probe and handshake done, then silent)
 *      are held while one client writes and reads back a file; afterwards
 *      every one of them is still open.
 * FILE_MIB is 32, or 4 under ASan or with RPCTLS_TEST_SMALL=1 (the CI runs
 * this under ASan+UBSan too).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rpctls/krpc.h"
#include "rpctls/nfs3.h"
#include "test.h"
#include "util/certs.h"
#include "util/nfsd.h"
#include "util/tlsclient.h"

#define NCLIENTS 16
#define NIDLE 1000

static struct tu_certs certs;
static struct tu_nfsd srv;
static char base[PATH_MAX], cp[PATH_MAX];
static unsigned file_mib = 32;

static int same_file(const char *a, const char *b)
{
    uint8_t x[32], y[32];

    return tu_sha256_file(a, x) == 0 && tu_sha256_file(b, y) == 0 && memcmp(x, y, 32) == 0;
}

/* Writes src to the export as name, reads it back and compares. 0 or 1. */
static int copy_and_verify(const char *src, const char *name, int tls)
{
    char url[PATH_MAX + 64], back[PATH_MAX], out[PATH_MAX];
    char *w_tls[] = {cp, "--ca", certs.ca_cert, "--cert", certs.client_cert, "--key", certs.client_key,
                     "--no-progress", (char *)src, url, NULL};
    char *r_tls[] = {cp, "--ca", certs.ca_cert, "--cert", certs.client_cert, "--key", certs.client_key,
                     "--no-progress", url, back, NULL};
    char *w_plain[] = {cp, "--no-tls", "--no-progress", (char *)src, url, NULL};
    char *r_plain[] = {cp, "--no-tls", "--no-progress", url, back, NULL};

    TU_FMT(url, "nfs://127.0.0.1:%u%s/%s", (unsigned)srv.port, srv.export_dir, name);
    TU_FMT(back, "%s/%s.back", base, name);
    TU_FMT(out, "%s/%s.out", base, name);
    if (tu_run(tls ? w_tls : w_plain, out, 300) != 0) {
        fprintf(stderr, "%s: write failed (see %s)\n", name, out);
        return 1;
    }
    if (tu_run(tls ? r_tls : r_plain, out, 300) != 0) {
        fprintf(stderr, "%s: read back failed (see %s)\n", name, out);
        return 1;
    }
    if (!same_file(src, back)) {
        fprintf(stderr, "%s: read back differs from the source\n", name);
        return 1;
    }
    unlink(back);
    return 0;
}

static void test_sixteen_clients(void)
{
    char src[PATH_MAX];
    pid_t pids[NCLIENTS];
    int failed = 0;
    uint64_t t0 = krpc_now_ms();

    TU_FMT(src, "%s/src", base);
    REQUIRE(tu_write_random_file(src, (uint64_t)file_mib << 20, 16) == 0);
    for (int i = 0; i < NCLIENTS; i++) {
        pids[i] = fork();
        REQUIRE(pids[i] >= 0);
        if (pids[i] == 0) {
            char name[32];
            TU_FMT(name, "client%02d.bin", i);
            _exit(copy_and_verify(src, name, i % 2 == 0));
        }
    }
    for (int i = 0; i < NCLIENTS; i++) {
        int st;
        if (waitpid(pids[i], &st, 0) != pids[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            failed++;
    }
    fprintf(stderr, "%d clients (TLS and plain) wrote, read back and checked %u MiB each in %llu ms\n", NCLIENTS,
            file_mib, (unsigned long long)(krpc_now_ms() - t0));
    CHECK_EQ(failed, 0);
    for (int i = 0; i < NCLIENTS; i++) {
        char f[PATH_MAX + 32];
        TU_FMT(f, "%s/client%02d.bin", srv.export_dir, i);
        CHECK(same_file(src, f));
        unlink(f);
    }
    unlink(src);
}

static void test_idle_thousand(void)
{
    static int fds[NIDLE];
    SSL_CTX *ctx = tu_tls_ctx(certs.ca_cert, certs.client_cert, certs.client_key);
    char src[PATH_MAX], err[256];
    int held = 0, still_open = 0;
    long rss;
    uint64_t t0 = krpc_now_ms();

    REQUIRE(ctx != NULL);
    for (int i = 0; i < NIDLE; i++) {
        struct tu_tls_client t;
        fds[i] = -1;
        if (tu_tls_connect(&t, ctx, srv.port, NFS3_PROGRAM, NFS3_VERSION, 10000, err, sizeof(err)) != 0) {
            fprintf(stderr, "idle connection %d: %s\n", i, err);
            break;
        }
        fds[i] = tu_tls_release(&t); /* the session's memory goes; the connection stays */
        held++;
    }
    rss = tu_vmrss_kib(srv.pid);
    fprintf(stderr, "%d idle TLS connections set up in %llu ms; server VmRSS %ld KiB\n", held,
            (unsigned long long)(krpc_now_ms() - t0), rss);
    CHECK_EQ(held, NIDLE);
    TU_FMT(src, "%s/one", base);
    REQUIRE(tu_write_random_file(src, (uint64_t)file_mib << 20, 17) == 0);
    CHECK_EQ(copy_and_verify(src, "one.bin", 1), 0);
    for (int i = 0; i < NIDLE; i++) {
        char b[16];
        ssize_t r;
        if (fds[i] < 0)
            continue;
        r = recv(fds[i], b, sizeof(b), MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            still_open++;
        close(fds[i]);
    }
    CHECK_EQ(still_open, NIDLE);
    unlink(src);
    SSL_CTX_free(ctx);
}

int main(void)
{
    char real[PATH_MAX];
    const char *small = getenv("RPCTLS_TEST_SMALL");

#if defined(__SANITIZE_ADDRESS__)
    file_mib = 4;
#endif
    if (small != NULL && strcmp(small, "1") == 0)
        file_mib = 4;
    tu_raise_nofile();
    tu_tool_path("rpctls-cp", cp, sizeof cp);
    if (tu_certs_create(&certs) < 0 || tu_mkdtemp(base, sizeof base, "nfs3-concurrency") < 0)
        return 1;
    if (realpath(base, real)) /* the server canonicalises its export path */
        TU_FMT(base, "%s", real);
    if (tu_nfsd_init(&srv, base, "srv", "optional", &certs) < 0)
        return 1;
    srv.extra[0] = "--threads";
    srv.extra[1] = "2";
    /* Explicit, so a change of the default does not change this test. */
    srv.extra[2] = "--io-threads";
    srv.extra[3] = "8";
    if (tu_nfsd_start(&srv, 0) < 0)
        return 1;
    TEST_RUN(test_sixteen_clients);
    TEST_RUN(test_idle_thousand);
    CHECK_EQ(tu_nfsd_stop(&srv), 0);
    tu_rmtree(base);
    tu_certs_destroy(&certs);
    return test_summary();
}
