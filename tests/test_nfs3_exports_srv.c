/*
 * test_nfs3_exports_srv.c - exports(5) policy in a live server (nfs3_srv
 * with an exports table, TLS optional, client certificates verified when
 * sent), driven by our RPC client from 127.0.0.1 or 127.0.0.2:
 *
 *   - MNT: a path not exported and a client not listed get MNT3ERR_ACCES;
 *     EXPORT lists both exports with their client specs;
 *   - two exports: distinct root handles (export id), a handle with the
 *     other export's id is BADHANDLE (the tag covers it), RENAME and LINK
 *     across two rw exports are XDEV, and after a restart without an export its
 *     handles are STALE;
 *   - a client whose address no spec matches: NFS3ERR_ACCES on NFS calls;
 *   - ro: WRITE, CREATE, MKDIR, SETATTR, REMOVE, RENAME, COMMIT are ROFS,
 *     nothing changes on disk, ACCESS grants no MODIFY/EXTEND/DELETE;
 *   - xprtsec (as knfsd, NFSv3 gets NFS3ERR_ACCES): mtls refuses TLS
 *     without a certificate and plain TCP; tls allows TLS without a
 *     certificate and refuses TLS with one (disjoint, as Linux); tls:mtls
 *     allows both TLS kinds, not plain; none allows only plain;
 *   - rpctls-nfsd --exports with a bad file exits 1 with FILE:LINE:COL.
 */
#define _GNU_SOURCE
#include <errno.h>
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
#include "rpctls/nfs3_export.h"
#include "rpctls/nfs3_srv.h"
#include "test.h"
#include "util/certs.h"
#include "util/nfsd.h"

static char g_base[256], g_rw[300], g_ro[300], g_state[300];
static struct tu_certs g_certs;
static int g_have_certs;

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

static int srv_start(struct srv_inst *si, const char *exports_text)
{
    struct krpc_svc_config cfg;
    struct nfs3_srv_config scfg;
    struct nfs3_exports ex;
    char err[512];
    int ret;

    memset(si, 0, sizeof(*si));
    memset(&cfg, 0, sizeof(cfg));
    memset(&ex, 0, sizeof(ex));
    if (nfs3_exports_parse(&ex, "test", exports_text, strlen(exports_text), err, sizeof(err)) != 0) {
        fprintf(stderr, "exports: %s\n", err);
        return -1;
    }
    /* 0.0.0.0: clients from 127.0.0.1 and 127.0.0.2 both reach it. */
    if (krpc_parse_addr("0.0.0.0:0", &cfg.addr, &cfg.addrlen) != 0 || krpc_loop_new(&si->loop) != 0)
        return -1;
    cfg.tls = KRPC_SVC_TLS_OPTIONAL;
    cfg.tlscfg.cert_file = g_certs.server_cert;
    cfg.tlscfg.key_file = g_certs.server_key;
    cfg.tlscfg.ca_file = g_certs.ca_cert;
    cfg.tlscfg.verify_peer = 1; /* verified when sent */
    if (krpc_svc_new(si->loop, &cfg, &si->svc) != 0)
        return -1;
    memset(&scfg, 0, sizeof(scfg));
    scfg.state_dir = g_state;
    scfg.exports = &ex;
    ret = nfs3_srv_new(si->svc, &scfg, &si->srv, err, sizeof(err));
    nfs3_exports_free(&ex); /* the server keeps a copy */
    if (ret != 0) {
        fprintf(stderr, "nfs3_srv_new: %s\n", err);
        return -1;
    }
    si->port = krpc_svc_port(si->svc);
    return pthread_create(&si->thr, NULL, srv_thread, si) == 0 ? 0 : -1;
}

static void srv_stop(struct srv_inst *si)
{
    krpc_loop_stop(si->loop);
    pthread_join(si->thr, NULL);
    krpc_svc_free(si->svc);
    krpc_loop_run(si->loop, NULL, 30);
    nfs3_srv_free(si->srv);
    krpc_loop_free(si->loop);
}

/* ---- client ------------------------------------------------------------------ */

enum cli_tls { PLAIN, TLS_NOCERT, TLS_CERT };

struct cli {
    struct krpc_loop *loop;
    struct krpc_clnt *mnt, *nfs;
};

static int cli_open(struct cli *c, uint16_t port, const char *src, enum cli_tls tls)
{
    struct krpc_clnt_config cc;
    char addr[32];

    memset(c, 0, sizeof(*c));
    if (krpc_loop_new(&c->loop) != 0)
        return -1;
    memset(&cc, 0, sizeof(cc));
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
    krpc_parse_addr(addr, &cc.addr, &cc.addrlen);
    snprintf(addr, sizeof(addr), "%s:0", src);
    krpc_parse_addr(addr, &cc.src_addr, &cc.src_addrlen);
    cc.cred.flavor = KRPC_AUTH_SYS;
    snprintf(cc.cred.machine, sizeof(cc.cred.machine), "test");
    cc.timeout_ms = 5000;
    cc.max_retries = 1;
    cc.reconnect_delay_ms = 10;
    if (tls != PLAIN) {
        cc.tls = KRPC_TLS_REQUIRED;
        cc.tlscfg.ca_file = g_certs.ca_cert;
        cc.tlscfg.server_name = "127.0.0.1";
        if (tls == TLS_CERT) {
            cc.tlscfg.cert_file = g_certs.client_cert;
            cc.tlscfg.key_file = g_certs.client_key;
        }
    }
    cc.prog = NFS3_MNT_PROGRAM;
    cc.vers = NFS3_MNT_VERSION;
    if (krpc_clnt_new(c->loop, &cc, &c->mnt) != 0)
        return -1;
    cc.prog = NFS3_PROGRAM;
    cc.vers = NFS3_VERSION;
    return krpc_clnt_new(c->loop, &cc, &c->nfs);
}

static void cli_close(struct cli *c)
{
    krpc_clnt_free(c->mnt);
    krpc_clnt_free(c->nfs);
    krpc_loop_run(c->loop, NULL, 30);
    krpc_loop_free(c->loop);
}

#define NOREPLY 0xdead

/* Encodes with ENC, calls, decodes with DEC: the status, or NOREPLY. */
#define CALL(cl, proc, ENC, argp, DEC, resp)                                                   \
    ({                                                                                        \
        struct mb_chain a_ = MB_CHAIN_INIT;                                                   \
        struct krpc_xdr_enc x_;                                                               \
        struct krpc_reply rp_;                                                                \
        int r_ = -EINVAL;                                                                     \
        memset(&rp_, 0, sizeof(rp_));                                                         \
        krpc_xdr_enc_init(&x_, &a_);                                                          \
        ENC(&x_, argp);                                                                       \
        r_ = krpc_call(cl, proc, &a_, &rp_);                                                  \
        if (r_ == 0 && (rp_.hdr.reply_stat != KRPC_MSG_ACCEPTED || rp_.hdr.accept_stat != 0)) \
            r_ = -EPROTO;                                                                     \
        if (r_ == 0)                                                                          \
            r_ = DEC(&rp_.res, resp);                                                         \
        krpc_reply_free(&rp_);                                                                \
        r_;                                                                                   \
    })

static uint32_t mnt(struct cli *c, const char *path, struct nfs3_fh *fh)
{
    struct nfs3_mnt_args a;
    struct nfs3_mnt_res r;
    memset(&a, 0, sizeof(a));
    snprintf(a.dirpath, sizeof(a.dirpath), "%s", path);
    if (CALL(c->mnt, NFS3_MNT_PROC_MNT, nfs3_mnt_enc_mnt_args, &a, nfs3_mnt_dec_mnt_res, &r) != 0)
        return NOREPLY;
    if (fh != NULL && r.status == MNT3_OK)
        *fh = r.fh;
    return r.status;
}

static uint32_t getattr(struct cli *c, const struct nfs3_fh *fh)
{
    struct nfs3_fh_args a = {*fh};
    struct nfs3_getattr_res r;
    return CALL(c->nfs, NFS3_PROC_GETATTR, nfs3_enc_getattr_args, &a, nfs3_dec_getattr_res, &r) != 0 ? NOREPLY
                                                                                                     : r.status;
}

static uint32_t lookup(struct cli *c, const struct nfs3_fh *dir, const char *name, struct nfs3_fh *out)
{
    struct nfs3_diropargs a;
    struct nfs3_lookup_res r;
    memset(&a, 0, sizeof(a));
    a.dir = *dir;
    snprintf(a.name, sizeof(a.name), "%s", name);
    if (CALL(c->nfs, NFS3_PROC_LOOKUP, nfs3_enc_lookup_args, &a, nfs3_dec_lookup_res, &r) != 0)
        return NOREPLY;
    if (out != NULL && r.status == NFS3_OK)
        *out = r.fh;
    return r.status;
}

static uint32_t create(struct cli *c, const struct nfs3_fh *dir, const char *name, struct nfs3_fh *out)
{
    struct nfs3_create_args a;
    struct nfs3_diropres r;
    memset(&a, 0, sizeof(a));
    a.where.dir = *dir;
    snprintf(a.where.name, sizeof(a.where.name), "%s", name);
    a.mode = NFS3_CREATE_UNCHECKED;
    a.attr.set_mode = 1;
    a.attr.mode = 0644;
    if (CALL(c->nfs, NFS3_PROC_CREATE, nfs3_enc_create_args, &a, nfs3_dec_create_res, &r) != 0)
        return NOREPLY;
    if (out != NULL && r.status == NFS3_OK)
        *out = r.fh;
    return r.status;
}

static uint32_t mkdir3(struct cli *c, const struct nfs3_fh *dir, const char *name)
{
    struct nfs3_mkdir_args a;
    struct nfs3_diropres r;
    memset(&a, 0, sizeof(a));
    a.where.dir = *dir;
    snprintf(a.where.name, sizeof(a.where.name), "%s", name);
    return CALL(c->nfs, NFS3_PROC_MKDIR, nfs3_enc_mkdir_args, &a, nfs3_dec_mkdir_res, &r) != 0 ? NOREPLY : r.status;
}

static uint32_t write3(struct cli *c, const struct nfs3_fh *fh, const char *text, uint32_t stable)
{
    struct nfs3_write_args a;
    struct nfs3_write_res r;
    memset(&a, 0, sizeof(a));
    a.fh = *fh;
    a.count = (uint32_t)strlen(text);
    a.stable = stable;
    mb_chain_init(&a.data);
    if (mb_chain_append_bytes(&a.data, text, strlen(text)) != 0)
        return NOREPLY;
    return CALL(c->nfs, NFS3_PROC_WRITE, nfs3_enc_write_args, &a, nfs3_dec_write_res, &r) != 0 ? NOREPLY : r.status;
}

static uint32_t setattr_size(struct cli *c, const struct nfs3_fh *fh, uint64_t size)
{
    struct nfs3_setattr_args a;
    struct nfs3_wcc_res r;
    memset(&a, 0, sizeof(a));
    a.fh = *fh;
    a.attr.set_size = 1;
    a.attr.size = size;
    return CALL(c->nfs, NFS3_PROC_SETATTR, nfs3_enc_setattr_args, &a, nfs3_dec_setattr_res, &r) != 0 ? NOREPLY
                                                                                                     : r.status;
}

static uint32_t remove3(struct cli *c, const struct nfs3_fh *dir, const char *name)
{
    struct nfs3_diropargs a;
    struct nfs3_wcc_res r;
    memset(&a, 0, sizeof(a));
    a.dir = *dir;
    snprintf(a.name, sizeof(a.name), "%s", name);
    return CALL(c->nfs, NFS3_PROC_REMOVE, nfs3_enc_remove_args, &a, nfs3_dec_remove_res, &r) != 0 ? NOREPLY
                                                                                                   : r.status;
}

static uint32_t rename3(struct cli *c, const struct nfs3_fh *fd, const char *fn, const struct nfs3_fh *td,
                        const char *tn)
{
    struct nfs3_rename_args a;
    struct nfs3_rename_res r;
    memset(&a, 0, sizeof(a));
    a.from.dir = *fd;
    a.to.dir = *td;
    snprintf(a.from.name, sizeof(a.from.name), "%s", fn);
    snprintf(a.to.name, sizeof(a.to.name), "%s", tn);
    return CALL(c->nfs, NFS3_PROC_RENAME, nfs3_enc_rename_args, &a, nfs3_dec_rename_res, &r) != 0 ? NOREPLY
                                                                                                   : r.status;
}

static uint32_t link3(struct cli *c, const struct nfs3_fh *fh, const struct nfs3_fh *dir, const char *name)
{
    struct nfs3_link_args a;
    struct nfs3_link_res r;
    memset(&a, 0, sizeof(a));
    a.fh = *fh;
    a.link.dir = *dir;
    snprintf(a.link.name, sizeof(a.link.name), "%s", name);
    return CALL(c->nfs, NFS3_PROC_LINK, nfs3_enc_link_args, &a, nfs3_dec_link_res, &r) != 0 ? NOREPLY : r.status;
}

static uint32_t commit3(struct cli *c, const struct nfs3_fh *fh)
{
    struct nfs3_commit_args a;
    struct nfs3_commit_res r;
    memset(&a, 0, sizeof(a));
    a.fh = *fh;
    return CALL(c->nfs, NFS3_PROC_COMMIT, nfs3_enc_commit_args, &a, nfs3_dec_commit_res, &r) != 0 ? NOREPLY
                                                                                                   : r.status;
}

static uint32_t access3(struct cli *c, const struct nfs3_fh *fh, uint32_t want, uint32_t *got)
{
    struct nfs3_access_args a = {*fh, want};
    struct nfs3_access_res r;
    if (CALL(c->nfs, NFS3_PROC_ACCESS, nfs3_enc_access_args, &a, nfs3_dec_access_res, &r) != 0)
        return NOREPLY;
    *got = r.access;
    return r.status;
}

/* ---- tests ---------------------------------------------------------------------- */

static char g_text[4 * PATH_MAX];

static void test_mount_and_handles(void)
{
    struct srv_inst si;
    struct cli c;
    struct nfs3_fh rw, ro, tampered, f, sub;

    /* rw for 127.0.0.1 only; ro for everyone. */
    snprintf(g_text, sizeof(g_text), "%s 127.0.0.1(rw,no_root_squash)\n%s *(ro)\n", g_rw, g_ro);
    REQUIRE(srv_start(&si, g_text) == 0);
    REQUIRE(cli_open(&c, si.port, "127.0.0.1", PLAIN) == 0);
    CHECK_EQ(mnt(&c, g_rw, &rw), MNT3_OK);
    CHECK_EQ(mnt(&c, g_ro, &ro), MNT3_OK);
    CHECK_EQ(mnt(&c, "/etc", NULL), MNT3ERR_ACCES);     /* not exported */
    CHECK_EQ(mnt(&c, g_base, NULL), MNT3ERR_ACCES);     /* the parent of two exports */
    /* Distinct handle namespaces: the export id (bytes 4..11) differs. */
    CHECK(rw.len == 40 && ro.len == 40 && memcmp(rw.data + 4, ro.data + 4, 8) != 0);
    CHECK_EQ(getattr(&c, &rw), NFS3_OK);
    CHECK_EQ(getattr(&c, &ro), NFS3_OK);
    /* The ro export's root with the rw export's id: the tag no longer
     * matches, so it is not a handle of ours at all. */
    tampered = ro;
    memcpy(tampered.data + 4, rw.data + 4, 8);
    CHECK_EQ(getattr(&c, &tampered), NFS3ERR_BADHANDLE);
    /* Across exports: XDEV, nothing moved or linked. */
    CHECK_EQ(create(&c, &rw, "f", &f), NFS3_OK);
    CHECK_EQ(mkdir3(&c, &rw, "sub"), NFS3_OK);
    CHECK_EQ(lookup(&c, &rw, "sub", &sub), NFS3_OK);
    CHECK_EQ(rename3(&c, &rw, "f", &ro, "f"), NFS3ERR_ROFS); /* the target export is ro: refused first */
    CHECK_EQ(link3(&c, &f, &ro, "f2"), NFS3ERR_ROFS);
    CHECK_EQ(rename3(&c, &rw, "f", &sub, "f"), NFS3_OK);      /* within one export: fine */
    {
        char p[PATH_MAX + 16];
        snprintf(p, sizeof(p), "%s/f", g_ro);
        CHECK(access(p, F_OK) != 0);
    }
    /* EXPORT: both, with their client specs. */
    {
        static struct nfs3_mnt_export ex[4];
        uint32_t n = 0;
        struct mb_chain a = MB_CHAIN_INIT;
        struct krpc_reply rep;
        memset(&rep, 0, sizeof(rep));
        CHECK(krpc_call(c.mnt, NFS3_MNT_PROC_EXPORT, &a, &rep) == 0);
        CHECK(nfs3_mnt_dec_export_res(&rep.res, ex, 4, &n) == 0);
        krpc_reply_free(&rep);
        REQUIRE(n == 2);
        CHECK(strcmp(ex[0].dir, g_rw) == 0 && ex[0].ngroups == 1 && strcmp(ex[0].groups[0], "127.0.0.1") == 0);
        CHECK(strcmp(ex[1].dir, g_ro) == 0 && ex[1].ngroups == 1 && strcmp(ex[1].groups[0], "*") == 0);
    }
    cli_close(&c);

    /* From 127.0.0.2: the rw export is not for it. */
    REQUIRE(cli_open(&c, si.port, "127.0.0.2", PLAIN) == 0);
    CHECK_EQ(mnt(&c, g_rw, NULL), MNT3ERR_ACCES);
    CHECK_EQ(mnt(&c, g_ro, NULL), MNT3_OK);
    CHECK_EQ(getattr(&c, &rw), NFS3ERR_ACCES); /* a handle learnt elsewhere */
    CHECK_EQ(getattr(&c, &ro), NFS3_OK);
    cli_close(&c);
    srv_stop(&si);

    /* Restart without the rw export: its handles are genuine but STALE. */
    snprintf(g_text, sizeof(g_text), "%s *(ro)\n", g_ro);
    REQUIRE(srv_start(&si, g_text) == 0);
    REQUIRE(cli_open(&c, si.port, "127.0.0.1", PLAIN) == 0);
    CHECK_EQ(getattr(&c, &rw), NFS3ERR_STALE);
    CHECK_EQ(getattr(&c, &ro), NFS3_OK); /* same path, same export id after a restart */
    cli_close(&c);
    srv_stop(&si);

    /* Two rw exports: RENAME and LINK from one into the other are XDEV. */
    snprintf(g_text, sizeof(g_text), "%s 127.0.0.1(rw,no_root_squash)\n%s 127.0.0.1(rw,no_root_squash)\n", g_rw, g_ro);
    REQUIRE(srv_start(&si, g_text) == 0);
    REQUIRE(cli_open(&c, si.port, "127.0.0.1", PLAIN) == 0);
    CHECK_EQ(mnt(&c, g_rw, &rw), MNT3_OK);
    CHECK_EQ(mnt(&c, g_ro, &ro), MNT3_OK);
    CHECK_EQ(create(&c, &rw, "x", &f), NFS3_OK);
    CHECK_EQ(rename3(&c, &rw, "x", &ro, "x"), NFS3ERR_XDEV);
    CHECK_EQ(link3(&c, &f, &ro, "x"), NFS3ERR_XDEV);
    CHECK_EQ(remove3(&c, &rw, "x"), NFS3_OK); /* still where it was */
    cli_close(&c);
    srv_stop(&si);

    /* Two exports for one directory are refused at start. */
    {
        struct krpc_loop *loop;
        struct krpc_svc_config cfg;
        struct krpc_svc *svc;
        struct nfs3_srv_config scfg;
        struct nfs3_exports ex;
        struct nfs3_srv *srv = NULL;
        char err[512], want[3 * PATH_MAX];
        memset(&cfg, 0, sizeof(cfg));
        memset(&scfg, 0, sizeof(scfg));
        memset(&ex, 0, sizeof(ex));
        snprintf(g_text, sizeof(g_text), "%s *(ro)\n%s/ *(rw)\n", g_ro, g_ro);
        REQUIRE(nfs3_exports_parse(&ex, "t", g_text, strlen(g_text), err, sizeof(err)) == 0);
        REQUIRE(krpc_loop_new(&loop) == 0);
        krpc_parse_addr("127.0.0.1:0", &cfg.addr, &cfg.addrlen);
        REQUIRE(krpc_svc_new(loop, &cfg, &svc) == 0);
        scfg.state_dir = g_state;
        scfg.exports = &ex;
        CHECK(nfs3_srv_new(svc, &scfg, &srv, err, sizeof(err)) == -EINVAL);
        snprintf(want, sizeof(want), "exports %s and %s/ are the same directory %s", g_ro, g_ro, g_ro);
        CHECK(strcmp(err, want) == 0);
        nfs3_exports_free(&ex);
        krpc_svc_free(svc);
        krpc_loop_free(loop);
    }
}

static void test_ro(void)
{
    struct srv_inst si;
    struct cli c;
    struct nfs3_fh root, file;
    uint32_t got = 0;
    char p[PATH_MAX + 16];
    struct stat st;

    snprintf(p, sizeof(p), "%s/existing", g_ro);
    FILE *fp = fopen(p, "w");
    REQUIRE(fp != NULL);
    fputs("hello", fp);
    fclose(fp);
    snprintf(g_text, sizeof(g_text), "%s 127.0.0.1(ro,no_root_squash)\n", g_ro);
    REQUIRE(srv_start(&si, g_text) == 0);
    REQUIRE(cli_open(&c, si.port, "127.0.0.1", PLAIN) == 0);
    REQUIRE(mnt(&c, g_ro, &root) == MNT3_OK);
    REQUIRE(lookup(&c, &root, "existing", &file) == NFS3_OK);
    CHECK_EQ(write3(&c, &file, "XX", NFS3_FILE_SYNC), NFS3ERR_ROFS);
    CHECK_EQ(setattr_size(&c, &file, 0), NFS3ERR_ROFS);
    CHECK_EQ(create(&c, &root, "new", NULL), NFS3ERR_ROFS);
    CHECK_EQ(mkdir3(&c, &root, "newdir"), NFS3ERR_ROFS);
    CHECK_EQ(remove3(&c, &root, "existing"), NFS3ERR_ROFS);
    CHECK_EQ(rename3(&c, &root, "existing", &root, "moved"), NFS3ERR_ROFS);
    CHECK_EQ(link3(&c, &file, &root, "hard"), NFS3ERR_ROFS);
    CHECK_EQ(commit3(&c, &file), NFS3ERR_ROFS);
    CHECK_EQ(getattr(&c, &file), NFS3_OK); /* reads still work */
    CHECK_EQ(access3(&c, &file, NFS3_ACCESS_READ | NFS3_ACCESS_MODIFY | NFS3_ACCESS_EXTEND, &got), NFS3_OK);
    CHECK(got & NFS3_ACCESS_READ);
    CHECK_EQ(got & (NFS3_ACCESS_MODIFY | NFS3_ACCESS_EXTEND | NFS3_ACCESS_DELETE), 0);
    CHECK(stat(p, &st) == 0 && st.st_size == 5);
    snprintf(p, sizeof(p), "%s/new", g_ro);
    CHECK(access(p, F_OK) != 0);
    snprintf(p, sizeof(p), "%s/newdir", g_ro);
    CHECK(access(p, F_OK) != 0);
    cli_close(&c);
    srv_stop(&si);
}

/* One xprtsec= policy: GETATTR of the root from each transport kind. */
static void xprtsec_case(const char *policy, uint32_t plain, uint32_t tls_nocert, uint32_t tls_cert)
{
    static const enum cli_tls kinds[3] = {PLAIN, TLS_NOCERT, TLS_CERT};
    const uint32_t want[3] = {plain, tls_nocert, tls_cert};
    struct srv_inst si;
    struct nfs3_fh root;

    snprintf(g_text, sizeof(g_text), "%s 127.0.0.1(rw,xprtsec=%s)\n", g_rw, policy);
    REQUIRE(srv_start(&si, g_text) == 0);
    for (int k = 0; k < 3; k++) {
        struct cli c;
        REQUIRE(cli_open(&c, si.port, "127.0.0.1", kinds[k]) == 0);
        /* MNT does not check xprtsec: clients mount in the clear, then start TLS. */
        CHECK_EQ(mnt(&c, g_rw, &root), MNT3_OK);
        uint32_t got = getattr(&c, &root);
        if (got != want[k])
            fprintf(stderr, "xprtsec=%s, client %d: got %u, want %u\n", policy, k, got, want[k]);
        CHECK_EQ(got, want[k]);
        cli_close(&c);
    }
    srv_stop(&si);
}

static void test_xprtsec(void)
{
    if (!g_have_certs) {
        fprintf(stderr, "skip: no certificates\n");
        return;
    }
    xprtsec_case("mtls", NFS3ERR_ACCES, NFS3ERR_ACCES, NFS3_OK);
    xprtsec_case("tls", NFS3ERR_ACCES, NFS3_OK, NFS3ERR_ACCES); /* disjoint, as Linux */
    xprtsec_case("tls:mtls", NFS3ERR_ACCES, NFS3_OK, NFS3_OK);
    xprtsec_case("none", NFS3_OK, NFS3ERR_ACCES, NFS3ERR_ACCES);
    xprtsec_case("none:tls:mtls", NFS3_OK, NFS3_OK, NFS3_OK);
}

static void test_nfsd_bad_file(void)
{
    char tool[PATH_MAX], file[PATH_MAX + 16], out[PATH_MAX + 16], want[PATH_MAX + 128];
    FILE *f;

    tu_tool_path("rpctls-nfsd", tool, sizeof(tool));
    snprintf(file, sizeof(file), "%s/exports", g_base);
    snprintf(out, sizeof(out), "%s/nfsd.out", g_base);
    f = fopen(file, "w");
    REQUIRE(f != NULL);
    fprintf(f, "# test\n%s 127.0.0.1(rw)\n%s *(ro,rx)\n", g_rw, g_ro);
    fclose(f);
    char *argv[] = {tool, "--exports", file, "--listen", "127.0.0.1:0", "--state-dir", g_state, "--rpcbind", "off",
                    NULL};
    CHECK_EQ(tu_run(argv, out, 20), 1);
    snprintf(want, sizeof(want), "rpctls-nfsd: %s:3:%zu: unknown option \"rx\"\n", file, strlen(g_ro) + 7);
    CHECK(tu_file_contains(out, want));
    CHECK(!tu_file_contains(out, "listening"));
    /* --export and --exports together: usage. */
    char *argv2[] = {tool, "--exports", file, "--export", g_rw, NULL};
    CHECK_EQ(tu_run(argv2, out, 20), 2);
    CHECK(tu_file_contains(out, "rpctls-nfsd: --export and --exports exclude each other\n"));
}

/* --export DIR is "DIR 127.0.0.1(rw) ::1(rw)": listening on every address,
 * the server says so at start, serves 127.0.0.1 and refuses 127.0.0.2. */
static void test_export_flag_is_local(void)
{
    struct tu_nfsd d;
    struct cli c;
    struct nfs3_fh fh;
    char want[PATH_MAX + 160];

    REQUIRE(tu_nfsd_init(&d, g_base, "one", "off", NULL) == 0);
    d.extra[0] = "--listen";
    d.extra[1] = "0.0.0.0:0";
    d.extra[2] = NULL;
    REQUIRE(tu_nfsd_start(&d, 0) == 0);
    REQUIRE(cli_open(&c, d.port, "127.0.0.1", PLAIN) == 0);
    CHECK_EQ(mnt(&c, d.export_dir, &fh), MNT3_OK);
    cli_close(&c);
    REQUIRE(cli_open(&c, d.port, "127.0.0.2", PLAIN) == 0);
    CHECK_EQ(mnt(&c, d.export_dir, NULL), MNT3ERR_ACCES);
    CHECK_EQ(getattr(&c, &fh), NFS3ERR_ACCES); /* a handle learnt from 127.0.0.1 */
    cli_close(&c);
    CHECK_EQ(tu_nfsd_stop(&d), 0);
    snprintf(want, sizeof(want),
             "rpctls-nfsd: warning: --export %s serves only 127.0.0.1 and ::1; other clients get MNT3ERR_ACCES "
             "(list them in an exports file, --exports)\n",
             d.export_dir);
    CHECK(tu_file_contains(d.log, want));
}

int main(void)
{
    if (tu_mkdtemp(g_base, sizeof(g_base), "exports") != 0)
        return 1;
    snprintf(g_rw, sizeof(g_rw), "%s/rw", g_base);
    snprintf(g_ro, sizeof(g_ro), "%s/ro", g_base);
    snprintf(g_state, sizeof(g_state), "%s/state", g_base);
    if (mkdir(g_rw, 0755) != 0 || mkdir(g_ro, 0755) != 0)
        return 1;
    g_have_certs = tu_certs_create(&g_certs) == 0;
    krpc_log_set_level(KRPC_LOG_ERROR);
    TEST_RUN(test_mount_and_handles);
    TEST_RUN(test_ro);
    TEST_RUN(test_xprtsec);
    TEST_RUN(test_nfsd_bad_file);
    TEST_RUN(test_export_flag_is_local);
    if (g_have_certs)
        tu_certs_destroy(&g_certs);
    tu_rmtree(g_base);
    return test_summary();
}
