/*
 * net: address resolution (see net.h).
 */
#include "memring/net.h"

#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

int
net_resolve(const char *host, uint16_t port, struct sockaddr_storage *out)
{
    struct addrinfo hints, *res = NULL;
    char service[8];

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;    /* NULL host: the wildcard address */
    snprintf(service, sizeof(service), "%u", (unsigned)port);
    if (getaddrinfo(host, service, &hints, &res) != 0 || res == NULL) {
        return UV_EAI_NONAME;
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}
