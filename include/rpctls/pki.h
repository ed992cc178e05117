/*
 * rpctls/pki.h - a throw-away PKI for loopback use, demos, benchmarks and
 * tests: a CA that signs server and client certificates, made with the
 * OpenSSL C API (no openssl command needed). Keys are EC P-256, files PEM,
 * keys written mode 0600.
 */
#ifndef RPCTLS_PKI_H
#define RPCTLS_PKI_H

#include <stddef.h>
#include <time.h>

#include "rpctls/visibility.h"

#ifdef __cplusplus
extern "C" {
#endif

enum ktls_pki_kind {
    KTLS_PKI_CA = 0,     /* self-signed; basicConstraints CA:TRUE */
    KTLS_PKI_SERVER = 1, /* SAN IP:127.0.0.1, DNS:localhost; serverAuth */
    KTLS_PKI_CLIENT = 2, /* clientAuth */
};

/* Makes a key and a certificate of the given kind with common name cn,
 * signed by the CA in ca_cert/ca_key (both NULL for KTLS_PKI_CA), valid for
 * days days, and writes them to cert_out and key_out (replacing them).
 * Returns 0, or -1 with a message in err. */
RPCTLS_API int ktls_pki_issue(enum ktls_pki_kind kind, const char *cn, const char *ca_cert, const char *ca_key,
                              const char *cert_out, const char *key_out, int days, char *err, size_t errlen);

/* The same with the subject alternative names given in OpenSSL's syntax
 * ("DNS:server.example,IP:192.0.2.1"; NULL or "": none) instead of the
 * kind's default. */
RPCTLS_API int ktls_pki_issue_san(enum ktls_pki_kind kind, const char *cn, const char *sans, const char *ca_cert,
                                  const char *ca_key, const char *cert_out, const char *key_out, int days, char *err,
                                  size_t errlen);

/* Which otherName forms carry req->user (bits; see ktls.h, "Certificate
 * identity"). */
#define KTLS_PKI_USER_FREEBSD 0x1 /* KTLS_OID_FREEBSD_USER: a UTF8String */
#define KTLS_PKI_USER_DRAFT 0x2   /* KTLS_OID_NFSV4_PRINCIPAL: SEQUENCE { UTF8String } */

/* Everything a certificate can be made with. Use designated initializers:
 * fields left out mean "the default". */
struct ktls_pki_req {
    enum ktls_pki_kind kind;
    const char *cn;
    const char *sans;        /* OpenSSL syntax; NULL: the kind's default; "": none */
    const char *user;        /* "user@domain" as a subjectAltName otherName; NULL: none */
    unsigned user_forms;     /* KTLS_PKI_USER_*; 0: KTLS_PKI_USER_FREEBSD */
    const char *ca_cert, *ca_key; /* both NULL for KTLS_PKI_CA */
    const char *cert_out, *key_out;
    int days;                /* valid from an hour ago for days days */
    /* Both non-zero: valid from not_before to not_after instead of days
     * (for tests: expired, not yet valid, expiring soon). */
    time_t not_before, not_after;
};
RPCTLS_API int ktls_pki_issue_req(const struct ktls_pki_req *req, char *err, size_t errlen);

/* The usual set in dir (created if missing): ca.pem ca.key, server.pem
 * server.key, client.pem client.key. Returns 0, or -1 with a message. */
RPCTLS_API int ktls_pki_make_dir(const char *dir, int days, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
