/*
 * tests/util/logcap.h - captures what the process writes to stderr (where
 * krpc_log's lines go) so a test can assert the exact wording of a log line.
 *
 * While a capture runs, fd 2 is a temporary file opened O_APPEND: every
 * krpc_log line is one write(), so lines from the server's loop thread and
 * the test thread never interleave. tu_logcap_stop puts stderr back and
 * copies what was captured to it, so the test's output still shows it.
 */
#ifndef RPCTLS_TEST_LOGCAP_H
#define RPCTLS_TEST_LOGCAP_H

#include <stddef.h>

struct tu_logcap {
    int fd;    /* the capture file, or -1 */
    int saved; /* the real stderr, or -1 */
};

/* Starts capturing fd 2. Returns 0, or -1 with a message on stderr. */
int tu_logcap_start(struct tu_logcap *l);
/* Everything captured so far, NUL-terminated (malloc'd; the caller frees),
 * or NULL on failure. */
char *tu_logcap_text(const struct tu_logcap *l);
/* Waits up to ms for a captured line containing every one of the needles
 * (a NULL-terminated list); copies that line (without its newline) into
 * line (may be NULL) and returns 1, or returns 0 after ms. */
int tu_logcap_wait_line(const struct tu_logcap *l, int ms, char *line, size_t linelen, const char *const *needles);
/* Restores stderr and echoes the captured text to it. */
void tu_logcap_stop(struct tu_logcap *l);

#endif
