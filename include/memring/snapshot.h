/*
 * snapshot: the one place that sums pool and server counters over the
 * workers, and that says whether a server is live. The admin documents
 * (/stats, /metrics, /healthz, /config) render from one snapshot_take();
 * memcached's "stats" command sums its pool with snapshot_pool_totals().
 *
 * The rule. A reader visits the workers one at a time and holds that
 * worker's pools_lock while it finds that worker's pool (by name) and
 * reads it; it never holds two such locks, so there is no lock order. The
 * lock keeps the pool alive: a reload swaps worker->pools under it and
 * frees a removed pool only later, on the owner's thread. The counters are
 * bumped by their owner without any lock while they are read: each is an
 * aligned uint64_t, so a sum is current or a moment stale, never torn, and
 * two fields (or two workers) may be read a moment apart.
 *
 * A pool's servers (the array and the structs) are replaced by a reload
 * outside that lock, so snapshot_take(), which reads them, must run where
 * no reload can run at the same time: on the thread that applies reloads
 * (worker 0's loop, the admin's), which waits while every other worker
 * switches. The snapshot's ref pointers (worker 0's pools and servers,
 * for names and config) stay valid until that thread returns to its loop.
 */
#ifndef MEMRING_SNAPSHOT_H
#define MEMRING_SNAPSHOT_H

#include "memring/stats.h"

#include <stdbool.h>
#include <stdint.h>

struct conf;
struct pool;
struct server;
struct worker;

/*
 * Whether one worker's copy of a server takes requests at now (that
 * worker's loop ms), and if not, why. Ejected counts first, then connect
 * backoff, then down (the latest connect, a request's or the probe's,
 * failed).
 *
 * The two readers differ, and this redesign keeps both as they were:
 * /healthz and memring_pool_healthy count a server the probe found down
 * (count_down true: a load balancer should not send clients to a pool that
 * cannot reach any server), while memring_server_live,
 * memring_pool_live_servers, /stats memring_live and /config "live" say
 * only whether the server is on the ring and may be connected to
 * (count_down false), as they always have.
 */
enum snapshot_liveness {
    SNAPSHOT_LIVE = 0,
    SNAPSHOT_EJECTED,       /* off the ring, not yet due back */
    SNAPSHOT_BACKOFF,       /* its last connect failed, retry not yet due */
    SNAPSHOT_DOWN           /* count_down only: health_down() says so */
};

enum snapshot_liveness snapshot_liveness(const struct server *s,
                                         uint64_t now, bool count_down);

/* One server of one pool, over every worker that has it. */
struct snapshot_server {
    const struct server *ref;      /* worker 0's: name and config */
    struct server_stats stats;     /* summed (stats_server_fold) */
    struct stats_hist   latency;   /* merged */
    bool                ejected;   /* ejected in some worker, due or not */
    bool                backoff;   /* in connect backoff in some worker */
    bool                live;      /* SNAPSHOT_LIVE without count_down in
                                    * every worker */
    uint64_t            retry_in_ms; /* ejected: soonest return, from now */
    int                 down;      /* health_down(): 0 or a UV_E* */
};

/* One worker's ring of a pool, as /config shows it. */
struct snapshot_ring {
    uint32_t worker;               /* its id */
    uint32_t npoints;
    uint32_t live_servers;         /* nservers - nejected */
    uint32_t ejected_servers;
};

struct snapshot_pool {
    const struct pool      *ref;   /* worker 0's: name and config */
    struct pool_stats      stats;  /* summed (stats_pool_fold) */
    struct stats_hist      latency;
    struct snapshot_server *servers;   /* worker 0's servers, in order */
    uint32_t               nservers;
    struct snapshot_ring   *rings; /* workers with the pool, in order */
    uint32_t               nrings;
    uint32_t               nlive;  /* servers with live set */
    bool                   healthy;    /* a server SNAPSHOT_LIVE with
                                        * count_down in every worker */
    uint32_t               nejected;   /* !healthy: the first worker
                                        * without one, its servers */
    uint32_t               nbackoff;   /* ... in backoff */
    uint32_t               ndown;      /* ... down */
};

struct snapshot {
    const struct conf    *conf;    /* worker 0's */
    uint32_t             nworkers;
    struct snapshot_pool *pools;   /* worker 0's pools, in config order */
    uint32_t             npools;
};

/* Sums workers[0..n) into s (n >= 1; worker 0 names what is reported,
 * the others' copies are found by name). On the reload thread only (see
 * above). 0, or UV_ENOMEM with s empty. Free with snapshot_free(). */
int snapshot_take(struct snapshot *s, struct worker *const *workers,
                  uint32_t n);

/* Frees what snapshot_take() made; s is empty after. */
void snapshot_free(struct snapshot *s);

/* Pool p (of worker arg) summed over every worker (arg's all), p itself
 * for its own worker: an ioloop_totals_fn, for memcached's "stats"
 * command. UV_ENOENT when arg has no list of workers. Any thread. */
int snapshot_pool_totals(void *arg, const struct pool *p,
                         struct pool_stats *sum);

#endif /* MEMRING_SNAPSHOT_H */
