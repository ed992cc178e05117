/*
 * test_krpc_probe_reply - the client's reading of the RFC 9289 probe reply,
 * against a server that behaves like knfsd without tlshd running.
 *
 * knfsd writes the STARTTLS verifier before it checks the program
 * (net/sunrpc/svc.c), so a probe for a program it does not serve comes back
 * as MSG_ACCEPTED + PROG_UNAVAIL (or PROG_MISMATCH) with the STARTTLS
 * verifier, and knfsd then waits for a ClientHello. Without tlshd the
 * handshake upcall fails: the server never answers, or drops the
 * connection. The client must read the verifier as "start TLS" (not as "no
 * TLS here"), and a TLS-required client must give up after its retry budget
 * with an error that names this cause.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rpctls/krpc_clnt.h"
#include "test.h"

#define PROG 0x20004444u
#define VERS 1

enum after_starttls { HANG = 0, DROP = 1 };

struct fake_knfsd {
    int lfd;
    uint16_t port;
    uint32_t accept_stat;       /* sent with the STARTTLS verifier */
    enum after_starttls after;
    int stop;
    int accepted, probes, hello_bytes_seen;
    pthread_t thr;
};

static int read_full(int fd, void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        struct pollfd pfd = {fd, POLLIN, 0};
        ssize_t r;
        if (poll(&pfd, 1, 5000) <= 0)
            return -1;
        r = read(fd, p, n);
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Reads one record-marked call (one fragment, as our client sends the
 * probe) and answers it with the STARTTLS verifier and f->accept_stat. */
static int answer_probe(struct fake_knfsd *f, int fd)
{
    unsigned char buf[512];
    uint32_t mark;
    size_t len;
    struct mb_chain m = MB_CHAIN_INIT, out = MB_CHAIN_INIT;
    struct krpc_xdr_dec d;
    struct krpc_xdr_enc x;
    struct krpc_call_hdr ch;
    struct krpc_reply_hdr rh;
    int ret = -1;

    if (read_full(fd, &mark, 4) != 0)
        return -1;
    len = ntohl(mark) & ~KRPC_RM_LAST;
    if (len > sizeof(buf) || read_full(fd, buf, len) != 0)
        return -1;
    if (mb_chain_append_bytes(&m, buf, len) != 0)
        return -1;
    krpc_xdr_dec_init(&d, &m, 0, m.len);
    if (krpc_decode_call_hdr(&d, &ch) != 0 || ch.cred.flavor != KRPC_AUTH_TLS || ch.proc != 0)
        goto out;
    f->probes++;
    memset(&rh, 0, sizeof(rh));
    rh.xid = ch.xid;
    rh.reply_stat = KRPC_MSG_ACCEPTED;
    rh.accept_stat = f->accept_stat;
    rh.mismatch_low = rh.mismatch_high = 3;
    rh.verf_flavor = KRPC_AUTH_NONE;
    rh.verf_len = 8;
    memcpy(rh.verf, KRPC_STARTTLS_VERF, 8);
    krpc_xdr_enc_init(&x, &out);
    krpc_encode_reply_hdr(&x, &rh);
    if (krpc_xdr_enc_error(&x) == 0 && krpc_rm_frame(&out, 0, &out) == 0) {
        unsigned char rep[256];
        size_t n = out.len;
        if (n <= sizeof(rep) && mb_chain_copy_out(&out, 0, n, rep) == 0 && write(fd, rep, n) == (ssize_t)n)
            ret = 0;
    }
out:
    mb_chain_free(&m);
    mb_chain_free(&out);
    return ret;
}

static void *fake_knfsd_thread(void *arg)
{
    struct fake_knfsd *f = arg;

    while (!__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE)) {
        struct pollfd pfd = {f->lfd, POLLIN, 0};
        int fd;
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        f->accepted++;
        if (answer_probe(f, fd) == 0 && f->after == HANG) {
            /* Swallow the ClientHello; answer nothing, until the client
             * gives up on this connection. */
            unsigned char sink[4096];
            for (;;) {
                struct pollfd p = {fd, POLLIN, 0};
                ssize_t r;
                if (poll(&p, 1, 100) <= 0) {
                    if (__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE))
                        break;
                    continue;
                }
                r = read(fd, sink, sizeof(sink));
                if (r <= 0)
                    break;
                if (sink[0] == 0x16)
                    f->hello_bytes_seen = 1;
            }
        }
        close(fd);
    }
    return NULL;
}

static int fake_start(struct fake_knfsd *f, uint32_t accept_stat, enum after_starttls after)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);

    memset(f, 0, sizeof(*f));
    f->accept_stat = accept_stat;
    f->after = after;
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(f->lfd, 8) != 0 ||
        getsockname(f->lfd, (struct sockaddr *)&sa, &sl) != 0)
        return -1;
    f->port = ntohs(sa.sin_port);
    return pthread_create(&f->thr, NULL, fake_knfsd_thread, f);
}

static void fake_stop(struct fake_knfsd *f)
{
    __atomic_store_n(&f->stop, 1, __ATOMIC_RELEASE);
    pthread_join(f->thr, NULL);
    close(f->lfd);
}

/* A TLS-required client: the probe answer starts TLS; the handshake never
 * completes; after max_reconnects attempts the call fails, and the error
 * says why. */
static void run_case(uint32_t accept_stat, enum after_starttls after)
{
    struct fake_knfsd f;
    struct krpc_loop *loop;
    struct krpc_clnt *cl;
    struct krpc_clnt_config cc;
    struct krpc_reply rep;
    char addr[32];
    const char *err;
    int ret;

    REQUIRE(fake_start(&f, accept_stat, after) == 0);
    REQUIRE(krpc_loop_new(&loop) == 0);
    memset(&cc, 0, sizeof(cc));
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", f.port);
    REQUIRE(krpc_parse_addr(addr, &cc.addr, &cc.addrlen) == 0);
    cc.prog = PROG;
    cc.vers = VERS;
    cc.tls = KRPC_TLS_REQUIRED;
    cc.tlscfg.verify_peer = -1;
    cc.connect_timeout_ms = 300;
    cc.reconnect_delay_ms = 10;
    cc.max_reconnects = 2;
    cc.timeout_ms = 5000;
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    memset(&rep, 0, sizeof(rep));
    ret = krpc_call(cl, 1, NULL, &rep);
    err = krpc_clnt_last_error(cl);
    /* Not -EPROTONOSUPPORT ("does not offer RPC-with-TLS"): STARTTLS was read
     * as an offer, whatever the accept status said. */
    CHECK(ret == (after == HANG ? -ETIMEDOUT : -ECONNRESET));
    CHECK(strstr(err, "accepted the RPC-with-TLS probe with STARTTLS but did not complete the TLS handshake") !=
          NULL);
    CHECK(strstr(err, "knfsd without tlshd") != NULL);
    if (after == HANG)
        CHECK(strstr(err, "TLS handshake did not complete within 300 ms") != NULL);
    if (test_failures)
        fprintf(stderr, "  status %d, error: %s\n", ret, err);
    CHECK_EQ(krpc_clnt_stats(cl)->tls_handshakes, 0);
    CHECK_EQ(krpc_clnt_stats(cl)->replies, 0);
    krpc_clnt_free(cl);
    krpc_loop_run(loop, NULL, 50);
    krpc_loop_free(loop);
    fake_stop(&f);
    /* Every attempt probed, and the client went on to the handshake. */
    CHECK(f.accepted >= 2);
    CHECK_EQ(f.probes, f.accepted);
    if (after == HANG)
        CHECK(f.hello_bytes_seen);
}

static void test_starttls_prog_unavail_hangs(void)
{
    run_case(KRPC_PROG_UNAVAIL, HANG);
}

static void test_starttls_prog_mismatch_drops(void)
{
    run_case(KRPC_PROG_MISMATCH, DROP);
}

static void test_starttls_success_hangs(void)
{
    run_case(KRPC_SUCCESS, HANG);
}

int main(void)
{
    TEST_RUN(test_starttls_prog_unavail_hangs);
    TEST_RUN(test_starttls_prog_mismatch_drops);
    TEST_RUN(test_starttls_success_hangs);
    CHECK_EQ(mb_pool_shutdown(), 0);
    return test_summary();
}
