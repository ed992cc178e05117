/*
 * tests/util/proxy.c - a fault-injecting loopback TCP proxy (see proxy.h).
 *
 * One thread, poll(): the listening socket, a wake-up pipe, and both
 * sockets of every connection pair. Each direction keeps the bytes read and
 * not yet written in a growing buffer; a DELAY rule withholds the bytes from
 * a stream offset on until a deadline.
 */
#define _GNU_SOURCE
#include "util/proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PX_MAX_PAIRS 64
#define PX_CHUNK 65536

struct px_dir {
    unsigned char *buf;     /* bytes read, not yet written: [sent, len) */
    size_t len, sent, cap;
    uint64_t rx;            /* stream bytes read in this direction */
    uint64_t tx;            /* stream bytes written (or discarded) */
    uint64_t hold_from;     /* DELAY: stream offset held back ... */
    uint64_t hold_until;    /* ... until this time (ms), 0: none */
    uint64_t discard_from;  /* BLACKHOLE: stream offset from which bytes vanish; UINT64_MAX: none */
    uint64_t reset_at;      /* RESET: reset once tx reaches this; UINT64_MAX: none */
    int eof;                /* source said FIN */
    int shut;               /* FIN passed on */
};

struct px_pair {
    int fd[2];              /* [0] client side, [1] server side */
    int index;
    struct px_dir d[2];     /* [TU_PX_C2S] reads fd[0] writes fd[1]; [TU_PX_S2C] the reverse */
    uint32_t fired;         /* bit per rule */
    uint64_t reset_deadline; /* BLACKHOLE with ms: reset at this time */
};

struct tu_proxy {
    pthread_t thr;
    pthread_mutex_t mu;
    int lfd;
    int wake[2];
    int stop;
    struct sockaddr_storage target, self;
    socklen_t target_len, self_len;
    struct tu_px_rule rules[TU_PX_MAX_RULES];
    int nrules;
    struct px_pair *pairs[PX_MAX_PAIRS];
    int next_index;
    struct tu_proxy_stats st;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void rst_close(int fd)
{
    struct linger lg = {1, 0};

    if (fd < 0)
        return;
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

static void pair_free(struct px_pair *pp, int reset)
{
    for (int i = 0; i < 2; i++) {
        if (reset)
            rst_close(pp->fd[i]);
        else if (pp->fd[i] >= 0)
            close(pp->fd[i]);
        free(pp->d[i].buf);
    }
    free(pp);
}

static void dir_init(struct px_dir *d)
{
    memset(d, 0, sizeof *d);
    d->discard_from = UINT64_MAX;
    d->reset_at = UINT64_MAX;
}

/* Arms the rules that apply to pp and have not fired yet (under mu). */
static void apply_rules(struct tu_proxy *p, struct px_pair *pp)
{
    for (int i = 0; i < p->nrules; i++) {
        const struct tu_px_rule *r = &p->rules[i];
        struct px_dir *d;

        if ((pp->fired & (1u << i)) || (r->conn >= 0 && r->conn != pp->index))
            continue;
        d = &pp->d[r->dir];
        switch (r->action) {
        case TU_PX_RESET:
            if (r->after < d->reset_at)
                d->reset_at = r->after;
            pp->fired |= 1u << i;
            break;
        case TU_PX_BLACKHOLE:
            if (r->after < d->discard_from)
                d->discard_from = r->after;
            pp->fired |= 1u << i;
            break;
        case TU_PX_DELAY:
        case TU_PX_FLIP:
            /* Fires when the byte at `after` arrives (see on_read). */
            break;
        }
    }
}

static int buf_append(struct px_dir *d, const unsigned char *data, size_t n)
{
    if (d->len + n > d->cap) {
        size_t cap = d->cap ? d->cap : PX_CHUNK;
        unsigned char *nb;
        if (d->sent > 0) {
            memmove(d->buf, d->buf + d->sent, d->len - d->sent);
            d->len -= d->sent;
            d->sent = 0;
        }
        while (cap < d->len + n)
            cap *= 2;
        if (cap != d->cap) {
            nb = realloc(d->buf, cap);
            if (!nb)
                return -1;
            d->buf = nb;
            d->cap = cap;
        }
    }
    memcpy(d->buf + d->len, data, n);
    d->len += n;
    return 0;
}

/* Reads from the source of direction k. Returns -1 when the pair must be
 * torn down (error), else 0. */
static int on_read(struct tu_proxy *p, struct px_pair *pp, int k)
{
    struct px_dir *d = &pp->d[k];
    unsigned char buf[PX_CHUNK];
    ssize_t n = read(pp->fd[k], buf, sizeof buf);
    size_t keep;

    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    if (n == 0) {
        d->eof = 1;
        return 0;
    }
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->nrules; i++) {
        const struct tu_px_rule *r = &p->rules[i];
        if ((r->action != TU_PX_DELAY && r->action != TU_PX_FLIP) || (int)r->dir != k ||
            (pp->fired & (1u << i)) || (r->conn >= 0 && r->conn != pp->index))
            continue;
        if (r->action == TU_PX_FLIP) {
            if (r->after >= d->rx && r->after < d->rx + (uint64_t)n) {
                pp->fired |= 1u << i;
                buf[r->after - d->rx] ^= 0x01;
                p->st.flips++;
            }
            continue;
        }
        if (d->rx + (uint64_t)n > r->after) {
            pp->fired |= 1u << i;
            d->hold_from = r->after;
            d->hold_until = now_ms() + (uint64_t)r->ms;
            p->st.delays++;
        }
    }
    pthread_mutex_unlock(&p->mu);
    /* Bytes at or past discard_from vanish. */
    keep = (size_t)n;
    if (d->rx + (uint64_t)n > d->discard_from) {
        uint64_t first = d->rx > d->discard_from ? d->rx : d->discard_from;
        size_t cut = (size_t)(d->rx + (uint64_t)n - first);
        keep = (size_t)n - cut;
        pthread_mutex_lock(&p->mu);
        p->st.blackholed += cut;
        pthread_mutex_unlock(&p->mu);
        if (pp->reset_deadline == 0) {
            for (int i = 0; i < p->nrules; i++)
                if (p->rules[i].action == TU_PX_BLACKHOLE && (int)p->rules[i].dir == k &&
                    (p->rules[i].conn < 0 || p->rules[i].conn == pp->index) && p->rules[i].ms > 0)
                    pp->reset_deadline = now_ms() + (uint64_t)p->rules[i].ms;
        }
    }
    d->rx += (uint64_t)n;
    if (keep > 0 && buf_append(d, buf, keep) < 0)
        return -1;
    return 0;
}

/* How many pending bytes of direction d may be written now. */
static size_t writable(const struct px_dir *d, uint64_t now)
{
    size_t avail = d->len - d->sent;
    uint64_t limit = UINT64_MAX;

    if (d->hold_until && now < d->hold_until)
        limit = d->hold_from;
    if (d->reset_at < limit)
        limit = d->reset_at;
    if (limit == UINT64_MAX)
        return avail;
    if (d->tx >= limit)
        return 0;
    return limit - d->tx < avail ? (size_t)(limit - d->tx) : avail;
}

/* Returns -1 on error, 1 when a RESET point was reached, else 0. */
static int on_write(struct tu_proxy *p, struct px_pair *pp, int k, uint64_t now)
{
    struct px_dir *d = &pp->d[k];
    size_t n = writable(d, now);
    ssize_t w;

    if (n > 0) {
        w = send(pp->fd[!k], d->buf + d->sent, n, MSG_NOSIGNAL);
        if (w < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        d->sent += (size_t)w;
        d->tx += (uint64_t)w;
        pthread_mutex_lock(&p->mu);
        p->st.bytes[k] += (uint64_t)w;
        pthread_mutex_unlock(&p->mu);
        if (d->sent == d->len)
            d->sent = d->len = 0;
    }
    if (d->tx >= d->reset_at)
        return 1;
    return 0;
}

static void accept_one(struct tu_proxy *p)
{
    struct px_pair *pp;
    int cfd, sfd, one = 1, slot = -1;

    cfd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (cfd < 0)
        return;
    for (int i = 0; i < PX_MAX_PAIRS; i++)
        if (!p->pairs[i]) {
            slot = i;
            break;
        }
    sfd = socket(p->target.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    /* A blocking connect on loopback: immediate, and it keeps the order of
     * events simple (the server sees the connection before any byte). */
    if (slot < 0 || sfd < 0 || connect(sfd, (struct sockaddr *)&p->target, p->target_len) < 0) {
        rst_close(cfd);
        if (sfd >= 0)
            close(sfd);
        return;
    }
    fcntl(sfd, F_SETFL, fcntl(sfd, F_GETFL) | O_NONBLOCK);
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pp = calloc(1, sizeof *pp);
    if (!pp) {
        rst_close(cfd);
        close(sfd);
        return;
    }
    pp->fd[0] = cfd;
    pp->fd[1] = sfd;
    dir_init(&pp->d[0]);
    dir_init(&pp->d[1]);
    pthread_mutex_lock(&p->mu);
    pp->index = p->next_index++;
    p->st.conns++;
    apply_rules(p, pp);
    pthread_mutex_unlock(&p->mu);
    p->pairs[slot] = pp;
}

static void *proxy_thread(void *arg)
{
    struct tu_proxy *p = arg;
    struct pollfd pfd[2 + 2 * PX_MAX_PAIRS];
    int owner[2 + 2 * PX_MAX_PAIRS];

    for (;;) {
        int n = 0, timeout = 50;
        uint64_t now = now_ms();

        pthread_mutex_lock(&p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        for (int i = 0; i < PX_MAX_PAIRS; i++)
            if (p->pairs[i])
                apply_rules(p, p->pairs[i]); /* rules added meanwhile */
        pthread_mutex_unlock(&p->mu);

        pfd[n].fd = p->lfd;
        pfd[n].events = POLLIN;
        owner[n++] = -1;
        pfd[n].fd = p->wake[0];
        pfd[n].events = POLLIN;
        owner[n++] = -1;
        for (int i = 0; i < PX_MAX_PAIRS; i++) {
            struct px_pair *pp = p->pairs[i];
            if (!pp)
                continue;
            for (int s = 0; s < 2; s++) {
                /* Socket s is the source of direction s and the sink of !s. */
                short ev = 0;
                if (!pp->d[s].eof && pp->d[s].len - pp->d[s].sent < 4 * PX_CHUNK)
                    ev |= POLLIN;
                if (writable(&pp->d[!s], now) > 0)
                    ev |= POLLOUT;
                pfd[n].fd = pp->fd[s];
                pfd[n].events = ev;
                owner[n++] = i;
            }
        }
        if (poll(pfd, (nfds_t)n, timeout) < 0 && errno != EINTR)
            break;
        now = now_ms();
        if (pfd[0].revents & POLLIN)
            accept_one(p);
        if (pfd[1].revents & POLLIN) {
            char b[64];
            (void)!read(p->wake[0], b, sizeof b);
        }
        for (int i = 0; i < PX_MAX_PAIRS; i++) {
            struct px_pair *pp = p->pairs[i];
            int dead = 0, reset = 0;
            if (!pp)
                continue;
            for (int j = 2; j < n; j++) {
                int s;
                if (owner[j] != i)
                    continue;
                s = pfd[j].fd == pp->fd[0] ? 0 : 1;
                if ((pfd[j].revents & (POLLIN | POLLHUP | POLLERR)) && on_read(p, pp, s) < 0)
                    dead = 1;
            }
            for (int k = 0; k < 2 && !dead; k++) {
                int r = on_write(p, pp, k, now);
                if (r < 0)
                    dead = 1;
                else if (r > 0)
                    reset = 1;
                else if (pp->d[k].eof && !pp->d[k].shut && pp->d[k].len == pp->d[k].sent &&
                         !(pp->d[k].hold_until && now < pp->d[k].hold_until)) {
                    shutdown(pp->fd[!k], SHUT_WR);
                    pp->d[k].shut = 1;
                }
            }
            if (pp->reset_deadline && now >= pp->reset_deadline)
                reset = 1;
            if (reset) {
                pthread_mutex_lock(&p->mu);
                p->st.resets++;
                pthread_mutex_unlock(&p->mu);
            }
            if (dead || reset || (pp->d[0].shut && pp->d[1].shut)) {
                pair_free(pp, dead || reset);
                p->pairs[i] = NULL;
            }
        }
    }
    return NULL;
}

int tu_proxy_start(const struct sockaddr *target, socklen_t len, struct tu_proxy **out)
{
    struct tu_proxy *p = calloc(1, sizeof *p);
    struct sockaddr_in sa;

    *out = NULL;
    if (!p || len > sizeof p->target)
        goto fail_mem;
    memcpy(&p->target, target, len);
    p->target_len = len;
    pthread_mutex_init(&p->mu, NULL);
    p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    p->self_len = sizeof sa;
    if (p->lfd < 0 || bind(p->lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(p->lfd, 64) < 0 ||
        getsockname(p->lfd, (struct sockaddr *)&p->self, &p->self_len) < 0 || pipe2(p->wake, O_CLOEXEC) < 0) {
        perror("proxy: listen");
        if (p->lfd >= 0)
            close(p->lfd);
        free(p);
        return -1;
    }
    if (pthread_create(&p->thr, NULL, proxy_thread, p) != 0) {
        fprintf(stderr, "proxy: pthread_create failed\n");
        close(p->lfd);
        close(p->wake[0]);
        close(p->wake[1]);
        free(p);
        return -1;
    }
    *out = p;
    return 0;
fail_mem:
    free(p);
    fprintf(stderr, "proxy: bad arguments or no memory\n");
    return -1;
}

uint16_t tu_proxy_port(const struct tu_proxy *p)
{
    return ntohs(((const struct sockaddr_in *)&p->self)->sin_port);
}

void tu_proxy_addr(const struct tu_proxy *p, struct sockaddr_storage *ss, socklen_t *len)
{
    memcpy(ss, &p->self, p->self_len);
    *len = p->self_len;
}

int tu_proxy_add_rule(struct tu_proxy *p, const struct tu_px_rule *r)
{
    int rc = -1;

    pthread_mutex_lock(&p->mu);
    if (p->nrules < TU_PX_MAX_RULES) {
        p->rules[p->nrules++] = *r;
        rc = 0;
    }
    pthread_mutex_unlock(&p->mu);
    (void)!write(p->wake[1], "r", 1);
    return rc;
}

void tu_proxy_clear_rules(struct tu_proxy *p)
{
    pthread_mutex_lock(&p->mu);
    p->nrules = 0;
    /* Rule bits index the table: forget what fired. */
    for (int i = 0; i < PX_MAX_PAIRS; i++)
        if (p->pairs[i])
            p->pairs[i]->fired = 0;
    pthread_mutex_unlock(&p->mu);
}

void tu_proxy_get_stats(struct tu_proxy *p, struct tu_proxy_stats *out)
{
    pthread_mutex_lock(&p->mu);
    *out = p->st;
    pthread_mutex_unlock(&p->mu);
}

void tu_proxy_stop(struct tu_proxy *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_mutex_unlock(&p->mu);
    (void)!write(p->wake[1], "s", 1);
    pthread_join(p->thr, NULL);
    for (int i = 0; i < PX_MAX_PAIRS; i++)
        if (p->pairs[i])
            pair_free(p->pairs[i], 0);
    close(p->lfd);
    close(p->wake[0]);
    close(p->wake[1]);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
