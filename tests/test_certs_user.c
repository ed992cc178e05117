/*
 * test_certs_user.c - `rpctls-certs --user NAME@DOMAIN` as a program.
 *
 *   - the client certificate it writes names exactly that user
 *     (ktls_cert_file_user, the rules the server applies), in FreeBSD's form
 *     by default and with --user-form freebsd, in the draft's NFSv4Principal
 *     with --user-form draft (checked by re-encoding: the otherName's OID);
 *     the server certificate names none;
 *   - without --user the client certificate names none;
 *   - a bad value (no "@", empty user, empty domain, two "@", longer than
 *     KTLS_MAX_PEER_USER) and a bad --user-form exit 2 with one line that
 *     names the value, and leave no files behind.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rpctls/ktls.h"
#include "test.h"
#include "util/nfsd.h"

static char g_base[PATH_MAX], g_tool[PATH_MAX];

/* Runs rpctls-certs with args (NULL-terminated, the directory included);
 * its output into out (malloc'd; the caller frees). Returns the exit status. */
static int certs(char **out, const char *const *args)
{
    char log[PATH_MAX + 16], *argv[16];
    int argc = 0, st;
    FILE *f;

    TU_FMT(log, "%s/out", g_base);
    argv[argc++] = g_tool;
    for (; *args != NULL && argc < 15; args++)
        argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    st = tu_run(argv, log, 30);
    *out = calloc(1, 8192);
    f = fopen(log, "r");
    if (*out != NULL && f != NULL)
        (void)!fread(*out, 1, 8191, f);
    if (f != NULL)
        fclose(f);
    return st;
}

/* The OID (dotted) of the first otherName in file's subjectAltName into
 * oid; 0, or -1 when there is none. */
static int first_othername_oid(const char *file, char *oid, size_t len)
{
    FILE *f = fopen(file, "r");
    X509 *x = f != NULL ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    GENERAL_NAMES *gens = x != NULL ? X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL) : NULL;
    int ret = -1;

    for (int i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type == GEN_OTHERNAME) {
            OBJ_obj2txt(oid, (int)len, g->d.otherName->type_id, 1);
            ret = 0;
            break;
        }
    }
    GENERAL_NAMES_free(gens);
    X509_free(x);
    if (f != NULL)
        fclose(f);
    return ret;
}

/* The user ktls_cert_file_user reads from dir/name; 1, 0 or -1 as it. */
static int user_in(const char *dir, const char *name, char *user, size_t ulen)
{
    char p[PATH_MAX + 64], why[256];

    TU_FMT(p, "%s/%s", dir, name);
    return ktls_cert_file_user(p, user, ulen, why, sizeof why);
}

static void test_user_forms(void)
{
    static const struct {
        const char *form; /* --user-form, NULL: not given */
        const char *oid;  /* of the otherName written */
    } cases[] = {
        {NULL, KTLS_OID_FREEBSD_USER},
        {"freebsd", KTLS_OID_FREEBSD_USER},
        {"draft", KTLS_OID_NFSV4_PRINCIPAL},
    };
    char dir[PATH_MAX + 16], user[KTLS_MAX_PEER_USER + 1], oid[128], p[PATH_MAX + 64], *out;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[8] = {"--user", "alice@example.org"};
        int n = 2;
        TU_FMT(dir, "%s/forms-%zu", g_base, i);
        if (cases[i].form != NULL) {
            args[n++] = "--user-form";
            args[n++] = cases[i].form;
        }
        args[n++] = dir;
        CHECK_EQ(certs(&out, args), 0);
        REQUIRE(out != NULL);
        TU_FMT(p, "%s/client.pem\n", dir);
        CHECK(strstr(out, p) != NULL); /* the file names are printed */
        free(out);
        CHECK_EQ(user_in(dir, "client.pem", user, sizeof user), 1);
        CHECK(strcmp(user, "alice@example.org") == 0);
        TU_FMT(p, "%s/client.pem", dir);
        CHECK(first_othername_oid(p, oid, sizeof oid) == 0 && strcmp(oid, cases[i].oid) == 0);
        CHECK_EQ(user_in(dir, "server.pem", user, sizeof user), 0);
        CHECK(strcmp(user, "") == 0);
    }

    /* Without --user: no user in the client certificate. */
    {
        const char *args[] = {NULL, NULL};
        TU_FMT(dir, "%s/plain", g_base);
        args[0] = dir;
        CHECK_EQ(certs(&out, args), 0);
        free(out);
        CHECK_EQ(user_in(dir, "client.pem", user, sizeof user), 0);
    }
}

static void test_bad_values(void)
{
    char longv[KTLS_MAX_PEER_USER + 32], want[512], dir[PATH_MAX + 16], p[PATH_MAX + 64], *out;
    struct stat st;

    /* 256 bytes: one past the limit ("a...a@example.org"). */
    memset(longv, 'a', sizeof longv);
    memcpy(longv + KTLS_MAX_PEER_USER + 1 - strlen("@example.org"), "@example.org", strlen("@example.org") + 1);
    REQUIRE(strlen(longv) == KTLS_MAX_PEER_USER + 1);

    static const char *const bad[] = {"alice", "@example.org", "alice@", "a@b@example.org", "", NULL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *v = bad[i] != NULL ? bad[i] : longv;
        const char *args[] = {"--user", v, dir, NULL};
        TU_FMT(dir, "%s/bad-%zu", g_base, i);
        if (bad[i] != NULL)
            TU_FMT(want, "rpctls-certs: --user \"%s\": expected NAME@DOMAIN (at most %d bytes)\n", v,
                   KTLS_MAX_PEER_USER);
        else
            TU_FMT(want, "rpctls-certs: --user \"%.64s...\": expected NAME@DOMAIN (at most %d bytes)\n", v,
                   KTLS_MAX_PEER_USER);
        CHECK_EQ(certs(&out, args), 2);
        REQUIRE(out != NULL);
        CHECK(strcmp(out, want) == 0);
        if (strcmp(out, want) != 0)
            fprintf(stderr, "rpctls-certs said:\n%swanted:\n%s", out, want);
        free(out);
        TU_FMT(p, "%s/ca.pem", dir);
        CHECK(stat(p, &st) != 0); /* refused before anything was made */
    }

    /* The exact limit is accepted. */
    {
        char user[KTLS_MAX_PEER_USER + 1];
        const char *args[] = {"--user", longv + 1, dir, NULL};
        TU_FMT(dir, "%s/longest", g_base);
        CHECK_EQ(certs(&out, args), 0);
        free(out);
        CHECK_EQ(user_in(dir, "client.pem", user, sizeof user), 1);
        CHECK(strcmp(user, longv + 1) == 0);
    }

    /* A bad --user-form, and --user-form alone. */
    {
        const char *args[] = {"--user", "alice@example.org", "--user-form", "ia5", dir, NULL};
        TU_FMT(dir, "%s/badform", g_base);
        CHECK_EQ(certs(&out, args), 2);
        REQUIRE(out != NULL);
        CHECK(strcmp(out, "rpctls-certs: --user-form \"ia5\": expected freebsd or draft\n") == 0);
        free(out);
    }
    {
        const char *args[] = {"--user-form", "draft", dir, NULL};
        TU_FMT(dir, "%s/formonly", g_base);
        CHECK_EQ(certs(&out, args), 2);
        REQUIRE(out != NULL);
        CHECK(strcmp(out, "rpctls-certs: --user-form needs --user\n") == 0);
        free(out);
        TU_FMT(p, "%s/ca.pem", dir);
        CHECK(stat(p, &st) != 0);
    }
}

int main(void)
{
    tu_tool_path("rpctls-certs", g_tool, sizeof g_tool);
    if (access(g_tool, X_OK) != 0) {
        fprintf(stderr, "test_certs_user: %s not found (build the tools)\n", g_tool);
        return 1;
    }
    if (tu_mkdtemp(g_base, sizeof g_base, "certs-user") != 0)
        return 1;
    TEST_RUN(test_user_forms);
    TEST_RUN(test_bad_values);
    tu_rmtree(g_base);
    return test_summary();
}
