/*
 * A fixture for the tests of what reads every worker's counters (snapshot,
 * the admin documents): real workers built from a parsed config, with no
 * listening and no traffic; counters and ejection state are set by hand.
 * Included by one test file each (each is its own binary).
 */
#ifndef MEMRING_TEST_WORKERS_FIXTURE_H
#define MEMRING_TEST_WORKERS_FIXTURE_H

#include "memring/buf.h"
#include "memring/conf.h"
#include "memring/health.h"
#include "memring/pool.h"
#include "memring/snapshot.h"
#include "memring/worker.h"

#include <stdio.h>
#include <string.h>

#define WF_MAX_WORKERS 3

/* Pool alpha; its servers in ring order (shorter names first): 0 is
 * "beta", 1 is "127.0.0.1". */
static const char wf_yaml[] =
    "alpha:\n"
    "  listen: 127.0.0.1:22121\n"
    "  auto_eject_hosts: true\n"
    "  servers:\n"
    "   - 127.0.0.1:11211:1\n"
    "   - 127.0.0.1:11212:1 beta\n";

struct workers_fixture {
    struct conf     *conf;
    struct worker   w[WF_MAX_WORKERS];
    struct worker   *wp[WF_MAX_WORKERS];
    uint32_t        nworkers;
    struct snapshot snap;       /* freed by wf_teardown */
    struct buf      out;        /* a rendered document, NUL-terminated */
};

static struct workers_fixture wf;

static inline int
wf_setup_yaml(const char *yaml, uint32_t nworkers)
{
    char err[CONF_ERR_LEN];
    struct limits limits;
    uint32_t i;

    memset(&wf, 0, sizeof(wf));
    wf.conf = conf_parse(yaml, strlen(yaml), "t.yml", err, sizeof(err));
    if (wf.conf == NULL) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    limits_default(&limits);
    for (i = 0; i < nworkers; i++) {
        if (worker_init(&wf.w[i], i, wf.conf, &limits) != 0) {
            return -1;
        }
        wf.wp[i] = &wf.w[i];
        wf.nworkers = i + 1;
    }
    return 0;
}

static inline int
wf_setup_one(void **state)
{
    (void)state;
    return wf_setup_yaml(wf_yaml, 1);
}

static inline int
wf_setup_two(void **state)
{
    (void)state;
    return wf_setup_yaml(wf_yaml, 2);
}

static inline int
wf_teardown(void **state)
{
    uint32_t i;

    (void)state;
    snapshot_free(&wf.snap);
    buf_free(&wf.out);
    for (i = 0; i < wf.nworkers; i++) {
        worker_deinit(&wf.w[i]);
    }
    conf_destroy(&wf.conf);
    return 0;
}

/* Worker w's copy of server si of the first pool. */
static inline struct server *
wf_server(uint32_t w, uint32_t si)
{
    return wf.w[w].pools[0]->servers[si];
}

static inline uint64_t
wf_now(uint32_t w)
{
    return uv_now(&wf.w[w].io.loop);
}

/* Ejects server si (in every worker: the state is shared) for ms. */
static inline bool
wf_eject_for(uint32_t si, uint64_t ms)
{
    const struct eject_policy once = { true, 1, ms };

    return health_failure(wf_server(0, si)->health, &once, wf_now(0));
}

/* A fresh snapshot of every worker in wf.snap; 0 or its error. */
static inline int
wf_take(void)
{
    snapshot_free(&wf.snap);
    return snapshot_take(&wf.snap, wf.wp, wf.nworkers);
}

/* wf.out emptied, for the next document. */
static inline struct buf *
wf_out(void)
{
    buf_reset(&wf.out);
    return &wf.out;
}

/* wf.out as a C string. */
static inline const char *
wf_text(void)
{
    if (buf_append(&wf.out, "", 1) != 0) {
        return NULL;
    }
    wf.out.len--;
    return buf_head(&wf.out);
}

#endif /* MEMRING_TEST_WORKERS_FIXTURE_H */
