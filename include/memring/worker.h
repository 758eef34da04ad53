/*
 * worker: one event loop with its own listeners, clients and backend
 * connections. The parsed config is immutable and shared by all workers;
 * everything mutable here belongs to this worker's thread alone, so the
 * request path takes no lock.
 */
#ifndef MEMRING_WORKER_H
#define MEMRING_WORKER_H

#include "memring/ioloop.h"
#include "memring/limits.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct conf;
struct pool;
struct probe;

/* A draining worker has no client left (called on its thread). */
typedef void worker_drained_fn(void *arg);

struct worker {
    struct ioloop       io;          /* the loop and what its connections
                                      * share */
    uint32_t            id;
    const struct conf   *conf;       /* shared, read only */
    struct pool         **pools;     /* one per conf pool, in conf order */
    uint32_t            npools;
    uv_mutex_t          pools_lock;  /* other threads reading pools hold
                                      * it; w holds it to replace them */
    struct pool         **removed;   /* pools gone in a reload, draining */
    uint32_t            nremoved;
    uv_async_t          stopper;     /* worker_stop() and worker_drain()
                                      * from another thread */
    atomic_bool         stop_now;    /* worker_stop() was called */
    worker_drained_fn   *drained;    /* set before w runs: told when a
                                      * drain is done; or NULL */
    void                *drained_arg;
    bool                shared_port; /* other workers listen too */
    struct worker       **all;       /* every worker (this one too), for
                                      * counters summed over them; or NULL */
    uint32_t            nall;
    uv_async_t          reconf;      /* reconfigure from another thread */
    uv_sem_t            reconf_done;
    const struct conf   *reconf_conf;
    char                reconf_msg[2048];
    int                 reconf_rc;
    uv_timer_t          tick;        /* once a second: closes idle clients
                                      * (if enabled), gives memory back */
    struct probe        *probe;      /* checks idle servers (worker 0) */
    bool                draining;    /* not accepting; clients finish */
    bool                stopping;
};

#define WORKER_TRIM_AFTER   (1024 * 1024)   /* freed bytes worth a trim */

/* Sets up w's loop and pools for conf (not yet listening). 0 or UV_E*. */
int worker_init(struct worker *w, uint32_t id, const struct conf *conf,
                const struct limits *limits);

/* Probes w's idle servers every interval_ms (health.h). 0 or UV_ENOMEM. */
int worker_start_probe(struct worker *w, uint64_t interval_ms);

/* Binds every pool's listener. 0, or the first error (logged). */
int worker_listen(struct worker *w);

/* Runs the loop until worker_stop(). */
int worker_run(struct worker *w);

/*
 * Switches w to conf, all at once between two loop turns: pools matched by
 * name; unchanged pools untouched; changed ones get new servers and ring;
 * new pools start listening; removed pools stop accepting and drain.
 * Runs on w's thread. 0, or an error (logged, and described in msg) after
 * which w still runs on its old config unchanged. msg gets a summary.
 */
int worker_reconfigure(struct worker *w, const struct conf *conf, char *msg,
                       size_t len);

/* worker_reconfigure() for a worker running on another thread: hands it
 * the config and waits until it has switched (or refused). */
int worker_reconfigure_remote(struct worker *w, const struct conf *conf,
                              char *msg, size_t len);

/* Asks w to stop: closes listeners, clients and servers. Thread safe. */
void worker_stop(struct worker *w);

/*
 * Asks w to drain: it closes its listeners, and each client once it has
 * answered the requests it read; when none is left, w calls
 * w->drained(w->drained_arg) on its own thread, once. w runs until
 * worker_stop(). Thread safe.
 */
void worker_drain(struct worker *w);

/* Frees what worker_init() made; call after worker_run() returned. */
void worker_deinit(struct worker *w);

/* w's pool named name, or NULL. From another thread, hold w->pools_lock. */
const struct pool *worker_find_pool(const struct worker *w, const char *name);


#endif /* MEMRING_WORKER_H */
