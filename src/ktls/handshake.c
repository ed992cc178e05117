/*
 * handshake.c - TLS 1.3 handshake with OpenSSL and the key hand-off to the
 * record layer.
 *
 * OpenSSL never touches the socket: it reads from a memory BIO that we fill
 * from the fd and writes into a memory BIO that we flush to the fd. With
 * read-ahead off OpenSSL takes exactly the records the handshake needs, so
 * whatever the peer sent after its last handshake message (application data,
 * NewSessionTickets, a KeyUpdate) is still in the read BIO when the handshake
 * completes and is handed to the record layer by ktls_hs_finish().
 *
 * The traffic secrets come from the key-log callback (NSS key-log lines).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "rpctls/ktls.h"

#define HS_MAX_SECRET 48
#define HS_READ_CHUNK (KTLS_HDR_LEN + KTLS_MAX_CIPHERTEXT)
#define HS_DEFAULT_TIMEOUT_MS 30000

enum hs_state { HS_RUNNING = 0, HS_DONE, HS_FAILED, HS_FINISHED };

/* Why a server refused the client's ALPN. */
enum { HS_ALPN_OK = 0, HS_ALPN_NONE_OFFERED, HS_ALPN_NOT_OFFERED };

struct ktls_hs {
    enum ktls_role role;
    struct ktls_config cfg; /* shallow copy; strings stay the caller's */
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *rbio; /* peer -> OpenSSL; we fill it from fd */
    BIO *wbio; /* OpenSSL -> peer; we flush it to fd */
    enum hs_state state;
    int error;        /* negative errno of the failure */
    int keylog_fd;    /* -1: none */
    int alpn_failed;  /* server: HS_ALPN_NONE_OFFERED or HS_ALPN_NOT_OFFERED */
    size_t leftover;  /* bytes handed to the record layer by finish */

    uint8_t client_secret[HS_MAX_SECRET];
    uint8_t server_secret[HS_MAX_SECRET];
    size_t client_secret_len, server_secret_len;

    unsigned char alpn_wire[256]; /* cfg->alpn in ALPN wire format */
    size_t alpn_wire_len;

    char alpn[256];
    char alpn_offered[256]; /* server: the client's list, for the refusal message */
    char alpn_server[64];   /* client: what the server's EncryptedExtensions selected */
    char peer_subject[512];
    char err[512];
    char checked_name[256]; /* client: the server name or IP checked against the certificate */
    char cert_names[256];   /* client, after a name mismatch: "DNS:a, IP:b" from the certificate */
};

static int hs_fail(struct ktls_hs *hs, int error, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int hs_fail(struct ktls_hs *hs, int error, const char *fmt, ...)
{
    va_list ap;

    /* The first failure is the interesting one. */
    if (hs->state != HS_FAILED) {
        va_start(ap, fmt);
        vsnprintf(hs->err, sizeof(hs->err), fmt, ap);
        va_end(ap);
        hs->state = HS_FAILED;
        hs->error = error;
    }
    return hs->error;
}

/* Describes the OpenSSL error queue (and the verify result) in hs->err. */
static int hs_fail_ssl(struct ktls_hs *hs, int error, const char *what)
{
    char reasons[256] = "";
    size_t used = 0;
    unsigned long e;
    long vr;

    while ((e = ERR_get_error()) != 0) {
        const char *r = ERR_reason_error_string(e);
        char buf[160];

        if (r == NULL) {
            ERR_error_string_n(e, buf, sizeof(buf));
            r = buf;
        }
        if (used == 0 || strstr(reasons, r) == NULL) {
            int n = snprintf(reasons + used, sizeof(reasons) - used, "%s%s", used ? "; " : "", r);
            if (n > 0)
                used = used + (size_t)n < sizeof(reasons) ? used + (size_t)n : sizeof(reasons) - 1;
        }
    }
    if (used == 0)
        snprintf(reasons, sizeof(reasons), "%s", "unknown error");
    vr = hs->ssl ? SSL_get_verify_result(hs->ssl) : X509_V_OK;
    if (vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH)
        /* Name both sides: what we checked and what the certificate says. */
        return hs_fail(hs, error, "%s: %s (%s: checked \"%s\", the certificate names %s)", what, reasons,
                       X509_verify_cert_error_string(vr), hs->checked_name,
                       hs->cert_names[0] ? hs->cert_names : "no DNS or IP subject alternative name");
    if (vr != X509_V_OK)
        return hs_fail(hs, error, "%s: %s (%s)", what, reasons, X509_verify_cert_error_string(vr));
    return hs_fail(hs, error, "%s: %s", what, reasons);
}

/* Client verify callback: when the name check fails, keeps the
 * certificate's DNS and IP subject alternative names for the message. */
static int name_verify_cb(int ok, X509_STORE_CTX *sctx)
{
    int e = X509_STORE_CTX_get_error(sctx);
    SSL *ssl = X509_STORE_CTX_get_ex_data(sctx, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct ktls_hs *hs = ssl ? SSL_get_app_data(ssl) : NULL;
    X509 *cert = X509_STORE_CTX_get_current_cert(sctx);
    GENERAL_NAMES *gens;
    size_t used = 0;

    if (ok || !hs || !cert || (e != X509_V_ERR_HOSTNAME_MISMATCH && e != X509_V_ERR_IP_ADDRESS_MISMATCH))
        return ok;
    gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        char one[INET6_ADDRSTRLEN + 8] = "";
        int n;

        if (g->type == GEN_DNS) {
            const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
            int len = ASN1_STRING_length(g->d.dNSName);
            n = snprintf(hs->cert_names + used, sizeof hs->cert_names - used, "%sDNS:%.*s", used ? ", " : "",
                         len, (const char *)d);
        } else if (g->type == GEN_IPADD) {
            int len = ASN1_STRING_length(g->d.iPAddress);
            const unsigned char *d = ASN1_STRING_get0_data(g->d.iPAddress);
            if (len == 4 || len == 16)
                inet_ntop(len == 4 ? AF_INET : AF_INET6, d, one, sizeof one);
            n = snprintf(hs->cert_names + used, sizeof hs->cert_names - used, "%sIP:%s", used ? ", " : "",
                         one[0] ? one : "?");
        } else {
            continue;
        }
        if (n < 0 || used + (size_t)n >= sizeof hs->cert_names)
            break; /* truncated: what fits is enough for a message */
        used += (size_t)n;
    }
    GENERAL_NAMES_free(gens);
    return ok;
}

/* ---- key log ------------------------------------------------------------- */

static int hex_nibble(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Parses the hex secret of a key-log line; returns its length or 0. */
static size_t parse_secret(const char *hex, uint8_t *out, size_t max)
{
    size_t n = 0;

    while (hex[0] && hex[0] != '\n' && hex[0] != ' ') {
        int hi = hex_nibble((unsigned char)hex[0]), lo = hex[1] ? hex_nibble((unsigned char)hex[1]) : -1;
        if (hi < 0 || lo < 0 || n == max)
            return 0;
        out[n++] = (uint8_t)(hi << 4 | lo);
        hex += 2;
    }
    return n;
}

static void keylog_cb(const SSL *ssl, const char *line)
{
    struct ktls_hs *hs = SSL_get_app_data(ssl);
    const char *sp;

    if (hs == NULL || line == NULL)
        return;
    if (hs->keylog_fd >= 0) {
        size_t len = strlen(line);
        char *buf = malloc(len + 1);
        if (buf != NULL) {
            memcpy(buf, line, len);
            buf[len] = '\n';
            /* One write per line: O_APPEND keeps concurrent writers' lines whole. */
            if (write(hs->keylog_fd, buf, len + 1) < 0) {
                /* Best effort: a key log is a debugging aid. */
            }
            OPENSSL_cleanse(buf, len + 1);
            free(buf);
        }
    }
    /* "<label> <client_random hex> <secret hex>" */
    sp = strchr(line, ' ');
    if (sp == NULL || (sp = strchr(sp + 1, ' ')) == NULL)
        return;
    if (strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0)
        hs->client_secret_len = parse_secret(sp + 1, hs->client_secret, sizeof(hs->client_secret));
    else if (strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24) == 0)
        hs->server_secret_len = parse_secret(sp + 1, hs->server_secret, sizeof(hs->server_secret));
}

/* ---- ALPN ---------------------------------------------------------------- */

/*
 * As the deployed peers do it: Linux tlshd, FreeBSD rpc.tlsclntd/tlsservd
 * and libnfs neither send nor select ALPN, so "none" is accepted unless
 * require_alpn asks for strict RFC 9289 behaviour. A peer that negotiates a
 * protocol other than ours wants to speak something else and is refused.
 */

/* Appends protocol id p (n bytes from the wire) to out as "id", with
 * anything unprintable shown as '?'. Stops quietly when out is full. */
static void alpn_append(char *out, size_t outlen, const unsigned char *p, size_t n)
{
    size_t used = strlen(out);

    if (used + 3 >= outlen)
        return;
    out[used++] = '"';
    for (size_t i = 0; i < n && used + 2 < outlen; i++)
        out[used++] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
    out[used++] = '"';
    out[used] = '\0';
}

static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                          unsigned int inlen, void *arg)
{
    struct ktls_hs *hs = arg;
    size_t want = hs->alpn_wire_len - 1;
    unsigned int i = 0;

    (void)ssl;
    hs->alpn_offered[0] = '\0';
    while (i < inlen) {
        unsigned int n = in[i];
        if (n == 0 || i + 1 + n > inlen)
            break;
        if (n == want && memcmp(in + i + 1, hs->alpn_wire + 1, n) == 0) {
            *out = in + i + 1;
            *outlen = (unsigned char)n;
            return SSL_TLSEXT_ERR_OK;
        }
        if (hs->alpn_offered[0] != '\0' && strlen(hs->alpn_offered) + 2 < sizeof(hs->alpn_offered))
            strcat(hs->alpn_offered, ", ");
        alpn_append(hs->alpn_offered, sizeof(hs->alpn_offered), in + i + 1, n);
        i += 1 + n;
    }
    /* The client offered ALPN without ours: it wants another protocol.
     * OpenSSL answers with a no_application_protocol alert. */
    hs->alpn_failed = HS_ALPN_NOT_OFFERED;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* Big-endian reads for the EncryptedExtensions walk below. */
static size_t get_u16(const unsigned char *p)
{
    return (size_t)p[0] << 8 | p[1];
}

/*
 * Client: OpenSSL aborts the handshake itself (bad extension) when the
 * server selects a protocol we did not offer, and does not say which. This
 * message callback sees the decrypted EncryptedExtensions before OpenSSL
 * checks them and keeps the server's choice for the error message:
 *   HandshakeType(8) uint24 length, Extension extensions<0..2^16-1>;
 *   ALPN (16): ProtocolNameList: uint16 length, uint8 length, name.
 */
static void alpn_msg_cb(int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl, void *arg)
{
    struct ktls_hs *hs = arg;
    const unsigned char *p = buf, *end;
    size_t extlen;

    (void)version;
    (void)ssl;
    if (write_p || content_type != SSL3_RT_HANDSHAKE || len < 6 || p[0] != SSL3_MT_ENCRYPTED_EXTENSIONS)
        return;
    extlen = get_u16(p + 4);
    if (6 + extlen > len)
        return;
    p += 6;
    end = p + extlen;
    while (end - p >= 4) {
        size_t type = get_u16(p), n = get_u16(p + 2);
        if ((size_t)(end - p) - 4 < n)
            return;
        /* A list of exactly one name, as RFC 7301 section 3.1 requires. */
        if (type == TLSEXT_TYPE_application_layer_protocol_negotiation && n >= 3 && get_u16(p + 4) == n - 2 &&
            p[6] == n - 3) {
            hs->alpn_server[0] = '\0';
            alpn_append(hs->alpn_server, sizeof(hs->alpn_server), p + 7, n - 3);
            return;
        }
        p += 4 + n;
    }
}

/* Strict mode: a client that sends no ALPN extension at all never reaches
 * the select callback; refuse it here so that it sees a
 * no_application_protocol alert instead of a handshake that we then abandon. */
static int client_hello_cb(SSL *ssl, int *al, void *arg)
{
    struct ktls_hs *hs = arg;
    const unsigned char *ext;
    size_t extlen;

    if (hs->cfg.require_alpn && hs->alpn_wire_len > 0 &&
        !SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &ext, &extlen)) {
        hs->alpn_failed = HS_ALPN_NONE_OFFERED;
        *al = TLS1_AD_NO_APPLICATION_PROTOCOL;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

/* ---- setup --------------------------------------------------------------- */

static int is_ip_literal(const char *name)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

static int hs_setup(struct ktls_hs *hs)
{
    const struct ktls_config *cfg = &hs->cfg;
    int server = cfg->role == KTLS_SERVER;
    const char *keylog;
    int verify;

    hs->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (hs->ctx == NULL)
        return hs_fail_ssl(hs, -ENOMEM, "TLS setup failed");
    if (!SSL_CTX_set_min_proto_version(hs->ctx, TLS1_3_VERSION))
        return hs_fail_ssl(hs, -EINVAL, "TLS setup failed");
    /* The record layer takes over after the handshake: no tickets, no
     * resumption, no early data, and OpenSSL must not read ahead. */
    SSL_CTX_set_options(hs->ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(hs->ctx, 0);
    SSL_CTX_set_session_cache_mode(hs->ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_max_early_data(hs->ctx, 0);
    SSL_CTX_set_read_ahead(hs->ctx, 0);
    SSL_CTX_set_keylog_callback(hs->ctx, keylog_cb);

    /* OpenSSL prefers AES-256-GCM; AES-128-GCM is as safe for our use and the
     * fastest suite of the record layer's engines, so it goes first. */
    if (!SSL_CTX_set_ciphersuites(hs->ctx, cfg->ciphersuites != NULL ? cfg->ciphersuites : KTLS_DEFAULT_CIPHERSUITES))
        return hs_fail_ssl(hs, -EINVAL, "bad TLS 1.3 ciphersuite list");

    if (cfg->cert_file != NULL) {
        if (SSL_CTX_use_certificate_chain_file(hs->ctx, cfg->cert_file) != 1)
            return hs_fail_ssl(hs, -EINVAL, "cannot load certificate");
        if (SSL_CTX_use_PrivateKey_file(hs->ctx, cfg->key_file ? cfg->key_file : cfg->cert_file, SSL_FILETYPE_PEM) != 1)
            return hs_fail_ssl(hs, -EINVAL, "cannot load private key");
        if (SSL_CTX_check_private_key(hs->ctx) != 1)
            return hs_fail_ssl(hs, -EINVAL, "private key does not match the certificate");
    } else if (server) {
        return hs_fail(hs, -EINVAL, "TLS setup failed: a server needs a certificate (cert_file)");
    }

    /* Clients verify unless verify_peer < 0; servers follow verify_peer. */
    verify = server ? cfg->verify_peer : (cfg->verify_peer >= 0);
    if (verify) {
        if (cfg->ca_file != NULL) {
            if (SSL_CTX_load_verify_locations(hs->ctx, cfg->ca_file, NULL) != 1)
                return hs_fail_ssl(hs, -EINVAL, "cannot load CA file");
            if (server) {
                STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->ca_file);
                if (names != NULL)
                    SSL_CTX_set_client_CA_list(hs->ctx, names);
            }
        } else if (SSL_CTX_set_default_verify_paths(hs->ctx) != 1) {
            return hs_fail_ssl(hs, -EINVAL, "cannot load the default CA store");
        }
        SSL_CTX_set_verify(hs->ctx,
                           SSL_VERIFY_PEER | (server && cfg->verify_peer >= 2 ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                           server ? NULL : name_verify_cb);
    } else {
        SSL_CTX_set_verify(hs->ctx, SSL_VERIFY_NONE, NULL);
    }

    if (cfg->alpn != NULL && cfg->alpn[0] != '\0') {
        size_t n = strlen(cfg->alpn);
        if (n > 255)
            return hs_fail(hs, -EINVAL, "TLS setup failed: ALPN protocol id too long");
        hs->alpn_wire[0] = (unsigned char)n;
        memcpy(hs->alpn_wire + 1, cfg->alpn, n);
        hs->alpn_wire_len = n + 1;
        if (server) {
            SSL_CTX_set_alpn_select_cb(hs->ctx, alpn_select_cb, hs);
            SSL_CTX_set_client_hello_cb(hs->ctx, client_hello_cb, hs);
        } else if (SSL_CTX_set_alpn_protos(hs->ctx, hs->alpn_wire, (unsigned)hs->alpn_wire_len) != 0) {
            return hs_fail_ssl(hs, -ENOMEM, "TLS setup failed");
        } else {
            SSL_CTX_set_msg_callback(hs->ctx, alpn_msg_cb);
            SSL_CTX_set_msg_callback_arg(hs->ctx, hs);
        }
    }

    hs->ssl = SSL_new(hs->ctx);
    if (hs->ssl == NULL)
        return hs_fail_ssl(hs, -ENOMEM, "TLS setup failed");
    SSL_set_app_data(hs->ssl, hs);

    if (!server && cfg->server_name != NULL && cfg->server_name[0] != '\0') {
        int ip = is_ip_literal(cfg->server_name);
        /* SNI carries host names only (RFC 6066 section 3). */
        if (!ip && !SSL_set_tlsext_host_name(hs->ssl, cfg->server_name))
            return hs_fail_ssl(hs, -EINVAL, "TLS setup failed: bad server name");
        snprintf(hs->checked_name, sizeof hs->checked_name, "%s", cfg->server_name);
        if (verify) {
            X509_VERIFY_PARAM *vp = SSL_get0_param(hs->ssl);
            int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, cfg->server_name)
                        : X509_VERIFY_PARAM_set1_host(vp, cfg->server_name, 0);
            if (!ok)
                return hs_fail_ssl(hs, -EINVAL, "TLS setup failed: bad server name");
        }
    }

    hs->rbio = BIO_new(BIO_s_mem());
    hs->wbio = BIO_new(BIO_s_mem());
    if (hs->rbio == NULL || hs->wbio == NULL) {
        BIO_free(hs->rbio);
        BIO_free(hs->wbio);
        hs->rbio = hs->wbio = NULL;
        return hs_fail(hs, -ENOMEM, "TLS setup failed: out of memory");
    }
    /* An empty read BIO means "retry", not end of file. */
    BIO_set_mem_eof_return(hs->rbio, -1);
    SSL_set_bio(hs->ssl, hs->rbio, hs->wbio); /* the SSL owns both now */
    if (server)
        SSL_set_accept_state(hs->ssl);
    else
        SSL_set_connect_state(hs->ssl);

    keylog = cfg->keylog_file ? cfg->keylog_file : getenv("SSLKEYLOGFILE");
    if (keylog != NULL && keylog[0] != '\0')
        hs->keylog_fd = open(keylog, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    return 0;
}

/* Like ktls_hs_new but also returns the object when the setup fails, so the
 * blocking wrapper can report ktls_hs_error(). */
static int hs_new(const struct ktls_config *cfg, int fd, struct ktls_hs **out)
{
    struct ktls_hs *hs;

    *out = NULL;
    if (cfg == NULL || fd < 0 || (cfg->role != KTLS_CLIENT && cfg->role != KTLS_SERVER))
        return -EINVAL;
    hs = calloc(1, sizeof(*hs));
    if (hs == NULL)
        return -ENOMEM;
    hs->cfg = *cfg;
    hs->role = cfg->role;
    hs->fd = fd;
    hs->keylog_fd = -1;
    ERR_clear_error();
    *out = hs;
    return hs_setup(hs);
}

int ktls_hs_new(const struct ktls_config *cfg, int fd, struct ktls_hs **out)
{
    int ret = hs_new(cfg, fd, out);

    if (ret < 0) {
        ktls_hs_free(*out);
        *out = NULL;
    }
    return ret;
}

/* ---- driving ------------------------------------------------------------- */

/* Writes what OpenSSL produced. 0 when the write BIO is empty, -EAGAIN when
 * the socket is full, other negative values on error. */
static int hs_flush(struct ktls_hs *hs)
{
    char *p;
    long n;

    while ((n = BIO_get_mem_data(hs->wbio, &p)) > 0) {
        /* send() for MSG_NOSIGNAL: a peer that hung up must not kill us. */
        ssize_t w = send(hs->fd, p, (size_t)n, MSG_NOSIGNAL);
        if (w < 0 && errno == ENOTSOCK)
            w = write(hs->fd, p, (size_t)n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return -EAGAIN;
            return -errno;
        }
        /* Consume what went out. */
        while (w > 0) {
            char sink[4096];
            int k = BIO_read(hs->wbio, sink, w > (ssize_t)sizeof(sink) ? (int)sizeof(sink) : (int)w);
            if (k <= 0)
                return -EIO;
            w -= k;
        }
    }
    return 0;
}

/* Moves bytes from the socket into OpenSSL's read BIO: 1 on progress, 0 on
 * end of file, negative on error (-EAGAIN: would block). */
static int hs_fill(struct ktls_hs *hs)
{
    unsigned char buf[HS_READ_CHUNK];
    ssize_t r;

    do {
        r = read(hs->fd, buf, sizeof(buf));
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    if (r == 0)
        return 0;
    if (BIO_write(hs->rbio, buf, (int)r) != (int)r)
        return -ENOMEM;
    return 1;
}

/* Flushes an alert (or the last flight) without waiting for the socket. */
static void hs_flush_best_effort(struct ktls_hs *hs)
{
    int fl = fcntl(hs->fd, F_GETFL);

    if (fl >= 0 && !(fl & O_NONBLOCK) && fcntl(hs->fd, F_SETFL, fl | O_NONBLOCK) == 0) {
        (void)hs_flush(hs);
        (void)fcntl(hs->fd, F_SETFL, fl);
    } else {
        (void)hs_flush(hs);
    }
}

/* The handshake has completed in OpenSSL: checks and collects results. */
static int hs_complete(struct ktls_hs *hs)
{
    const unsigned char *sel = NULL;
    unsigned int sellen = 0;
    X509 *peer;
    const SSL_CIPHER *ciph;
    uint16_t id;

    SSL_get0_alpn_selected(hs->ssl, &sel, &sellen);
    if (sel == NULL)
        sellen = 0;
    if (sellen > 0) {
        size_t n = sellen < sizeof(hs->alpn) ? sellen : sizeof(hs->alpn) - 1;
        memcpy(hs->alpn, sel, n);
        hs->alpn[n] = '\0';
    }
    if (hs->alpn_wire_len > 0 && (sellen != hs->alpn_wire_len - 1 || memcmp(sel, hs->alpn_wire + 1, sellen) != 0)) {
        char got[64] = "";

        if (sellen > 0) {
            /* Another protocol: refused in every mode. */
            alpn_append(got, sizeof(got), sel, sellen);
            return hs_fail(hs, -EPROTO, "TLS handshake failed: the %s selected ALPN %s, not \"%s\"",
                           hs->role == KTLS_CLIENT ? "server" : "client", got, hs->cfg.alpn);
        }
        if (hs->cfg.require_alpn)
            return hs_fail(hs, -EPROTO, "TLS handshake failed: the %s selected no ALPN protocol (\"%s\" required)",
                           hs->role == KTLS_CLIENT ? "server" : "client", hs->cfg.alpn);
    }

    peer = SSL_get1_peer_certificate(hs->ssl);
    if (peer != NULL) {
        BIO *m = BIO_new(BIO_s_mem());
        if (m != NULL) {
            char *p;
            long n;
            X509_NAME_print_ex(m, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
            n = BIO_get_mem_data(m, &p);
            if (n > 0) {
                size_t k = (size_t)n < sizeof(hs->peer_subject) ? (size_t)n : sizeof(hs->peer_subject) - 1;
                memcpy(hs->peer_subject, p, k);
                hs->peer_subject[k] = '\0';
            }
            BIO_free(m);
        }
        X509_free(peer);
    }

    ciph = SSL_get_current_cipher(hs->ssl);
    id = ciph ? (uint16_t)(SSL_CIPHER_get_protocol_id(ciph) & 0xffff) : 0;
    if (id != KTLS_AES_128_GCM_SHA256 && id != KTLS_AES_256_GCM_SHA384 && id != KTLS_CHACHA20_POLY1305_SHA256)
        return hs_fail(hs, -EPROTONOSUPPORT, "TLS handshake failed: negotiated suite %s (0x%04x) is not supported by the record layer",
                       ciph ? SSL_CIPHER_get_name(ciph) : "?", id);
    if (hs->client_secret_len != ktls_cipher_hash_len((enum ktls_cipher)id) ||
        hs->server_secret_len != hs->client_secret_len)
        return hs_fail(hs, -EPROTO, "TLS handshake failed: traffic secrets not available from OpenSSL");
    hs->state = HS_DONE;
    return 0;
}

int ktls_hs_step(struct ktls_hs *hs, int *want_write)
{
    int dummy, ret;

    if (want_write == NULL)
        want_write = &dummy;
    *want_write = 0;
    if (hs == NULL)
        return -EINVAL;
    if (hs->state == HS_FAILED)
        return hs->error;
    if (hs->state == HS_FINISHED)
        return -EINVAL;

    for (;;) {
        int r, err;

        r = hs_flush(hs);
        if (r == -EAGAIN) {
            *want_write = 1;
            return -EAGAIN;
        }
        if (r < 0) {
            if (r == -EPIPE || r == -ECONNRESET)
                return hs_fail(hs, r, "TLS handshake failed: peer closed the connection during the handshake");
            return hs_fail(hs, r, "TLS handshake failed: write: %s", strerror(-r));
        }
        if (hs->state == HS_DONE)
            return 0; /* complete and the last flight is out */

        ERR_clear_error();
        ret = SSL_do_handshake(hs->ssl);
        if (ret == 1) {
            if (hs_complete(hs) < 0) {
                hs_flush_best_effort(hs);
                return hs->error;
            }
            continue; /* flush our Finished */
        }
        err = SSL_get_error(hs->ssl, ret);
        if (err == SSL_ERROR_WANT_READ) {
            if (BIO_ctrl_pending(hs->wbio) > 0)
                continue; /* send before waiting for the answer */
            r = hs_fill(hs);
            if (r == -EAGAIN) {
                *want_write = 0;
                return -EAGAIN;
            }
            if (r == 0)
                return hs_fail(hs, -ECONNRESET, "TLS handshake failed: peer closed the connection during the handshake");
            if (r < 0) {
                if (r == -ECONNRESET)
                    return hs_fail(hs, r, "TLS handshake failed: peer closed the connection during the handshake");
                return hs_fail(hs, r, "TLS handshake failed: read: %s", strerror(-r));
            }
            continue;
        }
        if (err == SSL_ERROR_WANT_WRITE)
            continue; /* memory BIO: cannot really happen; flush and retry */

        /* Fatal: let the peer see our alert, then report. */
        hs_flush_best_effort(hs);
        if (hs->role == KTLS_CLIENT && hs->alpn_server[0] != '\0') {
            char want[260] = "";
            alpn_append(want, sizeof(want), hs->alpn_wire + 1, hs->alpn_wire_len - 1);
            if (strcmp(hs->alpn_server, want) != 0) {
                ERR_clear_error();
                return hs_fail(hs, -EPROTO, "TLS handshake failed: the server selected ALPN %s, not %s",
                               hs->alpn_server, want);
            }
        }
        if (hs->alpn_failed == HS_ALPN_NONE_OFFERED)
            return hs_fail(hs, -EPROTO, "TLS handshake failed: the client offered no ALPN protocol (\"%s\" required)",
                           hs->cfg.alpn);
        if (hs->alpn_failed == HS_ALPN_NOT_OFFERED)
            return hs_fail(hs, -EPROTO, "TLS handshake failed: the client offered ALPN %s, not \"%s\"",
                           hs->alpn_offered[0] ? hs->alpn_offered : "(empty list)", hs->cfg.alpn);
        return hs_fail_ssl(hs, -EPROTO, "TLS handshake failed");
    }
}

const char *ktls_hs_error(const struct ktls_hs *hs)
{
    return hs ? hs->err : "no handshake";
}

const char *ktls_hs_alpn(const struct ktls_hs *hs)
{
    return hs ? hs->alpn : "";
}

const char *ktls_hs_peer_subject(const struct ktls_hs *hs)
{
    return hs ? hs->peer_subject : "";
}

size_t ktls_hs_leftover(const struct ktls_hs *hs)
{
    return hs ? hs->leftover : 0;
}

static void hs_wipe_secrets(struct ktls_hs *hs)
{
    OPENSSL_cleanse(hs->client_secret, sizeof(hs->client_secret));
    OPENSSL_cleanse(hs->server_secret, sizeof(hs->server_secret));
    hs->client_secret_len = hs->server_secret_len = 0;
}

int ktls_hs_finish(struct ktls_hs *hs, struct ktls_conn **out)
{
    struct ktls_conn_params p;
    struct ktls_conn *c = NULL;
    const SSL_CIPHER *ciph;
    char *data = NULL;
    long pending;
    int ret;

    *out = NULL;
    if (hs == NULL || hs->state != HS_DONE)
        return -EINVAL;

    /* With read-ahead off OpenSSL holds no record past the handshake; if it
     * did, those bytes could not be handed over. */
    if (SSL_has_pending(hs->ssl) || SSL_pending(hs->ssl) > 0) {
        ret = hs_fail(hs, -EPROTO, "TLS hand-off failed: OpenSSL buffered data past the handshake");
        goto out;
    }

    ciph = SSL_get_current_cipher(hs->ssl);
    memset(&p, 0, sizeof(p));
    p.role = hs->role;
    p.cipher = (enum ktls_cipher)(SSL_CIPHER_get_protocol_id(ciph) & 0xffff);
    p.tx_secret = hs->role == KTLS_CLIENT ? hs->client_secret : hs->server_secret;
    p.rx_secret = hs->role == KTLS_CLIENT ? hs->server_secret : hs->client_secret;
    p.engine = hs->cfg.engine;
    p.tx_mode = hs->cfg.tx_mode;
    p.max_record = hs->cfg.max_record;
    p.key_update_bytes = hs->cfg.key_update_bytes;
    p.record_limit = hs->cfg.record_limit;
    ret = ktls_conn_new(&p, &c);
    if (ret < 0) {
        ret = hs_fail(hs, ret, "TLS hand-off failed: cannot set up the record layer (%s)", strerror(-ret));
        goto out;
    }

    /* The peer's records that followed its last handshake message. */
    pending = BIO_get_mem_data(hs->rbio, &data);
    if (pending > 0) {
        ret = ktls_rx_feed(c, data, (size_t)pending);
        if (ret < 0) {
            ktls_conn_free(c);
            ret = hs_fail(hs, ret, "TLS hand-off failed: cannot queue %ld buffered bytes (%s)", pending,
                          strerror(-ret));
            goto out;
        }
        hs->leftover = (size_t)pending;
    }
    hs->state = HS_FINISHED;
    *out = c;
    ret = 0;
out:
    hs_wipe_secrets(hs);
    /* The record layer runs alone from here on. */
    SSL_free(hs->ssl);
    hs->ssl = NULL;
    hs->rbio = hs->wbio = NULL;
    SSL_CTX_free(hs->ctx);
    hs->ctx = NULL;
    return ret;
}

void ktls_hs_free(struct ktls_hs *hs)
{
    if (hs == NULL)
        return;
    hs_wipe_secrets(hs);
    SSL_free(hs->ssl); /* frees both BIOs */
    SSL_CTX_free(hs->ctx);
    if (hs->keylog_fd >= 0)
        close(hs->keylog_fd);
    OPENSSL_cleanse(hs, sizeof(*hs));
    free(hs);
}

/* ---- blocking wrapper ---------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ktls_handshake(const struct ktls_config *cfg, int fd, struct ktls_conn **out, char *errbuf, size_t errlen)
{
    struct ktls_hs *hs = NULL;
    int timeout = cfg && cfg->timeout_ms > 0 ? cfg->timeout_ms : HS_DEFAULT_TIMEOUT_MS;
    int64_t deadline = now_ms() + timeout;
    int fl, ret, want_write = 0;

    *out = NULL;
    if (errbuf != NULL && errlen > 0)
        errbuf[0] = '\0';
    ret = hs_new(cfg, fd, &hs);
    if (ret < 0)
        goto out;

    /* Non-blocking while we drive it so the timeout holds; restored after. */
    fl = fcntl(fd, F_GETFL);
    if (fl < 0) {
        ret = hs_fail(hs, -errno, "TLS handshake failed: fcntl: %s", strerror(errno));
        goto out;
    }
    if (!(fl & O_NONBLOCK))
        (void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    for (;;) {
        struct pollfd pfd;
        int64_t left;

        ret = ktls_hs_step(hs, &want_write);
        if (ret != -EAGAIN)
            break;
        left = deadline - now_ms();
        if (left <= 0) {
            ret = hs_fail(hs, -ETIMEDOUT, "TLS handshake failed: handshake timed out after %d ms", timeout);
            break;
        }
        pfd.fd = fd;
        pfd.events = want_write ? POLLOUT : POLLIN;
        pfd.revents = 0;
        if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR) {
            ret = hs_fail(hs, -errno, "TLS handshake failed: poll: %s", strerror(errno));
            break;
        }
    }
    if (!(fl & O_NONBLOCK))
        (void)fcntl(fd, F_SETFL, fl);
    if (ret == 0)
        ret = ktls_hs_finish(hs, out);
out:
    if (ret < 0 && errbuf != NULL && errlen > 0)
        snprintf(errbuf, errlen, "%s", hs ? ktls_hs_error(hs) : strerror(-ret));
    ktls_hs_free(hs);
    return ret;
}
