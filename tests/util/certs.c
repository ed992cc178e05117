/*
 * tests/util/certs.c - test PKI generation (see certs.h).
 */
#include "util/certs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL)
        return 0;
    ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

/* Issues a certificate for key; issuer NULL means self-signed. */
static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, int is_ca, const char *san,
                       const char *eku, long serial)
{
    X509 *x = X509_new();
    X509_NAME *name;
    int ok = 1;

    if (x == NULL)
        return NULL;
    ok &= X509_set_version(x, 2);
    ok &= ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    ok &= X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL;
    ok &= X509_gmtime_adj(X509_getm_notAfter(x), 30L * 86400) != NULL;
    ok &= X509_set_pubkey(x, key);
    name = X509_get_subject_name(x);
    ok &= X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"rpctls tests", -1, -1, 0);
    ok &= X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    ok &= X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    if (!issuer) {
        issuer = x;
        issuer_key = key;
    }
    ok &= add_ext(x, issuer, NID_subject_key_identifier, "hash");
    ok &= add_ext(x, issuer, NID_authority_key_identifier, "keyid:always");
    if (is_ca) {
        ok &= add_ext(x, issuer, NID_basic_constraints, "critical,CA:TRUE");
        ok &= add_ext(x, issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        ok &= add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE");
        ok &= add_ext(x, issuer, NID_key_usage, "critical,digitalSignature");
        if (eku)
            ok &= add_ext(x, issuer, NID_ext_key_usage, eku);
    }
    if (san)
        ok &= add_ext(x, issuer, NID_subject_alt_name, san);
    if (ok)
        ok = X509_sign(x, issuer_key, EVP_sha256()) > 0;
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static int write_pem(const char *path, X509 *cert, EVP_PKEY *key)
{
    FILE *f = fopen(path, "w");
    int ok;

    if (f == NULL)
        return 0;
    ok = cert ? PEM_write_X509(f, cert) : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    return fclose(f) == 0 && ok;
}

static void set_path(char *out, const struct tu_certs *c, const char *file)
{
    snprintf(out, PATH_MAX, "%s/%s", c->dir, file);
}

int tu_certs_create(struct tu_certs *c)
{
    EVP_PKEY *k[5] = {NULL};
    X509 *x[5] = {NULL};
    const char *tmp = getenv("TMPDIR");
    int ok = 1;

    memset(c, 0, sizeof(*c));
    snprintf(c->dir, sizeof(c->dir), "%s/rpctls-certs-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(c->dir) == NULL) {
        perror("mkdtemp");
        c->dir[0] = '\0';
        return -1;
    }
    set_path(c->ca_cert, c, "ca.pem");
    set_path(c->ca_key, c, "ca.key");
    set_path(c->server_cert, c, "server.pem");
    set_path(c->server_key, c, "server.key");
    set_path(c->client_cert, c, "client.pem");
    set_path(c->client_key, c, "client.key");
    set_path(c->other_ca_cert, c, "other-ca.pem");
    set_path(c->other_ca_key, c, "other-ca.key");
    set_path(c->other_client_cert, c, "other-client.pem");
    set_path(c->other_client_key, c, "other-client.key");

    for (int i = 0; i < 5 && ok; i++)
        ok = (k[i] = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) != NULL;
    if (ok)
        ok = (x[0] = make_cert("rpctls test CA", k[0], NULL, NULL, 1, NULL, NULL, 1)) != NULL &&
             (x[1] = make_cert("localhost", k[1], x[0], k[0], 0, "IP:127.0.0.1,DNS:localhost", "serverAuth", 2)) !=
                 NULL &&
             (x[2] = make_cert("rpctls-test-client", k[2], x[0], k[0], 0, NULL, "clientAuth", 3)) != NULL &&
             (x[3] = make_cert("rpctls other CA", k[3], NULL, NULL, 1, NULL, NULL, 1)) != NULL &&
             (x[4] = make_cert("rpctls-other-client", k[4], x[3], k[3], 0, NULL, "clientAuth", 2)) != NULL;
    if (ok)
        ok = write_pem(c->ca_cert, x[0], NULL) && write_pem(c->ca_key, NULL, k[0]) &&
             write_pem(c->server_cert, x[1], NULL) && write_pem(c->server_key, NULL, k[1]) &&
             write_pem(c->client_cert, x[2], NULL) && write_pem(c->client_key, NULL, k[2]) &&
             write_pem(c->other_ca_cert, x[3], NULL) && write_pem(c->other_ca_key, NULL, k[3]) &&
             write_pem(c->other_client_cert, x[4], NULL) && write_pem(c->other_client_key, NULL, k[4]);
    for (int i = 0; i < 5; i++) {
        X509_free(x[i]);
        EVP_PKEY_free(k[i]);
    }
    if (!ok) {
        fprintf(stderr, "tu_certs_create: certificate generation failed\n");
        ERR_print_errors_fp(stderr);
        tu_certs_destroy(c);
        return -1;
    }
    return 0;
}

void tu_certs_destroy(struct tu_certs *c)
{
    const char *files[] = {c->ca_cert,     c->ca_key,       c->server_cert,   c->server_key,
                           c->client_cert, c->client_key,   c->other_ca_cert, c->other_ca_key,
                           c->other_client_cert, c->other_client_key};

    if (c->dir[0] == '\0')
        return;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        if (files[i][0])
            unlink(files[i]);
    rmdir(c->dir);
    c->dir[0] = '\0';
}
