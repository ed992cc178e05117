/*
 * src/nfs3/client.c - the NFSv3 client (see rpctls/nfs3_clnt.h): async
 * READ/WRITE/COMMIT/GETATTR on a krpc client, blocking helpers for MOUNT,
 * path walks and creation, and a pipelined reader.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "rpctls/krpc_pmap.h"
#include "rpctls/nfs3_clnt.h"

struct nfs3_clnt {
    struct krpc_loop *loop;
    struct krpc_clnt *rpc;
    struct krpc_clnt_config cfg; /* for the MOUNT client; strings borrowed only during new */
    char name[160];
    char ca[4096], cert[4096], key[4096], sni[256], keylog[4096];
    char err[512];
    struct nfs3_clnt_opts opts;
    int mount_found;             /* mount_port decided (given, portmapper or the NFS port) */
    uint16_t mount_port;         /* 0: the NFS port */
    char mount_transport[160];
};

/* One asynchronous call: which result to decode and whom to tell. */
struct nfs3_op {
    struct nfs3_clnt *nc;
    uint32_t proc;
    void (*fn)(void);
    void *arg;
};

static void set_err(struct nfs3_clnt *nc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(struct nfs3_clnt *nc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(nc->err, sizeof nc->err, fmt, ap);
    va_end(ap);
}

const char *nfs3_status_str(int status, char *buf, size_t len)
{
    if (status == 0)
        snprintf(buf, len, "OK");
    else if (status > 0)
        snprintf(buf, len, "%s", nfs3_stat_name((uint32_t)status));
    else
        snprintf(buf, len, "%s", strerror(-status));
    return buf;
}

static void copy_str(char *dst, size_t len, const char **field)
{
    if (*field) {
        snprintf(dst, len, "%s", *field);
        *field = dst;
    }
}

/* ---- finding the ports ---------------------------------------------------- */

static uint16_t cfg_port(const struct krpc_clnt_config *c)
{
    const struct sockaddr *sa = (const struct sockaddr *)&c->addr;

    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return ntohs(((const struct sockaddr_in *)sa)->sin_port);
}

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
    else if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
}

/* Every address of the server, on port. */
static void cfg_set_port(struct krpc_clnt_config *c, uint16_t port)
{
    set_port(&c->addr, port);
    for (unsigned i = 0; i < c->nalt_addrs && i < KRPC_MAX_ADDRS - 1; i++)
        set_port(&c->alt_addrs[i], port);
}

/* Asks the portmapper of each of the server's addresses in turn until one
 * answers (registered or not). */
static int pmap_query(const struct krpc_clnt_config *c, uint32_t prog, uint32_t vers, int timeout_ms,
                      uint16_t *port, char *msg, size_t len)
{
    int rc = -EINVAL;

    for (unsigned i = 0; i <= c->nalt_addrs && i < KRPC_MAX_ADDRS; i++) {
        struct sockaddr_storage pm = i == 0 ? c->addr : c->alt_addrs[i - 1];
        socklen_t pmlen = i == 0 ? c->addrlen : c->alt_addrlens[i - 1];
        set_port(&pm, 0); /* 0: the portmapper's port, 111 */
        rc = krpc_pmap_getport((const struct sockaddr *)&pm, pmlen, prog, vers, timeout_ms, port, msg, len);
        if (rc == 0 || rc == -ENOENT)
            break;
    }
    krpc_log(KRPC_LOG_INFO, "nfs client: %s", msg);
    return rc;
}

/* 1 when NFS v3 answers a plain NULL call at c's port (any reply but "not
 * this program or version" counts: a TLS-only server may refuse plain). */
static int nfs_answers(const struct krpc_clnt_config *c, int timeout_ms)
{
    struct krpc_clnt_config pc = *c;
    struct krpc_loop *loop = NULL;
    struct krpc_clnt *cl = NULL;
    struct mb_chain args = MB_CHAIN_INIT;
    struct krpc_reply rep;
    int ret = 0, rc;

    pc.prog = NFS3_PROGRAM;
    pc.vers = NFS3_VERSION;
    pc.tls = KRPC_TLS_OFF;
    memset(&pc.tlscfg, 0, sizeof pc.tlscfg);
    pc.timeout_ms = timeout_ms;
    pc.connect_timeout_ms = timeout_ms;
    pc.max_retries = -1;
    pc.max_reconnects = c->nalt_addrs + 1; /* each address once */
    pc.name = NULL;
    if (krpc_loop_new(&loop) < 0)
        goto out;
    if (krpc_clnt_new(loop, &pc, &cl) < 0)
        goto out;
    rc = krpc_call(cl, NFS3_PROC_NULL, &args, &rep);
    if (rc == 0) {
        rc = krpc_reply_status(&rep.hdr, NULL, 0);
        ret = rc != -EPFNOSUPPORT && rc != -EPROTONOSUPPORT;
        krpc_reply_free(&rep);
    }
out:
    krpc_clnt_free(cl);
    if (loop)
        krpc_loop_free(loop);
    return ret;
}

/* Decides MOUNT's port (see nfs3_clnt.h for the order). */
static void find_mount_port(struct nfs3_clnt *nc)
{
    uint16_t nfs_port = cfg_port(&nc->cfg), mport = 0, pnfs = 0;
    char msg[256];

    if (nc->mount_found)
        return;
    nc->mount_found = 1;
    if (nc->opts.mount_port) {
        nc->mount_port = nc->opts.mount_port;
        return;
    }
    if (pmap_query(&nc->cfg, NFS3_MNT_PROGRAM, NFS3_MNT_VERSION, nc->opts.pmap_timeout_ms, &mport, msg,
                   sizeof msg) != 0)
        return; /* MOUNT on the NFS port */
    if (pmap_query(&nc->cfg, NFS3_PROGRAM, NFS3_VERSION, nc->opts.pmap_timeout_ms, &pnfs, msg, sizeof msg) == 0 &&
        pnfs != nfs_port) {
        krpc_log(KRPC_LOG_INFO,
                 "nfs client: the portmapper's NFS v3 is at port %u, not %u: its MOUNT (port %u) belongs to another "
                 "server; MOUNT goes to port %u",
                 pnfs, nfs_port, mport, nfs_port);
        return;
    }
    nc->mount_port = mport;
}

int nfs3_clnt_new(struct krpc_loop *loop, const struct krpc_clnt_config *cfg, struct nfs3_clnt **out)
{
    return nfs3_clnt_new_opts(loop, cfg, NULL, out);
}

int nfs3_clnt_new_opts(struct krpc_loop *loop, const struct krpc_clnt_config *cfg,
                       const struct nfs3_clnt_opts *opts, struct nfs3_clnt **out)
{
    struct nfs3_clnt *nc;
    int rc;

    *out = NULL;
    nc = calloc(1, sizeof *nc);
    if (!nc)
        return -ENOMEM;
    nc->loop = loop;
    nc->cfg = *cfg;
    nc->cfg.prog = NFS3_PROGRAM;
    nc->cfg.vers = NFS3_VERSION;
    if (opts)
        nc->opts = *opts;
    if (nc->opts.pmap_timeout_ms <= 0)
        nc->opts.pmap_timeout_ms = 3000;
    if (nc->opts.find_nfs_port && !nfs_answers(&nc->cfg, nc->opts.pmap_timeout_ms)) {
        uint16_t port;
        char msg[256];
        if (pmap_query(&nc->cfg, NFS3_PROGRAM, NFS3_VERSION, nc->opts.pmap_timeout_ms, &port, msg, sizeof msg) == 0)
            cfg_set_port(&nc->cfg, port);
    }
    /* A READ reply carries up to NFS3_MAX_DATA bytes plus headers and
     * attributes: more than the RPC layer's default message limit. */
    if (nc->cfg.max_msg == 0)
        nc->cfg.max_msg = NFS3_MAX_DATA + (64u << 10);
    if (nc->cfg.cred.flavor == KRPC_AUTH_NONE && nc->cfg.cred.machine[0] == '\0') {
        nc->cfg.cred.flavor = KRPC_AUTH_SYS;
        nc->cfg.cred.uid = (uint32_t)getuid();
        nc->cfg.cred.gid = (uint32_t)getgid();
        if (gethostname(nc->cfg.cred.machine, sizeof nc->cfg.cred.machine - 1) < 0)
            snprintf(nc->cfg.cred.machine, sizeof nc->cfg.cred.machine, "rpctls");
        nc->cfg.cred.machine[KRPC_AUTH_SYS_MAX_MACHINE] = '\0';
    }
    /* Kept for the MOUNT client made later. */
    copy_str(nc->name, sizeof nc->name, &nc->cfg.name);
    copy_str(nc->ca, sizeof nc->ca, &nc->cfg.tlscfg.ca_file);
    copy_str(nc->cert, sizeof nc->cert, &nc->cfg.tlscfg.cert_file);
    copy_str(nc->key, sizeof nc->key, &nc->cfg.tlscfg.key_file);
    copy_str(nc->sni, sizeof nc->sni, &nc->cfg.tlscfg.server_name);
    copy_str(nc->keylog, sizeof nc->keylog, &nc->cfg.tlscfg.keylog_file);
    nc->cfg.tlscfg.ciphersuites = NULL;
    rc = krpc_clnt_new(loop, &nc->cfg, &nc->rpc);
    if (rc < 0) {
        free(nc);
        return rc;
    }
    *out = nc;
    return 0;
}

void nfs3_clnt_free(struct nfs3_clnt *nc)
{
    if (!nc)
        return;
    krpc_clnt_free(nc->rpc);
    free(nc);
}

struct krpc_clnt *nfs3_clnt_rpc(const struct nfs3_clnt *nc)
{
    return nc->rpc;
}

struct krpc_loop *nfs3_clnt_loop(const struct nfs3_clnt *nc)
{
    return nc->loop;
}

const char *nfs3_clnt_error(const struct nfs3_clnt *nc)
{
    return nc->err;
}

const char *nfs3_clnt_transport(const struct nfs3_clnt *nc, uint32_t prog)
{
    return prog == NFS3_MNT_PROGRAM ? nc->mount_transport : krpc_clnt_transport(nc->rpc);
}

/* ---- asynchronous calls -------------------------------------------------- */

/* Turns the RPC outcome into a status; 0 means res holds accepted results. */
static int rpc_outcome(struct nfs3_clnt *nc, uint32_t proc, int status, struct krpc_reply *reply)
{
    char msg[200];
    int rc;

    if (status < 0) {
        const char *le = krpc_clnt_last_error(nc->rpc);
        set_err(nc, "%s: %s%s%s", nfs3_proc_name(proc), strerror(-status), le[0] ? " (" : "", le[0] ? le : "");
        if (le[0])
            strncat(nc->err, ")", sizeof nc->err - strlen(nc->err) - 1);
        return status;
    }
    rc = krpc_reply_status(&reply->hdr, msg, sizeof msg);
    if (rc < 0)
        set_err(nc, "%s: %s", nfs3_proc_name(proc), msg);
    return rc;
}

static int nfs_outcome(struct nfs3_clnt *nc, uint32_t proc, int dec_rc, uint32_t stat)
{
    if (dec_rc < 0) {
        set_err(nc, "%s: undecodable reply (%s)", nfs3_proc_name(proc), strerror(-dec_rc));
        return dec_rc;
    }
    if (stat != NFS3_OK) {
        set_err(nc, "%s: %s", nfs3_proc_name(proc), nfs3_stat_name(stat));
        return (int)stat;
    }
    return 0;
}

static void op_done(struct krpc_clnt *cl, int status, struct krpc_reply *reply, void *varg)
{
    struct nfs3_op *op = varg;
    struct nfs3_clnt *nc = op->nc;
    int rc;

    (void)cl;
    rc = rpc_outcome(nc, op->proc, status, reply);
    switch (op->proc) {
    case NFS3_PROC_WRITE: {
        struct nfs3_write_res r;
        memset(&r, 0, sizeof r);
        if (rc == 0) {
            rc = nfs3_dec_write_res(&reply->res, &r);
            rc = nfs_outcome(nc, op->proc, rc, r.status);
        }
        ((nfs3_write_fn)op->fn)(nc, rc, rc == 0 ? &r : NULL, op->arg);
        break;
    }
    case NFS3_PROC_READ: {
        struct nfs3_read_res r;
        memset(&r, 0, sizeof r);
        mb_chain_init(&r.data);
        if (rc == 0) {
            rc = nfs3_dec_read_res(&reply->res, &r);
            rc = nfs_outcome(nc, op->proc, rc, r.status);
        }
        ((nfs3_read_fn)op->fn)(nc, rc, rc == 0 ? &r : NULL, op->arg);
        nfs3_read_res_free(&r);
        break;
    }
    case NFS3_PROC_COMMIT: {
        struct nfs3_commit_res r;
        memset(&r, 0, sizeof r);
        if (rc == 0) {
            rc = nfs3_dec_commit_res(&reply->res, &r);
            rc = nfs_outcome(nc, op->proc, rc, r.status);
        }
        ((nfs3_commit_fn)op->fn)(nc, rc, rc == 0 ? &r : NULL, op->arg);
        break;
    }
    case NFS3_PROC_GETATTR: {
        struct nfs3_getattr_res r;
        memset(&r, 0, sizeof r);
        if (rc == 0) {
            rc = nfs3_dec_getattr_res(&reply->res, &r);
            rc = nfs_outcome(nc, op->proc, rc, r.status);
        }
        ((nfs3_getattr_fn)op->fn)(nc, rc, rc == 0 ? &r.attr : NULL, op->arg);
        break;
    }
    default:
        break;
    }
    free(op);
}

static int start_op(struct nfs3_clnt *nc, uint32_t proc, struct mb_chain *args, void (*fn)(void), void *arg)
{
    struct nfs3_op *op = malloc(sizeof *op);
    int rc;

    if (!op) {
        mb_chain_free(args);
        return -ENOMEM;
    }
    op->nc = nc;
    op->proc = proc;
    op->fn = fn;
    op->arg = arg;
    rc = krpc_call_async(nc->rpc, proc, args, op_done, op, NULL);
    if (rc < 0)
        free(op);
    return rc;
}

/* Checks an encoder's sticky error; on failure the chain is freed. */
static int enc_done(struct krpc_xdr_enc *x, struct mb_chain *c)
{
    int rc = krpc_xdr_enc_error(x);

    if (rc < 0)
        mb_chain_free(c);
    return rc;
}

int nfs3_write_async(struct nfs3_clnt *nc, const struct nfs3_fh *fh, uint64_t offset, uint32_t stable,
                     struct mb_chain *data, nfs3_write_fn fn, void *arg)
{
    struct nfs3_write_args a;
    struct mb_chain c = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    int rc;

    if (data->len > NFS3_MAX_DATA) {
        mb_chain_free(data);
        return -EMSGSIZE;
    }
    memset(&a, 0, sizeof a);
    a.fh = *fh;
    a.offset = offset;
    a.count = (uint32_t)data->len;
    a.stable = stable;
    mb_chain_init(&a.data);
    mb_chain_concat(&a.data, data); /* links move; no byte is copied */
    krpc_xdr_enc_init(&x, &c);
    nfs3_enc_write_args(&x, &a); /* links the data in by reference */
    nfs3_write_args_free(&a);
    if ((rc = enc_done(&x, &c)) < 0)
        return rc;
    return start_op(nc, NFS3_PROC_WRITE, &c, (void (*)(void))fn, arg);
}

int nfs3_read_async(struct nfs3_clnt *nc, const struct nfs3_fh *fh, uint64_t offset, uint32_t count,
                    nfs3_read_fn fn, void *arg)
{
    struct nfs3_read_args a;
    struct mb_chain c = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    int rc;

    memset(&a, 0, sizeof a);
    a.fh = *fh;
    a.offset = offset;
    a.count = count;
    krpc_xdr_enc_init(&x, &c);
    nfs3_enc_read_args(&x, &a);
    if ((rc = enc_done(&x, &c)) < 0)
        return rc;
    return start_op(nc, NFS3_PROC_READ, &c, (void (*)(void))fn, arg);
}

int nfs3_commit_async(struct nfs3_clnt *nc, const struct nfs3_fh *fh, uint64_t offset, uint32_t count,
                      nfs3_commit_fn fn, void *arg)
{
    struct nfs3_commit_args a;
    struct mb_chain c = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    int rc;

    memset(&a, 0, sizeof a);
    a.fh = *fh;
    a.offset = offset;
    a.count = count;
    krpc_xdr_enc_init(&x, &c);
    nfs3_enc_commit_args(&x, &a);
    if ((rc = enc_done(&x, &c)) < 0)
        return rc;
    return start_op(nc, NFS3_PROC_COMMIT, &c, (void (*)(void))fn, arg);
}

int nfs3_getattr_async(struct nfs3_clnt *nc, const struct nfs3_fh *fh, nfs3_getattr_fn fn, void *arg)
{
    struct nfs3_fh_args a;
    struct mb_chain c = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    int rc;

    a.fh = *fh;
    krpc_xdr_enc_init(&x, &c);
    nfs3_enc_getattr_args(&x, &a);
    if ((rc = enc_done(&x, &c)) < 0)
        return rc;
    return start_op(nc, NFS3_PROC_GETATTR, &c, (void (*)(void))fn, arg);
}

/* ---- blocking helpers ------------------------------------------------------ */

/* One blocking call on rpc (NFS or MOUNT): encodes nothing, decodes nothing;
 * reply holds the accepted results on 0. */
static int call_sync(struct nfs3_clnt *nc, struct krpc_clnt *rpc, uint32_t proc, const char *pname,
                     struct mb_chain *args, struct krpc_reply *reply)
{
    char msg[200];
    int rc = krpc_call(rpc, proc, args, reply);

    if (rc < 0) {
        const char *le = krpc_clnt_last_error(rpc);
        if (le[0])
            set_err(nc, "%s: %s (%s)", pname, strerror(-rc), le);
        else
            set_err(nc, "%s: %s", pname, strerror(-rc));
        return rc;
    }
    rc = krpc_reply_status(&reply->hdr, msg, sizeof msg);
    if (rc < 0) {
        set_err(nc, "%s: %s", pname, msg);
        krpc_reply_free(reply);
    }
    return rc;
}

static int mount_client(struct nfs3_clnt *nc, struct krpc_clnt **out)
{
    struct krpc_clnt_config cfg = nc->cfg;
    char name[200];
    int rc;

    cfg.prog = NFS3_MNT_PROGRAM;
    cfg.vers = NFS3_MNT_VERSION;
    find_mount_port(nc);
    if (nc->mount_port && nc->mount_port != cfg_port(&nc->cfg)) {
        /* A separate mountd: TLS when it offers it, plain when it refuses
         * the probe, as the kernel clients reach mountd. NFS itself keeps
         * the caller's policy. */
        cfg_set_port(&cfg, nc->mount_port);
        if (cfg.tls != KRPC_TLS_OFF)
            cfg.tls = KRPC_TLS_OPPORTUNISTIC;
    }
    snprintf(name, sizeof name, "%s (MOUNT)", nc->name[0] ? nc->name : "nfs");
    cfg.name = name;
    rc = krpc_clnt_new(nc->loop, &cfg, out);
    if (rc < 0)
        set_err(nc, "MOUNT client: %s", strerror(-rc));
    return rc;
}

static void mount_client_free(struct nfs3_clnt *nc, struct krpc_clnt *mc)
{
    if (krpc_clnt_transport(mc)[0])
        snprintf(nc->mount_transport, sizeof nc->mount_transport, "%s", krpc_clnt_transport(mc));
    krpc_clnt_free(mc);
}

static int mnt_call(struct nfs3_clnt *nc, struct krpc_clnt *mc, const char *path, struct nfs3_fh *root)
{
    struct nfs3_mnt_args a;
    struct nfs3_mnt_res r;
    struct mb_chain c = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    struct krpc_reply rep;
    int rc;

    if (strlen(path) > NFS3_MAXPATHLEN) {
        set_err(nc, "MNT %s: path too long", path);
        return -ENAMETOOLONG;
    }
    memset(&a, 0, sizeof a);
    snprintf(a.dirpath, sizeof a.dirpath, "%s", path);
    krpc_xdr_enc_init(&x, &c);
    nfs3_mnt_enc_mnt_args(&x, &a);
    if ((rc = enc_done(&x, &c)) < 0)
        return rc;
    rc = call_sync(nc, mc, NFS3_MNT_PROC_MNT, "MNT", &c, &rep);
    if (rc < 0)
        return rc;
    rc = nfs3_mnt_dec_mnt_res(&rep.res, &r);
    krpc_reply_free(&rep);
    if (rc < 0) {
        set_err(nc, "MNT %s: undecodable reply", path);
        return rc;
    }
    if (r.status != MNT3_OK) {
        set_err(nc, "MNT %s: %s", path, nfs3_mnt_stat_name(r.status));
        return (int)r.status;
    }
    *root = r.fh;
    return 0;
}

int nfs3_mount(struct nfs3_clnt *nc, const char *export_path, struct nfs3_fh *root)
{
    struct krpc_clnt *mc;
    int rc = mount_client(nc, &mc);

    if (rc < 0)
        return rc;
    rc = mnt_call(nc, mc, export_path, root);
    mount_client_free(nc, mc);
    return rc;
}

int nfs3_mount_prefix(struct nfs3_clnt *nc, const char *path, struct nfs3_fh *root, size_t *rest_off)
{
    char buf[NFS3_MAXPATHLEN + 1];
    struct krpc_clnt *mc;
    size_t n = strlen(path);
    int rc, first_err = 0;
    char first_msg[512] = "";

    if (n == 0 || path[0] != '/' || n > NFS3_MAXPATHLEN) {
        set_err(nc, "%s: not an absolute path of at most %d bytes", path, NFS3_MAXPATHLEN);
        return -EINVAL;
    }
    rc = mount_client(nc, &mc);
    if (rc < 0)
        return rc;
    /* Longest proper prefix first: the last component is the object itself. */
    while (n > 0 && path[n - 1] == '/')
        n--;
    for (;;) {
        while (n > 0 && path[n - 1] != '/')
            n--; /* drop a component */
        while (n > 1 && path[n - 1] == '/')
            n--;
        if (n == 0)
            break;
        memcpy(buf, path, n);
        buf[n] = '\0';
        rc = mnt_call(nc, mc, buf, root);
        if (rc == 0) {
            size_t r = n;
            while (path[r] == '/')
                r++;
            *rest_off = r;
            break;
        }
        if (rc < 0) /* an RPC failure: no use trying shorter prefixes */
            break;
        if (!first_err) {
            first_err = rc;
            snprintf(first_msg, sizeof first_msg, "%s", nc->err);
        }
        if (n == 1)
            break;
    }
    mount_client_free(nc, mc);
    if (rc > 0) {
        set_err(nc, "no prefix of %s is exported (%s)", path, first_msg);
        rc = first_err;
    }
    return rc;
}

int nfs3_getattr(struct nfs3_clnt *nc, const struct nfs3_fh *fh, struct nfs3_fattr *attr)
{
    struct nfs3_fh_args a;
    struct nfs3_getattr_res r;
    struct mb_chain c = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    struct krpc_reply rep;
    int rc;

    a.fh = *fh;
    krpc_xdr_enc_init(&x, &c);
    nfs3_enc_getattr_args(&x, &a);
    if ((rc = enc_done(&x, &c)) < 0)
        return rc;
    if ((rc = call_sync(nc, nc->rpc, NFS3_PROC_GETATTR, "GETATTR", &c, &rep)) < 0)
        return rc;
    rc = nfs3_dec_getattr_res(&rep.res, &r);
    rc = nfs_outcome(nc, NFS3_PROC_GETATTR, rc, r.status);
    krpc_reply_free(&rep);
    if (rc == 0 && attr)
        *attr = r.attr;
    return rc;
}

int nfs3_fsinfo(struct nfs3_clnt *nc, const struct nfs3_fh *fh, struct nfs3_fsinfo_res *res)
{
    struct nfs3_fh_args a;
    struct mb_chain c = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    struct krpc_reply rep;
    int rc;

    a.fh = *fh;
    krpc_xdr_enc_init(&x, &c);
    nfs3_enc_fsinfo_args(&x, &a);
    if ((rc = enc_done(&x, &c)) < 0)
        return rc;
    if ((rc = call_sync(nc, nc->rpc, NFS3_PROC_FSINFO, "FSINFO", &c, &rep)) < 0)
        return rc;
    rc = nfs3_dec_fsinfo_res(&rep.res, res);
    rc = nfs_outcome(nc, NFS3_PROC_FSINFO, rc, res->status);
    krpc_reply_free(&rep);
    return rc;
}

static int set_name(struct nfs3_clnt *nc, struct nfs3_diropargs *w, const struct nfs3_fh *dir, const char *name)
{
    if (strlen(name) > NFS3_MAXNAMLEN) {
        set_err(nc, "%s: name too long", name);
        return NFS3ERR_NAMETOOLONG;
    }
    w->dir = *dir;
    snprintf(w->name, sizeof w->name, "%s", name);
    return 0;
}

int nfs3_lookup(struct nfs3_clnt *nc, const struct nfs3_fh *dir, const char *name, struct nfs3_fh *fh,
                struct nfs3_fattr *attr)
{
    struct nfs3_diropargs a;
    struct nfs3_lookup_res r;
    struct mb_chain c = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    struct krpc_reply rep;
    int rc;

    memset(&a, 0, sizeof a);
    if ((rc = set_name(nc, &a, dir, name)) != 0)
        return rc;
    krpc_xdr_enc_init(&x, &c);
    nfs3_enc_lookup_args(&x, &a);
    if ((rc = enc_done(&x, &c)) < 0)
        return rc;
    if ((rc = call_sync(nc, nc->rpc, NFS3_PROC_LOOKUP, "LOOKUP", &c, &rep)) < 0)
        return rc;
    rc = nfs3_dec_lookup_res(&rep.res, &r);
    rc = nfs_outcome(nc, NFS3_PROC_LOOKUP, rc, r.status);
    krpc_reply_free(&rep);
    if (rc == 0) {
        *fh = r.fh;
        if (attr) {
            if (r.obj_attr.present)
                *attr = r.obj_attr.attr;
            else
                rc = nfs3_getattr(nc, fh, attr);
        }
    } else if (rc > 0) {
        set_err(nc, "LOOKUP %s: %s", name, nfs3_stat_name((uint32_t)rc));
    }
    return rc;
}

static int diropres_done(struct nfs3_clnt *nc, uint32_t proc, const char *name, struct krpc_reply *rep,
                         int (*dec)(struct krpc_xdr_dec *, struct nfs3_diropres *), const struct nfs3_fh *dir,
                         struct nfs3_fh *fh)
{
    struct nfs3_diropres r;
    int rc = dec(&rep->res, &r);

    rc = nfs_outcome(nc, proc, rc, r.status);
    krpc_reply_free(rep);
    if (rc > 0)
        set_err(nc, "%s %s: %s", nfs3_proc_name(proc), name, nfs3_stat_name((uint32_t)rc));
    if (rc != 0)
        return rc;
    if (r.fh_present) {
        *fh = r.fh;
        return 0;
    }
    return nfs3_lookup(nc, dir, name, fh, NULL); /* post_op_fh3 is optional */
}

int nfs3_create(struct nfs3_clnt *nc, const struct nfs3_fh *dir, const char *name, uint32_t mode, int truncate,
                struct nfs3_fh *fh)
{
    struct nfs3_create_args a;
    struct mb_chain c = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    struct krpc_reply rep;
    int rc;

    memset(&a, 0, sizeof a);
    if ((rc = set_name(nc, &a.where, dir, name)) != 0)
        return rc;
    a.mode = NFS3_CREATE_UNCHECKED;
    a.attr.set_mode = 1;
    a.attr.mode = mode;
    if (truncate) {
        a.attr.set_size = 1;
        a.attr.size = 0;
    }
    krpc_xdr_enc_init(&x, &c);
    nfs3_enc_create_args(&x, &a);
    if ((rc = enc_done(&x, &c)) < 0)
        return rc;
    if ((rc = call_sync(nc, nc->rpc, NFS3_PROC_CREATE, "CREATE", &c, &rep)) < 0)
        return rc;
    return diropres_done(nc, NFS3_PROC_CREATE, name, &rep, nfs3_dec_create_res, dir, fh);
}

int nfs3_mkdir(struct nfs3_clnt *nc, const struct nfs3_fh *dir, const char *name, uint32_t mode,
               struct nfs3_fh *fh)
{
    struct nfs3_mkdir_args a;
    struct mb_chain c = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    struct krpc_reply rep;
    int rc;

    memset(&a, 0, sizeof a);
    if ((rc = set_name(nc, &a.where, dir, name)) != 0)
        return rc;
    a.attr.set_mode = 1;
    a.attr.mode = mode;
    krpc_xdr_enc_init(&x, &c);
    nfs3_enc_mkdir_args(&x, &a);
    if ((rc = enc_done(&x, &c)) < 0)
        return rc;
    if ((rc = call_sync(nc, nc->rpc, NFS3_PROC_MKDIR, "MKDIR", &c, &rep)) < 0)
        return rc;
    return diropres_done(nc, NFS3_PROC_MKDIR, name, &rep, nfs3_dec_mkdir_res, dir, fh);
}

int nfs3_open_path(struct nfs3_clnt *nc, const struct nfs3_fh *dir, const char *relpath, int flags,
                   struct nfs3_fh *fh, struct nfs3_fattr *attr)
{
    struct nfs3_fh cur = *dir, next;
    struct nfs3_fattr a;
    const char *p = relpath;
    char comp[NFS3_MAXNAMLEN + 2];
    int rc;

    for (;;) {
        const char *e;
        size_t n;
        int last;

        while (*p == '/')
            p++;
        if (*p == '\0')
            break;
        e = strchr(p, '/');
        n = e ? (size_t)(e - p) : strlen(p);
        if (n > NFS3_MAXNAMLEN) {
            set_err(nc, "%.*s: name too long", (int)n, p);
            return NFS3ERR_NAMETOOLONG;
        }
        memcpy(comp, p, n);
        comp[n] = '\0';
        p += n;
        while (*p == '/')
            p++;
        last = *p == '\0';
        if (last && (flags & NFS3_OPEN_TRUNC)) {
            /* CREATE UNCHECKED with size 0 creates or empties in one call. */
            rc = nfs3_create(nc, &cur, comp, 0644, 1, &next);
        } else {
            rc = nfs3_lookup(nc, &cur, comp, &next, NULL);
            if (rc == NFS3ERR_NOENT && last && (flags & NFS3_OPEN_CREATE))
                rc = nfs3_create(nc, &cur, comp, 0644, 0, &next);
            else if (rc == NFS3ERR_NOENT && !last && (flags & NFS3_OPEN_MKDIRS)) {
                rc = nfs3_mkdir(nc, &cur, comp, 0755, &next);
                if (rc == NFS3ERR_EXIST) /* made by someone else meanwhile */
                    rc = nfs3_lookup(nc, &cur, comp, &next, NULL);
            }
        }
        if (rc != 0)
            return rc;
        cur = next;
    }
    *fh = cur;
    if (attr) {
        rc = nfs3_getattr(nc, &cur, &a);
        if (rc != 0)
            return rc;
        *attr = a;
    }
    return 0;
}

int nfs3_write(struct nfs3_clnt *nc, const struct nfs3_fh *fh, uint64_t offset, uint32_t stable,
               struct mb_chain *data, struct nfs3_write_res *res)
{
    struct nfs3_write_args a;
    struct mb_chain c = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    struct krpc_reply rep;
    int rc;

    memset(&a, 0, sizeof a);
    a.fh = *fh;
    a.offset = offset;
    a.count = (uint32_t)data->len;
    a.stable = stable;
    mb_chain_init(&a.data);
    mb_chain_concat(&a.data, data);
    krpc_xdr_enc_init(&x, &c);
    nfs3_enc_write_args(&x, &a);
    nfs3_write_args_free(&a);
    if ((rc = enc_done(&x, &c)) < 0)
        return rc;
    if ((rc = call_sync(nc, nc->rpc, NFS3_PROC_WRITE, "WRITE", &c, &rep)) < 0)
        return rc;
    rc = nfs3_dec_write_res(&rep.res, res);
    rc = nfs_outcome(nc, NFS3_PROC_WRITE, rc, res->status);
    krpc_reply_free(&rep);
    return rc;
}

int nfs3_commit(struct nfs3_clnt *nc, const struct nfs3_fh *fh, uint64_t offset, uint32_t count,
                uint8_t verf[NFS3_WRITEVERFSIZE])
{
    struct nfs3_commit_args a;
    struct nfs3_commit_res r;
    struct mb_chain c = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    struct krpc_reply rep;
    int rc;

    memset(&a, 0, sizeof a);
    a.fh = *fh;
    a.offset = offset;
    a.count = count;
    krpc_xdr_enc_init(&x, &c);
    nfs3_enc_commit_args(&x, &a);
    if ((rc = enc_done(&x, &c)) < 0)
        return rc;
    if ((rc = call_sync(nc, nc->rpc, NFS3_PROC_COMMIT, "COMMIT", &c, &rep)) < 0)
        return rc;
    rc = nfs3_dec_commit_res(&rep.res, &r);
    rc = nfs_outcome(nc, NFS3_PROC_COMMIT, rc, r.status);
    krpc_reply_free(&rep);
    if (rc == 0 && verf)
        memcpy(verf, r.verf, NFS3_WRITEVERFSIZE);
    return rc;
}

/* ---- pipelined READ -------------------------------------------------------- */

struct rd_slot {
    uint64_t off;       /* file offset of the slot's first byte */
    uint32_t len;       /* bytes asked for */
    uint32_t have;      /* bytes received */
    int busy;           /* a READ is outstanding */
    int done;           /* complete (have == len, or the file ended) */
    struct mb_chain data;
    struct rd_state *st;
};

struct rd_state {
    struct nfs3_clnt *nc;
    const struct nfs3_fh *fh;
    uint64_t next_off, end;
    uint32_t rsize;
    unsigned depth, head, used; /* ring of depth slots: head is the oldest */
    struct rd_slot *slots;
    int eof;                    /* the file ended: no new slots */
    uint64_t eof_at;
    int err;
    unsigned outstanding;
    int finished;
};

static void rd_cb(struct nfs3_clnt *nc, int status, struct nfs3_read_res *res, void *arg);

static int rd_issue(struct rd_state *st, struct rd_slot *s)
{
    int rc = nfs3_read_async(st->nc, st->fh, s->off + s->have, s->len - s->have, rd_cb, s);

    if (rc == 0) {
        s->busy = 1;
        st->outstanding++;
    } else if (!st->err) {
        st->err = rc;
    }
    return rc;
}

static void rd_cb(struct nfs3_clnt *nc, int status, struct nfs3_read_res *res, void *arg)
{
    struct rd_slot *s = arg;
    struct rd_state *st = s->st;

    (void)nc;
    s->busy = 0;
    st->outstanding--;
    if (status != 0) {
        if (!st->err)
            st->err = status;
        return;
    }
    if (res->data.len > s->len - s->have) {
        if (!st->err) {
            set_err(st->nc, "READ: the server returned more data than asked for");
            st->err = -EBADMSG;
        }
        return;
    }
    s->have += (uint32_t)res->data.len;
    mb_chain_concat(&s->data, &res->data);
    if (s->have == s->len) {
        s->done = 1;
    } else if (res->eof || res->data.len == 0) {
        s->done = 1;
        if (!st->eof || s->off + s->have < st->eof_at) {
            st->eof = 1;
            st->eof_at = s->off + s->have;
        }
    } else if (!st->err) {
        rd_issue(st, s); /* a short read: ask for the rest */
    }
}

int nfs3_read_pipelined(struct nfs3_clnt *nc, const struct nfs3_fh *fh, uint64_t offset, uint64_t length,
                        uint32_t rsize, unsigned depth, nfs3_sink_fn sink, void *arg, uint64_t *got)
{
    struct rd_state st;
    uint64_t delivered = 0;
    int rc = 0;

    if (rsize == 0 || rsize > NFS3_MAX_DATA)
        return -EINVAL;
    if (depth == 0)
        depth = 1;
    memset(&st, 0, sizeof st);
    st.nc = nc;
    st.fh = fh;
    st.next_off = offset;
    st.end = length > UINT64_MAX - offset ? UINT64_MAX : offset + length;
    st.rsize = rsize;
    st.depth = depth;
    st.slots = calloc(depth, sizeof *st.slots);
    if (!st.slots)
        return -ENOMEM;
    for (unsigned i = 0; i < depth; i++) {
        mb_chain_init(&st.slots[i].data);
        st.slots[i].st = &st;
    }
    for (;;) {
        int moved = 0;
        /* Fill free slots. */
        while (!st.err && !st.eof && st.used < depth && st.next_off < st.end) {
            moved = 1;
            struct rd_slot *s = &st.slots[(st.head + st.used) % depth];
            uint64_t n = st.end - st.next_off;
            s->off = st.next_off;
            s->len = (uint32_t)(n < rsize ? n : rsize);
            s->have = 0;
            s->done = 0;
            st.next_off += s->len;
            st.used++;
            rd_issue(&st, s);
        }
        /* Deliver completed slots in order. */
        while (!st.err && st.used > 0 && st.slots[st.head].done) {
            struct rd_slot *s = &st.slots[st.head];
            uint64_t soff = s->off;
            delivered += s->data.len;
            if (s->data.len > 0) {
                int r = sink(arg, soff, &s->data);
                mb_chain_free(&s->data);
                if (r != 0) {
                    st.err = r;
                    break;
                }
            }
            s->done = 0;
            st.head = (st.head + 1) % depth;
            st.used--;
            moved = 1;
        }
        if (st.err || (st.used == 0 && (st.eof || st.next_off >= st.end)))
            break;
        if (moved)
            continue; /* freed slots: fill them before waiting */
        rc = krpc_loop_run_once(nc->loop, -1);
        if (rc < 0 && rc != -EINTR) {
            st.err = rc;
            break;
        }
    }
    /* Let outstanding calls finish (their callbacks use the slots). */
    while (st.outstanding > 0) {
        rc = krpc_loop_run_once(nc->loop, 1000);
        if (rc < 0 && rc != -EINTR)
            abort(); /* callbacks still point at st: cannot return */
    }
    for (unsigned i = 0; i < depth; i++)
        mb_chain_free(&st.slots[i].data);
    free(st.slots);
    if (got)
        *got = delivered;
    return st.err;
}
