/*
 * ring tests: point counts and lookup rules, then every recorded nutcracker
 * placement in tests/data/placement/ replayed through hash + ring.
 */
#include "memring/ring.h"

#include "memring/hash.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define MAX_SERVERS 256
#define MAX_KEYS    1024
#define MAX_KEY_LEN 250

static void
nodes_init(struct ring_node *nodes, const char **names, const uint32_t *w,
           uint32_t n)
{
    uint32_t i;

    for (i = 0; i < n; i++) {
        nodes[i].name = names[i];
        nodes[i].name_len = strlen(names[i]);
        nodes[i].weight = w != NULL ? w[i] : 1;
        nodes[i].live = true;
    }
}

/* ------------------------------------------------------------ ketama rules */

static const char *names5[] = {"s1", "s2", "s3", "s4", "s5"};

static void
test_ketama_points_equal_weights(void **state)
{
    static const char *names[100];
    static char buf[100][8];
    struct ring_node nodes[100];
    struct ring *r;
    uint32_t i;

    (void)state;
    for (i = 0; i < 100; i++) {
        snprintf(buf[i], sizeof(buf[i]), "n%u", i);
        names[i] = buf[i];
    }
    nodes_init(nodes, names, NULL, 100);

    r = ring_create(DIST_KETAMA, nodes, 1);
    assert_non_null(r);
    assert_int_equal(ring_npoints(r), 160);
    ring_destroy(&r);

    r = ring_create(DIST_KETAMA, nodes, 3);
    assert_int_equal(ring_npoints(r), 480);
    ring_destroy(&r);

    /* float rounding: floorf(0.01f * 160 / 4 * 100) = 39, 156 points each */
    r = ring_create(DIST_KETAMA, nodes, 100);
    assert_int_equal(ring_npoints(r), 100 * 156);
    ring_destroy(&r);
    assert_null(r);
}

static void
test_ketama_points_weighted(void **state)
{
    const uint32_t starved[] = {1000, 1};
    const uint32_t w[] = {1, 2, 3, 4, 10};
    struct ring_node nodes[5];
    struct ring *r;
    uint32_t i;

    (void)state;
    /* 1000/1001 * 80 = 79.92 -> 316; 1/1001 * 80 < 1 -> no points at all */
    nodes_init(nodes, names5, starved, 2);
    r = ring_create(DIST_KETAMA, nodes, 2);
    assert_int_equal(ring_npoints(r), 316);
    for (i = 0; i < 1000; i++) {
        assert_int_equal(ring_lookup(r, i * 4294967u), 0);
    }
    ring_destroy(&r);

    /* shares of 200 points: 10, 20, 30, 40, 100 hashes -> 40..400 points */
    nodes_init(nodes, names5, w, 5);
    r = ring_create(DIST_KETAMA, nodes, 5);
    assert_int_equal(ring_npoints(r), 40 + 80 + 120 + 160 + 400);
    ring_destroy(&r);
}

static void
test_ketama_wraps_and_covers(void **state)
{
    struct ring_node nodes[5];
    struct ring *r;
    int seen[5] = {0};
    uint32_t i;

    (void)state;
    nodes_init(nodes, names5, NULL, 5);
    r = ring_create(DIST_KETAMA, nodes, 5);
    /* above the last point, the first point's server answers */
    assert_int_equal(ring_lookup(r, UINT32_MAX), ring_lookup(r, 0));
    for (i = 0; i < 10000; i++) {
        int32_t s = ring_lookup(r, i * 429497u);

        assert_in_range(s, 0, 4);
        seen[s]++;
    }
    for (i = 0; i < 5; i++) {
        assert_in_range(seen[i], 1000, 3000);
    }
    ring_destroy(&r);
}

/* With equal weights an ejected server only gives away its own keys. */
static void
test_ketama_dead_server_moves_only_its_keys(void **state)
{
    struct ring_node nodes[5];
    struct ring *all, *four;
    uint32_t i, moved = 0;

    (void)state;
    nodes_init(nodes, names5, NULL, 5);
    all = ring_create(DIST_KETAMA, nodes, 5);
    nodes[2].live = false;
    four = ring_create(DIST_KETAMA, nodes, 5);
    assert_int_equal(ring_npoints(four), 4 * 160);
    for (i = 0; i < 20000; i++) {
        uint32_t h = i * 214741u;
        int32_t a = ring_lookup(all, h), b = ring_lookup(four, h);

        assert_int_not_equal(b, 2);
        if (a != 2) {
            assert_int_equal(a, b);
        } else {
            moved++;
        }
    }
    assert_true(moved > 0);
    ring_destroy(&all);
    ring_destroy(&four);
}

static void
test_no_live_servers(void **state)
{
    struct ring_node nodes[5];
    struct ring *r;
    int d;
    uint32_t i;

    (void)state;
    nodes_init(nodes, names5, NULL, 5);
    for (i = 0; i < 5; i++) {
        nodes[i].live = false;
    }
    for (d = 0; d < DIST_COUNT; d++) {
        r = ring_create((enum dist_type)d, nodes, 5);
        assert_non_null(r);
        assert_int_equal(ring_lookup(r, 42), -1);
        assert_int_equal(ring_npoints(r), 0);
        ring_destroy(&r);

        r = ring_create((enum dist_type)d, NULL, 0);
        assert_non_null(r);
        assert_int_equal(ring_lookup(r, 42), -1);
        ring_destroy(&r);
    }
    ring_destroy(NULL);
    ring_destroy(&r);
}

/* ------------------------------------------------------ modula and random */

static void
test_modula_weights_in_server_order(void **state)
{
    const uint32_t w[] = {1, 2, 1, 3};
    const int32_t want[] = {0, 1, 1, 2, 3, 3, 3};
    const int32_t want_dead1[] = {0, 2, 3, 3, 3};
    struct ring_node nodes[4];
    struct ring *r;
    uint32_t h;

    (void)state;
    nodes_init(nodes, names5, w, 4);
    r = ring_create(DIST_MODULA, nodes, 4);
    assert_int_equal(ring_npoints(r), 7);
    for (h = 0; h < 70; h++) {
        assert_int_equal(ring_lookup(r, h), want[h % 7]);
    }
    assert_int_equal(ring_lookup(r, UINT32_MAX), want[UINT32_MAX % 7]);
    ring_destroy(&r);

    nodes[1].live = false;
    r = ring_create(DIST_MODULA, nodes, 4);
    assert_int_equal(ring_npoints(r), 5);
    for (h = 0; h < 50; h++) {
        assert_int_equal(ring_lookup(r, h), want_dead1[h % 5]);
    }
    ring_destroy(&r);
}

static void
test_random_only_live(void **state)
{
    struct ring_node nodes[5];
    struct ring *r;
    int seen[5] = {0};
    uint32_t i;

    (void)state;
    nodes_init(nodes, names5, NULL, 5);
    nodes[3].live = false;
    r = ring_create(DIST_RANDOM, nodes, 5);
    assert_int_equal(ring_npoints(r), 4);
    for (i = 0; i < 4000; i++) {
        int32_t s = ring_lookup(r, 7);

        assert_in_range(s, 0, 4);
        seen[s]++;
    }
    assert_int_equal(seen[3], 0);
    assert_true(seen[0] > 500 && seen[1] > 500 && seen[2] > 500 &&
                seen[4] > 500);
    ring_destroy(&r);
}

static void
test_dist_names(void **state)
{
    int d;

    (void)state;
    for (d = 0; d < DIST_COUNT; d++) {
        const char *name = dist_name((enum dist_type)d);

        assert_int_equal(dist_from_name(name, strlen(name)), d);
    }
    assert_string_equal(dist_name(DIST_KETAMA), "ketama");
    assert_string_equal(dist_name(DIST_MODULA), "modula");
    assert_string_equal(dist_name(DIST_RANDOM), "random");
    assert_string_equal(dist_name(DIST_COUNT), "unknown");
    assert_int_equal(dist_from_name("ketam", 5), -1);
    assert_int_equal(dist_from_name("ketama2", 7), -1);
    assert_int_equal(dist_from_name("KETAMA", 6), -1);
    assert_int_equal(dist_from_name("ketama", 3), -1);
}

/* ------------------------------------------- recorded nutcracker placement */

struct vec_key {
    char   data[MAX_KEY_LEN];
    size_t len;
};

struct vec_server {
    char     name[256];
    uint32_t weight;
    bool     live;
    uint32_t pos;           /* position in the config file */
};

struct vec_case {
    char              name[128];
    enum hash_type    hash;
    enum dist_type    dist;
    char              tag[3];
    struct vec_server servers[MAX_SERVERS];
    uint32_t          nservers;
    uint32_t          place[MAX_KEYS];  /* config position per key */
    uint32_t          nplace;
};

struct vec_fixture {
    char            dir[4096];
    struct vec_key  keys[MAX_KEYS];
    uint32_t        nkeys;
    struct vec_case c;
};

static int
hexval(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    return -1;
}

/* keys.txt line -> key bytes: "\\xHH" is one byte, the rest literal. */
static int
unescape(const char *s, size_t n, struct vec_key *k)
{
    size_t i;

    k->len = 0;
    for (i = 0; i < n; i++) {
        int byte = (unsigned char)s[i];

        if (s[i] == '\\') {
            if (n - i < 4 || s[i + 1] != 'x' || hexval(s[i + 2]) < 0 ||
                hexval(s[i + 3]) < 0) {
                return -1;
            }
            byte = hexval(s[i + 2]) * 16 + hexval(s[i + 3]);
            i += 3;
        }
        if (k->len == MAX_KEY_LEN) {
            return -1;
        }
        k->data[k->len++] = (char)byte;
    }
    return 0;
}

static FILE *
data_open(const struct vec_fixture *f, const char *name)
{
    char path[4400];

    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    return fopen(path, "r");
}

static int
vec_setup(void **state)
{
    struct vec_fixture *f;
    const char *root = getenv("MEMRING_SOURCE_DIR");
    char line[1024];
    FILE *fp;

    if (root == NULL) {
        fprintf(stderr, "MEMRING_SOURCE_DIR is not set\n");
        return -1;
    }
    f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "%s/tests/data/placement", root);
    fp = data_open(f, "keys.txt");
    if (fp == NULL) {
        fprintf(stderr, "%s/keys.txt: cannot open\n", f->dir);
        free(f);
        return -1;
    }
    while (fgets(line, sizeof(line), fp) != NULL) {
        size_t n = strcspn(line, "\n");

        if (n == 0 || line[0] == '#') {
            continue;
        }
        if (f->nkeys == MAX_KEYS ||
            unescape(line, n, &f->keys[f->nkeys]) != 0) {
            fprintf(stderr, "keys.txt: bad line %s", line);
            fclose(fp);
            free(f);
            return -1;
        }
        f->nkeys++;
    }
    fclose(fp);
    *state = f;
    return 0;
}

static int
vec_teardown(void **state)
{
    free(*state);
    return 0;
}

/* Reads name.vec into f->c; see scripts/gen-placement-vectors. */
static void
vec_load(struct vec_fixture *f, const char *name)
{
    struct vec_case *c = &f->c;
    char line[1024], word[256], arg[256];
    FILE *fp;
    int h, d;

    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "%s", name);
    fp = data_open(f, name);
    assert_non_null(fp);
    while (fgets(line, sizeof(line), fp) != NULL) {
        if (line[0] == '#' || sscanf(line, "%255s", word) != 1) {
            continue;
        }
        if (strcmp(word, "hash") == 0) {
            assert_int_equal(sscanf(line, "%*s %255s", arg), 1);
            h = hash_from_name(arg, strlen(arg));
            assert_true(h >= 0);
            c->hash = (enum hash_type)h;
        } else if (strcmp(word, "distribution") == 0) {
            assert_int_equal(sscanf(line, "%*s %255s", arg), 1);
            d = dist_from_name(arg, strlen(arg));
            assert_true(d >= 0);
            c->dist = (enum dist_type)d;
        } else if (strcmp(word, "hash_tag") == 0) {
            assert_int_equal(sscanf(line, "%*s %2s", c->tag), 1);
        } else if (strcmp(word, "server") == 0) {
            struct vec_server *s = &c->servers[c->nservers];
            int live;

            assert_true(c->nservers < MAX_SERVERS);
            assert_int_equal(sscanf(line, "%*s %255s %u %d", s->name,
                                    &s->weight, &live), 3);
            s->live = live != 0;
            s->pos = c->nservers++;
        } else if (strcmp(word, "place") == 0) {
            const char *p = line + strlen("place");
            int used;
            unsigned int v;

            while (sscanf(p, "%u%n", &v, &used) == 1) {
                assert_true(c->nplace < MAX_KEYS);
                assert_true(v < c->nservers);
                c->place[c->nplace++] = v;
                p += used;
            }
        } else {
            fail_msg("%s: unknown line %s", name, line);
        }
    }
    fclose(fp);
    assert_true(c->nservers > 0);
    assert_int_equal(c->nplace, f->nkeys);
}

/* twemproxy's server order: by name, shorter first, then bytewise. */
static int
server_cmp(const void *a, const void *b)
{
    const struct vec_server *sa = a, *sb = b;
    size_t la = strlen(sa->name), lb = strlen(sb->name);

    if (la != lb) {
        return la < lb ? -1 : 1;
    }
    return memcmp(sa->name, sb->name, la);
}

/* Replays one case: returns how many keys land on another server. */
static uint32_t
vec_check(struct vec_fixture *f)
{
    struct vec_case *c = &f->c;
    struct ring_node nodes[MAX_SERVERS];
    struct ring *r;
    uint32_t i, bad = 0;

    qsort(c->servers, c->nservers, sizeof(c->servers[0]), server_cmp);
    for (i = 0; i < c->nservers; i++) {
        nodes[i].name = c->servers[i].name;
        nodes[i].name_len = strlen(c->servers[i].name);
        nodes[i].weight = c->servers[i].weight;
        nodes[i].live = c->servers[i].live;
    }
    r = ring_create(c->dist, nodes, c->nservers);
    assert_non_null(r);
    for (i = 0; i < f->nkeys; i++) {
        const char *key = f->keys[i].data;
        size_t len = f->keys[i].len;
        int32_t idx;

        hash_tag_slice(c->tag, &key, &len);
        idx = ring_lookup(r, hash_key(c->hash, key, len));
        assert_in_range(idx, 0, c->nservers - 1);
        if (c->servers[idx].pos != c->place[i]) {
            if (bad < 3) {
                print_error("%s: key %u (%.*s): memring %s, nutcracker "
                            "config position %u\n", c->name, i,
                            (int)f->keys[i].len, f->keys[i].data,
                            c->servers[idx].name, c->place[i]);
            }
            bad++;
        }
    }
    ring_destroy(&r);
    return bad;
}

static int
name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
test_nutcracker_vectors(void **state)
{
    struct vec_fixture *f = *state;
    char *names[256];
    uint32_t n = 0, i, cases_bad = 0;
    struct dirent *de;
    DIR *dir;

    dir = opendir(f->dir);
    assert_non_null(dir);
    while ((de = readdir(dir)) != NULL) {
        size_t len = strlen(de->d_name);

        if (len > 4 && strcmp(de->d_name + len - 4, ".vec") == 0 &&
            n < 256) {
            names[n++] = strdup(de->d_name);
        }
    }
    closedir(dir);
    qsort(names, n, sizeof(names[0]), name_cmp);
    /* the set gen-placement-vectors records; a missing file is a failure */
    assert_true(n >= 40);
    for (i = 0; i < n; i++) {
        uint32_t bad;

        vec_load(f, names[i]);
        bad = vec_check(f);
        if (bad != 0) {
            print_error("%s: %u of %u keys misplaced\n", names[i], bad,
                        f->nkeys);
            cases_bad++;
        }
        free(names[i]);
    }
    print_message("%u nutcracker cases x %u keys replayed\n", n, f->nkeys);
    assert_int_equal(cases_bad, 0);
}

/* libketama's bisection (ketama_get_server(), reproduced step for step)
 * lands where "the first point at or above, else the first" does, for
 * every hash: its quirks (an upper bound one past the end, bounds that
 * cross) do not change the answer. Checked on its own continuum at the
 * ends of the hash space and at 2 million random hashes. hash_ring's
 * search is strictly above: it differs only where a hash is a point. */
static void
test_continuum_searches(void **state)
{
    struct ring_node nodes[7];
    char names[7][32];
    struct ring_continuum ge = { .share = RING_SHARE_LIBKETAMA,
                                 .per_digest = 4,
                                 .search = RING_SEARCH_AT_OR_ABOVE };
    struct ring_continuum lk = ge, gt = ge;
    struct ring *rge, *rlk, *rgt;
    uint64_t x = 88172645463325252ull;
    uint32_t i, differ = 0;

    (void)state;
    lk.search = RING_SEARCH_LIBKETAMA;
    gt.search = RING_SEARCH_ABOVE;
    for (i = 0; i < 7; i++) {
        snprintf(names[i], sizeof(names[i]), "10.0.0.%u:11211", i + 1);
        nodes[i].name = names[i];
        nodes[i].name_len = strlen(names[i]);
        nodes[i].weight = 1 + i % 3;
        nodes[i].live = true;
    }
    rge = ring_create_continuum(nodes, 7, &ge);
    rlk = ring_create_continuum(nodes, 7, &lk);
    rgt = ring_create_continuum(nodes, 7, &gt);
    assert_non_null(rge);
    assert_non_null(rlk);
    assert_non_null(rgt);
    assert_true(ring_npoints(rge) > 500);
    for (i = 0; i < 2000000; i++) {
        uint32_t h;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        h = (uint32_t)x;
        if (i < 4) {
            h = i < 2 ? i : UINT32_MAX - (i - 2);   /* the ends */
        }
        assert_int_equal(ring_lookup(rlk, h), ring_lookup(rge, h));
        differ += ring_lookup(rgt, h) != ring_lookup(rge, h);
    }
    /* random hashes almost never sit on a point: the same answers */
    assert_true(differ < 10);
    ring_destroy(&rge);
    ring_destroy(&rlk);
    ring_destroy(&rgt);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ketama_points_equal_weights),
        cmocka_unit_test(test_ketama_points_weighted),
        cmocka_unit_test(test_ketama_wraps_and_covers),
        cmocka_unit_test(test_ketama_dead_server_moves_only_its_keys),
        cmocka_unit_test(test_no_live_servers),
        cmocka_unit_test(test_modula_weights_in_server_order),
        cmocka_unit_test(test_random_only_live),
        cmocka_unit_test(test_dist_names),
        cmocka_unit_test(test_continuum_searches),
        cmocka_unit_test_setup_teardown(test_nutcracker_vectors, vec_setup,
                                        vec_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
