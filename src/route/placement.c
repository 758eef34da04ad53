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
 *   libketama             its continuum (ring.h, RING_SHARE_LIBKETAMA, its
 *                         bisection), md5 keys, "host:port-j" strings.
 *   libmc                 100 points per server, md5 of "name-j" whatever
 *                         the key hash (md5, crc32, fnv1_32, fnv1a_32 read
 *                         unsigned); a dead server's keys go to the next
 *                         point of a live one (its failover).
 *   hash_ring             floor(40 n w / W) digests of 3 points per
 *                         server, md5 keys, the first point above.
 *
 * libmemcached and libmc send every key to the only server of a
 * one-server list, whatever the hash; so does this.
 *
 * A pool's key prefix (prefix:) is hashed where libmc hashes it: libmc
 * hashes the key it sends (normalize_key() puts the prefix in first).
 * Every other placement hashes the key as the client sent it, as
 * libmemcached does with its namespace by default (HASH_WITH_PREFIX_KEY
 * off): giving a pool a prefix moves no key to another server.
 */
#include "memring/placement.h"

#include "memring/conf.h"
#include "memring/hash.h"
#include "memring/mc_compose.h"
#include "memring/mc_parse.h"
#include "memring/ring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* The continuums of the libraries that are not twemproxy's ketama. */
static const struct ring_continuum libmemcached_continuum = {
    .share = RING_SHARE_FIXED,
    .points = 100,                      /* MEMCACHED_POINTS_PER_SERVER */
    .per_digest = 1,                    /* .point_hash: the key hash */
    .search = RING_SEARCH_AT_OR_ABOVE,
};

static const struct ring_continuum libmc_continuum = {
    .share = RING_SHARE_FIXED,
    .points = 100,
    .per_digest = 1,
    .point_hash = HASH_MD5,             /* always, whatever the key hash */
    .search = RING_SEARCH_AT_OR_ABOVE,
    .keep_dead = true,                  /* failover to the next point */
};

static const struct ring_continuum libketama_continuum = {
    .share = RING_SHARE_LIBKETAMA,
    .per_digest = 4,
    .search = RING_SEARCH_LIBKETAMA,
};

static const struct ring_continuum hash_ring_continuum = {
    .share = RING_SHARE_HASH_RING,
    .per_digest = 3,
    .search = RING_SEARCH_ABOVE,
};

/*
 * The string a library hashes for server cs: its alias when it has one
 * (so that it can move without moving its keys), else libketama's and
 * hash_ring's "host:port" (always with the port), else twemproxy's name,
 * which is also libmemcached's and libmc's (no ":11211"). Into buf (len
 * bytes) when it has to be made.
 */
static const char *
placement_server_name(const struct conf_pool *cp, const struct conf_server *cs,
                      char *buf, size_t len)
{
    bool with_port = cp->placement == PLACEMENT_LIBKETAMA ||
                     cp->placement == PLACEMENT_HASH_RING;

    if (!with_port || cs->has_alias || cs->is_unix) {
        return cs->name;
    }
    snprintf(buf, len, "%s:%u", cs->host, (unsigned int)cs->port);
    return buf;
}

#define PLACEMENT_NAME_MAX 320      /* host (255) + ":65535" + NUL */

static struct ring *
placement_build(const struct conf_pool *cp, struct ring_node *nodes)
{
    struct ring_continuum how;
    uint32_t i, n = cp->nservers;

    switch (cp->placement) {
    case PLACEMENT_PYTHON_MEMCACHED:
    case PLACEMENT_PYTHON_MEMCACHED_159:
        return ring_create_table(nodes, n);
    case PLACEMENT_LIBMEMCACHED_MODULA:
        for (i = 0; i < n; i++) {
            nodes[i].weight = 1;
        }
        return ring_create_table(nodes, n);
    case PLACEMENT_LIBMEMCACHED_KETAMA:
        if (!placement_weighted(cp)) {
            how = libmemcached_continuum;
            how.point_hash = cp->hash;
            return ring_create_continuum(nodes, n, &how);
        }
        /* a weight above 1 turns the weighted ring on */
        return ring_create(DIST_KETAMA, nodes, n);
    case PLACEMENT_LIBMEMCACHED_KETAMA_WEIGHTED:
        return ring_create(DIST_KETAMA, nodes, n);
    case PLACEMENT_LIBKETAMA:
        return ring_create_continuum(nodes, n, &libketama_continuum);
    case PLACEMENT_LIBMC:
        return ring_create_continuum(nodes, n, &libmc_continuum);
    case PLACEMENT_HASH_RING:
        return ring_create_continuum(nodes, n, &hash_ring_continuum);
    case PLACEMENT_TWEMPROXY:
    default:
        return ring_create(cp->distribution, nodes, n);
    }
}

struct ring *
placement_ring(const struct conf_pool *cp, const bool *live)
{
    size_t n = cp->nservers == 0 ? 1 : cp->nservers;
    struct ring_node *nodes;
    struct ring *r = NULL;
    char *names;
    uint32_t i;

    nodes = calloc(n, sizeof(*nodes));
    names = malloc(n * PLACEMENT_NAME_MAX);
    if (nodes != NULL && names != NULL) {
        for (i = 0; i < cp->nservers; i++) {
            const struct conf_server *cs = &cp->servers[i];

            nodes[i].name = placement_server_name(
                cp, cs, names + (size_t)i * PLACEMENT_NAME_MAX,
                PLACEMENT_NAME_MAX);
            nodes[i].name_len = strlen(nodes[i].name);
            nodes[i].weight = cs->weight;
            nodes[i].live = live == NULL || live[i];
        }
        r = placement_build(cp, nodes);
    }
    free(names);
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

/* libmc's key hash: of the key it sends, prefix included. A key the
 * proxy takes fits the stack; a longer one (the ring tools place any
 * line) is hashed from the heap, or placed nowhere when that fails. */
static bool
libmc_hash(const struct conf_pool *cp, const char *key, size_t len,
           uint32_t *h)
{
    char stack[MC_KEY_MAX + 1];
    char *sk = stack;

    if (cp->prefix.len == 0) {
        *h = hash_key(cp->hash, key, len);
        return true;
    }
    if (len + cp->prefix.len > sizeof(stack)) {
        sk = malloc(len + cp->prefix.len);
        if (sk == NULL) {
            return false;
        }
    }
    *h = hash_key(cp->hash, sk, mc_prefix_key(&cp->prefix, key, len, sk));
    if (sk != stack) {
        free(sk);
    }
    return true;
}

int32_t
placement_route(const struct conf_pool *cp, const struct ring *r,
                const char *key, size_t len)
{
    int32_t idx;
    uint32_t h;

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
    case PLACEMENT_LIBMC:
        if (cp->nservers == 1) {        /* the only server, as libmc */
            return ring_live(r, 0) && ring_npoints(r) > 0 ? 0 : -1;
        }
        return libmc_hash(cp, key, len, &h) ? ring_lookup(r, h) : -1;
    case PLACEMENT_LIBKETAMA:
    case PLACEMENT_HASH_RING:
        return ring_lookup(r, hash_key(HASH_MD5, key, len));
    case PLACEMENT_TWEMPROXY:
    default:
        hash_tag_slice(cp->hash_tag[0] != '\0' ? cp->hash_tag : NULL, &key,
                       &len);
        return ring_lookup(r, hash_key(cp->hash, key, len));
    }
}
