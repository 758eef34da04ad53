/*
 * ioloop: what every connection on one worker thread shares: the libuv
 * loop, the end-of-turn flush (each connection's writes batched once per
 * loop turn), the clock of the read being handled, the request cache, and
 * the list of open clients. It knows no protocol and no pool; the worker
 * owns one and hands it down.
 *
 *   read cb ──> connection marks itself ──> ioloop_flush_later()
 *   loop about to block ──> flusher: servers lane, then clients lane,
 *                           again while servers got work
 */
#ifndef MEMRING_IOLOOP_H
#define MEMRING_IOLOOP_H

#include "memring/limits.h"
#include "memring/req.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <uv.h>

struct client;
struct client_scratch;
struct ioloop_task;
struct pool;
struct pool_stats;

/* Servers flush first: their writes carry requests clients just sent. */
enum ioloop_lane {
    IOLOOP_SERVERS = 0,
    IOLOOP_CLIENTS,
    IOLOOP_NLANES
};

typedef void ioloop_task_fn(struct ioloop_task *t);

/* Embedded in a connection: its flush, queued at most once per turn. */
struct ioloop_task {
    TAILQ_ENTRY(ioloop_task) link;
    ioloop_task_fn           *fn;
    enum ioloop_lane         lane;
    bool                     queued;
};

TAILQ_HEAD(ioloop_tasks, ioloop_task);
TAILQ_HEAD(ioloop_clients, client);

/* A pool's counters summed over every worker (the `stats` command); set
 * by whoever knows the workers. 0 or an error. */
typedef int ioloop_totals_fn(void *arg, const struct pool *p,
                             struct pool_stats *sum);

/* The last open client on a loop closed. */
typedef void ioloop_clients_gone_fn(void *arg);

struct ioloop {
    uv_loop_t              loop;
    uv_prepare_t           flusher;
    struct ioloop_tasks    lanes[IOLOOP_NLANES];
    struct limits          limits;
    struct req_cache       reqs;      /* freed reqs kept for reuse */
    struct ioloop_clients  clients;   /* every open client (client.c) */
    struct client_scratch  *client_scratch; /* client.c's, lazily made */
    uint64_t               read_ns;   /* uv_hrtime() as the read being
                                       * handled arrived: one clock read
                                       * for every request or reply in it */
    uint64_t               freed;     /* bytes of large buffers freed since
                                       * the worker last gave memory back */
    uint64_t               started;   /* uv_now() at init, ms */
    ioloop_totals_fn       *totals;   /* NULL: this worker's counters */
    void                   *totals_arg;
    ioloop_clients_gone_fn *clients_gone; /* NULL: nobody waits for that
                                           * (set by a draining worker) */
    void                   *clients_gone_arg;
};

/* Initialises io's loop and flusher with limits. 0 or a UV_E* error. */
int ioloop_init(struct ioloop *io, const struct limits *limits);

/* Closes the flusher handle (the loop then runs down). */
void ioloop_close(struct ioloop *io);

/* Frees what io keeps; after every handle on its loop is closed. */
void ioloop_deinit(struct ioloop *io);

void ioloop_task_init(struct ioloop_task *t, ioloop_task_fn *fn,
                      enum ioloop_lane lane);

/* Runs t's flush once at the end of this loop turn. */
void ioloop_flush_later(struct ioloop *io, struct ioloop_task *t);

/* t will not run (its connection is closing). */
void ioloop_flush_cancel(struct ioloop *io, struct ioloop_task *t);

/* Seconds since io was initialised. */
uint64_t ioloop_uptime(const struct ioloop *io);

#endif /* MEMRING_IOLOOP_H */
