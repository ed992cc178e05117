/*
 * tests/test_nfs3_mount_port.c - MOUNT on a port of its own that speaks
 * RPC-with-TLS, NFS on another, reached with rpctls-cp and ?mountport=N
 * (issue 7, point 5; the fallback to plain when the MOUNT server refuses
 * the probe is tested against nfs-ganesha in nfs3_ganesha.sh).
 *
 * Two in-process servers (util/nfsrv.h, TLS optional) export the same
 * directory with the same state directory, so a root handle from one is
 * valid on the other: "nfs" is where the URL's port points, "mountd" is
 * the ?mountport= one. Checked through their counters that MOUNT went only
 * to mountd and NFS only to nfs.
 *
 *   - mountd with a certificate from the client's CA: rpctls-cp --tls
 *     copies and reads back identical bytes; --stats says MOUNT went to
 *     mountd's port in TLS and NFS to nfs's port in TLS; mountd answered MNT
 *     inside TLS (a handshake, no NFS call), nfs saw no MNT.
 *   - mountd with a certificate from another CA: the handshake fails, and
 *     the client gives up with an error that names MOUNT and the
 *     verification failure. MOUNT's fallback to plain is only for a refused
 *     probe: mountd (which would answer a plain MNT, TLS being optional
 *     there) saw no call at all, only the probe. The same through the
 *     library: nfs3_mount fails with -EPROTO.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rpctls/nfs3_clnt.h"
#include "rpctls/pki.h"
#include "test.h"
#include "util/certs.h"
#include "util/nfsd.h"
#include "util/nfsrv.h"

static struct tu_certs certs;
static char base[PATH_MAX], export_dir[PATH_MAX], state_dir[PATH_MAX], cp[PATH_MAX];
static char bad_cert[PATH_MAX], bad_key[PATH_MAX]; /* 127.0.0.1, issued by other_ca */

static int same_file(const char *a, const char *b)
{
    uint8_t x[32], y[32];

    return tu_sha256_file(a, x) == 0 && tu_sha256_file(b, y) == 0 && memcmp(x, y, 32) == 0;
}

static void srv_cfg(struct nfs3_srv_config *c)
{
    memset(c, 0, sizeof *c);
    c->export_path = export_dir;
    c->state_dir = state_dir;
    nfs3_export_opts_default(&c->opts);
    c->opts.squash = NFS3_SQUASH_NONE; /* the test may run as root */
}

static uint64_t nfs_calls(const struct nfs3_srv_stats *s)
{
    uint64_t n = 0;

    for (unsigned i = 0; i < NFS3_NPROCS; i++)
        n += s->ops[i];
    return n;
}

static uint64_t mnt_calls(const struct nfs3_srv_stats *s)
{
    uint64_t n = 0;

    for (unsigned i = 0; i < NFS3_MNT_NPROCS; i++)
        n += s->mnt_ops[i];
    return n;
}

static void test_mount_port_tls(void)
{
    struct tu_nfsrv nfs, mountd;
    struct nfs3_srv_config sc;
    struct nfs3_srv_stats ns, ms;
    struct krpc_svc_stats mss;
    char src[PATH_MAX], back[PATH_MAX], out[PATH_MAX], url[PATH_MAX + 64], line[200], file[PATH_MAX + 16];
    int rc;

    srv_cfg(&sc);
    REQUIRE(tu_nfsrv_start_tls(&nfs, &sc, certs.server_cert, certs.server_key, certs.ca_cert) == 0);
    REQUIRE(tu_nfsrv_start_tls(&mountd, &sc, certs.server_cert, certs.server_key, certs.ca_cert) == 0);
    TU_FMT(src, "%s/src", base);
    TU_FMT(back, "%s/back", base);
    TU_FMT(out, "%s/out-tls", base);
    TU_FMT(file, "%s/m.bin", export_dir);
    REQUIRE(tu_write_random_file(src, 2 * 1048576 + 11, 5) == 0);
    TU_FMT(url, "nfs://127.0.0.1:%u%s/m.bin?mountport=%u", (unsigned)nfs.port, export_dir, (unsigned)mountd.port);
    {
        char *argv[] = {cp, "--ca", certs.ca_cert, "--cert", certs.client_cert, "--key", certs.client_key,
                        "--verify", "--stats", "--no-progress", src, url, NULL};
        rc = tu_run(argv, out, 120);
        CHECK_EQ(rc, 0);
        CHECK(tu_file_contains(out, "SHA-256 matches the source"));
        TU_FMT(line, "  MOUNT: 127.0.0.1:%u TLS (TLS_AES_128_GCM_SHA256)\n", (unsigned)mountd.port);
        CHECK(tu_file_contains(out, line));
        TU_FMT(line, "  NFS: 127.0.0.1:%u TLS (TLS_AES_128_GCM_SHA256)\n", (unsigned)nfs.port);
        CHECK(tu_file_contains(out, line));
        if (rc != 0 || !tu_file_contains(out, line))
            tu_run((char *[]){"/bin/cat", out, NULL}, NULL, 5);
    }
    CHECK(same_file(src, file));
    {
        char *argv[] = {cp, "--ca", certs.ca_cert, "--no-progress", url, back, NULL};
        CHECK_EQ(tu_run(argv, out, 120), 0);
        CHECK(same_file(src, back));
    }
    nfs3_srv_stats_get(nfs.srv, &ns);
    nfs3_srv_stats_get(mountd.srv, &ms);
    krpc_svc_stats_get(mountd.svc, &mss);
    CHECK_EQ(mnt_calls(&ns), 0);                /* MOUNT never went to the NFS port */
    CHECK(ns.ops[NFS3_PROC_WRITE] > 0);
    CHECK(ms.mnt_ops[NFS3_MNT_PROC_MNT] >= 2); /* the write and the read-back */
    CHECK_EQ(nfs_calls(&ms), 0);                /* NFS never went to mountd */
    CHECK_EQ(mss.tls_handshakes, mss.conns_accepted); /* every MOUNT connection in TLS */
    CHECK(mss.tls_handshakes >= 2);
    tu_nfsrv_stop(&mountd);
    tu_nfsrv_stop(&nfs);
}

static void test_mount_port_bad_cert(void)
{
    struct tu_nfsrv nfs, mountd;
    struct nfs3_srv_config sc;
    struct nfs3_srv_stats ns, ms;
    struct krpc_svc_stats mss;
    char src[PATH_MAX], out[PATH_MAX], url[PATH_MAX + 64], want[3 * PATH_MAX], addr[64];
    int rc;

    srv_cfg(&sc);
    REQUIRE(tu_nfsrv_start_tls(&nfs, &sc, certs.server_cert, certs.server_key, certs.ca_cert) == 0);
    REQUIRE(tu_nfsrv_start_tls(&mountd, &sc, bad_cert, bad_key, certs.ca_cert) == 0);
    TU_FMT(src, "%s/src-small", base);
    TU_FMT(out, "%s/out-bad", base);
    REQUIRE(tu_write_random_file(src, 1000, 9) == 0);
    TU_FMT(url, "nfs://127.0.0.1:%u%s/bad.bin?mountport=%u", (unsigned)nfs.port, export_dir,
           (unsigned)mountd.port);
    {
        char *argv[] = {cp, "--ca", certs.ca_cert, "--no-progress", src, url, NULL};
        rc = tu_run(argv, out, 60);
        CHECK_EQ(rc, 1);
        TU_FMT(want,
               "rpctls-cp: mirror %s: MNT: Protocol error (TLS handshake with %s (MOUNT) failed: TLS handshake "
               "failed: certificate verify failed (unable to get local issuer certificate))\n",
               url, url);
        CHECK(tu_file_contains(out, want));
        if (!tu_file_contains(out, want)) {
            fprintf(stderr, "wanted:\n%s", want);
            tu_run((char *[]){"/bin/cat", out, NULL}, NULL, 5);
        }
    }
    /* The library alone: nfs3_mount with mount_port, NFS required. */
    {
        struct krpc_loop *loop = NULL;
        struct nfs3_clnt *nc = NULL;
        struct krpc_clnt_config cfg;
        struct nfs3_clnt_opts opts;
        struct nfs3_fh root;

        memset(&cfg, 0, sizeof cfg);
        memset(&opts, 0, sizeof opts);
        TU_FMT(addr, "127.0.0.1:%u", (unsigned)nfs.port);
        REQUIRE(krpc_parse_addr(addr, &cfg.addr, &cfg.addrlen) == 0);
        cfg.tls = KRPC_TLS_REQUIRED;
        cfg.tlscfg.ca_file = certs.ca_cert;
        cfg.tlscfg.server_name = "127.0.0.1";
        cfg.timeout_ms = 5000;
        cfg.max_retries = 1;
        cfg.max_reconnects = 2;
        cfg.name = "lib";
        opts.mount_port = mountd.port;
        REQUIRE(krpc_loop_new(&loop) == 0);
        REQUIRE(nfs3_clnt_new_opts(loop, &cfg, &opts, &nc) == 0);
        CHECK_EQ(nfs3_mount(nc, export_dir, &root), -EPROTO);
        CHECK(strcmp(nfs3_clnt_error(nc), "MNT: Protocol error (TLS handshake with lib (MOUNT) failed: TLS handshake "
                                          "failed: certificate verify failed (unable to get local issuer "
                                          "certificate))") == 0);
        if (!strstr(nfs3_clnt_error(nc), "MNT: Protocol error (TLS handshake with lib (MOUNT)"))
            fprintf(stderr, "error: %s\n", nfs3_clnt_error(nc));
        CHECK_EQ(nfs3_clnt_transport(nc, NFS3_MNT_PROGRAM)[0], '\0'); /* never reached */
        nfs3_clnt_free(nc);
        krpc_loop_free(loop);
    }
    nfs3_srv_stats_get(nfs.srv, &ns);
    nfs3_srv_stats_get(mountd.srv, &ms);
    krpc_svc_stats_get(mountd.svc, &mss);
    /* No MNT anywhere, in plain or otherwise; mountd only saw probes. */
    CHECK_EQ(mnt_calls(&ms), 0);
    CHECK_EQ(mnt_calls(&ns), 0);
    CHECK_EQ(nfs_calls(&ms), 0);
    CHECK_EQ(mss.tls_handshakes, 0);
    CHECK(mss.tls_probes >= 2);
    CHECK_EQ(mss.calls, mss.tls_probes);
    if (mss.calls != mss.tls_probes)
        fprintf(stderr, "mountd: %llu calls, %llu probes\n", (unsigned long long)mss.calls,
                (unsigned long long)mss.tls_probes);
    tu_nfsrv_stop(&mountd);
    tu_nfsrv_stop(&nfs);
}

int main(void)
{
    char real[PATH_MAX], err[256];

    if (tu_certs_create(&certs) < 0 || tu_mkdtemp(base, sizeof base, "nfs3-mount-port") < 0)
        return 1;
    if (realpath(base, real)) /* the server canonicalises its export path */
        TU_FMT(base, "%s", real);
    TU_FMT(export_dir, "%s/export", base);
    TU_FMT(state_dir, "%s/state", base);
    if (mkdir(export_dir, 0755) < 0 || mkdir(state_dir, 0700) < 0)
        return 1;
    tu_tool_path("rpctls-cp", cp, sizeof cp);
    TU_FMT(bad_cert, "%s/other-server.pem", certs.dir);
    TU_FMT(bad_key, "%s/other-server.key", certs.dir);
    if (ktls_pki_issue_san(KTLS_PKI_SERVER, "localhost", "IP:127.0.0.1,DNS:localhost", certs.other_ca_cert,
                           certs.other_ca_key, bad_cert, bad_key, 365, err, sizeof err) != 0) {
        fprintf(stderr, "certificate: %s\n", err);
        return 1;
    }
    TEST_RUN(test_mount_port_tls);
    TEST_RUN(test_mount_port_bad_cert);
    unlink(bad_cert);
    unlink(bad_key);
    tu_certs_destroy(&certs);
    tu_rmtree(base);
    return test_summary();
}
