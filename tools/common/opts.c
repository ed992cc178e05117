/*
 * tools/common/opts.c - option parsing shared by the tools; see opts.h.
 */
#include "opts.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>

int tool_parse_size(const char *s, unsigned flags, uint64_t *out)
{
    const char *p = s;
    char *end;
    unsigned long long v;
    unsigned shift = 0;
    int negative;

    /* strtoull takes "-1" as 2^64 - 1: the sign is looked for here. */
    while (isspace((unsigned char)*p))
        p++;
    negative = *p == '-';
    errno = 0;
    v = strtoull(s, &end, (flags & TOOL_SIZE_C_BASES) ? 0 : 10);
    if (end == s)
        return TOOL_SIZE_NOT_NUMBER;
    if (errno != 0)
        return TOOL_SIZE_RANGE;
    if (*end == 'K' || *end == 'k')
        shift = 10;
    else if (*end == 'M' || *end == 'm')
        shift = 20;
    else if ((flags & TOOL_SIZE_G) && (*end == 'G' || *end == 'g'))
        shift = 30;
    if (shift != 0) {
        end++;
        if ((flags & TOOL_SIZE_IB) && *end == 'i') /* KiB, MiB */
            end++;
        if ((flags & TOOL_SIZE_IB) && *end == 'B')
            end++;
    }
    if (*end != '\0')
        return TOOL_SIZE_TRAILING;
    if (negative)
        return TOOL_SIZE_NEGATIVE;
    if (v > (UINT64_MAX >> shift))
        return TOOL_SIZE_RANGE;
    *out = (uint64_t)v << shift;
    return TOOL_SIZE_OK;
}

const char *tool_check_tls(int *tls, const char *ca, const char *cert, const char *key, const char *keylog,
                           const char *server_name)
{
    if (*tls < 0)
        *tls = ca != NULL;
    if (!*tls && (ca || cert || key || keylog || server_name))
        return "--ca/--cert/--key/--keylog/--server-name given with --no-tls";
    if ((cert != NULL) != (key != NULL))
        return "--cert and --key go together";
    return NULL;
}
