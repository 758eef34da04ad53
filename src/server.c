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

#include "memring/client.h"
#include "memring/conf.h"
#include "memring/health.h"
#include "memring/log.h"
#include "memring/mc_parse.h"
#include "memring/pool.h"
#include "memring/worker.h"

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

static void sconn_shut(struct sconn *sc, const char *why, enum sconn_end end);
static void sconn_backoff(struct server *s);

static void
sconn_close(struct sconn *sc, const char *why)
{
    sconn_shut(sc, why, SCONN_END_ERROR);
}

static struct worker *
sconn_worker(const struct sconn *sc)
{
    return sc->server->pool->w;
}

/* ---------------------------------------------------------------------
 * Completing requests
 * ------------------------------------------------------------------- */

/*
 * A parent's last fragment is done. A retrieval's reply is not copied
 * together: the client writes the values, in the request's key order,
 * straight from the fragments' replies (p->gathered), so that a value is
 * copied once on its way through. Here the slots become that list: a
 * value that follows the previous one in the same fragment's reply joins
 * its slice, so that keys that went to one server cost one iovec.
 */
static void
parent_complete(struct req *p)
{
    struct req_slot *prev = NULL;
    uint32_t i;

    if (p->cmd == MC_FLUSH_ALL) {
        req_reply_line(p, p->first_error != NULL ? p->first_error : "OK");
    } else {
        struct pool_stats *st = &p->pool->stats;
        for (i = 0; i < p->nkeys; i++) {
            struct req_slot *s = &p->slots[i];
            if (s->frag == NULL) {
                st->get_misses++;
                continue;
            }
            st->get_hits++;
            if (prev != NULL && prev->frag == s->frag &&
                prev->off + prev->len == s->off) {
                prev->len += s->len;
                s->frag = NULL;
            } else {
                prev = s;
                p->nslices++;
            }
        }
        buf_reset(&p->reply);
        p->gathered = !p->noreply && p->client != NULL;
        p->done = true;
    }
    for (i = 0; i < p->nfrags; i++) {
        if (p->gathered) {
            /* p keeps its fragments for their bytes; they no longer need
             * p (their ref on it would be a cycle). p stays: the client's
             * queue holds it. */
            req_put(&p->frags[i]->parent);
        } else {
            req_put(&p->frags[i]);
        }
    }
    if (!p->gathered) {
        p->nfrags = 0;
    }
    if (p->noreply) {
        buf_reset(&p->reply);
    }
    if (p->client != NULL) {
        client_req_done(p);
    }
}

/* r, off every queue, has its whole reply from s (or failed): hand it on.
 * Drops the caller's ref. */
static void
req_finish(struct server *s, struct req *r)
{
    if (!r->failed) {
        uint64_t now = s->pool->w->read_ns;
        pool_server_ok(s);
        s->stats.responses++;
        stats_hist_add(&s->latency,
                       now > r->sent_ns ? (now - r->sent_ns) / 1000 : 0);
    }
    r->done = true;
    if (r->parent != NULL) {
        struct req *p = r->parent;
        if (--p->pending == 0) {
            parent_complete(p);
        }
    } else {
        if (r->noreply) {
            buf_reset(&r->reply);
        }
        if (r->client != NULL) {
            client_req_done(r);
        }
    }
    req_put(&r);
}

/* r, first in sc's inflight queue, is complete. Drops the queue's ref. */
static void
req_complete(struct sconn *sc, struct req *r)
{
    struct server_stats *st = &sc->server->stats;

    st->out_queue--;
    st->out_queue_bytes -= r->out.len;
    TAILQ_REMOVE(&sc->inflight, r, sq);
    r->sconn = NULL;
    req_finish(sc->server, r);
    if (sc->draining && sc->state != SCONN_CLOSING &&
        TAILQ_EMPTY(&sc->inflight) && TAILQ_EMPTY(&sc->pending)) {
        sconn_shut(sc, "drained", SCONN_END_QUIET);
    }
}

/* Marks r failed at s: the client will see SERVER_ERROR, or misses for a
 * fragment. */
static void
req_mark_failed(struct server *s, struct req *r, const char *why)
{
    char line[256];
    s->pool->stats.forward_error++;
    r->failed = true;
    snprintf(line, sizeof(line), "SERVER_ERROR %s", why);
    if (r->parent != NULL) {
        struct req *p = r->parent;
        if (p->cmd == MC_FLUSH_ALL) {
            if (p->first_error == NULL) {
                p->first_error = strdup(line);
            }
        } else {
            uint32_t i;
            /* The failed server's keys become misses; values already
             * received from it are dropped too, since its stream broke. */
            for (i = 0; i < r->frag_nkeys; i++) {
                struct req_slot *sl = &p->slots[r->frag_keys[i]];
                if (sl->frag == r) {
                    sl->frag = NULL;
                }
            }
        }
    } else {
        req_reply_line(r, line);
    }
}

/* Fails r, first in sc's inflight queue. */
static void
req_fail(struct sconn *sc, struct req *r, const char *why)
{
    req_mark_failed(sc->server, r, why);
    req_complete(sc, r);
}

/* ---------------------------------------------------------------------
 * Reply parsing
 * ------------------------------------------------------------------- */

/* A VALUE unit for fragment r: find which of its keys it answers. */
static int
fragment_value(struct req *r, const char *unit,
               const struct mc_rsp *u)
{
    struct req *p = r->parent;
    const char *key = unit + u->key.off;
    uint32_t j;

    for (j = r->frag_next; j < r->frag_nkeys; j++) {
        uint32_t k = r->frag_keys[j];
        const struct mc_span *ks = &p->keys[k];
        if (ks->len == u->key.len &&
            memcmp(p->line.data + ks->off, key, ks->len) == 0) {
            struct req_slot *s = &p->slots[k];
            s->frag = r;
            s->off = (uint32_t)r->reply.len;
            s->len = (uint32_t)u->len;
            r->frag_next = j + 1;
            return buf_append(&r->reply, unit, u->len);
        }
    }
    return UV_EPROTO;   /* a key it was not asked for */
}

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

/* Handles one reply unit for the request at the head of inflight. */
static int
sconn_unit(struct sconn *sc, const char *unit, const struct mc_rsp *u)
{
    struct req *r = TAILQ_FIRST(&sc->inflight);

    if (r == NULL) {
        return UV_EPROTO;   /* a reply nobody asked for */
    }
    if (mc_cmd_is_retrieval(r->cmd)) {
        switch (u->type) {
        case MC_RSP_VALUE:
            if (r->parent != NULL) {
                return fragment_value(r, unit, u);
            }
            if (!request_has_key(r, unit + u->key.off, u->key.len)) {
                return UV_EPROTO;
            }
            r->nhits++;
            return buf_append(&r->reply, unit, u->len);
        case MC_RSP_END:
            if (r->parent == NULL) {
                sc->server->pool->stats.get_hits += r->nhits;
                sc->server->pool->stats.get_misses += r->nkeys > r->nhits ?
                    r->nkeys - r->nhits : 0;
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
        }
    } else if (!mc_rsp_fits(r->cmd, u)) {
        return UV_EPROTO;   /* a VALUE, or STORED to an incr... */
    }
    /* A one-line reply (or an error line ending a retrieval). */
    if (r->parent != NULL) {
        struct req *p = r->parent;
        if (p->cmd == MC_FLUSH_ALL) {
            if (p->first_error == NULL &&
                !(u->len >= 2 && memcmp(unit, "OK", 2) == 0)) {
                p->first_error = strndup(unit, u->len - 2);
                if (p->first_error != NULL) {
                    p->first_error[strcspn(p->first_error, "\r\n")] = '\0';
                }
            }
        }
        /* a retrieval fragment answered with an error: its keys miss */
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
        buf_unread(&r->reply) != 0 || unread < SCONN_TAKE_MIN) {
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
            sc->server->stats.response_bytes += unread;
            sc->server->pool->stats.get_hits += nhits;
            sc->server->pool->stats.get_misses += r->nkeys > nhits ?
                                                  r->nkeys - nhits : 0;
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
            sconn_close(sc, "invalid reply from server");
            return;
        }
        sc->server->stats.response_bytes += u.len;
        err = sconn_unit(sc, buf_head(&sc->rbuf), &u);
        if (err != 0) {
            sconn_close(sc, err == UV_ENOMEM ? "out of memory" :
                                               "unexpected reply from server");
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
            sconn_shut(sc, uv_strerror((int)nread), SCONN_END_ERROR);
        } else {
            sconn_shut(sc, "connection closed by server",
                       idle ? SCONN_END_QUIET : SCONN_END_EOF);
        }
        return;
    }
    sc->rbuf.len += (size_t)nread;
    sconn_worker(sc)->read_ns = uv_hrtime();
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
    return sc->server->pool->cp->timeout;
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
        sconn_close(sc, "connect timed out");
        return;
    }
    head = TAILQ_FIRST(&sc->inflight);
    if (head == NULL) {
        return;
    }
    if (now >= head->deadline) {
        /* The stream is out of step from here on: replies that arrive
         * late would be matched to the wrong requests. */
        sc->server->stats.server_timedout++;
        sconn_close(sc, uv_strerror(UV_ETIMEDOUT));
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
    now = uv_now(&sc->server->pool->w->loop);
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
        sconn_close(sc, uv_strerror(status));
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
        sconn_close(sc, uv_strerror(status));
        return;
    }
    sc->state = SCONN_CONNECTED;
    uv_timer_stop(&sc->timer);
    s->backoff = 0;
    s->retry_at = 0;
    err = uv_read_start(&sc->h.stream, sconn_alloc_cb, sconn_read_cb);
    if (err != 0) {
        sconn_close(sc, uv_strerror(err));
        return;
    }
    log_info("server %s: connected", s->cs->name);
    worker_mark_sconn(sconn_worker(sc), sc);
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
    s->retry_at = uv_now(&s->pool->w->loop) + s->backoff;
}

static struct sconn *
sconn_open(struct server *s, uint32_t slot)
{
    struct worker *w = s->pool->w;
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
    sc->connect_req.data = sc;
    uv_timer_init(&w->loop, &sc->timer);
    sc->timer.data = sc;
    if (s->cs->is_unix) {
        uv_pipe_init(&w->loop, &sc->h.pipe, 0);
        sc->h.handle.data = sc;
        uv_pipe_connect(&sc->connect_req, &sc->h.pipe, s->cs->host,
                        sconn_connect_cb);
        err = 0;
    } else {
        uv_tcp_init(&w->loop, &sc->h.tcp);
        sc->h.handle.data = sc;
        uv_tcp_nodelay(&sc->h.tcp, 1);
        if (s->pool->cp->tcpkeepalive) {
            uv_tcp_keepalive(&sc->h.tcp, 1, 60);
        }
        err = uv_tcp_connect(&sc->connect_req, &sc->h.tcp,
                             (const struct sockaddr *)&s->addr,
                             sconn_connect_cb);
    }
    s->conns[slot] = sc;
    TAILQ_INSERT_TAIL(&s->all, sc, all_link);
    s->stats.server_connections++;
    if (err == 0 && s->pool->cp->timeout > 0) {
        uv_timer_start(&sc->timer, sconn_timer_cb,
                       (uint64_t)s->pool->cp->timeout, 0);
    }
    if (err != 0) {
        /* Counted as a failure like a refused connect; the caller fails
         * its request. */
        sconn_backoff(s);
        log_warn("server %s: connect: %s", s->cs->name, uv_strerror(err));
        sconn_close(sc, uv_strerror(err));
        return NULL;
    }
    return sc;
}

static void
fail_queue(struct sconn *sc, struct req_queue *q, const char *why)
{
    struct req *r;

    while ((r = TAILQ_FIRST(q)) != NULL) {
        if (q != &sc->inflight) {
            /* req_complete() takes requests off inflight only. */
            TAILQ_REMOVE(q, r, sq);
            TAILQ_INSERT_TAIL(&sc->inflight, r, sq);
            sc->server->stats.in_queue--;
            sc->server->stats.in_queue_bytes -= r->out.len;
            sc->server->stats.out_queue++;
            sc->server->stats.out_queue_bytes += r->out.len;
            continue;
        }
        req_fail(sc, r, why);
    }
}

/* Closes sc and fails what it held, in request order. */
static void
sconn_shut(struct sconn *sc, const char *why, enum sconn_end end)
{
    struct server *s = sc->server;

    if (sc->state == SCONN_CLOSING) {
        return;
    }
    if (!TAILQ_EMPTY(&sc->inflight) || !TAILQ_EMPTY(&sc->pending)) {
        log_warn("server %s: closing with requests in flight: %s",
                 s->cs->name, why);
    } else {
        log_info("server %s: closed: %s", s->cs->name, why);
    }
    sc->state = SCONN_CLOSING;
    if (sc->slot != SCONN_DETACHED) {
        s->conns[sc->slot] = NULL;
    }
    TAILQ_REMOVE(&s->all, sc, all_link);
    s->stats.server_connections--;
    if (end != SCONN_END_QUIET) {
        if (end == SCONN_END_EOF) {
            s->stats.server_eof++;
        } else {
            s->stats.server_err++;
        }
        pool_server_failed(s);
    }
    /* Pending go behind inflight so that all fail in request order. */
    fail_queue(sc, &sc->pending, why);
    fail_queue(sc, &sc->inflight, why);
    if (sc->dirty) {
        TAILQ_REMOVE(&s->pool->w->dirty_sconns, sc, dirty_link);
        sc->dirty = false;
    }
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
        if (s->retry_at != 0 && uv_now(&s->pool->w->loop) < s->retry_at) {
            pool_server_failed(s);
        } else {
            sc = sconn_open(s, slot);
        }
    }
    req_ref(r);
    if (sc == NULL) {
        /* Could not even start connecting: r fails now, which keeps its
         * place, as replies go out in the client's order anyway. */
        req_mark_failed(s, r, "cannot connect to server");
        req_finish(s, r);
        return;
    }
    r->sconn = sc;
    TAILQ_INSERT_TAIL(&sc->pending, r, sq);
    s->stats.in_queue++;
    s->stats.in_queue_bytes += r->out.len;
    if (sc->state == SCONN_CONNECTED) {
        worker_mark_sconn(s->pool->w, sc);
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

void
sconn_flush(struct sconn *sc)
{
    struct worker *w = sconn_worker(sc);
    struct server_stats *st;
    struct req *r;
    uint64_t deadline, now_ns;
    uint32_t n = 0;
    bool queued;
    int err;

    if (sc->state != SCONN_CONNECTED || TAILQ_EMPTY(&sc->pending)) {
        return;
    }
    TAILQ_FOREACH(r, &sc->pending, sq) {
        n++;
    }
    if (worker_wscratch(w, n) != 0) {
        sconn_close(sc, "out of memory");
        return;
    }
    st = &sc->server->stats;
    now_ns = uv_hrtime();
    deadline = uv_now(&w->loop) +
               (uint64_t)(sconn_timeout(sc) > 0 ? sconn_timeout(sc) : 0);
    n = 0;
    while ((r = TAILQ_FIRST(&sc->pending)) != NULL) {
        TAILQ_REMOVE(&sc->pending, r, sq);
        r->deadline = deadline;
        r->sent_ns = now_ns;
        st->in_queue--;
        st->in_queue_bytes -= r->out.len;
        st->out_queue++;
        st->out_queue_bytes += r->out.len;
        st->requests++;
        st->request_bytes += r->out.len;
        TAILQ_INSERT_TAIL(&sc->inflight, r, sq);
        w->wreqs[n] = r;
        w->wbufs[n] = uv_buf_init(r->out.data, (unsigned int)r->out.len);
        n++;
    }
    err = req_write(&sc->h.stream, w->wreqs, w->wbufs, n, false, sc,
                    sconn_write_cb, &queued);
    if (err != 0) {
        sconn_close(sc, uv_strerror(err));
        return;
    }
    sconn_arm(sc);
}

void
server_close(struct server *s, const char *why)
{
    struct sconn *sc;

    while ((sc = TAILQ_FIRST(&s->all)) != NULL) {
        sconn_shut(sc, why, SCONN_END_QUIET);
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
        sconn_shut(sc, "drained", SCONN_END_QUIET);
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
