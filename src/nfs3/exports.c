/*
 * exports.c - exports(5) tables: Linux syntax, the subset that applies to
 * this server (rpctls/nfs3_export.h, docs/nfs3-server.md "exports(5)").
 *
 * The text is read as a stream of characters with their physical line and
 * column; a backslash followed by a newline disappears (the line goes on, as
 * nfs-utils joins them), so every message can point at the character that
 * is wrong even inside a continued line. A line is:
 *
 *   PATH { -OPTIONS | CLIENT[(OPTIONS)] } ...     # comment
 *
 * PATH is a word or a "double-quoted" string, both with \NNN octal escapes.
 * Anything exports(5) documents that this server does not do (netgroups,
 * wildcards, async, subtree_check, fsid=, sec= other than sys...) is refused
 * by name rather than ignored: an administrator who wrote it expects it to
 * take effect.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rpctls/krpc.h"
#include "rpctls/nfs3_export.h"

#define EXPORTS_MAX_FILE (1u << 20)
#define OPT_MAX 255 /* one option, e.g. "xprtsec=none:tls:mtls" */

/* ---- the character stream ------------------------------------------------ */

struct lx {
    const char *p, *end;
    unsigned line, col; /* of *p */
    const char *fname;
    char *err;
    size_t errlen;
};

static int lx_fail(struct lx *l, unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int lx_fail(struct lx *l, unsigned line, unsigned col, const char *fmt, ...)
{
    int n = snprintf(l->err, l->errlen, "%s:%u:%u: ", l->fname, line, col);
    va_list ap;

    if (n >= 0 && (size_t)n < l->errlen) {
        va_start(ap, fmt);
        vsnprintf(l->err + n, l->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* The next character (-1 at the end), after any backslash-newline pairs. */
static int lx_peek(struct lx *l)
{
    while (l->end - l->p >= 2 && l->p[0] == '\\' && l->p[1] == '\n') {
        l->p += 2;
        l->line++;
        l->col = 1;
    }
    return l->p < l->end ? (unsigned char)*l->p : -1;
}

static void lx_next(struct lx *l)
{
    if (*l->p == '\n') {
        l->line++;
        l->col = 1;
    } else {
        l->col++;
    }
    l->p++;
}

static int is_blank(int c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Where a line's items end: newline, end of text, comment. */
static int is_eol(int c)
{
    return c == -1 || c == '\n' || c == '#';
}

static void skip_blanks(struct lx *l)
{
    while (is_blank(lx_peek(l)))
        lx_next(l);
}

/* A comment runs to the end of its physical line. */
static void skip_comment(struct lx *l)
{
    while (l->p < l->end && *l->p != '\n')
        lx_next(l);
}

/* After a backslash: three octal digits, the byte they name (not NUL). */
static int read_octal(struct lx *l, unsigned line, unsigned col, char *out)
{
    unsigned v = 0;

    for (int i = 0; i < 3; i++) {
        int c = lx_peek(l);
        if (c < '0' || c > '7')
            return lx_fail(l, line, col, "a backslash must be followed by three octal digits");
        v = v * 8 + (unsigned)(c - '0');
        lx_next(l);
    }
    if (v == 0 || v > 255)
        return lx_fail(l, line, col, "octal escape \\%03o is not a byte other than NUL", v);
    *out = (char)v;
    return 0;
}

/* The export path: "quoted" or a word; \NNN escapes in both. */
static int read_path(struct lx *l, char *buf, size_t len)
{
    unsigned line = l->line, col = l->col;
    size_t n = 0;
    int quoted = lx_peek(l) == '"', c;

    if (quoted)
        lx_next(l);
    for (;;) {
        unsigned cl = l->line, cc = l->col;
        char ch;
        c = lx_peek(l);
        if (quoted && (c == -1 || c == '\n'))
            return lx_fail(l, line, col, "unterminated quoted path");
        if (quoted && c == '"') {
            lx_next(l);
            break;
        }
        if (!quoted && (is_blank(c) || is_eol(c)))
            break;
        if (!quoted && c == '"')
            return lx_fail(l, cl, cc, "unexpected '\"' in the path (quote the whole path)");
        if (c == '\0')
            return lx_fail(l, cl, cc, "NUL byte");
        lx_next(l);
        ch = (char)c;
        if (c == '\\' && read_octal(l, cl, cc, &ch) != 0)
            return -EINVAL;
        if (n + 1 >= len)
            return lx_fail(l, line, col, "path longer than %zu bytes", len - 1);
        buf[n++] = ch;
    }
    buf[n] = '\0';
    c = lx_peek(l);
    if (!is_blank(c) && !is_eol(c))
        return lx_fail(l, l->line, l->col, "expected a blank after the path");
    if (n == 0)
        return lx_fail(l, line, col, "empty path");
    if (buf[0] != '/')
        return lx_fail(l, line, col, "export path \"%.256s\" is not absolute", buf);
    return 0;
}

/* ---- options --------------------------------------------------------------- */

/* Options as they accumulate: root_squash and all_squash are separate flags
 * in exports(5) (no_all_squash goes back to whatever root_squash says). */
struct popts {
    struct nfs3_export_opts o;
    int root_squash, all_squash;
};

static void popts_default(struct popts *p)
{
    nfs3_export_opts_default(&p->o);
    p->o.ro = 1; /* Linux's default: "disallow any request which changes the filesystem" */
    p->root_squash = 1;
    p->all_squash = 0;
}

static void popts_finish(const struct popts *p, struct nfs3_export_opts *out)
{
    *out = p->o;
    out->squash = p->all_squash ? NFS3_SQUASH_ALL : p->root_squash ? NFS3_SQUASH_ROOT : NFS3_SQUASH_NONE;
}

static int parse_id(const char *v, uint32_t *out)
{
    unsigned long long x = 0;

    if (*v == '\0')
        return -1;
    for (; *v != '\0'; v++) {
        if (*v < '0' || *v > '9')
            return -1;
        x = x * 10 + (unsigned)(*v - '0');
        if (x >= UINT32_MAX) /* (uid_t)-1 means "no change" to the kernel */
            return -1;
    }
    *out = (uint32_t)x;
    return 0;
}

static int parse_xprtsec(const char *v, unsigned *out)
{
    char buf[OPT_MAX + 1];
    unsigned m = 0;

    snprintf(buf, sizeof(buf), "%s", v);
    for (char *save = NULL, *t = strtok_r(buf, ":", &save); t != NULL; t = strtok_r(NULL, ":", &save)) {
        if (strcmp(t, "none") == 0)
            m |= NFS3_XPRTSEC_NONE;
        else if (strcmp(t, "tls") == 0)
            m |= NFS3_XPRTSEC_TLS;
        else if (strcmp(t, "mtls") == 0)
            m |= NFS3_XPRTSEC_MTLS;
        else
            return -1;
    }
    /* "xprtsec=", "xprtsec=:" and "xprtsec=tls::mtls" are typos, not policies. */
    if (m == 0 || v[0] == ':' || v[strlen(v) - 1] == ':' || strstr(v, "::") != NULL)
        return -1;
    *out = m;
    return 0;
}

/* exports(5) options this server accepts and that change nothing here:
 * they name what it does anyway. */
static const char *const noop_opts[] = {
    "sync",          /* stable writes are synced as the client asks; UNSTABLE until COMMIT */
    "wdelay", "no_wdelay",
    "hide", "nocrossmnt", /* mount points inside an export are never crossed */
    "no_subtree_check",   /* handles are checked against the export, not a subtree */
    "insecure",           /* source ports are not checked (see "secure") */
    "auth_nlm", "no_auth_nlm", "secure_locks", "insecure_locks", /* no NLM here */
};

/* Documented by exports(5), not done by this server: refused by name. */
static const char *const unsupported_opts[] = {
    "async", "secure", "subtree_check", "nohide", "crossmnt", "fsid", "mountpoint", "mp", "refer",
    "replicas", "pnfs", "no_pnfs", "security_label", "acl", "no_acl",
};

static const char *const flag_opts[] = {
    "rw", "ro", "root_squash", "no_root_squash", "all_squash", "no_all_squash", "tlscertuser",
};
static const char *const value_opts[] = {"anonuid", "anongid", "sec", "xprtsec"};

static int in_list(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, list[i]) == 0)
            return 1;
    return 0;
}

static int apply_opt(struct lx *l, unsigned line, unsigned col, const char *opt, struct popts *p)
{
    char name[OPT_MAX + 1];
    const char *eq = strchr(opt, '='), *val = eq != NULL ? eq + 1 : NULL;
    size_t nlen = eq != NULL ? (size_t)(eq - opt) : strlen(opt);

    memcpy(name, opt, nlen);
    name[nlen] = '\0';
    if (val == NULL && strcmp(name, "rw") == 0)
        p->o.ro = 0;
    else if (val == NULL && strcmp(name, "ro") == 0)
        p->o.ro = 1;
    else if (val == NULL && strcmp(name, "root_squash") == 0)
        p->root_squash = 1;
    else if (val == NULL && strcmp(name, "no_root_squash") == 0)
        p->root_squash = 0;
    else if (val == NULL && strcmp(name, "all_squash") == 0)
        p->all_squash = 1;
    else if (val == NULL && strcmp(name, "no_all_squash") == 0)
        p->all_squash = 0;
    else if (val == NULL && strcmp(name, "tlscertuser") == 0)
        p->o.tlscertuser = 1;
    else if (val != NULL && (strcmp(name, "anonuid") == 0 || strcmp(name, "anongid") == 0)) {
        if (parse_id(val, strcmp(name, "anonuid") == 0 ? &p->o.anonuid : &p->o.anongid) != 0)
            return lx_fail(l, line, col, "%s: \"%s\" is not a number from 0 to 4294967294", name, val);
    } else if (val != NULL && strcmp(name, "sec") == 0) {
        if (strcmp(val, "sys") != 0)
            return lx_fail(l, line, col, "sec=%s: only sec=sys is supported (AUTH_SYS and AUTH_NONE)", val);
    } else if (val != NULL && strcmp(name, "xprtsec") == 0) {
        if (parse_xprtsec(val, &p->o.xprtsec) != 0)
            return lx_fail(l, line, col, "xprtsec=%s: expected a colon-separated list of none, tls, mtls", val);
    } else if (val == NULL && in_list(name, noop_opts, sizeof(noop_opts) / sizeof(noop_opts[0]))) {
        /* accepted, nothing to do */
    } else if (in_list(name, unsupported_opts, sizeof(unsupported_opts) / sizeof(unsupported_opts[0]))) {
        return lx_fail(l, line, col, "unsupported option \"%s\"", opt);
    } else if (in_list(name, flag_opts, sizeof(flag_opts) / sizeof(flag_opts[0])) ||
               in_list(name, noop_opts, sizeof(noop_opts) / sizeof(noop_opts[0]))) {
        return lx_fail(l, line, col, "option \"%s\" takes no value", name);
    } else if (in_list(name, value_opts, sizeof(value_opts) / sizeof(value_opts[0]))) {
        return lx_fail(l, line, col, "option \"%s\" needs a value (%s=...)", name, name);
    } else {
        return lx_fail(l, line, col, "unknown option \"%s\"", opt);
    }
    return 0;
}

/* A comma-separated list, up to ')' (parens) or the end of the word (a
 * "-opts" list). */
static int read_opts(struct lx *l, int parens, struct popts *p)
{
    unsigned open_line = l->line, open_col = l->col - 1;

    for (;;) {
        char opt[OPT_MAX + 1];
        size_t n = 0;
        int c = lx_peek(l); /* past a continuation: the option starts on the next line */
        unsigned line = l->line, col = l->col;
        for (;;) {
            c = lx_peek(l);
            if (c == ',' || (parens && c == ')') || (!parens && (is_blank(c) || is_eol(c))))
                break;
            if (parens && (c == -1 || c == '\n'))
                return lx_fail(l, open_line, open_col, "missing ')'");
            if (c == '\0' || c == '(' || c == ')' || is_blank(c) || c == '"' || c == '#')
                return lx_fail(l, l->line, l->col, "unexpected %s in an option list",
                               c == '\0' ? "NUL byte" : is_blank(c) ? "blank" : (char[]){'\'', (char)c, '\'', 0});
            if (n + 1 >= sizeof(opt))
                return lx_fail(l, line, col, "option longer than %d bytes", OPT_MAX);
            opt[n++] = (char)c;
            lx_next(l);
        }
        opt[n] = '\0';
        if (n == 0)
            return lx_fail(l, line, col, "empty option");
        if (apply_opt(l, line, col, opt, p) != 0)
            return -EINVAL;
        if (c != ',')
            break;
        lx_next(l);
    }
    if (parens)
        lx_next(l); /* ')' */
    return 0;
}

/* ---- client specs -------------------------------------------------------- */

static int net_from_text(const char *s, struct nfs3_export_net *n)
{
    memset(n, 0, sizeof(*n));
    if (inet_pton(AF_INET, s, n->addr) == 1) {
        n->family = AF_INET;
        n->prefix = 32;
        return 0;
    }
    if (inet_pton(AF_INET6, s, n->addr) == 1) {
        n->family = AF_INET6;
        n->prefix = 128;
        return 0;
    }
    return -1;
}

/* "/22" or "/255.255.252.0" (IPv4 only, contiguous). */
static int parse_mask(const char *m, int family, unsigned *prefix)
{
    struct in_addr a;

    if (*m >= '0' && *m <= '9' && strspn(m, "0123456789") == strlen(m)) {
        if (strlen(m) > 3)
            return -1;
        unsigned v = (unsigned)atoi(m);
        if (v > (family == AF_INET ? 32u : 128u))
            return -1;
        *prefix = v;
        return 0;
    }
    if (family != AF_INET || inet_pton(AF_INET, m, &a) != 1)
        return -1;
    uint32_t x = ntohl(a.s_addr), inv = ~x;
    if ((inv & (inv + 1)) != 0) /* the zeros must all be at the end */
        return -1;
    *prefix = (unsigned)__builtin_popcount(x);
    return 0;
}

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    int alpha = 0;

    if (n == 0 || n > 253 || s[0] == '-' || s[0] == '.')
        return 0;
    for (const char *p = s; *p != '\0'; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '-' || *p == '_')
            alpha = 1;
        else if (!(*p >= '0' && *p <= '9') && *p != '.')
            return 0;
    }
    return alpha; /* all digits and dots: a mistyped IPv4 address, not a name */
}

static int parse_client(struct lx *l, const char *spec, unsigned line, unsigned col, struct nfs3_export_client *cl)
{
    const char *slash = strchr(spec, '/');

    snprintf(cl->spec, sizeof(cl->spec), "%s", spec);
    cl->line = line;
    cl->col = col;
    if (strcmp(spec, "*") == 0) {
        cl->kind = NFS3_CLIENT_ANY;
        return 0;
    }
    if (spec[0] == '@')
        return lx_fail(l, line, col, "netgroups are not supported (\"%s\")", spec);
    if (strncmp(spec, "gss/", 4) == 0)
        return lx_fail(l, line, col, "\"%s\": RPCSEC_GSS is not supported", spec);
    if (strpbrk(spec, "*?[]") != NULL)
        return lx_fail(l, line, col, "wildcards are not supported (\"%s\"; a lone * matches every client)", spec);
    if (slash != NULL) {
        char addr[NFS3_EXPORT_SPEC_MAX + 1];
        size_t an = (size_t)(slash - spec);
        memcpy(addr, spec, an);
        addr[an] = '\0';
        if (net_from_text(addr, &cl->nets[0]) != 0)
            return lx_fail(l, line, col, "\"%s\": \"%s\" is not an IP address", spec, addr);
        if (parse_mask(slash + 1, cl->nets[0].family, &cl->nets[0].prefix) != 0)
            return lx_fail(l, line, col, "\"%s\": bad netmask \"%s\"", spec, slash + 1);
        cl->kind = NFS3_CLIENT_NET;
        cl->nnets = 1;
        return 0;
    }
    if (net_from_text(spec, &cl->nets[0]) == 0) {
        cl->kind = NFS3_CLIENT_HOST;
        cl->nnets = 1;
        return 0;
    }
    if (strchr(spec, ':') != NULL)
        return lx_fail(l, line, col, "\"%s\" is not an IPv6 address", spec);
    if (!name_ok(spec))
        return lx_fail(l, line, col, "\"%s\" is not an IP address, a network, * or a host name", spec);
    cl->kind = NFS3_CLIENT_HOST;
    cl->is_name = 1;
    return 0;
}

/* ---- lines ------------------------------------------------------------------ */

static int add_client(struct nfs3_export_entry *e, const struct nfs3_export_client *cl)
{
    struct nfs3_export_client *v = realloc(e->clients, (e->nclients + 1) * sizeof(*v));

    if (v == NULL)
        return -ENOMEM;
    e->clients = v;
    v[e->nclients++] = *cl;
    return 0;
}

static void entry_free(struct nfs3_export_entry *e)
{
    free(e->path);
    free(e->clients);
    memset(e, 0, sizeof(*e));
}

static int parse_line(struct lx *l, struct nfs3_exports *ex, struct nfs3_export_entry *e)
{
    char path[PATH_MAX];
    struct popts defaults;
    int ret;

    e->line = l->line;
    e->col = l->col;
    ret = read_path(l, path, sizeof(path));
    if (ret != 0)
        return ret;
    for (size_t i = 0; i < ex->n; i++)
        if (strcmp(ex->v[i].path, path) == 0)
            return lx_fail(l, e->line, e->col, "\"%.256s\" is already exported on line %u", path, ex->v[i].line);
    e->path = strdup(path);
    if (e->path == NULL)
        return -ENOMEM;
    popts_default(&defaults);
    for (;;) {
        skip_blanks(l);
        int c = lx_peek(l);
        if (is_eol(c))
            break;
        unsigned line = l->line, col = l->col;
        if (c == '-') {
            lx_next(l);
            ret = read_opts(l, 0, &defaults);
            if (ret != 0)
                return ret;
            continue;
        }
        char spec[NFS3_EXPORT_SPEC_MAX + 1];
        size_t n = 0;
        for (;;) {
            c = lx_peek(l);
            if (c == '(' || is_blank(c) || is_eol(c))
                break;
            if (c == ')' || c == '"' || c == ',' || c == '\0')
                return lx_fail(l, l->line, l->col, "unexpected %s in a client name",
                               c == '\0' ? "NUL byte" : (char[]){'\'', (char)c, '\'', 0});
            if (n + 1 >= sizeof(spec))
                return lx_fail(l, line, col, "client name longer than %d bytes", NFS3_EXPORT_SPEC_MAX);
            spec[n++] = (char)c;
            lx_next(l);
        }
        spec[n] = '\0';
        if (n == 0) /* "(rw)" after a blank: Linux exports to the world; too easy to write by mistake */
            return lx_fail(l, line, col, "options without a client (write *(...) for every client, and no "
                                         "blank between a client and its options)");
        struct nfs3_export_client cl;
        struct popts p = defaults;
        memset(&cl, 0, sizeof(cl));
        ret = parse_client(l, spec, line, col, &cl);
        if (ret != 0)
            return ret;
        if (lx_peek(l) == '(') {
            lx_next(l);
            ret = read_opts(l, 1, &p);
            if (ret != 0)
                return ret;
            c = lx_peek(l);
            if (!is_blank(c) && !is_eol(c))
                return lx_fail(l, l->line, l->col, "expected a blank after ')'");
        }
        popts_finish(&p, &cl.opts);
        ret = add_client(e, &cl);
        if (ret != 0)
            return ret;
    }
    if (e->nclients == 0)
        return lx_fail(l, e->line, e->col, "\"%.256s\" has no client (write * for every client)", e->path);
    return 0;
}

int nfs3_exports_parse(struct nfs3_exports *ex, const char *fname, const char *text, size_t len, char *err,
                       size_t errlen)
{
    struct lx l = {text, text + len, 1, 1, fname, err, errlen};
    char dummy[8];
    int ret = 0;

    if (err == NULL || errlen == 0) {
        l.err = dummy;
        l.errlen = sizeof(dummy);
    }
    l.err[0] = '\0';
    for (;;) {
        skip_blanks(&l);
        int c = lx_peek(&l);
        if (c == -1)
            break;
        if (c == '\n') {
            lx_next(&l);
            continue;
        }
        if (c == '#') {
            skip_comment(&l);
            continue;
        }
        struct nfs3_export_entry e;
        memset(&e, 0, sizeof(e));
        ret = parse_line(&l, ex, &e);
        if (ret == 0) {
            struct nfs3_export_entry *v = realloc(ex->v, (ex->n + 1) * sizeof(*v));
            if (v == NULL)
                ret = -ENOMEM;
            else {
                ex->v = v;
                v[ex->n++] = e;
            }
        }
        if (ret != 0) {
            if (ret == -ENOMEM)
                snprintf(l.err, l.errlen, "%s: out of memory", fname);
            entry_free(&e);
            nfs3_exports_free(ex);
            return ret;
        }
        if (lx_peek(&l) == '#')
            skip_comment(&l);
    }
    return 0;
}

int nfs3_exports_resolve(struct nfs3_exports *ex, const char *fname, char *err, size_t errlen)
{
    for (size_t i = 0; i < ex->n; i++) {
        for (size_t j = 0; j < ex->v[i].nclients; j++) {
            struct nfs3_export_client *cl = &ex->v[i].clients[j];
            struct sockaddr_storage ss[NFS3_EXPORT_MAX_ADDRS];
            socklen_t lens[NFS3_EXPORT_MAX_ADDRS];
            char msg[300];
            int n;
            if (!cl->is_name)
                continue;
            n = krpc_resolve(cl->spec, 0, 0, ss, lens, NFS3_EXPORT_MAX_ADDRS, msg, sizeof(msg));
            if (n < 0) {
                snprintf(err, errlen, "%s:%u:%u: cannot resolve host %s", fname, cl->line, cl->col, msg);
                return -ENOENT;
            }
            cl->nnets = 0;
            for (int k = 0; k < n; k++) {
                struct nfs3_export_net *net = &cl->nets[cl->nnets];
                memset(net, 0, sizeof(*net));
                if (ss[k].ss_family == AF_INET) {
                    net->family = AF_INET;
                    net->prefix = 32;
                    memcpy(net->addr, &((struct sockaddr_in *)&ss[k])->sin_addr, 4);
                } else if (ss[k].ss_family == AF_INET6) {
                    net->family = AF_INET6;
                    net->prefix = 128;
                    memcpy(net->addr, &((struct sockaddr_in6 *)&ss[k])->sin6_addr, 16);
                } else {
                    continue;
                }
                cl->nnets++;
            }
        }
    }
    return 0;
}

int nfs3_exports_load(struct nfs3_exports *ex, const char *file, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    int fd = -1, ret;
    struct stat st;

    fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        ret = -errno;
        snprintf(err, errlen, "%s: %s", file, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > EXPORTS_MAX_FILE) {
        ret = -EINVAL;
        snprintf(err, errlen, "%s: %s", file, S_ISREG(st.st_mode) ? "larger than 1 MiB" : "not a regular file");
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        ret = -ENOMEM;
        snprintf(err, errlen, "%s: out of memory", file);
        goto out;
    }
    while (len < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + len, (size_t)st.st_size - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            ret = r < 0 ? -errno : -EIO;
            snprintf(err, errlen, "%s: %s", file, r < 0 ? strerror(errno) : "shorter than its size");
            goto out;
        }
        len += (size_t)r;
    }
    ret = nfs3_exports_parse(ex, file, buf, len, err, errlen);
    if (ret == 0 && ex->n == 0) {
        ret = -EINVAL;
        snprintf(err, errlen, "%s: no exports", file);
    }
    if (ret == 0)
        ret = nfs3_exports_resolve(ex, file, err, errlen);
    if (ret != 0)
        nfs3_exports_free(ex);
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    return ret;
}

int nfs3_exports_add(struct nfs3_exports *ex, const char *path, const char *spec,
                     const struct nfs3_export_opts *opts)
{
    char err[NFS3_EXPORT_SPEC_MAX + 64]; /* parse_client's message: -EINVAL says enough here */
    struct lx l = {.fname = "(added)", .err = err, .errlen = sizeof(err)};
    struct nfs3_export_client cl;
    struct nfs3_export_entry *e = NULL;
    int made = 0;

    memset(&cl, 0, sizeof(cl));
    if (path == NULL || path[0] != '/' || spec == NULL || strlen(spec) > NFS3_EXPORT_SPEC_MAX)
        return -EINVAL;
    /* Addresses, networks and "*" only: a host name would need resolving. */
    if (parse_client(&l, spec, 0, 0, &cl) != 0 || cl.is_name)
        return -EINVAL;
    cl.opts = *opts;
    for (size_t i = 0; i < ex->n; i++)
        if (strcmp(ex->v[i].path, path) == 0)
            e = &ex->v[i];
    if (e == NULL) {
        struct nfs3_export_entry *v = realloc(ex->v, (ex->n + 1) * sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        ex->v = v;
        e = &v[ex->n];
        memset(e, 0, sizeof(*e));
        if ((e->path = strdup(path)) == NULL)
            return -ENOMEM;
        ex->n++;
        made = 1;
    }
    if (add_client(e, &cl) != 0) {
        if (made) { /* no export without a client */
            entry_free(e);
            ex->n--;
        }
        return -ENOMEM;
    }
    return 0;
}

int nfs3_exports_add_any(struct nfs3_exports *ex, const char *path, const struct nfs3_export_opts *opts)
{
    return nfs3_exports_add(ex, path, "*", opts);
}

int nfs3_exports_copy(struct nfs3_exports *dst, const struct nfs3_exports *src)
{
    memset(dst, 0, sizeof(*dst));
    if (src->n == 0)
        return 0;
    dst->v = calloc(src->n, sizeof(*dst->v));
    if (dst->v == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < src->n; i++) {
        struct nfs3_export_entry *d = &dst->v[i];
        const struct nfs3_export_entry *s = &src->v[i];
        *d = *s;
        d->path = strdup(s->path);
        d->clients = malloc(s->nclients * sizeof(*d->clients));
        dst->n = i + 1; /* freed below on failure, this one included */
        if (d->path == NULL || d->clients == NULL) {
            nfs3_exports_free(dst);
            return -ENOMEM;
        }
        memcpy(d->clients, s->clients, s->nclients * sizeof(*d->clients));
    }
    return 0;
}

void nfs3_exports_free(struct nfs3_exports *ex)
{
    for (size_t i = 0; i < ex->n; i++)
        entry_free(&ex->v[i]);
    free(ex->v);
    ex->v = NULL;
    ex->n = 0;
}

/* ---- matching ------------------------------------------------------------- */

static int net_match(const struct nfs3_export_net *n, int family, const uint8_t *addr)
{
    unsigned bits = n->prefix, full = bits / 8, rest = bits % 8;

    if (n->family != family)
        return 0;
    if (memcmp(n->addr, addr, full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (n->addr[full] & mask) == (addr[full] & mask);
}

const struct nfs3_export_client *nfs3_export_match(const struct nfs3_export_entry *e, const struct sockaddr *peer)
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    uint8_t addr[16];
    int family;

    memset(addr, 0, sizeof(addr));
    if (peer->sa_family == AF_INET) {
        family = AF_INET;
        memcpy(addr, &((const struct sockaddr_in *)peer)->sin_addr, 4);
    } else if (peer->sa_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *)peer)->sin6_addr.s6_addr;
        if (memcmp(a, v4mapped, sizeof(v4mapped)) == 0) { /* a dual-stack listener's IPv4 client */
            family = AF_INET;
            memcpy(addr, a + 12, 4);
        } else {
            family = AF_INET6;
            memcpy(addr, a, 16);
        }
    } else {
        family = AF_UNSPEC; /* only "*" matches */
    }
    for (int kind = NFS3_CLIENT_HOST; kind <= NFS3_CLIENT_ANY; kind++) {
        for (size_t i = 0; i < e->nclients; i++) {
            const struct nfs3_export_client *cl = &e->clients[i];
            if ((int)cl->kind != kind)
                continue;
            if (kind == NFS3_CLIENT_ANY)
                return cl;
            for (unsigned k = 0; k < cl->nnets; k++)
                if (net_match(&cl->nets[k], family, addr))
                    return cl;
        }
    }
    return NULL;
}

int nfs3_export_xprtsec_ok(const struct nfs3_export_opts *o, int tls, int peer_auth)
{
    unsigned m = o->xprtsec != 0 ? o->xprtsec : NFS3_XPRTSEC_ALL;

    if (!tls)
        return (m & NFS3_XPRTSEC_NONE) != 0;
    if (!peer_auth)
        return (m & NFS3_XPRTSEC_TLS) != 0;
    return (m & NFS3_XPRTSEC_MTLS) != 0;
}
