/*
 * src/nfs3/mirror.c - the mirrored writer (see rpctls/nfs3_mirror.h).
 *
 * The calling thread is the producer: it reads each chunk of the source once
 * into page vectors and gives every mirror a copy-by-reference of it. Each
 * mirror thread owns a krpc_loop with one NFS client and runs a small state
 * machine: WRITING (jobs from the queue, depth UNSTABLE WRITEs in flight),
 * then COMMIT, then RESEND (ranges lost to a verifier change or left by a
 * short write, re-read from the source file) and COMMIT again, until the
 * COMMIT verifier matches every written range.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "rpctls/nfs3_clnt.h"
#include "rpctls/nfs3_mirror.h"

#define DEF_WSIZE (1u << 20)
#define DEF_DEPTH 8
#define DEF_ROUNDS 5

struct mw;

/* A chunk read from the source; freed when every mirror is done with it. */
struct chunk {
    atomic_uint refs;
    uint32_t len;
};

/* One WRITE to do: a chunk's data (by reference) or a resend (chunk NULL). */
struct job {
    struct job *next;
    struct chunk *ck;
    uint64_t off;
    uint32_t len;
    struct mb_chain data;
    struct mirror *m;
};

struct range {
    uint64_t off, len;
    uint8_t verf[NFS3_WRITEVERFSIZE];
};

struct rangevec {
    struct range *v;
    size_t n, cap;
};

enum phase { PH_WRITING = 0, PH_RESEND, PH_COMMIT, PH_DONE };

struct mirror {
    struct mw *mw;
    const struct nfs3_mirror_dest *dest;
    struct nfs3_mirror_result *res;
    pthread_t th;
    int started;

    /* Queue from the producer (under qlock). */
    pthread_mutex_t qlock;
    struct job *qhead, *qtail;
    int qeof;
    int efd;

    /* Setup outcome (under mw->lock). */
    int setup_done;
    int active; /* set up fine: receives chunks */

    /* Mirror thread only. */
    struct krpc_loop *loop;
    struct nfs3_clnt *nc;
    struct nfs3_fh fh;
    uint32_t wsize, rsize;
    struct job *phead, *ptail; /* pending, not yet sent */
    unsigned inflight;
    int eof_seen;
    int failed;
    enum phase phase;
    struct rangevec unc;  /* written UNSTABLE, not yet committed */
    struct rangevec redo; /* to be written again from the source */
    size_t redo_i;
    uint64_t redo_pos;    /* within redo.v[redo_i] */
    unsigned rounds;
    int done;
    uint64_t t0;
};

struct mw {
    const struct nfs3_mirror_config *cfg;
    int src_fd;
    uint64_t size;
    unsigned depth, max_chunks, rounds;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned chunks_out;
    uint64_t done_bytes;
    unsigned nsetup;
};

/* ---- helpers ---------------------------------------------------------------- */

static void mfail(struct mirror *m, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void mfail(struct mirror *m, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (m->failed)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    m->failed = 1;
    m->res->status = status ? status : -EIO;
    snprintf(m->res->error, sizeof m->res->error, "mirror %s: %s", m->dest->label, msg);
}

static int rv_add(struct rangevec *rv, uint64_t off, uint64_t len, const uint8_t *verf)
{
    struct range *last = rv->n ? &rv->v[rv->n - 1] : NULL;

    if (len == 0)
        return 0;
    /* Merge with the last range when contiguous (and, if given, same verifier). */
    if (last && last->off + last->len == off &&
        (verf ? memcmp(last->verf, verf, NFS3_WRITEVERFSIZE) == 0 : 1)) {
        last->len += len;
        return 0;
    }
    if (rv->n == rv->cap) {
        size_t cap = rv->cap ? rv->cap * 2 : 64;
        struct range *v = realloc(rv->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        rv->v = v;
        rv->cap = cap;
    }
    rv->v[rv->n].off = off;
    rv->v[rv->n].len = len;
    if (verf)
        memcpy(rv->v[rv->n].verf, verf, NFS3_WRITEVERFSIZE);
    else
        memset(rv->v[rv->n].verf, 0, NFS3_WRITEVERFSIZE);
    rv->n++;
    return 0;
}

static void chunk_release(struct mw *mw, struct chunk *ck)
{
    if (!ck)
        return;
    if (atomic_fetch_sub(&ck->refs, 1) == 1) {
        pthread_mutex_lock(&mw->lock);
        mw->chunks_out--;
        mw->done_bytes += ck->len;
        pthread_cond_broadcast(&mw->cond);
        pthread_mutex_unlock(&mw->lock);
        free(ck);
    }
}

static void job_free(struct mw *mw, struct job *j)
{
    mb_chain_free(&j->data);
    chunk_release(mw, j->ck);
    free(j);
}

static int sha_update(void *ctx, const void *p, size_t n)
{
    return EVP_DigestUpdate(ctx, p, n) == 1 ? 0 : -EIO;
}

static void sha_chain(EVP_MD_CTX *ctx, const struct mb_chain *c)
{
    (void)mb_chain_apply(c, 0, c->len, sha_update, ctx);
}

/* ---- the mirror's state machine (mirror thread) ------------------------------ */

static void pump(struct mirror *m);

static void finish(struct mirror *m)
{
    m->phase = PH_DONE;
    m->res->seconds = (double)(krpc_now_ms() - m->t0) / 1000.0;
    m->done = 1;
}

static void write_cb(struct nfs3_clnt *nc, int status, const struct nfs3_write_res *res, void *arg)
{
    struct job *j = arg;
    struct mirror *m = j->m;
    char sbuf[64];

    m->inflight--;
    if (status != 0) {
        mfail(m, status, "WRITE of %" PRIu32 " bytes at offset %" PRIu64 ": %s", j->len, j->off,
              nfs3_clnt_error(nc)[0] ? nfs3_clnt_error(nc) : nfs3_status_str(status, sbuf, sizeof sbuf));
    } else {
        uint32_t n = res->count > j->len ? j->len : res->count;
        m->res->bytes_written += n;
        if (!j->ck)
            m->res->bytes_resent += n;
        if (res->committed != NFS3_FILE_SYNC && rv_add(&m->unc, j->off, n, res->verf) < 0)
            mfail(m, -ENOMEM, "out of memory");
        if (n < j->len && rv_add(&m->redo, j->off + n, j->len - n, NULL) < 0) /* short write */
            mfail(m, -ENOMEM, "out of memory");
    }
    job_free(m->mw, j);
    pump(m);
}

static int send_job(struct mirror *m, struct job *j)
{
    int rc;

    j->m = m;
    rc = nfs3_write_async(m->nc, &m->fh, j->off, NFS3_UNSTABLE, &j->data, write_cb, j);
    if (rc < 0) {
        mfail(m, rc, "WRITE at offset %" PRIu64 ": %s", j->off, strerror(-rc));
        job_free(m->mw, j);
        return rc;
    }
    m->inflight++;
    return 0;
}

static void commit_cb(struct nfs3_clnt *nc, int status, const struct nfs3_commit_res *res, void *arg)
{
    struct mirror *m = arg;
    char sbuf[64];
    size_t lost = 0;

    m->inflight--;
    if (status != 0) {
        mfail(m, status, "COMMIT: %s",
              nfs3_clnt_error(nc)[0] ? nfs3_clnt_error(nc) : nfs3_status_str(status, sbuf, sizeof sbuf));
        pump(m);
        return;
    }
    m->res->commits++;
    /* A range written under another verifier did not survive: write it again. */
    for (size_t i = 0; i < m->unc.n; i++) {
        const struct range *r = &m->unc.v[i];
        if (memcmp(r->verf, res->verf, NFS3_WRITEVERFSIZE) != 0) {
            if (rv_add(&m->redo, r->off, r->len, NULL) < 0)
                mfail(m, -ENOMEM, "out of memory");
            lost++;
        }
    }
    m->unc.n = 0;
    if (lost) {
        m->res->verifier_changes++;
        krpc_log(KRPC_LOG_INFO, "mirror %s: write verifier changed; %zu range(s) to write again", m->dest->label,
                 lost);
    }
    if (m->redo.n == 0) {
        finish(m);
        return;
    }
    if (++m->rounds > m->mw->rounds) {
        mfail(m, -EIO, "uncommitted data lost again after %u rounds of resending", m->mw->rounds);
        pump(m);
        return;
    }
    m->phase = PH_RESEND;
    m->redo_i = 0;
    m->redo_pos = 0;
    pump(m);
}

static void start_commit(struct mirror *m)
{
    int rc;

    m->phase = PH_COMMIT;
    rc = nfs3_commit_async(m->nc, &m->fh, 0, 0, commit_cb, m);
    if (rc < 0) {
        mfail(m, rc, "COMMIT: %s", strerror(-rc));
        return;
    }
    m->inflight++;
}

/* Next piece of the resend list, read again from the source. */
static struct job *next_redo(struct mirror *m)
{
    struct job *j;
    const struct range *r;
    uint64_t n;
    int rc;

    while (m->redo_i < m->redo.n && m->redo_pos >= m->redo.v[m->redo_i].len) {
        m->redo_i++;
        m->redo_pos = 0;
    }
    if (m->redo_i >= m->redo.n)
        return NULL;
    r = &m->redo.v[m->redo_i];
    n = r->len - m->redo_pos;
    if (n > m->wsize)
        n = m->wsize;
    j = calloc(1, sizeof *j);
    if (!j) {
        mfail(m, -ENOMEM, "out of memory");
        return NULL;
    }
    j->off = r->off + m->redo_pos;
    j->len = (uint32_t)n;
    mb_chain_init(&j->data);
    rc = mb_chain_append_pages_from_fd(&j->data, m->mw->src_fd, (off_t)j->off, (size_t)n);
    if (rc < 0) {
        mfail(m, rc, "re-reading the source at offset %" PRIu64 ": %s", j->off, strerror(-rc));
        job_free(m->mw, j);
        return NULL;
    }
    m->redo_pos += n;
    return j;
}

static void pump(struct mirror *m)
{
    struct job *j;

    if (m->phase == PH_DONE)
        return;
    if (m->failed) {
        /* Drop whatever is pending; the chunks go on for the other mirrors. */
        while ((j = m->phead) != NULL) {
            m->phead = j->next;
            job_free(m->mw, j);
        }
        m->ptail = NULL;
        if (m->eof_seen && m->inflight == 0)
            finish(m);
        return;
    }
    switch (m->phase) {
    case PH_WRITING:
        while (!m->failed && m->inflight < m->mw->depth && (j = m->phead) != NULL) {
            m->phead = j->next;
            if (!m->phead)
                m->ptail = NULL;
            send_job(m, j);
        }
        if (!m->failed && m->eof_seen && !m->phead && m->inflight == 0) {
            if (m->redo.n > 0) { /* short writes to finish first */
                m->phase = PH_RESEND;
                m->redo_i = 0;
                m->redo_pos = 0;
                pump(m);
            } else {
                start_commit(m);
            }
        }
        break;
    case PH_RESEND:
        while (!m->failed && m->inflight < m->mw->depth && (j = next_redo(m)) != NULL)
            send_job(m, j);
        if (!m->failed && m->inflight == 0 && m->redo_i >= m->redo.n) {
            m->redo.n = 0;
            start_commit(m);
        }
        break;
    default:
        break;
    }
    if (m->failed)
        pump(m);
}

static void efd_cb(struct krpc_loop *loop, int fd, uint32_t events, void *arg)
{
    struct mirror *m = arg;
    struct job *h, *t;
    uint64_t v;

    (void)loop;
    (void)events;
    if (read(fd, &v, sizeof v) < 0) {
        /* EAGAIN: nothing to read; the queue is checked anyway */
    }
    pthread_mutex_lock(&m->qlock);
    h = m->qhead;
    t = m->qtail;
    m->qhead = m->qtail = NULL;
    if (m->qeof)
        m->eof_seen = 1;
    pthread_mutex_unlock(&m->qlock);
    if (h) {
        if (m->ptail)
            m->ptail->next = h;
        else
            m->phead = h;
        m->ptail = t;
    }
    pump(m);
}

/* ---- verification (mirror thread) ---------------------------------------------- */

static int sha_sink(void *arg, uint64_t off, struct mb_chain *data)
{
    (void)off;
    sha_chain(arg, data);
    return 0;
}

static void verify(struct mirror *m)
{
    struct nfs3_fattr attr;
    EVP_MD_CTX *ctx;
    uint64_t got = 0;
    unsigned len = 32;
    int rc;

    rc = nfs3_getattr(m->nc, &m->fh, &attr);
    if (rc != 0) {
        mfail(m, rc, "verify: %s", nfs3_clnt_error(m->nc));
        return;
    }
    ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        mfail(m, -ENOMEM, "verify: SHA-256 unavailable");
        return;
    }
    rc = nfs3_read_pipelined(m->nc, &m->fh, 0, attr.size, m->rsize, m->mw->depth, sha_sink, ctx, &got);
    if (rc != 0) {
        EVP_MD_CTX_free(ctx);
        mfail(m, rc, "verify: %s", nfs3_clnt_error(m->nc));
        return;
    }
    EVP_DigestFinal_ex(ctx, m->res->sha256, &len);
    EVP_MD_CTX_free(ctx);
    m->res->size = got;
    m->res->verified = 1;
}

/* ---- the mirror thread ------------------------------------------------------------ */

static int setup(struct mirror *m)
{
    const struct nfs3_mirror_config *cfg = m->mw->cfg;
    struct nfs3_fsinfo_res fi;
    struct nfs3_fh root;
    size_t rest = 0;
    int rc;

    rc = krpc_loop_new(&m->loop);
    if (rc < 0) {
        mfail(m, rc, "event loop: %s", strerror(-rc));
        return rc;
    }
    rc = nfs3_clnt_new_opts(m->loop, &m->dest->rpc, &m->dest->ports, &m->nc);
    if (rc < 0) {
        mfail(m, rc, "RPC client: %s", strerror(-rc));
        return rc;
    }
    rc = nfs3_mount_prefix(m->nc, m->dest->path, &root, &rest);
    if (rc > 0) {
        char why[512];
        snprintf(why, sizeof why, "%s", nfs3_clnt_error(m->nc));
        if (nfs3_mount(m->nc, m->dest->path, &root) == 0) {
            mfail(m, -EISDIR, "%s is the export itself, not a file in it", m->dest->path);
            return -EISDIR;
        }
        mfail(m, rc, "%s", why);
        return rc;
    }
    if (rc == 0 && m->dest->path[rest] == '\0') {
        mfail(m, -EISDIR, "%s is the export itself, not a file in it", m->dest->path);
        return -EISDIR;
    }
    if (rc == 0)
        rc = nfs3_open_path(m->nc, &root, m->dest->path + rest,
                            NFS3_OPEN_CREATE | NFS3_OPEN_TRUNC | (cfg->mkdirs ? NFS3_OPEN_MKDIRS : 0), &m->fh, NULL);
    if (rc == 0)
        rc = nfs3_fsinfo(m->nc, &m->fh, &fi);
    if (rc != 0) {
        mfail(m, rc, "%s", nfs3_clnt_error(m->nc));
        return rc;
    }
    m->wsize = cfg->wsize ? cfg->wsize : DEF_WSIZE;
    if (m->wsize > NFS3_MAX_DATA)
        m->wsize = NFS3_MAX_DATA;
    if (fi.wtmax && m->wsize > fi.wtmax)
        m->wsize = fi.wtmax;
    m->rsize = m->wsize;
    if (fi.rtmax && m->rsize > fi.rtmax)
        m->rsize = fi.rtmax;
    m->res->wsize = m->wsize;
    rc = krpc_loop_add_fd(m->loop, m->efd, EPOLLIN, efd_cb, m);
    if (rc < 0) {
        mfail(m, rc, "event loop: %s", strerror(-rc));
        return rc;
    }
    return 0;
}

static void *mirror_thread(void *arg)
{
    struct mirror *m = arg;
    struct mw *mw = m->mw;
    int rc = setup(m);

    pthread_mutex_lock(&mw->lock);
    m->setup_done = 1;
    m->active = rc == 0;
    mw->nsetup++;
    pthread_cond_broadcast(&mw->cond);
    pthread_mutex_unlock(&mw->lock);
    if (rc == 0) {
        m->t0 = krpc_now_ms();
        while (!m->done) {
            rc = krpc_loop_run(m->loop, &m->done, -1);
            if (rc < 0 && rc != -EINTR) {
                mfail(m, rc, "event loop: %s", strerror(-rc));
                break; /* cannot happen short of a broken epoll */
            }
        }
        if (!m->failed && mw->cfg->verify)
            verify(m);
        krpc_loop_del_fd(m->loop, m->efd);
    }
    if (m->nc) {
        struct krpc_clnt *rpc = nfs3_clnt_rpc(m->nc);
        m->res->rpc = *krpc_clnt_stats(rpc);
        krpc_clnt_tls_stats(rpc, &m->res->tls_stats);
        m->res->tls = m->res->rpc.tls_handshakes > 0;
        snprintf(m->res->nfs_transport, sizeof m->res->nfs_transport, "%s",
                 nfs3_clnt_transport(m->nc, NFS3_PROGRAM));
        snprintf(m->res->mount_transport, sizeof m->res->mount_transport, "%s",
                 nfs3_clnt_transport(m->nc, NFS3_MNT_PROGRAM));
        nfs3_clnt_free(m->nc);
        m->nc = NULL;
    }
    if (m->loop)
        krpc_loop_free(m->loop);
    m->loop = NULL;
    free(m->unc.v);
    free(m->redo.v);
    return NULL;
}

/* ---- the producer (calling thread) -------------------------------------------------- */

static void push_job(struct mirror *m, struct job *j, int eof)
{
    uint64_t one = 1;

    pthread_mutex_lock(&m->qlock);
    if (j) {
        j->next = NULL;
        if (m->qtail)
            m->qtail->next = j;
        else
            m->qhead = j;
        m->qtail = j;
    }
    if (eof)
        m->qeof = 1;
    pthread_mutex_unlock(&m->qlock);
    if (write(m->efd, &one, sizeof one) < 0) {
        /* the counter cannot overflow here; the loop reads the queue anyway */
    }
}

static void report(struct mw *mw)
{
    uint64_t done;

    if (!mw->cfg->progress)
        return;
    pthread_mutex_lock(&mw->lock);
    done = mw->done_bytes;
    pthread_mutex_unlock(&mw->lock);
    mw->cfg->progress(mw->cfg->progress_arg, done, mw->size);
}

/* Waits (under mw->lock) with a timeout so that progress can be reported. */
static void timed_wait(struct mw *mw)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 200 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&mw->cond, &mw->lock, &ts);
}

int nfs3_mirror_write(int src_fd, uint64_t size, const struct nfs3_mirror_dest *dests, unsigned n,
                      const struct nfs3_mirror_config *cfg, struct nfs3_mirror_result *results,
                      uint8_t src_sha256[32])
{
    struct nfs3_mirror_config defcfg;
    struct mirror *ms;
    struct mw mw;
    EVP_MD_CTX *sha = NULL;
    uint32_t chunk = 0;
    unsigned nactive = 0;
    int rc = 0, local_err = 0;

    if (n == 0 || !dests || !results)
        return -EINVAL;
    if (!cfg) {
        memset(&defcfg, 0, sizeof defcfg);
        cfg = &defcfg;
    }
    memset(results, 0, n * sizeof *results);
    memset(&mw, 0, sizeof mw);
    mw.cfg = cfg;
    mw.src_fd = src_fd;
    mw.size = size;
    mw.depth = cfg->depth ? cfg->depth : DEF_DEPTH;
    mw.max_chunks = cfg->max_chunks ? cfg->max_chunks : 2 * mw.depth;
    mw.rounds = cfg->commit_rounds ? cfg->commit_rounds : DEF_ROUNDS;
    if (cfg->verify) {
        sha = EVP_MD_CTX_new();
        if (!sha || EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1) {
            EVP_MD_CTX_free(sha);
            return -ENOMEM;
        }
    }
    ms = calloc(n, sizeof *ms);
    if (!ms) {
        EVP_MD_CTX_free(sha);
        return -ENOMEM;
    }
    /* After the two early returns above: from here every path, failures
     * included, ends at the bottom, which destroys them. */
    pthread_mutex_init(&mw.lock, NULL);
    pthread_cond_init(&mw.cond, NULL);
    for (unsigned i = 0; i < n; i++) {
        struct mirror *m = &ms[i];
        m->mw = &mw;
        m->dest = &dests[i];
        m->res = &results[i];
        pthread_mutex_init(&m->qlock, NULL);
        m->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (m->efd < 0) {
            mfail(m, -errno, "eventfd: %s", strerror(errno));
            m->setup_done = 1;
            mw.nsetup++;
            continue;
        }
        rc = pthread_create(&m->th, NULL, mirror_thread, m);
        if (rc != 0) {
            mfail(m, -rc, "thread: %s", strerror(rc));
            m->setup_done = 1;
            mw.nsetup++;
            continue;
        }
        m->started = 1;
    }
    /* Every mirror set up (mounted, file created, FSINFO) or failed. */
    pthread_mutex_lock(&mw.lock);
    while (mw.nsetup < n)
        pthread_cond_wait(&mw.cond, &mw.lock);
    pthread_mutex_unlock(&mw.lock);
    for (unsigned i = 0; i < n; i++) {
        if (!ms[i].active)
            continue;
        nactive++;
        if (chunk == 0 || ms[i].wsize < chunk)
            chunk = ms[i].wsize;
    }

    /* Produce: each chunk read once, shared by reference with every mirror. */
    for (uint64_t off = 0; nactive > 0 && off < size && !local_err;) {
        uint32_t len = (uint32_t)(size - off < chunk ? size - off : chunk);
        struct mb_chain c = MB_CHAIN_INIT;
        struct chunk *ck;

        pthread_mutex_lock(&mw.lock);
        while (mw.chunks_out >= mw.max_chunks) {
            pthread_mutex_unlock(&mw.lock);
            report(&mw);
            pthread_mutex_lock(&mw.lock);
            if (mw.chunks_out >= mw.max_chunks)
                timed_wait(&mw);
        }
        mw.chunks_out++;
        pthread_mutex_unlock(&mw.lock);
        rc = mb_chain_append_pages_from_fd(&c, src_fd, (off_t)off, len);
        ck = rc == 0 ? malloc(sizeof *ck) : NULL;
        if (!ck) {
            local_err = rc < 0 ? rc : -ENOMEM;
            mb_chain_free(&c);
            pthread_mutex_lock(&mw.lock);
            mw.chunks_out--;
            pthread_mutex_unlock(&mw.lock);
            break;
        }
        if (sha)
            sha_chain(sha, &c);
        atomic_init(&ck->refs, nactive);
        ck->len = len;
        for (unsigned i = 0; i < n; i++) {
            struct job *j;
            if (!ms[i].active)
                continue;
            j = calloc(1, sizeof *j);
            if (j)
                mb_chain_init(&j->data);
            if (!j || mb_chain_copy_ref(&j->data, &c, 0, len) < 0) {
                /* Cannot hand this mirror its share: it fails, the others go on. */
                if (j)
                    mb_chain_free(&j->data);
                free(j);
                local_err = -ENOMEM;
                chunk_release(&mw, ck);
                continue;
            }
            j->ck = ck;
            j->off = off;
            j->len = len;
            push_job(&ms[i], j, 0);
        }
        mb_chain_free(&c); /* the mirrors hold the only references now */
        off += len;
        report(&mw);
    }
    for (unsigned i = 0; i < n; i++)
        if (ms[i].active)
            push_job(&ms[i], NULL, 1);
    /* Progress until every chunk is written everywhere. */
    pthread_mutex_lock(&mw.lock);
    while (mw.chunks_out > 0) {
        pthread_mutex_unlock(&mw.lock);
        report(&mw);
        pthread_mutex_lock(&mw.lock);
        if (mw.chunks_out > 0)
            timed_wait(&mw);
    }
    pthread_mutex_unlock(&mw.lock);
    report(&mw);
    for (unsigned i = 0; i < n; i++) {
        if (ms[i].started)
            pthread_join(ms[i].th, NULL);
        if (ms[i].efd >= 0)
            close(ms[i].efd);
        pthread_mutex_destroy(&ms[i].qlock);
        /* Anything the thread never took (it failed at setup): none was queued. */
    }
    if (sha) {
        uint8_t d[32];
        unsigned dl = 32;
        EVP_DigestFinal_ex(sha, d, &dl);
        EVP_MD_CTX_free(sha);
        if (src_sha256)
            memcpy(src_sha256, d, 32);
        for (unsigned i = 0; i < n; i++) {
            struct nfs3_mirror_result *r = &results[i];
            if (r->status != 0 || local_err)
                continue;
            if (!r->verified || r->size != size || memcmp(r->sha256, d, 32) != 0) {
                r->status = -EIO;
                snprintf(r->error, sizeof r->error,
                         "mirror %s: verify: read back %" PRIu64 " bytes whose SHA-256 differs from the source's "
                         "(%" PRIu64 " bytes)",
                         dests[i].label, r->size, size);
            }
        }
    }
    free(ms);
    pthread_cond_destroy(&mw.cond);
    pthread_mutex_destroy(&mw.lock);
    if (local_err)
        return local_err;
    for (unsigned i = 0; i < n; i++)
        if (results[i].status != 0)
            return -EIO;
    return 0;
}
