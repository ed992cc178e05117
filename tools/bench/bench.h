/*
 * tools/bench/bench.h - the rpctls-bench commands and their shared helpers.
 * Timing belongs here, not in tests: rows are printed side by side with the
 * ratios between them, because absolute speeds on shared machines drift.
 */
#ifndef RPCTLS_BENCH_H
#define RPCTLS_BENCH_H

#include <stdint.h>

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
/* "1048576", "64K", "1M", "1GiB": bytes. 0 or -1 (unparsable). */
int bench_parse_size(const char *s, uint64_t *out);
/* --mode: a TX mode name or "all" into modes[enum ktls_tx_mode]; 0, or -1
 * with a message on stderr. */
int bench_parse_modes(const char *s, int modes[4]);

#endif
