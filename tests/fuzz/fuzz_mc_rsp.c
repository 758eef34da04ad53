/*
 * fuzz_mc_rsp: mc_parse_rsp() on arbitrary server bytes. Every call is
 * checked against the header's contract, and a reply stream is parsed as
 * memring's server connection does, whole and split into two reads at every
 * byte (small inputs), which must give the same units.
 */
#include "memring/mc_parse.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"


struct event {
    enum parse_status st;
    enum mc_rsp_type  type;
    size_t            len;
    struct mc_span    key;
    uint64_t          vlen;
    bool              is_error;
};

static bool
starts(const char *buf, size_t len, const char *word)
{
    size_t n = strlen(word);

    return len >= n && memcmp(buf, word, n) == 0;
}

static void
check_call(const char *buf, size_t len, enum parse_status st,
           const struct mc_rsp *rsp)
{
    const char *nl;
    size_t line, i;

    switch (st) {
    case PARSE_OK:
        CHECK(rsp->len >= 2 && rsp->len <= len);
        CHECK(buf[rsp->len - 2] == '\r' && buf[rsp->len - 1] == '\n');
        nl = memchr(buf, '\n', rsp->len);
        CHECK(nl != NULL);
        line = (size_t)(nl - buf) + 1;
        CHECK(line <= MC_RSP_LINE_MAX);
        switch (rsp->type) {
        case MC_RSP_VALUE:
            CHECK(starts(buf, len, "VALUE "));
            CHECK(rsp->key.len >= 1 && rsp->key.len <= MC_KEY_MAX);
            CHECK(rsp->key.off >= 6);
            CHECK((size_t)rsp->key.off + rsp->key.len < line);
            for (i = 0; i < rsp->key.len; i++) {
                unsigned char c = (unsigned char)buf[rsp->key.off + i];

                CHECK(c != ' ' && c != '\n');
            }
            CHECK(rsp->vlen <= MC_VALUE_MAX);
            CHECK(rsp->len == line + rsp->vlen + 2);
            CHECK(!rsp->is_error);
            break;
        case MC_RSP_END:
            CHECK(rsp->len == 5 && memcmp(buf, "END\r\n", 5) == 0);
            break;
        case MC_RSP_LINE:
            CHECK(rsp->len == line);
            CHECK(rsp->is_error == (starts(buf, len, "ERROR") ||
                                    starts(buf, len, "CLIENT_ERROR") ||
                                    starts(buf, len, "SERVER_ERROR")));
            break;
        case MC_RSP_META_VALUE:
            CHECK(rsp->vlen <= MC_VALUE_MAX);
            CHECK(rsp->len == line + rsp->vlen + 2);
            CHECK(starts(buf, len, "VA "));
            break;
        default:
            FAIL("unknown mc_rsp_type");
        }
        break;
    case PARSE_AGAIN:
        CHECK(rsp->len == 0 || rsp->len > len);
        if (rsp->len == 0) {
            CHECK(len < MC_RSP_LINE_MAX && memchr(buf, '\n', len) == NULL);
        }
        break;
    case PARSE_ERROR:
        break;
    default:
        FAIL("unknown parse_status");
    }
}

/* One stream's units, as a server connection would act on them. */
struct record {
    struct event *ev;
    size_t       n;
    size_t       cap;
};

/* One step of a server connection: a unit is dropped once parsed, an
 * error closes, AGAIN waits for more. */
static size_t
rsp_step(const char *buf, size_t avail, void *ctx)
{
    struct record *rec = ctx;
    struct event *e;
    struct mc_rsp rsp;
    enum parse_status st;

    st = mc_parse_rsp(buf, avail, &rsp);
    check_call(buf, avail, st, &rsp);
    if (st == PARSE_AGAIN) {
        return 0;
    }
    CHECK(rec->n < rec->cap);
    e = &rec->ev[rec->n++];
    memset(e, 0, sizeof(*e));
    e->st = st;
    if (st == PARSE_ERROR) {
        return SPLIT_STOP;
    }
    e->type = rsp.type;
    e->len = rsp.len;
    e->key = rsp.key;
    e->vlen = rsp.vlen;
    e->is_error = rsp.is_error;
    return rsp.len;
}

static size_t
run_stream(const uint8_t *data, size_t len, size_t cut, void *ev)
{
    struct record rec = { ev, 0, len + 1 };

    split_feed(data, len, cut, rsp_step, &rec);
    return rec.n;
}

static bool
same_event(const void *va, const void *vb)
{
    const struct event *a = va, *b = vb;

    return a->st == b->st && a->type == b->type && a->len == b->len &&
           a->key.off == b->key.off && a->key.len == b->key.len &&
           a->vlen == b->vlen && a->is_error == b->is_error;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    split_check(data, size, sizeof(struct event), run_stream, same_event);
    return 0;
}
