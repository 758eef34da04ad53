/*
 * fanout: one client request that several servers answer together.
 *
 * A get/gets/gat/gats whose keys live on several servers becomes a parent
 * (the client's req) and one fragment per server, each asking for its
 * keys in request order; flush_all becomes one fragment per server of the
 * pool. This module splits, matches each value a fragment receives to the
 * parent's key, turns a failed fragment's keys into misses, merges when
 * the last fragment is done, and lays out the merged reply as iovecs. It
 * does no I/O: the caller sends the fragments (p->frags) and feeds back
 * what their servers answered.
 *
 *   fanout_split ──> frags ──server──> fanout_value / fanout_line /
 *                                      fanout_fail, then fanout_done
 *   last fragment done ──> parent done (req_done) ──> fanout_iov
 *
 * Refs: the parent holds each fragment, and each fragment holds the
 * parent until the merge (or fanout_abort()) breaks that cycle.
 */
#ifndef MEMRING_FANOUT_H
#define MEMRING_FANOUT_H

#include "memring/mc_parse.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct req;

/*
 * Splits retrieval p, parsed as m from buf with keys[0..m->nkeys): key i
 * goes to server route[i] (< nservers). per_server is the caller's
 * scratch of nservers entries; on return per_server[j] is the server
 * index of fragment p->frags[j], j < p->nfrags (fragments in server
 * order). 0, or UV_ENOMEM after which the caller calls fanout_abort(p).
 */
int fanout_split(struct req *p, const char *buf, const struct mc_req *m,
                 const struct mc_span *keys, const uint32_t *route,
                 uint32_t *per_server, uint32_t nservers);

/* A fragment of p asking cmd, with room for n keys in frag_keys, holding
 * a ref on p (NULL on OOM); fanout_fragment_drop() undoes one not sent.
 * (Another round of p, warmup.h, makes its fragments so.) */
struct req *fanout_fragment(struct req *p, enum mc_cmd cmd, uint32_t n);
void fanout_fragment_drop(struct req **f);

/*
 * Another round of parent p (warmup.h, split.h), whose fragments are all
 * done: item i of nitems goes to server route[i] (< nservers, or
 * FANOUT_NONE: it sits this round out); make(p, si, n, arg) makes server
 * si's fragment for its n items. Appends one fragment per server to
 * p->frags, in server order; on return per_server[j] is the server of
 * fragment p->frags[first + j], first being p->nfrags on entry. Sets
 * p->pending to the number added (0: none). UV_ENOMEM: fragments made so
 * far stay unsent, pending 0.
 */
#define FANOUT_NONE UINT32_MAX
typedef struct req *fanout_make_fn(struct req *p, uint32_t si, uint32_t n,
                                   void *arg);
int fanout_round(struct req *p, uint32_t nitems, const uint32_t *route,
                 uint32_t *per_server, uint32_t nservers,
                 fanout_make_fn *make, void *arg);

/* flush_all p (parsed as m from buf): one fragment per server, fragment
 * j for server j. 0, or UV_ENOMEM after which the caller calls
 * fanout_abort(p). */
int fanout_flush_all(struct req *p, const char *buf, const struct mc_req *m,
                     uint32_t nservers);

/* A VALUE unit (u, its bytes at unit) for retrieval fragment f: kept for
 * the parent's key it answers. 0; UV_EPROTO when f did not ask for that
 * key (or not in that order); UV_ENOMEM. */
int fanout_value(struct req *f, const char *unit, const struct mc_rsp *u);

/* A one-line reply u (its bytes at text, \r\n included) to fragment f:
 * flush_all keeps the first one that is not OK; a retrieval's error line
 * leaves f's keys missing. */
void fanout_line(struct req *f, const char *text, const struct mc_rsp *u);

/* f's server failed: its keys miss (values it already sent are dropped:
 * its stream broke), or flush_all answers line (its first error). */
void fanout_fail(struct req *f, const char *line);

/* f has its whole answer; drops the ref its caller passed. The last one
 * merges the parent and tells its owner (req_done()). */
void fanout_done(struct req *f);

/* The merged reply of p (done): how many iovecs, and those iovecs at
 * bufs[0..n) with reqs[i] = p, each holding a ref on p but the last,
 * which takes the caller's. */
uint32_t fanout_iov_count(const struct req *p);
uint32_t fanout_iov(struct req *p, struct req **reqs, uv_buf_t *bufs);

/* Undoes a split that failed half way, or a parent given up before its
 * fragments were sent: drops every fragment and their refs on p. */
void fanout_abort(struct req *p);

#endif /* MEMRING_FANOUT_H */
