/*
 * fuzz_admin: the admin endpoint, through the code its connections run:
 * admin_http (llhttp, its bounds and refusals) reads the request and
 * admin_respond() answers it. The first input byte picks what the rest is:
 *
 *   even: an HTTP request to an admin over a fixed config whose names hold
 *         quotes, backslashes, control bytes and UTF-8. The request fed
 *         whole and split in two at every byte (small inputs) must get the
 *         same answer and body, and every span admin_http copies must lie
 *         in the bytes given (ASan, on exact-size reads).
 *   odd:  a config (YAML). If it loads, with numeric addresses only (no
 *         DNS from a fuzzer), an admin over it renders every document:
 *         JSON must parse, Prometheus text must parse line by line,
 *         the health text must be printable ASCII.
 */
#include "memring/admin.h"

#include "memring/conf.h"
#include "memring/log.h"
#include "memring/worker.h"

#include <arpa/inet.h>
#include <llhttp.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#define JSON_DEPTH    64

/* ---------------------------------------------------------------------
 * Checking documents
 * ------------------------------------------------------------------- */

static bool
in_range(unsigned char c, unsigned char lo, unsigned char hi)
{
    return c >= lo && c <= hi;
}

/* A tail byte at s[k], if there is one. */
static bool
tail(const unsigned char *s, size_t n, size_t k, unsigned char lo,
     unsigned char hi)
{
    return k < n && in_range(s[k], lo, hi);
}

/* RFC 3629's UTF8-char grammar, row by row (a different formulation from
 * admin.c's decoder, so that a shared mistake is unlikely). */
static bool
utf8_ok(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];

        if (c <= 0x7f) {
            i += 1;
        } else if (in_range(c, 0xc2, 0xdf) && tail(s, n, i + 1, 0x80, 0xbf)) {
            i += 2;
        } else if (tail(s, n, i + 2, 0x80, 0xbf) &&
                   ((c == 0xe0 && tail(s, n, i + 1, 0xa0, 0xbf)) ||
                    (in_range(c, 0xe1, 0xec) &&
                     tail(s, n, i + 1, 0x80, 0xbf)) ||
                    (c == 0xed && tail(s, n, i + 1, 0x80, 0x9f)) ||
                    (in_range(c, 0xee, 0xef) &&
                     tail(s, n, i + 1, 0x80, 0xbf)))) {
            i += 3;
        } else if (tail(s, n, i + 2, 0x80, 0xbf) &&
                   tail(s, n, i + 3, 0x80, 0xbf) &&
                   ((c == 0xf0 && tail(s, n, i + 1, 0x90, 0xbf)) ||
                    (in_range(c, 0xf1, 0xf3) &&
                     tail(s, n, i + 1, 0x80, 0xbf)) ||
                    (c == 0xf4 && tail(s, n, i + 1, 0x80, 0x8f)))) {
            i += 4;
        } else {
            return false;
        }
    }
    return true;
}

/* A minimal RFC 8259 recogniser: true when s[*i..n) starts with a value. */
struct json {
    const char *s;
    size_t     n;
    size_t     i;
};

static void
json_ws(struct json *j)
{
    while (j->i < j->n && strchr(" \t\r\n", j->s[j->i]) != NULL &&
           j->s[j->i] != '\0') {
        j->i++;
    }
}

static bool
json_lit(struct json *j, const char *lit)
{
    size_t n = strlen(lit);

    if (j->n - j->i < n || memcmp(j->s + j->i, lit, n) != 0) {
        return false;
    }
    j->i += n;
    return true;
}

static bool
json_string(struct json *j)
{
    if (!json_lit(j, "\"")) {
        return false;
    }
    while (j->i < j->n) {
        unsigned char c = (unsigned char)j->s[j->i];

        if (c == '"') {
            j->i++;
            return true;
        }
        if (c < 0x20) {
            return false;
        }
        if (c == '\\') {
            if (++j->i == j->n) {
                return false;
            }
            c = (unsigned char)j->s[j->i];
            if (c == 'u') {
                size_t k;

                if (j->n - j->i < 5) {
                    return false;
                }
                for (k = 1; k <= 4; k++) {
                    if (strchr("0123456789abcdefABCDEF", j->s[j->i + k]) ==
                            NULL || j->s[j->i + k] == '\0') {
                        return false;
                    }
                }
                j->i += 5;
            } else if (c != '\0' && strchr("\"\\/bfnrt", c) != NULL) {
                j->i++;
            } else {
                return false;
            }
            continue;
        }
        j->i++;
    }
    return false;
}

static bool
json_number(struct json *j)
{
    size_t start;

    if (j->i < j->n && j->s[j->i] == '-') {
        j->i++;
    }
    start = j->i;
    while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9') {
        j->i++;
    }
    if (j->i == start || (j->s[start] == '0' && j->i - start > 1)) {
        return false;
    }
    if (j->i < j->n && j->s[j->i] == '.') {
        j->i++;
        start = j->i;
        while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9') {
            j->i++;
        }
        if (j->i == start) {
            return false;
        }
    }
    return true;
}

static bool
json_value(struct json *j, int depth)
{
    char open;

    json_ws(j);
    if (j->i == j->n || depth > JSON_DEPTH) {
        return false;
    }
    open = j->s[j->i];
    if (open == '{' || open == '[') {
        char close = open == '{' ? '}' : ']';

        j->i++;
        json_ws(j);
        if (json_lit(j, close == '}' ? "}" : "]")) {
            return true;
        }
        for (;;) {
            if (open == '{') {
                json_ws(j);
                if (!json_string(j)) {
                    return false;
                }
                json_ws(j);
                if (!json_lit(j, ":")) {
                    return false;
                }
            }
            if (!json_value(j, depth + 1)) {
                return false;
            }
            json_ws(j);
            if (json_lit(j, ",")) {
                continue;
            }
            return json_lit(j, close == '}' ? "}" : "]");
        }
    }
    if (open == '"') {
        return json_string(j);
    }
    return json_lit(j, "true") || json_lit(j, "false") ||
           json_lit(j, "null") || json_number(j);
}

static void
check_json(const char *s, size_t n)
{
    struct json j = { s, n, 0 };

    CHECK(utf8_ok(s, n));
    CHECK(json_value(&j, 0));
    json_ws(&j);
    CHECK(j.i == n);
}

static bool
is_name_char(char c, bool first, bool colon)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (colon && c == ':') || (!first && c >= '0' && c <= '9');
}

/* A metric or label name at *p (< e); false if there is none. */
static bool
prom_name_at(const char **p, const char *e, bool colon)
{
    const char *q = *p;

    if (q == e || !is_name_char(*q, true, colon)) {
        return false;
    }
    while (q < e && is_name_char(*q, false, colon)) {
        q++;
    }
    *p = q;
    return true;
}

/*
 * One line of Prometheus text format 0.0.4 (without its \n): a comment,
 * or name{label="value",...} value. Label values may hold any UTF-8 but
 * a raw newline; only \\, \" and \n are escapes.
 */
static bool
prom_line(const char *p, const char *e)
{
    if (p < e && *p == '#') {
        return true;
    }
    if (!prom_name_at(&p, e, true)) {
        return false;
    }
    if (p < e && *p == '{') {
        p++;
        while (p < e && *p != '}') {
            if (!prom_name_at(&p, e, false) || e - p < 2 || p[0] != '=' ||
                p[1] != '"') {
                return false;
            }
            for (p += 2; p < e && *p != '"'; p++) {
                if (*p == '\\') {
                    if (++p == e || (*p != '\\' && *p != '"' && *p != 'n')) {
                        return false;
                    }
                }
            }
            if (p == e) {
                return false;
            }
            p++;
            if (p < e && *p == ',') {
                p++;
            }
        }
        if (p == e) {
            return false;
        }
        p++;
    }
    if (p == e || *p != ' ' || ++p == e) {
        return false;
    }
    for (; p < e; p++) {
        if (strchr("0123456789.eE+-InfNa", *p) == NULL || *p == '\0') {
            return false;
        }
    }
    return true;
}

static void
check_prom(const char *s, size_t n)
{
    const char *p = s, *e = s + n, *nl;

    CHECK(utf8_ok(s, n));
    CHECK(n == 0 || s[n - 1] == '\n');
    while (p < e) {
        nl = memchr(p, '\n', (size_t)(e - p));
        CHECK(nl != NULL);
        if (!prom_line(p, nl)) {
            fprintf(stderr, "bad line: %.*s\n", (int)(nl - p), p);
        }
        CHECK(prom_line(p, nl));
        p = nl + 1;
    }
}

static void
check_text(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        CHECK((c >= 0x20 && c < 0x7f) || c == '\n');
    }
}

/* admin_respond() for method and path, checked; the status, or 0. */
static int
respond(struct admin *a, const char *method, const char *path)
{
    struct admin_request req = { .method = method, .path = path };
    struct admin_reply r;
    size_t plen = strcspn(path, "?#");
    int status;

    if (admin_respond(a, &req, &r) != 0) {
        CHECK(r.body == NULL);
        return 0;
    }
    status = r.status;
    CHECK(r.type != NULL);
    CHECK(r.len == 0 || r.body != NULL);
    CHECK(status == 200 || status == 400 || status == 404 || status == 405 ||
          status == 500 || status == 501 || status == 503);
    CHECK((status == 405) == (r.allow != NULL));
    if (status == 200 || status == 503) {
        if (plen == 6 && memcmp(path, "/stats", 6) == 0) {
            check_json(r.body, r.len);
        } else if (plen == 7 && memcmp(path, "/config", 7) == 0) {
            check_json(r.body, r.len);
        } else if (plen == 8 && memcmp(path, "/metrics", 8) == 0) {
            check_prom(r.body, r.len);
        } else {
            check_text(r.body, r.len);
        }
    } else {
        check_text(r.body, r.len);
    }
    admin_reply_free(&r);
    CHECK(r.body == NULL);
    return status;
}

/* ---------------------------------------------------------------------
 * Admins
 * ------------------------------------------------------------------- */

struct site {
    struct conf   *conf;
    struct worker w;
    struct worker *wp;
    struct admin  *admin;
};

/* Numeric addresses only: pool_create() resolves server hosts. */
static bool
offline(const struct conf *c)
{
    unsigned char addr[16];
    uint32_t i, j;

    for (i = 0; i < c->npools; i++) {
        const struct conf_pool *cp = &c->pools[i];

        for (j = 0; j < cp->nservers; j++) {
            const struct conf_server *s = &cp->servers[j];

            if (!s->is_unix && inet_pton(AF_INET, s->host, addr) != 1 &&
                inet_pton(AF_INET6, s->host, addr) != 1) {
                return false;
            }
        }
    }
    return true;
}

static bool
site_open(struct site *st, const char *yaml, size_t len)
{
    char err[CONF_ERR_LEN];
    struct limits limits;

    memset(st, 0, sizeof(*st));
    st->conf = conf_parse(yaml, len, "fuzz.yml", err, sizeof(err));
    if (st->conf == NULL || !offline(st->conf)) {
        conf_destroy(&st->conf);
        return false;
    }
    limits_default(&limits);
    if (worker_init(&st->w, 0, st->conf, &limits) != 0) {
        worker_deinit(&st->w);
        conf_destroy(&st->conf);
        return false;
    }
    st->wp = &st->w;
    st->admin = admin_create(&st->w.io.loop, &st->wp, 1);
    CHECK(st->admin != NULL);
    admin_conf_loaded(st->admin, 1700000000123456u);
    return true;
}

static void
site_close(struct site *st)
{
    admin_close(st->admin);
    worker_deinit(&st->w);
    admin_destroy(&st->admin);
    CHECK(st->admin == NULL);
    conf_destroy(&st->conf);
}

/* Names with every kind of byte JSON and Prometheus must escape. */
static const char fixed_yaml[] =
    "\"q\\\"b\\\\s\\x01\\u00e9\\t\\n\":\n"
    "  listen: 127.0.0.1:22121\n"
    "  auto_eject_hosts: true\n"
    "  timeout: 100\n"
    "  servers:\n"
    "   - 127.0.0.1:11211:1 a\"b\\c\n"
    "   - 127.0.0.1:11212:2 \xe2\x82\xac{x=\"y\"}\n"
    "   - /tmp/memring-fuzz.sock:1\n"
    "plain:\n"
    "  listen: 127.0.0.1:22122\n"
    "  servers:\n"
    "   - 127.0.0.1:11213:1\n";

static struct site fixed;

int LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_setup(LOG_EMERG, NULL);     /* refused configs are not news here */
    if (!site_open(&fixed, fixed_yaml, sizeof(fixed_yaml) - 1)) {
        fprintf(stderr, "fuzz_admin: the fixed config does not load\n");
        abort();
    }
    return 0;
}

/* ---------------------------------------------------------------------
 * HTTP, read by admin.c's own admin_http
 * ------------------------------------------------------------------- */

/*
 * The splits of one input mostly ask the same thing: render it once (the
 * documents are the expensive part) and remember the answer.
 */
static struct {
    bool valid;
    char method[32];
    char url[ADMIN_URL_MAX + 1];
    int  status;
} memo;

static int
respond_once(const char *method, const char *url)
{
    if (memo.valid && strcmp(memo.method, method) == 0 &&
        strcmp(memo.url, url) == 0) {
        return memo.status;
    }
    memo.status = respond(fixed.admin, method, url);
    memo.valid = strlen(method) < sizeof(memo.method);
    if (memo.valid) {
        strcpy(memo.method, method);
        strcpy(memo.url, url);
    }
    return memo.status;
}

/* What the client gets for one way of cutting the input. */
enum answer_kind {
    ANSWER_REPLY = 0,               /* a whole request, routed */
    ANSWER_REFUSED,                 /* refused while reading */
    ANSWER_ENDED                    /* incomplete when the input ran out */
};

struct answer {
    enum answer_kind kind;
    int              status;
    size_t           body_len;      /* ANSWER_REPLY: the request body */
    uint32_t         body_hash;
};

static uint32_t
fnv1a(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    size_t i;

    for (i = 0; i < n; i++) {
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    }
    return h;
}

/* Feeds data[0..len) cut at split, as a connection reads it (never 0
 * bytes), each read in an exact-size copy so that ASan sees any span the
 * callbacks take past it. An input still incomplete at its end is ended
 * the way its length picks: EOF (400) or the deadline (408). */
static void
serve(const uint8_t *data, size_t len, size_t split, struct answer *ans)
{
    size_t cuts[3] = { 0, split, len };
    enum admin_http_state st = ADMIN_HTTP_MORE;
    struct admin_http h;
    unsigned int i;

    memset(ans, 0, sizeof(*ans));
    admin_http_init(&h);
    for (i = 0; i < 2 && st == ADMIN_HTTP_MORE; i++) {
        size_t n = cuts[i + 1] - cuts[i];
        char *chunk;

        if (n == 0) {
            continue;
        }
        chunk = malloc(n);
        if (chunk == NULL) {
            abort();
        }
        memcpy(chunk, data + cuts[i], n);
        st = admin_http_feed(&h, chunk, n);
        if (st == ADMIN_HTTP_BAD) {
            const char *pos = llhttp_get_error_pos(&h.parser);

            CHECK(pos == NULL || (pos >= chunk && pos <= chunk + n));
        }
        free(chunk);
    }
    ans->kind = st == ADMIN_HTTP_BAD ? ANSWER_REFUSED : ANSWER_REPLY;
    if (st == ADMIN_HTTP_MORE) {
        bool timed_out = (len & 1) != 0;

        ans->kind = ANSWER_ENDED;
        st = admin_http_end(&h, timed_out);
        CHECK(st == ADMIN_HTTP_BAD);
        CHECK(h.status == (timed_out ? 408 : 400));
    }
    CHECK(admin_http_feed(&h, "x", 1) == st);   /* the answer sticks */
    if (st == ADMIN_HTTP_DONE) {
        CHECK(h.status == 0);
        CHECK(h.url_len <= ADMIN_URL_MAX && h.url[h.url_len] == '\0');
        CHECK(h.body_bytes <= ADMIN_BODY_MAX);
        CHECK(h.body_bytes == 0 ||
              (h.body != NULL && h.body[h.body_bytes] == '\0'));
        ans->status = respond_once(admin_http_method(&h), h.url);
        CHECK(ans->status != 0);
        ans->body_len = h.body_bytes;
        ans->body_hash = h.body != NULL ? fnv1a(h.body, h.body_bytes) : 0;
    } else {
        ans->status = h.status;
        CHECK(h.status == 400 || h.status == 408 || h.status == 413 ||
              h.status == 414 || h.status == 500);
        CHECK(h.text != NULL && h.why != NULL);
        check_text(h.text, strlen(h.text));
    }
    admin_http_deinit(&h);
}

static size_t
run_http(const uint8_t *data, size_t len, size_t cut, void *ev)
{
    serve(data, len, cut, ev);
    return 1;
}

/*
 * The same answer, except among refusals: llhttp hands a span over when a
 * chunk ends, so a URL cut by the split can reach the length check (414)
 * before a bad byte after it (400) does.
 */
static bool
same_answer(const void *va, const void *vb)
{
    const struct answer *a = va, *b = vb;

    if (a->kind != b->kind) {
        return false;
    }
    return a->kind == ANSWER_REFUSED ||
           (a->status == b->status && a->body_len == b->body_len &&
            a->body_hash == b->body_hash);
}

static void
fuzz_http(const uint8_t *data, size_t size)
{
    memo.valid = false;
    split_check(data, size, sizeof(struct answer), run_http, same_answer);
}

static void
fuzz_conf(const uint8_t *data, size_t size)
{
    static const char *const paths[] = {
        "/stats", "/metrics", "/healthz", "/config", "/stats?x",
    };
    struct site st;
    size_t i;

    if (!site_open(&st, (const char *)data, size)) {
        return;
    }
    for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        int status = respond(st.admin, "GET", paths[i]);

        CHECK(status == 200 || status == 503);
    }
    site_close(&st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    if (data[0] & 1) {
        fuzz_conf(data + 1, size - 1);
    } else {
        fuzz_http(data + 1, size - 1);
    }
    return 0;
}
