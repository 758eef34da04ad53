/*
 * mc_compose tests: the exact bytes of every line memring writes, requests
 * passed on (parsed first with mc_parse_req(), as the client does) and
 * reply lines; and limits_default()'s values.
 */
#include "memring/mc_compose.h"

#include "memring/buf.h"
#include "memring/limits.h"
#include "memring/mc_parse.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#define KEYS_CAP 8

static struct buf out;

static int
fixture_setup(void **state)
{
    (void)state;
    memset(&out, 0, sizeof(out));
    return 0;
}

static int
fixture_teardown(void **state)
{
    (void)state;
    buf_free(&out);
    return 0;
}

/* out holds exactly want (bytes, not a C string: out is not terminated). */
static void
assert_out(const char *want)
{
    size_t n = strlen(want);

    assert_int_equal(buf_unread(&out), n);
    assert_memory_equal(buf_head(&out), want, n);
}

/* Parses in (one request, maybe followed by more bytes) and composes it
 * as a server should get it. */
static void
compose_parsed(const char *in)
{
    struct mc_span keys[KEYS_CAP];
    struct mc_req m;

    assert_int_equal(mc_parse_req(in, strlen(in), &m, keys, KEYS_CAP),
                     PARSE_OK);
    assert_int_equal(mc_compose_request(&out, in, &m), 0);
}

/* ---------------------------------------------------------------------
 * mc_compose_request
 * ------------------------------------------------------------------- */

static void
test_request_without_noreply_is_the_clients_bytes(void **state)
{
    (void)state;
    compose_parsed("delete k\r\n");
    assert_out("delete k\r\n");
}

static void
test_request_storage_keeps_the_data_block(void **state)
{
    (void)state;
    compose_parsed("set k 5 0 3\r\nabc\r\n");
    assert_out("set k 5 0 3\r\nabc\r\n");
}

static void
test_request_stops_at_the_end_of_the_request(void **state)
{
    (void)state;
    /* pipelined bytes after the request are not its own */
    compose_parsed("set k 0 0 2\r\nhi\r\nget k\r\n");
    assert_out("set k 0 0 2\r\nhi\r\n");
}

static void
test_request_drops_noreply(void **state)
{
    (void)state;
    compose_parsed("delete k noreply\r\n");
    assert_out("delete k\r\n");
}

static void
test_request_drops_noreply_keeps_data_block(void **state)
{
    (void)state;
    compose_parsed("set k 1 60 5 noreply\r\nhello\r\nversion\r\n");
    assert_out("set k 1 60 5\r\nhello\r\n");
}

static void
test_request_drops_noreply_of_cas_and_incr(void **state)
{
    (void)state;
    compose_parsed("cas k 0 0 1 99 noreply\r\nx\r\n");
    compose_parsed("incr n 7 noreply\r\n");
    compose_parsed("flush_all 10 noreply\r\n");
    assert_out("cas k 0 0 1 99\r\nx\r\nincr n 7\r\nflush_all 10\r\n");
}

static void
test_request_noreply_with_bare_newline(void **state)
{
    (void)state;
    /* a line ending in \n alone goes on ending in \r\n */
    compose_parsed("touch k 10 noreply\n");
    assert_out("touch k 10\r\n");
}

/* ---------------------------------------------------------------------
 * Retrieval lines
 * ------------------------------------------------------------------- */

/* head, then each of keys (NULL-terminated), then eol. */
static void
compose_retrieval(enum mc_cmd cmd, int64_t exptime, const char *const *keys)
{
    assert_int_equal(mc_compose_retrieval_head(&out, cmd, exptime), 0);
    for (; *keys != NULL; keys++) {
        assert_int_equal(mc_compose_key(&out, *keys, strlen(*keys)), 0);
    }
    assert_int_equal(mc_compose_eol(&out), 0);
}

static void
test_retrieval_get_and_gets_ignore_exptime(void **state)
{
    static const char *const keys[] = { "k1", "k4", NULL };

    (void)state;
    compose_retrieval(MC_GET, 10, keys);
    compose_retrieval(MC_GETS, 10, keys);
    assert_out("get k1 k4\r\ngets k1 k4\r\n");
}

static void
test_retrieval_gat_keeps_exptime(void **state)
{
    static const char *const keys[] = { "k1", "k3", NULL };

    (void)state;
    compose_retrieval(MC_GAT, 10, keys);
    assert_out("gat 10 k1 k3\r\n");
}

static void
test_retrieval_gats_negative_and_extreme_exptime(void **state)
{
    static const char *const keys[] = { "a", NULL };

    (void)state;
    compose_retrieval(MC_GATS, -1, keys);
    compose_retrieval(MC_GAT, INT32_MIN, keys);
    compose_retrieval(MC_GAT, INT32_MAX, keys);
    assert_out("gats -1 a\r\ngat -2147483648 a\r\ngat 2147483647 a\r\n");
}

static void
test_retrieval_key_is_copied_by_length(void **state)
{
    static const char line[] = "ab cd";

    (void)state;
    assert_int_equal(mc_compose_retrieval_head(&out, MC_GET, 0), 0);
    assert_int_equal(mc_compose_key(&out, line, 2), 0);
    assert_int_equal(mc_compose_key(&out, line + 3, 2), 0);
    assert_int_equal(mc_compose_eol(&out), 0);
    assert_out("get ab cd\r\n");
}

static void
test_retrieval_of_a_parsed_gat_line(void **state)
{
    static const char in[] = "gat -5 x y\r\n";
    struct mc_span keys[KEYS_CAP];
    struct mc_req m;
    uint32_t i;

    (void)state;
    assert_int_equal(mc_parse_req(in, strlen(in), &m, keys, KEYS_CAP),
                     PARSE_OK);
    assert_int_equal(m.nkeys, 2);
    assert_int_equal(mc_compose_retrieval_head(&out, m.cmd, m.exptime), 0);
    for (i = 0; i < m.nkeys; i++) {
        assert_int_equal(mc_compose_key(&out, in + keys[i].off, keys[i].len),
                         0);
    }
    assert_int_equal(mc_compose_eol(&out), 0);
    assert_out(in);
}

/* ---------------------------------------------------------------------
 * Single lines
 * ------------------------------------------------------------------- */

static void
test_delete(void **state)
{
    (void)state;
    assert_int_equal(mc_compose_delete(&out, "kxy", 1), 0);
    assert_out("delete k\r\n");
}

static void
test_line_appends(void **state)
{
    (void)state;
    assert_int_equal(mc_compose_line(&out, "OK"), 0);
    assert_int_equal(mc_compose_line(&out, ""), 0);
    assert_int_equal(mc_compose_line(&out, "VERSION 1.6.18"), 0);
    assert_out("OK\r\n\r\nVERSION 1.6.18\r\n");
}

static void
test_server_error(void **state)
{
    (void)state;
    assert_int_equal(mc_compose_server_error(&out, "no server"), 0);
    assert_out("SERVER_ERROR no server\r\n");
}

static void
test_stat_numbers(void **state)
{
    (void)state;
    assert_int_equal(mc_compose_stat(&out, "curr_connections", 0), 0);
    assert_int_equal(mc_compose_stat(&out, "bytes", UINT64_MAX), 0);
    assert_out("STAT curr_connections 0\r\n"
               "STAT bytes 18446744073709551615\r\n");
}

static void
test_stat_text(void **state)
{
    (void)state;
    assert_int_equal(mc_compose_stat_text(&out, "version", "0.1.0"), 0);
    assert_int_equal(mc_compose_stat_text(&out, "empty", ""), 0);
    assert_out("STAT version 0.1.0\r\nSTAT empty \r\n");
}

static void
test_end_line(void **state)
{
    (void)state;
    assert_string_equal(MC_END_LINE, "END\r\n");
}

/* ---------------------------------------------------------------------
 * Key prefix
 * ------------------------------------------------------------------- */

static const struct mc_prefix app = { "app:", 4, false };
static const struct mc_prefix libmc = { "app:", 4, true };

/* Parses in and composes it with prefix p, as for a pool with one. */
static void
compose_prefixed(const char *in, const struct mc_prefix *p)
{
    struct mc_span keys[KEYS_CAP], pkeys[KEYS_CAP];
    struct mc_req m;

    assert_int_equal(mc_parse_req(in, strlen(in), &m, keys, KEYS_CAP),
                     PARSE_OK);
    if (mc_cmd_is_retrieval(m.cmd)) {
        assert_int_equal(mc_compose_retrieval_prefixed(&out, in, &m, keys,
                                                       pkeys, p), 0);
    } else {
        assert_int_equal(mc_compose_request_prefixed(&out, in, &m, keys, p),
                         0);
    }
}

static void
test_prefix_key(void **state)
{
    char k[32];

    (void)state;
    assert_int_equal(mc_prefix_key(&app, "k1", 2, k), 6);
    assert_memory_equal(k, "app:k1", 6);
    assert_int_equal(mc_prefix_key(&app, "?k", 2, k), 6);
    assert_memory_equal(k, "app:?k", 6);
    /* libmc's normalize_key(): after a leading '?' */
    assert_int_equal(mc_prefix_key(&libmc, "?k", 2, k), 6);
    assert_memory_equal(k, "?app:k", 6);
    assert_int_equal(mc_prefix_key(&libmc, "k?", 2, k), 6);
    assert_memory_equal(k, "app:k?", 6);
    assert_int_equal(mc_prefix_at(&libmc, "?", 1), 1);
    assert_int_equal(mc_prefix_at(&libmc, "", 0), 0);
}

static void
test_prefix_every_keyed_command(void **state)
{
    (void)state;
    compose_prefixed("set k 5 0 3\r\nabc\r\n", &app);
    compose_prefixed("cas k 0 0 1 77 noreply\r\nx\r\n", &app);
    compose_prefixed("delete k noreply\r\n", &app);
    compose_prefixed("incr k 1\r\n", &app);
    compose_prefixed("touch ?k 10\r\n", &libmc);
    compose_prefixed("append  k  0 0 1\r\ny\r\n", &app);
    assert_out("set app:k 5 0 3\r\nabc\r\n"
               "cas app:k 0 0 1 77\r\nx\r\n"
               "delete app:k\r\n"
               "incr app:k 1\r\n"
               "touch ?app:k 10\r\n"
               "append  app:k  0 0 1\r\ny\r\n");
}

static void
test_prefix_retrieval_line_and_spans(void **state)
{
    const char *in = "gat 10  a ?b\r\n";
    struct mc_span keys[KEYS_CAP], pkeys[KEYS_CAP];
    struct mc_req m;

    (void)state;
    buf_append(&out, "XY", 2);          /* spans count from the line */
    assert_int_equal(mc_parse_req(in, strlen(in), &m, keys, KEYS_CAP),
                     PARSE_OK);
    assert_int_equal(mc_compose_retrieval_prefixed(&out, in, &m, keys, pkeys,
                                                   &libmc), 0);
    assert_out("XYgat 10  app:a ?app:b\r\n");
    assert_int_equal(pkeys[0].off, 8);
    assert_int_equal(pkeys[0].len, 5);
    assert_int_equal(pkeys[1].off, 14);
    assert_int_equal(pkeys[1].len, 6);
    buf_reset(&out);
    compose_prefixed("get a b\r\n", &app);
    assert_out("get app:a app:b\r\n");
}

/* A server's VALUE unit as the client sees it. */
static void
unprefix(const char *unit, size_t strip, bool after_q)
{
    struct mc_rsp u;

    assert_int_equal(mc_parse_rsp(unit, strlen(unit), &u), PARSE_OK);
    assert_int_equal(u.type, MC_RSP_VALUE);
    assert_int_equal(mc_compose_value_unprefixed(&out, unit, &u, strip,
                                                 after_q), 0);
}

static void
test_prefix_value_unprefixed(void **state)
{
    (void)state;
    unprefix("VALUE app:k 5 3\r\nabc\r\n", 4, false);
    unprefix("VALUE app:?k 0 1 99\r\nx\r\n", 4, false);
    unprefix("VALUE ?app:k 0 1 99\r\nx\r\n", 4, true);
    unprefix("VALUE app:k? 0 0\r\n\r\n", 4, true);
    assert_out("VALUE k 5 3\r\nabc\r\n"
               "VALUE ?k 0 1 99\r\nx\r\n"
               "VALUE ?k 0 1 99\r\nx\r\n"
               "VALUE k? 0 0\r\n\r\n");
}

/* ---------------------------------------------------------------------
 * limits
 * ------------------------------------------------------------------- */

static void
test_limits_default(void **state)
{
    struct limits l;

    (void)state;
    memset(&l, 0xa5, sizeof(l));
    limits_default(&l);
    assert_int_equal(l.item_size_max, 8ULL * 1024 * 1024);
    assert_int_equal(l.output_max, 128ULL * 1024 * 1024);
    assert_int_equal(l.pending_output_max, 1ULL << 30);
    assert_int_equal(l.max_clients, 16384);
    assert_int_equal(l.pending_values_max, 1ULL << 30);
    assert_int_equal(l.idle_timeout_ms, 0);
    assert_int_equal(l.requests_max, 1024);
    assert_int_equal(l.get_keys_max, 100000);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fixture_setup, \
                                              fixture_teardown)
        T(test_request_without_noreply_is_the_clients_bytes),
        T(test_request_storage_keeps_the_data_block),
        T(test_request_stops_at_the_end_of_the_request),
        T(test_request_drops_noreply),
        T(test_request_drops_noreply_keeps_data_block),
        T(test_request_drops_noreply_of_cas_and_incr),
        T(test_request_noreply_with_bare_newline),
        T(test_retrieval_get_and_gets_ignore_exptime),
        T(test_retrieval_gat_keeps_exptime),
        T(test_retrieval_gats_negative_and_extreme_exptime),
        T(test_retrieval_key_is_copied_by_length),
        T(test_retrieval_of_a_parsed_gat_line),
        T(test_delete),
        T(test_line_appends),
        T(test_server_error),
        T(test_stat_numbers),
        T(test_stat_text),
        T(test_end_line),
        T(test_prefix_key),
        T(test_prefix_every_keyed_command),
        T(test_prefix_retrieval_line_and_spans),
        T(test_prefix_value_unprefixed),
        T(test_limits_default),
#undef T
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
