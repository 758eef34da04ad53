/*
 * buf: growable contiguous byte buffer (see buf.h).
 */
#include "memring/buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define BUF_MIN_CAP   256     /* a half-sent request holds little */
#define BUF_KEEP_CAP  (64 * 1024)   /* larger buffers are freed on reset */
/* No buffer or array of memring's needs a terabyte: a request for more
 * is refused without asking the allocator (which, under a sanitizer,
 * reports it). */
#define BUF_MAX       ((size_t)1 << 40)

int
buf_reserve(struct buf *b, size_t n)
{
    size_t need, cap;
    char *p;

    if (b->cap - b->len >= n) {
        return 0;
    }
    /* Slide unread bytes to the front before growing: a read buffer that
     * is consumed as it fills then never grows past its largest message. */
    if (b->pos > 0) {
        size_t unread = b->len - b->pos;
        memmove(b->data, b->data + b->pos, unread);
        b->pos = 0;
        b->len = unread;
        if (b->cap - b->len >= n) {
            return 0;
        }
    }
    if (n > BUF_MAX || b->len + n > BUF_MAX) {
        return UV_ENOMEM;
    }
    need = b->len + n;
    cap = b->cap < BUF_MIN_CAP ? BUF_MIN_CAP : b->cap;
    while (cap < need) {
        cap *= 2;               /* need <= BUF_MAX: no wrap */
    }
    p = realloc(b->data, cap);
    if (p == NULL) {
        return UV_ENOMEM;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int
array_reserve(void *arrp, uint32_t *cap, uint32_t n, size_t size)
{
    void *arr;

    if (n <= *cap) {
        return 0;
    }
    /* arrp points at some T *: copied, not read through a void **. */
    memcpy(&arr, arrp, sizeof(arr));
    free(arr);
    arr = size != 0 && n > BUF_MAX / size ? NULL : malloc((size_t)n * size);
    *cap = arr != NULL ? n : 0;
    memcpy(arrp, &arr, sizeof(arr));
    return arr != NULL ? 0 : UV_ENOMEM;
}

int
array_grow(void *arrp, uint32_t *cap, uint32_t n, size_t size)
{
    void *arr, *grown;

    if (n <= *cap) {
        return 0;
    }
    memcpy(&arr, arrp, sizeof(arr));
    grown = size != 0 && n > BUF_MAX / size ? NULL :
            realloc(arr, (size_t)n * size);
    if (grown == NULL) {
        return UV_ENOMEM;
    }
    *cap = n;
    memcpy(arrp, &grown, sizeof(grown));
    return 0;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
    int err;

    if (n == 0) {
        return 0;
    }
    err = buf_reserve(b, n);
    if (err != 0) {
        return err;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int
buf_append_str(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    /* vsnprintf writes n bytes and a NUL: room for both, then len moves
     * past the n only, so the NUL is free room again. */
    if (n < 0 || buf_reserve(b, (size_t)n + 1) != 0) {
        return UV_ENOMEM;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void
buf_consume(struct buf *b, size_t n)
{
    b->pos += n;
    if (b->pos >= b->len) {
        b->pos = 0;
        b->len = 0;
    }
}

void
buf_reset(struct buf *b)
{
    if (b->cap > BUF_KEEP_CAP) {
        buf_free(b);
        return;
    }
    b->pos = 0;
    b->len = 0;
}

void
buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->pos = 0;
    b->len = 0;
    b->cap = 0;
}
