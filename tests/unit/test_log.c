/*
 * log tests: levels, the line format, the file a log goes to and its
 * reopening after rotation, through log.h. Each test logs into its own
 * file in a temporary directory and reads it back.
 */
#include "memring/log.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

struct fixture {
    char dir[64];
    char path[128];
    char text[8192];     /* what the file held at the last read_log() */
};

static int
fixture_setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/memring-test-log-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/memring.log", f->dir);
    *state = f;
    return 0;
}

static int
fixture_teardown(void **state)
{
    struct fixture *f = *state;
    char old[160];

    log_teardown();
    snprintf(old, sizeof(old), "%s.1", f->path);
    unlink(f->path);
    unlink(old);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* The file at path, into f->text (NUL-terminated); its length. */
static size_t
read_file(struct fixture *f, const char *path)
{
    FILE *fp = fopen(path, "r");
    size_t n;

    assert_non_null(fp);
    n = fread(f->text, 1, sizeof(f->text) - 1, fp);
    fclose(fp);
    f->text[n] = '\0';
    return n;
}

static size_t
read_log(struct fixture *f)
{
    return read_file(f, f->path);
}

static size_t
count_lines(const char *s)
{
    size_t n = 0;

    for (; *s != '\0'; s++) {
        n += *s == '\n';
    }
    return n;
}

static size_t
count_str(const char *s, const char *what)
{
    size_t n = 0;

    for (s = strstr(s, what); s != NULL; s = strstr(s + 1, what)) {
        n++;
    }
    return n;
}

/* log_setup() does not close a file an earlier log_setup() opened: each
 * test tears down before it sets up again. */
static void
test_setup_levels_clamp(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(log_setup(LOG_INFO, f->path), 0);
    assert_int_equal(log_level_get(), LOG_INFO);
    log_teardown();
    assert_int_equal(log_setup(-3, f->path), 0);
    assert_int_equal(log_level_get(), LOG_EMERG);
    log_teardown();
    assert_int_equal(log_setup(99, f->path), 0);
    assert_int_equal(log_level_get(), LOG_PVERB);
    log_teardown();
    assert_int_equal(log_setup(LOG_DEFAULT_LEVEL, NULL), 0);
    assert_int_equal(log_level_get(), LOG_NOTICE);
}

/* "[YYYY-MM-DD HH:MM:SS.mmm] LEVEL file.c:LINE message", the file's
 * base name only, one line per call. */
static void
test_line_format(void **state)
{
    struct fixture *f = *state;
    int year, mon, day, hh, mm, ss, ms, line, n = 0;
    char level[16], file[64];

    assert_int_equal(log_setup(LOG_NOTICE, f->path), 0);
    log_write(LOG_WARN, "src/dir/server.c", 123, "server %s: %d", "x", 7);
    read_log(f);
    assert_int_equal(sscanf(f->text,
                            "[%4d-%2d-%2d %2d:%2d:%2d.%3d] %15s %63[^:]:%d "
                            "server x: 7\n%n",
                            &year, &mon, &day, &hh, &mm, &ss, &ms, level,
                            file, &line, &n),
                     10);
    assert_int_equal((size_t)n, strlen(f->text));
    assert_true(year >= 2020);
    assert_true(ms >= 0 && ms < 1000);
    assert_string_equal(level, "WARN");
    assert_string_equal(file, "server.c");
    assert_int_equal(line, 123);
}

static void
test_level_names(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(log_setup(LOG_PVERB, f->path), 0);
    log_write(LOG_EMERG, "a.c", 1, "m");
    log_write(LOG_ERR, "a.c", 1, "m");
    log_write(LOG_NOTICE, "a.c", 1, "m");
    log_write(LOG_PVERB, "a.c", 1, "m");
    /* out-of-range levels are clamped, not read past the names */
    log_write(-5, "a.c", 1, "m");
    log_write(LOG_LEVEL_MAX + 7, "a.c", 1, "m");
    read_log(f);
    assert_int_equal(count_lines(f->text), 6);
    assert_non_null(strstr(f->text, "] EMERG a.c:1 m\n"));
    assert_non_null(strstr(f->text, "] ERROR a.c:1 m\n"));
    assert_non_null(strstr(f->text, "] NOTICE a.c:1 m\n"));
    assert_non_null(strstr(f->text, "] PVERB a.c:1 m\n"));
    assert_int_equal(count_str(f->text, "] EMERG a.c:1 m\n"), 2);
    assert_int_equal(count_str(f->text, "] PVERB a.c:1 m\n"), 2);
}

/* The log_* macros write only at or below the level set. */
static void
test_macros_filter_by_level(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(log_setup(LOG_NOTICE, f->path), 0);
    log_error("shown %d", 1);
    log_warn("shown %d", 2);
    log_notice("shown %d", 3);
    log_info("hidden %d", 4);
    log_debug("hidden %d", 5);
    log_verb("hidden %d", 6);
    read_log(f);
    assert_int_equal(count_lines(f->text), 3);
    assert_non_null(strstr(f->text, "ERROR test_log.c:"));
    assert_non_null(strstr(f->text, "shown 3\n"));
    assert_null(strstr(f->text, "hidden"));

    log_teardown();
    assert_int_equal(log_setup(LOG_ERR, f->path), 0);
    log_warn("hidden %d", 7);
    log_error("shown %d", 8);
    read_log(f);
    assert_int_equal(count_lines(f->text), 4);
    assert_null(strstr(f->text, "hidden"));
    assert_non_null(strstr(f->text, "shown 8\n"));
}

/* A message longer than the line buffer is cut, still one whole line. */
static void
test_long_message_cut(void **state)
{
    struct fixture *f = *state;
    char big[3000];
    size_t n;

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(log_setup(LOG_NOTICE, f->path), 0);
    log_write(LOG_NOTICE, "a.c", 1, "%s", big);
    log_write(LOG_NOTICE, "a.c", 2, "after");
    n = read_log(f);
    assert_true(n < 1200);
    assert_int_equal(count_lines(f->text), 2);
    assert_non_null(strstr(f->text, "xxx\n"));
    assert_non_null(strstr(f->text, "a.c:2 after\n"));
}

static void
test_appends(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(log_setup(LOG_NOTICE, f->path), 0);
    log_write(LOG_NOTICE, "a.c", 1, "first run");
    log_teardown();
    assert_int_equal(log_setup(LOG_NOTICE, f->path), 0);
    log_write(LOG_NOTICE, "a.c", 1, "second run");
    read_log(f);
    assert_int_equal(count_lines(f->text), 2);
    assert_true(strstr(f->text, "first run") < strstr(f->text, "second run"));
}

static void
test_unwritable_path(void **state)
{
    struct fixture *f = *state;
    char path[160];

    snprintf(path, sizeof(path), "%s/no/such/dir/x.log", f->dir);
    assert_int_equal(log_setup(LOG_NOTICE, path), -ENOENT);
    assert_int_equal(log_setup(LOG_NOTICE, f->dir), -EISDIR);
}

/* "-" and "stderr" mean standard error: no file of that name appears. */
static void
test_stderr_names(void **state)
{
    (void)state;
    assert_int_equal(log_setup(LOG_NOTICE, "-"), 0);
    log_teardown();
    assert_int_equal(log_setup(LOG_NOTICE, "stderr"), 0);
    assert_int_equal(access("-", F_OK), -1);
    assert_int_equal(access("stderr", F_OK), -1);
}

/* One call site writes the same text LOG_BURST times a second; the
 * repeats past that are counted and its next line that goes out says how
 * many. Distinct texts from one site, and other sites, are not held back. */
static void
test_repeats_are_limited(void **state)
{
    struct fixture *f = *state;
    time_t start;
    int i, tries = 0;

    /* all within one second, whatever the clock does at the start */
    do {
        assert_true(tries++ < 5);
        start = time(NULL);
        assert_int_equal(log_setup(LOG_NOTICE, f->path), 0);
        assert_int_equal(truncate(f->path, 0), 0);
        for (i = 0; i < 30; i++) {
            log_write(LOG_NOTICE, "reload.c", 3, "reload %d applied", i);
        }
        for (i = 0; i < 100; i++) {
            log_write(LOG_NOTICE, "flood.c", 7, "server down");
        }
        log_write(LOG_NOTICE, "other.c", 9, "another site");
        log_write(LOG_NOTICE, "flood.c", 7, "server up");
    } while (time(NULL) != start);
    read_log(f);
    assert_int_equal(count_lines(f->text), 30 + LOG_BURST + 2);
    assert_non_null(strstr(f->text, "reload 29 applied"));
    assert_non_null(strstr(f->text, "another site"));
    assert_non_null(strstr(f->text, "server up (and 90 more like it left "
                                    "out before)"));
}

/* JSON lines: one object per line, UTC time, the message escaped. */
static void
test_json_format(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(log_format_from_name("json"), LOG_FORMAT_JSON);
    assert_int_equal(log_format_from_name("text"), LOG_FORMAT_TEXT);
    assert_int_equal(log_format_from_name("xml"), -1);
    assert_int_equal(log_setup(LOG_NOTICE, f->path), 0);
    log_set_format(LOG_FORMAT_JSON);
    log_write(LOG_WARN, "src/x/pool.c", 12, "key \"a\\b\"\t\x01\xc3\xa9 end");
    log_set_format(LOG_FORMAT_TEXT);
    read_log(f);
    assert_int_equal(count_lines(f->text), 1);
    assert_memory_equal(f->text, "{\"ts\":\"", 7);
    assert_non_null(strstr(f->text, "Z\",\"level\":\"WARN\",\"src\":"
                                    "\"pool.c:12\",\"msg\":\"key \\\"a\\\\b\\\""
                                    "\\u0009\\u0001\\u00c3\\u00a9 end\"}\n"));
}

/* After logrotate renames the file, log_reopen() starts a new one at the
 * configured path; the old file keeps what was written before. */
static void
test_reopen_after_rotation(void **state)
{
    struct fixture *f = *state;
    char old[160];

    snprintf(old, sizeof(old), "%s.1", f->path);
    assert_int_equal(log_setup(LOG_NOTICE, f->path), 0);
    log_write(LOG_NOTICE, "a.c", 1, "before rotation");
    assert_int_equal(rename(f->path, old), 0);
    log_write(LOG_NOTICE, "a.c", 1, "still the old file");
    assert_int_equal(log_reopen(), 0);
    log_write(LOG_NOTICE, "a.c", 1, "after rotation");
    read_log(f);
    assert_int_equal(count_lines(f->text), 1);
    assert_non_null(strstr(f->text, "after rotation"));
    read_file(f, old);
    assert_int_equal(count_lines(f->text), 2);
    assert_non_null(strstr(f->text, "before rotation"));
    assert_non_null(strstr(f->text, "still the old file"));
}

/* A path that cannot be opened again: log_reopen() says why, and lines
 * go on to the file already open. Logging to stderr, it has nothing to
 * do. */
static void
test_reopen_fails_keeps_file(void **state)
{
    struct fixture *f = *state;
    char old[160];

    snprintf(old, sizeof(old), "%s.1", f->path);
    assert_int_equal(log_setup(LOG_NOTICE, f->path), 0);
    assert_int_equal(rename(f->path, old), 0);
    assert_int_equal(mkdir(f->path, 0700), 0);     /* open(2): EISDIR */
    assert_int_equal(log_reopen(), -EISDIR);
    log_write(LOG_NOTICE, "a.c", 1, "after a failed reopen");
    assert_int_equal(rmdir(f->path), 0);
    read_file(f, old);
    assert_non_null(strstr(f->text, "after a failed reopen"));
    assert_int_equal(log_setup(LOG_NOTICE, "-"), 0);
    assert_int_equal(log_reopen(), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_setup_levels_clamp,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_line_format, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_level_names, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_macros_filter_by_level,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_long_message_cut,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_appends, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_unwritable_path, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_stderr_names, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_repeats_are_limited,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_json_format, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_reopen_after_rotation,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_reopen_fails_keeps_file,
                                        fixture_setup, fixture_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
