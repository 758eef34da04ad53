/*
 * admin_config tests: /config through admin_config_render() on a snapshot
 * of real workers (workers_fixture.h).
 */
#include "memring/admin_config.h"

#include "memring/snapshot.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "workers_fixture.h"

static const char *
render(uint64_t loaded_usec)
{
    assert_int_equal(wf_take(), 0);
    assert_int_equal(admin_config_render(wf_out(), &wf.snap, loaded_usec),
                     0);
    return wf_text();
}

/* The head, one ring per worker, and each server's state. */
static void
test_config(void **state)
{
    const char *t, *p;
    char *end;
    unsigned long long retry;

    (void)state;
    assert_true(wf_eject_for(0, 30000));
    wf.w[1].pools[0]->nejected = 1;
    wf_server(1, 1)->retry_at = wf_now(1) + 5000;
    wf_server(1, 0)->stats.server_ejected_at = 77;
    t = render(1700000000123456u);
    wf.w[1].pools[0]->nejected = 0;
    assert_true(strncmp(t, "{\"file\":\"t.yml\",\"loaded_at\":1700000000,"
                           "\"loaded_at_utc\":\"2023-11-14T22:13:20Z\","
                           "\"version\":\"" MEMRING_VERSION "\","
                           "\"workers\":2,\"pools\":[{\"name\":\"alpha\",",
                           120) == 0);
    assert_non_null(strstr(t, "\"ring\":[{\"worker\":0,\"npoints\":320,"
                              "\"live_servers\":2,\"ejected_servers\":0},"
                              "{\"worker\":1,\"npoints\":320,"
                              "\"live_servers\":1,\"ejected_servers\":1}],"));
    /* the soonest return over the workers: each loop's clock may be a
     * millisecond on from worker 0's, which ejected it */
    p = strstr(t, "\"live\":false,\"ejected\":true,\"retry_in_ms\":");
    assert_non_null(p);
    retry = strtoull(strstr(p, "retry_in_ms") + 13, &end, 10);
    assert_in_range(retry, 29000, 30000);
    assert_true(strncmp(end, ",\"ejected_at\":77,\"connect_backoff\":false}",
                        40) == 0);
    assert_non_null(strstr(t, "\"text\":\"127.0.0.1:11211:1\","
                              "\"live\":false,\"ejected\":false,"
                              "\"retry_in_ms\":null,\"ejected_at\":0,"
                              "\"connect_backoff\":true}]}]}\n"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config, wf_setup_two,
                                        wf_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
