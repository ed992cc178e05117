/*
 * src/nfs3/url.c - nfs://HOST[:PORT]/PATH[?OPTION&OPTION...] URLs, with the
 * options spelled as libnfs spells them (see rpctls/nfs3_clnt.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "rpctls/nfs3_clnt.h"

#define URL_KNOWN "known: mountport=N, nfsport=N, version=3"

/* Decimal 1..65535 with nothing else; 0 when it is not one. */
static uint16_t port_value(const char *s, size_t n)
{
    unsigned long v = 0;

    if (n == 0 || n > 5)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    return v >= 1 && v <= 65535 ? (uint16_t)v : 0;
}

/* One "name=value" (value may be absent) of length n at s. */
static int url_option(struct nfs3_url *u, const char *s, size_t n, char *unknown, size_t ulen, char *err,
                      size_t errlen)
{
    const char *eq = memchr(s, '=', n);
    size_t nl = eq ? (size_t)(eq - s) : n;
    const char *v = eq ? eq + 1 : s + n;
    size_t vl = eq ? n - nl - 1 : 0;

    if (nl == 9 && memcmp(s, "mountport", 9) == 0) {
        u->mountport = port_value(v, vl);
        if (!u->mountport) {
            snprintf(err, errlen, "mountport=%.*s: expected a port number 1..65535", (int)vl, v);
            return -EINVAL;
        }
    } else if (nl == 7 && memcmp(s, "nfsport", 7) == 0) {
        u->nfsport = port_value(v, vl);
        if (!u->nfsport) {
            snprintf(err, errlen, "nfsport=%.*s: expected a port number 1..65535", (int)vl, v);
            return -EINVAL;
        }
    } else if (nl == 7 && memcmp(s, "version", 7) == 0) {
        if (vl != 1 || v[0] != '3') {
            snprintf(err, errlen, "version=%.*s: only NFS version 3 is supported", (int)vl, v);
            return -EINVAL;
        }
        u->version = 3;
    } else {
        /* Collected, so that the error names every unknown option at once. */
        size_t used = strlen(unknown);
        snprintf(unknown + used, ulen - used, "%s\"%.*s\"", used ? ", " : "", (int)nl, s);
    }
    return 0;
}

int nfs3_url_parse(const char *url, struct nfs3_url *u, char *err, size_t errlen)
{
    const char *p, *slash, *hend, *query;
    char unknown[256] = "";
    size_t pathlen;
    int ret = -EINVAL;

    if (err && errlen)
        err[0] = '\0';
    if (!url || !u || !err || errlen == 0)
        return -EINVAL;
    memset(u, 0, sizeof *u);
    u->version = 3;
    if (strncmp(url, "nfs://", 6) != 0) {
        snprintf(err, errlen, "not an nfs:// URL");
        goto out;
    }
    p = url + 6;
    slash = strchr(p, '/');
    query = strchr(p, '?');
    if (!slash || slash == p || (query && query < slash)) {
        snprintf(err, errlen, "expected nfs://HOST[:PORT]/EXPORT/PATH");
        goto out;
    }
    if (*p == '[') {
        hend = memchr(p, ']', (size_t)(slash - p));
        if (!hend || hend == p + 1 || (size_t)(hend - p - 1) >= sizeof u->host) {
            snprintf(err, errlen, "bad [IPv6] host");
            goto out;
        }
        memcpy(u->host, p + 1, (size_t)(hend - p - 1));
        hend++;
    } else {
        hend = memchr(p, ':', (size_t)(slash - p));
        if (!hend)
            hend = slash;
        if (hend == p || (size_t)(hend - p) >= sizeof u->host) {
            snprintf(err, errlen, "bad host");
            goto out;
        }
        memcpy(u->host, p, (size_t)(hend - p));
    }
    if (hend < slash) {
        if (*hend != ':' || !(u->port = port_value(hend + 1, (size_t)(slash - hend - 1)))) {
            snprintf(err, errlen, "bad port");
            goto out;
        }
    }
    pathlen = query ? (size_t)(query - slash) : strlen(slash);
    if (pathlen > NFS3_MAXPATHLEN) {
        snprintf(err, errlen, "path too long");
        goto out;
    }
    memcpy(u->path, slash, pathlen);
    u->path[pathlen] = '\0';
    if (query) {
        const char *o = query + 1;
        for (;;) {
            const char *amp = strchr(o, '&');
            size_t n = amp ? (size_t)(amp - o) : strlen(o);
            if (n > 0 && url_option(u, o, n, unknown, sizeof unknown, err, errlen) < 0)
                goto out;
            if (!amp)
                break;
            o = amp + 1;
        }
    }
    if (unknown[0]) {
        snprintf(err, errlen, "unknown URL option%s %s (" URL_KNOWN ")", strchr(unknown, ',') ? "s" : "",
                 unknown);
        goto out;
    }
    if (u->port && u->nfsport && u->port != u->nfsport) {
        snprintf(err, errlen, "port %u and nfsport=%u disagree", u->port, u->nfsport);
        goto out;
    }
    if (!u->nfsport)
        u->nfsport = u->port;
    ret = 0;
out:
    return ret;
}
