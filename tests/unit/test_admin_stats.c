/*
 * admin_stats tests: twemproxy's stats JSON through admin_stats_render()
 * on a snapshot of real workers (workers_fixture.h), and -D's table.
 */
#include "memring/admin_stats.h"

#include "memring/reload.h"
#include "memring/snapshot.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "workers_fixture.h"

static const char *
render(const struct admin_stats_source *src)
{
    assert_int_equal(wf_take(), 0);
    assert_int_equal(admin_stats_render(wf_out(), &wf.snap, src), 0);
    return wf_text();
}

/* The head: twemproxy's fields from the source, then memring's. */
static void
test_head(void **state)
{
    struct admin_stats_source src = {
        .host = "h\"1", .now_usec = 1700000090500000u,
        .started_usec = 1700000000000000u,
    };
    struct reload_stats rs = { .reloads = 2, .failed = 3 };
    const char *t;

    (void)state;
    wf.w[0].pools[0]->stats.total_connections = 5;
    wf.w[0].pools[0]->stats.client_connections = 1;
    wf.w[1].pools[0]->stats.client_connections = 2;
    wf_server(1, 0)->stats.server_connections = 4;
    t = render(&src);
    assert_true(strncmp(t, "{\"service\":\"memring\",\"source\":\"h\\\"1\","
                           "\"version\":\"" MEMRING_VERSION "\","
                           "\"uptime\":90,\"timestamp\":1700000090,"
                           "\"total_connections\":5,"
                           "\"curr_connections\":7,"
                           "\"memring_workers\":2,\"alpha\":{", 150) == 0);
    assert_int_equal(t[wf.out.len - 1], '\n');
    assert_int_equal(t[wf.out.len - 2], '}');

    src.reloads = &rs;
    t = render(&src);
    assert_non_null(strstr(t, "\"memring_workers\":2,\"memring_reloads\":2,"
                              "\"memring_reload_failures\":3,\"alpha\":{"));
}

/* Per server: twemproxy's fields, memring's, then the liveness pair. */
static void
test_server_fields(void **state)
{
    const struct admin_stats_source src = { .host = "h" };
    const char *t;

    (void)state;
    assert_true(wf_eject_for(0, 30000));
    wf_server(0, 1)->stats.server_returns = 9;
    t = render(&src);
    assert_non_null(strstr(t, "\"beta\":{\"server_eof\":0,"));
    assert_non_null(strstr(t, "\"memring_server_returns\":0,"
                              "\"memring_latency_count\":0,"));
    assert_non_null(strstr(t, "\"memring_latency_p99_us\":0,"
                              "\"memring_ejected\":1,\"memring_live\":0}"));
    assert_non_null(strstr(t, "\"memring_server_returns\":9,"));
    assert_non_null(strstr(t, "\"memring_ejected\":0,\"memring_live\":1}}}"));
}

/* The describe table lists each twemproxy field once, unprefixed. */
static void
test_describe(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    (void)state;
    assert_non_null(f);
    admin_stats_describe(f);
    fclose(f);
    assert_non_null(strstr(text, "pool stats:\n  client_eof "));
    assert_non_null(strstr(text, "\nserver stats:\n  server_eof "));
    assert_non_null(strstr(text, "  memring_cmd_get "));
    assert_non_null(strstr(text, "  memring_live "));
    assert_null(strstr(text, "memring_client_eof"));
    free(text);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_head, wf_setup_two,
                                        wf_teardown),
        cmocka_unit_test_setup_teardown(test_server_fields, wf_setup_one,
                                        wf_teardown),
        cmocka_unit_test(test_describe),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
