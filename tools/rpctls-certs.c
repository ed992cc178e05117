/*
 * rpctls-certs - a small PKI for loopback use of rpctls-nfsd and rpctls-cp,
 * made with the OpenSSL C API (no openssl command needed).
 *
 *   DIR/ca.pem, DIR/ca.key          self-signed CA
 *   DIR/server.pem, DIR/server.key  CN=localhost, SAN IP:127.0.0.1, DNS:localhost,
 *                                   extendedKeyUsage serverAuth
 *   DIR/client.pem, DIR/client.key  CN=rpctls-client, extendedKeyUsage clientAuth
 *
 * Keys are EC P-256, PEM, unencrypted, mode 0600. Existing files are
 * replaced. The file names are printed on stdout, one per line.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: rpctls-certs [--days N] DIR\n"
            "\n"
            "Makes a CA and a server and a client certificate with their keys (PEM, EC P-256)\n"
            "in DIR (created if missing), for rpctls-nfsd and rpctls-cp on loopback:\n"
            "  ca.pem ca.key           the CA (give ca.pem to both tools as --ca)\n"
            "  server.pem server.key   for rpctls-nfsd --cert/--key (SAN IP:127.0.0.1, DNS:localhost)\n"
            "  client.pem client.key   for rpctls-cp --cert/--key\n"
            "Existing files of these names are replaced. Prints the file names.\n"
            "\n"
            "  --days N   validity in days (default 30)\n"
            "  --help     this text\n"
            "Exit status: 0 on success, 1 on failure, 2 on bad usage.\n");
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext)
        return 0;
    ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

/* issuer NULL: self-signed CA. */
static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, const char *san,
                       const char *eku, long serial, long days)
{
    X509 *x = X509_new();
    X509_NAME *name;
    int ok = 1;

    if (!x)
        return NULL;
    ok &= X509_set_version(x, 2);
    ok &= ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    ok &= X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL;
    ok &= X509_gmtime_adj(X509_getm_notAfter(x), days * 86400) != NULL;
    ok &= X509_set_pubkey(x, key);
    name = X509_get_subject_name(x);
    ok &= X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"rpctls", -1, -1, 0);
    ok &= X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    ok &= X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    if (!issuer) {
        issuer = x;
        issuer_key = key;
        ok &= add_ext(x, issuer, NID_basic_constraints, "critical,CA:TRUE");
        ok &= add_ext(x, issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        ok &= add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE");
        ok &= add_ext(x, issuer, NID_key_usage, "critical,digitalSignature");
        ok &= add_ext(x, issuer, NID_ext_key_usage, eku);
    }
    ok &= add_ext(x, issuer, NID_subject_key_identifier, "hash");
    ok &= add_ext(x, issuer, NID_authority_key_identifier, "keyid:always");
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

/* Writes a certificate (mode 0644) or a private key (mode 0600). */
static int write_pem(const char *dir, const char *file, X509 *cert, EVP_PKEY *key)
{
    char path[4096];
    FILE *f;
    int fd, ok;

    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, file) >= sizeof path) {
        fprintf(stderr, "rpctls-certs: %s/%s: path too long\n", dir, file);
        return 0;
    }
    unlink(path); /* so that the mode below applies */
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, cert ? 0644 : 0600);
    if (fd < 0 || !(f = fdopen(fd, "w"))) {
        fprintf(stderr, "rpctls-certs: %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return 0;
    }
    ok = cert ? PEM_write_X509(f, cert) : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    if (fclose(f) != 0)
        ok = 0;
    if (!ok)
        fprintf(stderr, "rpctls-certs: writing %s failed\n", path);
    else
        printf("%s\n", path);
    return ok;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"days", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    EVP_PKEY *k[3] = {NULL, NULL, NULL};
    X509 *x[3] = {NULL, NULL, NULL};
    long days = 30;
    const char *dir;
    int opt, ok = 1;

    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'd': {
            char *end;
            days = strtol(optarg, &end, 10);
            if (*end || days < 1 || days > 36500) {
                fprintf(stderr, "rpctls-certs: --days: expected 1..36500\n");
                return 2;
            }
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    dir = argv[optind];
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "rpctls-certs: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    for (int i = 0; i < 3 && ok; i++)
        ok = (k[i] = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) != NULL;
    if (ok)
        ok = (x[0] = make_cert("rpctls CA", k[0], NULL, NULL, NULL, NULL, 1, days)) != NULL &&
             (x[1] = make_cert("localhost", k[1], x[0], k[0], "IP:127.0.0.1,DNS:localhost", "serverAuth", 2, days)) !=
                 NULL &&
             (x[2] = make_cert("rpctls-client", k[2], x[0], k[0], NULL, "clientAuth", 3, days)) != NULL;
    if (!ok) {
        fprintf(stderr, "rpctls-certs: certificate generation failed\n");
        ERR_print_errors_fp(stderr);
    } else {
        ok = write_pem(dir, "ca.pem", x[0], NULL) && write_pem(dir, "ca.key", NULL, k[0]) &&
             write_pem(dir, "server.pem", x[1], NULL) && write_pem(dir, "server.key", NULL, k[1]) &&
             write_pem(dir, "client.pem", x[2], NULL) && write_pem(dir, "client.key", NULL, k[2]);
    }
    for (int i = 0; i < 3; i++) {
        X509_free(x[i]);
        EVP_PKEY_free(k[i]);
    }
    return ok ? 0 : 1;
}
