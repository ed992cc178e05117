/*
 * tools/bench/rpc.c - rpctls-bench rpc: NULL call rate and bulk argument
 * throughput of the RPC runtime over loopback, plain TCP and RPC-with-TLS,
 * every TX mode side by side in one run.
 *
 * The server runs on its own loop in a second thread, so client and server
 * share the machine's two cores as a real pair would share two machines'
 * worth of work: each side's encryption or decryption comes on top of the
 * kernel's copies. Bulk arguments are 1 MiB slices of a page-vector working
 * set larger than the last-level cache, linked into each call by reference
 * (the client retains every call, so the pages are shared: auto encrypts
 * them out of place).
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rpctls/krpc_clnt.h"
#include "rpctls/krpc_svc.h"
#include "rpctls/pki.h"

#include "bench.h"

#define BENCH_PROG 0x40000ec0u
#define BENCH_VERS 1
#define BENCH_PROC_SINK 1 /* opaque<> in, nothing out */

struct rpc_opts {
    int plain, tls;
    int modes[4];
    unsigned outstanding;   /* bulk rows; NULL rows always run 1 and 32 */
    size_t arg_size;
    uint64_t total;         /* argument bytes per bulk row */
    unsigned null_calls;    /* calls per NULL row */
    size_t working_set;
    int rounds;
    int json;
};

struct rpc_row {
    const char *transport;
    const char *mode;
    unsigned outstanding;
    size_t arg_size;
    uint64_t calls;
    double seconds;
    double cpu;       /* process CPU seconds (client and server threads, user + system) */
    double cpu_worst; /* the same for the slowest round (per GiB, scaled to this row's bytes) */
    uint64_t retransmits;
};

static double cpu_per_gib(const struct rpc_row *r, double cpu)
{
    double gib = (double)r->calls * (double)r->arg_size / (1u << 30);
    return gib > 0 ? cpu / gib : 0;
}

/* ---- server ----------------------------------------------------------------- */

struct bench_srv {
    struct krpc_loop *loop;
    struct krpc_svc *svc;
    pthread_t thread;
    int done;
    uint16_t port;
};

static int proc_sink(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res, void *arg)
{
    struct mb_chain data = MB_CHAIN_INIT;
    int ret = krpc_xdr_get_opaque_ref(args, 64u << 20, &data);

    (void)req, (void)res, (void)arg;
    mb_chain_free(&data);
    return ret == 0 ? KRPC_SUCCESS : KRPC_GARBAGE_ARGS;
}

static void *srv_main(void *arg)
{
    struct bench_srv *s = arg;

    krpc_loop_run(s->loop, &s->done, -1);
    return NULL;
}

static int srv_start(struct bench_srv *s, const char *pkidir, size_t max_msg)
{
    static const struct krpc_proc_desc procs[] = {
        {NULL, KRPC_PROC_IDEMPOTENT, "null"},
        {proc_sink, KRPC_PROC_IDEMPOTENT, "sink"},
    };
    struct krpc_prog_desc prog = {BENCH_PROG, BENCH_VERS, 2, procs, NULL, 0};
    struct krpc_svc_config cfg = {0};
    static char cert[4200], key[4200];
    int ret;

    memset(s, 0, sizeof(*s));
    snprintf(cert, sizeof(cert), "%s/server.pem", pkidir);
    snprintf(key, sizeof(key), "%s/server.key", pkidir);
    if ((ret = krpc_parse_addr("127.0.0.1:0", &cfg.addr, &cfg.addrlen)) != 0)
        return ret;
    cfg.tls = KRPC_SVC_TLS_OPTIONAL;
    cfg.tlscfg.cert_file = cert;
    cfg.tlscfg.key_file = key;
    cfg.max_msg = max_msg;
    cfg.idle_timeout_ms = -1;
    if ((ret = krpc_loop_new(&s->loop)) != 0 || (ret = krpc_svc_new(s->loop, &cfg, &s->svc)) != 0 ||
        (ret = krpc_svc_register(s->svc, &prog)) != 0)
        return ret;
    s->port = krpc_svc_port(s->svc);
    if ((ret = pthread_create(&s->thread, NULL, srv_main, s)) != 0)
        return -ret;
    return 0;
}

static void srv_stop(struct bench_srv *s)
{
    s->done = 1;
    krpc_loop_stop(s->loop);
    pthread_join(s->thread, NULL);
    krpc_svc_free(s->svc);
    krpc_loop_free(s->loop);
}

/* ---- client ----------------------------------------------------------------- */

struct run {
    struct krpc_clnt *cl;
    const struct mb_chain *chunks; /* working set: arg_size slices */
    size_t nchunks, next_chunk;
    size_t arg_size;
    unsigned outstanding, inflight;
    uint64_t target, issued, completed;
    int err;
    int done;
};

static void issue(struct run *r);

static void call_done(struct krpc_clnt *cl, int status, struct krpc_reply *reply, void *arg)
{
    struct run *r = arg;
    char msg[128];

    (void)cl;
    if (status == 0)
        status = krpc_reply_status(&reply->hdr, msg, sizeof(msg));
    if (status != 0 && r->err == 0)
        r->err = status;
    r->inflight--;
    r->completed++;
    if (r->err != 0 || r->completed == r->target)
        r->done = 1;
    else
        issue(r);
}

static void issue(struct run *r)
{
    while (r->err == 0 && r->inflight < r->outstanding && r->issued < r->target) {
        struct mb_chain args = MB_CHAIN_INIT, data = MB_CHAIN_INIT;
        uint32_t proc = 0;
        int ret;

        if (r->arg_size > 0) {
            struct krpc_xdr_enc x;
            const struct mb_chain *src = &r->chunks[r->next_chunk];
            r->next_chunk = (r->next_chunk + 1) % r->nchunks;
            krpc_xdr_enc_init(&x, &args);
            if ((ret = mb_chain_copy_ref(&data, src, 0, src->len)) != 0) {
                r->err = ret;
                break;
            }
            krpc_xdr_put_opaque_chain(&x, &data);
            if ((ret = krpc_xdr_enc_error(&x)) != 0) {
                mb_chain_free(&args);
                r->err = ret;
                break;
            }
            proc = BENCH_PROC_SINK;
        }
        if ((ret = krpc_call_async(r->cl, proc, &args, call_done, r, NULL)) != 0) {
            r->err = ret;
            break;
        }
        r->inflight++;
        r->issued++;
    }
    if (r->err != 0 && r->inflight == 0)
        r->done = 1;
}

static int run_row(const struct rpc_opts *o, const struct bench_srv *s, const char *pkidir, int tls,
                   enum ktls_tx_mode mode, unsigned outstanding, size_t arg_size, uint64_t calls,
                   const struct mb_chain *chunks, size_t nchunks, struct rpc_row *row)
{
    struct krpc_clnt_config cfg = {0};
    struct krpc_loop *loop = NULL;
    struct run r = {0};
    char ca[4200], addr[32];
    double t0;
    int ret;

    snprintf(ca, sizeof(ca), "%s/ca.pem", pkidir);
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", s->port);
    if ((ret = krpc_parse_addr(addr, &cfg.addr, &cfg.addrlen)) != 0 || (ret = krpc_loop_new(&loop)) != 0)
        return ret;
    cfg.prog = BENCH_PROG;
    cfg.vers = BENCH_VERS;
    cfg.tls = tls ? KRPC_TLS_REQUIRED : KRPC_TLS_OFF;
    cfg.tlscfg.ca_file = ca;
    cfg.tlscfg.server_name = "127.0.0.1";
    cfg.tlscfg.tx_mode = mode;
    cfg.timeout_ms = 60000; /* a benchmark measures, it does not retransmit */
    cfg.max_msg = o->arg_size + 65536;
    cfg.name = "bench";
    if ((ret = krpc_clnt_new(loop, &cfg, &r.cl)) != 0)
        goto exit;
    /* Connect, probe and handshake before the clock starts. */
    r.outstanding = 1;
    r.target = 1;
    issue(&r);
    if ((ret = krpc_loop_run(loop, &r.done, 30000)) != 0 || (ret = r.err) != 0)
        goto exit;

    r.chunks = chunks;
    r.nchunks = nchunks;
    r.arg_size = arg_size;
    r.outstanding = outstanding;
    r.target = calls;
    r.issued = r.completed = 0;
    r.done = 0;
    uint64_t retx0 = krpc_clnt_stats(r.cl)->retransmits;
    double c0 = bench_process_cpu();
    t0 = bench_now();
    issue(&r);
    ret = krpc_loop_run(loop, &r.done, 600000);
    row->seconds = bench_now() - t0;
    row->cpu = bench_process_cpu() - c0;
    if (ret == 0)
        ret = r.err;
    row->transport = tls ? "tls" : "plain";
    row->mode = tls ? ktls_tx_mode_name(mode) : "-";
    row->outstanding = outstanding;
    row->arg_size = arg_size;
    row->calls = r.completed;
    row->retransmits = krpc_clnt_stats(r.cl)->retransmits - retx0;
exit:
    if (ret != 0)
        fprintf(stderr, "rpctls-bench: rpc %s %s: %s%s%s\n", tls ? "tls" : "plain", tls ? ktls_tx_mode_name(mode) : "",
                strerror(ret < 0 ? -ret : ret), r.cl ? ": " : "", r.cl ? krpc_clnt_last_error(r.cl) : "");
    krpc_clnt_free(r.cl);
    krpc_loop_run_once(loop, 0);
    krpc_loop_free(loop);
    return ret;
}

static void print_row(const struct rpc_opts *o, const struct rpc_row *r)
{
    double cps = r->seconds > 0 ? (double)r->calls / r->seconds : 0;
    double gbps = r->seconds > 0 ? (double)r->calls * (double)r->arg_size / r->seconds / 1e9 : 0;

    if (o->json)
        printf("{\"bench\":\"rpc\",\"transport\":\"%s\",\"mode\":\"%s\",\"outstanding\":%u,\"arg_size\":%zu,"
               "\"calls\":%llu,\"seconds\":%.6f,\"calls_per_sec\":%.1f,\"gbps\":%.3f,\"cpu_seconds\":%.6f,"
               "\"cpu_s_per_gib\":%.4f,\"cpu_s_per_gib_worst\":%.4f,\"retransmits\":%llu}\n",
               r->transport, r->mode, r->outstanding, r->arg_size, (unsigned long long)r->calls, r->seconds, cps,
               gbps, r->cpu, cpu_per_gib(r, r->cpu), cpu_per_gib(r, r->cpu_worst), (unsigned long long)r->retransmits);
    else if (r->arg_size > 0)
        printf("%-6s %-10s %5u outstanding %8zu B args %9.0f calls/s %7.2f GB/s  CPU %.3f s/GiB (worst %.3f)\n",
               r->transport, r->mode, r->outstanding, r->arg_size, cps, gbps, cpu_per_gib(r, r->cpu),
               cpu_per_gib(r, r->cpu_worst));
    else
        printf("%-6s %-10s %5u outstanding %8zu B args %9.0f calls/s  (%llu calls, %.2f s)\n", r->transport,
               r->mode, r->outstanding, r->arg_size, cps, (unsigned long long)r->calls, r->seconds);
}

static void rpc_usage(FILE *f)
{
    fprintf(f,
            "usage: rpctls-bench rpc [options]\n"
            "RPC over loopback, the server on its own thread: NULL call rate with 1 and 32\n"
            "calls outstanding, and bulk throughput of large arguments, plain TCP and\n"
            "RPC-with-TLS, the TX modes side by side in one run.\n"
            "  --plain            plain TCP rows only\n"
            "  --tls              TLS rows only (default: both)\n"
            "  --mode M           unsafe-inplace|outofplace|copy|auto|all: TX modes of the TLS bulk rows\n"
            "                     (default all)\n"
            "  --outstanding N    calls in flight for the bulk rows (default 4)\n"
            "  --arg-size BYTES   bulk argument size (default 1M)\n"
            "  --total BYTES      argument bytes per bulk row (default 1G)\n"
            "  --calls N          calls per NULL row (default 20000)\n"
            "  --working-set B    page-vector working set the arguments come from (default 256M)\n"
            "  --rounds N         run every row N times, report each row's best (default 3)\n"
            "Bulk rows also give the process's CPU seconds per GiB (client and server threads,\n"
            "user + system: the kernel's TCP work for both sides included), and the run measures\n"
            "the cipher's own seal + open cost per GiB, so that (TLS - plain) / cipher says what\n"
            "the record layer and RPC runtime add on top of the cipher and the kernel.\n"
            "  --json             one JSON object per row\n");
}

int bench_rpc(int argc, char **argv)
{
    static const struct option lopts[] = {
        {"plain", no_argument, NULL, 'p'},          {"tls", no_argument, NULL, 't'},
        {"mode", required_argument, NULL, 'm'},     {"outstanding", required_argument, NULL, 'o'},
        {"arg-size", required_argument, NULL, 'a'}, {"total", required_argument, NULL, 'T'},
        {"calls", required_argument, NULL, 'c'},    {"working-set", required_argument, NULL, 'w'},
        {"json", no_argument, NULL, 'j'},           {"help", no_argument, NULL, 'h'},
        {"rounds", required_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    struct rpc_opts o = {.modes = {1, 1, 1, 1}, .outstanding = 4, .arg_size = 1u << 20, .total = 1ull << 30,
                         .null_calls = 20000, .working_set = 256u << 20, .rounds = 3};
    struct mb_chain *chunks = NULL;
    struct rpc_row rows[16];
    struct bench_srv srv;
    char pkidir[] = "/tmp/rpctls-bench-XXXXXX", err[512];
    size_t nchunks = 0;
    int nrows = 0, opt, ret = 0;
    uint64_t v;

    while ((opt = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        switch (opt) {
        case 'p': o.plain = 1; break;
        case 't': o.tls = 1; break;
        case 'm':
            if (bench_parse_modes(optarg, o.modes) != 0)
                return 2;
            break;
        case 'o':
            o.outstanding = (unsigned)atoi(optarg);
            if (o.outstanding < 1 || o.outstanding > 1024) {
                fprintf(stderr, "rpctls-bench: --outstanding must be 1..1024\n");
                return 2;
            }
            break;
        case 'a':
            if (tool_parse_size(optarg, BENCH_SIZE, &v) != 0 || v == 0 || v > (64u << 20)) {
                fprintf(stderr, "rpctls-bench: --arg-size must be 1..64M\n");
                return 2;
            }
            o.arg_size = (size_t)v;
            break;
        case 'T':
            if (tool_parse_size(optarg, BENCH_SIZE, &v) != 0 || v == 0) {
                fprintf(stderr, "rpctls-bench: bad --total '%s'\n", optarg);
                return 2;
            }
            o.total = v;
            break;
        case 'c':
            o.null_calls = (unsigned)atoi(optarg);
            if (o.null_calls < 1) {
                fprintf(stderr, "rpctls-bench: --calls must be at least 1\n");
                return 2;
            }
            break;
        case 'w':
            if (tool_parse_size(optarg, BENCH_SIZE, &v) != 0 || v == 0) {
                fprintf(stderr, "rpctls-bench: bad --working-set '%s'\n", optarg);
                return 2;
            }
            o.working_set = (size_t)v;
            break;
        case 'j': o.json = 1; break;
        case 'r':
            o.rounds = atoi(optarg);
            if (o.rounds < 1) {
                fprintf(stderr, "rpctls-bench: --rounds must be at least 1\n");
                return 2;
            }
            break;
        case 'h': rpc_usage(stdout); return 0;
        default: rpc_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "rpctls-bench: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!o.plain && !o.tls)
        o.plain = o.tls = 1;

    /* The working set: arg_size slices of page vectors, each its own chain. */
    nchunks = o.working_set / o.arg_size ? o.working_set / o.arg_size : 1;
    if ((chunks = calloc(nchunks, sizeof(*chunks))) == NULL)
        return 1;
    {
        uint64_t *buf = malloc(o.arg_size + 8);
        uint64_t x = 0x2545f4914f6cdd1dull;
        if (buf == NULL)
            return 1;
        for (size_t i = 0; i < nchunks && ret == 0; i++) {
            for (size_t k = 0; k < o.arg_size / 8 + 1; k++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                buf[k] = x;
            }
            ret = mb_chain_append_pages_from_buf(&chunks[i], buf, o.arg_size);
        }
        free(buf);
    }
    if (ret != 0 || mkdtemp(pkidir) == NULL || ktls_pki_make_dir(pkidir, 1, err, sizeof(err)) != 0) {
        fprintf(stderr, "rpctls-bench: setup failed: %s\n", ret ? strerror(-ret) : err);
        return 1;
    }
    if ((ret = srv_start(&srv, pkidir, o.arg_size + 65536)) != 0) {
        fprintf(stderr, "rpctls-bench: server: %s\n", strerror(-ret));
        return 1;
    }

    uint64_t bulk_calls = (o.total + o.arg_size - 1) / o.arg_size;
    double seal_best = 0, open_best = 0, seal_worst = 0, open_worst = 0;
    for (int round = 0; round < o.rounds && ret == 0; round++) {
        int k = 0;
        double sl, op;
        if (bench_cipher_cost(&sl, &op) == 0) {
            if (round == 0 || sl + op < seal_best + open_best)
                seal_best = sl, open_best = op;
            if (round == 0 || sl + op > seal_worst + open_worst)
                seal_worst = sl, open_worst = op;
        }
        for (int tls = 0; tls <= 1 && ret == 0; tls++) {
            if ((tls && !o.tls) || (!tls && !o.plain))
                continue;
            static const unsigned null_out[2] = {1, 32};
            static const enum ktls_tx_mode order[4] = {KTLS_TX_UNSAFE_INPLACE, KTLS_TX_OUTOFPLACE, KTLS_TX_COPY,
                                                       KTLS_TX_AUTO};
            for (int i = 0; i < 6 && ret == 0; i++) {
                struct rpc_row r = {0};
                int bulk = i >= 2;
                enum ktls_tx_mode mode = bulk ? order[i - 2] : KTLS_TX_AUTO;
                if (bulk && (tls ? !o.modes[mode] : i > 2))
                    continue;
                ret = run_row(&o, &srv, pkidir, tls, mode, bulk ? o.outstanding : null_out[i], bulk ? o.arg_size : 0,
                              bulk ? bulk_calls : o.null_calls, chunks, nchunks, &r);
                /* Keep each row's best round (by CPU per GiB for bulk rows,
                 * by rate for NULL rows), and the worst CPU per GiB: noise on
                 * a shared machine only ever slows a run down. */
                double w = round == 0 ? 0 : rows[k].cpu_worst / ((double)rows[k].calls * (double)rows[k].arg_size + 1);
                if (round == 0 || (bulk ? cpu_per_gib(&r, r.cpu) < cpu_per_gib(&rows[k], rows[k].cpu)
                                        : r.calls * rows[k].seconds > rows[k].calls * r.seconds))
                    rows[k] = r;
                double rw = r.cpu / ((double)r.calls * (double)r.arg_size + 1);
                rows[k].cpu_worst = (rw > w ? rw : w) * ((double)rows[k].calls * (double)rows[k].arg_size + 1);
                k++;
            }
        }
        nrows = k;
    }
    srv_stop(&srv);
    for (size_t i = 0; i < nchunks; i++)
        mb_chain_free(&chunks[i]);
    free(chunks);
    {
        static const char *const f[] = {"ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key"};
        char path[600];
        for (size_t i = 0; i < 6; i++) {
            snprintf(path, sizeof(path), "%s/%s", pkidir, f[i]);
            unlink(path);
        }
        rmdir(pkidir);
    }
    if (ret != 0)
        return 1;

    if (!o.json)
        printf("rpctls-bench rpc: loopback, server on its own thread, bulk %zu-byte arguments (%.2f GiB per row), "
               "%u outstanding, best of %d\n",
               o.arg_size, (double)o.total / (1 << 30), o.outstanding, o.rounds);
    for (int i = 0; i < nrows; i++)
        print_row(&o, &rows[i]);
    if (!o.json) {
        const struct rpc_row *plain = NULL, *tauto = NULL, *oop = NULL, *cp = NULL;
        double cipher = seal_best + open_best, cipher_worst = seal_worst + open_worst;
        for (int i = 0; i < nrows; i++) {
            const struct rpc_row *r = &rows[i];
            if (r->arg_size == 0)
                continue;
            if (strcmp(r->transport, "plain") == 0)
                plain = r;
            else if (strcmp(r->mode, "auto") == 0)
                tauto = r;
            else if (strcmp(r->mode, "outofplace") == 0)
                oop = r;
            else if (strcmp(r->mode, "copy") == 0)
                cp = r;
        }
        printf("cipher (%s AES-128-GCM, this run): seal %.3f + open %.3f = %.3f s/GiB (worst round %.3f)\n",
               ktls_aead_default(KTLS_AES_128_GCM_SHA256)->name, seal_best, open_best, cipher, cipher_worst);
        printf("ratios (bulk; CPU per GiB is process CPU, client + server):\n");
        for (int i = 0; plain != NULL && cipher > 0 && i < nrows; i++) {
            const struct rpc_row *r = &rows[i];
            if (r->arg_size == 0 || strcmp(r->transport, "tls") != 0)
                continue;
            double best = (cpu_per_gib(r, r->cpu) - cpu_per_gib(plain, plain->cpu)) / cipher;
            double worst = (cpu_per_gib(r, r->cpu_worst) - cpu_per_gib(plain, plain->cpu)) / cipher;
            printf("  (TLS %-10s - plain) / cipher  %.3f (worst round %.3f)", r->mode, best, worst);
            if (r == tauto)
                printf("   target <= 1.30: %s", best <= 1.30 ? "met" : "NOT met");
            printf("\n");
        }
#define RATE(r) ((double)(r)->calls / (r)->seconds)
        if (oop && cp)
            printf("  outofplace / copy: rate %.3f, CPU per GiB %.3f\n", RATE(oop) / RATE(cp),
                   cpu_per_gib(oop, oop->cpu) / cpu_per_gib(cp, cp->cpu));
        if (tauto && cp)
            printf("  auto / copy:       rate %.3f, CPU per GiB %.3f\n", RATE(tauto) / RATE(cp),
                   cpu_per_gib(tauto, tauto->cpu) / cpu_per_gib(cp, cp->cpu));
        if (tauto && plain)
            printf("  tls auto / plain:  rate %.3f (moves with the cipher's speed on each CPU; no target)\n",
                   RATE(tauto) / RATE(plain));
#undef RATE
    }
    if (mb_pool_shutdown() != 0) {
        fprintf(stderr, "rpctls-bench: pool pages still in use at exit\n");
        return 1;
    }
    return 0;
}
