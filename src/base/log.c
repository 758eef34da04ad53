/*
 * log: leveled logging. One FILE per process; lines are written whole with
 * a single fprintf so that concurrent workers do not interleave mid-line.
 */
#include "memring/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

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

/*
 * The new file takes the old one's descriptor number (dup2), under the
 * stream's lock: out stays the same FILE, so that workers writing lines
 * meanwhile need no other lock, and crash.c's log_fd() stays right. When
 * the file cannot be opened, lines keep going to the old one.
 */
int
log_reopen(void)
{
    int fd, err = 0;

    if (out_path == NULL) {
        return 0;
    }
    fd = open(out_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) {
        return -errno;
    }
    flockfile(out);
    fflush(out);
    if (dup2(fd, fileno(out)) < 0) {
        err = -errno;
    }
    funlockfile(out);
    close(fd);
    return err;
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
