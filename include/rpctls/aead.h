/*
 * rpctls/aead.h - the AEAD engine interface under the record layer.
 *
 * An engine seals and opens one TLS record payload given as iovec lists.
 * Source and destination lists may have different segment boundaries; when
 * they describe the same memory the operation is in place. Engines:
 *   "openssl"  libcrypto EVP, always available;
 *   "ipsecmb"  Intel multi-buffer crypto (libIPSec_MB), when built with it.
 * ktls_aead_default() is the fastest available one, overridable with the
 * RPCTLS_AEAD_ENGINE environment variable ("openssl", "ipsecmb", "auto").
 */
#ifndef RPCTLS_AEAD_H
#define RPCTLS_AEAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "rpctls/visibility.h"

#ifdef __cplusplus
extern "C" {
#endif

enum ktls_cipher {
    KTLS_AES_128_GCM_SHA256 = 0x1301,
    KTLS_AES_256_GCM_SHA384 = 0x1302,
    KTLS_CHACHA20_POLY1305_SHA256 = 0x1303,
};

#define KTLS_AEAD_TAG_LEN 16
#define KTLS_AEAD_IV_LEN 12
#define KTLS_AEAD_MAX_KEY_LEN 32

struct ktls_aead_key; /* engine-private expanded key and context */

struct ktls_aead_engine {
    const char *name;
    /* Returns 1 when the engine can run cipher on this CPU/build. */
    int (*supports)(enum ktls_cipher cipher);
    int (*key_new)(enum ktls_cipher cipher, const uint8_t *key, struct ktls_aead_key **out);
    void (*key_free)(struct ktls_aead_key *k);
    /* Encrypts src into dst (same total length) and writes the tag. */
    int (*seal)(struct ktls_aead_key *k, const uint8_t nonce[KTLS_AEAD_IV_LEN], const uint8_t *aad, size_t aadlen,
                const struct iovec *src, int nsrc, const struct iovec *dst, int ndst,
                uint8_t tag[KTLS_AEAD_TAG_LEN]);
    /* Decrypts; returns -EBADMSG when the tag does not verify (dst then holds
     * unauthenticated bytes the caller must discard). */
    int (*open)(struct ktls_aead_key *k, const uint8_t nonce[KTLS_AEAD_IV_LEN], const uint8_t *aad, size_t aadlen,
                const struct iovec *src, int nsrc, const struct iovec *dst, int ndst,
                const uint8_t tag[KTLS_AEAD_TAG_LEN]);
};

RPCTLS_API extern const struct ktls_aead_engine ktls_aead_openssl;
/* NULL when built without libIPSec_MB. */
RPCTLS_API extern const struct ktls_aead_engine *const ktls_aead_ipsecmb;

/* Engine by name ("openssl", "ipsecmb", "auto" or NULL for the default);
 * NULL when that engine is not available. */
RPCTLS_API const struct ktls_aead_engine *ktls_aead_find(const char *name);
/* The fastest available engine for cipher, honouring RPCTLS_AEAD_ENGINE. */
RPCTLS_API const struct ktls_aead_engine *ktls_aead_default(enum ktls_cipher cipher);

RPCTLS_API size_t ktls_cipher_key_len(enum ktls_cipher cipher);
/* Hash output length of the suite (32 or 48). */
RPCTLS_API size_t ktls_cipher_hash_len(enum ktls_cipher cipher);
RPCTLS_API const char *ktls_cipher_name(enum ktls_cipher cipher); /* "aes128gcm", "aes256gcm", "chacha20" */
/* Parses "aes128gcm", "aes256gcm", "chacha20" or an OpenSSL TLS 1.3 suite name. */
RPCTLS_API int ktls_cipher_from_name(const char *name, enum ktls_cipher *out);

/* ---- TLS 1.3 key schedule (RFC 8446 section 7) --------------------------- */

/* HKDF-Expand-Label(secret, label, context, outlen) with the suite's hash. */
RPCTLS_API int ktls_hkdf_expand_label(enum ktls_cipher cipher, const uint8_t *secret, size_t secretlen,
                                      const char *label, const uint8_t *ctx, size_t ctxlen, uint8_t *out,
                                      size_t outlen);
/* Traffic key and IV from a traffic secret. */
RPCTLS_API int ktls_derive_key_iv(enum ktls_cipher cipher, const uint8_t *secret, uint8_t *key,
                                  uint8_t iv[KTLS_AEAD_IV_LEN]);
/* secret <- HKDF-Expand-Label(secret, "traffic upd", "", hashlen), in place. */
RPCTLS_API int ktls_next_secret(enum ktls_cipher cipher, uint8_t *secret);

#ifdef __cplusplus
}
#endif

#endif
