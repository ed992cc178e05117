/*
 * test_nfs3_exports.c - the exports(5) parser (src/nfs3/exports.c) and the
 * policy helpers: good files give the exact table (paths, client kinds,
 * networks, options with Linux's defaults), bad lines give the exact
 * "FILE:LINE:COL: problem" message, and client matching follows exports(5)
 * precedence. No network: host names are parsed, resolved only for
 * "localhost".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rpctls/nfs3_export.h"
#include "test.h"

static int parse(struct nfs3_exports *ex, const char *text, char *err, size_t errlen)
{
    memset(ex, 0, sizeof(*ex));
    return nfs3_exports_parse(ex, "/etc/exports", text, strlen(text), err, errlen);
}

/* The parse must fail with exactly msg. */
static int bad(const char *text, const char *msg)
{
    struct nfs3_exports ex;
    char err[512] = "";
    int r = parse(&ex, text, err, sizeof(err));

    if (r != -EINVAL || strcmp(err, msg) != 0) {
        fprintf(stderr, "input: %s\n  want: %s\n  got:  %s (%d)\n", text, msg, err, r);
        return 0;
    }
    return ex.n == 0 && ex.v == NULL;
}

static struct sockaddr_storage sa(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':') != NULL) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        inet_pton(AF_INET6, ip, &s6->sin6_addr);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        inet_pton(AF_INET, ip, &s4->sin_addr);
    }
    return ss;
}

static const char *match(const struct nfs3_export_entry *e, const char *ip)
{
    struct sockaddr_storage ss = sa(ip);
    const struct nfs3_export_client *cl = nfs3_export_match(e, (struct sockaddr *)&ss);
    return cl != NULL ? cl->spec : "(none)";
}

static void test_good_file(void)
{
    static const char text[] =
        "# exports for the tests\n"
        "\n"
        "/srv/a   127.0.0.1(rw,no_root_squash) 10.0.0.0/8(ro,xprtsec=mtls)   *(all_squash,anonuid=1000,anongid=100)\n"
        "  \"/srv/with space\"  -rw,sec=sys  ::1 fe80::/10(xprtsec=tls:mtls,tlscertuser) # trailing comment\n"
        "/srv/esc\\040aped 192.168.0.0/255.255.252.0(sync,no_subtree_check,insecure,wdelay) \\\n"
        "        host-1.example(rw,ro)\n"
        "/srv/join 127.0.0.2(rw,\\\n"
        "all_squash)\n";
    struct nfs3_exports ex;
    char err[256] = "";

    REQUIRE(parse(&ex, text, err, sizeof(err)) == 0);
    REQUIRE(ex.n == 4);

    const struct nfs3_export_entry *a = &ex.v[0];
    CHECK(strcmp(a->path, "/srv/a") == 0);
    CHECK_EQ(a->line, 3);
    CHECK_EQ(a->col, 1);
    REQUIRE(a->nclients == 3);
    CHECK(strcmp(a->clients[0].spec, "127.0.0.1") == 0);
    CHECK_EQ(a->clients[0].kind, NFS3_CLIENT_HOST);
    CHECK_EQ(a->clients[0].opts.ro, 0);
    CHECK_EQ(a->clients[0].opts.squash, NFS3_SQUASH_NONE);
    CHECK_EQ(a->clients[0].opts.xprtsec, NFS3_XPRTSEC_ALL);
    CHECK_EQ(a->clients[0].col, 10);
    CHECK_EQ(a->clients[1].kind, NFS3_CLIENT_NET);
    CHECK_EQ(a->clients[1].nets[0].prefix, 8);
    CHECK_EQ(a->clients[1].opts.ro, 1);
    CHECK_EQ(a->clients[1].opts.squash, NFS3_SQUASH_ROOT); /* the default */
    CHECK_EQ(a->clients[1].opts.xprtsec, NFS3_XPRTSEC_MTLS);
    CHECK_EQ(a->clients[2].kind, NFS3_CLIENT_ANY);
    CHECK_EQ(a->clients[2].opts.ro, 1); /* Linux's default is ro */
    CHECK_EQ(a->clients[2].opts.squash, NFS3_SQUASH_ALL);
    CHECK_EQ(a->clients[2].opts.anonuid, 1000);
    CHECK_EQ(a->clients[2].opts.anongid, 100);

    const struct nfs3_export_entry *b = &ex.v[1];
    CHECK(strcmp(b->path, "/srv/with space") == 0);
    CHECK_EQ(b->line, 4);
    CHECK_EQ(b->col, 3);
    REQUIRE(b->nclients == 2);
    CHECK_EQ(b->clients[0].opts.ro, 0); /* -rw applies to the clients after it */
    CHECK_EQ(b->clients[0].nets[0].family, AF_INET6);
    CHECK_EQ(b->clients[0].nets[0].prefix, 128);
    CHECK_EQ(b->clients[1].opts.ro, 0);
    CHECK_EQ(b->clients[1].opts.xprtsec, NFS3_XPRTSEC_TLS | NFS3_XPRTSEC_MTLS);
    CHECK_EQ(b->clients[1].opts.tlscertuser, 1);
    CHECK_EQ(b->clients[1].nets[0].prefix, 10);

    const struct nfs3_export_entry *c = &ex.v[2];
    CHECK(strcmp(c->path, "/srv/esc aped") == 0);
    REQUIRE(c->nclients == 2);
    CHECK_EQ(c->clients[0].nets[0].prefix, 22);
    CHECK(strcmp(c->clients[1].spec, "host-1.example") == 0);
    CHECK_EQ(c->clients[1].is_name, 1);
    CHECK_EQ(c->clients[1].nnets, 0); /* not resolved by the parser */
    CHECK_EQ(c->clients[1].line, 6);
    CHECK_EQ(c->clients[1].col, 9);
    CHECK_EQ(c->clients[1].opts.ro, 1); /* rw then ro: the last one wins */

    const struct nfs3_export_entry *d = &ex.v[3];
    CHECK(strcmp(d->path, "/srv/join") == 0);
    REQUIRE(d->nclients == 1);
    CHECK_EQ(d->clients[0].opts.ro, 0);
    CHECK_EQ(d->clients[0].opts.squash, NFS3_SQUASH_ALL);

    /* Precedence: a single host before a network before "*", whatever the order. */
    CHECK(strcmp(match(a, "127.0.0.1"), "127.0.0.1") == 0);
    CHECK(strcmp(match(a, "10.1.2.3"), "10.0.0.0/8") == 0);
    CHECK(strcmp(match(a, "11.0.0.1"), "*") == 0);
    CHECK(strcmp(match(a, "::ffff:127.0.0.1"), "127.0.0.1") == 0); /* dual-stack listener */
    CHECK(strcmp(match(b, "::1"), "::1") == 0);
    CHECK(strcmp(match(b, "fe80::1234"), "fe80::/10") == 0);
    CHECK(strcmp(match(b, "127.0.0.1"), "(none)") == 0);
    CHECK(strcmp(match(b, "fec0::1"), "(none)") == 0);
    CHECK(strcmp(match(c, "192.168.3.255"), "192.168.0.0/255.255.252.0") == 0);
    CHECK(strcmp(match(c, "192.168.4.0"), "(none)") == 0);
    CHECK(strcmp(match(d, "127.0.0.1"), "(none)") == 0);
    CHECK(strcmp(match(d, "127.0.0.2"), "127.0.0.2") == 0);
    nfs3_exports_free(&ex);
    CHECK(ex.n == 0 && ex.v == NULL);
}

static void test_precedence_order(void)
{
    struct nfs3_exports ex;
    char err[256];

    /* Within a kind, the first on the line. */
    REQUIRE(parse(&ex, "/x *(rw) 10.0.0.0/16(ro) 10.0.0.0/8(rw) 10.0.0.5(rw)\n", err, sizeof(err)) == 0);
    CHECK(strcmp(match(&ex.v[0], "10.0.0.5"), "10.0.0.5") == 0);
    CHECK(strcmp(match(&ex.v[0], "10.0.1.1"), "10.0.0.0/16") == 0);
    CHECK(strcmp(match(&ex.v[0], "10.1.0.1"), "10.0.0.0/8") == 0);
    nfs3_exports_free(&ex);
    /* No trailing newline, empty and comment-only input. */
    REQUIRE(parse(&ex, "/y 1.2.3.4", err, sizeof(err)) == 0);
    CHECK(ex.n == 1);
    nfs3_exports_free(&ex);
    REQUIRE(parse(&ex, "", err, sizeof(err)) == 0);
    CHECK(ex.n == 0);
    REQUIRE(parse(&ex, "  # only a comment \\\n\n\t\n", err, sizeof(err)) == 0);
    CHECK(ex.n == 0);
}

static void test_bad_lines(void)
{
    CHECK(bad("/srv/a 127.0.0.1(rw)\n\n/srv/b 10.0.0.1(rw,rx)\n", "/etc/exports:3:20: unknown option \"rx\""));
    CHECK(bad("/a *(rw,async)\n", "/etc/exports:1:9: unsupported option \"async\""));
    CHECK(bad("/a *(secure)\n", "/etc/exports:1:6: unsupported option \"secure\""));
    CHECK(bad("/a *(fsid=1)\n", "/etc/exports:1:6: unsupported option \"fsid=1\""));
    CHECK(bad("/a *(subtree_check)\n", "/etc/exports:1:6: unsupported option \"subtree_check\""));
    CHECK(bad("/a *(rw=1)\n", "/etc/exports:1:6: option \"rw\" takes no value"));
    CHECK(bad("/a *(anonuid)\n", "/etc/exports:1:6: option \"anonuid\" needs a value (anonuid=...)"));
    CHECK(bad("/a *(anonuid=-1)\n", "/etc/exports:1:6: anonuid: \"-1\" is not a number from 0 to 4294967294"));
    CHECK(bad("/a *(anongid=4294967295)\n",
              "/etc/exports:1:6: anongid: \"4294967295\" is not a number from 0 to 4294967294"));
    CHECK(bad("/a *(sec=krb5)\n", "/etc/exports:1:6: sec=krb5: only sec=sys is supported (AUTH_SYS and AUTH_NONE)"));
    CHECK(bad("/a *(xprtsec=tls:foo)\n",
              "/etc/exports:1:6: xprtsec=tls:foo: expected a colon-separated list of none, tls, mtls"));
    CHECK(bad("/a *(xprtsec=tls::mtls)\n",
              "/etc/exports:1:6: xprtsec=tls::mtls: expected a colon-separated list of none, tls, mtls"));
    CHECK(bad("/a *(xprtsec=)\n", "/etc/exports:1:6: xprtsec=: expected a colon-separated list of none, tls, mtls"));
    CHECK(bad("/a *(rw,,ro)\n", "/etc/exports:1:9: empty option"));
    CHECK(bad("/a *()\n", "/etc/exports:1:6: empty option"));
    CHECK(bad("/a *(rw\n", "/etc/exports:1:5: missing ')'"));
    CHECK(bad("/a *(rw, ro)\n", "/etc/exports:1:9: unexpected blank in an option list"));
    CHECK(bad("/a *(rw)x\n", "/etc/exports:1:9: expected a blank after ')'"));
    CHECK(bad("/a host (rw)\n",
              "/etc/exports:1:9: options without a client (write *(...) for every client, and no blank between "
              "a client and its options)"));
    CHECK(bad("/a\n", "/etc/exports:1:1: \"/a\" has no client (write * for every client)"));
    CHECK(bad("/a -rw\n", "/etc/exports:1:1: \"/a\" has no client (write * for every client)"));
    CHECK(bad("/a - *\n", "/etc/exports:1:5: empty option"));
    CHECK(bad("srv *(rw)\n", "/etc/exports:1:1: export path \"srv\" is not absolute"));
    CHECK(bad("\"/a b *(rw)\n", "/etc/exports:1:1: unterminated quoted path"));
    CHECK(bad("\"/a\"b *(rw)\n", "/etc/exports:1:5: expected a blank after the path"));
    CHECK(bad("/a\\12 *(rw)\n", "/etc/exports:1:3: a backslash must be followed by three octal digits"));
    CHECK(bad("/a\\000 *(rw)\n", "/etc/exports:1:3: octal escape \\000 is not a byte other than NUL"));
    CHECK(bad("/a *(rw)\n  /a 1.2.3.4\n", "/etc/exports:2:3: \"/a\" is already exported on line 1"));
    CHECK(bad("/a @group(rw)\n", "/etc/exports:1:4: netgroups are not supported (\"@group\")"));
    CHECK(bad("/a *.example.com(rw)\n",
              "/etc/exports:1:4: wildcards are not supported (\"*.example.com\"; a lone * matches every client)"));
    CHECK(bad("/a gss/krb5(rw)\n", "/etc/exports:1:4: \"gss/krb5\": RPCSEC_GSS is not supported"));
    CHECK(bad("/a 10.0.0.0/33\n", "/etc/exports:1:4: \"10.0.0.0/33\": bad netmask \"33\""));
    CHECK(bad("/a 10.0.0.0/255.0.255.0\n", "/etc/exports:1:4: \"10.0.0.0/255.0.255.0\": bad netmask \"255.0.255.0\""));
    CHECK(bad("/a 10.0.0.0/\n", "/etc/exports:1:4: \"10.0.0.0/\": bad netmask \"\""));
    CHECK(bad("/a ::1/129\n", "/etc/exports:1:4: \"::1/129\": bad netmask \"129\""));
    CHECK(bad("/a ::1/ffff::\n", "/etc/exports:1:4: \"::1/ffff::\": bad netmask \"ffff::\""));
    CHECK(bad("/a 10.0.0/8\n", "/etc/exports:1:4: \"10.0.0/8\": \"10.0.0\" is not an IP address"));
    CHECK(bad("/a 300.1.1.1\n", "/etc/exports:1:4: \"300.1.1.1\" is not an IP address, a network, * or a host name"));
    CHECK(bad("/a fe80:::1\n", "/etc/exports:1:4: \"fe80:::1\" is not an IPv6 address"));
    CHECK(bad("/a [::1](rw)\n",
              "/etc/exports:1:4: wildcards are not supported (\"[::1]\"; a lone * matches every client)"));
    CHECK(bad("/a h,b(rw)\n", "/etc/exports:1:5: unexpected ',' in a client name"));
    /* A continued line: the error points at the physical line and column. */
    CHECK(bad("/a 1.2.3.4(rw) \\\n   5.6.7.8(rw,\\\nbogus)\n", "/etc/exports:3:1: unknown option \"bogus\""));
    /* Comments end the line, also after a client. */
    CHECK(bad("/a 1.2.3.4(rw)# c\n/b *(xx)\n", "/etc/exports:2:6: unknown option \"xx\""));
    /* A NUL byte in the middle. */
    {
        struct nfs3_exports ex;
        char err[256];
        memset(&ex, 0, sizeof(ex));
        CHECK(nfs3_exports_parse(&ex, "f", "/a *(r\0w)", 9, err, sizeof(err)) == -EINVAL);
        CHECK(strcmp(err, "f:1:7: unexpected NUL byte in an option list") == 0);
    }
}

static void test_load_and_resolve(void)
{
    char dir[] = "/tmp/rpctls-exports-XXXXXX", file[300], err[512];
    struct nfs3_exports ex;
    FILE *f;

    REQUIRE(mkdtemp(dir) != NULL);
    snprintf(file, sizeof(file), "%s/exports", dir);
    memset(&ex, 0, sizeof(ex));
    CHECK(nfs3_exports_load(&ex, file, err, sizeof(err)) == -ENOENT);
    {
        char want[400];
        snprintf(want, sizeof(want), "%s: No such file or directory", file);
        CHECK(strcmp(err, want) == 0);
    }
    f = fopen(file, "w");
    REQUIRE(f != NULL);
    fputs("# nothing\n", f);
    fclose(f);
    CHECK(nfs3_exports_load(&ex, file, err, sizeof(err)) == -EINVAL);
    {
        char want[400];
        snprintf(want, sizeof(want), "%s: no exports", file);
        CHECK(strcmp(err, want) == 0);
    }
    f = fopen(file, "w");
    REQUIRE(f != NULL);
    fputs("/srv/x localhost(rw)\n", f);
    fclose(f);
    CHECK(nfs3_exports_load(&ex, file, err, sizeof(err)) == 0);
    REQUIRE(ex.n == 1);
    CHECK(ex.v[0].clients[0].nnets >= 1);
    CHECK(strcmp(match(&ex.v[0], "127.0.0.1"), "localhost") == 0 || strcmp(match(&ex.v[0], "::1"), "localhost") == 0);
    CHECK(strcmp(match(&ex.v[0], "10.9.9.9"), "(none)") == 0);
    nfs3_exports_free(&ex);
    f = fopen(file, "w");
    REQUIRE(f != NULL);
    fputs("/srv/x\tno-such-host.invalid(rw)\n", f);
    fclose(f);
    CHECK(nfs3_exports_load(&ex, file, err, sizeof(err)) == -ENOENT);
    {
        char want[400];
        snprintf(want, sizeof(want), "%s:1:8: cannot resolve host no-such-host.invalid: ", file);
        CHECK(strncmp(err, want, strlen(want)) == 0);
    }
    CHECK(ex.n == 0);
    unlink(file);
    rmdir(dir);
}

static void test_add_any_and_xprtsec(void)
{
    struct nfs3_exports ex;
    struct nfs3_export_opts o;

    memset(&ex, 0, sizeof(ex));
    nfs3_export_opts_default(&o);
    REQUIRE(nfs3_exports_add_any(&ex, "/srv/one", &o) == 0);
    REQUIRE(ex.n == 1 && ex.v[0].nclients == 1);
    CHECK(strcmp(ex.v[0].clients[0].spec, "*") == 0);
    CHECK(strcmp(match(&ex.v[0], "127.0.0.2"), "*") == 0);
    CHECK(strcmp(match(&ex.v[0], "::1"), "*") == 0);
    CHECK_EQ(ex.v[0].clients[0].opts.ro, 0);
    nfs3_exports_free(&ex);

    /* What --export DIR means: "DIR 127.0.0.1(rw) ::1(rw)", one export. */
    REQUIRE(nfs3_exports_add(&ex, "/srv/one", "127.0.0.1", &o) == 0);
    REQUIRE(nfs3_exports_add(&ex, "/srv/one", "::1", &o) == 0);
    REQUIRE(ex.n == 1 && ex.v[0].nclients == 2);
    CHECK(strcmp(match(&ex.v[0], "127.0.0.1"), "127.0.0.1") == 0);
    CHECK(strcmp(match(&ex.v[0], "::1"), "::1") == 0);
    CHECK(strcmp(match(&ex.v[0], "::ffff:127.0.0.1"), "127.0.0.1") == 0);
    CHECK(strcmp(match(&ex.v[0], "127.0.0.2"), "(none)") == 0);
    CHECK(strcmp(match(&ex.v[0], "10.1.2.3"), "(none)") == 0);
    /* A network adds to the same export; a second path makes another. */
    REQUIRE(nfs3_exports_add(&ex, "/srv/one", "10.0.0.0/8", &o) == 0);
    CHECK(strcmp(match(&ex.v[0], "10.1.2.3"), "10.0.0.0/8") == 0);
    REQUIRE(nfs3_exports_add(&ex, "/srv/two", "*", &o) == 0);
    CHECK_EQ(ex.n, 2);
    /* Host names (they need resolving), bad specs and relative paths. */
    CHECK_EQ(nfs3_exports_add(&ex, "/srv/one", "host.example", &o), -EINVAL);
    CHECK_EQ(nfs3_exports_add(&ex, "/srv/one", "10.0.0.0/33", &o), -EINVAL);
    CHECK_EQ(nfs3_exports_add(&ex, "/srv/one", "@group", &o), -EINVAL);
    CHECK_EQ(nfs3_exports_add(&ex, "srv/one", "*", &o), -EINVAL);
    CHECK_EQ(ex.v[0].nclients, 3);
    nfs3_exports_free(&ex);

    /* xprtsec: tls and mtls are disjoint, as knfsd's check_xprtsec_policy. */
    o.xprtsec = NFS3_XPRTSEC_MTLS;
    CHECK(!nfs3_export_xprtsec_ok(&o, 0, 0));
    CHECK(!nfs3_export_xprtsec_ok(&o, 1, 0));
    CHECK(nfs3_export_xprtsec_ok(&o, 1, 1));
    o.xprtsec = NFS3_XPRTSEC_TLS;
    CHECK(!nfs3_export_xprtsec_ok(&o, 0, 0));
    CHECK(nfs3_export_xprtsec_ok(&o, 1, 0));
    CHECK(!nfs3_export_xprtsec_ok(&o, 1, 1));
    o.xprtsec = NFS3_XPRTSEC_NONE;
    CHECK(nfs3_export_xprtsec_ok(&o, 0, 0));
    CHECK(!nfs3_export_xprtsec_ok(&o, 1, 0));
    CHECK(!nfs3_export_xprtsec_ok(&o, 1, 1));
    o.xprtsec = 0; /* the default: everything */
    CHECK(nfs3_export_xprtsec_ok(&o, 0, 0) && nfs3_export_xprtsec_ok(&o, 1, 0) && nfs3_export_xprtsec_ok(&o, 1, 1));
}

int main(void)
{
    TEST_RUN(test_good_file);
    TEST_RUN(test_precedence_order);
    TEST_RUN(test_bad_lines);
    TEST_RUN(test_load_and_resolve);
    TEST_RUN(test_add_any_and_xprtsec);
    return test_summary();
}
