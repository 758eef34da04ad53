/*
 * admin_stats: twemproxy's stats JSON, then memring's additions.
 */
#include "memring/admin_stats.h"

#include "memring/buf.h"
#include "memring/conf.h"
#include "memring/json.h"
#include "memring/pool.h"
#include "memring/reload.h"
#include "memring/snapshot.h"
#include "memring/stats.h"

#include <stdbool.h>
#include <string.h>

/* The fields twemproxy 0.5.0 prints, under their own names; everything
 * else in the tables is memring's and gets a "memring_" prefix. */
static const char *const twemproxy_pool_fields[] = {
    "client_eof", "client_err", "client_connections", "server_ejects",
    "forward_error", "fragments", NULL
};

static const char *const twemproxy_server_fields[] = {
    "server_eof", "server_err", "server_timedout", "server_connections",
    "server_ejected_at", "requests", "request_bytes", "responses",
    "response_bytes", "in_queue", "in_queue_bytes", "out_queue",
    "out_queue_bytes", NULL
};

/* The fields of one table, twemproxy's first, memring's after. */
struct field_list {
    const struct stats_field *tab;
    size_t                   n;
    const char *const        *twemproxy;
};

static const struct field_list pool_list = {
    stats_pool_fields, STATS_NPOOL_FIELDS, twemproxy_pool_fields
};

static const struct field_list server_list = {
    stats_server_fields, STATS_NSERVER_FIELDS, twemproxy_server_fields
};

static bool
is_twemproxy_field(const char *const *fields, const char *name)
{
    for (; *fields != NULL; fields++) {
        if (strcmp(*fields, name) == 0) {
            return true;
        }
    }
    return false;
}

/* Calls fn(arg, key, field) for every field of l, twemproxy's in table
 * order and then memring's with their "memring_" key. */
static void
each_field(const struct field_list *l,
           void (*fn)(void *arg, const char *key,
                      const struct stats_field *f),
           void *arg)
{
    char key[64];
    size_t i;
    int pass;

    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < l->n; i++) {
            const struct stats_field *f = &l->tab[i];
            if (is_twemproxy_field(l->twemproxy, f->name) != (pass == 0)) {
                continue;
            }
            snprintf(key, sizeof(key), "%s%s", pass == 0 ? "" : "memring_",
                     f->name);
            fn(arg, key, f);
        }
    }
}

static void
describe_line(FILE *f, const char *key, const char *desc)
{
    fprintf(f, "  %-28s\"%s\"\n", key, desc);
}

static void
describe_field(void *arg, const char *key, const struct stats_field *f)
{
    describe_line(arg, key, f->desc);
}

static void
describe_latency(FILE *f)
{
    describe_line(f, "memring_latency_count", "# requests timed");
    describe_line(f, "memring_latency_sum_us",
                  "total of their latencies in usec");
    describe_line(f, "memring_latency_p50_us",
                  "median latency in usec (bucket upper bound)");
    describe_line(f, "memring_latency_p90_us",
                  "90th percentile latency in usec (bucket upper bound)");
    describe_line(f, "memring_latency_p99_us",
                  "99th percentile latency in usec (bucket upper bound)");
}

void
admin_stats_describe(FILE *f)
{
    fprintf(f, "pool stats:\n");
    each_field(&pool_list, describe_field, f);
    describe_latency(f);
    fprintf(f, "\nserver stats:\n");
    each_field(&server_list, describe_field, f);
    describe_latency(f);
    describe_line(f, "memring_ejected", "1 while the server is off the ring");
    describe_line(f, "memring_live",
                  "1 when neither ejected nor in connect backoff");
}

/* each_field()'s argument when writing values. */
struct json_fields {
    struct json *j;
    const void  *stats;
};

static void
json_field(void *arg, const char *key, const struct stats_field *f)
{
    struct json_fields *jf = arg;

    json_u64(jf->j, key, stats_field_get(f, jf->stats));
}

static void
json_fields(struct json *j, const struct field_list *l, const void *stats)
{
    struct json_fields jf = { j, stats };

    each_field(l, json_field, &jf);
}

static void
json_latency(struct json *j, const struct stats_hist *h)
{
    json_u64(j, "memring_latency_count", h->count);
    json_u64(j, "memring_latency_sum_us", h->sum_us);
    json_u64(j, "memring_latency_p50_us", stats_hist_quantile(h, 0.50));
    json_u64(j, "memring_latency_p90_us", stats_hist_quantile(h, 0.90));
    json_u64(j, "memring_latency_p99_us", stats_hist_quantile(h, 0.99));
}

static void
json_pool(struct json *j, const struct snapshot_pool *sp)
{
    uint32_t si;

    json_open(j, sp->ref->cp->name, '{');
    json_fields(j, &pool_list, &sp->stats);
    json_latency(j, &sp->latency);
    for (si = 0; si < sp->nservers; si++) {
        const struct snapshot_server *ss = &sp->servers[si];
        json_open(j, ss->ref->cs->name, '{');
        json_fields(j, &server_list, &ss->stats);
        json_latency(j, &ss->latency);
        json_u64(j, "memring_ejected", ss->ejected);
        json_u64(j, "memring_live", ss->live);
        json_close(j, '}');
    }
    json_close(j, '}');
}

int
admin_stats_render(struct buf *b, const struct snapshot *s,
                   const struct admin_stats_source *src)
{
    uint64_t total = 0, curr = 0;
    struct json j;
    uint32_t pi, si;

    /* twemproxy counts every connection it holds; memring sums what its
     * counters know: clients accepted (total), clients + servers open. */
    for (pi = 0; pi < s->npools; pi++) {
        total += s->pools[pi].stats.total_connections;
        curr += s->pools[pi].stats.client_connections;
        for (si = 0; si < s->pools[pi].nservers; si++) {
            curr += s->pools[pi].servers[si].stats.server_connections;
        }
    }
    json_init(&j, b);
    json_open(&j, NULL, '{');
    json_str(&j, "service", "memring");
    json_str(&j, "source", src->host);
    json_str(&j, "version", MEMRING_VERSION);
    json_u64(&j, "uptime", (src->now_usec - src->started_usec) / 1000000);
    json_u64(&j, "timestamp", src->now_usec / 1000000);
    json_u64(&j, "total_connections", total);
    json_u64(&j, "curr_connections", curr);
    json_u64(&j, "memring_workers", s->nworkers);
    if (src->reloads != NULL) {
        json_u64(&j, "memring_reloads", src->reloads->reloads);
        json_u64(&j, "memring_reload_failures", src->reloads->failed);
    }
    for (pi = 0; pi < s->npools; pi++) {
        json_pool(&j, &s->pools[pi]);
    }
    json_close(&j, '}');
    return j.err != 0 ? j.err : buf_append(b, "\n", 1);
}
