/*
 * tests/test_aead_errors.c - the openssl AEAD engine says why a key could
 * not be made: -ENOMEM only when memory ran out, -EIO when libcrypto fails
 * otherwise (here: no provider offers the cipher).
 *
 * A program of its own: it replaces OpenSSL's allocator and then loads only
 * the "base" provider into the default library context, which stops the
 * default provider (the one with the ciphers) from being loaded implicitly.
 * Both must happen before anything else in the process uses libcrypto.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/provider.h>

#include "rpctls/aead.h"
#include "test.h"

static int fail_allocs; /* OpenSSL allocations to refuse from now on */

static void *t_malloc(size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    if (fail_allocs > 0) {
        fail_allocs--;
        return NULL;
    }
    return malloc(n);
}

static void *t_realloc(void *p, size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    if (fail_allocs > 0) {
        fail_allocs--;
        return NULL;
    }
    return realloc(p, n);
}

static void t_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    free(p);
}

static const uint8_t key[32];

/* EVP_CIPHER_CTX_new is the engine's first libcrypto allocation: refusing
 * it is running out of memory. */
static void test_no_memory_is_enomem(void)
{
    struct ktls_aead_key *k = NULL;

    fail_allocs = 1;
    CHECK_EQ(ktls_aead_openssl.key_new(KTLS_AES_128_GCM_SHA256, key, &k), -ENOMEM);
    fail_allocs = 0;
    CHECK(k == NULL);
}

/* Only the base provider: no cipher can be fetched. That is libcrypto
 * failing on valid input, not memory. */
static void test_no_cipher_is_eio(void)
{
    static const enum ktls_cipher all[] = {KTLS_AES_128_GCM_SHA256, KTLS_AES_256_GCM_SHA384,
                                           KTLS_CHACHA20_POLY1305_SHA256};

    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        struct ktls_aead_key *k = NULL;
        CHECK_EQ(ktls_aead_openssl.key_new(all[i], key, &k), -EIO);
        CHECK(k == NULL);
        /* The failure is not left behind for an unrelated caller to find. */
        CHECK_EQ(ERR_peek_error(), 0);
    }
}

int main(void)
{
    OSSL_PROVIDER *base;

    if (!CRYPTO_set_mem_functions(t_malloc, t_realloc, t_free)) {
        fprintf(stderr, "CRYPTO_set_mem_functions refused (OpenSSL already allocated)\n");
        return 1;
    }
    TEST_RUN(test_no_memory_is_enomem);
    base = OSSL_PROVIDER_load(NULL, "base");
    if (base == NULL) {
        fprintf(stderr, "cannot load OpenSSL's base provider\n");
        return 1;
    }
    TEST_RUN(test_no_cipher_is_eio);
    OSSL_PROVIDER_unload(base);
    return test_summary();
}
