/*
 * warmup: a retrieval's rounds in a warm-up window (see warmup.h).
 */
#include "memring/warmup.h"

#include "memring/buf.h"
#include "memring/fanout.h"
#include "memring/mc_compose.h"
#include "memring/req.h"
#include "memring/stats.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* memcached reads an exptime above 30 days as a unix time. */
#define WARMUP_RELATIVE_MAX (60 * 60 * 24 * 30)

/* Key k as its servers get it. */
static const char *
key_of(const struct req *p, uint32_t k, size_t *len)
{
    *len = p->keys[k].len;
    return p->line.data + p->keys[k].off;
}

const char *
warmup_client_key(const struct req *p, uint32_t k, char *out, size_t *len)
{
    const char *key = key_of(p, k, len);
    size_t at;

    if (p->key_strip == 0) {
        return key;
    }
    at = p->strip_after_q && *len > 0 && key[0] == '?';
    *len -= p->key_strip;
    if (at == 0) {
        return key + p->key_strip;
    }
    out[0] = '?';
    memcpy(out + 1, key + 1 + p->key_strip, *len - 1);
    return out;
}

/* The data block of the VALUE slot sl points at. */
static const char *
slot_data(const struct req_slot *sl, size_t *len)
{
    const char *v = sl->frag->reply.data + sl->off;
    const char *nl = memchr(v, '\n', sl->len);
    size_t head = (size_t)(nl - v) + 1;

    *len = sl->len - head - 2;
    return v + head;
}

/* What a warm-up round's fragments are made from. */
struct round_arg {
    enum mc_cmd    cmd;
    const uint32_t *route;
};

/* Fragment of p for server si: the n keys whose route is si, in request
 * order, each as the round's cmd asks (fanout_make_fn). NULL on OOM. */
static struct req *
make_round_fragment(struct req *p, uint32_t si, uint32_t n, void *arg)
{
    const struct round_arg *ra = arg;
    struct req *f = fanout_fragment(p, ra->cmd, n);
    uint32_t i;
    int err = 0;

    if (f == NULL) {
        return NULL;
    }
    for (i = 0; i < p->nkeys && err == 0; i++) {
        size_t klen;
        const char *key = key_of(p, i, &klen);

        if (ra->route[i] != si) {
            continue;
        }
        f->frag_keys[f->frag_nkeys++] = i;
        err = ra->cmd == MC_META_GET ?
              mc_compose_meta_get(&f->out, key, klen) :
              warmup_copy(&f->out, p, i, true);
    }
    if (err != 0) {
        fanout_fragment_drop(&f);
    }
    return f;
}

int
warmup_round(struct req *p, enum mc_cmd cmd, const uint32_t *route,
             uint32_t *per_server, uint32_t nservers)
{
    struct round_arg ra = { cmd, route };
    uint32_t i, nkeys = 0;
    int err;

    err = fanout_round(p, p->nkeys, route, per_server, nservers,
                       make_round_fragment, &ra);
    if (err == 0 && cmd == MC_META_GET) {
        for (i = 0; i < p->nkeys; i++) {
            nkeys += route[i] != WARMUP_NONE;
        }
        STATS_BUMP(p->stats->warmup_lookups, nkeys);
    }
    return err;
}

/* A lookup's hit (VA) for key k: its VALUE, as a get answers it. */
static int
found(struct req *f, struct req *p, uint32_t k, const char *unit,
      const struct mc_rsp *u)
{
    struct req_slot *sl = &p->slots[k];
    int64_t flags = 0, ttl = -1;
    size_t klen, off = f->reply.len;
    char ck[MC_KEY_MAX];
    const char *key = warmup_client_key(p, k, ck, &klen);
    int err;

    mc_meta_number(unit, u, 'f', &flags);
    mc_meta_number(unit, u, 't', &ttl);
    err = mc_compose_value(&f->reply, key, klen, (uint32_t)flags,
                           unit + u->len - u->vlen - 2, u->vlen, NULL);
    if (err != 0) {
        return err;
    }
    sl->frag = f;
    sl->off = (uint32_t)off;
    sl->len = (uint32_t)(f->reply.len - off);
    sl->flags = (uint32_t)flags;
    /* -1: it never expires (T0); 0: it expires within the second */
    sl->ttl = ttl < 0 ? 0 : ttl == 0 ? 1 : ttl > INT32_MAX ? INT32_MAX :
              (int32_t)ttl;
    STATS_BUMP(p->stats->warmup_hits, 1);
    return 0;
}

/* A copy's answer for key k (gets/gats): HD with the copy's CAS makes the
 * VALUE; anything else (NS: written there meanwhile) a miss. */
static int
copied(struct req *f, struct req *p, uint32_t k, const char *unit,
       const struct mc_rsp *u)
{
    struct req_slot *sl = &p->slots[k];
    size_t klen, dlen, off = f->reply.len;
    char ck[MC_KEY_MAX];
    const char *key = warmup_client_key(p, k, ck, &klen), *data;
    int64_t cas;
    uint64_t ucas;
    int err;

    if (u->type != MC_RSP_LINE || u->word != MC_WORD_META_HD ||
        !mc_meta_number(unit, u, 'c', &cas) || !warmup_found(p, k)) {
        sl->frag = NULL;
        return 0;
    }
    ucas = (uint64_t)cas;
    data = slot_data(sl, &dlen);
    err = mc_compose_value(&f->reply, key, klen, sl->flags, data, dlen, &ucas);
    if (err != 0) {
        return err;
    }
    sl->frag = f;
    sl->off = (uint32_t)off;
    sl->len = (uint32_t)(f->reply.len - off);
    STATS_BUMP(p->stats->warmup_copies, 1);
    return 0;
}

int
warmup_unit(struct req *f, const char *unit, const struct mc_rsp *u)
{
    struct req *p = f->parent;
    uint32_t k;
    int err = 0;

    if (p == NULL) {
        /* a copy sent on its own: only counted */
        if (u->type == MC_RSP_LINE && u->word == MC_WORD_META_HD) {
            STATS_BUMP(f->stats->warmup_copies, 1);
        }
        return 1;
    }
    if (f->frag_next >= f->frag_nkeys) {
        return UV_EPROTO;
    }
    k = f->frag_keys[f->frag_next++];
    if (f->cmd == MC_META_GET) {
        if (u->type == MC_RSP_META_VALUE) {
            err = found(f, p, k, unit, u);
        }
    } else {
        err = copied(f, p, k, unit, u);
    }
    if (err != 0) {
        return err;
    }
    return f->frag_next == f->frag_nkeys ? 1 : 0;
}

bool
warmup_found(const struct req *p, uint32_t k)
{
    const struct req *f = p->slots[k].frag;

    return f != NULL && f->cmd == MC_META_GET;
}

int
warmup_copy(struct buf *out, const struct req *p, uint32_t k, bool want_cas)
{
    const struct req_slot *sl = &p->slots[k];
    size_t klen, dlen;
    const char *key = key_of(p, k, &klen);
    const char *data = slot_data(sl, &dlen);
    int64_t ttl = sl->ttl;

    if (p->cmd == MC_GAT || p->cmd == MC_GATS) {
        ttl = p->exptime;       /* what the client asked the key to get */
    } else if (ttl > WARMUP_RELATIVE_MAX) {
        ttl += (int64_t)time(NULL);
    }
    return mc_compose_meta_add(out, key, klen, sl->flags, ttl, data, dlen,
                               want_cas);
}

void
warmup_drop_found(struct req *p)
{
    uint32_t k;

    for (k = 0; k < p->nkeys; k++) {
        if (warmup_found(p, k)) {
            p->slots[k].frag = NULL;
        }
    }
}
