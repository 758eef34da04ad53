/*
 * worker: one libuv loop and everything that runs on it.
 */
#include "memring/worker.h"

#include "memring/client.h"
#include "memring/conf.h"
#include "memring/log.h"
#include "memring/pool.h"
#include "memring/probe.h"
#include "memring/req.h"
#include "memring/server.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

/* Before the loop blocks for I/O: write what this turn produced, once per
 * connection, so that pipelined requests and replies travel in batches. */
static void
worker_flush_cb(uv_prepare_t *handle)
{
    struct worker *w = handle->data;
    struct sconn *sc;
    struct client *c;

    /* Servers first: their writes carry requests clients just sent. A
     * client's flush can send more (a paused client resumes and parses
     * what it had buffered), so go round until nothing is left: the loop
     * is about to block. */
    do {
        while ((sc = TAILQ_FIRST(&w->dirty_sconns)) != NULL) {
            TAILQ_REMOVE(&w->dirty_sconns, sc, dirty_link);
            sc->dirty = false;
            sconn_flush(sc);
        }
        while ((c = TAILQ_FIRST(&w->dirty_clients)) != NULL) {
            TAILQ_REMOVE(&w->dirty_clients, c, dirty_link);
            c->dirty = false;
            client_flush(c);
        }
    } while (!TAILQ_EMPTY(&w->dirty_sconns));
}

static void
walk_close_cb(uv_handle_t *handle, void *arg)
{
    (void)arg;
    if (!uv_is_closing(handle)) {
        uv_close(handle, NULL);
    }
}

static void
worker_stop_cb(uv_async_t *handle)
{
    struct worker *w = handle->data;
    struct client *c;
    uint32_t i;

    if (w->stopping) {
        return;
    }
    w->stopping = true;
    while ((c = TAILQ_FIRST(&w->clients)) != NULL) {
        client_close(c);
    }
    for (i = 0; i < w->npools; i++) {
        pool_close(w->pools[i]);
    }
    for (i = 0; i < w->nremoved; i++) {
        pool_close(w->removed[i]);
    }
    probe_destroy(&w->probe);
    uv_close((uv_handle_t *)&w->flusher, NULL);
    uv_close((uv_handle_t *)&w->stopper, NULL);
    uv_close((uv_handle_t *)&w->tick, NULL);
    uv_close((uv_handle_t *)&w->reconf, NULL);
}

/* Close clients idle past the limit. A sweep once a second costs
 * O(clients) per second instead of a timer per client. */
static void
close_idle_clients(struct worker *w)
{
    uint64_t now = uv_now(&w->loop);
    struct client *c, *next;

    for (c = TAILQ_FIRST(&w->clients); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        if (TAILQ_EMPTY(&c->outq) && c->nwrites == 0 &&
            now - c->last_active >= w->limits.idle_timeout_ms) {
            c->pool->stats.client_idle_closed++;
            client_close(c);
        }
    }
}

static void
worker_tick_cb(uv_timer_t *timer)
{
    struct worker *w = timer->data;

    if (w->limits.idle_timeout_ms > 0) {
        close_idle_clients(w);
    }
    /* Large replies live in the heap (see proxy.c's tune_malloc()), which
     * glibc gives back only when 64 MiB lie free at its top: after a burst
     * (slow readers gone, a big multi-get answered) hand the free pages
     * back, at most once a second and only when there was such a burst. */
    if (w->freed >= WORKER_TRIM_AFTER) {
        w->freed = 0;
        malloc_trim(0);
    }
}

/* On w's thread: apply the config another thread handed over. */
static void
worker_reconf_cb(uv_async_t *handle)
{
    struct worker *w = handle->data;

    if (w->reconf_conf == NULL) {
        return;
    }
    w->reconf_rc = worker_reconfigure(w, w->reconf_conf, w->reconf_msg,
                                      sizeof(w->reconf_msg));
    w->reconf_conf = NULL;
    uv_sem_post(&w->reconf_done);
}

int
worker_reconfigure_remote(struct worker *w, const struct conf *conf,
                          char *msg, size_t len)
{
    w->reconf_conf = conf;
    uv_async_send(&w->reconf);
    uv_sem_wait(&w->reconf_done);
    snprintf(msg, len, "%s", w->reconf_msg);
    return w->reconf_rc;
}

void
worker_limits_default(struct worker_limits *l)
{
    l->item_size_max = WORKER_DEFAULT_ITEM_SIZE_MAX;
    l->output_max = WORKER_DEFAULT_OUTPUT_MAX;
    l->max_clients = WORKER_DEFAULT_MAX_CLIENTS;
    l->pending_values_max = WORKER_DEFAULT_PENDING_VALUES_MAX;
    l->pending_output_max = WORKER_DEFAULT_PENDING_OUTPUT_MAX;
    l->idle_timeout_ms = 0;
    l->requests_max = WORKER_DEFAULT_REQUESTS_MAX;
    l->get_keys_max = WORKER_DEFAULT_GET_KEYS_MAX;
}

int
worker_init(struct worker *w, uint32_t id, const struct conf *conf,
            const struct worker_limits *limits)
{
    uint32_t i;
    int err;

    memset(w, 0, sizeof(*w));
    w->id = id;
    w->conf = conf;
    w->limits = *limits;
    err = uv_mutex_init(&w->pools_lock);
    if (err != 0) {
        return err;
    }
    TAILQ_INIT(&w->clients);
    TAILQ_INIT(&w->dirty_clients);
    TAILQ_INIT(&w->dirty_sconns);
    err = uv_loop_init(&w->loop);
    if (err != 0) {
        return err;
    }
    w->started = uv_now(&w->loop);
    w->keys_cap = limits->get_keys_max;
    w->keys = malloc(w->keys_cap * sizeof(*w->keys));
    w->route = malloc(w->keys_cap * sizeof(*w->route));
    w->pools = calloc(conf->npools, sizeof(*w->pools));
    if (w->keys == NULL || w->route == NULL || w->pools == NULL) {
        return UV_ENOMEM;
    }
    for (i = 0; i < conf->npools; i++) {
        w->pools[i] = pool_create(w, &conf->pools[i]);
        if (w->pools[i] == NULL) {
            return UV_EINVAL;
        }
        w->npools = i + 1;
    }
    uv_prepare_init(&w->loop, &w->flusher);
    w->flusher.data = w;
    uv_prepare_start(&w->flusher, worker_flush_cb);
    uv_async_init(&w->loop, &w->stopper, worker_stop_cb);
    w->stopper.data = w;
    uv_async_init(&w->loop, &w->reconf, worker_reconf_cb);
    w->reconf.data = w;
    uv_sem_init(&w->reconf_done, 0);
    uv_timer_init(&w->loop, &w->tick);
    w->tick.data = w;
    uv_timer_start(&w->tick, worker_tick_cb, 1000, 1000);
    return 0;
}

int
worker_listen(struct worker *w)
{
    uint32_t i;
    int err;

    for (i = 0; i < w->npools; i++) {
        err = pool_listen(w->pools[i]);
        if (err != 0) {
            return err;
        }
    }
    return 0;
}

int
worker_run(struct worker *w)
{
    return uv_run(&w->loop, UV_RUN_DEFAULT);
}

void
worker_stop(struct worker *w)
{
    uv_async_send(&w->stopper);
}

void
worker_deinit(struct worker *w)
{
    uint32_t i;

    /* Close whatever is left (listeners of a failed start, say) and let
     * the close callbacks run, so that the loop closes cleanly. */
    probe_destroy(&w->probe);
    uv_walk(&w->loop, walk_close_cb, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    for (i = 0; i < w->npools; i++) {
        pool_destroy(&w->pools[i]);
    }
    for (i = 0; i < w->nremoved; i++) {
        pool_destroy(&w->removed[i]);
    }
    free(w->pools);
    free(w->removed);
    w->pools = NULL;
    w->removed = NULL;
    free(w->keys);
    free(w->route);
    free(w->per_server);
    w->keys = NULL;
    w->route = NULL;
    w->per_server = NULL;
    buf_free(&w->scratch);
    req_pool_drain(w);
    free(w->wreqs);
    free(w->wbufs);
    uv_sem_destroy(&w->reconf_done);
    uv_mutex_destroy(&w->pools_lock);
    uv_loop_close(&w->loop);
}

static struct pool *
find_pool(struct worker *w, const char *name)
{
    uint32_t i;

    for (i = 0; i < w->npools; i++) {
        if (strcmp(w->pools[i]->cp->name, name) == 0) {
            return w->pools[i];
        }
    }
    return NULL;
}

static void
append_msg(char *msg, size_t len, const char *line)
{
    size_t used = strlen(msg);

    if (used < len) {
        snprintf(msg + used, len - used, "%s%s", used > 0 ? "\n" : "", line);
    }
}

int
worker_reconfigure(struct worker *w, const struct conf *conf, char *msg,
                   size_t len)
{
    struct pool_plan **plans = NULL;
    struct pool **pools = NULL, **fresh = NULL, **removed;
    uint32_t i, j, nremoved = 0;
    char line[256];
    int err = UV_ENOMEM;

    msg[0] = '\0';
    plans = calloc(conf->npools, sizeof(*plans));
    pools = calloc(conf->npools, sizeof(*pools));
    fresh = calloc(conf->npools, sizeof(*fresh));
    /* Room for every old pool (removed) or every new one (a failed
     * reload parks the pools it created here until exit). */
    removed = realloc(w->removed, (w->nremoved + w->npools + conf->npools) *
                                  sizeof(*removed));
    if (plans == NULL || pools == NULL || fresh == NULL || removed == NULL) {
        goto error;
    }
    w->removed = removed;

    /* Everything that can fail, first: resolve, bind new listeners. */
    for (i = 0; i < conf->npools; i++) {
        const struct conf_pool *ncp = &conf->pools[i];
        struct pool *p = find_pool(w, ncp->name);
        if (p != NULL) {
            err = pool_prepare(p, ncp, &plans[i]);
            pools[i] = p;
        } else {
            fresh[i] = pool_create(w, ncp);
            err = fresh[i] == NULL ? UV_EINVAL : pool_listen(fresh[i]);
            pools[i] = fresh[i];
        }
        if (err != 0) {
            snprintf(line, sizeof(line), "pool %s: cannot apply (%s); "
                     "nothing changed", ncp->name, uv_strerror(err));
            append_msg(msg, len, line);
            goto error;
        }
    }

    /* Then the switch, which cannot fail. */
    for (i = 0; i < w->npools; i++) {
        struct pool *p = w->pools[i];
        bool kept = false;
        for (j = 0; j < conf->npools && !kept; j++) {
            kept = pools[j] == p;
        }
        if (!kept) {
            struct client *c, *next;
            pool_remove(p);
            for (c = TAILQ_FIRST(&w->clients); c != NULL; c = next) {
                next = TAILQ_NEXT(c, link);
                if (c->pool == p) {
                    client_drain(c);
                }
            }
            w->removed[w->nremoved++] = p;
            snprintf(line, sizeof(line), "pool %s: removed", p->cp->name);
            append_msg(msg, len, line);
            nremoved++;
        }
    }
    for (i = 0; i < conf->npools; i++) {
        if (plans[i] != NULL) {
            pool_commit(pools[i], &plans[i], line, sizeof(line));
        } else {
            snprintf(line, sizeof(line), "pool %s: added, listening on %s",
                     conf->pools[i].name, conf->pools[i].listen.text);
        }
        append_msg(msg, len, line);
    }
    uv_mutex_lock(&w->pools_lock);
    free(w->pools);
    w->pools = pools;
    w->npools = conf->npools;
    uv_mutex_unlock(&w->pools_lock);
    w->conf = conf;
    free(plans);
    free(fresh);
    (void)nremoved;
    return 0;

error:
    for (i = 0; plans != NULL && i < conf->npools; i++) {
        pool_abort(&plans[i]);
        if (fresh != NULL && fresh[i] != NULL) {
            pool_close(fresh[i]);
            w->removed[w->nremoved++] = fresh[i];   /* freed at exit */
        }
    }
    free(plans);
    free(pools);
    free(fresh);
    return err;
}

void
worker_mark_client(struct worker *w, struct client *c)
{
    if (!c->dirty && !c->closing) {
        c->dirty = true;
        TAILQ_INSERT_TAIL(&w->dirty_clients, c, dirty_link);
    }
}

void
worker_mark_sconn(struct worker *w, struct sconn *sc)
{
    if (!sc->dirty && sc->state != SCONN_CLOSING) {
        sc->dirty = true;
        TAILQ_INSERT_TAIL(&w->dirty_sconns, sc, dirty_link);
    }
}

int
worker_wscratch(struct worker *w, uint32_t n)
{
    uint32_t cap = 64;

    if (n <= w->wreqs_cap && n <= w->wbufs_cap) {
        return 0;
    }
    while (cap < n) {           /* doubling: few growths as batches grow */
        cap *= 2;
    }
    if (array_reserve(&w->wreqs, &w->wreqs_cap, cap,
                      sizeof(*w->wreqs)) != 0) {
        return UV_ENOMEM;
    }
    return array_reserve(&w->wbufs, &w->wbufs_cap, cap, sizeof(*w->wbufs));
}

int
worker_per_server(struct worker *w, uint32_t n)
{
    int err = array_reserve(&w->per_server, &w->per_server_cap, n,
                            sizeof(*w->per_server));

    if (err == 0) {
        memset(w->per_server, 0, n * sizeof(*w->per_server));
    }
    return err;
}

const struct pool *
worker_find_pool(const struct worker *w, const char *name)
{
    uint32_t i;

    for (i = 0; i < w->npools; i++) {
        if (strcmp(w->pools[i]->cp->name, name) == 0) {
            return w->pools[i];
        }
    }
    return NULL;
}

uint64_t
worker_uptime(const struct worker *w)
{
    return (uv_now((uv_loop_t *)&w->loop) - w->started) / 1000;
}
