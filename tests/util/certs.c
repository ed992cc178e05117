/*
 * tests/util/certs.c - test PKI generation (see certs.h).
 */
#include "util/certs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rpctls/pki.h"

static void set_path(char *out, const struct tu_certs *c, const char *file)
{
    snprintf(out, PATH_MAX, "%s/%s", c->dir, file);
}

int tu_certs_create(struct tu_certs *c)
{
    const char *tmp = getenv("TMPDIR");
    char err[512];

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

    if (ktls_pki_issue(KTLS_PKI_CA, "rpctls test CA", NULL, NULL, c->ca_cert, c->ca_key, 365, err, sizeof(err)) ||
        ktls_pki_issue(KTLS_PKI_SERVER, "localhost", c->ca_cert, c->ca_key, c->server_cert, c->server_key, 365, err,
                       sizeof(err)) ||
        ktls_pki_issue(KTLS_PKI_CLIENT, "rpctls-test-client", c->ca_cert, c->ca_key, c->client_cert, c->client_key,
                       365, err, sizeof(err)) ||
        ktls_pki_issue(KTLS_PKI_CA, "rpctls other CA", NULL, NULL, c->other_ca_cert, c->other_ca_key, 365, err,
                       sizeof(err)) ||
        ktls_pki_issue(KTLS_PKI_CLIENT, "rpctls-other-client", c->other_ca_cert, c->other_ca_key,
                       c->other_client_cert, c->other_client_key, 365, err, sizeof(err))) {
        fprintf(stderr, "tu_certs_create: %s\n", err);
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
