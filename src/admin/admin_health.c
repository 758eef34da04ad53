/*
 * admin_health: /healthz, from the pools' health in a snapshot.
 */
#include "memring/admin_health.h"

#include "memring/buf.h"
#include "memring/conf.h"
#include "memring/escape.h"
#include "memring/pool.h"
#include "memring/snapshot.h"

#include <inttypes.h>
#include <uv.h>

/* "pool NAME: no live server (...)" when sp is not healthy. */
static int
unhealthy_line(struct buf *b, const struct snapshot_pool *sp)
{
    int err = 0;

    err |= buf_append_str(b, "pool ");
    err |= escape_text(b, sp->ref->cp->name);
    err |= buf_printf(b, ": no live server (%" PRIu32 " of %" PRIu32
                      " ejected, %" PRIu32 " in connect backoff, %" PRIu32
                      " down)\n", sp->nejected, sp->nservers, sp->nbackoff,
                      sp->ndown);
    return err != 0 ? UV_ENOMEM : 0;
}

/* One line per server of sp whose latest connect failed (by a request,
 * or by the prober for an idle one), saying why. */
static int
down_lines(struct buf *b, const struct snapshot_pool *sp)
{
    uint32_t si;
    int err = 0;

    for (si = 0; si < sp->nservers; si++) {
        const struct snapshot_server *ss = &sp->servers[si];
        if (ss->down == 0) {
            continue;
        }
        err |= buf_append_str(b, "pool ");
        err |= escape_text(b, sp->ref->cp->name);
        err |= buf_append_str(b, ": server ");
        err |= escape_text(b, ss->ref->cs->name);
        err |= buf_append_str(b, " (");
        err |= escape_text(b, ss->ref->cs->text);
        err |= buf_printf(b, "): down: %s\n", uv_strerror(ss->down));
    }
    return err != 0 ? UV_ENOMEM : 0;
}

int
admin_health_render(struct buf *b, const struct snapshot *s, int *status)
{
    struct buf why = BUF_INIT;
    uint32_t pi, nbad = 0;
    int err = 0;

    for (pi = 0; pi < s->npools; pi++) {
        if (!s->pools[pi].healthy) {
            nbad++;
            err |= unhealthy_line(&why, &s->pools[pi]);
        }
        err |= down_lines(&why, &s->pools[pi]);
    }
    if (nbad == 0) {
        err |= buf_printf(b, "ok: %" PRIu32 " pools, each with a live "
                          "server\n", s->npools);
        *status = 200;
    } else {
        err |= buf_printf(b, "unhealthy: %" PRIu32 " of %" PRIu32 " pools "
                          "have no live server\n", nbad, s->npools);
        *status = 503;
    }
    if (buf_unread(&why) > 0) {
        err |= buf_append(b, buf_head(&why), buf_unread(&why));
    }
    buf_free(&why);
    return err != 0 ? UV_ENOMEM : 0;
}
