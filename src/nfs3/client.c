/*
 * src/nfs3/client.c - the NFSv3 client (see rpctls/nfs3_clnt.h): async
 * READ/WRITE/COMMIT/GETATTR on a krpc client, blocking helpers for MOUNT,
 * every NFS procedure a file system needs, and a pipelined reader.
 *
 * Threaded mode (nfs3_clnt_start_thread): the loop, the krpc client and its
 * connection stay with one thread, the loop thread. Other threads never
 * touch them: they put a job (procedure, encoded arguments, credential,
 * callback) on a queue under a mutex and wake the loop with an eventfd; the
 * loop thread starts the RPC. A blocking helper's callback moves the reply
 * into the caller's waiter and signals its condition variable; the caller
 * decodes in its own thread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

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
    pthread_mutex_t err_mu;      /* nc->err is written from several threads in threaded mode */
    /* Threaded mode (nfs3_clnt_start_thread). */
    int threaded;
    pthread_t thread;
    int efd;                     /* wakes the loop thread: jobs queued or stop */
    pthread_mutex_t q_mu;
    struct nfs3_job *q_head, *q_tail;
    int stop;                    /* set under q_mu; the loop thread exits */
};

/* A call handed to the loop thread. */
struct nfs3_job {
    struct nfs3_job *next;
    uint32_t proc;
    struct mb_chain args;
    int has_cred;
    struct krpc_cred cred;
    krpc_call_fn fn;
    void *arg;
};

/* The credential of the calls this thread starts (nfs3_clnt_set_thread_cred). */
static __thread int thread_cred_set;
static __thread struct krpc_cred thread_cred;

/* One asynchronous call: which result to decode and whom to tell. */
struct nfs3_op {
    struct nfs3_clnt *nc;
    uint32_t proc;
    uint32_t count; /* READ: bytes asked for; a reply with more is refused */
    void (*fn)(void);
    void *arg;
};

static void set_err(struct nfs3_clnt *nc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(struct nfs3_clnt *nc, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&nc->err_mu);
    va_start(ap, fmt);
    vsnprintf(nc->err, sizeof nc->err, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&nc->err_mu);
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
    nc->efd = -1;
    pthread_mutex_init(&nc->err_mu, NULL);
    pthread_mutex_init(&nc->q_mu, NULL);
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
    nfs3_clnt_stop_thread(nc);
    krpc_clnt_free(nc->rpc);
    pthread_mutex_destroy(&nc->err_mu);
    pthread_mutex_destroy(&nc->q_mu);
    free(nc);
}

/* ---- threaded mode ---------------------------------------------------------- */

void nfs3_clnt_set_thread_cred(const struct krpc_cred *cred)
{
    thread_cred_set = cred != NULL;
    if (cred)
        thread_cred = *cred;
}

static const struct krpc_cred *cur_cred(void)
{
    return thread_cred_set ? &thread_cred : NULL;
}

static int on_loop_thread(const struct nfs3_clnt *nc)
{
    return nc->threaded && pthread_equal(pthread_self(), nc->thread);
}

/* Loop thread: starts every queued job. */
static void jobs_ready(struct krpc_loop *loop, int fd, uint32_t events, void *arg)
{
    struct nfs3_clnt *nc = arg;
    struct nfs3_job *j;
    uint64_t v;
    int stop;

    (void)loop;
    (void)events;
    if (read(fd, &v, sizeof v) < 0 && errno != EAGAIN)
        krpc_log(KRPC_LOG_WARN, "nfs client: eventfd read: %s", strerror(errno));
    pthread_mutex_lock(&nc->q_mu);
    j = nc->q_head;
    nc->q_head = nc->q_tail = NULL;
    stop = nc->stop;
    pthread_mutex_unlock(&nc->q_mu);
    while (j) {
        struct nfs3_job *next = j->next;
        int rc = krpc_call_async_cred(nc->rpc, j->proc, j->has_cred ? &j->cred : NULL, &j->args, j->fn, j->arg,
                                      NULL);
        if (rc < 0)
            j->fn(nc->rpc, rc, NULL, j->arg);
        free(j);
        j = next;
    }
    if (stop)
        krpc_loop_stop(nc->loop);
}

static void *loop_main(void *arg)
{
    struct nfs3_clnt *nc = arg;
    int stop = 0;

    while (!stop) {
        krpc_loop_run(nc->loop, &nc->stop, -1);
        pthread_mutex_lock(&nc->q_mu);
        stop = nc->stop;
        pthread_mutex_unlock(&nc->q_mu);
    }
    return NULL;
}

int nfs3_clnt_start_thread(struct nfs3_clnt *nc)
{
    int rc;

    if (nc->threaded)
        return -EALREADY;
    nc->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (nc->efd < 0)
        return -errno;
    rc = krpc_loop_add_fd(nc->loop, nc->efd, EPOLLIN, jobs_ready, nc);
    if (rc < 0)
        goto fail;
    nc->stop = 0;
    nc->threaded = 1;
    rc = -pthread_create(&nc->thread, NULL, loop_main, nc);
    if (rc < 0) {
        nc->threaded = 0;
        krpc_loop_del_fd(nc->loop, nc->efd);
        goto fail;
    }
    return 0;
fail:
    close(nc->efd);
    nc->efd = -1;
    return rc;
}

static void wake_loop(struct nfs3_clnt *nc)
{
    uint64_t one = 1;

    if (write(nc->efd, &one, sizeof one) < 0 && errno != EAGAIN)
        krpc_log(KRPC_LOG_WARN, "nfs client: eventfd write: %s", strerror(errno));
}

void nfs3_clnt_stop_thread(struct nfs3_clnt *nc)
{
    struct nfs3_job *j;

    if (!nc->threaded)
        return;
    pthread_mutex_lock(&nc->q_mu);
    nc->stop = 1;
    pthread_mutex_unlock(&nc->q_mu);
    wake_loop(nc);
    pthread_join(nc->thread, NULL);
    nc->threaded = 0;
    krpc_loop_del_fd(nc->loop, nc->efd);
    close(nc->efd);
    nc->efd = -1;
    /* Jobs queued after the last drain never started: fail them. */
    pthread_mutex_lock(&nc->q_mu);
    j = nc->q_head;
    nc->q_head = nc->q_tail = NULL;
    pthread_mutex_unlock(&nc->q_mu);
    while (j) {
        struct nfs3_job *next = j->next;
        mb_chain_free(&j->args);
        j->fn(nc->rpc, -ECANCELED, NULL, j->arg);
        free(j);
        j = next;
    }
}

/* Starts an RPC from any thread: directly when this thread owns the loop
 * (or no loop thread runs), through the job queue otherwise. args is
 * consumed either way. */
static int rpc_start(struct nfs3_clnt *nc, uint32_t proc, struct mb_chain *args, krpc_call_fn fn, void *arg)
{
    struct nfs3_job *j;
    int stopped;

    if (!nc->threaded || on_loop_thread(nc))
        return krpc_call_async_cred(nc->rpc, proc, cur_cred(), args, fn, arg, NULL);
    j = calloc(1, sizeof *j);
    if (!j) {
        mb_chain_free(args);
        return -ENOMEM;
    }
    j->proc = proc;
    mb_chain_init(&j->args);
    mb_chain_concat(&j->args, args);
    if (cur_cred()) {
        j->has_cred = 1;
        j->cred = *cur_cred();
    }
    j->fn = fn;
    j->arg = arg;
    pthread_mutex_lock(&nc->q_mu);
    stopped = nc->stop;
    if (!stopped) {
        if (nc->q_tail)
            nc->q_tail->next = j;
        else
            nc->q_head = j;
        nc->q_tail = j;
    }
    pthread_mutex_unlock(&nc->q_mu);
    if (stopped) {
        mb_chain_free(&j->args);
        free(j);
        return -ECANCELED;
    }
    wake_loop(nc);
    return 0;
}

/* A blocking call made from a thread that is not the loop thread. */
struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, status;
    struct krpc_reply *reply;
};

static void waiter_cb(struct krpc_clnt *cl, int status, struct krpc_reply *reply, void *arg)
{
    struct waiter *w = arg;

    (void)cl;
    pthread_mutex_lock(&w->mu);
    w->status = status;
    if (status == 0 && reply)
        krpc_reply_move(w->reply, reply);
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Waits without a deadline of its own: the RPC client's timeouts, retries
 * and reconnect budget end every call (with --hard mounts, only the server's
 * answer does, as with a hard NFS mount). */
static int call_threaded(struct nfs3_clnt *nc, uint32_t proc, struct mb_chain *args, struct krpc_reply *reply)
{
    struct waiter w;
    int rc;

    memset(reply, 0, sizeof *reply);
    mb_chain_init(&reply->msg);
    memset(&w, 0, sizeof w);
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    w.reply = reply;
    rc = rpc_start(nc, proc, args, waiter_cb, &w);
    if (rc == 0) {
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        rc = w.status;
    }
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    return rc;
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
        if (rc == 0 && r.data.len > op->count) {
            set_err(nc, "READ: the server returned %zu bytes where %u were asked for", r.data.len, op->count);
            krpc_log(KRPC_LOG_WARN, "nfs client: %s", nc->err);
            rc = -EBADMSG;
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

static int start_op(struct nfs3_clnt *nc, uint32_t proc, struct mb_chain *args, void (*fn)(void), void *arg,
                    uint32_t count)
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
    op->count = count;
    rc = rpc_start(nc, proc, args, op_done, op);
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
    return start_op(nc, NFS3_PROC_WRITE, &c, (void (*)(void))fn, arg, 0);
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
    return start_op(nc, NFS3_PROC_READ, &c, (void (*)(void))fn, arg, count);
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
    return start_op(nc, NFS3_PROC_COMMIT, &c, (void (*)(void))fn, arg, 0);
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
    return start_op(nc, NFS3_PROC_GETATTR, &c, (void (*)(void))fn, arg, 0);
}

/* ---- blocking helpers ------------------------------------------------------ */

/* One blocking call on rpc (NFS or MOUNT): encodes nothing, decodes nothing;
 * reply holds the accepted results on 0. */
static int call_sync(struct nfs3_clnt *nc, struct krpc_clnt *rpc, uint32_t proc, const char *pname,
                     struct mb_chain *args, struct krpc_reply *reply)
{
    char msg[200];
    int rc;

    if (rpc != nc->rpc)
        rc = krpc_call(rpc, proc, args, reply); /* MOUNT: before the loop thread starts */
    else if (on_loop_thread(nc))
        rc = -EDEADLK; /* a blocking helper inside a loop callback would wait for itself */
    else if (nc->threaded)
        rc = call_threaded(nc, proc, args, reply);
    else
        rc = krpc_call_cred(rpc, proc, cur_cred(), args, reply);

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

    if (nc->threaded) {
        set_err(nc, "MOUNT: mount before nfs3_clnt_start_thread");
        return -EBUSY;
    }
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


/* ---- one synchronous call per procedure, table-driven ---------------------- */

/* How one procedure's arguments are encoded and its results decoded: the
 * blocking wrappers below differ only in these and in what they copy out. */
struct nfs_xdr_io {
    uint32_t proc;
    void (*enc)(struct krpc_xdr_enc *x, const void *args);
    int (*dec)(struct krpc_xdr_dec *d, void *res);
    size_t res_size;
    size_t status_off; /* where the results keep their nfsstat3 */
};

/* Typed adapters, so that each call goes through its own function type. */
#define NFS_XDR_IO(p, P, argtype, restype)                                                                     \
    static void enc_##p(struct krpc_xdr_enc *x, const void *a)                                                 \
    {                                                                                                          \
        nfs3_enc_##p##_args(x, (const argtype *)a);                                                            \
    }                                                                                                          \
    static int dec_##p(struct krpc_xdr_dec *d, void *r)                                                        \
    {                                                                                                          \
        return nfs3_dec_##p##_res(d, (restype *)r);                                                            \
    }                                                                                                          \
    static const struct nfs_xdr_io io_##p = {NFS3_PROC_##P, enc_##p, dec_##p, sizeof(restype),                 \
                                             offsetof(restype, status)};

NFS_XDR_IO(getattr, GETATTR, struct nfs3_fh_args, struct nfs3_getattr_res)
NFS_XDR_IO(setattr, SETATTR, struct nfs3_setattr_args, struct nfs3_wcc_res)
NFS_XDR_IO(lookup, LOOKUP, struct nfs3_diropargs, struct nfs3_lookup_res)
NFS_XDR_IO(access, ACCESS, struct nfs3_access_args, struct nfs3_access_res)
NFS_XDR_IO(readlink, READLINK, struct nfs3_fh_args, struct nfs3_readlink_res)
NFS_XDR_IO(read, READ, struct nfs3_read_args, struct nfs3_read_res)
NFS_XDR_IO(create, CREATE, struct nfs3_create_args, struct nfs3_diropres)
NFS_XDR_IO(mkdir, MKDIR, struct nfs3_mkdir_args, struct nfs3_diropres)
NFS_XDR_IO(symlink, SYMLINK, struct nfs3_symlink_args, struct nfs3_diropres)
NFS_XDR_IO(mknod, MKNOD, struct nfs3_mknod_args, struct nfs3_diropres)
NFS_XDR_IO(remove, REMOVE, struct nfs3_diropargs, struct nfs3_wcc_res)
NFS_XDR_IO(rmdir, RMDIR, struct nfs3_diropargs, struct nfs3_wcc_res)
NFS_XDR_IO(rename, RENAME, struct nfs3_rename_args, struct nfs3_rename_res)
NFS_XDR_IO(link, LINK, struct nfs3_link_args, struct nfs3_link_res)
NFS_XDR_IO(fsstat, FSSTAT, struct nfs3_fh_args, struct nfs3_fsstat_res)
NFS_XDR_IO(fsinfo, FSINFO, struct nfs3_fh_args, struct nfs3_fsinfo_res)
NFS_XDR_IO(commit, COMMIT, struct nfs3_commit_args, struct nfs3_commit_res)

/* One blocking NFS call: encodes args, calls, decodes into res (zeroed
 * first) and maps the outcome: 0, an NFS3ERR_* status, or a negative errno.
 * The reply's storage is released; results that keep data (READ) hold it by
 * reference. */
static int nfs_sync(struct nfs3_clnt *nc, const struct nfs_xdr_io *io, const void *args, void *res)
{
    struct mb_chain c = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    struct krpc_reply rep;
    uint32_t stat;
    int rc;

    krpc_xdr_enc_init(&x, &c);
    io->enc(&x, args);
    if ((rc = enc_done(&x, &c)) < 0)
        return rc;
    if ((rc = call_sync(nc, nc->rpc, io->proc, nfs3_proc_name(io->proc), &c, &rep)) < 0)
        return rc;
    memset(res, 0, io->res_size);
    rc = io->dec(&rep.res, res);
    memcpy(&stat, (const char *)res + io->status_off, sizeof stat);
    rc = nfs_outcome(nc, io->proc, rc, stat);
    krpc_reply_free(&rep);
    return rc;
}

int nfs3_getattr(struct nfs3_clnt *nc, const struct nfs3_fh *fh, struct nfs3_fattr *attr)
{
    struct nfs3_fh_args a = {.fh = *fh};
    struct nfs3_getattr_res r;
    int rc = nfs_sync(nc, &io_getattr, &a, &r);

    if (rc == 0 && attr)
        *attr = r.attr;
    return rc;
}

int nfs3_fsinfo(struct nfs3_clnt *nc, const struct nfs3_fh *fh, struct nfs3_fsinfo_res *res)
{
    struct nfs3_fh_args a = {.fh = *fh};

    return nfs_sync(nc, &io_fsinfo, &a, res);
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
    int rc;

    memset(&a, 0, sizeof a);
    if ((rc = set_name(nc, &a, dir, name)) != 0)
        return rc;
    rc = nfs_sync(nc, &io_lookup, &a, &r);
    if (rc > 0)
        set_err(nc, "LOOKUP %s: %s", name, nfs3_stat_name((uint32_t)rc));
    if (rc != 0)
        return rc;
    *fh = r.fh;
    if (!attr)
        return 0;
    if (r.obj_attr.present) {
        *attr = r.obj_attr.attr;
        return 0;
    }
    return nfs3_getattr(nc, fh, attr);
}


int nfs3_create(struct nfs3_clnt *nc, const struct nfs3_fh *dir, const char *name, uint32_t mode, int truncate,
                struct nfs3_fh *fh)
{
    struct nfs3_sattr sa;

    memset(&sa, 0, sizeof sa);
    sa.set_mode = 1;
    sa.mode = mode;
    if (truncate) {
        sa.set_size = 1;
        sa.size = 0;
    }
    return nfs3_create_how(nc, dir, name, NFS3_CREATE_UNCHECKED, &sa, NULL, fh, NULL);
}

int nfs3_mkdir(struct nfs3_clnt *nc, const struct nfs3_fh *dir, const char *name, uint32_t mode,
               struct nfs3_fh *fh)
{
    struct nfs3_sattr sa;

    memset(&sa, 0, sizeof sa);
    sa.set_mode = 1;
    sa.mode = mode;
    return nfs3_mkdir_attr(nc, dir, name, &sa, fh, NULL);
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
    struct nfs3_commit_args a = {.fh = *fh, .offset = offset, .count = count};
    struct nfs3_commit_res r;
    int rc = nfs_sync(nc, &io_commit, &a, &r);

    if (rc == 0 && verf)
        memcpy(verf, r.verf, NFS3_WRITEVERFSIZE);
    return rc;
}

/* ---- the procedures a file system needs ------------------------------------ */

/* Makes the call whose arguments x encoded into c; 0 leaves accepted results
 * in rep for the caller to decode (and free). */
static int nfs_call(struct nfs3_clnt *nc, uint32_t proc, struct krpc_xdr_enc *x, struct mb_chain *c,
                    struct krpc_reply *rep)
{
    int rc = enc_done(x, c);

    if (rc < 0)
        return rc;
    return call_sync(nc, nc->rpc, proc, nfs3_proc_name(proc), c, rep);
}

/* After CREATE, MKDIR, SYMLINK, MKNOD: the new object's handle and
 * attributes, asked for separately when the reply leaves them out (both are
 * optional in RFC 1813). */
/* After CREATE, MKDIR, SYMLINK, MKNOD (rc from nfs_sync, r its results): the
 * new object's handle and attributes, asked for separately when the reply
 * leaves them out (both are optional in RFC 1813). */
static int obj_result(struct nfs3_clnt *nc, uint32_t proc, const char *name, int rc, const struct nfs3_diropres *r,
                      const struct nfs3_fh *dir, struct nfs3_fh *fh, struct nfs3_fattr *attr)
{
    if (rc > 0)
        set_err(nc, "%s %s: %s", nfs3_proc_name(proc), name, nfs3_stat_name((uint32_t)rc));
    if (rc != 0)
        return rc;
    if (!r->fh_present)
        return nfs3_lookup(nc, dir, name, fh, attr);
    *fh = r->fh;
    if (!attr)
        return 0;
    if (r->obj_attr.present) {
        *attr = r->obj_attr.attr;
        return 0;
    }
    return nfs3_getattr(nc, fh, attr);
}

int nfs3_setattr(struct nfs3_clnt *nc, const struct nfs3_fh *fh, const struct nfs3_sattr *sa,
                 const struct nfs3_time *guard_ctime, struct nfs3_fattr *attr)
{
    struct nfs3_setattr_args a;
    struct nfs3_wcc_res r;
    int rc;

    memset(&a, 0, sizeof a);
    a.fh = *fh;
    a.attr = *sa;
    if (guard_ctime) {
        a.guard_check = 1;
        a.guard_ctime = *guard_ctime;
    }
    rc = nfs_sync(nc, &io_setattr, &a, &r);
    if (rc != 0 || !attr)
        return rc;
    if (r.wcc.after.present) {
        *attr = r.wcc.after.attr;
        return 0;
    }
    return nfs3_getattr(nc, fh, attr);
}

int nfs3_access(struct nfs3_clnt *nc, const struct nfs3_fh *fh, uint32_t want, uint32_t *granted)
{
    struct nfs3_access_args a = {.fh = *fh, .access = want};
    struct nfs3_access_res r;
    int rc = nfs_sync(nc, &io_access, &a, &r);

    if (rc == 0)
        *granted = r.access & want; /* a server may answer bits nobody asked about */
    return rc;
}

int nfs3_readlink(struct nfs3_clnt *nc, const struct nfs3_fh *fh, char *buf, size_t len)
{
    struct nfs3_fh_args a = {.fh = *fh};
    struct nfs3_readlink_res *r = malloc(sizeof *r); /* over 1 KiB: not on a FUSE thread's stack */
    int rc;

    if (!r)
        return -ENOMEM;
    rc = nfs_sync(nc, &io_readlink, &a, r);
    if (rc == 0) {
        if (strlen(r->data) >= len)
            rc = -ENAMETOOLONG;
        else
            memcpy(buf, r->data, strlen(r->data) + 1);
    }
    free(r);
    return rc;
}

int nfs3_read(struct nfs3_clnt *nc, const struct nfs3_fh *fh, uint64_t offset, uint32_t count,
              struct mb_chain *data, int *eof)
{
    struct nfs3_read_args a = {.fh = *fh, .offset = offset, .count = count};
    struct nfs3_read_res r;
    int rc = nfs_sync(nc, &io_read, &a, &r);

    if (rc == 0 && r.data.len > count) {
        set_err(nc, "READ: the server returned %zu bytes where %u were asked for", r.data.len, count);
        krpc_log(KRPC_LOG_WARN, "nfs client: %s", nc->err);
        rc = -EBADMSG;
    }
    if (rc == 0) {
        mb_chain_concat(data, &r.data); /* by reference: the reply's storage */
        if (eof)
            *eof = r.eof;
    }
    nfs3_read_res_free(&r);
    return rc;
}

int nfs3_create_how(struct nfs3_clnt *nc, const struct nfs3_fh *dir, const char *name, uint32_t how,
                    const struct nfs3_sattr *sa, const uint8_t verf[NFS3_CREATEVERFSIZE], struct nfs3_fh *fh,
                    struct nfs3_fattr *attr)
{
    struct nfs3_create_args a;
    struct nfs3_diropres r;
    int rc;

    memset(&a, 0, sizeof a);
    if ((rc = set_name(nc, &a.where, dir, name)) != 0)
        return rc;
    a.mode = how;
    if (how == NFS3_CREATE_EXCLUSIVE)
        memcpy(a.verf, verf, NFS3_CREATEVERFSIZE);
    else if (sa)
        a.attr = *sa;
    rc = nfs_sync(nc, &io_create, &a, &r);
    rc = obj_result(nc, NFS3_PROC_CREATE, name, rc, &r, dir, fh, attr);
    /* EXCLUSIVE stores the verifier in the attributes (RFC 1813 3.3.8): the
     * mode and the times come with a SETATTR afterwards. */
    if (rc == 0 && how == NFS3_CREATE_EXCLUSIVE && sa)
        rc = nfs3_setattr(nc, fh, sa, NULL, attr);
    return rc;
}

int nfs3_mkdir_attr(struct nfs3_clnt *nc, const struct nfs3_fh *dir, const char *name,
                    const struct nfs3_sattr *sa, struct nfs3_fh *fh, struct nfs3_fattr *attr)
{
    struct nfs3_mkdir_args a;
    struct nfs3_diropres r;
    int rc;

    memset(&a, 0, sizeof a);
    if ((rc = set_name(nc, &a.where, dir, name)) != 0)
        return rc;
    a.attr = *sa;
    rc = nfs_sync(nc, &io_mkdir, &a, &r);
    return obj_result(nc, NFS3_PROC_MKDIR, name, rc, &r, dir, fh, attr);
}

int nfs3_symlink(struct nfs3_clnt *nc, const struct nfs3_fh *dir, const char *name, const char *target,
                 const struct nfs3_sattr *sa, struct nfs3_fh *fh, struct nfs3_fattr *attr)
{
    struct nfs3_symlink_args *a;
    struct nfs3_diropres r;
    int rc;

    if (strlen(target) > NFS3_MAXPATHLEN) {
        set_err(nc, "SYMLINK %s: target too long", name);
        return NFS3ERR_NAMETOOLONG;
    }
    a = calloc(1, sizeof *a); /* over 1 KiB: not on a FUSE thread's stack */
    if (!a)
        return -ENOMEM;
    rc = set_name(nc, &a->where, dir, name);
    if (rc == 0) {
        if (sa)
            a->attr = *sa;
        memcpy(a->data, target, strlen(target) + 1);
        rc = nfs_sync(nc, &io_symlink, a, &r);
        rc = obj_result(nc, NFS3_PROC_SYMLINK, name, rc, &r, dir, fh, attr);
    }
    free(a);
    return rc;
}

int nfs3_mknod(struct nfs3_clnt *nc, const struct nfs3_fh *dir, const char *name, uint32_t type,
               const struct nfs3_sattr *sa, uint32_t spec1, uint32_t spec2, struct nfs3_fh *fh,
               struct nfs3_fattr *attr)
{
    struct nfs3_mknod_args a;
    struct nfs3_diropres r;
    int rc;

    memset(&a, 0, sizeof a);
    if ((rc = set_name(nc, &a.where, dir, name)) != 0)
        return rc;
    a.type = type;
    if (sa)
        a.attr = *sa;
    a.spec1 = spec1;
    a.spec2 = spec2;
    rc = nfs_sync(nc, &io_mknod, &a, &r);
    return obj_result(nc, NFS3_PROC_MKNOD, name, rc, &r, dir, fh, attr);
}

/* REMOVE and RMDIR: same arguments, same results. */
static int remove_common(struct nfs3_clnt *nc, const struct nfs_xdr_io *io, const struct nfs3_fh *dir,
                         const char *name)
{
    struct nfs3_diropargs a;
    struct nfs3_wcc_res r;
    int rc;

    memset(&a, 0, sizeof a);
    if ((rc = set_name(nc, &a, dir, name)) != 0)
        return rc;
    rc = nfs_sync(nc, io, &a, &r);
    if (rc > 0)
        set_err(nc, "%s %s: %s", nfs3_proc_name(io->proc), name, nfs3_stat_name((uint32_t)rc));
    return rc;
}

int nfs3_remove(struct nfs3_clnt *nc, const struct nfs3_fh *dir, const char *name)
{
    return remove_common(nc, &io_remove, dir, name);
}

int nfs3_rmdir(struct nfs3_clnt *nc, const struct nfs3_fh *dir, const char *name)
{
    return remove_common(nc, &io_rmdir, dir, name);
}

int nfs3_rename(struct nfs3_clnt *nc, const struct nfs3_fh *fromdir, const char *fromname,
                const struct nfs3_fh *todir, const char *toname)
{
    struct nfs3_rename_args a;
    struct nfs3_rename_res r;
    int rc;

    memset(&a, 0, sizeof a);
    if ((rc = set_name(nc, &a.from, fromdir, fromname)) != 0 || (rc = set_name(nc, &a.to, todir, toname)) != 0)
        return rc;
    return nfs_sync(nc, &io_rename, &a, &r);
}

int nfs3_link(struct nfs3_clnt *nc, const struct nfs3_fh *fh, const struct nfs3_fh *dir, const char *name,
              struct nfs3_fattr *attr)
{
    struct nfs3_link_args a;
    struct nfs3_link_res r;
    int rc;

    memset(&a, 0, sizeof a);
    a.fh = *fh;
    if ((rc = set_name(nc, &a.link, dir, name)) != 0)
        return rc;
    rc = nfs_sync(nc, &io_link, &a, &r);
    if (rc != 0 || !attr)
        return rc;
    if (r.file_attr.present) {
        *attr = r.file_attr.attr;
        return 0;
    }
    return nfs3_getattr(nc, fh, attr);
}

int nfs3_fsstat(struct nfs3_clnt *nc, const struct nfs3_fh *fh, struct nfs3_fsstat_res *res)
{
    struct nfs3_fh_args a = {.fh = *fh};

    return nfs_sync(nc, &io_fsstat, &a, res);
}

/* ---- READDIRPLUS with paging ------------------------------------------------- */

/* The cookies seen so far in one listing, to catch a server that sends a
 * cookie twice (it would make the listing go round forever). Open
 * addressing; 0 marks a free slot (cookie 0 itself is refused: it means
 * "from the start"). */
struct cookie_set {
    uint64_t *slot;
    size_t cap, used;
};

static int cookie_add(struct cookie_set *s, uint64_t v)
{
    size_t i;

    if (2 * (s->used + 1) > s->cap) {
        struct cookie_set n = {NULL, s->cap ? 2 * s->cap : 1024, 0};
        n.slot = calloc(n.cap, sizeof *n.slot);
        if (!n.slot)
            return -ENOMEM;
        for (i = 0; i < s->cap; i++)
            if (s->slot[i])
                cookie_add(&n, s->slot[i]);
        free(s->slot);
        *s = n;
    }
    for (i = (size_t)((v * 0x9E3779B97F4A7C15ull) >> 20) % s->cap;; i = (i + 1) % s->cap) {
        if (s->slot[i] == v)
            return 1; /* seen */
        if (s->slot[i] == 0) {
            s->slot[i] = v;
            s->used++;
            return 0;
        }
    }
}

struct rdp_state {
    struct nfs3_clnt *nc;
    struct cookie_set seen;
    uint64_t last_cookie;
    nfs3_dirent_fn fn;
    void *arg;
    int user_rc;
};

#define RDP_STOP 1 /* the decoder's callback stopped: see user_rc */

static int rdp_entry(void *arg, const struct nfs3_dirent *e)
{
    struct rdp_state *st = arg;
    int rc;

    if (e->cookie == 0) {
        set_err(st->nc, "READDIRPLUS: entry \"%s\" with cookie 0", e->name);
        st->user_rc = -EIO;
        return RDP_STOP;
    }
    /* A name is one path component: never empty, never with a '/' (the
     * kernel's getdents refuses such a name with EIO, fs/readdir.c
     * verify_dirent_name()). */
    if (e->name[0] == '\0' || strchr(e->name, '/')) {
        set_err(st->nc, "READDIRPLUS: the server sent the name \"%s\" (%s); listing refused", e->name,
                e->name[0] ? "a '/' in a file name" : "an empty file name");
        st->user_rc = -EIO;
        return RDP_STOP;
    }
    rc = cookie_add(&st->seen, e->cookie);
    if (rc != 0) {
        if (rc > 0)
            set_err(st->nc, "READDIRPLUS: cookie %llu sent twice (a directory cookie loop); listing stopped",
                    (unsigned long long)e->cookie);
        st->user_rc = rc > 0 ? -ELOOP : rc;
        return RDP_STOP;
    }
    st->last_cookie = e->cookie;
    rc = st->fn(st->arg, e);
    if (rc != 0) {
        st->user_rc = rc;
        return RDP_STOP;
    }
    return 0;
}

int nfs3_readdirplus(struct nfs3_clnt *nc, const struct nfs3_fh *dir, uint32_t dircount, uint32_t maxcount,
                     nfs3_dirent_fn fn, void *arg)
{
    struct rdp_state st;
    struct nfs3_readdirplus_args a;
    struct nfs3_readdir_res r;
    int ret = 0;

    memset(&st, 0, sizeof st);
    st.nc = nc;
    st.fn = fn;
    st.arg = arg;
    memset(&a, 0, sizeof a);
    a.dir = *dir;
    a.dircount = dircount ? dircount : 8192;
    a.maxcount = maxcount ? maxcount : 65536;
    for (;;) {
        struct mb_chain c = MB_CHAIN_INIT;
        struct krpc_xdr_enc x;
        struct krpc_reply rep;
        int rc;

        krpc_xdr_enc_init(&x, &c);
        nfs3_enc_readdirplus_args(&x, &a);
        if ((ret = nfs_call(nc, NFS3_PROC_READDIRPLUS, &x, &c, &rep)) < 0)
            break;
        rc = nfs3_dec_readdirplus_res(&rep.res, &r, rdp_entry, &st);
        krpc_reply_free(&rep);
        if (rc == -ENAMETOOLONG || rc == -EILSEQ) {
            /* A name the decoder refused (dec_dir_res): the listing fails,
             * ENAMETOOLONG as the Linux client's decode_inline_filename3(),
             * EIO for a NUL byte inside a name. */
            set_err(nc, "READDIRPLUS: the server sent %s; listing refused",
                    rc == -ENAMETOOLONG ? "a file name longer than 255 bytes (NFS3_MAXNAMLEN)"
                                        : "a file name containing a NUL byte");
            krpc_log(KRPC_LOG_WARN, "nfs client: %s", nc->err);
            ret = rc == -ENAMETOOLONG ? -ENAMETOOLONG : -EIO;
            break;
        }
        if (rc == RDP_STOP) {
            ret = st.user_rc;
            if (ret == -ELOOP || ret == -EIO)
                krpc_log(KRPC_LOG_WARN, "nfs client: %s", nc->err);
            break;
        }
        if ((ret = nfs_outcome(nc, NFS3_PROC_READDIRPLUS, rc, r.status)) != 0)
            break;
        if (r.eof)
            break;
        if (r.nentries == 0) {
            /* Not at the end, yet nothing to go on from: would ask the
             * same question forever. */
            set_err(nc, "READDIRPLUS: an empty page without eof");
            krpc_log(KRPC_LOG_WARN, "nfs client: %s", nc->err);
            ret = -EIO;
            break;
        }
        a.cookie = st.last_cookie;
        memcpy(a.cookieverf, r.cookieverf, NFS3_COOKIEVERFSIZE);
    }
    free(st.seen.slot);
    return ret;
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
