/*
 * test_krpc_msg.c - RPC v2 call and reply headers (RFC 5531): round trips
 * for every credential and reply variant, a byte-exact call header, every
 * truncation and the malformed cases; also the address and log helpers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rpctls/krpc.h"
#include "rpctls/mbuf.h"
#include "test.h"

static void put_words(struct mb_chain *c, const uint32_t *w, size_t n)
{
    struct krpc_xdr_enc x;
    krpc_xdr_enc_init(&x, c);
    for (size_t i = 0; i < n; i++)
        krpc_xdr_put_u32(&x, w[i]);
}

static int cred_equal(const struct krpc_cred *a, const struct krpc_cred *b)
{
    if (a->flavor != b->flavor)
        return 0;
    if (a->flavor != KRPC_AUTH_SYS)
        return 1;
    return a->stamp == b->stamp && strcmp(a->machine, b->machine) == 0 && a->uid == b->uid && a->gid == b->gid &&
           a->ngids == b->ngids && memcmp(a->gids, b->gids, a->ngids * sizeof a->gids[0]) == 0;
}

static void sys_cred(struct krpc_cred *c, size_t mlen, uint32_t ngids)
{
    memset(c, 0, sizeof *c);
    c->flavor = KRPC_AUTH_SYS;
    c->stamp = 0x5eed;
    for (size_t i = 0; i < mlen; i++)
        c->machine[i] = (char)('a' + i % 26);
    c->uid = 1000;
    c->gid = 100;
    c->ngids = ngids;
    for (uint32_t i = 0; i < ngids; i++)
        c->gids[i] = 5000 + i;
}

static void test_call_round_trip(void)
{
    struct krpc_call_hdr in[6];
    memset(in, 0, sizeof in);
    in[0].cred.flavor = KRPC_AUTH_NONE;
    in[1].cred.flavor = KRPC_AUTH_TLS;
    sys_cred(&in[2].cred, 0, 0);
    sys_cred(&in[3].cred, KRPC_AUTH_SYS_MAX_MACHINE, KRPC_AUTH_SYS_MAX_GIDS);
    sys_cred(&in[4].cred, 5, 3); /* machine name with padding */
    sys_cred(&in[5].cred, 254, 15);
    for (int i = 0; i < 6; i++) {
        in[i].xid = 0xabc00000u + (uint32_t)i;
        in[i].prog = 100003;
        in[i].vers = 3;
        in[i].proc = (uint32_t)i;
        in[i].verf_flavor = KRPC_AUTH_NONE;

        struct mb_chain c = MB_CHAIN_INIT;
        struct krpc_xdr_enc x;
        krpc_xdr_enc_init(&x, &c);
        krpc_encode_call_hdr(&x, &in[i]);
        krpc_xdr_put_u32(&x, 0xa1a2a3a4); /* first argument word */
        REQUIRE(krpc_xdr_enc_error(&x) == 0);

        struct krpc_call_hdr out;
        struct krpc_xdr_dec d;
        memset(&out, 0x55, sizeof out);
        krpc_xdr_dec_init(&d, &c, 0, c.len);
        CHECK_EQ(krpc_decode_call_hdr(&d, &out), 0);
        CHECK_EQ(out.xid, in[i].xid);
        CHECK_EQ(out.rpcvers, KRPC_RPCVERS);
        CHECK_EQ(out.prog, 100003);
        CHECK_EQ(out.vers, 3);
        CHECK_EQ(out.proc, (uint32_t)i);
        CHECK(cred_equal(&out.cred, &in[i].cred));
        CHECK_EQ(out.verf_flavor, KRPC_AUTH_NONE);
        CHECK_EQ(krpc_xdr_get_u32(&d), 0xa1a2a3a4);
        CHECK_EQ(krpc_xdr_remaining(&d), 0);
        CHECK_EQ(krpc_xdr_dec_error(&d), 0);
        mb_chain_free(&c);
    }

    /* Encoder refuses what it cannot express. */
    struct krpc_call_hdr bad;
    memset(&bad, 0, sizeof bad);
    sys_cred(&bad.cred, 3, KRPC_AUTH_SYS_MAX_GIDS + 1);
    struct mb_chain c = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    krpc_xdr_enc_init(&x, &c);
    krpc_encode_call_hdr(&x, &bad);
    CHECK_EQ(krpc_xdr_enc_error(&x), -EINVAL);
    mb_chain_free(&c);
}

/* A call header against bytes written out by hand from RFC 5531's layout. */
static void test_call_known_bytes(void)
{
    static const unsigned char expect[] = {
        0x12, 0x34, 0x56, 0x78, /* xid */
        0x00, 0x00, 0x00, 0x00, /* msg_type CALL */
        0x00, 0x00, 0x00, 0x02, /* rpcvers 2 */
        0x00, 0x01, 0x86, 0xa3, /* prog 100003 (NFS) */
        0x00, 0x00, 0x00, 0x03, /* vers 3 */
        0x00, 0x00, 0x00, 0x01, /* proc 1 */
        0x00, 0x00, 0x00, 0x01, /* cred flavor AUTH_SYS */
        0x00, 0x00, 0x00, 0x24, /* cred body length 36 */
        0x00, 0x00, 0x0a, 0xbc, /* stamp */
        0x00, 0x00, 0x00, 0x05, /* machinename length 5 */
        'h',  'o',  's',  't',  '5',  0x00, 0x00, 0x00, /* "host5" + padding */
        0x00, 0x00, 0x03, 0xe8, /* uid 1000 */
        0x00, 0x00, 0x00, 0x64, /* gid 100 */
        0x00, 0x00, 0x00, 0x02, /* 2 gids */
        0x00, 0x00, 0x00, 0x64, /* 100 */
        0x00, 0x00, 0x00, 0xc8, /* 200 */
        0x00, 0x00, 0x00, 0x00, /* verf flavor AUTH_NONE */
        0x00, 0x00, 0x00, 0x00, /* verf length 0 */
    };
    struct krpc_call_hdr h;
    memset(&h, 0, sizeof h);
    h.xid = 0x12345678;
    h.prog = 100003;
    h.vers = 3;
    h.proc = 1;
    h.cred.flavor = KRPC_AUTH_SYS;
    h.cred.stamp = 0xabc;
    strcpy(h.cred.machine, "host5");
    h.cred.uid = 1000;
    h.cred.gid = 100;
    h.cred.ngids = 2;
    h.cred.gids[0] = 100;
    h.cred.gids[1] = 200;
    struct mb_chain c = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    krpc_xdr_enc_init(&x, &c);
    krpc_encode_call_hdr(&x, &h);
    REQUIRE(c.len == sizeof expect);
    unsigned char got[sizeof expect];
    mb_chain_copy_out(&c, 0, c.len, got);
    CHECK(memcmp(got, expect, sizeof expect) == 0);
    mb_chain_free(&c);

    /* And the hand-written bytes decode to the same header. */
    mb_chain_append_bytes(&c, expect, sizeof expect);
    struct krpc_xdr_dec d;
    struct krpc_call_hdr out;
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    CHECK_EQ(krpc_decode_call_hdr(&d, &out), 0);
    CHECK(cred_equal(&out.cred, &h.cred));
    CHECK_EQ(out.xid, 0x12345678);
    CHECK_EQ(krpc_xdr_remaining(&d), 0);
    mb_chain_free(&c);
}

static int encode_reply(const struct krpc_reply_hdr *h, struct mb_chain *c)
{
    struct krpc_xdr_enc x;
    krpc_xdr_enc_init(&x, c);
    krpc_encode_reply_hdr(&x, h);
    return krpc_xdr_enc_error(&x);
}

#define NREPLIES 14

static void make_replies(struct krpc_reply_hdr *r)
{
    memset(r, 0, NREPLIES * sizeof *r);
    for (int i = 0; i < NREPLIES; i++)
        r[i].xid = 0x700 + (uint32_t)i;
    /* Accepted: every accept_stat; the first with the STARTTLS verifier. */
    for (int i = 0; i <= KRPC_SYSTEM_ERR; i++) {
        r[i].reply_stat = KRPC_MSG_ACCEPTED;
        r[i].accept_stat = (uint32_t)i;
    }
    r[0].verf_len = 8;
    memcpy(r[0].verf, KRPC_STARTTLS_VERF, 8);
    r[KRPC_PROG_MISMATCH].mismatch_low = 2;
    r[KRPC_PROG_MISMATCH].mismatch_high = 4;
    r[KRPC_GARBAGE_ARGS].verf_flavor = 6;
    r[KRPC_GARBAGE_ARGS].verf_len = KRPC_MAX_AUTH_BYTES; /* the largest verifier */
    memset(r[KRPC_GARBAGE_ARGS].verf, 0x3c, KRPC_MAX_AUTH_BYTES);
    /* Denied: RPC_MISMATCH, and AUTH_ERROR with each auth_stat. */
    r[6].reply_stat = KRPC_MSG_DENIED;
    r[6].reject_stat = KRPC_RPC_MISMATCH;
    r[6].mismatch_low = r[6].mismatch_high = 2;
    for (int i = 7; i < NREPLIES; i++) {
        r[i].reply_stat = KRPC_MSG_DENIED;
        r[i].reject_stat = KRPC_AUTH_ERROR;
        r[i].auth_stat = (uint32_t)(i - 7);
    }
}

static void test_reply_round_trip(void)
{
    struct krpc_reply_hdr r[NREPLIES];
    make_replies(r);
    for (int i = 0; i < NREPLIES; i++) {
        struct mb_chain c = MB_CHAIN_INIT;
        REQUIRE(encode_reply(&r[i], &c) == 0);
        struct krpc_reply_hdr out;
        struct krpc_xdr_dec d;
        memset(&out, 0x55, sizeof out);
        krpc_xdr_dec_init(&d, &c, 0, c.len);
        CHECK_EQ(krpc_decode_reply_hdr(&d, &out), 0);
        CHECK_EQ(krpc_xdr_remaining(&d), 0);
        CHECK_EQ(out.xid, r[i].xid);
        CHECK_EQ(out.reply_stat, r[i].reply_stat);
        CHECK_EQ(out.accept_stat, r[i].accept_stat);
        CHECK_EQ(out.reject_stat, r[i].reject_stat);
        CHECK_EQ(out.auth_stat, r[i].auth_stat);
        CHECK_EQ(out.mismatch_low, r[i].mismatch_low);
        CHECK_EQ(out.mismatch_high, r[i].mismatch_high);
        CHECK_EQ(out.verf_flavor, r[i].verf_flavor);
        CHECK_EQ(out.verf_len, r[i].verf_len);
        CHECK(memcmp(out.verf, r[i].verf, r[i].verf_len) == 0);
        mb_chain_free(&c);
    }
    /* The STARTTLS reply, byte for byte. */
    static const unsigned char starttls[] = {0, 0, 7, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8,
                                             'S', 'T', 'A', 'R', 'T', 'T', 'L', 'S', 0, 0, 0, 0};
    struct mb_chain c = MB_CHAIN_INIT;
    encode_reply(&r[0], &c);
    unsigned char got[sizeof starttls];
    REQUIRE(c.len == sizeof starttls);
    mb_chain_copy_out(&c, 0, c.len, got);
    CHECK(memcmp(got, starttls, sizeof starttls) == 0);
    mb_chain_free(&c);

    /* Encoder refusals. */
    struct krpc_reply_hdr bad = r[0];
    bad.verf_len = KRPC_MAX_AUTH_BYTES + 1;
    CHECK_EQ(encode_reply(&bad, &c), -EINVAL);
    mb_chain_free(&c);
    bad = r[6];
    bad.reject_stat = 2;
    CHECK_EQ(encode_reply(&bad, &c), -EINVAL);
    mb_chain_free(&c);
    bad.reply_stat = 2;
    CHECK_EQ(encode_reply(&bad, &c), -EINVAL);
    mb_chain_free(&c);
}

/* Every proper prefix of a header is refused, and never read past. */
static void test_truncated(void)
{
    struct krpc_call_hdr h;
    memset(&h, 0, sizeof h);
    h.xid = 1;
    h.prog = 100003;
    h.vers = 3;
    sys_cred(&h.cred, 7, 5);
    struct mb_chain c = MB_CHAIN_INIT;
    struct krpc_xdr_enc x;
    krpc_xdr_enc_init(&x, &c);
    krpc_encode_call_hdr(&x, &h);
    krpc_xdr_put_u32(&x, 0); /* bytes past the bound, which must not help */
    size_t full = c.len - 4;
    int all = 1;
    for (size_t n = 0; n < full; n++) {
        struct krpc_xdr_dec d;
        struct krpc_call_hdr out;
        krpc_xdr_dec_init(&d, &c, 0, n);
        all &= krpc_decode_call_hdr(&d, &out) == -EBADMSG;
        all &= krpc_xdr_dec_error(&d) != 0;
    }
    CHECK(all);
    mb_chain_free(&c);

    struct krpc_reply_hdr r[NREPLIES];
    make_replies(r);
    for (int i = 0; i < NREPLIES; i++) {
        encode_reply(&r[i], &c);
        all = 1;
        for (size_t n = 0; n < c.len; n++) {
            struct krpc_xdr_dec d;
            struct krpc_reply_hdr out;
            krpc_xdr_dec_init(&d, &c, 0, n);
            all &= krpc_decode_reply_hdr(&d, &out) == -EBADMSG;
        }
        CHECK(all);
        mb_chain_free(&c);
    }
}

static int decode_call_words(const uint32_t *w, size_t n, struct krpc_call_hdr *out)
{
    struct mb_chain c = MB_CHAIN_INIT;
    struct krpc_xdr_dec d;
    put_words(&c, w, n);
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    int r = krpc_decode_call_hdr(&d, out);
    if (r == 0 && krpc_xdr_remaining(&d) != 0)
        r = 1; /* header did not end where expected */
    mb_chain_free(&c);
    return r;
}

static void test_malformed_calls(void)
{
    struct krpc_call_hdr out;
    enum { HDR = 6 };
    uint32_t w[200];
    const uint32_t head[HDR] = {9, KRPC_MSG_CALL, 2, 100003, 3, 0};
    memcpy(w, head, sizeof head);

    /* Opaque credential bodies of 400 bytes are fine, 401 is not. */
    for (uint32_t flavor = 0; flavor <= 7; flavor += 7) {
        for (uint32_t len = 399; len <= 401; len++) {
            size_t n = HDR;
            w[n++] = flavor;
            w[n++] = len;
            for (uint32_t i = 0; i < (len + 3) / 4; i++)
                w[n++] = 0;
            w[n++] = KRPC_AUTH_NONE;
            w[n++] = 0;
            CHECK_EQ(decode_call_words(w, n, &out), len <= 400 ? 0 : -EBADMSG);
            if (len <= 400)
                CHECK_EQ(out.cred.flavor, flavor);
            /* The same limit for the verifier. */
            n = HDR;
            w[n++] = KRPC_AUTH_NONE;
            w[n++] = 0;
            w[n++] = flavor;
            w[n++] = len;
            for (uint32_t i = 0; i < (len + 3) / 4; i++)
                w[n++] = 0;
            CHECK_EQ(decode_call_words(w, n, &out), len <= 400 ? 0 : -EBADMSG);
        }
    }
    /* A credential length far past the message. */
    size_t n = HDR;
    w[n++] = KRPC_AUTH_NONE;
    w[n++] = 0xffffffffu;
    w[n++] = 0;
    w[n++] = 0;
    CHECK_EQ(decode_call_words(w, n, &out), -EBADMSG);

    /* AUTH_SYS: built by hand so that counts can lie. */
    struct {
        uint32_t mlen, ngids;
        int32_t body_delta; /* added to the correct body length */
        int expect;
    } sys[] = {
        {255, 16, 0, 0},   {256, 16, 0, -EBADMSG}, {10, 17, 0, -EBADMSG}, {10, 3, 4, -EBADMSG},
        {10, 3, -4, -EBADMSG}, {0, 0, 0, 0},     {10, 0xffffffffu, 0, -EBADMSG},
    };
    for (size_t t = 0; t < sizeof sys / sizeof sys[0]; t++) {
        uint32_t mwords = (sys[t].mlen + 3) / 4;
        uint32_t ng = sys[t].ngids > 17 ? 0 : sys[t].ngids;
        uint32_t body = 4 + 4 + mwords * 4 + 4 + 4 + 4 + ng * 4;
        n = HDR;
        w[n++] = KRPC_AUTH_SYS;
        w[n++] = body + (uint32_t)sys[t].body_delta;
        w[n++] = 1;              /* stamp */
        w[n++] = sys[t].mlen;    /* machinename length */
        for (uint32_t i = 0; i < mwords; i++)
            w[n++] = 0x61616161; /* "aaaa" */
        w[n++] = 0;              /* uid */
        w[n++] = 0;              /* gid */
        w[n++] = sys[t].ngids;
        for (uint32_t i = 0; i < ng; i++)
            w[n++] = i;
        if (sys[t].body_delta > 0)
            w[n++] = 0;
        w[n++] = KRPC_AUTH_NONE;
        w[n++] = 0;
        int r = decode_call_words(w, n, &out);
        CHECK_EQ(r, sys[t].expect);
        if (r != sys[t].expect)
            fprintf(stderr, "  case %zu\n", t);
        if (r == 0)
            CHECK_EQ(strlen(out.cred.machine), sys[t].mlen);
    }
    /* A machine name with a NUL inside. */
    n = HDR;
    const uint32_t nul[] = {KRPC_AUTH_SYS, 24, 0, 4, 0x61006161, 0, 0, 0, KRPC_AUTH_NONE, 0};
    memcpy(w + n, nul, sizeof nul);
    CHECK_EQ(decode_call_words(w, n + 10, &out), -EBADMSG);

    /* Not a call; and RPC version 3, which decodes (the caller answers
     * RPC_MISMATCH). */
    const uint32_t reply[] = {9, KRPC_MSG_REPLY, 2, 1, 1, 0, 0, 0, 0, 0};
    CHECK_EQ(decode_call_words(reply, 10, &out), -EBADMSG);
    const uint32_t v3[] = {9, KRPC_MSG_CALL, 3, 1, 1, 0, 0, 0, 0, 0};
    CHECK_EQ(decode_call_words(v3, 10, &out), 0);
    CHECK_EQ(out.rpcvers, 3);
}

static void test_malformed_replies(void)
{
    struct {
        uint32_t w[12];
        size_t n;
    } bad[] = {
        {{1, KRPC_MSG_CALL, 0, 0, 0, 0}, 6},                      /* a call */
        {{1, KRPC_MSG_REPLY, 2, 0, 0, 0}, 6},                     /* reply_stat 2 */
        {{1, KRPC_MSG_REPLY, KRPC_MSG_DENIED, 2, 0}, 5},          /* reject_stat 2 */
        {{1, KRPC_MSG_REPLY, KRPC_MSG_ACCEPTED, 0, 401}, 5},      /* verifier > 400 */
        {{1, KRPC_MSG_REPLY, KRPC_MSG_ACCEPTED, 0, 0xfffffffd, 0}, 6},
        {{1, KRPC_MSG_REPLY, KRPC_MSG_ACCEPTED, 0, 4, 0}, 6},    /* verifier ok, accept_stat cut */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct mb_chain c = MB_CHAIN_INIT;
        struct krpc_xdr_dec d;
        struct krpc_reply_hdr out;
        put_words(&c, bad[i].w, bad[i].n);
        krpc_xdr_dec_init(&d, &c, 0, c.len);
        CHECK_EQ(krpc_decode_reply_hdr(&d, &out), -EBADMSG);
        CHECK(krpc_xdr_dec_error(&d) != 0); /* sticky for the caller too */
        mb_chain_free(&c);
    }
    /* An unknown accept_stat is well-formed (void body): the caller decides. */
    const uint32_t unk[] = {1, KRPC_MSG_REPLY, KRPC_MSG_ACCEPTED, 0, 0, 99};
    struct mb_chain c = MB_CHAIN_INIT;
    struct krpc_xdr_dec d;
    struct krpc_reply_hdr out;
    put_words(&c, unk, 6);
    krpc_xdr_dec_init(&d, &c, 0, c.len);
    CHECK_EQ(krpc_decode_reply_hdr(&d, &out), 0);
    CHECK_EQ(out.accept_stat, 99);
    mb_chain_free(&c);
}

static void test_names(void)
{
    CHECK(strcmp(krpc_accept_stat_name(KRPC_SUCCESS), "SUCCESS") == 0);
    CHECK(strcmp(krpc_accept_stat_name(KRPC_PROG_MISMATCH), "PROG_MISMATCH") == 0);
    CHECK(strcmp(krpc_accept_stat_name(KRPC_SYSTEM_ERR), "SYSTEM_ERR") == 0);
    CHECK(strstr(krpc_accept_stat_name(6), "UNKNOWN") != NULL);
    CHECK(strcmp(krpc_auth_stat_name(KRPC_AUTH_BADCRED), "AUTH_BADCRED") == 0);
    CHECK(strcmp(krpc_auth_stat_name(KRPC_AUTH_TOOWEAK), "AUTH_TOOWEAK") == 0);
    CHECK(strstr(krpc_auth_stat_name(0xffffffffu), "UNKNOWN") != NULL);
}

static void test_addr(void)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char buf[64];
    CHECK_EQ(krpc_parse_addr("10.1.2.3:2049", &ss, &len), 0);
    CHECK_EQ(len, sizeof(struct sockaddr_in));
    CHECK(strcmp(krpc_format_addr((struct sockaddr *)&ss, buf, sizeof buf), "10.1.2.3:2049") == 0);
    CHECK_EQ(krpc_parse_addr("111", &ss, &len), 0);
    CHECK(strcmp(krpc_format_addr((struct sockaddr *)&ss, buf, sizeof buf), "127.0.0.1:111") == 0);
    CHECK_EQ(krpc_parse_addr("[::1]:65535", &ss, &len), 0);
    CHECK_EQ(len, sizeof(struct sockaddr_in6));
    CHECK(strcmp(krpc_format_addr((struct sockaddr *)&ss, buf, sizeof buf), "[::1]:65535") == 0);
    CHECK_EQ(krpc_parse_addr("[fe80::1:2]:0", &ss, &len), 0);
    CHECK(strcmp(krpc_format_addr((struct sockaddr *)&ss, buf, sizeof buf), "[fe80::1:2]:0") == 0);
    CHECK_EQ(krpc_parse_addr("localhost:7", &ss, &len), 0);
    CHECK(strcmp(krpc_format_addr((struct sockaddr *)&ss, buf, sizeof buf), "127.0.0.1:7") == 0);
    static const char *const bad[] = {"",           ":80",         "1.2.3.4:",     "1.2.3.4:x", "1.2.3.4:65536",
                                      "1.2.3.4:-1", "1.2.3.4:+1",  "300.1.1.1:1",  "::1:80",    "[::1]80",
                                      "[::1]:",     "[1.2.3.4]:1", "[::1:80",      "host:1",    "1.2.3.4:99999999999999999999",
                                      "abc",        "1.2.3.4:1 ",  " 1.2.3.4:1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int r = krpc_parse_addr(bad[i], &ss, &len);
        CHECK_EQ(r, -EINVAL);
        if (r != -EINVAL)
            fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
    }
    struct fake_sa {
        sa_family_t f;
    } other = {AF_UNIX};
    CHECK(strcmp(krpc_format_addr((struct sockaddr *)&other, buf, sizeof buf), "?") == 0);
}

/* Log lines go to stderr with a timestamp and the level, filtered. */
static void test_log(void)
{
    char path[] = "/tmp/rpctls-logXXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    krpc_log_set_level(KRPC_LOG_INFO);
    krpc_log(KRPC_LOG_INFO, "hello %d", 42);
    krpc_log(KRPC_LOG_DEBUG, "not shown");
    krpc_log(KRPC_LOG_ERROR, "bad thing\n");
    krpc_log_set_level(KRPC_LOG_WARN);
    krpc_log(KRPC_LOG_INFO, "not shown either");
    dup2(saved, 2);
    close(saved);
    char text[512] = {0};
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    close(fd);
    unlink(path);
    REQUIRE(n > 0);
    CHECK(strstr(text, "rpctls: info: hello 42\n") != NULL);
    CHECK(strstr(text, "rpctls: error: bad thing\n") != NULL);
    CHECK(strstr(text, "not shown") == NULL);
    CHECK(strstr(text, "bad thing\n\n") == NULL);
    /* Two lines, each starting with an ISO-8601 timestamp. */
    int lines = 0;
    for (char *p = text; *p; p++)
        lines += *p == '\n';
    CHECK_EQ(lines, 2);
    CHECK(text[4] == '-' && text[10] == 'T');
}

int main(void)
{
    TEST_RUN(test_call_round_trip);
    TEST_RUN(test_call_known_bytes);
    TEST_RUN(test_reply_round_trip);
    TEST_RUN(test_truncated);
    TEST_RUN(test_malformed_calls);
    TEST_RUN(test_malformed_replies);
    TEST_RUN(test_names);
    TEST_RUN(test_addr);
    TEST_RUN(test_log);
    CHECK_EQ(mb_pool_shutdown(), 0);
    return test_summary();
}
