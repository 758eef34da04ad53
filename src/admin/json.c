/*
 * json: compact JSON onto a struct buf (see json.h).
 */
#include "memring/json.h"

#include "memring/buf.h"
#include "memring/escape.h"

#include <inttypes.h>
#include <string.h>
#include <uv.h>

/* Keeps the first error only: what follows one is noise. */
static void
json_check(struct json *j, int err)
{
    if (j->err == 0) {
        j->err = err;
    }
}

void
json_init(struct json *j, struct buf *b)
{
    memset(j, 0, sizeof(*j));
    j->b = b;
}

/* The comma before a member or element when one is due, then the key. */
static void
json_key(struct json *j, const char *key)
{
    if (j->comma[j->depth]) {
        json_check(j, buf_append(j->b, ",", 1));
    }
    j->comma[j->depth] = true;
    if (key != NULL) {
        json_check(j, escape_json(j->b, key));
        json_check(j, buf_append(j->b, ":", 1));
    }
}

void
json_open(struct json *j, const char *key, char kind)
{
    json_key(j, key);
    json_check(j, buf_append(j->b, &kind, 1));
    if (j->depth + 1 < JSON_DEPTH) {
        j->depth++;
    } else {
        json_check(j, UV_EINVAL);
    }
    j->comma[j->depth] = false;
}

void
json_close(struct json *j, char kind)
{
    json_check(j, buf_append(j->b, &kind, 1));
    if (j->depth > 0) {
        j->depth--;
    }
}

void
json_u64(struct json *j, const char *key, uint64_t v)
{
    json_key(j, key);
    json_check(j, buf_printf(j->b, "%" PRIu64, v));
}

void
json_i64(struct json *j, const char *key, int64_t v)
{
    json_key(j, key);
    json_check(j, buf_printf(j->b, "%" PRId64, v));
}

void
json_bool(struct json *j, const char *key, bool v)
{
    json_key(j, key);
    json_check(j, buf_append_str(j->b, v ? "true" : "false"));
}

void
json_null(struct json *j, const char *key)
{
    json_key(j, key);
    json_check(j, buf_append_str(j->b, "null"));
}

void
json_str(struct json *j, const char *key, const char *v)
{
    json_key(j, key);
    json_check(j, escape_json(j->b, v));
}
