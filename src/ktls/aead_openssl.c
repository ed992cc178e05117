/*
 * src/ktls/aead_openssl.c - the "openssl" AEAD engine (libcrypto EVP).
 *
 * One EVP_CIPHER_CTX per key: the key is set once at key_new, and each record
 * only re-initialises the IV (EVP_CipherInit_ex with NULL cipher and key), so
 * there is no per-record key expansion and no allocation in seal/open.
 * A key (its context) must not be used by two threads at the same time;
 * different keys may be used in parallel.
 *
 * Errors: -EINVAL for arguments the caller got wrong, -ENOMEM when memory
 * ran out, -EIO when libcrypto fails on valid input (evp_errno), -EBADMSG
 * when a record fails authentication on open.
 */
#include <rpctls/aead.h>

#include "ktls/aead_int.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>

struct ktls_aead_key {
    EVP_CIPHER_CTX *ctx;
    enum ktls_cipher cipher;
};

static const EVP_CIPHER *evp_cipher(enum ktls_cipher cipher)
{
    switch (cipher) {
    case KTLS_AES_128_GCM_SHA256:
        return EVP_aes_128_gcm();
    case KTLS_AES_256_GCM_SHA384:
        return EVP_aes_256_gcm();
    case KTLS_CHACHA20_POLY1305_SHA256:
        return EVP_chacha20_poly1305();
    }
    return NULL;
}

static int ossl_supports(enum ktls_cipher cipher)
{
    return evp_cipher(cipher) != NULL;
}

static void ossl_key_free(struct ktls_aead_key *k)
{
    if (!k)
        return;
    EVP_CIPHER_CTX_free(k->ctx);
    free(k);
}

/* The errno for a libcrypto call that failed on arguments we checked:
 * -ENOMEM when libcrypto says it ran out of memory, else -EIO. Not -EINVAL:
 * the cipher, key and IV length are ours and valid, so the failure is
 * libcrypto's (no provider offers the cipher, an internal error), which the
 * caller can only report, not correct. The error queue is emptied so that
 * the failure does not show up later in an unrelated SSL_get_error. */
static int evp_errno(void)
{
    unsigned long e = ERR_peek_last_error();
    int ret = ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE ? -ENOMEM : -EIO;

    ERR_clear_error();
    return ret;
}

static int ossl_key_new(enum ktls_cipher cipher, const uint8_t *key, struct ktls_aead_key **out)
{
    const EVP_CIPHER *c = evp_cipher(cipher);
    struct ktls_aead_key *k;
    int ret;

    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!c || !key)
        return -EINVAL;
    k = calloc(1, sizeof(*k));
    if (!k)
        return -ENOMEM;
    k->cipher = cipher;
    k->ctx = EVP_CIPHER_CTX_new();
    if (!k->ctx) {
        ret = -ENOMEM; /* it does nothing but allocate */
        goto fail;
    }
    if (EVP_CipherInit_ex(k->ctx, c, NULL, NULL, NULL, 1) != 1 ||
        EVP_CIPHER_CTX_ctrl(k->ctx, EVP_CTRL_AEAD_SET_IVLEN, KTLS_AEAD_IV_LEN, NULL) != 1 ||
        EVP_CipherInit_ex(k->ctx, NULL, NULL, key, NULL, 1) != 1) {
        ret = evp_errno();
        goto fail;
    }
    *out = k;
    return 0;
fail:
    ossl_key_free(k);
    return ret;
}

/* GCM and ChaCha20-Poly1305 are stream modes: EVP emits exactly as many
 * bytes as it is given, which the piecewise walk relies on. */
static int ossl_piece(void *arg, uint8_t *out, const uint8_t *in, size_t n)
{
    EVP_CIPHER_CTX *ctx = arg;
    int outl;

    while (n > 0) {
        int k = n > (1u << 30) ? 1 << 30 : (int)n;
        if (EVP_CipherUpdate(ctx, out, &outl, in, k) != 1 || outl != k)
            return evp_errno();
        out += k;
        in += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Runs the cipher over src into dst, piece by piece. */
static int ossl_crypt(struct ktls_aead_key *k, const uint8_t *nonce, const uint8_t *aad, size_t aadlen,
                      const struct iovec *src, int nsrc, const struct iovec *dst, int ndst, int enc)
{
    int outl;

    if (!nonce || (aadlen && !aad) || aadlen > INT_MAX)
        return -EINVAL;
    if (EVP_CipherInit_ex(k->ctx, NULL, NULL, NULL, nonce, enc) != 1)
        return evp_errno();
    if (aadlen && EVP_CipherUpdate(k->ctx, NULL, &outl, aad, (int)aadlen) != 1)
        return evp_errno();
    return ktls__aead_walk(src, nsrc, dst, ndst, ossl_piece, k->ctx);
}

static int ossl_seal(struct ktls_aead_key *k, const uint8_t nonce[KTLS_AEAD_IV_LEN], const uint8_t *aad,
                     size_t aadlen, const struct iovec *src, int nsrc, const struct iovec *dst, int ndst,
                     uint8_t tag[KTLS_AEAD_TAG_LEN])
{
    uint8_t fin[32];
    int outl, rc;

    if (!k || !tag)
        return -EINVAL;
    if ((rc = ossl_crypt(k, nonce, aad, aadlen, src, nsrc, dst, ndst, 1)) < 0)
        return rc;
    if (EVP_CipherFinal_ex(k->ctx, fin, &outl) != 1 || outl != 0)
        return evp_errno();
    if (EVP_CIPHER_CTX_ctrl(k->ctx, EVP_CTRL_AEAD_GET_TAG, KTLS_AEAD_TAG_LEN, tag) != 1)
        return evp_errno();
    return 0;
}

static int ossl_open(struct ktls_aead_key *k, const uint8_t nonce[KTLS_AEAD_IV_LEN], const uint8_t *aad,
                     size_t aadlen, const struct iovec *src, int nsrc, const struct iovec *dst, int ndst,
                     const uint8_t tag[KTLS_AEAD_TAG_LEN])
{
    uint8_t fin[32];
    int outl, rc;

    if (!k || !tag)
        return -EINVAL;
    if ((rc = ossl_crypt(k, nonce, aad, aadlen, src, nsrc, dst, ndst, 0)) < 0)
        return rc;
    /* The ctrl takes a non-const pointer but only copies the tag in. */
    if (EVP_CIPHER_CTX_ctrl(k->ctx, EVP_CTRL_AEAD_SET_TAG, KTLS_AEAD_TAG_LEN, (void *)(uintptr_t)tag) != 1)
        return evp_errno();
    /* Final checks the tag: a failure here is a forged or corrupted record,
     * which the record layer answers with bad_record_mac. */
    if (EVP_CipherFinal_ex(k->ctx, fin, &outl) != 1)
        return -EBADMSG;
    return 0;
}

const struct ktls_aead_engine ktls_aead_openssl = {
    .name = "openssl",
    .supports = ossl_supports,
    .key_new = ossl_key_new,
    .key_free = ossl_key_free,
    .seal = ossl_seal,
    .open = ossl_open,
};
