/*
 * memring-loadgen: closed-loop memcached load for scripts/bench. N
 * connections keep `depth` requests each in flight and it reports ops/s,
 * latency percentiles and the CPU that given server processes spent per op.
 * One thread, epoll, blocking connects; no libraries.
 */
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LG_MAX_ADDRS 16
#define LG_MAX_PIDS  16
#define LG_RBUF      (64 * 1024)  /* read buffer; data blocks are skipped */
#define LG_KEYLEN    24           /* "mrb:<10 digits>:<9 digits>" */
#define LG_HIST_SUB  64           /* sub-buckets per power of two (~1.5%) */
#define LG_HIST_N    (LG_HIST_SUB * 64)
#define LG_BATCH     250          /* idle mode: connects between fd checks */

enum lg_mode { MODE_MIX, MODE_MGET, MODE_LOAD, MODE_IDLE };
enum lg_kind { KIND_GET, KIND_SET };

/* A request in flight: FIFO per connection, replies come back in order. */
struct lg_pending {
    uint64_t t_ns;              /* when it was queued for writing */
    uint8_t  kind;              /* enum lg_kind */
};

/* One client connection; owned by the global conns array. */
struct lg_conn {
    int               fd;
    char              *wbuf;    /* requests not yet written */
    size_t            wlen;     /* bytes in wbuf */
    size_t            woff;     /* bytes of wbuf already written */
    size_t            wcap;
    char              *rbuf;    /* LG_RBUF bytes */
    size_t            rpos;     /* first unparsed byte */
    size_t            rlen;     /* bytes in rbuf */
    uint64_t          skip;     /* data-block bytes still to drop */
    struct lg_pending *pend;    /* ring of depth entries */
    uint32_t          head;     /* oldest pending */
    uint32_t          inflight;
    uint32_t          nvalues;  /* VALUEs seen in the current reply */
    uint32_t          next_key; /* load mode: next key to set */
    uint32_t          last_key; /* load mode: one past the last */
    bool              pollout;  /* EPOLLOUT armed */
};

static struct {
    enum lg_mode   mode;
    struct sockaddr_in addrs[LG_MAX_ADDRS];
    uint32_t       naddrs;
    uint32_t       conns;
    uint32_t       depth;
    double         seconds;
    double         warmup;
    uint32_t       keys;
    uint32_t       vlen;
    uint32_t       get_pct;
    bool           meta;        /* -p meta: mg/ms, a multi-get as quiet
                                 * mg lines ended by mn */
    uint32_t       mget;
    int            proxy_pids[LG_MAX_PIDS];
    uint32_t       nproxy;
    int            backend_pids[LG_MAX_PIDS];
    uint32_t       nbackend;
    int            mem_pid;
} opt = {
    .mode = MODE_MIX, .conns = 50, .depth = 1, .seconds = 5, .warmup = 1,
    .keys = 10000, .vlen = 100, .get_pct = 90, .mget = 10,
};

static struct lg_conn *conns;
static char *keytab;            /* keys * LG_KEYLEN, not NUL-terminated */
static char *value;             /* vlen bytes + "\r\n" */
static char set_tail[32];       /* " 0 0 <vlen>\r\n" */
static size_t set_tail_len;
static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t now_ns;
static bool measuring;

static struct {
    uint64_t ops, gets, sets, values, errors;
    uint64_t hist[LG_HIST_N];
} st;

/* ------------------------------------------------------------- utilities */

static void
die(const char *fmt, const char *arg)
{
    fprintf(stderr, "memring-loadgen: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(2);
}

static uint64_t
clock_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint32_t
rand_below(uint32_t n)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (uint32_t)(((rng * 0x2545f4914f6cdd1dULL) >> 32) % n);
}

static uint32_t
hist_index(uint64_t v)
{
    uint32_t msb;

    if (v < LG_HIST_SUB) {
        return (uint32_t)v;
    }
    msb = (uint32_t)(63 - __builtin_clzll(v));
    if (msb > 63 - 1) {
        msb = 62;
    }
    return (msb - 5) * LG_HIST_SUB + (uint32_t)((v >> (msb - 6)) & 63);
}

/* Midpoint of bucket i, in ns. */
static double
hist_value(uint32_t i)
{
    uint32_t msb, sub;

    if (i < LG_HIST_SUB) {
        return (double)i;
    }
    msb = i / LG_HIST_SUB + 5;
    sub = i % LG_HIST_SUB;
    return (double)((uint64_t)(LG_HIST_SUB + sub) << (msb - 6)) +
           (double)(1ULL << (msb - 6)) / 2;
}

static double
hist_pct(double p)
{
    uint64_t total = 0, want, seen = 0;
    uint32_t i;

    for (i = 0; i < LG_HIST_N; i++) {
        total += st.hist[i];
    }
    if (total == 0) {
        return 0;
    }
    want = (uint64_t)((double)total * p / 100.0);
    if (want >= total) {
        want = total - 1;
    }
    for (i = 0; i < LG_HIST_N; i++) {
        seen += st.hist[i];
        if (seen > want) {
            return hist_value(i);
        }
    }
    return 0;
}

/* utime + stime of pid (all its threads), in clock ticks; 0 if gone. */
static uint64_t
pid_ticks(int pid)
{
    char path[64], buf[1024], *p;
    unsigned long long ut = 0, stime = 0;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')');      /* comm may hold spaces */
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u "
                            "%*u %*u %llu %llu", &ut, &stime) != 2) {
        return 0;
    }
    return ut + stime;
}

static uint64_t
pids_ticks(const int *pids, uint32_t n)
{
    uint64_t t = 0;
    uint32_t i;

    for (i = 0; i < n; i++) {
        t += pid_ticks(pids[i]);
    }
    return t;
}

/*
 * Busy ticks of the whole machine: user nice system irq softirq. A task's
 * stime includes the irq time that interrupted it, so these are comparable.
 * *steal gets the ticks the hypervisor gave to other guests instead.
 */
static uint64_t
machine_busy_ticks(uint64_t *steal)
{
    unsigned long long u = 0, n = 0, s = 0, idle, iow, irq = 0, sirq = 0;
    unsigned long long stl = 0;
    FILE *f = fopen("/proc/stat", "r");

    if (f == NULL) {
        *steal = 0;
        return 0;
    }
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &u, &n, &s,
               &idle, &iow, &irq, &sirq, &stl) != 8) {
        u = n = s = irq = sirq = stl = 0;
    }
    fclose(f);
    *steal = stl;
    return u + n + s + irq + sirq;
}

static uint64_t
self_cpu_ns(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ULL
           + (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ULL;
}

static long
pid_rss_kb(int pid)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

static long
pid_nfds(int pid)
{
    char path[64];
    struct dirent *d;
    long n = 0;
    DIR *dir;

    snprintf(path, sizeof(path), "/proc/%d/fd", pid);
    dir = opendir(path);
    if (dir == NULL) {
        return -1;
    }
    while ((d = readdir(dir)) != NULL) {
        n += d->d_name[0] != '.';
    }
    closedir(dir);
    return n;
}

static void
sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

/* --------------------------------------------------------- requests out */

static void
wbuf_reserve(struct lg_conn *c, size_t n)
{
    if (c->woff == c->wlen) {
        c->woff = c->wlen = 0;
    }
    if (c->wlen + n <= c->wcap) {
        return;
    }
    if (c->woff > 0) {
        memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
        c->wlen -= c->woff;
        c->woff = 0;
    }
    if (c->wlen + n > c->wcap) {
        c->wcap = (c->wlen + n) * 2;
        c->wbuf = realloc(c->wbuf, c->wcap);
        if (c->wbuf == NULL) {
            die("%s", "out of memory");
        }
    }
}

static void
put(struct lg_conn *c, const char *p, size_t n)
{
    memcpy(c->wbuf + c->wlen, p, n);
    c->wlen += n;
}

static void
push_set(struct lg_conn *c, uint32_t k)
{
    wbuf_reserve(c, 4 + LG_KEYLEN + set_tail_len + opt.vlen + 2);
    put(c, opt.meta ? "ms " : "set ", opt.meta ? 3 : 4);
    put(c, keytab + (size_t)k * LG_KEYLEN, LG_KEYLEN);
    put(c, set_tail, set_tail_len);
    put(c, value, opt.vlen + 2);
}

static void
push_get(struct lg_conn *c, uint32_t nkeys)
{
    uint32_t i, k;

    if (opt.meta) {
        /* one mg per key; several: quiet, the misses unsaid, then mn */
        wbuf_reserve(c, (size_t)nkeys * (LG_KEYLEN + 9) + 4);
        for (i = 0; i < nkeys; i++) {
            k = rand_below(opt.keys);
            put(c, "mg ", 3);
            put(c, keytab + (size_t)k * LG_KEYLEN, LG_KEYLEN);
            put(c, nkeys > 1 ? " v q\r\n" : " v\r\n", nkeys > 1 ? 6 : 4);
        }
        if (nkeys > 1) {
            put(c, "mn\r\n", 4);
        }
        return;
    }
    wbuf_reserve(c, 3 + (size_t)nkeys * (LG_KEYLEN + 1) + 2);
    put(c, "get", 3);
    for (i = 0; i < nkeys; i++) {
        k = rand_below(opt.keys);
        put(c, " ", 1);
        put(c, keytab + (size_t)k * LG_KEYLEN, LG_KEYLEN);
    }
    put(c, "\r\n", 2);
}

/* Tops c up to depth requests in flight. */
static void
conn_fill(struct lg_conn *c)
{
    struct lg_pending *p;
    enum lg_kind kind;

    while (c->inflight < opt.depth) {
        switch (opt.mode) {
        case MODE_LOAD:
            if (c->next_key == c->last_key) {
                return;
            }
            push_set(c, c->next_key++);
            kind = KIND_SET;
            break;
        case MODE_MGET:
            push_get(c, opt.mget);
            kind = KIND_GET;
            break;
        case MODE_MIX:
            if (rand_below(100) < opt.get_pct) {
                push_get(c, 1);
                kind = KIND_GET;
            } else {
                push_set(c, rand_below(opt.keys));
                kind = KIND_SET;
            }
            break;
        default:
            return;
        }
        p = &c->pend[(c->head + c->inflight) % opt.depth];
        p->t_ns = now_ns;
        p->kind = (uint8_t)kind;
        c->inflight++;
    }
}

static void
conn_arm(int ep, struct lg_conn *c, bool out)
{
    struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0u) };

    if (c->pollout == out) {
        return;
    }
    ev.data.ptr = c;
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
        die("epoll_ctl: %s", strerror(errno));
    }
    c->pollout = out;
}

static void
conn_flush(int ep, struct lg_conn *c)
{
    ssize_t n;

    while (c->woff < c->wlen) {
        n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                break;
            }
            die("write: %s", strerror(errno));
        }
        c->woff += (size_t)n;
    }
    conn_arm(ep, c, c->woff < c->wlen);
}

/* ---------------------------------------------------------- replies in */

static void
complete(struct lg_conn *c, bool error)
{
    struct lg_pending *p;

    if (c->inflight == 0) {
        die("%s", "reply with no request in flight");
    }
    p = &c->pend[c->head];
    c->head = (c->head + 1) % opt.depth;
    c->inflight--;
    if (!measuring) {
        c->nvalues = 0;
        return;
    }
    st.ops++;
    st.errors += error;
    if (p->kind == KIND_GET) {
        st.gets++;
        st.values += c->nvalues;
    } else {
        st.sets++;
    }
    st.hist[hist_index(now_ns - p->t_ns)]++;
    c->nvalues = 0;
}

static bool
starts(const char *line, size_t len, const char *word)
{
    size_t n = strlen(word);

    return len >= n && memcmp(line, word, n) == 0;
}

/* One reply line (without its \n); may start a data block to skip. */
static void
parse_line(struct lg_conn *c, const char *line, size_t len)
{
    const char *p;
    unsigned long long bytes;
    uint32_t spaces = 0;

    if (starts(line, len, "VALUE ")) {
        for (p = line; p < line + len && spaces < 3; p++) {
            spaces += *p == ' ';
        }
        bytes = strtoull(p, NULL, 10);
        c->skip = bytes + 2;
        c->nvalues++;
        return;
    }
    if (starts(line, len, "VA ")) {
        /* meta: its value; a single mg is answered by it */
        c->skip = strtoull(line + 3, NULL, 10) + 2;
        c->nvalues++;
        if (opt.mode != MODE_MGET) {
            complete(c, false);
        }
        return;
    }
    if (starts(line, len, "END\r") || starts(line, len, "STORED\r") ||
        starts(line, len, "HD") || starts(line, len, "EN\r") ||
        starts(line, len, "MN\r")) {
        complete(c, false);
        return;
    }
    /* ERROR, CLIENT_ERROR, SERVER_ERROR, NOT_STORED ...: one-line replies */
    complete(c, true);
}

static void
conn_read(int ep, struct lg_conn *c)
{
    ssize_t n;
    size_t avail;
    char *nl;

    for (;;) {
        if (c->rpos == c->rlen) {
            c->rpos = c->rlen = 0;
        } else if (c->rlen == LG_RBUF) {
            if (c->rpos == 0) {
                die("%s", "reply line longer than the read buffer");
            }
            memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
            c->rlen -= c->rpos;
            c->rpos = 0;
        }
        n = read(c->fd, c->rbuf + c->rlen, LG_RBUF - c->rlen);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                break;
            }
            die("read: %s", strerror(errno));
        }
        if (n == 0) {
            die("%s", "connection closed by the server");
        }
        c->rlen += (size_t)n;
        while (c->rpos < c->rlen) {
            avail = c->rlen - c->rpos;
            if (c->skip > 0) {
                if (c->skip > avail) {
                    c->skip -= avail;
                    c->rpos = c->rlen;
                    break;
                }
                c->rpos += c->skip;
                c->skip = 0;
                continue;
            }
            nl = memchr(c->rbuf + c->rpos, '\n', avail);
            if (nl == NULL) {
                break;
            }
            parse_line(c, c->rbuf + c->rpos, (size_t)(nl - c->rbuf) - c->rpos);
            c->rpos = (size_t)(nl - c->rbuf) + 1;
        }
        if ((size_t)n < LG_RBUF / 2) {
            break;              /* drained, most likely; epoll says if not */
        }
    }
    conn_fill(c);
    conn_flush(ep, c);
}

/* ----------------------------------------------------------- connections */

static void
conn_open(int ep, struct lg_conn *c, const struct sockaddr_in *sa)
{
    struct epoll_event ev = { .events = EPOLLIN };
    int one = 1;

    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0) {
        die("socket: %s", strerror(errno));
    }
    if (connect(c->fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0) {
        die("connect: %s", strerror(errno));
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    c->rbuf = malloc(LG_RBUF);
    c->pend = calloc(opt.depth, sizeof(*c->pend));
    if (c->rbuf == NULL || c->pend == NULL) {
        die("%s", "out of memory");
    }
    ev.data.ptr = c;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        die("epoll_ctl: %s", strerror(errno));
    }
}

/* Runs the loop until every connection is idle or until deadline (0: none). */
static void
run_loop(int ep, uint64_t deadline, uint64_t measure_at, void (*at_measure)(void))
{
    struct epoll_event evs[256];
    struct lg_conn *c;
    uint32_t i, busy;
    int n, k;

    for (;;) {
        n = epoll_wait(ep, evs, 256, 5);
        if (n < 0 && errno != EINTR) {
            die("epoll_wait: %s", strerror(errno));
        }
        now_ns = clock_ns();
        if (at_measure != NULL && !measuring && now_ns >= measure_at) {
            at_measure();
        }
        if (deadline != 0 && now_ns >= deadline) {
            return;
        }
        for (k = 0; k < n; k++) {
            c = evs[k].data.ptr;
            if (k > 0) {
                now_ns = clock_ns();    /* per event: timestamps stay exact */
            }
            if (evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                conn_read(ep, c);
            } else if (evs[k].events & EPOLLOUT) {
                conn_flush(ep, c);
            }
        }
        if (deadline == 0) {
            for (i = 0, busy = 0; i < opt.conns && busy == 0; i++) {
                busy = conns[i].inflight;
            }
            if (busy == 0) {
                return;
            }
        }
    }
}

/* ------------------------------------------------------------------ runs */

static uint64_t m_start_ns, m_self_ns, m_proxy, m_backend, m_busy, m_steal;

static void
start_measuring(void)
{
    measuring = true;
    memset(&st, 0, sizeof(st));
    m_start_ns = now_ns;
    m_self_ns = self_cpu_ns();
    m_proxy = pids_ticks(opt.proxy_pids, opt.nproxy);
    m_backend = pids_ticks(opt.backend_pids, opt.nbackend);
    m_busy = machine_busy_ticks(&m_steal);
}

static void
run_timed(int ep)
{
    double wall, tick_us = 1e6 / (double)sysconf(_SC_CLK_TCK);
    double proxy_us, backend_us, self_us, busy_us, steal_us, ops;
    uint64_t deadline, steal;
    uint32_t i;

    now_ns = clock_ns();
    for (i = 0; i < opt.conns; i++) {
        conn_fill(&conns[i]);
        conn_flush(ep, &conns[i]);
    }
    deadline = now_ns + (uint64_t)((opt.warmup + opt.seconds) * 1e9);
    run_loop(ep, deadline, now_ns + (uint64_t)(opt.warmup * 1e9),
             start_measuring);
    wall = (double)(now_ns - m_start_ns) / 1e3;     /* us */
    proxy_us = (double)(pids_ticks(opt.proxy_pids, opt.nproxy) - m_proxy) *
               tick_us;
    backend_us = (double)(pids_ticks(opt.backend_pids, opt.nbackend) -
                          m_backend) * tick_us;
    self_us = (double)(self_cpu_ns() - m_self_ns) / 1e3;
    busy_us = (double)(machine_busy_ticks(&steal) - m_busy) * tick_us;
    steal_us = (double)(steal - m_steal) * tick_us;
    ops = st.ops > 0 ? (double)st.ops : 1;
    printf("ops=%llu ops_per_s=%.0f gets=%llu sets=%llu values=%llu "
           "hit_pct=%.1f errors=%llu p50_us=%.1f p90_us=%.1f p99_us=%.1f "
           "p999_us=%.1f proxy_cpu_us_per_op=%.3f "
           "backend_cpu_us_per_op=%.3f client_cpu_pct=%.0f "
           "foreign_cpu_pct=%.0f steal_cpu_pct=%.0f seconds=%.2f\n",
           (unsigned long long)st.ops, (double)st.ops / wall * 1e6,
           (unsigned long long)st.gets, (unsigned long long)st.sets,
           (unsigned long long)st.values,
           st.gets > 0 ? 100.0 * (double)st.values /
                         ((double)st.gets * (opt.mode == MODE_MGET ?
                                             opt.mget : 1)) : 0.0,
           (unsigned long long)st.errors, hist_pct(50) / 1e3,
           hist_pct(90) / 1e3, hist_pct(99) / 1e3, hist_pct(99.9) / 1e3,
           opt.nproxy > 0 ? proxy_us / ops : 0.0,
           opt.nbackend > 0 ? backend_us / ops : 0.0, 100 * self_us / wall,
           100 * (busy_us - proxy_us - backend_us - self_us) / wall,
           100 * steal_us / wall, wall / 1e6);
}

static void
run_load(int ep)
{
    uint32_t i;
    uint64_t t0;

    measuring = true;
    now_ns = t0 = clock_ns();
    for (i = 0; i < opt.conns; i++) {
        conns[i].next_key = 0;
        conns[i].last_key = opt.keys;
        conn_fill(&conns[i]);
        conn_flush(ep, &conns[i]);
    }
    run_loop(ep, 0, 0, NULL);
    printf("loaded=%llu errors=%llu seconds=%.2f\n",
           (unsigned long long)st.ops, (unsigned long long)st.errors,
           (double)(now_ns - t0) / 1e9);
    if (st.errors > 0) {
        exit(1);
    }
}

/* Waits until pid holds at least want fds; false after 20 s. */
static bool
wait_fds(long want)
{
    int i;

    for (i = 0; i < 20000; i++) {
        if (pid_nfds(opt.mem_pid) >= want) {
            return true;
        }
        sleep_ms(1);
    }
    return false;
}

/*
 * Idle mode: RSS of mem_pid before, after conns idle connections were
 * accepted, and after each of them did one get (buffers touched).
 */
static void
run_idle(int ep)
{
    long rss0, rss1, rss2, fds0;
    uint32_t i;

    fds0 = pid_nfds(opt.mem_pid);
    rss0 = pid_rss_kb(opt.mem_pid);
    if (fds0 < 0 || rss0 < 0) {
        die("%s", "cannot read /proc of the -M process");
    }
    for (i = 0; i < opt.conns; i++) {
        conn_open(ep, &conns[i], &opt.addrs[i % opt.naddrs]);
        if ((i + 1) % LG_BATCH == 0 || i + 1 == opt.conns) {
            if (!wait_fds(fds0 + (long)i + 1)) {
                die("%s", "the server did not accept every connection");
            }
        }
    }
    sleep_ms(500);
    rss1 = pid_rss_kb(opt.mem_pid);
    measuring = true;
    now_ns = clock_ns();
    for (i = 0; i < opt.conns; i++) {
        push_get(&conns[i], 1);
        conns[i].pend[0].kind = KIND_GET;
        conns[i].inflight = 1;
        conn_flush(ep, &conns[i]);
    }
    run_loop(ep, 0, 0, NULL);
    sleep_ms(500);
    rss2 = pid_rss_kb(opt.mem_pid);
    printf("conns=%u rss_base_kb=%ld rss_idle_kb=%ld rss_used_kb=%ld "
           "idle_bytes_per_conn=%.0f used_bytes_per_conn=%.0f errors=%llu\n",
           opt.conns, rss0, rss1, rss2,
           (double)(rss1 - rss0) * 1024 / opt.conns,
           (double)(rss2 - rss0) * 1024 / opt.conns,
           (unsigned long long)st.errors);
}

/* -------------------------------------------------------------- options */

static uint32_t
parse_pids(const char *s, int *pids)
{
    uint32_t n = 0;
    char *end;

    while (*s != '\0' && n < LG_MAX_PIDS) {
        pids[n++] = (int)strtol(s, &end, 10);
        s = *end == ',' ? end + 1 : end;
        if (end == s && *s != '\0') {
            die("bad pid list at %s", s);
        }
    }
    return n;
}

static void
parse_addrs(const char *s)
{
    char host[64], *colon;
    const char *end;
    size_t len;

    while (*s != '\0' && opt.naddrs < LG_MAX_ADDRS) {
        end = strchr(s, ',');
        len = end != NULL ? (size_t)(end - s) : strlen(s);
        if (len >= sizeof(host)) {
            die("bad address %s", s);
        }
        memcpy(host, s, len);
        host[len] = '\0';
        colon = strrchr(host, ':');
        if (colon == NULL) {
            die("address without a port: %s", host);
        }
        *colon = '\0';
        opt.addrs[opt.naddrs].sin_family = AF_INET;
        opt.addrs[opt.naddrs].sin_port = htons((uint16_t)atoi(colon + 1));
        if (inet_pton(AF_INET, host, &opt.addrs[opt.naddrs].sin_addr) != 1) {
            die("not an IPv4 address: %s", host);
        }
        opt.naddrs++;
        s = end != NULL ? end + 1 : s + len;
    }
}

static void
usage(void)
{
    fprintf(stderr,
        "usage: memring-loadgen -s HOST:PORT[,HOST:PORT...] [options]\n"
        "  -w MODE   mix (get/set), mget, load (set every key), idle\n"
        "  -c N      connections (default 50; round robin over -s)\n"
        "  -d N      requests in flight per connection (default 1)\n"
        "  -t SEC    measured seconds (default 5)\n"
        "  -W SEC    warm-up seconds, not measured (default 1)\n"
        "  -k N      key space (default 10000)\n"
        "  -v BYTES  value size (default 100); keys are mrb:<BYTES>:<n>\n"
        "  -g PCT    mix: percent of gets (default 90)\n"
        "  -m N      mget: keys per get (default 10)\n"
        "  -p PROTO  text (default) or meta: mg/ms; mget as quiet mg + mn\n"
        "  -P PIDS   proxy pids: CPU per op from /proc/PID/stat\n"
        "  -B PIDS   backend pids: the same\n"
        "  -M PID    idle: the process whose VmRSS to report\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    struct rlimit rl;
    uint32_t i;
    int ch, ep;

    while ((ch = getopt(argc, argv, "s:w:c:d:t:W:k:v:g:m:p:P:B:M:h")) != -1) {
        switch (ch) {
        case 's': parse_addrs(optarg); break;
        case 'w':
            if (strcmp(optarg, "mix") == 0) {
                opt.mode = MODE_MIX;
            } else if (strcmp(optarg, "mget") == 0) {
                opt.mode = MODE_MGET;
            } else if (strcmp(optarg, "load") == 0) {
                opt.mode = MODE_LOAD;
            } else if (strcmp(optarg, "idle") == 0) {
                opt.mode = MODE_IDLE;
            } else {
                usage();
            }
            break;
        case 'c': opt.conns = (uint32_t)atoi(optarg); break;
        case 'd': opt.depth = (uint32_t)atoi(optarg); break;
        case 't': opt.seconds = atof(optarg); break;
        case 'W': opt.warmup = atof(optarg); break;
        case 'k': opt.keys = (uint32_t)atoi(optarg); break;
        case 'v': opt.vlen = (uint32_t)atoi(optarg); break;
        case 'g': opt.get_pct = (uint32_t)atoi(optarg); break;
        case 'm': opt.mget = (uint32_t)atoi(optarg); break;
        case 'p':
            if (strcmp(optarg, "meta") == 0) {
                opt.meta = true;
            } else if (strcmp(optarg, "text") != 0) {
                usage();
            }
            break;
        case 'P': opt.nproxy = parse_pids(optarg, opt.proxy_pids); break;
        case 'B': opt.nbackend = parse_pids(optarg, opt.backend_pids); break;
        case 'M': opt.mem_pid = atoi(optarg); break;
        default: usage();
        }
    }
    if (opt.naddrs == 0 || opt.conns == 0 || opt.depth == 0 ||
        opt.keys == 0 || opt.keys > 999999999 || opt.mget == 0 ||
        (opt.mode == MODE_IDLE && opt.mem_pid <= 0)) {
        usage();
    }
    if (opt.mode == MODE_LOAD) {
        opt.conns = opt.naddrs;         /* every server gets every key */
        opt.depth = opt.depth < 64 ? 64 : opt.depth;
    }
    if (opt.mode == MODE_IDLE) {
        opt.depth = 1;
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    keytab = malloc((size_t)opt.keys * LG_KEYLEN + 1);
    value = malloc(opt.vlen + 2);
    conns = calloc(opt.conns, sizeof(*conns));
    if (keytab == NULL || value == NULL || conns == NULL) {
        die("%s", "out of memory");
    }
    for (i = 0; i < opt.keys; i++) {
        char k[32];

        snprintf(k, sizeof(k), "mrb:%010u:%09u", opt.vlen, i);
        memcpy(keytab + (size_t)i * LG_KEYLEN, k, LG_KEYLEN);
    }
    memset(value, 'x', opt.vlen);
    memcpy(value + opt.vlen, "\r\n", 2);
    set_tail_len = (size_t)snprintf(set_tail, sizeof(set_tail),
                                    opt.meta ? " %u\r\n" : " 0 0 %u\r\n",
                                    opt.vlen);

    ep = epoll_create1(0);
    if (ep < 0) {
        die("epoll_create1: %s", strerror(errno));
    }
    if (opt.mode == MODE_IDLE) {
        run_idle(ep);
        return 0;
    }
    for (i = 0; i < opt.conns; i++) {
        conn_open(ep, &conns[i], &opt.addrs[i % opt.naddrs]);
    }
    if (opt.mode == MODE_LOAD) {
        run_load(ep);
    } else {
        run_timed(ep);
    }
    return 0;
}
