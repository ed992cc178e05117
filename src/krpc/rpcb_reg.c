/*
 * src/krpc/rpcb_reg.c - SET and UNSET with the local rpcbind (RFC 1833):
 * rpcbind v3 on its AF_UNIX socket, portmap v2 on TCP 127.0.0.1:111 as the
 * fallback. One blocking connection per call, bounded by a timeout; the
 * messages are built and parsed with the project's XDR and record marking.
 * See include/rpctls/krpc_rpcb.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "rpctls/krpc.h"
#include "rpctls/krpc_rpcb.h"
#include "krpc/krpc_test.h"

/* A call is about 150 bytes and a reply 28: anything larger is not rpcbind. */
#define RPCB_MAX_MSG 1024

static void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- encodings ------------------------------------------------------------ */

void krpc__rpcb_encode_map(struct krpc_xdr_enc *x, const struct krpc_rpcb_map *m, const char *owner)
{
    krpc_xdr_put_u32(x, m->prog);
    krpc_xdr_put_u32(x, m->vers);
    krpc_xdr_put_string(x, m->netid);
    krpc_xdr_put_string(x, m->uaddr != NULL ? m->uaddr : "");
    krpc_xdr_put_string(x, owner);
}

void krpc__pmap_encode_mapping(struct krpc_xdr_enc *x, uint32_t prog, uint32_t vers, uint32_t prot, uint32_t port)
{
    krpc_xdr_put_u32(x, prog);
    krpc_xdr_put_u32(x, vers);
    krpc_xdr_put_u32(x, prot);
    krpc_xdr_put_u32(x, port);
}

int krpc_rpcb_uaddr(const struct sockaddr *sa, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN];
    unsigned port;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
    } else {
        return -EINVAL;
    }
    int n = snprintf(buf, len, "%s.%u.%u", host, port >> 8, port & 0xff);
    return n < 0 || (size_t)n >= len ? -EINVAL : 0;
}

/* The port of an IPv4 universal address "h1.h2.h3.h4.p1.p2" (the only kind
 * portmap v2 can register). */
static int uaddr4_port(const char *uaddr, uint32_t *port)
{
    unsigned v[6];
    char end;
    if (sscanf(uaddr, "%3u.%3u.%3u.%3u.%3u.%3u%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &end) != 6)
        return -EINVAL;
    for (int i = 0; i < 6; i++)
        if (v[i] > 255)
            return -EINVAL;
    *port = v[4] << 8 | v[5];
    return 0;
}

int krpc_rpcb_listener_maps(const struct sockaddr *sa, int dual_stack, uint32_t prog, uint32_t vers,
                            struct krpc_rpcb_map out[2], struct krpc_rpcb_bufs *bufs)
{
    int n = 0;
    memset(out, 0, 2 * sizeof out[0]);
    if (sa->sa_family == AF_INET) {
        if (krpc_rpcb_uaddr(sa, bufs->uaddr[0], sizeof bufs->uaddr[0]) != 0)
            return -EINVAL;
        out[n++] = (struct krpc_rpcb_map){prog, vers, "tcp", bufs->uaddr[0], NULL};
        return n;
    }
    if (sa->sa_family != AF_INET6)
        return -EINVAL;
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
        /* Bound to ::ffff:a.b.c.d: reachable over IPv4 only. */
        struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = in6->sin6_port};
        memcpy(&in.sin_addr, &in6->sin6_addr.s6_addr[12], 4);
        if (krpc_rpcb_uaddr((struct sockaddr *)&in, bufs->uaddr[0], sizeof bufs->uaddr[0]) != 0)
            return -EINVAL;
        out[n++] = (struct krpc_rpcb_map){prog, vers, "tcp", bufs->uaddr[0], NULL};
        return n;
    }
    if (dual_stack && IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr)) {
        /* [::] without IPV6_V6ONLY also accepts IPv4 on every address. */
        struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = in6->sin6_port};
        in.sin_addr.s_addr = htonl(INADDR_ANY);
        if (krpc_rpcb_uaddr((struct sockaddr *)&in, bufs->uaddr[n], sizeof bufs->uaddr[n]) != 0)
            return -EINVAL;
        out[n] = (struct krpc_rpcb_map){prog, vers, "tcp", bufs->uaddr[n], NULL};
        n++;
    }
    if (krpc_rpcb_uaddr(sa, bufs->uaddr[n], sizeof bufs->uaddr[n]) != 0)
        return -EINVAL;
    out[n] = (struct krpc_rpcb_map){prog, vers, "tcp6", bufs->uaddr[n], NULL};
    n++;
    return n;
}

/* ---- one call on one blocking connection ----------------------------------- */

static int remaining_ms(uint64_t deadline)
{
    uint64_t now = krpc_now_ms();
    return now >= deadline ? 0 : (int)(deadline - now);
}

static void set_timeouts(int fd, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (ms <= 0)
        tv.tv_usec = 1000; /* 0 would mean "wait forever" */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* Sends the framed call and reads one reply into msg. */
static int exchange(int fd, const uint8_t *out, size_t outlen, uint64_t deadline, struct mb_chain *msg)
{
    struct krpc_rm_reader rd;
    int ret;
    size_t off = 0;

    krpc_rm_reader_init(&rd, RPCB_MAX_MSG);
    while (off < outlen) {
        set_timeouts(fd, remaining_ms(deadline));
        ssize_t n = send(fd, out + off, outlen - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ret = errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
            goto out;
        }
        off += (size_t)n;
    }
    for (;;) {
        uint8_t buf[256];
        struct mb_chain in;
        if (remaining_ms(deadline) == 0) {
            ret = -ETIMEDOUT;
            goto out;
        }
        set_timeouts(fd, remaining_ms(deadline));
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ret = errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
            goto out;
        }
        if (n == 0) {
            ret = -ECONNRESET; /* closed without answering */
            goto out;
        }
        mb_chain_init(&in);
        if (mb_chain_append_bytes(&in, buf, (size_t)n) != 0) {
            mb_chain_free(&in);
            ret = -ENOMEM;
            goto out;
        }
        krpc_rm_reader_feed(&rd, &in);
        ret = krpc_rm_reader_next(&rd, msg);
        if (ret < 0) {
            ret = -EPROTO; /* a reply over RPCB_MAX_MSG: not rpcbind */
            goto out;
        }
        if (ret == 1) {
            ret = 0;
            goto out;
        }
    }
out:
    krpc_rm_reader_free(&rd);
    return ret;
}

/*
 * Calls proc of (KRPC_RPCB_PROG, vers) at sa with args (consumed) and puts
 * the boolean result in *result. where names the place for messages.
 */
static int rpcb_call(const struct sockaddr *sa, socklen_t salen, const char *where, int timeout_ms, uint32_t vers,
                     uint32_t proc, struct mb_chain *args, int *result, char *err, size_t errlen)
{
    static atomic_uint xid_seq; /* calls may come from several threads */
    struct mb_chain msg, framed, reply;
    struct krpc_xdr_enc x;
    struct krpc_call_hdr h;
    struct krpc_reply_hdr rh;
    struct krpc_xdr_dec d;
    uint8_t out[RPCB_MAX_MSG];
    size_t outlen = 0;
    uint64_t deadline = krpc_now_ms() + (uint64_t)timeout_ms;
    int fd = -1, ret;

    mb_chain_init(&msg);
    mb_chain_init(&framed);
    mb_chain_init(&reply);
    memset(&h, 0, sizeof h);
    /* One connection per call, so any xid matches; they differ anyway so
     * that a capture tells the calls apart. */
    h.xid = (uint32_t)time(NULL) ^ ((uint32_t)getpid() << 16) ^ (uint32_t)atomic_fetch_add(&xid_seq, 1);
    h.prog = KRPC_RPCB_PROG;
    h.vers = vers;
    h.proc = proc;
    h.cred.flavor = KRPC_AUTH_NONE; /* rpcbind identifies local callers by the socket */
    h.verf_flavor = KRPC_AUTH_NONE;
    krpc_xdr_enc_init(&x, &msg);
    krpc_encode_call_hdr(&x, &h);
    ret = krpc_xdr_enc_error(&x);
    if (ret == 0) {
        mb_chain_concat(&msg, args);
        ret = krpc_rm_frame(&msg, 0, &framed); /* consumes msg */
    }
    outlen = framed.len;
    if (ret == 0 && (outlen > sizeof out || mb_chain_copy_out(&framed, 0, outlen, out) != 0))
        ret = -EINVAL;
    if (ret != 0) {
        seterr(err, errlen, "%s: cannot encode the call: %s", where, strerror(-ret));
        goto out;
    }

    fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        ret = -errno;
        seterr(err, errlen, "%s: socket: %s", where, strerror(errno));
        goto out;
    }
    /* A blocking connect obeys SO_SNDTIMEO (EINPROGRESS when it expires). */
    set_timeouts(fd, timeout_ms);
    if (connect(fd, sa, salen) != 0) {
        ret = errno == EINPROGRESS || errno == EAGAIN ? -ETIMEDOUT : -errno;
        seterr(err, errlen, "%s: %s", where, strerror(-ret));
        goto out;
    }
    ret = exchange(fd, out, outlen, deadline, &reply);
    if (ret == -ETIMEDOUT) {
        seterr(err, errlen, "%s: no answer within %d ms", where, timeout_ms);
        goto out;
    }
    if (ret == -ECONNRESET || ret == -EPIPE) {
        seterr(err, errlen, "%s: closed the connection without answering", where);
        ret = -EPROTO;
        goto out;
    }
    if (ret != 0) {
        seterr(err, errlen, "%s: %s", where, ret == -EPROTO ? "reply too large" : strerror(-ret));
        goto out;
    }

    krpc_xdr_dec_init(&d, &reply, 0, reply.len);
    if (krpc_decode_reply_hdr(&d, &rh) != 0 || rh.xid != h.xid) {
        seterr(err, errlen, "%s: malformed reply", where);
        ret = -EPROTO;
        goto out;
    }
    if (rh.reply_stat != KRPC_MSG_ACCEPTED) {
        seterr(err, errlen, "%s: call denied (%s)", where,
               rh.reject_stat == KRPC_AUTH_ERROR ? krpc_auth_stat_name(rh.auth_stat) : "RPC_MISMATCH");
        ret = -EPROTO;
        goto out;
    }
    if (rh.accept_stat != KRPC_SUCCESS) {
        seterr(err, errlen, "%s: %s for program %u version %u", where, krpc_accept_stat_name(rh.accept_stat),
               KRPC_RPCB_PROG, vers);
        ret = -EPROTO;
        goto out;
    }
    /* bool (rpcbind v3) or long (portmap v2 as rpcbind sends it): both one
     * XDR word, 0 for FALSE. */
    uint32_t v = krpc_xdr_get_u32(&d);
    if (krpc_xdr_dec_error(&d) != 0) {
        seterr(err, errlen, "%s: reply without a result", where);
        ret = -EPROTO;
        goto out;
    }
    *result = v != 0;
    ret = 0;
out:
    if (fd >= 0)
        close(fd);
    mb_chain_free(args);
    mb_chain_free(&msg);
    mb_chain_free(&framed);
    mb_chain_free(&reply);
    return ret;
}

/* ---- SET / UNSET ---------------------------------------------------------- */

static int check_str(const char *s)
{
    return s != NULL && strlen(s) <= KRPC_RPCB_MAX_STR;
}

/* Whether an error means "nothing there": then the next place is tried. */
static int absent(int ret)
{
    return ret == -ENOENT || ret == -ECONNREFUSED || ret == -ENOTDIR;
}

/* rpcbind v3 on the AF_UNIX socket at path. */
static int try_unix(const char *path, int timeout_ms, uint32_t proc, const struct krpc_rpcb_map *m, int *result,
                    char *why, size_t whylen)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    struct mb_chain args;
    struct krpc_xdr_enc x;
    char owner[24];

    if (strlen(path) >= sizeof un.sun_path) {
        seterr(why, whylen, "socket path too long: %s", path);
        return -EINVAL;
    }
    memcpy(un.sun_path, path, strlen(path) + 1);
    /* As libtirpc: the effective uid; rpcbind records what it sees instead. */
    snprintf(owner, sizeof owner, "%u", (unsigned)geteuid());
    mb_chain_init(&args);
    krpc_xdr_enc_init(&x, &args);
    krpc__rpcb_encode_map(&x, m, m->owner != NULL ? m->owner : owner);
    if (krpc_xdr_enc_error(&x) != 0) {
        mb_chain_free(&args);
        seterr(why, whylen, "out of memory");
        return -ENOMEM;
    }
    return rpcb_call((struct sockaddr *)&un, sizeof un, path, timeout_ms, KRPC_RPCB_VERS, proc, &args, result, why,
                     whylen);
}

/* Portmap v2 on TCP at addr ("ADDR:PORT"): netid "tcp" only. */
static int try_pmap(const char *addr, int timeout_ms, uint32_t proc, const struct krpc_rpcb_map *m, int *result,
                    char *why, size_t whylen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    struct mb_chain args;
    struct krpc_xdr_enc x;
    uint32_t port = 0;

    if (krpc_parse_addr(addr, &ss, &sl) != 0) {
        seterr(why, whylen, "bad portmapper address %s", addr);
        return -EINVAL;
    }
    if (strcmp(m->netid, "tcp") != 0) {
        /* Portmap has IPPROTO_TCP/UDP only, which rpcbind maps to "tcp"/"udp". */
        seterr(why, whylen, "only portmap v2 at %s is reachable, and it knows IPv4 only", addr);
        return -EAFNOSUPPORT;
    }
    if (proc == KRPC_RPCBPROC_SET && uaddr4_port(m->uaddr, &port) != 0) {
        seterr(why, whylen, "no port in universal address %s", m->uaddr);
        return -EINVAL;
    }
    mb_chain_init(&args);
    krpc_xdr_enc_init(&x, &args);
    /* UNSET ignores protocol and port (rpcbind removes tcp and udp). */
    krpc__pmap_encode_mapping(&x, m->prog, m->vers, KRPC_PMAP_IPPROTO_TCP, port);
    if (krpc_xdr_enc_error(&x) != 0) {
        mb_chain_free(&args);
        seterr(why, whylen, "out of memory");
        return -ENOMEM;
    }
    return rpcb_call((struct sockaddr *)&ss, sl, addr, timeout_ms, KRPC_PMAP_VERS, proc, &args, result, why, whylen);
}

static int rpcb_change(const struct krpc_rpcb_config *cfg, uint32_t proc, const struct krpc_rpcb_map *m, char *err,
                       size_t errlen)
{
    static const struct krpc_rpcb_config defaults = {NULL, NULL, 0};
    const char *what = proc == KRPC_RPCBPROC_SET ? "register" : "unregister";
    char why_unix[256] = "", why_tcp[256] = "";
    const char *where = NULL; /* the place that answered */
    int result = 0, ret = -ENOENT;

    if (cfg == NULL)
        cfg = &defaults;
    const char *path = cfg->sock_path != NULL ? cfg->sock_path : KRPC_RPCB_SOCK_PATH;
    const char *tcp = cfg->tcp_addr != NULL ? cfg->tcp_addr : KRPC_RPCB_TCP_ADDR;
    int timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : KRPC_RPCB_TIMEOUT_MS;
    if (m == NULL || !check_str(m->netid) || (m->uaddr != NULL && !check_str(m->uaddr)) ||
        (m->owner != NULL && !check_str(m->owner)) || (proc == KRPC_RPCBPROC_SET && m->uaddr == NULL)) {
        seterr(err, errlen, "rpcbind: bad registration arguments");
        ret = -EINVAL;
        goto out;
    }

    if (path[0] != '\0') {
        ret = try_unix(path, timeout_ms, proc, m, &result, why_unix, sizeof why_unix);
        if (ret == 0)
            where = path;
        if (ret != 0 && !absent(ret)) {
            seterr(err, errlen, "rpcbind: %s", why_unix);
            goto out;
        }
    }
    if (where == NULL && tcp[0] != '\0') {
        ret = try_pmap(tcp, timeout_ms, proc, m, &result, why_tcp, sizeof why_tcp);
        if (ret == 0)
            where = tcp;
        if (ret == -EAFNOSUPPORT) {
            seterr(err, errlen, "rpcbind: cannot %s netid %s: %s%s%s", what, m->netid, why_unix,
                   why_unix[0] ? "; " : "", why_tcp);
            goto out;
        }
        if (ret != 0 && !absent(ret)) {
            seterr(err, errlen, "rpcbind: %s", why_tcp);
            goto out;
        }
    }
    if (where == NULL) {
        seterr(err, errlen, "no rpcbind: %s%s%s", why_unix, why_unix[0] && why_tcp[0] ? "; " : "", why_tcp);
        goto out; /* ret: the error of the last place tried */
    }

    if (result) {
        ret = 0;
    } else if (proc == KRPC_RPCBPROC_SET) {
        seterr(err, errlen,
               "rpcbind (%s) refused to register program %u version %u %s at %s: already registered at another "
               "address, or by another owner",
               where, m->prog, m->vers, m->netid, m->uaddr);
        ret = -EACCES;
    } else {
        seterr(err, errlen, "rpcbind (%s) refused to unregister program %u version %u %s: registered by another owner",
               where, m->prog, m->vers, m->netid);
        ret = -EACCES;
    }
out:
    return ret;
}

int krpc_rpcb_set(const struct krpc_rpcb_config *cfg, const struct krpc_rpcb_map *m, char *err, size_t errlen)
{
    return rpcb_change(cfg, KRPC_RPCBPROC_SET, m, err, errlen);
}

int krpc_rpcb_unset(const struct krpc_rpcb_config *cfg, const struct krpc_rpcb_map *m, char *err, size_t errlen)
{
    return rpcb_change(cfg, KRPC_RPCBPROC_UNSET, m, err, errlen);
}
