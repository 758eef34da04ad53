/*
 * conf: twemproxy's nutcracker.yml (memcache pools) -> plain struct conf.
 * libyaml's document API keeps a mark for every node, so each error points
 * at the key or value it is about. Nothing here resolves names or touches
 * sockets: listeners and server connections do that with these values.
 */
#include "memring/conf.h"

#include "memring/hash.h"
#include "memring/mc_compose.h"
#include "memring/mc_parse.h"
#include "memring/ring.h"
#include "memring/split.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <yaml.h>

#define CONF_MAX_FILE   (16u << 20) /* a config is kilobytes; refuse junk */
#define CONF_KETAMA_PORT 11211      /* twemproxy drops it from ring names */
#define CONF_MAX_INT    INT32_MAX   /* twemproxy stores every number in int */

/* One conf_parse() call: the document being read and the first error. */
struct parse {
    const char        *name;      /* file name for messages */
    yaml_document_t   *doc;       /* the one document of the file */
    struct conf       *conf;      /* being filled; destroyed on error */
    yaml_mark_t       *listen_at; /* per pool: where its listen: value is */
    char              *err;       /* caller's buffer, may be NULL */
    size_t            errlen;
    const yaml_node_t *at;        /* setter's error node if not the value */
    char              why[256];   /* setter's reason when it needs values */
    bool              quiet;      /* the value is a secret: do not echo it */
    bool              failed;     /* an error is recorded; keep the first */
    const yaml_node_t *hash_alias; /* this pool's hash: in libmemcached's
                                    * spelling ("default", "crc"), if so */
};

/*
 * One pool key. set() returns NULL or the reason the value is refused;
 * the caller adds FILE:LINE:COL, the key and what was written.
 */
struct conf_cmd {
    const char *name;
    const char *(*set)(struct parse *p, const struct conf_cmd *cmd,
                       struct conf_pool *cp, const yaml_node_t *v);
    size_t     offset;          /* field in struct conf_pool, if generic */
    int        min;             /* least integer accepted (set_int*) */
    int        max;             /* most accepted; 0 = CONF_MAX_INT */
    bool       seq;             /* value is a sequence, not a scalar */
    bool       required;        /* a pool without it is refused */
};

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

static void fail(struct parse *p, const yaml_mark_t *at, const char *key,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Records "conf: FILE:LINE:COL: KEY: why" (or without the parts that are
 * NULL). Only the first error is kept: later ones are consequences.
 */
static void
fail(struct parse *p, const yaml_mark_t *at, const char *key,
     const char *fmt, ...)
{
    char why[CONF_ERR_LEN];
    char where[64];
    va_list ap;

    if (p->failed) {
        return;
    }
    p->failed = true;
    if (p->err == NULL || p->errlen == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    where[0] = '\0';
    if (at != NULL) {
        /* libyaml counts from 0; editors count from 1 */
        snprintf(where, sizeof(where), ":%zu:%zu", at->line + 1,
                 at->column + 1);
    }
    snprintf(p->err, p->errlen, "conf: %s%s: %s%s%s", p->name, where,
             key != NULL ? key : "", key != NULL ? ": " : "", why);
}

/* libyaml's own problem, with its mark when it has one. */
static void
fail_yaml(struct parse *p, const yaml_parser_t *parser)
{
    const char *problem;

    if (parser->error == YAML_MEMORY_ERROR) {
        fail(p, NULL, "yaml", "out of memory");
        return;
    }
    problem = parser->problem != NULL ? parser->problem : "syntax error";
    if (parser->error == YAML_READER_ERROR) {
        /* reader errors (bad UTF-8, control bytes) carry an offset only */
        fail(p, NULL, "yaml", "%s at byte %zu", problem,
             parser->problem_offset);
        return;
    }
    if (parser->context != NULL) {
        fail(p, &parser->problem_mark, "yaml", "%s (%s at line %zu)",
             problem, parser->context, parser->context_mark.line + 1);
        return;
    }
    fail(p, &parser->problem_mark, "yaml", "%s", problem);
}

static const char *
node_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return "a scalar";
    case YAML_SEQUENCE_NODE:
        return "a sequence";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "nothing";
    }
}

/* ------------------------------------------------------------------------ */
/* Small parsers                                                             */
/* ------------------------------------------------------------------------ */

static const char *
sval(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static size_t
slen(const yaml_node_t *n)
{
    return n->data.scalar.length;
}

/* Last c in s[0..len), or NULL (memrchr is a GNU extension). */
static const char *
rfind(const char *s, size_t len, char c)
{
    while (len > 0) {
        len--;
        if (s[len] == c) {
            return s + len;
        }
    }
    return NULL;
}

static char *
dup_n(const char *s, size_t len)
{
    char *d = malloc(len + 1);

    if (d != NULL) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

static bool
all_digits(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
    }
    return len > 0;
}

/*
 * twemproxy's nc_atoi: decimal digits only, no sign, no blanks, leading
 * zeros allowed ("0400" is 400). Unlike nc_atoi it refuses values past max
 * instead of wrapping around int (nutcracker takes "99999999999" as a
 * timeout of 1215752191 ms).
 */
static bool
parse_uint(const char *s, size_t len, uint32_t max, uint32_t *out)
{
    uint64_t v = 0;
    size_t i;

    if (!all_digits(s, len)) {
        return false;
    }
    for (i = 0; i < len; i++) {
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > max) {
            return false;
        }
    }
    *out = (uint32_t)v;
    return true;
}

/* nc_valid_port: 1..65535. */
static bool
parse_port(const char *s, size_t len, uint16_t *port)
{
    uint32_t v;

    if (!parse_uint(s, len, UINT16_MAX, &v) || v == 0) {
        return false;
    }
    *port = (uint16_t)v;
    return true;
}

/*
 * A host as written before ":port". Names are resolved later, so only the
 * shape is checked here: not empty, no blanks, and anything with a colon
 * must be an IPv6 literal (optionally "%zone" and/or in brackets, which
 * are dropped). *host receives a copy without brackets.
 */
static const char *
parse_host(const char *s, size_t len, char **host)
{
    char buf[INET6_ADDRSTRLEN + 1];
    struct in6_addr a6;
    const char *pct;
    size_t alen, i;

    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
        s++;
        len -= 2;
        if (memchr(s, ':', len) == NULL) {
            return "only IPv6 addresses go in brackets";
        }
    }
    if (len == 0) {
        return "missing host before \":port\"";
    }
    for (i = 0; i < len; i++) {
        if (s[i] == ' ' || s[i] == '\t' || s[i] == '[' || s[i] == ']') {
            return "invalid host: blank or stray bracket";
        }
    }
    if (memchr(s, ':', len) != NULL) {
        pct = memchr(s, '%', len);
        alen = pct != NULL ? (size_t)(pct - s) : len;
        if (alen >= sizeof(buf)) {
            return "invalid host: one with ':' must be an IPv6 address";
        }
        memcpy(buf, s, alen);
        buf[alen] = '\0';
        if (inet_pton(AF_INET6, buf, &a6) != 1) {
            return "invalid host: one with ':' must be an IPv6 address";
        }
    }
    *host = dup_n(s, len);
    return *host == NULL ? "out of memory" : NULL;
}

/*
 * An octal file mode, 1 to 4 digits, at most 0777 (setuid and friends mean
 * nothing on a socket; nutcracker refuses them too).
 */
static bool
parse_mode(const char *s, size_t len, uint32_t *mode)
{
    uint32_t v = 0;
    size_t i;

    if (len == 0 || len > 4) {
        return false;
    }
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '7') {
            return false;
        }
        v = v * 8 + (uint32_t)(s[i] - '0');
    }
    if (v > 0777) {
        return false;
    }
    *mode = v;
    return true;
}

static bool
unix_path_fits(size_t len)
{
    struct sockaddr_un sa;

    return len < sizeof(sa.sun_path);
}

/* ------------------------------------------------------------------------ */
/* Setters, one per kind of value                                            */
/* ------------------------------------------------------------------------ */

/* "expected a, b or c" into p->why, from name(0) .. name(n - 1). */
static const char *
why_expected(struct parse *p, const char *(*name)(int), int n)
{
    size_t off;
    int i;

    snprintf(p->why, sizeof(p->why), "expected");
    for (i = 0; i < n; i++) {
        off = strlen(p->why);
        snprintf(p->why + off, sizeof(p->why) - off, "%s %s",
                 i == 0 ? "" : (i == n - 1 ? " or" : ","), name(i));
    }
    return p->why;
}

static const char *
hash_name_at(int i)
{
    return hash_name((enum hash_type)i);
}

static const char *
dist_name_at(int i)
{
    return dist_name((enum dist_type)i);
}

/* Common part of the integer setters: cmd->min .. INT32_MAX. */
static const char *
get_int(struct parse *p, const struct conf_cmd *cmd, const yaml_node_t *v,
        int *out)
{
    int max = cmd->max > 0 ? cmd->max : CONF_MAX_INT;
    uint32_t n;

    if (!all_digits(sval(v), slen(v))) {
        return "expected a non-negative integer";
    }
    if (!parse_uint(sval(v), slen(v), (uint32_t)max, &n) || (int)n < cmd->min) {
        snprintf(p->why, sizeof(p->why), "expected an integer from %d to %d",
                 cmd->min, max);
        return p->why;
    }
    *out = (int)n;
    return NULL;
}

static const char *
set_int(struct parse *p, const struct conf_cmd *cmd, struct conf_pool *cp,
        const yaml_node_t *v)
{
    return get_int(p, cmd, v, (int *)((char *)cp + cmd->offset));
}

static const char *
set_int64(struct parse *p, const struct conf_cmd *cmd, struct conf_pool *cp,
          const yaml_node_t *v)
{
    const char *why;
    int n;

    why = get_int(p, cmd, v, &n);
    if (why == NULL) {
        *(int64_t *)((char *)cp + cmd->offset) = n;
    }
    return why;
}

static const char *
set_split_values(struct parse *p, const struct conf_cmd *cmd,
                 struct conf_pool *cp, const yaml_node_t *v)
{
    uint32_t n;

    (void)cmd;
    if (!all_digits(sval(v), slen(v)) ||
        !parse_uint(sval(v), slen(v), SPLIT_CHUNK_MAX, &n) ||
        (n != 0 && n < SPLIT_CHUNK_MIN)) {
        snprintf(p->why, sizeof(p->why), "expected 0 (off) or a chunk size "
                 "from %u to %u bytes", SPLIT_CHUNK_MIN, SPLIT_CHUNK_MAX);
        return p->why;
    }
    cp->split_values = n;
    return NULL;
}

/* Exactly "true" or "false", as conf_set_bool; YAML's yes/on are refused. */
static const char *
get_bool(const yaml_node_t *v, bool *out)
{
    if (slen(v) == 4 && memcmp(sval(v), "true", 4) == 0) {
        *out = true;
    } else if (slen(v) == 5 && memcmp(sval(v), "false", 5) == 0) {
        *out = false;
    } else {
        return "expected true or false";
    }
    return NULL;
}

static const char *
set_bool(struct parse *p, const struct conf_cmd *cmd, struct conf_pool *cp,
         const yaml_node_t *v)
{
    (void)p;
    return get_bool(v, (bool *)((char *)cp + cmd->offset));
}

static const char *
set_redis(struct parse *p, const struct conf_cmd *cmd, struct conf_pool *cp,
          const yaml_node_t *v)
{
    const char *why;
    bool redis;

    (void)p;
    (void)cmd;
    (void)cp;
    why = get_bool(v, &redis);
    if (why == NULL && redis) {
        return "redis pools are not supported (memring proxies memcached "
               "only)";
    }
    return why;
}

/*
 * nutcracker refuses redis_auth unless the pool is a redis pool ("directive
 * redis_auth: is only valid for a redis pool"), and memring has none.
 */
static const char *
set_redis_auth(struct parse *p, const struct conf_cmd *cmd,
               struct conf_pool *cp, const yaml_node_t *v)
{
    (void)cmd;
    (void)cp;
    (void)v;
    p->quiet = true;
    return "only valid for a redis pool (memring proxies memcached only)";
}

/* nutcracker accepts redis_db on memcache pools and never uses it. */
static const char *
set_redis_db(struct parse *p, const struct conf_cmd *cmd,
             struct conf_pool *cp, const yaml_node_t *v)
{
    int n;

    (void)cp;
    return get_int(p, cmd, v, &n);
}

/* libmemcached's names for two of the hashes (memcached_hash_t), valid
 * with its placements (checked by pool_placement()). */
static const struct {
    const char     *name;
    enum hash_type hash;
} libmemcached_hash_names[] = {
    { "default", HASH_ONE_AT_A_TIME },
    { "crc", HASH_CRC32 },              /* hashkit_crc32: the 15-bit one */
};

static const char *
set_hash(struct parse *p, const struct conf_cmd *cmd, struct conf_pool *cp,
         const yaml_node_t *v)
{
    size_t i;
    int h;

    (void)cmd;
    for (i = 0; i < sizeof(libmemcached_hash_names) /
                    sizeof(libmemcached_hash_names[0]); i++) {
        if (strcmp(sval(v), libmemcached_hash_names[i].name) == 0) {
            cp->hash = libmemcached_hash_names[i].hash;
            p->hash_alias = v;
            return NULL;
        }
    }
    h = hash_from_name(sval(v), slen(v));
    if (h < 0 || h >= HASH_COUNT) {
        return why_expected(p, hash_name_at, HASH_COUNT);
    }
    cp->hash = (enum hash_type)h;
    return NULL;
}

static const char *
set_distribution(struct parse *p, const struct conf_cmd *cmd,
                 struct conf_pool *cp, const yaml_node_t *v)
{
    int d;

    (void)cmd;
    d = dist_from_name(sval(v), slen(v));
    if (d < 0 || d >= DIST_COUNT) {
        return why_expected(p, dist_name_at, DIST_COUNT);
    }
    cp->distribution = (enum dist_type)d;
    return NULL;
}

static const char *
placement_name_at(int i)
{
    return ring_placement_name((enum ring_placement)i);
}

static const char *
set_placement(struct parse *p, const struct conf_cmd *cmd,
              struct conf_pool *cp, const yaml_node_t *v)
{
    int pl;

    (void)cmd;
    pl = ring_placement_from_name(sval(v), slen(v));
    if (pl < 0) {
        return why_expected(p, placement_name_at, PLACEMENT_COUNT);
    }
    cp->placement = (enum ring_placement)pl;
    return NULL;
}

static const char *
set_hash_tag(struct parse *p, const struct conf_cmd *cmd,
             struct conf_pool *cp, const yaml_node_t *v)
{
    (void)p;
    (void)cmd;
    /* bytes, as twemproxy counts them */
    if (slen(v) != 2) {
        return "expected exactly two characters, such as \"{}\"";
    }
    memcpy(cp->hash_tag, sval(v), 2);
    cp->hash_tag[2] = '\0';
    return NULL;
}

/*
 * A key prefix: bytes memcached takes in a key (no space, no control
 * character), leaving room for a key of at least one byte.
 */
static const char *
set_prefix(struct parse *p, const struct conf_cmd *cmd, struct conf_pool *cp,
           const yaml_node_t *v)
{
    size_t i, len = slen(v);
    char *s;

    (void)p;
    (void)cmd;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)sval(v)[i];
        if (c <= ' ' || c == 0x7f) {
            return "a key prefix holds no space or control character";
        }
    }
    if (len >= MC_KEY_MAX) {
        return "a key prefix is shorter than memcached's longest key "
               "(250 bytes)";
    }
    s = dup_n(sval(v), len);
    if (s == NULL) {
        return "out of memory";
    }
    cp->prefix.s = s;
    cp->prefix.len = len;
    return NULL;
}

/*
 * "host:port" split at the last colon (so "::1:22121" is ::1, as in
 * twemproxy; "[::1]:22121" is accepted too, which nutcracker cannot
 * resolve), or "/path [mode]" for a unix socket, mode in octal.
 */
static const char *
set_listen(struct parse *p, const struct conf_cmd *cmd, struct conf_pool *cp,
           const yaml_node_t *v)
{
    struct conf_listen *l = &cp->listen;
    const char *s = sval(v), *c;
    size_t len = slen(v), plen;
    uint32_t perm;

    (void)cmd;
    (void)p;
    l->text = dup_n(s, len);
    if (l->text == NULL) {
        return "out of memory";
    }
    if (s[0] == '/') {
        c = rfind(s, len, ' ');
        plen = c != NULL ? (size_t)(c - s) : len;
        if (c != NULL) {
            /*
             * nutcracker reads the mode with strtol(.., 8) and no end check:
             * "0999" or "abc" silently become 0. Refused here.
             */
            if (!parse_mode(c + 1, len - plen - 1, &perm)) {
                return "expected \"/path mode\" with an octal mode up to "
                       "0777";
            }
            l->perm = perm;
        }
        if (!unix_path_fits(plen)) {
            return "unix socket path is too long";
        }
        l->path = dup_n(s, plen);
        return l->path == NULL ? "out of memory" : NULL;
    }
    c = rfind(s, len, ':');
    if (c == NULL) {
        return "expected \"host:port\" or \"/path [mode]\"";
    }
    if (!parse_port(c + 1, len - (size_t)(c - s) - 1, &l->port)) {
        return "expected a port from 1 to 65535 after the last ':'";
    }
    return parse_host(s, (size_t)(c - s), &l->host);
}

#define SERVER_FORMAT "expected \"host:port:weight [name]\" or " \
                      "\"/path:weight [name]\""

/*
 * One "host:port:weight [name]" or "/path:weight [name]", parsed from the
 * end like conf_add_server: the name after the last blank, the weight after
 * the last colon, the port after the one before. The ring name is the
 * alias, else the text up to the port with ":11211" left out, as written
 * ("localhost:011212" stays so). For a socket path nutcracker keeps the
 * colon: "/tmp/mc.sock:1" is named "/tmp/mc.sock:". Verified against
 * nutcracker 0.5.0's stats output.
 */
static const char *
server_parse(struct conf_server *s, const char *text, size_t len)
{
    const char *sp, *c, *c2 = NULL, *name;
    size_t spec, addr, nlen;
    uint32_t w;

    s->text = dup_n(text, len);
    if (s->text == NULL) {
        return "out of memory";
    }
    sp = rfind(text, len, ' ');
    spec = sp != NULL ? (size_t)(sp - text) : len;
    c = rfind(text, spec, ':');
    if (c == NULL) {
        return SERVER_FORMAT;
    }
    addr = (size_t)(c - text);
    s->is_unix = text[0] == '/';
    if (s->is_unix) {
        if (rfind(text, addr, ':') != NULL) {
            return SERVER_FORMAT " (a socket path has no ':')";
        }
    } else {
        c2 = rfind(text, addr, ':');
        if (c2 == NULL) {
            return SERVER_FORMAT;
        }
    }
    if (!all_digits(c + 1, spec - addr - 1)) {
        return "invalid weight: " SERVER_FORMAT;
    }
    if (!parse_uint(c + 1, spec - addr - 1, CONF_MAX_INT, &w) || w == 0) {
        return "weight must be from 1 to 2147483647";
    }
    s->weight = w;
    if (sp != NULL && sp + 1 == text + len) {
        /* nutcracker names such a server "" and hashes it so */
        return "empty name after the blank";
    }
    if (s->is_unix) {
        if (!unix_path_fits(addr)) {
            return "unix socket path is too long";
        }
        s->host = dup_n(text, addr);
        if (s->host == NULL) {
            return "out of memory";
        }
        name = text;
        nlen = addr + 1;
    } else {
        const char *why;

        if (!parse_port(c2 + 1, (size_t)(c - c2) - 1, &s->port)) {
            return "invalid port: expected 1 to 65535";
        }
        why = parse_host(text, (size_t)(c2 - text), &s->host);
        if (why != NULL) {
            return why;
        }
        name = text;
        nlen = s->port == CONF_KETAMA_PORT ? (size_t)(c2 - text) : addr;
    }
    if (sp != NULL) {
        name = sp + 1;
        nlen = len - spec - 1;
        s->has_alias = true;
    }
    s->name = dup_n(name, nlen);
    return s->name == NULL ? "out of memory" : NULL;
}

#define SERVERS_ONE_OF "a pool has servers: or servers_file:, not both"

static const char *
set_servers(struct parse *p, const struct conf_cmd *cmd, struct conf_pool *cp,
            const yaml_node_t *v)
{
    const yaml_node_item_t *it;
    size_t n;

    (void)cmd;
    if (cp->servers != NULL) {
        return SERVERS_ONE_OF;
    }
    n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n == 0) {
        return "pool has no servers";
    }
    cp->servers = calloc(n, sizeof(*cp->servers));
    if (cp->servers == NULL) {
        return "out of memory";
    }
    for (it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        const yaml_node_t *item = yaml_document_get_node(p->doc, *it);
        struct conf_server *s;
        const char *why;

        p->at = item;
        if (item->type != YAML_SCALAR_NODE) {
            snprintf(p->why, sizeof(p->why), SERVER_FORMAT " item, got %s",
                     node_kind(item));
            return p->why;
        }
        if (slen(item) == 0) {
            return SERVER_FORMAT " item, got nothing";
        }
        if (memchr(sval(item), '\0', slen(item)) != NULL) {
            return "contains a NUL byte";
        }
        s = &cp->servers[cp->nservers++];
        s->line = (int)item->start_mark.line + 1;
        s->listed = cp->nservers - 1;
        why = server_parse(s, sval(item), slen(item));
        if (why != NULL) {
            return why;
        }
    }
    p->at = NULL;
    return NULL;
}

/*
 * servers_file: libketama's server list, one "ip:port<TAB>weight" line per
 * server (its ketama.servers; blank lines and # comments skipped), read
 * as servers: entries "ip:port:weight" in that order. A relative path is
 * the config file's sibling.
 */
static const char *
set_servers_file(struct parse *p, const struct conf_cmd *cmd,
                 struct conf_pool *cp, const yaml_node_t *v)
{
    char path[4096], line[1024], item[1024];
    const char *slash = strrchr(p->name, '/');
    uint32_t cap = 0, lineno = 0;
    FILE *f;

    (void)cmd;
    if (cp->servers != NULL) {
        return SERVERS_ONE_OF;
    }
    if (sval(v)[0] == '/' || slash == NULL) {
        snprintf(path, sizeof(path), "%s", sval(v));
    } else {
        snprintf(path, sizeof(path), "%.*s/%s", (int)(slash - p->name),
                 p->name, sval(v));
    }
    f = fopen(path, "r");
    if (f == NULL) {
        snprintf(p->why, sizeof(p->why), "%.160s: %s", path, strerror(errno));
        return p->why;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char addr[512];
        unsigned long weight;
        struct conf_server *srv;
        const char *why;
        char extra;
        int n;

        lineno++;
        if (line[strspn(line, " \t\r\n")] == '\0' ||
            line[strspn(line, " \t")] == '#') {
            continue;
        }
        n = sscanf(line, "%511s %lu %c", addr, &weight, &extra);
        if (n != 2 || weight == 0 || weight > UINT32_MAX) {
            fclose(f);
            snprintf(p->why, sizeof(p->why), "%.160s:%u: expected "
                     "\"ip:port<TAB>weight\" (libketama's format)", path,
                     (unsigned int)lineno);
            return p->why;
        }
        if (cp->nservers == cap) {
            struct conf_server *grown;

            cap = cap == 0 ? 16 : cap * 2;
            grown = realloc(cp->servers, cap * sizeof(*grown));
            if (grown == NULL) {
                fclose(f);
                return "out of memory";
            }
            cp->servers = grown;
            memset(cp->servers + cp->nservers, 0,
                   (cap - cp->nservers) * sizeof(*grown));
        }
        snprintf(item, sizeof(item), "%s:%lu", addr, weight);
        srv = &cp->servers[cp->nservers++];
        srv->line = (int)v->start_mark.line + 1;
        srv->listed = cp->nservers - 1;
        why = server_parse(srv, item, strlen(item));
        if (why != NULL) {
            fclose(f);
            snprintf(p->why, sizeof(p->why), "%.120s:%u: %.100s", path,
                     (unsigned int)lineno, why);
            return p->why;
        }
    }
    fclose(f);
    if (cp->nservers == 0) {
        snprintf(p->why, sizeof(p->why), "%.160s: no servers in it", path);
        return p->why;
    }
    return NULL;
}

/*
 * Every key twemproxy 0.5.0 knows for a pool, in its order. Values are
 * scalars except servers. A key given twice is refused (nutcracker says
 * "is a duplicate", and refuses a second servers: list as a second
 * "sequence directive").
 */
static const struct conf_cmd conf_cmds[] = {
    { .name = "listen", .set = set_listen, .required = true },
    { .name = "hash", .set = set_hash },
    { .name = "hash_tag", .set = set_hash_tag },
    { .name = "distribution", .set = set_distribution },
    /* memring's own: a client library's placement (ring.h) */
    { .name = "placement", .set = set_placement },
    /* memring's own: a key prefix servers see and clients do not */
    { .name = "prefix", .set = set_prefix },
    { .name = "timeout", .set = set_int64,
      .offset = offsetof(struct conf_pool, timeout) },
    { .name = "backlog", .set = set_int,
      .offset = offsetof(struct conf_pool, backlog) },
    /* twemproxy 0.5.0 parses client_connections and then ignores it
     * (conf_validate_pool resets it to 0). memring enforces it, as
     * twemproxy's own documentation says it should: 0 = no limit. */
    { .name = "client_connections", .set = set_int,
      .offset = offsetof(struct conf_pool, client_connections) },
    { .name = "redis", .set = set_redis },
    { .name = "redis_auth", .set = set_redis_auth },
    { .name = "redis_db", .set = set_redis_db },
    { .name = "preconnect", .set = set_bool,
      .offset = offsetof(struct conf_pool, preconnect) },
    { .name = "auto_eject_hosts", .set = set_bool,
      .offset = offsetof(struct conf_pool, auto_eject_hosts) },
    /* nutcracker: "server_connections: cannot be 0". It has no upper
     * bound and allocates what it is told; memring refuses more than
     * CONF_MAX_SERVER_CONNECTIONS per server rather than run out of memory
     * or descriptors at start. */
    { .name = "server_connections", .set = set_int, .min = 1,
      .max = CONF_MAX_SERVER_CONNECTIONS,
      .offset = offsetof(struct conf_pool, server_connections) },
    { .name = "server_retry_timeout", .set = set_int64,
      .offset = offsetof(struct conf_pool, server_retry_timeout) },
    { .name = "server_failure_limit", .set = set_int,
      .offset = offsetof(struct conf_pool, server_failure_limit) },
    { .name = "tcpkeepalive", .set = set_bool,
      .offset = offsetof(struct conf_pool, tcpkeepalive) },
    /* memring's own: after a ring change, misses are looked up on the
     * key's previous server for this many ms (warmup.h); 0 = off */
    { .name = "warmup_ms", .set = set_int64,
      .offset = offsetof(struct conf_pool, warmup_ms) },
    /* memring's own: a set of a value longer than this many bytes is
     * stored as chunks of that size and an index item (split.h); 0 = off */
    { .name = "split_values", .set = set_split_values },
    /* servers: or (memring's) servers_file:, one of them (pool_parse) */
    { .name = "servers", .set = set_servers, .seq = true },
    { .name = "servers_file", .set = set_servers_file },
};

#define CONF_NCMDS (sizeof(conf_cmds) / sizeof(conf_cmds[0]))

/* ------------------------------------------------------------------------ */
/* Pools                                                                     */
/* ------------------------------------------------------------------------ */

static void
pool_defaults(struct conf_pool *cp)
{
    cp->placement = PLACEMENT_TWEMPROXY;
    cp->hash = HASH_DEFAULT;
    cp->hash_tag[0] = '\0';
    cp->distribution = DIST_KETAMA;     /* twemproxy's CONF_DEFAULT_DIST */
    cp->timeout = CONF_DEFAULT_TIMEOUT;
    cp->backlog = CONF_DEFAULT_BACKLOG;
    cp->preconnect = false;
    cp->client_connections = CONF_DEFAULT_CLIENT_CONNECTIONS;
    cp->server_connections = CONF_DEFAULT_SERVER_CONNECTIONS;
    cp->auto_eject_hosts = false;
    cp->server_retry_timeout = CONF_DEFAULT_SERVER_RETRY_TIMEOUT;
    cp->server_failure_limit = CONF_DEFAULT_SERVER_FAILURE_LIMIT;
    cp->tcpkeepalive = false;
    cp->listen.perm = CONF_DEFAULT_LISTEN_PERM;
}

/* twemproxy's string_compare: shorter first, then bytewise. */
static int
server_cmp(const void *a, const void *b)
{
    const struct conf_server *s1 = a, *s2 = b;
    size_t l1 = strlen(s1->name), l2 = strlen(s2->name);
    int r;

    if (l1 != l2) {
        return l1 < l2 ? -1 : 1;
    }
    r = memcmp(s1->name, s2->name, l1);
    if (r != 0) {
        return r;
    }
    /* equal names are an error; order them so the message is stable */
    return (s1->line > s2->line) - (s1->line < s2->line);
}

static int
server_listed_cmp(const void *a, const void *b)
{
    const struct conf_server *s1 = a, *s2 = b;

    return (s1->listed > s2->listed) - (s1->listed < s2->listed);
}

/*
 * The ring depends on this order: nutcracker sorts each pool's servers by
 * name (conf_validate_server) and indexes them that way. Two servers may
 * share an address under different names, as in nutcracker; they may not
 * share a name.
 */
static bool
pool_sort_servers(struct parse *p, struct conf_pool *cp,
                  const yaml_node_t *servers)
{
    uint32_t i;

    qsort(cp->servers, cp->nservers, sizeof(*cp->servers), server_cmp);
    for (i = 1; i < cp->nservers; i++) {
        const struct conf_server *a = &cp->servers[i - 1], *b = &cp->servers[i];
        const yaml_node_item_t *it;

        if (strcmp(a->name, b->name) != 0) {
            continue;
        }
        /* point at the later entry of the two (servers_file: at it) */
        for (it = servers->type == YAML_SEQUENCE_NODE ?
                  servers->data.sequence.items.start : NULL;
             it != NULL && it < servers->data.sequence.items.top; it++) {
            const yaml_node_t *item = yaml_document_get_node(p->doc, *it);

            if ((int)item->start_mark.line + 1 == b->line &&
                item->type == YAML_SCALAR_NODE &&
                strcmp(sval(item), b->text) == 0) {
                fail(p, &item->start_mark, "servers",
                     "duplicate server name \"%s\" (also at line %d)",
                     b->name, a->line);
                return false;
            }
        }
        fail(p, &servers->start_mark, "servers",
             "duplicate server name \"%s\"", b->name);
        return false;
    }
    if (cp->placement != PLACEMENT_TWEMPROXY) {
        /* the client libraries index their servers as listed */
        qsort(cp->servers, cp->nservers, sizeof(*cp->servers),
              server_listed_cmp);
    }
    return true;
}

/* libmc's key hashes, as libmc computes them: md5 (its default), the
 * whole CRC-32 (memring's crc32a), and FNVs over unsigned bytes. */
static bool
pool_libmc_hash(struct parse *p, struct conf_pool *cp,
                const yaml_node_t *hash_at)
{
    if (hash_at == NULL) {
        cp->hash = HASH_MD5;
        return true;
    }
    switch (cp->hash) {
    case HASH_MD5:
        return true;
    case HASH_CRC32:
        cp->hash = HASH_CRC32A;
        return true;
    case HASH_FNV1_32:
        cp->hash = HASH_FNV1_32_UNSIGNED;
        return true;
    case HASH_FNV1A_32:
        cp->hash = HASH_FNV1A_32_UNSIGNED;
        return true;
    default:
        fail(p, &hash_at->start_mark, "hash", "placement libmc hashes keys "
             "with md5, crc32, fnv1_32 or fnv1a_32");
        return false;
    }
}

/*
 * What a client library's placement fixes, after every key is read (the
 * keys come in any order): the hash it defaults to, and no distribution:
 * of its own (the placement is one). libmemcached's hash spellings only
 * with libmemcached's placements.
 */
static bool
pool_placement(struct parse *p, struct conf_pool *cp,
               const yaml_node_t *hash_at, const yaml_node_t *dist_at,
               const yaml_node_t *tag_at)
{
    bool libmemcached = cp->placement == PLACEMENT_LIBMEMCACHED_MODULA ||
                        cp->placement == PLACEMENT_LIBMEMCACHED_KETAMA ||
                        cp->placement == PLACEMENT_LIBMEMCACHED_KETAMA_WEIGHTED;
    bool python = cp->placement == PLACEMENT_PYTHON_MEMCACHED ||
                  cp->placement == PLACEMENT_PYTHON_MEMCACHED_159;
    bool md5_only = cp->placement == PLACEMENT_LIBKETAMA ||
                    cp->placement == PLACEMENT_HASH_RING;

    if (p->hash_alias != NULL && !libmemcached) {
        fail(p, &p->hash_alias->start_mark, "hash", "\"%s\" is libmemcached's "
             "name, for placement: libmemcached_*; here say %s",
             sval(p->hash_alias), hash_name(cp->hash));
        return false;
    }
    if (cp->placement == PLACEMENT_TWEMPROXY) {
        return true;
    }
    if (tag_at != NULL) {
        fail(p, &tag_at->start_mark, "hash_tag", "placement %s hashes the "
             "whole key, as the client library does; remove hash_tag:",
             ring_placement_name(cp->placement));
        return false;
    }
    if (dist_at != NULL) {
        fail(p, &dist_at->start_mark, "distribution", "placement %s is a "
             "distribution of its own; remove distribution:",
             ring_placement_name(cp->placement));
        return false;
    }
    if (python && hash_at != NULL && cp->hash != HASH_CRC32) {
        fail(p, &hash_at->start_mark, "hash", "placement %s hashes with "
             "crc32 (python-memcached's cmemcache_hash); remove hash:",
             ring_placement_name(cp->placement));
        return false;
    }
    if (md5_only && hash_at != NULL && cp->hash != HASH_MD5) {
        fail(p, &hash_at->start_mark, "hash", "placement %s hashes with md5; "
             "remove hash:", ring_placement_name(cp->placement));
        return false;
    }
    if (md5_only) {
        cp->hash = HASH_MD5;
        return true;
    }
    if (cp->placement == PLACEMENT_LIBMC) {
        return pool_libmc_hash(p, cp, hash_at);
    }
    if (libmemcached && cp->hash == HASH_HSIEH) {
        fail(p, &hash_at->start_mark, "hash", "libmemcached as Debian builds "
             "it has no hsieh (memcached_behavior_set() refuses it)");
        return false;
    }
    if (python) {
        cp->hash = HASH_CRC32;
    } else if (hash_at == NULL) {
        /* libmemcached's default, and what its KETAMA_WEIGHTED behaviour
         * switches the key hash to */
        cp->hash = cp->placement == PLACEMENT_LIBMEMCACHED_KETAMA_WEIGHTED ?
                   HASH_MD5 : HASH_ONE_AT_A_TIME;
    }
    return true;
}

/*
 * libmc puts its prefix after the '?' a key may start with
 * (normalize_key()), and so does memring under placement libmc. A prefix
 * that itself starts with '?' would make "?k" and a key without the '?'
 * indistinguishable in replies: refused there.
 */
static bool
pool_prefix(struct parse *p, struct conf_pool *cp, const yaml_node_t *at)
{
    if (cp->placement != PLACEMENT_LIBMC) {
        return true;
    }
    if (cp->prefix.len > 0 && cp->prefix.s[0] == '?') {
        fail(p, &at->start_mark, "prefix", "placement libmc puts the prefix "
             "after a key's leading '?'; a prefix starting with '?' cannot "
             "be told apart from it");
        return false;
    }
    cp->prefix.after_q = true;
    return true;
}

/* The key node named name among a pool's seen keys, or NULL. */
static const yaml_node_t *
conf_seen(const yaml_node_t *const *seen, const char *name)
{
    size_t i;

    for (i = 0; i < CONF_NCMDS; i++) {
        if (strcmp(conf_cmds[i].name, name) == 0) {
            return seen[i];
        }
    }
    return NULL;
}

static bool
pool_parse(struct parse *p, struct conf_pool *cp, const yaml_node_t *key,
           const yaml_node_t *map)
{
    const yaml_node_t *seen[CONF_NCMDS];
    const yaml_node_t *servers = NULL;
    const yaml_node_pair_t *pair;
    size_t i;

    memset(seen, 0, sizeof(seen));
    p->hash_alias = NULL;
    if (map->type != YAML_MAPPING_NODE) {
        fail(p, &map->start_mark, cp->name, "expected a mapping of pool "
             "settings (listen:, servers:, ...), got %s", node_kind(map));
        return false;
    }
    for (pair = map->data.mapping.pairs.start;
         pair < map->data.mapping.pairs.top; pair++) {
        const yaml_node_t *k = yaml_document_get_node(p->doc, pair->key);
        const yaml_node_t *v = yaml_document_get_node(p->doc, pair->value);
        const struct conf_cmd *cmd = NULL;
        const char *why;

        if (k->type != YAML_SCALAR_NODE) {
            fail(p, &k->start_mark, cp->name, "expected a key name, got %s",
                 node_kind(k));
            return false;
        }
        for (i = 0; i < CONF_NCMDS; i++) {
            if (strlen(conf_cmds[i].name) == slen(k) &&
                memcmp(conf_cmds[i].name, sval(k), slen(k)) == 0) {
                cmd = &conf_cmds[i];
                break;
            }
        }
        if (cmd == NULL) {
            fail(p, &k->start_mark, sval(k), "unknown key in pool \"%s\"",
                 cp->name);
            return false;
        }
        if (seen[i] != NULL) {
            fail(p, &k->start_mark, cmd->name, "duplicate key (first at "
                 "line %zu)", seen[i]->start_mark.line + 1);
            return false;
        }
        seen[i] = k;
        if (cmd->seq && v->type != YAML_SEQUENCE_NODE) {
            fail(p, &v->start_mark, cmd->name, "expected a sequence of "
                 "\"host:port:weight [name]\", got %s", node_kind(v));
            return false;
        }
        if (!cmd->seq) {
            if (v->type != YAML_SCALAR_NODE) {
                fail(p, &v->start_mark, cmd->name, "expected a scalar, got "
                     "%s%s", node_kind(v), v->type == YAML_MAPPING_NODE &&
                     strcmp(cmd->name, "hash_tag") == 0 ?
                     " (quote it: \"{}\")" : "");
                return false;
            }
            if (slen(v) == 0) {
                fail(p, &v->start_mark, cmd->name, "expected a value, got "
                     "nothing");
                return false;
            }
            if (memchr(sval(v), '\0', slen(v)) != NULL) {
                fail(p, &v->start_mark, cmd->name, "contains a NUL byte");
                return false;
            }
        }
        p->at = NULL;
        p->quiet = false;
        why = cmd->set(p, cmd, cp, v);
        if (why != NULL) {
            const yaml_node_t *at = p->at != NULL ? p->at : v;

            if (at->type == YAML_SCALAR_NODE && !p->quiet) {
                fail(p, &at->start_mark, cmd->name, "%s, got \"%s\"", why,
                     sval(at));
            } else {
                fail(p, &at->start_mark, cmd->name, "%s", why);
            }
            return false;
        }
        if (cmd->seq || cmd->set == set_servers_file) {
            servers = v;
        } else if (cmd->set == set_listen) {
            p->listen_at[cp - p->conf->pools] = v->start_mark;
        }
    }
    /* twemproxy: "directive listen: is missing", "missing sequence ..." */
    for (i = 0; i < CONF_NCMDS; i++) {
        if (seen[i] != NULL) {
            continue;
        }
        if (conf_cmds[i].required) {
            fail(p, &key->start_mark, conf_cmds[i].name, "missing in pool "
                 "\"%s\"", cp->name);
            return false;
        }
    }
    if (conf_seen(seen, "servers") == NULL &&
        conf_seen(seen, "servers_file") == NULL) {
        fail(p, &key->start_mark, "servers", "missing in pool \"%s\"",
             cp->name);
        return false;
    }
    if (!pool_placement(p, cp, conf_seen(seen, "hash"),
                        conf_seen(seen, "distribution"),
                        conf_seen(seen, "hash_tag")) ||
        !pool_prefix(p, cp, conf_seen(seen, "prefix"))) {
        return false;
    }
    return pool_sort_servers(p, cp, servers);
}

/* ------------------------------------------------------------------------ */
/* Document                                                                  */
/* ------------------------------------------------------------------------ */

/* nutcracker refuses two pools on one listen: string; so do we, by value. */
static bool
conf_check_listens(struct parse *p)
{
    const struct conf *c = p->conf;
    uint32_t i, j;

    for (i = 1; i < c->npools; i++) {
        const struct conf_listen *b = &c->pools[i].listen;

        for (j = 0; j < i; j++) {
            const struct conf_listen *a = &c->pools[j].listen;
            bool same;

            if (a->path != NULL || b->path != NULL) {
                same = a->path != NULL && b->path != NULL &&
                       strcmp(a->path, b->path) == 0;
            } else {
                same = a->port == b->port && strcmp(a->host, b->host) == 0;
            }
            if (same) {
                fail(p, &p->listen_at[i], "listen", "same address as pool "
                     "\"%s\" (line %d)", c->pools[j].name, c->pools[j].line);
                return false;
            }
        }
    }
    return true;
}

static bool
conf_build(struct parse *p, const yaml_node_t *root)
{
    const yaml_node_pair_t *pair;
    struct conf *c = p->conf;
    size_t n;

    if (root->type != YAML_MAPPING_NODE) {
        fail(p, &root->start_mark, NULL, "expected a mapping of pool names "
             "to pools, got %s", node_kind(root));
        return false;
    }
    n = (size_t)(root->data.mapping.pairs.top - root->data.mapping.pairs.start);
    if (n == 0) {
        fail(p, &root->start_mark, NULL, "no pools");
        return false;
    }
    c->pools = calloc(n, sizeof(*c->pools));
    p->listen_at = calloc(n, sizeof(*p->listen_at));
    if (c->pools == NULL || p->listen_at == NULL) {
        fail(p, NULL, NULL, "out of memory");
        return false;
    }
    for (pair = root->data.mapping.pairs.start;
         pair < root->data.mapping.pairs.top; pair++) {
        const yaml_node_t *k = yaml_document_get_node(p->doc, pair->key);
        const yaml_node_t *v = yaml_document_get_node(p->doc, pair->value);
        struct conf_pool *cp;
        uint32_t j;

        if (k->type != YAML_SCALAR_NODE || slen(k) == 0 ||
            memchr(sval(k), '\0', slen(k)) != NULL) {
            fail(p, &k->start_mark, NULL, "expected a pool name, got %s",
                 k->type == YAML_SCALAR_NODE ? "an empty or binary scalar"
                                             : node_kind(k));
            return false;
        }
        for (j = 0; j < c->npools; j++) {
            if (strcmp(c->pools[j].name, sval(k)) == 0) {
                fail(p, &k->start_mark, sval(k), "duplicate pool name "
                     "(first at line %d)", c->pools[j].line);
                return false;
            }
        }
        cp = &c->pools[c->npools++];
        pool_defaults(cp);
        cp->line = (int)k->start_mark.line + 1;
        cp->name = dup_n(sval(k), slen(k));
        if (cp->name == NULL) {
            fail(p, NULL, NULL, "out of memory");
            return false;
        }
        if (!pool_parse(p, cp, k, v)) {
            return false;
        }
    }
    return conf_check_listens(p);
}

/*
 * libyaml's loader gives every node a mark and resolves aliases into shared
 * nodes, so anchors and aliases work (nutcracker refuses them; nothing
 * breaks by accepting them). A second document is refused as in nutcracker.
 */
static bool
conf_load_doc(struct parse *p, const char *yaml, size_t len)
{
    yaml_parser_t parser;
    yaml_document_t extra;
    const yaml_node_t *root;
    bool ok = false;

    if (!yaml_parser_initialize(&parser)) {
        fail(p, NULL, "yaml", "out of memory");
        return false;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, p->doc)) {
        fail_yaml(p, &parser);
        p->doc = NULL;
        goto error;
    }
    root = yaml_document_get_root_node(p->doc);
    if (root == NULL) {
        fail(p, NULL, NULL, "empty configuration: expected a mapping of "
             "pool names to pools");
        goto error;
    }
    if (!yaml_parser_load(&parser, &extra)) {
        fail_yaml(p, &parser);
        goto error;
    }
    root = yaml_document_get_root_node(&extra);
    if (root != NULL) {
        fail(p, &extra.start_mark, NULL, "expected one YAML document, found "
             "another");
    }
    yaml_document_delete(&extra);
    ok = root == NULL;

error:
    yaml_parser_delete(&parser);
    return ok;
}

struct conf *
conf_parse(const char *yaml, size_t len, const char *name, char *err,
           size_t errlen)
{
    struct parse p;
    yaml_document_t doc;
    const yaml_node_t *root;

    memset(&p, 0, sizeof(p));
    p.name = name != NULL ? name : "(memory)";
    p.err = err;
    p.errlen = errlen;
    p.doc = &doc;
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    p.conf = calloc(1, sizeof(*p.conf));
    if (p.conf == NULL || (p.conf->path = strdup(p.name)) == NULL) {
        fail(&p, NULL, NULL, "out of memory");
        goto error;
    }
    if (yaml == NULL) {
        yaml = "";
        len = 0;
    }
    if (!conf_load_doc(&p, yaml, len)) {
        goto error;
    }
    root = yaml_document_get_root_node(p.doc);
    if (!conf_build(&p, root)) {
        goto error;
    }
    yaml_document_delete(p.doc);
    free(p.listen_at);
    return p.conf;

error:
    if (p.doc != NULL) {
        yaml_document_delete(p.doc);
    }
    free(p.listen_at);
    conf_destroy(&p.conf);
    return NULL;
}

struct conf *
conf_load(const char *path, char *err, size_t errlen)
{
    struct conf *c = NULL;
    char *buf = NULL, *nbuf;
    size_t len = 0, cap = 0, n;
    FILE *f;

    f = fopen(path, "rb");
    if (f == NULL) {
        if (err != NULL && errlen > 0) {
            snprintf(err, errlen, "conf: %s: cannot open: %s", path,
                     strerror(errno));
        }
        return NULL;
    }
    for (;;) {
        if (cap - len < 4096) {
            cap = cap == 0 ? 16384 : cap * 2;
            if (cap > CONF_MAX_FILE) {
                if (err != NULL && errlen > 0) {
                    snprintf(err, errlen, "conf: %s: larger than %u bytes",
                             path, CONF_MAX_FILE);
                }
                goto error;
            }
            nbuf = realloc(buf, cap);
            if (nbuf == NULL) {
                if (err != NULL && errlen > 0) {
                    snprintf(err, errlen, "conf: %s: out of memory", path);
                }
                goto error;
            }
            buf = nbuf;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            break;
        }
    }
    if (ferror(f)) {
        if (err != NULL && errlen > 0) {
            snprintf(err, errlen, "conf: %s: cannot read: %s", path,
                     strerror(errno));
        }
        goto error;
    }
    c = conf_parse(buf, len, path, err, errlen);

error:
    fclose(f);
    free(buf);
    return c;
}

static void
server_deinit(struct conf_server *s)
{
    free(s->text);
    free(s->host);
    free(s->name);
}

static void
pool_deinit(struct conf_pool *cp)
{
    uint32_t i;

    free(cp->name);
    free(cp->listen.text);
    free(cp->listen.host);
    free(cp->listen.path);
    free((char *)cp->prefix.s);     /* set_prefix()'s copy */
    for (i = 0; i < cp->nservers; i++) {
        server_deinit(&cp->servers[i]);
    }
    free(cp->servers);
}

void
conf_destroy(struct conf **c)
{
    uint32_t i;

    if (c == NULL || *c == NULL) {
        return;
    }
    for (i = 0; i < (*c)->npools; i++) {
        pool_deinit(&(*c)->pools[i]);
    }
    free((*c)->pools);
    free((*c)->path);
    free(*c);
    *c = NULL;
}
