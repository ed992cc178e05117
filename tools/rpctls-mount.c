/*
 * rpctls-mount - mount an NFSv3 export over RPC-with-TLS (RFC 9289) with
 * FUSE (libfuse3 low-level API, multi-threaded). See --help and
 * docs/mount.md.
 *
 * Threads: FUSE worker threads handle requests; one NFS client in threaded
 * mode (nfs3_clnt_start_thread) owns the connection on its loop thread, and
 * the workers hand it calls through its queue. Every call carries the AUTH_SYS
 * credential of the process that made the request (fuse_req_ctx and
 * fuse_req_getgroups).
 *
 * Inodes: a FUSE nodeid is the address of a struct inode, found by file
 * handle in a hash table so that one NFS object has one nodeid; lookup counts
 * follow the FUSE protocol (every entry reply adds one, forget subtracts).
 *
 * Writes: each write() is copied once from the FUSE buffer into pool pages,
 * cut into wsize pieces and sent as WRITE UNSTABLE without waiting (at most
 * --depth in flight per inode); the pieces stay referenced until a COMMIT
 * answers with the verifier of their WRITE replies. flush (every close),
 * fsync and release COMMIT; a piece whose verifier changed (a server
 * restart) or that failed or was short is written again FILE_SYNC from the
 * kept pages. getattr, read and truncate wait for the inode's WRITEs in
 * flight first, so this client sees its own writes.
 */
#define _GNU_SOURCE
#define FUSE_USE_VERSION 34
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include <fuse_lowlevel.h>
#include <openssl/rand.h>

#include "rpctls/nfs3_clnt.h"

#define PROG "rpctls-mount"
#define MAX_IO (1u << 20)           /* FUSE max_read / max_write */
#define MAX_DIRTY (64ull << 20)     /* uncommitted bytes per inode before a COMMIT */
#define HASH_BUCKETS 4096

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " [options] nfs://HOST[:PORT]/EXPORT[/SUBDIR] MOUNTPOINT\n"
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
            "  --attr-timeout S     seconds the kernel caches attributes (default 1)\n"
            "  --entry-timeout S    seconds the kernel caches names (default 1)\n"
            "  --hard               retry for ever while the server is unreachable (default)\n"
            "  --soft               fail a call with EIO after --retrans retransmissions\n"
            "  --timeo MS           wait per RPC attempt (default 10000 hard, 3000 soft)\n"
            "  --retrans N          retransmissions before a soft call fails (default 3)\n"
            "  --ro                 read-only mount\n"
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

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die_usage(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, PROG ": ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(" PROG " --help for usage)\n");
    exit(2);
}

/* ---- state -------------------------------------------------------------------- */

/* One WRITE piece kept until COMMIT confirms it. */
struct wpiece {
    struct wpiece *next;
    struct inode *ino;
    uint64_t off;
    uint32_t len;
    struct mb_chain data;   /* a reference to the pages sent */
    int answered, ok;       /* ok: the whole piece written; verf valid */
    uint8_t verf[NFS3_WRITEVERFSIZE];
};

struct inode {
    struct inode *hnext;
    uint64_t nlookup;
    struct nfs3_fh fh;
    pthread_mutex_t mu;     /* the write-behind state below */
    pthread_cond_t cv;
    unsigned inflight;
    int werr;               /* first deferred write error (errno) */
    struct wpiece *dirty, *dirty_tail;
    uint64_t dirty_bytes;
    int have_seen;          /* close-to-open: attributes at the last open */
    struct nfs3_time seen_mtime;
    uint64_t seen_size;
};

static struct {
    struct nfs3_clnt *nc;
    struct krpc_loop *loop;
    struct inode root;
    pthread_mutex_t tab_mu;
    struct inode *tab[HASH_BUCKETS];
    uint32_t rsize, wsize;
    unsigned depth;
    double attr_timeout, entry_timeout;
    char machine[KRPC_AUTH_SYS_MAX_MACHINE + 1];
} g;

/* ---- NFS status -> errno, as a kernel NFS client returns them ----------------- */

static const struct {
    uint32_t nfs;
    int err;
} errtab[] = {
    {NFS3ERR_PERM, EPERM},       {NFS3ERR_NOENT, ENOENT},     {NFS3ERR_IO, EIO},
    {NFS3ERR_NXIO, ENXIO},       {NFS3ERR_ACCES, EACCES},     {NFS3ERR_EXIST, EEXIST},
    {NFS3ERR_XDEV, EXDEV},       {NFS3ERR_NODEV, ENODEV},     {NFS3ERR_NOTDIR, ENOTDIR},
    {NFS3ERR_ISDIR, EISDIR},     {NFS3ERR_INVAL, EINVAL},     {NFS3ERR_FBIG, EFBIG},
    {NFS3ERR_NOSPC, ENOSPC},     {NFS3ERR_ROFS, EROFS},       {NFS3ERR_MLINK, EMLINK},
    {NFS3ERR_NAMETOOLONG, ENAMETOOLONG}, {NFS3ERR_NOTEMPTY, ENOTEMPTY}, {NFS3ERR_DQUOT, EDQUOT},
    {NFS3ERR_STALE, ESTALE},     {NFS3ERR_REMOTE, EREMOTE},
    /* Linux returns kernel-internal codes for these (EBADHANDLE, ENOTSUPP,
     * ...), which user space cannot name; the nearest user-space errno: */
    {NFS3ERR_BADHANDLE, ESTALE}, {NFS3ERR_NOT_SYNC, EIO},     {NFS3ERR_BAD_COOKIE, EIO},
    {NFS3ERR_NOTSUPP, EOPNOTSUPP}, {NFS3ERR_TOOSMALL, EIO},   {NFS3ERR_SERVERFAULT, EREMOTEIO},
    {NFS3ERR_BADTYPE, EINVAL},   {NFS3ERR_JUKEBOX, EAGAIN},
};

/* status: 0, an NFS status (> 0) or a negative errno from the RPC layer. */
static int to_errno(int status)
{
    if (status == 0)
        return 0;
    if (status > 0) {
        for (size_t i = 0; i < sizeof errtab / sizeof errtab[0]; i++)
            if (errtab[i].nfs == (uint32_t)status)
                return errtab[i].err;
        return EIO;
    }
    switch (-status) {
    case EACCES:       /* AUTH_ERROR */
    case ENOMEM:
    case ENAMETOOLONG:
    case EINVAL:
        return -status;
    default:
        return EIO;    /* timeouts (soft), lost server, undecodable replies */
    }
}

static int fail(const char *what, int status)
{
    char buf[128];
    int e = to_errno(status);

    /* Expected answers (ENOENT on lookup, EEXIST ...) are not worth a line;
     * what looks like trouble is. */
    if (status < 0 || e == EIO || e == EREMOTEIO || e == ESTALE)
        fprintf(stderr, PROG ": %s: %s (%s)\n", what, nfs3_status_str(status, buf, sizeof buf),
                nfs3_clnt_error(g.nc));
    return e;
}

/* ---- credentials ------------------------------------------------------------ */

/* The supplementary groups of process pid, from the "Groups:" line of
 * /proc/PID/status, at most max. Returns how many, or -1. libfuse's own
 * fuse_req_getgroups (3.14, Debian 12) searches its read buffer with
 * strstr without terminating it, an over-read that AddressSanitizer
 * reports; this reads the same file safely. */
static int proc_groups(pid_t pid, gid_t *out, int max)
{
    char path[64], buf[8192];
    const char *p;
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
    p = strstr(buf, "\nGroups:");
    if (p == NULL)
        return -1;
    p += strlen("\nGroups:");
    while (n < max) {
        char *end;
        unsigned long v;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p < '0' || *p > '9')
            break;
        v = strtoul(p, &end, 10);
        out[n++] = (gid_t)v;
        p = end;
    }
    return n;
}

static void set_cred(fuse_req_t req)
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

/* ---- inode table ----------------------------------------------------------- */

static unsigned fh_hash(const struct nfs3_fh *fh)
{
    uint32_t h = 2166136261u;

    for (uint32_t i = 0; i < fh->len; i++)
        h = (h ^ fh->data[i]) * 16777619u;
    return h % HASH_BUCKETS;
}

static int fh_eq(const struct nfs3_fh *a, const struct nfs3_fh *b)
{
    return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

static void inode_init(struct inode *in, const struct nfs3_fh *fh)
{
    memset(in, 0, sizeof *in);
    in->fh = *fh;
    pthread_mutex_init(&in->mu, NULL);
    pthread_cond_init(&in->cv, NULL);
}

static struct inode *ino_of(fuse_ino_t n)
{
    return n == FUSE_ROOT_ID ? &g.root : (struct inode *)(uintptr_t)n;
}

static fuse_ino_t nodeid_of(struct inode *in)
{
    return in == &g.root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)in;
}

/* The inode of fh, made when new; one more lookup reference. */
static struct inode *inode_get(const struct nfs3_fh *fh)
{
    unsigned b = fh_hash(fh);
    struct inode *in;

    if (fh_eq(fh, &g.root.fh))
        return &g.root;
    pthread_mutex_lock(&g.tab_mu);
    for (in = g.tab[b]; in; in = in->hnext)
        if (fh_eq(&in->fh, fh))
            break;
    if (!in) {
        in = malloc(sizeof *in);
        if (in) {
            inode_init(in, fh);
            in->hnext = g.tab[b];
            g.tab[b] = in;
        }
    }
    if (in)
        in->nlookup++;
    pthread_mutex_unlock(&g.tab_mu);
    return in;
}

static void inode_forget(struct inode *in, uint64_t n)
{
    unsigned b;

    if (in == &g.root)
        return;
    pthread_mutex_lock(&g.tab_mu);
    in->nlookup = n >= in->nlookup ? 0 : in->nlookup - n;
    if (in->nlookup > 0) {
        pthread_mutex_unlock(&g.tab_mu);
        return;
    }
    b = fh_hash(&in->fh);
    for (struct inode **pp = &g.tab[b]; *pp; pp = &(*pp)->hnext)
        if (*pp == in) {
            *pp = in->hnext;
            break;
        }
    pthread_mutex_unlock(&g.tab_mu);
    /* The kernel forgets an inode only after its last release, when
     * nothing is dirty or in flight. */
    pthread_mutex_destroy(&in->mu);
    pthread_cond_destroy(&in->cv);
    free(in);
}

/* ---- attributes ---------------------------------------------------------------- */

static void to_stat(const struct nfs3_fattr *a, struct stat *st)
{
    static const mode_t types[] = {[NFS3_REG] = S_IFREG,  [NFS3_DIR] = S_IFDIR,  [NFS3_BLK] = S_IFBLK,
                                   [NFS3_CHR] = S_IFCHR,  [NFS3_LNK] = S_IFLNK,  [NFS3_SOCK] = S_IFSOCK,
                                   [NFS3_FIFO] = S_IFIFO};

    memset(st, 0, sizeof *st);
    st->st_ino = (ino_t)a->fileid;
    st->st_mode = (a->type < sizeof types / sizeof types[0] && types[a->type] ? types[a->type] : S_IFREG) |
                  (a->mode & 07777);
    st->st_nlink = a->nlink;
    st->st_uid = a->uid;
    st->st_gid = a->gid;
    st->st_size = (off_t)(a->size > INT64_MAX ? INT64_MAX : a->size);
    st->st_blksize = 4096;
    st->st_blocks = (blkcnt_t)((a->used > INT64_MAX ? INT64_MAX : a->used) / 512);
    st->st_rdev = makedev(a->rdev1, a->rdev2);
    st->st_atim.tv_sec = a->atime.seconds;
    st->st_atim.tv_nsec = a->atime.nseconds % 1000000000u;
    st->st_mtim.tv_sec = a->mtime.seconds;
    st->st_mtim.tv_nsec = a->mtime.nseconds % 1000000000u;
    st->st_ctim.tv_sec = a->ctime.seconds;
    st->st_ctim.tv_nsec = a->ctime.nseconds % 1000000000u;
}

static int reply_entry(fuse_req_t req, const struct nfs3_fh *fh, const struct nfs3_fattr *a)
{
    struct fuse_entry_param e;
    struct inode *in = inode_get(fh);

    if (!in)
        return fuse_reply_err(req, ENOMEM);
    memset(&e, 0, sizeof e);
    e.ino = nodeid_of(in);
    e.attr_timeout = g.attr_timeout;
    e.entry_timeout = g.entry_timeout;
    to_stat(a, &e.attr);
    if (fuse_reply_entry(req, &e) != 0)
        inode_forget(in, 1); /* the kernel did not take it */
    return 0;
}

static int name_ok(fuse_req_t req, const char *name)
{
    if (strlen(name) > NFS3_MAXNAMLEN) {
        fuse_reply_err(req, ENAMETOOLONG);
        return 0;
    }
    return 1;
}

static struct nfs3_sattr mode_sattr(fuse_req_t req, mode_t mode)
{
    struct nfs3_sattr sa;
    const struct fuse_ctx *ctx = fuse_req_ctx(req);

    memset(&sa, 0, sizeof sa);
    sa.set_mode = 1;
    sa.mode = (uint32_t)(mode & ~ctx->umask & 07777);
    return sa;
}

/* ---- write-behind ------------------------------------------------------------ */

static void wpiece_cb(struct nfs3_clnt *nc, int status, const struct nfs3_write_res *res, void *arg)
{
    struct wpiece *p = arg;
    struct inode *in = p->ino;

    (void)nc;
    pthread_mutex_lock(&in->mu);
    p->answered = 1;
    if (status == 0 && res->count == p->len) {
        p->ok = 1;
        memcpy(p->verf, res->verf, sizeof p->verf);
    } else if (status != 0 && status != -ECANCELED) {
        /* Kept for the commit, which writes it again (FILE_SYNC); an error
         * that persists is reported there. */
        fprintf(stderr, PROG ": WRITE of %u bytes at %llu: %d (%s)\n", p->len, (unsigned long long)p->off, status,
                nfs3_clnt_error(g.nc));
    }
    in->inflight--;
    pthread_cond_broadcast(&in->cv);
    pthread_mutex_unlock(&in->mu);
}

static void wait_writes(struct inode *in)
{
    pthread_mutex_lock(&in->mu);
    while (in->inflight > 0)
        pthread_cond_wait(&in->cv, &in->mu); /* every WRITE ends: RPC timeouts / the server's answer */
    pthread_mutex_unlock(&in->mu);
}

/* Waits for the WRITEs in flight, COMMITs, and writes again (FILE_SYNC)
 * every piece that failed, was short, or whose verifier is not the
 * COMMIT's. Returns 0 or an errno (the first deferred error included). */
static int commit_inode(struct inode *in)
{
    struct wpiece *list;
    uint8_t verf[NFS3_WRITEVERFSIZE];
    int err, rc;

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
        return err;
    rc = nfs3_commit(g.nc, &in->fh, 0, 0, verf);
    if (rc != 0 && !err)
        err = fail("COMMIT", rc);
    for (struct wpiece *p = list, *next; p; p = next) {
        next = p->next;
        if (rc == 0 && (!p->ok || memcmp(p->verf, verf, sizeof verf) != 0)) {
            struct nfs3_write_res wr;
            struct mb_chain c = MB_CHAIN_INIT;
            int wrc = mb_chain_copy_ref(&c, &p->data, 0, p->data.len);
            if (wrc == 0)
                wrc = nfs3_write(g.nc, &in->fh, p->off, NFS3_FILE_SYNC, &c, &wr);
            mb_chain_free(&c);
            if (wrc == 0 && wr.count != p->len)
                wrc = NFS3ERR_IO;
            if (wrc != 0 && !err)
                err = fail("WRITE (resend)", wrc);
        }
        mb_chain_free(&p->data);
        free(p);
    }
    return err;
}

/* ---- operations ------------------------------------------------------------------ */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    conn->max_write = MAX_IO;
    conn->max_read = MAX_IO;
    conn->max_readahead = MAX_IO;
    if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
        conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
    conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE; /* close-to-open needs our own write-behind */
    conn->want &= ~(unsigned)(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS); /* local locks, no NLM */
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct nfs3_fh fh;
    struct nfs3_fattr a;
    int rc;

    if (!name_ok(req, name))
        return;
    set_cred(req);
    rc = nfs3_lookup(g.nc, &ino_of(parent)->fh, name, &fh, &a);
    if (rc != 0) {
        fuse_reply_err(req, fail("LOOKUP", rc));
        return;
    }
    reply_entry(req, &fh, &a);
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

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct inode *in = ino_of(ino);
    struct nfs3_fattr a;
    struct stat st;
    int rc;

    (void)fi;
    set_cred(req);
    wait_writes(in); /* the size and mtime include this client's writes */
    rc = nfs3_getattr(g.nc, &in->fh, &a);
    if (rc != 0) {
        fuse_reply_err(req, fail("GETATTR", rc));
        return;
    }
    to_stat(&a, &st);
    fuse_reply_attr(req, &st, g.attr_timeout);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *st, int to_set, struct fuse_file_info *fi)
{
    struct inode *in = ino_of(ino);
    struct nfs3_sattr sa;
    struct nfs3_fattr a;
    struct stat out;
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
        rc = commit_inode(in);
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
    wait_writes(in);
    rc = nfs3_setattr(g.nc, &in->fh, &sa, NULL, &a);
    if (rc != 0) {
        fuse_reply_err(req, fail("SETATTR", rc));
        return;
    }
    to_stat(&a, &out);
    fuse_reply_attr(req, &out, g.attr_timeout);
}

static void op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
    uint32_t want = 0, got = 0;
    int rc;

    set_cred(req);
    if (mask & R_OK)
        want |= NFS3_ACCESS_READ;
    if (mask & W_OK)
        want |= NFS3_ACCESS_MODIFY;
    if (mask & X_OK)
        want |= NFS3_ACCESS_EXECUTE | NFS3_ACCESS_LOOKUP;
    if (want == 0) {
        fuse_reply_err(req, 0);
        return;
    }
    rc = nfs3_access(g.nc, &ino_of(ino)->fh, want, &got);
    if (rc != 0) {
        fuse_reply_err(req, fail("ACCESS", rc));
        return;
    }
    if (((mask & R_OK) && !(got & NFS3_ACCESS_READ)) || ((mask & W_OK) && !(got & NFS3_ACCESS_MODIFY)) ||
        ((mask & X_OK) && !(got & (NFS3_ACCESS_EXECUTE | NFS3_ACCESS_LOOKUP))))
        fuse_reply_err(req, EACCES);
    else
        fuse_reply_err(req, 0);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
    char buf[NFS3_MAXPATHLEN + 1];
    int rc;

    set_cred(req);
    rc = nfs3_readlink(g.nc, &ino_of(ino)->fh, buf, sizeof buf);
    if (rc != 0)
        fuse_reply_err(req, fail("READLINK", rc));
    else
        fuse_reply_readlink(req, buf);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    struct nfs3_sattr sa;
    struct nfs3_fh fh;
    struct nfs3_fattr a;
    uint32_t type;
    int rc;

    if (!name_ok(req, name))
        return;
    set_cred(req);
    sa = mode_sattr(req, mode);
    if (S_ISREG(mode)) {
        rc = nfs3_create_how(g.nc, &ino_of(parent)->fh, name, NFS3_CREATE_GUARDED, &sa, NULL, &fh, &a);
    } else {
        if (S_ISFIFO(mode))
            type = NFS3_FIFO;
        else if (S_ISSOCK(mode))
            type = NFS3_SOCK;
        else if (S_ISCHR(mode))
            type = NFS3_CHR;
        else if (S_ISBLK(mode))
            type = NFS3_BLK;
        else {
            fuse_reply_err(req, EINVAL);
            return;
        }
        rc = nfs3_mknod(g.nc, &ino_of(parent)->fh, name, type, &sa, major(rdev), minor(rdev), &fh, &a);
    }
    if (rc != 0) {
        fuse_reply_err(req, fail("MKNOD", rc));
        return;
    }
    reply_entry(req, &fh, &a);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    struct nfs3_sattr sa;
    struct nfs3_fh fh;
    struct nfs3_fattr a;
    int rc;

    if (!name_ok(req, name))
        return;
    set_cred(req);
    sa = mode_sattr(req, mode);
    rc = nfs3_mkdir_attr(g.nc, &ino_of(parent)->fh, name, &sa, &fh, &a);
    if (rc != 0) {
        fuse_reply_err(req, fail("MKDIR", rc));
        return;
    }
    reply_entry(req, &fh, &a);
}

static void op_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name)
{
    struct nfs3_fh fh;
    struct nfs3_fattr a;
    int rc;

    if (!name_ok(req, name))
        return;
    if (strlen(target) > NFS3_MAXPATHLEN) {
        fuse_reply_err(req, ENAMETOOLONG);
        return;
    }
    set_cred(req);
    rc = nfs3_symlink(g.nc, &ino_of(parent)->fh, name, target, NULL, &fh, &a);
    if (rc != 0) {
        fuse_reply_err(req, fail("SYMLINK", rc));
        return;
    }
    reply_entry(req, &fh, &a);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    int rc;

    if (!name_ok(req, name))
        return;
    set_cred(req);
    rc = nfs3_remove(g.nc, &ino_of(parent)->fh, name);
    fuse_reply_err(req, rc ? fail("REMOVE", rc) : 0);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    int rc;

    if (!name_ok(req, name))
        return;
    set_cred(req);
    rc = nfs3_rmdir(g.nc, &ino_of(parent)->fh, name);
    fuse_reply_err(req, rc ? fail("RMDIR", rc) : 0);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
    int rc;

    if (!name_ok(req, name) || !name_ok(req, newname))
        return;
    if (flags != 0) { /* RENAME_NOREPLACE / EXCHANGE: NFSv3 has neither */
        fuse_reply_err(req, EINVAL);
        return;
    }
    set_cred(req);
    rc = nfs3_rename(g.nc, &ino_of(parent)->fh, name, &ino_of(newparent)->fh, newname);
    fuse_reply_err(req, rc ? fail("RENAME", rc) : 0);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    struct inode *in = ino_of(ino);
    struct nfs3_fattr a;
    int rc;

    if (!name_ok(req, newname))
        return;
    set_cred(req);
    rc = nfs3_link(g.nc, &in->fh, &ino_of(newparent)->fh, newname, &a);
    if (rc != 0) {
        fuse_reply_err(req, fail("LINK", rc));
        return;
    }
    reply_entry(req, &in->fh, &a);
}

/* Close-to-open: the attributes are fetched at every open; the kernel's
 * cached pages are kept only when mtime and size did not change. */
static int revalidate(struct inode *in, struct fuse_file_info *fi)
{
    struct nfs3_fattr a;
    int rc;

    wait_writes(in);
    rc = nfs3_getattr(g.nc, &in->fh, &a);
    if (rc != 0)
        return fail("GETATTR (open)", rc);
    pthread_mutex_lock(&in->mu);
    fi->keep_cache = in->have_seen && in->seen_size == a.size && in->seen_mtime.seconds == a.mtime.seconds &&
                     in->seen_mtime.nseconds == a.mtime.nseconds;
    in->have_seen = 1;
    in->seen_size = a.size;
    in->seen_mtime = a.mtime;
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
        int rc;
        memset(&sa, 0, sizeof sa);
        sa.set_size = 1;
        err = commit_inode(in);
        rc = err ? 0 : nfs3_setattr(g.nc, &in->fh, &sa, NULL, NULL);
        if (rc != 0)
            err = fail("SETATTR (O_TRUNC)", rc);
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
    struct nfs3_sattr sa;
    struct nfs3_fh fh;
    struct nfs3_fattr a;
    struct fuse_entry_param e;
    struct inode *in;
    int rc;

    if (!name_ok(req, name))
        return;
    set_cred(req);
    sa = mode_sattr(req, mode);
    if (fi->flags & O_EXCL) {
        /* EXCLUSIVE with a fresh verifier: a retransmitted CREATE after a
         * lost reply still succeeds exactly once. */
        uint8_t verf[NFS3_CREATEVERFSIZE];
        if (RAND_bytes(verf, sizeof verf) != 1) {
            fuse_reply_err(req, EIO);
            return;
        }
        rc = nfs3_create_how(g.nc, &ino_of(parent)->fh, name, NFS3_CREATE_EXCLUSIVE, &sa, verf, &fh, &a);
    } else {
        if (fi->flags & O_TRUNC) {
            sa.set_size = 1;
            sa.size = 0;
        }
        rc = nfs3_create_how(g.nc, &ino_of(parent)->fh, name, NFS3_CREATE_UNCHECKED, &sa, NULL, &fh, &a);
    }
    if (rc != 0) {
        fuse_reply_err(req, fail("CREATE", rc));
        return;
    }
    in = inode_get(&fh);
    if (!in) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    pthread_mutex_lock(&in->mu);
    in->have_seen = 1;
    in->seen_size = a.size;
    in->seen_mtime = a.mtime;
    pthread_mutex_unlock(&in->mu);
    memset(&e, 0, sizeof e);
    e.ino = nodeid_of(in);
    e.attr_timeout = g.attr_timeout;
    e.entry_timeout = g.entry_timeout;
    to_stat(&a, &e.attr);
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

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    struct inode *in = ino_of(ino);
    struct rd_part parts[MAX_IO / 4096];
    struct rd_arg args[MAX_IO / 4096];
    struct rd_req rq;
    struct mb_chain all = MB_CHAIN_INIT;
    unsigned n = 0, i;
    int err = 0, short_part;

    (void)fi;
    set_cred(req);
    wait_writes(in);
    if (size > MAX_IO)
        size = MAX_IO;
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
        rc = nfs3_read_async(g.nc, &in->fh, parts[i].off, parts[i].len, rd_cb, &args[i]);
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
    for (i = 0; i < n && !err; i++) {
        struct rd_part *p = &parts[i];
        if (p->status != 0) {
            err = fail("READ", p->status);
            break;
        }
        while (p->data.len < p->len && !p->eof) {
            size_t before = p->data.len;
            int rc = nfs3_read(g.nc, &in->fh, p->off + before, p->len - (uint32_t)before, &p->data, &p->eof);
            if (rc != 0) {
                err = fail("READ", rc);
                break;
            }
            if (p->data.len == before)
                break; /* no progress: treat as the end */
        }
        if (err)
            break;
        short_part = p->data.len < p->len;
        mb_chain_concat(&all, &p->data);
        if (short_part)
            break; /* the file ends here */
    }
    if (err) {
        fuse_reply_err(req, err);
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
    for (i = 0; i < n; i++)
        mb_chain_free(&parts[i].data);
    mb_chain_free(&all);
    pthread_mutex_destroy(&rq.mu);
    pthread_cond_destroy(&rq.cv);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    struct inode *in = ino_of(ino);
    struct mb_chain all = MB_CHAIN_INIT;
    uint64_t dirty;
    size_t done = 0;
    int err = 0;

    (void)fi;
    set_cred(req);
    pthread_mutex_lock(&in->mu);
    err = in->werr;
    dirty = in->dirty_bytes;
    pthread_mutex_unlock(&in->mu);
    if (!err && dirty >= MAX_DIRTY)
        err = commit_inode(in); /* bound the pages kept for resending */
    if (err) {
        fuse_reply_err(req, err);
        return;
    }
    /* The one copy: from the FUSE buffer into pool pages. From here on the
     * pages go by reference (the WRITE call, the kept piece). */
    if (mb_chain_append_pages_from_buf(&all, buf, size) != 0) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    while (done < size) {
        struct wpiece *p = calloc(1, sizeof *p);
        struct mb_chain piece = MB_CHAIN_INIT, rest = MB_CHAIN_INIT;
        uint32_t len = (uint32_t)(size - done < g.wsize ? size - done : g.wsize);
        int rc;

        if (!p) {
            err = ENOMEM;
            break;
        }
        if (len < all.len && mb_chain_split(&all, len, &rest) != 0) {
            free(p);
            err = ENOMEM;
            break;
        }
        mb_chain_concat(&piece, &all);
        mb_chain_concat(&all, &rest);
        p->ino = in;
        p->off = (uint64_t)off + done;
        p->len = len;
        mb_chain_init(&p->data);
        if (mb_chain_copy_ref(&p->data, &piece, 0, piece.len) != 0) {
            mb_chain_free(&piece);
            free(p);
            err = ENOMEM;
            break;
        }
        pthread_mutex_lock(&in->mu);
        while (in->inflight >= g.depth)
            pthread_cond_wait(&in->cv, &in->mu);
        in->inflight++;
        if (in->dirty_tail)
            in->dirty_tail->next = p;
        else
            in->dirty = p;
        in->dirty_tail = p;
        in->dirty_bytes += len;
        pthread_mutex_unlock(&in->mu);
        rc = nfs3_write_async(g.nc, &in->fh, p->off, NFS3_UNSTABLE, &piece, wpiece_cb, p);
        if (rc < 0) {
            /* Never started: the commit writes it from the kept pages. */
            pthread_mutex_lock(&in->mu);
            in->inflight--;
            pthread_cond_broadcast(&in->cv);
            pthread_mutex_unlock(&in->mu);
        }
        done += len;
    }
    mb_chain_free(&all);
    if (err && done == 0)
        fuse_reply_err(req, err);
    else
        fuse_reply_write(req, done);
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
    if (!e->attr.present) /* the type at least, for d_type */
        d->v[d->n].attr.fileid = e->fileid;
    d->n++;
    return 0;
}

static void dirlist_free(struct dirlist *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->v[i].name);
    free(d->v);
    free(d);
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
    rc = nfs3_readdirplus(g.nc, &ino_of(ino)->fh, 32768, 262144, collect, d);
    if (rc != 0) {
        dirlist_free(d);
        fuse_reply_err(req, fail("READDIRPLUS", rc));
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
                in = inode_get(&e->fh);
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

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct nfs3_fsstat_res r;
    struct statvfs sv;
    int rc;

    (void)ino;
    set_cred(req);
    rc = nfs3_fsstat(g.nc, &g.root.fh, &r);
    if (rc != 0) {
        fuse_reply_err(req, fail("FSSTAT", rc));
        return;
    }
    memset(&sv, 0, sizeof sv);
    sv.f_bsize = 4096;
    sv.f_frsize = 4096;
    sv.f_blocks = r.tbytes / 4096;
    sv.f_bfree = r.fbytes / 4096;
    sv.f_bavail = r.abytes / 4096;
    sv.f_files = r.tfiles;
    sv.f_ffree = r.ffiles;
    sv.f_favail = r.afiles;
    sv.f_namemax = NFS3_MAXNAMLEN;
    fuse_reply_statfs(req, &sv);
}

static const struct fuse_lowlevel_ops ops = {
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
    .write = op_write,
    .flush = op_flush,
    .fsync = op_fsync,
    .release = op_release,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .releasedir = op_releasedir,
    .statfs = op_statfs,
};

/* ---- main --------------------------------------------------------------------- */

static uint32_t parse_size(const char *s, const char *what)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 0);
    if (errno || end == s)
        die_usage("%s: not a size: %s", what, s);
    if (*end == 'K' || *end == 'k')
        v <<= 10, end++;
    else if (*end == 'M' || *end == 'm')
        v <<= 20, end++;
    if (*end != '\0' || v < 4096 || v > MAX_IO)
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

enum {
    O_TLS = 256, O_NOTLS, O_CA, O_CERT, O_KEY, O_SNI, O_KEYLOG, O_RSIZE, O_WSIZE, O_DEPTH, O_ATTR, O_ENTRY,
    O_HARD, O_SOFT, O_TIMEO, O_RETRANS, O_RO,
};

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"tls", no_argument, NULL, O_TLS},          {"no-tls", no_argument, NULL, O_NOTLS},
        {"ca", required_argument, NULL, O_CA},      {"cert", required_argument, NULL, O_CERT},
        {"key", required_argument, NULL, O_KEY},    {"server-name", required_argument, NULL, O_SNI},
        {"keylog", required_argument, NULL, O_KEYLOG}, {"rsize", required_argument, NULL, O_RSIZE},
        {"wsize", required_argument, NULL, O_WSIZE}, {"depth", required_argument, NULL, O_DEPTH},
        {"attr-timeout", required_argument, NULL, O_ATTR}, {"entry-timeout", required_argument, NULL, O_ENTRY},
        {"hard", no_argument, NULL, O_HARD},        {"soft", no_argument, NULL, O_SOFT},
        {"timeo", required_argument, NULL, O_TIMEO}, {"retrans", required_argument, NULL, O_RETRANS},
        {"ro", no_argument, NULL, O_RO},            {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct fuse_args fargs = FUSE_ARGS_INIT(0, NULL);
    struct fuse_session *se = NULL;
    struct fuse_loop_config lc;
    struct krpc_clnt_config cfg;
    struct nfs3_clnt_opts ports;
    struct nfs3_url u;
    struct nfs3_fsinfo_res fi;
    struct sockaddr_storage addrs[KRPC_MAX_ADDRS];
    socklen_t lens[KRPC_MAX_ADDRS];
    const char *ca = NULL, *cert = NULL, *key = NULL, *sni = NULL, *keylog = NULL, *url, *mnt;
    int tls = -1, soft = 0, ro = 0, foreground = 0, debug = 0, c, n, ret = 1;
    long timeo = 0, retrans = 3;
    char err[512], label[4200];
    size_t rest = 0;

    g.rsize = g.wsize = MAX_IO;
    g.depth = 8;
    g.attr_timeout = g.entry_timeout = 1.0;
    if (fuse_opt_add_arg(&fargs, argv[0]) != 0)
        return 1;
    while ((c = getopt_long(argc, argv, "fdo:h", longopts, NULL)) != -1) {
        switch (c) {
        case O_TLS: tls = 1; break;
        case O_NOTLS: tls = 0; break;
        case O_CA: ca = optarg; break;
        case O_CERT: cert = optarg; break;
        case O_KEY: key = optarg; break;
        case O_SNI: sni = optarg; break;
        case O_KEYLOG: keylog = optarg; break;
        case O_RSIZE: g.rsize = parse_size(optarg, "--rsize"); break;
        case O_WSIZE: g.wsize = parse_size(optarg, "--wsize"); break;
        case O_DEPTH: g.depth = (unsigned)parse_long(optarg, "--depth", 1, 64); break;
        case O_ATTR: g.attr_timeout = parse_seconds(optarg, "--attr-timeout"); break;
        case O_ENTRY: g.entry_timeout = parse_seconds(optarg, "--entry-timeout"); break;
        case O_HARD: soft = 0; break;
        case O_SOFT: soft = 1; break;
        case O_TIMEO: timeo = parse_long(optarg, "--timeo", 100, 600000); break;
        case O_RETRANS: retrans = parse_long(optarg, "--retrans", 0, 100); break;
        case O_RO: ro = 1; break;
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
    if (tls < 0)
        tls = ca != NULL;
    if (!tls && (ca || cert || key || keylog || sni))
        die_usage("--ca/--cert/--key/--keylog/--server-name given with --no-tls");
    if (!!cert != !!key)
        die_usage("--cert and --key go together");
    if (strncmp(url, "nfs://", 6) != 0)
        die_usage("%s: not an nfs:// URL", url);
    if (nfs3_url_parse(url, &u, err, sizeof err) < 0)
        die_usage("%s: %s", url, err);
    /* Kernel permission checks from the attributes: this mount serves
     * several users (allow_other) and rpctls-nfsd does not check per caller
     * yet; the server still decides with each call's credential. */
    if (fuse_opt_add_arg(&fargs, "-odefault_permissions,max_read=1048576,fsname=rpctls,subtype=nfs") != 0 ||
        (ro && fuse_opt_add_arg(&fargs, "-oro") != 0) || (debug && fuse_opt_add_arg(&fargs, "-d") != 0))
        return 1;

    n = krpc_resolve(u.host, u.nfsport ? u.nfsport : 2049, 0, addrs, lens, KRPC_MAX_ADDRS, err, sizeof err);
    if (n < 0) {
        fprintf(stderr, PROG ": %s: cannot resolve %s\n", url, err);
        return 1;
    }
    snprintf(label, sizeof label, "%s", url);
    memset(&cfg, 0, sizeof cfg);
    cfg.addr = addrs[0];
    cfg.addrlen = lens[0];
    for (int i = 1; i < n; i++) {
        cfg.alt_addrs[i - 1] = addrs[i];
        cfg.alt_addrlens[i - 1] = lens[i];
    }
    cfg.nalt_addrs = (unsigned)n - 1;
    cfg.tls = tls ? KRPC_TLS_REQUIRED : KRPC_TLS_OFF;
    cfg.tlscfg.ca_file = ca;
    cfg.tlscfg.cert_file = cert;
    cfg.tlscfg.key_file = key;
    cfg.tlscfg.server_name = sni ? sni : u.host;
    cfg.tlscfg.keylog_file = keylog;
    if (soft) {
        /* A soft mount: a call fails after timeo x (retrans + 1), as do
         * reconnects that keep failing. */
        cfg.timeout_ms = (int)(timeo ? timeo : 3000);
        cfg.max_retries = retrans ? (int)retrans : -1;
        cfg.max_reconnects = (unsigned)retrans + 1;
        cfg.connect_timeout_ms = cfg.timeout_ms;
    } else {
        /* A hard mount: retry and reconnect for ever; a restarted server
         * is invisible (its duplicate-request cache and the write
         * verifiers cover what it lost). */
        cfg.timeout_ms = (int)(timeo ? timeo : 10000);
        cfg.max_retries = INT_MAX;
        cfg.max_reconnects = UINT_MAX;
    }
    cfg.name = label;
    if (gethostname(g.machine, sizeof g.machine - 1) < 0)
        snprintf(g.machine, sizeof g.machine, "rpctls-mount");
    memset(&ports, 0, sizeof ports);
    ports.mount_port = u.mountport;
    ports.find_nfs_port = u.nfsport == 0;
    if (krpc_loop_new(&g.loop) < 0 || nfs3_clnt_new_opts(g.loop, &cfg, &ports, &g.nc) < 0) {
        fprintf(stderr, PROG ": %s: cannot make the NFS client\n", url);
        goto out;
    }
    /* The URL path is the export, or the export and a directory in it. */
    {
        struct nfs3_fh fh;
        struct nfs3_fattr a;
        int rc = nfs3_mount(g.nc, u.path, &fh);
        if (rc > 0)
            rc = nfs3_mount_prefix(g.nc, u.path, &fh, &rest);
        if (rc == 0 && u.path[rest] != '\0' && rest > 0)
            rc = nfs3_open_path(g.nc, &fh, u.path + rest, 0, &fh, NULL);
        if (rc == 0)
            rc = nfs3_getattr(g.nc, &fh, &a);
        if (rc == 0 && a.type != NFS3_DIR)
            rc = NFS3ERR_NOTDIR;
        if (rc != 0) {
            fprintf(stderr, PROG ": %s: %s\n", url, nfs3_clnt_error(g.nc)[0] ? nfs3_clnt_error(g.nc) : "not a directory");
            goto out;
        }
        inode_init(&g.root, &fh);
    }
    if (nfs3_fsinfo(g.nc, &g.root.fh, &fi) == 0) {
        if (fi.rtmax >= 4096 && fi.rtmax < g.rsize)
            g.rsize = fi.rtmax;
        if (fi.wtmax >= 4096 && fi.wtmax < g.wsize)
            g.wsize = fi.wtmax;
    }
    pthread_mutex_init(&g.tab_mu, NULL);

    se = fuse_session_new(&fargs, &ops, sizeof ops, NULL);
    if (!se)
        goto out;
    if (fuse_set_signal_handlers(se) != 0)
        goto out;
    if (fuse_session_mount(se, mnt) != 0)
        goto out_handlers;
    fprintf(stderr, PROG ": %s on %s (%s, rsize %u, wsize %u, %s)\n", url, mnt,
            nfs3_clnt_transport(g.nc, NFS3_PROGRAM), g.rsize, g.wsize, soft ? "soft" : "hard");
    /* The loop thread starts after the fork of fuse_daemonize: threads do
     * not survive a fork. */
    if (fuse_daemonize(foreground) != 0)
        goto out_unmount;
    if (nfs3_clnt_start_thread(g.nc) != 0) {
        fprintf(stderr, PROG ": cannot start the NFS client thread\n");
        goto out_unmount;
    }
    memset(&lc, 0, sizeof lc);
    lc.clone_fd = 0;
    lc.max_idle_threads = 16;
    ret = fuse_session_loop_mt(se, &lc) == 0 ? 0 : 1;
out_unmount:
    fuse_session_unmount(se);
out_handlers:
    fuse_remove_signal_handlers(se);
out:
    if (se)
        fuse_session_destroy(se);
    nfs3_clnt_free(g.nc);
    if (g.loop)
        krpc_loop_free(g.loop);
    fuse_opt_free_args(&fargs);
    return ret;
}
