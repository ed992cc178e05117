/*
 * fuzz_nfs3_args.c - every NFSv3 and MOUNT v3 decoder (arguments, and
 * results for the client's sake) against arbitrary bytes.
 *
 * Byte 0 seeds the shape: the rest is laid out as one link or as a chain of
 * small links, and decoded with a bound that may stop short of the end.
 * Invariants: a decoder returns 0 or a negative errno that is also the
 * decoder's sticky error; nothing is read past the bound (ASan: every link
 * is an exactly sized cluster; the bound: remaining() never grows); lengths
 * respect the RFC limits; whatever decodes re-encodes without error to
 * exactly the bytes consumed and decodes again to the same value; WRITE and
 * READ data are references into the message; every link and store taken
 * is given back.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "rpctls/nfs3.h"

static unsigned next_rand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 16;
}

static void build(struct mb_chain *c, const uint8_t *p, size_t n, unsigned *rs, int split)
{
    while (n) {
        size_t k = split ? 1 + next_rand(rs) % 13 : n;
        if (k > n)
            k = n;
        struct mb *m = mb_append_cluster(c, k);
        if (!m)
            return;
        memcpy(mb_store_ptr(m->st, m->off), p, k);
        p += k;
        n -= k;
    }
}

static void pool_counts(uint64_t *links, uint64_t *stores)
{
    struct mb_pool_stats st;
    mb_pool_get_stats(&st);
    *links = st.links_in_use;
    *stores = st.stores_in_use;
}

static void check_rc(struct krpc_xdr_dec *d, int rc, size_t bound)
{
    if (rc > 0 || rc != krpc_xdr_dec_error(d))
        __builtin_trap();
    /* -ENAMETOOLONG, -EILSEQ: a directory entry's name over NFS3_MAXNAMLEN,
     * or with a NUL or '/' in it (the entry decoder names what is wrong). */
    if (rc != 0 && rc != -EBADMSG && rc != -EMSGSIZE && rc != -ENOMEM && rc != -ENAMETOOLONG && rc != -EILSEQ)
        __builtin_trap();
    if (krpc_xdr_remaining(d) > bound)
        __builtin_trap();
}

static void check_fh(const struct nfs3_fh *fh)
{
    if (fh->len > NFS3_FHSIZE)
        __builtin_trap();
}

static void check_str(const char *s, size_t max)
{
    if (strnlen(s, max + 1) > max)
        __builtin_trap();
}

static const struct mb_chain *g_msg; /* the message being decoded */

static void check_by_ref(const struct mb_chain *data)
{
    if (mb_chain_check(data) != 0 || data->len > NFS3_MAX_DATA)
        __builtin_trap();
    for (const struct mb *m = data->head; m; m = m->next) {
        int found = 0;
        for (const struct mb *o = g_msg->head; o && !found; o = o->next)
            found = o->st == m->st;
        if (!found)
            __builtin_trap();
    }
}

/*
 * Decode T with decf; on success run CHECK(&a), re-encode with encf, check
 * the length equals the bytes consumed, decode again into b and compare.
 */
#define FUZZ_PLAIN(T, decf, encf, CHECK)                                          \
    do {                                                                          \
        static T a_, b_;                                                          \
        struct krpc_xdr_dec d_;                                                   \
        krpc_xdr_dec_init(&d_, c, 0, bound);                                      \
        int rc_ = decf(&d_, &a_);                                                 \
        check_rc(&d_, rc_, bound);                                                \
        if (rc_ == 0) {                                                           \
            size_t used_ = bound - krpc_xdr_remaining(&d_);                      \
            CHECK(&a_);                                                           \
            struct mb_chain e_ = MB_CHAIN_INIT;                                   \
            struct krpc_xdr_enc x_;                                               \
            krpc_xdr_enc_init(&x_, &e_);                                          \
            encf(&x_, &a_);                                                       \
            if (krpc_xdr_enc_error(&x_) != 0 || e_.len != used_)                  \
                __builtin_trap();                                                 \
            krpc_xdr_dec_init(&d_, &e_, 0, e_.len);                               \
            if (decf(&d_, &b_) != 0 || memcmp(&a_, &b_, sizeof a_) != 0)          \
                __builtin_trap();                                                 \
            mb_chain_free(&e_);                                                   \
        }                                                                         \
    } while (0)

#define CK_NONE(p) (void)(p)
#define CK_FH(p) check_fh(&(p)->fh)
#define CK_DIROP(p) (check_fh(&(p)->dir), check_str((p)->name, NFS3_MAXNAMLEN))
#define CK_WHERE(p) CK_DIROP(&(p)->where)
#define CK_RENAME(p) (CK_DIROP(&(p)->from), CK_DIROP(&(p)->to))
#define CK_LINK(p) (check_fh(&(p)->fh), CK_DIROP(&(p)->link))
#define CK_SYMLINK(p) (CK_WHERE(p), check_str((p)->data, NFS3_MAXPATHLEN))
#define CK_DIR(p) check_fh(&(p)->dir)
#define CK_MNT(p) check_str((p)->dirpath, NFS3_MAXPATHLEN)
#define CK_MNTRES(p) (check_fh(&(p)->fh), ((p)->nflavors > NFS3_MNT_MAXFLAVORS ? __builtin_trap() : (void)0))
#define CK_READLINK(p) check_str((p)->data, NFS3_MAXPATHLEN)

static int dirent_cb(void *arg, const struct nfs3_dirent *e)
{
    check_str(e->name, NFS3_MAXNAMLEN);
    if (e->fh_present)
        check_fh(&e->fh);
    ++*(uint32_t *)arg;
    return 0;
}

static void fuzz_write(const struct mb_chain *c, size_t bound)
{
    struct nfs3_write_args a, b;
    struct krpc_xdr_dec d;
    krpc_xdr_dec_init(&d, c, 0, bound);
    int rc = nfs3_dec_write_args(&d, &a);
    check_rc(&d, rc, bound);
    if (rc != 0) {
        if (a.data.len || a.data.head)
            __builtin_trap();
        return;
    }
    size_t used = bound - krpc_xdr_remaining(&d);
    check_fh(&a.fh);
    check_by_ref(&a.data);
    if (a.count != a.data.len || a.stable > NFS3_FILE_SYNC)
        __builtin_trap();
    struct mb_chain e = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    krpc_xdr_enc_init(&x, &e);
    size_t n = a.data.len;
    nfs3_enc_write_args(&x, &a);
    if (krpc_xdr_enc_error(&x) != 0 || e.len != used || a.data.len != 0)
        __builtin_trap();
    krpc_xdr_dec_init(&d, &e, 0, e.len);
    if (nfs3_dec_write_args(&d, &b) != 0 || b.data.len != n || b.offset != a.offset || b.count != a.count)
        __builtin_trap();
    nfs3_write_args_free(&b);
    mb_chain_free(&e);
}

static void fuzz_read_res(const struct mb_chain *c, size_t bound)
{
    struct nfs3_read_res a, b;
    struct krpc_xdr_dec d;
    krpc_xdr_dec_init(&d, c, 0, bound);
    int rc = nfs3_dec_read_res(&d, &a);
    check_rc(&d, rc, bound);
    if (rc != 0) {
        if (a.data.len || a.data.head)
            __builtin_trap();
        return;
    }
    size_t used = bound - krpc_xdr_remaining(&d);
    check_by_ref(&a.data);
    if (a.status == NFS3_OK && a.count != a.data.len)
        __builtin_trap();
    struct mb_chain e = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    krpc_xdr_enc_init(&x, &e);
    uint32_t status = a.status;
    nfs3_enc_read_res(&x, &a);
    if (krpc_xdr_enc_error(&x) != 0 || e.len != used)
        __builtin_trap();
    krpc_xdr_dec_init(&d, &e, 0, e.len);
    if (nfs3_dec_read_res(&d, &b) != 0 || b.status != status)
        __builtin_trap();
    nfs3_read_res_free(&b);
    mb_chain_free(&e);
}

static void fuzz_readdir(const struct mb_chain *c, size_t bound, int plus)
{
    struct nfs3_readdir_res r;
    struct krpc_xdr_dec d;
    uint32_t n = 0;
    krpc_xdr_dec_init(&d, c, 0, bound);
    int rc = plus ? nfs3_dec_readdirplus_res(&d, &r, dirent_cb, &n) : nfs3_dec_readdir_res(&d, &r, dirent_cb, &n);
    check_rc(&d, rc, bound);
    if (rc == 0 && (n != r.nentries || (size_t)n * 24 > bound))
        __builtin_trap();
}

static void fuzz_lists(const struct mb_chain *c, size_t bound)
{
    static struct nfs3_mnt_export ex[4];
    static struct nfs3_mnt_mount mm[4];
    struct krpc_xdr_dec d;
    uint32_t n;
    krpc_xdr_dec_init(&d, c, 0, bound);
    int rc = nfs3_mnt_dec_export_res(&d, ex, 4, &n);
    check_rc(&d, rc, bound);
    if (rc == 0) {
        if (n > 4)
            __builtin_trap();
        for (uint32_t i = 0; i < n; i++) {
            check_str(ex[i].dir, NFS3_MAXPATHLEN);
            if (ex[i].ngroups > NFS3_MNT_MAXGROUPS)
                __builtin_trap();
        }
        struct mb_chain e = MB_CHAIN_INIT;
        struct krpc_xdr_enc x;
        krpc_xdr_enc_init(&x, &e);
        nfs3_mnt_enc_export_res(&x, ex, n);
        if (krpc_xdr_enc_error(&x) != 0 || e.len != bound - krpc_xdr_remaining(&d))
            __builtin_trap();
        mb_chain_free(&e);
    }
    krpc_xdr_dec_init(&d, c, 0, bound);
    rc = nfs3_mnt_dec_dump_res(&d, mm, 4, &n);
    check_rc(&d, rc, bound);
    if (rc == 0 && n > 4)
        __builtin_trap();
}

static void fuzz_all(const struct mb_chain *c, size_t bound)
{
    /* arguments */
    FUZZ_PLAIN(struct nfs3_fh_args, nfs3_dec_getattr_args, nfs3_enc_getattr_args, CK_FH);
    FUZZ_PLAIN(struct nfs3_setattr_args, nfs3_dec_setattr_args, nfs3_enc_setattr_args, CK_FH);
    FUZZ_PLAIN(struct nfs3_diropargs, nfs3_dec_lookup_args, nfs3_enc_lookup_args, CK_DIROP);
    FUZZ_PLAIN(struct nfs3_access_args, nfs3_dec_access_args, nfs3_enc_access_args, CK_FH);
    FUZZ_PLAIN(struct nfs3_fh_args, nfs3_dec_readlink_args, nfs3_enc_readlink_args, CK_FH);
    FUZZ_PLAIN(struct nfs3_read_args, nfs3_dec_read_args, nfs3_enc_read_args, CK_FH);
    fuzz_write(c, bound);
    FUZZ_PLAIN(struct nfs3_create_args, nfs3_dec_create_args, nfs3_enc_create_args, CK_WHERE);
    FUZZ_PLAIN(struct nfs3_mkdir_args, nfs3_dec_mkdir_args, nfs3_enc_mkdir_args, CK_WHERE);
    FUZZ_PLAIN(struct nfs3_symlink_args, nfs3_dec_symlink_args, nfs3_enc_symlink_args, CK_SYMLINK);
    FUZZ_PLAIN(struct nfs3_mknod_args, nfs3_dec_mknod_args, nfs3_enc_mknod_args, CK_WHERE);
    FUZZ_PLAIN(struct nfs3_diropargs, nfs3_dec_remove_args, nfs3_enc_remove_args, CK_DIROP);
    FUZZ_PLAIN(struct nfs3_diropargs, nfs3_dec_rmdir_args, nfs3_enc_rmdir_args, CK_DIROP);
    FUZZ_PLAIN(struct nfs3_rename_args, nfs3_dec_rename_args, nfs3_enc_rename_args, CK_RENAME);
    FUZZ_PLAIN(struct nfs3_link_args, nfs3_dec_link_args, nfs3_enc_link_args, CK_LINK);
    FUZZ_PLAIN(struct nfs3_readdir_args, nfs3_dec_readdir_args, nfs3_enc_readdir_args, CK_DIR);
    FUZZ_PLAIN(struct nfs3_readdirplus_args, nfs3_dec_readdirplus_args, nfs3_enc_readdirplus_args, CK_DIR);
    FUZZ_PLAIN(struct nfs3_fh_args, nfs3_dec_fsstat_args, nfs3_enc_fsstat_args, CK_FH);
    FUZZ_PLAIN(struct nfs3_fh_args, nfs3_dec_fsinfo_args, nfs3_enc_fsinfo_args, CK_FH);
    FUZZ_PLAIN(struct nfs3_fh_args, nfs3_dec_pathconf_args, nfs3_enc_pathconf_args, CK_FH);
    FUZZ_PLAIN(struct nfs3_commit_args, nfs3_dec_commit_args, nfs3_enc_commit_args, CK_FH);
    FUZZ_PLAIN(struct nfs3_mnt_args, nfs3_mnt_dec_mnt_args, nfs3_mnt_enc_mnt_args, CK_MNT);
    FUZZ_PLAIN(struct nfs3_mnt_args, nfs3_mnt_dec_umnt_args, nfs3_mnt_enc_umnt_args, CK_MNT);

    /* results */
    FUZZ_PLAIN(struct nfs3_getattr_res, nfs3_dec_getattr_res, nfs3_enc_getattr_res, CK_NONE);
    FUZZ_PLAIN(struct nfs3_wcc_res, nfs3_dec_setattr_res, nfs3_enc_setattr_res, CK_NONE);
    FUZZ_PLAIN(struct nfs3_lookup_res, nfs3_dec_lookup_res, nfs3_enc_lookup_res, CK_FH);
    FUZZ_PLAIN(struct nfs3_access_res, nfs3_dec_access_res, nfs3_enc_access_res, CK_NONE);
    FUZZ_PLAIN(struct nfs3_readlink_res, nfs3_dec_readlink_res, nfs3_enc_readlink_res, CK_READLINK);
    fuzz_read_res(c, bound);
    FUZZ_PLAIN(struct nfs3_write_res, nfs3_dec_write_res, nfs3_enc_write_res, CK_NONE);
    FUZZ_PLAIN(struct nfs3_diropres, nfs3_dec_create_res, nfs3_enc_create_res, CK_FH);
    FUZZ_PLAIN(struct nfs3_rename_res, nfs3_dec_rename_res, nfs3_enc_rename_res, CK_NONE);
    FUZZ_PLAIN(struct nfs3_link_res, nfs3_dec_link_res, nfs3_enc_link_res, CK_NONE);
    fuzz_readdir(c, bound, 0);
    fuzz_readdir(c, bound, 1);
    FUZZ_PLAIN(struct nfs3_fsstat_res, nfs3_dec_fsstat_res, nfs3_enc_fsstat_res, CK_NONE);
    FUZZ_PLAIN(struct nfs3_fsinfo_res, nfs3_dec_fsinfo_res, nfs3_enc_fsinfo_res, CK_NONE);
    FUZZ_PLAIN(struct nfs3_pathconf_res, nfs3_dec_pathconf_res, nfs3_enc_pathconf_res, CK_NONE);
    FUZZ_PLAIN(struct nfs3_commit_res, nfs3_dec_commit_res, nfs3_enc_commit_res, CK_NONE);
    FUZZ_PLAIN(struct nfs3_mnt_res, nfs3_mnt_dec_mnt_res, nfs3_mnt_enc_mnt_res, CK_MNTRES);
    fuzz_lists(c, bound);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint64_t links0, stores0, links1, stores1;
    pool_counts(&links0, &stores0);
    unsigned rs = data[0];
    data++;
    size--;
    for (int split = 0; split < 2; split++) {
        struct mb_chain c = MB_CHAIN_INIT;
        build(&c, data, size, &rs, split);
        if (c.len != size) {
            mb_chain_free(&c);
            return 0;
        }
        size_t bound = size;
        if (size && next_rand(&rs) % 3 == 0)
            bound = next_rand(&rs) % (size + 1);
        g_msg = &c;
        fuzz_all(&c, bound);
        mb_chain_free(&c);
    }
    pool_counts(&links1, &stores1);
    if (links1 != links0 || stores1 != stores0)
        __builtin_trap();
    return 0;
}
