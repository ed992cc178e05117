/*
 * src/krpc/pmap_clnt.c - portmapper / rpcbind queries (see
 * rpctls/krpc_pmap.h). One plain krpc_clnt on a private loop per query:
 * the RPC client already has the connect timeout, record marking and reply
 * matching; the query sets no retransmission and one connection attempt,
 * so it ends after about timeout_ms per call.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpctls/krpc_clnt.h"
#include "rpctls/krpc_pmap.h"

#define UADDR_MAX 128 /* longest IPv6 universal address is 46 + 8 bytes */

int krpc_uaddr_parse(const char *uaddr, struct sockaddr_storage *sa, socklen_t *salen, uint16_t *port)
{
    char host[UADDR_MAX];
    const char *dot2, *dot1;
    unsigned long p1, p2;
    char *end;
    size_t n;

    if (!uaddr || !port)
        return -EINVAL;
    n = strlen(uaddr);
    if (n == 0 || n >= sizeof host)
        return -EINVAL;
    /* The port is the last two dot-separated decimal fields. */
    dot2 = strrchr(uaddr, '.');
    if (!dot2 || dot2 == uaddr)
        return -EINVAL;
    for (dot1 = dot2 - 1; dot1 > uaddr && *dot1 != '.'; dot1--)
        ;
    if (*dot1 != '.' || dot1 == uaddr)
        return -EINVAL;
    if (dot1[1] < '0' || dot1[1] > '9' || dot2[1] < '0' || dot2[1] > '9')
        return -EINVAL;
    p1 = strtoul(dot1 + 1, &end, 10);
    if (end != dot2 || p1 > 255)
        return -EINVAL;
    p2 = strtoul(dot2 + 1, &end, 10);
    if (*end != '\0' || p2 > 255)
        return -EINVAL;
    memcpy(host, uaddr, (size_t)(dot1 - uaddr));
    host[dot1 - uaddr] = '\0';
    *port = (uint16_t)(p1 * 256 + p2);
    if (strchr(host, ':')) {
        struct sockaddr_in6 a6;
        memset(&a6, 0, sizeof a6);
        if (inet_pton(AF_INET6, host, &a6.sin6_addr) != 1)
            return -EINVAL;
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons(*port);
        if (sa) {
            memset(sa, 0, sizeof *sa);
            memcpy(sa, &a6, sizeof a6);
            *salen = sizeof a6;
        }
    } else {
        struct sockaddr_in a4;
        memset(&a4, 0, sizeof a4);
        if (inet_pton(AF_INET, host, &a4.sin_addr) != 1)
            return -EINVAL;
        a4.sin_family = AF_INET;
        a4.sin_port = htons(*port);
        if (sa) {
            memset(sa, 0, sizeof *sa);
            memcpy(sa, &a4, sizeof a4);
            *salen = sizeof a4;
        }
    }
    return 0;
}

/* One call to the portmapper, version vers; reply holds the results on 0. */
static int pmap_call(struct krpc_loop *loop, const struct sockaddr_storage *pm, socklen_t pmlen, uint32_t vers,
                     uint32_t proc, struct mb_chain *args, int timeout_ms, struct krpc_reply *reply, char *why,
                     size_t whylen)
{
    struct krpc_clnt_config cc;
    struct krpc_clnt *cl = NULL;
    int ret;

    memset(&cc, 0, sizeof cc);
    cc.addr = *pm;
    cc.addrlen = pmlen;
    cc.prog = KRPC_PMAP_PROG;
    cc.vers = vers;
    cc.tls = KRPC_TLS_OFF;
    cc.timeout_ms = timeout_ms;
    cc.connect_timeout_ms = timeout_ms;
    cc.max_retries = -1;   /* no retransmission: a portmapper answers at once or not at all */
    cc.max_reconnects = 1; /* one connection attempt */
    cc.name = "portmapper";
    ret = krpc_clnt_new(loop, &cc, &cl);
    if (ret < 0) {
        mb_chain_free(args);
        snprintf(why, whylen, "%s", strerror(-ret));
        goto out;
    }
    ret = krpc_call(cl, proc, args, reply);
    if (ret < 0) {
        const char *le = krpc_clnt_last_error(cl);
        /* last_error names the portmapper client; the caller names the address. */
        snprintf(why, whylen, "%s", ret == -ETIMEDOUT && !le[0] ? "no answer" : strerror(-ret));
        goto out;
    }
    ret = krpc_reply_status(&reply->hdr, why, whylen);
    if (ret < 0)
        krpc_reply_free(reply);
out:
    krpc_clnt_free(cl);
    return ret;
}

static int getport_v2(struct krpc_loop *loop, const struct sockaddr_storage *pm, socklen_t pmlen, uint32_t prog,
                      uint32_t vers, int timeout_ms, uint16_t *port, char *why, size_t whylen)
{
    struct mb_chain args = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    struct krpc_reply rep;
    uint32_t p;
    int ret;

    krpc_xdr_enc_init(&x, &args);
    krpc_xdr_put_u32(&x, prog);
    krpc_xdr_put_u32(&x, vers);
    krpc_xdr_put_u32(&x, KRPC_IPPROTO_TCP);
    krpc_xdr_put_u32(&x, 0);
    if (krpc_xdr_enc_error(&x)) {
        mb_chain_free(&args);
        snprintf(why, whylen, "out of memory");
        return -ENOMEM;
    }
    ret = pmap_call(loop, pm, pmlen, KRPC_PMAP_VERS, KRPC_PMAP_PROC_GETPORT, &args, timeout_ms, &rep, why, whylen);
    if (ret < 0)
        return ret;
    p = krpc_xdr_get_u32(&rep.res);
    ret = krpc_xdr_dec_error(&rep.res) ? -EBADMSG : 0;
    krpc_reply_free(&rep);
    if (ret < 0) {
        snprintf(why, whylen, "undecodable GETPORT reply");
        return ret;
    }
    if (p == 0 || p > 65535) {
        snprintf(why, whylen, p == 0 ? "not registered" : "GETPORT answered port %u", p);
        return p == 0 ? -ENOENT : -EBADMSG;
    }
    *port = (uint16_t)p;
    return 0;
}

static int getaddr_v43(struct krpc_loop *loop, const struct sockaddr_storage *pm, socklen_t pmlen, uint32_t rvers,
                       uint32_t prog, uint32_t vers, int timeout_ms, uint16_t *port, char *why, size_t whylen)
{
    struct mb_chain args = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    struct krpc_reply rep;
    struct sockaddr_storage got;
    socklen_t gotlen;
    char uaddr[UADDR_MAX];
    int ret;

    /* struct rpcb { prog, vers, netid, addr, owner } (RFC 1833 section 2.1) */
    krpc_xdr_enc_init(&x, &args);
    krpc_xdr_put_u32(&x, prog);
    krpc_xdr_put_u32(&x, vers);
    krpc_xdr_put_string(&x, "tcp6");
    krpc_xdr_put_string(&x, "");
    krpc_xdr_put_string(&x, "");
    if (krpc_xdr_enc_error(&x)) {
        mb_chain_free(&args);
        snprintf(why, whylen, "out of memory");
        return -ENOMEM;
    }
    ret = pmap_call(loop, pm, pmlen, rvers, KRPC_RPCB_PROC_GETADDR, &args, timeout_ms, &rep, why, whylen);
    if (ret < 0)
        return ret;
    /* A string longer than our buffer is not a universal address. */
    ret = krpc_xdr_get_string(&rep.res, uaddr, sizeof uaddr);
    krpc_reply_free(&rep);
    if (ret < 0) {
        snprintf(why, whylen, "undecodable GETADDR reply");
        return -EBADMSG;
    }
    if (uaddr[0] == '\0') {
        snprintf(why, whylen, "not registered");
        return -ENOENT;
    }
    if (krpc_uaddr_parse(uaddr, &got, &gotlen, port) < 0 || got.ss_family != AF_INET6 || *port == 0) {
        snprintf(why, whylen, "GETADDR answered \"%s\", not a tcp6 universal address", uaddr);
        return -EBADMSG;
    }
    return 0;
}

/* The portmapper's port when the caller leaves it 0: 111, or, for tests
 * only, RPCTLS_TEST_PMAP_PORT (a scripted portmapper on a free port, since
 * a test cannot take 111 from the system's rpcbind). */
static uint16_t default_pmap_port(void)
{
    const char *e = getenv("RPCTLS_TEST_PMAP_PORT");
    char *end;
    unsigned long p;

    if (!e || !*e)
        return KRPC_PMAP_PORT;
    p = strtoul(e, &end, 10);
    return *end == '\0' && p > 0 && p <= 65535 ? (uint16_t)p : KRPC_PMAP_PORT;
}

int krpc_pmap_getport(const struct sockaddr *server, socklen_t len, uint32_t prog, uint32_t vers, int timeout_ms,
                      uint16_t *port, char *err, size_t errlen)
{
    struct sockaddr_storage pm;
    struct krpc_loop *loop = NULL;
    char why[200] = "", where[80];
    int ret;

    if (err && errlen)
        err[0] = '\0';
    if (!server || !port || len == 0 || len > sizeof pm ||
        (server->sa_family != AF_INET && server->sa_family != AF_INET6))
        return -EINVAL;
    if (timeout_ms <= 0)
        timeout_ms = 3000;
    memset(&pm, 0, sizeof pm);
    memcpy(&pm, server, len);
    if (pm.ss_family == AF_INET && ((struct sockaddr_in *)&pm)->sin_port == 0)
        ((struct sockaddr_in *)&pm)->sin_port = htons(default_pmap_port());
    if (pm.ss_family == AF_INET6 && ((struct sockaddr_in6 *)&pm)->sin6_port == 0)
        ((struct sockaddr_in6 *)&pm)->sin6_port = htons(default_pmap_port());
    krpc_format_addr((const struct sockaddr *)&pm, where, sizeof where);

    ret = krpc_loop_new(&loop);
    if (ret < 0) {
        snprintf(why, sizeof why, "%s", strerror(-ret));
        goto out;
    }
    if (pm.ss_family == AF_INET) {
        ret = getport_v2(loop, &pm, len, prog, vers, timeout_ms, port, why, sizeof why);
    } else {
        /* Portmap v2 has no IPv6; rpcbind v4 and v3 have GETADDR. */
        ret = getaddr_v43(loop, &pm, len, KRPC_RPCB_VERS4, prog, vers, timeout_ms, port, why, sizeof why);
        if (ret == -EPROTONOSUPPORT)
            ret = getaddr_v43(loop, &pm, len, KRPC_RPCB_VERS3, prog, vers, timeout_ms, port, why, sizeof why);
    }
out:
    if (err && errlen) {
        if (ret == 0)
            snprintf(err, errlen, "portmapper %s: %u v%u tcp%s is at port %u", where, prog, vers,
                     pm.ss_family == AF_INET6 ? "6" : "", *port);
        else
            snprintf(err, errlen, "portmapper %s: %u v%u tcp%s: %s", where, prog, vers,
                     pm.ss_family == AF_INET6 ? "6" : "", why);
    }
    if (loop)
        krpc_loop_free(loop);
    return ret;
}
