/*
 * admin_config: /config, from the config and a snapshot.
 */
#include "memring/admin_config.h"

#include "memring/buf.h"
#include "memring/conf.h"
#include "memring/hash.h"
#include "memring/json.h"
#include "memring/pool.h"
#include "memring/ring.h"
#include "memring/snapshot.h"

#include <time.h>

static void
json_ms(struct json *j, const char *key, int64_t ms)
{
    if (ms < 0) {
        json_null(j, key);      /* -1: none, as in the YAML's absence */
    } else {
        json_i64(j, key, ms);
    }
}

static void
json_conf_pool(struct json *j, const struct conf_pool *cp)
{
    json_str(j, "name", cp->name);
    json_str(j, "listen", cp->listen.text);
    json_str(j, "hash", hash_name(cp->hash));
    if (cp->hash_tag[0] != '\0') {
        json_str(j, "hash_tag", cp->hash_tag);
    } else {
        json_null(j, "hash_tag");
    }
    json_str(j, "distribution", dist_name(cp->distribution));
    json_str(j, "placement", ring_placement_name(cp->placement));
    if (cp->prefix.len > 0) {
        json_str(j, "prefix", cp->prefix.s);
    } else {
        json_null(j, "prefix");
    }
    json_ms(j, "timeout", cp->timeout);
    json_i64(j, "backlog", cp->backlog);
    json_bool(j, "preconnect", cp->preconnect);
    json_i64(j, "client_connections", cp->client_connections);
    json_i64(j, "server_connections", cp->server_connections);
    json_bool(j, "auto_eject_hosts", cp->auto_eject_hosts);
    json_ms(j, "server_retry_timeout", cp->server_retry_timeout);
    json_i64(j, "server_failure_limit", cp->server_failure_limit);
    json_bool(j, "tcpkeepalive", cp->tcpkeepalive);
    json_i64(j, "warmup_ms", cp->warmup_ms);
    json_i64(j, "split_values", cp->split_values);
}

/* Each worker has its own ring of the pool. */
static void
json_rings(struct json *j, const struct snapshot_pool *sp)
{
    uint32_t i;

    json_open(j, "ring", '[');
    for (i = 0; i < sp->nrings; i++) {
        const struct snapshot_ring *r = &sp->rings[i];
        json_open(j, NULL, '{');
        json_u64(j, "worker", r->worker);
        json_u64(j, "npoints", r->npoints);
        json_u64(j, "live_servers", r->live_servers);
        json_u64(j, "ejected_servers", r->ejected_servers);
        json_close(j, '}');
    }
    json_close(j, ']');
}

static void
json_server(struct json *j, const struct snapshot_server *ss)
{
    const struct conf_server *cs = ss->ref->cs;

    json_open(j, NULL, '{');
    json_str(j, "name", cs->name);
    json_str(j, "host", cs->host);
    if (cs->is_unix) {
        json_null(j, "port");
    } else {
        json_u64(j, "port", cs->port);
    }
    json_u64(j, "weight", cs->weight);
    json_bool(j, "alias", cs->has_alias);
    json_str(j, "text", cs->text);
    json_bool(j, "live", ss->live);
    json_bool(j, "ejected", ss->ejected);
    if (ss->ejected) {
        json_u64(j, "retry_in_ms", ss->retry_in_ms);
    } else {
        json_null(j, "retry_in_ms");
    }
    json_u64(j, "ejected_at", ss->stats.server_ejected_at);
    json_bool(j, "connect_backoff", ss->backoff);
    json_close(j, '}');
}

static void
json_pool(struct json *j, const struct snapshot_pool *sp)
{
    uint32_t si;

    json_open(j, NULL, '{');
    json_conf_pool(j, sp->ref->cp);
    json_rings(j, sp);
    json_open(j, "servers", '[');
    for (si = 0; si < sp->nservers; si++) {
        json_server(j, &sp->servers[si]);
    }
    json_close(j, ']');
    json_close(j, '}');
}

int
admin_config_render(struct buf *b, const struct snapshot *s,
                    uint64_t loaded_usec)
{
    time_t t = (time_t)(loaded_usec / 1000000);
    char when[32] = "";
    struct json j;
    struct tm tm;
    uint32_t pi;

    if (gmtime_r(&t, &tm) != NULL) {
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    json_init(&j, b);
    json_open(&j, NULL, '{');
    json_str(&j, "file", s->conf->path != NULL ? s->conf->path : "");
    json_u64(&j, "loaded_at", loaded_usec / 1000000);
    json_str(&j, "loaded_at_utc", when);
    json_str(&j, "version", MEMRING_VERSION);
    json_u64(&j, "workers", s->nworkers);
    json_open(&j, "pools", '[');
    for (pi = 0; pi < s->npools; pi++) {
        json_pool(&j, &s->pools[pi]);
    }
    json_close(&j, ']');
    json_close(&j, '}');
    return j.err != 0 ? j.err : buf_append(b, "\n", 1);
}
