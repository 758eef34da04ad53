/*
 * tally: the client connection counts that the limits apply to, shared by
 * the workers, so that client_connections (per pool) and --max-clients (in
 * all) hold for the process and not once per worker thread.
 */
#ifndef MEMRING_TALLY_H
#define MEMRING_TALLY_H

#include <stdbool.h>
#include <stdint.h>

struct tally;

/* The count of pool `pool`, shared by name; NULL when out of memory. */
struct tally *tally_acquire(const char *pool);
void tally_release(struct tally **t);

/* Counts one more client of t's pool unless that makes more than
 * per_pool (0: no limit) in the pool or more than total in all; false,
 * counting nothing, when over. */
bool tally_take(struct tally *t, uint32_t per_pool, uint32_t total);

/* The client that tally_take() counted has gone. */
void tally_give(struct tally *t);

/* Counts n more bytes of values held (from their header until their
 * server answers), over all clients, unless that makes more than limit;
 * false, counting nothing, when over. */
bool tally_value_bytes_take(uint64_t n, uint64_t limit);

/* Those bytes are no longer held. */
void tally_value_bytes_give(uint64_t n);

/* A client's unsent replies went from `from` to `to` bytes. */
void tally_output_bytes_change(uint64_t from, uint64_t to);

/* Unsent reply bytes, over all clients. */
uint64_t tally_output_bytes(void);

#endif /* MEMRING_TALLY_H */
