/*
 * json: a writer of compact JSON onto a struct buf, for the admin
 * documents. It keeps, per nesting level, whether a comma is due, and the
 * first error, so that a document is straight-line code checked once.
 */
#ifndef MEMRING_JSON_H
#define MEMRING_JSON_H

#include <stdbool.h>
#include <stdint.h>

struct buf;

#define JSON_DEPTH 16   /* deeper than any document memring writes */

struct json {
    struct buf *b;                  /* not owned */
    int        err;                 /* 0, or the first UV_E* (sticky) */
    uint32_t   depth;
    bool       comma[JSON_DEPTH];   /* per level: a member came before */
};

/* Ready to write one value onto b. */
void json_init(struct json *j, struct buf *b);

/* Opens an object ('{') or array ('['): a member named key, or an element
 * (key NULL). Deeper than JSON_DEPTH is an error (UV_EINVAL). */
void json_open(struct json *j, const char *key, char kind);

/* Closes what the last open opened: kind is '}' or ']'. */
void json_close(struct json *j, char kind);

/* Members (key) or elements (key NULL) of the open object or array. */
void json_u64(struct json *j, const char *key, uint64_t v);
void json_i64(struct json *j, const char *key, int64_t v);
void json_bool(struct json *j, const char *key, bool v);
void json_null(struct json *j, const char *key);
void json_str(struct json *j, const char *key, const char *v);

#endif /* MEMRING_JSON_H */
