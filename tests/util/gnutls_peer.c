/*
 * tests/util/gnutls_peer.c - GnuTLS sessions as tlshd and libnfs set them
 * up (see gnutls_peer.h for the sources each setting comes from).
 */
#include "util/gnutls_peer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>

/* tlshd_gnutls_priority_init(): appended to the system default. The cipher
 * part is the kTLS-capable ciphers in the order of GnuTLS's default list. */
#define TLSHD_PRIORITY                                                                                     \
    "-COMP-ALL:-VERS-ALL:+VERS-TLS1.3:%NO_TICKETS:-CIPHER-ALL:+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-GCM:" \
    "+AES-128-CCM"
/* libnfs do_tls_handshake(): the default when LIBNFS_TLS_GNUTLS_PRIORITY_STRING is unset. */
#define LIBNFS_PRIORITY "PERFORMANCE:-CIPHER-ALL:+AES-128-GCM"

struct gt_state {
    gnutls_session_t s;
    gnutls_certificate_credentials_t cred;
    gnutls_priority_t prio;
    unsigned tickets;
    int timeout_ms;
};

static void gt_err(struct tu_xprt *x, const char *what, int rc)
{
    snprintf(x->err, sizeof x->err, "gnutls %s: %s", what, gnutls_strerror(rc));
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* GnuTLS returns GNUTLS_E_AGAIN after each post-handshake message it
 * processed (a NewSessionTicket, a KeyUpdate) and when SO_RCVTIMEO expired:
 * retried until the transport's timeout has passed, so a read blocks at most
 * about twice the timeout. */
static int gt_read(struct tu_xprt *x, void *buf, size_t len)
{
    struct gt_state *g = x->tls;
    uint64_t deadline = now_ms() + (uint64_t)g->timeout_ms;
    ssize_t n;

    do {
        n = gnutls_record_recv(g->s, buf, len);
        if (n >= 0)
            return (int)n;
    } while ((n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) && now_ms() < deadline);
    gt_err(x, "record_recv", (int)n);
    return -1;
}

static int gt_write(struct tu_xprt *x, const void *buf, size_t len)
{
    struct gt_state *g = x->tls;
    uint64_t deadline = now_ms() + (uint64_t)g->timeout_ms;
    ssize_t n;

    do {
        n = gnutls_record_send(g->s, buf, len);
        if (n > 0)
            return (int)n;
    } while ((n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) && now_ms() < deadline);
    gt_err(x, "record_send", (int)n);
    return -1;
}

static void gt_free(struct gt_state *g)
{
    if (g->s)
        gnutls_deinit(g->s);
    if (g->cred)
        gnutls_certificate_free_credentials(g->cred);
    if (g->prio)
        gnutls_priority_deinit(g->prio);
    free(g);
}

static void gt_end(struct tu_xprt *x)
{
    struct gt_state *g = x->tls;

    gnutls_bye(g->s, GNUTLS_SHUT_WR); /* close_notify; the answer is not awaited */
    gt_free(g);
    x->tls = NULL;
}

/* Counts NewSessionTicket messages as they arrive. */
static int ticket_hook(gnutls_session_t s, unsigned int htype, unsigned when, unsigned int incoming,
                       const gnutls_datum_t *msg)
{
    struct gt_state *g = gnutls_session_get_ptr(s);

    (void)msg;
    if (htype == GNUTLS_HANDSHAKE_NEW_SESSION_TICKET && when == GNUTLS_HOOK_POST && incoming)
        g->tickets++;
    return 0;
}

int tu_gt_start(struct tu_xprt *x, int fd, const struct tu_gt_cfg *cfg)
{
    struct gt_state *g;
    const char *errpos = NULL;
    int rc, ret = -1;

    tu_xprt_plain(x, fd);
    g = calloc(1, sizeof *g);
    if (g == NULL) {
        snprintf(x->err, sizeof x->err, "out of memory");
        return -1;
    }
    g->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 20000;
    rc = gnutls_certificate_allocate_credentials(&g->cred);
    if (rc < 0) {
        gt_err(x, "credentials", rc);
        goto out;
    }
    if (cfg->ca_file != NULL && (rc = gnutls_certificate_set_x509_trust_file(g->cred, cfg->ca_file,
                                                                                 GNUTLS_X509_FMT_PEM)) < 0) {
        gt_err(x, "trust file", rc);
        goto out;
    }
    if (cfg->cert_file != NULL && (rc = gnutls_certificate_set_x509_key_file(g->cred, cfg->cert_file, cfg->key_file,
                                                                                GNUTLS_X509_FMT_PEM)) < 0) {
        gt_err(x, "certificate", rc);
        goto out;
    }
    rc = gnutls_init(&g->s, cfg->server ? GNUTLS_SERVER : GNUTLS_CLIENT);
    if (rc < 0) {
        gt_err(x, "init", rc);
        goto out;
    }
    gnutls_session_set_ptr(g->s, g);
    if (cfg->profile == TU_GT_TLSHD)
        rc = gnutls_priority_init2(&g->prio, TLSHD_PRIORITY, &errpos, GNUTLS_PRIORITY_INIT_DEF_APPEND);
    else
        rc = gnutls_priority_init(&g->prio, LIBNFS_PRIORITY, &errpos);
    if (rc == 0)
        rc = gnutls_priority_set(g->s, g->prio);
    if (rc < 0) {
        gt_err(x, "priority", rc);
        goto out;
    }
    rc = gnutls_credentials_set(g->s, GNUTLS_CRD_CERTIFICATE, g->cred);
    if (rc < 0) {
        gt_err(x, "credentials_set", rc);
        goto out;
    }
    if (cfg->server) {
        /* tlshd_tls13_server_x509_handshake(): ask, do not require. */
        gnutls_certificate_server_set_request(g->s, GNUTLS_CERT_REQUEST);
    } else if (cfg->server_name != NULL) {
        gnutls_server_name_set(g->s, GNUTLS_NAME_DNS, cfg->server_name, strlen(cfg->server_name));
        gnutls_session_set_verify_cert(g->s, cfg->server_name, 0);
    }
    gnutls_handshake_set_hook_function(g->s, GNUTLS_HANDSHAKE_NEW_SESSION_TICKET, GNUTLS_HOOK_POST, ticket_hook);
    gnutls_transport_set_int(g->s, fd);
    gnutls_handshake_set_timeout(g->s, (unsigned)g->timeout_ms);
    /* tlshd_start_tls_handshake(): retry while the error is not fatal. */
    for (int i = 0; i < 1000; i++) {
        rc = gnutls_handshake(g->s);
        if (rc == 0 || gnutls_error_is_fatal(rc))
            break;
    }
    if (rc < 0) {
        if (rc == GNUTLS_E_FATAL_ALERT_RECEIVED || rc == GNUTLS_E_WARNING_ALERT_RECEIVED)
            snprintf(x->err, sizeof x->err, "gnutls handshake: %s: %s", gnutls_strerror(rc),
                     gnutls_alert_get_name(gnutls_alert_get(g->s)));
        else
            gt_err(x, "handshake", rc);
        goto out;
    }
    x->tls = g;
    x->read = gt_read;
    x->write = gt_write;
    x->end_tls = gt_end;
    ret = 0;
out:
    if (ret < 0)
        gt_free(g);
    return ret;
}

void tu_gt_info(struct tu_xprt *x, struct tu_gt_info *out)
{
    struct gt_state *g = x->tls;
    gnutls_datum_t alpn;
    unsigned n = 0;
    const char *name;

    memset(out, 0, sizeof *out);
    if (g == NULL)
        return;
    name = gnutls_protocol_get_name(gnutls_protocol_get_version(g->s));
    snprintf(out->version, sizeof out->version, "%s", name ? name : "?");
    name = gnutls_cipher_get_name(gnutls_cipher_get(g->s));
    snprintf(out->cipher, sizeof out->cipher, "%s", name ? name : "?");
    if (gnutls_alpn_get_selected_protocol(g->s, &alpn) == 0)
        snprintf(out->alpn, sizeof out->alpn, "%.*s", (int)alpn.size, (const char *)alpn.data);
    out->peer_cert = gnutls_certificate_get_peers(g->s, &n) != NULL && n > 0;
    out->tickets = g->tickets;
}

int tu_gt_srv_start_tls(struct tu_xprt *x, int fd, void *arg)
{
    return tu_gt_start(x, fd, arg);
}

void tu_gt_describe(struct tu_xprt *x, char *buf, size_t len)
{
    struct tu_gt_info i;

    tu_gt_info(x, &i);
    snprintf(buf, len, "%s %s alpn=%s client-cert=%d", i.version, i.cipher, i.alpn[0] ? i.alpn : "none",
             i.peer_cert);
}
