/*
 * req: one client request on its way through the proxy, and the reply it
 * gets. A req is reference counted because up to three parties hold it at
 * once: the client's reply-order queue, a server connection's queue, and a
 * write in progress whose iov points into its buffers.
 *
 * A multi-key retrieval whose keys live on several servers becomes a parent
 * req (on the client queue) and one fragment per server (on server queues).
 * Fragments put their VALUE blocks into the parent's per-key slots; when the
 * last one is done the parent composes the reply in the request's key order.
 */
#ifndef MEMRING_REQ_H
#define MEMRING_REQ_H

#include "memring/buf.h"
#include "memring/mc_parse.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <uv.h>

struct pool_stats;
struct req;
struct sconn;

/* The request's reply is complete (its owner flushes it in order). */
typedef void req_done_fn(struct req *r);

/* Every fragment of parent p is done: true when it sent another round of
 * fragments (a warm-up window's lookups, warmup.h), false to merge now. */
typedef bool req_round_fn(struct req *p);

/* Where a parent's key i found its value: a slice of one fragment's reply. */
struct req_slot {
    struct req *frag;    /* NULL: a miss */
    uint32_t   off;      /* in frag->reply */
    uint32_t   len;
    uint32_t   flags;    /* a warm-up lookup's hit: its client flags */
    int32_t    ttl;      /* ... and seconds left (0: none) */
};

struct req {
    TAILQ_ENTRY(req) cq;       /* client outq: reply order */
    TAILQ_ENTRY(req) sq;       /* server conn: pending, then inflight */
    void             *owner;   /* the client; NULL once it is gone
                                * (the reply is swallowed) */
    req_done_fn      *on_done; /* told when the reply is complete */
    struct req_cache *cache;   /* where it goes back when freed */
    struct pool_stats *stats;  /* the client's pool's counters */
    struct req       *parent;  /* fragment: the client-facing req */
    struct sconn     *sconn;   /* server conn it is queued on, or NULL */
    uint32_t         refs;
    enum mc_cmd      cmd;
    bool             done;     /* reply complete */
    bool             noreply;  /* client wants no reply: drop it */
    bool             quiet;    /* meta q flag: its answer, if any, ends
                                * at the MN of the mn sent after it */
    bool             quit;     /* close the client after earlier replies */
    bool             failed;   /* server side failed (fragment: misses) */
    bool             gathered; /* parent: the reply is its slots' slices of
                                * the fragments' replies, then END */
    uint64_t         deadline; /* loop ms by which the server must reply */
    uint64_t         start_ns; /* uv_hrtime() when parsed */
    uint64_t         sent_ns;  /* uv_hrtime() when written to a server */
    uint64_t         value_bytes; /* counted in tally_value_bytes (a
                                   * storage command's), given back when
                                   * the req is freed */

    /* retrieval */
    uint32_t         nkeys;
    uint32_t         frag_nkeys;
    uint32_t         frag_next;  /* fragment: next key expected */
    uint32_t         nhits;    /* single-server retrieval: values seen */
    uint32_t         nslices;  /* gathered parent: slots with a value */
    uint32_t         pending;  /* parent: fragments not done yet */
    uint32_t         nfrags;
    char             *first_error; /* parent of a fan-out: reply to use */
    req_round_fn     *on_round;  /* parent: may start another round */
    void             *round_arg; /* ... with this (the pool) */
    void             *round_data; /* ... and its state (split.h), one
                                   * block, free()d with the req */
    uint32_t         round;      /* parent: rounds done */
    int64_t          exptime;    /* warming gat/gats parent: the TTL its
                                  * copies get */
    uint32_t         key_strip; /* retrieval of a pool with a key prefix:
                                 * its length, taken out of each VALUE
                                 * key (0: none, the reply is passed on
                                 * as it is) */
    bool             strip_after_q; /* ... after the key's leading '?'
                                     * (mc_prefix.after_q) */

    /* From here on, what a req keeps when it goes back to the worker's
     * pool (small buffers and arrays), so that the next request reuses
     * them instead of allocating: req_create() zeroes only what is above. */
    struct buf       out;      /* bytes to send to the server */
    struct buf       reply;    /* bytes to send to the client */
    struct buf       line;     /* parent: copy of the request line */
    struct mc_span   *keys;    /* parent: key spans into line */
    struct req_slot  *slots;   /* parent: one per key */
    uint32_t         keys_cap;
    uint32_t         slots_cap;
    uint32_t         frags_cap;
    struct req       **frags;  /* parent: its fragments (holds a ref) */
    uint32_t         *frag_keys; /* fragment: parent key indexes, in order */
    uint32_t         frag_keys_cap;
};

#define REQ_KEPT_FROM offsetof(struct req, out)

TAILQ_HEAD(req_queue, req);

/*
 * One uv_write of several requests' buffers. The batch holds a ref on each
 * req so that the bytes the iov points at outlive the write.
 */
struct req_batch {
    uv_write_t  wreq;
    void        *owner;     /* the client or sconn writing */
    uint32_t    n;
    struct req  **reqs;     /* n refs, freed with the batch */
    uv_buf_t    *bufs;
};

/*
 * Freed reqs one worker keeps, with their small buffers, for the next
 * requests: in steady state a request then costs no allocation. Also the
 * scratch arrays that a batched write is assembled in.
 */
struct req_cache {
    struct req *free;       /* linked through ->parent */
    uint32_t   n;
    uint64_t   *freed;      /* bytes of large buffers freed: the owner's
                             * cue to give memory back */
    struct req **wreqs;     /* write scratch: reqs being written */
    uv_buf_t   *wbufs;      /* ... and their bytes */
    uint32_t   wreqs_cap;
    uint32_t   wbufs_cap;
};

void req_cache_init(struct req_cache *rc, uint64_t *freed);

/* Frees the reqs and scratch rc keeps (at exit). */
void req_cache_drain(struct req_cache *rc);

/* Makes rc->wreqs/rc->wbufs hold at least n entries. 0 or UV_ENOMEM. */
int req_cache_wscratch(struct req_cache *rc, uint32_t n);

/* A req from rc, no owner, counting into stats; refs = 1. NULL on OOM. */
struct req *req_create(struct req_cache *rc, struct pool_stats *stats,
                       enum mc_cmd cmd);
void req_ref(struct req *r);
void req_put(struct req **r);     /* drops a ref; frees at 0; *r = NULL */

/* r's reply is complete: marks it done and tells its owner, if any. */
void req_done(struct req *r);

/* A retrieval of r->nkeys keys found hits of them: counts hits and
 * misses (the one place they are counted). */
void req_count_hits(const struct req *r, uint32_t hits);

/* A batch with room for n reqs and bufs; NULL on OOM. */
struct req_batch *req_batch_create(uint32_t n);

/* Drops the batch's refs and frees it; *b = NULL. */
void req_batch_destroy(struct req_batch **b);

/*
 * Writes bufs[0..n) (the bytes of reqs[0..n)) to s: at once where the
 * socket takes them, the rest through uv_write() with a batch (owner, cb)
 * that keeps those reqs alive; *queued says whether there is such a rest.
 * own_refs: the caller hands over one ref per req (dropped here, or kept
 * by the batch); else the batch takes refs of its own. bufs is modified.
 * 0 or an error (then nothing is queued).
 */
int req_write(uv_stream_t *s, struct req **reqs, uv_buf_t *bufs, uint32_t n,
              bool own_refs, void *owner, uv_write_cb cb, bool *queued);

/* Room for n keys and slots (parent), n frags, n frag_keys: the arrays
 * grow as needed and are kept with a pooled req. 0 or UV_ENOMEM. */
int req_reserve_keys(struct req *r, uint32_t n);
int req_reserve_frags(struct req *r, uint32_t n);

/* Room for n frags, the fragments r has kept (another round's). */
int req_grow_frags(struct req *r, uint32_t n);
int req_reserve_frag_keys(struct req *r, uint32_t n);

/* Sets the reply to one line (text without \r\n) and marks r done (it
 * does not tell the owner: see req_done()). 0 or UV_ENOMEM. */
int req_reply_line(struct req *r, const char *line);

#endif /* MEMRING_REQ_H */
