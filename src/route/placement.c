/*
 * placement: a pool config's key -> server rule, shared by pool_route()
 * and the ring tools so that a preview can never disagree with the proxy.
 */
#include "memring/placement.h"

#include "memring/conf.h"
#include "memring/hash.h"
#include "memring/ring.h"

#include <stdlib.h>
#include <string.h>

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
    r = ring_create(cp->distribution, nodes, cp->nservers);
    free(nodes);
    return r;
}

int32_t
placement_route(const struct conf_pool *cp, const struct ring *r,
                const char *key, size_t len)
{
    hash_tag_slice(cp->hash_tag[0] != '\0' ? cp->hash_tag : NULL, &key, &len);
    return ring_lookup(r, hash_key(cp->hash, key, len));
}
