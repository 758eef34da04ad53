/*
 * listener tests: TCP and unix listening sockets opened from a filled
 * struct conf_listen on a plain loop; connections from the test reach the
 * accept callback with the listener's data set to the caller's arg.
 */
#include "memring/listener.h"

#include "memring/conf.h"
#include "memring/net.h"

#include "fake_mc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#define MAX_ACCEPTED 8

struct fixture {
    uv_loop_t        loop;
    bool             loop_ready;
    char             dir[64];
    char             path[96];         /* dir/l.sock */
    struct listener  *l[3];
    int              marker;           /* what arg points at */
    void             *seen_data;       /* the listener data the cb got */
    int              status;           /* ... and its status */
    uint32_t         naccepted;
    union net_stream accepted[MAX_ACCEPTED];
    struct fake_peer peers[MAX_ACCEPTED];
    uint32_t         npeers;
};

static struct fixture fx;

static void
on_accept(uv_stream_t *l, int status)
{
    union net_stream *c;

    fx.seen_data = l->data;
    fx.status = status;
    if (status != 0 || fx.naccepted == MAX_ACCEPTED) {
        return;
    }
    c = &fx.accepted[fx.naccepted];
    if (l->type == UV_NAMED_PIPE) {
        uv_pipe_init(l->loop, &c->pipe, 0);
    } else {
        uv_tcp_init(l->loop, &c->tcp);
    }
    fx.naccepted++;
    if (uv_accept(l, &c->stream) != 0) {
        fx.status = UV_EPROTO;
    }
}

static int
setup(void **state)
{
    memset(&fx, 0, sizeof(fx));
    snprintf(fx.dir, sizeof(fx.dir), "/tmp/memring-test-XXXXXX");
    if (mkdtemp(fx.dir) == NULL || uv_loop_init(&fx.loop) != 0) {
        return -1;
    }
    fx.loop_ready = true;
    snprintf(fx.path, sizeof(fx.path), "%s/l.sock", fx.dir);
    *state = &fx;
    return 0;
}

static int
teardown(void **state)
{
    uint32_t i;
    bool ok;

    (void)state;
    for (i = 0; i < fx.npeers; i++) {
        fake_peer_close(&fx.peers[i]);
    }
    for (i = 0; i < 3; i++) {
        listener_close(&fx.l[i]);
    }
    for (i = 0; i < fx.naccepted; i++) {
        uv_close(&fx.accepted[i].handle, NULL);
    }
    ok = fake_run_down(&fx.loop, FAKE_WAIT_MS);
    ok &= uv_loop_close(&fx.loop) == 0;
    unlink(fx.path);
    rmdir(fx.dir);
    return ok ? 0 : -1;
}

static void
tcp_listen(struct conf_listen *cl, uint16_t port)
{
    memset(cl, 0, sizeof(*cl));
    cl->text = "127.0.0.1";
    cl->host = "127.0.0.1";
    cl->port = port;
}

static uint16_t
port_of(const struct listener *l)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    assert_int_equal(uv_tcp_getsockname(&l->h.tcp, (struct sockaddr *)&ss,
                                        &len), 0);
    return ntohs(((const struct sockaddr_in *)&ss)->sin_port);
}

/* A connection from the test (to port, or to path when not NULL). */
static int
connect_peer(uint16_t port, const char *path)
{
    assert_true(fx.npeers < MAX_ACCEPTED);
    return fake_peer_connect(&fx.peers[fx.npeers++], port, path);
}

static bool
accepted_n(void *arg)
{
    return fx.naccepted >= *(uint32_t *)arg;
}

static void
wait_accepted(uint32_t n)
{
    assert_true(fake_run_until(&fx.loop, accepted_n, &n, FAKE_WAIT_MS));
    assert_int_equal(fx.naccepted, n);
    assert_ptr_equal(fx.seen_data, &fx.marker);
    assert_int_equal(fx.status, 0);
}

/* 127.0.0.1:0 gets a port; connections reach the callback with data ==
 * arg; once closed, the port refuses. */
static void
test_tcp_accepts(void **state)
{
    struct conf_listen cl;
    uint16_t port;
    int err = 1;

    (void)state;
    tcp_listen(&cl, 0);
    fx.l[0] = listener_open(&fx.loop, &cl, 16, false, on_accept, &fx.marker,
                            &err);
    assert_non_null(fx.l[0]);
    assert_int_equal(err, 0);
    assert_null(fx.l[0]->unlink_path);
    assert_ptr_equal(fx.l[0]->h.handle.data, &fx.marker);
    port = port_of(fx.l[0]);
    assert_true(port != 0);

    assert_int_equal(connect_peer(port, NULL), 0);
    assert_int_equal(connect_peer(port, NULL), 0);
    wait_accepted(2);

    listener_close(&fx.l[0]);
    assert_null(fx.l[0]);
    fake_run_for(&fx.loop, 5);
    assert_int_equal(connect_peer(port, NULL), -ECONNREFUSED);
}

/* A unix socket gets the mode asked for; closing removes its file. */
static void
test_unix_socket_perm(void **state)
{
    static const uint32_t perms[] = { 0600, 0660, 0777 };
    struct conf_listen cl;
    struct stat st;
    uint32_t i;
    int err = 1;

    (void)state;
    for (i = 0; i < 3; i++) {
        memset(&cl, 0, sizeof(cl));
        cl.text = fx.path;
        cl.path = fx.path;
        cl.perm = perms[i];
        fx.l[0] = listener_open(&fx.loop, &cl, 16, false, on_accept,
                                &fx.marker, &err);
        assert_non_null(fx.l[0]);
        assert_int_equal(err, 0);
        assert_string_equal(fx.l[0]->unlink_path, fx.path);
        assert_int_equal(stat(fx.path, &st), 0);
        assert_true(S_ISSOCK(st.st_mode));
        assert_int_equal(st.st_mode & 0777, perms[i]);

        assert_int_equal(connect_peer(0, fx.path), 0);
        wait_accepted(i + 1);

        listener_close(&fx.l[0]);
        assert_int_equal(stat(fx.path, &st), -1);
        assert_int_equal(errno, ENOENT);
        fake_run_for(&fx.loop, 2);
    }
}

/* A file left at the path (a crashed run) is replaced, as twemproxy
 * does. */
static void
test_unix_socket_replaces_stale_file(void **state)
{
    struct conf_listen cl;
    struct stat st;
    int fd, err = 1;

    (void)state;
    fd = open(fx.path, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    memset(&cl, 0, sizeof(cl));
    cl.text = fx.path;
    cl.path = fx.path;
    fx.l[0] = listener_open(&fx.loop, &cl, 16, false, on_accept, &fx.marker,
                            &err);
    assert_non_null(fx.l[0]);
    assert_int_equal(stat(fx.path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(connect_peer(0, fx.path), 0);
    wait_accepted(1);
}

/* Addresses that cannot be bound: NULL, and the error in *errp. */
static void
test_bad_address(void **state)
{
    struct conf_listen cl;
    char missing[128];
    int err = 0;

    (void)state;
    snprintf(missing, sizeof(missing), "%s/no/such/dir.sock", fx.dir);
    memset(&cl, 0, sizeof(cl));
    cl.text = missing;
    cl.path = missing;
    assert_null(listener_open(&fx.loop, &cl, 16, false, on_accept,
                              &fx.marker, &err));
    /* libuv reports a missing directory as EACCES (as Windows does) */
    assert_int_equal(err, UV_EACCES);

    tcp_listen(&cl, 0);
    fx.l[0] = listener_open(&fx.loop, &cl, 16, false, on_accept, &fx.marker,
                            &err);
    assert_non_null(fx.l[0]);
    tcp_listen(&cl, port_of(fx.l[0]));
    err = 0;
    assert_null(listener_open(&fx.loop, &cl, 16, false, on_accept,
                              &fx.marker, &err));
    assert_int_equal(err, UV_EADDRINUSE);
    err = 0;
    assert_null(listener_open(&fx.loop, &cl, 16, true, on_accept,
                              &fx.marker, &err));
    assert_int_equal(err, UV_EADDRINUSE);
    assert_int_equal(fx.naccepted, 0);
}

/* Workers sharing a port each open one with reuseport; a listener
 * without it cannot join them. */
static void
test_reuseport_shares_port(void **state)
{
    struct conf_listen cl;
    uint16_t port;
    uint32_t i;
    int err = 1;

    (void)state;
    tcp_listen(&cl, 0);
    fx.l[0] = listener_open(&fx.loop, &cl, 16, true, on_accept, &fx.marker,
                            &err);
    assert_non_null(fx.l[0]);
    port = port_of(fx.l[0]);
    tcp_listen(&cl, port);
    fx.l[1] = listener_open(&fx.loop, &cl, 16, true, on_accept, &fx.marker,
                            &err);
    assert_non_null(fx.l[1]);
    assert_int_equal(err, 0);
    assert_int_equal(port_of(fx.l[1]), port);
    fx.l[2] = listener_open(&fx.loop, &cl, 16, false, on_accept, &fx.marker,
                            &err);
    assert_null(fx.l[2]);
    assert_int_equal(err, UV_EADDRINUSE);
    for (i = 0; i < 4; i++) {
        assert_int_equal(connect_peer(port, NULL), 0);
    }
    wait_accepted(4);
}

static void
test_close_null(void **state)
{
    struct listener *none = NULL;

    (void)state;
    listener_close(&none);
    assert_null(none);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_tcp_accepts),
        T(test_unix_socket_perm),
        T(test_unix_socket_replaces_stale_file),
        T(test_bad_address),
        T(test_reuseport_shares_port),
        T(test_close_null),
    };
#undef T

    return cmocka_run_group_tests(tests, NULL, NULL);
}
