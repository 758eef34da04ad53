/*
 * metrics tests: the /metrics text from its family table, through
 * metrics_render() on a snapshot of real workers (workers_fixture.h).
 */
#include "memring/metrics.h"

#include "memring/reload.h"
#include "memring/snapshot.h"
#include "memring/stats.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "workers_fixture.h"

static const struct metrics_source src = {
    .now_usec = 1700000090000000u,
    .started_usec = 1700000000000000u,
    .admin_conns = 2,
    .admin_served = 3,
    .admin_refused = 4,
    .admin_bad = 5,
    .admin_timedout = 6,
};

static const char *
render(const struct metrics_source *s)
{
    assert_int_equal(wf_take(), 0);
    assert_int_equal(metrics_render(wf_out(), &wf.snap, s), 0);
    return wf_text();
}

/* The process's families come first, in the table's order, each with
 * its HELP and TYPE; the reload families only with reload counters. */
static void
test_process_families(void **state)
{
    struct reload_stats rs = { .reloads = 7, .failed = 1 };
    struct metrics_source with = src;
    const char *t;

    (void)state;
    t = render(&src);
    assert_true(strncmp(t,
        "# HELP memring_build_info memring's version, as a label.\n"
        "# TYPE memring_build_info gauge\n"
        "memring_build_info{version=\"" MEMRING_VERSION "\"} 1\n"
        "# HELP memring_uptime_seconds Seconds since memring started.\n"
        "# TYPE memring_uptime_seconds gauge\n"
        "memring_uptime_seconds 90\n"
        "# HELP memring_workers Worker threads.\n"
        "# TYPE memring_workers gauge\n"
        "memring_workers 1\n"
        "# HELP memring_admin_connections ", 300) == 0);
    assert_non_null(strstr(t, "\nmemring_admin_connections 2\n"));
    assert_non_null(strstr(t, "\nmemring_admin_connections_total 3\n"));
    assert_non_null(strstr(t, "\nmemring_admin_refused_total 4\n"));
    assert_non_null(strstr(t, "\nmemring_admin_bad_requests_total 5\n"));
    assert_non_null(strstr(t, "\nmemring_admin_timeouts_total 6\n"));
    assert_null(strstr(t, "memring_reloads_total"));

    with.reloads = &rs;
    t = render(&with);
    assert_non_null(strstr(t, "# TYPE memring_reloads_total counter\n"
                              "memring_reloads_total 7\n"));
    assert_non_null(strstr(t, "\nmemring_reload_failures_total 1\n"
                              "# HELP memring_admin_connections "));
}

/* Field families: names made from the field, "# " read as "Number of",
 * timestamps in seconds; one sample per pool or server. */
static void
test_field_families(void **state)
{
    const char *t;

    (void)state;
    wf.w[0].pools[0]->stats.total_connections = 12;
    wf_server(0, 0)->stats.server_ejected_at = 2500;
    wf_server(0, 1)->stats.server_eof = 3;
    t = render(&src);
    assert_non_null(strstr(t,
        "# HELP memring_pool_client_eof_total Number of eof on client "
        "connections.\n# TYPE memring_pool_client_eof_total counter\n"
        "memring_pool_client_eof_total{pool=\"alpha\"} 0\n"));
    assert_non_null(strstr(t, "\nmemring_pool_connections_total{"
                              "pool=\"alpha\"} 12\n"));
    assert_non_null(strstr(t,
        "# HELP memring_server_ejected_at_seconds server_ejected_at, in "
        "seconds since the epoch (0: never).\n"
        "# TYPE memring_server_ejected_at_seconds gauge\n"
        "memring_server_ejected_at_seconds{pool=\"alpha\",server=\"beta\"} "
        "0.0025\n"
        "memring_server_ejected_at_seconds{pool=\"alpha\","
        "server=\"127.0.0.1\"} 0\n"));
    assert_non_null(strstr(t, "\nmemring_server_eof_total{pool=\"alpha\","
                              "server=\"127.0.0.1\"} 3\n"));
    assert_non_null(strstr(t, "# HELP memring_server_request_bytes_total "
                              "total request bytes.\n"));
    assert_null(strstr(t, "server_server_"));
}

/* The derived families read the snapshot's liveness: a server the probe
 * found down is live for the gauges but not for pool_healthy. */
static void
test_derived_families(void **state)
{
    static const char last[] = "memring_server_request_duration_seconds_"
                               "count{pool=\"alpha\",server=\"127.0.0.1\"} "
                               "1\n";
    const char *t;

    (void)state;
    assert_true(wf_eject_for(0, 30000));
    health_seen(wf_server(0, 1)->health, UV_ECONNREFUSED);
    stats_hist_add(&wf_server(0, 1)->latency, 30);
    t = render(&src);
    assert_non_null(strstr(t, "\nmemring_pool_servers{pool=\"alpha\"} 2\n"));
    assert_non_null(strstr(t, "\nmemring_pool_live_servers{pool=\"alpha\"} "
                              "1\n"));
    assert_non_null(strstr(t, "\nmemring_pool_healthy{pool=\"alpha\"} 0\n"));
    assert_non_null(strstr(t, "\nmemring_server_ejected{pool=\"alpha\","
                              "server=\"beta\"} 1\n"));
    assert_non_null(strstr(t, "\nmemring_server_live{pool=\"alpha\","
                              "server=\"127.0.0.1\"} 1\n"));
    assert_non_null(strstr(t,
        "memring_server_request_duration_seconds_bucket{pool=\"alpha\","
        "server=\"127.0.0.1\",le=\"0.000025\"} 0\n"
        "memring_server_request_duration_seconds_bucket{pool=\"alpha\","
        "server=\"127.0.0.1\",le=\"0.00005\"} 1\n"));
    assert_non_null(strstr(t,
        "memring_server_request_duration_seconds_sum{pool=\"alpha\","
        "server=\"127.0.0.1\"} 0.00003\n"
        "memring_server_request_duration_seconds_count{pool=\"alpha\","
        "server=\"127.0.0.1\"} 1\n"));
    /* the last family ends the document */
    assert_true(wf.out.len > strlen(last));
    assert_string_equal(t + wf.out.len - strlen(last), last);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_process_families, wf_setup_one,
                                        wf_teardown),
        cmocka_unit_test_setup_teardown(test_field_families, wf_setup_one,
                                        wf_teardown),
        cmocka_unit_test_setup_teardown(test_derived_families, wf_setup_one,
                                        wf_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
