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
#include <sys/stat.h>
#include <poll.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
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

/* A TLS context, loaded once and shared by many handshakes (see ktls.h). */
struct ktls_ctx {
    atomic_uint refs;
    SSL_CTX *ssl_ctx;
    struct ktls_config cfg; /* its strings point into strs */
    char *strs[7];
    unsigned char alpn_wire[256]; /* cfg.alpn in ALPN wire format */
    size_t alpn_wire_len;
    int keylog_fd; /* -1: none */
    char warning[512];
};

struct ktls_hs {
    enum ktls_role role;
    struct ktls_config cfg; /* shallow copy of kctx->cfg; its strings live as long as kctx */
    int fd;
    struct ktls_ctx *kctx; /* our reference */
    SSL *ssl;
    BIO *rbio; /* peer -> OpenSSL; we fill it from fd */
    BIO *wbio; /* OpenSSL -> peer; we flush it to fd */
    enum hs_state state;
    int error;        /* negative errno of the failure */
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
    char peer_user[KTLS_MAX_PEER_USER + 1]; /* from a verified client certificate, "" if none */
    char peer_user_error[160];              /* why a certificate's identity was not taken, "" if none */
    char err[512];
    char checked_name[KTLS_MAX_SERVER_NAME + 1]; /* client: the server name or IP checked against the certificate */
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
    if (hs->kctx->keylog_fd >= 0) {
        size_t len = strlen(line);
        char *buf = malloc(len + 1);
        if (buf != NULL) {
            memcpy(buf, line, len);
            buf[len] = '\n';
            /* One write per line: O_APPEND keeps concurrent writers' lines whole. */
            if (write(hs->kctx->keylog_fd, buf, len + 1) < 0) {
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
    struct ktls_hs *hs = SSL_get_app_data(ssl);
    size_t want;
    unsigned int i = 0;

    (void)arg;
    if (hs == NULL)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    want = hs->alpn_wire_len - 1;
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
    struct ktls_hs *hs = SSL_get_app_data(ssl);
    const unsigned char *p = buf, *end;
    size_t extlen;

    (void)version;
    (void)arg;
    if (hs == NULL || write_p || content_type != SSL3_RT_HANDSHAKE || len < 6 || p[0] != SSL3_MT_ENCRYPTED_EXTENSIONS)
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
    struct ktls_hs *hs = SSL_get_app_data(ssl);
    const unsigned char *ext;
    size_t extlen;

    (void)arg;
    if (hs != NULL && hs->cfg.require_alpn && hs->alpn_wire_len > 0 &&
        !SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &ext, &extlen)) {
        hs->alpn_failed = HS_ALPN_NONE_OFFERED;
        *al = TLS1_AD_NO_APPLICATION_PROTOCOL;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

/* ---- certificate identity (draft-cel-nfsv4-rpc-tls-othername) ------------ */

/* Well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, at most
 * U+10FFFF) without control characters, so that it can be logged. */
static int user_text_ok(const unsigned char *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned c = p[i], need;
        uint32_t cp;

        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return 0;
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            need = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            need = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            need = 3, cp = c & 0x07;
        else
            return 0;
        if (n - i - 1 < need)
            return 0;
        for (unsigned k = 1; k <= need; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += need + 1;
    }
    return 1;
}

/* Checks one identity string and copies it to user. 0, or -1 with why. */
static int take_user(const char *oid, const unsigned char *p, size_t n, char *user, size_t userlen, char *why,
                     size_t whylen)
{
    const unsigned char *at = n > 0 ? memchr(p, '@', n) : NULL;

    if (n == 0 || n > KTLS_MAX_PEER_USER || n >= userlen) {
        snprintf(why, whylen, "otherName %s: %zu bytes long (1 to %d)", oid, n, KTLS_MAX_PEER_USER);
        return -1;
    }
    if (!user_text_ok(p, n)) {
        snprintf(why, whylen, "otherName %s: not valid UTF-8 text", oid);
        return -1;
    }
    /* "user@domain": one '@' with something on both sides (the draft,
     * section 3.9.2: a string without '@' names no one). */
    if (at == NULL || at == p || at == p + n - 1 || memchr(at + 1, '@', (size_t)(p + n - at - 1)) != NULL) {
        snprintf(why, whylen, "otherName %s: \"%.*s\" is not user@domain", oid, (int)n, (const char *)p);
        return -1;
    }
    memcpy(user, p, n);
    user[n] = '\0';
    return 0;
}

/* The draft's NFSv4Principal: SEQUENCE { principal UTF8String }, DER, as
 * the whole otherName value. Finds the string's bytes; 0 or -1. */
static int nfsv4_principal(const ASN1_STRING *seq, const unsigned char **str, size_t *strlen_out)
{
    const unsigned char *p = ASN1_STRING_get0_data(seq), *inner;
    long total = ASN1_STRING_length(seq), len;
    int tag, xclass, r;

    r = ASN1_get_object(&p, &len, &tag, &xclass, total);
    if ((r & 0x80) || !(r & V_ASN1_CONSTRUCTED) || tag != V_ASN1_SEQUENCE || xclass != V_ASN1_UNIVERSAL ||
        p + len != ASN1_STRING_get0_data(seq) + total)
        return -1;
    inner = p;
    r = ASN1_get_object(&p, &len, &tag, &xclass, total - (inner - ASN1_STRING_get0_data(seq)));
    if ((r & 0x80) || (r & V_ASN1_CONSTRUCTED) || tag != V_ASN1_UTF8STRING || xclass != V_ASN1_UNIVERSAL ||
        p + len != ASN1_STRING_get0_data(seq) + total)
        return -1;
    *str = p;
    *strlen_out = (size_t)len;
    return 0;
}

/*
 * The user a certificate names in a subjectAltName otherName: FreeBSD's
 * (KTLS_OID_FREEBSD_USER, a UTF8String, what rpc.tlsservd -u reads) or the
 * draft's NFSv4Principal (KTLS_OID_NFSV4_PRINCIPAL). Returns 1 with user
 * filled, 0 when the certificate names none, -1 with why when it names one
 * we refuse: a malformed value, or more than one (the draft, section 3.1:
 * several identities are ambiguous, the certificate is rejected).
 */
static int cert_user(X509 *x, char *user, size_t userlen, char *why, size_t whylen)
{
    GENERAL_NAMES *gens;
    int crit = 0, found = 0, ret = 0;
    char first[KTLS_MAX_PEER_USER + 1] = "";

    user[0] = '\0';
    why[0] = '\0';
    gens = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
    if (gens == NULL) {
        if (crit == -2) {
            snprintf(why, whylen, "the certificate has more than one subjectAltName extension");
            return -1;
        }
        return 0;
    }
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        const OTHERNAME *on;
        const unsigned char *p = NULL;
        size_t n = 0;
        char oid[128];

        if (g->type != GEN_OTHERNAME)
            continue;
        on = g->d.otherName;
        if (OBJ_obj2txt(oid, sizeof oid, on->type_id, 1) <= 0 || (size_t)OBJ_obj2txt(NULL, 0, on->type_id, 1) >= sizeof oid)
            continue; /* not one of ours: those are short */
        if (strcmp(oid, KTLS_OID_FREEBSD_USER) == 0) {
            if (on->value == NULL || on->value->type != V_ASN1_UTF8STRING) {
                snprintf(why, whylen, "otherName %s is not a UTF8String", oid);
                ret = -1;
                goto out;
            }
            p = ASN1_STRING_get0_data(on->value->value.utf8string);
            n = (size_t)ASN1_STRING_length(on->value->value.utf8string);
        } else if (strcmp(oid, KTLS_OID_NFSV4_PRINCIPAL) == 0) {
            if (on->value == NULL || on->value->type != V_ASN1_SEQUENCE ||
                nfsv4_principal(on->value->value.sequence, &p, &n) < 0) {
                snprintf(why, whylen, "otherName %s is not an NFSv4Principal (a SEQUENCE of one UTF8String)", oid);
                ret = -1;
                goto out;
            }
        } else {
            continue; /* other otherNames are not identities (the draft, section 3.1, item 4) */
        }
        if (take_user(oid, p, n, user, userlen, why, whylen) < 0) {
            ret = -1;
            goto out;
        }
        if (found++ > 0) {
            snprintf(why, whylen, "the certificate names more than one user (\"%s\" and \"%s\")", first, user);
            ret = -1;
            goto out;
        }
        snprintf(first, sizeof first, "%s", user);
    }
    ret = found > 0;
out:
    if (ret < 0)
        user[0] = '\0';
    GENERAL_NAMES_free(gens);
    return ret;
}

int ktls_cert_file_user(const char *pem_file, char *user, size_t userlen, char *why, size_t whylen)
{
    FILE *f;
    X509 *x;
    int ret;

    user[0] = '\0';
    if ((f = fopen(pem_file, "r")) == NULL) {
        snprintf(why, whylen, "%s: %s", pem_file, strerror(errno));
        return -1;
    }
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (x == NULL) {
        snprintf(why, whylen, "%s: not a PEM certificate", pem_file);
        return -1;
    }
    ret = cert_user(x, user, userlen, why, whylen);
    X509_free(x);
    ERR_clear_error();
    return ret;
}

/* ---- the shared context -------------------------------------------------- */

static int is_ip_literal(const char *name)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

static int ctx_err(char *err, size_t errlen, int ret, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int ctx_err(char *err, size_t errlen, int ret, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    ERR_clear_error();
    return ret;
}

/* "2026-01-01 00:00:00 UTC" */
static void fmt_time(const ASN1_TIME *t, char *buf, size_t len)
{
    struct tm tm;

    if (ASN1_TIME_to_tm(t, &tm) != 1 || strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(buf, len, "(unreadable time)");
}

/* A file we are about to load must open for reading and not be a
 * directory; OpenSSL's own errors for those do not name the file. */
static int check_file(const char *label, const char *path, char *err, size_t errlen)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC), e;

    if (fd < 0) {
        e = errno;
        return ctx_err(err, errlen, -e, "%s %s: %s", label, path, strerror(e));
    }
    if (fstat(fd, &st) < 0) {
        e = errno;
        close(fd);
        return ctx_err(err, errlen, -e, "%s %s: %s", label, path, strerror(e));
    }
    close(fd);
    if (S_ISDIR(st.st_mode))
        return ctx_err(err, errlen, -EISDIR, "%s %s: %s", label, path, strerror(EISDIR));
    return 0;
}

/* Never prompt for a passphrase: an encrypted key is a configuration error. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* Certificate (with its chain) and key: present, readable, PEM, matching,
 * and the certificate within its validity period. */
static int ctx_load_cert(struct ktls_ctx *k, char *err, size_t errlen)
{
    const struct ktls_config *cfg = &k->cfg;
    const char *keyf = cfg->key_file != NULL ? cfg->key_file : cfg->cert_file;
    EVP_PKEY *pkey = NULL;
    BIO *b = NULL;
    X509 *x;
    char when[64];
    int ret, days = 0, secs = 0;

    if ((ret = check_file("certificate", cfg->cert_file, err, errlen)) < 0)
        return ret;
    SSL_CTX_set_default_passwd_cb(k->ssl_ctx, no_passphrase);
    if (SSL_CTX_use_certificate_chain_file(k->ssl_ctx, cfg->cert_file) != 1 ||
        (x = SSL_CTX_get0_certificate(k->ssl_ctx)) == NULL)
        return ctx_err(err, errlen, -EINVAL, "certificate %s: not a PEM certificate", cfg->cert_file);
    if (X509_cmp_current_time(X509_get0_notBefore(x)) >= 0) {
        fmt_time(X509_get0_notBefore(x), when, sizeof when);
        return ctx_err(err, errlen, -EINVAL, "certificate %s: not valid before %s", cfg->cert_file, when);
    }
    if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0) {
        fmt_time(X509_get0_notAfter(x), when, sizeof when);
        return ctx_err(err, errlen, -EINVAL, "certificate %s: expired on %s", cfg->cert_file, when);
    }
    if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)) == 1 && days < KTLS_CERT_EXPIRY_WARN_DAYS) {
        fmt_time(X509_get0_notAfter(x), when, sizeof when);
        snprintf(k->warning, sizeof k->warning, "certificate %s expires on %s, in %d day%s", cfg->cert_file, when,
                 days, days == 1 ? "" : "s");
    }

    if (keyf != cfg->cert_file && (ret = check_file("private key", keyf, err, errlen)) < 0)
        return ret;
    if ((b = BIO_new_file(keyf, "r")) != NULL)
        pkey = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
    BIO_free(b);
    if (pkey == NULL)
        return ctx_err(err, errlen, -EINVAL, "private key %s: not an unencrypted PEM private key", keyf);
    if (X509_check_private_key(x, pkey) != 1) {
        EVP_PKEY_free(pkey);
        return ctx_err(err, errlen, -EINVAL, "private key %s: does not match the certificate %s", keyf,
                       cfg->cert_file);
    }
    ret = SSL_CTX_use_PrivateKey(k->ssl_ctx, pkey) == 1 ? 0 : -EINVAL;
    EVP_PKEY_free(pkey);
    if (ret < 0)
        return ctx_err(err, errlen, ret, "private key %s: cannot be used", keyf);
    return 0;
}

/* One SSL_CTX and the policy, for ktls_ctx_new. */
static int ctx_setup(struct ktls_ctx *k, char *err, size_t errlen)
{
    const struct ktls_config *cfg = &k->cfg;
    int server = cfg->role == KTLS_SERVER;
    const char *keylog;
    int verify, ret;

    k->ssl_ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (k->ssl_ctx == NULL)
        return ctx_err(err, errlen, -ENOMEM, "TLS setup failed: out of memory");
    if (!SSL_CTX_set_min_proto_version(k->ssl_ctx, TLS1_3_VERSION))
        return ctx_err(err, errlen, -EINVAL, "TLS setup failed: TLS 1.3 not available");
    /* The record layer takes over after the handshake: no tickets, no
     * resumption, no early data, and OpenSSL must not read ahead. */
    SSL_CTX_set_options(k->ssl_ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(k->ssl_ctx, 0);
    SSL_CTX_set_session_cache_mode(k->ssl_ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_max_early_data(k->ssl_ctx, 0);
    SSL_CTX_set_read_ahead(k->ssl_ctx, 0);
    SSL_CTX_set_keylog_callback(k->ssl_ctx, keylog_cb);

    /* OpenSSL prefers AES-256-GCM; AES-128-GCM is as safe for our use and the
     * fastest suite of the record layer's engines, so it goes first. */
    if (!SSL_CTX_set_ciphersuites(k->ssl_ctx, cfg->ciphersuites != NULL ? cfg->ciphersuites : KTLS_DEFAULT_CIPHERSUITES))
        return ctx_err(err, errlen, -EINVAL, "TLS setup failed: bad TLS 1.3 ciphersuite list \"%s\"",
                       cfg->ciphersuites);

    if (cfg->cert_file != NULL) {
        if ((ret = ctx_load_cert(k, err, errlen)) < 0)
            return ret;
    } else if (server) {
        return ctx_err(err, errlen, -EINVAL, "TLS setup failed: a server needs a certificate (cert_file)");
    }

    /* A CA file that was given must load, whether or not it is used. */
    if (cfg->ca_file != NULL) {
        if ((ret = check_file("CA file", cfg->ca_file, err, errlen)) < 0)
            return ret;
        if (SSL_CTX_load_verify_locations(k->ssl_ctx, cfg->ca_file, NULL) != 1)
            return ctx_err(err, errlen, -EINVAL, "CA file %s: no PEM certificate in it", cfg->ca_file);
    }
    /* Clients verify unless verify_peer < 0; servers follow verify_peer. */
    verify = server ? cfg->verify_peer : (cfg->verify_peer >= 0);
    if (verify) {
        if (cfg->ca_file != NULL) {
            if (server) {
                STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->ca_file);
                if (names != NULL)
                    SSL_CTX_set_client_CA_list(k->ssl_ctx, names);
            }
        } else if (SSL_CTX_set_default_verify_paths(k->ssl_ctx) != 1) {
            return ctx_err(err, errlen, -EINVAL, "TLS setup failed: cannot load the default CA store");
        }
        SSL_CTX_set_verify(k->ssl_ctx,
                           SSL_VERIFY_PEER | (server && cfg->verify_peer >= 2 ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                           server ? NULL : name_verify_cb);
    } else {
        SSL_CTX_set_verify(k->ssl_ctx, SSL_VERIFY_NONE, NULL);
    }

    /* Callbacks find their handshake through SSL_get_app_data: the
     * context is shared. */
    if (cfg->alpn != NULL && cfg->alpn[0] != '\0') {
        size_t n = strlen(cfg->alpn);
        if (n > 255)
            return ctx_err(err, errlen, -EINVAL, "TLS setup failed: ALPN protocol id too long");
        k->alpn_wire[0] = (unsigned char)n;
        memcpy(k->alpn_wire + 1, cfg->alpn, n);
        k->alpn_wire_len = n + 1;
        if (server) {
            SSL_CTX_set_alpn_select_cb(k->ssl_ctx, alpn_select_cb, NULL);
            SSL_CTX_set_client_hello_cb(k->ssl_ctx, client_hello_cb, NULL);
        } else if (SSL_CTX_set_alpn_protos(k->ssl_ctx, k->alpn_wire, (unsigned)k->alpn_wire_len) != 0) {
            return ctx_err(err, errlen, -ENOMEM, "TLS setup failed: out of memory");
        } else {
            SSL_CTX_set_msg_callback(k->ssl_ctx, alpn_msg_cb);
        }
    }

    keylog = cfg->keylog_file ? cfg->keylog_file : getenv("SSLKEYLOGFILE");
    if (keylog != NULL && keylog[0] != '\0')
        k->keylog_fd = open(keylog, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    ERR_clear_error();
    return 0;
}

int ktls_ctx_new(const struct ktls_config *cfg, struct ktls_ctx **out, char *err, size_t errlen)
{
    struct ktls_ctx *k;
    const char **strs[7];
    int ret;

    *out = NULL;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (cfg == NULL || (cfg->role != KTLS_CLIENT && cfg->role != KTLS_SERVER))
        return ctx_err(err, errlen, -EINVAL, "TLS setup failed: bad configuration");
    if ((k = calloc(1, sizeof(*k))) == NULL)
        return ctx_err(err, errlen, -ENOMEM, "TLS setup failed: out of memory");
    atomic_init(&k->refs, 1);
    k->keylog_fd = -1;
    /* Our own copy: the caller's strings may go away. */
    k->cfg = *cfg;
    strs[0] = &k->cfg.cert_file;
    strs[1] = &k->cfg.key_file;
    strs[2] = &k->cfg.ca_file;
    strs[3] = &k->cfg.server_name;
    strs[4] = &k->cfg.alpn;
    strs[5] = &k->cfg.ciphersuites;
    strs[6] = &k->cfg.keylog_file;
    for (int i = 0; i < 7; i++) {
        if (*strs[i] == NULL)
            continue;
        if ((k->strs[i] = strdup(*strs[i])) == NULL) {
            ret = ctx_err(err, errlen, -ENOMEM, "TLS setup failed: out of memory");
            goto fail;
        }
        *strs[i] = k->strs[i];
    }
    ERR_clear_error();
    if ((ret = ctx_setup(k, err, errlen)) < 0)
        goto fail;
    *out = k;
    return 0;
fail:
    ktls_ctx_unref(k);
    return ret;
}

struct ktls_ctx *ktls_ctx_ref(struct ktls_ctx *ctx)
{
    if (ctx != NULL)
        atomic_fetch_add(&ctx->refs, 1);
    return ctx;
}

void ktls_ctx_unref(struct ktls_ctx *ctx)
{
    if (ctx == NULL || atomic_fetch_sub(&ctx->refs, 1) != 1)
        return;
    SSL_CTX_free(ctx->ssl_ctx);
    if (ctx->keylog_fd >= 0)
        close(ctx->keylog_fd);
    for (int i = 0; i < 7; i++)
        free(ctx->strs[i]);
    free(ctx);
}

const struct ktls_config *ktls_ctx_config(const struct ktls_ctx *ctx)
{
    return &ctx->cfg;
}

const char *ktls_ctx_warning(const struct ktls_ctx *ctx)
{
    return ctx != NULL ? ctx->warning : "";
}

/* ---- one handshake ------------------------------------------------------- */

static int hs_setup(struct ktls_hs *hs)
{
    const struct ktls_config *cfg = &hs->cfg;
    int server = cfg->role == KTLS_SERVER;
    int verify = server ? cfg->verify_peer : (cfg->verify_peer >= 0);

    hs->ssl = SSL_new(hs->kctx->ssl_ctx);
    if (hs->ssl == NULL)
        return hs_fail_ssl(hs, -ENOMEM, "TLS setup failed");
    SSL_set_app_data(hs->ssl, hs);

    if (!server && cfg->server_name != NULL && cfg->server_name[0] != '\0') {
        int ip = is_ip_literal(cfg->server_name);
        /* SNI carries host names only (RFC 6066 section 3). */
        if (!ip && !SSL_set_tlsext_host_name(hs->ssl, cfg->server_name))
            return hs_fail_ssl(hs, -EINVAL, "TLS setup failed: bad server name");
        if (cfg->server_name != hs->checked_name) /* hs_new may have put it there */
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
    return 0;
}

/* Like ktls_hs_new_ctx_name but also returns the object when the setup
 * fails. */
static int hs_new(struct ktls_ctx *ctx, int fd, const char *server_name, struct ktls_hs **out)
{
    struct ktls_hs *hs;

    *out = NULL;
    if (ctx == NULL || fd < 0)
        return -EINVAL;
    hs = calloc(1, sizeof(*hs));
    if (hs == NULL)
        return -ENOMEM;
    hs->kctx = ktls_ctx_ref(ctx);
    hs->cfg = ctx->cfg;
    hs->role = ctx->cfg.role;
    hs->fd = fd;
    memcpy(hs->alpn_wire, ctx->alpn_wire, sizeof hs->alpn_wire);
    hs->alpn_wire_len = ctx->alpn_wire_len;
    ERR_clear_error();
    *out = hs;
    if (server_name != NULL && hs->role == KTLS_CLIENT) {
        /* This connection's name, kept in checked_name (no DNS name is
         * longer than 253 bytes). */
        if (strlen(server_name) > KTLS_MAX_SERVER_NAME)
            return hs_fail(hs, -EINVAL, "TLS setup failed: server name too long");
        snprintf(hs->checked_name, sizeof hs->checked_name, "%s", server_name);
        hs->cfg.server_name = hs->checked_name;
    }
    return hs_setup(hs);
}

int ktls_hs_new_ctx(struct ktls_ctx *ctx, int fd, struct ktls_hs **out)
{
    return ktls_hs_new_ctx_name(ctx, fd, NULL, out);
}

int ktls_hs_new_ctx_name(struct ktls_ctx *ctx, int fd, const char *server_name, struct ktls_hs **out)
{
    int ret = hs_new(ctx, fd, server_name, out);

    if (ret < 0) {
        ktls_hs_free(*out);
        *out = NULL;
    }
    return ret;
}

int ktls_hs_new(const struct ktls_config *cfg, int fd, struct ktls_hs **out)
{
    struct ktls_ctx *ctx;
    int ret;

    *out = NULL;
    if (fd < 0)
        return -EINVAL;
    if ((ret = ktls_ctx_new(cfg, &ctx, NULL, 0)) < 0)
        return ret;
    ret = ktls_hs_new_ctx(ctx, fd, out);
    ktls_ctx_unref(ctx); /* the handshake holds its own reference */
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
        /* The user a client certificate names, only when it verified
         * against our CA (a server that asked for and checked it). */
        if (hs->role == KTLS_SERVER && hs->cfg.verify_peer >= 1 && SSL_get_verify_result(hs->ssl) == X509_V_OK)
            (void)cert_user(peer, hs->peer_user, sizeof hs->peer_user, hs->peer_user_error,
                            sizeof hs->peer_user_error);
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

const char *ktls_hs_peer_user(const struct ktls_hs *hs)
{
    return hs ? hs->peer_user : "";
}

const char *ktls_hs_peer_user_error(const struct ktls_hs *hs)
{
    return hs ? hs->peer_user_error : "";
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
    return ret;
}

void ktls_hs_free(struct ktls_hs *hs)
{
    if (hs == NULL)
        return;
    hs_wipe_secrets(hs);
    SSL_free(hs->ssl); /* frees both BIOs */
    ktls_ctx_unref(hs->kctx);
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
    struct ktls_ctx *ctx = NULL;
    int timeout = cfg && cfg->timeout_ms > 0 ? cfg->timeout_ms : HS_DEFAULT_TIMEOUT_MS;
    int64_t deadline = now_ms() + timeout;
    int fl, ret, want_write = 0;

    *out = NULL;
    if (errbuf != NULL && errlen > 0)
        errbuf[0] = '\0';
    if (fd < 0)
        return -EINVAL;
    /* A bad configuration is reported by the context, naming the file. */
    ret = ktls_ctx_new(cfg, &ctx, errbuf, errlen);
    if (ret < 0)
        return ret;
    ret = hs_new(ctx, fd, NULL, &hs);
    ktls_ctx_unref(ctx);
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
