/*
 * rpctls-mount - mount an NFSv3 export over RPC-with-TLS (RFC 9289) with
 * FUSE (libfuse3 low-level API, multi-threaded), optionally mirrored to
 * more servers (--mirror). See --help and docs/mount.md.
 * This file: the options, usage and the session; mount.h lists the other
 * pieces of tools/mount/.
 *
 * Servers: server 0 is the primary (the URL), servers 1.. the mirrors. Each
 * has its own NFS client in threaded mode (nfs3_clnt_start_thread), so each
 * connection, and the encryption of its records, runs on its own loop
 * thread; the FUSE workers hand calls to them through their queues. Every
 * call carries the AUTH_SYS credential of the process that made the request
 * (fuse_req_ctx and /proc/PID/status).
 *
 * Changes (create, mkdir, symlink, mknod, link, rename, remove, rmdir,
 * setattr) go to every healthy server in order; the first healthy one (the
 * leader: the primary unless it has failed) decides the answer, and a
 * mirror that answers differently or not at all is marked failed for the
 * rest of the mount. Reads go to the leader.
 *
 * Inodes: a FUSE nodeid is the address of a struct inode, found by file
 * handle in a hash table so that one NFS object has one nodeid; lookup counts
 * follow the FUSE protocol (every entry reply adds one, forget subtracts).
 * An inode keeps each server's handle once known; a missing one is found
 * by path (LOOKUP from that server's root along the parent/name links).
 *
 * Writes (write_buf): each write's data is copied once into pool pages,
 * from libfuse's splice pipe (the kernel's page-cache pages by reference)
 * or, without splice, from libfuse's buffer; cut into wsize pieces, and
 * each piece goes to every healthy server by reference (mb_chain_copy_ref)
 * as WRITE UNSTABLE without waiting (at most --depth in flight per inode
 * and server); the pieces stay referenced until each server's COMMIT
 * answers with the verifier of its WRITE replies.
 * flush (every close), fsync and release COMMIT; a piece whose verifier
 * changed (a server restart) or that failed or was short is written again
 * FILE_SYNC from the kept pages. getattr, read and truncate wait for the
 * inode's WRITEs in flight first, so this client sees its own writes. At
 * the end (unmount or SIGTERM) files still open are COMMITted too.
 */
#include "mount.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/opts.h"

struct mount_state g = {.srv_mu = PTHREAD_MUTEX_INITIALIZER, .tab_mu = PTHREAD_MUTEX_INITIALIZER};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " [options] nfs://HOST[:PORT]/EXPORT[/SUBDIR] MOUNTPOINT\n"
            "       " PROG " --status MOUNTPOINT\n"
            "\n"
            "Mounts an NFSv3 export with FUSE, over RPC-with-TLS (RFC 9289) or plain TCP.\n"
            "EXPORT is the server's export path; SUBDIR, when given, is mounted instead of its\n"
            "root. Unmount with fusermount3 -u MOUNTPOINT, umount, or SIGTERM.\n"
            "\n"
            "Options:\n"
            "  --tls / --no-tls     RPC-with-TLS required (the default with --ca) / plain TCP\n"
            "  --ca FILE            CA certificate(s), PEM, to verify the server (against HOST)\n"
            "  --cert FILE          client certificate, PEM\n"
            "  --key FILE           its private key, PEM\n"
            "  --server-name NAME   check the server certificate against NAME instead of HOST\n"
            "  --keylog FILE        append TLS secrets in NSS key-log format\n"
            "  --rsize BYTES        bytes per READ (suffixes K, M; default 1M, capped by FSINFO)\n"
            "  --wsize BYTES        bytes per WRITE (the same)\n"
            "  --depth N            WRITEs in flight per file (default 8)\n"
            "  --readahead KIB      the kernel's readahead for this mount, in KiB (default 4 x\n"
            "                       rsize; 0 leaves the kernel's 128); needs root\n"
            "  --max-write BYTES    FUSE's largest write request (default 1M); 1020K or less lets\n"
            "                       libfuse splice written data without CAP_SYS_RESOURCE\n"
            "  --attr-timeout S     seconds the kernel caches attributes (default 1)\n"
            "  --entry-timeout S    seconds the kernel caches names (default 1)\n"
            "  --hard               retry for ever while the server is unreachable (default)\n"
            "  --soft               fail a call with EIO after --retrans retransmissions\n"
            "  --timeo MS           wait per RPC attempt (default 10000 hard, 3000 soft)\n"
            "  --retrans N          retransmissions before a soft call fails (default 3)\n"
            "  --ro                 read-only mount\n"
            "  --mirror URL         also make every change and write every byte on this server\n"
            "                       (nfs://..., repeatable, up to 7); a mirror that fails is\n"
            "                       given up for the rest of the mount and the others go on\n"
            "  --mirror-strict      fsync and close return EIO once any server has failed\n"
            "  --status MOUNTPOINT  print each server's state and counters (exit 3: one failed)\n"
            "  -f                   stay in the foreground\n"
            "  -d                   FUSE debug output (implies -f)\n"
            "  -o OPT[,OPT...]      FUSE mount options (allow_other, ...)\n"
            "  -h, --help           this text\n"
            "\n"
            "The kernel checks permissions from the attributes (default_permissions); the\n"
            "server decides with each call's AUTH_SYS uid, gid and groups, which are the\n"
            "calling process's. flock/fcntl locks are local to this mount (no NLM).\n"
            "Exit status: 0 after a clean unmount, 1 on failure, 2 for bad usage.\n");
}

void die_usage(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, PROG ": ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(" PROG " --help for usage)\n");
    exit(2);
}

/* A size in 4K..MAX_IO: K or M (--help: "suffixes K, M"), 0x as strtoull
 * reads it. */
static uint32_t parse_size(const char *s, const char *what)
{
    uint64_t v = 0;
    int r = tool_parse_size(s, TOOL_SIZE_C_BASES, &v);

    /* Too many digits, or too many once multiplied: not a size. */
    if (r == TOOL_SIZE_NOT_NUMBER || r == TOOL_SIZE_RANGE)
        die_usage("%s: not a size: %s", what, s);
    if (r != TOOL_SIZE_OK || v < 4096 || v > MAX_IO) /* trailing text, a sign */
        die_usage("%s: %s: must be 4K..1M", what, s);
    return (uint32_t)v;
}

static long parse_long(const char *s, const char *what, long lo, long hi)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi)
        die_usage("%s: %s: must be a number in %ld..%ld", what, s, lo, hi);
    return v;
}

static double parse_seconds(const char *s, const char *what)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || v < 0 || v > 86400)
        die_usage("%s: %s: must be seconds in 0..86400", what, s);
    return v;
}

/*
 * The kernel reads ahead on a FUSE mount as on a disk: read_ahead_kb of the
 * mount's backing device, 128 KiB by default whatever max_readahead the
 * daemon asks for. At 128 KiB a sequential read waits for one 128 KiB READ
 * after another; a window of a few rsize keeps several 1 MiB READs in
 * flight (docs/benchmarks.md, the mount section). The device is found in
 * /proc/self/mountinfo (a stat of the mount point would wait for this very
 * daemon). Failing is not fatal: reads are only slower, and the log says so.
 */
static void set_readahead(const char *mnt, long kib)
{
    char real[PATH_MAX], line[2 * PATH_MAX + 512], dev[32] = "", path[PATH_MAX + 64];
    FILE *f;
    int fd;

    if (kib < 0 || realpath(mnt, real) == NULL || (f = fopen("/proc/self/mountinfo", "r")) == NULL)
        return;
    while (fgets(line, sizeof line, f)) {
        char d[32], point[PATH_MAX], fstype[64];
        /* "ID PARENT MAJ:MIN ROOT POINT OPTIONS [TAGS...] - FSTYPE ..." (the
         * point is octal-escaped: a mount point with a space is not found,
         * and the kernel's default stays). */
        if (sscanf(line, "%*s %*s %31s %*s %4095s", d, point) != 2 || strcmp(point, real) != 0)
            continue;
        const char *sep = strstr(line, " - ");
        if (sep && sscanf(sep, " - %63s", fstype) == 1 && strncmp(fstype, "fuse", 4) == 0)
            snprintf(dev, sizeof dev, "%s", d); /* the last one: ours, mounted on top */
    }
    fclose(f);
    if (!dev[0]) {
        fprintf(stderr, PROG ": readahead: %s not found in /proc/self/mountinfo; the kernel's stays\n", real);
        return;
    }
    snprintf(path, sizeof path, "/sys/class/bdi/%s/read_ahead_kb", dev);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || dprintf(fd, "%ld\n", kib) < 0)
        fprintf(stderr, PROG ": readahead: cannot set %s to %ld (%s); reads stay at the kernel's window\n", path,
                kib, strerror(errno));
    if (fd >= 0)
        close(fd);
}

enum {
    O_TLS = 256, O_NOTLS, O_CA, O_CERT, O_KEY, O_SNI, O_KEYLOG, O_RSIZE, O_WSIZE, O_MAXWRITE, O_DEPTH, O_ATTR, O_ENTRY,
    O_HARD, O_SOFT, O_TIMEO, O_RETRANS, O_RO, O_MIRROR, O_STRICT, O_STATUS, O_READAHEAD,
};

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"tls", no_argument, NULL, O_TLS},          {"no-tls", no_argument, NULL, O_NOTLS},
        {"ca", required_argument, NULL, O_CA},      {"cert", required_argument, NULL, O_CERT},
        {"key", required_argument, NULL, O_KEY},    {"server-name", required_argument, NULL, O_SNI},
        {"keylog", required_argument, NULL, O_KEYLOG}, {"rsize", required_argument, NULL, O_RSIZE},
        {"wsize", required_argument, NULL, O_WSIZE}, {"depth", required_argument, NULL, O_DEPTH},
        {"max-write", required_argument, NULL, O_MAXWRITE}, {"readahead", required_argument, NULL, O_READAHEAD},
        {"attr-timeout", required_argument, NULL, O_ATTR}, {"entry-timeout", required_argument, NULL, O_ENTRY},
        {"hard", no_argument, NULL, O_HARD},        {"soft", no_argument, NULL, O_SOFT},
        {"timeo", required_argument, NULL, O_TIMEO}, {"retrans", required_argument, NULL, O_RETRANS},
        {"ro", no_argument, NULL, O_RO},            {"mirror", required_argument, NULL, O_MIRROR},
        {"mirror-strict", no_argument, NULL, O_STRICT}, {"status", required_argument, NULL, O_STATUS},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    struct fuse_args fargs = FUSE_ARGS_INIT(0, NULL);
    struct fuse_session *se = NULL;
    struct fuse_loop_config lc;
    struct conn_opts co;
    const char *mirrors[MAX_SRV - 1], *url, *mnt, *msg;
    unsigned nmirrors = 0;
    int ro = 0, foreground = 0, debug = 0, c, rc, ret = 1;

    memset(&co, 0, sizeof co);
    co.tls = -1;
    co.retrans = 3;
    g.rsize = g.wsize = g.max_write = MAX_IO;
    g.depth = 8;
    g.readahead_kib = -1;
    g.attr_timeout = g.entry_timeout = 1.0;
    if (fuse_opt_add_arg(&fargs, argv[0]) != 0)
        return 1;
    while ((c = getopt_long(argc, argv, "fdo:h", longopts, NULL)) != -1) {
        switch (c) {
        case O_TLS: co.tls = 1; break;
        case O_NOTLS: co.tls = 0; break;
        case O_CA: co.ca = optarg; break;
        case O_CERT: co.cert = optarg; break;
        case O_KEY: co.key = optarg; break;
        case O_SNI: co.sni = optarg; break;
        case O_KEYLOG: co.keylog = optarg; break;
        case O_RSIZE: g.rsize = parse_size(optarg, "--rsize"); break;
        case O_WSIZE: g.wsize = parse_size(optarg, "--wsize"); break;
        case O_MAXWRITE: g.max_write = parse_size(optarg, "--max-write"); break;
        case O_READAHEAD: g.readahead_kib = parse_long(optarg, "--readahead", 0, 1L << 20); break;
        case O_DEPTH: g.depth = (unsigned)parse_long(optarg, "--depth", 1, 64); break;
        case O_ATTR: g.attr_timeout = parse_seconds(optarg, "--attr-timeout"); break;
        case O_ENTRY: g.entry_timeout = parse_seconds(optarg, "--entry-timeout"); break;
        case O_HARD: co.soft = 0; break;
        case O_SOFT: co.soft = 1; break;
        case O_TIMEO: co.timeo = parse_long(optarg, "--timeo", 100, 600000); break;
        case O_RETRANS: co.retrans = parse_long(optarg, "--retrans", 0, 100); break;
        case O_RO: ro = 1; break;
        case O_MIRROR:
            if (nmirrors == MAX_SRV - 1)
                die_usage("at most %d --mirror", MAX_SRV - 1);
            mirrors[nmirrors++] = optarg;
            break;
        case O_STRICT: g.strict = 1; break;
        case O_STATUS:
            fuse_opt_free_args(&fargs);
            return show_status(optarg);
        case 'f': foreground = 1; break;
        case 'd': debug = foreground = 1; break;
        case 'o':
            if (fuse_opt_add_arg(&fargs, "-o") != 0 || fuse_opt_add_arg(&fargs, optarg) != 0)
                return 1;
            break;
        case 'h': usage(stdout); return 0;
        default: die_usage("unknown option");
        }
    }
    if (argc - optind != 2)
        die_usage("need an nfs:// URL and a mount point");
    url = argv[optind];
    mnt = argv[optind + 1];
    if ((msg = tool_check_tls(&co.tls, co.ca, co.cert, co.key, co.keylog, co.sni)) != NULL)
        die_usage("%s", msg);
    if (ro && nmirrors > 0)
        die_usage("--mirror with --ro: a read-only mount writes nothing to mirror");
    /* Kernel permission checks from the attributes: this mount serves
     * several users (allow_other) and rpctls-nfsd does not check per caller
     * yet; the server still decides with each call's credential. */
    if (fuse_opt_add_arg(&fargs, "-odefault_permissions,max_read=1048576,fsname=rpctls,subtype=nfs") != 0 ||
        (ro && fuse_opt_add_arg(&fargs, "-oro") != 0) || (debug && fuse_opt_add_arg(&fargs, "-d") != 0))
        return 1;
    if (gethostname(g.machine, sizeof g.machine - 1) < 0)
        snprintf(g.machine, sizeof g.machine, "rpctls-mount");

    /* Every server is reached before the mount exists: a mirror that is
     * not there at the start is a mistake in the command, not a failure
     * to ride out. */
    g.nsrv = 1 + nmirrors;
    for (unsigned s = 0; s < g.nsrv; s++)
        if (srv_open(s, s == 0 ? url : mirrors[s - 1], &co) != 0)
            goto out;
    inode_init(&g.root, 0, &g.srv[0].root);
    for (unsigned s = 1; s < g.nsrv; s++)
        inode_learn(&g.root, s, &g.srv[s].root);

    g.pipe_fits = splice_fits(g.max_write);
    se = fuse_session_new(&fargs, &ops, sizeof ops, NULL);
    if (!se)
        goto out;
    if (fuse_set_signal_handlers(se) != 0)
        goto out;
    if (fuse_session_mount(se, mnt) != 0)
        goto out_handlers;
    if (g.readahead_kib < 0)
        g.readahead_kib = 4L * (g.rsize / 1024);
    if (g.readahead_kib > 0)
        set_readahead(mnt, g.readahead_kib);
    fprintf(stderr, PROG ": %s on %s (%s, rsize %u, wsize %u, %s)\n", url, mnt, g.srv[0].transport, g.rsize,
            g.wsize, co.soft ? "soft" : "hard");
    for (unsigned s = 1; s < g.nsrv; s++)
        fprintf(stderr, PROG ": mirror %u: %s (%s)\n", s, g.srv[s].url, g.srv[s].transport);
    /* The loop threads start after the fork of fuse_daemonize: threads do
     * not survive a fork. */
    if (fuse_daemonize(foreground) != 0)
        goto out_unmount;
    for (unsigned s = 0; s < g.nsrv; s++)
        if (nfs3_clnt_start_thread(g.srv[s].nc) != 0) {
            fprintf(stderr, PROG ": cannot start the NFS client thread of %s\n", g.srv[s].url);
            goto out_unmount;
        }
    memset(&lc, 0, sizeof lc);
    lc.clone_fd = 0;
    lc.max_idle_threads = 16;
    rc = fuse_session_loop_mt(se, &lc);
    /* An unmount (fusermount3 -u, umount) ends the loop with 0; SIGTERM,
     * SIGINT and SIGHUP with the signal's number (libfuse 3.14): both are
     * the clean end that was asked for. */
    ret = rc == 0 || rc == SIGTERM || rc == SIGINT || rc == SIGHUP ? 0 : 1;
    /* Files still open (SIGTERM while a program writes) have written data
     * that no close or fsync has COMMITted yet: commit it now, while the
     * servers' loop threads still run. */
    if (commit_all() != 0)
        ret = 1;
out_unmount:
    fuse_session_unmount(se);
out_handlers:
    fuse_remove_signal_handlers(se);
out:
    if (se)
        fuse_session_destroy(se);
    for (unsigned s = 0; s < g.nsrv; s++)
        if (g.srv[s].nc)
            nfs3_clnt_stop_thread(g.srv[s].nc);
    if (se)
        log_counters();
    for (unsigned s = 0; s < g.nsrv; s++) {
        nfs3_clnt_free(g.srv[s].nc);
        if (g.srv[s].loop)
            krpc_loop_free(g.srv[s].loop);
    }
    fuse_opt_free_args(&fargs);
    return ret;
}
