/*
 * sock.c - blocking socket helpers over the record layer: write a chain
 * with writev, send sealed records, read and open records.
 */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ktls/ktls_int.h"

#define SOCK_MAX_IOV 256
/* Plaintext sealed per writev batch in ktls_send: bounds the ciphertext
 * pages held at once. */
#define SOCK_SEND_BATCH (256 * 1024)

static int wait_fd(int fd, short events)
{
    struct pollfd p = {.fd = fd, .events = events};

    for (;;) {
        int r = poll(&p, 1, -1);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -errno;
    }
}

int ktls_write_chain(int fd, struct mb_chain *chain)
{
    struct iovec iov[SOCK_MAX_IOV];
    int ret = 0;

    while (chain->len > 0) {
        struct mb_seg_iter it;
        size_t bytes;
        int n;

        mb_seg_iter_init(&it, chain, 0, chain->len);
        n = mb_seg_iovec(&it, iov, SOCK_MAX_IOV, &bytes);
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        /* MSG_NOSIGNAL: a peer that went away is an error to return, not a
         * SIGPIPE that kills the process. Pipes and files take writev. */
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);

        if (w < 0 && errno == ENOTSOCK)
            w = writev(fd, iov, n);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if ((ret = wait_fd(fd, POLLOUT)) != 0)
                    break;
                continue;
            }
            ret = -errno;
            break;
        }
        mb_chain_trim_head(chain, (size_t)w);
    }
    mb_chain_free(chain);
    return ret;
}

int ktls_send(struct ktls_conn *c, int fd, struct mb_chain *plain)
{
    struct mb_chain out = MB_CHAIN_INIT, batch, rest;
    int ret = 0;

    do {
        batch = *plain;
        mb_chain_init(&rest);
        if (plain->len > SOCK_SEND_BATCH && (ret = mb_chain_split(&batch, SOCK_SEND_BATCH, &rest)) != 0)
            break;
        *plain = rest;
        if ((ret = ktls_tx_seal(c, &batch, &out)) != 0 || (ret = ktls_write_chain(fd, &out)) != 0)
            break;
    } while (plain->len > 0);
    mb_chain_free(plain);
    mb_chain_free(&out);
    return ret;
}

/* Sends queued control records (KeyUpdate answers, alerts), best effort
 * when the connection is failing. */
static int flush_control(struct ktls_conn *c, int fd)
{
    struct mb_chain out = MB_CHAIN_INIT;
    int ret = ktls_tx_flush_control(c, &out);

    if (out.len > 0) {
        int wret = ktls_write_chain(fd, &out);
        if (ret == 0)
            ret = wret;
    }
    mb_chain_free(&out);
    return ret;
}

int ktls_recv(struct ktls_conn *c, int fd, struct mb_chain *app)
{
    size_t before = app->len;

    for (;;) {
        struct iovec iov[16];
        ssize_t r;
        int n, ret = ktls_rx_process(c, app);

        if (ret < 0) {
            (void)flush_control(c, fd);
            return ret;
        }
        if (ret == KTLS_RX_EOF || app->len > before) {
            /* A KeyUpdate answer may be owed; the data is delivered anyway. */
            (void)flush_control(c, fd);
            return ret;
        }
        if ((ret = flush_control(c, fd)) != 0)
            return ret;
        if ((n = ktls_rx_space(c, iov, 16)) < 0)
            return n;
        r = readv(fd, iov, n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if ((ret = wait_fd(fd, POLLIN)) != 0)
                    return ret;
                continue;
            }
            return -errno;
        }
        if (r == 0)
            return -ECONNRESET; /* closed without close_notify: truncation */
        ktls_rx_commit(c, (size_t)r);
    }
}
