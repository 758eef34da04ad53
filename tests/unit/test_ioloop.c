/*
 * ioloop tests: the end-of-turn flush (once per turn, servers lane first,
 * round again while servers got work, cancel), uptime, and a clean
 * init/close/deinit, on a real libuv loop driven a turn at a time.
 */
#include "memring/ioloop.h"

#include "memring/limits.h"
#include "memring/req.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <uv.h>

#include <cmocka.h>

#define NTASKS 4

/* A task that records its runs in the fixture's log. */
struct rec_task {
    struct ioloop_task t;
    char               name;    /* written to the log when it runs */
    struct ioloop_task *then;   /* queued from its run, if not NULL */
};

struct fixture {
    struct ioloop   io;
    struct rec_task tasks[NTASKS];
    char            log[64];    /* names of the tasks run, in order */
    size_t          nlog;
    uv_idle_t       idle;       /* a callback inside a loop turn */
    struct ioloop_task *from_idle; /* queued twice by the idle cb */
    bool            ran_in_idle; /* something had run when it was */
};

static struct fixture fx;

static void
rec_run(struct ioloop_task *t)
{
    struct rec_task *rt = (struct rec_task *)t;

    assert_true(fx.nlog < sizeof(fx.log) - 1);
    assert_false(t->queued);
    fx.log[fx.nlog++] = rt->name;
    if (rt->then != NULL) {
        ioloop_flush_later(&fx.io, rt->then);
    }
}

static int
fixture_setup(void **state)
{
    struct limits l;
    int i;

    memset(&fx, 0, sizeof(fx));
    limits_default(&l);
    l.requests_max = 7;
    assert_int_equal(ioloop_init(&fx.io, &l), 0);
    for (i = 0; i < NTASKS; i++) {
        ioloop_task_init(&fx.tasks[i].t, rec_run,
                         i % 2 == 0 ? IOLOOP_SERVERS : IOLOOP_CLIENTS);
        fx.tasks[i].name = (char)('a' + i);
    }
    *state = &fx;
    return 0;
}

/* Closes io (and the idle handle, if used), runs the loop down,
 * deinits. */
static int
fixture_teardown(void **state)
{
    (void)state;
    ioloop_close(&fx.io);
    if (fx.idle.type == UV_IDLE) {
        uv_close((uv_handle_t *)&fx.idle, NULL);
    }
    assert_int_equal(uv_run(&fx.io.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_alive(&fx.io.loop), 0);
    ioloop_deinit(&fx.io);
    return 0;
}

/* One loop turn that does not block. */
static void
turn(void)
{
    uv_run(&fx.io.loop, UV_RUN_NOWAIT);
    fx.log[fx.nlog] = '\0';
}

/* ---------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------- */

static void
test_init(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(f->io.limits.requests_max, 7);
    assert_int_equal(f->io.limits.item_size_max,
                     LIMITS_DEFAULT_ITEM_SIZE_MAX);
    assert_ptr_equal(f->io.reqs.freed, &f->io.freed);
    assert_true(uv_is_active((uv_handle_t *)&f->io.flusher));
    assert_true(TAILQ_EMPTY(&f->io.lanes[IOLOOP_SERVERS]));
    assert_true(TAILQ_EMPTY(&f->io.lanes[IOLOOP_CLIENTS]));
    assert_true(TAILQ_EMPTY(&f->io.clients));
    assert_int_equal(ioloop_uptime(&f->io), 0);
}

static void
test_task_init(void **state)
{
    struct fixture *f = *state;

    assert_ptr_equal(f->tasks[1].t.fn, rec_run);
    assert_int_equal(f->tasks[0].t.lane, IOLOOP_SERVERS);
    assert_int_equal(f->tasks[1].t.lane, IOLOOP_CLIENTS);
    assert_false(f->tasks[0].t.queued);
}

static void
test_nothing_queued_runs_nothing(void **state)
{
    struct fixture *f = *state;

    turn();
    turn();
    assert_string_equal(f->log, "");
}

static void
test_flush_later_twice_runs_once(void **state)
{
    struct fixture *f = *state;

    ioloop_flush_later(&f->io, &f->tasks[1].t);
    ioloop_flush_later(&f->io, &f->tasks[1].t);
    assert_true(f->tasks[1].t.queued);
    assert_string_equal(f->log, "");    /* not before the turn ends */
    turn();
    assert_string_equal(f->log, "b");
    assert_false(f->tasks[1].t.queued);
    turn();
    assert_string_equal(f->log, "b");   /* and not again */
}

static void
test_requeued_next_turn_runs_again(void **state)
{
    struct fixture *f = *state;

    ioloop_flush_later(&f->io, &f->tasks[0].t);
    turn();
    ioloop_flush_later(&f->io, &f->tasks[0].t);
    turn();
    assert_string_equal(f->log, "aa");
}

static void
test_servers_lane_before_clients_lane(void **state)
{
    struct fixture *f = *state;

    /* queued clients first: b, d (clients), then c, a (servers) */
    ioloop_flush_later(&f->io, &f->tasks[1].t);
    ioloop_flush_later(&f->io, &f->tasks[3].t);
    ioloop_flush_later(&f->io, &f->tasks[2].t);
    ioloop_flush_later(&f->io, &f->tasks[0].t);
    turn();
    assert_string_equal(f->log, "cabd");   /* each lane in queue order */
}

static void
test_server_task_queued_by_client_task_runs_same_flush(void **state)
{
    struct fixture *f = *state;

    f->tasks[1].then = &f->tasks[0].t;  /* client b wakes server a */
    ioloop_flush_later(&f->io, &f->tasks[1].t);
    ioloop_flush_later(&f->io, &f->tasks[3].t);
    turn();
    /* b and d (the clients lane) first, then round again for a */
    assert_string_equal(f->log, "bda");
    assert_true(TAILQ_EMPTY(&f->io.lanes[IOLOOP_SERVERS]));
}

static void
test_chain_client_server_client_in_one_flush(void **state)
{
    struct fixture *f = *state;

    f->tasks[1].then = &f->tasks[0].t;  /* b -> a */
    f->tasks[0].then = &f->tasks[3].t;  /* a -> d */
    ioloop_flush_later(&f->io, &f->tasks[1].t);
    turn();
    assert_string_equal(f->log, "bad");
    assert_false(f->tasks[3].t.queued);
}

static void
test_client_task_queued_by_server_task_runs_same_flush(void **state)
{
    struct fixture *f = *state;

    f->tasks[0].then = &f->tasks[1].t;  /* server a -> client b */
    ioloop_flush_later(&f->io, &f->tasks[0].t);
    turn();
    assert_string_equal(f->log, "ab");
}

static void
test_cancel_prevents_the_run(void **state)
{
    struct fixture *f = *state;

    ioloop_flush_later(&f->io, &f->tasks[0].t);
    ioloop_flush_later(&f->io, &f->tasks[2].t);
    ioloop_flush_later(&f->io, &f->tasks[1].t);
    ioloop_flush_cancel(&f->io, &f->tasks[0].t);
    ioloop_flush_cancel(&f->io, &f->tasks[1].t);
    assert_false(f->tasks[0].t.queued);
    turn();
    assert_string_equal(f->log, "c");
}

static void
test_cancel_unqueued_is_noop_and_requeue_works(void **state)
{
    struct fixture *f = *state;

    ioloop_flush_cancel(&f->io, &f->tasks[3].t);    /* never queued */
    ioloop_flush_later(&f->io, &f->tasks[3].t);
    ioloop_flush_cancel(&f->io, &f->tasks[3].t);
    ioloop_flush_cancel(&f->io, &f->tasks[3].t);    /* twice */
    ioloop_flush_later(&f->io, &f->tasks[3].t);
    turn();
    assert_string_equal(f->log, "d");
}

/* A task canceled by one that runs before it in the same flush. */
static void
cancel_run(struct ioloop_task *t)
{
    (void)t;
    fx.log[fx.nlog++] = 'x';
    ioloop_flush_cancel(&fx.io, &fx.tasks[1].t);
}

static void
test_cancel_from_an_earlier_task_of_the_flush(void **state)
{
    struct fixture *f = *state;
    struct ioloop_task killer;

    ioloop_task_init(&killer, cancel_run, IOLOOP_SERVERS);
    ioloop_flush_later(&f->io, &f->tasks[1].t);
    ioloop_flush_later(&f->io, &killer);
    turn();
    assert_string_equal(f->log, "x");
}

/* Queues the task twice from inside a loop turn, as a read cb does; once
 * only (idle callbacks run before the flush of every turn). */
static void
idle_cb(uv_idle_t *h)
{
    ioloop_flush_later(&fx.io, fx.from_idle);
    ioloop_flush_later(&fx.io, fx.from_idle);
    fx.ran_in_idle = fx.nlog > 0;
    uv_idle_stop(h);
}

static void
test_queued_in_a_callback_runs_at_end_of_that_turn(void **state)
{
    struct fixture *f = *state;

    f->from_idle = &f->tasks[2].t;
    uv_idle_init(&f->io.loop, &f->idle);
    uv_idle_start(&f->idle, idle_cb);
    turn();
    assert_false(f->ran_in_idle);
    assert_false(uv_is_active((uv_handle_t *)&f->idle));
    assert_string_equal(f->log, "c");
    turn();
    assert_string_equal(f->log, "c");
}

static void
test_uptime_counts_whole_seconds(void **state)
{
    struct fixture *f = *state;
    uint64_t now = uv_now(&f->io.loop);

    assert_int_equal(ioloop_uptime(&f->io), 0);
    assert_true(now >= 2999);
    f->io.started = now - 2999;
    assert_int_equal(ioloop_uptime(&f->io), 2);
    f->io.started = now - 3000;
    assert_int_equal(ioloop_uptime(&f->io), 3);
}

static void
test_close_twice_and_deinit_frees_cached_reqs(void **state)
{
    struct fixture *f = *state;
    struct pool_stats *stats = NULL;
    struct req *r = req_create(&f->io.reqs, stats, MC_GET);

    assert_non_null(r);
    assert_int_equal(buf_append(&r->out, "get k\r\n", 7), 0);
    req_put(&r);
    assert_int_equal(f->io.reqs.n, 1);  /* kept: deinit frees it */
    ioloop_close(&f->io);
    ioloop_close(&f->io);               /* idempotent */
    /* teardown closes once more, runs down and deinits */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fixture_setup, \
                                              fixture_teardown)
        T(test_init),
        T(test_task_init),
        T(test_nothing_queued_runs_nothing),
        T(test_flush_later_twice_runs_once),
        T(test_requeued_next_turn_runs_again),
        T(test_servers_lane_before_clients_lane),
        T(test_server_task_queued_by_client_task_runs_same_flush),
        T(test_chain_client_server_client_in_one_flush),
        T(test_client_task_queued_by_server_task_runs_same_flush),
        T(test_cancel_prevents_the_run),
        T(test_cancel_unqueued_is_noop_and_requeue_works),
        T(test_cancel_from_an_earlier_task_of_the_flush),
        T(test_queued_in_a_callback_runs_at_end_of_that_turn),
        T(test_uptime_counts_whole_seconds),
        T(test_close_twice_and_deinit_frees_cached_reqs),
#undef T
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
