/*
 * ring_tool: the ring preview commands.
 *
 *   memring ring locate -c FILE [--pool P] [KEY...]
 *   memring ring diff -c OLD NEW [--pool P] [--keys FILE | --sample N]
 *
 * Both place keys with placement_route(), the function the proxy routes
 * requests with, on rings of every configured server (ejection is a
 * runtime state, not part of a config).
 */
#include "memring/ring_tool.h"

#include "memring/conf.h"
#include "memring/placement.h"
#include "memring/ring.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define DIFF_TOP_MOVES 20   /* server pairs listed per pool */

static void
ring_usage(FILE *f)
{
    fprintf(f,
        "Usage: memring ring locate -c FILE [--pool P] [KEY...]\n"
        "       memring ring diff -c OLD NEW [--pool P]"
        " [--keys FILE | --sample N]\n"
        "\n"
        "locate: the server each KEY goes to, one line per key:\n"
        "        KEY<TAB>NAME<TAB>HOST:PORT. Without KEY arguments, keys\n"
        "        are read from standard input, one per line.\n"
        "diff:   per pool, the share of keys that move from OLD to NEW,\n"
        "        from which server to which, and the hit ratio expected\n"
        "        right after the change. Keys: --keys FILE (one per line,\n"
        "        - for standard input) or --sample N generated keys\n"
        "        (default %d).\n"
        "  -c, --conf-file=FILE : the config (diff: the current one)\n"
        "      --pool=P         : only pool P (locate: needed when FILE\n"
        "                         has more than one pool)\n",
        RING_TOOL_SAMPLE_DEFAULT);
}

static const struct conf_pool *
find_pool(const struct conf *c, const char *name)
{
    uint32_t i;

    for (i = 0; i < c->npools; i++) {
        if (strcmp(c->pools[i].name, name) == 0) {
            return &c->pools[i];
        }
    }
    return NULL;
}

/* "host:port", or a unix socket's path: where the server is. */
static void
server_addr(const struct conf_server *cs, char *buf, size_t len)
{
    if (cs->is_unix) {
        snprintf(buf, len, "%s", cs->host);
    } else {
        snprintf(buf, len, "%s:%u", cs->host, (unsigned)cs->port);
    }
}

static bool
same_server(const struct conf_server *a, const struct conf_server *b)
{
    return a->is_unix == b->is_unix && a->port == b->port &&
           strcmp(a->host, b->host) == 0;
}

/* ---------------------------------------------------------------------
 * Keys: lines of a stream, or generated
 * ------------------------------------------------------------------- */

struct key_source {
    FILE     *in;        /* NULL: generate */
    uint64_t left;       /* generated keys still to give */
    uint64_t state;      /* splitmix64 */
    char     *line;
    size_t   cap;
    char     gen[24];
};

/* The next key, or NULL at the end (or on a read error: ferror(in)). */
static const char *
key_next(struct key_source *ks, size_t *len)
{
    static const char hex[] = "0123456789abcdef";
    ssize_t n;
    uint64_t z;
    int i;

    if (ks->in != NULL) {
        n = getline(&ks->line, &ks->cap, ks->in);
        if (n < 0) {
            return NULL;
        }
        if (n > 0 && ks->line[n - 1] == '\n') {
            n--;
        }
        *len = (size_t)n;
        return ks->line;
    }
    if (ks->left == 0) {
        return NULL;
    }
    ks->left--;
    z = (ks->state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    memcpy(ks->gen, "key:", 4);
    for (i = 0; i < 16; i++) {
        ks->gen[4 + i] = hex[(z >> (60 - 4 * i)) & 0xf];
    }
    *len = 20;
    return ks->gen;
}

/* ---------------------------------------------------------------------
 * locate
 * ------------------------------------------------------------------- */

struct locator {
    const struct conf_pool *cp;
    struct ring            *ring;
    FILE                   *out;
};

static void
locate_one(const struct locator *lc, const char *key, size_t len)
{
    int32_t idx = placement_route(lc->cp, lc->ring, key, len);
    char addr[512];

    fwrite(key, 1, len, lc->out);
    if (idx < 0) {
        fputs("\t-\t-\n", lc->out);
        return;
    }
    server_addr(&lc->cp->servers[idx], addr, sizeof(addr));
    fprintf(lc->out, "\t%s\t%s\n", lc->cp->servers[idx].name, addr);
}

/* The pool a one-pool command works on: named, or the config's only one. */
static const struct conf_pool *
pick_pool(const struct conf *c, const char *name)
{
    const struct conf_pool *cp;
    uint32_t i;

    if (name != NULL) {
        cp = find_pool(c, name);
        if (cp == NULL) {
            fprintf(stderr, "memring ring: %s has no pool %s\n", c->path,
                    name);
        }
        return cp;
    }
    if (c->npools == 1) {
        return &c->pools[0];
    }
    fprintf(stderr, "memring ring: %s has %u pools, name one with --pool:",
            c->path, c->npools);
    for (i = 0; i < c->npools; i++) {
        fprintf(stderr, " %s", c->pools[i].name);
    }
    fputc('\n', stderr);
    return NULL;
}

static int
ring_locate(const struct conf *c, const char *pool, char **keys, int nkeys)
{
    static char obuf[1 << 16];
    struct key_source ks = { .in = stdin };
    struct locator lc = { .out = stdout };
    const char *key;
    size_t len;
    int i, rc = 0;

    lc.cp = pick_pool(c, pool);
    if (lc.cp == NULL) {
        return 1;
    }
    if (lc.cp->distribution == DIST_RANDOM) {
        fprintf(stderr, "memring ring: pool %s: distribution random puts "
                "no key on a fixed server\n", lc.cp->name);
        return 1;
    }
    lc.ring = placement_ring(lc.cp, NULL);
    if (lc.ring == NULL) {
        fprintf(stderr, "memring ring: out of memory\n");
        return 1;
    }
    setvbuf(stdout, obuf, _IOFBF, sizeof(obuf));
    if (nkeys > 0) {
        for (i = 0; i < nkeys; i++) {
            locate_one(&lc, keys[i], strlen(keys[i]));
        }
    } else {
        while ((key = key_next(&ks, &len)) != NULL) {
            locate_one(&lc, key, len);
        }
        if (ferror(stdin)) {
            fprintf(stderr, "memring ring: reading keys failed\n");
            rc = 1;
        }
        free(ks.line);
    }
    if (fflush(stdout) != 0) {
        rc = 1;
    }
    ring_destroy(&lc.ring);
    return rc;
}

/* ---------------------------------------------------------------------
 * diff
 * ------------------------------------------------------------------- */

/* One pool present in both configs, with rings on both sides. */
struct pool_diff {
    const struct conf_pool *old;
    const struct conf_pool *new;
    struct ring            *old_ring;
    struct ring            *new_ring;
    uint64_t               *moves;    /* [o * new->nservers + n]: keys
                                       * from old server o to new n */
    uint64_t               nkeys;
    uint64_t               nmoved;    /* to another host:port */
    uint64_t               nlost;     /* no live server on one side */
};

struct move_pair {
    uint32_t from;
    uint32_t to;
    uint64_t keys;
};

static void
pool_diff_deinit(struct pool_diff *d)
{
    ring_destroy(&d->old_ring);
    ring_destroy(&d->new_ring);
    free(d->moves);
    d->moves = NULL;
}

static int
pool_diff_init(struct pool_diff *d, const struct conf_pool *old,
               const struct conf_pool *new)
{
    memset(d, 0, sizeof(*d));
    d->old = old;
    d->new = new;
    d->old_ring = placement_ring(old, NULL);
    d->new_ring = placement_ring(new, NULL);
    d->moves = calloc((size_t)old->nservers * new->nservers + 1,
                      sizeof(*d->moves));
    if (d->old_ring == NULL || d->new_ring == NULL || d->moves == NULL) {
        pool_diff_deinit(d);
        return -1;
    }
    return 0;
}

static void
pool_diff_key(struct pool_diff *d, const char *key, size_t len)
{
    int32_t o = placement_route(d->old, d->old_ring, key, len);
    int32_t n = placement_route(d->new, d->new_ring, key, len);

    d->nkeys++;
    if (o < 0 || n < 0) {
        d->nlost++;
        return;
    }
    if (!same_server(&d->old->servers[o], &d->new->servers[n])) {
        d->nmoved++;
        d->moves[(size_t)o * d->new->nservers + (size_t)n]++;
    }
}

static int
move_cmp(const void *a, const void *b)
{
    const struct move_pair *x = a, *y = b;

    if (x->keys != y->keys) {
        return x->keys < y->keys ? 1 : -1;
    }
    if (x->from != y->from) {
        return x->from < y->from ? -1 : 1;
    }
    return x->to < y->to ? -1 : (x->to > y->to);
}

static double
share(uint64_t part, uint64_t whole)
{
    return whole == 0 ? 0.0 : 100.0 * (double)part / (double)whole;
}

static int
pool_diff_report(FILE *out, const struct pool_diff *d)
{
    size_t npairs = 0, i, cells = (size_t)d->old->nservers *
                                  d->new->nservers;
    struct move_pair *pairs;
    char from[512], to[512];

    fprintf(out, "pool %s: %" PRIu64 " keys, %" PRIu64 " move (%.2f%%), "
            "expected hit ratio %.2f%%\n", d->old->name, d->nkeys,
            d->nmoved + d->nlost, share(d->nmoved + d->nlost, d->nkeys),
            share(d->nkeys - d->nmoved - d->nlost, d->nkeys));
    for (i = 0; i < cells; i++) {
        npairs += d->moves[i] != 0;
    }
    pairs = calloc(npairs + 1, sizeof(*pairs));
    if (pairs == NULL) {
        return -1;
    }
    npairs = 0;
    for (i = 0; i < cells; i++) {
        if (d->moves[i] != 0) {
            pairs[npairs].from = (uint32_t)(i / d->new->nservers);
            pairs[npairs].to = (uint32_t)(i % d->new->nservers);
            pairs[npairs].keys = d->moves[i];
            npairs++;
        }
    }
    qsort(pairs, npairs, sizeof(*pairs), move_cmp);
    for (i = 0; i < npairs && i < DIFF_TOP_MOVES; i++) {
        const struct conf_server *f = &d->old->servers[pairs[i].from];
        const struct conf_server *t = &d->new->servers[pairs[i].to];
        server_addr(f, from, sizeof(from));
        server_addr(t, to, sizeof(to));
        fprintf(out, "  %s %s -> %s %s: %" PRIu64 " keys (%.2f%%)\n",
                f->name, from, t->name, to, pairs[i].keys,
                share(pairs[i].keys, d->nkeys));
    }
    if (npairs > DIFF_TOP_MOVES) {
        fprintf(out, "  ... and %zu more server pairs\n",
                npairs - DIFF_TOP_MOVES);
    }
    if (d->nlost != 0) {
        fprintf(out, "  %" PRIu64 " keys have no server on one side\n",
                d->nlost);
    }
    free(pairs);
    return 0;
}

/* Pools in only one of the configs, or that place no key (random). */
static void
diff_unpaired(FILE *out, const struct conf *old, const struct conf *new,
              const char *pool)
{
    uint32_t i;

    for (i = 0; i < old->npools; i++) {
        const struct conf_pool *cp = &old->pools[i];
        const struct conf_pool *np = find_pool(new, cp->name);
        if (pool != NULL && strcmp(pool, cp->name) != 0) {
            continue;
        }
        if (np == NULL) {
            fprintf(out, "pool %s: not in %s: every key it holds is "
                    "lost\n", cp->name, new->path);
        } else if (cp->distribution == DIST_RANDOM ||
                   np->distribution == DIST_RANDOM) {
            fprintf(out, "pool %s: distribution random puts no key on a "
                    "fixed server: not compared\n", cp->name);
        }
    }
    for (i = 0; i < new->npools; i++) {
        if ((pool == NULL || strcmp(pool, new->pools[i].name) == 0) &&
            find_pool(old, new->pools[i].name) == NULL) {
            fprintf(out, "pool %s: new in %s\n", new->pools[i].name,
                    new->path);
        }
    }
}

/* The pools both configs have, placing keys on fixed servers. */
static int
diff_pairs(struct pool_diff *diffs, uint32_t *n, const struct conf *old,
           const struct conf *new, const char *pool)
{
    uint32_t i;

    *n = 0;
    for (i = 0; i < old->npools; i++) {
        const struct conf_pool *cp = &old->pools[i];
        const struct conf_pool *np = find_pool(new, cp->name);
        if ((pool != NULL && strcmp(pool, cp->name) != 0) || np == NULL ||
            cp->distribution == DIST_RANDOM ||
            np->distribution == DIST_RANDOM) {
            continue;
        }
        if (pool_diff_init(&diffs[*n], cp, np) != 0) {
            return -1;
        }
        (*n)++;
    }
    return 0;
}

int
ring_tool_diff(FILE *out, const struct conf *old, const struct conf *new,
               const char *pool, FILE *keys, uint64_t sample, char *err,
               size_t errlen)
{
    struct key_source ks = { .in = keys, .left = sample };
    struct pool_diff *diffs;
    const char *key;
    size_t len;
    uint32_t n = 0, i;
    int rc = -1;

    if (pool != NULL && find_pool(old, pool) == NULL &&
        find_pool(new, pool) == NULL) {
        snprintf(err, errlen, "no pool %s in %s or %s", pool, old->path,
                 new->path);
        return -1;
    }
    diffs = calloc(old->npools + 1, sizeof(*diffs));
    if (diffs == NULL || diff_pairs(diffs, &n, old, new, pool) != 0) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    if (n > 0) {
        while ((key = key_next(&ks, &len)) != NULL) {
            for (i = 0; i < n; i++) {
                pool_diff_key(&diffs[i], key, len);
            }
        }
        if (keys != NULL && ferror(keys)) {
            snprintf(err, errlen, "reading keys failed");
            goto done;
        }
    }
    for (i = 0; i < n; i++) {
        if (pool_diff_report(out, &diffs[i]) != 0) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
    }
    diff_unpaired(out, old, new, pool);
    rc = 0;
done:
    for (i = 0; diffs != NULL && i < old->npools; i++) {
        pool_diff_deinit(&diffs[i]);
    }
    free(diffs);
    free(ks.line);
    return rc;
}

/* ---------------------------------------------------------------------
 * Command line
 * ------------------------------------------------------------------- */

struct ring_args {
    const char *conf;
    const char *pool;
    const char *keys;
    uint64_t   sample;
};

static int
parse_args(int argc, char **argv, struct ring_args *a)
{
    static const struct option opts[] = {
        { "conf-file", required_argument, NULL, 'c' },
        { "pool",      required_argument, NULL, 'P' },
        { "keys",      required_argument, NULL, 'k' },
        { "sample",    required_argument, NULL, 'n' },
        { "help",      no_argument,       NULL, 'h' },
        { NULL,        0,                 NULL, 0 }
    };
    char *end;
    int opt;

    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            a->conf = optarg;
            break;
        case 'P':
            a->pool = optarg;
            break;
        case 'k':
            a->keys = optarg;
            break;
        case 'n':
            a->sample = strtoull(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || optarg[0] == '-' ||
                a->sample == 0) {
                fprintf(stderr, "memring ring: --sample: a positive "
                        "number, not '%s'\n", optarg);
                return -1;
            }
            break;
        case 'h':
            ring_usage(stdout);
            exit(0);
        default:
            fprintf(stderr, "memring ring: unknown option '%s'\n",
                    argv[optind - 1]);
            ring_usage(stderr);
            return -1;
        }
    }
    return 0;
}

static struct conf *
load(const char *path)
{
    char err[1024];
    struct conf *c = conf_load(path, err, sizeof(err));

    if (c == NULL) {
        fprintf(stderr, "memring ring: %s\n", err);
    }
    return c;
}

static int
ring_diff_cmd(const struct ring_args *a, const char *old_path,
              const char *new_path)
{
    struct conf *old = load(old_path), *new = NULL;
    FILE *keys = NULL;
    char err[512];
    int rc = 1;

    if (old == NULL || (new = load(new_path)) == NULL) {
        goto done;
    }
    if (a->keys != NULL) {
        keys = strcmp(a->keys, "-") == 0 ? stdin : fopen(a->keys, "r");
        if (keys == NULL) {
            fprintf(stderr, "memring ring: %s: cannot open\n", a->keys);
            goto done;
        }
    }
    if (ring_tool_diff(stdout, old, new, a->pool, keys, a->sample, err,
                       sizeof(err)) != 0) {
        fprintf(stderr, "memring ring: %s\n", err);
        goto done;
    }
    rc = 0;
done:
    if (keys != NULL && keys != stdin) {
        fclose(keys);
    }
    conf_destroy(&old);
    conf_destroy(&new);
    return rc;
}

int
ring_tool_main(int argc, char **argv)
{
    struct ring_args a = { .sample = RING_TOOL_SAMPLE_DEFAULT };
    struct conf *c;
    const char *cmd;
    int rc;

    if (argc < 2 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "--help") == 0) {
        ring_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    cmd = argv[1];
    if (parse_args(argc - 1, argv + 1, &a) != 0) {
        return 1;
    }
    argc -= optind + 1;
    argv += optind + 1;
    if (strcmp(cmd, "locate") == 0) {
        if (a.conf == NULL) {
            fprintf(stderr, "memring ring locate: -c FILE is needed\n");
            return 1;
        }
        c = load(a.conf);
        if (c == NULL) {
            return 1;
        }
        rc = ring_locate(c, a.pool, argv, argc);
        conf_destroy(&c);
        return rc;
    }
    if (strcmp(cmd, "diff") == 0) {
        /* -c OLD NEW, or OLD NEW */
        if ((a.conf != NULL && argc != 1) || (a.conf == NULL && argc != 2)) {
            fprintf(stderr, "memring ring diff: needs -c OLD NEW\n");
            return 1;
        }
        return ring_diff_cmd(&a, a.conf != NULL ? a.conf : argv[0],
                             argv[argc - 1]);
    }
    fprintf(stderr, "memring ring: unknown command '%s'\n", cmd);
    ring_usage(stderr);
    return 1;
}
