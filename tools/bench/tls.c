/*
 * tools/bench/tls.c - rpctls-bench tls: the record layer's TX modes against
 * the raw speed of the AEAD engines, on the same data in one run.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rpctls/ktls.h"

#include "bench.h"

#define CHUNK_BYTES (256 * 1024) /* a working-set chunk; by default handed whole to one ktls_tx_seal, as ktls_send does */

struct tls_opts {
    int modes[4];    /* which enum ktls_tx_mode to run */
    enum ktls_cipher cipher;
    const struct ktls_aead_engine *engine;
    size_t record_size;
    uint64_t total;
    size_t working_set;
    size_t batch;    /* plaintext per ktls_tx_seal in the mode rows (a divisor of CHUNK_BYTES or CHUNK_BYTES) */
    int scatter;     /* working-set pages one to a link and never adjacent */
    int shared;      /* 1 shared, 0 exclusive, -1 both */
    int rounds;
    int json;
};

struct row {
    const char *mode;
    const char *engine;
    int shared;
    uint64_t bytes;
    double seconds; /* wall */
    double cpu;     /* this thread's CPU seconds: what the row cost */
    uint64_t records;
    uint64_t pages_allocated;
    uint64_t record_buffers;
    int64_t arena_allocs;
    int64_t obj_mallocs;
};

/* GB per CPU second of the sealing thread. */
static double gbps(const struct row *r)
{
    return r->cpu > 0 ? (double)r->bytes / r->cpu / 1e9 : 0;
}

static double wall_gbps(const struct row *r)
{
    return r->seconds > 0 ? (double)r->bytes / r->seconds / 1e9 : 0;
}

/*
 * The working set: chunks of CHUNK_BYTES, each its own chain of page
 * vectors. Chunk size is a multiple of a page-vector store, so a chunk owns
 * its stores alone (exclusive) until the benchmark adds a reference.
 */
struct working_set {
    struct mb_chain *chunks;
    size_t nchunks;
};

static int ws_build(struct working_set *ws, size_t bytes, int scatter)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int ret;

    ws->nchunks = bytes / CHUNK_BYTES;
    if (ws->nchunks == 0)
        ws->nchunks = 1;
    if ((ws->chunks = calloc(ws->nchunks, sizeof(*ws->chunks))) == NULL)
        return -ENOMEM;
    /* Scattered: the pages are dealt out one at a time, round robin, so
     * that no two pages of a chunk are adjacent (data that came in pieces,
     * or pool pages after churn); a record's source is then four pieces. */
    for (size_t j = 0; scatter && j < CHUNK_BYTES / MB_PAGE_SIZE; j++)
        for (size_t i = 0; i < ws->nchunks; i++)
            if ((ret = mb_append_pages(&ws->chunks[i], 0, MB_PAGE_SIZE)) != 0)
                return ret;
    for (size_t i = 0; i < ws->nchunks; i++) {
        struct iovec iov[CHUNK_BYTES / MB_PAGE_SIZE];
        int n;
        if (!scatter && (ret = mb_append_pages(&ws->chunks[i], 0, CHUNK_BYTES)) != 0)
            return ret;
        n = mb_chain_to_iovec(&ws->chunks[i], 0, CHUNK_BYTES, iov, CHUNK_BYTES / MB_PAGE_SIZE);
        for (int k = 0; k < n; k++) {
            uint64_t *p = iov[k].iov_base;
            for (size_t j = 0; j < iov[k].iov_len / 8; j++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                p[j] = x;
            }
        }
    }
    return 0;
}

static void ws_free(struct working_set *ws)
{
    for (size_t i = 0; i < ws->nchunks; i++)
        mb_chain_free(&ws->chunks[i]);
    free(ws->chunks);
}

/* After an exclusive in-place or out-of-place seal, the record bodies in
 * out become the chunk again (so the working set stays exclusively owned
 * and the same size): header and trailer are dropped. */
static int ws_take_back(struct mb_chain *chunk, struct mb_chain *out, size_t record_size)
{
    size_t off = 0;
    int ret = 0;

    while (off < out->len && ret == 0) {
        size_t rec = out->len - off - KTLS_HDR_LEN - 1 - KTLS_AEAD_TAG_LEN;
        if (rec > record_size)
            rec = record_size;
        ret = mb_chain_copy_ref(chunk, out, off + KTLS_HDR_LEN, rec);
        off += KTLS_HDR_LEN + rec + 1 + KTLS_AEAD_TAG_LEN;
    }
    mb_chain_free(out);
    return ret;
}

static int run_mode(const struct tls_opts *o, struct working_set *ws, enum ktls_tx_mode mode, int shared,
                    struct row *r)
{
    uint8_t s1[48] = {1}, s2[48] = {2};
    struct ktls_conn_params prm = {.cipher = o->cipher, .tx_secret = s1, .rx_secret = s2, .engine = o->engine,
                                   .tx_mode = mode, .max_record = o->record_size};
    struct mb_pool_stats p0, p1;
    struct ktls_conn *c;
    uint64_t done = 0;
    size_t i = 0;
    double t0;
    int ret;

    if ((ret = ktls_conn_new(&prm, &c)) != 0)
        return ret;
    /* Warm-up: one pass over a few chunks fills the pool's caches. */
    for (size_t k = 0; k < 8 && k < ws->nchunks; k++) {
        struct mb_chain plain = MB_CHAIN_INIT, out = MB_CHAIN_INIT;
        mb_chain_copy_ref(&plain, &ws->chunks[k], 0, ws->chunks[k].len);
        ktls_tx_seal(c, &plain, &out);
        mb_chain_free(&out);
    }
    mb_pool_get_stats(&p0);
    uint64_t pages0 = ktls_conn_stats(c)->tx_pages_allocated, recbufs0 = ktls_conn_stats(c)->tx_record_buffers;
    double c0 = bench_thread_cpu();
    uint64_t recs0 = ktls_conn_stats(c)->tx_records_inplace + ktls_conn_stats(c)->tx_records_outofplace +
                     ktls_conn_stats(c)->tx_records_copied;
    t0 = bench_now();
    while (done < o->total && ret == 0) {
        struct mb_chain *chunk = &ws->chunks[i], whole = MB_CHAIN_INIT;
        size_t len = chunk->len;

        /* The chunk goes to ktls_tx_seal o->batch bytes at a time, each
         * batch's records dropped (shared: as writev would, then the
         * buffers go back) or taken back (exclusive) before the next. */
        if (!shared) {
            whole = *chunk;
            mb_chain_init(chunk);
        }
        for (size_t off = 0; off < len && ret == 0; off += o->batch) {
            struct mb_chain plain = MB_CHAIN_INIT, out = MB_CHAIN_INIT;
            size_t n = len - off < o->batch ? len - off : o->batch;

            if (shared) {
                ret = mb_chain_copy_ref(&plain, chunk, off, n);
            } else {
                plain = whole;
                mb_chain_init(&whole);
                if (n < plain.len)
                    ret = mb_chain_split(&plain, n, &whole);
            }
            if (ret == 0)
                ret = ktls_tx_seal(c, &plain, &out);
            mb_chain_free(&plain);
            if (ret == 0 && shared)
                mb_chain_free(&out);
            else if (ret == 0)
                ret = ws_take_back(chunk, &out, o->record_size);
            mb_chain_free(&out);
        }
        mb_chain_free(&whole);
        done += len;
        i = (i + 1) % ws->nchunks;
    }
    r->seconds = bench_now() - t0;
    r->cpu = bench_thread_cpu() - c0;
    mb_pool_get_stats(&p1);
    r->mode = ktls_tx_mode_name(mode);
    r->engine = ktls_conn_engine(c)->name;
    r->shared = shared;
    r->bytes = done;
    r->pages_allocated = ktls_conn_stats(c)->tx_pages_allocated - pages0;
    r->record_buffers = ktls_conn_stats(c)->tx_record_buffers - recbufs0;
    r->records = ktls_conn_stats(c)->tx_records_inplace + ktls_conn_stats(c)->tx_records_outofplace +
                 ktls_conn_stats(c)->tx_records_copied - recs0;
    r->arena_allocs = (int64_t)(p1.arena_allocs - p0.arena_allocs);
    r->obj_mallocs = (int64_t)(p1.obj_mallocs - p0.obj_mallocs);
    ktls_conn_free(c);
    return ret;
}

/* The raw rows: RAW_INPLACE and RAW_OOP are the references the record
 * layer is held to (each mode against the raw row doing the same memory
 * traffic); RAW_RING has no target and splits the out-of-place gap in two. */
enum raw_kind {
    RAW_INPLACE, /* "raw": in place */
    RAW_OOP,     /* "raw-oop": into one reused, contiguous, page-aligned buffer, the warmest destination there can
                  * be (one buffer, not pool pages: four pages that happen not to be adjacent make the engine
                  * run four updates per record, ~25% slower, and raw-oop flipped between the two by round) */
    RAW_RING,    /* "raw-ring": into a ring of one batch's record buffers, the ciphertext where the record
                  * layer puts it: the destination traffic of outofplace without its code */
    RAW_KINDS
};
static const char *const raw_names[RAW_KINDS] = {"raw", "raw-oop", "raw-ring"};
#define RING_LEAD 64               /* the record layer's ciphertext offset in a record buffer (tx.c TX_REC_LEAD + header) */

/* Raw engine speed on the same working set: seals of record-size pieces,
 * nothing else. */
static int run_raw(const struct tls_opts *o, struct working_set *ws, const struct ktls_aead_engine *e,
                   enum raw_kind kind, struct row *r)
{
    uint8_t *dstbuf = NULL;
    int oop = kind != RAW_INPLACE;
    size_t nring = kind == RAW_RING ? (o->batch + o->record_size - 1) / o->record_size : 0;
    void **ring = NULL;
    uint8_t key[KTLS_AEAD_MAX_KEY_LEN] = {7}, nonce[KTLS_AEAD_IV_LEN] = {0}, aad[KTLS_HDR_LEN] = {23, 3, 3, 0, 0},
            tag[KTLS_AEAD_TAG_LEN];
    struct ktls_aead_key *k;
    uint64_t done = 0, records = 0;
    size_t i = 0;
    double t0;
    int ret;

    if ((ret = e->key_new(o->cipher, key, &k)) != 0)
        return ret;
    if (kind == RAW_OOP) {
        if ((dstbuf = aligned_alloc(MB_PAGE_SIZE, KTLS_MAX_PLAINTEXT)) == NULL) {
            e->key_free(k);
            return -ENOMEM;
        }
        memset(dstbuf, 0, KTLS_MAX_PLAINTEXT);
    }
    if (kind == RAW_RING) {
        if ((ring = calloc(nring, sizeof(*ring))) == NULL) {
            e->key_free(k);
            return -ENOMEM;
        }
        for (size_t j = 0; j < nring; j++)
            if ((ring[j] = mb_rec_alloc()) == NULL)
                ret = -ENOMEM;
        if (ret != 0) {
            for (size_t j = 0; j < nring; j++)
                mb_rec_free(ring[j]);
            free(ring);
            e->key_free(k);
            return ret;
        }
    }
    double c0 = bench_thread_cpu();
    t0 = bench_now();
    while (done < o->total) {
        struct mb_chain *chunk = &ws->chunks[i];
        for (size_t off = 0; off < chunk->len; off += o->record_size) {
            struct iovec iov[64];
            size_t n = chunk->len - off < o->record_size ? chunk->len - off : o->record_size;
            int niov = mb_chain_to_iovec(chunk, off, n, iov, 64);
            if (niov < 0) {
                ret = niov;
                goto exit;
            }
            nonce[11] = (uint8_t)records;
            if (kind == RAW_RING) {
                /* Each record into the next buffer of the ring, as a batch's
                 * records each take their own. */
                struct iovec d = {(uint8_t *)ring[records % nring] + RING_LEAD, n};
                ret = e->seal(k, nonce, aad, sizeof(aad), iov, niov, &d, 1, tag);
            } else if (oop) {
                struct iovec d = {dstbuf, n};
                ret = e->seal(k, nonce, aad, sizeof(aad), iov, niov, &d, 1, tag);
            } else {
                ret = e->seal(k, nonce, aad, sizeof(aad), iov, niov, iov, niov, tag);
            }
            if (ret != 0)
                goto exit;
            records++;
            done += n;
        }
        i = (i + 1) % ws->nchunks;
    }
exit:
    r->seconds = bench_now() - t0;
    r->cpu = bench_thread_cpu() - c0;
    r->mode = raw_names[kind];
    r->engine = e->name;
    r->shared = -1;
    r->bytes = done;
    r->records = records;
    e->key_free(k);
    free(dstbuf);
    for (size_t j = 0; ring != NULL && j < nring; j++)
        mb_rec_free(ring[j]);
    free(ring);
    return ret;
}

#define MAX_ROWS 12
#define MAX_ROUNDS 32

/* One row over the rounds: the best (highest GB per CPU second) and the
 * lowest, so that every figure comes with its spread. */
struct rowset {
    struct row best, worst;
    double sum;
    int n;
};

static void rowset_add(struct rowset *rs, const struct row *r)
{
    if (rs->n == 0 || gbps(r) > gbps(&rs->best))
        rs->best = *r;
    if (rs->n == 0 || gbps(r) < gbps(&rs->worst))
        rs->worst = *r;
    rs->sum += gbps(r);
    rs->n++;
}

static void print_row(const struct tls_opts *o, const struct rowset *rs)
{
    const struct row *r = &rs->best;
    const char *sh = r->shared < 0 ? "-" : (r->shared ? "shared" : "exclusive");

    if (o->json) {
        printf("{\"bench\":\"tls\",\"mode\":\"%s\",\"engine\":\"%s\",\"cipher\":\"%s\",\"shared\":%s,"
               "\"record_size\":%zu,\"batch\":%zu,\"scatter\":%s,\"working_set\":%zu,\"bytes\":%llu,\"seconds\":%.6f,\"cpu_seconds\":%.6f,"
               "\"gbps\":%.3f,\"gbps_worst\":%.3f,\"wall_gbps\":%.3f,\"rounds\":%d,"
               "\"records\":%llu,\"pages_allocated\":%llu,\"record_buffers\":%llu,\"arena_allocs_delta\":%lld,"
               "\"obj_mallocs_delta\":%lld}\n",
               r->mode, r->engine, ktls_cipher_name(o->cipher), r->shared < 0 ? "null" : (r->shared ? "true" : "false"),
               o->record_size, o->batch, o->scatter ? "true" : "false", o->working_set, (unsigned long long)r->bytes, r->seconds, r->cpu, gbps(r),
               gbps(&rs->worst), wall_gbps(r), rs->n, (unsigned long long)r->records,
               (unsigned long long)r->pages_allocated, (unsigned long long)r->record_buffers,
               (long long)r->arena_allocs, (long long)r->obj_mallocs);
    } else {
        printf("%-10s %-8s %-9s %6.2f GB/s (worst %5.2f, wall %5.2f) %7llu records %7llu pages %7llu recbufs  "
               "arena+%lld malloc+%lld\n",
               r->mode, r->engine, sh, gbps(r), gbps(&rs->worst), wall_gbps(r), (unsigned long long)r->records,
               (unsigned long long)r->pages_allocated, (unsigned long long)r->record_buffers,
               (long long)r->arena_allocs, (long long)r->obj_mallocs);
    }
}

/* A ratio of two rows: of their best figures, and its range over the rounds
 * (each round's pair, run back to back). */
static void print_ratio(const char *name, const struct rowset *a, const struct rowset *b, int a_k, int b_k,
                        const struct row rounds[][MAX_ROWS], int nrounds, const char *target, double goal, int at_least)
{
    double best = gbps(&a->best) / gbps(&b->best), lo = 0, hi = 0;

    for (int i = 0; i < nrounds; i++) {
        double v = gbps(&rounds[i][a_k]) / gbps(&rounds[i][b_k]);
        if (i == 0 || v < lo)
            lo = v;
        if (i == 0 || v > hi)
            hi = v;
    }
    printf("  %-28s %.3f  (per round %.3f..%.3f)", name, best, lo, hi);
    if (target != NULL)
        printf("   target %s %.2f: %s", at_least ? ">=" : "<=", goal,
               (at_least ? best >= goal : best <= goal) ? "met" : "NOT met");
    (void)target;
    printf("\n");
}

static void tls_usage(FILE *f)
{
    fprintf(f,
            "usage: rpctls-bench tls [options]\n"
            "Seals --total bytes in records from a page-vector working set, per TX mode,\n"
            "and the raw seal speed of every AEAD engine on the same data, in one run.\n"
            "  --mode M          unsafe-inplace|outofplace|copy|auto|all (default all)\n"
            "  --cipher C        aes128gcm|aes256gcm|chacha20 (default aes128gcm)\n"
            "  --engine E        openssl|ipsecmb|auto: engine for the raw and mode rows (default auto)\n"
            "  --record-size N   plaintext bytes per record, 1..16384 (default 16384)\n"
            "  --total BYTES     bytes sealed per row (default 1G; suffixes K M G)\n"
            "  --working-set B   page-vector working set (default 256M, above the LLC)\n"
            "  --scatter         no two working-set pages of a chunk adjacent in memory\n"
            "  --batch BYTES     plaintext per ktls_tx_seal in the mode rows, records dropped\n"
            "                    before the next batch (default 256K, as ktls_send; 16K seals\n"
            "                    and drops record by record)\n"
            "  --shared          pages shared (reference count 2), as a mirrored or retained write\n"
            "  --exclusive       pages owned by the sender alone\n"
            "                    (default: both)\n"
            "  --rounds N        repeat all rows N times, report each row's best and worst (default 3)\n"
            "Speeds are GB per CPU second of the sealing thread (wall speed shown too):\n"
            "on a shared machine that leaves out the time other tenants held the CPU.\n"
            "  --json            one JSON object per row\n");
}

int bench_tls(int argc, char **argv)
{
    static const struct option lopts[] = {
        {"mode", required_argument, NULL, 'm'},     {"cipher", required_argument, NULL, 'c'},
        {"engine", required_argument, NULL, 'e'},   {"record-size", required_argument, NULL, 'r'},
        {"total", required_argument, NULL, 't'},    {"working-set", required_argument, NULL, 'w'},
        {"shared", no_argument, NULL, 's'},         {"exclusive", no_argument, NULL, 'x'},
        {"rounds", required_argument, NULL, 'n'},   {"json", no_argument, NULL, 'j'},
        {"batch", required_argument, NULL, 'b'},    {"scatter", no_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    struct tls_opts o = {.modes = {1, 1, 1, 1}, .cipher = KTLS_AES_128_GCM_SHA256, .record_size = 16384,
                         .total = 1ull << 30, .working_set = 256u << 20, .batch = CHUNK_BYTES, .shared = -1,
                         .rounds = 3};
    const char *engine_name = "auto";
    struct working_set ws = {0};
    uint64_t v;
    int opt, ret = 0;

    while ((opt = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        switch (opt) {
        case 'm':
            if (bench_parse_modes(optarg, o.modes) != 0)
                return 2;
            break;
        case 'c':
            if (ktls_cipher_from_name(optarg, &o.cipher) != 0) {
                fprintf(stderr, "rpctls-bench: unknown cipher '%s'\n", optarg);
                return 2;
            }
            break;
        case 'e':
            engine_name = optarg;
            break;
        case 'r':
            if (tool_parse_size(optarg, BENCH_SIZE, &v) != 0 || v == 0 || v > KTLS_MAX_PLAINTEXT) {
                fprintf(stderr, "rpctls-bench: --record-size must be 1..16384\n");
                return 2;
            }
            o.record_size = (size_t)v;
            break;
        case 't':
            if (tool_parse_size(optarg, BENCH_SIZE, &v) != 0 || v == 0) {
                fprintf(stderr, "rpctls-bench: bad --total '%s'\n", optarg);
                return 2;
            }
            o.total = v;
            break;
        case 'w':
            if (tool_parse_size(optarg, BENCH_SIZE, &v) != 0 || v < CHUNK_BYTES) {
                fprintf(stderr, "rpctls-bench: --working-set must be at least %d bytes\n", CHUNK_BYTES);
                return 2;
            }
            o.working_set = (size_t)v;
            break;
        case 'b':
            if (tool_parse_size(optarg, BENCH_SIZE, &v) != 0 || v == 0 || v > CHUNK_BYTES || CHUNK_BYTES % v != 0) {
                fprintf(stderr, "rpctls-bench: --batch must divide %d\n", CHUNK_BYTES);
                return 2;
            }
            o.batch = (size_t)v;
            break;
        case 'S':
            o.scatter = 1;
            break;
        case 's':
            o.shared = o.shared == 0 ? -1 : 1;
            break;
        case 'x':
            o.shared = o.shared == 1 ? -1 : 0;
            break;
        case 'n':
            o.rounds = atoi(optarg);
            if (o.rounds < 1) {
                fprintf(stderr, "rpctls-bench: --rounds must be at least 1\n");
                return 2;
            }
            break;
        case 'j':
            o.json = 1;
            break;
        case 'h':
            tls_usage(stdout);
            return 0;
        default:
            tls_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "rpctls-bench: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if ((o.engine = ktls_aead_find(strcmp(engine_name, "auto") == 0 ? NULL : engine_name)) == NULL ||
        !o.engine->supports(o.cipher)) {
        fprintf(stderr, "rpctls-bench: engine '%s' is not available for %s\n", engine_name,
                ktls_cipher_name(o.cipher));
        return 2;
    }
    if (strcmp(engine_name, "auto") == 0)
        o.engine = ktls_aead_default(o.cipher);

    if ((ret = ws_build(&ws, o.working_set, o.scatter)) != 0) {
        fprintf(stderr, "rpctls-bench: cannot build a %zu-byte working set: %s\n", o.working_set, strerror(-ret));
        return 1;
    }

    if (o.rounds > MAX_ROUNDS)
        o.rounds = MAX_ROUNDS;
    /* Rows: the raw engine (in place, out of place), then each mode for each
     * sharing; every round runs them all back to back. */
    static struct row rounds[MAX_ROUNDS][MAX_ROWS];
    struct rowset rs[MAX_ROWS];
    int nrows = 0;
    memset(rs, 0, sizeof(rs));
    for (int round = 0; round < o.rounds && ret == 0; round++) {
        int k = 0;
        for (int kind = 0; kind < RAW_KINDS && ret == 0; kind++) {
            struct row r = {0};
            ret = run_raw(&o, &ws, o.engine, (enum raw_kind)kind, &r);
            rounds[round][k] = r;
            rowset_add(&rs[k++], &r);
        }
        for (int sh = 1; sh >= 0 && ret == 0; sh--) {
            if (o.shared >= 0 && o.shared != sh)
                continue;
            for (int m = 0; m < 4 && ret == 0; m++) {
                static const enum ktls_tx_mode order[4] = {KTLS_TX_UNSAFE_INPLACE, KTLS_TX_OUTOFPLACE, KTLS_TX_COPY,
                                                           KTLS_TX_AUTO};
                struct row r = {0};
                if (!o.modes[order[m]])
                    continue;
                /* An exclusive row leaves the working set made of its own
                 * output pages: give every exclusive row a fresh one, so no
                 * row inherits another's page layout. */
                if (!sh) {
                    ws_free(&ws);
                    if ((ret = ws_build(&ws, o.working_set, o.scatter)) != 0)
                        break;
                }
                ret = run_mode(&o, &ws, order[m], sh, &r);
                rounds[round][k] = r;
                rowset_add(&rs[k++], &r);
            }
        }
        nrows = k;
    }
    if (ret != 0) {
        fprintf(stderr, "rpctls-bench: run failed: %s\n", strerror(-ret));
        ws_free(&ws);
        return 1;
    }
    if (!o.json)
        printf("rpctls-bench tls: %s, %zu-byte records, %zu KiB per seal, %.2f GiB per row from a %zu MiB%s working set, "
               "%d rounds;\n"
               "GB per CPU second of the sealing thread, best round (worst round, best round's wall speed)\n",
               ktls_cipher_name(o.cipher), o.record_size, o.batch >> 10, (double)o.total / (1 << 30), o.working_set >> 20,
               o.scatter ? " scattered" : "", o.rounds);
    for (int k = 0; k < nrows; k++)
        print_row(&o, &rs[k]);

    if (!o.json) {
        /* Ratios named in the targets, where the rows exist. */
        int raw = -1, rawoop = -1, rawring = -1, in = -1, oop = -1, cp = -1, au = -1, autox = -1;
        for (int k = 0; k < nrows; k++) {
            const struct row *r = &rs[k].best;
            if (r->shared < 0 && strcmp(r->mode, "raw") == 0)
                raw = k;
            else if (r->shared < 0 && strcmp(r->mode, "raw-oop") == 0)
                rawoop = k;
            else if (r->shared < 0)
                rawring = k;
            else if (r->shared == 1 && strcmp(r->mode, "unsafe-inplace") == 0)
                in = k;
            else if (r->shared == 1 && strcmp(r->mode, "outofplace") == 0)
                oop = k;
            else if (r->shared == 1 && strcmp(r->mode, "copy") == 0)
                cp = k;
            else if (r->shared == 1 && strcmp(r->mode, "auto") == 0)
                au = k;
            else if (r->shared == 0 && strcmp(r->mode, "auto") == 0)
                autox = k;
        }
        printf("ratios (shared pages, %s; the record layer against the raw cipher doing the same memory traffic):\n",
               o.engine->name);
        if (oop >= 0 && rawoop >= 0)
            print_ratio("outofplace / raw-oop", &rs[oop], &rs[rawoop], oop, rawoop, rounds, o.rounds, "", 0.95, 1);
        if (in >= 0 && raw >= 0)
            print_ratio("inplace / raw", &rs[in], &rs[raw], in, raw, rounds, o.rounds, "", 0.95, 1);
        if (oop >= 0 && cp >= 0)
            print_ratio("outofplace / copy", &rs[oop], &rs[cp], oop, cp, rounds, o.rounds, "", 1.20, 1);
        if (au >= 0 && cp >= 0)
            print_ratio("auto / copy", &rs[au], &rs[cp], au, cp, rounds, o.rounds, NULL, 0, 1);
        if (oop >= 0 && in >= 0)
            print_ratio("outofplace / inplace", &rs[oop], &rs[in], oop, in, rounds, o.rounds, NULL, 0, 1);
        if (oop >= 0 && rawring >= 0)
            print_ratio("outofplace / raw-ring (code)", &rs[oop], &rs[rawring], oop, rawring, rounds, o.rounds, NULL, 0,
                        1);
        if (rawring >= 0 && rawoop >= 0)
            print_ratio("raw-ring / raw-oop (batch)", &rs[rawring], &rs[rawoop], rawring, rawoop, rounds, o.rounds,
                        NULL, 0, 1);
        if (rawoop >= 0 && raw >= 0)
            print_ratio("raw-oop / raw (the machine)", &rs[rawoop], &rs[raw], rawoop, raw, rounds, o.rounds, NULL, 0, 1);
        if (autox >= 0 && raw >= 0)
            print_ratio("auto (exclusive) / raw", &rs[autox], &rs[raw], autox, raw, rounds, o.rounds, NULL, 0, 1);
    }
    ws_free(&ws);
    if (mb_pool_shutdown() != 0) {
        fprintf(stderr, "rpctls-bench: pool pages still in use at exit\n");
        return 1;
    }
    return 0;
}

