/*
 * rpctls-cp - copy a local file to one or more NFSv3 servers (mirrors) over
 * RPC-with-TLS, or read a file back from one. A thin front end for
 * nfs3_mirror_write() and nfs3_read_pipelined(); see --help and
 * docs/nfs3-client.md.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "rpctls/nfs3_clnt.h"
#include "rpctls/nfs3_mirror.h"

#include "common/opts.h"

#define PROG "rpctls-cp"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " [options] SRC DEST...\n"
            "\n"
            "Copies the local file SRC to every DEST, each an nfs://HOST[:PORT]/EXPORT/PATH URL\n"
            "(several DESTs are mirrors: every one receives the whole file), or, with an nfs://\n"
            "SRC and one local DEST, reads a file back. EXPORT is the server's export path, as\n"
            "given to rpctls-nfsd --export (nfs://127.0.0.1:2049/srv/data/f for --export /srv/data);\n"
            "the longest prefix of the URL path that the server mounts is taken as the export.\n"
            "A DEST file is created or truncated.\n"
            "\n"
            "HOST is a DNS name, an IPv4 literal or an [IPv6] literal; a name is resolved with\n"
            "getaddrinfo and each of its addresses is tried in turn. URL options, as libnfs spells\n"
            "them, follow a '?' and are joined with '&': mountport=N, nfsport=N (the same as\n"
            ":PORT), version=3; any other option is an error.\n"
            "NFS port: PORT (or nfsport); without one, 2049, and when nothing answers NFS v3 there,\n"
            "the port that the server's portmapper (port 111) gives for NFS v3 over TCP.\n"
            "MOUNT port: mountport when given; else the portmapper's port for MOUNT v3 over TCP\n"
            "(when the portmapper's NFS v3 is the NFS port used); else the NFS port (rpctls-nfsd\n"
            "serves both programs on one port). MOUNT on its own port tries RPC-with-TLS and falls\n"
            "back to plain TCP only when the server refuses the probe (MOUNT carries paths and the\n"
            "root file handle); NFS itself follows --tls / --no-tls.\n"
            "\n"
            "Each chunk of SRC is read once and shared by reference by every mirror; each mirror\n"
            "has its own connection and thread; writes are UNSTABLE with several in flight, then\n"
            "COMMIT; data lost by a server restart (changed write verifier) is written again.\n"
            "\n"
            "Options:\n"
            "  --tls              RPC-with-TLS (RFC 9289), required: fail if a server does not offer\n"
            "                     it (the default when --ca is given; without --ca the server is\n"
            "                     verified against the system's default CA store)\n"
            "  --no-tls           plain TCP (the default without --ca)\n"
            "  --ca FILE          CA certificate(s), PEM, to verify the servers (name checked against\n"
            "                     HOST: a DNS SAN for a name, an IP SAN for an address literal)\n"
            "  --server-name NAME check the server certificates against NAME instead of HOST\n"
            "  --alpn MODE        offer (default): offer ALPN \"sunrpc\" and accept a server that\n"
            "                     selects none, as the deployed peers do; required: strict RFC 9289,\n"
            "                     refuse a server that does not select \"sunrpc\"\n"
            "  --cert FILE        client certificate, PEM, for servers that ask for one\n"
            "  --key FILE         its private key, PEM\n"
            "  --tx-mode M        record-layer TX encryption: auto (default), outofplace, copy, or\n"
            "                     unsafe-inplace (UNSAFE: encrypts shared pages in place, corrupting\n"
            "                     the mirrors and retransmissions; benchmarks and demonstrations only)\n"
            "  --wsize BYTES      bytes per WRITE (and READ); suffixes K, M (KiB, MiB); default 1M,\n"
            "                     at least 512, at most 4M,\n"
            "                     lowered to the server's FSINFO maximum\n"
            "  --depth N          WRITEs (READs) in flight per server (default 8)\n"
            "  --verify           read every mirror back and compare its SHA-256 with the source's\n"
            "                     (a difference fails that mirror); when reading back, re-read the\n"
            "                     written local file and compare it with the data received\n"
            "  --progress         a progress bar with rate and ETA on stderr\n"
            "  --no-progress      none (the default when stderr is not a terminal)\n"
            "  --stats            print per-mirror RPC and record-layer counters and the throughput\n"
            "                     on stdout, and how MOUNT and NFS travelled (address, TLS and its\n"
            "                     cipher suite, or plain and why)\n"
            "  --keylog FILE      append TLS secrets in NSS key-log format (for Wireshark); default:\n"
            "                     $SSLKEYLOGFILE when set\n"
            "  --timeout MS       wait per RPC attempt before a retransmission (default 5000)\n"
            "  --retries N        retransmissions per call before it fails (default 5; 0: none)\n"
            "  --reconnects N     consecutive failed reconnects before a mirror's calls fail\n"
            "                     (default 10; the wait between attempts starts at 100 ms and\n"
            "                     doubles up to 2 s)\n"
            "  -p, --parents      create missing directories on the way to a DEST file\n"
            "  -h, --help         this text\n"
            "\n"
            "--ca, --cert and --key are loaded before any connection: a missing, unreadable,\n"
            "non-PEM, mismatched or expired file is named on stderr (exit status 1); a\n"
            "certificate that expires within 30 days gets a warning.\n"
            "\n"
            "Exit status: 0 when every mirror has the whole file committed (and verified with\n"
            "--verify); 1 when any mirror or the copy failed (each failed mirror is named on\n"
            "stderr: \"mirror nfs://...: reason\") or a TLS file is bad; 2 for bad usage.\n");
}

struct opts {
    int tls;                 /* -1: default */
    const char *ca, *cert, *key, *keylog;
    const char *server_name; /* NULL: HOST */
    int alpn_required;
    enum ktls_tx_mode tx_mode;
    uint32_t wsize;
    unsigned depth;
    int verify, progress, stats, parents;
    int timeout_ms, retries;
    unsigned reconnects;
};

/* The TLS settings of every connection, from the options (the server name
 * is each connection's: rpc_config). */
static void tls_config(const struct opts *o, struct ktls_config *k)
{
    memset(k, 0, sizeof *k);
    k->role = KTLS_CLIENT;
    k->alpn = KRPC_ALPN;
    k->ca_file = o->ca;
    k->cert_file = o->cert;
    k->key_file = o->key;
    k->require_alpn = o->alpn_required;
    k->keylog_file = o->keylog;
    k->tx_mode = o->tx_mode;
}

/* One TLS context for every connection to every server. */
static struct ktls_ctx *g_tls_ctx;

/* --ca, --cert and --key are loaded once before any connection, so that a
 * missing, unreadable, mismatched or expired file is named at once (exit 1)
 * rather than at the first handshake. Returns 0 or -1 after printing why. */
static int load_tls(const struct opts *o)
{
    struct ktls_config k;
    char err[512];

    tls_config(o, &k);
    if (ktls_ctx_new(&k, &g_tls_ctx, err, sizeof err) < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        return -1;
    }
    if (*ktls_ctx_warning(g_tls_ctx) != '\0')
        fprintf(stderr, PROG ": warning: %s\n", ktls_ctx_warning(g_tls_ctx));
    return 0;
}

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die_usage(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, PROG ": ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(" PROG " --help for usage)\n");
    exit(2);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A size in lo..hi: K or M, also as KiB/KB (--help: "K, M (KiB, MiB)"),
 * and 0x as strtoull reads it. */
static uint64_t parse_size(const char *s, const char *what, uint64_t lo, uint64_t hi)
{
    uint64_t v = 0;
    int r = tool_parse_size(s, TOOL_SIZE_IB | TOOL_SIZE_C_BASES, &v);

    /* Too many digits, or too many once multiplied: not a number. */
    if (r == TOOL_SIZE_NOT_NUMBER || r == TOOL_SIZE_RANGE)
        die_usage("%s: not a number: %s", what, s);
    if (r == TOOL_SIZE_TRAILING)
        die_usage("%s: not a size: %s", what, s);
    if (r != TOOL_SIZE_OK || v < lo || v > hi) /* a negative one too */
        die_usage("%s: %" PRIu64 " .. %" PRIu64 " bytes", what, lo, hi);
    return v;
}

static long parse_int(const char *s, const char *what, long lo, long hi)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        die_usage("%s: expected %ld..%ld", what, lo, hi);
    return v;
}

/* ---- URLs ------------------------------------------------------------------- */

struct url {
    char label[4200];        /* the URL as given */
    struct nfs3_url u;       /* host, ports, path */
    struct sockaddr_storage addrs[KRPC_MAX_ADDRS];
    socklen_t lens[KRPC_MAX_ADDRS];
    unsigned naddrs;
};

static int is_url(const char *s)
{
    return strncmp(s, "nfs://", 6) == 0;
}

/* Parses the URL (a bad one is a usage error) and resolves its host (a
 * name that does not resolve is a failure, exit status 1). */
static void parse_url(const char *s, struct url *u)
{
    char err[512];
    int n;

    memset(u, 0, sizeof *u);
    snprintf(u->label, sizeof u->label, "%s", s);
    if (nfs3_url_parse(s, &u->u, err, sizeof err) < 0)
        die_usage("%s: %s", s, err);
    n = krpc_resolve(u->u.host, u->u.nfsport ? u->u.nfsport : 2049, 0, u->addrs, u->lens, KRPC_MAX_ADDRS, err,
                     sizeof err);
    if (n < 0) {
        fprintf(stderr, PROG ": %s: cannot resolve %s\n", s, err);
        exit(1);
    }
    u->naddrs = (unsigned)n;
}

static void rpc_config(const struct opts *o, const struct url *u, struct krpc_clnt_config *c,
                       struct nfs3_clnt_opts *ports)
{
    memset(c, 0, sizeof *c);
    c->addr = u->addrs[0];
    c->addrlen = u->lens[0];
    for (unsigned i = 1; i < u->naddrs; i++) {
        c->alt_addrs[i - 1] = u->addrs[i];
        c->alt_addrlens[i - 1] = u->lens[i];
    }
    c->nalt_addrs = u->naddrs - 1;
    c->tls = o->tls ? KRPC_TLS_REQUIRED : KRPC_TLS_OFF;
    tls_config(o, &c->tlscfg);
    c->tls_ctx = g_tls_ctx; /* NULL without TLS */
    /* A name is checked against the certificate's DNS SANs, an address
     * literal against its IP SANs (the record layer tells them apart). */
    c->tlscfg.server_name = o->server_name ? o->server_name : u->u.host;
    c->timeout_ms = o->timeout_ms;
    c->max_retries = o->retries;
    c->max_reconnects = o->reconnects;
    c->name = u->label;
    memset(ports, 0, sizeof *ports);
    ports->mount_port = u->u.mountport;
    ports->find_nfs_port = u->u.nfsport == 0;
}

/* ---- progress ------------------------------------------------------------------ */

struct progress {
    int on;
    double t0, last;
    const char *what;
};

static void fmt_bytes(char *buf, size_t len, double b)
{
    if (b >= 1024.0 * 1024 * 1024)
        snprintf(buf, len, "%.2f GiB", b / (1024.0 * 1024 * 1024));
    else if (b >= 1024.0 * 1024)
        snprintf(buf, len, "%.1f MiB", b / (1024.0 * 1024));
    else if (b >= 1024.0)
        snprintf(buf, len, "%.1f KiB", b / 1024.0);
    else
        snprintf(buf, len, "%.0f B", b);
}

static void progress_draw(struct progress *p, uint64_t done, uint64_t total, int final)
{
    double t = now_s(), el = t - p->t0, rate, frac;
    char bar[31], a[32], r[32], eta[32];
    int fill;

    if (!p->on || (!final && t - p->last < 0.1))
        return;
    p->last = t;
    frac = total ? (double)done / (double)total : 1.0;
    if (frac > 1.0)
        frac = 1.0;
    fill = (int)(frac * 30);
    memset(bar, '#', (size_t)fill);
    memset(bar + fill, '.', (size_t)(30 - fill));
    bar[30] = '\0';
    rate = el > 0 ? (double)done / el : 0;
    fmt_bytes(a, sizeof a, (double)done);
    fmt_bytes(r, sizeof r, rate);
    if (final)
        snprintf(eta, sizeof eta, "%.1f s", el);
    else if (rate > 0 && total > done) {
        unsigned s = (unsigned)((double)(total - done) / rate + 0.5);
        snprintf(eta, sizeof eta, "ETA %u:%02u", s / 60, s % 60);
    } else
        snprintf(eta, sizeof eta, "ETA --:--");
    fprintf(stderr, "\r%s [%s] %3.0f%% %10s %10s/s %-12s", p->what, bar, frac * 100, a, r, eta);
    if (final)
        fputc('\n', stderr);
    fflush(stderr);
}

static void progress_cb(void *arg, uint64_t done, uint64_t total)
{
    progress_draw(arg, done, total, 0);
}

/* ---- stats ---------------------------------------------------------------------- */

static void print_stats(const char *label, const struct nfs3_mirror_result *r, uint64_t size, const char *what)
{
    const struct krpc_clnt_stats *c = &r->rpc;
    const struct ktls_stats *t = &r->tls_stats;
    char rate[32];

    fmt_bytes(rate, sizeof rate, r->seconds > 0 ? (double)size / r->seconds : 0);
    printf("%s %s: %s, %s, %s %" PRIu32 ", %.3f s %s (%s/s)\n", what[0] == 'w' ? "mirror" : "source",
           label, r->status == 0 ? "ok" : "FAILED", r->tls ? "TLS" : "plain TCP",
           what[0] == 'w' ? "wsize" : "rsize", r->wsize, r->seconds,
           what[0] == 'w' ? "from the first WRITE to the last COMMIT" : "to read", rate);
    if (r->mount_transport[0])
        printf("  MOUNT: %s\n", r->mount_transport);
    if (r->nfs_transport[0])
        printf("  NFS: %s\n", r->nfs_transport);
    if (what[0] == 'w')
        printf("  nfs:  bytes written %" PRIu64 ", resent %" PRIu64 ", commits %u, verifier changes %u\n",
           r->bytes_written, r->bytes_resent, r->commits, r->verifier_changes);
    printf("  rpc:  calls %" PRIu64 ", replies %" PRIu64 ", failures %" PRIu64 ", retransmits %" PRIu64
           ", reconnects %" PRIu64 " (%" PRIu64 " for a fresh TLS key), TLS handshakes %" PRIu64
           ", wire bytes sent %" PRIu64 ", received %" PRIu64 "\n",
           c->calls, c->replies, c->failures, c->retransmits, c->reconnects, c->rekey_reconnects, c->tls_handshakes,
           c->bytes_sent, c->bytes_received);
    if (r->tls)
        printf("  tls:  tx records in place %" PRIu64 " (%" PRIu64 " bytes), out of place %" PRIu64 " (%" PRIu64
               " bytes), copied %" PRIu64 " (%" PRIu64 " bytes), pages allocated %" PRIu64
               ", control records %" PRIu64 ", key updates %" PRIu64 "; rx records %" PRIu64 " (%" PRIu64
               " bytes), bad records %" PRIu64 "\n",
               t->tx_records_inplace, t->tx_bytes_inplace, t->tx_records_outofplace, t->tx_bytes_outofplace,
               t->tx_records_copied, t->tx_bytes_copied, t->tx_pages_allocated, t->tx_control_records,
               t->tx_key_updates, t->rx_records, t->rx_bytes, t->rx_bad_records);
    if (r->verified)
        printf("  verify: %" PRIu64 " bytes read back, SHA-256 %s\n", r->size,
               r->status == 0 ? "matches the source" : "DIFFERS");
}

static void hex(const uint8_t *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

/* ---- write: local file to mirrors ------------------------------------------------ */

static int do_write(const struct opts *o, const char *src, char **dests, int ndest)
{
    struct nfs3_mirror_dest *d = calloc((size_t)ndest, sizeof *d);
    struct nfs3_mirror_result *res = calloc((size_t)ndest, sizeof *res);
    struct url *u = calloc((size_t)ndest, sizeof *u);
    struct nfs3_mirror_config cfg;
    struct progress pr;
    struct stat stt;
    uint8_t sha[32];
    double t0, el;
    int fd = -1, rc, status = 0;

    if (!d || !res || !u) {
        fprintf(stderr, PROG ": out of memory\n");
        status = 1;
        goto out;
    }
    for (int i = 0; i < ndest; i++) {
        if (!is_url(dests[i]))
            die_usage("%s: every DEST of a local SRC must be an nfs:// URL", dests[i]);
        parse_url(dests[i], &u[i]);
        rpc_config(o, &u[i], &d[i].rpc, &d[i].ports);
        d[i].label = u[i].label;
        d[i].path = u[i].u.path;
    }
    fd = open(src, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &stt) < 0) {
        fprintf(stderr, PROG ": %s: %s\n", src, strerror(errno));
        status = 1;
        goto out;
    }
    if (!S_ISREG(stt.st_mode)) {
        fprintf(stderr, PROG ": %s: not a regular file\n", src);
        status = 1;
        goto out;
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    memset(&cfg, 0, sizeof cfg);
    cfg.wsize = o->wsize;
    cfg.depth = o->depth;
    cfg.mkdirs = o->parents;
    cfg.verify = o->verify;
    memset(&pr, 0, sizeof pr);
    pr.on = o->progress;
    pr.what = "write";
    pr.t0 = now_s();
    if (pr.on) {
        cfg.progress = progress_cb;
        cfg.progress_arg = &pr;
    }
    t0 = now_s();
    rc = nfs3_mirror_write(fd, (uint64_t)stt.st_size, d, (unsigned)ndest, &cfg, res, sha);
    el = now_s() - t0;
    progress_draw(&pr, (uint64_t)stt.st_size, (uint64_t)stt.st_size, 1);
    close(fd);
    fd = -1;
    if (rc < 0 && rc != -EIO) {
        fprintf(stderr, PROG ": %s: %s\n", src, strerror(-rc));
        status = 1;
    }
    for (int i = 0; i < ndest; i++) {
        if (res[i].status != 0) {
            fprintf(stderr, PROG ": %s\n", res[i].error);
            status = 1;
        }
    }
    if (o->stats) {
        char h[65], rate[32];
        uint64_t wire = 0;
        for (int i = 0; i < ndest; i++) {
            print_stats(u[i].label, &res[i], (uint64_t)stt.st_size, "write");
            wire += res[i].rpc.bytes_sent;
        }
        double wr = 0;
        for (int i = 0; i < ndest; i++)
            if (res[i].seconds > wr)
                wr = res[i].seconds;
        fmt_bytes(rate, sizeof rate, wr > 0 ? (double)stt.st_size / wr : 0);
        printf("write: %" PRIu64 " bytes to %d mirror%s, written and committed everywhere in %.3f s: %s/s per "
               "mirror\n",
               (uint64_t)stt.st_size, ndest, ndest == 1 ? "" : "s", wr, rate);
        fmt_bytes(rate, sizeof rate, el > 0 ? (double)stt.st_size / el : 0);
        printf("total: %.3f s (mount, write, commit%s): %s/s per mirror, %.1f MiB/s sent on the wire over all "
               "mirrors\n",
               el, o->verify ? ", verify read-back" : "", rate,
               el > 0 ? (double)wire / el / (1024.0 * 1024) : 0.0);
        if (o->verify) {
            hex(sha, 32, h);
            printf("source SHA-256 %s\n", h);
        }
    }
out:
    if (fd >= 0)
        close(fd);
    free(d);
    free(res);
    free(u);
    return status;
}

/* ---- read: one server to a local file ---------------------------------------------- */

struct rd_ctx {
    int fd;
    EVP_MD_CTX *sha;
    struct progress *pr;
    uint64_t total;
};

static int sha_update(void *ctx, const void *p, size_t n)
{
    return EVP_DigestUpdate(ctx, p, n) == 1 ? 0 : -EIO;
}

static int write_sink(void *arg, uint64_t off, struct mb_chain *data)
{
    struct rd_ctx *c = arg;
    size_t done = 0;

    while (done < data->len) {
        struct iovec iov[64];
        struct mb_seg_iter it;
        size_t bytes;
        ssize_t w;
        int n;

        /* From the first byte not yet written: a write may be short. */
        mb_seg_iter_init(&it, data, done, data->len - done);
        n = mb_seg_iovec(&it, iov, 64, &bytes);
        w = pwritev(c->fd, iov, n, (off_t)(off + done));
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (w == 0)
            return -EIO;
        done += (size_t)w;
    }
    if (c->sha)
        (void)mb_chain_apply(data, 0, data->len, sha_update, c->sha);
    progress_draw(c->pr, off + data->len, c->total, 0);
    return 0;
}

static int sha_file(const char *path, uint8_t out[32])
{
    unsigned char *buf = malloc(1 << 20);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned len = 32;
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;
    ssize_t n;

    if (!buf || !ctx || fd < 0 || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        rc = -1;
    while (rc == 0 && (n = read(fd, buf, 1 << 20)) != 0) {
        if (n < 0) {
            if (errno != EINTR)
                rc = -1;
            continue;
        }
        EVP_DigestUpdate(ctx, buf, (size_t)n);
    }
    if (rc == 0)
        EVP_DigestFinal_ex(ctx, out, &len);
    if (fd >= 0)
        close(fd);
    EVP_MD_CTX_free(ctx);
    free(buf);
    return rc;
}

static int do_read(const struct opts *o, const char *src, const char *dst)
{
    struct krpc_clnt_config rc_cfg;
    struct nfs3_clnt_opts ports;
    struct krpc_loop *loop = NULL;
    struct nfs3_clnt *nc = NULL;
    struct nfs3_fsinfo_res fi;
    struct nfs3_fattr attr;
    struct nfs3_fh root, fh;
    struct progress pr;
    struct rd_ctx ctx;
    struct url u;
    size_t rest = 0;
    uint64_t got = 0;
    uint32_t rsize = o->wsize ? o->wsize : (1u << 20);
    double t0;
    int rc, status = 1;
    uint8_t sha_rx[32], sha_f[32];

    if (is_url(dst))
        die_usage("copying from nfs:// to nfs:// is not supported; read to a local file first");
    parse_url(src, &u);
    rpc_config(o, &u, &rc_cfg, &ports);
    memset(&ctx, 0, sizeof ctx);
    ctx.fd = -1;
    t0 = now_s();
    rc = krpc_loop_new(&loop);
    if (rc == 0)
        rc = nfs3_clnt_new_opts(loop, &rc_cfg, &ports, &nc);
    if (rc < 0) {
        fprintf(stderr, PROG ": %s: %s\n", u.label, strerror(-rc));
        goto out;
    }
    rc = nfs3_mount_prefix(nc, u.u.path, &root, &rest);
    if (rc == 0)
        rc = nfs3_open_path(nc, &root, u.u.path + rest, 0, &fh, &attr);
    if (rc == 0 && attr.type != NFS3_REG) {
        fprintf(stderr, PROG ": %s: not a regular file\n", u.label);
        goto out;
    }
    if (rc == 0)
        rc = nfs3_fsinfo(nc, &fh, &fi);
    if (rc != 0) {
        fprintf(stderr, PROG ": %s: %s\n", u.label, nfs3_clnt_error(nc));
        goto out;
    }
    if (rsize > NFS3_MAX_DATA)
        rsize = NFS3_MAX_DATA;
    if (fi.rtmax && rsize > fi.rtmax)
        rsize = fi.rtmax;
    ctx.fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (ctx.fd < 0) {
        fprintf(stderr, PROG ": %s: %s\n", dst, strerror(errno));
        goto out;
    }
    if (o->verify) {
        ctx.sha = EVP_MD_CTX_new();
        if (!ctx.sha || EVP_DigestInit_ex(ctx.sha, EVP_sha256(), NULL) != 1) {
            fprintf(stderr, PROG ": SHA-256 unavailable\n");
            goto out;
        }
    }
    memset(&pr, 0, sizeof pr);
    pr.on = o->progress;
    pr.what = "read";
    pr.t0 = now_s();
    ctx.pr = &pr;
    ctx.total = attr.size;
    rc = nfs3_read_pipelined(nc, &fh, 0, UINT64_MAX, rsize, o->depth ? o->depth : 8, write_sink, &ctx, &got);
    progress_draw(&pr, got, attr.size, 1);
    if (rc != 0) {
        if (rc < 0 && !nfs3_clnt_error(nc)[0])
            fprintf(stderr, PROG ": %s: %s\n", dst, strerror(-rc));
        else
            fprintf(stderr, PROG ": %s: %s\n", u.label, nfs3_clnt_error(nc));
        goto out;
    }
    if (ftruncate(ctx.fd, (off_t)got) < 0 || close(ctx.fd) < 0) {
        ctx.fd = -1;
        fprintf(stderr, PROG ": %s: %s\n", dst, strerror(errno));
        goto out;
    }
    ctx.fd = -1;
    if (o->verify) {
        unsigned l = 32;
        EVP_DigestFinal_ex(ctx.sha, sha_rx, &l);
        if (sha_file(dst, sha_f) < 0 || memcmp(sha_rx, sha_f, 32) != 0) {
            fprintf(stderr, PROG ": %s: verify: the file differs from the data received\n", dst);
            goto out;
        }
    }
    status = 0;
    if (o->stats) {
        struct nfs3_mirror_result r;
        memset(&r, 0, sizeof r);
        r.rpc = *krpc_clnt_stats(nfs3_clnt_rpc(nc));
        krpc_clnt_tls_stats(nfs3_clnt_rpc(nc), &r.tls_stats);
        r.tls = r.rpc.tls_handshakes > 0;
        snprintf(r.nfs_transport, sizeof r.nfs_transport, "%s", nfs3_clnt_transport(nc, NFS3_PROGRAM));
        snprintf(r.mount_transport, sizeof r.mount_transport, "%s", nfs3_clnt_transport(nc, NFS3_MNT_PROGRAM));
        r.wsize = rsize;
        r.seconds = now_s() - t0;
        print_stats(u.label, &r, got, "read");
        printf("total: %" PRIu64 " bytes read in %.3f s\n", got, r.seconds);
    }
out:
    if (ctx.fd >= 0)
        close(ctx.fd);
    EVP_MD_CTX_free(ctx.sha);
    nfs3_clnt_free(nc);
    if (loop)
        krpc_loop_free(loop);
    return status;
}

int main(int argc, char **argv)
{
    enum {
        O_TLS = 256, O_NOTLS, O_CA, O_CERT, O_KEY, O_TXMODE, O_WSIZE, O_DEPTH, O_VERIFY, O_PROGRESS, O_NOPROGRESS,
        O_STATS, O_KEYLOG, O_TIMEOUT, O_RETRIES, O_RECONNECTS, O_SERVER_NAME, O_ALPN,
    };
    static const struct option longopts[] = {
        {"tls", no_argument, NULL, O_TLS},
        {"no-tls", no_argument, NULL, O_NOTLS},
        {"ca", required_argument, NULL, O_CA},
        {"server-name", required_argument, NULL, O_SERVER_NAME},
        {"alpn", required_argument, NULL, O_ALPN},
        {"cert", required_argument, NULL, O_CERT},
        {"key", required_argument, NULL, O_KEY},
        {"tx-mode", required_argument, NULL, O_TXMODE},
        {"wsize", required_argument, NULL, O_WSIZE},
        {"depth", required_argument, NULL, O_DEPTH},
        {"verify", no_argument, NULL, O_VERIFY},
        {"progress", no_argument, NULL, O_PROGRESS},
        {"no-progress", no_argument, NULL, O_NOPROGRESS},
        {"stats", no_argument, NULL, O_STATS},
        {"keylog", required_argument, NULL, O_KEYLOG},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"retries", required_argument, NULL, O_RETRIES},
        {"reconnects", required_argument, NULL, O_RECONNECTS},
        {"parents", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct opts o;
    const char *msg;
    int opt, ret;

    memset(&o, 0, sizeof o);
    o.tls = -1;
    o.progress = -1;
    o.tx_mode = KTLS_TX_AUTO;
    while ((opt = getopt_long(argc, argv, "ph", longopts, NULL)) != -1) {
        switch (opt) {
        case O_TLS:
            o.tls = 1;
            break;
        case O_NOTLS:
            o.tls = 0;
            break;
        case O_CA:
            o.ca = optarg;
            break;
        case O_SERVER_NAME:
            if (!optarg[0])
                die_usage("--server-name: empty name");
            o.server_name = optarg;
            break;
        case O_ALPN:
            if (strcmp(optarg, "offer") == 0)
                o.alpn_required = 0;
            else if (strcmp(optarg, "required") == 0)
                o.alpn_required = 1;
            else
                die_usage("--alpn: offer or required");
            break;
        case O_CERT:
            o.cert = optarg;
            break;
        case O_KEY:
            o.key = optarg;
            break;
        case O_TXMODE:
            if (strcmp(optarg, "inplace") == 0)
                die_usage("--tx-mode inplace is now spelled unsafe-inplace (it encrypts shared pages in place)");
            if (ktls_tx_mode_from_name(optarg, &o.tx_mode) < 0)
                die_usage("--tx-mode: auto, outofplace, copy or unsafe-inplace");
            break;
        case O_WSIZE:
            o.wsize = (uint32_t)parse_size(optarg, "--wsize", 512, NFS3_MAX_DATA);
            break;
        case O_DEPTH:
            o.depth = (unsigned)parse_int(optarg, "--depth", 1, 256);
            break;
        case O_VERIFY:
            o.verify = 1;
            break;
        case O_PROGRESS:
            o.progress = 1;
            break;
        case O_NOPROGRESS:
            o.progress = 0;
            break;
        case O_STATS:
            o.stats = 1;
            break;
        case O_KEYLOG:
            o.keylog = optarg;
            break;
        case O_TIMEOUT:
            o.timeout_ms = (int)parse_int(optarg, "--timeout", 1, 3600000);
            break;
        case O_RETRIES:
            o.retries = (int)parse_int(optarg, "--retries", 0, 1000);
            if (o.retries == 0)
                o.retries = -1; /* the RPC client's "none" */
            break;
        case O_RECONNECTS:
            o.reconnects = (unsigned)parse_int(optarg, "--reconnects", 1, 1000);
            break;
        case 'p':
            o.parents = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "(" PROG " --help for usage)\n");
            return 2;
        }
    }
    if (argc - optind < 2)
        die_usage("need SRC and at least one DEST");
    if ((msg = tool_check_tls(&o.tls, o.ca, o.cert, o.key, o.keylog, o.server_name)) != NULL)
        die_usage("%s", msg);
    if (!o.tls && o.tx_mode != KTLS_TX_AUTO)
        die_usage("--tx-mode needs TLS");
    if (o.progress < 0)
        o.progress = isatty(STDERR_FILENO);
    if (is_url(argv[optind]) && argc - optind != 2)
        die_usage("reading back takes one nfs:// SRC and one local DEST");
    if (o.tls && load_tls(&o) < 0)
        return 1;
    if (is_url(argv[optind]))
        ret = do_read(&o, argv[optind], argv[optind + 1]);
    else
        ret = do_write(&o, argv[optind], argv + optind + 1, argc - optind - 1);
    ktls_ctx_unref(g_tls_ctx);
    return ret;
}
