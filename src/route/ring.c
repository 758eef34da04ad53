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
    bool              *live;    /* ring_create_table(): per node; else NULL */
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

/*
 * Ties between servers keep server order: twemproxy relies on glibc's
 * qsort(), a stable merge sort for arrays this size, over points laid out
 * by server index.
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

static int
ketama_build(struct ring *r, const struct ring_node *nodes, uint32_t n)
{
    uint32_t i, nlive = 0, total_weight = 0, npoints = 0;
    uint32_t pps, h, k;
    size_t buflen = 0;
    char *buf = NULL;
    uint8_t digest[16];

    for (i = 0; i < n; i++) {
        if (nodes[i].live) {
            nlive++;
            total_weight += nodes[i].weight;
            if (nodes[i].name_len > buflen) {
                buflen = nodes[i].name_len;
            }
        }
    }
    if (nlive == 0 || total_weight == 0) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (nodes[i].live) {
            npoints += ketama_server_points(nodes[i].weight, total_weight,
                                            nlive);
        }
    }
    r->points = malloc(sizeof(*r->points) * (npoints > 0 ? npoints : 1));
    buflen += sizeof("-4294967295");
    buf = malloc(buflen);
    if (r->points == NULL || buf == NULL) {
        free(buf);
        return -1;
    }

    /*
     * Point group h of a server is the MD5 of "name-h"; each 4-byte slice of
     * the digest, read little-endian, is one point. Whatever the length of
     * the name: nutcracker 0.5.0 was checked with 120-byte aliases.
     */
    for (i = 0; i < n; i++) {
        if (!nodes[i].live) {
            continue;
        }
        pps = ketama_server_points(nodes[i].weight, total_weight, nlive);
        if (nodes[i].name_len > 0) {
            memcpy(buf, nodes[i].name, nodes[i].name_len);
        }
        for (h = 0; h < pps / KETAMA_POINTS_PER_HASH; h++) {
            int len;

            len = snprintf(buf + nodes[i].name_len,
                           buflen - nodes[i].name_len, "-%u", h);
            hash_md5(buf, nodes[i].name_len + (size_t)len, digest);
            for (k = 0; k < KETAMA_POINTS_PER_HASH; k++) {
                const uint8_t *d = digest + 4 * k;

                r->points[r->npoints].value =
                    (uint32_t)d[0] | (uint32_t)d[1] << 8 |
                    (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24;
                r->points[r->npoints].index = i;
                r->npoints++;
            }
        }
    }
    free(buf);
    qsort(r->points, r->npoints, sizeof(*r->points), point_cmp);
    return 0;
}

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
        err = ketama_build(r, nodes, n);
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
    r->live = malloc(sizeof(*r->live) * (n > 0 ? n : 1));
    if (r->live == NULL) {
        ring_destroy(&r);
        return NULL;
    }
    for (i = 0; i < n; i++) {
        r->live[i] = nodes[i].live;
    }
    r->nnodes = n;
    return r;
}

struct ring *
ring_create_hashed(const struct ring_node *nodes, uint32_t n,
                   enum hash_type point_hash, uint32_t points)
{
    uint32_t i, p, nlive = 0;
    size_t buflen = 0;
    struct ring *r;
    char *buf;

    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return NULL;
    }
    r->dist = DIST_KETAMA;
    for (i = 0; i < n; i++) {
        if (nodes[i].live) {
            nlive++;
            buflen = nodes[i].name_len > buflen ? nodes[i].name_len : buflen;
        }
    }
    buflen += sizeof("-4294967295");
    r->points = malloc(sizeof(*r->points) * ((size_t)nlive * points + 1));
    buf = malloc(buflen);
    if (r->points == NULL || buf == NULL) {
        free(buf);
        ring_destroy(&r);
        return NULL;
    }
    for (i = 0; i < n; i++) {
        if (!nodes[i].live) {
            continue;
        }
        if (nodes[i].name_len > 0) {
            memcpy(buf, nodes[i].name, nodes[i].name_len);
        }
        for (p = 0; p < points; p++) {
            int len = snprintf(buf + nodes[i].name_len,
                               buflen - nodes[i].name_len, "-%u", p);

            r->points[r->npoints].value =
                hash_key(point_hash, buf, nodes[i].name_len + (size_t)len);
            r->points[r->npoints].index = i;
            r->npoints++;
        }
    }
    free(buf);
    /* libmemcached's qsort() compares values only; equal 32-bit values of
     * two servers are left to chance there, by server order here. */
    qsort(r->points, r->npoints, sizeof(*r->points), point_cmp);
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
        i = lower_bound(r->points, r->npoints, hash);
        if (i == r->npoints) {
            i = 0;      /* past the last point: wrap to the first */
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
