/*
 * test_ktls_ctx.c - the shared TLS context (issue 8, items 3, 5 and 7):
 *
 *  - ktls_ctx_new refuses each bad file with a message naming it (missing,
 *    a directory, not PEM, a key of another certificate, expired, not yet
 *    valid) and warns about a certificate with fewer than 30 days left;
 *  - the user a client certificate names (FreeBSD's otherName, the draft's
 *    NFSv4Principal, none, not a UTF8String, not user@domain, two of them);
 *  - through krpc_svc: req->peer_user for a verified client certificate,
 *    "" without one; krpc_svc_new fails on a bad key; krpc_svc_reload_tls
 *    gives new connections the new certificate while an old connection
 *    goes on, and a broken file keeps the context that works.
 */
#include <arpa/inet.h>
#include <time.h>

#include "krpc_svc_util.h"
#include "rpctls/pki.h"
#include "test.h"
#include "util/certs.h"
#include "util/logcap.h"
#include "util/nfsd.h"
#include <signal.h>
#include <openssl/x509.h>

#define WHO_PROG 0x20004321u
#define WHO_VERS 1u

static struct tu_certs certs;
static char dir[PATH_MAX];

/* dir/name into buf. */
static const char *path(char *buf, size_t len, const char *name)
{
    if ((size_t)snprintf(buf, len, "%s/%s", dir, name) >= len)
        abort();
    return buf;
}

/* A certificate signed by the test CA into dir/NAME.pem and dir/NAME.key. */
static int issue(const char *name, struct ktls_pki_req req)
{
    char cert[PATH_MAX], key[PATH_MAX], pem[64], k[64], err[256];

    snprintf(pem, sizeof pem, "%s.pem", name);
    snprintf(k, sizeof k, "%s.key", name);
    req.ca_cert = certs.ca_cert;
    req.ca_key = certs.ca_key;
    req.cert_out = path(cert, sizeof cert, pem);
    req.key_out = path(key, sizeof key, k);
    if (req.cn == NULL)
        req.cn = name;
    if (req.days == 0)
        req.days = 365;
    if (ktls_pki_issue_req(&req, err, sizeof err) != 0) {
        fprintf(stderr, "issue %s: %s\n", name, err);
        return -1;
    }
    return 0;
}

/* ktls_ctx_new for a server with these files: the error text, "" if none. */
static int try_server(const char *cert, const char *key, const char *ca, char *err, size_t errlen)
{
    struct ktls_config cfg = {.role = KTLS_SERVER, .cert_file = cert, .key_file = key, .ca_file = ca,
                              .verify_peer = ca ? 1 : 0};
    struct ktls_ctx *ctx = NULL;
    int ret = ktls_ctx_new(&cfg, &ctx, err, errlen);

    ktls_ctx_unref(ctx);
    return ret;
}

static void utc_date(time_t t, char *buf, size_t len)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static void test_bad_files(void)
{
    char err[512], want[3 * PATH_MAX], other[PATH_MAX], junk[PATH_MAX];
    FILE *f;

    /* Good files: no error, no warning (365 days left). */
    {
        struct ktls_config cfg = {.role = KTLS_SERVER, .cert_file = certs.server_cert,
                                  .key_file = certs.server_key, .ca_file = certs.ca_cert, .verify_peer = 1};
        struct ktls_ctx *ctx = NULL;
        CHECK_EQ(ktls_ctx_new(&cfg, &ctx, err, sizeof err), 0);
        REQUIRE(ctx != NULL);
        CHECK(strcmp(ktls_ctx_warning(ctx), "") == 0);
        CHECK(strcmp(ktls_ctx_config(ctx)->cert_file, certs.server_cert) == 0);
        CHECK(ktls_ctx_config(ctx)->cert_file != certs.server_cert); /* its own copy */
        ktls_ctx_unref(ctx);
    }

    /* A key that belongs to another certificate. */
    CHECK_EQ(try_server(certs.server_cert, certs.client_key, certs.ca_cert, err, sizeof err), -EINVAL);
    snprintf(want, sizeof want, "private key %s: does not match the certificate %s", certs.client_key,
             certs.server_cert);
    CHECK(strcmp(err, want) == 0);

    /* A CA file that does not exist. */
    CHECK_EQ(try_server(certs.server_cert, certs.server_key, "/nonexistent/ca.pem", err, sizeof err), -ENOENT);
    CHECK(strcmp(err, "CA file /nonexistent/ca.pem: No such file or directory") == 0);

    /* A certificate path that cannot be read as a file (root reads any
     * mode, so a directory stands in for an unreadable file). */
    CHECK_EQ(try_server(dir, certs.server_key, NULL, err, sizeof err), -EISDIR);
    snprintf(want, sizeof want, "certificate %s: Is a directory", dir);
    CHECK(strcmp(err, want) == 0);

    /* Files that are not PEM. */
    path(junk, sizeof junk, "junk.pem");
    REQUIRE((f = fopen(junk, "w")) != NULL);
    fputs("not a certificate\n", f);
    fclose(f);
    CHECK_EQ(try_server(junk, certs.server_key, NULL, err, sizeof err), -EINVAL);
    snprintf(want, sizeof want, "certificate %s: not a PEM certificate", junk);
    CHECK(strcmp(err, want) == 0);
    CHECK_EQ(try_server(certs.server_cert, junk, NULL, err, sizeof err), -EINVAL);
    snprintf(want, sizeof want, "private key %s: not an unencrypted PEM private key", junk);
    CHECK(strcmp(err, want) == 0);
    CHECK_EQ(try_server(certs.server_cert, certs.server_key, junk, err, sizeof err), -EINVAL);
    snprintf(want, sizeof want, "CA file %s: no PEM certificate in it", junk);
    CHECK(strcmp(err, want) == 0);
    CHECK_EQ(try_server(certs.server_cert, "/nonexistent/server.key", NULL, err, sizeof err), -ENOENT);
    CHECK(strcmp(err, "private key /nonexistent/server.key: No such file or directory") == 0);

    /* A server without a certificate at all. */
    CHECK_EQ(try_server(NULL, NULL, NULL, err, sizeof err), -EINVAL);
    CHECK(strcmp(err, "TLS setup failed: a server needs a certificate (cert_file)") == 0);

    /* The same checks for a client's files. */
    {
        struct ktls_config cfg = {.role = KTLS_CLIENT, .ca_file = "/nonexistent/ca.pem"};
        struct ktls_ctx *ctx = NULL;
        CHECK_EQ(ktls_ctx_new(&cfg, &ctx, err, sizeof err), -ENOENT);
        CHECK(ctx == NULL);
        CHECK(strcmp(err, "CA file /nonexistent/ca.pem: No such file or directory") == 0);
    }
    (void)other;
}

static void test_validity(void)
{
    time_t now = time(NULL);
    char err[512], want[3 * PATH_MAX], cert[PATH_MAX], key[PATH_MAX], date[64];

    /* Expired on 2021-01-01. */
    REQUIRE(issue("expired", (struct ktls_pki_req){.kind = KTLS_PKI_SERVER, .not_before = 1577836800,
                                                   .not_after = 1609459200}) == 0);
    CHECK_EQ(try_server(path(cert, sizeof cert, "expired.pem"), path(key, sizeof key, "expired.key"), NULL, err,
                        sizeof err),
             -EINVAL);
    snprintf(want, sizeof want, "certificate %s: expired on 2021-01-01 00:00:00 UTC", cert);
    CHECK(strcmp(err, want) == 0);

    /* Not valid before 2099-01-01. */
    REQUIRE(issue("future", (struct ktls_pki_req){.kind = KTLS_PKI_SERVER, .not_before = 4070908800,
                                                  .not_after = 4102444800}) == 0);
    CHECK_EQ(try_server(path(cert, sizeof cert, "future.pem"), path(key, sizeof key, "future.key"), NULL, err,
                        sizeof err),
             -EINVAL);
    snprintf(want, sizeof want, "certificate %s: not valid before 2099-01-01 00:00:00 UTC", cert);
    CHECK(strcmp(err, want) == 0);

    /* Ten days and an hour left: loads, with a warning. */
    REQUIRE(issue("soon", (struct ktls_pki_req){.kind = KTLS_PKI_SERVER, .not_before = now - 3600,
                                                .not_after = now + 10 * 86400 + 3600}) == 0);
    {
        struct ktls_config cfg = {.role = KTLS_SERVER, .cert_file = path(cert, sizeof cert, "soon.pem"),
                                  .key_file = path(key, sizeof key, "soon.key")};
        struct ktls_ctx *ctx = NULL;
        CHECK_EQ(ktls_ctx_new(&cfg, &ctx, err, sizeof err), 0);
        REQUIRE(ctx != NULL);
        utc_date(now + 10 * 86400 + 3600, date, sizeof date);
        snprintf(want, sizeof want, "certificate %s expires on %s, in 10 days", cert, date);
        CHECK(strcmp(ktls_ctx_warning(ctx), want) == 0);
        if (strcmp(ktls_ctx_warning(ctx), want) != 0)
            fprintf(stderr, "got \"%s\"\nwant \"%s\"\n", ktls_ctx_warning(ctx), want);
        ktls_ctx_unref(ctx);
    }
}

/* ktls_cert_file_user on dir/name.pem. */
static int user_of(const char *name, char *user, size_t ulen, char *why, size_t wlen)
{
    char p[PATH_MAX], f[64];

    snprintf(f, sizeof f, "%s.pem", name);
    return ktls_cert_file_user(path(p, sizeof p, f), user, ulen, why, wlen);
}

static void test_cert_user(void)
{
    char user[KTLS_MAX_PEER_USER + 1], why[256];

    REQUIRE(issue("u-freebsd", (struct ktls_pki_req){.kind = KTLS_PKI_CLIENT, .user = "alice@example.org",
                                                     .user_forms = KTLS_PKI_USER_FREEBSD}) == 0);
    REQUIRE(issue("u-draft", (struct ktls_pki_req){.kind = KTLS_PKI_CLIENT, .user = "bob@example.org",
                                                   .user_forms = KTLS_PKI_USER_DRAFT,
                                                   .sans = "DNS:client.example.org"}) == 0);
    REQUIRE(issue("u-none", (struct ktls_pki_req){.kind = KTLS_PKI_CLIENT, .sans = "DNS:client.example.org"}) == 0);
    REQUIRE(issue("u-ia5", (struct ktls_pki_req){.kind = KTLS_PKI_CLIENT,
                                                 .sans = "otherName:" KTLS_OID_FREEBSD_USER
                                                         ";IA5STRING:alice@example.org"}) == 0);
    REQUIRE(issue("u-draft-bare", (struct ktls_pki_req){.kind = KTLS_PKI_CLIENT,
                                                        .sans = "otherName:" KTLS_OID_NFSV4_PRINCIPAL
                                                                ";UTF8:alice@example.org"}) == 0);
    REQUIRE(issue("u-noat", (struct ktls_pki_req){.kind = KTLS_PKI_CLIENT,
                                                  .sans = "otherName:" KTLS_OID_FREEBSD_USER ";UTF8:alice"}) == 0);
    REQUIRE(issue("u-two", (struct ktls_pki_req){.kind = KTLS_PKI_CLIENT, .user = "alice@example.org",
                                                 .user_forms = KTLS_PKI_USER_FREEBSD | KTLS_PKI_USER_DRAFT}) == 0);
    REQUIRE(issue("u-two-freebsd",
                  (struct ktls_pki_req){.kind = KTLS_PKI_CLIENT, .user = "alice@example.org",
                                        .sans = "otherName:" KTLS_OID_FREEBSD_USER ";UTF8:root@example.org"}) == 0);
    REQUIRE(issue("u-other-oid", (struct ktls_pki_req){.kind = KTLS_PKI_CLIENT, .user = "carol@example.org",
                                                       .sans = "otherName:1.2.3.4;UTF8:mallory@example.org"}) == 0);

    CHECK_EQ(user_of("u-freebsd", user, sizeof user, why, sizeof why), 1);
    CHECK(strcmp(user, "alice@example.org") == 0);
    CHECK_EQ(user_of("u-draft", user, sizeof user, why, sizeof why), 1);
    CHECK(strcmp(user, "bob@example.org") == 0);
    CHECK_EQ(user_of("u-none", user, sizeof user, why, sizeof why), 0);
    CHECK(strcmp(user, "") == 0);
    CHECK_EQ(user_of("u-other-oid", user, sizeof user, why, sizeof why), 1); /* unknown OIDs are skipped */
    CHECK(strcmp(user, "carol@example.org") == 0);

    CHECK_EQ(user_of("u-ia5", user, sizeof user, why, sizeof why), -1);
    CHECK(strcmp(user, "") == 0);
    CHECK(strcmp(why, "otherName " KTLS_OID_FREEBSD_USER " is not a UTF8String") == 0);
    CHECK_EQ(user_of("u-draft-bare", user, sizeof user, why, sizeof why), -1);
    CHECK(strcmp(why, "otherName " KTLS_OID_NFSV4_PRINCIPAL
                      " is not an NFSv4Principal (a SEQUENCE of one UTF8String)") == 0);
    CHECK_EQ(user_of("u-noat", user, sizeof user, why, sizeof why), -1);
    CHECK(strcmp(why, "otherName " KTLS_OID_FREEBSD_USER ": \"alice\" is not user@domain") == 0);
    CHECK_EQ(user_of("u-two", user, sizeof user, why, sizeof why), -1);
    CHECK(strcmp(user, "") == 0);
    CHECK(strcmp(why, "the certificate names more than one user (\"alice@example.org\" and \"alice@example.org\")") ==
          0);
    CHECK_EQ(user_of("u-two-freebsd", user, sizeof user, why, sizeof why), -1);
    CHECK(strcmp(why, "the certificate names more than one user (\"root@example.org\" and \"alice@example.org\")") ==
          0);
}

/* ---- through krpc_svc -------------------------------------------------- */

/* WHO_PROG procedure 1: the caller's peer_user as an XDR string. */
static int who_proc(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res, void *arg)
{
    size_t n = strlen(req->peer_user);

    (void)args;
    (void)arg;
    krpc_xdr_put_u32(res, (uint32_t)n);
    krpc_xdr_put_fixed(res, req->peer_user, n);
    return KRPC_SUCCESS;
}

static const struct krpc_proc_desc who_procs[2] = {
    [0] = {NULL, KRPC_PROC_IDEMPOTENT, "NULL"},
    [1] = {who_proc, KRPC_PROC_IDEMPOTENT, "WHO"},
};

/* TLS with this client certificate (NULL: none), then WHO: the user the
 * server saw into user. 0, or -1 when the session did not work. */
static int who_am_i(uint16_t port, const char *cert, const char *key, char *user, size_t ulen)
{
    static uint32_t xid = 0x51000000;
    struct tls_opts o = {.ca_file = certs.ca_cert, .cert_file = cert, .key_file = key};
    struct krpc_reply_hdr h;
    unsigned char res[512];
    size_t rl = 0;
    uint32_t n;
    struct tc t;
    char err[256];
    int ret = -1;

    user[0] = '\0';
    if (tc_open_tls(&t, port, &o, err, sizeof err) != 0) {
        fprintf(stderr, "who_am_i: %s\n", err);
        return -1;
    }
    if (tc_call(&t, ++xid, WHO_PROG, WHO_VERS, 1, KRPC_AUTH_SYS, NULL, 0, &h, res, sizeof res, &rl) == 0 &&
        rh_accepted(&h, xid, KRPC_SUCCESS) && rl >= 4) {
        memcpy(&n, res, 4);
        n = ntohl(n);
        if (n < ulen && 4 + n <= rl) {
            memcpy(user, res + 4, n);
            user[n] = '\0';
            ret = 0;
        }
    }
    tc_close(&t);
    return ret;
}

static void test_svc_peer_user(void)
{
    struct krpc_svc_config cfg;
    struct krpc_prog_desc who = {WHO_PROG, WHO_VERS, 2, who_procs, NULL, 0};
    struct test_server ts;
    struct tu_logcap lc;
    char user[KTLS_MAX_PEER_USER + 1], c1[PATH_MAX], k1[PATH_MAX], c2[PATH_MAX], k2[PATH_MAX], line[1024];
    const char *const needles[] = {"names no usable user", "the certificate names more than one user", NULL};

    memset(&cfg, 0, sizeof cfg);
    cfg.tls = KRPC_SVC_TLS_OPTIONAL;
    cfg.tlscfg.cert_file = certs.server_cert;
    cfg.tlscfg.key_file = certs.server_key;
    cfg.tlscfg.ca_file = certs.ca_cert;
    cfg.tlscfg.verify_peer = 1;
    REQUIRE(ts_start(&ts, &cfg) == 0);
    ts_pause(&ts);
    CHECK_EQ(krpc_svc_register(ts.svc, &who), 0);
    ts_resume(&ts);

    CHECK_EQ(who_am_i(ts.port, path(c1, sizeof c1, "u-freebsd.pem"), path(k1, sizeof k1, "u-freebsd.key"), user,
                      sizeof user),
             0);
    CHECK(strcmp(user, "alice@example.org") == 0);
    CHECK_EQ(who_am_i(ts.port, path(c1, sizeof c1, "u-draft.pem"), path(k1, sizeof k1, "u-draft.key"), user,
                      sizeof user),
             0);
    CHECK(strcmp(user, "bob@example.org") == 0);
    CHECK_EQ(who_am_i(ts.port, certs.client_cert, certs.client_key, user, sizeof user), 0);
    CHECK(strcmp(user, "") == 0);
    CHECK_EQ(who_am_i(ts.port, NULL, NULL, user, sizeof user), 0);
    CHECK(strcmp(user, "") == 0);

    /* Two identities: none taken, and the log says why. */
    REQUIRE(tu_logcap_start(&lc) == 0);
    CHECK_EQ(who_am_i(ts.port, path(c2, sizeof c2, "u-two.pem"), path(k2, sizeof k2, "u-two.key"), user, sizeof user),
             0);
    CHECK(strcmp(user, "") == 0);
    CHECK(tu_logcap_wait_line(&lc, 3000, line, sizeof line, needles) == 1);
    tu_logcap_stop(&lc);
    ts_stop(&ts);
}

static void test_svc_new_bad_key(void)
{
    struct krpc_svc_config cfg;
    struct krpc_loop *loop;
    struct krpc_svc *svc = NULL;
    struct tu_logcap lc;
    char want[3 * PATH_MAX], line[3 * PATH_MAX];
    const char *needles[] = {want, NULL};

    REQUIRE(krpc_loop_new(&loop) == 0);
    memset(&cfg, 0, sizeof cfg);
    krpc_parse_addr("127.0.0.1:0", &cfg.addr, &cfg.addrlen);
    cfg.tls = KRPC_SVC_TLS_REQUIRED;
    cfg.tlscfg.cert_file = certs.server_cert;
    cfg.tlscfg.key_file = certs.client_key;
    snprintf(want, sizeof want, "rpc server: private key %s: does not match the certificate %s", certs.client_key,
             certs.server_cert);
    REQUIRE(tu_logcap_start(&lc) == 0);
    CHECK_EQ(krpc_svc_new(loop, &cfg, &svc), -EINVAL);
    CHECK(svc == NULL);
    CHECK(tu_logcap_wait_line(&lc, 1000, line, sizeof line, needles) == 1);
    tu_logcap_stop(&lc);
    krpc_loop_free(loop);
}

/* The subject CN the server presented on t. */
static void server_cn(struct tc *t, char *cn, size_t len)
{
    X509 *x = SSL_get1_peer_certificate(t->ssl);

    cn[0] = '\0';
    if (x != NULL)
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, (int)len);
    X509_free(x);
}

static void test_svc_reload(void)
{
    struct krpc_svc_config cfg;
    struct ktls_config newcfg;
    struct test_server ts;
    struct tls_opts o = {.ca_file = certs.ca_cert};
    struct krpc_reply_hdr h;
    struct tc old, fresh;
    char ca[PATH_MAX], ka[PATH_MAX], cb[PATH_MAX], kb[PATH_MAX], cn[128], err[512], want[3 * PATH_MAX];

    REQUIRE(issue("server-a", (struct ktls_pki_req){.kind = KTLS_PKI_SERVER}) == 0);
    REQUIRE(issue("server-b", (struct ktls_pki_req){.kind = KTLS_PKI_SERVER}) == 0);
    memset(&cfg, 0, sizeof cfg);
    cfg.tls = KRPC_SVC_TLS_OPTIONAL;
    cfg.tlscfg.cert_file = path(ca, sizeof ca, "server-a.pem");
    cfg.tlscfg.key_file = path(ka, sizeof ka, "server-a.key");
    REQUIRE(ts_start(&ts, &cfg) == 0);

    REQUIRE(tc_open_tls(&old, ts.port, &o, err, sizeof err) == 0);
    server_cn(&old, cn, sizeof cn);
    CHECK(strcmp(cn, "server-a") == 0);

    memset(&newcfg, 0, sizeof newcfg);
    newcfg.cert_file = path(cb, sizeof cb, "server-b.pem");
    newcfg.key_file = path(kb, sizeof kb, "server-b.key");
    CHECK_EQ(krpc_svc_reload_tls(ts.svc, &newcfg, err, sizeof err), 0);
    CHECK(strcmp(err, "") == 0);

    REQUIRE(tc_open_tls(&fresh, ts.port, &o, err, sizeof err) == 0);
    server_cn(&fresh, cn, sizeof cn);
    CHECK(strcmp(cn, "server-b") == 0);
    tc_close(&fresh);
    /* The connection made before the reload goes on with its session. */
    CHECK(tc_call(&old, 7, TP_PROG, TP_VERS_LO, TP_NULL, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) == 0 &&
          rh_accepted(&h, 7, KRPC_SUCCESS));

    /* A broken file: refused with its name, and B stays. */
    newcfg.cert_file = dir;
    CHECK_EQ(krpc_svc_reload_tls(ts.svc, &newcfg, err, sizeof err), -EISDIR);
    snprintf(want, sizeof want, "certificate %s: Is a directory", dir);
    CHECK(strcmp(err, want) == 0);
    REQUIRE(tc_open_tls(&fresh, ts.port, &o, err, sizeof err) == 0);
    server_cn(&fresh, cn, sizeof cn);
    CHECK(strcmp(cn, "server-b") == 0);
    tc_close(&fresh);
    CHECK(tc_call(&old, 8, TP_PROG, TP_VERS_LO, TP_NULL, KRPC_AUTH_NONE, NULL, 0, &h, NULL, 0, NULL) == 0 &&
          rh_accepted(&h, 8, KRPC_SUCCESS));
    tc_close(&old);
    ts_stop(&ts);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    krpc_log_set_level(KRPC_LOG_WARN);
    if (tu_certs_create(&certs) != 0)
        return 1;
    snprintf(dir, sizeof dir, "%s", certs.dir);
    TEST_RUN(test_bad_files);
    TEST_RUN(test_validity);
    TEST_RUN(test_cert_user);
    TEST_RUN(test_svc_peer_user);
    TEST_RUN(test_svc_new_bad_key);
    TEST_RUN(test_svc_reload);
    tu_rmtree(dir); /* our certificates too */
    certs.dir[0] = '\0';
    return test_summary();
}
