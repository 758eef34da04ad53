/*
 * fake_mc: loop driver, fake memcached and socket peer for the unit tests
 * of the network modules (see fake_mc.h).
 */
#include "fake_mc.h"

#include "memring/client.h"
#include "memring/conf.h"
#include "memring/limits.h"
#include "memring/listener.h"
#include "memring/pool.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define FAKE_READ_SIZE (64 * 1024)
#define FAKE_MAX_WORDS 32

/* ---------------------------------------------------------------------
 * Loop driver
 * ------------------------------------------------------------------- */

static void
tick_cb(uv_timer_t *t)
{
    (void)t;
}

static void
tick_close_cb(uv_handle_t *h)
{
    *(bool *)h->data = true;
}

bool
fake_run_until(uv_loop_t *loop, fake_cond_fn *cond, void *arg, uint32_t ms)
{
    uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000u;
    /* Each turn waits at most for the tick, so this many turns take at
     * least ms unless the loop keeps finding work: a bound that holds
     * even if the clock misbehaves. */
    uint64_t turns = 0, max_turns = (uint64_t)ms * 100 + 10000;
    uv_timer_t tick;
    bool closed = false, ok;

    uv_timer_init(loop, &tick);
    tick.data = &closed;
    uv_timer_start(&tick, tick_cb, 1, 1);
    for (;;) {
        ok = cond != NULL && cond(arg);
        if (ok || turns++ >= max_turns || uv_hrtime() >= end) {
            break;
        }
        uv_run(loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&tick, tick_close_cb);
    for (turns = 0; !closed && turns < 1000; turns++) {
        uv_run(loop, UV_RUN_NOWAIT);
    }
    if (!closed) {
        /* The stack frame holding the timer is about to go. */
        fprintf(stderr, "fake_run_until: tick timer did not close\n");
        abort();
    }
    return ok;
}

void
fake_run_for(uv_loop_t *loop, uint32_t ms)
{
    fake_run_until(loop, NULL, NULL, ms);
}

bool
fake_run_down(uv_loop_t *loop, uint32_t ms)
{
    uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000u;
    uint64_t turns = 0, max_turns = (uint64_t)ms * 1000 + 10000;

    while (uv_run(loop, UV_RUN_NOWAIT) != 0) {
        if (turns++ >= max_turns || uv_hrtime() >= end) {
            return false;
        }
    }
    return true;
}

int
fake_refusing_port(int *fd, uint16_t *port)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int s, err;

    s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) {
        return -errno;
    }
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        getsockname(s, (struct sockaddr *)&sin, &len) != 0) {
        err = -errno;
        close(s);
        return err;
    }
    *fd = s;
    *port = ntohs(sin.sin_port);
    return 0;
}

int
fake_tmpdir(char *dir, size_t len, const char *what)
{
    int n = snprintf(dir, len, "/tmp/memring-%s-XXXXXX", what);

    if (n < 0 || (size_t)n >= len) {
        return -ENAMETOOLONG;
    }
    return mkdtemp(dir) == NULL ? -errno : 0;
}

bool
fake_tmpdir_remove(const char *dir)
{
    if (rmdir(dir) != 0) {
        fprintf(stderr, "rmdir %s: %s\n", dir, strerror(errno));
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------------
 * Fake memcached
 * ------------------------------------------------------------------- */

struct fake_write {
    uv_write_t w;
    char       data[];
};

static void
fake_write_cb(uv_write_t *w, int status)
{
    (void)status;
    free(w->data);
}

static int
conn_write(struct fake_mc_conn *c, const void *bytes, size_t n)
{
    struct fake_write *fw;
    uv_buf_t b;
    int err;

    if (c->closed) {
        return UV_EPIPE;
    }
    fw = malloc(sizeof(*fw) + n);
    if (fw == NULL) {
        return UV_ENOMEM;
    }
    memcpy(fw->data, bytes, n);
    fw->w.data = fw;
    b = uv_buf_init(fw->data, (unsigned int)n);
    err = uv_write(&fw->w, &c->h.stream, &b, 1, fake_write_cb);
    if (err != 0) {
        free(fw);
    }
    return err;
}

static void
fake_close_cb(uv_handle_t *h)
{
    struct fake_mc *f = h->data;

    f->nopen--;
}

static void
conn_close(struct fake_mc_conn *c)
{
    if (!c->closed) {
        c->closed = true;
        c->h.handle.data = c->f;
        uv_close(&c->h.handle, fake_close_cb);
    }
}

static struct fake_mc_item *
item_find(struct fake_mc *f, const char *key, size_t len)
{
    uint32_t i;

    for (i = 0; i < f->nitems; i++) {
        if (strlen(f->items[i].key) == len &&
            memcmp(f->items[i].key, key, len) == 0) {
            return &f->items[i];
        }
    }
    return NULL;
}

static int
item_store(struct fake_mc *f, const char *key, size_t klen,
           const char *value, size_t vlen)
{
    struct fake_mc_item *it = item_find(f, key, klen);

    if (it == NULL) {
        if (f->nitems == FAKE_MC_ITEMS || klen >= sizeof(it->key)) {
            return UV_ENOMEM;
        }
        it = &f->items[f->nitems++];
        memcpy(it->key, key, klen);
        it->key[klen] = '\0';
    }
    buf_reset(&it->value);
    return buf_append(&it->value, value, vlen);
}

static void
item_remove(struct fake_mc *f, struct fake_mc_item *it)
{
    buf_free(&it->value);
    *it = f->items[--f->nitems];
    memset(&f->items[f->nitems], 0, sizeof(f->items[f->nitems]));
}

/* Splits line (NUL-terminated, changed in place) at spaces. */
static uint32_t
split_words(char *line, char **words)
{
    uint32_t n = 0;
    char *p = line;

    while (*p != '\0' && n < FAKE_MAX_WORDS) {
        while (*p == ' ') {
            *p++ = '\0';
        }
        if (*p == '\0') {
            break;
        }
        words[n++] = p;
        while (*p != '\0' && *p != ' ') {
            p++;
        }
    }
    return n;
}

/* Answers request words[0..n) (line_len bytes with its \r\n, then the rest
 * of c's input at data, left bytes) into out. The bytes it took, or 0 when
 * it needs more input. */
static size_t
answer_one(struct fake_mc *f, char **words, uint32_t n, size_t line_len,
           const char *data, size_t left, struct buf *out)
{
    struct fake_mc_item *it;
    char head[256];
    uint32_t i;

    if (n >= 2 && (strcmp(words[0], "get") == 0 ||
                   strcmp(words[0], "gets") == 0)) {
        for (i = 1; i < n; i++) {
            it = item_find(f, words[i], strlen(words[i]));
            if (it == NULL) {
                continue;
            }
            snprintf(head, sizeof(head), "VALUE %s 0 %zu\r\n", words[i],
                     buf_unread(&it->value));
            buf_append_str(out, head);
            buf_append(out, buf_head(&it->value), buf_unread(&it->value));
            buf_append_str(out, "\r\n");
        }
        buf_append_str(out, "END\r\n");
        return line_len;
    }
    if (n >= 5 && strcmp(words[0], "set") == 0) {
        size_t vlen = strtoul(words[4], NULL, 10);
        if (left < line_len + vlen + 2) {
            return 0;
        }
        item_store(f, words[1], strlen(words[1]), data + line_len, vlen);
        if (n < 6 || strcmp(words[5], "noreply") != 0) {
            buf_append_str(out, "STORED\r\n");
        }
        return line_len + vlen + 2;
    }
    if (n >= 2 && strcmp(words[0], "delete") == 0) {
        it = item_find(f, words[1], strlen(words[1]));
        if (it != NULL) {
            item_remove(f, it);
        }
        buf_append_str(out, it != NULL ? "DELETED\r\n" : "NOT_FOUND\r\n");
        return line_len;
    }
    if (n >= 1 && strcmp(words[0], "flush_all") == 0) {
        while (f->nitems > 0) {
            item_remove(f, &f->items[0]);
        }
        buf_append_str(out, "OK\r\n");
        return line_len;
    }
    if (n == 1 && strcmp(words[0], "version") == 0) {
        buf_append_str(out, "VERSION fake\r\n");
        return line_len;
    }
    buf_append_str(out, "ERROR\r\n");
    return line_len;
}

/* FAKE_MC_AUTO: answers every complete request c has not answered yet. */
static void
answer(struct fake_mc_conn *c)
{
    struct fake_mc *f = c->f;
    struct buf out = BUF_INIT;

    while (!f->hold && !c->closed && c->answered < c->in.len) {
        const char *data = c->in.data + c->answered;
        size_t left = c->in.len - c->answered, line_len, took;
        const char *nl = memchr(data, '\n', left);
        char line[1024], *words[FAKE_MAX_WORDS];
        uint32_t n;

        if (nl == NULL) {
            break;
        }
        line_len = (size_t)(nl - data) + 1;
        if (line_len >= sizeof(line)) {
            line_len = sizeof(line) - 1;
        }
        memcpy(line, data, line_len);
        line[line_len] = '\0';
        line[strcspn(line, "\r\n")] = '\0';
        n = split_words(line, words);
        took = answer_one(f, words, n, line_len, data, left, &out);
        if (took == 0) {
            break;
        }
        c->answered += took;
        f->nanswered++;
    }
    if (buf_unread(&out) > 0) {
        conn_write(c, buf_head(&out), buf_unread(&out));
    }
    buf_free(&out);
}

static void
conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct fake_mc_conn *c = h->data;

    (void)suggested;
    if (buf_reserve(&c->in, FAKE_READ_SIZE) != 0) {
        *b = uv_buf_init(NULL, 0);
        return;
    }
    *b = uv_buf_init(c->in.data + c->in.len,
                     (unsigned int)(c->in.cap - c->in.len));
}

static void
conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct fake_mc_conn *c = s->data;

    (void)b;
    if (c->closed || nread == 0) {
        return;
    }
    if (nread < 0) {
        c->eof = true;
        conn_close(c);
        return;
    }
    c->in.len += (size_t)nread;
    if (c->f->mode == FAKE_MC_AUTO) {
        answer(c);
    }
}

static void
fake_accept_cb(uv_stream_t *l, int status)
{
    struct fake_mc *f = l->data;
    struct fake_mc_conn *c;

    if (status != 0 || f->nconns == FAKE_MC_CONNS) {
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return;
    }
    c->f = f;
    if (f->is_unix) {
        uv_pipe_init(f->loop, &c->h.pipe, 0);
    } else {
        uv_tcp_init(f->loop, &c->h.tcp);
    }
    c->h.handle.data = c;
    f->conns[f->nconns++] = c;
    f->nopen++;
    if (uv_accept(l, &c->h.stream) != 0 ||
        uv_read_start(&c->h.stream, conn_alloc_cb, conn_read_cb) != 0) {
        conn_close(c);
    }
}

/* A write to a connection the other side closed must fail with EPIPE, not
 * kill the test (memring's main ignores SIGPIPE as well). */
static void
ignore_sigpipe(void)
{
    signal(SIGPIPE, SIG_IGN);
}

int
fake_mc_start(struct fake_mc *f, uv_loop_t *loop, enum fake_mc_mode mode,
              const char *path)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss), err;

    ignore_sigpipe();
    memset(f, 0, sizeof(*f));
    f->loop = loop;
    f->mode = mode;
    if (path != NULL) {
        f->is_unix = true;
        snprintf(f->path, sizeof(f->path), "%s", path);
        uv_pipe_init(loop, &f->lh.pipe, 0);
        err = uv_pipe_bind(&f->lh.pipe, path);
    } else {
        struct sockaddr_in sin;
        uv_ip4_addr("127.0.0.1", 0, &sin);
        uv_tcp_init(loop, &f->lh.tcp);
        err = uv_tcp_bind(&f->lh.tcp, (const struct sockaddr *)&sin, 0);
    }
    f->lh.handle.data = f;
    f->nopen = 1;
    if (err == 0) {
        err = uv_listen(&f->lh.stream, 64, fake_accept_cb);
    }
    if (err == 0 && path == NULL) {
        err = uv_tcp_getsockname(&f->lh.tcp, (struct sockaddr *)&ss, &len);
        f->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    return err;
}

static bool
all_closed(void *arg)
{
    const struct fake_mc *f = arg;

    return f->nopen == 0;
}

bool
fake_mc_stop(struct fake_mc *f)
{
    bool ok;
    uint32_t i;

    if (f->loop == NULL) {
        return true;
    }
    if (!uv_is_closing(&f->lh.handle)) {
        uv_close(&f->lh.handle, fake_close_cb);
    }
    for (i = 0; i < f->nconns; i++) {
        conn_close(f->conns[i]);
    }
    ok = fake_run_until(f->loop, all_closed, f, FAKE_WAIT_MS);
    if (!ok) {
        return false;       /* the handles are still in use: leak them */
    }
    for (i = 0; i < f->nconns; i++) {
        buf_free(&f->conns[i]->in);
        free(f->conns[i]);
    }
    for (i = 0; i < f->nitems; i++) {
        buf_free(&f->items[i].value);
    }
    f->loop = NULL;
    return true;
}

int
fake_mc_put(struct fake_mc *f, const char *key, const char *value)
{
    return item_store(f, key, strlen(key), value, strlen(value));
}

int
fake_mc_send_on(struct fake_mc *f, uint32_t i, const void *bytes, size_t n)
{
    if (i >= f->nconns) {
        return UV_ENOTCONN;
    }
    return conn_write(f->conns[i], bytes, n);
}

int
fake_mc_send(struct fake_mc *f, const void *bytes, size_t n)
{
    return fake_mc_send_on(f, f->nconns - 1, bytes, n);
}

int
fake_mc_send_bytewise(struct fake_mc *f, const char *s)
{
    size_t i;
    int err, turn;

    for (i = 0; s[i] != '\0'; i++) {
        err = fake_mc_send(f, s + i, 1);
        if (err != 0) {
            return err;
        }
        /* The write, then the peer's read of that one byte. */
        for (turn = 0; turn < 3; turn++) {
            uv_run(f->loop, UV_RUN_NOWAIT);
        }
    }
    return 0;
}

void
fake_mc_hangup(struct fake_mc *f)
{
    if (f->nconns > 0) {
        conn_close(f->conns[f->nconns - 1]);
    }
}

void
fake_mc_release(struct fake_mc *f)
{
    uint32_t i;

    f->hold = false;
    for (i = 0; i < f->nconns; i++) {
        answer(f->conns[i]);
    }
}

size_t
fake_mc_received(const struct fake_mc *f)
{
    size_t n = 0;
    uint32_t i;

    for (i = 0; i < f->nconns; i++) {
        n += f->conns[i]->in.len;
    }
    return n;
}

struct wait_bytes {
    struct fake_mc *f;
    size_t         n;
};

static bool
got_bytes(void *arg)
{
    const struct wait_bytes *w = arg;

    return fake_mc_received(w->f) >= w->n;
}

bool
fake_mc_wait_bytes(struct fake_mc *f, size_t n, uint32_t ms)
{
    struct wait_bytes w = { f, n };

    return fake_run_until(f->loop, got_bytes, &w, ms);
}

uint32_t
fake_mc_count(const struct fake_mc *f, const char *s)
{
    size_t slen = strlen(s), i;
    uint32_t n = 0, k;

    for (k = 0; k < f->nconns; k++) {
        const struct buf *in = &f->conns[k]->in;
        for (i = 0; in->len >= slen && i <= in->len - slen; i++) {
            if (memcmp(in->data + i, s, slen) == 0) {
                n++;
            }
        }
    }
    return n;
}

/* ---------------------------------------------------------------------
 * Peer
 * ------------------------------------------------------------------- */

int
fake_peer_connect(struct fake_peer *c, uint16_t port, const char *path)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd, err;

    memset(c, 0, sizeof(*c));
    c->fd = -1;
    memset(&ss, 0, sizeof(ss));
    if (path != NULL) {
        struct sockaddr_un *un = (struct sockaddr_un *)&ss;
        un->sun_family = AF_UNIX;
        snprintf(un->sun_path, sizeof(un->sun_path), "%s", path);
        len = sizeof(*un);
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sin->sin_port = htons(port);
        len = sizeof(*sin);
    }
    fd = socket(ss.ss_family, SOCK_STREAM, 0);
    if (fd < 0) {
        return -errno;
    }
    /* The kernel completes a connect to a listening socket before the
     * listener accepts, so blocking here does not need the loop. */
    if (connect(fd, (struct sockaddr *)&ss, len) != 0 ||
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
        err = -errno;
        close(fd);
        return err;
    }
    c->fd = fd;
    return 0;
}

int
fake_peer_send(struct fake_peer *c, const void *bytes, size_t n)
{
    const char *p = bytes;
    uint32_t tries = 0;

    while (n > 0) {
        ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EAGAIN && tries++ < 1000) {
            struct pollfd pfd = { c->fd, POLLOUT, 0 };
            poll(&pfd, 1, 1);   /* the test's reads happen elsewhere */
            continue;
        }
        if (k < 0) {
            return -errno;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int
fake_peer_send_str(struct fake_peer *c, const char *s)
{
    return fake_peer_send(c, s, strlen(s));
}

bool
fake_peer_poll(struct fake_peer *c)
{
    bool progress = false;

    while (!c->eof && c->err == 0) {
        ssize_t k;

        if (buf_reserve(&c->in, FAKE_READ_SIZE) != 0) {
            c->err = -ENOMEM;
            break;
        }
        k = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
        if (k > 0) {
            c->in.len += (size_t)k;
            progress = true;
        } else if (k == 0) {
            c->eof = true;
            progress = true;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else if (errno != EINTR) {
            c->err = -errno;
        }
    }
    return progress;
}

struct wait_peer {
    struct fake_peer *c;
    size_t           n;
    bool             eof;    /* wait for EOF, not bytes */
};

static bool
peer_ready(void *arg)
{
    struct wait_peer *w = arg;

    fake_peer_poll(w->c);
    if (w->c->eof || w->c->err != 0) {
        return true;
    }
    return !w->eof && w->c->in.len >= w->n;
}

bool
fake_peer_wait(uv_loop_t *loop, struct fake_peer *c, size_t n, uint32_t ms)
{
    struct wait_peer w = { c, n, false };

    fake_run_until(loop, peer_ready, &w, ms);
    return c->in.len >= n;
}

bool
fake_peer_wait_eof(uv_loop_t *loop, struct fake_peer *c, uint32_t ms)
{
    struct wait_peer w = { c, 0, true };

    fake_run_until(loop, peer_ready, &w, ms);
    return c->eof;
}

void
fake_peer_close(struct fake_peer *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    buf_free(&c->in);
}

/* ---------------------------------------------------------------------
 * A pool on a loop of its own
 * ------------------------------------------------------------------- */

int
fake_pool_init(struct fake_pool *fp, const struct limits *limits)
{
    int err;

    ignore_sigpipe();
    memset(fp, 0, sizeof(*fp));
    err = ioloop_init(&fp->io, limits);
    fp->io_ready = err == 0;
    return err;
}

int
fake_pool_open(struct fake_pool *fp, const char *yaml,
               uv_connection_cb accept_cb)
{
    struct pool_env env;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char err[CONF_ERR_LEN];

    fp->conf = conf_parse(yaml, strlen(yaml), "t.yml", err, sizeof(err));
    if (fp->conf == NULL) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    memset(&env, 0, sizeof(env));
    env.io = &fp->io;
    env.accept_cb = accept_cb;
    if (accept_cb != NULL) {
        fp->conf->pools[0].listen.port = 0;
    }
    fp->pool = pool_create(&env, &fp->conf->pools[0]);
    if (fp->pool == NULL) {
        fprintf(stderr, "pool_create failed\n");
        return -1;
    }
    if (accept_cb == NULL) {
        return 0;
    }
    if (pool_listen(fp->pool) != 0 || fp->pool->listener == NULL ||
        uv_tcp_getsockname(&fp->pool->listener->h.tcp,
                           (struct sockaddr *)&ss, &len) != 0) {
        fprintf(stderr, "pool_listen failed\n");
        return -1;
    }
    fp->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

bool
fake_pool_close(struct fake_pool *fp)
{
    bool ok = true;

    if (fp->io_ready) {
        client_close_all(&fp->io);
    }
    if (fp->pool != NULL) {
        pool_close(fp->pool);
    }
    if (fp->io_ready) {
        ioloop_close(&fp->io);
        ok = fake_run_down(&fp->io.loop, FAKE_WAIT_MS);
        pool_destroy(&fp->pool);
        client_scratch_destroy(&fp->io);
        ioloop_deinit(&fp->io);
        fp->io_ready = false;
    }
    conf_destroy(&fp->conf);
    return ok;
}
