/*
 * snapshot tests: sums over workers, server liveness (both readings), pool
 * health per worker, rings, and the memcached "stats" sum, through
 * snapshot.h on real workers (workers_fixture.h).
 */
#include "memring/snapshot.h"

#include "memring/health.h"
#include "memring/pool.h"
#include "memring/stats.h"
#include "memring/worker.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "workers_fixture.h"

/* Counters and gauges add up over workers, a timestamp keeps the latest,
 * histograms merge; a server is found by name in a worker whose servers
 * are in another order. */
static void
test_sum_over_workers(void **state)
{
    struct pool *p0 = wf.w[0].pools[0], *p1 = wf.w[1].pools[0];
    struct server *tmp;
    const struct snapshot_pool *sp;

    (void)state;
    p0->stats.cmd_get = 3;
    p1->stats.cmd_get = 4;
    p1->stats.client_connections = 2;
    wf_server(0, 1)->stats.server_ejected_at = 9000000;
    wf_server(1, 1)->stats.server_ejected_at = 5000000;
    wf_server(0, 1)->stats.requests = 100;
    wf_server(1, 1)->stats.requests = 11;
    wf_server(1, 0)->stats.requests = 7;
    stats_hist_add(&p0->latency, 40);
    stats_hist_add(&p1->latency, 3000);
    /* worker 1 holds its servers the other way round */
    tmp = p1->servers[0];
    p1->servers[0] = p1->servers[1];
    p1->servers[1] = tmp;

    assert_int_equal(wf_take(), 0);
    p1->servers[1] = p1->servers[0];
    p1->servers[0] = tmp;
    assert_int_equal(wf.snap.nworkers, 2);
    assert_int_equal(wf.snap.npools, 1);
    sp = &wf.snap.pools[0];
    assert_ptr_equal(sp->ref, p0);
    assert_int_equal(sp->stats.cmd_get, 7);
    assert_int_equal(sp->stats.client_connections, 2);
    assert_int_equal(sp->latency.count, 2);
    assert_int_equal(sp->latency.sum_us, 3040);
    assert_int_equal(sp->nservers, 2);
    assert_ptr_equal(sp->servers[1].ref, wf_server(0, 1));
    assert_int_equal(sp->servers[1].stats.server_ejected_at, 9000000);
    assert_int_equal(sp->servers[1].stats.requests, 111);
    assert_int_equal(sp->servers[0].stats.requests, 7);
}

/* Ejected first, then backoff, then down, and down only when asked. */
static void
test_liveness(void **state)
{
    struct server *s = wf_server(0, 0);
    uint64_t now = wf_now(0);

    (void)state;
    assert_int_equal(snapshot_liveness(s, now, true), SNAPSHOT_LIVE);
    health_seen(s->health, UV_ECONNREFUSED);
    assert_int_equal(snapshot_liveness(s, now, true), SNAPSHOT_DOWN);
    assert_int_equal(snapshot_liveness(s, now, false), SNAPSHOT_LIVE);
    s->retry_at = now + 1000;
    assert_int_equal(snapshot_liveness(s, now, true), SNAPSHOT_BACKOFF);
    assert_int_equal(snapshot_liveness(s, now, false), SNAPSHOT_BACKOFF);
    assert_true(wf_eject_for(0, 30000));
    assert_int_equal(snapshot_liveness(s, now, true), SNAPSHOT_EJECTED);
    assert_int_equal(snapshot_liveness(s, now + 30000, false),
                     SNAPSHOT_LIVE);    /* due back: live */
}

/* A server the probe found down keeps the pool unhealthy (healthz) but
 * still counts as live for the gauges, as each always did. */
static void
test_down_is_healthz_only(void **state)
{
    const struct snapshot_pool *sp;

    (void)state;
    assert_true(wf_eject_for(1, 30000));
    health_seen(wf_server(0, 0)->health, UV_ECONNREFUSED);
    assert_int_equal(wf_take(), 0);
    sp = &wf.snap.pools[0];
    assert_false(sp->healthy);
    assert_int_equal(sp->nejected, 1);
    assert_int_equal(sp->nbackoff, 0);
    assert_int_equal(sp->ndown, 1);
    assert_true(sp->servers[0].live);
    assert_int_equal(sp->servers[0].down, UV_ECONNREFUSED);
    assert_false(sp->servers[1].live);
    assert_true(sp->servers[1].ejected);
    assert_int_equal(sp->servers[1].retry_in_ms, 30000);
    assert_int_equal(sp->nlive, 1);
}

/* Backoff is per worker: one worker without a live server makes the pool
 * unhealthy, and that worker's counts are the ones reported. */
static void
test_health_per_worker(void **state)
{
    const struct snapshot_pool *sp;

    (void)state;
    assert_true(wf_eject_for(0, 30000));
    wf_server(1, 1)->retry_at = wf_now(1) + 30000;
    assert_int_equal(wf_take(), 0);
    sp = &wf.snap.pools[0];
    assert_false(sp->healthy);
    assert_int_equal(sp->nejected, 1);
    assert_int_equal(sp->nbackoff, 1);
    assert_true(sp->servers[1].backoff);
    assert_false(sp->servers[1].live);
    assert_int_equal(sp->nlive, 0);

    wf_server(1, 1)->retry_at = 0;
    assert_int_equal(wf_take(), 0);
    assert_true(wf.snap.pools[0].healthy);
    assert_int_equal(wf.snap.pools[0].nlive, 1);
}

/* One ring per worker, in worker order, from each worker's own pool. */
static void
test_rings(void **state)
{
    const struct snapshot_pool *sp;

    (void)state;
    wf.w[1].pools[0]->nejected = 1;
    assert_int_equal(wf_take(), 0);
    wf.w[1].pools[0]->nejected = 0;
    sp = &wf.snap.pools[0];
    assert_int_equal(sp->nrings, 2);
    assert_int_equal(sp->rings[0].worker, 0);
    assert_int_equal(sp->rings[0].live_servers, 2);
    assert_int_equal(sp->rings[0].ejected_servers, 0);
    assert_int_equal(sp->rings[1].worker, 1);
    assert_int_equal(sp->rings[1].live_servers, 1);
    assert_int_equal(sp->rings[1].ejected_servers, 1);
    assert_int_equal(sp->rings[1].npoints, sp->rings[0].npoints);
    assert_true(sp->rings[0].npoints > 0);
}

/* memcached's "stats": no sum without w->all, else summed over every
 * worker under each one's lock. */
static void
test_pool_stats(void **state)
{
    struct pool *p0 = wf.w[0].pools[0], *p1 = wf.w[1].pools[0];
    struct pool_stats sum;

    (void)state;
    p0->stats.cmd_set = 5;
    p1->stats.cmd_set = 6;
    assert_int_equal(snapshot_pool_totals(&wf.w[1], p1, &sum), UV_ENOENT);
    wf.w[0].all = wf.w[1].all = wf.wp;
    wf.w[0].nall = wf.w[1].nall = 2;
    assert_int_equal(snapshot_pool_totals(&wf.w[1], p1, &sum), 0);
    assert_int_equal(sum.cmd_set, 11);
    assert_int_equal(snapshot_pool_totals(&wf.w[0], p0, &sum), 0);
    assert_int_equal(sum.cmd_set, 11);
    wf.w[0].all = wf.w[1].all = NULL;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sum_over_workers,
                                        wf_setup_two, wf_teardown),
        cmocka_unit_test_setup_teardown(test_liveness, wf_setup_one,
                                        wf_teardown),
        cmocka_unit_test_setup_teardown(test_down_is_healthz_only,
                                        wf_setup_one, wf_teardown),
        cmocka_unit_test_setup_teardown(test_health_per_worker,
                                        wf_setup_two, wf_teardown),
        cmocka_unit_test_setup_teardown(test_rings, wf_setup_two,
                                        wf_teardown),
        cmocka_unit_test_setup_teardown(test_pool_stats, wf_setup_two,
                                        wf_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
