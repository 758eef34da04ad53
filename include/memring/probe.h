/*
 * probe: tells /healthz the truth about servers that see no traffic.
 * Servers are connected lazily, so a dead server whose pool gets no
 * requests would look fine for ever; every interval, worker 0 connects to
 * each server that answered nothing since the last look (and is not being
 * probed already), and records the outcome in its shared health (health.h)
 * as real connects do. Probes never eject a server: they inform, only.
 */
#ifndef MEMRING_PROBE_H
#define MEMRING_PROBE_H

#include <stdint.h>
#include <uv.h>

struct probe;
struct server;

#define PROBE_DEFAULT_INTERVAL_MS 1000

/* Every interval, the probe's owner names the servers to look at: it calls
 * probe_server() for each. */
typedef void probe_servers_fn(void *arg, struct probe *p);

/* Starts probing every interval_ms on loop (before or on its thread): each
 * turn calls each(arg, p). NULL when out of memory. */
struct probe *probe_create(uv_loop_t *loop, uint64_t interval_ms,
                           probe_servers_fn *each, void *arg);

/* Looks at s: records it alive if it answered since the last look, or
 * starts a connect to it (unless one is in flight). */
void probe_server(struct probe *p, struct server *s);

/* Stops the timer and every probe in flight; memory goes in their close
 * callbacks. On the loop's thread. *p = NULL; NULL is a no-op. */
void probe_destroy(struct probe **p);

#endif /* MEMRING_PROBE_H */
