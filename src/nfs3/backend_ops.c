/*
 * backend_ops.c - NFSv3 operations on the local directory, on objects
 * resolved by backend_ns.c. Everything is relative to directory fds and
 * never follows a symlink: a symlink inside the export is an object of its
 * own (NF3LNK), never a way out.
 *
 * Operations run as the server process; the client's credential only picks
 * nothing (documented in docs/nfs3-server.md).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "nfs3/access_int.h"
#include "nfs3/nfsd_int.h"

/* Modes a client may set: no set-user-ID or set-group-ID bits. The server
 * writes with its own identity (often root), so honouring those bits would
 * let any client plant set-ID executables in the export. */
#define NFSD_CLIENT_MODE_MASK 01777

/* ---- attributes ---------------------------------------------------------- */

static uint32_t ftype(mode_t m)
{
    switch (m & S_IFMT) {
    case S_IFREG: return NFS3_REG;
    case S_IFDIR: return NFS3_DIR;
    case S_IFBLK: return NFS3_BLK;
    case S_IFCHR: return NFS3_CHR;
    case S_IFLNK: return NFS3_LNK;
    case S_IFSOCK: return NFS3_SOCK;
    case S_IFIFO: return NFS3_FIFO;
    default: return NFS3_REG;
    }
}

static struct nfs3_time ts3(struct timespec t)
{
    struct nfs3_time r = {(uint32_t)t.tv_sec, (uint32_t)t.tv_nsec};
    return r;
}

void nfs3__fattr(const struct nfsd_be *be, const struct stat *st, struct nfs3_fattr *out)
{
    memset(out, 0, sizeof(*out));
    out->type = ftype(st->st_mode);
    out->mode = (uint32_t)(st->st_mode & 07777);
    out->nlink = (uint32_t)st->st_nlink;
    out->uid = (uint32_t)st->st_uid;
    out->gid = (uint32_t)st->st_gid;
    out->size = (uint64_t)st->st_size;
    out->used = (uint64_t)st->st_blocks * 512u;
    out->rdev1 = major(st->st_rdev);
    out->rdev2 = minor(st->st_rdev);
    out->fsid = (uint64_t)be->dev;
    out->fileid = (uint64_t)st->st_ino;
    out->atime = ts3(st->st_atim);
    out->mtime = ts3(st->st_mtim);
    out->ctime = ts3(st->st_ctim);
}

void nfs3__post_attr_fd(const struct nfsd_be *be, int fd, struct nfs3_post_attr *out)
{
    struct stat st;

    memset(out, 0, sizeof(*out));
    if (fd >= 0 && fstat(fd, &st) == 0) {
        out->present = 1;
        nfs3__fattr(be, &st, &out->attr);
    }
}

void nfs3__pre_attr(const struct stat *st, struct nfs3_pre_attr *out)
{
    out->present = 1;
    out->size = (uint64_t)st->st_size;
    out->mtime = ts3(st->st_mtim);
    out->ctime = ts3(st->st_ctim);
}

static uint32_t fd_gen(int fd)
{
    long v = 0;
    uint32_t g;

    if (ioctl(fd, FS_IOC_GETVERSION, &v) != 0)
        v = 0;
    memcpy(&g, &v, sizeof(g));
    return g;
}

/* Name checks for names that create or remove entries. */
static int new_name_check(const char *name)
{
    if (name[0] == '\0' || strchr(name, '/') != NULL)
        return -EACCES;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return -EEXIST;
    return 0;
}

static void proc_fd_path(int fd, char *buf, size_t len)
{
    snprintf(buf, len, "/proc/self/fd/%d", fd);
}

/* Opens the parent directory of o (O_PATH) and points *base at o's name. */
static int open_parent(struct nfsd_be *be, const struct nfsd_obj *o, const char **base)
{
    char ppath[PATH_MAX];
    const char *slash = strrchr(o->path, '/');

    if (o->path[0] == '\0')
        return -EINVAL; /* the root has no parent inside the export */
    if (slash == NULL) {
        ppath[0] = '\0';
        *base = o->path;
    } else {
        size_t n = (size_t)(slash - o->path);
        memcpy(ppath, o->path, n);
        ppath[n] = '\0';
        *base = slash + 1;
    }
    return nfs3__be_open_beneath(be, ppath, O_PATH | O_DIRECTORY);
}

/* ---- LOOKUP ---------------------------------------------------------------- */

int nfs3__op_lookup(struct nfsd_be *be, struct nfsd_obj *dir, const char *name, struct nfsd_lookup *out)
{
    uint32_t gen;

    if (!S_ISDIR(dir->st.st_mode))
        return -ENOTDIR;
    if (name[0] == '\0' || strchr(name, '/') != NULL)
        return -EACCES;
    if (strcmp(name, ".") == 0 || (strcmp(name, "..") == 0 && (uint64_t)dir->st.st_ino == be->rootino)) {
        /* ".." at the root stays at the root, as on any mount point. */
        out->st = dir->st;
        nfs3__be_fh(be, &dir->st, dir->gen, &out->fh);
        return 0;
    }
    if (fstatat(dir->fd, name, &out->st, AT_SYMLINK_NOFOLLOW) != 0)
        return -errno;
    if (out->st.st_dev != be->dev)
        return -EACCES; /* a mount point: the export does not cross into other file systems */
    gen = nfs3__be_gen_at(dir->fd, name, &out->st);
    nfs3__be_fh(be, &out->st, gen, &out->fh);
    if (strcmp(name, "..") != 0)
        nfs3__map_add(be, (uint64_t)out->st.st_ino, (uint64_t)dir->st.st_ino, name);
    return 0;
}

/* ---- SETATTR ------------------------------------------------------------- */

static void sattr_times(const struct nfs3_sattr *sa, struct timespec ts[2])
{
    const uint32_t how[2] = {sa->atime_how, sa->mtime_how};
    const struct nfs3_time *t[2] = {&sa->atime, &sa->mtime};

    for (int i = 0; i < 2; i++) {
        ts[i].tv_sec = 0;
        ts[i].tv_nsec = how[i] == NFS3_SET_TO_SERVER_TIME ? UTIME_NOW : UTIME_OMIT;
        if (how[i] == NFS3_SET_TO_CLIENT_TIME) {
            ts[i].tv_sec = (time_t)t[i]->seconds;
            ts[i].tv_nsec = t[i]->nseconds < 1000000000u ? (long)t[i]->nseconds : 999999999L;
        }
    }
}

static int apply_sattr_fd(int fd, const struct nfs3_sattr *sa, int skip_mode)
{
    if (sa->set_uid || sa->set_gid) {
        if (fchown(fd, sa->set_uid ? (uid_t)sa->uid : (uid_t)-1, sa->set_gid ? (gid_t)sa->gid : (gid_t)-1) != 0)
            return -errno;
    }
    if (sa->set_mode && !skip_mode && fchmod(fd, (mode_t)(sa->mode & NFSD_CLIENT_MODE_MASK)) != 0)
        return -errno;
    if (sa->set_size && ftruncate(fd, (off_t)sa->size) != 0)
        return -errno;
    if (sa->atime_how != NFS3_DONT_CHANGE || sa->mtime_how != NFS3_DONT_CHANGE) {
        struct timespec ts[2];
        sattr_times(sa, ts);
        if (futimens(fd, ts) != 0)
            return -errno;
    }
    return 0;
}

int nfs3__op_setattr(struct nfsd_be *be, struct nfsd_obj *o, const struct nfs3_sattr *sa)
{
    int fd, ret;

    if (sa->set_size && S_ISDIR(o->st.st_mode))
        return -EISDIR;
    if (sa->set_size && !S_ISREG(o->st.st_mode))
        return -EINVAL;
    if (S_ISREG(o->st.st_mode) || S_ISDIR(o->st.st_mode)) {
        int flags = S_ISDIR(o->st.st_mode) ? O_RDONLY | O_DIRECTORY : sa->set_size ? O_WRONLY : O_RDONLY | O_NONBLOCK;
        fd = nfs3__obj_reopen(be, o, flags);
        if (fd >= 0) {
            ret = apply_sattr_fd(fd, sa, 0);
            close(fd);
            return ret;
        }
        if (fd != -EACCES || sa->set_size)
            return fd;
        /* Not readable by the server process: fall through to the paths
         * that work on the O_PATH descriptor. */
    }
    if (sa->set_uid || sa->set_gid) {
        if (fchownat(o->fd, "", sa->set_uid ? (uid_t)sa->uid : (uid_t)-1, sa->set_gid ? (gid_t)sa->gid : (gid_t)-1,
                     AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
            return -errno;
    }
    if (S_ISLNK(o->st.st_mode)) {
        if (sa->set_mode)
            return -EOPNOTSUPP; /* Linux symlinks have no mode */
        if (sa->atime_how != NFS3_DONT_CHANGE || sa->mtime_how != NFS3_DONT_CHANGE) {
            const char *base;
            struct timespec ts[2];
            int pfd = open_parent(be, o, &base);
            if (pfd < 0)
                return pfd;
            sattr_times(sa, ts);
            ret = utimensat(pfd, base, ts, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
            close(pfd);
            return ret;
        }
        return 0;
    }
    /* Not a symlink: the /proc magic link names exactly this inode. */
    char p[64];
    proc_fd_path(o->fd, p, sizeof(p));
    if (sa->set_mode && chmod(p, (mode_t)(sa->mode & NFSD_CLIENT_MODE_MASK)) != 0)
        return -errno;
    if (sa->atime_how != NFS3_DONT_CHANGE || sa->mtime_how != NFS3_DONT_CHANGE) {
        struct timespec ts[2];
        sattr_times(sa, ts);
        if (utimensat(AT_FDCWD, p, ts, 0) != 0)
            return -errno;
    }
    return 0;
}

/* ---- ACCESS, READLINK ------------------------------------------------------ */

#ifndef SYS_faccessat2
#define SYS_faccessat2 439 /* one number on every architecture (Linux 5.8) */
#endif

static pthread_once_t access_once = PTHREAD_ONCE_INIT;
static atomic_int access_by_kernel;  /* the probe's finding */
static atomic_int access_mode_forced; /* test hook */

/* faccessat2 is called directly: glibc's faccessat, when the system call is
 * missing, checks the process's euid (root here), not the thread's fsuid,
 * and refuses AT_EMPTY_PATH. The probe makes exactly the call may() makes,
 * on an O_PATH "/". ENOSYS (Linux < 5.8), EPERM (a seccomp filter that does
 * not know the call) or any other failure: the mode bits answer. */
static void access_probe_once(void)
{
    int fd = open("/", O_PATH | O_CLOEXEC), e = 0;

    if (fd < 0 || syscall(SYS_faccessat2, fd, "", F_OK, AT_EMPTY_PATH | AT_EACCESS) != 0)
        e = errno;
    if (fd >= 0)
        close(fd);
    atomic_store(&access_by_kernel, e == 0);
    if (e != 0)
        krpc_log(KRPC_LOG_WARN,
                 "nfsd: faccessat2 is not available (%s; it needs Linux 5.8): ACCESS is answered from each file's "
                 "mode, owner and group for the caller (POSIX ACLs and the immutable flag are not consulted; "
                 "every operation is still checked by the kernel as the caller)",
                 strerror(e));
}

int nfs3__access_probe(void)
{
    pthread_once(&access_once, access_probe_once);
    return atomic_load(&access_by_kernel);
}

void nfs3__access_force_mode_bits(int on)
{
    atomic_store(&access_mode_forced, on != 0);
}

/* 1 when gid is the thread's fsgid or one of its supplementary groups (the
 * thread's own: the switch sets them per thread). */
static int thread_in_group(gid_t fsgid, gid_t gid)
{
    gid_t small[64], *list = small;
    long n;
    int found = 0;

    if (gid == fsgid)
        return 1;
    n = syscall(SYS_getgroups, 0, NULL);
    if (n <= 0)
        return 0;
    if ((size_t)n > sizeof(small) / sizeof(small[0])) {
        list = malloc((size_t)n * sizeof(*list));
        if (list == NULL)
            return 0; /* answer less, never more */
    }
    n = syscall(SYS_getgroups, n, list);
    for (long i = 0; i < n && !found; i++)
        found = list[i] == gid;
    if (list != small)
        free(list);
    return found;
}

/* The kernel's generic_permission without ACLs, for the thread's fsuid,
 * fsgid and groups: uid 0 (which keeps the file-system capabilities) may read
 * and write anything and execute a directory or a file with some x bit;
 * anybody else gets the owner's, else the group's, else the others' bits.
 * Writing on a read-only mount is refused as the kernel does (EROFS). */
static int may_by_mode(const struct nfsd_obj *o, int mode)
{
    struct stat st;
    struct statvfs sv;
    uid_t fsuid = (uid_t)nfs3__cur_fsuid();
    gid_t fsgid = (gid_t)nfs3__cur_fsgid();
    unsigned bits;

    if (fstat(o->fd, &st) != 0)
        return 0;
    if ((mode & W_OK) && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) || S_ISLNK(st.st_mode)) &&
        fstatvfs(o->fd, &sv) == 0 && (sv.f_flag & ST_RDONLY))
        return 0;
    if (fsuid == 0)
        return !(mode & X_OK) || S_ISDIR(st.st_mode) || (st.st_mode & 0111) != 0;
    if (fsuid == st.st_uid)
        bits = (st.st_mode >> 6) & 7;
    else if (thread_in_group(fsgid, st.st_gid))
        bits = (st.st_mode >> 3) & 7;
    else
        bits = st.st_mode & 7;
    return ((unsigned)mode & bits) == (unsigned)mode; /* R_OK, W_OK, X_OK are the rwx bits */
}

/* Asks the kernel, as the calling thread's identity (faccessat2 with
 * AT_EACCESS checks fsuid, fsgid and the groups; the O_PATH object's inode
 * itself, AT_EMPTY_PATH). So the answer is the caller's, root's execute rule
 * (some x bit needed), ACLs and read-only mounts included. Without
 * faccessat2, the mode bits (may_by_mode). */
static int may(const struct nfsd_obj *o, int mode)
{
    if (!nfs3__access_probe() || atomic_load(&access_mode_forced))
        return may_by_mode(o, mode);
    return syscall(SYS_faccessat2, o->fd, "", mode, AT_EMPTY_PATH | AT_EACCESS) == 0;
}

uint32_t nfs3__op_access(const struct nfsd_obj *o, uint32_t want)
{
    int isdir = S_ISDIR(o->st.st_mode);
    uint32_t got = 0;

    if (S_ISLNK(o->st.st_mode))
        return NFS3_ACCESS_READ & want; /* a symlink is read (READLINK), nothing else */
    if ((want & NFS3_ACCESS_READ) && may(o, R_OK))
        got |= NFS3_ACCESS_READ;
    if ((want & (NFS3_ACCESS_MODIFY | NFS3_ACCESS_EXTEND | NFS3_ACCESS_DELETE)) && may(o, W_OK))
        got |= NFS3_ACCESS_MODIFY | NFS3_ACCESS_EXTEND | (isdir ? NFS3_ACCESS_DELETE : 0);
    if ((want & (NFS3_ACCESS_LOOKUP | NFS3_ACCESS_EXECUTE)) && may(o, X_OK))
        got |= isdir ? NFS3_ACCESS_LOOKUP : NFS3_ACCESS_EXECUTE;
    return got & want;
}

int nfs3__op_readlink(struct nfsd_obj *o, char *buf, size_t len)
{
    ssize_t n;

    if (!S_ISLNK(o->st.st_mode))
        return -EINVAL;
    n = readlinkat(o->fd, "", buf, len);
    if (n < 0)
        return -errno;
    if ((size_t)n >= len)
        return -ENAMETOOLONG;
    buf[n] = '\0';
    return 0;
}

/* ---- READ, WRITE, COMMIT --------------------------------------------------- */

static int data_file_check(const struct nfsd_obj *o)
{
    if (S_ISDIR(o->st.st_mode))
        return -EISDIR;
    if (!S_ISREG(o->st.st_mode))
        return -EINVAL; /* symlinks and special files are not read or written */
    return 0;
}

int nfs3__op_read(struct nfsd_be *be, struct nfsd_obj *o, uint64_t offset, uint32_t count, struct mb_chain *data,
                  int *eof, struct stat *post)
{
    int fd, ret = 0;

    *eof = 0;
    ret = data_file_check(o);
    if (ret != 0)
        return ret;
    fd = nfs3__obj_reopen(be, o, O_RDONLY);
    if (fd < 0)
        return fd;
    if (count > be->rtmax)
        count = be->rtmax;
    for (int attempt = 0; attempt < 3; attempt++) {
        if (fstat(fd, post) != 0) {
            ret = -errno;
            break;
        }
        uint64_t size = (uint64_t)post->st_size, n = 0;
        if (offset < size)
            n = size - offset < count ? size - offset : count;
        if (n > 0) {
            /* pread straight into fresh pool pages; they go out by
             * reference and are sealed out of place by the record layer. */
            ret = mb_chain_append_pages_from_fd(data, fd, (off_t)offset, (size_t)n);
            if (ret == -EIO && attempt < 2) {
                mb_chain_free(data); /* the file shrank meanwhile: measure again */
                continue;
            }
        }
        if (ret == 0)
            *eof = offset + n >= size;
        break;
    }
    close(fd);
    if (ret != 0)
        mb_chain_free(data);
    return ret;
}

int nfs3__op_write(struct nfsd_be *be, struct nfsd_obj *o, uint64_t offset, const struct mb_chain *data,
                   uint32_t stable, uint32_t *committed, struct stat *pre, struct stat *post)
{
    struct iovec *iov = NULL;
    size_t len = data->len, done = 0;
    int fd, niov, ret = 0, first = 0;

    *committed = NFS3_UNSTABLE;
    ret = data_file_check(o);
    if (ret != 0)
        return ret;
    if (offset > (uint64_t)INT64_MAX || len > (uint64_t)INT64_MAX - offset)
        return -EFBIG;
    fd = nfs3__obj_reopen(be, o, O_WRONLY);
    if (fd < 0)
        return fd;
    if (fstat(fd, pre) != 0) {
        ret = -errno;
        goto out;
    }
    if (len > 0) {
        niov = mb_chain_iovec_count(data, 0, len);
        if (niov <= 0) {
            ret = -EINVAL;
            goto out;
        }
        iov = malloc((size_t)niov * sizeof(*iov));
        if (iov == NULL) {
            ret = -ENOMEM;
            goto out;
        }
        /* The received buffers go to the file as they are: no copy. */
        niov = mb_chain_to_iovec(data, 0, len, iov, niov);
        if (niov < 0) {
            ret = niov;
            goto out;
        }
        while (done < len) {
            int cnt = niov - first > IOV_MAX ? IOV_MAX : niov - first;
            ssize_t w = pwritev(fd, iov + first, cnt, (off_t)(offset + done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                ret = -errno;
                goto out;
            }
            if (w == 0) {
                ret = -EIO;
                goto out;
            }
            done += (size_t)w;
            while (first < niov && (size_t)w >= iov[first].iov_len) {
                w -= (ssize_t)iov[first].iov_len;
                first++;
            }
            if (first < niov && w > 0) {
                iov[first].iov_base = (char *)iov[first].iov_base + w;
                iov[first].iov_len -= (size_t)w;
            }
        }
    }
    if (stable == NFS3_FILE_SYNC) {
        if (fsync(fd) != 0) {
            ret = -errno;
            goto out;
        }
        *committed = NFS3_FILE_SYNC;
    } else if (stable == NFS3_DATA_SYNC) {
        if (fdatasync(fd) != 0) {
            ret = -errno;
            goto out;
        }
        *committed = NFS3_DATA_SYNC;
    }
    if (fstat(fd, post) != 0)
        ret = -errno;
out:
    free(iov);
    close(fd);
    return ret;
}

int nfs3__op_commit(struct nfsd_be *be, struct nfsd_obj *o, struct stat *post)
{
    int fd, ret = 0;

    if (S_ISDIR(o->st.st_mode))
        fd = nfs3__obj_reopen(be, o, O_RDONLY | O_DIRECTORY);
    else if (S_ISREG(o->st.st_mode)) {
        fd = nfs3__obj_reopen(be, o, O_RDONLY);
        if (fd == -EACCES)
            fd = nfs3__obj_reopen(be, o, O_WRONLY);
    } else
        return -EINVAL;
    if (fd < 0)
        return fd;
    if (fdatasync(fd) != 0)
        ret = -errno;
    if (ret == 0 && fstat(fd, post) != 0)
        ret = -errno;
    close(fd);
    return ret;
}

/* ---- CREATE, MKDIR, SYMLINK, LINK ------------------------------------------ */

static int created(struct nfsd_be *be, struct nfsd_obj *dir, const char *name, int fd, struct nfsd_lookup *out)
{
    uint32_t gen = 0;

    if (fd >= 0) {
        if (fstat(fd, &out->st) != 0)
            return -errno;
        gen = fd_gen(fd);
    } else {
        if (fstatat(dir->fd, name, &out->st, AT_SYMLINK_NOFOLLOW) != 0)
            return -errno;
        gen = nfs3__be_gen_at(dir->fd, name, &out->st);
    }
    nfs3__be_fh(be, &out->st, gen, &out->fh);
    nfs3__map_add(be, (uint64_t)out->st.st_ino, (uint64_t)dir->st.st_ino, name);
    return 0;
}

int nfs3__op_create(struct nfsd_be *be, struct nfsd_obj *dir, const struct nfs3_create_args *a,
                    struct nfsd_lookup *out)
{
    const char *name = a->where.name;
    int fd, ret;

    if (!S_ISDIR(dir->st.st_mode))
        return -ENOTDIR;
    ret = new_name_check(name);
    if (ret != 0)
        return ret;
    if (a->mode == NFS3_CREATE_EXCLUSIVE) {
        uint32_t v0, v1;
        memcpy(&v0, a->verf, 4);
        memcpy(&v1, a->verf + 4, 4);
        fd = openat(dir->fd, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno == EEXIST) {
            /* A retried EXCLUSIVE create finds its own verifier in the
             * times (the kernel server keeps it there too) and succeeds. */
            struct stat st;
            if (fstatat(dir->fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
                return -errno;
            if (!S_ISREG(st.st_mode) || (uint32_t)st.st_atim.tv_sec != v0 || (uint32_t)st.st_mtim.tv_sec != v1)
                return -EEXIST;
            return created(be, dir, name, -1, out);
        }
        if (fd < 0)
            return -errno;
        struct timespec ts[2] = {{(time_t)v0, 0}, {(time_t)v1, 0}};
        ret = futimens(fd, ts) == 0 ? 0 : -errno;
        if (ret == 0)
            ret = created(be, dir, name, fd, out);
        close(fd);
        if (ret != 0)
            unlinkat(dir->fd, name, 0);
        return ret;
    }

    mode_t mode = a->attr.set_mode ? (mode_t)(a->attr.mode & NFSD_CLIENT_MODE_MASK) : 0644;
    int flags = O_CREAT | O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
    if (a->mode == NFS3_CREATE_GUARDED)
        flags |= O_EXCL;
    fd = openat(dir->fd, name, flags, mode);
    if (fd < 0) {
        ret = -errno;
        if (ret == -ELOOP)
            ret = -EEXIST; /* the name is a symlink; it is never opened through */
        return ret;
    }
    /* The mode again: openat's is filtered by the umask. */
    struct nfs3_sattr sa = a->attr;
    ret = apply_sattr_fd(fd, &sa, 0);
    if (ret == 0)
        ret = created(be, dir, name, fd, out);
    close(fd);
    return ret;
}

int nfs3__op_mkdir(struct nfsd_be *be, struct nfsd_obj *dir, const char *name, const struct nfs3_sattr *sa,
                   struct nfsd_lookup *out)
{
    mode_t mode = sa->set_mode ? (mode_t)(sa->mode & NFSD_CLIENT_MODE_MASK) : 0755;
    struct nfs3_sattr rest = *sa;
    int fd, ret;

    if (!S_ISDIR(dir->st.st_mode))
        return -ENOTDIR;
    ret = new_name_check(name);
    if (ret != 0)
        return ret;
    rest.set_size = 0;
    if (mkdirat(dir->fd, name, mode) != 0)
        return -errno;
    fd = openat(dir->fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ret = apply_sattr_fd(fd, &rest, 0);
    if (ret == 0)
        ret = created(be, dir, name, fd, out);
    close(fd);
    return ret;
}

int nfs3__op_symlink(struct nfsd_be *be, struct nfsd_obj *dir, const char *name, const char *target,
                     const struct nfs3_sattr *sa, struct nfsd_lookup *out)
{
    int ret;

    if (!S_ISDIR(dir->st.st_mode))
        return -ENOTDIR;
    ret = new_name_check(name);
    if (ret != 0)
        return ret;
    if (target[0] == '\0')
        return -EINVAL;
    /* Harmless for the server: it never follows symlinks. */
    if (symlinkat(target, dir->fd, name) != 0)
        return -errno;
    if ((sa->set_uid || sa->set_gid) &&
        fchownat(dir->fd, name, sa->set_uid ? (uid_t)sa->uid : (uid_t)-1, sa->set_gid ? (gid_t)sa->gid : (gid_t)-1,
                 AT_SYMLINK_NOFOLLOW) != 0)
        return -errno;
    return created(be, dir, name, -1, out);
}

int nfs3__op_mknod(struct nfsd_be *be, struct nfsd_obj *dir, const struct nfs3_mknod_args *a, struct nfsd_lookup *out)
{
    const struct nfs3_sattr *sa = &a->attr;
    mode_t mode = sa->set_mode ? (mode_t)(sa->mode & NFSD_CLIENT_MODE_MASK) : 0644;
    mode_t type;
    int ret;

    /* FIFOs and sockets only: a device node made by a client would give
     * whoever can open it the device, whatever the export says. */
    if (a->type == NFS3_FIFO)
        type = S_IFIFO;
    else if (a->type == NFS3_SOCK)
        type = S_IFSOCK;
    else if (a->type == NFS3_CHR || a->type == NFS3_BLK)
        return -EOPNOTSUPP;
    else
        return -NFSD_EBADTYPE;
    if (!S_ISDIR(dir->st.st_mode))
        return -ENOTDIR;
    ret = new_name_check(a->where.name);
    if (ret != 0)
        return ret;
    if (mknodat(dir->fd, a->where.name, type | mode, 0) != 0)
        return -errno;
    /* The mode again (mknodat's is filtered by the umask), and owners;
     * neither may be opened to use the fd calls (a FIFO would block). */
    if (fchmodat(dir->fd, a->where.name, mode, 0) != 0)
        return -errno;
    if ((sa->set_uid || sa->set_gid) &&
        fchownat(dir->fd, a->where.name, sa->set_uid ? (uid_t)sa->uid : (uid_t)-1,
                 sa->set_gid ? (gid_t)sa->gid : (gid_t)-1, AT_SYMLINK_NOFOLLOW) != 0)
        return -errno;
    return created(be, dir, a->where.name, -1, out);
}

int nfs3__op_link(struct nfsd_be *be, struct nfsd_obj *file, struct nfsd_obj *dir, const char *name)
{
    const char *base;
    struct stat st;
    int pfd, ret;

    if (S_ISDIR(file->st.st_mode))
        return -EISDIR;
    if (!S_ISDIR(dir->st.st_mode))
        return -ENOTDIR;
    ret = new_name_check(name);
    if (ret != 0)
        return ret;
    pfd = open_parent(be, file, &base);
    if (pfd < 0)
        return pfd;
    /* Through the parent: linkat on the O_PATH fd would need
     * CAP_DAC_READ_SEARCH. Check the name still means our inode. */
    if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) != 0 || st.st_ino != file->st.st_ino)
        ret = -ESTALE;
    else if (linkat(pfd, base, dir->fd, name, 0) != 0)
        ret = -errno;
    close(pfd);
    return ret;
}

/* ---- REMOVE, RMDIR, RENAME ------------------------------------------------- */

int nfs3__op_remove(struct nfsd_be *be, struct nfsd_obj *dir, const char *name, int rmdir)
{
    struct stat st;

    if (!S_ISDIR(dir->st.st_mode))
        return -ENOTDIR;
    if (name[0] == '\0' || strchr(name, '/') != NULL)
        return -EACCES;
    if (strcmp(name, ".") == 0)
        return -EINVAL;
    if (strcmp(name, "..") == 0)
        return rmdir ? -ENOTEMPTY : -EINVAL;
    if (fstatat(dir->fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return -errno;
    if (rmdir && !S_ISDIR(st.st_mode))
        return -ENOTDIR;
    if (!rmdir && S_ISDIR(st.st_mode))
        return -EISDIR;
    if (unlinkat(dir->fd, name, rmdir ? AT_REMOVEDIR : 0) != 0)
        return -errno;
    nfs3__map_gone(be, dir->fd, (uint64_t)dir->st.st_ino, name, &st);
    return 0;
}

int nfs3__op_rename(struct nfsd_be *be, struct nfsd_obj *from, const char *fname, struct nfsd_obj *to,
                    const char *tname)
{
    struct stat sst, tst;
    int had_target, ret;

    if (!S_ISDIR(from->st.st_mode) || !S_ISDIR(to->st.st_mode))
        return -ENOTDIR;
    if (fname[0] == '\0' || strchr(fname, '/') != NULL)
        return -EACCES;
    ret = new_name_check(tname);
    if (ret != 0)
        return ret == -EEXIST ? -EINVAL : ret;
    if (strcmp(fname, ".") == 0 || strcmp(fname, "..") == 0)
        return -EINVAL;
    if (fstatat(from->fd, fname, &sst, AT_SYMLINK_NOFOLLOW) != 0)
        return -errno;
    had_target = fstatat(to->fd, tname, &tst, AT_SYMLINK_NOFOLLOW) == 0;
    if (renameat(from->fd, fname, to->fd, tname) != 0)
        return -errno;
    nfs3__map_add(be, (uint64_t)sst.st_ino, (uint64_t)to->st.st_ino, tname);
    if (had_target && tst.st_ino != sst.st_ino)
        nfs3__map_gone(be, to->fd, (uint64_t)to->st.st_ino, tname,
                       &tst); /* after the add: learning a name clears the negative cache */
    return 0;
}

/* ---- READDIR, READDIRPLUS -------------------------------------------------- */

int nfs3__op_readdir(struct nfsd_be *be, struct nfsd_obj *dir, uint64_t cookie, int plus,
                     struct nfs3_readdir_enc *enc, int *eof)
{
    struct dirent *de;
    DIR *d;
    int fd, ret = 0, isroot = (uint64_t)dir->st.st_ino == be->rootino;

    *eof = 0;
    if (!S_ISDIR(dir->st.st_mode))
        return -ENOTDIR;
    fd = nfs3__obj_reopen(be, dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return fd;
    d = fdopendir(fd);
    if (d == NULL) {
        ret = -errno;
        close(fd);
        return ret;
    }
    /* Cookies are the file system's directory offsets (d_off), which
     * seekdir takes back: stable across calls for ext4, xfs, btrfs, tmpfs. */
    if (cookie != 0)
        seekdir(d, (long)cookie);
    for (;;) {
        errno = 0;
        de = readdir(d);
        if (de == NULL) {
            if (errno != 0)
                ret = -errno;
            else
                *eof = 1;
            break;
        }
        const char *name = de->d_name;
        int dot = strcmp(name, ".") == 0, dotdot = strcmp(name, "..") == 0;
        uint64_t fileid = (uint64_t)de->d_ino;
        struct nfs3_post_attr pa;
        struct nfs3_fh fh;
        int have_fh = 0;

        memset(&pa, 0, sizeof(pa));
        if (dot || (dotdot && isroot))
            fileid = (uint64_t)dir->st.st_ino; /* ".." at the root is the root */
        if (plus) {
            struct stat st;
            uint32_t gen = 0;
            if (dot || (dotdot && isroot)) {
                st = dir->st;
                gen = dir->gen;
            } else if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
                continue; /* vanished meanwhile */
            } else {
                gen = st.st_dev == be->dev ? nfs3__be_gen_at(dirfd(d), name, &st) : 0;
            }
            fileid = (uint64_t)st.st_ino;
            if (st.st_dev == be->dev) {
                pa.present = 1;
                nfs3__fattr(be, &st, &pa.attr);
                nfs3__be_fh(be, &st, gen, &fh);
                have_fh = 1;
                if (!dot && !dotdot)
                    nfs3__map_add(be, fileid, (uint64_t)dir->st.st_ino, name);
            }
        }
        int r = nfs3_readdir_enc_entry(enc, fileid, name, (uint64_t)de->d_off, plus ? &pa : NULL,
                                       plus && have_fh ? &fh : NULL);
        if (r == -ENOSPC) {
            if (enc->nentries == 0)
                ret = -NFSD_ETOOSMALL;
            break;
        }
        if (r == -ENAMETOOLONG)
            continue;
        if (r != 0) {
            ret = r;
            break;
        }
    }
    closedir(d);
    return ret;
}
