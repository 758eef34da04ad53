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
        cmocka_unit_test(test_diff_same_config_moves_nothing),
        cmocka_unit_test(test_diff_counts_each_moved_key),
        cmocka_unit_test(test_diff_by_address),
        cmocka_unit_test(test_diff_pools_on_one_side),
        cmocka_unit_test(test_diff_unknown_pool),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
