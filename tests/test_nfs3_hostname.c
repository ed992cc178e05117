/*
 * tests/test_nfs3_hostname.c - host names in rpctls-cp URLs, against
 * rpctls-nfsd --tls required whose certificate has ONLY the DNS SAN
 * "localhost":
 *   - nfs://localhost:PORT/... resolves through getaddrinfo (every address
 *     is tried: the server listens on 127.0.0.1 only), the certificate is
 *     checked against the name, the copy and the read-back are identical,
 *     and --stats says how MOUNT and NFS travelled;
 *   - --server-name wrong.example, and the IP literal 127.0.0.1 (checked
 *     against IP SANs, of which there are none), are refused with a message
 *     that names both the name checked and the names in the certificate;
 *   - an unknown URL option and an unsupported version are usage errors
 *     that name them; a name that does not resolve fails.
 * And two rpctls-nfsd flags run through the tool:
 *   - --mount-tls required: MOUNT NULL is answered in the clear, a
 *     plaintext MNT (as Linux's mount.nfs or libnfs send it) gets
 *     AUTH_TOOWEAK, and MNT inside TLS (rpctls-cp) works;
 *   - --listen localhost:0 (a name, not a literal): the first line is
 *     "rpctls-nfsd: listening on 127.0.0.1:PORT" and the server serves a
 *     copy to nfs://localhost:PORT/....
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rpctls/pki.h"
#include "test.h"
#include "util/certs.h"
#include "util/nfsd.h"
#include "util/rpc_peer.h"

static struct tu_certs certs, dns_only;
static struct tu_nfsd srv;
static char base[PATH_MAX], cp[PATH_MAX];

static int same_file(const char *a, const char *b)
{
    uint8_t x[32], y[32];

    return tu_sha256_file(a, x) == 0 && tu_sha256_file(b, y) == 0 && memcmp(x, y, 32) == 0;
}

/* The whole of file equals want (one line, a newline at the end). */
static int output_is(const char *file, const char *want)
{
    char buf[4096];
    FILE *f = fopen(file, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;

    if (f)
        fclose(f);
    buf[n] = '\0';
    if (strcmp(buf, want) != 0) {
        fprintf(stderr, "output:\n%s\nwanted:\n%s\n", buf, want);
        return 0;
    }
    return 1;
}

static void test_name_works(void)
{
    char src[PATH_MAX], back[PATH_MAX], out[PATH_MAX], url[PATH_MAX + 64], line[200];
    int rc;

    TU_FMT(src, "%s/src", base);
    TU_FMT(back, "%s/back", base);
    TU_FMT(out, "%s/out-ok", base);
    REQUIRE(tu_write_random_file(src, 3 * 1048576 + 5, 7) == 0);
    TU_FMT(url, "nfs://localhost:%u%s/f.bin", (unsigned)srv.port, srv.export_dir);
    {
        char *argv[] = {cp, "--ca", certs.ca_cert, "--cert", certs.client_cert, "--key", certs.client_key,
                        "--verify", "--stats", "--no-progress", src, url, NULL};
        rc = tu_run(argv, out, 120);
        CHECK_EQ(rc, 0);
        CHECK(tu_file_contains(out, "SHA-256 matches the source"));
        /* MOUNT and NFS share the port (no portmapper names another):
         * both in TLS, with the policy of NFS. */
        TU_FMT(line, "  NFS: 127.0.0.1:%u TLS (TLS_AES_128_GCM_SHA256)", (unsigned)srv.port);
        CHECK(tu_file_contains(out, line));
        TU_FMT(line, "  MOUNT: 127.0.0.1:%u TLS (TLS_AES_128_GCM_SHA256)", (unsigned)srv.port);
        CHECK(tu_file_contains(out, line));
    }
    {
        char *argv[] = {cp, "--ca", certs.ca_cert, "--cert", certs.client_cert, "--key", certs.client_key,
                        "--verify", "--no-progress", url, back, NULL};
        rc = tu_run(argv, out, 120);
        CHECK_EQ(rc, 0);
        CHECK(same_file(src, back));
    }
}

static void test_wrong_names_refused(void)
{
    char src[PATH_MAX], out[PATH_MAX], url[PATH_MAX + 64], want[2 * PATH_MAX];
    int rc;

    TU_FMT(src, "%s/src-small", base);
    TU_FMT(out, "%s/out-refused", base);
    REQUIRE(tu_write_random_file(src, 1000, 3) == 0);
    TU_FMT(url, "nfs://localhost:%u%s/g.bin", (unsigned)srv.port, srv.export_dir);
    {
        char *argv[] = {cp, "--ca", certs.ca_cert, "--server-name", "wrong.example", "--no-progress", src, url, NULL};
        rc = tu_run(argv, out, 60);
        CHECK_EQ(rc, 1);
        TU_FMT(want,
               "rpctls-cp: mirror %s: MNT: Protocol error (TLS handshake with %s (MOUNT) failed: TLS handshake "
               "failed: certificate verify failed (hostname mismatch: checked \"wrong.example\", the certificate "
               "names DNS:localhost))\n",
               url, url);
        CHECK(output_is(out, want));
    }
    TU_FMT(url, "nfs://127.0.0.1:%u%s/g.bin", (unsigned)srv.port, srv.export_dir);
    {
        char *argv[] = {cp, "--ca", certs.ca_cert, "--no-progress", src, url, NULL};
        rc = tu_run(argv, out, 60);
        CHECK_EQ(rc, 1);
        TU_FMT(want,
               "rpctls-cp: mirror %s: MNT: Protocol error (TLS handshake with %s (MOUNT) failed: TLS handshake "
               "failed: certificate verify failed (IP address mismatch: checked \"127.0.0.1\", the certificate "
               "names DNS:localhost))\n",
               url, url);
        CHECK(output_is(out, want));
    }
}

static void test_url_refusals(void)
{
    char src[PATH_MAX], out[PATH_MAX], url[PATH_MAX + 64], want[2 * PATH_MAX];

    TU_FMT(src, "%s/src-small", base);
    TU_FMT(out, "%s/out-usage", base);
    TU_FMT(url, "nfs://localhost:%u%s/g.bin?mountport=%u&uid=0&auto-traverse-mounts=0", (unsigned)srv.port,
           srv.export_dir, (unsigned)srv.port);
    {
        char *argv[] = {cp, "--no-tls", "--no-progress", src, url, NULL};
        CHECK_EQ(tu_run(argv, out, 30), 2);
        TU_FMT(want,
               "rpctls-cp: %s: unknown URL options \"uid\", \"auto-traverse-mounts\" (known: mountport=N, "
               "nfsport=N, version=3)\n(rpctls-cp --help for usage)\n",
               url);
        CHECK(output_is(out, want));
    }
    TU_FMT(url, "nfs://localhost%s/g.bin?version=4", srv.export_dir);
    {
        char *argv[] = {cp, "--no-tls", "--no-progress", src, url, NULL};
        CHECK_EQ(tu_run(argv, out, 30), 2);
        TU_FMT(want, "rpctls-cp: %s: version=4: only NFS version 3 is supported\n(rpctls-cp --help for usage)\n",
               url);
        CHECK(output_is(out, want));
    }
    {
        char *argv[] = {cp, "--no-tls", "--no-progress", src, "nfs://no-such-host.invalid/srv/x", NULL};
        CHECK_EQ(tu_run(argv, out, 60), 1);
        CHECK(tu_file_contains(out, "rpctls-cp: nfs://no-such-host.invalid/srv/x: cannot resolve "
                                    "no-such-host.invalid: "));
    }
    /* A SRC that cannot be copied: status 1 and why, and (ASan build) no
     * leak of what was set up for the destinations. */
    TU_FMT(url, "nfs://localhost:%u%s/g.bin?mountport=%u", (unsigned)srv.port, srv.export_dir, (unsigned)srv.port);
    {
        char missing[PATH_MAX];
        TU_FMT(missing, "%s/no-such-file", base);
        char *argv[] = {cp, "--no-tls", "--no-progress", missing, url, NULL};
        CHECK_EQ(tu_run(argv, out, 30), 1);
        TU_FMT(want, "rpctls-cp: %s: No such file or directory\n", missing);
        CHECK(output_is(out, want));
    }
    {
        char *argv[] = {cp, "--no-tls", "--no-progress", base, url, NULL};
        CHECK_EQ(tu_run(argv, out, 30), 1);
        TU_FMT(want, "rpctls-cp: %s: not a regular file\n", base);
        CHECK(output_is(out, want));
    }
}

static void test_nfsd_mount_tls_required(void)
{
    struct tu_nfsd d;
    struct krpc_cred cred;
    struct nfs3_fh root;
    char err[512], src[PATH_MAX], out[PATH_MAX], url[PATH_MAX + 64];
    int rc;

    REQUIRE(tu_nfsd_init(&d, base, "mount-tls", "required", &certs) == 0);
    d.extra[0] = "--mount-tls";
    d.extra[1] = "required";
    d.extra[2] = NULL;
    REQUIRE(tu_nfsd_start(&d, 0) == 0);
    CHECK(tu_file_contains(d.log, ", MOUNT needs TLS, "));
    tu_cred_sys(&cred, "linux-client");
    rc = tu_mount_plain(d.port, d.export_dir, NULL, &cred, &root, err, sizeof err);
    CHECK_EQ(rc, -EACCES);
    CHECK(strcmp(err, "MNT: AUTH_ERROR: AUTH_TOOWEAK") == 0); /* MOUNT NULL passed: only MNT refused */
    if (strcmp(err, "MNT: AUTH_ERROR: AUTH_TOOWEAK") != 0)
        fprintf(stderr, "plaintext MNT: %d: \"%s\"\n", rc, err);
    /* MNT inside TLS, on the same port. */
    TU_FMT(src, "%s/src-mtls", base);
    TU_FMT(out, "%s/out-mtls", base);
    REQUIRE(tu_write_random_file(src, 70000, 11) == 0);
    TU_FMT(url, "nfs://127.0.0.1:%u%s/m.bin", (unsigned)d.port, d.export_dir);
    {
        char *argv[] = {cp, "--ca", certs.ca_cert, "--verify", "--no-progress", src, url, NULL};
        CHECK_EQ(tu_run(argv, out, 60), 0);
    }
    CHECK_EQ(tu_nfsd_stop(&d), 0);
}

static void test_nfsd_listen_name(void)
{
    struct tu_nfsd d;
    char src[PATH_MAX], back[PATH_MAX], out[PATH_MAX], url[PATH_MAX + 64], line[128], line6[128], first[256] = "";
    FILE *f;

    REQUIRE(tu_nfsd_init(&d, base, "listen-name", "off", NULL) == 0);
    /* After tu_nfsd_start's own --listen 127.0.0.1:0: the last one counts. */
    d.extra[0] = "--listen";
    d.extra[1] = "localhost:0";
    d.extra[2] = NULL;
    REQUIRE(tu_nfsd_start(&d, 0) == 0);
    f = fopen(d.log, "r");
    if (f) {
        if (!fgets(first, sizeof first, f))
            first[0] = '\0';
        fclose(f);
    }
    /* localhost's first address: 127.0.0.1, or ::1 where /etc/hosts lists
     * it first (Debian's default). */
    TU_FMT(line, "rpctls-nfsd: listening on 127.0.0.1:%u\n", (unsigned)d.port);
    TU_FMT(line6, "rpctls-nfsd: listening on [::1]:%u\n", (unsigned)d.port);
    CHECK(strcmp(first, line) == 0 || strcmp(first, line6) == 0);
    TU_FMT(src, "%s/src-listen", base);
    TU_FMT(back, "%s/back-listen", base);
    TU_FMT(out, "%s/out-listen", base);
    REQUIRE(tu_write_random_file(src, 300001, 12) == 0);
    TU_FMT(url, "nfs://localhost:%u%s/l.bin", (unsigned)d.port, d.export_dir);
    {
        char *argv[] = {cp, "--no-tls", "--verify", "--no-progress", src, url, NULL};
        CHECK_EQ(tu_run(argv, out, 60), 0);
    }
    {
        char *argv[] = {cp, "--no-tls", "--no-progress", url, back, NULL};
        CHECK_EQ(tu_run(argv, out, 60), 0);
    }
    CHECK(same_file(src, back));
    CHECK_EQ(tu_nfsd_stop(&d), 0);
}

int main(void)
{
    char real[PATH_MAX], err[256];
    int st;

    if (tu_certs_create(&certs) < 0 || tu_mkdtemp(base, sizeof base, "nfs3-hostname") < 0)
        return 1;
    if (realpath(base, real)) /* the server canonicalises its export path */
        TU_FMT(base, "%s", real);
    tu_tool_path("rpctls-cp", cp, sizeof cp);
    /* The server's certificate names only DNS:localhost. */
    dns_only = certs;
    TU_FMT(dns_only.server_cert, "%s/dns-only.pem", certs.dir);
    TU_FMT(dns_only.server_key, "%s/dns-only.key", certs.dir);
    if (ktls_pki_issue_san(KTLS_PKI_SERVER, "localhost", "DNS:localhost", certs.ca_cert, certs.ca_key,
                           dns_only.server_cert, dns_only.server_key, 1, err, sizeof err) != 0) {
        fprintf(stderr, "certificate: %s\n", err);
        return 1;
    }
    if (tu_nfsd_init(&srv, base, "srv", "required", &dns_only) < 0 || tu_nfsd_start(&srv, 0) < 0) {
        fprintf(stderr, "cannot start rpctls-nfsd\n");
        return 1;
    }
    TEST_RUN(test_name_works);
    TEST_RUN(test_wrong_names_refused);
    TEST_RUN(test_url_refusals);
    TEST_RUN(test_nfsd_mount_tls_required);
    TEST_RUN(test_nfsd_listen_name);
    tu_nfsd_stop(&srv);
    unlink(dns_only.server_cert);
    unlink(dns_only.server_key);
    tu_certs_destroy(&certs);
    tu_rmtree(base);
    st = test_summary();
    return st;
}
