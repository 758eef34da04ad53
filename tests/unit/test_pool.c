/*
 * pool tests: routing (hash_tag slice, hash, ring lookup) checked against
 * ring.h and hash.h directly, ejected servers off the ring, and the two
 * steps of a reload (prepare, then commit or abort) on pools built from
 * parsed configs. No traffic: servers are never connected.
 */
#include "memring/pool.h"

#include "memring/conf.h"
#include "memring/hash.h"
#include "memring/health.h"
#include "memring/ioloop.h"
#include "memring/limits.h"
#include "memring/ring.h"
#include "memring/server.h"

#include "fake_mc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define NKEYS   3000
#define NCONFS  16

static const char routing_yaml[] =
    "ket:\n"
    "  listen: 127.0.0.1:22121\n"
    "  distribution: ketama\n"
    "  servers:\n"
    "   - 127.0.0.1:11213:1\n"
    "   - 127.0.0.1:11211:1\n"
    "   - 127.0.0.1:11212:2\n"
    "mod:\n"
    "  listen: 127.0.0.1:22122\n"
    "  hash: md5\n"
    "  distribution: modula\n"
    "  servers:\n"
    "   - 127.0.0.1:11211:1 x\n"
    "   - 127.0.0.1:11212:1 y\n"
    "   - 127.0.0.1:11213:1 z\n"
    "tag:\n"
    "  listen: 127.0.0.1:22123\n"
    "  hash_tag: \"{}\"\n"
    "  servers:\n"
    "   - 127.0.0.1:11211:1 a\n"
    "   - 127.0.0.1:11212:1 b\n"
    "   - 127.0.0.1:11213:1 c\n"
    "one:\n"
    "  listen: 127.0.0.1:22124\n"
    "  servers:\n"
    "   - 127.0.0.1:11211:1\n"
    "ej:\n"
    "  listen: 127.0.0.1:22125\n"
    "  auto_eject_hosts: true\n"
    "  server_failure_limit: 1\n"
    "  servers:\n"
    "   - 127.0.0.1:11211:1 p\n"
    "   - 127.0.0.1:11212:1 q\n";

struct fixture {
    struct conf    *confs[NCONFS];
    struct ioloop  io;
    bool           io_ready;
    struct pool    *pools[8];
    uint32_t       npools;
    struct fake_mc fake;        /* a listener holding a port, when used */
};

static struct fixture fx;

static struct conf *
parse(const char *yaml)
{
    char err[CONF_ERR_LEN];
    struct conf *c;

    c = conf_parse(yaml, strlen(yaml), "t.yml", err, sizeof(err));
    if (c == NULL) {
        fprintf(stderr, "%s\n", err);
    }
    return c;
}

/* The config of pool "alpha" with the given server lines and extra keys;
 * kept until teardown. */
static struct conf *
alpha_conf(const char *extra, const char *servers)
{
    char yaml[1024];
    uint32_t i;

    snprintf(yaml, sizeof(yaml),
             "alpha:\n"
             "  listen: 127.0.0.1:22121\n"
             "%s"
             "  servers:\n"
             "%s", extra, servers);
    for (i = 0; i < NCONFS && fx.confs[i] != NULL; i++) {
    }
    assert_true(i < NCONFS);
    fx.confs[i] = parse(yaml);
    assert_non_null(fx.confs[i]);
    return fx.confs[i];
}

#define ABC "   - 127.0.0.1:11211:1 a\n" \
            "   - 127.0.0.1:11212:1 b\n" \
            "   - 127.0.0.1:11213:1 c\n"
#define ACD "   - 127.0.0.1:11211:1 a\n" \
            "   - 127.0.0.1:11213:1 c\n" \
            "   - 127.0.0.1:11214:1 d\n"

static struct pool *
make_pool(const struct conf_pool *cp)
{
    struct pool_env env;
    struct pool *p;

    memset(&env, 0, sizeof(env));
    env.io = &fx.io;
    p = pool_create(&env, cp);
    assert_non_null(p);
    fx.pools[fx.npools++] = p;
    return p;
}

static struct pool *
routing_pool(const char *name)
{
    uint32_t i;

    for (i = 0; i < fx.confs[0]->npools; i++) {
        if (strcmp(fx.confs[0]->pools[i].name, name) == 0) {
            return make_pool(&fx.confs[0]->pools[i]);
        }
    }
    fail_msg("no pool %s", name);
    return NULL;
}

static int
setup(void **state)
{
    struct limits limits;

    memset(&fx, 0, sizeof(fx));
    limits_default(&limits);
    if (ioloop_init(&fx.io, &limits) != 0) {
        return -1;
    }
    fx.io_ready = true;
    fx.confs[0] = parse(routing_yaml);
    *state = &fx;
    return fx.confs[0] != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
    uint32_t i;
    bool ok;

    (void)state;
    for (i = 0; i < fx.npools; i++) {
        pool_close(fx.pools[i]);
    }
    ok = fake_mc_stop(&fx.fake);
    ioloop_close(&fx.io);
    ok &= fake_run_down(&fx.io.loop, FAKE_WAIT_MS);
    for (i = 0; i < fx.npools; i++) {
        pool_destroy(&fx.pools[i]);
    }
    ioloop_deinit(&fx.io);
    for (i = 0; i < NCONFS; i++) {
        conf_destroy(&fx.confs[i]);
    }
    return ok ? 0 : -1;
}

/* The ring twemproxy would build from these names and weights. */
static struct ring *
reference_ring(enum dist_type dist, const char *const *names,
               const uint32_t *weights, uint32_t n)
{
    struct ring_node nodes[8];
    struct ring *r;
    uint32_t i;

    assert_true(n <= 8);
    for (i = 0; i < n; i++) {
        nodes[i].name = names[i];
        nodes[i].name_len = strlen(names[i]);
        nodes[i].weight = weights[i];
        nodes[i].live = true;
    }
    r = ring_create(dist, nodes, n);
    assert_non_null(r);
    return r;
}

/* pool_route() agrees with hash_key() + ring_lookup() for NKEYS keys, and
 * every server gets some. */
static void
assert_routes_like(struct pool *p, const struct ring *ring,
                   enum hash_type hash)
{
    uint32_t i, counts[8] = { 0 };
    char key[32];

    for (i = 0; i < NKEYS; i++) {
        size_t len = (size_t)snprintf(key, sizeof(key), "key:%u", i);
        int32_t idx = ring_lookup(ring, hash_key(hash, key, len));
        struct server *s = pool_route(p, key, len);

        assert_true(idx >= 0 && (uint32_t)idx < p->nservers);
        assert_ptr_equal(s, p->servers[idx]);
        counts[idx]++;
    }
    for (i = 0; i < p->nservers; i++) {
        assert_true(counts[i] > NKEYS / 10);
    }
}

/* ---------------------------------------------------------------------
 * Routing
 * ------------------------------------------------------------------- */

/* Three servers without aliases, weights 1, 1, 2: named as twemproxy names
 * them (":11211" left out), sorted shorter first. */
static void
test_route_ketama_like_ring(void **state)
{
    static const char *const names[] = {
        "127.0.0.1", "127.0.0.1:11212", "127.0.0.1:11213"
    };
    static const uint32_t weights[] = { 1, 2, 1 };
    struct pool *p = routing_pool("ket");
    struct ring *ring;
    uint32_t i;

    (void)state;
    assert_int_equal(p->nservers, 3);
    for (i = 0; i < 3; i++) {
        assert_string_equal(p->servers[i]->cs->name, names[i]);
        assert_int_equal(p->servers[i]->idx, i);
    }
    ring = reference_ring(DIST_KETAMA, names, weights, 3);
    assert_routes_like(p, ring, HASH_FNV1A_64);
    ring_destroy(&ring);
}

static void
test_route_modula_md5_like_ring(void **state)
{
    static const char *const names[] = { "x", "y", "z" };
    static const uint32_t weights[] = { 1, 1, 1 };
    struct pool *p = routing_pool("mod");
    struct ring *ring;

    (void)state;
    ring = reference_ring(DIST_MODULA, names, weights, 3);
    assert_routes_like(p, ring, HASH_MD5);
    ring_destroy(&ring);
}

/* hash_tag "{}": only what is between the braces is hashed. */
static void
test_route_hash_tag(void **state)
{
    static const char *const names[] = { "a", "b", "c" };
    static const uint32_t weights[] = { 1, 1, 1 };
    struct pool *p = routing_pool("tag");
    struct ring *ring = reference_ring(DIST_KETAMA, names, weights, 3);
    struct server *seen[3] = { NULL, NULL, NULL };
    char k1[32], k2[32], tag[16];
    uint32_t i, nseen = 0, j;

    (void)state;
    assert_ptr_equal(pool_route(p, "{a}x", 4), pool_route(p, "{a}y", 4));
    assert_ptr_equal(pool_route(p, "{a}x", 4), pool_route(p, "a", 1));
    assert_ptr_equal(pool_route(p, "{a}x", 4),
                     p->servers[ring_lookup(ring, hash_key(HASH_FNV1A_64,
                                                           "a", 1))]);
    for (i = 0; i < 200; i++) {
        struct server *s;
        snprintf(tag, sizeof(tag), "t%u", i);
        snprintf(k1, sizeof(k1), "user:{%s}:name", tag);
        snprintf(k2, sizeof(k2), "{%s}.mail", tag);
        s = pool_route(p, k1, strlen(k1));
        assert_ptr_equal(s, pool_route(p, k2, strlen(k2)));
        assert_ptr_equal(s, pool_route(p, tag, strlen(tag)));
        for (j = 0; j < nseen && seen[j] != s; j++) {
        }
        if (j == nseen) {
            seen[nseen++] = s;
        }
    }
    assert_int_equal(nseen, 3);     /* tags still spread over servers */
    /* nothing between the braces, or no closing brace: the whole key */
    assert_ptr_equal(pool_route(p, "{}x", 3),
                     p->servers[ring_lookup(ring, hash_key(HASH_FNV1A_64,
                                                           "{}x", 3))]);
    assert_ptr_equal(pool_route(p, "{abc", 4),
                     p->servers[ring_lookup(ring, hash_key(HASH_FNV1A_64,
                                                           "{abc", 4))]);
    ring_destroy(&ring);
}

static void
test_route_one_server(void **state)
{
    struct pool *p = routing_pool("one");
    char key[32];
    uint32_t i;

    (void)state;
    assert_int_equal(p->nservers, 1);
    for (i = 0; i < 100; i++) {
        size_t len = (size_t)snprintf(key, sizeof(key), "k%u", i);
        assert_ptr_equal(pool_route(p, key, len), p->servers[0]);
    }
    assert_ptr_equal(pool_route(p, "", 0), p->servers[0]);
}

/* An ejected server is off the ring at once (the shared health
 * generation changed); with every server ejected there is no route. */
static void
test_route_skips_ejected(void **state)
{
    const struct eject_policy once = { true, 1, 60000 };
    struct pool *p = routing_pool("ej");
    uint64_t now = uv_now(&fx.io.loop);
    char key[32];
    uint32_t i;

    (void)state;
    assert_true(health_failure(p->servers[0]->health, &once, now));
    for (i = 0; i < 200; i++) {
        size_t len = (size_t)snprintf(key, sizeof(key), "k%u", i);
        assert_ptr_equal(pool_route(p, key, len), p->servers[1]);
    }
    assert_false(p->servers[0]->live);
    assert_int_equal(p->nejected, 1);
    assert_true(health_failure(p->servers[1]->health, &once, now));
    assert_null(pool_route(p, "k0", 2));
    assert_int_equal(p->nejected, 2);
}

/* ---------------------------------------------------------------------
 * Reload
 * ------------------------------------------------------------------- */

static struct server *
by_name(struct pool *p, const char *name)
{
    uint32_t i;

    for (i = 0; i < p->nservers; i++) {
        if (strcmp(p->servers[i]->cs->name, name) == 0) {
            return p->servers[i];
        }
    }
    return NULL;
}

/* a, b, c -> a, c, d: a and c are the same objects (their connections
 * and counters stay), d is new, b is retired. */
static void
test_commit_keeps_surviving_servers(void **state)
{
    struct conf *c1 = alpha_conf("", ABC), *c2 = alpha_conf("", ACD);
    struct pool *p = make_pool(&c1->pools[0]);
    struct server *a = by_name(p, "a"), *b = by_name(p, "b");
    struct server *c = by_name(p, "c"), *d;
    struct pool_plan *plan = NULL;
    char what[256], key[32];
    uint32_t i;

    (void)state;
    a->stats.requests = 7;
    assert_int_equal(pool_prepare(p, &c2->pools[0], &plan), 0);
    assert_non_null(plan);
    /* prepared, not yet switched */
    assert_ptr_equal(p->cp, &c1->pools[0]);
    assert_ptr_equal(by_name(p, "b"), b);

    pool_commit(p, &plan, what, sizeof(what));
    assert_null(plan);
    assert_string_equal(what, "pool alpha: changed, 1 servers added, "
                        "1 removed");
    assert_ptr_equal(p->cp, &c2->pools[0]);
    assert_int_equal(p->nservers, 3);
    assert_ptr_equal(p->servers[0], a);
    assert_ptr_equal(p->servers[1], c);
    d = p->servers[2];
    assert_true(d != a && d != b && d != c);
    assert_string_equal(d->cs->name, "d");
    assert_int_equal(a->stats.requests, 7);
    assert_int_equal(c->idx, 1);
    assert_ptr_equal(c->cs, &c2->pools[0].servers[1]);
    assert_ptr_equal(p->retired, b);
    assert_true(b->retired);
    assert_null(b->next_retired);
    assert_false(a->retired || c->retired || d->retired);
    for (i = 0; i < 500; i++) {
        size_t len = (size_t)snprintf(key, sizeof(key), "k%u", i);
        assert_true(pool_route(p, key, len) != b);
    }
}

/* warmup_ms: the ring before a change stays for lookups while the window
 * is open; a server that left stays reachable (not drained); a key that
 * did not move has no previous server. */
static void
test_commit_opens_warm_up_window(void **state)
{
    struct conf *c1 = alpha_conf("  warmup_ms: 60000\n", ABC);
    struct conf *c2 = alpha_conf("  warmup_ms: 60000\n", ACD);
    struct pool *p = make_pool(&c1->pools[0]);
    struct server *b = by_name(p, "b"), *before[500];
    struct pool_plan *plan = NULL;
    char what[256], key[32];
    uint32_t i, moved = 0, from_b = 0;

    (void)state;
    assert_false(pool_warming(p));
    for (i = 0; i < 500; i++) {
        size_t len = (size_t)snprintf(key, sizeof(key), "k%u", i);
        before[i] = pool_route(p, key, len);
        assert_null(pool_route_prev(p, key, len, before[i]));
    }
    assert_int_equal(pool_prepare(p, &c2->pools[0], &plan), 0);
    pool_commit(p, &plan, what, sizeof(what));
    assert_true(pool_warming(p));
    assert_ptr_equal(p->window.cp, &c1->pools[0]);
    for (i = 0; i < 500; i++) {
        size_t len = (size_t)snprintf(key, sizeof(key), "k%u", i);
        struct server *now = pool_route(p, key, len);
        struct server *prev = pool_route_prev(p, key, len, now);

        if (now == before[i]) {
            assert_null(prev);
        } else {
            assert_ptr_equal(prev, before[i]);
            moved++;
            from_b += prev == b;
        }
    }
    assert_true(moved > 50);
    assert_true(from_b > 50);       /* b left, its keys are looked up */
    assert_true(b->retired);
    /* the window closes when its time is up */
    p->window.until = uv_now(&p->env.io->loop);
    assert_false(pool_warming(p));
    assert_null(p->window.ring);
    assert_null(pool_route_prev(p, "k1", 2, NULL));
}

/* Without warmup_ms no window opens. */
static void
test_commit_without_warmup_opens_none(void **state)
{
    struct conf *c1 = alpha_conf("", ABC), *c2 = alpha_conf("", ACD);
    struct pool *p = make_pool(&c1->pools[0]);
    struct pool_plan *plan = NULL;
    char what[256];

    (void)state;
    assert_int_equal(pool_prepare(p, &c2->pools[0], &plan), 0);
    pool_commit(p, &plan, what, sizeof(what));
    assert_false(pool_warming(p));
}

/* The same list again: nothing changes, not even the ring. */
static void
test_commit_unchanged(void **state)
{
    struct conf *c1 = alpha_conf("", ABC), *c2 = alpha_conf("", ABC);
    struct pool *p = make_pool(&c1->pools[0]);
    struct server *before[3];
    struct pool_plan *plan = NULL;
    const struct ring *ring = p->ring;
    char what[256];
    uint32_t i;

    (void)state;
    memcpy(before, p->servers, sizeof(before));
    assert_true(pool_same(p, &c2->pools[0]));
    assert_int_equal(pool_prepare(p, &c2->pools[0], &plan), 0);
    pool_commit(p, &plan, what, sizeof(what));
    assert_string_equal(what, "pool alpha: unchanged, 0 servers added, "
                        "0 removed");
    for (i = 0; i < 3; i++) {
        assert_ptr_equal(p->servers[i], before[i]);
        assert_ptr_equal(p->servers[i]->cs, &c2->pools[0].servers[i]);
    }
    assert_ptr_equal(p->ring, ring);
    assert_null(p->retired);
}

static void
routes_of(struct pool *p, struct server **out, uint32_t n)
{
    char key[32];
    uint32_t i;

    for (i = 0; i < n; i++) {
        size_t len = (size_t)snprintf(key, sizeof(key), "k%u", i);
        out[i] = pool_route(p, key, len);
    }
}

/* Counts p's loop's TCP handles that are not closing. */
static void
count_tcp(uv_handle_t *h, void *arg)
{
    if (h->type == UV_TCP && !uv_is_closing(h)) {
        (*(uint32_t *)arg)++;
    }
}

static uint32_t
open_tcp_handles(void)
{
    uint32_t n = 0;

    uv_walk(&fx.io.loop, count_tcp, &n);
    return n;
}

/* A prepared plan, servers and a new listener included, is undone
 * without a trace. */
static void
test_abort_leaves_pool_unchanged(void **state)
{
    struct conf *c1 = alpha_conf("", ABC), *c2 = alpha_conf("", ACD);
    struct pool *p = make_pool(&c1->pools[0]);
    struct server *before[3], *routes[200], *after[200];
    struct server **servers = p->servers;
    struct pool_plan *plan = NULL;
    const struct ring *ring = p->ring;

    (void)state;
    memcpy(before, p->servers, sizeof(before));
    routes_of(p, routes, 200);
    c2->pools[0].listen.port = 0;       /* moves: a listener is bound */
    free(c2->pools[0].listen.text);
    c2->pools[0].listen.text = strdup("127.0.0.1:0");
    assert_non_null(c2->pools[0].listen.text);
    assert_int_equal(pool_prepare(p, &c2->pools[0], &plan), 0);
    assert_non_null(plan);
    assert_int_equal(open_tcp_handles(), 1);

    pool_abort(&plan);
    assert_null(plan);
    assert_int_equal(open_tcp_handles(), 0);
    assert_ptr_equal(p->cp, &c1->pools[0]);
    assert_ptr_equal(p->servers, servers);
    assert_int_equal(p->nservers, 3);
    assert_memory_equal(p->servers, before, sizeof(before));
    assert_ptr_equal(p->ring, ring);
    assert_null(p->retired);
    assert_null(p->listener);
    routes_of(p, after, 200);
    assert_memory_equal(routes, after, sizeof(routes));
    pool_abort(&plan);      /* NULL: a no-op */
}

/* A listen address that cannot be bound fails the prepare, which then
 * leaves nothing behind. */
static void
test_prepare_fails_on_busy_address(void **state)
{
    struct conf *c1 = alpha_conf("", ABC), *c2 = alpha_conf("", ACD);
    struct pool *p = make_pool(&c1->pools[0]);
    struct pool_plan *plan = (struct pool_plan *)&plan;  /* not NULL */
    char text[32];

    (void)state;
    assert_int_equal(fake_mc_start(&fx.fake, &fx.io.loop, FAKE_MC_SCRIPTED,
                                   NULL), 0);
    snprintf(text, sizeof(text), "127.0.0.1:%u", fx.fake.port);
    c2->pools[0].listen.port = fx.fake.port;
    free(c2->pools[0].listen.text);
    c2->pools[0].listen.text = strdup(text);
    assert_non_null(c2->pools[0].listen.text);
    assert_int_equal(pool_prepare(p, &c2->pools[0], &plan), UV_EADDRINUSE);
    assert_null(plan);
    assert_ptr_equal(p->cp, &c1->pools[0]);
    assert_int_equal(p->nservers, 3);
    assert_int_equal(open_tcp_handles(), 1);    /* the fake's own */
}

/* pool_same: true only when nothing but pointers would change. */
static void
test_pool_same(void **state)
{
    struct conf *c1 = alpha_conf("", ABC);
    struct conf *same = alpha_conf("", ABC);
    struct conf *tmo = alpha_conf("  timeout: 400\n", ABC);
    struct conf *w = alpha_conf("",
                                "   - 127.0.0.1:11211:1 a\n"
                                "   - 127.0.0.1:11212:2 b\n"
                                "   - 127.0.0.1:11213:1 c\n");
    struct pool *p = make_pool(&c1->pools[0]);

    (void)state;
    assert_true(pool_same(p, &c1->pools[0]));
    assert_true(pool_same(p, &same->pools[0]));
    assert_false(pool_same(p, &tmo->pools[0]));
    assert_false(pool_same(p, &w->pools[0]));
    assert_false(pool_same(p, &alpha_conf("", ACD)->pools[0]));
    assert_false(pool_same(p, &alpha_conf("  hash: md5\n", ABC)->pools[0]));
    assert_false(pool_same(p, &alpha_conf("  hash_tag: \"{}\"\n",
                                          ABC)->pools[0]));
    /* servers listed in their sorted order: only the placement changes */
    assert_false(pool_same(p, &alpha_conf("  placement: libmemcached_ketama\n",
                                          ABC)->pools[0]));
    assert_false(pool_same(p, &alpha_conf("  prefix: \"x:\"\n",
                                          ABC)->pools[0]));
    p = make_pool(&alpha_conf("  prefix: \"x:\"\n", ABC)->pools[0]);
    assert_true(pool_same(p, &alpha_conf("  prefix: \"x:\"\n",
                                         ABC)->pools[0]));
    assert_false(pool_same(p, &alpha_conf("  prefix: \"y:\"\n",
                                          ABC)->pools[0]));
    assert_false(pool_same(p, &alpha_conf("  prefix: \"x:y\"\n",
                                          ABC)->pools[0]));
    /* the same address under another name is another server */
    assert_false(pool_same(p, &alpha_conf("",
                                          "   - 127.0.0.1:11211:1 a\n"
                                          "   - 127.0.0.1:11212:1 b\n"
                                          "   - 127.0.0.1:11213:1 e\n")
                                   ->pools[0]));
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_route_ketama_like_ring),
        T(test_route_modula_md5_like_ring),
        T(test_route_hash_tag),
        T(test_route_one_server),
        T(test_route_skips_ejected),
        T(test_commit_keeps_surviving_servers),
        T(test_commit_unchanged),
        T(test_commit_opens_warm_up_window),
        T(test_commit_without_warmup_opens_none),
        T(test_abort_leaves_pool_unchanged),
        T(test_prepare_fails_on_busy_address),
        T(test_pool_same),
    };
#undef T

    return cmocka_run_group_tests(tests, NULL, NULL);
}
