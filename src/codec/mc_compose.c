/*
 * mc_compose: classic text protocol output (see mc_compose.h).
 */
#include "memring/mc_compose.h"

#include "memring/buf.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

size_t
mc_prefix_at(const struct mc_prefix *p, const char *key, size_t len)
{
    return p->after_q && len > 0 && key[0] == '?' ? 1 : 0;
}

size_t
mc_prefix_key(const struct mc_prefix *p, const char *key, size_t len,
              char *out)
{
    size_t at = mc_prefix_at(p, key, len);

    memcpy(out, key, at);
    if (p->len > 0) {
        memcpy(out + at, p->s, p->len);     /* s is NULL without one */
    }
    memcpy(out + at + p->len, key + at, len - at);
    return len + p->len;
}

/* What mc_compose_request() writes, from byte from of the request on. */
static int
compose_from(struct buf *out, const char *buf, const struct mc_req *m,
             size_t from)
{
    int err;

    if (!m->noreply) {
        return buf_append(out, buf + from, m->total_len - from);
    }
    err = buf_append(out, buf + from, m->noreply_off - from);
    if (err == 0) {
        err = mc_compose_eol(out);
    }
    if (err == 0 && m->total_len > m->line_len) {
        err = buf_append(out, buf + m->line_len, m->total_len - m->line_len);
    }
    return err;
}

int
mc_compose_request(struct buf *out, const char *buf, const struct mc_req *m)
{
    return compose_from(out, buf, m, 0);
}

int
mc_compose_request_prefixed(struct buf *out, const char *buf,
                            const struct mc_req *m, const struct mc_span *key,
                            const struct mc_prefix *p)
{
    size_t at = key->off + mc_prefix_at(p, buf + key->off, key->len);
    int err = buf_append(out, buf, at);

    if (err == 0) {
        err = buf_append(out, p->s, p->len);
    }
    return err != 0 ? err : compose_from(out, buf, m, at);
}

int
mc_compose_retrieval_prefixed(struct buf *out, const char *buf,
                              const struct mc_req *m,
                              const struct mc_span *keys,
                              struct mc_span *pkeys, const struct mc_prefix *p)
{
    size_t start = out->len;
    uint32_t i;
    int err;

    /* the command (and gat's exptime) as the client wrote them */
    err = buf_append(out, buf, keys[0].off);
    for (i = 0; i < m->nkeys && err == 0; i++) {
        if (i > 0) {
            err = buf_append(out, " ", 1);
        }
        if (err == 0) {
            err = buf_reserve(out, keys[i].len + p->len);
        }
        if (err == 0) {
            pkeys[i].off = (uint32_t)(out->len - start);
            pkeys[i].len = (uint32_t)mc_prefix_key(
                p, buf + keys[i].off, keys[i].len, out->data + out->len);
            out->len += pkeys[i].len;
        }
    }
    return err != 0 ? err : mc_compose_eol(out);
}

int
mc_compose_value_unprefixed(struct buf *out, const char *unit,
                            const struct mc_rsp *u, size_t strip,
                            bool after_q)
{
    size_t at = u->key.off;
    int err;

    if (after_q && u->key.len > 0 && unit[at] == '?') {
        at++;
    }
    err = buf_append(out, unit, at);
    return err != 0 ? err : buf_append(out, unit + at + strip,
                                       u->len - at - strip);
}

int
mc_compose_meta_request(struct buf *out, const char *buf,
                        const struct mc_req *m)
{
    int err = buf_append(out, buf, m->total_len);

    if (err == 0 && m->meta_quiet) {
        err = buf_append_str(out, "mn\r\n");
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
mc_compose_set(struct buf *out, const char *key, size_t klen, uint32_t flags,
               int64_t exptime, const char *data, size_t dlen)
{
    char tail[96];
    int n, err;

    n = snprintf(tail, sizeof(tail), " %" PRIu32 " %" PRId64 " %zu\r\n",
                 flags, exptime, dlen);
    err = buf_reserve(out, 4 + klen + (size_t)n + dlen + 2);
    if (err == 0) {
        err = compose_keyed(out, "set ", key, klen, tail, n);
    }
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
