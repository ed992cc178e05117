/*
 * tools/mount/write.c - rpctls-mount's write-behind: write_buf takes the data
 * (from libfuse's splice pipe or its buffer) into pool pages and sends it as
 * WRITE UNSTABLE to every server; COMMIT, and the resend of what a server lost.
 */
#include "mount.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- write-behind ------------------------------------------------------------ */

static void wsend_cb(struct nfs3_clnt *nc, int status, const struct nfs3_write_res *res, void *arg)
{
    struct wsend *w = arg;
    struct wpiece *p = w->p;
    struct inode *in = p->ino;

    (void)nc;
    srv_snapshot(w->s); /* this is w->s's loop thread */
    if (status != 0 && status != -ECANCELED) {
        /* Kept for the commit, which writes it again (FILE_SYNC); an error
         * that persists is reported there. A mirror that does not answer
         * is given up now, so that later writes do not wait for it. */
        fprintf(stderr, PROG ": %s %s: WRITE of %u bytes at %llu: %d (%s)\n", srv_role(w->s), g.srv[w->s].url,
                p->len, (unsigned long long)p->off, status, nfs3_clnt_error(g.srv[w->s].nc));
        if (server_trouble(status) && others_healthy(w->s))
            srv_fail(w->s, "WRITE", status);
    }
    if (status == 0 && res->count > p->len)
        /* Not trusted: the piece is written again at the commit. */
        fprintf(stderr, PROG ": %s %s: WRITE of %u bytes at %llu: the server claims %u bytes written, more than "
                "were sent\n", srv_role(w->s), g.srv[w->s].url, p->len, (unsigned long long)p->off, res->count);
    pthread_mutex_lock(&in->mu);
    if (status == 0 && res->count == p->len) {
        w->ok = 1;
        memcpy(w->verf, res->verf, sizeof w->verf);
    }
    in->inflight--;
    pthread_cond_broadcast(&in->cv);
    pthread_mutex_unlock(&in->mu);
}

void wait_writes(struct inode *in)
{
    pthread_mutex_lock(&in->mu);
    while (in->inflight > 0)
        pthread_cond_wait(&in->cv, &in->mu); /* every WRITE ends: RPC timeouts / the server's answer */
    pthread_mutex_unlock(&in->mu);
}

/* The COMMITs of one commit_inode, sent to every server at once. */
struct cwait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned pending;
    int rc[MAX_SRV];
    uint8_t verf[MAX_SRV][NFS3_WRITEVERFSIZE];
};

struct carg {
    struct cwait *w;
    unsigned s;
};

static void commit_cb(struct nfs3_clnt *nc, int status, const struct nfs3_commit_res *res, void *arg)
{
    struct carg *a = arg;
    struct cwait *w = a->w;

    (void)nc;
    srv_snapshot(a->s);
    pthread_mutex_lock(&w->mu);
    w->rc[a->s] = status;
    if (status == 0)
        memcpy(w->verf[a->s], res->verf, NFS3_WRITEVERFSIZE);
    w->pending--;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* A failed write-behind call to server s: a mirror (or a primary with a
 * healthy mirror) that does not answer is given up; otherwise the error is
 * the caller's. Returns the errno for the caller, 0 when given up. */
static int write_trouble(const char *what, unsigned s, int status)
{
    if ((s > 0 || server_trouble(status)) && others_healthy(s)) {
        srv_fail(s, what, status);
        return 0;
    }
    return fail(what, s, status);
}

/* --mirror-strict: EIO as soon as any server has failed. */
static int strict_check(void)
{
    int bad = 0;

    if (!g.strict)
        return 0;
    pthread_mutex_lock(&g.srv_mu);
    for (unsigned s = 0; s < g.nsrv; s++)
        bad |= g.srv[s].failed;
    pthread_mutex_unlock(&g.srv_mu);
    return bad ? EIO : 0;
}

/* Waits for the WRITEs in flight, COMMITs on every healthy server that got
 * pieces (all at once), and writes again (FILE_SYNC) to a server every
 * piece that failed there, was short, or whose verifier is not its
 * COMMIT's. Returns 0 when every healthy server has the data on stable
 * storage, or an errno (the first deferred error included). */
int commit_inode(struct inode *in)
{
    struct wpiece *list;
    struct cwait w;
    struct carg args[MAX_SRV];
    struct nfs3_fh fh[MAX_SRV];
    uint32_t sent = 0, targets = 0;
    int err;

    pthread_mutex_lock(&in->mu);
    while (in->inflight > 0)
        pthread_cond_wait(&in->cv, &in->mu);
    list = in->dirty;
    in->dirty = in->dirty_tail = NULL;
    in->dirty_bytes = 0;
    err = in->werr;
    in->werr = 0;
    pthread_mutex_unlock(&in->mu);
    if (!list)
        return err ? err : strict_check();
    for (struct wpiece *p = list; p; p = p->next)
        sent |= p->sent;

    memset(&w, 0, sizeof w);
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    for (unsigned s = 0; s < g.nsrv; s++) {
        int rc;

        if (!(sent & (1u << s)) || !healthy(s))
            continue;
        rc = fh_on(in, s, &fh[s]);
        if (rc != 0) {
            int e = write_trouble("COMMIT", s, rc);
            if (e && !err)
                err = e;
            continue;
        }
        targets |= 1u << s;
        args[s].w = &w;
        args[s].s = s;
        pthread_mutex_lock(&w.mu);
        w.pending++;
        pthread_mutex_unlock(&w.mu);
        rc = nfs3_commit_async(g.srv[s].nc, &fh[s], 0, 0, commit_cb, &args[s]);
        if (rc < 0) {
            pthread_mutex_lock(&w.mu);
            w.rc[s] = rc;
            w.pending--;
            pthread_mutex_unlock(&w.mu);
        }
    }
    pthread_mutex_lock(&w.mu);
    while (w.pending > 0)
        pthread_cond_wait(&w.cv, &w.mu); /* each COMMIT ends: its callback always runs */
    pthread_mutex_unlock(&w.mu);

    for (unsigned s = 0; s < g.nsrv; s++) {
        if (!(targets & (1u << s)))
            continue;
        if (w.rc[s] != 0) {
            int e = write_trouble("COMMIT", s, w.rc[s]);
            if (e && !err)
                err = e;
            continue;
        }
        for (struct wpiece *p = list; p; p = p->next) {
            struct nfs3_write_res wr;
            struct mb_chain c = MB_CHAIN_INIT;
            int wrc;

            if (!(p->sent & (1u << s)) ||
                (p->to[s].ok && memcmp(p->to[s].verf, w.verf[s], NFS3_WRITEVERFSIZE) == 0))
                continue;
            wrc = mb_chain_copy_ref(&c, &p->data, 0, p->data.len);
            if (wrc == 0)
                wrc = nfs3_write(g.srv[s].nc, &fh[s], p->off, NFS3_FILE_SYNC, &c, &wr);
            mb_chain_free(&c);
            if (wrc == 0 && wr.count != p->len) {
                /* Short (the FILE_SYNC resend was the last chance), or more
                 * than was sent (a server not to be believed): EIO, with
                 * this line rather than fail()'s (the client's last error
                 * is about some other call). */
                fprintf(stderr, PROG ": %s %s: WRITE (resend) of %u bytes at %llu: the server claims %u bytes "
                        "written, %s than were sent\n", srv_role(s), g.srv[s].url, p->len,
                        (unsigned long long)p->off, wr.count, wr.count > p->len ? "more" : "fewer");
                if (s > 0 && others_healthy(s))
                    srv_fail(s, "WRITE (resend): wrong count", NFS3ERR_IO);
                else if (!err)
                    err = EIO;
                break;
            }
            if (wrc != 0) {
                int e = write_trouble("WRITE (resend)", s, wrc);
                if (e && !err)
                    err = e;
                break;
            }
        }
    }
    for (struct wpiece *p = list, *next; p; p = next) {
        next = p->next;
        mb_chain_free(&p->data);
        free(p);
    }
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    if (!err && reader() < 0)
        err = EIO; /* every server has failed */
    if (!err)
        err = strict_check();
    return err;
}

/* ---- write_buf --------------------------------------------------------------- */

/* The servers a write goes to (every healthy one whose handle is known or
 * can be found, in *targets) after any deferred error and the bound on
 * uncommitted bytes. 0 or an errno. */
static int write_targets(struct inode *in, struct nfs3_fh fh[MAX_SRV], uint32_t *targets, unsigned *ntargets)
{
    uint64_t dirty;
    int err;

    *targets = 0;
    *ntargets = 0;
    pthread_mutex_lock(&in->mu);
    err = in->werr;
    dirty = in->dirty_bytes;
    pthread_mutex_unlock(&in->mu);
    if (!err && dirty >= MAX_DIRTY)
        err = commit_inode(in); /* bound the pages kept for resending */
    for (unsigned s = 0; s < g.nsrv && !err; s++) {
        int rc;
        if (!healthy(s))
            continue;
        rc = fh_on(in, s, &fh[s]);
        if (rc != 0) {
            err = write_trouble("WRITE", s, rc);
            continue;
        }
        *targets |= 1u << s;
        (*ntargets)++;
    }
    if (!err && *ntargets == 0)
        err = EIO; /* every server has failed */
    return err;
}

/* The one copy of a write's bytes: into fresh pool pages, from where
 * libfuse put them. With splice (FUSE_CAP_SPLICE_READ) a large WRITE
 * arrives as a pipe holding the kernel's page-cache pages by reference
 * (FUSE_BUF_IS_FD), read here straight into the pool pages; otherwise as
 * libfuse's buffer (which read(2) from /dev/fuse already filled: one more
 * copy). Consumes bv (idx = count): libfuse empties the pipe of a request
 * whose data was not taken. 0 or a negative errno. */
static int bufvec_to_pages(struct fuse_bufvec *bv, struct mb_chain *out, int *from_pipe)
{
    *from_pipe = 0;
    for (; bv->idx < bv->count; bv->idx++, bv->off = 0) {
        const struct fuse_buf *b = &bv->buf[bv->idx];
        size_t len = b->size - bv->off;
        int rc;

        if (b->flags & FUSE_BUF_IS_FD) {
            *from_pipe = 1;
            rc = mb_chain_append_pages_from_fd(out, b->fd, (b->flags & FUSE_BUF_FD_SEEK) ? b->pos + (off_t)bv->off : -1,
                                               len);
        } else {
            rc = mb_chain_append_pages_from_buf(out, (const char *)b->mem + bv->off, len);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Sends all (pool pages, consumed) at off as wsize pieces, each to every
 * target by reference, WRITE UNSTABLE, without waiting for the replies; the
 * pieces are kept on the inode until COMMIT. Returns the bytes taken; *err
 * says why it stopped short. */
static size_t write_pieces(struct inode *in, struct mb_chain *all, off_t off, const struct nfs3_fh fh[MAX_SRV],
                           uint32_t targets, unsigned ntargets, int *err)
{
    size_t size = all->len, done = 0;

    *err = 0;
    while (done < size) {
        struct wpiece *p = calloc(1, sizeof *p);
        struct mb_chain rest = MB_CHAIN_INIT;
        uint32_t len = (uint32_t)(size - done < g.wsize ? size - done : g.wsize);

        if (!p) {
            *err = ENOMEM;
            break;
        }
        if (len < all->len && mb_chain_split(all, len, &rest) != 0) {
            free(p);
            *err = ENOMEM;
            break;
        }
        p->ino = in;
        p->off = (uint64_t)off + done;
        p->len = len;
        mb_chain_init(&p->data);
        mb_chain_concat(&p->data, all); /* the piece, kept until COMMIT */
        mb_chain_concat(all, &rest);
        pthread_mutex_lock(&in->mu);
        while (in->inflight >= g.depth * ntargets)
            pthread_cond_wait(&in->cv, &in->mu);
        if (in->dirty_tail)
            in->dirty_tail->next = p;
        else
            in->dirty = p;
        in->dirty_tail = p;
        in->dirty_bytes += len;
        pthread_mutex_unlock(&in->mu);
        for (unsigned s = 0; s < g.nsrv; s++) {
            struct mb_chain ref = MB_CHAIN_INIT;
            int rc;

            if (!(targets & (1u << s)))
                continue;
            p->to[s].p = p;
            p->to[s].s = s;
            /* The same pages for every server, by reference: each record
             * layer seals them out of place, as they are shared. */
            if (mb_chain_copy_ref(&ref, &p->data, 0, p->data.len) != 0) {
                *err = ENOMEM;
                break;
            }
            pthread_mutex_lock(&in->mu);
            p->sent |= 1u << s;
            in->inflight++;
            pthread_mutex_unlock(&in->mu);
            rc = nfs3_write_async(g.srv[s].nc, &fh[s], p->off, NFS3_UNSTABLE, &ref, wsend_cb, &p->to[s]);
            if (rc < 0) {
                /* Never started: the commit writes it from the kept pages. */
                pthread_mutex_lock(&in->mu);
                in->inflight--;
                pthread_cond_broadcast(&in->cv);
                pthread_mutex_unlock(&in->mu);
            }
        }
        if (*err)
            break;
        done += len;
    }
    mb_chain_free(all);
    return done;
}

/* write: libfuse's write_buf, so that the data can come from a pipe
 * (splice) rather than from libfuse's buffer. */
void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bv, off_t off, struct fuse_file_info *fi)
{
    struct inode *in = ino_of(ino);
    struct mb_chain all = MB_CHAIN_INIT;
    struct nfs3_fh fh[MAX_SRV];
    uint32_t targets;
    unsigned ntargets;
    size_t size = fuse_buf_size(bv), done;
    int err, from_pipe, rc;

    (void)fi;
    set_cred(req);
    err = write_targets(in, fh, &targets, &ntargets);
    if (err) {
        fuse_reply_err(req, err); /* the data is not taken; libfuse drops it */
        return;
    }
    rc = bufvec_to_pages(bv, &all, &from_pipe);
    if (rc < 0 || all.len != size) {
        fprintf(stderr, PROG ": WRITE of %zu bytes at %lld: cannot take the data from FUSE: %s\n", size,
                (long long)off, rc < 0 ? strerror(-rc) : "short");
        mb_chain_free(&all);
        fuse_reply_err(req, rc == -ENOMEM ? ENOMEM : EIO);
        return;
    }
    atomic_fetch_add(from_pipe ? &g.writes_pipe : &g.writes_buf, 1);
    atomic_fetch_add(from_pipe ? &g.bytes_pipe : &g.bytes_buf, size);
    done = write_pieces(in, &all, off, fh, targets, ntargets, &err);
    if (err && done == 0)
        fuse_reply_err(req, err);
    else
        fuse_reply_write(req, done);
}

/* Whether libfuse can splice a whole WRITE request: it grows its pipe to
 * max_write + 4 KiB (its header room) and reads from /dev/fuse instead
 * when it cannot; a pipe over fs.pipe-max-size (1 MiB by default) needs
 * CAP_SYS_RESOURCE. */
int splice_fits(uint32_t max_write)
{
    int p[2], fits;

    if (pipe(p) != 0)
        return 0;
    fits = fcntl(p[0], F_SETPIPE_SZ, (int)(max_write + 4096)) >= 0;
    close(p[0]);
    close(p[1]);
    return fits;
}

/* At the end of the FUSE loop (its workers have all returned, so nothing
 * else touches the inode table): COMMITs every inode that still holds
 * written pieces, with the mount's own credential, and says so. 0 when
 * every such inode is committed on every healthy server. */
int commit_all(void)
{
    unsigned files = 0, failed = 0;
    uint64_t bytes = 0;

    for (unsigned b = 0; b < HASH_BUCKETS; b++)
        for (struct inode *in = g.tab[b]; in; in = in->hnext) {
            uint64_t dirty;
            int err;

            pthread_mutex_lock(&in->mu);
            dirty = in->dirty ? in->dirty_bytes : 0;
            pthread_mutex_unlock(&in->mu);
            if (dirty == 0)
                continue;
            err = commit_inode(in);
            files++;
            bytes += dirty;
            if (err) {
                failed++;
                fprintf(stderr, PROG ": at unmount: %s: written data not committed: %s\n",
                        in->name ? in->name : "(unlinked file)", strerror(err));
            }
        }
    if (files > 0)
        fprintf(stderr, PROG ": at unmount: committed %llu bytes of %u open file%s%s\n", (unsigned long long)bytes,
                files, files == 1 ? "" : "s", failed ? " (some failed, see above)" : "");
    return failed ? -1 : 0;
}
