/*
 * warmup: the extra rounds a multi-key retrieval gets while its pool's
 * warm-up window is open (pool option warmup_ms: a ring change moved some
 * keys). Socket-free, like fanout, whose parent and fragments it extends:
 * the caller routes and sends the fragments (warm.h).
 *
 *   round 1  fanout_split: every key on its server now
 *   round 2  warmup_round(MC_META_GET): each key that missed and moved,
 *            "mg <key> v f t" on the server the previous ring gave it, one
 *            fragment per such server; a hit (VA) becomes the key's VALUE
 *   copies   each hit written to the key's server now with its flags and
 *            remaining TTL as an add ("ms ... ME"), which never overwrites
 *            what a client wrote there meanwhile.
 *            get/gat: sent on their own, not waited for;
 *            gets/gats: round 3, warmup_round(MC_META_ADD), waited for:
 *            the client gets the CAS of the copy (its new server's), or a
 *            miss when the add was refused (the key was written there
 *            since: the previous server's value is stale).
 */
#ifndef MEMRING_WARMUP_H
#define MEMRING_WARMUP_H

#include "memring/fanout.h"
#include "memring/mc_parse.h"

#include <stdbool.h>
#include <stdint.h>

struct buf;
struct req;

#define WARMUP_NONE FANOUT_NONE  /* route[i]: key i takes no part */

/*
 * Another round of parent p, whose fragments are all done: key i goes to
 * server route[i] (< nservers, or WARMUP_NONE), as a lookup (cmd
 * MC_META_GET) or a copy of its round-2 hit (MC_META_ADD, asking for the
 * CAS). Appends one fragment per server to p->frags, in server order; on
 * return per_server[j] is the server of fragment p->frags[first + j],
 * first being p->nfrags on entry. Sets p->pending to the number added
 * (0: none). UV_ENOMEM: fragments made so far stay unsent, pending 0.
 */
int warmup_round(struct req *p, enum mc_cmd cmd, const uint32_t *route,
                 uint32_t *per_server, uint32_t nservers);

/*
 * A reply unit u (its bytes at unit) to f: a lookup or copy fragment of a
 * parent, or a copy sent on its own (no parent). 1 when f has all its
 * answers, 0 when more are due; UV_ENOMEM.
 */
int warmup_unit(struct req *f, const char *unit, const struct mc_rsp *u);

/* Parent p's key k as its client wrote it (p's line carries the keys its
 * servers get: with a pool's key prefix, which is taken out here, into
 * out, of MC_KEY_MAX bytes, when it is not at the front). */
const char *warmup_client_key(const struct req *p, uint32_t k, char *out,
                              size_t *len);

/* True when parent p's key k has a value found by a round-2 lookup. */
bool warmup_found(const struct req *p, uint32_t k);

/* The copy of that value for key k's server now ("ms ... ME", want_cas:
 * with " c"), into out. 0 or UV_ENOMEM. */
int warmup_copy(struct buf *out, const struct req *p, uint32_t k,
                bool want_cas);

/* Keys of p whose values came from round 2 become misses (a gets whose
 * copies could not be made: it must not answer without its CAS). */
void warmup_drop_found(struct req *p);

#endif /* MEMRING_WARMUP_H */
