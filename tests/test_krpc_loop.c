/*
 * test_krpc_loop.c - the epoll event loop: timer order, cancel and re-arm
 * from callbacks, fd removal from another fd's callback, stop from another
 * thread, run timeouts; krpc_loop_free finishing the close timers still
 * armed (and those they arm) and running no other timer.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rpctls/krpc.h"
#include "test.h"

/* ---- timers fire in due order, ties in arm order ------------------------- */

struct order_log {
    int seq[64];
    int n;
};

struct order_timer {
    struct krpc_timer t;
    struct order_log *log;
    int id;
};

static void order_fn(struct krpc_loop *loop, struct krpc_timer *t, void *arg)
{
    struct order_timer *ot = arg;
    CHECK(!t->armed);
    if (ot->log->n < 64)
        ot->log->seq[ot->log->n++] = ot->id;
}

static void test_timer_order(void)
{
    struct krpc_loop *loop;
    struct order_log log = {{0}, 0};
    struct order_timer ts[8];
    /* delays in ms; ids are the expected firing rank */
    const uint64_t delay[8] = {40, 10, 30, 0, 20, 30, 50, 0};
    const int expect[8] = {3, 7, 1, 4, 2, 5, 0, 6};
    int done = 0;

    REQUIRE(krpc_loop_new(&loop) == 0);
    for (int i = 0; i < 8; i++) {
        ts[i].log = &log;
        ts[i].id = i;
        krpc_timer_init(&ts[i].t, order_fn, &ts[i]);
        CHECK(krpc_timer_arm(loop, &ts[i].t, delay[i]) == 0);
        CHECK(ts[i].t.armed);
    }
    CHECK_EQ(krpc_loop_run(loop, &done, 200), -ETIMEDOUT);
    CHECK_EQ(log.n, 8);
    for (int i = 0; i < 8 && i < log.n; i++)
        CHECK_EQ(log.seq[i], expect[i]);

    /* Re-arming an armed timer moves it. */
    log.n = 0;
    CHECK(krpc_timer_arm(loop, &ts[0].t, 5) == 0);
    CHECK(krpc_timer_arm(loop, &ts[1].t, 10) == 0);
    CHECK(krpc_timer_arm(loop, &ts[0].t, 30) == 0);
    CHECK(krpc_loop_run(loop, &done, 100) == -ETIMEDOUT);
    CHECK_EQ(log.n, 2);
    CHECK_EQ(log.seq[0], 1);
    CHECK_EQ(log.seq[1], 0);
    krpc_loop_free(loop);
}

/* Firing order through a callback that records due times. */
struct due_rec {
    struct krpc_timer t;
    uint64_t *last;
    int *bad;
    int *n;
};

static void due_fn(struct krpc_loop *loop, struct krpc_timer *t, void *arg)
{
    struct due_rec *d = arg;
    if (t->due_ms < *d->last)
        (*d->bad)++;
    *d->last = t->due_ms;
    (*d->n)++;
}

static void test_timer_heap_order(void)
{
    enum { N = 400 };
    static struct due_rec ts[N];
    struct krpc_loop *loop;
    uint32_t rnd = 777;
    uint64_t last = 0;
    int bad = 0, n = 0, cancelled = 0;

    REQUIRE(krpc_loop_new(&loop) == 0);
    for (int i = 0; i < N; i++) {
        ts[i].last = &last;
        ts[i].bad = &bad;
        ts[i].n = &n;
        krpc_timer_init(&ts[i].t, due_fn, &ts[i]);
        rnd = rnd * 1103515245u + 12345u;
        CHECK(krpc_timer_arm(loop, &ts[i].t, (rnd >> 16) % 60) == 0);
    }
    for (int i = 0; i < N; i += 4) {
        krpc_timer_cancel(loop, &ts[i].t);
        cancelled++;
    }
    krpc_timer_cancel(loop, &ts[0].t); /* twice: harmless */
    CHECK(krpc_loop_run(loop, NULL, 150) == -ETIMEDOUT);
    CHECK_EQ(bad, 0);
    CHECK_EQ(n, N - cancelled);
    krpc_loop_free(loop);
}

/* ---- cancel / re-arm inside callbacks ------------------------------------ */

struct rearm_ctx {
    struct krpc_timer a, b, c;
    int a_count, b_count, c_count;
    int done;
};

static void rearm_a(struct krpc_loop *loop, struct krpc_timer *t, void *arg)
{
    struct rearm_ctx *x = arg;
    x->a_count++;
    if (x->a_count == 1)
        krpc_timer_cancel(loop, &x->b); /* b was due in the same pass */
    if (x->a_count < 5)
        CHECK(krpc_timer_arm(loop, t, 0) == 0); /* zero delay: next pass, not this one */
    else
        x->done = 1;
}

static void rearm_b(struct krpc_loop *loop, struct krpc_timer *t, void *arg)
{
    struct rearm_ctx *x = arg;
    x->b_count++;
}

static void rearm_c(struct krpc_loop *loop, struct krpc_timer *t, void *arg)
{
    struct rearm_ctx *x = arg;
    x->c_count++;
    /* re-arm a timer that has fired, from its own callback, with a delay */
    if (x->c_count < 3)
        CHECK(krpc_timer_arm(loop, t, 2) == 0);
}

static void test_timer_rearm_cancel(void)
{
    struct krpc_loop *loop;
    struct rearm_ctx x;
    int n;

    memset(&x, 0, sizeof(x));
    REQUIRE(krpc_loop_new(&loop) == 0);
    krpc_timer_init(&x.a, rearm_a, &x);
    krpc_timer_init(&x.b, rearm_b, &x);
    krpc_timer_init(&x.c, rearm_c, &x);
    CHECK(krpc_timer_arm(loop, &x.a, 0) == 0);
    CHECK(krpc_timer_arm(loop, &x.b, 0) == 0);
    CHECK(krpc_timer_arm(loop, &x.c, 1) == 0);
    usleep(3000);
    /* One pass fires a once (its zero-delay re-arm waits for the next pass),
     * and b never (a cancelled it). */
    n = krpc_loop_run_once(loop, 0);
    CHECK(n >= 1);
    CHECK_EQ(x.a_count, 1);
    CHECK_EQ(x.b_count, 0);
    CHECK(krpc_loop_run(loop, &x.done, 2000) == 0);
    CHECK_EQ(x.a_count, 5);
    CHECK_EQ(x.b_count, 0);
    CHECK(krpc_loop_run(loop, NULL, 50) == -ETIMEDOUT);
    CHECK_EQ(x.c_count, 3);
    CHECK(!x.a.armed && !x.b.armed && !x.c.armed);
    krpc_loop_free(loop);
}

/* ---- fds ------------------------------------------------------------------ */

struct fd_ctx {
    int pa[2], pb[2]; /* socketpairs: [0] watched, [1] written */
    int a_calls, b_calls;
    int del_b_from_a; /* a's callback removes b (and closes it) */
    int readd_b;      /* ... then registers a fresh fd with b's old number */
    int new_calls;
};

static void fd_new_cb(struct krpc_loop *loop, int fd, uint32_t events, void *arg)
{
    struct fd_ctx *x = arg;
    x->new_calls++;
}

static void fd_b_cb(struct krpc_loop *loop, int fd, uint32_t events, void *arg)
{
    struct fd_ctx *x = arg;
    char buf[64];
    x->b_calls++;
    if (read(fd, buf, sizeof(buf)) < 0) {
    }
}

static void fd_a_cb(struct krpc_loop *loop, int fd, uint32_t events, void *arg)
{
    struct fd_ctx *x = arg;
    char buf[64];

    x->a_calls++;
    CHECK(events & EPOLLIN);
    if (read(fd, buf, sizeof(buf)) < 0) {
    }
    if (x->del_b_from_a && x->pb[0] >= 0) {
        int old = x->pb[0];
        CHECK(krpc_loop_del_fd(loop, old) == 0);
        close(old);
        x->pb[0] = -1;
        if (x->readd_b) {
            int p[2];
            /* the new pair takes the lowest free numbers: the old one */
            CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, p) == 0);
            CHECK(krpc_loop_add_fd(loop, p[0], EPOLLIN, fd_new_cb, x) == 0);
            x->pb[0] = p[0];
            close(x->pb[1]);
            x->pb[1] = p[1];
        }
    }
}

static void test_fd_removal_in_callback(void)
{
    struct krpc_loop *loop;

    for (int readd = 0; readd < 2; readd++) {
        struct fd_ctx x;
        memset(&x, 0, sizeof(x));
        REQUIRE(krpc_loop_new(&loop) == 0);
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, x.pa) == 0);
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, x.pb) == 0);
        CHECK(krpc_loop_add_fd(loop, x.pa[0], EPOLLIN, fd_a_cb, &x) == 0);
        CHECK(krpc_loop_add_fd(loop, x.pb[0], EPOLLIN, fd_b_cb, &x) == 0);
        CHECK(krpc_loop_add_fd(loop, x.pb[0], EPOLLIN, fd_b_cb, &x) == -EEXIST);
        x.del_b_from_a = 1;
        x.readd_b = readd;
        /* Both readable before the wait: one epoll_wait returns both. */
        CHECK(write(x.pb[1], "b", 1) == 1);
        CHECK(write(x.pa[1], "a", 1) == 1);
        /* Whichever comes first, b's callback must not run after a removed it. */
        for (int i = 0; i < 3; i++)
            CHECK(krpc_loop_run_once(loop, 20) >= 0);
        CHECK_EQ(x.a_calls, 1);
        CHECK(x.b_calls <= 1);
        CHECK_EQ(x.new_calls, 0); /* the stale event did not reach the new fd */
        if (x.b_calls == 0) {
            /* a ran first: b's already-fetched event was skipped */
        }
        /* mod_fd / del_fd on unknown fds */
        CHECK(krpc_loop_mod_fd(loop, 1000, EPOLLIN) == -ENOENT);
        CHECK(krpc_loop_del_fd(loop, 1000) == -ENOENT);
        CHECK(krpc_loop_del_fd(loop, x.pa[0]) == 0);
        if (x.pb[0] >= 0) {
            /* the new registration works */
            CHECK(write(x.pb[1], "n", 1) == 1);
            CHECK(krpc_loop_run_once(loop, 100) == 1);
            CHECK_EQ(x.new_calls, 1);
            CHECK(krpc_loop_del_fd(loop, x.pb[0]) == 0);
            close(x.pb[0]);
        }
        close(x.pa[0]);
        close(x.pa[1]);
        close(x.pb[1]);
        krpc_loop_free(loop);
    }
}

/* Removal of an fd whose event was fetched in the same batch, when the
 * removed fd's event is ordered after the remover's: runs many rounds so
 * both orders occur. */
struct mutual {
    int p[2][2];
    int calls[2];
    int removed[2];
};

static void mutual_cb(struct krpc_loop *loop, int fd, uint32_t events, void *arg)
{
    struct mutual *m = arg;
    int me = fd == m->p[0][0] ? 0 : 1, other = 1 - me;
    char c;

    CHECK(!m->removed[me]);
    m->calls[me]++;
    if (read(fd, &c, 1) < 0) {
    }
    if (!m->removed[other]) {
        CHECK(krpc_loop_del_fd(loop, m->p[other][0]) == 0);
        m->removed[other] = 1;
    }
}

static void test_fd_mutual_removal(void)
{
    struct krpc_loop *loop;

    REQUIRE(krpc_loop_new(&loop) == 0);
    for (int round = 0; round < 20; round++) {
        struct mutual m;
        memset(&m, 0, sizeof(m));
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, m.p[0]) == 0);
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, m.p[1]) == 0);
        CHECK(krpc_loop_add_fd(loop, m.p[round & 1][0], EPOLLIN, mutual_cb, &m) == 0);
        CHECK(krpc_loop_add_fd(loop, m.p[!(round & 1)][0], EPOLLIN, mutual_cb, &m) == 0);
        CHECK(write(m.p[0][1], "x", 1) == 1);
        CHECK(write(m.p[1][1], "y", 1) == 1);
        CHECK_EQ(krpc_loop_run_once(loop, 100), 1); /* exactly one callback ran */
        CHECK_EQ(m.calls[0] + m.calls[1], 1);
        for (int i = 0; i < 2; i++) {
            if (!m.removed[i])
                CHECK(krpc_loop_del_fd(loop, m.p[i][0]) == 0);
            close(m.p[i][0]);
            close(m.p[i][1]);
        }
    }
    krpc_loop_free(loop);
}

/* ---- stop from another thread, timeouts ----------------------------------- */

struct stopper {
    struct krpc_loop *loop;
    int delay_ms;
};

static void *stop_thread(void *arg)
{
    struct stopper *s = arg;
    usleep((useconds_t)s->delay_ms * 1000);
    krpc_loop_stop(s->loop);
    return NULL;
}

static void test_stop_from_thread(void)
{
    struct krpc_loop *loop;
    struct stopper s;
    pthread_t th;
    uint64_t t0, dt;

    REQUIRE(krpc_loop_new(&loop) == 0);
    s.loop = loop;
    s.delay_ms = 50;
    t0 = krpc_now_ms();
    REQUIRE(pthread_create(&th, NULL, stop_thread, &s) == 0);
    CHECK_EQ(krpc_loop_run(loop, NULL, -1), 0); /* nothing registered: only stop ends it */
    dt = krpc_now_ms() - t0;
    pthread_join(th, NULL);
    CHECK(dt >= 40 && dt < 5000);

    /* With a long timeout too. */
    t0 = krpc_now_ms();
    REQUIRE(pthread_create(&th, NULL, stop_thread, &s) == 0);
    CHECK_EQ(krpc_loop_run(loop, NULL, 10000), 0);
    dt = krpc_now_ms() - t0;
    pthread_join(th, NULL);
    CHECK(dt < 5000);
    krpc_loop_free(loop);
}

static void set_flag(struct krpc_loop *loop, struct krpc_timer *t, void *arg)
{
    *(int *)arg = 1;
}

static void test_run_timeout(void)
{
    struct krpc_loop *loop;
    struct krpc_timer t;
    int done = 0;
    uint64_t t0, dt;

    REQUIRE(krpc_loop_new(&loop) == 0);
    t0 = krpc_now_ms();
    CHECK_EQ(krpc_loop_run(loop, &done, 60), -ETIMEDOUT);
    dt = krpc_now_ms() - t0;
    CHECK(dt >= 59 && dt < 2000);
    CHECK_EQ(krpc_loop_run_once(loop, 10), 0);

    /* done set by a timer ends the run with 0 before the timeout */
    krpc_timer_init(&t, set_flag, &done);
    CHECK(krpc_timer_arm(loop, &t, 20) == 0);
    t0 = krpc_now_ms();
    CHECK_EQ(krpc_loop_run(loop, &done, 5000), 0);
    dt = krpc_now_ms() - t0;
    CHECK(done == 1 && dt >= 19 && dt < 2000);

    /* a timer due after the timeout does not fire */
    done = 0;
    CHECK(krpc_timer_arm(loop, &t, 1000) == 0);
    CHECK_EQ(krpc_loop_run(loop, &done, 30), -ETIMEDOUT);
    CHECK_EQ(done, 0);
    krpc_timer_cancel(loop, &t);
    CHECK(!t.armed);
    /* already done: returns at once */
    done = 1;
    CHECK_EQ(krpc_loop_run(loop, &done, -1), 0);
    krpc_loop_free(loop);

    /* the clock is monotonic and in ms */
    t0 = krpc_now_ms();
    usleep(20000);
    dt = krpc_now_ms() - t0;
    CHECK(dt >= 19 && dt < 1000);
}

/* ---- krpc_loop_free runs close timers, and only those -------------------- */

struct close_obj {
    struct krpc_timer t;
    struct order_log *log;
    int id;
    struct close_obj *next_to_close; /* armed by this one's close: a client after its connection */
    struct krpc_loop *loop;
};

static void close_obj_fn(struct krpc_loop *loop, struct krpc_timer *t, void *arg)
{
    struct close_obj *o = arg;

    CHECK(loop == o->loop);
    CHECK(!t->armed);
    if (o->log->n < 64)
        o->log->seq[o->log->n++] = o->id;
    if (o->next_to_close != NULL)
        CHECK(krpc_timer_arm(loop, &o->next_to_close->t, 0) == 0);
}

static void test_free_finishes_closes(void)
{
    struct krpc_loop *loop;
    struct order_log log;
    struct close_obj c[4];
    struct order_timer plain;

    memset(&log, 0, sizeof(log));
    memset(c, 0, sizeof(c));
    REQUIRE(krpc_loop_new(&loop) == 0);
    for (int i = 0; i < 4; i++) {
        krpc_timer_init_close(&c[i].t, close_obj_fn, &c[i]);
        c[i].log = &log;
        c[i].id = i + 1;
        c[i].loop = loop;
    }
    /* 1 due in an hour, 2 now and arming 4 (not armed itself), 3 in a minute. */
    c[1].next_to_close = &c[3];
    CHECK(krpc_timer_arm(loop, &c[0].t, 3600000) == 0);
    CHECK(krpc_timer_arm(loop, &c[1].t, 0) == 0);
    CHECK(krpc_timer_arm(loop, &c[2].t, 60000) == 0);
    /* An ordinary timer is dropped, not run. */
    krpc_timer_init(&plain.t, order_fn, &plain);
    plain.log = &log;
    plain.id = 99;
    CHECK(krpc_timer_arm(loop, &plain.t, 0) == 0);
    krpc_loop_free(loop);
    CHECK_EQ(log.n, 4);
    CHECK_EQ(log.seq[0], 2);
    CHECK_EQ(log.seq[1], 4); /* armed by 2 with delay 0: due before 3 and 1 */
    CHECK_EQ(log.seq[2], 3);
    CHECK_EQ(log.seq[3], 1);
    CHECK(!plain.t.armed);
    for (int i = 0; i < 4; i++)
        CHECK(!c[i].t.armed);
}

int main(void)
{
    TEST_RUN(test_timer_order);
    TEST_RUN(test_timer_heap_order);
    TEST_RUN(test_timer_rearm_cancel);
    TEST_RUN(test_fd_removal_in_callback);
    TEST_RUN(test_fd_mutual_removal);
    TEST_RUN(test_stop_from_thread);
    TEST_RUN(test_run_timeout);
    TEST_RUN(test_free_finishes_closes);
    return test_summary();
}
