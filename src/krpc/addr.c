/*
 * src/krpc/addr.c - "HOST:PORT", "[V6]:PORT" and "PORT" socket addresses.
 * krpc_parse_addr takes numeric hosts (inet_pton) or "localhost" and never
 * blocks; krpc_resolve asks getaddrinfo (DNS names).
 */
#define _GNU_SOURCE /* EAI_ADDRFAMILY */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "rpctls/krpc.h"

/* Decimal 0..65535, digits only. */
static int parse_port(const char *s, uint16_t *port)
{
    unsigned long v = 0;
    if (!*s)
        return -EINVAL;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -EINVAL;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > 65535)
            return -EINVAL;
    }
    *port = (uint16_t)v;
    return 0;
}

int krpc_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *port_s;
    uint16_t port;
    int v6 = 0;

    if (!s || !ss || !len)
        return -EINVAL;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':' || (size_t)(close - s - 1) >= sizeof host)
            return -EINVAL;
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = '\0';
        port_s = close + 2;
        v6 = 1;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon) {
            strcpy(host, "127.0.0.1");
            port_s = s;
        } else {
            if (colon == s || (size_t)(colon - s) >= sizeof host || memchr(s, ':', (size_t)(colon - s)))
                return -EINVAL; /* empty host, too long, or an unbracketed IPv6 address */
            memcpy(host, s, (size_t)(colon - s));
            host[colon - s] = '\0';
            port_s = colon + 1;
        }
    }
    if (parse_port(port_s, &port) < 0)
        return -EINVAL;

    memset(ss, 0, sizeof *ss);
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
            return -EINVAL;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        *len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        if (strcmp(host, "localhost") == 0)
            strcpy(host, "127.0.0.1");
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            return -EINVAL;
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        *len = sizeof *a;
    }
    return 0;
}

const char *krpc_format_addr(const struct sockaddr *sa, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN];
    if (!buf || len == 0)
        return "";
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        snprintf(buf, len, "%s:%u", host, ntohs(a->sin_port));
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        snprintf(buf, len, "[%s]:%u", host, ntohs(a->sin6_port));
    } else {
        snprintf(buf, len, "?");
    }
    return buf;
}

int krpc_split_hostport(const char *s, uint16_t default_port, char *host, size_t hostlen, uint16_t *port)
{
    const char *port_s = NULL;
    size_t n;

    if (!s || !host || hostlen == 0 || !port)
        return -EINVAL;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || (close[1] != '\0' && close[1] != ':'))
            return -EINVAL;
        n = (size_t)(close - s - 1);
        if (n == 0 || n >= hostlen)
            return -EINVAL;
        memcpy(host, s + 1, n);
        host[n] = '\0';
        if (close[1] == ':')
            port_s = close + 2;
    } else {
        const char *colon = strchr(s, ':');
        if (colon && strchr(colon + 1, ':'))
            return -EINVAL; /* an IPv6 literal needs brackets */
        n = colon ? (size_t)(colon - s) : strlen(s);
        if (n == 0 || n >= hostlen)
            return -EINVAL;
        memcpy(host, s, n);
        host[n] = '\0';
        if (colon)
            port_s = colon + 1;
    }
    if (port_s == NULL) {
        *port = default_port;
        return 0;
    }
    return parse_port(port_s, port);
}

int krpc_resolve(const char *host, uint16_t port, int passive, struct sockaddr_storage *out, socklen_t *lens,
                 unsigned max, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL, *ai;
    char name[256];
    size_t n;
    unsigned count = 0;
    int rc;

    if (err && errlen)
        err[0] = '\0';
    if (!host || !out || !lens || max == 0)
        return -EINVAL;
    n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof name)
        return -EINVAL;
    memcpy(name, host, n);
    name[n] = '\0';
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : AI_ADDRCONFIG);
    {
        char port_s[8];
        snprintf(port_s, sizeof port_s, "%u", port);
        rc = getaddrinfo(name, port_s, &hints, &res);
        if (rc == EAI_ADDRFAMILY || (rc == EAI_NONAME && !passive)) {
            /* AI_ADDRCONFIG hides loopback-only families on hosts without
             * a configured address of that family: ask again without it. */
            hints.ai_flags &= ~AI_ADDRCONFIG;
            rc = getaddrinfo(name, port_s, &hints, &res);
        }
    }
    if (rc != 0) {
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", name, rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return rc == EAI_MEMORY ? -ENOMEM : -ENOENT;
    }
    for (ai = res; ai && count < max; ai = ai->ai_next) {
        int dup = 0;
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) || ai->ai_addrlen > sizeof(*out))
            continue;
        for (unsigned i = 0; i < count && !dup; i++)
            dup = lens[i] == ai->ai_addrlen && memcmp(&out[i], ai->ai_addr, ai->ai_addrlen) == 0;
        if (dup)
            continue;
        memset(&out[count], 0, sizeof(out[count]));
        memcpy(&out[count], ai->ai_addr, ai->ai_addrlen);
        lens[count] = ai->ai_addrlen;
        count++;
    }
    freeaddrinfo(res);
    if (count == 0) {
        if (err && errlen)
            snprintf(err, errlen, "%s: no IPv4 or IPv6 address", name);
        return -ENOENT;
    }
    return (int)count;
}
