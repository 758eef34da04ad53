/*
 * server: connections to one memcached server. Requests are queued on a
 * connection (pending), written in one batch per loop turn (inflight), and
 * matched to replies in order. Connections open lazily on first use.
 *
 *   client outq ──> server_forward() ──> pending ──write──> inflight
 *                                                             │ reply
 *   client flush <── req done <──────────── sconn read <──────┘
 */
#ifndef MEMRING_SERVER_H
#define MEMRING_SERVER_H

#include "memring/buf.h"
#include "memring/net.h"
#include "memring/req.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <uv.h>

struct server;

#define SCONN_DETACHED UINT32_MAX  /* slot of a draining connection */

enum sconn_state {
    SCONN_CONNECTING = 0,
    SCONN_CONNECTED,
    SCONN_CLOSING
};

/* One connection to a server. Owned by its server slot until closing,
 * then by libuv until sconn_close_cb() frees it. */
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
    bool                 dirty;       /* on the worker's flush list */
    bool                 draining;    /* detached: close once it is empty */
    TAILQ_ENTRY(sconn)   dirty_link;
    TAILQ_ENTRY(sconn)   all_link;    /* server->all */
};

/* Queues r (whose out buffer is ready) to server s. Never fails: if s
 * cannot be reached r is failed with SERVER_ERROR through the usual path. */
void server_forward(struct server *s, struct req *r);

/* Opens s's connections if they are not open (preconnect). */
void server_connect_all(struct server *s);

/* Writes everything pending on sc. Called by the worker's flusher. */
void sconn_flush(struct sconn *sc);

/* Closes every connection of s, failing what they had queued. */
void server_close(struct server *s, const char *why);

/* s takes no new requests (it left the pool, or the pool went away): its
 * connections close as soon as what they carry is answered. */
void server_drain(struct server *s);

/* Changes s's number of connections; extra ones drain. */
void server_resize(struct server *s, uint32_t nconns);

#endif /* MEMRING_SERVER_H */
