/*
 * tests/util/nfsd.c - rpctls-nfsd processes and scratch files (see nfsd.h).
 */
#define _GNU_SOURCE
#include "util/nfsd.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

const char *tu_tool_path(const char *name, char *buf, size_t len)
{
    const char *dir = getenv("RPCTLS_TOOLS_DIR");
    char exe[PATH_MAX];
    ssize_t n;

    if (dir && dir[0]) {
        snprintf(buf, len, "%s/%s", dir, name);
        return buf;
    }
    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n < 0) {
        snprintf(buf, len, "%s", name);
        return buf;
    }
    exe[n] = '\0';
    /* build/tests/test_x -> build/name */
    snprintf(buf, len, "%s/../%s", dirname(exe), name);
    return buf;
}

int tu_mkdtemp(char *buf, size_t len, const char *tag)
{
    const char *tmp = getenv("TMPDIR");

    snprintf(buf, len, "%s/rpctls-%s-XXXXXX", tmp && tmp[0] ? tmp : "/tmp", tag);
    if (!mkdtemp(buf)) {
        perror("mkdtemp");
        return -1;
    }
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

void tu_rmtree(const char *path)
{
    if (path && path[0])
        nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int tu_nfsd_init(struct tu_nfsd *d, const char *base, const char *name, const char *tls,
                 const struct tu_certs *certs)
{
    memset(d, 0, sizeof *d);
    d->pid = -1;
    TU_FMT(d->export_dir, "%s/%s-export", base, name);
    TU_FMT(d->state_dir, "%s/%s-state", base, name);
    TU_FMT(d->log, "%s/%s.log", base, name);
    TU_FMT(d->tls, "%s", tls);
    d->certs = certs;
    if (mkdir(d->export_dir, 0755) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int tu_nfsd_start(struct tu_nfsd *d, uint16_t port)
{
    char tool[PATH_MAX], listen[64];
    char *argv[24 + 16];
    int argc = 0, fd;
    pid_t pid;

    tu_tool_path("rpctls-nfsd", tool, sizeof tool);
    TU_FMT(listen, "127.0.0.1:%u", (unsigned)port);
    argv[argc++] = tool;
    argv[argc++] = "--export";
    argv[argc++] = d->export_dir;
    argv[argc++] = "--listen";
    argv[argc++] = listen;
    argv[argc++] = "--tls";
    argv[argc++] = d->tls;
    argv[argc++] = "--state-dir";
    argv[argc++] = d->state_dir;
    /* Parallel tests must not replace each other's rpcbind entries. */
    argv[argc++] = "--rpcbind";
    argv[argc++] = "off";
    /* The tests run as root and their clients send uid 0: keep it root
     * (the default, root_squash, is tested in test_nfs3_identity.c). */
    argv[argc++] = "--no-root-squash";
    if (strcmp(d->tls, "off") != 0 && d->certs) {
        argv[argc++] = "--cert";
        argv[argc++] = (char *)d->certs->server_cert;
        argv[argc++] = "--key";
        argv[argc++] = (char *)d->certs->server_key;
        argv[argc++] = "--ca";
        argv[argc++] = (char *)d->certs->ca_cert;
    }
    if (d->max_io[0]) {
        argv[argc++] = "--max-io";
        argv[argc++] = d->max_io;
    }
    if (d->tx_mode[0]) {
        argv[argc++] = "--tx-mode";
        argv[argc++] = d->tx_mode;
    }
    for (int i = 0; i < 15 && d->extra[i] != NULL; i++)
        argv[argc++] = (char *)d->extra[i];
    argv[argc] = NULL;
    fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        perror(d->log);
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        close(fd);
        return -1;
    }
    if (pid == 0) {
        /* Dies with the test (a killed or timed-out test leaves no server);
         * the forking thread lives as long as the test's main thread. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fd, STDERR_FILENO);
        dup2(fd, STDOUT_FILENO);
        execv(tool, argv);
        _exit(127);
    }
    close(fd);
    d->pid = pid;
    for (int i = 0; i < 1000; i++) { /* 10 s */
        char line[512];
        FILE *f = fopen(d->log, "r");
        int status;
        while (f && fgets(line, sizeof line, f)) {
            unsigned p;
            const char *colon = strrchr(line, ':');
            /* "listening on 127.0.0.1:PORT", or another address (--listen in extra) */
            if (strncmp(line, "rpctls-nfsd: listening on ", 26) == 0 && colon != NULL &&
                sscanf(colon + 1, "%u", &p) == 1) {
                fclose(f);
                d->port = (uint16_t)p;
                return 0;
            }
        }
        if (f)
            fclose(f);
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "tu_nfsd_start: rpctls-nfsd exited; its log %s:\n", d->log);
            d->pid = -1;
            if ((f = fopen(d->log, "r")) != NULL) {
                while (fgets(line, sizeof line, f))
                    fputs(line, stderr);
                fclose(f);
            }
            return -1;
        }
        sleep_ms(10);
    }
    fprintf(stderr, "tu_nfsd_start: no listening line in %s\n", d->log);
    tu_nfsd_kill(d);
    return -1;
}

int tu_nfsd_stop(struct tu_nfsd *d)
{
    int status = 0;

    if (d->pid <= 0)
        return -1;
    kill(d->pid, SIGTERM);
    for (int i = 0; i < 1000; i++) {
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            d->pid = -1;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        sleep_ms(10);
    }
    tu_nfsd_kill(d);
    return -1;
}

void tu_nfsd_kill(struct tu_nfsd *d)
{
    if (d->pid <= 0)
        return;
    kill(d->pid, SIGKILL);
    waitpid(d->pid, NULL, 0);
    d->pid = -1;
}

int tu_write_random_file(const char *path, uint64_t size, uint64_t seed)
{
    static unsigned char buf[1 << 16];
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    if (fd < 0)
        return -1;
    while (size > 0) {
        size_t n = size < sizeof buf ? (size_t)size : sizeof buf;
        for (size_t i = 0; i < n; i += 8) {
            /* xorshift64* */
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            uint64_t v = x * 0x2545F4914F6CDD1Dull;
            memcpy(buf + i, &v, n - i < 8 ? n - i : 8);
        }
        if (write(fd, buf, n) != (ssize_t)n) {
            close(fd);
            return -1;
        }
        size -= n;
    }
    return close(fd);
}

int tu_sha256_file(const char *path, uint8_t out[32])
{
    static unsigned char buf[1 << 16];
    EVP_MD_CTX *ctx;
    unsigned len = 32;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

    if (fd < 0)
        return -1;
    ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        rc = -1;
    while (rc == 0 && (n = read(fd, buf, sizeof buf)) != 0) {
        if (n < 0) {
            if (errno != EINTR)
                rc = -1;
            continue;
        }
        EVP_DigestUpdate(ctx, buf, (size_t)n);
    }
    if (rc == 0)
        EVP_DigestFinal_ex(ctx, out, &len);
    EVP_MD_CTX_free(ctx);
    close(fd);
    return rc;
}

int tu_run(char *const argv[], const char *out_file, int timeout_s)
{
    pid_t pid = fork();
    int status;

    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (out_file) {
            int fd = open(out_file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) {
                dup2(fd, STDOUT_FILENO);
                dup2(fd, STDERR_FILENO);
                close(fd);
            }
        }
        execv(argv[0], argv);
        _exit(127);
    }
    for (int i = 0; i < timeout_s * 100; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        sleep_ms(10);
    }
    fprintf(stderr, "tu_run: %s still running after %d s: killed\n", argv[0], timeout_s);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

int tu_file_contains(const char *file, const char *needle)
{
    FILE *f = fopen(file, "r");
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    int found = 0;

    if (!f)
        return 0;
    while (!found && (n = getline(&buf, &cap, f)) > 0)
        found = strstr(buf, needle) != NULL;
    free(buf);
    fclose(f);
    return found;
}

void tu_dest_init(struct tu_dest *t, const struct tu_nfsd *srv, uint16_t port, const char *file,
                  const struct tu_certs *certs, enum ktls_tx_mode mode)
{
    struct krpc_clnt_config *c = &t->d.rpc;
    char addr[32];

    memset(t, 0, sizeof *t);
    TU_FMT(t->path, "%s/%s", srv->export_dir, file);
    TU_FMT(t->label, "nfs://127.0.0.1:%u%s", (unsigned)port, t->path);
    TU_FMT(addr, "127.0.0.1:%u", (unsigned)port);
    krpc_parse_addr(addr, &c->addr, &c->addrlen);
    c->tls = certs ? KRPC_TLS_REQUIRED : KRPC_TLS_OFF;
    if (certs) {
        c->tlscfg.ca_file = certs->ca_cert;
        c->tlscfg.cert_file = certs->client_cert;
        c->tlscfg.key_file = certs->client_key;
        c->tlscfg.server_name = "127.0.0.1";
        c->tlscfg.tx_mode = mode;
    }
    c->name = t->label;
    t->d.label = t->label;
    t->d.path = t->path;
}
