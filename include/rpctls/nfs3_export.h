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

#include "rpctls/visibility.h"

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
    uint32_t anonuid, anongid; /* as written: 0 is uid/gid 0 (nfs3_export_opts_default sets NFS3_ANON_ID) */
    unsigned xprtsec;         /* NFS3_XPRTSEC_* mask; 0: NFS3_XPRTSEC_ALL */
    int tlscertuser;          /* calls run as the user named in the client certificate (rpctls extension,
                                 FreeBSD -tlscertuser, draft-cel-nfsv4-rpc-tls-othername) */
};

/* rw, root_squash, anonuid = anongid = 65534, xprtsec any, no tlscertuser. */
RPCTLS_API void nfs3_export_opts_default(struct nfs3_export_opts *o);

/* 1 when a call on this transport may use an export with these options
 * (xprtsec=, as knfsd's check_xprtsec_policy): tls says the call came
 * inside TLS, peer_auth that the client sent a verified certificate. "tls"
 * and "mtls" are disjoint, as on Linux: xprtsec=tls refuses a client that
 * did send a certificate. */
RPCTLS_API int nfs3_export_xprtsec_ok(const struct nfs3_export_opts *o, int tls, int peer_auth);

/* ---- exports(5) tables (src/nfs3/exports.c) --------------------------------
 *
 * A file in Linux exports(5) syntax, the subset that applies here
 * (docs/nfs3-server.md "exports(5)"):
 *
 *   # comment
 *   /srv/data   127.0.0.1(rw) 10.0.0.0/8(ro,xprtsec=mtls) *(ro)
 *   "/srv/with space"  -rw,all_squash  host.example  ::1(no_root_squash)
 *   /srv/long   a.example(rw) \
 *               b.example(rw)
 *
 * A client without an option list gets the line's defaults ("-opts" lists
 * that came before it on the line), which start as Linux's: ro,
 * root_squash, anonuid=anongid=65534, xprtsec=none:tls:mtls.
 */

enum nfs3_client_kind {
    NFS3_CLIENT_HOST = 0, /* one IP address, or a host name resolved at load time */
    NFS3_CLIENT_NET = 1,  /* ADDRESS/PREFIX or ADDRESS/DOTTED-MASK */
    NFS3_CLIENT_ANY = 2,  /* "*" */
};

#define NFS3_EXPORT_MAX_ADDRS 8 /* addresses kept per host name (KRPC_MAX_ADDRS) */
#define NFS3_EXPORT_SPEC_MAX 255

struct nfs3_export_net {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network byte order; IPv4 in the first 4 bytes */
    unsigned prefix;  /* bits that must match */
};

struct nfs3_export_client {
    char spec[NFS3_EXPORT_SPEC_MAX + 1]; /* as written: "127.0.0.1", "10.0.0.0/8", "*", "host.example" */
    enum nfs3_client_kind kind;
    int is_name;                         /* a host name: nets filled by nfs3_exports_resolve */
    struct nfs3_export_net nets[NFS3_EXPORT_MAX_ADDRS];
    unsigned nnets;
    unsigned line, col;                  /* where spec was written, for messages */
    struct nfs3_export_opts opts;
};

struct nfs3_export_entry {
    char *path;                          /* as written (unquoted, unescaped); absolute */
    struct nfs3_export_client *clients;
    size_t nclients;
    unsigned line, col;
};

struct nfs3_exports {
    struct nfs3_export_entry *v;
    size_t n;
};

/* Parses text (len bytes, need not be NUL-terminated) into ex (empty on
 * entry: zero it). fname names the source in messages. Returns 0, or -EINVAL
 * with "FNAME:LINE:COL: problem" in err (e.g. /etc/exports:3:17: unknown
 * option "rx"), -ENOMEM. Host names are checked, not resolved. On failure ex
 * is left empty. */
RPCTLS_API int nfs3_exports_parse(struct nfs3_exports *ex, const char *fname, const char *text, size_t len, char *err,
                                  size_t errlen);
/* Resolves every host-name client (krpc_resolve). 0, or -ENOENT with
 * "FNAME:LINE:COL: cannot resolve host ..." in err. */
RPCTLS_API int nfs3_exports_resolve(struct nfs3_exports *ex, const char *fname, char *err, size_t errlen);
/* Reads file (at most 1 MiB), parses and resolves it. Errors as above, or
 * "FILE: strerror" when it cannot be read. */
RPCTLS_API int nfs3_exports_load(struct nfs3_exports *ex, const char *file, char *err, size_t errlen);
/* Adds client spec (an IP address, ADDRESS/PREFIX or "*"; not a host name)
 * with opts to the export of path, making that export when ex has none:
 * like writing "path spec(opts)" on a line. 0, -EINVAL (path not absolute,
 * bad spec) or -ENOMEM. */
RPCTLS_API int nfs3_exports_add(struct nfs3_exports *ex, const char *path, const char *spec,
                                const struct nfs3_export_opts *opts);
/* nfs3_exports_add(ex, path, "*", opts): one export to every client. */
RPCTLS_API int nfs3_exports_add_any(struct nfs3_exports *ex, const char *path, const struct nfs3_export_opts *opts);
/* A deep copy of src into dst (empty on entry). 0 or -ENOMEM. */
RPCTLS_API int nfs3_exports_copy(struct nfs3_exports *dst, const struct nfs3_exports *src);
RPCTLS_API void nfs3_exports_free(struct nfs3_exports *ex);

/* The client spec of e that applies to peer (IPv4-mapped IPv6 addresses
 * count as IPv4), by exports(5)'s precedence: single hosts first, then
 * networks, then "*"; within a kind, the first on the line. NULL: the peer
 * may not use this export. */
RPCTLS_API const struct nfs3_export_client *nfs3_export_match(const struct nfs3_export_entry *e,
                                                              const struct sockaddr *peer);

#ifdef __cplusplus
}
#endif

#endif
