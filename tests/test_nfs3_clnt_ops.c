/*
 * tests/test_nfs3_clnt_ops.c - every NFS procedure of the client library
 * (nfs3_clnt.h) that a file system needs, against rpctls-nfsd over TLS:
 * once from one thread (the caller runs the loop), once in threaded mode
 * from several threads at a time (the loop thread owns the connection).
 * RPCTLS_TEST_DIR_ENTRIES sets the size of the READDIRPLUS listing
 * (default 3000).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rpctls/nfs3_clnt.h"
#include "test.h"
#include "util/nfsd.h"

static struct tu_certs certs;
static struct tu_nfsd srv;
static char base[PATH_MAX];

static struct nfs3_sattr mode_attr(uint32_t mode)
{
    struct nfs3_sattr sa;

    memset(&sa, 0, sizeof sa);
    sa.set_mode = 1;
    sa.mode = mode;
    return sa;
}

static int connect_client(struct krpc_loop **loop, struct nfs3_clnt **nc, struct nfs3_fh *root)
{
    struct tu_dest t;
    size_t rest;

    tu_dest_init(&t, &srv, srv.port, "x", &certs, KTLS_TX_AUTO);
    if (krpc_loop_new(loop) < 0)
        return -1;
    if (nfs3_clnt_new(*loop, &t.d.rpc, nc) < 0)
        return -1;
    return nfs3_mount_prefix(*nc, t.path, root, &rest) == 0 ? 0 : -1;
}

static void close_client(struct krpc_loop *loop, struct nfs3_clnt *nc)
{
    nfs3_clnt_free(nc);
    krpc_loop_free(loop);
}

/* Every namespace and attribute procedure, in directory `top` under root.
 * Runs from one thread or from several (threaded mode) alike. */
static void exercise(struct nfs3_clnt *nc, const struct nfs3_fh *root, const char *top)
{
    static const char pattern[] = "0123456789abcdef";
    struct nfs3_fh d, f, x, l, p, s, tmp;
    struct nfs3_fattr a;
    struct nfs3_sattr sa;
    struct nfs3_fsstat_res fs;
    struct nfs3_fsinfo_res fi;
    struct nfs3_write_res wr;
    struct mb_chain data = MB_CHAIN_INIT;
    uint8_t verf[8] = {1, 2, 3, 4, 5, 6, 7, 8}, cverf[8];
    char buf[64], big[10000];
    uint32_t granted = 0;
    int eof = 0;

    sa = mode_attr(0750);
    REQUIRE(nfs3_mkdir_attr(nc, root, top, &sa, &d, &a) == 0);
    CHECK_EQ(a.type, NFS3_DIR);
    CHECK_EQ(a.mode & 07777, 0750);
    CHECK_EQ(nfs3_mkdir_attr(nc, root, top, &sa, &tmp, NULL), NFS3ERR_EXIST);

    /* CREATE: GUARDED refuses an existing name, EXCLUSIVE repeats safely. */
    sa = mode_attr(0644);
    REQUIRE(nfs3_create_how(nc, &d, "f", NFS3_CREATE_GUARDED, &sa, NULL, &f, &a) == 0);
    CHECK_EQ(a.type, NFS3_REG);
    CHECK_EQ(a.mode & 0777, 0644);
    CHECK_EQ(nfs3_create_how(nc, &d, "f", NFS3_CREATE_GUARDED, &sa, NULL, &tmp, NULL), NFS3ERR_EXIST);
    sa = mode_attr(0600);
    CHECK_EQ(nfs3_create_how(nc, &d, "x", NFS3_CREATE_EXCLUSIVE, &sa, verf, &x, &a), 0);
    CHECK_EQ(a.mode & 0777, 0600);
    CHECK_EQ(nfs3_create_how(nc, &d, "x", NFS3_CREATE_EXCLUSIVE, NULL, verf, &tmp, NULL), 0); /* a resend */
    verf[0] ^= 0xff;
    CHECK_EQ(nfs3_create_how(nc, &d, "x", NFS3_CREATE_EXCLUSIVE, NULL, verf, &tmp, NULL), NFS3ERR_EXIST);

    /* WRITE, COMMIT, READ: short at the end with eof. */
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = pattern[(i * 7) % 16];
    REQUIRE(mb_chain_append_pages_from_buf(&data, big, sizeof big) == 0);
    CHECK_EQ(nfs3_write(nc, &f, 0, NFS3_UNSTABLE, &data, &wr), 0);
    CHECK_EQ(wr.count, sizeof big);
    CHECK_EQ(nfs3_commit(nc, &f, 0, 0, cverf), 0);
    CHECK(memcmp(cverf, wr.verf, 8) == 0);
    CHECK_EQ(nfs3_read(nc, &f, 0, 4096, &data, &eof), 0);
    CHECK_EQ(data.len, 4096);
    CHECK_EQ(eof, 0);
    mb_chain_free(&data);
    CHECK_EQ(nfs3_read(nc, &f, 9000, 4096, &data, &eof), 0);
    CHECK_EQ(data.len, 1000);
    CHECK_EQ(eof, 1);
    if (data.len == 1000) {
        char got[1000];
        CHECK_EQ(mb_chain_copy_out(&data, 0, 1000, got), 0);
        CHECK(memcmp(got, big + 9000, 1000) == 0);
    }
    mb_chain_free(&data);

    /* SETATTR: mode, size, client mtime, server atime. */
    memset(&sa, 0, sizeof sa);
    sa.set_mode = 1;
    sa.mode = 0641;
    sa.set_size = 1;
    sa.size = 5000;
    sa.mtime_how = NFS3_SET_TO_CLIENT_TIME;
    sa.mtime.seconds = 1000000;
    sa.mtime.nseconds = 5000;
    sa.atime_how = NFS3_SET_TO_SERVER_TIME;
    CHECK_EQ(nfs3_setattr(nc, &f, &sa, NULL, &a), 0);
    CHECK_EQ(nfs3_getattr(nc, &f, &a), 0);
    CHECK_EQ(a.mode & 07777, 0641);
    CHECK_EQ(a.size, 5000);
    CHECK_EQ(a.mtime.seconds, 1000000);
    CHECK_EQ(a.mtime.nseconds, 5000);
    CHECK(a.atime.seconds > 1000000);
    /* A guard with a stale ctime is refused. */
    {
        struct nfs3_time stale = {1, 0};
        CHECK_EQ(nfs3_setattr(nc, &f, &sa, &stale, NULL), NFS3ERR_NOT_SYNC);
    }

    CHECK_EQ(nfs3_access(nc, &f, NFS3_ACCESS_READ | NFS3_ACCESS_MODIFY, &granted), 0);
    CHECK(granted & NFS3_ACCESS_READ);

    /* SYMLINK (also dangling), READLINK. */
    CHECK_EQ(nfs3_symlink(nc, &d, "l", "f", NULL, &l, &a), 0);
    CHECK_EQ(a.type, NFS3_LNK);
    CHECK_EQ(nfs3_readlink(nc, &l, buf, sizeof buf), 0);
    CHECK(strcmp(buf, "f") == 0);
    CHECK_EQ(nfs3_symlink(nc, &d, "dl", "../nowhere/at/all", NULL, &tmp, NULL), 0);
    CHECK_EQ(nfs3_readlink(nc, &tmp, buf, sizeof buf), 0);
    CHECK(strcmp(buf, "../nowhere/at/all") == 0);
    CHECK_EQ(nfs3_readlink(nc, &tmp, buf, 4), -ENAMETOOLONG);

    /* MKNOD: FIFOs and sockets are made with the mode asked for; device
     * nodes are refused (NOTSUPP), a regular type is BADTYPE. */
    sa = mode_attr(0600);
    CHECK_EQ(nfs3_mknod(nc, &d, "p", NFS3_FIFO, &sa, 0, 0, &p, &a), 0);
    CHECK_EQ(a.type, NFS3_FIFO);
    CHECK_EQ(a.mode & 07777, 0600);
    CHECK_EQ(nfs3_mknod(nc, &d, "s", NFS3_SOCK, &sa, 0, 0, &s, &a), 0);
    CHECK_EQ(a.type, NFS3_SOCK);
    CHECK_EQ(nfs3_mknod(nc, &d, "c", NFS3_CHR, &sa, 1, 3, &tmp, &a), NFS3ERR_NOTSUPP);
    CHECK_EQ(nfs3_mknod(nc, &d, "b", NFS3_BLK, &sa, 8, 0, &tmp, &a), NFS3ERR_NOTSUPP);
    CHECK_EQ(nfs3_mknod(nc, &d, "r", NFS3_REG, &sa, 0, 0, &tmp, &a), NFS3ERR_BADTYPE);
    CHECK_EQ(nfs3_mknod(nc, &d, "p", NFS3_FIFO, &sa, 0, 0, &tmp, &a), NFS3ERR_EXIST);

    /* LINK, RENAME, REMOVE and the link counts. */
    CHECK_EQ(nfs3_link(nc, &f, &d, "f2", &a), 0);
    CHECK_EQ(a.nlink, 2);
    snprintf(buf, sizeof buf, "%s-moved", top);
    CHECK_EQ(nfs3_rename(nc, &d, "f2", root, buf), 0);
    CHECK_EQ(nfs3_lookup(nc, &d, "f2", &tmp, NULL), NFS3ERR_NOENT);
    CHECK_EQ(nfs3_lookup(nc, root, buf, &tmp, &a), 0);
    CHECK_EQ(a.nlink, 2);
    CHECK_EQ(nfs3_remove(nc, root, buf), 0);
    CHECK_EQ(nfs3_getattr(nc, &f, &a), 0);
    CHECK_EQ(a.nlink, 1);
    CHECK_EQ(nfs3_remove(nc, root, buf), NFS3ERR_NOENT);

    /* RMDIR: not empty, then empty. */
    sa = mode_attr(0755);
    CHECK_EQ(nfs3_mkdir_attr(nc, &d, "sub", &sa, &tmp, NULL), 0);
    CHECK_EQ(nfs3_create_how(nc, &tmp, "z", NFS3_CREATE_UNCHECKED, &sa, NULL, &x, NULL), 0);
    CHECK_EQ(nfs3_rmdir(nc, &d, "sub"), NFS3ERR_NOTEMPTY);
    CHECK_EQ(nfs3_remove(nc, &tmp, "z"), 0);
    CHECK_EQ(nfs3_rmdir(nc, &d, "sub"), 0);

    /* Names: too long is refused before the wire. */
    memset(big, 'n', 300);
    big[300] = '\0';
    CHECK_EQ(nfs3_lookup(nc, &d, big, &tmp, NULL), NFS3ERR_NAMETOOLONG);

    CHECK_EQ(nfs3_fsstat(nc, root, &fs), 0);
    CHECK(fs.tbytes > 0);
    CHECK(fs.tbytes >= fs.fbytes);
    CHECK_EQ(nfs3_fsinfo(nc, root, &fi), 0);
    CHECK(fi.wtmax >= 4096);
}

/* READDIRPLUS: every name of a big directory exactly once, over many pages. */
struct listing {
    unsigned n;
    unsigned char *seen;
    unsigned dups, strangers, dots, with_fh;
};

static int list_entry(void *arg, const struct nfs3_dirent *e)
{
    struct listing *l = arg;
    unsigned i;
    char *end;

    if (strcmp(e->name, ".") == 0 || strcmp(e->name, "..") == 0) {
        l->dots++;
        return 0;
    }
    if (e->fh_present && e->attr.present)
        l->with_fh++;
    if (strncmp(e->name, "entry-", 6) != 0) {
        l->strangers++;
        return 0;
    }
    i = (unsigned)strtoul(e->name + 6, &end, 10);
    if (*end != '\0' || i >= l->n) {
        l->strangers++;
        return 0;
    }
    if (l->seen[i]++)
        l->dups++;
    return 0;
}

static void test_readdirplus_pages(void)
{
    struct krpc_loop *loop;
    struct nfs3_clnt *nc;
    struct nfs3_fh root, d, f;
    struct nfs3_sattr sa = mode_attr(0755);
    struct listing l;
    const char *env = getenv("RPCTLS_TEST_DIR_ENTRIES");
    unsigned n = env ? (unsigned)atoi(env) : 3000;
    char path[PATH_MAX], name[64];

    memset(&l, 0, sizeof l);
    l.n = n;
    l.seen = calloc(n, 1);
    REQUIRE(l.seen);
    REQUIRE(connect_client(&loop, &nc, &root) == 0);
    REQUIRE(nfs3_mkdir_attr(nc, &root, "many", &sa, &d, NULL) == 0);
    /* Made on the server's disk directly: quicker than n CREATEs. */
    for (unsigned i = 0; i < n; i++) {
        FILE *fp;
        TU_FMT(path, "%s/many/entry-%u", srv.export_dir, i);
        fp = fopen(path, "w");
        REQUIRE(fp);
        fclose(fp);
    }
    /* Small pages: many round trips with cookies and the verifier. */
    CHECK_EQ(nfs3_readdirplus(nc, &d, 1024, 4096, list_entry, &l), 0);
    CHECK_EQ(l.dups, 0);
    CHECK_EQ(l.strangers, 0);
    CHECK_EQ(l.with_fh, n);
    for (unsigned i = 0; i < n; i++)
        if (!l.seen[i]) {
            CHECK(!"a name is missing");
            break;
        }
    /* The entry's handle is a usable handle. */
    TU_FMT(name, "entry-%u", n / 2);
    CHECK_EQ(nfs3_lookup(nc, &d, name, &f, NULL), 0);
    close_client(loop, nc);
    free(l.seen);
}

static void test_one_thread(void)
{
    struct krpc_loop *loop;
    struct nfs3_clnt *nc;
    struct nfs3_fh root;
    struct krpc_cred cred;

    REQUIRE(connect_client(&loop, &nc, &root) == 0);
    exercise(nc, &root, "single");
    /* A per-thread credential (an unthreaded client uses it as well). */
    memset(&cred, 0, sizeof cred);
    cred.flavor = KRPC_AUTH_SYS;
    snprintf(cred.machine, sizeof cred.machine, "test");
    cred.uid = 1234;
    cred.gid = 4321;
    cred.ngids = 2;
    cred.gids[0] = 5;
    cred.gids[1] = 6;
    nfs3_clnt_set_thread_cred(&cred);
    CHECK_EQ(nfs3_getattr(nc, &root, NULL), 0);
    cred.ngids = KRPC_AUTH_SYS_MAX_GIDS + 1; /* refused, not sent */
    nfs3_clnt_set_thread_cred(&cred);
    CHECK_EQ(nfs3_getattr(nc, &root, NULL), -EINVAL);
    nfs3_clnt_set_thread_cred(NULL);
    /* Blocking MOUNT works only before the loop thread. */
    CHECK_EQ(nfs3_clnt_start_thread(nc), 0);
    CHECK_EQ(nfs3_mount(nc, srv.export_dir, &root), -EBUSY);
    close_client(loop, nc); /* stops the thread */
}

/* Threaded mode: several threads share one connection. */
struct worker {
    struct nfs3_clnt *nc;
    struct nfs3_fh root;
    char top[32];
    pthread_t th;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct krpc_cred cred;

    memset(&cred, 0, sizeof cred);
    cred.flavor = KRPC_AUTH_SYS;
    snprintf(cred.machine, sizeof cred.machine, "worker");
    nfs3_clnt_set_thread_cred(&cred); /* uid 0: the export is root's */
    exercise(w->nc, &w->root, w->top);
    return NULL;
}

struct async_write {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned done, ok;
};

static void async_write_cb(struct nfs3_clnt *nc, int status, const struct nfs3_write_res *res, void *arg)
{
    struct async_write *aw = arg;

    (void)nc;
    pthread_mutex_lock(&aw->mu);
    aw->done++;
    if (status == 0 && res->count == 8192)
        aw->ok++;
    pthread_cond_signal(&aw->cv);
    pthread_mutex_unlock(&aw->mu);
}

static void test_threads(void)
{
    struct krpc_loop *loop;
    struct nfs3_clnt *nc;
    struct nfs3_fh root, f;
    struct worker w[4];
    struct async_write aw;
    struct nfs3_fattr a;
    struct nfs3_sattr sa = mode_attr(0644);
    static char buf[8192];

    REQUIRE(connect_client(&loop, &nc, &root) == 0);
    REQUIRE(nfs3_clnt_start_thread(nc) == 0);
    for (int i = 0; i < 4; i++) {
        w[i].nc = nc;
        w[i].root = root;
        snprintf(w[i].top, sizeof w[i].top, "thread%d", i);
        REQUIRE(pthread_create(&w[i].th, NULL, worker_main, &w[i]) == 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(w[i].th, NULL);
    /* Asynchronous WRITEs from this thread, answered on the loop thread. */
    memset(&aw, 0, sizeof aw);
    pthread_mutex_init(&aw.mu, NULL);
    pthread_cond_init(&aw.cv, NULL);
    REQUIRE(nfs3_create_how(nc, &root, "async", NFS3_CREATE_UNCHECKED, &sa, NULL, &f, NULL) == 0);
    memset(buf, 'a', sizeof buf);
    for (int i = 0; i < 16; i++) {
        struct mb_chain c = MB_CHAIN_INIT;
        REQUIRE(mb_chain_append_pages_from_buf(&c, buf, sizeof buf) == 0);
        CHECK_EQ(nfs3_write_async(nc, &f, (uint64_t)i * sizeof buf, NFS3_UNSTABLE, &c, async_write_cb, &aw), 0);
    }
    pthread_mutex_lock(&aw.mu);
    while (aw.done < 16)
        pthread_cond_wait(&aw.cv, &aw.mu); /* every call ends: the RPC client's timeouts bound it */
    pthread_mutex_unlock(&aw.mu);
    CHECK_EQ(aw.ok, 16);
    CHECK_EQ(nfs3_getattr(nc, &f, &a), 0);
    CHECK_EQ(a.size, 16 * sizeof buf);
    close_client(loop, nc);
    pthread_mutex_destroy(&aw.mu);
    pthread_cond_destroy(&aw.cv);
}

int main(void)
{
    char real[PATH_MAX];

    if (tu_certs_create(&certs) < 0 || tu_mkdtemp(base, sizeof base, "nfs3-clnt-ops") < 0)
        return 1;
    if (realpath(base, real))
        TU_FMT(base, "%s", real);
    if (tu_nfsd_init(&srv, base, "srv", "required", &certs) < 0 || tu_nfsd_start(&srv, 0) < 0) {
        fprintf(stderr, "cannot start rpctls-nfsd\n");
        return 1;
    }
    TEST_RUN(test_one_thread);
    TEST_RUN(test_threads);
    TEST_RUN(test_readdirplus_pages);
    CHECK_EQ(tu_nfsd_stop(&srv), 0);
    CHECK_EQ(mb_pool_shutdown(), 0);
    tu_rmtree(base);
    tu_certs_destroy(&certs);
    return test_summary();
}
