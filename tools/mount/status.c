/*
 * tools/mount/status.c - rpctls-mount's status: the extended attribute
 * user.rpctls.status of the root, and rpctls-mount --status.
 */
#include "mount.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <time.h>

/* ---- status: the extended attribute user.rpctls.status of the root ------------ */

/* A GETATTR of each healthy server's root, so that the counters are fresh
 * (they are copied on the server's loop thread, in the callback). Waited
 * for at most 2 s; the object is freed by whoever finishes last. */
struct probe;
struct probe_arg {
    struct probe *p;
    unsigned s;
};

struct probe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned refs, pending;
    struct probe_arg a[MAX_SRV];
};

static void probe_put_locked(struct probe *p)
{
    if (--p->refs > 0) {
        pthread_mutex_unlock(&p->mu);
        return;
    }
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}

static void probe_cb(struct nfs3_clnt *nc, int status, const struct nfs3_fattr *attr, void *arg)
{
    struct probe_arg *a = arg;
    struct probe *p = a->p;

    (void)nc;
    (void)status;
    (void)attr;
    srv_snapshot(a->s);
    pthread_mutex_lock(&p->mu);
    p->pending--;
    pthread_cond_broadcast(&p->cv);
    probe_put_locked(p);
}

static void refresh_counters(void)
{
    struct probe *p = calloc(1, sizeof *p);
    struct timespec until;

    if (!p)
        return;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->refs = 1;
    for (unsigned s = 0; s < g.nsrv; s++) {
        p->a[s].p = p;
        p->a[s].s = s;
        if (!healthy(s))
            continue;
        pthread_mutex_lock(&p->mu);
        p->refs++;
        p->pending++;
        pthread_mutex_unlock(&p->mu);
        if (nfs3_getattr_async(g.srv[s].nc, &g.srv[s].root, probe_cb, &p->a[s]) < 0) {
            pthread_mutex_lock(&p->mu);
            p->pending--;
            p->refs--;
            pthread_mutex_unlock(&p->mu);
        }
    }
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 2;
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0)
        if (pthread_cond_timedwait(&p->cv, &p->mu, &until) != 0)
            break; /* a server slow to answer: its last counters will do */
    probe_put_locked(p);
}

/* One server's lines of the status text. */
static size_t status_lines(char *buf, size_t len, unsigned s)
{
    const struct server *sv = &g.srv[s];
    int n;

    /* Under srv_mu (the caller's). */
    n = snprintf(buf, len,
                 "%s %u %s %s%s\n"
                 "  transport %s\n"
                 "  rpc calls=%llu replies=%llu failures=%llu retransmits=%llu reconnects=%llu "
                 "tls_handshakes=%llu bytes_sent=%llu\n"
                 "  tls tx_records_outofplace=%llu tx_bytes_outofplace=%llu tx_records_inplace=%llu "
                 "tx_bytes_inplace=%llu tx_records_copied=%llu tx_bytes_copied=%llu rx_records=%llu\n",
                 srv_role(s), s, sv->url, sv->failed ? "failed: " : "ok", sv->failed ? sv->why : "",
                 sv->transport, (unsigned long long)sv->rpc.calls,
                 (unsigned long long)sv->rpc.replies, (unsigned long long)sv->rpc.failures,
                 (unsigned long long)sv->rpc.retransmits, (unsigned long long)sv->rpc.reconnects,
                 (unsigned long long)sv->rpc.tls_handshakes, (unsigned long long)sv->rpc.bytes_sent,
                 (unsigned long long)sv->tls.tx_records_outofplace, (unsigned long long)sv->tls.tx_bytes_outofplace,
                 (unsigned long long)sv->tls.tx_records_inplace, (unsigned long long)sv->tls.tx_bytes_inplace,
                 (unsigned long long)sv->tls.tx_records_copied, (unsigned long long)sv->tls.tx_bytes_copied,
                 (unsigned long long)sv->tls.rx_records);
    return n < 0 ? 0 : (size_t)n >= len ? len - 1 : (size_t)n;
}

/* The status line about FUSE itself: how written data reached us. */
static size_t fuse_lines(char *buf, size_t len)
{
    int n = snprintf(buf, len,
                     "fuse max_write=%u splice=%s writes_from_pipe=%llu bytes_from_pipe=%llu writes_from_buffer=%llu "
                     "bytes_from_buffer=%llu\n",
                     g.max_write, g.splice_read ? "on" : "off", (unsigned long long)atomic_load(&g.writes_pipe),
                     (unsigned long long)atomic_load(&g.bytes_pipe), (unsigned long long)atomic_load(&g.writes_buf),
                     (unsigned long long)atomic_load(&g.bytes_buf));

    return n < 0 ? 0 : (size_t)n >= len ? len - 1 : (size_t)n;
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    char buf[8192];
    size_t used = 0;

    /* Only the status, only on the root; everything else has no extended
     * attributes (NFSv3 has none). */
    if (ino != FUSE_ROOT_ID || strcmp(name, STATUS_XATTR) != 0) {
        fuse_reply_err(req, ENODATA);
        return;
    }
    refresh_counters();
    pthread_mutex_lock(&g.srv_mu);
    for (unsigned s = 0; s < g.nsrv; s++)
        used += status_lines(buf + used, sizeof buf - used, s);
    pthread_mutex_unlock(&g.srv_mu);
    used += fuse_lines(buf + used, sizeof buf - used);
    if (size == 0)
        fuse_reply_xattr(req, used);
    else if (size < used)
        fuse_reply_err(req, ERANGE);
    else
        fuse_reply_buf(req, buf, used);
}

/* rpctls-mount --status MOUNTPOINT: prints the mount's status attribute.
 * Exit 0 when every server is healthy, 3 when one has failed, 1 when the
 * status cannot be read. */
int show_status(const char *mnt)
{
    char buf[8192];
    ssize_t n = getxattr(mnt, STATUS_XATTR, buf, sizeof buf - 1);

    if (n < 0) {
        fprintf(stderr, PROG ": %s: cannot read %s: %s (not an rpctls mount?)\n", mnt, STATUS_XATTR,
                strerror(errno));
        return 1;
    }
    buf[n] = '\0';
    fputs(buf, stdout);
    return strstr(buf, " failed: ") ? 3 : 0;
}
