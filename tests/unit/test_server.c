/*
 * server tests: one pool's server connection against a fake memcached on
 * the test's own loop (fake_mc.h). Requests are made by hand
 * (req_create(), an out buffer, server_forward()) and their completions
 * recorded through on_done, so that reply bytes, failure texts, order and
 * the server's counters can be checked exactly.
 */
#include "memring/server.h"

#include "memring/conf.h"
#include "memring/health.h"
#include "memring/ioloop.h"
#include "memring/limits.h"
#include "memring/pool.h"
#include "memring/req.h"

#include "fake_mc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define MAX_REQS 16

/* The requests whose reply is complete, in the order they completed. */
struct done_log {
    struct req *reqs[MAX_REQS];
    uint32_t   n;
};

struct fixture {
    char            dir[64];      /* temp dir for unix sockets */
    int             refuse_fd;    /* holds the refusing port, or -1 */
    struct fake_mc  fake;
    struct fake_pool fp;          /* io, conf, pool */
    struct server   *s;
    struct done_log log;
    struct req      *reqs[MAX_REQS];  /* the test's refs */
    uint32_t        nreqs;
};

static struct fixture fx;

static void
on_done(struct req *r)
{
    struct done_log *log = r->owner;

    if (log->n < MAX_REQS) {
        log->reqs[log->n] = r;
    }
    log->n++;
}

enum backend {
    BACKEND_TCP = 0,
    BACKEND_UNIX,
    BACKEND_REFUSING
};

/* A pool "alpha" of one server, the fake (or a refusing port), with the
 * given timeout (ms, 0: none). */
static int
setup_with(void **state, enum backend be, enum fake_mc_mode mode,
           int timeout)
{
    struct limits limits;
    char yaml[512], server[160], tmo[32] = "";
    uint16_t port = 0;

    memset(&fx, 0, sizeof(fx));
    fx.refuse_fd = -1;
    snprintf(fx.dir, sizeof(fx.dir), "/tmp/memring-test-XXXXXX");
    if (mkdtemp(fx.dir) == NULL) {
        return -1;
    }
    limits_default(&limits);
    if (fake_pool_init(&fx.fp, &limits) != 0) {
        return -1;
    }
    if (be == BACKEND_REFUSING) {
        if (fake_refusing_port(&fx.refuse_fd, &port) != 0) {
            return -1;
        }
        snprintf(server, sizeof(server), "127.0.0.1:%u:1", port);
    } else if (be == BACKEND_UNIX) {
        char path[96];
        snprintf(path, sizeof(path), "%s/mc.sock", fx.dir);
        if (fake_mc_start(&fx.fake, &fx.fp.io.loop, mode, path) != 0) {
            return -1;
        }
        snprintf(server, sizeof(server), "%s:1", path);
    } else {
        if (fake_mc_start(&fx.fake, &fx.fp.io.loop, mode, NULL) != 0) {
            return -1;
        }
        snprintf(server, sizeof(server), "127.0.0.1:%u:1", fx.fake.port);
    }
    if (timeout > 0) {
        snprintf(tmo, sizeof(tmo), "  timeout: %d\n", timeout);
    }
    snprintf(yaml, sizeof(yaml),
             "alpha:\n"
             "  listen: 127.0.0.1:22121\n"
             "%s"
             "  servers:\n"
             "   - %s\n", tmo, server);
    if (fake_pool_open(&fx.fp, yaml, NULL) != 0 ||
        fx.fp.pool->nservers != 1) {
        return -1;
    }
    fx.s = fx.fp.pool->servers[0];
    *state = &fx;
    return 0;
}

static int
setup_tcp(void **state)
{
    return setup_with(state, BACKEND_TCP, FAKE_MC_SCRIPTED, 0);
}

static int
setup_timeout(void **state)
{
    return setup_with(state, BACKEND_TCP, FAKE_MC_SCRIPTED, 50);
}

static int
setup_unix(void **state)
{
    return setup_with(state, BACKEND_UNIX, FAKE_MC_AUTO, 0);
}

static int
setup_refusing(void **state)
{
    return setup_with(state, BACKEND_REFUSING, FAKE_MC_SCRIPTED, 0);
}

static int
teardown(void **state)
{
    char path[96];
    uint32_t i;
    bool ok = true;

    (void)state;
    for (i = 0; i < fx.nreqs; i++) {
        req_put(&fx.reqs[i]);
    }
    ok &= fake_mc_stop(&fx.fake);
    ok &= fake_pool_close(&fx.fp);
    if (fx.refuse_fd >= 0) {
        close(fx.refuse_fd);
    }
    snprintf(path, sizeof(path), "%s/mc.sock", fx.dir);
    unlink(path);
    rmdir(fx.dir);
    return ok ? 0 : -1;
}

/* A request of cmd whose bytes to the server are out, forwarded to the
 * pool's server; the test keeps a ref until teardown. */
static struct req *
forward_n(enum mc_cmd cmd, const char *out, uint32_t nkeys)
{
    struct req *r = req_create(&fx.fp.io.reqs, &fx.fp.pool->stats, cmd);

    assert_non_null(r);
    assert_true(fx.nreqs < MAX_REQS);
    fx.reqs[fx.nreqs++] = r;
    r->owner = &fx.log;
    r->on_done = on_done;
    r->nkeys = nkeys;
    assert_int_equal(buf_append_str(&r->out, out), 0);
    server_forward(fx.s, r);
    return r;
}

static struct req *
forward(enum mc_cmd cmd, const char *out)
{
    return forward_n(cmd, out, mc_cmd_is_retrieval(cmd) ? 1 : 0);
}

static bool
log_has(void *arg)
{
    return fx.log.n >= *(uint32_t *)arg;
}

/* Runs the loop until n requests completed. */
static void
wait_done(uint32_t n)
{
    assert_true(fake_run_until(&fx.fp.io.loop, log_has, &n, FAKE_WAIT_MS));
    assert_int_equal(fx.log.n, n);
}

static void
assert_reply(const struct req *r, const char *want)
{
    assert_true(r->done);
    assert_int_equal(buf_unread(&r->reply), strlen(want));
    assert_memory_equal(buf_head(&r->reply), want, strlen(want));
}

static void
assert_received(const char *want)
{
    assert_int_equal(fx.fake.nconns, 1);
    assert_int_equal(fx.fake.conns[0]->in.len, strlen(want));
    assert_memory_equal(fx.fake.conns[0]->in.data, want, strlen(want));
}

/* The fake's next bytes to the proxy. */
static void
reply(const char *s)
{
    assert_int_equal(fake_mc_send(&fx.fake, s, strlen(s)), 0);
}

/* Sends s byte by byte and asserts that exactly n requests are done. */
static void
send_bytewise_expect(const char *s, uint32_t n)
{
    assert_int_equal(fake_mc_send_bytewise(&fx.fake, s), 0);
    fake_run_for(&fx.fp.io.loop, 5);
    assert_int_equal(fx.log.n, n);
}

/* ---------------------------------------------------------------------
 * Replies matched to requests
 * ------------------------------------------------------------------- */

/* Three pipelined requests on one connection; the replies arrive one
 * byte per read, and each request completes exactly when its last byte
 * is in, in request order. */
static void
test_pipelined_replies_bytewise(void **state)
{
    const struct server_stats *st = &fx.s->stats;
    static const char set[] = "set k 0 0 1\r\nv\r\n";
    static const char get[] = "get k\r\n";
    static const char del[] = "delete k\r\n";
    size_t total = strlen(set) + strlen(get) + strlen(del);
    struct req *r1, *r2, *r3;

    (void)state;
    r1 = forward(MC_SET, set);
    r2 = forward(MC_GET, get);
    r3 = forward(MC_DELETE, del);
    /* connecting: all three wait in the pending queue */
    assert_int_equal(st->server_connections, 1);
    assert_int_equal(st->in_queue, 3);
    assert_int_equal(st->in_queue_bytes, total);
    assert_int_equal(st->out_queue, 0);

    assert_true(fake_mc_wait_bytes(&fx.fake, total, FAKE_WAIT_MS));
    assert_received("set k 0 0 1\r\nv\r\nget k\r\ndelete k\r\n");
    assert_int_equal(st->in_queue, 0);
    assert_int_equal(st->in_queue_bytes, 0);
    assert_int_equal(st->out_queue, 3);
    assert_int_equal(st->out_queue_bytes, total);
    assert_int_equal(st->requests, 3);
    assert_int_equal(st->request_bytes, total);
    assert_int_equal(fx.log.n, 0);

    send_bytewise_expect("STORED\r", 0);
    send_bytewise_expect("\n", 1);
    assert_ptr_equal(fx.log.reqs[0], r1);
    assert_reply(r1, "STORED\r\n");
    send_bytewise_expect("VALUE k 0 1\r\nv\r\nEN", 1);
    send_bytewise_expect("D\r\n", 2);
    assert_ptr_equal(fx.log.reqs[1], r2);
    assert_reply(r2, "VALUE k 0 1\r\nv\r\nEND\r\n");
    send_bytewise_expect("DELETED\r\n", 3);
    assert_ptr_equal(fx.log.reqs[2], r3);
    assert_reply(r3, "DELETED\r\n");

    assert_false(r1->failed || r2->failed || r3->failed);
    assert_int_equal(st->responses, 3);
    assert_int_equal(st->response_bytes,
                     strlen("STORED\r\nVALUE k 0 1\r\nv\r\nEND\r\n"
                            "DELETED\r\n"));
    assert_int_equal(st->out_queue, 0);
    assert_int_equal(st->out_queue_bytes, 0);
    assert_int_equal(st->server_connections, 1);   /* still open */
    assert_int_equal(st->server_err, 0);
    assert_int_equal(st->server_eof, 0);
    assert_int_equal(fx.fp.pool->stats.get_hits, 1);
    assert_int_equal(fx.fp.pool->stats.get_misses, 0);
    assert_int_equal(fx.s->latency.count, 3);
}

/* A single-key get: a hit is VALUE + data + END, a miss is END alone. */
static void
test_get_value_end(void **state)
{
    struct req *hit, *miss;

    (void)state;
    hit = forward(MC_GET, "get foo\r\n");
    miss = forward(MC_GET, "get nope\r\n");
    assert_true(fake_mc_wait_bytes(&fx.fake, 19, FAKE_WAIT_MS));
    reply("VALUE foo 5 3\r\nbar\r\nEND\r\n"
                                  "END\r\n");
    wait_done(2);
    assert_ptr_equal(fx.log.reqs[0], hit);
    assert_reply(hit, "VALUE foo 5 3\r\nbar\r\nEND\r\n");
    assert_ptr_equal(fx.log.reqs[1], miss);
    assert_reply(miss, "END\r\n");
    assert_int_equal(fx.fp.pool->stats.get_hits, 1);
    assert_int_equal(fx.fp.pool->stats.get_misses, 1);
}

/* A two-key get answered with both values, and a gets with its cas. */
static void
test_get_two_keys_and_gets(void **state)
{
    static const char two[] =
        "VALUE a 0 1\r\n1\r\nVALUE b 0 2\r\n22\r\nEND\r\n";
    static const char cas[] = "VALUE c 0 1 77\r\n3\r\nEND\r\n";
    struct req *r1, *r2;

    (void)state;
    r1 = forward_n(MC_GET, "get a b\r\n", 2);
    r2 = forward_n(MC_GETS, "gets c\r\n", 1);
    assert_true(fake_mc_wait_bytes(&fx.fake, 17, FAKE_WAIT_MS));
    reply(two);
    reply(cas);
    wait_done(2);
    assert_reply(r1, two);
    assert_reply(r2, cas);
    assert_int_equal(fx.fp.pool->stats.get_hits, 3);
}

/* A reply over SCONN_TAKE_MIN (16 KiB) that is all the read buffer holds
 * is handed over whole; its bytes must be the server's. */
static void
test_get_large_value(void **state)
{
    enum { VLEN = 40000 };
    struct buf want = BUF_INIT;
    char head[64];
    struct req *r;
    size_t i;

    (void)state;
    r = forward(MC_GET, "get big\r\n");
    assert_true(fake_mc_wait_bytes(&fx.fake, 9, FAKE_WAIT_MS));
    snprintf(head, sizeof(head), "VALUE big 0 %d\r\n", VLEN);
    assert_int_equal(buf_append_str(&want, head), 0);
    assert_int_equal(buf_reserve(&want, VLEN), 0);
    for (i = 0; i < VLEN; i++) {
        want.data[want.len++] = (char)('a' + i % 26);
    }
    assert_int_equal(buf_append_str(&want, "\r\nEND\r\n"), 0);
    assert_int_equal(fake_mc_send(&fx.fake, want.data, want.len), 0);
    wait_done(1);
    assert_int_equal(buf_unread(&r->reply), want.len);
    assert_memory_equal(buf_head(&r->reply), want.data, want.len);
    assert_int_equal(fx.s->stats.response_bytes, want.len);
    assert_int_equal(fx.fp.pool->stats.get_hits, 1);
    buf_free(&want);
}

/* noreply: the server's answer completes the request, and is dropped. */
static void
test_noreply_dropped(void **state)
{
    struct req *r;

    (void)state;
    r = forward(MC_SET, "set k 0 0 1\r\nv\r\n");
    r->noreply = true;
    assert_true(fake_mc_wait_bytes(&fx.fake, 16, FAKE_WAIT_MS));
    reply("STORED\r\n");
    wait_done(1);
    assert_true(r->done);
    assert_false(r->failed);
    assert_int_equal(buf_unread(&r->reply), 0);
    assert_int_equal(fx.s->stats.responses, 1);
}

/* ---------------------------------------------------------------------
 * Replies that break the stream
 * ------------------------------------------------------------------- */

#define UNEXPECTED "SERVER_ERROR unexpected reply from server\r\n"

/* A line after every request is answered answers nothing: the
 * connection closes (counted as an error), and the next request gets a
 * new one. */
static void
test_reply_to_nothing_closes(void **state)
{
    const struct server_stats *st = &fx.s->stats;
    struct req *r1, *r2;

    (void)state;
    r1 = forward(MC_SET, "set k 0 0 1\r\nv\r\n");
    assert_true(fake_mc_wait_bytes(&fx.fake, 16, FAKE_WAIT_MS));
    reply("STORED\r\nDELETED\r\n");
    wait_done(1);
    assert_reply(r1, "STORED\r\n");
    assert_false(r1->failed);
    fake_run_for(&fx.fp.io.loop, 5);
    assert_int_equal(st->server_connections, 0);
    assert_int_equal(st->server_err, 1);
    assert_int_equal(st->server_failures, 1);
    assert_null(fx.s->conns[0]);

    r2 = forward(MC_DELETE, "delete k\r\n");
    assert_true(fake_mc_wait_bytes(&fx.fake, 26, FAKE_WAIT_MS));
    assert_int_equal(fx.fake.nconns, 2);
    reply("DELETED\r\n");
    wait_done(2);
    assert_reply(r2, "DELETED\r\n");
}

/* A reply that cannot be the answer to the request at the head (STORED
 * to a get) closes the connection and fails that request and everything
 * behind it, in order. */
static void
test_reply_mismatch_fails_in_flight(void **state)
{
    const struct server_stats *st = &fx.s->stats;
    struct req *r1, *r2, *r3;

    (void)state;
    r1 = forward(MC_SET, "set k 0 0 1\r\nv\r\n");
    r2 = forward(MC_GET, "get k\r\n");
    r3 = forward(MC_INCR, "incr n 1\r\n");
    assert_true(fake_mc_wait_bytes(&fx.fake, 33, FAKE_WAIT_MS));
    reply("STORED\r\nSTORED\r\n");
    wait_done(3);
    assert_ptr_equal(fx.log.reqs[0], r1);
    assert_reply(r1, "STORED\r\n");
    assert_ptr_equal(fx.log.reqs[1], r2);
    assert_reply(r2, UNEXPECTED);
    assert_true(r2->failed);
    assert_ptr_equal(fx.log.reqs[2], r3);
    assert_reply(r3, UNEXPECTED);
    assert_true(r3->failed);
    assert_int_equal(st->server_connections, 0);
    assert_int_equal(st->server_err, 1);
    assert_int_equal(st->out_queue, 0);
    assert_int_equal(st->out_queue_bytes, 0);
    assert_int_equal(fx.fp.pool->stats.forward_error, 2);
}

/* A VALUE for a key the get did not ask for: the stream lost its
 * framing. */
static void
test_value_for_other_key_unexpected(void **state)
{
    struct req *r;

    (void)state;
    r = forward(MC_GET, "get a\r\n");
    assert_true(fake_mc_wait_bytes(&fx.fake, 7, FAKE_WAIT_MS));
    reply("VALUE b 0 1\r\nx\r\nEND\r\n");
    wait_done(1);
    assert_reply(r, UNEXPECTED);
    assert_int_equal(fx.s->stats.server_err, 1);
}

/* A VALUE to a set, and a number to a delete, are unexpected too. */
static void
test_value_to_storage_unexpected(void **state)
{
    struct req *r1, *r2;

    (void)state;
    r1 = forward(MC_SET, "set k 0 0 1\r\nv\r\n");
    r2 = forward(MC_DELETE, "delete k\r\n");
    assert_true(fake_mc_wait_bytes(&fx.fake, 26, FAKE_WAIT_MS));
    reply("VALUE k 0 1\r\nv\r\nEND\r\n");
    wait_done(2);
    assert_reply(r1, UNEXPECTED);
    assert_reply(r2, UNEXPECTED);
}

/* Bytes that are no memcached reply at all. */
static void
test_garbage_invalid(void **state)
{
    static const char invalid[] = "SERVER_ERROR invalid reply from server\r\n";
    struct req *r1, *r2;

    (void)state;
    r1 = forward(MC_GET, "get a\r\n");
    r2 = forward(MC_SET, "set k 0 0 1\r\nv\r\n");
    assert_true(fake_mc_wait_bytes(&fx.fake, 23, FAKE_WAIT_MS));
    reply("HELLO WORLD\r\n");
    wait_done(2);
    assert_ptr_equal(fx.log.reqs[0], r1);
    assert_reply(r1, invalid);
    assert_ptr_equal(fx.log.reqs[1], r2);
    assert_reply(r2, invalid);
    assert_int_equal(fx.s->stats.server_err, 1);
    assert_int_equal(fx.s->stats.server_connections, 0);
}

/* A line ended by a bare \n is garbage as well. */
static void
test_bare_newline_invalid(void **state)
{
    struct req *r;

    (void)state;
    r = forward(MC_SET, "set k 0 0 1\r\nv\r\n");
    assert_true(fake_mc_wait_bytes(&fx.fake, 16, FAKE_WAIT_MS));
    reply("STORED\n");
    wait_done(1);
    assert_reply(r, "SERVER_ERROR invalid reply from server\r\n");
}

/* The server hangs up with requests in flight: they fail, EOF counts. */
static void
test_eof_in_flight(void **state)
{
    static const char closed[] =
        "SERVER_ERROR connection closed by server\r\n";
    const struct server_stats *st = &fx.s->stats;
    struct req *r1, *r2;

    (void)state;
    r1 = forward(MC_GET, "get a\r\n");
    r2 = forward(MC_GET, "get b\r\n");
    assert_true(fake_mc_wait_bytes(&fx.fake, 14, FAKE_WAIT_MS));
    fake_mc_hangup(&fx.fake);
    wait_done(2);
    assert_ptr_equal(fx.log.reqs[0], r1);
    assert_reply(r1, closed);
    assert_ptr_equal(fx.log.reqs[1], r2);
    assert_reply(r2, closed);
    assert_int_equal(st->server_eof, 1);
    assert_int_equal(st->server_err, 0);
    assert_int_equal(st->server_failures, 1);
    assert_int_equal(st->server_connections, 0);
    assert_int_equal(st->out_queue, 0);
    assert_int_equal(st->out_queue_bytes, 0);
    /* the client sees an error, not a miss (fragments' keys do miss) */
    assert_int_equal(fx.fp.pool->stats.get_misses, 0);
}

/* A hang-up of an idle connection is no failure. */
static void
test_eof_idle_quiet(void **state)
{
    const struct server_stats *st = &fx.s->stats;

    (void)state;
    forward(MC_DELETE, "delete k\r\n");
    assert_true(fake_mc_wait_bytes(&fx.fake, 10, FAKE_WAIT_MS));
    reply("NOT_FOUND\r\n");
    wait_done(1);
    fake_mc_hangup(&fx.fake);
    fake_run_for(&fx.fp.io.loop, 20);
    assert_int_equal(st->server_connections, 0);
    assert_int_equal(st->server_eof, 0);
    assert_int_equal(st->server_err, 0);
    assert_int_equal(st->server_failures, 0);
}

/* timeout: 50 and a server that never answers. */
static void
test_timeout(void **state)
{
    const struct server_stats *st = &fx.s->stats;
    uint64_t start;
    struct req *r;

    (void)state;
    start = uv_hrtime();
    r = forward(MC_GET, "get slow\r\n");
    assert_true(fake_mc_wait_bytes(&fx.fake, 10, FAKE_WAIT_MS));
    assert_int_equal(fx.log.n, 0);
    wait_done(1);
    assert_true(uv_hrtime() - start >= 45 * 1000000ull);
    assert_reply(r, "SERVER_ERROR connection timed out\r\n");
    assert_true(r->failed);
    assert_int_equal(st->server_timedout, 1);
    assert_int_equal(st->server_err, 1);
    assert_int_equal(st->server_connections, 0);
    assert_int_equal(st->out_queue, 0);
}

/* Replies in time do not time out, however long the test waits after. */
static void
test_timeout_not_when_answered(void **state)
{
    struct req *r;

    (void)state;
    r = forward(MC_GET, "get k\r\n");
    assert_true(fake_mc_wait_bytes(&fx.fake, 7, FAKE_WAIT_MS));
    reply("END\r\n");
    wait_done(1);
    fake_run_for(&fx.fp.io.loop, 120);
    assert_reply(r, "END\r\n");
    assert_int_equal(fx.s->stats.server_timedout, 0);
    assert_int_equal(fx.s->stats.server_connections, 1);
}

/* Nobody listens: the requests queued on the connect fail with its error;
 * during the backoff after it, a request fails at once without a
 * connect. Both count toward ejection. */
static void
test_connect_refused(void **state)
{
    static const char refused[] = "SERVER_ERROR connection refused\r\n";
    const struct server_stats *st = &fx.s->stats;
    struct req *r1, *r2, *r3;

    (void)state;
    assert_int_equal(health_down(fx.s->health), 0);
    r1 = forward(MC_GET, "get a\r\n");
    r2 = forward(MC_SET, "set k 0 0 1\r\nv\r\n");
    assert_int_equal(st->in_queue, 2);
    wait_done(2);
    assert_ptr_equal(fx.log.reqs[0], r1);
    assert_reply(r1, refused);
    assert_ptr_equal(fx.log.reqs[1], r2);
    assert_reply(r2, refused);
    assert_int_equal(st->server_failures, 1);
    assert_int_equal(st->server_err, 1);
    assert_int_equal(st->server_connections, 0);
    assert_int_equal(st->in_queue, 0);
    assert_int_equal(st->in_queue_bytes, 0);
    assert_int_equal(health_down(fx.s->health), UV_ECONNREFUSED);
    assert_int_equal(fx.s->backoff, 10);

    /* within the backoff: fails at once, no connection opened. The 10 ms
     * may have passed on a loaded machine, so the window is stretched:
     * what is tested is the behaviour inside it, not the clock. */
    assert_true(fx.s->retry_at > 0);
    fx.s->retry_at = uv_now(&fx.fp.io.loop) + 60000;
    r3 = forward(MC_GET, "get b\r\n");
    assert_int_equal(fx.log.n, 3);
    assert_reply(r3, "SERVER_ERROR cannot connect to server\r\n");
    assert_int_equal(st->server_failures, 2);
    assert_int_equal(st->server_connections, 0);
    assert_int_equal(fx.fp.pool->stats.forward_error, 3);
}

/* The backoff doubles per failed connect. */
static void
test_connect_backoff_doubles(void **state)
{
    (void)state;
    forward(MC_GET, "get a\r\n");
    wait_done(1);
    assert_int_equal(fx.s->backoff, 10);
    fake_run_for(&fx.fp.io.loop, 15);
    assert_true(uv_now(&fx.fp.io.loop) >= fx.s->retry_at);
    forward(MC_GET, "get a\r\n");
    wait_done(2);
    assert_int_equal(fx.s->backoff, 20);
    assert_int_equal(fx.s->stats.server_failures, 2);
}

/* ---------------------------------------------------------------------
 * Gauges, texts, shutdown, unix sockets
 * ------------------------------------------------------------------- */

/* Every queue gauge is back to 0 once everything completed. */
static void
test_queue_gauges_back_to_zero(void **state)
{
    const struct server_stats *st = &fx.s->stats;
    static const char replies[] = "END\r\nSTORED\r\nEND\r\n";
    uint32_t i;

    (void)state;
    for (i = 0; i < 2; i++) {
        forward(MC_GET, "get a\r\n");
        forward(MC_SET, "set k 0 0 1\r\nv\r\n");
        forward(MC_GET, "get b\r\n");
        assert_int_equal(st->in_queue + st->out_queue, 3);
        assert_int_equal(st->in_queue_bytes + st->out_queue_bytes, 30);
        assert_true(fake_mc_wait_bytes(&fx.fake, 30 * (i + 1),
                                       FAKE_WAIT_MS));
        assert_int_equal(st->out_queue, 3);
        assert_int_equal(st->out_queue_bytes, 30);
        reply(replies);
        wait_done(3 * (i + 1));
        assert_int_equal(st->in_queue, 0);
        assert_int_equal(st->in_queue_bytes, 0);
        assert_int_equal(st->out_queue, 0);
        assert_int_equal(st->out_queue_bytes, 0);
    }
    assert_int_equal(st->requests, 6);
    assert_int_equal(st->responses, 6);
}

static void
test_fail_text(void **state)
{
    static const char *const want[SERVER_FAIL_COUNT] = {
        [SERVER_FAIL_IO] = "i/o error",
        [SERVER_FAIL_CONNECT] = "cannot connect to server",
        [SERVER_FAIL_CONNECT_TIMEOUT] = "connect timed out",
        [SERVER_FAIL_TIMEOUT] = "connection timed out",
        [SERVER_FAIL_CLOSED] = "connection closed by server",
        [SERVER_FAIL_INVALID] = "invalid reply from server",
        [SERVER_FAIL_UNEXPECTED] = "unexpected reply from server",
        [SERVER_FAIL_NOMEM] = "out of memory",
        [SERVER_FAIL_SHUTDOWN] = "shutting down",
        [SERVER_FAIL_DRAINED] = "drained",
    };
    int i, j;

    (void)state;
    for (i = 0; i < SERVER_FAIL_COUNT; i++) {
        const char *t = server_fail_text((enum server_fail)i, 0);
        assert_non_null(want[i]);
        assert_string_equal(t, want[i]);
        for (j = 0; j < i; j++) {
            assert_string_not_equal(t,
                                    server_fail_text((enum server_fail)j, 0));
        }
        /* only SERVER_FAIL_IO reads err */
        if (i != SERVER_FAIL_IO) {
            assert_string_equal(server_fail_text((enum server_fail)i,
                                                 UV_ECONNRESET), want[i]);
        }
    }
    assert_string_equal(server_fail_text(SERVER_FAIL_IO, UV_ECONNRESET),
                        uv_strerror(UV_ECONNRESET));
    assert_string_equal(server_fail_text(SERVER_FAIL_IO, UV_ECONNREFUSED),
                        "connection refused");
    assert_string_equal(server_fail_text(SERVER_FAIL_COUNT, 0),
                        "unknown failure");
}

/* server_close(SHUTDOWN) fails what is pending (still connecting) and
 * what is in flight, in order, and counts no failure. */
static void
test_close_shutdown(void **state)
{
    static const char shut[] = "SERVER_ERROR shutting down\r\n";
    const struct server_stats *st = &fx.s->stats;
    struct req *r1, *r2, *r3;

    (void)state;
    r1 = forward(MC_GET, "get a\r\n");
    r2 = forward(MC_SET, "set k 0 0 1\r\nv\r\n");
    server_close(fx.s, SERVER_FAIL_SHUTDOWN);
    assert_int_equal(fx.log.n, 2);
    assert_ptr_equal(fx.log.reqs[0], r1);
    assert_reply(r1, shut);
    assert_ptr_equal(fx.log.reqs[1], r2);
    assert_reply(r2, shut);
    assert_int_equal(st->in_queue, 0);
    assert_int_equal(st->server_connections, 0);

    /* in flight on a fresh connection */
    r3 = forward(MC_GET, "get c\r\n");
    assert_true(fake_mc_wait_bytes(&fx.fake, 7, FAKE_WAIT_MS));
    assert_int_equal(st->out_queue, 1);
    server_close(fx.s, SERVER_FAIL_SHUTDOWN);
    assert_int_equal(fx.log.n, 3);
    assert_reply(r3, shut);
    assert_int_equal(st->out_queue, 0);
    assert_int_equal(st->server_connections, 0);
    assert_int_equal(st->server_failures, 0);
    assert_int_equal(st->server_err, 0);
    assert_int_equal(st->server_eof, 0);
}

/* A drained server (it left the pool) still answers what its connection
 * carries, then the connection closes quietly. */
static void
test_drain_finishes_in_flight(void **state)
{
    const struct server_stats *st = &fx.s->stats;
    struct req *r;

    (void)state;
    r = forward(MC_GET, "get a\r\n");
    assert_true(fake_mc_wait_bytes(&fx.fake, 7, FAKE_WAIT_MS));
    server_drain(fx.s);
    assert_null(fx.s->conns[0]);
    assert_int_equal(st->server_connections, 1);    /* still carrying r */
    reply("END\r\n");
    wait_done(1);
    assert_reply(r, "END\r\n");
    assert_false(r->failed);
    assert_int_equal(st->server_connections, 0);
    assert_true(TAILQ_EMPTY(&fx.s->all));
    assert_int_equal(st->server_err, 0);
    assert_int_equal(st->server_eof, 0);
    assert_int_equal(st->server_failures, 0);
    fake_run_for(&fx.fp.io.loop, 5);
    assert_true(fx.fake.conns[0]->eof);             /* the fake saw it go */
}

/* Two connections take requests in turn; shrinking back to one drains
 * the other once it has answered. */
static void
test_resize_spreads_and_drains(void **state)
{
    const struct server_stats *st = &fx.s->stats;
    struct req *r1, *r2;
    uint32_t b;

    (void)state;
    server_resize(fx.s, 2);
    assert_int_equal(fx.s->nconns, 2);
    r1 = forward(MC_GET, "get a\r\n");
    r2 = forward(MC_GET, "get b\r\n");
    assert_true(fake_mc_wait_bytes(&fx.fake, 14, FAKE_WAIT_MS));
    assert_int_equal(fx.fake.nconns, 2);
    assert_int_equal(st->server_connections, 2);
    assert_int_equal(fx.fake.conns[0]->in.len, 7);
    assert_int_equal(fx.fake.conns[1]->in.len, 7);
    /* the fake's connection that got r2 (accept order is the kernel's) */
    b = memcmp(fx.fake.conns[0]->in.data, "get b", 5) == 0 ? 0 : 1;
    assert_memory_equal(fx.fake.conns[b]->in.data, "get b\r\n", 7);

    server_resize(fx.s, 1);
    assert_int_equal(fx.s->nconns, 1);
    assert_int_equal(st->server_connections, 2);    /* one draining */
    assert_int_equal(fake_mc_send_on(&fx.fake, b, "END\r\n", 5), 0);
    wait_done(1);
    assert_ptr_equal(fx.log.reqs[0], r2);
    fake_run_for(&fx.fp.io.loop, 5);
    assert_int_equal(st->server_connections, 1);
    assert_false(r1->done);
    assert_int_equal(st->server_err, 0);
}

/* A unix socket server, answered by the fake's store. */
static void
test_unix_socket_server(void **state)
{
    struct req *r1, *r2;

    (void)state;
    assert_true(fx.s->cs->is_unix);
    r1 = forward(MC_SET, "set k 0 0 5\r\nhello\r\n");
    r2 = forward(MC_GET, "get k\r\n");
    wait_done(2);
    assert_reply(r1, "STORED\r\n");
    assert_reply(r2, "VALUE k 0 5\r\nhello\r\nEND\r\n");
    assert_int_equal(fx.fake.nconns, 1);
    assert_int_equal(fx.s->stats.responses, 2);
}

int
main(void)
{
#define T(fn, setup) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_pipelined_replies_bytewise, setup_tcp),
        T(test_get_value_end, setup_tcp),
        T(test_get_two_keys_and_gets, setup_tcp),
        T(test_get_large_value, setup_tcp),
        T(test_noreply_dropped, setup_tcp),
        T(test_reply_to_nothing_closes, setup_tcp),
        T(test_reply_mismatch_fails_in_flight, setup_tcp),
        T(test_value_for_other_key_unexpected, setup_tcp),
        T(test_value_to_storage_unexpected, setup_tcp),
        T(test_garbage_invalid, setup_tcp),
        T(test_bare_newline_invalid, setup_tcp),
        T(test_eof_in_flight, setup_tcp),
        T(test_eof_idle_quiet, setup_tcp),
        T(test_timeout, setup_timeout),
        T(test_timeout_not_when_answered, setup_timeout),
        T(test_connect_refused, setup_refusing),
        T(test_connect_backoff_doubles, setup_refusing),
        T(test_queue_gauges_back_to_zero, setup_tcp),
        T(test_fail_text, setup_tcp),
        T(test_close_shutdown, setup_tcp),
        T(test_drain_finishes_in_flight, setup_tcp),
        T(test_resize_spreads_and_drains, setup_tcp),
        T(test_unix_socket_server, setup_unix),
    };
#undef T

    return cmocka_run_group_tests(tests, NULL, NULL);
}
