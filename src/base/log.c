/*
 * log: leveled logging. One FILE per process; lines are written whole with
 * a single fprintf so that concurrent workers do not interleave mid-line.
 */
#include "memring/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static int level = LOG_DEFAULT_LEVEL;
static FILE *out;
static char *out_path;

static const char *const level_names[] = {
    "EMERG", "ALERT", "CRIT", "ERROR", "WARN", "NOTICE",
    "INFO", "DEBUG", "VERB", "VVERB", "VVVERB", "PVERB",
};

int
log_setup(int lvl, const char *path)
{
    level = lvl < 0 ? 0 : (lvl > LOG_LEVEL_MAX ? LOG_LEVEL_MAX : lvl);
    out = stderr;
    free(out_path);
    out_path = NULL;
    if (path != NULL && strcmp(path, "-") != 0 && strcmp(path, "stderr") != 0) {
        FILE *f = fopen(path, "a");
        if (f == NULL) {
            return -errno;
        }
        setvbuf(f, NULL, _IOLBF, 0);
        out = f;
        out_path = strdup(path);
    }
    return 0;
}

void
log_teardown(void)
{
    if (out != NULL && out != stderr) {
        fclose(out);
    }
    out = NULL;
    free(out_path);
    out_path = NULL;
}

void
log_reopen(void)
{
    if (out_path != NULL) {
        FILE *f = freopen(out_path, "a", out);
        if (f != NULL) {
            out = f;
            setvbuf(out, NULL, _IOLBF, 0);
        }
    }
}

int
log_level_get(void)
{
    return level;
}

int
log_fd(void)
{
    return fileno(out != NULL ? out : stderr);
}

void
log_write(int lvl, const char *file, int line, const char *fmt, ...)
{
    char msg[1024];
    char stamp[64];
    struct timeval tv;
    struct tm tm;
    const char *base;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
    base = strrchr(file, '/');
    base = base != NULL ? base + 1 : file;
    if (lvl < 0) {
        lvl = 0;
    } else if (lvl > LOG_LEVEL_MAX) {
        lvl = LOG_LEVEL_MAX;
    }
    fprintf(out != NULL ? out : stderr, "[%s.%03ld] %s %s:%d %s\n", stamp,
            (long)(tv.tv_usec / 1000), level_names[lvl], base, line, msg);
}
