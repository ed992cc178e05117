/*
 * pki.c - a throw-away PKI for loopback use (see rpctls/pki.h).
 */
#include "rpctls/pki.h"
#include "rpctls/ktls.h"

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

/* DER of the draft's NFSv4Principal: SEQUENCE { UTF8String user }. */
static ASN1_STRING *nfsv4_principal_der(const char *user)
{
    size_t n = strlen(user), inner = n < 128 ? 2 + n : 4 + n;
    unsigned char buf[8 + 2 * 256], *p = buf;
    ASN1_STRING *s;

    if (n > 255)
        return NULL;
    /* Lengths up to 255 fit the short form or the one-byte long form. */
    *p++ = 0x30;
    if (inner < 128) {
        *p++ = (unsigned char)inner;
    } else {
        *p++ = 0x81;
        *p++ = (unsigned char)inner;
    }
    *p++ = 0x0c; /* UTF8String */
    if (n < 128) {
        *p++ = (unsigned char)n;
    } else {
        *p++ = 0x81;
        *p++ = (unsigned char)n;
    }
    memcpy(p, user, n);
    p += n;
    if ((s = ASN1_STRING_type_new(V_ASN1_SEQUENCE)) == NULL || !ASN1_STRING_set(s, buf, (int)(p - buf))) {
        ASN1_STRING_free(s);
        return NULL;
    }
    return s;
}

/* Appends an otherName carrying user in one form to gens. */
static int add_user_name(GENERAL_NAMES *gens, const char *user, int draft)
{
    GENERAL_NAME *g = GENERAL_NAME_new();
    ASN1_OBJECT *oid = OBJ_txt2obj(draft ? KTLS_OID_NFSV4_PRINCIPAL : KTLS_OID_FREEBSD_USER, 1);
    ASN1_TYPE *v = ASN1_TYPE_new();
    ASN1_STRING *s = NULL;

    if (g == NULL || oid == NULL || v == NULL)
        goto fail;
    if (draft) {
        if ((s = nfsv4_principal_der(user)) == NULL)
            goto fail;
        ASN1_TYPE_set(v, V_ASN1_SEQUENCE, s);
    } else {
        if ((s = ASN1_UTF8STRING_new()) == NULL || !ASN1_STRING_set(s, user, -1)) {
            ASN1_STRING_free(s);
            goto fail;
        }
        ASN1_TYPE_set(v, V_ASN1_UTF8STRING, s);
    }
    if (!GENERAL_NAME_set0_othername(g, oid, v))
        goto fail;
    if (!sk_GENERAL_NAME_push(gens, g)) {
        GENERAL_NAME_free(g);
        return 0;
    }
    return 1;
fail:
    GENERAL_NAME_free(g);
    ASN1_OBJECT_free(oid);
    ASN1_TYPE_free(v);
    return 0;
}

/* subjectAltName: the names in OpenSSL syntax, then the user's otherNames.
 * Not critical: the subject is never empty (the draft, section 3.5). */
static int add_sans(X509 *x, X509 *issuer, const char *sans, const char *user, unsigned forms)
{
    GENERAL_NAMES *gens = NULL;
    int ok = 1;

    if ((sans == NULL || sans[0] == '\0') && user == NULL)
        return 1;
    if (sans != NULL && sans[0] != '\0') {
        /* Parsed by OpenSSL, then taken back as a stack so that the
         * user's names can follow. */
        X509V3_CTX ctx;
        X509_EXTENSION *ext;

        X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
        if ((ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, sans)) == NULL)
            return 0;
        gens = X509V3_EXT_d2i(ext);
        X509_EXTENSION_free(ext);
    } else {
        gens = sk_GENERAL_NAME_new_null();
    }
    if (gens == NULL)
        return 0;
    if (user != NULL) {
        if (forms == 0)
            forms = KTLS_PKI_USER_FREEBSD;
        if (forms & KTLS_PKI_USER_FREEBSD)
            ok &= add_user_name(gens, user, 0);
        if (forms & KTLS_PKI_USER_DRAFT)
            ok &= add_user_name(gens, user, 1);
    }
    if (ok)
        ok = X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_REPLACE) == 1;
    GENERAL_NAMES_free(gens);
    return ok;
}

/* Issues a certificate for key; issuer NULL means self-signed (a CA). */
static X509 *make_cert(const struct ktls_pki_req *req, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key)
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
    if (req->not_before != 0 && req->not_after != 0) {
        ok &= ASN1_TIME_set(X509_getm_notBefore(x), req->not_before) != NULL;
        ok &= ASN1_TIME_set(X509_getm_notAfter(x), req->not_after) != NULL;
    } else {
        ok &= X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL;
        ok &= X509_gmtime_adj(X509_getm_notAfter(x), (long)req->days * 86400) != NULL;
    }
    ok &= X509_set_pubkey(x, key);
    name = X509_get_subject_name(x);
    ok &= X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"rpctls", -1, -1, 0);
    ok &= X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)req->cn, -1, -1, 0);
    ok &= X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    if (issuer == NULL) {
        issuer = x;
        issuer_key = key;
    }
    ok &= add_ext(x, issuer, NID_subject_key_identifier, "hash");
    ok &= add_ext(x, issuer, NID_authority_key_identifier, "keyid:always");
    if (req->kind == KTLS_PKI_CA) {
        ok &= add_ext(x, issuer, NID_basic_constraints, "critical,CA:TRUE");
        ok &= add_ext(x, issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        ok &= add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE");
        ok &= add_ext(x, issuer, NID_key_usage, "critical,digitalSignature");
        ok &= add_ext(x, issuer, NID_ext_key_usage, req->kind == KTLS_PKI_SERVER ? "serverAuth" : "clientAuth");
    }
    if (ok)
        ok = add_sans(x, issuer, req->sans != NULL                ? req->sans
                                 : req->kind == KTLS_PKI_SERVER ? "IP:127.0.0.1,DNS:localhost"
                                                                : NULL,
                      req->user, req->user_forms);
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
    struct ktls_pki_req req = {.kind = kind, .cn = cn, .ca_cert = ca_cert, .ca_key = ca_key,
                               .cert_out = cert_out, .key_out = key_out, .days = days};
    return ktls_pki_issue_req(&req, err, errlen);
}

int ktls_pki_issue_san(enum ktls_pki_kind kind, const char *cn, const char *sans, const char *ca_cert,
                       const char *ca_key, const char *cert_out, const char *key_out, int days, char *err,
                       size_t errlen)
{
    struct ktls_pki_req req = {.kind = kind, .cn = cn, .sans = sans != NULL ? sans : "", .ca_cert = ca_cert,
                               .ca_key = ca_key, .cert_out = cert_out, .key_out = key_out, .days = days};
    return ktls_pki_issue_req(&req, err, errlen);
}

int ktls_pki_issue_req(const struct ktls_pki_req *req, char *err, size_t errlen)
{
    EVP_PKEY *key = NULL, *issuer_key = NULL;
    X509 *x = NULL, *issuer = NULL;
    int timed = req->not_before != 0 && req->not_after != 0;
    int ret = -1;

    if ((req->kind == KTLS_PKI_CA) != (req->ca_cert == NULL) || (req->ca_cert == NULL) != (req->ca_key == NULL) ||
        (!timed && req->days < 1) || req->cn == NULL || req->cert_out == NULL || req->key_out == NULL) {
        snprintf(err, errlen, "ktls_pki_issue: bad arguments");
        return -1;
    }
    if (req->user != NULL && (strchr(req->user, '@') == NULL || strlen(req->user) > KTLS_MAX_PEER_USER)) {
        snprintf(err, errlen, "user %s: expected NAME@DOMAIN (at most %d bytes)", req->user, KTLS_MAX_PEER_USER);
        return -1;
    }
    if (req->ca_cert != NULL && ((issuer = read_pem(req->ca_cert, 0, err, errlen)) == NULL ||
                                 (issuer_key = read_pem(req->ca_key, 1, err, errlen)) == NULL))
        goto exit;
    if ((key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL ||
        (x = make_cert(req, key, issuer, issuer_key)) == NULL) {
        snprintf(err, errlen, "certificate generation failed: %s", ERR_reason_error_string(ERR_peek_last_error()));
        goto exit;
    }
    if (write_pem(req->cert_out, x, NULL, err, errlen) != 0 || write_pem(req->key_out, NULL, key, err, errlen) != 0)
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
