/*
 * log: leveled logging to stderr or a file, with file:line on every line.
 * Levels follow nutcracker's -v scale (0..11); the default is 5 (notice).
 */
#ifndef MEMRING_LOG_H
#define MEMRING_LOG_H

enum log_level {
    LOG_EMERG = 0,
    LOG_ALERT,
    LOG_CRIT,
    LOG_ERR,
    LOG_WARN,
    LOG_NOTICE,
    LOG_INFO,
    LOG_DEBUG,
    LOG_VERB,
    LOG_VVERB,
    LOG_VVVERB,
    LOG_PVERB,
    LOG_LEVEL_MAX = LOG_PVERB
};

#define LOG_DEFAULT_LEVEL LOG_NOTICE

int log_setup(int level, const char *path); /* 0 or negative errno */

/* How a line looks: "[2026-12-05 07:21:00.123] NOTICE file.c:12 text", or
 * one JSON object per line for log pipelines:
 * {"ts":"2026-12-05T07:21:00.123Z","level":"NOTICE","src":"file.c:12",
 *  "msg":"text"} (UTC; bytes that JSON cannot hold raw as \u00XX). */
enum log_format {
    LOG_FORMAT_TEXT = 0,
    LOG_FORMAT_JSON
};
void log_set_format(enum log_format f);
int log_format_from_name(const char *name);   /* -1 when unknown */

/*
 * Repeats: one call site (file and line) writes the same text at most
 * LOG_BURST times a second; the repeats past that are counted, and the
 * site's next line that goes out says how many were left out. A server
 * that fails ten thousand requests a second then costs ten lines, not ten
 * thousand; distinct events (reload 11, reload 12) always go out.
 */
#define LOG_BURST 10
void log_teardown(void);
int log_reopen(void);    /* -o FILE opened again (after rotation); 0 or
                          * negative errno, lines then go on to the old */
int log_level_get(void);
int log_fd(void);                           /* where lines go, for crash.c */
void log_write(int level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define log_at(lvl, ...)                                               \
    do {                                                               \
        if ((lvl) <= log_level_get()) {                                \
            log_write((lvl), __FILE__, __LINE__, __VA_ARGS__);         \
        }                                                              \
    } while (0)

#define log_error(...)  log_at(LOG_ERR, __VA_ARGS__)
#define log_warn(...)   log_at(LOG_WARN, __VA_ARGS__)
#define log_notice(...) log_at(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)   log_at(LOG_INFO, __VA_ARGS__)

#ifdef MEMRING_DEBUG_LOG
#define log_debug(...) log_at(LOG_DEBUG, __VA_ARGS__)
#define log_verb(...)  log_at(LOG_VERB, __VA_ARGS__)
#else
#define log_debug(...) do { } while (0)
#define log_verb(...)  do { } while (0)
#endif

#endif /* MEMRING_LOG_H */
