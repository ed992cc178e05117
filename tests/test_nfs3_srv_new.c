/*
 * tests/test_nfs3_srv_new.c - setting up the NFSv3 server on an RPC service
 * (no listener: calls go through krpc__svc_dispatch_msg):
 *
 *   - when registering NFS fails (the program is taken), nfs3_srv_new leaves
 *     no MOUNT registration behind pointing at the server it freed: MOUNT
 *     answers PROG_UNAVAIL, and a second nfs3_srv_new succeeds once NFS is
 *     free;
 *   - the counters: nfs3_srv_stats_get copies them from a const server;
 *   - the procedure table: every NFSv3 procedure decodes its arguments
 *     (empty ones are GARBAGE_ARGS), and exactly the procedures that must
 *     not run twice are answered from the duplicate-request cache when
 *     retransmitted.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "krpc/svc_int.h"
#include "rpctls/nfs3.h"
#include "rpctls/nfs3_export.h"
#include "rpctls/nfs3_srv.h"
#include "test.h"

static char g_base[256], g_export[300], g_state[300];

/* A MOUNT or NFS call message: proc of prog (MNT takes path), AUTH_SYS as root. */
static void call_msg(struct mb_chain *m, uint32_t prog, uint32_t vers, uint32_t proc, const char *path)
{
    struct krpc_call_hdr h;
    struct krpc_xdr_enc x;

    memset(&h, 0, sizeof(h));
    h.xid = 0x1234;
    h.rpcvers = KRPC_RPCVERS;
    h.prog = prog;
    h.vers = vers;
    h.proc = proc;
    h.cred.flavor = KRPC_AUTH_SYS;
    snprintf(h.cred.machine, sizeof(h.cred.machine), "test");
    h.verf_flavor = KRPC_AUTH_NONE;
    mb_chain_init(m);
    krpc_xdr_enc_init(&x, m);
    krpc_encode_call_hdr(&x, &h);
    if (path != NULL) {
        struct nfs3_mnt_args a;
        memset(&a, 0, sizeof(a));
        snprintf(a.dirpath, sizeof(a.dirpath), "%s", path);
        nfs3_mnt_enc_mnt_args(&x, &a);
    }
}

/* Dispatches one call; the accept status of the reply, or -1 (no reply,
 * denied, undecodable). With res, the results follow (MNT: its status). */
static int dispatch(struct krpc_svc *svc, uint32_t prog, uint32_t vers, uint32_t proc, const char *path,
                    uint32_t *mnt_status)
{
    struct mb_chain msg, reply = MB_CHAIN_INIT;
    struct krpc_reply_hdr h;
    struct krpc_xdr_dec d;
    int ret = -1;

    call_msg(&msg, prog, vers, proc, path);
    if (krpc__svc_dispatch_msg(svc, NULL, 0, 0, &msg, &reply) != KRPC_SVC_ACT_REPLY)
        goto out;
    krpc_xdr_dec_init(&d, &reply, 0, reply.len);
    if (krpc_decode_reply_hdr(&d, &h) != 0 || h.reply_stat != KRPC_MSG_ACCEPTED)
        goto out;
    ret = (int)h.accept_stat;
    if (mnt_status != NULL && ret == KRPC_SUCCESS) {
        struct nfs3_mnt_res r;
        memset(&r, 0, sizeof(r));
        if (nfs3_mnt_dec_mnt_res(&d, &r) != 0)
            ret = -1;
        *mnt_status = r.status;
    }
out:
    mb_chain_free(&reply);
    return ret;
}

static int h_taken(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res, void *arg)
{
    (void)req;
    (void)args;
    (void)res;
    (void)arg;
    return KRPC_SUCCESS;
}

/* g_export to every client ("*"): these calls come from no address, and
 * the default export (the local host's addresses) would refuse them. */
static struct nfs3_exports g_any;

static void srv_config(struct nfs3_srv_config *scfg)
{
    struct nfs3_export_opts o;

    memset(scfg, 0, sizeof(*scfg));
    scfg->export_path = g_export;
    scfg->state_dir = g_state;
    if (g_any.n == 0) {
        nfs3_export_opts_default(&o);
        o.squash = NFS3_SQUASH_NONE;
        REQUIRE(nfs3_exports_add_any(&g_any, g_export, &o) == 0);
    }
    scfg->exports = &g_any;
    scfg->io_threads = 0;
}

static void test_register_failure(void)
{
    static const struct krpc_proc_desc taken_procs[] = {{h_taken, KRPC_PROC_IDEMPOTENT, "taken"}};
    const struct krpc_prog_desc taken = {NFS3_PROGRAM, NFS3_VERSION, 1, taken_procs, NULL, 0};
    struct krpc_svc_config cfg;
    struct nfs3_srv_config scfg;
    struct krpc_svc *svc = NULL;
    struct nfs3_srv *srv = NULL;
    uint32_t mst = 99;
    char err[256];

    memset(&cfg, 0, sizeof(cfg));
    REQUIRE(krpc__svc_new_detached(&cfg, &svc) == 0);
    REQUIRE(krpc_svc_register(svc, &taken) == 0);
    srv_config(&scfg);
    CHECK_EQ(nfs3_srv_new(svc, &scfg, &srv, err, sizeof(err)), -EEXIST);
    CHECK(srv == NULL);
    CHECK(strstr(err, "NFS") != NULL);
    /* MOUNT went with the server: nothing answers for it (NULL would be
     * answered without a handler if MOUNT were still registered). */
    CHECK_EQ(dispatch(svc, NFS3_MNT_PROGRAM, NFS3_MNT_VERSION, NFS3_MNT_PROC_NULL, NULL, NULL), KRPC_PROG_UNAVAIL);

    /* NFS free again: the server sets up, MOUNT included. */
    CHECK_EQ(krpc_svc_unregister(svc, NFS3_PROGRAM, NFS3_VERSION), 0);
    CHECK_EQ(krpc_svc_unregister(svc, NFS3_PROGRAM, NFS3_VERSION), -ENOENT);
    REQUIRE(nfs3_srv_new(svc, &scfg, &srv, err, sizeof(err)) == 0);
    CHECK_EQ(dispatch(svc, NFS3_MNT_PROGRAM, NFS3_MNT_VERSION, NFS3_MNT_PROC_MNT, g_export, &mst), KRPC_SUCCESS);
    CHECK_EQ(mst, MNT3_OK);
    CHECK_EQ(dispatch(svc, NFS3_PROGRAM, NFS3_VERSION, NFS3_PROC_NULL, NULL, NULL), KRPC_SUCCESS);

    {
        const struct nfs3_srv *csrv = srv;
        struct nfs3_srv_stats st;
        memset(&st, 0xff, sizeof(st));
        nfs3_srv_stats_get(csrv, &st);
        CHECK_EQ(st.mnt_ops[NFS3_MNT_PROC_MNT], 1);
        CHECK_EQ(st.ops[NFS3_PROC_GETATTR], 0);
        CHECK_EQ(st.errors, 0);
        CHECK_EQ(nfs3_srv_stats(srv)->mnt_ops[NFS3_MNT_PROC_MNT], 1);
    }
    krpc_svc_free(svc);
    nfs3_srv_free(srv);
}

static void test_procedure_table(void)
{
    /* RFC 1813 procedures whose replies the server caches (docs/nfs3-server.md). */
    static const uint32_t once[] = {NFS3_PROC_SETATTR, NFS3_PROC_CREATE, NFS3_PROC_MKDIR, NFS3_PROC_SYMLINK,
                                    NFS3_PROC_MKNOD,   NFS3_PROC_REMOVE, NFS3_PROC_RMDIR, NFS3_PROC_RENAME,
                                    NFS3_PROC_LINK};
    struct krpc_svc_config cfg;
    struct nfs3_srv_config scfg;
    struct krpc_svc *svc = NULL;
    struct nfs3_srv *srv = NULL;
    char err[256];

    memset(&cfg, 0, sizeof(cfg));
    REQUIRE(krpc__svc_new_detached(&cfg, &svc) == 0);
    srv_config(&scfg);
    REQUIRE(nfs3_srv_new(svc, &scfg, &srv, err, sizeof(err)) == 0);
    for (uint32_t proc = 1; proc < NFS3_NPROCS; proc++) {
        struct krpc_svc_stats before, after;
        int cached = 0;
        for (size_t i = 0; i < sizeof(once) / sizeof(once[0]); i++)
            cached |= once[i] == proc;
        krpc_svc_stats_get(svc, &before);
        CHECK_EQ(dispatch(svc, NFS3_PROGRAM, NFS3_VERSION, proc, NULL, NULL), KRPC_GARBAGE_ARGS);
        CHECK_EQ(dispatch(svc, NFS3_PROGRAM, NFS3_VERSION, proc, NULL, NULL), KRPC_GARBAGE_ARGS);
        krpc_svc_stats_get(svc, &after);
        if (after.drc_hits - before.drc_hits != (uint64_t)cached)
            fprintf(stderr, "  %s: %llu answers from the cache, want %d\n", nfs3_proc_name(proc),
                    (unsigned long long)(after.drc_hits - before.drc_hits), cached);
        CHECK_EQ(after.drc_hits - before.drc_hits, cached);
    }
    CHECK_EQ(dispatch(svc, NFS3_PROGRAM, NFS3_VERSION, NFS3_NPROCS, NULL, NULL), KRPC_PROC_UNAVAIL);
    krpc_svc_free(svc);
    nfs3_srv_free(srv);
}

/* --export with a relative path: made absolute and canonical (the
 * default export is "PATH 127.0.0.1(rw) ::1(rw)" with the real path); one
 * that does not exist is named in the error. */
static void test_relative_export(void)
{
    struct krpc_svc_config cfg;
    struct nfs3_srv_config scfg;
    struct krpc_svc *svc = NULL;
    struct nfs3_srv *srv = NULL;
    char cwd[PATH_MAX], err[256];

    REQUIRE(getcwd(cwd, sizeof(cwd)) != NULL);
    REQUIRE(chdir(g_base) == 0);
    memset(&cfg, 0, sizeof(cfg));
    REQUIRE(krpc__svc_new_detached(&cfg, &svc) == 0);
    memset(&scfg, 0, sizeof(scfg));
    scfg.state_dir = g_state;
    scfg.export_path = "export";
    CHECK_EQ(nfs3_srv_new(svc, &scfg, &srv, err, sizeof(err)), 0);
    if (srv != NULL) {
        CHECK(strcmp(nfs3_srv_export_path(srv), g_export) == 0);
        nfs3_srv_free(srv);
        srv = NULL;
    }
    scfg.export_path = "no-such-dir";
    CHECK_EQ(nfs3_srv_new(svc, &scfg, &srv, err, sizeof(err)), -ENOENT);
    CHECK(strcmp(err, "export no-such-dir: No such file or directory") == 0);
    krpc_svc_free(svc);
    REQUIRE(chdir(cwd) == 0);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    char cmd[400];

    snprintf(g_base, sizeof(g_base), "%s/rpctls-srvnew-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(g_base) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(g_export, sizeof(g_export), "%s/export", g_base);
    snprintf(g_state, sizeof(g_state), "%s/state", g_base);
    if (mkdir(g_export, 0755) != 0) {
        perror("mkdir");
        return 1;
    }
    {
        char real[PATH_MAX];
        if (realpath(g_export, real) != NULL && strlen(real) < sizeof(g_export))
            memcpy(g_export, real, strlen(real) + 1);
    }
    TEST_RUN(test_register_failure);
    TEST_RUN(test_procedure_table);
    TEST_RUN(test_relative_export);
    nfs3_exports_free(&g_any);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_base);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", g_base);
    CHECK_EQ(mb_pool_shutdown(), 0);
    return test_summary();
}
