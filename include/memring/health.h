/*
 * health: the ejection state of one backend server, shared by every worker
 * that routes to it. With --threads N each worker has its own pool, ring and
 * connections, but a server is ejected, readmitted and counted once for the
 * whole process, exactly as in one twemproxy process: the Nth failure in a
 * row seen by any worker takes it off every worker's ring.
 *
 * The rules are eject.c's; this module adds the sharing: a registry keyed by
 * pool name and server identity (ring name + address), a mutex per server
 * for the transitions, and one process-wide generation number that changes
 * whenever a server leaves or rejoins a ring, so that a worker notices with
 * one atomic load per request and rebuilds its ring.
 */
#ifndef MEMRING_HEALTH_H
#define MEMRING_HEALTH_H

#include "memring/eject.h"

#include <stdbool.h>
#include <stdint.h>

struct conf_server;
struct health;

/* The shared state of server cs in pool `pool`, created on first use;
 * NULL when out of memory. Thread-safe. */
struct health *health_acquire(const char *pool, const struct conf_server *cs);

/* Drops one reference; the last frees it. Thread-safe. */
void health_release(struct health **h);

/* A failure at now (loop ms; every libuv loop reads the same monotonic
 * clock). True when this failure ejected the server. */
bool health_failure(struct health *h, const struct eject_policy *p,
                    uint64_t now);

/* A success: ends a failure streak or probation. Lock-free when there is
 * nothing to clear, which is the case on almost every reply. */
void health_success(struct health *h);

/* Readmits h if it is ejected and due at now. True for the one caller that
 * did it, so that the return is logged and counted once. */
bool health_readmit(struct health *h, uint64_t now);

/* 0 when h is on the ring, else the ms when it may return. */
uint64_t health_ejected_until(const struct health *h);

/* The outcome of the latest connect to the server, by a worker or by a
 * probe (probe.h): 0 (connected), or the UV_E* it failed with. */
void health_seen(struct health *h, int status);

/* 0 when the latest connect succeeded (or none was tried), else its
 * error: the server is down as far as anyone knows. */
int health_down(const struct health *h);

/* Changes whenever any server is ejected or readmitted. */
uint64_t health_generation(void);

#endif /* MEMRING_HEALTH_H */
