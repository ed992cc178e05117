/*
 * ident.c - the identity a file-system call runs with (docs/nfs3-server.md,
 * "Identity").
 *
 * Every NFS or MOUNT call runs with the caller's fsuid, fsgid and
 * supplementary groups, squashed as knfsd does (root_squash by default,
 * no_root_squash, all_squash; AUTH_NONE is anonymous). The switch is made
 * on the calling thread only, with the raw system calls: glibc's setfsuid
 * is per thread too, but its setgroups would be broadcast to every thread
 * of the process (POSIX semantics), and each worker needs its own.
 *
 * Linux checks file access against fsuid/fsgid and the groups, and drops
 * the file-system capabilities (CAP_DAC_OVERRIDE, CAP_CHOWN, CAP_FOWNER...)
 * while fsuid is not 0; they come back when it returns to 0. So a caller
 * squashed to 65534 cannot do what root could, and the kernel enforces
 * everything; the server never decides on the client's word.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "nfs3/access_int.h"
#include "nfs3/nfsd_int.h"
#include "rpctls/krpc.h"

/* The thread's state: whether it runs as a caller now, that caller's fsuid
 * (restored after a stretch as the server), and the nesting of such
 * stretches. Thread-local: workers switch independently. */
static __thread int tl_switched;
static __thread uid_t tl_caller_uid, tl_server_uid;
static __thread int tl_server_depth;

long nfs3__cur_fsuid(void)
{
    return syscall(SYS_setfsuid, (uid_t)-1); /* an invalid id changes nothing and returns the current one */
}

long nfs3__cur_fsgid(void)
{
    return syscall(SYS_setfsgid, (gid_t)-1);
}

int nfs3__idctx_init(struct nfsd_idctx *c)
{
    int n;

    memset(c, 0, sizeof(*c));
    c->uid = geteuid();
    c->gid = getegid();
    n = getgroups(NFSD_IDENT_MAX_GROUPS, c->groups);
    c->ngroups = n > 0 ? (unsigned)n : 0;
    /* Can this process switch? Try it on this thread, then put it back:
     * setfsuid needs CAP_SETUID (or the target to be one of our ids),
     * setgroups needs CAP_SETGID. */
    uid_t probe = c->uid == 65533 ? 65532 : 65533;
    syscall(SYS_setfsuid, probe);
    int uid_ok = nfs3__cur_fsuid() == (long)probe;
    syscall(SYS_setfsuid, c->uid);
    int gid_ok = syscall(SYS_setgroups, (size_t)c->ngroups, c->groups) == 0;
    c->can_switch = uid_ok && gid_ok && nfs3__cur_fsuid() == (long)c->uid;
    /* ACCESS answers for the switched identity: find out now, at start,
     * whether the kernel can (faccessat2), so a fallback is logged once. */
    nfs3__access_probe();
    return c->can_switch;
}

static gid_t squash_gid(const struct nfs3_export_opts *o, gid_t g)
{
    return o->squash == NFS3_SQUASH_ROOT && g == 0 ? (gid_t)o->anongid : g;
}

void nfs3__ident_squash(const struct nfs3_export_opts *o, struct nfsd_ident *id)
{
    if (o->squash == NFS3_SQUASH_ALL) {
        id->uid = o->anonuid;
        id->gid = o->anongid;
        id->ngroups = 0;
        return;
    }
    if (o->squash == NFS3_SQUASH_ROOT && id->uid == 0)
        id->uid = o->anonuid;
    id->gid = squash_gid(o, id->gid);
    for (unsigned i = 0; i < id->ngroups; i++)
        id->groups[i] = squash_gid(o, id->groups[i]);
}

void nfs3__ident_from_cred(const struct nfs3_export_opts *o, const struct krpc_cred *cred, struct nfsd_ident *id)
{
    memset(id, 0, sizeof(*id));
    if (cred->flavor != KRPC_AUTH_SYS) {
        /* AUTH_NONE: anonymous, whatever the squashing. */
        id->uid = o->anonuid;
        id->gid = o->anongid;
        return;
    }
    id->uid = cred->uid;
    id->gid = cred->gid;
    id->ngroups = cred->ngids <= KRPC_AUTH_SYS_MAX_GIDS ? cred->ngids : KRPC_AUTH_SYS_MAX_GIDS;
    for (unsigned i = 0; i < id->ngroups; i++)
        id->groups[i] = cred->gids[i];
    nfs3__ident_squash(o, id);
}

int nfs3__ident_enter(const struct nfsd_idctx *c, const struct nfsd_ident *id)
{
    if (!c->can_switch)
        return 0;
    /* Groups and fsgid first, while fsuid is still the server's (root). */
    if (syscall(SYS_setgroups, (size_t)id->ngroups, id->groups) != 0)
        return -errno;
    syscall(SYS_setfsgid, id->gid);
    syscall(SYS_setfsuid, id->uid);
    tl_switched = 1;
    tl_caller_uid = id->uid;
    tl_server_uid = c->uid;
    tl_server_depth = 0;
    if (nfs3__cur_fsgid() != (long)id->gid || nfs3__cur_fsuid() != (long)id->uid)
        return -EPERM;
    return 0;
}

int nfs3__ident_leave(const struct nfsd_idctx *c)
{
    if (!c->can_switch)
        return 0;
    tl_switched = 0;
    tl_server_depth = 0;
    syscall(SYS_setfsuid, c->uid);
    syscall(SYS_setfsgid, c->gid);
    if (syscall(SYS_setgroups, (size_t)c->ngroups, c->groups) != 0)
        return -errno;
    if (nfs3__cur_fsuid() != (long)c->uid || nfs3__cur_fsgid() != (long)c->gid)
        return -EPERM;
    return 0;
}

void nfs3__ident_server_begin(void)
{
    if (tl_switched && tl_server_depth++ == 0)
        syscall(SYS_setfsuid, tl_server_uid);
}

void nfs3__ident_server_end(void)
{
    if (tl_switched && tl_server_depth > 0 && --tl_server_depth == 0)
        syscall(SYS_setfsuid, tl_caller_uid);
}

int nfs3__ident_from_cert_user(const char *user_at_domain, const char *domain, struct nfsd_ident *out, char *err,
                               size_t errlen)
{
    char user[256], *buf = NULL;
    struct passwd pw, *res = NULL;
    const char *at;
    size_t n;
    long bufsz;
    int ngroups, ret;

    memset(out, 0, sizeof(*out));
    if (user_at_domain == NULL || user_at_domain[0] == '\0') {
        snprintf(err, errlen, "the client certificate names no user (no user@domain otherName)");
        return -EACCES;
    }
    at = strrchr(user_at_domain, '@');
    if (at == NULL || at == user_at_domain || at[1] == '\0') {
        snprintf(err, errlen, "certificate user \"%.100s\" is not user@domain", user_at_domain);
        return -EACCES;
    }
    if (domain == NULL || domain[0] == '\0' || strcasecmp(at + 1, domain) != 0) {
        /* Domain names compare without case (DNS); user names with. */
        snprintf(err, errlen, "certificate user \"%.100s\" is of a foreign domain (this server's: \"%.100s\")",
                 user_at_domain, domain ? domain : "");
        return -EACCES;
    }
    n = (size_t)(at - user_at_domain);
    if (n >= sizeof(user)) {
        snprintf(err, errlen, "certificate user name is too long");
        return -EACCES;
    }
    memcpy(user, user_at_domain, n);
    user[n] = '\0';
    bufsz = sysconf(_SC_GETPW_R_SIZE_MAX);
    if (bufsz < 16384)
        bufsz = 16384;
    buf = malloc((size_t)bufsz);
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    ret = getpwnam_r(user, &pw, buf, (size_t)bufsz, &res);
    if (ret != 0 || res == NULL) {
        snprintf(err, errlen, "certificate user \"%.100s\": no such local user \"%.100s\"", user_at_domain, user);
        ret = -EACCES;
        goto out;
    }
    out->uid = pw.pw_uid;
    out->gid = pw.pw_gid;
    ngroups = NFSD_IDENT_MAX_GROUPS;
    if (getgrouplist(user, pw.pw_gid, out->groups, &ngroups) < 0) {
        /* More groups than we keep: the first NFSD_IDENT_MAX_GROUPS (the
         * primary group is always among them). */
        ngroups = NFSD_IDENT_MAX_GROUPS;
    }
    out->ngroups = (unsigned)ngroups;
    ret = 0;
out:
    free(buf);
    return ret;
}

int nfs3__default_domain(char *buf, size_t len)
{
    char host[256];
    const char *dot = NULL;
    struct addrinfo hints, *ai = NULL;

    /* The DNS domain of the host's fully qualified name (what FreeBSD's
     * nfsuserd uses by default), else the NIS domain when one is set. */
    buf[0] = '\0';
    if (gethostname(host, sizeof(host)) == 0) {
        host[sizeof(host) - 1] = '\0';
        dot = strchr(host, '.');
        if (dot == NULL) {
            memset(&hints, 0, sizeof(hints));
            hints.ai_flags = AI_CANONNAME;
            if (getaddrinfo(host, NULL, &hints, &ai) == 0 && ai != NULL && ai->ai_canonname != NULL)
                dot = strchr(ai->ai_canonname, '.');
        }
        if (dot != NULL && dot[1] != '\0')
            snprintf(buf, len, "%s", dot + 1);
        if (ai != NULL)
            freeaddrinfo(ai);
        if (buf[0] != '\0')
            return 0;
    }
    if (getdomainname(host, sizeof(host)) == 0) {
        host[sizeof(host) - 1] = '\0';
        if (host[0] != '\0' && strcmp(host, "(none)") != 0) {
            snprintf(buf, len, "%s", host);
            return 0;
        }
    }
    return -ENOENT;
}
