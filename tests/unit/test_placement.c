/*
 * placement and ring_tool tests: the rule a pool config places keys by
 * (hash_tag, key hash, ring, liveness), and ring diff's report of a config
 * change, through their headers.
 */
#include "memring/placement.h"

#include "memring/conf.h"
#include "memring/hash.h"
#include "memring/ring.h"
#include "memring/ring_tool.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define POOL(servers, extra)                                                \
    "alpha:\n  listen: 127.0.0.1:22121\n" extra "  servers:\n" servers

#define FOUR                                                                \
    "    - 10.0.0.1:11211:1 a\n    - 10.0.0.2:11211:1 b\n"                 \
    "    - 10.0.0.3:11211:1 c\n    - 10.0.0.4:11211:1 d\n"

static struct conf *
parse(const char *yaml)
{
    char err[512];
    struct conf *c = conf_parse(yaml, strlen(yaml), "t.yml", err,
                                sizeof(err));

    if (c == NULL) {
        fail_msg("%s", err);
    }
    return c;
}

/* The route is the ring's answer for the key's hash. */
static void
test_route_is_hash_then_ring(void **state)
{
    struct conf *c = parse(POOL(FOUR, "  hash: md5\n"));
    const struct conf_pool *cp = &c->pools[0];
    struct ring *r = placement_ring(cp, NULL);
    char key[32];
    int i;

    (void)state;
    assert_non_null(r);
    for (i = 0; i < 1000; i++) {
        int n = snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(placement_route(cp, r, key, (size_t)n),
                         ring_lookup(r, hash_key(HASH_MD5, key, (size_t)n)));
    }
    ring_destroy(&r);
    conf_destroy(&c);
}

/* With a hash tag, only the tagged part places the key. */
static void
test_route_hash_tag(void **state)
{
    struct conf *c = parse(POOL(FOUR, "  hash_tag: \"{}\"\n"));
    const struct conf_pool *cp = &c->pools[0];
    struct ring *r = placement_ring(cp, NULL);
    char key[32];
    int32_t first = placement_route(cp, r, "user", 4);
    int i;

    (void)state;
    for (i = 0; i < 200; i++) {
        int n = snprintf(key, sizeof(key), "x%d{user}y", i);
        assert_int_equal(placement_route(cp, r, key, (size_t)n), first);
    }
    ring_destroy(&r);
    conf_destroy(&c);
}

/* A server left out takes no key; none live: -1. */
static void
test_route_skips_dead(void **state)
{
    struct conf *c = parse(POOL(FOUR, ""));
    const struct conf_pool *cp = &c->pools[0];
    bool live[4] = { true, false, true, true };
    bool none[4] = { false, false, false, false };
    struct ring *r = placement_ring(cp, live);
    struct ring *dead = placement_ring(cp, none);
    char key[32];
    int i;

    (void)state;
    for (i = 0; i < 2000; i++) {
        int n = snprintf(key, sizeof(key), "k%d", i);
        assert_int_not_equal(placement_route(cp, r, key, (size_t)n), 1);
    }
    assert_int_equal(placement_route(cp, dead, "k", 1), -1);
    ring_destroy(&r);
    ring_destroy(&dead);
    conf_destroy(&c);
}

/* ring_tool_diff's report, as text. */
static char *
diff(const char *old_yaml, const char *new_yaml, const char *pool,
     const char *keys, uint64_t sample)
{
    struct conf *old = parse(old_yaml), *new = parse(new_yaml);
    FILE *kf = NULL, *out;
    char *text = NULL, err[256];
    size_t len = 0;

    out = open_memstream(&text, &len);
    assert_non_null(out);
    if (keys != NULL) {
        kf = fmemopen((void *)keys, strlen(keys), "r");
        assert_non_null(kf);
    }
    assert_int_equal(ring_tool_diff(out, old, new, pool, kf, sample, err,
                                    sizeof(err)), 0);
    fclose(out);
    if (kf != NULL) {
        fclose(kf);
    }
    conf_destroy(&old);
    conf_destroy(&new);
    return text;
}

/* Library placements keep the list's order: server i is the i-th listed,
 * where twemproxy's sorts by name. */
static void
test_library_placement_keeps_list_order(void **state)
{
    struct conf *tw = parse(POOL("    - 10.0.0.9:11211:1\n"
                                 "    - 10.0.0.10:11211:1\n"
                                 "    - 10.0.0.1:11211:1\n", ""));
    struct conf *py = parse(POOL("    - 10.0.0.9:11211:1\n"
                                 "    - 10.0.0.10:11211:1\n"
                                 "    - 10.0.0.1:11211:1\n",
                                 "  placement: python_memcached\n"));

    (void)state;
    assert_string_equal(tw->pools[0].servers[0].name, "10.0.0.1");
    assert_string_equal(py->pools[0].servers[0].name, "10.0.0.9");
    assert_string_equal(py->pools[0].servers[1].name, "10.0.0.10");
    assert_string_equal(py->pools[0].servers[2].name, "10.0.0.1");
    assert_int_equal(py->pools[0].placement, PLACEMENT_PYTHON_MEMCACHED);
    assert_int_equal(py->pools[0].hash, HASH_CRC32);
    conf_destroy(&tw);
    conf_destroy(&py);
}

/* python_memcached: crc32's 15 bits modulo a table of weight copies;
 * 1.59 reads a hash of 0 as 1. */
static void
test_python_memcached_table(void **state)
{
    struct conf *c = parse(POOL("    - 10.0.0.1:11211:2\n"
                                "    - 10.0.0.2:11211:1\n"
                                "    - 10.0.0.3:11211:3\n",
                                "  placement: python_memcached\n"));
    struct conf *old = parse(POOL("    - 10.0.0.1:11211:2\n"
                                  "    - 10.0.0.2:11211:1\n"
                                  "    - 10.0.0.3:11211:3\n",
                                  "  placement: python_memcached_159\n"));
    static const int32_t slot_owner[6] = { 0, 0, 1, 2, 2, 2 };
    struct ring *r = placement_ring(&c->pools[0], NULL);
    struct ring *ro = placement_ring(&old->pools[0], NULL);
    char key[32];
    int i, zero = 0;

    (void)state;
    for (i = 0; i < 200000; i++) {
        int n = snprintf(key, sizeof(key), "key:%d", i);
        uint32_t h = hash_key(HASH_CRC32, key, (size_t)n);

        assert_int_equal(placement_route(&c->pools[0], r, key, (size_t)n),
                         slot_owner[h % 6]);
        assert_int_equal(placement_route(&old->pools[0], ro, key, (size_t)n),
                         slot_owner[(h == 0 ? 1 : h) % 6]);
        zero += h == 0;
    }
    assert_true(zero > 0);      /* the case that tells the two apart */
    ring_destroy(&r);
    ring_destroy(&ro);
    conf_destroy(&c);
    conf_destroy(&old);
}

/* A dead server keeps its slots; its keys are rehashed from
 * str(hash) + str(i) until a live server owns the slot. */
static void
test_python_memcached_rehash_on_dead(void **state)
{
    struct conf *c = parse(POOL(FOUR, "  placement: python_memcached\n"));
    const struct conf_pool *cp = &c->pools[0];
    static const bool live[4] = { true, false, true, true };
    struct ring *all = placement_ring(cp, NULL);
    struct ring *r = placement_ring(cp, live);
    char key[32], again[32];
    int i, moved = 0;

    (void)state;
    for (i = 0; i < 20000; i++) {
        int n = snprintf(key, sizeof(key), "k%d", i);
        int32_t before = placement_route(cp, all, key, (size_t)n);
        int32_t after = placement_route(cp, r, key, (size_t)n);
        uint32_t h = hash_key(HASH_CRC32, key, (size_t)n);

        assert_int_not_equal(after, 1);
        if (before != 1) {
            assert_int_equal(after, before);    /* others stay */
            continue;
        }
        moved++;
        /* the first retry, as python-memcached computes it */
        n = snprintf(again, sizeof(again), "%u0", h);
        h = hash_key(HASH_CRC32, again, (size_t)n);
        if (h % 4 != 1) {
            assert_int_equal(after, (int32_t)(h % 4));
        }
    }
    assert_true(moved > 0);
    ring_destroy(&all);
    ring_destroy(&r);
    conf_destroy(&c);
}

/* libmemcached_modula: hash % servers, weights ignored; a dead server's
 * keys have no server (libmemcached does not move them). */
static void
test_libmemcached_modula(void **state)
{
    struct conf *c = parse(POOL("    - 10.0.0.1:11211:5\n"
                                "    - 10.0.0.2:11211:1\n"
                                "    - 10.0.0.3:11211:1\n",
                                "  placement: libmemcached_modula\n"));
    const struct conf_pool *cp = &c->pools[0];
    static const bool live[3] = { true, true, false };
    struct ring *r = placement_ring(cp, NULL);
    struct ring *rd = placement_ring(cp, live);
    char key[32];
    int i;

    (void)state;
    assert_int_equal(cp->hash, HASH_ONE_AT_A_TIME);
    for (i = 0; i < 5000; i++) {
        int n = snprintf(key, sizeof(key), "k%d", i);
        uint32_t want = hash_key(HASH_ONE_AT_A_TIME, key, (size_t)n) % 3;

        assert_int_equal(placement_route(cp, r, key, (size_t)n), want);
        assert_int_equal(placement_route(cp, rd, key, (size_t)n),
                         want == 2 ? -1 : (int32_t)want);
    }
    ring_destroy(&r);
    ring_destroy(&rd);
    conf_destroy(&c);
}

/* libmemcached_ketama: 100 points per server hashed with the key hash;
 * a dead server leaves the ring (auto-eject); weights > 1 switch to the
 * weighted (md5) ring, which is libmemcached_ketama_weighted's with the
 * pool's key hash. */
static void
test_libmemcached_ketama(void **state)
{
    struct conf *c = parse(POOL(FOUR, "  placement: libmemcached_ketama\n"
                                "  hash: fnv1a_32\n"));
    struct conf *w = parse(POOL("    - 10.0.0.1:11211:2 a\n"
                                "    - 10.0.0.2:11211:1 b\n",
                                "  placement: libmemcached_ketama\n"));
    struct conf *kw = parse(POOL("    - 10.0.0.1:11211:2 a\n"
                                 "    - 10.0.0.2:11211:1 b\n",
                                 "  placement: libmemcached_ketama_weighted\n"
                                 "  hash: one_at_a_time\n"));
    static const bool live[4] = { true, true, false, true };
    struct ring *r = placement_ring(&c->pools[0], NULL);
    struct ring *rd = placement_ring(&c->pools[0], live);
    struct ring *rw = placement_ring(&w->pools[0], NULL);
    struct ring *rkw = placement_ring(&kw->pools[0], NULL);
    char key[32];
    int i;

    (void)state;
    assert_int_equal(ring_npoints(r), 400);
    assert_int_equal(ring_npoints(rd), 300);
    /* 160 points at equal shares: floor(2/3 * 40 * 2) * 4 + floor(1/3 * 40
     * * 2) * 4 = 212 + 104 */
    assert_int_equal(ring_npoints(rw), 316);
    for (i = 0; i < 5000; i++) {
        int n = snprintf(key, sizeof(key), "k%d", i);
        int32_t all = placement_route(&c->pools[0], r, key, (size_t)n);
        int32_t dead = placement_route(&c->pools[0], rd, key, (size_t)n);

        assert_int_equal(all, ring_lookup(r, hash_key(HASH_FNV1A_32, key,
                                                      (size_t)n)));
        assert_int_not_equal(dead, 2);
        if (all != 2) {
            assert_int_equal(dead, all);
        }
        assert_int_equal(placement_route(&w->pools[0], rw, key, (size_t)n),
                         placement_route(&kw->pools[0], rkw, key, (size_t)n));
    }
    ring_destroy(&r);
    ring_destroy(&rd);
    ring_destroy(&rw);
    ring_destroy(&rkw);
    conf_destroy(&c);
    conf_destroy(&w);
    conf_destroy(&kw);
}

#define P50 "0123456789012345678901234567890123456789012345678\x7e"
#define P250 P50 P50 P50 P50 P50

/* What a library placement refuses, with the place and the reason. */
static void
test_placement_conf_errors(void **state)
{
    static const struct {
        const char *yaml, *want;
    } cases[] = {
        { POOL(FOUR, "  placement: libketama_x\n"), "t.yml:3:14: placement: "
          "expected twemproxy, python_memcached" },
        { POOL(FOUR, "  placement: python_memcached\n  hash: md5\n"),
          "t.yml:4:3: hash: placement python_memcached hashes with crc32" },
        { POOL(FOUR, "  placement: libmemcached_ketama\n  distribution: "
               "ketama\n"), "t.yml:4:3: distribution: placement "
          "libmemcached_ketama is a distribution of its own" },
        { POOL(FOUR, "  hash_tag: \"{}\"\n  placement: libmemcached_modula\n"),
          "t.yml:3:3: hash_tag: placement libmemcached_modula hashes the "
          "whole key" },
        { POOL(FOUR, "  hash: default\n"), "t.yml:3:9: hash: \"default\" is "
          "libmemcached's name" },
        { POOL(FOUR, "  placement: libmemcached_modula\n  hash: hsieh\n"),
          "t.yml:4:3: hash: libmemcached as Debian builds it has no hsieh" },
        { POOL(FOUR, "  prefix: \"a b\"\n"), "t.yml:3:11: prefix: a key "
          "prefix holds no space or control character, got \"a b\"" },
        { POOL(FOUR, "  prefix: \"a\\tb\"\n"), "t.yml:3:11: prefix: a key "
          "prefix holds no space or control character" },
        { POOL(FOUR, "  prefix: \"\"\n"), "t.yml:3:11: prefix: expected a "
          "value" },
        { POOL(FOUR, "  prefix: \"" P250 "\"\n"), "t.yml:3:11: prefix: a "
          "key prefix is shorter than memcached's longest key" },
        { POOL(FOUR, "  placement: libmc\n  prefix: \"?x\"\n"),
          "t.yml:4:3: prefix: placement libmc puts the prefix after a key's "
          "leading '?'" },
    };
    char err[512];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct conf *c = conf_parse(cases[i].yaml, strlen(cases[i].yaml),
                                    "t.yml", err, sizeof(err));
        assert_null(c);
        if (strstr(err, cases[i].want) == NULL) {
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, err,
                     cases[i].want);
        }
    }
}

/* libmemcached's spellings are its hashes there. */
static void
test_libmemcached_hash_names(void **state)
{
    struct conf *c = parse(POOL(FOUR, "  placement: libmemcached_ketama\n"
                                "  hash: crc\n"));
    struct conf *d = parse(POOL(FOUR, "  hash: default\n"
                                "  placement: libmemcached_modula\n"));

    (void)state;
    assert_int_equal(c->pools[0].hash, HASH_CRC32);
    assert_int_equal(d->pools[0].hash, HASH_ONE_AT_A_TIME);
    conf_destroy(&c);
    conf_destroy(&d);
}

/* libmc: a dead server keeps its points; its keys go to the server of
 * the next point that is live (failover), everyone else's stay. */
static void
test_libmc_failover(void **state)
{
    struct conf *c = parse(POOL(FOUR, "  placement: libmc\n"));
    const struct conf_pool *cp = &c->pools[0];
    static const bool live[4] = { true, true, false, true };
    struct ring *all = placement_ring(cp, NULL);
    struct ring *r = placement_ring(cp, live);
    char key[32];
    int i, moved = 0;

    (void)state;
    assert_int_equal(cp->hash, HASH_MD5);
    assert_int_equal(ring_npoints(r), 400);     /* the dead one's included */
    for (i = 0; i < 5000; i++) {
        int n = snprintf(key, sizeof(key), "k%d", i);
        int32_t before = placement_route(cp, all, key, (size_t)n);
        int32_t after = placement_route(cp, r, key, (size_t)n);

        assert_int_not_equal(after, 2);
        if (before != 2) {
            assert_int_equal(after, before);
        } else {
            moved++;
        }
    }
    assert_true(moved > 0);
    ring_destroy(&all);
    ring_destroy(&r);
    conf_destroy(&c);
}

/* libmc's hash names map to its functions; others are refused. */
static void
test_libmc_hashes(void **state)
{
    static const struct {
        const char     *name;
        enum hash_type want;
    } cases[] = {
        { "md5", HASH_MD5 },
        { "crc32", HASH_CRC32A },
        { "fnv1_32", HASH_FNV1_32_UNSIGNED },
        { "fnv1a_32", HASH_FNV1A_32_UNSIGNED },
    };
    char yaml[512], err[512];
    struct conf *c;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(yaml, sizeof(yaml), POOL(FOUR, "  placement: libmc\n"
                 "  hash: %s\n"), cases[i].name);
        c = parse(yaml);
        assert_int_equal(c->pools[0].hash, cases[i].want);
        conf_destroy(&c);
    }
    snprintf(yaml, sizeof(yaml), "%s", POOL(FOUR, "  placement: libmc\n"
             "  hash: murmur\n"));
    assert_null(conf_parse(yaml, strlen(yaml), "t.yml", err, sizeof(err)));
    assert_non_null(strstr(err, "libmc hashes keys with md5, crc32"));
    snprintf(yaml, sizeof(yaml), "%s", POOL(FOUR, "  placement: libketama\n"
             "  hash: crc32\n"));
    assert_null(conf_parse(yaml, strlen(yaml), "t.yml", err, sizeof(err)));
    assert_non_null(strstr(err, "placement libketama hashes with md5"));
}

/* A prefix is hashed under libmc (the key libmc sends, with its '?'
 * rule), and under every other placement the key is hashed as the
 * client sent it: the prefix moves no key there. A key too long for the
 * stack (the ring tools place any line) hashes the same. */
static void
test_prefix_hashed_only_by_libmc(void **state)
{
    struct conf *c = parse(POOL(FOUR, "  placement: libmc\n"
                                "  prefix: \"app:\"\n"));
    struct conf *t = parse(POOL(FOUR, "  prefix: \"app:\"\n"));
    struct conf *plain = parse(POOL(FOUR, ""));
    struct conf *k = parse(POOL(FOUR, "  placement: libmemcached_ketama\n"
                                "  prefix: \"app:\"\n"));
    struct conf *kplain = parse(POOL(FOUR, "  placement: "
                                     "libmemcached_ketama\n"));
    struct ring *rc = placement_ring(&c->pools[0], NULL);
    struct ring *rt = placement_ring(&t->pools[0], NULL);
    struct ring *rk = placement_ring(&k->pools[0], NULL);
    char key[600], sk[600];
    int i, differ = 0;

    (void)state;
    assert_true(c->pools[0].prefix.after_q);
    assert_false(t->pools[0].prefix.after_q);
    for (i = 0; i < 2000; i++) {
        int n = snprintf(key, sizeof(key), "%sk%d", i % 2 ? "?" : "", i);
        int m = snprintf(sk, sizeof(sk), i % 2 ? "?app:k%d" : "app:k%d", i);
        int32_t want = ring_lookup(rc, hash_key(HASH_MD5, sk, (size_t)m));
        int32_t got = placement_route(&c->pools[0], rc, key, (size_t)n);

        assert_int_equal(got, want);
        differ += got != ring_lookup(rc, hash_key(HASH_MD5, key, (size_t)n));
        assert_int_equal(placement_route(&t->pools[0], rt, key, (size_t)n),
                         placement_route(&plain->pools[0], rt, key,
                                         (size_t)n));
        assert_int_equal(placement_route(&k->pools[0], rk, key, (size_t)n),
                         placement_route(&kplain->pools[0], rk, key,
                                         (size_t)n));
    }
    assert_true(differ > 0);
    memset(key, 'x', 500);
    memcpy(sk, "app:", 4);
    memset(sk + 4, 'x', 500);
    assert_int_equal(placement_route(&c->pools[0], rc, key, 500),
                     ring_lookup(rc, hash_key(HASH_MD5, sk, 504)));
    ring_destroy(&rc);
    ring_destroy(&rt);
    ring_destroy(&rk);
    conf_destroy(&c);
    conf_destroy(&t);
    conf_destroy(&plain);
    conf_destroy(&k);
    conf_destroy(&kplain);
}

/* libketama and hash_ring hash "host:port" (port 11211 too), not
 * twemproxy's name; an alias stands for it. */
static void
test_host_port_names(void **state)
{
    struct conf *bare = parse(POOL("    - 10.0.0.1:11211:1\n"
                                   "    - 10.0.0.2:11211:1\n",
                                   "  placement: libketama\n"));
    struct conf *full = parse(POOL("    - 10.0.0.1:11211:1 10.0.0.1:11211\n"
                                   "    - 10.0.0.2:11211:1 10.0.0.2:11211\n",
                                   "  placement: libketama\n"));
    struct conf *tw = parse(POOL("    - 10.0.0.1:11211:1 10.0.0.1\n"
                                 "    - 10.0.0.2:11211:1 10.0.0.2\n",
                                 "  placement: libketama\n"));
    struct ring *rb = placement_ring(&bare->pools[0], NULL);
    struct ring *rf = placement_ring(&full->pools[0], NULL);
    struct ring *rt = placement_ring(&tw->pools[0], NULL);
    char key[32];
    int i, differ = 0;

    (void)state;
    for (i = 0; i < 2000; i++) {
        int n = snprintf(key, sizeof(key), "k%d", i);
        int32_t b = placement_route(&bare->pools[0], rb, key, (size_t)n);

        assert_int_equal(b, placement_route(&full->pools[0], rf, key,
                                            (size_t)n));
        differ += b != placement_route(&tw->pools[0], rt, key, (size_t)n);
    }
    assert_true(differ > 0);
    ring_destroy(&rb);
    ring_destroy(&rf);
    ring_destroy(&rt);
    conf_destroy(&bare);
    conf_destroy(&full);
    conf_destroy(&tw);
}

/* servers_file: libketama's server list, as servers: in its order. */
static void
test_servers_file(void **state)
{
    char dir[] = "/tmp/memring-test-servers-XXXXXX", path[128];
    char yaml[512], err[512];
    struct conf *c;
    FILE *f;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/ketama.servers", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("# libketama's file\n10.0.1.9:11211\t300\n\n"
          "10.0.1.10:11212 100\n  10.0.1.1:11211\t200\n", f);
    fclose(f);
    snprintf(yaml, sizeof(yaml), "alpha:\n  listen: 127.0.0.1:22121\n"
             "  placement: libketama\n  servers_file: %s\n", path);
    c = parse(yaml);
    assert_int_equal(c->pools[0].nservers, 3);
    assert_string_equal(c->pools[0].servers[0].host, "10.0.1.9");
    assert_int_equal(c->pools[0].servers[0].weight, 300);
    assert_int_equal(c->pools[0].servers[1].port, 11212);
    assert_int_equal(c->pools[0].servers[2].weight, 200);
    conf_destroy(&c);

    snprintf(yaml, sizeof(yaml), "alpha:\n  listen: 127.0.0.1:22121\n"
             "  servers_file: %s\n  servers:\n    - 10.0.0.1:11211:1\n",
             path);
    assert_null(conf_parse(yaml, strlen(yaml), "t.yml", err, sizeof(err)));
    assert_non_null(strstr(err, "servers: or servers_file:, not both"));
    snprintf(yaml, sizeof(yaml), "alpha:\n  listen: 127.0.0.1:22121\n");
    assert_null(conf_parse(yaml, strlen(yaml), "t.yml", err, sizeof(err)));
    assert_non_null(strstr(err, "servers: missing in pool"));

    f = fopen(path, "w");
    assert_non_null(f);
    fputs("10.0.1.9:11211\t300\n10.0.1.10:11212\n", f);
    fclose(f);
    snprintf(yaml, sizeof(yaml), "alpha:\n  listen: 127.0.0.1:22121\n"
             "  servers_file: %s\n", path);
    assert_null(conf_parse(yaml, strlen(yaml), "t.yml", err, sizeof(err)));
    assert_non_null(strstr(err, "ketama.servers:2: expected"));
    unlink(path);
    assert_null(conf_parse(yaml, strlen(yaml), "t.yml", err, sizeof(err)));
    assert_non_null(strstr(err, "No such file"));
    rmdir(dir);
}

static void
test_diff_same_config_moves_nothing(void **state)
{
    char *t = diff(POOL(FOUR, ""), POOL(FOUR, ""), NULL, NULL, 5000);

    (void)state;
    assert_string_equal(t, "pool alpha: 5000 keys, 0 move (0.00%), "
                        "expected hit ratio 100.00%\n");
    free(t);
}

/* Each key counted in the report moves, and only those. */
static void
test_diff_counts_each_moved_key(void **state)
{
    static const char keys[] = "k1\nk2\nk3\nk4\nk5\nk6\nk7\nk8\nk9\nk10\n";
    const char *old = POOL(FOUR, ""), *new = POOL(FOUR
        "    - 10.0.0.5:11211:1 e\n", "");
    struct conf *o = parse(old), *n = parse(new);
    struct ring *ro = placement_ring(&o->pools[0], NULL);
    struct ring *rn = placement_ring(&n->pools[0], NULL);
    char expect[64], *t, key[8];
    int i, moved = 0;

    (void)state;
    for (i = 1; i <= 10; i++) {
        int len = snprintf(key, sizeof(key), "k%d", i);
        moved += placement_route(&o->pools[0], ro, key, (size_t)len) !=
                 placement_route(&n->pools[0], rn, key, (size_t)len);
    }
    t = diff(old, new, NULL, keys, 0);
    snprintf(expect, sizeof(expect), "pool alpha: 10 keys, %d move (", moved);
    assert_true(strncmp(t, expect, strlen(expect)) == 0);
    free(t);
    ring_destroy(&ro);
    ring_destroy(&rn);
    conf_destroy(&o);
    conf_destroy(&n);
}

/* A server that keeps its alias but changes address loses its keys; one
 * that changes alias keeps its address but moves keys elsewhere. */
static void
test_diff_by_address(void **state)
{
    char *t = diff(POOL(FOUR, ""), POOL(
        "    - 10.0.0.1:11211:1 a\n    - 10.0.0.2:11211:1 b\n"
        "    - 10.0.0.3:11211:1 c\n    - 10.0.0.9:11211:1 d\n", ""),
        NULL, NULL, 40000);

    (void)state;
    assert_non_null(strstr(t, "  d 10.0.0.4:11211 -> d 10.0.0.9:11211: "));
    assert_null(strstr(t, "-> a"));
    free(t);
}

static void
test_diff_pools_on_one_side(void **state)
{
    char *t = diff(POOL(FOUR, ""), "beta:\n  listen: 127.0.0.1:1\n"
                   "  servers:\n    - 10.0.0.1:11211:1\n", NULL, NULL, 10);

    (void)state;
    assert_string_equal(t, "pool alpha: not in t.yml: every key it holds "
                        "is lost\npool beta: new in t.yml\n");
    free(t);
}

static void
test_diff_unknown_pool(void **state)
{
    struct conf *c = parse(POOL(FOUR, ""));
    char err[128];

    (void)state;
    assert_int_equal(ring_tool_diff(stdout, c, c, "zz", NULL, 10, err,
                                    sizeof(err)), -1);
    assert_string_equal(err, "no pool zz in t.yml or t.yml");
    conf_destroy(&c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_is_hash_then_ring),
        cmocka_unit_test(test_route_hash_tag),
        cmocka_unit_test(test_route_skips_dead),
        cmocka_unit_test(test_library_placement_keeps_list_order),
        cmocka_unit_test(test_python_memcached_table),
        cmocka_unit_test(test_python_memcached_rehash_on_dead),
        cmocka_unit_test(test_libmemcached_modula),
        cmocka_unit_test(test_libmemcached_ketama),
        cmocka_unit_test(test_placement_conf_errors),
        cmocka_unit_test(test_libmemcached_hash_names),
        cmocka_unit_test(test_libmc_failover),
        cmocka_unit_test(test_libmc_hashes),
        cmocka_unit_test(test_prefix_hashed_only_by_libmc),
        cmocka_unit_test(test_host_port_names),
        cmocka_unit_test(test_servers_file),
        cmocka_unit_test(test_diff_same_config_moves_nothing),
        cmocka_unit_test(test_diff_counts_each_moved_key),
        cmocka_unit_test(test_diff_by_address),
        cmocka_unit_test(test_diff_pools_on_one_side),
        cmocka_unit_test(test_diff_unknown_pool),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
