/*
 * tests/test_nfs3_e2e.c - the mirrored writer end to end over RPC-with-TLS:
 * three rpctls-nfsd processes (--tls required, client certificates), files
 * of 0, 1, 4095, 4096, 4097 bytes, sizes that are not a multiple of wsize
 * and 200 MiB, to two and to three mirrors. Every mirror's SHA-256, read
 * back over NFS and read from the server's disk, equals the source's. Also:
 * reading back with the client library, rpctls-cp itself (write, read back,
 * a refused mirror named in the error), and intermediate directories.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rpctls/nfs3_clnt.h"
#include "rpctls/nfs3_mirror.h"
#include "test.h"
#include "util/certs.h"
#include "util/nfsd.h"

#define NSRV 3

static struct tu_certs certs;
static struct tu_nfsd srv[NSRV];
static char base[PATH_MAX];

static int same_file(const char *a, const char *b)
{
    uint8_t x[32], y[32];

    return tu_sha256_file(a, x) == 0 && tu_sha256_file(b, y) == 0 && memcmp(x, y, 32) == 0;
}

/* Writes a size-byte file to the first n servers and checks every mirror. */
static void mirror_case(uint64_t size, unsigned n, uint32_t wsize, unsigned depth, const char *name)
{
    struct tu_dest dst[NSRV];
    struct nfs3_mirror_dest md[NSRV];
    struct nfs3_mirror_result res[NSRV];
    struct nfs3_mirror_config cfg;
    char src[PATH_MAX];
    uint8_t sha[32], want[32];
    struct stat st;
    int fd, rc;

    TU_FMT(src, "%s/src-%s", base, name);
    REQUIRE(tu_write_random_file(src, size, size + n) == 0);
    REQUIRE(tu_sha256_file(src, want) == 0);
    for (unsigned i = 0; i < n; i++) {
        tu_dest_init(&dst[i], &srv[i], srv[i].port, name, &certs, KTLS_TX_AUTO);
        md[i] = dst[i].d;
    }
    memset(&cfg, 0, sizeof cfg);
    cfg.wsize = wsize;
    cfg.depth = depth;
    cfg.verify = 1;
    fd = open(src, O_RDONLY);
    REQUIRE(fd >= 0);
    rc = nfs3_mirror_write(fd, size, md, n, &cfg, res, sha);
    close(fd);
    if (rc != 0) {
        fprintf(stderr, "size %" PRIu64 " to %u mirrors: %d\n", size, n, rc);
        for (unsigned i = 0; i < n; i++)
            if (res[i].status)
                fprintf(stderr, "  %s\n", res[i].error);
    }
    CHECK_EQ(rc, 0);
    CHECK(memcmp(sha, want, 32) == 0);
    for (unsigned i = 0; i < n; i++) {
        char path[PATH_MAX + 16];
        CHECK_EQ(res[i].status, 0);
        CHECK(res[i].verified);
        CHECK_EQ(res[i].size, size);
        CHECK(memcmp(res[i].sha256, want, 32) == 0); /* read back over NFS */
        CHECK(res[i].tls);
        CHECK_EQ(res[i].bytes_written, size);
        CHECK_EQ(res[i].commits, 1);
        /* Shared pages: auto never sealed a data record in place. */
        CHECK(res[i].tls_stats.tx_bytes_inplace == 0);
        CHECK(res[i].tls_stats.tx_bytes_outofplace >= size);
        TU_FMT(path, "%s/%s", srv[i].export_dir, name);
        CHECK(stat(path, &st) == 0 && (uint64_t)st.st_size == size);
        CHECK(same_file(src, path)); /* on the server's disk */
    }
    unlink(src);
}

static void test_small_sizes(void)
{
    static const uint64_t sizes[] = {0, 1, 4095, 4096, 4097};
    char name[64];

    for (unsigned n = 2; n <= 3; n++) {
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            TU_FMT(name, "small-%u-%" PRIu64, n, sizes[k]);
            mirror_case(sizes[k], n, 0, 0, name);
        }
    }
}

static void test_not_multiple_of_wsize(void)
{
    /* 64 KiB writes: 5 full chunks and a ragged tail; and a tail of one byte. */
    mirror_case(5 * 65536 + 12345, 2, 65536, 4, "ragged-2");
    mirror_case(7 * 65536 + 1, 3, 65536, 3, "ragged-3");
    /* Default wsize (1 MiB): 3 MiB and a bit, more chunks than the queue holds. */
    mirror_case(3 * 1048576 + 4097, 3, 0, 2, "ragged-default");
    /* A wsize that is not a multiple of the page size. */
    mirror_case(1000000, 2, 100000, 5, "odd-wsize");
}

/* The largest WRITE/READ the codecs allow (4 MiB) against a server that
 * advertises it: READ replies exceed the RPC layer's default message limit. */
static void test_max_wsize(void)
{
    struct tu_nfsd big;
    struct tu_dest t;
    struct nfs3_mirror_result res;
    struct nfs3_mirror_config cfg;
    char src[PATH_MAX];
    const uint64_t size = 9 * 1048576 + 3;
    int fd;

    REQUIRE(tu_nfsd_init(&big, base, "maxio", "required", &certs) == 0);
    TU_FMT(big.max_io, "%u", NFS3_MAX_DATA);
    REQUIRE(tu_nfsd_start(&big, 0) == 0);
    TU_FMT(src, "%s/src-maxio", base);
    REQUIRE(tu_write_random_file(src, size, 4) == 0);
    tu_dest_init(&t, &big, big.port, "maxio.bin", &certs, KTLS_TX_AUTO);
    memset(&cfg, 0, sizeof cfg);
    cfg.wsize = NFS3_MAX_DATA;
    cfg.verify = 1;
    fd = open(src, O_RDONLY);
    REQUIRE(fd >= 0);
    CHECK_EQ(nfs3_mirror_write(fd, size, &t.d, 1, &cfg, &res, NULL), 0);
    close(fd);
    if (res.status)
        fprintf(stderr, "  %s\n", res.error);
    CHECK_EQ(res.wsize, NFS3_MAX_DATA);
    CHECK(res.verified && res.size == size);
    CHECK_EQ(res.rpc.calls >= 3 + 3, 1);
    CHECK_EQ(tu_nfsd_stop(&big), 0);
    unlink(src);
}

/* The source is read once: pages allocated by the whole copy are the
 * source's (once, not per mirror) plus what the record layer sealed into
 * (counted by ktls) plus receive buffers -- no per-mirror copies. */
static void test_read_once(void)
{
    const uint64_t size = 16u << 20, src_pages = size / MB_PAGE_SIZE;
    struct tu_dest dst[NSRV];
    struct nfs3_mirror_dest md[NSRV];
    struct nfs3_mirror_result res[NSRV];
    struct nfs3_mirror_config cfg;
    struct mb_pool_stats before, after;
    char src[PATH_MAX];
    uint64_t sealed = 0, other;
    int fd;

    TU_FMT(src, "%s/src-read-once", base);
    REQUIRE(tu_write_random_file(src, size, 5) == 0);
    for (unsigned i = 0; i < NSRV; i++) {
        tu_dest_init(&dst[i], &srv[i], srv[i].port, "read-once.bin", &certs, KTLS_TX_AUTO);
        md[i] = dst[i].d;
    }
    memset(&cfg, 0, sizeof cfg);
    fd = open(src, O_RDONLY);
    REQUIRE(fd >= 0);
    mb_pool_get_stats(&before);
    CHECK_EQ(nfs3_mirror_write(fd, size, md, NSRV, &cfg, res, NULL), 0);
    mb_pool_get_stats(&after);
    close(fd);
    for (unsigned i = 0; i < NSRV; i++)
        sealed += res[i].tls_stats.tx_pages_allocated;
    other = after.page_allocs - before.page_allocs - sealed;
    fprintf(stderr, "  read once: %" PRIu64 " pages allocated: %" PRIu64 " sealed by the record layer, %" PRIu64
                    " other (source %" PRIu64 ")\n",
            after.page_allocs - before.page_allocs, sealed, other, src_pages);
    CHECK(other >= src_pages);
    /* One more full copy of the source would be src_pages more per mirror. */
    CHECK(other < src_pages + src_pages / 2);
    unlink(src);
}

static void test_200mib(void)
{
    mirror_case(200ull << 20, 2, 0, 0, "big-2");
    mirror_case(200ull << 20, 3, 0, 0, "big-3");
}

static int sink_to_buf(void *arg, uint64_t off, struct mb_chain *data)
{
    unsigned char *buf = arg;
    return mb_chain_copy_out(data, 0, data->len, buf + off);
}

/* The client library directly: mount, path create, write, commit, read. */
static void test_client_library(void)
{
    static unsigned char in[300000], out[300000];
    struct krpc_clnt_config cfg;
    struct krpc_loop *loop;
    struct nfs3_clnt *nc;
    struct tu_dest t;
    struct nfs3_fh root, fh, fh2;
    struct nfs3_fattr attr;
    struct nfs3_write_res wr;
    struct mb_chain c = MB_CHAIN_INIT;
    uint8_t verf[8];
    size_t rest = 0;
    uint64_t got = 0;

    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (unsigned char)(i * 7 + (i >> 9));
    tu_dest_init(&t, &srv[0], srv[0].port, "dir1/dir2/lib.bin", &certs, KTLS_TX_AUTO);
    cfg = t.d.rpc;
    REQUIRE(krpc_loop_new(&loop) == 0);
    REQUIRE(nfs3_clnt_new(loop, &cfg, &nc) == 0);
    /* The export is found inside the longer path. */
    CHECK_EQ(nfs3_mount_prefix(nc, t.path, &root, &rest), 0);
    CHECK(strcmp(t.path + rest, "dir1/dir2/lib.bin") == 0);
    /* Missing directories: refused without MKDIRS, made with it. */
    CHECK_EQ(nfs3_open_path(nc, &root, "dir1/dir2/lib.bin", NFS3_OPEN_CREATE, &fh, NULL), NFS3ERR_NOENT);
    CHECK(strstr(nfs3_clnt_error(nc), "NFS3ERR_NOENT") != NULL);
    CHECK_EQ(nfs3_open_path(nc, &root, "dir1/dir2/lib.bin", NFS3_OPEN_CREATE | NFS3_OPEN_MKDIRS, &fh, &attr), 0);
    CHECK_EQ(attr.type, NFS3_REG);
    CHECK_EQ(attr.size, 0);
    REQUIRE(mb_chain_append_pages_from_buf(&c, in, sizeof in) == 0);
    CHECK_EQ(nfs3_write(nc, &fh, 0, NFS3_UNSTABLE, &c, &wr), 0);
    CHECK_EQ(wr.count, sizeof in);
    CHECK_EQ(c.len, 0); /* consumed */
    CHECK_EQ(nfs3_commit(nc, &fh, 0, 0, verf), 0);
    CHECK(memcmp(verf, wr.verf, 8) == 0);
    CHECK_EQ(nfs3_getattr(nc, &fh, &attr), 0);
    CHECK_EQ(attr.size, sizeof in);
    /* Lookup finds the same object. */
    CHECK_EQ(nfs3_open_path(nc, &root, "/dir1//dir2/lib.bin", 0, &fh2, NULL), 0);
    CHECK(fh2.len == fh.len && memcmp(fh2.data, fh.data, fh.len) == 0);
    /* Pipelined read with small rsize: in order, complete, stops at EOF. */
    memset(out, 0, sizeof out);
    CHECK_EQ(nfs3_read_pipelined(nc, &fh, 0, UINT64_MAX, 8192, 6, sink_to_buf, out, &got), 0);
    CHECK_EQ(got, sizeof in);
    CHECK(memcmp(in, out, sizeof in) == 0);
    /* A range in the middle. */
    memset(out, 0, sizeof out);
    CHECK_EQ(nfs3_read_pipelined(nc, &fh, 1000, 50000, 4000, 3, sink_to_buf, out + 0, &got), 0);
    CHECK_EQ(got, 50000);
    CHECK(memcmp(in + 1000, out + 1000, 50000) == 0);
    /* Not exported at all. */
    CHECK(nfs3_mount(nc, "/nonexistent-export", &root) > 0);
    CHECK(strstr(nfs3_clnt_error(nc), "MNT") != NULL);
    /* Truncate on open. */
    CHECK_EQ(nfs3_open_path(nc, &root, "dir1/dir2/lib.bin", NFS3_OPEN_TRUNC, &fh2, &attr), 0);
    CHECK_EQ(attr.size, 0);
    nfs3_clnt_free(nc);
    krpc_loop_free(loop);
}

/* rpctls-cp: write to two mirrors, read back, a refused mirror is named. */
static void test_tool(void)
{
    char cp[PATH_MAX], src[PATH_MAX], back[PATH_MAX], out[PATH_MAX], d1[PATH_MAX + 64], d2[PATH_MAX + 64],
        bad[PATH_MAX + 64], f1[PATH_MAX];
    int rc;

    tu_tool_path("rpctls-cp", cp, sizeof cp);
    TU_FMT(src, "%s/tool-src", base);
    TU_FMT(back, "%s/tool-back", base);
    TU_FMT(out, "%s/tool-out", base);
    REQUIRE(tu_write_random_file(src, 3 * 1048576 + 77, 99) == 0);
    TU_FMT(d1, "nfs://127.0.0.1:%u%s/sub/tool.bin", (unsigned)srv[0].port, srv[0].export_dir);
    TU_FMT(d2, "nfs://127.0.0.1:%u%s/tool.bin", (unsigned)srv[1].port, srv[1].export_dir);
    {
        char *argv[] = {cp, "--ca", certs.ca_cert, "--cert", certs.client_cert, "--key", certs.client_key,
                        "--verify", "--stats", "--no-progress", "-p", "--wsize", "256K", src, d1, d2, NULL};
        rc = tu_run(argv, out, 120);
        CHECK_EQ(rc, 0);
        CHECK(tu_file_contains(out, "SHA-256 matches the source"));
        CHECK(tu_file_contains(out, "out of place"));
    }
    TU_FMT(f1, "%s/sub/tool.bin", srv[0].export_dir);
    CHECK(same_file(src, f1));
    {
        char *argv[] = {cp, "--ca", certs.ca_cert, "--cert", certs.client_cert, "--key", certs.client_key,
                        "--verify", d1, back, NULL};
        rc = tu_run(argv, out, 120);
        CHECK_EQ(rc, 0);
        CHECK(same_file(src, back));
    }
    /* A mirror nobody listens on: exit status 1, the mirror named; the good one is complete. */
    {
        struct tu_nfsd gone;
        char dead[PATH_MAX];
        TU_FMT(dead, "%s/gone", base);
        REQUIRE(mkdir(dead, 0755) == 0);
        REQUIRE(tu_nfsd_init(&gone, dead, "gone", "required", &certs) == 0);
        REQUIRE(tu_nfsd_start(&gone, 0) == 0);
        tu_nfsd_stop(&gone); /* its port is now (very likely) closed */
        TU_FMT(bad, "nfs://127.0.0.1:%u%s/x.bin", (unsigned)gone.port, gone.export_dir);
        char *argv[] = {cp, "--ca", certs.ca_cert, "--cert", certs.client_cert, "--key", certs.client_key,
                        "--retries", "1", "--reconnects", "2", "--timeout", "500", src, d2, bad, NULL};
        rc = tu_run(argv, out, 120);
        CHECK_EQ(rc, 1);
        char needle[PATH_MAX + 80];
        TU_FMT(needle, "rpctls-cp: mirror %s: ", bad);
        CHECK(tu_file_contains(out, needle));
    }
    /* Usage errors: exit status 2. */
    {
        char *argv[] = {cp, "--wsize", "12", src, d2, NULL};
        CHECK_EQ(tu_run(argv, out, 30), 2);
        char *argv2[] = {cp, "--tx-mode", "bogus", src, d2, NULL};
        CHECK_EQ(tu_run(argv2, out, 30), 2);
        char *argv3[] = {cp, "--help", NULL};
        CHECK_EQ(tu_run(argv3, out, 30), 0);
        CHECK(tu_file_contains(out, "--verify"));
        /* The unsafe TX mode says so in its name and in --help; the old
         * spelling is refused with the new one in the message. */
        CHECK(tu_file_contains(out, "unsafe-inplace (UNSAFE"));
        char *argv4[] = {cp, "--tx-mode", "inplace", src, d2, NULL};
        CHECK_EQ(tu_run(argv4, out, 30), 2);
        CHECK(tu_file_contains(out, "--tx-mode inplace is now spelled unsafe-inplace"));
        /* Accepted (the parse passes; plain TCP then refuses any TX mode). */
        char *argv5[] = {cp, "--no-tls", "--tx-mode", "unsafe-inplace", src, d2, NULL};
        CHECK_EQ(tu_run(argv5, out, 30), 2);
        CHECK(tu_file_contains(out, "--tx-mode needs TLS"));
    }
    /* rpctls-nfsd: the same spelling of the unsafe TX mode. */
    {
        char nfsd[PATH_MAX];
        tu_tool_path("rpctls-nfsd", nfsd, sizeof nfsd);
        char *argv[] = {nfsd, "--help", NULL};
        CHECK_EQ(tu_run(argv, out, 30), 0);
        CHECK(tu_file_contains(out, "unsafe-inplace (UNSAFE"));
        char *argv2[] = {nfsd, "--rpcbind", "off", "--export", base, "--tx-mode", "inplace", NULL};
        CHECK_EQ(tu_run(argv2, out, 30), 2);
        CHECK(tu_file_contains(out, "--tx-mode inplace is now spelled unsafe-inplace"));
    }
}

int main(void)
{
    char real[PATH_MAX];

    if (tu_certs_create(&certs) < 0 || tu_mkdtemp(base, sizeof base, "nfs3-e2e") < 0)
        return 1;
    if (realpath(base, real)) /* the server canonicalises its export path */
        TU_FMT(base, "%s", real);
    for (int i = 0; i < NSRV; i++) {
        char name[16];
        TU_FMT(name, "srv%d", i);
        if (tu_nfsd_init(&srv[i], base, name, "required", &certs) < 0 || tu_nfsd_start(&srv[i], 0) < 0) {
            fprintf(stderr, "cannot start rpctls-nfsd %d\n", i);
            for (int j = 0; j < i; j++)
                tu_nfsd_stop(&srv[j]);
            return 1;
        }
    }
    TEST_RUN(test_small_sizes);
    TEST_RUN(test_not_multiple_of_wsize);
    TEST_RUN(test_client_library);
    TEST_RUN(test_tool);
    TEST_RUN(test_read_once);
    TEST_RUN(test_max_wsize);
    TEST_RUN(test_200mib);
    for (int i = 0; i < NSRV; i++)
        CHECK_EQ(tu_nfsd_stop(&srv[i]), 0);
    CHECK_EQ(mb_pool_shutdown(), 0); /* every page and link given back */
    tu_rmtree(base);
    tu_certs_destroy(&certs);
    return test_summary();
}
