/*
 * loop.c - the epoll event loop: fd callbacks and one-shot timers.
 *
 * Fds: a table indexed by fd holds the callback, its argument and a
 * generation number; the generation travels in epoll_event.data next to the
 * fd. A callback that removes another fd (or removes it and registers a new
 * one under the same number) makes the events already fetched for it stale:
 * they are skipped because the entry is gone or its generation changed.
 *
 * Timers: a binary min-heap of (due, arm sequence) in the loop; the timer
 * keeps its heap slot in heap_index. A timer is taken off the heap before its
 * callback runs, so callbacks may re-arm it, cancel others or free them.
 * Only timers armed before the timer pass began fire in that pass, so a
 * callback re-arming itself with a zero delay cannot starve the loop.
 *
 * Closing: an object closes asynchronously (libuv's uv_close): its fds
 * leave the loop at once, and a close timer (krpc_timer_init_close) runs
 * its last callbacks and frees it from the loop. krpc_loop_free runs the
 * close timers still armed, and those they arm in turn (a connection's
 * close lets its client finish), so an owner may free the loop right after
 * closing its objects. It runs no other timer and no fd callback.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "rpctls/krpc.h"

#define LOOP_MAX_EVENTS 64
#define LOOP_WAKE_TOKEN UINT64_MAX /* epoll data of the stop eventfd */
#define TIMER_NOT_ARMED SIZE_MAX
/* Close timers krpc_loop_free runs at most: each close takes one or two
 * (a connection's, then its client's); more means a close timer that keeps
 * re-arming itself, which would otherwise hang the free. */
#define LOOP_MAX_CLOSE_RUNS 100000

struct loop_fd {
    krpc_fd_fn fn;
    void *arg;
    uint32_t events;
    uint32_t gen; /* 0: not registered */
};

struct loop_heap_ent {
    uint64_t due;
    uint64_t seq;
    struct krpc_timer *t;
};

struct krpc_loop {
    int epfd;
    int wakefd;
    atomic_int stop_req;

    struct loop_fd *fds;
    size_t nfds_cap;
    size_t nfds_used; /* registered fds */
    uint32_t next_gen;

    struct loop_heap_ent *heap;
    size_t heap_len, heap_cap;
    uint64_t next_seq;
};

uint64_t krpc_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int krpc_loop_new(struct krpc_loop **out)
{
    struct krpc_loop *l;
    struct epoll_event ev;
    int ret;

    *out = NULL;
    if ((l = calloc(1, sizeof(*l))) == NULL)
        return -ENOMEM;
    l->epfd = l->wakefd = -1;
    l->next_gen = 1;
    if ((l->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
        (l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        ret = -errno;
        goto fail;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u64 = LOOP_WAKE_TOKEN;
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wakefd, &ev) < 0) {
        ret = -errno;
        goto fail;
    }
    atomic_init(&l->stop_req, 0);
    *out = l;
    return 0;
fail:
    if (l->epfd >= 0)
        close(l->epfd);
    if (l->wakefd >= 0)
        close(l->wakefd);
    free(l);
    return ret;
}

static void finish_closes(struct krpc_loop *loop);

void krpc_loop_free(struct krpc_loop *loop)
{
    if (loop == NULL)
        return;
    finish_closes(loop);
    /* Timers still armed point into freed memory afterwards; detach them. */
    for (size_t i = 0; i < loop->heap_len; i++) {
        loop->heap[i].t->armed = 0;
        loop->heap[i].t->heap_index = TIMER_NOT_ARMED;
    }
    close(loop->epfd);
    close(loop->wakefd);
    free(loop->fds);
    free(loop->heap);
    free(loop);
}

/* ---- fds ----------------------------------------------------------------- */

static uint64_t fd_token(int fd, uint32_t gen)
{
    return (uint64_t)gen << 32 | (uint32_t)fd;
}

int krpc_loop_add_fd(struct krpc_loop *loop, int fd, uint32_t events, krpc_fd_fn fn, void *arg)
{
    struct epoll_event ev;
    struct loop_fd *e;

    if (loop == NULL || fd < 0 || fn == NULL)
        return -EINVAL;
    if ((size_t)fd >= loop->nfds_cap) {
        size_t cap = loop->nfds_cap ? loop->nfds_cap : 64;
        struct loop_fd *n;
        while (cap <= (size_t)fd)
            cap *= 2;
        if ((n = realloc(loop->fds, cap * sizeof(*n))) == NULL)
            return -ENOMEM;
        memset(n + loop->nfds_cap, 0, (cap - loop->nfds_cap) * sizeof(*n));
        loop->fds = n;
        loop->nfds_cap = cap;
    }
    e = &loop->fds[fd];
    if (e->gen != 0)
        return -EEXIST;
    if (++loop->next_gen == 0)
        loop->next_gen = 1;
    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.u64 = fd_token(fd, loop->next_gen);
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    e->fn = fn;
    e->arg = arg;
    e->events = events;
    e->gen = loop->next_gen;
    loop->nfds_used++;
    return 0;
}

static struct loop_fd *fd_entry(struct krpc_loop *loop, int fd)
{
    if (loop == NULL || fd < 0 || (size_t)fd >= loop->nfds_cap || loop->fds[fd].gen == 0)
        return NULL;
    return &loop->fds[fd];
}

int krpc_loop_mod_fd(struct krpc_loop *loop, int fd, uint32_t events)
{
    struct loop_fd *e = fd_entry(loop, fd);
    struct epoll_event ev;

    if (e == NULL)
        return -ENOENT;
    if (e->events == events)
        return 0;
    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.u64 = fd_token(fd, e->gen);
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
        return -errno;
    e->events = events;
    return 0;
}

int krpc_loop_del_fd(struct krpc_loop *loop, int fd)
{
    struct loop_fd *e = fd_entry(loop, fd);
    int ret = 0;

    if (e == NULL)
        return -ENOENT;
    /* The entry goes regardless: a closed fd has already left the epoll set. */
    if (epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 && errno != EBADF && errno != ENOENT)
        ret = -errno;
    memset(e, 0, sizeof(*e));
    loop->nfds_used--;
    return ret;
}

/* ---- timers -------------------------------------------------------------- */

static int ent_less(const struct loop_heap_ent *a, const struct loop_heap_ent *b)
{
    return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heap_set(struct krpc_loop *loop, size_t i, struct loop_heap_ent e)
{
    loop->heap[i] = e;
    e.t->heap_index = i;
}

static void heap_up(struct krpc_loop *loop, size_t i)
{
    struct loop_heap_ent e = loop->heap[i];

    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ent_less(&e, &loop->heap[p]))
            break;
        heap_set(loop, i, loop->heap[p]);
        i = p;
    }
    heap_set(loop, i, e);
}

static void heap_down(struct krpc_loop *loop, size_t i)
{
    struct loop_heap_ent e = loop->heap[i];

    for (;;) {
        size_t l = 2 * i + 1, m = i;
        const struct loop_heap_ent *best = &e;
        if (l < loop->heap_len && ent_less(&loop->heap[l], best)) {
            m = l;
            best = &loop->heap[l];
        }
        if (l + 1 < loop->heap_len && ent_less(&loop->heap[l + 1], best))
            m = l + 1;
        if (m == i)
            break;
        heap_set(loop, i, loop->heap[m]);
        i = m;
    }
    heap_set(loop, i, e);
}

static void heap_remove(struct krpc_loop *loop, size_t i)
{
    struct krpc_timer *t = loop->heap[i].t;

    loop->heap_len--;
    if (i < loop->heap_len) {
        loop->heap[i] = loop->heap[loop->heap_len];
        loop->heap[i].t->heap_index = i;
        if (i > 0 && ent_less(&loop->heap[i], &loop->heap[(i - 1) / 2]))
            heap_up(loop, i);
        else
            heap_down(loop, i);
    }
    t->heap_index = TIMER_NOT_ARMED;
    t->armed = 0;
}

void krpc_timer_init(struct krpc_timer *t, krpc_timer_fn fn, void *arg)
{
    memset(t, 0, sizeof(*t));
    t->fn = fn;
    t->arg = arg;
    t->heap_index = TIMER_NOT_ARMED;
}

void krpc_timer_init_close(struct krpc_timer *t, krpc_timer_fn fn, void *arg)
{
    krpc_timer_init(t, fn, arg);
    t->closes = 1;
}

int krpc_timer_arm(struct krpc_loop *loop, struct krpc_timer *t, uint64_t after_ms)
{
    struct loop_heap_ent e;
    uint64_t now;

    if (loop == NULL || t == NULL || t->fn == NULL)
        return -EINVAL;
    now = krpc_now_ms();
    e.due = after_ms > UINT64_MAX - now ? UINT64_MAX : now + after_ms;
    e.seq = loop->next_seq++;
    e.t = t;
    if (t->armed && t->heap_index < loop->heap_len && loop->heap[t->heap_index].t == t) {
        size_t i = t->heap_index;
        loop->heap[i].due = e.due;
        loop->heap[i].seq = e.seq;
        if (i > 0 && ent_less(&loop->heap[i], &loop->heap[(i - 1) / 2]))
            heap_up(loop, i);
        else
            heap_down(loop, i);
    } else {
        if (loop->heap_len == loop->heap_cap) {
            size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
            struct loop_heap_ent *n = realloc(loop->heap, cap * sizeof(*n));
            if (n == NULL)
                return -ENOMEM;
            loop->heap = n;
            loop->heap_cap = cap;
        }
        loop->heap[loop->heap_len++] = e;
        heap_up(loop, loop->heap_len - 1);
    }
    t->due_ms = e.due;
    t->armed = 1;
    return 0;
}

void krpc_timer_cancel(struct krpc_loop *loop, struct krpc_timer *t)
{
    if (loop == NULL || t == NULL || !t->armed)
        return;
    if (t->heap_index < loop->heap_len && loop->heap[t->heap_index].t == t)
        heap_remove(loop, t->heap_index);
    t->armed = 0;
    t->heap_index = TIMER_NOT_ARMED;
}

/* The heap slot of the earliest armed close timer, or TIMER_NOT_ARMED. */
static size_t first_close_timer(const struct krpc_loop *loop)
{
    size_t best = TIMER_NOT_ARMED;

    for (size_t i = 0; i < loop->heap_len; i++)
        if (loop->heap[i].t->closes && (best == TIMER_NOT_ARMED || ent_less(&loop->heap[i], &loop->heap[best])))
            best = i;
    return best;
}

/* Runs the close timers still armed, earliest first and without waiting
 * for their due time (nothing else will run on this loop), including those
 * they arm. */
static void finish_closes(struct krpc_loop *loop)
{
    size_t i;
    int n;

    for (n = 0; n < LOOP_MAX_CLOSE_RUNS && (i = first_close_timer(loop)) != TIMER_NOT_ARMED; n++) {
        struct krpc_timer *t = loop->heap[i].t;
        heap_remove(loop, i);
        t->fn(loop, t, t->arg);
    }
    if (n == LOOP_MAX_CLOSE_RUNS)
        krpc_log(KRPC_LOG_ERROR, "krpc loop: freed with a close timer that keeps re-arming itself");
}

/* ---- running ------------------------------------------------------------- */

static int run_timers(struct krpc_loop *loop)
{
    uint64_t now = krpc_now_ms(), seq_limit = loop->next_seq;
    int n = 0;

    /* Ordered by (due, seq): a timer armed during this pass has due >= now
     * and a larger seq than every older timer with the same due, so it can
     * only be the top once every older due timer has fired. */
    while (loop->heap_len > 0 && loop->heap[0].due <= now && loop->heap[0].seq < seq_limit) {
        struct krpc_timer *t = loop->heap[0].t;
        heap_remove(loop, 0);
        t->fn(loop, t, t->arg);
        n++;
    }
    return n;
}

int krpc_loop_run_once(struct krpc_loop *loop, int timeout_ms)
{
    struct epoll_event evs[LOOP_MAX_EVENTS];
    int wait = timeout_ms, nev, n = 0;

    if (loop == NULL)
        return -EINVAL;
    if (loop->heap_len > 0) {
        uint64_t now = krpc_now_ms(), due = loop->heap[0].due;
        uint64_t left = due > now ? due - now : 0;
        if (wait < 0 || (uint64_t)wait > left)
            wait = left > (uint64_t)INT32_MAX ? INT32_MAX : (int)left;
    }
    nev = epoll_wait(loop->epfd, evs, LOOP_MAX_EVENTS, wait);
    if (nev < 0) {
        if (errno != EINTR)
            return -errno;
        nev = 0;
    }
    for (int i = 0; i < nev; i++) {
        uint64_t tok = evs[i].data.u64;
        struct loop_fd *e;
        int fd;

        if (tok == LOOP_WAKE_TOKEN) {
            uint64_t v;
            if (read(loop->wakefd, &v, sizeof(v)) < 0) {
                /* EAGAIN: another wake-up consumed it already. */
            }
            continue;
        }
        fd = (int)(uint32_t)tok;
        e = fd_entry(loop, fd);
        /* Removed (or removed and re-added) by an earlier callback. */
        if (e == NULL || e->gen != (uint32_t)(tok >> 32))
            continue;
        e->fn(loop, fd, evs[i].events, e->arg);
        n++;
    }
    return n + run_timers(loop);
}

int krpc_loop_run(struct krpc_loop *loop, const int *done, int timeout_ms)
{
    uint64_t deadline = timeout_ms >= 0 ? krpc_now_ms() + (uint64_t)timeout_ms : UINT64_MAX;

    if (loop == NULL)
        return -EINVAL;
    for (;;) {
        int wait = -1, ret;

        if (done != NULL && *done)
            return 0;
        if (atomic_exchange(&loop->stop_req, 0))
            return 0;
        if (deadline != UINT64_MAX) {
            uint64_t now = krpc_now_ms();
            if (now >= deadline)
                return -ETIMEDOUT;
            wait = deadline - now > (uint64_t)INT32_MAX ? INT32_MAX : (int)(deadline - now);
        }
        if ((ret = krpc_loop_run_once(loop, wait)) < 0)
            return ret;
    }
}

void krpc_loop_stop(struct krpc_loop *loop)
{
    uint64_t one = 1;

    if (loop == NULL)
        return;
    atomic_store(&loop->stop_req, 1);
    if (write(loop->wakefd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is saturated, a wake-up is pending anyway. */
    }
}
