/*
 * rpctls/nfs3.h - NFSv3 (RFC 1813, program 100003 version 3) and MOUNT v3
 * (RFC 1813 appendix I, program 100005 version 3): protocol constants, C
 * types and XDR codecs on buffer chains.
 *
 * Codecs. For every procedure P there are four functions:
 *     void nfs3_enc_P_args(struct krpc_xdr_enc *x, const struct ... *a);
 *     int  nfs3_dec_P_args(struct krpc_xdr_dec *d, struct ... *a);
 *     void nfs3_enc_P_res (struct krpc_xdr_enc *x, const struct ... *r);
 *     int  nfs3_dec_P_res (struct krpc_xdr_dec *d, struct ... *r);
 * (MOUNT: nfs3_mnt_enc_P_args etc.). NULL (and MOUNT NULL/UMNTALL) have void
 * arguments and results and no codecs. Encoders report errors through the
 * encoder's sticky error (krpc_xdr_enc_error()); a length over the RFC
 * limit in the input sets -EMSGSIZE. Decoders return 0 or a negative errno
 * (the decoder's sticky error): -EBADMSG malformed or truncated, -EMSGSIZE a
 * length above the RFC limit (file handle > 64, name > 255, path > 1024,
 * data > NFS3_MAX_DATA), -ENOMEM. A decoder never reads past the bound of
 * its krpc_xdr_dec, fully initialises its output (zeroing it first) and, on
 * failure, leaves no resources in it (chains are empty). A server answers
 * any decode failure with GARBAGE_ARGS.
 *
 * Results follow RFC 1813's unions: with status NFS3_OK the resok fields are
 * encoded/decoded; otherwise only the resfail arm (the post_op_attr or
 * wcc_data the RFC defines for the failure) and the other fields are zero.
 *
 * Enumerations that select a union arm (stable_how, createmode3, time_how,
 * ftype3 of MKNOD) are checked by the decoders: an unknown value is
 * -EBADMSG. Plain status and ftype3 values in attributes are passed through.
 *
 * Bulk data is carried by reference: WRITE arguments and READ results hold
 * a struct mb_chain. Decoding takes the bytes by reference
 * (krpc_xdr_get_opaque_ref: no copy, no page allocation); encoding links
 * the chain in by reference (krpc_xdr_put_opaque_chain) and CONSUMES it
 * (the chain is empty afterwards), which is why those two encoders take a
 * non-const pointer.
 *
 * WRITE count vs data length (DECISION): RFC 1813 has the count field and
 * the opaque data length both on the wire. nfs3_dec_write_args FAILS with
 * -EBADMSG when they differ, so the server answers GARBAGE_ARGS (as Linux
 * nfsd does). nfs3_dec_read_res likewise rejects a READ reply whose count
 * differs from its data length. The encoders write count verbatim, so tests
 * can forge a mismatch.
 *
 * Optional procedures (DECISION): codecs exist for all 22 NFSv3 procedures
 * including READLINK, SYMLINK, MKNOD and LINK, and for all MOUNT procedures
 * (DUMP and EXPORT lists included). Whether the server implements the
 * optional ones or answers PROC_UNAVAIL is the server backend's choice,
 * documented in src/nfs3/server*.c and docs/nfs3-protocol.md.
 *
 * READDIR / READDIRPLUS: the server builds replies with struct
 * nfs3_readdir_enc (begin / entry / end), which refuses an entry that would
 * take the reply past count (maxcount, and dircount for READDIRPLUS). The
 * client decodes with a callback per entry.
 */
#ifndef RPCTLS_NFS3_H
#define RPCTLS_NFS3_H

#include <stddef.h>
#include <stdint.h>

#include "rpctls/mbuf.h"
#include "rpctls/xdr.h"

#include "rpctls/visibility.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- programs, versions, procedures ------------------------------------- */

#define NFS3_PROGRAM 100003u
#define NFS3_VERSION 3u
#define NFS3_MNT_PROGRAM 100005u
#define NFS3_MNT_VERSION 3u

enum nfs3_proc {
    NFS3_PROC_NULL = 0,
    NFS3_PROC_GETATTR = 1,
    NFS3_PROC_SETATTR = 2,
    NFS3_PROC_LOOKUP = 3,
    NFS3_PROC_ACCESS = 4,
    NFS3_PROC_READLINK = 5,
    NFS3_PROC_READ = 6,
    NFS3_PROC_WRITE = 7,
    NFS3_PROC_CREATE = 8,
    NFS3_PROC_MKDIR = 9,
    NFS3_PROC_SYMLINK = 10,
    NFS3_PROC_MKNOD = 11,
    NFS3_PROC_REMOVE = 12,
    NFS3_PROC_RMDIR = 13,
    NFS3_PROC_RENAME = 14,
    NFS3_PROC_LINK = 15,
    NFS3_PROC_READDIR = 16,
    NFS3_PROC_READDIRPLUS = 17,
    NFS3_PROC_FSSTAT = 18,
    NFS3_PROC_FSINFO = 19,
    NFS3_PROC_PATHCONF = 20,
    NFS3_PROC_COMMIT = 21,
};
#define NFS3_NPROCS 22

enum nfs3_mnt_proc {
    NFS3_MNT_PROC_NULL = 0,
    NFS3_MNT_PROC_MNT = 1,
    NFS3_MNT_PROC_DUMP = 2,
    NFS3_MNT_PROC_UMNT = 3,
    NFS3_MNT_PROC_UMNTALL = 4,
    NFS3_MNT_PROC_EXPORT = 5,
};
#define NFS3_MNT_NPROCS 6

/* ---- sizes --------------------------------------------------------------- */

#define NFS3_FHSIZE 64
#define NFS3_COOKIEVERFSIZE 8
#define NFS3_CREATEVERFSIZE 8
#define NFS3_WRITEVERFSIZE 8
#define NFS3_MAXNAMLEN 255   /* filename3 limit enforced by the codecs */
#define NFS3_MAXPATHLEN 1024 /* nfspath3 and MOUNT dirpath (MNTPATHLEN) */
#define NFS3_MNT_NAMLEN 255  /* MOUNT name (MNTNAMLEN): hostnames, groups */
/* Largest READ/WRITE data the codecs accept (the server advertises its own,
 * smaller rtmax/wtmax in FSINFO). */
#define NFS3_MAX_DATA (4u << 20)
#define NFS3_MNT_MAXFLAVORS 16 /* auth flavors kept from a MNT reply */
#define NFS3_MNT_MAXGROUPS 16  /* groups kept per export */

/* XDR sizes, for reply size accounting. */
#define NFS3_FATTR_XDR_SIZE 84
#define NFS3_POST_ATTR_XDR_MAX (4 + NFS3_FATTR_XDR_SIZE)

/* ---- nfsstat3 ------------------------------------------------------------ */

enum nfs3_stat {
    NFS3_OK = 0,
    NFS3ERR_PERM = 1,
    NFS3ERR_NOENT = 2,
    NFS3ERR_IO = 5,
    NFS3ERR_NXIO = 6,
    NFS3ERR_ACCES = 13,
    NFS3ERR_EXIST = 17,
    NFS3ERR_XDEV = 18,
    NFS3ERR_NODEV = 19,
    NFS3ERR_NOTDIR = 20,
    NFS3ERR_ISDIR = 21,
    NFS3ERR_INVAL = 22,
    NFS3ERR_FBIG = 27,
    NFS3ERR_NOSPC = 28,
    NFS3ERR_ROFS = 30,
    NFS3ERR_MLINK = 31,
    NFS3ERR_NAMETOOLONG = 63,
    NFS3ERR_NOTEMPTY = 66,
    NFS3ERR_DQUOT = 69,
    NFS3ERR_STALE = 70,
    NFS3ERR_REMOTE = 71,
    NFS3ERR_BADHANDLE = 10001,
    NFS3ERR_NOT_SYNC = 10002,
    NFS3ERR_BAD_COOKIE = 10003,
    NFS3ERR_NOTSUPP = 10004,
    NFS3ERR_TOOSMALL = 10005,
    NFS3ERR_SERVERFAULT = 10006,
    NFS3ERR_BADTYPE = 10007,
    NFS3ERR_JUKEBOX = 10008,
};

/* mountstat3 */
enum nfs3_mnt_stat {
    MNT3_OK = 0,
    MNT3ERR_PERM = 1,
    MNT3ERR_NOENT = 2,
    MNT3ERR_IO = 5,
    MNT3ERR_ACCES = 13,
    MNT3ERR_NOTDIR = 20,
    MNT3ERR_INVAL = 22,
    MNT3ERR_NAMETOOLONG = 63,
    MNT3ERR_NOTSUPP = 10004,
    MNT3ERR_SERVERFAULT = 10006,
};

/* "NFS3ERR_NOENT", ...; "NFS3ERR_?" for unknown values. Never NULL. */
RPCTLS_API const char *nfs3_stat_name(uint32_t stat);
RPCTLS_API const char *nfs3_mnt_stat_name(uint32_t stat);
/* "GETATTR", ...; "?" for unknown. */
RPCTLS_API const char *nfs3_proc_name(uint32_t proc);
RPCTLS_API const char *nfs3_mnt_proc_name(uint32_t proc);

/* ---- other enumerations and bits ----------------------------------------- */

enum nfs3_ftype {
    NFS3_REG = 1,
    NFS3_DIR = 2,
    NFS3_BLK = 3,
    NFS3_CHR = 4,
    NFS3_LNK = 5,
    NFS3_SOCK = 6,
    NFS3_FIFO = 7,
};

enum nfs3_stable_how { NFS3_UNSTABLE = 0, NFS3_DATA_SYNC = 1, NFS3_FILE_SYNC = 2 };
enum nfs3_createmode { NFS3_CREATE_UNCHECKED = 0, NFS3_CREATE_GUARDED = 1, NFS3_CREATE_EXCLUSIVE = 2 };
enum nfs3_time_how { NFS3_DONT_CHANGE = 0, NFS3_SET_TO_SERVER_TIME = 1, NFS3_SET_TO_CLIENT_TIME = 2 };

/* ACCESS3_* */
#define NFS3_ACCESS_READ 0x0001u
#define NFS3_ACCESS_LOOKUP 0x0002u
#define NFS3_ACCESS_MODIFY 0x0004u
#define NFS3_ACCESS_EXTEND 0x0008u
#define NFS3_ACCESS_DELETE 0x0010u
#define NFS3_ACCESS_EXECUTE 0x0020u

/* FSF3_* (FSINFO properties) */
#define NFS3_FSF_LINK 0x0001u
#define NFS3_FSF_SYMLINK 0x0002u
#define NFS3_FSF_HOMOGENEOUS 0x0008u
#define NFS3_FSF_CANSETTIME 0x0010u

/* ---- basic types --------------------------------------------------------- */

struct nfs3_fh {
    uint32_t len; /* <= NFS3_FHSIZE */
    uint8_t data[NFS3_FHSIZE];
};

struct nfs3_time {
    uint32_t seconds;
    uint32_t nseconds;
};

/* fattr3 */
struct nfs3_fattr {
    uint32_t type; /* enum nfs3_ftype */
    uint32_t mode;
    uint32_t nlink;
    uint32_t uid;
    uint32_t gid;
    uint64_t size;
    uint64_t used;
    uint32_t rdev1, rdev2; /* specdata3 */
    uint64_t fsid;
    uint64_t fileid;
    struct nfs3_time atime, mtime, ctime;
};

/* post_op_attr */
struct nfs3_post_attr {
    int present;
    struct nfs3_fattr attr;
};

/* pre_op_attr (wcc_attr) */
struct nfs3_pre_attr {
    int present;
    uint64_t size;
    struct nfs3_time mtime, ctime;
};

/* wcc_data */
struct nfs3_wcc {
    struct nfs3_pre_attr before;
    struct nfs3_post_attr after;
};

/* sattr3 */
struct nfs3_sattr {
    int set_mode;
    uint32_t mode;
    int set_uid;
    uint32_t uid;
    int set_gid;
    uint32_t gid;
    int set_size;
    uint64_t size;
    uint32_t atime_how; /* enum nfs3_time_how; atime used with SET_TO_CLIENT_TIME */
    struct nfs3_time atime;
    uint32_t mtime_how;
    struct nfs3_time mtime;
};

/* diropargs3 */
struct nfs3_diropargs {
    struct nfs3_fh dir;
    char name[NFS3_MAXNAMLEN + 1];
};

/* ---- argument and result structures -------------------------------------- */

/* GETATTR, READLINK, FSSTAT, FSINFO, PATHCONF: a file handle only. */
struct nfs3_fh_args {
    struct nfs3_fh fh;
};

/* LOOKUP, REMOVE, RMDIR take struct nfs3_diropargs. */

/* SETATTR, REMOVE, RMDIR: wcc_data in both arms. */
struct nfs3_wcc_res {
    uint32_t status;
    struct nfs3_wcc wcc;
};

/* CREATE, MKDIR, SYMLINK, MKNOD: post_op_fh3, post_op_attr, wcc_data
 * (resfail: dir_wcc only). */
struct nfs3_diropres {
    uint32_t status;
    int fh_present;
    struct nfs3_fh fh;
    struct nfs3_post_attr obj_attr;
    struct nfs3_wcc dir_wcc;
};

struct nfs3_getattr_res {
    uint32_t status;
    struct nfs3_fattr attr; /* NFS3_OK only */
};

struct nfs3_setattr_args {
    struct nfs3_fh fh;
    struct nfs3_sattr attr;
    int guard_check;            /* sattrguard3 */
    struct nfs3_time guard_ctime;
};

struct nfs3_lookup_res {
    uint32_t status;
    struct nfs3_fh fh;               /* NFS3_OK only */
    struct nfs3_post_attr obj_attr;  /* NFS3_OK only */
    struct nfs3_post_attr dir_attr;  /* both arms */
};

struct nfs3_access_args {
    struct nfs3_fh fh;
    uint32_t access; /* NFS3_ACCESS_* */
};

struct nfs3_access_res {
    uint32_t status;
    struct nfs3_post_attr obj_attr; /* both arms */
    uint32_t access;                /* NFS3_OK only */
};

struct nfs3_readlink_res {
    uint32_t status;
    struct nfs3_post_attr symlink_attr; /* both arms */
    char data[NFS3_MAXPATHLEN + 1];     /* NFS3_OK only */
};

struct nfs3_read_args {
    struct nfs3_fh fh;
    uint64_t offset;
    uint32_t count;
};

struct nfs3_read_res {
    uint32_t status;
    struct nfs3_post_attr file_attr; /* both arms */
    uint32_t count;                  /* NFS3_OK only; == data.len when decoded */
    int eof;
    struct mb_chain data;            /* by reference; free with nfs3_read_res_free */
};

struct nfs3_write_args {
    struct nfs3_fh fh;
    uint64_t offset;
    uint32_t count;       /* == data.len when decoded (else decode fails) */
    uint32_t stable;      /* enum nfs3_stable_how */
    struct mb_chain data; /* by reference; free with nfs3_write_args_free */
};

struct nfs3_write_res {
    uint32_t status;
    struct nfs3_wcc file_wcc; /* both arms */
    uint32_t count;           /* NFS3_OK only */
    uint32_t committed;       /* enum nfs3_stable_how */
    uint8_t verf[NFS3_WRITEVERFSIZE];
};

struct nfs3_create_args {
    struct nfs3_diropargs where;
    uint32_t mode;                        /* enum nfs3_createmode */
    struct nfs3_sattr attr;               /* UNCHECKED, GUARDED */
    uint8_t verf[NFS3_CREATEVERFSIZE];    /* EXCLUSIVE */
};

struct nfs3_mkdir_args {
    struct nfs3_diropargs where;
    struct nfs3_sattr attr;
};

struct nfs3_symlink_args {
    struct nfs3_diropargs where;
    struct nfs3_sattr attr;
    char data[NFS3_MAXPATHLEN + 1]; /* symlink target */
};

struct nfs3_mknod_args {
    struct nfs3_diropargs where;
    uint32_t type;           /* enum nfs3_ftype */
    struct nfs3_sattr attr;  /* CHR, BLK, SOCK, FIFO */
    uint32_t spec1, spec2;   /* CHR, BLK */
};

struct nfs3_rename_args {
    struct nfs3_diropargs from;
    struct nfs3_diropargs to;
};

struct nfs3_rename_res {
    uint32_t status;
    struct nfs3_wcc fromdir_wcc; /* both arms */
    struct nfs3_wcc todir_wcc;
};

struct nfs3_link_args {
    struct nfs3_fh fh;
    struct nfs3_diropargs link;
};

struct nfs3_link_res {
    uint32_t status;
    struct nfs3_post_attr file_attr; /* both arms */
    struct nfs3_wcc linkdir_wcc;
};

struct nfs3_readdir_args {
    struct nfs3_fh dir;
    uint64_t cookie;
    uint8_t cookieverf[NFS3_COOKIEVERFSIZE];
    uint32_t count;
};

struct nfs3_readdirplus_args {
    struct nfs3_fh dir;
    uint64_t cookie;
    uint8_t cookieverf[NFS3_COOKIEVERFSIZE];
    uint32_t dircount;
    uint32_t maxcount;
};

/* One directory entry (entry3 / entryplus3). attr and fh only for
 * READDIRPLUS. */
struct nfs3_dirent {
    uint64_t fileid;
    uint64_t cookie;
    char name[NFS3_MAXNAMLEN + 1];
    struct nfs3_post_attr attr;
    int fh_present;
    struct nfs3_fh fh;
};

/* READDIR and READDIRPLUS results (the entries go through the builder or
 * the decoder's callback). */
struct nfs3_readdir_res {
    uint32_t status;
    struct nfs3_post_attr dir_attr;          /* both arms */
    uint8_t cookieverf[NFS3_COOKIEVERFSIZE]; /* NFS3_OK only */
    uint32_t nentries;                       /* decoded: number of entries */
    int eof;
};

struct nfs3_fsstat_res {
    uint32_t status;
    struct nfs3_post_attr obj_attr; /* both arms */
    uint64_t tbytes, fbytes, abytes;
    uint64_t tfiles, ffiles, afiles;
    uint32_t invarsec;
};

struct nfs3_fsinfo_res {
    uint32_t status;
    struct nfs3_post_attr obj_attr; /* both arms */
    uint32_t rtmax, rtpref, rtmult;
    uint32_t wtmax, wtpref, wtmult;
    uint32_t dtpref;
    uint64_t maxfilesize;
    struct nfs3_time time_delta;
    uint32_t properties; /* NFS3_FSF_* */
};

struct nfs3_pathconf_res {
    uint32_t status;
    struct nfs3_post_attr obj_attr; /* both arms */
    uint32_t linkmax;
    uint32_t name_max;
    int no_trunc;
    int chown_restricted;
    int case_insensitive;
    int case_preserving;
};

struct nfs3_commit_args {
    struct nfs3_fh fh;
    uint64_t offset;
    uint32_t count;
};

struct nfs3_commit_res {
    uint32_t status;
    struct nfs3_wcc file_wcc; /* both arms */
    uint8_t verf[NFS3_WRITEVERFSIZE];
};

/* ---- NFSv3 codecs ------------------------------------------------------- */

RPCTLS_API void nfs3_enc_getattr_args(struct krpc_xdr_enc *x, const struct nfs3_fh_args *a);
RPCTLS_API int nfs3_dec_getattr_args(struct krpc_xdr_dec *d, struct nfs3_fh_args *a);
RPCTLS_API void nfs3_enc_getattr_res(struct krpc_xdr_enc *x, const struct nfs3_getattr_res *r);
RPCTLS_API int nfs3_dec_getattr_res(struct krpc_xdr_dec *d, struct nfs3_getattr_res *r);

RPCTLS_API void nfs3_enc_setattr_args(struct krpc_xdr_enc *x, const struct nfs3_setattr_args *a);
RPCTLS_API int nfs3_dec_setattr_args(struct krpc_xdr_dec *d, struct nfs3_setattr_args *a);
RPCTLS_API void nfs3_enc_setattr_res(struct krpc_xdr_enc *x, const struct nfs3_wcc_res *r);
RPCTLS_API int nfs3_dec_setattr_res(struct krpc_xdr_dec *d, struct nfs3_wcc_res *r);

RPCTLS_API void nfs3_enc_lookup_args(struct krpc_xdr_enc *x, const struct nfs3_diropargs *a);
RPCTLS_API int nfs3_dec_lookup_args(struct krpc_xdr_dec *d, struct nfs3_diropargs *a);
RPCTLS_API void nfs3_enc_lookup_res(struct krpc_xdr_enc *x, const struct nfs3_lookup_res *r);
RPCTLS_API int nfs3_dec_lookup_res(struct krpc_xdr_dec *d, struct nfs3_lookup_res *r);

RPCTLS_API void nfs3_enc_access_args(struct krpc_xdr_enc *x, const struct nfs3_access_args *a);
RPCTLS_API int nfs3_dec_access_args(struct krpc_xdr_dec *d, struct nfs3_access_args *a);
RPCTLS_API void nfs3_enc_access_res(struct krpc_xdr_enc *x, const struct nfs3_access_res *r);
RPCTLS_API int nfs3_dec_access_res(struct krpc_xdr_dec *d, struct nfs3_access_res *r);

RPCTLS_API void nfs3_enc_readlink_args(struct krpc_xdr_enc *x, const struct nfs3_fh_args *a);
RPCTLS_API int nfs3_dec_readlink_args(struct krpc_xdr_dec *d, struct nfs3_fh_args *a);
RPCTLS_API void nfs3_enc_readlink_res(struct krpc_xdr_enc *x, const struct nfs3_readlink_res *r);
RPCTLS_API int nfs3_dec_readlink_res(struct krpc_xdr_dec *d, struct nfs3_readlink_res *r);

RPCTLS_API void nfs3_enc_read_args(struct krpc_xdr_enc *x, const struct nfs3_read_args *a);
RPCTLS_API int nfs3_dec_read_args(struct krpc_xdr_dec *d, struct nfs3_read_args *a);
/* Consumes r->data (empty afterwards), also when status is not NFS3_OK. */
RPCTLS_API void nfs3_enc_read_res(struct krpc_xdr_enc *x, struct nfs3_read_res *r);
/* r->data refers to the message's storage (no copy); -EBADMSG when count
 * differs from the data length. */
RPCTLS_API int nfs3_dec_read_res(struct krpc_xdr_dec *d, struct nfs3_read_res *r);
RPCTLS_API void nfs3_read_res_free(struct nfs3_read_res *r);

RPCTLS_API void nfs3_enc_write_args(struct krpc_xdr_enc *x, struct nfs3_write_args *a); /* consumes a->data */
/* a->data refers to the message's storage (no copy); -EBADMSG when count
 * differs from the data length (the server answers GARBAGE_ARGS). */
RPCTLS_API int nfs3_dec_write_args(struct krpc_xdr_dec *d, struct nfs3_write_args *a);
RPCTLS_API void nfs3_write_args_free(struct nfs3_write_args *a);
RPCTLS_API void nfs3_enc_write_res(struct krpc_xdr_enc *x, const struct nfs3_write_res *r);
RPCTLS_API int nfs3_dec_write_res(struct krpc_xdr_dec *d, struct nfs3_write_res *r);

RPCTLS_API void nfs3_enc_create_args(struct krpc_xdr_enc *x, const struct nfs3_create_args *a);
RPCTLS_API int nfs3_dec_create_args(struct krpc_xdr_dec *d, struct nfs3_create_args *a);
RPCTLS_API void nfs3_enc_create_res(struct krpc_xdr_enc *x, const struct nfs3_diropres *r);
RPCTLS_API int nfs3_dec_create_res(struct krpc_xdr_dec *d, struct nfs3_diropres *r);

RPCTLS_API void nfs3_enc_mkdir_args(struct krpc_xdr_enc *x, const struct nfs3_mkdir_args *a);
RPCTLS_API int nfs3_dec_mkdir_args(struct krpc_xdr_dec *d, struct nfs3_mkdir_args *a);
RPCTLS_API void nfs3_enc_mkdir_res(struct krpc_xdr_enc *x, const struct nfs3_diropres *r);
RPCTLS_API int nfs3_dec_mkdir_res(struct krpc_xdr_dec *d, struct nfs3_diropres *r);

RPCTLS_API void nfs3_enc_symlink_args(struct krpc_xdr_enc *x, const struct nfs3_symlink_args *a);
RPCTLS_API int nfs3_dec_symlink_args(struct krpc_xdr_dec *d, struct nfs3_symlink_args *a);
RPCTLS_API void nfs3_enc_symlink_res(struct krpc_xdr_enc *x, const struct nfs3_diropres *r);
RPCTLS_API int nfs3_dec_symlink_res(struct krpc_xdr_dec *d, struct nfs3_diropres *r);

RPCTLS_API void nfs3_enc_mknod_args(struct krpc_xdr_enc *x, const struct nfs3_mknod_args *a);
RPCTLS_API int nfs3_dec_mknod_args(struct krpc_xdr_dec *d, struct nfs3_mknod_args *a);
RPCTLS_API void nfs3_enc_mknod_res(struct krpc_xdr_enc *x, const struct nfs3_diropres *r);
RPCTLS_API int nfs3_dec_mknod_res(struct krpc_xdr_dec *d, struct nfs3_diropres *r);

RPCTLS_API void nfs3_enc_remove_args(struct krpc_xdr_enc *x, const struct nfs3_diropargs *a);
RPCTLS_API int nfs3_dec_remove_args(struct krpc_xdr_dec *d, struct nfs3_diropargs *a);
RPCTLS_API void nfs3_enc_remove_res(struct krpc_xdr_enc *x, const struct nfs3_wcc_res *r);
RPCTLS_API int nfs3_dec_remove_res(struct krpc_xdr_dec *d, struct nfs3_wcc_res *r);

RPCTLS_API void nfs3_enc_rmdir_args(struct krpc_xdr_enc *x, const struct nfs3_diropargs *a);
RPCTLS_API int nfs3_dec_rmdir_args(struct krpc_xdr_dec *d, struct nfs3_diropargs *a);
RPCTLS_API void nfs3_enc_rmdir_res(struct krpc_xdr_enc *x, const struct nfs3_wcc_res *r);
RPCTLS_API int nfs3_dec_rmdir_res(struct krpc_xdr_dec *d, struct nfs3_wcc_res *r);

RPCTLS_API void nfs3_enc_rename_args(struct krpc_xdr_enc *x, const struct nfs3_rename_args *a);
RPCTLS_API int nfs3_dec_rename_args(struct krpc_xdr_dec *d, struct nfs3_rename_args *a);
RPCTLS_API void nfs3_enc_rename_res(struct krpc_xdr_enc *x, const struct nfs3_rename_res *r);
RPCTLS_API int nfs3_dec_rename_res(struct krpc_xdr_dec *d, struct nfs3_rename_res *r);

RPCTLS_API void nfs3_enc_link_args(struct krpc_xdr_enc *x, const struct nfs3_link_args *a);
RPCTLS_API int nfs3_dec_link_args(struct krpc_xdr_dec *d, struct nfs3_link_args *a);
RPCTLS_API void nfs3_enc_link_res(struct krpc_xdr_enc *x, const struct nfs3_link_res *r);
RPCTLS_API int nfs3_dec_link_res(struct krpc_xdr_dec *d, struct nfs3_link_res *r);

RPCTLS_API void nfs3_enc_readdir_args(struct krpc_xdr_enc *x, const struct nfs3_readdir_args *a);
RPCTLS_API int nfs3_dec_readdir_args(struct krpc_xdr_dec *d, struct nfs3_readdir_args *a);
RPCTLS_API void nfs3_enc_readdirplus_args(struct krpc_xdr_enc *x, const struct nfs3_readdirplus_args *a);
RPCTLS_API int nfs3_dec_readdirplus_args(struct krpc_xdr_dec *d, struct nfs3_readdirplus_args *a);

/* Encodes a whole READDIR / READDIRPLUS result with the n entries given
 * (no size limit; the server uses the builder below). With status other
 * than NFS3_OK only dir_attr is encoded and ents is ignored. */
RPCTLS_API void nfs3_enc_readdir_res(struct krpc_xdr_enc *x, const struct nfs3_readdir_res *r,
                                     const struct nfs3_dirent *ents, uint32_t n);
RPCTLS_API void nfs3_enc_readdirplus_res(struct krpc_xdr_enc *x, const struct nfs3_readdir_res *r,
                                         const struct nfs3_dirent *ents, uint32_t n);

/* Called once per decoded entry, in order; the entry is valid only during
 * the call. A non-zero return stops decoding and is returned by the
 * decoder (use a positive value to tell it from decode errors). */
typedef int (*nfs3_dirent_fn)(void *arg, const struct nfs3_dirent *e);
/* fn may be NULL (entries are checked and counted only). r->nentries
 * counts the entries. */
RPCTLS_API int nfs3_dec_readdir_res(struct krpc_xdr_dec *d, struct nfs3_readdir_res *r, nfs3_dirent_fn fn, void *arg);
RPCTLS_API int nfs3_dec_readdirplus_res(struct krpc_xdr_dec *d, struct nfs3_readdir_res *r, nfs3_dirent_fn fn,
                                        void *arg);

/*
 * Reply builder for READDIR / READDIRPLUS. Entries are encoded into a
 * private chain while their size is added up:
 *   reply size = 4 (status) + 88 (post_op_attr, at most) + 8 (cookieverf)
 *                + entries + 8 (end of list, eof);
 *   entry      = 4 + 8 + 4 + name padded + 8          (entry3)
 *                + post_op_attr + post_op_fh3         (entryplus3 only).
 * An entry that would take the reply past maxcount (READDIR: count), or
 * the sum of entry3 sizes past dircount (READDIRPLUS), is refused with
 * -ENOSPC and nothing of it is kept. When the first entry is refused the
 * server answers NFS3ERR_TOOSMALL.
 */
struct nfs3_readdir_enc {
    int plus;
    size_t maxcount;     /* READDIR count / READDIRPLUS maxcount; 0: unlimited */
    size_t dircount;     /* READDIRPLUS only; 0: unlimited */
    size_t used;         /* reply bytes so far, overhead included */
    size_t dir_used;     /* entry3 bytes so far */
    uint32_t nentries;
    struct mb_chain entries;
    struct krpc_xdr_enc x;
};

RPCTLS_API void nfs3_readdir_enc_begin(struct nfs3_readdir_enc *e, int plus, uint32_t maxcount, uint32_t dircount);
/* attr and fh are for READDIRPLUS (NULL: not present); ignored for READDIR.
 * Returns 0, -ENOSPC (would not fit; nothing appended), -ENAMETOOLONG
 * (name over NFS3_MAXNAMLEN), -EINVAL (fh->len over NFS3_FHSIZE), -ENOMEM. */
RPCTLS_API int nfs3_readdir_enc_entry(struct nfs3_readdir_enc *e, uint64_t fileid, const char *name, uint64_t cookie,
                                      const struct nfs3_post_attr *attr, const struct nfs3_fh *fh);
/* Writes the whole result to x: with r->status NFS3_OK status, r->dir_attr,
 * r->cookieverf, the entries and r->eof; otherwise the failure arm and the
 * entries are dropped. Releases the builder either way. */
RPCTLS_API void nfs3_readdir_enc_end(struct nfs3_readdir_enc *e, struct krpc_xdr_enc *x,
                                     const struct nfs3_readdir_res *r);
/* Releases the builder without writing anything. */
RPCTLS_API void nfs3_readdir_enc_abort(struct nfs3_readdir_enc *e);

RPCTLS_API void nfs3_enc_fsstat_args(struct krpc_xdr_enc *x, const struct nfs3_fh_args *a);
RPCTLS_API int nfs3_dec_fsstat_args(struct krpc_xdr_dec *d, struct nfs3_fh_args *a);
RPCTLS_API void nfs3_enc_fsstat_res(struct krpc_xdr_enc *x, const struct nfs3_fsstat_res *r);
RPCTLS_API int nfs3_dec_fsstat_res(struct krpc_xdr_dec *d, struct nfs3_fsstat_res *r);

RPCTLS_API void nfs3_enc_fsinfo_args(struct krpc_xdr_enc *x, const struct nfs3_fh_args *a);
RPCTLS_API int nfs3_dec_fsinfo_args(struct krpc_xdr_dec *d, struct nfs3_fh_args *a);
RPCTLS_API void nfs3_enc_fsinfo_res(struct krpc_xdr_enc *x, const struct nfs3_fsinfo_res *r);
RPCTLS_API int nfs3_dec_fsinfo_res(struct krpc_xdr_dec *d, struct nfs3_fsinfo_res *r);

RPCTLS_API void nfs3_enc_pathconf_args(struct krpc_xdr_enc *x, const struct nfs3_fh_args *a);
RPCTLS_API int nfs3_dec_pathconf_args(struct krpc_xdr_dec *d, struct nfs3_fh_args *a);
RPCTLS_API void nfs3_enc_pathconf_res(struct krpc_xdr_enc *x, const struct nfs3_pathconf_res *r);
RPCTLS_API int nfs3_dec_pathconf_res(struct krpc_xdr_dec *d, struct nfs3_pathconf_res *r);

RPCTLS_API void nfs3_enc_commit_args(struct krpc_xdr_enc *x, const struct nfs3_commit_args *a);
RPCTLS_API int nfs3_dec_commit_args(struct krpc_xdr_dec *d, struct nfs3_commit_args *a);
RPCTLS_API void nfs3_enc_commit_res(struct krpc_xdr_enc *x, const struct nfs3_commit_res *r);
RPCTLS_API int nfs3_dec_commit_res(struct krpc_xdr_dec *d, struct nfs3_commit_res *r);

/* Building blocks, for callers that compose their own messages. */
RPCTLS_API void nfs3_enc_fh(struct krpc_xdr_enc *x, const struct nfs3_fh *fh);
RPCTLS_API int nfs3_dec_fh(struct krpc_xdr_dec *d, struct nfs3_fh *fh);
RPCTLS_API void nfs3_enc_fattr(struct krpc_xdr_enc *x, const struct nfs3_fattr *a);
RPCTLS_API int nfs3_dec_fattr(struct krpc_xdr_dec *d, struct nfs3_fattr *a);
RPCTLS_API void nfs3_enc_post_attr(struct krpc_xdr_enc *x, const struct nfs3_post_attr *a);
RPCTLS_API int nfs3_dec_post_attr(struct krpc_xdr_dec *d, struct nfs3_post_attr *a);
RPCTLS_API void nfs3_enc_wcc(struct krpc_xdr_enc *x, const struct nfs3_wcc *w);
RPCTLS_API int nfs3_dec_wcc(struct krpc_xdr_dec *d, struct nfs3_wcc *w);
RPCTLS_API void nfs3_enc_sattr(struct krpc_xdr_enc *x, const struct nfs3_sattr *s);
RPCTLS_API int nfs3_dec_sattr(struct krpc_xdr_dec *d, struct nfs3_sattr *s);

/* ---- MOUNT v3 ----------------------------------------------------------- */

/* MNT and UMNT arguments: dirpath. */
struct nfs3_mnt_args {
    char dirpath[NFS3_MAXPATHLEN + 1];
};

/* mountres3 */
struct nfs3_mnt_res {
    uint32_t status;   /* enum nfs3_mnt_stat */
    struct nfs3_fh fh; /* MNT3_OK only */
    uint32_t nflavors; /* MNT3_OK only; the decoder rejects more than NFS3_MNT_MAXFLAVORS */
    uint32_t flavors[NFS3_MNT_MAXFLAVORS];
};

/* exportnode (EXPORT) */
struct nfs3_mnt_export {
    char dir[NFS3_MAXPATHLEN + 1];
    uint32_t ngroups; /* the decoder rejects more than NFS3_MNT_MAXGROUPS */
    char groups[NFS3_MNT_MAXGROUPS][NFS3_MNT_NAMLEN + 1];
};

/* mountbody (DUMP) */
struct nfs3_mnt_mount {
    char hostname[NFS3_MNT_NAMLEN + 1];
    char dir[NFS3_MAXPATHLEN + 1];
};

RPCTLS_API void nfs3_mnt_enc_mnt_args(struct krpc_xdr_enc *x, const struct nfs3_mnt_args *a);
RPCTLS_API int nfs3_mnt_dec_mnt_args(struct krpc_xdr_dec *d, struct nfs3_mnt_args *a);
RPCTLS_API void nfs3_mnt_enc_mnt_res(struct krpc_xdr_enc *x, const struct nfs3_mnt_res *r);
RPCTLS_API int nfs3_mnt_dec_mnt_res(struct krpc_xdr_dec *d, struct nfs3_mnt_res *r);

/* UMNT: dirpath in, void out. */
RPCTLS_API void nfs3_mnt_enc_umnt_args(struct krpc_xdr_enc *x, const struct nfs3_mnt_args *a);
RPCTLS_API int nfs3_mnt_dec_umnt_args(struct krpc_xdr_dec *d, struct nfs3_mnt_args *a);

/* EXPORT: void in; exports list out. The decoder stores at most max
 * entries in ex and fails with -EMSGSIZE on more; *n gets the count. */
RPCTLS_API void nfs3_mnt_enc_export_res(struct krpc_xdr_enc *x, const struct nfs3_mnt_export *ex, uint32_t n);
RPCTLS_API int nfs3_mnt_dec_export_res(struct krpc_xdr_dec *d, struct nfs3_mnt_export *ex, uint32_t max, uint32_t *n);

/* DUMP: void in; mount list out (same conventions as EXPORT). */
RPCTLS_API void nfs3_mnt_enc_dump_res(struct krpc_xdr_enc *x, const struct nfs3_mnt_mount *m, uint32_t n);
RPCTLS_API int nfs3_mnt_dec_dump_res(struct krpc_xdr_dec *d, struct nfs3_mnt_mount *m, uint32_t max, uint32_t *n);

#ifdef __cplusplus
}
#endif

#endif
