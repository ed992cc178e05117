/*
 * tools/bench/mount.c - rpctls-bench mount: rpctls-mount against rpctls-cp,
 * the same file to the same servers, side by side in one run (issue 10).
 *
 * Three rpctls-nfsd over TLS on loopback (--tls required, temporary
 * certificates, --rpcbind off), exports in /dev/shm so that no disk sets the
 * pace. Every run has six rows, in this order:
 *
 *   rpctls-cp write          rpctls-cp SRC nfs://server0/...
 *   rpctls-cp read-back      rpctls-cp nfs://server0/... LOCAL
 *   rpctls-cp 2 mirrors      rpctls-cp SRC server0 server1 server2
 *   mount write              what dd bs=1M conv=fsync does: open(O_TRUNC),
 *                            1 MiB pread from SRC + write(2), fsync, close
 *   mount read               a fresh mount (nothing in the page cache):
 *                            1 MiB read(2) + write(2) into a LOCAL file
 *   mount 2 mirrors          the mount write with --mirror server1,server2
 *
 * A row's time is the rpctls-cp process from fork to exit, or the mount
 * row from open to close (mounting and unmounting are outside). Client CPU:
 * rpctls-cp's rusage; for a mount row rpctls-mount's rusage (its whole
 * life, mount to unmount) plus this thread's CPU in the timed loop (the
 * kernel's FUSE and page-cache work for the writer or reader). Every file
 * written is compared with the source after its row. The ratios are
 * mount / rpctls-cp per run (the rows of one run are close in time), their
 * median and spread; the targets are >= 0.7.
 *
 * Needs root and /dev/fuse (a FUSE mount), and rpctls-nfsd, rpctls-cp and
 * rpctls-mount next to this program.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rpctls/pki.h"

#include "bench.h"

#define NSRV 3
#define MAX_RUNS 15
#define BLOCK (1u << 20)
#define MAX_ARGS 32

enum row { CP_WRITE, CP_READ, CP_MIRROR, MNT_WRITE, MNT_READ, MNT_MIRROR, NROWS };

static const char *const row_name[NROWS] = {
    "rpctls-cp write",          "rpctls-cp read-back",      "rpctls-cp write, 2 mirrors",
    "mount write (dd conv=fsync)", "mount read (fresh mount)", "mount write, 2 mirrors",
};
static const char *const row_key[NROWS] = {
    "cp_write", "cp_read", "cp_write_2_mirrors", "mount_write", "mount_read", "mount_write_2_mirrors",
};

/* The ratios: mount row / rpctls-cp row, with the target. */
static const struct {
    const char *name;
    enum row mount, cp;
} ratios[] = {
    {"write", MNT_WRITE, CP_WRITE},
    {"read", MNT_READ, CP_READ},
    {"mirrored write", MNT_MIRROR, CP_MIRROR},
};

struct bench {
    char dir[4096];                 /* where rpctls-nfsd, rpctls-cp, rpctls-mount are */
    char base[600], pki[700], src[700], log[700];
    uint64_t size;
    struct bench_nfsd srv[NSRV];
    char url[NSRV][1100];
    char tls[3][720];               /* --ca, --cert, --key files */
    char *extra[MAX_ARGS];          /* --mount-args, split at spaces */
    int nextra;
    int runs;
    double secs[NROWS][MAX_RUNS], cpu[NROWS][MAX_RUNS];
};

static double rusage_cpu(const struct rusage *ru)
{
    return (double)ru->ru_utime.tv_sec + ru->ru_utime.tv_usec * 1e-6 + (double)ru->ru_stime.tv_sec +
           ru->ru_stime.tv_usec * 1e-6;
}

/* ---- processes --------------------------------------------------------------- */

/* Forks argv[0] (a path) with stdout to /dev/null and stderr appended to
 * the bench's log. */
static pid_t spawn(const struct bench *b, char *const argv[])
{
    pid_t pid = fork();

    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY), log = open(b->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (null >= 0)
            dup2(null, 1);
        if (log >= 0)
            dup2(log, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Waits for pid; 0 when it exited 0. *ru gets its CPU. */
static int reap(pid_t pid, const char *what, struct rusage *ru)
{
    int status;

    if (wait4(pid, &status, 0, ru) != pid)
        return -errno;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "rpctls-bench: %s failed (status %d)\n", what, status);
        return -EIO;
    }
    return 0;
}

/* Starts server i over TLS (required, clients verified) on a fresh port. */
static int nfsd_start(struct bench *b, int i)
{
    const char *extra[] = {"--tls", "required", "--ca", b->tls[0], NULL};
    char export[1024], state[1100];
    int ret;

    snprintf(export, sizeof export, "%s/export%d", b->base, i);
    snprintf(state, sizeof state, "%s/state%d", b->base, i);
    if ((ret = bench_nfsd_start(&b->srv[i], export, state, b->pki, extra)) != 0)
        return ret;
    snprintf(b->url[i], sizeof b->url[i], "nfs://127.0.0.1:%u%s", (unsigned)b->srv[i].port, b->srv[i].export);
    return 0;
}


/* ---- files ---------------------------------------------------------------- */


static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* 0 when path holds exactly the source's bytes; the file is removed
 * either way (exports and copies live in memory, /dev/shm). */
static int verify(const struct bench *b, const char *path, const char *what)
{
    char *x = malloc(BLOCK), *y = malloc(BLOCK);
    int fa = open(b->src, O_RDONLY), fb = open(path, O_RDONLY), ret = 0;
    uint64_t off = 0;

    if (!x || !y || fa < 0 || fb < 0)
        ret = -EIO;
    while (ret == 0) {
        ssize_t na = read(fa, x, BLOCK), nb = read(fb, y, BLOCK);
        if (na < 0 || nb < 0 || na != nb || memcmp(x, y, (size_t)na) != 0)
            ret = -EIO;
        else if (na == 0)
            break;
        off += (uint64_t)na;
    }
    if (ret == 0 && off != b->size)
        ret = -EIO;
    if (ret != 0)
        fprintf(stderr, "rpctls-bench: %s: %s differs from the source\n", what, path);
    free(x);
    free(y);
    if (fa >= 0)
        close(fa);
    if (fb >= 0)
        close(fb);
    unlink(path);
    return ret;
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return (type == FTW_DP ? rmdir(path) : unlink(path)) == 0 ? 0 : -1;
}

/* Removes dir and everything below it (exports, state, PKI, copies). */
static void rm_tree(const char *dir)
{
    if (nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "rpctls-bench: could not remove all of %s\n", dir);
}

/* ---- rows ------------------------------------------------------------------- */

/* rpctls-cp with the mount's TLS files, from src to the ndst dsts. */
static int run_cp(struct bench *b, const char *src, char *const dsts[], int ndst, double *secs, double *cpu)
{
    char prog[4200];
    char *argv[16] = {prog, "--tls", "--ca", b->tls[0], "--cert", b->tls[1], "--key", b->tls[2], "--no-progress",
                      "--timeout", "60000", (char *)src};
    struct rusage ru;
    double t0 = bench_now();
    pid_t pid;
    int n = 12, ret;

    snprintf(prog, sizeof prog, "%s/rpctls-cp", b->dir);
    for (int i = 0; i < ndst; i++)
        argv[n++] = dsts[i];
    argv[n] = NULL;
    if ((pid = spawn(b, argv)) < 0)
        return -errno;
    ret = reap(pid, "rpctls-cp", &ru);
    *secs = bench_now() - t0;
    *cpu = rusage_cpu(&ru);
    return ret;
}

/* Mounts server 0 (and the other two as mirrors) on mnt; waits until the
 * mount is in /proc/mounts. */
static int mount_start(struct bench *b, const char *mnt, int mirrors, pid_t *pid)
{
    char prog[4200], want[700], buf[65536];
    char *argv[MAX_ARGS + 16];
    int n = 0;

    snprintf(prog, sizeof prog, "%s/rpctls-mount", b->dir);
    argv[n++] = prog;
    argv[n++] = "-f";
    argv[n++] = "--ca";
    argv[n++] = b->tls[0];
    argv[n++] = "--cert";
    argv[n++] = b->tls[1];
    argv[n++] = "--key";
    argv[n++] = b->tls[2];
    for (int i = 0; i < b->nextra; i++)
        argv[n++] = b->extra[i];
    for (int i = 1; mirrors && i < NSRV; i++) {
        argv[n++] = "--mirror";
        argv[n++] = b->url[i];
    }
    argv[n++] = b->url[0];
    argv[n++] = (char *)mnt;
    argv[n] = NULL;
    if (mkdir(mnt, 0755) < 0 && errno != EEXIST)
        return -errno;
    if ((*pid = spawn(b, argv)) < 0)
        return -errno;
    snprintf(want, sizeof want, " %s fuse", mnt);
    for (int tries = 0; tries < 1000; tries++) { /* 10 s */
        int fd = open("/proc/mounts", O_RDONLY), status;
        ssize_t len = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;

        if (fd >= 0)
            close(fd);
        buf[len > 0 ? len : 0] = '\0';
        if (strstr(buf, want))
            return 0;
        if (waitpid(*pid, &status, WNOHANG) == *pid) {
            fprintf(stderr, "rpctls-bench: rpctls-mount exited (status %d)\n", status);
            *pid = 0;
            return -EIO;
        }
        usleep(10000);
    }
    fprintf(stderr, "rpctls-bench: %s was not mounted in 10 s\n", mnt);
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    return -ETIMEDOUT;
}

/* Unmounts mnt and reaps rpctls-mount; *cpu += its CPU. */
static int mount_stop(pid_t pid, const char *mnt, double *cpu)
{
    struct rusage ru;
    int ret;

    if (umount2(mnt, 0) != 0) {
        fprintf(stderr, "rpctls-bench: umount %s: %s\n", mnt, strerror(errno));
        umount2(mnt, MNT_DETACH);
    }
    ret = reap(pid, "rpctls-mount", &ru);
    *cpu += rusage_cpu(&ru);
    return ret;
}

/* dd if=from of=to bs=1M [conv=fsync]: the timed part of a mount row. */
static int dd(const struct bench *b, const char *from, const char *to, int sync, double *secs, double *cpu)
{
    char *buf = NULL;
    double t0 = bench_now(), c0 = bench_thread_cpu();
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644), ret = 0;
    uint64_t done = 0;

    if (in < 0 || out < 0)
        ret = -errno;
    else if (posix_memalign((void **)&buf, 4096, BLOCK) != 0)
        ret = -ENOMEM;
    while (ret == 0) {
        ssize_t n = read(in, buf, BLOCK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ret = n < 0 ? -errno : 0;
            break;
        }
        ret = write_all(out, buf, (size_t)n);
        done += (uint64_t)n;
    }
    if (ret == 0 && sync && fsync(out) != 0)
        ret = -errno;
    if (out >= 0 && close(out) != 0 && ret == 0)
        ret = -errno;
    *secs = bench_now() - t0;
    *cpu = bench_thread_cpu() - c0;
    if (in >= 0)
        close(in);
    free(buf);
    if (ret == 0 && done != b->size)
        ret = -EIO;
    if (ret != 0)
        fprintf(stderr, "rpctls-bench: %s -> %s: %s\n", from, to, strerror(-ret));
    return ret;
}

/* A mount row: mount, dd in or out, unmount. */
static int run_mount(struct bench *b, enum row r, int run)
{
    char mnt[700], from[800], to[800];
    pid_t pid;
    int ret;

    snprintf(mnt, sizeof mnt, "%s/mnt", b->base);
    if (r == MNT_READ) {
        snprintf(from, sizeof from, "%s/dd.bin", mnt);
        snprintf(to, sizeof to, "%s/back.bin", b->base);
    } else {
        snprintf(from, sizeof from, "%s", b->src);
        snprintf(to, sizeof to, "%s/dd.bin", mnt);
    }
    if ((ret = mount_start(b, mnt, r == MNT_MIRROR, &pid)) != 0)
        return ret;
    ret = dd(b, from, to, r != MNT_READ, &b->secs[r][run], &b->cpu[r][run]);
    if (mount_stop(pid, mnt, &b->cpu[r][run]) != 0 && ret == 0)
        ret = -EIO;
    return ret;
}

/* One run: the six rows, each file checked and removed after its row. */
static int run_once(struct bench *b, int run)
{
    char cp0[1200], back[1200], m[NSRV][1200], dd0[NSRV][1200];
    char *dsts[NSRV];
    int ret;

    snprintf(cp0, sizeof cp0, "%s/cp.bin", b->url[0]);
    snprintf(back, sizeof back, "%s/back.bin", b->base);
    for (int i = 0; i < NSRV; i++) {
        snprintf(m[i], sizeof m[i], "%s/cpm.bin", b->url[i]);
        snprintf(dd0[i], sizeof dd0[i], "%s/dd.bin", b->srv[i].export);
        dsts[i] = m[i];
    }
    char *one[1] = {cp0}, *out[1] = {back};
    if ((ret = run_cp(b, b->src, one, 1, &b->secs[CP_WRITE][run], &b->cpu[CP_WRITE][run])) != 0 ||
        (ret = run_cp(b, cp0, out, 1, &b->secs[CP_READ][run], &b->cpu[CP_READ][run])) != 0)
        return ret;
    snprintf(cp0, sizeof cp0, "%s/cp.bin", b->srv[0].export);
    if ((ret = verify(b, cp0, "rpctls-cp write")) != 0 || (ret = verify(b, back, "rpctls-cp read-back")) != 0)
        return ret;
    if ((ret = run_cp(b, b->src, dsts, NSRV, &b->secs[CP_MIRROR][run], &b->cpu[CP_MIRROR][run])) != 0)
        return ret;
    for (int i = 0; i < NSRV && ret == 0; i++) {
        snprintf(m[i], sizeof m[i], "%s/cpm.bin", b->srv[i].export);
        ret = verify(b, m[i], "rpctls-cp write, 2 mirrors");
    }
    if (ret != 0 || (ret = run_mount(b, MNT_WRITE, run)) != 0 || (ret = run_mount(b, MNT_READ, run)) != 0)
        return ret;
    if ((ret = verify(b, dd0[0], "mount write")) != 0 || (ret = verify(b, back, "mount read")) != 0)
        return ret;
    if ((ret = run_mount(b, MNT_MIRROR, run)) != 0)
        return ret;
    for (int i = 0; i < NSRV && ret == 0; i++)
        ret = verify(b, dd0[i], "mount write, 2 mirrors");
    return ret;
}

/* ---- report -------------------------------------------------------------------- */

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median, minimum and maximum of v[0..n). */
static void stats(const double *v, int n, double *med, double *lo, double *hi)
{
    double s[MAX_RUNS];

    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, dbl_cmp);
    *med = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    *lo = s[0];
    *hi = s[n - 1];
}

static void report(const struct bench *b, int json)
{
    double mbps[NROWS][MAX_RUNS], gib = (double)b->size / (1u << 30);
    int n = b->runs;

    for (int r = 0; r < NROWS; r++)
        for (int i = 0; i < n; i++)
            mbps[r][i] = (double)b->size / 1e6 / b->secs[r][i];
    if (!json)
        printf("rpctls-bench mount: %.1f MiB, %d run%s; 3 rpctls-nfsd over TLS on loopback, exports in %s\n"
               "%-30s %8s  %-18s %10s  %s\n",
               (double)b->size / (1 << 20), n, n == 1 ? "" : "s", b->base, "row", "MB/s", "(min - max)",
               "CPU s/GiB", "(min - max), client side");
    for (int r = 0; r < NROWS; r++) {
        double med, lo, hi, cpu[MAX_RUNS], cmed, clo, chi;
        for (int i = 0; i < n; i++)
            cpu[i] = b->cpu[r][i] / gib;
        stats(mbps[r], n, &med, &lo, &hi);
        stats(cpu, n, &cmed, &clo, &chi);
        if (json) {
            printf("{\"bench\":\"mount\",\"row\":\"%s\",\"bytes\":%llu,\"runs\":%d,\"mbps_median\":%.1f,"
                   "\"mbps_min\":%.1f,\"mbps_max\":%.1f,\"cpu_s_per_gib_median\":%.3f,\"mbps\":[",
                   row_key[r], (unsigned long long)b->size, n, med, lo, hi, cmed);
            for (int i = 0; i < n; i++)
                printf("%s%.1f", i ? "," : "", mbps[r][i]);
            printf("]}\n");
        } else {
            char spread[64];
            snprintf(spread, sizeof spread, "(%.1f - %.1f)", lo, hi);
            printf("%-30s %8.1f  %-18s %10.3f  (%.3f - %.3f)\n", row_name[r], med, spread, cmed, clo, chi);
        }
    }
    for (size_t k = 0; k < sizeof ratios / sizeof ratios[0]; k++) {
        double v[MAX_RUNS], med, lo, hi;
        for (int i = 0; i < n; i++)
            v[i] = mbps[ratios[k].mount][i] / mbps[ratios[k].cp][i];
        stats(v, n, &med, &lo, &hi);
        if (json)
            printf("{\"bench\":\"mount\",\"ratio\":\"%s\",\"median\":%.3f,\"min\":%.3f,\"max\":%.3f,\"target\":0.7}\n",
                   ratios[k].name, med, lo, hi);
        else
            printf("ratio %-15s %.2f (%.2f - %.2f)  target >= 0.7 %-8s [%s / %s]\n", ratios[k].name, med, lo, hi,
                   med >= 0.7 ? "met" : "not met", row_name[ratios[k].mount], row_name[ratios[k].cp]);
    }
}

/* ---- command ------------------------------------------------------------------ */

static void mount_usage(FILE *f)
{
    fprintf(f, "usage: rpctls-bench mount [options]\n"
               "rpctls-mount against rpctls-cp, the same file to the same three rpctls-nfsd over TLS on\n"
               "loopback, side by side in every run: rpctls-cp write, read-back and write to the\n"
               "primary + 2 mirrors; dd bs=1M conv=fsync into a mount, out of a fresh mount, and into\n"
               "a mount with --mirror x2. MB/s (median and spread over the runs), client CPU per GiB,\n"
               "and the ratios mount / rpctls-cp per run (targets >= 0.7). Needs root and /dev/fuse.\n"
               "  --size MIB          file size in MiB (default 1024; or with a suffix: 512K, 2G)\n"
               "  --runs N            runs of every row (default 3, at most %d)\n"
               "  --dir DIR           exports, source and copies (default /dev/shm, else /tmp)\n"
               "  --mount-args ARGS   more rpctls-mount options, split at spaces (e.g. \"--max-write 1020K\")\n"
               "  --json              one JSON object per row and per ratio\n",
               MAX_RUNS);
}

int bench_mount(int argc, char **argv)
{
    static const struct option lopts[] = {
        {"size", required_argument, NULL, 's'}, {"runs", required_argument, NULL, 'r'},
        {"dir", required_argument, NULL, 'd'},  {"mount-args", required_argument, NULL, 'm'},
        {"json", no_argument, NULL, 'j'},       {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static struct bench b; /* large; one per process */
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    char *margs = NULL, err[512], mnt[700];
    int json = 0, opt, ret = 0;
    uint64_t v;

    memset(&b, 0, sizeof b);
    b.size = 1ull << 30;
    b.runs = 3;
    while ((opt = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        switch (opt) {
        case 's': {
            /* MiB, or bytes with a suffix (K, M, G): a number that ends
             * in a digit has none. */
            size_t n = strlen(optarg);
            if (tool_parse_size(optarg, BENCH_SIZE, &v) != 0)
                v = 0;
            else if (n > 0 && isdigit((unsigned char)optarg[n - 1]))
                v = v > (UINT64_MAX >> 20) ? 0 : v << 20;
            if (v == 0) {
                fprintf(stderr, "rpctls-bench: bad --size '%s'\n", optarg);
                return 2;
            }
            b.size = v;
            break;
        }
        case 'r':
            b.runs = atoi(optarg);
            if (b.runs < 1 || b.runs > MAX_RUNS) {
                fprintf(stderr, "rpctls-bench: --runs must be 1..%d\n", MAX_RUNS);
                return 2;
            }
            break;
        case 'd': dir = optarg; break;
        case 'm': margs = optarg; break;
        case 'j': json = 1; break;
        case 'h': mount_usage(stdout); return 0;
        default: mount_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "rpctls-bench: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    for (char *save = NULL, *a = margs ? strtok_r(margs, " ", &save) : NULL; a; a = strtok_r(NULL, " ", &save)) {
        if (b.nextra == MAX_ARGS) {
            fprintf(stderr, "rpctls-bench: --mount-args: at most %d arguments\n", MAX_ARGS);
            return 2;
        }
        b.extra[b.nextra++] = a;
    }
    if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) != 0) {
        fprintf(stderr, "rpctls-bench mount: needs root and /dev/fuse (it mounts rpctls-mount)\n");
        return 1;
    }
    {
        ssize_t n = readlink("/proc/self/exe", b.dir, sizeof b.dir - 1);
        char prog[4200];
        if (n < 0)
            return 1;
        b.dir[n] = '\0';
        *strrchr(b.dir, '/') = '\0';
        snprintf(prog, sizeof prog, "%s/rpctls-mount", b.dir);
        if (access(prog, X_OK) != 0) {
            fprintf(stderr, "rpctls-bench mount: %s is not built (libfuse3-dev missing?)\n", prog);
            return 1;
        }
    }

    snprintf(b.base, sizeof b.base, "%s/rpctls-bench-mount-XXXXXX", dir);
    if (mkdtemp(b.base) == NULL) {
        fprintf(stderr, "rpctls-bench: %s: %s\n", b.base, strerror(errno));
        return 1;
    }
    snprintf(b.pki, sizeof b.pki, "%s/pki", b.base);
    snprintf(b.src, sizeof b.src, "%s/source.bin", b.base);
    snprintf(b.log, sizeof b.log, "%s/children.log", b.base);
    snprintf(b.tls[0], sizeof b.tls[0], "%s/ca.pem", b.pki);
    snprintf(b.tls[1], sizeof b.tls[1], "%s/client.pem", b.pki);
    snprintf(b.tls[2], sizeof b.tls[2], "%s/client.key", b.pki);
    snprintf(mnt, sizeof mnt, "%s/mnt", b.base);
    if (ktls_pki_make_dir(b.pki, 365, err, sizeof err) != 0) {
        fprintf(stderr, "rpctls-bench: %s\n", err);
        ret = -EIO;
    }
    if (ret == 0)
        ret = bench_write_source(b.src, b.size);
    for (int i = 0; i < NSRV && ret == 0; i++)
        ret = nfsd_start(&b, i);
    for (int run = 0; run < b.runs && ret == 0; run++)
        ret = run_once(&b, run);
    if (ret == 0) {
        report(&b, json);
    } else {
        /* What rpctls-cp, rpctls-mount and rpctls-nfsd said. */
        FILE *f = fopen(b.log, "r");
        char line[1024];
        fprintf(stderr, "rpctls-bench mount: failed; the programs' messages:\n");
        while (f && fgets(line, sizeof line, f))
            fputs(line, stderr);
        if (f)
            fclose(f);
        umount2(mnt, MNT_DETACH); /* a mount left behind by a failed row */
    }
    for (int i = 0; i < NSRV; i++)
        bench_nfsd_stop(&b.srv[i]);
    rm_tree(b.base);
    return ret == 0 ? 0 : 1;
}
