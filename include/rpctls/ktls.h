/*
 * rpctls/ktls.h - a kernel-TLS-style TLS 1.3 record layer on buffer chains.
 *
 * OpenSSL performs the handshake (ktls_handshake*); the traffic secrets are
 * then handed to a struct ktls_conn, which frames chains into records and
 * encrypts them (TX) and parses and decrypts records from any segmentation of
 * the byte stream (RX). OpenSSL is no longer involved after the hand-off.
 *
 * TX modes (docs/ktls.md, "TX"):
 *   KTLS_TX_AUTO        in place if the record's plaintext is exclusively
 *                       owned and writable, out of place otherwise (default);
 *   KTLS_TX_OUTOFPLACE  always encrypt into fresh pool pages;
 *   KTLS_TX_COPY        copy into fresh pages, then encrypt those in place;
 *   KTLS_TX_INPLACE     encrypt in place regardless of sharing. UNSAFE: it
 *                       corrupts shared pages. Exists to demonstrate the bug.
 *
 * Threading: a struct ktls_conn is used by one thread at a time, for both
 * directions -- RX changes TX state (it queues alerts and KeyUpdate answers,
 * which the next TX call seals). Different connections run in parallel.
 */
#ifndef RPCTLS_KTLS_H
#define RPCTLS_KTLS_H

#include <stddef.h>
#include <stdint.h>

#include "rpctls/aead.h"
#include "rpctls/mbuf.h"

#include "rpctls/visibility.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KTLS_MAX_PLAINTEXT 16384
#define KTLS_HDR_LEN 5
/* Largest TLSCiphertext.length we accept: 2^14 + 256 (RFC 8446 5.2). */
#define KTLS_MAX_CIPHERTEXT (16384 + 256)
/*
 * AEAD usage limits per traffic key, in records (RFC 8446 5.5). Every record
 * counts as a full-size one, whatever its length.
 *   AES-GCM: 2^24.5 full-size records (floor of 2^24.5 = 23,726,566.4),
 *            about 388 GB of 16 KiB records.
 *   ChaCha20-Poly1305: no limit short of the 64-bit sequence number, which
 *            must never wrap (RFC 8446 5.3); UINT64_MAX records leaves the
 *            last sequence number unused and still fits a uint64_t.
 * The record layer never sends a KeyUpdate on its own unless asked to
 * (key_update_bytes): kernel TLS in Linux and FreeBSD cannot rekey an RPC
 * socket. Without KeyUpdate, TX refuses data that would take the key past
 * its limit (-EKEYEXPIRED) and the owner reconnects with a fresh handshake.
 */
#define KTLS_AES_GCM_RECORD_LIMIT 23726566ull
#define KTLS_CHACHA20_POLY1305_RECORD_LIMIT UINT64_MAX
/* Records of every key kept back from application data for the control
 * records that may still have to go out: a KeyUpdate, an alert, close_notify. */
#define KTLS_TX_CONTROL_RESERVE 2

enum ktls_tx_mode {
    KTLS_TX_AUTO = 0,
    KTLS_TX_OUTOFPLACE = 1,
    KTLS_TX_COPY = 2,
    KTLS_TX_UNSAFE_INPLACE = 3,
};
/* The names in the list above ("?" for a value outside it); from_name takes
 * exactly those names, -EINVAL for any other (the unsafe mode is spelled
 * "unsafe-inplace" only, so that no command line asks for it unawares). */
RPCTLS_API const char *ktls_tx_mode_name(enum ktls_tx_mode m);
RPCTLS_API int ktls_tx_mode_from_name(const char *name, enum ktls_tx_mode *out);

enum ktls_role { KTLS_CLIENT = 0, KTLS_SERVER = 1 };

/* Per-connection counters, like FreeBSD's kern.ipc.tls.stats. */
struct ktls_stats {
    uint64_t tx_records_inplace, tx_bytes_inplace;
    uint64_t tx_records_outofplace, tx_bytes_outofplace;
    uint64_t tx_records_copied, tx_bytes_copied;
    uint64_t tx_pages_allocated;
    uint64_t tx_control_records; /* alerts and KeyUpdates; not in the data counters above */
    uint64_t tx_key_updates;
    uint64_t rx_records, rx_bytes;
    uint64_t rx_key_updates;
    uint64_t rx_bad_records;
    uint64_t tx_record_buffers; /* pooled record buffers (mb_append_rec) used out of place */
};

struct ktls_conn;

struct ktls_conn_params {
    enum ktls_role role;
    enum ktls_cipher cipher;
    const uint8_t *tx_secret; /* our application traffic secret, hash length */
    const uint8_t *rx_secret; /* the peer's */
    const struct ktls_aead_engine *engine; /* NULL: ktls_aead_default() */
    enum ktls_tx_mode tx_mode;
    size_t max_record;        /* plaintext bytes per record; 0: 16384 */
    /* Opt-in: send a KeyUpdate after this many bytes under one key, and
     * before the key reaches its record limit. 0 (the default) or
     * UINT64_MAX: never initiate one (a peer's request is still answered). */
    uint64_t key_update_bytes;
    /* Test hook: records per key, below the cipher's AEAD limit (at least
     * KTLS_TX_CONTROL_RESERVE + 1). 0: ktls_cipher_record_limit(). */
    uint64_t record_limit;
};

/* The AEAD usage limit of cipher's keys, in records (0 for an unknown cipher). */
RPCTLS_API uint64_t ktls_cipher_record_limit(enum ktls_cipher cipher);

RPCTLS_API int ktls_conn_new(const struct ktls_conn_params *p, struct ktls_conn **out);
RPCTLS_API void ktls_conn_free(struct ktls_conn *c);
RPCTLS_API void ktls_conn_set_tx_mode(struct ktls_conn *c, enum ktls_tx_mode m);
RPCTLS_API enum ktls_tx_mode ktls_conn_tx_mode(const struct ktls_conn *c);
RPCTLS_API const struct ktls_stats *ktls_conn_stats(const struct ktls_conn *c);
RPCTLS_API const struct ktls_aead_engine *ktls_conn_engine(const struct ktls_conn *c);
RPCTLS_API enum ktls_cipher ktls_conn_cipher(const struct ktls_conn *c);
/* Application-data records TX can still seal under the current key before
 * it refuses with -EKEYEXPIRED; UINT64_MAX when KeyUpdate is enabled
 * (key_update_bytes), since TX then rekeys before the limit by itself. */
RPCTLS_API uint64_t ktls_conn_tx_records_left(const struct ktls_conn *c);
/* 1 when this connection initiates KeyUpdates (key_update_bytes opt-in). */
RPCTLS_API int ktls_conn_key_update_enabled(const struct ktls_conn *c);

/* ---- TX ----------------------------------------------------------------- */

/* Consumes plain (the caller's reference is dropped; plain is empty on
 * return, also on error) and appends complete records, ready for writev, to
 * out. Control records queued by RX (KeyUpdate answers, alerts) go first.
 * -EKEYEXPIRED (nothing of plain sealed): the records plain needs would take
 * the key past its usage limit and KeyUpdate is not enabled; the connection
 * can still send close_notify. */
RPCTLS_API int ktls_tx_seal(struct ktls_conn *c, struct mb_chain *plain, struct mb_chain *out);
/* Queues a KeyUpdate (request_update = 1 asks the peer to update too). */
RPCTLS_API int ktls_tx_key_update(struct ktls_conn *c, int request_update);
/* Appends a close_notify alert record to out. */
RPCTLS_API int ktls_tx_close_notify(struct ktls_conn *c, struct mb_chain *out);
/* Appends queued control records (KeyUpdate answers, alerts) to out. */
RPCTLS_API int ktls_tx_flush_control(struct ktls_conn *c, struct mb_chain *out);

/* ---- RX ----------------------------------------------------------------- */

/* Receive buffers are pool pages owned by the connection. To read from a
 * socket without an extra copy: ktls_rx_space() gives iovecs to read into,
 * ktls_rx_commit() says how many bytes arrived. ktls_rx_feed() copies. */
RPCTLS_API int ktls_rx_space(struct ktls_conn *c, struct iovec *iov, int maxiov);
RPCTLS_API void ktls_rx_commit(struct ktls_conn *c, size_t n);
RPCTLS_API int ktls_rx_feed(struct ktls_conn *c, const void *data, size_t len);
/* Decrypts every complete record buffered and appends application data to
 * app. Returns 0 (need more bytes), KTLS_RX_EOF after close_notify, or a
 * negative error: -EBADMSG (bad tag: a bad_record_mac alert is queued and
 * nothing of that record is delivered), -EMSGSIZE (oversize record),
 * -EPROTO (unknown content type, bad message, fatal alert received). After an
 * error the connection is dead and every later call fails the same way. */
#define KTLS_RX_EOF 1
RPCTLS_API int ktls_rx_process(struct ktls_conn *c, struct mb_chain *app);
/* The last alert description received, or -1 if none, for error messages. */
RPCTLS_API int ktls_rx_alert(const struct ktls_conn *c);
/* 1 once close_notify has been received. ktls_rx_process hands out the data
 * before it first (returning 0) and says KTLS_RX_EOF only on its next call;
 * an event-driven reader checks this after delivering, since no more bytes
 * (and no readiness event) will come to prompt that next call. */
RPCTLS_API int ktls_rx_eof(const struct ktls_conn *c);
/* The last alert description this side sent or queued (a fatal alert from
 * RX, or close_notify), or -1 if none. */
RPCTLS_API int ktls_tx_alert(const struct ktls_conn *c);
/* The RFC 8446 section 6 name of an alert description ("bad_record_mac"),
 * "unknown_alert" for a number the RFC does not define. */
RPCTLS_API const char *ktls_alert_name(int desc);

/* ---- blocking socket helpers -------------------------------------------- */

/* Seals all of plain and writes it (plus control records) to fd. */
RPCTLS_API int ktls_send(struct ktls_conn *c, int fd, struct mb_chain *plain);
/* Reads until at least one byte of application data is available (appended
 * to app), EOF (returns KTLS_RX_EOF) or an error. */
RPCTLS_API int ktls_recv(struct ktls_conn *c, int fd, struct mb_chain *app);
/* Writes all of chain to fd (blocking; handles partial writes). Consumes it. */
RPCTLS_API int ktls_write_chain(int fd, struct mb_chain *chain);

/* ---- handshake and hand-off --------------------------------------------- */

struct ktls_config {
    enum ktls_role role;
    const char *cert_file;     /* PEM; required for servers */
    const char *key_file;
    const char *ca_file;       /* verify the peer against this CA */
    int verify_peer;           /* client: 1 default (verify server; 0 also verifies, < 0 disables).
                                  server: 0 none, 1 optional, 2 required */
    const char *server_name;   /* client: SNI and host/IP name check; NULL: no name check */
    /* ALPN, as the deployed RPC-with-TLS peers do it (Linux tlshd, FreeBSD
     * rpc.tls*d and libnfs send and select none). A client offers alpn,
     * accepts a server that selects none and refuses one that selects
     * another protocol. A server selects alpn when offered, accepts a
     * ClientHello without ALPN and refuses (no_application_protocol) one
     * whose list lacks alpn. require_alpn (strict mode) also refuses a peer
     * that offers or selects none. */
    const char *alpn;          /* e.g. "sunrpc"; NULL: none */
    int require_alpn;
    const char *ciphersuites;  /* OpenSSL TLS 1.3 suite list; NULL: KTLS_DEFAULT_CIPHERSUITES */
    const char *keylog_file;   /* NSS key log; NULL: $SSLKEYLOGFILE */
    /* Passed on to ktls_conn_params. */
    const struct ktls_aead_engine *engine;
    enum ktls_tx_mode tx_mode;
    size_t max_record;
    uint64_t key_update_bytes; /* opt-in KeyUpdate; 0: never initiate one (see ktls_conn_params) */
    uint64_t record_limit;     /* test hook; 0: the cipher's AEAD limit (see ktls_conn_params) */
    int timeout_ms;            /* handshake deadline (ktls_handshake, krpc connections); 0: 30000 */
};

/* AES-128-GCM first: the fastest suite of the record layer's engines. */
#define KTLS_DEFAULT_CIPHERSUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

/*
 * A TLS context: the certificate, key and CA loaded once, and the policy
 * (role, verification, ALPN, suites, key log, the ktls_conn parameters),
 * shared by every handshake made from it. Reference-counted (atomically:
 * handshakes on several threads may share one); a handshake holds its own
 * reference, so replacing a server's context (a reload) leaves handshakes
 * and connections made from the old one as they are.
 *
 * ktls_ctx_new checks everything it loads and says what is wrong, naming
 * the file: "certificate /x/server.pem: expired on 2026-01-01 00:00:00 UTC",
 * "private key /x/server.key: does not match the certificate /x/server.pem",
 * "CA file /nonexistent: No such file or directory" (docs/ktls-handshake.md
 * lists them). The strings of cfg are copied.
 */
struct ktls_ctx;

RPCTLS_API int ktls_ctx_new(const struct ktls_config *cfg, struct ktls_ctx **out, char *err, size_t errlen);
RPCTLS_API struct ktls_ctx *ktls_ctx_ref(struct ktls_ctx *ctx); /* returns ctx */
RPCTLS_API void ktls_ctx_unref(struct ktls_ctx *ctx);           /* NULL is fine */
/* The context's own copy of the configuration. */
RPCTLS_API const struct ktls_config *ktls_ctx_config(const struct ktls_ctx *ctx);
/* "" or a warning to log: "certificate FILE expires on DATE, in N days"
 * when fewer than KTLS_CERT_EXPIRY_WARN_DAYS are left. */
#define KTLS_CERT_EXPIRY_WARN_DAYS 30
RPCTLS_API const char *ktls_ctx_warning(const struct ktls_ctx *ctx);

struct ktls_hs;

/* A handshake from a shared context (takes its own reference). */
RPCTLS_API int ktls_hs_new_ctx(struct ktls_ctx *ctx, int fd, struct ktls_hs **out);
/* The same, for a client connecting to server_name (SNI for a host name, and
 * the name or IP checked against the certificate) in place of the context's
 * server_name, so that one context serves connections to several servers.
 * NULL: the context's. Ignored for a server. At most KTLS_MAX_SERVER_NAME
 * bytes (-EINVAL otherwise). */
#define KTLS_MAX_SERVER_NAME 255
RPCTLS_API int ktls_hs_new_ctx_name(struct ktls_ctx *ctx, int fd, const char *server_name, struct ktls_hs **out);
/* The same with a context of its own, made from cfg (files read again). */
RPCTLS_API int ktls_hs_new(const struct ktls_config *cfg, int fd, struct ktls_hs **out);
/* Drives the handshake on a non-blocking or blocking fd. Returns 0 when done,
 * -EAGAIN when it needs the fd readable (*want_write 0) or writable (1),
 * other negative values on failure (ktls_hs_error() explains). */
RPCTLS_API int ktls_hs_step(struct ktls_hs *hs, int *want_write);
RPCTLS_API const char *ktls_hs_error(const struct ktls_hs *hs);
/* After ktls_hs_step returned 0: builds the record-layer connection, handing
 * over any bytes OpenSSL read past the handshake. */
RPCTLS_API int ktls_hs_finish(struct ktls_hs *hs, struct ktls_conn **out);
/* Negotiated ALPN ("" if none) and peer certificate subject ("" if none). */
RPCTLS_API const char *ktls_hs_alpn(const struct ktls_hs *hs);
RPCTLS_API const char *ktls_hs_peer_subject(const struct ktls_hs *hs);

/*
 * Certificate identity (draft-cel-nfsv4-rpc-tls-othername). A server that
 * verified the client's certificate against its CA (verify_peer >= 1) reads
 * the user it names in a subjectAltName otherName:
 *   KTLS_OID_FREEBSD_USER      a UTF8String "user@domain", FreeBSD's form
 *                              (rpc.tlsservd -u, exports -tlscertuser);
 *   KTLS_OID_NFSV4_PRINCIPAL   the draft's NFSv4Principal, SEQUENCE { UTF8String
 *                              "user@domain" }. The draft has no OID assigned
 *                              yet (id-on TBD under 1.3.6.1.5.5.7.8); until
 *                              IANA assigns one, rpctls uses this private
 *                              placeholder (a UUID OID under 2.25, ITU-T X.667).
 * ktls_hs_peer_user: "user@domain", "" when the certificate names none or was
 * not verified. A malformed value, text that is not UTF-8 or not
 * user@domain, or more than one identity (the draft, section 3.1, item 3)
 * gives "" and a reason in ktls_hs_peer_user_error ("" otherwise).
 */
#define KTLS_OID_FREEBSD_USER "1.3.6.1.4.1.2238.1.1.1"
#define KTLS_OID_NFSV4_PRINCIPAL "2.25.315410351902403645481513457504776185352"
#define KTLS_MAX_PEER_USER 255
RPCTLS_API const char *ktls_hs_peer_user(const struct ktls_hs *hs);
RPCTLS_API const char *ktls_hs_peer_user_error(const struct ktls_hs *hs);
/* The same rules on a PEM certificate file (no verification): 1 with user
 * filled, 0 when it names no user, -1 with why (a file or format problem,
 * or one of the refusals above). For tests and tools. */
RPCTLS_API int ktls_cert_file_user(const char *pem_file, char *user, size_t userlen, char *why, size_t whylen);
/* Bytes the peer sent past its last handshake message that ktls_hs_finish()
 * handed to the record layer (for tests and diagnostics). */
RPCTLS_API size_t ktls_hs_leftover(const struct ktls_hs *hs);
RPCTLS_API void ktls_hs_free(struct ktls_hs *hs);

/* Blocking convenience: handshake on fd then hand-off. On error, errbuf
 * (if given) receives a message. */
RPCTLS_API int ktls_handshake(const struct ktls_config *cfg, int fd, struct ktls_conn **out, char *errbuf,
                              size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
