/*
 * rpctls-mount - mount an NFSv3 export over RPC-with-TLS (RFC 9289) with
 * FUSE (libfuse3 low-level API, multi-threaded), optionally mirrored to
 * more servers (--mirror). See --help and docs/mount.md.
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
#define _GNU_SOURCE
#define FUSE_USE_VERSION 34
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <fuse_lowlevel.h>
#include <openssl/rand.h>

#include "rpctls/ktls.h"
#include "rpctls/nfs3_clnt.h"

#define PROG "rpctls-mount"
#define MAX_IO (1u << 20)           /* FUSE max_read / max_write */
#define MAX_DIRTY (64ull << 20)     /* uncommitted bytes per inode before a COMMIT */
#define HASH_BUCKETS 4096
#define MAX_SRV 8                   /* the primary and up to 7 mirrors */
#define STATUS_XATTR "user.rpctls.status"

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

struct wpiece;

/* One piece's WRITE to one server. */
struct wsend {
    struct wpiece *p;
    unsigned s;
    int ok;                 /* the whole piece written; verf valid */
    uint8_t verf[NFS3_WRITEVERFSIZE];
};

/* One WRITE piece kept until every server's COMMIT confirms it. */
struct wpiece {
    struct wpiece *next;
    struct inode *ino;
    uint64_t off;
    uint32_t len;
    struct mb_chain data;   /* a reference to the pages sent */
    uint32_t sent;          /* bit s: sent to server s */
    struct wsend to[MAX_SRV];
};

struct inode {
    struct inode *hnext;
    uint64_t nlookup;       /* the kernel's lookup references */
    unsigned pins;          /* inodes whose parent this is */
    unsigned keysrv;        /* the hash key is fh[keysrv] */
    /* Under g.tab_mu: */
    uint32_t have;          /* bit s: fh[s] is known */
    struct nfs3_fh fh[MAX_SRV];
    struct inode *parent;   /* where it was last seen, to find it by path */
    char *name;
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

struct server {
    const char *url;
    struct krpc_loop *loop;
    struct nfs3_clnt *nc;
    struct nfs3_fh root;
    char transport[200];
    /* Under g.srv_mu: */
    int failed;             /* for the rest of the mount */
    char why[400];
    /* Copied on the server's loop thread (which owns the client), for
     * --status; under g.srv_mu. */
    struct krpc_clnt_stats rpc;
    struct ktls_stats tls;
};

static struct {
    struct server srv[MAX_SRV];
    unsigned nsrv;
    int strict;             /* --mirror-strict */
    pthread_mutex_t srv_mu;
    struct inode root;
    pthread_mutex_t tab_mu;
    struct inode *tab[HASH_BUCKETS];
    uint32_t rsize, wsize;
    uint32_t max_write;     /* FUSE's largest WRITE request (--max-write) */
    long readahead_kib;     /* --readahead; -1: 4 x rsize */
    unsigned depth;
    double attr_timeout, entry_timeout;
    char machine[KRPC_AUTH_SYS_MAX_MACHINE + 1];
    /* How written data came from FUSE (--status): WRITE requests and bytes
     * read from libfuse's splice pipe, or from its buffer. */
    int pipe_fits;            /* a pipe can hold a whole WRITE request (splice_fits) */
    int splice_read;          /* FUSE_CAP_SPLICE_READ granted at init, and pipe_fits */
    atomic_ullong writes_pipe, bytes_pipe, writes_buf, bytes_buf;
} g = {.srv_mu = PTHREAD_MUTEX_INITIALIZER, .tab_mu = PTHREAD_MUTEX_INITIALIZER};

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
    case ENAMETOOLONG: /* also a name over 255 bytes in a READDIRPLUS reply */
    case EINVAL:
    case ELOOP:        /* a READDIRPLUS cookie loop (as the Linux client) */
        return -status;
    default:
        return EIO;    /* timeouts (soft), lost server, undecodable replies */
    }
}

static const char *srv_role(unsigned s)
{
    return s == 0 ? "primary" : "mirror";
}

/* Logs an unexpected failure of a call to server s; returns its errno. */
static int fail(const char *what, unsigned s, int status)
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

static int healthy(unsigned s)
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
static int server_trouble(int status)
{
    return status < 0 && status != -EACCES && status != -ENAMETOOLONG && status != -EINVAL &&
           status != -ENOMEM && status != -EDEADLK;
}

/* Another server than s is healthy: s may be given up without losing the
 * file system. */
static int others_healthy(unsigned s)
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
static void srv_fail(unsigned s, const char *what, int status)
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
static int reader(void)
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
static void srv_snapshot(unsigned s)
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

static void inode_init(struct inode *in, unsigned s, const struct nfs3_fh *fh)
{
    memset(in, 0, sizeof *in);
    in->keysrv = s;
    in->fh[s] = *fh;
    in->have = 1u << s;
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

/* Frees in when neither the kernel nor a child refers to it, then its
 * parent if that was the last thing holding it. Under tab_mu. */
static void inode_maybe_free_locked(struct inode *in)
{
    while (in && in != &g.root && in->nlookup == 0 && in->pins == 0) {
        struct inode *parent = in->parent;
        unsigned b = fh_hash(&in->fh[in->keysrv]);

        for (struct inode **pp = &g.tab[b]; *pp; pp = &(*pp)->hnext)
            if (*pp == in) {
                *pp = in->hnext;
                break;
            }
        /* The kernel forgets an inode only after its last release, when
         * nothing is dirty or in flight. */
        pthread_mutex_destroy(&in->mu);
        pthread_cond_destroy(&in->cv);
        free(in->name);
        free(in);
        if (parent)
            parent->pins--;
        in = parent;
    }
}

/* Records where in was seen (parent, name), to find its handle on a
 * server by path later. parent NULL: nowhere (unlinked). Under tab_mu. */
static void inode_set_path_locked(struct inode *in, struct inode *parent, const char *name)
{
    struct inode *old = in->parent;
    char *copy = NULL;

    if (in == &g.root)
        return;
    if (parent && in->parent == parent && in->name && strcmp(in->name, name) == 0)
        return;
    if (parent) {
        copy = strdup(name);
        if (!copy)
            return; /* keeps the old path: resolving by it fails cleanly */
        parent->pins++;
    }
    free(in->name);
    in->name = copy;
    in->parent = parent;
    if (old) {
        old->pins--;
        inode_maybe_free_locked(old);
    }
}

/* The inode whose handle on server s is fh, made when new; one more lookup
 * reference; seen as name in parent (may be NULL). */
static struct inode *inode_get(unsigned s, const struct nfs3_fh *fh, struct inode *parent, const char *name)
{
    unsigned b = fh_hash(fh);
    struct inode *in;

    if (fh_eq(fh, &g.root.fh[s]))
        return &g.root;
    pthread_mutex_lock(&g.tab_mu);
    for (in = g.tab[b]; in; in = in->hnext)
        if (in->keysrv == s && fh_eq(&in->fh[s], fh))
            break;
    if (!in) {
        in = malloc(sizeof *in);
        if (in) {
            inode_init(in, s, fh);
            in->hnext = g.tab[b];
            g.tab[b] = in;
        }
    }
    if (in) {
        in->nlookup++;
        if (parent)
            inode_set_path_locked(in, parent, name);
    }
    pthread_mutex_unlock(&g.tab_mu);
    return in;
}

static void inode_forget(struct inode *in, uint64_t n)
{
    if (in == &g.root)
        return;
    pthread_mutex_lock(&g.tab_mu);
    in->nlookup = n >= in->nlookup ? 0 : in->nlookup - n;
    inode_maybe_free_locked(in);
    pthread_mutex_unlock(&g.tab_mu);
}

/* Learns in's handle on server s (from a create or lookup there). */
static void inode_learn(struct inode *in, unsigned s, const struct nfs3_fh *fh)
{
    pthread_mutex_lock(&g.tab_mu);
    in->fh[s] = *fh;
    in->have |= 1u << s;
    pthread_mutex_unlock(&g.tab_mu);
}

/* The inode last seen as name in parent, without a reference; NULL when
 * none is known. Under tab_mu. A scan: only rename and remove need it. */
static struct inode *inode_at_locked(struct inode *parent, const char *name)
{
    for (unsigned b = 0; b < HASH_BUCKETS; b++)
        for (struct inode *in = g.tab[b]; in; in = in->hnext)
            if (in->parent == parent && in->name && strcmp(in->name, name) == 0)
                return in;
    return NULL;
}

/* in's handle on server s. A missing one (the object was found through
 * another server) is looked up by path on s, from its root along the
 * parent/name links, and remembered. */
static int fh_on(struct inode *in, unsigned s, struct nfs3_fh *out)
{
    struct inode *parent;
    struct nfs3_fh dir;
    char name[NFS3_MAXNAMLEN + 1];
    int rc;

    pthread_mutex_lock(&g.tab_mu);
    if (in->have & (1u << s)) {
        *out = in->fh[s];
        pthread_mutex_unlock(&g.tab_mu);
        return 0;
    }
    parent = in->parent; /* pinned by in, which the caller's request holds */
    if (parent)
        snprintf(name, sizeof name, "%s", in->name);
    pthread_mutex_unlock(&g.tab_mu);
    if (!parent)
        return NFS3ERR_STALE; /* never seen by name: nothing to resolve by */
    rc = fh_on(parent, s, &dir);
    if (rc == 0)
        rc = nfs3_lookup(g.srv[s].nc, &dir, name, out, NULL);
    if (rc == 0)
        inode_learn(in, s, out);
    return rc;
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

/* Attributes no server can mean are refused (EIO, one log line naming the
 * server, the call and the field) rather than handed to the kernel, which
 * would cache them: a type outside NF3REG..NF3FIFO, a size past 2^63 - 1
 * (no off_t holds it), and nlink 0 for an object that has a name (reached
 * by LOOKUP or READDIRPLUS, or not unlinked through this mount). 0 when the
 * attributes are usable. */
static int attr_bad(unsigned s, const char *what, const char *name, const struct nfs3_fattr *a, int named)
{
    char why[128];

    if (a->type < NFS3_REG || a->type > NFS3_FIFO)
        snprintf(why, sizeof why, "type %u is not an NFSv3 file type", a->type);
    else if (a->size > (uint64_t)INT64_MAX)
        snprintf(why, sizeof why, "size %llu is past 2^63 - 1", (unsigned long long)a->size);
    else if (named && a->nlink == 0)
        snprintf(why, sizeof why, "nlink 0 for an object that has a name");
    else
        return 0;
    fprintf(stderr, PROG ": %s %s: %s%s%s: garbage attributes refused (%s)\n", srv_role(s), g.srv[s].url, what,
            name ? " " : "", name ? name : "", why);
    return EIO;
}

/* attr_bad for the attributes of a known inode: it still has a name as far
 * as this mount knows (the root always does). */
static int inode_attr_bad(unsigned s, const char *what, struct inode *in, const struct nfs3_fattr *a)
{
    char name[NFS3_MAXNAMLEN + 1];
    int named;

    pthread_mutex_lock(&g.tab_mu);
    named = in == &g.root || in->parent != NULL;
    snprintf(name, sizeof name, "%s", in == &g.root ? "/" : in->name ? in->name : "(unlinked)");
    pthread_mutex_unlock(&g.tab_mu);
    return attr_bad(s, what, name, a, named);
}

/* ---- fan-out: changes to every server, reads from one ------------------------ */

/* One call to server s; arg holds the call's arguments and its results for
 * s. Returns a status (nfs3_clnt.h). */
typedef int (*srv_fn)(unsigned s, void *arg);

/* A change, made on every healthy server in order. The first server that
 * answers leads: its status is the answer (*lead), and when it refuses (an
 * NFS error) nothing changed and the others are not asked. A leader that
 * does not answer at all is given up when another server is healthy, and
 * the next one leads. A server after the leader that does not do what the
 * leader did now differs from it: it is marked failed. *done: bit s for
 * every server where the change was made. */
static int on_all(const char *what, srv_fn fn, void *arg, unsigned *lead, uint32_t *done)
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
static int on_reader(const char *what, srv_fn fn, void *arg, unsigned *srvp)
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

/* ---- entries ------------------------------------------------------------------- */

/* An entry reply for the object with handle fh on server s, seen as name
 * in parent (NULL for none). */
static int reply_entry(fuse_req_t req, unsigned s, const struct nfs3_fh *fh, const struct nfs3_fattr *a,
                       struct inode *parent, const char *name)
{
    struct fuse_entry_param e;
    struct inode *in;
    int err = attr_bad(s, "LOOKUP", name, a, 1);

    if (err)
        return fuse_reply_err(req, err); /* no inode, nothing cached */
    in = inode_get(s, fh, parent, name);
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

static void wait_writes(struct inode *in)
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
static int commit_inode(struct inode *in)
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
static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bv, off_t off, struct fuse_file_info *fi)
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

/* ---- status: the extended attribute user.rpctls.status of the root ------------ */

/* A GETATTR of each healthy server's root, so that the counters are fresh
 * (they are copied on the server's loop thread, in the callback). Waited
 * for at most 2 s; the object is freed by whoever finishes last. */
struct probe;
struct probe_arg {
    struct probe *p;
    unsigned s;
};

struct probe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned refs, pending;
    struct probe_arg a[MAX_SRV];
};

static void probe_put_locked(struct probe *p)
{
    if (--p->refs > 0) {
        pthread_mutex_unlock(&p->mu);
        return;
    }
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}

static void probe_cb(struct nfs3_clnt *nc, int status, const struct nfs3_fattr *attr, void *arg)
{
    struct probe_arg *a = arg;
    struct probe *p = a->p;

    (void)nc;
    (void)status;
    (void)attr;
    srv_snapshot(a->s);
    pthread_mutex_lock(&p->mu);
    p->pending--;
    pthread_cond_broadcast(&p->cv);
    probe_put_locked(p);
}

static void refresh_counters(void)
{
    struct probe *p = calloc(1, sizeof *p);
    struct timespec until;

    if (!p)
        return;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->refs = 1;
    for (unsigned s = 0; s < g.nsrv; s++) {
        p->a[s].p = p;
        p->a[s].s = s;
        if (!healthy(s))
            continue;
        pthread_mutex_lock(&p->mu);
        p->refs++;
        p->pending++;
        pthread_mutex_unlock(&p->mu);
        if (nfs3_getattr_async(g.srv[s].nc, &g.srv[s].root, probe_cb, &p->a[s]) < 0) {
            pthread_mutex_lock(&p->mu);
            p->pending--;
            p->refs--;
            pthread_mutex_unlock(&p->mu);
        }
    }
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 2;
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0)
        if (pthread_cond_timedwait(&p->cv, &p->mu, &until) != 0)
            break; /* a server slow to answer: its last counters will do */
    probe_put_locked(p);
}

/* One server's lines of the status text. */
static size_t status_lines(char *buf, size_t len, unsigned s)
{
    const struct server *sv = &g.srv[s];
    int n;

    /* Under srv_mu (the caller's). */
    n = snprintf(buf, len,
                 "%s %u %s %s%s\n"
                 "  transport %s\n"
                 "  rpc calls=%llu replies=%llu failures=%llu retransmits=%llu reconnects=%llu "
                 "tls_handshakes=%llu bytes_sent=%llu\n"
                 "  tls tx_records_outofplace=%llu tx_bytes_outofplace=%llu tx_records_inplace=%llu "
                 "tx_bytes_inplace=%llu tx_records_copied=%llu tx_bytes_copied=%llu rx_records=%llu\n",
                 srv_role(s), s, sv->url, sv->failed ? "failed: " : "ok", sv->failed ? sv->why : "",
                 sv->transport, (unsigned long long)sv->rpc.calls,
                 (unsigned long long)sv->rpc.replies, (unsigned long long)sv->rpc.failures,
                 (unsigned long long)sv->rpc.retransmits, (unsigned long long)sv->rpc.reconnects,
                 (unsigned long long)sv->rpc.tls_handshakes, (unsigned long long)sv->rpc.bytes_sent,
                 (unsigned long long)sv->tls.tx_records_outofplace, (unsigned long long)sv->tls.tx_bytes_outofplace,
                 (unsigned long long)sv->tls.tx_records_inplace, (unsigned long long)sv->tls.tx_bytes_inplace,
                 (unsigned long long)sv->tls.tx_records_copied, (unsigned long long)sv->tls.tx_bytes_copied,
                 (unsigned long long)sv->tls.rx_records);
    return n < 0 ? 0 : (size_t)n >= len ? len - 1 : (size_t)n;
}

/* The status line about FUSE itself: how written data reached us. */
static size_t fuse_lines(char *buf, size_t len)
{
    int n = snprintf(buf, len,
                     "fuse max_write=%u splice=%s writes_from_pipe=%llu bytes_from_pipe=%llu writes_from_buffer=%llu "
                     "bytes_from_buffer=%llu\n",
                     g.max_write, g.splice_read ? "on" : "off", (unsigned long long)atomic_load(&g.writes_pipe),
                     (unsigned long long)atomic_load(&g.bytes_pipe), (unsigned long long)atomic_load(&g.writes_buf),
                     (unsigned long long)atomic_load(&g.bytes_buf));

    return n < 0 ? 0 : (size_t)n >= len ? len - 1 : (size_t)n;
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    char buf[8192];
    size_t used = 0;

    /* Only the status, only on the root; everything else has no extended
     * attributes (NFSv3 has none). */
    if (ino != FUSE_ROOT_ID || strcmp(name, STATUS_XATTR) != 0) {
        fuse_reply_err(req, ENODATA);
        return;
    }
    refresh_counters();
    pthread_mutex_lock(&g.srv_mu);
    for (unsigned s = 0; s < g.nsrv; s++)
        used += status_lines(buf + used, sizeof buf - used, s);
    pthread_mutex_unlock(&g.srv_mu);
    used += fuse_lines(buf + used, sizeof buf - used);
    if (size == 0)
        fuse_reply_xattr(req, used);
    else if (size < used)
        fuse_reply_err(req, ERANGE);
    else
        fuse_reply_buf(req, buf, used);
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

/* How every server is reached: the TLS flags and the hard/soft policy. */
struct conn_opts {
    int tls, soft;
    const char *ca, *cert, *key, *sni, *keylog;
    long timeo, retrans;
};

/* Connects server s to url (nfs://HOST[:PORT]/EXPORT[/SUBDIR]), MNTs it and
 * finds the directory; lowers g.rsize/g.wsize to its FSINFO. A mirror is
 * always bounded (timeo x (retrans + 1), retrans + 1 reconnects): a mirror
 * that does not answer is given up rather than waited for, whatever
 * --hard says. Returns 0 or -1 with a message on stderr. */
static int srv_open(unsigned s, const char *url, const struct conn_opts *o)
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

/* Whether libfuse can splice a whole WRITE request: it grows its pipe to
 * max_write + 4 KiB (its header room) and reads from /dev/fuse instead
 * when it cannot; a pipe over fs.pipe-max-size (1 MiB by default) needs
 * CAP_SYS_RESOURCE. */
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

static int splice_fits(uint32_t max_write)
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
static int commit_all(void)
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

/* rpctls-mount --status MOUNTPOINT: prints the mount's status attribute.
 * Exit 0 when every server is healthy, 3 when one has failed, 1 when the
 * status cannot be read. */
static int show_status(const char *mnt)
{
    char buf[8192];
    ssize_t n = getxattr(mnt, STATUS_XATTR, buf, sizeof buf - 1);

    if (n < 0) {
        fprintf(stderr, PROG ": %s: cannot read %s: %s (not an rpctls mount?)\n", mnt, STATUS_XATTR,
                strerror(errno));
        return 1;
    }
    buf[n] = '\0';
    fputs(buf, stdout);
    return strstr(buf, " failed: ") ? 3 : 0;
}

/* At unmount: one line per server with the counters that show how its
 * data travelled (out-of-place sealing, copies). The loop threads have
 * stopped, so the clients can be read here. */
static void log_counters(void)
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
    const char *mirrors[MAX_SRV - 1], *url, *mnt;
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
    if (co.tls < 0)
        co.tls = co.ca != NULL;
    if (!co.tls && (co.ca || co.cert || co.key || co.keylog || co.sni))
        die_usage("--ca/--cert/--key/--keylog/--server-name given with --no-tls");
    if (!!co.cert != !!co.key)
        die_usage("--cert and --key go together");
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
