/*
 * src/krpc/log.c - leveled log lines to stderr:
 *   2025-01-31T12:00:00.123Z rpctls: warn: message
 * The level comes from RPCTLS_LOG (error|warn|info|debug) the first time it
 * is needed, unless krpc_log_set_level ran first.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "rpctls/krpc.h"

static atomic_int log_level = -1; /* -1: not decided yet */

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static int level_now(void)
{
    int l = atomic_load_explicit(&log_level, memory_order_relaxed);
    if (l >= 0)
        return l;
    int want = KRPC_LOG_WARN;
    const char *e = getenv("RPCTLS_LOG");
    if (e) {
        for (int i = 0; i < 4; i++)
            if (strcasecmp(e, level_names[i]) == 0)
                want = i;
        if (strcasecmp(e, "warning") == 0)
            want = KRPC_LOG_WARN;
    }
    int expected = -1;
    /* A concurrent krpc_log_set_level wins over the environment. */
    if (!atomic_compare_exchange_strong(&log_level, &expected, want))
        return expected;
    return want;
}

void krpc_log_set_level(enum krpc_log_level level)
{
    int l = (int)level;
    if (l < KRPC_LOG_ERROR)
        l = KRPC_LOG_ERROR;
    if (l > KRPC_LOG_DEBUG)
        l = KRPC_LOG_DEBUG;
    atomic_store(&log_level, l);
}

void krpc_log(enum krpc_log_level level, const char *fmt, ...)
{
    if ((int)level > level_now() || (int)level < 0)
        return;
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ rpctls: %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L,
                     level_names[level]);
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2; /* truncated */
    if (len > 0 && line[len - 1] == '\n')
        len--;
    line[len++] = '\n';
    /* One write per line, so lines from several threads do not interleave. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
