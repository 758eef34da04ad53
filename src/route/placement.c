/*
 * placement: a pool config's key -> server rule, shared by pool_route()
 * and the ring tools so that a preview can never disagree with the proxy.
 *
 * twemproxy (the default): hash_tag slice, the pool's hash, then its
 * distribution over servers sorted by name (ring.c). The client libraries'
 * placements keep the servers in list order (conf.c) and place keys as
 * the library does, dead servers included:
 *
 *   python_memcached      cmemcache_hash = crc32's 15 bits (our "crc32"),
 *                         modulo a table of each server weight times; a
 *                         dead server's key is rehashed from
 *                         str(hash) + str(i), up to 10 times
 *                         (python-memcached's Client._get_server); 1.59
 *                         and before turn a hash of 0 into 1.
 *   libmemcached_modula   hash % number of servers, weights ignored; a
 *                         dead server's keys fail (libmemcached does not
 *                         redistribute modula).
 *   libmemcached_ketama   100 points per live server, point i the key
 *                         hash of "name-i" (update_continuum()); with
 *                         any weight above 1, the weighted ring below
 *                         but still the pool's key hash.
 *   libmemcached_ketama_weighted
 *                         twemproxy's ketama (md5, 160 points at equal
 *                         weight, the same float rounding) in list order.
 *
 * libmemcached sends every key to the only server of a one-server list,
 * whatever the hash; so does this.
 */
#include "memring/placement.h"

#include "memring/conf.h"
#include "memring/hash.h"
#include "memring/ring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIBMEMCACHED_POINTS_PER_SERVER 100  /* MEMCACHED_POINTS_PER_SERVER */
#define PYTHON_MEMCACHED_RETRIES 10         /* Client._SERVER_RETRIES */

/* libmemcached switches a consistent distribution to the weighted ring as
 * soon as a server with a weight above 1 is added (server_add()); the key
 * hash stays what it was. */
static bool
placement_weighted(const struct conf_pool *cp)
{
    uint32_t i;

    for (i = 0; i < cp->nservers; i++) {
        if (cp->servers[i].weight > 1) {
            return true;
        }
    }
    return false;
}

struct ring *
placement_ring(const struct conf_pool *cp, const bool *live)
{
    struct ring_node *nodes;
    struct ring *r;
    uint32_t i;

    nodes = calloc(cp->nservers == 0 ? 1 : cp->nservers, sizeof(*nodes));
    if (nodes == NULL) {
        return NULL;
    }
    for (i = 0; i < cp->nservers; i++) {
        const struct conf_server *cs = &cp->servers[i];
        nodes[i].name = cs->name;
        nodes[i].name_len = strlen(cs->name);
        nodes[i].weight = cs->weight;
        nodes[i].live = live == NULL || live[i];
    }
    switch (cp->placement) {
    case PLACEMENT_PYTHON_MEMCACHED:
    case PLACEMENT_PYTHON_MEMCACHED_159:
        r = ring_create_table(nodes, cp->nservers);
        break;
    case PLACEMENT_LIBMEMCACHED_MODULA:
        for (i = 0; i < cp->nservers; i++) {
            nodes[i].weight = 1;
        }
        r = ring_create_table(nodes, cp->nservers);
        break;
    case PLACEMENT_LIBMEMCACHED_KETAMA:
        if (!placement_weighted(cp)) {
            r = ring_create_hashed(nodes, cp->nservers, cp->hash,
                                   LIBMEMCACHED_POINTS_PER_SERVER);
            break;
        }
        /* a weight above 1 turns the weighted ring on */
        __attribute__((fallthrough));
    case PLACEMENT_LIBMEMCACHED_KETAMA_WEIGHTED:
        r = ring_create(DIST_KETAMA, nodes, cp->nservers);
        break;
    case PLACEMENT_TWEMPROXY:
    default:
        r = ring_create(cp->distribution, nodes, cp->nservers);
        break;
    }
    free(nodes);
    return r;
}

/* python-memcached's serverHashFunction of version 1.60+ or of 1.59. */
static uint32_t
python_memcached_hash(const struct conf_pool *cp, const char *s, size_t len)
{
    uint32_t h = hash_key(HASH_CRC32, s, len);

    return h == 0 && cp->placement == PLACEMENT_PYTHON_MEMCACHED_159 ? 1 : h;
}

static int32_t
python_memcached_route(const struct conf_pool *cp, const struct ring *r,
                       const char *key, size_t len)
{
    uint32_t h = python_memcached_hash(cp, key, len);
    char again[32];
    int i;

    for (i = 0; i < PYTHON_MEMCACHED_RETRIES; i++) {
        int32_t idx = ring_lookup(r, h);

        if (idx < 0 || ring_live(r, (uint32_t)idx)) {
            return idx;
        }
        len = (size_t)snprintf(again, sizeof(again), "%u%d", h, i);
        h = python_memcached_hash(cp, again, len);
    }
    return -1;
}

int32_t
placement_route(const struct conf_pool *cp, const struct ring *r,
                const char *key, size_t len)
{
    int32_t idx;

    switch (cp->placement) {
    case PLACEMENT_PYTHON_MEMCACHED:
    case PLACEMENT_PYTHON_MEMCACHED_159:
        return python_memcached_route(cp, r, key, len);
    case PLACEMENT_LIBMEMCACHED_MODULA:
    case PLACEMENT_LIBMEMCACHED_KETAMA:
    case PLACEMENT_LIBMEMCACHED_KETAMA_WEIGHTED:
        if (cp->nservers == 1) {
            return ring_live(r, 0) && ring_npoints(r) > 0 ? 0 : -1;
        }
        idx = ring_lookup(r, hash_key(cp->hash, key, len));
        return idx < 0 || !ring_live(r, (uint32_t)idx) ? -1 : idx;
    case PLACEMENT_TWEMPROXY:
    default:
        hash_tag_slice(cp->hash_tag[0] != '\0' ? cp->hash_tag : NULL, &key,
                       &len);
        return ring_lookup(r, hash_key(cp->hash, key, len));
    }
}
