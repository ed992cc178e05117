/*
 * ktls_int.h - the record layer's private state, shared by conn.c, tx.c,
 * rx.c and sock.c.
 */
#ifndef RPCTLS_KTLS_INT_H
#define RPCTLS_KTLS_INT_H

#include "rpctls/ktls.h"

/* TLS 1.3 content types (RFC 8446 5.1). */
#define KTLS_CT_CHANGE_CIPHER_SPEC 20
#define KTLS_CT_ALERT 21
#define KTLS_CT_HANDSHAKE 22
#define KTLS_CT_APPLICATION_DATA 23

/* Handshake message types seen after the handshake. */
#define KTLS_HS_NEW_SESSION_TICKET 4
#define KTLS_HS_KEY_UPDATE 24

/* Alert descriptions we send or interpret. */
#define KTLS_ALERT_CLOSE_NOTIFY 0
#define KTLS_ALERT_UNEXPECTED_MESSAGE 10
#define KTLS_ALERT_BAD_RECORD_MAC 20
#define KTLS_ALERT_RECORD_OVERFLOW 22
#define KTLS_ALERT_ILLEGAL_PARAMETER 47
#define KTLS_ALERT_DECODE_ERROR 50
#define KTLS_ALERT_INTERNAL_ERROR 80

/* Post-handshake handshake messages larger than this are refused. */
#define KTLS_MAX_HS_MSG 65536

/* One direction's traffic keys. */
struct ktls_dir {
    uint8_t secret[48];
    uint8_t iv[KTLS_AEAD_IV_LEN];
    uint64_t seq;
    struct ktls_aead_key *key;
};
_Static_assert(sizeof(((struct ktls_dir *)0)->secret) == 48,
               "a traffic secret is as long as the suite's hash; SHA-384 (48 bytes) is the longest we support");

struct ktls_conn {
    enum ktls_role role;
    enum ktls_cipher cipher;
    const struct ktls_aead_engine *engine;
    enum ktls_tx_mode tx_mode;
    size_t max_record;
    uint64_t key_update_bytes; /* UINT64_MAX: never initiate a KeyUpdate */
    uint64_t record_limit;     /* TX records per key, KTLS_TX_CONTROL_RESERVE of them for control */

    struct ktls_dir tx;
    struct ktls_dir rx;
    uint64_t tx_bytes_since_update;

    /* Control records (alerts, KeyUpdates) waiting to go out, in order. */
    struct mb_chain ctl;
    int key_update_owed; /* the peer asked for a KeyUpdate; not yet sent */

    /* RX: received ciphertext not yet processed, and the receive buffer
     * that reads go into (64 KiB page-vector stores). Arriving bytes are
     * split off it and joined to rxbuf (one link while contiguous). */
    struct mb_chain rxbuf;
    struct mb_rcvbuf rxfill;
    /* A post-handshake handshake message split across records. */
    uint8_t *hsbuf;
    size_t hslen;

    int rx_error;  /* sticky: once set every RX call returns it */
    int rx_eof;    /* close_notify received */
    int last_alert;      /* the last alert description received, or -1 */
    int last_alert_sent; /* the last alert description we sent (queued), or -1 */
    int tx_closed; /* close_notify or a fatal alert sent */

    struct ktls_stats stats;
};

/* Builds the nonce for seq: iv XOR big-endian seq in the last 8 bytes. */
void ktls__nonce(const struct ktls_dir *d, uint8_t nonce[KTLS_AEAD_IV_LEN]);
/* Installs secret (hash length) as the direction's traffic secret. */
int ktls__dir_set_secret(struct ktls_conn *c, struct ktls_dir *d, const uint8_t *secret);
/* Seals one record with inner content type ct from flat bytes into the
 * control queue (alerts, KeyUpdates). */
int ktls__tx_control_record(struct ktls_conn *c, uint8_t ct, const uint8_t *data, size_t len);
/* Queues a fatal alert and closes TX. */
void ktls__tx_queue_alert(struct ktls_conn *c, uint8_t desc);

#endif
