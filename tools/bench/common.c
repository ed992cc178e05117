/*
 * tools/bench/common.c - helpers shared by the rpctls-bench commands.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rpctls/aead.h"
#include "rpctls/ktls.h"
#include "rpctls/mbuf.h"

#include "bench.h"

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double bench_thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double bench_process_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int bench_parse_modes(const char *s, int modes[4])
{
    enum ktls_tx_mode m;

    if (strcmp(s, "all") == 0) {
        modes[0] = modes[1] = modes[2] = modes[3] = 1;
        return 0;
    }
    if (ktls_tx_mode_from_name(s, &m) != 0) {
        fprintf(stderr, "rpctls-bench: unknown mode '%s'%s\n", s,
                strcmp(s, "inplace") == 0 ? " (it is spelled unsafe-inplace)" : "");
        return -1;
    }
    memset(modes, 0, 4 * sizeof(modes[0]));
    modes[m] = 1;
    return 0;
}

int bench_cipher_cost(double *seal_s_per_gib, double *open_s_per_gib)
{
    const struct ktls_aead_engine *e = ktls_aead_default(KTLS_AES_128_GCM_SHA256);
    const size_t len = 256u << 20, rec = 16384;
    uint8_t key[16] = {1}, nonce[12] = {0}, aad[5] = {23, 3, 3, 0x40, 0x11}, tag[16];
    struct ktls_aead_key *k;
    uint8_t *buf = malloc(len), *dst = mb_rec_alloc();
    double t;

    if (buf == NULL || dst == NULL || e->key_new(KTLS_AES_128_GCM_SHA256, key, &k) != 0) {
        free(buf);
        mb_rec_free(dst);
        return -1;
    }
    memset(buf, 0x5a, len);
    /* Seal out of place into one reused record buffer (the warmest
     * destination there is), as the record layer seals shared pages. */
    t = bench_thread_cpu();
    for (size_t off = 0; off < 2 * len; off += rec) {
        struct iovec s = {buf + off % len, rec}, d = {dst + 64, rec};
        e->seal(k, nonce, aad, sizeof(aad), &s, 1, &d, 1, tag);
    }
    *seal_s_per_gib = (bench_thread_cpu() - t) / ((double)(2 * len) / (1u << 30));
    /* Open in place, as the receiver does (the tags do not verify; the work
     * is the same). */
    t = bench_thread_cpu();
    for (size_t off = 0; off < 2 * len; off += rec) {
        struct iovec s = {buf + off % len, rec};
        (void)e->open(k, nonce, aad, sizeof(aad), &s, 1, &s, 1, tag);
    }
    *open_s_per_gib = (bench_thread_cpu() - t) / ((double)(2 * len) / (1u << 30));
    e->key_free(k);
    free(buf);
    mb_rec_free(dst);
    return 0;
}

/* ---- the processes a bench starts ------------------------------------------ */

int bench_exe_dir(char *buf, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", buf, len - 1);
    char *slash;

    if (n < 0)
        return -errno;
    buf[n] = '\0';
    if ((slash = strrchr(buf, '/')) != NULL)
        *slash = '\0';
    return 0;
}

int bench_nfsd_start(struct bench_nfsd *d, const char *export, const char *state, const char *pki,
                     const char *const extra[])
{
    char dir[4096], prog[4200], cert[1100], key[1100], line[256] = "";
    const char *argv[40];
    int pfd[2], n = 0, got = 0, ret;
    FILE *f;

    memset(d, 0, sizeof *d);
    if ((ret = bench_exe_dir(dir, sizeof dir)) != 0)
        return ret;
    snprintf(prog, sizeof prog, "%s/rpctls-nfsd", dir);
    snprintf(d->export, sizeof d->export, "%s", export);
    snprintf(cert, sizeof cert, "%s/server.pem", pki);
    snprintf(key, sizeof key, "%s/server.key", pki);
    argv[n++] = prog;
    argv[n++] = "--export", argv[n++] = d->export;
    argv[n++] = "--state-dir", argv[n++] = state;
    argv[n++] = "--listen", argv[n++] = "127.0.0.1:0";
    argv[n++] = "--cert", argv[n++] = cert;
    argv[n++] = "--key", argv[n++] = key;
    argv[n++] = "--no-root-squash";
    argv[n++] = "--rpcbind", argv[n++] = "off";
    argv[n++] = "--quiet";
    for (int i = 0; extra && extra[i] && n < (int)(sizeof argv / sizeof argv[0]) - 1; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    if ((mkdir(d->export, 0755) < 0 && errno != EEXIST) || pipe(pfd) < 0)
        return -errno;
    if ((d->pid = fork()) < 0)
        return -errno;
    if (d->pid == 0) {
        dup2(pfd[1], 2);
        close(pfd[0]);
        close(pfd[1]);
        execv(prog, (char *const *)argv);
        _exit(127);
    }
    close(pfd[1]);
    f = fdopen(pfd[0], "r");
    /* Warnings (a certificate close to expiry) may come before the line we want. */
    for (int k = 0; f != NULL && !got && k < 16 && fgets(line, sizeof line, f) != NULL; k++)
        got = sscanf(line, "rpctls-nfsd: listening on 127.0.0.1:%hu", &d->port) == 1;
    if (f)
        fclose(f); /* the server logs errors only; a closed pipe just drops them */
    else
        close(pfd[0]);
    if (!got) {
        fprintf(stderr, "rpctls-bench: %s did not start%s%s", prog, line[0] ? ": " : "\n", line);
        bench_nfsd_stop(d);
        return -EIO;
    }
    return 0;
}

void bench_nfsd_stop(struct bench_nfsd *d)
{
    if (d->pid > 0) {
        kill(d->pid, SIGTERM);
        waitpid(d->pid, NULL, 0);
        d->pid = 0;
    }
}

int bench_write_source(const char *path, uint64_t size)
{
    enum { BLOCK_BYTES = 1 << 20 };
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644), ret = 0;
    uint64_t x = 0x9e3779b97f4a7c15ull, *buf = malloc(BLOCK_BYTES);

    for (uint64_t off = 0; fd >= 0 && buf != NULL && off < size && ret == 0; off += BLOCK_BYTES) {
        size_t n = size - off < BLOCK_BYTES ? (size_t)(size - off) : BLOCK_BYTES;
        for (size_t k = 0; k < BLOCK_BYTES / 8; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[k] = x;
        }
        if (write(fd, buf, n) != (ssize_t)n)
            ret = -EIO;
    }
    free(buf);
    if (fd < 0 || close(fd) != 0 || ret != 0) {
        fprintf(stderr, "rpctls-bench: cannot write the source %s\n", path);
        return -EIO;
    }
    return 0;
}
