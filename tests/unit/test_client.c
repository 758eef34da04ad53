/*
 * client tests: a real TCP connection from the test to a pool's listener
 * (client_accept_cb), the pool's two servers fake memcacheds on the same
 * loop (fake_mc.h) that answer from their own items: server "a" holds
 * "A-<key>" under each key routed to it, server "b" "B-<key>", so that a
 * reply tells which server answered. Replies are checked byte for byte,
 * in order.
 */
#include "memring/client.h"

#include "memring/conf.h"
#include "memring/ioloop.h"
#include "memring/limits.h"
#include "memring/listener.h"
#include "memring/pool.h"
#include "memring/server.h"

#include "fake_mc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#define NKEYS 8     /* keys picked per server */

struct fixture {
    struct fake_mc   fa;          /* servers[0], named "a" */
    struct fake_mc   fb;          /* servers[1], named "b" */
    struct fake_pool fp;          /* io, conf, the pool, its port */
    struct fake_peer peer;        /* the test's client connection */
    size_t           seen;        /* bytes of peer.in already checked */
    char             ka[NKEYS][16];  /* keys that route to a */
    char             kb[NKEYS][16];  /* ... to b */
};

static struct fixture fx;

/* Picks NKEYS keys for each server and stores them in its fake. */
static int
pick_keys(void)
{
    uint32_t i, na = 0, nb = 0;
    char key[16], value[32];

    for (i = 0; i < 10000 && (na < NKEYS || nb < NKEYS); i++) {
        struct server *s;
        snprintf(key, sizeof(key), "k%u", i);
        s = pool_route(fx.fp.pool, key, strlen(key));
        if (s == fx.fp.pool->servers[0] && na < NKEYS) {
            snprintf(fx.ka[na++], sizeof(fx.ka[0]), "%s", key);
            snprintf(value, sizeof(value), "A-%s", key);
            if (fake_mc_put(&fx.fa, key, value) != 0) {
                return -1;
            }
        } else if (s == fx.fp.pool->servers[1] && nb < NKEYS) {
            snprintf(fx.kb[nb++], sizeof(fx.kb[0]), "%s", key);
            snprintf(value, sizeof(value), "B-%s", key);
            if (fake_mc_put(&fx.fb, key, value) != 0) {
                return -1;
            }
        }
    }
    return na == NKEYS && nb == NKEYS ? 0 : -1;
}

static bool
has_client(void *arg)
{
    (void)arg;
    return !TAILQ_EMPTY(&fx.fp.io.clients);
}

static int
setup_with(void **state, const struct limits *limits)
{
    char yaml[512];

    memset(&fx, 0, sizeof(fx));
    fx.peer.fd = -1;
    if (fake_pool_init(&fx.fp, limits) != 0 ||
        fake_mc_start(&fx.fa, &fx.fp.io.loop, FAKE_MC_AUTO, NULL) != 0 ||
        fake_mc_start(&fx.fb, &fx.fp.io.loop, FAKE_MC_AUTO, NULL) != 0) {
        return -1;
    }
    snprintf(yaml, sizeof(yaml),
             "alpha:\n"
             "  listen: 127.0.0.1:22121\n"
             "  servers:\n"
             "   - 127.0.0.1:%u:1 a\n"
             "   - 127.0.0.1:%u:1 b\n", fx.fa.port, fx.fb.port);
    if (fake_pool_open(&fx.fp, yaml, client_accept_cb) != 0 ||
        strcmp(fx.fp.pool->servers[0]->cs->name, "a") != 0 ||
        pick_keys() != 0 ||
        fake_peer_connect(&fx.peer, fx.fp.port, NULL) != 0 ||
        !fake_run_until(&fx.fp.io.loop, has_client, NULL, FAKE_WAIT_MS)) {
        return -1;
    }
    *state = &fx;
    return 0;
}

/* Default limits but for requests_max and item_size_max (0: default). */
static int
setup_limits(void **state, uint32_t requests_max, uint64_t item_size_max)
{
    struct limits limits;

    limits_default(&limits);
    if (requests_max != 0) {
        limits.requests_max = requests_max;
    }
    if (item_size_max != 0) {
        limits.item_size_max = item_size_max;
    }
    return setup_with(state, &limits);
}

static int
setup(void **state)
{
    return setup_limits(state, 0, 0);
}

static int
setup_window4(void **state)
{
    return setup_limits(state, 4, 0);
}

static int
setup_item100(void **state)
{
    return setup_limits(state, 0, 100);
}

static int
teardown(void **state)
{
    bool ok;

    (void)state;
    fake_peer_close(&fx.peer);
    ok = fake_mc_stop(&fx.fa);
    ok &= fake_mc_stop(&fx.fb);
    ok &= fake_pool_close(&fx.fp);
    return ok ? 0 : -1;
}

static void
send_str(const char *s)
{
    assert_int_equal(fake_peer_send_str(&fx.peer, s), 0);
}

/* The next bytes the client gets are exactly want (nothing more follows
 * within a few ms). */
static void
expect_n(const char *want, size_t len)
{
    assert_true(fake_peer_wait(&fx.fp.io.loop, &fx.peer, fx.seen + len,
                               FAKE_WAIT_MS));
    fake_run_for(&fx.fp.io.loop, 5);
    fake_peer_poll(&fx.peer);
    assert_int_equal(fx.peer.in.len - fx.seen, len);
    assert_memory_equal(fx.peer.in.data + fx.seen, want, len);
    fx.seen += len;
}

static void
expect(const char *want)
{
    expect_n(want, strlen(want));
}

static void
expect_buf(const struct buf *want)
{
    expect_n(buf_head(want), buf_unread(want));
}

/* Nothing arrives for ms. */
static void
expect_nothing(uint32_t ms)
{
    fake_run_for(&fx.fp.io.loop, ms);
    fake_peer_poll(&fx.peer);
    assert_int_equal(fx.peer.in.len, fx.seen);
    assert_false(fx.peer.eof);
}

/* The VALUE block its server's fake answers for key. */
static void
append_value(struct buf *b, const char *key)
{
    struct server *s = pool_route(fx.fp.pool, key, strlen(key));
    char line[96];

    snprintf(line, sizeof(line), "VALUE %s 0 %zu\r\n%c-%s\r\n", key,
             strlen(key) + 2, s == fx.fp.pool->servers[0] ? 'A' : 'B', key);
    assert_int_equal(buf_append_str(b, line), 0);
}

/* "get key\r\n"'s reply. */
static void
append_get(struct buf *b, const char *key)
{
    append_value(b, key);
    assert_int_equal(buf_append_str(b, "END\r\n"), 0);
}

/* ---------------------------------------------------------------------
 * Order
 * ------------------------------------------------------------------- */

/* With server a holding its answers, "get <a's key>" then "get <b's
 * key>": both reach their servers, b answers, the client gets nothing. */
static void
send_two_gets_a_slow(bool half_close)
{
    char req[64];

    fx.fa.hold = true;
    snprintf(req, sizeof(req), "get %s\r\nget %s\r\n", fx.ka[0], fx.kb[0]);
    send_str(req);
    if (half_close) {
        assert_int_equal(shutdown(fx.peer.fd, SHUT_WR), 0);
    }
    assert_true(fake_mc_wait_bytes(&fx.fb, 6 + strlen(fx.kb[0]),
                                   FAKE_WAIT_MS));
    assert_true(fake_mc_wait_bytes(&fx.fa, 6 + strlen(fx.ka[0]),
                                   FAKE_WAIT_MS));
    assert_int_equal(fx.fb.nanswered, 1);
    assert_int_equal(fx.fa.nanswered, 0);
    expect_nothing(20);
}

/* Server a answers now: both replies arrive, a's first. */
static void
release_a_expect_two_replies(void)
{
    struct buf want = BUF_INIT;

    fake_mc_release(&fx.fa);
    append_get(&want, fx.ka[0]);
    append_get(&want, fx.kb[0]);
    expect_buf(&want);
    buf_free(&want);
}

/* Server a is slow: b answers the later request first, yet the client
 * gets the replies in request order. */
static void
test_order_when_later_answered_first(void **state)
{
    (void)state;
    send_two_gets_a_slow(false);
    release_a_expect_two_replies();
    assert_int_equal(fx.fp.pool->stats.get_hits, 2);
    assert_false(fx.peer.eof);
}

/* A storage command and a delete through the proxy, each to its server. */
static void
test_set_get_delete(void **state)
{
    char req[128], want[128];

    (void)state;
    snprintf(req, sizeof(req), "set %s 0 0 2\r\nhi\r\nget %s\r\n"
             "delete %s\r\nget %s\r\n", fx.kb[1], fx.kb[1], fx.kb[1],
             fx.kb[1]);
    send_str(req);
    snprintf(want, sizeof(want), "STORED\r\nVALUE %s 0 2\r\nhi\r\nEND\r\n"
             "DELETED\r\nEND\r\n", fx.kb[1]);
    expect(want);
    assert_int_equal(fx.fa.nanswered, 0);
    assert_int_equal(fx.fb.nanswered, 4);
    assert_int_equal(fx.fp.pool->stats.cmd_set, 1);
    assert_int_equal(fx.fp.pool->stats.cmd_delete, 1);
    assert_int_equal(fx.fp.pool->stats.cmd_get, 2);
}

/* ---------------------------------------------------------------------
 * Local replies
 * ------------------------------------------------------------------- */

static void
test_local_replies(void **state)
{
    (void)state;
    send_str("version\r\nverbosity 1\r\nverbosity 1 noreply\r\nbogus\r\n"
             "stats items\r\n");
    expect("VERSION 1.6.0-memring-" MEMRING_VERSION "\r\nOK\r\nERROR\r\n"
           "ERROR\r\n");
    assert_int_equal(fake_mc_received(&fx.fa), 0);
    assert_int_equal(fake_mc_received(&fx.fb), 0);
    assert_int_equal(fx.fp.pool->stats.cmd_other, 4);
    assert_int_equal(fx.fp.pool->stats.request_errors, 2);
}

/* "stats": memring's own counters for the pool, memcached's format. */
static void
test_stats_local(void **state)
{
    const char *in;

    (void)state;
    send_str("bogus\r\nstats\r\n");
    assert_true(fake_peer_wait(&fx.fp.io.loop, &fx.peer, 7 + 5, FAKE_WAIT_MS));
    fake_run_for(&fx.fp.io.loop, 5);
    fake_peer_poll(&fx.peer);
    assert_int_equal(buf_append(&fx.peer.in, "", 1), 0);  /* a string */
    in = fx.peer.in.data;
    assert_memory_equal(in, "ERROR\r\nSTAT pid ", 16);
    assert_non_null(strstr(in, "\r\nSTAT version 1.6.0-memring-"));
    assert_non_null(strstr(in, "\r\nSTAT curr_connections 1\r\n"));
    assert_non_null(strstr(in, "\r\nSTAT request_errors 1\r\n"));
    assert_non_null(strstr(in, "\r\nSTAT total_connections 1\r\n"));
    assert_int_equal(strcmp(in + strlen(in) - 5, "END\r\n"), 0);
    assert_int_equal(fake_mc_received(&fx.fa), 0);
}

/* ---------------------------------------------------------------------
 * Multi-get and flush_all
 * ------------------------------------------------------------------- */

/* Keys on both servers, and one nobody has: one reply, in key order. */
static void
test_multiget_merges_in_key_order(void **state)
{
    struct buf want = BUF_INIT;
    char req[128];

    (void)state;
    fx.fa.hold = true;      /* b's values come in first */
    snprintf(req, sizeof(req), "get %s %s %s nokey %s\r\n", fx.ka[0],
             fx.kb[0], fx.ka[1], fx.kb[1]);
    send_str(req);
    assert_true(fake_mc_wait_bytes(&fx.fa, 1, FAKE_WAIT_MS));
    assert_true(fake_mc_wait_bytes(&fx.fb, 1, FAKE_WAIT_MS));
    expect_nothing(10);
    assert_int_equal(fx.fb.nanswered, 1);
    fake_mc_release(&fx.fa);
    append_value(&want, fx.ka[0]);
    append_value(&want, fx.kb[0]);
    append_value(&want, fx.ka[1]);
    append_value(&want, fx.kb[1]);
    assert_int_equal(buf_append_str(&want, "END\r\n"), 0);
    expect_buf(&want);
    /* each server was asked for its keys only, in request order */
    assert_int_equal(fake_mc_count(&fx.fa, fx.kb[0]), 0);
    assert_int_equal(fake_mc_count(&fx.fb, fx.ka[0]), 0);
    assert_int_equal(fake_mc_count(&fx.fa, "get ") +
                     fake_mc_count(&fx.fb, "get "), 2);
    assert_int_equal(fx.fp.pool->stats.fragments, 2);
    assert_int_equal(fx.fp.pool->stats.get_hits, 4);
    assert_int_equal(fx.fp.pool->stats.get_misses, 1);
    assert_int_equal(fx.fp.pool->stats.cmd_get, 5);
    buf_free(&want);
}

/* flush_all goes to every server and is answered once. */
static void
test_flush_all_every_server(void **state)
{
    char req[64];

    (void)state;
    snprintf(req, sizeof(req), "flush_all\r\nget %s %s\r\n", fx.ka[0],
             fx.kb[0]);
    send_str(req);
    expect("OK\r\nEND\r\n");
    assert_int_equal(fake_mc_count(&fx.fa, "flush_all\r\n"), 1);
    assert_int_equal(fake_mc_count(&fx.fb, "flush_all\r\n"), 1);
    assert_int_equal(fx.fp.pool->stats.cmd_flush, 1);
}

/* ---------------------------------------------------------------------
 * Limits
 * ------------------------------------------------------------------- */

/* --client-requests-max 4: ten pipelined gets to stalled servers; the
 * client is read no further than four unanswered, and once the servers
 * answer, every request is answered, in order. */
static void
test_requests_max_pauses(void **state)
{
    struct buf req = BUF_INIT, want = BUF_INIT;
    const char *key;
    char line[32];
    uint32_t i;

    (void)state;
    fx.fa.hold = true;
    fx.fb.hold = true;
    for (i = 0; i < 10; i++) {
        key = i % 2 == 0 ? fx.ka[i / 2] : fx.kb[i / 2];
        snprintf(line, sizeof(line), "get %s\r\n", key);
        assert_int_equal(buf_append_str(&req, line), 0);
        append_get(&want, key);
    }
    assert_int_equal(fake_peer_send(&fx.peer, req.data, req.len), 0);
    fake_run_for(&fx.fp.io.loop, 30);
    assert_int_equal(fake_mc_count(&fx.fa, "get ") +
                     fake_mc_count(&fx.fb, "get "), 4);
    assert_int_equal(fx.fp.pool->stats.client_paused, 1);
    expect_nothing(1);

    fake_mc_release(&fx.fa);
    fake_mc_release(&fx.fb);
    expect_buf(&want);
    assert_int_equal(fake_mc_count(&fx.fa, "get ") +
                     fake_mc_count(&fx.fb, "get "), 10);
    assert_true(fx.fp.pool->stats.client_paused >= 1);
    assert_int_equal(fx.fp.pool->stats.get_hits, 10);
    buf_free(&req);
    buf_free(&want);
}

/* item_size_max 100: a set of 200 bytes is refused as memcached does it
 * (its value read and dropped, the old value deleted); the connection
 * goes on. */
static void
test_item_too_large(void **state)
{
    char head[64], x[101], req[64], want[96];

    (void)state;
    memset(x, 'x', 100);
    x[100] = '\0';
    snprintf(head, sizeof(head), "set %s 0 0 200\r\n", fx.ka[0]);
    send_str(head);
    send_str(x);
    fake_run_for(&fx.fp.io.loop, 5);     /* the value arrives in two reads */
    send_str(x);
    snprintf(req, sizeof(req), "\r\nget %s\r\n", fx.ka[0]);
    send_str(req);
    expect("SERVER_ERROR object too large for cache\r\nEND\r\n");
    assert_int_equal(fx.fp.pool->stats.request_too_large, 1);
    snprintf(want, sizeof(want), "delete %s\r\nget %s\r\n", fx.ka[0],
             fx.ka[0]);
    assert_int_equal(fake_mc_count(&fx.fa, want), 1);
    assert_int_equal(fake_mc_count(&fx.fa, "xx"), 0);
    assert_int_equal(fake_mc_count(&fx.fb, "xx"), 0);

    snprintf(req, sizeof(req), "set %s 0 0 3\r\nabc\r\nget %s\r\n", fx.ka[0],
             fx.ka[0]);
    send_str(req);
    snprintf(want, sizeof(want), "STORED\r\nVALUE %s 0 3\r\nabc\r\nEND\r\n",
             fx.ka[0]);
    expect(want);
}

/* ---------------------------------------------------------------------
 * Endings
 * ------------------------------------------------------------------- */

/* quit: the replies before it go out, then the connection closes; what
 * follows quit is never forwarded. */
static void
test_quit_after_replies(void **state)
{
    struct buf want = BUF_INIT;
    char req[64];

    (void)state;
    snprintf(req, sizeof(req), "get %s\r\nquit\r\nget %s\r\n", fx.ka[0],
             fx.kb[0]);
    send_str(req);
    append_get(&want, fx.ka[0]);
    expect_buf(&want);
    assert_true(fake_peer_wait_eof(&fx.fp.io.loop, &fx.peer, FAKE_WAIT_MS));
    assert_int_equal(fx.peer.in.len, want.len);
    assert_int_equal(fake_mc_received(&fx.fb), 0);
    assert_true(TAILQ_EMPTY(&fx.fp.io.clients));
    assert_int_equal(fx.fp.pool->stats.client_connections, 0);
    buf_free(&want);
}

/* shutdown(SHUT_WR) with replies owed: each one still arrives, then the
 * connection closes. */
static void
test_half_close_gets_every_reply(void **state)
{
    size_t len;

    (void)state;
    send_two_gets_a_slow(true);
    assert_int_equal(fx.fp.pool->stats.client_eof, 1);
    assert_int_equal(fx.fp.pool->stats.client_half_closed, 1);
    assert_int_equal(fx.fp.pool->stats.client_connections, 1);

    release_a_expect_two_replies();
    len = fx.peer.in.len;
    assert_true(fake_peer_wait_eof(&fx.fp.io.loop, &fx.peer, FAKE_WAIT_MS));
    assert_int_equal(fx.peer.in.len, len);
    assert_int_equal(fx.fp.pool->stats.client_connections, 0);
}

/* A client that resets its connection with a request at a server is
 * closed at once; the reply is swallowed and the server connection stays
 * usable. */
static void
test_client_reset_reply_swallowed(void **state)
{
    struct linger lg = { 1, 0 };
    struct fake_peer other;
    struct buf want = BUF_INIT;
    char req[64];

    (void)state;
    fx.fa.hold = true;
    snprintf(req, sizeof(req), "get %s\r\n", fx.ka[0]);
    send_str(req);
    assert_true(fake_mc_wait_bytes(&fx.fa, strlen(req), FAKE_WAIT_MS));
    /* linger 0: close() sends a reset, not a FIN */
    assert_int_equal(setsockopt(fx.peer.fd, SOL_SOCKET, SO_LINGER, &lg,
                                sizeof(lg)), 0);
    fake_peer_close(&fx.peer);
    fake_run_for(&fx.fp.io.loop, 10);
    assert_int_equal(fx.fp.pool->stats.client_connections, 0);
    assert_int_equal(fx.fp.pool->stats.client_err, 1);
    assert_true(TAILQ_EMPTY(&fx.fp.io.clients));
    fake_mc_release(&fx.fa);
    fake_run_for(&fx.fp.io.loop, 10);
    assert_int_equal(fx.fp.pool->servers[0]->stats.responses, 1);
    assert_int_equal(fx.fp.pool->servers[0]->stats.server_connections, 1);

    assert_int_equal(fake_peer_connect(&other, fx.fp.port, NULL), 0);
    fx.peer = other;
    fx.seen = 0;
    send_str(req);
    append_get(&want, fx.ka[0]);
    expect_buf(&want);
    assert_int_equal(fx.fa.nconns, 1);
    assert_int_equal(fx.fp.pool->stats.total_connections, 2);
    buf_free(&want);
}

int
main(void)
{
#define T(fn, setup) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_order_when_later_answered_first, setup),
        T(test_set_get_delete, setup),
        T(test_local_replies, setup),
        T(test_stats_local, setup),
        T(test_multiget_merges_in_key_order, setup),
        T(test_flush_all_every_server, setup),
        T(test_requests_max_pauses, setup_window4),
        T(test_item_too_large, setup_item100),
        T(test_quit_after_replies, setup),
        T(test_half_close_gets_every_reply, setup),
        T(test_client_reset_reply_swallowed, setup),
    };
#undef T

    return cmocka_run_group_tests(tests, NULL, NULL);
}
