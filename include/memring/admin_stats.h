/*
 * admin_stats: the /stats document, twemproxy's stats JSON (what its
 * stats port sends) followed by memring's additions, and its -D
 * description. twemproxy's fields keep their names and order, so that
 * parsers written for twemproxy see what they expect; memring's own
 * fields carry a "memring_" prefix.
 */
#ifndef MEMRING_ADMIN_STATS_H
#define MEMRING_ADMIN_STATS_H

#include <stdint.h>
#include <stdio.h>

struct buf;
struct reload_stats;
struct snapshot;

/* What /stats shows besides the snapshot. */
struct admin_stats_source {
    const char                *host;    /* "source" */
    uint64_t                  now_usec; /* "timestamp" (unix usec) */
    uint64_t                  started_usec; /* for "uptime" */
    const struct reload_stats *reloads; /* or NULL: no reload fields */
};

/* Appends the document (one line of JSON) for s to b. 0 or UV_ENOMEM. */
int admin_stats_render(struct buf *b, const struct snapshot *s,
                       const struct admin_stats_source *src);

/* -D: every field with its meaning, in twemproxy's layout. */
void admin_stats_describe(FILE *f);

#endif /* MEMRING_ADMIN_STATS_H */
