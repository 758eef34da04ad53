/*
 * admin: the HTTP endpoint on its own port (twemproxy's stats port):
 * /stats (twemproxy's JSON), /metrics (Prometheus), /healthz, /config,
 * POST /reload. Runs on one worker's loop, the one that applies reloads,
 * and renders each document from one snapshot of every worker's counters
 * (snapshot.h); a client that sends nothing gets /stats, the way
 * twemproxy's stats port answers.
 */
#ifndef MEMRING_ADMIN_H
#define MEMRING_ADMIN_H

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct worker;

#define ADMIN_MAX_CONNS     64      /* open admin connections at once */
#define ADMIN_GRACE_MS      250     /* silence before the twemproxy reply */
#define ADMIN_REQUEST_MS    5000    /* accept -> whole request, at most */
#define ADMIN_WRITE_MS      5000    /* for the client to take the reply */
#define ADMIN_LINGER_MS     1000    /* drain after the reply, then close */
#define ADMIN_HEADER_MAX    8192    /* request line + headers, bytes */
#define ADMIN_URL_MAX       1024    /* request target, bytes */
#define ADMIN_BODY_MAX      65536   /* request body, bytes */
#define ADMIN_AUTH_MAX      512     /* Authorization header value, bytes */
#define ADMIN_TOKEN_MAX     256     /* --admin-token-file's token, bytes */

struct admin;

/* What POST /reload runs: 0 with a summary of the change in msg, or a
 * negative UV_E* with the reason in msg. Runs on the admin's loop. */
typedef int (*admin_reload_fn)(void *arg, char *msg, size_t len);

/* One rendered reply, before HTTP framing. */
struct admin_reply {
    int        status;      /* HTTP status code */
    const char *type;       /* Content-Type (static) */
    const char *allow;      /* Allow header for 405 (static), or NULL */
    bool       challenge;   /* 401: add WWW-Authenticate: Bearer */
    char       *body;       /* malloc'd, owned by the reply; may be NULL */
    size_t     len;
};

/*
 * Reading one HTTP request (no I/O): llhttp with the bounds above, and
 * every decision the connection makes about what it read. Feed the bytes
 * as they come; bytes after a whole request are ignored (one request per
 * connection). When the client stops early, admin_http_end() says how the
 * request is refused. The admin's connections and the fuzz target both
 * read requests with these and nothing else.
 */
enum admin_http_state {
    ADMIN_HTTP_MORE = 0,    /* incomplete: feed more */
    ADMIN_HTTP_DONE,        /* a whole request: method, url and body set */
    ADMIN_HTTP_BAD          /* refuse it: status, text (400 408 413 414 500) */
};

struct admin_http {
    llhttp_t   parser;
    size_t     head_bytes;              /* fed before headers completed */
    size_t     body_bytes;              /* of the body, so far */
    int        status;                  /* when BAD: the HTTP status */
    const char *text;                   /* when BAD: reply body (static) */
    const char *why;                    /* when BAD: for the log (static) */
    bool       head_done;
    bool       done;
    size_t     url_len;
    char       url[ADMIN_URL_MAX + 1];  /* request target, NUL-terminated */
    char       *body;                   /* body_bytes + NUL (owned), or NULL */
    size_t     body_cap;                /* bytes allocated at body */
    char       field[16];               /* the header name being read ... */
    size_t     field_len;               /* ... (longer names: not ours) */
    bool       in_auth;                 /* reading Authorization's value */
    bool       has_auth;                /* an Authorization header came */
    size_t     auth_len;
    char       auth[ADMIN_AUTH_MAX + 1]; /* its value, NUL-terminated */
};

/* Ready for a request's first byte. h must not hold a body: deinit first. */
void admin_http_init(struct admin_http *h);

/* Frees the body; h may be zeroed memory. Then only init may follow. */
void admin_http_deinit(struct admin_http *h);

/* Reads data[0..len); once DONE or BAD, says the same again. */
enum admin_http_state admin_http_feed(struct admin_http *h, const char *data,
                                      size_t len);

/* The client ended (EOF: 400) or its time ran out (timed_out: 408) before
 * a whole request. BAD, or what feeding already gave. */
enum admin_http_state admin_http_end(struct admin_http *h, bool timed_out);

const char *admin_http_method(const struct admin_http *h); /* "GET"... */

/*
 * An admin for workers[0..nworkers) on loop (one of those workers' loops).
 * The workers, their pools and their configs must outlive it. NULL on OOM.
 */
struct admin *admin_create(uv_loop_t *loop, struct worker **workers,
                           uint32_t nworkers);

/* Binds addr:port (a name or a numeric address) and listens. 0 or UV_E*
 * (logged). A non-loopback address is logged as a warning. */
int admin_listen(struct admin *a, const char *addr, uint16_t port);

/* The active config was loaded at at_usec (unix microseconds), for
 * /config. Call on the admin's loop. */
void admin_conf_loaded(struct admin *a, uint64_t at_usec);

/* Makes POST /reload call fn(arg, ...): 200 and its summary, or 500 and
 * its reason. Until this is called (fn NULL), POST /reload answers 501.
 * Whoever applies a config (this hook, SIGHUP, a file watch) also calls
 * admin_conf_loaded(). */
void admin_set_reload(struct admin *a, admin_reload_fn fn, void *arg);

/* The bearer token the write and config endpoints want (NULL or "": none
 * wanted, as before). Copied. */
void admin_set_token(struct admin *a, const char *token);

/* Counters of applied and refused reloads, shown in /stats and /metrics
 * (memring_reloads, memring_reload_failures). */
struct reload_stats;
void admin_set_reload_stats(struct admin *a, const struct reload_stats *st);

/* Stops listening and closes every admin connection; the loop frees them
 * on its next turns. Idempotent; NULL is a no-op. */
void admin_close(struct admin *a);

/* Frees a after admin_close() and after the loop ran the close callbacks.
 * NULL-safe; *a = NULL. */
void admin_destroy(struct admin **a);

/* One request as the routing sees it. */
struct admin_request {
    const char *method;         /* "GET", "POST"... */
    const char *path;           /* request target, query included */
    const char *body;           /* NULL when none */
    size_t     body_len;
    const char *authorization;  /* the Authorization header, or NULL */
};

/*
 * The reply to req, as the HTTP side sends it: 200/400/401/403/404/405/
 * 500/501/503. A query string is ignored but by POST /ring/diff (pool=,
 * sample=). With a token set (admin_set_token), /config, POST /reload and
 * POST /ring/diff want "Authorization: Bearer TOKEN": 401 without one,
 * 403 with another. 0, or UV_ENOMEM with r->body NULL. The body is
 * NUL-terminated past len. Exposed for tests; the caller frees r with
 * admin_reply_free().
 */
int admin_respond(struct admin *a, const struct admin_request *req,
                  struct admin_reply *r);
void admin_reply_free(struct admin_reply *r);

#endif /* MEMRING_ADMIN_H */
