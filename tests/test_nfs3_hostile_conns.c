/*
 * tests/test_nfs3_hostile_conns.c - hostile connections against a real
 * rpctls-nfsd (--tls required --verify-client required, --threads 2,
 * --handshake-timeout 1500 so that the test takes seconds):
 *   1. 300 connections that send half of the RFC 9289 probe;
 *   2. 300 connections that send one byte and fall silent;
 *   3. 25 connections that announce a 4 MiB message before TLS and send
 *      64 KiB of it.
 * While each wave is open, a fresh TLS client (probe, handshake with a
 * client certificate, NULL call) is served. Every hostile connection is
 * closed by the server within the handshake deadline plus a generous
 * margin; the log names the reasons and is rate-limited (a "suppressed"
 * summary). The server's resident set (VmRSS) stays under its value after
 * start plus RSS_BOUND_MIB (more under ASan, whose shadow memory counts).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rpctls/krpc.h"
#include "rpctls/nfs3.h"
#include "test.h"
#include "util/certs.h"
#include "util/nfsd.h"
#include "util/rpc_peer.h"
#include "util/tlsclient.h"

#define HS_TIMEOUT_MS 1500
#if defined(__SANITIZE_ADDRESS__)
#define RSS_BOUND_MIB 256
#else
#define RSS_BOUND_MIB 24
#endif

static struct tu_certs certs;
static struct tu_nfsd srv;
static SSL_CTX *ctx;
static long rss0;

/* A fresh TLS client is served: probe, handshake, NULL call. */
static int fresh_client_served(uint32_t xid)
{
    struct tu_tls_client t;
    char err[256];
    int ok;

    if (tu_tls_connect(&t, ctx, srv.port, NFS3_PROGRAM, NFS3_VERSION, 5000, err, sizeof(err)) != 0) {
        fprintf(stderr, "fresh client: %s\n", err);
        return 0;
    }
    ok = tu_tls_null_call(&t, xid, NFS3_PROGRAM, NFS3_VERSION) == 0;
    tu_tls_close(&t);
    return ok;
}

/* How many of fds the server has closed (EOF or reset), waiting up to ms. */
static int count_closed(int *fds, int n, int ms)
{
    uint64_t deadline = krpc_now_ms() + (uint64_t)ms;
    int closed = 0;

    for (;;) {
        closed = 0;
        for (int i = 0; i < n; i++) {
            char b[4096];
            ssize_t r;
            if (fds[i] < 0) {
                closed++;
                continue;
            }
            r = recv(fds[i], b, sizeof(b), MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                close(fds[i]);
                fds[i] = -1;
                closed++;
            }
        }
        if (closed == n || krpc_now_ms() >= deadline)
            return closed;
        usleep(20 * 1000);
    }
}

static void check_rss(const char *when)
{
    long rss = tu_vmrss_kib(srv.pid);

    fprintf(stderr, "server VmRSS %s: %ld KiB (after start %ld KiB, bound +%d MiB)\n", when, rss, rss0,
            RSS_BOUND_MIB);
    CHECK(rss > 0);
    CHECK(rss <= rss0 + RSS_BOUND_MIB * 1024);
}

/* Opens n connections, each sending the first len bytes of payload. */
static void wave(const char *name, int n, const void *payload, size_t len, uint32_t xid)
{
    int fds[300];
    uint64_t t0 = krpc_now_ms();
    int closed;

    REQUIRE(n <= 300);
    for (int i = 0; i < n; i++) {
        fds[i] = tu_connect_loopback(srv.port, 5000);
        if (fds[i] >= 0 && len > 0 && send(fds[i], payload, len, MSG_NOSIGNAL) < 0 && errno != ECONNRESET &&
            errno != EPIPE)
            fprintf(stderr, "%s: send: %s\n", name, strerror(errno));
    }
    /* Meanwhile a real client gets in. */
    CHECK(fresh_client_served(xid));
    check_rss(name);
    /* Every one is cut: by the deadline (or pushed out by a newer one). */
    closed = count_closed(fds, n, HS_TIMEOUT_MS + 8000);
    fprintf(stderr, "%s: %d of %d closed by the server after %llu ms\n", name, closed, n,
            (unsigned long long)(krpc_now_ms() - t0));
    CHECK_EQ(closed, n);
    CHECK(fresh_client_served(xid + 1));
    check_rss(name);
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

static void test_waves(void)
{
    unsigned char probe[44], big[64 * 1024 + 4];

    /* The probe: record mark, xid, CALL, RPC 2, NFS 3, NULL, AUTH_TLS (7). */
    memset(probe, 0, sizeof(probe));
    probe[0] = 0x80, probe[3] = 40;
    probe[7] = 1;      /* xid 1 */
    probe[15] = 2;     /* rpcvers */
    probe[17] = 0x01, probe[18] = 0x86, probe[19] = 0xa3; /* 100003 */
    probe[23] = 3;
    probe[31] = 7;     /* AUTH_TLS */
    wave("half probes", 300, probe, 20, 100);
    wave("one byte", 300, probe, 1, 200);
    /* The log allows 20 connection lines a second: start the next wave in
     * a new second so that its lines are not all suppressed. */
    usleep(1100 * 1000);
    /* A 4 MiB message announced before TLS, 64 KiB of it sent. */
    memset(big, 0x41, sizeof(big));
    big[0] = 0x80, big[1] = 0x40, big[2] = 0x00, big[3] = 0x00;
    wave("4 MiB before TLS", 25, big, sizeof(big), 300);
    /* Both ways out: the handshake deadline ("... ms after accept (...)")
     * and, past max_unauth_conns, eviction by newer ones ("... newer
     * connections wait"). */
    CHECK(tu_file_contains(srv.log, "ms after accept ("));
    CHECK(tu_file_contains(srv.log, "newer connections wait"));
    CHECK(tu_file_contains(srv.log, "(before TLS on a TLS-only server)"));
    CHECK(tu_file_contains(srv.log, "connection log lines suppressed"));
}

int main(void)
{
    char base[PATH_MAX];

    tu_raise_nofile();
    if (tu_certs_create(&certs) < 0 || tu_mkdtemp(base, sizeof base, "nfs3-hostile") < 0)
        return 1;
    if (tu_nfsd_init(&srv, base, "srv", "required", &certs) < 0)
        return 1;
    srv.extra[0] = "--verify-client";
    srv.extra[1] = "required";
    srv.extra[2] = "--threads";
    srv.extra[3] = "2";
    srv.extra[4] = "--handshake-timeout";
    srv.extra[5] = "1500";
    srv.extra[6] = "-v";
    if (tu_nfsd_start(&srv, 0) < 0)
        return 1;
    ctx = tu_tls_ctx(certs.ca_cert, certs.client_cert, certs.client_key);
    if (ctx == NULL || !fresh_client_served(1)) {
        fprintf(stderr, "no TLS client gets served at all\n");
        tu_nfsd_kill(&srv);
        return 1;
    }
    rss0 = tu_vmrss_kib(srv.pid);
    TEST_RUN(test_waves);
    CHECK_EQ(tu_nfsd_stop(&srv), 0);
    SSL_CTX_free(ctx);
    tu_rmtree(base);
    tu_certs_destroy(&certs);
    return test_summary();
}
