/*
 * stats: helpers for the metric tables in stats.h.
 */
#include "memring/stats.h"

#include <stddef.h>
#include <sys/time.h>

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
