/*
 * svc.c - the RPC server: listener, per-connection state, dispatch with the
 * RFC 5531 errors, RFC 9289 STARTTLS, limits and the idle timeout. The
 * duplicate-request cache is in drc.c. docs/krpc-server.md has the policy
 * decisions; the comments here give the reasons in brief.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <pthread.h>
#include <unistd.h>

#include "krpc/drc.h"
#include "krpc/svc_int.h"

#define SVC_DEF_MAX_CONNS 4096
#define SVC_DEF_MAX_UNAUTH 256
#define SVC_DEF_MAX_MEMORY (1ull << 30)
#define SVC_DEF_MAX_OUTSTANDING 64
#define SVC_DEF_IDLE_MS 300000
#define SVC_DEF_SLOW_GRACE_MS 30000 /* slow-message check: the grace period */
#define SVC_DEF_SLOW_MIN_RATE 1024  /* and the minimum rate, bytes per second */
#define SVC_DEF_DRC 1024
#define SVC_DEF_HS_MS 10000
#define SVC_ACCEPT_BACKOFF_MS 100
/* Unsent reply bytes per outstanding-call slot before calls are dropped. */
#define SVC_QUEUE_PER_CALL (1u << 20)
/* Before TLS under _REQUIRED only the probe (40 bytes), NULL calls and calls
 * of KRPC_PROG_PLAIN_OK programs (MOUNT) are served, so a stranger's message
 * is held to what those need (RFC 5531 bounds credential and verifier bodies
 * at 400 bytes each): a call header of 24 bytes, credential and verifier of
 * 8 + 400 each, 840 bytes in all, is a NULL call's largest; a MNT adds a
 * path of at most MNTPATHLEN 1024 bytes and its length, 1,868 in all. */
#define SVC_PRETLS_NULL_MAX 1024u
#define SVC_PRETLS_PLAIN_OK_MAX 2048u
/* Receive store of a connection not yet authenticated: one page, so an idle
 * or dripping stranger pins 4 KiB, not 64 KiB. */
#define SVC_UNAUTH_RX_CHUNK 4096u
/* A connection holding no more than this is never cut for max_memory. */
#define SVC_MEM_FLOOR (64u * 1024)
/* Connection log lines (refused, cut) per second, then a summary. */
#define SVC_LOG_PER_SEC 20

#define ST_ADD(svc, f, n) __atomic_add_fetch(&(svc)->st.f, (uint64_t)(n), __ATOMIC_RELAXED)
#define ST_INC(svc, f) ST_ADD(svc, f, 1)
#define ST_DEC(svc, f) __atomic_sub_fetch(&(svc)->st.f, 1, __ATOMIC_RELAXED)

/* Where a server connection is (struct svc_conn.state). */
enum svc_conn_state { SC_PLAIN = 0, SC_HANDSHAKE = 1, SC_TLS = 2 };

struct svc_loop;

struct svc_conn {
    struct krpc_svc *svc; /* NULL once krpc_svc_free has let go of it */
    struct svc_loop *sl;  /* the loop it lives on */
    struct krpc_conn *c;
    struct svc_conn *prev, *next;   /* sl->conns */
    struct svc_conn *uprev, *unext; /* sl's not-yet-authenticated list, oldest first */
    struct sockaddr_storage peer;
    socklen_t peerlen;
    char peerstr[64];
    enum svc_conn_state state;
    int unauth;      /* not yet authenticated: on the list above, under the handshake deadline */
    int closing;     /* krpc_conn_close was called; on_close is due */
    int counted;     /* the close is already counted (malformed, idle, TLS failure) */
    unsigned deferred; /* calls of this connection waiting for krpc_svc_reply */
    struct krpc_timer timer; /* handshake deadline and idle check */
    uint64_t accepted_ms;    /* when accepted: the handshake deadline counts from here */
    uint64_t last_active_ms; /* last activity the idle check knows of */
};

/* A call handed to a handler. pub comes first: krpc_svc_reply gets &pub. */
struct svc_req {
    struct krpc_svc_req pub;
    struct svc_req *prev, *next; /* the loop's list of deferred calls */
    char subject[]; /* then the peer's user: pub.peer_user points after the subject's NUL */
};

/* An accepted socket on its way to another loop. */
struct svc_handoff {
    int fd;
    struct sockaddr_storage ss;
    socklen_t sslen;
    struct svc_handoff *next;
};

/* One event loop of the server and what lives on it. Everything but the
 * hand-off queue and nconns belongs to that loop's thread. */
struct svc_loop {
    struct krpc_svc *svc;
    struct krpc_loop *loop; /* NULL for a detached server */
    int owned;              /* made (and freed) by the server */
    pthread_t thread;
    int thread_running;
    int efd;                /* eventfd: the hand-off queue has sockets */
    pthread_mutex_t qlock;
    struct svc_handoff *qhead, *qtail;
    struct svc_conn *conns;
    struct svc_conn *uhead, *utail; /* not yet authenticated, oldest first */
    unsigned nunauth;
    unsigned nconns;        /* atomic: the accepting thread balances by it */
    struct svc_req *deferred;
    unsigned ndeferred;     /* atomic: krpc__svc_deferred sums it */
};

/* Rate limit of connection log lines, shared by the loops. */
struct svc_ratelimit {
    pthread_mutex_t lock;
    uint64_t second;
    unsigned lines;
    uint64_t suppressed; /* since the last line printed */
};

struct krpc_svc {
    struct krpc_svc_config cfg;
    struct ktls_config tlscfg;
    char *tls_strs[5];
    /* The TLS context new connections get; a reload replaces it, and
     * handshakes already made from the old one keep their reference. */
    pthread_mutex_t tls_lock;
    struct ktls_ctx *tls_ctx;
    int lfd;
    struct krpc_timer accept_timer; /* re-enables accept after EMFILE */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    struct krpc_prog_desc *progs; /* fixed once loops run */
    size_t nprogs, progcap;
    struct krpc_drc *drc;         /* one cache for every loop (it locks) */
    struct svc_loop *loops;       /* loops[0]: the caller's loop */
    unsigned nloops;
    int started;                  /* atomic: the other loops run; hand connections to them */
    unsigned rr;                  /* where the next balancing search starts */
    unsigned nconns;              /* atomic: connections on every loop, reserved at accept */
    unsigned unauth_share;        /* max_unauth_conns per loop */
    struct krpc_membudget mem;
    pthread_mutex_t handler_lock; /* handlers of programs without KRPC_PROG_MT_SAFE */
    struct svc_ratelimit rl;
    size_t queue_limit;
    struct krpc_svc_stats st;     /* atomic counters */
    struct krpc_svc_stats snap;   /* what krpc_svc_stats() last returned */
    void (*free_hook)(void *arg); /* krpc_svc_set_free_hook */
    void *free_hook_arg;
};

/* ---- replies ------------------------------------------------------------ */

/* Appends an accepted reply (header, then res by reference when given) to
 * out. Returns 0 or -ENOMEM (out is then left empty). */
static int put_accepted(struct mb_chain *out, uint32_t xid, uint32_t stat, const char *verf, uint32_t lo,
                        uint32_t hi, struct mb_chain *res)
{
    struct krpc_reply_hdr h;
    struct krpc_xdr_enc x;
    struct mb_chain hdr = MB_CHAIN_INIT;

    memset(&h, 0, sizeof(h));
    h.xid = xid;
    h.reply_stat = KRPC_MSG_ACCEPTED;
    h.accept_stat = stat;
    h.verf_flavor = KRPC_AUTH_NONE;
    if (verf != NULL) {
        h.verf_len = (uint32_t)strlen(verf);
        memcpy(h.verf, verf, h.verf_len);
    }
    h.mismatch_low = lo;
    h.mismatch_high = hi;
    krpc_xdr_enc_init(&x, &hdr);
    krpc_encode_reply_hdr(&x, &h);
    if (krpc_xdr_enc_error(&x) != 0) {
        mb_chain_free(&hdr);
        if (res != NULL)
            mb_chain_free(res);
        return -ENOMEM;
    }
    mb_chain_concat(out, &hdr);
    if (res != NULL)
        mb_chain_concat(out, res);
    return 0;
}

static int put_denied(struct mb_chain *out, uint32_t xid, uint32_t reject, uint32_t auth)
{
    struct krpc_reply_hdr h;
    struct krpc_xdr_enc x;
    struct mb_chain hdr = MB_CHAIN_INIT;

    memset(&h, 0, sizeof(h));
    h.xid = xid;
    h.reply_stat = KRPC_MSG_DENIED;
    h.reject_stat = reject;
    h.auth_stat = auth;
    h.mismatch_low = h.mismatch_high = KRPC_RPCVERS;
    krpc_xdr_enc_init(&x, &hdr);
    krpc_encode_reply_hdr(&x, &h);
    if (krpc_xdr_enc_error(&x) != 0) {
        mb_chain_free(&hdr);
        return -ENOMEM;
    }
    mb_chain_concat(out, &hdr);
    return 0;
}

/* The reply for a handler's status; res is consumed. Counts the errors. */
static int put_result(struct krpc_svc *svc, struct mb_chain *out, uint32_t xid, int status, struct mb_chain *res,
                      const char *what)
{
    switch (status) {
    case KRPC_SUCCESS:
        return put_accepted(out, xid, KRPC_SUCCESS, NULL, 0, 0, res);
    case KRPC_GARBAGE_ARGS:
        ST_INC(svc, garbage_args);
        break;
    case KRPC_SVC_AUTH_TOOWEAK:
        ST_INC(svc, auth_tooweak);
        if (res != NULL)
            mb_chain_free(res);
        return put_denied(out, xid, KRPC_AUTH_ERROR, KRPC_AUTH_TOOWEAK);
    default:
        krpc_log(KRPC_LOG_WARN, "rpc server: %s returned %d; answering SYSTEM_ERR", what, status);
        /* fall through */
    case KRPC_SYSTEM_ERR:
        status = KRPC_SYSTEM_ERR;
        ST_INC(svc, system_err);
        break;
    }
    if (res != NULL)
        mb_chain_free(res);
    return put_accepted(out, xid, (uint32_t)status, NULL, 0, 0, NULL);
}

/* ---- dispatch ----------------------------------------------------------- */

struct call_src {
    struct svc_loop *sl; /* the loop the call arrived on */
    struct svc_conn *sc; /* NULL: detached dispatch */
    const struct sockaddr *peer;
    socklen_t peerlen;
    const char *peerstr;
    int tls;
    const char *subject;
    const char *user; /* from the client certificate, "" if none */
};

static const char *req_what(char *buf, size_t len, const struct krpc_call_hdr *h, const char *name)
{
    if (name != NULL)
        snprintf(buf, len, "%s (prog %u vers %u proc %u)", name, h->prog, h->vers, h->proc);
    else
        snprintf(buf, len, "prog %u vers %u proc %u", h->prog, h->vers, h->proc);
    return buf;
}

static void req_link(struct svc_loop *sl, struct svc_req *r)
{
    r->prev = NULL;
    r->next = sl->deferred;
    if (sl->deferred != NULL)
        sl->deferred->prev = r;
    sl->deferred = r;
    __atomic_add_fetch(&sl->ndeferred, 1, __ATOMIC_RELAXED);
}

static void req_unlink(struct svc_loop *sl, struct svc_req *r)
{
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        sl->deferred = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    __atomic_sub_fetch(&sl->ndeferred, 1, __ATOMIC_RELAXED);
}

static void req_free(struct svc_req *r)
{
    mb_chain_free(&r->pub.msg);
    free(r);
}

/*
 * What becomes of one message. dispatch first decides a verdict (decide:
 * parse the header, check credentials, program, version, procedure and TLS
 * policy, ask the duplicate-request cache and the connection's limits),
 * then carries it out in one place (emit): count it, log it, free the
 * message, build the reply. Only V_RUN goes on to the handler (run_call).
 */
enum verdict {
    V_RUN = 0,       /* run the procedure's handler */
    V_CLOSE,         /* not a call (too short, or a REPLY): answer nothing, close */
    V_CACHED,        /* a retransmission answered from the duplicate-request cache */
    V_DROP_DUP,      /* a retransmission of a call still in progress: answer nothing */
    V_DROP_BUSY,     /* over the connection's limits: answer nothing, the client retransmits */
    V_STARTTLS,      /* the RFC 9289 probe: SUCCESS with the STARTTLS verifier, then TLS */
    V_NULL,          /* NULL of a program without a NULL handler: an empty SUCCESS */
    V_RPC_MISMATCH,  /* RPC version other than 2 */
    V_GARBAGE_ARGS,  /* the call header does not decode */
    V_AUTH_BADCRED,  /* a flavor we do not take, or AUTH_TLS where it does not belong */
    V_AUTH_TOOWEAK,  /* outside TLS on a TLS-only server */
    V_PROG_UNAVAIL,
    V_PROG_MISMATCH, /* the program is served in other versions */
    V_PROC_UNAVAIL,
    V_SYSTEM_ERR,    /* no memory to run the call */
};

/* How each verdict is carried out. */
enum verdict_reply {
    VR_NONE = 0,  /* no reply */
    VR_CACHED,    /* the reply is already in place (from the cache) */
    VR_ACCEPTED,  /* MSG_ACCEPTED with stat as accept_stat */
    VR_DENIED,    /* MSG_DENIED with stat as reject_stat (and auth as auth_stat) */
};

#define NO_COUNTER SIZE_MAX
#define COUNTER(f) offsetof(struct krpc_svc_stats, f)

static const struct verdict_desc {
    size_t counter;           /* the krpc_svc_stats field it counts in, or NO_COUNTER */
    enum verdict_reply reply;
    uint32_t stat, auth;
    int act;                  /* enum krpc_svc_action once the reply is built */
    enum krpc_log_level level; /* for the line decide wrote, if any */
} verdicts[] = {
    [V_CLOSE] = {COUNTER(closed_malformed), VR_NONE, 0, 0, KRPC_SVC_ACT_CLOSE, KRPC_LOG_WARN},
    [V_CACHED] = {COUNTER(drc_hits), VR_CACHED, 0, 0, KRPC_SVC_ACT_REPLY, KRPC_LOG_DEBUG},
    [V_DROP_DUP] = {COUNTER(drc_in_progress), VR_NONE, 0, 0, KRPC_SVC_ACT_NONE, KRPC_LOG_DEBUG},
    [V_DROP_BUSY] = {COUNTER(calls_dropped), VR_NONE, 0, 0, KRPC_SVC_ACT_NONE, KRPC_LOG_WARN},
    [V_STARTTLS] = {COUNTER(tls_probes), VR_ACCEPTED, KRPC_SUCCESS, 0, KRPC_SVC_ACT_STARTTLS, KRPC_LOG_DEBUG},
    [V_NULL] = {NO_COUNTER, VR_ACCEPTED, KRPC_SUCCESS, 0, KRPC_SVC_ACT_REPLY, KRPC_LOG_DEBUG},
    [V_RPC_MISMATCH] = {COUNTER(rpc_mismatch), VR_DENIED, KRPC_RPC_MISMATCH, 0, KRPC_SVC_ACT_REPLY, KRPC_LOG_INFO},
    [V_GARBAGE_ARGS] = {COUNTER(garbage_args), VR_ACCEPTED, KRPC_GARBAGE_ARGS, 0, KRPC_SVC_ACT_REPLY,
                        KRPC_LOG_WARN},
    [V_AUTH_BADCRED] = {COUNTER(auth_badcred), VR_DENIED, KRPC_AUTH_ERROR, KRPC_AUTH_BADCRED, KRPC_SVC_ACT_REPLY,
                        KRPC_LOG_INFO},
    [V_AUTH_TOOWEAK] = {COUNTER(auth_tooweak), VR_DENIED, KRPC_AUTH_ERROR, KRPC_AUTH_TOOWEAK, KRPC_SVC_ACT_REPLY,
                        KRPC_LOG_INFO},
    [V_PROG_UNAVAIL] = {COUNTER(prog_unavail), VR_ACCEPTED, KRPC_PROG_UNAVAIL, 0, KRPC_SVC_ACT_REPLY,
                        KRPC_LOG_DEBUG},
    [V_PROG_MISMATCH] = {COUNTER(prog_mismatch), VR_ACCEPTED, KRPC_PROG_MISMATCH, 0, KRPC_SVC_ACT_REPLY,
                         KRPC_LOG_DEBUG},
    [V_PROC_UNAVAIL] = {COUNTER(proc_unavail), VR_ACCEPTED, KRPC_PROC_UNAVAIL, 0, KRPC_SVC_ACT_REPLY,
                        KRPC_LOG_DEBUG},
    [V_SYSTEM_ERR] = {COUNTER(system_err), VR_ACCEPTED, KRPC_SYSTEM_ERR, 0, KRPC_SVC_ACT_REPLY, KRPC_LOG_WARN},
};

/* What decide found out, for emit and run_call. */
struct decision {
    uint32_t xid;
    struct krpc_call_hdr h;            /* valid from V_AUTH_BADCRED on, and for V_RUN */
    const struct krpc_prog_desc *p;    /* V_RUN */
    const struct krpc_proc_desc *pd;   /* V_RUN */
    size_t args_off;                   /* V_RUN: where the arguments start */
    struct krpc_drc_entry *entry;      /* the cache's in-progress entry, NULL when uncached */
    uint32_t lo, hi;                   /* V_PROG_MISMATCH: the versions served */
    char why[256];                     /* the log line after "rpc server: ", "" for none */
};

static void counter_inc(struct krpc_svc *svc, size_t counter)
{
    if (counter != NO_COUNTER)
        __atomic_add_fetch((uint64_t *)((char *)&svc->st + counter), 1, __ATOMIC_RELAXED);
}

/* Admission of a call that may run: the duplicate-request cache (for
 * procedures that are not idempotent), then the connection's limits. */
static enum verdict admit(struct krpc_svc *svc, const struct call_src *src, const struct mb_chain *msg,
                          struct mb_chain *reply, struct decision *v)
{
    const struct krpc_call_hdr *h = &v->h;

    if (!(v->pd->flags & KRPC_PROC_IDEMPOTENT)) {
        struct krpc_drc_key key;
        memset(&key, 0, sizeof(key));
        krpc__drc_key_set_addr(&key, src->peer, src->peerlen);
        key.xid = h->xid;
        key.prog = h->prog;
        key.vers = h->vers;
        key.proc = h->proc;
        key.arglen = (uint32_t)(msg->len - v->args_off);
        key.csum = krpc__drc_checksum(msg, v->args_off, msg->len - v->args_off);
        krpc__drc_key_set_cred(&key, &h->cred, src->subject); /* who: not the source port */
        switch (krpc__drc_lookup(svc->drc, &key, &v->entry, reply)) {
        case KRPC_DRC_DONE:
            snprintf(v->why, sizeof(v->why), "%s: xid %08x answered from the duplicate-request cache", src->peerstr,
                     h->xid);
            return V_CACHED;
        case KRPC_DRC_IN_PROGRESS:
            snprintf(v->why, sizeof(v->why), "%s: xid %08x retransmitted while in progress; dropped", src->peerstr,
                     h->xid);
            return V_DROP_DUP;
        case KRPC_DRC_NEW:
            break;
        }
    }
    /* Over the limit the call is dropped: the client retransmits later. A
     * retransmission already answered above from the cache costs nothing. */
    if (src->sc != NULL && (src->sc->deferred >= svc->cfg.max_outstanding ||
                            krpc_conn_send_queued(src->sc->c) > svc->queue_limit)) {
        snprintf(v->why, sizeof(v->why), "%s: xid %08x dropped: %u calls in progress, %zu reply bytes unsent",
                 src->peerstr, h->xid, src->sc->deferred, krpc_conn_send_queued(src->sc->c));
        return V_DROP_BUSY;
    }
    return V_RUN;
}

static enum verdict decide(struct krpc_svc *svc, const struct call_src *src, const struct mb_chain *msg,
                           struct mb_chain *reply, struct decision *v)
{
    struct krpc_call_hdr *h = &v->h;
    struct krpc_xdr_dec d;
    uint32_t mtype, rpcvers;
    int found = 0;

    if (msg->len < 8) {
        /* Not even a message type: nothing to answer to. */
        snprintf(v->why, sizeof(v->why), "malformed input from %s: message of %zu bytes is too short for an RPC header",
                 src->peerstr, msg->len);
        return V_CLOSE;
    }
    krpc_xdr_dec_init(&d, msg, 0, msg->len);
    v->xid = krpc_xdr_get_u32(&d);
    mtype = krpc_xdr_get_u32(&d);
    if (mtype != KRPC_MSG_CALL) {
        /* A server does not take replies (no backchannel here): the peer is
         * confused or hostile, and answering would not help it. */
        snprintf(v->why, sizeof(v->why), "malformed input from %s: %s (xid %08x)%s", src->peerstr,
                 mtype == KRPC_MSG_REPLY ? "a REPLY message" : "not a CALL message", v->xid,
                 mtype == KRPC_MSG_REPLY ? " sent to the server" : "");
        return V_CLOSE;
    }
    rpcvers = krpc_xdr_get_u32(&d);
    if (krpc_xdr_dec_error(&d) == 0 && rpcvers != KRPC_RPCVERS) {
        /* The rest of the header is version 2's layout: do not parse it. */
        snprintf(v->why, sizeof(v->why), "%s: xid %08x: RPC version %u, answering RPC_MISMATCH", src->peerstr, v->xid,
                 rpcvers);
        return V_RPC_MISMATCH;
    }
    krpc_xdr_dec_init(&d, msg, 0, msg->len);
    if (krpc_decode_call_hdr(&d, h) != 0) {
        snprintf(v->why, sizeof(v->why), "malformed input from %s: undecodable call header (xid %08x); answering "
                 "GARBAGE_ARGS", src->peerstr, v->xid);
        return V_GARBAGE_ARGS;
    }
    v->args_off = d.off;

    /* Credentials. AUTH_TLS is the RFC 9289 probe, valid only as a NULL
     * call outside TLS on a server that offers TLS; for any program number,
     * since the probe is about the transport, not the program. */
    if (h->cred.flavor == KRPC_AUTH_TLS) {
        const char *why = NULL;
        if (h->proc != 0)
            why = "AUTH_TLS on a procedure other than NULL";
        else if (src->tls)
            why = "AUTH_TLS inside a TLS session";
        else if (svc->cfg.tls == KRPC_SVC_TLS_OFF)
            why = "AUTH_TLS probe but TLS is off";
        if (why == NULL)
            return V_STARTTLS;
        snprintf(v->why, sizeof(v->why), "%s: xid %08x: %s: AUTH_BADCRED", src->peerstr, v->xid, why);
        return V_AUTH_BADCRED;
    }
    if (h->cred.flavor != KRPC_AUTH_NONE && h->cred.flavor != KRPC_AUTH_SYS) {
        snprintf(v->why, sizeof(v->why), "%s: xid %08x: unsupported credential flavor %u: AUTH_BADCRED",
                 src->peerstr, v->xid, h->cred.flavor);
        return V_AUTH_BADCRED;
    }
    v->lo = UINT32_MAX;
    v->hi = 0;
    for (size_t i = 0; i < svc->nprogs; i++) {
        if (svc->progs[i].prog != h->prog)
            continue;
        found = 1;
        v->lo = svc->progs[i].vers < v->lo ? svc->progs[i].vers : v->lo;
        v->hi = svc->progs[i].vers > v->hi ? svc->progs[i].vers : v->hi;
        if (svc->progs[i].vers == h->vers)
            v->p = &svc->progs[i];
    }
    if (!found)
        return V_PROG_UNAVAIL;
    if (v->p == NULL)
        return V_PROG_MISMATCH;
    /* TLS policy per program, as knfsd and FreeBSD have it: NULL (pings,
     * rpcinfo) and programs marked PLAIN_OK (MOUNT) are served in the clear;
     * everything else needs the TLS session. Checked after the program is
     * known so that PROG_UNAVAIL / PROG_MISMATCH stay truthful. */
    if (svc->cfg.tls == KRPC_SVC_TLS_REQUIRED && !src->tls && h->proc != 0 && !(v->p->flags & KRPC_PROG_PLAIN_OK)) {
        snprintf(v->why, sizeof(v->why),
                 "%s: xid %08x: program %u version %u procedure %u outside TLS on a TLS-only server: AUTH_TOOWEAK",
                 src->peerstr, v->xid, h->prog, h->vers, h->proc);
        return V_AUTH_TOOWEAK;
    }
    v->pd = h->proc < v->p->nprocs && v->p->procs != NULL ? &v->p->procs[h->proc] : NULL;
    if (v->pd == NULL || v->pd->fn == NULL) {
        /* NULL answers without a handler: ping and rpcinfo work for every program. */
        return h->proc == 0 ? V_NULL : V_PROC_UNAVAIL;
    }
    return admit(svc, src, msg, reply, v);
}

/* Carries out every verdict but V_RUN: counts, logs, frees the message and
 * the cache entry it will not complete, and builds the reply. Returns the
 * enum krpc_svc_action for the connection. */
static int emit(struct krpc_svc *svc, enum verdict verdict, struct decision *v, struct mb_chain *msg,
                struct mb_chain *reply)
{
    const struct verdict_desc *vd = &verdicts[verdict];
    int ret = 0;

    counter_inc(svc, vd->counter);
    if (v->why[0] != '\0')
        krpc_log(vd->level, "rpc server: %s", v->why);
    mb_chain_free(msg);
    krpc__drc_forget(svc->drc, v->entry); /* NULL: nothing to forget */
    v->entry = NULL;
    switch (vd->reply) {
    case VR_NONE:
        return vd->act;
    case VR_CACHED:
        break;
    case VR_ACCEPTED:
        ret = put_accepted(reply, v->xid, vd->stat, verdict == V_STARTTLS ? KRPC_STARTTLS_VERF : NULL,
                           verdict == V_PROG_MISMATCH ? v->lo : 0, verdict == V_PROG_MISMATCH ? v->hi : 0, NULL);
        break;
    case VR_DENIED:
        ret = put_denied(reply, v->xid, vd->stat, vd->auth);
        break;
    }
    if (ret != 0)
        return KRPC_SVC_ACT_NONE; /* no memory for the reply: the client retransmits */
    ST_INC(svc, replies);
    return vd->act;
}

/* Runs the handler of a call that passed every check (V_RUN): the accepted
 * reply with its results, or a deferred answer (krpc_svc_reply). */
static int run_call(struct krpc_svc *svc, const struct call_src *src, struct decision *v, struct mb_chain *msg,
                    struct mb_chain *reply)
{
    const struct krpc_call_hdr *h = &v->h;
    const struct krpc_prog_desc *p = v->p;
    const struct krpc_proc_desc *pd = v->pd;
    struct svc_req *r;
    struct krpc_xdr_dec args;
    struct krpc_xdr_enc res;
    struct mb_chain resc = MB_CHAIN_INIT;
    size_t sublen = strlen(src->subject), userlen = strlen(src->user);
    char what[128];
    int status, serial;

    r = calloc(1, sizeof(*r) + sublen + 1 + userlen + 1);
    if (r == NULL) {
        snprintf(v->why, sizeof(v->why), "%s: xid %08x: out of memory; answering SYSTEM_ERR", src->peerstr, h->xid);
        return emit(svc, V_SYSTEM_ERR, v, msg, reply);
    }
    memcpy(r->subject, src->subject, sublen + 1);
    memcpy(r->subject + sublen + 1, src->user, userlen + 1);
    r->pub.xid = h->xid;
    r->pub.prog = h->prog;
    r->pub.vers = h->vers;
    r->pub.proc = h->proc;
    r->pub.cred = h->cred;
    r->pub.tls = src->tls;
    r->pub.peer_subject = r->subject;
    r->pub.peer_user = r->subject + sublen + 1;
    if (src->peer != NULL && src->peerlen <= (socklen_t)sizeof(r->pub.peer)) {
        memcpy(&r->pub.peer, src->peer, src->peerlen);
        r->pub.peerlen = src->peerlen;
    }
    mb_chain_init(&r->pub.msg);
    mb_chain_concat(&r->pub.msg, msg);
    r->pub.svc = svc;
    r->pub.conn = src->sc;
    r->pub.drc = v->entry;
    r->pub.home = src->sl;

    krpc_xdr_dec_init(&args, &r->pub.msg, v->args_off, r->pub.msg.len - v->args_off);
    krpc_xdr_enc_init(&res, &resc);
    /* With several loops, handlers of a program that did not say it is
     * thread-safe run one at a time. */
    serial = svc->nloops > 1 && !(p->flags & KRPC_PROG_MT_SAFE);
    if (serial)
        pthread_mutex_lock(&svc->handler_lock);
    status = pd->fn(&r->pub, &args, &res, p->arg);
    if (serial)
        pthread_mutex_unlock(&svc->handler_lock);
    if (status == KRPC_SVC_DEFER) {
        mb_chain_free(&resc);
        req_link(src->sl, r);
        if (src->sc != NULL)
            src->sc->deferred++;
        return KRPC_SVC_ACT_NONE;
    }
    if (status == KRPC_SUCCESS && krpc_xdr_enc_error(&res) != 0) {
        krpc_log(KRPC_LOG_WARN, "rpc server: %s: encoding the results failed (%d)",
                 req_what(what, sizeof(what), h, pd->name), krpc_xdr_enc_error(&res));
        status = KRPC_SYSTEM_ERR;
    }
    if (status == KRPC_GARBAGE_ARGS)
        krpc_log(KRPC_LOG_INFO, "rpc server: %s: %s: arguments did not decode", src->peerstr,
                 req_what(what, sizeof(what), h, pd->name));
    if (put_result(svc, reply, h->xid, status, &resc, req_what(what, sizeof(what), h, pd->name)) != 0) {
        /* No reply can be built: answer nothing; the client retransmits. */
        krpc__drc_forget(svc->drc, v->entry);
        req_free(r);
        return KRPC_SVC_ACT_NONE;
    }
    if (v->entry != NULL)
        krpc__drc_complete(svc->drc, v->entry, reply);
    req_free(r);
    ST_INC(svc, replies);
    return KRPC_SVC_ACT_REPLY;
}

static int dispatch(struct krpc_svc *svc, const struct call_src *src, struct mb_chain *msg, struct mb_chain *reply)
{
    struct decision v;
    enum verdict verdict;

    memset(&v, 0, sizeof(v));
    verdict = decide(svc, src, msg, reply, &v);
    if (verdict != V_CLOSE)
        ST_INC(svc, calls);
    if (verdict == V_RUN)
        return run_call(svc, src, &v, msg, reply);
    return emit(svc, verdict, &v, msg, reply);
}

/* ---- connection log lines, rate-limited ---------------------------------- */

/* A line about a refused or cut connection. A flood of hostile connections
 * must not become a flood of log lines: at most SVC_LOG_PER_SEC a second;
 * the next line printed after a pause says how many were left out. */
static void conn_log(struct krpc_svc *svc, enum krpc_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void conn_log(struct krpc_svc *svc, enum krpc_log_level level, const char *fmt, ...)
{
    struct svc_ratelimit *rl = &svc->rl;
    uint64_t sec = krpc_now_ms() / 1000, suppressed = 0;
    char line[512];
    va_list ap;
    int print;

    pthread_mutex_lock(&rl->lock);
    if (sec != rl->second) {
        rl->second = sec;
        rl->lines = 0;
    }
    print = rl->lines < SVC_LOG_PER_SEC;
    if (print) {
        rl->lines++;
        suppressed = rl->suppressed;
        rl->suppressed = 0;
    } else {
        rl->suppressed++;
    }
    pthread_mutex_unlock(&rl->lock);
    if (!print) {
        ST_INC(svc, log_suppressed);
        return;
    }
    if (suppressed > 0)
        krpc_log(KRPC_LOG_WARN, "rpc server: %llu connection log lines suppressed (more than %d a second)",
                 (unsigned long long)suppressed, SVC_LOG_PER_SEC);
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    krpc_log(level, "%s", line);
}

/* ---- connections -------------------------------------------------------- */

/* Arms the connection's timer for the earlier of its handshake deadline
 * (while not authenticated, counted from accept) and its idle check (not
 * during a handshake: the handshake's own deadline runs in the connection). */
static void conn_schedule(struct svc_conn *sc, uint64_t now)
{
    struct krpc_svc *svc = sc->svc;
    uint64_t due = UINT64_MAX;

    if (sc->unauth)
        due = sc->accepted_ms + (uint64_t)svc->cfg.handshake_timeout_ms;
    if (sc->state != SC_HANDSHAKE && svc->cfg.idle_timeout_ms > 0) {
        uint64_t idle_due = sc->last_active_ms + (uint64_t)svc->cfg.idle_timeout_ms;
        if (idle_due < due)
            due = idle_due;
    }
    /* An authenticated peer's message rate is looked at once per grace
     * period: a slow message is cut at most two periods after it began. */
    if (!sc->unauth && sc->state != SC_HANDSHAKE && svc->cfg.slow_msg_grace_ms > 0 &&
        now + (uint64_t)svc->cfg.slow_msg_grace_ms < due)
        due = now + (uint64_t)svc->cfg.slow_msg_grace_ms;
    if (due == UINT64_MAX)
        krpc_timer_cancel(sc->sl->loop, &sc->timer);
    else
        krpc_timer_arm(sc->sl->loop, &sc->timer, due > now ? due - now : 0);
}

static void conn_close(struct svc_conn *sc, int err)
{
    if (sc->closing)
        return;
    sc->closing = 1;
    if (sc->svc != NULL)
        krpc_timer_cancel(sc->sl->loop, &sc->timer);
    krpc_conn_close(sc->c, err);
}

/* Takes sc off its loop's list of connections not yet authenticated. */
static void conn_unauth_unlink(struct svc_conn *sc)
{
    struct svc_loop *sl = sc->sl;

    if (!sc->unauth)
        return;
    if (sc->uprev != NULL)
        sc->uprev->unext = sc->unext;
    else
        sl->uhead = sc->unext;
    if (sc->unext != NULL)
        sc->unext->uprev = sc->uprev;
    else
        sl->utail = sc->uprev;
    sc->uprev = sc->unext = NULL;
    sc->unauth = 0;
    sl->nunauth--;
    ST_DEC(sc->svc, conns_unauth);
}

/* The connection proved itself (TLS up, or under _OFF/_OPTIONAL its first
 * call): from now on it has the limits of an established client. */
static void conn_authenticated(struct svc_conn *sc)
{
    if (!sc->unauth)
        return;
    conn_unauth_unlink(sc);
    krpc_conn_set_rx_limits(sc->c, 0, 0);
    conn_schedule(sc, krpc_now_ms());
}

/* Cuts sc (and returns 1) when the bytes of its message under way have
 * been coming for the grace period or longer at less than the minimum rate:
 * a peer that holds a buffer and a slot by sending a byte now and then,
 * which the idle check (any byte is activity) lets live. */
static int slow_msg(struct svc_conn *sc, uint64_t now)
{
    struct krpc_svc *svc = sc->svc;
    uint64_t since, bytes, elapsed;

    if (svc->cfg.slow_msg_grace_ms <= 0 || !krpc_conn_partial_msg(sc->c, &since, &bytes) || now <= since)
        return 0;
    elapsed = now - since;
    if (elapsed < (uint64_t)svc->cfg.slow_msg_grace_ms || bytes * 1000 >= (uint64_t)svc->cfg.slow_msg_min_rate * elapsed)
        return 0;
    ST_INC(svc, closed_slow);
    sc->counted = 1;
    conn_log(svc, KRPC_LOG_INFO,
             "rpc server: cutting %s: a message has been arriving for %llu ms at %llu bytes/s (the minimum is %u)",
             sc->peerstr, (unsigned long long)elapsed, (unsigned long long)(bytes * 1000 / elapsed),
             svc->cfg.slow_msg_min_rate);
    conn_close(sc, -ETIMEDOUT);
    return 1;
}

static void conn_timer_fn(struct krpc_loop *loop, struct krpc_timer *t, void *arg)
{
    struct svc_conn *sc = arg;
    struct krpc_svc *svc = sc->svc;
    uint64_t now, last_io, idle;

    (void)loop;
    (void)t;
    if (svc == NULL || sc->closing)
        return;
    now = krpc_now_ms();
    /* A stranger gets handshake_timeout_ms from accept to authenticate,
     * whatever it sends meanwhile: a half probe, or a byte now and then,
     * does not keep its slot. */
    if (sc->unauth && now - sc->accepted_ms >= (uint64_t)svc->cfg.handshake_timeout_ms) {
        ST_INC(svc, closed_handshake_timeout);
        sc->counted = 1;
        conn_log(svc, KRPC_LOG_INFO, "rpc server: cutting %s: not authenticated %llu ms after accept (%s)",
                 sc->peerstr, (unsigned long long)(now - sc->accepted_ms),
                 sc->state == SC_HANDSHAKE ? "TLS handshake unfinished"
                 : svc->cfg.tls == KRPC_SVC_TLS_REQUIRED ? "no TLS yet"
                                                         : "no complete call yet");
        conn_close(sc, -ETIMEDOUT);
        return;
    }
    if (!sc->unauth && sc->state != SC_HANDSHAKE && slow_msg(sc, now))
        return;
    if (sc->state != SC_HANDSHAKE && svc->cfg.idle_timeout_ms > 0) {
        /* A call in progress is activity: its reply is traffic still to come. */
        if (sc->deferred > 0)
            sc->last_active_ms = now;
        /* Any wire traffic, also a partial message, is activity. The
         * connection notes when its last byte moved, so the idle time is
         * measured from then, not from when a timer happened to notice: the
         * cut comes one timeout after the last byte, and the number logged
         * is true. */
        last_io = krpc_conn_last_io_ms(sc->c);
        if (last_io > sc->last_active_ms)
            sc->last_active_ms = last_io;
        idle = now > sc->last_active_ms ? now - sc->last_active_ms : 0;
        if (idle >= (uint64_t)svc->cfg.idle_timeout_ms) {
            ST_INC(svc, closed_idle);
            sc->counted = 1;
            conn_log(svc, KRPC_LOG_INFO, "rpc server: closing %s: idle for %llu ms", sc->peerstr,
                     (unsigned long long)idle);
            conn_close(sc, -ETIMEDOUT);
            return;
        }
    }
    conn_schedule(sc, now);
}

static void conn_send(struct svc_conn *sc, struct mb_chain *reply)
{
    int ret = krpc_conn_send(sc->c, reply);

    mb_chain_free(reply); /* empty unless the send did not consume it */
    if (ret < 0)
        krpc_log(KRPC_LOG_DEBUG, "rpc server: %s: reply not sent (%d)", sc->peerstr, ret);
}

/* Starts the handshake with the server's current TLS context (a reload may
 * replace it from another thread: the reference is taken under the lock). */
static int svc_start_tls(struct krpc_svc *svc, struct krpc_conn *c)
{
    struct ktls_ctx *ctx;
    int ret;

    pthread_mutex_lock(&svc->tls_lock);
    ctx = ktls_ctx_ref(svc->tls_ctx);
    pthread_mutex_unlock(&svc->tls_lock);
    if (ctx == NULL)
        return -EINVAL;
    ret = krpc_conn_start_tls_ctx(c, ctx);
    ktls_ctx_unref(ctx);
    return ret;
}

static void conn_on_msg(struct krpc_conn *c, struct mb_chain *msg, void *arg)
{
    struct svc_conn *sc = arg;
    struct krpc_svc *svc = sc->svc;
    struct mb_chain m = MB_CHAIN_INIT, reply = MB_CHAIN_INIT;
    struct call_src src;
    int act;

    mb_chain_concat(&m, msg);
    if (svc == NULL || sc->closing || sc->state == SC_HANDSHAKE) {
        mb_chain_free(&m);
        return;
    }
    /* A client that sends calls but never reads the replies: every reply,
     * also the ones dispatch answers itself (errors, NULL, the cache), waits
     * in the send queue. Past twice the limit the connection goes, so one
     * client cannot make the server queue without bound. */
    if (krpc_conn_send_queued(c) > 2 * svc->queue_limit) {
        ST_INC(svc, calls_dropped);
        sc->counted = 1;
        conn_log(svc, KRPC_LOG_WARN, "rpc server: closing %s: %zu reply bytes unread", sc->peerstr,
                 krpc_conn_send_queued(c));
        mb_chain_free(&m);
        conn_close(sc, -ENOBUFS);
        return;
    }
    sc->last_active_ms = krpc_now_ms();
    src.sl = sc->sl;
    src.sc = sc;
    src.peer = (const struct sockaddr *)&sc->peer;
    src.peerlen = sc->peerlen;
    src.peerstr = sc->peerstr;
    src.tls = sc->state == SC_TLS;
    src.subject = src.tls ? krpc_conn_peer_subject(c) : "";
    if (src.subject == NULL)
        src.subject = "";
    src.user = src.tls ? krpc_conn_peer_user(c) : "";
    act = dispatch(svc, &src, &m, &reply);
    switch (act) {
    case KRPC_SVC_ACT_REPLY:
    case KRPC_SVC_ACT_NONE:
        /* A complete call: that is what authenticates a connection when TLS
         * is not required. Under _REQUIRED only TLS does. */
        if (act == KRPC_SVC_ACT_REPLY)
            conn_send(sc, &reply);
        if (sc->unauth && !sc->closing && svc->cfg.tls != KRPC_SVC_TLS_REQUIRED)
            conn_authenticated(sc);
        break;
    case KRPC_SVC_ACT_STARTTLS: {
        int ret;
        conn_send(sc, &reply);
        ret = svc_start_tls(svc, c);
        if (ret < 0) {
            ST_INC(svc, tls_failures);
            sc->counted = 1;
            conn_log(svc, KRPC_LOG_WARN, "rpc server: %s: cannot start TLS (%d)", sc->peerstr, ret);
            conn_close(sc, ret);
            break;
        }
        sc->state = SC_HANDSHAKE;
        conn_schedule(sc, krpc_now_ms());
        break;
    }
    case KRPC_SVC_ACT_CLOSE:
        sc->counted = 1;
        conn_close(sc, -EBADMSG);
        break;
    default:
        break;
    }
    mb_chain_free(&reply);
}

static void conn_on_tls(struct krpc_conn *c, int err, const char *msg, void *arg)
{
    struct svc_conn *sc = arg;
    struct krpc_svc *svc = sc->svc;

    if (svc == NULL || sc->closing)
        return;
    if (err == 0) {
        const char *subj = krpc_conn_peer_subject(c);
        sc->state = SC_TLS;
        ST_INC(svc, tls_handshakes);
        krpc_log(KRPC_LOG_INFO, "rpc server: %s: TLS session up%s%s", sc->peerstr, subj && *subj ? ", client " : "",
                 subj && *subj ? subj : "");
        sc->last_active_ms = krpc_now_ms();
        if (sc->unauth)
            conn_authenticated(sc); /* also schedules */
        else
            conn_schedule(sc, sc->last_active_ms);
        return;
    }
    ST_INC(svc, tls_failures);
    sc->counted = 1;
    conn_log(svc, KRPC_LOG_WARN, "rpc server: TLS handshake with %s failed: %s", sc->peerstr,
             msg != NULL && *msg ? msg : "(no message)");
    /* The connection closes itself; on_close follows. */
    sc->closing = 1;
    krpc_timer_cancel(sc->sl->loop, &sc->timer);
}

/* The largest message a connection may send before TLS on a TLS-only
 * server: room for a MNT when a program is served in the clear, else for a
 * NULL call; never above max_msg. */
static size_t pretls_max_msg(const struct krpc_svc *svc)
{
    size_t lim = SVC_PRETLS_NULL_MAX;

    for (size_t i = 0; i < svc->nprogs; i++)
        if (svc->progs[i].flags & KRPC_PROG_PLAIN_OK)
            lim = SVC_PRETLS_PLAIN_OK_MAX;
    return svc->cfg.max_msg < lim ? svc->cfg.max_msg : lim;
}

static void conn_on_close(struct krpc_conn *c, int err, void *arg)
{
    struct svc_conn *sc = arg;
    struct krpc_svc *svc = sc->svc;
    struct svc_loop *sl = sc->sl;
    int pretls = sc->state == SC_PLAIN && sc->unauth && svc != NULL && svc->cfg.tls == KRPC_SVC_TLS_REQUIRED;

    if (svc != NULL) {
        krpc_timer_cancel(sl->loop, &sc->timer);
        if (sc->prev != NULL)
            sc->prev->next = sc->next;
        else
            sl->conns = sc->next;
        if (sc->next != NULL)
            sc->next->prev = sc->prev;
        conn_unauth_unlink(sc);
        __atomic_sub_fetch(&sl->nconns, 1, __ATOMIC_RELAXED);
        __atomic_sub_fetch(&svc->nconns, 1, __ATOMIC_RELAXED);
        ST_DEC(svc, conns_open);
        /* Deferred calls still complete; their replies go to the cache only. */
        for (struct svc_req *r = sl->deferred; r != NULL; r = r->next)
            if (r->pub.conn == sc)
                r->pub.conn = NULL;
        if (!sc->counted && err == -ENOBUFS) {
            ST_INC(svc, closed_memory);
            conn_log(svc, KRPC_LOG_WARN,
                     "rpc server: cutting %s: its %zu buffer bytes grew while connections held more than "
                     "max_memory %llu",
                     sc->peerstr, krpc_conn_mem(c), (unsigned long long)svc->mem.limit);
        } else if (!sc->counted && *krpc_conn_tls_error(c) != '\0') {
            /* The record layer failed: say how, naming the alert sent or
             * received; a bad or oversize record is malformed input. */
            if (err == -EMSGSIZE || err == -EBADMSG)
                ST_INC(svc, closed_malformed);
            conn_log(svc, KRPC_LOG_WARN, "rpc server: TLS error from %s: %s", sc->peerstr, krpc_conn_tls_error(c));
        } else if (!sc->counted && (err == -EMSGSIZE || err == -EBADMSG)) {
            ST_INC(svc, closed_malformed);
            if (err == -EMSGSIZE)
                conn_log(svc, KRPC_LOG_WARN,
                         "rpc server: malformed input from %s: RPC record mark announces a message over the "
                         "%zu-byte limit%s",
                         sc->peerstr,
                         pretls ? pretls_max_msg(svc) : svc->cfg.max_msg,
                         pretls ? " (before TLS on a TLS-only server)" : "");
            else
                conn_log(svc, KRPC_LOG_WARN, "rpc server: malformed input from %s: bad RPC record marking",
                         sc->peerstr);
        } else if (!sc->counted && err == -EPROTO && sc->state == SC_HANDSHAKE) {
            ST_INC(svc, tls_failures);
        } else {
            krpc_log(KRPC_LOG_DEBUG, "rpc server: %s: connection closed (%d)", sc->peerstr, err);
        }
    }
    free(sc);
}

static const struct krpc_conn_ops conn_ops = {conn_on_msg, conn_on_close, conn_on_tls};

/* Gives back a connection slot reserved at accept (sl: the loop's too). */
static void slot_release(struct krpc_svc *svc, struct svc_loop *sl)
{
    __atomic_sub_fetch(&sl->nconns, 1, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&svc->nconns, 1, __ATOMIC_RELAXED);
}

/* Serves an accepted socket on sl (its thread); the slot is reserved. */
static void svc_add_conn(struct svc_loop *sl, int fd, const struct sockaddr_storage *ss, socklen_t sslen)
{
    struct krpc_svc *svc = sl->svc;
    struct svc_conn *sc;
    struct krpc_conn_config cc;
    size_t pre_max;
    int one = 1, ret;
    char peer[64];

    krpc_format_addr((const struct sockaddr *)ss, peer, sizeof(peer));
    /* Strangers have their own budget: a new one pushes out the oldest,
     * which has had the longest time to authenticate. So a flood of
     * half-open connections never refuses a real client, and never takes
     * the slots of established ones. */
    if (sl->nunauth >= svc->unauth_share && sl->uhead != NULL) {
        struct svc_conn *old = sl->uhead;
        ST_INC(svc, closed_unauth_evicted);
        old->counted = 1;
        conn_log(svc, KRPC_LOG_INFO,
                 "rpc server: cutting %s: not authenticated after %llu ms, and %u newer connections wait "
                 "(max_unauth_conns %u)",
                 old->peerstr, (unsigned long long)(krpc_now_ms() - old->accepted_ms), sl->nunauth,
                 svc->cfg.max_unauth_conns);
        conn_unauth_unlink(old);
        conn_close(old, -ETIMEDOUT);
    }
    sc = calloc(1, sizeof(*sc));
    if (sc == NULL) {
        ST_INC(svc, conns_refused);
        conn_log(svc, KRPC_LOG_WARN, "rpc server: connection from %s refused: out of memory", peer);
        close(fd);
        slot_release(svc, sl);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sc->svc = svc;
    sc->sl = sl;
    memcpy(&sc->peer, ss, sslen <= (socklen_t)sizeof(sc->peer) ? sslen : sizeof(sc->peer));
    sc->peerlen = sslen;
    memcpy(sc->peerstr, peer, sizeof(sc->peerstr));
    sc->peerstr[sizeof(sc->peerstr) - 1] = '\0';
    krpc_timer_init(&sc->timer, conn_timer_fn, sc);
    memset(&cc, 0, sizeof(cc));
    cc.max_msg = svc->cfg.max_msg;
    ret = krpc_conn_new(sl->loop, fd, &cc, &conn_ops, sc, &sc->c);
    if (ret < 0) {
        ST_INC(svc, conns_refused);
        conn_log(svc, KRPC_LOG_WARN, "rpc server: connection from %s refused: %s", peer, strerror(-ret));
        close(fd); /* krpc_conn_new leaves the fd to us on failure */
        free(sc);
        slot_release(svc, sl);
        return;
    }
    /* Until it authenticates: one-page receive stores, and under _REQUIRED
     * a small message limit (the probe, NULL and MOUNT fit). */
    pre_max = svc->cfg.tls == KRPC_SVC_TLS_REQUIRED ? pretls_max_msg(svc) : 0;
    krpc_conn_set_rx_limits(sc->c, pre_max, SVC_UNAUTH_RX_CHUNK);
    krpc_conn_set_membudget(sc->c, &svc->mem);
    sc->next = sl->conns;
    if (sl->conns != NULL)
        sl->conns->prev = sc;
    sl->conns = sc;
    sc->unauth = 1;
    sc->uprev = sl->utail;
    if (sl->utail != NULL)
        sl->utail->unext = sc;
    else
        sl->uhead = sc;
    sl->utail = sc;
    sl->nunauth++;
    ST_INC(svc, conns_unauth);
    ST_INC(svc, conns_accepted);
    ST_INC(svc, conns_open);
    sc->accepted_ms = sc->last_active_ms = krpc_now_ms();
    conn_schedule(sc, sc->accepted_ms);
    krpc_log(KRPC_LOG_DEBUG, "rpc server: connection from %s", peer);
}

/* The loop with the fewest connections, when the others run. */
static struct svc_loop *svc_pick_loop(struct krpc_svc *svc)
{
    struct svc_loop *best = &svc->loops[0];
    unsigned bestn = UINT32_MAX;

    if (svc->nloops <= 1 || !__atomic_load_n(&svc->started, __ATOMIC_ACQUIRE))
        return best;
    for (unsigned k = 0; k < svc->nloops; k++) {
        struct svc_loop *sl = &svc->loops[(svc->rr + k) % svc->nloops];
        unsigned n = __atomic_load_n(&sl->nconns, __ATOMIC_RELAXED);
        if (n < bestn) {
            best = sl;
            bestn = n;
        }
    }
    svc->rr++; /* ties go round */
    return best;
}

/* Queues an accepted socket for another loop and wakes it. */
static void svc_handoff(struct svc_loop *sl, int fd, const struct sockaddr_storage *ss, socklen_t sslen)
{
    struct krpc_svc *svc = sl->svc;
    struct svc_handoff *h = calloc(1, sizeof(*h));
    uint64_t one = 1;

    if (h == NULL) {
        char peer[64];
        ST_INC(svc, conns_refused);
        conn_log(svc, KRPC_LOG_WARN, "rpc server: connection from %s refused: out of memory",
                 krpc_format_addr((const struct sockaddr *)ss, peer, sizeof(peer)));
        close(fd);
        slot_release(svc, sl);
        return;
    }
    h->fd = fd;
    h->ss = *ss;
    h->sslen = sslen;
    pthread_mutex_lock(&sl->qlock);
    if (sl->qtail != NULL)
        sl->qtail->next = h;
    else
        sl->qhead = h;
    sl->qtail = h;
    pthread_mutex_unlock(&sl->qlock);
    /* EAGAIN only when the counter is saturated: it is readable anyway. */
    if (write(sl->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        krpc_log(KRPC_LOG_WARN, "rpc server: waking loop: %s", strerror(errno));
}

static void svc_on_handoff(struct krpc_loop *loop, int fd, uint32_t events, void *arg)
{
    struct svc_loop *sl = arg;
    struct svc_handoff *h, *next;
    uint64_t v;

    (void)loop;
    (void)events;
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        krpc_log(KRPC_LOG_WARN, "rpc server: hand-off eventfd: %s", strerror(errno));
    pthread_mutex_lock(&sl->qlock);
    h = sl->qhead;
    sl->qhead = sl->qtail = NULL;
    pthread_mutex_unlock(&sl->qlock);
    for (; h != NULL; h = next) {
        next = h->next;
        svc_add_conn(sl, h->fd, &h->ss, h->sslen);
        free(h);
    }
}

/* An accepted socket: refused over the limits, else a slot is reserved
 * and the socket goes to the least busy loop. Runs on the listening loop
 * (loops[0]), the only thread that reserves slots. */
static void svc_admit(struct krpc_svc *svc, int fd, const struct sockaddr_storage *ss, socklen_t sslen)
{
    struct svc_loop *sl;
    uint64_t used = __atomic_load_n(&svc->mem.used, __ATOMIC_RELAXED);
    unsigned n = __atomic_load_n(&svc->nconns, __ATOMIC_RELAXED);
    char peer[64];

    if (n >= svc->cfg.max_conns) {
        /* Accepted then closed at once: the client sees a reset/EOF instead
         * of waiting in the backlog. */
        ST_INC(svc, conns_refused);
        conn_log(svc, KRPC_LOG_WARN, "rpc server: connection from %s refused: %u connections open (max_conns)",
                 krpc_format_addr((const struct sockaddr *)ss, peer, sizeof(peer)), n);
        close(fd);
        return;
    }
    if (svc->mem.limit > 0 && used >= svc->mem.limit) {
        ST_INC(svc, conns_refused);
        ST_INC(svc, closed_memory);
        conn_log(svc, KRPC_LOG_WARN,
                 "rpc server: connection from %s refused: connections hold %llu buffer bytes, at max_memory %llu",
                 krpc_format_addr((const struct sockaddr *)ss, peer, sizeof(peer)), (unsigned long long)used,
                 (unsigned long long)svc->mem.limit);
        close(fd);
        return;
    }
    sl = svc_pick_loop(svc);
    __atomic_add_fetch(&svc->nconns, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&sl->nconns, 1, __ATOMIC_RELAXED);
    if (sl == &svc->loops[0])
        svc_add_conn(sl, fd, ss, sslen);
    else
        svc_handoff(sl, fd, ss, sslen);
}

static void accept_timer_fn(struct krpc_loop *loop, struct krpc_timer *t, void *arg)
{
    struct krpc_svc *svc = arg;

    (void)t;
    if (svc->lfd >= 0)
        krpc_loop_mod_fd(loop, svc->lfd, EPOLLIN);
}

static void svc_on_listen(struct krpc_loop *loop, int fd, uint32_t events, void *arg)
{
    struct krpc_svc *svc = arg;

    (void)events;
    for (int n = 0; n < 64; n++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int cfd = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            /* Out of descriptors or memory: the listener would stay readable
             * and spin the loop; pause accepting for a moment instead. */
            conn_log(svc, KRPC_LOG_WARN, "rpc server: accept: %s; pausing for %d ms", strerror(errno),
                     SVC_ACCEPT_BACKOFF_MS);
            krpc_loop_mod_fd(loop, fd, 0);
            krpc_timer_arm(loop, &svc->accept_timer, SVC_ACCEPT_BACKOFF_MS);
            return;
        }
        svc_admit(svc, cfd, &ss, len);
    }
}

/* ---- setup -------------------------------------------------------------- */

static void *svc_loop_thread(void *arg)
{
    struct svc_loop *sl = arg;
    int ret = krpc_loop_run(sl->loop, NULL, -1);

    if (ret != 0)
        krpc_log(KRPC_LOG_ERROR, "rpc server: event loop %u stopped: %s", (unsigned)(sl - sl->svc->loops),
                 strerror(-ret));
    return NULL;
}

/* Tears down one loop's state: threads are joined, nothing runs on it. */
static void svc_loop_free(struct svc_loop *sl)
{
    struct svc_handoff *h, *hn;

    for (h = sl->qhead; h != NULL; h = hn) {
        hn = h->next;
        close(h->fd);
        free(h);
    }
    sl->qhead = sl->qtail = NULL;
    /* Connections go now, without callbacks, so the loop can be freed next. */
    while (sl->conns != NULL) {
        struct svc_conn *sc = sl->conns;
        sl->conns = sc->next;
        krpc_timer_cancel(sl->loop, &sc->timer);
        krpc_conn_free(sc->c);
        free(sc);
    }
    while (sl->deferred != NULL) {
        struct svc_req *r = sl->deferred;
        sl->deferred = r->next;
        req_free(r);
    }
    if (sl->efd >= 0) {
        if (sl->loop != NULL)
            krpc_loop_del_fd(sl->loop, sl->efd);
        close(sl->efd);
        sl->efd = -1;
    }
    if (sl->owned && sl->loop != NULL) {
        krpc_loop_free(sl->loop); /* it finishes whatever close is still under way */
        sl->loop = NULL;
    }
    pthread_mutex_destroy(&sl->qlock);
}

static int svc_create(struct krpc_loop *loop, const struct krpc_svc_config *cfg, struct krpc_svc **out)
{
    struct krpc_svc *svc;
    const char **strs[5];
    int ret;

    *out = NULL;
    if (cfg == NULL || cfg->tls < KRPC_SVC_TLS_OFF || cfg->tls > KRPC_SVC_TLS_REQUIRED)
        return -EINVAL;
    if (cfg->tls != KRPC_SVC_TLS_OFF && (cfg->tlscfg.cert_file == NULL || cfg->tlscfg.key_file == NULL)) {
        krpc_log(KRPC_LOG_ERROR, "rpc server: TLS needs a certificate and a key");
        return -EINVAL;
    }
    if (cfg->threads > 1024) {
        krpc_log(KRPC_LOG_ERROR, "rpc server: %u threads: at most 1024", cfg->threads);
        return -EINVAL;
    }
    svc = calloc(1, sizeof(*svc));
    if (svc == NULL)
        return -ENOMEM;
    svc->lfd = -1;
    svc->cfg = *cfg;
    pthread_mutex_init(&svc->handler_lock, NULL);
    pthread_mutex_init(&svc->rl.lock, NULL);
    pthread_mutex_init(&svc->tls_lock, NULL);
    if (svc->cfg.max_msg == 0)
        svc->cfg.max_msg = KRPC_RM_DEFAULT_MAX_MSG;
    if (svc->cfg.max_conns == 0)
        svc->cfg.max_conns = SVC_DEF_MAX_CONNS;
    if (svc->cfg.max_unauth_conns == 0)
        svc->cfg.max_unauth_conns = SVC_DEF_MAX_UNAUTH;
    if (svc->cfg.max_unauth_conns > svc->cfg.max_conns)
        svc->cfg.max_unauth_conns = svc->cfg.max_conns;
    if (svc->cfg.max_memory == 0)
        svc->cfg.max_memory = SVC_DEF_MAX_MEMORY;
    if (svc->cfg.max_outstanding == 0)
        svc->cfg.max_outstanding = SVC_DEF_MAX_OUTSTANDING;
    if (svc->cfg.idle_timeout_ms == 0)
        svc->cfg.idle_timeout_ms = SVC_DEF_IDLE_MS;
    if (svc->cfg.slow_msg_grace_ms == 0)
        svc->cfg.slow_msg_grace_ms = SVC_DEF_SLOW_GRACE_MS;
    if (svc->cfg.slow_msg_min_rate == 0)
        svc->cfg.slow_msg_min_rate = SVC_DEF_SLOW_MIN_RATE;
    if (svc->cfg.drc_entries == 0)
        svc->cfg.drc_entries = SVC_DEF_DRC;
    if (svc->cfg.handshake_timeout_ms <= 0)
        svc->cfg.handshake_timeout_ms = SVC_DEF_HS_MS;
    svc->queue_limit = (size_t)svc->cfg.max_outstanding * SVC_QUEUE_PER_CALL;
    if (svc->queue_limit < svc->cfg.max_msg)
        svc->queue_limit = svc->cfg.max_msg;
    svc->mem.limit = svc->cfg.max_memory;
    svc->mem.floor = SVC_MEM_FLOOR;

    /* Our own copy of the TLS settings (the caller's strings may go away). */
    svc->tlscfg = cfg->tlscfg;
    strs[0] = &svc->tlscfg.cert_file;
    strs[1] = &svc->tlscfg.key_file;
    strs[2] = &svc->tlscfg.ca_file;
    strs[3] = &svc->tlscfg.ciphersuites;
    strs[4] = &svc->tlscfg.keylog_file;
    for (int i = 0; i < 5; i++) {
        if (*strs[i] == NULL)
            continue;
        svc->tls_strs[i] = strdup(*strs[i]);
        if (svc->tls_strs[i] == NULL) {
            ret = -ENOMEM;
            goto fail;
        }
        *strs[i] = svc->tls_strs[i];
    }
    svc->tlscfg.role = KTLS_SERVER;
    svc->tlscfg.alpn = KRPC_ALPN; /* require_alpn: the caller's (strict mode) */
    svc->tlscfg.server_name = NULL;
    svc->tlscfg.timeout_ms = svc->cfg.handshake_timeout_ms;
    svc->cfg.tlscfg = svc->tlscfg;
    /* Certificate, key and CA are loaded once, here, for every connection:
     * a bad file stops the server now rather than failing every handshake.
     * A detached server (no loop) never makes a connection: nothing to load. */
    if (cfg->tls != KRPC_SVC_TLS_OFF && loop != NULL) {
        if (cfg->tls_ctx != NULL) {
            svc->tls_ctx = ktls_ctx_ref(cfg->tls_ctx);
        } else {
            char err[512];
            ret = ktls_ctx_new(&svc->tlscfg, &svc->tls_ctx, err, sizeof err);
            if (ret < 0) {
                krpc_log(KRPC_LOG_ERROR, "rpc server: %s", err);
                goto fail;
            }
            if (*ktls_ctx_warning(svc->tls_ctx) != '\0')
                krpc_log(KRPC_LOG_WARN, "rpc server: %s", ktls_ctx_warning(svc->tls_ctx));
        }
    }

    svc->nloops = loop != NULL && svc->cfg.threads > 1 ? svc->cfg.threads : 1;
    svc->loops = calloc(svc->nloops, sizeof(*svc->loops));
    if (svc->loops == NULL) {
        ret = -ENOMEM;
        goto fail;
    }
    /* Each loop keeps its own share of strangers (it evicts only its own). */
    svc->unauth_share = (svc->cfg.max_unauth_conns + svc->nloops - 1) / svc->nloops;
    for (unsigned i = 0; i < svc->nloops; i++) {
        struct svc_loop *sl = &svc->loops[i];
        sl->svc = svc;
        sl->efd = -1;
        pthread_mutex_init(&sl->qlock, NULL);
    }
    svc->loops[0].loop = loop;
    /* The other loops: each wakes on an eventfd when sockets are handed to it. */
    for (unsigned i = 1; i < svc->nloops; i++) {
        struct svc_loop *sl = &svc->loops[i];
        if ((ret = krpc_loop_new(&sl->loop)) < 0)
            goto fail;
        sl->owned = 1;
        sl->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (sl->efd < 0) {
            ret = -errno;
            goto fail;
        }
        if ((ret = krpc_loop_add_fd(sl->loop, sl->efd, EPOLLIN, svc_on_handoff, sl)) < 0)
            goto fail;
    }

    ret = krpc__drc_new(svc->cfg.drc_entries, &svc->drc);
    if (ret < 0)
        goto fail;
    krpc_timer_init(&svc->accept_timer, accept_timer_fn, svc);
    *out = svc;
    return 0;
fail:
    /* krpc_svc_free releases whatever was made (the TLS context, locks). */
    krpc_svc_free(svc);
    return ret;
}

int krpc__svc_new_detached(const struct krpc_svc_config *cfg, struct krpc_svc **out)
{
    return svc_create(NULL, cfg, out);
}

int krpc_svc_new(struct krpc_loop *loop, const struct krpc_svc_config *cfg, struct krpc_svc **out)
{
    struct krpc_svc *svc;
    struct sockaddr_storage ss;
    socklen_t sslen;
    int one = 1, ret;

    if (loop == NULL || out == NULL)
        return -EINVAL;
    ret = svc_create(loop, cfg, &svc);
    if (ret < 0)
        return ret;
    if (cfg->addrlen == 0) {
        /* No address: loopback, any port (never all interfaces by accident). */
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        memset(&ss, 0, sizeof(ss));
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sslen = sizeof(*in);
    } else {
        ss = cfg->addr;
        sslen = cfg->addrlen;
    }
    svc->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (svc->lfd < 0) {
        ret = -errno;
        goto fail;
    }
    setsockopt(svc->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(svc->lfd, (const struct sockaddr *)&ss, sslen) < 0 || listen(svc->lfd, SOMAXCONN) < 0) {
        char a[64];
        ret = -errno;
        krpc_log(KRPC_LOG_ERROR, "rpc server: cannot listen on %s: %s",
                 krpc_format_addr((const struct sockaddr *)&ss, a, sizeof(a)), strerror(errno));
        goto fail;
    }
    svc->addrlen = sizeof(svc->addr);
    if (getsockname(svc->lfd, (struct sockaddr *)&svc->addr, &svc->addrlen) < 0) {
        ret = -errno;
        goto fail;
    }
    ret = krpc_loop_add_fd(loop, svc->lfd, EPOLLIN, svc_on_listen, svc);
    if (ret < 0)
        goto fail;
    *out = svc;
    return 0;
fail:
    if (svc->lfd >= 0)
        close(svc->lfd);
    svc->lfd = -1;
    krpc_svc_free(svc);
    return ret;
}

int krpc_svc_start(struct krpc_svc *svc)
{
    int ret;

    if (svc == NULL)
        return -EINVAL;
    if (svc->nloops <= 1 || __atomic_load_n(&svc->started, __ATOMIC_ACQUIRE))
        return 0;
    for (unsigned i = 1; i < svc->nloops; i++) {
        struct svc_loop *sl = &svc->loops[i];
        ret = pthread_create(&sl->thread, NULL, svc_loop_thread, sl);
        if (ret != 0) {
            krpc_log(KRPC_LOG_ERROR, "rpc server: cannot start loop thread %u: %s", i, strerror(ret));
            krpc_svc_stop(svc);
            return -ret;
        }
        sl->thread_running = 1;
    }
    __atomic_store_n(&svc->started, 1, __ATOMIC_RELEASE);
    return 0;
}

void krpc_svc_stop(struct krpc_svc *svc)
{
    if (svc == NULL)
        return;
    __atomic_store_n(&svc->started, 0, __ATOMIC_RELEASE);
    for (unsigned i = 1; i < svc->nloops; i++) {
        struct svc_loop *sl = &svc->loops[i];
        if (!sl->thread_running)
            continue;
        krpc_loop_stop(sl->loop);
        pthread_join(sl->thread, NULL);
        sl->thread_running = 0;
    }
}

unsigned krpc_svc_threads(const struct krpc_svc *svc)
{
    return svc != NULL ? svc->nloops : 0;
}

struct krpc_loop *krpc_svc_req_loop(const struct krpc_svc_req *req)
{
    const struct svc_loop *sl = req != NULL ? req->home : NULL;

    return sl != NULL ? sl->loop : NULL;
}

int krpc_svc_register(struct krpc_svc *svc, const struct krpc_prog_desc *prog)
{
    if (svc == NULL || prog == NULL || (prog->nprocs > 0 && prog->procs == NULL))
        return -EINVAL;
    /* The table is read by every loop without a lock: fixed once they run. */
    if (__atomic_load_n(&svc->started, __ATOMIC_ACQUIRE))
        return -EBUSY;
    for (size_t i = 0; i < svc->nprogs; i++)
        if (svc->progs[i].prog == prog->prog && svc->progs[i].vers == prog->vers)
            return -EEXIST;
    if (svc->nprogs == svc->progcap) {
        size_t cap = svc->progcap ? svc->progcap * 2 : 8;
        struct krpc_prog_desc *p = realloc(svc->progs, cap * sizeof(*p));
        if (p == NULL)
            return -ENOMEM;
        svc->progs = p;
        svc->progcap = cap;
    }
    svc->progs[svc->nprogs++] = *prog;
    return 0;
}

int krpc_svc_unregister(struct krpc_svc *svc, uint32_t prog, uint32_t vers)
{
    if (svc == NULL)
        return -EINVAL;
    if (__atomic_load_n(&svc->started, __ATOMIC_ACQUIRE))
        return -EBUSY;
    for (size_t i = 0; i < svc->nprogs; i++) {
        if (svc->progs[i].prog == prog && svc->progs[i].vers == vers) {
            /* Order does not matter: dispatch searches the whole table. */
            svc->progs[i] = svc->progs[--svc->nprogs];
            return 0;
        }
    }
    return -ENOENT;
}

int krpc_svc_addr(const struct krpc_svc *svc, struct sockaddr_storage *ss, socklen_t *len)
{
    if (svc == NULL || svc->lfd < 0)
        return -ENOTCONN;
    *ss = svc->addr;
    *len = svc->addrlen;
    return 0;
}

uint16_t krpc_svc_port(const struct krpc_svc *svc)
{
    if (svc == NULL || svc->lfd < 0)
        return 0;
    if (svc->addr.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&svc->addr)->sin_port);
    if (svc->addr.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&svc->addr)->sin6_port);
    return 0;
}

void krpc_svc_reply(struct krpc_svc_req *req, int status, struct mb_chain *res)
{
    struct svc_req *r = (struct svc_req *)req;
    struct krpc_svc *svc;
    struct svc_conn *sc;
    struct mb_chain reply = MB_CHAIN_INIT, empty = MB_CHAIN_INIT;
    char what[128];

    if (req == NULL)
        return;
    svc = req->svc;
    sc = req->conn;
    req_unlink(req->home, r);
    if (sc != NULL)
        sc->deferred--;
    if (status == KRPC_SVC_DEFER)
        status = KRPC_SYSTEM_ERR;
    snprintf(what, sizeof(what), "deferred prog %u vers %u proc %u", req->prog, req->vers, req->proc);
    if (put_result(svc, &reply, req->xid, status, res != NULL ? res : &empty, what) != 0) {
        krpc__drc_forget(svc->drc, req->drc);
        req_free(r);
        return;
    }
    ST_INC(svc, replies);
    /* Cached even when the connection is gone: the client's retransmission
     * on its new connection gets this reply. */
    if (req->drc != NULL)
        krpc__drc_complete(svc->drc, req->drc, &reply);
    if (sc != NULL && !sc->closing && sc->svc != NULL)
        conn_send(sc, &reply);
    mb_chain_free(&reply);
    req_free(r);
}

void krpc_svc_stats_get(const struct krpc_svc *svc, struct krpc_svc_stats *out)
{
    /* Every field is a uint64_t counter: copy them one by one with atomic
     * loads, so a copy taken while loops run has no torn values. */
    const uint64_t *src = (const uint64_t *)&svc->st;
    uint64_t *dst = (uint64_t *)out;

    _Static_assert(sizeof(struct krpc_svc_stats) % sizeof(uint64_t) == 0, "stats are uint64_t counters");
    for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
    out->mem_used = __atomic_load_n(&svc->mem.used, __ATOMIC_RELAXED);
}

const struct krpc_svc_stats *krpc_svc_stats(struct krpc_svc *svc)
{
    krpc_svc_stats_get(svc, &svc->snap);
    return &svc->snap;
}

int krpc_svc_reload_tls(struct krpc_svc *svc, const struct ktls_config *cfg, char *err, size_t errlen)
{
    struct ktls_config k;
    struct ktls_ctx *ctx, *old;
    int ret;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (svc == NULL || cfg == NULL || svc->cfg.tls == KRPC_SVC_TLS_OFF) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "TLS is off on this server");
        return -EINVAL;
    }
    /* The same settings krpc_svc_new forces. */
    k = *cfg;
    k.role = KTLS_SERVER;
    k.alpn = KRPC_ALPN;
    k.server_name = NULL;
    k.timeout_ms = svc->cfg.handshake_timeout_ms;
    if ((ret = ktls_ctx_new(&k, &ctx, err, errlen)) < 0)
        return ret; /* the current context stays */
    if (*ktls_ctx_warning(ctx) != '\0')
        krpc_log(KRPC_LOG_WARN, "rpc server: %s", ktls_ctx_warning(ctx));
    pthread_mutex_lock(&svc->tls_lock);
    old = svc->tls_ctx;
    svc->tls_ctx = ctx;
    pthread_mutex_unlock(&svc->tls_lock);
    ktls_ctx_unref(old); /* freed when its last handshake lets go */
    return 0;
}

int krpc__svc_dispatch_msg(struct krpc_svc *svc, const struct sockaddr *peer, socklen_t peerlen, int tls,
                           struct mb_chain *msg, struct mb_chain *reply)
{
    struct call_src src;
    char peerstr[64] = "(detached)";

    if (peer != NULL)
        krpc_format_addr(peer, peerstr, sizeof(peerstr));
    src.sl = &svc->loops[0];
    src.sc = NULL;
    src.peer = peer;
    src.peerlen = peerlen;
    src.peerstr = peerstr;
    src.tls = tls;
    src.subject = "";
    src.user = "";
    return dispatch(svc, &src, msg, reply);
}

unsigned krpc__svc_deferred(const struct krpc_svc *svc)
{
    unsigned n = 0;

    for (unsigned i = 0; i < svc->nloops; i++)
        n += __atomic_load_n(&svc->loops[i].ndeferred, __ATOMIC_RELAXED);
    return n;
}

void krpc_svc_set_free_hook(struct krpc_svc *svc, void (*fn)(void *arg), void *arg)
{
    svc->free_hook = fn;
    svc->free_hook_arg = arg;
}

void krpc_svc_free(struct krpc_svc *svc)
{
    if (svc == NULL)
        return;
    krpc_svc_stop(svc);
    /* With every loop stopped, whoever holds deferred requests lets go of
     * them (they are freed below and must not be answered afterwards). */
    if (svc->free_hook != NULL)
        svc->free_hook(svc->free_hook_arg);
    if (svc->lfd >= 0) {
        krpc_loop_del_fd(svc->loops[0].loop, svc->lfd);
        close(svc->lfd);
        svc->lfd = -1;
    }
    if (svc->loops != NULL && svc->loops[0].loop != NULL)
        krpc_timer_cancel(svc->loops[0].loop, &svc->accept_timer);
    for (unsigned i = 0; svc->loops != NULL && i < svc->nloops; i++)
        svc_loop_free(&svc->loops[i]);
    if (svc->rl.suppressed > 0)
        krpc_log(KRPC_LOG_WARN, "rpc server: %llu connection log lines suppressed (more than %d a second)",
                 (unsigned long long)svc->rl.suppressed, SVC_LOG_PER_SEC);
    krpc__drc_free(svc->drc);
    ktls_ctx_unref(svc->tls_ctx);
    pthread_mutex_destroy(&svc->tls_lock);
    for (int i = 0; i < 5; i++)
        free(svc->tls_strs[i]);
    pthread_mutex_destroy(&svc->handler_lock);
    pthread_mutex_destroy(&svc->rl.lock);
    free(svc->loops);
    free(svc->progs);
    free(svc);
}
