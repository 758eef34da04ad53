/*
 * listener: a listening socket (TCP or unix) whose connections go to the
 * accept callback it was opened with. On the heap, so that a reload can
 * open a new one before the old one is closed; freed in its close
 * callback.
 */
#ifndef MEMRING_LISTENER_H
#define MEMRING_LISTENER_H

#include "memring/net.h"

#include <stdbool.h>
#include <uv.h>

struct conf_listen;

struct listener {
    union net_stream   h;            /* h.handle.data: the accept cb's arg */
    char               *unlink_path; /* unix socket file to remove */
};

/*
 * Binds cl on loop and listens with backlog; each connection calls
 * accept_cb with the listener's stream, whose data is arg. reuseport: other
 * listeners share the TCP port (SO_REUSEPORT, one per worker). NULL on
 * error, *errp then holds it (not logged).
 */
struct listener *listener_open(uv_loop_t *loop, const struct conf_listen *cl,
                               int backlog, bool reuseport,
                               uv_connection_cb accept_cb, void *arg,
                               int *errp);

/* Closes *lp (removing its socket file); *lp = NULL. NULL is a no-op. */
void listener_close(struct listener **lp);

#endif /* MEMRING_LISTENER_H */
