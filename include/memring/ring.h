/*
 * ring: key -> server placement, the same as twemproxy's. The ketama
 * continuum (and modula/random tables) is built once per config and server
 * liveness change from server names and weights, then looked up by binary
 * search. Pure: no I/O, no libuv.
 */
#ifndef MEMRING_RING_H
#define MEMRING_RING_H

#include "memring/hash.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum dist_type {
    DIST_KETAMA = 0,
    DIST_MODULA,
    DIST_RANDOM,
    DIST_COUNT
};

/*
 * One server as the ring sees it. The array handed to ring_create() must be
 * in twemproxy's server order (conf sorts servers by name: shorter first,
 * then bytewise); indexes returned by ring_lookup() are into that array.
 */
struct ring_node {
    const char *name;   /* what ketama hashes: alias, or host[:port] */
    size_t     name_len;
    uint32_t   weight;  /* >= 1; ketama and modula shares */
    bool       live;    /* false: ejected, takes no share of the ring */
};

struct ring;

/*
 * Builds the ring for dist over nodes[0..n); NULL on OOM only. Copies what
 * it needs: nodes and their names may go away afterwards.
 */
struct ring *ring_create(enum dist_type dist, const struct ring_node *nodes,
                         uint32_t n);
void ring_destroy(struct ring **r);     /* NULL-safe; *r = NULL */

/*
 * Placement styles (conf's `placement:`): whose key -> server rule a pool
 * follows. placement.c builds and reads the ring for each; the names live
 * here so that conf and placement both read them without a circle.
 */
enum ring_placement {
    PLACEMENT_TWEMPROXY = 0,            /* hash + distribution, names sorted */
    PLACEMENT_PYTHON_MEMCACHED,         /* python-memcached 1.60+ */
    PLACEMENT_PYTHON_MEMCACHED_159,     /* python-memcached up to 1.59 */
    PLACEMENT_LIBMEMCACHED_MODULA,
    PLACEMENT_LIBMEMCACHED_KETAMA,
    PLACEMENT_LIBMEMCACHED_KETAMA_WEIGHTED,
    PLACEMENT_LIBKETAMA,                /* last.fm's libketama */
    PLACEMENT_LIBMC,                    /* douban's libmc */
    PLACEMENT_HASH_RING,                /* Python's hash_ring package */
    PLACEMENT_COUNT
};

const char *ring_placement_name(enum ring_placement pl);
int ring_placement_from_name(const char *name, size_t len); /* -1: unknown */

/*
 * A client library's modulo table: each of nodes[0..n) weight times, in
 * the order given, dead ones included (the library keeps them in its
 * table and steps around them itself); ring_lookup() gives hash % slots'
 * owner, ring_live() says whether it is live.
 */
struct ring *ring_create_table(const struct ring_node *nodes, uint32_t n);

/* How many points each live server gets on a continuum. */
enum ring_share {
    RING_SHARE_FIXED = 0,   /* `points` each, weights ignored (libmemcached,
                             * libmc) */
    RING_SHARE_TWEMPROXY,   /* 160 at equal weights, single-precision share
                             * steps of twemproxy and libmemcached weighted */
    RING_SHARE_LIBKETAMA,   /* 160 at equal weights, libketama's float share
                             * times a double product */
    RING_SHARE_HASH_RING    /* floor(40 * n * w / W) digests (hash_ring) */
};

/* Where a key hash falls on a continuum. */
enum ring_search {
    RING_SEARCH_AT_OR_ABOVE = 0, /* first point >= hash, else the first */
    RING_SEARCH_ABOVE,           /* first point > hash, else the first
                                  * (hash_ring's bisect_right) */
    RING_SEARCH_LIBKETAMA        /* libketama's own bisection, step for
                                  * step (ketama_get_server()) */
};

/*
 * A continuum: for each live server (each server when keep_dead), groups
 * j = 0, 1, ... of the string "name-j"; a group is one point, the
 * point_hash of the string (per_digest 1), or per_digest points read as
 * little-endian slices of its MD5 (3 or 4).
 */
struct ring_continuum {
    enum ring_share  share;
    uint32_t         points;        /* RING_SHARE_FIXED: per server */
    uint32_t         per_digest;    /* 1, 3 or 4 */
    enum hash_type   point_hash;    /* per_digest 1 */
    enum ring_search search;
    bool             keep_dead;     /* dead servers keep their points and a
                                     * key falls through to the next point
                                     * of a live one (libmc's failover) */
};

struct ring *ring_create_continuum(const struct ring_node *nodes, uint32_t n,
                                   const struct ring_continuum *how);

/* Whether node i was live when r was built (true for rings that leave
 * dead nodes out: those never return them). */
bool ring_live(const struct ring *r, uint32_t i);

/*
 * Server index for a key hash; -1 when no server is live. Binary search, no
 * allocation; safe from many threads at once. DIST_RANDOM ignores hash and
 * picks a live server at random, as twemproxy does.
 */
int32_t ring_lookup(const struct ring *r, uint32_t hash);

/*
 * Size of twemproxy's continuum (for tests and /config): ketama points,
 * modula total live weight, random live servers.
 */
uint32_t ring_npoints(const struct ring *r);

const char *dist_name(enum dist_type d);
int dist_from_name(const char *name, size_t len); /* -1 when unknown */

#endif /* MEMRING_RING_H */
