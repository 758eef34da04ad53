/*
 * probe: connects to idle servers so that /healthz knows they are down
 * (see probe.h).
 */
#include "memring/probe.h"

#include "memring/conf.h"
#include "memring/health.h"
#include "memring/log.h"
#include "memring/net.h"
#include "memring/server.h"

#include <stdbool.h>
#include <stdlib.h>
#include <sys/queue.h>
#include <uv.h>

#define PROBE_FIRST_MS 100  /* the first look, soon after start */

/* One connect in flight. It holds its own reference to the server's
 * health, never the server, which a reload may free meanwhile. */
struct probe_conn {
    union net_stream        h;
    uv_connect_t            connect;
    uv_timer_t              timer;      /* gives up after the interval */
    struct health           *health;
    struct probe            *owner;     /* NULL once the probe is gone */
    uint32_t                nclosing;   /* handles not yet closed */
    LIST_ENTRY(probe_conn)  link;
};

struct probe {
    uv_loop_t                 *loop;
    probe_servers_fn          *each;      /* the servers to look at */
    void                      *arg;
    uv_timer_t                timer;
    uint64_t                  interval;
    LIST_HEAD(, probe_conn)   inflight;
};

static void
conn_close_cb(uv_handle_t *handle)
{
    struct probe_conn *pc = handle->data;

    if (--pc->nclosing == 0) {
        health_release(&pc->health);
        free(pc);
    }
}

/* Records the outcome (unless the probe is being torn down) and closes. */
static void
conn_done(struct probe_conn *pc, int status)
{
    if (pc->owner != NULL) {
        health_seen(pc->health, status);
        LIST_REMOVE(pc, link);
        pc->owner = NULL;
    }
    if (pc->nclosing == 0) {
        pc->nclosing = 2;
        uv_close(&pc->h.handle, conn_close_cb);
        uv_close((uv_handle_t *)&pc->timer, conn_close_cb);
    }
}

static void
conn_connect_cb(uv_connect_t *req, int status)
{
    conn_done(req->data, status);
}

static void
conn_timer_cb(uv_timer_t *timer)
{
    conn_done(timer->data, UV_ETIMEDOUT);
}

static bool
probing(const struct probe *p, const struct health *h)
{
    const struct probe_conn *pc;

    LIST_FOREACH(pc, &p->inflight, link) {
        if (pc->health == h) {
            return true;
        }
    }
    return false;
}

static void
probe_start(struct probe *p, struct server *s)
{
    uv_loop_t *loop = p->loop;
    struct probe_conn *pc = calloc(1, sizeof(*pc));

    if (pc == NULL) {
        return;
    }
    pc->health = health_acquire(s->ctx->cp->name, s->cs);
    if (pc->health == NULL) {
        free(pc);
        return;
    }
    pc->owner = p;
    pc->h.handle.data = pc;
    pc->connect.data = pc;
    pc->timer.data = pc;
    uv_timer_init(loop, &pc->timer);
    LIST_INSERT_HEAD(&p->inflight, pc, link);
    if (s->cs->is_unix) {
        uv_pipe_init(loop, &pc->h.pipe, 0);
        uv_pipe_connect(&pc->connect, &pc->h.pipe, s->cs->host,
                        conn_connect_cb);
    } else {
        int err;

        uv_tcp_init(loop, &pc->h.tcp);
        err = uv_tcp_connect(&pc->connect, &pc->h.tcp,
                             (const struct sockaddr *)&s->addr,
                             conn_connect_cb);
        if (err != 0) {
            conn_done(pc, err);
            return;
        }
    }
    uv_timer_start(&pc->timer, conn_timer_cb, p->interval, 0);
}

/* A server that answered nothing since the last look gets a connect; one
 * that did is alive, which is all a probe could learn. */
void
probe_server(struct probe *p, struct server *s)
{
    if (s->stats.responses != s->probe_responses) {
        s->probe_responses = s->stats.responses;
        health_seen(s->health, 0);
    } else if (!probing(p, s->health)) {
        probe_start(p, s);
    }
}

static void
probe_timer_cb(uv_timer_t *timer)
{
    struct probe *p = timer->data;

    p->each(p->arg, p);
}

struct probe *
probe_create(uv_loop_t *loop, uint64_t interval_ms, probe_servers_fn *each,
             void *arg)
{
    struct probe *p = calloc(1, sizeof(*p));

    if (p == NULL) {
        return NULL;
    }
    p->loop = loop;
    p->each = each;
    p->arg = arg;
    p->interval = interval_ms;
    LIST_INIT(&p->inflight);
    uv_timer_init(loop, &p->timer);
    p->timer.data = p;
    uv_timer_start(&p->timer, probe_timer_cb,
                   interval_ms < PROBE_FIRST_MS ? interval_ms : PROBE_FIRST_MS,
                   interval_ms);
    return p;
}

static void
probe_close_cb(uv_handle_t *handle)
{
    free(handle->data);
}

void
probe_destroy(struct probe **pp)
{
    struct probe *p = *pp;
    struct probe_conn *pc;

    if (p == NULL) {
        return;
    }
    *pp = NULL;
    while ((pc = LIST_FIRST(&p->inflight)) != NULL) {
        LIST_REMOVE(pc, link);
        pc->owner = NULL;
        conn_done(pc, 0);
    }
    uv_close((uv_handle_t *)&p->timer, probe_close_cb);
}
