/*
 * stats: helpers for the metric tables in stats.h.
 */
#include "memring/stats.h"

#include <stddef.h>
#include <string.h>
#include <sys/time.h>

#define POOL_FIELD(n, t, d) { #n, t, d, offsetof(struct pool_stats, n) },
#define SERVER_FIELD(n, t, d) { #n, t, d, offsetof(struct server_stats, n) },

const struct stats_field stats_pool_fields[STATS_NPOOL_FIELDS] = {
    POOL_METRICS(POOL_FIELD)
};

const struct stats_field stats_server_fields[STATS_NSERVER_FIELDS] = {
    SERVER_METRICS(SERVER_FIELD)
};

uint64_t
stats_field_get(const struct stats_field *f, const void *st)
{
    /* every field is an _Atomic uint64_t (stats.h): read it as one */
    const _Atomic uint64_t *v = (const void *)((const char *)st + f->off);

    return atomic_load_explicit(v, memory_order_relaxed);
}

static uint64_t
fold(enum stats_type type, uint64_t a, uint64_t b)
{
    if (type == STATS_TIMESTAMP) {
        return a > b ? a : b;
    }
    return a + b;
}

#define FOLD(n, t, d) into->n = fold(t, into->n, from->n);

void
stats_pool_fold(struct pool_stats *into, const struct pool_stats *from)
{
    POOL_METRICS(FOLD)
}

void
stats_server_fold(struct server_stats *into, const struct server_stats *from)
{
    SERVER_METRICS(FOLD)
}

uint64_t
stats_now_usec(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

const uint64_t stats_hist_bounds_us[STATS_HIST_NBOUNDS] = {
    10, 25, 50, 100, 250, 500,
    1000, 2500, 5000, 10000, 25000, 50000,
    100000, 250000, 500000, 1000000, 2500000, 5000000,
};

void
stats_hist_add(struct stats_hist *h, uint64_t us)
{
    uint32_t i = 0;

    while (i < STATS_HIST_NBOUNDS && us > stats_hist_bounds_us[i]) {
        i++;
    }
    STATS_BUMP(h->buckets[i], 1);
    STATS_BUMP(h->count, 1);
    STATS_BUMP(h->sum_us, us);
}

void
stats_hist_merge(struct stats_hist *into, const struct stats_hist *from)
{
    uint32_t i;

    into->count += from->count;
    into->sum_us += from->sum_us;
    for (i = 0; i < STATS_HIST_NBUCKETS; i++) {
        into->buckets[i] += from->buckets[i];
    }
}

uint64_t
stats_hist_quantile(const struct stats_hist *h, double q)
{
    uint64_t rank, seen = 0;
    uint32_t i;

    if (h->count == 0) {
        return 0;
    }
    rank = (uint64_t)(q * (double)h->count);
    if (rank >= h->count) {
        rank = h->count - 1;
    }
    for (i = 0; i < STATS_HIST_NBOUNDS; i++) {
        seen += h->buckets[i];
        if (seen > rank) {
            return stats_hist_bounds_us[i];
        }
    }
    return stats_hist_bounds_us[STATS_HIST_NBOUNDS - 1];
}
