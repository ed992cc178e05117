/*
 * pki.c - a throw-away PKI for loopback use (see rpctls/pki.h).
 */
#include "rpctls/pki.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    if ((ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL)
        return 0;
    ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

/* Issues a certificate for key; issuer NULL means self-signed (a CA). */
static X509 *make_cert(enum ktls_pki_kind kind, const char *cn, const char *sans, EVP_PKEY *key, X509 *issuer,
                       EVP_PKEY *issuer_key, int days)
{
    X509 *x = X509_new();
    X509_NAME *name;
    uint64_t serial = 0;
    int ok = 1;

    if (x == NULL)
        return NULL;
    /* A random serial: certificates from different runs never collide. */
    ok &= RAND_bytes((unsigned char *)&serial, sizeof(serial)) == 1;
    ok &= ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), serial >> 1) == 1;
    ok &= X509_set_version(x, 2);
    ok &= X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL;
    ok &= X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400) != NULL;
    ok &= X509_set_pubkey(x, key);
    name = X509_get_subject_name(x);
    ok &= X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"rpctls", -1, -1, 0);
    ok &= X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    ok &= X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    if (issuer == NULL) {
        issuer = x;
        issuer_key = key;
    }
    ok &= add_ext(x, issuer, NID_subject_key_identifier, "hash");
    ok &= add_ext(x, issuer, NID_authority_key_identifier, "keyid:always");
    if (kind == KTLS_PKI_CA) {
        ok &= add_ext(x, issuer, NID_basic_constraints, "critical,CA:TRUE");
        ok &= add_ext(x, issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        ok &= add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE");
        ok &= add_ext(x, issuer, NID_key_usage, "critical,digitalSignature");
        ok &= add_ext(x, issuer, NID_ext_key_usage, kind == KTLS_PKI_SERVER ? "serverAuth" : "clientAuth");
    }
    if (sans != NULL && sans[0] != '\0')
        ok &= add_ext(x, issuer, NID_subject_alt_name, sans);
    if (ok)
        ok = X509_sign(x, issuer_key, EVP_sha256()) > 0;
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* Writes a certificate (mode 0644) or a private key (mode 0600). */
static int write_pem(const char *path, X509 *cert, EVP_PKEY *key, char *err, size_t errlen)
{
    FILE *f;
    int fd, ok;

    unlink(path); /* so that the mode below applies */
    if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, cert ? 0644 : 0600)) < 0 ||
        (f = fdopen(fd, "w")) == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    ok = cert ? PEM_write_X509(f, cert) : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    if (fclose(f) != 0 || !ok) {
        snprintf(err, errlen, "%s: write failed", path);
        return -1;
    }
    return 0;
}

static void *read_pem(const char *path, int want_key, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    void *obj;

    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    obj = want_key ? (void *)PEM_read_PrivateKey(f, NULL, NULL, NULL) : (void *)PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (obj == NULL)
        snprintf(err, errlen, "%s: not a PEM %s", path, want_key ? "private key" : "certificate");
    return obj;
}

int ktls_pki_issue(enum ktls_pki_kind kind, const char *cn, const char *ca_cert, const char *ca_key,
                   const char *cert_out, const char *key_out, int days, char *err, size_t errlen)
{
    return ktls_pki_issue_san(kind, cn, kind == KTLS_PKI_SERVER ? "IP:127.0.0.1,DNS:localhost" : NULL, ca_cert,
                              ca_key, cert_out, key_out, days, err, errlen);
}

int ktls_pki_issue_san(enum ktls_pki_kind kind, const char *cn, const char *sans, const char *ca_cert,
                       const char *ca_key, const char *cert_out, const char *key_out, int days, char *err,
                       size_t errlen)
{
    EVP_PKEY *key = NULL, *issuer_key = NULL;
    X509 *x = NULL, *issuer = NULL;
    int ret = -1;

    if ((kind == KTLS_PKI_CA) != (ca_cert == NULL) || (ca_cert == NULL) != (ca_key == NULL) || days < 1) {
        snprintf(err, errlen, "ktls_pki_issue: bad arguments");
        return -1;
    }
    if (ca_cert != NULL && ((issuer = read_pem(ca_cert, 0, err, errlen)) == NULL ||
                            (issuer_key = read_pem(ca_key, 1, err, errlen)) == NULL))
        goto exit;
    if ((key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL ||
        (x = make_cert(kind, cn, sans, key, issuer, issuer_key, days)) == NULL) {
        snprintf(err, errlen, "certificate generation failed: %s", ERR_reason_error_string(ERR_peek_last_error()));
        goto exit;
    }
    if (write_pem(cert_out, x, NULL, err, errlen) != 0 || write_pem(key_out, NULL, key, err, errlen) != 0)
        goto exit;
    ret = 0;
exit:
    X509_free(x);
    X509_free(issuer);
    EVP_PKEY_free(key);
    EVP_PKEY_free(issuer_key);
    return ret;
}

int ktls_pki_make_dir(const char *dir, int days, char *err, size_t errlen)
{
    char p[6][4096];
    static const char *const names[6] = {"ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key"};

    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    for (int i = 0; i < 6; i++) {
        if ((size_t)snprintf(p[i], sizeof(p[i]), "%s/%s", dir, names[i]) >= sizeof(p[i])) {
            snprintf(err, errlen, "%s: path too long", dir);
            return -1;
        }
    }
    if (ktls_pki_issue(KTLS_PKI_CA, "rpctls CA", NULL, NULL, p[0], p[1], days, err, errlen) != 0 ||
        ktls_pki_issue(KTLS_PKI_SERVER, "localhost", p[0], p[1], p[2], p[3], days, err, errlen) != 0 ||
        ktls_pki_issue(KTLS_PKI_CLIENT, "rpctls-client", p[0], p[1], p[4], p[5], days, err, errlen) != 0)
        return -1;
    return 0;
}
