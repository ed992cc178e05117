/*
 * test_krpc_rpcb.c - rpcbind registration (include/rpctls/krpc_rpcb.h)
 * without a real rpcbind:
 *   - the argument bytes of rpcbind v3 SET (struct rpcb) and portmap v2 SET
 *     (struct mapping) against bytes libtirpc's xdr_rpcb / xdr_pmap produce
 *     (captured once; they follow RFC 1833 field by field);
 *   - universal addresses and the registrations of a listener (IPv4, IPv6,
 *     dual-stack [::], v4-mapped);
 *   - a scripted rpcbind on an AF_UNIX socket and a scripted portmapper on
 *     TCP: the whole call on the wire, then every outcome: TRUE (0), FALSE
 *     (-EACCES), PROG_MISMATCH and AUTH_TOOWEAK (-EPROTO), no answer
 *     (-ETIMEDOUT), closed (-EPROTO), socket absent (-ENOENT), port closed
 *     (-ECONNREFUSED), fallback to portmap v2, tcp6 over portmap
 *     (-EAFNOSUPPORT), bad arguments (-EINVAL).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "rpctls/krpc.h"
#include "rpctls/krpc_rpcb.h"
#include "rpctls/mbuf.h"
#include "krpc/krpc_test.h"
#include "test.h"
#include "util/hex.h"

static char g_dir[256];

/* Copies c (freed) into out; returns the length or -1. */
static long encoded(struct mb_chain *c, uint8_t *out, size_t cap)
{
    long n = (long)c->len;
    if (c->len > cap || mb_chain_copy_out(c, 0, c->len, out) != 0)
        n = -1;
    mb_chain_free(c);
    return n;
}

static void test_encode_rpcb(void)
{
    /* libtirpc: RPCB r = {100003, 3, "tcp", "127.0.0.1.8.1", "superuser"}; xdr_rpcb() */
    static const char want1[] = "000186a3 00000003 00000003 74637000 0000000d 3132372e 302e302e 312e382e 31000000"
                                "00000009 73757065 72757365 72000000";
    /* RPCB r = {100005, 3, "tcp6", "::.8.1", "0"} */
    static const char want2[] = "000186a5 00000003 00000004 74637036 00000006 3a3a2e38 2e310000 00000001 30000000";
    uint8_t want[128], got[128];
    struct mb_chain c;
    struct krpc_xdr_enc x;

    mb_chain_init(&c);
    krpc_xdr_enc_init(&x, &c);
    struct krpc_rpcb_map m1 = {100003, 3, "tcp", "127.0.0.1.8.1", NULL};
    krpc__rpcb_encode_map(&x, &m1, "superuser");
    size_t wn = tu_unhex(want1, want, sizeof want);
    CHECK_EQ(encoded(&c, got, sizeof got), wn);
    CHECK(memcmp(got, want, wn) == 0);

    mb_chain_init(&c);
    krpc_xdr_enc_init(&x, &c);
    struct krpc_rpcb_map m2 = {100005, 3, "tcp6", "::.8.1", NULL};
    krpc__rpcb_encode_map(&x, &m2, "0");
    wn = tu_unhex(want2, want, sizeof want);
    CHECK_EQ(encoded(&c, got, sizeof got), wn);
    CHECK(memcmp(got, want, wn) == 0);
}

static void test_encode_pmap(void)
{
    /* libtirpc: struct pmap p = {100003, 3, IPPROTO_TCP, 2049}; xdr_pmap() */
    static const char want1[] = "000186a3 00000003 00000006 00000801";
    uint8_t want[32], got[32];
    struct mb_chain c;
    struct krpc_xdr_enc x;

    mb_chain_init(&c);
    krpc_xdr_enc_init(&x, &c);
    krpc__pmap_encode_mapping(&x, 100003, 3, KRPC_PMAP_IPPROTO_TCP, 2049);
    size_t wn = tu_unhex(want1, want, sizeof want);
    CHECK_EQ(encoded(&c, got, sizeof got), wn);
    CHECK(memcmp(got, want, wn) == 0);
}

static void test_uaddr(void)
{
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(2049)};
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons(65535)};
    char buf[64];

    inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
    CHECK(krpc_rpcb_uaddr((struct sockaddr *)&in, buf, sizeof buf) == 0);
    CHECK(strcmp(buf, "127.0.0.1.8.1") == 0);
    inet_pton(AF_INET6, "fe80::1", &in6.sin6_addr);
    CHECK(krpc_rpcb_uaddr((struct sockaddr *)&in6, buf, sizeof buf) == 0);
    CHECK(strcmp(buf, "fe80::1.255.255") == 0);
    CHECK(krpc_rpcb_uaddr((struct sockaddr *)&in, buf, 13) == -EINVAL); /* no room for the NUL */
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    CHECK(krpc_rpcb_uaddr((struct sockaddr *)&un, buf, sizeof buf) == -EINVAL);
}

static void test_listener_maps(void)
{
    struct krpc_rpcb_map m[2];
    struct krpc_rpcb_bufs b;
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(20049)};
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons(20049)};

    inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
    REQUIRE(krpc_rpcb_listener_maps((struct sockaddr *)&in, 1, 100003, 3, m, &b) == 1);
    CHECK(m[0].prog == 100003 && m[0].vers == 3 && strcmp(m[0].netid, "tcp") == 0);
    CHECK(strcmp(m[0].uaddr, "127.0.0.1.78.81") == 0);

    /* [::] dual-stack: tcp on 0.0.0.0 and tcp6 on ::. */
    REQUIRE(krpc_rpcb_listener_maps((struct sockaddr *)&in6, 1, 100005, 3, m, &b) == 2);
    CHECK(strcmp(m[0].netid, "tcp") == 0 && strcmp(m[0].uaddr, "0.0.0.0.78.81") == 0);
    CHECK(strcmp(m[1].netid, "tcp6") == 0 && strcmp(m[1].uaddr, "::.78.81") == 0);
    CHECK(m[1].prog == 100005 && m[1].vers == 3);
    /* [::] with IPV6_V6ONLY: tcp6 only. */
    REQUIRE(krpc_rpcb_listener_maps((struct sockaddr *)&in6, 0, 100005, 3, m, &b) == 1);
    CHECK(strcmp(m[0].netid, "tcp6") == 0 && strcmp(m[0].uaddr, "::.78.81") == 0);
    /* [::1]: tcp6 only, dual-stack or not. */
    inet_pton(AF_INET6, "::1", &in6.sin6_addr);
    REQUIRE(krpc_rpcb_listener_maps((struct sockaddr *)&in6, 1, 100003, 3, m, &b) == 1);
    CHECK(strcmp(m[0].netid, "tcp6") == 0 && strcmp(m[0].uaddr, "::1.78.81") == 0);
    /* [::ffff:127.0.0.1]: reachable over IPv4 only. */
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &in6.sin6_addr);
    REQUIRE(krpc_rpcb_listener_maps((struct sockaddr *)&in6, 1, 100003, 3, m, &b) == 1);
    CHECK(strcmp(m[0].netid, "tcp") == 0 && strcmp(m[0].uaddr, "127.0.0.1.78.81") == 0);
}

/* ---- a scripted rpcbind ---------------------------------------------------- */

enum fake_mode { FAKE_TRUE, FAKE_FALSE, FAKE_PROG_MISMATCH, FAKE_TOOWEAK, FAKE_SILENT, FAKE_CLOSE };

struct fake {
    int lfd;
    enum fake_mode mode;
    pthread_t thr;
    uint8_t call[1024]; /* the call received, record mark removed */
    size_t call_len;
};

static int read_full(int fd, uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t r = recv(fd, p + off, n - off, 0);
        if (r <= 0)
            return -1;
        off += (size_t)r;
    }
    return 0;
}

static void put32(uint8_t *p, uint32_t v)
{
    v = htonl(v);
    memcpy(p, &v, 4);
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return ntohl(v);
}

/* Accepts one connection, reads one call, answers as f->mode says. */
static void *fake_run(void *arg)
{
    struct fake *f = arg;
    uint8_t mark[4], out[64];
    size_t n = 0;
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    if (read_full(fd, mark, 4) != 0)
        goto done;
    uint32_t len = get32(mark) & 0x7fffffffu;
    if (len > sizeof f->call || read_full(fd, f->call, len) != 0)
        goto done;
    f->call_len = len;
    if (f->mode == FAKE_CLOSE)
        goto done;
    if (f->mode == FAKE_SILENT) {
        while (recv(fd, mark, sizeof mark, 0) > 0) /* until the client gives up */
            ;
        goto done;
    }
    memcpy(out + 4, f->call, 4); /* xid */
    put32(out + 8, KRPC_MSG_REPLY);
    n = 12;
    if (f->mode == FAKE_TOOWEAK) {
        put32(out + n, KRPC_MSG_DENIED);
        put32(out + n + 4, KRPC_AUTH_ERROR);
        put32(out + n + 8, KRPC_AUTH_TOOWEAK);
        n += 12;
    } else {
        put32(out + n, KRPC_MSG_ACCEPTED);
        put32(out + n + 4, KRPC_AUTH_NONE);
        put32(out + n + 8, 0);
        n += 12;
        if (f->mode == FAKE_PROG_MISMATCH) {
            put32(out + n, KRPC_PROG_MISMATCH);
            put32(out + n + 4, 4);
            put32(out + n + 8, 4);
            n += 12;
        } else {
            put32(out + n, KRPC_SUCCESS);
            put32(out + n + 4, f->mode == FAKE_TRUE ? 1 : 0);
            n += 8;
        }
    }
    put32(out, KRPC_RM_LAST | (uint32_t)(n - 4));
    if (send(fd, out, n, MSG_NOSIGNAL) != (ssize_t)n)
        fprintf(stderr, "fake rpcbind: short send\n");
done:
    close(fd);
    return NULL;
}

static int fake_start(struct fake *f, int lfd, enum fake_mode mode)
{
    memset(f, 0, sizeof *f);
    f->lfd = lfd;
    f->mode = mode;
    return pthread_create(&f->thr, NULL, fake_run, f);
}

static int unix_listener(const char *path)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    snprintf(un.sun_path, sizeof un.sun_path, "%s", path);
    unlink(path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&un, sizeof un) != 0 || listen(fd, 4) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* A TCP socket on 127.0.0.1, listening or only bound (then connects are
 * refused); its port in *port. */
static int tcp_socket(int do_listen, uint16_t *port)
{
    struct sockaddr_in in = {.sin_family = AF_INET};
    socklen_t sl = sizeof in;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&in, sizeof in) != 0 || (do_listen && listen(fd, 4) != 0) ||
        getsockname(fd, (struct sockaddr *)&in, &sl) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(in.sin_port);
    return fd;
}

static void test_unix_call_bytes(void)
{
    /* Call header after the xid (RFC 5531): CALL, RPC v2, program 100000,
     * version 3, procedure 1 (SET), AUTH_NONE credential and verifier; then
     * the struct rpcb, owner "superuser". */
    static const char want_hdr[] = "00000000 00000002 000186a0 00000003 00000001 00000000 00000000 00000000 00000000";
    static const char want_args[] = "000186a3 00000003 00000003 74637000 0000000d 3132372e 302e302e 312e382e 31000000"
                                    "00000009 73757065 72757365 72000000";
    char path[300], err[512];
    uint8_t want[128];
    struct fake f;
    snprintf(path, sizeof path, "%s/rpcbind.sock", g_dir);
    int lfd = unix_listener(path);
    REQUIRE(lfd >= 0);
    struct krpc_rpcb_config cfg = {path, "", 1000};
    struct krpc_rpcb_map m = {100003, 3, "tcp", "127.0.0.1.8.1", "superuser"};

    REQUIRE(fake_start(&f, lfd, FAKE_TRUE) == 0);
    CHECK_EQ(krpc_rpcb_set(&cfg, &m, err, sizeof err), 0);
    pthread_join(f.thr, NULL);
    size_t hn = tu_unhex(want_hdr, want, sizeof want);
    REQUIRE(f.call_len > 4 + hn);
    CHECK(memcmp(f.call + 4, want, hn) == 0);
    size_t an = tu_unhex(want_args, want, sizeof want);
    CHECK_EQ(f.call_len, 4 + hn + an);
    CHECK(memcmp(f.call + 4 + hn, want, an) == 0);

    /* UNSET: procedure 2, same struct; the owner defaults to the euid. */
    m.owner = NULL;
    REQUIRE(fake_start(&f, lfd, FAKE_TRUE) == 0);
    CHECK_EQ(krpc_rpcb_unset(&cfg, &m, err, sizeof err), 0);
    pthread_join(f.thr, NULL);
    REQUIRE(f.call_len >= 4 + hn + 16);
    CHECK_EQ(get32(f.call + 20), KRPC_RPCBPROC_UNSET);
    char owner[16];
    snprintf(owner, sizeof owner, "%u", (unsigned)geteuid());
    size_t olen = strlen(owner), ooff = 4 + hn + 4 + 4 + 8 + 4 + 16; /* prog, vers, netid, uaddr */
    REQUIRE(f.call_len >= ooff + 4 + olen);
    CHECK_EQ(get32(f.call + ooff), olen);
    CHECK(memcmp(f.call + ooff + 4, owner, olen) == 0);
    close(lfd);
    unlink(path);
}

static void test_unix_outcomes(void)
{
    static const struct {
        enum fake_mode mode;
        int set_ret;
        const char *msg;
    } cases[] = {
        {FAKE_TRUE, 0, ""},
        {FAKE_FALSE, -EACCES, "refused to register program 100003 version 3 tcp at 127.0.0.1.8.1: already registered "
                              "at another address, or by another owner"},
        {FAKE_PROG_MISMATCH, -EPROTO, ": PROG_MISMATCH for program 100000 version 3"},
        {FAKE_TOOWEAK, -EPROTO, ": call denied (AUTH_TOOWEAK)"},
        {FAKE_SILENT, -ETIMEDOUT, ": no answer within 300 ms"},
        {FAKE_CLOSE, -EPROTO, ": closed the connection without answering"},
    };
    char path[300], err[512];
    struct fake f;
    snprintf(path, sizeof path, "%s/rpcbind2.sock", g_dir);
    int lfd = unix_listener(path);
    REQUIRE(lfd >= 0);
    struct krpc_rpcb_config cfg = {path, "", 300};
    struct krpc_rpcb_map m = {100003, 3, "tcp", "127.0.0.1.8.1", NULL};

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = '\0';
        REQUIRE(fake_start(&f, lfd, cases[i].mode) == 0);
        uint64_t t0 = krpc_now_ms();
        int ret = krpc_rpcb_set(&cfg, &m, err, sizeof err);
        uint64_t took = krpc_now_ms() - t0;
        pthread_join(f.thr, NULL);
        CHECK_EQ(ret, cases[i].set_ret);
        CHECK(strstr(err, cases[i].msg) != NULL);
        if (strstr(err, cases[i].msg) == NULL)
            fprintf(stderr, "case %zu: got \"%s\"\n", i, err);
        CHECK(took < 2000); /* bounded by the 300 ms timeout */
    }
    /* FALSE to UNSET: another owner holds it. */
    REQUIRE(fake_start(&f, lfd, FAKE_FALSE) == 0);
    CHECK_EQ(krpc_rpcb_unset(&cfg, &m, err, sizeof err), -EACCES);
    pthread_join(f.thr, NULL);
    CHECK(strstr(err, "refused to unregister program 100003 version 3 tcp: registered by another owner") != NULL);
    close(lfd);
    unlink(path);
}

static void test_absent(void)
{
    char path[300], tcp[64], err[512];
    uint16_t port;
    struct krpc_rpcb_map m = {100003, 3, "tcp", "127.0.0.1.8.1", NULL};
    snprintf(path, sizeof path, "%s/nothing-here.sock", g_dir);

    struct krpc_rpcb_config cfg = {path, "", 500};
    CHECK_EQ(krpc_rpcb_set(&cfg, &m, err, sizeof err), -ENOENT);
    char want[512];
    snprintf(want, sizeof want, "no rpcbind: %s: No such file or directory", path);
    CHECK(strcmp(err, want) == 0);

    /* A bound, not listening, port: connections are refused. */
    int fd = tcp_socket(0, &port);
    REQUIRE(fd >= 0);
    snprintf(tcp, sizeof tcp, "127.0.0.1:%u", port);
    cfg.tcp_addr = tcp;
    CHECK_EQ(krpc_rpcb_unset(&cfg, &m, err, sizeof err), -ECONNREFUSED);
    snprintf(want, sizeof want, "no rpcbind: %s: No such file or directory; %s: Connection refused", path, tcp);
    CHECK(strcmp(err, want) == 0);
    close(fd);

    /* A socket file nobody listens on (rpcbind killed): refused too. */
    int lfd = unix_listener(path);
    REQUIRE(lfd >= 0);
    close(lfd);
    cfg.tcp_addr = "";
    CHECK_EQ(krpc_rpcb_set(&cfg, &m, err, sizeof err), -ECONNREFUSED);
    unlink(path);

    /* Arguments. */
    cfg.sock_path = path;
    struct krpc_rpcb_map bad = {100003, 3, "tcp", NULL, NULL};
    CHECK_EQ(krpc_rpcb_set(&cfg, &bad, err, sizeof err), -EINVAL); /* SET needs an address */
    char longs[KRPC_RPCB_MAX_STR + 2];
    memset(longs, 'a', sizeof longs - 1);
    longs[sizeof longs - 1] = '\0';
    bad.netid = longs;
    bad.uaddr = "127.0.0.1.8.1";
    CHECK_EQ(krpc_rpcb_set(&cfg, &bad, err, sizeof err), -EINVAL);
    CHECK_EQ(krpc_rpcb_set(&cfg, NULL, err, sizeof err), -EINVAL);
}

static void test_pmap_fallback(void)
{
    /* After the xid: CALL, RPC v2, program 100000, version 2, SET, AUTH_NONE x2;
     * then struct mapping {100003, 3, IPPROTO_TCP, 2049}. */
    static const char want_call[] = "00000000 00000002 000186a0 00000002 00000001 00000000 00000000 00000000 00000000"
                                    "000186a3 00000003 00000006 00000801";
    char path[300], tcp[64], err[512];
    uint8_t want[128];
    uint16_t port;
    struct fake f;
    snprintf(path, sizeof path, "%s/absent.sock", g_dir);
    int lfd = tcp_socket(1, &port);
    REQUIRE(lfd >= 0);
    snprintf(tcp, sizeof tcp, "127.0.0.1:%u", port);
    struct krpc_rpcb_config cfg = {path, tcp, 1000};
    struct krpc_rpcb_map m = {100003, 3, "tcp", "127.0.0.1.8.1", NULL};

    REQUIRE(fake_start(&f, lfd, FAKE_TRUE) == 0);
    CHECK_EQ(krpc_rpcb_set(&cfg, &m, err, sizeof err), 0);
    pthread_join(f.thr, NULL);
    size_t wn = tu_unhex(want_call, want, sizeof want);
    CHECK_EQ(f.call_len, 4 + wn);
    CHECK(memcmp(f.call + 4, want, wn) == 0);

    /* UNSET: procedure 2, port 0. */
    REQUIRE(fake_start(&f, lfd, FAKE_TRUE) == 0);
    CHECK_EQ(krpc_rpcb_unset(&cfg, &m, err, sizeof err), 0);
    pthread_join(f.thr, NULL);
    REQUIRE(f.call_len == 4 + wn);
    CHECK_EQ(get32(f.call + 20), KRPC_RPCBPROC_UNSET);
    CHECK_EQ(get32(f.call + 4 + wn - 4), 0);

    /* FALSE over portmap names the place. */
    REQUIRE(fake_start(&f, lfd, FAKE_FALSE) == 0);
    CHECK_EQ(krpc_rpcb_set(&cfg, &m, err, sizeof err), -EACCES);
    pthread_join(f.thr, NULL);
    char want_msg[200];
    snprintf(want_msg, sizeof want_msg, "rpcbind (%s) refused to register", tcp);
    CHECK(strstr(err, want_msg) == err);

    /* Portmap v2 cannot carry tcp6; nothing is sent. */
    struct krpc_rpcb_map m6 = {100003, 3, "tcp6", "::.8.1", NULL};
    CHECK_EQ(krpc_rpcb_set(&cfg, &m6, err, sizeof err), -EAFNOSUPPORT);
    CHECK(strstr(err, "cannot register netid tcp6") != NULL);
    /* A universal address without a port. */
    struct krpc_rpcb_map bad = {100003, 3, "tcp", "127.0.0.1", NULL};
    CHECK_EQ(krpc_rpcb_set(&cfg, &bad, err, sizeof err), -EINVAL);
    bad.uaddr = "1.2.3.4.256.1";
    CHECK_EQ(krpc_rpcb_set(&cfg, &bad, err, sizeof err), -EINVAL);
    close(lfd);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/rpctls-rpcb-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(g_dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    TEST_RUN(test_encode_rpcb);
    TEST_RUN(test_encode_pmap);
    TEST_RUN(test_uaddr);
    TEST_RUN(test_listener_maps);
    TEST_RUN(test_unix_call_bytes);
    TEST_RUN(test_unix_outcomes);
    TEST_RUN(test_absent);
    TEST_RUN(test_pmap_fallback);
    rmdir(g_dir);
    return test_summary();
}
