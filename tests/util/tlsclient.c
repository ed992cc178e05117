/*
 * tests/util/tlsclient.c - see tlsclient.h.
 */
#include "util/tlsclient.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/err.h>

#include "rpctls/krpc.h"
#include "util/rpc_peer.h"

SSL_CTX *tu_tls_ctx(const char *ca_file, const char *cert_file, const char *key_file)
{
    static const unsigned char alpn[] = "\x06sunrpc";
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    if (ca_file != NULL && SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1)
        goto fail;
    SSL_CTX_set_verify(ctx, ca_file != NULL ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (cert_file != NULL && (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1 ||
                              SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1))
        goto fail;
    if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1) != 0)
        goto fail;
    return ctx;
fail:
    fprintf(stderr, "tu_tls_ctx: cannot load %s / %s / %s\n", ca_file ? ca_file : "-", cert_file ? cert_file : "-",
            key_file ? key_file : "-");
    ERR_print_errors_fp(stderr);
    SSL_CTX_free(ctx);
    return NULL;
}

int tu_tls_connect(struct tu_tls_client *t, SSL_CTX *ctx, uint16_t port, uint32_t prog, uint32_t vers,
                   int timeout_ms, char *err, size_t errlen)
{
    struct tu_xprt x;
    struct krpc_reply_hdr h;

    t->ssl = NULL;
    t->fd = tu_connect_loopback(port, timeout_ms);
    if (t->fd < 0) {
        snprintf(err, errlen, "connect failed");
        return -1;
    }
    tu_xprt_plain(&x, t->fd);
    if (tu_rpc_probe(&x, 0x7e570001, prog, vers, &h) != 0 || !tu_is_starttls(&h)) {
        snprintf(err, errlen, "no STARTTLS answer to the probe");
        goto fail;
    }
    t->ssl = SSL_new(ctx);
    if (t->ssl == NULL || SSL_set_fd(t->ssl, t->fd) != 1) {
        snprintf(err, errlen, "SSL_new failed");
        goto fail;
    }
    if (SSL_connect(t->ssl) != 1) {
        unsigned long e = ERR_get_error();
        snprintf(err, errlen, "handshake failed: %s", e ? ERR_error_string(e, NULL) : "connection closed");
        ERR_clear_error();
        goto fail;
    }
    return 0;
fail:
    SSL_free(t->ssl);
    t->ssl = NULL;
    close(t->fd);
    t->fd = -1;
    return -1;
}

static void put32(unsigned char *p, uint32_t v)
{
    v = htonl(v);
    memcpy(p, &v, 4);
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return ntohl(v);
}

static int ssl_read_all(SSL *ssl, unsigned char *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        int r = SSL_read(ssl, buf + got, (int)(len - got));
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

int tu_tls_null_call(struct tu_tls_client *t, uint32_t xid, uint32_t prog, uint32_t vers)
{
    unsigned char call[44], reply[512];
    uint32_t mark, len;

    memset(call, 0, sizeof(call));
    put32(call, 0x80000000u | 40);
    put32(call + 4, xid);
    put32(call + 8, KRPC_MSG_CALL);
    put32(call + 12, KRPC_RPCVERS);
    put32(call + 16, prog);
    put32(call + 20, vers);
    /* procedure 0, credential and verifier AUTH_NONE with empty bodies: zeros */
    if (t->ssl == NULL || SSL_write(t->ssl, call, sizeof(call)) != (int)sizeof(call))
        return -1;
    if (ssl_read_all(t->ssl, reply, 4) != 0)
        return -1;
    mark = get32(reply);
    len = mark & 0x7fffffffu;
    if (!(mark & 0x80000000u) || len < 24 || len > sizeof(reply))
        return -1;
    if (ssl_read_all(t->ssl, reply, len) != 0)
        return -1;
    /* xid, REPLY, MSG_ACCEPTED, verifier AUTH_NONE of length 0, SUCCESS */
    if (get32(reply) != xid || get32(reply + 4) != KRPC_MSG_REPLY || get32(reply + 8) != KRPC_MSG_ACCEPTED ||
        get32(reply + 16) != 0 || get32(reply + 20) != KRPC_SUCCESS)
        return -1;
    return 0;
}

int tu_tls_release(struct tu_tls_client *t)
{
    int fd = t->fd;

    SSL_free(t->ssl); /* no SSL_shutdown: nothing goes on the wire */
    t->ssl = NULL;
    t->fd = -1;
    return fd;
}

void tu_tls_close(struct tu_tls_client *t)
{
    if (t->ssl != NULL)
        (void)SSL_shutdown(t->ssl);
    SSL_free(t->ssl);
    t->ssl = NULL;
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
}

long tu_vmrss_kib(int pid)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

long tu_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    return (long)rl.rlim_cur;
}
