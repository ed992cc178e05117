/*
 * rpctls/nfs3_export.h - what one export allows, and to whom: the policy
 * that exports(5) lines describe (Linux syntax, the subset that applies to
 * an NFSv3 server; FreeBSD's tlscertuser as an extension).
 *
 * The NFS server applies a policy to every call: whether the client may
 * use the export at all (client specs, xprtsec), whether it may write (ro),
 * and which identity the file-system calls run with (squashing, anonuid,
 * the certificate's user).
 */
#ifndef RPCTLS_NFS3_EXPORT_H
#define RPCTLS_NFS3_EXPORT_H

#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Squashing as knfsd does it (exports(5)): root_squash is the default. */
enum nfs3_squash {
    NFS3_SQUASH_ROOT = 0, /* uid 0 -> anonuid, gid 0 -> anongid (root_squash) */
    NFS3_SQUASH_NONE = 1, /* no_root_squash */
    NFS3_SQUASH_ALL = 2,  /* all_squash: every caller -> anonuid/anongid */
};

#define NFS3_ANON_ID 65534u /* knfsd's default anonuid/anongid (nobody/nogroup) */

/* xprtsec= (exports(5), Linux): which transports may use the export. A
 * mask; 0 means the default, "none:tls:mtls" (everything). */
#define NFS3_XPRTSEC_NONE 0x1u /* plain TCP */
#define NFS3_XPRTSEC_TLS 0x2u  /* TLS without a (verified) client certificate */
#define NFS3_XPRTSEC_MTLS 0x4u /* TLS with a verified client certificate */
#define NFS3_XPRTSEC_ALL (NFS3_XPRTSEC_NONE | NFS3_XPRTSEC_TLS | NFS3_XPRTSEC_MTLS)

struct nfs3_export_opts {
    int ro;                   /* ro: writes get NFS3ERR_ROFS */
    enum nfs3_squash squash;
    uint32_t anonuid, anongid; /* 0 in both with squash set means NFS3_ANON_ID; see nfs3_export_opts_default */
    unsigned xprtsec;         /* NFS3_XPRTSEC_* mask; 0: NFS3_XPRTSEC_ALL */
    int tlscertuser;          /* calls run as the user named in the client certificate (rpctls extension,
                                 FreeBSD -tlscertuser, draft-cel-nfsv4-rpc-tls-othername) */
};

/* rw, root_squash, anonuid = anongid = 65534, xprtsec any, no tlscertuser. */
void nfs3_export_opts_default(struct nfs3_export_opts *o);

#ifdef __cplusplus
}
#endif

#endif
