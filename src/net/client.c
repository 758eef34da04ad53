/*
 * client: accept, parse, route, and reply in order.
 *
 * Every parsed request becomes a req on the client's outq, in arrival
 * order, whether it is answered locally (errors, version, stats), by one
 * server, or by several (multi-get fragments, flush_all). The flusher
 * writes the done reqs at the head of the outq in one uv_write and stops at
 * the first one still waiting, so replies never overtake each other.
 */
#include "memring/client.h"

#include "memring/bigval.h"
#include "memring/conf.h"
#include "memring/fanout.h"
#include "memring/log.h"
#include "memring/mc_compose.h"
#include "memring/mc_parse.h"
#include "memring/pool.h"
#include "memring/server.h"
#include "memring/split.h"
#include "memring/tally.h"
#include "memring/warm.h"

#include <inttypes.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define CLIENT_READ_MIN (16 * 1024)
#define CLIENT_DIRECT_MIN (4 * 1024)  /* partial bytes: read in place */
#define CLIENT_SCRATCH_READ (64 * 1024)

/*
 * A client that does not read its replies must cost little, as it does in
 * memcached, which stops reading a connection it cannot write to. memring
 * stops parsing a client's requests while more than CLIENT_UNSENT_PAUSE
 * bytes of its replies wait unsent, and resumes once half are gone. That
 * alone would still let the requests parsed before the socket filled up
 * (up to --client-requests-max) bring their replies in, so a client also
 * has a window of requests it may have unanswered: it starts at
 * CLIENT_WINDOW_MIN, grows by one for every reply the socket takes at once
 * while the client keeps up (doubling per round trip), halves when a
 * reply has to wait, and never passes --client-requests-max. "Keeps up"
 * is asked of the kernel, where replies are large (client_grow()): a
 * socket's send buffer grows to megabytes, and taking replies into it
 * says nothing of a client that never reads. The window holds 8 at first:
 * a slow reader of 100 KB values then costs well under a megabyte, and a
 * new connection's 16-deep pipeline takes one more round trip.
 */
#define CLIENT_UNSENT_PAUSE (256 * 1024)
#define CLIENT_WINDOW_MIN 8

/* What version answers. Clients (libmemcached among them) read the leading
 * major.minor.micro to decide what the server speaks, and refuse major 0;
 * memring speaks memcached 1.6's text protocol, so it says so first. */
#define CLIENT_VERSION "1.6.0-memring-" MEMRING_VERSION

/*
 * What every client on one loop borrows while it handles a read, so that
 * an idle client holds no memory for them: the read buffer (64 KiB), the
 * parser's key spans, and a multi-get's routes (key -> server, and a
 * count per server). Made on first use, freed by client_scratch_destroy().
 */
struct client_scratch {
    struct buf     read;
    struct mc_span *keys;
    uint32_t       *route;
    uint32_t       keys_cap;     /* ... of keys and route */
    uint32_t       *per_server;
    uint32_t       per_server_cap;
    struct buf     pline;        /* a retrieval with a pool's key prefix */
    struct mc_span *pkeys;       /* ... and its keys' spans */
    uint32_t       pkeys_cap;
};

static void client_req_done(struct req *r);
static void client_flush_cb(struct ioloop_task *t);
static void client_linger(struct client *c);

static struct client_scratch *
client_scratch(struct ioloop *io)
{
    struct client_scratch *cs = io->client_scratch;

    if (cs != NULL) {
        return cs;
    }
    cs = calloc(1, sizeof(*cs));
    if (cs == NULL) {
        return NULL;
    }
    cs->keys_cap = io->limits.get_keys_max;
    cs->keys = malloc(cs->keys_cap * sizeof(*cs->keys));
    cs->route = malloc(cs->keys_cap * sizeof(*cs->route));
    io->client_scratch = cs;
    if (cs->keys == NULL || cs->route == NULL) {
        client_scratch_destroy(io);
        return NULL;
    }
    return cs;
}

void
client_scratch_destroy(struct ioloop *io)
{
    struct client_scratch *cs = io->client_scratch;

    if (cs != NULL) {
        io->client_scratch = NULL;
        buf_free(&cs->read);
        free(cs->keys);
        free(cs->route);
        free(cs->per_server);
        buf_free(&cs->pline);
        free(cs->pkeys);
        free(cs);
    }
}

static void
client_mark(struct client *c)
{
    if (!c->closing) {
        ioloop_flush_later(c->io, &c->flush);
    }
}

/*
 * A quit was read, or c drains, and every reply it was owed is out: close
 * it. A paused client that drains still holds requests in its buffer,
 * which client_resume() parses first.
 */
static bool
client_close_if_done(struct client *c)
{
    if (!(c->quitting || (c->draining && !c->paused)) || c->nwrites > 0 ||
        !TAILQ_EMPTY(&c->outq)) {
        return false;
    }
    if (c->draining && !c->quitting && !c->eof) {
        client_linger(c);
    } else {
        client_close(c);
    }
    return true;
}

/* ---------------------------------------------------------------------
 * Local replies
 * ------------------------------------------------------------------- */

static struct req *
client_enqueue(struct client *c, enum mc_cmd cmd)
{
    struct req *r = req_create(&c->io->reqs, &c->pool->stats, cmd);

    if (r == NULL) {
        return NULL;
    }
    r->owner = c;
    r->on_done = client_req_done;
    r->start_ns = c->io->read_ns;
    TAILQ_INSERT_TAIL(&c->outq, r, cq);
    c->nqueued++;
    return r;
}

/* Brings c's share of tally_output_bytes to what its write queue holds. */
static void
client_count_unsent(struct client *c)
{
    uint64_t now = uv_stream_get_write_queue_size(&c->h.stream);

    if (now != c->unsent) {
        tally_output_bytes_change(c->unsent, now);
        c->unsent = now;
    }
}

/* Bytes in one of the kernel's queues of c's socket, or 0 when that
 * cannot be known: SIOCOUTQ, written to c and not yet read by it;
 * FIONREAD, sent by c and not yet read by memring. */
static size_t
client_kernel_queued(const struct client *c, unsigned long which)
{
    uv_os_fd_t fd;
    int n = 0;

    if (uv_fileno(&c->h.handle, &fd) != 0 || ioctl(fd, which, &n) != 0) {
        return 0;
    }
    return n > 0 ? (size_t)n : 0;
}

/* Takes the oldest request off c's outq; NULL when there is none. */
static struct req *
client_dequeue(struct client *c)
{
    struct req *r = TAILQ_FIRST(&c->outq);

    if (r != NULL) {
        TAILQ_REMOVE(&c->outq, r, cq);
        c->nqueued--;
    }
    return r;
}

/* Queues a reply that needs no server. NULL line: no reply (noreply). */
static int
client_reply_local(struct client *c, enum mc_cmd cmd, const char *line)
{
    struct req *r = client_enqueue(c, cmd);

    if (r == NULL) {
        return UV_ENOMEM;
    }
    r->done = true;
    if (line != NULL) {
        if (req_reply_line(r, line) != 0) {
            return UV_ENOMEM;
        }
    }
    client_mark(c);
    return 0;
}

/* The binary protocol's "unknown command" to binary request m, logged
 * once per connection: a binary client then fails fast and visibly. */
static int
client_reply_binary(struct client *c, const struct mc_req *m)
{
    struct req *r = client_enqueue(c, MC_UNKNOWN);
    char reply[MC_BINARY_ERROR_LEN];

    STATS_BUMP(c->pool->stats.request_binary, 1);
    if (!c->binary_seen) {
        c->binary_seen = true;
        log_warn("pool %s: client: binary protocol request (opcode 0x%02x): "
                 "not supported, answered 'unknown command'",
                 c->pool->cp->name, (unsigned int)m->bin_opcode);
    }
    if (r == NULL) {
        return UV_ENOMEM;
    }
    r->done = true;
    mc_binary_error(m, reply);
    if (buf_append(&r->reply, reply, sizeof(reply)) != 0) {
        return UV_ENOMEM;
    }
    client_mark(c);
    return 0;
}

/* This client's pool's counters, summed over every worker by whoever set
 * the loop's totals (snapshot.h, as the admin sums them); else its own. */
static void
client_pool_stats(const struct client *c, struct pool_stats *sum)
{
    const struct ioloop *io = c->io;

    if (io->totals == NULL ||
        io->totals(io->totals_arg, c->pool, sum) != 0) {
        *sum = c->pool->stats;
    }
}

/* memcached's "stats": memring's own counters for this client's pool. */
static int
client_stats(struct client *c)
{
    struct pool_stats sum;
    const struct pool_stats *s = &sum;
    struct req *r = client_enqueue(c, MC_STATS);
    struct buf *b;
    int err = 0;

    if (r == NULL) {
        return UV_ENOMEM;
    }
    client_pool_stats(c, &sum);
    b = &r->reply;
    err |= mc_compose_stat(b, "pid", (uint64_t)getpid());
    err |= mc_compose_stat(b, "uptime", ioloop_uptime(c->io));
    err |= mc_compose_stat(b, "time", (uint64_t)time(NULL));
    err |= mc_compose_stat_text(b, "version", CLIENT_VERSION);
    err |= mc_compose_stat(b, "pointer_size", (uint64_t)(8 * sizeof(void *)));
    /* memcached's name for the open connection count */
    err |= mc_compose_stat(b, "curr_connections", s->client_connections);
#define STATS_LINE(name, type, desc) err |= mc_compose_stat(b, #name, s->name);
    POOL_METRICS(STATS_LINE)
#undef STATS_LINE
    err |= buf_append_str(b, MC_END_LINE);
    r->done = true;
    client_mark(c);
    return err != 0 ? UV_ENOMEM : 0;
}

/* ---------------------------------------------------------------------
 * Forwarding
 * ------------------------------------------------------------------- */

static void
fail_no_server(struct client *c, struct req *r)
{
    STATS_BUMP(c->pool->stats.forward_error, 1);
    req_reply_line(r, "SERVER_ERROR no server available");
    if (r->noreply) {
        buf_reset(&r->reply);
    }
    client_mark(c);
}

/* "delete <key>" whose reply nobody sees: a req on the outq with noreply,
 * so that it keeps its place among the client's requests. */
static int
forward_silent_delete(struct client *c, const char *buf,
                      const struct mc_span *key)
{
    const struct mc_prefix *pfx = &c->pool->cp->prefix;
    char sk[MC_KEY_MAX];
    struct server *s;
    struct req *r;

    r = client_enqueue(c, MC_DELETE);
    if (r == NULL ||
        (pfx->len == 0 ?
         mc_compose_delete(&r->out, buf + key->off, key->len) :
         mc_compose_delete(&r->out, sk,
                           mc_prefix_key(pfx, buf + key->off, key->len,
                                         sk))) != 0) {
        return UV_ENOMEM;
    }
    r->noreply = true;
    s = pool_route(c->pool, buf + key->off, key->len);
    warm_forget(c->pool, &c->io->reqs, buf + key->off, key->len, s);
    if (s == NULL) {
        r->done = true;
        client_mark(c);
        return 0;
    }
    server_forward(s, r);
    return 0;
}

/* A single-key command (storage, delete, incr/decr, touch). */
static int
forward_keyed(struct client *c, const char *buf, const struct mc_req *m,
              const struct mc_span *key)
{
    const struct mc_prefix *pfx = &c->pool->cp->prefix;
    struct server *s;
    struct req *r;

    r = client_enqueue(c, m->cmd);
    if (r == NULL ||
        (pfx->len == 0 ?
         mc_compose_request(&r->out, buf, m) :
         mc_compose_request_prefixed(&r->out, buf, m, key, pfx)) != 0) {
        return UV_ENOMEM;
    }
    r->noreply = m->noreply;
    r->value_bytes = c->pending;        /* a storage command's count */
    c->pending = 0;
    s = pool_route(c->pool, buf + key->off, key->len);
    warm_forget(c->pool, &c->io->reqs, buf + key->off, key->len, s);
    if (s == NULL) {
        fail_no_server(c, r);
        return 0;
    }
    server_forward(s, r);
    return 0;
}

/* A set of a value over the pool's split_values: chunks and an index
 * (bigval.h), one reply. */
static int
forward_split_set(struct client *c, const char *buf, const struct mc_req *m,
                  const struct mc_span *key)
{
    struct server *s;
    struct req *r;
    int err;

    r = client_enqueue(c, m->cmd);
    if (r == NULL) {
        return UV_ENOMEM;
    }
    r->noreply = m->noreply;
    r->value_bytes = c->pending;
    c->pending = 0;
    s = pool_route(c->pool, buf + key->off, key->len);
    warm_forget(c->pool, &c->io->reqs, buf + key->off, key->len, s);
    err = s == NULL ? UV_EHOSTUNREACH : bigval_set(c->pool, r, buf, m, key);
    if (err != 0) {
        fanout_abort(r);
    }
    if (err == UV_EHOSTUNREACH) {
        fail_no_server(c, r);
        return 0;
    }
    return err;
}

/*
 * A retrieval of a pool with a key prefix, as its servers should get it:
 * the line with the prefix in every key, in cs->pline, described by pm;
 * buf, m and keys then point at those. p strips the prefix from the
 * VALUE keys.
 */
static int
prefix_retrieval(struct client_scratch *cs, const struct mc_prefix *pfx,
                 struct req *p, const char **buf, const struct mc_req **m,
                 const struct mc_span **keys, struct mc_req *pm)
{
    if (array_reserve(&cs->pkeys, &cs->pkeys_cap, (*m)->nkeys,
                      sizeof(*cs->pkeys)) != 0) {
        return UV_ENOMEM;
    }
    buf_reset(&cs->pline);
    if (mc_compose_retrieval_prefixed(&cs->pline, *buf, *m, *keys,
                                      cs->pkeys, pfx) != 0) {
        return UV_ENOMEM;
    }
    *pm = **m;
    pm->line_len = cs->pline.len;
    pm->total_len = pm->line_len;
    pm->text_len = pm->line_len - 2;    /* without its \r\n */
    *m = pm;
    *buf = cs->pline.data;
    *keys = cs->pkeys;
    p->key_strip = (uint32_t)pfx->len;
    p->strip_after_q = pfx->after_q;
    return 0;
}

/* get/gets/gat/gats: one server gets the line as it is (a pool with a key
 * prefix: with the prefix in each key); keys on several servers become
 * one fragment per server and a parent that merges (fanout.h). */
static int
forward_retrieval(struct client *c, const char *buf, const struct mc_req *m,
                  const struct mc_span *keys)
{
    struct client_scratch *cs = c->io->client_scratch;
    struct pool *pool = c->pool;
    struct server *first = NULL;
    bool split = false, warming = pool_warming(pool), warm = false;
    bool big = pool->cp->split_values > 0;
    struct mc_req pm;
    struct req *p;
    uint32_t i;

    if (m->cmd == MC_GAT || m->cmd == MC_GATS) {
        STATS_BUMP(pool->stats.cmd_touch, m->nkeys);
    }
    STATS_BUMP(pool->stats.cmd_get, m->nkeys);
    p = client_enqueue(c, m->cmd);
    if (p == NULL) {
        return UV_ENOMEM;
    }
    p->nkeys = m->nkeys;
    for (i = 0; i < m->nkeys; i++) {
        struct server *s = pool_route(pool, buf + keys[i].off, keys[i].len);
        if (s == NULL) {
            fail_no_server(c, p);
            return 0;
        }
        cs->route[i] = s->idx;
        if (first == NULL) {
            first = s;
        } else if (s != first) {
            split = true;
        }
        /* a key that moved in the window: misses get more rounds */
        warm = warm || (warming && pool_route_prev(pool, buf + keys[i].off,
                                                   keys[i].len, s) != NULL);
    }
    if (pool->cp->prefix.len > 0 &&
        prefix_retrieval(cs, &pool->cp->prefix, p, &buf, &m, &keys,
                         &pm) != 0) {
        return UV_ENOMEM;
    }
    if (!split && !warm && !big) {
        /* The line as memcached reads it, so that the reply's keys can be
         * matched against it (server.c): nothing past a NUL. */
        if (buf_append(&p->out, buf, m->text_len) != 0 ||
            mc_compose_eol(&p->out) != 0) {
            return UV_ENOMEM;
        }
        server_forward(first, p);
        return 0;
    }
    if (array_reserve(&cs->per_server, &cs->per_server_cap, pool->nservers,
                      sizeof(*cs->per_server)) != 0 ||
        fanout_split(p, buf, m, keys, cs->route, cs->per_server,
                     pool->nservers) != 0) {
        fanout_abort(p);
        return UV_ENOMEM;
    }
    if (warm || big) {
        /* big: any value may be an index item (bigval.h) */
        p->on_round = big ? bigval_round : warm_round;
        p->round_arg = pool;
        p->exptime = m->exptime;
    }
    STATS_BUMP(pool->stats.fragments, p->nfrags);
    for (i = 0; i < p->nfrags; i++) {
        server_forward(pool->servers[cs->per_server[i]], p->frags[i]);
    }
    return 0;
}

/*
 * A meta command (mg, ms, md, ma, me): one key, routed as a classic
 * command's (a b flag's base64 key decoded first), passed on as it is but
 * for its q flag: the server always answers, and what memcached would not
 * send in quiet mode is dropped here (server.c), so that every request
 * has its answer to wait for.
 */
static int
forward_meta(struct client *c, const char *buf, const struct mc_req *m,
             const struct mc_span *key)
{
    unsigned char decoded[MC_KEY_MAX];
    const char *rk = buf + key->off;
    size_t rlen = key->len;
    struct server *s;
    struct req *r;
    long n;

    STATS_BUMP(c->pool->stats.cmd_meta, 1);
    if (c->pool->cp->prefix.len > 0) {
        /* the key may come back in flags (k), even base64: not yet */
        STATS_BUMP(c->pool->stats.request_errors, 1);
        return client_reply_local(c, m->cmd, "SERVER_ERROR meta commands "
                                  "are not served in a pool with a prefix");
    }
    if (m->meta_b && (n = mc_base64_decode(rk, rlen, decoded)) > 0) {
        rk = (const char *)decoded;
        rlen = (size_t)n;
    }
    r = client_enqueue(c, m->cmd);
    if (r == NULL || mc_compose_meta_request(&r->out, buf, m) != 0) {
        return UV_ENOMEM;
    }
    r->quiet = m->meta_quiet;
    r->value_bytes = c->pending;
    c->pending = 0;
    s = pool_route(c->pool, rk, rlen);
    if (m->cmd != MC_MG && m->cmd != MC_ME) {
        warm_forget(c->pool, &c->io->reqs, rk, rlen, s);
    }
    if (s == NULL) {
        fail_no_server(c, r);
        return 0;
    }
    server_forward(s, r);
    return 0;
}

/* flush_all goes to every server of the pool; one reply for all. */
static int
forward_flush_all(struct client *c, const char *buf, const struct mc_req *m)
{
    struct pool *pool = c->pool;
    struct req *p;
    uint32_t i;

    STATS_BUMP(pool->stats.cmd_flush, 1);
    p = client_enqueue(c, MC_FLUSH_ALL);
    if (p == NULL) {
        return UV_ENOMEM;
    }
    p->noreply = m->noreply;
    if (fanout_flush_all(p, buf, m, pool->nservers) != 0) {
        fanout_abort(p);
        return UV_ENOMEM;
    }
    for (i = 0; i < p->nfrags; i++) {
        server_forward(pool->servers[i], p->frags[i]);
    }
    return 0;
}

static int
client_dispatch(struct client *c, const char *buf, const struct mc_req *m,
                const struct mc_span *keys)
{
    switch (m->cmd) {
    case MC_GET:
    case MC_GETS:
    case MC_GAT:
    case MC_GATS:
        return forward_retrieval(c, buf, m, keys);
    case MC_SET:
        STATS_BUMP(c->pool->stats.cmd_set, 1);
        if (bigval_splits(c->pool, m)) {
            return forward_split_set(c, buf, m, keys);
        }
        return forward_keyed(c, buf, m, keys);
    case MC_ADD:
    case MC_REPLACE:
    case MC_APPEND:
    case MC_PREPEND:
    case MC_CAS:
        STATS_BUMP(c->pool->stats.cmd_set, 1);
        return forward_keyed(c, buf, m, keys);
    case MC_TOUCH:
        STATS_BUMP(c->pool->stats.cmd_touch, 1);
        return forward_keyed(c, buf, m, keys);
    case MC_DELETE:
        STATS_BUMP(c->pool->stats.cmd_delete, 1);
        return forward_keyed(c, buf, m, keys);
    case MC_INCR:
    case MC_DECR:
        STATS_BUMP(c->pool->stats.cmd_incr_decr, 1);
        return forward_keyed(c, buf, m, keys);
    case MC_FLUSH_ALL:
        return forward_flush_all(c, buf, m);
    case MC_VERSION:
        STATS_BUMP(c->pool->stats.cmd_other, 1);
        return client_reply_local(c, m->cmd, "VERSION " CLIENT_VERSION);
    case MC_VERBOSITY:
        STATS_BUMP(c->pool->stats.cmd_other, 1);
        /* memring's own log level is set with -v; say OK like memcached. */
        return client_reply_local(c, m->cmd, m->noreply ? NULL : "OK");
    case MC_STATS:
        STATS_BUMP(c->pool->stats.cmd_other, 1);
        if (m->args.len > 0) {
            /* Sub-stats (items, slabs ...) describe one memcached server;
             * through a proxy there is no single answer to give. */
            STATS_BUMP(c->pool->stats.request_errors, 1);
            return client_reply_local(c, m->cmd, "ERROR");
        }
        return client_stats(c);
    case MC_QUIT:
        STATS_BUMP(c->pool->stats.cmd_other, 1);
        c->quitting = true;
        return client_reply_local(c, m->cmd, NULL);
    case MC_MG:
    case MC_MS:
    case MC_MD:
    case MC_MA:
    case MC_ME:
        return forward_meta(c, buf, m, keys);
    case MC_MN:
        /* replies go out in order: every earlier request is answered */
        STATS_BUMP(c->pool->stats.cmd_meta, 1);
        return client_reply_local(c, m->cmd, "MN");
    case MC_UNKNOWN:
    case MC_META_GET:
    case MC_META_ADD:
    case MC_META_CHUNK:
    case MC_CMD_COUNT:
        break;
    }
    STATS_BUMP(c->pool->stats.request_errors, 1);
    return client_reply_local(c, MC_UNKNOWN, "ERROR");
}

/*
 * Counts the value of storage request m (its header parsed, its data maybe
 * not yet in) against --pending-values-max: the values memring holds for
 * all clients together, from their header until their server has answered
 * (the req that forwards it takes the count over and gives it back when it
 * is freed). Without that, clients sending values slowly, or pipelining
 * them to a stalled server, could make memring hold any amount. Once per
 * request; false when there is no room.
 */
static bool
client_hold_value(struct client *c, const struct mc_req *m)
{
    if (c->pending > 0 || !mc_cmd_has_value(m->cmd) ||
        m->total_len <= m->line_len) {
        return true;
    }
    if (!tally_value_bytes_take(m->total_len,
                                c->io->limits.pending_values_max)) {
        return false;
    }
    c->pending = m->total_len;
    return true;
}

/* The request being received (counted in tally_value_bytes) was refused,
 * not forwarded, or the client has gone. */
static void
client_pending_done(struct client *c)
{
    if (c->pending > 0) {
        tally_value_bytes_give(c->pending);
        c->pending = 0;
    }
}

/*
 * Refuses the storage request m with memcached's line for it: like
 * memcached, the value is read and dropped, not held, so the connection
 * stays usable; refused as soon as the header is in, before the value is
 * buffered. 0, or an error after which c is closed.
 */
static int
refuse_value(struct client *c, const char *head, const struct mc_req *m,
             const struct mc_span *key, const char *line)
{
    int err = client_reply_local(c, m->cmd, m->noreply ? NULL : line);

    if (err == 0 && m->cmd == MC_SET) {
        /* memcached drops the old value when it refuses a set, so that a
         * reader never gets stale data. */
        err = forward_silent_delete(c, head, key);
    }
    c->swallow = m->total_len;
    if (err != 0) {
        client_close(c);
    }
    return err;
}

/*
 * Too many of c's requests are unanswered (a slow or stalled server, a
 * client pipelining without end), or too many of its reply bytes unsent
 * (a client that does not read): stop reading it until half of them are
 * answered or sent. Its bytes then wait in the kernel, and TCP slows the
 * sender down, rather than memring holding requests and replies without
 * bound. Nothing is refused; what was already read stays buffered and is
 * parsed on resume.
 */
static void
client_pause(struct client *c)
{
    if (!c->paused) {
        c->paused = true;
        STATS_BUMP(c->pool->stats.client_paused, 1);
        uv_read_stop(&c->h.stream);
    }
}

/* The smallest window: CLIENT_WINDOW_MIN, or --client-requests-max when
 * that is less. */
static uint32_t
client_window_min(const struct client *c)
{
    uint32_t max = c->io->limits.requests_max;

    return CLIENT_WINDOW_MIN < max ? CLIENT_WINDOW_MIN : max;
}

static bool
client_full(const struct client *c)
{
    return c->nqueued >= c->window || c->unsent > CLIENT_UNSENT_PAUSE;
}

/* A paused client may be read again: half of what paused it is gone. */
static bool
client_may_resume(const struct client *c)
{
    return c->paused && !c->closing && !c->quitting &&
           c->nqueued <= c->window / 2 && c->unsent <= CLIENT_UNSENT_PAUSE / 2;
}

static void client_resume(struct client *c);

/* Drops n parsed (or refused) bytes; the next request starts after them. */
static void
client_consume(struct client *c, struct buf *in, size_t n)
{
    buf_consume(in, n);
    memset(&c->scan, 0, sizeof(c->scan));
}

/* Parses and dispatches every complete request in the read buffer (all
 * but those past its window, which wait for client_resume). */
static void
client_parse(struct client *c, struct buf *in)
{
    struct client_scratch *cs = client_scratch(c->io);

    if (cs == NULL) {
        log_error("client: out of memory");
        client_close(c);
        return;
    }
    while (!c->closing && !c->quitting && buf_unread(in) > 0) {
        const char *head = buf_head(in);
        struct mc_req m;
        enum parse_status st;
        int err;

        if (client_full(c)) {
            client_pause(c);
            break;
        }
        if (c->swallow > 0) {
            /* the rest of a value refused, or of a request not served */
            size_t n = buf_unread(in) < c->swallow ? buf_unread(in) :
                                                     (size_t)c->swallow;
            client_consume(c, in, n);
            c->swallow -= n;
            continue;
        }
        st = mc_parse_req_scan(head, buf_unread(in), &m, cs->keys,
                               cs->keys_cap,
                               MC_KEY_MAX - c->pool->cp->prefix.len,
                               &c->scan);
        if (st == PARSE_ERROR && m.bad_chunk) {
            /* The server answers it as memcached would: a value over its
             * item size is refused before the block's end is looked at. */
            st = PARSE_OK;
        }
        if (st != PARSE_ERROR && mc_cmd_has_value(m.cmd) &&
            m.total_len > m.line_len &&
            (m.vlen > c->io->limits.item_size_max ||
             (bigval_splits(c->pool, &m) &&
              m.vlen > split_value_max(c->pool->cp->split_values)))) {
            STATS_BUMP(c->pool->stats.request_too_large, 1);
            if (refuse_value(c, head, &m, cs->keys,
                             "SERVER_ERROR object too large for cache") != 0) {
                return;
            }
            continue;
        }
        if (st != PARSE_ERROR && !client_hold_value(c, &m)) {
            STATS_BUMP(c->pool->stats.request_no_memory, 1);
            if (refuse_value(c, head, &m, cs->keys, "SERVER_ERROR out of "
                             "memory storing object") != 0) {
                return;
            }
            continue;
        }
        if (st == PARSE_AGAIN) {
            break;
        }
        if (st == PARSE_ERROR) {
            STATS_BUMP(c->pool->stats.request_errors, 1);
            err = m.binary ? client_reply_binary(c, &m) :
                             client_reply_local(c, MC_UNKNOWN, m.error);
            client_consume(c, in, m.skip);
            c->swallow = m.swallow;
            if (m.close) {
                c->quitting = true;
            }
        } else {
            err = client_dispatch(c, head, &m, cs->keys);
            client_consume(c, in, m.total_len);
        }
        client_pending_done(c);     /* unless the req took it over */
        if (err != 0) {
            log_error("client: %s", uv_strerror(err));
            client_close(c);
            return;
        }
    }
    if (c->quitting) {
        buf_reset(in);
        client_mark(c);
    }
}

/* ---------------------------------------------------------------------
 * libuv callbacks
 * ------------------------------------------------------------------- */

static void
client_alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *out)
{
    struct client *c = handle->data;

    (void)suggested;
    /* Reads land in the loop's scratch buffer: an idle connection then
     * holds no read memory at all, and one with half a request holds just
     * those bytes. Only a large value in progress is read straight into
     * the client's own buffer, to copy it once, not twice. */
    if (buf_unread(&c->rbuf) < CLIENT_DIRECT_MIN &&
        client_scratch(c->io) != NULL) {
        struct buf *scratch = &c->io->client_scratch->read;
        buf_reset(scratch);
        if (buf_reserve(scratch, CLIENT_SCRATCH_READ) == 0) {
            *out = uv_buf_init(scratch->data, (unsigned int)scratch->cap);
            return;
        }
    }
    if (buf_reserve(&c->rbuf, CLIENT_READ_MIN) != 0) {
        *out = uv_buf_init(NULL, 0);    /* read_cb then sees UV_ENOBUFS */
        return;
    }
    *out = uv_buf_init(c->rbuf.data + c->rbuf.len,
                       (unsigned int)(c->rbuf.cap - c->rbuf.len));
}

static void
client_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b)
{
    struct client *c = stream->data;
    struct buf *scratch;

    if (c->closing || nread == 0) {
        return;
    }
    if (c->lingering) {
        if (nread < 0) {
            client_close(c);    /* its EOF (or an error): all is said */
        }
        return;                 /* bytes sent after the drain: dropped */
    }
    if (nread == UV_EOF) {
        /* A half-close (shutdown(SHUT_WR), nc -N): the client still reads,
         * and is owed a reply to every request it sent. */
        STATS_BUMP(c->pool->stats.client_eof, 1);
        if (!TAILQ_EMPTY(&c->outq) || c->nwrites > 0) {
            STATS_BUMP(c->pool->stats.client_half_closed, 1);
        }
        c->eof = true;
        client_drain(c);
        return;
    }
    if (nread < 0) {
        log_info("client: read: %s", uv_strerror((int)nread));
        STATS_BUMP(c->pool->stats.client_err, 1);
        client_close(c);
        return;
    }
    if (c->quitting) {
        return;                 /* bytes after quit are ignored */
    }
    c->last_active = uv_now(&c->io->loop);
    c->io->read_ns = uv_hrtime();
    scratch = c->io->client_scratch != NULL ? &c->io->client_scratch->read :
                                              NULL;
    if (scratch != NULL && b->base == scratch->data &&
        buf_unread(&c->rbuf) == 0) {
        scratch->len = (size_t)nread;
        client_parse(c, scratch);
        if (buf_unread(scratch) > 0 && !c->closing &&
            buf_append(&c->rbuf, buf_head(scratch), buf_unread(scratch)) != 0) {
            client_close(c);
        }
        buf_reset(scratch);
        return;
    }
    if (scratch != NULL && b->base == scratch->data) {
        /* the rest of a request begun in an earlier read */
        int err = buf_append(&c->rbuf, b->base, (size_t)nread);
        buf_reset(scratch);
        if (err != 0) {
            client_close(c);
            return;
        }
    } else {
        c->rbuf.len += (size_t)nread;
    }
    client_parse(c, &c->rbuf);
    if (!c->closing && buf_unread(&c->rbuf) == 0) {
        buf_free(&c->rbuf);     /* back to holding nothing while idle */
    }
}

static void
client_close_cb(uv_handle_t *handle)
{
    struct client *c = handle->data;

    c->io->freed += c->rbuf.cap;
    buf_free(&c->rbuf);
    free(c);
}

static void
client_write_cb(uv_write_t *wreq, int status)
{
    struct req_batch *b = wreq->data;
    struct client *c = b->owner;

    req_batch_destroy(&b);
    c->nwrites--;
    if (c->closing) {
        return;
    }
    client_count_unsent(c);
    if (status != 0) {
        log_info("client: write: %s", uv_strerror(status));
        STATS_BUMP(c->pool->stats.client_err, 1);
        client_close(c);
        return;
    }
    if (client_close_if_done(c)) {
        return;
    }
    if (client_may_resume(c)) {
        client_resume(c);
    }
}

/* A request of c's has its reply: c flushes when it is the oldest. */
static void
client_req_done(struct req *r)
{
    struct client *c = r->owner;

    if (c != NULL && !c->closing && r == TAILQ_FIRST(&c->outq)) {
        client_mark(c);
    }
}

/*
 * Replies from earlier turns are still unsent past --client-output-max,
 * or past --pending-output-max over all clients: c sends and does not
 * read (fast enough). Rather than hold its replies without bound, let it
 * go (memcached would stop reading it, which leaves it hanging instead):
 * true when c was closed. One big reply alone does not trip the first; a
 * client that keeps up (nothing left unsent) never trips the second.
 */
static bool
client_behind(struct client *c)
{
    const struct limits *l = &c->io->limits;
    size_t unsent = uv_stream_get_write_queue_size(&c->h.stream);

    if (unsent == 0 || (unsent <= l->output_max &&
                        tally_output_bytes() <= l->pending_output_max)) {
        return false;
    }
    log_warn("pool %s: client not reading its replies (%zu bytes unsent, "
             "%" PRIu64 " for all clients): closing", c->pool->cp->name,
             unsent, tally_output_bytes());
    STATS_BUMP(c->pool->stats.client_overflow, 1);
    client_close(c);
    return true;
}

/* Half of a paused client's requests are answered: parse what it had
 * buffered, then read it again unless that filled it up once more. */
static void
client_resume(struct client *c)
{
    int err;

    c->paused = false;
    client_parse(c, &c->rbuf);
    if (c->closing || c->quitting || c->paused) {
        return;
    }
    if (buf_unread(&c->rbuf) == 0) {
        buf_free(&c->rbuf);
    }
    if (c->draining) {
        client_close_if_done(c);    /* what is left is no whole request */
        return;
    }
    err = uv_read_start(&c->h.stream, client_alloc_cb, client_read_cb);
    if (err != 0) {
        log_warn("pool %s: client: read: %s", c->pool->cp->name,
                 uv_strerror(err));
        client_close(c);
    }
}

/* The socket took c's n replies (bytes in all) at once: let c have n
 * more requests unanswered, unless replies of that size could pile up
 * past CLIENT_UNSENT_PAUSE in a window that large and the kernel says c
 * is not reading what it was sent (asked only then: small replies cannot
 * pile up to much, and the question is a system call). */
static void
client_grow(struct client *c, uint32_t n, size_t bytes)
{
    uint32_t max = c->io->limits.requests_max;
    uint32_t next = c->window + n < max ? c->window + n : max;

    if (bytes / n * next > CLIENT_UNSENT_PAUSE &&
        client_kernel_queued(c, SIOCOUTQ) > CLIENT_UNSENT_PAUSE) {
        return;
    }
    c->window = next;
}

/* Writes the replies at the head of c's outq that are ready, in order. */
static void
client_write_ready(struct client *c)
{
    struct req_cache *rc = &c->io->reqs;
    const struct limits *l = &c->io->limits;
    struct req *r;
    uint64_t now;
    uint32_t i, n = 0, nbufs = 0;
    size_t bytes = 0;
    bool quit = false, queued;
    int err;

    if (c->closing) {
        return;
    }
    TAILQ_FOREACH(r, &c->outq, cq) {
        if (!r->done) {
            break;
        }
        n++;
        nbufs += r->gathered ? fanout_iov_count(r) : 1;
        if (r->cmd == MC_QUIT) {
            break;
        }
    }
    if (n == 0) {
        client_close_if_done(c);
        return;
    }
    if (client_behind(c)) {
        return;
    }
    if (req_cache_wscratch(rc, nbufs) != 0) {
        client_close(c);
        return;
    }
    now = uv_hrtime();
    c->last_active = uv_now(&c->io->loop); /* the idle clock runs from here */
    nbufs = 0;
    for (i = 0; i < n; i++) {
        r = client_dequeue(c);
        stats_hist_add(&c->pool->latency, (now - r->start_ns) / 1000);
        if (r->cmd == MC_QUIT) {
            quit = true;
        }
        if (r->gathered) {
            nbufs += fanout_iov(r, rc->wreqs + nbufs, rc->wbufs + nbufs);
            continue;
        }
        /* The outq's ref goes to req_write(). */
        rc->wreqs[nbufs] = r;
        rc->wbufs[nbufs++] = uv_buf_init(buf_head(&r->reply),
                                         (unsigned int)buf_unread(&r->reply));
    }
    if (quit) {
        /* Requests after quit are never answered (memcached drops them). */
        while ((r = client_dequeue(c)) != NULL) {
            r->owner = NULL;
            req_put(&r);
        }
    }
    if (c->window < l->requests_max) {
        for (i = 0; i < nbufs; i++) {
            bytes += rc->wbufs[i].len;  /* req_write() changes wbufs */
        }
    }
    err = req_write(&c->h.stream, rc->wreqs, rc->wbufs, nbufs, true, c,
                    client_write_cb, &queued);
    if (err != 0) {
        STATS_BUMP(c->pool->stats.client_err, 1);
        client_close(c);
        return;
    }
    if (queued) {
        uint32_t least = client_window_min(c);

        c->window = c->window / 2 > least ? c->window / 2 : least;
    } else if (c->window < l->requests_max) {
        client_grow(c, n, bytes);
    }
    if (!queued) {
        client_close_if_done(c);
        return;
    }
    c->nwrites++;
    client_count_unsent(c);
}

/* Writes the replies that are ready, in order; once per loop turn. */
static void
client_flush_cb(struct ioloop_task *t)
{
    struct client *c = (struct client *)((char *)t -
                                         offsetof(struct client, flush));

    client_write_ready(c);
    if (client_may_resume(c)) {
        client_resume(c);
    }
}

void
client_drain(struct client *c)
{
    if (c->closing || c->draining) {
        return;
    }
    uv_read_stop(&c->h.stream);
    c->draining = true;
    client_close_if_done(c);
}

static void
client_shutdown_cb(uv_shutdown_t *req, int status)
{
    struct client *c = req->data;

    free(req);
    if (!c->closing && status != 0) {
        client_close(c);
    }
}

/*
 * c drained and owes nothing. Closing a socket that holds unread bytes
 * resets the connection, and the reset drops replies the kernel has not
 * delivered yet: a client still sending first gets a FIN after its
 * replies, and what it sends is read and dropped until its EOF (or the
 * shutdown deadline). One with nothing unread is closed now.
 */
static void
client_linger(struct client *c)
{
    uv_shutdown_t *shut;
    int err;

    if (client_kernel_queued(c, FIONREAD) == 0) {
        client_close(c);
        return;
    }
    c->lingering = true;
    c->paused = false;
    client_pending_done(c);
    c->io->freed += c->rbuf.cap;
    buf_free(&c->rbuf);
    /* Made here, not kept in every client: only a drain lingers. */
    shut = malloc(sizeof(*shut));
    if (shut == NULL) {
        client_close(c);
        return;
    }
    shut->data = c;
    err = uv_shutdown(shut, &c->h.stream, client_shutdown_cb);
    if (err != 0) {
        free(shut);             /* no callback comes for it */
    } else {
        err = uv_read_start(&c->h.stream, client_alloc_cb, client_read_cb);
    }
    if (err != 0) {
        client_close(c);
    }
}

void
client_close(struct client *c)
{
    struct req *r;

    if (c->closing) {
        return;
    }
    c->closing = true;
    client_pending_done(c);
    tally_output_bytes_change(c->unsent, 0);
    c->unsent = 0;
    STATS_DROP(c->pool->stats.client_connections, 1);
    if (c->counted) {
        tally_give(c->pool->tally);
    }
    /* Requests still at servers finish there and are dropped. */
    while ((r = client_dequeue(c)) != NULL) {
        r->owner = NULL;
        req_put(&r);
    }
    ioloop_flush_cancel(c->io, &c->flush);
    TAILQ_REMOVE(&c->io->clients, c, link);
    uv_close(&c->h.handle, client_close_cb);
    if (TAILQ_EMPTY(&c->io->clients) && c->io->clients_gone != NULL) {
        c->io->clients_gone(c->io->clients_gone_arg);
    }
}

/* Counts c against --max-clients and its pool's client_connections, over
 * every worker; false when that would pass either. */
static bool
client_count(struct client *c)
{
    int per_pool = c->pool->cp->client_connections;

    c->counted = tally_take(c->pool->tally,
                            per_pool > 0 ? (uint32_t)per_pool : 0,
                            c->io->limits.max_clients);
    return c->counted;
}

void
client_accept_cb(uv_stream_t *listener, int status)
{
    struct pool *pool = listener->data;
    struct ioloop *io = pool->env.io;
    struct client *c;
    int err;

    if (status != 0) {
        log_warn("pool %s: accept: %s", pool->cp->name, uv_strerror(status));
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        log_error("pool %s: accept: out of memory", pool->cp->name);
        return;
    }
    c->pool = pool;
    c->io = io;
    ioloop_task_init(&c->flush, client_flush_cb, IOLOOP_CLIENTS);
    c->window = client_window_min(c);
    c->last_active = uv_now(&io->loop);
    TAILQ_INIT(&c->outq);
    if (pool->cp->listen.path != NULL) {
        uv_pipe_init(&io->loop, &c->h.pipe, 0);
    } else {
        uv_tcp_init(&io->loop, &c->h.tcp);
    }
    c->h.handle.data = c;
    TAILQ_INSERT_TAIL(&io->clients, c, link);
    STATS_BUMP(pool->stats.client_connections, 1);
    STATS_BUMP(pool->stats.total_connections, 1);
    err = uv_accept(listener, &c->h.stream);
    if (err == 0 && !client_count(c)) {
        /* memcached's words when it is out of connections; the line is
         * small enough for the socket buffer, so try_write is enough. */
        static const char msg[] = "ERROR Too many open connections\r\n";
        uv_buf_t b = uv_buf_init((char *)msg, sizeof(msg) - 1);
        uv_try_write(&c->h.stream, &b, 1);
        STATS_BUMP(pool->stats.client_refused, 1);
        client_close(c);
        return;
    }
    if (err == 0) {
        if (pool->cp->listen.path == NULL) {
            uv_tcp_nodelay(&c->h.tcp, 1);
        }
        err = uv_read_start(&c->h.stream, client_alloc_cb, client_read_cb);
    }
    if (err != 0) {
        log_warn("pool %s: accept: %s", pool->cp->name, uv_strerror(err));
        client_close(c);
    }
}

void
client_drain_pool(struct ioloop *io, const struct pool *p)
{
    struct client *c, *next;

    for (c = TAILQ_FIRST(&io->clients); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        if (p == NULL || c->pool == p) {
            client_drain(c);
        }
    }
}

void
client_close_all(struct ioloop *io)
{
    struct client *c;

    while ((c = TAILQ_FIRST(&io->clients)) != NULL) {
        client_close(c);
    }
}

/* A sweep once a second costs O(clients) per second instead of a timer
 * per client. */
void
client_close_idle(struct ioloop *io, uint64_t timeout_ms)
{
    uint64_t now = uv_now(&io->loop);
    struct client *c, *next;

    for (c = TAILQ_FIRST(&io->clients); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        if (TAILQ_EMPTY(&c->outq) && c->nwrites == 0 &&
            now - c->last_active >= timeout_ms) {
            STATS_BUMP(c->pool->stats.client_idle_closed, 1);
            client_close(c);
        }
    }
}
