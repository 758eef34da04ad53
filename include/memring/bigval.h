/*
 * bigval: a pool's split values on the request path (pool option
 * split_values; the index and the chunk round are split.h's). A set of a
 * value over the chunk size sends its chunks, each to its key's server,
 * then the index item, and answers once all did; a retrieval of such a
 * pool goes through fanout with bigval_round() as its round callback,
 * which runs the warm-up window's rounds (warm.h) and then the chunk
 * round(s).
 */
#ifndef MEMRING_BIGVAL_H
#define MEMRING_BIGVAL_H

#include "memring/mc_parse.h"

#include <stdbool.h>

struct pool;
struct req;

/* True when storage request m to pool p is a set to split. */
bool bigval_splits(const struct pool *p, const struct mc_req *m);

/*
 * Set m (parsed from buf, its key at key) as chunks and an index: p is
 * the client's req (MC_SET), which answers STORED once every chunk and
 * the index are stored, else the first other answer. 0; UV_ENOMEM or
 * UV_EHOSTUNREACH (no server for a chunk) before anything is sent, after
 * which the caller calls fanout_abort(p).
 */
int bigval_set(struct pool *pool, struct req *p, const char *buf,
               const struct mc_req *m, const struct mc_span *key);

/* The round callback (req_round_fn) of a retrieval of a pool with
 * split_values (round_arg: the pool). */
bool bigval_round(struct req *p);

#endif /* MEMRING_BIGVAL_H */
