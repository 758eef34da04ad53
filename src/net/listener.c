/*
 * listener: listening sockets (see listener.h).
 */
/* SO_REUSEPORT is a Linux/BSD extension beyond POSIX. */
#define _DEFAULT_SOURCE

#include "memring/listener.h"

#include "memring/conf.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static void
listener_close_cb(uv_handle_t *handle)
{
    free(handle->data);
}

void
listener_close(struct listener **lp)
{
    struct listener *l = *lp;

    if (l == NULL) {
        return;
    }
    *lp = NULL;
    if (l->unlink_path != NULL) {
        unlink(l->unlink_path);
    }
    l->h.handle.data = l;
    uv_close(&l->h.handle, listener_close_cb);
}

/*
 * Several workers listen on one port, each with its own socket, and the
 * kernel spreads connections among them (SO_REUSEPORT; libuv 1.44 has no
 * flag for it, so the socket is made here and handed to libuv).
 */
static int
bind_reuseport(uv_tcp_t *tcp, const struct sockaddr_storage *addr)
{
    socklen_t len = addr->ss_family == AF_INET6 ?
                    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int fd, one = 1, err;

    fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        bind(fd, (const struct sockaddr *)addr, len) != 0) {
        err = -errno;
        close(fd);
        return err;
    }
    err = uv_tcp_open(tcp, fd);
    if (err != 0) {
        close(fd);
    }
    return err;
}

static int
bind_unix(uv_loop_t *loop, struct listener *l, const struct conf_listen *cl)
{
    int err;

    /* twemproxy removes a stale socket file before binding, too. */
    unlink(cl->path);
    uv_pipe_init(loop, &l->h.pipe, 0);
    err = uv_pipe_bind(&l->h.pipe, cl->path);
    if (err == 0) {
        l->unlink_path = cl->path;
        if (cl->perm != 0 && chmod(cl->path, (mode_t)cl->perm) != 0) {
            err = UV_EPERM;
        }
    }
    return err;
}

static int
bind_tcp(uv_loop_t *loop, struct listener *l, const struct conf_listen *cl,
         bool reuseport)
{
    struct sockaddr_storage addr;
    int err;

    uv_tcp_init(loop, &l->h.tcp);
    err = net_resolve(cl->host, cl->port, &addr);
    if (err == 0 && reuseport) {
        err = bind_reuseport(&l->h.tcp, &addr);
    } else if (err == 0) {
        err = uv_tcp_bind(&l->h.tcp, (const struct sockaddr *)&addr, 0);
    }
    return err;
}

struct listener *
listener_open(uv_loop_t *loop, const struct conf_listen *cl, int backlog,
              bool reuseport, uv_connection_cb accept_cb, void *arg,
              int *errp)
{
    struct listener *l = calloc(1, sizeof(*l));
    int err;

    *errp = UV_ENOMEM;
    if (l == NULL) {
        return NULL;
    }
    err = cl->path != NULL ? bind_unix(loop, l, cl) :
                             bind_tcp(loop, l, cl, reuseport);
    l->h.handle.data = arg;
    if (err == 0) {
        err = uv_listen(&l->h.stream, backlog, accept_cb);
    }
    if (err != 0) {
        l->unlink_path = NULL;
        listener_close(&l);
        *errp = err;
        return NULL;
    }
    *errp = 0;
    return l;
}
