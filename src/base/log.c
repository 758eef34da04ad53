/*
 * log: leveled logging. One FILE per process; lines are written whole with
 * a single fprintf so that concurrent workers do not interleave mid-line.
 */
#include "memring/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int level = LOG_DEFAULT_LEVEL;
static FILE *out;
static char *out_path;
static enum log_format format = LOG_FORMAT_TEXT;

/* Per call site, this second's count of lines (LOG_BURST); a small table
 * by (file, line), a collision just starts the other site's count. Under
 * its own lock: workers log from their threads. */
#define LOG_SITES 256

struct log_site {
    const char *file;
    int        line;
    uint64_t   text;            /* hash of its last line's text */
    time_t     second;
    uint32_t   lines;           /* of that text, this second */
    uint32_t   left_out;        /* over LOG_BURST, not yet reported */
};

static struct log_site sites[LOG_SITES];
static pthread_mutex_t sites_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {
    "EMERG", "ALERT", "CRIT", "ERROR", "WARN", "NOTICE",
    "INFO", "DEBUG", "VERB", "VVERB", "VVVERB", "PVERB",
};

int
log_setup(int lvl, const char *path)
{
    level = lvl < 0 ? 0 : (lvl > LOG_LEVEL_MAX ? LOG_LEVEL_MAX : lvl);
    out = stderr;
    pthread_mutex_lock(&sites_lock);
    memset(sites, 0, sizeof(sites));        /* a new log counts afresh */
    pthread_mutex_unlock(&sites_lock);
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
log_set_format(enum log_format f)
{
    format = f;
}

int
log_format_from_name(const char *name)
{
    if (strcmp(name, "text") == 0) {
        return LOG_FORMAT_TEXT;
    }
    if (strcmp(name, "json") == 0) {
        return LOG_FORMAT_JSON;
    }
    return -1;
}

/* FNV-1a of s: tells one line's text from another's. */
static uint64_t
text_hash(const char *s)
{
    uint64_t h = UINT64_C(14695981039346656037);

    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
    }
    return h;
}

/*
 * Whether the line msg from file:line at second now goes out: a site
 * repeating the same text writes it LOG_BURST times a second; a new text
 * always goes out. *left_out is set to the repeats of that site left out
 * before, to be reported with this line.
 */
static bool
log_admit(const char *file, int line, const char *msg, time_t now,
          uint32_t *left_out)
{
    uint64_t text = text_hash(msg);
    struct log_site *s;
    bool admit;

    s = &sites[((uintptr_t)file / 8 + (uintptr_t)line * 31) % LOG_SITES];
    pthread_mutex_lock(&sites_lock);
    *left_out = 0;
    if (s->file != file || s->line != line) {
        memset(s, 0, sizeof(*s));
        s->file = file;
        s->line = line;
    }
    if (s->text != text || s->second != now) {
        *left_out = s->left_out;
        s->text = text;
        s->second = now;
        s->lines = 0;
        s->left_out = 0;
    }
    admit = s->lines < LOG_BURST;
    if (admit) {
        s->lines++;
    } else {
        s->left_out++;
    }
    pthread_mutex_unlock(&sites_lock);
    return admit;
}

/* msg as a JSON string's contents into dst (dstlen > 0). */
static void
json_escape(const char *msg, char *dst, size_t dstlen)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    for (; *msg != '\0' && o + 7 < dstlen; msg++) {
        unsigned char c = (unsigned char)*msg;

        if (c == '"' || c == '\\') {
            dst[o++] = '\\';
            dst[o++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            dst[o++] = '\\';
            dst[o++] = 'u';
            dst[o++] = '0';
            dst[o++] = '0';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        } else {
            dst[o++] = (char)c;
        }
    }
    dst[o] = '\0';
}

void
log_write(int lvl, const char *file, int line, const char *fmt, ...)
{
    char msg[1024], json[6 * sizeof(msg) + 1];
    char stamp[64];
    struct timeval tv;
    struct tm tm;
    const char *base;
    uint32_t left_out;
    size_t n;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    gettimeofday(&tv, NULL);
    if (!log_admit(file, line, msg, tv.tv_sec, &left_out)) {
        return;
    }
    if (left_out > 0) {
        n = strlen(msg);
        snprintf(msg + n, sizeof(msg) - n, " (and %u more like it left out "
                 "before)", (unsigned int)left_out);
    }
    base = strrchr(file, '/');
    base = base != NULL ? base + 1 : file;
    if (lvl < 0) {
        lvl = 0;
    } else if (lvl > LOG_LEVEL_MAX) {
        lvl = LOG_LEVEL_MAX;
    }
    if (format == LOG_FORMAT_JSON) {
        gmtime_r(&tv.tv_sec, &tm);
        strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        json_escape(msg, json, sizeof(json));
        fprintf(out != NULL ? out : stderr, "{\"ts\":\"%s.%03ldZ\",\"level\":"
                "\"%s\",\"src\":\"%s:%d\",\"msg\":\"%s\"}\n", stamp,
                (long)(tv.tv_usec / 1000), level_names[lvl], base, line, json);
        return;
    }
    localtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
    fprintf(out != NULL ? out : stderr, "[%s.%03ld] %s %s:%d %s\n", stamp,
            (long)(tv.tv_usec / 1000), level_names[lvl], base, line, msg);
}
