/*
 * fanout tests: a multi-get split over servers, the fragments' answers fed
 * back (parsed with mc_parse_rsp(), as a server connection does) in any
 * order, the merged reply's bytes and iovecs, failures, flush_all, and the
 * references that must all be gone at the end; then allocation failure at
 * every allocation a split (or flush_all) makes, through -Wl,--wrap of
 * malloc, calloc and realloc (CMakeLists.txt wraps them for this test).
 */
#include "memring/fanout.h"

#include "memring/buf.h"
#include "memring/mc_parse.h"
#include "memring/req.h"
#include "memring/stats.h"

#include "alloc_fail.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <cmocka.h>

#define KEYS_CAP 16
#define NSERVERS_MAX 8
#define MERGED_MAX 1024

/* ---------------------------------------------------------------------
 * Fixture: a req cache, a pool's counters, one parent
 * ------------------------------------------------------------------- */

struct fixture {
    struct req_cache  rc;
    uint64_t          freed;
    struct pool_stats stats;
    const char        *line;    /* the request the parent was parsed from */
    struct mc_req     m;
    struct mc_span    keys[KEYS_CAP];
    uint32_t          per_server[NSERVERS_MAX];
    struct req        *p;       /* the client's ref */
    struct req        *frags[NSERVERS_MAX]; /* p's, kept by the test */
    uint32_t          nfrags;
    int               done_calls;
    char              merged[MERGED_MAX]; /* fanout_iov's bytes */
    size_t            nmerged;
    uint32_t          niov;
    uv_buf_t          iov[KEYS_CAP + 1];
};

static struct fixture fx;

static int
fixture_setup(void **state)
{
    memset(&fx, 0, sizeof(fx));
    req_cache_init(&fx.rc, &fx.freed);
    *state = &fx;
    return 0;
}

static int
fixture_teardown(void **state)
{
    (void)state;
    alloc_fail_disarm();
    req_put(&fx.p);
    req_cache_drain(&fx.rc);
    return 0;
}

static void
on_done(struct req *r)
{
    assert_ptr_equal(r, fx.p);
    assert_true(r->done);
    fx.done_calls++;
}

/* Parses line into f->m and f->keys; a parent for it, owned by a client
 * that wants to be told (on_done). */
static void
parse_parent(struct fixture *f, const char *line)
{
    f->line = line;
    assert_int_equal(mc_parse_req(line, strlen(line), &f->m, f->keys,
                                  KEYS_CAP), PARSE_OK);
    f->p = req_create(&f->rc, &f->stats, f->m.cmd);
    assert_non_null(f->p);
    f->p->owner = f;
    f->p->on_done = on_done;
    f->p->noreply = f->m.noreply;
    f->p->nkeys = f->m.nkeys;
}

/* Splits line over nservers, key i to route[i]. */
static void
split(struct fixture *f, const char *line, const uint32_t *route,
      uint32_t nservers)
{
    parse_parent(f, line);
    assert_int_equal(fanout_split(f->p, line, &f->m, f->keys, route,
                                  f->per_server, nservers), 0);
}

static void
flush_all(struct fixture *f, const char *line, uint32_t nservers)
{
    parse_parent(f, line);
    assert_int_equal(fanout_flush_all(f->p, line, &f->m, nservers), 0);
}

/* The servers' queues take their refs on the fragments (server_forward);
 * the test notes them in f->frags. */
static void
send_all(struct fixture *f)
{
    uint32_t j;

    f->nfrags = f->p->nfrags;
    for (j = 0; j < f->nfrags; j++) {
        f->frags[j] = f->p->frags[j];
        req_ref(f->frags[j]);
    }
}

static void
assert_buf(const struct buf *b, const char *want)
{
    assert_int_equal(buf_unread(b), strlen(want));
    assert_memory_equal(buf_head(b), want, strlen(want));
}

/* Feeds fragment j a server's reply, unit by unit: 0, or the first error
 * of fanout_value() (the units after it are not fed). */
static int
feed(struct fixture *f, uint32_t j, const char *reply)
{
    struct req *frag = f->frags[j];
    size_t off = 0, len = strlen(reply);

    while (off < len) {
        struct mc_rsp u;
        int err;

        assert_int_equal(mc_parse_rsp(reply + off, len - off, &u), PARSE_OK);
        switch (u.type) {
        case MC_RSP_VALUE:
            err = fanout_value(frag, reply + off, &u);
            if (err != 0) {
                return err;
            }
            break;
        case MC_RSP_LINE:
            fanout_line(frag, reply + off, &u);
            break;
        case MC_RSP_END:
            break;
        case MC_RSP_META_VALUE:
            return UV_EPROTO;   /* no retrieval fragment asks for one */
        }
        off += u.len;
    }
    return 0;
}

/* Fragment j gets its whole reply and is done with. */
static void
answer(struct fixture *f, uint32_t j, const char *reply)
{
    assert_int_equal(feed(f, j, reply), 0);
    fanout_done(f->frags[j]);
}

/* The merged reply of the (done) parent: its bytes in f->merged, f->niov
 * and f->iov (lengths only: the bases point into freed replies). The
 * iovecs' refs are dropped, the client's with them: f->p is then gone. */
static void
take_merged(struct fixture *f)
{
    struct req *reqs[KEYS_CAP + 1];
    uint32_t i;

    assert_true(f->p->done);
    assert_true(f->p->gathered);
    f->niov = fanout_iov_count(f->p);
    assert_true(f->niov <= KEYS_CAP + 1);
    assert_int_equal(fanout_iov(f->p, reqs, f->iov), f->niov);
    assert_int_equal(f->p->refs, f->niov);
    f->nmerged = 0;
    for (i = 0; i < f->niov; i++) {
        assert_ptr_equal(reqs[i], f->p);
        assert_true(f->nmerged + f->iov[i].len < MERGED_MAX);
        memcpy(f->merged + f->nmerged, f->iov[i].base, f->iov[i].len);
        f->nmerged += f->iov[i].len;
    }
    f->merged[f->nmerged] = '\0';
    /* iov[] still points into the fragments' replies until the last put */
    for (i = 0; i < f->niov; i++) {
        req_put(&reqs[i]);
    }
    f->p = NULL;
}

/* Everything made since setup is back in the cache: no ref left over. */
static void
assert_all_freed(struct fixture *f, uint32_t nreqs)
{
    assert_null(f->p);
    assert_int_equal(f->rc.n, nreqs);
}

/* ---------------------------------------------------------------------
 * Split
 * ------------------------------------------------------------------- */

static void
test_split_three_servers_in_server_order(void **state)
{
    static const uint32_t route[] = { 0, 1, 2, 0, 1 };
    struct fixture *f = *state;
    struct req *p;
    uint32_t j;

    split(f, "get k1 k2 k3 k4 k5\r\n", route, 3);
    p = f->p;
    assert_int_equal(p->nfrags, 3);
    assert_int_equal(p->pending, 3);
    assert_int_equal(p->nkeys, 5);
    assert_int_equal(p->refs, 1 + 3);   /* the client and each fragment */
    assert_buf(&p->line, "get k1 k2 k3 k4 k5\r\n");
    assert_buf(&p->frags[0]->out, "get k1 k4\r\n");
    assert_buf(&p->frags[1]->out, "get k2 k5\r\n");
    assert_buf(&p->frags[2]->out, "get k3\r\n");
    for (j = 0; j < 3; j++) {
        assert_int_equal(f->per_server[j], j);
        assert_ptr_equal(p->frags[j]->parent, p);
        assert_int_equal(p->frags[j]->cmd, MC_GET);
        assert_int_equal(p->frags[j]->refs, 1);
        assert_false(p->frags[j]->done);
    }
    assert_int_equal(p->frags[0]->frag_nkeys, 2);
    assert_int_equal(p->frags[0]->frag_keys[0], 0);
    assert_int_equal(p->frags[0]->frag_keys[1], 3);
    assert_int_equal(p->frags[2]->frag_nkeys, 1);
    assert_int_equal(p->frags[2]->frag_keys[0], 2);

    fanout_abort(p);
    assert_int_equal(p->nfrags, 0);
    assert_int_equal(p->pending, 0);
    assert_int_equal(p->refs, 1);
    assert_int_equal(f->rc.n, 3);       /* the fragments are gone */
    req_put(&f->p);
    assert_all_freed(f, 4);
    assert_int_equal(f->done_calls, 0);
}

static void
test_split_skips_servers_without_keys(void **state)
{
    static const uint32_t route[] = { 4, 1, 4, 1 };
    struct fixture *f = *state;

    split(f, "gets a b c d\r\n", route, 5);
    assert_int_equal(f->p->nfrags, 2);
    assert_int_equal(f->per_server[0], 1);
    assert_int_equal(f->per_server[1], 4);
    assert_buf(&f->p->frags[0]->out, "gets b d\r\n");
    assert_buf(&f->p->frags[1]->out, "gets a c\r\n");
    assert_int_equal(f->p->frags[1]->cmd, MC_GETS);
    fanout_abort(f->p);
}

static void
test_split_gat_keeps_exptime(void **state)
{
    static const uint32_t route[] = { 0, 1, 0 };
    struct fixture *f = *state;

    split(f, "gat 10 k1 k2 k3\r\n", route, 2);
    assert_buf(&f->p->frags[0]->out, "gat 10 k1 k3\r\n");
    assert_buf(&f->p->frags[1]->out, "gat 10 k2\r\n");
    fanout_abort(f->p);
}

static void
test_split_gats_negative_exptime(void **state)
{
    static const uint32_t route[] = { 1, 0 };
    struct fixture *f = *state;

    split(f, "gats -1 a b\r\n", route, 2);
    assert_buf(&f->p->frags[0]->out, "gats -1 b\r\n");
    assert_buf(&f->p->frags[1]->out, "gats -1 a\r\n");
    fanout_abort(f->p);
}

/* ---------------------------------------------------------------------
 * Merge
 * ------------------------------------------------------------------- */

/* A value for key k, one character ("1"). */
#define V(k) "VALUE " k " 0 2\r\nv" k "\r\n"

static const uint32_t route5[] = { 0, 1, 2, 0, 1 };
static const char *const replies5[] = {
    V("1") V("4") "END\r\n", V("2") V("5") "END\r\n", V("3") "END\r\n"
};

/* Five keys over three servers (route5), sent. */
static void
split5(struct fixture *f)
{
    split(f, "get 1 2 3 4 5\r\n", route5, 3);
    send_all(f);
}

/* The merged reply is want, the hits and misses counted so, and then
 * nothing is left but nreqs reqs in the cache. */
static void
assert_merged(struct fixture *f, const char *want, uint64_t hits,
              uint64_t misses, uint32_t nreqs)
{
    take_merged(f);
    assert_string_equal(f->merged, want);
    assert_int_equal(f->stats.get_hits, hits);
    assert_int_equal(f->stats.get_misses, misses);
    assert_all_freed(f, nreqs);
}

static void
test_merge_in_key_order_whatever_completion_order(void **state)
{
    static const uint32_t orders[][3] = {
        { 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 },
        { 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 },
    };
    struct fixture *f = *state;
    size_t o;
    uint32_t i;

    for (o = 0; o < sizeof(orders) / sizeof(orders[0]); o++) {
        memset(&f->stats, 0, sizeof(f->stats));
        f->done_calls = 0;
        split5(f);
        for (i = 0; i < 3; i++) {
            assert_int_equal(f->done_calls, 0);
            answer(f, orders[o][i], replies5[orders[o][i]]);
        }
        assert_int_equal(f->done_calls, 1);
        assert_merged(f, V("1") V("2") V("3") V("4") V("5") "END\r\n", 5,
                      0, 4);
        assert_int_equal(f->niov, 6);   /* no two neighbours share a frag */
    }
}

static void
test_adjacent_values_of_one_fragment_join(void **state)
{
    static const uint32_t route[] = { 0, 0, 1, 1, 0 };
    struct fixture *f = *state;

    split(f, "get 1 2 3 4 5\r\n", route, 2);
    send_all(f);
    assert_buf(&f->p->frags[0]->out, "get 1 2 5\r\n");
    answer(f, 1, V("3") V("4") "END\r\n");
    answer(f, 0, V("1") V("2") V("5") "END\r\n");
    assert_merged(f, V("1") V("2") V("3") V("4") V("5") "END\r\n", 5, 0, 3);
    /* the iovecs cut the merged bytes so: */
    assert_int_equal(f->niov, 4);
    assert_int_equal(f->iov[0].len, strlen(V("1") V("2")));
    assert_int_equal(f->iov[1].len, strlen(V("3") V("4")));
    assert_int_equal(f->iov[2].len, strlen(V("5")));
    assert_int_equal(f->iov[3].len, strlen("END\r\n"));
}

static void
test_miss_between_values_of_one_fragment_joins_them(void **state)
{
    static const uint32_t route[] = { 0, 1, 0 };
    struct fixture *f = *state;

    split(f, "get 1 2 3\r\n", route, 2);
    send_all(f);
    answer(f, 0, V("1") V("3") "END\r\n");
    answer(f, 1, "END\r\n");
    assert_merged(f, V("1") V("3") "END\r\n", 2, 1, 3);
    assert_int_equal(f->niov, 2);
}

static void
test_all_miss_is_end(void **state)
{
    struct fixture *f = *state;

    split5(f);
    answer(f, 2, "END\r\n");
    answer(f, 0, "END\r\n");
    answer(f, 1, "END\r\n");
    assert_merged(f, "END\r\n", 0, 5, 4);
    assert_int_equal(f->niov, 1);
}

static void
test_repeated_key_answered_twice(void **state)
{
    static const uint32_t route[] = { 0, 1, 0 };
    struct fixture *f = *state;

    split(f, "get a b a\r\n", route, 2);
    send_all(f);
    assert_buf(&f->p->frags[0]->out, "get a a\r\n");
    answer(f, 0, V("a") V("a") "END\r\n");
    answer(f, 1, V("b") "END\r\n");
    assert_merged(f, V("a") V("b") V("a") "END\r\n", 3, 0, 3);
}

static void
test_gets_values_with_cas_merge(void **state)
{
    static const uint32_t route[] = { 1, 0 };
    struct fixture *f = *state;

    split(f, "gets x y\r\n", route, 2);
    send_all(f);
    answer(f, 0, "VALUE y 3 1 77\r\nY\r\nEND\r\n");
    answer(f, 1, "VALUE x 5 2 76\r\nXX\r\nEND\r\n");
    assert_merged(f, "VALUE x 5 2 76\r\nXX\r\nVALUE y 3 1 77\r\nY\r\nEND\r\n",
                  2, 0, 3);
}

/* ---------------------------------------------------------------------
 * What a fragment was not asked, failures, error lines
 * ------------------------------------------------------------------- */

/* Fragment j's server fails (its connection fails what it had in
 * flight), and the fragment is done with. */
static void
server_fails(struct fixture *f, uint32_t j, const char *line)
{
    fanout_fail(f->frags[j], line);
    assert_true(f->frags[j]->failed);
    fanout_done(f->frags[j]);
}

static void
test_value_not_asked_is_eproto(void **state)
{
    struct fixture *f = *state;

    split5(f);
    /* fragment 0 asked for 1 and 4 */
    assert_int_equal(feed(f, 0, V("2")), UV_EPROTO);
    assert_int_equal(feed(f, 0, "VALUE 11 0 2\r\nxx\r\n"), UV_EPROTO);
    assert_int_equal(feed(f, 0, "VALUE 1x 0 2\r\nv1\r\n"), UV_EPROTO);
    /* in order only: after 4, 1 is no longer expected */
    assert_int_equal(feed(f, 0, V("4")), 0);
    assert_int_equal(feed(f, 0, V("1")), UV_EPROTO);
    assert_int_equal(feed(f, 0, V("4")), UV_EPROTO);  /* only once */
    /* a server that lost its framing is failed by its connection */
    server_fails(f, 0, "SERVER_ERROR test");
    server_fails(f, 1, "SERVER_ERROR test");
    server_fails(f, 2, "SERVER_ERROR test");
    assert_merged(f, "END\r\n", 0, 5, 4);
}

/* A pool with a key prefix: the parent is split over the line its
 * servers get (client.c puts the prefix in each key first), and each
 * VALUE must carry the prefixed key, which the client gets back without
 * it ('?' keys under libmc: after the '?'). */
static void
test_prefixed_values_come_back_unprefixed(void **state)
{
    static const uint32_t route[] = { 0, 1, 0 };
    struct fixture *f = *state;
    static const char line[] = "get app:k1 ?app:k2 app:k3\r\n";

    parse_parent(f, line);
    f->p->key_strip = 4;
    f->p->strip_after_q = true;
    assert_int_equal(fanout_split(f->p, line, &f->m, f->keys, route,
                                  f->per_server, 2), 0);
    send_all(f);
    assert_int_equal(f->frags[1]->key_strip, 4);
    assert_true(f->frags[1]->strip_after_q);
    assert_buf(&f->frags[0]->out, "get app:k1 app:k3\r\n");
    /* the client's own key is no answer: the server got the prefixed */
    assert_int_equal(feed(f, 0, "VALUE k1 0 2\r\nv1\r\n"), UV_EPROTO);
    assert_int_equal(feed(f, 1, "VALUE app:?k2 0 2\r\nv2\r\n"), UV_EPROTO);
    answer(f, 1, "VALUE ?app:k2 0 2\r\nv2\r\nEND\r\n");
    answer(f, 0, "VALUE app:k1 0 2\r\nv1\r\nVALUE app:k3 7 3 99\r\n"
                 "v33\r\nEND\r\n");
    assert_merged(f, "VALUE k1 0 2\r\nv1\r\nVALUE ?k2 0 2\r\nv2\r\n"
                     "VALUE k3 7 3 99\r\nv33\r\nEND\r\n", 3, 0, 3);
}

static void
test_failed_fragment_keys_miss(void **state)
{
    struct fixture *f = *state;

    split5(f);
    answer(f, 1, replies5[1]);
    /* 1 arrives, then the connection breaks before 4 */
    assert_int_equal(feed(f, 0, V("1")), 0);
    server_fails(f, 0, "SERVER_ERROR connection reset");
    assert_int_equal(f->done_calls, 0);
    answer(f, 2, replies5[2]);
    assert_int_equal(f->done_calls, 1);
    assert_merged(f, V("2") V("3") V("5") "END\r\n", 3, 2, 4);
}

static void
test_error_line_makes_fragment_keys_miss(void **state)
{
    struct fixture *f = *state;

    split5(f);
    answer(f, 0, replies5[0]);
    answer(f, 1, "SERVER_ERROR out of memory writing get response\r\n");
    answer(f, 2, replies5[2]);
    assert_merged(f, V("1") V("3") V("4") "END\r\n", 3, 2, 4);
}

/* The stream ended in an error line: what came before it is not the
 * answer (fanout.h: its keys miss), as for a single-server get, whose
 * client gets the error line alone. */
static void
test_error_line_after_values_drops_them(void **state)
{
    struct fixture *f = *state;

    split5(f);
    answer(f, 0, V("1") "SERVER_ERROR out of memory\r\n");
    answer(f, 1, replies5[1]);
    answer(f, 2, replies5[2]);
    assert_merged(f, V("2") V("3") V("5") "END\r\n", 3, 2, 4);
}

/* ---------------------------------------------------------------------
 * Owners and references
 * ------------------------------------------------------------------- */

static void
test_on_done_once_when_the_last_fragment_is_done(void **state)
{
    struct fixture *f = *state;

    split5(f);
    answer(f, 1, replies5[1]);
    assert_int_equal(f->p->pending, 2);
    answer(f, 0, replies5[0]);
    assert_int_equal(f->done_calls, 0);
    assert_false(f->p->done);
    answer(f, 2, replies5[2]);
    assert_int_equal(f->done_calls, 1);
    assert_int_equal(f->p->pending, 0);
    /* the fragments' refs on the parent are gone; it keeps them (their
     * replies hold the bytes) */
    assert_int_equal(f->p->refs, 1);
    assert_int_equal(f->p->nfrags, 3);
    assert_null(f->p->frags[0]->parent);
    assert_int_equal(f->p->frags[0]->refs, 1);
    assert_int_equal(f->rc.n, 0);
    take_merged(f);
    assert_int_equal(f->done_calls, 1);
    assert_all_freed(f, 4);
}

static void
test_without_owner_not_told_and_not_gathered(void **state)
{
    struct fixture *f = *state;

    split(f, "get 1 2 3 4 5\r\n", route5, 3);
    f->p->owner = NULL;
    send_all(f);
    answer(f, 0, replies5[0]);
    answer(f, 1, replies5[1]);
    answer(f, 2, replies5[2]);
    assert_true(f->p->done);
    assert_false(f->p->gathered);
    assert_int_equal(f->done_calls, 0);
    assert_int_equal(f->p->nfrags, 0);
    assert_int_equal(f->rc.n, 3);       /* fragments freed at once */
    assert_int_equal(f->p->refs, 1);
    assert_int_equal(f->stats.get_hits, 5);
    req_put(&f->p);
    assert_all_freed(f, 4);
}

static void
test_client_gone_mid_way_frees_everything(void **state)
{
    struct fixture *f = *state;
    struct req *p;

    split5(f);
    answer(f, 2, replies5[2]);
    /* the client closes: no owner, and it lets go of the parent */
    p = f->p;
    p->owner = NULL;
    req_put(&f->p);
    assert_int_equal(p->refs, 3);       /* one per fragment */
    server_fails(f, 0, "SERVER_ERROR connection reset");
    answer(f, 1, replies5[1]);
    assert_int_equal(f->done_calls, 0);
    assert_int_equal(f->stats.get_hits, 3);
    assert_int_equal(f->stats.get_misses, 2);
    assert_all_freed(f, 4);
}

/* ---------------------------------------------------------------------
 * flush_all
 * ------------------------------------------------------------------- */

static void
test_flush_all_one_fragment_per_server(void **state)
{
    struct fixture *f = *state;
    uint32_t j;

    flush_all(f, "flush_all 10\r\n", 3);
    assert_int_equal(f->p->nfrags, 3);
    assert_int_equal(f->p->pending, 3);
    assert_int_equal(f->p->refs, 4);
    for (j = 0; j < 3; j++) {
        assert_buf(&f->p->frags[j]->out, "flush_all 10\r\n");
        assert_int_equal(f->p->frags[j]->cmd, MC_FLUSH_ALL);
        assert_ptr_equal(f->p->frags[j]->parent, f->p);
    }
    fanout_abort(f->p);
    req_put(&f->p);
    assert_all_freed(f, 4);
}

/* flush_all over 3 servers answering replies[j]; the parent's reply. */
static void
flush_all_answered(struct fixture *f, const char *line,
                   const char *const *replies, const char *want)
{
    uint32_t j;

    flush_all(f, line, 3);
    send_all(f);
    for (j = 0; j < 3; j++) {
        answer(f, j, replies[j]);
    }
    assert_int_equal(f->done_calls, 1);
    assert_true(f->p->done);
    assert_false(f->p->gathered);
    assert_int_equal(f->p->nfrags, 0);
    assert_int_equal(f->p->refs, 1);
    assert_buf(&f->p->reply, want);
    req_put(&f->p);
    assert_all_freed(f, 4);
}

static void
test_flush_all_ok(void **state)
{
    static const char *const replies[] = { "OK\r\n", "OK\r\n", "OK\r\n" };

    flush_all_answered(*state, "flush_all\r\n", replies, "OK\r\n");
}

static void
test_flush_all_first_error_kept(void **state)
{
    static const char *const replies[] = {
        "OK\r\n", "SERVER_ERROR x\r\n", "SERVER_ERROR y\r\n"
    };

    flush_all_answered(*state, "flush_all\r\n", replies,
                       "SERVER_ERROR x\r\n");
}

static void
test_flush_all_error_line(void **state)
{
    static const char *const replies[] = { "OK\r\n", "OK\r\n", "ERROR\r\n" };

    flush_all_answered(*state, "flush_all\r\n", replies, "ERROR\r\n");
}

static void
test_flush_all_noreply_empty_reply(void **state)
{
    static const char *const replies[] = {
        "OK\r\n", "SERVER_ERROR x\r\n", "OK\r\n"
    };
    struct fixture *f = *state;

    flush_all(f, "flush_all noreply\r\n", 2);
    assert_true(f->p->noreply);
    assert_buf(&f->p->frags[0]->out, "flush_all\r\n"); /* the proxy waits */
    fanout_abort(f->p);
    req_put(&f->p);
    flush_all_answered(f, "flush_all noreply\r\n", replies, "");
}

static void
test_flush_all_failed_server(void **state)
{
    struct fixture *f = *state;

    flush_all(f, "flush_all\r\n", 2);
    send_all(f);
    answer(f, 0, "OK\r\n");
    server_fails(f, 1, "SERVER_ERROR connection refused");
    assert_int_equal(f->done_calls, 1);
    assert_buf(&f->p->reply, "SERVER_ERROR connection refused\r\n");
    req_put(&f->p);
    assert_all_freed(f, 3);
}

/* ---------------------------------------------------------------------
 * Out of memory
 * ------------------------------------------------------------------- */

/* Runs op (split or flush_all of the fixture's parent) with the n-th
 * allocation failing (0: none): its result. The parent is made first. */
static int
try_oom(struct fixture *f, bool is_flush, unsigned long n,
        unsigned long *tried)
{
    int err;

    parse_parent(f, is_flush ? "flush_all\r\n" : "get 1 2 3 4 5\r\n");
    alloc_fail_arm(n);
    if (is_flush) {
        err = fanout_flush_all(f->p, f->line, &f->m, 3);
    } else {
        err = fanout_split(f->p, f->line, &f->m, f->keys, route5,
                           f->per_server, 3);
    }
    *tried = alloc_fail_disarm();
    return err;
}

/* Fails each allocation of a split (flush_all) in turn, from an empty
 * cache: UV_ENOMEM, and fanout_abort() leaves nothing behind (ASan's
 * leak check in the sanitizer build). */
static void
oom_every_allocation(struct fixture *f, bool is_flush,
                     unsigned long at_least)
{
    unsigned long total, n, tried;

    assert_int_equal(try_oom(f, is_flush, 0, &total), 0);
    assert_true(total >= at_least);
    fanout_abort(f->p);
    req_put(&f->p);
    req_cache_drain(&f->rc);

    for (n = 1; n <= total; n++) {
        assert_int_equal(try_oom(f, is_flush, n, &tried), UV_ENOMEM);
        assert_true(tried == n);    /* it stops at the first failure */
        fanout_abort(f->p);
        assert_int_equal(f->p->nfrags, 0);
        assert_int_equal(f->p->refs, 1);
        req_put(&f->p);
        req_cache_drain(&f->rc);
    }
    /* and one allocation more than counted is never asked for */
    assert_int_equal(try_oom(f, is_flush, total + 1, &tried), 0);
    assert_int_equal(tried, total);
    fanout_abort(f->p);
}

static void
test_split_oom_at_every_allocation(void **state)
{
    /* keys, slots, frags, line; per fragment: req, frag_keys, out */
    oom_every_allocation(*state, false, 4 + 3 * 3);
}

static void
test_flush_all_oom_at_every_allocation(void **state)
{
    /* frags; per fragment: req, out */
    oom_every_allocation(*state, true, 1 + 3 * 2);
}

static void
test_split_oom_warm_cache_allocates_less(void **state)
{
    struct fixture *f = *state;
    unsigned long cold, warm;

    assert_int_equal(try_oom(f, false, 0, &cold), 0);
    fanout_abort(f->p);
    req_put(&f->p);
    assert_int_equal(try_oom(f, false, 0, &warm), 0);
    assert_true(warm < cold);
    fanout_abort(f->p);
}

static void
test_value_oom_then_fail(void **state)
{
    struct fixture *f = *state;
    unsigned long tried;

    split5(f);
    answer(f, 1, replies5[1]);
    alloc_fail_arm(1);
    assert_int_equal(feed(f, 0, V("1")), UV_ENOMEM);
    tried = alloc_fail_disarm();
    assert_int_equal(tried, 1);
    /* the connection fails what it had in flight */
    server_fails(f, 0, "SERVER_ERROR out of memory");
    answer(f, 2, replies5[2]);
    assert_merged(f, V("2") V("3") V("5") "END\r\n", 3, 2, 4);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fixture_setup, \
                                              fixture_teardown)
        T(test_split_three_servers_in_server_order),
        T(test_split_skips_servers_without_keys),
        T(test_split_gat_keeps_exptime),
        T(test_split_gats_negative_exptime),
        T(test_merge_in_key_order_whatever_completion_order),
        T(test_adjacent_values_of_one_fragment_join),
        T(test_miss_between_values_of_one_fragment_joins_them),
        T(test_all_miss_is_end),
        T(test_repeated_key_answered_twice),
        T(test_gets_values_with_cas_merge),
        T(test_value_not_asked_is_eproto),
        T(test_prefixed_values_come_back_unprefixed),
        T(test_failed_fragment_keys_miss),
        T(test_error_line_makes_fragment_keys_miss),
        T(test_error_line_after_values_drops_them),
        T(test_on_done_once_when_the_last_fragment_is_done),
        T(test_without_owner_not_told_and_not_gathered),
        T(test_client_gone_mid_way_frees_everything),
        T(test_flush_all_one_fragment_per_server),
        T(test_flush_all_ok),
        T(test_flush_all_first_error_kept),
        T(test_flush_all_error_line),
        T(test_flush_all_noreply_empty_reply),
        T(test_flush_all_failed_server),
        T(test_split_oom_at_every_allocation),
        T(test_flush_all_oom_at_every_allocation),
        T(test_split_oom_warm_cache_allocates_less),
        T(test_value_oom_then_fail),
#undef T
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
