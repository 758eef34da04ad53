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
