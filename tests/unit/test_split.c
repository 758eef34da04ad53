/*
 * split tests: the index item (encode, parse, what parse refuses), the
 * chunking arithmetic and keys, and the chunk round on a real fanout
 * parent: a multi-get whose answers hold an index item, its chunks fed
 * back as a server answers "mg ... v f t", and the merged reply, with
 * every chunk, a missing one, one rewritten with other bytes of the same
 * length, one of another length and a failed chunk fragment.
 */
#include "memring/split.h"

#include "memring/buf.h"
#include "memring/fanout.h"
#include "memring/mc_compose.h"
#include "memring/mc_parse.h"
#include "memring/req.h"
#include "memring/stats.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <cmocka.h>

#define CHUNK 1024u
#define TOTAL 2500u             /* 3 chunks: 1024, 1024, 452 */
#define NONCE 0x0123456789abcdefULL
#define KEYS_CAP 8
#define FRAGS_MAX 8

/* ---------------------------------------------------------------------
 * Index and chunks
 * ------------------------------------------------------------------- */

static char value[TOTAL];

static void
fill_value(void)
{
    uint32_t i;

    for (i = 0; i < TOTAL; i++) {
        value[i] = (char)(i * 7 + 3);
    }
}

static void
test_index_round_trip(void **state)
{
    struct split_index x, y;
    char out[SPLIT_INDEX_MAX];
    size_t n;

    (void)state;
    fill_value();
    split_index_make(&x, NONCE, CHUNK, value, TOTAL);
    assert_int_equal(x.nchunks, 3);
    assert_int_equal(x.total, TOTAL);
    n = split_index_encode(&x, out);
    assert_true(n < SPLIT_INDEX_MAX);
    assert_int_equal(out[0], '\0');     /* unlike text */
    assert_true(split_index_parse(out, n, &y));
    assert_int_equal(y.nonce, NONCE);
    assert_int_equal(y.chunk, CHUNK);
    assert_int_equal(y.nchunks, 3);
    assert_int_equal(y.total, TOTAL);
    assert_int_equal(y.crc, x.crc);
}

static void
test_index_refused(void **state)
{
    struct split_index x, y;
    char out[SPLIT_INDEX_MAX], bad[SPLIT_INDEX_MAX + 8];
    size_t n;

    (void)state;
    fill_value();
    split_index_make(&x, NONCE, CHUNK, value, TOTAL);
    n = split_index_encode(&x, out);
    assert_false(split_index_parse(out, n - 1, &y));    /* cut */
    memcpy(bad, out, n);
    bad[n] = ' ';
    assert_false(split_index_parse(bad, n + 1, &y));    /* a byte more */
    bad[1] = 'M';
    assert_false(split_index_parse(bad, n, &y));        /* magic */
    assert_false(split_index_parse("hello", 5, &y));
    assert_false(split_index_parse(out, 0, &y));

    x.nchunks = 4;                      /* count and total disagree */
    n = split_index_encode(&x, out);
    assert_false(split_index_parse(out, n, &y));
    x.nchunks = 3;
    x.chunk = SPLIT_CHUNK_MIN - 1;      /* chunk out of bounds */
    x.nchunks = (uint32_t)((TOTAL + x.chunk - 1) / x.chunk);
    n = split_index_encode(&x, out);
    assert_false(split_index_parse(out, n, &y));
    x.chunk = CHUNK;
    x.total = 0;
    x.nchunks = 0;
    n = split_index_encode(&x, out);
    assert_false(split_index_parse(out, n, &y));

    /* not canonical: a leading zero in the total */
    x.total = TOTAL;
    x.nchunks = 3;
    n = split_index_encode(&x, out);
    {
        size_t at;

        for (at = 0; at + 6 <= n && memcmp(out + at, " 2500 ", 6) != 0;
             at++) {
        }
        assert_true(at + 6 <= n);
        memcpy(bad, out, at + 1);
        bad[at + 1] = '0';
        memcpy(bad + at + 2, out + at + 1, n - at - 1);
        assert_false(split_index_parse(bad, n + 1, &y));
    }
}

static void
test_chunks(void **state)
{
    struct split_index x;
    char key[SPLIT_KEY_MAX];
    size_t n;

    (void)state;
    fill_value();
    split_index_make(&x, NONCE, CHUNK, value, TOTAL);
    assert_int_equal(split_chunk_len(&x, 0), CHUNK);
    assert_int_equal(split_chunk_len(&x, 1), CHUNK);
    assert_int_equal(split_chunk_len(&x, 2), TOTAL - 2 * CHUNK);
    assert_int_equal(split_chunk_len(&x, 3), 0);
    split_index_make(&x, NONCE, CHUNK, value, 2 * CHUNK);   /* exact */
    assert_int_equal(x.nchunks, 2);
    assert_int_equal(split_chunk_len(&x, 1), CHUNK);
    n = split_chunk_key(NONCE, 12, key);
    assert_string_equal(key, "~0123456789abcdef/12");
    assert_int_equal(n, strlen(key));
    n = split_chunk_key(UINT64_MAX, SPLIT_CHUNKS_MAX - 1, key);
    assert_true(n < SPLIT_KEY_MAX);
    assert_int_equal(split_value_max(CHUNK),
                     (uint64_t)CHUNK * SPLIT_CHUNKS_MAX);
}

/* ---------------------------------------------------------------------
 * The chunk round on a fanout parent
 * ------------------------------------------------------------------- */

struct fixture {
    struct req_cache  rc;
    uint64_t          freed;
    struct pool_stats stats;
    struct mc_req     m;
    struct mc_span    keys[KEYS_CAP];
    uint32_t          per_server[FRAGS_MAX];
    struct req        *p;
    struct req        *frags[FRAGS_MAX];   /* the round's, one ref each */
    uint32_t          nfrags;
    uint32_t          route[FRAGS_MAX];
    struct buf        merged;
    bool              sent;
};

static struct fixture fx;

static int
fixture_setup(void **state)
{
    memset(&fx, 0, sizeof(fx));
    req_cache_init(&fx.rc, &fx.freed);
    fill_value();
    *state = &fx;
    return 0;
}

static int
fixture_teardown(void **state)
{
    (void)state;
    req_put(&fx.p);
    buf_free(&fx.merged);
    req_cache_drain(&fx.rc);
    return 0;
}

static void
on_done(struct req *r)
{
    assert_true(r->done);
}

/* The parent's round callback: the chunk round, chunk g on server g % 2
 * (fragments kept for the test to answer). */
static bool
round_cb(struct req *p)
{
    static const struct mc_prefix none = { NULL, 0, false };
    uint32_t n, g, first;

    if (p->round_data != NULL) {
        split_round_end(p);
        return false;
    }
    assert_int_equal(split_round_begin(p, &n), 0);
    if (n == 0) {
        return false;
    }
    assert_true(n <= FRAGS_MAX);
    for (g = 0; g < n; g++) {
        fx.route[g] = g % 2;
    }
    assert_int_equal(split_round(p, fx.route, fx.per_server, 2, &none), 0);
    first = p->nfrags - p->pending;
    for (g = 0; g < p->pending; g++) {
        fx.frags[fx.nfrags] = p->frags[first + g];
        req_ref(fx.frags[fx.nfrags++]);
    }
    fx.sent = true;
    return true;
}

/* A unit of bytes [data, data + len) fed to f as a server would. */
static void
feed(struct req *f, const char *data, size_t len)
{
    size_t off = 0;

    while (off < len) {
        struct mc_rsp u;

        assert_int_equal(mc_parse_rsp(data + off, len - off, &u), PARSE_OK);
        if (f->cmd == MC_META_CHUNK) {
            assert_true(split_unit(f, data + off, &u) >= 0);
        } else if (u.type == MC_RSP_VALUE) {
            assert_int_equal(fanout_value(f, data + off, &u), 0);
        }
        off += u.len;
    }
}

/* "get big small ..." (gets: with cas) over one server: big's value is
 * the index of value[], stored with flags 7 and cas 99. */
static void
first_round(struct fixture *f, const char *line)
{
    struct split_index x;
    char idx[SPLIT_INDEX_MAX];
    struct buf b = BUF_INIT;
    uint32_t route[3] = { 0, 0, 0 };
    struct req *frag;
    size_t n;
    uint64_t cas = 99, cas2 = 5;

    assert_int_equal(mc_parse_req(line, strlen(line), &f->m, f->keys,
                                  KEYS_CAP), PARSE_OK);
    f->p = req_create(&f->rc, &f->stats, f->m.cmd);
    f->p->owner = f;
    f->p->on_done = on_done;
    f->p->on_round = round_cb;
    assert_int_equal(fanout_split(f->p, line, &f->m, f->keys, route,
                                  f->per_server, 1), 0);
    frag = f->p->frags[0];
    req_ref(frag);
    split_index_make(&x, NONCE, CHUNK, value, TOTAL);
    n = split_index_encode(&x, idx);
    assert_int_equal(mc_compose_value(&b, "big", 3, 7, idx, n,
                                      f->m.cmd == MC_GETS ? &cas : NULL), 0);
    assert_int_equal(mc_compose_value(&b, "small", 5, 1, "abc", 3,
                                      f->m.cmd == MC_GETS ? &cas2 : NULL),
                     0);
    assert_int_equal(buf_append_str(&b, "END\r\n"), 0);
    feed(frag, b.data, b.len);
    buf_free(&b);
    fanout_done(frag);
    assert_true(f->sent);
    assert_false(f->p->done);
}

/* Chunk fragment j answers its chunks: how(i) says what chunk i gets. */
enum answer { GOOD, MISSING, OTHER_BYTES, OTHER_LENGTH };

static void
answer_chunks(struct fixture *f, const enum answer *how)
{
    uint32_t j, k;

    for (j = 0; j < f->nfrags; j++) {
        struct req *fr = f->frags[j];
        struct buf b = BUF_INIT;

        for (k = 0; k < fr->frag_nkeys; k++) {
            /* chunk g goes to server g % 2: fragment j has g = j + 2k */
            uint32_t i = j + 2 * k;
            size_t len = i < 2 ? CHUNK : TOTAL - 2 * CHUNK;
            char data[CHUNK];

            memcpy(data, value + i * CHUNK, len);
            if (how[i] == MISSING) {
                assert_int_equal(buf_append_str(&b, "EN\r\n"), 0);
                continue;
            }
            if (how[i] == OTHER_BYTES) {
                data[len / 2] ^= 0x55;
            }
            if (how[i] == OTHER_LENGTH) {
                len--;
            }
            assert_int_equal(buf_printf(&b, "VA %zu f0 t-1\r\n", len), 0);
            assert_int_equal(buf_append(&b, data, len), 0);
            assert_int_equal(buf_append_str(&b, "\r\n"), 0);
        }
        feed(fr, b.data, b.len);
        buf_free(&b);
        fanout_done(fr);
    }
    assert_true(f->p->done);
}

/* The merged reply's bytes in f->merged. */
static void
take_merged(struct fixture *f)
{
    struct req *reqs[KEYS_CAP + 1];
    uv_buf_t iov[KEYS_CAP + 1];
    uint32_t i, n;

    n = fanout_iov(f->p, reqs, iov);
    for (i = 0; i < n; i++) {
        assert_int_equal(buf_append(&f->merged, iov[i].base, iov[i].len), 0);
    }
    for (i = 0; i + 1 < n; i++) {
        req_put(&reqs[i]);
    }
}

static void
assert_merged(const struct fixture *f, const char *head, bool big,
              const char *tail)
{
    size_t hl = strlen(head), tl = strlen(tail);

    assert_int_equal(f->merged.len, hl + (big ? TOTAL + 2 : 0) + tl);
    assert_memory_equal(f->merged.data, head, hl);
    if (big) {
        assert_memory_equal(f->merged.data + hl, value, TOTAL);
        assert_memory_equal(f->merged.data + hl + TOTAL, "\r\n", 2);
    }
    assert_memory_equal(f->merged.data + f->merged.len - tl, tail, tl);
}

static void
test_round_reassembles(void **state)
{
    struct fixture *f = *state;
    static const enum answer how[3] = { GOOD, GOOD, GOOD };

    first_round(f, "gets big small nope\r\n");
    assert_int_equal(f->nfrags, 2);
    /* chunk 0 on server 0, "mg ~<nonce>/0 v f t" */
    assert_memory_equal(f->frags[0]->out.data, "mg ~0123456789abcdef/0 v f t"
                        "\r\nmg ~0123456789abcdef/2 v f t\r\n",
                        f->frags[0]->out.len);
    answer_chunks(f, how);
    take_merged(f);
    assert_merged(f, "VALUE big 7 2500 99\r\n", true,
                  "VALUE small 1 3 5\r\nabc\r\nEND\r\n");
    assert_int_equal(STATS_READ(f->stats.split_reassembled), 1);
    assert_int_equal(STATS_READ(f->stats.split_misses), 0);
    assert_int_equal(STATS_READ(f->stats.get_hits), 2);
}

/* One bad chunk (what), the rest good: big is a miss. */
static void
one_bad(struct fixture *f, uint32_t i, enum answer what)
{
    enum answer how[3] = { GOOD, GOOD, GOOD };

    how[i] = what;
    first_round(f, "get big small\r\n");
    answer_chunks(f, how);
    take_merged(f);
    assert_merged(f, "VALUE small 1 3\r\nabc\r\nEND\r\n", false, "");
    assert_int_equal(STATS_READ(f->stats.split_reassembled), 0);
    assert_int_equal(STATS_READ(f->stats.split_misses), 1);
}

static void
test_round_missing_chunk(void **state)
{
    one_bad(*state, 1, MISSING);
}

static void
test_round_rewritten_chunk(void **state)
{
    one_bad(*state, 2, OTHER_BYTES);
}

static void
test_round_chunk_of_another_length(void **state)
{
    one_bad(*state, 0, OTHER_LENGTH);
}

static void
test_round_failed_fragment(void **state)
{
    struct fixture *f = *state;
    static const enum answer how[3] = { GOOD, GOOD, GOOD };

    first_round(f, "get big small\r\n");
    /* server 1's fragment (chunk 1) fails; server 0 answers */
    fanout_fail(f->frags[1], "SERVER_ERROR timeout");
    fanout_done(f->frags[1]);
    f->frags[1] = NULL;
    f->nfrags = 1;
    answer_chunks(f, how);
    take_merged(f);
    assert_merged(f, "VALUE small 1 3\r\nabc\r\nEND\r\n", false, "");
    assert_int_equal(STATS_READ(f->stats.split_misses), 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_round_trip),
        cmocka_unit_test(test_index_refused),
        cmocka_unit_test(test_chunks),
        cmocka_unit_test_setup_teardown(test_round_reassembles,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_round_missing_chunk,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_round_rewritten_chunk,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_round_chunk_of_another_length,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_round_failed_fragment,
                                        fixture_setup, fixture_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
