/*
 * rpctls-certs - a small PKI for loopback use of rpctls-nfsd and rpctls-cp
 * (rpctls/pki.h does the work).
 *
 *   DIR/ca.pem, DIR/ca.key          self-signed CA
 *   DIR/server.pem, DIR/server.key  CN=localhost, SAN IP:127.0.0.1, DNS:localhost,
 *                                   extendedKeyUsage serverAuth
 *   DIR/client.pem, DIR/client.key  CN=rpctls-client, extendedKeyUsage clientAuth
 *
 * With --user NAME@DOMAIN the client certificate also names that user in a
 * subjectAltName otherName, FreeBSD's form, or with --user-form draft the
 * NFSv4Principal of draft-cel-nfsv4-rpc-tls-othername (docs/ktls-handshake.md,
 * "Certificate identity").
 *
 * Keys are EC P-256, PEM, unencrypted, mode 0600. Existing files are
 * replaced. The file names are printed on stdout, one per line.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpctls/ktls.h"
#include "rpctls/pki.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: rpctls-certs [--days N] [--user NAME@DOMAIN [--user-form freebsd|draft]] DIR\n"
            "\n"
            "Makes a CA and a server and a client certificate with their keys (PEM, EC P-256)\n"
            "in DIR (created if missing), for rpctls-nfsd and rpctls-cp on loopback:\n"
            "  ca.pem ca.key           the CA (give ca.pem to both tools as --ca)\n"
            "  server.pem server.key   for rpctls-nfsd --cert/--key (SAN IP:127.0.0.1, DNS:localhost)\n"
            "  client.pem client.key   for rpctls-cp --cert/--key\n"
            "Existing files of these names are replaced. Prints the file names.\n"
            "\n"
            "  --days N             validity in days (default 365; servers and clients warn when\n"
            "                       fewer than 30 days are left)\n"
            "  --user NAME@DOMAIN   the client certificate names this user in a subjectAltName\n"
            "                       otherName 1.3.6.1.4.1.2238.1.1.1 (a UTF8String), as FreeBSD's\n"
            "                       rpc.tlsservd -u and exports -tlscertuser read it\n"
            "                       (draft-cel-nfsv4-rpc-tls-othername describes it; its own OIDs\n"
            "                       are not assigned yet). A server with the export option\n"
            "                       tlscertuser runs that client's calls as NAME.\n"
            "  --user-form FORM     freebsd (default): the otherName above; draft: the draft's\n"
            "                       NFSv4Principal, SEQUENCE { UTF8String }, under rpctls's\n"
            "                       placeholder OID " KTLS_OID_NFSV4_PRINCIPAL "\n"
            "                       (read by rpctls servers only, until the draft has its OID)\n"
            "  --help               this text\n"
            "Exit status: 0 on success, 1 on failure, 2 on bad usage.\n");
}

/* Replaces DIR/client.pem with one that also names user (the key is new too). */
static int issue_user_client(const char *dir, const char *user, unsigned form, int days, char *err, size_t errlen)
{
    char p[4][4096];
    static const char *const names[4] = {"ca.pem", "ca.key", "client.pem", "client.key"};
    struct ktls_pki_req req;

    for (int i = 0; i < 4; i++) {
        if ((size_t)snprintf(p[i], sizeof p[i], "%s/%s", dir, names[i]) >= sizeof p[i]) {
            snprintf(err, errlen, "%s: path too long", dir);
            return -1;
        }
    }
    memset(&req, 0, sizeof req);
    req.kind = KTLS_PKI_CLIENT;
    /* The CN repeats the user for people reading the certificate; X.520
     * bounds a CN to 64 characters, so a longer user (the otherName holds up
     * to KTLS_MAX_PEER_USER) keeps the default client CN. */
    req.cn = strlen(user) <= 64 ? user : "rpctls-client";
    req.user = user;
    req.user_forms = form;
    req.ca_cert = p[0];
    req.ca_key = p[1];
    req.cert_out = p[2];
    req.key_out = p[3];
    req.days = days;
    return ktls_pki_issue_req(&req, err, errlen);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"days", required_argument, NULL, 'd'},
        {"user", required_argument, NULL, 'u'},
        {"user-form", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char *const files[] = {"ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key"};
    char err[512];
    long days = 365;
    const char *dir, *user = NULL;
    unsigned form = 0; /* 0: not given (KTLS_PKI_USER_FREEBSD) */
    int opt;

    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'd': {
            char *end;
            days = strtol(optarg, &end, 10);
            if (*end || days < 1 || days > 36500) {
                fprintf(stderr, "rpctls-certs: --days: expected 1..36500\n");
                return 2;
            }
            break;
        }
        case 'u': {
            const char *at = strchr(optarg, '@');
            if (at == NULL || at == optarg || at[1] == '\0' || strchr(at + 1, '@') != NULL ||
                strlen(optarg) > KTLS_MAX_PEER_USER) {
                /* The value is named, cut to a readable length. */
                fprintf(stderr, "rpctls-certs: --user \"%.64s%s\": expected NAME@DOMAIN (at most %d bytes)\n",
                        optarg, strlen(optarg) > 64 ? "..." : "", KTLS_MAX_PEER_USER);
                return 2;
            }
            user = optarg;
            break;
        }
        case 'f':
            if (strcmp(optarg, "freebsd") == 0)
                form = KTLS_PKI_USER_FREEBSD;
            else if (strcmp(optarg, "draft") == 0)
                form = KTLS_PKI_USER_DRAFT;
            else {
                fprintf(stderr, "rpctls-certs: --user-form \"%.64s\": expected freebsd or draft\n", optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    if (form != 0 && user == NULL) {
        fprintf(stderr, "rpctls-certs: --user-form needs --user\n");
        return 2;
    }
    dir = argv[optind];
    if (ktls_pki_make_dir(dir, (int)days, err, sizeof(err)) != 0 ||
        (user != NULL &&
         issue_user_client(dir, user, form != 0 ? form : KTLS_PKI_USER_FREEBSD, (int)days, err, sizeof err) != 0)) {
        fprintf(stderr, "rpctls-certs: %s\n", err);
        return 1;
    }
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        printf("%s/%s\n", dir, files[i]);
    return 0;
}
