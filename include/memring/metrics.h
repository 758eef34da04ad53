/*
 * metrics: the /metrics document, Prometheus text exposition format 0.0.4,
 * rendered from a table of metric families: the process's own, then one
 * per pool counter and server counter of stats.h (names made from the
 * field: memring_pool_<field> / memring_server_<field>, a server field's
 * own "server_" prefix dropped; counters end in _total, a leading "total_"
 * dropped; timestamps become _seconds gauges), then the derived ones
 * (liveness, latency histograms).
 */
#ifndef MEMRING_METRICS_H
#define MEMRING_METRICS_H

#include <stdint.h>

struct buf;
struct reload_stats;
struct snapshot;

/* What /metrics shows besides the snapshot: the process and the admin
 * port's own counters. */
struct metrics_source {
    uint64_t                  now_usec;
    uint64_t                  started_usec;  /* for the uptime */
    const struct reload_stats *reloads;      /* or NULL: no reload
                                              * families */
    uint32_t                  admin_conns;   /* open now */
    uint64_t                  admin_served;  /* connections taken on */
    uint64_t                  admin_refused; /* over the limit */
    uint64_t                  admin_bad;     /* malformed, too large */
    uint64_t                  admin_timedout;
};

/* Appends the document for s to b. 0 or UV_ENOMEM. */
int metrics_render(struct buf *b, const struct snapshot *s,
                   const struct metrics_source *src);

#endif /* MEMRING_METRICS_H */
