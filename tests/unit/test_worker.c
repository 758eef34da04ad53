/*
 * worker tests: a worker built from a parsed config whose pools listen on
 * unix sockets in a temporary directory and whose servers are one fake
 * memcached on the worker's own loop; clients are plain sockets. The loop
 * is driven in bounded steps (fake_mc.h), never by worker_run() alone.
 * malloc, calloc and realloc are wrapped (CMakeLists.txt) so that a
 * reconfigure can run out of memory at each of its allocations.
 */
#include "memring/worker.h"

#include "memring/conf.h"
#include "memring/limits.h"
#include "memring/pool.h"

#include "alloc_fail.h"
#include "fake_mc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define VERSION_REPLY "VERSION 1.6.0-memring-" MEMRING_VERSION "\r\n"
#define MAX_CONFS     4
#define MAX_ALLOCS    1000  /* a reconfigure makes fewer */

struct fixture {
    char             dir[64];           /* the sockets live here */
    char             mc_path[96];       /* dir/mc.sock: the fake */
    struct fake_mc   fake;              /* AUTO, on w's loop */
    struct conf      *confs[MAX_CONFS]; /* [0]: w's first; freed last */
    uint32_t         nconfs;
    struct worker    w;
    bool             w_ready;
    bool             stopped;           /* worker_stop() ran down */
    struct fake_peer peer;
    int              taken_fd;          /* a bound TCP port, not listening */
    uint16_t         taken_port;
    char             msg[2048];
};

static struct fixture fx;

/* ---------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------- */

/* Appends a pool to yaml: it listens on listen, or on dir/<name>.sock
 * when listen is NULL; its nservers servers are all the fake, named s0,
 * s1, ... (different names, so different servers). */
static void
yaml_pool(char *yaml, size_t len, const char *name, const char *listen,
          uint32_t nservers)
{
    size_t used = strlen(yaml);
    uint32_t i;
    int n;

    if (listen != NULL) {
        n = snprintf(yaml + used, len - used, "%s:\n  listen: %s\n"
                     "  servers:\n", name, listen);
    } else {
        n = snprintf(yaml + used, len - used, "%s:\n  listen: %s/%s.sock\n"
                     "  servers:\n", name, fx.dir, name);
    }
    assert_true(n > 0 && (size_t)n < len - used);
    for (i = 0; i < nservers; i++) {
        used = strlen(yaml);
        n = snprintf(yaml + used, len - used, "   - %s:1 s%u\n", fx.mc_path,
                     i);
        assert_true(n > 0 && (size_t)n < len - used);
    }
}

/* Parses yaml into a config the fixture frees; fails the test if bad. */
static struct conf *
parse(const char *yaml)
{
    char err[CONF_ERR_LEN];
    struct conf *c;

    assert_true(fx.nconfs < MAX_CONFS);
    c = conf_parse(yaml, strlen(yaml), "t.yml", err, sizeof(err));
    if (c == NULL) {
        fail_msg("%s", err);
    }
    fx.confs[fx.nconfs++] = c;
    return c;
}

static void
sock_path(char *path, size_t len, const char *pool)
{
    snprintf(path, len, "%s/%s.sock", fx.dir, pool);
}

static bool
sock_exists(const char *pool)
{
    char path[128];

    sock_path(path, sizeof(path), pool);
    return access(path, F_OK) == 0;
}

/* Connects c to pool's socket and checks that "version" is answered;
 * c stays open. */
static void
assert_answers_on(struct fake_peer *c, const char *pool)
{
    char path[128];

    sock_path(path, sizeof(path), pool);
    assert_int_equal(fake_peer_connect(c, 0, path), 0);
    assert_int_equal(fake_peer_send_str(c, "version\r\n"), 0);
    assert_true(fake_peer_wait(&fx.w.io.loop, c, strlen(VERSION_REPLY),
                               FAKE_WAIT_MS));
    assert_int_equal(c->in.len, strlen(VERSION_REPLY));
    assert_memory_equal(buf_head(&c->in), VERSION_REPLY, c->in.len);
}

/* The same with a peer of its own, closed again. */
static void
assert_pool_answers(const char *pool)
{
    struct fake_peer c;

    assert_answers_on(&c, pool);
    fake_peer_close(&c);
}

/* A worker on the three pools alpha, beta, gamma (one server each),
 * listening. */
static struct conf *
start_three(void)
{
    char yaml[2048] = "";

    yaml_pool(yaml, sizeof(yaml), "alpha", NULL, 1);
    yaml_pool(yaml, sizeof(yaml), "beta", NULL, 1);
    yaml_pool(yaml, sizeof(yaml), "gamma", NULL, 1);
    return parse(yaml);
}

static void
init_worker(const struct conf *conf)
{
    struct limits limits;

    limits_default(&limits);
    assert_int_equal(worker_init(&fx.w, 0, conf, &limits), 0);
    fx.w_ready = true;
    assert_int_equal(fake_mc_start(&fx.fake, &fx.w.io.loop, FAKE_MC_AUTO,
                                   fx.mc_path), 0);
}

/* Stops the fake and the worker and runs the loop until nothing is left
 * on it. True when it ran down. */
static bool
stop_all(void)
{
    bool ok;

    fake_peer_close(&fx.peer);
    ok = fake_mc_stop(&fx.fake);
    worker_stop(&fx.w);
    ok &= fake_run_down(&fx.w.io.loop, FAKE_WAIT_MS);
    fx.stopped = true;
    return ok;
}

/* ---------------------------------------------------------------------
 * Fixture
 * ------------------------------------------------------------------- */

static int
setup(void **state)
{
    memset(&fx, 0, sizeof(fx));
    fx.peer.fd = -1;
    fx.taken_fd = -1;
    if (fake_tmpdir(fx.dir, sizeof(fx.dir), "worker") != 0 ||
        fake_refusing_port(&fx.taken_fd, &fx.taken_port) != 0) {
        return -1;
    }
    snprintf(fx.mc_path, sizeof(fx.mc_path), "%s/mc.sock", fx.dir);
    *state = &fx;
    return 0;
}

static int
teardown(void **state)
{
    bool ok = true;
    uint32_t i;

    (void)state;
    fake_peer_close(&fx.peer);
    if (fx.w_ready) {
        if (!fx.stopped) {
            ok = stop_all();
        }
        worker_deinit(&fx.w);
    }
    for (i = fx.nconfs; i > 0; i--) {
        conf_destroy(&fx.confs[i - 1]);
    }
    if (fx.taken_fd >= 0) {
        close(fx.taken_fd);
    }
    unlink(fx.mc_path);
    /* Every listener removes its socket file when it closes. */
    ok &= fake_tmpdir_remove(fx.dir);
    return ok ? 0 : -1;
}

/* ---------------------------------------------------------------------
 * init, listen, stop
 * ------------------------------------------------------------------- */

/* Pools are made in config order (not sorted), not yet listening. */
static void
test_init_pools_in_conf_order(void **state)
{
    char yaml[2048] = "";
    struct conf *c;

    (void)state;
    yaml_pool(yaml, sizeof(yaml), "gamma", NULL, 1);
    yaml_pool(yaml, sizeof(yaml), "alpha", NULL, 2);
    yaml_pool(yaml, sizeof(yaml), "beta", NULL, 3);
    c = parse(yaml);
    init_worker(c);
    assert_int_equal(fx.w.id, 0);
    assert_ptr_equal(fx.w.conf, c);
    assert_int_equal(fx.w.npools, 3);
    assert_int_equal(fx.w.nremoved, 0);
    assert_ptr_equal(fx.w.pools[0]->cp, &c->pools[0]);
    assert_ptr_equal(fx.w.pools[1]->cp, &c->pools[1]);
    assert_ptr_equal(fx.w.pools[2]->cp, &c->pools[2]);
    assert_string_equal(fx.w.pools[0]->cp->name, "gamma");
    assert_string_equal(fx.w.pools[1]->cp->name, "alpha");
    assert_string_equal(fx.w.pools[2]->cp->name, "beta");
    assert_int_equal(fx.w.pools[0]->nservers, 1);
    assert_int_equal(fx.w.pools[1]->nservers, 2);
    assert_int_equal(fx.w.pools[2]->nservers, 3);
    assert_ptr_equal(worker_find_pool(&fx.w, "alpha"), fx.w.pools[1]);
    assert_ptr_equal(worker_find_pool(&fx.w, "beta"), fx.w.pools[2]);
    assert_ptr_equal(worker_find_pool(&fx.w, "gamma"), fx.w.pools[0]);
    assert_null(worker_find_pool(&fx.w, "alph"));
    assert_null(worker_find_pool(&fx.w, ""));
    assert_null(fx.w.pools[0]->listener);
    assert_false(sock_exists("alpha"));
}

/* Every pool listens; a client of each is answered on the worker's loop,
 * locally (version) and through the pool's server (get). */
static void
test_listen_answers(void **state)
{
    static const char want[] = "VALUE k 0 5\r\nhello\r\nEND\r\n";
    char path[128];

    (void)state;
    init_worker(start_three());
    assert_int_equal(worker_listen(&fx.w), 0);
    assert_non_null(fx.w.pools[0]->listener);
    assert_non_null(fx.w.pools[2]->listener);
    assert_true(sock_exists("alpha") && sock_exists("gamma"));
    assert_pool_answers("alpha");
    assert_pool_answers("gamma");

    assert_int_equal(fake_mc_put(&fx.fake, "k", "hello"), 0);
    sock_path(path, sizeof(path), "beta");
    assert_int_equal(fake_peer_connect(&fx.peer, 0, path), 0);
    assert_int_equal(fake_peer_send_str(&fx.peer, "get k\r\n"), 0);
    assert_true(fake_peer_wait(&fx.w.io.loop, &fx.peer, strlen(want),
                               FAKE_WAIT_MS));
    assert_int_equal(fx.peer.in.len, strlen(want));
    assert_memory_equal(buf_head(&fx.peer.in), want, strlen(want));
    assert_int_equal(fake_mc_count(&fx.fake, "get k\r\n"), 1);
}

/* A pool that cannot bind fails worker_listen() with the bind's error. */
static void
test_listen_fails_when_taken(void **state)
{
    char yaml[2048] = "", listen[32];

    (void)state;
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", fx.taken_port);
    yaml_pool(yaml, sizeof(yaml), "alpha", listen, 1);
    init_worker(parse(yaml));
    assert_int_equal(worker_listen(&fx.w), UV_EADDRINUSE);
    assert_null(fx.w.pools[0]->listener);
}

/* worker_stop() closes clients and listeners; the loop then runs down,
 * worker_run() returns at once, and the socket files are gone. */
static void
test_stop_closes_everything(void **state)
{
    (void)state;
    init_worker(start_three());
    assert_int_equal(worker_listen(&fx.w), 0);
    assert_answers_on(&fx.peer, "alpha");

    worker_stop(&fx.w);
    assert_true(fake_peer_wait_eof(&fx.w.io.loop, &fx.peer, FAKE_WAIT_MS));
    assert_true(fx.w.stopping);
    assert_false(sock_exists("alpha"));
    assert_false(sock_exists("beta"));
    assert_false(sock_exists("gamma"));
    assert_true(fake_mc_stop(&fx.fake));
    assert_true(fake_run_down(&fx.w.io.loop, FAKE_WAIT_MS));
    assert_int_equal(worker_run(&fx.w), 0);
    fx.stopped = true;
}

static bool
fake_connected(void *arg)
{
    return ((struct fake_mc *)arg)->nconns > 0;
}

/* The probe connects to servers nobody used. */
static void
test_start_probe_connects_idle_servers(void **state)
{
    (void)state;
    init_worker(start_three());
    assert_int_equal(worker_start_probe(&fx.w, 10), 0);
    assert_non_null(fx.w.probe);
    assert_int_equal(fx.fake.nconns, 0);
    assert_true(fake_run_until(&fx.w.io.loop, fake_connected, &fx.fake,
                               FAKE_WAIT_MS));
}

/* ---------------------------------------------------------------------
 * worker_reconfigure
 * ------------------------------------------------------------------- */

/* The same text again: nothing moves, every pool says "unchanged". */
static void
test_reconfigure_unchanged(void **state)
{
    const struct pool *alpha;
    struct conf *next;

    (void)state;
    init_worker(start_three());
    assert_int_equal(worker_listen(&fx.w), 0);
    alpha = fx.w.pools[0];
    next = start_three();
    assert_int_equal(worker_reconfigure(&fx.w, next, fx.msg,
                                        sizeof(fx.msg)), 0);
    assert_string_equal(fx.msg,
                        "pool alpha: unchanged, 0 servers added, 0 removed\n"
                        "pool beta: unchanged, 0 servers added, 0 removed\n"
                        "pool gamma: unchanged, 0 servers added, 0 removed");
    assert_ptr_equal(fx.w.conf, next);
    assert_int_equal(fx.w.npools, 3);
    assert_ptr_equal(fx.w.pools[0], alpha);
    assert_ptr_equal(alpha->cp, &next->pools[0]);
    assert_int_equal(fx.w.nremoved, 0);
    assert_pool_answers("alpha");
}

/* Added, removed, changed and unchanged pools in one switch. */
static void
test_reconfigure_add_remove_change(void **state)
{
    char yaml[2048] = "", want[1024];
    const struct pool *alpha, *beta, *gamma;
    struct conf *next;

    (void)state;
    init_worker(start_three());
    assert_int_equal(worker_listen(&fx.w), 0);
    alpha = fx.w.pools[0];
    beta = fx.w.pools[1];
    gamma = fx.w.pools[2];
    yaml_pool(yaml, sizeof(yaml), "alpha", NULL, 1);
    yaml_pool(yaml, sizeof(yaml), "beta", NULL, 2);
    yaml_pool(yaml, sizeof(yaml), "delta", NULL, 1);
    next = parse(yaml);
    assert_false(sock_exists("delta"));

    assert_int_equal(worker_reconfigure(&fx.w, next, fx.msg,
                                        sizeof(fx.msg)), 0);
    snprintf(want, sizeof(want),
             "pool gamma: removed\n"
             "pool alpha: unchanged, 0 servers added, 0 removed\n"
             "pool beta: changed, 1 servers added, 0 removed\n"
             "pool delta: added, listening on %s/delta.sock", fx.dir);
    assert_string_equal(fx.msg, want);
    assert_ptr_equal(fx.w.conf, next);
    assert_int_equal(fx.w.npools, 3);
    assert_ptr_equal(fx.w.pools[0], alpha);
    assert_ptr_equal(fx.w.pools[1], beta);
    assert_int_equal(beta->nservers, 2);
    assert_ptr_equal(worker_find_pool(&fx.w, "delta"), fx.w.pools[2]);
    assert_null(worker_find_pool(&fx.w, "gamma"));
    assert_int_equal(fx.w.nremoved, 1);
    assert_ptr_equal(fx.w.removed[0], gamma);
    assert_true(gamma->removed);
    assert_null(gamma->listener);
    assert_false(sock_exists("gamma"));
    assert_true(sock_exists("delta"));
    assert_pool_answers("delta");
    assert_pool_answers("beta");
    assert_pool_answers("alpha");
}

/* A new pool whose address is taken: an error, nothing changed, and the
 * pools it had already made (epsilon) and the plans (beta) undone. */
static void
test_reconfigure_fails_whole(void **state)
{
    char yaml[2048] = "", listen[32];
    const struct pool *beta;
    struct conf *first;

    (void)state;
    first = start_three();
    init_worker(first);
    assert_int_equal(worker_listen(&fx.w), 0);
    beta = fx.w.pools[1];
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", fx.taken_port);
    yaml_pool(yaml, sizeof(yaml), "alpha", NULL, 1);
    yaml_pool(yaml, sizeof(yaml), "beta", NULL, 3);
    yaml_pool(yaml, sizeof(yaml), "epsilon", NULL, 1);
    yaml_pool(yaml, sizeof(yaml), "delta", listen, 1);

    assert_int_equal(worker_reconfigure(&fx.w, parse(yaml), fx.msg,
                                        sizeof(fx.msg)), UV_EADDRINUSE);
    assert_string_equal(fx.msg, "pool delta: cannot apply (address already "
                        "in use); nothing changed");
    assert_ptr_equal(fx.w.conf, first);
    assert_int_equal(fx.w.npools, 3);
    assert_ptr_equal(fx.w.pools[1], beta);
    assert_ptr_equal(beta->cp, &first->pools[1]);
    assert_int_equal(beta->nservers, 1);
    assert_false(beta->removed);
    assert_non_null(worker_find_pool(&fx.w, "gamma"));
    assert_null(worker_find_pool(&fx.w, "epsilon"));
    /* epsilon listened for a moment: its socket is gone again */
    fake_run_for(&fx.w.io.loop, 10);
    assert_false(sock_exists("epsilon"));
    assert_pool_answers("gamma");
    assert_pool_answers("beta");

    /* and the worker still takes a good config afterwards */
    assert_int_equal(worker_reconfigure(&fx.w, start_three(), fx.msg,
                                        sizeof(fx.msg)), 0);
    assert_ptr_equal(fx.w.pools[1], beta);
    assert_pool_answers("alpha");
}

#define NKEYS 24

/* Connects to pool, asks for NKEYS keys in one get (each routed through
 * the ring on its own) and checks every value comes back. */
static void
assert_pool_gets_all(const char *pool)
{
    char req[512] = "get", want[1024] = "";
    struct fake_peer c;
    uint32_t i;

    for (i = 0; i < NKEYS; i++) {
        size_t r = strlen(req), wl = strlen(want);
        snprintf(req + r, sizeof(req) - r, " k%u", i);
        snprintf(want + wl, sizeof(want) - wl, "VALUE k%u 0 %d\r\nv%u\r\n",
                 i, i < 10 ? 2 : 3, i);
    }
    strcat(req, "\r\n");
    strcat(want, "END\r\n");
    assert_answers_on(&c, pool);
    buf_reset(&c.in);
    assert_int_equal(fake_peer_send_str(&c, req), 0);
    assert_true(fake_peer_wait(&fx.w.io.loop, &c, strlen(want),
                               FAKE_WAIT_MS));
    assert_int_equal(c.in.len, strlen(want));
    assert_memory_equal(buf_head(&c.in), want, strlen(want));
    fake_peer_close(&c);
}

/* Out of memory at any one allocation of a reconfigure (from beta on
 * three servers to beta on two, delta added): either an error and the
 * worker still on its old config, or (an allocation after the point of
 * no return) the switch made all the same; either way every key routes.
 * The worker's removed list is in use (gamma left before) and must stay
 * valid (ASan). */
static void
test_reconfigure_out_of_memory(void **state)
{
    char yaml[2048] = "", key[8], value[8];
    const struct pool *alpha, *beta;
    struct conf *before, *next;
    unsigned long n, tried = 0;
    uint32_t i;
    int rc;

    (void)state;
    init_worker(start_three());
    assert_int_equal(worker_listen(&fx.w), 0);
    for (i = 0; i < NKEYS; i++) {
        snprintf(key, sizeof(key), "k%u", i);
        snprintf(value, sizeof(value), "v%u", i);
        assert_int_equal(fake_mc_put(&fx.fake, key, value), 0);
    }
    yaml_pool(yaml, sizeof(yaml), "alpha", NULL, 1);
    yaml_pool(yaml, sizeof(yaml), "beta", NULL, 3);
    before = parse(yaml);
    assert_int_equal(worker_reconfigure(&fx.w, before, fx.msg,
                                        sizeof(fx.msg)), 0);
    assert_int_equal(fx.w.nremoved, 1);
    alpha = fx.w.pools[0];
    beta = fx.w.pools[1];
    yaml[0] = '\0';
    yaml_pool(yaml, sizeof(yaml), "alpha", NULL, 1);
    yaml_pool(yaml, sizeof(yaml), "beta", NULL, 2);
    yaml_pool(yaml, sizeof(yaml), "delta", NULL, 1);
    next = parse(yaml);

    for (n = 1; n <= MAX_ALLOCS; n++) {
        alloc_fail_arm(n);
        rc = worker_reconfigure(&fx.w, next, fx.msg, sizeof(fx.msg));
        tried = alloc_fail_disarm();
        if (rc != 0) {
            assert_true(tried >= n);
            assert_ptr_equal(fx.w.conf, before);
            assert_int_equal(fx.w.npools, 2);
            assert_ptr_equal(fx.w.pools[0], alpha);
            assert_ptr_equal(fx.w.pools[1], beta);
            assert_ptr_equal(beta->cp, &before->pools[1]);
            assert_int_equal(beta->nservers, 3);
            assert_false(beta->removed);
            assert_pool_gets_all("beta");
            continue;
        }
        assert_ptr_equal(fx.w.conf, next);
        assert_ptr_equal(fx.w.pools[1], beta);
        assert_int_equal(beta->nservers, 2);
        assert_non_null(worker_find_pool(&fx.w, "delta"));
        assert_pool_gets_all("beta");
        assert_pool_answers("delta");
        if (tried < n) {
            break;          /* nothing failed: every point was tried */
        }
        assert_int_equal(worker_reconfigure(&fx.w, before, fx.msg,
                                            sizeof(fx.msg)), 0);
    }
    assert_true(n <= MAX_ALLOCS && n > 4);
    assert_pool_answers("alpha");
}

/* A client of a pool that is removed gets the reply to what it had sent,
 * then is closed. */
static void
test_reconfigure_drains_removed_pool_clients(void **state)
{
    static const char want[] = "VALUE k 0 1\r\nv\r\nEND\r\n";
    char yaml[2048] = "";

    (void)state;
    init_worker(start_three());
    assert_int_equal(worker_listen(&fx.w), 0);
    assert_int_equal(fake_mc_put(&fx.fake, "k", "v"), 0);
    fx.fake.hold = true;
    assert_answers_on(&fx.peer, "gamma");
    assert_int_equal(fake_peer_send_str(&fx.peer, "get k\r\n"), 0);
    assert_true(fake_mc_wait_bytes(&fx.fake, strlen("get k\r\n"),
                                   FAKE_WAIT_MS));

    yaml_pool(yaml, sizeof(yaml), "alpha", NULL, 1);
    assert_int_equal(worker_reconfigure(&fx.w, parse(yaml), fx.msg,
                                        sizeof(fx.msg)), 0);
    assert_non_null(strstr(fx.msg, "pool beta: removed"));
    assert_non_null(strstr(fx.msg, "pool gamma: removed"));
    assert_int_equal(fx.w.nremoved, 2);
    fake_run_for(&fx.w.io.loop, 20);
    assert_false(fx.peer.eof);
    assert_int_equal(fx.peer.in.len, strlen(VERSION_REPLY));

    fake_mc_release(&fx.fake);
    assert_true(fake_peer_wait_eof(&fx.w.io.loop, &fx.peer, FAKE_WAIT_MS));
    assert_int_equal(fx.peer.in.len, strlen(VERSION_REPLY) + strlen(want));
    assert_memory_equal(buf_head(&fx.peer.in) + strlen(VERSION_REPLY), want,
                        strlen(want));
    assert_pool_answers("alpha");
}

/* ---------------------------------------------------------------------
 * worker_reconfigure_remote: the caller on a second thread, the worker's
 * loop driven here in bounded steps
 * ------------------------------------------------------------------- */

struct remote {
    const struct conf *conf;
    char              msg[2048];
    int               rc;
    atomic_bool       done;
};

static void
remote_main(void *arg)
{
    struct remote *r = arg;

    r->rc = worker_reconfigure_remote(&fx.w, r->conf, r->msg,
                                      sizeof(r->msg));
    atomic_store(&r->done, true);
}

static bool
remote_done(void *arg)
{
    return atomic_load(&((struct remote *)arg)->done);
}

/* Runs worker_reconfigure_remote(conf) on a thread while this thread runs
 * the worker's loop; true when the call returned in time. */
static bool
reconfigure_remote(struct remote *r, const struct conf *conf)
{
    uv_thread_t tid;
    bool ok;

    memset(r, 0, sizeof(*r));
    r->conf = conf;
    atomic_init(&r->done, false);
    assert_int_equal(uv_thread_create(&tid, remote_main, r), 0);
    ok = fake_run_until(&fx.w.io.loop, remote_done, r, FAKE_WAIT_MS);
    if (!ok) {
        uv_sem_post(&fx.w.reconf_done);     /* let the thread go */
    }
    uv_thread_join(&tid);
    return ok;
}

static void
test_reconfigure_remote(void **state)
{
    char yaml[2048] = "", listen[32], want[256];
    struct remote r;
    struct conf *first, *next;

    (void)state;
    first = start_three();
    init_worker(first);
    assert_int_equal(worker_listen(&fx.w), 0);
    yaml_pool(yaml, sizeof(yaml), "alpha", NULL, 1);
    yaml_pool(yaml, sizeof(yaml), "delta", NULL, 1);
    next = parse(yaml);

    assert_true(reconfigure_remote(&r, next));
    assert_int_equal(r.rc, 0);
    snprintf(want, sizeof(want),
             "pool beta: removed\n"
             "pool gamma: removed\n"
             "pool alpha: unchanged, 0 servers added, 0 removed\n"
             "pool delta: added, listening on %s/delta.sock", fx.dir);
    assert_string_equal(r.msg, want);
    assert_ptr_equal(fx.w.conf, next);
    assert_pool_answers("delta");

    /* a refusal comes back across the thread too */
    yaml[0] = '\0';
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", fx.taken_port);
    yaml_pool(yaml, sizeof(yaml), "zeta", listen, 1);
    assert_true(reconfigure_remote(&r, parse(yaml)));
    assert_int_equal(r.rc, UV_EADDRINUSE);
    assert_non_null(strstr(r.msg, "nothing changed"));
    assert_ptr_equal(fx.w.conf, next);
    assert_pool_answers("delta");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_init_pools_in_conf_order,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_listen_answers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_listen_fails_when_taken, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stop_closes_everything, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_start_probe_connects_idle_servers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconfigure_unchanged, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reconfigure_add_remove_change,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconfigure_fails_whole, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reconfigure_out_of_memory,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_reconfigure_drains_removed_pool_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconfigure_remote, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
