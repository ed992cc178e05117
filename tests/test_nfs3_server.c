/*
 * test_nfs3_server.c - the NFSv3 server (nfs3_srv) live on loopback: a
 * server thread with its own loop on a temporary export, our RPC client and
 * the nfs3 codecs on the test thread.
 *
 *   - MOUNT: MNT of the export path (with and without a trailing slash),
 *     MNT of anything else, EXPORT, DUMP;
 *   - every procedure's happy path, READDIR paging by cookie, TOOSMALL,
 *     EXCLUSIVE create retried, SETATTR guard;
 *   - bad input: garbage, truncated, empty, over-long and forged handles;
 *     handles of removed files; ".." at the root; a symlink to /etc inside
 *     the export (looked up as NF3LNK, never read, written or entered);
 *     names with '/'; a WRITE whose count disagrees with its data
 *     (GARBAGE_ARGS, per nfs3.h); a WRITE over the advertised wtmax
 *     (INVAL, nothing written); the server keeps serving after each;
 *   - RPC-with-TLS required: a TLS client mounts, writes 1 MiB and reads it
 *     back (READ pages go through the record layer); a plain client is
 *     refused (AUTH_TOOWEAK);
 *   - handles of removed files (REMOVE, RMDIR, RENAME over, or behind
 *     the server's back) are STALE on every call without an export walk
 *     per call; after a restart live handles are found by walking;
 *   - a restart with the same state directory: old handles still work
 *     (through the export walk), the write verifier changed; another state
 *     directory's key makes them BADHANDLE.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rpctls/krpc.h"
#include "rpctls/krpc_clnt.h"
#include "rpctls/krpc_svc.h"
#include "rpctls/mbuf.h"
#include "rpctls/nfs3.h"
#include "rpctls/nfs3_srv.h"
#include "test.h"
#include "util/certs.h"

static char g_base[256], g_export[300], g_state[300], g_state2[300];

/* ---- server on its own thread ---------------------------------------------- */

struct srv_inst {
    struct krpc_loop *loop;
    struct krpc_svc *svc;
    struct nfs3_srv *srv;
    pthread_t thr;
    uint16_t port;
};

static void *srv_thread(void *arg)
{
    struct srv_inst *si = arg;
    krpc_loop_run(si->loop, NULL, -1);
    return NULL;
}

static struct tu_certs g_certs;
static uint32_t g_wtmax; /* the next server's wtmax; 0: the default */
static int g_mount_requires_tls; /* the next server's nfs3_srv_config.mount_requires_tls */

static int srv_start_tls(struct srv_inst *si, const char *state, int tls)
{
    struct krpc_svc_config cfg;
    struct nfs3_srv_config scfg;
    char err[256];

    memset(si, 0, sizeof(*si));
    memset(&cfg, 0, sizeof(cfg));
    if (krpc_parse_addr("127.0.0.1:0", &cfg.addr, &cfg.addrlen) != 0 || krpc_loop_new(&si->loop) != 0)
        return -1;
    if (tls) {
        cfg.tls = KRPC_SVC_TLS_REQUIRED;
        cfg.tlscfg.cert_file = g_certs.server_cert;
        cfg.tlscfg.key_file = g_certs.server_key;
        cfg.tlscfg.ca_file = g_certs.ca_cert;
        cfg.tlscfg.verify_peer = 2;
    }
    if (krpc_svc_new(si->loop, &cfg, &si->svc) != 0)
        return -1;
    memset(&scfg, 0, sizeof(scfg));
    scfg.export_path = g_export;
    scfg.state_dir = state;
    scfg.wtmax = g_wtmax;
    scfg.mount_requires_tls = g_mount_requires_tls;
    /* The test runs as root and calls as uid 0: keep it root. Calls run on
     * two workers (the pool's deferred replies), unless
     * RPCTLS_TEST_IO_THREADS says otherwise (0: on the loop). */
    scfg.opts.squash = NFS3_SQUASH_NONE;
    scfg.io_threads = getenv("RPCTLS_TEST_IO_THREADS") ? (unsigned)atoi(getenv("RPCTLS_TEST_IO_THREADS")) : 2;
    if (nfs3_srv_new(si->svc, &scfg, &si->srv, err, sizeof(err)) != 0) {
        fprintf(stderr, "nfs3_srv_new: %s\n", err);
        return -1;
    }
    si->port = krpc_svc_port(si->svc);
    return pthread_create(&si->thr, NULL, srv_thread, si) == 0 ? 0 : -1;
}

static int srv_start(struct srv_inst *si, const char *state)
{
    return srv_start_tls(si, state, 0);
}

static void srv_stop(struct srv_inst *si)
{
    krpc_loop_stop(si->loop);
    pthread_join(si->thr, NULL);
    krpc_svc_free(si->svc);
    krpc_loop_run(si->loop, NULL, 30); /* connections close from the loop */
    nfs3_srv_free(si->srv);
    krpc_loop_free(si->loop);
}

/* ---- client ------------------------------------------------------------------ */

struct cli {
    struct krpc_loop *loop;
    struct krpc_clnt *mnt, *nfs;
};

static int cli_open_tls(struct cli *c, uint16_t port, int tls)
{
    struct krpc_clnt_config cc;
    char addr[32];

    memset(c, 0, sizeof(*c));
    if (krpc_loop_new(&c->loop) != 0)
        return -1;
    memset(&cc, 0, sizeof(cc));
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
    krpc_parse_addr(addr, &cc.addr, &cc.addrlen);
    cc.cred.flavor = KRPC_AUTH_SYS;
    snprintf(cc.cred.machine, sizeof(cc.cred.machine), "test");
    cc.timeout_ms = 5000;
    cc.max_retries = 2;
    cc.reconnect_delay_ms = 10;
    if (tls) {
        cc.tls = KRPC_TLS_REQUIRED;
        cc.tlscfg.ca_file = g_certs.ca_cert;
        cc.tlscfg.cert_file = g_certs.client_cert;
        cc.tlscfg.key_file = g_certs.client_key;
        cc.tlscfg.server_name = "127.0.0.1";
    }
    cc.prog = NFS3_MNT_PROGRAM;
    cc.vers = NFS3_MNT_VERSION;
    if (krpc_clnt_new(c->loop, &cc, &c->mnt) != 0)
        return -1;
    cc.prog = NFS3_PROGRAM;
    cc.vers = NFS3_VERSION;
    /* AUTH_SYS uid 0 (the default): AUTH_NONE would run as the anonymous
     * user (test_nfs3_identity.c), which may not write the export. */
    return krpc_clnt_new(c->loop, &cc, &c->nfs);
}

static int cli_open(struct cli *c, uint16_t port)
{
    return cli_open_tls(c, port, 0);
}

static void cli_close(struct cli *c)
{
    krpc_clnt_free(c->mnt);
    krpc_clnt_free(c->nfs);
    krpc_loop_run(c->loop, NULL, 30);
    krpc_loop_free(c->loop);
}

/* Calls proc with args (consumed); 0 and rep filled for an accepted SUCCESS,
 * else the accept status as a positive number or a negative errno. */
static int rpc(struct krpc_clnt *cl, uint32_t proc, struct mb_chain *args, struct krpc_reply *rep)
{
    int r;

    memset(rep, 0, sizeof(*rep));
    r = krpc_call(cl, proc, args, rep);
    if (r != 0)
        return r;
    if (rep->hdr.reply_stat != KRPC_MSG_ACCEPTED)
        return -EACCES;
    return (int)rep->hdr.accept_stat;
}

/* Encode args with ENC, call, decode with DEC into *RES. Evaluates to 0 or
 * an rpc()/decode error. */
#define CALL(cl, proc, ENC, argp, DEC, resp)                                                   \
    ({                                                                                        \
        struct mb_chain a_ = MB_CHAIN_INIT;                                                   \
        struct krpc_xdr_enc x_;                                                               \
        struct krpc_reply rp_;                                                                \
        int r_ = -EINVAL;                                                                     \
        memset(&rp_, 0, sizeof(rp_));                                                         \
        krpc_xdr_enc_init(&x_, &a_);                                                          \
        ENC(&x_, argp);                                                                       \
        if (krpc_xdr_enc_error(&x_) == 0)                                                     \
            r_ = rpc(cl, proc, &a_, &rp_);                                                    \
        else                                                                                  \
            mb_chain_free(&a_);                                                               \
        if (r_ == 0)                                                                          \
            r_ = DEC(&rp_.res, resp);                                                         \
        krpc_reply_free(&rp_);                                                                \
        r_;                                                                                   \
    })

static struct nfs3_fh g_root;

static int do_mnt(struct cli *c, const char *path, struct nfs3_mnt_res *r)
{
    struct nfs3_mnt_args a;
    memset(&a, 0, sizeof(a));
    snprintf(a.dirpath, sizeof(a.dirpath), "%s", path);
    return CALL(c->mnt, NFS3_MNT_PROC_MNT, nfs3_mnt_enc_mnt_args, &a, nfs3_mnt_dec_mnt_res, r);
}

static uint32_t getattr(struct cli *c, const struct nfs3_fh *fh, struct nfs3_fattr *out)
{
    struct nfs3_fh_args a = {*fh};
    struct nfs3_getattr_res r;
    if (CALL(c->nfs, NFS3_PROC_GETATTR, nfs3_enc_getattr_args, &a, nfs3_dec_getattr_res, &r) != 0)
        return 0xdead;
    if (out != NULL)
        *out = r.attr;
    return r.status;
}

static uint32_t lookup(struct cli *c, const struct nfs3_fh *dir, const char *name, struct nfs3_lookup_res *r)
{
    struct nfs3_diropargs a;
    memset(&a, 0, sizeof(a));
    a.dir = *dir;
    snprintf(a.name, sizeof(a.name), "%s", name);
    if (CALL(c->nfs, NFS3_PROC_LOOKUP, nfs3_enc_lookup_args, &a, nfs3_dec_lookup_res, r) != 0)
        return 0xdead;
    return r->status;
}

static uint32_t create(struct cli *c, const struct nfs3_fh *dir, const char *name, uint32_t mode,
                       const uint8_t *verf, struct nfs3_diropres *r)
{
    struct nfs3_create_args a;
    memset(&a, 0, sizeof(a));
    a.where.dir = *dir;
    snprintf(a.where.name, sizeof(a.where.name), "%s", name);
    a.mode = mode;
    if (verf != NULL)
        memcpy(a.verf, verf, 8);
    else {
        a.attr.set_mode = 1;
        a.attr.mode = 0644;
    }
    if (CALL(c->nfs, NFS3_PROC_CREATE, nfs3_enc_create_args, &a, nfs3_dec_create_res, r) != 0)
        return 0xdead;
    return r->status;
}

static uint32_t write_data(struct cli *c, const struct nfs3_fh *fh, uint64_t off, const void *buf, size_t len,
                           uint32_t stable, struct nfs3_write_res *r)
{
    struct nfs3_write_args a;
    memset(&a, 0, sizeof(a));
    a.fh = *fh;
    a.offset = off;
    a.count = (uint32_t)len;
    a.stable = stable;
    mb_chain_init(&a.data);
    if (len > 0 && mb_chain_append_pages_from_buf(&a.data, buf, len) != 0)
        return 0xdead;
    if (CALL(c->nfs, NFS3_PROC_WRITE, nfs3_enc_write_args, &a, nfs3_dec_write_res, r) != 0)
        return 0xdead;
    return r->status;
}

static uint32_t read_data(struct cli *c, const struct nfs3_fh *fh, uint64_t off, uint32_t count, void *buf,
                          uint32_t *got, int *eof)
{
    struct nfs3_read_args a;
    struct nfs3_read_res r;
    memset(&a, 0, sizeof(a));
    a.fh = *fh;
    a.offset = off;
    a.count = count;
    if (CALL(c->nfs, NFS3_PROC_READ, nfs3_enc_read_args, &a, nfs3_dec_read_res, &r) != 0)
        return 0xdead;
    *got = r.count;
    *eof = r.eof;
    if (r.status == NFS3_OK && buf != NULL)
        mb_chain_copy_out(&r.data, 0, r.data.len, buf);
    nfs3_read_res_free(&r);
    return r.status;
}

static uint32_t remove_name(struct cli *c, const struct nfs3_fh *dir, const char *name, int rmdir)
{
    struct nfs3_diropargs a;
    struct nfs3_wcc_res r;
    memset(&a, 0, sizeof(a));
    a.dir = *dir;
    snprintf(a.name, sizeof(a.name), "%s", name);
    if ((rmdir ? CALL(c->nfs, NFS3_PROC_RMDIR, nfs3_enc_rmdir_args, &a, nfs3_dec_rmdir_res, &r)
               : CALL(c->nfs, NFS3_PROC_REMOVE, nfs3_enc_remove_args, &a, nfs3_dec_remove_res, &r)) != 0)
        return 0xdead;
    return r.status;
}

/* READDIR(PLUS) name collector. */
struct names {
    char list[64][NFS3_MAXNAMLEN + 1];
    int n;
    uint64_t last_cookie;
    int with_fh;
};

static int collect(void *arg, const struct nfs3_dirent *e)
{
    struct names *nm = arg;
    if (nm->n < 64)
        snprintf(nm->list[nm->n++], sizeof(nm->list[0]), "%s", e->name);
    nm->last_cookie = e->cookie;
    if (e->fh_present && e->attr.present)
        nm->with_fh++;
    return 0;
}

static int has_name(const struct names *nm, const char *name)
{
    for (int i = 0; i < nm->n; i++)
        if (strcmp(nm->list[i], name) == 0)
            return 1;
    return 0;
}

static uint32_t readdir_call(struct cli *c, const struct nfs3_fh *dir, int plus, uint64_t cookie, uint32_t count,
                             struct names *nm, int *eof)
{
    struct nfs3_readdir_res r;
    struct mb_chain args = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    struct krpc_reply rep;
    int ret;

    krpc_xdr_enc_init(&x, &args);
    if (plus) {
        struct nfs3_readdirplus_args a;
        memset(&a, 0, sizeof(a));
        a.dir = *dir;
        a.cookie = cookie;
        a.dircount = count;
        a.maxcount = count;
        nfs3_enc_readdirplus_args(&x, &a);
    } else {
        struct nfs3_readdir_args a;
        memset(&a, 0, sizeof(a));
        a.dir = *dir;
        a.cookie = cookie;
        a.count = count;
        nfs3_enc_readdir_args(&x, &a);
    }
    ret = rpc(c->nfs, plus ? NFS3_PROC_READDIRPLUS : NFS3_PROC_READDIR, &args, &rep);
    if (ret != 0)
        return 0xdead;
    ret = plus ? nfs3_dec_readdirplus_res(&rep.res, &r, collect, nm) : nfs3_dec_readdir_res(&rep.res, &r, collect, nm);
    krpc_reply_free(&rep);
    if (ret != 0)
        return 0xdead;
    *eof = r.eof;
    return r.status;
}

/* ---- tests ---------------------------------------------------------------------- */

static struct srv_inst g_si;

static void test_mount(void)
{
    struct cli c;
    struct nfs3_mnt_res r;
    char path[400];

    REQUIRE(cli_open(&c, g_si.port) == 0);
    /* NULL on both programs. */
    struct krpc_reply rep;
    CHECK_EQ(rpc(c.mnt, 0, NULL, &rep), 0);
    krpc_reply_free(&rep);
    CHECK_EQ(rpc(c.nfs, 0, NULL, &rep), 0);
    krpc_reply_free(&rep);

    REQUIRE(do_mnt(&c, g_export, &r) == 0);
    CHECK_EQ(r.status, MNT3_OK);
    CHECK(r.nflavors >= 1);
    g_root = r.fh;
    CHECK(g_root.len > 0 && g_root.len <= NFS3_FHSIZE);
    snprintf(path, sizeof(path), "%s/", g_export);
    REQUIRE(do_mnt(&c, path, &r) == 0);
    CHECK_EQ(r.status, MNT3_OK);
    CHECK(r.fh.len == g_root.len && memcmp(r.fh.data, g_root.data, g_root.len) == 0);
    REQUIRE(do_mnt(&c, "/etc", &r) == 0);
    CHECK(r.status == MNT3ERR_NOENT || r.status == MNT3ERR_ACCES);
    snprintf(path, sizeof(path), "%s/..", g_export);
    REQUIRE(do_mnt(&c, path, &r) == 0);
    CHECK(r.status != MNT3_OK);
    REQUIRE(do_mnt(&c, "/", &r) == 0);
    CHECK(r.status != MNT3_OK);
    /* A directory beneath the export mounts (as with the kernel's mountd);
     * through a symlink or ".." it does not. */
    {
        char p[400];
        snprintf(p, sizeof(p), "%s/mdir/inner", g_export);
        snprintf(path, sizeof(path), "%s/mdir", g_export);
        CHECK(mkdir(path, 0755) == 0 && mkdir(p, 0755) == 0);
        REQUIRE(do_mnt(&c, p, &r) == 0);
        CHECK_EQ(r.status, MNT3_OK);
        struct nfs3_fh inner = r.fh;
        struct nfs3_fattr fa;
        CHECK_EQ(getattr(&c, &inner, &fa), NFS3_OK);
        CHECK_EQ(fa.type, NFS3_DIR);
        snprintf(p, sizeof(p), "%s/mlink", g_export);
        CHECK(symlink("/etc", p) == 0);
        REQUIRE(do_mnt(&c, p, &r) == 0);
        CHECK_EQ(r.status, MNT3ERR_ACCES);
        snprintf(p, sizeof(p), "%s/mlink/ssl", g_export);
        REQUIRE(do_mnt(&c, p, &r) == 0);
        CHECK(r.status != MNT3_OK);
        snprintf(p, sizeof(p), "%s/mdir/../mdir", g_export);
        REQUIRE(do_mnt(&c, p, &r) == 0);
        CHECK(r.status != MNT3_OK);
        snprintf(p, sizeof(p), "%s/nothere", g_export);
        REQUIRE(do_mnt(&c, p, &r) == 0);
        CHECK_EQ(r.status, MNT3ERR_NOENT);
        snprintf(p, sizeof(p), "%s/mlink", g_export);
        CHECK(unlink(p) == 0);
        snprintf(p, sizeof(p), "%s/mdir/inner", g_export);
        CHECK(rmdir(p) == 0 && rmdir(path) == 0);
        CHECK_EQ(getattr(&c, &inner, &fa), NFS3ERR_STALE);
    }

    /* EXPORT lists the one export. */
    {
        struct mb_chain a = MB_CHAIN_INIT;
        static struct nfs3_mnt_export ex[4];
        uint32_t n = 0;
        REQUIRE(rpc(c.mnt, NFS3_MNT_PROC_EXPORT, &a, &rep) == 0);
        CHECK_EQ(nfs3_mnt_dec_export_res(&rep.res, ex, 4, &n), 0);
        CHECK_EQ(n, 1);
        CHECK(strcmp(ex[0].dir, g_export) == 0);
        krpc_reply_free(&rep);
        static struct nfs3_mnt_mount m[4];
        REQUIRE(rpc(c.mnt, NFS3_MNT_PROC_DUMP, NULL, &rep) == 0);
        CHECK_EQ(nfs3_mnt_dec_dump_res(&rep.res, m, 4, &n), 0);
        krpc_reply_free(&rep);
    }
    cli_close(&c);
}

static void test_happy_paths(void)
{
    struct cli c;
    struct nfs3_diropres cr;
    struct nfs3_lookup_res lr;
    struct nfs3_write_res wr;
    struct nfs3_fattr fa;
    static unsigned char buf[300000], back[300000];
    uint32_t got;
    int eof;

    REQUIRE(cli_open(&c, g_si.port) == 0);
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (unsigned char)(i * 7 + (i >> 9));

    /* CREATE, WRITE (unstable then file-sync), READ, COMMIT. */
    REQUIRE(create(&c, &g_root, "a.txt", NFS3_CREATE_UNCHECKED, NULL, &cr) == NFS3_OK);
    CHECK(cr.fh_present && cr.obj_attr.present);
    CHECK_EQ(cr.obj_attr.attr.type, NFS3_REG);
    CHECK_EQ(cr.obj_attr.attr.mode, 0644);
    CHECK(cr.dir_wcc.before.present && cr.dir_wcc.after.present);
    struct nfs3_fh fh = cr.fh;
    REQUIRE(write_data(&c, &fh, 0, buf, 200000, NFS3_UNSTABLE, &wr) == NFS3_OK);
    CHECK_EQ(wr.count, 200000);
    CHECK_EQ(wr.committed, NFS3_UNSTABLE);
    uint8_t verf[8];
    memcpy(verf, wr.verf, 8);
    REQUIRE(write_data(&c, &fh, 200000, buf + 200000, 100000, NFS3_FILE_SYNC, &wr) == NFS3_OK);
    CHECK_EQ(wr.committed, NFS3_FILE_SYNC);
    CHECK(memcmp(verf, wr.verf, 8) == 0);
    CHECK(wr.file_wcc.before.present && wr.file_wcc.before.size == 200000);
    CHECK(wr.file_wcc.after.present && wr.file_wcc.after.attr.size == 300000);
    REQUIRE(write_data(&c, &fh, 0, buf, 10, NFS3_DATA_SYNC, &wr) == NFS3_OK);
    CHECK(wr.committed == NFS3_DATA_SYNC || wr.committed == NFS3_FILE_SYNC);

    memset(back, 0, sizeof(back));
    size_t off = 0;
    eof = 0;
    while (!eof && off < sizeof(back)) {
        REQUIRE(read_data(&c, &fh, off, 65536, back + off, &got, &eof) == NFS3_OK);
        off += got;
        if (got == 0)
            break;
    }
    CHECK_EQ(off, 300000);
    CHECK(eof);
    CHECK(memcmp(buf, back, sizeof(buf)) == 0);
    CHECK_EQ(read_data(&c, &fh, 299990, 100, NULL, &got, &eof), NFS3_OK);
    CHECK_EQ(got, 10);
    CHECK(eof);
    CHECK_EQ(read_data(&c, &fh, 400000, 100, NULL, &got, &eof), NFS3_OK);
    CHECK_EQ(got, 0);
    CHECK(eof);
    CHECK_EQ(read_data(&c, &fh, 0, 100, NULL, &got, &eof), NFS3_OK);
    CHECK_EQ(got, 100);
    CHECK(!eof);
    /* The bytes are in the exported file itself. */
    {
        char p[400];
        struct stat st;
        snprintf(p, sizeof(p), "%s/a.txt", g_export);
        CHECK(stat(p, &st) == 0 && st.st_size == 300000);
    }
    {
        struct nfs3_commit_args a = {fh, 0, 0};
        struct nfs3_commit_res r;
        REQUIRE(CALL(c.nfs, NFS3_PROC_COMMIT, nfs3_enc_commit_args, &a, nfs3_dec_commit_res, &r) == 0);
        CHECK_EQ(r.status, NFS3_OK);
        CHECK(memcmp(r.verf, verf, 8) == 0);
        uint8_t sv[8];
        nfs3_srv_write_verf(g_si.srv, sv);
        CHECK(memcmp(sv, verf, 8) == 0);
    }

    /* GETATTR, LOOKUP, ACCESS. */
    CHECK_EQ(getattr(&c, &fh, &fa), NFS3_OK);
    CHECK_EQ(fa.size, 300000);
    CHECK_EQ(fa.type, NFS3_REG);
    REQUIRE(lookup(&c, &g_root, "a.txt", &lr) == NFS3_OK);
    CHECK(lr.fh.len == fh.len && memcmp(lr.fh.data, fh.data, fh.len) == 0);
    CHECK(lr.obj_attr.present && lr.dir_attr.present);
    CHECK_EQ(lookup(&c, &g_root, "nope", &lr), NFS3ERR_NOENT);
    CHECK(lr.dir_attr.present);
    {
        struct nfs3_access_args a = {fh, NFS3_ACCESS_READ | NFS3_ACCESS_MODIFY | NFS3_ACCESS_LOOKUP};
        struct nfs3_access_res r;
        REQUIRE(CALL(c.nfs, NFS3_PROC_ACCESS, nfs3_enc_access_args, &a, nfs3_dec_access_res, &r) == 0);
        CHECK_EQ(r.status, NFS3_OK);
        CHECK(r.access & NFS3_ACCESS_READ);
        CHECK(r.access & NFS3_ACCESS_MODIFY);
        CHECK(!(r.access & NFS3_ACCESS_LOOKUP)); /* not a directory */
    }

    /* SETATTR: size and mode; a guard that does not match is NOT_SYNC. */
    {
        struct nfs3_setattr_args a;
        struct nfs3_wcc_res r;
        memset(&a, 0, sizeof(a));
        a.fh = fh;
        a.attr.set_size = 1;
        a.attr.size = 1000;
        a.attr.set_mode = 1;
        a.attr.mode = 0600;
        a.attr.mtime_how = NFS3_SET_TO_CLIENT_TIME;
        a.attr.mtime.seconds = 1000000000;
        REQUIRE(CALL(c.nfs, NFS3_PROC_SETATTR, nfs3_enc_setattr_args, &a, nfs3_dec_setattr_res, &r) == 0);
        CHECK_EQ(r.status, NFS3_OK);
        CHECK(r.wcc.before.present && r.wcc.before.size == 300000);
        CHECK(r.wcc.after.present && r.wcc.after.attr.size == 1000 && r.wcc.after.attr.mode == 0600);
        CHECK_EQ(r.wcc.after.attr.mtime.seconds, 1000000000);
        a.attr.set_size = 0;
        a.attr.set_mode = 1;
        a.attr.mode = 0640;
        a.attr.mtime_how = NFS3_DONT_CHANGE;
        a.guard_check = 1;
        a.guard_ctime.seconds = 1;
        REQUIRE(CALL(c.nfs, NFS3_PROC_SETATTR, nfs3_enc_setattr_args, &a, nfs3_dec_setattr_res, &r) == 0);
        CHECK_EQ(r.status, NFS3ERR_NOT_SYNC);
        CHECK_EQ(getattr(&c, &fh, &fa), NFS3_OK);
        CHECK_EQ(fa.mode, 0600);
        a.guard_ctime = fa.ctime;
        REQUIRE(CALL(c.nfs, NFS3_PROC_SETATTR, nfs3_enc_setattr_args, &a, nfs3_dec_setattr_res, &r) == 0);
        CHECK_EQ(r.status, NFS3_OK);
        CHECK_EQ(getattr(&c, &fh, &fa), NFS3_OK);
        CHECK_EQ(fa.mode, 0640);
        /* Set-user-ID and set-group-ID bits from a client are dropped. */
        a.guard_check = 0;
        a.attr.mode = 06755;
        REQUIRE(CALL(c.nfs, NFS3_PROC_SETATTR, nfs3_enc_setattr_args, &a, nfs3_dec_setattr_res, &r) == 0);
        CHECK_EQ(r.status, NFS3_OK);
        CHECK_EQ(getattr(&c, &fh, &fa), NFS3_OK);
        CHECK_EQ(fa.mode, 0755);
    }

    /* CREATE modes: GUARDED on an existing name, EXCLUSIVE retried. */
    CHECK_EQ(create(&c, &g_root, "a.txt", NFS3_CREATE_GUARDED, NULL, &cr), NFS3ERR_EXIST);
    CHECK_EQ(create(&c, &g_root, "a.txt", NFS3_CREATE_UNCHECKED, NULL, &cr), NFS3_OK);
    {
        const uint8_t v1[8] = {1, 2, 3, 4, 5, 6, 7, 8}, v2[8] = {9, 9, 9, 9, 9, 9, 9, 9};
        struct nfs3_diropres r1, r2;
        REQUIRE(create(&c, &g_root, "excl", NFS3_CREATE_EXCLUSIVE, v1, &r1) == NFS3_OK);
        REQUIRE(create(&c, &g_root, "excl", NFS3_CREATE_EXCLUSIVE, v1, &r2) == NFS3_OK);
        CHECK(r1.fh.len == r2.fh.len && memcmp(r1.fh.data, r2.fh.data, r1.fh.len) == 0);
        CHECK_EQ(create(&c, &g_root, "excl", NFS3_CREATE_EXCLUSIVE, v2, &r2), NFS3ERR_EXIST);
        CHECK_EQ(remove_name(&c, &g_root, "excl", 0), NFS3_OK);
    }

    /* MKDIR, RENAME into it, LOOKUP there, READDIRPLUS of it. */
    struct nfs3_fh dfh;
    {
        struct nfs3_mkdir_args a;
        memset(&a, 0, sizeof(a));
        a.where.dir = g_root;
        snprintf(a.where.name, sizeof(a.where.name), "d");
        a.attr.set_mode = 1;
        a.attr.mode = 0750;
        REQUIRE(CALL(c.nfs, NFS3_PROC_MKDIR, nfs3_enc_mkdir_args, &a, nfs3_dec_mkdir_res, &cr) == 0);
        REQUIRE(cr.status == NFS3_OK);
        CHECK_EQ(cr.obj_attr.attr.type, NFS3_DIR);
        CHECK_EQ(cr.obj_attr.attr.mode, 0750);
        dfh = cr.fh;
        REQUIRE(CALL(c.nfs, NFS3_PROC_MKDIR, nfs3_enc_mkdir_args, &a, nfs3_dec_mkdir_res, &cr) == 0);
        CHECK_EQ(cr.status, NFS3ERR_EXIST);
    }
    {
        struct nfs3_rename_args a;
        struct nfs3_rename_res r;
        memset(&a, 0, sizeof(a));
        a.from.dir = g_root;
        snprintf(a.from.name, sizeof(a.from.name), "a.txt");
        a.to.dir = dfh;
        snprintf(a.to.name, sizeof(a.to.name), "b.txt");
        REQUIRE(CALL(c.nfs, NFS3_PROC_RENAME, nfs3_enc_rename_args, &a, nfs3_dec_rename_res, &r) == 0);
        CHECK_EQ(r.status, NFS3_OK);
        CHECK(r.fromdir_wcc.after.present && r.todir_wcc.after.present);
        REQUIRE(CALL(c.nfs, NFS3_PROC_RENAME, nfs3_enc_rename_args, &a, nfs3_dec_rename_res, &r) == 0);
        CHECK_EQ(r.status, NFS3ERR_NOENT);
    }
    CHECK_EQ(lookup(&c, &g_root, "a.txt", &lr), NFS3ERR_NOENT);
    REQUIRE(lookup(&c, &dfh, "b.txt", &lr) == NFS3_OK);
    CHECK(memcmp(lr.fh.data, fh.data, fh.len) == 0); /* same inode, same handle */
    CHECK_EQ(getattr(&c, &fh, &fa), NFS3_OK);         /* the old handle follows the rename */
    {
        struct names nm;
        memset(&nm, 0, sizeof(nm));
        CHECK_EQ(readdir_call(&c, &dfh, 1, 0, 8192, &nm, &eof), NFS3_OK);
        CHECK(eof);
        CHECK(has_name(&nm, "b.txt") && has_name(&nm, ".") && has_name(&nm, ".."));
        CHECK_EQ(nm.with_fh, nm.n);
    }

    /* READDIR paging: 40 files, small counts, every name once. */
    {
        char name[32];
        struct names nm;
        uint64_t cookie = 0;
        int calls = 0;
        for (int i = 0; i < 40; i++) {
            snprintf(name, sizeof(name), "file-%02d", i);
            REQUIRE(create(&c, &dfh, name, NFS3_CREATE_GUARDED, NULL, &cr) == NFS3_OK);
        }
        memset(&nm, 0, sizeof(nm));
        eof = 0;
        while (!eof && calls < 100) {
            int before = nm.n;
            REQUIRE(readdir_call(&c, &dfh, 0, cookie, 300, &nm, &eof) == NFS3_OK);
            CHECK(nm.n > before || eof);
            cookie = nm.last_cookie;
            calls++;
        }
        CHECK(eof);
        CHECK(calls > 3);
        CHECK_EQ(nm.n, 43); /* 40 + b.txt + . + .. */
        for (int i = 0; i < 40; i++) {
            snprintf(name, sizeof(name), "file-%02d", i);
            CHECK(has_name(&nm, name));
        }
        /* The same with READDIRPLUS. */
        memset(&nm, 0, sizeof(nm));
        cookie = 0;
        eof = 0;
        calls = 0;
        while (!eof && calls < 100) {
            REQUIRE(readdir_call(&c, &dfh, 1, cookie, 1200, &nm, &eof) == NFS3_OK);
            cookie = nm.last_cookie;
            calls++;
        }
        CHECK_EQ(nm.n, 43);
        CHECK_EQ(nm.with_fh, 43);
        /* Not even one entry fits. */
        memset(&nm, 0, sizeof(nm));
        CHECK_EQ(readdir_call(&c, &dfh, 0, 0, 110, &nm, &eof), NFS3ERR_TOOSMALL);
        CHECK_EQ(readdir_call(&c, &dfh, 1, 0, 120, &nm, &eof), NFS3ERR_TOOSMALL);
        /* A count of 0 is a reply that holds nothing, never "no limit". */
        CHECK_EQ(readdir_call(&c, &dfh, 0, 0, 0, &nm, &eof), NFS3ERR_TOOSMALL);
        CHECK_EQ(readdir_call(&c, &dfh, 1, 0, 0, &nm, &eof), NFS3ERR_TOOSMALL);
        /* READDIR of a file. */
        CHECK_EQ(readdir_call(&c, &fh, 0, 0, 4096, &nm, &eof), NFS3ERR_NOTDIR);
        for (int i = 0; i < 40; i++) {
            snprintf(name, sizeof(name), "file-%02d", i);
            CHECK_EQ(remove_name(&c, &dfh, name, 0), NFS3_OK);
        }
    }

    /* REMOVE / RMDIR errors and success. */
    CHECK_EQ(remove_name(&c, &g_root, "d", 1), NFS3ERR_NOTEMPTY);
    CHECK_EQ(remove_name(&c, &g_root, "d", 0), NFS3ERR_ISDIR);
    CHECK_EQ(remove_name(&c, &dfh, "b.txt", 1), NFS3ERR_NOTDIR);
    CHECK_EQ(remove_name(&c, &dfh, "b.txt", 0), NFS3_OK);
    CHECK_EQ(remove_name(&c, &dfh, "b.txt", 0), NFS3ERR_NOENT);
    CHECK_EQ(getattr(&c, &fh, NULL), NFS3ERR_STALE); /* handle of a removed file */
    CHECK_EQ(read_data(&c, &fh, 0, 10, NULL, &got, &eof), NFS3ERR_STALE);
    CHECK_EQ(remove_name(&c, &g_root, "d", 1), NFS3_OK);
    CHECK_EQ(getattr(&c, &dfh, NULL), NFS3ERR_STALE);

    /* FSSTAT, FSINFO, PATHCONF. */
    {
        struct nfs3_fh_args a = {g_root};
        struct nfs3_fsstat_res s;
        struct nfs3_fsinfo_res i;
        struct nfs3_pathconf_res p;
        REQUIRE(CALL(c.nfs, NFS3_PROC_FSSTAT, nfs3_enc_fsstat_args, &a, nfs3_dec_fsstat_res, &s) == 0);
        CHECK_EQ(s.status, NFS3_OK);
        CHECK(s.tbytes > 0 && s.tbytes >= s.fbytes && s.fbytes >= s.abytes);
        REQUIRE(CALL(c.nfs, NFS3_PROC_FSINFO, nfs3_enc_fsinfo_args, &a, nfs3_dec_fsinfo_res, &i) == 0);
        CHECK_EQ(i.status, NFS3_OK);
        CHECK_EQ(i.rtmax, NFS3_SRV_DEFAULT_TMAX);
        CHECK_EQ(i.wtmax, NFS3_SRV_DEFAULT_TMAX);
        CHECK(i.properties & NFS3_FSF_HOMOGENEOUS);
        CHECK(i.properties & NFS3_FSF_CANSETTIME);
        CHECK(i.maxfilesize > (1ull << 40));
        CHECK(i.obj_attr.present);
        REQUIRE(CALL(c.nfs, NFS3_PROC_PATHCONF, nfs3_enc_pathconf_args, &a, nfs3_dec_pathconf_res, &p) == 0);
        CHECK_EQ(p.status, NFS3_OK);
        CHECK_EQ(p.name_max, 255);
        CHECK(p.no_trunc && p.case_preserving && !p.case_insensitive);
    }
    cli_close(&c);
}

static void test_bad_handles(void)
{
    struct cli c;
    struct nfs3_fh fh;
    struct nfs3_diropres cr;
    uint32_t got;
    int eof;

    REQUIRE(cli_open(&c, g_si.port) == 0);
    REQUIRE(create(&c, &g_root, "victim", NFS3_CREATE_UNCHECKED, NULL, &cr) == NFS3_OK);
    CHECK_EQ(getattr(&c, &cr.fh, NULL), NFS3_OK);

    /* Random bytes of the right length, and of other lengths. */
    srand(42);
    for (int i = 0; i < 20; i++) {
        memset(&fh, 0, sizeof(fh));
        fh.len = i == 0 ? 0 : i < 10 ? g_root.len : (uint32_t)(1 + rand() % NFS3_FHSIZE);
        for (uint32_t k = 0; k < fh.len; k++)
            fh.data[k] = (uint8_t)rand();
        CHECK_EQ(getattr(&c, &fh, NULL), NFS3ERR_BADHANDLE);
    }
    /* Truncated, and padded by one byte. */
    fh = cr.fh;
    fh.len--;
    CHECK_EQ(getattr(&c, &fh, NULL), NFS3ERR_BADHANDLE);
    fh = cr.fh;
    fh.data[fh.len++] = 0;
    CHECK_EQ(getattr(&c, &fh, NULL), NFS3ERR_BADHANDLE);
    /* Every single flipped byte: forged. That includes the inode number
     * (a valid-looking handle for another inode, e.g. one outside). */
    for (uint32_t k = 0; k < cr.fh.len; k++) {
        fh = cr.fh;
        fh.data[k] ^= 0x01;
        CHECK_EQ(getattr(&c, &fh, NULL), NFS3ERR_BADHANDLE);
    }
    /* Forged handles in other procedures. */
    fh = g_root;
    fh.data[fh.len - 1] ^= 0x80;
    CHECK_EQ(read_data(&c, &fh, 0, 10, NULL, &got, &eof), NFS3ERR_BADHANDLE);
    {
        struct nfs3_lookup_res lr;
        CHECK_EQ(lookup(&c, &fh, "victim", &lr), NFS3ERR_BADHANDLE);
        CHECK_EQ(create(&c, &fh, "x", NFS3_CREATE_UNCHECKED, NULL, &cr), NFS3ERR_BADHANDLE);
        struct nfs3_write_res wr;
        CHECK_EQ(write_data(&c, &fh, 0, "abc", 3, NFS3_UNSTABLE, &wr), NFS3ERR_BADHANDLE);
    }
    /* Over 64 bytes does not decode at all: GARBAGE_ARGS. */
    {
        struct mb_chain a = MB_CHAIN_INIT;
        struct krpc_xdr_enc x;
        struct krpc_reply rep;
        uint8_t big[80];
        memset(big, 0xab, sizeof(big));
        krpc_xdr_enc_init(&x, &a);
        krpc_xdr_put_opaque(&x, big, sizeof(big));
        CHECK_EQ(rpc(c.nfs, NFS3_PROC_GETATTR, &a, &rep), KRPC_GARBAGE_ARGS);
        krpc_reply_free(&rep);
    }
    /* Still serving. */
    CHECK_EQ(getattr(&c, &g_root, NULL), NFS3_OK);
    CHECK_EQ(remove_name(&c, &g_root, "victim", 0), NFS3_OK);
    cli_close(&c);
}

static void test_escapes(void)
{
    struct cli c;
    struct nfs3_lookup_res lr;
    struct nfs3_diropres cr;
    struct nfs3_write_res wr;
    char p[400];
    uint32_t got;
    int eof;

    REQUIRE(cli_open(&c, g_si.port) == 0);
    /* ".." at the root is the root; "." is the directory. */
    REQUIRE(lookup(&c, &g_root, "..", &lr) == NFS3_OK);
    CHECK(lr.fh.len == g_root.len && memcmp(lr.fh.data, g_root.data, g_root.len) == 0);
    REQUIRE(lookup(&c, &g_root, ".", &lr) == NFS3_OK);
    CHECK(memcmp(lr.fh.data, g_root.data, g_root.len) == 0);
    {
        struct names nm;
        memset(&nm, 0, sizeof(nm));
        CHECK_EQ(readdir_call(&c, &g_root, 1, 0, 65536, &nm, &eof), NFS3_OK);
        CHECK(has_name(&nm, ".."));
    }
    /* In a subdirectory, ".." is the parent. */
    {
        struct nfs3_mkdir_args a;
        memset(&a, 0, sizeof(a));
        a.where.dir = g_root;
        snprintf(a.where.name, sizeof(a.where.name), "sub");
        REQUIRE(CALL(c.nfs, NFS3_PROC_MKDIR, nfs3_enc_mkdir_args, &a, nfs3_dec_mkdir_res, &cr) == 0);
        REQUIRE(cr.status == NFS3_OK);
        struct nfs3_fh sub = cr.fh;
        REQUIRE(lookup(&c, &sub, "..", &lr) == NFS3_OK);
        CHECK(memcmp(lr.fh.data, g_root.data, g_root.len) == 0);
        REQUIRE(lookup(&c, &lr.fh, "..", &lr) == NFS3_OK);
        CHECK(memcmp(lr.fh.data, g_root.data, g_root.len) == 0);
        CHECK_EQ(remove_name(&c, &g_root, "sub", 1), NFS3_OK);
    }

    /* Symlinks inside the export pointing out of it. */
    snprintf(p, sizeof(p), "%s/esc", g_export);
    REQUIRE(symlink("/etc", p) == 0);
    snprintf(p, sizeof(p), "%s/escf", g_export);
    REQUIRE(symlink("/etc/passwd", p) == 0);
    REQUIRE(lookup(&c, &g_root, "esc", &lr) == NFS3_OK);
    CHECK_EQ(lr.obj_attr.attr.type, NFS3_LNK);
    struct nfs3_fh esc = lr.fh;
    REQUIRE(lookup(&c, &g_root, "escf", &lr) == NFS3_OK);
    CHECK_EQ(lr.obj_attr.attr.type, NFS3_LNK);
    struct nfs3_fh escf = lr.fh;
    /* Not entered, not read, not written, not created through. */
    CHECK_EQ(lookup(&c, &esc, "passwd", &lr), NFS3ERR_NOTDIR);
    CHECK_EQ(read_data(&c, &escf, 0, 100, NULL, &got, &eof), NFS3ERR_INVAL);
    CHECK_EQ(read_data(&c, &esc, 0, 100, NULL, &got, &eof), NFS3ERR_INVAL);
    CHECK_EQ(write_data(&c, &escf, 0, "owned", 5, NFS3_FILE_SYNC, &wr), NFS3ERR_INVAL);
    CHECK_EQ(create(&c, &esc, "newfile", NFS3_CREATE_UNCHECKED, NULL, &cr), NFS3ERR_NOTDIR);
    CHECK_EQ(create(&c, &g_root, "escf", NFS3_CREATE_UNCHECKED, NULL, &cr), NFS3ERR_EXIST);
    {
        struct names nm;
        memset(&nm, 0, sizeof(nm));
        CHECK_EQ(readdir_call(&c, &esc, 0, 0, 4096, &nm, &eof), NFS3ERR_NOTDIR);
    }
    {
        struct nfs3_setattr_args a;
        struct nfs3_wcc_res r;
        memset(&a, 0, sizeof(a));
        a.fh = escf;
        a.attr.set_size = 1;
        a.attr.size = 0;
        REQUIRE(CALL(c.nfs, NFS3_PROC_SETATTR, nfs3_enc_setattr_args, &a, nfs3_dec_setattr_res, &r) == 0);
        CHECK(r.status != NFS3_OK);
    }
    /* READLINK shows the target, which the client may interpret itself. */
    {
        struct nfs3_fh_args a = {esc};
        static struct nfs3_readlink_res r;
        REQUIRE(CALL(c.nfs, NFS3_PROC_READLINK, nfs3_enc_readlink_args, &a, nfs3_dec_readlink_res, &r) == 0);
        CHECK_EQ(r.status, NFS3_OK);
        CHECK(strcmp(r.data, "/etc") == 0);
    }
    /* Names with '/' are refused; nothing was created anywhere. */
    CHECK_EQ(lookup(&c, &g_root, "esc/passwd", &lr), NFS3ERR_ACCES);
    CHECK_EQ(lookup(&c, &g_root, "../..", &lr), NFS3ERR_ACCES);
    CHECK_EQ(lookup(&c, &g_root, "", &lr), NFS3ERR_ACCES);
    CHECK_EQ(create(&c, &g_root, "esc/x", NFS3_CREATE_UNCHECKED, NULL, &cr), NFS3ERR_ACCES);
    CHECK_EQ(create(&c, &g_root, "../x", NFS3_CREATE_UNCHECKED, NULL, &cr), NFS3ERR_ACCES);
    CHECK_EQ(create(&c, &g_root, "..", NFS3_CREATE_UNCHECKED, NULL, &cr), NFS3ERR_EXIST);
    CHECK_EQ(remove_name(&c, &g_root, "..", 0), NFS3ERR_INVAL);
    CHECK(access("/etc/x", F_OK) != 0);
    {
        struct stat st;
        CHECK(stat("/etc/passwd", &st) == 0 && st.st_size > 5);
    }
    /* The symlinks themselves can be removed. */
    CHECK_EQ(remove_name(&c, &g_root, "esc", 0), NFS3_OK);
    CHECK_EQ(remove_name(&c, &g_root, "escf", 0), NFS3_OK);
    CHECK_EQ(getattr(&c, &g_root, NULL), NFS3_OK);
    cli_close(&c);
}

static void test_write_count_mismatch(void)
{
    struct cli c;
    struct nfs3_diropres cr;
    struct nfs3_write_res wr;
    struct nfs3_fattr fa;
    static char data[5000];

    REQUIRE(cli_open(&c, g_si.port) == 0);
    REQUIRE(create(&c, &g_root, "w", NFS3_CREATE_UNCHECKED, NULL, &cr) == NFS3_OK);
    memset(data, 'x', sizeof(data));
    const uint32_t counts[] = {4999, 5001, 0, 100000, 0xffffffffu};
    for (unsigned i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        struct nfs3_write_args a;
        struct mb_chain args = MB_CHAIN_INIT;
        struct krpc_xdr_enc x;
        struct krpc_reply rep;
        memset(&a, 0, sizeof(a));
        a.fh = cr.fh;
        a.count = counts[i];
        a.stable = NFS3_FILE_SYNC;
        mb_chain_init(&a.data);
        REQUIRE(mb_chain_append_bytes(&a.data, data, sizeof(data)) == 0);
        krpc_xdr_enc_init(&x, &args);
        nfs3_enc_write_args(&x, &a);
        REQUIRE(krpc_xdr_enc_error(&x) == 0);
        CHECK_EQ(rpc(c.nfs, NFS3_PROC_WRITE, &args, &rep), KRPC_GARBAGE_ARGS);
        krpc_reply_free(&rep);
    }
    /* Nothing was written, and a good WRITE still works. */
    CHECK_EQ(getattr(&c, &cr.fh, &fa), NFS3_OK);
    CHECK_EQ(fa.size, 0);
    CHECK_EQ(write_data(&c, &cr.fh, 0, data, sizeof(data), NFS3_FILE_SYNC, &wr), NFS3_OK);
    CHECK_EQ(getattr(&c, &cr.fh, &fa), NFS3_OK);
    CHECK_EQ(fa.size, sizeof(data));
    CHECK_EQ(remove_name(&c, &g_root, "w", 0), NFS3_OK);
    cli_close(&c);
}

static uint64_t srv_walks(void)
{
    return nfs3_srv_stats(g_si.srv)->walks;
}

static uint32_t mkdir_name(struct cli *c, const struct nfs3_fh *dir, const char *name, struct nfs3_diropres *r)
{
    struct nfs3_mkdir_args a;
    memset(&a, 0, sizeof(a));
    a.where.dir = *dir;
    snprintf(a.where.name, sizeof(a.where.name), "%s", name);
    if (CALL(c->nfs, NFS3_PROC_MKDIR, nfs3_enc_mkdir_args, &a, nfs3_dec_mkdir_res, r) != 0)
        return 0xdead;
    return r->status;
}

/* A WRITE over the advertised wtmax is INVAL and writes nothing; up to it
 * is fine. */
static void test_write_max(void)
{
    struct srv_inst si;
    struct cli c;
    struct nfs3_diropres cr;
    struct nfs3_write_res wr;
    struct nfs3_fattr fa;
    static char data[8193];

    g_wtmax = 8192;
    REQUIRE(srv_start(&si, g_state) == 0);
    g_wtmax = 0;
    REQUIRE(cli_open(&c, si.port) == 0);
    {
        struct nfs3_fh_args a = {g_root};
        struct nfs3_fsinfo_res i;
        REQUIRE(CALL(c.nfs, NFS3_PROC_FSINFO, nfs3_enc_fsinfo_args, &a, nfs3_dec_fsinfo_res, &i) == 0);
        CHECK_EQ(i.status, NFS3_OK);
        CHECK_EQ(i.wtmax, 8192);
        CHECK_EQ(i.wtpref, 8192);
    }
    REQUIRE(create(&c, &g_root, "wmax", NFS3_CREATE_UNCHECKED, NULL, &cr) == NFS3_OK);
    memset(data, 'm', sizeof(data));
    CHECK_EQ(write_data(&c, &cr.fh, 0, data, 8193, NFS3_FILE_SYNC, &wr), NFS3ERR_INVAL);
    CHECK_EQ(write_data(&c, &cr.fh, 0, data, 8193, NFS3_UNSTABLE, &wr), NFS3ERR_INVAL);
    CHECK_EQ(getattr(&c, &cr.fh, &fa), NFS3_OK);
    CHECK_EQ(fa.size, 0);
    CHECK_EQ(write_data(&c, &cr.fh, 0, data, 8192, NFS3_FILE_SYNC, &wr), NFS3_OK);
    CHECK_EQ(wr.count, 8192);
    CHECK_EQ(getattr(&c, &cr.fh, &fa), NFS3_OK);
    CHECK_EQ(fa.size, 8192);
    /* A bad handle is still BADHANDLE, whatever the count. */
    {
        struct nfs3_fh fh = cr.fh;
        fh.data[fh.len - 1] ^= 1;
        CHECK_EQ(write_data(&c, &fh, 0, data, 8193, NFS3_UNSTABLE, &wr), NFS3ERR_BADHANDLE);
    }
    CHECK_EQ(remove_name(&c, &g_root, "wmax", 0), NFS3_OK);
    cli_close(&c);
    srv_stop(&si);
}

/* A handle of something gone is STALE on every call without walking the
 * export each time; a restart still finds live handles by walking. */
static void test_stale_no_walk(void)
{
    struct cli c;
    struct nfs3_diropres cr, d1, d2;
    struct nfs3_lookup_res lr;
    struct nfs3_fh gone, gonedir, ext, ext2, over, moved, f1, f2;
    char p[400];
    uint64_t w0;

    REQUIRE(cli_open(&c, g_si.port) == 0);
    REQUIRE(mkdir_name(&c, &g_root, "sd1", &d1) == NFS3_OK);
    REQUIRE(mkdir_name(&c, &g_root, "sd2", &d2) == NFS3_OK);
    REQUIRE(create(&c, &d1.fh, "f1", NFS3_CREATE_UNCHECKED, NULL, &cr) == NFS3_OK);
    f1 = cr.fh;
    REQUIRE(create(&c, &d2.fh, "f2", NFS3_CREATE_UNCHECKED, NULL, &cr) == NFS3_OK);
    f2 = cr.fh;

    /* CREATE, LOOKUP, REMOVE, then GETATTR again and again: REMOVE recorded
     * the inode as gone, so not a single walk. Same for RMDIR. */
    REQUIRE(create(&c, &g_root, "gone", NFS3_CREATE_UNCHECKED, NULL, &cr) == NFS3_OK);
    REQUIRE(lookup(&c, &g_root, "gone", &lr) == NFS3_OK);
    gone = lr.fh;
    REQUIRE(mkdir_name(&c, &g_root, "gonedir", &cr) == NFS3_OK);
    gonedir = cr.fh;
    CHECK_EQ(remove_name(&c, &g_root, "gone", 0), NFS3_OK);
    CHECK_EQ(remove_name(&c, &g_root, "gonedir", 1), NFS3_OK);
    w0 = srv_walks();
    for (int i = 0; i < 50; i++) {
        CHECK_EQ(getattr(&c, &gone, NULL), NFS3ERR_STALE);
        CHECK_EQ(getattr(&c, &gonedir, NULL), NFS3ERR_STALE);
    }
    CHECK_EQ(srv_walks(), w0);

    /* RENAME over a file: the replaced file's handle is STALE without a
     * walk, the moved one follows its new name. */
    REQUIRE(create(&c, &g_root, "over", NFS3_CREATE_UNCHECKED, NULL, &cr) == NFS3_OK);
    over = cr.fh;
    REQUIRE(create(&c, &g_root, "moved", NFS3_CREATE_UNCHECKED, NULL, &cr) == NFS3_OK);
    moved = cr.fh;
    {
        struct nfs3_rename_args a;
        struct nfs3_rename_res r;
        memset(&a, 0, sizeof(a));
        a.from.dir = g_root;
        snprintf(a.from.name, sizeof(a.from.name), "moved");
        a.to.dir = d2.fh;
        snprintf(a.to.name, sizeof(a.to.name), "over");
        REQUIRE(CALL(c.nfs, NFS3_PROC_RENAME, nfs3_enc_rename_args, &a, nfs3_dec_rename_res, &r) == 0);
        REQUIRE(r.status == NFS3_OK);
        snprintf(a.from.name, sizeof(a.from.name), "over");
        a.from.dir = d2.fh;
        a.to.dir = g_root;
        REQUIRE(CALL(c.nfs, NFS3_PROC_RENAME, nfs3_enc_rename_args, &a, nfs3_dec_rename_res, &r) == 0);
        REQUIRE(r.status == NFS3_OK); /* moved is now "over" in the root, the old "over" is gone */
    }
    w0 = srv_walks();
    for (int i = 0; i < 20; i++) {
        CHECK_EQ(getattr(&c, &over, NULL), NFS3ERR_STALE);
        CHECK_EQ(getattr(&c, &moved, NULL), NFS3_OK);
    }
    CHECK_EQ(srv_walks(), w0);
    CHECK_EQ(remove_name(&c, &g_root, "over", 0), NFS3_OK);

    /* Removed behind the server's back: one walk finds it missing, then
     * the negative cache answers; a second unknown handle right after that
     * walk does not start another one (at most one fruitless walk a
     * second while the map learns nothing). */
    REQUIRE(create(&c, &d1.fh, "ext", NFS3_CREATE_UNCHECKED, NULL, &cr) == NFS3_OK);
    ext = cr.fh;
    REQUIRE(create(&c, &d1.fh, "ext2", NFS3_CREATE_UNCHECKED, NULL, &cr) == NFS3_OK);
    ext2 = cr.fh;
    snprintf(p, sizeof(p), "%s/sd1/ext", g_export);
    CHECK(unlink(p) == 0);
    snprintf(p, sizeof(p), "%s/sd1/ext2", g_export);
    CHECK(unlink(p) == 0);
    w0 = srv_walks();
    for (int i = 0; i < 50; i++)
        CHECK_EQ(getattr(&c, &ext, NULL), NFS3ERR_STALE);
    CHECK_EQ(srv_walks(), w0 + 1);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(getattr(&c, &ext2, NULL), NFS3ERR_STALE);
    CHECK_EQ(srv_walks(), w0 + 1);
    /* Live handles are unaffected. */
    CHECK_EQ(getattr(&c, &f1, NULL), NFS3_OK);
    CHECK_EQ(getattr(&c, &f2, NULL), NFS3_OK);
    cli_close(&c);

    /* Restart: the map is empty, the first use of each live handle walks
     * and finds it, two in different directories one after the other
     * (a walk that found its inode does not hold back the next one). */
    srv_stop(&g_si);
    REQUIRE(srv_start(&g_si, g_state) == 0);
    REQUIRE(cli_open(&c, g_si.port) == 0);
    w0 = srv_walks();
    CHECK_EQ(getattr(&c, &f2, NULL), NFS3_OK);
    CHECK_EQ(getattr(&c, &f1, NULL), NFS3_OK);
    CHECK(srv_walks() > w0);
    CHECK_EQ(getattr(&c, &d1.fh, NULL), NFS3_OK);
    /* And the removed ones are still STALE, with one walk at most. */
    w0 = srv_walks();
    for (int i = 0; i < 20; i++) {
        CHECK_EQ(getattr(&c, &gone, NULL), NFS3ERR_STALE);
        CHECK_EQ(getattr(&c, &ext, NULL), NFS3ERR_STALE);
    }
    CHECK(srv_walks() <= w0 + 1);
    CHECK_EQ(remove_name(&c, &d1.fh, "f1", 0), NFS3_OK);
    CHECK_EQ(remove_name(&c, &d2.fh, "f2", 0), NFS3_OK);
    CHECK_EQ(remove_name(&c, &g_root, "sd1", 1), NFS3_OK);
    CHECK_EQ(remove_name(&c, &g_root, "sd2", 1), NFS3_OK);
    cli_close(&c);
}

static void test_restart(void)
{
    struct cli c;
    struct nfs3_diropres cr;
    struct nfs3_write_res wr;
    struct nfs3_fattr fa;
    struct nfs3_fh ffh, dfh;
    uint8_t v1[8];
    uint32_t got;
    int eof;
    char buf[16];

    REQUIRE(cli_open(&c, g_si.port) == 0);
    {
        struct nfs3_mkdir_args a;
        memset(&a, 0, sizeof(a));
        a.where.dir = g_root;
        snprintf(a.where.name, sizeof(a.where.name), "keep");
        REQUIRE(CALL(c.nfs, NFS3_PROC_MKDIR, nfs3_enc_mkdir_args, &a, nfs3_dec_mkdir_res, &cr) == 0);
        REQUIRE(cr.status == NFS3_OK);
        dfh = cr.fh;
    }
    REQUIRE(create(&c, &dfh, "persist", NFS3_CREATE_UNCHECKED, NULL, &cr) == NFS3_OK);
    ffh = cr.fh;
    REQUIRE(write_data(&c, &ffh, 0, "hello world", 11, NFS3_UNSTABLE, &wr) == NFS3_OK);
    memcpy(v1, wr.verf, 8);
    cli_close(&c);

    /* Restart with the same state directory. */
    srv_stop(&g_si);
    REQUIRE(srv_start(&g_si, g_state) == 0);
    REQUIRE(cli_open(&c, g_si.port) == 0);
    uint64_t walks0 = nfs3_srv_stats(g_si.srv)->walks;
    CHECK_EQ(getattr(&c, &ffh, &fa), NFS3_OK); /* unknown inode: found by walking the export */
    CHECK_EQ(fa.size, 11);
    CHECK(nfs3_srv_stats(g_si.srv)->walks > walks0);
    CHECK_EQ(read_data(&c, &ffh, 0, 16, buf, &got, &eof), NFS3_OK);
    CHECK(got == 11 && memcmp(buf, "hello world", 11) == 0);
    CHECK_EQ(getattr(&c, &dfh, NULL), NFS3_OK);
    CHECK_EQ(getattr(&c, &g_root, NULL), NFS3_OK);
    REQUIRE(write_data(&c, &ffh, 11, "!", 1, NFS3_UNSTABLE, &wr) == NFS3_OK);
    CHECK(memcmp(v1, wr.verf, 8) != 0); /* a new verifier: the client must resend uncommitted data */
    {
        struct nfs3_commit_args a = {ffh, 0, 0};
        struct nfs3_commit_res r;
        REQUIRE(CALL(c.nfs, NFS3_PROC_COMMIT, nfs3_enc_commit_args, &a, nfs3_dec_commit_res, &r) == 0);
        CHECK(memcmp(r.verf, wr.verf, 8) == 0);
    }
    {
        struct nfs3_mnt_res r;
        REQUIRE(do_mnt(&c, g_export, &r) == 0);
        CHECK(r.status == MNT3_OK && memcmp(r.fh.data, g_root.data, g_root.len) == 0);
    }
    /* Removed while the server was down: STALE, not BADHANDLE. */
    cli_close(&c);
    srv_stop(&g_si);
    {
        char p[400];
        snprintf(p, sizeof(p), "%s/keep/persist", g_export);
        CHECK(unlink(p) == 0);
    }
    REQUIRE(srv_start(&g_si, g_state) == 0);
    REQUIRE(cli_open(&c, g_si.port) == 0);
    CHECK_EQ(getattr(&c, &ffh, NULL), NFS3ERR_STALE);
    CHECK_EQ(getattr(&c, &dfh, NULL), NFS3_OK);
    cli_close(&c);

    /* Another key (another state directory): every old handle is BADHANDLE. */
    srv_stop(&g_si);
    REQUIRE(srv_start(&g_si, g_state2) == 0);
    REQUIRE(cli_open(&c, g_si.port) == 0);
    CHECK_EQ(getattr(&c, &dfh, NULL), NFS3ERR_BADHANDLE);
    CHECK_EQ(getattr(&c, &g_root, NULL), NFS3ERR_BADHANDLE);
    cli_close(&c);
    srv_stop(&g_si);
    REQUIRE(srv_start(&g_si, g_state) == 0);
    {
        /* The key file is private. */
        char p[400];
        struct stat st;
        snprintf(p, sizeof(p), "%s/fh.key", g_state);
        CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0600 && st.st_size == 32);
    }
}

static void test_tls(void)
{
    struct srv_inst ts;
    struct cli c;
    struct nfs3_mnt_res mr;
    struct nfs3_diropres cr;
    struct nfs3_write_res wr;
    static unsigned char buf[1 << 20], back[1 << 20];
    uint32_t got;
    int eof;

    REQUIRE(srv_start_tls(&ts, g_state, 1) == 0);
    REQUIRE(cli_open_tls(&c, ts.port, 1) == 0);
    REQUIRE(do_mnt(&c, g_export, &mr) == 0);
    REQUIRE(mr.status == MNT3_OK);
    CHECK(krpc_clnt_is_tls(c.mnt));
    REQUIRE(create(&c, &mr.fh, "tls.bin", NFS3_CREATE_UNCHECKED, NULL, &cr) == NFS3_OK);
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (unsigned char)(i * 13 + 5);
    REQUIRE(write_data(&c, &cr.fh, 0, buf, sizeof(buf), NFS3_UNSTABLE, &wr) == NFS3_OK);
    CHECK_EQ(wr.count, sizeof(buf));
    REQUIRE(read_data(&c, &cr.fh, 0, sizeof(back), back, &got, &eof) == NFS3_OK);
    CHECK_EQ(got, sizeof(back));
    CHECK(eof);
    CHECK(memcmp(buf, back, sizeof(buf)) == 0);
    CHECK(krpc_clnt_is_tls(c.nfs));
    CHECK_EQ(remove_name(&c, &mr.fh, "tls.bin", 0), NFS3_OK);
    cli_close(&c);
    /* Plain calls to a TLS-only server: AUTH_TOOWEAK. */
    {
        struct krpc_reply rep;
        struct nfs3_fh_args a = {mr.fh};
        struct mb_chain args = MB_CHAIN_INIT;
        struct krpc_xdr_enc x;
        REQUIRE(cli_open(&c, ts.port) == 0);
        krpc_xdr_enc_init(&x, &args);
        nfs3_enc_getattr_args(&x, &a);
        memset(&rep, 0, sizeof(rep));
        CHECK_EQ(krpc_call(c.nfs, NFS3_PROC_GETATTR, &args, &rep), 0);
        CHECK_EQ(rep.hdr.reply_stat, KRPC_MSG_DENIED);
        CHECK_EQ(rep.hdr.auth_stat, KRPC_AUTH_TOOWEAK);
        krpc_reply_free(&rep);
        /* The NULL procedure is a ping: answered in the clear. */
        memset(&rep, 0, sizeof(rep));
        CHECK_EQ(krpc_call(c.nfs, NFS3_PROC_NULL, NULL, &rep), 0);
        CHECK_EQ(krpc_reply_status(&rep.hdr, NULL, 0), 0);
        krpc_reply_free(&rep);
        cli_close(&c);
    }
    /* MOUNT in the clear, as Linux, FreeBSD and libnfs send it: the same
     * root handle as over TLS. */
    {
        struct nfs3_mnt_res pm;
        REQUIRE(cli_open(&c, ts.port) == 0);
        CHECK_EQ(do_mnt(&c, g_export, &pm), 0);
        CHECK_EQ(pm.status, MNT3_OK);
        CHECK(pm.fh.len == mr.fh.len && memcmp(pm.fh.data, mr.fh.data, mr.fh.len) == 0);
        CHECK(!krpc_clnt_is_tls(c.mnt));
        cli_close(&c);
    }
    srv_stop(&ts);

    /* mount_requires_tls: MOUNT in the clear is AUTH_TOOWEAK, over TLS fine. */
    g_mount_requires_tls = 1;
    REQUIRE(srv_start_tls(&ts, g_state, 1) == 0);
    g_mount_requires_tls = 0;
    {
        struct nfs3_mnt_res pm;
        struct krpc_reply rep;
        struct nfs3_mnt_args ma;
        struct mb_chain args = MB_CHAIN_INIT;
        struct krpc_xdr_enc x;
        char why[128];
        REQUIRE(cli_open(&c, ts.port) == 0);
        CHECK_EQ(do_mnt(&c, g_export, &pm), -EACCES);
        /* The exact refusal: MNT in the clear is AUTH_TOOWEAK. */
        memset(&ma, 0, sizeof(ma));
        snprintf(ma.dirpath, sizeof(ma.dirpath), "%s", g_export);
        krpc_xdr_enc_init(&x, &args);
        nfs3_mnt_enc_mnt_args(&x, &ma);
        memset(&rep, 0, sizeof(rep));
        CHECK_EQ(krpc_call(c.mnt, NFS3_MNT_PROC_MNT, &args, &rep), 0);
        CHECK_EQ(krpc_reply_status(&rep.hdr, why, sizeof(why)), -EACCES);
        CHECK(strcmp(why, "AUTH_ERROR: AUTH_TOOWEAK") == 0);
        krpc_reply_free(&rep);
        memset(&rep, 0, sizeof(rep));
        CHECK_EQ(krpc_call(c.mnt, NFS3_MNT_PROC_NULL, NULL, &rep), 0);
        CHECK_EQ(krpc_reply_status(&rep.hdr, NULL, 0), 0); /* NULL still answers */
        krpc_reply_free(&rep);
        cli_close(&c);
        REQUIRE(cli_open_tls(&c, ts.port, 1) == 0);
        CHECK_EQ(do_mnt(&c, g_export, &pm), 0);
        CHECK_EQ(pm.status, MNT3_OK);
        cli_close(&c);
    }
    srv_stop(&ts);
}

static void rm_rf(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", path);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(g_base, sizeof(g_base), "%s/rpctls-nfsd-test-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(g_base) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(g_export, sizeof(g_export), "%s/export", g_base);
    snprintf(g_state, sizeof(g_state), "%s/state", g_base);
    snprintf(g_state2, sizeof(g_state2), "%s/state2", g_base);
    if (mkdir(g_export, 0755) != 0) {
        perror("mkdir");
        return 1;
    }
    /* A canonical export path (TMPDIR may hold a symlink). */
    {
        char real[PATH_MAX];
        if (realpath(g_export, real) != NULL && strlen(real) < sizeof(g_export))
            memcpy(g_export, real, strlen(real) + 1);
    }
    if (srv_start(&g_si, g_state) != 0) {
        fprintf(stderr, "cannot start the server\n");
        rm_rf(g_base);
        return 1;
    }
    TEST_RUN(test_mount);
    TEST_RUN(test_happy_paths);
    TEST_RUN(test_bad_handles);
    TEST_RUN(test_escapes);
    TEST_RUN(test_write_count_mismatch);
    TEST_RUN(test_write_max);
    TEST_RUN(test_stale_no_walk);
    if (tu_certs_create(&g_certs) == 0) {
        TEST_RUN(test_tls);
        tu_certs_destroy(&g_certs);
    } else {
        CHECK(!"test certificates");
    }
    TEST_RUN(test_restart);
    /* Again without openat2: one O_NOFOLLOW openat per component. */
    srv_stop(&g_si);
    setenv("RPCTLS_NFSD_NO_OPENAT2", "1", 1);
    if (srv_start(&g_si, g_state) != 0) {
        fprintf(stderr, "cannot restart the server\n");
        rm_rf(g_base);
        return 1;
    }
    TEST_RUN(test_happy_paths);
    TEST_RUN(test_escapes);
    TEST_RUN(test_bad_handles);
    unsetenv("RPCTLS_NFSD_NO_OPENAT2");
    srv_stop(&g_si);
    CHECK_EQ(mb_pool_shutdown(), 0);
    rm_rf(g_base);
    return test_summary();
}
