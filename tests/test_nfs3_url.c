/*
 * tests/test_nfs3_url.c - nfs:// URL parsing (nfs3_url_parse): hosts,
 * ports, libnfs's URL options and the exact refusals.
 */
#include <errno.h>

#include "rpctls/nfs3_clnt.h"
#include "test.h"

static struct nfs3_url u;
static char err[512];

static int parse(const char *url)
{
    return nfs3_url_parse(url, &u, err, sizeof err);
}

/* The refusal of url is exactly want. */
static int refused(const char *url, const char *want)
{
    int ok = parse(url) == -EINVAL && strcmp(err, want) == 0;
    if (!ok)
        fprintf(stderr, "%s:\n  got  \"%s\"\n  want \"%s\"\n", url, err, want);
    return ok;
}

static void test_hosts_and_ports(void)
{
    CHECK_EQ(parse("nfs://127.0.0.1/srv/a/f"), 0);
    CHECK(strcmp(u.host, "127.0.0.1") == 0 && strcmp(u.path, "/srv/a/f") == 0);
    CHECK_EQ(u.port, 0);
    CHECK_EQ(u.nfsport, 0);
    CHECK_EQ(u.mountport, 0);
    CHECK_EQ(u.version, 3);
    CHECK_EQ(parse("nfs://server.example:2050/srv/a/f"), 0);
    CHECK(strcmp(u.host, "server.example") == 0);
    CHECK_EQ(u.port, 2050);
    CHECK_EQ(u.nfsport, 2050);
    CHECK_EQ(parse("nfs://[::1]:2049/x"), 0);
    CHECK(strcmp(u.host, "::1") == 0 && strcmp(u.path, "/x") == 0);
    CHECK_EQ(u.port, 2049);
    CHECK_EQ(parse("nfs://[fe80::1]/x"), 0);
    CHECK(strcmp(u.host, "fe80::1") == 0);
    CHECK(refused("http://h/x", "not an nfs:// URL"));
    CHECK(refused("nfs://h", "expected nfs://HOST[:PORT]/EXPORT/PATH"));
    CHECK(refused("nfs:///x", "expected nfs://HOST[:PORT]/EXPORT/PATH"));
    CHECK(refused("nfs://h?nfsport=1/x", "expected nfs://HOST[:PORT]/EXPORT/PATH"));
    CHECK(refused("nfs://h:/x", "bad port"));
    CHECK(refused("nfs://h:0/x", "bad port"));
    CHECK(refused("nfs://h:65536/x", "bad port"));
    CHECK(refused("nfs://h:20a9/x", "bad port"));
    CHECK(refused("nfs://[::1/x", "bad [IPv6] host"));
    CHECK(refused("nfs://[]/x", "bad [IPv6] host"));
    CHECK(refused("nfs://:2049/x", "bad host"));
}

static void test_options(void)
{
    CHECK_EQ(parse("nfs://h/srv/f?mountport=20048"), 0);
    CHECK_EQ(u.mountport, 20048);
    CHECK_EQ(u.nfsport, 0);
    CHECK(strcmp(u.path, "/srv/f") == 0);
    CHECK_EQ(parse("nfs://h/srv/f?nfsport=2050&mountport=20048&version=3"), 0);
    CHECK_EQ(u.nfsport, 2050);
    CHECK_EQ(u.port, 0);
    CHECK_EQ(u.mountport, 20048);
    CHECK_EQ(parse("nfs://h:2050/srv/f?nfsport=2050"), 0);
    CHECK_EQ(u.nfsport, 2050);
    CHECK_EQ(parse("nfs://h/srv/f?"), 0); /* empty options */
    CHECK_EQ(parse("nfs://h/srv/f?&version=3&"), 0);
    CHECK(refused("nfs://h/srv/f?version=4", "version=4: only NFS version 3 is supported"));
    CHECK(refused("nfs://h/srv/f?version=", "version=: only NFS version 3 is supported"));
    CHECK(refused("nfs://h/srv/f?mountport=0", "mountport=0: expected a port number 1..65535"));
    CHECK(refused("nfs://h/srv/f?mountport", "mountport=: expected a port number 1..65535"));
    CHECK(refused("nfs://h/srv/f?nfsport=70000", "nfsport=70000: expected a port number 1..65535"));
    CHECK(refused("nfs://h:2049/srv/f?nfsport=2050", "port 2049 and nfsport=2050 disagree"));
    CHECK(refused("nfs://h/srv/f?uid=0",
                  "unknown URL option \"uid\" (known: mountport=N, nfsport=N, version=3)"));
    CHECK(refused("nfs://h/srv/f?mountport=20048&uid=0&readahead=1&version=3",
                  "unknown URL options \"uid\", \"readahead\" (known: mountport=N, nfsport=N, version=3)"));
}

int main(void)
{
    TEST_RUN(test_hosts_and_ports);
    TEST_RUN(test_options);
    return test_summary();
}
