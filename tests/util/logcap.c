/*
 * tests/util/logcap.c - stderr capture for log-wording tests.
 */
#define _GNU_SOURCE
#include "util/logcap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int tu_logcap_start(struct tu_logcap *l)
{
    char path[] = "/tmp/rpctls-logcap-XXXXXX";
    int ret = -1;

    l->fd = mkstemp(path);
    l->saved = -1;
    if (l->fd < 0) {
        perror("logcap: mkstemp");
        goto exit;
    }
    unlink(path);
    if (fcntl(l->fd, F_SETFL, O_APPEND) < 0 || (l->saved = dup(STDERR_FILENO)) < 0) {
        perror("logcap: fcntl/dup");
        goto exit;
    }
    fflush(stderr);
    if (dup2(l->fd, STDERR_FILENO) < 0) {
        perror("logcap: dup2");
        goto exit;
    }
    ret = 0;
exit:
    if (ret != 0) {
        if (l->saved >= 0)
            close(l->saved);
        if (l->fd >= 0)
            close(l->fd);
        l->fd = l->saved = -1;
    }
    return ret;
}

char *tu_logcap_text(const struct tu_logcap *l)
{
    struct stat st;
    char *buf;
    ssize_t n;

    if (l->fd < 0 || fstat(l->fd, &st) < 0)
        return NULL;
    if ((buf = malloc((size_t)st.st_size + 1)) == NULL)
        return NULL;
    n = pread(l->fd, buf, (size_t)st.st_size, 0);
    if (n < 0) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* 1 when the line [p, end) contains every needle. */
static int line_matches(const char *p, const char *end, const char *const *needles)
{
    for (; *needles != NULL; needles++) {
        const char *hit = memmem(p, (size_t)(end - p), *needles, strlen(*needles));
        if (hit == NULL)
            return 0;
    }
    return 1;
}

int tu_logcap_wait_line(const struct tu_logcap *l, int ms, char *line, size_t linelen, const char *const *needles)
{
    /* Polled every 10 ms: bounded by ms / 10 + 1 looks. */
    for (int waited = 0;; waited += 10) {
        char *text = tu_logcap_text(l);
        const char *p = text;

        while (p != NULL && *p != '\0') {
            const char *end = strchr(p, '\n');
            if (end == NULL)
                break; /* a line still being written */
            if (line_matches(p, end, needles)) {
                if (line != NULL && linelen > 0)
                    snprintf(line, linelen, "%.*s", (int)(end - p), p);
                free(text);
                return 1;
            }
            p = end + 1;
        }
        free(text);
        if (waited >= ms)
            return 0;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
}

void tu_logcap_stop(struct tu_logcap *l)
{
    char *text;

    if (l->saved < 0)
        return;
    fflush(stderr);
    dup2(l->saved, STDERR_FILENO);
    close(l->saved);
    l->saved = -1;
    text = tu_logcap_text(l);
    if (text != NULL) {
        fputs(text, stderr);
        free(text);
    }
    close(l->fd);
    l->fd = -1;
}
