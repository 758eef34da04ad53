/*
 * admin_health: the /healthz document. 200 when every pool has a live
 * server in every worker (what a load balancer should check), else 503;
 * either way, one line per pool without one and per server whose latest
 * connect failed, saying why.
 */
#ifndef MEMRING_ADMIN_HEALTH_H
#define MEMRING_ADMIN_HEALTH_H

struct buf;
struct snapshot;

/* Appends the document for s to b and sets *status (200 or 503). 0 or
 * UV_ENOMEM. */
int admin_health_render(struct buf *b, const struct snapshot *s,
                        int *status);

#endif /* MEMRING_ADMIN_HEALTH_H */
