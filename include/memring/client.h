/*
 * client: a connection from a memcached client. It parses requests, routes
 * them, and writes replies strictly in request order (the outq), batched
 * once per loop turn. A client that goes away while its requests are still
 * at servers leaves them to finish and be dropped (swallow).
 */
#ifndef MEMRING_CLIENT_H
#define MEMRING_CLIENT_H

#include "memring/buf.h"
#include "memring/ioloop.h"
#include "memring/mc_parse.h"
#include "memring/net.h"
#include "memring/req.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <uv.h>

struct pool;

struct client {
    union net_stream     h;
    struct pool          *pool;
    struct ioloop        *io;
    struct buf           rbuf;      /* request bytes not yet parsed */
    struct req_queue     outq;      /* every request, in arrival order */
    uint32_t             nqueued;   /* requests on outq */
    uint32_t             nwrites;   /* writes in flight */
    uint64_t             unsent;    /* write-queue bytes counted in
                                     * tally_output_bytes */
    uint64_t             swallow;   /* bytes of a refused value (or of a
                                     * request not served) to drop */
    struct mc_scan       scan;      /* the unfinished request line so far */
    uint32_t             window;    /* requests it may have unanswered now:
                                     * grows while its replies are taken at
                                     * once, shrinks when they are not */
    uint64_t             pending;   /* bytes of the request being received,
                                     * counted in tally_value_bytes */
    uint64_t             last_active; /* loop ms of the last read */
    bool                 closing;
    bool                 counted;   /* in its pool's tally */
    bool                 quitting;  /* a quit (or fatal error) was read */
    bool                 draining;  /* not read any more: answers the
                                     * requests it holds, then closes */
    bool                 eof;       /* the client half-closed */
    bool                 lingering; /* drained, still sending: FIN sent,
                                     * read and dropped until its EOF */
    bool                 paused;    /* not read: too many requests unanswered
                                     * (window), or too many reply bytes
                                     * unsent (CLIENT_UNSENT_PAUSE) */
    bool                 binary_seen; /* logged its first binary request */
    struct ioloop_task   flush;     /* its end-of-turn write */
    TAILQ_ENTRY(client)  link;      /* io->clients */
};

/* uv_connection_cb for a pool listener (its data is the pool). */
void client_accept_cb(uv_stream_t *listener, int status);

/* Stops reading from c; c closes once it has answered every complete
 * request it read (those still in its buffer too) and sent the replies. */
void client_drain(struct client *c);

/* Closes c now; its requests at servers are swallowed. Idempotent. */
void client_close(struct client *c);

/* client_drain() for every client of pool p on io (p left the config), or
 * for every client on io when p is NULL (a graceful shutdown). */
void client_drain_pool(struct ioloop *io, const struct pool *p);

/* Closes every client on io (shutdown). */
void client_close_all(struct ioloop *io);

/* Closes the clients on io that owe nothing and were idle timeout_ms. */
void client_close_idle(struct ioloop *io, uint64_t timeout_ms);

/* Frees the scratch memory the clients on io share (at exit). */
void client_scratch_destroy(struct ioloop *io);

#endif /* MEMRING_CLIENT_H */
