/*
 * test_krpc_conn.c - stream connections over loopback TCP: messages of many
 * sizes both ways, fragmented, plain and after STARTTLS on both ends;
 * messages queued during the handshake; garbage after the upgrade point; a
 * record mark over max_msg; a peer vanishing mid-message; a failed
 * handshake; partial writes with a small send buffer; the send-queue limit;
 * connect completion and failure.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rpctls/krpc.h"
#include "mbuf/mbuf_test.h"
#include "test.h"
#include "util/certs.h"
#include "util/net.h"
#include "util/ossl_peer.h"
#include "util/stream.h"

#define RUN_MS 60000

static struct tu_certs certs;

static const size_t sizes[] = {0,     1,     3,      4,      5,       100,     4095,      4096,     4097,
                               16383, 16384, 16385,  65535,  65536,   65537,   100000,    131072,   131073,
                               300000, 1 << 20, (1 << 20) + 1, 2999999, 4u << 20};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

/* ---- messages ------------------------------------------------------------- */

static uint32_t msg_seed(int dir, int k)
{
    return (uint32_t)dir * 100000u + (uint32_t)k + 1;
}

/* Message k of direction dir: a page-vector chain of pseudo-random bytes. */
static int make_msg(struct mb_chain *m, int dir, int k, size_t len)
{
    unsigned char *buf = malloc(len ? len : 1);
    int ret;

    mb_chain_init(m);
    if (buf == NULL)
        return -ENOMEM;
    tu_stream_fill(msg_seed(dir, k), 0, buf, len);
    ret = mb_chain_append_pages_from_buf(m, buf, len);
    free(buf);
    return ret;
}

static int msg_ok(const struct mb_chain *m, int dir, int k, size_t len)
{
    unsigned char *want, *got;
    int ok;

    if (m->len != len || mb_chain_check(m) != 0)
        return 0;
    if (len == 0)
        return 1;
    want = malloc(len);
    got = malloc(len);
    ok = want != NULL && got != NULL;
    if (ok) {
        tu_stream_fill(msg_seed(dir, k), 0, want, len);
        ok = mb_chain_copy_out(m, 0, len, got) == 0 && memcmp(want, got, len) == 0;
    }
    free(want);
    free(got);
    return ok;
}

static int marker_is(const struct mb_chain *m, const char *text)
{
    char buf[64];
    size_t n = strlen(text);
    return m->len == n && n < sizeof(buf) && mb_chain_copy_out(m, 0, n, buf) == 0 && memcmp(buf, text, n) == 0;
}

static int send_marker(struct krpc_conn *c, const char *text)
{
    struct mb_chain m = MB_CHAIN_INIT;
    int ret = mb_chain_append_bytes(&m, text, strlen(text));
    if (ret < 0)
        return ret;
    return krpc_conn_send(c, &m);
}

/* ---- an endpoint ---------------------------------------------------------- */

struct ep {
    const char *name;
    struct krpc_conn *c;
    struct ep *peer;
    int dir;          /* direction of the messages this end sends */
    int rx_next;      /* index of the next expected data message */
    int rx_step;      /* 0: 1 */
    int count_only;   /* just count messages (raw-peer tests) */
    int share_rx;     /* take a copy-by-reference of each message (guards its pages) */
    int counted;
    size_t last_len;
    int rx_bad;
    int markers_in;   /* markers received */
    const char *expect_marker; /* the next message is this marker */

    /* STARTTLS roles */
    int upgrade_on_marker;          /* start TLS when the marker arrives */
    const char *reply_marker;       /* send this before starting TLS */
    const struct ktls_config *tls;  /* our TLS config */
    int send_after_upgrade_from, send_after_upgrade_n; /* queued during the handshake */
    int close_on_marker;            /* close from inside on_msg on "bye" */

    int tls_calls, tls_err;
    char tls_msg[512];
    int closes, close_err;
    int closing_inside_cb;          /* on_close ran while we were inside a call */
    uint64_t sent_bytes_at_close, recv_bytes_at_close;
    int was_tls_at_close;
    char subject[512];
};

static int in_call; /* set around calls that must not run callbacks */

static void ep_on_msg(struct krpc_conn *c, struct mb_chain *msg, void *arg)
{
    struct ep *e = arg;

    if (e->count_only) {
        e->counted++;
        e->last_len = msg->len;
        mb_chain_free(msg);
        return;
    }

    if (e->expect_marker != NULL) {
        if (!marker_is(msg, e->expect_marker)) {
            fprintf(stderr, "%s: expected marker %s, got %zu bytes\n", e->name, e->expect_marker, msg->len);
            e->rx_bad++;
        }
        e->expect_marker = NULL;
        e->markers_in++;
        mb_chain_free(msg);
        if (e->upgrade_on_marker) {
            if (e->reply_marker != NULL)
                CHECK(send_marker(c, e->reply_marker) == 0);
            CHECK(krpc_conn_start_tls(c, e->tls) == 0);
            {
                int again = krpc_conn_start_tls(c, e->tls);
                CHECK(again == -EALREADY || again == -EPIPE); /* -EPIPE: refused at once */
            }
            for (int k = 0; k < e->send_after_upgrade_n; k++) {
                int idx = e->send_after_upgrade_from + k;
                struct mb_chain m;
                CHECK(make_msg(&m, e->dir, idx, sizes[idx % NSIZES]) == 0);
                CHECK(krpc_conn_send(c, &m) == 0);
                CHECK(m.len == 0);
            }
            if (e->send_after_upgrade_n > 0)
                CHECK(krpc_conn_send_queued(c) > 0);
        }
        return;
    }
    if (e->close_on_marker && marker_is(msg, "bye")) {
        struct mb_chain m = MB_CHAIN_INIT;
        mb_chain_free(msg);
        e->markers_in++;
        in_call = 1;
        krpc_conn_close(c, 0);
        krpc_conn_close(c, -EIO); /* idempotent: the first reason stays */
        in_call = 0;
        CHECK(mb_chain_append_bytes(&m, "x", 1) == 0);
        CHECK_EQ(krpc_conn_send(c, &m), -EPIPE);
        CHECK_EQ(m.len, 0);
        return;
    }
    if (e->share_rx && msg->len > 0) {
        struct mb_chain ref = MB_CHAIN_INIT;
        CHECK(mb_chain_copy_ref(&ref, msg, 0, msg->len) == 0);
        mb_chain_free(msg);
        *msg = ref;
    }
    if (!msg_ok(msg, 1 - e->dir, e->rx_next, sizes[e->rx_next % NSIZES])) {
        fprintf(stderr, "%s: message %d (%zu bytes expected) bad: %zu bytes\n", e->name, e->rx_next,
                sizes[e->rx_next % NSIZES], msg->len);
        e->rx_bad++;
    }
    e->rx_next += e->rx_step ? e->rx_step : 1;
    mb_chain_free(msg);
}

static void ep_on_close(struct krpc_conn *c, int err, void *arg)
{
    struct ep *e = arg;

    if (in_call)
        e->closing_inside_cb++;
    e->closes++;
    e->close_err = err;
    e->sent_bytes_at_close = krpc_conn_bytes_sent(c);
    e->recv_bytes_at_close = krpc_conn_bytes_received(c);
    e->was_tls_at_close = krpc_conn_is_tls(c);
    e->c = NULL;
}

static void ep_on_tls(struct krpc_conn *c, int err, const char *msg, void *arg)
{
    struct ep *e = arg;

    e->tls_calls++;
    e->tls_err = err;
    snprintf(e->tls_msg, sizeof(e->tls_msg), "%s", msg ? msg : "(null)");
    if (err == 0) {
        snprintf(e->subject, sizeof(e->subject), "%s", krpc_conn_peer_subject(c));
        CHECK(krpc_conn_is_tls(c));
        CHECK(krpc_conn_tls_stats(c) != NULL);
    }
}

static const struct krpc_conn_ops ep_ops = {ep_on_msg, ep_on_close, ep_on_tls};

static void ep_init(struct ep *e, const char *name, int dir)
{
    memset(e, 0, sizeof(*e));
    e->name = name;
    e->dir = dir;
}

static int send_range(struct ep *e, int from, int n)
{
    for (int k = from; k < from + n; k++) {
        struct mb_chain m;
        int ret = make_msg(&m, e->dir, k, sizes[k % NSIZES]);
        if (ret < 0)
            return ret;
        if ((ret = krpc_conn_send(e->c, &m)) < 0)
            return ret;
    }
    return 0;
}

/* Runs the loop until cond(a, b) holds; 0 or -ETIMEDOUT. */
typedef int (*cond_fn)(const struct ep *a, const struct ep *b, int want);

static int got_all(const struct ep *a, const struct ep *b, int want)
{
    return (a->rx_next >= want && b->rx_next >= want) || a->closes || b->closes;
}

static int both_closed(const struct ep *a, const struct ep *b, int want)
{
    return a->closes && b->closes;
}

static int b_closed(const struct ep *a, const struct ep *b, int want)
{
    return b->closes > 0;
}

static int run_until(struct krpc_loop *loop, cond_fn f, const struct ep *a, const struct ep *b, int want)
{
    uint64_t deadline = krpc_now_ms() + RUN_MS;

    while (!f(a, b, want)) {
        if (krpc_now_ms() > deadline)
            return -ETIMEDOUT;
        if (krpc_loop_run_once(loop, 100) < 0)
            return -EIO;
    }
    return 0;
}

static void tls_configs(struct ktls_config *srv, struct ktls_config *cli)
{
    memset(srv, 0, sizeof(*srv));
    memset(cli, 0, sizeof(*cli));
    srv->role = KTLS_SERVER;
    srv->cert_file = certs.server_cert;
    srv->key_file = certs.server_key;
    srv->ca_file = certs.ca_cert;
    srv->verify_peer = 2;
    srv->timeout_ms = 20000;
    cli->role = KTLS_CLIENT;
    cli->cert_file = certs.client_cert;
    cli->key_file = certs.client_key;
    cli->ca_file = certs.ca_cert;
    cli->server_name = "localhost";
    cli->alpn = "not-sunrpc"; /* the connection forces "sunrpc" */
    cli->timeout_ms = 20000;
}

static void check_pool_empty(void)
{
    struct mb_pool_stats st;
    mb_pool_get_stats(&st);
    if (st.pages_in_use || st.stores_in_use || st.links_in_use)
        fprintf(stderr, "pool: pages %llu stores %llu links %llu in use\n", (unsigned long long)st.pages_in_use,
                (unsigned long long)st.stores_in_use, (unsigned long long)st.links_in_use);
    CHECK_EQ(mb_pool_shutdown(), 0);
}

/* ---- the main exchange ---------------------------------------------------- */

/* Plain messages of every size both ways, then STARTTLS (the client sends a
 * probe marker, the server answers and upgrades from inside on_msg, the
 * client upgrades on the answer; both queue messages during the
 * handshake), TLS messages both ways, then the server closes from inside
 * on_msg and the client sees close_notify. */
static void exchange(size_t frag_a, size_t frag_b, uint64_t key_update_bytes)
{
    struct krpc_loop *loop;
    struct ep a, b; /* a: client, b: server */
    struct krpc_conn_config ca = {0, frag_a, 0}, cb = {0, frag_b, 0};
    struct ktls_config srv, cli;
    int fa, fb, n = (int)NSIZES, hs_n = 5;

    REQUIRE(tu_tcp_pair(&fa, &fb) == 0);
    REQUIRE(krpc_loop_new(&loop) == 0);
    ep_init(&a, "client", 0);
    ep_init(&b, "server", 1);
    a.peer = &b;
    b.peer = &a;
    REQUIRE(krpc_conn_new(loop, fa, &ca, &ep_ops, &a, &a.c) == 0);
    REQUIRE(krpc_conn_new(loop, fb, &cb, &ep_ops, &b, &b.c) == 0);
    CHECK(!krpc_conn_is_tls(a.c));
    CHECK(krpc_conn_tls_stats(a.c) == NULL);
    CHECK_EQ(strlen(krpc_conn_peer_subject(a.c)), 0);
    CHECK_EQ(krpc_conn_fd(a.c), fa);

    /* plain */
    CHECK(send_range(&a, 0, n) == 0);
    CHECK(send_range(&b, 0, n) == 0);
    CHECK(run_until(loop, got_all, &a, &b, n) == 0);
    CHECK_EQ(a.rx_next, n);
    CHECK_EQ(b.rx_next, n);
    CHECK_EQ(a.rx_bad + b.rx_bad, 0);
    CHECK_EQ(krpc_conn_send_queued(a.c), 0);
    CHECK(krpc_conn_bytes_sent(a.c) == krpc_conn_bytes_received(b.c));
    CHECK(krpc_conn_bytes_sent(b.c) == krpc_conn_bytes_received(a.c));

    /* STARTTLS */
    tls_configs(&srv, &cli);
    srv.key_update_bytes = key_update_bytes;
    cli.key_update_bytes = key_update_bytes;
    b.expect_marker = "STARTTLS?";
    b.upgrade_on_marker = 1;
    b.reply_marker = "STARTTLS";
    b.tls = &srv;
    b.send_after_upgrade_from = n;
    b.send_after_upgrade_n = hs_n;
    a.expect_marker = "STARTTLS";
    a.upgrade_on_marker = 1;
    a.tls = &cli;
    a.send_after_upgrade_from = n;
    a.send_after_upgrade_n = hs_n;
    CHECK(send_marker(a.c, "STARTTLS?") == 0);
    CHECK(run_until(loop, got_all, &a, &b, n + hs_n) == 0);
    CHECK_EQ(a.tls_calls, 1);
    CHECK_EQ(b.tls_calls, 1);
    CHECK_EQ(a.tls_err, 0);
    CHECK_EQ(b.tls_err, 0);
    CHECK(strstr(a.subject, "localhost") != NULL);
    CHECK(strstr(b.subject, "rpctls-test-client") != NULL);
    CHECK_EQ(a.rx_next, n + hs_n);
    CHECK_EQ(b.rx_next, n + hs_n);

    /* TLS: everything again */
    CHECK(send_range(&a, n + hs_n, n) == 0);
    CHECK(send_range(&b, n + hs_n, n) == 0);
    CHECK(run_until(loop, got_all, &a, &b, 2 * n + hs_n) == 0);
    CHECK_EQ(a.rx_next, 2 * n + hs_n);
    CHECK_EQ(b.rx_next, 2 * n + hs_n);
    CHECK_EQ(a.rx_bad + b.rx_bad, 0);
    CHECK_EQ(a.closes + b.closes, 0);
    if (a.c != NULL && b.c != NULL) {
        const struct ktls_stats *sa = krpc_conn_tls_stats(a.c), *sb = krpc_conn_tls_stats(b.c);
        CHECK(sa != NULL && sb != NULL);
        if (sa != NULL && sb != NULL) {
            CHECK(sa->rx_records > 0 && sb->rx_records > 0);
            if (key_update_bytes)
                CHECK(sa->tx_key_updates > 0 && sb->rx_key_updates > 0);
            else
                CHECK(sa->tx_key_updates == 0 && sb->tx_key_updates == 0); /* never by default */
        }
    }

    /* the server closes from inside on_msg; the client sees close_notify */
    b.close_on_marker = 1;
    if (a.c != NULL)
        CHECK(send_marker(a.c, "bye") == 0);
    CHECK(run_until(loop, both_closed, &a, &b, 0) == 0);
    CHECK_EQ(a.closes, 1);
    CHECK_EQ(b.closes, 1);
    CHECK_EQ(a.close_err, 0);
    CHECK_EQ(b.close_err, 0);
    CHECK_EQ(b.closing_inside_cb, 0);
    CHECK(a.was_tls_at_close && b.was_tls_at_close);
    CHECK(a.sent_bytes_at_close >= b.recv_bytes_at_close); /* a's close_notify may not be read */
    CHECK_EQ(b.sent_bytes_at_close, a.recv_bytes_at_close);
    CHECK(krpc_loop_run(loop, NULL, 20) == -ETIMEDOUT); /* nothing runs twice */
    CHECK_EQ(a.closes + b.closes, 2);
    krpc_loop_free(loop);
    check_pool_empty();
}

static void test_exchange_one_fragment(void)
{
    exchange(0, 0, 0);
}

static void test_exchange_fragmented(void)
{
    /* small fragments one way, odd-sized ones the other, KeyUpdates in TLS */
    exchange(1000, 65537, 1 << 20);
}

/* ---- raw peers -------------------------------------------------------------- */

static int write_all(int fd, const void *p, size_t n)
{
    const unsigned char *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* The server end under test with a raw socket as the peer. */
struct raw_setup {
    struct krpc_loop *loop;
    struct ep s;
    int raw;
    struct ktls_config srv, cli;
};

static int raw_begin(struct raw_setup *r, size_t max_msg)
{
    struct krpc_conn_config cfg = {max_msg, 0, 0};
    int fs;

    memset(r, 0, sizeof(*r));
    if (tu_tcp_pair(&r->raw, &fs) != 0 || krpc_loop_new(&r->loop) != 0)
        return -1;
    tu_set_timeouts(r->raw, 10000);
    ep_init(&r->s, "server", 1);
    tls_configs(&r->srv, &r->cli);
    return krpc_conn_new(r->loop, fs, &cfg, &ep_ops, &r->s, &r->s.c);
}

static void raw_end(struct raw_setup *r)
{
    if (r->raw >= 0)
        close(r->raw);
    krpc_loop_free(r->loop);
}

/* A record-marked message in one buffer. */
static size_t rm_bytes(unsigned char *out, const char *text)
{
    size_t n = strlen(text);
    put_be32(out, KRPC_RM_LAST | (uint32_t)n);
    memcpy(out + 4, text, n);
    return n + 4;
}

static void test_garbage_after_upgrade_point(void)
{
    struct raw_setup r;
    unsigned char buf[256];
    size_t n;

    /* In the same segment as the probe: plaintext past the STARTTLS point. */
    REQUIRE(raw_begin(&r, 0) == 0);
    r.s.expect_marker = "STARTTLS?";
    r.s.upgrade_on_marker = 1;
    r.s.reply_marker = "STARTTLS";
    r.s.tls = &r.srv;
    n = rm_bytes(buf, "STARTTLS?");
    memcpy(buf + n, "GARBAGE!", 8);
    CHECK(write_all(r.raw, buf, n + 8) == 0);
    CHECK(run_until(r.loop, b_closed, NULL, &r.s, 0) == 0);
    CHECK_EQ(r.s.tls_calls, 1);
    CHECK_EQ(r.s.tls_err, -EPROTO);
    CHECK(strlen(r.s.tls_msg) > 0);
    CHECK_EQ(r.s.close_err, -EPROTO);
    CHECK_EQ(r.s.closes, 1);
    raw_end(&r);

    /* After the answer: garbage where the ClientHello belongs. */
    REQUIRE(raw_begin(&r, 0) == 0);
    r.s.expect_marker = "STARTTLS?";
    r.s.upgrade_on_marker = 1;
    r.s.reply_marker = "STARTTLS";
    r.s.tls = &r.srv;
    n = rm_bytes(buf, "STARTTLS?");
    CHECK(write_all(r.raw, buf, n) == 0);
    {
        unsigned char rep[12];
        size_t got = 0;
        uint64_t deadline = krpc_now_ms() + 10000;
        tu_set_nonblock(r.raw, 1);
        while (got < sizeof(rep) && krpc_now_ms() < deadline) {
            ssize_t k = read(r.raw, rep + got, sizeof(rep) - got);
            if (k > 0)
                got += (size_t)k;
            else
                krpc_loop_run_once(r.loop, 10);
        }
        tu_set_nonblock(r.raw, 0);
        CHECK_EQ(got, 12);
        CHECK(memcmp(rep + 4, "STARTTLS", 8) == 0);
    }
    memset(buf, 0x41, 200);
    CHECK(write_all(r.raw, buf, 200) == 0);
    CHECK(run_until(r.loop, b_closed, NULL, &r.s, 0) == 0);
    CHECK_EQ(r.s.tls_calls, 1);
    CHECK(r.s.tls_err < 0);
    CHECK(strstr(r.s.tls_msg, "TLS") != NULL);
    CHECK(r.s.close_err < 0);
    raw_end(&r);
    check_pool_empty();
}

static void test_record_mark_over_max(void)
{
    struct raw_setup r;
    unsigned char buf[64];

    REQUIRE(raw_begin(&r, 1000) == 0);
    r.s.count_only = 1;
    /* a message of exactly max_msg is fine: fragments of 600 and 400 */
    {
        unsigned char *m = calloc(1, 1004);
        REQUIRE(m != NULL);
        put_be32(m, 600);
        CHECK(write_all(r.raw, m, 604) == 0);
        put_be32(m, KRPC_RM_LAST | 400);
        CHECK(write_all(r.raw, m, 404) == 0);
        free(m);
    }
    {
        uint64_t deadline = krpc_now_ms() + 5000;
        while (r.s.counted == 0 && krpc_now_ms() < deadline)
            krpc_loop_run_once(r.loop, 10);
        CHECK_EQ(r.s.counted, 1);
        CHECK_EQ(r.s.last_len, 1000);
    }
    put_be32(buf, KRPC_RM_LAST | 1001);
    CHECK(write_all(r.raw, buf, 4) == 0);
    CHECK(run_until(r.loop, b_closed, NULL, &r.s, 0) == 0);
    CHECK_EQ(r.s.close_err, -EMSGSIZE);
    raw_end(&r);

    /* and across fragments: 800 + 800 > 1000 */
    REQUIRE(raw_begin(&r, 1000) == 0);
    r.s.count_only = 1;
    {
        unsigned char *m = calloc(1, 804);
        REQUIRE(m != NULL);
        put_be32(m, 800);
        CHECK(write_all(r.raw, m, 804) == 0);
        put_be32(m, KRPC_RM_LAST | 800);
        CHECK(write_all(r.raw, m, 4) == 0);
        free(m);
    }
    CHECK(run_until(r.loop, b_closed, NULL, &r.s, 0) == 0);
    CHECK_EQ(r.s.close_err, -EMSGSIZE);
    CHECK_EQ(r.s.counted, 0);
    raw_end(&r);
    check_pool_empty();
}

static void test_peer_vanishes_mid_message(void)
{
    struct raw_setup r;
    unsigned char buf[600];

    /* plain: half a fragment, then FIN */
    REQUIRE(raw_begin(&r, 0) == 0);
    put_be32(buf, KRPC_RM_LAST | 1000);
    memset(buf + 4, 7, 500);
    CHECK(write_all(r.raw, buf, 504) == 0);
    close(r.raw);
    r.raw = -1;
    CHECK(run_until(r.loop, b_closed, NULL, &r.s, 0) == 0);
    CHECK_EQ(r.s.close_err, -ECONNRESET);
    CHECK_EQ(r.s.rx_next, 0);
    raw_end(&r);

    /* plain: a clean FIN between messages is an orderly close */
    REQUIRE(raw_begin(&r, 0) == 0);
    close(r.raw);
    r.raw = -1;
    CHECK(run_until(r.loop, b_closed, NULL, &r.s, 0) == 0);
    CHECK_EQ(r.s.close_err, 0);
    raw_end(&r);

    /* plain: a reset */
    REQUIRE(raw_begin(&r, 0) == 0);
    {
        struct linger lg = {1, 0};
        CHECK(write_all(r.raw, buf, 100) == 0);
        setsockopt(r.raw, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(r.raw);
        r.raw = -1;
    }
    CHECK(run_until(r.loop, b_closed, NULL, &r.s, 0) == 0);
    CHECK(r.s.close_err < 0);
    raw_end(&r);
    check_pool_empty();
}

/* TLS: the peer's TCP connection ends without close_notify, in the middle of
 * a message -> -ECONNRESET. */
static void test_tls_truncation(void)
{
    struct krpc_loop *loop;
    struct ep a, b;
    struct ktls_config srv, cli;
    struct krpc_conn_config cfg = {0, 0, 0};
    int fa, fb;

    REQUIRE(tu_tcp_pair(&fa, &fb) == 0);
    REQUIRE(krpc_loop_new(&loop) == 0);
    ep_init(&a, "client", 0);
    ep_init(&b, "server", 1);
    REQUIRE(krpc_conn_new(loop, fa, &cfg, &ep_ops, &a, &a.c) == 0);
    REQUIRE(krpc_conn_new(loop, fb, &cfg, &ep_ops, &b, &b.c) == 0);
    tls_configs(&srv, &cli);
    /* both upgrade at an idle point */
    CHECK(krpc_conn_start_tls(a.c, &cli) == 0);
    CHECK(krpc_conn_start_tls(b.c, &srv) == 0);
    {
        uint64_t deadline = krpc_now_ms() + 20000;
        while ((a.tls_calls == 0 || b.tls_calls == 0) && krpc_now_ms() < deadline)
            krpc_loop_run_once(loop, 100);
    }
    CHECK_EQ(a.tls_err, 0);
    CHECK_EQ(b.tls_err, 0);
    REQUIRE(a.c != NULL && b.c != NULL);
    /* a large message from a; cut a's socket while it is in flight */
    {
        int sb = 16384;
        setsockopt(krpc_conn_fd(a.c), SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb));
    }
    CHECK(send_range(&a, 21, 1) == 0); /* 2999999 bytes */
    CHECK(krpc_conn_send_queued(a.c) > 0);
    krpc_loop_run_once(loop, 10);
    shutdown(krpc_conn_fd(a.c), SHUT_RDWR);
    CHECK(run_until(loop, b_closed, &a, &b, 0) == 0);
    CHECK_EQ(b.close_err, -ECONNRESET);
    CHECK_EQ(b.rx_next, 0);
    CHECK(run_until(loop, both_closed, &a, &b, 0) == 0);
    CHECK(a.close_err < 0);
    krpc_loop_free(loop);
    check_pool_empty();
}

static void test_handshake_wrong_ca(void)
{
    struct krpc_loop *loop;
    struct ep a, b;
    struct ktls_config srv, cli;
    struct krpc_conn_config cfg = {0, 0, 0};
    int fa, fb;

    REQUIRE(tu_tcp_pair(&fa, &fb) == 0);
    REQUIRE(krpc_loop_new(&loop) == 0);
    ep_init(&a, "client", 0);
    ep_init(&b, "server", 1);
    REQUIRE(krpc_conn_new(loop, fa, &cfg, &ep_ops, &a, &a.c) == 0);
    REQUIRE(krpc_conn_new(loop, fb, &cfg, &ep_ops, &b, &b.c) == 0);
    tls_configs(&srv, &cli);
    cli.ca_file = certs.other_ca_cert; /* does not know the server's CA */
    CHECK(krpc_conn_start_tls(a.c, &cli) == 0);
    CHECK(krpc_conn_start_tls(b.c, &srv) == 0);
    /* messages queued during a handshake that fails are dropped */
    CHECK(send_range(&a, 0, 3) == 0);
    CHECK(run_until(loop, both_closed, &a, &b, 0) == 0);
    CHECK_EQ(a.tls_calls, 1);
    CHECK_EQ(b.tls_calls, 1);
    CHECK(a.tls_err < 0);
    CHECK(b.tls_err < 0);
    fprintf(stderr, "  client: %s\n  server: %s\n", a.tls_msg, b.tls_msg);
    CHECK(strstr(a.tls_msg, "certificate") != NULL);
    CHECK(strlen(b.tls_msg) > 0);
    CHECK_EQ(a.close_err, a.tls_err);
    CHECK(b.close_err < 0);
    CHECK_EQ(b.rx_next, 0);
    krpc_loop_free(loop);

    /* a server certificate that cannot be loaded: on_tls from the loop */
    REQUIRE(tu_tcp_pair(&fa, &fb) == 0);
    REQUIRE(krpc_loop_new(&loop) == 0);
    ep_init(&b, "server", 1);
    REQUIRE(krpc_conn_new(loop, fb, &cfg, &ep_ops, &b, &b.c) == 0);
    srv.cert_file = "/nonexistent/cert.pem";
    in_call = 1;
    CHECK(krpc_conn_start_tls(b.c, &srv) == 0);
    in_call = 0;
    CHECK_EQ(b.tls_calls, 0); /* not from inside the call */
    CHECK(run_until(loop, b_closed, NULL, &b, 0) == 0);
    CHECK_EQ(b.tls_calls, 1);
    CHECK(b.tls_err < 0);
    CHECK(strlen(b.tls_msg) > 0);
    CHECK_EQ(b.closing_inside_cb, 0);
    close(fa);
    krpc_loop_free(loop);

    /* a peer that never answers: the handshake timeout */
    REQUIRE(tu_tcp_pair(&fa, &fb) == 0);
    REQUIRE(krpc_loop_new(&loop) == 0);
    ep_init(&b, "server", 1);
    REQUIRE(krpc_conn_new(loop, fb, &cfg, &ep_ops, &b, &b.c) == 0);
    srv.cert_file = certs.server_cert;
    srv.timeout_ms = 200;
    CHECK(krpc_conn_start_tls(b.c, &srv) == 0);
    CHECK(run_until(loop, b_closed, NULL, &b, 0) == 0);
    CHECK_EQ(b.tls_err, -ETIMEDOUT);
    CHECK(strstr(b.tls_msg, "timed out") != NULL);
    CHECK_EQ(b.close_err, -ETIMEDOUT);
    close(fa);
    krpc_loop_free(loop);
    check_pool_empty();
}

static int wait_rx(struct krpc_loop *loop, const struct ep *a, int wa, const struct ep *b, int wb)
{
    uint64_t deadline = krpc_now_ms() + RUN_MS;

    while ((a->rx_next < wa || b->rx_next < wb) && !a->closes && !b->closes) {
        if (krpc_now_ms() > deadline)
            {
            fprintf(stderr, "wait_rx timeout: a %d/%d q %zu b %d/%d q %zu\n", a->rx_next, wa, a->c ? krpc_conn_send_queued(a->c) : 0, b->rx_next, wb, b->c ? krpc_conn_send_queued(b->c) : 0);
            return -ETIMEDOUT;
        }
        if (krpc_loop_run_once(loop, 100) < 0)
            return -EIO;
    }
    if (a->rx_next == wa && b->rx_next == wb)
        return 0;
    fprintf(stderr, "wait_rx: a %d/%d (closes %d err %d) b %d/%d (closes %d err %d)\n", a->rx_next, wa, a->closes,
            a->close_err, b->rx_next, wb, b->closes, b->close_err);
    return -EIO;
}

/* One krpc_conn_start_tls against a stock OpenSSL peer that negotiates no
 * ALPN (as tlshd, FreeBSD and libnfs do); on_tls's error and message. */
static void alpn_against_stock(enum ktls_role our_role, int require_alpn, int *err, char *msg, size_t msglen)
{
    struct krpc_loop *loop;
    struct ep e;
    struct ktls_config srv, cli;
    struct krpc_conn_config cfg = {0, 0, 0};
    struct tu_peer_cfg pc;
    struct tu_peer_result res;
    struct tu_peer *peer = NULL;
    int fa, fb, ours, theirs;

    *err = 1;
    msg[0] = '\0';
    REQUIRE(tu_tcp_pair(&fa, &fb) == 0);
    ours = our_role == KTLS_CLIENT ? fa : fb;
    theirs = our_role == KTLS_CLIENT ? fb : fa;
    memset(&pc, 0, sizeof(pc));
    pc.role = our_role == KTLS_CLIENT ? KTLS_SERVER : KTLS_CLIENT;
    pc.cert_file = pc.role == KTLS_SERVER ? certs.server_cert : certs.client_cert;
    pc.key_file = pc.role == KTLS_SERVER ? certs.server_key : certs.client_key;
    pc.ca_file = certs.ca_cert;
    pc.alpn = NULL;
    pc.timeout_ms = 10000;
    pc.ops[0] = (struct tu_op){.kind = TU_OP_CLOSE};
    REQUIRE(tu_peer_start(&pc, theirs, &peer) == 0);
    REQUIRE(krpc_loop_new(&loop) == 0);
    ep_init(&e, our_role == KTLS_CLIENT ? "client" : "server", 0);
    REQUIRE(krpc_conn_new(loop, ours, &cfg, &ep_ops, &e, &e.c) == 0);
    tls_configs(&srv, &cli);
    srv.require_alpn = cli.require_alpn = require_alpn;
    CHECK(krpc_conn_start_tls(e.c, our_role == KTLS_CLIENT ? &cli : &srv) == 0);
    /* Success: the peer's close_notify closes us; failure closes at once. */
    CHECK(run_until(loop, b_closed, NULL, &e, 0) == 0);
    CHECK_EQ(e.tls_calls, 1);
    snprintf(msg, msglen, "%s", e.tls_msg);
    krpc_loop_free(loop);
    tu_peer_join(peer, &res);
    if (e.tls_err == 0) {
        CHECK(res.ok);
        CHECK_EQ(strcmp(res.alpn, ""), 0);
    }
    *err = e.tls_err;
}

/* The connection offers and selects "sunrpc" but requires it only when the
 * caller's config says so (require_alpn), not always. */
static void test_alpn_passthrough(void)
{
    char msg[512];
    int err;

    alpn_against_stock(KTLS_CLIENT, 0, &err, msg, sizeof(msg));
    CHECK_EQ(err, 0);
    alpn_against_stock(KTLS_SERVER, 0, &err, msg, sizeof(msg));
    CHECK_EQ(err, 0);
    alpn_against_stock(KTLS_CLIENT, 1, &err, msg, sizeof(msg));
    CHECK_EQ(err, -EPROTO);
    CHECK_EQ(strcmp(msg, "TLS handshake failed: the server selected no ALPN protocol (\"sunrpc\" required)"), 0);
    alpn_against_stock(KTLS_SERVER, 1, &err, msg, sizeof(msg));
    CHECK_EQ(err, -EPROTO);
    CHECK_EQ(strcmp(msg, "TLS handshake failed: the client offered no ALPN protocol (\"sunrpc\" required)"), 0);
}

/* Small socket buffers and multi-MiB messages: writev returns short many
 * times; plain and TLS. Also the send-queue limit. */
static void test_partial_writes(void)
{
    struct krpc_loop *loop;
    struct ep a, b;
    struct ktls_config srv, cli;
    struct krpc_conn_config cfa = {0, 0, 5u << 20}, cfb = {0, 70000, 0};
    int fa, fb, small = 65536, big = (int)NSIZES - 1, mid = 21;

    REQUIRE(sizes[mid] == 2999999 && sizes[big] == (4u << 20));
    /* A Unix socketpair: the sender's SO_SNDBUF bounds what is in flight
     * (loopback TCP would let the receiver's autotuned window absorb
     * megabytes, or stall on delayed ACKs with tiny buffers). */
    {
        int sp[2];
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
        fa = sp[0];
        fb = sp[1];
    }
    setsockopt(fa, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    setsockopt(fb, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    REQUIRE(krpc_loop_new(&loop) == 0);
    ep_init(&a, "client", 0);
    ep_init(&b, "server", 1);
    REQUIRE(krpc_conn_new(loop, fa, &cfa, &ep_ops, &a, &a.c) == 0);
    REQUIRE(krpc_conn_new(loop, fb, &cfb, &ep_ops, &b, &b.c) == 0);

    for (int round = 0; round < 2; round++) {
        struct mb_chain m;

        /* a's queue limit is 5 MiB: one 3 MB message fits, a second does not */
        b.rx_next = mid;
        b.rx_step = 1;
        CHECK(send_range(&a, mid, 1) == 0);
        CHECK(krpc_conn_send_queued(a.c) > (2u << 20)); /* a short write, the rest queued */
        CHECK(make_msg(&m, 0, mid, sizes[mid]) == 0);
        CHECK_EQ(krpc_conn_send(a.c, &m), -ENOBUFS);
        CHECK_EQ(m.len, 0);
        CHECK(wait_rx(loop, &a, a.rx_next, &b, mid + 1) == 0);
        CHECK_EQ(krpc_conn_send_queued(a.c), 0);

        /* 4 MiB each way at once; b queues two */
        a.rx_next = big;
        a.rx_step = (int)NSIZES;
        b.rx_next = big;
        CHECK(send_range(&b, big, 1) == 0);
        CHECK(make_msg(&m, 1, big + (int)NSIZES, sizes[big]) == 0);
        CHECK(krpc_conn_send(b.c, &m) == 0);
        CHECK(krpc_conn_send_queued(b.c) > (7u << 20)); /* short writes */
        CHECK(send_range(&a, big, 1) == 0);
        CHECK(krpc_conn_send_queued(a.c) > (3u << 20));
        CHECK(wait_rx(loop, &a, big + 2 * (int)NSIZES, &b, big + 1) == 0);
        CHECK_EQ(a.rx_bad + b.rx_bad, 0);
        CHECK_EQ(a.closes + b.closes, 0);
        REQUIRE(a.c != NULL && b.c != NULL);
        if (round == 0) {
            tls_configs(&srv, &cli);
            srv.max_record = 1000; /* odd record sizes too */
            CHECK(krpc_conn_start_tls(a.c, &cli) == 0);
            CHECK(krpc_conn_start_tls(b.c, &srv) == 0);
            {
                uint64_t deadline = krpc_now_ms() + 20000;
                while ((a.tls_calls == 0 || b.tls_calls == 0) && krpc_now_ms() < deadline)
                    krpc_loop_run_once(loop, 100);
            }
            CHECK_EQ(a.tls_err + b.tls_err, 0);
            REQUIRE(a.c != NULL && b.c != NULL);
            CHECK(krpc_conn_is_tls(a.c) && krpc_conn_is_tls(b.c));
        }
    }
    if (a.c != NULL)
        krpc_conn_close(a.c, 0);
    CHECK(run_until(loop, both_closed, &a, &b, 0) == 0);
    CHECK_EQ(a.close_err, 0);
    CHECK_EQ(b.close_err, 0);
    krpc_loop_free(loop);
    check_pool_empty();
}

/* A 4 MiB message is accepted with an empty queue only when it fits the
 * limit; the limit counts what is queued plus the new message. */
static void test_send_queue_limit_exact(void)
{
    struct krpc_loop *loop;
    struct ep a;
    struct krpc_conn_config cfg = {0, 0, 1000};
    struct mb_chain m = MB_CHAIN_INIT;
    int fa, fb;

    REQUIRE(tu_tcp_pair(&fa, &fb) == 0);
    REQUIRE(krpc_loop_new(&loop) == 0);
    ep_init(&a, "client", 0);
    REQUIRE(krpc_conn_new(loop, fa, &cfg, &ep_ops, &a, &a.c) == 0);
    CHECK(make_msg(&m, 0, 0, 1001) == 0);
    CHECK_EQ(krpc_conn_send(a.c, &m), -ENOBUFS);
    CHECK(make_msg(&m, 0, 0, 900) == 0);
    CHECK_EQ(krpc_conn_send(a.c, &m), 0);
    krpc_conn_close(a.c, 0);
    CHECK_EQ(a.closes, 0);
    CHECK(krpc_loop_run_once(loop, 100) >= 1);
    CHECK_EQ(a.closes, 1);
    CHECK_EQ(a.close_err, 0);
    close(fb);
    krpc_loop_free(loop);
    check_pool_empty();
}

/* Guard mode: the receiver shares what it gets, which mprotects those
 * receive pages; the connection must not read into them again. */
static void test_guard_mode_receive(void)
{
    struct krpc_loop *loop;
    struct ep a, b;
    struct krpc_conn_config cfg = {0, 3000, 0};
    struct ktls_config srv, cli;
    int fa, fb, n = (int)NSIZES;

    mb__guard_set(1);
    REQUIRE(tu_tcp_pair(&fa, &fb) == 0);
    REQUIRE(krpc_loop_new(&loop) == 0);
    ep_init(&a, "client", 0);
    ep_init(&b, "server", 1);
    a.share_rx = b.share_rx = 1;
    REQUIRE(krpc_conn_new(loop, fa, &cfg, &ep_ops, &a, &a.c) == 0);
    REQUIRE(krpc_conn_new(loop, fb, &cfg, &ep_ops, &b, &b.c) == 0);
    CHECK(send_range(&a, 0, n) == 0);
    CHECK(send_range(&b, 0, n) == 0);
    CHECK(run_until(loop, got_all, &a, &b, n) == 0);
    CHECK_EQ(a.rx_next + b.rx_next, 2 * n);
    tls_configs(&srv, &cli);
    CHECK(krpc_conn_start_tls(a.c, &cli) == 0);
    CHECK(krpc_conn_start_tls(b.c, &srv) == 0);
    CHECK(send_range(&a, n, n) == 0);
    CHECK(send_range(&b, n, n) == 0);
    CHECK(run_until(loop, got_all, &a, &b, 2 * n) == 0);
    CHECK_EQ(a.rx_next + b.rx_next, 4 * n);
    CHECK_EQ(a.rx_bad + b.rx_bad, 0);
    if (a.c != NULL)
        krpc_conn_close(a.c, 0);
    CHECK(run_until(loop, both_closed, &a, &b, 0) == 0);
    CHECK_EQ(a.close_err + b.close_err, 0);
    krpc_loop_free(loop);
    mb__guard_set(0);
    check_pool_empty();
}

/* Non-blocking connect: messages sent before the connection is up; and a
 * refused connect reported through on_close. */
static void test_connect(void)
{
    struct krpc_loop *loop;
    struct ep a, b;
    struct krpc_conn_config cfg = {0, 0, 0};
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    int lfd, cfd, sfd;

    REQUIRE(krpc_loop_new(&loop) == 0);
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(lfd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(lfd, 4) == 0);
    REQUIRE(getsockname(lfd, (struct sockaddr *)&sa, &sl) == 0);

    cfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    REQUIRE(cfd >= 0);
    CHECK(connect(cfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EINPROGRESS);
    ep_init(&a, "client", 0);
    ep_init(&b, "server", 1);
    REQUIRE(krpc_conn_new(loop, cfd, &cfg, &ep_ops, &a, &a.c) == 0);
    CHECK(send_range(&a, 0, 8) == 0);
    sfd = accept(lfd, NULL, NULL);
    REQUIRE(sfd >= 0);
    REQUIRE(krpc_conn_new(loop, sfd, &cfg, &ep_ops, &b, &b.c) == 0);
    CHECK(send_range(&b, 0, 8) == 0);
    CHECK(run_until(loop, got_all, &a, &b, 8) == 0);
    CHECK_EQ(a.rx_next, 8);
    CHECK_EQ(b.rx_next, 8);
    CHECK_EQ(a.rx_bad + b.rx_bad, 0);
    krpc_conn_close(a.c, 0);
    CHECK(run_until(loop, both_closed, &a, &b, 0) == 0);
    CHECK_EQ(a.close_err, 0);
    CHECK_EQ(b.close_err, 0);

    /* refused: nobody listens any more */
    close(lfd);
    cfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    REQUIRE(cfd >= 0);
    if (connect(cfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EINPROGRESS || errno == ECONNREFUSED) {
        ep_init(&a, "client", 0);
        REQUIRE(krpc_conn_new(loop, cfd, &cfg, &ep_ops, &a, &a.c) == 0);
        CHECK(send_range(&a, 0, 2) == 0);
        CHECK(run_until(loop, both_closed, &a, &a, 0) == 0);
        CHECK_EQ(a.close_err, -ECONNREFUSED);
    } else {
        close(cfd);
    }
    krpc_loop_free(loop);
    check_pool_empty();
}

int main(void)
{
    if (tu_certs_create(&certs) != 0)
        return 1;
    TEST_RUN(test_exchange_one_fragment);
    TEST_RUN(test_exchange_fragmented);
    TEST_RUN(test_garbage_after_upgrade_point);
    TEST_RUN(test_record_mark_over_max);
    TEST_RUN(test_peer_vanishes_mid_message);
    TEST_RUN(test_tls_truncation);
    TEST_RUN(test_handshake_wrong_ca);
    TEST_RUN(test_alpn_passthrough);
    TEST_RUN(test_partial_writes);
    TEST_RUN(test_send_queue_limit_exact);
    TEST_RUN(test_connect);
    TEST_RUN(test_guard_mode_receive);
    tu_certs_destroy(&certs);
    return test_summary();
}
