/*
 * server: backend connections, request pipelining and reply matching.
 *
 * A connection keeps two FIFO queues. pending holds requests not yet
 * written; the worker's flusher writes all of them in one uv_write per loop
 * turn and moves them to inflight. Replies come back in the order requests
 * were written, so the head of inflight is always the request the next
 * reply unit belongs to. Any doubt about the stream (garbage, EOF, write
 * error) closes the connection and fails everything it held: a stream that
 * lost its framing can never be trusted again.
 */
#include "memring/server.h"

#include "memring/conf.h"
#include "memring/fanout.h"
#include "memring/health.h"
#include "memring/log.h"
#include "memring/mc_compose.h"
#include "memring/mc_parse.h"
#include "memring/split.h"
#include "memring/warmup.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCONN_READ_MIN    (16 * 1024)
#define SCONN_TAKE_MIN    (16 * 1024) /* smaller replies are just copied */
#define SCONN_BACKOFF_MIN 10      /* ms after the first failed connect */
#define SCONN_BACKOFF_MAX 1000    /* ms, the most a connect waits */

/* Why a connection ends; all but QUIET count toward ejection. */
enum sconn_end {
    SCONN_END_QUIET = 0,  /* our shutdown, or an idle conn the server closed */
    SCONN_END_EOF,        /* the server closed with requests outstanding */
    SCONN_END_ERROR       /* refused, reset, garbage, timeout ... */
};

static void sconn_shut(struct sconn *sc, enum server_fail why, int err,
                       enum sconn_end end);
static void sconn_backoff(struct server *s);
static void sconn_flush_cb(struct ioloop_task *t);

static const char *const fail_texts[SERVER_FAIL_COUNT] = {
    [SERVER_FAIL_IO] = "i/o error",
    [SERVER_FAIL_CONNECT] = "cannot connect to server",
    [SERVER_FAIL_CONNECT_TIMEOUT] = "connect timed out",
    [SERVER_FAIL_TIMEOUT] = "connection timed out",
    [SERVER_FAIL_CLOSED] = "connection closed by server",
    [SERVER_FAIL_INVALID] = "invalid reply from server",
    [SERVER_FAIL_UNEXPECTED] = "unexpected reply from server",
    [SERVER_FAIL_NOMEM] = "out of memory",
    [SERVER_FAIL_SHUTDOWN] = "shutting down",
    [SERVER_FAIL_DRAINED] = "drained",
};

const char *
server_fail_text(enum server_fail why, int err)
{
    if (why == SERVER_FAIL_IO && err != 0) {
        return uv_strerror(err);
    }
    return why < SERVER_FAIL_COUNT ? fail_texts[why] : "unknown failure";
}

static void
sconn_close(struct sconn *sc, enum server_fail why, int err)
{
    sconn_shut(sc, why, err, SCONN_END_ERROR);
}

static struct ioloop *
server_io(const struct server *s)
{
    return s->ctx->io;
}

/* ---------------------------------------------------------------------
 * Failure bookkeeping
 * ------------------------------------------------------------------- */

/* A request to s failed (connect, EOF, garbage): with auto_eject_hosts,
 * server_failure_limit failures in a row take s off the ring for
 * server_retry_timeout ms. */
static void
server_failed(struct server *s)
{
    const struct server_ctx *ctx = s->ctx;
    uint64_t now = uv_now(&server_io(s)->loop);

    STATS_BUMP(s->stats.server_failures, 1);
    if (!health_failure(s->health, &ctx->eject, now)) {
        return;
    }
    s->stats.server_ejected_at = stats_now_usec();
    STATS_BUMP(ctx->stats->server_ejects, 1);
    log_warn("pool %s: server %s: ejected, retry in %" PRId64 " ms",
             ctx->cp->name, s->cs->name, ctx->cp->server_retry_timeout);
    ctx->ejected(ctx->arg, s);
}

/* ---------------------------------------------------------------------
 * Completing requests
 * ------------------------------------------------------------------- */

/* r, off every queue, has its whole reply from s (or failed): hand it on.
 * Drops the caller's ref. */
static void
req_finish(struct server *s, struct req *r)
{
    if (!r->failed) {
        uint64_t now = server_io(s)->read_ns;
        health_success(s->health);
        STATS_BUMP(s->stats.responses, 1);
        stats_hist_add(&s->latency,
                       now > r->sent_ns ? (now - r->sent_ns) / 1000 : 0);
    }
    if (r->parent != NULL) {
        fanout_done(r);
        return;
    }
    if (r->noreply) {
        buf_reset(&r->reply);
    }
    req_done(r);
    req_put(&r);
}

/* ---------------------------------------------------------------------
 * Queues: each move keeps the server's queue gauges
 * ------------------------------------------------------------------- */

static void
queue_pending(struct sconn *sc, struct req *r)
{
    struct server_stats *st = &sc->server->stats;

    r->sconn = sc;
    TAILQ_INSERT_TAIL(&sc->pending, r, sq);
    STATS_BUMP(st->in_queue, 1);
    STATS_BUMP(st->in_queue_bytes, r->out.len);
}

/* The oldest pending request goes in flight (written, or failing). */
static struct req *
queue_pending_to_inflight(struct sconn *sc)
{
    struct server_stats *st = &sc->server->stats;
    struct req *r = TAILQ_FIRST(&sc->pending);

    if (r != NULL) {
        TAILQ_REMOVE(&sc->pending, r, sq);
        STATS_DROP(st->in_queue, 1);
        STATS_DROP(st->in_queue_bytes, r->out.len);
        STATS_BUMP(st->out_queue, 1);
        STATS_BUMP(st->out_queue_bytes, r->out.len);
        TAILQ_INSERT_TAIL(&sc->inflight, r, sq);
    }
    return r;
}

static void
queue_inflight_remove(struct sconn *sc, struct req *r)
{
    struct server_stats *st = &sc->server->stats;

    STATS_DROP(st->out_queue, 1);
    STATS_DROP(st->out_queue_bytes, r->out.len);
    TAILQ_REMOVE(&sc->inflight, r, sq);
    r->sconn = NULL;
}

/* r, first in sc's inflight queue, is complete. Drops the queue's ref. */
static void
req_complete(struct sconn *sc, struct req *r)
{
    queue_inflight_remove(sc, r);
    req_finish(sc->server, r);
    if (sc->draining && sc->state != SCONN_CLOSING &&
        TAILQ_EMPTY(&sc->inflight) && TAILQ_EMPTY(&sc->pending)) {
        sconn_shut(sc, SERVER_FAIL_DRAINED, 0, SCONN_END_QUIET);
    }
}

/* Marks r failed at s: the client will see SERVER_ERROR, or misses for a
 * fragment. */
static void
req_mark_failed(struct server *s, struct req *r, enum server_fail why,
                int err)
{
    char line[256];

    STATS_BUMP(s->ctx->stats->forward_error, 1);
    r->failed = true;
    if (r->parent != NULL) {
        snprintf(line, sizeof(line), "SERVER_ERROR %s",
                 server_fail_text(why, err));
        fanout_fail(r, line);
        return;
    }
    buf_reset(&r->reply);
    mc_compose_server_error(&r->reply, server_fail_text(why, err));
    r->done = true;
}

/* Fails r, first in sc's inflight queue. */
static void
req_fail(struct sconn *sc, struct req *r, enum server_fail why, int err)
{
    req_mark_failed(sc->server, r, why, err);
    req_complete(sc, r);
}

/* ---------------------------------------------------------------------
 * Reply parsing
 * ------------------------------------------------------------------- */

/*
 * True when key is one of the keys of r's request line at or after
 * r->frag_next (a byte offset into r->out; 0 = not started), in order, as
 * memcached answers them; advances past it. A server that answers with a
 * key it was not asked for has lost its framing.
 */
static bool
request_has_key(struct req *r, const char *key, size_t klen)
{
    const char *line = r->out.data;
    /* The line sent ends in \r\n (client.c writes it so); only spaces
     * separate keys, which may hold any other byte, \r included. */
    size_t end = r->out.len - 2, pos = r->frag_next;

    if (pos == 0) {
        /* skip the command, and gat's exptime */
        uint32_t skip = (r->cmd == MC_GAT || r->cmd == MC_GATS) ? 2 : 1;
        while (skip-- > 0) {
            while (pos < end && line[pos] != ' ') {
                pos++;
            }
            while (pos < end && line[pos] == ' ') {
                pos++;
            }
        }
    }
    while (pos < end && line[pos] == ' ') {
        pos++;
    }
    /* Each key in turn, compared before it is scanned: memcached answers
     * in the order asked, so the first one tried almost always matches. */
    while (pos < end) {
        if (end - pos >= klen && memcmp(line + pos, key, klen) == 0 &&
            (pos + klen == end || line[pos + klen] == ' ')) {
            r->frag_next = (uint32_t)(pos + klen);
            return true;
        }
        while (pos < end && line[pos] != ' ') {
            pos++;
        }
        while (pos < end && line[pos] == ' ') {
            pos++;
        }
    }
    return false;
}

/*
 * A quiet meta request (q) went out followed by "mn": what memcached sends
 * for it (nothing, or its one answer) comes before the MN that ends it.
 */
static int
sconn_quiet_unit(struct sconn *sc, struct req *r, const char *unit,
                 const struct mc_rsp *u)
{
    if (u->type == MC_RSP_LINE && u->word == MC_WORD_META_MN) {
        req_complete(sc, r);
        return 0;
    }
    if (buf_unread(&r->reply) > 0 || !mc_rsp_fits(r->cmd, u)) {
        return UV_EPROTO;   /* a second answer, or one that does not fit */
    }
    return buf_append(&r->reply, unit, u->len);
}

/* Handles one reply unit for the request at the head of inflight. */
static int
sconn_unit(struct sconn *sc, const char *unit, const struct mc_rsp *u)
{
    struct req *r = TAILQ_FIRST(&sc->inflight);

    if (r == NULL) {
        return UV_EPROTO;   /* a reply nobody asked for */
    }
    if (r->cmd == MC_META_GET || r->cmd == MC_META_ADD ||
        r->cmd == MC_META_CHUNK) {
        /* a warm-up lookup or copy, a split value's chunk: one answer
         * per key */
        int done = !mc_rsp_fits(r->cmd, u) ? UV_EPROTO :
                   r->cmd == MC_META_CHUNK ? split_unit(r, unit, u) :
                                             warmup_unit(r, unit, u);
        if (done == 1) {
            req_complete(sc, r);
        }
        return done < 0 ? done : 0;
    }
    if (r->quiet) {
        return sconn_quiet_unit(sc, r, unit, u);
    }
    if (mc_cmd_is_retrieval(r->cmd)) {
        switch (u->type) {
        case MC_RSP_VALUE:
            if (r->parent != NULL) {
                return fanout_value(r, unit, u);
            }
            if (!request_has_key(r, unit + u->key.off, u->key.len)) {
                return UV_EPROTO;
            }
            r->nhits++;
            if (r->key_strip > 0) {
                return mc_compose_value_unprefixed(&r->reply, unit, u,
                                                   r->key_strip,
                                                   r->strip_after_q);
            }
            return buf_append(&r->reply, unit, u->len);
        case MC_RSP_END:
            if (r->parent == NULL) {
                req_count_hits(r, r->nhits);
                if (buf_append(&r->reply, unit, u->len) != 0) {
                    return UV_ENOMEM;
                }
            }
            req_complete(sc, r);
            return 0;
        case MC_RSP_LINE:
            if (!u->is_error) {
                return UV_EPROTO;
            }
            break;
        case MC_RSP_META_VALUE:
            return UV_EPROTO;
        }
    } else if (!mc_rsp_fits(r->cmd, u)) {
        return UV_EPROTO;   /* a VALUE, or STORED to an incr... */
    }
    /* A one-line reply (or an error line ending a retrieval, or a meta
     * command's VA and its value). */
    if (r->parent != NULL) {
        fanout_line(r, unit, u);
    } else {
        buf_reset(&r->reply);
        if (buf_append(&r->reply, unit, u->len) != 0) {
            return UV_ENOMEM;
        }
    }
    req_complete(sc, r);
    return 0;
}

/*
 * A whole reply to a single-server retrieval that is all the read buffer
 * holds: hand the buffer itself to the request instead of copying the
 * values out of it (what large values cost most). True when it did.
 */
static bool
sconn_take_reply(struct sconn *sc, struct req *r)
{
    const char *head = buf_head(&sc->rbuf);
    size_t unread = buf_unread(&sc->rbuf), off = 0;
    uint32_t saved = r->frag_next, nhits = 0;
    struct mc_rsp u;
    struct buf tmp;

    if (r->parent != NULL || !mc_cmd_is_retrieval(r->cmd) ||
        r->key_strip > 0 || buf_unread(&r->reply) != 0 ||
        unread < SCONN_TAKE_MIN) {
        return false;
    }
    while (off < unread) {
        if (mc_parse_rsp(head + off, unread - off, &u) != PARSE_OK) {
            break;
        }
        if (u.type == MC_RSP_VALUE &&
            request_has_key(r, head + off + u.key.off, u.key.len)) {
            nhits++;
            off += u.len;
            continue;
        }
        if (u.type == MC_RSP_END && off + u.len == unread) {
            STATS_BUMP(sc->server->stats.response_bytes, unread);
            req_count_hits(r, nhits);
            tmp = r->reply;
            r->reply = sc->rbuf;
            sc->rbuf = tmp;
            buf_reset(&sc->rbuf);
            req_complete(sc, r);
            return true;
        }
        break;
    }
    r->frag_next = saved;       /* the usual path checks the keys again */
    return false;
}

static void
sconn_parse(struct sconn *sc)
{
    while (sc->state == SCONN_CONNECTED && buf_unread(&sc->rbuf) > 0) {
        struct req *head = TAILQ_FIRST(&sc->inflight);
        struct mc_rsp u;
        enum parse_status st;
        int err;

        if (head != NULL && sconn_take_reply(sc, head)) {
            continue;
        }
        st = mc_parse_rsp(buf_head(&sc->rbuf), buf_unread(&sc->rbuf), &u);
        if (st == PARSE_AGAIN) {
            /* A VALUE whose size is known: read it into one buffer of the
             * right size instead of growing by doubling. */
            sc->need = u.len;
            return;
        }
        sc->need = 0;
        if (st == PARSE_ERROR) {
            sconn_close(sc, SERVER_FAIL_INVALID, 0);
            return;
        }
        STATS_BUMP(sc->server->stats.response_bytes, u.len);
        err = sconn_unit(sc, buf_head(&sc->rbuf), &u);
        if (err != 0) {
            sconn_close(sc, err == UV_ENOMEM ? SERVER_FAIL_NOMEM :
                                               SERVER_FAIL_UNEXPECTED, 0);
            return;
        }
        buf_consume(&sc->rbuf, u.len);
    }
}

/* ---------------------------------------------------------------------
 * libuv callbacks
 * ------------------------------------------------------------------- */

static void
sconn_alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *out)
{
    struct sconn *sc = handle->data;

    (void)suggested;
    if (buf_reserve(&sc->rbuf, sc->need > buf_unread(&sc->rbuf) +
                               SCONN_READ_MIN ?
                               sc->need - buf_unread(&sc->rbuf) :
                               SCONN_READ_MIN) != 0) {
        *out = uv_buf_init(NULL, 0);
        return;
    }
    *out = uv_buf_init(sc->rbuf.data + sc->rbuf.len,
                       (unsigned int)(sc->rbuf.cap - sc->rbuf.len));
}

static void
sconn_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b)
{
    struct sconn *sc = stream->data;

    (void)b;
    if (sc->state != SCONN_CONNECTED || nread == 0) {
        return;
    }
    if (nread < 0) {
        bool idle = TAILQ_EMPTY(&sc->inflight) && TAILQ_EMPTY(&sc->pending);
        if (nread != UV_EOF) {
            sconn_close(sc, SERVER_FAIL_IO, (int)nread);
        } else {
            sconn_shut(sc, SERVER_FAIL_CLOSED, 0,
                       idle ? SCONN_END_QUIET : SCONN_END_EOF);
        }
        return;
    }
    sc->rbuf.len += (size_t)nread;
    server_io(sc->server)->read_ns = uv_hrtime();
    sconn_parse(sc);
}

/* Both handles (stream and timer) are closed before sc is freed. */
static void
sconn_close_cb(uv_handle_t *handle)
{
    struct sconn *sc = handle->data;

    if (--sc->nclosing > 0) {
        return;
    }
    buf_free(&sc->rbuf);
    free(sc);
}

static int64_t
sconn_timeout(const struct sconn *sc)
{
    return sc->server->ctx->cp->timeout;
}

/* Fires at the oldest inflight request's deadline (or the connect's). */
static void
sconn_timer_cb(uv_timer_t *timer)
{
    struct sconn *sc = timer->data;
    uint64_t now = uv_now(timer->loop);
    struct req *head;

    if (sc->state == SCONN_CLOSING) {
        return;
    }
    if (sc->state == SCONN_CONNECTING) {
        health_seen(sc->server->health, UV_ETIMEDOUT);
        sconn_close(sc, SERVER_FAIL_CONNECT_TIMEOUT, 0);
        return;
    }
    head = TAILQ_FIRST(&sc->inflight);
    if (head == NULL) {
        return;
    }
    if (now >= head->deadline) {
        /* The stream is out of step from here on: replies that arrive
         * late would be matched to the wrong requests. */
        STATS_BUMP(sc->server->stats.server_timedout, 1);
        sconn_close(sc, SERVER_FAIL_TIMEOUT, 0);
        return;
    }
    uv_timer_start(&sc->timer, sconn_timer_cb, head->deadline - now, 0);
}

/* Keeps the timer armed while requests are in flight. */
static void
sconn_arm(struct sconn *sc)
{
    struct req *head = TAILQ_FIRST(&sc->inflight);
    uint64_t now;

    if (head == NULL || sconn_timeout(sc) <= 0 ||
        uv_is_active((uv_handle_t *)&sc->timer)) {
        return;
    }
    now = uv_now(&server_io(sc->server)->loop);
    uv_timer_start(&sc->timer, sconn_timer_cb,
                   head->deadline > now ? head->deadline - now : 0, 0);
}

static void
sconn_write_cb(uv_write_t *wreq, int status)
{
    struct req_batch *b = wreq->data;
    struct sconn *sc = b->owner;

    req_batch_destroy(&b);
    if (status != 0 && sc->state != SCONN_CLOSING) {
        sconn_close(sc, SERVER_FAIL_IO, status);
    }
}

static void
sconn_connect_cb(uv_connect_t *creq, int status)
{
    struct sconn *sc = creq->data;
    struct server *s = sc->server;
    int err;

    if (sc->state != SCONN_CONNECTING) {
        return;
    }
    health_seen(s->health, status);
    if (status != 0) {
        log_warn("server %s: connect: %s", s->cs->name, uv_strerror(status));
        sconn_backoff(s);
        sconn_close(sc, SERVER_FAIL_IO, status);
        return;
    }
    sc->state = SCONN_CONNECTED;
    uv_timer_stop(&sc->timer);
    s->backoff = 0;
    s->retry_at = 0;
    err = uv_read_start(&sc->h.stream, sconn_alloc_cb, sconn_read_cb);
    if (err != 0) {
        sconn_close(sc, SERVER_FAIL_IO, err);
        return;
    }
    log_info("server %s: connected", s->cs->name);
    ioloop_flush_later(server_io(s), &sc->flush);
}

/* ---------------------------------------------------------------------
 * Connections
 * ------------------------------------------------------------------- */

/* After a failed connect, the next one waits: 10 ms, doubling to 1 s.
 * Requests meanwhile fail at once instead of hammering a dead server. */
static void
sconn_backoff(struct server *s)
{
    s->backoff = s->backoff == 0 ? SCONN_BACKOFF_MIN : s->backoff * 2;
    if (s->backoff > SCONN_BACKOFF_MAX) {
        s->backoff = SCONN_BACKOFF_MAX;
    }
    s->retry_at = uv_now(&server_io(s)->loop) + s->backoff;
}

static struct sconn *
sconn_open(struct server *s, uint32_t slot)
{
    uv_loop_t *loop = &server_io(s)->loop;
    struct sconn *sc;
    int err;

    sc = calloc(1, sizeof(*sc));
    if (sc == NULL) {
        return NULL;
    }
    sc->server = s;
    sc->slot = slot;
    sc->state = SCONN_CONNECTING;
    TAILQ_INIT(&sc->pending);
    TAILQ_INIT(&sc->inflight);
    ioloop_task_init(&sc->flush, sconn_flush_cb, IOLOOP_SERVERS);
    sc->connect_req.data = sc;
    uv_timer_init(loop, &sc->timer);
    sc->timer.data = sc;
    if (s->cs->is_unix) {
        uv_pipe_init(loop, &sc->h.pipe, 0);
        sc->h.handle.data = sc;
        uv_pipe_connect(&sc->connect_req, &sc->h.pipe, s->cs->host,
                        sconn_connect_cb);
        err = 0;
    } else {
        uv_tcp_init(loop, &sc->h.tcp);
        sc->h.handle.data = sc;
        uv_tcp_nodelay(&sc->h.tcp, 1);
        if (s->ctx->cp->tcpkeepalive) {
            uv_tcp_keepalive(&sc->h.tcp, 1, 60);
        }
        err = uv_tcp_connect(&sc->connect_req, &sc->h.tcp,
                             (const struct sockaddr *)&s->addr,
                             sconn_connect_cb);
    }
    s->conns[slot] = sc;
    TAILQ_INSERT_TAIL(&s->all, sc, all_link);
    STATS_BUMP(s->stats.server_connections, 1);
    if (err == 0 && s->ctx->cp->timeout > 0) {
        uv_timer_start(&sc->timer, sconn_timer_cb,
                       (uint64_t)s->ctx->cp->timeout, 0);
    }
    if (err != 0) {
        /* Counted as a failure like a refused connect; the caller fails
         * its request. */
        sconn_backoff(s);
        log_warn("server %s: connect: %s", s->cs->name, uv_strerror(err));
        sconn_close(sc, SERVER_FAIL_IO, err);
        return NULL;
    }
    return sc;
}

/* Fails every request sc holds, in request order: pending go behind
 * inflight (req_complete() takes requests off inflight only). */
static void
fail_queues(struct sconn *sc, enum server_fail why, int err)
{
    struct req *r;

    while (queue_pending_to_inflight(sc) != NULL) {
    }
    while ((r = TAILQ_FIRST(&sc->inflight)) != NULL) {
        req_fail(sc, r, why, err);
    }
}

/* Closes sc and fails what it held, in request order. */
static void
sconn_shut(struct sconn *sc, enum server_fail why, int err,
           enum sconn_end end)
{
    struct server *s = sc->server;

    if (sc->state == SCONN_CLOSING) {
        return;
    }
    if (!TAILQ_EMPTY(&sc->inflight) || !TAILQ_EMPTY(&sc->pending)) {
        log_warn("server %s: closing with requests in flight: %s",
                 s->cs->name, server_fail_text(why, err));
    } else {
        log_info("server %s: closed: %s", s->cs->name,
                 server_fail_text(why, err));
    }
    sc->state = SCONN_CLOSING;
    if (sc->slot != SCONN_DETACHED) {
        s->conns[sc->slot] = NULL;
    }
    TAILQ_REMOVE(&s->all, sc, all_link);
    STATS_DROP(s->stats.server_connections, 1);
    if (end != SCONN_END_QUIET) {
        if (end == SCONN_END_EOF) {
            STATS_BUMP(s->stats.server_eof, 1);
        } else {
            STATS_BUMP(s->stats.server_err, 1);
        }
        server_failed(s);
    }
    fail_queues(sc, why, err);
    ioloop_flush_cancel(server_io(s), &sc->flush);
    sc->server = NULL;
    sc->nclosing = 2;
    uv_close((uv_handle_t *)&sc->timer, sconn_close_cb);
    uv_close(&sc->h.handle, sconn_close_cb);
}

void
server_forward(struct server *s, struct req *r)
{
    uint32_t slot = s->next++ % s->nconns;
    struct sconn *sc = s->conns[slot];

    if (sc == NULL) {
        if (s->retry_at != 0 && uv_now(&server_io(s)->loop) < s->retry_at) {
            server_failed(s);
        } else {
            sc = sconn_open(s, slot);
        }
    }
    req_ref(r);
    if (sc == NULL) {
        /* Could not even start connecting: r fails now, which keeps its
         * place, as replies go out in the client's order anyway. */
        req_mark_failed(s, r, SERVER_FAIL_CONNECT, 0);
        req_finish(s, r);
        return;
    }
    queue_pending(sc, r);
    if (sc->state == SCONN_CONNECTED) {
        ioloop_flush_later(server_io(s), &sc->flush);
    }
}

void
server_connect_all(struct server *s)
{
    uint32_t i;

    for (i = 0; i < s->nconns; i++) {
        if (s->conns[i] == NULL) {
            sconn_open(s, i);
        }
    }
}

/* Writes everything pending on sc, once per loop turn. */
static void
sconn_flush_cb(struct ioloop_task *t)
{
    struct sconn *sc = (struct sconn *)((char *)t -
                                        offsetof(struct sconn, flush));
    struct ioloop *io;
    struct req_cache *rc;
    struct server_stats *st;
    struct req *r;
    uint64_t deadline, now_ns;
    uint32_t n = 0;
    bool queued;
    int err;

    if (sc->state != SCONN_CONNECTED || TAILQ_EMPTY(&sc->pending)) {
        return;
    }
    io = server_io(sc->server);
    rc = &io->reqs;
    TAILQ_FOREACH(r, &sc->pending, sq) {
        n++;
    }
    if (req_cache_wscratch(rc, n) != 0) {
        sconn_close(sc, SERVER_FAIL_NOMEM, 0);
        return;
    }
    st = &sc->server->stats;
    now_ns = uv_hrtime();
    deadline = uv_now(&io->loop) +
               (uint64_t)(sconn_timeout(sc) > 0 ? sconn_timeout(sc) : 0);
    n = 0;
    while ((r = queue_pending_to_inflight(sc)) != NULL) {
        r->deadline = deadline;
        r->sent_ns = now_ns;
        STATS_BUMP(st->requests, 1);
        STATS_BUMP(st->request_bytes, r->out.len);
        rc->wreqs[n] = r;
        rc->wbufs[n] = uv_buf_init(r->out.data, (unsigned int)r->out.len);
        n++;
    }
    err = req_write(&sc->h.stream, rc->wreqs, rc->wbufs, n, false, sc,
                    sconn_write_cb, &queued);
    if (err != 0) {
        sconn_close(sc, SERVER_FAIL_IO, err);
        return;
    }
    sconn_arm(sc);
}

void
server_close(struct server *s, enum server_fail why)
{
    struct sconn *sc;

    while ((sc = TAILQ_FIRST(&s->all)) != NULL) {
        sconn_shut(sc, why, 0, SCONN_END_QUIET);
    }
}

/* Detaches sc from its slot; it closes once it carries nothing. */
static void
sconn_drain(struct sconn *sc)
{
    struct server *s = sc->server;

    if (sc->slot != SCONN_DETACHED) {
        s->conns[sc->slot] = NULL;
        sc->slot = SCONN_DETACHED;
    }
    sc->draining = true;
    if (TAILQ_EMPTY(&sc->inflight) && TAILQ_EMPTY(&sc->pending)) {
        sconn_shut(sc, SERVER_FAIL_DRAINED, 0, SCONN_END_QUIET);
    }
}

void
server_drain(struct server *s)
{
    uint32_t i;

    for (i = 0; i < s->nconns; i++) {
        if (s->conns[i] != NULL) {
            sconn_drain(s->conns[i]);
        }
    }
}

void
server_resize(struct server *s, uint32_t nconns)
{
    struct sconn **conns;
    uint32_t i;

    conns = calloc(nconns, sizeof(*conns));
    if (conns == NULL) {
        log_error("server %s: resize: out of memory", s->cs->name);
        return;
    }
    for (i = 0; i < s->nconns; i++) {
        if (s->conns[i] == NULL) {
            continue;
        }
        if (i < nconns) {
            conns[i] = s->conns[i];
        } else {
            sconn_drain(s->conns[i]);
        }
    }
    free(s->conns);
    s->conns = conns;
    s->nconns = nconns;
    s->next = 0;
}

struct server *
server_create(const struct server_ctx *ctx, const struct conf_server *cs,
              uint32_t idx, uint32_t nconns)
{
    const struct conf_pool *cp = ctx->cp;
    struct server *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        return NULL;
    }
    s->ctx = ctx;
    s->idx = idx;
    s->cs = cs;
    s->live = true;     /* until the pool reads the shared state */
    TAILQ_INIT(&s->all);
    s->nconns = nconns;
    s->conns = calloc(s->nconns, sizeof(*s->conns));
    s->health = health_acquire(cp->name, s->cs);
    if (s->conns == NULL || s->health == NULL) {
        server_destroy(&s);
        return NULL;
    }
    if (!s->cs->is_unix &&
        net_resolve(s->cs->host, s->cs->port, &s->addr) != 0) {
        log_error("pool %s: server %s: cannot resolve '%s'", cp->name,
                  s->cs->name, s->cs->host);
        server_destroy(&s);
        return NULL;
    }
    return s;
}

void
server_destroy(struct server **sp)
{
    struct server *s = *sp;

    if (s != NULL) {
        *sp = NULL;
        health_release(&s->health);
        free(s->conns);
        free(s);
    }
}
