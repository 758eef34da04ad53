/*
 * pool: a configured pool inside one worker: listener, servers, ring.
 */
#include "memring/pool.h"

#include "memring/conf.h"
#include "memring/hash.h"
#include "memring/health.h"
#include "memring/ioloop.h"
#include "memring/listener.h"
#include "memring/log.h"
#include "memring/placement.h"
#include "memring/ring.h"
#include "memring/tally.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int pool_refresh(struct pool *p, uint64_t now, bool force);

/* Builds the ring from the servers' names, weights and liveness. The ring
 * it replaces goes to *prev when prev is not NULL, else is freed. */
static int
pool_build_ring(struct pool *p, struct ring **prev)
{
    bool *live;
    struct ring *ring;
    uint32_t i;

    live = calloc(p->nservers == 0 ? 1 : p->nservers, sizeof(*live));
    if (live == NULL) {
        return UV_ENOMEM;
    }
    for (i = 0; i < p->nservers; i++) {
        live[i] = p->servers[i]->live;
    }
    ring = placement_ring(p->cp, live);
    free(live);
    if (ring == NULL) {
        return UV_ENOMEM;
    }
    if (prev != NULL) {
        *prev = p->ring;
    } else {
        ring_destroy(&p->ring);
    }
    p->ring = ring;
    p->npoints = ring_npoints(ring);
    return 0;
}

/* ---------------------------------------------------------------------
 * Warm-up window: the previous ring, for lookups of misses (warmup.h)
 * ------------------------------------------------------------------- */

/* Lets go of the previous ring; servers that left in a reload and were
 * kept for lookups drain now. */
static void
window_close(struct pool *p)
{
    struct pool_window *w = &p->window;
    uint32_t i;

    if (w->ring == NULL) {
        return;
    }
    for (i = 0; i < w->nservers; i++) {
        if (w->servers[i]->retired) {
            server_drain(w->servers[i]);
        }
    }
    ring_destroy(&w->ring);
    free(w->servers);
    w->servers = NULL;
    w->nservers = 0;
    w->until = 0;
}

/* ring (built from cp over servers[0..n), taken over) becomes the ring
 * misses are looked up in for cp's warmup_ms. */
static void
window_open(struct pool *p, const struct conf_pool *cp, struct ring *ring,
            struct server *const *servers, uint32_t n)
{
    struct pool_window *w = &p->window;
    struct server **copy = malloc((n == 0 ? 1 : n) * sizeof(*copy));

    window_close(p);
    if (copy == NULL || ring == NULL) {
        log_error("pool %s: warm-up window: out of memory", p->cp->name);
        free(copy);
        ring_destroy(&ring);
        return;
    }
    memcpy(copy, servers, n * sizeof(*copy));
    w->cp = cp;
    w->ring = ring;
    w->servers = copy;
    w->nservers = n;
    w->until = uv_now(&p->env.io->loop) + (uint64_t)p->cp->warmup_ms;
    log_notice("pool %s: ring changed: warm-up window open for %" PRId64
               " ms", p->cp->name, p->cp->warmup_ms);
}

bool
pool_warming(struct pool *p)
{
    if (p->window.ring == NULL) {
        return false;
    }
    if (uv_now(&p->env.io->loop) < p->window.until) {
        return true;
    }
    log_notice("pool %s: warm-up window closed", p->cp->name);
    window_close(p);
    return false;
}

struct server *
pool_route_prev(struct pool *p, const char *key, size_t len,
                const struct server *cur)
{
    const struct pool_window *w = &p->window;
    struct server *s;
    int32_t idx;

    if (w->ring == NULL) {
        return NULL;
    }
    idx = w->nservers == 1 ? 0 : placement_route(w->cp, w->ring, key, len);
    if (idx < 0 || (uint32_t)idx >= w->nservers) {
        return NULL;
    }
    s = w->servers[idx];
    return s != cur && s->live ? s : NULL;
}

/* What the pool's servers share follows its (new) config. */
static void
pool_set_ctx(struct pool *p)
{
    const struct conf_pool *cp = p->cp;
    struct server_ctx *ctx = &p->sctx;

    ctx->io = p->env.io;
    ctx->cp = cp;
    ctx->stats = &p->stats;
    ctx->eject.auto_eject = cp->auto_eject_hosts;
    ctx->eject.failure_limit = cp->server_failure_limit > 0 ?
                               (uint32_t)cp->server_failure_limit : 1;
    ctx->eject.retry_ms = (uint64_t)cp->server_retry_timeout;
}

/* One of p's servers was ejected: the ring changes now. */
static void
pool_server_ejected(void *arg, struct server *s)
{
    struct pool *p = arg;

    (void)s;
    pool_refresh(p, uv_now(&p->env.io->loop), false);
}

static uint32_t
conns_per_server(const struct conf_pool *cp)
{
    return cp->server_connections > 0 ? (uint32_t)cp->server_connections : 1;
}

static struct server *
pool_server_create(struct pool *p, const struct conf_pool *cp, uint32_t idx)
{
    return server_create(&p->sctx, &cp->servers[idx], idx,
                         conns_per_server(cp));
}

struct pool *
pool_create(const struct pool_env *env, const struct conf_pool *cp)
{
    struct pool *p = calloc(1, sizeof(*p));
    uint32_t i;

    if (p == NULL) {
        return NULL;
    }
    p->env = *env;
    p->cp = cp;
    pool_set_ctx(p);
    p->sctx.ejected = pool_server_ejected;
    p->sctx.arg = p;
    p->tally = tally_acquire(cp->name);
    if (p->tally == NULL) {
        goto error;
    }
    p->servers = calloc(cp->nservers, sizeof(*p->servers));
    if (p->servers == NULL) {
        goto error;
    }
    for (i = 0; i < cp->nservers; i++) {
        p->servers[i] = pool_server_create(p, cp, i);
        if (p->servers[i] == NULL) {
            goto error;
        }
        p->nservers = i + 1;
    }
    if (pool_refresh(p, uv_now(&env->io->loop), true) != 0) {
        goto error;
    }
    return p;
error:
    pool_destroy(&p);
    return NULL;
}

/* Binds and listens on cp->listen for p. NULL on error (logged). */
static struct listener *
pool_listener_open(struct pool *p, const struct conf_pool *cp, int *errp)
{
    struct listener *l;

    l = listener_open(&p->env.io->loop, &cp->listen, cp->backlog,
                      p->env.shared_port, p->env.accept_cb, p, errp);
    if (l == NULL) {
        log_error("pool %s: listen on %s: %s", cp->name, cp->listen.text,
                  uv_strerror(*errp));
    }
    return l;
}

int
pool_listen(struct pool *p)
{
    const struct conf_pool *cp = p->cp;
    int err;

    if (cp->listen.path != NULL && p->env.worker_id != 0) {
        return 0;   /* a unix socket has one listener: worker 0's */
    }
    p->listener = pool_listener_open(p, cp, &err);
    if (p->listener == NULL) {
        return err;
    }
    log_notice("pool %s: listening on %s, %u servers, %s/%s", cp->name,
               cp->listen.text, cp->nservers, hash_name(cp->hash),
               dist_name(cp->distribution));
    if (cp->preconnect) {
        pool_preconnect(p);
    }
    return 0;
}

void
pool_preconnect(struct pool *p)
{
    uint32_t i;

    for (i = 0; i < p->nservers; i++) {
        server_connect_all(p->servers[i]);
    }
}

void
pool_close(struct pool *p)
{
    struct server *s;
    uint32_t i;

    listener_close(&p->listener);
    for (i = 0; i < p->nservers; i++) {
        server_close(p->servers[i], SERVER_FAIL_SHUTDOWN);
    }
    for (s = p->retired; s != NULL; s = s->next_retired) {
        server_close(s, SERVER_FAIL_SHUTDOWN);
    }
}

void
pool_unlisten(struct pool *p)
{
    listener_close(&p->listener);
}

void
pool_destroy(struct pool **pp)
{
    struct pool *p = *pp;
    struct server *s;
    uint32_t i;

    if (p == NULL) {
        return;
    }
    *pp = NULL;
    for (i = 0; p->servers != NULL && i < p->nservers; i++) {
        server_destroy(&p->servers[i]);
    }
    while ((s = p->retired) != NULL) {
        p->retired = s->next_retired;
        server_destroy(&s);
    }
    free(p->servers);
    ring_destroy(&p->ring);
    ring_destroy(&p->window.ring);
    free(p->window.servers);
    tally_release(&p->tally);
    free(p);
}

/*
 * Brings this worker's ring up to date with its servers' shared health:
 * readmits those whose retry time has come, and rebuilds the ring when the
 * set of live servers changed, here or in another worker (or when forced).
 */
static int
pool_refresh(struct pool *p, uint64_t now, bool force)
{
    bool changed = force || p->ring_stale, returned = false;
    struct ring *prev = NULL;
    uint32_t i;

    p->health_gen = health_generation();  /* before reading the states */
    p->nejected = 0;
    p->next_rebuild = 0;
    for (i = 0; i < p->nservers; i++) {
        struct server *s = p->servers[i];
        uint64_t until = health_ejected_until(s->health);

        if (until != 0 && now >= until) {
            if (health_readmit(s->health, now)) {
                log_notice("pool %s: server %s: back on the ring after %"
                           PRId64 " ms", p->cp->name, s->cs->name,
                           p->cp->server_retry_timeout);
                STATS_BUMP(s->stats.server_returns, 1);
            }
            until = health_ejected_until(s->health);
        }
        if (until != 0) {
            p->nejected++;
            if (p->next_rebuild == 0 || until < p->next_rebuild) {
                p->next_rebuild = until;
            }
        }
        changed |= s->live != (until == 0);
        returned |= !s->live && until == 0;
        s->live = until == 0;
    }
    /* A server back from ejection takes its keys back: while warming,
     * they are looked up where they went meanwhile. */
    returned = returned && !force && p->cp->warmup_ms > 0 && p->ring != NULL;
    if (changed && pool_build_ring(p, returned ? &prev : NULL) != 0) {
        log_error("pool %s: ring rebuild: out of memory", p->cp->name);
        p->ring_stale = true;
        return UV_ENOMEM;
    }
    if (prev != NULL) {
        window_open(p, p->cp, prev, p->servers, p->nservers);
    }
    p->ring_stale = false;
    return 0;
}

struct server *
pool_route(struct pool *p, const char *key, size_t len)
{
    const struct conf_pool *cp = p->cp;
    int32_t idx;

    /* One atomic load per request notices an ejection by any worker. */
    if (p->ring_stale || p->health_gen != health_generation() ||
        (p->next_rebuild != 0 &&
         uv_now(&p->env.io->loop) >= p->next_rebuild)) {
        pool_refresh(p, uv_now(&p->env.io->loop), false);
    }
    if (p->nservers == 1) {
        return p->nejected == 0 ? p->servers[0] : NULL;
    }
    idx = placement_route(cp, p->ring, key, len);
    return idx < 0 ? NULL : p->servers[idx];
}

/* ---------------------------------------------------------------------
 * Reload
 * ------------------------------------------------------------------- */

struct pool_plan {
    const struct conf_pool *ncp;
    struct server          **servers;  /* ncp->nservers: kept or fresh */
    bool                   *fresh;     /* created by this plan */
    struct listener        *listener;  /* new listener, when listen moved */
};

static bool
str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }
    return strcmp(a, b) == 0;
}

/* The same server: same ring name at the same address. */
static bool
server_same(const struct conf_server *a, const struct conf_server *b)
{
    return str_eq(a->name, b->name) && str_eq(a->host, b->host) &&
           a->port == b->port && a->is_unix == b->is_unix;
}

/* The same key -> server rule: what a warm-up window is opened for. */
static bool
ring_same(const struct conf_pool *o, const struct conf_pool *ncp)
{
    uint32_t i;

    if (o->hash != ncp->hash || o->placement != ncp->placement ||
        strcmp(o->hash_tag, ncp->hash_tag) != 0 ||
        o->distribution != ncp->distribution ||
        o->nservers != ncp->nservers) {
        return false;
    }
    for (i = 0; i < ncp->nservers; i++) {
        if (!server_same(&o->servers[i], &ncp->servers[i]) ||
            o->servers[i].weight != ncp->servers[i].weight) {
            return false;
        }
    }
    return true;
}

bool
pool_same(const struct pool *p, const struct conf_pool *ncp)
{
    const struct conf_pool *o = p->cp;

    return ring_same(o, ncp) &&
           str_eq(o->listen.text, ncp->listen.text) &&
           o->listen.perm == ncp->listen.perm &&
           o->prefix.len == ncp->prefix.len &&
           o->split_values == ncp->split_values &&
           (o->prefix.len == 0 ||
            memcmp(o->prefix.s, ncp->prefix.s, o->prefix.len) == 0) &&
           o->timeout == ncp->timeout && o->backlog == ncp->backlog &&
           o->preconnect == ncp->preconnect &&
           o->client_connections == ncp->client_connections &&
           o->server_connections == ncp->server_connections &&
           o->auto_eject_hosts == ncp->auto_eject_hosts &&
           o->server_retry_timeout == ncp->server_retry_timeout &&
           o->server_failure_limit == ncp->server_failure_limit &&
           o->tcpkeepalive == ncp->tcpkeepalive;
}

void
pool_abort(struct pool_plan **planp)
{
    struct pool_plan *plan = *planp;
    uint32_t i;

    if (plan == NULL) {
        return;
    }
    *planp = NULL;
    /* Without fresh (out of memory in pool_prepare) no server was made. */
    for (i = 0; plan->servers != NULL && plan->fresh != NULL &&
                i < plan->ncp->nservers; i++) {
        if (plan->fresh[i]) {
            server_destroy(&plan->servers[i]);
        }
    }
    listener_close(&plan->listener);
    free(plan->servers);
    free(plan->fresh);
    free(plan);
}

int
pool_prepare(struct pool *p, const struct conf_pool *ncp,
             struct pool_plan **planp)
{
    struct pool_plan *plan;
    bool *taken;
    uint32_t i, j;
    int err;

    *planp = NULL;
    plan = calloc(1, sizeof(*plan));
    taken = calloc(p->nservers + 1, sizeof(*taken));
    if (plan == NULL || taken == NULL) {
        free(plan);
        free(taken);
        return UV_ENOMEM;
    }
    plan->ncp = ncp;
    plan->servers = calloc(ncp->nservers, sizeof(*plan->servers));
    plan->fresh = calloc(ncp->nservers, sizeof(*plan->fresh));
    if (plan->servers == NULL || plan->fresh == NULL) {
        goto nomem;
    }
    for (j = 0; j < ncp->nservers; j++) {
        for (i = 0; i < p->nservers; i++) {
            if (!taken[i] && server_same(p->servers[i]->cs, &ncp->servers[j])) {
                taken[i] = true;
                plan->servers[j] = p->servers[i];
                break;
            }
        }
        if (plan->servers[j] == NULL) {
            plan->servers[j] = pool_server_create(p, ncp, j);
            if (plan->servers[j] == NULL) {
                goto error;
            }
            plan->fresh[j] = true;
        }
    }
    if (!str_eq(p->cp->listen.text, ncp->listen.text) ||
        p->cp->listen.perm != ncp->listen.perm) {
        /* The new address is bound before the old one is let go, so that
         * a client always finds one of them. */
        if (str_eq(p->cp->listen.path, ncp->listen.path) &&
            ncp->listen.path != NULL) {
            /* Same socket file, new mode: just change the mode. */
        } else if (ncp->listen.path != NULL && p->env.worker_id != 0) {
            /* a unix socket has one listener: worker 0's */
        } else {
            plan->listener = pool_listener_open(p, ncp, &err);
            if (plan->listener == NULL) {
                free(taken);
                pool_abort(&plan);
                return err;
            }
        }
    }
    free(taken);
    *planp = plan;
    return 0;
nomem:
    free(taken);
    pool_abort(&plan);
    return UV_ENOMEM;
error:
    free(taken);
    pool_abort(&plan);
    return UV_EINVAL;
}

void
pool_commit(struct pool *p, struct pool_plan **planp, char *what, size_t len)
{
    struct pool_plan *plan = *planp;
    const struct conf_pool *ncp = plan->ncp, *ocp = p->cp;
    bool rebuild = !pool_same(p, ncp), moves = !ring_same(ocp, ncp);
    /* A warm-up window keeps the ring being replaced, over the servers
     * it was built on, those that leave included. */
    bool warm = moves && ncp->warmup_ms > 0 && p->ring != NULL;
    struct server **old = p->servers;
    struct ring *prev = NULL;
    uint32_t i, j, added = 0, removed = 0, nold = p->nservers;
    bool moved;

    if (moves) {
        window_close(p);
    }
    /* Servers that are not in the new list leave: their connections
     * finish what they carry, then close (when the window closes, if
     * one opens). */
    for (i = 0; i < p->nservers; i++) {
        struct server *s = p->servers[i];
        bool kept = false;
        for (j = 0; j < ncp->nservers && !kept; j++) {
            kept = plan->servers[j] == s;
        }
        if (!kept) {
            if (!warm) {
                server_drain(s);
            }
            s->retired = true;
            s->next_retired = p->retired;
            p->retired = s;
            removed++;
        }
    }
    for (j = 0; j < ncp->nservers; j++) {
        struct server *s = plan->servers[j];
        s->idx = j;
        s->cs = &ncp->servers[j];
        added += plan->fresh[j];
        if (!plan->fresh[j] && s->nconns != conns_per_server(ncp)) {
            server_resize(s, conns_per_server(ncp));
        }
    }
    p->servers = plan->servers;
    p->nservers = ncp->nservers;
    plan->servers = NULL;
    p->cp = ncp;
    pool_set_ctx(p);
    if (warm) {
        prev = p->ring;
        p->ring = NULL;
        window_open(p, ocp, prev, old, nold);
    }
    free(old);
    if (pool_refresh(p, uv_now(&p->env.io->loop), rebuild) != 0 &&
        rebuild) {
        /* The old ring indexes the old server list: no ring (no route)
         * rather than a wrong one, until pool_route()'s retry succeeds. */
        ring_destroy(&p->ring);
        p->npoints = 0;
    }
    moved = plan->listener != NULL;
    if (moved) {
        listener_close(&p->listener);
        p->listener = plan->listener;
        plan->listener = NULL;
    } else if (ncp->listen.path != NULL && ncp->listen.perm != 0) {
        chmod(ncp->listen.path, (mode_t)ncp->listen.perm);
    }
    snprintf(what, len, "pool %s: %s, %u servers added, %u removed%s",
             ncp->name, rebuild ? "changed" : "unchanged", added, removed,
             moved ? ", listening on the new address" : "");
    pool_abort(planp);    /* frees what is left of the plan */
    if (ncp->preconnect) {
        pool_preconnect(p);
    }
}

void
pool_remove(struct pool *p)
{
    uint32_t i;

    p->removed = true;
    pool_unlisten(p);
    for (i = 0; i < p->nservers; i++) {
        server_drain(p->servers[i]);
    }
}
