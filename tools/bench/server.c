/*
 * tools/bench/server.c - rpctls-bench server: one rpctls-nfsd shared by many
 * clients (issue 8), three sets of rows side by side in one run:
 *
 *  1. aggregate WRITE throughput of 1, 4 and 16 TLS clients (rpctls-cp
 *     processes, each its own file) to one server, with --threads 1 and
 *     --threads 2;
 *  2. NULL-call latency (median, p99, max) seen by an idle TLS client that
 *     sends one NULL call every 10 ms (open loop: a stalled call does not
 *     hold back the next one) while another client (rpctls-cp) writes and
 *     COMMITs 1 GiB to a disk-backed export, with --io-threads 0 (every file
 *     system call on the event loop, the old behaviour) and with the pool;
 *  3. TLS connection setups per second against the server (TCP connect, RFC
 *     9289 probe, handshake, one NULL call, close), against raw OpenSSL TLS
 *     1.3 handshakes (an `openssl s_time -new`-style loop against an OpenSSL
 *     server thread in this process) with the same certificate and suites.
 *
 * The servers are rpctls-nfsd processes next to this program. Every row runs
 * --rounds times; the best round is reported with the spread of all rounds
 * (noise on a machine shared with other work only slows runs down).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "rpctls/krpc_clnt.h"
#include "rpctls/nfs3.h"
#include "rpctls/pki.h"

#include "bench.h"

#define MAX_LIST 8
#define MAX_ROUNDS 16

struct srv_opts {
    uint64_t size;          /* aggregate bytes per throughput row */
    unsigned clients[MAX_LIST], nclients;
    unsigned threads[MAX_LIST], nthreads;
    uint64_t commit_size;   /* latency rows: bytes client A writes and COMMITs */
    unsigned interval_ms;   /* latency rows: idle client's NULL period */
    unsigned io_threads;    /* latency rows: the pool's size */
    double setup_seconds;   /* per connection-setup row */
    const char *dir;        /* throughput exports and sources */
    const char *disk_dir;   /* the latency rows' export (disk-backed) */
    char disk_base[600];    /* our directory below disk_dir */
    int rounds;
    int do_tput, do_lat, do_setup;
    int json;
};

/* ---- rpctls-nfsd ---------------------------------------------------------- */


/* Starts rpctls-nfsd exporting exp with --threads threads and --io-threads
 * io (io < 0: the server's default), TLS optional, no client certificates. */
static int nfsd_start(struct bench_nfsd *d, const char *exp, const char *state, const char *pki, unsigned threads, int io)
{
    char th[16], iot[16];
    const char *extra[] = {"--tls", "optional", "--threads", th, "--io-threads", iot, NULL};

    snprintf(th, sizeof th, "%u", threads);
    snprintf(iot, sizeof iot, "%d", io < 0 ? 8 : io);
    return bench_nfsd_start(d, exp, state, pki, extra);
}



/* Forks rpctls-cp --tls SRC nfs://127.0.0.1:PORT/EXPORT/NAME. */
static pid_t cp_spawn(const char *src, const struct bench_nfsd *d, const char *name, const char *pki)
{
    char self[4096], prog[4200], ca[1100], url[1400];
    pid_t pid;

    if (bench_exe_dir(self, sizeof(self)) != 0)
        return -1;
    snprintf(prog, sizeof(prog), "%s/rpctls-cp", self);
    snprintf(ca, sizeof(ca), "%s/ca.pem", pki);
    snprintf(url, sizeof(url), "nfs://127.0.0.1:%u%.1100s/%.64s", d->port, d->export, name);
    if ((pid = fork()) == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        execl(prog, prog, "--tls", "--ca", ca, "--no-progress", "--timeout", "60000", src, url, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int cp_wait(pid_t pid)
{
    int status;

    if (waitpid(pid, &status, 0) != pid)
        return -errno;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "rpctls-bench: rpctls-cp failed (status %d)\n", status);
        return -EIO;
    }
    return 0;
}

/* ---- 1. aggregate throughput ---------------------------------------------- */

struct tput_row {
    unsigned threads, clients;
    uint64_t bytes;            /* all clients */
    double gbps[MAX_ROUNDS];
    int n;
};

static int run_tput(const struct srv_opts *o, const char *base, const char *pki, unsigned threads, unsigned clients,
                    struct tput_row *row)
{
    char exp[700], state[700], src[700], name[64], path[1200];
    uint64_t per = o->size / clients;
    pid_t pids[64];
    struct bench_nfsd d;
    double t0;
    int ret;

    per &= ~(uint64_t)4095;
    snprintf(exp, sizeof(exp), "%s/export-t%u", base, threads);
    snprintf(state, sizeof(state), "%s/state", base);
    snprintf(src, sizeof(src), "%s/source-%u.bin", base, clients);
    if (access(src, R_OK) != 0 && (ret = bench_write_source(src, per)) != 0)
        return ret;
    if ((ret = nfsd_start(&d, exp, state, pki, threads, -1)) != 0)
        return ret;
    t0 = bench_now();
    for (unsigned i = 0; i < clients; i++) {
        snprintf(name, sizeof(name), "client%u.bin", i);
        pids[i] = cp_spawn(src, &d, name, pki);
    }
    for (unsigned i = 0; i < clients; i++) {
        int r = pids[i] > 0 ? cp_wait(pids[i]) : -ECHILD;
        if (r != 0 && ret == 0)
            ret = r;
    }
    t0 = bench_now() - t0;
    bench_nfsd_stop(&d);
    for (unsigned i = 0; i < clients; i++) {
        snprintf(path, sizeof(path), "%s/client%u.bin", exp, i);
        unlink(path);
    }
    row->threads = threads;
    row->clients = clients;
    row->bytes = per * clients;
    if (ret == 0)
        row->gbps[row->n++] = (double)row->bytes / t0 / 1e9;
    return ret;
}

/* ---- 2. NULL latency during a 1 GiB write + COMMIT -------------------------- */

struct lat_client {
    struct krpc_loop *loop;
    struct krpc_clnt *cl;
    atomic_int stop;
    unsigned interval_ms;
    double *lat;               /* seconds, per answered call */
    size_t nlat, cap;
    double *sent;              /* send time per xid slot */
    unsigned inflight;
    int err;
    pthread_t thread;
};

struct null_call {
    struct lat_client *lc;
    double t0;
};

static void null_done(struct krpc_clnt *cl, int status, struct krpc_reply *reply, void *arg)
{
    struct null_call *c = arg;
    struct lat_client *lc = c->lc;
    char msg[128];

    (void)cl;
    if (status == 0)
        status = krpc_reply_status(&reply->hdr, msg, sizeof(msg));
    if (status != 0 && lc->err == 0)
        lc->err = status;
    if (status == 0 && lc->nlat < lc->cap)
        lc->lat[lc->nlat++] = bench_now() - c->t0;
    lc->inflight--;
    free(c);
}

static int null_send(struct lat_client *lc)
{
    struct null_call *c = malloc(sizeof(*c));
    struct mb_chain args = MB_CHAIN_INIT;
    int ret;

    if (c == NULL)
        return -ENOMEM;
    c->lc = lc;
    c->t0 = bench_now();
    if ((ret = krpc_call_async(lc->cl, 0, &args, null_done, c, NULL)) != 0) {
        free(c);
        return ret;
    }
    lc->inflight++;
    return 0;
}

static void *lat_main(void *arg)
{
    struct lat_client *lc = arg;
    double next = bench_now(), iv = lc->interval_ms / 1000.0;

    while (!atomic_load(&lc->stop) && lc->err == 0) {
        double now = bench_now();
        if (now >= next) {
            if ((lc->err = null_send(lc)) != 0)
                break;
            next += iv;
            if (next < now) /* never burst to catch up */
                next = now + iv;
            continue;
        }
        krpc_loop_run_once(lc->loop, (int)((next - now) * 1000.0) + 1);
    }
    /* Every call sent is answered before the row ends. */
    for (double t_end = bench_now() + 120; lc->inflight > 0 && lc->err == 0 && bench_now() < t_end;)
        krpc_loop_run_once(lc->loop, 100);
    if (lc->inflight > 0 && lc->err == 0)
        lc->err = -ETIMEDOUT;
    return NULL;
}

static int clnt_open(const struct bench_nfsd *d, const char *pki, struct krpc_loop **loop, struct krpc_clnt **cl)
{
    struct krpc_clnt_config cfg = {0};
    struct mb_chain args = MB_CHAIN_INIT;
    struct krpc_reply reply;
    char ca[1100], addr[32];
    int ret;

    snprintf(ca, sizeof(ca), "%s/ca.pem", pki);
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", d->port);
    if ((ret = krpc_parse_addr(addr, &cfg.addr, &cfg.addrlen)) != 0 || (ret = krpc_loop_new(loop)) != 0)
        return ret;
    cfg.prog = NFS3_PROGRAM;
    cfg.vers = 3;
    cfg.tls = KRPC_TLS_REQUIRED;
    cfg.tlscfg.ca_file = ca; /* copied by the client's context */
    cfg.tlscfg.server_name = "127.0.0.1";
    cfg.timeout_ms = 120000; /* measure, do not retransmit */
    cfg.name = "bench idle client";
    if ((ret = krpc_clnt_new(*loop, &cfg, cl)) != 0)
        return ret;
    /* Connect, probe and handshake before the clock starts. */
    if ((ret = krpc_call(*cl, 0, &args, &reply)) == 0) {
        char msg[128];
        ret = krpc_reply_status(&reply.hdr, msg, sizeof(msg));
        krpc_reply_free(&reply);
    }
    return ret;
}

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct lat_row {
    const char *label;
    unsigned threads;
    int io_threads;
    uint64_t bytes;
    int n;
    double p50[MAX_ROUNDS], p99[MAX_ROUNDS], max[MAX_ROUNDS], wall[MAX_ROUNDS];
    size_t calls[MAX_ROUNDS];
};

static int run_lat(const struct srv_opts *o, const char *base, const char *pki, const char *src, unsigned threads,
                   int io, struct lat_row *row)
{
    struct lat_client lc;
    char exp[1100], state[700], path[1300];
    struct bench_nfsd d;
    double t0;
    pid_t pid;
    int ret;

    memset(&lc, 0, sizeof(lc));
    snprintf(exp, sizeof(exp), "%s/export", o->disk_base);
    snprintf(state, sizeof(state), "%s/state", base);
    snprintf(path, sizeof(path), "%s/writer.bin", exp);
    unlink(path);
    sync(); /* no dirty pages of an earlier row left to flush */
    if ((ret = nfsd_start(&d, exp, state, pki, threads, io)) != 0)
        return ret;
    lc.interval_ms = o->interval_ms;
    lc.cap = 1 << 20;
    if ((lc.lat = malloc(lc.cap * sizeof(double))) == NULL) {
        ret = -ENOMEM;
        goto exit;
    }
    if ((ret = clnt_open(&d, pki, &lc.loop, &lc.cl)) != 0) {
        fprintf(stderr, "rpctls-bench: idle client: %s: %s\n", strerror(-ret), lc.cl ? krpc_clnt_last_error(lc.cl) : "");
        goto exit;
    }
    if ((ret = pthread_create(&lc.thread, NULL, lat_main, &lc)) != 0) {
        ret = -ret;
        goto exit;
    }
    usleep(200000); /* the idle client's baseline before the writer starts */
    t0 = bench_now();
    pid = cp_spawn(src, &d, "writer.bin", pki);
    ret = pid > 0 ? cp_wait(pid) : -ECHILD;
    t0 = bench_now() - t0;
    atomic_store(&lc.stop, 1);
    pthread_join(lc.thread, NULL);
    if (ret == 0 && lc.err != 0) {
        fprintf(stderr, "rpctls-bench: idle client: %s\n", strerror(lc.err < 0 ? -lc.err : lc.err));
        ret = lc.err;
    }
    if (ret == 0 && lc.nlat > 0) {
        qsort(lc.lat, lc.nlat, sizeof(double), dbl_cmp);
        row->p50[row->n] = lc.lat[lc.nlat / 2];
        row->p99[row->n] = lc.lat[(size_t)((double)(lc.nlat - 1) * 0.99)];
        row->max[row->n] = lc.lat[lc.nlat - 1];
        row->wall[row->n] = t0;
        row->calls[row->n] = lc.nlat;
        row->n++;
    }
    row->threads = threads;
    row->io_threads = io;
    row->bytes = o->commit_size;
exit:
    if (lc.cl)
        krpc_clnt_free(lc.cl);
    if (lc.loop) {
        krpc_loop_run_once(lc.loop, 0);
        krpc_loop_free(lc.loop);
    }
    free(lc.lat);
    bench_nfsd_stop(&d);
    unlink(path);
    return ret;
}

/* ---- 3. connection setups per second --------------------------------------- */

struct setup_row {
    const char *label;
    double rate[MAX_ROUNDS];
    double client_us[MAX_ROUNDS], server_us[MAX_ROUNDS]; /* CPU per setup */
    int n;
};

/* CPU seconds (user + system) of a process or, with tid, one of our threads. */
static double proc_cpu(pid_t pid, pid_t tid)
{
    char path[64], buf[1024], *p;
    unsigned long ut = 0, st = 0;
    ssize_t n;
    int fd;

    if (tid > 0)
        snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
    else
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((fd = open(path, O_RDONLY)) < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    if ((p = strrchr(buf, ')')) == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double thread_cpu(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* rpctls: a fresh client per setup (TCP connect, probe, handshake), one NULL
 * call, free. shared: every client uses one TLS context loaded once
 * (cfg.tls_ctx), as s_time uses one SSL_CTX; else each client (one per
 * connection here) loads its own from the files. */
static int run_setup_rpctls(const struct srv_opts *o, const struct bench_nfsd *d, const char *pki, int shared,
                            struct setup_row *row)
{
    struct krpc_clnt_config cfg = {0};
    struct krpc_loop *loop;
    char ca[1100], addr[32];
    uint64_t count = 0;
    double t0, t = 0, c0, s0;
    int ret;

    snprintf(ca, sizeof(ca), "%s/ca.pem", pki);
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", d->port);
    if ((ret = krpc_parse_addr(addr, &cfg.addr, &cfg.addrlen)) != 0 || (ret = krpc_loop_new(&loop)) != 0)
        return ret;
    cfg.prog = NFS3_PROGRAM;
    cfg.vers = 3;
    cfg.tls = KRPC_TLS_REQUIRED;
    cfg.tlscfg.ca_file = ca;
    cfg.tlscfg.server_name = "127.0.0.1";
    cfg.timeout_ms = 30000;
    cfg.max_retries = -1;
    cfg.max_reconnects = 1;
    cfg.name = "bench setup";
    if (shared) {
        struct ktls_config k = cfg.tlscfg;
        char err[512];
        k.role = KTLS_CLIENT;
        k.alpn = KRPC_ALPN;
        if ((ret = ktls_ctx_new(&k, &cfg.tls_ctx, err, sizeof(err))) != 0) {
            fprintf(stderr, "rpctls-bench: %s\n", err);
            krpc_loop_free(loop);
            return ret;
        }
    }
    c0 = thread_cpu();
    s0 = proc_cpu(d->pid, 0);
    t0 = bench_now();
    do {
        struct krpc_clnt *cl;
        struct mb_chain args = MB_CHAIN_INIT;
        struct krpc_reply reply;
        char msg[128];

        if ((ret = krpc_clnt_new(loop, &cfg, &cl)) != 0)
            break;
        if ((ret = krpc_call(cl, 0, &args, &reply)) == 0) {
            ret = krpc_reply_status(&reply.hdr, msg, sizeof(msg));
            krpc_reply_free(&reply);
        }
        if (ret != 0)
            fprintf(stderr, "rpctls-bench: setup %llu: %s: %s\n", (unsigned long long)count, strerror(-ret),
                    krpc_clnt_last_error(cl));
        krpc_clnt_free(cl);
        krpc_loop_run_once(loop, 0);
        count++;
        t = bench_now() - t0;
    } while (ret == 0 && t < o->setup_seconds);
    ktls_ctx_unref(cfg.tls_ctx);
    krpc_loop_free(loop);
    if (ret == 0) {
        row->client_us[row->n] = (thread_cpu() - c0) / (double)count * 1e6;
        row->server_us[row->n] = (proc_cpu(d->pid, 0) - s0) / (double)count * 1e6;
        row->rate[row->n++] = (double)count / t;
    }
    return ret;
}

/* Raw OpenSSL: a blocking TLS 1.3 server thread in this process and an
 * `openssl s_time -new` loop: connect, handshake (server certificate verified
 * against the CA, IP name checked, as rpctls clients do), close_notify, close.
 * Same certificate, key and suite order as rpctls; no tickets, no resumption. */
struct raw_srv {
    SSL_CTX *ctx;
    int lfd;
    uint16_t port;
    atomic_int stop;
    atomic_int tid;
    pthread_t thread;
};

static void *raw_srv_main(void *arg)
{
    struct raw_srv *s = arg;

    atomic_store(&s->tid, (int)syscall(SYS_gettid));
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {s->lfd, POLLIN, 0};
        char buf[256];
        SSL *ssl;
        int fd, one = 1;

        if (poll(&p, 1, 100) <= 0)
            continue;
        if ((fd = accept(s->lfd, NULL, NULL)) < 0)
            continue;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        ssl = SSL_new(s->ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) == 1) {
            while (SSL_read(ssl, buf, sizeof(buf)) > 0) /* until close_notify or EOF */
                ;
            SSL_shutdown(ssl);
        }
        SSL_free(ssl);
        close(fd);
        ERR_clear_error();
    }
    return NULL;
}

static SSL_CTX *raw_ctx(int server, const char *pki)
{
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    char f[1100];

    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_ciphersuites(ctx, KTLS_DEFAULT_CIPHERSUITES);
    if (server) {
        snprintf(f, sizeof(f), "%s/server.pem", pki);
        if (SSL_CTX_use_certificate_chain_file(ctx, f) != 1)
            goto fail;
        snprintf(f, sizeof(f), "%s/server.key", pki);
        if (SSL_CTX_use_PrivateKey_file(ctx, f, SSL_FILETYPE_PEM) != 1)
            goto fail;
    } else {
        snprintf(f, sizeof(f), "%s/ca.pem", pki);
        if (SSL_CTX_load_verify_locations(ctx, f, NULL) != 1)
            goto fail;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static int raw_srv_start(struct raw_srv *s, const char *pki)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    int one = 1, ret;

    memset(s, 0, sizeof(*s));
    s->lfd = -1;
    if ((s->ctx = raw_ctx(1, pki)) == NULL)
        return -EINVAL;
    if ((s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return -errno;
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(s->lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(s->lfd, 128) < 0 ||
        getsockname(s->lfd, (struct sockaddr *)&sin, &len) < 0)
        return -errno;
    s->port = ntohs(sin.sin_port);
    if ((ret = pthread_create(&s->thread, NULL, raw_srv_main, s)) != 0)
        return -ret;
    return 0;
}

static void raw_srv_stop(struct raw_srv *s)
{
    if (s->port != 0) {
        atomic_store(&s->stop, 1);
        pthread_join(s->thread, NULL);
    }
    if (s->lfd >= 0)
        close(s->lfd);
    SSL_CTX_free(s->ctx);
}

static int run_setup_raw(const struct srv_opts *o, const struct raw_srv *s, SSL_CTX *cctx, struct setup_row *row)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(s->port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    uint64_t count = 0;
    double t0, t = 0, c0, s0;
    int ret = 0;

    while (atomic_load(&s->tid) == 0)
        usleep(1000);
    c0 = thread_cpu();
    s0 = proc_cpu(0, atomic_load(&s->tid));
    t0 = bench_now();
    do {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
        SSL *ssl;

        if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
            ret = -errno;
            if (fd >= 0)
                close(fd);
            break;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        ssl = SSL_new(cctx);
        SSL_set_fd(ssl, fd);
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1"); /* the name check rpctls clients make */
        if (SSL_connect(ssl) != 1) {
            fprintf(stderr, "rpctls-bench: raw OpenSSL handshake failed\n");
            ERR_print_errors_fp(stderr);
            ret = -EPROTO;
        } else {
            SSL_shutdown(ssl);
        }
        SSL_free(ssl);
        close(fd);
        count++;
        t = bench_now() - t0;
    } while (ret == 0 && t < o->setup_seconds);
    if (ret == 0) {
        row->client_us[row->n] = (thread_cpu() - c0) / (double)count * 1e6;
        row->server_us[row->n] = (proc_cpu(0, atomic_load(&s->tid)) - s0) / (double)count * 1e6;
        row->rate[row->n++] = (double)count / t;
    }
    return ret;
}

/* ---- report ------------------------------------------------------------------ */

static void minmax(const double *v, int n, double *lo, double *hi)
{
    *lo = *hi = n > 0 ? v[0] : 0;
    for (int i = 1; i < n; i++) {
        if (v[i] < *lo)
            *lo = v[i];
        if (v[i] > *hi)
            *hi = v[i];
    }
}

static int best_max(const double *v, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[b])
            b = i;
    return b;
}

static int parse_list(const char *s, unsigned *out, unsigned *n, unsigned maxv)
{
    char *end;

    *n = 0;
    while (*s != '\0') {
        unsigned long v = strtoul(s, &end, 10);
        if (end == s || v == 0 || v > maxv || *n == MAX_LIST)
            return -1;
        out[(*n)++] = (unsigned)v;
        s = end;
        if (*s == ',')
            s++;
        else if (*s != '\0')
            return -1;
    }
    return *n > 0 ? 0 : -1;
}

static void server_usage(FILE *f)
{
    fprintf(f,
            "usage: rpctls-bench server [options]\n"
            "One rpctls-nfsd shared by several clients, side by side in one run (issue 8):\n"
            "  throughput  aggregate WRITE throughput of N TLS clients (rpctls-cp processes, one\n"
            "              file each) to one server, per --threads value;\n"
            "  latency     NULL-call latency (median, p99, max) of an idle TLS client sending one\n"
            "              NULL call every --interval ms (open loop), while rpctls-cp writes and\n"
            "              COMMITs --commit-size to a disk-backed export: --threads 1 with\n"
            "              --io-threads 0 (file-system calls on the event loop, the old behaviour)\n"
            "              and with the pool, and the server's default --threads 2 with the pool;\n"
            "  setup       TLS connection setups per second, one at a time (TCP connect, RFC 9289\n"
            "              probe, handshake, one NULL call, close) against rpctls-nfsd --threads 1,\n"
            "              the clients sharing one TLS context (as s_time does) and each loading its\n"
            "              own (a client per connection), and raw OpenSSL TLS 1.3 handshakes (an\n"
            "              `openssl s_time -new` loop against an OpenSSL server thread in this\n"
            "              process, same certificate, key and suites).\n"
            "Every row runs --rounds times: the best round is reported with the spread.\n"
            "  --only LIST         rows to run: throughput,latency,setup (default all)\n"
            "  --size BYTES        bytes per throughput row, split over its clients (default 1G)\n"
            "  --clients LIST      client counts of the throughput rows (default 1,4,16)\n"
            "  --threads LIST      rpctls-nfsd --threads of the throughput rows (default 1,2)\n"
            "  --dir DIR           throughput exports, sources and PKI (default /dev/shm, else /tmp)\n"
            "  --disk-dir DIR      the latency rows' export: must be disk-backed (default /var/tmp)\n"
            "  --commit-size BYTES what the writer writes and COMMITs in a latency row (default 1G)\n"
            "  --interval MS       the idle client's NULL period (default 10)\n"
            "  --io-threads N      the pool's size in the latency rows (default 8)\n"
            "  --setup-seconds S   length of a connection-setup row (default 2)\n"
            "  --rounds N          run every row N times (default 3, at most %d)\n"
            "  --json              one JSON object per row\n",
            MAX_ROUNDS);
}

int bench_server(int argc, char **argv)
{
    static const struct option lopts[] = {
        {"only", required_argument, NULL, 'o'},     {"size", required_argument, NULL, 's'},
        {"clients", required_argument, NULL, 'c'},  {"threads", required_argument, NULL, 't'},
        {"dir", required_argument, NULL, 'd'},      {"disk-dir", required_argument, NULL, 'D'},
        {"commit-size", required_argument, NULL, 'C'}, {"interval", required_argument, NULL, 'i'},
        {"io-threads", required_argument, NULL, 'I'}, {"setup-seconds", required_argument, NULL, 'S'},
        {"rounds", required_argument, NULL, 'r'},   {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    struct srv_opts o = {
        .size = 1ull << 30, .clients = {1, 4, 16}, .nclients = 3, .threads = {1, 2}, .nthreads = 2,
        .commit_size = 1ull << 30, .interval_ms = 10, .io_threads = 8, .setup_seconds = 2,
        .dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", .disk_dir = "/var/tmp", .rounds = 3,
        .do_tput = 1, .do_lat = 1, .do_setup = 1,
    };
    struct tput_row tput[MAX_LIST * MAX_LIST];
    struct lat_row lat[3];
    struct setup_row setup[3];
    char base[600], pki[700], src[700], err[512];
    int opt, ret = 0, ntput = 0;
    unsigned long v;
    uint64_t sz;

    while ((opt = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        switch (opt) {
        case 'o': {
            char buf[128], *tok, *save;
            snprintf(buf, sizeof(buf), "%s", optarg);
            o.do_tput = o.do_lat = o.do_setup = 0;
            for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                if (strcmp(tok, "throughput") == 0)
                    o.do_tput = 1;
                else if (strcmp(tok, "latency") == 0)
                    o.do_lat = 1;
                else if (strcmp(tok, "setup") == 0)
                    o.do_setup = 1;
                else {
                    fprintf(stderr, "rpctls-bench: --only: unknown row set '%s'\n", tok);
                    return 2;
                }
            }
            break;
        }
        case 's':
        case 'C':
            if (tool_parse_size(optarg, BENCH_SIZE, &sz) != 0 || sz < (1u << 20)) {
                fprintf(stderr, "rpctls-bench: bad size '%s' (at least 1M)\n", optarg);
                return 2;
            }
            *(opt == 's' ? &o.size : &o.commit_size) = sz;
            break;
        case 'c':
        case 't':
            if (parse_list(optarg, opt == 'c' ? o.clients : o.threads, opt == 'c' ? &o.nclients : &o.nthreads,
                           opt == 'c' ? 64 : 64) != 0) {
                fprintf(stderr, "rpctls-bench: bad list '%s' (numbers 1..64, comma-separated)\n", optarg);
                return 2;
            }
            break;
        case 'd': o.dir = optarg; break;
        case 'D': o.disk_dir = optarg; break;
        case 'i':
        case 'I':
            v = strtoul(optarg, NULL, 10);
            if ((opt == 'i' && (v < 1 || v > 10000)) || (opt == 'I' && (v < 1 || v > 1024))) {
                fprintf(stderr, "rpctls-bench: bad value '%s'\n", optarg);
                return 2;
            }
            *(opt == 'i' ? &o.interval_ms : &o.io_threads) = (unsigned)v;
            break;
        case 'S':
            if ((o.setup_seconds = atof(optarg)) <= 0) {
                fprintf(stderr, "rpctls-bench: bad --setup-seconds '%s'\n", optarg);
                return 2;
            }
            break;
        case 'r':
            if ((o.rounds = atoi(optarg)) < 1 || o.rounds > MAX_ROUNDS) {
                fprintf(stderr, "rpctls-bench: --rounds must be 1..%d\n", MAX_ROUNDS);
                return 2;
            }
            break;
        case 'j': o.json = 1; break;
        case 'h': server_usage(stdout); return 0;
        default: server_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "rpctls-bench: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    memset(tput, 0, sizeof(tput));
    memset(lat, 0, sizeof(lat));
    memset(setup, 0, sizeof(setup));
    snprintf(base, sizeof(base), "%s/rpctls-bench-server-XXXXXX", o.dir);
    if (mkdtemp(base) == NULL) {
        fprintf(stderr, "rpctls-bench: %s: %s\n", base, strerror(errno));
        return 1;
    }
    snprintf(pki, sizeof(pki), "%s/pki", base);
    if (ktls_pki_make_dir(pki, 365, err, sizeof(err)) != 0) {
        fprintf(stderr, "rpctls-bench: %s\n", err);
        ret = -EIO;
        goto exit;
    }
    lat[0] = (struct lat_row){.label = "old: loop only", .threads = 1, .io_threads = 0};
    lat[1] = (struct lat_row){.label = "pool", .threads = 1, .io_threads = (int)o.io_threads};
    lat[2] = (struct lat_row){.label = "pool, 2 loops", .threads = 2, .io_threads = (int)o.io_threads};
    setup[0].label = "rpctls-nfsd, client context shared (as s_time)";
    setup[1].label = "rpctls-nfsd, a new client and context per connection";
    setup[2].label = "raw OpenSSL (s_time -new style)";
    if (o.do_lat) {
        snprintf(o.disk_base, sizeof(o.disk_base), "%s/rpctls-bench-server-XXXXXX", o.disk_dir);
        if (mkdtemp(o.disk_base) == NULL) {
            fprintf(stderr, "rpctls-bench: %s: %s\n", o.disk_base, strerror(errno));
            o.disk_base[0] = '\0';
            ret = -EIO;
            goto exit;
        }
        snprintf(src, sizeof(src), "%s/source-commit.bin", base);
        if ((ret = bench_write_source(src, o.commit_size)) != 0)
            goto exit;
    }
    /* Rounds outermost: a slow spell of the machine hits one round of every
     * row rather than every round of one row. */
    for (int round = 0; round < o.rounds && ret == 0; round++) {
        ntput = 0;
        for (unsigned c = 0; o.do_tput && c < o.nclients && ret == 0; c++)
            for (unsigned t = 0; t < o.nthreads && ret == 0; t++)
                ret = run_tput(&o, base, pki, o.threads[t], o.clients[c], &tput[ntput++]);
        for (int l = 0; o.do_lat && l < 3 && ret == 0; l++)
            ret = run_lat(&o, base, pki, src, lat[l].threads, lat[l].io_threads, &lat[l]);
        if (o.do_setup && ret == 0) {
            struct bench_nfsd d;
            struct raw_srv rs;
            SSL_CTX *cctx = raw_ctx(0, pki);
            char exp[700], state[700];

            snprintf(exp, sizeof(exp), "%s/export-setup", base);
            snprintf(state, sizeof(state), "%s/state", base);
            if ((ret = nfsd_start(&d, exp, state, pki, 1, -1)) == 0) {
                ret = run_setup_rpctls(&o, &d, pki, 1, &setup[0]);
                if (ret == 0)
                    ret = run_setup_rpctls(&o, &d, pki, 0, &setup[1]);
                bench_nfsd_stop(&d);
            }
            if (ret == 0 && (ret = raw_srv_start(&rs, pki)) == 0 && cctx != NULL)
                ret = run_setup_raw(&o, &rs, cctx, &setup[2]);
            else if (ret == 0)
                ret = -EINVAL;
            raw_srv_stop(&rs);
            SSL_CTX_free(cctx);
        }
        if (!o.json)
            fprintf(stderr, "rpctls-bench server: round %d of %d done\n", round + 1, o.rounds);
    }
    if (ret != 0)
        goto exit;

    /* Throughput. */
    if (o.do_tput && !o.json)
        printf("rpctls-bench server: aggregate WRITE throughput, TLS clients (rpctls-cp) to one rpctls-nfsd, %.2f GiB "
               "per row, exports in %s, best of %d (spread)\n",
               (double)o.size / (1 << 30), o.dir, o.rounds);
    for (int i = 0; i < ntput; i++) {
        const struct tput_row *r = &tput[i];
        double lo, hi;
        int b = best_max(r->gbps, r->n);
        minmax(r->gbps, r->n, &lo, &hi);
        if (o.json)
            printf("{\"bench\":\"server\",\"row\":\"throughput\",\"threads\":%u,\"clients\":%u,\"bytes\":%llu,"
                   "\"gbps\":%.3f,\"gbps_min\":%.3f,\"gbps_max\":%.3f,\"rounds\":%d}\n",
                   r->threads, r->clients, (unsigned long long)r->bytes, r->gbps[b], lo, hi, r->n);
        else
            printf("  clients %2u  --threads %u  %6.3f GB/s  (%.3f..%.3f)\n", r->clients, r->threads, r->gbps[b], lo,
                   hi);
    }
    /* Latency. */
    if (o.do_lat && !o.json)
        printf("rpctls-bench server: idle client's NULL latency (one call every %u ms) while rpctls-cp writes and "
               "COMMITs %.2f GiB to %s; best round by p99 (spread of p99)\n",
               o.interval_ms, (double)o.commit_size / (1 << 30), o.disk_dir);
    for (int l = 0; o.do_lat && l < 3; l++) {
        const struct lat_row *r = &lat[l];
        int b = 0;
        double lo, hi;
        for (int i = 1; i < r->n; i++)
            if (r->p99[i] < r->p99[b])
                b = i;
        minmax(r->p99, r->n, &lo, &hi);
        if (o.json)
            printf("{\"bench\":\"server\",\"row\":\"latency\",\"threads\":%u,\"io_threads\":%d,\"bytes\":%llu,"
                   "\"calls\":%zu,\"writer_seconds\":%.3f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
                   "\"p99_ms_min\":%.3f,\"p99_ms_max\":%.3f,\"rounds\":%d}\n",
                   r->threads, r->io_threads, (unsigned long long)r->bytes, r->calls[b], r->wall[b], r->p50[b] * 1e3,
                   r->p99[b] * 1e3, r->max[b] * 1e3, lo * 1e3, hi * 1e3, r->n);
        else
            printf("  %-15s --threads %u --io-threads %d  median %7.3f ms  p99 %8.3f ms  max %8.3f ms  (p99 "
                   "%.3f..%.3f; %zu calls, writer %.2f s)\n",
                   r->label, r->threads, r->io_threads, r->p50[b] * 1e3, r->p99[b] * 1e3, r->max[b] * 1e3, lo * 1e3,
                   hi * 1e3, r->calls[b], r->wall[b]);
    }
    /* Setups. */
    if (o.do_setup && !o.json)
        printf("rpctls-bench server: TLS connection setups per second, one at a time, %.1f s per row, best of %d "
               "(spread)\n",
               o.setup_seconds, o.rounds);
    for (int s = 0; o.do_setup && s < 3; s++) {
        const struct setup_row *r = &setup[s];
        double lo, hi;
        int b = best_max(r->rate, r->n);
        minmax(r->rate, r->n, &lo, &hi);
        if (o.json)
            printf("{\"bench\":\"server\",\"row\":\"setup\",\"peer\":\"%s\",\"per_second\":%.1f,\"min\":%.1f,"
                   "\"max\":%.1f,\"client_cpu_us\":%.0f,\"server_cpu_us\":%.0f,\"rounds\":%d}\n",
                   s == 0 ? "rpctls-nfsd shared-ctx" : s == 1 ? "rpctls-nfsd ctx-per-conn" : "openssl", r->rate[b], lo,
                   hi, r->client_us[b], r->server_us[b], r->n);
        else
            printf("  %-48s %8.1f /s  (%.1f..%.1f)  CPU per setup: client %4.0f us, server %4.0f us\n", r->label,
                   r->rate[b], lo, hi, r->client_us[b], r->server_us[b]);
    }
    if (!o.json) {
        printf("targets:\n");
        for (int i = 0; o.do_tput && i < ntput; i++) {
            if (tput[i].clients != 4 || tput[i].threads != 2)
                continue;
            for (int j = 0; j < ntput; j++)
                if (tput[j].clients == 4 && tput[j].threads == 1)
                    printf("  4 clients, --threads 2 / --threads 1      %.3f  (target >= 1.3)\n",
                           tput[i].gbps[best_max(tput[i].gbps, tput[i].n)] /
                               tput[j].gbps[best_max(tput[j].gbps, tput[j].n)]);
        }
        if (o.do_lat) {
            double lo, hi;
            minmax(lat[1].p99, lat[1].n, &lo, &hi);
            printf("  p99 NULL latency during COMMIT, pool       %.3f ms  (target <= 20; old: loop only ", lo * 1e3);
            minmax(lat[0].p99, lat[0].n, &lo, &hi);
            printf("%.3f ms)\n", lo * 1e3);
        }
        if (o.do_setup) {
            double raw = setup[2].rate[best_max(setup[2].rate, setup[2].n)];
            printf("  setups/s, rpctls-nfsd / raw OpenSSL        %.3f  (target >= 0.7; client context per "
                   "connection: %.3f)\n",
                   setup[0].rate[best_max(setup[0].rate, setup[0].n)] / raw,
                   setup[1].rate[best_max(setup[1].rate, setup[1].n)] / raw);
        }
    }
exit:
    {
        char cmd[1400];
        /* Everything below base and disk_base is ours. */
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'%s%s%s", base, o.disk_base[0] ? " '" : "", o.disk_base,
                 o.disk_base[0] ? "'" : "");
        if (system(cmd) != 0)
            fprintf(stderr, "rpctls-bench: could not remove %s\n", base);
    }
    return ret == 0 ? 0 : 1;
}
