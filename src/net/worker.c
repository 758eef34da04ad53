/*
 * worker: one libuv loop and everything that runs on it.
 */
#include "memring/worker.h"

#include "memring/client.h"
#include "memring/conf.h"
#include "memring/log.h"
#include "memring/pool.h"
#include "memring/probe.h"
#include "memring/sanitized.h"
#include "memring/stats.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
walk_close_cb(uv_handle_t *handle, void *arg)
{
    (void)arg;
    if (!uv_is_closing(handle)) {
        uv_close(handle, NULL);
    }
}

/* The last client of a draining w closed. */
static void
worker_clients_gone(void *arg)
{
    struct worker *w = arg;

    w->io.clients_gone = NULL;
    if (w->drained != NULL) {
        w->drained(w->drained_arg);
    }
}

/* Stops accepting; every client finishes what it sent, then closes. */
static void
worker_start_drain(struct worker *w)
{
    uint32_t i;

    w->draining = true;
    for (i = 0; i < w->npools; i++) {
        pool_unlisten(w->pools[i]);
    }
    w->io.clients_gone = worker_clients_gone;
    w->io.clients_gone_arg = w;
    client_drain_pool(&w->io, NULL);
    if (TAILQ_EMPTY(&w->io.clients) && w->io.clients_gone != NULL) {
        worker_clients_gone(w);
    }
}

static void
worker_stop_cb(uv_async_t *handle)
{
    struct worker *w = handle->data;
    uint32_t i;

    if (w->stopping) {
        return;
    }
    if (!atomic_load(&w->stop_now)) {
        if (!w->draining) {
            worker_start_drain(w);
        }
        return;
    }
    w->stopping = true;
    w->io.clients_gone = NULL;
    client_close_all(&w->io);
    for (i = 0; i < w->npools; i++) {
        pool_close(w->pools[i]);
    }
    for (i = 0; i < w->nremoved; i++) {
        pool_close(w->removed[i]);
    }
    probe_destroy(&w->probe);
    ioloop_close(&w->io);
    uv_close((uv_handle_t *)&w->stopper, NULL);
    uv_close((uv_handle_t *)&w->tick, NULL);
    uv_close((uv_handle_t *)&w->reconf, NULL);
}

static void
worker_tick_cb(uv_timer_t *timer)
{
    struct worker *w = timer->data;
    uint32_t i;

    /* a warm-up window closes on time even without requests */
    for (i = 0; i < w->npools; i++) {
        pool_warming(w->pools[i]);
    }
    if (w->io.limits.idle_timeout_ms > 0) {
        client_close_idle(&w->io, w->io.limits.idle_timeout_ms);
    }
    /* Large replies live in the heap (see proxy.c's tune_malloc()), which
     * glibc gives back only when 64 MiB lie free at its top: after a burst
     * (slow readers gone, a big multi-get answered) hand the free pages
     * back, at most once a second and only when there was such a burst. */
    if (w->io.freed >= WORKER_TRIM_AFTER) {
        w->io.freed = 0;
        /* Not under a sanitizer: its malloc is not glibc's, whose heap was
         * then never set up, and glibc's trim reads its NULL top chunk
         * (an ASan build died so after a burst of frees). */
        if (!MEMRING_SANITIZED) {
            malloc_trim(0);
        }
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

/* What a pool of w's needs of it. */
static void
worker_pool_env(struct worker *w, struct pool_env *env)
{
    env->io = &w->io;
    env->worker_id = w->id;
    env->shared_port = w->shared_port;
    env->accept_cb = client_accept_cb;
}

int
worker_init(struct worker *w, uint32_t id, const struct conf *conf,
            const struct limits *limits)
{
    struct pool_env env;
    uint32_t i;
    int err;

    memset(w, 0, sizeof(*w));
    atomic_init(&w->stop_now, false);
    w->id = id;
    w->conf = conf;
    err = uv_mutex_init(&w->pools_lock);
    if (err != 0) {
        return err;
    }
    err = ioloop_init(&w->io, limits);
    if (err != 0) {
        return err;
    }
    w->pools = calloc(conf->npools, sizeof(*w->pools));
    if (w->pools == NULL) {
        return UV_ENOMEM;
    }
    worker_pool_env(w, &env);
    for (i = 0; i < conf->npools; i++) {
        w->pools[i] = pool_create(&env, &conf->pools[i]);
        if (w->pools[i] == NULL) {
            return UV_EINVAL;
        }
        w->npools = i + 1;
    }
    uv_async_init(&w->io.loop, &w->stopper, worker_stop_cb);
    w->stopper.data = w;
    uv_async_init(&w->io.loop, &w->reconf, worker_reconf_cb);
    w->reconf.data = w;
    uv_sem_init(&w->reconf_done, 0);
    uv_timer_init(&w->io.loop, &w->tick);
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
        /* shared_port is known only once every worker exists */
        worker_pool_env(w, &w->pools[i]->env);
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
    return uv_run(&w->io.loop, UV_RUN_DEFAULT);
}

void
worker_stop(struct worker *w)
{
    atomic_store(&w->stop_now, true);
    uv_async_send(&w->stopper);
}

void
worker_drain(struct worker *w)
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
    uv_walk(&w->io.loop, walk_close_cb, NULL);
    uv_run(&w->io.loop, UV_RUN_DEFAULT);
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
    client_scratch_destroy(&w->io);
    uv_sem_destroy(&w->reconf_done);
    uv_mutex_destroy(&w->pools_lock);
    ioloop_deinit(&w->io);
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
    if (removed != NULL) {
        w->removed = removed;   /* the old block is freed once it moved */
    }
    if (plans == NULL || pools == NULL || fresh == NULL || removed == NULL) {
        goto error;
    }

    /* Everything that can fail, first: resolve, bind new listeners. */
    for (i = 0; i < conf->npools; i++) {
        const struct conf_pool *ncp = &conf->pools[i];
        struct pool *p = find_pool(w, ncp->name);
        if (p != NULL) {
            err = pool_prepare(p, ncp, &plans[i]);
            pools[i] = p;
        } else {
            struct pool_env env;
            worker_pool_env(w, &env);
            fresh[i] = pool_create(&env, ncp);
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
            pool_remove(p);
            client_drain_pool(&w->io, p);
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

/* The probe's turn: every server of w's pools. */
static void
worker_probe_servers(void *arg, struct probe *probe)
{
    struct worker *w = arg;
    uint32_t i, j;

    for (i = 0; i < w->npools; i++) {
        for (j = 0; j < w->pools[i]->nservers; j++) {
            probe_server(probe, w->pools[i]->servers[j]);
        }
    }
}

int
worker_start_probe(struct worker *w, uint64_t interval_ms)
{
    w->probe = probe_create(&w->io.loop, interval_ms, worker_probe_servers,
                            w);
    return w->probe == NULL ? UV_ENOMEM : 0;
}
