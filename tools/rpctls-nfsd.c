/*
 * rpctls-nfsd - an NFSv3 + MOUNT v3 server for a directory (--export) or an
 * exports(5) file (--exports), on one TCP
 * port, plain or RPC-with-TLS (RFC 9289). Thin: flags to the library
 * (include/rpctls/nfs3_srv.h, krpc_svc.h). See docs/nfs3-server.md.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <unistd.h>

#include "rpctls/krpc.h"
#include "rpctls/krpc_rpcb.h"
#include "rpctls/krpc_svc.h"
#include "rpctls/ktls.h"
#include "rpctls/mbuf.h"
#include "rpctls/nfs3.h"
#include "rpctls/nfs3_export.h"
#include "rpctls/nfs3_srv.h"

#include "common/opts.h"

#define PROG "rpctls-nfsd"

static struct krpc_loop *g_loop;
static volatile sig_atomic_t g_signal;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " --export DIR | --exports FILE [options]\n"
            "\n"
            "Serves DIR over NFSv3 and MOUNT v3 on one TCP port. Clients mount DIR by\n"
            "its absolute path, e.g. nfs://127.0.0.1:2049/srv/data/FILE for --export /srv/data.\n"
            "Run as root, every call runs as its caller: the AUTH_SYS uid, gid and groups, squashed\n"
            "by the options of the export and client spec it reaches (default root_squash: root\n"
            "becomes 65534), AUTH_NONE as anonuid, or with tlscertuser the user named in the\n"
            "client certificate. Not root: as the user running " PROG ", whatever the credential\n"
            "says.\n"
            "\n"
            "  --export DIR          directory to export to the local host, read-write, root\n"
            "                        squashed: the exports line \"DIR 127.0.0.1(rw) ::1(rw)\". Other\n"
            "                        clients need --exports\n"
            "  --exports FILE        exports(5) file (Linux syntax): several directories, each with\n"
            "                        client specs (IP, CIDR, *, host names resolved at start) and\n"
            "                        options rw, ro (the default), root_squash, no_root_squash,\n"
            "                        all_squash, anonuid=, anongid=, sec=sys, xprtsec=none:tls:mtls,\n"
            "                        tlscertuser. A syntax error names FILE:LINE:COLUMN and the server\n"
            "                        does not start (see docs/nfs3-server.md). One of --export and\n"
            "                        --exports is required\n"
            "  --listen HOST:PORT    listen address (default 127.0.0.1:2049). HOST: an IPv4 address,\n"
            "                        \"[IPv6]\" or a host name (resolved; the first address that\n"
            "                        binds is used); port 0 picks a free port (printed at startup)\n"
            "  --tls MODE            off (default): plain TCP only, the RFC 9289 probe is refused;\n"
            "                        optional: plain and TLS clients; required: NFS calls need TLS\n"
            "                        (AUTH_TOOWEAK otherwise); the NULL procedure and MOUNT are\n"
            "                        answered in the clear too, as knfsd and FreeBSD do (see\n"
            "                        --mount-tls)\n"
            "  --mount-tls MODE      with --tls required: optional (default): MOUNT in the clear or\n"
            "                        in TLS (export paths and the root file handle then travel in\n"
            "                        the clear); required: MOUNT needs TLS too (clients that mount\n"
            "                        in the clear, as Linux, FreeBSD and libnfs do, then fail)\n"
            "  --alpn MODE           offer (default): select ALPN \"sunrpc\" when the client offers\n"
            "                        it, accept clients that offer none (Linux tlshd, FreeBSD,\n"
            "                        libnfs), refuse clients offering only other protocols;\n"
            "                        required: refuse clients that do not offer \"sunrpc\"\n"
            "  --cert FILE           server certificate, PEM (required with --tls optional|required)\n"
            "  --key FILE            its private key, PEM\n"
            "  --ca FILE             CA certificate(s), PEM, to verify client certificates; turns\n"
            "                        --verify-client to optional unless given\n"
            "  --verify-client M     none: do not ask for a client certificate (default without --ca);\n"
            "                        optional: ask, verify it when sent (default with --ca);\n"
            "                        required: refuse clients without a valid certificate (needs --ca)\n"
            "  --tx-mode M           record-layer TX encryption: auto (default), outofplace, copy,\n"
            "                        unsafe-inplace (UNSAFE: encrypts shared pages in place;\n"
            "                        benchmarks and demonstrations only)\n"
            "  --state-dir DIR       where the file-handle key is kept (made 0700, key 0600, on first\n"
            "                        start; handles stay valid across restarts with the same DIR).\n"
            "                        Default: $XDG_STATE_HOME/rpctls-nfsd, else /var/lib/rpctls-nfsd\n"
            "                        for root, else $HOME/.local/state/rpctls-nfsd\n"
            "  --keylog FILE         append TLS secrets in NSS key-log format (for Wireshark);\n"
            "                        default: $SSLKEYLOGFILE when set\n"
            "  --max-io BYTES        largest READ/WRITE advertised in FSINFO (default 1048576,\n"
            "                        at most 4194304)\n"
            "  --rpcbind MODE        register NFS v3 and MOUNT v3 (TCP, the bound port) with the\n"
            "                        local rpcbind so clients find them without a port, and\n"
            "                        unregister them on exit. auto (default): when rpcbind runs;\n"
            "                        on: refuse to start without it; off: never talk to it\n"
            "  --threads N           event loops, one thread each (default: online CPUs); connections\n"
            "                        are spread over them; TLS and RPC work of different clients\n"
            "                        runs in parallel\n"
            "  --handshake-timeout MS  a connection must authenticate within MS of accept (default\n"
            "                        10000): finish the TLS handshake under --tls required, else send\n"
            "                        its first complete call; half-open and dripping ones are cut\n"
            "  --idle-timeout MS     close connections silent for MS (default 300000; 0: never)\n"
            "  --max-conns N         connections in all (default 4096; also kept under the open-file\n"
            "                        limit, which is raised to its hard limit at start)\n"
            "  --max-unauth-conns N  connections not yet authenticated (default 256); a new one\n"
            "                        pushes out the oldest, so they never take established slots\n"
            "  --max-memory BYTES    buffer memory of all connections (received messages, queued\n"
            "                        replies; suffix K, M or G); over it new connections are refused\n"
            "                        and a growing one is cut, each with a log line (default 1G)\n"
            "  --io-threads N        worker threads for file-system calls (default 8, as knfsd);\n"
            "                        0: on the event loop (one slow disk call stalls every client)\n"
            "  --no-root-squash      with --export: uid 0 and gid 0 of AUTH_SYS stay root (exports(5)\n"
            "                        no_root_squash); default: root_squash. With --exports the file\n"
            "                        says it per client (no_root_squash): a usage error\n"
            "  --domain NAME         tlscertuser: the domain client certificates' user@domain must\n"
            "                        name (default: the host's, from its fully qualified name, else\n"
            "                        getdomainname())\n"
            "  -q, --quiet           log errors only\n"
            "  -v, --verbose         log connections, mounts and refused calls (twice: debug)\n"
            "  -h, --help            this text\n"
            "\n"
            "Logs go to stderr; the first line is \"" PROG ": listening on ADDR:PORT\".\n"
            "--cert, --key and --ca are loaded and checked once, at start: a missing, unreadable,\n"
            "non-PEM, mismatched, expired or not yet valid file stops the server with a line\n"
            "naming it (exit status 1); a certificate that expires within 30 days gets a warning.\n"
            "SIGHUP loads them again from the same paths: new connections get the new ones,\n"
            "connections already up keep theirs; if a file is bad, the line says which and the\n"
            "files loaded before stay in use.\n"
            "SIGINT or SIGTERM stops the server cleanly (exit status 0). Exit status 2: bad\n"
            "usage; 1: could not start or a run-time failure.\n");
}

static void on_signal(int sig)
{
    g_signal = sig;
    krpc_loop_stop(g_loop); /* an atomic store and an eventfd write: async-signal-safe */
}

/* ---- TLS files: loaded at start, again on SIGHUP ----------------------- */

/* Loads --cert/--key/--ca once for the server. 0, or -1 after printing
 * which file is wrong and how. */
static int tls_load(const struct ktls_config *tlscfg, struct ktls_ctx **out)
{
    struct ktls_config k = *tlscfg;
    char err[512];

    k.alpn = KRPC_ALPN; /* what krpc_svc selects */
    if (ktls_ctx_new(&k, out, err, sizeof err) < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        return -1;
    }
    if (*ktls_ctx_warning(*out) != '\0')
        fprintf(stderr, PROG ": warning: %s\n", ktls_ctx_warning(*out));
    return 0;
}

/* SIGHUP arrives through a signalfd on the event loop, so the reload runs
 * on the loop thread like everything else (SIGHUP is blocked in every
 * thread: block_sighup runs before any thread is made). */
struct hup_watch {
    int fd;
    struct krpc_svc *svc;
    const struct ktls_config *tlscfg; /* NULL: TLS is off */
};

static void block_sighup(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static void on_hup(struct krpc_loop *loop, int fd, uint32_t events, void *arg)
{
    struct hup_watch *h = arg;
    struct signalfd_siginfo si;
    char err[512];

    (void)loop;
    (void)events;
    while (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (h->tlscfg == NULL) {
            fprintf(stderr, PROG ": SIGHUP: TLS is off, nothing to reload\n");
            continue;
        }
        if (krpc_svc_reload_tls(h->svc, h->tlscfg, err, sizeof err) < 0)
            fprintf(stderr, PROG ": SIGHUP: TLS files not reloaded, the ones loaded before stay in use: %s\n", err);
        else
            fprintf(stderr, PROG ": SIGHUP: reloaded %s, %s%s%s; new connections use them\n", h->tlscfg->cert_file,
                    h->tlscfg->key_file, h->tlscfg->ca_file ? ", " : "", h->tlscfg->ca_file ? h->tlscfg->ca_file : "");
    }
}

static int hup_watch_start(struct hup_watch *h, struct krpc_svc *svc, const struct ktls_config *tlscfg)
{
    sigset_t set;

    h->svc = svc;
    h->tlscfg = tlscfg;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    h->fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (h->fd < 0 || krpc_loop_add_fd(g_loop, h->fd, EPOLLIN, on_hup, h) < 0) {
        fprintf(stderr, PROG ": cannot watch for SIGHUP: %s\n", strerror(errno));
        if (h->fd >= 0)
            close(h->fd);
        h->fd = -1;
        return -1;
    }
    return 0;
}

static void hup_watch_stop(struct hup_watch *h)
{
    if (h->fd < 0)
        return;
    krpc_loop_del_fd(g_loop, h->fd);
    close(h->fd);
    h->fd = -1;
}

/* --listen HOST:PORT: numeric, [IPv6] or a host name. Returns the number of
 * addresses, or -1 after printing why. */
static int resolve_listen(const char *s, struct sockaddr_storage *addrs, socklen_t *lens)
{
    char host[256], err[300];
    uint16_t port;
    int n;

    if (krpc_split_hostport(s, 2049, host, sizeof(host), &port) != 0) {
        fprintf(stderr, PROG ": --listen %s: not a HOST:PORT\n", s);
        return -1;
    }
    n = krpc_resolve(host, port, 1, addrs, lens, KRPC_MAX_ADDRS, err, sizeof(err));
    if (n < 0) {
        fprintf(stderr, PROG ": --listen %s: cannot resolve %s\n", s, err);
        return -1;
    }
    return n;
}

static int parse_verify(const char *s, int *out)
{
    if (strcmp(s, "none") == 0)
        *out = 0;
    else if (strcmp(s, "optional") == 0)
        *out = 1;
    else if (strcmp(s, "required") == 0)
        *out = 2;
    else
        return -1;
    return 0;
}

/* ---- rpcbind registration (--rpcbind) ------------------------------------ */

enum rpcbind_mode { RPCBIND_OFF, RPCBIND_AUTO, RPCBIND_ON };

struct rpcbind_reg {
    enum rpcbind_mode mode;
    struct krpc_rpcb_config cfg;
    struct krpc_rpcb_map maps[4]; /* registered, to unregister at exit */
    int n;
    struct krpc_rpcb_bufs bufs[2]; /* the universal addresses maps point to */
};

static int parse_rpcbind(const char *s, enum rpcbind_mode *out)
{
    if (strcmp(s, "auto") == 0)
        *out = RPCBIND_AUTO;
    else if (strcmp(s, "on") == 0)
        *out = RPCBIND_ON;
    else if (strcmp(s, "off") == 0)
        *out = RPCBIND_OFF;
    else
        return -1;
    return 0;
}

/* Whether a socket bound to [::] also takes IPv4. krpc_svc leaves
 * IPV6_V6ONLY alone, so the kernel default decides. */
static int ipv6_dual_stack(void)
{
    FILE *f = fopen("/proc/sys/net/ipv6/bindv6only", "r");
    int v6only = 0;
    if (f != NULL) {
        if (fscanf(f, "%d", &v6only) != 1)
            v6only = 0;
        fclose(f);
    }
    return v6only == 0;
}

static void rpcbind_unregister(struct rpcbind_reg *r, int quiet)
{
    char err[512];
    int failed = 0;
    for (int i = 0; i < r->n; i++) {
        if (krpc_rpcb_unset(&r->cfg, &r->maps[i], err, sizeof err) != 0) {
            fprintf(stderr, PROG ": cannot unregister from rpcbind: %s\n", err);
            failed = 1;
        }
    }
    if (r->n > 0 && !failed && !quiet)
        fprintf(stderr, PROG ": unregistered NFS v3 and MOUNT v3 from rpcbind\n");
    r->n = 0;
}

/*
 * Registers NFS v3 and MOUNT v3 at the bound port for every netid the
 * listener serves. Returns 0 when registered, when off, or (auto) when
 * rpcbind cannot be used (one line says why); -1 with --rpcbind on.
 */
static int rpcbind_register(struct rpcbind_reg *r, const struct krpc_svc *svc, int quiet)
{
    static const uint32_t progs[2][2] = {{NFS3_PROGRAM, NFS3_VERSION}, {NFS3_MNT_PROGRAM, NFS3_MNT_VERSION}};
    struct krpc_rpcb_map all[4];
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char err[512] = "", netids[16] = "";
    int n = 0, ret = 0;

    if (r->mode == RPCBIND_OFF)
        return 0;
    /* Where rpcbind is looked for; for tests (an empty value: not tried). */
    r->cfg.sock_path = getenv("RPCTLS_RPCBIND_SOCK");
    r->cfg.tcp_addr = getenv("RPCTLS_RPCBIND_TCP");
    if (krpc_svc_addr(svc, &ss, &sl) != 0 || krpc_svc_port(svc) == 0) {
        snprintf(err, sizeof err, "no bound port to register");
        ret = -EINVAL;
        goto fail;
    }
    for (int p = 0; p < 2; p++) {
        int k = krpc_rpcb_listener_maps((struct sockaddr *)&ss, ipv6_dual_stack(), progs[p][0], progs[p][1], &all[n],
                                        &r->bufs[p]);
        if (k < 0) {
            snprintf(err, sizeof err, "cannot make a universal address for the listener");
            ret = k;
            goto fail;
        }
        n += k;
    }
    for (int i = 0; i < n; i++) {
        /* UNSET first: replaces a registration left by an earlier instance
         * that did not exit cleanly (as the kernel's nfsd does at start). */
        ret = krpc_rpcb_unset(&r->cfg, &all[i], err, sizeof err);
        if (ret == 0)
            ret = krpc_rpcb_set(&r->cfg, &all[i], err, sizeof err);
        if (ret != 0)
            goto fail;
        r->maps[r->n++] = all[i];
    }
    for (int i = 0; i < n / 2; i++) /* the netids of one program */
        snprintf(netids + strlen(netids), sizeof netids - strlen(netids), "%s%s", i ? ", " : "", all[i].netid);
    if (!quiet)
        fprintf(stderr, PROG ": registered NFS v3 and MOUNT v3 with rpcbind (%s, port %u)\n", netids,
                (unsigned)krpc_svc_port(svc));
    return 0;
fail:
    rpcbind_unregister(r, 1); /* what was registered before the failure */
    if (r->mode == RPCBIND_ON) {
        fprintf(stderr, PROG ": --rpcbind on: cannot register with rpcbind: %s\n", err);
        return -1;
    }
    if (!quiet)
        fprintf(stderr, PROG ": not registered with rpcbind (%s): clients must be given the port\n", err);
    return 0;
}

/* ---- connection limits and threads (--threads, --max-*, timeouts) -------- */

enum {
    OPT_THREADS = 0x300,
    OPT_HS_TIMEOUT,
    OPT_IDLE_TIMEOUT,
    OPT_MAX_CONNS,
    OPT_MAX_UNAUTH,
    OPT_MAX_MEMORY,
};

/* One of the options above into cfg. 0, or 2 (bad usage) after a message. */
static int parse_limit_opt(int opt, const char *arg, struct krpc_svc_config *cfg)
{
    uint64_t v;

    /* A number with an optional K, M or G suffix (powers of 1024), or 0x. */
    if (tool_parse_size(arg, TOOL_SIZE_G | TOOL_SIZE_C_BASES, &v) != TOOL_SIZE_OK) {
        fprintf(stderr, PROG ": %s: not a number\n", arg);
        return 2;
    }
    switch (opt) {
    case OPT_THREADS:
        if (v < 1 || v > 1024) {
            fprintf(stderr, PROG ": --threads: 1 .. 1024\n");
            return 2;
        }
        cfg->threads = (unsigned)v;
        break;
    case OPT_HS_TIMEOUT:
        if (v < 1 || v > 3600000) {
            fprintf(stderr, PROG ": --handshake-timeout: 1 .. 3600000 ms\n");
            return 2;
        }
        cfg->handshake_timeout_ms = (int)v;
        break;
    case OPT_IDLE_TIMEOUT:
        if (v > 86400000) {
            fprintf(stderr, PROG ": --idle-timeout: 0 .. 86400000 ms\n");
            return 2;
        }
        cfg->idle_timeout_ms = v == 0 ? -1 : (int)v;
        break;
    case OPT_MAX_CONNS:
    case OPT_MAX_UNAUTH:
        if (v < 1 || v > 1000000) {
            fprintf(stderr, PROG ": --max-conns / --max-unauth-conns: 1 .. 1000000\n");
            return 2;
        }
        if (opt == OPT_MAX_CONNS)
            cfg->max_conns = (unsigned)v;
        else
            cfg->max_unauth_conns = (unsigned)v;
        break;
    case OPT_MAX_MEMORY:
        if (v < (1u << 20)) {
            fprintf(stderr, PROG ": --max-memory: at least 1M\n");
            return 2;
        }
        cfg->max_memory = v;
        break;
    default:
        return 2;
    }
    return 0;
}

/*
 * Raises the open-file limit to its hard limit (every connection is a
 * descriptor: 1,000 idle TLS clients do not fit the usual soft 1024), and
 * keeps max_conns under it with room for the listener, files the NFS
 * server opens and the rest. Defaults threads to the online CPUs.
 */
static void prepare_limits(struct krpc_svc_config *cfg, int quiet)
{
    struct rlimit rl;
    unsigned max_conns = cfg->max_conns ? cfg->max_conns : 4096, room;
    long cpus;

    if (cfg->threads == 0) {
        cpus = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->threads = cpus > 0 && cpus <= 1024 ? (unsigned)cpus : 1;
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t old = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = old;
    }
    room = rl.rlim_cur > 256 + 64 ? (unsigned)(rl.rlim_cur > 1000000 + 256 ? 1000000 : rl.rlim_cur - 256) : 64;
    if (max_conns > room) {
        if (!quiet || cfg->max_conns != 0)
            fprintf(stderr, PROG ": max-conns %u lowered to %u: the open-file limit is %llu\n", max_conns, room,
                    (unsigned long long)rl.rlim_cur);
        max_conns = room;
    }
    cfg->max_conns = max_conns;
}

/* Whether a listener on ss is reachable from the local host only. */
static int listens_on_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"export", required_argument, NULL, 'e'},   {"listen", required_argument, NULL, 'l'},
        {"tls", required_argument, NULL, 't'},      {"cert", required_argument, NULL, 'c'},
        {"key", required_argument, NULL, 'k'},      {"ca", required_argument, NULL, 'a'},
        {"verify-client", required_argument, NULL, 'V'}, {"tx-mode", required_argument, NULL, 'x'},
        {"state-dir", required_argument, NULL, 's'}, {"keylog", required_argument, NULL, 'K'},
        {"max-io", required_argument, NULL, 'm'},   {"quiet", no_argument, NULL, 'q'},
        {"mount-tls", required_argument, NULL, 'M'}, {"alpn", required_argument, NULL, 'A'},
        {"verbose", no_argument, NULL, 'v'},        {"help", no_argument, NULL, 'h'},
        {"rpcbind", required_argument, NULL, 'R'},
        {"exports", required_argument, NULL, 'E'}, /* exports(5) file */
        {"threads", required_argument, NULL, OPT_THREADS},
        {"handshake-timeout", required_argument, NULL, OPT_HS_TIMEOUT},
        {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
        {"max-conns", required_argument, NULL, OPT_MAX_CONNS},
        {"max-unauth-conns", required_argument, NULL, OPT_MAX_UNAUTH},
        {"max-memory", required_argument, NULL, OPT_MAX_MEMORY},
        {"io-threads", required_argument, NULL, 'I'}, {"domain", required_argument, NULL, 'D'},
        {"no-root-squash", no_argument, NULL, 'N'},
        {NULL, 0, NULL, 0},
    };
    const char *export_dir = NULL, *listen_addr = "127.0.0.1:2049", *tls = "off", *cert = NULL, *key = NULL,
               *ca = NULL, *state_dir = NULL, *keylog = NULL;
    enum ktls_tx_mode txm = KTLS_TX_AUTO;
    int verify = -1, quiet = 0, verbose = 0, mount_tls_required = 0, alpn_required = 0, c, rc = 1;
    unsigned long max_io = 0;
    struct krpc_svc_config cfg;
    struct krpc_svc *svc = NULL;
    struct nfs3_srv *srv = NULL;
    char err[512], addr[80];
    struct sockaddr_storage laddrs[KRPC_MAX_ADDRS];
    socklen_t llens[KRPC_MAX_ADDRS];
    int nlisten;
    struct rpcbind_reg rpcb = {.mode = RPCBIND_AUTO};
    struct hup_watch hup = {.fd = -1};
    const char *exports_file = NULL; /* --exports */
    struct nfs3_exports exports = {NULL, 0};
    unsigned long io_threads = NFS3_SRV_DEFAULT_IO_THREADS; /* --io-threads */
    const char *domain = NULL;                                /* --domain */
    int no_root_squash = 0;                                   /* --no-root-squash */
    struct nfs3_export_opts export_opts;                      /* --export DIR's policy */

    memset(&cfg, 0, sizeof(cfg));
    while ((c = getopt_long(argc, argv, "hqv", opts, NULL)) != -1) {
        switch (c) {
        case 'e': export_dir = optarg; break;
        case 'E': exports_file = optarg; break;
        case 'l': listen_addr = optarg; break;
        case 't': tls = optarg; break;
        case 'c': cert = optarg; break;
        case 'k': key = optarg; break;
        case 'a': ca = optarg; break;
        case 'V':
            if (parse_verify(optarg, &verify) != 0) {
                fprintf(stderr, PROG ": --verify-client: none, optional or required\n");
                return 2;
            }
            break;
        case 'x':
            if (strcmp(optarg, "inplace") == 0) {
                fprintf(stderr, PROG ": --tx-mode inplace is now spelled unsafe-inplace (it encrypts shared "
                                "pages in place)\n");
                return 2;
            }
            if (ktls_tx_mode_from_name(optarg, &txm) != 0) {
                fprintf(stderr, PROG ": --tx-mode: auto, outofplace, copy or unsafe-inplace\n");
                return 2;
            }
            break;
        case 'M':
            if (strcmp(optarg, "optional") != 0 && strcmp(optarg, "required") != 0) {
                fprintf(stderr, PROG ": --mount-tls: optional or required\n");
                return 2;
            }
            mount_tls_required = strcmp(optarg, "required") == 0;
            break;
        case 'A':
            if (strcmp(optarg, "offer") != 0 && strcmp(optarg, "required") != 0) {
                fprintf(stderr, PROG ": --alpn: offer or required\n");
                return 2;
            }
            alpn_required = strcmp(optarg, "required") == 0;
            break;
        case 's': state_dir = optarg; break;
        case 'K': keylog = optarg; break;
        case 'm': {
            char *end;
            max_io = strtoul(optarg, &end, 0);
            if (*end != '\0' || max_io < 4096 || max_io > (4ul << 20)) {
                fprintf(stderr, PROG ": --max-io: 4096 .. 4194304\n");
                return 2;
            }
            break;
        }
        case 'q': quiet = 1; break;
        case 'v': verbose++; break;
        case 'R':
            if (parse_rpcbind(optarg, &rpcb.mode) != 0) {
                fprintf(stderr, PROG ": --rpcbind: auto, on or off\n");
                return 2;
            }
            break;
        case OPT_THREADS:
        case OPT_HS_TIMEOUT:
        case OPT_IDLE_TIMEOUT:
        case OPT_MAX_CONNS:
        case OPT_MAX_UNAUTH:
        case OPT_MAX_MEMORY:
            if (parse_limit_opt(c, optarg, &cfg) != 0)
                return 2;
            break;
        case 'I': {
            char *end;
            io_threads = strtoul(optarg, &end, 10);
            if (*end != '\0' || optarg[0] == '\0' || io_threads > 1024) {
                fprintf(stderr, PROG ": --io-threads: 0 .. 1024\n");
                return 2;
            }
            break;
        }
        case 'D': domain = optarg; break;
        case 'N': no_root_squash = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || (export_dir == NULL) == (exports_file == NULL)) {
        fprintf(stderr, PROG ": %s\n",
                optind != argc       ? "unexpected argument"
                : export_dir == NULL ? "--export DIR or --exports FILE is required"
                                     : "--export and --exports exclude each other");
        usage(stderr);
        return 2;
    }
    if (no_root_squash && exports_file != NULL) {
        /* The file says it per client; a flag on top would be a second,
         * conflicting place for the same policy. */
        fprintf(stderr, PROG ": --no-root-squash applies to --export DIR; with --exports, write "
                             "no_root_squash in the file\n");
        usage(stderr);
        return 2;
    }
    if (strcmp(tls, "off") == 0)
        cfg.tls = KRPC_SVC_TLS_OFF;
    else if (strcmp(tls, "optional") == 0)
        cfg.tls = KRPC_SVC_TLS_OPTIONAL;
    else if (strcmp(tls, "required") == 0)
        cfg.tls = KRPC_SVC_TLS_REQUIRED;
    else {
        fprintf(stderr, PROG ": --tls: off, optional or required\n");
        return 2;
    }
    if (cfg.tls != KRPC_SVC_TLS_OFF && (cert == NULL || key == NULL)) {
        fprintf(stderr, PROG ": --tls %s needs --cert and --key\n", tls);
        return 2;
    }
    if (cfg.tls == KRPC_SVC_TLS_OFF && (cert != NULL || key != NULL || ca != NULL)) {
        fprintf(stderr, PROG ": --cert/--key/--ca given but --tls is off (use --tls optional or required)\n");
        return 2;
    }
    if (verify < 0)
        verify = ca != NULL ? 1 : 0;
    if (verify > 0 && ca == NULL) {
        fprintf(stderr, PROG ": --verify-client optional|required needs --ca\n");
        return 2;
    }
    if (mount_tls_required && cfg.tls != KRPC_SVC_TLS_REQUIRED) {
        fprintf(stderr, PROG ": --mount-tls required needs --tls required\n");
        return 2;
    }
    if (alpn_required && cfg.tls == KRPC_SVC_TLS_OFF) {
        fprintf(stderr, PROG ": --alpn required needs --tls optional or required\n");
        return 2;
    }
    nlisten = resolve_listen(listen_addr, laddrs, llens);
    if (nlisten < 0)
        return 2;
    krpc_log_set_level(quiet ? KRPC_LOG_ERROR : verbose >= 2 ? KRPC_LOG_DEBUG : verbose ? KRPC_LOG_INFO : KRPC_LOG_WARN);
    cfg.tlscfg.role = KTLS_SERVER;
    cfg.tlscfg.cert_file = cert;
    cfg.tlscfg.key_file = key;
    cfg.tlscfg.ca_file = ca;
    cfg.tlscfg.verify_peer = verify;
    cfg.tlscfg.keylog_file = keylog;
    cfg.tlscfg.tx_mode = txm;
    cfg.tlscfg.require_alpn = alpn_required;
    /* Room for a WRITE of max-io bytes plus its headers. */
    cfg.max_msg = (max_io ? max_io : NFS3_SRV_DEFAULT_TMAX) + 64 * 1024;
    if (cfg.max_msg < KRPC_RM_DEFAULT_MAX_MSG)
        cfg.max_msg = KRPC_RM_DEFAULT_MAX_MSG;

    /* Before listening: a bad exports file must not leave a server up. */
    if (exports_file != NULL && nfs3_exports_load(&exports, exports_file, err, sizeof(err)) != 0) {
        fprintf(stderr, PROG ": %s\n", err);
        return 1;
    }

    signal(SIGPIPE, SIG_IGN);
    block_sighup(); /* before any thread: SIGHUP is read from a signalfd */
    if (cfg.tls != KRPC_SVC_TLS_OFF && tls_load(&cfg.tlscfg, &cfg.tls_ctx) != 0)
        return 1;
    prepare_limits(&cfg, quiet); /* --threads, open files, max-conns */
    if (krpc_loop_new(&g_loop) != 0) {
        fprintf(stderr, PROG ": cannot create the event loop\n");
        ktls_ctx_unref(cfg.tls_ctx);
        return 1;
    }
    int ret = -EINVAL;
    for (int i = 0; i < nlisten && svc == NULL; i++) {
        cfg.addr = laddrs[i];
        cfg.addrlen = llens[i];
        ret = krpc_svc_new(g_loop, &cfg, &svc);
        if (ret != 0)
            fprintf(stderr, PROG ": cannot listen on %s (%s): %s\n", listen_addr,
                    krpc_format_addr((struct sockaddr *)&laddrs[i], addr, sizeof(addr)), strerror(-ret));
    }
    if (svc == NULL)
        goto out;
    /* --export DIR is the exports line "DIR 127.0.0.1(rw) ::1(rw)", with
     * no_root_squash added by --no-root-squash. */
    nfs3_export_opts_default(&export_opts);
    if (no_root_squash)
        export_opts.squash = NFS3_SQUASH_NONE;
    struct nfs3_srv_config scfg = {export_dir, state_dir, (uint32_t)max_io, (uint32_t)max_io, NULL,
                                   mount_tls_required, exports_file != NULL ? &exports : NULL, export_opts,
                                   (unsigned)io_threads, domain};
    ret = nfs3_srv_new(svc, &scfg, &srv, err, sizeof(err));
    if (ret != 0) {
        fprintf(stderr, PROG ": %s\n", err);
        goto out;
    }
    {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        uint8_t v[NFS3_WRITEVERFSIZE];
        int have_addr = krpc_svc_addr(svc, &ss, &sl) == 0;
        if (!have_addr || krpc_format_addr((struct sockaddr *)&ss, addr, sizeof(addr)) == NULL)
            snprintf(addr, sizeof(addr), "%s", listen_addr);
        nfs3_srv_write_verf(srv, v);
        fprintf(stderr, PROG ": listening on %s\n", addr);
        if (exports_file == NULL && have_addr && !listens_on_loopback(&ss))
            fprintf(stderr,
                    PROG ": warning: --export %s serves only 127.0.0.1 and ::1; other clients get "
                         "MNT3ERR_ACCES (list them in an exports file, --exports)\n",
                    export_dir);
        if (!quiet)
            fprintf(stderr,
                    PROG ": export %s%s, tls %s%s%s%s, tx-mode %s, state dir %s, write verifier "
                         "%02x%02x%02x%02x%02x%02x%02x%02x\n",
                    nfs3_srv_export_path(srv), nfs3_srv_export_count(srv) > 1 ? " and more (--exports)" : "", tls, verify == 2 ? " (client certificates required)" : "",
                    verify == 1 ? " (client certificates verified when sent)" : "",
                    cfg.tls != KRPC_SVC_TLS_REQUIRED ? ""
                    : mount_tls_required             ? ", MOUNT needs TLS"
                                                     : ", MOUNT and NULL also in the clear",
                    ktls_tx_mode_name(txm),
                    nfs3_srv_state_dir(srv), v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if (hup_watch_start(&hup, svc, cfg.tls != KRPC_SVC_TLS_OFF ? &cfg.tlscfg : NULL) != 0)
        goto out;

    /* After the handlers: a signal from here on still unregisters. */
    if (rpcbind_register(&rpcb, svc, quiet) != 0)
        goto out;

    /* The other event loops, now that the programs are registered. */
    ret = krpc_svc_start(svc);
    if (ret != 0) {
        fprintf(stderr, PROG ": cannot start %u event loops: %s\n", cfg.threads, strerror(-ret));
        goto out;
    }
    if (!quiet)
        fprintf(stderr, PROG ": %u event loops; max-conns %u, max-unauth-conns %u, handshake timeout %d ms\n",
                krpc_svc_threads(svc), cfg.max_conns, cfg.max_unauth_conns ? cfg.max_unauth_conns : 256,
                cfg.handshake_timeout_ms ? cfg.handshake_timeout_ms : 10000);

    ret = krpc_loop_run(g_loop, NULL, -1);
    if (ret != 0 && g_signal == 0) {
        fprintf(stderr, PROG ": event loop: %s\n", strerror(-ret));
        goto out;
    }
    rc = 0;
    if (!quiet) {
        const struct nfs3_srv_stats *st = nfs3_srv_stats(srv);
        const struct krpc_svc_stats *ss = krpc_svc_stats(svc);
        fprintf(stderr,
                PROG ": %s: stopping; %" PRIu64 " connections, %" PRIu64 " calls, %" PRIu64 " NFS errors, %" PRIu64
                     " bytes written, %" PRIu64 " bytes read\n",
                g_signal == SIGTERM ? "SIGTERM" : g_signal == SIGINT ? "SIGINT" : "stopped", ss->conns_accepted,
                ss->calls, st->errors, st->bytes_written, st->bytes_read);
    }
out:
    krpc_svc_stop(svc); /* before the NFS server goes: no handler may still run */
    hup_watch_stop(&hup);
    ktls_ctx_unref(cfg.tls_ctx); /* the server holds its own reference */
    rpcbind_unregister(&rpcb, quiet);
    if (svc != NULL)
        krpc_svc_free(svc);
    nfs3_srv_free(srv);
    nfs3_exports_free(&exports);
    /* Let closing connections finish their callbacks before the loop goes. */
    for (int i = 0; i < 10 && krpc_loop_run_once(g_loop, 0) > 0; i++)
        ;
    krpc_loop_free(g_loop);
    return rc;
}
