/*
 * split: the index item, chunk keys, and the chunk round (see split.h).
 */
#include "memring/split.h"

#include "memring/buf.h"
#include "memring/fanout.h"
#include "memring/mc_compose.h"
#include "memring/req.h"
#include "memring/stats.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* An index item starts so: NULs make it unlike text, and the whole item
 * must then be exactly what split_index_encode() writes. */
static const char magic[] = "\0memring-split\0" "1 ";
#define MAGIC_LEN (sizeof(magic) - 1)

/* Largest reassembly one request may hold (the rest miss). */
#define SPLIT_ROUND_BYTES_MAX MC_VALUE_MAX

static uint32_t
crc_of(const char *v, uint64_t len)
{
    uLong crc = crc32(0L, Z_NULL, 0);

    while (len > 0) {
        uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
        crc = crc32(crc, (const Bytef *)v, n);
        v += n;
        len -= n;
    }
    return (uint32_t)crc;
}

void
split_index_make(struct split_index *x, uint64_t nonce, uint32_t chunk,
                 const char *value, uint64_t len)
{
    x->nonce = nonce;
    x->chunk = chunk;
    x->nchunks = (uint32_t)((len + chunk - 1) / chunk);
    x->total = len;
    x->crc = crc_of(value, len);
}

size_t
split_index_encode(const struct split_index *x, char *out)
{
    int n;

    memcpy(out, magic, MAGIC_LEN);
    n = snprintf(out + MAGIC_LEN, SPLIT_INDEX_MAX - MAGIC_LEN,
                 "%016" PRIx64 " %" PRIu32 " %" PRIu32 " %" PRIu64 " %08"
                 PRIx32, x->nonce, x->chunk, x->nchunks, x->total, x->crc);
    return MAGIC_LEN + (size_t)n;
}

bool
split_index_parse(const char *v, size_t len, struct split_index *x)
{
    char text[SPLIT_INDEX_MAX], again[SPLIT_INDEX_MAX];
    uint64_t nchunks;

    if (len <= MAGIC_LEN || len >= SPLIT_INDEX_MAX ||
        memcmp(v, magic, MAGIC_LEN) != 0) {
        return false;
    }
    memcpy(text, v + MAGIC_LEN, len - MAGIC_LEN);
    text[len - MAGIC_LEN] = '\0';
    if (sscanf(text, "%16" SCNx64 " %" SCNu32 " %" SCNu32 " %" SCNu64
               " %8" SCNx32, &x->nonce, &x->chunk, &x->nchunks, &x->total,
               &x->crc) != 5 ||
        x->chunk < SPLIT_CHUNK_MIN || x->chunk > SPLIT_CHUNK_MAX ||
        x->total == 0) {
        return false;
    }
    nchunks = (x->total + x->chunk - 1) / x->chunk;
    if (nchunks != x->nchunks || nchunks > SPLIT_CHUNKS_MAX) {
        return false;
    }
    /* the canonical form only: no sign, space or leading zero differs */
    return split_index_encode(x, again) == len &&
           memcmp(again, v, len) == 0;
}

size_t
split_chunk_key(uint64_t nonce, uint32_t i, char *out)
{
    return (size_t)snprintf(out, SPLIT_KEY_MAX, "~%016" PRIx64 "/%" PRIu32,
                            nonce, i);
}

uint64_t
split_chunk_len(const struct split_index *x, uint32_t i)
{
    uint64_t at = (uint64_t)i * x->chunk;

    if (i >= x->nchunks) {
        return 0;
    }
    return x->total - at < x->chunk ? x->total - at : x->chunk;
}

uint64_t
split_value_max(uint32_t chunk)
{
    return (uint64_t)chunk * SPLIT_CHUNKS_MAX;
}

/* ---------------------------------------------------------------------
 * The chunk round
 * ------------------------------------------------------------------- */

/* A key of the parent whose value is an index item. */
struct split_key {
    uint32_t           k;      /* the parent's key */
    struct split_index x;
    struct req         *frag;  /* reassembled in frag->reply ... */
    size_t             head;   /* ... from its VALUE line here */
    size_t             at;     /* ... its data here */
    size_t             len;    /* ... the whole unit */
    uint32_t           got;    /* chunks in */
    bool               bad;    /* one missing, or of the wrong length */
};

/* Chunk g of the round: chunk i of keys[key]. */
struct split_chunk {
    uint32_t key;
    uint32_t i;
    bool     have;      /* it came */
};

/* p->round_data: one block. */
struct split_state {
    uint32_t           rounds;  /* chunk rounds sent */
    uint32_t           nkeys;
    uint32_t           nchunks;
    struct split_key   *keys;
    struct split_chunk *chunks;
};

/* The index slot sl holds, if its value is one; the VALUE unit parsed in
 * *u. */
static bool
slot_index(const struct req_slot *sl, struct mc_rsp *u, struct split_index *x)
{
    const char *v;

    if (sl->frag == NULL) {
        return false;
    }
    v = sl->frag->reply.data + sl->off;
    return mc_parse_rsp(v, sl->len, u) == PARSE_OK &&
           u->type == MC_RSP_VALUE && u->len == sl->len &&
           split_index_parse(v + u->len - u->vlen - 2, (size_t)u->vlen, x);
}

/* Appends "VALUE <key> <flags> <total>[ <cas>]\r\n", the room for the
 * data and its "\r\n" to sk->frag's reply, from the index's VALUE line
 * (slot sl, parsed as u). 0 or UV_ENOMEM. */
static int
reserve(struct split_key *sk, const struct req_slot *sl,
        const struct mc_rsp *u)
{
    struct buf *b = &sk->frag->reply;
    const char *v = b->data + sl->off;
    size_t eol = (size_t)((const char *)memchr(v, '\r', u->len) - v);
    size_t flags = u->key.off + u->key.len + 1;
    size_t size = flags + strcspn(v + flags, " \r");    /* ' ' before it */
    size_t cas = size + 1 + strcspn(v + size + 1, " \r"); /* ' ' or eol */
    int err;

    /* one reserve: v stays where it is while the line is written */
    err = buf_reserve(b, size + 1 + 20 + (eol - cas) + 2 + sk->x.total + 2);
    if (err != 0) {
        return err;
    }
    v = b->data + sl->off;
    sk->head = b->len;
    err = buf_append(b, v, size + 1);
    if (err == 0) {
        err = buf_printf(b, "%" PRIu64, sk->x.total);
    }
    if (err == 0) {
        err = buf_append(b, v + cas, eol - cas);   /* " <cas>" or none */
    }
    if (err == 0) {
        err = buf_append(b, "\r\n", 2);
    }
    if (err != 0) {
        return err;
    }
    sk->at = b->len;
    b->len += sk->x.total;
    err = buf_append(b, "\r\n", 2);
    sk->len = b->len - sk->head;
    return err;
}

int
split_round_begin(struct req *p, uint32_t *nchunks)
{
    struct split_state *st;
    struct split_index x;
    struct mc_rsp u;
    uint64_t chunks = 0, bytes = 0;
    uint32_t k, n = 0, i;
    size_t size;
    int err = 0;

    *nchunks = 0;
    for (k = 0; k < p->nkeys; k++) {
        if (slot_index(&p->slots[k], &u, &x)) {
            n++;
            chunks += x.nchunks;
        }
    }
    if (n == 0) {
        return 0;
    }
    if (chunks > UINT32_MAX / 2) {
        return UV_ENOMEM;
    }
    size = sizeof(*st) + n * sizeof(*st->keys) +
           (size_t)chunks * sizeof(*st->chunks);
    st = malloc(size);
    if (st == NULL) {
        return UV_ENOMEM;
    }
    st->keys = (struct split_key *)(st + 1);
    st->chunks = (struct split_chunk *)(st->keys + n);
    st->rounds = 0;
    st->nkeys = 0;
    st->nchunks = 0;
    p->round_data = st;
    for (k = 0; k < p->nkeys && err == 0; k++) {
        struct req_slot *sl = &p->slots[k];
        struct split_key *sk = &st->keys[st->nkeys];

        if (!slot_index(sl, &u, &x)) {
            continue;
        }
        if (bytes + x.total > SPLIT_ROUND_BYTES_MAX) {
            sl->frag = NULL;    /* too much for one request: a miss */
            STATS_BUMP(p->stats->split_misses, 1);
            continue;
        }
        bytes += x.total;
        memset(sk, 0, sizeof(*sk));
        sk->k = k;
        sk->x = x;
        sk->frag = sl->frag;
        err = reserve(sk, sl, &u);
        for (i = 0; i < x.nchunks; i++) {
            st->chunks[st->nchunks].key = st->nkeys;
            st->chunks[st->nchunks].have = false;
            st->chunks[st->nchunks++].i = i;
        }
        st->nkeys++;
    }
    *nchunks = st->nchunks;
    return err;
}

size_t
split_round_key(const struct req *p, uint32_t g, char *out)
{
    const struct split_state *st = p->round_data;
    const struct split_chunk *c = &st->chunks[g];

    return split_chunk_key(st->keys[c->key].x.nonce, c->i, out);
}

/* What a chunk round's fragments are made from. */
struct chunk_arg {
    const uint32_t         *route;
    const struct mc_prefix *pfx;
};

/* Fragment of p for server si: the n chunks whose route is si, in order
 * (fanout_make_fn). NULL on OOM. */
static struct req *
chunk_fragment(struct req *p, uint32_t si, uint32_t n, void *arg)
{
    const struct chunk_arg *ca = arg;
    const struct split_state *st = p->round_data;
    struct req *f = fanout_fragment(p, MC_META_CHUNK, n);
    uint32_t g;
    int err = 0;

    if (f == NULL) {
        return NULL;
    }
    for (g = 0; g < st->nchunks && err == 0; g++) {
        char ck[SPLIT_KEY_MAX], sk[MC_KEY_MAX];
        size_t len;

        if (ca->route[g] != si) {
            continue;
        }
        f->frag_keys[f->frag_nkeys++] = g;
        len = split_round_key(p, g, ck);
        len = mc_prefix_key(ca->pfx, ck, len, sk);
        err = mc_compose_meta_get(&f->out, sk, len);
    }
    if (err != 0) {
        fanout_fragment_drop(&f);
    }
    return f;
}

uint32_t
split_round_chunks(const struct req *p)
{
    const struct split_state *st = p->round_data;

    return st != NULL ? st->nchunks : 0;
}

bool
split_round_missing(const struct req *p, uint32_t g)
{
    const struct split_state *st = p->round_data;
    const struct split_chunk *c = &st->chunks[g];

    return st->rounds == 1 && !c->have && !st->keys[c->key].bad;
}

int
split_round(struct req *p, const uint32_t *route, uint32_t *per_server,
            uint32_t nservers, const struct mc_prefix *pfx)
{
    struct split_state *st = p->round_data;
    struct chunk_arg ca = { route, pfx };

    st->rounds++;
    return fanout_round(p, st->nchunks, route, per_server, nservers,
                        chunk_fragment, &ca);
}

int
split_unit(struct req *f, const char *unit, const struct mc_rsp *u)
{
    struct split_state *st = f->parent->round_data;
    struct split_chunk *c;
    struct split_key *sk;

    if (st == NULL || f->frag_next >= f->frag_nkeys) {
        return UV_EPROTO;
    }
    c = &st->chunks[f->frag_keys[f->frag_next++]];
    sk = &st->keys[c->key];
    if (u->type == MC_RSP_LINE && u->word == MC_WORD_META_EN) {
        /* missing here: a miss, unless another round finds it */
    } else if (u->type == MC_RSP_META_VALUE && !sk->bad && !c->have &&
               u->vlen == split_chunk_len(&sk->x, c->i)) {
        memcpy(sk->frag->reply.data + sk->at + (size_t)c->i * sk->x.chunk,
               unit + u->len - u->vlen - 2, (size_t)u->vlen);
        c->have = true;
        sk->got++;
    } else {
        sk->bad = true;     /* an error, or a chunk of another length */
    }
    return f->frag_next == f->frag_nkeys ? 1 : 0;
}

void
split_round_fail(struct req *p)
{
    struct split_index x;
    struct mc_rsp u;
    uint32_t k;

    for (k = 0; k < p->nkeys; k++) {
        if (slot_index(&p->slots[k], &u, &x)) {
            p->slots[k].frag = NULL;
            STATS_BUMP(p->stats->split_misses, 1);
        }
    }
    free(p->round_data);
    p->round_data = NULL;
}

void
split_round_end(struct req *p)
{
    struct split_state *st = p->round_data;
    uint32_t i;

    if (st == NULL) {
        return;
    }
    for (i = 0; i < st->nkeys; i++) {
        struct split_key *sk = &st->keys[i];
        struct req_slot *sl = &p->slots[sk->k];

        /* every chunk, of its length; the crc32 catches a chunk
         * rewritten with other bytes of the same length */
        if (!sk->bad && sk->got == sk->x.nchunks &&
            crc_of(sk->frag->reply.data + sk->at, sk->x.total) == sk->x.crc) {
            sl->frag = sk->frag;
            sl->off = (uint32_t)sk->head;
            sl->len = (uint32_t)sk->len;
            STATS_BUMP(p->stats->split_reassembled, 1);
        } else {
            sl->frag = NULL;
            STATS_BUMP(p->stats->split_misses, 1);
        }
    }
    free(st);
    p->round_data = NULL;
}
