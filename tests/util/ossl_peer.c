/*
 * tests/util/ossl_peer.c - the stock OpenSSL peer (see ossl_peer.h).
 */
#include "util/ossl_peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "util/net.h"
#include "util/rpc_peer.h"
#include "util/stream.h"

#define PEER_BUF (1 << 20)

struct tu_peer {
    struct tu_peer_cfg cfg;
    int fd;
    pthread_t thread;
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *rbio, *wbio;
    unsigned char *buf;
    struct tu_sha tx_sha, rx_sha;
    struct tu_peer_result res;
};

static void peer_fail(struct tu_peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void peer_fail(struct tu_peer *p, const char *fmt, ...)
{
    char what[200], ssl_err[256] = "";
    unsigned long e;
    va_list ap;

    if (p->res.err[0])
        return;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if ((e = ERR_peek_error()) != 0)
        ERR_error_string_n(e, ssl_err, sizeof(ssl_err));
    ERR_clear_error();
    snprintf(p->res.err, sizeof(p->res.err), "peer: %s%s%s", what, ssl_err[0] ? ": " : "", ssl_err);
}

/* Writes everything OpenSSL produced to the socket. */
static int pflush(struct tu_peer *p)
{
    char *data;
    long n;

    while ((n = BIO_get_mem_data(p->wbio, &data)) > 0) {
        ssize_t w = send(p->fd, data, (size_t)n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            peer_fail(p, "send: %s", strerror(errno));
            return -1;
        }
        while (w > 0) {
            int k = BIO_read(p->wbio, p->buf, w > PEER_BUF ? PEER_BUF : (int)w);
            if (k <= 0)
                return -1;
            w -= k;
        }
    }
    return 0;
}

/* Reads from the socket into OpenSSL: 1, 0 on EOF, -1 on error. */
static int pfill(struct tu_peer *p)
{
    unsigned char tmp[65536];
    ssize_t r;

    do {
        r = read(p->fd, tmp, sizeof(tmp));
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        peer_fail(p, "read: %s", strerror(errno));
        return -1;
    }
    if (r > 0 && BIO_write(p->rbio, tmp, (int)r) != (int)r)
        return -1;
    return r > 0;
}

static int peer_handshake(struct tu_peer *p)
{
    for (;;) {
        int r = SSL_do_handshake(p->ssl), e;
        if (r == 1)
            return 0;
        e = SSL_get_error(p->ssl, r);
        if (e != SSL_ERROR_WANT_READ) {
            long vr = SSL_get_verify_result(p->ssl);
            pflush(p); /* our alert */
            peer_fail(p, "handshake failed (verify: %s)", X509_verify_cert_error_string(vr));
            return -1;
        }
        if (pflush(p) < 0)
            return -1;
        r = pfill(p);
        if (r <= 0) {
            peer_fail(p, "handshake: %s", r == 0 ? "connection closed" : "read error");
            return -1;
        }
    }
}

/* SSL_read: > 0 bytes, 0 on close_notify, -1 on error. */
static int peer_read(struct tu_peer *p, void *buf, int len)
{
    for (;;) {
        int r = SSL_read(p->ssl, buf, len), e;
        if (r > 0)
            return pflush(p) < 0 ? -1 : r; /* e.g. our KeyUpdate answer */
        e = SSL_get_error(p->ssl, r);
        if (e == SSL_ERROR_ZERO_RETURN) {
            p->res.got_close_notify = 1;
            return pflush(p) < 0 ? -1 : 0;
        }
        if (e != SSL_ERROR_WANT_READ) {
            pflush(p);
            peer_fail(p, "SSL_read failed (error %d)", e);
            return -1;
        }
        if (pflush(p) < 0)
            return -1;
        r = pfill(p);
        if (r <= 0) {
            peer_fail(p, "SSL_read: %s", r == 0 ? "connection closed without close_notify" : "read error");
            return -1;
        }
    }
}

static int peer_write(struct tu_peer *p, const void *buf, int len, int flush)
{
    int r = SSL_write(p->ssl, buf, len);

    if (r != len) {
        peer_fail(p, "SSL_write failed (error %d)", SSL_get_error(p->ssl, r));
        return -1;
    }
    return flush ? pflush(p) : 0;
}

static int op_send(struct tu_peer *p, const struct tu_op *op, int *first_write)
{
    uint64_t pos = 0;
    unsigned idx = op->first_size;
    int ku_done = 0;

    while (pos < op->n) {
        size_t n = tu_write_sizes[idx++ % tu_nwrite_sizes];
        if (n > op->n - pos)
            n = (size_t)(op->n - pos);
        if (op->key_update_at && !ku_done && pos + n > op->key_update_at) {
            n = pos < op->key_update_at ? (size_t)(op->key_update_at - pos) : 0;
            if (n == 0) {
                if (!SSL_key_update(p->ssl, SSL_KEY_UPDATE_REQUESTED)) {
                    peer_fail(p, "SSL_key_update failed");
                    return -1;
                }
                p->res.key_updates++;
                ku_done = 1;
                continue;
            }
        }
        tu_stream_fill(op->seed, pos, p->buf, n);
        tu_sha_update(&p->tx_sha, p->buf, n);
        /* A coalesced first write leaves the Finished in the BIO until now. */
        if (peer_write(p, p->buf, (int)n, 1) < 0)
            return -1;
        *first_write = 0;
        pos += n;
        p->res.sent += n;
    }
    return 0;
}

static int op_recv(struct tu_peer *p, uint64_t n, int until_eof)
{
    uint64_t got = 0;

    while (until_eof || got < n) {
        int want = PEER_BUF, r;
        if (!until_eof && n - got < (uint64_t)want)
            want = (int)(n - got);
        r = peer_read(p, p->buf, want);
        if (r < 0)
            return -1;
        if (r == 0) {
            if (until_eof)
                return 0;
            peer_fail(p, "close_notify after %llu of %llu bytes", (unsigned long long)got, (unsigned long long)n);
            return -1;
        }
        tu_sha_update(&p->rx_sha, p->buf, (size_t)r);
        got += (uint64_t)r;
        p->res.received += (uint64_t)r;
    }
    return 0;
}

static int op_close(struct tu_peer *p)
{
    int r = SSL_shutdown(p->ssl);

    if (r < 0) {
        peer_fail(p, "SSL_shutdown failed");
        return -1;
    }
    if (pflush(p) < 0)
        return -1;
    if (p->res.got_close_notify)
        return 0;
    return op_recv(p, 0, 1);
}

static int peer_setup(struct tu_peer *p)
{
    const struct tu_peer_cfg *cfg = &p->cfg;
    int server = cfg->role == KTLS_SERVER;

    p->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (p->ctx == NULL)
        return -1;
    if (cfg->tls12_only) {
        SSL_CTX_set_min_proto_version(p->ctx, TLS1_2_VERSION);
        SSL_CTX_set_max_proto_version(p->ctx, TLS1_2_VERSION);
    } else {
        SSL_CTX_set_min_proto_version(p->ctx, TLS1_3_VERSION);
    }
    if (cfg->ciphersuites && !SSL_CTX_set_ciphersuites(p->ctx, cfg->ciphersuites))
        return -1;
    if (server && cfg->no_tickets)
        SSL_CTX_set_num_tickets(p->ctx, 0);
    if (cfg->cert_file && (SSL_CTX_use_certificate_chain_file(p->ctx, cfg->cert_file) != 1 ||
                           SSL_CTX_use_PrivateKey_file(p->ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1))
        return -1;
    if (cfg->ca_file) {
        if (SSL_CTX_load_verify_locations(p->ctx, cfg->ca_file, NULL) != 1)
            return -1;
        SSL_CTX_set_verify(p->ctx,
                           SSL_VERIFY_PEER | (server && cfg->require_peer_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                           NULL);
    }
    if (cfg->alpn && !server) {
        /* "a,b" becomes the wire list 1 'a' 1 'b'. */
        unsigned char wire[256];
        size_t len = 0;
        for (const char *s = cfg->alpn; *s;) {
            const char *e = strchr(s, ',');
            size_t k = e ? (size_t)(e - s) : strlen(s);
            if (k == 0 || k > 255 || len + 1 + k > sizeof(wire))
                return -1;
            wire[len] = (unsigned char)k;
            memcpy(wire + len + 1, s, k);
            len += 1 + k;
            s += k + (e ? 1 : 0);
        }
        if (SSL_CTX_set_alpn_protos(p->ctx, wire, (unsigned)len) != 0)
            return -1;
    }
    p->ssl = SSL_new(p->ctx);
    if (p->ssl == NULL)
        return -1;
    if (!server && cfg->verify_host) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(p->ssl);
        unsigned char tmp[16];
        int ip = inet_pton(AF_INET, cfg->verify_host, tmp) == 1;
        if (!(ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, cfg->verify_host)
                 : X509_VERIFY_PARAM_set1_host(vp, cfg->verify_host, 0)))
            return -1;
        if (!ip)
            SSL_set_tlsext_host_name(p->ssl, cfg->verify_host);
    }
    p->rbio = BIO_new(BIO_s_mem());
    p->wbio = BIO_new(BIO_s_mem());
    if (p->rbio == NULL || p->wbio == NULL) {
        BIO_free(p->rbio);
        BIO_free(p->wbio);
        return -1;
    }
    BIO_set_mem_eof_return(p->rbio, -1);
    SSL_set_bio(p->ssl, p->rbio, p->wbio);
    if (server)
        SSL_set_accept_state(p->ssl);
    else
        SSL_set_connect_state(p->ssl);
    return 0;
}

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                   unsigned int inlen, void *arg)
{
    const char *want = arg;
    size_t wl = strlen(want);

    for (unsigned i = 0; i < inlen && i + 1 + in[i] <= inlen; i += 1 + in[i]) {
        if (in[i] == wl && memcmp(in + i + 1, want, wl) == 0) {
            *out = in + i + 1;
            *outlen = in[i];
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* A misbehaving server: selects its protocol whatever the client offered. */
static int alpn_always_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                          unsigned int inlen, void *arg)
{
    const char *want = arg;

    (void)ssl;
    (void)in;
    (void)inlen;
    *out = (const unsigned char *)want;
    *outlen = (unsigned char)strlen(want);
    return SSL_TLSEXT_ERR_OK;
}

/* Half-close and wait (bounded) for the other side to close, so that our
 * close never turns into a reset that eats the other side's last bytes. */
static void peer_linger(struct tu_peer *p)
{
    unsigned char tmp[4096];
    struct pollfd pfd = {.fd = p->fd, .events = POLLIN};

    shutdown(p->fd, SHUT_WR);
    for (int i = 0; i < 50; i++) {
        if (poll(&pfd, 1, 100) < 0 && errno != EINTR)
            break;
        if (pfd.revents) {
            ssize_t r = read(p->fd, tmp, sizeof(tmp));
            if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
                break;
        }
    }
}

static void *peer_main(void *arg)
{
    struct tu_peer *p = arg;
    const SSL_CIPHER *c;
    const unsigned char *sel;
    unsigned int sellen = 0;
    int first_write = 1;

    if (peer_setup(p) < 0) {
        peer_fail(p, "setup failed");
        goto out;
    }
    if (p->cfg.alpn && p->cfg.role == KTLS_SERVER)
        SSL_CTX_set_alpn_select_cb(p->ctx, p->cfg.alpn_select_always ? alpn_always_cb : alpn_cb,
                                   (void *)p->cfg.alpn);
    if (peer_handshake(p) < 0)
        goto out;
    p->res.handshake_ok = 1;
    SSL_get0_alpn_selected(p->ssl, &sel, &sellen);
    if (sellen > 0 && sellen < sizeof(p->res.alpn))
        memcpy(p->res.alpn, sel, sellen);
    c = SSL_get_current_cipher(p->ssl);
    snprintf(p->res.cipher, sizeof(p->res.cipher), "%s", c ? SSL_CIPHER_get_name(c) : "");
    if (!(p->cfg.coalesce_first_write && p->cfg.ops[0].kind == TU_OP_SEND) && pflush(p) < 0)
        goto out;

    for (int i = 0; i < TU_PEER_MAX_OPS && p->cfg.ops[i].kind != TU_OP_END; i++) {
        const struct tu_op *op = &p->cfg.ops[i];
        int r = 0;
        switch (op->kind) {
        case TU_OP_SEND:
            r = op_send(p, op, &first_write);
            break;
        case TU_OP_RECV:
            r = op_recv(p, op->n, 0);
            break;
        case TU_OP_RECV_EOF:
            r = op_recv(p, 0, 1);
            break;
        case TU_OP_KEY_UPDATE:
            if (!SSL_key_update(p->ssl, SSL_KEY_UPDATE_REQUESTED)) {
                peer_fail(p, "SSL_key_update failed");
                r = -1;
            } else {
                p->res.key_updates++;
            }
            break;
        case TU_OP_CLOSE:
            r = op_close(p);
            break;
        default:
            break;
        }
        if (r < 0)
            goto out;
    }
    if (pflush(p) < 0)
        goto out;
    p->res.ok = 1;
out:
    if (!p->res.ok && !p->res.err[0])
        peer_fail(p, "failed");
    peer_linger(p);
    return NULL;
}

int tu_peer_start(const struct tu_peer_cfg *cfg, int fd, struct tu_peer **out)
{
    struct tu_peer *p = calloc(1, sizeof(*p));

    *out = NULL;
    if (p == NULL)
        return -1;
    p->cfg = *cfg;
    p->fd = fd;
    p->buf = malloc(PEER_BUF);
    if (p->buf == NULL || tu_sha_init(&p->tx_sha) < 0 || tu_sha_init(&p->rx_sha) < 0)
        goto fail;
    tu_set_timeouts(fd, cfg->timeout_ms > 0 ? cfg->timeout_ms : 30000);
    if (pthread_create(&p->thread, NULL, peer_main, p) != 0)
        goto fail;
    *out = p;
    return 0;
fail:
    if (p->tx_sha.md)
        tu_sha_final(&p->tx_sha, p->res.sent_sha);
    if (p->rx_sha.md)
        tu_sha_final(&p->rx_sha, p->res.recv_sha);
    free(p->buf);
    free(p);
    close(fd);
    return -1;
}

void tu_peer_join(struct tu_peer *p, struct tu_peer_result *res)
{
    pthread_join(p->thread, NULL);
    tu_sha_final(&p->tx_sha, p->res.sent_sha);
    tu_sha_final(&p->rx_sha, p->res.recv_sha);
    *res = p->res;
    SSL_free(p->ssl);
    SSL_CTX_free(p->ctx);
    ERR_clear_error(); /* this thread's queue */
    close(p->fd);
    free(p->buf);
    free(p);
}

/* ---- the rpc.tlsservd-like server ---------------------------------------- */

struct tlsservd_state {
    SSL_CTX *ctx;
    SSL *ssl;
    unsigned tickets_sent; /* NewSessionTicket messages written */
};

static int tlsservd_read(struct tu_xprt *x, void *buf, size_t len)
{
    struct tlsservd_state *t = x->tls;
    int n = SSL_read(t->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    int e;

    if (n > 0)
        return n;
    e = SSL_get_error(t->ssl, n);
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0; /* close_notify */
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
        snprintf(x->err, sizeof x->err, "SSL_read: the stream ended without close_notify");
    else
        snprintf(x->err, sizeof x->err, "SSL_read: error %d (%s)", e, ERR_reason_error_string(ERR_peek_error()));
    ERR_clear_error();
    return -1;
}

static int tlsservd_write(struct tu_xprt *x, const void *buf, size_t len)
{
    struct tlsservd_state *t = x->tls;
    int n = SSL_write(t->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);

    if (n > 0)
        return n;
    snprintf(x->err, sizeof x->err, "SSL_write: error %d", SSL_get_error(t->ssl, n));
    ERR_clear_error();
    return -1;
}

static void tlsservd_free(struct tlsservd_state *t)
{
    SSL_free(t->ssl);
    SSL_CTX_free(t->ctx);
    free(t);
}

static void tlsservd_end(struct tu_xprt *x)
{
    struct tlsservd_state *t = x->tls;

    /* rpctlssd_disconnect_1_svc(): SSL_shutdown unless already sent. */
    if ((SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN) == 0)
        SSL_shutdown(t->ssl);
    ERR_clear_error();
    tlsservd_free(t);
    x->tls = NULL;
}

/* rpctls_verify_callback(): "Allow the handshake to proceed." */
static int tlsservd_verify(int preverify_ok, X509_STORE_CTX *ctx)
{
    (void)preverify_ok;
    (void)ctx;
    return 1;
}

static void tlsservd_msg(int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl,
                         void *arg)
{
    struct tlsservd_state *t = arg;

    (void)version;
    (void)ssl;
    if (write_p && content_type == SSL3_RT_HANDSHAKE && len > 0 &&
        ((const unsigned char *)buf)[0] == SSL3_MT_NEWSESSION_TICKET)
        t->tickets_sent++;
}

int tu_ossl_srv_start_tls(struct tu_xprt *x, int fd, void *arg)
{
    const struct tu_ossl_srv_cfg *cfg = arg;
    struct tlsservd_state *t;
    int ret = -1;

    tu_xprt_plain(x, fd);
    t = calloc(1, sizeof *t);
    if (t == NULL)
        return -1;
    t->ctx = SSL_CTX_new(TLS_server_method());
    if (t->ctx == NULL)
        goto out;
    SSL_CTX_set_ecdh_auto(t->ctx, 1);
    if (SSL_CTX_set_min_proto_version(t->ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(t->ctx, TLS1_3_VERSION) != 1)
        goto out;
    if (SSL_CTX_use_certificate_file(t->ctx, cfg->cert_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_use_PrivateKey_file(t->ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1)
        goto out;
    if (cfg->mutual) {
        if (cfg->ca_file != NULL) {
            if (SSL_CTX_load_verify_file(t->ctx, cfg->ca_file) != 1)
                goto out;
            SSL_CTX_set_client_CA_list(t->ctx, SSL_load_client_CA_file(cfg->ca_file));
        }
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, tlsservd_verify);
    }
    /* Not in rpc.tlsservd: counting the tickets it sends, for the test. */
    SSL_CTX_set_msg_callback(t->ctx, tlsservd_msg);
    SSL_CTX_set_msg_callback_arg(t->ctx, t);
    t->ssl = SSL_new(t->ctx);
    if (t->ssl == NULL || SSL_set_fd(t->ssl, fd) != 1)
        goto out;
    if (SSL_accept(t->ssl) != 1)
        goto out;
    x->tls = t;
    x->read = tlsservd_read;
    x->write = tlsservd_write;
    x->end_tls = tlsservd_end;
    ret = 0;
out:
    if (ret < 0) {
        unsigned long e = ERR_peek_error();
        snprintf(x->err, sizeof x->err, "rpc.tlsservd-like SSL_accept failed: %s",
                 e ? ERR_reason_error_string(e) : "no OpenSSL error");
        ERR_clear_error();
        tlsservd_free(t);
    }
    return ret;
}

void tu_ossl_describe(struct tu_xprt *x, char *buf, size_t len)
{
    struct tlsservd_state *t = x->tls;
    const unsigned char *alpn = NULL;
    unsigned int alpn_len = 0;
    X509 *peer;

    if (t == NULL) {
        snprintf(buf, len, "no TLS");
        return;
    }
    SSL_get0_alpn_selected(t->ssl, &alpn, &alpn_len);
    peer = SSL_get1_peer_certificate(t->ssl);
    snprintf(buf, len, "%s %s alpn=%.*s tickets=%u client-cert=%d", SSL_get_version(t->ssl),
             SSL_get_cipher_name(t->ssl), alpn_len ? (int)alpn_len : 4, alpn_len ? (const char *)alpn : "none",
             t->tickets_sent, peer != NULL);
    X509_free(peer);
}
