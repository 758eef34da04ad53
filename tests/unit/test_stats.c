/*
 * stats tests: the latency histogram (buckets, merge, quantiles), the
 * metric tables' shape and the wall clock, through stats.h.
 */
#include "memring/stats.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/time.h>

#include <cmocka.h>

#define COUNT_ONE(name, type, desc) +1
#define STATS_NAME(name, type, desc) #name,

static const char *const pool_names[] = { POOL_METRICS(STATS_NAME) };
static const char *const server_names[] = { SERVER_METRICS(STATS_NAME) };

static void
test_bounds_ascend(void **state)
{
    uint32_t i;

    (void)state;
    assert_int_equal(stats_hist_bounds_us[0], 10);
    assert_int_equal(stats_hist_bounds_us[STATS_HIST_NBOUNDS - 1], 5000000);
    for (i = 1; i < STATS_HIST_NBOUNDS; i++) {
        assert_true(stats_hist_bounds_us[i] > stats_hist_bounds_us[i - 1]);
    }
}

/* A value goes in the first bucket whose upper bound it does not pass. */
static void
test_hist_add_buckets(void **state)
{
    struct stats_hist h;
    uint32_t i;

    (void)state;
    memset(&h, 0, sizeof(h));
    stats_hist_add(&h, 0);
    stats_hist_add(&h, 10);         /* on a bound: that bucket */
    stats_hist_add(&h, 11);         /* just past: the next one */
    stats_hist_add(&h, 5000000);
    stats_hist_add(&h, 5000001);    /* slower than every bound */
    stats_hist_add(&h, UINT32_MAX);
    assert_int_equal(h.count, 6);
    assert_int_equal(h.sum_us, 0 + 10 + 11 + 5000000 + 5000001 +
                                   (uint64_t)UINT32_MAX);
    assert_int_equal(h.buckets[0], 2);
    assert_int_equal(h.buckets[1], 1);
    assert_int_equal(h.buckets[STATS_HIST_NBOUNDS - 1], 1);
    assert_int_equal(h.buckets[STATS_HIST_NBOUNDS], 2);
    for (i = 2; i < STATS_HIST_NBOUNDS - 1; i++) {
        assert_int_equal(h.buckets[i], 0);
    }
}

/* Every bound lands in its own bucket, and bound + 1 in the next. */
static void
test_hist_every_bound(void **state)
{
    struct stats_hist h;
    uint32_t i;

    (void)state;
    for (i = 0; i < STATS_HIST_NBOUNDS; i++) {
        memset(&h, 0, sizeof(h));
        stats_hist_add(&h, stats_hist_bounds_us[i]);
        stats_hist_add(&h, stats_hist_bounds_us[i] + 1);
        assert_int_equal(h.buckets[i], 1);
        assert_int_equal(h.buckets[i + 1], 1);
    }
}

static void
test_hist_merge(void **state)
{
    struct stats_hist a, b, none;
    uint32_t i;

    (void)state;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    memset(&none, 0, sizeof(none));
    stats_hist_add(&a, 5);
    stats_hist_add(&a, 700);
    stats_hist_add(&b, 5);
    stats_hist_add(&b, 9000000);
    stats_hist_merge(&a, &b);
    assert_int_equal(a.count, 4);
    assert_int_equal(a.sum_us, 5 + 700 + 5 + 9000000);
    assert_int_equal(a.buckets[0], 2);
    assert_int_equal(a.buckets[6], 1);     /* 700 <= 1000 */
    assert_int_equal(a.buckets[STATS_HIST_NBOUNDS], 1);
    /* b is untouched; merging an empty one changes nothing */
    assert_int_equal(b.count, 2);
    stats_hist_merge(&a, &none);
    assert_int_equal(a.count, 4);
    for (i = 0; i < STATS_HIST_NBUCKETS; i++) {
        assert_int_equal(none.buckets[i], 0);
    }
}

static void
test_quantile_empty(void **state)
{
    struct stats_hist h;

    (void)state;
    memset(&h, 0, sizeof(h));
    assert_int_equal(stats_hist_quantile(&h, 0.5), 0);
    assert_int_equal(stats_hist_quantile(&h, 0.99), 0);
}

/* 90 fast requests (<= 10 us) and 10 slow ones (<= 1 ms): the median is
 * the fast bucket's bound, p95 and p99 the slow one's. */
static void
test_quantile_upper_bounds(void **state)
{
    struct stats_hist h;
    int i;

    (void)state;
    memset(&h, 0, sizeof(h));
    for (i = 0; i < 90; i++) {
        stats_hist_add(&h, 3);
    }
    for (i = 0; i < 10; i++) {
        stats_hist_add(&h, 800);
    }
    assert_int_equal(stats_hist_quantile(&h, 0.0), 10);
    assert_int_equal(stats_hist_quantile(&h, 0.5), 10);
    assert_int_equal(stats_hist_quantile(&h, 0.85), 10);
    assert_int_equal(stats_hist_quantile(&h, 0.95), 1000);
    assert_int_equal(stats_hist_quantile(&h, 0.99), 1000);
    /* q >= 1 is the slowest request's bucket, not past it */
    assert_int_equal(stats_hist_quantile(&h, 1.0), 1000);
    assert_int_equal(stats_hist_quantile(&h, 2.0), 1000);
}

/* The open last bucket reports the largest finite bound. */
static void
test_quantile_open_bucket(void **state)
{
    struct stats_hist h;

    (void)state;
    memset(&h, 0, sizeof(h));
    stats_hist_add(&h, 60000000);   /* a minute */
    assert_int_equal(stats_hist_quantile(&h, 0.5),
                     stats_hist_bounds_us[STATS_HIST_NBOUNDS - 1]);
}

/* Each metric is one uint64_t field, in the order of the table, and no
 * name is there twice (the admin prints them as JSON keys). */
static void
test_tables(void **state)
{
    size_t npool = 0 POOL_METRICS(COUNT_ONE);
    size_t nserver = 0 SERVER_METRICS(COUNT_ONE);
    size_t i, j;

    (void)state;
    assert_int_equal(sizeof(struct pool_stats), npool * sizeof(uint64_t));
    assert_int_equal(sizeof(struct server_stats),
                     nserver * sizeof(uint64_t));
    assert_int_equal(offsetof(struct pool_stats, client_eof), 0);
    assert_int_equal(offsetof(struct server_stats, server_eof), 0);
    /* twemproxy's fields first, memring's additions after them */
    assert_string_equal(pool_names[5], "fragments");
    assert_string_equal(server_names[12], "out_queue_bytes");
    for (i = 0; i < npool; i++) {
        for (j = i + 1; j < npool; j++) {
            assert_string_not_equal(pool_names[i], pool_names[j]);
        }
    }
    for (i = 0; i < nserver; i++) {
        for (j = i + 1; j < nserver; j++) {
            assert_string_not_equal(server_names[i], server_names[j]);
        }
    }
}

static void
test_now_usec(void **state)
{
    struct timeval tv;
    uint64_t a, b, ref;

    (void)state;
    gettimeofday(&tv, NULL);
    ref = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
    a = stats_now_usec();
    b = stats_now_usec();
    /* microseconds since the epoch, within a second of gettimeofday */
    assert_true(a + 1000000u > ref);
    assert_true(a < ref + 1000000u);
    assert_true(a > 1600000000ull * 1000000u);   /* after 2020 */
    assert_true(b + 1000000u > a);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounds_ascend),
        cmocka_unit_test(test_hist_add_buckets),
        cmocka_unit_test(test_hist_every_bound),
        cmocka_unit_test(test_hist_merge),
        cmocka_unit_test(test_quantile_empty),
        cmocka_unit_test(test_quantile_upper_bounds),
        cmocka_unit_test(test_quantile_open_bucket),
        cmocka_unit_test(test_tables),
        cmocka_unit_test(test_now_usec),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
