/*
 * admin_config: the /config document, JSON: the active config as memring
 * read it (defaults filled in), each worker's ring of each pool, and where
 * each server stands.
 */
#ifndef MEMRING_ADMIN_CONFIG_H
#define MEMRING_ADMIN_CONFIG_H

#include <stdint.h>

struct buf;
struct snapshot;

/* Appends the document for s (s->conf, loaded at loaded_usec, unix
 * microseconds) to b. 0 or UV_ENOMEM. */
int admin_config_render(struct buf *b, const struct snapshot *s,
                        uint64_t loaded_usec);

#endif /* MEMRING_ADMIN_CONFIG_H */
