/*
 * warm: a pool's warm-up window on the request path (pool option
 * warmup_ms; the window itself is pool.h's, the rounds' bytes warmup.h's).
 *
 * A retrieval with a key whose server changed goes through fanout even
 * when it has one server, with warm_round() as its parent's round
 * callback: keys that miss are looked up on their previous server, and
 * what is found there is copied to the key's server now. A write of such
 * a key (storage, delete, incr/decr, touch) also deletes it on its
 * previous server, so that no later lookup can bring back a value older
 * than that write.
 */
#ifndef MEMRING_WARM_H
#define MEMRING_WARM_H

#include <stdbool.h>
#include <stddef.h>

struct pool;
struct req;
struct req_cache;
struct server;

/* The round callback (req_round_fn) of a parent whose round_arg is its
 * pool: sends round 2 (lookups), then the copies (round 3 for gets/gats,
 * waited for); false when there is nothing more to wait for. */
bool warm_round(struct req *p);

/* A write of key[0..len) (as the client wrote it) goes to cur: while p
 * warms, the key's previous server deletes it (nobody waits for that
 * answer). */
void warm_forget(struct pool *p, struct req_cache *rc, const char *key,
                 size_t len, const struct server *cur);

#endif /* MEMRING_WARM_H */
