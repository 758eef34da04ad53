/*
 * pool: one configured pool inside one worker: its listener, its servers,
 * and its ring. Routing a key = hash_tag slice,
 * hash, ring lookup, exactly as twemproxy does it.
 */
#ifndef MEMRING_POOL_H
#define MEMRING_POOL_H

#include "memring/server.h"
#include "memring/stats.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <uv.h>

struct conf_pool;
struct ioloop;
struct listener;
struct ring;

/* What a pool needs of the worker it runs on. */
struct pool_env {
    struct ioloop    *io;
    uint32_t         worker_id;   /* a unix socket has one listener:
                                   * worker 0's */
    bool             shared_port; /* other workers listen on the same
                                   * TCP port */
    uv_connection_cb accept_cb;   /* a client connected to the pool's
                                   * listener, whose data is the pool */
};

/*
 * The ring a pool had before its last change, kept while a warm-up window
 * is open (warmup_ms): misses are looked up where this ring put the key.
 * Servers that left in a reload stay reachable until the window closes.
 */
struct pool_window {
    const struct conf_pool *cp;      /* the config that ring was built
                                      * from (configs live until exit) */
    struct ring            *ring;    /* NULL: no window */
    struct server          **servers; /* by index in cp->servers */
    uint32_t               nservers;
    uint64_t               until;    /* loop ms the window closes */
};

/*
 * A pool lives on the heap and is never moved: clients and servers point
 * at it (servers through its server_ctx).
 */
struct pool {
    struct pool_env        env;
    const struct conf_pool *cp;
    struct server_ctx      sctx;        /* what its servers share */
    struct ring            *ring;
    struct server          **servers;
    uint32_t               nservers;
    struct server          *retired;    /* list via next_retired */
    _Atomic uint32_t       nejected;    /* servers off the ring now */
    _Atomic uint32_t       npoints;     /* the ring's points; these two are
                                         * read by the admin on another
                                         * thread, which must not touch
                                         * the ring itself (it is rebuilt
                                         * whenever a server leaves) */
    uint64_t               next_rebuild; /* loop ms when one may return */
    uint64_t               health_gen;  /* health_generation() seen last */
    bool                   ring_stale;  /* a rebuild ran out of memory:
                                         * retried on the next route */
    struct pool_stats      stats;
    struct stats_hist      latency;     /* request parsed -> reply sent */
    struct tally           *tally;      /* clients, counted over workers */
    struct listener        *listener;   /* NULL when not listening */
    bool                   removed;     /* gone from the config: draining */
    struct pool_window     window;      /* the previous ring, while warm */
};

/* A pool for cp in env: resolves server addresses, builds the ring. NULL
 * on error (logged); not yet listening. */
struct pool *pool_create(const struct pool_env *env,
                         const struct conf_pool *cp);

/* Binds and listens on cp->listen. 0 or UV_E* (logged). */
int pool_listen(struct pool *p);

/* Closes the listener and every server connection (shutdown). */
void pool_close(struct pool *p);

/* Closes the listener only: no new clients (a draining shutdown). */
void pool_unlisten(struct pool *p);

/* Frees p, its servers and ring; after the loop closed every handle. */
void pool_destroy(struct pool **p);

/* The server for key, or NULL when no server is live. */
struct server *pool_route(struct pool *p, const char *key, size_t len);

/*
 * True while p's warm-up window is open; closes it when its time is up
 * (servers that left are let go then).
 */
bool pool_warming(struct pool *p);

/* While warming: the live server the previous ring gave key, when it is
 * not cur (the key's server now); else NULL. */
struct server *pool_route_prev(struct pool *p, const char *key, size_t len,
                               const struct server *cur);

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
