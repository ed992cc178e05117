/*
 * backend_ns.c - the export's namespace: from a file handle (inode number)
 * to an open object, without ever leaving the export.
 *
 * Handles carry inode numbers, not paths. Opening by inode
 * (open_by_handle_at) needs CAP_DAC_READ_SEARCH, so instead the server keeps
 * a map inode -> (parent inode, name), filled by everything that hands out
 * handles (MNT, LOOKUP, READDIRPLUS, CREATE...). A handle is resolved by
 * building the path from the map and opening it beneath the root with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV) (or, on
 * kernels without openat2, one O_NOFOLLOW openat per component), then
 * checking the inode number, device and generation. When the map does not
 * know the inode (a server restart) or is out of date (a rename behind our
 * back), the export is walked breadth first, bounded, refilling the map; an
 * inode not found is STALE.
 *
 * The walk runs on the event loop and can take milliseconds, so it is not
 * repeated for nothing: an inode the walk did not find, or that REMOVE,
 * RMDIR or RENAME took its last name from, goes into a small negative cache
 * (NFSD_NEG_ENTRIES, NEG_TTL_NS each) and is STALE without a walk; and after
 * a walk that did not find its inode no other walk runs for
 * WALK_INTERVAL_NS. Both hold only while the map learns nothing new (a
 * CREATE, LOOKUP, READDIRPLUS or rename that adds a name starts a new epoch),
 * so a handle that comes back to life is found again. After a restart the
 * cache is empty and the first lookup of a handle walks as before.
 *
 * Threads: workers resolve handles at the same time. be->lock guards the
 * map, the negative cache and the walk state; opening and checking a path
 * runs outside it, a walk inside it (so two workers never walk at once,
 * and the second finds what the first learned). Resolution runs as the
 * server's fsuid (nfs3__ident_server_begin): a handle is a capability, as
 * with knfsd's no_subtree_check, and a walk must see the whole export, or
 * a caller without search permission would make live handles STALE for
 * everybody through the negative cache.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "nfs3/nfsd_int.h"

#define MAP_MAX_ENTRIES (1u << 22) /* past this the map is dropped and refilled on demand */
#define WALK_MAX_ENTRIES (1u << 22)
#define PATH_MAX_DEPTH 1024
#define NEG_TTL_NS (10ull * 1000000000ull)       /* a negative entry's life */
#define WALK_INTERVAL_NS (1ull * 1000000000ull)  /* between walks that found nothing */

struct nfsd_ment {
    struct nfsd_ment *next;
    uint64_t ino;
    uint64_t parent;
    char name[];
};

static size_t hash_ino(uint64_t ino, size_t nb)
{
    ino ^= ino >> 29;
    ino *= 0xbf58476d1ce4e5b9ull;
    ino ^= ino >> 32;
    return (size_t)(ino & (nb - 1));
}

static struct nfsd_ment *map_find(const struct nfsd_be *be, uint64_t ino)
{
    for (struct nfsd_ment *e = be->buckets[hash_ino(ino, be->nbuckets)]; e != NULL; e = e->next)
        if (e->ino == ino)
            return e;
    return NULL;
}

static void map_grow(struct nfsd_be *be)
{
    size_t nb = be->nbuckets * 2;
    struct nfsd_ment **b = calloc(nb, sizeof(*b));

    if (b == NULL)
        return; /* keep the longer chains */
    for (size_t i = 0; i < be->nbuckets; i++) {
        struct nfsd_ment *e = be->buckets[i], *next;
        for (; e != NULL; e = next) {
            next = e->next;
            size_t h = hash_ino(e->ino, nb);
            e->next = b[h];
            b[h] = e;
        }
    }
    free(be->buckets);
    be->buckets = b;
    be->nbuckets = nb;
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + 1; /* never 0 */
}

/* The negative cache is good for one map epoch only. */
static void neg_sync(struct nfsd_be *be)
{
    if (be->neg_epoch == be->map_epoch)
        return;
    memset(be->neg, 0, sizeof(be->neg));
    be->neg_next = 0;
    be->neg_epoch = be->map_epoch;
}

static void neg_add(struct nfsd_be *be, uint64_t ino, uint32_t gen, int anygen)
{
    struct nfsd_neg *n;

    neg_sync(be);
    n = &be->neg[be->neg_next];
    be->neg_next = (be->neg_next + 1) % NFSD_NEG_ENTRIES;
    n->ino = ino;
    n->gen = gen;
    n->anygen = anygen;
    n->when_ns = now_ns();
}

static int neg_has(struct nfsd_be *be, uint64_t ino, uint32_t gen, uint64_t now)
{
    neg_sync(be);
    for (unsigned i = 0; i < NFSD_NEG_ENTRIES; i++) {
        const struct nfsd_neg *n = &be->neg[i];
        if (n->when_ns != 0 && n->ino == ino && (n->anygen || n->gen == gen) && now - n->when_ns < NEG_TTL_NS)
            return 1;
    }
    return 0;
}

static void map_clear_locked(struct nfsd_be *be)
{
    be->map_epoch++;
    for (size_t i = 0; i < be->nbuckets; i++) {
        struct nfsd_ment *e = be->buckets[i], *next;
        for (; e != NULL; e = next) {
            next = e->next;
            free(e);
        }
        be->buckets[i] = NULL;
    }
    be->count = 0;
}

static void map_del_locked(struct nfsd_be *be, uint64_t ino)
{
    struct nfsd_ment **pp = &be->buckets[hash_ino(ino, be->nbuckets)];

    for (; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->ino == ino) {
            struct nfsd_ment *e = *pp;
            *pp = e->next;
            free(e);
            be->count--;
            return;
        }
    }
}

static void map_add_locked(struct nfsd_be *be, uint64_t ino, uint64_t dirino, const char *name)
{
    struct nfsd_ment *e;
    size_t n;

    if (ino == be->rootino || !nfs3__name_ok(name))
        return;
    e = map_find(be, ino);
    if (e != NULL && e->parent == dirino && strcmp(e->name, name) == 0)
        return;
    if (e != NULL)
        map_del_locked(be, ino);
    if (!be->in_walk)
        be->map_epoch++; /* something new: the negative cache may be wrong now */
    if (be->count >= MAP_MAX_ENTRIES)
        map_clear_locked(be);
    n = strlen(name);
    e = malloc(sizeof(*e) + n + 1);
    if (e == NULL)
        return; /* only a hint: the walk finds it again */
    e->ino = ino;
    e->parent = dirino;
    memcpy(e->name, name, n + 1);
    size_t h = hash_ino(ino, be->nbuckets);
    e->next = be->buckets[h];
    be->buckets[h] = e;
    be->count++;
    if (be->count > be->nbuckets * 2)
        map_grow(be);
}

void nfs3__map_gone(struct nfsd_be *be, int dirfd, uint64_t dirino, const char *name, const struct stat *st)
{
    const struct nfsd_ment *e;
    struct stat now;

    pthread_mutex_lock(&be->lock);
    /* Calls run in parallel: between our unlink and this line another call
     * may have made a new object that got the same inode number, and told
     * the map already (under another name), or made it under this very
     * name. Forgetting that inode now would make the new object's handle
     * STALE; only forget what still describes the object we removed. */
    e = map_find(be, (uint64_t)st->st_ino);
    if (e != NULL && (e->parent != dirino || strcmp(e->name, name) != 0))
        goto out;
    if (fstatat(dirfd, name, &now, AT_SYMLINK_NOFOLLOW) == 0 && now.st_ino == st->st_ino)
        goto out;
    map_del_locked(be, (uint64_t)st->st_ino);
    if (S_ISDIR(st->st_mode) || st->st_nlink <= 1)
        neg_add(be, (uint64_t)st->st_ino, 0, 1);
out:
    pthread_mutex_unlock(&be->lock);
}

void nfs3__map_clear(struct nfsd_be *be)
{
    pthread_mutex_lock(&be->lock);
    map_clear_locked(be);
    pthread_mutex_unlock(&be->lock);
}

void nfs3__map_del(struct nfsd_be *be, uint64_t ino)
{
    pthread_mutex_lock(&be->lock);
    map_del_locked(be, ino);
    pthread_mutex_unlock(&be->lock);
}

void nfs3__map_add(struct nfsd_be *be, uint64_t ino, uint64_t dirino, const char *name)
{
    pthread_mutex_lock(&be->lock);
    map_add_locked(be, ino, dirino, name);
    pthread_mutex_unlock(&be->lock);
}

int nfs3__name_ok(const char *name)
{
    return name[0] != '\0' && strchr(name, '/') == NULL && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/* Path of ino from the map, relative to the root: 0, -ENOENT (not known
 * or a broken chain), -ENAMETOOLONG. */
static int map_path(const struct nfsd_be *be, uint64_t ino, char *buf, size_t len)
{
    const struct nfsd_ment *chain[PATH_MAX_DEPTH];
    size_t depth = 0, pos = 0;

    while (ino != be->rootino) {
        const struct nfsd_ment *e = map_find(be, ino);
        if (e == NULL || depth == PATH_MAX_DEPTH)
            return -ENOENT;
        chain[depth++] = e;
        ino = e->parent;
    }
    buf[0] = '\0';
    while (depth > 0) {
        const struct nfsd_ment *e = chain[--depth];
        size_t n = strlen(e->name);
        if (pos + n + 2 > len)
            return -ENAMETOOLONG;
        if (pos > 0)
            buf[pos++] = '/';
        memcpy(buf + pos, e->name, n + 1);
        pos += n;
    }
    return 0;
}

int nfs3__be_open_beneath(struct nfsd_be *be, const char *path, int flags)
{
    int fd;

    flags |= O_NOFOLLOW | O_CLOEXEC;
    if (path[0] == '\0') {
        fd = openat(be->rootfd, ".", flags & ~O_NOFOLLOW);
        return fd < 0 ? -errno : fd;
    }
    if (!__atomic_load_n(&be->no_openat2, __ATOMIC_RELAXED)) {
        struct open_how how;
        memset(&how, 0, sizeof(how));
        how.flags = (uint64_t)flags;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
        fd = (int)syscall(SYS_openat2, be->rootfd, path, &how, sizeof(how));
        if (fd >= 0)
            return fd;
        if (errno != ENOSYS && errno != EPERM) /* EPERM: seccomp filters that do not know openat2 */
            return -errno;
        __atomic_store_n(&be->no_openat2, 1, __ATOMIC_RELAXED);
    }
    /* Component by component, never following a symlink. */
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    int dfd = be->rootfd;
    char *p = buf;
    for (;;) {
        char *slash = strchr(p, '/');
        if (slash == NULL)
            break;
        *slash = '\0';
        if (!nfs3__name_ok(p)) {
            fd = -EINVAL;
            goto out;
        }
        fd = openat(dfd, p, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            fd = -errno;
            goto out;
        }
        if (dfd != be->rootfd)
            close(dfd);
        dfd = fd;
        p = slash + 1;
    }
    fd = nfs3__name_ok(p) ? openat(dfd, p, flags) : (errno = EINVAL, -1);
    if (fd < 0)
        fd = -errno;
out:
    if (dfd != be->rootfd)
        close(dfd);
    return fd;
}

uint32_t nfs3__be_gen_at(int dirfd, const char *name, const struct stat *st)
{
    long v = 0;
    uint32_t g;
    int fd;

    /* Only files and directories are opened: opening a device or a FIFO
     * could block or have side effects. */
    if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode))
        return 0;
    /* As the server: every caller must get the same handle for a file,
     * whether or not it may read it. */
    nfs3__ident_server_begin();
    fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    nfs3__ident_server_end();
    if (fd < 0)
        return 0;
    if (ioctl(fd, FS_IOC_GETVERSION, &v) != 0)
        v = 0;
    close(fd);
    memcpy(&g, &v, sizeof(g)); /* the kernel stores an int there */
    return g;
}

void nfs3__be_fh(const struct nfsd_be *be, const struct stat *st, uint32_t gen, struct nfs3_fh *out)
{
    nfs3__fh_make(&be->fh, (uint64_t)st->st_ino, gen, out);
}

void nfs3__obj_close(struct nfsd_obj *o)
{
    if (o->fd >= 0)
        close(o->fd);
    o->fd = -1;
}

/* Generation of an O_PATH object: reopened read-only through its parent. */
static uint32_t obj_gen(struct nfsd_be *be, const char *path, const struct stat *st)
{
    long v = 0;
    uint32_t g;
    int fd;

    if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode))
        return 0;
    fd = nfs3__be_open_beneath(be, path, O_RDONLY | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return 0;
    if (ioctl(fd, FS_IOC_GETVERSION, &v) != 0)
        v = 0;
    close(fd);
    memcpy(&g, &v, sizeof(g));
    return g;
}

/* Opens path and checks it is (ino, gen): 0, -ESTALE (another object or
 * none), other -errno. */
static int try_path(struct nfsd_be *be, const char *path, uint64_t ino, uint32_t gen, struct nfsd_obj *o)
{
    int fd = nfs3__be_open_beneath(be, path, O_PATH);

    if (fd < 0)
        return fd == -ENOENT || fd == -ENOTDIR || fd == -ELOOP || fd == -EXDEV ? -ESTALE : fd;
    if (fstat(fd, &o->st) != 0 || (uint64_t)o->st.st_ino != ino || o->st.st_dev != be->dev) {
        close(fd);
        return -ESTALE;
    }
    o->gen = obj_gen(be, path, &o->st);
    /* A generation we cannot read now (permissions) is not proof of a new
     * object; a different one is. */
    if (gen != 0 && o->gen != 0 && o->gen != gen) {
        close(fd);
        return -ESTALE;
    }
    if (o->gen == 0)
        o->gen = gen;
    o->fd = fd;
    return 0;
}

/* Breadth-first walk of the export, refilling the map, until ino is seen.
 * Called with be->lock held. */
static int walk_for(struct nfsd_be *be, uint64_t ino)
{
    uint64_t *queue = NULL;
    size_t qhead = 0, qlen = 0, qcap = 0, seen = 0;
    char path[PATH_MAX];
    int found = 0;

    qcap = 256;
    queue = malloc(qcap * sizeof(*queue));
    if (queue == NULL)
        return -ENOMEM;
    be->walks++;
    be->in_walk = 1;
    queue[qlen++] = be->rootino;
    while (qhead < qlen && !found && seen < WALK_MAX_ENTRIES) {
        uint64_t dino = queue[qhead++];
        if (map_path(be, dino, path, sizeof(path)) != 0)
            continue;
        int dfd = nfs3__be_open_beneath(be, path, O_RDONLY | O_DIRECTORY);
        if (dfd < 0)
            continue;
        DIR *d = fdopendir(dfd);
        if (d == NULL) {
            close(dfd);
            continue;
        }
        struct dirent *de;
        while ((de = readdir(d)) != NULL && seen < WALK_MAX_ENTRIES) {
            if (!nfs3__name_ok(de->d_name))
                continue;
            seen++;
            uint64_t cino = (uint64_t)de->d_ino;
            int isdir = de->d_type == DT_DIR;
            if (de->d_type == DT_UNKNOWN) {
                struct stat st;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || st.st_dev != be->dev)
                    continue;
                cino = (uint64_t)st.st_ino;
                isdir = S_ISDIR(st.st_mode);
            }
            map_add_locked(be, cino, dino, de->d_name);
            if (cino == ino)
                found = 1;
            if (isdir) {
                if (qlen == qcap) {
                    uint64_t *nq = realloc(queue, qcap * 2 * sizeof(*queue));
                    if (nq == NULL)
                        break;
                    queue = nq;
                    qcap *= 2;
                }
                queue[qlen++] = cino;
            }
        }
        closedir(d);
    }
    be->in_walk = 0;
    free(queue);
    return found ? 0 : -ESTALE;
}

static int resolve(struct nfsd_be *be, const struct nfs3_fh *fh, struct nfsd_obj *o)
{
    uint64_t ino, now;
    uint32_t gen;
    int ret;

    o->fd = -1;
    o->path[0] = '\0';
    ret = nfs3__fh_parse(&be->fh, fh, &ino, &gen);
    if (ret != 0)
        return ret;
    if (ino == be->rootino) {
        o->path[0] = '\0';
        return try_path(be, "", ino, gen, o);
    }
    pthread_mutex_lock(&be->lock);
    ret = map_path(be, ino, o->path, sizeof(o->path));
    pthread_mutex_unlock(&be->lock);
    if (ret == 0) {
        ret = try_path(be, o->path, ino, gen, o);
        if (ret != -ESTALE)
            return ret;
    }
    /* Unknown or moved: look for it. A handle we made whose inode no longer
     * exists in the export is STALE. Not walking again for an inode known
     * to be gone, nor right after a walk that found nothing while the map
     * has learned nothing since (that walk saw the whole export). */
    pthread_mutex_lock(&be->lock);
    now = now_ns();
    if (neg_has(be, ino, gen, now)) {
        ret = -ESTALE;
        goto unlock;
    }
    map_del_locked(be, ino);
    if (be->failed_walk_ns != 0 && be->failed_walk_epoch == be->map_epoch &&
        now - be->failed_walk_ns < WALK_INTERVAL_NS) {
        neg_add(be, ino, gen, 0);
        ret = -ESTALE;
        goto unlock;
    }
    ret = walk_for(be, ino);
    if (ret == -ENOMEM)
        goto unlock;
    if (ret != 0) {
        be->failed_walk_ns = now_ns();
        be->failed_walk_epoch = be->map_epoch;
        neg_add(be, ino, gen, 0);
        ret = -ESTALE;
        goto unlock;
    }
    ret = map_path(be, ino, o->path, sizeof(o->path));
    pthread_mutex_unlock(&be->lock);
    if (ret != 0)
        return -ESTALE;
    ret = try_path(be, o->path, ino, gen, o);
    if (ret == -ESTALE) {
        pthread_mutex_lock(&be->lock);
        neg_add(be, ino, gen, 0); /* found, but another generation (a reused inode number) */
        pthread_mutex_unlock(&be->lock);
    }
    return ret;
unlock:
    pthread_mutex_unlock(&be->lock);
    return ret;
}

int nfs3__be_resolve(struct nfsd_be *be, const struct nfs3_fh *fh, struct nfsd_obj *o)
{
    int ret;

    nfs3__ident_server_begin();
    ret = resolve(be, fh, o);
    nfs3__ident_server_end();
    return ret;
}

uint64_t nfs3__be_walks(struct nfsd_be *be)
{
    uint64_t n;

    pthread_mutex_lock(&be->lock);
    n = be->walks;
    pthread_mutex_unlock(&be->lock);
    return n;
}

int nfs3__obj_reopen(struct nfsd_be *be, const struct nfsd_obj *o, int flags)
{
    struct stat st;
    int fd = nfs3__be_open_beneath(be, o->path, flags | O_NOCTTY);

    if (fd < 0)
        return fd;
    if (fstat(fd, &st) != 0 || st.st_ino != o->st.st_ino || st.st_dev != o->st.st_dev) {
        close(fd);
        return -ESTALE;
    }
    return fd;
}

int nfs3__be_open(struct nfsd_be *be, const char *export_path, char *err, size_t errlen)
{
    char real[PATH_MAX];
    struct stat st;

    memset(be, 0, sizeof(*be));
    pthread_mutex_init(&be->lock, NULL);
    be->rootfd = -1;
    if (export_path == NULL || realpath(export_path, real) == NULL) {
        int e = export_path == NULL ? EINVAL : errno;
        snprintf(err, errlen, "export %s: %s", export_path ? export_path : "(none)", strerror(e));
        return -e;
    }
    be->rootfd = open(real, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (be->rootfd < 0 || fstat(be->rootfd, &st) != 0) {
        int e = errno;
        snprintf(err, errlen, "export %s: %s", real, strerror(e));
        nfs3__be_close(be);
        return -e;
    }
    be->dev = st.st_dev;
    /* For tests: exercise the component walk used where openat2 is missing. */
    be->no_openat2 = getenv("RPCTLS_NFSD_NO_OPENAT2") != NULL;
    be->rootino = (uint64_t)st.st_ino;
    be->rootgen = nfs3__be_gen_at(be->rootfd, ".", &st);
    be->export_path = strdup(real);
    be->nbuckets = 1024;
    be->buckets = calloc(be->nbuckets, sizeof(*be->buckets));
    if (be->export_path == NULL || be->buckets == NULL) {
        snprintf(err, errlen, "out of memory");
        nfs3__be_close(be);
        return -ENOMEM;
    }
    return 0;
}

void nfs3__be_close(struct nfsd_be *be)
{
    if (be->buckets != NULL) {
        map_clear_locked(be); /* no other thread any more */
        free(be->buckets);
    }
    be->buckets = NULL;
    if (be->rootfd >= 0)
        close(be->rootfd);
    be->rootfd = -1;
    free(be->export_path);
    be->export_path = NULL;
}

int nfs3__be_lookup_path(struct nfsd_be *be, const char *rel, struct stat *st, uint32_t *gen)
{
    char buf[PATH_MAX], *save = NULL, *comp;
    uint64_t dino = be->rootino;
    int dfd, ret = 0;
    size_t n = strlen(rel);

    if (n >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, rel, n + 1);
    dfd = openat(be->rootfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    if (fstat(dfd, st) != 0) {
        ret = -errno;
        goto out;
    }
    *gen = be->rootgen;
    for (comp = strtok_r(buf, "/", &save); comp != NULL; comp = strtok_r(NULL, "/", &save)) {
        if (strcmp(comp, ".") == 0)
            continue;
        if (strcmp(comp, "..") == 0) {
            ret = -EACCES; /* never above the export; and no games below it either */
            goto out;
        }
        if (fstatat(dfd, comp, st, AT_SYMLINK_NOFOLLOW) != 0) {
            ret = -errno;
            goto out;
        }
        if (!S_ISDIR(st->st_mode)) {
            ret = S_ISLNK(st->st_mode) ? -EACCES : -ENOTDIR;
            goto out;
        }
        if (st->st_dev != be->dev) {
            ret = -EACCES;
            goto out;
        }
        *gen = nfs3__be_gen_at(dfd, comp, st);
        nfs3__map_add(be, (uint64_t)st->st_ino, dino, comp);
        int nfd = openat(dfd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (nfd < 0) {
            ret = -errno;
            goto out;
        }
        close(dfd);
        dfd = nfd;
        dino = (uint64_t)st->st_ino;
    }
out:
    close(dfd);
    return ret;
}
