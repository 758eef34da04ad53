/*
 * limits: the bounds that protect the process from its clients, one flag
 * each. Set once at start, read by every worker's clients.
 */
#ifndef MEMRING_LIMITS_H
#define MEMRING_LIMITS_H

#include <stdint.h>

struct limits {
    uint64_t item_size_max;    /* longest value forwarded, bytes */
    uint64_t output_max;       /* unsent reply bytes before a client is cut */
    uint64_t pending_output_max; /* unsent reply bytes, all clients, past
                                  * which clients behind are cut */
    uint32_t max_clients;      /* client connections, over all workers */
    uint64_t pending_values_max; /* bytes of values held until their
                                  * server answers, over all clients */
    uint64_t idle_timeout_ms;  /* close clients idle that long; 0 = never */
    uint32_t requests_max;     /* unanswered requests of one client before
                                * it is no longer read for a while */
    uint32_t get_keys_max;     /* keys of one get/gets/gat/gats */
};

#define LIMITS_DEFAULT_ITEM_SIZE_MAX (8ULL * 1024 * 1024)
#define LIMITS_DEFAULT_OUTPUT_MAX    (128ULL * 1024 * 1024)
#define LIMITS_DEFAULT_MAX_CLIENTS   16384
#define LIMITS_DEFAULT_PENDING_VALUES_MAX (1ULL << 30)
#define LIMITS_DEFAULT_PENDING_OUTPUT_MAX (1ULL << 30)
#define LIMITS_DEFAULT_REQUESTS_MAX  1024
#define LIMITS_DEFAULT_GET_KEYS_MAX  100000

/* The defaults above, idle timeout off. */
void limits_default(struct limits *l);

#endif /* MEMRING_LIMITS_H */
