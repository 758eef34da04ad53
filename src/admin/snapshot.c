/*
 * snapshot: pool and server counters summed over the workers, and server
 * liveness, in one place and under one rule (see snapshot.h).
 */
#include "memring/snapshot.h"

#include "memring/conf.h"
#include "memring/health.h"
#include "memring/pool.h"
#include "memring/ring.h"
#include "memring/worker.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* Its last connect failed and the next is not yet allowed. */
static bool
backoff_now(const struct server *s, uint64_t now)
{
    return s->retry_at > now;
}

/*
 * Off the ring counts only while not yet due back. The pool puts a server
 * back lazily, on the next request it routes; one whose retry time has
 * come counts as live, or a pool whose servers were all ejected would
 * report 503 until traffic arrived, and a load balancer that trusts
 * /healthz would never send it any.
 */
enum snapshot_liveness
snapshot_liveness(const struct server *s, uint64_t now, bool count_down)
{
    if (health_ejected_until(s->health) > now) {
        return SNAPSHOT_EJECTED;
    }
    if (backoff_now(s, now)) {
        return SNAPSHOT_BACKOFF;
    }
    if (count_down && health_down(s->health) != 0) {
        return SNAPSHOT_DOWN;
    }
    return SNAPSHOT_LIVE;
}

/* w's pool named name; all workers run the same config but for a moment
 * in a reload, so the same index almost always matches at once. */
static const struct pool *
find_pool(const struct worker *w, const char *name, uint32_t hint)
{
    if (hint < w->npools && strcmp(w->pools[hint]->cp->name, name) == 0) {
        return w->pools[hint];
    }
    return worker_find_pool(w, name);
}

static const struct server *
find_server(const struct pool *p, const char *name, uint32_t hint)
{
    uint32_t i;

    if (hint < p->nservers && strcmp(p->servers[hint]->cs->name, name) == 0) {
        return p->servers[hint];
    }
    for (i = 0; i < p->nservers; i++) {
        if (strcmp(p->servers[i]->cs->name, name) == 0) {
            return p->servers[i];
        }
    }
    return NULL;
}

/* Adds one worker's copy s of a server. */
static void
add_server(struct snapshot_server *ss, const struct server *s)
{
    uint64_t now = uv_now(&s->ctx->io->loop);
    uint64_t until = health_ejected_until(s->health), left;

    stats_server_fold(&ss->stats, &s->stats);
    stats_hist_merge(&ss->latency, &s->latency);
    if (until != 0) {
        left = until > now ? until - now : 0;
        if (!ss->ejected || left < ss->retry_in_ms) {
            ss->retry_in_ms = left;
        }
        ss->ejected = true;
    }
    if (snapshot_liveness(s, now, false) != SNAPSHOT_LIVE) {
        ss->live = false;
    }
    ss->backoff = ss->backoff || backoff_now(s, now);
}

/* Adds one worker's copy p of a pool: counters, its ring, and whether it
 * has a live server (the first worker without one is the one reported). */
static void
add_pool(struct snapshot_pool *sp, const struct pool *p)
{
    struct snapshot_ring *r = &sp->rings[sp->nrings++];
    uint32_t count[SNAPSHOT_DOWN + 1] = { 0 };
    uint64_t now = uv_now(&p->env.io->loop);
    uint32_t si;

    stats_pool_fold(&sp->stats, &p->stats);
    stats_hist_merge(&sp->latency, &p->latency);
    r->worker = p->env.worker_id;
    r->npoints = p->npoints;
    r->live_servers = p->nservers - p->nejected;
    r->ejected_servers = p->nejected;
    for (si = 0; si < p->nservers; si++) {
        count[snapshot_liveness(p->servers[si], now, true)]++;
    }
    if (sp->healthy && count[SNAPSHOT_LIVE] == 0) {
        sp->healthy = false;
        sp->nejected = count[SNAPSHOT_EJECTED];
        sp->nbackoff = count[SNAPSHOT_BACKOFF];
        sp->ndown = count[SNAPSHOT_DOWN];
    }
    for (si = 0; si < sp->nservers; si++) {
        const struct server *s = find_server(p, sp->servers[si].ref->cs->name,
                                             si);
        if (s != NULL) {
            add_server(&sp->servers[si], s);
        }
    }
}

/* One entry per pool and server of w0 (worker 0), nothing summed yet. */
static int
snapshot_alloc(struct snapshot *s, const struct worker *w0, uint32_t n)
{
    uint32_t pi, si;

    s->conf = w0->conf;
    s->nworkers = n;
    s->pools = calloc(w0->npools, sizeof(*s->pools));
    if (s->pools == NULL && w0->npools > 0) {
        return UV_ENOMEM;
    }
    s->npools = w0->npools;
    for (pi = 0; pi < s->npools; pi++) {
        struct snapshot_pool *sp = &s->pools[pi];
        const struct pool *p = w0->pools[pi];
        sp->ref = p;
        sp->healthy = true;
        sp->rings = calloc(n, sizeof(*sp->rings));
        sp->servers = calloc(p->nservers, sizeof(*sp->servers));
        if (sp->rings == NULL ||
            (sp->servers == NULL && p->nservers > 0)) {
            return UV_ENOMEM;
        }
        sp->nservers = p->nservers;
        for (si = 0; si < sp->nservers; si++) {
            sp->servers[si].ref = p->servers[si];
            sp->servers[si].live = true;
            sp->servers[si].down = health_down(p->servers[si]->health);
        }
    }
    return 0;
}

int
snapshot_take(struct snapshot *s, struct worker *const *workers, uint32_t n)
{
    uint32_t w, pi, si;
    int err;

    memset(s, 0, sizeof(*s));
    uv_mutex_lock(&workers[0]->pools_lock);
    err = snapshot_alloc(s, workers[0], n);
    uv_mutex_unlock(&workers[0]->pools_lock);
    if (err != 0) {
        snapshot_free(s);
        return err;
    }
    for (w = 0; w < n; w++) {
        uv_mutex_lock(&workers[w]->pools_lock);
        for (pi = 0; pi < s->npools; pi++) {
            const struct pool *p = find_pool(workers[w],
                                             s->pools[pi].ref->cp->name, pi);
            if (p != NULL) {
                add_pool(&s->pools[pi], p);
            }
        }
        uv_mutex_unlock(&workers[w]->pools_lock);
    }
    for (pi = 0; pi < s->npools; pi++) {
        for (si = 0; si < s->pools[pi].nservers; si++) {
            s->pools[pi].nlive += s->pools[pi].servers[si].live;
        }
    }
    return 0;
}

void
snapshot_free(struct snapshot *s)
{
    uint32_t pi;

    for (pi = 0; s->pools != NULL && pi < s->npools; pi++) {
        free(s->pools[pi].servers);
        free(s->pools[pi].rings);
    }
    free(s->pools);
    memset(s, 0, sizeof(*s));
}

int
snapshot_pool_totals(void *arg, const struct pool *p, struct pool_stats *sum)
{
    const struct worker *w = arg;
    uint32_t i;

    if (w->all == NULL) {
        return UV_ENOENT;
    }
    memset(sum, 0, sizeof(*sum));
    for (i = 0; i < w->nall; i++) {
        struct worker *o = w->all[i];
        const struct pool *q;
        uv_mutex_lock(&o->pools_lock);
        q = o == w ? p : worker_find_pool(o, p->cp->name);
        if (q != NULL) {
            stats_pool_fold(sum, &q->stats);
        }
        uv_mutex_unlock(&o->pools_lock);
    }
    return 0;
}
