/*
 * tests/util/nfsd.h - rpctls-nfsd processes, scratch directories and files
 * for end-to-end NFS tests.
 *
 * Tools are found in $RPCTLS_TOOLS_DIR (set by tests/CMakeLists.txt), else
 * in the parent directory of the running test binary.
 */
#ifndef RPCTLS_TEST_NFSD_H
#define RPCTLS_TEST_NFSD_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <sys/types.h>

#include "rpctls/nfs3_mirror.h"
#include "util/certs.h"

/* snprintf into an array that must not truncate (aborts if it would). */
#define TU_FMT(buf, ...)                                                              \
    do {                                                                              \
        if ((size_t)snprintf((buf), sizeof(buf), __VA_ARGS__) >= sizeof(buf))         \
            abort();                                                                  \
    } while (0)

struct tu_nfsd {
    pid_t pid;
    uint16_t port;
    char export_dir[PATH_MAX];
    char state_dir[PATH_MAX];
    char log[PATH_MAX];
    char tls[16];          /* off | optional | required */
    char tx_mode[16];      /* "" : the server's default */
    char max_io[16];       /* --max-io; "" : the server's default */
    const char *extra[16]; /* more arguments for rpctls-nfsd, NULL-terminated ({NULL}: none) */
    const struct tu_certs *certs;
};

/* Path of a tool ("rpctls-nfsd") into buf; returns buf. */
const char *tu_tool_path(const char *name, char *buf, size_t len);

/* A fresh scratch directory under $TMPDIR; 0 or -1. */
int tu_mkdtemp(char *buf, size_t len, const char *tag);
/* rm -rf (no symlinks followed). */
void tu_rmtree(const char *path);

/* Prepares d: export and state directories under base (created), TLS
 * policy tls, certificates (NULL with tls "off"). Does not start. */
int tu_nfsd_init(struct tu_nfsd *d, const char *base, const char *name, const char *tls,
                 const struct tu_certs *certs);
/* Starts rpctls-nfsd on 127.0.0.1:port (0: any; d->port gets the port it
 * printed). Waits up to 10 s for the listening line. 0 or -1. */
int tu_nfsd_start(struct tu_nfsd *d, uint16_t port);
/* SIGTERM, wait (up to 10 s), then SIGKILL. Returns the exit status or -1. */
int tu_nfsd_stop(struct tu_nfsd *d);
/* SIGKILL and reap. */
void tu_nfsd_kill(struct tu_nfsd *d);

/* Writes size bytes of deterministic pseudo-random data (seeded) to path. */
int tu_write_random_file(const char *path, uint64_t size, uint64_t seed);
/* SHA-256 of a file; 0, or -1 when it cannot be read. */
int tu_sha256_file(const char *path, uint8_t out[32]);

/* Runs argv (argv[0] a path) with stdout+stderr to out_file (NULL: inherit),
 * killing it after timeout_s. Returns the exit status, 128+signal, or -1. */
int tu_run(char *const argv[], const char *out_file, int timeout_s);
/* 1 when file contains needle. */
int tu_file_contains(const char *file, const char *needle);

/* A mirror destination: file `file` in srv's export, reached on 127.0.0.1:port
 * (srv->port, or a proxy's), over TLS with certs (client certificate
 * included) or plain TCP when certs is NULL. */
struct tu_dest {
    char label[PATH_MAX + 64];
    char path[PATH_MAX];
    struct nfs3_mirror_dest d;
};
void tu_dest_init(struct tu_dest *t, const struct tu_nfsd *srv, uint16_t port, const char *file,
                  const struct tu_certs *certs, enum ktls_tx_mode mode);

#endif
