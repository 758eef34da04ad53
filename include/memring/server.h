/*
 * server: one memcached server of a pool and its connections. Requests are
 * queued on a connection (pending), written in one batch per loop turn
 * (inflight), and matched to replies in order. Connections open lazily on
 * first use. A server also keeps its own failure bookkeeping: connect
 * backoff, failures toward ejection (shared with the other workers through
 * health.h), and its counters.
 *
 *   client ──> server_forward() ──> pending ──write──> inflight
 *                                                        │ reply
 *   req_done() / fanout_done() <──── sconn read <────────┘
 */
#ifndef MEMRING_SERVER_H
#define MEMRING_SERVER_H

#include "memring/buf.h"
#include "memring/eject.h"
#include "memring/ioloop.h"
#include "memring/net.h"
#include "memring/req.h"
#include "memring/stats.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <uv.h>

struct conf_pool;
struct conf_server;
struct server;

#define SCONN_DETACHED UINT32_MAX  /* slot of a draining connection */

/* Why requests to a server failed; the client sees "SERVER_ERROR <text>"
 * (server_fail_text()). */
enum server_fail {
    SERVER_FAIL_IO = 0,        /* a socket error: its uv_strerror() text */
    SERVER_FAIL_CONNECT,       /* no connection could even be started */
    SERVER_FAIL_CONNECT_TIMEOUT,
    SERVER_FAIL_TIMEOUT,       /* no reply within the pool's timeout */
    SERVER_FAIL_CLOSED,        /* the server closed the connection */
    SERVER_FAIL_INVALID,       /* a reply that cannot be parsed */
    SERVER_FAIL_UNEXPECTED,    /* a reply that answers nothing asked */
    SERVER_FAIL_NOMEM,
    SERVER_FAIL_SHUTDOWN,
    SERVER_FAIL_DRAINED,       /* closed once it carried nothing */
    SERVER_FAIL_COUNT
};

/* The text of a failure; err is the UV_E* code of SERVER_FAIL_IO. */
const char *server_fail_text(enum server_fail why, int err);

/* Called when a server was ejected: the pool's ring must change. */
typedef void server_ejected_fn(void *arg, struct server *s);

/* What the servers of one pool share, owned by the pool (it changes on a
 * reload, in place). */
struct server_ctx {
    struct ioloop            *io;
    const struct conf_pool   *cp;       /* timeout, keepalive, names */
    struct eject_policy      eject;
    struct pool_stats        *stats;    /* the pool's counters */
    server_ejected_fn        *ejected;
    void                     *arg;
};

enum sconn_state {
    SCONN_CONNECTING = 0,
    SCONN_CONNECTED,
    SCONN_CLOSING
};

/* One connection to a server. Owned by its server slot until closing,
 * then by libuv until its close callback frees it. */
struct sconn {
    union net_stream     h;
    uv_connect_t         connect_req;
    uv_timer_t           timer;       /* connect and request timeouts */
    uint32_t             nclosing;    /* handles whose close_cb is due */
    struct server        *server;     /* NULL once closing */
    uint32_t             slot;        /* index in server->conns */
    enum sconn_state     state;
    struct req_queue     pending;     /* not yet written */
    struct req_queue     inflight;    /* written, awaiting reply, FIFO */
    struct buf           rbuf;        /* reply bytes not yet parsed */
    size_t               need;        /* bytes the unit in rbuf needs */
    bool                 draining;    /* detached: close once it is empty */
    struct ioloop_task   flush;       /* its end-of-turn write */
    TAILQ_ENTRY(sconn)   all_link;    /* server->all */
};

/* A server lives on the heap and is never moved: connections and the
 * ring's users point at it. One that leaves in a reload is kept (retired)
 * by its pool until the pool is freed, so that its draining connections
 * can still point at it. */
struct server {
    const struct server_ctx  *ctx;      /* its pool's */
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
    _Atomic uint64_t         retry_at;  /* loop ms: no connect before */
    _Atomic uint64_t         backoff;   /* ms, doubles per failed connect;
                                         * both read by the admin */
    bool                     retired;   /* left the pool in a reload */
    uint64_t                 probe_responses; /* stats.responses when the
                                               * prober last looked */
    struct server_stats      stats;
    struct stats_hist        latency;   /* request written -> reply */
    struct server            *next_retired;
};

/* Server cs, at ring index idx, of the pool whose servers share ctx, with
 * nconns connection slots: resolves its address. NULL on error (logged). */
struct server *server_create(const struct server_ctx *ctx,
                             const struct conf_server *cs, uint32_t idx,
                             uint32_t nconns);

/* Frees s; its connections must be closed (server_close()). */
void server_destroy(struct server **s);

/* Queues r (whose out buffer is ready) to s. Never fails: if s cannot be
 * reached r is failed with SERVER_ERROR through the usual path. */
void server_forward(struct server *s, struct req *r);

/* Opens s's connections if they are not open (preconnect). */
void server_connect_all(struct server *s);

/* Closes every connection of s, failing what they had queued. */
void server_close(struct server *s, enum server_fail why);

/* s takes no new requests (it left the pool, or the pool went away): its
 * connections close as soon as what they carry is answered. */
void server_drain(struct server *s);

/* Changes s's number of connections; extra ones drain. */
void server_resize(struct server *s, uint32_t nconns);

#endif /* MEMRING_SERVER_H */
