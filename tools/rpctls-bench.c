/*
 * rpctls-bench - benchmarks, always side by side in one run.
 *
 *   rpctls-bench tls [options]   record-layer TX modes against raw AEAD speed
 *   rpctls-bench rpc [options]   RPC call rate and bulk throughput, plain and TLS
 *   rpctls-bench mirror [options] mirrored NFS write to two servers, per TX mode
 *   rpctls-bench server [options] one rpctls-nfsd shared by many clients: throughput per
 *                                 --threads, NULL latency during a COMMIT, setups/s
 *   rpctls-bench mount [options]  rpctls-mount against rpctls-cp: write, read, mirrored write
 */
#include <stdio.h>
#include <string.h>

#include "bench/bench.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: rpctls-bench COMMAND [options]\n"
               "commands:\n"
               "  tls     record-layer TX modes against raw AEAD speed (rpctls-bench tls --help)\n"
               "  rpc     RPC call rate and bulk throughput, plain and TLS (rpctls-bench rpc --help)\n"
               "  mirror  mirrored NFS write to two rpctls-nfsd, per TX mode (rpctls-bench mirror --help)\n"
               "  server  one rpctls-nfsd shared by many clients: aggregate throughput per --threads,\n"
               "          NULL latency during a 1 GiB COMMIT, TLS setups/s against raw OpenSSL\n"
               "          (rpctls-bench server --help)\n"
               "  mount   rpctls-mount against rpctls-cp over TLS: dd into and out of a mount, and into\n"
               "          a mount with 2 mirrors, each against rpctls-cp (rpctls-bench mount --help)\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "tls") == 0)
        return bench_tls(argc - 1, argv + 1);
    if (strcmp(argv[1], "rpc") == 0)
        return bench_rpc(argc - 1, argv + 1);
    if (strcmp(argv[1], "mirror") == 0)
        return bench_mirror(argc - 1, argv + 1);
    if (strcmp(argv[1], "server") == 0)
        return bench_server(argc - 1, argv + 1);
    if (strcmp(argv[1], "mount") == 0)
        return bench_mount(argc - 1, argv + 1);
    fprintf(stderr, "rpctls-bench: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
