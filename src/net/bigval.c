/*
 * bigval: split values on the request path (see bigval.h).
 */
#include "memring/bigval.h"

#include "memring/conf.h"
#include "memring/fanout.h"
#include "memring/log.h"
#include "memring/mc_compose.h"
#include "memring/pool.h"
#include "memring/req.h"
#include "memring/server.h"
#include "memring/split.h"
#include "memring/stats.h"
#include "memring/warm.h"

#include <stdlib.h>
#include <string.h>

bool
bigval_splits(const struct pool *p, const struct mc_req *m)
{
    return m->cmd == MC_SET && !m->bad_chunk && p->cp->split_values > 0 &&
           m->vlen > p->cp->split_values;
}

/* A write unique to this set: its chunks cannot be mistaken for another
 * write's, whatever the key. */
static uint64_t
nonce(void)
{
    static _Thread_local uint64_t next;
    uint64_t n;

    if (uv_random(NULL, NULL, &n, sizeof(n), 0, NULL) != 0) {
        n = uv_hrtime() ^ (uint64_t)(uintptr_t)&next ^ ++next;
    }
    return n;
}

/* Chunk i of x (its bytes at value) as a fragment of p, for *s. */
static struct req *
chunk_set(struct pool *pool, struct req *p, const struct split_index *x,
          uint32_t i, const char *value, int64_t exptime, struct server **s)
{
    char ck[SPLIT_KEY_MAX], sk[MC_KEY_MAX];
    size_t len = split_chunk_key(x->nonce, i, ck);
    struct req *f;

    *s = pool_route(pool, ck, len);
    f = fanout_fragment(p, MC_SET, 0);
    if (f == NULL) {
        return NULL;
    }
    len = mc_prefix_key(&pool->cp->prefix, ck, len, sk);
    if (mc_compose_set(&f->out, sk, len, 0, exptime,
                       value + (size_t)i * x->chunk,
                       (size_t)split_chunk_len(x, i)) != 0) {
        fanout_fragment_drop(&f);
    }
    return f;
}

/*
 * The chunks and then the index are sent at once, not one after the
 * other's answer: a get that follows on the same client connection then
 * reaches each server after the write, as with memcached (the index
 * reaches its server's connection before the get, and each chunk its
 * server's). A chunk that failed leaves an index whose chunks are not all
 * there: a miss, never another value.
 */
int
bigval_set(struct pool *pool, struct req *p, const char *buf,
           const struct mc_req *m, const struct mc_span *key)
{
    const char *value = buf + m->data_off;
    char idx[SPLIT_INDEX_MAX], sk[MC_KEY_MAX];
    struct split_index x;
    struct server **to;
    struct req *f;
    size_t len;
    uint32_t i;
    int err = 0;

    split_index_make(&x, nonce(), pool->cp->split_values, value, m->vlen);
    to = malloc((x.nchunks + 1) * sizeof(*to));
    if (to == NULL || req_reserve_frags(p, x.nchunks + 1) != 0) {
        free(to);
        return UV_ENOMEM;
    }
    for (i = 0; i < x.nchunks && err == 0; i++) {
        f = chunk_set(pool, p, &x, i, value, m->exptime, &to[i]);
        if (f == NULL) {
            err = UV_ENOMEM;
        } else {
            p->frags[p->nfrags++] = f;
            err = to[i] == NULL ? UV_EHOSTUNREACH : 0;
        }
    }
    /* the index, last: the client's key, flags and exptime */
    f = err == 0 ? fanout_fragment(p, MC_SET, 0) : NULL;
    if (f != NULL) {
        p->frags[p->nfrags++] = f;
        to[i] = pool_route(pool, buf + key->off, key->len);
        len = mc_prefix_key(&pool->cp->prefix, buf + key->off, key->len, sk);
        err = mc_compose_set(&f->out, sk, len, m->flags, m->exptime, idx,
                             split_index_encode(&x, idx));
        err = err == 0 && to[i] == NULL ? UV_EHOSTUNREACH : err;
    } else if (err == 0) {
        err = UV_ENOMEM;
    }
    if (err == 0) {
        p->pending = p->nfrags;
        STATS_BUMP(pool->stats.split_stored, 1);
        STATS_BUMP(pool->stats.fragments, p->nfrags);
        /* pending counts every fragment until it is done: see warm.c */
        for (i = 0; i < x.nchunks + 1; i++) {
            server_forward(to[i], p->frags[i]);
        }
    }
    free(to);
    return err;
}

/* Where chunk g of p's round goes this round (NULL: not asked). */
typedef struct server *chunk_route_fn(struct pool *pool, const struct req *p,
                                      uint32_t g, const char *key,
                                      size_t len);

static struct server *
route_now(struct pool *pool, const struct req *p, uint32_t g,
          const char *key, size_t len)
{
    (void)p;
    (void)g;
    return pool_route(pool, key, len);
}

/* A warm-up window: a chunk the first round missed, on the server the
 * previous ring gave it (a value written before the ring change). */
static struct server *
route_prev(struct pool *pool, const struct req *p, uint32_t g,
           const char *key, size_t len)
{
    if (!split_round_missing(p, g)) {
        return NULL;
    }
    return pool_route_prev(pool, key, len, pool_route(pool, key, len));
}

/* Sends a chunk round of p, each chunk where to() says. True when
 * something is out. UV_ENOMEM in *err. */
static bool
chunk_send(struct pool *pool, struct req *p, chunk_route_fn *to, int *err)
{
    uint32_t n = split_round_chunks(p), *route, *per_server, g, first;
    bool sent = false;

    route = malloc(n * sizeof(*route));
    per_server = malloc(pool->nservers * sizeof(*per_server));
    *err = route == NULL || per_server == NULL ? UV_ENOMEM : 0;
    for (g = 0; g < n && *err == 0; g++) {
        char ck[SPLIT_KEY_MAX];
        size_t len = split_round_key(p, g, ck);
        struct server *s = to(pool, p, g, ck, len);
        route[g] = s != NULL ? s->idx : SPLIT_NONE;
    }
    if (*err == 0) {
        *err = split_round(p, route, per_server, pool->nservers,
                           &pool->cp->prefix);
    }
    if (*err == 0) {
        n = p->pending;
        first = p->nfrags - n;
        sent = n > 0;
        STATS_BUMP(pool->stats.fragments, n);
        /* pending counts every fragment until it is done: see warm.c */
        for (g = 0; g < n; g++) {
            server_forward(pool->servers[per_server[g]],
                           p->frags[first + g]);
        }
    }
    free(route);
    free(per_server);
    return sent;
}

/* The chunk rounds of retrieval p: each chunk on its server, then, in a
 * warm-up window, the missing ones on their previous servers; then the
 * reassembly. True when a round is out. */
static bool
chunk_round(struct pool *pool, struct req *p)
{
    uint32_t n;
    int err = 0;

    if (p->round_data == NULL) {
        err = split_round_begin(p, &n);
        if (err == 0 && n > 0 && chunk_send(pool, p, route_now, &err)) {
            return true;
        }
    } else if (pool_warming(pool) &&
               chunk_send(pool, p, route_prev, &err)) {
        return true;
    }
    if (err != 0) {
        log_error("split values: chunk round: out of memory");
        split_round_fail(p);
    }
    split_round_end(p);     /* every chunk in, or no more to ask */
    return false;
}

bool
bigval_round(struct req *p)
{
    if (p->round_data == NULL && warm_round(p)) {
        return true;            /* the warm-up window's rounds first */
    }
    if (p->owner == NULL) {
        split_round_fail(p);    /* nobody reads the reply */
        return false;
    }
    return chunk_round(p->round_arg, p);
}
