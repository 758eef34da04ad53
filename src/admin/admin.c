/*
 * admin: the HTTP endpoint (llhttp) on the stats port: its connections,
 * reading requests, routing them, and framing the replies. The documents
 * are other modules' (admin_stats, metrics, admin_health, admin_config),
 * each rendered from one snapshot of the counters (snapshot.h), taken here
 * on the loop that also applies reloads.
 *
 * A connection's life:
 *
 *   accept ──> WAITING ──first bytes──> READING ──request──> WRITING
 *                 │ (grace, or EOF)        │ (bad/slow: 4xx)     │
 *                 └──> twemproxy JSON ─────┴─────────────────────┤
 *                                                                v
 *                  close <── EOF or timer <── LINGERING <── shutdown (FIN)
 *
 * Every phase has a timer, so a slow or silent client costs one slot (out
 * of ADMIN_MAX_CONNS) for a bounded time and never blocks the loop.
 */
#include "memring/admin.h"

#include "memring/admin_config.h"
#include "memring/admin_health.h"
#include "memring/admin_page.h"
#include "memring/admin_stats.h"
#include "memring/buf.h"
#include "memring/conf.h"
#include "memring/log.h"
#include "memring/metrics.h"
#include "memring/net.h"
#include "memring/ring_tool.h"
#include "memring/snapshot.h"
#include "memring/stats.h"
#include "memring/worker.h"

#include <llhttp.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>

#define ADMIN_RBUF_SIZE 4096

enum admin_phase {
    ADMIN_WAITING = 0,  /* accepted, nothing read yet */
    ADMIN_READING,      /* a request has started */
    ADMIN_WRITING,      /* the reply is being written */
    ADMIN_LINGERING     /* reply sent and FIN sent; draining until EOF */
};

/* One admin connection. Owned by its admin's list until both handles have
 * closed; freed in admin_conn_close_cb(). */
struct admin_conn {
    uv_tcp_t                tcp;
    uv_timer_t              timer;       /* the current phase's deadline */
    uv_write_t              wreq;
    uv_shutdown_t           sreq;
    struct admin            *admin;
    struct admin_http       http;        /* the request being read */
    enum admin_phase        phase;
    uint64_t                deadline;    /* loop ms: whole request by then */
    bool                    counted;     /* holds one of ADMIN_MAX_CONNS */
    bool                    closing;
    uint32_t                nclosing;    /* handles whose close_cb is due */
    char                    *out;        /* the reply being written */
    char                    rbuf[ADMIN_RBUF_SIZE];
    TAILQ_ENTRY(admin_conn) link;
};

TAILQ_HEAD(admin_conn_list, admin_conn);

struct admin {
    uv_loop_t              *loop;
    struct worker          **workers;   /* [0] names the pools and servers */
    uint32_t               nworkers;
    uv_tcp_t               listener;
    bool                   listening;
    bool                   closed;
    struct admin_conn_list conns;       /* every open or closing conn */
    uint32_t               nconns;      /* of which are served (not refused) */
    uint64_t               nserved;     /* connections taken on */
    uint64_t               nrefused;    /* over ADMIN_MAX_CONNS */
    uint64_t               nbad;        /* requests refused: 400 413 414 500 */
    uint64_t               ntimedout;   /* 408s and replies not taken */
    uint64_t               started_usec;
    uint64_t               conf_loaded_usec;
    admin_reload_fn        reload;      /* POST /reload, or NULL: 501 */
    void                   *reload_arg;
    const struct reload_stats *reload_stats; /* or NULL */
    char                   host[256];   /* "source" in twemproxy's JSON */
    char                   token[ADMIN_TOKEN_MAX + 1]; /* "": none wanted */
};

/* ---------------------------------------------------------------------
 * Routing
 * ------------------------------------------------------------------- */

#define TYPE_JSON "application/json"
#define TYPE_HTML "text/html; charset=utf-8"
#define TYPE_TEXT "text/plain; charset=utf-8"
#define TYPE_PROM "text/plain; version=0.0.4; charset=utf-8"

enum admin_route {
    ROUTE_STATS = 0,
    ROUTE_METRICS,
    ROUTE_HEALTHZ,
    ROUTE_CONFIG,
    ROUTE_RELOAD,
    ROUTE_RING_DIFF,
    ROUTE_PAGE,
    ROUTE_NONE
};

/* "guarded": behind the token when one is set. /config shows every
 * server address; the POSTs change or load the config. */
static const struct {
    const char       *path;
    enum admin_route route;
    bool             post;     /* POST only, else GET and HEAD */
    bool             guarded;
} routes[] = {
    { "/",          ROUTE_PAGE,      false, false },
    { "/stats",     ROUTE_STATS,     false, false },
    { "/metrics",   ROUTE_METRICS,   false, false },
    { "/healthz",   ROUTE_HEALTHZ,   false, false },
    { "/config",    ROUTE_CONFIG,    false, true },
    { "/reload",    ROUTE_RELOAD,    true,  true },
    { "/ring/diff", ROUTE_RING_DIFF, true,  true },
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

static int
reply_text(struct admin_reply *r, struct buf *b, int status,
           const char *text)
{
    r->status = status;
    r->type = TYPE_TEXT;
    return buf_append_str(b, text);
}

/*
 * POST /ring/diff[?pool=P][&sample=N]: `memring ring diff` of the running
 * config against the one in the body. It runs on the admin's loop, which
 * worker 0's clients share: the sample is capped so that a request costs
 * a few tens of milliseconds (100,000 keys by default).
 */
#define ADMIN_DIFF_SAMPLE_DEFAULT 100000
#define ADMIN_DIFF_SAMPLE_MAX     1000000

/* The value of name in path's query, copied into out (at most outlen - 1
 * bytes, no %-decoding: pool names are plain); false when absent. */
static bool
query_value(const char *path, const char *name, char *out, size_t outlen)
{
    const char *q = strchr(path, '?');
    size_t nlen = strlen(name);

    while (q != NULL) {
        const char *v = q + 1;
        size_t vlen;

        if (strncmp(v, name, nlen) == 0 && v[nlen] == '=') {
            v += nlen + 1;
            vlen = strcspn(v, "&#");
            if (vlen >= outlen) {
                vlen = outlen - 1;
            }
            memcpy(out, v, vlen);
            out[vlen] = '\0';
            return true;
        }
        q = strchr(v, '&');
    }
    return false;
}

static int
respond_ring_diff(struct admin *a, const char *path, const char *body,
                  size_t body_len, struct admin_reply *r, struct buf *b)
{
    char err[CONF_ERR_LEN + 64], pool[256], num[32];
    unsigned long long sample = ADMIN_DIFF_SAMPLE_DEFAULT;
    bool has_pool = query_value(path, "pool", pool, sizeof(pool));
    struct conf *proposed;
    char *report = NULL;
    size_t report_len = 0;
    FILE *out;
    int rc;

    if (query_value(path, "sample", num, sizeof(num))) {
        char *end;

        sample = strtoull(num, &end, 10);
        if (*end != '\0' || sample == 0 || sample > ADMIN_DIFF_SAMPLE_MAX) {
            return reply_text(r, b, 400, "ring diff: sample: expected 1 to "
                              "1000000 keys\n");
        }
    }
    if (body == NULL || body_len == 0) {
        return reply_text(r, b, 400, "ring diff: send the proposed config "
                          "(YAML) as the request body\n");
    }
    proposed = conf_parse(body, body_len, "request body", err, sizeof(err));
    if (proposed == NULL) {
        r->status = 400;
        r->type = TYPE_TEXT;
        return buf_append_str(b, err) != 0 ? UV_ENOMEM : buf_append(b, "\n", 1);
    }
    out = open_memstream(&report, &report_len);
    if (out == NULL) {
        conf_destroy(&proposed);
        return UV_ENOMEM;
    }
    rc = ring_tool_diff(out, a->workers[0]->conf, proposed,
                        has_pool ? pool : NULL, NULL, sample, err,
                        sizeof(err));
    fclose(out);
    conf_destroy(&proposed);
    r->type = TYPE_TEXT;
    if (rc != 0) {
        free(report);
        r->status = 400;
        return buf_append_str(b, err) != 0 ? UV_ENOMEM : buf_append(b, "\n", 1);
    }
    r->status = 200;
    rc = buf_append(b, report, report_len);
    free(report);
    return rc;
}

static int
respond_reload(struct admin *a, struct admin_reply *r, struct buf *b)
{
    char msg[4096] = "";
    int err;

    if (a->reload == NULL) {
        return reply_text(r, b, 501, "reload: not available in this build\n");
    }
    r->type = TYPE_TEXT;
    r->status = a->reload(a->reload_arg, msg, sizeof(msg)) == 0 ? 200 : 500;
    err = buf_append_str(b, msg);
    if (err == 0 && (b->len == 0 || b->data[b->len - 1] != '\n')) {
        err = buf_append(b, "\n", 1);
    }
    return err;
}

static int
render_stats(struct admin *a, const struct snapshot *snap, struct buf *b)
{
    const struct admin_stats_source src = {
        .host = a->host,
        .now_usec = stats_now_usec(),
        .started_usec = a->started_usec,
        .reloads = a->reload_stats,
    };

    return admin_stats_render(b, snap, &src);
}

static int
render_metrics(struct admin *a, const struct snapshot *snap, struct buf *b)
{
    const struct metrics_source src = {
        .now_usec = stats_now_usec(),
        .started_usec = a->started_usec,
        .reloads = a->reload_stats,
        .admin_conns = a->nconns,
        .admin_served = a->nserved,
        .admin_refused = a->nrefused,
        .admin_bad = a->nbad,
        .admin_timedout = a->ntimedout,
    };

    return metrics_render(b, snap, &src);
}

/* A document (GET or HEAD), rendered from one snapshot of the counters. */
static int
respond_doc(struct admin *a, enum admin_route route, struct admin_reply *r,
            struct buf *b)
{
    struct snapshot snap;
    int err = snapshot_take(&snap, a->workers, a->nworkers);

    if (err != 0) {
        return err;
    }
    r->status = 200;
    r->type = route == ROUTE_METRICS ? TYPE_PROM :
              route == ROUTE_HEALTHZ ? TYPE_TEXT : TYPE_JSON;
    if (route == ROUTE_STATS) {
        err = render_stats(a, &snap, b);
    } else if (route == ROUTE_METRICS) {
        err = render_metrics(a, &snap, b);
    } else if (route == ROUTE_HEALTHZ) {
        err = admin_health_render(b, &snap, &r->status);
    } else {
        err = admin_config_render(b, &snap, a->conf_loaded_usec);
    }
    snapshot_free(&snap);
    return err;
}

/* Whether two strings are equal, in time that depends on their lengths
 * only (not on where they first differ). */
static bool
same_secret(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), i;
    unsigned char diff = la != lb;

    for (i = 0; i < la && i < lb; i++) {
        diff |= (unsigned char)(a[i] ^ b[i]);
    }
    return diff == 0;
}

/* A guarded route's answer to a request without the token: 0 when it may
 * go on; else r and b hold the refusal (401 or 403) and *err its status. */
static bool
refused_without_token(const struct admin *a, const char *authorization,
                      struct admin_reply *r, struct buf *b, int *err)
{
    static const char scheme[] = "Bearer ";

    if (a->token[0] == '\0') {
        return false;
    }
    if (authorization == NULL ||
        strncasecmp(authorization, scheme, sizeof(scheme) - 1) != 0) {
        r->challenge = true;
        *err = reply_text(r, b, 401, "unauthorized: this endpoint wants "
                          "Authorization: Bearer <token>\n");
        return true;
    }
    if (!same_secret(authorization + sizeof(scheme) - 1, a->token)) {
        *err = reply_text(r, b, 403, "forbidden: wrong token\n");
        return true;
    }
    return false;
}

int
admin_respond(struct admin *a, const struct admin_request *req,
              struct admin_reply *r)
{
    struct buf b = BUF_INIT;
    const char *method = req->method, *path = req->path;
    size_t plen = strcspn(path, "?#");
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    enum admin_route route = ROUTE_NONE;
    size_t i;
    int err = 0;

    memset(r, 0, sizeof(*r));
    for (i = 0; i < NROUTES; i++) {
        if (strlen(routes[i].path) == plen &&
            memcmp(routes[i].path, path, plen) == 0) {
            route = routes[i].route;
            break;
        }
    }
    if (route == ROUTE_NONE) {
        err = reply_text(r, &b, 404, "not found; try /stats /metrics "
                         "/healthz /config / or POST /reload /ring/diff\n");
    } else if (routes[i].post ? strcmp(method, "POST") != 0 : !get) {
        err = reply_text(r, &b, 405, "method not allowed\n");
        r->allow = routes[i].post ? "POST" : "GET, HEAD";
    } else if (routes[i].guarded &&
               refused_without_token(a, req->authorization, r, &b, &err)) {
        /* r holds the refusal */
    } else if (route == ROUTE_RELOAD) {
        err = respond_reload(a, r, &b);
    } else if (route == ROUTE_RING_DIFF) {
        err = respond_ring_diff(a, path, req->body, req->body_len, r, &b);
    } else if (route == ROUTE_PAGE) {
        r->status = 200;
        r->type = TYPE_HTML;
        err = admin_page_render(&b);
    } else {
        err = respond_doc(a, route, r, &b);
    }
    /* NUL-terminated past len, as a C string for whoever reads it so. */
    if (err != 0 || buf_append(&b, "", 1) != 0) {
        buf_free(&b);
        memset(r, 0, sizeof(*r));
        return UV_ENOMEM;
    }
    r->body = b.data;
    r->len = b.len - 1;
    return 0;
}

void
admin_reply_free(struct admin_reply *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
}

/* ---------------------------------------------------------------------
 * Reading one request: llhttp plus bounds, no I/O
 * ------------------------------------------------------------------- */

/* Refuses the request with status; text is what the client reads, why
 * what the log says. Returns llhttp's "stop" for the callbacks. */
static int
http_refuse(struct admin_http *h, int status, const char *text,
            const char *why)
{
    h->status = status;
    h->text = text;
    h->why = why;
    return HPE_USER;
}

/* Appends at[0..len) to dst (*dlen bytes so far, room for max and a NUL),
 * NUL-terminated; false, appending nothing, when it would pass max. */
static bool
append_bounded(char *dst, size_t *dlen, size_t max, const char *at,
               size_t len)
{
    if (len > max - *dlen) {
        return false;
    }
    memcpy(dst + *dlen, at, len);
    *dlen += len;
    dst[*dlen] = '\0';
    return true;
}

static int
http_on_url(llhttp_t *parser, const char *at, size_t len)
{
    struct admin_http *h = parser->data;

    if (!append_bounded(h->url, &h->url_len, ADMIN_URL_MAX, at, len)) {
        return http_refuse(h, 414, "request target too long\n",
                           "url too long");
    }
    return 0;
}

/* Header names are read to find Authorization only; its value is kept
 * (bounded), every other header is skipped. */
static int
http_on_header_field(llhttp_t *parser, const char *at, size_t len)
{
    struct admin_http *h = parser->data;

    if (len > sizeof(h->field) - h->field_len) {
        h->field_len = sizeof(h->field);    /* too long to be ours */
    } else {
        memcpy(h->field + h->field_len, at, len);
        h->field_len += len;
    }
    return 0;
}

static int
http_on_header_field_complete(llhttp_t *parser)
{
    struct admin_http *h = parser->data;

    h->in_auth = h->field_len == 13 &&
                 strncasecmp(h->field, "authorization", 13) == 0;
    if (h->in_auth) {
        h->has_auth = true;     /* a second one replaces the first */
        h->auth_len = 0;
        h->auth[0] = '\0';
    }
    h->field_len = 0;
    return 0;
}

static int
http_on_header_value(llhttp_t *parser, const char *at, size_t len)
{
    struct admin_http *h = parser->data;

    if (!h->in_auth) {
        return 0;
    }
    if (!append_bounded(h->auth, &h->auth_len, ADMIN_AUTH_MAX, at, len)) {
        return http_refuse(h, 400, "Authorization header too long\n",
                           "authorization too long");
    }
    return 0;
}

static int
http_on_header_value_complete(llhttp_t *parser)
{
    struct admin_http *h = parser->data;

    h->in_auth = false;
    return 0;
}

static int
http_on_headers_complete(llhttp_t *parser)
{
    struct admin_http *h = parser->data;

    h->head_done = true;
    if ((parser->flags & F_CONTENT_LENGTH) != 0 &&
        parser->content_length > ADMIN_BODY_MAX) {
        return http_refuse(h, 413, "request too large\n", "body too large");
    }
    return 0;
}

/* The body grows by doubling, up to ADMIN_BODY_MAX + its NUL: most
 * requests have none, and an idle connection should not hold 64 KiB. */
static int
http_on_body(llhttp_t *parser, const char *at, size_t len)
{
    struct admin_http *h = parser->data;
    size_t need;

    if (len > ADMIN_BODY_MAX - h->body_bytes) {
        return http_refuse(h, 413, "request too large\n", "body too large");
    }
    need = h->body_bytes + len + 1;
    if (need > h->body_cap) {
        size_t cap = h->body_cap > 0 ? h->body_cap : 256;
        char *body;

        while (cap < need) {
            cap *= 2;
        }
        if (cap > ADMIN_BODY_MAX + 1) {
            cap = ADMIN_BODY_MAX + 1;
        }
        body = realloc(h->body, cap);
        if (body == NULL) {
            return http_refuse(h, 500, "out of memory\n", "out of memory");
        }
        h->body = body;
        h->body_cap = cap;
    }
    memcpy(h->body + h->body_bytes, at, len);
    h->body_bytes += len;
    h->body[h->body_bytes] = '\0';
    return 0;
}

static int
http_on_message_complete(llhttp_t *parser)
{
    struct admin_http *h = parser->data;

    h->done = true;
    return HPE_PAUSED;          /* one request per connection */
}

static const llhttp_settings_t http_settings = {
    .on_url = http_on_url,
    .on_header_field = http_on_header_field,
    .on_header_field_complete = http_on_header_field_complete,
    .on_header_value = http_on_header_value,
    .on_header_value_complete = http_on_header_value_complete,
    .on_headers_complete = http_on_headers_complete,
    .on_body = http_on_body,
    .on_message_complete = http_on_message_complete,
};

void
admin_http_init(struct admin_http *h)
{
    memset(h, 0, sizeof(*h));
    llhttp_init(&h->parser, HTTP_REQUEST, &http_settings);
    h->parser.data = h;
}

void
admin_http_deinit(struct admin_http *h)
{
    free(h->body);
    h->body = NULL;
    h->body_cap = 0;
}

enum admin_http_state
admin_http_feed(struct admin_http *h, const char *data, size_t len)
{
    llhttp_errno_t err;

    if (h->done) {
        return ADMIN_HTTP_DONE;
    }
    if (h->status != 0) {
        return ADMIN_HTTP_BAD;
    }
    if (!h->head_done) {
        /* counted before parsing: a header line that never ends is
         * refused as soon as the bytes pass the bound */
        h->head_bytes += len;
    }
    err = llhttp_execute(&h->parser, data, len);
    if (h->done && (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE)) {
        return ADMIN_HTTP_DONE;
    }
    if (err != HPE_OK) {
        if (h->status == 0) {
            http_refuse(h, 400, "bad request\n", llhttp_errno_name(err));
        }
        return ADMIN_HTTP_BAD;
    }
    if (!h->head_done && h->head_bytes > ADMIN_HEADER_MAX) {
        http_refuse(h, 413, "request too large\n", "header too large");
        return ADMIN_HTTP_BAD;
    }
    return ADMIN_HTTP_MORE;
}

enum admin_http_state
admin_http_end(struct admin_http *h, bool timed_out)
{
    if (h->done) {
        return ADMIN_HTTP_DONE;
    }
    if (h->status == 0) {
        if (timed_out) {
            http_refuse(h, 408, "request timeout\n", "request timeout");
        } else {
            /* shut its side mid-request: it may still read the answer */
            http_refuse(h, 400, "incomplete request\n", "incomplete request");
        }
    }
    return ADMIN_HTTP_BAD;
}

const char *
admin_http_method(const struct admin_http *h)
{
    return llhttp_method_name((llhttp_method_t)h->parser.method);
}

/* ---------------------------------------------------------------------
 * HTTP connections
 * ------------------------------------------------------------------- */

static void admin_timer_cb(uv_timer_t *handle);

static const char *
status_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default:  return "Unknown";
    }
}

static void
admin_conn_close_cb(uv_handle_t *handle)
{
    struct admin_conn *c = handle->data;
    struct admin *a = c->admin;

    if (--c->nclosing > 0) {
        return;
    }
    TAILQ_REMOVE(&a->conns, c, link);
    if (c->counted) {
        a->nconns--;
    }
    admin_http_deinit(&c->http);
    free(c->out);
    free(c);
}

/* Idempotent; memory goes in admin_conn_close_cb(). */
static void
admin_conn_close(struct admin_conn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    c->nclosing = 2;
    uv_close((uv_handle_t *)&c->tcp, admin_conn_close_cb);
    uv_close((uv_handle_t *)&c->timer, admin_conn_close_cb);
}

static void
admin_timer(struct admin_conn *c, uint64_t ms)
{
    uv_timer_start(&c->timer, admin_timer_cb, ms, 0);
}

static void
admin_alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct admin_conn *c = handle->data;

    (void)suggested;
    *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

/* After the reply and our FIN: read and drop whatever the client still
 * sends until it closes, so that closing never resets the connection
 * before the client has read the reply. */
static void
admin_linger_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct admin_conn *c = stream->data;

    (void)buf;
    if (nread < 0 && !c->closing) {
        admin_conn_close(c);
    }
}

static void
admin_shutdown_cb(uv_shutdown_t *req, int status)
{
    struct admin_conn *c = req->data;

    if (c->closing) {
        return;
    }
    if (status != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, admin_alloc_cb,
                      admin_linger_read_cb) != 0) {
        admin_conn_close(c);
        return;
    }
    c->phase = ADMIN_LINGERING;
    admin_timer(c, ADMIN_LINGER_MS);
}

static void
admin_write_cb(uv_write_t *req, int status)
{
    struct admin_conn *c = req->data;

    if (c->closing) {
        return;
    }
    if (status != 0) {
        log_debug("admin: write: %s", uv_strerror(status));
        admin_conn_close(c);
        return;
    }
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp,
                    admin_shutdown_cb) != 0) {
        admin_conn_close(c);
    }
}

/* Sends out[0..len) (taking it) and then closes gracefully. */
static void
admin_send(struct admin_conn *c, char *out, size_t len)
{
    uv_buf_t buf = uv_buf_init(out, (unsigned int)len);

    uv_read_stop((uv_stream_t *)&c->tcp);
    free(c->out);
    c->out = out;
    c->phase = ADMIN_WRITING;
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &buf, 1,
                 admin_write_cb) != 0) {
        admin_conn_close(c);
        return;
    }
    admin_timer(c, ADMIN_WRITE_MS);
}

/* Frames r as an HTTP/1.1 response (Connection: close) and sends it. */
static void
admin_send_http(struct admin_conn *c, const struct admin_reply *r, bool head)
{
    struct buf b = BUF_INIT;
    int err;

    err = buf_printf(&b, "HTTP/1.1 %d %s\r\n"
                     "Server: memring/" MEMRING_VERSION "\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n"
                     "Connection: close\r\n",
                     r->status, status_reason(r->status),
                     r->type != NULL ? r->type : TYPE_TEXT, r->len);
    if (err == 0 && r->allow != NULL) {
        err = buf_printf(&b, "Allow: %s\r\n", r->allow);
    }
    if (err == 0 && r->challenge) {
        err = buf_printf(&b, "WWW-Authenticate: Bearer realm=\"memring\"\r\n");
    }
    if (err == 0) {
        err = buf_append(&b, "\r\n", 2);
    }
    if (err == 0 && !head) {
        err = buf_append(&b, r->body, r->len);
    }
    if (err != 0) {
        buf_free(&b);
        admin_conn_close(c);
        return;
    }
    admin_send(c, b.data, b.len);   /* takes the memory */
}

static void
admin_send_error(struct admin_conn *c, int status, const char *why)
{
    struct admin_reply r = {
        .status = status, .type = TYPE_TEXT,
        .body = (char *)why, .len = strlen(why),
    };

    admin_send_http(c, &r, false);
}

/* Refuses the request the way admin_http decided (c->http BAD). */
static void
admin_reject(struct admin_conn *c)
{
    if (c->http.status == 408) {
        c->admin->ntimedout++;
    } else {
        c->admin->nbad++;
    }
    log_debug("admin: bad request: %d %s", c->http.status, c->http.why);
    admin_send_error(c, c->http.status, c->http.text);
}

/* A silent client is one of twemproxy's: the JSON alone, then close. */
static void
admin_send_raw_stats(struct admin_conn *c)
{
    struct admin_reply r;

    static const struct admin_request stats = { .method = "GET",
                                                .path = "/stats" };

    if (admin_respond(c->admin, &stats, &r) != 0) {
        admin_conn_close(c);
        return;
    }
    admin_send(c, r.body, r.len);   /* takes the body */
}

static void
admin_dispatch(struct admin_conn *c)
{
    const char *method = admin_http_method(&c->http);
    struct admin_reply r;

    struct admin_request req = {
        .method = method,
        .path = c->http.url,
        .body = c->http.body,
        .body_len = c->http.body_bytes,
        .authorization = c->http.has_auth ? c->http.auth : NULL,
    };

    if (admin_respond(c->admin, &req, &r) != 0) {
        admin_send_error(c, 500, "out of memory\n");
        return;
    }
    admin_send_http(c, &r, strcmp(method, "HEAD") == 0);
    admin_reply_free(&r);
}

static bool
admin_has_bytes(struct admin_conn *c)
{
    uv_os_fd_t fd;
    char byte;

    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0) {
        return false;
    }
    return recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

static void
admin_timer_cb(uv_timer_t *handle)
{
    struct admin_conn *c = handle->data;

    if (c->closing) {
        return;
    }
    switch (c->phase) {
    case ADMIN_WAITING:
        /* Timers run before I/O in a loop turn: on a busy loop, bytes that
         * arrived in time may not have been read yet. Those are a request,
         * not silence: let the read callback take them. */
        if (admin_has_bytes(c)) {
            admin_timer(c, ADMIN_GRACE_MS);
            break;
        }
        admin_send_raw_stats(c);
        break;
    case ADMIN_READING:
        if (admin_http_end(&c->http, true) == ADMIN_HTTP_BAD) {
            admin_reject(c);
        }
        break;
    case ADMIN_WRITING:
        c->admin->ntimedout++;
        admin_conn_close(c);
        break;
    case ADMIN_LINGERING:
        admin_conn_close(c);
        break;
    }
}

static void
admin_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct admin_conn *c = stream->data;

    if (c->closing || nread == 0) {
        return;
    }
    if (nread < 0) {
        if (nread == UV_EOF && c->phase == ADMIN_WAITING) {
            admin_send_raw_stats(c);    /* connected, sent nothing, shut */
        } else if (nread == UV_EOF &&
                   admin_http_end(&c->http, false) == ADMIN_HTTP_BAD) {
            admin_reject(c);
        } else {
            admin_conn_close(c);
        }
        return;
    }
    if (c->phase == ADMIN_WAITING) {
        uint64_t now = uv_now(c->admin->loop);
        c->phase = ADMIN_READING;
        admin_timer(c, c->deadline > now ? c->deadline - now : 0);
    }
    switch (admin_http_feed(&c->http, buf->base, (size_t)nread)) {
    case ADMIN_HTTP_MORE:
        break;
    case ADMIN_HTTP_DONE:
        admin_dispatch(c);
        break;
    case ADMIN_HTTP_BAD:
        admin_reject(c);
        break;
    }
}

/* Over the connection limit: a short 503 if the socket takes it at once,
 * then close. Never waits on the client. */
#define REFUSE_BODY "too many admin clients\n"
_Static_assert(sizeof(REFUSE_BODY) - 1 == 23, "Content-Length below");

static void
admin_refuse(struct admin_conn *c)
{
    static const char msg[] =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
        "Content-Length: 23\r\nConnection: close\r\n\r\n" REFUSE_BODY;
    uv_buf_t buf = uv_buf_init((char *)msg, sizeof(msg) - 1);

    (void)uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
    admin_conn_close(c);
}

static void
admin_accept_cb(uv_stream_t *listener, int status)
{
    struct admin *a = listener->data;
    struct admin_conn *c;

    if (status != 0) {
        log_warn("admin: accept: %s", uv_strerror(status));
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        log_error("admin: accept: out of memory");
        return;
    }
    c->admin = a;
    uv_tcp_init(a->loop, &c->tcp);
    uv_timer_init(a->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    TAILQ_INSERT_TAIL(&a->conns, c, link);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        admin_conn_close(c);
        return;
    }
    if (a->nconns >= ADMIN_MAX_CONNS || a->closed) {
        a->nrefused++;
        admin_refuse(c);
        return;
    }
    a->nserved++;
    a->nconns++;
    c->counted = true;
    admin_http_init(&c->http);
    c->phase = ADMIN_WAITING;
    c->deadline = uv_now(a->loop) + ADMIN_REQUEST_MS;
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, admin_alloc_cb,
                      admin_read_cb) != 0) {
        admin_conn_close(c);
        return;
    }
    admin_timer(c, ADMIN_GRACE_MS);
}

/* ---------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------- */

struct admin *
admin_create(uv_loop_t *loop, struct worker **workers, uint32_t nworkers)
{
    struct admin *a;
    size_t len;

    if (nworkers == 0) {
        return NULL;
    }
    a = calloc(1, sizeof(*a));
    if (a == NULL) {
        return NULL;
    }
    a->loop = loop;
    a->workers = workers;
    a->nworkers = nworkers;
    TAILQ_INIT(&a->conns);
    a->started_usec = a->conf_loaded_usec = stats_now_usec();
    len = sizeof(a->host);
    if (uv_os_gethostname(a->host, &len) != 0) {
        snprintf(a->host, sizeof(a->host), "unknown");
    }
    return a;
}

void
admin_set_reload_stats(struct admin *a, const struct reload_stats *st)
{
    a->reload_stats = st;
}

void
admin_set_token(struct admin *a, const char *token)
{
    snprintf(a->token, sizeof(a->token), "%s", token != NULL ? token : "");
}

void
admin_set_reload(struct admin *a, admin_reload_fn fn, void *arg)
{
    a->reload = fn;
    a->reload_arg = arg;
}

void
admin_conf_loaded(struct admin *a, uint64_t at_usec)
{
    a->conf_loaded_usec = at_usec;
}

static bool
is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        static const unsigned char lo[16] = { [15] = 1 };
        return memcmp(&in6->sin6_addr, lo, sizeof(lo)) == 0;
    }
    return false;
}

int
admin_listen(struct admin *a, const char *addr, uint16_t port)
{
    struct sockaddr_storage sa;
    int err;

    if (net_resolve(addr, port, &sa) != 0) {
        log_error("admin: cannot resolve '%s'", addr);
        return UV_EAI_NONAME;
    }
    uv_tcp_init(a->loop, &a->listener);
    a->listener.data = a;
    a->listening = true;
    err = uv_tcp_bind(&a->listener, (const struct sockaddr *)&sa, 0);
    if (err == 0) {
        err = uv_listen((uv_stream_t *)&a->listener, 128, admin_accept_cb);
    }
    if (err != 0) {
        log_error("admin: listen on %s:%u: %s", addr, (unsigned)port,
                  uv_strerror(err));
    } else if (!is_loopback((const struct sockaddr *)&sa)) {
        log_warn("admin: listening on %s:%u, beyond loopback: anyone who "
                 "can reach it can read stats and config", addr,
                 (unsigned)port);
    } else {
        log_notice("admin: listening on %s:%u", addr, (unsigned)port);
    }
    return err;
}

void
admin_close(struct admin *a)
{
    struct admin_conn *c;

    if (a == NULL || a->closed) {
        return;
    }
    a->closed = true;
    if (a->listening && !uv_is_closing((uv_handle_t *)&a->listener)) {
        uv_close((uv_handle_t *)&a->listener, NULL);
    }
    TAILQ_FOREACH(c, &a->conns, link) {
        admin_conn_close(c);
    }
}

void
admin_destroy(struct admin **ap)
{
    struct admin *a = *ap;

    if (a == NULL) {
        return;
    }
    *ap = NULL;
    if (!TAILQ_EMPTY(&a->conns)) {
        /* The loop has not run the close callbacks, which still need a:
         * a caller bug. Leak rather than free what libuv will touch. */
        log_error("admin: destroyed with connections still open");
        return;
    }
    free(a);
}
