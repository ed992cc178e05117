/*
 * tx.c - framing chains into TLS 1.3 records and sealing them.
 *
 * A sealed record is three pieces of a chain:
 *   header (5 bytes, inline) ++ ciphertext ++ trailer (inner type + tag, inline)
 * The ciphertext is the plaintext's own storage when encrypting in place,
 * or fresh pool pages when encrypting out of place or copying. Shared pages
 * are written only in KTLS_TX_UNSAFE_INPLACE mode, which exists to show the bug.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ktls/ktls_int.h"
#include "mbuf/check.h"

#define TX_STACK_IOV 64
#define TX_MSG_STACK_IOV 256 /* the whole message's source iovecs, out of place */

/* Out of place, a record is one pooled record buffer (mb_append_rec):
 * header, ciphertext, inner type and tag contiguous, the ciphertext 64-byte
 * aligned. */
#define TX_REC_LEAD (64 - KTLS_HDR_LEN)
_Static_assert(TX_REC_LEAD + KTLS_HDR_LEN + KTLS_MAX_PLAINTEXT + 1 + KTLS_AEAD_TAG_LEN <= MB_REC_SIZE,
               "a full record fits one record buffer");

_Static_assert(KTLS_HDR_LEN == 5, "TLS record header: type, legacy version (2 bytes), length (2 bytes) (RFC 8446 5.1)");
_Static_assert(KTLS_HDR_LEN <= MB_INLINE_SIZE && 1 + KTLS_AEAD_TAG_LEN <= MB_INLINE_SIZE,
               "the record header and the trailer (inner type + tag) are each written into one inline store");
_Static_assert(KTLS_MAX_PLAINTEXT + 1 + KTLS_AEAD_TAG_LEN <= 0xffff,
               "a record's length must fit the 16-bit length field of its header");
_Static_assert(KTLS_MAX_PLAINTEXT + 1 + KTLS_AEAD_TAG_LEN <= KTLS_MAX_CIPHERTEXT,
               "our largest record must be one our own RX (and any TLS 1.3 peer) accepts");

/* iovecs for all of chain c plus one extra entry; heap-allocated when the
 * chain has more pieces than fit in stack (nstack entries). The common case
 * fits: one walk of the chain fills the stack array, and only a chain that
 * does not fit is walked again to count it. */
static int tx_iov_n(const struct mb_chain *c, struct iovec *stack, int nstack, struct iovec **iov, int *niov)
{
    int need, n;

    *iov = stack;
    if (c->len == 0) {
        *niov = 0;
        return 0;
    }
    if ((n = mb_chain_to_iovec(c, 0, c->len, stack, nstack - 1)) != -ERANGE) {
        if (n < 0)
            return n;
        *niov = n;
        return 0;
    }
    if ((need = mb_chain_iovec_count(c, 0, c->len)) < 0)
        return need;
    if ((*iov = malloc((size_t)(need + 1) * sizeof(**iov))) == NULL)
        return -ENOMEM;
    if ((n = mb_chain_to_iovec(c, 0, c->len, *iov, need)) < 0) {
        free(*iov);
        *iov = stack;
        return n;
    }
    *niov = n;
    return 0;
}

static int tx_iov(const struct mb_chain *c, struct iovec *stack, struct iovec **iov, int *niov)
{
    return tx_iov_n(c, stack, TX_STACK_IOV, iov, niov);
}

/*
 * Which bytes of a chain are ours to seal in place is mbuf's answer
 * (mb_chain_writable_ranges), asked once before the chain is cut into
 * records: cutting a link at a record boundary makes two links to one
 * store, and when the chain owned that store by holding all its references
 * the cut pieces would no longer say so. Ranges past TX_OWN_RANGES count as
 * not ours, which is always safe (out of place).
 */
#define TX_OWN_RANGES 32

struct tx_ownership {
    struct mb_range r[TX_OWN_RANGES];
    int n;
};

/* 1 when all of [off, off + len) of the judged chain is ours: the ranges
 * are maximal, so it must lie inside one of them. */
static int tx_ownership_covers(const struct tx_ownership *o, size_t off, size_t len)
{
    for (int i = 0; i < o->n && o->r[i].off <= off; i++)
        if (off + len <= o->r[i].off + o->r[i].len)
            return 1;
    return 0;
}

/*
 * Seals body (consumed) as one record of inner content type ct and appends
 * it to out. mode decides where the ciphertext goes; owned says whether
 * body's bytes belong to the caller alone (used by KTLS_TX_AUTO).
 */
static int seal_record(struct ktls_conn *c, uint8_t ct, struct mb_chain *body, struct mb_chain *out,
                       enum ktls_tx_mode mode, int owned)
{
    struct mb_chain rec = MB_CHAIN_INIT, ctext = MB_CHAIN_INIT, trailer = MB_CHAIN_INIT;
    struct iovec src_stack[TX_STACK_IOV], dst_stack[TX_STACK_IOV], *src = NULL, *dst = NULL;
    int nsrc = 0, ndst = 0, in_place, ret;
    size_t n = body->len, reclen = n + 1 + KTLS_AEAD_TAG_LEN;
    uint8_t nonce[KTLS_AEAD_IV_LEN], *hdr, *trl;
    struct mb *link;
    uint64_t limit;

    if (n > KTLS_MAX_PLAINTEXT) {
        ret = -EMSGSIZE;
        goto exit;
    }
    /* Never past the key's AEAD usage limit; its last records are kept for
     * control records (a KeyUpdate, an alert, close_notify). */
    limit = ct == KTLS_CT_APPLICATION_DATA ? c->record_limit - KTLS_TX_CONTROL_RESERVE : c->record_limit;
    if (c->tx.seq >= limit) {
        ret = -EKEYEXPIRED;
        goto exit;
    }
    if ((link = mb_append_inline(&rec, KTLS_HDR_LEN)) == NULL || (link = mb_append_inline(&trailer, 1 + KTLS_AEAD_TAG_LEN)) == NULL) {
        ret = -ENOMEM;
        goto exit;
    }
    hdr = mb_store_ptr(rec.head->st, rec.head->off);
    hdr[0] = KTLS_CT_APPLICATION_DATA;
    hdr[1] = 0x03;
    hdr[2] = 0x03;
    hdr[3] = (uint8_t)(reclen >> 8);
    hdr[4] = (uint8_t)reclen;
    trl = mb_store_ptr(link->st, link->off);
    trl[0] = ct;

    switch (mode) {
    case KTLS_TX_UNSAFE_INPLACE:
        in_place = 1;
        break;
    case KTLS_TX_AUTO:
        in_place = owned;
        break;
    default:
        in_place = 0;
        break;
    }
    if (!in_place) {
        if (mode == KTLS_TX_COPY)
            ret = mb_chain_copy_to_pages(&ctext, body, 0, n);
        else
            ret = mb_append_pages(&ctext, 0, n);
        if (ret != 0)
            goto exit;
        c->stats.tx_pages_allocated += (n + MB_PAGE_SIZE - 1) / MB_PAGE_SIZE;
        if (mode == KTLS_TX_COPY) {
            /* The copy is ours alone: seal it in place. */
            mb_chain_free(body);
            *body = ctext;
            mb_chain_init(&ctext);
            in_place = 1;
        }
    }

    if ((ret = tx_iov(body, src_stack, &src, &nsrc)) != 0)
        goto exit;
    if (in_place) {
        dst = src;
        ndst = nsrc;
    } else if ((ret = tx_iov(&ctext, dst_stack, &dst, &ndst)) != 0) {
        goto exit;
    }
    /* The inner content type is encrypted right after the data, in place in
     * the trailer, which both lists end with. */
    src[nsrc].iov_base = trl;
    src[nsrc].iov_len = 1;
    if (dst != src) {
        dst[ndst].iov_base = trl;
        dst[ndst].iov_len = 1;
    }
    /* Invariants: a nonce is never reused (the sequence number is below the
     * key's limit, checked above), and in place means the mode allows it. */
    RPCTLS_CHECK(c->tx.seq < c->record_limit);
    RPCTLS_CHECK(!in_place || mode == KTLS_TX_UNSAFE_INPLACE || mode == KTLS_TX_COPY || owned);
    ktls__nonce(&c->tx, nonce);
    ret = c->engine->seal(c->tx.key, nonce, hdr, KTLS_HDR_LEN, src, nsrc + 1, dst, ndst + 1, trl + 1);
    if (ret != 0)
        goto exit;
    c->tx.seq++;

    if (ct != KTLS_CT_APPLICATION_DATA) {
        c->stats.tx_control_records++;
    } else if (mode == KTLS_TX_COPY) {
        c->stats.tx_records_copied++;
        c->stats.tx_bytes_copied += n;
    } else if (in_place) {
        c->stats.tx_records_inplace++;
        c->stats.tx_bytes_inplace += n;
    } else {
        c->stats.tx_records_outofplace++;
        c->stats.tx_bytes_outofplace += n;
    }
    if (in_place) {
        mb_chain_concat(&rec, body);
    } else {
        mb_chain_free(body); /* drop our reference to the plaintext; the pages live on for other users */
        mb_chain_concat(&rec, &ctext);
    }
    mb_chain_concat(&rec, &trailer);
    /* The record is exactly what its header says. */
    RPCTLS_CHECK(rec.len == KTLS_HDR_LEN + reclen);
    mb_chain_concat(out, &rec);

exit:
    if (src != NULL && src != src_stack)
        free(src);
    if (dst != NULL && dst != src && dst != dst_stack)
        free(dst);
    mb_chain_free(&rec);
    mb_chain_free(&ctext);
    mb_chain_free(&trailer);
    mb_chain_free(body);
    return ret;
}

/*
 * Seals n plaintext bytes described by src[0..nsrc) out of place as one
 * application-data record into a fresh record buffer appended to out. src
 * must have room for one more entry (the inner content type); the bytes it
 * names are only read.
 *
 * A source in more than one piece (pages that are not adjacent, small
 * links) is first gathered into the record buffer and sealed there in place,
 * with one engine update instead of one per piece: an update call costs
 * ipsecmb about as much as copying 1-2 KiB (a 16 KiB record from four
 * scattered pages seals 25-37% faster gathered; OpenSSL, which does not pay
 * per call, the same within the noise, -3..+5%). A source in one piece is
 * sealed straight from it, which is cheaper than the copy.
 */
static int seal_record_rec(struct ktls_conn *c, struct iovec *src, int nsrc, size_t n, struct mb_chain *out)
{
    static const uint8_t ct = KTLS_CT_APPLICATION_DATA;
    struct mb_chain rec = MB_CHAIN_INIT;
    uint8_t nonce[KTLS_AEAD_IV_LEN], *hdr;
    size_t reclen = n + 1 + KTLS_AEAD_TAG_LEN;
    struct iovec dst;
    struct mb *m;
    int ret;

    if (c->tx.seq >= c->record_limit - KTLS_TX_CONTROL_RESERVE)
        return -EKEYEXPIRED;
    if ((m = mb_append_rec(&rec, TX_REC_LEAD, KTLS_HDR_LEN + reclen)) == NULL)
        return -ENOMEM;
    hdr = mb_store_ptr(m->st, m->off);
    hdr[0] = KTLS_CT_APPLICATION_DATA;
    hdr[1] = 0x03;
    hdr[2] = 0x03;
    hdr[3] = (uint8_t)(reclen >> 8);
    hdr[4] = (uint8_t)reclen;
    src[nsrc].iov_base = (void *)&ct;
    src[nsrc].iov_len = 1;
    dst.iov_base = hdr + KTLS_HDR_LEN;
    dst.iov_len = n + 1;
    ktls__nonce(&c->tx, nonce);
    ret = c->engine->seal(c->tx.key, nonce, hdr, KTLS_HDR_LEN, src, nsrc + 1, &dst, 1, hdr + KTLS_HDR_LEN + n + 1);
    if (ret != 0) {
        mb_chain_free(&rec);
        return ret;
    }
    c->tx.seq++;
    c->stats.tx_records_outofplace++;
    c->stats.tx_bytes_outofplace += n;
    c->stats.tx_record_buffers++;
    mb_chain_concat(out, &rec);
    return 0;
}

/*
 * The whole message's source iovecs, built once per ktls_tx_seal, and a
 * cursor into them: each out-of-place record borrows a slice in place (the
 * first and last entries trimmed, the entry after it lent to the inner type)
 * and gives it back afterwards, so no record builds iovecs of its own.
 */
struct tx_src {
    struct iovec *iov; /* niov entries + 1 spare */
    int niov;
    int idx;       /* entry holding the cursor */
    size_t skip;   /* bytes of iov[idx] before the cursor */
};

static int tx_src_seal(struct ktls_conn *c, struct tx_src *s, size_t n, struct mb_chain *out)
{
    struct iovec *v = s->iov, save_first, save_last, save_next;
    int first = s->idx, last = first, ret;
    size_t left = n, last_len;

    /* Find the entry holding the record's last byte. */
    while (v[last].iov_len - (last == first ? s->skip : 0) < left) {
        left -= v[last].iov_len - (last == first ? s->skip : 0);
        last++;
    }
    last_len = left + (last == first ? s->skip : 0); /* bytes of v[last] up to the record's end */
    save_first = v[first];
    v[first].iov_base = (uint8_t *)v[first].iov_base + s->skip;
    v[first].iov_len -= s->skip;
    save_last = v[last];
    v[last].iov_len = left;
    save_next = v[last + 1];
    ret = seal_record_rec(c, &v[first], last - first + 1, n, out);
    v[last + 1] = save_next;
    v[last] = save_last;
    v[first] = save_first;
    if (last_len == v[last].iov_len) {
        s->idx = last + 1;
        s->skip = 0;
    } else {
        s->idx = last;
        s->skip = last_len;
    }
    return ret;
}

/* Moves the cursor n bytes on without sealing (the bytes went in place). */
static void tx_src_skip(struct tx_src *s, size_t n)
{
    while (n > 0 && s->idx < s->niov) {
        size_t avail = s->iov[s->idx].iov_len - s->skip;
        if (n < avail) {
            s->skip += n;
            return;
        }
        n -= avail;
        s->idx++;
        s->skip = 0;
    }
}

int ktls__tx_control_record(struct ktls_conn *c, uint8_t ct, const uint8_t *data, size_t len)
{
    struct mb_chain body = MB_CHAIN_INIT;
    int ret;

    if ((ret = mb_chain_append_bytes(&body, data, len)) != 0) {
        mb_chain_free(&body);
        return ret;
    }
    /* Our own fresh bytes: sealed in place. */
    return seal_record(c, ct, &body, &c->ctl, KTLS_TX_AUTO, 1);
}

/* Sends a KeyUpdate under the current key, then switches to the next one. */
static int tx_key_update_now(struct ktls_conn *c, int request_update)
{
    uint8_t msg[5] = {KTLS_HS_KEY_UPDATE, 0, 0, 1, (uint8_t)(request_update ? 1 : 0)};
    int ret;

    if ((ret = ktls__tx_control_record(c, KTLS_CT_HANDSHAKE, msg, sizeof(msg))) != 0)
        return ret;
    if ((ret = ktls_next_secret(c->cipher, c->tx.secret)) != 0 ||
        (ret = ktls__dir_set_secret(c, &c->tx, c->tx.secret)) != 0)
        return ret;
    c->tx_bytes_since_update = 0;
    c->key_update_owed = 0; /* any KeyUpdate of ours answers the peer's request */
    c->stats.tx_key_updates++;
    return 0;
}

int ktls_tx_key_update(struct ktls_conn *c, int request_update)
{
    if (c->tx_closed)
        return -EPIPE;
    return tx_key_update_now(c, request_update);
}

void ktls__tx_queue_alert(struct ktls_conn *c, uint8_t desc)
{
    uint8_t alert[2] = {2 /* fatal */, desc};

    if (c->tx_closed)
        return;
    /* Best effort: the connection is going down whatever happens here. */
    (void)ktls__tx_control_record(c, KTLS_CT_ALERT, alert, sizeof(alert));
    c->last_alert_sent = desc;
    c->tx_closed = 1;
}

int ktls_tx_flush_control(struct ktls_conn *c, struct mb_chain *out)
{
    int ret;

    if (c->key_update_owed && !c->tx_closed && (ret = tx_key_update_now(c, 0)) != 0)
        return ret;
    mb_chain_concat(out, &c->ctl);
    return 0;
}

int ktls_tx_seal(struct ktls_conn *c, struct mb_chain *plain, struct mb_chain *out)
{
    struct mb_chain body, rest;
    struct tx_ownership own = {.n = 0};
    struct iovec src_stack[TX_MSG_STACK_IOV];
    struct tx_src src = {.iov = NULL};
    size_t pos = 0, nrec, behind = 0;
    int ret;

    if (c->tx_mode == KTLS_TX_AUTO)
        own.n = mb_chain_writable_ranges(plain, own.r, TX_OWN_RANGES);
    if (c->tx_closed) {
        ret = -EPIPE;
        goto exit;
    }
    if ((ret = ktls_tx_flush_control(c, out)) != 0)
        goto exit;
    /* Without KeyUpdate a message that does not fit under the key's limit is
     * refused whole, so the peer never sees half of it. */
    nrec = (plain->len + c->max_record - 1) / c->max_record;
    if (!ktls_conn_key_update_enabled(c) && nrec > ktls_conn_tx_records_left(c)) {
        ret = -EKEYEXPIRED;
        goto exit;
    }
    /* Out of place, the message's iovecs are built once, here. */
    if (plain->len > 0 && (c->tx_mode == KTLS_TX_OUTOFPLACE ||
                           (c->tx_mode == KTLS_TX_AUTO && !tx_ownership_covers(&own, 0, plain->len)))) {
        if ((ret = tx_iov_n(plain, src_stack, TX_MSG_STACK_IOV, &src.iov, &src.niov)) != 0)
            goto exit;
    }
    while (plain->len > behind) {
        size_t left = plain->len - behind, n = left < c->max_record ? left : c->max_record;
        int owned = c->tx_mode == KTLS_TX_AUTO && tx_ownership_covers(&own, pos, n);

        if (ktls_conn_key_update_enabled(c) && (c->tx_bytes_since_update >= c->key_update_bytes ||
                                                c->tx.seq >= c->record_limit - KTLS_TX_CONTROL_RESERVE)) {
            if ((ret = tx_key_update_now(c, 0)) != 0)
                goto exit;
            mb_chain_concat(out, &c->ctl);
        }
        if (src.iov != NULL && (c->tx_mode == KTLS_TX_OUTOFPLACE || (c->tx_mode == KTLS_TX_AUTO && !owned))) {
            /* The plaintext is only read: its references stay at the head
             * of plain (behind) and go with it at the end. */
            if ((ret = tx_src_seal(c, &src, n, out)) != 0)
                goto exit;
            behind += n;
        } else {
            if (behind > 0) {
                mb_chain_trim_head(plain, behind);
                behind = 0;
            }
            mb_chain_init(&rest);
            if (n < plain->len && (ret = mb_chain_split(plain, n, &rest)) != 0)
                goto exit;
            body = *plain;
            *plain = rest;
            if ((ret = seal_record(c, KTLS_CT_APPLICATION_DATA, &body, out, c->tx_mode, owned)) != 0)
                goto exit;
            if (src.iov != NULL)
                tx_src_skip(&src, n);
        }
        c->tx_bytes_since_update += n;
        pos += n;
    }
exit:
    if (src.iov != NULL && src.iov != src_stack)
        free(src.iov);
    mb_chain_free(plain);
    return ret;
}

int ktls_tx_close_notify(struct ktls_conn *c, struct mb_chain *out)
{
    uint8_t alert[2] = {1 /* warning */, KTLS_ALERT_CLOSE_NOTIFY};
    int ret;

    if (c->tx_closed)
        return -EPIPE;
    if ((ret = ktls_tx_flush_control(c, out)) != 0 ||
        (ret = ktls__tx_control_record(c, KTLS_CT_ALERT, alert, sizeof(alert))) != 0)
        return ret;
    mb_chain_concat(out, &c->ctl);
    c->last_alert_sent = KTLS_ALERT_CLOSE_NOTIFY;
    c->tx_closed = 1;
    return 0;
}
