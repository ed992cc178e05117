/*
 * export_opts.c - the defaults of an export's policy (rpctls/nfs3_export.h).
 */
#include <string.h>

#include "rpctls/nfs3_export.h"

void nfs3_export_opts_default(struct nfs3_export_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->squash = NFS3_SQUASH_ROOT;
    o->anonuid = NFS3_ANON_ID;
    o->anongid = NFS3_ANON_ID;
    o->xprtsec = NFS3_XPRTSEC_ALL;
}
