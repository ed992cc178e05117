/*
 * tests/util/certs.h - a throw-away PKI for TLS tests, made with the OpenSSL
 * C API in a fresh temporary directory.
 *
 *   ca            self-signed CA
 *   server        signed by ca; CN=localhost, SAN IP:127.0.0.1, DNS:localhost
 *   client        signed by ca; CN=rpctls-test-client
 *   other_ca      a second, unrelated self-signed CA
 *   other_client  signed by other_ca (a client the server must not trust)
 * All keys are EC P-256, PEM, unencrypted.
 */
#ifndef RPCTLS_TEST_CERTS_H
#define RPCTLS_TEST_CERTS_H

#include <limits.h>

struct tu_certs {
    char dir[PATH_MAX - 64]; /* room for "/file" in the paths below */
    char ca_cert[PATH_MAX], ca_key[PATH_MAX];
    char server_cert[PATH_MAX], server_key[PATH_MAX];
    char client_cert[PATH_MAX], client_key[PATH_MAX];
    char other_ca_cert[PATH_MAX], other_ca_key[PATH_MAX];
    char other_client_cert[PATH_MAX], other_client_key[PATH_MAX];
};

/* Returns 0, or -1 with a message on stderr. */
int tu_certs_create(struct tu_certs *c);
/* Removes the files and the directory. */
void tu_certs_destroy(struct tu_certs *c);

#endif
