/*
 * pool: one configured pool inside one worker: its listener, its servers
 * with their connections, and its ring. Routing a key = hash_tag slice,
 * hash, ring lookup, exactly as twemproxy does it.
 */
#ifndef MEMRING_POOL_H
#define MEMRING_POOL_H

#include "memring/eject.h"
#include "memring/net.h"
#include "memring/stats.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <uv.h>

struct conf_pool;
struct conf_server;
struct ring;
struct sconn;
struct worker;

struct server {
    struct pool              *pool;
    uint32_t                 idx;       /* in conf order = ring order */
    const struct conf_server *cs;
    struct sockaddr_storage  addr;      /* resolved once (TCP) */
    struct sconn             **conns;   /* server_connections slots */
    TAILQ_HEAD(server_sconns, sconn) all; /* every open conn, incl. draining */
    uint32_t                 nconns;
    uint32_t                 next;      /* round-robin over conns */
    struct health            *health;   /* ejection state, shared by the
                                         * workers (health.h) */
    bool                     live;      /* on this worker's ring */
    uint64_t                 retry_at;  /* loop ms: no connect before */
    uint64_t                 backoff;   /* ms, doubles per failed connect */
    bool                     retired;   /* left the pool in a reload */
    uint64_t                 probe_responses; /* stats.responses when the
                                               * prober last looked */
    struct server_stats      stats;
    struct stats_hist        latency;   /* request written -> reply */
    struct server            *next_retired;
};

/* A listening socket; on the heap so that a reload can open a new one
 * before the old one is closed. Freed in its close callback. */
struct listener {
    union net_stream     h;
    struct pool            *pool;
    char                   *unlink_path; /* unix socket file to remove */
};

/*
 * A pool lives on the heap and is never moved: clients and server
 * connections point at it. Servers are separate allocations for the same
 * reason; a server that leaves in a reload is kept (retired) until the pool
 * is freed, so that its draining connections can still point at it.
 */
struct pool {
    struct worker          *w;
    const struct conf_pool *cp;
    struct ring            *ring;
    struct server          **servers;
    uint32_t               nservers;
    struct server          *retired;    /* list via next_retired */
    struct eject_policy    eject;       /* from the conf pool */
    uint32_t               nejected;    /* servers off the ring now */
    uint64_t               next_rebuild; /* loop ms when one may return */
    uint64_t               health_gen;  /* health_generation() seen last */
    struct pool_stats      stats;
    struct stats_hist      latency;     /* request parsed -> reply sent */
    struct tally           *tally;      /* clients, counted over workers */
    struct listener        *listener;   /* NULL when not listening */
    bool                   removed;     /* gone from the config: draining */
};

/* A pool for cp on w: resolves server addresses, builds the ring. NULL on
 * error (logged); not yet listening. */
struct pool *pool_create(struct worker *w, const struct conf_pool *cp);

/* Binds and listens on cp->listen. 0 or UV_E* (logged). */
int pool_listen(struct pool *p);

/* Closes the listener and every server connection (shutdown). */
void pool_close(struct pool *p);

/* Frees p, its servers and ring; after the loop closed every handle. */
void pool_destroy(struct pool **p);

/* The server for key, or NULL when no server is live. */
struct server *pool_route(struct pool *p, const char *key, size_t len);

/* A request to s failed (connect, EOF, garbage): with auto_eject_hosts,
 * server_failure_limit failures in a row take s off the ring for
 * server_retry_timeout ms. */
void pool_server_failed(struct server *s);

/* s answered: its failure streak ends. */
void pool_server_ok(struct server *s);

/* Opens connections to every server now (preconnect: true). */
void pool_preconnect(struct pool *p);

/*
 * Reload, in two steps so that a reload is all or nothing:
 * pool_prepare() does everything that can fail (resolving addresses, and
 * binding a changed listen address) and keeps the result in *plan;
 * pool_commit() then cannot fail: it swaps in the new servers and ring,
 * keeping connections and ejection state of servers that stay, draining
 * those of servers that left. pool_abort() undoes a prepare.
 */
struct pool_plan;
int pool_prepare(struct pool *p, const struct conf_pool *ncp,
                 struct pool_plan **plan);
void pool_commit(struct pool *p, struct pool_plan **plan, char *what,
                 size_t len);
void pool_abort(struct pool_plan **plan);

/* True when ncp would change nothing but pointers for p. */
bool pool_same(const struct pool *p, const struct conf_pool *ncp);

/* The pool left the config: stop accepting, let clients finish what they
 * sent, drain server connections. */
void pool_remove(struct pool *p);

#endif /* MEMRING_POOL_H */
