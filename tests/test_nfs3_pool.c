/*
 * test_nfs3_pool.c - the NFS server's worker pool (issue 8) seen from the
 * wire: the server runs in-process (tests/util/nfsrv) and the calls are
 * hand-made record-marked messages on raw sockets, so several can be in
 * flight on one connection and an XID can be sent twice.
 *
 *   per_conn_limit   one connection sends io_threads COMMITs, each held on
 *                    the server by the test hook RPCTLS_TEST_COMMIT_DELAY_MS;
 *                    another client's GETATTR is answered while none of them
 *                    has synced (syncs == 0): the per-connection limit
 *                    leaves workers for other connections (io_threads 2
 *                    and the default 8).
 *   drc_in_pool      io_threads 1, a held COMMIT keeps the only worker; a
 *                    GUARDED CREATE sent twice with one XID on another
 *                    connection runs once (one reply, NFS3_OK, not EXIST;
 *                    the copy is counted as dropped in progress); the same
 *                    XID on a new connection gets NFS3_OK from the cache.
 *   reverse_order    a held COMMIT then a GETATTR on one connection: the
 *                    GETATTR is answered first, each reply has its XID.
 *   write_no_copy    a 1 MiB WRITE through the pool takes about one page
 *                    per 4 KiB received and no more (mbuf page counters):
 *                    a copy of the payload into pool pages would double it
 *                    (a copy into malloc'ed memory would not show here;
 *                    test_nfs3_xdr.c proves the codec takes the pages by
 *                    reference, backend_ops.c pwritev()s from the chain).
 * Each was seen to fail: with the old limit of 16 (syncs at B's answer 2
 * and 8), with a copy_to_pages of the data in op_write (513 allocations),
 * and with the DRC entry forgotten at KRPC_SVC_DEFER (two CREATE replies,
 * the second NFS3ERR_EXIST).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rpctls/krpc.h"
#include "rpctls/mbuf.h"
#include "test.h"
#include "util/nfsd.h"
#include "util/nfsrv.h"
#include "util/rpc_peer.h"

#define DELAY_MS 2000 /* the held COMMIT: long next to a GETATTR, short for the test's run time */

static char g_base[PATH_MAX], g_export[PATH_MAX + 16], g_state[PATH_MAX + 16];

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A server with io_threads workers whose COMMITs each sleep delay_ms
 * (the hook is read when the server starts). */
static int srv_start(struct tu_nfsrv *si, unsigned io_threads, unsigned delay_ms)
{
    struct nfs3_srv_config scfg;
    char d[16];

    snprintf(d, sizeof(d), "%u", delay_ms);
    setenv("RPCTLS_TEST_COMMIT_DELAY_MS", d, 1);
    memset(&scfg, 0, sizeof(scfg));
    scfg.export_path = g_export;
    scfg.state_dir = g_state;
    scfg.opts.squash = NFS3_SQUASH_NONE; /* uid 0 writes the root-owned export */
    scfg.io_threads = io_threads;
    return tu_nfsrv_start(si, &scfg);
}

static struct nfs3_srv_stats srv_stats(struct tu_nfsrv *si)
{
    struct nfs3_srv_stats st;
    nfs3_srv_stats_get(si->srv, &st);
    return st;
}

static struct krpc_svc_stats svc_stats(struct tu_nfsrv *si)
{
    struct krpc_svc_stats st;
    krpc_svc_stats_get(si->svc, &st);
    return st;
}

/* Waits (up to 10 s) until *counter reaches want; returns its value. */
#define WAIT_FOR(expr, want)                                                                  \
    ({                                                                                        \
        uint64_t dl_ = now_ms() + 10000, v_;                                                  \
        while ((v_ = (uint64_t)(expr)) < (uint64_t)(want) && now_ms() < dl_)                  \
            usleep(1000);                                                                     \
        v_;                                                                                   \
    })

/* ---- raw connections ----------------------------------------------------- */

static int raw_open(struct tu_xprt *x, uint16_t port)
{
    int fd = tu_connect_loopback(port, 20000);

    if (fd < 0)
        return -1;
    tu_xprt_plain(x, fd);
    return 0;
}

/* Sends one NFS call (AUTH_SYS uid 0) with the XID given; args consumed. */
static int raw_send(struct tu_xprt *x, uint32_t xid, uint32_t proc, struct mb_chain *args)
{
    struct krpc_call_hdr h;
    struct krpc_xdr_enc e;
    struct mb_chain call = MB_CHAIN_INIT;

    memset(&h, 0, sizeof(h));
    h.xid = xid;
    h.rpcvers = KRPC_RPCVERS;
    h.prog = NFS3_PROGRAM;
    h.vers = NFS3_VERSION;
    h.proc = proc;
    h.cred = tu_nfs_cred_sys(0, 0);
    h.verf_flavor = KRPC_AUTH_NONE;
    krpc_xdr_enc_init(&e, &call);
    krpc_encode_call_hdr(&e, &h);
    if (krpc_xdr_enc_error(&e) != 0) {
        mb_chain_free(args);
        mb_chain_free(&call);
        return -1;
    }
    mb_chain_concat(&call, args);
    return tu_rpc_send(x, &call, 0) == 0 ? 0 : -1;
}

/* Reads the next reply; 0 with rep's header decoded and rep->res at the
 * results of an accepted SUCCESS, else -1. */
static int raw_recv(struct tu_xprt *x, struct krpc_reply *rep)
{
    memset(rep, 0, sizeof(*rep));
    if (tu_rpc_recv(x, &rep->msg, NFS3_SRV_DEFAULT_TMAX + 64 * 1024) != 0)
        return -1;
    krpc_xdr_dec_init(&rep->res, &rep->msg, 0, rep->msg.len);
    if (krpc_decode_reply_hdr(&rep->res, &rep->hdr) != 0 || rep->hdr.reply_stat != KRPC_MSG_ACCEPTED ||
        rep->hdr.accept_stat != KRPC_SUCCESS) {
        krpc_reply_free(rep);
        return -1;
    }
    return 0;
}

/* Encoders of the arguments used here, into a fresh chain. */
#define ENCODE(chain, ENC, argp)                                                              \
    ({                                                                                        \
        struct krpc_xdr_enc x_;                                                               \
        mb_chain_init(chain);                                                                 \
        krpc_xdr_enc_init(&x_, chain);                                                        \
        ENC(&x_, argp);                                                                       \
        krpc_xdr_enc_error(&x_);                                                              \
    })

static int send_commit(struct tu_xprt *x, uint32_t xid, const struct nfs3_fh *fh)
{
    struct nfs3_commit_args ca;
    struct mb_chain a;

    memset(&ca, 0, sizeof(ca));
    ca.fh = *fh;
    if (ENCODE(&a, nfs3_enc_commit_args, &ca) != 0)
        return -1;
    return raw_send(x, xid, NFS3_PROC_COMMIT, &a);
}

static int send_getattr(struct tu_xprt *x, uint32_t xid, const struct nfs3_fh *fh)
{
    struct nfs3_fh_args ga = {*fh};
    struct mb_chain a;

    if (ENCODE(&a, nfs3_enc_getattr_args, &ga) != 0)
        return -1;
    return raw_send(x, xid, NFS3_PROC_GETATTR, &a);
}

static int send_create_guarded(struct tu_xprt *x, uint32_t xid, const struct nfs3_fh *dir, const char *name)
{
    struct nfs3_create_args ca;
    struct mb_chain a;

    memset(&ca, 0, sizeof(ca));
    ca.where.dir = *dir;
    snprintf(ca.where.name, sizeof(ca.where.name), "%s", name);
    ca.mode = NFS3_CREATE_GUARDED;
    ca.attr.set_mode = 1;
    ca.attr.mode = 0644;
    if (ENCODE(&a, nfs3_enc_create_args, &ca) != 0)
        return -1;
    return raw_send(x, xid, NFS3_PROC_CREATE, &a);
}

/* The status of a reply's results (every NFSv3 result starts with it). */
static uint32_t reply_status(struct krpc_reply *rep)
{
    uint32_t st = krpc_xdr_get_u32(&rep->res);
    return krpc_xdr_dec_error(&rep->res) == 0 ? st : 0xdead;
}

/* A file made with a blocking client (the test's own handle for COMMITs). */
static int make_file(struct tu_nfsrv *si, const char *name, struct nfs3_fh *fh)
{
    struct tu_nfscli c;
    struct krpc_cred cred = tu_nfs_cred_sys(0, 0);
    struct nfs3_create_args ca;
    struct nfs3_diropres cr;
    int ok;

    if (tu_nfscli_open(&c, si->port, NFS3_PROGRAM, NFS3_VERSION, &cred) != 0)
        return -1;
    memset(&ca, 0, sizeof(ca));
    nfs3_srv_root_fh(si->srv, &ca.where.dir);
    snprintf(ca.where.name, sizeof(ca.where.name), "%s", name);
    ca.attr.set_mode = 1;
    ca.attr.mode = 0644;
    ok = TU_CALL(c.cl, NFS3_PROC_CREATE, nfs3_enc_create_args, &ca, nfs3_dec_create_res, &cr) == 0 &&
         cr.status == NFS3_OK && cr.fh_present;
    if (ok)
        *fh = cr.fh;
    tu_nfscli_close(&c);
    return ok ? 0 : -1;
}

/* ---- tests ------------------------------------------------------------------ */

static void per_conn_limit(unsigned io_threads)
{
    struct tu_nfsrv si;
    struct tu_xprt a;
    struct tu_nfscli b;
    struct krpc_cred cred = tu_nfs_cred_sys(0, 0);
    struct nfs3_fh fh, root;
    struct nfs3_fh_args ga;
    struct nfs3_getattr_res gr;
    char name[32];
    uint64_t seen = 0, syncs_at_b;
    int b_ok, ok = 0;

    REQUIRE(srv_start(&si, io_threads, DELAY_MS) == 0);
    snprintf(name, sizeof(name), "commits-%u", io_threads);
    REQUIRE(make_file(&si, name, &fh) == 0);
    nfs3_srv_root_fh(si.srv, &root);
    REQUIRE(tu_nfscli_open(&b, si.port, NFS3_PROGRAM, NFS3_VERSION, &cred) == 0);

    /* A: io_threads COMMITs back to back, none waited for. */
    REQUIRE(raw_open(&a, si.port) == 0);
    for (unsigned i = 0; i < io_threads; i++)
        REQUIRE(send_commit(&a, 1000 + i, &fh) == 0);
    CHECK_EQ(WAIT_FOR(srv_stats(&si).ops[NFS3_PROC_COMMIT], io_threads), io_threads);

    /* B: answered while every COMMIT of A is still held (none synced). */
    ga.fh = root;
    b_ok = TU_CALL(b.cl, NFS3_PROC_GETATTR, nfs3_enc_getattr_args, &ga, nfs3_dec_getattr_res, &gr) == 0 &&
           gr.status == NFS3_OK;
    syncs_at_b = srv_stats(&si).syncs;
    CHECK(b_ok);
    CHECK_EQ(syncs_at_b, 0);

    /* A: every COMMIT answered once, NFS3_OK. */
    for (unsigned i = 0; i < io_threads; i++) {
        struct krpc_reply rep;
        if (raw_recv(&a, &rep) != 0)
            break;
        if (rep.hdr.xid >= 1000 && rep.hdr.xid < 1000 + io_threads && !(seen & (1ull << (rep.hdr.xid - 1000))) &&
            reply_status(&rep) == NFS3_OK) {
            seen |= 1ull << (rep.hdr.xid - 1000);
            ok++;
        }
        krpc_reply_free(&rep);
    }
    CHECK_EQ(ok, io_threads);
    CHECK_EQ(srv_stats(&si).syncs, io_threads);
    fprintf(stderr, "io_threads %u: B answered with %llu of %u COMMITs synced\n", io_threads,
            (unsigned long long)syncs_at_b, io_threads);
    tu_xprt_close(&a);
    tu_nfscli_close(&b);
    tu_nfsrv_stop(&si);
}

static void test_per_conn_limit_two(void)
{
    per_conn_limit(2);
}

static void test_per_conn_limit_default(void)
{
    per_conn_limit(NFS3_SRV_DEFAULT_IO_THREADS);
}

static void test_drc_in_pool(void)
{
    struct tu_nfsrv si;
    struct tu_xprt hold, y, z;
    struct krpc_reply rep;
    struct nfs3_fh fh, root;
    struct krpc_svc_stats sv0;
    struct stat sb;
    char path[PATH_MAX + 64];
    int create_replies = 0, create_ok = 0, getattr_seen = 0;

    REQUIRE(srv_start(&si, 1, DELAY_MS) == 0);
    REQUIRE(make_file(&si, "held", &fh) == 0);
    nfs3_srv_root_fh(si.srv, &root);
    sv0 = svc_stats(&si);

    /* The only worker is held by a COMMIT of another connection. */
    REQUIRE(raw_open(&hold, si.port) == 0);
    REQUIRE(send_commit(&hold, 100, &fh) == 0);
    REQUIRE(WAIT_FOR(srv_stats(&si).ops[NFS3_PROC_COMMIT], 1) == 1);

    /* The CREATE, its retransmission (same XID) and a GETATTR behind them. */
    REQUIRE(raw_open(&y, si.port) == 0);
    REQUIRE(send_create_guarded(&y, 200, &root, "guarded") == 0);
    REQUIRE(send_create_guarded(&y, 200, &root, "guarded") == 0);
    REQUIRE(send_getattr(&y, 201, &root) == 0);
    CHECK_EQ(WAIT_FOR(svc_stats(&si).drc_in_progress - sv0.drc_in_progress, 1), 1);
    /* The copy was dropped while the original was still queued. */
    CHECK_EQ(srv_stats(&si).syncs, 0);

    /* Replies on y up to the GETATTR's: the CREATE's exactly once. On one
     * connection with one worker the calls run in arrival order, so a
     * second run of the CREATE would answer before the GETATTR. */
    while (!getattr_seen && raw_recv(&y, &rep) == 0) {
        uint32_t st = reply_status(&rep);
        if (rep.hdr.xid == 200) {
            create_replies++;
            create_ok += st == NFS3_OK;
        } else if (rep.hdr.xid == 201) {
            getattr_seen = 1;
            CHECK_EQ(st, NFS3_OK);
        }
        krpc_reply_free(&rep);
    }
    CHECK(getattr_seen);
    CHECK_EQ(create_replies, 1);
    CHECK_EQ(create_ok, 1);
    CHECK_EQ(srv_stats(&si).ops[NFS3_PROC_CREATE], 2); /* make_file's and this one, once */
    snprintf(path, sizeof(path), "%s/guarded", g_export);
    CHECK(stat(path, &sb) == 0);
    REQUIRE(raw_recv(&hold, &rep) == 0);
    CHECK_EQ(rep.hdr.xid, 100);
    CHECK_EQ(reply_status(&rep), NFS3_OK);
    krpc_reply_free(&rep);

    /* The client reconnects and retransmits: the cached NFS3_OK, not EXIST. */
    REQUIRE(raw_open(&z, si.port) == 0);
    REQUIRE(send_create_guarded(&z, 200, &root, "guarded") == 0);
    REQUIRE(raw_recv(&z, &rep) == 0);
    CHECK_EQ(rep.hdr.xid, 200);
    CHECK_EQ(reply_status(&rep), NFS3_OK);
    krpc_reply_free(&rep);
    CHECK_EQ(svc_stats(&si).drc_hits - sv0.drc_hits, 1);
    CHECK_EQ(srv_stats(&si).ops[NFS3_PROC_CREATE], 2);

    tu_xprt_close(&hold);
    tu_xprt_close(&y);
    tu_xprt_close(&z);
    tu_nfsrv_stop(&si);
}

static void test_reverse_order(void)
{
    struct tu_nfsrv si;
    struct tu_xprt x;
    struct krpc_reply rep;
    struct nfs3_fh fh;

    /* Four workers: two calls of one connection run at once. */
    REQUIRE(srv_start(&si, 4, DELAY_MS) == 0);
    REQUIRE(make_file(&si, "order", &fh) == 0);
    REQUIRE(raw_open(&x, si.port) == 0);
    REQUIRE(send_commit(&x, 300, &fh) == 0);
    REQUIRE(send_getattr(&x, 301, &fh) == 0);

    REQUIRE(raw_recv(&x, &rep) == 0);
    CHECK_EQ(rep.hdr.xid, 301);
    CHECK_EQ(reply_status(&rep), NFS3_OK);
    krpc_reply_free(&rep);
    CHECK_EQ(srv_stats(&si).syncs, 0);
    REQUIRE(raw_recv(&x, &rep) == 0);
    CHECK_EQ(rep.hdr.xid, 300);
    CHECK_EQ(reply_status(&rep), NFS3_OK);
    krpc_reply_free(&rep);
    CHECK_EQ(srv_stats(&si).syncs, 1);
    tu_xprt_close(&x);
    tu_nfsrv_stop(&si);
}

static void test_write_no_copy(void)
{
    const size_t n = 1u << 20;
    const uint64_t payload_pages = n / MB_PAGE_SIZE;
    struct tu_nfsrv si;
    struct tu_xprt x;
    struct krpc_reply rep;
    struct nfs3_fh fh;
    struct nfs3_write_args wa;
    struct nfs3_write_res wr;
    struct mb_chain args;
    struct mb_pool_stats p0, p1;
    struct nfs3_srv_stats s0;
    unsigned char *buf, *back;
    char path[PATH_MAX + 64];
    uint64_t allocs;
    int fd;

    REQUIRE(srv_start(&si, 2, 0) == 0);
    REQUIRE(make_file(&si, "nocopy", &fh) == 0);
    buf = malloc(n);
    back = malloc(n);
    REQUIRE(buf != NULL && back != NULL);
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)(i * 13 + (i >> 12));

    /* The client's message is built before counting: what is counted is
     * the server's receiving, decoding, work and reply (and the client's
     * small reply). */
    memset(&wa, 0, sizeof(wa));
    wa.fh = fh;
    wa.count = (uint32_t)n;
    wa.stable = NFS3_FILE_SYNC;
    mb_chain_init(&wa.data);
    REQUIRE(mb_chain_append_bytes(&wa.data, buf, n) == 0);
    REQUIRE(ENCODE(&args, nfs3_enc_write_args, &wa) == 0);
    REQUIRE(raw_open(&x, si.port) == 0);
    s0 = srv_stats(&si);
    mb_pool_get_stats(&p0);
    REQUIRE(raw_send(&x, 400, NFS3_PROC_WRITE, &args) == 0);
    REQUIRE(raw_recv(&x, &rep) == 0);
    mb_pool_get_stats(&p1);
    CHECK_EQ(rep.hdr.xid, 400);
    CHECK_EQ(nfs3_dec_write_res(&rep.res, &wr), 0);
    krpc_reply_free(&rep);
    CHECK_EQ(wr.status, NFS3_OK);
    CHECK_EQ(wr.count, n);
    CHECK_EQ(srv_stats(&si).bytes_written - s0.bytes_written, n);
    CHECK_EQ(srv_stats(&si).ops[NFS3_PROC_WRITE] - s0.ops[NFS3_PROC_WRITE], 1);

    /* Receiving 1 MiB takes one page per 4 KiB plus the rest of a receive
     * chunk; a copy of the payload into pool pages (on the loop or on the
     * worker) would take as many again. */
    allocs = p1.page_allocs - p0.page_allocs;
    fprintf(stderr, "1 MiB WRITE through the pool: %llu page allocations (payload %llu pages)\n",
            (unsigned long long)allocs, (unsigned long long)payload_pages);
    CHECK(allocs >= payload_pages);
    CHECK(allocs < payload_pages + payload_pages / 2);

    snprintf(path, sizeof(path), "%s/nocopy", g_export);
    fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    if (fd >= 0) {
        CHECK_EQ(pread(fd, back, n, 0), (ssize_t)n);
        CHECK(memcmp(buf, back, n) == 0);
        close(fd);
    }
    free(buf);
    free(back);
    tu_xprt_close(&x);
    tu_nfsrv_stop(&si);
}

int main(void)
{
    if (tu_mkdtemp(g_base, sizeof(g_base), "nfs3-pool") != 0)
        return 1;
    snprintf(g_export, sizeof(g_export), "%s/export", g_base);
    snprintf(g_state, sizeof(g_state), "%s/state", g_base);
    if (mkdir(g_export, 0755) != 0) {
        perror(g_export);
        return 1;
    }
    TEST_RUN(test_per_conn_limit_two);
    TEST_RUN(test_per_conn_limit_default);
    TEST_RUN(test_drc_in_pool);
    TEST_RUN(test_reverse_order);
    TEST_RUN(test_write_no_copy);
    tu_rmtree(g_base);
    return test_summary();
}
