/*
 * placement: where a pool's config puts a key, without sockets. One rule
 * (hash_tag slice, key hash, ring lookup, as twemproxy does it) serves
 * both the requests a pool routes and the ring tools that preview a
 * config change (memring ring locate / diff).
 */
#ifndef MEMRING_PLACEMENT_H
#define MEMRING_PLACEMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conf_pool;
struct ring;

/*
 * The ring of cp's servers, in config order; live[i] false leaves server
 * i out (it takes no share); live == NULL: every server live. NULL when
 * out of memory.
 */
struct ring *placement_ring(const struct conf_pool *cp, const bool *live);

/*
 * The index in cp->servers of the server r (built from cp) gives key
 * key[0..len), the key as the client sent it (the pool's prefix is
 * hashed only under placement libmc, as libmc does); -1 when no server
 * is live.
 */
int32_t placement_route(const struct conf_pool *cp, const struct ring *r,
                        const char *key, size_t len);

#endif /* MEMRING_PLACEMENT_H */
