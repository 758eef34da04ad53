/*
 * buf: a growable contiguous byte buffer. Bytes [pos, len) are unread;
 * [len, cap) is free room. Growth doubles, so appending n bytes in pieces
 * costs O(n) overall, whatever the size of a value.
 */
#ifndef MEMRING_BUF_H
#define MEMRING_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    char   *data;   /* owned; NULL until the first reserve */
    size_t pos;     /* first unread byte */
    size_t len;     /* one past the last written byte */
    size_t cap;     /* bytes allocated */
};

#define BUF_INIT { NULL, 0, 0, 0 }

/* Makes room for at least n more bytes after len. 0 or UV_ENOMEM. */
int buf_reserve(struct buf *b, size_t n);

/* Appends n bytes. 0 or UV_ENOMEM. */
int buf_append(struct buf *b, const void *p, size_t n);

/* Appends a NUL-terminated string. 0 or UV_ENOMEM. */
int buf_append_str(struct buf *b, const char *s);

/* Appends printf(fmt, ...) without its NUL. 0, or UV_ENOMEM (also for an
 * output error of vsnprintf) with the buffer as it was. */
int buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Drops n unread bytes from the front; compacts lazily. */
void buf_consume(struct buf *b, size_t n);

/* Empties the buffer, keeping its memory when it is small. */
void buf_reset(struct buf *b);

/* Frees the memory; the buffer is empty and reusable after. */
void buf_free(struct buf *b);

/* Scratch arrays that only ever grow: makes the array at *arrp (a T **,
 * *cap elements of size bytes) hold at least n. Its contents do not
 * survive a growth. 0, or UV_ENOMEM with the array freed and *cap 0. */
int array_reserve(void *arrp, uint32_t *cap, uint32_t n, size_t size);

/* The same, for an array whose first *cap elements survive a growth.
 * 0, or UV_ENOMEM with the array as it was. */
int array_grow(void *arrp, uint32_t *cap, uint32_t n, size_t size);

static inline size_t
buf_unread(const struct buf *b)
{
    return b->len - b->pos;
}

static inline char *
buf_head(const struct buf *b)
{
    return b->data + b->pos;
}

#endif /* MEMRING_BUF_H */
