/*
 * proxy: loads the config, daemonizes, writes the pid file, runs the
 * worker and the admin endpoint on its loop, and turns SIGINT/SIGTERM into
 * a drain and then a clean stop.
 */
/* sched_getaffinity() and CPU_COUNT are GNU extensions. */
#define _GNU_SOURCE

#include "memring/proxy.h"

#include "memring/admin.h"
#include "memring/conf.h"
#include "memring/log.h"
#include "memring/reload.h"
#include "memring/snapshot.h"
#include "memring/stats.h"
#include "memring/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* One worker per CPU this process may run on: the affinity mask, not the
 * machine, so that `taskset -c 1 memring` or a container's cpuset gets one
 * worker per CPU it really has. Capped, as more workers than that only add
 * connections to every backend. */
static uint32_t
default_workers(void)
{
    cpu_set_t set;
    int n;

    if (sched_getaffinity(0, sizeof(set), &set) != 0) {
        return 1;
    }
    n = CPU_COUNT(&set);
    return n < 1 ? 1 : n > PROXY_MAX_DEFAULT_WORKERS ?
           PROXY_MAX_DEFAULT_WORKERS : (uint32_t)n;
}

struct proxy {
    struct worker **workers;    /* [0] runs on this thread, with admin */
    uint32_t      nworkers;
    uint32_t      ninit;        /* workers initialised */
    uv_thread_t   *threads;     /* [i] runs workers[i], i >= 1 */
    uint32_t      nthreads;     /* threads started */
    struct admin  *admin;       /* NULL when the admin port is off */
    struct reload *reload;      /* owns every config loaded */
    uv_signal_t   sigint;
    uv_signal_t   sigterm;
    uv_signal_t   sighup;
    uv_signal_t   sigusr1;
    uv_timer_t    deadline;     /* --shutdown-timeout, once draining */
    uv_async_t    drained;      /* a worker has no client left */
    atomic_uint   ndrained;     /* ... how many have none */
    uint64_t      shutdown_timeout_ms;
    bool          draining;     /* the first SIGTERM/SIGINT came */
    bool          stopped;      /* proxy_shutdown() ran */
};

static void
proxy_stop_workers(struct proxy *px)
{
    uint32_t i;

    for (i = 0; i < px->ninit; i++) {
        worker_stop(px->workers[i]);
    }
}

static void
worker_thread(void *arg)
{
    worker_run(arg);
}

/* Closes the signal handles, the admin, the config watch and every worker:
 * the loops then end by themselves. Once; later calls do nothing. */
static void
proxy_shutdown(struct proxy *px)
{
    if (px->stopped) {
        return;
    }
    px->stopped = true;
    uv_close((uv_handle_t *)&px->sigint, NULL);
    uv_close((uv_handle_t *)&px->sigterm, NULL);
    uv_close((uv_handle_t *)&px->sighup, NULL);
    uv_close((uv_handle_t *)&px->sigusr1, NULL);
    uv_close((uv_handle_t *)&px->deadline, NULL);
    uv_close((uv_handle_t *)&px->drained, NULL);
    admin_close(px->admin);
    reload_stop(px->reload);
    proxy_stop_workers(px);
}

/* On a worker's thread: it has no client left. */
static void
proxy_worker_drained(void *arg)
{
    struct proxy *px = arg;

    atomic_fetch_add(&px->ndrained, 1);
    uv_async_send(&px->drained);
}

static void
proxy_drained_cb(uv_async_t *handle)
{
    struct proxy *px = handle->data;

    if (atomic_load(&px->ndrained) == px->ninit) {
        log_notice("drained: every client answered");
        proxy_shutdown(px);
    }
}

static void
proxy_deadline_cb(uv_timer_t *timer)
{
    struct proxy *px = timer->data;

    log_warn("shutdown timeout: %" PRIu64 " ms passed; closing the "
             "clients still owed replies", px->shutdown_timeout_ms);
    proxy_shutdown(px);
}

/*
 * The first SIGTERM/SIGINT: no new clients (listeners and the admin port
 * close, the config is no longer watched), and every client is closed
 * once it has the replies to all it sent; then proxy_shutdown(). At the
 * deadline, or on a second signal, proxy_shutdown() closes what is left.
 */
static void
proxy_drain(struct proxy *px)
{
    uint32_t i;

    px->draining = true;
    admin_close(px->admin);
    reload_stop(px->reload);
    uv_timer_start(&px->deadline, proxy_deadline_cb,
                   px->shutdown_timeout_ms, 0);
    for (i = 0; i < px->ninit; i++) {
        worker_drain(px->workers[i]);
    }
}

/* SIGUSR1 (for logrotate), and SIGHUP before its reload. */
static void
proxy_reopen_log(int signum)
{
    int rc = log_reopen();

    if (rc != 0) {
        log_error("signal %d: log file: cannot reopen: %s", signum,
                  strerror(-rc));
    } else if (signum == SIGUSR1) {
        log_notice("signal %d: log file reopened", signum);
    }
}

static void
proxy_signal_cb(uv_signal_t *handle, int signum)
{
    struct proxy *px = handle->data;

    if (signum == SIGUSR1 || signum == SIGHUP) {
        proxy_reopen_log(signum);
    }
    if (signum == SIGUSR1) {
        return;
    }
    if (signum == SIGHUP && px->draining) {
        log_notice("signal %d: stopping; no reload", signum);
        return;
    }
    if (signum == SIGHUP) {
        char msg[2048];
        log_notice("signal %d: reloading %s", signum,
                   reload_conf(px->reload)->path);
        reload_now(px->reload, msg, sizeof(msg));
        return;
    }
    if (px->draining) {
        log_notice("signal %d again: stopping now", signum);
        proxy_shutdown(px);
        return;
    }
    log_notice("signal %d: stopping: no new clients, answering what was "
               "sent (at most %" PRIu64 " ms)", signum,
               px->shutdown_timeout_ms);
    proxy_drain(px);
}

/* POST /reload */
static int
proxy_reload_cb(void *arg, char *msg, size_t len)
{
    struct proxy *px = arg;

    return reload_now(px->reload, msg, len);
}

/* After any applied reload: /config tells when. */
static void
proxy_applied_cb(void *arg)
{
    struct proxy *px = arg;

    if (px->admin != NULL) {
        admin_conf_loaded(px->admin, stats_now_usec());
    }
}

/*
 * Every client and server connection is a descriptor: take the hard limit
 * as memcached does, or clients past the soft one (often 1024) would be
 * accepted and dropped by libuv without a word.
 */
static void
raise_nofile(const struct proxy_options *o)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) {
        return;
    }
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        log_warn("open files: cannot raise the limit: %s", strerror(errno));
        return;
    }
    if (rl.rlim_cur < (rlim_t)o->limits.max_clients + 64) {
        log_warn("open files: limit %lu is below --max-clients %u; clients "
                 "past it are dropped", (unsigned long)rl.rlim_cur,
                 o->limits.max_clients);
    }
}

/*
 * Values of 100 KB to a few MB come and go with every request. glibc would
 * mmap each such buffer and unmap it on free, paying page faults per
 * request; keeping them in the heap lets freed chunks be reused.
 */
static void
tune_malloc(void)
{
    mallopt(M_MMAP_THRESHOLD, 16 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
}

static int
daemonize(void)
{
    pid_t pid;
    int fd;

    pid = fork();
    if (pid < 0) {
        return -errno;
    }
    if (pid > 0) {
        _exit(0);
    }
    if (setsid() < 0) {
        return -errno;
    }
    signal(SIGHUP, SIG_IGN);
    pid = fork();
    if (pid < 0) {
        return -errno;
    }
    if (pid > 0) {
        _exit(0);
    }
    umask(0);
    fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        if (fd > STDERR_FILENO) {
            close(fd);
        }
    }
    return 0;
}

static int
write_pid_file(const char *path)
{
    FILE *f = fopen(path, "w");

    if (f == NULL) {
        return -errno;
    }
    fprintf(f, "%ld\n", (long)getpid());
    return fclose(f) == 0 ? 0 : -errno;
}

/*
 * Opens the admin port (first, so that a taken port stops the start before
 * any client is accepted), the pools' listeners, and the pid file. 0, or
 * the first error (logged); what did open is closed by the caller.
 */
static int
proxy_start(struct proxy *px, const struct proxy_options *o,
            uint64_t loaded_at)
{
    uint32_t i;
    int rc;

    if (o->watch_config && reload_watch(px->reload) != 0) {
        return UV_EINVAL;
    }
    if (o->stats_port != 0) {
        px->admin = admin_create(&px->workers[0]->io.loop, px->workers,
                                 px->nworkers);
        if (px->admin == NULL) {
            log_error("admin: out of memory");
            return UV_ENOMEM;
        }
        admin_conf_loaded(px->admin, loaded_at);
        admin_set_reload(px->admin, proxy_reload_cb, px);
        admin_set_token(px->admin, o->admin_token);
        admin_set_reload_stats(px->admin, reload_stats(px->reload));
        rc = admin_listen(px->admin, o->stats_addr, o->stats_port);
        if (rc != 0) {
            return rc;
        }
    }
    for (i = 0; i < px->nworkers; i++) {
        rc = worker_listen(px->workers[i]);
        if (rc != 0) {
            return rc;
        }
    }
    if (o->pid_file != NULL) {
        rc = write_pid_file(o->pid_file);
        if (rc != 0) {
            log_error("pid file %s: %s", o->pid_file, strerror(-rc));
            return rc;
        }
    }
    return 0;
}

/* Frees px and what it holds (the workers deinitialised already). NULL is
 * a no-op. */
static void
proxy_free(struct proxy *px)
{
    uint32_t i;

    if (px == NULL) {
        return;
    }
    reload_destroy(&px->reload);
    for (i = 0; px->workers != NULL && i < px->nworkers; i++) {
        free(px->workers[i]);
    }
    free(px->workers);
    free(px->threads);
    free(px);
}

/* A proxy with room for nworkers workers (not initialised); NULL on OOM. */
static struct proxy *
proxy_alloc(uint32_t nworkers)
{
    struct proxy *px = calloc(1, sizeof(*px));
    uint32_t i;

    if (px == NULL) {
        return NULL;
    }
    px->nworkers = nworkers;
    px->workers = calloc(px->nworkers, sizeof(*px->workers));
    px->threads = calloc(px->nworkers, sizeof(*px->threads));
    if (px->workers == NULL || px->threads == NULL) {
        proxy_free(px);
        return NULL;
    }
    for (i = 0; i < px->nworkers; i++) {
        px->workers[i] = calloc(1, sizeof(**px->workers));
        if (px->workers[i] == NULL) {
            proxy_free(px);
            return NULL;
        }
    }
    return px;
}

/* Initialises every worker on the active config, and worker 0's prober.
 * 0, or nonzero (logged) with px->ninit saying which need deinit. */
static int
proxy_init_workers(struct proxy *px, const struct proxy_options *o)
{
    uint32_t i;
    int rc;

    for (i = 0; i < px->nworkers; i++) {
        rc = worker_init(px->workers[i], i, reload_conf(px->reload),
                         &o->limits);
        px->ninit = i + 1;
        if (rc != 0) {
            log_error("worker %u: %s", i, uv_strerror(rc));
            return rc;
        }
        px->workers[i]->shared_port = px->nworkers > 1;
        px->workers[i]->all = px->workers;
        px->workers[i]->nall = px->nworkers;
        /* the `stats` command sums its pool over every worker */
        px->workers[i]->io.totals = snapshot_pool_totals;
        px->workers[i]->io.totals_arg = px->workers[i];
        px->workers[i]->drained = proxy_worker_drained;
        px->workers[i]->drained_arg = px;
    }
    if (o->probe_interval_ms > 0) {
        if (worker_start_probe(px->workers[0], o->probe_interval_ms) != 0) {
            return UV_ENOMEM;
        }
    }
    return 0;
}

/*
 * Signals are caught before the ports open: a SIGHUP sent as soon as a
 * port answers must reload, not kill the process (the default). Their
 * callbacks run once worker 0's loop does, after every worker started.
 */
static void
proxy_catch_signals(struct proxy *px)
{
    uv_loop_t *loop = &px->workers[0]->io.loop;

    uv_signal_init(loop, &px->sigint);
    uv_signal_init(loop, &px->sigterm);
    uv_signal_init(loop, &px->sighup);
    uv_signal_init(loop, &px->sigusr1);
    px->sigint.data = px->sigterm.data = px->sighup.data = px;
    px->sigusr1.data = px;
    uv_signal_start(&px->sigint, proxy_signal_cb, SIGINT);
    uv_signal_start(&px->sigterm, proxy_signal_cb, SIGTERM);
    uv_signal_start(&px->sighup, proxy_signal_cb, SIGHUP);
    uv_signal_start(&px->sigusr1, proxy_signal_cb, SIGUSR1);
    /* the drain's handles, on the same loop as the signals */
    uv_timer_init(loop, &px->deadline);
    px->deadline.data = px;
    uv_async_init(loop, &px->drained, proxy_drained_cb);
    px->drained.data = px;
    atomic_init(&px->ndrained, 0);
}

/* Starts workers 1.. on their threads, runs worker 0 here until a stop,
 * and joins them. 0 when all of them started, else 1 (those that did are
 * stopped). */
static int
proxy_serve(struct proxy *px, const struct proxy_options *o)
{
    uint32_t i;
    int status = 1, rc;

    for (i = 1; i < px->nworkers; i++) {
        rc = uv_thread_create(&px->threads[i], worker_thread,
                              px->workers[i]);
        if (rc != 0) {
            log_error("worker %u: thread: %s", i, uv_strerror(rc));
            break;
        }
        px->nthreads = i;
    }
    if (px->nthreads + 1 < px->nworkers) {
        proxy_shutdown(px);
    } else {
        log_notice("memring %s started on pid %ld with %s, %u worker%s",
                   MEMRING_VERSION, (long)getpid(), o->conf_path,
                   px->nworkers, px->nworkers > 1 ? "s" : "");
        status = 0;
    }
    worker_run(px->workers[0]);
    for (i = 1; i <= px->nthreads; i++) {
        uv_thread_join(&px->threads[i]);
    }
    log_notice("memring stopped");
    if (o->pid_file != NULL) {
        unlink(o->pid_file);
    }
    return status;
}

int
proxy_run(const struct proxy_options *o)
{
    char err[CONF_ERR_LEN];
    struct proxy *px = NULL;
    struct conf *conf;
    uint64_t loaded_at;
    uint32_t i;
    int status = 1, rc;

    conf = conf_load(o->conf_path, err, sizeof(err));
    if (conf == NULL) {
        log_error("%s", err);
        return 1;
    }
    loaded_at = stats_now_usec();
    if (o->daemonize) {
        rc = daemonize();
        if (rc != 0) {
            log_error("daemonize: %s", strerror(-rc));
            goto out;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    raise_nofile(o);
    tune_malloc();
    px = proxy_alloc(o->threads > 0 ? o->threads : default_workers());
    if (px == NULL) {
        goto out;
    }
    px->shutdown_timeout_ms = o->shutdown_timeout_ms;
    px->reload = reload_create(&px->workers[0]->io.loop, o->conf_path, conf,
                               px->workers, px->nworkers);
    if (px->reload == NULL) {
        goto out;
    }
    conf = NULL;                /* the reload module owns it now */
    reload_on_apply(px->reload, proxy_applied_cb, px);
    if (proxy_init_workers(px, o) != 0) {
        goto deinit;
    }
    proxy_catch_signals(px);
    if (proxy_start(px, o, loaded_at) != 0) {
        /* Close what did open through the workers' own stop path, so that
         * heap handles (listeners) are freed by their close callbacks. No
         * worker thread runs yet: their loops run here, one by one. */
        proxy_shutdown(px);
        for (i = 0; i < px->ninit; i++) {
            worker_run(px->workers[i]);
        }
        goto deinit;
    }
    status = proxy_serve(px, o);
deinit:
    /* The admin's handles close with their own callbacks, which the loop
     * runs inside worker_deinit(); only then may the admin be freed. */
    admin_close(px->admin);
    for (i = 0; i < px->ninit; i++) {
        worker_deinit(px->workers[i]);
    }
    admin_destroy(&px->admin);
out:
    proxy_free(px);
    conf_destroy(&conf);
    return status;
}
