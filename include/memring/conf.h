/*
 * conf: twemproxy's YAML (memcache pools) read with libyaml into plain,
 * immutable values. No libuv here. Keys are table driven; every error names
 * "FILE:LINE:COL: KEY: reason". Servers of each pool are sorted into
 * twemproxy's order (by name: shorter first, then bytewise) so that ring
 * indexes match nutcracker's, unless the pool's placement is a client
 * library's, which keeps the list's order.
 */
#ifndef MEMRING_CONF_H
#define MEMRING_CONF_H

#include "memring/hash.h"
#include "memring/mc_compose.h"
#include "memring/ring.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONF_ERR_LEN 512

/* twemproxy's defaults (nc_conf.h) */
#define CONF_DEFAULT_TIMEOUT              (-1)     /* ms; -1 = none */
#define CONF_DEFAULT_BACKLOG              512
#define CONF_DEFAULT_CLIENT_CONNECTIONS   0        /* 0 = no limit */
#define CONF_DEFAULT_SERVER_CONNECTIONS   1
#define CONF_DEFAULT_SERVER_RETRY_TIMEOUT 30000    /* ms */
#define CONF_DEFAULT_SERVER_FAILURE_LIMIT 2
#define CONF_DEFAULT_LISTEN_PERM          0        /* 0 = leave umask's */
#define CONF_MAX_SERVER_CONNECTIONS       1024     /* per server, per worker */

struct conf_listen {
    char     *text;      /* as written, e.g. "127.0.0.1:22121" */
    char     *host;      /* NULL for a unix socket */
    uint16_t port;
    char     *path;      /* unix socket path, or NULL */
    uint32_t perm;       /* unix socket mode (octal in YAML), 0 = default */
};

struct conf_server {
    char     *text;      /* as written: "host:port:weight [name]" */
    char     *host;      /* host or IP; or a unix socket path */
    uint16_t port;       /* 0 for a unix socket */
    bool     is_unix;
    uint32_t weight;
    char     *name;      /* ring name: alias, else host (port 11211) or
                          * host:port, exactly as twemproxy derives it */
    bool     has_alias;  /* name was given explicitly */
    int      line;       /* where it was written, for later messages */
    uint32_t listed;     /* its position in the servers: list */
};

struct conf_pool {
    char               *name;
    struct conf_listen listen;
    enum ring_placement placement;           /* whose key -> server rule */
    enum hash_type     hash;
    char               hash_tag[3];          /* "" or two chars + NUL */
    enum dist_type     distribution;
    struct mc_prefix   prefix;               /* prefix: (s owned), none:
                                              * len 0; after_q under
                                              * placement libmc */
    int64_t            timeout;              /* ms, -1 = none */
    int                backlog;
    bool               preconnect;
    int                client_connections;
    int                server_connections;
    bool               auto_eject_hosts;
    int64_t            server_retry_timeout; /* ms */
    int                server_failure_limit;
    bool               tcpkeepalive;
    int64_t            warmup_ms;            /* ms a ring change keeps the
                                              * previous ring for lookups
                                              * of misses; 0 = none */
    uint32_t           split_values;         /* chunk size of values split
                                              * across keys (split.h);
                                              * 0 = none */
    struct conf_server *servers;             /* sorted, see above; in list
                                              * order when placement is not
                                              * twemproxy (the libraries'
                                              * order) */
    uint32_t           nservers;
    int                line;                 /* where the pool starts */
};

struct conf {
    char             *path;     /* file it was read from */
    struct conf_pool *pools;    /* in file order */
    uint32_t         npools;
};

/*
 * Reads and validates path. NULL on any error, with err holding
 * "conf: FILE:LINE:COL: KEY: reason" (or "conf: FILE: reason").
 */
struct conf *conf_load(const char *path, char *err, size_t errlen);

/* Same, from memory; name stands for the file in messages. */
struct conf *conf_parse(const char *yaml, size_t len, const char *name,
                        char *err, size_t errlen);

void conf_destroy(struct conf **c);  /* NULL-safe; *c = NULL */

#endif /* MEMRING_CONF_H */
