/*
 * tools/mount/inode.c - rpctls-mount's inodes: the table from file handle to
 * FUSE nodeid, their attributes, and entry replies.
 */
#include "mount.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

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

void inode_init(struct inode *in, unsigned s, const struct nfs3_fh *fh)
{
    memset(in, 0, sizeof *in);
    in->keysrv = s;
    in->fh[s] = *fh;
    in->have = 1u << s;
    pthread_mutex_init(&in->mu, NULL);
    pthread_cond_init(&in->cv, NULL);
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
void inode_set_path_locked(struct inode *in, struct inode *parent, const char *name)
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
struct inode *inode_get(unsigned s, const struct nfs3_fh *fh, struct inode *parent, const char *name)
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

void inode_forget(struct inode *in, uint64_t n)
{
    if (in == &g.root)
        return;
    pthread_mutex_lock(&g.tab_mu);
    in->nlookup = n >= in->nlookup ? 0 : in->nlookup - n;
    inode_maybe_free_locked(in);
    pthread_mutex_unlock(&g.tab_mu);
}

/* Learns in's handle on server s (from a create or lookup there). */
void inode_learn(struct inode *in, unsigned s, const struct nfs3_fh *fh)
{
    pthread_mutex_lock(&g.tab_mu);
    in->fh[s] = *fh;
    in->have |= 1u << s;
    pthread_mutex_unlock(&g.tab_mu);
}

/* The inode last seen as name in parent, without a reference; NULL when
 * none is known. Under tab_mu. A scan: only rename and remove need it. */
struct inode *inode_at_locked(struct inode *parent, const char *name)
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
int fh_on(struct inode *in, unsigned s, struct nfs3_fh *out)
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

void to_stat(const struct nfs3_fattr *a, struct stat *st)
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
int attr_bad(unsigned s, const char *what, const char *name, const struct nfs3_fattr *a, int named)
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
int inode_attr_bad(unsigned s, const char *what, struct inode *in, const struct nfs3_fattr *a)
{
    char name[NFS3_MAXNAMLEN + 1];
    int named;

    pthread_mutex_lock(&g.tab_mu);
    named = in == &g.root || in->parent != NULL;
    snprintf(name, sizeof name, "%s", in == &g.root ? "/" : in->name ? in->name : "(unlinked)");
    pthread_mutex_unlock(&g.tab_mu);
    return attr_bad(s, what, name, a, named);
}

/* ---- entries ------------------------------------------------------------------- */

/* An entry reply for the object with handle fh on server s, seen as name
 * in parent (NULL for none). */
int reply_entry(fuse_req_t req, unsigned s, const struct nfs3_fh *fh, const struct nfs3_fattr *a,
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

int name_ok(fuse_req_t req, const char *name)
{
    if (strlen(name) > NFS3_MAXNAMLEN) {
        fuse_reply_err(req, ENAMETOOLONG);
        return 0;
    }
    return 1;
}

struct nfs3_sattr mode_sattr(fuse_req_t req, mode_t mode)
{
    struct nfs3_sattr sa;
    const struct fuse_ctx *ctx = fuse_req_ctx(req);

    memset(&sa, 0, sizeof sa);
    sa.set_mode = 1;
    sa.mode = (uint32_t)(mode & ~ctx->umask & 07777);
    return sa;
}
