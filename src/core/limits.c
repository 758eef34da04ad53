/*
 * limits: defaults of the client limits (see limits.h).
 */
#include "memring/limits.h"

void
limits_default(struct limits *l)
{
    l->item_size_max = LIMITS_DEFAULT_ITEM_SIZE_MAX;
    l->output_max = LIMITS_DEFAULT_OUTPUT_MAX;
    l->max_clients = LIMITS_DEFAULT_MAX_CLIENTS;
    l->pending_values_max = LIMITS_DEFAULT_PENDING_VALUES_MAX;
    l->pending_output_max = LIMITS_DEFAULT_PENDING_OUTPUT_MAX;
    l->idle_timeout_ms = 0;
    l->requests_max = LIMITS_DEFAULT_REQUESTS_MAX;
    l->get_keys_max = LIMITS_DEFAULT_GET_KEYS_MAX;
}
