/*
 * warm: the warm-up window's rounds and deletes (see warm.h).
 */
#include "memring/warm.h"

#include "memring/conf.h"
#include "memring/log.h"
#include "memring/mc_compose.h"
#include "memring/pool.h"
#include "memring/req.h"
#include "memring/server.h"
#include "memring/warmup.h"

#include <stdlib.h>

/* Where one round's keys go: route[i] indexes servers (WARMUP_NONE: key
 * i sits this round out); per_server is warmup_round()'s scratch. */
struct warm_plan {
    uint32_t      *route;
    uint32_t      *per_server;
    struct server **servers;
    uint32_t      nservers;
};

static int
plan_init(struct warm_plan *w, uint32_t nkeys)
{
    uint32_t i;

    w->route = malloc(nkeys * sizeof(*w->route));
    w->per_server = malloc(nkeys * sizeof(*w->per_server));
    w->servers = malloc(nkeys * sizeof(*w->servers));
    w->nservers = 0;
    if (w->route == NULL || w->per_server == NULL || w->servers == NULL) {
        return UV_ENOMEM;
    }
    for (i = 0; i < nkeys; i++) {
        w->route[i] = WARMUP_NONE;
    }
    return 0;
}

static void
plan_free(struct warm_plan *w)
{
    free(w->route);
    free(w->per_server);
    free(w->servers);
}

/* Key i goes to s this round. */
static void
plan_add(struct warm_plan *w, uint32_t i, struct server *s)
{
    uint32_t j;

    for (j = 0; j < w->nservers && w->servers[j] != s; j++) {
    }
    if (j == w->nservers) {
        w->servers[w->nservers++] = s;
    }
    w->route[i] = j;
}

/* Builds round cmd of p from w and sends it. True when something is out
 * (p waits for it). */
static bool
plan_send(struct warm_plan *w, struct req *p, enum mc_cmd cmd)
{
    uint32_t first, n, j;

    if (w->nservers == 0) {
        return false;
    }
    if (warmup_round(p, cmd, w->route, w->per_server, w->nservers) != 0) {
        log_error("warm-up round: out of memory");
        return false;
    }
    n = p->pending;
    first = p->nfrags - n;
    /* pending counts every fragment until it is done: a server that
     * fails one at once cannot complete p before the last one is sent */
    for (j = 0; j < n; j++) {
        server_forward(w->servers[w->per_server[j]], p->frags[first + j]);
    }
    return n > 0;
}

/* Round 2: each key that missed and moved, on its previous server. */
static bool
warm_lookups(struct pool *pool, struct req *p, struct warm_plan *w)
{
    uint32_t i;

    if (!pool_warming(pool)) {
        return false;
    }
    for (i = 0; i < p->nkeys; i++) {
        char ck[MC_KEY_MAX];
        size_t len;
        const char *key = warmup_client_key(p, i, ck, &len);
        struct server *prev;

        if (p->slots[i].frag != NULL) {
            continue;
        }
        prev = pool_route_prev(pool, key, len,
                               pool_route(pool, key, len));
        if (prev != NULL) {
            plan_add(w, i, prev);
        }
    }
    return plan_send(w, p, MC_META_GET);
}

/* A get's copy, sent on its own: the client does not wait for it. */
static void
copy_alone(struct req *p, uint32_t k, struct server *s)
{
    struct req *r = req_create(p->cache, p->stats, MC_META_ADD);

    if (r == NULL) {
        return;
    }
    r->noreply = true;
    if (warmup_copy(&r->out, p, k, false) == 0) {
        server_forward(s, r);
    }
    req_put(&r);
}

/* The hits of round 2 go to their keys' servers now: gets/gats wait
 * (round 3) for the CAS the copy gets there. */
static bool
warm_copies(struct pool *pool, struct req *p, struct warm_plan *w)
{
    bool wait = p->cmd == MC_GETS || p->cmd == MC_GATS;
    uint32_t k;

    for (k = 0; k < p->nkeys; k++) {
        char ck[MC_KEY_MAX];
        size_t len;
        const char *key;
        struct server *s;

        if (!warmup_found(p, k)) {
            continue;
        }
        key = warmup_client_key(p, k, ck, &len);
        s = pool_route(pool, key, len);
        if (s == NULL) {
            if (wait) {
                p->slots[k].frag = NULL;    /* no CAS to give */
            }
        } else if (wait) {
            plan_add(w, k, s);
        } else {
            copy_alone(p, k, s);
        }
    }
    if (!wait || plan_send(w, p, MC_META_ADD)) {
        return wait;
    }
    warmup_drop_found(p);       /* nothing sent: no CAS to give */
    return false;
}

bool
warm_round(struct req *p)
{
    struct pool *pool = p->round_arg;
    struct warm_plan w;
    bool more = false;

    if (p->owner == NULL || p->round >= 2) {
        return false;   /* the client is gone, or every round is done */
    }
    if (plan_init(&w, p->nkeys) != 0) {
        log_error("warm-up round: out of memory");
    } else if (p->round++ == 0) {
        more = warm_lookups(pool, p, &w);
    } else {
        more = warm_copies(pool, p, &w);
    }
    plan_free(&w);
    return more;
}

void
warm_forget(struct pool *p, struct req_cache *rc, const char *key, size_t len,
            const struct server *cur)
{
    const struct mc_prefix *pfx = &p->cp->prefix;
    char sk[MC_KEY_MAX];
    struct server *prev;
    struct req *r;

    if (!pool_warming(p)) {
        return;
    }
    prev = pool_route_prev(p, key, len, cur);
    if (prev == NULL) {
        return;
    }
    r = req_create(rc, &p->stats, MC_DELETE);
    if (r == NULL) {
        return;
    }
    r->noreply = true;
    if (pfx->len > 0) {
        len = mc_prefix_key(pfx, key, len, sk);
        key = sk;
    }
    if (mc_compose_delete(&r->out, key, len) == 0) {
        server_forward(prev, r);
    }
    req_put(&r);
}
