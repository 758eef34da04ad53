/*
 * admin tests: the documents (/stats, /metrics, /healthz, /config) and the
 * routing, through admin_respond() on real workers built from a parsed
 * config (no listening, no traffic); counters and ejection state are set
 * by hand. The HTTP side is tested against the binary (it_admin.py).
 */
#include "memring/admin.h"
#include "memring/conf.h"
#include "memring/ring_tool.h"

#include "memring/conf.h"
#include "memring/health.h"
#include "memring/pool.h"
#include "memring/stats.h"
#include "memring/worker.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "workers_fixture.h"

/* Names with every kind of byte JSON and Prometheus must escape. */
static const char weird_yaml[] =
    "\"q\\\"b\\\\s\\x01\\u00e9\":\n"
    "  listen: 127.0.0.1:22121\n"
    "  timeout: 100\n"
    "  servers:\n"
    "   - 127.0.0.1:11211:1 a\"b\\c\n";

/* The workers are wf's (workers_fixture.h); the admin reads them. */
struct fixture {
    struct admin       *admin;
    struct admin_reply r;
    struct worker      *w;      /* wf.w */
};

static struct fixture fx;

static int
setup_with(void **state, const char *yaml, uint32_t nworkers)
{
    memset(&fx, 0, sizeof(fx));
    if (wf_setup_yaml(yaml, nworkers) != 0) {
        return -1;
    }
    fx.w = wf.w;
    fx.admin = admin_create(&wf.w[0].io.loop, wf.wp, nworkers);
    if (fx.admin == NULL) {
        return -1;
    }
    admin_conf_loaded(fx.admin, 1700000000123456u);
    *state = &fx;
    return 0;
}

static int
setup_one(void **state)
{
    return setup_with(state, wf_yaml, 1);
}

static int
setup_two(void **state)
{
    return setup_with(state, wf_yaml, 2);
}

static int
setup_weird(void **state)
{
    return setup_with(state, weird_yaml, 1);
}

static int
teardown(void **state)
{
    admin_reply_free(&fx.r);
    admin_close(fx.admin);
    wf_teardown(state);         /* the loops run the admin's close_cbs */
    admin_destroy(&fx.admin);
    return 0;
}

/* The reply for method path, kept in fx.r (freed by the next call). */
static const char *
get(const char *method, const char *path)
{
    struct admin_request req = { .method = method, .path = path };

    admin_reply_free(&fx.r);
    assert_int_equal(admin_respond(fx.admin, &req, &fx.r), 0);
    assert_non_null(fx.r.body);
    return fx.r.body;
}

static struct server *
server(uint32_t w, uint32_t si)
{
    return wf_server(w, si);
}

static uint64_t
now(uint32_t w)
{
    return wf_now(w);
}

/* Ejects server si of pool alpha, in every worker (the state is shared),
 * for ms from now. */
static void
eject_for(uint32_t si, uint64_t ms)
{
    assert_true(wf_eject_for(si, ms));
}

/* Puts server si back on the ring and ends its probation. */
static void
readmit(uint32_t si)
{
    assert_true(health_readmit(server(0, si)->health, UINT64_MAX));
    health_success(server(0, si)->health);
}

/* ------------------------------------------------------------- /stats */

/* twemproxy's fields come first, in twemproxy's order and spelling, and
 * memring's follow with their prefix; servers by ring name. */
static void
test_stats_twemproxy_shape(void **state)
{
    const char *b;

    (void)state;
    b = get("GET", "/stats");
    assert_int_equal(fx.r.status, 200);
    assert_string_equal(fx.r.type, "application/json");
    assert_int_equal(b[fx.r.len - 1], '\n');
    assert_non_null(strstr(b, "{\"service\":\"memring\",\"source\":\""));
    assert_non_null(strstr(b, "\"total_connections\":0,"
                              "\"curr_connections\":0,"));
    assert_non_null(strstr(b, "\"alpha\":{\"client_eof\":0,\"client_err\":0,"
                              "\"client_connections\":0,"
                              "\"server_ejects\":0,\"forward_error\":0,"
                              "\"fragments\":0,\"memring_"));
    /* beta sorts first: shorter names first, as twemproxy orders them */
    assert_non_null(strstr(b, "\"beta\":{\"server_eof\":0,\"server_err\":0,"
                              "\"server_timedout\":0,"
                              "\"server_connections\":0,"
                              "\"server_ejected_at\":0,\"requests\":0,"
                              "\"request_bytes\":0,\"responses\":0,"
                              "\"response_bytes\":0,\"in_queue\":0,"
                              "\"in_queue_bytes\":0,\"out_queue\":0,"
                              "\"out_queue_bytes\":0,\"memring_"));
    assert_non_null(strstr(b, "},\"127.0.0.1\":{\"server_eof\":0"));
    assert_non_null(strstr(b, "\"memring_latency_p99_us\":0"));
}

/* Counters and gauges add up over workers; a timestamp keeps the latest;
 * latency histograms merge. */
static void
test_stats_sum_over_workers(void **state)
{
    struct pool *p0 = fx.w[0].pools[0], *p1 = fx.w[1].pools[0];
    const char *b;

    (void)state;
    p0->stats.cmd_get = 3;
    p1->stats.cmd_get = 4;
    p0->stats.client_connections = 1;
    p1->stats.client_connections = 2;
    p0->stats.total_connections = 10;
    p1->stats.total_connections = 20;
    server(0, 1)->stats.server_ejected_at = 9000000;
    server(1, 1)->stats.server_ejected_at = 5000000;
    server(0, 1)->stats.requests = 100;
    server(1, 1)->stats.requests = 11;
    server(1, 1)->stats.server_connections = 1;
    stats_hist_add(&p0->latency, 40);
    stats_hist_add(&p1->latency, 40);
    stats_hist_add(&p1->latency, 3000);

    b = get("GET", "/stats");
    assert_non_null(strstr(b, "\"total_connections\":30,"
                              "\"curr_connections\":4,"
                              "\"memring_workers\":2"));
    assert_non_null(strstr(b, "\"client_connections\":3,"));
    assert_non_null(strstr(b, "\"memring_cmd_get\":7,"));
    assert_non_null(strstr(b, "\"server_ejected_at\":9000000,"
                              "\"requests\":111,"));
    assert_non_null(strstr(b, "\"memring_latency_count\":3,"
                              "\"memring_latency_sum_us\":3080,"
                              "\"memring_latency_p50_us\":50,"
                              "\"memring_latency_p90_us\":5000,"));

    b = get("GET", "/metrics");
    assert_non_null(strstr(b, "\nmemring_pool_cmd_get_total{pool=\"alpha\"} "
                              "7\n"));
    assert_non_null(strstr(b, "\nmemring_server_ejected_at_seconds{"
                              "pool=\"alpha\",server=\"127.0.0.1\"} 9\n"));
    assert_non_null(strstr(b, "\nmemring_pool_connections_total{"
                              "pool=\"alpha\"} 30\n"));
}

/* ------------------------------------------------------------ /metrics */

static void
test_metrics_histogram(void **state)
{
    struct pool *p = fx.w[0].pools[0];
    const char *b;

    (void)state;
    stats_hist_add(&p->latency, 5);
    stats_hist_add(&p->latency, 30);
    stats_hist_add(&p->latency, 6000000);      /* past the last bound */

    b = get("GET", "/metrics");
    assert_int_equal(fx.r.status, 200);
    assert_string_equal(fx.r.type, "text/plain; version=0.0.4; "
                                   "charset=utf-8");
    assert_non_null(strstr(b, "# TYPE memring_pool_request_duration_seconds "
                              "histogram\n"));
    assert_non_null(strstr(b,
        "memring_pool_request_duration_seconds_bucket{pool=\"alpha\","
        "le=\"0.00001\"} 1\n"
        "memring_pool_request_duration_seconds_bucket{pool=\"alpha\","
        "le=\"0.000025\"} 1\n"
        "memring_pool_request_duration_seconds_bucket{pool=\"alpha\","
        "le=\"0.00005\"} 2\n"));
    assert_non_null(strstr(b,
        "memring_pool_request_duration_seconds_bucket{pool=\"alpha\","
        "le=\"5\"} 2\n"
        "memring_pool_request_duration_seconds_bucket{pool=\"alpha\","
        "le=\"+Inf\"} 3\n"
        "memring_pool_request_duration_seconds_sum{pool=\"alpha\"} "
        "6.000035\n"
        "memring_pool_request_duration_seconds_count{pool=\"alpha\"} 3\n"));
    /* one HELP and TYPE per family, counters named _total */
    assert_non_null(strstr(b, "# TYPE memring_pool_client_eof_total "
                              "counter\n"));
    assert_non_null(strstr(b, "# TYPE memring_server_connections gauge\n"));
    assert_non_null(strstr(b, "# TYPE memring_server_requests_total "
                              "counter\n"));
    assert_null(strstr(b, "server_server_"));
}

/* ------------------------------------------------------------- /healthz */

static void
test_healthz(void **state)
{
    const char *b;

    (void)state;
    b = get("GET", "/healthz");
    assert_int_equal(fx.r.status, 200);
    assert_non_null(strstr(b, "ok"));

    eject_for(0, 30000);
    get("GET", "/healthz");
    assert_int_equal(fx.r.status, 200);     /* 127.0.0.1 is live */

    eject_for(1, 30000);
    b = get("GET", "/healthz");
    assert_int_equal(fx.r.status, 503);
    assert_non_null(strstr(b, "pool alpha: no live server (2 of 2 "
                              "ejected, 0 in connect backoff, 0 down)"));

    /* back on the ring, but its last connect failed */
    readmit(1);
    server(0, 1)->retry_at = now(0) + 1000;
    b = get("GET", "/healthz");
    assert_int_equal(fx.r.status, 503);
    assert_non_null(strstr(b, "(1 of 2 ejected, 1 in connect backoff, "
                              "0 down)"));

    server(0, 1)->retry_at = now(0);               /* retry due: live */
    get("GET", "/healthz");
    assert_int_equal(fx.r.status, 200);

    /* its latest connect (a request's or the prober's) failed: down, and
     * named whatever the status */
    health_seen(server(0, 1)->health, UV_ECONNREFUSED);
    b = get("GET", "/healthz");
    assert_int_equal(fx.r.status, 503);
    assert_non_null(strstr(b, "(1 of 2 ejected, 0 in connect backoff, "
                              "1 down)"));
    assert_non_null(strstr(b, "pool alpha: server 127.0.0.1 ("));
    assert_non_null(strstr(b, "): down: connection refused\n"));
    readmit(0);
    b = get("GET", "/healthz");
    assert_int_equal(fx.r.status, 200);
    assert_non_null(strstr(b, "): down: connection refused\n"));
    health_seen(server(0, 1)->health, 0);
    b = get("GET", "/healthz");
    assert_null(strstr(b, "down:"));
    eject_for(0, 30000);

    /* ejected, but due back: the next request readmits it, so live */
    eject_for(1, 0);
    get("GET", "/healthz");
    assert_int_equal(fx.r.status, 200);
    readmit(1);
    b = get("GET", "/metrics");
    assert_non_null(strstr(b, "memring_pool_live_servers{pool=\"alpha\"} "
                              "1\n"));
    assert_non_null(strstr(b, "memring_server_ejected{pool=\"alpha\","
                              "server=\"beta\"} 1\n"));
}

/* A pool without a live server in any one worker fails those of its
 * clients that worker serves: unhealthy. Ejection is shared by the workers;
 * connect backoff is not. */
static void
test_healthz_per_worker(void **state)
{
    (void)state;
    eject_for(0, 30000);
    assert_true(health_ejected_until(server(1, 0)->health) != 0);
    server(1, 1)->retry_at = now(1) + 30000;
    get("GET", "/healthz");
    assert_int_equal(fx.r.status, 503);
    server(1, 1)->retry_at = 0;
    get("GET", "/healthz");
    assert_int_equal(fx.r.status, 200);
}

/* -------------------------------------------------------------- /config */

static void
test_config(void **state)
{
    struct pool *p = fx.w[0].pools[0];
    const char *b;

    (void)state;
    eject_for(0, 30000);
    p->nejected = 1;
    b = get("GET", "/config");
    assert_int_equal(fx.r.status, 200);
    assert_non_null(strstr(b, "{\"file\":\"t.yml\",\"loaded_at\":1700000000,"
                              "\"loaded_at_utc\":\"2023-11-14T22:13:20Z\""));
    assert_non_null(strstr(b, "\"name\":\"alpha\",\"listen\":"
                              "\"127.0.0.1:22121\",\"hash\":\"fnv1a_64\","
                              "\"hash_tag\":null,\"distribution\":\"ketama\","
                              "\"placement\":\"twemproxy\",\"prefix\":null,"
                              "\"timeout\":null,"));
    assert_non_null(strstr(b, "\"ring\":[{\"worker\":0,\"npoints\":320,"
                              "\"live_servers\":1,\"ejected_servers\":1}]"));
    assert_non_null(strstr(b, "{\"name\":\"beta\",\"host\":\"127.0.0.1\","
                              "\"port\":11212,\"weight\":1,\"alias\":true,"
                              "\"text\":\"127.0.0.1:11212:1 beta\","
                              "\"live\":false,\"ejected\":true,"
                              "\"retry_in_ms\":30000,"));
    assert_non_null(strstr(b, "{\"name\":\"127.0.0.1\",\"host\":"
                              "\"127.0.0.1\",\"port\":11211,\"weight\":1,"
                              "\"alias\":false,\"text\":"
                              "\"127.0.0.1:11211:1\",\"live\":true,"
                              "\"ejected\":false,\"retry_in_ms\":null,"));
    p->nejected = 0;
}

/* --------------------------------------------------------------- routes */

static void
test_routes(void **state)
{
    (void)state;
    get("GET", "/nope");
    assert_int_equal(fx.r.status, 404);
    get("GET", "/stats/");
    assert_int_equal(fx.r.status, 404);
    get("GET", "/stats?x=1");
    assert_int_equal(fx.r.status, 200);
    get("HEAD", "/metrics");
    assert_int_equal(fx.r.status, 200);
    get("DELETE", "/stats");
    assert_int_equal(fx.r.status, 405);
    assert_string_equal(fx.r.allow, "GET, HEAD");
    get("GET", "/reload");
    assert_int_equal(fx.r.status, 405);
    assert_string_equal(fx.r.allow, "POST");
    get("POST", "/reload");
    assert_int_equal(fx.r.status, 501);
    get("POST", "/config");
    assert_int_equal(fx.r.status, 405);
}

static int
fake_reload(void *arg, char *msg, size_t len)
{
    int *calls = arg;

    (*calls)++;
    snprintf(msg, len, *calls == 1 ? "reload 1 applied" : "conf: t.yml:1:1: "
             "bad");
    return *calls == 1 ? 0 : UV_EINVAL;
}

/* POST /reload runs the hook: 200 and its summary, 500 and its reason. */
static void
test_reload_hook(void **state)
{
    int calls = 0;
    const char *b;

    (void)state;
    admin_set_reload(fx.admin, fake_reload, &calls);
    b = get("POST", "/reload");
    assert_int_equal(fx.r.status, 200);
    assert_string_equal(b, "reload 1 applied\n");
    b = get("POST", "/reload");
    assert_int_equal(fx.r.status, 500);
    assert_string_equal(b, "conf: t.yml:1:1: bad\n");
    get("GET", "/reload");
    assert_int_equal(fx.r.status, 405);
    assert_int_equal(calls, 2);
}

/* The reply for a POST with body, kept in fx.r. */
static const char *
post(const char *path, const char *body)
{
    struct admin_request req = {
        .method = "POST", .path = path, .body = body,
        .body_len = body != NULL ? strlen(body) : 0,
    };

    admin_reply_free(&fx.r);
    assert_int_equal(admin_respond(fx.admin, &req, &fx.r), 0);
    assert_non_null(fx.r.body);
    return fx.r.body;
}

/* POST /ring/diff: ring_tool_diff()'s report of the running config
 * against the body; bad requests are 400 with the reason. */
static void
test_ring_diff(void **state)
{
    static const char grown[] =
        "alpha:\n"
        "  listen: 127.0.0.1:22121\n"
        "  auto_eject_hosts: true\n"
        "  servers:\n"
        "   - 127.0.0.1:11211:1\n"
        "   - 127.0.0.1:11212:1 beta\n"
        "   - 127.0.0.1:11213:1 gamma\n";
    char err[256], *want = NULL;
    size_t want_len = 0;
    struct conf *proposed;
    const char *b;
    FILE *out;

    (void)state;
    b = post("/ring/diff?sample=5000", wf_yaml);
    assert_int_equal(fx.r.status, 200);
    assert_non_null(strstr(b, "pool alpha: 5000 keys, 0 move"));

    proposed = conf_parse(grown, strlen(grown), "x", err, sizeof(err));
    assert_non_null(proposed);
    out = open_memstream(&want, &want_len);
    assert_non_null(out);
    assert_int_equal(ring_tool_diff(out, fx.w[0].conf, proposed, "alpha",
                                    NULL, 7000, err, sizeof(err)), 0);
    fclose(out);
    conf_destroy(&proposed);
    b = post("/ring/diff?pool=alpha&sample=7000", grown);
    assert_int_equal(fx.r.status, 200);
    assert_string_equal(b, want);
    assert_null(strstr(b, " 0 move"));
    free(want);

    b = post("/ring/diff", NULL);
    assert_int_equal(fx.r.status, 400);
    assert_non_null(strstr(b, "request body"));
    b = post("/ring/diff", "alpha: [\n");
    assert_int_equal(fx.r.status, 400);
    assert_non_null(strstr(b, "conf: request body:"));
    b = post("/ring/diff?sample=0", grown);
    assert_int_equal(fx.r.status, 400);
    b = post("/ring/diff?sample=1000001", grown);
    assert_int_equal(fx.r.status, 400);
    b = post("/ring/diff?pool=nope", grown);
    assert_int_equal(fx.r.status, 400);
    assert_non_null(strstr(b, "nope"));
    get("GET", "/ring/diff");
    assert_int_equal(fx.r.status, 405);
}

/* The reply to method path with an Authorization header (or NULL). */
static const char *
as(const char *auth, const char *method, const char *path)
{
    struct admin_request req = { .method = method, .path = path,
                                 .authorization = auth };

    admin_reply_free(&fx.r);
    assert_int_equal(admin_respond(fx.admin, &req, &fx.r), 0);
    return fx.r.body;
}

/* With a token, /config and the POSTs want it; the rest stays open. */
static void
test_token(void **state)
{
    int calls = 0;

    (void)state;
    admin_set_reload(fx.admin, fake_reload, &calls);
    as(NULL, "GET", "/config");
    assert_int_equal(fx.r.status, 200);         /* no token set: open */
    admin_set_token(fx.admin, "s3cret-t0ken");
    as(NULL, "GET", "/config");
    assert_int_equal(fx.r.status, 401);
    assert_true(fx.r.challenge);
    as("Basic czNjcmV0", "GET", "/config");
    assert_int_equal(fx.r.status, 401);
    as("Bearer s3cret-t0ke", "GET", "/config");
    assert_int_equal(fx.r.status, 403);
    as("Bearer s3cret-t0kenX", "POST", "/reload");
    assert_int_equal(fx.r.status, 403);
    as("Bearer ", "POST", "/ring/diff");
    assert_int_equal(fx.r.status, 403);
    assert_int_equal(calls, 0);
    as("Bearer s3cret-t0ken", "GET", "/config");
    assert_int_equal(fx.r.status, 200);
    as("bearer s3cret-t0ken", "POST", "/reload");
    assert_int_equal(fx.r.status, 200);
    assert_int_equal(calls, 1);
    as(NULL, "GET", "/metrics");
    assert_int_equal(fx.r.status, 200);
    as(NULL, "GET", "/stats");
    assert_int_equal(fx.r.status, 200);
    as(NULL, "GET", "/healthz");
    assert_true(fx.r.status == 200 || fx.r.status == 503);
    as(NULL, "GET", "/reload");                 /* the method first */
    assert_int_equal(fx.r.status, 405);
    admin_set_token(fx.admin, NULL);
    as(NULL, "GET", "/config");
    assert_int_equal(fx.r.status, 200);
}

/* ----------------------------------------------------------- admin_http */

static enum admin_http_state
feed(struct admin_http *h, const char *s)
{
    return admin_http_feed(h, s, strlen(s));
}

/* The Authorization header is kept, whatever its case and however the
 * request is split; other headers are not; an overlong one is a 400. */
static void
test_http_authorization(void **state)
{
    static const char req[] = "POST /reload HTTP/1.1\r\nX-Authorization: no"
                              "\r\naUtHoRiZaTiOn: Bearer abc def\r\n"
                              "Host: a\r\nContent-Length: 0\r\n\r\n";
    char big[ADMIN_AUTH_MAX + 200];
    struct admin_http h;
    size_t cut;

    (void)state;
    for (cut = 0; cut < strlen(req); cut++) {
        admin_http_init(&h);
        admin_http_feed(&h, req, cut);
        assert_int_equal(admin_http_feed(&h, req + cut, strlen(req) - cut),
                         ADMIN_HTTP_DONE);
        assert_true(h.has_auth);
        assert_string_equal(h.auth, "Bearer abc def");
        admin_http_deinit(&h);
    }
    admin_http_init(&h);
    assert_int_equal(feed(&h, "GET /config HTTP/1.1\r\nHost: a\r\n\r\n"),
                     ADMIN_HTTP_DONE);
    assert_false(h.has_auth);
    admin_http_deinit(&h);

    snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nAuthorization: Bearer "
             "%0*d\r\n\r\n", ADMIN_AUTH_MAX, 7);
    admin_http_init(&h);
    assert_int_equal(feed(&h, big), ADMIN_HTTP_BAD);
    assert_int_equal(h.status, 400);
    admin_http_deinit(&h);
}

/* A request split anywhere reads the same; what follows it is ignored. */
static void
test_http_split(void **state)
{
    static const char req[] = "GET /stats?x=1 HTTP/1.1\r\nHost: a\r\n"
                              "\r\nGARBAGE";
    struct admin_http h;
    size_t cut, len = strlen(req) - strlen("GARBAGE");

    (void)state;
    for (cut = 0; cut < len; cut++) {
        admin_http_init(&h);
        assert_int_equal(admin_http_feed(&h, req, cut), ADMIN_HTTP_MORE);
        assert_int_equal(admin_http_feed(&h, req + cut, strlen(req) - cut),
                         ADMIN_HTTP_DONE);
        assert_string_equal(h.url, "/stats?x=1");
        assert_string_equal(admin_http_method(&h), "GET");
        assert_null(h.body);
        admin_http_deinit(&h);
    }
    assert_int_equal(feed(&h, "more"), ADMIN_HTTP_DONE);
}

/* The body arrives whole however it is cut, NUL-terminated. */
static void
test_http_body(void **state)
{
    static const char req[] = "POST /reload HTTP/1.1\r\n"
                              "Content-Length: 11\r\n\r\nhello\0world";
    static const char chunked[] = "POST /reload HTTP/1.1\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n"
                                  "3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n";
    struct admin_http h;
    char big[ADMIN_BODY_MAX];
    size_t cut;

    (void)state;
    for (cut = 1; cut < sizeof(req) - 1; cut++) {
        admin_http_init(&h);
        assert_int_equal(admin_http_feed(&h, req, cut), ADMIN_HTTP_MORE);
        assert_int_equal(admin_http_feed(&h, req + cut, sizeof(req) - 1 - cut),
                         ADMIN_HTTP_DONE);
        assert_int_equal(h.body_bytes, 11);
        assert_memory_equal(h.body, "hello\0world", 12);
        admin_http_deinit(&h);
    }
    admin_http_init(&h);
    assert_int_equal(feed(&h, chunked), ADMIN_HTTP_DONE);
    assert_string_equal(h.body, "abcd");
    admin_http_deinit(&h);

    /* the largest body allowed, grown in steps */
    admin_http_init(&h);
    assert_int_equal(feed(&h, "POST /reload HTTP/1.1\r\n"
                              "Content-Length: 65536\r\n\r\n"),
                     ADMIN_HTTP_MORE);
    memset(big, 'b', sizeof(big));
    assert_int_equal(admin_http_feed(&h, big, 1000), ADMIN_HTTP_MORE);
    assert_int_equal(admin_http_feed(&h, big, sizeof(big) - 1000),
                     ADMIN_HTTP_DONE);
    assert_int_equal(h.body_bytes, ADMIN_BODY_MAX);
    assert_memory_equal(h.body, big, sizeof(big));
    assert_int_equal(h.body[ADMIN_BODY_MAX], '\0');
    admin_http_deinit(&h);
    assert_null(h.body);
    admin_http_deinit(&h);      /* twice is harmless */
}

/* A client that stops early: EOF is 400, the deadline 408; a request
 * already read or refused keeps its answer. */
static void
test_http_end(void **state)
{
    struct admin_http h;

    (void)state;
    admin_http_init(&h);
    assert_int_equal(feed(&h, "GET /sta"), ADMIN_HTTP_MORE);
    assert_int_equal(admin_http_end(&h, false), ADMIN_HTTP_BAD);
    assert_int_equal(h.status, 400);
    assert_string_equal(h.text, "incomplete request\n");
    assert_int_equal(admin_http_end(&h, true), ADMIN_HTTP_BAD);
    assert_int_equal(h.status, 400);
    assert_int_equal(feed(&h, "ts HTTP/1.1\r\n\r\n"), ADMIN_HTTP_BAD);

    admin_http_init(&h);
    assert_int_equal(feed(&h, "POST /reload HTTP/1.1\r\n"
                              "Content-Length: 3\r\n\r\nab"),
                     ADMIN_HTTP_MORE);
    assert_int_equal(admin_http_end(&h, true), ADMIN_HTTP_BAD);
    assert_int_equal(h.status, 408);
    assert_string_equal(h.text, "request timeout\n");
    admin_http_deinit(&h);

    admin_http_init(&h);
    assert_int_equal(feed(&h, "GET / HTTP/1.1\r\n\r\n"), ADMIN_HTTP_DONE);
    assert_int_equal(admin_http_end(&h, true), ADMIN_HTTP_DONE);
    assert_int_equal(h.status, 0);

    admin_http_init(&h);
    assert_int_equal(feed(&h, "hello\r\n"), ADMIN_HTTP_BAD);
    assert_int_equal(admin_http_end(&h, true), ADMIN_HTTP_BAD);
    assert_int_equal(h.status, 400);
    assert_string_equal(h.text, "bad request\n");
}

static void
test_http_bounds(void **state)
{
    struct admin_http h;
    char big[ADMIN_HEADER_MAX + 64];
    size_t i;

    (void)state;
    admin_http_init(&h);
    assert_int_equal(feed(&h, "hello\r\n\r\n"), ADMIN_HTTP_BAD);
    assert_int_equal(h.status, 400);
    assert_string_equal(h.text, "bad request\n");
    assert_int_equal(feed(&h, "GET / HTTP/1.1\r\n\r\n"), ADMIN_HTTP_BAD);

    /* a header that never ends: refused once past the bound */
    admin_http_init(&h);
    assert_int_equal(feed(&h, "GET / HTTP/1.1\r\nX-A: "), ADMIN_HTTP_MORE);
    memset(big, 'a', sizeof(big));
    for (i = 0; i < 2; i++) {
        if (admin_http_feed(&h, big, sizeof(big) / 2) == ADMIN_HTTP_BAD) {
            break;
        }
    }
    assert_int_equal(h.status, 413);
    assert_string_equal(h.text, "request too large\n");

    admin_http_init(&h);
    memset(big, 'u', ADMIN_URL_MAX + 1);
    assert_int_equal(feed(&h, "GET /"), ADMIN_HTTP_MORE);
    assert_int_equal(admin_http_feed(&h, big, ADMIN_URL_MAX),
                     ADMIN_HTTP_BAD);
    assert_int_equal(h.status, 414);
    assert_string_equal(h.text, "request target too long\n");

    admin_http_init(&h);
    assert_int_equal(feed(&h, "POST /reload HTTP/1.1\r\n"
                              "Content-Length: 65537\r\n\r\n"),
                     ADMIN_HTTP_BAD);
    assert_int_equal(h.status, 413);

    admin_http_init(&h);
    assert_int_equal(feed(&h, "POST /reload HTTP/1.1\r\n"
                              "Content-Length: 5\r\n\r\nab"),
                     ADMIN_HTTP_MORE);
    assert_int_equal(feed(&h, "cde"), ADMIN_HTTP_DONE);
    assert_string_equal(admin_http_method(&h), "POST");
    assert_string_equal(h.body, "abcde");
    admin_http_deinit(&h);

    /* a chunked body counts too */
    admin_http_init(&h);
    assert_int_equal(feed(&h, "POST /reload HTTP/1.1\r\nTransfer-Encoding: "
                              "chunked\r\n\r\n"), ADMIN_HTTP_MORE);
    memset(big, 'c', sizeof(big));
    for (i = 0; i < 20; i++) {
        char head[16];
        snprintf(head, sizeof(head), "%zx\r\n", sizeof(big));
        if (feed(&h, head) == ADMIN_HTTP_BAD ||
            admin_http_feed(&h, big, sizeof(big)) == ADMIN_HTTP_BAD) {
            break;
        }
        assert_int_equal(feed(&h, "\r\n"), ADMIN_HTTP_MORE);
    }
    assert_int_equal(h.status, 413);
    assert_true(h.body_bytes <= ADMIN_BODY_MAX);
    admin_http_deinit(&h);
}

/* ------------------------------------------------------------- escaping */

static void
test_escaping(void **state)
{
    const char *b;

    (void)state;
    b = get("GET", "/stats");
    assert_non_null(strstr(b, "\"q\\\"b\\\\s\\u0001\xc3\xa9\":{"));
    assert_non_null(strstr(b, "\"a\\\"b\\\\c\":{\"server_eof\""));
    b = get("GET", "/metrics");
    assert_non_null(strstr(b, "{pool=\"q\\\"b\\\\s\x01\xc3\xa9\","
                              "server=\"a\\\"b\\\\c\"}"));
    b = get("GET", "/healthz");
    assert_int_equal(fx.r.status, 200);
    b = get("GET", "/config");
    assert_non_null(strstr(b, "\"timeout\":100,"));
    assert_non_null(strstr(b, "\"text\":\"127.0.0.1:11211:1 a\\\"b\\\\c\""));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stats_twemproxy_shape,
                                        setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_stats_sum_over_workers,
                                        setup_two, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_histogram,
                                        setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_healthz, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_healthz_per_worker,
                                        setup_two, teardown),
        cmocka_unit_test_setup_teardown(test_config, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_routes, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_ring_diff, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_token, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_reload_hook, setup_one,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_escaping, setup_weird,
                                        teardown),
        cmocka_unit_test(test_http_split),
        cmocka_unit_test(test_http_authorization),
        cmocka_unit_test(test_http_bounds),
        cmocka_unit_test(test_http_body),
        cmocka_unit_test(test_http_end),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
