/*
 * net: address resolution shared by the pool listeners, the server
 * connections and the admin endpoint.
 */
#ifndef MEMRING_NET_H
#define MEMRING_NET_H

#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

/* A stream that is a TCP socket or a unix socket, seen as either. */
union net_stream {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t    tcp;
    uv_pipe_t   pipe;
};

/* host:port as a TCP address (IPv4 or IPv6, the first one getaddrinfo
 * gives). 0, or UV_EAI_NONAME when it does not resolve. */
int net_resolve(const char *host, uint16_t port, struct sockaddr_storage *out);

#endif /* MEMRING_NET_H */
