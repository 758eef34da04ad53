/*
 * probe tests: a pool of two servers, one a fake memcached that accepts
 * ("up"), one a port that refuses ("down"), looked at by a probe whose
 * callback names them; the outcome is read back through health_down().
 */
#include "memring/probe.h"

#include "memring/conf.h"
#include "memring/health.h"
#include "memring/ioloop.h"
#include "memring/limits.h"
#include "memring/pool.h"
#include "memring/server.h"

#include "fake_mc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

struct fixture {
    struct fake_pool fp;        /* io, conf, pool */
    struct fake_mc fake;
    int            refuse_fd;
    struct server  *up;
    struct server  *down;
    struct probe   *probe;
    uint32_t       nlooks;      /* times the probe called each() */
    void           *seen_arg;
    struct probe   *seen_probe;
};

static struct fixture fx;

static void
each(void *arg, struct probe *p)
{
    struct fixture *f = arg;
    uint32_t i;

    f->nlooks++;
    f->seen_arg = arg;
    f->seen_probe = p;
    for (i = 0; i < f->fp.pool->nservers; i++) {
        probe_server(p, f->fp.pool->servers[i]);
    }
}

static struct server *
by_name(const char *name)
{
    uint32_t i;

    for (i = 0; i < fx.fp.pool->nservers; i++) {
        if (strcmp(fx.fp.pool->servers[i]->cs->name, name) == 0) {
            return fx.fp.pool->servers[i];
        }
    }
    return NULL;
}

static int
setup(void **state)
{
    struct limits limits;
    char yaml[256];
    uint16_t port;

    memset(&fx, 0, sizeof(fx));
    fx.refuse_fd = -1;
    limits_default(&limits);
    if (fake_pool_init(&fx.fp, &limits) != 0 ||
        fake_mc_start(&fx.fake, &fx.fp.io.loop, FAKE_MC_SCRIPTED, NULL) != 0 ||
        fake_refusing_port(&fx.refuse_fd, &port) != 0) {
        return -1;
    }
    snprintf(yaml, sizeof(yaml),
             "pr:\n"
             "  listen: 127.0.0.1:22121\n"
             "  servers:\n"
             "   - 127.0.0.1:%u:1 up\n"
             "   - 127.0.0.1:%u:1 down\n", fx.fake.port, port);
    if (fake_pool_open(&fx.fp, yaml, NULL) != 0) {
        return -1;
    }
    fx.up = by_name("up");
    fx.down = by_name("down");
    *state = &fx;
    return fx.up != NULL && fx.down != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
    bool ok;

    (void)state;
    probe_destroy(&fx.probe);
    ok = fake_mc_stop(&fx.fake);
    ok &= fake_pool_close(&fx.fp);
    if (fx.refuse_fd >= 0) {
        close(fx.refuse_fd);
    }
    return ok ? 0 : -1;
}

struct health_is {
    const struct server *s;
    int                 down;   /* what health_down() must say */
};

static bool
health_matches(void *arg)
{
    const struct health_is *h = arg;

    return health_down(h->s->health) == h->down;
}

static void
wait_health(const struct server *s, int down)
{
    struct health_is h = { s, down };

    assert_true(fake_run_until(&fx.fp.io.loop, health_matches, &h,
                               FAKE_WAIT_MS));
}

static bool
looked(void *arg)
{
    return fx.nlooks >= *(uint32_t *)arg;
}

static void
wait_looks(uint32_t n)
{
    assert_true(fake_run_until(&fx.fp.io.loop, looked, &n, FAKE_WAIT_MS));
}

static bool
fake_accepted(void *arg)
{
    return fx.fake.nconns >= *(uint32_t *)arg;
}

/* The fake accepted n connections (probes), or more. */
static void
wait_fake_conns(uint32_t n)
{
    assert_true(fake_run_until(&fx.fp.io.loop, fake_accepted, &n,
                               FAKE_WAIT_MS));
}

/* After a look, the refusing server is down and the listening one is up
 * (it was marked down by hand before, so the probe must have said so);
 * each() got the caller's arg and the probe. */
static void
test_probe_marks_down_and_up(void **state)
{
    (void)state;
    health_seen(fx.up->health, UV_ECONNREFUSED);
    assert_int_equal(health_down(fx.up->health), UV_ECONNREFUSED);
    assert_int_equal(health_down(fx.down->health), 0);

    fx.probe = probe_create(&fx.fp.io.loop, 20, each, &fx);
    assert_non_null(fx.probe);
    wait_health(fx.down, UV_ECONNREFUSED);
    wait_health(fx.up, 0);
    assert_true(fx.nlooks >= 1);
    assert_ptr_equal(fx.seen_arg, &fx);
    assert_ptr_equal(fx.seen_probe, fx.probe);
    wait_fake_conns(1);
    /* the probe only informs: nothing is counted against the servers */
    assert_int_equal(fx.down->stats.server_failures, 0);
    assert_int_equal(fx.down->stats.server_err, 0);
}

/* A server that answered since the last look is alive without a
 * connect; at the next look, with no new answers, it is probed again. */
static void
test_probe_skips_servers_that_answered(void **state)
{
    (void)state;
    fx.up->stats.responses = 5;
    fx.down->stats.responses = 3;
    health_seen(fx.down->health, UV_ECONNREFUSED);

    fx.probe = probe_create(&fx.fp.io.loop, 200, each, &fx);
    assert_non_null(fx.probe);
    wait_looks(1);
    assert_int_equal(health_down(fx.down->health), 0);
    assert_int_equal(fx.down->probe_responses, 3);
    assert_int_equal(fx.up->probe_responses, 5);
    fake_run_for(&fx.fp.io.loop, 30);
    assert_int_equal(fx.nlooks, 1);
    assert_int_equal(fx.fake.nconns, 0);         /* no probe connect */
    assert_int_equal(health_down(fx.down->health), 0);

    wait_looks(2);
    wait_health(fx.down, UV_ECONNREFUSED);
    wait_fake_conns(1);
    assert_int_equal(fx.fake.nconns, 1);
    assert_int_equal(fx.nlooks, 2);
}

/* The first look comes soon (100 ms) even with a long interval, and a
 * probe destroyed before it never looks. */
static void
test_probe_first_look_and_destroy(void **state)
{
    uint64_t start = uv_hrtime();

    (void)state;
    fx.probe = probe_create(&fx.fp.io.loop, 60000, each, &fx);
    assert_non_null(fx.probe);
    wait_looks(1);
    assert_true(uv_hrtime() - start < 1000 * 1000000ull);
    probe_destroy(&fx.probe);
    assert_null(fx.probe);
    probe_destroy(&fx.probe);       /* NULL: a no-op */

    fx.probe = probe_create(&fx.fp.io.loop, 20, each, &fx);
    assert_non_null(fx.probe);
    probe_destroy(&fx.probe);
    fake_run_for(&fx.fp.io.loop, 150);
    assert_int_equal(fx.nlooks, 1);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_probe_marks_down_and_up),
        T(test_probe_skips_servers_that_answered),
        T(test_probe_first_look_and_destroy),
    };
#undef T

    return cmocka_run_group_tests(tests, NULL, NULL);
}
