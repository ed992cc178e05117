/*
 * src/ktls/aead.c - AEAD engine registry and cipher-suite helpers.
 *
 * The engines themselves live in aead_openssl.c and aead_ipsecmb.c; this
 * file only picks one. Selection is cheap (a getenv and a table lookup) and
 * happens when a key is installed, never per record.
 */
#include <rpctls/aead.h>

#include "ktls/aead_int.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

size_t ktls_cipher_key_len(enum ktls_cipher cipher)
{
    switch (cipher) {
    case KTLS_AES_128_GCM_SHA256:
        return 16;
    case KTLS_AES_256_GCM_SHA384:
    case KTLS_CHACHA20_POLY1305_SHA256:
        return 32;
    }
    return 0;
}

size_t ktls_cipher_hash_len(enum ktls_cipher cipher)
{
    switch (cipher) {
    case KTLS_AES_128_GCM_SHA256:
    case KTLS_CHACHA20_POLY1305_SHA256:
        return 32;
    case KTLS_AES_256_GCM_SHA384:
        return 48;
    }
    return 0;
}

const char *ktls_cipher_name(enum ktls_cipher cipher)
{
    switch (cipher) {
    case KTLS_AES_128_GCM_SHA256:
        return "aes128gcm";
    case KTLS_AES_256_GCM_SHA384:
        return "aes256gcm";
    case KTLS_CHACHA20_POLY1305_SHA256:
        return "chacha20";
    }
    return NULL;
}

static const struct {
    const char *name;
    enum ktls_cipher cipher;
} cipher_names[] = {
    {"aes128gcm", KTLS_AES_128_GCM_SHA256},
    {"aes256gcm", KTLS_AES_256_GCM_SHA384},
    {"chacha20", KTLS_CHACHA20_POLY1305_SHA256},
    {"TLS_AES_128_GCM_SHA256", KTLS_AES_128_GCM_SHA256},
    {"TLS_AES_256_GCM_SHA384", KTLS_AES_256_GCM_SHA384},
    {"TLS_CHACHA20_POLY1305_SHA256", KTLS_CHACHA20_POLY1305_SHA256},
};

int ktls_cipher_from_name(const char *name, enum ktls_cipher *out)
{
    if (!name || !out)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(cipher_names) / sizeof(cipher_names[0]); i++) {
        if (strcasecmp(name, cipher_names[i].name) == 0) {
            *out = cipher_names[i].cipher;
            return 0;
        }
    }
    return -EINVAL;
}

static int cipher_valid(enum ktls_cipher cipher)
{
    return ktls_cipher_key_len(cipher) != 0;
}

/* The automatic choice, from measurements on the project's machines
 * (docs/aead.md): libIPSec_MB's VAES/AVX-512 GCM is about twice as fast as
 * OpenSSL 3.0 EVP for AES-GCM; for ChaCha20-Poly1305 OpenSSL is at least as
 * fast, so it keeps that suite. */
static const struct ktls_aead_engine *auto_engine(enum ktls_cipher cipher)
{
    const struct ktls_aead_engine *ipsecmb = ktls_aead_ipsecmb;

    if (ipsecmb && cipher != KTLS_CHACHA20_POLY1305_SHA256 && ipsecmb->supports(cipher))
        return ipsecmb;
    return &ktls_aead_openssl;
}

static const struct ktls_aead_engine *named_engine(const char *name)
{
    if (strcasecmp(name, "openssl") == 0)
        return &ktls_aead_openssl;
    if (strcasecmp(name, "ipsecmb") == 0)
        return ktls_aead_ipsecmb;
    return NULL;
}

const struct ktls_aead_engine *ktls_aead_find(const char *name)
{
    if (!name)
        return ktls_aead_default(KTLS_AES_128_GCM_SHA256);
    if (strcasecmp(name, "auto") == 0)
        return auto_engine(KTLS_AES_128_GCM_SHA256);
    return named_engine(name);
}

const struct ktls_aead_engine *ktls_aead_default(enum ktls_cipher cipher)
{
    const char *env = getenv("RPCTLS_AEAD_ENGINE");

    if (env && *env && strcasecmp(env, "auto") != 0) {
        const struct ktls_aead_engine *e = named_engine(env);

        /* An engine that is absent, or cannot run this suite here, falls
         * back to the automatic choice: a connection must not fail because
         * of a tuning knob. */
        if (e && (!cipher_valid(cipher) || e->supports(cipher)))
            return e;
    }
    return auto_engine(cipher);
}

static int iov_total(const struct iovec *v, int n, size_t *out)
{
    size_t t = 0;

    if (n < 0 || (n > 0 && v == NULL))
        return -EINVAL;
    for (int i = 0; i < n; i++) {
        if (v[i].iov_len > SIZE_MAX - t)
            return -EINVAL;
        t += v[i].iov_len;
    }
    *out = t;
    return 0;
}

int ktls__aead_walk(const struct iovec *src, int nsrc, const struct iovec *dst, int ndst, ktls_aead_piece_fn fn,
                    void *arg)
{
    size_t slen, dlen, soff = 0, doff = 0;
    int si = 0, di = 0, ret;

    if ((ret = iov_total(src, nsrc, &slen)) != 0 || (ret = iov_total(dst, ndst, &dlen)) != 0)
        return ret;
    if (slen != dlen)
        return -EINVAL;
    for (;;) {
        while (si < nsrc && soff == src[si].iov_len) {
            si++;
            soff = 0;
        }
        while (di < ndst && doff == dst[di].iov_len) {
            di++;
            doff = 0;
        }
        if (si == nsrc || di == ndst)
            return 0;
        size_t n = src[si].iov_len - soff;
        if (dst[di].iov_len - doff < n)
            n = dst[di].iov_len - doff;
        if ((ret = fn(arg, (uint8_t *)dst[di].iov_base + doff, (const uint8_t *)src[si].iov_base + soff, n)) != 0)
            return ret;
        soff += n;
        doff += n;
    }
}
