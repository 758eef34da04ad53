/*
 * req: request objects, their references, and write batches.
 */
#include "memring/req.h"

#include "memring/stats.h"
#include "memring/tally.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/*
 * Under AddressSanitizer a req parked in the cache is poisoned (but for
 * the cache's link), and so are the buffers and arrays it keeps: a req
 * used after its last req_put() is then reported, where otherwise the
 * cache would hide it from the sanitizer as it does from free().
 */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define REQ_POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define REQ_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define REQ_POISON(p, n)   ((void)(p), (void)(n))
#define REQ_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* What a req_cache keeps is bounded, so a burst does not pin memory: at
 * most REQ_POOL_MAX reqs and REQ_KEEP_BUF bytes per buffer (about 25 MB
 * at worst). */
#define REQ_POOL_MAX 1024
#define REQ_KEEP_BUF 8192

static void
keep_or_free(struct req_cache *rc, struct buf *b)
{
    if (b->cap > REQ_KEEP_BUF) {
        *rc->freed += b->cap;
        buf_free(b);
    } else {
        buf_reset(b);
    }
}

/* A pooled req keeps an array up to REQ_KEEP_BUF bytes. */
static void
array_keep_or_free(void *arrp, uint32_t *cap, size_t size, bool keep)
{
    void *arr;

    if (keep && (size_t)*cap * size <= REQ_KEEP_BUF) {
        return;
    }
    memcpy(&arr, arrp, sizeof(arr));
    free(arr);
    arr = NULL;
    memcpy(arrp, &arr, sizeof(arr));
    *cap = 0;
}

int
req_reserve_keys(struct req *r, uint32_t n)
{
    int err = array_reserve(&r->keys, &r->keys_cap, n, sizeof(*r->keys));

    if (err == 0) {
        err = array_reserve(&r->slots, &r->slots_cap, n, sizeof(*r->slots));
    }
    return err;
}

int
req_reserve_frags(struct req *r, uint32_t n)
{
    return array_reserve(&r->frags, &r->frags_cap, n, sizeof(*r->frags));
}

int
req_grow_frags(struct req *r, uint32_t n)
{
    return array_grow(&r->frags, &r->frags_cap, n, sizeof(*r->frags));
}

int
req_reserve_frag_keys(struct req *r, uint32_t n)
{
    return array_reserve(&r->frag_keys, &r->frag_keys_cap, n,
                         sizeof(*r->frag_keys));
}

/* Frees (or, keep, resets for reuse) what a req keeps when pooled. */
static void
req_release_kept(struct req *r, bool keep)
{
    if (keep) {
        keep_or_free(r->cache, &r->out);
        keep_or_free(r->cache, &r->reply);
        keep_or_free(r->cache, &r->line);
    } else {
        buf_free(&r->out);
        buf_free(&r->reply);
        buf_free(&r->line);
    }
    array_keep_or_free(&r->keys, &r->keys_cap, sizeof(*r->keys), keep);
    array_keep_or_free(&r->slots, &r->slots_cap, sizeof(*r->slots), keep);
    array_keep_or_free(&r->frags, &r->frags_cap, sizeof(*r->frags), keep);
    array_keep_or_free(&r->frag_keys, &r->frag_keys_cap,
                       sizeof(*r->frag_keys), keep);
}

void
req_cache_init(struct req_cache *rc, uint64_t *freed)
{
    memset(rc, 0, sizeof(*rc));
    rc->freed = freed;
}

int
req_cache_wscratch(struct req_cache *rc, uint32_t n)
{
    uint32_t cap = 64;

    if (n <= rc->wreqs_cap && n <= rc->wbufs_cap) {
        return 0;
    }
    while (cap < n) {           /* doubling: few growths as batches grow */
        cap *= 2;
    }
    if (array_reserve(&rc->wreqs, &rc->wreqs_cap, cap,
                      sizeof(*rc->wreqs)) != 0) {
        return UV_ENOMEM;
    }
    return array_reserve(&rc->wbufs, &rc->wbufs_cap, cap, sizeof(*rc->wbufs));
}

/* Poisons (or unpoisons) what a cached req keeps: its buffers, arrays. */
static void
req_poison_kept(struct req *r, bool poison)
{
    struct {
        void   *p;
        size_t n;
    } parts[] = {
        { r->out.data, r->out.cap },
        { r->reply.data, r->reply.cap },
        { r->line.data, r->line.cap },
        { r->keys, r->keys_cap * sizeof(*r->keys) },
        { r->slots, r->slots_cap * sizeof(*r->slots) },
        { r->frags, r->frags_cap * sizeof(*r->frags) },
        { r->frag_keys, r->frag_keys_cap * sizeof(*r->frag_keys) },
    };
    size_t i;

    for (i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        if (parts[i].p == NULL || parts[i].n == 0) {
            continue;
        }
        if (poison) {
            REQ_POISON(parts[i].p, parts[i].n);
        } else {
            REQ_UNPOISON(parts[i].p, parts[i].n);
        }
    }
}

/* Poisons (or unpoisons) a cached req but its link, with what it keeps:
 * the req's own bytes are readable while its kept parts are handled. */
static void
req_poison(struct req *r, bool poison)
{
    size_t link = offsetof(struct req, parent);
    size_t after = link + sizeof(r->parent);

    if (!poison) {
        REQ_UNPOISON(r, sizeof(*r));
        req_poison_kept(r, false);
        return;
    }
    req_poison_kept(r, true);
    REQ_POISON(r, link);
    REQ_POISON((char *)r + after, sizeof(*r) - after);
}

struct req *
req_create(struct req_cache *rc, struct pool_stats *stats, enum mc_cmd cmd)
{
    struct req *r = rc->free;

    if (r != NULL) {
        req_poison(r, false);
        rc->free = r->parent;           /* the cache's link */
        rc->n--;
        memset(r, 0, REQ_KEPT_FROM);
    } else {
        r = calloc(1, sizeof(*r));
        if (r == NULL) {
            return NULL;
        }
    }
    r->cache = rc;
    r->stats = stats;
    r->cmd = cmd;
    r->refs = 1;
    return r;
}

void
req_done(struct req *r)
{
    r->done = true;
    if (r->owner != NULL && r->on_done != NULL) {
        r->on_done(r);
    }
}

void
req_count_hits(const struct req *r, uint32_t hits)
{
    STATS_BUMP(r->stats->get_hits, hits);
    STATS_BUMP(r->stats->get_misses, r->nkeys > hits ? r->nkeys - hits : 0);
}

void
req_ref(struct req *r)
{
    r->refs++;
}

static void
req_free(struct req *r)
{
    uint32_t i;

    for (i = 0; i < r->nfrags; i++) {
        req_put(&r->frags[i]);
    }
    if (r->parent != NULL) {
        req_put(&r->parent);
    }
    free(r->first_error);
    free(r->round_data);
    if (r->value_bytes > 0) {
        tally_value_bytes_give(r->value_bytes);
    }
    if (r->cache->n < REQ_POOL_MAX) {
        struct req_cache *rc = r->cache;
        req_release_kept(r, true);
        r->parent = rc->free;
        rc->free = r;
        rc->n++;
        req_poison(r, true);
        return;
    }
    req_release_kept(r, false);
    free(r);
}

void
req_cache_drain(struct req_cache *rc)
{
    struct req *r;

    while ((r = rc->free) != NULL) {
        req_poison(r, false);
        rc->free = r->parent;
        req_release_kept(r, false);
        free(r);
    }
    rc->n = 0;
    free(rc->wreqs);
    free(rc->wbufs);
    rc->wreqs = NULL;
    rc->wbufs = NULL;
    rc->wreqs_cap = 0;
    rc->wbufs_cap = 0;
}

void
req_put(struct req **rp)
{
    struct req *r = *rp;

    if (r == NULL) {
        return;
    }
    *rp = NULL;
    if (--r->refs == 0) {
        req_free(r);
    }
}

int
req_reply_line(struct req *r, const char *line)
{
    int err;

    buf_reset(&r->reply);
    err = buf_append_str(&r->reply, line);
    if (err == 0) {
        err = buf_append(&r->reply, "\r\n", 2);
    }
    r->done = true;
    return err;
}

struct req_batch *
req_batch_create(uint32_t n)
{
    struct req_batch *b;

    b = malloc(sizeof(*b) + n * (sizeof(struct req *) + sizeof(uv_buf_t)));
    if (b == NULL) {
        return NULL;
    }
    b->bufs = (uv_buf_t *)(b + 1);
    b->reqs = (struct req **)(b->bufs + n);
    b->n = 0;
    b->owner = NULL;
    return b;
}

void
req_batch_destroy(struct req_batch **bp)
{
    struct req_batch *b = *bp;
    uint32_t i;

    if (b == NULL) {
        return;
    }
    *bp = NULL;
    for (i = 0; i < b->n; i++) {
        req_put(&b->reqs[i]);
    }
    free(b);
}

int
req_write(uv_stream_t *s, struct req **reqs, uv_buf_t *bufs, uint32_t n,
          bool own_refs, void *owner, uv_write_cb cb, bool *queued)
{
    struct req_batch *b;
    size_t total = 0, done;
    uint32_t i, k;
    int written, err;

    *queued = false;
    for (i = 0; i < n; i++) {
        total += bufs[i].len;
    }
    /* Straight to the socket first: libuv 1.44's uv_write() costs an
     * epoll_ctl() even when the socket takes everything at once. */
    written = total > 0 ? uv_try_write(s, bufs, n) : 0;
    if (written < 0 && written != UV_EAGAIN) {
        err = written;
        goto out;
    }
    done = written > 0 ? (size_t)written : 0;
    if (done == total) {
        err = 0;
        goto out;
    }
    /* The rest waits in libuv's queue; the batch keeps its bytes alive. */
    for (k = 0; k < n && done >= bufs[k].len; k++) {
        done -= bufs[k].len;
    }
    bufs[k].base += done;
    bufs[k].len -= (size_t)done;
    b = req_batch_create(n - k);
    if (b == NULL) {
        err = UV_ENOMEM;
        goto out;
    }
    b->owner = owner;
    for (i = k; i < n; i++) {
        if (!own_refs) {
            req_ref(reqs[i]);
        }
        b->reqs[b->n] = reqs[i];
        b->bufs[b->n] = bufs[i];
        b->n++;
        reqs[i] = NULL;
    }
    b->wreq.data = b;
    err = uv_write(&b->wreq, s, b->bufs, b->n, cb);
    if (err != 0) {
        req_batch_destroy(&b);
        goto out;
    }
    *queued = true;
out:
    if (own_refs) {
        for (i = 0; i < n; i++) {
            req_put(&reqs[i]);          /* NULL (in the batch) is a no-op */
        }
    }
    return err;
}
