/*
 * admin_page: the status page at `/` on the admin port, as HAProxy's
 * stats page or Envoy's admin page give their operators. One
 * self-contained HTML document (no external assets: an admin port is often
 * on a network without them) whose script reads /stats every
 * ADMIN_PAGE_REFRESH_MS and /config when it may (it is behind the admin
 * token when one is set), and shows each pool and server: live, ejected
 * and until when, down, failures; request and hit rates, latency
 * percentiles, connections.
 */
#ifndef MEMRING_ADMIN_PAGE_H
#define MEMRING_ADMIN_PAGE_H

#include "memring/buf.h"

#define ADMIN_PAGE_REFRESH_MS 2000

/* Appends the page to b: 0 or UV_ENOMEM. */
int admin_page_render(struct buf *b);

#endif
