/*
 * tests/test_interop_linux.c - rpctls against peers that behave like Linux:
 * the kernel's RPC-with-TLS client and server with ktls-utils' tlshd doing
 * the handshake in GnuTLS (util/gnutls_peer.h, profile TU_GT_TLSHD).
 *
 * Client side (a Linux NFSv3 mount with xprtsec=tls / xprtsec=mtls against
 * rpctls-nfsd --tls required):
 *   - mount.nfs talks MOUNT to mountd in plaintext, on a connection of its own;
 *   - the kernel opens the NFS connection and sends the probe
 *     (net/sunrpc/auth_tls.c: NULL of NFS v3, AUTH_TLS credential, AUTH_NONE
 *     verifier) and only checks the verifier of the answer (tls_validate());
 *   - tlshd runs the GnuTLS handshake: TLS 1.3 only, %NO_TICKETS, no ALPN,
 *     the server name checked; "mtls" presents a client certificate, "tls"
 *     none (src/tlshd/client.c);
 *   - then NULL, FSINFO, GETATTR, CREATE, 64 MiB of WRITE in wsize chunks,
 *     COMMIT and a READ back go through that TLS session.
 *   Checked: the MNT succeeds in the clear, the probe gets STARTTLS, the
 *   session is TLS 1.3 with no ALPN and no NewSessionTicket (after tlshd
 *   the kernel's kTLS could not take one), every byte read back and the
 *   file on the server's disk are identical to what was written.
 *
 * Server side (knfsd with tlshd, our library client against it):
 *   - the probe is answered with the STARTTLS verifier, and for a program or
 *     version knfsd does not serve with STARTTLS + PROG_UNAVAIL or
 *     PROG_MISMATCH (svcauth_tls_accept() runs before the program lookup in
 *     svc_process_common()), after which knfsd waits for a ClientHello;
 *   - tlshd's GnuTLS server handshake asks for (does not require) a client
 *     certificate, selects no ALPN, sends no tickets (src/tlshd/server.c).
 *   Checked: NULL, GETATTR, 8 MiB of WRITE and COMMIT succeed over TLS and
 *   the bytes arrive intact; a client of a program / version the server does
 *   not serve still starts TLS and gets its PROG_UNAVAIL / PROG_MISMATCH
 *   inside TLS.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpctls/krpc_clnt.h"
#include "rpctls/nfs3_clnt.h"
#include "test.h"
#include "util/certs.h"
#include "util/gnutls_peer.h"
#include "util/nfsd.h"
#include "util/rpc_peer.h"
#include "util/stream.h"

#define BIG (64ull << 20)

static struct tu_certs certs;
static char base[PATH_MAX];

/* ---- a Linux client against rpctls-nfsd ----------------------------------- */

static void linux_client(int mtls)
{
    struct tu_nfsd d;
    struct tu_xprt x;
    struct tu_gt_cfg gc;
    struct tu_gt_info info;
    struct krpc_reply_hdr ph;
    struct tu_nfs_job job;
    struct tu_nfs_result res;
    struct krpc_cred cred;
    char err[512], path[PATH_MAX + 32];
    uint8_t want[32], disk[32];
    uint32_t xid = 0x71000000;
    int fd, rc;

    REQUIRE(tu_nfsd_init(&d, base, mtls ? "linux-mtls" : "linux-tls", "required", &certs) == 0);
    REQUIRE(tu_nfsd_start(&d, 0) == 0);

    /* mount.nfs: MOUNT NULL + MNT, plaintext, own connection. */
    tu_cred_sys(&cred, "linux-client");
    memset(&job, 0, sizeof job);
    rc = tu_mount_plain(d.port, d.export_dir, NULL, &cred, &job.root, err, sizeof err);
    if (rc != MNT3_OK)
        fprintf(stderr, "plaintext MOUNT: %d: %s\n", rc, err);
    CHECK_EQ(rc, MNT3_OK);
    if (rc != MNT3_OK)
        goto out;

    /* The kernel: probe on the NFS connection, then tlshd's handshake. */
    fd = tu_connect_loopback(d.port, 20000);
    REQUIRE(fd >= 0);
    tu_xprt_plain(&x, fd);
    rc = tu_rpc_probe(&x, xid++, NFS3_PROGRAM, NFS3_VERSION, &ph);
    CHECK_EQ(rc, 0);
    CHECK(tu_is_starttls(&ph));
    CHECK_EQ(ph.accept_stat, KRPC_SUCCESS);
    if (rc != 0 || !tu_is_starttls(&ph)) {
        tu_xprt_close(&x);
        goto out;
    }
    memset(&gc, 0, sizeof gc);
    gc.profile = TU_GT_TLSHD;
    gc.ca_file = certs.ca_cert;
    gc.cert_file = mtls ? certs.client_cert : NULL;
    gc.key_file = mtls ? certs.client_key : NULL;
    gc.server_name = "localhost";
    rc = tu_gt_start(&x, fd, &gc);
    if (rc != 0)
        fprintf(stderr, "tlshd-like handshake: %s\n", x.err);
    CHECK_EQ(rc, 0);
    if (rc != 0) {
        tu_xprt_close(&x);
        goto out;
    }
    tu_gt_info(&x, &info);
    CHECK(strcmp(info.version, "TLS1.3") == 0);
    CHECK(strcmp(info.alpn, "") == 0);
    CHECK(info.peer_cert);

    job.name = mtls ? "linux-mtls.bin" : "linux-tls.bin";
    job.size = BIG;
    job.seed = mtls ? 0x11u : 0x22u;
    job.max_io = 1u << 20; /* the Linux client's default wsize/rsize ceiling */
    job.cred = cred;
    rc = tu_nfs_run(&x, &xid, &job, &res);
    if (rc != 0)
        fprintf(stderr, "NFS over tlshd-like TLS: %s\n", res.err);
    CHECK_EQ(rc, 0);
    CHECK_EQ(res.root_attr.type, NFS3_DIR);
    CHECK_EQ(res.wsize, 1u << 20);
    CHECK_EQ(res.written, BIG);
    CHECK_EQ(res.writes, BIG >> 20);
    CHECK_EQ(res.read, BIG);
    CHECK_EQ(res.first_mismatch, UINT64_MAX);
    CHECK(res.commit_verf_matches);
    CHECK_EQ(res.file_attr.size, BIG);
    /* After the handshake tlshd hands the socket to kTLS, which cannot take
     * post-handshake messages: the server must have sent no ticket. */
    tu_gt_info(&x, &info);
    CHECK_EQ(info.tickets, 0);
    tu_xprt_close(&x);

    TU_FMT(path, "%s/%s", d.export_dir, job.name);
    tu_stream_sha(job.seed, BIG, want);
    CHECK_EQ(tu_sha256_file(path, disk), 0);
    CHECK(memcmp(want, disk, 32) == 0);
out:
    CHECK_EQ(tu_nfsd_stop(&d), 0);
}

static void test_linux_client_mtls(void)
{
    linux_client(1);
}

static void test_linux_client_tls(void)
{
    linux_client(0);
}

/* rpctls-nfsd --alpn required (strict RFC 9289) refuses the tlshd-like
 * client, which sends no ALPN: the probe is still answered STARTTLS, the
 * handshake fails with the no_application_protocol alert, and the server's
 * log names the cause. The same server serves a client that offers
 * "sunrpc" (rpctls-cp), so the refusal is about ALPN. */
static void test_linux_client_alpn_required(void)
{
    struct tu_nfsd d;
    struct tu_xprt x;
    struct tu_gt_cfg gc;
    struct krpc_reply_hdr ph;
    char cp[PATH_MAX], src[PATH_MAX], out[PATH_MAX], url[PATH_MAX + 64];
    int fd, rc;

    REQUIRE(tu_nfsd_init(&d, base, "linux-alpn-required", "required", &certs) == 0);
    d.extra[0] = "--alpn";
    d.extra[1] = "required";
    d.extra[2] = NULL;
    REQUIRE(tu_nfsd_start(&d, 0) == 0);

    fd = tu_connect_loopback(d.port, 20000);
    REQUIRE(fd >= 0);
    tu_xprt_plain(&x, fd);
    rc = tu_rpc_probe(&x, 0x72000000, NFS3_PROGRAM, NFS3_VERSION, &ph);
    CHECK_EQ(rc, 0);
    CHECK(tu_is_starttls(&ph));
    memset(&gc, 0, sizeof gc);
    gc.profile = TU_GT_TLSHD;
    gc.ca_file = certs.ca_cert;
    gc.server_name = "localhost";
    rc = tu_gt_start(&x, fd, &gc);
    CHECK_EQ(rc, -1);
    {
        const char *want = "gnutls handshake: A TLS fatal alert has been received.: No supported application "
                           "protocol could be negotiated";
        CHECK(strcmp(x.err, want) == 0);
        if (strcmp(x.err, want) != 0)
            fprintf(stderr, "tlshd-like client: \"%s\"\n", x.err);
    }
    tu_xprt_close(&x);

    /* A client that offers "sunrpc" is served. */
    tu_tool_path("rpctls-cp", cp, sizeof cp);
    TU_FMT(src, "%s/alpn-src", base);
    TU_FMT(out, "%s/alpn-cp.out", base);
    TU_FMT(url, "nfs://127.0.0.1:%u%s/alpn.bin", (unsigned)d.port, d.export_dir);
    REQUIRE(tu_write_random_file(src, 100000, 4) == 0);
    {
        char *argv[] = {cp, "--ca", certs.ca_cert, "--alpn", "required", "--verify", "--no-progress", src, url, NULL};
        CHECK_EQ(tu_run(argv, out, 60), 0);
    }
    CHECK_EQ(tu_nfsd_stop(&d), 0);
    CHECK(tu_file_contains(d.log, "failed: TLS handshake failed: the client offered no ALPN protocol (\"sunrpc\" "
                                  "required)"));
}

/* ---- our client against a knfsd + tlshd server ---------------------------- */

struct knfsd {
    struct tu_mini_nfs nfs;
    struct tu_gt_cfg gc;
    struct tu_srv *srv;
};

static int knfsd_start(struct knfsd *k, uint64_t cap)
{
    struct tu_srv_cfg sc;

    memset(k, 0, sizeof *k);
    if (tu_mini_nfs_init(&k->nfs, cap) < 0)
        return -1;
    k->gc.profile = TU_GT_TLSHD;
    k->gc.server = 1;
    k->gc.ca_file = certs.ca_cert;
    k->gc.cert_file = certs.server_cert;
    k->gc.key_file = certs.server_key;
    memset(&sc, 0, sizeof sc);
    sc.probe = TU_PROBE_KNFSD;
    sc.start_tls = tu_gt_srv_start_tls;
    sc.tls_arg = &k->gc;
    sc.describe = tu_gt_describe;
    sc.nfs = &k->nfs;
    if (tu_srv_start(&sc, &k->srv) < 0) {
        tu_mini_nfs_free(&k->nfs);
        return -1;
    }
    return 0;
}

static void knfsd_stop(struct knfsd *k, struct tu_srv_stats *st)
{
    tu_srv_stop(k->srv, st);
    if (st->err[0])
        fprintf(stderr, "knfsd-like server: %s\n", st->err);
}

static void client_cfg(struct krpc_clnt_config *cfg, uint16_t port, uint32_t prog, uint32_t vers)
{
    char addr[32];

    memset(cfg, 0, sizeof *cfg);
    TU_FMT(addr, "127.0.0.1:%u", (unsigned)port);
    krpc_parse_addr(addr, &cfg->addr, &cfg->addrlen);
    cfg->prog = prog;
    cfg->vers = vers;
    cfg->tls = KRPC_TLS_REQUIRED;
    cfg->tlscfg.ca_file = certs.ca_cert;
    cfg->tlscfg.cert_file = certs.client_cert;
    cfg->tlscfg.key_file = certs.client_key;
    cfg->tlscfg.server_name = "localhost";
    cfg->timeout_ms = 5000;
    cfg->max_retries = 2;
    cfg->connect_timeout_ms = 10000;
    cfg->max_reconnects = 2;
}

static void test_knfsd_server(void)
{
    struct knfsd k;
    struct tu_srv_stats st;
    struct krpc_loop *loop = NULL;
    struct krpc_clnt_config cfg;
    struct nfs3_clnt *nc = NULL;
    struct krpc_reply reply;
    struct mb_chain empty = MB_CHAIN_INIT, data = MB_CHAIN_INIT;
    struct nfs3_fattr attr = {0};
    struct nfs3_write_res wr;
    uint8_t verf[NFS3_WRITEVERFSIZE], want[32], got[32];
    const uint64_t size = 8ull << 20;
    const size_t chunk = 1u << 20;
    uint8_t *buf = malloc(chunk);
    int rc;

    REQUIRE(buf != NULL);
    REQUIRE(knfsd_start(&k, 16ull << 20) == 0);
    REQUIRE(krpc_loop_new(&loop) == 0);
    client_cfg(&cfg, tu_srv_port(k.srv), NFS3_PROGRAM, NFS3_VERSION);
    REQUIRE(nfs3_clnt_new(loop, &cfg, &nc) == 0);

    rc = krpc_call(nfs3_clnt_rpc(nc), NFS3_PROC_NULL, &empty, &reply);
    if (rc != 0)
        fprintf(stderr, "NULL: %s / %s\n", strerror(-rc), krpc_clnt_last_error(nfs3_clnt_rpc(nc)));
    CHECK_EQ(rc, 0);
    if (rc == 0) {
        CHECK_EQ(krpc_reply_status(&reply.hdr, (char[64]){0}, 64), 0);
        krpc_reply_free(&reply);
    }
    CHECK(krpc_clnt_is_tls(nfs3_clnt_rpc(nc)));

    rc = nfs3_getattr(nc, &k.nfs.fh, &attr);
    CHECK_EQ(rc, 0);
    CHECK_EQ(attr.type, NFS3_REG);
    for (uint64_t off = 0; rc == 0 && off < size; off += chunk) {
        tu_stream_fill(0x33, off, buf, chunk);
        REQUIRE(mb_chain_append_pages_from_buf(&data, buf, chunk) == 0);
        rc = nfs3_write(nc, &k.nfs.fh, off, NFS3_UNSTABLE, &data, &wr);
        if (rc != 0)
            fprintf(stderr, "WRITE at %llu: %s\n", (unsigned long long)off, nfs3_clnt_error(nc));
        CHECK_EQ(rc, 0);
        CHECK_EQ(wr.count, chunk);
        mb_chain_free(&data);
    }
    CHECK_EQ(nfs3_commit(nc, &k.nfs.fh, 0, 0, verf), 0);
    CHECK(memcmp(verf, k.nfs.verf, sizeof verf) == 0);
    CHECK_EQ(nfs3_getattr(nc, &k.nfs.fh, &attr), 0);
    CHECK_EQ(attr.size, size);
    CHECK_EQ(krpc_clnt_stats(nfs3_clnt_rpc(nc))->tls_handshakes, 1);
    CHECK_EQ(krpc_clnt_stats(nfs3_clnt_rpc(nc))->reconnects, 0);

    nfs3_clnt_free(nc);
    krpc_loop_free(loop);
    knfsd_stop(&k, &st);
    CHECK_EQ(st.err[0], 0);
    CHECK_EQ(st.probes, 1);
    CHECK_EQ(st.handshakes, 1);
    CHECK_EQ(st.plain_calls, 0);
    /* NULL, GETATTR, 8 WRITEs, COMMIT, GETATTR. */
    CHECK_EQ(st.tls_calls, 12);
    CHECK(strstr(st.session, "TLS1.3") != NULL);
    CHECK(strstr(st.session, "alpn=none") != NULL);
    CHECK(strstr(st.session, "client-cert=1") != NULL);
    tu_stream_sha(0x33, size, want);
    {
        struct tu_sha sha;
        tu_sha_init(&sha);
        tu_sha_update(&sha, k.nfs.data, k.nfs.size);
        tu_sha_final(&sha, got);
    }
    CHECK_EQ(k.nfs.size, size);
    CHECK(memcmp(want, got, 32) == 0);
    tu_mini_nfs_free(&k.nfs);
    free(buf);
}

/* A client for a program (MOUNT on the NFS port, where nfs3_mount sends it
 * when neither ?mountport= nor the portmapper names another port) or a
 * version (NFS v4) that knfsd does not serve: the probe answer is
 * STARTTLS + PROG_UNAVAIL / PROG_MISMATCH, the client must start TLS anyway
 * and get the same answer to its call inside TLS. */
static void knfsd_unserved(uint32_t prog, uint32_t vers, int want_status, const char *want_msg)
{
    struct knfsd k;
    struct tu_srv_stats st;
    struct krpc_loop *loop = NULL;
    struct krpc_clnt_config cfg;
    struct krpc_clnt *cl = NULL;
    struct krpc_reply reply;
    struct mb_chain empty = MB_CHAIN_INIT;
    char msg[128] = "";
    int rc;

    REQUIRE(knfsd_start(&k, 4096) == 0);
    REQUIRE(krpc_loop_new(&loop) == 0);
    client_cfg(&cfg, tu_srv_port(k.srv), prog, vers);
    REQUIRE(krpc_clnt_new(loop, &cfg, &cl) == 0);
    rc = krpc_call(cl, 0, &empty, &reply);
    if (rc != 0)
        fprintf(stderr, "NULL of %u v%u: %s / %s\n", prog, vers, strerror(-rc), krpc_clnt_last_error(cl));
    CHECK_EQ(rc, 0);
    if (rc == 0) {
        CHECK_EQ(krpc_reply_status(&reply.hdr, msg, sizeof msg), want_status);
        CHECK(strstr(msg, want_msg) != NULL);
        krpc_reply_free(&reply);
    }
    CHECK(krpc_clnt_is_tls(cl));
    CHECK_EQ(krpc_clnt_stats(cl)->tls_handshakes, 1);
    krpc_clnt_free(cl);
    krpc_loop_free(loop);
    knfsd_stop(&k, &st);
    CHECK_EQ(st.err[0], 0);
    CHECK_EQ(st.probes, 1);
    CHECK_EQ(st.handshakes, 1);
    CHECK_EQ(st.plain_calls, 0);
    CHECK_EQ(st.tls_calls, 1);
    if (want_status == -EPFNOSUPPORT)
        CHECK_EQ(st.probes_unavail, 1);
    else
        CHECK_EQ(st.probes_mismatch, 1);
    tu_mini_nfs_free(&k.nfs);
}

static void test_knfsd_probe_prog_unavail(void)
{
    knfsd_unserved(NFS3_MNT_PROGRAM, NFS3_MNT_VERSION, -EPFNOSUPPORT, "PROG_UNAVAIL");
}

static void test_knfsd_probe_prog_mismatch(void)
{
    knfsd_unserved(NFS3_PROGRAM, 4, -EPROTONOSUPPORT, "PROG_MISMATCH (supported 3..3)");
}

int main(void)
{
    /* The peers write with write(2) (OpenSSL's SSL_set_fd, GnuTLS) to
     * sockets the other side may have closed: a failed write, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    if (tu_certs_create(&certs) != 0 || tu_mkdtemp(base, sizeof base, "interop-linux") != 0)
        return 1;
    TEST_RUN(test_linux_client_mtls);
    TEST_RUN(test_linux_client_tls);
    TEST_RUN(test_linux_client_alpn_required);
    TEST_RUN(test_knfsd_server);
    TEST_RUN(test_knfsd_probe_prog_unavail);
    TEST_RUN(test_knfsd_probe_prog_mismatch);
    tu_rmtree(base);
    tu_certs_destroy(&certs);
    return test_summary();
}
