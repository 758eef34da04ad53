/*
 * admin: the HTTP endpoint (llhttp) on the stats port, and the documents it
 * serves: twemproxy's stats JSON, Prometheus text, health and config.
 *
 * It runs on one worker's loop. Counters live in each worker's pools and
 * servers and are bumped there without locks; a reader here sums every
 * worker's copy at the moment it is asked. With one worker that read is on
 * the same thread; with more, each counter is an aligned 64-bit word read
 * while its owner may be bumping it, so a sum can be a moment stale but
 * never torn, and the request path never waits for the admin. The pools
 * and servers themselves change only in a reload, which (with more than
 * one worker) must not free them while an admin read may be under way.
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

#include "memring/conf.h"
#include "memring/health.h"
#include "memring/hash.h"
#include "memring/log.h"
#include "memring/net.h"
#include "memring/reload.h"
#include "memring/pool.h"
#include "memring/ring.h"
#include "memring/stats.h"
#include "memring/worker.h"

#include <inttypes.h>
#include <llhttp.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/queue.h>
#include <time.h>

#define ADMIN_RBUF_SIZE 4096
#define JW_DEPTH        16

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
};

/* ---------------------------------------------------------------------
 * Output buffer: grows as needed; an allocation failure is sticky and
 * checked once at the end, so renderers stay straight-line code.
 * ------------------------------------------------------------------- */

struct obuf {
    char   *data;
    size_t len;
    size_t cap;
    bool   oom;
};

static bool
ob_reserve(struct obuf *b, size_t more)
{
    size_t cap;
    char *p;

    if (b->oom) {
        return false;
    }
    if (b->len + more + 1 <= b->cap) {
        return true;
    }
    cap = b->cap == 0 ? 4096 : b->cap;
    while (cap < b->len + more + 1) {
        cap *= 2;
    }
    p = realloc(b->data, cap);
    if (p == NULL) {
        b->oom = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

static void
ob_add(struct obuf *b, const char *s, size_t n)
{
    if (ob_reserve(b, n)) {
        memcpy(b->data + b->len, s, n);
        b->len += n;
        b->data[b->len] = '\0';
    }
}

static void
ob_str(struct obuf *b, const char *s)
{
    ob_add(b, s, strlen(s));
}

static void ob_printf(struct obuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
ob_printf(struct obuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !ob_reserve(b, (size_t)n)) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static void
ob_free(struct obuf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

/*
 * Length of the well-formed UTF-8 sequence at s[0..n), or 0 when it is not
 * one (overlong, surrogate, beyond U+10FFFF, truncated). Names come from
 * YAML, which libyaml already checked, but JSON and Prometheus text must be
 * valid UTF-8 whatever reaches them.
 */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
    size_t len, i;
    uint32_t cp;

    if (s[0] < 0x80) {
        return 1;
    } else if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        cp = s[0] & 0x1fu;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        cp = s[0] & 0x0fu;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        cp = s[0] & 0x07u;
    } else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return len;
}

/* s as a JSON string: quotes, backslashes and control characters escaped,
 * ill-formed UTF-8 replaced by U+FFFD. */
static void
ob_json_str(struct obuf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), i = 0, k;
    char esc[8];

    ob_add(b, "\"", 1);
    while (i < n) {
        unsigned char ch = p[i];
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            ob_add(b, esc, 2);
            i++;
        } else if (ch < 0x20) {
            switch (ch) {
            case '\n': ob_add(b, "\\n", 2); break;
            case '\r': ob_add(b, "\\r", 2); break;
            case '\t': ob_add(b, "\\t", 2); break;
            default:
                snprintf(esc, sizeof(esc), "\\u%04x", (unsigned)ch);
                ob_add(b, esc, 6);
                break;
            }
            i++;
        } else if ((k = utf8_len(p + i, n - i)) == 0) {
            ob_add(b, "\\ufffd", 6);
            i++;
        } else {
            ob_add(b, s + i, k);
            i += k;
        }
    }
    ob_add(b, "\"", 1);
}

/* s as a Prometheus label value (inside its quotes): backslash, quote and
 * newline escaped, ill-formed UTF-8 replaced by U+FFFD. */
static void
ob_prom_label(struct obuf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), i = 0, k;

    while (i < n) {
        if (p[i] == '\\') {
            ob_add(b, "\\\\", 2);
            i++;
        } else if (p[i] == '"') {
            ob_add(b, "\\\"", 2);
            i++;
        } else if (p[i] == '\n') {
            ob_add(b, "\\n", 2);
            i++;
        } else if ((k = utf8_len(p + i, n - i)) == 0) {
            ob_add(b, "\xef\xbf\xbd", 3);
            i++;
        } else {
            ob_add(b, s + i, k);
            i += k;
        }
    }
}

/* s for a plain-text body: printable ASCII as is, anything else \xNN. */
static void
ob_text(struct obuf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    for (; *p != '\0'; p++) {
        if (*p >= 0x20 && *p < 0x7f && *p != '\\') {
            ob_add(b, (const char *)p, 1);
        } else {
            ob_printf(b, "\\x%02x", (unsigned)*p);
        }
    }
}

/* us as decimal seconds, exactly: 2500 -> "0.0025", 5000000 -> "5". */
static void
ob_seconds(struct obuf *b, uint64_t us)
{
    char frac[8];
    int n;

    ob_printf(b, "%" PRIu64, us / 1000000);
    if (us % 1000000 == 0) {
        return;
    }
    snprintf(frac, sizeof(frac), "%06u", (unsigned)(us % 1000000));
    for (n = 6; n > 0 && frac[n - 1] == '0'; n--) {
    }
    ob_add(b, ".", 1);
    ob_add(b, frac, (size_t)n);
}

/* ---------------------------------------------------------------------
 * JSON writer: remembers, per nesting level, whether a comma is due.
 * ------------------------------------------------------------------- */

struct jw {
    struct obuf *b;
    uint32_t    depth;
    bool        comma[JW_DEPTH];
};

static void
jw_key(struct jw *j, const char *key)
{
    if (j->comma[j->depth]) {
        ob_add(j->b, ",", 1);
    }
    j->comma[j->depth] = true;
    if (key != NULL) {
        ob_json_str(j->b, key);
        ob_add(j->b, ":", 1);
    }
}

/* Opens an object ('{') or array ('['), as member key or element (NULL). */
static void
jw_open(struct jw *j, const char *key, char kind)
{
    jw_key(j, key);
    ob_add(j->b, &kind, 1);
    if (j->depth + 1 < JW_DEPTH) {
        j->depth++;
    } else {
        j->b->oom = true;   /* deeper than any document here; a bug */
    }
    j->comma[j->depth] = false;
}

static void
jw_close(struct jw *j, char kind)
{
    ob_add(j->b, &kind, 1);
    if (j->depth > 0) {
        j->depth--;
    }
}

static void
jw_u64(struct jw *j, const char *key, uint64_t v)
{
    jw_key(j, key);
    ob_printf(j->b, "%" PRIu64, v);
}

static void
jw_i64(struct jw *j, const char *key, int64_t v)
{
    jw_key(j, key);
    ob_printf(j->b, "%" PRId64, v);
}

static void
jw_bool(struct jw *j, const char *key, bool v)
{
    jw_key(j, key);
    ob_str(j->b, v ? "true" : "false");
}

static void
jw_null(struct jw *j, const char *key)
{
    jw_key(j, key);
    ob_str(j->b, "null");
}

static void
jw_str(struct jw *j, const char *key, const char *v)
{
    jw_key(j, key);
    ob_json_str(j->b, v);
}

/* ---------------------------------------------------------------------
 * Metric tables and aggregation over workers
 * ------------------------------------------------------------------- */

struct metric {
    const char      *name;
    enum stats_type type;
    const char      *desc;
    size_t          off;        /* in struct pool_stats / server_stats */
};

#define POOL_METRIC(n, t, d) { #n, t, d, offsetof(struct pool_stats, n) },
#define SERVER_METRIC(n, t, d) { #n, t, d, offsetof(struct server_stats, n) },

static const struct metric pool_metrics[] = {
    POOL_METRICS(POOL_METRIC)
};

static const struct metric server_metrics[] = {
    SERVER_METRICS(SERVER_METRIC)
};

#define NPOOL_METRICS   (sizeof(pool_metrics) / sizeof(pool_metrics[0]))
#define NSERVER_METRICS (sizeof(server_metrics) / sizeof(server_metrics[0]))

/* The fields twemproxy 0.5.0 prints, under their own names; everything
 * else in the tables is memring's and gets a "memring_" prefix in /stats,
 * so that parsers written for twemproxy see exactly what they expect. */
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

static uint64_t
metric_get(const struct metric *m, const void *stats)
{
    uint64_t v;

    memcpy(&v, (const char *)stats + m->off, sizeof(v));
    return v;
}

/* Adds from into into, field by field: counters and gauges add up,
 * timestamps keep the latest. */
static void
metrics_fold(const struct metric *tab, size_t n, void *into,
             const void *from)
{
    size_t i;

    for (i = 0; i < n; i++) {
        uint64_t a = metric_get(&tab[i], into);
        uint64_t b = metric_get(&tab[i], from);
        uint64_t v = tab[i].type == STATS_TIMESTAMP ? (a > b ? a : b) : a + b;
        memcpy((char *)into + tab[i].off, &v, sizeof(v));
    }
}

struct pool_sum {
    struct pool_stats st;
    struct stats_hist lat;
};

struct server_sum {
    struct server_stats st;
    struct stats_hist   lat;
};

/*
 * Worker 0's pools and servers, in its config's order, name what is
 * reported; the other workers' copies are found by name. All workers run
 * the same config except for a moment during a reload, so the same index
 * almost always matches at once.
 */
static uint32_t
npools(const struct admin *a)
{
    return a->workers[0]->npools;
}

static const struct pool *
ref_pool(const struct admin *a, uint32_t pi)
{
    return a->workers[0]->pools[pi];
}

static const struct server *
ref_server(const struct admin *a, uint32_t pi, uint32_t si)
{
    return a->workers[0]->pools[pi]->servers[si];
}

static const struct pool *
worker_pool(const struct admin *a, uint32_t w, uint32_t pi)
{
    const struct worker *wk = a->workers[w];
    const char *name = ref_pool(a, pi)->cp->name;

    if (pi < wk->npools && strcmp(wk->pools[pi]->cp->name, name) == 0) {
        return wk->pools[pi];
    }
    return worker_find_pool(wk, name);
}

static const struct server *
worker_server(const struct admin *a, uint32_t w, uint32_t pi, uint32_t si)
{
    const struct pool *p = worker_pool(a, w, pi);
    const char *name = ref_server(a, pi, si)->cs->name;
    uint32_t i;

    if (p == NULL) {
        return NULL;
    }
    if (si < p->nservers && strcmp(p->servers[si]->cs->name, name) == 0) {
        return p->servers[si];
    }
    for (i = 0; i < p->nservers; i++) {
        if (strcmp(p->servers[i]->cs->name, name) == 0) {
            return p->servers[i];
        }
    }
    return NULL;
}

static void
sum_pool(const struct admin *a, uint32_t pi, struct pool_sum *out)
{
    uint32_t w;

    memset(out, 0, sizeof(*out));
    for (w = 0; w < a->nworkers; w++) {
        const struct pool *p = worker_pool(a, w, pi);
        if (p != NULL) {
            metrics_fold(pool_metrics, NPOOL_METRICS, &out->st, &p->stats);
            stats_hist_merge(&out->lat, &p->latency);
        }
    }
}

static void
sum_server(const struct admin *a, uint32_t pi, uint32_t si,
           struct server_sum *out)
{
    uint32_t w;

    memset(out, 0, sizeof(*out));
    for (w = 0; w < a->nworkers; w++) {
        const struct server *s = worker_server(a, w, pi, si);
        if (s != NULL) {
            metrics_fold(server_metrics, NSERVER_METRICS, &out->st,
                         &s->stats);
            stats_hist_merge(&out->lat, &s->latency);
        }
    }
}

/* Where one server stands, over all workers. */
struct server_state {
    bool     ejected;       /* off the ring in some worker */
    bool     backoff;       /* last connect failed, retry not yet due */
    bool     live;          /* in every worker: neither (a due retry of an
                             * ejected server counts as live) */
    uint64_t retry_in_ms;   /* ejected: soonest return, ms from now */
};

static uint64_t
loop_now(const struct pool *p)
{
    return uv_now(&p->env.io->loop);
}

/*
 * Off the ring and not yet due back. The pool puts a server back lazily,
 * on the next request it routes; one whose retry time has come counts as
 * live here, or a pool whose servers were all ejected would report 503
 * until traffic arrived, and a load balancer that trusts /healthz would
 * never send it any.
 */
static bool
ejected_now(const struct server *s, uint64_t now)
{
    return health_ejected_until(s->health) > now;
}

/* Its last connect failed and the next is not yet allowed. */
static bool
backoff_now(const struct server *s, uint64_t now)
{
    return s->retry_at > now;
}

static void
server_state(const struct admin *a, uint32_t pi, uint32_t si,
             struct server_state *out)
{
    uint32_t w;

    memset(out, 0, sizeof(*out));
    out->live = true;
    for (w = 0; w < a->nworkers; w++) {
        const struct server *s = worker_server(a, w, pi, si);
        uint64_t now, left, until;
        if (s == NULL) {
            continue;
        }
        now = uv_now(&s->ctx->io->loop);
        until = health_ejected_until(s->health);
        if (until != 0) {
            left = until > now ? until - now : 0;
            if (!out->ejected || left < out->retry_in_ms) {
                out->retry_in_ms = left;
            }
            out->ejected = true;
        }
        if (ejected_now(s, now) || backoff_now(s, now)) {
            out->live = false;
        }
        out->backoff = out->backoff || backoff_now(s, now);
    }
}

/* True when pool pi has a live server in every worker. Else false, with
 * the counts (ejected; in backoff only) of the first worker without one. */
static bool
pool_healthy(const struct admin *a, uint32_t pi, uint32_t *nejected,
             uint32_t *nbackoff, uint32_t *ndown)
{
    uint32_t w, si, nej, nbo, ndn, nlive;

    *nejected = *nbackoff = *ndown = 0;
    for (w = 0; w < a->nworkers; w++) {
        const struct pool *p = worker_pool(a, w, pi);
        if (p == NULL) {
            continue;
        }
        nej = nbo = ndn = nlive = 0;
        for (si = 0; si < p->nservers; si++) {
            const struct server *s = p->servers[si];
            bool ejected = ejected_now(s, loop_now(p));
            bool backoff = !ejected && backoff_now(s, loop_now(p));
            bool down = !ejected && !backoff && health_down(s->health) != 0;
            nej += ejected;
            nbo += backoff;
            ndn += down;
            nlive += !ejected && !backoff && !down;
        }
        if (nlive == 0) {
            *nejected = nej;
            *nbackoff = nbo;
            *ndown = ndn;
            return false;
        }
    }
    return true;
}

/* ---------------------------------------------------------------------
 * GET /stats: twemproxy's document, then memring's additions
 * ------------------------------------------------------------------- */

static void
describe(FILE *f, const struct metric *tab, size_t n,
         const char *const *twemproxy)
{
    char key[64];
    size_t i;

    for (i = 0; i < n; i++) {
        if (is_twemproxy_field(twemproxy, tab[i].name)) {
            fprintf(f, "  %-28s\"%s\"\n", tab[i].name, tab[i].desc);
        }
    }
    for (i = 0; i < n; i++) {
        if (!is_twemproxy_field(twemproxy, tab[i].name)) {
            snprintf(key, sizeof(key), "memring_%s", tab[i].name);
            fprintf(f, "  %-28s\"%s\"\n", key, tab[i].desc);
        }
    }
    fprintf(f, "  %-28s\"%s\"\n", "memring_latency_count",
            "# requests timed");
    fprintf(f, "  %-28s\"%s\"\n", "memring_latency_sum_us",
            "total of their latencies in usec");
    fprintf(f, "  %-28s\"%s\"\n", "memring_latency_p50_us",
            "median latency in usec (bucket upper bound)");
    fprintf(f, "  %-28s\"%s\"\n", "memring_latency_p90_us",
            "90th percentile latency in usec (bucket upper bound)");
    fprintf(f, "  %-28s\"%s\"\n", "memring_latency_p99_us",
            "99th percentile latency in usec (bucket upper bound)");
}

void
admin_describe_stats(FILE *f)
{
    fprintf(f, "pool stats:\n");
    describe(f, pool_metrics, NPOOL_METRICS, twemproxy_pool_fields);
    fprintf(f, "\nserver stats:\n");
    describe(f, server_metrics, NSERVER_METRICS, twemproxy_server_fields);
    fprintf(f, "  %-28s\"%s\"\n", "memring_ejected",
            "1 while the server is off the ring");
    fprintf(f, "  %-28s\"%s\"\n", "memring_live",
            "1 when neither ejected nor in connect backoff");
}

static void
json_latency(struct jw *j, const struct stats_hist *h)
{
    jw_u64(j, "memring_latency_count", h->count);
    jw_u64(j, "memring_latency_sum_us", h->sum_us);
    jw_u64(j, "memring_latency_p50_us", stats_hist_quantile(h, 0.50));
    jw_u64(j, "memring_latency_p90_us", stats_hist_quantile(h, 0.90));
    jw_u64(j, "memring_latency_p99_us", stats_hist_quantile(h, 0.99));
}

static void
json_metrics(struct jw *j, const struct metric *tab, size_t n,
             const char *const *twemproxy, const void *st)
{
    char key[64];
    size_t i;

    for (i = 0; i < n; i++) {
        if (is_twemproxy_field(twemproxy, tab[i].name)) {
            jw_u64(j, tab[i].name, metric_get(&tab[i], st));
        }
    }
    for (i = 0; i < n; i++) {
        if (!is_twemproxy_field(twemproxy, tab[i].name)) {
            snprintf(key, sizeof(key), "memring_%s", tab[i].name);
            jw_u64(j, key, metric_get(&tab[i], st));
        }
    }
}

static void
render_stats(struct admin *a, struct obuf *b)
{
    struct jw j = { .b = b };
    uint64_t now = stats_now_usec(), total = 0, curr = 0;
    struct pool_sum ps;
    struct server_sum ss;
    struct server_state sst;
    uint32_t pi, si;

    /* twemproxy counts every connection it holds; memring sums what its
     * counters know: clients accepted (total), clients + servers open. */
    for (pi = 0; pi < npools(a); pi++) {
        sum_pool(a, pi, &ps);
        total += ps.st.total_connections;
        curr += ps.st.client_connections;
        for (si = 0; si < ref_pool(a, pi)->nservers; si++) {
            sum_server(a, pi, si, &ss);
            curr += ss.st.server_connections;
        }
    }
    jw_open(&j, NULL, '{');
    jw_str(&j, "service", "memring");
    jw_str(&j, "source", a->host);
    jw_str(&j, "version", MEMRING_VERSION);
    jw_u64(&j, "uptime", (now - a->started_usec) / 1000000);
    jw_u64(&j, "timestamp", now / 1000000);
    jw_u64(&j, "total_connections", total);
    jw_u64(&j, "curr_connections", curr);
    jw_u64(&j, "memring_workers", a->nworkers);
    if (a->reload_stats != NULL) {
        jw_u64(&j, "memring_reloads", a->reload_stats->reloads);
        jw_u64(&j, "memring_reload_failures", a->reload_stats->failed);
    }
    for (pi = 0; pi < npools(a); pi++) {
        const struct pool *p = ref_pool(a, pi);
        sum_pool(a, pi, &ps);
        jw_open(&j, p->cp->name, '{');
        json_metrics(&j, pool_metrics, NPOOL_METRICS, twemproxy_pool_fields,
                     &ps.st);
        json_latency(&j, &ps.lat);
        for (si = 0; si < p->nservers; si++) {
            sum_server(a, pi, si, &ss);
            server_state(a, pi, si, &sst);
            jw_open(&j, p->servers[si]->cs->name, '{');
            json_metrics(&j, server_metrics, NSERVER_METRICS,
                         twemproxy_server_fields, &ss.st);
            json_latency(&j, &ss.lat);
            jw_u64(&j, "memring_ejected", sst.ejected);
            jw_u64(&j, "memring_live", sst.live);
            jw_close(&j, '}');
        }
        jw_close(&j, '}');
    }
    jw_close(&j, '}');
    ob_add(b, "\n", 1);
}

/* ---------------------------------------------------------------------
 * GET /metrics: Prometheus text exposition format 0.0.4
 *
 * Names: memring_pool_<field> / memring_server_<field> (a server field's
 * own "server_" prefix dropped); counters end in _total (a leading
 * "total_" dropped); timestamps become _seconds gauges.
 * ------------------------------------------------------------------- */

static void
prom_name(char *out, size_t size, const char *family, const struct metric *m)
{
    const char *name = m->name;

    if (strcmp(family, "server") == 0 && strncmp(name, "server_", 7) == 0) {
        name += 7;
    }
    if (m->type == STATS_COUNTER && strncmp(name, "total_", 6) == 0) {
        name += 6;
    }
    snprintf(out, size, "memring_%s_%s%s", family, name,
             m->type == STATS_COUNTER ? "_total" :
             m->type == STATS_TIMESTAMP ? "_seconds" : "");
}

/* "# HELP" text: the table's description, with its leading "# " (a
 * count marker in twemproxy's descriptions) read as "Number of". */
static void
prom_head(struct obuf *b, const char *name, const char *type,
          const char *help)
{
    if (strncmp(help, "# ", 2) == 0) {
        help += 2;
        ob_printf(b, "# HELP %s Number of %s.\n", name, help);
    } else {
        ob_printf(b, "# HELP %s %s.\n", name, help);
    }
    ob_printf(b, "# TYPE %s %s\n", name, type);
}

static void
prom_metric_head(struct obuf *b, const char *name, const struct metric *m)
{
    if (m->type == STATS_TIMESTAMP) {
        /* the table's unit is usec; Prometheus wants seconds */
        ob_printf(b, "# HELP %s %s, in seconds since the epoch (0: never)."
                  "\n# TYPE %s gauge\n", name, m->name, name);
    } else {
        prom_head(b, name, m->type == STATS_COUNTER ? "counter" : "gauge",
                  m->desc);
    }
}

static void
prom_labels(struct obuf *b, const char *pool, const char *server)
{
    ob_str(b, "{pool=\"");
    ob_prom_label(b, pool);
    if (server != NULL) {
        ob_str(b, "\",server=\"");
        ob_prom_label(b, server);
    }
    ob_str(b, "\"}");
}

static void
prom_value(struct obuf *b, const struct metric *m, uint64_t v)
{
    ob_add(b, " ", 1);
    if (m->type == STATS_TIMESTAMP) {
        ob_seconds(b, v);
    } else {
        ob_printf(b, "%" PRIu64, v);
    }
    ob_add(b, "\n", 1);
}

static void
prom_hist(struct obuf *b, const char *name, const char *pool,
          const char *server, const struct stats_hist *h)
{
    uint64_t cum = 0;
    uint32_t i;

    for (i = 0; i < STATS_HIST_NBUCKETS; i++) {
        cum += h->buckets[i];
        ob_printf(b, "%s_bucket{pool=\"", name);
        ob_prom_label(b, pool);
        if (server != NULL) {
            ob_str(b, "\",server=\"");
            ob_prom_label(b, server);
        }
        ob_str(b, "\",le=\"");
        if (i < STATS_HIST_NBOUNDS) {
            ob_seconds(b, stats_hist_bounds_us[i]);
        } else {
            ob_str(b, "+Inf");
        }
        ob_printf(b, "\"} %" PRIu64 "\n", cum);
    }
    ob_printf(b, "%s_sum", name);
    prom_labels(b, pool, server);
    ob_add(b, " ", 1);
    ob_seconds(b, h->sum_us);
    ob_printf(b, "\n%s_count", name);
    prom_labels(b, pool, server);
    ob_printf(b, " %" PRIu64 "\n", h->count);
}

static void
render_metrics(struct admin *a, struct obuf *b)
{
    const char *hist;
    char name[128];
    struct pool_sum ps;
    struct server_sum ss;
    struct server_state sst;
    uint32_t pi, si, nlive, nej, nbo, ndn;
    size_t m;

    prom_head(b, "memring_build_info", "gauge",
              "memring's version, as a label");
    ob_str(b, "memring_build_info{version=\"" MEMRING_VERSION "\"} 1\n");
    prom_head(b, "memring_uptime_seconds", "gauge",
              "Seconds since memring started");
    ob_printf(b, "memring_uptime_seconds %" PRIu64 "\n",
              (stats_now_usec() - a->started_usec) / 1000000);
    prom_head(b, "memring_workers", "gauge", "Worker threads");
    ob_printf(b, "memring_workers %" PRIu32 "\n", a->nworkers);
    if (a->reload_stats != NULL) {
        prom_head(b, "memring_reloads_total", "counter",
                  "Config reloads applied");
        ob_printf(b, "memring_reloads_total %" PRIu64 "\n",
                  a->reload_stats->reloads);
        prom_head(b, "memring_reload_failures_total", "counter",
                  "Config reloads refused (bad file, or could not apply)");
        ob_printf(b, "memring_reload_failures_total %" PRIu64 "\n",
                  a->reload_stats->failed);
    }
    prom_head(b, "memring_admin_connections", "gauge",
              "Open admin connections (this one included)");
    ob_printf(b, "memring_admin_connections %" PRIu32 "\n", a->nconns);
    prom_head(b, "memring_admin_connections_total", "counter",
              "Admin connections taken on");
    ob_printf(b, "memring_admin_connections_total %" PRIu64 "\n", a->nserved);
    prom_head(b, "memring_admin_refused_total", "counter",
              "Admin connections refused: too many open");
    ob_printf(b, "memring_admin_refused_total %" PRIu64 "\n", a->nrefused);
    prom_head(b, "memring_admin_bad_requests_total", "counter",
              "Admin requests refused as malformed or too large");
    ob_printf(b, "memring_admin_bad_requests_total %" PRIu64 "\n", a->nbad);
    prom_head(b, "memring_admin_timeouts_total", "counter",
              "Admin requests not sent, or replies not read, in time");
    ob_printf(b, "memring_admin_timeouts_total %" PRIu64 "\n", a->ntimedout);

    for (m = 0; m < NPOOL_METRICS; m++) {
        const struct metric *mt = &pool_metrics[m];
        prom_name(name, sizeof(name), "pool", mt);
        prom_metric_head(b, name, mt);
        for (pi = 0; pi < npools(a); pi++) {
            sum_pool(a, pi, &ps);
            ob_str(b, name);
            prom_labels(b, ref_pool(a, pi)->cp->name, NULL);
            prom_value(b, mt, metric_get(mt, &ps.st));
        }
    }
    prom_head(b, "memring_pool_servers", "gauge", "Servers configured");
    for (pi = 0; pi < npools(a); pi++) {
        ob_str(b, "memring_pool_servers");
        prom_labels(b, ref_pool(a, pi)->cp->name, NULL);
        ob_printf(b, " %" PRIu32 "\n", ref_pool(a, pi)->nservers);
    }
    prom_head(b, "memring_pool_live_servers", "gauge",
              "Servers neither ejected nor in connect backoff");
    for (pi = 0; pi < npools(a); pi++) {
        nlive = 0;
        for (si = 0; si < ref_pool(a, pi)->nservers; si++) {
            server_state(a, pi, si, &sst);
            nlive += sst.live;
        }
        ob_str(b, "memring_pool_live_servers");
        prom_labels(b, ref_pool(a, pi)->cp->name, NULL);
        ob_printf(b, " %" PRIu32 "\n", nlive);
    }
    prom_head(b, "memring_pool_healthy", "gauge",
              "1 when the pool has a live server (what /healthz checks)");
    for (pi = 0; pi < npools(a); pi++) {
        ob_str(b, "memring_pool_healthy");
        prom_labels(b, ref_pool(a, pi)->cp->name, NULL);
        ob_printf(b, " %d\n", pool_healthy(a, pi, &nej, &nbo, &ndn) ? 1 : 0);
    }
    hist = "memring_pool_request_duration_seconds";
    prom_head(b, hist, "histogram",
              "Client request latency, parsed to reply sent");
    for (pi = 0; pi < npools(a); pi++) {
        sum_pool(a, pi, &ps);
        prom_hist(b, hist, ref_pool(a, pi)->cp->name, NULL, &ps.lat);
    }

    for (m = 0; m < NSERVER_METRICS; m++) {
        const struct metric *mt = &server_metrics[m];
        prom_name(name, sizeof(name), "server", mt);
        prom_metric_head(b, name, mt);
        for (pi = 0; pi < npools(a); pi++) {
            const struct pool *p = ref_pool(a, pi);
            for (si = 0; si < p->nservers; si++) {
                sum_server(a, pi, si, &ss);
                ob_str(b, name);
                prom_labels(b, p->cp->name, p->servers[si]->cs->name);
                prom_value(b, mt, metric_get(mt, &ss.st));
            }
        }
    }
    prom_head(b, "memring_server_ejected", "gauge",
              "1 while the server is off the ring");
    for (pi = 0; pi < npools(a); pi++) {
        const struct pool *p = ref_pool(a, pi);
        for (si = 0; si < p->nservers; si++) {
            server_state(a, pi, si, &sst);
            ob_str(b, "memring_server_ejected");
            prom_labels(b, p->cp->name, p->servers[si]->cs->name);
            ob_printf(b, " %d\n", sst.ejected ? 1 : 0);
        }
    }
    prom_head(b, "memring_server_live", "gauge",
              "1 when the server is neither ejected nor in connect backoff");
    for (pi = 0; pi < npools(a); pi++) {
        const struct pool *p = ref_pool(a, pi);
        for (si = 0; si < p->nservers; si++) {
            server_state(a, pi, si, &sst);
            ob_str(b, "memring_server_live");
            prom_labels(b, p->cp->name, p->servers[si]->cs->name);
            ob_printf(b, " %d\n", sst.live ? 1 : 0);
        }
    }
    hist = "memring_server_request_duration_seconds";
    prom_head(b, hist, "histogram",
              "Backend latency, request written to reply read");
    for (pi = 0; pi < npools(a); pi++) {
        const struct pool *p = ref_pool(a, pi);
        for (si = 0; si < p->nservers; si++) {
            sum_server(a, pi, si, &ss);
            prom_hist(b, hist, p->cp->name, p->servers[si]->cs->name,
                      &ss.lat);
        }
    }
}

/* ---------------------------------------------------------------------
 * GET /healthz
 * ------------------------------------------------------------------- */

/* One line per server of pool pi whose latest connect failed (by a
 * request, or by the prober for an idle one), saying why. */
static void
healthz_down_servers(struct admin *a, uint32_t pi, struct obuf *b)
{
    const struct pool *p = ref_pool(a, pi);
    uint32_t si;

    for (si = 0; si < p->nservers; si++) {
        const struct server *s = p->servers[si];
        int err = health_down(s->health);

        if (err != 0) {
            ob_str(b, "pool ");
            ob_text(b, p->cp->name);
            ob_str(b, ": server ");
            ob_text(b, s->cs->name);
            ob_str(b, " (");
            ob_text(b, s->cs->text);
            ob_printf(b, "): down: %s\n", uv_strerror(err));
        }
    }
}

static int
render_healthz(struct admin *a, struct obuf *b)
{
    struct obuf why = { 0 };
    uint32_t pi, nej, nbo, ndn, nbad = 0;
    int status;

    for (pi = 0; pi < npools(a); pi++) {
        if (!pool_healthy(a, pi, &nej, &nbo, &ndn)) {
            nbad++;
            ob_str(&why, "pool ");
            ob_text(&why, ref_pool(a, pi)->cp->name);
            ob_printf(&why, ": no live server (%" PRIu32 " of %" PRIu32
                      " ejected, %" PRIu32 " in connect backoff, %" PRIu32
                      " down)\n", nej, ref_pool(a, pi)->nservers, nbo, ndn);
        }
        healthz_down_servers(a, pi, &why);
    }
    if (nbad == 0) {
        ob_printf(b, "ok: %" PRIu32 " pools, each with a live server\n",
                  npools(a));
        status = 200;
    } else {
        ob_printf(b, "unhealthy: %" PRIu32 " of %" PRIu32 " pools have "
                  "no live server\n", nbad, npools(a));
        status = 503;
    }
    if (why.len > 0) {
        ob_add(b, why.data, why.len);
    }
    b->oom = b->oom || why.oom;
    ob_free(&why);
    return status;
}

/* ---------------------------------------------------------------------
 * GET /config
 * ------------------------------------------------------------------- */

static void
json_ms(struct jw *j, const char *key, int64_t ms)
{
    if (ms < 0) {
        jw_null(j, key);    /* -1: none, as in the YAML's absence */
    } else {
        jw_i64(j, key, ms);
    }
}

static void
json_conf_pool(struct admin *a, struct jw *j, uint32_t pi)
{
    const struct pool *p0 = ref_pool(a, pi);
    const struct conf_pool *cp = p0->cp;
    struct server_state sst;
    struct server_sum ss;
    uint32_t si, w;

    jw_open(j, NULL, '{');
    jw_str(j, "name", cp->name);
    jw_str(j, "listen", cp->listen.text);
    jw_str(j, "hash", hash_name(cp->hash));
    if (cp->hash_tag[0] != '\0') {
        jw_str(j, "hash_tag", cp->hash_tag);
    } else {
        jw_null(j, "hash_tag");
    }
    jw_str(j, "distribution", dist_name(cp->distribution));
    json_ms(j, "timeout", cp->timeout);
    jw_i64(j, "backlog", cp->backlog);
    jw_bool(j, "preconnect", cp->preconnect);
    jw_i64(j, "client_connections", cp->client_connections);
    jw_i64(j, "server_connections", cp->server_connections);
    jw_bool(j, "auto_eject_hosts", cp->auto_eject_hosts);
    json_ms(j, "server_retry_timeout", cp->server_retry_timeout);
    jw_i64(j, "server_failure_limit", cp->server_failure_limit);
    jw_bool(j, "tcpkeepalive", cp->tcpkeepalive);

    /* Each worker has its own ring (ejection is per worker). */
    jw_open(j, "ring", '[');
    for (w = 0; w < a->nworkers; w++) {
        const struct pool *p = worker_pool(a, w, pi);
        if (p == NULL) {
            continue;
        }
        jw_open(j, NULL, '{');
        jw_u64(j, "worker", a->workers[w]->id);
        jw_u64(j, "npoints", p->ring != NULL ? ring_npoints(p->ring) : 0);
        jw_u64(j, "live_servers", p->nservers - p->nejected);
        jw_u64(j, "ejected_servers", p->nejected);
        jw_close(j, '}');
    }
    jw_close(j, ']');

    jw_open(j, "servers", '[');
    for (si = 0; si < p0->nservers; si++) {
        const struct conf_server *cs = p0->servers[si]->cs;
        server_state(a, pi, si, &sst);
        sum_server(a, pi, si, &ss);
        jw_open(j, NULL, '{');
        jw_str(j, "name", cs->name);
        jw_str(j, "host", cs->host);
        if (cs->is_unix) {
            jw_null(j, "port");
        } else {
            jw_u64(j, "port", cs->port);
        }
        jw_u64(j, "weight", cs->weight);
        jw_bool(j, "alias", cs->has_alias);
        jw_str(j, "text", cs->text);
        jw_bool(j, "live", sst.live);
        jw_bool(j, "ejected", sst.ejected);
        if (sst.ejected) {
            jw_u64(j, "retry_in_ms", sst.retry_in_ms);
        } else {
            jw_null(j, "retry_in_ms");
        }
        jw_u64(j, "ejected_at", ss.st.server_ejected_at);
        jw_bool(j, "connect_backoff", sst.backoff);
        jw_close(j, '}');
    }
    jw_close(j, ']');
    jw_close(j, '}');
}

static void
render_config(struct admin *a, struct obuf *b)
{
    const struct conf *conf = a->workers[0]->conf;
    struct jw j = { .b = b };
    char when[32] = "";
    time_t t = (time_t)(a->conf_loaded_usec / 1000000);
    struct tm tm;
    uint32_t pi;

    if (gmtime_r(&t, &tm) != NULL) {
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    jw_open(&j, NULL, '{');
    jw_str(&j, "file", conf->path != NULL ? conf->path : "");
    jw_u64(&j, "loaded_at", a->conf_loaded_usec / 1000000);
    jw_str(&j, "loaded_at_utc", when);
    jw_str(&j, "version", MEMRING_VERSION);
    jw_u64(&j, "workers", a->nworkers);
    jw_open(&j, "pools", '[');
    for (pi = 0; pi < npools(a); pi++) {
        json_conf_pool(a, &j, pi);
    }
    jw_close(&j, ']');
    jw_close(&j, '}');
    ob_add(b, "\n", 1);
}

/* ---------------------------------------------------------------------
 * Routing
 * ------------------------------------------------------------------- */

#define TYPE_JSON "application/json"
#define TYPE_TEXT "text/plain; charset=utf-8"
#define TYPE_PROM "text/plain; version=0.0.4; charset=utf-8"

enum admin_route {
    ROUTE_STATS = 0,
    ROUTE_METRICS,
    ROUTE_HEALTHZ,
    ROUTE_CONFIG,
    ROUTE_RELOAD,
    ROUTE_NONE
};

static const struct {
    const char       *path;
    enum admin_route route;
    bool             post;     /* POST only, else GET and HEAD */
} routes[] = {
    { "/stats",   ROUTE_STATS,   false },
    { "/metrics", ROUTE_METRICS, false },
    { "/healthz", ROUTE_HEALTHZ, false },
    { "/config",  ROUTE_CONFIG,  false },
    { "/reload",  ROUTE_RELOAD,  true },
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

static void
reply_text(struct admin_reply *r, struct obuf *b, int status,
           const char *text)
{
    r->status = status;
    r->type = TYPE_TEXT;
    ob_str(b, text);
}

static void
respond_reload(struct admin *a, struct admin_reply *r, struct obuf *b)
{
    char msg[4096] = "";

    if (a->reload == NULL) {
        reply_text(r, b, 501, "reload: not available in this build\n");
        return;
    }
    r->type = TYPE_TEXT;
    r->status = a->reload(a->reload_arg, msg, sizeof(msg)) == 0 ? 200 : 500;
    ob_str(b, msg);
    if (b->len == 0 || b->data[b->len - 1] != '\n') {
        ob_add(b, "\n", 1);
    }
}

int
admin_respond(struct admin *a, const char *method, const char *path,
              struct admin_reply *r)
{
    struct obuf b = { 0 };
    size_t plen = strcspn(path, "?#");
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    enum admin_route route = ROUTE_NONE;
    size_t i;

    memset(r, 0, sizeof(*r));
    for (i = 0; i < NROUTES; i++) {
        if (strlen(routes[i].path) == plen &&
            memcmp(routes[i].path, path, plen) == 0) {
            route = routes[i].route;
            break;
        }
    }
    if (route == ROUTE_NONE) {
        reply_text(r, &b, 404, "not found; try /stats /metrics /healthz "
                   "/config or POST /reload\n");
    } else if (routes[i].post ? strcmp(method, "POST") != 0 : !get) {
        reply_text(r, &b, 405, "method not allowed\n");
        r->allow = routes[i].post ? "POST" : "GET, HEAD";
    } else {
        r->status = 200;
        switch (route) {
        case ROUTE_STATS:
            r->type = TYPE_JSON;
            render_stats(a, &b);
            break;
        case ROUTE_METRICS:
            r->type = TYPE_PROM;
            render_metrics(a, &b);
            break;
        case ROUTE_HEALTHZ:
            r->type = TYPE_TEXT;
            r->status = render_healthz(a, &b);
            break;
        case ROUTE_CONFIG:
            r->type = TYPE_JSON;
            render_config(a, &b);
            break;
        case ROUTE_RELOAD:
            respond_reload(a, r, &b);
            break;
        case ROUTE_NONE:
            break;
        }
    }
    if (b.oom) {
        ob_free(&b);
        memset(r, 0, sizeof(*r));
        return UV_ENOMEM;
    }
    r->body = b.data;
    r->len = b.len;
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

static int
http_on_url(llhttp_t *parser, const char *at, size_t len)
{
    struct admin_http *h = parser->data;

    if (len > ADMIN_URL_MAX - h->url_len) {
        return http_refuse(h, 414, "request target too long\n",
                           "url too long");
    }
    memcpy(h->url + h->url_len, at, len);
    h->url_len += len;
    h->url[h->url_len] = '\0';
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
    struct obuf b = { 0 };

    ob_printf(&b, "HTTP/1.1 %d %s\r\n"
              "Server: memring/" MEMRING_VERSION "\r\n"
              "Content-Type: %s\r\n"
              "Content-Length: %zu\r\n"
              "Cache-Control: no-store\r\n"
              "Connection: close\r\n",
              r->status, status_reason(r->status),
              r->type != NULL ? r->type : TYPE_TEXT, r->len);
    if (r->allow != NULL) {
        ob_printf(&b, "Allow: %s\r\n", r->allow);
    }
    ob_add(&b, "\r\n", 2);
    if (!head && r->len > 0) {
        ob_add(&b, r->body, r->len);
    }
    if (b.oom) {
        ob_free(&b);
        admin_conn_close(c);
        return;
    }
    admin_send(c, b.data, b.len);
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

    if (admin_respond(c->admin, "GET", "/stats", &r) != 0) {
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

    if (admin_respond(c->admin, method, c->http.url, &r) != 0) {
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
