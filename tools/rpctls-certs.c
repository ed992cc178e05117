/*
 * rpctls-certs - a small PKI for loopback use of rpctls-nfsd and rpctls-cp
 * (rpctls/pki.h does the work).
 *
 *   DIR/ca.pem, DIR/ca.key          self-signed CA
 *   DIR/server.pem, DIR/server.key  CN=localhost, SAN IP:127.0.0.1, DNS:localhost,
 *                                   extendedKeyUsage serverAuth
 *   DIR/client.pem, DIR/client.key  CN=rpctls-client, extendedKeyUsage clientAuth
 *
 * Keys are EC P-256, PEM, unencrypted, mode 0600. Existing files are
 * replaced. The file names are printed on stdout, one per line.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "rpctls/pki.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: rpctls-certs [--days N] DIR\n"
            "\n"
            "Makes a CA and a server and a client certificate with their keys (PEM, EC P-256)\n"
            "in DIR (created if missing), for rpctls-nfsd and rpctls-cp on loopback:\n"
            "  ca.pem ca.key           the CA (give ca.pem to both tools as --ca)\n"
            "  server.pem server.key   for rpctls-nfsd --cert/--key (SAN IP:127.0.0.1, DNS:localhost)\n"
            "  client.pem client.key   for rpctls-cp --cert/--key\n"
            "Existing files of these names are replaced. Prints the file names.\n"
            "\n"
            "  --days N   validity in days (default 30)\n"
            "  --help     this text\n"
            "Exit status: 0 on success, 1 on failure, 2 on bad usage.\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"days", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char *const files[] = {"ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key"};
    char err[512];
    long days = 30;
    const char *dir;
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
    dir = argv[optind];
    if (ktls_pki_make_dir(dir, (int)days, err, sizeof(err)) != 0) {
        fprintf(stderr, "rpctls-certs: %s\n", err);
        return 1;
    }
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        printf("%s/%s\n", dir, files[i]);
    return 0;
}
