/*
 * conn.c - record-layer connection state: keys, sequence numbers, modes,
 * counters and the control-record queue.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "ktls/ktls_int.h"
#include "ktls/ktls_test.h"

static const char *const tx_mode_names[] = {
    [KTLS_TX_AUTO] = "auto",
    [KTLS_TX_OUTOFPLACE] = "outofplace",
    [KTLS_TX_COPY] = "copy",
    [KTLS_TX_UNSAFE_INPLACE] = "unsafe-inplace",
};

const char *ktls_tx_mode_name(enum ktls_tx_mode m)
{
    if ((unsigned)m >= sizeof(tx_mode_names) / sizeof(tx_mode_names[0]))
        return "?";
    return tx_mode_names[m];
}

int ktls_tx_mode_from_name(const char *name, enum ktls_tx_mode *out)
{
    for (unsigned i = 0; i < sizeof(tx_mode_names) / sizeof(tx_mode_names[0]); i++) {
        if (strcmp(name, tx_mode_names[i]) == 0) {
            *out = (enum ktls_tx_mode)i;
            return 0;
        }
    }
    return -EINVAL;
}

void ktls__nonce(const struct ktls_dir *d, uint8_t nonce[KTLS_AEAD_IV_LEN])
{
    _Static_assert(KTLS_AEAD_IV_LEN >= 8, "the 64-bit sequence number is XORed into the IV's last 8 bytes (RFC 8446 5.3)");
    memcpy(nonce, d->iv, KTLS_AEAD_IV_LEN);
    for (int i = 0; i < 8; i++)
        nonce[KTLS_AEAD_IV_LEN - 1 - i] ^= (uint8_t)(d->seq >> (8 * i));
}

int ktls__dir_set_secret(struct ktls_conn *c, struct ktls_dir *d, const uint8_t *secret)
{
    uint8_t key[KTLS_AEAD_MAX_KEY_LEN];
    struct ktls_aead_key *k = NULL;
    size_t hlen = ktls_cipher_hash_len(c->cipher);
    int ret;

    if (secret != d->secret)
        memcpy(d->secret, secret, hlen);
    if ((ret = ktls_derive_key_iv(c->cipher, d->secret, key, d->iv)) != 0)
        goto exit;
    if ((ret = c->engine->key_new(c->cipher, key, &k)) != 0)
        goto exit;
    if (d->key != NULL)
        c->engine->key_free(d->key);
    d->key = k;
    d->seq = 0;
exit:
    OPENSSL_cleanse(key, sizeof(key));
    return ret;
}

int ktls_conn_new(const struct ktls_conn_params *p, struct ktls_conn **out)
{
    struct ktls_conn *c;
    int ret;

    *out = NULL;
    if (p->tx_secret == NULL || p->rx_secret == NULL || ktls_cipher_hash_len(p->cipher) == 0)
        return -EINVAL;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return -ENOMEM;
    c->role = p->role;
    c->cipher = p->cipher;
    c->engine = p->engine != NULL ? p->engine : ktls_aead_default(p->cipher);
    c->tx_mode = p->tx_mode;
    c->max_record = p->max_record == 0 || p->max_record > KTLS_MAX_PLAINTEXT ? KTLS_MAX_PLAINTEXT : p->max_record;
    /* KeyUpdate is opt-in: kernel TLS peers cannot follow one. */
    c->key_update_bytes = p->key_update_bytes == 0 ? UINT64_MAX : p->key_update_bytes;
    c->record_limit = ktls_cipher_record_limit(p->cipher);
    if (p->record_limit != 0)
        ktls__conn_set_record_limit(c, p->record_limit);
    c->last_alert = -1;
    c->last_alert_sent = -1;
    mb_chain_init(&c->ctl);
    mb_chain_init(&c->rxbuf);
    mb_rcvbuf_init(&c->rxfill, 0); /* MB_RCVBUF_CHUNK receive stores */
    if (c->engine == NULL || !c->engine->supports(p->cipher)) {
        ret = -ENOTSUP;
        goto fail;
    }
    if ((ret = ktls__dir_set_secret(c, &c->tx, p->tx_secret)) != 0 ||
        (ret = ktls__dir_set_secret(c, &c->rx, p->rx_secret)) != 0)
        goto fail;
    *out = c;
    return 0;
fail:
    ktls_conn_free(c);
    return ret;
}

void ktls_conn_free(struct ktls_conn *c)
{
    if (c == NULL)
        return;
    if (c->tx.key != NULL)
        c->engine->key_free(c->tx.key);
    if (c->rx.key != NULL)
        c->engine->key_free(c->rx.key);
    mb_chain_free(&c->ctl);
    mb_chain_free(&c->rxbuf);
    mb_rcvbuf_free(&c->rxfill);
    free(c->hsbuf);
    OPENSSL_cleanse(c, sizeof(*c));
    free(c);
}

void ktls_conn_set_tx_mode(struct ktls_conn *c, enum ktls_tx_mode m)
{
    c->tx_mode = m;
}

enum ktls_tx_mode ktls_conn_tx_mode(const struct ktls_conn *c)
{
    return c->tx_mode;
}

const struct ktls_stats *ktls_conn_stats(const struct ktls_conn *c)
{
    return &c->stats;
}

const struct ktls_aead_engine *ktls_conn_engine(const struct ktls_conn *c)
{
    return c->engine;
}

enum ktls_cipher ktls_conn_cipher(const struct ktls_conn *c)
{
    return c->cipher;
}

void ktls__conn_set_seq(struct ktls_conn *c, uint64_t tx_seq, uint64_t rx_seq)
{
    c->tx.seq = tx_seq;
    c->rx.seq = rx_seq;
}

uint64_t ktls_cipher_record_limit(enum ktls_cipher cipher)
{
    switch (cipher) {
    case KTLS_AES_128_GCM_SHA256:
    case KTLS_AES_256_GCM_SHA384:
        return KTLS_AES_GCM_RECORD_LIMIT;
    case KTLS_CHACHA20_POLY1305_SHA256:
        return KTLS_CHACHA20_POLY1305_RECORD_LIMIT;
    default:
        return 0;
    }
}

void ktls__conn_set_record_limit(struct ktls_conn *c, uint64_t records)
{
    uint64_t max = ktls_cipher_record_limit(c->cipher);

    if (records > max)
        records = max;
    /* At least one application-data record per key. */
    if (records < KTLS_TX_CONTROL_RESERVE + 1)
        records = KTLS_TX_CONTROL_RESERVE + 1;
    c->record_limit = records;
}

int ktls_conn_key_update_enabled(const struct ktls_conn *c)
{
    return c->key_update_bytes != UINT64_MAX;
}

uint64_t ktls_conn_tx_records_left(const struct ktls_conn *c)
{
    uint64_t usable = c->record_limit - KTLS_TX_CONTROL_RESERVE;

    if (ktls_conn_key_update_enabled(c))
        return UINT64_MAX;
    return c->tx.seq >= usable ? 0 : usable - c->tx.seq;
}

int ktls_rx_alert(const struct ktls_conn *c)
{
    return c->last_alert;
}

int ktls_rx_eof(const struct ktls_conn *c)
{
    return c->rx_eof;
}

int ktls_tx_alert(const struct ktls_conn *c)
{
    return c->last_alert_sent;
}

/* Every AlertDescription of RFC 8446 section 6, with the names it gives
 * (the _RESERVED ones are TLS 1.2 codes a TLS 1.3 peer must not send, but a
 * log should still name them). */
static const struct {
    int desc;
    const char *name;
} alert_names[] = {
    {0, "close_notify"},
    {10, "unexpected_message"},
    {20, "bad_record_mac"},
    {21, "decryption_failed_RESERVED"},
    {22, "record_overflow"},
    {30, "decompression_failure_RESERVED"},
    {40, "handshake_failure"},
    {41, "no_certificate_RESERVED"},
    {42, "bad_certificate"},
    {43, "unsupported_certificate"},
    {44, "certificate_revoked"},
    {45, "certificate_expired"},
    {46, "certificate_unknown"},
    {47, "illegal_parameter"},
    {48, "unknown_ca"},
    {49, "access_denied"},
    {50, "decode_error"},
    {51, "decrypt_error"},
    {60, "export_restriction_RESERVED"},
    {70, "protocol_version"},
    {71, "insufficient_security"},
    {80, "internal_error"},
    {86, "inappropriate_fallback"},
    {90, "user_canceled"},
    {100, "no_renegotiation_RESERVED"},
    {109, "missing_extension"},
    {110, "unsupported_extension"},
    {111, "certificate_unobtainable_RESERVED"},
    {112, "unrecognized_name"},
    {113, "bad_certificate_status_response"},
    {114, "bad_certificate_hash_value_RESERVED"},
    {115, "unknown_psk_identity"},
    {116, "certificate_required"},
    {120, "no_application_protocol"},
};

const char *ktls_alert_name(int desc)
{
    for (size_t i = 0; i < sizeof(alert_names) / sizeof(alert_names[0]); i++)
        if (alert_names[i].desc == desc)
            return alert_names[i].name;
    return "unknown_alert";
}
