/*
 * tests/util/rpc_peer.c - hand-written RPC peers (see rpc_peer.h).
 */
#define _GNU_SOURCE
#include "util/rpc_peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/net.h"
#include "util/stream.h"

/* ---- transports ----------------------------------------------------------- */

static int plain_read(struct tu_xprt *x, void *buf, size_t len)
{
    ssize_t n;

    do {
        n = read(x->fd, buf, len);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        snprintf(x->err, sizeof x->err, "read: %s", strerror(errno));
        return -1;
    }
    return (int)n;
}

static int plain_write(struct tu_xprt *x, const void *buf, size_t len)
{
    ssize_t n;

    do {
        n = send(x->fd, buf, len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        snprintf(x->err, sizeof x->err, "write: %s", n < 0 ? strerror(errno) : "no progress");
        return -1;
    }
    return (int)n;
}

void tu_xprt_plain(struct tu_xprt *x, int fd)
{
    memset(x, 0, sizeof *x);
    x->fd = fd;
    x->read = plain_read;
    x->write = plain_write;
}

void tu_xprt_close(struct tu_xprt *x)
{
    if (x->tls != NULL && x->end_tls != NULL)
        x->end_tls(x);
    x->tls = NULL;
    if (x->fd >= 0)
        close(x->fd);
    x->fd = -1;
}

int tu_connect_loopback(uint16_t port, int timeout_ms)
{
    struct sockaddr_in sin;
    int fd, one = 1;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    tu_set_timeouts(fd, timeout_ms);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
        fprintf(stderr, "connect 127.0.0.1:%u: %s\n", (unsigned)port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int write_all(struct tu_xprt *x, const uint8_t *p, size_t len)
{
    while (len > 0) {
        int n = x->write(x, p, len);
        if (n <= 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* 0, 1 at EOF before the first byte, -EIO otherwise. */
static int read_all(struct tu_xprt *x, uint8_t *p, size_t len)
{
    size_t got = 0;

    while (got < len) {
        int n = x->read(x, p + got, len - got);
        if (n < 0)
            return -EIO;
        if (n == 0) {
            if (got == 0)
                return 1;
            snprintf(x->err, sizeof x->err, "end of stream after %zu of %zu bytes", got, len);
            return -EIO;
        }
        got += (size_t)n;
    }
    return 0;
}

/* ---- messages ------------------------------------------------------------- */

int tu_rpc_send(struct tu_xprt *x, struct mb_chain *msg, size_t max_frag)
{
    struct mb_chain framed = MB_CHAIN_INIT;
    uint8_t *flat = NULL;
    int ret;

    ret = krpc_rm_frame(msg, max_frag, &framed);
    if (ret < 0)
        goto out;
    /* One contiguous buffer: the TLS stacks then cut records as they like. */
    flat = malloc(framed.len ? framed.len : 1);
    if (flat == NULL) {
        ret = -ENOMEM;
        goto out;
    }
    mb_chain_copy_out(&framed, 0, framed.len, flat);
    ret = write_all(x, flat, framed.len);
out:
    free(flat);
    mb_chain_free(&framed);
    mb_chain_free(msg);
    return ret;
}

int tu_rpc_recv(struct tu_xprt *x, struct mb_chain *msg, size_t max)
{
    uint8_t mark[4], *buf = NULL;
    uint32_t word, flen;
    int ret, first = 1, last = 0;

    while (!last) {
        ret = read_all(x, mark, 4);
        if (ret == 1 && first) {
            ret = -ECONNRESET;
            goto out;
        }
        if (ret != 0) {
            ret = -EIO;
            goto out;
        }
        first = 0;
        memcpy(&word, mark, 4);
        word = ntohl(word);
        last = (word & KRPC_RM_LAST) != 0;
        flen = word & ~KRPC_RM_LAST;
        if (msg->len + flen > max) {
            snprintf(x->err, sizeof x->err, "message over %zu bytes", max);
            ret = -EMSGSIZE;
            goto out;
        }
        if (flen == 0)
            continue;
        buf = malloc(flen);
        if (buf == NULL) {
            ret = -ENOMEM;
            goto out;
        }
        if (read_all(x, buf, flen) != 0) {
            ret = -EIO;
            goto out;
        }
        ret = mb_chain_append_bytes(msg, buf, flen);
        if (ret < 0)
            goto out;
        free(buf);
        buf = NULL;
    }
    ret = 0;
out:
    free(buf);
    if (ret < 0)
        mb_chain_free(msg);
    return ret;
}

int tu_rpc_call(struct tu_xprt *x, uint32_t xid, uint32_t prog, uint32_t vers, uint32_t proc,
                const struct krpc_cred *cred, struct mb_chain *args, struct krpc_reply *reply)
{
    struct krpc_call_hdr h;
    struct krpc_xdr_enc e;
    struct mb_chain call = MB_CHAIN_INIT;
    struct krpc_xdr_dec *d = &reply->res;
    int ret;

    memset(reply, 0, sizeof *reply);
    memset(&h, 0, sizeof h);
    h.xid = xid;
    h.rpcvers = KRPC_RPCVERS;
    h.prog = prog;
    h.vers = vers;
    h.proc = proc;
    if (cred != NULL)
        h.cred = *cred;
    h.verf_flavor = KRPC_AUTH_NONE;
    krpc_xdr_enc_init(&e, &call);
    krpc_encode_call_hdr(&e, &h);
    ret = krpc_xdr_enc_error(&e);
    if (ret < 0)
        goto out;
    if (args != NULL)
        mb_chain_concat(&call, args);
    ret = tu_rpc_send(x, &call, 0);
    if (ret < 0)
        goto out;
    ret = tu_rpc_recv(x, &reply->msg, KRPC_RM_DEFAULT_MAX_MSG + 4096);
    if (ret < 0)
        goto out;
    /* The decoder points at reply->msg, where the message stays. */
    krpc_xdr_dec_init(d, &reply->msg, 0, reply->msg.len);
    ret = krpc_decode_reply_hdr(d, &reply->hdr);
    if (ret == 0 && reply->hdr.xid != xid) {
        snprintf(x->err, sizeof x->err, "reply xid %08x, call xid %08x", reply->hdr.xid, xid);
        ret = -EBADMSG;
    }
out:
    if (args != NULL)
        mb_chain_free(args);
    mb_chain_free(&call);
    if (ret < 0)
        krpc_reply_free(reply);
    return ret;
}

int tu_rpc_probe(struct tu_xprt *x, uint32_t xid, uint32_t prog, uint32_t vers, struct krpc_reply_hdr *h)
{
    struct krpc_xdr_enc e;
    struct krpc_xdr_dec d;
    struct mb_chain call = MB_CHAIN_INIT, reply = MB_CHAIN_INIT;
    int ret;

    /* Written word by word, as the kernel's rpc_encode_header() and
     * tls_marshal() put them, not through our own header encoder. */
    krpc_xdr_enc_init(&e, &call);
    krpc_xdr_put_u32(&e, xid);
    krpc_xdr_put_u32(&e, KRPC_MSG_CALL);
    krpc_xdr_put_u32(&e, KRPC_RPCVERS);
    krpc_xdr_put_u32(&e, prog);
    krpc_xdr_put_u32(&e, vers);
    krpc_xdr_put_u32(&e, 0);             /* procedure 0 (NULL) */
    krpc_xdr_put_u32(&e, KRPC_AUTH_TLS); /* credential: AUTH_TLS ... */
    krpc_xdr_put_u32(&e, 0);             /* ... with an empty body */
    krpc_xdr_put_u32(&e, KRPC_AUTH_NONE); /* verifier: AUTH_NONE ... */
    krpc_xdr_put_u32(&e, 0);              /* ... empty */
    ret = krpc_xdr_enc_error(&e);
    if (ret < 0)
        goto out;
    ret = tu_rpc_send(x, &call, 0);
    if (ret < 0)
        goto out;
    ret = tu_rpc_recv(x, &reply, 4096);
    if (ret < 0)
        goto out;
    krpc_xdr_dec_init(&d, &reply, 0, reply.len);
    ret = krpc_decode_reply_hdr(&d, h);
    if (ret == 0 && h->xid != xid)
        ret = -EBADMSG;
out:
    mb_chain_free(&call);
    mb_chain_free(&reply);
    return ret;
}

int tu_is_starttls(const struct krpc_reply_hdr *h)
{
    return h->reply_stat == KRPC_MSG_ACCEPTED && h->verf_flavor == KRPC_AUTH_NONE && h->verf_len == 8 &&
           memcmp(h->verf, KRPC_STARTTLS_VERF, 8) == 0;
}

void tu_cred_sys(struct krpc_cred *c, const char *machine)
{
    memset(c, 0, sizeof *c);
    c->flavor = KRPC_AUTH_SYS;
    c->stamp = 0x5eed;
    snprintf(c->machine, sizeof c->machine, "%s", machine);
    c->uid = (uint32_t)getuid();
    c->gid = (uint32_t)getgid();
}

/* ---- client sequences ------------------------------------------------------ */

/* 0 for an accepted SUCCESS reply; else -1 with err saying why. */
static int reply_ok(const struct krpc_reply *r, const char *what, char *err, size_t errlen)
{
    char why[128];

    if (krpc_reply_status(&r->hdr, why, sizeof why) == 0)
        return 0;
    snprintf(err, errlen, "%s: %s", what, why);
    return -1;
}

int tu_mount_plain(uint16_t port, const char *path, const struct krpc_cred *ping_cred, const struct krpc_cred *cred,
                   struct nfs3_fh *root, char *err, size_t errlen)
{
    struct tu_xprt x;
    struct krpc_reply r;
    struct krpc_xdr_enc e;
    struct mb_chain args = MB_CHAIN_INIT;
    struct nfs3_mnt_args ma;
    struct nfs3_mnt_res mr;
    int fd, ret;

    err[0] = '\0';
    fd = tu_connect_loopback(port, 20000);
    if (fd < 0) {
        snprintf(err, errlen, "connect to port %u failed", (unsigned)port);
        return -ECONNREFUSED;
    }
    tu_xprt_plain(&x, fd);
    ret = tu_rpc_call(&x, 0x4d000001, NFS3_MNT_PROGRAM, NFS3_MNT_VERSION, NFS3_MNT_PROC_NULL, ping_cred, NULL, &r);
    if (ret < 0) {
        snprintf(err, errlen, "MOUNT NULL: %s (%s)", strerror(-ret), x.err);
        goto out;
    }
    if (reply_ok(&r, "MOUNT NULL", err, errlen) < 0) {
        ret = -EACCES;
        krpc_reply_free(&r);
        goto out;
    }
    krpc_reply_free(&r);

    memset(&ma, 0, sizeof ma);
    snprintf(ma.dirpath, sizeof ma.dirpath, "%s", path);
    krpc_xdr_enc_init(&e, &args);
    nfs3_mnt_enc_mnt_args(&e, &ma);
    ret = tu_rpc_call(&x, 0x4d000002, NFS3_MNT_PROGRAM, NFS3_MNT_VERSION, NFS3_MNT_PROC_MNT, cred, &args, &r);
    if (ret < 0) {
        snprintf(err, errlen, "MNT: %s (%s)", strerror(-ret), x.err);
        goto out;
    }
    if (reply_ok(&r, "MNT", err, errlen) < 0) {
        ret = -EACCES;
    } else if (nfs3_mnt_dec_mnt_res(&r.res, &mr) < 0) {
        snprintf(err, errlen, "MNT: undecodable result");
        ret = -EBADMSG;
    } else {
        ret = (int)mr.status;
        if (mr.status == MNT3_OK)
            *root = mr.fh;
        else
            snprintf(err, errlen, "MNT %s: %s", path, nfs3_mnt_stat_name(mr.status));
    }
    krpc_reply_free(&r);
out:
    tu_xprt_close(&x);
    return ret;
}

/* One NFS call whose reply must be an accepted SUCCESS. */
static int nfs_call(struct tu_xprt *x, uint32_t *xid, uint32_t proc, const struct krpc_cred *cred,
                    struct mb_chain *args, struct krpc_reply *r, struct tu_nfs_result *res, const char *what)
{
    int ret = tu_rpc_call(x, (*xid)++, NFS3_PROGRAM, NFS3_VERSION, proc, cred, args, r);

    if (ret < 0) {
        snprintf(res->err, sizeof res->err, "%s: %s (%s)", what, strerror(-ret), x->err);
        return -1;
    }
    if (reply_ok(r, what, res->err, sizeof res->err) < 0) {
        krpc_reply_free(r);
        return -1;
    }
    return 0;
}

static int nfs_status(uint32_t status, struct tu_nfs_result *res, const char *what)
{
    if (status == NFS3_OK)
        return 0;
    snprintf(res->err, sizeof res->err, "%s: %s", what, nfs3_stat_name(status));
    return -1;
}

static int job_write(struct tu_xprt *x, uint32_t *xid, const struct tu_nfs_job *job, const struct nfs3_fh *fh,
                     uint8_t *buf, struct tu_nfs_result *res, uint8_t verf[NFS3_WRITEVERFSIZE])
{
    struct krpc_reply r;
    struct krpc_xdr_enc e;
    struct mb_chain args = MB_CHAIN_INIT;
    struct nfs3_write_args wa;
    struct nfs3_write_res wr;
    char what[96];

    res->commit_verf_matches = 1;
    for (uint64_t off = 0; off < job->size; off += res->wsize) {
        size_t n = job->size - off < res->wsize ? (size_t)(job->size - off) : res->wsize;
        snprintf(what, sizeof what, "WRITE of %zu bytes at %llu", n, (unsigned long long)off);
        tu_stream_fill(job->seed, off, buf, n);
        memset(&wa, 0, sizeof wa);
        wa.fh = *fh;
        wa.offset = off;
        wa.count = (uint32_t)n;
        wa.stable = NFS3_UNSTABLE;
        if (mb_chain_append_bytes(&wa.data, buf, n) < 0) {
            snprintf(res->err, sizeof res->err, "%s: out of memory", what);
            return -1;
        }
        krpc_xdr_enc_init(&e, &args);
        nfs3_enc_write_args(&e, &wa); /* consumes wa.data */
        if (nfs_call(x, xid, NFS3_PROC_WRITE, &job->cred, &args, &r, res, what) < 0)
            return -1;
        int rc = nfs3_dec_write_res(&r.res, &wr);
        krpc_reply_free(&r);
        if (rc < 0) {
            snprintf(res->err, sizeof res->err, "%s: undecodable result", what);
            return -1;
        }
        if (nfs_status(wr.status, res, what) < 0)
            return -1;
        if (wr.count != n) {
            snprintf(res->err, sizeof res->err, "%s: short write of %u", what, wr.count);
            return -1;
        }
        if (res->writes == 0)
            memcpy(verf, wr.verf, NFS3_WRITEVERFSIZE);
        else if (memcmp(verf, wr.verf, NFS3_WRITEVERFSIZE) != 0)
            res->commit_verf_matches = 0;
        res->writes++;
        res->written += n;
    }
    return 0;
}

static int job_read(struct tu_xprt *x, uint32_t *xid, const struct tu_nfs_job *job, const struct nfs3_fh *fh,
                    uint8_t *want, uint8_t *got, struct tu_nfs_result *res)
{
    struct krpc_reply r;
    struct krpc_xdr_enc e;
    struct mb_chain args = MB_CHAIN_INIT;
    struct nfs3_read_args ra;
    struct nfs3_read_res rr;
    char what[96];

    /* Bounded: every round either advances or fails. */
    while (res->read < job->size) {
        uint64_t off = res->read;
        size_t n = job->size - off < res->rsize ? (size_t)(job->size - off) : res->rsize;
        snprintf(what, sizeof what, "READ of %zu bytes at %llu", n, (unsigned long long)off);
        memset(&ra, 0, sizeof ra);
        ra.fh = *fh;
        ra.offset = off;
        ra.count = (uint32_t)n;
        krpc_xdr_enc_init(&e, &args);
        nfs3_enc_read_args(&e, &ra);
        if (nfs_call(x, xid, NFS3_PROC_READ, &job->cred, &args, &r, res, what) < 0)
            return -1;
        int rc = nfs3_dec_read_res(&r.res, &rr);
        if (rc < 0) {
            krpc_reply_free(&r);
            snprintf(res->err, sizeof res->err, "%s: undecodable result", what);
            return -1;
        }
        if (nfs_status(rr.status, res, what) < 0 || rr.count == 0 || rr.count > n) {
            if (!res->err[0])
                snprintf(res->err, sizeof res->err, "%s: %u bytes came back", what, rr.count);
            nfs3_read_res_free(&rr);
            krpc_reply_free(&r);
            return -1;
        }
        mb_chain_copy_out(&rr.data, 0, rr.count, got);
        tu_stream_fill(job->seed, off, want, rr.count);
        if (res->first_mismatch == UINT64_MAX && memcmp(want, got, rr.count) != 0) {
            for (size_t i = 0; i < rr.count; i++) {
                if (want[i] != got[i]) {
                    res->first_mismatch = off + i;
                    break;
                }
            }
        }
        res->read += rr.count;
        res->reads++;
        nfs3_read_res_free(&rr);
        krpc_reply_free(&r);
    }
    return 0;
}

static int job_getattr(struct tu_xprt *x, uint32_t *xid, const struct krpc_cred *cred, const struct nfs3_fh *fh,
                       struct nfs3_fattr *attr, struct tu_nfs_result *res, const char *what)
{
    struct krpc_reply r;
    struct krpc_xdr_enc e;
    struct mb_chain args = MB_CHAIN_INIT;
    struct nfs3_fh_args a = {.fh = *fh};
    struct nfs3_getattr_res gr;
    int rc;

    krpc_xdr_enc_init(&e, &args);
    nfs3_enc_getattr_args(&e, &a);
    if (nfs_call(x, xid, NFS3_PROC_GETATTR, cred, &args, &r, res, what) < 0)
        return -1;
    rc = nfs3_dec_getattr_res(&r.res, &gr);
    krpc_reply_free(&r);
    if (rc < 0) {
        snprintf(res->err, sizeof res->err, "%s: undecodable result", what);
        return -1;
    }
    if (nfs_status(gr.status, res, what) < 0)
        return -1;
    *attr = gr.attr;
    return 0;
}

int tu_nfs_run(struct tu_xprt *x, uint32_t *xid, const struct tu_nfs_job *job, struct tu_nfs_result *res)
{
    struct krpc_reply r;
    struct krpc_xdr_enc e;
    struct mb_chain args = MB_CHAIN_INIT;
    struct nfs3_fh_args fa = {.fh = job->root};
    struct nfs3_fsinfo_res fi;
    struct nfs3_create_args ca;
    struct nfs3_diropres cr;
    struct nfs3_commit_args cma;
    struct nfs3_commit_res cmr;
    uint8_t verf[NFS3_WRITEVERFSIZE] = {0};
    uint8_t *want = NULL, *got = NULL;
    int ret = -1, rc;

    memset(res, 0, sizeof *res);
    res->first_mismatch = UINT64_MAX;

    if (nfs_call(x, xid, NFS3_PROC_NULL, &job->ping_cred, NULL, &r, res, "NULL") < 0)
        goto out;
    krpc_reply_free(&r);

    krpc_xdr_enc_init(&e, &args);
    nfs3_enc_fsinfo_args(&e, &fa);
    if (nfs_call(x, xid, NFS3_PROC_FSINFO, &job->cred, &args, &r, res, "FSINFO") < 0)
        goto out;
    rc = nfs3_dec_fsinfo_res(&r.res, &fi);
    krpc_reply_free(&r);
    if (rc < 0 || nfs_status(fi.status, res, "FSINFO") < 0) {
        if (!res->err[0])
            snprintf(res->err, sizeof res->err, "FSINFO: undecodable result");
        goto out;
    }
    res->wsize = fi.wtmax < job->max_io ? fi.wtmax : job->max_io;
    res->rsize = fi.rtmax < job->max_io ? fi.rtmax : job->max_io;
    if (res->wsize == 0 || res->rsize == 0) {
        snprintf(res->err, sizeof res->err, "FSINFO: wtmax %u, rtmax %u", fi.wtmax, fi.rtmax);
        goto out;
    }
    if (job_getattr(x, xid, &job->cred, &job->root, &res->root_attr, res, "GETATTR of the root") < 0)
        goto out;

    memset(&ca, 0, sizeof ca);
    ca.where.dir = job->root;
    snprintf(ca.where.name, sizeof ca.where.name, "%s", job->name);
    ca.mode = NFS3_CREATE_UNCHECKED;
    ca.attr.set_mode = 1;
    ca.attr.mode = 0644;
    ca.attr.set_size = 1;
    ca.attr.size = 0;
    krpc_xdr_enc_init(&e, &args);
    nfs3_enc_create_args(&e, &ca);
    if (nfs_call(x, xid, NFS3_PROC_CREATE, &job->cred, &args, &r, res, "CREATE") < 0)
        goto out;
    rc = nfs3_dec_create_res(&r.res, &cr);
    krpc_reply_free(&r);
    if (rc < 0 || nfs_status(cr.status, res, "CREATE") < 0 || !cr.fh_present) {
        if (!res->err[0])
            snprintf(res->err, sizeof res->err, "CREATE: %s", rc < 0 ? "undecodable result" : "no handle");
        goto out;
    }

    want = malloc(res->wsize > res->rsize ? res->wsize : res->rsize);
    got = malloc(res->rsize);
    if (want == NULL || got == NULL) {
        snprintf(res->err, sizeof res->err, "out of memory");
        goto out;
    }
    if (job_write(x, xid, job, &cr.fh, want, res, verf) < 0)
        goto out;

    memset(&cma, 0, sizeof cma);
    cma.fh = cr.fh;
    krpc_xdr_enc_init(&e, &args);
    nfs3_enc_commit_args(&e, &cma);
    if (nfs_call(x, xid, NFS3_PROC_COMMIT, &job->cred, &args, &r, res, "COMMIT") < 0)
        goto out;
    rc = nfs3_dec_commit_res(&r.res, &cmr);
    krpc_reply_free(&r);
    if (rc < 0 || nfs_status(cmr.status, res, "COMMIT") < 0) {
        if (!res->err[0])
            snprintf(res->err, sizeof res->err, "COMMIT: undecodable result");
        goto out;
    }
    if (memcmp(cmr.verf, verf, NFS3_WRITEVERFSIZE) != 0)
        res->commit_verf_matches = 0;

    if (job_read(x, xid, job, &cr.fh, want, got, res) < 0)
        goto out;
    if (job_getattr(x, xid, &job->cred, &cr.fh, &res->file_attr, res, "GETATTR of the file") < 0)
        goto out;
    ret = 0;
out:
    free(want);
    free(got);
    return ret;
}

/* ---- the in-memory NFS service ------------------------------------------- */

int tu_mini_nfs_init(struct tu_mini_nfs *m, uint64_t cap)
{
    memset(m, 0, sizeof *m);
    m->data = calloc(1, cap ? cap : 1);
    if (m->data == NULL)
        return -ENOMEM;
    m->cap = cap;
    pthread_mutex_init(&m->lock, NULL);
    m->fh.len = 12;
    memcpy(m->fh.data, "mini-nfs-fh1", 12);
    memcpy(m->verf, "verf0001", NFS3_WRITEVERFSIZE);
    return 0;
}

void tu_mini_nfs_free(struct tu_mini_nfs *m)
{
    free(m->data);
    m->data = NULL;
    pthread_mutex_destroy(&m->lock);
}

static void mini_attr(const struct tu_mini_nfs *m, struct nfs3_fattr *a)
{
    memset(a, 0, sizeof *a);
    a->type = NFS3_REG;
    a->mode = 0644;
    a->nlink = 1;
    a->size = m->size;
    a->used = m->size;
    a->fsid = 7;
    a->fileid = 42;
}

static int same_fh(const struct tu_mini_nfs *m, const struct nfs3_fh *fh)
{
    return fh->len == m->fh.len && memcmp(fh->data, m->fh.data, fh->len) == 0;
}

/* Encodes the NFS result of one procedure into x; a decode failure of the
 * arguments returns -EBADMSG (the caller answers GARBAGE_ARGS). Called with
 * m->lock held. */
static int mini_proc(struct tu_mini_nfs *m, uint32_t proc, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x)
{
    switch (proc) {
    case NFS3_PROC_NULL:
        return 0;
    case NFS3_PROC_GETATTR: {
        struct nfs3_fh_args a;
        struct nfs3_getattr_res r;
        if (nfs3_dec_getattr_args(d, &a) < 0)
            return -EBADMSG;
        memset(&r, 0, sizeof r);
        r.status = same_fh(m, &a.fh) ? NFS3_OK : NFS3ERR_STALE;
        mini_attr(m, &r.attr);
        nfs3_enc_getattr_res(x, &r);
        return 0;
    }
    case NFS3_PROC_FSINFO: {
        struct nfs3_fh_args a;
        struct nfs3_fsinfo_res r;
        if (nfs3_dec_fsinfo_args(d, &a) < 0)
            return -EBADMSG;
        memset(&r, 0, sizeof r);
        r.status = NFS3_OK;
        r.rtmax = r.rtpref = r.wtmax = r.wtpref = 1u << 20;
        r.rtmult = r.wtmult = 4096;
        r.dtpref = 65536;
        r.maxfilesize = m->cap;
        r.time_delta.nseconds = 1;
        r.properties = NFS3_FSF_HOMOGENEOUS | NFS3_FSF_CANSETTIME;
        nfs3_enc_fsinfo_res(x, &r);
        return 0;
    }
    case NFS3_PROC_WRITE: {
        struct nfs3_write_args a;
        struct nfs3_write_res r;
        if (nfs3_dec_write_args(d, &a) < 0)
            return -EBADMSG;
        memset(&r, 0, sizeof r);
        if (!same_fh(m, &a.fh)) {
            r.status = NFS3ERR_STALE;
        } else if (a.offset > m->cap || a.data.len > m->cap - a.offset) {
            r.status = NFS3ERR_FBIG;
        } else {
            mb_chain_copy_out(&a.data, 0, a.data.len, m->data + a.offset);
            if (a.offset + a.data.len > m->size)
                m->size = a.offset + a.data.len;
            r.status = NFS3_OK;
            r.count = (uint32_t)a.data.len;
            r.committed = a.stable;
            memcpy(r.verf, m->verf, sizeof r.verf);
        }
        nfs3_write_args_free(&a);
        nfs3_enc_write_res(x, &r);
        return 0;
    }
    case NFS3_PROC_READ: {
        struct nfs3_read_args a;
        struct nfs3_read_res r;
        uint64_t n = 0;
        if (nfs3_dec_read_args(d, &a) < 0)
            return -EBADMSG;
        memset(&r, 0, sizeof r);
        if (!same_fh(m, &a.fh)) {
            r.status = NFS3ERR_STALE;
        } else {
            if (a.offset < m->size)
                n = m->size - a.offset < a.count ? m->size - a.offset : a.count;
            if (n > 0 && mb_chain_append_bytes(&r.data, m->data + a.offset, (size_t)n) < 0)
                return -ENOMEM;
            r.status = NFS3_OK;
            r.count = (uint32_t)n;
            r.eof = a.offset + n >= m->size;
        }
        nfs3_enc_read_res(x, &r); /* consumes r.data */
        nfs3_read_res_free(&r);
        return 0;
    }
    case NFS3_PROC_COMMIT: {
        struct nfs3_commit_args a;
        struct nfs3_commit_res r;
        if (nfs3_dec_commit_args(d, &a) < 0)
            return -EBADMSG;
        memset(&r, 0, sizeof r);
        r.status = same_fh(m, &a.fh) ? NFS3_OK : NFS3ERR_STALE;
        memcpy(r.verf, m->verf, sizeof r.verf);
        nfs3_enc_commit_res(x, &r);
        return 0;
    }
    default:
        return -EOPNOTSUPP;
    }
}

int tu_mini_nfs_dispatch(struct tu_mini_nfs *m, const struct krpc_call_hdr *hdr, struct krpc_xdr_dec *d,
                         struct mb_chain *reply)
{
    struct krpc_reply_hdr rh;
    struct krpc_xdr_enc x;
    struct mb_chain res = MB_CHAIN_INIT;
    int ret = 0;

    memset(&rh, 0, sizeof rh);
    rh.xid = hdr->xid;
    rh.reply_stat = KRPC_MSG_ACCEPTED;
    rh.verf_flavor = KRPC_AUTH_NONE;
    rh.accept_stat = KRPC_SUCCESS;
    pthread_mutex_lock(&m->lock);
    if (hdr->prog != NFS3_PROGRAM) {
        rh.accept_stat = KRPC_PROG_UNAVAIL;
        m->other_prog_calls++;
    } else if (hdr->vers != NFS3_VERSION) {
        rh.accept_stat = KRPC_PROG_MISMATCH;
        rh.mismatch_low = rh.mismatch_high = NFS3_VERSION;
        m->other_prog_calls++;
    } else {
        krpc_xdr_enc_init(&x, &res);
        ret = mini_proc(m, hdr->proc, d, &x);
        if (ret == 0)
            ret = krpc_xdr_enc_error(&x);
        if (ret == -EOPNOTSUPP)
            rh.accept_stat = KRPC_PROC_UNAVAIL;
        else if (ret == -EBADMSG)
            rh.accept_stat = KRPC_GARBAGE_ARGS;
        else if (ret == 0)
            m->calls[hdr->proc]++;
        if (ret == -EOPNOTSUPP || ret == -EBADMSG) {
            mb_chain_free(&res);
            ret = 0;
        }
    }
    pthread_mutex_unlock(&m->lock);
    if (ret < 0)
        goto out;
    krpc_xdr_enc_init(&x, reply);
    krpc_encode_reply_hdr(&x, &rh);
    ret = krpc_xdr_enc_error(&x);
    if (ret == 0)
        mb_chain_concat(reply, &res);
out:
    mb_chain_free(&res);
    return ret;
}

/* ---- the threaded server -------------------------------------------------- */

#define SRV_MAX_CONNS 16

struct srv_conn {
    struct tu_srv *srv;
    int fd;
    pthread_t thread;
};

struct tu_srv {
    struct tu_srv_cfg cfg;
    int lfd;
    uint16_t port;
    pthread_t acceptor;
    atomic_int stop;
    pthread_mutex_t lock; /* guards conns, nconns and st */
    struct srv_conn conns[SRV_MAX_CONNS];
    unsigned nconns;
    struct tu_srv_stats st;
};

static void srv_fail(struct tu_srv *s, const char *what, const char *why)
{
    pthread_mutex_lock(&s->lock);
    if (!s->st.err[0])
        snprintf(s->st.err, sizeof s->st.err, "%s: %s", what, why);
    pthread_mutex_unlock(&s->lock);
}

static void srv_count(struct tu_srv *s, unsigned *counter)
{
    pthread_mutex_lock(&s->lock);
    (*counter)++;
    pthread_mutex_unlock(&s->lock);
}

/* Answers the probe the way the configured kernel does. The caller checked
 * that hdr is an AUTH_TLS call of procedure 0. */
static int srv_answer_probe(struct tu_srv *s, struct tu_xprt *x, const struct krpc_call_hdr *hdr)
{
    struct krpc_reply_hdr rh;
    struct krpc_xdr_enc e;
    struct mb_chain reply = MB_CHAIN_INIT;
    int ret;

    memset(&rh, 0, sizeof rh);
    rh.xid = hdr->xid;
    rh.reply_stat = KRPC_MSG_ACCEPTED;
    rh.verf_flavor = KRPC_AUTH_NONE;
    rh.verf_len = 8;
    memcpy(rh.verf, KRPC_STARTTLS_VERF, 8);
    rh.accept_stat = KRPC_SUCCESS;
    if (s->cfg.probe == TU_PROBE_KNFSD) {
        /* svc_process_common(): the program lookup comes after
         * svc_authenticate(), which already wrote the verifier. */
        if (hdr->prog != NFS3_PROGRAM) {
            rh.accept_stat = KRPC_PROG_UNAVAIL;
            srv_count(s, &s->st.probes_unavail);
        } else if (hdr->vers != NFS3_VERSION) {
            rh.accept_stat = KRPC_PROG_MISMATCH;
            rh.mismatch_low = rh.mismatch_high = NFS3_VERSION;
            srv_count(s, &s->st.probes_mismatch);
        }
    }
    krpc_xdr_enc_init(&e, &reply);
    krpc_encode_reply_hdr(&e, &rh);
    ret = krpc_xdr_enc_error(&e);
    if (ret == 0)
        ret = tu_rpc_send(x, &reply, 0);
    mb_chain_free(&reply);
    if (ret == 0)
        srv_count(s, &s->st.probes);
    return ret;
}

static void *srv_conn_main(void *arg)
{
    struct srv_conn *c = arg;
    struct tu_srv *s = c->srv;
    struct tu_xprt x;
    struct mb_chain msg = MB_CHAIN_INIT, reply = MB_CHAIN_INIT;
    struct krpc_call_hdr hdr;
    struct krpc_xdr_dec d;
    int ret;

    tu_xprt_plain(&x, c->fd);
    for (unsigned n = 0; n < 1000000 && !atomic_load(&s->stop); n++) {
        ret = tu_rpc_recv(&x, &msg, KRPC_RM_DEFAULT_MAX_MSG + 4096);
        if (ret == -ECONNRESET)
            break; /* the client closed between messages */
        if (ret < 0) {
            /* tu_srv_stop cuts connections that are still open: not a failure. */
            if (!atomic_load(&s->stop))
                srv_fail(s, x.tls ? "receive (TLS)" : "receive", x.err);
            break;
        }
        krpc_xdr_dec_init(&d, &msg, 0, msg.len);
        if (krpc_decode_call_hdr(&d, &hdr) < 0) {
            srv_fail(s, "call header", "undecodable");
            break;
        }
        if (x.tls == NULL && hdr.cred.flavor == KRPC_AUTH_TLS && hdr.proc == 0) {
            mb_chain_free(&msg);
            if (srv_answer_probe(s, &x, &hdr) < 0) {
                srv_fail(s, "probe reply", x.err);
                break;
            }
            if (s->cfg.start_tls(&x, c->fd, s->cfg.tls_arg) < 0) {
                srv_count(s, &s->st.handshake_failures);
                srv_fail(s, "TLS handshake", x.err);
                break;
            }
            pthread_mutex_lock(&s->lock);
            s->st.handshakes++;
            if (s->cfg.describe != NULL)
                s->cfg.describe(&x, s->st.session, sizeof s->st.session);
            pthread_mutex_unlock(&s->lock);
            continue;
        }
        srv_count(s, x.tls ? &s->st.tls_calls : &s->st.plain_calls);
        ret = tu_mini_nfs_dispatch(s->cfg.nfs, &hdr, &d, &reply);
        mb_chain_free(&msg);
        if (ret == 0)
            ret = tu_rpc_send(&x, &reply, 0);
        mb_chain_free(&reply);
        if (ret < 0) {
            srv_fail(s, "reply", x.err[0] ? x.err : "could not encode");
            break;
        }
    }
    mb_chain_free(&msg);
    /* close_notify and the session; tu_srv_stop closes the fd. */
    if (x.tls != NULL && x.end_tls != NULL)
        x.end_tls(&x);
    return NULL;
}

static void *srv_accept_main(void *arg)
{
    struct tu_srv *s = arg;
    struct pollfd pfd = {.fd = s->lfd, .events = POLLIN};
    int timeout = s->cfg.timeout_ms ? s->cfg.timeout_ms : 20000;

    /* Bounded: 100 ms polls for at most 10 minutes. */
    for (int i = 0; i < 6000 && !atomic_load(&s->stop); i++) {
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        tu_set_timeouts(fd, timeout);
        pthread_mutex_lock(&s->lock);
        if (s->nconns == SRV_MAX_CONNS) {
            pthread_mutex_unlock(&s->lock);
            srv_fail(s, "accept", "too many connections");
            close(fd);
            continue;
        }
        struct srv_conn *c = &s->conns[s->nconns];
        c->srv = s;
        c->fd = fd;
        if (pthread_create(&c->thread, NULL, srv_conn_main, c) != 0) {
            pthread_mutex_unlock(&s->lock);
            close(fd);
            continue;
        }
        s->nconns++;
        s->st.conns++;
        pthread_mutex_unlock(&s->lock);
    }
    return NULL;
}

int tu_srv_start(const struct tu_srv_cfg *cfg, struct tu_srv **out)
{
    struct tu_srv *s;
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    int ret = -1;

    s = calloc(1, sizeof *s);
    if (s == NULL)
        return -1;
    s->cfg = *cfg;
    s->lfd = -1;
    pthread_mutex_init(&s->lock, NULL);
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->lfd < 0)
        goto out;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s->lfd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(s->lfd, 16) < 0 ||
        getsockname(s->lfd, (struct sockaddr *)&sin, &len) < 0)
        goto out;
    s->port = ntohs(sin.sin_port);
    if (pthread_create(&s->acceptor, NULL, srv_accept_main, s) != 0)
        goto out;
    *out = s;
    ret = 0;
out:
    if (ret < 0) {
        perror("tu_srv_start");
        if (s->lfd >= 0)
            close(s->lfd);
        pthread_mutex_destroy(&s->lock);
        free(s);
    }
    return ret;
}

uint16_t tu_srv_port(const struct tu_srv *s)
{
    return s->port;
}

void tu_srv_stop(struct tu_srv *s, struct tu_srv_stats *st)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->acceptor, NULL);
    /* Wake connection threads blocked in a read; they end at EOF. */
    pthread_mutex_lock(&s->lock);
    for (unsigned i = 0; i < s->nconns; i++)
        shutdown(s->conns[i].fd, SHUT_RDWR);
    pthread_mutex_unlock(&s->lock);
    for (unsigned i = 0; i < s->nconns; i++) {
        pthread_join(s->conns[i].thread, NULL);
        close(s->conns[i].fd);
    }
    if (st != NULL)
        *st = s->st;
    close(s->lfd);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
