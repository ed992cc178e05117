/*
 * test_nfs3_identity.c - every call runs as its caller (root needed; the
 * test users 4242 and 4343 need no passwd entry: fsuid takes any number).
 *
 *   - user A cannot read user B's mode-0600 file (NFS3ERR_ACCES), reads its own;
 *   - a file created by A is owned by A on disk (uid and gid);
 *   - ACCESS answers differ per caller (A: nothing on B's file; B: read+modify);
 *   - A cannot give its file away (SETATTR uid: NFS3ERR_PERM from the kernel);
 *   - root_squash (the default): uid 0 cannot read a root-owned 0600 file,
 *     creates files owned by 65534; no_root_squash lifts both;
 *   - all_squash: A's new file is owned by 65534;
 *   - AUTH_NONE runs as 65534;
 *   - tlscertuser without a certificate user: MNT and every NFS call are
 *     denied with AUTH_ERROR AUTH_TOOWEAK (draft-cel-nfsv4-rpc-tls-othername
 *     3.1, 3.2);
 *   - two exports of one server, one no_root_squash, one all_squash
 *     (anonuid=4343), and a third all_squash with anonuid=0: the same
 *     clients (root, A) get each export's own policy;
 *   - tlscertuser over TLS: a certificate for daemon@example.org, in
 *     FreeBSD's form or the draft's NFSv4Principal, acts as daemon though
 *     AUTH_SYS says uid 0 (its new file is daemon's); a certificate without
 *     the field, one of a foreign domain, one of an unknown local user
 *     (either form) and no certificate are refused at MNT and on NFS calls,
 *     each with its reason in the server's log, word for word (also the
 *     plain-TCP refusal above);
 *   - squashing and the certificate-user mapping as units (user "daemon";
 *     foreign domain, unknown user, no user, no "@" refused with the reason);
 *   - ACCESS without faccessat2 (forced by a test hook): the mode-bit
 *     fallback equals the kernel's answer for owner, group, others and root
 *     on files and directories of many modes, and the server still answers
 *     per caller with it;
 *   - the test thread's own fsuid is untouched (switches are per thread).
 * Each server runs with two I/O threads, and the first one again with none
 * (identity switching on the loop thread).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "nfs3/access_int.h"
#include "nfs3/nfsd_int.h"
#include "rpctls/pki.h"
#include "test.h"
#include "util/certs.h"
#include "util/logcap.h"
#include "util/nfsd.h"
#include "util/nfsrv.h"

#define UID_A 4242u
#define UID_B 4343u

static char g_base[PATH_MAX], g_export[PATH_MAX + 16], g_state[PATH_MAX + 16];
static struct nfs3_fh g_root;

static int start(struct tu_nfsrv *si, enum nfs3_squash squash, unsigned io_threads, int tlscertuser)
{
    struct nfs3_srv_config scfg;

    memset(&scfg, 0, sizeof(scfg));
    scfg.export_path = g_export;
    scfg.state_dir = g_state;
    nfs3_export_opts_default(&scfg.opts);
    scfg.opts.squash = squash;
    scfg.opts.tlscertuser = tlscertuser;
    scfg.io_threads = io_threads;
    scfg.domain = "example.org";
    if (tu_nfsrv_start(si, &scfg) != 0)
        return -1;
    nfs3_srv_root_fh(si->srv, &g_root);
    return 0;
}

static uint32_t create_in(struct tu_nfscli *c, const struct nfs3_fh *dir, const char *name, uint32_t mode,
                          struct nfs3_fh *fh)
{
    struct nfs3_create_args a;
    struct nfs3_diropres r;

    memset(&a, 0, sizeof(a));
    a.where.dir = *dir;
    snprintf(a.where.name, sizeof(a.where.name), "%s", name);
    a.mode = NFS3_CREATE_GUARDED;
    a.attr.set_mode = 1;
    a.attr.mode = mode;
    if (TU_CALL(c->cl, NFS3_PROC_CREATE, nfs3_enc_create_args, &a, nfs3_dec_create_res, &r) != 0)
        return 0xdead;
    if (fh != NULL)
        *fh = r.fh;
    return r.status;
}

static uint32_t create(struct tu_nfscli *c, const char *name, uint32_t mode, struct nfs3_fh *fh)
{
    return create_in(c, &g_root, name, mode, fh);
}

/* Whether the last call was denied with AUTH_ERROR AUTH_TOOWEAK, the
 * answer draft-cel-nfsv4-rpc-tls-othername gives a refused identity. */
static int too_weak(void)
{
    if (tu_rpc_auth_stat == KRPC_AUTH_TOOWEAK)
        return 1;
    fprintf(stderr, "  last call's auth_stat: %u\n", (unsigned)tu_rpc_auth_stat);
    return 0;
}

/* MNT of path: the MNT status, *fh the handle when MNT3_OK. */
static uint32_t mnt(struct tu_nfscli *m, const char *path, struct nfs3_fh *fh)
{
    struct nfs3_mnt_args a;
    struct nfs3_mnt_res r;

    memset(&a, 0, sizeof(a));
    if (strlen(path) >= sizeof(a.dirpath))
        return 0xdead;
    memcpy(a.dirpath, path, strlen(path) + 1);
    if (TU_CALL(m->cl, NFS3_MNT_PROC_MNT, nfs3_mnt_enc_mnt_args, &a, nfs3_mnt_dec_mnt_res, &r) != 0)
        return 0xdead;
    if (fh != NULL)
        *fh = r.fh;
    return r.status;
}

static uint32_t lookup(struct tu_nfscli *c, const char *name, struct nfs3_fh *fh)
{
    struct nfs3_diropargs a;
    struct nfs3_lookup_res r;

    memset(&a, 0, sizeof(a));
    a.dir = g_root;
    snprintf(a.name, sizeof(a.name), "%s", name);
    if (TU_CALL(c->cl, NFS3_PROC_LOOKUP, nfs3_enc_lookup_args, &a, nfs3_dec_lookup_res, &r) != 0)
        return 0xdead;
    *fh = r.fh;
    return r.status;
}

static uint32_t read1(struct tu_nfscli *c, const struct nfs3_fh *fh)
{
    struct nfs3_read_args a = {*fh, 0, 4096};
    struct nfs3_read_res r;
    uint32_t st;

    memset(&r, 0, sizeof(r));
    if (TU_CALL(c->cl, NFS3_PROC_READ, nfs3_enc_read_args, &a, nfs3_dec_read_res, &r) != 0)
        return 0xdead;
    st = r.status;
    nfs3_read_res_free(&r);
    return st;
}

static uint32_t access_bits(struct tu_nfscli *c, const struct nfs3_fh *fh)
{
    struct nfs3_access_args a = {*fh, NFS3_ACCESS_READ | NFS3_ACCESS_MODIFY | NFS3_ACCESS_EXTEND |
                                          NFS3_ACCESS_EXECUTE};
    struct nfs3_access_res r;

    if (TU_CALL(c->cl, NFS3_PROC_ACCESS, nfs3_enc_access_args, &a, nfs3_dec_access_res, &r) != 0 ||
        r.status != NFS3_OK)
        return 0xdead;
    return r.access;
}

static uint32_t getattr_st(struct tu_nfscli *c, const struct nfs3_fh *fh)
{
    struct nfs3_fh_args a = {*fh};
    struct nfs3_getattr_res r;

    if (TU_CALL(c->cl, NFS3_PROC_GETATTR, nfs3_enc_getattr_args, &a, nfs3_dec_getattr_res, &r) != 0)
        return 0xdead;
    return r.status;
}

/* Waits for the server's log line refusing what ("MNT", "GETATTR"...) for
 * reason, and checks all of it after the time stamp:
 *   rpctls: LEVEL: nfsd: 127.0.0.1:PORT: WHAT refused: REASON */
static void check_refusal_logged(const struct tu_logcap *lc, const char *level, const char *what, const char *reason)
{
    char line[1024], tail[600], head[64];
    const char *const needles[] = {tail, NULL};
    const char *p;

    snprintf(tail, sizeof(tail), ": %s refused: %s", what, reason);
    snprintf(head, sizeof(head), " rpctls: %s: nfsd: 127.0.0.1:", level);
    if (!tu_logcap_wait_line(lc, 3000, line, sizeof(line), needles)) {
        CHECK(!"refusal logged");
        fprintf(stderr, "no log line ending \"%s\"\n", tail);
        return;
    }
    p = strstr(line, head);
    CHECK(p != NULL);
    if (p == NULL)
        return;
    p += strlen(head);
    CHECK(*p >= '1' && *p <= '9');
    while (*p >= '0' && *p <= '9')
        p++;
    CHECK(strcmp(p, tail) == 0);
    if (strcmp(p, tail) != 0)
        fprintf(stderr, "got  \"%s\"\nwant \"...%s\"\n", line, tail);
}

/* Owner of DIR/name on disk. */
static int owner_in(const char *dir, const char *name, uid_t *uid, gid_t *gid)
{
    char p[PATH_MAX + 128];
    struct stat st;

    snprintf(p, sizeof(p), "%s/%s", dir, name);
    if (lstat(p, &st) != 0)
        return -1;
    *uid = st.st_uid;
    *gid = st.st_gid;
    return 0;
}

static int owner_of(const char *name, uid_t *uid, gid_t *gid)
{
    return owner_in(g_export, name, uid, gid);
}

static void open_nfs(struct tu_nfscli *c, uint16_t port, struct krpc_cred cred)
{
    if (tu_nfscli_open(c, port, NFS3_PROGRAM, NFS3_VERSION, &cred) != 0)
        abort();
}

/* Users A and B, root squashed; with io_threads workers (0: on the loop). */
static void users(unsigned io_threads)
{
    struct tu_nfsrv si;
    struct tu_nfscli a, b, root, anon;
    struct nfs3_fh fa, fb, fr, fn;
    struct krpc_cred none;
    char name[64], p[PATH_MAX + 128];
    uid_t u;
    gid_t g;

    REQUIRE(start(&si, NFS3_SQUASH_ROOT, io_threads, 0) == 0);
    open_nfs(&a, si.port, tu_nfs_cred_sys(UID_A, UID_A));
    open_nfs(&b, si.port, tu_nfs_cred_sys(UID_B, UID_B));
    open_nfs(&root, si.port, tu_nfs_cred_sys(0, 0));
    memset(&none, 0, sizeof(none)); /* AUTH_NONE */
    open_nfs(&anon, si.port, none);

    snprintf(name, sizeof(name), "a-%u", io_threads);
    CHECK_EQ(create(&a, name, 0600, &fa), NFS3_OK);
    CHECK(owner_of(name, &u, &g) == 0 && u == UID_A && g == UID_A);
    snprintf(name, sizeof(name), "b-%u", io_threads);
    CHECK_EQ(create(&b, name, 0600, &fb), NFS3_OK);
    CHECK(owner_of(name, &u, &g) == 0 && u == UID_B);

    /* Reading: one's own file yes, the other's no. */
    CHECK_EQ(read1(&a, &fa), NFS3_OK);
    CHECK_EQ(read1(&a, &fb), NFS3ERR_ACCES);
    CHECK_EQ(read1(&b, &fb), NFS3_OK);
    /* ACCESS answers for the caller. */
    CHECK_EQ(access_bits(&a, &fb), 0u);
    CHECK_EQ(access_bits(&b, &fb), NFS3_ACCESS_READ | NFS3_ACCESS_MODIFY | NFS3_ACCESS_EXTEND);
    /* Giving a file away is the kernel's call: EPERM for a non-root fsuid. */
    {
        struct nfs3_setattr_args sa;
        struct nfs3_wcc_res r;
        memset(&sa, 0, sizeof(sa));
        sa.fh = fa;
        sa.attr.set_uid = 1;
        sa.attr.uid = UID_B;
        CHECK(TU_CALL(a.cl, NFS3_PROC_SETATTR, nfs3_enc_setattr_args, &sa, nfs3_dec_setattr_res, &r) == 0);
        CHECK_EQ(r.status, NFS3ERR_PERM);
    }

    /* Root squashed: a root-owned 0600 file is unreadable; new files are 65534's. */
    snprintf(name, sizeof(name), "root-%u", io_threads);
    snprintf(p, sizeof(p), "%s/%s", g_export, name);
    {
        int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0600);
        REQUIRE(fd >= 0);
        CHECK(write(fd, "secret", 6) == 6);
        close(fd);
    }
    CHECK_EQ(lookup(&root, name, &fr), NFS3_OK);
    CHECK_EQ(read1(&root, &fr), NFS3ERR_ACCES);
    CHECK_EQ(getattr_st(&root, &fr), NFS3_OK); /* attributes need no permission */
    snprintf(name, sizeof(name), "byroot-%u", io_threads);
    CHECK_EQ(create(&root, name, 0644, NULL), NFS3_OK);
    CHECK(owner_of(name, &u, &g) == 0 && u == NFS3_ANON_ID && g == NFS3_ANON_ID);

    /* AUTH_NONE: anonymous. */
    snprintf(name, sizeof(name), "none-%u", io_threads);
    CHECK_EQ(create(&anon, name, 0644, &fn), NFS3_OK);
    CHECK(owner_of(name, &u, &g) == 0 && u == NFS3_ANON_ID && g == NFS3_ANON_ID);
    CHECK_EQ(read1(&anon, &fa), NFS3ERR_ACCES);

    /* The switches were the workers' (or undone on the loop): ours is 0. */
    CHECK_EQ(syscall(SYS_setfsuid, (uid_t)-1), 0);

    tu_nfscli_close(&a);
    tu_nfscli_close(&b);
    tu_nfscli_close(&root);
    tu_nfscli_close(&anon);
    tu_nfsrv_stop(&si);
}

static void test_users_pool(void)
{
    users(2);
}

static void test_users_on_loop(void)
{
    users(0);
}

static void test_no_root_squash(void)
{
    struct tu_nfsrv si;
    struct tu_nfscli root;
    struct nfs3_fh fr;
    uid_t u;
    gid_t g;

    REQUIRE(start(&si, NFS3_SQUASH_NONE, 2, 0) == 0);
    open_nfs(&root, si.port, tu_nfs_cred_sys(0, 0));
    CHECK_EQ(lookup(&root, "root-2", &fr), NFS3_OK);
    CHECK_EQ(read1(&root, &fr), NFS3_OK);
    CHECK_EQ(create(&root, "byroot-nrs", 0644, NULL), NFS3_OK);
    CHECK(owner_of("byroot-nrs", &u, &g) == 0 && u == 0 && g == 0);
    tu_nfscli_close(&root);
    tu_nfsrv_stop(&si);
}

static void test_all_squash(void)
{
    struct tu_nfsrv si;
    struct tu_nfscli a;
    uid_t u;
    gid_t g;

    REQUIRE(start(&si, NFS3_SQUASH_ALL, 2, 0) == 0);
    open_nfs(&a, si.port, tu_nfs_cred_sys(UID_A, UID_A));
    CHECK_EQ(create(&a, "a-allsquash", 0644, NULL), NFS3_OK);
    CHECK(owner_of("a-allsquash", &u, &g) == 0 && u == NFS3_ANON_ID && g == NFS3_ANON_ID);
    tu_nfscli_close(&a);
    tu_nfsrv_stop(&si);
}

/* tlscertuser: a call without a certificate user is refused, at MNT and
 * on every NFS call (here: plain TCP, so no certificate at all). */
static void tlscertuser_refused(unsigned io_threads)
{
    struct tu_nfsrv si;
    struct tu_nfscli m, n;
    struct nfs3_mnt_args ma;
    struct nfs3_mnt_res mr;
    struct krpc_cred cred = tu_nfs_cred_sys(0, 0);

    static const char why[] = "not inside TLS (the export maps users from client certificates)";
    struct tu_logcap lc;

    REQUIRE(start(&si, NFS3_SQUASH_ROOT, io_threads, 1) == 0);
    REQUIRE(tu_nfscli_open(&m, si.port, NFS3_MNT_PROGRAM, NFS3_MNT_VERSION, &cred) == 0);
    open_nfs(&n, si.port, tu_nfs_cred_sys(UID_A, UID_A));
    memset(&ma, 0, sizeof(ma));
    REQUIRE(strlen(g_export) < sizeof(ma.dirpath));
    memcpy(ma.dirpath, g_export, strlen(g_export) + 1);
    krpc_log_set_level(KRPC_LOG_INFO); /* NFS calls' refusals are INFO */
    REQUIRE(tu_logcap_start(&lc) == 0);
    int mret = TU_CALL(m.cl, NFS3_MNT_PROC_MNT, nfs3_mnt_enc_mnt_args, &ma, nfs3_mnt_dec_mnt_res, &mr);
    CHECK_EQ(mret, -EACCES);
    CHECK(too_weak());
    CHECK_EQ(getattr_st(&n, &g_root), 0xdead);
    CHECK(too_weak());
    CHECK_EQ(create(&n, "certless", 0644, NULL), 0xdead);
    CHECK(too_weak());
    check_refusal_logged(&lc, "warn", "MNT", why);
    check_refusal_logged(&lc, "info", "GETATTR", why);
    check_refusal_logged(&lc, "info", "CREATE", why);
    tu_logcap_stop(&lc);
    krpc_log_set_level(KRPC_LOG_WARN);
    tu_nfscli_close(&m);
    tu_nfscli_close(&n);
    tu_nfsrv_stop(&si);
}

/* The refusal from a worker (a deferred reply) and from the loop. */
static void test_tlscertuser_refused(void)
{
    tlscertuser_refused(2);
    tlscertuser_refused(0);
}

/* Makes dir (mode 0777: the test users create files in it). */
static int mkdir_open(const char *dir)
{
    if (mkdir(dir, 0777) != 0 || chmod(dir, 0777) != 0) {
        perror(dir);
        return -1;
    }
    return 0;
}

/* The identity policy is per export and client spec, not per server: one
 * server, three exports, the same two clients (root and A). */
static void test_policy_per_export(void)
{
    char none_dir[PATH_MAX + 32], all_dir[PATH_MAX + 32], zero_dir[PATH_MAX + 32];
    char text[3 * (PATH_MAX + 32) + 256], err[512];
    struct krpc_cred cred0 = tu_nfs_cred_sys(0, 0);
    struct nfs3_srv_config scfg;
    struct nfs3_exports ex;
    struct tu_nfsrv si;
    struct tu_nfscli m, root, a;
    struct nfs3_fh fnone, fall, fzero, fa;
    uid_t u;
    gid_t g;

    snprintf(none_dir, sizeof(none_dir), "%s/sq-none", g_base);
    snprintf(all_dir, sizeof(all_dir), "%s/sq-all", g_base);
    snprintf(zero_dir, sizeof(zero_dir), "%s/sq-zero", g_base);
    REQUIRE(mkdir_open(none_dir) == 0 && mkdir_open(all_dir) == 0 && mkdir_open(zero_dir) == 0);
    /* anonuid=0 as written: all_squash to root (the parser keeps 0, and so
     * must the server). */
    snprintf(text, sizeof(text),
             "%s 127.0.0.1(rw,no_root_squash)\n"
             "%s 127.0.0.1(rw,all_squash,anonuid=4343,anongid=4343)\n"
             "%s 127.0.0.1(rw,all_squash,anonuid=0,anongid=0)\n",
             none_dir, all_dir, zero_dir);
    memset(&ex, 0, sizeof(ex));
    REQUIRE(nfs3_exports_parse(&ex, "policies", text, strlen(text), err, sizeof(err)) == 0);
    memset(&scfg, 0, sizeof(scfg));
    scfg.state_dir = g_state;
    scfg.exports = &ex;
    scfg.io_threads = 2;
    REQUIRE(tu_nfsrv_start(&si, &scfg) == 0);
    nfs3_exports_free(&ex); /* the server keeps a copy */

    REQUIRE(tu_nfscli_open(&m, si.port, NFS3_MNT_PROGRAM, NFS3_MNT_VERSION, &cred0) == 0);
    CHECK_EQ(mnt(&m, none_dir, &fnone), MNT3_OK);
    CHECK_EQ(mnt(&m, all_dir, &fall), MNT3_OK);
    CHECK_EQ(mnt(&m, zero_dir, &fzero), MNT3_OK);
    open_nfs(&root, si.port, cred0);
    open_nfs(&a, si.port, tu_nfs_cred_sys(UID_A, UID_A));

    /* Root: root in no_root_squash, 4343 in all_squash. */
    CHECK_EQ(create_in(&root, &fnone, "by-root", 0600, NULL), NFS3_OK);
    CHECK(owner_in(none_dir, "by-root", &u, &g) == 0 && u == 0 && g == 0);
    CHECK_EQ(create_in(&root, &fall, "by-root", 0600, NULL), NFS3_OK);
    CHECK(owner_in(all_dir, "by-root", &u, &g) == 0 && u == UID_B && g == UID_B);
    /* A: itself, then 4343, then 0 (anonuid=0). */
    CHECK_EQ(create_in(&a, &fnone, "by-a", 0600, NULL), NFS3_OK);
    CHECK(owner_in(none_dir, "by-a", &u, &g) == 0 && u == UID_A && g == UID_A);
    CHECK_EQ(create_in(&a, &fall, "by-a", 0600, &fa), NFS3_OK);
    CHECK(owner_in(all_dir, "by-a", &u, &g) == 0 && u == UID_B && g == UID_B);
    CHECK_EQ(create_in(&a, &fzero, "by-a", 0600, NULL), NFS3_OK);
    CHECK(owner_in(zero_dir, "by-a", &u, &g) == 0 && u == 0 && g == 0);
    /* Permissions follow the mapping: under all_squash, A and root are the
     * same 4343 and read each other's 0600 files; under no_root_squash A
     * cannot read root's. */
    CHECK_EQ(read1(&a, &fa), NFS3_OK);
    {
        struct nfs3_fh fr;
        struct nfs3_diropargs la;
        struct nfs3_lookup_res lr;
        memset(&la, 0, sizeof(la));
        la.dir = fnone;
        snprintf(la.name, sizeof(la.name), "by-root");
        CHECK(TU_CALL(a.cl, NFS3_PROC_LOOKUP, nfs3_enc_lookup_args, &la, nfs3_dec_lookup_res, &lr) == 0);
        CHECK_EQ(lr.status, NFS3_OK);
        fr = lr.fh;
        CHECK_EQ(read1(&a, &fr), NFS3ERR_ACCES);
        CHECK_EQ(read1(&root, &fr), NFS3_OK);
    }

    tu_nfscli_close(&m);
    tu_nfscli_close(&root);
    tu_nfscli_close(&a);
    tu_nfsrv_stop(&si);
}

/* tlscertuser end to end: the user comes from the client certificate
 * (subjectAltName otherName, FreeBSD's form and the draft's NFSv4Principal),
 * over TLS, whatever AUTH_SYS claims (here uid 0). Each refusal answers
 * AUTH_ERROR AUTH_TOOWEAK and logs its reason (MNT at WARN, NFS calls at
 * INFO), checked word for word. */
static void test_tlscertuser_tls(void)
{
    static const char no_user[] = "the client certificate names no user (no user@domain otherName)";
    struct tu_certs certs;
    /* Certificates issued here: user, form, file stem. */
    static const struct {
        const char *user;
        unsigned form;
        const char *stem;
    } issued[] = {
        {"daemon@example.org", KTLS_PKI_USER_FREEBSD, "daemon"},
        {"daemon@example.org", KTLS_PKI_USER_DRAFT, "daemon-draft"},
        {"daemon@other.org", KTLS_PKI_USER_FREEBSD, "foreign"},
        {"nosuchuser-4242@example.org", KTLS_PKI_USER_FREEBSD, "nosuch"},
        {"nosuchuser-4242@example.org", KTLS_PKI_USER_DRAFT, "nosuch-draft"},
    };
    char cert[5][PATH_MAX + 32], key[5][PATH_MAX + 32], err[256];
    struct krpc_cred cred0 = tu_nfs_cred_sys(0, 0);
    struct passwd *pw = getpwnam("daemon");
    struct nfs3_srv_config scfg;
    struct tu_nfsrv si;
    struct tu_nfscli m, n;
    struct nfs3_fh root, fh;
    uid_t u;
    gid_t g;

    REQUIRE(pw != NULL && pw->pw_uid != 0 && pw->pw_uid != NFS3_ANON_ID);
    const uid_t daemon_uid = pw->pw_uid; /* getpwnam's result is overwritten by the next call */
    const gid_t daemon_gid = pw->pw_gid;
    REQUIRE(getpwnam("nosuchuser-4242") == NULL);
    REQUIRE(tu_certs_create(&certs) == 0);
    for (size_t i = 0; i < sizeof(issued) / sizeof(issued[0]); i++) {
        snprintf(cert[i], sizeof(cert[i]), "%s/%s.pem", certs.dir, issued[i].stem);
        snprintf(key[i], sizeof(key[i]), "%s/%s.key", certs.dir, issued[i].stem);
        struct ktls_pki_req req = {.kind = KTLS_PKI_CLIENT, .cn = "client", .user = issued[i].user,
                                   .user_forms = issued[i].form, .ca_cert = certs.ca_cert,
                                   .ca_key = certs.ca_key, .cert_out = cert[i], .key_out = key[i], .days = 1};
        REQUIRE(ktls_pki_issue_req(&req, err, sizeof(err)) == 0);
    }
    memset(&scfg, 0, sizeof(scfg));
    scfg.export_path = g_export;
    scfg.state_dir = g_state;
    nfs3_export_opts_default(&scfg.opts);
    scfg.opts.tlscertuser = 1;
    scfg.io_threads = 2;
    scfg.domain = "example.org";
    REQUIRE(tu_nfsrv_start_tls(&si, &scfg, certs.server_cert, certs.server_key, certs.ca_cert) == 0);
    nfs3_srv_root_fh(si.srv, &root);

    /* daemon@example.org in either form: MNT works, and a file made with
     * AUTH_SYS uid 0 is daemon's. */
    for (size_t i = 0; i < 2; i++) {
        char name[32];
        REQUIRE(tu_nfscli_open_tls(&m, si.port, NFS3_MNT_PROGRAM, NFS3_MNT_VERSION, &cred0, certs.ca_cert, cert[i],
                                   key[i]) == 0);
        REQUIRE(tu_nfscli_open_tls(&n, si.port, NFS3_PROGRAM, NFS3_VERSION, &cred0, certs.ca_cert, cert[i],
                                   key[i]) == 0);
        CHECK_EQ(mnt(&m, g_export, &fh), MNT3_OK);
        CHECK(fh.len == root.len && memcmp(fh.data, root.data, root.len) == 0);
        snprintf(name, sizeof(name), "by-%s", issued[i].stem);
        CHECK_EQ(create_in(&n, &root, name, 0644, NULL), NFS3_OK);
        CHECK(owner_of(name, &u, &g) == 0 && u == daemon_uid && g == daemon_gid);
        tu_nfscli_close(&m);
        tu_nfscli_close(&n);
    }

    /* Refused at MNT and on NFS calls, each with its reason in the log: a
     * certificate without the field, one of a foreign domain, one naming
     * an unknown local user (both forms), and no certificate at all. */
    const struct {
        const char *cert, *key, *why;
    } refused[] = {
        {certs.client_cert, certs.client_key, no_user},
        {cert[2], key[2], "certificate user \"daemon@other.org\" is of a foreign domain (this server's: \"example.org\")"},
        {cert[3], key[3], "certificate user \"nosuchuser-4242@example.org\": no such local user \"nosuchuser-4242\""},
        {cert[4], key[4], "certificate user \"nosuchuser-4242@example.org\": no such local user \"nosuchuser-4242\""},
        {NULL, NULL, no_user},
    };
    krpc_log_set_level(KRPC_LOG_INFO); /* NFS calls' refusals are INFO */
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        struct tu_logcap lc;
        char name[32];
        REQUIRE(tu_logcap_start(&lc) == 0);
        REQUIRE(tu_nfscli_open_tls(&m, si.port, NFS3_MNT_PROGRAM, NFS3_MNT_VERSION, &cred0, certs.ca_cert,
                                   refused[i].cert, refused[i].key) == 0);
        REQUIRE(tu_nfscli_open_tls(&n, si.port, NFS3_PROGRAM, NFS3_VERSION, &cred0, certs.ca_cert, refused[i].cert,
                                   refused[i].key) == 0);
        CHECK_EQ(mnt(&m, g_export, NULL), 0xdead);
        CHECK(too_weak());
        CHECK_EQ(getattr_st(&n, &root), 0xdead);
        CHECK(too_weak());
        snprintf(name, sizeof(name), "refused-%zu", i);
        CHECK_EQ(create_in(&n, &root, name, 0644, NULL), 0xdead);
        CHECK(too_weak());
        CHECK(owner_of(name, &u, &g) != 0); /* nothing was made */
        check_refusal_logged(&lc, "warn", "MNT", refused[i].why);
        check_refusal_logged(&lc, "info", "GETATTR", refused[i].why);
        check_refusal_logged(&lc, "info", "CREATE", refused[i].why);
        tu_logcap_stop(&lc);
        tu_nfscli_close(&m);
        tu_nfscli_close(&n);
    }
    krpc_log_set_level(KRPC_LOG_WARN);

    tu_nfsrv_stop(&si);
    tu_certs_destroy(&certs);
}

static void test_squash_units(void)
{
    struct nfs3_export_opts o;
    struct krpc_cred c = tu_nfs_cred_sys(0, 0);
    struct nfsd_ident id;

    nfs3_export_opts_default(&o);
    c.ngids = 2;
    c.gids[0] = 0;
    c.gids[1] = 5;
    nfs3__ident_from_cred(&o, &c, &id);
    CHECK(id.uid == NFS3_ANON_ID && id.gid == NFS3_ANON_ID && id.ngroups == 2);
    CHECK(id.groups[0] == NFS3_ANON_ID && id.groups[1] == 5);
    o.squash = NFS3_SQUASH_NONE;
    nfs3__ident_from_cred(&o, &c, &id);
    CHECK(id.uid == 0 && id.gid == 0 && id.groups[0] == 0);
    o.squash = NFS3_SQUASH_ALL;
    o.anonuid = 1234;
    o.anongid = 5678;
    c.uid = UID_A;
    nfs3__ident_from_cred(&o, &c, &id);
    CHECK(id.uid == 1234 && id.gid == 5678 && id.ngroups == 0);
    o.squash = NFS3_SQUASH_NONE;
    c.flavor = KRPC_AUTH_NONE;
    nfs3__ident_from_cred(&o, &c, &id);
    CHECK(id.uid == 1234 && id.gid == 5678 && id.ngroups == 0);
}

static void test_cert_user_units(void)
{
    struct nfsd_ident id;
    struct passwd *pw = getpwnam("daemon");
    char err[256];
    int has_primary = 0;

    REQUIRE(pw != NULL);
    CHECK_EQ(nfs3__ident_from_cert_user("daemon@example.org", "example.org", &id, err, sizeof(err)), 0);
    CHECK_EQ(id.uid, pw->pw_uid);
    CHECK_EQ(id.gid, pw->pw_gid);
    for (unsigned i = 0; i < id.ngroups; i++)
        has_primary |= id.groups[i] == pw->pw_gid;
    CHECK(has_primary);
    CHECK_EQ(nfs3__ident_from_cert_user("daemon@EXAMPLE.org", "example.org", &id, err, sizeof(err)), 0);
    CHECK_EQ(nfs3__ident_from_cert_user("daemon@other.org", "example.org", &id, err, sizeof(err)), -EACCES);
    CHECK(strstr(err, "foreign domain") != NULL);
    CHECK_EQ(nfs3__ident_from_cert_user("no-such-user-4242@example.org", "example.org", &id, err, sizeof(err)),
             -EACCES);
    CHECK(strstr(err, "no such local user") != NULL);
    CHECK_EQ(nfs3__ident_from_cert_user("", "example.org", &id, err, sizeof(err)), -EACCES);
    CHECK(strstr(err, "names no user") != NULL);
    CHECK_EQ(nfs3__ident_from_cert_user("daemon", "example.org", &id, err, sizeof(err)), -EACCES);
    CHECK_EQ(nfs3__ident_from_cert_user("daemon@example.org", "", &id, err, sizeof(err)), -EACCES);
}

/* ACCESS without faccessat2 (Linux < 5.8): the mode-bit fallback, forced
 * by the test hook, must give what the kernel gives, for owner, group
 * (fsgid and supplementary), others and root, on files and a directory. */
static void test_access_mode_bits_units(void)
{
    static const mode_t modes[] = {0000, 0600, 0640, 0604, 0644, 0700, 0070, 0007, 0755, 0111, 0460, 0406};
    const uint32_t all = NFS3_ACCESS_READ | NFS3_ACCESS_LOOKUP | NFS3_ACCESS_MODIFY | NFS3_ACCESS_EXTEND |
                         NFS3_ACCESS_DELETE | NFS3_ACCESS_EXECUTE;
    const uint32_t rme = NFS3_ACCESS_READ | NFS3_ACCESS_MODIFY | NFS3_ACCESS_EXTEND;
    struct nfsd_ident ids[5];
    struct nfsd_idctx idc;
    char dir[PATH_MAX + 32], p[PATH_MAX + 64];

    REQUIRE(nfs3__idctx_init(&idc) == 1);
    REQUIRE(nfs3__access_probe() == 1); /* this kernel answers; the fallback is compared with it */
    memset(ids, 0, sizeof(ids));
    ids[0] = (struct nfsd_ident){.uid = UID_A, .gid = UID_A};                         /* the owner */
    ids[1] = (struct nfsd_ident){.uid = UID_B, .gid = 4500};                          /* group: fsgid */
    ids[2] = (struct nfsd_ident){.uid = UID_B, .gid = UID_B, .ngroups = 2, .groups = {7, 4500}}; /* supplementary */
    ids[3] = (struct nfsd_ident){.uid = 4600, .gid = 4600, .ngroups = 1, .groups = {4600}};     /* others */
    ids[4] = (struct nfsd_ident){.uid = 0, .gid = 0};                                           /* root */
    snprintf(dir, sizeof(dir), "%s/access-units", g_base);
    REQUIRE(mkdir(dir, 0755) == 0);

    for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
        for (int isdir = 0; isdir <= 1; isdir++) {
            struct nfsd_obj o;
            snprintf(p, sizeof(p), "%s/%s-%04o", dir, isdir ? "d" : "f", (unsigned)modes[m]);
            if (isdir)
                REQUIRE(mkdir(p, 0700) == 0);
            else {
                int fd = open(p, O_CREAT | O_EXCL | O_WRONLY, 0600);
                REQUIRE(fd >= 0);
                close(fd);
            }
            REQUIRE(chown(p, UID_A, 4500) == 0 && chmod(p, modes[m]) == 0);
            memset(&o, 0, sizeof(o));
            o.fd = open(p, O_PATH | O_CLOEXEC);
            REQUIRE(o.fd >= 0 && fstat(o.fd, &o.st) == 0);
            for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
                uint32_t kernel, bits;
                REQUIRE(nfs3__ident_enter(&idc, &ids[i]) == 0);
                kernel = nfs3__op_access(&o, all);
                nfs3__access_force_mode_bits(1);
                bits = nfs3__op_access(&o, all);
                nfs3__access_force_mode_bits(0);
                REQUIRE(nfs3__ident_leave(&idc) == 0);
                CHECK_EQ(bits, kernel);
                if (bits != kernel)
                    fprintf(stderr, "  %s uid %u gid %u: mode bits 0x%x, kernel 0x%x\n", p, (unsigned)ids[i].uid,
                            (unsigned)ids[i].gid, bits, kernel);
                /* A few answers spelled out, so the two cannot agree on nonsense. */
                if (!isdir && modes[m] == 0600 && i == 0)
                    CHECK_EQ(bits, rme);
                if (!isdir && modes[m] == 0640 && (i == 1 || i == 2))
                    CHECK_EQ(bits, NFS3_ACCESS_READ);
                if (!isdir && modes[m] == 0460 && i == 0) /* the owner's bits, not the group's */
                    CHECK_EQ(bits, NFS3_ACCESS_READ);
                if (!isdir && modes[m] == 0000 && i == 4) /* root: no x bit, no execute */
                    CHECK_EQ(bits, rme);
                if (!isdir && modes[m] == 0111 && i == 4)
                    CHECK_EQ(bits, rme | NFS3_ACCESS_EXECUTE);
                if (isdir && modes[m] == 0000 && i == 4)
                    CHECK_EQ(bits, rme | NFS3_ACCESS_DELETE | NFS3_ACCESS_LOOKUP);
                if (modes[m] == 0604 && i == 3)
                    CHECK_EQ(bits, NFS3_ACCESS_READ);
            }
            close(o.fd);
        }
    }
    CHECK_EQ(syscall(SYS_setfsuid, (uid_t)-1), 0);
}

/* The same fallback through the server: ACCESS still answers per caller. */
static void test_access_mode_bits_served(void)
{
    struct tu_nfsrv si;
    struct tu_nfscli a, b;
    struct nfs3_fh fb;

    REQUIRE(start(&si, NFS3_SQUASH_ROOT, 2, 0) == 0);
    open_nfs(&a, si.port, tu_nfs_cred_sys(UID_A, UID_A));
    open_nfs(&b, si.port, tu_nfs_cred_sys(UID_B, UID_B));
    CHECK_EQ(create(&b, "b-modebits", 0600, &fb), NFS3_OK);
    nfs3__access_force_mode_bits(1);
    CHECK_EQ(access_bits(&a, &fb), 0u);
    CHECK_EQ(access_bits(&b, &fb), NFS3_ACCESS_READ | NFS3_ACCESS_MODIFY | NFS3_ACCESS_EXTEND);
    nfs3__access_force_mode_bits(0);
    tu_nfscli_close(&a);
    tu_nfscli_close(&b);
    tu_nfsrv_stop(&si);
}

int main(void)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_nfs3_identity: needs root (switches fsuid)\n");
        return 1;
    }
    if (tu_mkdtemp(g_base, sizeof(g_base), "identity") != 0)
        return 1;
    snprintf(g_export, sizeof(g_export), "%s/export", g_base);
    snprintf(g_state, sizeof(g_state), "%s/state", g_base);
    /* Everybody may create files in the export (the users own what they make). */
    if (mkdir(g_export, 0777) != 0 || chmod(g_export, 0777) != 0 || chmod(g_base, 0755) != 0) {
        perror(g_export);
        return 1;
    }
    {
        char real[PATH_MAX];
        if (realpath(g_export, real) != NULL && strlen(real) < sizeof(g_export))
            memcpy(g_export, real, strlen(real) + 1);
    }
    TEST_RUN(test_squash_units);
    TEST_RUN(test_cert_user_units);
    TEST_RUN(test_access_mode_bits_units);
    TEST_RUN(test_users_pool);
    TEST_RUN(test_users_on_loop);
    TEST_RUN(test_access_mode_bits_served);
    TEST_RUN(test_no_root_squash);
    TEST_RUN(test_all_squash);
    TEST_RUN(test_tlscertuser_refused);
    TEST_RUN(test_policy_per_export);
    TEST_RUN(test_tlscertuser_tls);
    tu_rmtree(g_base);
    return test_summary();
}
