/*
 * test_handshake.c - the TLS 1.3 handshake and key hand-off against a stock
 * OpenSSL peer over loopback: both roles, ALPN, verification failures,
 * TLS 1.2 refusal, bytes buffered past the handshake, SSLKEYLOGFILE.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rpctls/ktls.h"
#include "test.h"
#include "util/certs.h"
#include "util/net.h"
#include "util/ossl_peer.h"
#include "util/stream.h"

static struct tu_certs certs;

/* Result of one handshake on our side. */
struct our_hs {
    int ret;
    struct ktls_conn *conn;
    char err[512];
    char alpn[64];
    char subject[256];
    size_t leftover;
    int eagains;
};

/* Drives ktls_hs_* on a non-blocking fd with poll(), like an event loop would.
 * When pc is given the peer is started on theirs only after our first step,
 * so that step finds nothing to read and must return -EAGAIN. */
static void run_hs(const struct ktls_config *cfg, int fd, struct our_hs *o, const struct tu_peer_cfg *pc, int theirs,
                   struct tu_peer **peer)
{
    struct ktls_hs *hs = NULL;
    int want_write = 0;

    memset(o, 0, sizeof(*o));
    tu_set_nonblock(fd, 1);
    o->ret = ktls_hs_new(cfg, fd, &hs);
    if (o->ret < 0) {
        snprintf(o->err, sizeof(o->err), "ktls_hs_new: %d", o->ret);
        if (pc != NULL && tu_peer_start(pc, theirs, peer) != 0)
            *peer = NULL;
        return;
    }
    for (int i = 0; i < 1000; i++) {
        struct pollfd pfd = {.fd = fd};
        o->ret = ktls_hs_step(hs, &want_write);
        if (o->ret != -EAGAIN)
            break;
        o->eagains++;
        if (pc != NULL && i == 0 && tu_peer_start(pc, theirs, peer) != 0) {
            o->ret = -EIO;
            break;
        }
        pfd.events = want_write ? POLLOUT : POLLIN;
        if (poll(&pfd, 1, 10000) == 0) {
            o->ret = -ETIMEDOUT;
            break;
        }
    }
    if (pc != NULL && o->eagains == 0 && tu_peer_start(pc, theirs, peer) != 0)
        o->ret = -EIO; /* keep the callers' join paths valid */
    if (o->ret == 0) {
        snprintf(o->alpn, sizeof(o->alpn), "%s", ktls_hs_alpn(hs));
        snprintf(o->subject, sizeof(o->subject), "%s", ktls_hs_peer_subject(hs));
        o->ret = ktls_hs_finish(hs, &o->conn);
        o->leftover = ktls_hs_leftover(hs);
    }
    snprintf(o->err, sizeof(o->err), "%s", ktls_hs_error(hs));
    ktls_hs_free(hs);
    tu_set_nonblock(fd, 0);
}

static void base_client(struct ktls_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->role = KTLS_CLIENT;
    cfg->cert_file = certs.client_cert;
    cfg->key_file = certs.client_key;
    cfg->ca_file = certs.ca_cert;
    cfg->verify_peer = 1;
    cfg->server_name = "localhost";
    cfg->alpn = "sunrpc"; /* require_alpn 0: the default, as deployed peers need */
    cfg->timeout_ms = 10000;
}

static void base_server(struct ktls_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->role = KTLS_SERVER;
    cfg->cert_file = certs.server_cert;
    cfg->key_file = certs.server_key;
    cfg->ca_file = certs.ca_cert;
    cfg->verify_peer = 2;
    cfg->alpn = "sunrpc"; /* require_alpn 0: the default, as deployed peers need */
    cfg->timeout_ms = 10000;
}

/* Stock peer acting as the server for our client. */
static void peer_server(struct tu_peer_cfg *p)
{
    memset(p, 0, sizeof(*p));
    p->role = KTLS_SERVER;
    p->cert_file = certs.server_cert;
    p->key_file = certs.server_key;
    p->ca_file = certs.ca_cert;
    p->require_peer_cert = 1;
    p->alpn = "sunrpc";
    p->timeout_ms = 10000;
}

static void peer_client(struct tu_peer_cfg *p)
{
    memset(p, 0, sizeof(*p));
    p->role = KTLS_CLIENT;
    p->cert_file = certs.client_cert;
    p->key_file = certs.client_key;
    p->ca_file = certs.ca_cert;
    p->verify_host = "localhost";
    p->alpn = "sunrpc";
    p->timeout_ms = 10000;
}

/* Sends n bytes of stream seed as one page-vector chain. */
static int send_stream(struct ktls_conn *c, int fd, uint32_t seed, size_t n)
{
    struct mb_chain ch = MB_CHAIN_INIT;
    unsigned char *buf = malloc(n);
    int ret;

    if (buf == NULL)
        return -ENOMEM;
    tu_stream_fill(seed, 0, buf, n);
    ret = mb_chain_append_pages_from_buf(&ch, buf, n);
    free(buf);
    if (ret == 0)
        ret = ktls_send(c, fd, &ch);
    mb_chain_free(&ch);
    return ret;
}

/* Receives until n bytes (or EOF when n is 0); returns bytes or < 0, and
 * the SHA-256 of what arrived. *eof is set on close_notify. */
static long long recv_stream(struct ktls_conn *c, int fd, size_t n, uint8_t sha[32], int *eof)
{
    struct tu_sha s;
    long long got = 0;

    *eof = 0;
    tu_sha_init(&s);
    while (n == 0 || (size_t)got < n) {
        struct mb_chain app = MB_CHAIN_INIT;
        int r = ktls_recv(c, fd, &app);
        tu_sha_update_chain(&s, &app);
        got += (long long)app.len;
        mb_chain_free(&app);
        if (r == KTLS_RX_EOF) {
            *eof = 1;
            break;
        }
        if (r < 0) {
            got = r;
            break;
        }
    }
    tu_sha_final(&s, sha);
    return got;
}

static int send_close(struct ktls_conn *c, int fd)
{
    struct mb_chain out = MB_CHAIN_INIT;
    int ret = ktls_tx_flush_control(c, &out);

    if (ret == 0)
        ret = ktls_tx_close_notify(c, &out);
    if (ret == 0)
        ret = ktls_write_chain(fd, &out);
    mb_chain_free(&out);
    return ret;
}

/* A full exchange after the hand-off: the peer's script is
 * [SEND peer_bytes (seed 2)] then RECV our_bytes then CLOSE; ours mirrors it. */
static void exchange(struct ktls_conn *c, int fd, size_t peer_bytes, size_t our_bytes, struct tu_peer *peer,
                     const struct tu_peer_cfg *pc)
{
    uint8_t sha[32], want[32];
    struct tu_peer_result res;
    int eof;
    long long got;

    if (peer_bytes) {
        got = recv_stream(c, fd, peer_bytes, sha, &eof);
        CHECK_EQ(got, (long long)peer_bytes);
        tu_stream_sha(2, peer_bytes, want);
        CHECK(memcmp(sha, want, 32) == 0);
    }
    CHECK_EQ(send_stream(c, fd, 1, our_bytes), 0);
    /* The peer closes first; we see EOF, then answer with our close_notify. */
    got = recv_stream(c, fd, 0, sha, &eof);
    CHECK_EQ(got, 0);
    CHECK(eof);
    CHECK_EQ(send_close(c, fd), 0);
    shutdown(fd, SHUT_WR); /* lets the peer's linger see EOF */

    tu_peer_join(peer, &res);
    if (!res.ok)
        fprintf(stderr, "  %s\n", res.err);
    CHECK(res.ok);
    CHECK(res.got_close_notify);
    CHECK_EQ(res.received, our_bytes);
    tu_stream_sha(1, our_bytes, want);
    CHECK(memcmp(res.recv_sha, want, 32) == 0);
    CHECK_EQ(res.sent, peer_bytes);
    CHECK_EQ(strcmp(res.alpn, pc->alpn ? pc->alpn : ""), 0);
}

static void script(struct tu_peer_cfg *pc, size_t peer_bytes, size_t our_bytes)
{
    int i = 0;

    if (peer_bytes)
        pc->ops[i++] = (struct tu_op){.kind = TU_OP_SEND, .n = peer_bytes, .seed = 2};
    pc->ops[i++] = (struct tu_op){.kind = TU_OP_RECV, .n = our_bytes};
    pc->ops[i++] = (struct tu_op){.kind = TU_OP_CLOSE};
}

/* ---- tests ---------------------------------------------------------------- */

static void test_client_handoff(void)
{
    struct ktls_config cfg;
    struct tu_peer_cfg pc;
    struct tu_peer *peer = NULL;
    struct our_hs o;
    int cfd, sfd;

    REQUIRE(tu_tcp_pair(&cfd, &sfd) == 0);
    peer_server(&pc);
    script(&pc, 5000, 1000);
    base_client(&cfg);
    run_hs(&cfg, cfd, &o, &pc, sfd, &peer);
    REQUIRE(peer != NULL);
    if (o.ret != 0)
        fprintf(stderr, "  %s\n", o.err);
    CHECK_EQ(o.ret, 0);
    CHECK(o.eagains > 0); /* the non-blocking path was taken */
    CHECK_EQ(strcmp(o.alpn, "sunrpc"), 0);
    CHECK(strstr(o.subject, "CN=localhost") != NULL);
    if (o.conn) {
        exchange(o.conn, cfd, 5000, 1000, peer, &pc);
        /* The stock server sent NewSessionTickets: the record layer ate them. */
        CHECK(ktls_conn_stats(o.conn)->rx_records > 0);
        ktls_conn_free(o.conn);
    } else {
        struct tu_peer_result res;
        shutdown(cfd, SHUT_RDWR);
        tu_peer_join(peer, &res);
    }
    close(cfd);
}

static void test_client_ip_name_and_blocking_wrapper(void)
{
    struct ktls_config cfg;
    struct tu_peer_cfg pc;
    struct tu_peer *peer;
    struct ktls_conn *c = NULL;
    char err[512];
    int cfd, sfd, ret;

    REQUIRE(tu_tcp_pair(&cfd, &sfd) == 0);
    peer_server(&pc);
    pc.ciphersuites = "TLS_CHACHA20_POLY1305_SHA256";
    pc.no_tickets = 1;
    script(&pc, 70000, 70000);
    REQUIRE(tu_peer_start(&pc, sfd, &peer) == 0);
    base_client(&cfg);
    cfg.server_name = "127.0.0.1"; /* IP SAN check */
    ret = ktls_handshake(&cfg, cfd, &c, err, sizeof(err));
    if (ret != 0)
        fprintf(stderr, "  %s\n", err);
    CHECK_EQ(ret, 0);
    if (c) {
        CHECK_EQ(ktls_conn_cipher(c), KTLS_CHACHA20_POLY1305_SHA256);
        exchange(c, cfd, 70000, 70000, peer, &pc);
        ktls_conn_free(c);
    } else {
        struct tu_peer_result res;
        shutdown(cfd, SHUT_RDWR);
        tu_peer_join(peer, &res);
    }
    close(cfd);
}

static void test_server_handoff_buffered(void)
{
    struct ktls_config cfg;
    struct tu_peer_cfg pc;
    struct tu_peer *peer = NULL;
    struct our_hs o;
    int cfd, sfd;

    REQUIRE(tu_tcp_pair(&cfd, &sfd) == 0);
    peer_client(&pc);
    pc.ciphersuites = "TLS_AES_256_GCM_SHA384";
    /* The stock client's Finished and its first application data leave in
     * one write, so they reach our server in one read. */
    pc.coalesce_first_write = 1;
    script(&pc, 3000, 2000);
    base_server(&cfg);
    run_hs(&cfg, sfd, &o, &pc, cfd, &peer);
    REQUIRE(peer != NULL);
    if (o.ret != 0)
        fprintf(stderr, "  %s\n", o.err);
    CHECK_EQ(o.ret, 0);
    CHECK_EQ(strcmp(o.alpn, "sunrpc"), 0);
    CHECK(strstr(o.subject, "CN=rpctls-test-client") != NULL);
    /* The bytes past the client's Finished were handed to the record layer. */
    CHECK(o.leftover > 0);
    if (o.conn) {
        CHECK_EQ(ktls_conn_cipher(o.conn), KTLS_AES_256_GCM_SHA384);
        exchange(o.conn, sfd, 3000, 2000, peer, &pc);
        ktls_conn_free(o.conn);
    } else {
        struct tu_peer_result res;
        shutdown(sfd, SHUT_RDWR);
        tu_peer_join(peer, &res);
    }
    close(sfd);
}

/* The stock server writes right after SSL_accept (with its tickets). */
static void test_client_data_right_after_handshake(void)
{
    struct ktls_config cfg;
    struct tu_peer_cfg pc;
    struct tu_peer *peer;
    struct ktls_conn *c = NULL;
    char err[512];
    int cfd, sfd, ret;

    REQUIRE(tu_tcp_pair(&cfd, &sfd) == 0);
    peer_server(&pc);
    script(&pc, 20000, 1);
    REQUIRE(tu_peer_start(&pc, sfd, &peer) == 0);
    base_client(&cfg);
    ret = ktls_handshake(&cfg, cfd, &c, err, sizeof(err));
    CHECK_EQ(ret, 0);
    if (c) {
        exchange(c, cfd, 20000, 1, peer, &pc);
        ktls_conn_free(c);
    } else {
        struct tu_peer_result res;
        fprintf(stderr, "  %s\n", err);
        shutdown(cfd, SHUT_RDWR);
        tu_peer_join(peer, &res);
    }
    close(cfd);
}

/* ktls_hs_step on a blocking fd runs the whole handshake in one call. */
static void test_blocking_step(void)
{
    struct ktls_config cfg;
    struct tu_peer_cfg pc;
    struct tu_peer *peer;
    struct ktls_hs *hs = NULL;
    struct ktls_conn *c = NULL;
    int cfd, sfd, want_write = -1;

    REQUIRE(tu_tcp_pair(&cfd, &sfd) == 0);
    peer_client(&pc);
    script(&pc, 100, 100);
    REQUIRE(tu_peer_start(&pc, cfd, &peer) == 0);
    base_server(&cfg);
    CHECK_EQ(ktls_hs_new(&cfg, sfd, &hs), 0);
    if (hs) {
        CHECK_EQ(ktls_hs_finish(hs, &c), -EINVAL); /* not done yet */
        CHECK_EQ(ktls_hs_step(hs, &want_write), 0);
        CHECK_EQ(want_write, 0);
        CHECK_EQ(ktls_hs_step(hs, &want_write), 0); /* idempotent once done */
        CHECK_EQ(strcmp(ktls_hs_error(hs), ""), 0);
        CHECK_EQ(ktls_hs_finish(hs, &c), 0);
        ktls_hs_free(hs);
    }
    if (c) {
        exchange(c, sfd, 100, 100, peer, &pc);
        ktls_conn_free(c);
    } else {
        struct tu_peer_result res;
        shutdown(sfd, SHUT_RDWR);
        tu_peer_join(peer, &res);
    }
    close(sfd);

    /* A bad configuration fails in ktls_hs_new and leaves nothing behind. */
    base_server(&cfg);
    cfg.key_file = certs.client_key; /* does not match the certificate */
    CHECK(ktls_hs_new(&cfg, 0, &hs) < 0);
    CHECK(hs == NULL);
}

/* Runs a handshake expected to fail; returns our error message in err. */
static int expect_failure(const struct ktls_config *cfg, const struct tu_peer_cfg *pc, char *err, size_t errlen,
                          struct tu_peer_result *res)
{
    struct tu_peer *peer;
    struct ktls_conn *c = NULL;
    int cfd, sfd, ret, ours, theirs;

    if (tu_tcp_pair(&cfd, &sfd) != 0)
        return 0;
    ours = cfg->role == KTLS_CLIENT ? cfd : sfd;
    theirs = cfg->role == KTLS_CLIENT ? sfd : cfd;
    if (tu_peer_start(pc, theirs, &peer) != 0) {
        close(ours);
        return 0;
    }
    ret = ktls_handshake(cfg, ours, &c, err, errlen);
    if (c)
        ktls_conn_free(c);
    shutdown(ours, SHUT_RDWR);
    tu_peer_join(peer, res);
    close(ours);
    fprintf(stderr, "  ours: %s\n  theirs: %s\n", err, res->err);
    return ret;
}

/* A handshake expected to succeed (our side drives it non-blocking), then a
 * short exchange; checks the ALPN each side ended with. */
static void expect_success(const struct ktls_config *cfg, const struct tu_peer_cfg *pc, const char *want_alpn)
{
    struct tu_peer_cfg shown = *pc;
    struct tu_peer_result res;
    struct tu_peer *peer = NULL;
    struct our_hs o;
    int cfd, sfd, ours, theirs;

    REQUIRE(tu_tcp_pair(&cfd, &sfd) == 0);
    ours = cfg->role == KTLS_CLIENT ? cfd : sfd;
    theirs = cfg->role == KTLS_CLIENT ? sfd : cfd;
    run_hs(cfg, ours, &o, pc, theirs, &peer);
    REQUIRE(peer != NULL);
    if (o.ret != 0)
        fprintf(stderr, "  %s\n", o.err);
    CHECK_EQ(o.ret, 0);
    CHECK_EQ(strcmp(o.alpn, want_alpn), 0);
    if (o.conn) {
        shown.alpn = want_alpn[0] ? want_alpn : NULL; /* what the peer must report */
        exchange(o.conn, ours, 0, 1, peer, &shown);
        ktls_conn_free(o.conn);
    } else {
        shutdown(ours, SHUT_RDWR);
        tu_peer_join(peer, &res);
    }
    close(ours);
}

/* Deployed peers (tlshd, FreeBSD rpc.tls*d, libnfs) negotiate no ALPN: by
 * default our server serves a client without it, and our client accepts a
 * server that selects none. A client that lists "sunrpc" among others gets it. */
static void test_alpn_none_accepted(void)
{
    struct ktls_config cfg;
    struct tu_peer_cfg pc;

    base_server(&cfg);
    peer_client(&pc);
    pc.alpn = NULL;
    script(&pc, 0, 1);
    expect_success(&cfg, &pc, "");

    base_client(&cfg);
    peer_server(&pc);
    pc.alpn = NULL;
    script(&pc, 0, 1);
    expect_success(&cfg, &pc, "");

    /* Our client still offers "sunrpc"; a server that does ALPN selects it. */
    base_client(&cfg);
    peer_server(&pc);
    script(&pc, 0, 1);
    expect_success(&cfg, &pc, "sunrpc");

    base_server(&cfg);
    peer_client(&pc);
    pc.alpn = "h2,sunrpc";
    script(&pc, 0, 1);
    expect_success(&cfg, &pc, "sunrpc");
}

/* A peer that negotiates another protocol is refused, in every mode. */
static void test_alpn_other_refused(void)
{
    struct ktls_config cfg;
    struct tu_peer_cfg pc;
    struct tu_peer_result res;
    char err[512] = "";

    base_server(&cfg);
    peer_client(&pc);
    pc.alpn = "h2";
    script(&pc, 0, 1);
    CHECK_EQ(expect_failure(&cfg, &pc, err, sizeof(err), &res), -EPROTO);
    CHECK_EQ(strcmp(err, "TLS handshake failed: the client offered ALPN \"h2\", not \"sunrpc\""), 0);
    CHECK(!res.handshake_ok);
    CHECK(strstr(res.err, "no application protocol") != NULL);

    pc.alpn = "h2,http/1.1";
    CHECK_EQ(expect_failure(&cfg, &pc, err, sizeof(err), &res), -EPROTO);
    CHECK_EQ(strcmp(err, "TLS handshake failed: the client offered ALPN \"h2\", \"http/1.1\", not \"sunrpc\""), 0);
    CHECK(strstr(res.err, "no application protocol") != NULL);

    /* A server that selects "h2" although we offered only "sunrpc". */
    base_client(&cfg);
    peer_server(&pc);
    pc.alpn = "h2";
    pc.alpn_select_always = 1;
    script(&pc, 0, 1);
    CHECK_EQ(expect_failure(&cfg, &pc, err, sizeof(err), &res), -EPROTO);
    CHECK_EQ(strcmp(err, "TLS handshake failed: the server selected ALPN \"h2\", not \"sunrpc\""), 0);
}

/* Strict mode (require_alpn) keeps RFC 9289's rule: no ALPN, no session. */
static void test_alpn_strict(void)
{
    struct ktls_config cfg;
    struct tu_peer_cfg pc;
    struct tu_peer_result res;
    char err[512] = "";

    base_server(&cfg);
    cfg.require_alpn = 1;
    peer_client(&pc);
    pc.alpn = NULL;
    script(&pc, 0, 1);
    CHECK_EQ(expect_failure(&cfg, &pc, err, sizeof(err), &res), -EPROTO);
    CHECK_EQ(strcmp(err, "TLS handshake failed: the client offered no ALPN protocol (\"sunrpc\" required)"), 0);
    CHECK(!res.handshake_ok);
    CHECK(strstr(res.err, "no application protocol") != NULL);

    base_client(&cfg);
    cfg.require_alpn = 1;
    peer_server(&pc);
    pc.alpn = NULL;
    script(&pc, 0, 1);
    CHECK_EQ(expect_failure(&cfg, &pc, err, sizeof(err), &res), -EPROTO);
    CHECK_EQ(strcmp(err, "TLS handshake failed: the server selected no ALPN protocol (\"sunrpc\" required)"), 0);

    /* With ALPN on both sides strict mode changes nothing. */
    base_server(&cfg);
    cfg.require_alpn = 1;
    peer_client(&pc);
    script(&pc, 0, 1);
    expect_success(&cfg, &pc, "sunrpc");
    base_client(&cfg);
    cfg.require_alpn = 1;
    peer_server(&pc);
    script(&pc, 0, 1);
    expect_success(&cfg, &pc, "sunrpc");
}

static void test_unknown_ca(void)
{
    struct ktls_config cfg;
    struct tu_peer_cfg pc;
    struct tu_peer_result res;
    char err[512] = "";

    /* Our client trusts only the other CA. */
    base_client(&cfg);
    cfg.ca_file = certs.other_ca_cert;
    peer_server(&pc);
    script(&pc, 0, 1);
    CHECK_EQ(expect_failure(&cfg, &pc, err, sizeof(err), &res), -EPROTO);
    CHECK(strstr(err, "certificate verify failed") != NULL);
    /* The stock server sends its CA along with its certificate. */
    CHECK(strstr(err, "(self-signed certificate in certificate chain)") != NULL ||
          strstr(err, "(unable to get local issuer certificate)") != NULL);
    CHECK(!res.ok);

    /* Our server gets a client certificate from the other CA. */
    base_server(&cfg);
    peer_client(&pc);
    pc.cert_file = certs.other_client_cert;
    pc.key_file = certs.other_client_key;
    script(&pc, 0, 1);
    CHECK(expect_failure(&cfg, &pc, err, sizeof(err), &res) < 0);
    CHECK(strstr(err, "certificate verify failed") != NULL);
    CHECK(strstr(err, "unable to get local issuer certificate") != NULL);

    /* Right CA, wrong name. */
    base_client(&cfg);
    cfg.server_name = "nfs.example.com";
    peer_server(&pc);
    script(&pc, 0, 1);
    CHECK(expect_failure(&cfg, &pc, err, sizeof(err), &res) < 0);
    CHECK(strstr(err, "hostname mismatch") != NULL);
}

static void test_tls12_peer(void)
{
    struct ktls_config cfg;
    struct tu_peer_cfg pc;
    struct tu_peer_result res;
    char err[512] = "";

    base_client(&cfg);
    peer_server(&pc);
    pc.tls12_only = 1;
    script(&pc, 0, 1);
    CHECK(expect_failure(&cfg, &pc, err, sizeof(err), &res) < 0);
    CHECK(strstr(err, "TLS handshake failed") != NULL);
    CHECK(strstr(err, "protocol") != NULL);
    CHECK(!res.handshake_ok);

    base_server(&cfg);
    peer_client(&pc);
    pc.tls12_only = 1;
    script(&pc, 0, 1);
    CHECK(expect_failure(&cfg, &pc, err, sizeof(err), &res) < 0);
    CHECK(strstr(err, "protocol") != NULL);
    CHECK(!res.handshake_ok);
}

static void test_client_cert_required(void)
{
    struct ktls_config cfg;
    struct tu_peer_cfg pc;
    struct tu_peer_result res;
    char err[512] = "";

    base_server(&cfg); /* verify_peer 2 */
    peer_client(&pc);
    pc.cert_file = pc.key_file = NULL;
    script(&pc, 0, 1);
    CHECK(expect_failure(&cfg, &pc, err, sizeof(err), &res) < 0);
    CHECK(strstr(err, "peer did not return a certificate") != NULL);

    /* verify_peer 1: optional, the same client is accepted. */
    {
        struct tu_peer *peer = NULL;
        struct our_hs o;
        int cfd, sfd;
        REQUIRE(tu_tcp_pair(&cfd, &sfd) == 0);
        cfg.verify_peer = 1;
        run_hs(&cfg, sfd, &o, &pc, cfd, &peer);
        REQUIRE(peer != NULL);
        CHECK_EQ(o.ret, 0);
        CHECK_EQ(strcmp(o.subject, ""), 0);
        if (o.conn) {
            exchange(o.conn, sfd, 0, 1, peer, &pc);
            ktls_conn_free(o.conn);
        } else {
            shutdown(sfd, SHUT_RDWR);
            tu_peer_join(peer, &res);
        }
        close(sfd);
    }
}

static void test_peer_closes_and_timeout(void)
{
    struct ktls_config cfg;
    struct ktls_conn *c = NULL;
    char err[512] = "";
    int cfd, sfd;

    /* The server side vanishes without a word. */
    REQUIRE(tu_tcp_pair(&cfd, &sfd) == 0);
    close(sfd);
    base_client(&cfg);
    CHECK(ktls_handshake(&cfg, cfd, &c, err, sizeof(err)) < 0);
    CHECK(c == NULL);
    CHECK(strstr(err, "peer closed the connection during the handshake") != NULL);
    close(cfd);

    /* The client side never speaks: our server gives up. */
    REQUIRE(tu_tcp_pair(&cfd, &sfd) == 0);
    base_server(&cfg);
    cfg.timeout_ms = 200;
    CHECK_EQ(ktls_handshake(&cfg, sfd, &c, err, sizeof(err)), -ETIMEDOUT);
    CHECK(strstr(err, "handshake timed out") != NULL);
    close(cfd);
    close(sfd);

    /* Bad configuration is reported, not crashed on. */
    REQUIRE(tu_tcp_pair(&cfd, &sfd) == 0);
    base_server(&cfg);
    cfg.cert_file = "/nonexistent/cert.pem";
    CHECK(ktls_handshake(&cfg, sfd, &c, err, sizeof(err)) < 0);
    CHECK(strstr(err, "certificate") != NULL);
    base_server(&cfg);
    cfg.ciphersuites = "TLS_NO_SUCH_SUITE";
    CHECK(ktls_handshake(&cfg, sfd, &c, err, sizeof(err)) < 0);
    CHECK(strstr(err, "ciphersuite") != NULL);
    close(cfd);
    close(sfd);
}

static int file_contains(const char *path, const char *needle)
{
    char buf[16384];
    FILE *f = fopen(path, "r");
    size_t n;

    if (f == NULL)
        return 0;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

static void test_keylog(void)
{
    char path[PATH_MAX];
    struct ktls_config cfg;
    struct tu_peer_cfg pc;
    struct tu_peer *peer;
    struct ktls_conn *c = NULL;
    char err[512];
    int cfd, sfd;

    snprintf(path, sizeof(path), "%s/keylog.txt", certs.dir);

    /* Through the environment variable. */
    REQUIRE(setenv("SSLKEYLOGFILE", path, 1) == 0);
    REQUIRE(tu_tcp_pair(&cfd, &sfd) == 0);
    peer_server(&pc);
    script(&pc, 0, 10);
    REQUIRE(tu_peer_start(&pc, sfd, &peer) == 0);
    base_client(&cfg);
    CHECK_EQ(ktls_handshake(&cfg, cfd, &c, err, sizeof(err)), 0);
    unsetenv("SSLKEYLOGFILE");
    if (c) {
        exchange(c, cfd, 0, 10, peer, &pc);
        ktls_conn_free(c);
    }
    close(cfd);
    CHECK(file_contains(path, "CLIENT_HANDSHAKE_TRAFFIC_SECRET "));
    CHECK(file_contains(path, "SERVER_HANDSHAKE_TRAFFIC_SECRET "));
    CHECK(file_contains(path, "CLIENT_TRAFFIC_SECRET_0 "));
    CHECK(file_contains(path, "SERVER_TRAFFIC_SECRET_0 "));
    CHECK(file_contains(path, "EXPORTER_SECRET "));
    unlink(path);

    /* Through the config, server role; lines are appended. */
    REQUIRE(tu_tcp_pair(&cfd, &sfd) == 0);
    peer_client(&pc);
    script(&pc, 0, 10);
    REQUIRE(tu_peer_start(&pc, cfd, &peer) == 0);
    base_server(&cfg);
    cfg.keylog_file = path;
    CHECK_EQ(ktls_handshake(&cfg, sfd, &c, err, sizeof(err)), 0);
    if (c) {
        exchange(c, sfd, 0, 10, peer, &pc);
        ktls_conn_free(c);
    }
    close(sfd);
    CHECK(file_contains(path, "CLIENT_TRAFFIC_SECRET_0 "));
    CHECK(file_contains(path, "SERVER_TRAFFIC_SECRET_0 "));
    {
        /* Every line is "LABEL <64 hex client random> <hex secret>". */
        FILE *f = fopen(path, "r");
        char line[512];
        int lines = 0;
        while (f && fgets(line, sizeof(line), f)) {
            char label[64], rnd[80], sec[200];
            lines++;
            CHECK(sscanf(line, "%63s %79s %199s", label, rnd, sec) == 3);
            CHECK_EQ(strlen(rnd), 64);
            CHECK(strlen(sec) == 64 || strlen(sec) == 96);
        }
        if (f)
            fclose(f);
        CHECK_EQ(lines, 5);
    }
    unlink(path);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (tu_certs_create(&certs) != 0)
        return 1;
    TEST_RUN(test_client_handoff);
    TEST_RUN(test_client_ip_name_and_blocking_wrapper);
    TEST_RUN(test_server_handoff_buffered);
    TEST_RUN(test_client_data_right_after_handshake);
    TEST_RUN(test_blocking_step);
    TEST_RUN(test_alpn_none_accepted);
    TEST_RUN(test_alpn_other_refused);
    TEST_RUN(test_alpn_strict);
    TEST_RUN(test_unknown_ca);
    TEST_RUN(test_tls12_peer);
    TEST_RUN(test_client_cert_required);
    TEST_RUN(test_peer_closes_and_timeout);
    TEST_RUN(test_keylog);
    tu_certs_destroy(&certs);
    CHECK_EQ(mb_pool_shutdown(), 0);
    return test_summary();
}
