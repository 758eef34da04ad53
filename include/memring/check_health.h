/*
 * check_health: `memring --check-health`, a health check for places that
 * have no HTTP client (a slim container's HEALTHCHECK, a shell probe): it
 * asks the admin port of a running memring for /healthz and exits 0 on
 * 200, 1 otherwise, printing the answer's first line.
 */
#ifndef MEMRING_CHECK_HEALTH_H
#define MEMRING_CHECK_HEALTH_H

#include <stdint.h>

#define CHECK_HEALTH_TIMEOUT_MS 3000    /* connect, send and read, in all */

/* GET /healthz from addr:port; the exit status (0 healthy, 1 not). */
int check_health(const char *addr, uint16_t port);

#endif
