/*
 * test_ktls_seed.c - the bug from the seed proposal, reproduced and
 * prevented.
 *
 * A page-vector chain is copied by reference to two connections, as a
 * mirrored write does, and a third reference is kept for a retransmission.
 * Encrypting in place corrupts what the second connection and the
 * retransmission send, and the retained pages; auto, outofplace and copy
 * deliver identical bytes every time and leave the pages untouched. Under
 * guard mode an in-place write to the shared pages faults.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ktls_pair.h"
#include "mbuf/mbuf_test.h"
#include "test.h"

#define SEED_BYTES (1024 * 1024 + 123) /* not a multiple of a record or a page */
#define SEED_PAGE_OFF 100              /* data starts inside its first page */

struct seed_result {
    int first_ok;      /* mirror 1 received the source bytes */
    int second_ok;     /* mirror 2 received the source bytes */
    int retransmit_ok; /* the retransmission to mirror 1 carried the source bytes */
    int retained_ok;   /* the retained pages still hold the source bytes */
    struct ktls_stats stats1;
};

static uint8_t *make_source(void)
{
    uint8_t *src = malloc(SEED_BYTES);
    unsigned seed = 2020;

    for (size_t i = 0; src != NULL && i < SEED_BYTES; i++)
        src[i] = (uint8_t)rand_r(&seed);
    return src;
}

/* Builds the shared chain: page vectors starting SEED_PAGE_OFF into a page. */
static int make_pages(struct mb_chain *pages, const uint8_t *src)
{
    struct mb_chain tmp = MB_CHAIN_INIT;
    int ret = mb_chain_append_pages_from_buf(&tmp, src, SEED_BYTES);

    if (ret == 0) {
        /* Re-home the data at a page offset, as NFS data lands after a header. */
        ret = mb_append_pages(pages, SEED_PAGE_OFF, SEED_BYTES);
        for (size_t off = 0; ret == 0 && off < SEED_BYTES;) {
            struct iovec iov[64];
            int n = mb_chain_to_iovec(pages, off, SEED_BYTES - off < 65536 ? SEED_BYTES - off : 65536, iov, 64);
            if (n < 0) {
                ret = n;
                break;
            }
            for (int i = 0; i < n; i++) {
                memcpy(iov[i].iov_base, src + off, iov[i].iov_len);
                off += iov[i].iov_len;
            }
        }
    }
    mb_chain_free(&tmp);
    return ret;
}

static void run_scenario(enum ktls_tx_mode mode, struct seed_result *r)
{
    struct ktls_pair m1, m2;
    struct mb_chain pages = MB_CHAIN_INIT, to1 = MB_CHAIN_INIT, to2 = MB_CHAIN_INIT, retained = MB_CHAIN_INIT,
                    resend = MB_CHAIN_INIT, app = MB_CHAIN_INIT;
    unsigned seed = 7;
    uint8_t *src = make_source();

    memset(r, 0, sizeof(*r));
    REQUIRE(src != NULL);
    REQUIRE(ktls_pair_open(&m1, KTLS_AES_128_GCM_SHA256, NULL, mode, 1) == 0);
    REQUIRE(ktls_pair_open(&m2, KTLS_AES_128_GCM_SHA256, NULL, mode, 2) == 0);
    REQUIRE(make_pages(&pages, src) == 0);

    /* One set of pages, three references: two mirrors and the retry copy. */
    CHECK_EQ(mb_chain_copy_ref(&to1, &pages, 0, pages.len), 0);
    CHECK_EQ(mb_chain_copy_ref(&to2, &pages, 0, pages.len), 0);
    CHECK_EQ(mb_chain_copy_ref(&retained, &pages, 0, pages.len), 0);
    CHECK(!mb_chain_is_writable(&pages, 0, pages.len));

    /* Mirror 1, then mirror 2; each send is written out before the next. */
    CHECK_EQ(ktls_pair_transfer(m1.a, m1.b, &to1, 65536, &seed, &app), 0);
    r->first_ok = chain_equals(&app, src, SEED_BYTES);
    mb_chain_free(&app);
    CHECK_EQ(ktls_pair_transfer(m2.a, m2.b, &to2, 65536, &seed, &app), 0);
    r->second_ok = chain_equals(&app, src, SEED_BYTES);
    mb_chain_free(&app);

    /* The reply to mirror 1 is lost: resend from the retained reference. */
    CHECK_EQ(mb_chain_copy_ref(&resend, &retained, 0, retained.len), 0);
    CHECK_EQ(ktls_pair_transfer(m1.a, m1.b, &resend, 65536, &seed, &app), 0);
    r->retransmit_ok = chain_equals(&app, src, SEED_BYTES);
    mb_chain_free(&app);

    r->retained_ok = chain_equals(&retained, src, SEED_BYTES) && chain_equals(&pages, src, SEED_BYTES);
    r->stats1 = *ktls_conn_stats(m1.a);

    mb_chain_free(&retained);
    mb_chain_free(&pages);
    ktls_pair_close(&m1);
    ktls_pair_close(&m2);
    free(src);
}

static void test_inplace_corrupts(void)
{
    struct seed_result r;

    run_scenario(KTLS_TX_UNSAFE_INPLACE, &r);
    /* The first send sees the true bytes: its records were sealed from them. */
    CHECK(r.first_ok);
    /* The second mirror gets ciphertext encrypted twice, decrypted once. */
    CHECK(!r.second_ok);
    CHECK(!r.retransmit_ok);
    CHECK(!r.retained_ok);
    CHECK(r.stats1.tx_bytes_inplace == 2ull * SEED_BYTES);
}

static void test_safe_modes_deliver_intact(void)
{
    const enum ktls_tx_mode safe[] = {KTLS_TX_AUTO, KTLS_TX_OUTOFPLACE, KTLS_TX_COPY};

    for (size_t i = 0; i < 3; i++) {
        struct seed_result r;
        run_scenario(safe[i], &r);
        fprintf(stderr, "  mode %-10s first %d second %d retransmit %d retained %d\n", ktls_tx_mode_name(safe[i]),
                r.first_ok, r.second_ok, r.retransmit_ok, r.retained_ok);
        CHECK(r.first_ok);
        CHECK(r.second_ok);
        CHECK(r.retransmit_ok);
        CHECK(r.retained_ok);
        /* Shared pages are never sealed in place, not even in auto. */
        CHECK_EQ(r.stats1.tx_bytes_inplace, 0);
        if (safe[i] == KTLS_TX_COPY)
            CHECK_EQ(r.stats1.tx_bytes_copied, 2ull * SEED_BYTES);
        else
            CHECK_EQ(r.stats1.tx_bytes_outofplace, 2ull * SEED_BYTES);
    }
}

/* The shared pages of the guard child, for its fault handler. */
static struct mb_chain *guard_pages;

/* Exits SIGSEGV when the fault is a write into the shared pages, 99 when it
 * is anywhere else (a different bug). */
static void guard_fault(int sig, siginfo_t *si, void *ctx)
{
    struct mb_seg_iter it;
    unsigned char *p;

    (void)sig, (void)ctx;
    mb_seg_iter_init(&it, guard_pages, 0, guard_pages->len);
    while (mb_seg_next(&it, &p) > 0) {
        /* A segment of a page vector lies in one page: that page. */
        const char *pg = (const char *)((uintptr_t)p & ~(uintptr_t)(MB_PAGE_SIZE - 1));
        if ((const char *)si->si_addr >= pg && (const char *)si->si_addr < pg + MB_PAGE_SIZE)
            _exit(SIGSEGV);
    }
    _exit(99);
}

/* In the child: guard mode on, shared pages, then seal in the given mode. */
static void guard_child(enum ktls_tx_mode mode)
{
    struct ktls_pair p;
    struct mb_chain pages = MB_CHAIN_INIT, to1 = MB_CHAIN_INIT, out = MB_CHAIN_INIT;
    uint8_t *src = make_source();
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = guard_fault;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    guard_pages = &pages;
    mb__guard_set(1);
    if (src == NULL || ktls_pair_open(&p, KTLS_AES_128_GCM_SHA256, NULL, mode, 1) != 0 || make_pages(&pages, src) != 0)
        _exit(2);
    if (mb_chain_copy_ref(&to1, &pages, 0, pages.len) != 0)
        _exit(3);
    if (ktls_tx_seal(p.a, &to1, &out) != 0)
        _exit(4);
    /* Sealing did not touch the shared pages. */
    _exit(chain_equals(&pages, src, SEED_BYTES) ? 0 : 5);
}

static int run_guard_child(enum ktls_tx_mode mode)
{
    int status = 0;
    pid_t pid = fork();

    if (pid == 0)
        guard_child(mode);
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    if (WIFSIGNALED(status))
        return 1000 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

static void test_guard_catches_inplace(void)
{
    /* In place on guarded shared pages faults at the write, in those pages. */
    CHECK_EQ(run_guard_child(KTLS_TX_UNSAFE_INPLACE), SIGSEGV);
    /* The safe modes run to the end under guard mode. */
    CHECK_EQ(run_guard_child(KTLS_TX_AUTO), 0);
    CHECK_EQ(run_guard_child(KTLS_TX_OUTOFPLACE), 0);
    CHECK_EQ(run_guard_child(KTLS_TX_COPY), 0);
}

int main(void)
{
    TEST_RUN(test_inplace_corrupts);
    TEST_RUN(test_safe_modes_deliver_intact);
    TEST_RUN(test_guard_catches_inplace);
    CHECK_EQ(mb_pool_shutdown(), 0);
    return test_summary();
}
