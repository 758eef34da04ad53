/*
 * req tests: references, the cache that reuses freed reqs (and what it
 * keeps of them), req_done, hit counting, the write scratch, batches, and
 * req_write() to a real socket (a socketpair under a uv_pipe_t): written
 * at once, or queued behind a full socket until the reader drains it.
 */
#include "memring/req.h"

#include "memring/buf.h"
#include "memring/stats.h"
#include "memring/tally.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#define BIG (4u * 1024 * 1024)  /* more than a socketpair buffers */

struct fixture {
    struct req_cache  rc;
    uint64_t          freed;
    struct pool_stats stats;
    uv_loop_t         loop;
    uv_pipe_t         pipe;     /* our end, sv[0] */
    int               sv[2];    /* sv[1]: the reader's end */
    int               done_calls;
    struct req        *done_req;
    int               cb_calls; /* write_cb */
    int               cb_status;
    void              *cb_owner;
    uint32_t          cb_n;
    char              *got;     /* what the reader read */
    size_t            ngot;
};

static struct fixture fx;

static int
fixture_setup(void **state)
{
    memset(&fx, 0, sizeof(fx));
    req_cache_init(&fx.rc, &fx.freed);
    fx.sv[0] = fx.sv[1] = -1;
    *state = &fx;
    return 0;
}

static int
fixture_teardown(void **state)
{
    (void)state;
    req_cache_drain(&fx.rc);
    free(fx.got);
    return 0;
}

/* The fixture plus a loop and a socketpair, our end under fx.pipe. */
static int
socket_setup(void **state)
{
    fixture_setup(state);
    assert_int_equal(uv_loop_init(&fx.loop), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fx.sv), 0);
    assert_int_equal(fcntl(fx.sv[1], F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(uv_pipe_init(&fx.loop, &fx.pipe, 0), 0);
    assert_int_equal(uv_pipe_open(&fx.pipe, fx.sv[0]), 0);
    return 0;
}

static int
socket_teardown(void **state)
{
    uv_close((uv_handle_t *)&fx.pipe, NULL);    /* closes sv[0] */
    if (fx.sv[1] >= 0) {
        close(fx.sv[1]);
    }
    assert_int_equal(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&fx.loop), 0);
    return fixture_teardown(state);
}

static struct req *
new_req(enum mc_cmd cmd)
{
    struct req *r = req_create(&fx.rc, &fx.stats, cmd);

    assert_non_null(r);
    return r;
}

static void
on_done(struct req *r)
{
    fx.done_calls++;
    fx.done_req = r;
}

/* ---------------------------------------------------------------------
 * References and the cache
 * ------------------------------------------------------------------- */

static void
test_create_fresh(void **state)
{
    struct fixture *f = *state;
    struct req *r = new_req(MC_GETS);

    assert_int_equal(r->refs, 1);
    assert_ptr_equal(r->cache, &f->rc);
    assert_ptr_equal(r->stats, &f->stats);
    assert_int_equal(r->cmd, MC_GETS);
    assert_null(r->owner);
    assert_null(r->parent);
    assert_false(r->done);
    assert_int_equal(buf_unread(&r->out), 0);
    req_put(&r);
}

static void
test_put_nulls_and_frees_at_zero(void **state)
{
    struct fixture *f = *state;
    struct req *r = new_req(MC_GET), *r2 = r, *none = NULL;

    req_ref(r);
    assert_int_equal(r->refs, 2);
    req_put(&r2);
    assert_null(r2);
    assert_int_equal(r->refs, 1);
    assert_int_equal(f->rc.n, 0);       /* still alive */
    req_put(&none);                     /* NULL: no-op */
    assert_null(none);
    r2 = r;
    req_put(&r);
    assert_null(r);
    assert_int_equal(f->rc.n, 1);       /* freed: into the cache */
    assert_ptr_equal(f->rc.free, r2);
}

static void
test_cache_reuses_and_zeroes_above_kept(void **state)
{
    static const char zero[REQ_KEPT_FROM];
    struct fixture *f = *state;
    struct pool_stats other;
    struct req *r = new_req(MC_GET), *r2, *was, copy;
    struct mc_span *keys;
    char *out;
    char big[10000];

    memset(big, 'v', sizeof(big));
    r->owner = f;
    r->on_done = on_done;
    r->done = r->noreply = r->quit = r->failed = r->gathered = true;
    r->deadline = r->start_ns = r->sent_ns = 99;
    r->nkeys = r->frag_nkeys = r->frag_next = r->nhits = 3;
    r->nslices = r->pending = 2;
    r->first_error = strdup("SERVER_ERROR x");
    assert_non_null(r->first_error);
    assert_int_equal(buf_append(&r->out, big, 100), 0);        /* 256 */
    assert_int_equal(buf_append(&r->line, big, 8000), 0);      /* 8192 */
    assert_int_equal(buf_append(&r->reply, big, sizeof(big)), 0); /* 16K */
    assert_int_equal(r->reply.cap, 16384);
    assert_int_equal(req_reserve_keys(r, 4), 0);
    assert_int_equal(req_reserve_frag_keys(r, 4096), 0);       /* 16 KiB */
    out = r->out.data;
    keys = r->keys;
    was = r;

    req_put(&r);
    assert_int_equal(f->rc.n, 1);
    assert_int_equal(f->freed, 16384);  /* the large reply buffer */

    r2 = req_create(&f->rc, &other, MC_SET);
    assert_non_null(r2);
    assert_ptr_equal(r2, was);
    assert_int_equal(f->rc.n, 0);
    assert_int_equal(r2->refs, 1);
    assert_int_equal(r2->cmd, MC_SET);
    assert_ptr_equal(r2->stats, &other);
    assert_ptr_equal(r2->cache, &f->rc);
    /* everything above REQ_KEPT_FROM is zero but what create sets */
    memcpy(&copy, r2, REQ_KEPT_FROM);
    copy.cache = NULL;
    copy.stats = NULL;
    copy.cmd = MC_UNKNOWN;
    copy.refs = 0;
    assert_memory_equal(&copy, zero, REQ_KEPT_FROM);
    /* small buffers and arrays kept, emptied; large ones freed */
    assert_ptr_equal(r2->out.data, out);
    assert_int_equal(r2->out.cap, 256);
    assert_int_equal(buf_unread(&r2->out), 0);
    assert_int_equal(r2->line.cap, 8192);
    assert_int_equal(r2->line.len, 0);
    assert_null(r2->reply.data);
    assert_int_equal(r2->reply.cap, 0);
    assert_ptr_equal(r2->keys, keys);
    assert_int_equal(r2->keys_cap, 4);
    assert_int_equal(r2->slots_cap, 4);
    assert_null(r2->frag_keys);
    assert_int_equal(r2->frag_keys_cap, 0);
    req_put(&r2);
}

static void
test_cache_is_lifo_and_bounded(void **state)
{
    enum { N = 1100 };
    struct fixture *f = *state;
    struct req **rs = calloc(N, sizeof(*rs));
    struct req *last;
    int i;

    assert_non_null(rs);
    for (i = 0; i < N; i++) {
        rs[i] = new_req(MC_GET);
    }
    last = rs[1023];
    for (i = 0; i < N; i++) {
        req_put(&rs[i]);
    }
    assert_int_equal(f->rc.n, 1024);    /* the rest were freed */
    rs[0] = new_req(MC_GET);
    assert_ptr_equal(rs[0], last);      /* the last one kept comes first */
    assert_int_equal(f->rc.n, 1023);
    req_put(&rs[0]);
    free(rs);
}

static void
test_freed_req_gives_back_value_bytes(void **state)
{
    struct req *r = new_req(MC_SET);

    (void)state;
    assert_true(tally_value_bytes_take(100, 100));
    assert_false(tally_value_bytes_take(1, 100));
    r->value_bytes = 100;
    req_put(&r);
    assert_true(tally_value_bytes_take(1, 100));    /* room again */
    tally_value_bytes_give(1);
}

static void
test_drain_empties_the_cache(void **state)
{
    struct fixture *f = *state;
    struct req *a = new_req(MC_GET), *b = new_req(MC_GET);

    assert_int_equal(buf_append(&a->out, "get k\r\n", 7), 0);
    assert_int_equal(req_cache_wscratch(&f->rc, 1), 0);
    req_put(&a);
    req_put(&b);
    assert_int_equal(f->rc.n, 2);
    req_cache_drain(&f->rc);
    assert_int_equal(f->rc.n, 0);
    assert_null(f->rc.free);
    assert_null(f->rc.wreqs);
    assert_null(f->rc.wbufs);
    assert_int_equal(f->rc.wreqs_cap, 0);
    /* and the cache still works */
    a = new_req(MC_GET);
    req_put(&a);
    assert_int_equal(f->rc.n, 1);
}

/* ---------------------------------------------------------------------
 * req_done, hits, reply lines, arrays
 * ------------------------------------------------------------------- */

static void
test_done_without_owner_does_not_tell(void **state)
{
    struct fixture *f = *state;
    struct req *r = new_req(MC_GET);

    r->on_done = on_done;
    req_done(r);
    assert_true(r->done);
    assert_int_equal(f->done_calls, 0);
    req_put(&r);
}

static void
test_done_with_owner_tells_once(void **state)
{
    struct fixture *f = *state;
    struct req *r = new_req(MC_GET);

    r->owner = f;
    req_done(r);                /* no callback set: nothing to call */
    assert_int_equal(f->done_calls, 0);
    r->done = false;
    r->on_done = on_done;
    req_done(r);
    assert_true(r->done);
    assert_int_equal(f->done_calls, 1);
    assert_ptr_equal(f->done_req, r);
    req_put(&r);
}

static void
test_count_hits(void **state)
{
    struct fixture *f = *state;
    struct req *r = new_req(MC_GET);

    r->nkeys = 5;
    req_count_hits(r, 3);
    assert_int_equal(f->stats.get_hits, 3);
    assert_int_equal(f->stats.get_misses, 2);
    req_count_hits(r, 5);
    assert_int_equal(f->stats.get_hits, 8);
    assert_int_equal(f->stats.get_misses, 2);
    req_count_hits(r, 0);
    assert_int_equal(f->stats.get_misses, 7);
    req_count_hits(r, 6);       /* more hits than keys: no misses */
    assert_int_equal(f->stats.get_hits, 14);
    assert_int_equal(f->stats.get_misses, 7);
    req_put(&r);
}

static void
test_reply_line_replaces_and_marks_done(void **state)
{
    struct fixture *f = *state;
    struct req *r = new_req(MC_SET);

    r->owner = f;
    r->on_done = on_done;
    assert_int_equal(buf_append(&r->reply, "junk", 4), 0);
    assert_int_equal(req_reply_line(r, "STORED"), 0);
    assert_true(r->done);
    assert_int_equal(f->done_calls, 0);     /* it does not tell */
    assert_int_equal(buf_unread(&r->reply), 8);
    assert_memory_equal(buf_head(&r->reply), "STORED\r\n", 8);
    assert_int_equal(req_reply_line(r, "SERVER_ERROR x"), 0);
    assert_int_equal(buf_unread(&r->reply), 16);
    assert_memory_equal(buf_head(&r->reply), "SERVER_ERROR x\r\n", 16);
    req_put(&r);
}

static void
test_reserve_grows_only(void **state)
{
    struct req *r = new_req(MC_GET);
    struct req **frags;

    (void)state;
    assert_int_equal(req_reserve_keys(r, 3), 0);
    assert_int_equal(r->keys_cap, 3);
    assert_int_equal(r->slots_cap, 3);
    assert_int_equal(req_reserve_frags(r, 2), 0);
    frags = r->frags;
    assert_int_equal(req_reserve_frags(r, 1), 0);
    assert_ptr_equal(r->frags, frags);
    assert_int_equal(r->frags_cap, 2);
    assert_int_equal(req_reserve_frags(r, 9), 0);
    assert_int_equal(r->frags_cap, 9);
    assert_int_equal(req_reserve_frag_keys(r, 5), 0);
    assert_int_equal(r->frag_keys_cap, 5);
    r->frag_keys[4] = 7;        /* room for 5 (ASan checks) */
    r->frags[8] = NULL;
    req_put(&r);
}

static void
test_wscratch_grows_by_doubling_from_64(void **state)
{
    struct fixture *f = *state;
    struct req **wreqs;

    assert_int_equal(req_cache_wscratch(&f->rc, 0), 0);
    assert_int_equal(req_cache_wscratch(&f->rc, 1), 0);
    assert_int_equal(f->rc.wreqs_cap, 64);
    assert_int_equal(f->rc.wbufs_cap, 64);
    wreqs = f->rc.wreqs;
    assert_int_equal(req_cache_wscratch(&f->rc, 64), 0);
    assert_ptr_equal(f->rc.wreqs, wreqs);
    assert_int_equal(req_cache_wscratch(&f->rc, 65), 0);
    assert_int_equal(f->rc.wreqs_cap, 128);
    assert_int_equal(req_cache_wscratch(&f->rc, 1000), 0);
    assert_int_equal(f->rc.wreqs_cap, 1024);
    assert_int_equal(f->rc.wbufs_cap, 1024);
    f->rc.wreqs[1023] = NULL;   /* writable to the end (ASan checks) */
    f->rc.wbufs[1023] = uv_buf_init(NULL, 0);
}

static void
test_batch_holds_and_drops_refs(void **state)
{
    struct req_batch *b = req_batch_create(3), *none = NULL;
    struct req *a = new_req(MC_GET), *c = new_req(MC_GET);

    (void)state;
    assert_non_null(b);
    assert_int_equal(b->n, 0);
    assert_null(b->owner);
    req_ref(a);
    req_ref(c);
    b->reqs[b->n] = a;
    b->bufs[b->n++] = uv_buf_init(NULL, 0);
    b->reqs[b->n] = c;
    b->bufs[b->n++] = uv_buf_init(NULL, 0);
    b->bufs[2] = uv_buf_init(NULL, 0);  /* room for 3 */
    req_batch_destroy(&b);
    assert_null(b);
    assert_int_equal(a->refs, 1);
    assert_int_equal(c->refs, 1);
    req_batch_destroy(&none);
    req_put(&a);
    req_put(&c);
}

/* ---------------------------------------------------------------------
 * req_write
 * ------------------------------------------------------------------- */

static void
write_cb(uv_write_t *w, int status)
{
    struct req_batch *b = w->data;

    fx.cb_calls++;
    fx.cb_status = status;
    fx.cb_owner = b->owner;
    fx.cb_n = b->n;
    req_batch_destroy(&b);
}

/* Reads what the socket holds (turning the loop as it goes, so that
 * queued writes go on) until want bytes have come. */
static void
read_back(size_t want)
{
    int idle = 0;

    fx.got = realloc(fx.got, want + 1);
    assert_non_null(fx.got);
    while (fx.ngot < want) {
        ssize_t n = read(fx.sv[1], fx.got + fx.ngot, want - fx.ngot);
        if (n > 0) {
            fx.ngot += (size_t)n;
            idle = 0;
            continue;
        }
        assert_true(n < 0 && errno == EAGAIN);
        assert_true(++idle < 100000);
        uv_run(&fx.loop, UV_RUN_NOWAIT);
    }
    uv_run(&fx.loop, UV_RUN_NOWAIT);    /* the write cb, if queued */
}

/* A req whose reply is text. */
static struct req *
reply_req(const char *text)
{
    struct req *r = new_req(MC_GET);

    assert_int_equal(buf_append_str(&r->reply, text), 0);
    return r;
}

static uv_buf_t
reply_buf(struct req *r)
{
    return uv_buf_init(buf_head(&r->reply),
                       (unsigned int)buf_unread(&r->reply));
}

static void
test_write_at_once(void **state)
{
    struct fixture *f = *state;
    struct req *r[3] = { reply_req("VALUE a 0 1\r\nx\r\nEND\r\n"),
                         reply_req("STORED\r\n"), reply_req("END\r\n") };
    static const char want[] = "VALUE a 0 1\r\nx\r\nEND\r\nSTORED\r\nEND\r\n";
    struct req *keep[3];
    uv_buf_t bufs[3];
    bool queued = true;
    int i;

    for (i = 0; i < 3; i++) {
        keep[i] = r[i];
        bufs[i] = reply_buf(r[i]);
    }
    assert_int_equal(req_write((uv_stream_t *)&f->pipe, r, bufs, 3, false,
                               f, write_cb, &queued), 0);
    assert_false(queued);
    for (i = 0; i < 3; i++) {
        assert_ptr_equal(r[i], keep[i]);  /* not own_refs: untouched */
        assert_int_equal(r[i]->refs, 1);
    }
    read_back(strlen(want));
    assert_memory_equal(f->got, want, strlen(want));
    assert_int_equal(f->cb_calls, 0);
    for (i = 0; i < 3; i++) {
        req_put(&r[i]);
    }
    assert_int_equal(f->rc.n, 3);
}

static void
test_write_at_once_drops_owned_refs(void **state)
{
    struct fixture *f = *state;
    struct req *r[2] = { reply_req("OK\r\n"), reply_req("DELETED\r\n") };
    struct req *keep = r[1];
    uv_buf_t bufs[2] = { reply_buf(r[0]), reply_buf(r[1]) };
    bool queued;

    req_ref(r[1]);              /* the caller keeps r[1] */
    assert_int_equal(req_write((uv_stream_t *)&f->pipe, r, bufs, 2, true,
                               f, write_cb, &queued), 0);
    assert_false(queued);
    assert_null(r[0]);
    assert_null(r[1]);
    assert_int_equal(f->rc.n, 1);       /* r[0] freed */
    assert_int_equal(keep->refs, 1);
    read_back(13);
    assert_memory_equal(f->got, "OK\r\nDELETED\r\n", 13);
    req_put(&keep);
}

static void
test_write_nothing(void **state)
{
    struct fixture *f = *state;
    struct req *r = new_req(MC_GET);
    uv_buf_t buf = uv_buf_init(NULL, 0);
    bool queued = true;

    assert_int_equal(req_write((uv_stream_t *)&f->pipe, &r, &buf, 1, true,
                               f, write_cb, &queued), 0);
    assert_false(queued);
    assert_null(r);
    assert_int_equal(f->rc.n, 1);
}

/* Writes head, BIG bytes, tail as three reqs r[0..3) (copied to keep):
 * more than the socket takes at once. own_refs: each req's ref is handed
 * over (the test keeps one of its own). */
static void
big_write(struct req **r, struct req **keep, bool own_refs, bool *queued)
{
    struct fixture *f = &fx;
    uv_buf_t bufs[3];
    uint32_t i;
    int k;

    r[0] = reply_req("head\r\n");
    r[1] = new_req(MC_GET);
    assert_int_equal(buf_reserve(&r[1]->reply, BIG), 0);
    for (i = 0; i < BIG; i++) {
        r[1]->reply.data[i] = (char)('a' + i % 26);
    }
    r[1]->reply.len = BIG;
    r[2] = reply_req("tail\r\n");
    for (k = 0; k < 3; k++) {
        keep[k] = r[k];
        bufs[k] = reply_buf(r[k]);
        if (own_refs) {
            req_ref(r[k]);
        }
    }
    assert_int_equal(req_write((uv_stream_t *)&f->pipe, r, bufs, 3,
                               own_refs, f, write_cb, queued), 0);
}

/* Reads the big write back (turning the loop) and checks its bytes. */
static void
check_big_read(void)
{
    uint32_t i;

    read_back(6 + BIG + 6);
    assert_memory_equal(fx.got, "head\r\n", 6);
    for (i = 0; i < BIG; i++) {
        if (fx.got[6 + i] != (char)('a' + i % 26)) {
            fail_msg("byte %u differs", i);
        }
    }
    assert_memory_equal(fx.got + 6 + BIG, "tail\r\n", 6);
}

/* Nobody reads: the socket stays full and the callback waits. */
static void
check_cb_waits(void)
{
    int i;

    for (i = 0; i < 10; i++) {
        uv_run(&fx.loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(fx.cb_calls, 0);
}

static void
check_cb_ran(void)
{
    assert_int_equal(fx.cb_calls, 1);
    assert_int_equal(fx.cb_status, 0);
    assert_ptr_equal(fx.cb_owner, &fx);
    assert_int_equal(fx.cb_n, 2);   /* the big buffer (rest of) and tail */
}

static void
test_write_queued_until_reader_drains(void **state)
{
    struct fixture *f = *state;
    struct req *r[3], *keep[3];
    bool queued = false;
    int i;

    big_write(r, keep, false, &queued);
    assert_true(queued);
    /* head went at once and stays the caller's; the rest is in the
     * batch, which took refs of its own */
    assert_ptr_equal(r[0], keep[0]);
    assert_int_equal(keep[0]->refs, 1);
    assert_null(r[1]);
    assert_null(r[2]);
    assert_int_equal(keep[1]->refs, 2);
    assert_int_equal(keep[2]->refs, 2);
    check_cb_waits();
    check_big_read();
    check_cb_ran();
    for (i = 0; i < 3; i++) {
        assert_int_equal(keep[i]->refs, 1);
        req_put(&keep[i]);
    }
    assert_int_equal(f->rc.n, 3);
}

static void
test_write_queued_with_owned_refs(void **state)
{
    struct fixture *f = *state;
    struct req *r[3], *keep[3];
    bool queued = false;
    int i;

    big_write(r, keep, true, &queued);
    assert_true(queued);
    /* every handed-over ref went: head's dropped, the rest's to the batch */
    for (i = 0; i < 3; i++) {
        assert_null(r[i]);
    }
    assert_int_equal(keep[0]->refs, 1);
    assert_int_equal(keep[1]->refs, 2);
    assert_int_equal(keep[2]->refs, 2);
    check_cb_waits();
    /* the batch alone keeps the big reply alive */
    req_put(&keep[1]);
    req_put(&keep[2]);
    assert_int_equal(f->rc.n, 0);
    check_big_read();
    check_cb_ran();
    assert_int_equal(f->rc.n, 2);       /* freed by the batch */
    req_put(&keep[0]);
}

static void
test_write_to_closed_peer_fails(void **state)
{
    struct fixture *f = *state;
    struct req *r[2] = { reply_req("OK\r\n"), reply_req("END\r\n") };
    uv_buf_t bufs[2] = { reply_buf(r[0]), reply_buf(r[1]) };
    bool queued = true;
    int err;

    close(f->sv[1]);
    f->sv[1] = -1;
    err = req_write((uv_stream_t *)&f->pipe, r, bufs, 2, true, f, write_cb,
                    &queued);
    assert_int_equal(err, UV_EPIPE);
    assert_false(queued);
    assert_null(r[0]);          /* owned refs dropped all the same */
    assert_null(r[1]);
    assert_int_equal(f->rc.n, 2);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->cb_calls, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fixture_setup, \
                                              fixture_teardown)
#define S(fn) cmocka_unit_test_setup_teardown(fn, socket_setup, \
                                              socket_teardown)
        T(test_create_fresh),
        T(test_put_nulls_and_frees_at_zero),
        T(test_cache_reuses_and_zeroes_above_kept),
        T(test_cache_is_lifo_and_bounded),
        T(test_freed_req_gives_back_value_bytes),
        T(test_drain_empties_the_cache),
        T(test_done_without_owner_does_not_tell),
        T(test_done_with_owner_tells_once),
        T(test_count_hits),
        T(test_reply_line_replaces_and_marks_done),
        T(test_reserve_grows_only),
        T(test_wscratch_grows_by_doubling_from_64),
        T(test_batch_holds_and_drops_refs),
        S(test_write_at_once),
        S(test_write_at_once_drops_owned_refs),
        S(test_write_nothing),
        S(test_write_queued_until_reader_drains),
        S(test_write_queued_with_owned_refs),
        S(test_write_to_closed_peer_fails),
#undef S
#undef T
    };

    /* a write to a closed socket must fail, not kill the test */
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
