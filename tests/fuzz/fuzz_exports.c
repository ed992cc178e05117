/*
 * fuzz_exports.c - the exports(5) parser against arbitrary text.
 *
 * Invariants: a parse either succeeds with a table whose every entry has an
 * absolute path and at least one client, with options in range and
 * networks with prefixes that fit their family, or fails with -EINVAL and
 * a message that starts with the file name and names a line and column
 * (never past the input's line count); the table is empty after a failure.
 * Host names are never resolved here. Matching every client against a few
 * fixed peers must not read out of bounds.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpctls/nfs3_export.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct nfs3_exports ex;
    char err[512];
    unsigned lines = 1;
    int r;

    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    memset(&ex, 0, sizeof(ex));
    r = nfs3_exports_parse(&ex, "F", (const char *)data, size, err, sizeof(err));
    if (r != 0) {
        unsigned line = 0, col = 0;
        if (r != -EINVAL || sscanf(err, "F:%u:%u: ", &line, &col) != 2 || line < 1 || line > lines || col < 1)
            abort();
        if (ex.n != 0 || ex.v != NULL)
            abort();
        return 0;
    }
    for (size_t i = 0; i < ex.n; i++) {
        const struct nfs3_export_entry *e = &ex.v[i];
        if (e->path == NULL || e->path[0] != '/' || e->nclients == 0)
            abort();
        for (size_t j = 0; j < e->nclients; j++) {
            const struct nfs3_export_client *c = &e->clients[j];
            if (c->opts.xprtsec == 0 || (c->opts.xprtsec & ~NFS3_XPRTSEC_ALL) != 0 || c->opts.ro > 1 ||
                c->spec[0] == '\0' || c->nnets > NFS3_EXPORT_MAX_ADDRS)
                abort();
            for (unsigned k = 0; k < c->nnets; k++)
                if (c->nets[k].prefix > (c->nets[k].family == AF_INET ? 32u : 128u))
                    abort();
        }
        struct sockaddr_in s4;
        struct sockaddr_in6 s6;
        memset(&s4, 0, sizeof(s4));
        memset(&s6, 0, sizeof(s6));
        s4.sin_family = AF_INET;
        s4.sin_addr.s_addr = htonl(0x0a000001);
        s6.sin6_family = AF_INET6;
        s6.sin6_addr.s6_addr[15] = 1;
        (void)nfs3_export_match(e, (struct sockaddr *)&s4);
        (void)nfs3_export_match(e, (struct sockaddr *)&s6);
    }
    nfs3_exports_free(&ex);
    return 0;
}
