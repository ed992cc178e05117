/*
 * tests/test_krpc_clnt_close.c - closing an RPC client is asynchronous, as
 * libuv's uv_close (krpc_clnt_close, krpc_clnt_free):
 *
 *   - outstanding calls complete with -ECANCELED inside krpc_clnt_close;
 *     the close callback runs exactly once, from the loop, never inside
 *     krpc_clnt_close, and only after the client's socket is closed;
 *   - a close from inside one of the client's reply callbacks waits for
 *     that callback to return;
 *   - krpc_loop_free right after closing clients with calls in flight (or
 *     with a close left pending by a callback) finishes the closes: the
 *     callbacks run, nothing leaks (LeakSanitizer in the ASan build);
 *   - no other object's callback runs inside krpc_clnt_free.
 *
 * The server runs on a loop thread of its own (krpc_svc_util.h), so the
 * test's loop holds nothing but the clients.
 */
#include <dirent.h>
#include <fcntl.h>

#include "krpc_svc_util.h"
#include "rpctls/krpc_clnt.h"
#include "test.h"

static struct test_server g_ts;

static void clnt_cfg(struct krpc_clnt_config *cc)
{
    memset(cc, 0, sizeof(*cc));
    krpc_parse_addr("127.0.0.1:0", &cc->addr, &cc->addrlen);
    ((struct sockaddr_in *)&cc->addr)->sin_port = htons(g_ts.port);
    cc->prog = TP_PROG;
    cc->vers = TP_VERS_LO;
    cc->timeout_ms = 5000;
    cc->reconnect_delay_ms = 10;
}

/* The client socket of this process connected to the test server (the
 * server's accepted sockets have the server's port as their own), or -1. */
static int client_socket(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int found = -1;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        struct sockaddr_in peer, self;
        socklen_t pl = sizeof(peer), sl = sizeof(self);
        int fd = atoi(e->d_name);
        if (e->d_name[0] == '.' || fd == dirfd(d))
            continue;
        if (getpeername(fd, (struct sockaddr *)&peer, &pl) == 0 && peer.sin_family == AF_INET &&
            ntohs(peer.sin_port) == g_ts.port && getsockname(fd, (struct sockaddr *)&self, &sl) == 0 &&
            ntohs(self.sin_port) != g_ts.port)
            found = fd;
    }
    closedir(d);
    return found;
}

/* ---- what the callbacks saw ------------------------------------------------ */

struct seen {
    int in_close;     /* set around krpc_clnt_close by the test */
    int in_reply_cb;  /* set while a reply callback of the client runs */
    int closes;       /* close callbacks run */
    int close_inside; /* close callbacks run inside krpc_clnt_close or a reply callback */
    int fd;           /* the client's socket */
    int fd_open_at_close; /* that socket was still open when the close callback ran */
    int cancelled;    /* calls that ended with -ECANCELED */
    int cancelled_inside_reply; /* ... while the reply callback still ran */
    int replies;
    int done;
    struct krpc_clnt *cl;
};

static void on_closed(struct krpc_clnt *cl, void *arg)
{
    struct seen *s = arg;

    (void)cl;
    s->closes++;
    if (s->in_close || s->in_reply_cb)
        s->close_inside++;
    if (s->fd >= 0 && fcntl(s->fd, F_GETFD) != -1)
        s->fd_open_at_close = 1;
    s->done = 1;
}

static void on_call(struct krpc_clnt *cl, int status, struct krpc_reply *reply, void *arg)
{
    struct seen *s = arg;

    (void)cl;
    (void)reply;
    if (status == -ECANCELED) {
        s->cancelled++;
        if (s->in_reply_cb)
            s->cancelled_inside_reply++;
    } else if (status == 0) {
        s->replies++;
    }
}

/* A call to TP_DEFER: answered after the server's defer_ms (long here). */
static int call_deferred(struct krpc_clnt *cl, struct seen *s)
{
    return krpc_call_async(cl, TP_DEFER, NULL, on_call, s, NULL);
}

/* ---- the close callback: once, from the loop, after the socket is gone ------ */

static void test_close_callback(void)
{
    struct krpc_loop *loop;
    struct krpc_clnt *cl;
    struct krpc_clnt_config cc;
    struct krpc_reply rep;
    struct seen s;

    memset(&s, 0, sizeof(s));
    REQUIRE(krpc_loop_new(&loop) == 0);
    clnt_cfg(&cc);
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    REQUIRE(krpc_call(cl, TP_NULL, NULL, &rep) == 0); /* connected */
    krpc_reply_free(&rep);
    s.fd = client_socket();
    REQUIRE(s.fd >= 0);
    CHECK(call_deferred(cl, &s) == 0);
    CHECK(call_deferred(cl, &s) == 0);
    krpc_loop_run(loop, NULL, 20); /* both sent */

    s.in_close = 1;
    krpc_clnt_close(cl, on_closed, &s);
    s.in_close = 0;
    CHECK_EQ(s.cancelled, 2); /* inside krpc_clnt_close */
    CHECK_EQ(s.closes, 0);    /* not inside it */
    CHECK(krpc_loop_run(loop, &s.done, 2000) == 0);
    CHECK_EQ(s.closes, 1);
    CHECK_EQ(s.close_inside, 0);
    CHECK_EQ(s.fd_open_at_close, 0);
    krpc_loop_run(loop, NULL, 50);
    CHECK_EQ(s.closes, 1); /* exactly once */
    krpc_loop_free(loop);
    CHECK_EQ(s.closes, 1);
}

/* A client that never connected (refused) closes the same way. */
static void test_close_unconnected(void)
{
    struct krpc_loop *loop;
    struct krpc_clnt *cl;
    struct krpc_clnt_config cc;
    struct seen s;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);

    memset(&s, 0, sizeof(s));
    s.fd = -1;
    /* A port nobody listens on: bound, never listening. */
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
            getsockname(fd, (struct sockaddr *)&sa, &sl) == 0);
    REQUIRE(krpc_loop_new(&loop) == 0);
    clnt_cfg(&cc);
    ((struct sockaddr_in *)&cc.addr)->sin_port = sa.sin_port;
    cc.max_reconnects = 1;
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    CHECK(krpc_call_async(cl, TP_NULL, NULL, on_call, &s, NULL) == 0);
    krpc_loop_run(loop, NULL, 200); /* refused: the call fails, no connection left */
    s.in_close = 1;
    krpc_clnt_close(cl, on_closed, &s);
    s.in_close = 0;
    CHECK_EQ(s.closes, 0);
    CHECK(krpc_loop_run(loop, &s.done, 2000) == 0);
    CHECK_EQ(s.closes, 1);
    CHECK_EQ(s.close_inside, 0);
    krpc_loop_free(loop);
    close(fd);
}

/* ---- closing from inside a reply callback --------------------------------------- */

static void close_in_reply(struct krpc_clnt *cl, int status, struct krpc_reply *reply, void *arg)
{
    struct seen *s = arg;

    (void)reply;
    if (status != 0)
        return;
    s->replies++;
    s->in_reply_cb = 1;
    krpc_clnt_close(cl, on_closed, s);
    krpc_clnt_close(cl, on_closed, s); /* again: ignored */
    /* Still usable until this callback returns; new calls are refused. */
    CHECK_EQ(krpc_call_async(cl, TP_NULL, NULL, on_call, s, NULL), -ECANCELED);
    s->in_reply_cb = 0;
}

static void test_close_in_reply_callback(void)
{
    struct krpc_loop *loop;
    struct krpc_clnt *cl;
    struct krpc_clnt_config cc;
    struct krpc_reply rep;
    struct seen s;

    memset(&s, 0, sizeof(s));
    REQUIRE(krpc_loop_new(&loop) == 0);
    clnt_cfg(&cc);
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    REQUIRE(krpc_call(cl, TP_NULL, NULL, &rep) == 0);
    krpc_reply_free(&rep);
    s.fd = client_socket();
    REQUIRE(s.fd >= 0);
    CHECK(call_deferred(cl, &s) == 0);
    CHECK(krpc_call_async(cl, TP_NULL, NULL, close_in_reply, &s, NULL) == 0);
    CHECK(krpc_loop_run(loop, &s.done, 3000) == 0);
    CHECK_EQ(s.replies, 1);
    CHECK_EQ(s.cancelled, 1);              /* the deferred call */
    CHECK_EQ(s.cancelled_inside_reply, 0); /* after the reply callback returned */
    CHECK_EQ(s.closes, 1);
    CHECK_EQ(s.close_inside, 0);
    CHECK_EQ(s.fd_open_at_close, 0);
    krpc_loop_free(loop);
    CHECK_EQ(s.closes, 1);
}

/* ---- freeing the loop right after closing its clients ----------------------------- */

static void close_and_stop(struct krpc_clnt *cl, int status, struct krpc_reply *reply, void *arg)
{
    struct seen *s = arg;

    (void)reply;
    if (status != 0)
        return;
    s->replies++;
    krpc_clnt_close(cl, on_closed, s);
    s->done = 1; /* krpc_loop_run returns before the loop finishes the close */
}

static void test_loop_free_finishes_closes(void)
{
    enum { N = 4 };
    struct krpc_loop *loop;
    struct krpc_clnt *cl[N];
    struct krpc_clnt_config cc;
    struct krpc_reply rep;
    struct seen s[N], stop;

    REQUIRE(krpc_loop_new(&loop) == 0);
    clnt_cfg(&cc);
    for (int i = 0; i < N; i++) {
        memset(&s[i], 0, sizeof(s[i]));
        s[i].fd = -1;
        REQUIRE(krpc_clnt_new(loop, &cc, &cl[i]) == 0);
    }
    /* 0: connected, calls in flight, freed; 1: the same, closed with a
     * callback; 2: connecting, a call queued; 3: connected, idle. */
    for (int i = 0; i < N; i++) {
        if (i == 2)
            continue;
        REQUIRE(krpc_call(cl[i], TP_NULL, NULL, &rep) == 0);
        krpc_reply_free(&rep);
    }
    for (int k = 0; k < 3; k++) {
        CHECK(call_deferred(cl[0], &s[0]) == 0);
        CHECK(call_deferred(cl[1], &s[1]) == 0);
    }
    CHECK(call_deferred(cl[2], &s[2]) == 0);
    krpc_loop_run(loop, NULL, 20);
    krpc_clnt_free(cl[0]);
    krpc_clnt_close(cl[1], on_closed, &s[1]);
    krpc_clnt_close(cl[2], on_closed, &s[2]);
    krpc_clnt_close(cl[3], on_closed, &s[3]);
    CHECK_EQ(s[0].cancelled, 3);
    CHECK_EQ(s[1].cancelled, 3);
    CHECK_EQ(s[2].cancelled, 1);
    for (int i = 1; i < N; i++)
        CHECK_EQ(s[i].closes, 0);
    krpc_loop_free(loop); /* no loop run in between */
    for (int i = 1; i < N; i++)
        CHECK_EQ(s[i].closes, 1);

    /* A close a reply callback started, left pending when krpc_loop_run
     * returned: krpc_loop_free finishes it too. */
    memset(&stop, 0, sizeof(stop));
    stop.fd = -1;
    REQUIRE(krpc_loop_new(&loop) == 0);
    REQUIRE(krpc_clnt_new(loop, &cc, &cl[0]) == 0);
    CHECK(call_deferred(cl[0], &stop) == 0);
    CHECK(krpc_call_async(cl[0], TP_NULL, NULL, close_and_stop, &stop, NULL) == 0);
    CHECK(krpc_loop_run(loop, &stop.done, 3000) == 0);
    CHECK_EQ(stop.replies, 1);
    CHECK_EQ(stop.cancelled, 1);
    CHECK_EQ(stop.closes, 0);
    krpc_loop_free(loop);
    CHECK_EQ(stop.closes, 1);
}

/* ---- nothing foreign runs inside krpc_clnt_free ---------------------------------- */

static void test_free_runs_nothing_else(void)
{
    struct krpc_loop *loop;
    struct krpc_clnt *a, *b;
    struct krpc_clnt_config cc;
    struct krpc_reply rep;
    struct seen sa, sb;
    struct timespec ts = {0, 200 * 1000 * 1000};

    memset(&sa, 0, sizeof(sa));
    memset(&sb, 0, sizeof(sb));
    REQUIRE(krpc_loop_new(&loop) == 0);
    clnt_cfg(&cc);
    REQUIRE(krpc_clnt_new(loop, &cc, &a) == 0);
    REQUIRE(krpc_clnt_new(loop, &cc, &b) == 0);
    REQUIRE(krpc_call(a, TP_NULL, NULL, &rep) == 0);
    krpc_reply_free(&rep);
    REQUIRE(krpc_call(b, TP_NULL, NULL, &rep) == 0);
    krpc_reply_free(&rep);
    CHECK(call_deferred(a, &sa) == 0);
    /* b's call goes out at once (connected); its reply then waits in b's
     * socket for the loop to read it. */
    CHECK(krpc_call_async(b, TP_NULL, NULL, on_call, &sb, NULL) == 0);
    nanosleep(&ts, NULL);
    krpc_clnt_free(a);
    CHECK_EQ(sa.cancelled, 1);
    CHECK_EQ(sb.replies, 0); /* b's reply was not read inside the free */
    krpc_loop_run(loop, NULL, 100);
    CHECK_EQ(sb.replies, 1); /* but it was there */
    krpc_clnt_free(b);
    krpc_loop_free(loop);
}

int main(void)
{
    struct krpc_svc_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    if (ts_start(&g_ts, &cfg) != 0) {
        fprintf(stderr, "cannot start the test server\n");
        return 1;
    }
    /* Deferred calls stay unanswered for the whole test. */
    ts_pause(&g_ts);
    g_ts.defer_ms = 60000;
    ts_resume(&g_ts);
    TEST_RUN(test_close_callback);
    TEST_RUN(test_close_unconnected);
    TEST_RUN(test_close_in_reply_callback);
    TEST_RUN(test_loop_free_finishes_closes);
    TEST_RUN(test_free_runs_nothing_else);
    ts_stop(&g_ts);
    CHECK_EQ(mb_pool_shutdown(), 0);
    return test_summary();
}
