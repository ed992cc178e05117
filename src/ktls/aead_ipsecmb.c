/*
 * src/ktls/aead_ipsecmb.c - the "ipsecmb" AEAD engine (Intel multi-buffer
 * crypto, libIPSec_MB >= 1.3), built when CMake finds the library.
 *
 * It uses the direct (synchronous) AES-GCM and ChaCha20-Poly1305 API:
 * init / update / finalize, which fits scatter-gather records: both iovec
 * lists are walked together and update runs on each overlapping piece. The
 * library keeps partial-block state in the context between updates, so
 * pieces of any length are fine (tests/test_aead.c checks this against
 * OpenSSL over random segmentations).
 *
 * The IMB_MGR (function table picked for this CPU) is per thread, created on
 * first use and freed by a thread-specific-data destructor. The expanded key
 * is read-only after key_new and the per-record context lives on the stack,
 * so one key may be used by several threads at once.
 */
#include <rpctls/aead.h>

#include "ktls/aead_int.h"

#include <stddef.h>

#ifdef RPCTLS_HAVE_IPSECMB

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <intel-ipsec-mb.h>
#include <openssl/crypto.h>

struct ktls_aead_key {
    /* First: the library wants 16-byte (better 64-byte) aligned key data. */
    union {
        struct gcm_key_data gcm;
        uint8_t chacha[32];
    } u;
    enum ktls_cipher cipher;
    uint32_t arch; /* layout of the precomputed GCM key depends on it */
};

static pthread_key_t mgr_key;
static pthread_once_t mgr_once = PTHREAD_ONCE_INIT;
static int mgr_key_ok;
static _Thread_local IMB_MGR *tls_mgr;

static void mgr_destroy(void *p)
{
    tls_mgr = NULL; /* runs in the exiting thread */
    free_mb_mgr(p);
}

static void mgr_key_init(void)
{
    mgr_key_ok = pthread_key_create(&mgr_key, mgr_destroy) == 0;
}

/* This thread's manager; NULL when it cannot be created. Allocates once per
 * thread (the only allocation on the seal/open path). */
static IMB_MGR *get_mgr(void)
{
    IMB_MGR *m = tls_mgr;

    if (m)
        return m;
    pthread_once(&mgr_once, mgr_key_init);
    m = alloc_mb_mgr(0);
    if (!m)
        return NULL;
    init_mb_mgr_auto(m, NULL);
    if (imb_get_errno(m) != 0 || m->used_arch == IMB_ARCH_NONE) {
        free_mb_mgr(m);
        return NULL;
    }
    if (mgr_key_ok)
        pthread_setspecific(mgr_key, m);
    tls_mgr = m;
    return m;
}

static int mb_supports(enum ktls_cipher cipher)
{
    IMB_MGR *m = get_mgr();
    const uint64_t gcm_need = IMB_FEATURE_AESNI | IMB_FEATURE_PCLMULQDQ;

    if (!m)
        return 0;
    switch (cipher) {
    case KTLS_AES_128_GCM_SHA256:
    case KTLS_AES_256_GCM_SHA384:
        /* Without AES-NI the library falls back to a slow emulation:
         * OpenSSL is the better engine then. */
        return m->used_arch != IMB_ARCH_NOAESNI && (m->features & gcm_need) == gcm_need;
    case KTLS_CHACHA20_POLY1305_SHA256:
        return 1;
    }
    return 0;
}

static void mb_key_free(struct ktls_aead_key *k)
{
    if (!k)
        return;
    OPENSSL_cleanse(k, sizeof(*k));
    free(k);
}

static int mb_key_new(enum ktls_cipher cipher, const uint8_t *key, struct ktls_aead_key **out)
{
    struct ktls_aead_key *k;
    IMB_MGR *m;
    size_t sz;

    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!key || !ktls_cipher_key_len(cipher))
        return -EINVAL;
    if (!mb_supports(cipher))
        return -ENOTSUP;
    m = get_mgr();
    sz = (sizeof(*k) + 63) & ~(size_t)63;
    k = aligned_alloc(64, sz);
    if (!k)
        return -ENOMEM;
    memset(k, 0, sz);
    k->cipher = cipher;
    k->arch = m->used_arch;
    switch (cipher) {
    case KTLS_AES_128_GCM_SHA256:
        IMB_AES128_GCM_PRE(m, key, &k->u.gcm);
        break;
    case KTLS_AES_256_GCM_SHA384:
        IMB_AES256_GCM_PRE(m, key, &k->u.gcm);
        break;
    case KTLS_CHACHA20_POLY1305_SHA256:
        memcpy(k->u.chacha, key, 32);
        break;
    }
    *out = k;
    return 0;
}

union mb_ctx {
    struct gcm_context_data gcm;
    struct chacha20_poly1305_context_data chacha;
};

struct mb_walk {
    IMB_MGR *m;
    struct ktls_aead_key *k;
    union mb_ctx *c;
    int enc;
};

static int mb_piece(void *arg, uint8_t *out, const uint8_t *in, size_t n)
{
    struct mb_walk *w = arg;

    switch (w->k->cipher) {
    case KTLS_AES_128_GCM_SHA256:
        if (w->enc)
            IMB_AES128_GCM_ENC_UPDATE(w->m, &w->k->u.gcm, &w->c->gcm, out, in, n);
        else
            IMB_AES128_GCM_DEC_UPDATE(w->m, &w->k->u.gcm, &w->c->gcm, out, in, n);
        break;
    case KTLS_AES_256_GCM_SHA384:
        if (w->enc)
            IMB_AES256_GCM_ENC_UPDATE(w->m, &w->k->u.gcm, &w->c->gcm, out, in, n);
        else
            IMB_AES256_GCM_DEC_UPDATE(w->m, &w->k->u.gcm, &w->c->gcm, out, in, n);
        break;
    case KTLS_CHACHA20_POLY1305_SHA256:
        if (w->enc)
            IMB_CHACHA20_POLY1305_ENC_UPDATE(w->m, w->k->u.chacha, &w->c->chacha, out, in, n);
        else
            IMB_CHACHA20_POLY1305_DEC_UPDATE(w->m, w->k->u.chacha, &w->c->chacha, out, in, n);
        break;
    }
    return 0;
}

/* Encrypts or decrypts src into dst and computes the tag. */
static int mb_crypt(struct ktls_aead_key *k, const uint8_t *nonce, const uint8_t *aad, size_t aadlen,
                    const struct iovec *src, int nsrc, const struct iovec *dst, int ndst, int enc,
                    uint8_t tag[KTLS_AEAD_TAG_LEN])
{
    static const uint8_t no_aad[1];
    IMB_MGR *m;
    union mb_ctx c;
    int rc;

    if (!k || !tag || !nonce || (aadlen && !aad))
        return -EINVAL;
    m = get_mgr();
    if (!m)
        return -ENOMEM;
    if (m->used_arch != k->arch)
        return -EINVAL;
    if (!aad)
        aad = no_aad;

    switch (k->cipher) {
    case KTLS_AES_128_GCM_SHA256:
        IMB_AES128_GCM_INIT(m, &k->u.gcm, &c.gcm, nonce, aad, aadlen);
        break;
    case KTLS_AES_256_GCM_SHA384:
        IMB_AES256_GCM_INIT(m, &k->u.gcm, &c.gcm, nonce, aad, aadlen);
        break;
    case KTLS_CHACHA20_POLY1305_SHA256:
        IMB_CHACHA20_POLY1305_INIT(m, k->u.chacha, &c.chacha, nonce, aad, aadlen);
        break;
    }

    struct mb_walk w = {m, k, &c, enc};
    if ((rc = ktls__aead_walk(src, nsrc, dst, ndst, mb_piece, &w)) != 0)
        return rc;

    switch (k->cipher) {
    case KTLS_AES_128_GCM_SHA256:
        if (enc)
            IMB_AES128_GCM_ENC_FINALIZE(m, &k->u.gcm, &c.gcm, tag, KTLS_AEAD_TAG_LEN);
        else
            IMB_AES128_GCM_DEC_FINALIZE(m, &k->u.gcm, &c.gcm, tag, KTLS_AEAD_TAG_LEN);
        break;
    case KTLS_AES_256_GCM_SHA384:
        if (enc)
            IMB_AES256_GCM_ENC_FINALIZE(m, &k->u.gcm, &c.gcm, tag, KTLS_AEAD_TAG_LEN);
        else
            IMB_AES256_GCM_DEC_FINALIZE(m, &k->u.gcm, &c.gcm, tag, KTLS_AEAD_TAG_LEN);
        break;
    case KTLS_CHACHA20_POLY1305_SHA256:
        if (enc)
            IMB_CHACHA20_POLY1305_ENC_FINALIZE(m, &c.chacha, tag, KTLS_AEAD_TAG_LEN);
        else
            IMB_CHACHA20_POLY1305_DEC_FINALIZE(m, &c.chacha, tag, KTLS_AEAD_TAG_LEN);
        break;
    }
    /* The context holds keystream and hash state of this record. */
    OPENSSL_cleanse(&c, sizeof(c));
    return 0;
}

static int mb_seal(struct ktls_aead_key *k, const uint8_t nonce[KTLS_AEAD_IV_LEN], const uint8_t *aad,
                   size_t aadlen, const struct iovec *src, int nsrc, const struct iovec *dst, int ndst,
                   uint8_t tag[KTLS_AEAD_TAG_LEN])
{
    return mb_crypt(k, nonce, aad, aadlen, src, nsrc, dst, ndst, 1, tag);
}

static int mb_open(struct ktls_aead_key *k, const uint8_t nonce[KTLS_AEAD_IV_LEN], const uint8_t *aad,
                   size_t aadlen, const struct iovec *src, int nsrc, const struct iovec *dst, int ndst,
                   const uint8_t tag[KTLS_AEAD_TAG_LEN])
{
    uint8_t calc[KTLS_AEAD_TAG_LEN];
    int rc;

    if (!tag)
        return -EINVAL;
    rc = mb_crypt(k, nonce, aad, aadlen, src, nsrc, dst, ndst, 0, calc);
    if (rc < 0)
        return rc;
    rc = CRYPTO_memcmp(calc, tag, KTLS_AEAD_TAG_LEN) == 0 ? 0 : -EBADMSG;
    OPENSSL_cleanse(calc, sizeof(calc));
    return rc;
}

static const struct ktls_aead_engine ipsecmb_engine = {
    .name = "ipsecmb",
    .supports = mb_supports,
    .key_new = mb_key_new,
    .key_free = mb_key_free,
    .seal = mb_seal,
    .open = mb_open,
};

const struct ktls_aead_engine *const ktls_aead_ipsecmb = &ipsecmb_engine;

#else /* !RPCTLS_HAVE_IPSECMB */

const struct ktls_aead_engine *const ktls_aead_ipsecmb = NULL;

#endif
