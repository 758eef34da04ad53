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

struct probe;
struct worker;

#define PROBE_DEFAULT_INTERVAL_MS 1000

/* Starts probing w's servers every interval_ms on w's loop (before or on
 * w's thread). NULL when out of memory. */
struct probe *probe_create(struct worker *w, uint64_t interval_ms);

/* Stops the timer and every probe in flight; memory goes in their close
 * callbacks. On w's thread. *p = NULL; NULL is a no-op. */
void probe_destroy(struct probe **p);

#endif /* MEMRING_PROBE_H */
