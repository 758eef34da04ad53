/*
 * stats: the metric tables. Each worker keeps its own copy of every
 * counter (pool and server), bumped without locks on the request path;
 * readers sum the workers' copies. Names and meanings of the twemproxy
 * fields are twemproxy's, so that its dashboards keep working; memring's
 * additions come after them.
 */
#ifndef MEMRING_STATS_H
#define MEMRING_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

enum stats_type {
    STATS_COUNTER = 0,   /* only goes up */
    STATS_GAUGE,         /* goes up and down */
    STATS_TIMESTAMP      /* a point in time, unix microseconds; max wins */
};

/* ACTION(name, type, description) */
#define POOL_METRICS(ACTION)                                                 \
    ACTION(client_eof,         STATS_COUNTER, "# eof on client connections") \
    ACTION(client_err,         STATS_COUNTER, "# errors on client connections") \
    ACTION(client_connections, STATS_GAUGE,   "# active client connections") \
    ACTION(server_ejects,      STATS_COUNTER, "# times backend server was ejected") \
    ACTION(forward_error,      STATS_COUNTER, "# times we encountered a forwarding error") \
    ACTION(fragments,          STATS_COUNTER, "# fragments created from a multi-vector request") \
    ACTION(total_connections,  STATS_COUNTER, "# client connections accepted") \
    ACTION(request_errors,     STATS_COUNTER, "# requests answered with a protocol error") \
    ACTION(cmd_get,            STATS_COUNTER, "# keys asked by get, gets, gat, gats") \
    ACTION(cmd_set,            STATS_COUNTER, "# set, add, replace, append, prepend, cas") \
    ACTION(cmd_delete,         STATS_COUNTER, "# delete requests") \
    ACTION(cmd_incr_decr,      STATS_COUNTER, "# incr and decr requests") \
    ACTION(cmd_touch,          STATS_COUNTER, "# touch requests and keys of gat, gats") \
    ACTION(cmd_flush,          STATS_COUNTER, "# flush_all requests") \
    ACTION(cmd_other,          STATS_COUNTER, "# version, verbosity, stats, quit") \
    ACTION(get_hits,           STATS_COUNTER, "# keys found") \
    ACTION(get_misses,         STATS_COUNTER, "# keys not found, or whose server failed") \
    ACTION(client_refused,     STATS_COUNTER, "# clients refused: connection limit") \
    ACTION(client_overflow,    STATS_COUNTER, "# clients cut off: replies not read") \
    ACTION(client_idle_closed, STATS_COUNTER, "# clients closed after the idle timeout") \
    ACTION(client_paused,      STATS_COUNTER, "# times a client was not read: too many requests unanswered, or replies unsent") \
    ACTION(client_half_closed, STATS_COUNTER, "# clients that shut down their sending side with replies still owed") \
    ACTION(request_binary,     STATS_COUNTER, "# binary-protocol requests answered 'unknown command'") \
    ACTION(cmd_meta,           STATS_COUNTER, "# meta commands (mg, ms, md, ma, mn, me)") \
    ACTION(request_too_large,  STATS_COUNTER, "# values refused: over the item size limit") \
    ACTION(request_no_memory,  STATS_COUNTER, "# values refused: --pending-values-max reached") \
    ACTION(warmup_lookups,     STATS_COUNTER, "# missed keys looked up on their previous server in a warm-up window") \
    ACTION(warmup_hits,        STATS_COUNTER, "# of those found there and answered") \
    ACTION(warmup_copies,      STATS_COUNTER, "# of those written to their new server") \
    ACTION(split_stored,       STATS_COUNTER, "# values set as chunks and an index (split_values)") \
    ACTION(split_reassembled,  STATS_COUNTER, "# split values reassembled for a get") \
    ACTION(split_misses,       STATS_COUNTER, "# split values answered as a miss: a chunk missing or mismatched")

#define SERVER_METRICS(ACTION)                                               \
    ACTION(server_eof,         STATS_COUNTER, "# eof on server connections") \
    ACTION(server_err,         STATS_COUNTER, "# errors on server connections") \
    ACTION(server_timedout,    STATS_COUNTER, "# timeouts on server connections") \
    ACTION(server_connections, STATS_GAUGE,   "# active server connections") \
    ACTION(server_ejected_at,  STATS_TIMESTAMP, "timestamp when server was ejected in usec since epoch") \
    ACTION(requests,           STATS_COUNTER, "# requests") \
    ACTION(request_bytes,      STATS_COUNTER, "total request bytes") \
    ACTION(responses,          STATS_COUNTER, "# responses") \
    ACTION(response_bytes,     STATS_COUNTER, "total response bytes") \
    ACTION(in_queue,           STATS_GAUGE,   "# requests in incoming queue") \
    ACTION(in_queue_bytes,     STATS_GAUGE,   "current request bytes in incoming queue") \
    ACTION(out_queue,          STATS_GAUGE,   "# requests in outgoing queue") \
    ACTION(out_queue_bytes,    STATS_GAUGE,   "current request bytes in outgoing queue") \
    ACTION(server_failures,    STATS_COUNTER, "# connection failures counted toward ejection") \
    ACTION(server_returns,     STATS_COUNTER, "# times the server came back after ejection")

/*
 * Counters have one writer, the worker that owns them, and readers on
 * other threads (the admin, the `stats` command of another worker). Each
 * is a C11 atomic: the writer bumps it with a relaxed load and store
 * (STATS_BUMP: no locked instruction, a plain add on x86, as only it
 * writes), readers load it relaxed (STATS_READ). A reader sees every
 * counter current or a moment old, never torn; a sum over counters is
 * not a snapshot of one instant, which counters never need.
 */
#define STATS_FIELD(name, type, desc) _Atomic uint64_t name;

#define STATS_READ(field) atomic_load_explicit(&(field), memory_order_relaxed)
#define STATS_BUMP(field, n)                                                \
    atomic_store_explicit(&(field), STATS_READ(field) + (uint64_t)(n),      \
                          memory_order_relaxed)
#define STATS_DROP(field, n)                                                \
    atomic_store_explicit(&(field), STATS_READ(field) - (uint64_t)(n),      \
                          memory_order_relaxed)

struct pool_stats {
    POOL_METRICS(STATS_FIELD)
};

struct server_stats {
    SERVER_METRICS(STATS_FIELD)
};

/*
 * The same tables as data, for whoever walks every field (the documents):
 * name, type and description as in the X-macros, and where the field is.
 */
struct stats_field {
    const char      *name;
    enum stats_type type;
    const char      *desc;
    size_t          off;        /* in struct pool_stats / server_stats */
};

#define STATS_COUNT(name, type, desc) + 1
#define STATS_NPOOL_FIELDS   (0 POOL_METRICS(STATS_COUNT))
#define STATS_NSERVER_FIELDS (0 SERVER_METRICS(STATS_COUNT))

extern const struct stats_field stats_pool_fields[STATS_NPOOL_FIELDS];
extern const struct stats_field stats_server_fields[STATS_NSERVER_FIELDS];

/* The value of field f in st (a struct pool_stats or server_stats). */
uint64_t stats_field_get(const struct stats_field *f, const void *st);

/* Adds from into into, field by field, the way every reader sums the
 * workers' copies: counters and gauges add up, timestamps keep the
 * latest. */
void stats_pool_fold(struct pool_stats *into, const struct pool_stats *from);
void stats_server_fold(struct server_stats *into,
                       const struct server_stats *from);

/*
 * Latency histogram: fixed buckets from 10 us to 5 s (upper bounds, in
 * microseconds), plus one for everything slower. Cheap to add to (a short
 * scan), mergeable across workers, and what Prometheus wants.
 */
#define STATS_HIST_NBOUNDS 18
#define STATS_HIST_NBUCKETS (STATS_HIST_NBOUNDS + 1)

extern const uint64_t stats_hist_bounds_us[STATS_HIST_NBOUNDS];

struct stats_hist {
    _Atomic uint64_t count;             /* one writer, as counters above */
    _Atomic uint64_t sum_us;
    _Atomic uint64_t buckets[STATS_HIST_NBUCKETS];  /* not cumulative */
};

void stats_hist_add(struct stats_hist *h, uint64_t us);
void stats_hist_merge(struct stats_hist *into, const struct stats_hist *from);

/* Upper bound of the bucket holding quantile q (0..1); 0 when empty. For
 * the open last bucket, the largest finite bound. */
uint64_t stats_hist_quantile(const struct stats_hist *h, double q);

/* Wall clock in microseconds since the epoch, for timestamps. */
uint64_t stats_now_usec(void);

#endif /* MEMRING_STATS_H */
