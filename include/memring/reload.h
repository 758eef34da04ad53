/*
 * reload: reads a new config off the request path, validates it whole,
 * and hands it to every worker to switch to at a loop turn. A bad file
 * changes nothing. Triggers: SIGHUP, POST /reload, and optionally a watch
 * on the config file's directory (editors that save by rename, Kubernetes
 * ConfigMap mounts that swap a symlinked ..data directory).
 */
#ifndef MEMRING_RELOAD_H
#define MEMRING_RELOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct conf;
struct worker;

struct reload_stats {
    uint64_t reloads;        /* applied */
    uint64_t failed;         /* refused: bad file, or could not apply */
    uint64_t loaded_at;      /* unix seconds of the active config */
};

struct reload;

/* Owns conf (the active config) from here on. NULL on OOM. */
struct reload *reload_create(uv_loop_t *loop, const char *path,
                             struct conf *conf, struct worker **workers,
                             uint32_t nworkers);

/* Frees every config it kept, the active one included. After the loop. */
void reload_destroy(struct reload **r);

/* Re-reads the file and applies it. 0 with a summary of what changed in
 * msg, or an error with the reason ("conf: FILE:LINE:COL: ...") in msg. */
int reload_now(struct reload *r, char *msg, size_t len);

/* Watches the config file for changes and reloads when it changes. */
int reload_watch(struct reload *r);

/* Stops the watch (before the loop ends). */
void reload_stop(struct reload *r);

/* fn(arg) runs after every reload that was applied, whatever its trigger. */
void reload_on_apply(struct reload *r, void (*fn)(void *arg), void *arg);

const struct conf *reload_conf(const struct reload *r);
const struct reload_stats *reload_stats(const struct reload *r);

#endif /* MEMRING_RELOAD_H */
