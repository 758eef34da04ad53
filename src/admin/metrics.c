/*
 * metrics: Prometheus text from a table of metric families (metrics.h).
 */
#include "memring/metrics.h"

#include "memring/buf.h"
#include "memring/conf.h"
#include "memring/escape.h"
#include "memring/pool.h"
#include "memring/reload.h"
#include "memring/snapshot.h"
#include "memring/stats.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

enum scope {
    SCOPE_PROCESS = 0,      /* one sample, no labels but the row's own */
    SCOPE_POOL,             /* one per pool: {pool="..."} */
    SCOPE_SERVER            /* one per server: {pool="...",server="..."} */
};

/* Where a sample's value is read. */
struct sample {
    const struct snapshot        *snap;
    const struct metrics_source  *src;
    const struct snapshot_pool   *pool;     /* SCOPE_POOL, SCOPE_SERVER */
    const struct snapshot_server *server;   /* SCOPE_SERVER */
};

/*
 * One metric family. A row for a stats.h field has only scope and field:
 * its name, type and help are made from the field. Any other row has a
 * name, a type, a help text (Prometheus's "# HELP", without its final
 * period), and either value or hist.
 */
struct family {
    enum scope               scope;
    const struct stats_field *field;    /* a summed counter, or NULL */
    const char               *name;
    const char               *type;     /* "counter" "gauge" "histogram" */
    const char               *help;
    uint64_t                 (*value)(const struct sample *);
    const struct stats_hist  *(*hist)(const struct sample *);
    const char               *labels;   /* SCOPE_PROCESS: fixed labels */
    bool                     (*shown)(const struct metrics_source *);
};

/* ------------------------------------------------------------ values */

static uint64_t
v_one(const struct sample *s)
{
    (void)s;
    return 1;
}

static uint64_t
v_uptime(const struct sample *s)
{
    return (s->src->now_usec - s->src->started_usec) / 1000000;
}

static uint64_t
v_workers(const struct sample *s)
{
    return s->snap->nworkers;
}

static bool
has_reloads(const struct metrics_source *src)
{
    return src->reloads != NULL;
}

static uint64_t
v_reloads(const struct sample *s)
{
    return s->src->reloads->reloads;
}

static uint64_t
v_reload_failures(const struct sample *s)
{
    return s->src->reloads->failed;
}

static uint64_t
v_admin_conns(const struct sample *s)
{
    return s->src->admin_conns;
}

static uint64_t
v_admin_served(const struct sample *s)
{
    return s->src->admin_served;
}

static uint64_t
v_admin_refused(const struct sample *s)
{
    return s->src->admin_refused;
}

static uint64_t
v_admin_bad(const struct sample *s)
{
    return s->src->admin_bad;
}

static uint64_t
v_admin_timedout(const struct sample *s)
{
    return s->src->admin_timedout;
}

static uint64_t
v_pool_servers(const struct sample *s)
{
    return s->pool->nservers;
}

static uint64_t
v_pool_live_servers(const struct sample *s)
{
    return s->pool->nlive;
}

static uint64_t
v_pool_healthy(const struct sample *s)
{
    return s->pool->healthy;
}

static const struct stats_hist *
h_pool_latency(const struct sample *s)
{
    return &s->pool->latency;
}

static uint64_t
v_server_ejected(const struct sample *s)
{
    return s->server->ejected;
}

static uint64_t
v_server_live(const struct sample *s)
{
    return s->server->live;
}

static const struct stats_hist *
h_server_latency(const struct sample *s)
{
    return &s->server->latency;
}

/* ----------------------------------------------------------- the table */

#define FIELD_INDEX(n, t, d) FIELD_##n,
enum { POOL_METRICS(FIELD_INDEX) };
enum { SERVER_METRICS(FIELD_INDEX) };

#define POOL_FAMILY(n, t, d) \
    { SCOPE_POOL, &stats_pool_fields[FIELD_##n], NULL, NULL, NULL, NULL, \
      NULL, NULL, NULL },
#define SERVER_FAMILY(n, t, d) \
    { SCOPE_SERVER, &stats_server_fields[FIELD_##n], NULL, NULL, NULL, \
      NULL, NULL, NULL, NULL },

#define PROCESS_VALUE(name, type, help, fn, shown) \
    { SCOPE_PROCESS, NULL, name, type, help, fn, NULL, NULL, shown },

static const struct family families[] = {
    { SCOPE_PROCESS, NULL, "memring_build_info", "gauge",
      "memring's version, as a label", v_one, NULL,
      "{version=\"" MEMRING_VERSION "\"}", NULL },
    PROCESS_VALUE("memring_uptime_seconds", "gauge",
                  "Seconds since memring started", v_uptime, NULL)
    PROCESS_VALUE("memring_workers", "gauge", "Worker threads", v_workers,
                  NULL)
    PROCESS_VALUE("memring_reloads_total", "counter",
                  "Config reloads applied", v_reloads, has_reloads)
    PROCESS_VALUE("memring_reload_failures_total", "counter",
                  "Config reloads refused (bad file, or could not apply)",
                  v_reload_failures, has_reloads)
    PROCESS_VALUE("memring_admin_connections", "gauge",
                  "Open admin connections (this one included)",
                  v_admin_conns, NULL)
    PROCESS_VALUE("memring_admin_connections_total", "counter",
                  "Admin connections taken on", v_admin_served, NULL)
    PROCESS_VALUE("memring_admin_refused_total", "counter",
                  "Admin connections refused: too many open",
                  v_admin_refused, NULL)
    PROCESS_VALUE("memring_admin_bad_requests_total", "counter",
                  "Admin requests refused as malformed or too large",
                  v_admin_bad, NULL)
    PROCESS_VALUE("memring_admin_timeouts_total", "counter",
                  "Admin requests not sent, or replies not read, in time",
                  v_admin_timedout, NULL)

    POOL_METRICS(POOL_FAMILY)
    { SCOPE_POOL, NULL, "memring_pool_servers", "gauge",
      "Servers configured", v_pool_servers, NULL, NULL, NULL },
    { SCOPE_POOL, NULL, "memring_pool_live_servers", "gauge",
      "Servers neither ejected nor in connect backoff",
      v_pool_live_servers, NULL, NULL, NULL },
    { SCOPE_POOL, NULL, "memring_pool_healthy", "gauge",
      "1 when the pool has a live server (what /healthz checks)",
      v_pool_healthy, NULL, NULL, NULL },
    { SCOPE_POOL, NULL, "memring_pool_request_duration_seconds",
      "histogram", "Client request latency, parsed to reply sent", NULL,
      h_pool_latency, NULL, NULL },

    SERVER_METRICS(SERVER_FAMILY)
    { SCOPE_SERVER, NULL, "memring_server_ejected", "gauge",
      "1 while the server is off the ring", v_server_ejected, NULL, NULL,
      NULL },
    { SCOPE_SERVER, NULL, "memring_server_live", "gauge",
      "1 when the server is neither ejected nor in connect backoff",
      v_server_live, NULL, NULL, NULL },
    { SCOPE_SERVER, NULL, "memring_server_request_duration_seconds",
      "histogram", "Backend latency, request written to reply read", NULL,
      h_server_latency, NULL, NULL },
};

#define NFAMILIES (sizeof(families) / sizeof(families[0]))

/* ------------------------------------------------------------- writing */

/* A family's name, type and help, made from its field when it has one. */
struct head {
    char       name[128];
    const char *type;
    char       help[256];
};

static void
family_head(const struct family *f, struct head *h)
{
    const struct stats_field *fd = f->field;
    const char *name;

    if (fd == NULL) {
        snprintf(h->name, sizeof(h->name), "%s", f->name);
        h->type = f->type;
        snprintf(h->help, sizeof(h->help), "%s", f->help);
        return;
    }
    name = fd->name;
    if (f->scope == SCOPE_SERVER && strncmp(name, "server_", 7) == 0) {
        name += 7;
    }
    if (fd->type == STATS_COUNTER && strncmp(name, "total_", 6) == 0) {
        name += 6;
    }
    snprintf(h->name, sizeof(h->name), "memring_%s_%s%s",
             f->scope == SCOPE_SERVER ? "server" : "pool", name,
             fd->type == STATS_COUNTER ? "_total" :
             fd->type == STATS_TIMESTAMP ? "_seconds" : "");
    h->type = fd->type == STATS_COUNTER ? "counter" : "gauge";
    if (fd->type == STATS_TIMESTAMP) {
        /* the table's unit is usec; Prometheus wants seconds */
        snprintf(h->help, sizeof(h->help),
                 "%s, in seconds since the epoch (0: never)", fd->name);
    } else {
        snprintf(h->help, sizeof(h->help), "%s", fd->desc);
    }
}

/* "# HELP" and "# TYPE". A help text's leading "# " (a count marker in
 * twemproxy's descriptions) reads "Number of". */
static int
write_head(struct buf *b, const struct head *h)
{
    int err;

    if (strncmp(h->help, "# ", 2) == 0) {
        err = buf_printf(b, "# HELP %s Number of %s.\n", h->name,
                         h->help + 2);
    } else {
        err = buf_printf(b, "# HELP %s %s.\n", h->name, h->help);
    }
    return err != 0 ? err : buf_printf(b, "# TYPE %s %s\n", h->name,
                                       h->type);
}

/* us as decimal seconds, exactly: 2500 -> "0.0025", 5000000 -> "5". */
static void
format_seconds(char out[32], uint64_t us)
{
    char frac[8];
    int n;

    if (us % 1000000 == 0) {
        snprintf(out, 32, "%" PRIu64, us / 1000000);
        return;
    }
    snprintf(frac, sizeof(frac), "%06u", (unsigned)(us % 1000000));
    for (n = 6; n > 0 && frac[n - 1] == '0'; n--) {
    }
    snprintf(out, 32, "%" PRIu64 ".%.*s", us / 1000000, n, frac);
}

/* The sample's labels: {pool="..."[,server="..."]}, with more (a
 * bucket's ,le="...") before the closing brace when not NULL. */
static int
write_labels(struct buf *b, const struct sample *s, const char *more)
{
    int err = 0;

    err |= buf_append_str(b, "{pool=\"");
    err |= escape_prom_label(b, s->pool->ref->cp->name);
    if (s->server != NULL) {
        err |= buf_append_str(b, "\",server=\"");
        err |= escape_prom_label(b, s->server->ref->cs->name);
    }
    err |= buf_append_str(b, "\"");
    err |= buf_append_str(b, more != NULL ? more : "");
    err |= buf_append_str(b, "}");
    return err != 0 ? UV_ENOMEM : 0;
}

/* Cumulative buckets, then _sum (seconds) and _count. */
static int
write_hist(struct buf *b, const char *name, const struct sample *s,
           const struct stats_hist *h)
{
    char sec[32], le[48];
    uint64_t cum = 0;
    uint32_t i;
    int err = 0;

    for (i = 0; i < STATS_HIST_NBUCKETS; i++) {
        cum += h->buckets[i];
        if (i < STATS_HIST_NBOUNDS) {
            format_seconds(sec, stats_hist_bounds_us[i]);
        } else {
            snprintf(sec, sizeof(sec), "+Inf");
        }
        snprintf(le, sizeof(le), ",le=\"%s\"", sec);
        err |= buf_printf(b, "%s_bucket", name);
        err |= write_labels(b, s, le);
        err |= buf_printf(b, " %" PRIu64 "\n", cum);
    }
    format_seconds(sec, h->sum_us);
    err |= buf_printf(b, "%s_sum", name);
    err |= write_labels(b, s, NULL);
    err |= buf_printf(b, " %s\n%s_count", sec, name);
    err |= write_labels(b, s, NULL);
    err |= buf_printf(b, " %" PRIu64 "\n", h->count);
    return err != 0 ? UV_ENOMEM : 0;
}

/* One sample of family f, named name. */
static int
write_sample(struct buf *b, const struct family *f, const char *name,
             const struct sample *s)
{
    const void *stats;
    char sec[32];
    uint64_t v;
    int err;

    if (f->hist != NULL) {
        return write_hist(b, name, s, f->hist(s));
    }
    err = buf_append_str(b, name);
    if (f->scope == SCOPE_PROCESS) {
        err |= buf_append_str(b, f->labels != NULL ? f->labels : "");
    } else {
        err |= write_labels(b, s, NULL);
    }
    if (f->field == NULL) {
        v = f->value(s);
    } else {
        stats = f->scope == SCOPE_SERVER ? (const void *)&s->server->stats :
                (const void *)&s->pool->stats;
        v = stats_field_get(f->field, stats);
    }
    if (f->field != NULL && f->field->type == STATS_TIMESTAMP) {
        format_seconds(sec, v);
        err |= buf_printf(b, " %s\n", sec);
    } else {
        err |= buf_printf(b, " %" PRIu64 "\n", v);
    }
    return err != 0 ? UV_ENOMEM : 0;
}

/* Family f's head and one sample per process, pool or server. */
static int
write_family(struct buf *b, const struct family *f,
             const struct snapshot *snap, const struct metrics_source *src)
{
    struct sample s = { snap, src, NULL, NULL };
    struct head h;
    uint32_t pi, si;
    int err;

    if (f->shown != NULL && !f->shown(src)) {
        return 0;
    }
    family_head(f, &h);
    err = write_head(b, &h);
    if (f->scope == SCOPE_PROCESS) {
        return err != 0 ? err : write_sample(b, f, h.name, &s);
    }
    for (pi = 0; pi < snap->npools && err == 0; pi++) {
        s.pool = &snap->pools[pi];
        if (f->scope == SCOPE_POOL) {
            err = write_sample(b, f, h.name, &s);
            continue;
        }
        for (si = 0; si < s.pool->nservers && err == 0; si++) {
            s.server = &s.pool->servers[si];
            err = write_sample(b, f, h.name, &s);
        }
    }
    return err;
}

int
metrics_render(struct buf *b, const struct snapshot *s,
               const struct metrics_source *src)
{
    size_t i;
    int err = 0;

    for (i = 0; i < NFAMILIES && err == 0; i++) {
        err = write_family(b, &families[i], s, src);
    }
    return err;
}
