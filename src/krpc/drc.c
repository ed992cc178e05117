/*
 * drc.c - the server's duplicate-request cache: a hash table of entries and
 * an LRU list of the completed ones. See drc.h.
 */
#include "krpc/drc.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { ST_IN_PROGRESS = 1, ST_DONE = 2 };

struct krpc_drc_entry {
    struct krpc_drc_key key;
    uint64_t hash;
    int state;
    struct krpc_drc_entry *hnext, **hprev; /* bucket chain */
    struct krpc_drc_entry *lru_prev, *lru_next; /* DONE entries only */
    struct mb_chain reply;                  /* DONE: the reply, by reference */
};

struct krpc_drc {
    /* One cache for all of a server's loops: a retransmission on a new
     * connection may land on another loop and must still hit. A single
     * mutex is enough: a lookup or completion is a hash probe and a few
     * pointer moves, tiny next to decrypting the call it guards. */
    pthread_mutex_t lock;
    struct krpc_drc_entry **buckets;
    size_t nbuckets; /* power of two */
    unsigned max_entries;
    unsigned entries, in_progress;
    uint64_t evictions;
    struct krpc_drc_entry *lru_head, *lru_tail; /* head: least recently used */
};

int krpc__drc_new(unsigned max_entries, struct krpc_drc **out)
{
    struct krpc_drc *d;
    size_t nb = 16;

    *out = NULL;
    if (max_entries == 0)
        return -EINVAL;
    while (nb < (size_t)max_entries * 2 && nb < ((size_t)1 << 24))
        nb <<= 1;
    d = calloc(1, sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    d->buckets = calloc(nb, sizeof(*d->buckets));
    if (d->buckets == NULL) {
        free(d);
        return -ENOMEM;
    }
    d->nbuckets = nb;
    d->max_entries = max_entries;
    pthread_mutex_init(&d->lock, NULL);
    *out = d;
    return 0;
}

static void entry_free(struct krpc_drc_entry *e)
{
    mb_chain_free(&e->reply);
    free(e);
}

void krpc__drc_free(struct krpc_drc *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->nbuckets; i++) {
        struct krpc_drc_entry *e = d->buckets[i], *n;
        for (; e != NULL; e = n) {
            n = e->hnext;
            entry_free(e);
        }
    }
    free(d->buckets);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

void krpc__drc_key_set_addr(struct krpc_drc_key *key, const struct sockaddr *sa, socklen_t len)
{
    memset(key->addr, 0, sizeof(key->addr));
    key->family = 0;
    if (sa == NULL)
        return;
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        key->family = AF_INET;
        memcpy(key->addr, &in->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        /* The same client over a dual-stack socket is the same client. */
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            key->family = AF_INET;
            memcpy(key->addr, &in6->sin6_addr.s6_addr[12], 4);
        } else {
            key->family = AF_INET6;
            memcpy(key->addr, &in6->sin6_addr, 16);
        }
    }
}

/* ---- checksum ----------------------------------------------------------- */

#define K1 0x9E3779B97F4A7C15ull
#define K2 0xC2B2AE3D27D4EB4Full

static inline uint64_t rotl64(uint64_t v, int r)
{
    return (v << r) | (v >> (64 - r));
}

static inline uint64_t mix_word(uint64_t h, uint64_t w)
{
    return rotl64(h ^ (w * K2), 31) * K1;
}

static inline uint64_t load64(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

/* Consumes the bytes 8 at a time, carrying a partial word across links, so
 * the result depends only on the byte sequence. About one multiply per 8
 * bytes: cheap next to decrypting the same bytes. */
uint64_t krpc__drc_checksum(const struct mb_chain *c, size_t off, size_t len)
{
    uint64_t h = K1 ^ len;
    unsigned char part[8], *p;
    size_t npart = 0, n, avail = off < c->len ? c->len - off : 0;
    struct mb_seg_iter it;

    /* Only the bytes the chain has are hashed (len still counts in full). */
    mb_seg_iter_init(&it, c, off < c->len ? off : c->len, len < avail ? len : avail);
    while ((n = mb_seg_next(&it, &p)) > 0) {
        size_t i = 0;
        if (npart > 0) {
            while (npart < 8 && i < n)
                part[npart++] = p[i++];
            if (npart == 8) {
                h = mix_word(h, load64(part));
                npart = 0;
            }
        }
        for (; i + 8 <= n; i += 8)
            h = mix_word(h, load64(p + i));
        while (i < n)
            part[npart++] = p[i++];
    }
    if (npart > 0) {
        memset(part + npart, 0, 8 - npart);
        h = mix_word(h, load64(part) ^ ((uint64_t)npart << 56));
    }
    h ^= h >> 33;
    h *= K2;
    h ^= h >> 29;
    return h;
}

void krpc__drc_key_set_cred(struct krpc_drc_key *key, const struct krpc_cred *cred, const char *subject)
{
    uint64_t h = K1;
    size_t n = subject != NULL ? strlen(subject) : 0;

    key->flavor = cred->flavor;
    key->uid = key->gid = 0;
    if (cred->flavor == KRPC_AUTH_SYS) {
        uint32_t ngids = cred->ngids < KRPC_AUTH_SYS_MAX_GIDS ? cred->ngids : KRPC_AUTH_SYS_MAX_GIDS;
        key->uid = cred->uid;
        key->gid = cred->gid;
        h = mix_word(h, ngids);
        for (uint32_t i = 0; i < ngids; i++)
            h = mix_word(h, cred->gids[i]);
    }
    /* The subject, 8 bytes at a time, its length first so that no two
     * (gids, subject) pairs run together. */
    h = mix_word(h, (uint64_t)n | (1ull << 63));
    for (size_t i = 0; i < n; i += 8) {
        unsigned char w[8] = {0};
        memcpy(w, subject + i, n - i < 8 ? n - i : 8);
        h = mix_word(h, load64(w));
    }
    key->who = h ^ (h >> 29);
}

/* ---- table -------------------------------------------------------------- */

static uint64_t key_hash(const struct krpc_drc_key *k)
{
    uint64_t h = K2;
    uint64_t a0 = load64(k->addr), a1 = load64(k->addr + 8);

    h = mix_word(h, a0);
    h = mix_word(h, a1);
    h = mix_word(h, ((uint64_t)k->family << 32) | k->xid);
    h = mix_word(h, ((uint64_t)k->prog << 32) | k->vers);
    h = mix_word(h, ((uint64_t)k->proc << 32) | k->arglen);
    h = mix_word(h, k->csum);
    h = mix_word(h, ((uint64_t)k->flavor << 32) | k->uid);
    h = mix_word(h, ((uint64_t)k->gid << 32) ^ k->who);
    return h ^ (h >> 29);
}

static int key_eq(const struct krpc_drc_key *a, const struct krpc_drc_key *b)
{
    return a->family == b->family && memcmp(a->addr, b->addr, sizeof(a->addr)) == 0 && a->xid == b->xid &&
           a->prog == b->prog && a->vers == b->vers && a->proc == b->proc && a->arglen == b->arglen &&
           a->csum == b->csum && a->flavor == b->flavor && a->uid == b->uid && a->gid == b->gid &&
           a->who == b->who;
}

static void lru_unlink(struct krpc_drc *d, struct krpc_drc_entry *e)
{
    if (e->lru_prev != NULL)
        e->lru_prev->lru_next = e->lru_next;
    else
        d->lru_head = e->lru_next;
    if (e->lru_next != NULL)
        e->lru_next->lru_prev = e->lru_prev;
    else
        d->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_tail(struct krpc_drc *d, struct krpc_drc_entry *e)
{
    e->lru_next = NULL;
    e->lru_prev = d->lru_tail;
    if (d->lru_tail != NULL)
        d->lru_tail->lru_next = e;
    else
        d->lru_head = e;
    d->lru_tail = e;
}

static void entry_remove(struct krpc_drc *d, struct krpc_drc_entry *e)
{
    *e->hprev = e->hnext;
    if (e->hnext != NULL)
        e->hnext->hprev = e->hprev;
    if (e->state == ST_DONE)
        lru_unlink(d, e);
    else
        d->in_progress--;
    d->entries--;
    entry_free(e);
}

static enum krpc_drc_result lookup_locked(struct krpc_drc *d, const struct krpc_drc_key *key,
                                          struct krpc_drc_entry **entry, struct mb_chain *reply)
{
    uint64_t h = key_hash(key);
    struct krpc_drc_entry **b = &d->buckets[h & (d->nbuckets - 1)], *e;

    *entry = NULL;
    for (e = *b; e != NULL; e = e->hnext) {
        if (e->hash != h || !key_eq(&e->key, key))
            continue;
        if (e->state == ST_IN_PROGRESS)
            return KRPC_DRC_IN_PROGRESS;
        if (mb_chain_copy_ref(reply, &e->reply, 0, e->reply.len) != 0) {
            /* Cannot share the reply: let the call run again rather than
             * answer nothing. Drop the stale entry so it is replaced. */
            entry_remove(d, e);
            break;
        }
        lru_unlink(d, e);
        lru_push_tail(d, e);
        return KRPC_DRC_DONE;
    }
    if (d->entries >= d->max_entries && d->lru_head != NULL) {
        d->evictions++;
        entry_remove(d, d->lru_head);
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return KRPC_DRC_NEW;
    e->key = *key;
    e->hash = h;
    e->state = ST_IN_PROGRESS;
    mb_chain_init(&e->reply);
    e->hnext = *b;
    if (*b != NULL)
        (*b)->hprev = &e->hnext;
    e->hprev = b;
    *b = e;
    d->entries++;
    d->in_progress++;
    *entry = e;
    return KRPC_DRC_NEW;
}

enum krpc_drc_result krpc__drc_lookup(struct krpc_drc *d, const struct krpc_drc_key *key,
                                      struct krpc_drc_entry **entry, struct mb_chain *reply)
{
    enum krpc_drc_result r;

    pthread_mutex_lock(&d->lock);
    r = lookup_locked(d, key, entry, reply);
    pthread_mutex_unlock(&d->lock);
    return r;
}

static void complete_locked(struct krpc_drc *d, struct krpc_drc_entry *e, const struct mb_chain *reply)
{
    if (e->state != ST_IN_PROGRESS)
        return;
    if (mb_chain_copy_ref(&e->reply, reply, 0, reply->len) != 0) {
        entry_remove(d, e);
        return;
    }
    e->state = ST_DONE;
    d->in_progress--;
    lru_push_tail(d, e);
    /* Completions may have let the cache grow past its bound. */
    while (d->entries > d->max_entries && d->lru_head != NULL && d->lru_head != e) {
        d->evictions++;
        entry_remove(d, d->lru_head);
    }
}

void krpc__drc_complete(struct krpc_drc *d, struct krpc_drc_entry *e, const struct mb_chain *reply)
{
    if (e == NULL)
        return;
    pthread_mutex_lock(&d->lock);
    complete_locked(d, e, reply);
    pthread_mutex_unlock(&d->lock);
}

void krpc__drc_forget(struct krpc_drc *d, struct krpc_drc_entry *e)
{
    if (e == NULL)
        return;
    pthread_mutex_lock(&d->lock);
    entry_remove(d, e);
    pthread_mutex_unlock(&d->lock);
}

void krpc__drc_info(const struct krpc_drc *d, struct krpc_drc_info *out)
{
    struct krpc_drc *m = (struct krpc_drc *)d; /* the lock only */

    pthread_mutex_lock(&m->lock);
    out->entries = d->entries;
    out->in_progress = d->in_progress;
    out->done = d->entries - d->in_progress;
    out->evictions = d->evictions;
    pthread_mutex_unlock(&m->lock);
}
