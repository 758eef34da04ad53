/*
 * reload tests: a config file in a temporary directory, read by reload
 * for one worker on the test's loop (and, in one test, a second worker
 * running on a thread of its own); the file is rewritten and reloaded by
 * hand (reload_now) or by the watch, with the loop driven in bounded
 * steps (fake_mc.h). Pools listen on unix sockets in the same directory;
 * their servers are never connected.
 */
#include "memring/reload.h"

#include "memring/conf.h"
#include "memring/limits.h"
#include "memring/pool.h"
#include "memring/worker.h"

#include "fake_mc.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define NWORKERS_MAX 2

struct fixture {
    char          dir[64];              /* the file and the sockets */
    char          path[96];             /* dir/memring.yml */
    struct worker w[NWORKERS_MAX];
    struct worker *wp[NWORKERS_MAX];
    uint32_t      nworkers;             /* initialised */
    struct conf   *first;               /* r's from reload_create() on */
    struct reload *r;
    uv_thread_t   thread;               /* worker 1 runs here */
    bool          thread_started;
    atomic_bool   thread_returned;
    uint32_t      napplied;             /* on_apply calls */
    void          *applied_arg;
    int           taken_fd;             /* a bound TCP port, not listening */
    uint16_t      taken_port;
    char          msg[2048];
};

static struct fixture fx;

/* ---------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------- */

/* A config of the pools named in names (space separated), each on
 * dir/<name>.sock with one server; listen overrides the last one's
 * address when not NULL. */
static void
render(char *yaml, size_t len, const char *names, const char *listen)
{
    char copy[128], *name, *save = NULL;
    size_t used = 0;
    int n;

    snprintf(copy, sizeof(copy), "%s", names);
    yaml[0] = '\0';
    for (name = strtok_r(copy, " ", &save); name != NULL;
         name = strtok_r(NULL, " ", &save)) {
        if (listen != NULL && *save == '\0') {    /* the last one */
            n = snprintf(yaml + used, len - used, "%s:\n  listen: %s\n",
                         name, listen);
        } else {
            n = snprintf(yaml + used, len - used,
                         "%s:\n  listen: %s/%s.sock\n", name, fx.dir, name);
        }
        assert_true(n > 0 && (size_t)n < len - used);
        used += (size_t)n;
        n = snprintf(yaml + used, len - used,
                     "  servers:\n   - 127.0.0.1:11211:1\n");
        assert_true(n > 0 && (size_t)n < len - used);
        used += (size_t)n;
    }
}

/* Replaces the file's contents with text, in place. */
static void
write_text(const char *text)
{
    FILE *f = fopen(fx.path, "w");

    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* Writes a config of the pools in names (see render()). */
static void
write_pools(const char *names)
{
    char yaml[2048];

    render(yaml, sizeof(yaml), names, NULL);
    write_text(yaml);
}

/* Writes text beside the file and renames it over, as editors save. */
static void
rename_text(const char *text)
{
    char tmp[128];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s/.memring.yml.swp", fx.dir);
    f = fopen(tmp, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, fx.path), 0);
}

static bool
sock_exists(const char *pool)
{
    char path[128];

    snprintf(path, sizeof(path), "%s/%s.sock", fx.dir, pool);
    return access(path, F_OK) == 0;
}

static void
on_apply(void *arg)
{
    fx.napplied++;
    fx.applied_arg = arg;
}

/* Loads the file as the first config and starts nworkers workers on it
 * (worker 0 listening on the test's loop) and the reload over them. */
static void
start(uint32_t nworkers)
{
    char err[CONF_ERR_LEN];
    struct limits limits;
    uint32_t i;

    fx.first = conf_load(fx.path, err, sizeof(err));
    if (fx.first == NULL) {
        fail_msg("%s", err);
    }
    limits_default(&limits);
    for (i = 0; i < nworkers; i++) {
        assert_int_equal(worker_init(&fx.w[i], i, fx.first, &limits), 0);
        fx.wp[i] = &fx.w[i];
        fx.nworkers = i + 1;
    }
    assert_int_equal(worker_listen(&fx.w[0]), 0);
    fx.r = reload_create(&fx.w[0].io.loop, fx.path, fx.first, fx.wp,
                         nworkers);
    assert_non_null(fx.r);
    reload_on_apply(fx.r, on_apply, &fx);
}

static void
worker1_main(void *arg)
{
    (void)arg;
    worker_run(&fx.w[1]);
    atomic_store(&fx.thread_returned, true);
}

/* Stops worker 1 and waits (bounded) for its thread. True when it
 * returned. */
static bool
stop_worker1(void)
{
    uint32_t ms;

    if (!fx.thread_started) {
        return true;
    }
    worker_stop(&fx.w[1]);
    for (ms = 0; ms < FAKE_WAIT_MS && !atomic_load(&fx.thread_returned);
         ms++) {
        uv_sleep(1);
    }
    if (!atomic_load(&fx.thread_returned)) {
        return false;
    }
    uv_thread_join(&fx.thread);
    fx.thread_started = false;
    return true;
}

static bool
reloads_reach(void *arg)
{
    return reload_stats(fx.r)->reloads >= *(uint64_t *)arg;
}

static bool
failures_reach(void *arg)
{
    return reload_stats(fx.r)->failed >= *(uint64_t *)arg;
}

/* Runs the test loop until reload_stats() counts n reloads (or n
 * failures when failed), for at most FAKE_WAIT_MS. */
static bool
wait_reloads(uint64_t n, bool failed)
{
    return fake_run_until(&fx.w[0].io.loop,
                          failed ? failures_reach : reloads_reach, &n,
                          FAKE_WAIT_MS);
}

/* ---------------------------------------------------------------------
 * Fixture
 * ------------------------------------------------------------------- */

static int
setup(void **state)
{
    memset(&fx, 0, sizeof(fx));
    fx.taken_fd = -1;
    atomic_init(&fx.thread_returned, false);
    if (fake_tmpdir(fx.dir, sizeof(fx.dir), "reload") != 0 ||
        fake_refusing_port(&fx.taken_fd, &fx.taken_port) != 0) {
        return -1;
    }
    snprintf(fx.path, sizeof(fx.path), "%s/memring.yml", fx.dir);
    *state = &fx;
    return 0;
}

static int
teardown(void **state)
{
    bool ok = true;
    uint32_t i;

    (void)state;
    reload_stop(fx.r);
    if (!stop_worker1()) {
        fprintf(stderr, "worker 1 did not stop: leaking it\n");
        return -1;
    }
    if (fx.nworkers > 0) {
        worker_stop(&fx.w[0]);
        ok = fake_run_down(&fx.w[0].io.loop, FAKE_WAIT_MS);
    }
    for (i = 0; i < fx.nworkers; i++) {
        worker_deinit(&fx.w[i]);
    }
    if (fx.r != NULL) {
        reload_destroy(&fx.r);      /* the first config too */
    } else {
        conf_destroy(&fx.first);
    }
    if (fx.taken_fd >= 0) {
        close(fx.taken_fd);
    }
    unlink(fx.path);
    /* Every listener removes its socket file when it closes. */
    ok &= fake_tmpdir_remove(fx.dir);
    return ok ? 0 : -1;
}

/* ---------------------------------------------------------------------
 * reload_create, reload_now
 * ------------------------------------------------------------------- */

static void
test_create_holds_conf(void **state)
{
    uint64_t t0 = (uint64_t)time(NULL);
    const struct reload_stats *st;

    (void)state;
    write_pools("alpha");
    start(1);
    st = reload_stats(fx.r);
    assert_ptr_equal(reload_conf(fx.r), fx.first);
    assert_int_equal(st->reloads, 0);
    assert_int_equal(st->failed, 0);
    assert_true(st->loaded_at >= t0 && st->loaded_at <= (uint64_t)time(NULL));
    assert_int_equal(fx.napplied, 0);
}

/* A valid change applies to the worker; the same file again applies too,
 * with nothing changed. */
static void
test_now_applies_change(void **state)
{
    char want[1024];
    const struct conf *c;

    (void)state;
    write_pools("alpha");
    start(1);
    assert_false(sock_exists("beta"));
    write_pools("alpha beta");

    assert_int_equal(reload_now(fx.r, fx.msg, sizeof(fx.msg)), 0);
    snprintf(want, sizeof(want),
             "pool alpha: unchanged, 0 servers added, 0 removed\n"
             "pool beta: added, listening on %s/beta.sock", fx.dir);
    assert_string_equal(fx.msg, want);
    c = reload_conf(fx.r);
    assert_ptr_not_equal(c, fx.first);
    assert_int_equal(c->npools, 2);
    assert_string_equal(c->pools[0].name, "alpha");
    assert_string_equal(c->pools[1].name, "beta");
    assert_string_equal(c->path, fx.path);
    assert_ptr_equal(fx.w[0].conf, c);
    assert_non_null(worker_find_pool(&fx.w[0], "beta"));
    assert_true(sock_exists("beta"));
    assert_int_equal(reload_stats(fx.r)->reloads, 1);
    assert_int_equal(reload_stats(fx.r)->failed, 0);
    assert_int_equal(fx.napplied, 1);
    assert_ptr_equal(fx.applied_arg, &fx);

    assert_int_equal(reload_now(fx.r, fx.msg, sizeof(fx.msg)), 0);
    assert_string_equal(fx.msg,
                        "pool alpha: unchanged, 0 servers added, 0 removed\n"
                        "pool beta: unchanged, 0 servers added, 0 removed");
    assert_ptr_not_equal(reload_conf(fx.r), c);
    assert_int_equal(reload_stats(fx.r)->reloads, 2);
    assert_int_equal(fx.napplied, 2);
}

/* A file that was refused: an error naming it, the old config still
 * active in reload and worker, a failure counted, no on_apply. */
static void
assert_refused(int rc, const char *want)
{
    assert_int_not_equal(rc, 0);
    assert_string_equal(fx.msg, want);
    assert_ptr_equal(reload_conf(fx.r), fx.first);
    assert_ptr_equal(fx.w[0].conf, fx.first);
    assert_int_equal(fx.w[0].npools, 1);
    assert_int_equal(reload_stats(fx.r)->reloads, 0);
    assert_int_equal(reload_stats(fx.r)->failed, 1);
    assert_int_equal(fx.napplied, 0);
}

/* The one-pool config with extra appended is refused with "conf:
 * FILE:" and then where_why. */
static void
assert_appended_refused(const char *extra, const char *where_why)
{
    char text[1024], want[1024];

    write_pools("alpha");
    start(1);
    render(text, sizeof(text), "alpha", NULL);
    strcat(text, extra);
    write_text(text);
    snprintf(want, sizeof(want), "conf: %s:%s", fx.path, where_why);
    assert_refused(reload_now(fx.r, fx.msg, sizeof(fx.msg)), want);
}

static void
test_now_yaml_error(void **state)
{
    (void)state;
    assert_appended_refused("beta:\n  listen: [127.0.0.1:1\n",
                            "7:1: yaml: did not find expected ',' or ']' "
                            "(while parsing a flow sequence at line 6)");
}

static void
test_now_bad_key(void **state)
{
    (void)state;
    assert_appended_refused("  bogus: 1\n",
                            "5:3: bogus: unknown key in pool \"alpha\"");
}

static void
test_now_missing_file(void **state)
{
    char want[1024];

    (void)state;
    write_pools("alpha");
    start(1);
    assert_int_equal(unlink(fx.path), 0);
    snprintf(want, sizeof(want), "conf: %s: cannot open: %s", fx.path,
             strerror(ENOENT));
    assert_refused(reload_now(fx.r, fx.msg, sizeof(fx.msg)), want);
}

/* A valid file the worker cannot apply (a taken address) is refused
 * whole; once fixed, it applies. */
static void
test_now_apply_refused(void **state)
{
    char text[1024], listen[32];

    (void)state;
    write_pools("alpha");
    start(1);
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", fx.taken_port);
    render(text, sizeof(text), "alpha beta", listen);
    write_text(text);
    assert_refused(reload_now(fx.r, fx.msg, sizeof(fx.msg)),
                   "pool beta: cannot apply (address already in use); "
                   "nothing changed");

    write_pools("alpha beta");
    assert_int_equal(reload_now(fx.r, fx.msg, sizeof(fx.msg)), 0);
    assert_int_equal(reload_stats(fx.r)->reloads, 1);
    assert_int_equal(reload_stats(fx.r)->failed, 1);
    assert_int_equal(fx.napplied, 1);
    assert_ptr_equal(fx.w[0].conf, reload_conf(fx.r));
}

/* Two workers: the one on this loop switches here, the other on its own
 * thread; both end on the new config. */
static void
test_now_two_workers(void **state)
{
    const struct pool *beta;

    (void)state;
    write_pools("alpha");
    start(2);
    assert_int_equal(uv_thread_create(&fx.thread, worker1_main, NULL), 0);
    fx.thread_started = true;
    write_pools("alpha beta");

    assert_int_equal(reload_now(fx.r, fx.msg, sizeof(fx.msg)), 0);
    assert_int_equal(reload_stats(fx.r)->reloads, 1);
    assert_int_equal(fx.napplied, 1);
    assert_ptr_equal(fx.w[0].conf, reload_conf(fx.r));
    assert_true(stop_worker1());
    assert_ptr_equal(fx.w[1].conf, reload_conf(fx.r));
    assert_int_equal(fx.w[1].npools, 2);
    beta = worker_find_pool(&fx.w[1], "beta");
    assert_non_null(beta);
    assert_int_equal(beta->env.worker_id, 1);
    assert_null(beta->listener);    /* a unix socket is worker 0's */
}

/* ---------------------------------------------------------------------
 * reload_watch
 * ------------------------------------------------------------------- */

/* A change on disk reloads (in place or renamed over); a rewrite of the
 * same bytes does not; a bad file is refused. */
static void
test_watch_reloads_on_change(void **state)
{
    char text[1024];

    (void)state;
    write_pools("alpha");
    start(1);
    assert_int_equal(reload_watch(fx.r), 0);

    write_pools("alpha beta");
    assert_true(wait_reloads(1, false));
    assert_int_equal(fx.napplied, 1);
    assert_non_null(worker_find_pool(&fx.w[0], "beta"));
    assert_true(sock_exists("beta"));

    write_pools("alpha beta");      /* touched, not changed */
    fake_run_for(&fx.w[0].io.loop, 300);
    assert_int_equal(reload_stats(fx.r)->reloads, 1);
    assert_int_equal(reload_stats(fx.r)->failed, 0);

    render(text, sizeof(text), "alpha beta gamma", NULL);
    rename_text(text);
    assert_true(wait_reloads(2, false));
    assert_int_equal(fx.napplied, 2);
    assert_non_null(worker_find_pool(&fx.w[0], "gamma"));

    write_text("alpha: [\n");
    assert_true(wait_reloads(1, true));
    assert_int_equal(reload_stats(fx.r)->reloads, 2);
    assert_int_equal(reload_conf(fx.r)->npools, 3);
    assert_int_equal(fx.napplied, 2);
}

/* After reload_stop(), changes on disk are left alone. */
static void
test_stop_ends_watch(void **state)
{
    (void)state;
    write_pools("alpha");
    start(1);
    assert_int_equal(reload_watch(fx.r), 0);
    reload_stop(fx.r);
    reload_stop(fx.r);              /* twice is harmless */
    write_pools("alpha beta");
    fake_run_for(&fx.w[0].io.loop, 300);
    assert_int_equal(reload_stats(fx.r)->reloads, 0);
    assert_int_equal(reload_stats(fx.r)->failed, 0);
    assert_ptr_equal(reload_conf(fx.r), fx.first);
    assert_false(sock_exists("beta"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_holds_conf, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_now_applies_change, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_now_yaml_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_now_bad_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_now_missing_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_now_apply_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_now_two_workers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_watch_reloads_on_change, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stop_ends_watch, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
