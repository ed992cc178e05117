/*
 * tests/test_interop_libnfs.c - rpctls-nfsd --tls required against a client
 * that behaves like libnfs 6 with xprtsec=tls (the same library the
 * nfs3_libnfs test drives through nfs-cp, here rebuilt from its sources so
 * that the TLS path can be exercised without a kTLS-capable libnfs build):
 *
 *   - MOUNT goes in plaintext: libnfs probes for TLS only on the NFS program
 *     (lib/libnfs.c, rpc_connect_program_4_cb(): use_tls is set for
 *     NFS_PROGRAM only); the MOUNT connection pings with its AUTH_SYS
 *     credential ("libnfs" machine name, lib/init.c) and sends MNT;
 *   - the NFS connection starts with the AUTH_TLS NULL probe
 *     (lib/pdu.c, rpc_allocate_pdu2(): credential AUTH_TLS with an empty
 *     body, the AUTH_NONE verifier of AUTH_SYS) and requires the STARTTLS
 *     verifier (lib/pdu.c, expect_starttls);
 *   - the handshake is GnuTLS with the priority string
 *     "PERFORMANCE:-CIPHER-ALL:+AES-128-GCM" (tls/handshake.c,
 *     do_tls_handshake(), the default when LIBNFS_TLS_GNUTLS_PRIORITY_STRING
 *     is unset), SNI and certificate check against the host of the URL
 *     (here the IP literal 127.0.0.1, as in nfs://127.0.0.1/...), no ALPN,
 *     a client certificate only when LIBNFS_TLS_CLIENT_CERT_PEM/KEY_PEM are
 *     set; libnfs then moves the socket to kTLS, so the server must send no
 *     post-handshake message;
 *   - then FSINFO, GETATTR, CREATE, WRITE (UNSTABLE, 1 MiB: NFS_DEF_XFER_SIZE),
 *     COMMIT and READ, all inside TLS, with AUTH_SYS. libnfs sends no NULL
 *     after the handshake when it mounts; the NULL here is the ping an
 *     application sends with rpc_nfs3_null_task() (AUTH_SYS).
 *
 * Checked: MNT succeeds in the clear; the probe gets STARTTLS; TLS 1.3 with
 * AES-128-GCM and no ALPN; no NewSessionTicket; every byte read back and
 * the file on the server's disk are identical to what was written.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "util/certs.h"
#include "util/gnutls_peer.h"
#include "util/nfsd.h"
#include "util/rpc_peer.h"
#include "util/stream.h"

#define SIZE (16ull << 20)

static struct tu_certs certs;
static char base[PATH_MAX];

static void libnfs_client(int client_cert)
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
    uint32_t xid = 0x6c000000;
    int fd, rc;

    REQUIRE(tu_nfsd_init(&d, base, client_cert ? "libnfs-mtls" : "libnfs-tls", "required", &certs) == 0);
    REQUIRE(tu_nfsd_start(&d, 0) == 0);

    tu_cred_sys(&cred, "libnfs");
    memset(&job, 0, sizeof job);
    rc = tu_mount_plain(d.port, d.export_dir, &cred, &cred, &job.root, err, sizeof err);
    if (rc != MNT3_OK)
        fprintf(stderr, "plaintext MOUNT: %d: %s\n", rc, err);
    CHECK_EQ(rc, MNT3_OK);
    if (rc != MNT3_OK)
        goto out;

    fd = tu_connect_loopback(d.port, 20000);
    REQUIRE(fd >= 0);
    tu_xprt_plain(&x, fd);
    rc = tu_rpc_probe(&x, xid++, NFS3_PROGRAM, NFS3_VERSION, &ph);
    CHECK_EQ(rc, 0);
    CHECK(tu_is_starttls(&ph));
    if (rc != 0 || !tu_is_starttls(&ph)) {
        tu_xprt_close(&x);
        goto out;
    }
    memset(&gc, 0, sizeof gc);
    gc.profile = TU_GT_LIBNFS;
    gc.ca_file = certs.ca_cert;
    gc.cert_file = client_cert ? certs.client_cert : NULL;
    gc.key_file = client_cert ? certs.client_key : NULL;
    gc.server_name = "127.0.0.1";
    rc = tu_gt_start(&x, fd, &gc);
    if (rc != 0)
        fprintf(stderr, "libnfs-like handshake: %s\n", x.err);
    CHECK_EQ(rc, 0);
    if (rc != 0) {
        tu_xprt_close(&x);
        goto out;
    }
    tu_gt_info(&x, &info);
    CHECK(strcmp(info.version, "TLS1.3") == 0);
    CHECK(strcmp(info.cipher, "AES-128-GCM") == 0);
    CHECK(strcmp(info.alpn, "") == 0);

    job.name = client_cert ? "libnfs-mtls.bin" : "libnfs-tls.bin";
    job.size = SIZE;
    job.seed = client_cert ? 0x55u : 0x66u;
    job.max_io = 1u << 20; /* NFS_DEF_XFER_SIZE */
    job.ping_cred = cred;
    job.cred = cred;
    rc = tu_nfs_run(&x, &xid, &job, &res);
    if (rc != 0)
        fprintf(stderr, "NFS over libnfs-like TLS: %s\n", res.err);
    CHECK_EQ(rc, 0);
    CHECK_EQ(res.root_attr.type, NFS3_DIR);
    CHECK_EQ(res.written, SIZE);
    CHECK_EQ(res.read, SIZE);
    CHECK_EQ(res.first_mismatch, UINT64_MAX);
    CHECK(res.commit_verf_matches);
    CHECK_EQ(res.file_attr.size, SIZE);
    tu_gt_info(&x, &info);
    CHECK_EQ(info.tickets, 0);
    tu_xprt_close(&x);

    TU_FMT(path, "%s/%s", d.export_dir, job.name);
    tu_stream_sha(job.seed, SIZE, want);
    CHECK_EQ(tu_sha256_file(path, disk), 0);
    CHECK(memcmp(want, disk, 32) == 0);
out:
    CHECK_EQ(tu_nfsd_stop(&d), 0);
}

static void test_libnfs_tls(void)
{
    libnfs_client(0);
}

static void test_libnfs_mtls(void)
{
    libnfs_client(1);
}

int main(void)
{
    /* The peers write with write(2) (OpenSSL's SSL_set_fd, GnuTLS) to
     * sockets the other side may have closed: a failed write, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    if (tu_certs_create(&certs) != 0 || tu_mkdtemp(base, sizeof base, "interop-libnfs") != 0)
        return 1;
    TEST_RUN(test_libnfs_tls);
    TEST_RUN(test_libnfs_mtls);
    tu_rmtree(base);
    tu_certs_destroy(&certs);
    return test_summary();
}
