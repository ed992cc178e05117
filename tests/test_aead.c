/*
 * tests/test_aead.c - AEAD engines: RFC 8448 record known answers, a
 * randomized differential test between the engines over random
 * scatter-gather layouts (in place and out of place), tamper detection,
 * engine selection and the cipher-suite helpers.
 */
#include <rpctls/aead.h>

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "util/hex.h"

static const enum ktls_cipher all_ciphers[] = {
    KTLS_AES_128_GCM_SHA256,
    KTLS_AES_256_GCM_SHA384,
    KTLS_CHACHA20_POLY1305_SHA256,
};
#define NCIPHERS (sizeof(all_ciphers) / sizeof(all_ciphers[0]))

/* xorshift64*: fast, reproducible test data. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1dull;
}

static size_t rnd_below(size_t n)
{
    return n ? (size_t)(rnd() % n) : 0;
}

static void rnd_fill(uint8_t *p, size_t n)
{
    while (n >= 8) {
        uint64_t v = rnd();
        memcpy(p, &v, 8);
        p += 8;
        n -= 8;
    }
    if (n) {
        uint64_t v = rnd();
        memcpy(p, &v, n);
    }
}

/* Engines usable for cipher here: openssl always, ipsecmb when present. */
static int engines_for(enum ktls_cipher c, const struct ktls_aead_engine *out[2])
{
    int n = 0;

    out[n++] = &ktls_aead_openssl;
    if (ktls_aead_ipsecmb && ktls_aead_ipsecmb->supports(c))
        out[n++] = ktls_aead_ipsecmb;
    return n;
}

/* ---- helpers ----------------------------------------------------------- */

static void test_cipher_helpers(void)
{
    enum ktls_cipher c;

    CHECK_EQ(ktls_cipher_key_len(KTLS_AES_128_GCM_SHA256), 16);
    CHECK_EQ(ktls_cipher_key_len(KTLS_AES_256_GCM_SHA384), 32);
    CHECK_EQ(ktls_cipher_key_len(KTLS_CHACHA20_POLY1305_SHA256), 32);
    CHECK_EQ(ktls_cipher_key_len((enum ktls_cipher)0x1304), 0);
    CHECK_EQ(ktls_cipher_hash_len(KTLS_AES_128_GCM_SHA256), 32);
    CHECK_EQ(ktls_cipher_hash_len(KTLS_AES_256_GCM_SHA384), 48);
    CHECK_EQ(ktls_cipher_hash_len(KTLS_CHACHA20_POLY1305_SHA256), 32);
    CHECK(strcmp(ktls_cipher_name(KTLS_AES_128_GCM_SHA256), "aes128gcm") == 0);
    CHECK(strcmp(ktls_cipher_name(KTLS_AES_256_GCM_SHA384), "aes256gcm") == 0);
    CHECK(strcmp(ktls_cipher_name(KTLS_CHACHA20_POLY1305_SHA256), "chacha20") == 0);
    CHECK(ktls_cipher_name((enum ktls_cipher)0) == NULL);

    for (size_t i = 0; i < NCIPHERS; i++) {
        c = (enum ktls_cipher)0;
        CHECK_EQ(ktls_cipher_from_name(ktls_cipher_name(all_ciphers[i]), &c), 0);
        CHECK_EQ(c, all_ciphers[i]);
    }
    CHECK_EQ(ktls_cipher_from_name("TLS_AES_128_GCM_SHA256", &c), 0);
    CHECK_EQ(c, KTLS_AES_128_GCM_SHA256);
    CHECK_EQ(ktls_cipher_from_name("TLS_AES_256_GCM_SHA384", &c), 0);
    CHECK_EQ(c, KTLS_AES_256_GCM_SHA384);
    CHECK_EQ(ktls_cipher_from_name("TLS_CHACHA20_POLY1305_SHA256", &c), 0);
    CHECK_EQ(c, KTLS_CHACHA20_POLY1305_SHA256);
    CHECK_EQ(ktls_cipher_from_name("aes192gcm", &c), -EINVAL);
    CHECK_EQ(ktls_cipher_from_name("", &c), -EINVAL);
    CHECK_EQ(ktls_cipher_from_name(NULL, &c), -EINVAL);
}

/* ---- RFC 8448 section 3 known answers ---------------------------------- */

#define RFC8448_C_AP_KEY "17 42 2d da 59 6e d5 d9 ac d8 90 e3 c6 3f 50 51"
#define RFC8448_C_AP_IV "5b 78 92 3d ee 08 57 90 33 e5 23 d9"
#define RFC8448_S_AP_KEY "9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56"
#define RFC8448_S_AP_IV "cf 78 2b 88 dd 83 54 9a ad f1 e9 84"
#define RFC8448_C_AP_SECRET "9e 40 64 6c e7 9a 7f 9d c0 5a f8 88 9b ce 65 52 87 5a fa 0b 06 df 00 87 f7 92 eb b7 c1 75 04 a5"
/* {client} send application_data record, complete record (72 octets). */
#define RFC8448_C_APP_RECORD                                                                     \
    "17 03 03 00 43 a2 3f 70 54 b6 2c 94 d0 af fa fe 82 28 ba 55 cb ef ac ea 42 f9 14 aa 66 bc " \
    "ab 3f 2b 98 19 a8 a5 b4 6b 39 5b d5 4a 9a 20 44 1e 2b 62 97 4e 1f 5a 62 92 a2 97 70 14 bd " \
    "1e 3d ea e6 3a ee bb 21 69 49 15 e4"
/* {server} send application_data record, complete record (72 octets). */
#define RFC8448_S_APP_RECORD                                                                     \
    "17 03 03 00 43 2e 93 7e 11 ef 4a c7 40 e5 38 ad 36 00 5f c4 a4 69 32 fc 32 25 d0 5f 82 aa " \
    "1b 36 e3 0e fa f9 7d 90 e6 df fc 60 2d cb 50 1a 59 a8 fc c4 9c 4b f2 e5 f0 a2 1c 00 47 c2 " \
    "ab f3 32 54 0d d0 32 e1 67 c2 95 5d"

/* TLSInnerPlaintext of both records: 50 bytes 00..31, then type 0x17. */
static void rfc8448_inner(uint8_t inner[51])
{
    for (int i = 0; i < 50; i++)
        inner[i] = (uint8_t)i;
    inner[50] = 0x17;
}

static void nonce_for(const uint8_t iv[12], uint64_t seq, uint8_t nonce[12])
{
    memcpy(nonce, iv, 12);
    for (int i = 0; i < 8; i++)
        nonce[11 - i] ^= (uint8_t)(seq >> (8 * i));
}

static void test_rfc8448_client_record_seal(void)
{
    uint8_t key[16], iv[12], nonce[12], rec[72], inner[51], ct[51], tag[16];
    const struct ktls_aead_engine *eng[2];
    int ne = engines_for(KTLS_AES_128_GCM_SHA256, eng);

    REQUIRE(tu_unhex(RFC8448_C_AP_KEY, key, 16) == 16);
    REQUIRE(tu_unhex(RFC8448_C_AP_IV, iv, 12) == 12);
    REQUIRE(tu_unhex(RFC8448_C_APP_RECORD, rec, sizeof(rec)) == 72);
    REQUIRE(rec[0] == 0x17 && rec[4] == 0x43);
    rfc8448_inner(inner);
    nonce_for(iv, 0, nonce);

    for (int e = 0; e < ne; e++) {
        struct ktls_aead_key *k = NULL;
        fprintf(stderr, "  engine %s\n", eng[e]->name);
        REQUIRE(eng[e]->key_new(KTLS_AES_128_GCM_SHA256, key, &k) == 0);

        /* Out of place, one segment each. */
        struct iovec s1 = {inner, 51}, d1 = {ct, 51};
        memset(ct, 0, sizeof(ct));
        CHECK_EQ(eng[e]->seal(k, nonce, rec, 5, &s1, 1, &d1, 1, tag), 0);
        CHECK(memcmp(ct, rec + 5, 51) == 0);
        CHECK(memcmp(tag, rec + 5 + 51, 16) == 0);

        /* In place, split into odd pieces on both sides differently. */
        uint8_t buf[51];
        memcpy(buf, inner, 51);
        struct iovec s3[3] = {{buf, 7}, {buf + 7, 33}, {buf + 40, 11}};
        struct iovec d2[2] = {{buf, 20}, {buf + 20, 31}};
        memset(tag, 0, sizeof(tag));
        CHECK_EQ(eng[e]->seal(k, nonce, rec, 5, s3, 3, d2, 2, tag), 0);
        CHECK(memcmp(buf, rec + 5, 51) == 0);
        CHECK(memcmp(tag, rec + 5 + 51, 16) == 0);

        /* And back. */
        CHECK_EQ(eng[e]->open(k, nonce, rec, 5, d2, 2, s3, 3, tag), 0);
        CHECK(memcmp(buf, inner, 51) == 0);
        eng[e]->key_free(k);
    }
}

/* The same record with the key and IV derived from the published secret. */
static void test_rfc8448_client_record_from_secret(void)
{
    uint8_t secret[32], key[16], iv[12], nonce[12], rec[72], inner[51], ct[51], tag[16];
    const struct ktls_aead_engine *eng = ktls_aead_default(KTLS_AES_128_GCM_SHA256);
    struct ktls_aead_key *k = NULL;

    REQUIRE(tu_unhex(RFC8448_C_AP_SECRET, secret, 32) == 32);
    REQUIRE(tu_unhex(RFC8448_C_APP_RECORD, rec, sizeof(rec)) == 72);
    REQUIRE(ktls_derive_key_iv(KTLS_AES_128_GCM_SHA256, secret, key, iv) == 0);
    rfc8448_inner(inner);
    nonce_for(iv, 0, nonce);
    REQUIRE(eng->key_new(KTLS_AES_128_GCM_SHA256, key, &k) == 0);
    struct iovec s = {inner, 51}, d = {ct, 51};
    CHECK_EQ(eng->seal(k, nonce, rec, 5, &s, 1, &d, 1, tag), 0);
    CHECK(memcmp(ct, rec + 5, 51) == 0);
    CHECK(memcmp(tag, rec + 56, 16) == 0);
    eng->key_free(k);
}

static void test_rfc8448_server_record_open(void)
{
    uint8_t key[16], iv[12], nonce[12], rec[72], inner[51], pt[51];
    const struct ktls_aead_engine *eng[2];
    int ne = engines_for(KTLS_AES_128_GCM_SHA256, eng);

    REQUIRE(tu_unhex(RFC8448_S_AP_KEY, key, 16) == 16);
    REQUIRE(tu_unhex(RFC8448_S_AP_IV, iv, 12) == 12);
    REQUIRE(tu_unhex(RFC8448_S_APP_RECORD, rec, sizeof(rec)) == 72);
    rfc8448_inner(inner);
    /* The server's application record is its second under this key: the
     * NewSessionTicket went first, at sequence 0. */
    nonce_for(iv, 1, nonce);

    for (int e = 0; e < ne; e++) {
        struct ktls_aead_key *k = NULL;
        fprintf(stderr, "  engine %s\n", eng[e]->name);
        REQUIRE(eng[e]->key_new(KTLS_AES_128_GCM_SHA256, key, &k) == 0);
        struct iovec s = {rec + 5, 51}, d = {pt, 51};
        memset(pt, 0, sizeof(pt));
        CHECK_EQ(eng[e]->open(k, nonce, rec, 5, &s, 1, &d, 1, rec + 56), 0);
        CHECK(memcmp(pt, inner, 51) == 0);

        /* Wrong sequence number, altered header, altered tag: all refused. */
        uint8_t n0[12], hdr[5], badtag[16];
        nonce_for(iv, 0, n0);
        CHECK_EQ(eng[e]->open(k, n0, rec, 5, &s, 1, &d, 1, rec + 56), -EBADMSG);
        memcpy(hdr, rec, 5);
        hdr[2] ^= 0x01;
        CHECK_EQ(eng[e]->open(k, nonce, hdr, 5, &s, 1, &d, 1, rec + 56), -EBADMSG);
        memcpy(badtag, rec + 56, 16);
        badtag[15] ^= 0x80;
        CHECK_EQ(eng[e]->open(k, nonce, rec, 5, &s, 1, &d, 1, badtag), -EBADMSG);
        /* A refused record leaves the key usable. */
        memset(pt, 0, sizeof(pt));
        CHECK_EQ(eng[e]->open(k, nonce, rec, 5, &s, 1, &d, 1, rec + 56), 0);
        CHECK(memcmp(pt, inner, 51) == 0);
        eng[e]->key_free(k);
    }
}

/* ---- randomized differential test ------------------------------------- */

/* Splits [base, base+len) into 1..8 segments at random places, zero-length
 * segments included. */
static int random_split(uint8_t *base, size_t len, struct iovec *v)
{
    int n = 1 + (int)rnd_below(8);
    size_t cuts[8];

    for (int i = 0; i < n - 1; i++) {
        /* Bias some cuts onto and next to 16-byte boundaries. */
        size_t c = rnd_below(len + 1);
        if ((rnd() & 3) == 0)
            c = c & ~(size_t)15;
        if ((rnd() & 7) == 0 && c < len)
            c++;
        cuts[i] = c;
    }
    /* Insertion sort; n is tiny. */
    for (int i = 1; i < n - 1; i++)
        for (int j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
            size_t t = cuts[j];
            cuts[j] = cuts[j - 1];
            cuts[j - 1] = t;
        }
    size_t prev = 0;
    for (int i = 0; i < n; i++) {
        size_t end = i < n - 1 ? cuts[i] : len;
        v[i].iov_base = base + prev;
        v[i].iov_len = end - prev;
        prev = end;
    }
    return n;
}

static size_t random_len(void)
{
    switch (rnd() & 3) {
    case 0:
        return rnd_below(65);
    case 1:
        return rnd_below(17000);
    case 2:
        return 16 * rnd_below(2501) + (rnd() & 1 ? rnd_below(3) : 0);
    default:
        return rnd_below(40001);
    }
}

struct dcase {
    enum ktls_cipher cipher;
    uint8_t key[32], nonce[12], aad[64];
    size_t aadlen, len;
    uint8_t *pt;
};

/* Seals c->pt with eng into a fresh buffer (or in place in a copy), with
 * random segmentations. Returns the malloc'd ciphertext and the tag. */
static uint8_t *seal_random(const struct ktls_aead_engine *eng, struct ktls_aead_key *k, const struct dcase *c,
                            uint8_t tag[16], int *rc)
{
    uint8_t *out = malloc(c->len ? c->len : 1);
    struct iovec sv[8], dv[8];
    int ns, nd;

    if (!out)
        abort();
    if (rnd() & 1) {
        /* In place: same memory, different splits. */
        memcpy(out, c->pt, c->len);
        ns = random_split(out, c->len, sv);
    } else {
        ns = random_split(c->pt, c->len, sv);
    }
    nd = random_split(out, c->len, dv);
    *rc = eng->seal(k, c->nonce, c->aadlen ? c->aad : NULL, c->aadlen, sv, ns, dv, nd, tag);
    return out;
}

/* Opens ct with eng (in place or out of place, random splits); returns the
 * engine's result and checks the plaintext on success. */
static int open_random(const struct ktls_aead_engine *eng, struct ktls_aead_key *k, const struct dcase *c,
                       const uint8_t *ct, const uint8_t tag[16], int expect_pt)
{
    uint8_t *buf = malloc(c->len ? c->len : 1), *src = NULL;
    struct iovec sv[8], dv[8];
    int ns, nd, rc;

    if (!buf)
        abort();
    if (rnd() & 1) {
        memcpy(buf, ct, c->len);
        ns = random_split(buf, c->len, sv);
    } else {
        src = malloc(c->len ? c->len : 1);
        if (!src)
            abort();
        memcpy(src, ct, c->len);
        ns = random_split(src, c->len, sv);
    }
    nd = random_split(buf, c->len, dv);
    rc = eng->open(k, c->nonce, c->aadlen ? c->aad : NULL, c->aadlen, sv, ns, dv, nd, tag);
    if (rc == 0 && expect_pt)
        CHECK(memcmp(buf, c->pt, c->len) == 0);
    free(buf);
    free(src);
    return rc;
}

static void differential(enum ktls_cipher cipher, int ncases)
{
    const struct ktls_aead_engine *eng[2];
    int ne = engines_for(cipher, eng), mismatches = 0, failures = 0;

    if (ne < 2)
        fprintf(stderr, "  note: %s: ipsecmb engine absent or unsupported; testing openssl alone\n",
                ktls_cipher_name(cipher));
    for (int i = 0; i < ncases; i++) {
        struct dcase c = {.cipher = cipher};
        struct ktls_aead_key *k[2] = {NULL, NULL};
        uint8_t *ct[2] = {NULL, NULL}, tag[2][16];
        int rc;

        rnd_fill(c.key, sizeof(c.key));
        rnd_fill(c.nonce, sizeof(c.nonce));
        c.aadlen = (rnd() & 1) ? 5 : rnd_below(sizeof(c.aad) + 1);
        rnd_fill(c.aad, c.aadlen);
        c.len = random_len();
        c.pt = malloc(c.len ? c.len : 1);
        if (!c.pt)
            abort();
        rnd_fill(c.pt, c.len);

        for (int e = 0; e < ne; e++) {
            REQUIRE(eng[e]->key_new(cipher, c.key, &k[e]) == 0);
            ct[e] = seal_random(eng[e], k[e], &c, tag[e], &rc);
            CHECK_EQ(rc, 0);
        }
        /* The first engine twice (other layout): deterministic. */
        {
            uint8_t t2[16];
            uint8_t *again = seal_random(eng[0], k[0], &c, t2, &rc);
            CHECK_EQ(rc, 0);
            if (memcmp(again, ct[0], c.len) != 0 || memcmp(t2, tag[0], 16) != 0)
                mismatches++;
            free(again);
        }
        if (ne == 2 && (memcmp(ct[0], ct[1], c.len) != 0 || memcmp(tag[0], tag[1], 16) != 0)) {
            if (mismatches++ < 5)
                fprintf(stderr, "  mismatch: %s len %zu aad %zu\n", ktls_cipher_name(cipher), c.len, c.aadlen);
        }
        /* Each engine opens every engine's output. */
        for (int e = 0; e < ne; e++)
            for (int f = 0; f < ne; f++)
                if (open_random(eng[e], k[e], &c, ct[f], tag[f], 1) != 0)
                    failures++;
        /* One flipped bit, in the ciphertext or in the tag, is refused. */
        for (int e = 0; e < ne; e++) {
            uint8_t bad[16];
            memcpy(bad, tag[0], 16);
            if (c.len && (rnd() & 1)) {
                size_t pos = rnd_below(c.len);
                uint8_t bit = (uint8_t)(1u << (rnd() & 7));
                ct[0][pos] ^= bit;
                CHECK_EQ(open_random(eng[e], k[e], &c, ct[0], bad, 0), -EBADMSG);
                ct[0][pos] ^= bit;
            } else {
                bad[rnd_below(16)] ^= (uint8_t)(1u << (rnd() & 7));
                CHECK_EQ(open_random(eng[e], k[e], &c, ct[0], bad, 0), -EBADMSG);
            }
            /* Wrong AAD is refused too. */
            if (c.aadlen) {
                size_t pos = rnd_below(c.aadlen);
                c.aad[pos] ^= 0x01;
                CHECK_EQ(open_random(eng[e], k[e], &c, ct[0], tag[0], 0), -EBADMSG);
                c.aad[pos] ^= 0x01;
            }
        }
        for (int e = 0; e < ne; e++) {
            eng[e]->key_free(k[e]);
            free(ct[e]);
        }
        free(c.pt);
    }
    CHECK_EQ(mismatches, 0);
    CHECK_EQ(failures, 0);
}

static void test_differential_aes128gcm(void)
{
    differential(KTLS_AES_128_GCM_SHA256, 2000);
}

static void test_differential_aes256gcm(void)
{
    differential(KTLS_AES_256_GCM_SHA384, 2000);
}

static void test_differential_chacha20(void)
{
    differential(KTLS_CHACHA20_POLY1305_SHA256, 2000);
}

/* Many pieces of 1..17 bytes: partial blocks carried across every update. */
static void test_tiny_pieces(void)
{
    enum { LEN = 4099 };
    static uint8_t pt[LEN], ct[2][LEN], out[LEN];
    static struct iovec sv[LEN], dv[LEN];

    for (size_t ci = 0; ci < NCIPHERS; ci++) {
        const struct ktls_aead_engine *eng[2];
        int ne = engines_for(all_ciphers[ci], eng);
        uint8_t key[32], nonce[12], aad[5] = {0x17, 3, 3, 0x10, 0x13}, tag[2][16];

        rnd_fill(key, sizeof(key));
        rnd_fill(nonce, sizeof(nonce));
        rnd_fill(pt, LEN);
        for (int e = 0; e < ne; e++) {
            struct ktls_aead_key *k;
            int ns = 0, nd = 0;
            REQUIRE(eng[e]->key_new(all_ciphers[ci], key, &k) == 0);
            for (size_t off = 0; off < LEN; ns++) {
                size_t n = 1 + rnd_below(17);
                if (n > LEN - off)
                    n = LEN - off;
                sv[ns] = (struct iovec){pt + off, n};
                off += n;
            }
            for (size_t off = 0; off < LEN; nd++) {
                size_t n = 1 + rnd_below(33);
                if (n > LEN - off)
                    n = LEN - off;
                dv[nd] = (struct iovec){ct[e] + off, n};
                off += n;
            }
            CHECK_EQ(eng[e]->seal(k, nonce, aad, 5, sv, ns, dv, nd, tag[e]), 0);
            struct iovec whole_in = {ct[e], LEN}, whole_out = {out, LEN};
            CHECK_EQ(eng[e]->open(k, nonce, aad, 5, &whole_in, 1, &whole_out, 1, tag[e]), 0);
            CHECK(memcmp(out, pt, LEN) == 0);
            eng[e]->key_free(k);
        }
        if (ne == 2) {
            CHECK(memcmp(ct[0], ct[1], LEN) == 0);
            CHECK(memcmp(tag[0], tag[1], 16) == 0);
        }
    }
}

static void test_bad_arguments(void)
{
    uint8_t key[32] = {0}, nonce[12] = {0}, a[32], b[32], tag[16];
    struct iovec s = {a, 32}, d = {b, 31};

    for (size_t ci = 0; ci < NCIPHERS; ci++) {
        const struct ktls_aead_engine *eng[2];
        int ne = engines_for(all_ciphers[ci], eng);
        for (int e = 0; e < ne; e++) {
            struct ktls_aead_key *k = (struct ktls_aead_key *)&s;
            CHECK_EQ(eng[e]->key_new((enum ktls_cipher)0x1304, key, &k), -EINVAL);
            CHECK(k == NULL);
            REQUIRE(eng[e]->key_new(all_ciphers[ci], key, &k) == 0);
            CHECK_EQ(eng[e]->seal(k, nonce, NULL, 0, &s, 1, &d, 1, tag), -EINVAL);
            CHECK_EQ(eng[e]->open(k, nonce, NULL, 0, &s, 1, &d, 1, tag), -EINVAL);
            CHECK_EQ(eng[e]->seal(k, nonce, NULL, 0, &s, -1, &d, 1, tag), -EINVAL);
            /* Empty record with no AAD: just a tag. */
            CHECK_EQ(eng[e]->seal(k, nonce, NULL, 0, NULL, 0, NULL, 0, tag), 0);
            CHECK_EQ(eng[e]->open(k, nonce, NULL, 0, NULL, 0, NULL, 0, tag), 0);
            tag[0] ^= 1;
            CHECK_EQ(eng[e]->open(k, nonce, NULL, 0, NULL, 0, NULL, 0, tag), -EBADMSG);
            eng[e]->key_free(k);
        }
    }
}

/* ---- two threads at once ------------------------------------------------ */

struct thr_arg {
    const struct ktls_aead_engine *eng;
    struct ktls_aead_key *k;
    const uint8_t *pt, *ct, *tag;
    size_t len;
    int bad;
};

static void *thr_main(void *p)
{
    struct thr_arg *a = p;
    uint8_t nonce[12] = {1, 2, 3}, aad[5] = {0x17, 3, 3, 0, 0}, tag[16];
    uint8_t *buf = malloc(a->len);

    if (!buf)
        abort();
    for (int i = 0; i < 300; i++) {
        struct iovec s = {(void *)(uintptr_t)a->pt, a->len}, d = {buf, a->len};
        if (a->eng->seal(a->k, nonce, aad, 5, &s, 1, &d, 1, tag) != 0 || memcmp(buf, a->ct, a->len) != 0 ||
            memcmp(tag, a->tag, 16) != 0)
            a->bad++;
        struct iovec s2 = {buf, a->len};
        if (a->eng->open(a->k, nonce, aad, 5, &s2, 1, &s2, 1, tag) != 0 || memcmp(buf, a->pt, a->len) != 0)
            a->bad++;
    }
    free(buf);
    return NULL;
}

static void test_two_threads(void)
{
    enum { LEN = 16384 + 1 };
    static uint8_t pt[LEN], ct[LEN];
    uint8_t key[32], nonce[12] = {1, 2, 3}, aad[5] = {0x17, 3, 3, 0, 0}, tag[16];

    rnd_fill(pt, LEN);
    rnd_fill(key, sizeof(key));
    for (size_t ci = 0; ci < NCIPHERS; ci++) {
        const struct ktls_aead_engine *eng[2];
        int ne = engines_for(all_ciphers[ci], eng);
        for (int e = 0; e < ne; e++) {
            struct ktls_aead_key *k[2];
            struct thr_arg a[2];
            pthread_t t[2];
            struct iovec s = {pt, LEN}, d = {ct, LEN};

            REQUIRE(eng[e]->key_new(all_ciphers[ci], key, &k[0]) == 0);
            REQUIRE(eng[e]->key_new(all_ciphers[ci], key, &k[1]) == 0);
            REQUIRE(eng[e]->seal(k[0], nonce, aad, 5, &s, 1, &d, 1, tag) == 0);
            /* One key per thread, as connections do. */
            for (int i = 0; i < 2; i++) {
                a[i] = (struct thr_arg){eng[e], k[i], pt, ct, tag, LEN, 0};
                REQUIRE(pthread_create(&t[i], NULL, thr_main, &a[i]) == 0);
            }
            for (int i = 0; i < 2; i++) {
                pthread_join(t[i], NULL);
                CHECK_EQ(a[i].bad, 0);
            }
            eng[e]->key_free(k[0]);
            eng[e]->key_free(k[1]);
        }
    }
}

/* ---- engine selection --------------------------------------------------- */

/* What "auto" is documented to pick (docs/aead.md). */
static const struct ktls_aead_engine *expected_auto(enum ktls_cipher c)
{
    if (ktls_aead_ipsecmb && c != KTLS_CHACHA20_POLY1305_SHA256 && ktls_aead_ipsecmb->supports(c))
        return ktls_aead_ipsecmb;
    return &ktls_aead_openssl;
}

static void test_engine_selection(void)
{
    const struct ktls_aead_engine *mb = ktls_aead_ipsecmb;

    CHECK(ktls_aead_find("openssl") == &ktls_aead_openssl);
    CHECK(ktls_aead_find("ipsecmb") == mb);
    CHECK(ktls_aead_find("nosuch") == NULL);
    CHECK(ktls_aead_find("auto") == expected_auto(KTLS_AES_128_GCM_SHA256));
    CHECK(strcmp(ktls_aead_openssl.name, "openssl") == 0);
    if (mb)
        CHECK(strcmp(mb->name, "ipsecmb") == 0);
    else
        fprintf(stderr, "  note: built without libIPSec_MB\n");
    for (size_t ci = 0; ci < NCIPHERS; ci++)
        CHECK(ktls_aead_openssl.supports(all_ciphers[ci]));

    for (size_t ci = 0; ci < NCIPHERS; ci++) {
        enum ktls_cipher c = all_ciphers[ci];

        unsetenv("RPCTLS_AEAD_ENGINE");
        CHECK(ktls_aead_default(c) == expected_auto(c));
        CHECK(c != KTLS_AES_128_GCM_SHA256 || ktls_aead_find(NULL) == expected_auto(c));

        setenv("RPCTLS_AEAD_ENGINE", "auto", 1);
        CHECK(ktls_aead_default(c) == expected_auto(c));

        setenv("RPCTLS_AEAD_ENGINE", "openssl", 1);
        CHECK(ktls_aead_default(c) == &ktls_aead_openssl);
        CHECK(c != KTLS_AES_128_GCM_SHA256 || ktls_aead_find(NULL) == &ktls_aead_openssl);

        setenv("RPCTLS_AEAD_ENGINE", "ipsecmb", 1);
        if (mb && mb->supports(c))
            CHECK(ktls_aead_default(c) == mb);
        else
            CHECK(ktls_aead_default(c) == expected_auto(c));

        setenv("RPCTLS_AEAD_ENGINE", "bogus", 1);
        CHECK(ktls_aead_default(c) == expected_auto(c));
    }
    unsetenv("RPCTLS_AEAD_ENGINE");
    /* On this project's machines (AVX-512 + VAES) ipsecmb is the AES-GCM
     * default whenever it was built in. */
    if (mb && mb->supports(KTLS_AES_128_GCM_SHA256))
        CHECK(ktls_aead_default(KTLS_AES_128_GCM_SHA256) == mb);
}

int main(void)
{
    const char *seed = getenv("RPCTLS_TEST_SEED");

    if (seed && *seed)
        rng_state = strtoull(seed, NULL, 0) | 1;
    fprintf(stderr, "seed 0x%llx (set RPCTLS_TEST_SEED to repeat)\n", (unsigned long long)rng_state);
    TEST_RUN(test_cipher_helpers);
    TEST_RUN(test_rfc8448_client_record_seal);
    TEST_RUN(test_rfc8448_client_record_from_secret);
    TEST_RUN(test_rfc8448_server_record_open);
    TEST_RUN(test_differential_aes128gcm);
    TEST_RUN(test_differential_aes256gcm);
    TEST_RUN(test_differential_chacha20);
    TEST_RUN(test_tiny_pieces);
    TEST_RUN(test_bad_arguments);
    TEST_RUN(test_two_threads);
    TEST_RUN(test_engine_selection);
    return test_summary();
}
