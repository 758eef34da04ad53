/*
 * admin_health tests: /healthz through admin_health_render() on a
 * snapshot of real workers (workers_fixture.h).
 */
#include "memring/admin_health.h"

#include "memring/snapshot.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "workers_fixture.h"

static const char *
render(int *status)
{
    assert_int_equal(wf_take(), 0);
    assert_int_equal(admin_health_render(wf_out(), &wf.snap, status), 0);
    return wf_text();
}

static void
test_ok(void **state)
{
    int status = 0;

    (void)state;
    assert_string_equal(render(&status),
                        "ok: 1 pools, each with a live server\n");
    assert_int_equal(status, 200);
}

/* Unhealthy: the summary, the pool's counts, then each down server with
 * its reason; a down server is named even while the pool is healthy. */
static void
test_unhealthy(void **state)
{
    int status = 0;

    (void)state;
    assert_true(wf_eject_for(0, 30000));
    health_seen(wf_server(0, 1)->health, UV_ECONNREFUSED);
    assert_string_equal(render(&status),
        "unhealthy: 1 of 1 pools have no live server\n"
        "pool alpha: no live server (1 of 2 ejected, 0 in connect backoff, "
        "1 down)\n"
        "pool alpha: server 127.0.0.1 (127.0.0.1:11211:1): down: "
        "connection refused\n");
    assert_int_equal(status, 503);

    assert_true(health_readmit(wf_server(0, 0)->health, UINT64_MAX));
    assert_string_equal(render(&status),
        "ok: 1 pools, each with a live server\n"
        "pool alpha: server 127.0.0.1 (127.0.0.1:11211:1): down: "
        "connection refused\n");
    assert_int_equal(status, 200);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ok, wf_setup_one, wf_teardown),
        cmocka_unit_test_setup_teardown(test_unhealthy, wf_setup_one,
                                        wf_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
