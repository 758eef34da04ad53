/*
 * health tests: one server's ejection state shared by every worker,
 * through health.h: identity (pool, ring name, address), eject.c's rules
 * seen through any reference, the process-wide generation that moves on
 * every ejection and readmission and only then, the latest connect's
 * outcome, and racing workers (one ejection, one readmission).
 */
#include "memring/health.h"

#include "memring/conf.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <uv.h>

#include <cmocka.h>

#define T0       5000000u   /* an arbitrary start on the fake clock, ms */
#define RETRY_MS 30000u

static const struct eject_policy policy = {
    .auto_eject = true,
    .failure_limit = 2,
    .retry_ms = RETRY_MS,
};

/* A conf_server as conf.c would make it for host:port (no alias). */
static struct conf_server
server(char *host, uint16_t port, char *name)
{
    struct conf_server cs;

    memset(&cs, 0, sizeof(cs));
    cs.host = host;
    cs.port = port;
    cs.name = name;
    cs.weight = 1;
    return cs;
}

struct fixture {
    struct conf_server cs;
    struct health      *h;
};

static struct fixture fx;

static int
fixture_setup(void **state)
{
    static char host[] = "127.0.0.1";
    static char name[] = "127.0.0.1:11211";

    fx.cs = server(host, 11211, name);
    fx.h = health_acquire("pool", &fx.cs);
    if (fx.h == NULL) {
        return -1;
    }
    *state = &fx;
    return 0;
}

static int
fixture_teardown(void **state)
{
    struct fixture *f = *state;

    health_release(&f->h);
    return f->h == NULL ? 0 : -1;
}

static void
test_identity(void **state)
{
    struct fixture *f = *state;
    static char other_host[] = "127.0.0.2";
    static char alias[] = "cache-1";
    struct conf_server same = f->cs, port = f->cs, host = f->cs;
    struct conf_server named = f->cs;
    struct health *h_same, *h_pool, *h_port, *h_host, *h_named;

    port.port = 11212;
    host.host = other_host;
    named.name = alias;
    h_same = health_acquire("pool", &same);
    h_pool = health_acquire("other_pool", &f->cs);
    h_port = health_acquire("pool", &port);
    h_host = health_acquire("pool", &host);
    h_named = health_acquire("pool", &named);
    /* the same server: the same ring name at the same address */
    assert_ptr_equal(h_same, f->h);
    assert_ptr_not_equal(h_pool, f->h);
    assert_ptr_not_equal(h_port, f->h);
    assert_ptr_not_equal(h_host, f->h);
    assert_ptr_not_equal(h_named, f->h);
    health_release(&h_same);
    assert_null(h_same);
    health_release(&h_pool);
    health_release(&h_port);
    health_release(&h_host);
    health_release(&h_named);
    health_release(&h_named);   /* NULL: nothing to do */
}

static void
test_eject_and_readmit(void **state)
{
    struct fixture *f = *state;
    uint64_t gen = health_generation();

    assert_int_equal(health_ejected_until(f->h), 0);
    assert_false(health_failure(f->h, &policy, T0));
    assert_int_equal(health_ejected_until(f->h), 0);
    assert_int_equal(health_generation(), gen);
    /* the second failure in a row ejects, for retry_ms */
    assert_true(health_failure(f->h, &policy, T0 + 1));
    assert_int_equal(health_ejected_until(f->h), T0 + 1 + RETRY_MS);
    assert_int_equal(health_generation(), gen + 1);
    /* failures while ejected change nothing */
    assert_false(health_failure(f->h, &policy, T0 + 2));
    assert_int_equal(health_ejected_until(f->h), T0 + 1 + RETRY_MS);
    assert_int_equal(health_generation(), gen + 1);
    /* not before its time; then once */
    assert_false(health_readmit(f->h, T0 + RETRY_MS));
    assert_int_equal(health_generation(), gen + 1);
    assert_true(health_readmit(f->h, T0 + 1 + RETRY_MS));
    assert_int_equal(health_ejected_until(f->h), 0);
    assert_int_equal(health_generation(), gen + 2);
    assert_false(health_readmit(f->h, T0 + 2 + RETRY_MS));
    assert_int_equal(health_generation(), gen + 2);
}

static void
test_probation_after_readmit(void **state)
{
    struct fixture *f = *state;
    uint64_t now = T0;

    health_failure(f->h, &policy, now);
    assert_true(health_failure(f->h, &policy, now));
    now += RETRY_MS;
    assert_true(health_readmit(f->h, now));
    /* back on probation: its first failure ejects it again */
    assert_true(health_failure(f->h, &policy, now));
    now += RETRY_MS;
    assert_true(health_readmit(f->h, now));
    /* a success ends probation: a streak of two is needed again */
    health_success(f->h);
    assert_false(health_failure(f->h, &policy, now));
    assert_true(health_failure(f->h, &policy, now));
    assert_true(health_readmit(f->h, now + RETRY_MS));
}

static void
test_success_ends_streak(void **state)
{
    struct fixture *f = *state;
    uint64_t gen = health_generation();

    assert_false(health_failure(f->h, &policy, T0));
    health_success(f->h);
    assert_false(health_failure(f->h, &policy, T0));
    health_success(f->h);
    health_success(f->h);       /* nothing to clear: still fine */
    assert_false(health_failure(f->h, &policy, T0));
    assert_int_equal(health_ejected_until(f->h), 0);
    assert_int_equal(health_generation(), gen);
}

static void
test_no_auto_eject(void **state)
{
    struct fixture *f = *state;
    struct eject_policy keep = policy;
    uint64_t gen = health_generation();
    int i;

    keep.auto_eject = false;
    for (i = 0; i < 100; i++) {
        assert_false(health_failure(f->h, &keep, T0 + (uint64_t)i));
    }
    assert_int_equal(health_ejected_until(f->h), 0);
    assert_false(health_readmit(f->h, T0 + 10 * RETRY_MS));
    assert_int_equal(health_generation(), gen);
}

/* Two workers' references are one state: failures add up across them,
 * and a readmission by one is the other's. */
static void
test_shared_between_references(void **state)
{
    struct fixture *f = *state;
    struct health *other = health_acquire("pool", &f->cs);

    assert_ptr_equal(other, f->h);
    assert_false(health_failure(f->h, &policy, T0));
    assert_true(health_failure(other, &policy, T0));
    assert_int_equal(health_ejected_until(f->h), T0 + RETRY_MS);
    assert_true(health_readmit(f->h, T0 + RETRY_MS));
    assert_int_equal(health_ejected_until(other), 0);
    health_release(&other);
    /* the fixture's reference still holds the state */
    assert_true(health_failure(f->h, &policy, T0 + RETRY_MS));
}

/* The last release frees the state: a new acquire starts on the ring. */
static void
test_state_ends_with_last_reference(void **state)
{
    static char host[] = "10.0.0.1";
    static char name[] = "10.0.0.1:11211";
    struct conf_server cs = server(host, 11211, name);
    struct health *h = health_acquire("gone", &cs);

    (void)state;
    health_failure(h, &policy, T0);
    assert_true(health_failure(h, &policy, T0));
    health_seen(h, UV_ECONNREFUSED);
    health_release(&h);
    h = health_acquire("gone", &cs);
    assert_int_equal(health_ejected_until(h), 0);
    assert_int_equal(health_down(h), 0);
    health_release(&h);
}

static void
test_seen_and_down(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(health_down(f->h), 0);     /* none tried yet */
    health_seen(f->h, UV_ECONNREFUSED);
    assert_int_equal(health_down(f->h), UV_ECONNREFUSED);
    health_seen(f->h, UV_ETIMEDOUT);
    assert_int_equal(health_down(f->h), UV_ETIMEDOUT);
    health_seen(f->h, 0);
    assert_int_equal(health_down(f->h), 0);
    /* the connect outcome is not the ejection state */
    health_seen(f->h, UV_ECONNREFUSED);
    assert_int_equal(health_ejected_until(f->h), 0);
}

/* A retry time that wraps the clock still reads as ejected (0 would mean
 * "on the ring"). */
static void
test_eject_at_clock_wrap(void **state)
{
    struct fixture *f = *state;
    struct eject_policy p = policy;

    p.failure_limit = 1;
    p.retry_ms = 1;
    assert_true(health_failure(f->h, &p, UINT64_MAX));
    assert_int_not_equal(health_ejected_until(f->h), 0);
}

/* ------------------------------------------------------------ threads */

#define NTHREADS 8

struct race {
    struct health *h;
    uint64_t      now;
    int           readmit;  /* 0: race failures; 1: race readmissions */
    atomic_int    wins;
    atomic_int    go;
};

static void *
race_main(void *arg)
{
    struct race *r = arg;
    bool won;

    while (!atomic_load(&r->go)) {
    }
    won = r->readmit ? health_readmit(r->h, r->now)
                     : health_failure(r->h, &policy, r->now);
    if (won) {
        atomic_fetch_add(&r->wins, 1);
    }
    return NULL;
}

static int
race(struct health *h, uint64_t now, int readmit)
{
    pthread_t th[NTHREADS];
    struct race r;
    int i;

    r.h = h;
    r.now = now;
    r.readmit = readmit;
    atomic_init(&r.wins, 0);
    atomic_init(&r.go, 0);
    for (i = 0; i < NTHREADS; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, race_main, &r), 0);
    }
    atomic_store(&r.go, 1);
    for (i = 0; i < NTHREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
    }
    return atomic_load(&r.wins);
}

/* Eight workers failing at once (limit 2) eject the server once; eight
 * readmitting at once bring it back once; the generation moves twice. */
static void
test_racing_workers(void **state)
{
    struct fixture *f = *state;
    uint64_t gen = health_generation();
    int round;

    for (round = 0; round < 50; round++) {
        uint64_t now = T0 + (uint64_t)round * 2 * RETRY_MS;

        assert_int_equal(race(f->h, now, 0), 1);
        assert_int_equal(health_ejected_until(f->h), now + RETRY_MS);
        assert_int_equal(race(f->h, now + RETRY_MS, 1), 1);
        assert_int_equal(health_ejected_until(f->h), 0);
        health_success(f->h);   /* end the probation */
    }
    assert_int_equal(health_generation(), gen + 100);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_identity, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_eject_and_readmit,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_probation_after_readmit,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_success_ends_streak,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_no_auto_eject, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_shared_between_references,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test(test_state_ends_with_last_reference),
        cmocka_unit_test_setup_teardown(test_seen_and_down, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_eject_at_clock_wrap,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_racing_workers, fixture_setup,
                                        fixture_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
