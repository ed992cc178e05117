/*
 * test_nfsd_tls_files.c - rpctls-nfsd and rpctls-cp with bad TLS files, and
 * rpctls-nfsd's SIGHUP reload (issue 8, items 3 and 7):
 *
 *  - each bad file (a key of another certificate, a missing CA, a
 *    certificate path that is a directory, a file that is not PEM, an
 *    expired certificate) stops rpctls-nfsd before it listens, with exit
 *    status 1 and a line naming the file; the same files stop rpctls-cp
 *    before it connects (it is pointed at a port nobody listens on, so only
 *    the file check can produce the line);
 *  - a certificate with 10 days left starts with a warning;
 *  - SIGHUP: a client connected under certificate A stays; after the files
 *    are replaced by B and SIGHUP, a new client sees B and the old one's
 *    calls are still answered; after a broken file and SIGHUP the log names
 *    the file and new clients still get B.
 */
#include <arpa/inet.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include "krpc_svc_util.h"
#include "rpctls/nfs3.h"
#include "rpctls/pki.h"
#include "test.h"
#include "util/certs.h"
#include "util/nfsd.h"

static struct tu_certs certs;
static char base[PATH_MAX], nfsd[PATH_MAX], cp[PATH_MAX];

static void file_path(char *buf, size_t len, const char *name)
{
    if ((size_t)snprintf(buf, len, "%s/%s", base, name) >= len)
        abort();
}

static int issue(const char *name, const char *cn, enum ktls_pki_kind kind, time_t nb, time_t na)
{
    char c[PATH_MAX], k[PATH_MAX], f[64], err[256];
    struct ktls_pki_req req = {.kind = kind, .cn = cn, .ca_cert = certs.ca_cert, .ca_key = certs.ca_key,
                               .days = 365, .not_before = nb, .not_after = na};

    snprintf(f, sizeof f, "%s.pem", name);
    file_path(c, sizeof c, f);
    snprintf(f, sizeof f, "%s.key", name);
    file_path(k, sizeof k, f);
    req.cert_out = c;
    req.key_out = k;
    if (ktls_pki_issue_req(&req, err, sizeof err) != 0) {
        fprintf(stderr, "issue %s: %s\n", name, err);
        return -1;
    }
    return 0;
}

/* The whole output of a run, for exact comparison. */
static char *slurp(const char *file)
{
    FILE *f = fopen(file, "r");
    char *buf = calloc(1, 65536);
    size_t n;

    if (f == NULL || buf == NULL) {
        if (f)
            fclose(f);
        free(buf);
        return NULL;
    }
    n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Runs rpctls-nfsd with these files; checks exit status 1 and that the
 * output is exactly want (one line). */
static void nfsd_refuses(const char *cert, const char *key, const char *ca, const char *want)
{
    char out[PATH_MAX], exp[PATH_MAX], st[PATH_MAX], *text;
    char *argv[] = {nfsd, "--export", exp, "--listen", "127.0.0.1:0", "--tls", "required", "--cert", (char *)cert,
                    "--key", (char *)key, "--rpcbind", "off", "--state-dir", st, "--ca", (char *)ca, NULL};

    file_path(out, sizeof out, "nfsd.out");
    file_path(exp, sizeof exp, "export");
    file_path(st, sizeof st, "state");
    CHECK_EQ(tu_run(argv, out, 20), 1);
    text = slurp(out);
    REQUIRE(text != NULL);
    CHECK(strcmp(text, want) == 0);
    if (strcmp(text, want) != 0)
        fprintf(stderr, "rpctls-nfsd said:\n%swanted:\n%s", text, want);
    CHECK(strstr(text, "listening") == NULL);
    free(text);
}

/* The same for rpctls-cp, pointed at a port with no server. */
static void cp_refuses(const char *cert, const char *key, const char *ca, const char *want)
{
    char out[PATH_MAX], src[PATH_MAX], *text;
    char *argv[12];
    int argc = 0;

    argv[argc++] = cp;
    argv[argc++] = "--ca";
    argv[argc++] = (char *)ca;
    if (cert != NULL) {
        argv[argc++] = "--cert";
        argv[argc++] = (char *)cert;
        argv[argc++] = "--key";
        argv[argc++] = (char *)key;
    }
    argv[argc++] = src;
    argv[argc++] = "nfs://127.0.0.1:9/nowhere/file";
    argv[argc] = NULL;

    file_path(out, sizeof out, "cp.out");
    file_path(src, sizeof src, "src");
    CHECK_EQ(tu_run(argv, out, 20), 1);
    text = slurp(out);
    REQUIRE(text != NULL);
    CHECK(strcmp(text, want) == 0);
    if (strcmp(text, want) != 0)
        fprintf(stderr, "rpctls-cp said:\n%swanted:\n%s", text, want);
    free(text);
}

static void test_bad_files(void)
{
    char want[4 * PATH_MAX], junk[PATH_MAX], exp_c[PATH_MAX], exp_k[PATH_MAX], cexp_c[PATH_MAX], cexp_k[PATH_MAX];
    FILE *f;

    file_path(junk, sizeof junk, "junk.pem");
    REQUIRE((f = fopen(junk, "w")) != NULL);
    fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", f);
    fclose(f);
    REQUIRE(issue("expired", "localhost", KTLS_PKI_SERVER, 1577836800, 1609459200) == 0);
    REQUIRE(issue("client-expired", "old-client", KTLS_PKI_CLIENT, 1577836800, 1609459200) == 0);
    file_path(exp_c, sizeof exp_c, "expired.pem");
    file_path(exp_k, sizeof exp_k, "expired.key");
    file_path(cexp_c, sizeof cexp_c, "client-expired.pem");
    file_path(cexp_k, sizeof cexp_k, "client-expired.key");

    snprintf(want, sizeof want, "rpctls-nfsd: private key %s: does not match the certificate %s\n", certs.client_key,
             certs.server_cert);
    nfsd_refuses(certs.server_cert, certs.client_key, certs.ca_cert, want);
    nfsd_refuses(certs.server_cert, certs.server_key, "/nonexistent/ca.pem",
                 "rpctls-nfsd: CA file /nonexistent/ca.pem: No such file or directory\n");
    snprintf(want, sizeof want, "rpctls-nfsd: certificate %s: Is a directory\n", base);
    nfsd_refuses(base, certs.server_key, certs.ca_cert, want);
    snprintf(want, sizeof want, "rpctls-nfsd: certificate %s: not a PEM certificate\n", junk);
    nfsd_refuses(junk, certs.server_key, certs.ca_cert, want);
    snprintf(want, sizeof want, "rpctls-nfsd: certificate %s: expired on 2021-01-01 00:00:00 UTC\n", exp_c);
    nfsd_refuses(exp_c, exp_k, certs.ca_cert, want);

    cp_refuses(NULL, NULL, "/nonexistent/ca.pem", "rpctls-cp: CA file /nonexistent/ca.pem: No such file or directory\n");
    snprintf(want, sizeof want, "rpctls-cp: CA file %s: no PEM certificate in it\n", junk);
    cp_refuses(NULL, NULL, junk, want);
    snprintf(want, sizeof want, "rpctls-cp: certificate %s: Is a directory\n", base);
    cp_refuses(base, certs.client_key, certs.ca_cert, want);
    snprintf(want, sizeof want, "rpctls-cp: private key %s: does not match the certificate %s\n", certs.server_key,
             certs.client_cert);
    cp_refuses(certs.client_cert, certs.server_key, certs.ca_cert, want);
    snprintf(want, sizeof want, "rpctls-cp: certificate %s: expired on 2021-01-01 00:00:00 UTC\n", cexp_c);
    cp_refuses(cexp_c, cexp_k, certs.ca_cert, want);
}

/* ---- SIGHUP -------------------------------------------------------------- */

static int copy_file(const char *from, const char *to)
{
    char buf[8192];
    FILE *in = fopen(from, "r"), *out;
    size_t n;
    int ret = 0;

    if (in == NULL)
        return -1;
    /* A new file renamed over the old one, as an administrator's tools do. */
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.new", to);
    if ((out = fopen(tmp, "w")) == NULL) {
        fclose(in);
        return -1;
    }
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            ret = -1;
    fclose(in);
    if (fclose(out) != 0 || ret != 0)
        return -1;
    return rename(tmp, to);
}

static void server_cn(struct tc *t, char *cn, size_t len)
{
    X509 *x = SSL_get1_peer_certificate(t->ssl);

    cn[0] = '\0';
    if (x != NULL)
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, (int)len);
    X509_free(x);
}

/* Waits up to 10 s for needle in the server's log. */
static int log_has(const struct tu_nfsd *d, const char *needle)
{
    for (int i = 0; i < 200; i++) {
        if (tu_file_contains(d->log, needle))
            return 1;
        usleep(50 * 1000);
    }
    return 0;
}

static int nfs_null(struct tc *t, uint32_t xid)
{
    struct krpc_reply_hdr h;
    return tc_call(t, xid, NFS3_PROGRAM, NFS3_VERSION, 0, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) == 0 &&
           rh_accepted(&h, xid, KRPC_SUCCESS);
}

static void test_sighup(void)
{
    struct tu_certs live; /* the paths rpctls-nfsd is started with */
    struct tu_nfsd d;
    struct tls_opts o = {.ca_file = certs.ca_cert};
    struct tc old, fresh;
    char a_c[PATH_MAX], a_k[PATH_MAX], b_c[PATH_MAX], b_k[PATH_MAX], cn[128], err[256], want[4 * PATH_MAX];
    char soon_c[PATH_MAX], soon_k[PATH_MAX];
    time_t now = time(NULL);
    FILE *f;

    REQUIRE(issue("server-a", "server-a", KTLS_PKI_SERVER, 0, 0) == 0);
    REQUIRE(issue("server-b", "server-b", KTLS_PKI_SERVER, 0, 0) == 0);
    REQUIRE(issue("soon", "server-soon", KTLS_PKI_SERVER, now - 3600, now + 10 * 86400 + 3600) == 0);
    file_path(a_c, sizeof a_c, "server-a.pem");
    file_path(a_k, sizeof a_k, "server-a.key");
    file_path(b_c, sizeof b_c, "server-b.pem");
    file_path(b_k, sizeof b_k, "server-b.key");
    file_path(soon_c, sizeof soon_c, "soon.pem");
    file_path(soon_k, sizeof soon_k, "soon.key");
    live = certs;
    file_path(live.server_cert, sizeof live.server_cert, "live.pem");
    file_path(live.server_key, sizeof live.server_key, "live.key");

    /* A certificate with 10 days left: starts, with a warning. */
    REQUIRE(copy_file(soon_c, live.server_cert) == 0 && copy_file(soon_k, live.server_key) == 0);
    REQUIRE(tu_nfsd_init(&d, base, "soon", "required", &live) == 0);
    REQUIRE(tu_nfsd_start(&d, 0) == 0);
    snprintf(want, sizeof want, "rpctls-nfsd: warning: certificate %s expires on ", live.server_cert);
    CHECK(tu_file_contains(d.log, want));
    CHECK(tu_file_contains(d.log, ", in 10 days\n"));
    CHECK_EQ(tu_nfsd_stop(&d), 0);

    REQUIRE(copy_file(a_c, live.server_cert) == 0 && copy_file(a_k, live.server_key) == 0);
    REQUIRE(tu_nfsd_init(&d, base, "hup", "required", &live) == 0);
    REQUIRE(tu_nfsd_start(&d, 0) == 0);
    CHECK(!tu_file_contains(d.log, "warning"));

    REQUIRE(tc_open_tls(&old, d.port, &o, err, sizeof err) == 0);
    server_cn(&old, cn, sizeof cn);
    CHECK(strcmp(cn, "server-a") == 0);
    CHECK(nfs_null(&old, 1));

    /* New files, SIGHUP: new connections get B, the old one goes on. */
    REQUIRE(copy_file(b_c, live.server_cert) == 0 && copy_file(b_k, live.server_key) == 0);
    REQUIRE(kill(d.pid, SIGHUP) == 0);
    snprintf(want, sizeof want, "rpctls-nfsd: SIGHUP: reloaded %s, %s, %s; new connections use them\n",
             live.server_cert, live.server_key, live.ca_cert);
    CHECK(log_has(&d, want));
    REQUIRE(tc_open_tls(&fresh, d.port, &o, err, sizeof err) == 0);
    server_cn(&fresh, cn, sizeof cn);
    CHECK(strcmp(cn, "server-b") == 0);
    CHECK(nfs_null(&fresh, 2));
    tc_close(&fresh);
    CHECK(nfs_null(&old, 3));

    /* A broken certificate file, SIGHUP: named in the log, B stays. */
    REQUIRE((f = fopen(live.server_cert, "w")) != NULL);
    fputs("garbage\n", f);
    fclose(f);
    REQUIRE(kill(d.pid, SIGHUP) == 0);
    snprintf(want, sizeof want,
             "rpctls-nfsd: SIGHUP: TLS files not reloaded, the ones loaded before stay in use: certificate %s: not a "
             "PEM certificate\n",
             live.server_cert);
    CHECK(log_has(&d, want));
    REQUIRE(tc_open_tls(&fresh, d.port, &o, err, sizeof err) == 0);
    server_cn(&fresh, cn, sizeof cn);
    CHECK(strcmp(cn, "server-b") == 0);
    CHECK(nfs_null(&fresh, 4));
    tc_close(&fresh);
    CHECK(nfs_null(&old, 5));
    tc_close(&old);
    CHECK_EQ(tu_nfsd_stop(&d), 0);
}

int main(void)
{
    char src[PATH_MAX];
    FILE *f;

    signal(SIGPIPE, SIG_IGN);
    if (tu_certs_create(&certs) != 0 || tu_mkdtemp(base, sizeof base, "tlsfiles") != 0)
        return 1;
    tu_tool_path("rpctls-nfsd", nfsd, sizeof nfsd);
    tu_tool_path("rpctls-cp", cp, sizeof cp);
    file_path(src, sizeof src, "src");
    if ((f = fopen(src, "w")) == NULL)
        return 1;
    fputs("data\n", f);
    fclose(f);
    TEST_RUN(test_bad_files);
    TEST_RUN(test_sighup);
    tu_rmtree(base);
    tu_certs_destroy(&certs);
    return test_summary();
}
