/*
 * tally tests: the client counts the connection limits apply to (per pool
 * and in all), shared by name, and the process-wide byte counts of held
 * values and unsent replies, through tally.h. The counts are process-wide:
 * every test gives back what it took.
 */
#include "memring/tally.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define NO_LIMIT 0          /* per_pool: no limit of the pool's own */
#define MANY     1000000u   /* total: a limit never reached here */

/* n takes on t that must all succeed. */
static void
take_n(struct tally *t, uint32_t n, uint32_t per_pool, uint32_t total)
{
    uint32_t i;

    for (i = 0; i < n; i++) {
        assert_true(tally_take(t, per_pool, total));
    }
}

static void
give_n(struct tally *t, uint32_t n)
{
    uint32_t i;

    for (i = 0; i < n; i++) {
        tally_give(t);
    }
}

static void
test_same_name_same_count(void **state)
{
    struct tally *a1 = tally_acquire("alpha");
    struct tally *a2 = tally_acquire("alpha");
    struct tally *b = tally_acquire("beta");

    (void)state;
    assert_non_null(a1);
    assert_non_null(b);
    assert_ptr_equal(a1, a2);
    assert_ptr_not_equal(a1, b);
    /* a client counted through one reference is seen through the other */
    assert_true(tally_take(a1, 1, MANY));
    assert_false(tally_take(a2, 1, MANY));
    /* and not by another pool */
    assert_true(tally_take(b, 1, MANY));
    tally_give(a2);
    assert_true(tally_take(a2, 1, MANY));
    tally_give(a1);
    tally_give(b);
    tally_release(&a1);
    assert_null(a1);
    tally_release(&a2);
    tally_release(&b);
    assert_null(b);
    tally_release(&b);      /* NULL: nothing to do */
}

static void
test_pool_limit(void **state)
{
    struct tally *t = tally_acquire("pool_limit");

    (void)state;
    assert_non_null(t);
    take_n(t, 3, 3, MANY);
    assert_false(tally_take(t, 3, MANY));
    assert_false(tally_take(t, 3, MANY));
    /* a client gone gives its place back */
    tally_give(t);
    assert_true(tally_take(t, 3, MANY));
    assert_false(tally_take(t, 3, MANY));
    /* a larger limit (after a reload) lets more in at once */
    assert_true(tally_take(t, 4, MANY));
    give_n(t, 4);
    tally_release(&t);
}

static void
test_pool_limit_zero_is_none(void **state)
{
    struct tally *t = tally_acquire("no_limit");

    (void)state;
    assert_non_null(t);
    take_n(t, 500, NO_LIMIT, 500);
    /* only the total stops it */
    assert_false(tally_take(t, NO_LIMIT, 500));
    give_n(t, 500);
    tally_release(&t);
}

static void
test_total_spans_pools(void **state)
{
    struct tally *a = tally_acquire("span_a");
    struct tally *b = tally_acquire("span_b");

    (void)state;
    take_n(a, 3, 3, 4);
    assert_true(tally_take(b, 3, 4));
    /* b is under its own limit, but all together are at 4 */
    assert_false(tally_take(b, 3, 4));
    assert_false(tally_take(a, 3, 4));
    tally_give(a);
    assert_true(tally_take(b, 3, 4));
    assert_false(tally_take(a, 3, 4));
    give_n(a, 2);
    give_n(b, 2);
    tally_release(&a);
    tally_release(&b);
}

static void
test_total_zero_refuses_all(void **state)
{
    struct tally *t = tally_acquire("total_zero");

    (void)state;
    assert_false(tally_take(t, NO_LIMIT, 0));
    assert_false(tally_take(t, 5, 0));
    /* nothing was counted by the refusals */
    take_n(t, 1, 1, 1);
    tally_give(t);
    tally_release(&t);
}

/* A take refused by the pool's limit must not leave a client counted in
 * the total, nor one refused by the total in the pool. */
static void
test_refusals_count_nothing(void **state)
{
    struct tally *a = tally_acquire("refuse_a");
    struct tally *b = tally_acquire("refuse_b");
    uint32_t i;

    (void)state;
    take_n(a, 1, 1, 10);
    for (i = 0; i < 100; i++) {
        assert_false(tally_take(a, 1, 10));
    }
    take_n(b, 9, NO_LIMIT, 10);      /* the total still has 9 places */
    assert_false(tally_take(b, NO_LIMIT, 10));
    give_n(b, 9);
    tally_give(a);
    /* b was refused by the total: its own count is 0, a limit of 1 holds
     * one client again */
    take_n(b, 1, 1, 10);
    assert_false(tally_take(b, 1, 10));
    tally_give(b);
    tally_release(&a);
    tally_release(&b);
}

static void
test_value_bytes_limit(void **state)
{
    (void)state;
    assert_true(tally_value_bytes_take(100, 150));
    assert_false(tally_value_bytes_take(60, 150));
    assert_true(tally_value_bytes_take(50, 150));  /* exactly the limit */
    assert_false(tally_value_bytes_take(1, 150));
    assert_true(tally_value_bytes_take(0, 150));   /* nothing always fits */
    tally_value_bytes_give(100);
    assert_true(tally_value_bytes_take(100, 150));
    tally_value_bytes_give(150);
    /* all given back: the whole limit is free */
    assert_true(tally_value_bytes_take(150, 150));
    assert_false(tally_value_bytes_take(1, 150));
    tally_value_bytes_give(150);
    /* one value larger than the limit never fits */
    assert_false(tally_value_bytes_take(151, 150));
    assert_true(tally_value_bytes_take(UINT64_MAX / 2, UINT64_MAX / 2));
    tally_value_bytes_give(UINT64_MAX / 2);
}

static void
test_output_bytes_follow_changes(void **state)
{
    uint64_t base = tally_output_bytes();

    (void)state;
    tally_output_bytes_change(0, 100);
    assert_int_equal(tally_output_bytes(), base + 100);
    tally_output_bytes_change(0, 50);
    assert_int_equal(tally_output_bytes(), base + 150);
    /* a client's replies shrink from 100 to 30 bytes */
    tally_output_bytes_change(100, 30);
    assert_int_equal(tally_output_bytes(), base + 80);
    tally_output_bytes_change(30, 30);
    assert_int_equal(tally_output_bytes(), base + 80);
    tally_output_bytes_change(30, 0);
    tally_output_bytes_change(50, 0);
    assert_int_equal(tally_output_bytes(), base);
}

/* ------------------------------------------------------------ threads */

#define NTHREADS 8
#define ROUNDS   20000
#define LIMIT    3

struct race {
    struct tally *t;
    atomic_int   held;       /* clients this test holds right now */
    atomic_int   max_held;   /* the most it ever held at once */
    atomic_int   taken;      /* successful takes */
};

static void *
race_main(void *arg)
{
    struct race *r = arg;
    int i, now, max;

    for (i = 0; i < ROUNDS; i++) {
        if (!tally_take(r->t, LIMIT, MANY)) {
            continue;
        }
        atomic_fetch_add(&r->taken, 1);
        now = atomic_fetch_add(&r->held, 1) + 1;
        max = atomic_load(&r->max_held);
        while (now > max &&
               !atomic_compare_exchange_weak(&r->max_held, &max, now)) {
        }
        atomic_fetch_sub(&r->held, 1);
        tally_give(r->t);
    }
    return NULL;
}

/* Racing takers never squeeze past the limit, and every give is seen:
 * the limit still admits exactly LIMIT clients afterwards. */
static void
test_racing_takers_respect_limit(void **state)
{
    pthread_t th[NTHREADS];
    struct race r;
    int i;

    (void)state;
    r.t = tally_acquire("race");
    assert_non_null(r.t);
    atomic_init(&r.held, 0);
    atomic_init(&r.max_held, 0);
    atomic_init(&r.taken, 0);
    for (i = 0; i < NTHREADS; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, race_main, &r), 0);
    }
    for (i = 0; i < NTHREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
    }
    assert_true(atomic_load(&r.max_held) <= LIMIT);
    assert_true(atomic_load(&r.taken) > 0);
    take_n(r.t, LIMIT, LIMIT, MANY);
    assert_false(tally_take(r.t, LIMIT, MANY));
    give_n(r.t, LIMIT);
    tally_release(&r.t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_name_same_count),
        cmocka_unit_test(test_pool_limit),
        cmocka_unit_test(test_pool_limit_zero_is_none),
        cmocka_unit_test(test_total_spans_pools),
        cmocka_unit_test(test_total_zero_refuses_all),
        cmocka_unit_test(test_refusals_count_nothing),
        cmocka_unit_test(test_value_bytes_limit),
        cmocka_unit_test(test_output_bytes_follow_changes),
        cmocka_unit_test(test_racing_takers_respect_limit),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
