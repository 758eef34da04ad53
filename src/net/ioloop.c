/*
 * ioloop: one worker thread's loop and its end-of-turn flush (ioloop.h).
 */
#include "memring/ioloop.h"

#include <stdlib.h>

/* Before the loop blocks for I/O: write what this turn produced, once per
 * connection, so that pipelined requests and replies travel in batches.
 * A client's flush can queue more server work (a paused client resumes
 * and parses what it had buffered), so go round until the servers lane
 * is empty: the loop is about to block. */
static void
ioloop_flush_cb(uv_prepare_t *handle)
{
    struct ioloop *io = handle->data;
    struct ioloop_task *t;
    int lane;

    do {
        for (lane = 0; lane < IOLOOP_NLANES; lane++) {
            while ((t = TAILQ_FIRST(&io->lanes[lane])) != NULL) {
                TAILQ_REMOVE(&io->lanes[lane], t, link);
                t->queued = false;
                t->fn(t);
            }
        }
    } while (!TAILQ_EMPTY(&io->lanes[IOLOOP_SERVERS]));
}

int
ioloop_init(struct ioloop *io, const struct limits *limits)
{
    int lane, err;

    io->limits = *limits;
    for (lane = 0; lane < IOLOOP_NLANES; lane++) {
        TAILQ_INIT(&io->lanes[lane]);
    }
    TAILQ_INIT(&io->clients);
    req_cache_init(&io->reqs, &io->freed);
    err = uv_loop_init(&io->loop);
    if (err != 0) {
        return err;
    }
    io->started = uv_now(&io->loop);
    uv_prepare_init(&io->loop, &io->flusher);
    io->flusher.data = io;
    return uv_prepare_start(&io->flusher, ioloop_flush_cb);
}

void
ioloop_close(struct ioloop *io)
{
    if (!uv_is_closing((uv_handle_t *)&io->flusher)) {
        uv_close((uv_handle_t *)&io->flusher, NULL);
    }
}

void
ioloop_deinit(struct ioloop *io)
{
    req_cache_drain(&io->reqs);
    uv_loop_close(&io->loop);
}

void
ioloop_task_init(struct ioloop_task *t, ioloop_task_fn *fn,
                 enum ioloop_lane lane)
{
    t->fn = fn;
    t->lane = lane;
    t->queued = false;
}

void
ioloop_flush_later(struct ioloop *io, struct ioloop_task *t)
{
    if (!t->queued) {
        t->queued = true;
        TAILQ_INSERT_TAIL(&io->lanes[t->lane], t, link);
    }
}

void
ioloop_flush_cancel(struct ioloop *io, struct ioloop_task *t)
{
    if (t->queued) {
        TAILQ_REMOVE(&io->lanes[t->lane], t, link);
        t->queued = false;
    }
}

uint64_t
ioloop_uptime(const struct ioloop *io)
{
    return (uv_now((uv_loop_t *)&io->loop) - io->started) / 1000;
}
