/*
 * tests/test_interop_freebsd.c - our client against a server that behaves
 * like FreeBSD's NFS-over-TLS server: the kernel answers the probe SUCCESS
 * with the STARTTLS verifier whatever the program
 * (sys/rpc/rpcsec_tls/rpctls_impl.c, _svcauth_rpcsec_tls()), then
 * rpc.tlsservd does a plain OpenSSL SSL_accept() on the socket: TLS 1.3, no
 * ALPN, and OpenSSL's default two NewSessionTickets sent right after the
 * handshake (usr.sbin/rpc.tlsservd/rpc.tlsservd.c, rpctls_setup_ssl(); see
 * util/ossl_peer.h). The tickets reach our record layer as post-handshake
 * handshake records, possibly in the same read as the first reply.
 *
 * Checked: the handshake completes without ALPN; the server really sent two
 * tickets; our client ignores them and NULL, 4 MiB of WRITE, COMMIT and
 * GETATTR succeed on the one connection (no reconnect, no retransmission);
 * the bytes on the server are identical to those written.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpctls/krpc_clnt.h"
#include "rpctls/nfs3_clnt.h"
#include "test.h"
#include "util/certs.h"
#include "util/nfsd.h"
#include "util/ossl_peer.h"
#include "util/rpc_peer.h"
#include "util/stream.h"

static struct tu_certs certs;

static void freebsd_server(int mutual)
{
    struct tu_mini_nfs nfs;
    struct tu_ossl_srv_cfg oc = {certs.server_cert, certs.server_key, certs.ca_cert, mutual};
    struct tu_srv_cfg sc;
    struct tu_srv *srv = NULL;
    struct tu_srv_stats st;
    struct krpc_loop *loop = NULL;
    struct krpc_clnt_config cfg;
    struct nfs3_clnt *nc = NULL;
    struct krpc_reply reply;
    struct mb_chain empty = MB_CHAIN_INIT, data = MB_CHAIN_INIT;
    struct nfs3_write_res wr;
    struct nfs3_fattr attr = {0};
    struct tu_sha sha;
    uint8_t verf[NFS3_WRITEVERFSIZE], want[32], got[32];
    char addr[32], msg[128], want_session[64];
    const uint64_t size = 4ull << 20;
    const size_t chunk = 1u << 20;
    uint8_t *buf = malloc(chunk);
    int rc;

    REQUIRE(buf != NULL);
    REQUIRE(tu_mini_nfs_init(&nfs, 8ull << 20) == 0);
    memset(&sc, 0, sizeof sc);
    sc.probe = TU_PROBE_FREEBSD;
    sc.start_tls = tu_ossl_srv_start_tls;
    sc.tls_arg = &oc;
    sc.describe = tu_ossl_describe;
    sc.nfs = &nfs;
    REQUIRE(tu_srv_start(&sc, &srv) == 0);

    memset(&cfg, 0, sizeof cfg);
    TU_FMT(addr, "127.0.0.1:%u", (unsigned)tu_srv_port(srv));
    REQUIRE(krpc_parse_addr(addr, &cfg.addr, &cfg.addrlen) == 0);
    cfg.tls = KRPC_TLS_REQUIRED;
    cfg.tlscfg.ca_file = certs.ca_cert;
    cfg.tlscfg.cert_file = certs.client_cert;
    cfg.tlscfg.key_file = certs.client_key;
    cfg.tlscfg.server_name = "localhost";
    cfg.timeout_ms = 5000;
    cfg.max_retries = 2;
    cfg.max_reconnects = 2;
    REQUIRE(krpc_loop_new(&loop) == 0);
    REQUIRE(nfs3_clnt_new(loop, &cfg, &nc) == 0);

    rc = krpc_call(nfs3_clnt_rpc(nc), NFS3_PROC_NULL, &empty, &reply);
    if (rc != 0)
        fprintf(stderr, "NULL: %s / %s\n", strerror(-rc), krpc_clnt_last_error(nfs3_clnt_rpc(nc)));
    CHECK_EQ(rc, 0);
    if (rc == 0) {
        CHECK_EQ(krpc_reply_status(&reply.hdr, msg, sizeof msg), 0);
        krpc_reply_free(&reply);
    }
    CHECK(krpc_clnt_is_tls(nfs3_clnt_rpc(nc)));
    for (uint64_t off = 0; rc == 0 && off < size; off += chunk) {
        tu_stream_fill(0x44, off, buf, chunk);
        REQUIRE(mb_chain_append_pages_from_buf(&data, buf, chunk) == 0);
        rc = nfs3_write(nc, &nfs.fh, off, NFS3_UNSTABLE, &data, &wr);
        if (rc != 0)
            fprintf(stderr, "WRITE at %llu: %s\n", (unsigned long long)off, nfs3_clnt_error(nc));
        CHECK_EQ(rc, 0);
        CHECK_EQ(wr.count, chunk);
        CHECK(memcmp(wr.verf, nfs.verf, sizeof wr.verf) == 0);
        mb_chain_free(&data);
    }
    CHECK_EQ(nfs3_commit(nc, &nfs.fh, 0, 0, verf), 0);
    CHECK(memcmp(verf, nfs.verf, sizeof verf) == 0);
    CHECK_EQ(nfs3_getattr(nc, &nfs.fh, &attr), 0);
    CHECK_EQ(attr.size, size);
    /* The tickets changed nothing: one connection, one handshake, no resend. */
    CHECK_EQ(krpc_clnt_stats(nfs3_clnt_rpc(nc))->tls_handshakes, 1);
    CHECK_EQ(krpc_clnt_stats(nfs3_clnt_rpc(nc))->reconnects, 0);
    CHECK_EQ(krpc_clnt_stats(nfs3_clnt_rpc(nc))->retransmits, 0);
    CHECK_EQ(krpc_clnt_stats(nfs3_clnt_rpc(nc))->failures, 0);
    nfs3_clnt_free(nc);
    krpc_loop_free(loop);

    tu_srv_stop(srv, &st);
    if (st.err[0])
        fprintf(stderr, "rpc.tlsservd-like server: %s\n", st.err);
    CHECK_EQ(st.err[0], 0);
    CHECK_EQ(st.conns, 1);
    CHECK_EQ(st.probes, 1);
    CHECK_EQ(st.handshakes, 1);
    CHECK_EQ(st.plain_calls, 0);
    CHECK_EQ(st.tls_calls, 1 + 4 + 1 + 1); /* NULL, WRITEs, COMMIT, GETATTR */
    fprintf(stderr, "server session: %s\n", st.session);
    CHECK(strncmp(st.session, "TLSv1.3 ", 8) == 0);
    TU_FMT(want_session, "alpn=none tickets=2 client-cert=%d", mutual);
    CHECK(strstr(st.session, want_session) != NULL);

    CHECK_EQ(nfs.size, size);
    tu_stream_sha(0x44, size, want);
    tu_sha_init(&sha);
    tu_sha_update(&sha, nfs.data, nfs.size);
    tu_sha_final(&sha, got);
    CHECK(memcmp(want, got, 32) == 0);
    tu_mini_nfs_free(&nfs);
    free(buf);
}

static void test_freebsd_server(void)
{
    freebsd_server(0);
}

static void test_freebsd_server_mutual(void)
{
    freebsd_server(1);
}

int main(void)
{
    /* The peers write with write(2) (OpenSSL's SSL_set_fd, GnuTLS) to
     * sockets the other side may have closed: a failed write, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    if (tu_certs_create(&certs) != 0)
        return 1;
    TEST_RUN(test_freebsd_server);
    TEST_RUN(test_freebsd_server_mutual);
    tu_certs_destroy(&certs);
    return test_summary();
}
