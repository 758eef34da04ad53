/*
 * warmup tests: a multi-get split over servers (fanout) whose misses get
 * a round of lookups ("mg <key> v f t") on other servers, fed meta
 * replies parsed with mc_parse_rsp() as a server connection does; the
 * merged reply in key order; the copies' bytes ("ms ... ME"); gets'
 * round of copies whose CAS the client gets; failures and error lines;
 * the client's key under a pool's key prefix; meta reply parsing.
 */
#include "memring/warmup.h"

#include "memring/buf.h"
#include "memring/fanout.h"
#include "memring/mc_parse.h"
#include "memring/req.h"
#include "memring/stats.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include <cmocka.h>

#define KEYS_CAP 8
#define NSERVERS 4
#define FRAGS_MAX 16
#define MERGED_MAX 1024

struct fixture {
    struct req_cache  rc;
    uint64_t          freed;
    struct pool_stats stats;
    struct mc_req     m;
    struct mc_span    keys[KEYS_CAP];
    uint32_t          per_server[NSERVERS];
    struct req        *p;
    struct req        *frags[FRAGS_MAX];  /* refs the "servers" hold */
    uint32_t          nsent;
    /* the next rounds the test asks for from the round callback */
    enum mc_cmd       round_cmd[2];
    uint32_t          round_route[2][KEYS_CAP];
    uint32_t          nrounds;
    uint32_t          rounds_run;
    int               done_calls;
    char              merged[MERGED_MAX];
};

static struct fixture fx;

static int
setup(void **state)
{
    memset(&fx, 0, sizeof(fx));
    req_cache_init(&fx.rc, &fx.freed);
    *state = &fx;
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    req_put(&fx.p);
    req_cache_drain(&fx.rc);
    return 0;
}

static void
on_done(struct req *r)
{
    assert_ptr_equal(r, fx.p);
    fx.done_calls++;
}

/* The "servers" take a ref on each fragment sent since the last call. */
static void
send_new(struct fixture *f)
{
    uint32_t j;

    for (j = f->nsent; j < f->p->nfrags; j++) {
        assert_true(j < FRAGS_MAX);
        f->frags[j] = f->p->frags[j];
        req_ref(f->frags[j]);
    }
    f->nsent = f->p->nfrags;
}

/* The round callback: the rounds the test queued, in turn. */
static bool
on_round(struct req *p)
{
    struct fixture *f = &fx;
    uint32_t r = f->rounds_run;

    if (r >= f->nrounds) {
        return false;
    }
    f->rounds_run++;
    assert_int_equal(warmup_round(p, f->round_cmd[r], f->round_route[r],
                                  f->per_server, NSERVERS), 0);
    if (p->pending == 0) {
        return false;
    }
    send_new(f);
    return true;
}

/* line split over the servers, key i to route[i]; every fragment sent. */
static void
split(struct fixture *f, const char *line, const uint32_t *route)
{
    assert_int_equal(mc_parse_req(line, strlen(line), &f->m, f->keys,
                                  KEYS_CAP), PARSE_OK);
    f->p = req_create(&f->rc, &f->stats, f->m.cmd);
    assert_non_null(f->p);
    f->p->owner = f;
    f->p->on_done = on_done;
    f->p->nkeys = f->m.nkeys;
    f->p->on_round = on_round;
    f->p->exptime = f->m.exptime;
    assert_int_equal(fanout_split(f->p, line, &f->m, f->keys, route,
                                  f->per_server, NSERVERS), 0);
    send_new(f);
}

static void
queue_round(struct fixture *f, enum mc_cmd cmd, const uint32_t *route,
            uint32_t nkeys)
{
    f->round_cmd[f->nrounds] = cmd;
    memcpy(f->round_route[f->nrounds], route, nkeys * sizeof(*route));
    f->nrounds++;
}

static void
assert_out(const struct req *r, const char *want)
{
    assert_int_equal(buf_unread(&r->out), strlen(want));
    assert_memory_equal(buf_head(&r->out), want, strlen(want));
}

/* Fragment j gets reply unit by unit, as server.c hands them on. */
static void
answer(struct fixture *f, uint32_t j, const char *reply)
{
    struct req *frag = f->frags[j];
    size_t off = 0, len = strlen(reply);
    int last = 0;

    while (off < len) {
        struct mc_rsp u;

        assert_int_equal(mc_parse_rsp(reply + off, len - off, &u), PARSE_OK);
        if (frag->cmd == MC_META_GET || frag->cmd == MC_META_ADD) {
            assert_true(mc_rsp_fits(frag->cmd, &u));
            last = warmup_unit(frag, reply + off, &u);
            assert_true(last >= 0);
        } else if (u.type == MC_RSP_VALUE) {
            assert_int_equal(fanout_value(frag, reply + off, &u), 0);
        } else if (u.type == MC_RSP_END) {
            last = 1;
        }
        off += u.len;
    }
    assert_int_equal(last, 1);
    fanout_done(f->frags[j]);
}

static void
take_merged(struct fixture *f)
{
    struct req *reqs[KEYS_CAP + 1];
    uv_buf_t iov[KEYS_CAP + 1];
    uint32_t i, n;
    size_t len = 0;

    assert_int_equal(f->done_calls, 1);
    assert_true(f->p->gathered);
    n = fanout_iov(f->p, reqs, iov);
    for (i = 0; i < n; i++) {
        assert_true(len + iov[i].len < MERGED_MAX);
        memcpy(f->merged + len, iov[i].base, iov[i].len);
        len += iov[i].len;
    }
    f->merged[len] = '\0';
    for (i = 0; i < n; i++) {
        req_put(&reqs[i]);
    }
    f->p = NULL;
}

#define N WARMUP_NONE

/* get a b c: a on server 0 hits; b (server 1) and c (server 0) miss and
 * are looked up on servers 2 and 3. */
static void
lookups_abc(struct fixture *f, const char *cmd, const uint32_t *copy_route)
{
    static const uint32_t route[] = { 0, 1, 0 };
    static const uint32_t prev[] = { N, 2, 3 };
    char line[64];

    snprintf(line, sizeof(line), "%s a b c\r\n", cmd);
    queue_round(f, MC_META_GET, prev, 3);
    if (copy_route != NULL) {
        queue_round(f, MC_META_ADD, copy_route, 3);
    }
    split(f, line, route);
    assert_int_equal(f->nsent, 2);
    answer(f, 1, "END\r\n");
    assert_int_equal(f->rounds_run, 0);
    answer(f, 0, f->p->cmd == MC_GETS ? "VALUE a 1 1 9\r\nA\r\nEND\r\n" :
                                        "VALUE a 1 1\r\nA\r\nEND\r\n");
    assert_int_equal(f->rounds_run, 1);
    assert_int_equal(f->nsent, 4);
    assert_int_equal(f->done_calls, 0);
    assert_out(f->frags[2], "mg b v f t\r\n");
    assert_out(f->frags[3], "mg c v f t\r\n");
    assert_int_equal(f->frags[2]->cmd, MC_META_GET);
    assert_int_equal(STATS_READ(f->stats.warmup_lookups), 2);
}

static void
test_lookup_hits_merge_in_key_order(void **state)
{
    struct fixture *f = *state;
    struct buf copy = { 0 };

    lookups_abc(f, "get", NULL);
    answer(f, 3, "EN\r\n");
    answer(f, 2, "VA 2 f5 t100\r\nBB\r\n");
    assert_true(warmup_found(f->p, 1));
    assert_false(warmup_found(f->p, 0));
    assert_false(warmup_found(f->p, 2));
    assert_int_equal(warmup_copy(&copy, f->p, 1, false), 0);
    assert_int_equal(copy.len, strlen("ms b 2 F5 T100 ME\r\nBB\r\n"));
    assert_memory_equal(copy.data, "ms b 2 F5 T100 ME\r\nBB\r\n", copy.len);
    buf_free(&copy);
    take_merged(f);
    assert_string_equal(f->merged, "VALUE a 1 1\r\nA\r\n"
                                   "VALUE b 5 2\r\nBB\r\nEND\r\n");
    assert_int_equal(STATS_READ(f->stats.warmup_hits), 1);
    assert_int_equal(STATS_READ(f->stats.get_hits), 2);
    assert_int_equal(STATS_READ(f->stats.get_misses), 1);
}

static void
test_no_expiry_copies_with_t0_and_near_expiry_with_t1(void **state)
{
    struct fixture *f = *state;
    struct buf copy = { 0 };

    lookups_abc(f, "get", NULL);
    answer(f, 2, "VA 1 f0 t-1\r\nb\r\n");
    answer(f, 3, "VA 1 t0\r\nc\r\n");
    assert_int_equal(warmup_copy(&copy, f->p, 1, false), 0);
    assert_int_equal(warmup_copy(&copy, f->p, 2, true), 0);
    assert_int_equal(copy.len, strlen("ms b 1 F0 T0 ME\r\nb\r\n"
                                      "ms c 1 F0 T1 ME c\r\nc\r\n"));
    assert_memory_equal(copy.data, "ms b 1 F0 T0 ME\r\nb\r\n"
                                   "ms c 1 F0 T1 ME c\r\nc\r\n", copy.len);
    buf_free(&copy);
    take_merged(f);
}

static void
test_ttl_over_thirty_days_becomes_a_unix_time(void **state)
{
    struct fixture *f = *state;
    struct buf copy = { 0 };
    long long t;
    time_t now = time(NULL);

    lookups_abc(f, "get", NULL);
    answer(f, 2, "VA 1 t2592001\r\nb\r\n");
    answer(f, 3, "EN\r\n");
    assert_int_equal(warmup_copy(&copy, f->p, 1, false), 0);
    buf_append(&copy, "", 1);
    assert_int_equal(sscanf(copy.data, "ms b 1 F0 T%lld ME", &t), 1);
    assert_true(t >= (long long)now + 2592001 &&
                t <= (long long)time(NULL) + 2592001);
    buf_free(&copy);
    take_merged(f);
}

static void
test_gat_copies_take_the_gat_exptime(void **state)
{
    struct fixture *f = *state;
    struct buf copy = { 0 };

    lookups_abc(f, "gat 777", NULL);
    answer(f, 2, "VA 1 t30\r\nb\r\n");
    answer(f, 3, "EN\r\n");
    assert_int_equal(warmup_copy(&copy, f->p, 1, false), 0);
    assert_int_equal(copy.len, strlen("ms b 1 F0 T777 ME\r\nb\r\n"));
    assert_memory_equal(copy.data, "ms b 1 F0 T777 ME\r\nb\r\n", copy.len);
    buf_free(&copy);
    take_merged(f);
}

/* gets: round 3 copies to the keys' servers now; the client gets the
 * copy's CAS, or a miss where the add was refused. */
static void
test_gets_gets_the_copys_cas_or_a_miss(void **state)
{
    static const uint32_t now[] = { N, 1, 0 };
    struct fixture *f = *state;

    lookups_abc(f, "gets", now);
    answer(f, 2, "VA 2 f7 t60\r\nBB\r\n");
    answer(f, 3, "VA 2 f8 t60\r\nCC\r\n");
    assert_int_equal(f->rounds_run, 2);
    assert_int_equal(f->nsent, 6);
    assert_out(f->frags[4], "ms c 2 F8 T60 ME c\r\nCC\r\n");
    assert_out(f->frags[5], "ms b 2 F7 T60 ME c\r\nBB\r\n");
    answer(f, 5, "HD c77\r\n");
    answer(f, 4, "NS\r\n");
    take_merged(f);
    assert_string_equal(f->merged, "VALUE a 1 1 9\r\nA\r\n"
                                   "VALUE b 7 2 77\r\nBB\r\nEND\r\n");
    assert_int_equal(STATS_READ(f->stats.warmup_copies), 1);
}

static void
test_failed_copy_leaves_no_value_without_cas(void **state)
{
    static const uint32_t now[] = { N, 1, N };
    struct fixture *f = *state;

    lookups_abc(f, "gets", now);
    answer(f, 2, "VA 2 t60\r\nBB\r\n");
    answer(f, 3, "EN\r\n");
    fanout_fail(f->frags[4], "SERVER_ERROR timed out");
    fanout_done(f->frags[4]);
    take_merged(f);
    assert_string_equal(f->merged, "VALUE a 1 1 9\r\nA\r\nEND\r\n");
}

static void
test_error_line_misses_one_key_of_a_lookup(void **state)
{
    static const uint32_t route[] = { 0, 0, 0 };
    static const uint32_t prev[] = { 1, 1, 1 };
    struct fixture *f = *state;

    queue_round(f, MC_META_GET, prev, 3);
    split(f, "get a b c\r\n", route);
    answer(f, 0, "END\r\n");
    assert_out(f->frags[1], "mg a v f t\r\nmg b v f t\r\nmg c v f t\r\n");
    answer(f, 1, "VA 1\r\na\r\nCLIENT_ERROR bad command line format\r\n"
                 "VA 1\r\nc\r\n");
    take_merged(f);
    assert_string_equal(f->merged, "VALUE a 0 1\r\na\r\n"
                                   "VALUE c 0 1\r\nc\r\nEND\r\n");
}

static void
test_failed_lookup_keys_miss(void **state)
{
    struct fixture *f = *state;

    lookups_abc(f, "get", NULL);
    answer(f, 3, "VA 1\r\nc\r\n");
    fanout_fail(f->frags[2], "SERVER_ERROR connection refused");
    fanout_done(f->frags[2]);
    take_merged(f);
    assert_string_equal(f->merged, "VALUE a 1 1\r\nA\r\n"
                                   "VALUE c 0 1\r\nc\r\nEND\r\n");
}

static void
test_a_unit_past_the_keys_asked_is_eproto(void **state)
{
    struct fixture *f = *state;
    struct mc_rsp u;

    lookups_abc(f, "get", NULL);
    answer(f, 2, "EN\r\n");
    assert_int_equal(mc_parse_rsp("EN\r\n", 4, &u), PARSE_OK);
    assert_int_equal(warmup_unit(f->frags[2], "EN\r\n", &u), UV_EPROTO);
    answer(f, 3, "EN\r\n");
    take_merged(f);
}

/* A pool's key prefix: servers get "app:b", the client its own key. */
static void
test_prefixed_keys_come_back_as_the_client_wrote_them(void **state)
{
    static const uint32_t route[] = { 0, 1 };
    static const uint32_t prev[] = { N, 2 };
    struct fixture *f = *state;
    char out[MC_KEY_MAX];
    size_t len;
    const char *k;

    queue_round(f, MC_META_GET, prev, 2);
    split(f, "get app:a ?app:b\r\n", route);
    f->p->key_strip = 4;
    f->p->strip_after_q = true;
    k = warmup_client_key(f->p, 0, out, &len);
    assert_int_equal(len, 1);
    assert_memory_equal(k, "a", 1);
    k = warmup_client_key(f->p, 1, out, &len);
    assert_int_equal(len, 2);
    assert_memory_equal(k, "?b", 2);
    answer(f, 0, "END\r\n");
    answer(f, 1, "END\r\n");
    assert_out(f->frags[2], "mg ?app:b v f t\r\n");
    answer(f, 2, "VA 1\r\nb\r\n");
    take_merged(f);
    assert_string_equal(f->merged, "VALUE ?b 0 1\r\nb\r\nEND\r\n");
}

static void
test_no_round_when_nothing_moved(void **state)
{
    static const uint32_t route[] = { 0, 1 };
    static const uint32_t prev[] = { N, N };
    struct fixture *f = *state;

    queue_round(f, MC_META_GET, prev, 2);
    split(f, "get a b\r\n", route);
    answer(f, 0, "END\r\n");
    answer(f, 1, "END\r\n");
    assert_int_equal(f->nsent, 2);
    take_merged(f);
    assert_string_equal(f->merged, "END\r\n");
}

/* ---------------------------------------------------------------------
 * Meta replies (mc_parse)
 * ------------------------------------------------------------------- */

static void
test_meta_replies_parse(void **state)
{
    static const char va[] = "VA 3 f12 t-1 c99\r\nabc\r\n";
    struct mc_rsp u;
    int64_t v;

    (void)state;
    assert_int_equal(mc_parse_rsp(va, sizeof(va) - 1, &u), PARSE_OK);
    assert_int_equal(u.type, MC_RSP_META_VALUE);
    assert_int_equal(u.len, sizeof(va) - 1);
    assert_int_equal(u.vlen, 3);
    assert_true(mc_meta_number(va, &u, 'f', &v));
    assert_int_equal(v, 12);
    assert_true(mc_meta_number(va, &u, 't', &v));
    assert_int_equal(v, -1);
    assert_true(mc_meta_number(va, &u, 'c', &v));
    assert_int_equal(v, 99);
    assert_false(mc_meta_number(va, &u, 's', &v));
    assert_int_equal(mc_parse_rsp(va, 20, &u), PARSE_AGAIN);
    assert_int_equal(u.len, sizeof(va) - 1);
    assert_int_equal(mc_parse_rsp("VA 3\r\nabcd\r\n", 11, &u), PARSE_ERROR);
    assert_int_equal(mc_parse_rsp("VA x\r\n", 6, &u), PARSE_ERROR);

    assert_int_equal(mc_parse_rsp("HD c5\r\n", 7, &u), PARSE_OK);
    assert_int_equal(u.word, MC_WORD_META_HD);
    assert_true(mc_meta_number("HD c5\r\n", &u, 'c', &v));
    assert_int_equal(v, 5);
    assert_int_equal(mc_parse_rsp("EN\r\n", 4, &u), PARSE_OK);
    assert_int_equal(u.word, MC_WORD_META_EN);
    assert_int_equal(mc_parse_rsp("ENx\r\n", 5, &u), PARSE_ERROR);
    assert_int_equal(mc_parse_rsp("NS\r\n", 4, &u), PARSE_OK);
    assert_int_equal(u.word, MC_WORD_META_NS);
}

static void
test_meta_replies_fit_only_meta_requests(void **state)
{
    struct mc_rsp u;

    (void)state;
    assert_int_equal(mc_parse_rsp("EN\r\n", 4, &u), PARSE_OK);
    assert_true(mc_rsp_fits(MC_META_GET, &u));
    assert_false(mc_rsp_fits(MC_GET, &u));
    assert_false(mc_rsp_fits(MC_DELETE, &u));
    assert_false(mc_rsp_fits(MC_META_ADD, &u));
    assert_int_equal(mc_parse_rsp("VA 1\r\na\r\n", 9, &u), PARSE_OK);
    assert_true(mc_rsp_fits(MC_META_GET, &u));
    assert_false(mc_rsp_fits(MC_GET, &u));
    assert_int_equal(mc_parse_rsp("HD\r\n", 4, &u), PARSE_OK);
    assert_true(mc_rsp_fits(MC_META_ADD, &u));
    assert_false(mc_rsp_fits(MC_SET, &u));
    assert_int_equal(mc_parse_rsp("STORED\r\n", 8, &u), PARSE_OK);
    assert_false(mc_rsp_fits(MC_META_ADD, &u));
    assert_int_equal(mc_parse_rsp("ERROR\r\n", 7, &u), PARSE_OK);
    assert_true(mc_rsp_fits(MC_META_GET, &u));
    /* a client's "mg" is not one of memring's own meta requests */
    {
        struct mc_req m;
        struct mc_span keys[2];

        assert_int_equal(mc_parse_req("mg a v\r\n", 8, &m, keys, 2),
                         PARSE_OK);
        assert_int_equal(m.cmd, MC_MG);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_lookup_hits_merge_in_key_order),
        T(test_no_expiry_copies_with_t0_and_near_expiry_with_t1),
        T(test_ttl_over_thirty_days_becomes_a_unix_time),
        T(test_gat_copies_take_the_gat_exptime),
        T(test_gets_gets_the_copys_cas_or_a_miss),
        T(test_failed_copy_leaves_no_value_without_cas),
        T(test_error_line_misses_one_key_of_a_lookup),
        T(test_failed_lookup_keys_miss),
        T(test_a_unit_past_the_keys_asked_is_eproto),
        T(test_prefixed_keys_come_back_as_the_client_wrote_them),
        T(test_no_round_when_nothing_moved),
        T(test_meta_replies_parse),
        T(test_meta_replies_fit_only_meta_requests),
#undef T
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
