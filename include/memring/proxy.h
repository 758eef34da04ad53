/*
 * proxy: the process around the workers: config, daemon, pid file, signals.
 */
#ifndef MEMRING_PROXY_H
#define MEMRING_PROXY_H

#include "memring/worker.h"

#include <stdbool.h>
#include <stdint.h>

#define PROXY_DEFAULT_CONF       "conf/memring.yml"
#define PROXY_DEFAULT_STATS_PORT 22222
#define PROXY_DEFAULT_STATS_ADDR "127.0.0.1"
#define PROXY_MAX_DEFAULT_WORKERS 64
#define PROXY_DEFAULT_SHUTDOWN_TIMEOUT_MS 30000

struct proxy_options {
    const char *conf_path;
    const char *pid_file;      /* NULL: none */
    const char *log_file;      /* NULL: stderr */
    const char *stats_addr;    /* admin address (name or numeric) */
    const char *admin_token;   /* bearer token for /config and the POSTs;
                                * NULL: none wanted */
    int        log_level;
    uint16_t   stats_port;     /* admin port; 0: no admin endpoint */
    bool       daemonize;
    bool       watch_config;   /* reload when the config file changes */
    uint32_t   threads;        /* workers, each a thread and a loop;
                                * 0: one per CPU we may run on */
    uint64_t   probe_interval_ms; /* probe idle servers for /healthz
                                   * this often; 0: never */
    uint64_t   shutdown_timeout_ms; /* SIGTERM/SIGINT: the longest drain,
                                     * then what is left is closed */
    struct limits limits;
};

/* Loads the config, starts serving, returns when stopped by a signal:
 * SIGTERM or SIGINT drains (no new clients; each client is closed once
 * the requests it sent are answered) for at most shutdown_timeout_ms, a
 * second one stops at once. SIGHUP reopens the log and reloads, SIGUSR1
 * reopens the log.
 * Returns the process exit status (0, or 1 when it could not start). */
int proxy_run(const struct proxy_options *o);

#endif /* MEMRING_PROXY_H */
