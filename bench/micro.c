/*
 * memring-micro: ns per call of the per-request pure functions, through their
 * headers: mc_parse_req/mc_parse_rsp on typical requests and replies, and
 * hash_key + ring_lookup on a 100-server ketama ring. Best of 5 repeats,
 * in thread CPU time.
 */
#include "memring/hash.h"
#include "memring/mc_parse.h"
#include "memring/ring.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MICRO_REPEATS 5
#define MICRO_KEYS    4096       /* distinct keys, a power of two */
#define MICRO_SERVERS 100
#define MICRO_KEY     "mrb:0000000100:000000042"   /* as loadgen makes them */
#define MICRO_KEYCAP  128

/* One timed call; returns something derived from the result (kept alive). */
typedef uint64_t (*micro_fn)(const void *arg, uint32_t i);

/* A buffer to parse, named for the output. */
struct micro_buf {
    const char *name;
    char       *buf;
    size_t     len;
    uint32_t   iters;
};

/* Keys and their hashes for the ring cases. */
struct micro_ring {
    struct ring *ring;
    char        keys[MICRO_KEYS][32];
    uint32_t    hashes[MICRO_KEYS];
};

static volatile uint64_t sink;

/*
 * CPU time of this thread, not wall time: the bench shares a small machine,
 * and a time slice lost to another process must not count as parser time.
 */
static uint64_t
cpu_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Best ns per call of fn over MICRO_REPEATS runs of iters calls. */
static double
best_ns(micro_fn fn, const void *arg, uint32_t iters)
{
    double best = 1e30, ns;
    uint64_t t0, acc = 0;
    uint32_t r, i;

    for (r = 0; r < MICRO_REPEATS; r++) {
        t0 = cpu_ns();
        for (i = 0; i < iters; i++) {
            acc += fn(arg, i);
        }
        ns = (double)(cpu_ns() - t0) / iters;
        best = ns < best ? ns : best;
    }
    sink += acc;
    return best;
}

static void
fail(const char *what)
{
    fprintf(stderr, "micro: %s\n", what);
    exit(1);
}

/* ------------------------------------------------------------ parsing */

static char *
make_get(uint32_t nkeys, size_t *len)
{
    size_t cap = 8 + (size_t)nkeys * 32, n = 0;
    char *b = malloc(cap);
    uint32_t i;

    if (b == NULL) {
        fail("out of memory");
    }
    n += (size_t)snprintf(b + n, cap - n, "get");
    for (i = 0; i < nkeys; i++) {
        n += (size_t)snprintf(b + n, cap - n, " mrb:0000000100:%09u", i);
    }
    n += (size_t)snprintf(b + n, cap - n, "\r\n");
    *len = n;
    return b;
}

/* head + "<vlen>\r\n" + vlen data bytes + "\r\n" */
static char *
make_block(const char *head, uint32_t vlen, size_t *len)
{
    size_t cap = 64 + vlen, n;
    char *b = malloc(cap);

    if (b == NULL) {
        fail("out of memory");
    }
    n = (size_t)snprintf(b, cap, "%s%u\r\n", head, vlen);
    memset(b + n, 'x', vlen);
    memcpy(b + n + vlen, "\r\n", 2);
    *len = n + vlen + 2;
    return b;
}

static uint64_t
parse_req(const void *arg, uint32_t i)
{
    static struct mc_span keys[MICRO_KEYCAP];
    const struct micro_buf *mb = arg;
    struct mc_req req;

    (void)i;
    if (mc_parse_req(mb->buf, mb->len, &req, keys, MICRO_KEYCAP) !=
        PARSE_OK) {
        fail(mb->name);
    }
    return req.total_len + req.nkeys;
}

static uint64_t
parse_rsp(const void *arg, uint32_t i)
{
    const struct micro_buf *mb = arg;
    struct mc_rsp rsp;

    (void)i;
    if (mc_parse_rsp(mb->buf, mb->len, &rsp) != PARSE_OK) {
        fail(mb->name);
    }
    return rsp.len;
}

/* --------------------------------------------------------------- ring */

static uint64_t
lookup(const void *arg, uint32_t i)
{
    const struct micro_ring *mr = arg;

    return (uint64_t)ring_lookup(mr->ring, mr->hashes[i & (MICRO_KEYS - 1)]);
}

static uint64_t
hash_lookup(const void *arg, uint32_t i)
{
    const struct micro_ring *mr = arg;
    const char *k = mr->keys[i & (MICRO_KEYS - 1)];

    return (uint64_t)ring_lookup(mr->ring,
                                 hash_key(HASH_FNV1A_64, k, strlen(k)));
}

static struct ring *
make_ring(void)
{
    static char names[MICRO_SERVERS][24];
    struct ring_node nodes[MICRO_SERVERS];
    struct ring *r;
    uint32_t i;

    for (i = 0; i < MICRO_SERVERS; i++) {
        snprintf(names[i], sizeof(names[i]), "10.0.%u.%u:11211", i / 250,
                 i % 250 + 1);
        nodes[i].name = names[i];
        nodes[i].name_len = strlen(names[i]);
        nodes[i].weight = 1;
        nodes[i].live = true;
    }
    r = ring_create(DIST_KETAMA, nodes, MICRO_SERVERS);
    if (r == NULL) {
        fail("ring_create failed");
    }
    return r;
}

int
main(void)
{
    static char end_rsp[] = "END\r\n", stored_rsp[] = "STORED\r\n";
    static struct micro_ring mr;
    struct micro_buf reqs[5], rsps[3];
    uint32_t i;

    reqs[0] = (struct micro_buf){ "get 1 key", NULL, 0, 2000000 };
    reqs[0].buf = make_get(1, &reqs[0].len);
    reqs[1] = (struct micro_buf){ "get 10 keys", NULL, 0, 500000 };
    reqs[1].buf = make_get(10, &reqs[1].len);
    reqs[2] = (struct micro_buf){ "get 100 keys", NULL, 0, 50000 };
    reqs[2].buf = make_get(100, &reqs[2].len);
    reqs[3] = (struct micro_buf){ "set 100 B", NULL, 0, 2000000 };
    reqs[3].buf = make_block("set " MICRO_KEY " 0 0 ", 100, &reqs[3].len);
    reqs[4] = (struct micro_buf){ "set 100 KB", NULL, 0, 200000 };
    reqs[4].buf = make_block("set " MICRO_KEY " 0 0 ", 100 * 1024,
                             &reqs[4].len);
    rsps[0] = (struct micro_buf){ "VALUE 100 B", NULL, 0, 2000000 };
    rsps[0].buf = make_block("VALUE " MICRO_KEY " 0 ", 100, &rsps[0].len);
    rsps[1] = (struct micro_buf){ "END", end_rsp, 5, 5000000 };
    rsps[2] = (struct micro_buf){ "STORED", stored_rsp, 8, 5000000 };

    printf("%-28s %10s\n", "operation", "ns/op");
    for (i = 0; i < 5; i++) {
        printf("mc_parse_req %-15s %10.1f\n", reqs[i].name,
               best_ns(parse_req, &reqs[i], reqs[i].iters));
    }
    for (i = 0; i < 3; i++) {
        printf("mc_parse_rsp %-15s %10.1f\n", rsps[i].name,
               best_ns(parse_rsp, &rsps[i], rsps[i].iters));
    }

    mr.ring = make_ring();
    for (i = 0; i < MICRO_KEYS; i++) {
        snprintf(mr.keys[i], sizeof(mr.keys[i]), "mrb:0000000100:%09u",
                 i * 7919);
        mr.hashes[i] = hash_key(HASH_FNV1A_64, mr.keys[i],
                                strlen(mr.keys[i]));
    }
    printf("ring_lookup ketama x%-3u      %10.1f\n", MICRO_SERVERS,
           best_ns(lookup, &mr, 5000000));
    printf("hash_key fnv1a_64 + lookup   %10.1f\n",
           best_ns(hash_lookup, &mr, 5000000));
    printf("(ring: %u points, %u distinct keys)\n", ring_npoints(mr.ring),
           MICRO_KEYS);
    ring_destroy(&mr.ring);
    for (i = 0; i < 5; i++) {
        free(reqs[i].buf);
    }
    free(rsps[0].buf);
    return sink == 42 ? 1 : 0;
}
