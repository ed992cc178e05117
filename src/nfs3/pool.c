/*
 * pool.c - the NFS server's worker pool: a fixed number of threads run the
 * file-system work of calls, so a slow fsync or a large directory never
 * stalls an event loop (and every other client on it).
 *
 *   loop thread                         worker thread
 *   -----------                         -------------
 *   nfs3__pool_submit(job)  --queue-->   job->run(job)   (file system, encode)
 *   port_on_event: job->finish(job) <--done list + eventfd of the job's loop--
 *
 * Each event loop that submits gets a "port": a done list under the pool's
 * mutex and an eventfd registered with that loop, so a job is finished on
 * the loop that owns its request (the only thread that may answer it).
 *
 * Per-connection limit: at most per_conn jobs with the same connkey are
 * queued or running; later ones wait in the port, in arrival order, and go
 * to the queue as earlier ones finish. One client with many calls in flight
 * thus cannot fill the queue ahead of everybody else; nothing is dropped.
 * The waiting lists belong to the port and are touched only by its loop.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "nfs3/nfsd_int.h"

/* Jobs of one connection that are in the pool or waiting for room. */
struct conn_q {
    struct conn_q *next;
    void *key;
    unsigned inflight;
    struct nfsd_job *wait_head, *wait_tail;
};

struct nfsd_port {
    struct nfsd_port *next;
    struct nfsd_pool *pool;
    struct krpc_loop *loop;
    int efd;
    struct nfsd_job *done_head, *done_tail; /* under pool->lock */
    struct conn_q *conns;                   /* loop thread only */
};

struct nfsd_pool {
    pthread_mutex_t lock;
    pthread_cond_t cond;    /* work queued, or stopping */
    pthread_cond_t wake;    /* stopping (for sleepers) */
    struct nfsd_job *q_head, *q_tail;
    struct nfsd_port *ports;
    unsigned per_conn;
    int stopping, stopped;
    unsigned nthreads;
    pthread_t *threads;
};

static void list_push(struct nfsd_job **head, struct nfsd_job **tail, struct nfsd_job *j)
{
    j->next = NULL;
    if (*tail != NULL)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
}

static struct nfsd_job *list_pop(struct nfsd_job **head, struct nfsd_job **tail)
{
    struct nfsd_job *j = *head;

    if (j != NULL) {
        *head = j->next;
        if (*head == NULL)
            *tail = NULL;
        j->next = NULL;
    }
    return j;
}

static void *worker_main(void *arg)
{
    struct nfsd_pool *p = arg;
    struct nfsd_job *j;

    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->stopping && p->q_head == NULL)
            pthread_cond_wait(&p->cond, &p->lock);
        if (p->stopping)
            break;
        j = list_pop(&p->q_head, &p->q_tail);
        pthread_mutex_unlock(&p->lock);
        j->run(j);
        pthread_mutex_lock(&p->lock);
        struct nfsd_port *port = j->port;
        list_push(&port->done_head, &port->done_tail, j);
        uint64_t one = 1;
        /* Cannot fail short of a counter overflow; the loop reads it. */
        if (write(port->efd, &one, sizeof(one)) < 0) {
        }
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int nfs3__pool_new(unsigned nthreads, unsigned per_conn, struct nfsd_pool **out)
{
    struct nfsd_pool *p;
    int ret;

    *out = NULL;
    if (nthreads == 0)
        return -EINVAL;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->per_conn = per_conn ? per_conn : 1;
    p->threads = calloc(nthreads, sizeof(*p->threads));
    if (p->threads == NULL) {
        ret = -ENOMEM;
        goto fail;
    }
    for (; p->nthreads < nthreads; p->nthreads++) {
        ret = -pthread_create(&p->threads[p->nthreads], NULL, worker_main, p);
        if (ret != 0)
            goto fail;
    }
    *out = p;
    return 0;
fail:
    nfs3__pool_shutdown(p);
    nfs3__pool_free(p);
    return ret;
}

static struct conn_q *conn_q_get(struct nfsd_port *port, void *key, int create)
{
    struct conn_q *c;

    for (c = port->conns; c != NULL; c = c->next)
        if (c->key == key)
            return c;
    if (!create)
        return NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->key = key;
    c->next = port->conns;
    port->conns = c;
    return c;
}

static void conn_q_del(struct nfsd_port *port, struct conn_q *c)
{
    struct conn_q **pp;

    for (pp = &port->conns; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            free(c);
            return;
        }
    }
}

static void port_on_event(struct krpc_loop *loop, int fd, uint32_t events, void *arg)
{
    struct nfsd_port *port = arg;
    struct nfsd_pool *p = port->pool;
    struct nfsd_job *done, *j;
    uint64_t n;

    (void)loop;
    (void)events;
    if (read(fd, &n, sizeof(n)) < 0) {
        /* EAGAIN: another wakeup already took the count; the list decides. */
    }
    pthread_mutex_lock(&p->lock);
    done = port->done_head;
    port->done_head = port->done_tail = NULL;
    pthread_mutex_unlock(&p->lock);
    while ((j = done) != NULL) {
        struct conn_q *c = conn_q_get(port, j->connkey, 0);
        done = j->next;
        j->next = NULL;
        j->finish(j);
        if (c == NULL)
            continue;
        c->inflight--;
        /* Room for this connection's next waiting jobs, in order. */
        pthread_mutex_lock(&p->lock);
        while (c->wait_head != NULL && c->inflight < p->per_conn) {
            list_push(&p->q_head, &p->q_tail, list_pop(&c->wait_head, &c->wait_tail));
            c->inflight++;
            pthread_cond_signal(&p->cond);
        }
        pthread_mutex_unlock(&p->lock);
        if (c->inflight == 0 && c->wait_head == NULL)
            conn_q_del(port, c);
    }
}

/* The port of loop, made on first use (on that loop's thread). */
static struct nfsd_port *port_get(struct nfsd_pool *p, struct krpc_loop *loop)
{
    struct nfsd_port *port;

    pthread_mutex_lock(&p->lock);
    for (port = p->ports; port != NULL; port = port->next)
        if (port->loop == loop)
            break;
    pthread_mutex_unlock(&p->lock);
    if (port != NULL)
        return port;
    port = calloc(1, sizeof(*port));
    if (port == NULL)
        return NULL;
    port->pool = p;
    port->loop = loop;
    port->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (port->efd < 0 || krpc_loop_add_fd(loop, port->efd, EPOLLIN, port_on_event, port) < 0) {
        if (port->efd >= 0)
            close(port->efd);
        free(port);
        return NULL;
    }
    pthread_mutex_lock(&p->lock);
    port->next = p->ports;
    p->ports = port;
    pthread_mutex_unlock(&p->lock);
    return port;
}

int nfs3__pool_submit(struct nfsd_pool *p, struct krpc_loop *loop, struct nfsd_job *j)
{
    struct nfsd_port *port;
    struct conn_q *c;

    if (p->stopping)
        return -ESHUTDOWN;
    port = port_get(p, loop);
    if (port == NULL)
        return -ENOMEM;
    c = conn_q_get(port, j->connkey, 1);
    if (c == NULL)
        return -ENOMEM;
    j->port = port;
    if (c->inflight >= p->per_conn) {
        list_push(&c->wait_head, &c->wait_tail, j);
        return 0;
    }
    c->inflight++;
    pthread_mutex_lock(&p->lock);
    list_push(&p->q_head, &p->q_tail, j);
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

static void drop_list(struct nfsd_job *j)
{
    while (j != NULL) {
        struct nfsd_job *next = j->next;
        j->drop(j);
        j = next;
    }
}

void nfs3__pool_shutdown(struct nfsd_pool *p)
{
    if (p == NULL || p->stopped)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    p->stopped = 1;
    /* No thread runs jobs any more: drop what is queued, done or waiting. */
    drop_list(p->q_head);
    p->q_head = p->q_tail = NULL;
    while (p->ports != NULL) {
        struct nfsd_port *port = p->ports;
        p->ports = port->next;
        drop_list(port->done_head);
        while (port->conns != NULL) {
            struct conn_q *c = port->conns;
            port->conns = c->next;
            drop_list(c->wait_head);
            free(c);
        }
        krpc_loop_del_fd(port->loop, port->efd);
        close(port->efd);
        free(port);
    }
}

void nfs3__pool_free(struct nfsd_pool *p)
{
    if (p == NULL)
        return;
    nfs3__pool_shutdown(p);
    pthread_cond_destroy(&p->cond);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p->threads);
    free(p);
}

void nfs3__pool_sleep_ms(struct nfsd_pool *p, unsigned ms)
{
    struct timespec ts;

    if (p == NULL) {
        ts.tv_sec = ms / 1000;
        ts.tv_nsec = (long)(ms % 1000) * 1000000L;
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->lock);
    while (!p->stopping && pthread_cond_timedwait(&p->wake, &p->lock, &ts) == 0) {
    }
    pthread_mutex_unlock(&p->lock);
}
