/*
 * tests/util/tlsclient.h - a minimal RPC-with-TLS client on stock OpenSSL
 * for load tests: connect, RFC 9289 probe, TLS 1.3 handshake (ALPN
 * "sunrpc", a client certificate when given), NULL calls; or keep the
 * socket as an idle TLS connection and drop the session's memory.
 */
#ifndef RPCTLS_TEST_TLSCLIENT_H
#define RPCTLS_TEST_TLSCLIENT_H
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

/* A client context: CA to verify the server, client certificate and key
 * (both NULL: none). NULL on failure (printed). */
SSL_CTX *tu_tls_ctx(const char *ca_file, const char *cert_file, const char *key_file);

struct tu_tls_client {
    int fd;
    SSL *ssl;
};

/* Connects to 127.0.0.1:port, probes with prog/vers and runs the
 * handshake; every step bounded by timeout_ms. 0, or -1 with err. */
int tu_tls_connect(struct tu_tls_client *t, SSL_CTX *ctx, uint16_t port, uint32_t prog, uint32_t vers,
                   int timeout_ms, char *err, size_t errlen);
/* A NULL call through the session: 0 when answered MSG_ACCEPTED SUCCESS. */
int tu_tls_null_call(struct tu_tls_client *t, uint32_t xid, uint32_t prog, uint32_t vers);
/* Frees the session without close_notify and returns the still open fd:
 * to the server an idle TLS connection. */
int tu_tls_release(struct tu_tls_client *t);
/* close_notify (best effort), free, close. */
void tu_tls_close(struct tu_tls_client *t);

/* The server's resident set (VmRSS of /proc/PID/status) in KiB, or -1. */
long tu_vmrss_kib(int pid);
/* Raises this process's open-file soft limit to the hard limit; returns it. */
long tu_raise_nofile(void);
#endif
