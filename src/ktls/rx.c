/*
 * rx.c - parsing and opening TLS 1.3 records from any segmentation of the
 * byte stream.
 *
 * Bytes are read straight into page-vector stores through the connection's
 * receive buffer (struct mb_rcvbuf: ktls_rx_space reserves, ktls_rx_commit
 * splits what arrived off it). A complete record is decrypted in place
 * there when mbuf's ownership rule allows (mb_chain_is_writable), and its
 * application data handed out by reference. The rule allows it because
 * nothing but split has touched the record's bytes: the plaintext handed
 * out before them was shared, but those bytes lie below the store's shared
 * mark. A store made read-only or guarded (a user shared delivered data
 * under guard mode) is decrypted out of place instead.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ktls/ktls_int.h"
#include "mbuf/check.h"

#define RX_STACK_IOV 64

_Static_assert(KTLS_MAX_CIPHERTEXT <= 0xffff, "a record's length is a 16-bit field");

static int rx_fail(struct ktls_conn *c, int err, int alert)
{
    if (alert >= 0)
        ktls__tx_queue_alert(c, (uint8_t)alert);
    c->rx_error = err;
    return err;
}

int ktls_rx_space(struct ktls_conn *c, struct iovec *iov, int maxiov)
{
    if (c->rx_error != 0)
        return c->rx_error;
    if (c->rx_eof)
        return -EPIPE; /* nothing may follow close_notify */
    return mb_rcvbuf_reserve(&c->rxfill, iov, maxiov);
}

void ktls_rx_commit(struct ktls_conn *c, size_t n)
{
    int ret;

    if (n == 0 || c->rx_error != 0)
        return;
    if ((ret = mb_rcvbuf_commit(&c->rxfill, n, &c->rxbuf)) != 0)
        rx_fail(c, ret, KTLS_ALERT_INTERNAL_ERROR);
}

int ktls_rx_feed(struct ktls_conn *c, const void *data, size_t len)
{
    const uint8_t *p = data;

    while (len > 0) {
        struct iovec iov[RX_STACK_IOV];
        int n = ktls_rx_space(c, iov, RX_STACK_IOV);

        if (n < 0)
            return n;
        for (int i = 0; i < n && len > 0; i++) {
            size_t k = iov[i].iov_len < len ? iov[i].iov_len : len;
            memcpy(iov[i].iov_base, p, k);
            ktls_rx_commit(c, k);
            p += k;
            len -= k;
        }
        if (c->rx_error != 0)
            return c->rx_error;
    }
    return 0;
}

/* Handles post-handshake handshake messages (KeyUpdate, NewSessionTicket). */
static int rx_handshake(struct ktls_conn *c, const struct mb_chain *pt, size_t off, size_t len)
{
    uint8_t *nb;
    int ret;

    if (c->hslen + len > KTLS_MAX_HS_MSG + 4)
        return rx_fail(c, -EPROTO, KTLS_ALERT_UNEXPECTED_MESSAGE);
    if ((nb = realloc(c->hsbuf, c->hslen + len)) == NULL)
        return rx_fail(c, -ENOMEM, KTLS_ALERT_INTERNAL_ERROR);
    c->hsbuf = nb;
    if ((ret = mb_chain_copy_out(pt, off, len, c->hsbuf + c->hslen)) != 0)
        return rx_fail(c, ret, KTLS_ALERT_INTERNAL_ERROR);
    c->hslen += len;

    while (c->hslen >= 4) {
        uint8_t type = c->hsbuf[0];
        size_t mlen = (size_t)c->hsbuf[1] << 16 | (size_t)c->hsbuf[2] << 8 | c->hsbuf[3];

        if (mlen > KTLS_MAX_HS_MSG)
            return rx_fail(c, -EPROTO, KTLS_ALERT_DECODE_ERROR);
        if (c->hslen < 4 + mlen)
            break;
        switch (type) {
        case KTLS_HS_KEY_UPDATE:
            /* A key change must end the record (RFC 8446 5.1): nothing
             * may follow it in this record's handshake bytes. */
            if (mlen != 1)
                return rx_fail(c, -EPROTO, KTLS_ALERT_DECODE_ERROR);
            /* It decodes, but request_update is 0 or 1 only (RFC 8446
             * 4.6.3: anything else is illegal_parameter). */
            if (c->hsbuf[4] > 1)
                return rx_fail(c, -EPROTO, KTLS_ALERT_ILLEGAL_PARAMETER);
            if (c->hslen != 5)
                return rx_fail(c, -EPROTO, KTLS_ALERT_UNEXPECTED_MESSAGE);
            if ((ret = ktls_next_secret(c->cipher, c->rx.secret)) != 0 ||
                (ret = ktls__dir_set_secret(c, &c->rx, c->rx.secret)) != 0)
                return rx_fail(c, ret, KTLS_ALERT_INTERNAL_ERROR);
            if (c->hsbuf[4] == 1)
                c->key_update_owed = 1;
            c->stats.rx_key_updates++;
            break;
        case KTLS_HS_NEW_SESSION_TICKET:
            /* Only a server issues tickets (RFC 8446 4.6.1): one from a
             * client is a message that must not arrive. A client consumes
             * and drops them: we never resume (FreeBSD's server sends 2). */
            if (c->role == KTLS_SERVER)
                return rx_fail(c, -EPROTO, KTLS_ALERT_UNEXPECTED_MESSAGE);
            break;
        default:
            return rx_fail(c, -EPROTO, KTLS_ALERT_UNEXPECTED_MESSAGE);
        }
        memmove(c->hsbuf, c->hsbuf + 4 + mlen, c->hslen - 4 - mlen);
        c->hslen -= 4 + mlen;
    }
    return 0;
}

/* Opens the record at the head of rxbuf (its length is known to be there). */
static int rx_record(struct ktls_conn *c, size_t clen, struct mb_chain *app, int *eof)
{
    struct mb_chain rec = MB_CHAIN_INIT, rest = MB_CHAIN_INIT, fresh = MB_CHAIN_INIT;
    struct iovec src_stack[RX_STACK_IOV], dst_stack[RX_STACK_IOV], *src = src_stack, *dst = dst_stack;
    uint8_t hdr[KTLS_HDR_LEN], tag[KTLS_AEAD_TAG_LEN], nonce[KTLS_AEAD_IV_LEN];
    size_t ctlen = clen - KTLS_AEAD_TAG_LEN, inner;
    const struct mb_chain *pt;
    size_t ptoff;
    int nsrc, ndst, ret, type;

    if ((ret = mb_chain_split(&c->rxbuf, KTLS_HDR_LEN + clen, &rest)) != 0)
        return rx_fail(c, ret, KTLS_ALERT_INTERNAL_ERROR);
    rec = c->rxbuf;
    c->rxbuf = rest;
    RPCTLS_CHECK(rec.len == KTLS_HDR_LEN + clen);
    mb_chain_copy_out(&rec, 0, KTLS_HDR_LEN, hdr);
    mb_chain_copy_out(&rec, KTLS_HDR_LEN + ctlen, KTLS_AEAD_TAG_LEN, tag);

    nsrc = mb_chain_iovec_count(&rec, KTLS_HDR_LEN, ctlen);
    if (nsrc > RX_STACK_IOV && (src = malloc((size_t)nsrc * sizeof(*src))) == NULL) {
        ret = rx_fail(c, -ENOMEM, KTLS_ALERT_INTERNAL_ERROR);
        goto exit;
    }
    nsrc = mb_chain_to_iovec(&rec, KTLS_HDR_LEN, ctlen, src, nsrc);
    if (mb_chain_is_writable(&rec, KTLS_HDR_LEN, ctlen)) {
        dst = src;
        ndst = nsrc;
        pt = &rec;
        ptoff = KTLS_HDR_LEN;
    } else {
        if ((ret = mb_append_pages(&fresh, 0, ctlen)) != 0) {
            ret = rx_fail(c, ret, KTLS_ALERT_INTERNAL_ERROR);
            goto exit;
        }
        ndst = mb_chain_iovec_count(&fresh, 0, ctlen);
        if (ndst > RX_STACK_IOV && (dst = malloc((size_t)ndst * sizeof(*dst))) == NULL) {
            ret = rx_fail(c, -ENOMEM, KTLS_ALERT_INTERNAL_ERROR);
            goto exit;
        }
        ndst = mb_chain_to_iovec(&fresh, 0, ctlen, dst, ndst);
        pt = &fresh;
        ptoff = 0;
    }
    if (nsrc < 0 || ndst < 0) {
        ret = rx_fail(c, -EINVAL, KTLS_ALERT_INTERNAL_ERROR);
        goto exit;
    }
    ktls__nonce(&c->rx, nonce);
    ret = c->engine->open(c->rx.key, nonce, hdr, KTLS_HDR_LEN, src, nsrc, dst, ndst, tag);
    if (ret != 0) {
        c->stats.rx_bad_records++;
        ret = rx_fail(c, ret, ret == -EBADMSG ? KTLS_ALERT_BAD_RECORD_MAC : KTLS_ALERT_INTERNAL_ERROR);
        goto exit;
    }
    c->rx.seq++;

    /* Inner plaintext = content || type || zeros: scan back over the
     * decrypted pieces, each byte once. */
    inner = ctlen;
    type = 0;
    for (int i = ndst - 1; i >= 0 && type == 0; i--) {
        const uint8_t *p = dst[i].iov_base;
        size_t k = dst[i].iov_len;
        while (k > 0 && p[k - 1] == 0)
            k--;
        inner -= dst[i].iov_len - k;
        if (k > 0)
            type = p[k - 1];
    }
    if (type == 0) {
        ret = rx_fail(c, -EPROTO, KTLS_ALERT_UNEXPECTED_MESSAGE);
        goto exit;
    }
    inner--; /* drop the type byte: inner is now the content length */
    if (inner > KTLS_MAX_PLAINTEXT) {
        ret = rx_fail(c, -EMSGSIZE, KTLS_ALERT_RECORD_OVERFLOW);
        goto exit;
    }
    c->stats.rx_records++;

    switch (type) {
    case KTLS_CT_APPLICATION_DATA:
        if (c->hslen != 0) { /* a handshake message may not be interleaved */
            ret = rx_fail(c, -EPROTO, KTLS_ALERT_UNEXPECTED_MESSAGE);
            goto exit;
        }
        if (inner > 0 && (ret = mb_chain_copy_ref(app, pt, ptoff, inner)) != 0) {
            ret = rx_fail(c, ret, KTLS_ALERT_INTERNAL_ERROR);
            goto exit;
        }
        c->stats.rx_bytes += inner;
        break;
    case KTLS_CT_ALERT: {
        uint8_t alert[2];
        if (inner != 2) {
            ret = rx_fail(c, -EPROTO, KTLS_ALERT_DECODE_ERROR);
            goto exit;
        }
        mb_chain_copy_out(pt, ptoff, 2, alert);
        if (alert[0] != 1 && alert[0] != 2) { /* warning or fatal */
            ret = rx_fail(c, -EPROTO, KTLS_ALERT_DECODE_ERROR);
            goto exit;
        }
        c->last_alert = alert[1];
        if (alert[1] == KTLS_ALERT_CLOSE_NOTIFY) {
            c->rx_eof = 1;
            *eof = 1;
        } else if (alert[1] != 90 /* user_canceled: a warning */) {
            ret = rx_fail(c, -EPROTO, -1); /* never answer a fatal alert */
            goto exit;
        }
        break;
    }
    case KTLS_CT_HANDSHAKE:
        if (inner == 0) {
            ret = rx_fail(c, -EPROTO, KTLS_ALERT_UNEXPECTED_MESSAGE);
            goto exit;
        }
        ret = rx_handshake(c, pt, ptoff, inner);
        break;
    default:
        ret = rx_fail(c, -EPROTO, KTLS_ALERT_UNEXPECTED_MESSAGE);
        break;
    }

exit:
    if (src != src_stack)
        free(src);
    if (dst != dst_stack && dst != src)
        free(dst);
    mb_chain_free(&rec);
    mb_chain_free(&fresh);
    return ret;
}

int ktls_rx_process(struct ktls_conn *c, struct mb_chain *app)
{
    size_t before = app->len;

    while (c->rx_error == 0 && !c->rx_eof) {
        uint8_t hdr[KTLS_HDR_LEN];
        size_t clen;
        int eof = 0, ret;

        if (c->rxbuf.len < KTLS_HDR_LEN)
            break;
        mb_chain_copy_out(&c->rxbuf, 0, KTLS_HDR_LEN, hdr);
        /* After the hand-off every record is protected: outer type 23. */
        if (hdr[0] != KTLS_CT_APPLICATION_DATA)
            return rx_fail(c, -EPROTO, KTLS_ALERT_UNEXPECTED_MESSAGE);
        if (hdr[1] != 0x03)
            return rx_fail(c, -EPROTO, KTLS_ALERT_DECODE_ERROR);
        clen = (size_t)hdr[3] << 8 | hdr[4];
        if (clen > KTLS_MAX_CIPHERTEXT)
            return rx_fail(c, -EMSGSIZE, KTLS_ALERT_RECORD_OVERFLOW);
        if (clen < 1 + KTLS_AEAD_TAG_LEN)
            return rx_fail(c, -EPROTO, KTLS_ALERT_DECODE_ERROR);
        /* Our AEADs add exactly a tag, so the inner plaintext (content, type
         * and padding) is clen - 16, which may not pass 2^14 + 1. */
        if (clen - KTLS_AEAD_TAG_LEN > KTLS_MAX_PLAINTEXT + 1)
            return rx_fail(c, -EMSGSIZE, KTLS_ALERT_RECORD_OVERFLOW);
        if (c->rxbuf.len < KTLS_HDR_LEN + clen)
            break;
        if ((ret = rx_record(c, clen, app, &eof)) != 0)
            return ret;
        if (eof)
            break;
    }
    if (c->rx_error != 0)
        return c->rx_error;
    /* Data that came before close_notify is delivered first. */
    if (c->rx_eof && app->len == before)
        return KTLS_RX_EOF;
    return 0;
}
