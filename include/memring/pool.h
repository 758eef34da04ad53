/*
 * pool: one configured pool inside one worker: its listener, its servers
 * with their connections, and its ring. Routing a key = hash_tag slice,
 * hash, ring lookup, exactly as twemproxy does it.
 */
#ifndef MEMRING_POOL_H
#define MEMRING_POOL_H

#include "memring/eject.h"
#include "memring/stats.h"

#include <stdbool.h>
#include <stdint.h>
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
    struct sockaddr_storage  addr;      /* resolved once at setup (TCP) */
    struct sconn             **conns;   /* server_connections slots */
    uint32_t                 nconns;
    uint32_t                 next;      /* round-robin over conns */
    struct eject_state       eject;     /* on the ring or not */
    uint64_t                 retry_at;  /* loop ms: no connect before */
    uint64_t                 backoff;   /* ms, doubles per failed connect */
    struct server_stats      stats;
    struct stats_hist        latency;   /* request written -> reply */
};

struct pool {
    struct worker          *w;
    const struct conf_pool *cp;
    struct ring            *ring;
    struct server          *servers;
    uint32_t               nservers;
    struct eject_policy    eject;       /* from the conf pool */
    uint32_t               nejected;    /* servers off the ring now */
    uint64_t               next_rebuild; /* loop ms when one may return */
    struct pool_stats      stats;
    struct stats_hist      latency;     /* request parsed -> reply sent */
    union {
        uv_handle_t        handle;
        uv_stream_t        stream;
        uv_tcp_t           tcp;
        uv_pipe_t          pipe;
    } listener;
    bool                   listening;
};

/* Builds p for cp: resolves server addresses, builds the ring. */
int pool_init(struct pool *p, struct worker *w, const struct conf_pool *cp);

/* Binds and listens on cp->listen. 0 or UV_E* (logged). */
int pool_listen(struct pool *p);

/* Closes the listener and every server connection. */
void pool_close(struct pool *p);

/* Frees the ring and servers; after the loop closed every handle. */
void pool_deinit(struct pool *p);

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

#endif /* MEMRING_POOL_H */
