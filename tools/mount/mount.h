/*
 * tools/mount/mount.h - rpctls-mount's shared state and the functions its
 * pieces share: main.c (options, the session), servers.c (health, counters,
 * credentials, fan-out, connecting), errno.c, inode.c (inode table,
 * attributes, entries), write.c (write-behind, COMMIT, write_buf), ops.c
 * (the FUSE operations) and status.c (user.rpctls.status, --status). How it
 * works as a whole: the comment at the top of main.c.
 */
#ifndef RPCTLS_MOUNT_H
#define RPCTLS_MOUNT_H

/* Before any system header: every .c includes this file first. */
#define _GNU_SOURCE
#define FUSE_USE_VERSION 34
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <fuse_lowlevel.h>

#include "rpctls/ktls.h"
#include "rpctls/nfs3_clnt.h"

#define PROG "rpctls-mount"
#define MAX_IO (1u << 20)           /* FUSE max_read / max_write */
#define MAX_DIRTY (64ull << 20)     /* uncommitted bytes per inode before a COMMIT */
#define HASH_BUCKETS 4096
#define MAX_SRV 8                   /* the primary and up to 7 mirrors */
#define STATUS_XATTR "user.rpctls.status"

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

struct mount_state {
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
};
extern struct mount_state g; /* main.c */

/* ---- nodeids: a struct inode's address, FUSE_ROOT_ID for the root --------------- */

static inline struct inode *ino_of(fuse_ino_t n)
{
    return n == FUSE_ROOT_ID ? &g.root : (struct inode *)(uintptr_t)n;
}

static inline fuse_ino_t nodeid_of(struct inode *in)
{
    return in == &g.root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)in;
}

/* One call to server s; arg holds the call's arguments and its results for
 * s. Returns a status (nfs3_clnt.h). */
typedef int (*srv_fn)(unsigned s, void *arg);

/* How every server is reached: the TLS flags and the hard/soft policy. */
struct conn_opts {
    int tls, soft;
    const char *ca, *cert, *key, *sni, *keylog;
    long timeo, retrans;
};

/* ---- shared functions, by file (each one's comment is at its definition) ------- */

/* main.c */
void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* errno.c */
int to_errno(int status);

/* servers.c */
const char *srv_role(unsigned s);
int fail(const char *what, unsigned s, int status);
int healthy(unsigned s);
int server_trouble(int status);
int others_healthy(unsigned s);
void srv_fail(unsigned s, const char *what, int status);
int reader(void);
void srv_snapshot(unsigned s);
void set_cred(fuse_req_t req);
int on_all(const char *what, srv_fn fn, void *arg, unsigned *lead, uint32_t *done);
int on_reader(const char *what, srv_fn fn, void *arg, unsigned *srvp);
int srv_open(unsigned s, const char *url, const struct conn_opts *o);
void log_counters(void);

/* inode.c */
void inode_init(struct inode *in, unsigned s, const struct nfs3_fh *fh);
void inode_set_path_locked(struct inode *in, struct inode *parent, const char *name);
struct inode *inode_get(unsigned s, const struct nfs3_fh *fh, struct inode *parent, const char *name);
void inode_forget(struct inode *in, uint64_t n);
void inode_learn(struct inode *in, unsigned s, const struct nfs3_fh *fh);
struct inode *inode_at_locked(struct inode *parent, const char *name);
int fh_on(struct inode *in, unsigned s, struct nfs3_fh *out);
void to_stat(const struct nfs3_fattr *a, struct stat *st);
int attr_bad(unsigned s, const char *what, const char *name, const struct nfs3_fattr *a, int named);
int inode_attr_bad(unsigned s, const char *what, struct inode *in, const struct nfs3_fattr *a);
int reply_entry(fuse_req_t req, unsigned s, const struct nfs3_fh *fh, const struct nfs3_fattr *a,
                struct inode *parent, const char *name);
int name_ok(fuse_req_t req, const char *name);
struct nfs3_sattr mode_sattr(fuse_req_t req, mode_t mode);

/* write.c */
void wait_writes(struct inode *in);
int commit_inode(struct inode *in);
void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bv, off_t off, struct fuse_file_info *fi);
int splice_fits(uint32_t max_write);
int commit_all(void);

/* ops.c: the operations table */
extern const struct fuse_lowlevel_ops ops;

/* status.c */
void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
int show_status(const char *mnt);

#endif
