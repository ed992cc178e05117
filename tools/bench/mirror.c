/*
 * tools/bench/mirror.c - rpctls-bench mirror: the seed's scenario as a
 * benchmark. One file is written to two rpctls-nfsd mirrors over loopback
 * with the mirrored writer (nfs3_mirror_write), once per TX mode and once
 * over plain TCP, side by side in one run, reporting wall throughput and the
 * client's CPU seconds per GiB. References measured in the same run: the
 * cipher's own cost (mirrors x the default engine's seal CPU per GiB, whose
 * ratio to TLS-minus-plain client CPU is our overhead) and
 * libnfs's nfs-cp writing the same file to one rpctls-nfsd over plain TCP.
 *
 * The servers are separate processes (rpctls-nfsd next to this program), so
 * getrusage(RUSAGE_SELF) is the client alone. Exports default to /dev/shm so
 * that the numbers measure the network stack rather than this machine's disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rpctls/nfs3_mirror.h"
#include "rpctls/pki.h"

#include "bench.h"

#define NMIRRORS 2

struct mirror_row {
    const char *name;   /* "plain", "auto", ..., "nfs-cp" */
    int mirrors;
    uint64_t bytes;     /* source bytes */
    double wall;
    double cpu;         /* client user + system seconds */
    uint64_t records_inplace, records_outofplace, records_copied;
};

static double cpu_seconds(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

/* Starts rpctls-nfsd idx exporting BASE/exportIDX, TLS optional. */
static int nfsd_start(struct bench_nfsd *d, const char *base, int idx, const char *pki)
{
    static const char *const extra[] = {"--tls", "optional", NULL};
    char export[1024], state[1100];

    snprintf(export, sizeof export, "%s/export%d", base, idx);
    snprintf(state, sizeof state, "%s/state%d", base, idx);
    return bench_nfsd_start(d, export, state, pki, extra);
}


static int run_mirror(const char *src, uint64_t size, struct bench_nfsd *d, const char *pki, int tls, enum ktls_tx_mode mode,
                      struct mirror_row *row)
{
    struct nfs3_mirror_dest dests[NMIRRORS];
    struct nfs3_mirror_result res[NMIRRORS];
    struct nfs3_mirror_config cfg = {0};
    char ca[1100], cert[1100], key[1100], path[NMIRRORS][1100], label[NMIRRORS][1200], addr[32];
    double c0, t0;
    int fd, ret;

    snprintf(ca, sizeof(ca), "%s/ca.pem", pki);
    snprintf(cert, sizeof(cert), "%s/client.pem", pki);
    snprintf(key, sizeof(key), "%s/client.key", pki);
    memset(dests, 0, sizeof(dests));
    memset(res, 0, sizeof(res));
    for (int i = 0; i < NMIRRORS; i++) {
        snprintf(path[i], sizeof(path[i]), "%.1000s/bench.bin", d[i].export);
        unlink(path[i]);
        snprintf(label[i], sizeof(label[i]), "nfs://127.0.0.1:%u%.1100s", d[i].port, path[i]);
        snprintf(addr, sizeof(addr), "127.0.0.1:%u", d[i].port);
        krpc_parse_addr(addr, &dests[i].rpc.addr, &dests[i].rpc.addrlen);
        dests[i].label = label[i];
        dests[i].path = path[i];
        dests[i].rpc.tls = tls ? KRPC_TLS_REQUIRED : KRPC_TLS_OFF;
        dests[i].rpc.tlscfg.ca_file = ca;
        dests[i].rpc.tlscfg.cert_file = cert;
        dests[i].rpc.tlscfg.key_file = key;
        dests[i].rpc.tlscfg.tx_mode = mode;
        dests[i].rpc.timeout_ms = 60000; /* measure, do not retransmit */
    }
    if ((fd = open(src, O_RDONLY)) < 0)
        return -errno;
    c0 = cpu_seconds();
    t0 = bench_now();
    ret = nfs3_mirror_write(fd, size, dests, NMIRRORS, &cfg, res, NULL);
    row->wall = bench_now() - t0;
    row->cpu = cpu_seconds() - c0;
    close(fd);
    row->name = tls ? ktls_tx_mode_name(mode) : "plain";
    row->mirrors = NMIRRORS;
    row->bytes = size;
    for (int i = 0; i < NMIRRORS; i++) {
        row->records_inplace += res[i].tls_stats.tx_records_inplace;
        row->records_outofplace += res[i].tls_stats.tx_records_outofplace;
        row->records_copied += res[i].tls_stats.tx_records_copied;
        if (res[i].status != 0)
            fprintf(stderr, "rpctls-bench: %s\n", res[i].error);
    }
    return ret;
}

/* libnfs's nfs-cp writing the file to one rpctls-nfsd over plain TCP. */
static int run_nfscp(const char *src, uint64_t size, struct bench_nfsd *d, struct mirror_row *row)
{
    char url[1300], path[1100];
    struct rusage ru;
    int status;
    pid_t pid;
    double t0;

    snprintf(path, sizeof(path), "%s/bench-nfscp.bin", d->export);
    unlink(path); /* nfs-cp creates GUARDED */
    snprintf(url, sizeof(url), "nfs://127.0.0.1%s?nfsport=%u&mountport=%u", path, d->port, d->port);
    t0 = bench_now();
    if ((pid = fork()) == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        execlp("nfs-cp", "nfs-cp", src, url, (char *)NULL);
        _exit(127);
    }
    if (pid < 0 || wait4(pid, &status, 0, &ru) != pid)
        return -errno;
    row->wall = bench_now() - t0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "rpctls-bench: nfs-cp %s failed (status %d)%s\n", url, status,
                WIFEXITED(status) && WEXITSTATUS(status) == 127 ? ": is libnfs-utils installed?" : "");
        return -EIO;
    }
    row->cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
               ru.ru_stime.tv_usec * 1e-6;
    row->name = "nfs-cp";
    row->mirrors = 1;
    row->bytes = size;
    unlink(path);
    return 0;
}

static void mirror_usage(FILE *f)
{
    fprintf(f, "usage: rpctls-bench mirror [options]\n"
               "Writes one file to two rpctls-nfsd mirrors on loopback with the mirrored writer:\n"
               "plain TCP and TLS in modes auto, outofplace and copy, side by side in one run;\n"
               "reports wall throughput and the client's CPU seconds per GiB; (TLS - plain) per GiB\n"
               "against the cipher's own cost measured in the same run (mirrors x seal CPU per\n"
               "GiB), and libnfs nfs-cp (one mirror, plain).\n"
               "  --size BYTES      file size (default 1G)\n"
               "  --dir DIR         where exports and the source go (default /dev/shm, else /tmp)\n"
               "  --with-unsafe-inplace\n"
               "                    also run the unsafe-inplace mode (it corrupts the mirrors)\n"
               "  --no-nfs-cp       skip the libnfs reference\n"
               "  --rounds N        run every row N times, report each row's fastest (default 2)\n"
               "  --json            one JSON object per row\n");
}

int bench_mirror(int argc, char **argv)
{
    static const struct option lopts[] = {
        {"size", required_argument, NULL, 's'}, {"dir", required_argument, NULL, 'd'},
        {"with-unsafe-inplace", no_argument, NULL, 'i'}, {"no-nfs-cp", no_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},      {"help", no_argument, NULL, 'h'},
        {"rounds", required_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    uint64_t size = 1ull << 30, v;
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    int with_inplace = 0, nfscp = 1, json = 0, rounds = 2, opt, ret = 0, nrows = 0;
    struct bench_nfsd d[NMIRRORS];
    struct mirror_row rows[8];
    char base[600], pki[700], src[700], err[512];

    while ((opt = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        switch (opt) {
        case 's':
            if (tool_parse_size(optarg, BENCH_SIZE, &v) != 0 || v == 0) {
                fprintf(stderr, "rpctls-bench: bad --size '%s'\n", optarg);
                return 2;
            }
            size = v;
            break;
        case 'd': dir = optarg; break;
        case 'i': with_inplace = 1; break;
        case 'n': nfscp = 0; break;
        case 'j': json = 1; break;
        case 'r':
            if ((rounds = atoi(optarg)) < 1) {
                fprintf(stderr, "rpctls-bench: --rounds must be at least 1\n");
                return 2;
            }
            break;
        case 'h': mirror_usage(stdout); return 0;
        default: mirror_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "rpctls-bench: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    memset(d, 0, sizeof(d));
    memset(rows, 0, sizeof(rows));
    snprintf(base, sizeof(base), "%s/rpctls-bench-mirror-XXXXXX", dir);
    if (mkdtemp(base) == NULL) {
        fprintf(stderr, "rpctls-bench: %s: %s\n", base, strerror(errno));
        return 1;
    }
    snprintf(pki, sizeof(pki), "%s/pki", base);
    snprintf(src, sizeof(src), "%s/source.bin", base);
    if (ktls_pki_make_dir(pki, 365, err, sizeof(err)) != 0) {
        fprintf(stderr, "rpctls-bench: %s\n", err);
        ret = -EIO;
        goto exit;
    }
    if ((ret = bench_write_source(src, size)) != 0)
        goto exit;
    for (int i = 0; i < NMIRRORS && ret == 0; i++)
        ret = nfsd_start(&d[i], base, i + 1, pki);
    if (ret != 0)
        goto exit;

    double seal = 0, seal_worst = 0;
    static const enum ktls_tx_mode modes[] = {KTLS_TX_AUTO, KTLS_TX_OUTOFPLACE, KTLS_TX_COPY, KTLS_TX_UNSAFE_INPLACE};
    double cpu_worst[8] = {0};
    for (int round = 0; round < rounds && ret == 0; round++) {
        int k = 0;
        double sl, op;
        if (bench_cipher_cost(&sl, &op) == 0) {
            if (round == 0 || sl < seal)
                seal = sl;
            if (sl > seal_worst)
                seal_worst = sl;
        }
        for (int m = -1; m < 5 && ret == 0; m++) {
            struct mirror_row r = {0};
            if (m == 3 && !with_inplace)
                continue;
            if (m == 4 && !nfscp)
                continue;
            if (m == -1)
                ret = run_mirror(src, size, d, pki, 0, KTLS_TX_AUTO, &r);
            else if (m < 4)
                ret = run_mirror(src, size, d, pki, 1, modes[m], &r);
            else
                ret = run_nfscp(src, size, &d[0], &r);
            if (m == 3 && ret == -EIO)
                ret = 0; /* unsafe-inplace corrupts the mirrors and may fail them; the timing still stands */
            /* The fastest round of each row: noise on a shared machine only slows runs down. */
            if (round == 0 || r.wall < rows[k].wall)
                rows[k] = r;
            if (r.cpu / (double)r.bytes > cpu_worst[k])
                cpu_worst[k] = r.cpu / (double)r.bytes;
            k++;
        }
        nrows = k;
    }
    if (ret != 0)
        goto exit;

    double gib = (double)size / (1 << 30), cipher = NMIRRORS * seal; /* s per GiB of source */
    if (!json)
        printf("rpctls-bench mirror: %.2f GiB to %d rpctls-nfsd mirrors on loopback (exports in %s); cipher (%s "
               "AES-128-GCM, this run): seal %.3f s/GiB (worst round %.3f), x %d mirrors = %.3f s per GiB\n",
               gib, NMIRRORS, dir, ktls_aead_default(KTLS_AES_128_GCM_SHA256)->name, seal, seal_worst, NMIRRORS,
               cipher);
    for (int i = 0; i < nrows; i++) {
        const struct mirror_row *r = &rows[i];
        double gbps = (double)r->bytes / r->wall / 1e9, cpg = r->cpu / ((double)r->bytes / (1 << 30));
        if (json)
            printf("{\"bench\":\"mirror\",\"mode\":\"%s\",\"transport\":\"%s\",\"mirrors\":%d,\"bytes\":%llu,"
                   "\"seconds\":%.4f,\"gbps\":%.3f,\"client_cpu_seconds\":%.4f,\"cpu_s_per_gib\":%.4f,"
                   "\"cpu_s_per_gib_worst\":%.4f,\"cipher_s_per_gib\":%.4f,\"records_inplace\":%llu,\"records_outofplace\":%llu,"
                   "\"records_copied\":%llu}\n",
                   r->name, strcmp(r->name, "plain") == 0 || strcmp(r->name, "nfs-cp") == 0 ? "plain" : "tls",
                   r->mirrors, (unsigned long long)r->bytes, r->wall, gbps, r->cpu, cpg, cpu_worst[i] * (1u << 30), cipher,
                   (unsigned long long)r->records_inplace, (unsigned long long)r->records_outofplace,
                   (unsigned long long)r->records_copied);
        else
            printf("%-10s %d mirror%s %6.2f GB/s wall (%.2f s)  client CPU %.3f s per GiB (worst %.3f)  records in "
                   "place %llu, out of place %llu, copied %llu\n",
                   r->name, r->mirrors, r->mirrors > 1 ? "s" : " ", gbps, r->wall, cpg, cpu_worst[i] * (1u << 30),
                   (unsigned long long)r->records_inplace, (unsigned long long)r->records_outofplace,
                   (unsigned long long)r->records_copied);
    }
    if (!json) {
        const struct mirror_row *plain = &rows[0], *au = NULL, *cp = NULL;
        for (int i = 0; i < nrows; i++) {
            if (strcmp(rows[i].name, "auto") == 0)
                au = &rows[i];
            if (strcmp(rows[i].name, "copy") == 0)
                cp = &rows[i];
        }
        printf("ratios (client CPU per GiB of source):\n");
        for (int i = 1; cipher > 0 && i < nrows; i++) {
            const struct mirror_row *r = &rows[i];
            if (strcmp(r->name, "nfs-cp") == 0)
                continue;
            double best = (r->cpu - plain->cpu) / gib / cipher;
            double worst = (cpu_worst[i] * (1u << 30) - plain->cpu / gib) / cipher;
            printf("  (TLS %-10s - plain) / (%d x seal)  %.3f (worst round %.3f)", r->name, NMIRRORS, best, worst);
            if (r == au)
                printf("   target <= 1.30: %s", best <= 1.30 ? "met" : "NOT met");
            printf("\n");
        }
        if (au && cp)
            printf("  auto / copy                          %.3f (worst rounds %.3f)   target <= 0.90: %s\n",
                   au->cpu / cp->cpu, cpu_worst[au - rows] / cpu_worst[cp - rows],
                   au->cpu / cp->cpu <= 0.90 ? "met" : "NOT met");
        if (au)
            printf("  wall, TLS auto / plain TCP           %.3f (no target: moves with the cipher's speed)\n",
                   plain->wall / au->wall);
    }
exit:
    for (int i = 0; i < NMIRRORS; i++)
        bench_nfsd_stop(&d[i]);
    {
        char cmd[800];
        /* Everything below base is ours: exports, state, PKI, source. */
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
        if (system(cmd) != 0)
            fprintf(stderr, "rpctls-bench: could not remove %s\n", base);
    }
    return ret == 0 ? 0 : 1;
}
