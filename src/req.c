/*
 * req: request objects, their references, and write batches.
 */
#include "memring/req.h"

#include <stdlib.h>
#include <string.h>

struct req *
req_create(struct worker *w, struct client *c, enum mc_cmd cmd)
{
    struct req *r = calloc(1, sizeof(*r));

    if (r == NULL) {
        return NULL;
    }
    r->w = w;
    r->client = c;
    r->cmd = cmd;
    r->refs = 1;
    return r;
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
    free(r->frags);
    if (r->parent != NULL) {
        req_put(&r->parent);
    }
    buf_free(&r->out);
    buf_free(&r->reply);
    buf_free(&r->line);
    free(r->keys);
    free(r->slots);
    free(r->frag_keys);
    free(r->first_error);
    free(r);
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
