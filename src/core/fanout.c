/*
 * fanout: split, match, merge (see fanout.h).
 */
#include "memring/fanout.h"

#include "memring/buf.h"
#include "memring/mc_compose.h"
#include "memring/req.h"

#include <stdlib.h>
#include <string.h>

struct req *
fanout_fragment(struct req *p, enum mc_cmd cmd, uint32_t n)
{
    struct req *f = req_create(p->cache, p->stats, cmd);

    if (f == NULL) {
        return NULL;
    }
    f->parent = p;
    f->key_strip = p->key_strip;
    f->strip_after_q = p->strip_after_q;
    req_ref(p);
    if (req_reserve_frag_keys(f, n) != 0) {
        fanout_fragment_drop(&f);
    }
    return f;
}

void
fanout_fragment_drop(struct req **fp)
{
    req_put(&(*fp)->parent);
    req_put(fp);
}

/* Fragment of parent p for server si: the keys whose route is si, n of
 * them, in request order. NULL on OOM. */
static struct req *
make_fragment(struct req *p, const struct mc_req *m, const uint32_t *route,
              uint32_t si, uint32_t n)
{
    struct req *f = fanout_fragment(p, p->cmd, n);
    uint32_t i;
    int err;

    if (f == NULL) {
        return NULL;
    }
    err = mc_compose_retrieval_head(&f->out, p->cmd, m->exptime);
    for (i = 0; i < p->nkeys && err == 0; i++) {
        if (route[i] == si) {
            f->frag_keys[f->frag_nkeys++] = i;
            err = mc_compose_key(&f->out, p->line.data + p->keys[i].off,
                                 p->keys[i].len);
        }
    }
    if (err == 0) {
        err = mc_compose_eol(&f->out);
    }
    if (err != 0) {
        fanout_fragment_drop(&f);
    }
    return f;
}

int
fanout_split(struct req *p, const char *buf, const struct mc_req *m,
             const struct mc_span *keys, const uint32_t *route,
             uint32_t *per_server, uint32_t nservers)
{
    uint32_t i;

    /* The line and key spans are kept for the merge. The arrays come with
     * the (pooled) req: no allocation in steady state. */
    p->nkeys = m->nkeys;
    if (req_reserve_keys(p, m->nkeys) != 0 ||
        req_reserve_frags(p, nservers) != 0 ||
        buf_append(&p->line, buf, m->line_len) != 0) {
        return UV_ENOMEM;
    }
    memcpy(p->keys, keys, m->nkeys * sizeof(*p->keys));
    memset(p->slots, 0, m->nkeys * sizeof(*p->slots));
    memset(per_server, 0, nservers * sizeof(*per_server));
    for (i = 0; i < m->nkeys; i++) {
        per_server[route[i]]++;
    }
    /* Fragments in server order; each sends its keys in request order. */
    for (i = 0; i < nservers; i++) {
        if (per_server[i] == 0) {
            continue;
        }
        p->frags[p->nfrags] = make_fragment(p, m, route, i, per_server[i]);
        if (p->frags[p->nfrags] == NULL) {
            return UV_ENOMEM;
        }
        per_server[p->nfrags++] = i;    /* reused: fragment -> server */
    }
    p->pending = p->nfrags;
    return 0;
}

int
fanout_round(struct req *p, uint32_t nitems, const uint32_t *route,
             uint32_t *per_server, uint32_t nservers, fanout_make_fn *make,
             void *arg)
{
    uint32_t i, added = 0;

    p->pending = 0;
    if (req_grow_frags(p, p->nfrags + nservers) != 0) {
        return UV_ENOMEM;
    }
    memset(per_server, 0, nservers * sizeof(*per_server));
    for (i = 0; i < nitems; i++) {
        if (route[i] != FANOUT_NONE) {
            per_server[route[i]]++;
        }
    }
    for (i = 0; i < nservers; i++) {
        struct req *f;

        if (per_server[i] == 0) {
            continue;
        }
        f = make(p, i, per_server[i], arg);
        if (f == NULL) {
            return UV_ENOMEM;
        }
        p->frags[p->nfrags++] = f;
        per_server[added++] = i;    /* reused: fragment -> server */
    }
    p->pending = added;
    return 0;
}

int
fanout_flush_all(struct req *p, const char *buf, const struct mc_req *m,
                 uint32_t nservers)
{
    uint32_t i;

    if (req_reserve_frags(p, nservers) != 0) {
        return UV_ENOMEM;
    }
    for (i = 0; i < nservers; i++) {
        struct req *f = req_create(p->cache, p->stats, MC_FLUSH_ALL);
        if (f == NULL) {
            return UV_ENOMEM;
        }
        p->frags[p->nfrags++] = f;
        f->parent = p;
        req_ref(p);
        if (mc_compose_request(&f->out, buf, m) != 0) {
            return UV_ENOMEM;
        }
    }
    p->pending = p->nfrags;
    return 0;
}

int
fanout_value(struct req *f, const char *unit, const struct mc_rsp *u)
{
    struct req *p = f->parent;
    const char *key = unit + u->key.off;
    uint32_t j;

    for (j = f->frag_next; j < f->frag_nkeys; j++) {
        uint32_t k = f->frag_keys[j];
        const struct mc_span *ks = &p->keys[k];
        if (ks->len == u->key.len &&
            memcmp(p->line.data + ks->off, key, ks->len) == 0) {
            struct req_slot *s = &p->slots[k];
            size_t off = f->reply.len;
            int err = f->key_strip == 0 ?
                      buf_append(&f->reply, unit, u->len) :
                      mc_compose_value_unprefixed(&f->reply, unit, u,
                                                  f->key_strip,
                                                  f->strip_after_q);
            s->frag = f;
            s->off = (uint32_t)off;
            s->len = (uint32_t)(f->reply.len - off);
            f->frag_next = j + 1;
            return err;
        }
    }
    return UV_EPROTO;   /* a key it was not asked for */
}

/* flush_all answers the first line from a server that is not OK. */
static void
keep_first_error(struct req *p, const char *text, size_t len)
{
    if (p->first_error == NULL) {
        p->first_error = strndup(text, len);
        if (p->first_error != NULL) {
            p->first_error[strcspn(p->first_error, "\r\n")] = '\0';
        }
    }
}

/* What retrieval fragment f answered does not count: its keys miss,
 * values it sent included (a warm-up copy's keys too: their values, from
 * the previous server, wait for the CAS the copy would have given). */
static void
drop_values(struct req *p, struct req *f)
{
    uint32_t i;

    if (f->cmd == MC_META_CHUNK) {
        return;     /* its keys are chunks: split.h counts what came */
    }
    for (i = 0; i < f->frag_nkeys; i++) {
        struct req_slot *sl = &p->slots[f->frag_keys[i]];
        if (sl->frag == f || f->cmd == MC_META_ADD) {
            sl->frag = NULL;
        }
    }
}

void
fanout_line(struct req *f, const char *text, const struct mc_rsp *u)
{
    struct req *p = f->parent;

    if (p->cmd == MC_FLUSH_ALL || p->cmd == MC_SET) {
        /* flush_all, or a split value's set (split.h): the first
         * answer that is not the one hoped for is the reply */
        if (u->word != (p->cmd == MC_SET ? MC_WORD_STORED : MC_WORD_OK)) {
            keep_first_error(p, text, u->len);
        }
        return;
    }
    /* A retrieval fragment answered with an error: its keys miss, those
     * whose values came before the error too (a single-server get's
     * client gets the error line alone). */
    drop_values(p, f);
}

void
fanout_fail(struct req *f, const char *line)
{
    struct req *p = f->parent;

    f->failed = true;
    if (p->cmd == MC_FLUSH_ALL || p->cmd == MC_SET) {
        keep_first_error(p, line, strlen(line));
        return;
    }
    drop_values(p, f);
}

/*
 * A retrieval's reply is not copied together: the client writes the
 * values, in the request's key order, straight from the fragments'
 * replies (p->gathered), so that a value is copied once on its way
 * through. Here the slots become that list: a value that follows the
 * previous one in the same fragment's reply joins its slice, so that keys
 * that went to one server cost one iovec.
 */
static void
merge_retrieval(struct req *p)
{
    struct req_slot *prev = NULL;
    uint32_t i, hits = 0;

    for (i = 0; i < p->nkeys; i++) {
        struct req_slot *s = &p->slots[i];
        if (s->frag == NULL) {
            continue;
        }
        hits++;
        if (prev != NULL && prev->frag == s->frag &&
            prev->off + prev->len == s->off) {
            prev->len += s->len;
            s->frag = NULL;
        } else {
            prev = s;
            p->nslices++;
        }
    }
    req_count_hits(p, hits);
    buf_reset(&p->reply);
    p->gathered = !p->noreply && p->owner != NULL;
}

/* The last fragment is done: p gets its reply, and the fragments' refs on
 * p go (a gathered p keeps its fragments for their bytes). */
static void
parent_complete(struct req *p)
{
    uint32_t i;

    if (p->on_round != NULL && p->on_round(p)) {
        return;     /* another round is out (warmup.h) */
    }
    if (p->cmd == MC_FLUSH_ALL || p->cmd == MC_SET) {
        req_reply_line(p, p->first_error != NULL ? p->first_error :
                          p->cmd == MC_SET ? "STORED" : "OK");
    } else {
        merge_retrieval(p);
    }
    for (i = 0; i < p->nfrags; i++) {
        if (p->gathered) {
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
    req_done(p);
}

void
fanout_done(struct req *f)
{
    struct req *p = f->parent;

    f->done = true;
    if (--p->pending == 0) {
        parent_complete(p);
    }
    req_put(&f);
}

uint32_t
fanout_iov_count(const struct req *p)
{
    return p->nslices + 1;
}

uint32_t
fanout_iov(struct req *p, struct req **reqs, uv_buf_t *bufs)
{
    static const char end[] = MC_END_LINE;
    uint32_t i, n = 0;

    for (i = 0; i < p->nkeys; i++) {
        const struct req_slot *s = &p->slots[i];
        if (s->frag != NULL) {
            req_ref(p);
            reqs[n] = p;
            bufs[n++] = uv_buf_init(s->frag->reply.data + s->off, s->len);
        }
    }
    reqs[n] = p;
    bufs[n++] = uv_buf_init((char *)end, sizeof(end) - 1);
    return n;
}

void
fanout_abort(struct req *p)
{
    uint32_t i;

    for (i = 0; i < p->nfrags; i++) {
        req_put(&p->frags[i]->parent);
        req_put(&p->frags[i]);
    }
    p->nfrags = 0;
    p->pending = 0;
}
