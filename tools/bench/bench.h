/*
 * tools/bench/bench.h - the rpctls-bench commands and their shared helpers.
 * Timing belongs here, not in tests: rows are printed side by side with the
 * ratios between them, because absolute speeds on shared machines drift.
 */
#ifndef RPCTLS_BENCH_H
#define RPCTLS_BENCH_H

#include <stdint.h>
#include <sys/types.h>

#include "common/opts.h"

int bench_tls(int argc, char **argv);
int bench_rpc(int argc, char **argv);
int bench_mirror(int argc, char **argv);
int bench_server(int argc, char **argv);
int bench_mount(int argc, char **argv);

double bench_now(void); /* CLOCK_MONOTONIC seconds */
/* CPU seconds of the calling thread / of the whole process (user + system).
 * On a shared machine wall time includes the time other tenants held the
 * CPU; CPU time is what this process spent, which is what we compare. */
double bench_thread_cpu(void);
double bench_process_cpu(void);
/* The cipher's own cost, measured now on this thread: CPU seconds per GiB of
 * the default engine's AES-128-GCM (the suite the RPC and NFS rows
 * negotiate), 16 KiB records over a 256 MiB buffer, sealed out of place
 * into one reused record buffer and opened in place. 0, or -1. */
int bench_cipher_cost(double *seal_s_per_gib, double *open_s_per_gib);
/* The sizes every command takes, for tool_parse_size: "1048576", "64K",
 * "1M", "1GiB" (decimal, K, M or G, KiB or KB). */
#define BENCH_SIZE (TOOL_SIZE_G | TOOL_SIZE_IB)
/* --mode: a TX mode name or "all" into modes[enum ktls_tx_mode]; 0, or -1
 * with a message on stderr. */
int bench_parse_modes(const char *s, int modes[4]);

/* ---- the processes a bench starts ------------------------------------------ */

/* The directory of the running rpctls-bench, where rpctls-nfsd, rpctls-cp
 * and rpctls-mount are built. 0 or -errno. */
int bench_exe_dir(char *buf, size_t len);

/* An rpctls-nfsd that a bench started. */
struct bench_nfsd {
    pid_t pid;
    uint16_t port;
    char export[1024];
};
/* Starts rpctls-nfsd (next to rpctls-bench) on 127.0.0.1, a free port,
 * exporting export (created when missing) with state in state:
 * --no-root-squash --rpcbind off --quiet, PKI/server.pem and .key as its
 * certificate, then extra (NULL-terminated; NULL for none: --tls and the
 * like). Reads the port it prints. 0, or -errno with a message. */
int bench_nfsd_start(struct bench_nfsd *d, const char *export, const char *state, const char *pki,
                     const char *const extra[]);
/* SIGTERM, then waits for it. Does nothing when it is not running. */
void bench_nfsd_stop(struct bench_nfsd *d);

/* Writes size bytes of pseudo-random (xorshift) data to path: nothing a
 * compressor or a dedup could use. 0 or -EIO with a message. */
int bench_write_source(const char *path, uint64_t size);

#endif
