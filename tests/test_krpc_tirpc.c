/*
 * tests/test_krpc_tirpc.c - our client against a libtirpc server built
 * here: a forked child runs svctcp_create + svc_register (protocol 0: no
 * rpcbind) + svc_run on a socket we bound to 127.0.0.1, port 0.
 *
 * The program has a procedure with structured arguments
 *     struct targs { int a; string s<1024>; int vals<100000>; }
 * returning
 *     struct tres  { int a2; int sum; string s_upper<>; int vals_reversed<>; }
 * and a WHOAMI procedure returning the AUTH_SYS credential as libtirpc saw
 * it. Our client calls it in plain TCP: single calls, many outstanding,
 * multi-fragment records both ways (libtirpc fragments large replies), and
 * the error replies libtirpc makes (PROC_UNAVAIL, PROG_MISMATCH,
 * GARBAGE_ARGS).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <rpc/rpc.h>

#include "rpctls/krpc_clnt.h"
#include "test.h"

#define TPROG 0x40000777u
#define TVERS 1
#define TVERS_HI 3
#define P_COMPUTE 1
#define P_WHOAMI 2
#define MAXVALS 100000

struct targs {
    int a;
    char *s;
    u_int nvals;
    int *vals;
};
struct tres {
    int a2;
    int sum;
    char *s;
    u_int nvals;
    int *vals;
};

static bool_t xdr_targs(XDR *x, struct targs *t)
{
    return xdr_int(x, &t->a) && xdr_string(x, &t->s, 1024) &&
           xdr_array(x, (char **)&t->vals, &t->nvals, MAXVALS, sizeof(int), (xdrproc_t)xdr_int);
}

static bool_t xdr_tres(XDR *x, struct tres *t)
{
    return xdr_int(x, &t->a2) && xdr_int(x, &t->sum) && xdr_string(x, &t->s, 2048) &&
           xdr_array(x, (char **)&t->vals, &t->nvals, MAXVALS, sizeof(int), (xdrproc_t)xdr_int);
}

static bool_t xdr_nothing(XDR *x, void *p)
{
    (void)x;
    (void)p;
    return TRUE;
}

/* ---- the libtirpc server (child process) ------------------------------------------ */

static void dispatch(struct svc_req *rq, SVCXPRT *xprt)
{
    switch (rq->rq_proc) {
    case 0:
        svc_sendreply(xprt, (xdrproc_t)xdr_nothing, NULL);
        return;
    case P_COMPUTE: {
        struct targs a;
        struct tres r;
        char up[1100];
        size_t i, n;
        memset(&a, 0, sizeof a);
        if (!svc_getargs(xprt, (xdrproc_t)xdr_targs, (char *)&a)) {
            svcerr_decode(xprt);
            return;
        }
        memset(&r, 0, sizeof r);
        r.a2 = a.a * 2;
        for (i = 0; i < a.nvals; i++)
            r.sum = (int)((unsigned)r.sum + (unsigned)a.vals[i]); /* wraps, like the check */
        n = strlen(a.s);
        for (i = 0; i < n && i < sizeof up - 2; i++)
            up[i] = (char)toupper((unsigned char)a.s[i]);
        up[i++] = '!';
        up[i] = '\0';
        r.s = up;
        r.nvals = a.nvals;
        r.vals = calloc(a.nvals ? a.nvals : 1, sizeof(int));
        for (i = 0; i < a.nvals; i++)
            r.vals[i] = a.vals[a.nvals - 1 - i];
        if (!svc_sendreply(xprt, (xdrproc_t)xdr_tres, (char *)&r))
            svcerr_systemerr(xprt);
        free(r.vals);
        svc_freeargs(xprt, (xdrproc_t)xdr_targs, (char *)&a);
        return;
    }
    case P_WHOAMI: {
        struct tres r;
        memset(&r, 0, sizeof r);
        r.s = "";
        r.a2 = (int)rq->rq_cred.oa_flavor;
        if (rq->rq_cred.oa_flavor == AUTH_SYS) {
            struct authunix_parms *p = (struct authunix_parms *)rq->rq_clntcred;
            r.sum = (int)p->aup_uid;
            r.s = p->aup_machname;
            r.nvals = p->aup_len;
            r.vals = (int *)p->aup_gids;
        }
        svc_sendreply(xprt, (xdrproc_t)xdr_tres, (char *)&r);
        return;
    }
    default:
        svcerr_noproc(xprt);
        return;
    }
}

static void child_main(int fd)
{
    SVCXPRT *xprt;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    xprt = svctcp_create(fd, 0, 0);
    if (!xprt)
        _exit(2);
    /* Protocol 0: do not talk to rpcbind. */
    if (!svc_register(xprt, TPROG, TVERS, dispatch, 0) || !svc_register(xprt, TPROG, TVERS_HI, dispatch, 0))
        _exit(3);
    svc_run();
    _exit(4);
}

static pid_t child;
static struct sockaddr_in srv_addr;

static int start_tirpc_server(void)
{
    socklen_t sl = sizeof srv_addr;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&srv_addr, 0, sizeof srv_addr);
    srv_addr.sin_family = AF_INET;
    srv_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&srv_addr, sizeof srv_addr) < 0 || listen(fd, 16) < 0 ||
        getsockname(fd, (struct sockaddr *)&srv_addr, &sl) < 0) {
        perror("tirpc server socket");
        return -1;
    }
    child = fork();
    if (child < 0) {
        perror("fork");
        return -1;
    }
    if (child == 0)
        child_main(fd);
    close(fd); /* the child accepts; connections queue in the backlog meanwhile */
    return 0;
}

static void stop_tirpc_server(void)
{
    int st;

    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, &st, 0);
    }
}

/* ---- our client -------------------------------------------------------------------- */

static void client_cfg(struct krpc_clnt_config *cc)
{
    memset(cc, 0, sizeof *cc);
    memcpy(&cc->addr, &srv_addr, sizeof srv_addr);
    cc->addrlen = sizeof srv_addr;
    cc->prog = TPROG;
    cc->vers = TVERS;
    cc->timeout_ms = 5000;
}

static void put_targs(struct mb_chain *c, int a, const char *s, const int *vals, uint32_t n)
{
    struct krpc_xdr_enc x;

    mb_chain_init(c);
    krpc_xdr_enc_init(&x, c);
    krpc_xdr_put_u32(&x, (uint32_t)a);
    krpc_xdr_put_string(&x, s);
    krpc_xdr_put_u32(&x, n);
    for (uint32_t i = 0; i < n; i++)
        krpc_xdr_put_u32(&x, (uint32_t)vals[i]);
}

/* Checks a COMPUTE reply against the arguments; 1 when everything matches. */
static int check_tres(struct krpc_reply *rep, int a, const char *s, const int *vals, uint32_t n)
{
    char got[2100], want[1100];
    unsigned sum = 0;
    int ok = 1;
    size_t i;

    if (krpc_reply_status(&rep->hdr, NULL, 0) != 0)
        return 0;
    for (i = 0; i < n; i++)
        sum += (unsigned)vals[i];
    for (i = 0; s[i]; i++)
        want[i] = (char)toupper((unsigned char)s[i]);
    want[i++] = '!';
    want[i] = '\0';
    ok &= (int)krpc_xdr_get_u32(&rep->res) == a * 2;
    ok &= krpc_xdr_get_u32(&rep->res) == sum;
    ok &= krpc_xdr_get_string(&rep->res, got, sizeof got) == 0 && strcmp(got, want) == 0;
    ok &= krpc_xdr_get_u32(&rep->res) == n;
    for (i = 0; i < n && ok; i++)
        ok &= (int)krpc_xdr_get_u32(&rep->res) == vals[n - 1 - i];
    ok &= krpc_xdr_dec_error(&rep->res) == 0 && krpc_xdr_remaining(&rep->res) == 0;
    return ok;
}

static void test_structured_call(void)
{
    struct krpc_loop *loop;
    struct krpc_clnt *cl;
    struct krpc_clnt_config cc;
    struct krpc_reply rep;
    struct mb_chain a;
    int vals[5] = {3, -1, 4, 1, 59};

    REQUIRE(krpc_loop_new(&loop) == 0);
    client_cfg(&cc);
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    CHECK(krpc_call(cl, 0, NULL, &rep) == 0);
    CHECK(krpc_reply_status(&rep.hdr, NULL, 0) == 0);
    krpc_reply_free(&rep);
    put_targs(&a, 21, "hello, tirpc", vals, 5);
    CHECK(krpc_call(cl, P_COMPUTE, &a, &rep) == 0);
    CHECK(check_tres(&rep, 21, "hello, tirpc", vals, 5));
    krpc_reply_free(&rep);
    /* Empty string and empty array. */
    put_targs(&a, -4, "", NULL, 0);
    CHECK(krpc_call(cl, P_COMPUTE, &a, &rep) == 0);
    CHECK(check_tres(&rep, -4, "", NULL, 0));
    krpc_reply_free(&rep);
    CHECK_EQ(krpc_clnt_stats(cl)->replies, 3);
    krpc_clnt_free(cl);
    krpc_loop_free(loop);
}

static void test_auth_sys(void)
{
    struct krpc_loop *loop;
    struct krpc_clnt *cl;
    struct krpc_clnt_config cc;
    struct krpc_reply rep;
    char m[300];

    REQUIRE(krpc_loop_new(&loop) == 0);
    client_cfg(&cc);
    cc.cred.flavor = KRPC_AUTH_SYS;
    cc.cred.stamp = 12345;
    snprintf(cc.cred.machine, sizeof cc.cred.machine, "krpc-client");
    cc.cred.uid = 1001;
    cc.cred.gid = 100;
    cc.cred.ngids = 2;
    cc.cred.gids[0] = 4;
    cc.cred.gids[1] = 27;
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    CHECK(krpc_call(cl, P_WHOAMI, NULL, &rep) == 0);
    CHECK(krpc_reply_status(&rep.hdr, NULL, 0) == 0);
    CHECK_EQ(krpc_xdr_get_u32(&rep.res), 1 /* AUTH_SYS */);
    CHECK_EQ(krpc_xdr_get_u32(&rep.res), 1001);
    CHECK(krpc_xdr_get_string(&rep.res, m, sizeof m) == 0 && strcmp(m, "krpc-client") == 0);
    CHECK_EQ(krpc_xdr_get_u32(&rep.res), 2);
    CHECK_EQ(krpc_xdr_get_u32(&rep.res), 4);
    CHECK_EQ(krpc_xdr_get_u32(&rep.res), 27);
    krpc_reply_free(&rep);
    krpc_clnt_free(cl);
    krpc_loop_free(loop);
}

/* Large arguments in 1000-byte fragments; libtirpc answers in its own fragments. */
static void test_fragments(void)
{
    struct krpc_loop *loop;
    struct krpc_clnt *cl;
    struct krpc_clnt_config cc;
    struct krpc_reply rep;
    struct mb_chain a;
    uint32_t n = 30000;
    int *vals = malloc(n * sizeof(int));

    REQUIRE(vals);
    for (uint32_t i = 0; i < n; i++)
        vals[i] = (int)(i * 2654435761u >> 7);
    REQUIRE(krpc_loop_new(&loop) == 0);
    client_cfg(&cc);
    cc.max_frag = 1000;
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    put_targs(&a, 7, "fragmented", vals, n);
    CHECK(krpc_call(cl, P_COMPUTE, &a, &rep) == 0);
    CHECK(check_tres(&rep, 7, "fragmented", vals, n));
    CHECK(rep.msg.len > n * 4);
    krpc_reply_free(&rep);
    krpc_clnt_free(cl);
    krpc_loop_free(loop);
    free(vals);
}

#define NASYNC 64
static struct {
    int done, completions, ok;
} A;

static void async_cb(struct krpc_clnt *cl, int status, struct krpc_reply *reply, void *arg)
{
    int i = (int)(intptr_t)arg, vals[3] = {i, i + 1, i + 2};
    char s[32];

    (void)cl;
    snprintf(s, sizeof s, "n%d", i);
    if (status == 0 && check_tres(reply, i, s, vals, 3))
        A.ok++;
    if (++A.completions == NASYNC)
        A.done = 1;
}

static void test_many_outstanding(void)
{
    struct krpc_loop *loop;
    struct krpc_clnt *cl;
    struct krpc_clnt_config cc;

    REQUIRE(krpc_loop_new(&loop) == 0);
    client_cfg(&cc);
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    memset(&A, 0, sizeof A);
    for (int i = 0; i < NASYNC; i++) {
        struct mb_chain a;
        int vals[3] = {i, i + 1, i + 2};
        char s[32];
        snprintf(s, sizeof s, "n%d", i);
        put_targs(&a, i, s, vals, 3);
        CHECK(krpc_call_async(cl, P_COMPUTE, &a, async_cb, (void *)(intptr_t)i, NULL) == 0);
    }
    CHECK(krpc_loop_run(loop, &A.done, 30000) == 0);
    CHECK_EQ(A.ok, NASYNC);
    krpc_clnt_free(cl);
    krpc_loop_free(loop);
}

static void test_tirpc_errors(void)
{
    struct krpc_loop *loop;
    struct krpc_clnt *cl;
    struct krpc_clnt_config cc;
    struct krpc_reply rep;
    struct mb_chain a;
    char buf[128];

    REQUIRE(krpc_loop_new(&loop) == 0);
    client_cfg(&cc);
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    CHECK(krpc_call(cl, 42, NULL, &rep) == 0);
    CHECK(krpc_reply_status(&rep.hdr, buf, sizeof buf) == -EOPNOTSUPP);
    krpc_reply_free(&rep);
    /* Truncated arguments: GARBAGE_ARGS. */
    mb_chain_init(&a);
    mb_chain_append_bytes(&a, "\0\0\0\1", 4);
    CHECK(krpc_call(cl, P_COMPUTE, &a, &rep) == 0);
    CHECK(krpc_reply_status(&rep.hdr, buf, sizeof buf) == -EINVAL);
    CHECK(strstr(buf, "GARBAGE_ARGS") != NULL);
    krpc_reply_free(&rep);
    krpc_clnt_free(cl);

    cc.vers = 2;
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    CHECK(krpc_call(cl, 0, NULL, &rep) == 0);
    CHECK(krpc_reply_status(&rep.hdr, buf, sizeof buf) == -EPROTONOSUPPORT);
    CHECK(strcmp(buf, "PROG_MISMATCH (supported 1..3)") == 0);
    krpc_reply_free(&rep);
    krpc_clnt_free(cl);
    krpc_loop_free(loop);
}

/* libtirpc does not know AUTH_TLS: the probe is refused, so a client that
 * requires TLS fails clearly and an opportunistic one carries on in plain. */
static void test_tls_probe(void)
{
    struct krpc_loop *loop;
    struct krpc_clnt *cl;
    struct krpc_clnt_config cc;
    struct krpc_reply rep;
    struct mb_chain a;
    int vals[2] = {5, 6};

    REQUIRE(krpc_loop_new(&loop) == 0);
    client_cfg(&cc);
    cc.tls = KRPC_TLS_REQUIRED;
    cc.name = "tirpc";
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    CHECK(krpc_call(cl, 0, NULL, &rep) == -EPROTONOSUPPORT);
    fprintf(stderr, "  required: %s\n", krpc_clnt_last_error(cl));
    CHECK(strstr(krpc_clnt_last_error(cl), "tirpc does not offer RPC-with-TLS (reply: ") != NULL);
    krpc_clnt_free(cl);

    cc.tls = KRPC_TLS_OPPORTUNISTIC;
    REQUIRE(krpc_clnt_new(loop, &cc, &cl) == 0);
    put_targs(&a, 3, "opportunistic", vals, 2);
    CHECK(krpc_call(cl, P_COMPUTE, &a, &rep) == 0);
    CHECK(check_tres(&rep, 3, "opportunistic", vals, 2));
    krpc_reply_free(&rep);
    CHECK(!krpc_clnt_is_tls(cl));
    krpc_clnt_free(cl);
    krpc_loop_free(loop);
}

int main(void)
{
    if (start_tirpc_server() < 0) {
        CHECK(0);
        return test_summary();
    }
    TEST_RUN(test_structured_call);
    TEST_RUN(test_auth_sys);
    TEST_RUN(test_fragments);
    TEST_RUN(test_many_outstanding);
    TEST_RUN(test_tirpc_errors);
    TEST_RUN(test_tls_probe);
    stop_tirpc_server();
    CHECK_EQ(mb_pool_shutdown(), 0);
    return test_summary();
}
