/*
 * ring: twemproxy 0.5.0's key -> server dispatch (nc_ketama.c, nc_modula.c,
 * nc_random.c), rebuilt from scratch per config or liveness change and then
 * only read, so workers may share one ring without locks.
 */
#include "memring/ring.h"

#include "memring/hash.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KETAMA_POINTS_PER_SERVER 160   /* at weight share 1/nlive */
#define KETAMA_POINTS_PER_HASH   4     /* one MD5 digest gives four points */

/*
 * ketama: a point on the continuum, value = hash position.
 * modula: value = one past the last hash residue of the server's weight
 * range, so lookup is a search over running weight sums rather than
 * twemproxy's table with one slot per unit of weight.
 * random: value unused.
 */
struct ring_point {
    uint32_t value;
    uint32_t index;     /* into the caller's ring_node array */
};

struct ring {
    enum dist_type    dist;
    enum ring_search  search;   /* ketama: how a hash finds its point */
    bool              *live;    /* per node, for a table or a continuum that
                                 * keeps dead servers; else NULL */
    uint32_t          nnodes;   /* ... entries in live */
    uint32_t          npoints;  /* entries in points */
    uint32_t          modulus;  /* modula: total live weight */
    struct ring_point *points;  /* sorted by value (ketama, modula) */
};

static const char *const placement_names[PLACEMENT_COUNT] = {
    [PLACEMENT_TWEMPROXY] = "twemproxy",
    [PLACEMENT_PYTHON_MEMCACHED] = "python_memcached",
    [PLACEMENT_PYTHON_MEMCACHED_159] = "python_memcached_159",
    [PLACEMENT_LIBMEMCACHED_MODULA] = "libmemcached_modula",
    [PLACEMENT_LIBMEMCACHED_KETAMA] = "libmemcached_ketama",
    [PLACEMENT_LIBMEMCACHED_KETAMA_WEIGHTED] = "libmemcached_ketama_weighted",
    [PLACEMENT_LIBKETAMA] = "libketama",
    [PLACEMENT_LIBMC] = "libmc",
    [PLACEMENT_HASH_RING] = "hash_ring",
};

static const char *const dist_names[DIST_COUNT] = {
    [DIST_KETAMA] = "ketama",
    [DIST_MODULA] = "modula",
    [DIST_RANDOM] = "random",
};

/*
 * Points for one server, with twemproxy's exact single-precision steps:
 * share of live weight, times 160/4, times live servers, floored, times 4.
 * The float rounding is part of the placement contract: each of 100 equal
 * servers gets floorf(39.999996) * 4 = 156 points, not 160.
 */
static uint32_t
ketama_server_points(uint32_t weight, uint32_t total_weight, uint32_t nlive)
{
    float pct, x;

    pct = (float)weight / (float)total_weight;
    x = pct * KETAMA_POINTS_PER_SERVER / KETAMA_POINTS_PER_HASH *
        (float)nlive;
    /* The original adds a double 1e-10 and rounds back to float. */
    x = (float)((double)x + 0.0000000001);
    return (uint32_t)(floorf(x) * KETAMA_POINTS_PER_HASH);
}

/* libketama: `floorf(pct * 40.0 * (float)n)`, pct a float, the product a
 * double (40.0 is one) rounded to float by floorf's argument: 100 equal
 * servers keep 40 digests, 160 points. */
static uint32_t
libketama_server_points(uint32_t weight, uint32_t total_weight, uint32_t n)
{
    float pct = (float)weight / (float)total_weight;

    return (uint32_t)floorf((float)((double)pct * 40.0 * (double)(float)n)) *
           KETAMA_POINTS_PER_HASH;
}

/* hash_ring: floor((40 * n * w) / W) digests of 3 points, Python's true
 * division (correctly rounded, as a double division of exact integers). */
static uint32_t
hash_ring_server_points(uint32_t weight, uint32_t total_weight, uint32_t n)
{
    return (uint32_t)floor((double)(40.0 * n * weight) /
                           (double)total_weight) * 3;
}

static uint32_t
continuum_server_points(const struct ring_continuum *how, uint32_t weight,
                        uint32_t total_weight, uint32_t n)
{
    switch (how->share) {
    case RING_SHARE_TWEMPROXY:
        return ketama_server_points(weight, total_weight, n);
    case RING_SHARE_LIBKETAMA:
        return libketama_server_points(weight, total_weight, n);
    case RING_SHARE_HASH_RING:
        return hash_ring_server_points(weight, total_weight, n);
    case RING_SHARE_FIXED:
    default:
        return how->points;
    }
}

/*
 * Ties between servers keep server order: twemproxy relies on glibc's
 * qsort(), a stable merge sort for arrays this size, over points laid out
 * by server index. (libmemcached, libketama and libmc compare values
 * only; equal 32-bit points of two servers are left to chance there.)
 */
static int
point_cmp(const void *a, const void *b)
{
    const struct ring_point *pa = a, *pb = b;

    if (pa->value != pb->value) {
        return pa->value < pb->value ? -1 : 1;
    }
    if (pa->index != pb->index) {
        return pa->index < pb->index ? -1 : 1;
    }
    return 0;
}

/* Appends server i's points: group j is "name-j"; see ring.h. */
static void
continuum_add_server(struct ring *r, const struct ring_continuum *how,
                     const struct ring_node *node, uint32_t i,
                     uint32_t npoints, char *buf, size_t buflen)
{
    uint32_t j, k, groups = npoints / how->per_digest;
    uint8_t digest[16];

    if (node->name_len > 0) {
        memcpy(buf, node->name, node->name_len);
    }
    for (j = 0; j < groups; j++) {
        int len = snprintf(buf + node->name_len, buflen - node->name_len,
                           "-%u", j);
        size_t slen = node->name_len + (size_t)len;

        if (how->per_digest == 1) {
            r->points[r->npoints].value = hash_key(how->point_hash, buf, slen);
            r->points[r->npoints++].index = i;
            continue;
        }
        hash_md5(buf, slen, digest);
        for (k = 0; k < how->per_digest; k++) {
            const uint8_t *d = digest + 4 * k;

            r->points[r->npoints].value =
                (uint32_t)d[0] | (uint32_t)d[1] << 8 |
                (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24;
            r->points[r->npoints++].index = i;
        }
    }
}

/* For a ring that keeps dead nodes: who was live, for ring_live() and
 * the lookup. 0, or -1 when out of memory. */
static int
ring_keep_live(struct ring *r, const struct ring_node *nodes, uint32_t n)
{
    uint32_t i;

    r->live = malloc(sizeof(*r->live) * (n > 0 ? n : 1));
    if (r->live == NULL) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        r->live[i] = nodes[i].live;
    }
    r->nnodes = n;
    return 0;
}

static int
continuum_build(struct ring *r, const struct ring_node *nodes, uint32_t n,
                const struct ring_continuum *how)
{
    uint32_t i, nin = 0, total_weight = 0;
    size_t npoints = 0, buflen = 0;
    char *buf;

    r->search = how->search;
    for (i = 0; i < n; i++) {
        if (nodes[i].live || how->keep_dead) {
            nin++;
            total_weight += nodes[i].weight;
            buflen = nodes[i].name_len > buflen ? nodes[i].name_len : buflen;
        }
    }
    if (how->keep_dead && ring_keep_live(r, nodes, n) != 0) {
        return -1;
    }
    if (nin == 0 || total_weight == 0) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (nodes[i].live || how->keep_dead) {
            npoints += continuum_server_points(how, nodes[i].weight,
                                               total_weight, nin);
        }
    }
    r->points = malloc(sizeof(*r->points) * (npoints > 0 ? npoints : 1));
    buflen += sizeof("-4294967295");
    buf = malloc(buflen);
    if (r->points == NULL || buf == NULL) {
        free(buf);
        return -1;
    }
    /* Whatever the length of the name: nutcracker 0.5.0 was checked with
     * 120-byte aliases. */
    for (i = 0; i < n; i++) {
        if (nodes[i].live || how->keep_dead) {
            continuum_add_server(r, how, &nodes[i], i,
                                 continuum_server_points(how, nodes[i].weight,
                                                         total_weight, nin),
                                 buf, buflen);
        }
    }
    free(buf);
    qsort(r->points, r->npoints, sizeof(*r->points), point_cmp);
    return 0;
}

/* twemproxy's ketama: 160 points per server at equal weights, MD5 of
 * "name-j", four points per digest. */
static const struct ring_continuum twemproxy_ketama = {
    .share = RING_SHARE_TWEMPROXY,
    .per_digest = KETAMA_POINTS_PER_HASH,
    .search = RING_SEARCH_AT_OR_ABOVE,
};

/*
 * twemproxy's modula table holds each live server weight times, in server
 * order, and picks slot hash % total_weight. Running sums give the same
 * answer in O(live servers) memory.
 */
static int
modula_build(struct ring *r, const struct ring_node *nodes, uint32_t n)
{
    uint32_t i, nlive = 0, sum = 0;
    uint64_t total = 0;

    for (i = 0; i < n; i++) {
        if (nodes[i].live && nodes[i].weight > 0) {
            nlive++;
            total += nodes[i].weight;
        }
    }
    /* twemproxy overflows its table past 2^32 total weight; refuse. */
    if (nlive == 0 || total > UINT32_MAX) {
        return 0;
    }
    r->points = malloc(sizeof(*r->points) * nlive);
    if (r->points == NULL) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (nodes[i].live && nodes[i].weight > 0) {
            sum += nodes[i].weight;
            r->points[r->npoints].value = sum;
            r->points[r->npoints].index = i;
            r->npoints++;
        }
    }
    r->modulus = sum;
    return 0;
}

static int
random_build(struct ring *r, const struct ring_node *nodes, uint32_t n)
{
    uint32_t i, nlive = 0;

    for (i = 0; i < n; i++) {
        if (nodes[i].live) {
            nlive++;
        }
    }
    if (nlive == 0) {
        return 0;
    }
    r->points = malloc(sizeof(*r->points) * nlive);
    if (r->points == NULL) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (nodes[i].live) {
            r->points[r->npoints].value = 0;
            r->points[r->npoints].index = i;
            r->npoints++;
        }
    }
    return 0;
}

struct ring *
ring_create(enum dist_type dist, const struct ring_node *nodes, uint32_t n)
{
    struct ring *r;
    int err;

    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return NULL;
    }
    r->dist = dist;
    switch (dist) {
    case DIST_MODULA:
        err = modula_build(r, nodes, n);
        break;
    case DIST_RANDOM:
        err = random_build(r, nodes, n);
        break;
    case DIST_KETAMA:
    default:
        r->dist = DIST_KETAMA;
        err = continuum_build(r, nodes, n, &twemproxy_ketama);
        break;
    }
    if (err != 0) {
        ring_destroy(&r);
        return NULL;
    }
    return r;
}

struct ring *
ring_create_table(const struct ring_node *nodes, uint32_t n)
{
    struct ring_node *all;
    struct ring *r;
    uint32_t i;

    all = malloc(sizeof(*all) * (n > 0 ? n : 1));
    if (all == NULL) {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        all[i] = nodes[i];
        all[i].live = true;     /* a dead server keeps its slots */
    }
    r = ring_create(DIST_MODULA, all, n);
    free(all);
    if (r == NULL) {
        return NULL;
    }
    if (ring_keep_live(r, nodes, n) != 0) {
        ring_destroy(&r);
        return NULL;
    }
    return r;
}

struct ring *
ring_create_continuum(const struct ring_node *nodes, uint32_t n,
                      const struct ring_continuum *how)
{
    struct ring *r = calloc(1, sizeof(*r));

    if (r == NULL) {
        return NULL;
    }
    r->dist = DIST_KETAMA;
    if (continuum_build(r, nodes, n, how) != 0) {
        ring_destroy(&r);
        return NULL;
    }
    return r;
}

bool
ring_live(const struct ring *r, uint32_t i)
{
    return r == NULL || r->live == NULL || i >= r->nnodes || r->live[i];
}

void
ring_destroy(struct ring **r)
{
    if (r == NULL || *r == NULL) {
        return;
    }
    free((*r)->live);
    free((*r)->points);
    free(*r);
    *r = NULL;
}

/* First entry whose value is >= key, or npoints when there is none. */
static uint32_t
lower_bound(const struct ring_point *p, uint32_t n, uint32_t key)
{
    uint32_t lo = 0, hi = n, mid;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        if (p[mid].value < key) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/*
 * libketama's ketama_get_server(), step for step: a bisection over
 * [0, npoints] that takes the point whose value is >= hash and whose
 * predecessor's (0 before the first) is < hash, and gives up on the first
 * point when its bounds cross.
 */
static uint32_t
libketama_search(const struct ring_point *p, uint32_t n, uint32_t hash)
{
    int64_t lowp = 0, highp = n, midp;

    for (;;) {
        uint32_t midval, midval1;

        midp = (lowp + highp) / 2;
        if (midp == (int64_t)n) {
            return 0;
        }
        midval = p[midp].value;
        midval1 = midp == 0 ? 0 : p[midp - 1].value;
        if (hash <= midval && hash > midval1) {
            return (uint32_t)midp;
        }
        if (midval < hash) {
            lowp = midp + 1;
        } else {
            highp = midp - 1;
        }
        if (lowp > highp) {
            return 0;
        }
    }
}

/* The point a hash falls on; see enum ring_search. */
static uint32_t
continuum_search(const struct ring *r, uint32_t hash)
{
    uint32_t i;

    switch (r->search) {
    case RING_SEARCH_LIBKETAMA:
        return libketama_search(r->points, r->npoints, hash);
    case RING_SEARCH_ABOVE:
        i = hash == UINT32_MAX ? r->npoints :
            lower_bound(r->points, r->npoints, hash + 1);
        break;
    case RING_SEARCH_AT_OR_ABOVE:
    default:
        i = lower_bound(r->points, r->npoints, hash);
        break;
    }
    return i == r->npoints ? 0 : i;     /* past the last point: the first */
}

/* From point i on, around the ring, the first point of a live server
 * (libmc's failover); -1 when none is live. */
static int32_t
continuum_next_live(const struct ring *r, uint32_t i)
{
    uint32_t k;

    for (k = 0; k < r->npoints; k++) {
        uint32_t idx = r->points[(i + k) % r->npoints].index;

        if (r->live[idx]) {
            return (int32_t)idx;
        }
    }
    return -1;
}

/*
 * random: twemproxy calls random(); a per-thread xorshift64* keeps workers
 * off glibc's random() lock. Only the spread matters, not the sequence.
 */
static uint32_t
random_next(void)
{
    static _Thread_local uint64_t state;
    uint64_t x = state;

    if (x == 0) {
        x = (uint64_t)(uintptr_t)&state ^ (uint64_t)time(NULL) ^
            UINT64_C(0x9e3779b97f4a7c15);
    }
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    state = x;
    return (uint32_t)((x * UINT64_C(0x2545f4914f6cdd1d)) >> 32);
}

int32_t
ring_lookup(const struct ring *r, uint32_t hash)
{
    uint32_t i;

    if (r == NULL || r->npoints == 0) {
        return -1;
    }
    switch (r->dist) {
    case DIST_MODULA:
        /* first running sum above the residue: slot hash % total */
        i = lower_bound(r->points, r->npoints, hash % r->modulus + 1);
        break;
    case DIST_RANDOM:
        i = random_next() % r->npoints;
        break;
    case DIST_KETAMA:
    default:
        i = continuum_search(r, hash);
        if (r->live != NULL) {
            return continuum_next_live(r, i);
        }
        break;
    }
    return (int32_t)r->points[i].index;
}

uint32_t
ring_npoints(const struct ring *r)
{
    if (r == NULL) {
        return 0;
    }
    return r->dist == DIST_MODULA ? r->modulus : r->npoints;
}

const char *
dist_name(enum dist_type d)
{
    if ((unsigned int)d >= DIST_COUNT) {
        return "unknown";
    }
    return dist_names[d];
}

const char *
ring_placement_name(enum ring_placement pl)
{
    if ((unsigned int)pl >= PLACEMENT_COUNT) {
        return "unknown";
    }
    return placement_names[pl];
}

/* Index of name[0..len) in names[0..n), or -1. */
static int
name_index(const char *const *names, int n, const char *name, size_t len)
{
    int i;

    for (i = 0; i < n; i++) {
        if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0) {
            return i;
        }
    }
    return -1;
}

int
ring_placement_from_name(const char *name, size_t len)
{
    return name_index(placement_names, PLACEMENT_COUNT, name, len);
}

int
dist_from_name(const char *name, size_t len)
{
    return name_index(dist_names, DIST_COUNT, name, len);
}
