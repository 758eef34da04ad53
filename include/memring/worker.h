/*
 * worker: one event loop with its own listeners, clients and backend
 * connections. The parsed config is immutable and shared by all workers;
 * everything mutable here belongs to this worker's thread alone, so the
 * request path takes no lock.
 */
#ifndef MEMRING_WORKER_H
#define MEMRING_WORKER_H

#include "memring/buf.h"
#include "memring/mc_parse.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <uv.h>

struct client;
struct conf;
struct pool;
struct probe;
struct req;
struct sconn;

#define WORKER_SCRATCH_SIZE (64 * 1024)
#define WORKER_TRIM_AFTER   (1024 * 1024)   /* freed bytes worth a trim */

/* Limits that protect the process from its clients; each has a flag. */
struct worker_limits {
    uint64_t item_size_max;    /* longest value forwarded, bytes */
    uint64_t output_max;       /* unsent reply bytes before a client is cut */
    uint64_t pending_output_max; /* unsent reply bytes, all clients, past
                                  * which clients behind are cut */
    uint32_t max_clients;      /* client connections, over all workers */
    uint64_t pending_values_max; /* bytes of values held until their
                                  * server answers, over all clients */
    uint64_t idle_timeout_ms;  /* close clients idle that long; 0 = never */
    uint32_t requests_max;     /* unanswered requests of one client before
                                * it is no longer read for a while */
    uint32_t get_keys_max;     /* keys of one get/gets/gat/gats */
};

#define WORKER_DEFAULT_ITEM_SIZE_MAX (8ULL * 1024 * 1024)
#define WORKER_DEFAULT_OUTPUT_MAX    (128ULL * 1024 * 1024)
#define WORKER_DEFAULT_MAX_CLIENTS   16384
#define WORKER_DEFAULT_PENDING_VALUES_MAX (1ULL << 30)
#define WORKER_DEFAULT_PENDING_OUTPUT_MAX (1ULL << 30)
#define WORKER_DEFAULT_REQUESTS_MAX  1024
#define WORKER_DEFAULT_GET_KEYS_MAX  100000

/* The defaults above, idle timeout off. */
void worker_limits_default(struct worker_limits *l);

TAILQ_HEAD(client_list, client);
TAILQ_HEAD(sconn_list, sconn);

struct worker {
    uv_loop_t           loop;
    uint32_t            id;
    const struct conf   *conf;       /* shared, read only */
    struct pool         **pools;     /* one per conf pool, in conf order */
    uint32_t            npools;
    uv_mutex_t          pools_lock;  /* other threads reading pools hold
                                      * it; w holds it to replace them */
    struct pool         **removed;   /* pools gone in a reload, draining */
    uint32_t            nremoved;
    uv_prepare_t        flusher;     /* batched writes, once per loop turn */
    uv_async_t          stopper;     /* worker_stop() from another thread */
    struct client_list  clients;     /* every open client */
    struct client_list  dirty_clients;
    struct sconn_list   dirty_sconns;
    struct buf          scratch;     /* read buffer lent to idle clients */
    struct req          *req_pool;   /* freed reqs kept for reuse */
    struct req          **wreqs;     /* flush scratch: reqs being written */
    uv_buf_t            *wbufs;      /* ... and their bytes */
    uint32_t            wreqs_cap;
    uint32_t            wbufs_cap;
    uint32_t            req_pool_n;
    struct mc_span      *keys;       /* parser scratch: key spans */
    uint32_t            *route;      /* multi-get scratch: key -> server */
    uint32_t            keys_cap;    /* ... of keys and route */
    uint32_t            *per_server; /* multi-get scratch: one per server */
    uint32_t            per_server_cap;
    uint64_t            started;     /* uv_now() at setup, ms */
    uint64_t            read_ns;     /* uv_hrtime() as the read being
                                      * handled arrived: one clock read
                                      * for all the requests or replies in
                                      * it */
    struct worker_limits limits;
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
    uint64_t            freed;       /* bytes of large buffers freed since
                                      * the last tick */
    struct probe        *probe;      /* checks idle servers (worker 0) */
    bool                stopping;
};

/* Sets up w's loop and pools for conf (not yet listening). 0 or UV_E*. */
int worker_init(struct worker *w, uint32_t id, const struct conf *conf,
                const struct worker_limits *limits);

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

/* Frees what worker_init() made; call after worker_run() returned. */
void worker_deinit(struct worker *w);

/* Queues a flush of c (or s) at the end of this loop turn. */
void worker_mark_client(struct worker *w, struct client *c);
void worker_mark_sconn(struct worker *w, struct sconn *s);

/* Makes w->per_server hold n zeroes. 0 or UV_ENOMEM. */
int worker_per_server(struct worker *w, uint32_t n);

/* Makes w->wreqs/w->wbufs hold at least n entries. 0 or UV_ENOMEM. */
int worker_wscratch(struct worker *w, uint32_t n);

/* w's pool named name, or NULL. From another thread, hold w->pools_lock. */
const struct pool *worker_find_pool(const struct worker *w, const char *name);

/* Seconds since w started. */
uint64_t worker_uptime(const struct worker *w);

#endif /* MEMRING_WORKER_H */
