/*
 * src/ktls/keysched.c - the parts of the TLS 1.3 key schedule the record
 * layer needs (RFC 8446 section 7): HKDF-Expand-Label, traffic key and IV
 * from a traffic secret, and the KeyUpdate "traffic upd" step. HKDF itself
 * is OpenSSL's (EVP_KDF "HKDF" in expand-only mode).
 */
#include <rpctls/aead.h>

#include <errno.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#define TLS13_LABEL_PREFIX "tls13 "
#define KTLS_MAX_HASH_LEN 48

static const char *suite_digest(enum ktls_cipher cipher)
{
    switch (cipher) {
    case KTLS_AES_128_GCM_SHA256:
    case KTLS_CHACHA20_POLY1305_SHA256:
        return "SHA256";
    case KTLS_AES_256_GCM_SHA384:
        return "SHA384";
    }
    return NULL;
}

int ktls_hkdf_expand_label(enum ktls_cipher cipher, const uint8_t *secret, size_t secretlen, const char *label,
                           const uint8_t *ctx, size_t ctxlen, uint8_t *out, size_t outlen)
{
    /* struct HkdfLabel { uint16 length; opaque label<7..255>;
     *                    opaque context<0..255>; } */
    uint8_t info[2 + 1 + 255 + 1 + 255];
    const size_t plen = sizeof(TLS13_LABEL_PREFIX) - 1;
    const char *md = suite_digest(cipher);
    size_t hlen = ktls_cipher_hash_len(cipher), llen, n = 0;
    EVP_KDF *kdf = NULL;
    EVP_KDF_CTX *kctx = NULL;
    OSSL_PARAM params[5], *p = params;
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    int rc = -EIO;

    if (!md || !secret || !secretlen || !label || (ctxlen && !ctx) || !out)
        return -EINVAL;
    llen = strlen(label);
    if (plen + llen > 255 || ctxlen > 255 || outlen == 0 || outlen > 255 * hlen || outlen > 0xffff)
        return -EINVAL;

    info[n++] = (uint8_t)(outlen >> 8);
    info[n++] = (uint8_t)outlen;
    info[n++] = (uint8_t)(plen + llen);
    memcpy(info + n, TLS13_LABEL_PREFIX, plen);
    n += plen;
    memcpy(info + n, label, llen);
    n += llen;
    info[n++] = (uint8_t)ctxlen;
    if (ctxlen)
        memcpy(info + n, ctx, ctxlen);
    n += ctxlen;

    kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    if (!kdf)
        goto out;
    kctx = EVP_KDF_CTX_new(kdf);
    if (!kctx) {
        rc = -ENOMEM;
        goto out;
    }
    *p++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
    *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)(uintptr_t)md, 0);
    *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)(uintptr_t)secret, secretlen);
    *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, n);
    *p = OSSL_PARAM_construct_end();
    if (EVP_KDF_derive(kctx, out, outlen, params) != 1)
        goto out;
    rc = 0;
out:
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    OPENSSL_cleanse(info, sizeof(info));
    return rc;
}

int ktls_derive_key_iv(enum ktls_cipher cipher, const uint8_t *secret, uint8_t *key, uint8_t iv[KTLS_AEAD_IV_LEN])
{
    size_t hlen = ktls_cipher_hash_len(cipher), klen = ktls_cipher_key_len(cipher);
    int rc;

    if (!hlen || !klen || !secret || !key || !iv)
        return -EINVAL;
    rc = ktls_hkdf_expand_label(cipher, secret, hlen, "key", NULL, 0, key, klen);
    if (rc == 0)
        rc = ktls_hkdf_expand_label(cipher, secret, hlen, "iv", NULL, 0, iv, KTLS_AEAD_IV_LEN);
    if (rc < 0) {
        OPENSSL_cleanse(key, klen);
        OPENSSL_cleanse(iv, KTLS_AEAD_IV_LEN);
    }
    return rc;
}

int ktls_next_secret(enum ktls_cipher cipher, uint8_t *secret)
{
    uint8_t next[KTLS_MAX_HASH_LEN];
    size_t hlen = ktls_cipher_hash_len(cipher);
    int rc;

    if (!hlen || !secret)
        return -EINVAL;
    /* Through a temporary: HKDF reads the secret while writing the output. */
    rc = ktls_hkdf_expand_label(cipher, secret, hlen, "traffic upd", NULL, 0, next, hlen);
    if (rc == 0)
        memcpy(secret, next, hlen);
    OPENSSL_cleanse(next, sizeof(next));
    return rc;
}
