/*
 * check_health: one blocking HTTP/1.0 request to the admin port, bounded by
 * CHECK_HEALTH_TIMEOUT_MS (a health check that hangs is a failed one).
 */
#include "memring/check_health.h"

#include "memring/net.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until the deadline: > 0 ready, 0 timed out. */
static int
wait_fd(int fd, short events, int64_t deadline)
{
    struct pollfd p = { .fd = fd, .events = events };
    int64_t left = deadline - now_ms();
    int rc;

    if (left <= 0) {
        return 0;
    }
    do {
        rc = poll(&p, 1, (int)left);
    } while (rc < 0 && errno == EINTR);
    return rc;
}

/* The whole reply (up to len - 1 bytes, NUL-terminated): 0, or an errno
 * (ETIMEDOUT past the deadline). */
static int
exchange(int fd, char *reply, size_t len, int64_t deadline)
{
    static const char req[] = "GET /healthz HTTP/1.0\r\n\r\n";
    socklen_t elen = sizeof(int);
    size_t got = 0;
    int err = 0;

    if (wait_fd(fd, POLLOUT, deadline) <= 0) {
        return ETIMEDOUT;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0) {
        return err != 0 ? err : errno;
    }
    if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) !=
        (ssize_t)(sizeof(req) - 1)) {
        return errno;
    }
    while (got < len - 1) {
        ssize_t n;

        if (wait_fd(fd, POLLIN, deadline) <= 0) {
            return ETIMEDOUT;
        }
        n = recv(fd, reply + got, len - 1 - got, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    reply[got] = '\0';
    return 0;
}

int
check_health(const char *addr, uint16_t port)
{
    int64_t deadline = now_ms() + CHECK_HEALTH_TIMEOUT_MS;
    struct sockaddr_storage ss;
    char reply[4096];
    const char *body;
    int fd, rc, status = 0;

    if (net_resolve(addr, port, &ss) != 0) {
        fprintf(stderr, "memring: check-health: cannot resolve %s\n", addr);
        return 1;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "memring: check-health: %s\n", strerror(errno));
        return 1;
    }
    rc = connect(fd, (struct sockaddr *)&ss, sizeof(ss));
    if (rc != 0 && errno != EINPROGRESS) {
        fprintf(stderr, "memring: check-health: %s:%u: %s\n", addr,
                (unsigned int)port, strerror(errno));
        close(fd);
        return 1;
    }
    rc = exchange(fd, reply, sizeof(reply), deadline);
    close(fd);
    if (rc != 0) {
        fprintf(stderr, "memring: check-health: %s:%u: %s\n", addr,
                (unsigned int)port, rc == ETIMEDOUT ? "no answer in time" :
                strerror(rc));
        return 1;
    }
    if (sscanf(reply, "HTTP/1.%*d %d", &status) != 1) {
        fprintf(stderr, "memring: check-health: %s:%u: not an HTTP answer\n",
                addr, (unsigned int)port);
        return 1;
    }
    body = strstr(reply, "\r\n\r\n");
    body = body != NULL ? body + 4 : "";
    printf("%d %.*s\n", status, (int)strcspn(body, "\n"), body);
    return status == 200 ? 0 : 1;
}
