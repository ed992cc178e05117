/*
 * test_nfs3_xdr.c - NFSv3 / MOUNT v3 codecs: round trips for every
 * procedure in both directions (both result arms), known bytes built by
 * hand from RFC 1813's XDR, truncation at every byte, decoding across
 * arbitrary link boundaries, RFC length limits, bad union discriminants,
 * WRITE / READ data by reference (1 MiB of page vectors, no page allocated
 * while decoding), the WRITE count mismatch, and the READDIR builder's
 * size accounting.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbuf/store.h" /* white-box: the kind of the stores WRITE data lands in */
#include "rpctls/nfs3.h"
#include "test.h"

/* ---- helpers -------------------------------------------------------------- */

static unsigned seed = 1;
static uint32_t rnd(void)
{
    seed = seed * 1103515245u + 12345u;
    return seed >> 8;
}

static struct nfs3_fh mkfh(uint32_t len)
{
    struct nfs3_fh fh;
    memset(&fh, 0, sizeof fh);
    fh.len = len;
    for (uint32_t i = 0; i < len; i++)
        fh.data[i] = (uint8_t)rnd();
    return fh;
}

static struct nfs3_time mktime3(void)
{
    struct nfs3_time t = {rnd(), rnd() % 1000000000u};
    return t;
}

static struct nfs3_fattr mkfattr(void)
{
    struct nfs3_fattr a;
    memset(&a, 0, sizeof a);
    a.type = 1 + rnd() % 7;
    a.mode = rnd() & 07777;
    a.nlink = rnd();
    a.uid = rnd();
    a.gid = rnd();
    a.size = ((uint64_t)rnd() << 32) | rnd();
    a.used = ((uint64_t)rnd() << 32) | rnd();
    a.rdev1 = rnd();
    a.rdev2 = rnd();
    a.fsid = ((uint64_t)rnd() << 32) | rnd();
    a.fileid = ((uint64_t)rnd() << 32) | rnd();
    a.atime = mktime3();
    a.mtime = mktime3();
    a.ctime = mktime3();
    return a;
}

static struct nfs3_post_attr mkpost(int present)
{
    struct nfs3_post_attr p;
    memset(&p, 0, sizeof p);
    p.present = present;
    if (present)
        p.attr = mkfattr();
    return p;
}

static struct nfs3_wcc mkwcc(int before, int after)
{
    struct nfs3_wcc w;
    memset(&w, 0, sizeof w);
    w.before.present = before;
    if (before) {
        w.before.size = rnd();
        w.before.mtime = mktime3();
        w.before.ctime = mktime3();
    }
    w.after = mkpost(after);
    return w;
}

static struct nfs3_sattr mksattr(int variant)
{
    struct nfs3_sattr s;
    memset(&s, 0, sizeof s);
    if (variant & 1) {
        s.set_mode = 1;
        s.mode = 0644;
    }
    if (variant & 2) {
        s.set_uid = 1;
        s.uid = rnd();
        s.set_gid = 1;
        s.gid = rnd();
    }
    if (variant & 4) {
        s.set_size = 1;
        s.size = ((uint64_t)rnd() << 32) | rnd();
    }
    s.atime_how = (uint32_t)(variant % 3);
    if (s.atime_how == NFS3_SET_TO_CLIENT_TIME)
        s.atime = mktime3();
    s.mtime_how = (uint32_t)((variant / 3) % 3);
    if (s.mtime_how == NFS3_SET_TO_CLIENT_TIME)
        s.mtime = mktime3();
    return s;
}

static struct nfs3_diropargs mkdirop(const char *name)
{
    struct nfs3_diropargs a;
    memset(&a, 0, sizeof a);
    a.dir = mkfh(1 + rnd() % NFS3_FHSIZE);
    snprintf(a.name, sizeof a.name, "%s", name);
    return a;
}

/* The bytes of c, rebuilt as links of 1..7 bytes over separate clusters. */
static void rechain(const struct mb_chain *c, struct mb_chain *out)
{
    unsigned char *buf = malloc(c->len ? c->len : 1);
    size_t off = 0;
    mb_chain_copy_out(c, 0, c->len, buf);
    while (off < c->len) {
        size_t k = 1 + rnd() % 7;
        if (k > c->len - off)
            k = c->len - off;
        struct mb *m = mb_append_cluster(out, k);
        memcpy(mb_store_ptr(m->st, m->off), buf + off, k);
        off += k;
    }
    free(buf);
}

static int chain_eq_bytes(const struct mb_chain *c, const void *p, size_t n)
{
    if (c->len != n)
        return 0;
    unsigned char *buf = malloc(n ? n : 1);
    mb_chain_copy_out(c, 0, n, buf);
    int eq = memcmp(buf, p, n) == 0;
    free(buf);
    return eq;
}

static void mkchain(struct mb_chain *c, const void *p, size_t n)
{
    mb_chain_init(c);
    if (n)
        mb_chain_append_bytes(c, p, n);
}

/*
 * Round trip of one value: encode, decode (whole message consumed, equal
 * to the input), decode again across 1..7-byte links, and decode every
 * strict prefix (must fail). Inputs are built from zeroed structs so that
 * memcmp is exact.
 */
#define ROUNDTRIP(T, encf, decf, inp)                                                   \
    do {                                                                                \
        struct mb_chain c_ = MB_CHAIN_INIT, s_ = MB_CHAIN_INIT;                         \
        struct krpc_xdr_enc x_;                                                         \
        struct krpc_xdr_dec d_;                                                         \
        static T out_;                                                                  \
        krpc_xdr_enc_init(&x_, &c_);                                                    \
        encf(&x_, (inp));                                                               \
        CHECK_EQ(krpc_xdr_enc_error(&x_), 0);                                           \
        CHECK_EQ(c_.len % 4, 0);                                                        \
        krpc_xdr_dec_init(&d_, &c_, 0, c_.len);                                         \
        CHECK_EQ(decf(&d_, &out_), 0);                                                  \
        CHECK_EQ(krpc_xdr_remaining(&d_), 0);                                           \
        CHECK(memcmp(&out_, (inp), sizeof(T)) == 0);                                    \
        rechain(&c_, &s_);                                                              \
        krpc_xdr_dec_init(&d_, &s_, 0, s_.len);                                         \
        CHECK_EQ(decf(&d_, &out_), 0);                                                  \
        CHECK(memcmp(&out_, (inp), sizeof(T)) == 0);                                    \
        for (size_t k_ = 0; k_ < c_.len; k_++) {                                        \
            krpc_xdr_dec_init(&d_, &s_, 0, k_);                                         \
            int rc_ = decf(&d_, &out_);                                                 \
            CHECK(rc_ < 0);                                                             \
            if (rc_ >= 0)                                                               \
                fprintf(stderr, "  prefix %zu of %zu decoded\n", k_, c_.len);           \
        }                                                                               \
        mb_chain_free(&c_);                                                             \
        mb_chain_free(&s_);                                                             \
    } while (0)

/* ---- round trips: arguments ---------------------------------------------- */

static void test_args_roundtrip(void)
{
    for (int v = 0; v < 9; v++) {
        struct nfs3_fh_args fa;
        memset(&fa, 0, sizeof fa);
        fa.fh = mkfh((uint32_t)(v * 8)); /* 0 .. 64 */
        ROUNDTRIP(struct nfs3_fh_args, nfs3_enc_getattr_args, nfs3_dec_getattr_args, &fa);
        ROUNDTRIP(struct nfs3_fh_args, nfs3_enc_readlink_args, nfs3_dec_readlink_args, &fa);
        ROUNDTRIP(struct nfs3_fh_args, nfs3_enc_fsstat_args, nfs3_dec_fsstat_args, &fa);
        ROUNDTRIP(struct nfs3_fh_args, nfs3_enc_fsinfo_args, nfs3_dec_fsinfo_args, &fa);
        ROUNDTRIP(struct nfs3_fh_args, nfs3_enc_pathconf_args, nfs3_dec_pathconf_args, &fa);

        struct nfs3_setattr_args sa;
        memset(&sa, 0, sizeof sa);
        sa.fh = mkfh(1 + rnd() % 64);
        sa.attr = mksattr(v);
        sa.guard_check = v & 1;
        if (sa.guard_check)
            sa.guard_ctime = mktime3();
        ROUNDTRIP(struct nfs3_setattr_args, nfs3_enc_setattr_args, nfs3_dec_setattr_args, &sa);

        static const char *const names[] = {"a", "ab", "abc", "abcd", "abcde", ".", "..", "x y", ""};
        struct nfs3_diropargs da = mkdirop(names[v]);
        ROUNDTRIP(struct nfs3_diropargs, nfs3_enc_lookup_args, nfs3_dec_lookup_args, &da);
        ROUNDTRIP(struct nfs3_diropargs, nfs3_enc_remove_args, nfs3_dec_remove_args, &da);
        ROUNDTRIP(struct nfs3_diropargs, nfs3_enc_rmdir_args, nfs3_dec_rmdir_args, &da);

        struct nfs3_access_args aa;
        memset(&aa, 0, sizeof aa);
        aa.fh = mkfh(32);
        aa.access = 0x3f;
        ROUNDTRIP(struct nfs3_access_args, nfs3_enc_access_args, nfs3_dec_access_args, &aa);

        struct nfs3_read_args ra;
        memset(&ra, 0, sizeof ra);
        ra.fh = mkfh(28);
        ra.offset = ((uint64_t)rnd() << 32) | rnd();
        ra.count = rnd();
        ROUNDTRIP(struct nfs3_read_args, nfs3_enc_read_args, nfs3_dec_read_args, &ra);

        struct nfs3_create_args ca;
        memset(&ca, 0, sizeof ca);
        ca.where = mkdirop(names[v]);
        ca.mode = (uint32_t)(v % 3);
        if (ca.mode == NFS3_CREATE_EXCLUSIVE)
            memcpy(ca.verf, "verifier", 8);
        else
            ca.attr = mksattr(v + 1);
        ROUNDTRIP(struct nfs3_create_args, nfs3_enc_create_args, nfs3_dec_create_args, &ca);

        struct nfs3_mkdir_args ma;
        memset(&ma, 0, sizeof ma);
        ma.where = mkdirop(names[v]);
        ma.attr = mksattr(v);
        ROUNDTRIP(struct nfs3_mkdir_args, nfs3_enc_mkdir_args, nfs3_dec_mkdir_args, &ma);

        struct nfs3_symlink_args sl;
        memset(&sl, 0, sizeof sl);
        sl.where = mkdirop(names[v]);
        sl.attr = mksattr(v + 2);
        snprintf(sl.data, sizeof sl.data, "../target/%d", v);
        ROUNDTRIP(struct nfs3_symlink_args, nfs3_enc_symlink_args, nfs3_dec_symlink_args, &sl);

        for (uint32_t t = NFS3_REG; t <= NFS3_FIFO; t++) {
            struct nfs3_mknod_args mn;
            memset(&mn, 0, sizeof mn);
            mn.where = mkdirop(names[v]);
            mn.type = t;
            if (t == NFS3_CHR || t == NFS3_BLK || t == NFS3_SOCK || t == NFS3_FIFO)
                mn.attr = mksattr(v);
            if (t == NFS3_CHR || t == NFS3_BLK) {
                mn.spec1 = rnd();
                mn.spec2 = rnd();
            }
            ROUNDTRIP(struct nfs3_mknod_args, nfs3_enc_mknod_args, nfs3_dec_mknod_args, &mn);
        }

        struct nfs3_rename_args rn;
        memset(&rn, 0, sizeof rn);
        rn.from = mkdirop(names[v]);
        rn.to = mkdirop(names[8 - v]);
        ROUNDTRIP(struct nfs3_rename_args, nfs3_enc_rename_args, nfs3_dec_rename_args, &rn);

        struct nfs3_link_args la;
        memset(&la, 0, sizeof la);
        la.fh = mkfh(16);
        la.link = mkdirop(names[v]);
        ROUNDTRIP(struct nfs3_link_args, nfs3_enc_link_args, nfs3_dec_link_args, &la);

        struct nfs3_readdir_args rd;
        memset(&rd, 0, sizeof rd);
        rd.dir = mkfh(20);
        rd.cookie = ((uint64_t)rnd() << 32) | rnd();
        memcpy(rd.cookieverf, "cookieve", 8);
        rd.count = 4096;
        ROUNDTRIP(struct nfs3_readdir_args, nfs3_enc_readdir_args, nfs3_dec_readdir_args, &rd);

        struct nfs3_readdirplus_args rp;
        memset(&rp, 0, sizeof rp);
        rp.dir = mkfh(20);
        rp.cookie = rnd();
        memcpy(rp.cookieverf, "12345678", 8);
        rp.dircount = 8192;
        rp.maxcount = 32768;
        ROUNDTRIP(struct nfs3_readdirplus_args, nfs3_enc_readdirplus_args, nfs3_dec_readdirplus_args, &rp);

        struct nfs3_commit_args cm;
        memset(&cm, 0, sizeof cm);
        cm.fh = mkfh(64);
        cm.offset = rnd();
        cm.count = rnd();
        ROUNDTRIP(struct nfs3_commit_args, nfs3_enc_commit_args, nfs3_dec_commit_args, &cm);

        struct nfs3_mnt_args mnt;
        memset(&mnt, 0, sizeof mnt);
        snprintf(mnt.dirpath, sizeof mnt.dirpath, "/srv/export%d", v);
        ROUNDTRIP(struct nfs3_mnt_args, nfs3_mnt_enc_mnt_args, nfs3_mnt_dec_mnt_args, &mnt);
        ROUNDTRIP(struct nfs3_mnt_args, nfs3_mnt_enc_umnt_args, nfs3_mnt_dec_umnt_args, &mnt);
    }
}

/* ---- round trips: results (both arms) ------------------------------------ */

static void test_res_roundtrip(void)
{
    static const uint32_t stats[] = {NFS3_OK, NFS3ERR_NOENT, NFS3ERR_STALE, NFS3ERR_JUKEBOX};
    for (int si = 0; si < 4; si++) {
        uint32_t st = stats[si];
        int ok = st == NFS3_OK;
        for (int pv = 0; pv < 2; pv++) {
            struct nfs3_getattr_res ga;
            memset(&ga, 0, sizeof ga);
            ga.status = st;
            if (ok)
                ga.attr = mkfattr();
            ROUNDTRIP(struct nfs3_getattr_res, nfs3_enc_getattr_res, nfs3_dec_getattr_res, &ga);

            struct nfs3_wcc_res wr;
            memset(&wr, 0, sizeof wr);
            wr.status = st;
            wr.wcc = mkwcc(pv, !pv);
            ROUNDTRIP(struct nfs3_wcc_res, nfs3_enc_setattr_res, nfs3_dec_setattr_res, &wr);
            ROUNDTRIP(struct nfs3_wcc_res, nfs3_enc_remove_res, nfs3_dec_remove_res, &wr);
            ROUNDTRIP(struct nfs3_wcc_res, nfs3_enc_rmdir_res, nfs3_dec_rmdir_res, &wr);

            struct nfs3_lookup_res lr;
            memset(&lr, 0, sizeof lr);
            lr.status = st;
            if (ok) {
                lr.fh = mkfh(pv ? 64 : 7);
                lr.obj_attr = mkpost(pv);
            }
            lr.dir_attr = mkpost(!pv);
            ROUNDTRIP(struct nfs3_lookup_res, nfs3_enc_lookup_res, nfs3_dec_lookup_res, &lr);

            struct nfs3_access_res ar;
            memset(&ar, 0, sizeof ar);
            ar.status = st;
            ar.obj_attr = mkpost(pv);
            if (ok)
                ar.access = NFS3_ACCESS_READ | NFS3_ACCESS_MODIFY;
            ROUNDTRIP(struct nfs3_access_res, nfs3_enc_access_res, nfs3_dec_access_res, &ar);

            static struct nfs3_readlink_res rl;
            memset(&rl, 0, sizeof rl);
            rl.status = st;
            rl.symlink_attr = mkpost(pv);
            if (ok)
                snprintf(rl.data, sizeof rl.data, "some/where/%d", pv);
            ROUNDTRIP(struct nfs3_readlink_res, nfs3_enc_readlink_res, nfs3_dec_readlink_res, &rl);

            struct nfs3_write_res w;
            memset(&w, 0, sizeof w);
            w.status = st;
            w.file_wcc = mkwcc(!pv, 1);
            if (ok) {
                w.count = rnd();
                w.committed = (uint32_t)(pv ? NFS3_FILE_SYNC : NFS3_UNSTABLE);
                memcpy(w.verf, "WRVERF01", 8);
            }
            ROUNDTRIP(struct nfs3_write_res, nfs3_enc_write_res, nfs3_dec_write_res, &w);

            struct nfs3_diropres dr;
            memset(&dr, 0, sizeof dr);
            dr.status = st;
            if (ok) {
                dr.fh_present = pv;
                if (pv)
                    dr.fh = mkfh(40);
                dr.obj_attr = mkpost(pv);
            }
            dr.dir_wcc = mkwcc(pv, 1);
            ROUNDTRIP(struct nfs3_diropres, nfs3_enc_create_res, nfs3_dec_create_res, &dr);
            ROUNDTRIP(struct nfs3_diropres, nfs3_enc_mkdir_res, nfs3_dec_mkdir_res, &dr);
            ROUNDTRIP(struct nfs3_diropres, nfs3_enc_symlink_res, nfs3_dec_symlink_res, &dr);
            ROUNDTRIP(struct nfs3_diropres, nfs3_enc_mknod_res, nfs3_dec_mknod_res, &dr);

            struct nfs3_rename_res rr;
            memset(&rr, 0, sizeof rr);
            rr.status = st;
            rr.fromdir_wcc = mkwcc(pv, 1);
            rr.todir_wcc = mkwcc(1, pv);
            ROUNDTRIP(struct nfs3_rename_res, nfs3_enc_rename_res, nfs3_dec_rename_res, &rr);

            struct nfs3_link_res lk;
            memset(&lk, 0, sizeof lk);
            lk.status = st;
            lk.file_attr = mkpost(pv);
            lk.linkdir_wcc = mkwcc(1, 1);
            ROUNDTRIP(struct nfs3_link_res, nfs3_enc_link_res, nfs3_dec_link_res, &lk);

            struct nfs3_fsstat_res fs;
            memset(&fs, 0, sizeof fs);
            fs.status = st;
            fs.obj_attr = mkpost(pv);
            if (ok) {
                fs.tbytes = 1ull << 40;
                fs.fbytes = 1ull << 39;
                fs.abytes = 1ull << 38;
                fs.tfiles = 1000;
                fs.ffiles = 900;
                fs.afiles = 800;
                fs.invarsec = 0;
            }
            ROUNDTRIP(struct nfs3_fsstat_res, nfs3_enc_fsstat_res, nfs3_dec_fsstat_res, &fs);

            struct nfs3_fsinfo_res fi;
            memset(&fi, 0, sizeof fi);
            fi.status = st;
            fi.obj_attr = mkpost(!pv);
            if (ok) {
                fi.rtmax = fi.wtmax = 1 << 20;
                fi.rtpref = fi.wtpref = 1 << 17;
                fi.rtmult = fi.wtmult = 4096;
                fi.dtpref = 8192;
                fi.maxfilesize = UINT64_MAX;
                fi.time_delta.nseconds = 1;
                fi.properties = NFS3_FSF_LINK | NFS3_FSF_SYMLINK | NFS3_FSF_HOMOGENEOUS | NFS3_FSF_CANSETTIME;
            }
            ROUNDTRIP(struct nfs3_fsinfo_res, nfs3_enc_fsinfo_res, nfs3_dec_fsinfo_res, &fi);

            struct nfs3_pathconf_res pc;
            memset(&pc, 0, sizeof pc);
            pc.status = st;
            pc.obj_attr = mkpost(pv);
            if (ok) {
                pc.linkmax = 65000;
                pc.name_max = 255;
                pc.no_trunc = 1;
                pc.chown_restricted = 1;
                pc.case_insensitive = pv;
                pc.case_preserving = 1;
            }
            ROUNDTRIP(struct nfs3_pathconf_res, nfs3_enc_pathconf_res, nfs3_dec_pathconf_res, &pc);

            struct nfs3_commit_res cr;
            memset(&cr, 0, sizeof cr);
            cr.status = st;
            cr.file_wcc = mkwcc(pv, !pv);
            if (ok)
                memcpy(cr.verf, "COMMITVF", 8);
            ROUNDTRIP(struct nfs3_commit_res, nfs3_enc_commit_res, nfs3_dec_commit_res, &cr);
        }
    }

    static const uint32_t mstats[] = {MNT3_OK, MNT3ERR_NOENT, MNT3ERR_ACCES};
    for (int i = 0; i < 3; i++) {
        struct nfs3_mnt_res mr;
        memset(&mr, 0, sizeof mr);
        mr.status = mstats[i];
        if (mr.status == MNT3_OK) {
            mr.fh = mkfh(36);
            mr.nflavors = 2;
            mr.flavors[0] = 1;
            mr.flavors[1] = 0;
        }
        ROUNDTRIP(struct nfs3_mnt_res, nfs3_mnt_enc_mnt_res, nfs3_mnt_dec_mnt_res, &mr);
    }
}

/* ---- READ / WRITE data by reference ---------------------------------------- */

static int store_in(const struct mb_chain *c, const struct mb_store *st)
{
    for (const struct mb *m = c->head; m; m = m->next)
        if (m->st == st)
            return 1;
    return 0;
}

static void test_write_1mib_by_reference(void)
{
    const size_t n = 1u << 20;
    unsigned char *buf = malloc(n);
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)(i * 7 + (i >> 12));
    struct mb_chain src = MB_CHAIN_INIT, msg = MB_CHAIN_INIT;
    REQUIRE(mb_chain_append_pages_from_buf(&src, buf, n) == 0);

    struct nfs3_write_args wa;
    memset(&wa, 0, sizeof wa);
    wa.fh = mkfh(32);
    wa.offset = 1ull << 33;
    wa.count = (uint32_t)n;
    wa.stable = NFS3_UNSTABLE;
    mb_chain_init(&wa.data);
    REQUIRE(mb_chain_copy_ref(&wa.data, &src, 0, n) == 0);

    struct mb_pool_stats s0, s1, s2;
    mb_pool_get_stats(&s0);
    struct krpc_xdr_enc x;
    krpc_xdr_enc_init(&x, &msg);
    nfs3_enc_write_args(&x, &wa);
    CHECK_EQ(krpc_xdr_enc_error(&x), 0);
    CHECK_EQ(wa.data.len, 0); /* consumed */
    CHECK_EQ(wa.data.head, NULL);
    CHECK_EQ(msg.len, 4 + 32 + 8 + 4 + 4 + 4 + n);
    mb_pool_get_stats(&s1);
    CHECK_EQ(s1.page_allocs, s0.page_allocs); /* encode linked the pages in */

    struct nfs3_write_args out;
    struct krpc_xdr_dec d;
    krpc_xdr_dec_init(&d, &msg, 0, msg.len);
    CHECK_EQ(nfs3_dec_write_args(&d, &out), 0);
    mb_pool_get_stats(&s2);
    CHECK_EQ(s2.page_allocs, s1.page_allocs); /* decode took them by reference */
    CHECK_EQ(s2.pages_in_use, s1.pages_in_use);
    CHECK_EQ(out.count, n);
    CHECK_EQ(out.data.len, n);
    CHECK_EQ(out.offset, 1ull << 33);
    CHECK_EQ(out.stable, NFS3_UNSTABLE);
    CHECK(memcmp(&out.fh, &wa.fh, sizeof wa.fh) == 0);
    CHECK_EQ(mb_chain_check(&out.data), 0);
    int all_shared = 1;
    for (const struct mb *m = out.data.head; m; m = m->next)
        if (!store_in(&src, m->st) || m->st->kind != MB_ST_PAGES)
            all_shared = 0;
    CHECK(all_shared);
    CHECK(chain_eq_bytes(&out.data, buf, n));
    CHECK(!mb_chain_is_writable(&out.data, 0, n)); /* shared with src: nobody may write */

    nfs3_write_args_free(&out);
    CHECK_EQ(out.data.len, 0);
    mb_chain_free(&msg);
    mb_chain_free(&src);
    free(buf);
}

static void test_read_res_by_reference(void)
{
    const size_t n = 300001; /* odd: padding */
    unsigned char *buf = malloc(n);
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)(i ^ (i >> 9));
    struct mb_chain src = MB_CHAIN_INIT, msg = MB_CHAIN_INIT;
    REQUIRE(mb_chain_append_pages_from_buf(&src, buf, n) == 0);

    struct nfs3_read_res rr;
    memset(&rr, 0, sizeof rr);
    rr.status = NFS3_OK;
    rr.file_attr = mkpost(1);
    rr.count = (uint32_t)n;
    rr.eof = 1;
    REQUIRE(mb_chain_copy_ref(&rr.data, &src, 0, n) == 0);
    struct krpc_xdr_enc x;
    krpc_xdr_enc_init(&x, &msg);
    nfs3_enc_read_res(&x, &rr);
    CHECK_EQ(krpc_xdr_enc_error(&x), 0);
    CHECK_EQ(rr.data.len, 0);
    CHECK_EQ(msg.len % 4, 0);

    struct mb_pool_stats s0, s1;
    mb_pool_get_stats(&s0);
    struct nfs3_read_res out;
    struct krpc_xdr_dec d;
    krpc_xdr_dec_init(&d, &msg, 0, msg.len);
    CHECK_EQ(nfs3_dec_read_res(&d, &out), 0);
    CHECK_EQ(krpc_xdr_remaining(&d), 0);
    mb_pool_get_stats(&s1);
    CHECK_EQ(s1.page_allocs, s0.page_allocs);
    CHECK_EQ(out.count, n);
    CHECK_EQ(out.eof, 1);
    CHECK(memcmp(&out.file_attr, &rr.file_attr, sizeof rr.file_attr) == 0);
    CHECK(chain_eq_bytes(&out.data, buf, n));
    for (const struct mb *m = out.data.head; m; m = m->next)
        CHECK(store_in(&src, m->st));
    nfs3_read_res_free(&out);

    /* Every strict prefix fails and leaves nothing behind. */
    for (size_t k = 0; k < 200; k++) {
        krpc_xdr_dec_init(&d, &msg, 0, k);
        CHECK(nfs3_dec_read_res(&d, &out) < 0);
        CHECK_EQ(out.data.len, 0);
    }
    krpc_xdr_dec_init(&d, &msg, 0, msg.len - 1);
    CHECK(nfs3_dec_read_res(&d, &out) < 0);
    CHECK_EQ(out.data.head, NULL);
    mb_chain_free(&msg);

    /* Failure arm: post_op_attr only; the data given is released. */
    memset(&rr, 0, sizeof rr);
    rr.status = NFS3ERR_IO;
    rr.file_attr = mkpost(0);
    REQUIRE(mb_chain_copy_ref(&rr.data, &src, 0, 100) == 0);
    krpc_xdr_enc_init(&x, &msg);
    nfs3_enc_read_res(&x, &rr);
    CHECK_EQ(rr.data.len, 0);
    static const unsigned char fail_bytes[] = {0, 0, 0, 5, 0, 0, 0, 0};
    CHECK(chain_eq_bytes(&msg, fail_bytes, sizeof fail_bytes));
    krpc_xdr_dec_init(&d, &msg, 0, msg.len);
    CHECK_EQ(nfs3_dec_read_res(&d, &out), 0);
    CHECK_EQ(out.status, NFS3ERR_IO);
    CHECK_EQ(out.data.len, 0);
    mb_chain_free(&msg);
    mb_chain_free(&src);
    free(buf);
}

/* ---- known bytes (hand-built from RFC 1813's XDR) -------------------------- */

static void test_known_bytes(void)
{
    struct mb_chain c = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    struct krpc_xdr_dec d;

    /* LOOKUP3args: diropargs3 { nfs_fh3 dir; filename3 name } */
    static const unsigned char lookup[] = {
        0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8, /* fhandle3 opaque<64> */
        0, 0, 0, 3, 'a', 'b', 'c', 0,       /* filename3, padded */
    };
    struct nfs3_diropargs la;
    memset(&la, 0, sizeof la);
    la.dir.len = 8;
    for (int i = 0; i < 8; i++)
        la.dir.data[i] = (uint8_t)(i + 1);
    strcpy(la.name, "abc");
    krpc_xdr_enc_init(&x, &c);
    nfs3_enc_lookup_args(&x, &la);
    CHECK(chain_eq_bytes(&c, lookup, sizeof lookup));
    mb_chain_free(&c);

    /* WRITE3args { file, offset3, count3, stable_how, opaque data<> } */
    static const unsigned char write[] = {
        0, 0, 0, 4, 0xaa, 0xbb, 0xcc, 0xdd,         /* file */
        0, 0, 0, 1, 0, 0, 0, 2,                     /* offset 0x100000002 */
        0, 0, 0, 5,                                 /* count */
        0, 0, 0, 2,                                 /* FILE_SYNC */
        0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o', 0, 0, 0, /* data */
    };
    struct nfs3_write_args wa;
    memset(&wa, 0, sizeof wa);
    wa.fh.len = 4;
    memcpy(wa.fh.data, "\xaa\xbb\xcc\xdd", 4);
    wa.offset = 0x100000002ull;
    wa.count = 5;
    wa.stable = NFS3_FILE_SYNC;
    mkchain(&wa.data, "hello", 5);
    krpc_xdr_enc_init(&x, &c);
    nfs3_enc_write_args(&x, &wa);
    CHECK(chain_eq_bytes(&c, write, sizeof write));
    mb_chain_free(&c);
    mkchain(&c, write, sizeof write);
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    CHECK_EQ(nfs3_dec_write_args(&d, &wa), 0);
    CHECK_EQ(wa.offset, 0x100000002ull);
    CHECK(chain_eq_bytes(&wa.data, "hello", 5));
    nfs3_write_args_free(&wa);
    mb_chain_free(&c);

    /* GETATTR3res, failure arm: the status only. */
    static const unsigned char stale[] = {0, 0, 0, 70};
    struct nfs3_getattr_res gr;
    memset(&gr, 0, sizeof gr);
    gr.status = NFS3ERR_STALE;
    gr.attr = mkfattr(); /* not encoded */
    krpc_xdr_enc_init(&x, &c);
    nfs3_enc_getattr_res(&x, &gr);
    CHECK(chain_eq_bytes(&c, stale, sizeof stale));
    mb_chain_free(&c);

    /* GETATTR3res OK: fattr3 is 84 bytes. */
    static const unsigned char getattr_ok[] = {
        0, 0, 0, 0,                                     /* NFS3_OK */
        0, 0, 0, 2, 0, 0, 0x01, 0xed, 0, 0, 0, 3,       /* NF3DIR, 0755, nlink 3 */
        0, 0, 0x03, 0xe8, 0, 0, 0x03, 0xe9,             /* uid 1000 gid 1001 */
        0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, /* size 4096 used 8192 */
        0, 0, 0, 0, 0, 0, 0, 0,                         /* rdev */
        0, 0, 0, 0, 0, 0, 0, 9,                         /* fsid */
        0, 0, 0, 1, 0, 0, 0, 0x2a,                      /* fileid 0x10000002a */
        0, 0, 0, 10, 0, 0, 0, 11,                       /* atime */
        0, 0, 0, 12, 0, 0, 0, 13,                       /* mtime */
        0, 0, 0, 14, 0, 0, 0, 15,                       /* ctime */
    };
    CHECK_EQ(sizeof getattr_ok, 4 + NFS3_FATTR_XDR_SIZE);
    mkchain(&c, getattr_ok, sizeof getattr_ok);
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    CHECK_EQ(nfs3_dec_getattr_res(&d, &gr), 0);
    CHECK_EQ(gr.attr.type, NFS3_DIR);
    CHECK_EQ(gr.attr.mode, 0755);
    CHECK_EQ(gr.attr.nlink, 3);
    CHECK_EQ(gr.attr.uid, 1000);
    CHECK_EQ(gr.attr.gid, 1001);
    CHECK_EQ(gr.attr.size, 4096);
    CHECK_EQ(gr.attr.used, 8192);
    CHECK_EQ(gr.attr.fsid, 9);
    CHECK_EQ(gr.attr.fileid, 0x10000002aull);
    CHECK_EQ(gr.attr.atime.seconds, 10);
    CHECK_EQ(gr.attr.ctime.nseconds, 15);
    mb_chain_free(&c);
    krpc_xdr_enc_init(&x, &c);
    nfs3_enc_getattr_res(&x, &gr);
    CHECK(chain_eq_bytes(&c, getattr_ok, sizeof getattr_ok));
    mb_chain_free(&c);

    /* mountres3 OK { fhandle3; int auth_flavors<> } */
    static const unsigned char mnt_ok[] = {
        0, 0, 0, 0, 0, 0, 0, 4, 9, 8, 7, 6, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0,
    };
    mkchain(&c, mnt_ok, sizeof mnt_ok);
    struct nfs3_mnt_res mr;
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    CHECK_EQ(nfs3_mnt_dec_mnt_res(&d, &mr), 0);
    CHECK_EQ(mr.fh.len, 4);
    CHECK_EQ(mr.fh.data[0], 9);
    CHECK_EQ(mr.nflavors, 2);
    CHECK_EQ(mr.flavors[0], 1);
    mb_chain_free(&c);
    krpc_xdr_enc_init(&x, &c);
    nfs3_mnt_enc_mnt_res(&x, &mr);
    CHECK(chain_eq_bytes(&c, mnt_ok, sizeof mnt_ok));
    mb_chain_free(&c);

    /* READDIR3res OK: no dir attributes, cookieverf, one entry3, eof. */
    static const unsigned char readdir[] = {
        0, 0, 0, 0,                                       /* NFS3_OK */
        0, 0, 0, 0,                                       /* dir_attributes: none */
        'v', 'e', 'r', 'f', 'v', 'e', 'r', 'f',           /* cookieverf3 */
        0, 0, 0, 1,                                       /* entry follows */
        0, 0, 0, 0, 0, 0, 0, 7,                           /* fileid */
        0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o', 0, 0, 0,     /* name */
        0, 0, 0, 0, 0, 0, 0, 9,                           /* cookie */
        0, 0, 0, 0,                                       /* no more entries */
        0, 0, 0, 1,                                       /* eof */
    };
    struct nfs3_readdir_res rr;
    struct nfs3_dirent ent;
    memset(&rr, 0, sizeof rr);
    memset(&ent, 0, sizeof ent);
    memcpy(rr.cookieverf, "verfverf", 8);
    rr.eof = 1;
    ent.fileid = 7;
    ent.cookie = 9;
    strcpy(ent.name, "hello");
    krpc_xdr_enc_init(&x, &c);
    nfs3_enc_readdir_res(&x, &rr, &ent, 1);
    CHECK(chain_eq_bytes(&c, readdir, sizeof readdir));
    mb_chain_free(&c);

    /* exports: one export "/srv" with group "lan" */
    static const unsigned char exports[] = {
        0, 0, 0, 1, 0, 0, 0, 4, '/', 's', 'r', 'v',  /* export follows, ex_dir */
        0, 0, 0, 1, 0, 0, 0, 3, 'l', 'a', 'n', 0,    /* group follows, gr_name */
        0, 0, 0, 0,                                  /* no more groups */
        0, 0, 0, 0,                                  /* no more exports */
    };
    static struct nfs3_mnt_export ex[2];
    memset(ex, 0, sizeof ex);
    strcpy(ex[0].dir, "/srv");
    ex[0].ngroups = 1;
    strcpy(ex[0].groups[0], "lan");
    krpc_xdr_enc_init(&x, &c);
    nfs3_mnt_enc_export_res(&x, ex, 1);
    CHECK(chain_eq_bytes(&c, exports, sizeof exports));
    mb_chain_free(&c);
}

/* ---- limits and malformed input ------------------------------------------- */

static int dec_bytes_lookup(const unsigned char *p, size_t n)
{
    struct mb_chain c;
    struct krpc_xdr_dec d;
    struct nfs3_diropargs a;
    mkchain(&c, p, n);
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    int rc = nfs3_dec_lookup_args(&d, &a);
    mb_chain_free(&c);
    return rc;
}

static void test_limits(void)
{
    static unsigned char buf[4096];
    struct mb_chain c = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    struct krpc_xdr_dec d;

    /* fh of 65 bytes */
    memset(buf, 0, sizeof buf);
    buf[3] = 65;
    buf[3 + 4 + 68] = 1;
    buf[3 + 4 + 68 + 1] = 'a';
    CHECK_EQ(dec_bytes_lookup(buf, 4 + 68 + 8), -EMSGSIZE);
    /* fh of 64 bytes is fine */
    buf[3] = 64;
    memset(buf + 4 + 64, 0, 16);
    buf[4 + 64 + 3] = 1;
    buf[4 + 64 + 4] = 'a';
    CHECK_EQ(dec_bytes_lookup(buf, 4 + 64 + 8), 0);

    /* a 256-byte name */
    memset(buf, 0, sizeof buf);
    buf[3] = 4;
    buf[8 + 2] = 1; /* 256 = 0x100 */
    memset(buf + 12, 'n', 256);
    CHECK_EQ(dec_bytes_lookup(buf, 12 + 256), -EMSGSIZE);
    buf[8 + 2] = 0;
    buf[8 + 3] = 255;
    CHECK_EQ(dec_bytes_lookup(buf, 12 + 256), 0);
    /* an embedded NUL */
    buf[8 + 3] = 3;
    buf[12] = 'a';
    buf[13] = 0;
    buf[14] = 'b';
    CHECK_EQ(dec_bytes_lookup(buf, 16), -EBADMSG);
    /* a hostile length */
    memset(buf + 8, 0xff, 4);
    CHECK(dec_bytes_lookup(buf, 64) < 0);

    /* MNT dirpath of 1025 bytes; SYMLINK data of 1025 */
    memset(buf, 0, sizeof buf);
    buf[2] = 4;
    buf[3] = 1;
    memset(buf + 4, '/', 1025);
    mkchain(&c, buf, 4 + 1028);
    struct nfs3_mnt_args ma;
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    CHECK_EQ(nfs3_mnt_dec_mnt_args(&d, &ma), -EMSGSIZE);
    CHECK_EQ(ma.dirpath[0], 0);
    mb_chain_free(&c);
    buf[3] = 0;
    mkchain(&c, buf, 4 + 1024);
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    CHECK_EQ(nfs3_mnt_dec_mnt_args(&d, &ma), 0);
    CHECK_EQ(strlen(ma.dirpath), 1024);
    mb_chain_free(&c);

    /* Encoders refuse what the RFC does not allow. */
    struct nfs3_diropargs da;
    memset(&da, 0, sizeof da);
    da.dir.len = 65;
    krpc_xdr_enc_init(&x, &c);
    nfs3_enc_lookup_args(&x, &da);
    CHECK_EQ(krpc_xdr_enc_error(&x), -EMSGSIZE);
    mb_chain_free(&c);
    da.dir.len = 8;
    memset(da.name, 'n', sizeof da.name); /* 256 bytes, unterminated */
    krpc_xdr_enc_init(&x, &c);
    nfs3_enc_lookup_args(&x, &da);
    CHECK_EQ(krpc_xdr_enc_error(&x), -EMSGSIZE);
    mb_chain_free(&c);
    static struct nfs3_symlink_args sl;
    memset(&sl, 0, sizeof sl);
    memset(sl.data, 'p', sizeof sl.data); /* 1025 */
    krpc_xdr_enc_init(&x, &c);
    nfs3_enc_symlink_args(&x, &sl);
    CHECK_EQ(krpc_xdr_enc_error(&x), -EMSGSIZE);
    mb_chain_free(&c);
    struct nfs3_mnt_res mr;
    memset(&mr, 0, sizeof mr);
    mr.nflavors = NFS3_MNT_MAXFLAVORS + 1;
    krpc_xdr_enc_init(&x, &c);
    nfs3_mnt_enc_mnt_res(&x, &mr);
    CHECK_EQ(krpc_xdr_enc_error(&x), -EMSGSIZE);
    mb_chain_free(&c);

    /* MNT reply with too many flavors */
    static const unsigned char mnt_many[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 17};
    mkchain(&c, mnt_many, sizeof mnt_many);
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    CHECK_EQ(nfs3_mnt_dec_mnt_res(&d, &mr), -EMSGSIZE);
    mb_chain_free(&c);
}

static void test_bad_discriminants(void)
{
    struct mb_chain c = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    struct krpc_xdr_dec d;

    /* WRITE with stable_how 3 */
    static const unsigned char w[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 1, 'x', 0, 0, 0};
    struct nfs3_write_args wa;
    mkchain(&c, w, sizeof w);
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    CHECK_EQ(nfs3_dec_write_args(&d, &wa), -EBADMSG);
    CHECK_EQ(wa.data.len, 0);
    mb_chain_free(&c);

    /* CREATE with createmode 3, MKNOD with type 8, sattr with time_how 3,
     * post_op_attr bool 2: built from valid encodings, then patched. */
    struct nfs3_create_args ca;
    memset(&ca, 0, sizeof ca);
    ca.where = mkdirop("f");
    ca.where.dir.len = 4;
    krpc_xdr_enc_init(&x, &c);
    nfs3_enc_create_args(&x, &ca);
    unsigned char bytes[256];
    size_t n = c.len;
    mb_chain_copy_out(&c, 0, n, bytes);
    mb_chain_free(&c);
    /* layout: fh(8) name(8) mode(4) sattr(4*6) */
    bytes[19] = 3;
    mkchain(&c, bytes, n);
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    CHECK_EQ(nfs3_dec_create_args(&d, &ca), -EBADMSG);
    mb_chain_free(&c);
    bytes[19] = 0;
    bytes[16 + 4 + 16 + 3] = 3; /* atime how */
    mkchain(&c, bytes, n);
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    CHECK_EQ(nfs3_dec_create_args(&d, &ca), -EBADMSG);
    mb_chain_free(&c);
    bytes[16 + 4 + 16 + 3] = 0;
    bytes[16 + 4 + 3] = 2; /* set_mode bool 2 */
    mkchain(&c, bytes, n);
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    CHECK(nfs3_dec_create_args(&d, &ca) < 0);
    mb_chain_free(&c);

    struct nfs3_mknod_args mn;
    memset(&mn, 0, sizeof mn);
    mn.where = mkdirop("n");
    mn.where.dir.len = 4;
    mn.type = NFS3_REG;
    krpc_xdr_enc_init(&x, &c);
    nfs3_enc_mknod_args(&x, &mn);
    n = c.len;
    mb_chain_copy_out(&c, 0, n, bytes);
    mb_chain_free(&c);
    bytes[19] = 8;
    mkchain(&c, bytes, n);
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    CHECK_EQ(nfs3_dec_mknod_args(&d, &mn), -EBADMSG);
    mb_chain_free(&c);
    mn.type = 0;
    krpc_xdr_enc_init(&x, &c);
    nfs3_enc_mknod_args(&x, &mn);
    CHECK_EQ(krpc_xdr_enc_error(&x), -EINVAL);
    mb_chain_free(&c);
}

/* The "WRITE whose count disagrees with its data": decode fails
 * (-EBADMSG), so the server answers GARBAGE_ARGS. */
static void test_write_count_mismatch(void)
{
    for (int delta = -2; delta <= 2; delta++) {
        if (delta == 0)
            continue;
        struct nfs3_write_args wa;
        struct mb_chain c = MB_CHAIN_INIT;
        struct krpc_xdr_enc x;
        struct krpc_xdr_dec d;
        memset(&wa, 0, sizeof wa);
        wa.fh = mkfh(8);
        wa.count = (uint32_t)(100 + delta);
        wa.stable = NFS3_DATA_SYNC;
        REQUIRE(mb_append_pages(&wa.data, 0, 100) == 0);
        krpc_xdr_enc_init(&x, &c);
        nfs3_enc_write_args(&x, &wa); /* writes count verbatim */
        CHECK_EQ(krpc_xdr_enc_error(&x), 0);
        krpc_xdr_dec_init(&d, &c, 0, c.len);
        CHECK_EQ(nfs3_dec_write_args(&d, &wa), -EBADMSG);
        CHECK_EQ(wa.data.len, 0);
        CHECK_EQ(wa.data.head, NULL);
        mb_chain_free(&c);
    }
    /* A data length above NFS3_MAX_DATA is refused at the length word. */
    static const unsigned char big[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 1, 0, 0, 0, 0, 0, 0x40, 0, 1};
    struct mb_chain c;
    struct krpc_xdr_dec d;
    struct nfs3_write_args wa;
    mkchain(&c, big, sizeof big);
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    CHECK_EQ(nfs3_dec_write_args(&d, &wa), -EMSGSIZE);
    mb_chain_free(&c);
}

/* ---- READDIR / READDIRPLUS ------------------------------------------------ */

struct collect {
    int n;
    struct nfs3_dirent e[16];
};

static int collect_fn(void *arg, const struct nfs3_dirent *e)
{
    struct collect *c = arg;
    if (c->n < 16)
        c->e[c->n] = *e;
    c->n++;
    return 0;
}

static int stop_fn(void *arg, const struct nfs3_dirent *e)
{
    (void)e;
    return ++*(int *)arg == 2 ? 42 : 0;
}

static void test_readdir_builder(void)
{
    const size_t overhead = 4 + 88 + 8 + 4 + 4;
    struct nfs3_readdir_enc e;
    struct nfs3_readdir_res r;
    struct mb_chain c = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    struct krpc_xdr_dec d;
    struct collect col;

    /* READDIR: entries of 28 bytes (names <= 4); room for exactly two. */
    nfs3_readdir_enc_begin(&e, 0, (uint32_t)(overhead + 56), 0);
    CHECK_EQ(nfs3_readdir_enc_entry(&e, 1, "a", 1, NULL, NULL), 0);
    CHECK_EQ(nfs3_readdir_enc_entry(&e, 2, "bbbb", 2, NULL, NULL), 0);
    CHECK_EQ(nfs3_readdir_enc_entry(&e, 3, "c", 3, NULL, NULL), -ENOSPC);
    CHECK_EQ(e.nentries, 2);
    char longname[300];
    memset(longname, 'l', sizeof longname);
    longname[256] = 0;
    CHECK_EQ(nfs3_readdir_enc_entry(&e, 3, longname, 3, NULL, NULL), -ENAMETOOLONG);
    memset(&r, 0, sizeof r);
    r.status = NFS3_OK;
    r.dir_attr = mkpost(1);
    memcpy(r.cookieverf, "abcdefgh", 8);
    r.eof = 0;
    krpc_xdr_enc_init(&x, &c);
    nfs3_readdir_enc_end(&e, &x, &r);
    CHECK_EQ(krpc_xdr_enc_error(&x), 0);
    CHECK_EQ(c.len, overhead + 56); /* the accounting is exact with attributes */
    memset(&col, 0, sizeof col);
    struct nfs3_readdir_res out;
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    CHECK_EQ(nfs3_dec_readdir_res(&d, &out, collect_fn, &col), 0);
    CHECK_EQ(krpc_xdr_remaining(&d), 0);
    CHECK_EQ(out.nentries, 2);
    CHECK_EQ(col.n, 2);
    CHECK(strcmp(col.e[0].name, "a") == 0);
    CHECK(strcmp(col.e[1].name, "bbbb") == 0);
    CHECK_EQ(col.e[1].fileid, 2);
    CHECK_EQ(col.e[1].cookie, 2);
    CHECK_EQ(out.eof, 0);
    CHECK(memcmp(&out.dir_attr, &r.dir_attr, sizeof r.dir_attr) == 0);
    CHECK(memcmp(out.cookieverf, "abcdefgh", 8) == 0);
    for (size_t k = 0; k < c.len; k++) {
        krpc_xdr_dec_init(&d, &c, 0, k);
        CHECK(nfs3_dec_readdir_res(&d, &out, NULL, NULL) < 0);
    }
    int calls = 0;
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    CHECK_EQ(nfs3_dec_readdir_res(&d, &out, stop_fn, &calls), 42);
    mb_chain_free(&c);

    /* Too small for one entry: the server sees -ENOSPC at once (TOOSMALL). */
    nfs3_readdir_enc_begin(&e, 0, (uint32_t)(overhead + 27), 0);
    CHECK_EQ(nfs3_readdir_enc_entry(&e, 1, "a", 1, NULL, NULL), -ENOSPC);
    nfs3_readdir_enc_abort(&e);

    /* READDIRPLUS: dircount bounds entry3 bytes, maxcount all bytes. */
    struct nfs3_post_attr pa = mkpost(1);
    struct nfs3_fh fh = mkfh(8);
    nfs3_readdir_enc_begin(&e, 1, 100000, 56);
    CHECK_EQ(nfs3_readdir_enc_entry(&e, 1, "a", 1, &pa, &fh), 0);
    CHECK_EQ(nfs3_readdir_enc_entry(&e, 2, "b", 2, NULL, NULL), 0);
    CHECK_EQ(nfs3_readdir_enc_entry(&e, 3, "c", 3, &pa, &fh), -ENOSPC);
    memset(&r, 0, sizeof r);
    r.eof = 1;
    krpc_xdr_enc_init(&x, &c);
    nfs3_readdir_enc_end(&e, &x, &r);
    CHECK_EQ(c.len, overhead - 88 + 4 + (28 + 88 + 16) + (28 + 4 + 4));
    memset(&col, 0, sizeof col);
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    CHECK_EQ(nfs3_dec_readdirplus_res(&d, &out, collect_fn, &col), 0);
    CHECK_EQ(col.n, 2);
    CHECK(memcmp(&col.e[0].attr, &pa, sizeof pa) == 0);
    CHECK_EQ(col.e[0].fh_present, 1);
    CHECK(memcmp(&col.e[0].fh, &fh, sizeof fh) == 0);
    CHECK_EQ(col.e[1].attr.present, 0);
    CHECK_EQ(col.e[1].fh_present, 0);
    CHECK_EQ(out.eof, 1);
    for (size_t k = 0; k < c.len; k++) {
        krpc_xdr_dec_init(&d, &c, 0, k);
        CHECK(nfs3_dec_readdirplus_res(&d, &out, NULL, NULL) < 0);
    }
    mb_chain_free(&c);

    nfs3_readdir_enc_begin(&e, 1, (uint32_t)(overhead + 28 + 88 + 16 - 1), 0);
    CHECK_EQ(nfs3_readdir_enc_entry(&e, 1, "a", 1, &pa, &fh), -ENOSPC);
    CHECK_EQ(nfs3_readdir_enc_entry(&e, 1, "a", 1, NULL, &fh), 0);
    nfs3_readdir_enc_abort(&e);

    /* Failure arm: entries dropped, only dir_attributes. */
    nfs3_readdir_enc_begin(&e, 0, 0, 0);
    CHECK_EQ(nfs3_readdir_enc_entry(&e, 1, "a", 1, NULL, NULL), 0);
    memset(&r, 0, sizeof r);
    r.status = NFS3ERR_BAD_COOKIE;
    krpc_xdr_enc_init(&x, &c);
    nfs3_readdir_enc_end(&e, &x, &r);
    static const unsigned char fail[] = {0, 0, 0x27, 0x13, 0, 0, 0, 0};
    CHECK(chain_eq_bytes(&c, fail, sizeof fail));
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    CHECK_EQ(nfs3_dec_readdir_res(&d, &out, collect_fn, &col), 0);
    CHECK_EQ(out.status, NFS3ERR_BAD_COOKIE);
    mb_chain_free(&c);

    /* Many entries through the unbounded encoder, decoded across small links. */
    static struct nfs3_dirent ents[200];
    memset(ents, 0, sizeof ents);
    for (int i = 0; i < 200; i++) {
        ents[i].fileid = (uint64_t)i * 1000;
        ents[i].cookie = (uint64_t)i + 1;
        snprintf(ents[i].name, sizeof ents[i].name, "file-%0*d", i % 40, i);
        ents[i].attr = mkpost(i & 1);
        ents[i].fh_present = !(i % 3);
        if (ents[i].fh_present)
            ents[i].fh = mkfh((uint32_t)(i % 65));
    }
    memset(&r, 0, sizeof r);
    r.eof = 1;
    struct mb_chain s = MB_CHAIN_INIT;
    krpc_xdr_enc_init(&x, &c);
    nfs3_enc_readdirplus_res(&x, &r, ents, 200);
    CHECK_EQ(krpc_xdr_enc_error(&x), 0);
    rechain(&c, &s);
    int bad = 0;
    krpc_xdr_dec_init(&d, &s, 0, s.len);
    memset(&col, 0, sizeof col);
    CHECK_EQ(nfs3_dec_readdirplus_res(&d, &out, collect_fn, &col), 0);
    CHECK_EQ(out.nentries, 200);
    CHECK_EQ(col.n, 200);
    for (int i = 0; i < 16; i++)
        if (memcmp(&col.e[i], &ents[i], sizeof ents[i]) != 0)
            bad++;
    CHECK_EQ(bad, 0);
    mb_chain_free(&c);
    mb_chain_free(&s);
}

/* ---- MOUNT lists ---------------------------------------------------------- */

static void test_mount_lists(void)
{
    static struct nfs3_mnt_export ex[3], out[3];
    struct mb_chain c = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    struct krpc_xdr_dec d;
    uint32_t n;

    memset(ex, 0, sizeof ex);
    strcpy(ex[0].dir, "/srv/a");
    strcpy(ex[1].dir, "/srv/bb");
    ex[1].ngroups = 2;
    strcpy(ex[1].groups[0], "*");
    strcpy(ex[1].groups[1], "10.0.0.0/8");
    strcpy(ex[2].dir, "/");
    krpc_xdr_enc_init(&x, &c);
    nfs3_mnt_enc_export_res(&x, ex, 3);
    CHECK_EQ(krpc_xdr_enc_error(&x), 0);
    memset(out, 0, sizeof out);
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    CHECK_EQ(nfs3_mnt_dec_export_res(&d, out, 3, &n), 0);
    CHECK_EQ(n, 3);
    CHECK(memcmp(out, ex, sizeof ex) == 0);
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    CHECK_EQ(nfs3_mnt_dec_export_res(&d, out, 2, &n), -EMSGSIZE);
    for (size_t k = 0; k < c.len; k++) {
        krpc_xdr_dec_init(&d, &c, 0, k);
        CHECK(nfs3_mnt_dec_export_res(&d, out, 3, &n) < 0);
    }
    mb_chain_free(&c);
    /* empty list */
    krpc_xdr_enc_init(&x, &c);
    nfs3_mnt_enc_export_res(&x, ex, 0);
    CHECK_EQ(c.len, 4);
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    CHECK_EQ(nfs3_mnt_dec_export_res(&d, out, 3, &n), 0);
    CHECK_EQ(n, 0);
    mb_chain_free(&c);

    static struct nfs3_mnt_mount m[2], mo[2];
    memset(m, 0, sizeof m);
    strcpy(m[0].hostname, "client1");
    strcpy(m[0].dir, "/srv/a");
    strcpy(m[1].hostname, "127.0.0.1");
    strcpy(m[1].dir, "/srv/bb");
    krpc_xdr_enc_init(&x, &c);
    nfs3_mnt_enc_dump_res(&x, m, 2);
    memset(mo, 0, sizeof mo);
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    CHECK_EQ(nfs3_mnt_dec_dump_res(&d, mo, 2, &n), 0);
    CHECK_EQ(n, 2);
    CHECK(memcmp(mo, m, sizeof m) == 0);
    for (size_t k = 0; k < c.len; k++) {
        krpc_xdr_dec_init(&d, &c, 0, k);
        CHECK(nfs3_mnt_dec_dump_res(&d, mo, 2, &n) < 0);
    }
    mb_chain_free(&c);
}

static void test_names(void)
{
    CHECK(strcmp(nfs3_stat_name(NFS3ERR_BADHANDLE), "NFS3ERR_BADHANDLE") == 0);
    CHECK(strcmp(nfs3_stat_name(NFS3ERR_JUKEBOX), "NFS3ERR_JUKEBOX") == 0);
    CHECK(strcmp(nfs3_stat_name(12345), "NFS3ERR_?") == 0);
    CHECK(strcmp(nfs3_mnt_stat_name(MNT3ERR_NOENT), "MNT3ERR_NOENT") == 0);
    CHECK(strcmp(nfs3_proc_name(NFS3_PROC_READDIRPLUS), "READDIRPLUS") == 0);
    CHECK(strcmp(nfs3_proc_name(NFS3_PROC_COMMIT), "COMMIT") == 0);
    CHECK(strcmp(nfs3_proc_name(22), "?") == 0);
    CHECK(strcmp(nfs3_mnt_proc_name(NFS3_MNT_PROC_EXPORT), "EXPORT") == 0);
}

int main(void)
{
    TEST_RUN(test_args_roundtrip);
    TEST_RUN(test_res_roundtrip);
    TEST_RUN(test_known_bytes);
    TEST_RUN(test_write_1mib_by_reference);
    TEST_RUN(test_read_res_by_reference);
    TEST_RUN(test_write_count_mismatch);
    TEST_RUN(test_limits);
    TEST_RUN(test_bad_discriminants);
    TEST_RUN(test_readdir_builder);
    TEST_RUN(test_mount_lists);
    TEST_RUN(test_names);
    CHECK_EQ(mb_pool_shutdown(), 0);
    return test_summary();
}
