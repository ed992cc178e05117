/*
 * srv_exports.c - the NFS server's export table: one namespace (struct
 * nfsd_be) per exports(5) line, and the checks that decide which export a
 * handle or a MNT path reaches and whether this caller may use it
 * (nfsd_int.h). The table does not change after nfs3__exports_open.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nfs3/nfsd_int.h"
#include "rpctls/krpc.h"

int nfs3__exports_open(struct nfsd_exports *xs, const struct nfs3_exports *table, const uint8_t key[NFSD_FH_KEYLEN],
                       uint32_t rtmax, uint32_t wtmax, const uint8_t write_verf[NFS3_WRITEVERFSIZE], char *err,
                       size_t errlen)
{
    int ret;

    memset(xs, 0, sizeof(*xs));
    memcpy(xs->key, key, NFSD_FH_KEYLEN);
    if (table->n == 0) {
        snprintf(err, errlen, "no exports");
        return -EINVAL;
    }
    ret = nfs3_exports_copy(&xs->table, table);
    if (ret == 0) {
        xs->v = calloc(xs->table.n, sizeof(*xs->v));
        ret = xs->v == NULL ? -ENOMEM : 0;
    }
    if (ret != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < xs->table.n; i++) {
        struct nfsd_export *x = &xs->v[i];
        struct stat st;
        x->ent = &xs->table.v[i];
        ret = nfs3__be_open(&x->be, x->ent->path, err, errlen);
        if (ret != 0)
            goto fail;
        xs->n = i + 1; /* opened: closed on failure */
        if (fstat(x->be.rootfd, &st) != 0 || !S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "export %s: not a directory", x->be.export_path);
            ret = -ENOTDIR;
            goto fail;
        }
        ret = nfs3__fh_init(&x->be.fh, key, x->be.export_path);
        if (ret != 0) {
            snprintf(err, errlen, "export %s: handle key: %s", x->be.export_path, strerror(-ret));
            goto fail;
        }
        for (size_t j = 0; j < i; j++) {
            /* Same canonical path, same export id: two lines for one
             * directory would make its handles ambiguous. */
            if (memcmp(xs->v[j].be.fh.export_id, x->be.fh.export_id, 8) == 0) {
                snprintf(err, errlen, "exports %s and %s are the same directory %s", xs->v[j].ent->path,
                         x->ent->path, x->be.export_path);
                ret = -EINVAL;
                goto fail;
            }
        }
        x->be.rtmax = rtmax;
        x->be.wtmax = wtmax;
        memcpy(x->be.write_verf, write_verf, NFS3_WRITEVERFSIZE);
    }
    return 0;
fail:
    nfs3__exports_close(xs);
    return ret;
}

void nfs3__exports_close(struct nfsd_exports *xs)
{
    for (size_t i = 0; i < xs->n; i++)
        nfs3__be_close(&xs->v[i].be);
    free(xs->v);
    nfs3_exports_free(&xs->table);
    memset(xs, 0, sizeof(*xs));
}

static void refused(const struct krpc_svc_req *req, const struct nfsd_export *x, const char *why)
{
    char peer[64];

    krpc_format_addr((const struct sockaddr *)&req->peer, peer, sizeof(peer));
    krpc_log(KRPC_LOG_INFO, "nfsd: %s: %s refused for %s: %s", peer,
             req->prog == NFS3_MNT_PROGRAM ? "MNT" : nfs3_proc_name(req->proc), x->ent->path, why);
}

int nfs3__export_for_fh(const struct nfsd_exports *xs, const struct krpc_svc_req *req, const struct nfs3_fh *fh,
                        struct nfsd_export **exp, const struct nfs3_export_opts **opts)
{
    const struct nfs3_export_client *cl;
    struct nfsd_export *x = NULL;
    uint8_t id[8];
    int ret;

    *exp = NULL;
    *opts = NULL;
    ret = nfs3__fh_export_id(xs->key, fh, id);
    if (ret != 0)
        return ret;
    for (size_t i = 0; i < xs->n && x == NULL; i++)
        if (memcmp(xs->v[i].be.fh.export_id, id, 8) == 0)
            x = &xs->v[i];
    if (x == NULL)
        return -ESTALE; /* ours (the tag is good), but that export is gone */
    cl = nfs3_export_match(x->ent, (const struct sockaddr *)&req->peer);
    if (cl == NULL) {
        refused(req, x, "the client matches no client of the export");
        return -EACCES;
    }
    int peer_auth = req->tls && req->peer_subject != NULL && req->peer_subject[0] != '\0';
    if (!nfs3_export_xprtsec_ok(&cl->opts, req->tls, peer_auth)) {
        refused(req, x,
                !req->tls   ? "xprtsec= does not allow plain TCP"
                : peer_auth ? "xprtsec= does not allow TLS with a client certificate (mtls)"
                            : "xprtsec= does not allow TLS without a client certificate");
        return -EACCES;
    }
    *exp = x;
    *opts = &cl->opts;
    return 0;
}

/* The part of path beneath prefix (trailing slashes of path ignored):
 * "" for prefix itself, NULL when path is not prefix or beneath it. */
static const char *beneath(const char *path, const char *prefix)
{
    size_t n = strlen(path), m = strlen(prefix);

    while (n > 1 && path[n - 1] == '/')
        n--; /* "/srv/data/" mounts "/srv/data" */
    while (m > 1 && prefix[m - 1] == '/')
        m--;
    if (n == m && memcmp(path, prefix, n) == 0)
        return "";
    if (m == 1 && prefix[0] == '/' && path[0] == '/') /* the export is "/" */
        return path + 1;
    if (n > m && memcmp(path, prefix, m) == 0 && path[m] == '/')
        return path + m + 1;
    return NULL;
}

int nfs3__export_for_path(const struct nfsd_exports *xs, const struct krpc_svc_req *req, const char *path,
                          struct nfsd_export **exp, const struct nfs3_export_opts **opts, const char **rel)
{
    const struct nfs3_export_client *cl;
    struct nfsd_export *x = NULL;
    size_t best = 0;

    *exp = NULL;
    *opts = NULL;
    *rel = NULL;
    /* Nested exports: the longest path wins (MNT /srv/a/b reaches /srv/a,
     * not /srv, when both are exported). */
    for (size_t i = 0; i < xs->n; i++) {
        const char *names[2] = {xs->v[i].be.export_path, xs->v[i].ent->path};
        for (int k = 0; k < 2; k++) {
            const char *r = beneath(path, names[k]);
            size_t len = strlen(names[k]);
            if (r != NULL && (x == NULL || len > best)) {
                x = &xs->v[i];
                best = len;
                *rel = r;
            }
        }
    }
    if (x == NULL)
        return -EACCES; /* not exported: mountd's answer too */
    cl = nfs3_export_match(x->ent, (const struct sockaddr *)&req->peer);
    if (cl == NULL) {
        refused(req, x, "the client matches no client of the export");
        return -EACCES;
    }
    *exp = x;
    *opts = &cl->opts;
    return 0;
}
