/*
 * tests/test_nfs3_discovery.c - how the NFS client finds its ports
 * (src/nfs3/client.c: nfs_answers, find_mount_port; the rules are in
 * rpctls/nfs3_clnt.h, struct nfs3_clnt_opts), against a scripted
 * portmapper: a krpc service for portmap v2 whose GETPORT answers come
 * from a table the test sets, reached through the test-only
 * RPCTLS_TEST_PMAP_PORT (a test cannot take port 111 from the host).
 *
 * Two in-process NFS servers (util/nfsrv.h, plain TCP, the same export and
 * state directory, so their handles are interchangeable): "nfs" (port N)
 * and "mountd" (port M). Their MNT counters say where MOUNT went.
 *
 * The NFS port, with find_nfs_port (the URL gave no port, 2049 is only the
 * default; here the default is a port of the test's choice):
 *   - an NFSv4-only server there (PROG_MISMATCH for v3), a server of
 *     another program (PROG_UNAVAIL), or nothing listening: the client asks
 *     the portmapper for 100003 v3 and uses its answer, N;
 *   - NFS v3 itself there: the portmapper is not asked (its entry, which
 *     names M, would be wrong), N is kept.
 * The MOUNT port, the URL giving the NFS port N:
 *   - the portmapper registers MOUNT at M and NFS v3 at N: MOUNT goes to M;
 *   - MOUNT at M and NFS v3 at another port: that portmapper speaks for
 *     another server on the host, MOUNT goes to the NFS port N;
 *   - MOUNT at M, NFS v3 not registered: MOUNT goes to M;
 *   - MOUNT not registered: MOUNT goes to N.
 * Each time MNT and a GETATTR of the root succeed, and the transports and
 * the servers' counters agree.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "rpctls/krpc_pmap.h"
#include "rpctls/nfs3_clnt.h"
#include "test.h"
#include "util/nfsd.h"
#include "util/nfsrv.h"

static char base[PATH_MAX], export_dir[PATH_MAX], state_dir[PATH_MAX];

/* ---- the scripted portmapper and the servers that are not NFS v3 ---------- */

#define PM_MAX 4
static pthread_mutex_t pm_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    uint32_t prog, vers;
    uint16_t port;
} pm_table[PM_MAX];
static unsigned pm_getport_nfs, pm_getport_mnt; /* GETPORT queries for 100003 / 100005 */

static void pm_set(uint16_t nfs_port, uint16_t mnt_port)
{
    pthread_mutex_lock(&pm_mu);
    memset(pm_table, 0, sizeof pm_table);
    pm_table[0].prog = NFS3_PROGRAM;
    pm_table[0].vers = NFS3_VERSION;
    pm_table[0].port = nfs_port; /* 0: not registered */
    pm_table[1].prog = NFS3_MNT_PROGRAM;
    pm_table[1].vers = NFS3_MNT_VERSION;
    pm_table[1].port = mnt_port;
    pm_getport_nfs = pm_getport_mnt = 0;
    pthread_mutex_unlock(&pm_mu);
}

static void pm_counts(unsigned *nfs, unsigned *mnt)
{
    pthread_mutex_lock(&pm_mu);
    *nfs = pm_getport_nfs;
    *mnt = pm_getport_mnt;
    pthread_mutex_unlock(&pm_mu);
}

static int pm_null(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res, void *arg)
{
    (void)req, (void)args, (void)res, (void)arg;
    return KRPC_SUCCESS;
}

/* PMAPPROC_GETPORT (RFC 1833 section 3.2): mapping in, port out (0: none). */
static int pm_getport(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res, void *arg)
{
    uint32_t prog, vers, prot, port = 0;

    (void)req, (void)arg;
    prog = krpc_xdr_get_u32(args);
    vers = krpc_xdr_get_u32(args);
    prot = krpc_xdr_get_u32(args);
    (void)krpc_xdr_get_u32(args);
    if (krpc_xdr_dec_error(args))
        return KRPC_GARBAGE_ARGS;
    pthread_mutex_lock(&pm_mu);
    if (prog == NFS3_PROGRAM)
        pm_getport_nfs++;
    if (prog == NFS3_MNT_PROGRAM)
        pm_getport_mnt++;
    for (unsigned i = 0; i < PM_MAX; i++)
        if (pm_table[i].prog == prog && pm_table[i].vers == vers && prot == KRPC_IPPROTO_TCP)
            port = pm_table[i].port;
    pthread_mutex_unlock(&pm_mu);
    krpc_xdr_put_u32(res, port);
    return KRPC_SUCCESS;
}

static const struct krpc_proc_desc pm_procs[] = {
    [0] = {pm_null, KRPC_PROC_IDEMPOTENT, "NULL"},
    [KRPC_PMAP_PROC_GETPORT] = {pm_getport, KRPC_PROC_IDEMPOTENT, "GETPORT"},
};
static const struct krpc_proc_desc null_only[] = {{pm_null, KRPC_PROC_IDEMPOTENT, "NULL"}};

struct fake {
    struct krpc_loop *loop;
    struct krpc_svc *pm, *v4only, *other;
    pthread_t thr;
};

static void *fake_thread(void *arg)
{
    struct fake *f = arg;

    krpc_loop_run(f->loop, NULL, -1);
    return NULL;
}

/* A plain service on 127.0.0.1:0 with one program version. */
static int fake_svc(struct fake *f, uint32_t prog, uint32_t vers, const struct krpc_proc_desc *procs, uint32_t n,
                    struct krpc_svc **out)
{
    struct krpc_svc_config cfg;
    struct krpc_prog_desc pd = {.prog = prog, .vers = vers, .nprocs = n, .procs = procs};

    memset(&cfg, 0, sizeof cfg);
    if (krpc_parse_addr("127.0.0.1:0", &cfg.addr, &cfg.addrlen) != 0 || krpc_svc_new(f->loop, &cfg, out) != 0)
        return -1;
    return krpc_svc_register(*out, &pd);
}

static int fake_start(struct fake *f)
{
    memset(f, 0, sizeof *f);
    if (krpc_loop_new(&f->loop) != 0 ||
        fake_svc(f, KRPC_PMAP_PROG, KRPC_PMAP_VERS, pm_procs, 4, &f->pm) != 0 ||
        fake_svc(f, NFS3_PROGRAM, 4, null_only, 1, &f->v4only) != 0 || /* an NFSv4-only server */
        fake_svc(f, 200000, 1, null_only, 1, &f->other) != 0)          /* not NFS at all */
        return -1;
    return pthread_create(&f->thr, NULL, fake_thread, f) == 0 ? 0 : -1;
}

static void fake_stop(struct fake *f)
{
    krpc_loop_stop(f->loop);
    pthread_join(f->thr, NULL);
    krpc_svc_free(f->pm);
    krpc_svc_free(f->v4only);
    krpc_svc_free(f->other);
    krpc_loop_run(f->loop, NULL, 30);
    krpc_loop_free(f->loop);
}

/* ---- the client -------------------------------------------------------------- */

static struct fake fk;
static struct tu_nfsrv nfs, mountd;

static uint64_t mnt_count(struct tu_nfsrv *s)
{
    struct nfs3_srv_stats st;

    nfs3_srv_stats_get(s->srv, &st);
    return st.mnt_ops[NFS3_MNT_PROC_MNT];
}

/* Starts a client at port (find_nfs_port as given), counts the portmapper's
 * NFS queries made while it starts into *pm_nfs_at_new, then MNT and GETATTR
 * of the root; want_nfs / want_mnt: the ports the transports must name. */
static void run_client(uint16_t port, int find_nfs_port, uint16_t want_nfs, uint16_t want_mnt, unsigned *pm_nfs_at_new)
{
    struct krpc_loop *loop = NULL;
    struct nfs3_clnt *nc = NULL;
    struct krpc_clnt_config cfg;
    struct nfs3_clnt_opts opts;
    struct nfs3_fh root;
    struct nfs3_fattr attr;
    char addr[64], want[96];
    unsigned dummy;
    int rc;

    memset(&cfg, 0, sizeof cfg);
    memset(&opts, 0, sizeof opts);
    TU_FMT(addr, "127.0.0.1:%u", (unsigned)port);
    REQUIRE(krpc_parse_addr(addr, &cfg.addr, &cfg.addrlen) == 0);
    cfg.tls = KRPC_TLS_OFF;
    cfg.timeout_ms = 3000;
    cfg.max_retries = 1;
    cfg.max_reconnects = 2;
    opts.find_nfs_port = find_nfs_port;
    opts.pmap_timeout_ms = 2000;
    REQUIRE(krpc_loop_new(&loop) == 0);
    rc = nfs3_clnt_new_opts(loop, &cfg, &opts, &nc);
    CHECK_EQ(rc, 0);
    pm_counts(pm_nfs_at_new, &dummy);
    if (rc == 0) {
        rc = nfs3_mount(nc, export_dir, &root);
        CHECK_EQ(rc, 0);
        if (rc != 0)
            fprintf(stderr, "MNT: %s\n", nfs3_clnt_error(nc));
        if (rc == 0) {
            rc = nfs3_getattr(nc, &root, &attr);
            CHECK_EQ(rc, 0);
            CHECK_EQ(attr.type, NFS3_DIR);
        }
        TU_FMT(want, "127.0.0.1:%u plain", (unsigned)want_nfs);
        CHECK(strcmp(nfs3_clnt_transport(nc, NFS3_PROGRAM), want) == 0);
        if (strcmp(nfs3_clnt_transport(nc, NFS3_PROGRAM), want) != 0)
            fprintf(stderr, "NFS: \"%s\", wanted \"%s\"\n", nfs3_clnt_transport(nc, NFS3_PROGRAM), want);
        TU_FMT(want, "127.0.0.1:%u plain", (unsigned)want_mnt);
        CHECK(strcmp(nfs3_clnt_transport(nc, NFS3_MNT_PROGRAM), want) == 0);
        if (strcmp(nfs3_clnt_transport(nc, NFS3_MNT_PROGRAM), want) != 0)
            fprintf(stderr, "MOUNT: \"%s\", wanted \"%s\"\n", nfs3_clnt_transport(nc, NFS3_MNT_PROGRAM), want);
    }
    nfs3_clnt_free(nc);
    krpc_loop_free(loop);
}

/* ---- the NFS port ------------------------------------------------------------ */

/* A port that refuses connections: a socket bound to it that does not
 * listen (kept open so that nothing else takes the port). */
static int closed_port_fd = -1;
static uint16_t closed_port;

static int closed_port_open(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;

    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    closed_port_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (closed_port_fd < 0 || bind(closed_port_fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(closed_port_fd, (struct sockaddr *)&a, &len) < 0)
        return -1;
    closed_port = ntohs(a.sin_port);
    return 0;
}

static void test_nfs_port(void)
{
    static const struct {
        const char *what;
        int where;      /* 0: the NFSv4-only server, 1: another program, 2: nothing, 3: NFS v3 itself */
        int asks_pmap;  /* the portmapper is asked for NFS v3 while the client starts */
    } cases[] = {
        {"NFSv4 only (PROG_MISMATCH)", 0, 1},
        {"another program (PROG_UNAVAIL)", 1, 1},
        {"nothing listens", 2, 1},
        {"NFS v3 answers", 3, 0},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t port = 0;
        unsigned asked = 99;
        uint64_t m0 = mnt_count(&mountd), n0 = mnt_count(&nfs);
        int before = test_failures;

        switch (cases[i].where) {
        case 0: port = krpc_svc_port(fk.v4only); break;
        case 1: port = krpc_svc_port(fk.other); break;
        case 2: port = closed_port; break;
        case 3: port = nfs.port; break;
        }
        /* When asked, the portmapper's NFS is nfs; for NFS v3 answering at
         * nfs's port, the portmapper names mountd for NFS, which would be
         * wrong: it must not be asked (MOUNT then goes to the NFS port,
         * see test_mount_port). */
        if (cases[i].asks_pmap)
            pm_set(nfs.port, nfs.port);
        else
            pm_set(mountd.port, 0);
        run_client(port, 1, nfs.port, nfs.port, &asked);
        CHECK_EQ(asked, cases[i].asks_pmap);
        CHECK_EQ(mnt_count(&nfs), n0 + 1);
        CHECK_EQ(mnt_count(&mountd), m0);
        if (test_failures != before)
            fprintf(stderr, "  (case: %s)\n", cases[i].what);
    }
    {
        struct krpc_svc_stats st;
        krpc_svc_stats_get(fk.v4only, &st);
        CHECK_EQ(st.prog_mismatch, 1); /* the NULL v3 probe got PROG_MISMATCH */
        krpc_svc_stats_get(fk.other, &st);
        CHECK_EQ(st.prog_unavail, 1);
    }
}

/* ---- the MOUNT port ------------------------------------------------------------ */

static void test_mount_port(void)
{
    /* pmap_nfs / pmap_mnt: what the portmapper registers (1 nfs's port,
     * 2 mountd's port, 3 another port, 0 nothing); mnt_at: 1 MOUNT at nfs,
     * 2 at mountd. */
    static const struct {
        const char *what;
        int pmap_nfs, pmap_mnt, mnt_at;
    } cases[] = {
        {"MOUNT at M, NFS at N: M", 1, 2, 2},
        {"MOUNT at M, NFS at another port: another server's, N", 3, 2, 1},
        {"MOUNT at M, NFS not registered: M", 0, 2, 2},
        {"MOUNT not registered: N", 1, 0, 1},
    };
    uint16_t other = krpc_svc_port(fk.v4only); /* some port that is not N */

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t ports[4] = {0, nfs.port, mountd.port, other};
        uint64_t m0 = mnt_count(&mountd), n0 = mnt_count(&nfs);
        unsigned asked_nfs, asked_mnt, at_new;
        int before = test_failures;

        pm_set(ports[cases[i].pmap_nfs], ports[cases[i].pmap_mnt]);
        run_client(nfs.port, 0, nfs.port, cases[i].mnt_at == 1 ? nfs.port : mountd.port, &at_new);
        pm_counts(&asked_nfs, &asked_mnt);
        CHECK_EQ(at_new, 0);    /* the URL's NFS port is taken as it is */
        CHECK_EQ(asked_mnt, 1); /* no mountport given: the portmapper is asked */
        /* NFS is asked only to check a MOUNT entry that exists. */
        CHECK_EQ(asked_nfs, cases[i].pmap_mnt ? 1 : 0);
        CHECK_EQ(mnt_count(&nfs), n0 + (cases[i].mnt_at == 1));
        CHECK_EQ(mnt_count(&mountd), m0 + (cases[i].mnt_at == 2));
        if (test_failures != before)
            fprintf(stderr, "  (case: %s)\n", cases[i].what);
    }
}

static void srv_cfg(struct nfs3_srv_config *c)
{
    memset(c, 0, sizeof *c);
    c->export_path = export_dir;
    c->state_dir = state_dir;
    nfs3_export_opts_default(&c->opts);
}

int main(void)
{
    char real[PATH_MAX], pmport[16];
    struct nfs3_srv_config sc;

    if (tu_mkdtemp(base, sizeof base, "nfs3-discovery") < 0)
        return 1;
    if (realpath(base, real)) /* the server canonicalises its export path */
        TU_FMT(base, "%s", real);
    TU_FMT(export_dir, "%s/export", base);
    TU_FMT(state_dir, "%s/state", base);
    if (mkdir(export_dir, 0755) < 0 || mkdir(state_dir, 0700) < 0)
        return 1;
    srv_cfg(&sc);
    if (closed_port_open() < 0 || fake_start(&fk) < 0 || tu_nfsrv_start(&nfs, &sc) < 0 || tu_nfsrv_start(&mountd, &sc) < 0) {
        fprintf(stderr, "cannot start the servers\n");
        return 1;
    }
    TU_FMT(pmport, "%u", (unsigned)krpc_svc_port(fk.pm));
    setenv("RPCTLS_TEST_PMAP_PORT", pmport, 1);
    TEST_RUN(test_nfs_port);
    TEST_RUN(test_mount_port);
    tu_nfsrv_stop(&mountd);
    tu_nfsrv_stop(&nfs);
    fake_stop(&fk);
    close(closed_port_fd);
    tu_rmtree(base);
    return test_summary();
}
