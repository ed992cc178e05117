/*
 * tools/mount/servers.c - rpctls-mount's servers: health and counters, the
 * credential of each call, the fan-out of changes to every server and of reads
 * to one, and connecting them at the start.
 */
#include "mount.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- a call that failed, in the log ------------------------------------------ */

const char *srv_role(unsigned s)
{
    return s == 0 ? "primary" : "mirror";
}

/* Logs an unexpected failure of a call to server s; returns its errno. */
int fail(const char *what, unsigned s, int status)
{
    char buf[128];
    int e = to_errno(status);

    /* Expected answers (ENOENT on lookup, EEXIST ...) are not worth a line;
     * what looks like trouble is. */
    if (status < 0 || e == EIO || e == EREMOTEIO || e == ESTALE)
        fprintf(stderr, PROG ": %s %s: %s: %s (%s)\n", srv_role(s), g.srv[s].url, what,
                nfs3_status_str(status, buf, sizeof buf), nfs3_clnt_error(g.srv[s].nc));
    return e;
}

/* ---- servers: health and counters ------------------------------------------- */

int healthy(unsigned s)
{
    int h;

    pthread_mutex_lock(&g.srv_mu);
    h = !g.srv[s].failed;
    pthread_mutex_unlock(&g.srv_mu);
    return h;
}

/* A failure of the server rather than an answer about the call: no reply,
 * a lost connection, an undecodable reply. Local refusals (a name too
 * long to encode, AUTH_ERROR for this user) are not the server's fault. */
int server_trouble(int status)
{
    return status < 0 && status != -EACCES && status != -ENAMETOOLONG && status != -EINVAL &&
           status != -ENOMEM && status != -EDEADLK;
}

/* Another server than s is healthy: s may be given up without losing the
 * file system. */
int others_healthy(unsigned s)
{
    int n = 0;

    pthread_mutex_lock(&g.srv_mu);
    for (unsigned i = 0; i < g.nsrv; i++)
        if (i != s && !g.srv[i].failed)
            n++;
    pthread_mutex_unlock(&g.srv_mu);
    return n > 0;
}

/* Marks server s failed for the rest of the mount, with one log line. */
void srv_fail(unsigned s, const char *what, int status)
{
    char buf[128];
    int first;

    pthread_mutex_lock(&g.srv_mu);
    first = !g.srv[s].failed;
    if (first) {
        g.srv[s].failed = 1;
        snprintf(g.srv[s].why, sizeof g.srv[s].why, "%s: %s%s%s", what, nfs3_status_str(status, buf, sizeof buf),
                 nfs3_clnt_error(g.srv[s].nc)[0] ? ": " : "", nfs3_clnt_error(g.srv[s].nc));
    }
    pthread_mutex_unlock(&g.srv_mu);
    if (first)
        fprintf(stderr, PROG ": %s %s failed (%s); it gets no more calls for the rest of the mount\n", srv_role(s),
                g.srv[s].url, g.srv[s].why);
}

/* The server reads go to: the first healthy one. -1 when none is. */
int reader(void)
{
    int r = -1;

    pthread_mutex_lock(&g.srv_mu);
    for (unsigned i = 0; i < g.nsrv && r < 0; i++)
        if (!g.srv[i].failed)
            r = (int)i;
    pthread_mutex_unlock(&g.srv_mu);
    return r;
}

/* Copies server s's counters; only on s's loop thread (a callback), which
 * owns its RPC client. */
void srv_snapshot(unsigned s)
{
    struct krpc_clnt *rpc = nfs3_clnt_rpc(g.srv[s].nc);
    struct krpc_clnt_stats st = *krpc_clnt_stats(rpc);
    struct ktls_stats ts;

    krpc_clnt_tls_stats(rpc, &ts);
    pthread_mutex_lock(&g.srv_mu);
    g.srv[s].rpc = st;
    g.srv[s].tls = ts;
    pthread_mutex_unlock(&g.srv_mu);
}

/* ---- credentials ------------------------------------------------------------ */

/* The supplementary groups of process pid, from the "Groups:" line of
 * /proc/PID/status; at most max. Returns the count kept, or -1. Our own
 * reader rather than fuse_req_getgroups: libfuse 3.14's runs strstr past
 * the end of its buffer when the file fills it (found by ASan). */
static int proc_groups(pid_t pid, gid_t *groups, int max)
{
    char path[64], buf[8192], *line, *p, *end;
    ssize_t len;
    int fd, n = 0;

    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    len = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (len <= 0)
        return -1;
    buf[len] = '\0';
    line = strstr(buf, "\nGroups:");
    if (!line)
        return -1;
    p = line + strlen("\nGroups:");
    end = strchr(p, '\n');
    if (end)
        *end = '\0'; /* only this line's numbers */
    while (n < max) {
        unsigned long v = strtoul(p, &end, 10);
        if (end == p)
            break; /* the end of the line */
        groups[n++] = (gid_t)v;
        p = end;
    }
    return n;
}

void set_cred(fuse_req_t req)
{
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    struct krpc_cred cred;
    gid_t groups[KRPC_AUTH_SYS_MAX_GIDS];
    int n;

    memset(&cred, 0, sizeof cred);
    cred.flavor = KRPC_AUTH_SYS;
    memcpy(cred.machine, g.machine, sizeof cred.machine);
    cred.uid = (uint32_t)ctx->uid;
    cred.gid = (uint32_t)ctx->gid;
    /* More groups than AUTH_SYS carries: the first 16 go, as with the
     * kernel client. n < 0: not available. */
    n = proc_groups(ctx->pid, groups, KRPC_AUTH_SYS_MAX_GIDS);
    for (int i = 0; i < n; i++)
        cred.gids[i] = (uint32_t)groups[i];
    cred.ngids = n > 0 ? (uint32_t)n : 0;
    nfs3_clnt_set_thread_cred(&cred);
}

/* ---- fan-out: changes to every server, reads from one ------------------------ */

/* A change, made on every healthy server in order. The first server that
 * answers leads: its status is the answer (*lead), and when it refuses (an
 * NFS error) nothing changed and the others are not asked. A leader that
 * does not answer at all is given up when another server is healthy, and
 * the next one leads. A server after the leader that does not do what the
 * leader did now differs from it: it is marked failed. *done: bit s for
 * every server where the change was made. */
int on_all(const char *what, srv_fn fn, void *arg, unsigned *lead, uint32_t *done)
{
    int lrc = -EIO, led = 0;

    *lead = 0;
    *done = 0;
    for (unsigned s = 0; s < g.nsrv; s++) {
        int rc;

        if (!healthy(s))
            continue;
        rc = fn(s, arg);
        if (!led) {
            if (server_trouble(rc) && others_healthy(s)) {
                srv_fail(s, what, rc);
                continue;
            }
            led = 1;
            *lead = s;
            lrc = rc;
            if (rc != 0)
                break;
            *done |= 1u << s;
        } else if (rc != 0) {
            srv_fail(s, what, rc);
        } else {
            *done |= 1u << s;
        }
    }
    return lrc;
}

/* A read-only call, made on the first healthy server; one that does not
 * answer is given up when another is healthy, and the next one is asked. */
int on_reader(const char *what, srv_fn fn, void *arg, unsigned *srvp)
{
    *srvp = 0;
    for (;;) {
        int s = reader(), rc;

        if (s < 0)
            return -EIO; /* every server has failed */
        rc = fn((unsigned)s, arg);
        if (server_trouble(rc) && others_healthy((unsigned)s)) {
            srv_fail((unsigned)s, what, rc);
            continue;
        }
        *srvp = (unsigned)s;
        return rc;
    }
}

/* ---- connecting ------------------------------------------------------------- */

/* Connects server s to url (nfs://HOST[:PORT]/EXPORT[/SUBDIR]), MNTs it and
 * finds the directory; lowers g.rsize/g.wsize to its FSINFO. A mirror is
 * always bounded (timeo x (retrans + 1), retrans + 1 reconnects): a mirror
 * that does not answer is given up rather than waited for, whatever
 * --hard says. Returns 0 or -1 with a message on stderr. */
int srv_open(unsigned s, const char *url, const struct conn_opts *o)
{
    struct server *sv = &g.srv[s];
    struct krpc_clnt_config cfg;
    struct nfs3_clnt_opts ports;
    struct nfs3_url u;
    struct nfs3_fsinfo_res fi;
    struct nfs3_fattr a;
    struct sockaddr_storage addrs[KRPC_MAX_ADDRS];
    socklen_t lens[KRPC_MAX_ADDRS];
    char err[512];
    size_t rest = 0;
    int n, rc;

    sv->url = url;
    if (strncmp(url, "nfs://", 6) != 0)
        die_usage("%s: not an nfs:// URL", url);
    if (nfs3_url_parse(url, &u, err, sizeof err) < 0)
        die_usage("%s: %s", url, err);
    n = krpc_resolve(u.host, u.nfsport ? u.nfsport : 2049, 0, addrs, lens, KRPC_MAX_ADDRS, err, sizeof err);
    if (n < 0) {
        fprintf(stderr, PROG ": %s: cannot resolve %s\n", url, err);
        return -1;
    }
    memset(&cfg, 0, sizeof cfg);
    cfg.addr = addrs[0];
    cfg.addrlen = lens[0];
    for (int i = 1; i < n; i++) {
        cfg.alt_addrs[i - 1] = addrs[i];
        cfg.alt_addrlens[i - 1] = lens[i];
    }
    cfg.nalt_addrs = (unsigned)n - 1;
    cfg.tls = o->tls ? KRPC_TLS_REQUIRED : KRPC_TLS_OFF;
    cfg.tlscfg.ca_file = o->ca;
    cfg.tlscfg.cert_file = o->cert;
    cfg.tlscfg.key_file = o->key;
    cfg.tlscfg.server_name = o->sni ? o->sni : u.host;
    cfg.tlscfg.keylog_file = o->keylog;
    if (o->soft || s > 0) {
        /* Soft: a call fails after timeo x (retrans + 1), as do reconnects
         * that keep failing. */
        cfg.timeout_ms = (int)(o->timeo ? o->timeo : o->soft ? 3000 : 10000);
        cfg.max_retries = o->retrans ? (int)o->retrans : -1;
        cfg.max_reconnects = (unsigned)o->retrans + 1;
        cfg.connect_timeout_ms = cfg.timeout_ms;
    } else {
        /* Hard: retry and reconnect for ever; a restarted server is
         * invisible (its duplicate-request cache and the write verifiers
         * cover what it lost). */
        cfg.timeout_ms = (int)(o->timeo ? o->timeo : 10000);
        cfg.max_retries = INT_MAX;
        cfg.max_reconnects = UINT_MAX;
    }
    cfg.name = url;
    memset(&ports, 0, sizeof ports);
    ports.mount_port = u.mountport;
    ports.find_nfs_port = u.nfsport == 0;
    if (krpc_loop_new(&sv->loop) < 0 || nfs3_clnt_new_opts(sv->loop, &cfg, &ports, &sv->nc) < 0) {
        fprintf(stderr, PROG ": %s: cannot make the NFS client\n", url);
        return -1;
    }
    /* The URL path is the export, or the export and a directory in it. */
    rc = nfs3_mount(sv->nc, u.path, &sv->root);
    if (rc > 0)
        rc = nfs3_mount_prefix(sv->nc, u.path, &sv->root, &rest);
    if (rc == 0 && u.path[rest] != '\0' && rest > 0)
        rc = nfs3_open_path(sv->nc, &sv->root, u.path + rest, 0, &sv->root, NULL);
    if (rc == 0)
        rc = nfs3_getattr(sv->nc, &sv->root, &a);
    if (rc == 0 && a.type != NFS3_DIR)
        rc = NFS3ERR_NOTDIR;
    if (rc != 0) {
        fprintf(stderr, PROG ": %s: %s\n", url, nfs3_clnt_error(sv->nc)[0] ? nfs3_clnt_error(sv->nc) : "not a directory");
        return -1;
    }
    if (nfs3_fsinfo(sv->nc, &sv->root, &fi) == 0) {
        if (fi.rtmax >= 4096 && fi.rtmax < g.rsize)
            g.rsize = fi.rtmax;
        if (fi.wtmax >= 4096 && fi.wtmax < g.wsize)
            g.wsize = fi.wtmax;
    }
    snprintf(sv->transport, sizeof sv->transport, "%s", nfs3_clnt_transport(sv->nc, NFS3_PROGRAM));
    return 0;
}

/* At unmount: one line per server with the counters that show how its
 * data travelled (out-of-place sealing, copies). The loop threads have
 * stopped, so the clients can be read here. */
void log_counters(void)
{
    for (unsigned s = 0; s < g.nsrv; s++) {
        struct krpc_clnt *rpc;
        struct ktls_stats ts;
        const struct krpc_clnt_stats *st;

        if (!g.srv[s].nc)
            continue;
        rpc = nfs3_clnt_rpc(g.srv[s].nc);
        st = krpc_clnt_stats(rpc);
        krpc_clnt_tls_stats(rpc, &ts);
        fprintf(stderr,
                PROG ": %s %s%s: calls %llu, retransmits %llu, reconnects %llu; TLS records sealed out of "
                "place %llu (%llu bytes), in place %llu, copied %llu (%llu bytes)\n",
                srv_role(s), g.srv[s].url, g.srv[s].failed ? " (failed)" : "", (unsigned long long)st->calls,
                (unsigned long long)st->retransmits, (unsigned long long)st->reconnects,
                (unsigned long long)ts.tx_records_outofplace, (unsigned long long)ts.tx_bytes_outofplace,
                (unsigned long long)ts.tx_records_inplace, (unsigned long long)ts.tx_records_copied,
                (unsigned long long)ts.tx_bytes_copied);
    }
}
