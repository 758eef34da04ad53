/*
 * fuzz_mc_req: mc_parse_req() on arbitrary client bytes. Besides what ASan
 * and UBSan catch, every call is checked against the header's contract, and
 * a stream is parsed as memring's client loop does, whole and split into two
 * reads at every byte (small inputs), which must give the same replies.
 */
#include "memring/mc_parse.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#define KEYS_CAP      256   /* what the fuzzer's stream uses */
#define KEYS_SMALL    4     /* a tight cap, compared with KEYS_CAP */

/* One parser answer as the client loop sees it. */
struct event {
    enum parse_status st;
    enum mc_cmd       cmd;
    size_t            used;   /* OK: total_len; ERROR: skip (0 on close) */
    const char        *error;
    bool              close;
    bool              noreply;
    uint32_t          nkeys;
};

static bool
known_error(const char *e)
{
    return strcmp(e, "ERROR") == 0 || strcmp(e, "END") == 0 ||
           strncmp(e, "CLIENT_ERROR ", 13) == 0 ||
           strncmp(e, "SERVER_ERROR ", 13) == 0;
}

/* The header's promises about one call on buf[0..len). */
static void
check_call(const char *buf, size_t len, enum parse_status st,
           const struct mc_req *req, const struct mc_span *keys, uint32_t cap)
{
    uint32_t i;

    switch (st) {
    case PARSE_OK:
        CHECK(req->cmd > MC_UNKNOWN && req->cmd < MC_CMD_COUNT);
        CHECK(req->line_len >= 1 && req->line_len <= req->total_len);
        CHECK(req->total_len <= len);
        CHECK(buf[req->line_len - 1] == '\n');
        CHECK(memchr(buf, '\n', req->line_len - 1) == NULL);
        CHECK(req->nkeys <= cap);
        for (i = 0; i < req->nkeys; i++) {
            const char *k = buf + keys[i].off;
            uint32_t j;

            CHECK(keys[i].len >= 1 && keys[i].len <= MC_KEY_MAX);
            CHECK((size_t)keys[i].off + keys[i].len < req->line_len);
            for (j = 0; j < keys[i].len; j++) {
                CHECK(k[j] != ' ' && k[j] != '\n' && k[j] != '\0');
            }
        }
        if (mc_cmd_is_retrieval(req->cmd)) {
            CHECK(req->nkeys >= 1);
        }
        if (mc_cmd_is_storage(req->cmd)) {
            CHECK(req->nkeys == 1);
            CHECK(req->vlen <= MC_VALUE_MAX);
            CHECK(req->data_off == req->line_len);
            CHECK(req->total_len == req->line_len + req->vlen + 2);
            CHECK(buf[req->total_len - 2] == '\r');
            CHECK(buf[req->total_len - 1] == '\n');
        } else if (req->cmd == MC_MS) {
            /* a meta set's block goes to the server whatever it ends in */
            CHECK(req->nkeys == 1);
            CHECK(req->vlen <= MC_VALUE_MAX);
            CHECK(req->data_off == req->line_len);
            CHECK(req->total_len == req->line_len + req->vlen + 2);
            CHECK(req->total_len <= len);
        } else {
            CHECK(req->total_len == req->line_len);
        }
        if (req->cmd == MC_DELETE || req->cmd == MC_INCR ||
            req->cmd == MC_DECR || req->cmd == MC_TOUCH) {
            CHECK(req->nkeys == 1);
        }
        if (req->noreply) {
            size_t p = req->noreply_off;

            CHECK(p < req->line_len);
            while (p < req->line_len && buf[p] == ' ') {
                p++;
            }
            CHECK(req->line_len - p >= 7 && memcmp(buf + p, "noreply", 7) == 0);
        }
        if (req->cmd == MC_STATS) {
            CHECK((size_t)req->args.off + req->args.len < req->line_len);
        }
        break;
    case PARSE_ERROR:
        CHECK(req->skip <= len);
        CHECK(req->close || req->skip >= 1);
        CHECK(!req->binary || (unsigned char)buf[0] == MC_BINARY_MAGIC);
        CHECK(!req->binary || req->skip == MC_BINARY_HEADER);
        if (req->error != NULL) {
            CHECK(known_error(req->error));
            CHECK(strpbrk(req->error, "\r\n") == NULL);
        } else {
            /* silence only for noreply, with a close, or for a binary
             * request (its reply is binary) */
            CHECK(req->noreply || req->close || req->binary);
        }
        break;
    case PARSE_AGAIN:
        CHECK(req->total_len == 0 || req->total_len > len);
        break;
    default:
        FAIL("unknown parse_status");
    }
}

static enum parse_status
parse(const char *buf, size_t len, struct mc_req *req, struct mc_span *keys,
      uint32_t cap)
{
    enum parse_status st = mc_parse_req(buf, len, req, keys, cap);

    check_call(buf, len, st, req, keys, cap);
    return st;
}

/* One stream's events, as the client loop would act on them. */
struct record {
    struct event *ev;
    size_t       n;
    size_t       cap;
    uint64_t     swallow;   /* bytes still to drop (a request not served) */
};

/*
 * One step of memring's client loop: OK and ERROR drop their bytes, a
 * close stops, AGAIN waits for more.
 */
static size_t
req_step(const char *buf, size_t avail, void *ctx)
{
    static struct mc_span keys[KEYS_CAP];
    struct record *rec = ctx;
    struct event *e;
    struct mc_req req;
    enum parse_status st;

    if (rec->swallow > 0) {
        size_t n = avail < rec->swallow ? avail : (size_t)rec->swallow;

        rec->swallow -= n;
        return n;
    }
    st = parse(buf, avail, &req, keys, KEYS_CAP);
    if (st == PARSE_AGAIN) {
        return 0;
    }
    CHECK(rec->n < rec->cap);
    e = &rec->ev[rec->n++];
    e->st = st;
    e->cmd = st == PARSE_OK ? req.cmd : MC_UNKNOWN;
    e->used = st == PARSE_OK ? req.total_len : (req.close ? 0 : req.skip);
    e->error = st == PARSE_ERROR ? req.error : NULL;
    e->close = st == PARSE_ERROR && req.close;
    e->noreply = req.noreply;
    e->nkeys = st == PARSE_OK ? req.nkeys : 0;
    if (e->close) {
        return SPLIT_STOP;
    }
    CHECK(e->used > 0 && e->used <= avail);
    rec->swallow = st == PARSE_ERROR ? req.swallow : 0;
    return e->used;
}

static size_t
run_stream(const uint8_t *data, size_t len, size_t cut, void *ev)
{
    struct record rec = { ev, 0, len + 1, 0 };

    split_feed(data, len, cut, req_step, &rec);
    return rec.n;
}

static bool
same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) ||
           (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool
same_event(const void *va, const void *vb)
{
    const struct event *a = va, *b = vb;

    return a->st == b->st && a->cmd == b->cmd && a->used == b->used &&
           a->close == b->close && a->noreply == b->noreply &&
           a->nkeys == b->nkeys && same_str(a->error, b->error);
}

/*
 * A storage header that said how many bytes it needs: once they are there,
 * the same request is complete (OK, or a bad data chunk) at that length.
 */
static void
check_needed(const char *buf, size_t len)
{
    static struct mc_span keys[KEYS_CAP];
    struct mc_req part, whole;
    size_t i;

    for (i = 0; i < len; i++) {
        if (buf[i] == '\n') {
            break;
        }
    }
    if (i == len) {
        return;
    }
    if (parse(buf, i + 1, &part, keys, KEYS_CAP) != PARSE_AGAIN ||
        part.total_len == 0) {
        return;
    }
    if (part.total_len > len) {
        CHECK(parse(buf, len, &whole, keys, KEYS_CAP) == PARSE_AGAIN);
        CHECK(whole.total_len == part.total_len);
        return;
    }
    switch (parse(buf, len, &whole, keys, KEYS_CAP)) {
    case PARSE_OK:
        CHECK(whole.total_len == part.total_len);
        break;
    case PARSE_ERROR:
        CHECK(!whole.close && whole.skip == part.total_len);
        break;
    case PARSE_AGAIN:
        FAIL("AGAIN with every byte it asked for");
    }
}

/* A tighter key array changes nothing but "too many keys" (which closes,
 * and may come before the line's end or a bad key). */
static void
check_keys_cap(const char *buf, size_t len)
{
    static struct mc_span big[KEYS_CAP], small[KEYS_SMALL];
    struct mc_req a, b;
    enum parse_status sa, sb;

    sa = parse(buf, len, &a, big, KEYS_CAP);
    sb = parse(buf, len, &b, small, KEYS_SMALL);
    if (sa == PARSE_OK && a.nkeys > KEYS_SMALL) {
        CHECK(sb == PARSE_ERROR && b.close);
        CHECK(same_str(b.error, "CLIENT_ERROR line too long"));
        return;
    }
    if (sb == PARSE_ERROR && b.close &&
        same_str(b.error, "CLIENT_ERROR line too long")) {
        return;
    }
    CHECK(sa == sb);
    if (sa == PARSE_OK) {
        CHECK(a.total_len == b.total_len && a.nkeys == b.nkeys);
        CHECK(memcmp(big, small, a.nkeys * sizeof(*big)) == 0);
    } else if (sa == PARSE_ERROR) {
        CHECK(a.close == b.close && a.skip == b.skip &&
              same_str(a.error, b.error));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    split_check(data, size, sizeof(struct event), run_stream, same_event);
    check_needed((const char *)data, size);
    check_keys_cap((const char *)data, size);
    return 0;
}
