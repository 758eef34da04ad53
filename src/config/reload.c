/*
 * reload: config reload (see reload.h).
 *
 * Old configs are kept until exit rather than reference counted: pools that
 * were removed, and server connections that drain, may still point into
 * them, and a config is a few kilobytes.
 */
#include "memring/reload.h"

#include "memring/conf.h"
#include "memring/log.h"
#include "memring/worker.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RELOAD_DEBOUNCE_MS 100  /* an editor's save is several events */

struct reload {
    uv_loop_t           *loop;
    char                *path;
    char                *dir;        /* watched: the file's directory */
    struct conf         **confs;     /* every config loaded; last = active */
    uint32_t            nconfs;
    struct worker       **workers;
    uint32_t            nworkers;
    char                *text;       /* the active file's bytes */
    size_t              text_len;
    uv_fs_event_t       watch;
    uv_timer_t          debounce;
    bool                watching;
    void                (*on_apply)(void *arg);
    void                *on_apply_arg;
    struct reload_stats stats;
};

/* The whole file, NUL-terminated; NULL with errno set on failure. */
static char *
read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    size_t cap = 0, n = 0;

    if (f == NULL) {
        return NULL;
    }
    for (;;) {
        size_t got;
        if (cap - n < 4096) {
            char *p = realloc(data, cap + 65536);
            if (p == NULL) {
                free(data);
                fclose(f);
                errno = ENOMEM;
                return NULL;
            }
            data = p;
            cap += 65536;
        }
        got = fread(data + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) {
            break;
        }
    }
    fclose(f);
    data[n] = '\0';
    *len = n;
    return data;
}

struct reload *
reload_create(uv_loop_t *loop, const char *path, struct conf *conf,
              struct worker **workers, uint32_t nworkers)
{
    struct reload *r = calloc(1, sizeof(*r));
    char *copy;

    if (r == NULL) {
        return NULL;
    }
    r->loop = loop;
    r->path = strdup(path);
    copy = strdup(path);
    r->confs = malloc(sizeof(*r->confs));
    if (r->path == NULL || copy == NULL || r->confs == NULL) {
        free(copy);
        free(r->path);
        free(r->confs);
        free(r);
        return NULL;
    }
    r->dir = strdup(dirname(copy));
    free(copy);
    r->confs[0] = conf;
    r->nconfs = 1;
    r->workers = workers;
    r->nworkers = nworkers;
    r->text = read_file(path, &r->text_len);
    r->stats.loaded_at = (uint64_t)time(NULL);
    return r;
}

void
reload_destroy(struct reload **rp)
{
    struct reload *r = *rp;
    uint32_t i;

    if (r == NULL) {
        return;
    }
    *rp = NULL;
    for (i = 0; i < r->nconfs; i++) {
        conf_destroy(&r->confs[i]);
    }
    free(r->confs);
    free(r->text);
    free(r->path);
    free(r->dir);
    free(r);
}

void
reload_on_apply(struct reload *r, void (*fn)(void *arg), void *arg)
{
    r->on_apply = fn;
    r->on_apply_arg = arg;
}

const struct conf *
reload_conf(const struct reload *r)
{
    return r->confs[r->nconfs - 1];
}

const struct reload_stats *
reload_stats(const struct reload *r)
{
    return &r->stats;
}

int
reload_now(struct reload *r, char *msg, size_t len)
{
    char err[CONF_ERR_LEN];
    struct conf *conf, **confs;
    size_t text_len = 0;
    char *text;
    uint32_t i;
    int rc;

    /* Parse the very bytes that are remembered as applied, so that a save
     * landing in between is seen as a change by the watch. */
    text = read_file(r->path, &text_len);
    if (text == NULL) {
        snprintf(err, sizeof(err), "conf: %s: cannot open: %s", r->path,
                 strerror(errno));
        conf = NULL;
    } else {
        conf = conf_parse(text, text_len, r->path, err, sizeof(err));
    }
    if (conf == NULL) {
        free(text);
        r->stats.failed++;
        snprintf(msg, len, "%s", err);
        log_error("reload refused, old config keeps serving: %s", err);
        return UV_EINVAL;
    }
    confs = realloc(r->confs, (r->nconfs + 1) * sizeof(*confs));
    if (confs == NULL) {
        conf_destroy(&conf);
        free(text);
        r->stats.failed++;
        snprintf(msg, len, "reload: out of memory");
        return UV_ENOMEM;
    }
    r->confs = confs;
    /* The worker on this loop first: what can fail (a port in use, a name
     * that does not resolve) fails there, before any other worker moved.
     * Each other worker switches on its own thread while this one waits. */
    for (i = 0; i < r->nworkers; i++) {
        struct worker *w = r->workers[i];
        rc = &w->io.loop == r->loop ? worker_reconfigure(w, conf, msg, len) :
             worker_reconfigure_remote(w, conf, msg, len);
        if (rc != 0 && i > 0) {
            /* Worker 0 runs the new config already: keep it alive. */
            log_error("reload: worker %u could not follow worker 0: %s; "
                      "workers now differ until the next reload", w->id, msg);
            r->stats.failed++;
            continue;
        }
        if (rc != 0) {
            conf_destroy(&conf);
            free(text);
            r->stats.failed++;
            log_error("reload refused, old config keeps serving: %s", msg);
            return rc;
        }
    }
    r->confs[r->nconfs++] = conf;
    r->stats.reloads++;
    r->stats.loaded_at = (uint64_t)time(NULL);
    free(r->text);
    r->text = text;
    r->text_len = text_len;
    log_notice("reload %" PRIu64 " of %s applied: %s", r->stats.reloads,
               r->path, msg);
    if (r->on_apply != NULL) {
        r->on_apply(r->on_apply_arg);
    }
    return 0;
}

static void
reload_debounce_cb(uv_timer_t *timer)
{
    struct reload *r = timer->data;
    char msg[2048];
    size_t len = 0;
    char *text;

    text = read_file(r->path, &len);
    if (text != NULL && r->text != NULL && len == r->text_len &&
        memcmp(text, r->text, len) == 0) {
        free(text);             /* touched, not changed */
        return;
    }
    free(text);
    log_notice("config %s changed on disk: reloading", r->path);
    reload_now(r, msg, sizeof(msg));
}

static void
reload_watch_cb(uv_fs_event_t *handle, const char *filename, int events,
                int status)
{
    struct reload *r = handle->data;

    (void)filename;
    (void)events;
    if (status != 0) {
        log_warn("config watch %s: %s", r->dir, uv_strerror(status));
        return;
    }
    uv_timer_start(&r->debounce, reload_debounce_cb, RELOAD_DEBOUNCE_MS, 0);
}

int
reload_watch(struct reload *r)
{
    int err;

    /* The directory, not the file: a rename-on-save or a ConfigMap's
     * ..data symlink swap replaces the file, and a watch on the old inode
     * would never fire again. */
    uv_fs_event_init(r->loop, &r->watch);
    uv_timer_init(r->loop, &r->debounce);
    r->watch.data = r;
    r->debounce.data = r;
    r->watching = true;
    err = uv_fs_event_start(&r->watch, reload_watch_cb, r->dir, 0);
    if (err != 0) {
        log_error("config watch %s: %s", r->dir, uv_strerror(err));
        return err;
    }
    log_notice("watching %s for changes to %s", r->dir, r->path);
    return 0;
}

void
reload_stop(struct reload *r)
{
    if (r != NULL && r->watching) {
        r->watching = false;
        uv_close((uv_handle_t *)&r->watch, NULL);
        uv_close((uv_handle_t *)&r->debounce, NULL);
    }
}
