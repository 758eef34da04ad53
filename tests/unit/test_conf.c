/*
 * conf: nutcracker.yml files load with twemproxy's values, defaults, server
 * names and server order; every refused file names FILE:LINE:COL and key.
 * Bad fixtures in tests/data/conf/bad carry their expected error and what
 * nutcracker 0.5.0 does with them.
 */
#include "memring/conf.h"

#include "memring/hash.h"
#include "memring/ring.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const char *
source_dir(void)
{
    const char *d = getenv("MEMRING_SOURCE_DIR");

    return d != NULL ? d : ".";
}

static void
src_path(char *buf, size_t len, const char *rel)
{
    snprintf(buf, len, "%s/%s", source_dir(), rel);
}

/* Parses text that must be valid; fails the test with the error if not. */
static struct conf *
parse_ok(const char *yaml)
{
    char err[CONF_ERR_LEN];
    struct conf *c = conf_parse(yaml, strlen(yaml), "t.yml", err,
                                sizeof(err));

    if (c == NULL) {
        fail_msg("unexpected error: %s", err);
    }
    return c;
}

/* Parses text that must be refused with exactly want. */
static void
parse_bad(const char *yaml, const char *want)
{
    char err[CONF_ERR_LEN];
    struct conf *c = conf_parse(yaml, strlen(yaml), "t.yml", err,
                                sizeof(err));

    if (c != NULL) {
        conf_destroy(&c);
        fail_msg("accepted, expected: %s\n%s", want, yaml);
    }
    assert_string_equal(err, want);
}

static struct conf *
load_ok(const char *rel)
{
    char path[1024], err[CONF_ERR_LEN];
    struct conf *c;

    src_path(path, sizeof(path), rel);
    c = conf_load(path, err, sizeof(err));
    if (c == NULL) {
        fail_msg("unexpected error: %s", err);
    }
    return c;
}

/* ------------------------------------------------------------------------ */
/* Files that load                                                           */
/* ------------------------------------------------------------------------ */

static void
test_sample_memring(void **state)
{
    struct conf *c = load_ok("conf/memring.yml");
    const struct conf_pool *p;
    char name[32];
    uint32_t i;

    (void)state;
    assert_int_equal(c->npools, 1);
    p = &c->pools[0];
    assert_string_equal(p->name, "alpha");
    assert_string_equal(p->listen.text, "127.0.0.1:22121");
    assert_string_equal(p->listen.host, "127.0.0.1");
    assert_int_equal(p->listen.port, 22121);
    assert_null(p->listen.path);
    assert_int_equal(p->hash, HASH_FNV1A_64);
    assert_int_equal(p->distribution, DIST_KETAMA);
    assert_int_equal(p->timeout, 400);
    assert_true(p->auto_eject_hosts);
    assert_int_equal(p->server_retry_timeout, 30000);
    assert_int_equal(p->server_failure_limit, 2);
    assert_int_equal(p->nservers, 3);
    for (i = 0; i < 3; i++) {
        snprintf(name, sizeof(name), "127.0.0.1:%u", 11311 + i);
        assert_string_equal(p->servers[i].name, name);
        assert_string_equal(p->servers[i].host, "127.0.0.1");
        assert_int_equal(p->servers[i].port, 11311 + i);
        assert_int_equal(p->servers[i].weight, 1);
        assert_false(p->servers[i].has_alias);
        assert_false(p->servers[i].is_unix);
    }
    conf_destroy(&c);
    assert_null(c);
}

/* twemproxy's own sample (memcache pools), in file order. */
static void
test_sample_nutcracker(void **state)
{
    struct conf *c = load_ok("conf/nutcracker.yml");
    const struct conf_pool *g, *d, *o;

    (void)state;
    assert_int_equal(c->npools, 3);
    g = &c->pools[0];
    d = &c->pools[1];
    o = &c->pools[2];
    assert_string_equal(g->name, "gamma");
    assert_string_equal(d->name, "delta");
    assert_string_equal(o->name, "omega");

    assert_int_equal(g->listen.port, 22123);
    assert_int_equal(g->timeout, 400);
    assert_int_equal(g->backlog, 1024);
    assert_true(g->preconnect);
    assert_true(g->auto_eject_hosts);
    assert_int_equal(g->server_retry_timeout, 2000);
    assert_int_equal(g->server_failure_limit, 3);
    assert_int_equal(g->nservers, 2);

    assert_int_equal(d->timeout, 100);
    assert_int_equal(d->nservers, 10);
    assert_string_equal(d->servers[0].name, "127.0.0.1:11214");
    assert_string_equal(d->servers[9].name, "127.0.0.1:11223");

    assert_null(o->listen.host);
    assert_string_equal(o->listen.path, "/tmp/gamma");
    assert_int_equal(o->listen.perm, CONF_DEFAULT_LISTEN_PERM);
    assert_int_equal(o->hash, HASH_HSIEH);
    assert_false(o->auto_eject_hosts);
    assert_int_equal(o->timeout, CONF_DEFAULT_TIMEOUT);
    assert_int_equal(o->servers[0].weight, 100000);
    assert_string_equal(o->servers[1].name, "127.0.0.1:11215");
    conf_destroy(&c);
}

/* The defaults of twemproxy's nc_conf.h for everything left out. */
static void
test_defaults(void **state)
{
    struct conf *c = parse_ok("p:\n"
                              "  listen: 0.0.0.0:22121\n"
                              "  servers:\n"
                              "   - 10.0.0.1:11211:1\n");
    const struct conf_pool *p = &c->pools[0];

    (void)state;
    assert_string_equal(c->path, "t.yml");
    assert_int_equal(p->line, 1);
    assert_int_equal(p->hash, HASH_FNV1A_64);
    assert_string_equal(p->hash_tag, "");
    assert_int_equal(p->distribution, DIST_KETAMA);
    assert_int_equal(p->timeout, -1);
    assert_int_equal(p->backlog, 512);
    assert_false(p->preconnect);
    assert_int_equal(p->client_connections, 0);
    assert_int_equal(p->server_connections, 1);
    assert_false(p->auto_eject_hosts);
    assert_int_equal(p->server_retry_timeout, 30000);
    assert_int_equal(p->server_failure_limit, 2);
    assert_false(p->tcpkeepalive);
    assert_int_equal(p->listen.perm, 0);
    assert_string_equal(p->servers[0].name, "10.0.0.1");
    assert_int_equal(p->servers[0].line, 4);
    conf_destroy(&c);
}

static void
test_all_keys(void **state)
{
    struct conf *c = load_ok("tests/data/conf/good/all_keys.yml");
    const struct conf_pool *p = &c->pools[0];

    (void)state;
    assert_string_equal(p->listen.path, "/tmp/memring-alpha.sock");
    assert_int_equal(p->listen.perm, 0660);
    assert_int_equal(p->hash, HASH_MURMUR);
    assert_string_equal(p->hash_tag, "{}");
    assert_int_equal(p->distribution, DIST_MODULA);
    assert_int_equal(p->timeout, 400);              /* "0400" is decimal */
    assert_int_equal(p->backlog, 1024);
    /* nutcracker discards client_connections; memring enforces it */
    assert_int_equal(p->client_connections, 100);
    assert_true(p->preconnect);
    assert_true(p->auto_eject_hosts);
    assert_int_equal(p->server_connections, 4);
    assert_int_equal(p->server_retry_timeout, 2000); /* quoted is fine */
    assert_int_equal(p->server_failure_limit, 0);
    assert_true(p->tcpkeepalive);
    assert_int_equal(p->nservers, 3);
    assert_string_equal(p->servers[0].name, "one");
    assert_string_equal(p->servers[1].name, "two");
    assert_string_equal(p->servers[2].name, "/var/run/memcached.sock:");
    assert_true(p->servers[2].is_unix);
    assert_string_equal(p->servers[2].host, "/var/run/memcached.sock");
    assert_int_equal(p->servers[2].port, 0);
    assert_int_equal(p->servers[2].weight, 5);
    conf_destroy(&c);
}

/* Names and order as nutcracker 0.5.0's /stats shows them (see fixture). */
static void
test_server_names_sorted(void **state)
{
    static const char *const want[] = {
        "b", "aa", "zz", "::1", "127.0.0.1", "/tmp/mc.sock:",
        "10.0.0.1:11213", "127.0.0.1:11212", "localhost:011212",
    };
    struct conf *c = load_ok("tests/data/conf/good/names.yml");
    const struct conf_pool *p = &c->pools[0];
    const struct conf_server *s;
    size_t i;

    (void)state;
    assert_int_equal(p->nservers, sizeof(want) / sizeof(want[0]));
    for (i = 0; i < p->nservers; i++) {
        assert_string_equal(p->servers[i].name, want[i]);
    }
    s = &p->servers[0];                         /* 127.0.0.1:11215:1 b */
    assert_true(s->has_alias);
    assert_string_equal(s->text, "127.0.0.1:11215:1 b");
    assert_string_equal(s->host, "127.0.0.1");
    assert_int_equal(s->port, 11215);
    assert_int_equal(s->line, 14);
    s = &p->servers[3];                         /* ::1:11211:1 */
    assert_string_equal(s->host, "::1");
    assert_int_equal(s->port, 11211);
    assert_false(s->has_alias);
    s = &p->servers[8];                         /* localhost:011212:1 */
    assert_string_equal(s->host, "localhost");
    assert_int_equal(s->port, 11212);
    conf_destroy(&c);
}

static void
test_listen_forms(void **state)
{
    struct conf *c = parse_ok("a:\n  listen: ::1:22121\n"
                              "  servers: [\"[::1]:11212:1\"]\n"
                              "b:\n  listen: \"[::1]:22122\"\n"
                              "  servers: [\"fe80::1%lo:11211:1\"]\n"
                              "c:\n  listen: localhost:022123\n"
                              "  servers: [localhost:11211:1]\n"
                              "d:\n  listen: /tmp/d.sock 666\n"
                              "  servers: [localhost:11211:1]\n");

    (void)state;
    assert_int_equal(c->npools, 4);
    assert_string_equal(c->pools[0].listen.host, "::1");
    assert_int_equal(c->pools[0].listen.port, 22121);
    /* brackets are dropped from the address, kept in the ring name */
    assert_string_equal(c->pools[0].servers[0].host, "::1");
    assert_string_equal(c->pools[0].servers[0].name, "[::1]:11212");
    assert_string_equal(c->pools[1].listen.host, "::1");
    assert_int_equal(c->pools[1].listen.port, 22122);
    assert_string_equal(c->pools[1].servers[0].host, "fe80::1%lo");
    assert_string_equal(c->pools[1].servers[0].name, "fe80::1%lo");
    assert_string_equal(c->pools[2].listen.host, "localhost");
    assert_int_equal(c->pools[2].listen.port, 22123);
    assert_string_equal(c->pools[2].listen.text, "localhost:022123");
    assert_string_equal(c->pools[3].listen.path, "/tmp/d.sock");
    assert_int_equal(c->pools[3].listen.perm, 0666);
    conf_destroy(&c);
}

/* A minimal valid pool with one more "key: value" line. */
static struct conf *
parse_with(const char *key, const char *value)
{
    char yaml[256];

    snprintf(yaml, sizeof(yaml), "p:\n  listen: 127.0.0.1:1\n  %s: %s\n"
             "  servers:\n   - h:2:1\n", key, value);
    return parse_ok(yaml);
}

static void
test_hash_and_distribution_names(void **state)
{
    struct conf *c;
    int i;

    (void)state;
    for (i = 0; i < HASH_COUNT; i++) {
        c = parse_with("hash", hash_name((enum hash_type)i));
        assert_int_equal(c->pools[0].hash, i);
        conf_destroy(&c);
    }
    for (i = 0; i < DIST_COUNT; i++) {
        c = parse_with("distribution", dist_name((enum dist_type)i));
        assert_int_equal(c->pools[0].distribution, i);
        conf_destroy(&c);
    }
}

/* Same address under two names is allowed (nutcracker allows it too). */
static void
test_same_address_two_names(void **state)
{
    struct conf *c = parse_ok("p:\n  listen: 127.0.0.1:1\n  servers:\n"
                              "   - 127.0.0.1:11211:1 x\n"
                              "   - 127.0.0.1:11211:1 y\n");

    (void)state;
    assert_int_equal(c->pools[0].nservers, 2);
    conf_destroy(&c);
}

/* Standard YAML nutcracker refuses but that changes nothing: accepted. */
static void
test_yaml_extras(void **state)
{
    struct conf *c = parse_ok("---\n"
                              "a:\n  listen: 127.0.0.1:1\n"
                              "  servers: &s\n   - h:2:1\n   - h:3:1\n"
                              "b: {listen: 127.0.0.1:2, servers: *s}\n"
                              "...\n");

    (void)state;
    assert_int_equal(c->npools, 2);
    assert_int_equal(c->pools[1].nservers, 2);
    assert_string_equal(c->pools[1].servers[1].name, "h:3");
    conf_destroy(&c);
}

/* ------------------------------------------------------------------------ */
/* Files that are refused                                                    */
/* ------------------------------------------------------------------------ */

/*
 * Every .yml file in tests/data/conf/bad holds a line "# error: conf: FILE:..."
 * with its exact message, FILE standing for the path it is loaded from.
 */
static void
test_bad_fixtures(void **state)
{
    char dir[1024], path[1024 + 260], line[CONF_ERR_LEN];
    char want[CONF_ERR_LEN + sizeof(path)];
    char err[CONF_ERR_LEN];
    struct dirent *de;
    struct conf *c;
    unsigned int n = 0;
    DIR *d;

    (void)state;
    src_path(dir, sizeof(dir), "tests/data/conf/bad");
    d = opendir(dir);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        char *file, *nl;
        FILE *f;

        if (len < 5 || strcmp(de->d_name + len - 4, ".yml") != 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        f = fopen(path, "r");
        assert_non_null(f);
        want[0] = '\0';
        while (fgets(line, sizeof(line), f) != NULL) {
            if (strncmp(line, "# error: conf: FILE", 19) == 0) {
                nl = strchr(line, '\n');
                if (nl != NULL) {
                    *nl = '\0';
                }
                snprintf(want, sizeof(want), "conf: %s%s", path, line + 19);
                break;
            }
        }
        fclose(f);
        if (want[0] == '\0') {
            fail_msg("%s: no \"# error: conf: FILE...\" line", path);
        }
        c = conf_load(path, err, sizeof(err));
        if (c != NULL) {
            conf_destroy(&c);
            fail_msg("%s: accepted", path);
        }
        file = strrchr(path, '/') + 1;
        if (strcmp(err, want) != 0) {
            fail_msg("%s:\n  got  %s\n  want %s", file, err, want);
        }
        n++;
    }
    closedir(d);
    assert_true(n >= 40);
}

/* Cases easier to read inline, with the full message. */
static void
test_bad_inline(void **state)
{
    (void)state;
    parse_bad("", "conf: t.yml: empty configuration: expected a mapping "
              "of pool names to pools");
    parse_bad("{}", "conf: t.yml:1:1: no pools");
    parse_bad("? [a]\n: b\n", "conf: t.yml:1:3: expected a pool name, "
              "got a sequence");
    parse_bad("'': {}\n", "conf: t.yml:1:1: expected a pool name, got an "
              "empty or binary scalar");
    parse_bad("p:\n  listen: 127.0.0.1:1\n  servers:\n   - [h:1:1]\n",
              "conf: t.yml:4:6: servers: expected \"host:port:weight "
              "[name]\" or \"/path:weight [name]\" item, got a sequence");
    parse_bad("p:\n  listen: [127.0.0.1:1]\n  servers: [h:1:1]\n",
              "conf: t.yml:2:11: listen: expected a scalar, got a sequence");
    parse_bad("p:\n  listen: \"a\\0b:1\"\n  servers: [h:1:1]\n",
              "conf: t.yml:2:11: listen: contains a NUL byte");
    parse_bad("p:\n  listen: x y:1\n  servers: [h:1:1]\n",
              "conf: t.yml:2:11: listen: invalid host: blank or stray "
              "bracket, got \"x y:1\"");
    parse_bad("p:\n  listen: \"[1.2.3.4]:1\"\n  servers: [h:1:1]\n",
              "conf: t.yml:2:11: listen: only IPv6 addresses go in "
              "brackets, got \"[1.2.3.4]:1\"");
    parse_bad("p:\n  listen: a:b:1\n  servers: [h:1:1]\n",
              "conf: t.yml:2:11: listen: invalid host: one with ':' must be "
              "an IPv6 address, got \"a:b:1\"");
    parse_bad("p:\n  listen: /tmp/x.sock 07777\n  servers: [h:1:1]\n",
              "conf: t.yml:2:11: listen: expected \"/path mode\" with an "
              "octal mode up to 0777, got \"/tmp/x.sock 07777\"");
    parse_bad("p:\n  listen: 127.0.0.1:1\n  servers: [h:1:2147483648]\n",
              "conf: t.yml:3:13: servers: weight must be from 1 to "
              "2147483647, got \"h:1:2147483648\"");
    parse_bad("p:\n  listen: 127.0.0.1:1\n  timeout: 2147483648\n"
              "  servers: [h:1:1]\n",
              "conf: t.yml:3:12: timeout: expected an integer from 0 to "
              "2147483647, got \"2147483648\"");
    parse_bad("p:\n  listen: 127.0.0.1:1\n  servers: [\"[::1]:1:1\", "
              "\"[::1]:1:2\"]\n",
              "conf: t.yml:3:26: servers: duplicate server name \"[::1]:1\" "
              "(also at line 3)");
    parse_bad("p:\n  listen: 127.0.0.1:1\n  servers: [/x:1, /x:2]\n",
              "conf: t.yml:3:19: servers: duplicate server name \"/x:\" "
              "(also at line 3)");
    parse_bad("p:\n  listen: 127.0.0.1:1\n  Listen: 127.0.0.1:1\n",
              "conf: t.yml:3:3: Listen: unknown key in pool \"p\"");
    /* the first error in the file wins */
    parse_bad("p:\n  timeout: x\n  bogus: 1\n",
              "conf: t.yml:2:12: timeout: expected a non-negative integer, "
              "got \"x\"");
    parse_bad("a:\n  listen: 127.0.0.1:1\n  servers: [h:1:1]\n"
              "b:\n  listen: /s\n  servers: [h:1:1]\n"
              "c:\n  listen: /s 0600\n  servers: [h:1:1]\n",
              "conf: t.yml:8:11: listen: same address as pool \"b\" "
              "(line 4)");
    parse_bad("a: &x\n  listen: 127.0.0.1:1\n  servers: [h:1:1]\nb: *x\n",
              "conf: t.yml:2:11: listen: same address as pool \"a\" "
              "(line 1)");
    parse_bad("a:\n  listen: 127.0.0.1:1\n  servers: [h:1:1]\n---\nb: 1\n",
              "conf: t.yml:4:1: expected one YAML document, found another");
    /* libyaml's reader knows a byte offset only */
    parse_bad("p:\n  listen: \xff\n",
              "conf: t.yml: yaml: invalid leading UTF-8 octet at byte 13");
    parse_bad("a:\n  listen: 127.0.0.1:1\n  servers: [h:1:1]\n---\n- [\n",
              "conf: t.yml:6:1: yaml: did not find expected node content "
              "(while parsing a flow node at line 6)");
}

/* sun_path holds 107 bytes and a NUL; nutcracker refuses longer too. */
static void
test_unix_path_length(void **state)
{
    char path[120], yaml[300], want[CONF_ERR_LEN];
    struct conf *c;

    (void)state;
    memset(path, 'a', sizeof(path));
    path[0] = '/';
    path[107] = '\0';
    snprintf(yaml, sizeof(yaml), "p:\n  listen: %s\n  servers: [%s:1]\n",
             path, path);
    c = parse_ok(yaml);
    assert_string_equal(c->pools[0].listen.path, path);
    assert_string_equal(c->pools[0].servers[0].host, path);
    conf_destroy(&c);

    path[107] = 'a';
    path[108] = '\0';
    snprintf(yaml, sizeof(yaml), "p:\n  listen: %s\n  servers: [h:1:1]\n",
             path);
    snprintf(want, sizeof(want), "conf: t.yml:2:11: listen: unix socket "
             "path is too long, got \"%s\"", path);
    parse_bad(yaml, want);
    snprintf(yaml, sizeof(yaml), "p:\n  listen: /s\n  servers: [%s:1]\n",
             path);
    snprintf(want, sizeof(want), "conf: t.yml:3:13: servers: unix socket "
             "path is too long, got \"%s:1\"", path);
    parse_bad(yaml, want);
}

static void
test_load_errors(void **state)
{
    char err[CONF_ERR_LEN];

    (void)state;
    assert_null(conf_load("/nonexistent/memring.yml", err, sizeof(err)));
    assert_string_equal(err, "conf: /nonexistent/memring.yml: cannot open: "
                        "No such file or directory");
    /* endless input stops at the size cap */
    assert_null(conf_load("/dev/zero", err, sizeof(err)));
    assert_string_equal(err, "conf: /dev/zero: larger than 16777216 bytes");
    /* a directory opens but cannot be read */
    assert_null(conf_load("/", err, sizeof(err)));
    assert_string_equal(err, "conf: /: cannot read: Is a directory");
}

static void
test_err_buffer(void **state)
{
    static const char bad[] = "p:\n  timeout: x\n";
    char err[16];
    struct conf *c = NULL;

    (void)state;
    /* no buffer at all */
    assert_null(conf_parse(bad, strlen(bad), "t.yml", NULL, 0));
    assert_null(conf_load("/nonexistent", NULL, 0));
    /* a short one is truncated, still terminated */
    memset(err, 'x', sizeof(err));
    assert_null(conf_parse(bad, strlen(bad), "t.yml", err, sizeof(err)));
    assert_string_equal(err, "conf: t.yml:2:1");
    conf_destroy(&c);
    conf_destroy(NULL);
}

/* The input need not be NUL-terminated: len bounds every read (ASan). */
static void
test_len_bounds_input(void **state)
{
    static const char yaml[] = "p:\n  listen: 127.0.0.1:1\n"
                               "  servers: [h:1:1]";
    char err[CONF_ERR_LEN];
    struct conf *c;
    char *buf;

    (void)state;
    buf = malloc(sizeof(yaml) - 1);
    assert_non_null(buf);
    memcpy(buf, yaml, sizeof(yaml) - 1);
    c = conf_parse(buf, sizeof(yaml) - 1, NULL, err, sizeof(err));
    assert_non_null(c);
    assert_string_equal(c->path, "(memory)");
    conf_destroy(&c);
    /* cut inside the flow sequence: a YAML error, no read past the end */
    assert_null(conf_parse(buf, sizeof(yaml) - 2, NULL, err, sizeof(err)));
    assert_string_equal(err, "conf: (memory):4:1: yaml: did not find "
                        "expected ',' or ']' (while parsing a flow "
                        "sequence at line 3)");
    free(buf);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_memring),
        cmocka_unit_test(test_sample_nutcracker),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_all_keys),
        cmocka_unit_test(test_server_names_sorted),
        cmocka_unit_test(test_listen_forms),
        cmocka_unit_test(test_hash_and_distribution_names),
        cmocka_unit_test(test_same_address_two_names),
        cmocka_unit_test(test_yaml_extras),
        cmocka_unit_test(test_bad_fixtures),
        cmocka_unit_test(test_bad_inline),
        cmocka_unit_test(test_unix_path_length),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_err_buffer),
        cmocka_unit_test(test_len_bounds_input),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
