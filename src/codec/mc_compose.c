/*
 * mc_compose: classic text protocol output (see mc_compose.h).
 */
#include "memring/mc_compose.h"

#include "memring/buf.h"

#include <inttypes.h>
#include <stdio.h>
#include <uv.h>

int
mc_compose_request(struct buf *out, const char *buf, const struct mc_req *m)
{
    int err;

    if (!m->noreply) {
        return buf_append(out, buf, m->total_len);
    }
    err = buf_append(out, buf, m->noreply_off);
    if (err == 0) {
        err = mc_compose_eol(out);
    }
    if (err == 0 && m->total_len > m->line_len) {
        err = buf_append(out, buf + m->line_len, m->total_len - m->line_len);
    }
    return err;
}

int
mc_compose_retrieval_head(struct buf *out, enum mc_cmd cmd, int64_t exptime)
{
    char head[64];

    if (cmd == MC_GAT || cmd == MC_GATS) {
        snprintf(head, sizeof(head), "%s %" PRId64, mc_cmd_name(cmd),
                 exptime);
    } else {
        snprintf(head, sizeof(head), "%s", mc_cmd_name(cmd));
    }
    return buf_append_str(out, head);
}

int
mc_compose_key(struct buf *out, const char *key, size_t len)
{
    int err = buf_append(out, " ", 1);

    return err != 0 ? err : buf_append(out, key, len);
}

int
mc_compose_eol(struct buf *out)
{
    return buf_append(out, "\r\n", 2);
}

int
mc_compose_delete(struct buf *out, const char *key, size_t len)
{
    int err = buf_append_str(out, "delete");

    if (err == 0) {
        err = mc_compose_key(out, key, len);
    }
    return err != 0 ? err : mc_compose_eol(out);
}

int
mc_compose_line(struct buf *out, const char *text)
{
    int err = buf_append_str(out, text);

    return err != 0 ? err : mc_compose_eol(out);
}

int
mc_compose_server_error(struct buf *out, const char *why)
{
    int err = buf_append_str(out, "SERVER_ERROR ");

    return err != 0 ? err : mc_compose_line(out, why);
}

int
mc_compose_stat(struct buf *out, const char *name, uint64_t v)
{
    char line[128];
    int n = snprintf(line, sizeof(line), "STAT %s %" PRIu64 "\r\n", name, v);

    return buf_append(out, line, (size_t)n);
}

int
mc_compose_stat_text(struct buf *out, const char *name, const char *text)
{
    int err = buf_append_str(out, "STAT ");

    if (err == 0) {
        err = buf_append_str(out, name);
    }
    if (err == 0) {
        err = buf_append(out, " ", 1);
    }
    return err != 0 ? err : mc_compose_line(out, text);
}

/* Appends key between head and tail (printf-built, short): the key is
 * written as bytes, since it may hold any byte but space and newline. */
static int
compose_keyed(struct buf *out, const char *head, const char *key, size_t len,
              const char *tail, int ntail)
{
    int err = buf_append_str(out, head);

    if (err == 0) {
        err = buf_append(out, key, len);
    }
    return err != 0 ? err : buf_append(out, tail, (size_t)ntail);
}

int
mc_compose_meta_get(struct buf *out, const char *key, size_t len)
{
    static const char tail[] = " v f t\r\n";

    return compose_keyed(out, "mg ", key, len, tail, sizeof(tail) - 1);
}

int
mc_compose_meta_add(struct buf *out, const char *key, size_t klen,
                    uint32_t flags, int64_t ttl, const char *data,
                    size_t dlen, bool want_cas)
{
    char tail[96];
    int n, err;

    n = snprintf(tail, sizeof(tail), " %zu F%" PRIu32 " T%" PRId64 " ME%s\r\n",
                 dlen, flags, ttl, want_cas ? " c" : "");
    err = compose_keyed(out, "ms ", key, klen, tail, n);
    if (err == 0) {
        err = buf_append(out, data, dlen);
    }
    return err != 0 ? err : mc_compose_eol(out);
}

int
mc_compose_value(struct buf *out, const char *key, size_t klen,
                 uint32_t flags, const char *data, size_t dlen,
                 const uint64_t *cas)
{
    char tail[96];
    int n, err;

    if (cas != NULL) {
        n = snprintf(tail, sizeof(tail), " %" PRIu32 " %zu %" PRIu64 "\r\n",
                     flags, dlen, *cas);
    } else {
        n = snprintf(tail, sizeof(tail), " %" PRIu32 " %zu\r\n", flags, dlen);
    }
    err = compose_keyed(out, "VALUE ", key, klen, tail, n);
    if (err == 0) {
        err = buf_append(out, data, dlen);
    }
    return err != 0 ? err : mc_compose_eol(out);
}
