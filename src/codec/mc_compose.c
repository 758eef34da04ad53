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
