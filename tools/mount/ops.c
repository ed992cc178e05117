/*
 * tools/mount/ops.c - rpctls-mount's FUSE low-level operations (write_buf is in
 * write.c, getxattr in status.c).
 */
#include "mount.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/rand.h>

/* ---- operations ------------------------------------------------------------------ */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    conn->max_write = g.max_write;
    conn->max_read = MAX_IO;
    /* The kernel keeps the smaller of this and the device's read_ahead_kb,
     * which set_readahead raised before INIT. */
    conn->max_readahead = g.readahead_kib > 0 ? (unsigned)g.readahead_kib * 1024 : MAX_IO;
    if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
        conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
    conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE; /* close-to-open needs our own write-behind */
    conn->want &= ~(unsigned)(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS); /* local locks, no NLM */
    /* Written data by splice: libfuse splices each request from /dev/fuse
     * into a pipe (the kernel puts references to its page-cache pages
     * there) and hands a large WRITE's data to write_buf as that pipe,
     * which op_write_buf reads straight into pool pages. libfuse falls back
     * to read(2) when it cannot grow the pipe to a whole request (see
     * splice_fits). */
    if (conn->capable & FUSE_CAP_SPLICE_READ)
        conn->want |= FUSE_CAP_SPLICE_READ;
    if (!(conn->want & FUSE_CAP_SPLICE_READ))
        fprintf(stderr, PROG ": written data comes through libfuse's buffer: the kernel does not offer splice\n");
    else if (!g.pipe_fits)
        fprintf(stderr, PROG ": written data comes through libfuse's buffer, not by splice: a pipe cannot hold "
                "a whole request (max_write + 4 KiB = %u bytes is over fs.pipe-max-size, without "
                "CAP_SYS_RESOURCE); --max-write 1020K or a larger fs.pipe-max-size allows splice\n",
                g.max_write + 4096);
    /* Not SPLICE_WRITE / SPLICE_MOVE: replies to READ go out with
     * fuse_reply_iov straight from the reply's pool pages, one copy by the
     * kernel into its page cache. libfuse 3.14 splices a memory bufvec by
     * write(2)ing it into a pipe (a copy) and then splicing the pipe (a
     * second copy unless the kernel can steal the pages), and without
     * splice flattens a bufvec of several buffers into one (a copy):
     * fuse_reply_data could only add copies here. */
    conn->want &= ~(unsigned)(FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
    g.splice_read = (conn->want & FUSE_CAP_SPLICE_READ) && g.pipe_fits;
}

struct lookup_a {
    struct inode *dir;
    const char *name;
    struct nfs3_fh fh;
    struct nfs3_fattr a;
};

static int lookup_fn(unsigned s, void *arg)
{
    struct lookup_a *x = arg;
    struct nfs3_fh dir;
    int rc = fh_on(x->dir, s, &dir);

    return rc ? rc : nfs3_lookup(g.srv[s].nc, &dir, x->name, &x->fh, &x->a);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct lookup_a x = {.dir = ino_of(parent), .name = name};
    unsigned s;
    int rc;

    if (!name_ok(req, name))
        return;
    set_cred(req);
    rc = on_reader("LOOKUP", lookup_fn, &x, &s);
    if (rc != 0) {
        fuse_reply_err(req, fail("LOOKUP", s, rc));
        return;
    }
    reply_entry(req, s, &x.fh, &x.a, x.dir, name);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t n)
{
    inode_forget(ino_of(ino), n);
    fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f)
{
    for (size_t i = 0; i < count; i++)
        inode_forget(ino_of(f[i].ino), f[i].nlookup);
    fuse_reply_none(req);
}

struct attr_a {
    struct inode *in;
    const struct nfs3_sattr *sa; /* setattr */
    struct nfs3_fattr a[MAX_SRV];
};

static int getattr_fn(unsigned s, void *arg)
{
    struct attr_a *x = arg;
    struct nfs3_fh fh;
    int rc = fh_on(x->in, s, &fh);

    return rc ? rc : nfs3_getattr(g.srv[s].nc, &fh, &x->a[s]);
}

static int setattr_fn(unsigned s, void *arg)
{
    struct attr_a *x = arg;
    struct nfs3_fh fh;
    int rc = fh_on(x->in, s, &fh);

    return rc ? rc : nfs3_setattr(g.srv[s].nc, &fh, x->sa, NULL, &x->a[s]);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct attr_a x = {.in = ino_of(ino)};
    struct stat st;
    unsigned s;
    int rc;

    (void)fi;
    set_cred(req);
    wait_writes(x.in); /* the size and mtime include this client's writes */
    rc = on_reader("GETATTR", getattr_fn, &x, &s);
    if (rc != 0) {
        fuse_reply_err(req, fail("GETATTR", s, rc));
        return;
    }
    if ((rc = inode_attr_bad(s, "GETATTR", x.in, &x.a[s])) != 0) {
        fuse_reply_err(req, rc);
        return;
    }
    to_stat(&x.a[s], &st);
    fuse_reply_attr(req, &st, g.attr_timeout);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *st, int to_set, struct fuse_file_info *fi)
{
    struct nfs3_sattr sa;
    struct attr_a x = {.in = ino_of(ino), .sa = &sa};
    struct stat out;
    unsigned lead;
    uint32_t done;
    int rc;

    (void)fi;
    set_cred(req);
    memset(&sa, 0, sizeof sa);
    if (to_set & FUSE_SET_ATTR_MODE) {
        sa.set_mode = 1;
        sa.mode = (uint32_t)(st->st_mode & 07777);
    }
    if (to_set & FUSE_SET_ATTR_UID) {
        sa.set_uid = 1;
        sa.uid = (uint32_t)st->st_uid;
    }
    if (to_set & FUSE_SET_ATTR_GID) {
        sa.set_gid = 1;
        sa.gid = (uint32_t)st->st_gid;
    }
    if (to_set & FUSE_SET_ATTR_SIZE) {
        /* Dirty pieces past the new size must not be written again after
         * the truncation: commit them first. */
        rc = commit_inode(x.in);
        if (rc != 0) {
            fuse_reply_err(req, rc);
            return;
        }
        sa.set_size = 1;
        sa.size = (uint64_t)st->st_size;
    }
    if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
        sa.atime_how = NFS3_SET_TO_SERVER_TIME;
    } else if (to_set & FUSE_SET_ATTR_ATIME) {
        sa.atime_how = NFS3_SET_TO_CLIENT_TIME;
        sa.atime.seconds = (uint32_t)st->st_atim.tv_sec;
        sa.atime.nseconds = (uint32_t)st->st_atim.tv_nsec;
    }
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
        sa.mtime_how = NFS3_SET_TO_SERVER_TIME;
    } else if (to_set & FUSE_SET_ATTR_MTIME) {
        sa.mtime_how = NFS3_SET_TO_CLIENT_TIME;
        sa.mtime.seconds = (uint32_t)st->st_mtim.tv_sec;
        sa.mtime.nseconds = (uint32_t)st->st_mtim.tv_nsec;
    }
    wait_writes(x.in);
    rc = on_all("SETATTR", setattr_fn, &x, &lead, &done);
    if (rc != 0) {
        fuse_reply_err(req, fail("SETATTR", lead, rc));
        return;
    }
    if ((rc = inode_attr_bad(lead, "SETATTR", x.in, &x.a[lead])) != 0) {
        fuse_reply_err(req, rc);
        return;
    }
    to_stat(&x.a[lead], &out);
    fuse_reply_attr(req, &out, g.attr_timeout);
}

struct access_a {
    struct inode *in;
    uint32_t want, got;
};

static int access_fn(unsigned s, void *arg)
{
    struct access_a *x = arg;
    struct nfs3_fh fh;
    int rc = fh_on(x->in, s, &fh);

    return rc ? rc : nfs3_access(g.srv[s].nc, &fh, x->want, &x->got);
}

static void op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
    struct access_a x = {.in = ino_of(ino)};
    unsigned s;
    int rc;

    set_cred(req);
    if (mask & R_OK)
        x.want |= NFS3_ACCESS_READ;
    if (mask & W_OK)
        x.want |= NFS3_ACCESS_MODIFY;
    if (mask & X_OK)
        x.want |= NFS3_ACCESS_EXECUTE | NFS3_ACCESS_LOOKUP;
    if (x.want == 0) {
        fuse_reply_err(req, 0);
        return;
    }
    rc = on_reader("ACCESS", access_fn, &x, &s);
    if (rc != 0) {
        fuse_reply_err(req, fail("ACCESS", s, rc));
        return;
    }
    if (((mask & R_OK) && !(x.got & NFS3_ACCESS_READ)) || ((mask & W_OK) && !(x.got & NFS3_ACCESS_MODIFY)) ||
        ((mask & X_OK) && !(x.got & (NFS3_ACCESS_EXECUTE | NFS3_ACCESS_LOOKUP))))
        fuse_reply_err(req, EACCES);
    else
        fuse_reply_err(req, 0);
}

struct readlink_a {
    struct inode *in;
    char buf[NFS3_MAXPATHLEN + 1];
};

static int readlink_fn(unsigned s, void *arg)
{
    struct readlink_a *x = arg;
    struct nfs3_fh fh;
    int rc = fh_on(x->in, s, &fh);

    return rc ? rc : nfs3_readlink(g.srv[s].nc, &fh, x->buf, sizeof x->buf);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
    struct readlink_a x;
    unsigned s;
    int rc;

    x.in = ino_of(ino);
    set_cred(req);
    rc = on_reader("READLINK", readlink_fn, &x, &s);
    if (rc != 0)
        fuse_reply_err(req, fail("READLINK", s, rc));
    else
        fuse_reply_readlink(req, x.buf);
}

/* Everything that makes a new name: CREATE, MKDIR, SYMLINK, MKNOD. */
enum mk_kind { MK_CREATE, MK_MKDIR, MK_SYMLINK, MK_MKNOD };

struct mk_a {
    enum mk_kind kind;
    struct inode *dir;
    const char *name;
    struct nfs3_sattr sa;
    uint32_t how;                          /* CREATE */
    uint8_t verf[NFS3_CREATEVERFSIZE];     /* CREATE EXCLUSIVE: the same on every server */
    const char *target;                    /* SYMLINK */
    uint32_t type, spec1, spec2;           /* MKNOD */
    struct nfs3_fh fh[MAX_SRV];
    struct nfs3_fattr a[MAX_SRV];
};

static int mk_fn(unsigned s, void *arg)
{
    struct mk_a *x = arg;
    struct nfs3_clnt *nc = g.srv[s].nc;
    struct nfs3_fh dir;
    int rc = fh_on(x->dir, s, &dir);

    if (rc != 0)
        return rc;
    switch (x->kind) {
    case MK_CREATE:
        return nfs3_create_how(nc, &dir, x->name, x->how, &x->sa, x->how == NFS3_CREATE_EXCLUSIVE ? x->verf : NULL,
                               &x->fh[s], &x->a[s]);
    case MK_MKDIR:
        return nfs3_mkdir_attr(nc, &dir, x->name, &x->sa, &x->fh[s], &x->a[s]);
    case MK_SYMLINK:
        return nfs3_symlink(nc, &dir, x->name, x->target, NULL, &x->fh[s], &x->a[s]);
    case MK_MKNOD:
        return nfs3_mknod(nc, &dir, x->name, x->type, &x->sa, x->spec1, x->spec2, &x->fh[s], &x->a[s]);
    }
    return -EINVAL;
}

static const char *const mk_what[] = {"CREATE", "MKDIR", "SYMLINK", "MKNOD"};

/* Makes the name on every server; returns the new inode (one lookup
 * reference, every server's handle learnt) or NULL with *err set. */
static struct inode *mk_all(struct mk_a *x, unsigned *lead, int *err)
{
    uint32_t done;
    struct inode *in;
    int rc = on_all(mk_what[x->kind], mk_fn, x, lead, &done);

    if (rc != 0) {
        *err = fail(mk_what[x->kind], *lead, rc);
        return NULL;
    }
    in = inode_get(*lead, &x->fh[*lead], x->dir, x->name);
    if (!in) {
        *err = ENOMEM;
        return NULL;
    }
    for (unsigned s = 0; s < g.nsrv; s++)
        if (s != *lead && (done & (1u << s)))
            inode_learn(in, s, &x->fh[s]);
    return in;
}

/* The entry reply for a new inode from mk_all. */
static void reply_new(fuse_req_t req, struct inode *in, const struct nfs3_fattr *a)
{
    struct fuse_entry_param e;

    memset(&e, 0, sizeof e);
    e.ino = nodeid_of(in);
    e.attr_timeout = g.attr_timeout;
    e.entry_timeout = g.entry_timeout;
    to_stat(a, &e.attr);
    if (fuse_reply_entry(req, &e) != 0)
        inode_forget(in, 1);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    struct mk_a x;
    struct inode *in;
    unsigned lead;
    int err;

    if (!name_ok(req, name))
        return;
    set_cred(req);
    memset(&x, 0, sizeof x);
    x.dir = ino_of(parent);
    x.name = name;
    x.sa = mode_sattr(req, mode);
    if (S_ISREG(mode)) {
        x.kind = MK_CREATE;
        x.how = NFS3_CREATE_GUARDED;
    } else {
        x.kind = MK_MKNOD;
        x.spec1 = major(rdev);
        x.spec2 = minor(rdev);
        if (S_ISFIFO(mode))
            x.type = NFS3_FIFO;
        else if (S_ISSOCK(mode))
            x.type = NFS3_SOCK;
        else if (S_ISCHR(mode))
            x.type = NFS3_CHR;
        else if (S_ISBLK(mode))
            x.type = NFS3_BLK;
        else {
            fuse_reply_err(req, EINVAL);
            return;
        }
    }
    in = mk_all(&x, &lead, &err);
    if (!in)
        fuse_reply_err(req, err);
    else
        reply_new(req, in, &x.a[lead]);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    struct mk_a x;
    struct inode *in;
    unsigned lead;
    int err;

    if (!name_ok(req, name))
        return;
    set_cred(req);
    memset(&x, 0, sizeof x);
    x.kind = MK_MKDIR;
    x.dir = ino_of(parent);
    x.name = name;
    x.sa = mode_sattr(req, mode);
    in = mk_all(&x, &lead, &err);
    if (!in)
        fuse_reply_err(req, err);
    else
        reply_new(req, in, &x.a[lead]);
}

static void op_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name)
{
    struct mk_a x;
    struct inode *in;
    unsigned lead;
    int err;

    if (!name_ok(req, name))
        return;
    if (strlen(target) > NFS3_MAXPATHLEN) {
        fuse_reply_err(req, ENAMETOOLONG);
        return;
    }
    set_cred(req);
    memset(&x, 0, sizeof x);
    x.kind = MK_SYMLINK;
    x.dir = ino_of(parent);
    x.name = name;
    x.target = target;
    in = mk_all(&x, &lead, &err);
    if (!in)
        fuse_reply_err(req, err);
    else
        reply_new(req, in, &x.a[lead]);
}

struct rm_a {
    struct inode *dir, *todir;
    const char *name, *toname;
    int kind; /* 0 REMOVE, 1 RMDIR, 2 RENAME */
};

static int rm_fn(unsigned s, void *arg)
{
    struct rm_a *x = arg;
    struct nfs3_fh dir, todir;
    int rc = fh_on(x->dir, s, &dir);

    if (rc == 0 && x->kind == 2)
        rc = fh_on(x->todir, s, &todir);
    if (rc != 0)
        return rc;
    if (x->kind == 0)
        return nfs3_remove(g.srv[s].nc, &dir, x->name);
    if (x->kind == 1)
        return nfs3_rmdir(g.srv[s].nc, &dir, x->name);
    return nfs3_rename(g.srv[s].nc, &dir, x->name, &todir, x->toname);
}

static void remove_common(fuse_req_t req, fuse_ino_t parent, const char *name, int kind)
{
    static const char *const what[] = {"REMOVE", "RMDIR"};
    struct rm_a x = {.dir = ino_of(parent), .name = name, .kind = kind};
    unsigned lead;
    uint32_t done;
    int rc;

    if (!name_ok(req, name))
        return;
    set_cred(req);
    rc = on_all(what[kind], rm_fn, &x, &lead, &done);
    if (rc == 0) {
        /* The name is gone: an open file's handles stay, its path does not. */
        struct inode *gone;
        pthread_mutex_lock(&g.tab_mu);
        gone = inode_at_locked(x.dir, name);
        if (gone)
            inode_set_path_locked(gone, NULL, NULL);
        pthread_mutex_unlock(&g.tab_mu);
    }
    fuse_reply_err(req, rc ? fail(what[kind], lead, rc) : 0);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    remove_common(req, parent, name, 0);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    remove_common(req, parent, name, 1);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
    struct rm_a x = {.dir = ino_of(parent), .name = name, .todir = ino_of(newparent), .toname = newname, .kind = 2};
    unsigned lead;
    uint32_t done;
    int rc;

    if (!name_ok(req, name) || !name_ok(req, newname))
        return;
    if (flags != 0) { /* RENAME_NOREPLACE / EXCHANGE: NFSv3 has neither */
        fuse_reply_err(req, EINVAL);
        return;
    }
    set_cred(req);
    rc = on_all("RENAME", rm_fn, &x, &lead, &done);
    if (rc == 0) {
        /* Paths follow: the replaced object has none, the moved one the
         * new name. */
        struct inode *moved, *replaced;
        pthread_mutex_lock(&g.tab_mu);
        moved = inode_at_locked(x.dir, name);
        replaced = inode_at_locked(x.todir, newname);
        if (replaced && replaced != moved)
            inode_set_path_locked(replaced, NULL, NULL);
        if (moved)
            inode_set_path_locked(moved, x.todir, newname);
        pthread_mutex_unlock(&g.tab_mu);
    }
    fuse_reply_err(req, rc ? fail("RENAME", lead, rc) : 0);
}

struct link_a {
    struct inode *in, *dir;
    const char *name;
    struct nfs3_fattr a[MAX_SRV];
};

static int link_fn(unsigned s, void *arg)
{
    struct link_a *x = arg;
    struct nfs3_fh fh, dir;
    int rc = fh_on(x->in, s, &fh);

    if (rc == 0)
        rc = fh_on(x->dir, s, &dir);
    return rc ? rc : nfs3_link(g.srv[s].nc, &fh, &dir, x->name, &x->a[s]);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    struct link_a x = {.in = ino_of(ino), .dir = ino_of(newparent), .name = newname};
    struct nfs3_fh fh;
    unsigned lead;
    uint32_t done;
    int rc;

    if (!name_ok(req, newname))
        return;
    set_cred(req);
    rc = on_all("LINK", link_fn, &x, &lead, &done);
    if (rc == 0)
        rc = fh_on(x.in, lead, &fh);
    if (rc != 0) {
        fuse_reply_err(req, fail("LINK", lead, rc));
        return;
    }
    reply_entry(req, lead, &fh, &x.a[lead], x.dir, newname);
}

/* Close-to-open: the attributes are fetched at every open; the kernel's
 * cached pages are kept only when mtime and size did not change. */
static int revalidate(struct inode *in, struct fuse_file_info *fi)
{
    struct attr_a x = {.in = in};
    struct nfs3_fattr *a;
    unsigned s;
    int rc;

    wait_writes(in);
    rc = on_reader("GETATTR (open)", getattr_fn, &x, &s);
    if (rc != 0)
        return fail("GETATTR (open)", s, rc);
    a = &x.a[s];
    if ((rc = inode_attr_bad(s, "GETATTR (open)", in, a)) != 0)
        return rc;
    pthread_mutex_lock(&in->mu);
    fi->keep_cache = in->have_seen && in->seen_size == a->size && in->seen_mtime.seconds == a->mtime.seconds &&
                     in->seen_mtime.nseconds == a->mtime.nseconds;
    in->have_seen = 1;
    in->seen_size = a->size;
    in->seen_mtime = a->mtime;
    pthread_mutex_unlock(&in->mu);
    return 0;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct inode *in = ino_of(ino);
    int err;

    set_cred(req);
    if (fi->flags & O_TRUNC) {
        struct nfs3_sattr sa;
        struct attr_a x = {.in = in, .sa = &sa};
        unsigned lead;
        uint32_t done;
        int rc;
        memset(&sa, 0, sizeof sa);
        sa.set_size = 1;
        err = commit_inode(in);
        rc = err ? 0 : on_all("SETATTR (O_TRUNC)", setattr_fn, &x, &lead, &done);
        if (rc != 0)
            err = fail("SETATTR (O_TRUNC)", lead, rc);
        if (err) {
            fuse_reply_err(req, err);
            return;
        }
    }
    err = revalidate(in, fi);
    if (err) {
        fuse_reply_err(req, err);
        return;
    }
    fi->fh = 0;
    fuse_reply_open(req, fi);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi)
{
    struct mk_a x;
    struct fuse_entry_param e;
    struct inode *in;
    unsigned lead;
    int err;

    if (!name_ok(req, name))
        return;
    set_cred(req);
    memset(&x, 0, sizeof x);
    x.kind = MK_CREATE;
    x.dir = ino_of(parent);
    x.name = name;
    x.sa = mode_sattr(req, mode);
    if (fi->flags & O_EXCL) {
        /* EXCLUSIVE with a fresh verifier: a retransmitted CREATE after a
         * lost reply still succeeds exactly once. */
        x.how = NFS3_CREATE_EXCLUSIVE;
        if (RAND_bytes(x.verf, sizeof x.verf) != 1) {
            fuse_reply_err(req, EIO);
            return;
        }
    } else {
        x.how = NFS3_CREATE_UNCHECKED;
        if (fi->flags & O_TRUNC) {
            x.sa.set_size = 1;
            x.sa.size = 0;
        }
    }
    in = mk_all(&x, &lead, &err);
    if (!in) {
        fuse_reply_err(req, err);
        return;
    }
    pthread_mutex_lock(&in->mu);
    in->have_seen = 1;
    in->seen_size = x.a[lead].size;
    in->seen_mtime = x.a[lead].mtime;
    pthread_mutex_unlock(&in->mu);
    memset(&e, 0, sizeof e);
    e.ino = nodeid_of(in);
    e.attr_timeout = g.attr_timeout;
    e.entry_timeout = g.entry_timeout;
    to_stat(&x.a[lead], &e.attr);
    fi->fh = 0;
    if (fuse_reply_create(req, &e, fi) != 0)
        inode_forget(in, 1);
}

/* READ: the request cut into rsize calls, all in flight at once. */
struct rd_part {
    uint64_t off;
    uint32_t len;
    int done, status, eof;
    struct mb_chain data;
};

struct rd_req {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned pending;
};

struct rd_arg {
    struct rd_req *rq;
    struct rd_part *part;
};

static void rd_cb(struct nfs3_clnt *nc, int status, struct nfs3_read_res *res, void *arg)
{
    struct rd_arg *ra = arg;

    (void)nc;
    pthread_mutex_lock(&ra->rq->mu);
    ra->part->status = status;
    if (status == 0) {
        mb_chain_concat(&ra->part->data, &res->data);
        ra->part->eof = res->eof;
    }
    ra->part->done = 1;
    ra->rq->pending--;
    pthread_cond_broadcast(&ra->rq->cv);
    pthread_mutex_unlock(&ra->rq->mu);
}

/* Reads [off, off + size) of in from server s into all (by reference to the
 * replies' pages). Returns a status; a short result is the end of the file. */
static int read_from(unsigned s, struct inode *in, size_t size, off_t off, struct mb_chain *all)
{
    struct rd_part parts[MAX_IO / 4096];
    struct rd_arg args[MAX_IO / 4096];
    struct rd_req rq;
    struct nfs3_clnt *nc = g.srv[s].nc;
    struct nfs3_fh fh;
    unsigned n = 0, i;
    int ret;

    ret = fh_on(in, s, &fh);
    if (ret != 0)
        return ret;
    memset(&rq, 0, sizeof rq);
    pthread_mutex_init(&rq.mu, NULL);
    pthread_cond_init(&rq.cv, NULL);
    for (uint64_t o = 0; o < size && n < sizeof parts / sizeof parts[0]; n++) {
        uint32_t len = (uint32_t)(size - o < g.rsize ? size - o : g.rsize);
        memset(&parts[n], 0, sizeof parts[n]);
        mb_chain_init(&parts[n].data);
        parts[n].off = (uint64_t)off + o;
        parts[n].len = len;
        o += len;
    }
    pthread_mutex_lock(&rq.mu);
    rq.pending = n;
    pthread_mutex_unlock(&rq.mu);
    for (i = 0; i < n; i++) {
        int rc;
        args[i].rq = &rq;
        args[i].part = &parts[i];
        rc = nfs3_read_async(nc, &fh, parts[i].off, parts[i].len, rd_cb, &args[i]);
        if (rc < 0) {
            pthread_mutex_lock(&rq.mu);
            parts[i].done = 1;
            parts[i].status = rc;
            rq.pending--;
            pthread_mutex_unlock(&rq.mu);
        }
    }
    pthread_mutex_lock(&rq.mu);
    while (rq.pending > 0)
        pthread_cond_wait(&rq.cv, &rq.mu); /* each READ ends: its callback always runs */
    pthread_mutex_unlock(&rq.mu);
    /* In file order; a short part that is not at the end of the file is
     * completed with more READs (bounded: each must make progress). */
    ret = 0;
    for (i = 0; i < n && ret == 0; i++) {
        struct rd_part *p = &parts[i];
        int short_part;

        ret = p->status;
        while (ret == 0 && p->data.len < p->len && !p->eof) {
            size_t before = p->data.len;
            ret = nfs3_read(nc, &fh, p->off + before, p->len - (uint32_t)before, &p->data, &p->eof);
            if (ret == 0 && p->data.len == before)
                break; /* no progress: treat as the end */
        }
        if (ret != 0)
            break;
        short_part = p->data.len < p->len;
        mb_chain_concat(all, &p->data);
        if (short_part)
            break; /* the file ends here */
    }
    for (i = 0; i < n; i++)
        mb_chain_free(&parts[i].data);
    pthread_mutex_destroy(&rq.mu);
    pthread_cond_destroy(&rq.cv);
    return ret;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    struct inode *in = ino_of(ino);
    struct mb_chain all = MB_CHAIN_INIT;
    int s, rc;

    (void)fi;
    set_cred(req);
    wait_writes(in);
    if (size > MAX_IO)
        size = MAX_IO;
    /* From the first healthy server; one that does not answer is given up
     * when another is healthy (the primary of a soft mount with mirrors). */
    for (;;) {
        s = reader();
        if (s < 0) {
            rc = -EIO;
            s = 0;
            break;
        }
        mb_chain_free(&all);
        rc = read_from((unsigned)s, in, size, off, &all);
        if (!(server_trouble(rc) && others_healthy((unsigned)s)))
            break;
        srv_fail((unsigned)s, "READ", rc);
    }
    if (rc != 0) {
        fuse_reply_err(req, fail("READ", (unsigned)s, rc));
    } else {
        int niov = mb_chain_iovec_count(&all, 0, all.len);
        struct iovec *iov = calloc((size_t)(niov > 0 ? niov : 1), sizeof *iov);
        if (!iov) {
            fuse_reply_err(req, ENOMEM);
        } else {
            niov = mb_chain_to_iovec(&all, 0, all.len, iov, niov);
            fuse_reply_iov(req, iov, niov); /* straight from the reply's pages */
            free(iov);
        }
    }
    mb_chain_free(&all);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)fi;
    set_cred(req);
    fuse_reply_err(req, commit_inode(ino_of(ino)));
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    (void)datasync;
    (void)fi;
    set_cred(req);
    fuse_reply_err(req, commit_inode(ino_of(ino)));
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    int err;

    (void)fi;
    set_cred(req);
    err = commit_inode(ino_of(ino)); /* normally flush did it already */
    if (err)
        fprintf(stderr, PROG ": release: data not committed: %s\n", strerror(err));
    fuse_reply_err(req, 0);
}

/* Directories: the whole listing at opendir (READDIRPLUS, paged), served
 * from memory by offset, so that every name comes exactly once. */
struct dent {
    char *name;
    int has_obj;
    struct nfs3_fh fh;
    struct nfs3_fattr attr;
};

struct dirlist {
    struct inode *dir;
    unsigned srv;   /* the server the handles are from */
    struct dent *v;
    size_t n, cap;
};

static int collect(void *arg, const struct nfs3_dirent *e)
{
    struct dirlist *d = arg;

    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 64;
        struct dent *v = realloc(d->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        d->v = v;
        d->cap = cap;
    }
    memset(&d->v[d->n], 0, sizeof d->v[d->n]);
    d->v[d->n].name = strdup(e->name);
    if (!d->v[d->n].name)
        return -ENOMEM;
    d->v[d->n].has_obj = e->fh_present && e->attr.present;
    d->v[d->n].fh = e->fh;
    d->v[d->n].attr = e->attr.attr;
    if (e->attr.present && strcmp(e->name, ".") != 0 && strcmp(e->name, "..") != 0 &&
        attr_bad(d->srv, "READDIRPLUS entry", e->name, &e->attr.attr, 1)) {
        /* The name only: the kernel LOOKUPs it when it needs it. */
        d->v[d->n].has_obj = 0;
        memset(&d->v[d->n].attr, 0, sizeof d->v[d->n].attr);
    }
    if (!d->v[d->n].has_obj) /* the file id at least, for d_ino */
        d->v[d->n].attr.fileid = e->fileid;
    d->n++;
    return 0;
}

static void dirlist_clear(struct dirlist *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->v[i].name);
    d->n = 0;
}

static void dirlist_free(struct dirlist *d)
{
    dirlist_clear(d);
    free(d->v);
    free(d);
}

static int readdir_fn(unsigned s, void *arg)
{
    struct dirlist *d = arg;
    struct nfs3_fh fh;
    int rc = fh_on(d->dir, s, &fh);

    d->srv = s; /* for collect's log lines */
    dirlist_clear(d); /* a server given up half way may have left entries */
    return rc ? rc : nfs3_readdirplus(g.srv[s].nc, &fh, 32768, 262144, collect, d);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct dirlist *d = calloc(1, sizeof *d);
    int rc;

    if (!d) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    set_cred(req);
    d->dir = ino_of(ino);
    rc = on_reader("READDIRPLUS", readdir_fn, d, &d->srv);
    if (rc != 0) {
        fuse_reply_err(req, fail("READDIRPLUS", d->srv, rc));
        dirlist_free(d);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)d;
    fuse_reply_open(req, fi);
}

static void readdir_common(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi, int plus)
{
    struct dirlist *d = (struct dirlist *)(uintptr_t)fi->fh;
    char *buf = malloc(size);
    size_t used = 0;

    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    for (size_t i = (size_t)off; i < d->n; i++) {
        struct dent *e = &d->v[i];
        int dot = strcmp(e->name, ".") == 0 || strcmp(e->name, "..") == 0;
        size_t need;

        if (plus) {
            struct fuse_entry_param ep;
            struct inode *in = NULL;
            memset(&ep, 0, sizeof ep);
            to_stat(&e->attr, &ep.attr);
            if (e->has_obj && !dot) {
                in = inode_get(d->srv, &e->fh, d->dir, e->name);
                if (in) {
                    ep.ino = nodeid_of(in);
                    ep.attr_timeout = g.attr_timeout;
                    ep.entry_timeout = g.entry_timeout;
                }
            }
            need = fuse_add_direntry_plus(req, buf + used, size - used, e->name, &ep, (off_t)i + 1);
            if (need > size - used) {
                if (in)
                    inode_forget(in, 1); /* not passed to the kernel */
                break;
            }
        } else {
            struct stat st;
            to_stat(&e->attr, &st);
            need = fuse_add_direntry(req, buf + used, size - used, e->name, &st, (off_t)i + 1);
            if (need > size - used)
                break;
        }
        used += need;
    }
    fuse_reply_buf(req, buf, used);
    free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)ino;
    readdir_common(req, size, off, fi, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)ino;
    readdir_common(req, size, off, fi, 1);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    dirlist_free((struct dirlist *)(uintptr_t)fi->fh);
    fuse_reply_err(req, 0);
}

struct fsstat_a {
    struct nfs3_fsstat_res r;
};

static int fsstat_fn(unsigned s, void *arg)
{
    struct fsstat_a *x = arg;

    return nfs3_fsstat(g.srv[s].nc, &g.srv[s].root, &x->r);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct fsstat_a x;
    struct statvfs sv;
    unsigned s;
    int rc;

    (void)ino;
    set_cred(req);
    rc = on_reader("FSSTAT", fsstat_fn, &x, &s);
    if (rc != 0) {
        fuse_reply_err(req, fail("FSSTAT", s, rc));
        return;
    }
    memset(&sv, 0, sizeof sv);
    sv.f_bsize = 4096;
    sv.f_frsize = 4096;
    sv.f_blocks = x.r.tbytes / 4096;
    sv.f_bfree = x.r.fbytes / 4096;
    sv.f_bavail = x.r.abytes / 4096;
    sv.f_files = x.r.tfiles;
    sv.f_ffree = x.r.ffiles;
    sv.f_favail = x.r.afiles;
    sv.f_namemax = NFS3_MAXNAMLEN;
    fuse_reply_statfs(req, &sv);
}

const struct fuse_lowlevel_ops ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .access = op_access,
    .readlink = op_readlink,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .symlink = op_symlink,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .rename = op_rename,
    .link = op_link,
    .open = op_open,
    .create = op_create,
    .read = op_read,
    .write_buf = op_write_buf,
    .flush = op_flush,
    .fsync = op_fsync,
    .release = op_release,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .releasedir = op_releasedir,
    .statfs = op_statfs,
    .getxattr = op_getxattr,
};
