/*
 * main: command line (nutcracker's flags, same meanings) and start-up.
 */
#include "memring/admin.h"
#include "memring/admin_stats.h"
#include "memring/conf.h"
#include "memring/check_health.h"
#include "memring/crash.h"
#include "memring/log.h"
#include "memring/probe.h"
#include "memring/proxy.h"
#include "memring/ring_tool.h"
#include "memring_git_rev.h"    /* generated: MEMRING_GIT_REV */

#include <errno.h>
#include <getopt.h>
#include <llhttp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include <yaml.h>

#define OPT_NO_ADMIN     256     /* long-only options: past any char */
#define OPT_WATCH_CONFIG 257
#define OPT_ITEM_SIZE_MAX 258
#define OPT_OUTPUT_MAX   259
#define OPT_MAX_CLIENTS  260
#define OPT_IDLE_TIMEOUT 261
#define OPT_THREADS      262
#define OPT_PENDING_MAX  263
#define OPT_REQUESTS_MAX 264
#define OPT_PENDING_OUTPUT_MAX 265
#define OPT_GET_KEYS_MAX 266
#define OPT_PROBE_INTERVAL 267
#define OPT_CHECK_HEALTH 268
#define OPT_ADMIN_TOKEN_FILE 269
#define OPT_SHUTDOWN_TIMEOUT 270
#define OPT_LOG_FORMAT   271

static const struct option long_options[] = {
    { "help",           no_argument,       NULL, 'h' },
    { "version",        no_argument,       NULL, 'V' },
    { "test-conf",      no_argument,       NULL, 't' },
    { "daemonize",      no_argument,       NULL, 'd' },
    { "describe-stats", no_argument,       NULL, 'D' },
    { "verbose",        required_argument, NULL, 'v' },
    { "output",         required_argument, NULL, 'o' },
    { "conf-file",      required_argument, NULL, 'c' },
    { "stats-port",     required_argument, NULL, 's' },
    { "stats-addr",     required_argument, NULL, 'a' },
    { "admin-port",     required_argument, NULL, 's' },
    { "admin-addr",     required_argument, NULL, 'a' },
    { "no-admin",       no_argument,       NULL, OPT_NO_ADMIN },
    { "watch-config",   no_argument,       NULL, OPT_WATCH_CONFIG },
    { "check-health",   no_argument,       NULL, OPT_CHECK_HEALTH },
    { "log-format",     required_argument, NULL, OPT_LOG_FORMAT },
    { "admin-token-file", required_argument, NULL, OPT_ADMIN_TOKEN_FILE },
    { "item-size-max",  required_argument, NULL, OPT_ITEM_SIZE_MAX },
    { "client-output-max", required_argument, NULL, OPT_OUTPUT_MAX },
    { "max-clients",    required_argument, NULL, OPT_MAX_CLIENTS },
    { "pending-values-max", required_argument, NULL, OPT_PENDING_MAX },
    { "client-requests-max", required_argument, NULL, OPT_REQUESTS_MAX },
    { "pending-output-max", required_argument, NULL, OPT_PENDING_OUTPUT_MAX },
    { "get-keys-max",   required_argument, NULL, OPT_GET_KEYS_MAX },
    { "health-probe-interval", required_argument, NULL, OPT_PROBE_INTERVAL },
    { "threads",        required_argument, NULL, OPT_THREADS },
    { "client-idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
    { "shutdown-timeout", required_argument, NULL, OPT_SHUTDOWN_TIMEOUT },
    { "stats-interval", required_argument, NULL, 'i' },
    { "pid-file",       required_argument, NULL, 'p' },
    { "mbuf-size",      required_argument, NULL, 'm' },
    { NULL,             0,                 NULL, 0 }
};

static const char short_options[] = "hVtdDv:o:c:s:a:i:p:m:";

static void
usage(FILE *f)
{
    fprintf(f,
        "Usage: memring [-?hVdDt] [-v verbosity level] [-o output file]\n"
        "               [-c conf file] [-s stats port] [-a stats addr]\n"
        "               [-i stats interval] [-p pid file] [-m mbuf size]\n"
        "       memring ring locate|diff ...  (memring ring --help)\n"
        "\n"
        "Options:\n"
        "  -h, --help             : this help\n"
        "  -V, --version          : show version and exit\n"
        "  -t, --test-conf        : test configuration for syntax errors and exit\n"
        "  -d, --daemonize        : run as a daemon\n"
        "  -D, --describe-stats   : print stats description and exit\n"
        "  -v, --verbose=N        : set logging level (default: %d, min: 0, max: %d)\n"
        "  -o, --output=S         : set logging file (default: stderr)\n"
        "      --log-format=S     : text (default) or json, one object a\n"
        "                           line; a line repeated past %d a\n"
        "                           second is counted, not written\n"
        "  -c, --conf-file=S      : set configuration file (default: %s)\n"
        "  -s, --stats-port=N     : set stats monitoring port (default: %d;\n"
        "                           0 turns it off); also --admin-port\n"
        "  -a, --stats-addr=S     : set stats monitoring ip (default: %s);\n"
        "                           also --admin-addr\n"
        "      --no-admin         : no stats port (HTTP admin), as -s 0\n"
        "      --admin-token-file=S : /config, POST /reload and POST\n"
        "                           /ring/diff want \"Authorization: Bearer\n"
        "                           TOKEN\", TOKEN the file's first line\n"
        "      --check-health     : ask the running memring's admin port\n"
        "                           (-s, -a) for /healthz; exit 0 when\n"
        "                           healthy, 1 otherwise (for HEALTHCHECK)\n"
        "      --watch-config     : reload when the config file changes\n"
        "                           (SIGHUP and POST /reload always do)\n"
        "      --item-size-max=N  : longest value passed on, bytes (default:\n"
        "                           %llu; at most 1073741824)\n"
        "      --client-output-max=N : unsent reply bytes before a client that\n"
        "                           does not read is cut off (default: %llu)\n"
        "      --pending-output-max=N : unsent reply bytes, all clients\n"
        "                           together, past which clients behind are\n"
        "                           cut off (default: %llu)\n"
        "      --max-clients=N    : client connections in all (default: %d;\n"
        "                           per pool: client_connections)\n"
        "      --pending-values-max=N : bytes of values held until their\n"
        "                           server answers, all clients together\n"
        "                           (default: %llu)\n"
        "      --client-requests-max=N : requests one client may have\n"
        "                           unanswered before memring stops reading\n"
        "                           it for a while (default: %d)\n"
        "      --get-keys-max=N   : keys one get/gets/gat/gats may carry\n"
        "                           (default: %d)\n"
        "      --health-probe-interval=MS : connect to servers that answered\n"
        "                           nothing for that long, for /healthz\n"
        "                           (default: %d; 0: never)\n"
        "      --threads=N        : worker threads sharing the ports\n"
        "                           (default: one per CPU)\n"
        "      --client-idle-timeout=S : close clients idle S seconds\n"
        "                           (default: 0, never)\n"
        "      --shutdown-timeout=MS : on SIGTERM or SIGINT, stop accepting\n"
        "                           and answer what clients sent for at\n"
        "                           most MS, then close what is left and\n"
        "                           exit 0; a second signal stops at once\n"
        "                           (default: %d; 0: no wait)\n"
        "  -i, --stats-interval=N : accepted for nutcracker compatibility\n"
        "  -p, --pid-file=S       : set pid file (default: off)\n"
        "  -m, --mbuf-size=N      : accepted for nutcracker compatibility\n"
        "\n"
        "Signals: SIGTERM, SIGINT: drain and exit 0 (--shutdown-timeout);\n"
        "  SIGHUP: reopen the log file and reload the config; SIGUSR1:\n"
        "  reopen the log file (-o), after rotation.\n",
        LOG_DEFAULT_LEVEL, LOG_LEVEL_MAX, LOG_BURST, PROXY_DEFAULT_CONF,
        PROXY_DEFAULT_STATS_PORT, PROXY_DEFAULT_STATS_ADDR,
        (unsigned long long)LIMITS_DEFAULT_ITEM_SIZE_MAX,
        (unsigned long long)LIMITS_DEFAULT_OUTPUT_MAX,
        (unsigned long long)LIMITS_DEFAULT_PENDING_OUTPUT_MAX,
        LIMITS_DEFAULT_MAX_CLIENTS,
        (unsigned long long)LIMITS_DEFAULT_PENDING_VALUES_MAX,
        LIMITS_DEFAULT_REQUESTS_MAX, LIMITS_DEFAULT_GET_KEYS_MAX,
        PROBE_DEFAULT_INTERVAL_MS, PROXY_DEFAULT_SHUTDOWN_TIMEOUT_MS);
}

/* -V: the version (the first line as nutcracker words it), the git
 * revision built, and the libraries: libuv and libyaml as loaded now,
 * llhttp as compiled in. */
static void
print_version(void)
{
    printf("This is memring-%s\n", MEMRING_VERSION);
    printf("git revision: %s\n", MEMRING_GIT_REV);
    printf("libuv %s, libyaml %s, llhttp %d.%d.%d\n", uv_version_string(),
           yaml_get_version_string(), LLHTTP_VERSION_MAJOR,
           LLHTTP_VERSION_MINOR, LLHTTP_VERSION_PATCH);
}

/*
 * The admin token from path: its first line, without surrounding spaces;
 * into out (ADMIN_TOKEN_MAX + 1 bytes). Refuses an unreadable file, an
 * empty token and one with spaces or control bytes (it goes in a header).
 */
static int
read_admin_token(const char *path, char *out)
{
    char line[ADMIN_TOKEN_MAX + 2];
    size_t len, i;
    FILE *f = fopen(path, "r");
    char *p;

    if (f == NULL) {
        fprintf(stderr, "memring: admin token file '%s': %s\n", path,
                strerror(errno));
        return -1;
    }
    if (fgets(line, sizeof(line), f) == NULL) {
        line[0] = '\0';
    }
    fclose(f);
    p = line + strspn(line, " \t");
    len = strcspn(p, "\r\n");
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
        len--;
    }
    for (i = 0; i < len; i++) {
        if ((unsigned char)p[i] <= ' ' || p[i] == 0x7f) {
            len = 0;
            break;
        }
    }
    if (len == 0 || len > ADMIN_TOKEN_MAX) {
        fprintf(stderr, "memring: admin token file '%s': expected a token "
                "of 1 to %d printable characters on its first line\n", path,
                ADMIN_TOKEN_MAX);
        return -1;
    }
    memcpy(out, p, len);
    out[len] = '\0';
    return 0;
}

/* A whole decimal number in [lo, hi], or -1. */
static long
parse_number(const char *s, long lo, long hi)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
        return -1;
    }
    return v;
}

/* The argument of option `name` as a number in [lo, hi]; -1 (said on
 * stderr) when it is not one. */
static long
option_number(const char *name, const char *arg, long lo, long hi)
{
    long v = parse_number(arg, lo, hi);

    if (v < 0) {
        fprintf(stderr, "memring: option %s requires a number from %ld to "
                "%ld, not '%s'\n", name, lo, hi, arg);
    }
    return v;
}

/*
 * The flags that take a number: the range each accepts and the option it
 * sets (where in struct proxy_options, and how wide). The number is in the
 * flag's unit; the field holds scale times it. Size 0: accepted, checked
 * and ignored, as nutcracker's -i and -m.
 */
struct number_flag {
    int        opt;
    const char *name;       /* as the error message spells it */
    long       min;
    long       max;
    size_t     off;
    size_t     size;        /* 0, 2, 4 or 8 bytes */
    uint64_t   scale;
};

#define FIELD(f) offsetof(struct proxy_options, f), \
    sizeof(((struct proxy_options *)NULL)->f)
#define IGNORED  0, 0

static const struct number_flag number_flags[] = {
    { 'v', "-v", 0, LOG_LEVEL_MAX, FIELD(log_level), 1 },
    { 's', "-s (0: off)", 0, 65535, FIELD(stats_port), 1 },
    { OPT_THREADS, "--threads", 1, 256, FIELD(threads), 1 },
    { OPT_ITEM_SIZE_MAX, "--item-size-max", 1, 1L << 30,
      FIELD(limits.item_size_max), 1 },
    { OPT_OUTPUT_MAX, "--client-output-max", 1, 1L << 30,
      FIELD(limits.output_max), 1 },
    { OPT_MAX_CLIENTS, "--max-clients", 1, 1000000,
      FIELD(limits.max_clients), 1 },
    { OPT_PENDING_MAX, "--pending-values-max", 1, 1L << 40,
      FIELD(limits.pending_values_max), 1 },
    { OPT_REQUESTS_MAX, "--client-requests-max", 1, 1L << 20,
      FIELD(limits.requests_max), 1 },
    { OPT_PENDING_OUTPUT_MAX, "--pending-output-max", 1, 1L << 40,
      FIELD(limits.pending_output_max), 1 },
    { OPT_GET_KEYS_MAX, "--get-keys-max", 1, 1L << 20,
      FIELD(limits.get_keys_max), 1 },
    { OPT_IDLE_TIMEOUT, "--client-idle-timeout", 0, 1L << 30,
      FIELD(limits.idle_timeout_ms), 1000 },
    { OPT_PROBE_INTERVAL, "--health-probe-interval", 0, 3600 * 1000,
      FIELD(probe_interval_ms), 1 },
    { OPT_SHUTDOWN_TIMEOUT, "--shutdown-timeout", 0, 24 * 3600 * 1000,
      FIELD(shutdown_timeout_ms), 1 },
    { 'i', "-i", 1, 1L << 30, IGNORED, 1 },
    { 'm', "-m", 1, 1L << 30, IGNORED, 1 },
};

#define NNUMBER_FLAGS (sizeof(number_flags) / sizeof(number_flags[0]))

static const struct number_flag *
number_flag(int opt)
{
    size_t i;

    for (i = 0; i < NNUMBER_FLAGS; i++) {
        if (number_flags[i].opt == opt) {
            return &number_flags[i];
        }
    }
    return NULL;
}

/* Sets f's field of o from arg. 0, or -1 (said on stderr). */
static int
set_number(struct proxy_options *o, const struct number_flag *f,
           const char *arg)
{
    long v = option_number(f->name, arg, f->min, f->max);
    char *field = (char *)o + f->off;
    uint64_t u64;
    uint32_t u32;
    uint16_t u16;

    if (v < 0) {
        return -1;
    }
    u64 = (uint64_t)v * f->scale;
    u32 = (uint32_t)u64;
    u16 = (uint16_t)u64;
    if (f->size == sizeof(u16)) {
        memcpy(field, &u16, sizeof(u16));
    } else if (f->size == sizeof(u32)) {
        memcpy(field, &u32, sizeof(u32));   /* log_level: an int >= 0 */
    } else if (f->size == sizeof(u64)) {
        memcpy(field, &u64, sizeof(u64));
    }
    return 0;
}

/* -t: 0 when the config at path loads, else 1 (said on stderr). */
static int
check_conf(const char *path)
{
    char err[CONF_ERR_LEN];
    struct conf *c = conf_load(path, err, sizeof(err));

    if (c == NULL) {
        fprintf(stderr, "%s\nmemring: configuration file '%s' syntax is "
                "invalid\n", err, path);
        return 1;
    }
    conf_destroy(&c);
    fprintf(stderr, "memring: configuration file '%s' syntax is ok\n",
            path);
    return 0;
}

/* getopt refused argv[optind - 1]: says why, with the usage. Returns 1. */
static int
bad_option(char **argv)
{
    if (optopt != 0 && strchr("vocsaipm", optopt) != NULL) {
        fprintf(stderr, "memring: option -%c requires an argument\n",
                optopt);
    } else {
        fprintf(stderr, "memring: invalid option -- '%s'\n",
                argv[optind - 1]);
    }
    usage(stderr);
    return 1;
}

int
main(int argc, char **argv)
{
    struct proxy_options o = {
        .conf_path = PROXY_DEFAULT_CONF,
        .stats_addr = PROXY_DEFAULT_STATS_ADDR,
        .stats_port = PROXY_DEFAULT_STATS_PORT,
        .log_level = LOG_DEFAULT_LEVEL,
    };
    const struct number_flag *nf;
    static char token[ADMIN_TOKEN_MAX + 1];
    bool test_conf = false, health = false;
    int opt, rc;

    if (argc > 1 && strcmp(argv[1], "ring") == 0) {
        return ring_tool_main(argc - 1, argv + 1);
    }
    limits_default(&o.limits);
    o.probe_interval_ms = PROBE_DEFAULT_INTERVAL_MS;
    o.shutdown_timeout_ms = PROXY_DEFAULT_SHUTDOWN_TIMEOUT_MS;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, short_options, long_options,
                              NULL)) != -1) {
        nf = number_flag(opt);
        if (nf != NULL) {
            if (set_number(&o, nf, optarg) != 0) {
                return 1;
            }
            continue;
        }
        switch (opt) {
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            print_version();
            return 0;
        case 'D':
            printf("This is memring-%s\n\n", MEMRING_VERSION);
            admin_stats_describe(stdout);
            return 0;
        case 't':
            test_conf = true;
            break;
        case 'd':
            o.daemonize = true;
            break;
        case 'o':
            o.log_file = optarg;
            break;
        case 'c':
            o.conf_path = optarg;
            break;
        case OPT_WATCH_CONFIG:
            o.watch_config = true;
            break;
        case OPT_CHECK_HEALTH:
            health = true;
            break;
        case OPT_LOG_FORMAT:
            rc = log_format_from_name(optarg);
            if (rc < 0) {
                fprintf(stderr, "memring: --log-format: expected text or "
                        "json, got '%s'\n", optarg);
                return 1;
            }
            log_set_format((enum log_format)rc);
            break;
        case OPT_ADMIN_TOKEN_FILE:
            if (read_admin_token(optarg, token) != 0) {
                return 1;
            }
            o.admin_token = token;
            break;
        case OPT_NO_ADMIN:
            o.stats_port = 0;
            break;
        case 'a':
            o.stats_addr = optarg;
            break;
        case 'p':
            o.pid_file = optarg;
            break;
        default:
            return bad_option(argv);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "memring: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 1;
    }
    if (test_conf) {
        return check_conf(o.conf_path);
    }
    if (health) {
        return check_health(o.stats_addr, o.stats_port);
    }
    if (log_setup(o.log_level, o.log_file) != 0) {
        fprintf(stderr, "memring: cannot open log file '%s'\n", o.log_file);
        return 1;
    }
    crash_report_install();
    rc = proxy_run(&o);
    log_teardown();
    return rc;
}
