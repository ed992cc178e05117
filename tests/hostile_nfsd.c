/*
 * tests/hostile_nfsd.c - an NFSv3 server (plain TCP, MOUNT v3 on the same
 * port) that breaks the protocol on purpose, for tests/mount_bad.sh.
 *
 *   hostile_nfsd [--dump DIR] [--case NAME]...
 *
 * Prints "listening on 127.0.0.1:PORT" and serves until killed (at most 10
 * minutes). The export is any path; its root holds one object per case,
 * named after it, plus honest ones:
 *
 *   good        a regular file, 5000 bytes ('a' + i % 26), honest, writable
 *   badtype     LOOKUP/GETATTR/READDIRPLUS attributes with type 9 (no such
 *               ftype3)
 *   hugesize    ... with size 2^63 + 1
 *   nlink0      ... with nlink 0 (it has a name)
 *   badgetattr  LOOKUP honest; GETATTR says type 0
 *   longread    100 bytes; every READ returns 64 bytes more than asked
 *   wlie        writable; every WRITE reply claims 100 bytes more than sent
 *   longname/   READDIRPLUS has a 300-byte name (> NFS3_MAXNAMLEN)
 *   slashname/  READDIRPLUS has the name "a/b"
 *   nulname/    READDIRPLUS has the 3-byte name "a\0b"
 *   cookieloop/ READDIRPLUS: page 1 is e1 (cookie 1), e2 (cookie 2), not
 *               eof; every later page gives e1 with cookie 1 again, forever
 *   gooddir/    honest: "x", "y"
 *
 * --case NAME (repeatable) turns on only those misbehaviours (the object
 * stays but answers honestly otherwise); without it every case is on.
 * --dump DIR: after each WRITE the file's whole content is written to
 * DIR/NAME (what this server stored, for the test to compare).
 * Every call is logged to stderr as "CALL PROC name".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rpctls/krpc.h"
#include "rpctls/nfs3.h"
#include "util/rpc_peer.h"

enum {
    ID_ROOT = 1, ID_GOOD, ID_BADTYPE, ID_HUGESIZE, ID_NLINK0, ID_BADGETATTR, ID_LONGREAD, ID_WLIE,
    ID_LONGNAME, ID_SLASHNAME, ID_NULNAME, ID_COOKIELOOP, ID_GOODDIR, ID_X, ID_Y, NOBJ
};

struct obj {
    const char *name;
    uint32_t type;
    int bad; /* the misbehaviour is on */
    uint8_t *data;
    uint64_t size;
};

static struct obj objs[NOBJ] = {
    [ID_ROOT] = {"", NFS3_DIR, 0, NULL, 0},
    [ID_GOOD] = {"good", NFS3_REG, 0, NULL, 0},
    [ID_BADTYPE] = {"badtype", NFS3_REG, 1, NULL, 0},
    [ID_HUGESIZE] = {"hugesize", NFS3_REG, 1, NULL, 0},
    [ID_NLINK0] = {"nlink0", NFS3_REG, 1, NULL, 0},
    [ID_BADGETATTR] = {"badgetattr", NFS3_REG, 1, NULL, 0},
    [ID_LONGREAD] = {"longread", NFS3_REG, 1, NULL, 0},
    [ID_WLIE] = {"wlie", NFS3_REG, 1, NULL, 0},
    [ID_LONGNAME] = {"longname", NFS3_DIR, 1, NULL, 0},
    [ID_SLASHNAME] = {"slashname", NFS3_DIR, 1, NULL, 0},
    [ID_NULNAME] = {"nulname", NFS3_DIR, 1, NULL, 0},
    [ID_COOKIELOOP] = {"cookieloop", NFS3_DIR, 1, NULL, 0},
    [ID_GOODDIR] = {"gooddir", NFS3_DIR, 0, NULL, 0},
    [ID_X] = {"x", NFS3_REG, 0, NULL, 0},
    [ID_Y] = {"y", NFS3_REG, 0, NULL, 0},
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static const char *dump_dir;
static const uint8_t verf[NFS3_WRITEVERFSIZE] = {1, 2, 3, 4, 5, 6, 7, 8};

static void mkfh(struct nfs3_fh *fh, uint32_t id)
{
    memset(fh, 0, sizeof *fh);
    fh->len = 8;
    memcpy(fh->data, "HOST", 4);
    fh->data[4] = (uint8_t)(id >> 24);
    fh->data[5] = (uint8_t)(id >> 16);
    fh->data[6] = (uint8_t)(id >> 8);
    fh->data[7] = (uint8_t)id;
}

static uint32_t fh_id(const struct nfs3_fh *fh)
{
    uint32_t id;

    if (fh->len != 8 || memcmp(fh->data, "HOST", 4) != 0)
        return 0;
    id = (uint32_t)fh->data[4] << 24 | (uint32_t)fh->data[5] << 16 | (uint32_t)fh->data[6] << 8 | fh->data[7];
    return id > 0 && id < NOBJ ? id : 0;
}

static uint32_t parent_of(uint32_t id)
{
    return id == ID_X || id == ID_Y ? ID_GOODDIR : ID_ROOT;
}

/* lookup: 1 for LOOKUP replies (the badgetattr object looks fine there). */
static void attr_of(uint32_t id, struct nfs3_fattr *a, int lookup)
{
    const struct obj *o = &objs[id];

    memset(a, 0, sizeof *a);
    a->type = o->type;
    a->mode = o->type == NFS3_DIR ? 0755 : 0666;
    a->nlink = o->type == NFS3_DIR ? 2 : 1;
    a->size = o->type == NFS3_DIR ? 4096 : o->size;
    a->used = a->size;
    a->fsid = 77;
    a->fileid = 1000 + id;
    a->mtime.seconds = a->ctime.seconds = a->atime.seconds = 1700000000;
    if (!o->bad)
        return;
    switch (id) {
    case ID_BADTYPE:
        a->type = 9;
        break;
    case ID_HUGESIZE:
        a->size = (1ull << 63) + 1;
        break;
    case ID_NLINK0:
        a->nlink = 0;
        break;
    case ID_BADGETATTR:
        if (!lookup)
            a->type = 0;
        break;
    default:
        break;
    }
}

static void post_attr(uint32_t id, struct nfs3_post_attr *p)
{
    p->present = 1;
    attr_of(id, &p->attr, 0);
}

static void dump(uint32_t id)
{
    char path[4096];
    FILE *f;

    if (!dump_dir)
        return;
    snprintf(path, sizeof path, "%s/%s", dump_dir, objs[id].name);
    f = fopen(path, "wb");
    if (!f)
        return;
    if (objs[id].size)
        fwrite(objs[id].data, 1, (size_t)objs[id].size, f);
    fclose(f);
}

static void log_call(const char *proc, uint32_t id)
{
    fprintf(stderr, "CALL %s %s\n", proc, id ? (id == ID_ROOT ? "/" : objs[id].name) : "?");
}

/* One READDIRPLUS entry, encoded by hand (the library's builder refuses
 * the bad names on purpose). */
static void put_entry(struct krpc_xdr_enc *x, uint64_t fileid, const char *name, size_t nlen, uint64_t cookie,
                      uint32_t id)
{
    struct nfs3_post_attr pa;
    struct nfs3_fh fh;

    krpc_xdr_put_u32(x, 1);
    krpc_xdr_put_u64(x, fileid);
    krpc_xdr_put_opaque(x, name, nlen);
    krpc_xdr_put_u64(x, cookie);
    memset(&pa, 0, sizeof pa);
    if (id) { /* as LOOKUP gives them: garbage for badtype, hugesize, nlink0 */
        pa.present = 1;
        attr_of(id, &pa.attr, 1);
    }
    nfs3_enc_post_attr(x, &pa);
    krpc_xdr_put_u32(x, id ? 1 : 0);
    if (id) {
        mkfh(&fh, id);
        nfs3_enc_fh(x, &fh);
    }
}

static int do_readdirplus(struct krpc_xdr_dec *d, struct krpc_xdr_enc *x)
{
    struct nfs3_readdirplus_args a;
    struct nfs3_post_attr pa;
    uint8_t cv[NFS3_COOKIEVERFSIZE] = {9};
    uint32_t id;
    int eof = 1;

    if (nfs3_dec_readdirplus_args(d, &a) < 0)
        return -EBADMSG;
    id = fh_id(&a.dir);
    log_call("READDIRPLUS", id);
    if (!id || objs[id].type != NFS3_DIR) {
        memset(&pa, 0, sizeof pa);
        krpc_xdr_put_u32(x, id ? NFS3ERR_NOTDIR : NFS3ERR_STALE);
        nfs3_enc_post_attr(x, &pa);
        return 0;
    }
    krpc_xdr_put_u32(x, NFS3_OK);
    post_attr(id, &pa);
    nfs3_enc_post_attr(x, &pa);
    krpc_xdr_put_fixed(x, cv, sizeof cv);
    if (id == ID_COOKIELOOP && objs[id].bad) {
        if (a.cookie == 0) {
            put_entry(x, 5001, "e1", 2, 1, 0);
            put_entry(x, 5002, "e2", 2, 2, 0);
        } else {
            put_entry(x, 5001, "e1", 2, 1, 0); /* an earlier cookie, again */
        }
        eof = 0;
    } else if (a.cookie == 0) {
        uint64_t c = 1;
        put_entry(x, 1000 + id, ".", 1, c++, id);
        put_entry(x, 1000 + parent_of(id), "..", 2, c++, parent_of(id));
        if (id == ID_ROOT) {
            for (uint32_t i = ID_GOOD; i <= ID_GOODDIR; i++)
                put_entry(x, 1000 + i, objs[i].name, strlen(objs[i].name), c++, i);
        } else if (id == ID_GOODDIR || !objs[id].bad) {
            if (id == ID_GOODDIR) {
                put_entry(x, 1000 + ID_X, "x", 1, c++, ID_X);
                put_entry(x, 1000 + ID_Y, "y", 1, c++, ID_Y);
            }
        } else if (id == ID_LONGNAME) {
            char n[300];
            memset(n, 'L', sizeof n);
            put_entry(x, 5003, "ok1", 3, c++, 0);
            put_entry(x, 5004, n, sizeof n, c++, 0);
        } else if (id == ID_SLASHNAME) {
            put_entry(x, 5005, "a/b", 3, c++, 0);
        } else if (id == ID_NULNAME) {
            put_entry(x, 5006, "a\0b", 3, c++, 0);
        }
    }
    krpc_xdr_put_u32(x, 0); /* no more entries */
    krpc_xdr_put_u32(x, eof ? 1 : 0);
    return 0;
}

static int nfs_proc(uint32_t proc, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x)
{
    switch (proc) {
    case NFS3_PROC_NULL:
        return 0;
    case NFS3_PROC_GETATTR: {
        struct nfs3_fh_args a;
        struct nfs3_getattr_res r;
        if (nfs3_dec_getattr_args(d, &a) < 0)
            return -EBADMSG;
        memset(&r, 0, sizeof r);
        uint32_t id = fh_id(&a.fh);
        log_call("GETATTR", id);
        r.status = id ? NFS3_OK : NFS3ERR_STALE;
        if (id)
            attr_of(id, &r.attr, 0);
        nfs3_enc_getattr_res(x, &r);
        return 0;
    }
    case NFS3_PROC_SETATTR: {
        struct nfs3_setattr_args a;
        struct nfs3_wcc_res r;
        if (nfs3_dec_setattr_args(d, &a) < 0)
            return -EBADMSG;
        memset(&r, 0, sizeof r);
        uint32_t id = fh_id(&a.fh);
        log_call("SETATTR", id);
        if (!id) {
            r.status = NFS3ERR_STALE;
        } else if (a.attr.set_size && (id == ID_GOOD || id == ID_WLIE)) {
            if (a.attr.size <= objs[id].size) {
                objs[id].size = a.attr.size;
                dump(id);
            }
            r.status = a.attr.size <= 5000 ? NFS3_OK : NFS3ERR_FBIG;
        } else {
            r.status = a.attr.set_size ? NFS3ERR_ACCES : NFS3_OK;
        }
        if (id)
            post_attr(id, &r.wcc.after);
        nfs3_enc_setattr_res(x, &r);
        return 0;
    }
    case NFS3_PROC_LOOKUP: {
        struct nfs3_diropargs a;
        struct nfs3_lookup_res r;
        uint32_t dir, id = 0;
        if (nfs3_dec_lookup_args(d, &a) < 0)
            return -EBADMSG;
        memset(&r, 0, sizeof r);
        dir = fh_id(&a.dir);
        fprintf(stderr, "CALL LOOKUP %s\n", a.name);
        for (uint32_t i = ID_GOOD; i < NOBJ && dir; i++)
            if (parent_of(i) == dir && strcmp(objs[i].name, a.name) == 0)
                id = i;
        r.status = !dir ? NFS3ERR_STALE : id ? NFS3_OK : NFS3ERR_NOENT;
        if (id) {
            mkfh(&r.fh, id);
            r.obj_attr.present = 1;
            attr_of(id, &r.obj_attr.attr, 1);
        }
        if (dir)
            post_attr(dir, &r.dir_attr);
        nfs3_enc_lookup_res(x, &r);
        return 0;
    }
    case NFS3_PROC_ACCESS: {
        struct nfs3_access_args a;
        struct nfs3_access_res r;
        if (nfs3_dec_access_args(d, &a) < 0)
            return -EBADMSG;
        memset(&r, 0, sizeof r);
        uint32_t id = fh_id(&a.fh);
        r.status = id ? NFS3_OK : NFS3ERR_STALE;
        r.access = a.access;
        nfs3_enc_access_res(x, &r);
        return 0;
    }
    case NFS3_PROC_READ: {
        struct nfs3_read_args a;
        struct nfs3_read_res r;
        uint64_t n = 0;
        if (nfs3_dec_read_args(d, &a) < 0)
            return -EBADMSG;
        memset(&r, 0, sizeof r);
        mb_chain_init(&r.data);
        uint32_t id = fh_id(&a.fh);
        log_call("READ", id);
        if (!id || objs[id].type != NFS3_REG) {
            r.status = id ? NFS3ERR_INVAL : NFS3ERR_STALE;
        } else if (id == ID_LONGREAD && objs[id].bad) {
            /* The file's bytes, then 'X' up to 64 bytes more than asked. */
            size_t len = (size_t)a.count + 64;
            uint8_t *b = malloc(len);
            if (!b)
                return -ENOMEM;
            memset(b, 'X', len);
            if (a.offset < objs[id].size) {
                uint64_t k = objs[id].size - a.offset;
                memcpy(b, objs[id].data + a.offset, (size_t)(k < len ? k : len));
            }
            if (mb_chain_append_bytes(&r.data, b, len) < 0) {
                free(b);
                return -ENOMEM;
            }
            free(b);
            r.status = NFS3_OK;
            r.count = (uint32_t)len;
            r.eof = 0;
        } else {
            if (a.offset < objs[id].size)
                n = objs[id].size - a.offset < a.count ? objs[id].size - a.offset : a.count;
            if (n > 0 && mb_chain_append_bytes(&r.data, objs[id].data + a.offset, (size_t)n) < 0)
                return -ENOMEM;
            r.status = NFS3_OK;
            r.count = (uint32_t)n;
            r.eof = a.offset + n >= objs[id].size;
        }
        if (id)
            post_attr(id, &r.file_attr);
        nfs3_enc_read_res(x, &r); /* consumes r.data */
        nfs3_read_res_free(&r);
        return 0;
    }
    case NFS3_PROC_WRITE: {
        struct nfs3_write_args a;
        struct nfs3_write_res r;
        if (nfs3_dec_write_args(d, &a) < 0)
            return -EBADMSG;
        memset(&r, 0, sizeof r);
        uint32_t id = fh_id(&a.fh);
        log_call("WRITE", id);
        if (!id) {
            r.status = NFS3ERR_STALE;
        } else if (id != ID_GOOD && id != ID_WLIE) {
            r.status = NFS3ERR_ACCES;
        } else if (a.offset > 5000 || a.data.len > 5000 - a.offset) {
            r.status = NFS3ERR_FBIG;
        } else {
            mb_chain_copy_out(&a.data, 0, a.data.len, objs[id].data + a.offset);
            if (a.offset + a.data.len > objs[id].size)
                objs[id].size = a.offset + a.data.len;
            dump(id);
            r.status = NFS3_OK;
            r.count = (uint32_t)a.data.len + (id == ID_WLIE && objs[id].bad ? 100 : 0);
            r.committed = a.stable;
            memcpy(r.verf, verf, sizeof r.verf);
            post_attr(id, &r.file_wcc.after);
        }
        nfs3_write_args_free(&a);
        nfs3_enc_write_res(x, &r);
        return 0;
    }
    case NFS3_PROC_READDIRPLUS:
        return do_readdirplus(d, x);
    case NFS3_PROC_FSSTAT: {
        struct nfs3_fh_args a;
        struct nfs3_fsstat_res r;
        if (nfs3_dec_fsstat_args(d, &a) < 0)
            return -EBADMSG;
        memset(&r, 0, sizeof r);
        r.status = NFS3_OK;
        r.tbytes = r.fbytes = r.abytes = 1ull << 30;
        r.tfiles = r.ffiles = r.afiles = 1000;
        nfs3_enc_fsstat_res(x, &r);
        return 0;
    }
    case NFS3_PROC_FSINFO: {
        struct nfs3_fh_args a;
        struct nfs3_fsinfo_res r;
        if (nfs3_dec_fsinfo_args(d, &a) < 0)
            return -EBADMSG;
        memset(&r, 0, sizeof r);
        r.status = NFS3_OK;
        post_attr(ID_ROOT, &r.obj_attr);
        r.rtmax = r.rtpref = r.wtmax = r.wtpref = 65536;
        r.rtmult = r.wtmult = 4096;
        r.dtpref = 65536;
        r.maxfilesize = 5000;
        r.time_delta.nseconds = 1;
        r.properties = NFS3_FSF_HOMOGENEOUS | NFS3_FSF_CANSETTIME;
        nfs3_enc_fsinfo_res(x, &r);
        return 0;
    }
    case NFS3_PROC_PATHCONF: {
        struct nfs3_fh_args a;
        struct nfs3_pathconf_res r;
        if (nfs3_dec_pathconf_args(d, &a) < 0)
            return -EBADMSG;
        memset(&r, 0, sizeof r);
        r.status = NFS3_OK;
        r.linkmax = 1;
        r.name_max = NFS3_MAXNAMLEN;
        r.no_trunc = 1;
        r.case_preserving = 1;
        nfs3_enc_pathconf_res(x, &r);
        return 0;
    }
    case NFS3_PROC_COMMIT: {
        struct nfs3_commit_args a;
        struct nfs3_commit_res r;
        if (nfs3_dec_commit_args(d, &a) < 0)
            return -EBADMSG;
        memset(&r, 0, sizeof r);
        uint32_t id = fh_id(&a.fh);
        log_call("COMMIT", id);
        r.status = id ? NFS3_OK : NFS3ERR_STALE;
        memcpy(r.verf, verf, sizeof r.verf);
        nfs3_enc_commit_res(x, &r);
        return 0;
    }
    default:
        return -EOPNOTSUPP;
    }
}

static int mnt_proc(uint32_t proc, struct krpc_xdr_dec *d, struct krpc_xdr_enc *x)
{
    switch (proc) {
    case 0:
        return 0;
    case 1: { /* MNT */
        struct nfs3_mnt_args a;
        struct nfs3_mnt_res r;
        if (nfs3_mnt_dec_mnt_args(d, &a) < 0)
            return -EBADMSG;
        memset(&r, 0, sizeof r);
        r.status = 0;
        mkfh(&r.fh, ID_ROOT);
        r.nflavors = 1;
        r.flavors[0] = KRPC_AUTH_SYS;
        nfs3_mnt_enc_mnt_res(x, &r);
        return 0;
    }
    case 3: /* UMNT */
        return 0;
    default:
        return -EOPNOTSUPP;
    }
}

static int dispatch(const struct krpc_call_hdr *hdr, struct krpc_xdr_dec *d, struct mb_chain *reply)
{
    struct krpc_reply_hdr rh;
    struct krpc_xdr_enc x;
    struct mb_chain res = MB_CHAIN_INIT;
    int ret = 0;

    memset(&rh, 0, sizeof rh);
    rh.xid = hdr->xid;
    rh.reply_stat = KRPC_MSG_ACCEPTED;
    rh.verf_flavor = KRPC_AUTH_NONE;
    rh.accept_stat = KRPC_SUCCESS;
    krpc_xdr_enc_init(&x, &res);
    pthread_mutex_lock(&mu);
    if (hdr->prog == NFS3_PROGRAM && hdr->vers == NFS3_VERSION)
        ret = nfs_proc(hdr->proc, d, &x);
    else if (hdr->prog == NFS3_MNT_PROGRAM && hdr->vers == NFS3_MNT_VERSION)
        ret = mnt_proc(hdr->proc, d, &x);
    else
        ret = -ENOENT;
    pthread_mutex_unlock(&mu);
    if (ret == 0)
        ret = krpc_xdr_enc_error(&x);
    if (ret == -EOPNOTSUPP || ret == -EBADMSG || ret == -ENOENT) {
        rh.accept_stat = ret == -EOPNOTSUPP ? KRPC_PROC_UNAVAIL : ret == -EBADMSG ? KRPC_GARBAGE_ARGS
                                                                                   : KRPC_PROG_UNAVAIL;
        mb_chain_free(&res);
        ret = 0;
    }
    if (ret < 0)
        goto out;
    krpc_xdr_enc_init(&x, reply);
    krpc_encode_reply_hdr(&x, &rh);
    ret = krpc_xdr_enc_error(&x);
    if (ret == 0)
        mb_chain_concat(reply, &res);
out:
    mb_chain_free(&res);
    return ret;
}

static void *conn_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    struct tu_xprt x;
    struct mb_chain msg = MB_CHAIN_INIT, reply = MB_CHAIN_INIT;
    struct krpc_call_hdr hdr;
    struct krpc_xdr_dec d;

    tu_xprt_plain(&x, fd);
    for (;;) {
        if (tu_rpc_recv(&x, &msg, KRPC_RM_DEFAULT_MAX_MSG + 4096) < 0)
            break;
        krpc_xdr_dec_init(&d, &msg, 0, msg.len);
        if (krpc_decode_call_hdr(&d, &hdr) < 0)
            break;
        int ret = dispatch(&hdr, &d, &reply);
        mb_chain_free(&msg);
        if (ret == 0)
            ret = tu_rpc_send(&x, &reply, 0);
        mb_chain_free(&reply);
        if (ret < 0)
            break;
    }
    mb_chain_free(&msg);
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    int only = 0, lfd, one = 1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dump") == 0 && i + 1 < argc) {
            dump_dir = argv[++i];
        } else if (strcmp(argv[i], "--case") == 0 && i + 1 < argc) {
            const char *c = argv[++i];
            int found = 0;
            if (!only)
                for (uint32_t k = 1; k < NOBJ; k++)
                    objs[k].bad = 0;
            only = 1;
            for (uint32_t k = ID_BADTYPE; k <= ID_COOKIELOOP; k++)
                if (strcmp(objs[k].name, c) == 0)
                    objs[k].bad = found = 1;
            if (!found) {
                fprintf(stderr, "hostile_nfsd: no case %s\n", c);
                return 2;
            }
        } else {
            fprintf(stderr, "usage: hostile_nfsd [--dump DIR] [--case NAME]...\n");
            return 2;
        }
    }
    for (uint32_t k = 1; k < NOBJ; k++) {
        if (objs[k].type != NFS3_REG)
            continue;
        objs[k].data = calloc(1, 5000);
        if (!objs[k].data)
            return 1;
    }
    for (int i = 0; i < 5000; i++)
        objs[ID_GOOD].data[i] = (uint8_t)('a' + i % 26);
    objs[ID_GOOD].size = 5000;
    memset(objs[ID_LONGREAD].data, 'r', 100);
    objs[ID_LONGREAD].size = 100;
    objs[ID_BADGETATTR].size = 10;
    memset(objs[ID_BADGETATTR].data, 'g', 10);

    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 16) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0) {
        perror("hostile_nfsd: listen");
        return 1;
    }
    fprintf(stderr, "hostile_nfsd: listening on 127.0.0.1:%u\n", ntohs(sa.sin_port));
    /* Bounded: 100 ms polls for at most 10 minutes. */
    struct pollfd pfd = {.fd = lfd, .events = POLLIN};
    for (int i = 0; i < 6000; i++) {
        pthread_t t;
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        if (pthread_create(&t, NULL, conn_main, (void *)(intptr_t)fd) != 0) {
            close(fd);
            continue;
        }
        pthread_detach(t);
    }
    return 0;
}
