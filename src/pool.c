/*
 * pool: a configured pool inside one worker: listener, servers, ring.
 */
#include "memring/pool.h"

#include "memring/client.h"
#include "memring/conf.h"
#include "memring/hash.h"
#include "memring/log.h"
#include "memring/ring.h"
#include "memring/server.h"
#include "memring/worker.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int
resolve(const char *host, uint16_t port, struct sockaddr_storage *out)
{
    struct addrinfo hints, *res = NULL;
    char service[8];
    int err;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(service, sizeof(service), "%u", (unsigned)port);
    err = getaddrinfo(host, service, &hints, &res);
    if (err != 0 || res == NULL) {
        return UV_EAI_NONAME;
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

/* Builds the ring from the servers' names and weights. */
static int
pool_build_ring(struct pool *p)
{
    const struct conf_pool *cp = p->cp;
    struct ring_node *nodes;
    uint32_t i;

    nodes = calloc(cp->nservers, sizeof(*nodes));
    if (nodes == NULL) {
        return UV_ENOMEM;
    }
    for (i = 0; i < cp->nservers; i++) {
        nodes[i].name = cp->servers[i].name;
        nodes[i].name_len = strlen(cp->servers[i].name);
        nodes[i].weight = cp->servers[i].weight;
        nodes[i].live = !eject_is_ejected(&p->servers[i].eject);
    }
    ring_destroy(&p->ring);
    p->ring = ring_create(cp->distribution, nodes, cp->nservers);
    free(nodes);
    return p->ring != NULL ? 0 : UV_ENOMEM;
}

int
pool_init(struct pool *p, struct worker *w, const struct conf_pool *cp)
{
    uint32_t i;
    int err;

    memset(p, 0, sizeof(*p));
    p->w = w;
    p->cp = cp;
    p->nservers = cp->nservers;
    p->eject.auto_eject = cp->auto_eject_hosts;
    p->eject.failure_limit = cp->server_failure_limit > 0 ?
                             (uint32_t)cp->server_failure_limit : 1;
    p->eject.retry_ms = (uint64_t)cp->server_retry_timeout;
    p->servers = calloc(cp->nservers, sizeof(*p->servers));
    if (p->servers == NULL) {
        return UV_ENOMEM;
    }
    for (i = 0; i < cp->nservers; i++) {
        struct server *s = &p->servers[i];
        s->pool = p;
        s->idx = i;
        s->cs = &cp->servers[i];
        s->nconns = cp->server_connections > 0 ?
                    (uint32_t)cp->server_connections : 1;
        s->conns = calloc(s->nconns, sizeof(*s->conns));
        if (s->conns == NULL) {
            return UV_ENOMEM;
        }
        if (!s->cs->is_unix) {
            err = resolve(s->cs->host, s->cs->port, &s->addr);
            if (err != 0) {
                log_error("pool %s: server %s: cannot resolve '%s'",
                          cp->name, s->cs->name, s->cs->host);
                return err;
            }
        }
    }
    return pool_build_ring(p);
}

int
pool_listen(struct pool *p)
{
    const struct conf_pool *cp = p->cp;
    struct worker *w = p->w;
    int err;

    if (cp->listen.path != NULL) {
        /* twemproxy removes a stale socket file before binding, too. */
        unlink(cp->listen.path);
        uv_pipe_init(&w->loop, &p->listener.pipe, 0);
        err = uv_pipe_bind(&p->listener.pipe, cp->listen.path);
        if (err == 0 && cp->listen.perm != 0) {
            if (chmod(cp->listen.path, (mode_t)cp->listen.perm) != 0) {
                err = UV_EPERM;
            }
        }
    } else {
        struct sockaddr_storage addr;
        uv_tcp_init(&w->loop, &p->listener.tcp);
        err = resolve(cp->listen.host, cp->listen.port, &addr);
        if (err == 0) {
            err = uv_tcp_bind(&p->listener.tcp,
                              (const struct sockaddr *)&addr, 0);
        }
    }
    p->listener.handle.data = p;
    p->listening = true;
    if (err == 0) {
        err = uv_listen(&p->listener.stream, cp->backlog, client_accept_cb);
    }
    if (err != 0) {
        log_error("pool %s: listen on %s: %s", cp->name, cp->listen.text,
                  uv_strerror(err));
        return err;
    }
    log_notice("pool %s: listening on %s, %u servers, %s/%s", cp->name,
               cp->listen.text, cp->nservers, hash_name(cp->hash),
               dist_name(cp->distribution));
    if (cp->preconnect) {
        pool_preconnect(p);
    }
    return 0;
}

void
pool_preconnect(struct pool *p)
{
    uint32_t i;

    for (i = 0; i < p->nservers; i++) {
        server_connect_all(&p->servers[i]);
    }
}

void
pool_close(struct pool *p)
{
    uint32_t i;

    if (p->listening && !uv_is_closing(&p->listener.handle)) {
        uv_close(&p->listener.handle, NULL);
        if (p->cp->listen.path != NULL) {
            unlink(p->cp->listen.path);
        }
    }
    for (i = 0; i < p->nservers; i++) {
        server_close(&p->servers[i], "shutting down");
    }
}

void
pool_deinit(struct pool *p)
{
    uint32_t i;

    for (i = 0; p->servers != NULL && i < p->nservers; i++) {
        free(p->servers[i].conns);
    }
    free(p->servers);
    p->servers = NULL;
    ring_destroy(&p->ring);
}

/* Puts back ejected servers whose retry time has come; rebuilds. */
static void
pool_readmit(struct pool *p, uint64_t now)
{
    uint32_t i;

    p->next_rebuild = 0;
    for (i = 0; i < p->nservers; i++) {
        struct server *s = &p->servers[i];
        if (eject_readmit(&s->eject, now)) {
            log_notice("pool %s: server %s: back on the ring after %" PRId64
                       " ms", p->cp->name, s->cs->name,
                       p->cp->server_retry_timeout);
            s->stats.server_returns++;
            p->nejected--;
        } else if (eject_is_ejected(&s->eject) &&
                   (p->next_rebuild == 0 ||
                    s->eject.ejected_until < p->next_rebuild)) {
            p->next_rebuild = s->eject.ejected_until;
        }
    }
    if (pool_build_ring(p) != 0) {
        log_error("pool %s: ring rebuild: out of memory", p->cp->name);
    }
}

void
pool_server_failed(struct server *s)
{
    struct pool *p = s->pool;
    const struct conf_pool *cp = p->cp;

    s->stats.server_failures++;
    if (!eject_failure(&s->eject, &p->eject, uv_now(&p->w->loop))) {
        return;
    }
    s->stats.server_ejected_at = stats_now_usec();
    p->stats.server_ejects++;
    p->nejected++;
    if (p->next_rebuild == 0 || s->eject.ejected_until < p->next_rebuild) {
        p->next_rebuild = s->eject.ejected_until;
    }
    log_warn("pool %s: server %s: ejected, retry in %" PRId64 " ms",
             cp->name, s->cs->name, cp->server_retry_timeout);
    if (pool_build_ring(p) != 0) {
        log_error("pool %s: ring rebuild: out of memory", cp->name);
    }
}

void
pool_server_ok(struct server *s)
{
    eject_success(&s->eject);
}

struct server *
pool_route(struct pool *p, const char *key, size_t len)
{
    const struct conf_pool *cp = p->cp;
    int32_t idx;

    if (p->next_rebuild != 0) {
        uint64_t now = uv_now(&p->w->loop);
        if (now >= p->next_rebuild) {
            pool_readmit(p, now);
        }
    }
    if (p->nservers == 1) {
        return p->nejected == 0 ? &p->servers[0] : NULL;
    }
    hash_tag_slice(cp->hash_tag[0] != '\0' ? cp->hash_tag : NULL, &key, &len);
    idx = ring_lookup(p->ring, hash_key(cp->hash, key, len));
    return idx < 0 ? NULL : &p->servers[idx];
}
