/*
 * fuzz_svc_call.c - arbitrary call messages through the server's dispatch
 * (krpc__svc_dispatch_msg on a server without a listener): header decoding,
 * credentials and the RFC 9289 rules under every TLS policy, the program
 * table, handlers that decode arguments, fail or defer, and the
 * duplicate-request cache (each message is dispatched several times, and
 * the cache is tiny so entries get evicted).
 *
 * Byte 0: bits 0-1 TLS policy, bit 2 "arrived inside TLS", bits 3-4 extra
 * dispatches of the same message (cache hits), bit 5 answer deferred calls
 * between dispatches, bit 6 split the message into small links, bit 7 build
 * a valid header from the next bytes (prog/vers/proc/flavor picked from
 * small sets) so the input reaches the handlers; the rest is the message
 * (or, with bit 7, the arguments).
 *
 * Every reply must decode as a reply with the call's XID; nothing may be
 * left in the pool after the server is freed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "krpc/svc_int.h"

#define FP 0x20004444u

static struct krpc_svc_req *deferred[16];
static unsigned ndeferred;
static unsigned execs;

static int f_sum(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res, void *arg)
{
    uint32_t n = krpc_xdr_get_u32(args), sum = 0;
    if (n > 64)
        return KRPC_GARBAGE_ARGS;
    for (uint32_t i = 0; i < n; i++)
        sum += krpc_xdr_get_u32(args);
    if (krpc_xdr_dec_error(args) != 0)
        return KRPC_GARBAGE_ARGS;
    krpc_xdr_put_u32(res, sum);
    execs++;
    return KRPC_SUCCESS;
}

static int f_opaque(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res, void *arg)
{
    struct mb_chain c = MB_CHAIN_INIT;
    char s[32];
    if (krpc_xdr_get_string(args, s, sizeof(s)) < 0 || krpc_xdr_get_opaque_ref(args, 4096, &c) < 0) {
        mb_chain_free(&c);
        return KRPC_GARBAGE_ARGS;
    }
    krpc_xdr_put_string(res, s);
    krpc_xdr_put_opaque_chain(res, &c);
    mb_chain_free(&c);
    return KRPC_SUCCESS;
}

static int f_fail(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res, void *arg)
{
    uint32_t v = krpc_xdr_get_u32(args);
    krpc_xdr_put_u32(res, v);
    return v % 3 == 0 ? KRPC_SYSTEM_ERR : v % 3 == 1 ? KRPC_GARBAGE_ARGS : 77 /* bogus status */;
}

static int f_defer(struct krpc_svc_req *req, struct krpc_xdr_dec *args, struct krpc_xdr_enc *res, void *arg)
{
    if (ndeferred == sizeof(deferred) / sizeof(deferred[0]))
        return KRPC_SYSTEM_ERR;
    deferred[ndeferred++] = req;
    return KRPC_SVC_DEFER;
}

static const struct krpc_proc_desc procs[] = {
    {NULL, KRPC_PROC_IDEMPOTENT, "NULL"}, {f_sum, 0, "SUM"},     {f_opaque, KRPC_PROC_IDEMPOTENT, "OPAQUE"},
    {f_fail, 0, "FAIL"},                  {f_defer, 0, "DEFER"}, {NULL, 0, "NONE"},
};

static void answer_deferred(struct krpc_svc *svc)
{
    while (ndeferred > 0) {
        struct krpc_svc_req *req = deferred[--ndeferred];
        struct mb_chain res = MB_CHAIN_INIT;
        struct krpc_xdr_enc x;
        krpc_xdr_enc_init(&x, &res);
        krpc_xdr_put_u32(&x, req->xid);
        krpc_svc_reply(req, ndeferred % 2 ? KRPC_SUCCESS : KRPC_SYSTEM_ERR, &res);
    }
}

static void check_reply(struct mb_chain *reply, const struct mb_chain *msg)
{
    struct krpc_xdr_dec d;
    struct krpc_reply_hdr h;
    uint32_t xid = 0;

    if (mb_chain_check(reply) != 0)
        __builtin_trap();
    krpc_xdr_dec_init(&d, reply, 0, reply->len);
    if (krpc_decode_reply_hdr(&d, &h) != 0)
        __builtin_trap();
    if (msg->len >= 4) {
        uint8_t b[4];
        mb_chain_copy_out(msg, 0, 4, b);
        xid = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        if (h.xid != xid)
            __builtin_trap();
    }
}

/* The message as a chain, in links of 1..8 bytes when split. */
static void make_msg(struct mb_chain *c, const uint8_t *p, size_t n, int split)
{
    size_t off = 0;

    if (!split) {
        mb_chain_append_bytes(c, p, n);
        return;
    }
    while (off < n) {
        size_t len = (size_t)(p[(off * 7) % n] % 8) + 1;
        struct mb *m;
        if (len > n - off)
            len = n - off;
        m = mb_append_inline(c, len);
        if (m == NULL)
            return;
        memcpy(mb_store_ptr(m->st, m->off), p + off, len);
        off += len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint32_t progs[] = {FP, FP + 1, 100003, 0};
    static const uint32_t flavors[] = {KRPC_AUTH_NONE, KRPC_AUTH_SYS, KRPC_AUTH_TLS, 6, 0x80000000u};
    struct krpc_svc_config cfg;
    struct krpc_svc *svc;
    struct krpc_prog_desc p1 = {FP, 2, sizeof(procs) / sizeof(procs[0]), procs, NULL, 0};
    struct krpc_prog_desc p2 = {FP, 4, 2, procs, NULL, 0};
    struct sockaddr_storage peer;
    socklen_t peerlen = 0;
    struct mb_chain base = MB_CHAIN_INIT;
    uint8_t flags;
    int tls, reps, split;

    static int quiet;

    if (!quiet) {
        krpc_log_set_level(KRPC_LOG_ERROR); /* malformed input is the point */
        quiet = 1;
    }
    if (size < 1)
        return 0;
    flags = data[0];
    data++;
    size--;
    if (size > 65536)
        return 0;
    memset(&cfg, 0, sizeof(cfg));
    cfg.tls = (enum krpc_svc_tls)((flags & 3) % 3);
    cfg.tlscfg.cert_file = "/nonexistent/cert.pem"; /* never loaded: no connection */
    cfg.tlscfg.key_file = "/nonexistent/key.pem";
    cfg.drc_entries = 2;
    tls = (flags >> 2) & 1;
    reps = 1 + ((flags >> 3) & 3);
    split = (flags >> 6) & 1;
    if (krpc__svc_new_detached(&cfg, &svc) != 0)
        return 0;
    krpc_svc_register(svc, &p1);
    krpc_svc_register(svc, &p2);
    memset(&peer, 0, sizeof(peer));
    krpc_parse_addr("192.0.2.7:700", &peer, &peerlen);

    if (flags & 0x80) {
        /* A valid header from 4 selector bytes, then the rest as arguments. */
        struct krpc_call_hdr h;
        struct krpc_xdr_enc x;
        struct mb_chain hdr = MB_CHAIN_INIT;
        uint8_t sel[4] = {0, 0, 0, 0};
        memcpy(sel, data, size < 4 ? size : 4);
        data += size < 4 ? size : 4;
        size -= size < 4 ? size : 4;
        memset(&h, 0, sizeof(h));
        h.xid = sel[0] | (uint32_t)sel[1] << 8;
        h.prog = progs[sel[1] % 4];
        h.vers = sel[2] % 6;
        h.proc = sel[3] % 8;
        h.cred.flavor = flavors[(sel[2] >> 4) % 5];
        if (h.cred.flavor == KRPC_AUTH_SYS) {
            strcpy(h.cred.machine, "fuzz");
            h.cred.ngids = sel[3] % 17;
        }
        krpc_xdr_enc_init(&x, &hdr);
        krpc_encode_call_hdr(&x, &h);
        if (krpc_xdr_enc_error(&x) != 0) {
            mb_chain_free(&hdr);
            krpc_svc_free(svc);
            return 0;
        }
        mb_chain_concat(&base, &hdr);
        if (size > 0)
            make_msg(&base, data, size, split);
    } else if (size > 0) {
        make_msg(&base, data, size, split);
    }

    for (int r = 0; r < reps; r++) {
        struct mb_chain msg = MB_CHAIN_INIT, reply = MB_CHAIN_INIT;
        int act;
        if (mb_chain_copy_ref(&msg, &base, 0, base.len) != 0)
            break;
        act = krpc__svc_dispatch_msg(svc, (struct sockaddr *)&peer, peerlen, tls, &msg, &reply);
        if (msg.len != 0)
            __builtin_trap(); /* always consumed */
        if (act == KRPC_SVC_ACT_REPLY || act == KRPC_SVC_ACT_STARTTLS)
            check_reply(&reply, &base);
        else if (reply.len != 0)
            __builtin_trap();
        if (act == KRPC_SVC_ACT_STARTTLS && (tls || cfg.tls == KRPC_SVC_TLS_OFF))
            __builtin_trap();
        mb_chain_free(&reply);
        if (flags & 0x20)
            answer_deferred(svc);
    }
    if (krpc__svc_deferred(svc) != ndeferred)
        __builtin_trap();
    /* Half the time answer the rest, half the time let krpc_svc_free drop them. */
    if (flags & 0x01)
        answer_deferred(svc);
    ndeferred = 0;
    krpc_svc_free(svc);
    mb_chain_free(&base);
    return 0;
}
