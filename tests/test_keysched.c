/*
 * tests/test_keysched.c - TLS 1.3 key schedule pieces against RFC 8448
 * (section 3, "Simple 1-RTT Handshake") and against independent
 * computations with OpenSSL's HMAC and TLS13-KDF.
 */
#include <rpctls/aead.h>

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "test.h"
#include "util/hex.h"

/* RFC 8448 section 3. */
#define RFC8448_EARLY_SECRET "33 ad 0a 1c 60 7e c0 3b 09 e6 cd 98 93 68 0c e2 10 ad f3 00 aa 1f 26 60 e1 b2 2e 10 f1 70 f9 2a"
#define RFC8448_DERIVED "6f 26 15 a1 08 c7 02 c5 67 8f 54 fc 9d ba b6 97 16 c0 76 18 9c 48 25 0c eb ea c3 57 6c 36 11 ba"
#define RFC8448_EMPTY_SHA256 "e3 b0 c4 42 98 fc 1c 14 9a fb f4 c8 99 6f b9 24 27 ae 41 e4 64 9b 93 4c a4 95 99 1b 78 52 b8 55"
#define RFC8448_C_AP_SECRET "9e 40 64 6c e7 9a 7f 9d c0 5a f8 88 9b ce 65 52 87 5a fa 0b 06 df 00 87 f7 92 eb b7 c1 75 04 a5"
#define RFC8448_C_AP_KEY "17 42 2d da 59 6e d5 d9 ac d8 90 e3 c6 3f 50 51"
#define RFC8448_C_AP_IV "5b 78 92 3d ee 08 57 90 33 e5 23 d9"
#define RFC8448_S_AP_SECRET "a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32 82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 16 43"
#define RFC8448_S_AP_KEY "9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56"
#define RFC8448_S_AP_IV "cf 78 2b 88 dd 83 54 9a ad f1 e9 84"

static void check_key_iv(const char *secret_hex, const char *key_hex, const char *iv_hex)
{
    uint8_t secret[32], want_key[16], want_iv[12], key[32], iv[12];

    REQUIRE(tu_unhex(secret_hex, secret, sizeof(secret)) == 32);
    REQUIRE(tu_unhex(key_hex, want_key, sizeof(want_key)) == 16);
    REQUIRE(tu_unhex(iv_hex, want_iv, sizeof(want_iv)) == 12);
    memset(key, 0xaa, sizeof(key));
    CHECK_EQ(ktls_derive_key_iv(KTLS_AES_128_GCM_SHA256, secret, key, iv), 0);
    CHECK(memcmp(key, want_key, 16) == 0);
    CHECK(memcmp(iv, want_iv, 12) == 0);
    /* Exactly the key length is written. */
    CHECK(key[16] == 0xaa && key[31] == 0xaa);
}

static void test_rfc8448_client_app_key_iv(void)
{
    check_key_iv(RFC8448_C_AP_SECRET, RFC8448_C_AP_KEY, RFC8448_C_AP_IV);
}

static void test_rfc8448_server_app_key_iv(void)
{
    check_key_iv(RFC8448_S_AP_SECRET, RFC8448_S_AP_KEY, RFC8448_S_AP_IV);
}

/* A label with a non-empty context: Derive-Secret(early, "derived", "") is
 * HKDF-Expand-Label(early, "derived", SHA-256(""), 32). */
static void test_rfc8448_derived_with_context(void)
{
    uint8_t early[32], ctx[32], want[32], out[32];

    REQUIRE(tu_unhex(RFC8448_EARLY_SECRET, early, 32) == 32);
    REQUIRE(tu_unhex(RFC8448_EMPTY_SHA256, ctx, 32) == 32);
    REQUIRE(tu_unhex(RFC8448_DERIVED, want, 32) == 32);
    CHECK_EQ(ktls_hkdf_expand_label(KTLS_AES_128_GCM_SHA256, early, 32, "derived", ctx, 32, out, 32), 0);
    CHECK(memcmp(out, want, 32) == 0);
}

/* HKDF-Expand-Label computed by hand: for outlen <= hash length HKDF-Expand
 * is one HMAC block, T(1) = HMAC(secret, HkdfLabel || 0x01). */
static void hand_expand_label(const EVP_MD *md, const uint8_t *secret, size_t slen, const char *label,
                              size_t outlen, uint8_t *out)
{
    uint8_t info[600], mac[EVP_MAX_MD_SIZE];
    size_t n = 0, l = strlen(label);
    unsigned int maclen = 0;

    info[n++] = (uint8_t)(outlen >> 8);
    info[n++] = (uint8_t)outlen;
    info[n++] = (uint8_t)(6 + l);
    memcpy(info + n, "tls13 ", 6);
    n += 6;
    memcpy(info + n, label, l);
    n += l;
    info[n++] = 0;
    info[n++] = 1;
    HMAC(md, secret, (int)slen, info, n, mac, &maclen);
    if (maclen < outlen)
        abort();
    memcpy(out, mac, outlen);
}

/* The same through OpenSSL's TLS13-KDF (the one libssl uses), if present. */
static int tls13kdf_expand_label(const char *mdname, const uint8_t *secret, size_t slen, const char *label,
                                 size_t outlen, uint8_t *out)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "TLS13-KDF", NULL);
    EVP_KDF_CTX *kctx;
    OSSL_PARAM params[6], *p = params;
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY, ok;
    static const char prefix[] = "tls13 ";

    if (!kdf)
        return -1;
    kctx = EVP_KDF_CTX_new(kdf);
    EVP_KDF_free(kdf);
    if (!kctx)
        return -1;
    *p++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
    *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)(uintptr_t)mdname, 0);
    *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)(uintptr_t)secret, slen);
    *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PREFIX, (void *)(uintptr_t)prefix, 6);
    *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_LABEL, (void *)(uintptr_t)label, strlen(label));
    *p = OSSL_PARAM_construct_end();
    ok = EVP_KDF_derive(kctx, out, outlen, params) == 1;
    EVP_KDF_CTX_free(kctx);
    return ok ? 0 : -1;
}

static void check_traffic_upd(enum ktls_cipher cipher, const EVP_MD *md, const char *mdname, size_t hlen)
{
    uint8_t secret[48], expect[48], viakdf[48], key[32], iv[12], hkey[32], hiv[12];
    size_t klen = ktls_cipher_key_len(cipher);
    int have_kdf = 1;

    for (size_t i = 0; i < hlen; i++)
        secret[i] = (uint8_t)(0x40 + 3 * i);
    memcpy(expect, secret, hlen);
    /* Three generations of KeyUpdate. */
    for (int gen = 0; gen < 3; gen++) {
        uint8_t prev[48];
        memcpy(prev, expect, hlen);
        hand_expand_label(md, prev, hlen, "traffic upd", hlen, expect);
        if (tls13kdf_expand_label(mdname, prev, hlen, "traffic upd", hlen, viakdf) == 0)
            CHECK(memcmp(viakdf, expect, hlen) == 0);
        else
            have_kdf = 0;
        CHECK_EQ(ktls_next_secret(cipher, secret), 0);
        CHECK(memcmp(secret, expect, hlen) == 0);
    }
    if (!have_kdf)
        fprintf(stderr, "note: OpenSSL TLS13-KDF unavailable; checked against HMAC only\n");

    /* Key and IV of the updated secret, by hand as well. */
    CHECK_EQ(ktls_derive_key_iv(cipher, secret, key, iv), 0);
    hand_expand_label(md, secret, hlen, "key", klen, hkey);
    hand_expand_label(md, secret, hlen, "iv", 12, hiv);
    CHECK(memcmp(key, hkey, klen) == 0);
    CHECK(memcmp(iv, hiv, 12) == 0);
}

static void test_traffic_upd_sha256(void)
{
    check_traffic_upd(KTLS_AES_128_GCM_SHA256, EVP_sha256(), "SHA256", 32);
    check_traffic_upd(KTLS_CHACHA20_POLY1305_SHA256, EVP_sha256(), "SHA256", 32);
}

static void test_traffic_upd_sha384(void)
{
    check_traffic_upd(KTLS_AES_256_GCM_SHA384, EVP_sha384(), "SHA384", 48);
}

/* The RFC 8448 client application secret after one KeyUpdate. */
static void test_rfc8448_secret_update(void)
{
    uint8_t secret[32], expect[32];

    REQUIRE(tu_unhex(RFC8448_C_AP_SECRET, secret, 32) == 32);
    hand_expand_label(EVP_sha256(), secret, 32, "traffic upd", 32, expect);
    CHECK_EQ(ktls_next_secret(KTLS_AES_128_GCM_SHA256, secret), 0);
    CHECK(memcmp(secret, expect, 32) == 0);
}

static void test_bad_arguments(void)
{
    uint8_t secret[32] = {1}, out[64], iv[12];
    char longlabel[260];

    memset(longlabel, 'a', sizeof(longlabel) - 1);
    longlabel[sizeof(longlabel) - 1] = 0;
    CHECK_EQ(ktls_hkdf_expand_label(KTLS_AES_128_GCM_SHA256, secret, 32, longlabel, NULL, 0, out, 16), -EINVAL);
    CHECK_EQ(ktls_hkdf_expand_label(KTLS_AES_128_GCM_SHA256, secret, 32, "key", NULL, 0, out, 0), -EINVAL);
    CHECK_EQ(ktls_hkdf_expand_label((enum ktls_cipher)0x1304, secret, 32, "key", NULL, 0, out, 16), -EINVAL);
    CHECK_EQ(ktls_hkdf_expand_label(KTLS_AES_128_GCM_SHA256, secret, 32, "key", NULL, 300, out, 16), -EINVAL);
    CHECK_EQ(ktls_derive_key_iv((enum ktls_cipher)0, secret, out, iv), -EINVAL);
    CHECK_EQ(ktls_next_secret((enum ktls_cipher)0, secret), -EINVAL);
    /* Longest label that fits: 249 bytes + "tls13 " = 255. */
    longlabel[249] = 0;
    CHECK_EQ(ktls_hkdf_expand_label(KTLS_AES_128_GCM_SHA256, secret, 32, longlabel, NULL, 0, out, 64), 0);
    longlabel[249] = 'a';
    longlabel[250] = 0;
    CHECK_EQ(ktls_hkdf_expand_label(KTLS_AES_128_GCM_SHA256, secret, 32, longlabel, NULL, 0, out, 64), -EINVAL);
}

int main(void)
{
    TEST_RUN(test_rfc8448_client_app_key_iv);
    TEST_RUN(test_rfc8448_server_app_key_iv);
    TEST_RUN(test_rfc8448_derived_with_context);
    TEST_RUN(test_traffic_upd_sha256);
    TEST_RUN(test_traffic_upd_sha384);
    TEST_RUN(test_rfc8448_secret_update);
    TEST_RUN(test_bad_arguments);
    return test_summary();
}
