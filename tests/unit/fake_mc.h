/*
 * fake_mc: what the unit tests of the network modules share: a loop
 * driver that bounds every wait (in wall time and in loop turns, so that a
 * bug fails a test instead of hanging it), a fake memcached that listens
 * on the test's own loop, and a plain socket peer the test drives by hand.
 */
#ifndef MEMRING_TEST_FAKE_MC_H
#define MEMRING_TEST_FAKE_MC_H

#include "memring/buf.h"
#include "memring/ioloop.h"
#include "memring/net.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define FAKE_MC_CONNS 16    /* connections one fake accepts, at most */
#define FAKE_MC_ITEMS 64    /* keys one fake stores, at most */
#define FAKE_WAIT_MS  2000  /* how long a wait that should succeed may take */

/* ---------------------------------------------------------------------
 * Loop driver
 * ------------------------------------------------------------------- */

typedef bool fake_cond_fn(void *arg);

/* Runs loop until cond(arg) holds, for at most ms of wall time; a tick
 * timer wakes the loop every millisecond meanwhile. True when cond held. */
bool fake_run_until(uv_loop_t *loop, fake_cond_fn *cond, void *arg,
                    uint32_t ms);

/* Runs loop for ms of wall time. */
void fake_run_for(uv_loop_t *loop, uint32_t ms);

/* Runs loop until no handle or request is left on it, for at most ms.
 * True when the loop ran down. */
bool fake_run_down(uv_loop_t *loop, uint32_t ms);

/* A TCP port on 127.0.0.1 that refuses connections: bound, not listening,
 * held in *fd until the caller closes it. 0 or -errno. */
int fake_refusing_port(int *fd, uint16_t *port);

/* A fresh directory /tmp/memring-<what>-XXXXXX, its name in dir (len
 * bytes). 0 or -errno. */
int fake_tmpdir(char *dir, size_t len, const char *what);

/* Removes dir, which the test must have emptied (a file left behind, a
 * socket file say, is a finding): false, and printed, when that fails. */
bool fake_tmpdir_remove(const char *dir);

/* ---------------------------------------------------------------------
 * Fake memcached
 * ------------------------------------------------------------------- */

enum fake_mc_mode {
    FAKE_MC_SCRIPTED = 0,   /* answers only what the test sends */
    FAKE_MC_AUTO            /* answers like a tiny memcached (its items):
                             * get/gets, set, delete, flush_all,
                             * version; else ERROR */
};

struct conf;
struct fake_mc;
struct limits;
struct pool;

struct fake_mc_conn {
    union net_stream h;
    struct fake_mc   *f;
    struct buf       in;        /* every byte received, never consumed */
    size_t           answered;  /* of in: requests FAKE_MC_AUTO answered */
    bool             eof;       /* the peer closed its side */
    bool             closed;    /* uv_close() called */
};

struct fake_mc_item {
    char       key[64];
    struct buf value;
};

struct fake_mc {
    uv_loop_t           *loop;
    union net_stream    lh;         /* the listening socket */
    bool                is_unix;
    uint16_t            port;       /* TCP: the port it got */
    char                path[108];  /* unix: its socket file */
    enum fake_mc_mode   mode;
    bool                hold;       /* AUTO: requests wait unanswered
                                     * until fake_mc_release() */
    uint32_t            nopen;      /* handles whose close_cb is due */
    struct fake_mc_conn *conns[FAKE_MC_CONNS];
    uint32_t            nconns;     /* accepted so far */
    uint32_t            nanswered;  /* requests AUTO answered */
    struct fake_mc_item items[FAKE_MC_ITEMS];
    uint32_t            nitems;
};

/* Listens on 127.0.0.1 (an ephemeral port, in f->port), or on unix socket
 * path when it is not NULL. 0 or a UV_E* error. */
int fake_mc_start(struct fake_mc *f, uv_loop_t *loop, enum fake_mc_mode mode,
                  const char *path);

/* Closes the listener and every connection, runs loop until their close
 * callbacks ran, frees f's memory. True when everything closed. */
bool fake_mc_stop(struct fake_mc *f);

/* Stores value under key (AUTO answers get with it). 0 or UV_ENOMEM. */
int fake_mc_put(struct fake_mc *f, const char *key, const char *value);

/* Sends n bytes on the latest connection. 0 or a UV_E* error. */
int fake_mc_send(struct fake_mc *f, const void *bytes, size_t n);

/* Sends n bytes on connection i (in accept order). 0 or a UV_E* error. */
int fake_mc_send_on(struct fake_mc *f, uint32_t i, const void *bytes,
                    size_t n);

/* Sends s one byte at a time, running the loop between bytes, so that the
 * peer reads them one by one. 0 or a UV_E* error. */
int fake_mc_send_bytewise(struct fake_mc *f, const char *s);

/* Closes the latest connection (the server hangs up). */
void fake_mc_hangup(struct fake_mc *f);

/* AUTO: answers everything held back, and from now on at once. */
void fake_mc_release(struct fake_mc *f);

/* Bytes received over all connections. */
size_t fake_mc_received(const struct fake_mc *f);

/* Runs f's loop until f received at least n bytes (over all connections)
 * or ms passed. True when it did. */
bool fake_mc_wait_bytes(struct fake_mc *f, size_t n, uint32_t ms);

/* How many times s occurs in what f received (over all connections). */
uint32_t fake_mc_count(const struct fake_mc *f, const char *s);

/* ---------------------------------------------------------------------
 * Peer: a plain non-blocking socket, read between loop turns
 * ------------------------------------------------------------------- */

struct fake_peer {
    int        fd;
    struct buf in;      /* every byte received */
    bool       eof;
    int        err;     /* a read error (-errno), or 0 */
};

/* Connects to 127.0.0.1:port (or unix socket path when not NULL). 0 or
 * -errno. */
int fake_peer_connect(struct fake_peer *c, uint16_t port, const char *path);

/* Sends s, all of it. 0 or -errno. */
int fake_peer_send(struct fake_peer *c, const void *bytes, size_t n);
int fake_peer_send_str(struct fake_peer *c, const char *s);

/* Reads what has arrived without blocking; true on progress or EOF. */
bool fake_peer_poll(struct fake_peer *c);

/* Runs loop, reading c, until c holds n bytes (or saw EOF or an error),
 * for at most ms. True when it holds n bytes. */
bool fake_peer_wait(uv_loop_t *loop, struct fake_peer *c, size_t n,
                    uint32_t ms);

/* Runs loop, reading c, until EOF, for at most ms. True on EOF. */
bool fake_peer_wait_eof(uv_loop_t *loop, struct fake_peer *c, uint32_t ms);

/* Closes the socket and frees what c read. */
void fake_peer_close(struct fake_peer *c);

/* ---------------------------------------------------------------------
 * A pool on a loop of its own
 * ------------------------------------------------------------------- */

struct fake_pool {
    struct ioloop io;
    bool          io_ready;
    struct conf   *conf;
    struct pool   *pool;      /* of conf's first pool */
    uint16_t      port;       /* where it listens, if it does */
};

/* Initialises fp->io with limits (before the fakes that go on its loop
 * start). 0 or a UV_E* error. */
int fake_pool_init(struct fake_pool *fp, const struct limits *limits);

/* Parses yaml and creates the pool of its first pool on fp->io; with an
 * accept_cb, listens on an ephemeral port of its host (fp->port). 0, or
 * -1 with the reason printed. */
int fake_pool_open(struct fake_pool *fp, const char *yaml,
                   uv_connection_cb accept_cb);

/* Closes fp's clients and pool, runs the loop down, frees everything.
 * True when the loop ran down. */
bool fake_pool_close(struct fake_pool *fp);

#endif /* MEMRING_TEST_FAKE_MC_H */
