/*
 * split: values larger than a server's item size, stored as chunks under
 * keys of their own plus a small index item under the client's key (pool
 * option split_values: the chunk size; docs/split.md). Socket-free: the
 * index format, the chunk keys, and the retrieval round that fetches the
 * chunks of the index items a get found and reassembles them (like
 * warmup.h, on a fanout parent; the caller routes and sends).
 *
 *   set k (N+ bytes)  chunks "~<nonce>/<i>" first, each on its own server,
 *                     then k = index (magic, nonce, chunk size, count,
 *                     total, crc32 of the value)
 *   get k             k's value is an index: "mg ~<nonce>/<i> v" for each
 *                     chunk; all present, of the right lengths and with
 *                     the index's crc32: VALUE k <flags> <total>, else a miss
 */
#ifndef MEMRING_SPLIT_H
#define MEMRING_SPLIT_H

#include "memring/fanout.h"
#include "memring/mc_parse.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mc_prefix;
struct req;

#define SPLIT_CHUNK_MIN  1024u      /* split_values: smallest chunk */
#define SPLIT_CHUNK_MAX  1048000u   /* ... largest: fits memcached's 1 MB
                                     * item with its key and header */
#define SPLIT_CHUNKS_MAX 65536u     /* chunks of one value */
#define SPLIT_INDEX_MAX  96         /* bytes of an index item, at most */
#define SPLIT_KEY_MAX    32         /* a chunk's key without the prefix */
#define SPLIT_NONE       FANOUT_NONE /* route[g]: chunk g is not asked for */

/* What an index item says. */
struct split_index {
    uint64_t nonce;     /* the write's: in each of its chunk keys */
    uint32_t chunk;     /* bytes per chunk (the last one: the rest) */
    uint32_t nchunks;
    uint64_t total;     /* bytes of the value */
    uint32_t crc;       /* zlib crc32 of the value */
};

/* The index of value[0..len) cut in chunks of chunk bytes under nonce. */
void split_index_make(struct split_index *x, uint64_t nonce, uint32_t chunk,
                      const char *value, uint64_t len);

/* x as an index item's value, into out (SPLIT_INDEX_MAX bytes); its
 * length. */
size_t split_index_encode(const struct split_index *x, char *out);

/* True when v[0..len) is a well-formed index item (then *x says what):
 * the magic, every field, and fields that agree with each other. */
bool split_index_parse(const char *v, size_t len, struct split_index *x);

/* Chunk i's key (as a client would write it; a pool's prefix is added on
 * the way to its server like any key's) into out (SPLIT_KEY_MAX); its
 * length. */
size_t split_chunk_key(uint64_t nonce, uint32_t i, char *out);

/* Bytes of chunk i of x. */
uint64_t split_chunk_len(const struct split_index *x, uint32_t i);

/* The longest value a pool splitting in chunks of chunk bytes stores. */
uint64_t split_value_max(uint32_t chunk);

/*
 * Retrieval parent p, every fragment done: finds the values that are
 * index items, makes room for their reassembly and keeps what it needs
 * in p->round_data. *nchunks: the chunks to fetch (0: none, nothing
 * kept). 0 or UV_ENOMEM.
 */
int split_round_begin(struct req *p, uint32_t *nchunks);

/* Chunk g (< nchunks) of p's round as its client key, into out
 * (SPLIT_KEY_MAX); its length. */
size_t split_round_key(const struct req *p, uint32_t g, char *out);

/*
 * The chunk round of p: chunk g goes to server route[g] (< nservers, or
 * SPLIT_NONE), keys with pfx (a second call: another round, e.g. for
 * split_round_missing() chunks). Appends one fragment (MC_META_CHUNK) per
 * server to p->frags, in server order; per_server[j] is then the server
 * of fragment p->frags[first + j] (first: p->nfrags on entry); sets
 * p->pending to the number added. UV_ENOMEM: those made stay unsent.
 */
int split_round(struct req *p, const uint32_t *route, uint32_t *per_server,
                uint32_t nservers, const struct mc_prefix *pfx);

/* The chunks of p's round (0: none). */
uint32_t split_round_chunks(const struct req *p);

/* True when chunk g has not come in p's first chunk round and its value
 * may still be reassembled: a pool in a warm-up window asks the chunk's
 * previous server in a second round (bigval.h). False after that. */
bool split_round_missing(const struct req *p, uint32_t g);

/* A reply unit u (its bytes at unit) to chunk fragment f: 1 when f has
 * all its answers, 0 when more are due, UV_EPROTO. */
int split_unit(struct req *f, const char *unit, const struct mc_rsp *u);

/* The chunk round of p is done: each key whose chunks all came, of the
 * right lengths and crc32, answers the value; every other one misses.
 * Frees p->round_data. */
void split_round_end(struct req *p);

/* The chunk round of p cannot be made or sent: its index items miss (an
 * index is never answered as a value). Frees p->round_data. */
void split_round_fail(struct req *p);

#endif /* MEMRING_SPLIT_H */
