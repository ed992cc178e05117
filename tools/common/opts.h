/*
 * tools/common/opts.h - option parsing shared by the tools (rpctls-cp,
 * rpctls-demo, rpctls-nfsd, rpctls-mount, rpctls-bench). Internal to the
 * tools: not part of librpctls, nothing here is RPCTLS_API.
 *
 * The parsers only judge the text; each tool keeps its own messages and
 * limits (a range such as "512 .. 4M" is the caller's).
 */
#ifndef RPCTLS_TOOLS_OPTS_H
#define RPCTLS_TOOLS_OPTS_H

#include <stdint.h>

/*
 * What a size may be beyond decimal digits with an optional K or M suffix
 * (either case, powers of 1024). The tools differ in these details and each
 * keeps what it has always accepted (and documents in its --help).
 */
enum tool_size_flags {
    TOOL_SIZE_G = 1u << 0,       /* G (2^30) as well */
    TOOL_SIZE_IB = 1u << 1,      /* after a suffix, "i" then "B" may follow: 4KiB, 4KB, 4Ki */
    TOOL_SIZE_C_BASES = 1u << 2, /* 0x hexadecimal and leading-0 octal (strtoull base 0) */
};

/* Why tool_parse_size refused its text. */
enum tool_size_err {
    TOOL_SIZE_OK = 0,
    TOOL_SIZE_NOT_NUMBER = -1, /* empty, or no digits where the number starts */
    TOOL_SIZE_RANGE = -2,      /* over 2^64 - 1, as written or once multiplied */
    TOOL_SIZE_TRAILING = -3,   /* text after the number that is not an accepted suffix */
    TOOL_SIZE_NEGATIVE = -4,   /* a '-' sign on an otherwise good number */
};

/*
 * Parses s, a size as flags allow, into *out. Returns TOOL_SIZE_OK, or an
 * enum tool_size_err, checked in the order listed there (a '-' sign comes
 * last, so "-1x" is TRAILING: a tool whose messages tell the two apart
 * keeps its old answers); *out is untouched then.
 * Leading white space and a '+' are accepted, as strtoull does.
 */
int tool_parse_size(const char *s, unsigned flags, uint64_t *out);

/*
 * The TLS options of an NFS client tool (rpctls-cp, rpctls-mount): *tls is
 * 1 for --tls, 0 for --no-tls, -1 for neither, which becomes 1 when --ca
 * is given and 0 otherwise. Returns NULL when the options agree, else the
 * usage error to print: a TLS file or name with --no-tls, or --cert
 * without --key (or the other way round).
 */
const char *tool_check_tls(int *tls, const char *ca, const char *cert, const char *key, const char *keylog,
                           const char *server_name);

#endif
