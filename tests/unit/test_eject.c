/*
 * eject tests: the ejection and retry state machine of one server, driven
 * through eject.h with a fake clock (plain milliseconds, advanced by hand).
 */
#include "memring/eject.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#define T0       1000000u   /* an arbitrary start on the fake clock */
#define RETRY_MS 30000u

struct fixture {
    struct eject_state  s;
    struct eject_policy p;
    uint64_t            now;    /* the fake clock, ms */
};

static struct fixture fx;

static int
fixture_setup(void **state)
{
    memset(&fx, 0, sizeof(fx));
    fx.p.auto_eject = true;
    fx.p.failure_limit = 3;
    fx.p.retry_ms = RETRY_MS;
    fx.now = T0;
    *state = &fx;
    return 0;
}

static bool
failure(struct fixture *f)
{
    return eject_failure(&f->s, &f->p, f->now);
}

/* n failures, one ms apart; asserts that none of them ejects. */
static void
fail_n_kept(struct fixture *f, uint32_t n)
{
    uint32_t i;

    for (i = 0; i < n; i++) {
        assert_false(failure(f));
        assert_false(eject_is_ejected(&f->s));
        f->now++;
    }
}

/* Ejects f's server (failure_limit failures) and lets the retry time pass
 * so that it is back on the ring, on probation. */
static void
eject_then_readmit(struct fixture *f)
{
    fail_n_kept(f, f->p.failure_limit - 1);
    assert_true(failure(f));
    f->now += f->p.retry_ms;
    assert_true(eject_readmit(&f->s, f->now));
    assert_false(eject_is_ejected(&f->s));
}

/* ------------------------------------------------------------ counting */

static void
test_fresh_state_is_on_the_ring(void **state)
{
    struct fixture *f = *state;

    assert_false(eject_is_ejected(&f->s));
    assert_false(eject_readmit(&f->s, f->now));
    assert_false(eject_is_ejected(&f->s));
}

static void
test_ejects_at_exactly_the_limit(void **state)
{
    struct fixture *f = *state;

    fail_n_kept(f, 2);
    assert_true(failure(f));
    assert_true(eject_is_ejected(&f->s));
    assert_int_equal(f->s.ejected_until, f->now + RETRY_MS);
}

static void
test_limit_one_ejects_on_first_failure(void **state)
{
    struct fixture *f = *state;

    f->p.failure_limit = 1;
    assert_true(failure(f));
    assert_true(eject_is_ejected(&f->s));
}

static void
test_success_resets_the_streak(void **state)
{
    struct fixture *f = *state;

    fail_n_kept(f, 2);
    eject_success(&f->s);
    /* The streak starts over: two more failures are still not enough. */
    fail_n_kept(f, 2);
    eject_success(&f->s);
    fail_n_kept(f, 2);
    assert_true(failure(f));
}

static void
test_no_ejection_without_auto_eject(void **state)
{
    struct fixture *f = *state;

    f->p.auto_eject = false;
    fail_n_kept(f, 1000);
    assert_false(eject_readmit(&f->s, f->now + 10 * RETRY_MS));
    /* Turning it on later starts from a clean count: nothing was kept. */
    f->p.auto_eject = true;
    fail_n_kept(f, 2);
    assert_true(failure(f));
}

/* A failure reported for a server already off the ring (a request that
 * was in flight when it was ejected) neither ejects it again nor moves its
 * retry time. */
static void
test_failures_while_ejected_change_nothing(void **state)
{
    struct fixture *f = *state;
    uint64_t until;
    uint32_t i;

    fail_n_kept(f, 2);
    assert_true(failure(f));
    until = f->s.ejected_until;
    for (i = 0; i < 2 * f->p.failure_limit; i++) {
        f->now += 10;
        assert_false(failure(f));
        assert_true(eject_is_ejected(&f->s));
        assert_int_equal(f->s.ejected_until, until);
    }
}

/* ------------------------------------------------------------ retry */

static void
test_readmit_exactly_at_retry_time(void **state)
{
    struct fixture *f = *state;
    uint64_t ejected_at;

    fail_n_kept(f, 2);
    ejected_at = f->now;
    assert_true(failure(f));

    assert_false(eject_readmit(&f->s, ejected_at));
    assert_false(eject_readmit(&f->s, ejected_at + RETRY_MS - 1));
    assert_true(eject_is_ejected(&f->s));

    assert_true(eject_readmit(&f->s, ejected_at + RETRY_MS));
    assert_false(eject_is_ejected(&f->s));
    /* Readmitted once: a second call has nothing to do. */
    assert_false(eject_readmit(&f->s, ejected_at + RETRY_MS));
}

static void
test_readmit_late_still_readmits(void **state)
{
    struct fixture *f = *state;

    fail_n_kept(f, 2);
    assert_true(failure(f));
    assert_true(eject_readmit(&f->s, f->now + 100 * RETRY_MS));
    assert_false(eject_is_ejected(&f->s));
}

static void
test_zero_retry_still_ejects(void **state)
{
    struct fixture *f = *state;

    /* retry 0 at clock 0 would make ejected_until 0, which means "on the
     * ring": the server must still count as ejected until readmitted. */
    f->p.retry_ms = 0;
    f->now = 0;
    fail_n_kept(f, 2);
    f->now = 0;
    assert_true(failure(f));
    assert_true(eject_is_ejected(&f->s));
    assert_true(eject_readmit(&f->s, 1));
    assert_false(eject_is_ejected(&f->s));
}

/* ------------------------------------------------------------ probation */

static void
test_probation_reejects_on_first_failure(void **state)
{
    struct fixture *f = *state;

    eject_then_readmit(f);
    f->now += 5;
    assert_true(failure(f));
    assert_true(eject_is_ejected(&f->s));
    assert_int_equal(f->s.ejected_until, f->now + RETRY_MS);
    /* and again after the next retry period */
    f->now += RETRY_MS;
    assert_true(eject_readmit(&f->s, f->now));
    assert_true(failure(f));
}

static void
test_success_clears_probation(void **state)
{
    struct fixture *f = *state;

    eject_then_readmit(f);
    eject_success(&f->s);
    /* Proven healthy: the full limit applies again. */
    fail_n_kept(f, 2);
    assert_true(failure(f));
}

static void
test_probation_survives_until_failure_or_success(void **state)
{
    struct fixture *f = *state;

    eject_then_readmit(f);
    /* Time alone does not end probation, nor do readmit calls. */
    f->now += 10 * RETRY_MS;
    assert_false(eject_readmit(&f->s, f->now));
    assert_true(failure(f));
}

static void
test_probation_without_auto_eject_never_ejects(void **state)
{
    struct fixture *f = *state;

    eject_then_readmit(f);
    f->p.auto_eject = false;
    fail_n_kept(f, 10);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup(fn, fixture_setup)
        T(test_fresh_state_is_on_the_ring),
        T(test_ejects_at_exactly_the_limit),
        T(test_limit_one_ejects_on_first_failure),
        T(test_success_resets_the_streak),
        T(test_no_ejection_without_auto_eject),
        T(test_failures_while_ejected_change_nothing),
        T(test_readmit_exactly_at_retry_time),
        T(test_readmit_late_still_readmits),
        T(test_zero_retry_still_ejects),
        T(test_probation_reejects_on_first_failure),
        T(test_success_clears_probation),
        T(test_probation_survives_until_failure_or_success),
        T(test_probation_without_auto_eject_never_ejects),
#undef T
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
