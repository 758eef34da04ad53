/*
 * mc_parse tests: what memcached 1.6.18 answers to malformed requests,
 * replayed through mc_parse_req(); resumability at every byte boundary;
 * the bounds; the reply parser.
 *
 * Recorded from /usr/bin/memcached 1.6.18 (-t 1 -m 64, item max 1 MB), each
 * input on a fresh TCP connection. "drop": what it consumed for the bad
 * request, "line" (the data block, if any, is then read as a command) or
 * "+data" (line and vlen + 2 bytes). "close": it closed the connection.
 *
 * input                              reply                          drop  close
 * -----------------------------------------------------------------------------
 * foo | \r\n | \n | \0\r\n | x       ERROR                          line
 * VERSION | Get k (case-sensitive)   ERROR                          line
 * GET / HTTP/1.1 | FOO bar HTTP/1.0  (none)                         -     close
 * gxx HTTP/1.0 | x HTTP/1.1          ERROR: only names outside its g s a c i
 *                                    d t and 2-letter m branches reach the
 *                                    HTTP test
 * version\n                          VERSION 1.6.18: a bare \n ends any line
 * version extra | quit now           arguments ignored
 * get | "get "                       ERROR                          line
 * get a\0b | set a 0 0 1\0 junk      the line ends at the NUL (strlen)
 * set k 0 0 (any storage arity)      ERROR, then ERROR for "v"      line
 * set k 0 0 1 noreply x              ERROR, ERROR                   line
 * set k 0 0 1 foo | 1 NOREPLY        STORED: 6th token ignored unless "noreply"
 * set k x 0 1 | 0 x 1 | 0 0 x |      CLIENT_ERROR bad command line  line
 *   0 0 1x | 0 0 -1 | -1 0 1           format, then ERROR for "v"
 * same with noreply last             (none), then ERROR for "v"     line
 * set k 0 0 noreply                  (none): noreply is the last token
 * set k 0 0 2147483646 (> INT_MAX-2) CLIENT_ERROR bad command line format
 * set k 0 0 2000000 (> item max)     SERVER_ERROR object too large  +data
 *                                    for cache (noreply: none) [1]
 * set k 0 0 3\r\nabcde\r\n           CLIENT_ERROR bad data chunk,   +data
 *                                    then ERROR for the last \r\n
 * set k 0 0 1\r\nv\nversion          CLIENT_ERROR bad data chunk,   +data
 *                                    then ERROR for "ersion"
 * set <251-byte key> 0 0 1           CLIENT_ERROR bad command line  line
 *                                    format, then ERROR
 * set k\x01x | k\x7fx | k\tx ...     STORED, and get returns it [2]
 * numbers [3]: +1, \t1, 1\t, 1\tx read as 1; flags 4294967296 -> 0,
 *   -0 -> 0, -18446744073709551615 -> 1, 18446744073709551616 -> error;
 *   exptime 2147483648 -> INT32_MIN; bytes 4294967297 -> 1, 2147483648 error
 * cas k 0 0 1 (no unique)            ERROR, ERROR                   line
 * cas k 0 0 1 x | -1                 CLIENT_ERROR bad command line  line
 *                                    format
 * gat                                ERROR                          line
 * gat 10 | "gat 10 "                 END (no key, nothing to fetch) line
 * gat x k                            CLIENT_ERROR invalid exptime argument
 * get a <251 bytes>                  CLIENT_ERROR bad command line format
 *                                    (and no VALUE for a)
 * delete                             ERROR
 * delete k 5 | k noreply 0 | k 0 0   CLIENT_ERROR bad command line format.
 *                                      Usage: delete <key> [noreply]
 * delete k 5 noreply                 (none)
 * delete k 0 | k 0 noreply           accepted
 * delete k 0 noreply x               ERROR
 * delete <251> | delete <251> x      CLIENT_ERROR bad command line format |
 *                                    the Usage line (arity is checked first)
 * incr | incr k | incr k 1 2 3       ERROR
 * incr k x | -1 | decr k 2^64        CLIENT_ERROR invalid numeric delta
 *                                    argument (noreply: none)
 * incr k 1 2 | touch k 10 x          accepted: the extra token is ignored
 * touch | touch k                    ERROR
 * touch k x                          CLIENT_ERROR invalid exptime argument
 * verbosity | verbosity 1 2 3        ERROR
 * verbosity x | -1                   CLIENT_ERROR bad command line format
 * verbosity noreply                  (none); verbosity 1 2: OK
 * flush_all x | noreply 10           CLIENT_ERROR invalid exptime argument
 * flush_all -1 | 10 20               OK; flush_all 10 20 30: ERROR
 * stats foo                          ERROR (memring passes args on)
 * mn | mg ...                        meta commands: parsed as far as memcached
 *                                    checks them before their flags, the
 *                                    rest passed on (test_req_meta)
 * > 2048 bytes, no \n, not "get " /  (none)                         -     close
 *   "gets " after <= 100 spaces        (memring: past 16 KiB, also for
 *                                      "gat ...", "get\t...", 101 spaces +
 *                                      "get ") [4]
 * long get/gets line                 no bound: buffers until the \n
 * more than 23 tokens                only 23 are kept: "foo" + 21 "x" +
 *                                    HTTP/1.1 closes, + 22 "x" is ERROR
 *
 * memring's choices where it cannot or should not follow:
 * [1] values up to MC_VALUE_MAX (1 GB) are PARSE_OK and go to the server,
 *     which answers for its own item size. Beyond that: the same reply, then
 *     close instead of swallowing a gigabyte.
 * [2] (none: keys are memcached's, any bytes but space and \n.)
 * [3] memcached's strtol/strtoul quirks on a 64-bit build are reproduced,
 *     so that the proxy reads a line as the server behind it will.
 * [4] memcached decides on the bytes buffered, so a 3000-byte set line read
 *     at once gets CLIENT_ERROR, but closes when split. memring decides on
 *     the line (its bytes before \n): a line whose \n is in its first
 *     MC_TEXT_LINE_MAX bytes (memcached's read buffer) gets memcached's
 *     answer to it read at once, whatever the split; a longer one closes
 *     silently. get/gets/gat/gats lines may be of any length; more keys
 *     than the caller's cap: "CLIENT_ERROR line too long" and close.
 */
#include "memring/mc_parse.h"

#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#define KEYS_CAP 64
#define USED_LINE ((size_t)-1)   /* up to and with the first \n */
#define USED_ALL  ((size_t)-2)   /* the whole input */

static struct mc_span keys[KEYS_CAP];

/* ---------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------- */

/*
 * Feeds in to the parser as memring's client loop does and writes what the
 * client would see: error lines as memcached sends them, "<cmd>" for a
 * request passed to a server ("<set noreply>"), "<close>" and "<again>" for
 * bytes left waiting.
 */
static void
replay_keys(const char *in, size_t len, char *out, size_t cap,
            size_t key_max)
{
    size_t off = 0, n = 0;

    out[0] = '\0';
    while (off < len) {
        struct mc_scan scan = { 0 };
        struct mc_req req;
        enum parse_status st;

        st = mc_parse_req_scan(in + off, len - off, &req, keys, KEYS_CAP,
                               key_max, &scan);
        if (st == PARSE_AGAIN) {
            n += (size_t)snprintf(out + n, cap - n, "<again>");
            break;
        }
        if (st == PARSE_OK) {
            n += (size_t)snprintf(out + n, cap - n, "<%s%s>",
                                  mc_cmd_name(req.cmd),
                                  req.noreply ? " noreply" : "");
            assert_true(req.total_len > 0 && req.total_len <= len - off);
            off += req.total_len;
            continue;
        }
        assert_int_equal(st, PARSE_ERROR);
        assert_true(req.skip <= len - off);
        if (req.error != NULL) {
            n += (size_t)snprintf(out + n, cap - n, "%s\r\n", req.error);
        }
        if (req.close) {
            n += (size_t)snprintf(out + n, cap - n, "<close>");
            break;
        }
        assert_true(req.skip > 0);
        off += req.skip;
        off += req.swallow < len - off ? (size_t)req.swallow : len - off;
    }
    assert_true(n < cap);
}

/* replay() with keys up to MC_KEY_MAX bytes. */
static void
replay(const char *in, size_t len, char *out, size_t cap)
{
    replay_keys(in, len, out, cap, MC_KEY_MAX);
}

/* Bytes the first request used: total_len if OK, skip if not. */
static size_t
first_used(const char *in, size_t len)
{
    struct mc_req req;
    enum parse_status st = mc_parse_req(in, len, &req, keys, KEYS_CAP);

    return st == PARSE_OK ? req.total_len : st == PARSE_ERROR ? req.skip : 0;
}

struct convo {
    const char *in;
    size_t     len;
    const char *want;   /* replay() output */
    size_t     used;    /* first request: bytes used, or USED_* */
};

#define C(in, want, used) { in, sizeof(in) - 1, want, used }

static void
check_convos(const struct convo *c, size_t n)
{
    char out[4096];
    size_t i, used;

    for (i = 0; i < n; i++) {
        replay(c[i].in, c[i].len, out, sizeof(out));
        if (strcmp(out, c[i].want) != 0) {
            fail_msg("case %zu \"%.60s\": got \"%s\", want \"%s\"", i,
                     c[i].in, out, c[i].want);
        }
        used = c[i].used;
        if (used == USED_LINE) {
            used = (size_t)((const char *)memchr(c[i].in, '\n', c[i].len) -
                            c[i].in) + 1;
        } else if (used == USED_ALL) {
            used = c[i].len;
        }
        if (first_used(c[i].in, c[i].len) != used) {
            fail_msg("case %zu \"%.60s\": used %zu, want %zu", i, c[i].in,
                     first_used(c[i].in, c[i].len), used);
        }
    }
}

/* A malloc'd buffer: prefix, n copies of fill, suffix. *len gets its size. */
static char *
build(const char *prefix, const char *fill, size_t n, const char *suffix,
      size_t *len)
{
    size_t pl = strlen(prefix), fl = strlen(fill), sl = strlen(suffix);
    char *b = malloc(pl + fl * n + sl + 1);
    size_t i;

    assert_non_null(b);
    memcpy(b, prefix, pl);
    for (i = 0; i < n; i++) {
        memcpy(b + pl + i * fl, fill, fl);
    }
    memcpy(b + pl + fl * n, suffix, sl + 1);
    *len = pl + fl * n + sl;
    return b;
}

static enum parse_status
parse(const char *in, size_t len, struct mc_req *req)
{
    return mc_parse_req(in, len, req, keys, KEYS_CAP);
}

#define PARSE_STR(s, req) parse(s, sizeof(s) - 1, req)

/* ---------------------------------------------------------------------
 * memcached's answers, case by case (the table above)
 * ------------------------------------------------------------------- */

static void
test_req_unknown_and_empty(void **state)
{
    static const struct convo c[] = {
        C("foo\r\n", "ERROR\r\n", USED_LINE),
        C("\r\n", "ERROR\r\n", USED_LINE),
        C("\n", "ERROR\r\n", USED_LINE),
        C("\0\r\n", "ERROR\r\n", USED_LINE),
        C("x\r\n", "ERROR\r\n", USED_LINE),
        C("   \r\n", "ERROR\r\n", USED_LINE),
        C("VERSION\r\n", "ERROR\r\n", USED_LINE),
        C("Get k\r\n", "ERROR\r\n", USED_LINE),
        C("GET / HTTP/1.1\r\nversion\r\n", "<close>", USED_LINE),
        C("FOO bar HTTP/1.0\r\n", "<close>", USED_ALL),
        C("foo HTTP/1.1 \r\n", "<close>", USED_ALL),
        C("GE HTTP/\r\n", "<close>", USED_ALL),
        C("misbehave HTTP/1.1\r\n", "<close>", USED_ALL),
        C("replacex HTTP/1.1\r\n", "<close>", USED_ALL),
        C("gxx HTTP/1.0\r\n", "ERROR\r\n", USED_LINE),
        C("x HTTP/1.1\r\n", "ERROR\r\n", USED_LINE),
        C("watch HTTP/1.1\r\n", "ERROR\r\n", USED_LINE),
        C("lru_crawler HTTP/1.1\r\n", "ERROR\r\n", USED_LINE),
        C("version\rx\r\n", "ERROR\r\n", USED_LINE),
        /* memcached serves these; memring does not */
        C("mx k\r\n", "ERROR\r\n", USED_LINE),
        C("mg\r\n", "ERROR\r\n", USED_LINE),
        C("shutdown\r\n", "ERROR\r\n", USED_LINE),
        C("bget k\r\n", "ERROR\r\n", USED_LINE),
        /* only 23 tokens are kept: the 23rd is the last one looked at */
        C("foo x x x x x x x x x x x x x x x x x x x x x HTTP/1.1\r\n",
          "<close>", USED_ALL),
        C("foo x x x x x x x x x x x x x x x x x x x x x HTTP/1.1 y\r\n",
          "<close>", USED_ALL),
        C("foo x x x x x x x x x x x x x x x x x x x x x x HTTP/1.1\r\n",
          "ERROR\r\n", USED_LINE),
    };

    (void)state;
    check_convos(c, sizeof(c) / sizeof(c[0]));
}

static void
test_req_line_endings(void **state)
{
    static const struct convo c[] = {
        C("version\n", "<version>", USED_ALL),
        C("version\r\n", "<version>", USED_ALL),
        C("version extra args\r\n", "<version>", USED_ALL),
        C("quit\r\nversion\r\n", "<quit><version>", USED_LINE),
        C("quit now\r\n", "<quit>", USED_ALL),
        C("set k 0 0 1\nv\r\nget k\n", "<set><get>", 15),
        C("  set  k  0  0  1 \r\nv\r\n", "<set>", USED_ALL),
        C("set k 0 0 1\r\r\nv\r\n", "<set>", USED_ALL),
        /* the \r of \r\n is dropped once; a second one stays in the key */
        C("get a\r\r\n", "<get>", USED_ALL),
        /* memcached reads the line with strlen(): it ends at a NUL */
        C("get a\0b\r\n", "<get>", USED_ALL),
        C("set a 0 0 1\0 junk\r\nv\r\n", "<set>", USED_ALL),
        C("stats\0 junk\r\n", "<stats>", USED_ALL),
        /* a data block needs its \r\n; vlen + 2 bytes are read whatever */
        C("set k 0 0 1\r\nv\nversion\r\n",
          "CLIENT_ERROR bad data chunk\r\nERROR\r\n", 16),
        C("set k 0 0 1\r\nv", "<again>", 0),
        C("set k 0 0 1\r\nv\r", "<again>", 0),
        C("get k", "<again>", 0),
    };

    (void)state;
    check_convos(c, sizeof(c) / sizeof(c[0]));
}

static void
test_req_storage_errors(void **state)
{
    static const struct convo c[] = {
        C("set k 0 0\r\nv\r\n", "ERROR\r\nERROR\r\n", USED_LINE),
        C("add k 0 0\r\nv\r\n", "ERROR\r\nERROR\r\n", USED_LINE),
        C("replace k 0 0\r\nv\r\n", "ERROR\r\nERROR\r\n", USED_LINE),
        C("append k 0 0\r\nv\r\n", "ERROR\r\nERROR\r\n", USED_LINE),
        C("prepend k 0 0\r\nv\r\n", "ERROR\r\nERROR\r\n", USED_LINE),
        C("set\r\n", "ERROR\r\n", USED_LINE),
        C("set k 0 0 1 noreply x\r\nv\r\n", "ERROR\r\nERROR\r\n", USED_LINE),
        C("set k 0 0 1 x x x x x x x x x x x x x x x x noreply\r\nv\r\n",
          "ERROR\r\nERROR\r\n", USED_LINE),
        C("set k 0 0 1 foo\r\nv\r\n", "<set>", USED_ALL),
        C("set k 0 0 1 NOREPLY\r\nv\r\n", "<set>", USED_ALL),
        C("set k 0 0 1 noreply\r\nv\r\n", "<set noreply>", USED_ALL),
        C("set k 0 0 1 noreply \r\nv\r\n", "<set noreply>", USED_ALL),
        C("set k x 0 1\r\nv\r\n",
          "CLIENT_ERROR bad command line format\r\nERROR\r\n", USED_LINE),
        C("set k 0 x 1\r\nv\r\n",
          "CLIENT_ERROR bad command line format\r\nERROR\r\n", USED_LINE),
        C("set k 0 0 x\r\nv\r\n",
          "CLIENT_ERROR bad command line format\r\nERROR\r\n", USED_LINE),
        C("set k 0 0 1x\r\nv\r\n",
          "CLIENT_ERROR bad command line format\r\nERROR\r\n", USED_LINE),
        C("set k 0 0 -1\r\nv\r\n",
          "CLIENT_ERROR bad command line format\r\nERROR\r\n", USED_LINE),
        C("set k -1 0 1\r\nv\r\n",
          "CLIENT_ERROR bad command line format\r\nERROR\r\n", USED_LINE),
        C("set k 18446744073709551616 0 1\r\nv\r\n",
          "CLIENT_ERROR bad command line format\r\nERROR\r\n", USED_LINE),
        C("set k 0 0 2147483648\r\nv\r\n",
          "CLIENT_ERROR bad command line format\r\nERROR\r\n", USED_LINE),
        C("set k 0 0 2147483646\r\nv\r\n",
          "CLIENT_ERROR bad command line format\r\nERROR\r\n", USED_LINE),
        C("set k 0 0 x noreply\r\nv\r\n", "ERROR\r\n", USED_LINE),
        C("set k 0 0 noreply\r\nv\r\n", "ERROR\r\n", USED_LINE),
        C("set k 0 0 3\r\nabcde\r\n",
          "CLIENT_ERROR bad data chunk\r\nERROR\r\n", 18),
        C("set k 0 0 3\r\nabcde\r\nversion\r\n",
          "CLIENT_ERROR bad data chunk\r\nERROR\r\n<version>", 18),
        C("set k 0 0 1 noreply\r\nvXX\r\nversion\r\n", "ERROR\r\n<version>",
          24),
        C("cas k 0 0 1\r\nv\r\n", "ERROR\r\nERROR\r\n", USED_LINE),
        C("cas k 0 0 1 x\r\nv\r\n",
          "CLIENT_ERROR bad command line format\r\nERROR\r\n", USED_LINE),
        C("cas k 0 0 1 -1\r\nv\r\n",
          "CLIENT_ERROR bad command line format\r\nERROR\r\n", USED_LINE),
        C("cas k 0 0 1 99 noreply\r\nv\r\nversion\r\n",
          "<cas noreply><version>", 27),
        C("cas k 0 0 1 99 noreply x\r\nv\r\n", "ERROR\r\nERROR\r\n",
          USED_LINE),
        C("cas k 0 0 1 99\r\nv\r\n", "<cas>", USED_ALL),
        /* control and high bytes in a key: stored, as by memcached */
        C("set k\x01x 0 0 1\r\nv\r\n", "<set>", USED_ALL),
        C("set k\x7fx 0 0 1\r\nv\r\n", "<set>", USED_ALL),
        C("set \x10k\xff 0 0 1 noreply\r\nv\r\n", "<set noreply>",
          USED_ALL),
    };

    (void)state;
    check_convos(c, sizeof(c) / sizeof(c[0]));
}

static void
test_req_retrieval_errors(void **state)
{
    static const struct convo c[] = {
        C("get\r\n", "ERROR\r\n", USED_LINE),
        C("get \r\n", "ERROR\r\n", USED_LINE),
        C("gets\r\n", "ERROR\r\n", USED_LINE),
        C("gat\r\n", "ERROR\r\n", USED_LINE),
        C("gat 10\r\n", "END\r\n", USED_LINE),
        C("gat 10 \r\n", "END\r\n", USED_LINE),
        C("gats 10\r\n", "END\r\n", USED_LINE),
        C("gat x k\r\n", "CLIENT_ERROR invalid exptime argument\r\n",
          USED_LINE),
        C("gat 10 k\r\n", "<gat>", USED_ALL),
        C("gat -1 k\r\n", "<gat>", USED_ALL),
        C("gats 10 k\r\n", "<gats>", USED_ALL),
        C("get k noreply\r\n", "<get>", USED_ALL),
        C("get a\x01" "b\r\n", "<get>", USED_ALL),
        C("get a b\x7f\xff\r\n", "<get>", USED_ALL),
        C("get a\rb\r\n", "<get>", USED_ALL),
        C("get\tk\r\n", "ERROR\r\n", USED_LINE),
    };

    (void)state;
    check_convos(c, sizeof(c) / sizeof(c[0]));
}

static void
test_req_other_errors(void **state)
{
    static const struct convo c[] = {
        C("delete\r\n", "ERROR\r\n", USED_LINE),
        C("delete k\r\n", "<delete>", USED_ALL),
        C("delete k 0\r\n", "<delete>", USED_ALL),
        C("delete noreply\r\n", "<delete>", USED_ALL),
        C("delete k noreply\r\n", "<delete noreply>", USED_ALL),
        C("delete k 0 noreply\r\n", "<delete noreply>", USED_ALL),
        C("delete k 5\r\n",
          "CLIENT_ERROR bad command line format.  "
          "Usage: delete <key> [noreply]\r\n", USED_LINE),
        C("delete k noreply 0\r\n",
          "CLIENT_ERROR bad command line format.  "
          "Usage: delete <key> [noreply]\r\n", USED_LINE),
        C("delete k 0 0\r\n",
          "CLIENT_ERROR bad command line format.  "
          "Usage: delete <key> [noreply]\r\n", USED_LINE),
        C("delete k 5 noreply\r\nversion\r\n", "<version>", USED_LINE),
        C("delete k 0 noreply x\r\n", "ERROR\r\n", USED_LINE),
        C("incr\r\n", "ERROR\r\n", USED_LINE),
        C("incr k\r\n", "ERROR\r\n", USED_LINE),
        C("incr k 1\r\n", "<incr>", USED_ALL),
        C("incr k 1 2\r\n", "<incr>", USED_ALL),
        C("incr k 1 2 3\r\n", "ERROR\r\n", USED_LINE),
        C("incr k x\r\n", "CLIENT_ERROR invalid numeric delta argument\r\n",
          USED_LINE),
        C("incr k -1\r\n", "CLIENT_ERROR invalid numeric delta argument\r\n",
          USED_LINE),
        C("decr k 18446744073709551616\r\n",
          "CLIENT_ERROR invalid numeric delta argument\r\n", USED_LINE),
        C("decr k 18446744073709551615\r\n", "<decr>", USED_ALL),
        C("incr k 1 noreply\r\n", "<incr noreply>", USED_ALL),
        C("incr k x noreply\r\nversion\r\n", "<version>", USED_LINE),
        C("incr k noreply\r\nversion\r\n", "<version>", USED_LINE),
        C("touch\r\n", "ERROR\r\n", USED_LINE),
        C("touch k\r\n", "ERROR\r\n", USED_LINE),
        C("touch k 10\r\n", "<touch>", USED_ALL),
        C("touch k 10 x\r\n", "<touch>", USED_ALL),
        C("touch k x\r\n", "CLIENT_ERROR invalid exptime argument\r\n",
          USED_LINE),
        C("touch k x noreply\r\nversion\r\n", "<version>", USED_LINE),
        C("touch k 10 noreply\r\n", "<touch noreply>", USED_ALL),
        C("verbosity\r\n", "ERROR\r\n", USED_LINE),
        C("verbosity 1\r\n", "<verbosity>", USED_ALL),
        C("verbosity 1 2\r\n", "<verbosity>", USED_ALL),
        C("verbosity 1 2 3\r\n", "ERROR\r\n", USED_LINE),
        C("verbosity x\r\n", "CLIENT_ERROR bad command line format\r\n",
          USED_LINE),
        C("verbosity -1\r\n", "CLIENT_ERROR bad command line format\r\n",
          USED_LINE),
        C("verbosity noreply\r\nversion\r\n", "<version>", USED_LINE),
        C("verbosity 1 noreply\r\n", "<verbosity noreply>", USED_ALL),
        C("flush_all\r\n", "<flush_all>", USED_ALL),
        C("flush_all 0\r\n", "<flush_all>", USED_ALL),
        C("flush_all -1\r\n", "<flush_all>", USED_ALL),
        C("flush_all 10 20\r\n", "<flush_all>", USED_ALL),
        C("flush_all 10 20 30\r\n", "ERROR\r\n", USED_LINE),
        C("flush_all x\r\n", "CLIENT_ERROR invalid exptime argument\r\n",
          USED_LINE),
        C("flush_all noreply 10\r\n",
          "CLIENT_ERROR invalid exptime argument\r\n", USED_LINE),
        C("flush_all noreply\r\n", "<flush_all noreply>", USED_ALL),
        C("flush_all 10 noreply\r\n", "<flush_all noreply>", USED_ALL),
        C("flush_all x noreply\r\nversion\r\n", "<version>", USED_LINE),
        C("stats\r\n", "<stats>", USED_ALL),
        C("stats foo bar\r\n", "<stats>", USED_ALL),
    };

    (void)state;
    check_convos(c, sizeof(c) / sizeof(c[0]));
}

/* Keys of 250 bytes pass, 251 fail, wherever the key is; with a shorter
 * longest key (a pool's prefix takes room), the same at that length. */
static void
test_req_key_length(void **state)
{
    static const struct {
        const char *prefix;
        const char *suffix;
        const char *want250;
        const char *want251;
    } c[] = {
        {"set ", " 0 0 1\r\nv\r\n", "<set>",
         "CLIENT_ERROR bad command line format\r\nERROR\r\n"},
        {"set ", " 0 0 1 noreply\r\nv\r\n", "<set noreply>", "ERROR\r\n"},
        {"get a ", "\r\n", "<get>", "CLIENT_ERROR bad command line format\r\n"},
        {"get ", " a\r\n", "<get>", "CLIENT_ERROR bad command line format\r\n"},
        {"gat 1 ", "\r\n", "<gat>", "CLIENT_ERROR bad command line format\r\n"},
        {"delete ", "\r\n", "<delete>",
         "CLIENT_ERROR bad command line format\r\n"},
        {"delete ", " x\r\n",
         "CLIENT_ERROR bad command line format.  "
         "Usage: delete <key> [noreply]\r\n",
         "CLIENT_ERROR bad command line format.  "
         "Usage: delete <key> [noreply]\r\n"},
        {"incr ", " 1\r\n", "<incr>",
         "CLIENT_ERROR bad command line format\r\n"},
        {"touch ", " 10\r\n", "<touch>",
         "CLIENT_ERROR bad command line format\r\n"},
    };
    static const size_t max[] = { MC_KEY_MAX, MC_KEY_MAX - 5, 1 };
    char out[1024];
    size_t i, j, len;
    char *b;

    (void)state;
    for (j = 0; j < sizeof(max) / sizeof(max[0]); j++) {
        for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
            b = build(c[i].prefix, "k", max[j], c[i].suffix, &len);
            replay_keys(b, len, out, sizeof(out), max[j]);
            assert_string_equal(out, c[i].want250);
            free(b);
            b = build(c[i].prefix, "k", max[j] + 1, c[i].suffix, &len);
            replay_keys(b, len, out, sizeof(out), max[j]);
            assert_string_equal(out, c[i].want251);
            free(b);
        }
    }
}

/* ---------------------------------------------------------------------
 * Fields of good requests
 * ------------------------------------------------------------------- */

static void
test_req_storage_fields(void **state)
{
    static const char in[] = "cas  key 4294967295 -5 3 12345678901234 "
                             "noreply\r\nabc\r\nget";
    struct mc_req req;

    (void)state;
    assert_int_equal(parse(in, sizeof(in) - 1, &req), PARSE_OK);
    assert_int_equal(req.cmd, MC_CAS);
    assert_int_equal(req.line_len, sizeof(in) - 1 - 3 - 5);
    assert_int_equal(req.data_off, req.line_len);
    assert_int_equal(req.total_len, sizeof(in) - 1 - 3);
    assert_int_equal(req.nkeys, 1);
    assert_int_equal(keys[0].off, 5);
    assert_int_equal(keys[0].len, 3);
    assert_int_equal(req.flags, UINT32_MAX);
    assert_int_equal(req.exptime, -5);
    assert_int_equal(req.vlen, 3);
    assert_int_equal(req.cas, 12345678901234ULL);
    assert_true(req.noreply);
    /* the line without " noreply" ends after the unique */
    assert_memory_equal(in + req.noreply_off, " noreply\r\n", 10);
    assert_memory_equal(in + req.data_off, "abc\r\n", 5);
    assert_null(req.error);

    assert_int_equal(PARSE_STR("append k 0 0 0\r\n\r\n", &req), PARSE_OK);
    assert_int_equal(req.cmd, MC_APPEND);
    assert_int_equal(req.vlen, 0);
    assert_int_equal(req.total_len, 18);
    assert_false(req.noreply);
}

/* memcached's strtol/strtoul reading, 64-bit and then cut to 32 bits. */
static void
test_req_number_quirks(void **state)
{
    struct mc_req req;

    (void)state;
    assert_int_equal(PARSE_STR("set k 4294967296 0 1\r\nv\r\n", &req),
                     PARSE_OK);
    assert_int_equal(req.flags, 0);
    assert_int_equal(PARSE_STR("set k -0 0 1\r\nv\r\n", &req), PARSE_OK);
    assert_int_equal(req.flags, 0);
    assert_int_equal(PARSE_STR("set k -18446744073709551615 0 1\r\nv\r\n",
                               &req), PARSE_OK);
    assert_int_equal(req.flags, 1);
    assert_int_equal(PARSE_STR("set k 0 2147483648 1\r\nv\r\n", &req),
                     PARSE_OK);
    assert_int_equal(req.exptime, INT32_MIN);
    assert_int_equal(PARSE_STR("set k 0 -9223372036854775808 1\r\nv\r\n",
                               &req), PARSE_OK);
    assert_int_equal(req.exptime, 0);
    assert_int_equal(PARSE_STR("set k 0 -9223372036854775809 1\r\nv\r\n",
                               &req), PARSE_ERROR);
    assert_int_equal(PARSE_STR("set k 0 0 4294967297\r\nv\r\n", &req),
                     PARSE_OK);
    assert_int_equal(req.vlen, 1);
    assert_int_equal(PARSE_STR("set k 0 0 4294967296\r\n\r\n", &req),
                     PARSE_OK);
    assert_int_equal(req.vlen, 0);
    assert_int_equal(PARSE_STR("set k 0 0 +1\r\nv\r\n", &req), PARSE_OK);
    assert_int_equal(PARSE_STR("set k 0 0 \t1\r\nv\r\n", &req), PARSE_OK);
    assert_int_equal(PARSE_STR("set k 0 0 1\t\r\nv\r\n", &req), PARSE_OK);
    assert_int_equal(PARSE_STR("set k 0 0 1\tx\r\nv\r\n", &req), PARSE_OK);
    assert_int_equal(req.vlen, 1);
    assert_int_equal(PARSE_STR("set k 0 0 +\r\nv\r\n", &req), PARSE_ERROR);
    assert_int_equal(PARSE_STR("set k 0 0 0x1\r\nv\r\n", &req), PARSE_ERROR);
    assert_int_equal(PARSE_STR("incr k 18446744073709551615\r\n", &req),
                     PARSE_OK);
    assert_int_equal(req.delta, UINT64_MAX);
    assert_int_equal(PARSE_STR("incr k -9223372036854775809\r\n", &req),
                     PARSE_OK);
    assert_int_equal(req.delta, 9223372036854775807ULL);
    assert_int_equal(PARSE_STR("verbosity 4294967297\r\n", &req), PARSE_OK);
    assert_int_equal(req.arg, 1);
}

static void
test_req_other_fields(void **state)
{
    static const char get[] = "gets a  bb ccc\r\n";
    static const char stats[] = "stats  detail dump  \r\n";
    struct mc_req req;

    (void)state;
    assert_int_equal(parse(get, sizeof(get) - 1, &req), PARSE_OK);
    assert_int_equal(req.cmd, MC_GETS);
    assert_int_equal(req.nkeys, 3);
    assert_int_equal(keys[0].off, 5);
    assert_int_equal(keys[0].len, 1);
    assert_int_equal(keys[1].off, 8);
    assert_int_equal(keys[1].len, 2);
    assert_int_equal(keys[2].off, 11);
    assert_int_equal(keys[2].len, 3);
    assert_int_equal(req.total_len, sizeof(get) - 1);

    assert_int_equal(PARSE_STR("gat -30 a b\r\n", &req), PARSE_OK);
    assert_int_equal(req.exptime, -30);
    assert_int_equal(req.nkeys, 2);
    assert_int_equal(keys[0].off, 8);

    assert_int_equal(PARSE_STR("touch k 100\r\n", &req), PARSE_OK);
    assert_int_equal(req.exptime, 100);
    assert_int_equal(req.nkeys, 1);
    assert_int_equal(PARSE_STR("decr k 7 noreply\r\n", &req), PARSE_OK);
    assert_int_equal(req.delta, 7);
    assert_int_equal(req.noreply_off, 8);
    assert_int_equal(PARSE_STR("delete k 0 noreply\r\n", &req), PARSE_OK);
    assert_int_equal(req.noreply_off, 10);

    assert_int_equal(parse(stats, sizeof(stats) - 1, &req), PARSE_OK);
    assert_int_equal(req.cmd, MC_STATS);
    assert_int_equal(req.nkeys, 0);
    assert_int_equal(req.args.len, 11);
    assert_memory_equal(stats + req.args.off, "detail dump", 11);
    assert_int_equal(PARSE_STR("stats\r\n", &req), PARSE_OK);
    assert_int_equal(req.args.len, 0);

    assert_int_equal(PARSE_STR("verbosity 3\r\n", &req), PARSE_OK);
    assert_int_equal(req.arg, 3);
    assert_int_equal(PARSE_STR("flush_all\r\n", &req), PARSE_OK);
    assert_int_equal(req.arg, -1);
    assert_int_equal(PARSE_STR("flush_all noreply\r\n", &req), PARSE_OK);
    assert_int_equal(req.arg, -1);
    assert_true(req.noreply);
    assert_int_equal(req.noreply_off, 9);
    assert_int_equal(PARSE_STR("flush_all 90 noreply\r\n", &req), PARSE_OK);
    assert_int_equal(req.arg, 90);
    assert_int_equal(PARSE_STR("flush_all 5 6\r\n", &req), PARSE_OK);
    assert_int_equal(req.arg, 5);
    assert_false(req.noreply);

    assert_int_equal(PARSE_STR("version\r\n", &req), PARSE_OK);
    assert_int_equal(req.cmd, MC_VERSION);
    assert_int_equal(PARSE_STR("quit\r\n", &req), PARSE_OK);
    assert_int_equal(req.cmd, MC_QUIT);
}

/* ---------------------------------------------------------------------
 * Bounds
 * ------------------------------------------------------------------- */

static void
test_req_short_line_bound(void **state)
{
    static struct mc_span many[4096];
    struct mc_req req;
    size_t len, spaces;
    char *b;

    (void)state;
    /* memcached answers a line its 16 KiB buffer holds with its \n, so
     * memring waits for the \n that long: 3000 bytes are one line */
    b = build("set ", "k", 2996, "\r\n", &len);
    assert_int_equal(parse(b, len - 1, &req), PARSE_AGAIN);
    assert_int_equal(parse(b, len, &req), PARSE_ERROR);
    assert_string_equal(req.error, "ERROR");
    assert_false(req.close);
    assert_int_equal(req.skip, len);
    free(b);
    b = build("set ", "k", 3000, " 0 0 1\r\n", &len);
    assert_int_equal(parse(b, len, &req), PARSE_ERROR);
    assert_string_equal(req.error, "CLIENT_ERROR bad command line format");
    assert_false(req.close);
    free(b);
    b = build("version ", "x", 3000, "\r\n", &len);
    assert_int_equal(parse(b, len, &req), PARSE_OK);
    assert_int_equal(req.cmd, MC_VERSION);
    free(b);

    /* get/gets/gat/gats may go on, after at most 100 spaces */
    b = build("get ", "k ", 3000, "a\r\n", &len);
    assert_int_equal(mc_parse_req(b, len - 1, &req, many, 4096),
                     PARSE_AGAIN);
    assert_int_equal(mc_parse_req(b, len, &req, many, 4096), PARSE_OK);
    assert_int_equal(req.nkeys, 3001);
    assert_int_equal(many[3000].off, len - 3);
    free(b);
    b = build("gat 0 ", "k ", 3000, "\r\n", &len);
    assert_int_equal(mc_parse_req(b, len, &req, many, 4096), PARSE_OK);
    assert_int_equal(req.nkeys, 3000);
    free(b);
    for (spaces = 100; spaces <= 101; spaces++) {
        size_t n = spaces + 4 + MC_TEXT_LINE_MAX + 2;

        b = malloc(n);
        assert_non_null(b);
        memset(b, ' ', spaces);
        memcpy(b + spaces, "get ", 4);
        memset(b + spaces + 4, 'k', MC_TEXT_LINE_MAX);
        memcpy(b + n - 2, "\r\n", 2);
        assert_int_equal(parse(b, n, &req), PARSE_ERROR);
        if (spaces == 100) {
            /* read as a get: the long key is refused */
            assert_string_equal(req.error,
                                "CLIENT_ERROR bad command line format");
            assert_false(req.close);
        } else {
            assert_null(req.error);
            assert_true(req.close);
        }
        free(b);
    }
}

static void
test_req_long_line_bound(void **state)
{
    struct mc_req req;
    size_t len;
    char *b;

    (void)state;
    /* a line of exactly MC_TEXT_LINE_MAX bytes, \n included: answered */
    b = build("foo ", "x", MC_TEXT_LINE_MAX - 6, "\r\n", &len);
    assert_int_equal(len, MC_TEXT_LINE_MAX);
    assert_int_equal(parse(b, len - 1, &req), PARSE_AGAIN);
    assert_int_equal(parse(b, len, &req), PARSE_ERROR);
    assert_string_equal(req.error, "ERROR");
    assert_false(req.close);
    assert_int_equal(req.skip, MC_TEXT_LINE_MAX);
    free(b);

    /* one more: closed without a word, whether the \n came or not */
    b = build("foo ", "x", MC_TEXT_LINE_MAX - 5, "\r\n", &len);
    assert_int_equal(parse(b, len, &req), PARSE_ERROR);
    assert_null(req.error);
    assert_true(req.close);
    assert_int_equal(parse(b, MC_TEXT_LINE_MAX - 1, &req), PARSE_AGAIN);
    assert_int_equal(parse(b, MC_TEXT_LINE_MAX, &req), PARSE_ERROR);
    assert_null(req.error);
    assert_true(req.close);
    free(b);
    b = build("", " ", 20000, "", &len);
    assert_int_equal(parse(b, len, &req), PARSE_ERROR);
    assert_true(req.close);
    b[len - 1] = '\n';
    assert_int_equal(parse(b, len, &req), PARSE_ERROR);
    assert_true(req.close);
    free(b);
    b = build("get\t", "k ", 9000, "\r\n", &len);
    assert_int_equal(parse(b, len, &req), PARSE_ERROR);
    assert_true(req.close);
    free(b);
    /* memcached lets only get/gets lines past its buffer, not gat/gats
     * (memring passes them on to it) */
    b = build("gat 0 ", "k ", 9000, "\r\n", &len);
    assert_int_equal(parse(b, len, &req), PARSE_ERROR);
    assert_null(req.error);
    assert_true(req.close);
    free(b);
}

/* A multi-get longer than any buffer: served whole, its keys counted as
 * they arrive; over the cap refused and closed, complete or not. */
static void
test_req_long_get(void **state)
{
    enum { NKEYS = 30000, CAP = 20000 };
    static struct mc_span many[NKEYS];
    struct mc_scan scan;
    struct mc_req req;
    size_t len, cut;
    char *b;

    (void)state;
    b = build("get ", "ab ", NKEYS - 1, "ab\r\n", &len);
    assert_true(len > 4 * 16384);
    assert_int_equal(mc_parse_req(b, len, &req, many, NKEYS), PARSE_OK);
    assert_int_equal(req.nkeys, NKEYS);
    assert_int_equal(req.line_len, len);

    /* fed a piece at a time with one scan: the same answer */
    memset(&scan, 0, sizeof(scan));
    for (cut = 1000; cut < len; cut += 7777) {
        assert_int_equal(mc_parse_req_scan(b, cut, &req, many, NKEYS,
                                           MC_KEY_MAX, &scan),
                         PARSE_AGAIN);
    }
    assert_int_equal(mc_parse_req_scan(b, len, &req, many, NKEYS,
                                       MC_KEY_MAX, &scan),
                     PARSE_OK);
    assert_int_equal(req.nkeys, NKEYS);

    /* over the cap: complete, and before its \n is there */
    assert_int_equal(mc_parse_req(b, len, &req, many, CAP), PARSE_ERROR);
    assert_string_equal(req.error, "CLIENT_ERROR line too long");
    assert_true(req.close);
    memset(&scan, 0, sizeof(scan));
    for (cut = 3000; cut < len; cut += 3000) {
        if (mc_parse_req_scan(b, cut, &req, many, CAP, MC_KEY_MAX,
                              &scan) != PARSE_AGAIN) {
            break;
        }
    }
    assert_true(cut < len);
    assert_true(cut >= 4 + 3 * CAP);
    assert_string_equal(req.error, "CLIENT_ERROR line too long");
    assert_true(req.close);

    /* a NUL ends the line: the keys after it do not count */
    b[4 + 3 * 10] = '\0';
    assert_int_equal(mc_parse_req(b, len, &req, many, CAP), PARSE_OK);
    assert_int_equal(req.nkeys, 10);
    memset(&scan, 0, sizeof(scan));
    assert_int_equal(mc_parse_req_scan(b, len - 2, &req, many, CAP,
                                       MC_KEY_MAX, &scan),
                     PARSE_AGAIN);
    free(b);
}

static void
test_req_keys_cap(void **state)
{
    struct mc_span few[2];
    struct mc_req req;

    (void)state;
    assert_int_equal(mc_parse_req("get a b\r\n", 9, &req, few, 2), PARSE_OK);
    assert_int_equal(req.nkeys, 2);
    assert_int_equal(mc_parse_req("get a b c\r\n", 11, &req, few, 2),
                     PARSE_ERROR);
    assert_string_equal(req.error, "CLIENT_ERROR line too long");
    assert_true(req.close);
    /* too many keys wins over a bad key, as it is found before the \n */
    assert_int_equal(mc_parse_req("get a b c \x01\r\n", 14, &req, few, 2),
                     PARSE_ERROR);
    assert_string_equal(req.error, "CLIENT_ERROR line too long");
    assert_int_equal(mc_parse_req("get a b\x01\r\n", 10, &req, few, 2),
                     PARSE_OK);
    assert_int_equal(mc_parse_req("set k 0 0 1\r\nv\r\n", 16, &req, NULL, 0),
                     PARSE_ERROR);
    assert_string_equal(req.error, "CLIENT_ERROR line too long");
}

/* What a proxy passes on: the line as memcached reads it, and a storage
 * request whose data block ends wrong (the server answers it). */
static void
test_req_passed_on(void **state)
{
    struct mc_req req;

    (void)state;
    assert_int_equal(parse("get k0\0 junk\r\n", 14, &req), PARSE_OK);
    assert_int_equal(req.text_len, 6);
    assert_int_equal(req.line_len, 14);
    assert_int_equal(parse("get a\rb k3\r\n", 12, &req), PARSE_OK);
    assert_int_equal(req.text_len, 10);
    assert_int_equal(req.nkeys, 2);
    assert_int_equal(parse("get a\r\r\n", 8, &req), PARSE_OK);
    assert_int_equal(req.text_len, 6);
    assert_int_equal(parse("set k 0 0 3\r\nabcde\r\n", 20, &req),
                     PARSE_ERROR);
    assert_true(req.bad_chunk);
    assert_string_equal(req.error, "CLIENT_ERROR bad data chunk");
    assert_int_equal(req.cmd, MC_SET);
    assert_int_equal(req.nkeys, 1);
    assert_int_equal(req.total_len, 18);
    assert_int_equal(req.skip, 18);
    assert_int_equal(parse("set k 0 0 3\r\nabc\r\n", 18, &req), PARSE_OK);
    assert_false(req.bad_chunk);
}

/* The binary protocol, which memring does not serve yet: its data is
 * dropped by length, never read as commands (request smuggling). */
static void
test_req_not_served(void **state)
{
    static const unsigned char bin[] = {
        0x80, 0x01, 0x00, 0x03, 0x08, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x10, 0xde, 0xad, 0xbe, 0xef,
        0, 0, 0, 0, 0, 0, 0, 0,
    };
    char out[MC_BINARY_ERROR_LEN];
    struct mc_req req;

    (void)state;
    assert_int_equal(mc_parse_req((const char *)bin, 23, &req, keys, KEYS_CAP),
                     PARSE_AGAIN);
    assert_int_equal(mc_parse_req((const char *)bin, 24, &req, keys, KEYS_CAP),
                     PARSE_ERROR);
    assert_true(req.binary);
    assert_null(req.error);
    assert_false(req.close);
    assert_int_equal(req.skip, 24);
    assert_int_equal(req.swallow, 16);
    mc_binary_error(&req, out);
    assert_int_equal((unsigned char)out[0], 0x81);
    assert_int_equal(out[1], 0x01);
    assert_int_equal(out[6], 0x00);
    assert_int_equal((unsigned char)out[7], 0x81);
    assert_int_equal(out[11], MC_BINARY_ERROR_LEN - 24);
    assert_memory_equal(out + 12, bin + 12, 4);
    assert_memory_equal(out + 24, "Unknown command", 15);

}

/* Meta commands: what memcached 1.6 answers before it reads the flags is
 * answered here (an ms's data block is then the next command, as there);
 * the rest is passed on, its data block with it. */
static void
test_req_meta(void **state)
{
    char line[300];
    struct mc_req req;

    (void)state;
    assert_int_equal(parse("ms k 5 T0\r\nhello\r\n", 21, &req), PARSE_OK);
    assert_int_equal(req.cmd, MC_MS);
    assert_int_equal(req.total_len, 18);
    assert_int_equal(req.vlen, 5);
    assert_int_equal(parse("ms k 5 T0\r\nhel", 14, &req), PARSE_AGAIN);
    assert_int_equal(req.total_len, 18);
    assert_int_equal(parse("ms k x\r\n", 8, &req), PARSE_ERROR);
    assert_string_equal(req.error, "CLIENT_ERROR bad command line format");
    assert_int_equal(req.skip, 8);
    assert_int_equal(req.swallow, 0);
    assert_int_equal(parse("ms k -1\r\n", 9, &req), PARSE_ERROR);
    assert_int_equal(req.swallow, 0);
    assert_int_equal(parse("ms k\r\n", 6, &req), PARSE_ERROR);
    assert_string_equal(req.error, "CLIENT_ERROR bad command line format");
    assert_int_equal(parse("ms\r\n", 4, &req), PARSE_ERROR);
    assert_string_equal(req.error, "ERROR");
    assert_int_equal(parse("me\r\n", 4, &req), PARSE_ERROR);
    assert_string_equal(req.error, "CLIENT_ERROR bad command line format");
    /* flags are the server's to check */
    assert_int_equal(parse("mg k 5\r\n", 8, &req), PARSE_OK);
    assert_int_equal(req.cmd, MC_MG);
    assert_int_equal(req.nkeys, 1);
    assert_false(req.meta_quiet);
    assert_int_equal(parse("mg k v qx b\r\n", 14, &req), PARSE_OK);
    assert_true(req.meta_quiet);
    assert_true(req.meta_b);
    assert_int_equal(parse("mn\r\n", 4, &req), PARSE_OK);
    assert_int_equal(req.cmd, MC_MN);
    /* 20 tokens (21 with memcached's end token) are too many */
    assert_int_equal(parse("mg k v v v v v v v v v v v v v v v v v v\r\n",
                           42, &req), PARSE_ERROR);
    assert_string_equal(req.error, "CLIENT_ERROR options flags are too long");
    assert_int_equal(parse("md k v v v v v v v v v v v v v v v v v v\r\n",
                           42, &req), PARSE_ERROR);
    assert_string_equal(req.error, "CLIENT_ERROR options flags too long");
    assert_int_equal(parse("mg k v v v v v v v v v v v v v v v v v\r\n",
                           40, &req), PARSE_OK);
    memset(line, 'k', sizeof(line));
    memcpy(line, "mg ", 3);
    memcpy(line + 3 + 251, "\r\n", 2);
    assert_int_equal(parse(line, 3 + 251 + 2, &req), PARSE_ERROR);
    assert_string_equal(req.error, "CLIENT_ERROR bad command line format");
}

static void
test_req_value_bounds(void **state)
{
    char line[64];
    struct mc_req req;
    int n;

    (void)state;
    /* up to MC_VALUE_MAX the request waits for its data */
    n = snprintf(line, sizeof(line), "set k 0 0 %llu\r\n",
                 (unsigned long long)MC_VALUE_MAX);
    assert_int_equal(parse(line, (size_t)n, &req), PARSE_AGAIN);
    assert_int_equal(req.total_len, (unsigned long long)n + MC_VALUE_MAX + 2);

    /* beyond: memcached's reply, then close rather than swallow */
    n = snprintf(line, sizeof(line), "set k 0 0 %llu\r\n",
                 (unsigned long long)MC_VALUE_MAX + 1);
    assert_int_equal(parse(line, (size_t)n, &req), PARSE_ERROR);
    assert_string_equal(req.error, "SERVER_ERROR object too large for cache");
    assert_true(req.close);
    assert_int_equal(req.skip, (size_t)n);
    n = snprintf(line, sizeof(line), "set k 0 0 %d noreply\r\n",
                 INT_MAX - 2);
    assert_int_equal(parse(line, (size_t)n, &req), PARSE_ERROR);
    assert_null(req.error);
    assert_true(req.close);
}

/*
 * A partial value costs the same whatever its size: the parser reads the
 * line and then only the two bytes after the data. The data sits in pages
 * with no access rights, so touching it would crash the test.
 */
struct guarded {
    char   *map;
    size_t map_len;
    char   *start;      /* first byte of the unit */
    size_t head_len;    /* its line */
    size_t len;         /* whole unit */
};

static void
guarded_setup(struct guarded *g, const char *fmt)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t vpages = 256;                    /* 1 MB with 4 KB pages */
    size_t vlen = vpages * page + 10;
    char head[128];
    int fd, n;

    n = snprintf(head, sizeof(head), fmt, vlen);
    assert_true(n > 0 && (size_t)n < page);
    g->map_len = (vpages + 2) * page;
    fd = open("/dev/zero", O_RDWR);
    assert_true(fd >= 0);
    g->map = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd,
                  0);
    close(fd);
    assert_true(g->map != MAP_FAILED);
    /* head ends on the first page boundary, data fills the next pages */
    g->start = g->map + page - (size_t)n;
    memcpy(g->start, head, (size_t)n);
    memset(g->map + page, 'x', vlen);
    memcpy(g->map + page + vlen, "\r\n", 2);
    g->head_len = (size_t)n;
    g->len = (size_t)n + vlen + 2;
    assert_int_equal(mprotect(g->map + page, vpages * page, PROT_NONE), 0);
}

static void
guarded_teardown(struct guarded *g)
{
    munmap(g->map, g->map_len);
}

static void
test_req_partial_value_is_cheap(void **state)
{
    struct guarded g;
    struct mc_req req;
    size_t len;

    (void)state;
    guarded_setup(&g, "set k 0 0 %zu noreply\r\n");
    for (len = 1; len < g.len; len += 997) {
        enum parse_status st = parse(g.start, len, &req);

        assert_int_equal(st, PARSE_AGAIN);
        if (len >= g.head_len) {
            assert_int_equal(req.total_len, g.len);
        }
    }
    assert_int_equal(parse(g.start, g.len, &req), PARSE_OK);
    assert_int_equal(req.total_len, g.len);
    assert_true(req.noreply);
    guarded_teardown(&g);
}

/* ---------------------------------------------------------------------
 * Resumability
 * ------------------------------------------------------------------- */

static void
assert_req_equal(const struct mc_req *a, const struct mc_span *ka,
                 const struct mc_req *b, const struct mc_span *kb)
{
    assert_int_equal(a->cmd, b->cmd);
    assert_int_equal(a->line_len, b->line_len);
    assert_int_equal(a->total_len, b->total_len);
    assert_int_equal(a->noreply, b->noreply);
    assert_int_equal(a->noreply_off, b->noreply_off);
    assert_int_equal(a->nkeys, b->nkeys);
    assert_int_equal(a->flags, b->flags);
    assert_int_equal(a->exptime, b->exptime);
    assert_int_equal(a->vlen, b->vlen);
    assert_int_equal(a->cas, b->cas);
    assert_int_equal(a->delta, b->delta);
    assert_int_equal(a->arg, b->arg);
    assert_int_equal(a->data_off, b->data_off);
    assert_int_equal(a->args.off, b->args.off);
    assert_int_equal(a->args.len, b->args.len);
    assert_ptr_equal(a->error, b->error);
    assert_int_equal(a->skip, b->skip);
    assert_int_equal(a->close, b->close);
    if (a->nkeys > 0) {
        assert_memory_equal(ka, kb, a->nkeys * sizeof(*ka));
    }
}

/*
 * Every prefix of a unit is PARSE_AGAIN, consuming nothing; the complete
 * unit gives the same result as the unit with the rest of the stream after
 * it. Storage requests announce their length as soon as the line is in.
 */
static void
test_req_split_every_byte(void **state)
{
    static const char stream[] =
        "set foo 1 2 3\r\nbar\r\n"
        "get foo\r\n"
        "gets a b c d e f g h i j k l m n o p q r s t u v w x y z\r\n"
        "cas k 0 0 5 77 noreply\r\nhello\r\n"
        "foo\r\n"
        "set k 0 0 x\r\n"
        "set k 0 0 3\r\nabcde\r\n"
        "add k 0 0 0\n\r\n"
        "\r\n"
        "gat 100 k1 k2\n"
        "gat 100\r\n"
        "incr k 5\r\n"
        "decr k 5 noreply\r\n"
        "delete k 0 noreply\r\n"
        "delete k 9\r\n"
        "touch k 10\r\n"
        "verbosity 1\r\n"
        "flush_all 10\r\n"
        "stats slabs\r\n"
        "version\r\n"
        "get a\0b\r\n"
        "append k 0 0 10 noreply\r\n0123456789\r\n"
        "mg k v\r\n"
        "quit\r\n";
    struct mc_span want_keys[KEYS_CAP];
    struct mc_req want, req;
    size_t off = 0, total = sizeof(stream) - 1, used, k;
    enum parse_status want_st, st;
    unsigned int units = 0;

    (void)state;
    while (off < total) {
        want_st = parse(stream + off, total - off, &want);
        assert_int_not_equal(want_st, PARSE_AGAIN);
        assert_false(want.close);
        memcpy(want_keys, keys, sizeof(keys));
        used = want_st == PARSE_OK ? want.total_len : want.skip;
        for (k = 0; k < used; k++) {
            st = parse(stream + off, k, &req);
            if (st != PARSE_AGAIN) {
                fail_msg("unit at %zu: prefix %zu gave %d", off, k, st);
            }
            if (req.total_len != 0) {
                assert_int_equal(req.total_len, want.total_len);
            }
        }
        st = parse(stream + off, used, &req);
        assert_int_equal(st, want_st);
        assert_req_equal(&req, keys, &want, want_keys);
        off += used;
        units++;
    }
    assert_int_equal(units, 25);
}

/* ---------------------------------------------------------------------
 * Responses
 * ------------------------------------------------------------------- */

struct rsp_case {
    const char       *in;
    size_t           len;
    enum parse_status st;
    enum mc_rsp_type type;
    bool             is_error;
};

#define R(in, st, type, err) { in, sizeof(in) - 1, st, type, err }

static void
test_rsp_units(void **state)
{
    static const struct rsp_case c[] = {
        R("STORED\r\n", PARSE_OK, MC_RSP_LINE, false),
        R("NOT_STORED\r\n", PARSE_OK, MC_RSP_LINE, false),
        R("EXISTS\r\n", PARSE_OK, MC_RSP_LINE, false),
        R("NOT_FOUND\r\n", PARSE_OK, MC_RSP_LINE, false),
        R("DELETED\r\n", PARSE_OK, MC_RSP_LINE, false),
        R("TOUCHED\r\n", PARSE_OK, MC_RSP_LINE, false),
        R("OK\r\n", PARSE_OK, MC_RSP_LINE, false),
        R("0\r\n", PARSE_OK, MC_RSP_LINE, false),
        R("18446744073709551615\r\n", PARSE_OK, MC_RSP_LINE, false),
        R("VERSION 1.6.18\r\n", PARSE_OK, MC_RSP_LINE, false),
        R("END\r\n", PARSE_OK, MC_RSP_END, false),
        R("ERROR\r\n", PARSE_OK, MC_RSP_LINE, true),
        R("ERROR Too many open connections\r\n", PARSE_OK, MC_RSP_LINE, true),
        R("CLIENT_ERROR bad data chunk\r\n", PARSE_OK, MC_RSP_LINE, true),
        R("SERVER_ERROR out of memory storing object\r\n", PARSE_OK,
          MC_RSP_LINE, true),
        R("VALUE k 0 1\r\nv\r\n", PARSE_OK, MC_RSP_VALUE, false),
        R("VALUE k 4294967295 3 18446744073709551615\r\nabc\r\n", PARSE_OK,
          MC_RSP_VALUE, false),
        R("VALUE k 0 0\r\n\r\n", PARSE_OK, MC_RSP_VALUE, false),
        /* incomplete */
        R("", PARSE_AGAIN, MC_RSP_VALUE, false),
        R("STORED\r", PARSE_AGAIN, MC_RSP_VALUE, false),
        R("VALUE k 0 1\r\nv\r", PARSE_AGAIN, MC_RSP_VALUE, false),
        /* garbage and bad framing */
        R("STORED\n", PARSE_ERROR, MC_RSP_VALUE, false),
        R("\r\n", PARSE_ERROR, MC_RSP_VALUE, false),
        R("\n", PARSE_ERROR, MC_RSP_VALUE, false),
        R("stored\r\n", PARSE_ERROR, MC_RSP_VALUE, false),
        R("STORED \r\n", PARSE_ERROR, MC_RSP_VALUE, false),
        R("ENDX\r\n", PARSE_ERROR, MC_RSP_VALUE, false),
        R("END \r\n", PARSE_ERROR, MC_RSP_VALUE, false),
        R("OKAY\r\n", PARSE_ERROR, MC_RSP_VALUE, false),
        R("ERRORS\r\n", PARSE_ERROR, MC_RSP_VALUE, false),
        R("HTTP/1.1 200 OK\r\n", PARSE_ERROR, MC_RSP_VALUE, false),
        R("STAT pid 1\r\n", PARSE_ERROR, MC_RSP_VALUE, false),
        R("12a\r\n", PARSE_ERROR, MC_RSP_VALUE, false),
        R("-1\r\n", PARSE_ERROR, MC_RSP_VALUE, false),
        R("18446744073709551616\r\n", PARSE_ERROR, MC_RSP_VALUE, false),
        R("\x80\x01\x00\x00\r\n", PARSE_ERROR, MC_RSP_VALUE, false),
        R("VALUE k 0 1\r\nvXX", PARSE_ERROR, MC_RSP_VALUE, false),
        R("VALUE k 0 1\r\nv\n\r\n", PARSE_ERROR, MC_RSP_VALUE, false),
        R("VALUE k x 1\r\n", PARSE_ERROR, MC_RSP_VALUE, false),
        R("VALUE k 0\r\n", PARSE_ERROR, MC_RSP_VALUE, false),
        R("VALUE k\r\n", PARSE_ERROR, MC_RSP_VALUE, false),
        R("VALUE \r\n", PARSE_ERROR, MC_RSP_VALUE, false),
        R("VALUE  k 0 1\r\n", PARSE_ERROR, MC_RSP_VALUE, false),
        R("VALUE k  0 1\r\n", PARSE_ERROR, MC_RSP_VALUE, false),
        R("VALUE k 0 1 \r\n", PARSE_ERROR, MC_RSP_VALUE, false),
        R("VALUE k 0 1 5 6\r\n", PARSE_ERROR, MC_RSP_VALUE, false),
        R("VALUE k 0 -1\r\n", PARSE_ERROR, MC_RSP_VALUE, false),
        R("VALUE k 0 +1\r\n", PARSE_ERROR, MC_RSP_VALUE, false),
        R("VALUE k 4294967296 1\r\n", PARSE_ERROR, MC_RSP_VALUE, false),
        R("VALUE k 0 1073741825\r\n", PARSE_ERROR, MC_RSP_VALUE, false),
        R("VALUE k\x01 0 1\r\nv\r\n", PARSE_OK, MC_RSP_VALUE, false),
        R("VALUE \x10k\xff\r 0 1\r\nv\r\n", PARSE_OK, MC_RSP_VALUE, false),
    };
    struct mc_rsp rsp;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        enum parse_status st = mc_parse_rsp(c[i].in, c[i].len, &rsp);

        if (st != c[i].st) {
            fail_msg("case %zu \"%s\": status %d, want %d", i, c[i].in, st,
                     c[i].st);
        }
        if (st == PARSE_OK) {
            assert_int_equal(rsp.type, c[i].type);
            assert_int_equal(rsp.is_error, c[i].is_error);
            assert_int_equal(rsp.len, c[i].len);
        }
    }
}

/* A one-line reply of the wrong kind (STORED to an incr) is refused. */
static void
test_rsp_fits(void **state)
{
    static const struct {
        enum mc_cmd cmd;
        const char  *line;
        bool        fits;
    } c[] = {
        { MC_INCR, "42\r\n", true },
        { MC_INCR, "NOT_FOUND\r\n", true },
        { MC_INCR, "STORED\r\n", false },
        { MC_DECR, "CLIENT_ERROR cannot increment or decrement non-numeric "
                   "value\r\n", true },
        { MC_DELETE, "DELETED\r\n", true },
        { MC_DELETE, "STORED\r\n", false },
        { MC_TOUCH, "TOUCHED\r\n", true },
        { MC_TOUCH, "OK\r\n", false },
        { MC_SET, "STORED\r\n", true },
        { MC_SET, "DELETED\r\n", false },
        { MC_CAS, "EXISTS\r\n", true },
        { MC_ADD, "NOT_STORED\r\n", true },
        { MC_ADD, "7\r\n", false },
        { MC_FLUSH_ALL, "OK\r\n", true },
        { MC_FLUSH_ALL, "SERVER_ERROR out of memory\r\n", true },
        { MC_FLUSH_ALL, "STORED\r\n", false },
        { MC_GET, "STORED\r\n", false },
        { MC_GET, "END\r\n", true },
        { MC_SET, "END\r\n", false },
        { MC_SET, "VALUE k 0 1\r\nv\r\n", false },
    };
    struct mc_rsp rsp;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        assert_int_equal(mc_parse_rsp(c[i].line, strlen(c[i].line), &rsp),
                         PARSE_OK);
        if (mc_rsp_fits(c[i].cmd, &rsp) != c[i].fits) {
            print_error("case %zu: %s to %s\n", i, c[i].line,
                        mc_cmd_name(c[i].cmd));
            fail();
        }
    }
}

static void
test_rsp_value_fields(void **state)
{
    static const char in[] = "VALUE some:key 7 5 99\r\nhello\r\nEND\r\n";
    struct mc_rsp rsp;

    (void)state;
    assert_int_equal(mc_parse_rsp(in, sizeof(in) - 1, &rsp), PARSE_OK);
    assert_int_equal(rsp.type, MC_RSP_VALUE);
    assert_int_equal(rsp.len, sizeof(in) - 1 - 5);
    assert_int_equal(rsp.key.off, 6);
    assert_int_equal(rsp.key.len, 8);
    assert_int_equal(rsp.vlen, 5);
    assert_false(rsp.is_error);
    /* with the line in, AGAIN says how much the unit needs */
    assert_int_equal(mc_parse_rsp(in, 25, &rsp), PARSE_AGAIN);
    assert_int_equal(rsp.len, 30);
    assert_int_equal(mc_parse_rsp(in, 10, &rsp), PARSE_AGAIN);
    assert_int_equal(rsp.len, 0);
}

static void
test_rsp_line_bound(void **state)
{
    struct mc_rsp rsp;
    size_t len;
    char *b;

    (void)state;
    b = build("SERVER_ERROR ", "x", MC_RSP_LINE_MAX - 15, "\r\n", &len);
    assert_int_equal(len, MC_RSP_LINE_MAX);
    assert_int_equal(mc_parse_rsp(b, len, &rsp), PARSE_OK);
    assert_int_equal(mc_parse_rsp(b, len - 1, &rsp), PARSE_AGAIN);
    free(b);
    b = build("SERVER_ERROR ", "x", MC_RSP_LINE_MAX - 14, "\r\n", &len);
    assert_int_equal(mc_parse_rsp(b, len, &rsp), PARSE_ERROR);
    assert_int_equal(mc_parse_rsp(b, MC_RSP_LINE_MAX - 1, &rsp),
                     PARSE_AGAIN);
    assert_int_equal(mc_parse_rsp(b, MC_RSP_LINE_MAX, &rsp), PARSE_ERROR);
    free(b);
    b = build("VALUE ", "k", MC_KEY_MAX, " 0 1\r\nv\r\n", &len);
    assert_int_equal(mc_parse_rsp(b, len, &rsp), PARSE_OK);
    free(b);
    b = build("VALUE ", "k", MC_KEY_MAX + 1, " 0 1\r\nv\r\n", &len);
    assert_int_equal(mc_parse_rsp(b, len, &rsp), PARSE_ERROR);
    free(b);
}

static void
test_rsp_split_every_byte(void **state)
{
    static const char stream[] =
        "VALUE a 0 3\r\nabc\r\n"
        "VALUE bb 12 0 77\r\n\r\n"
        "VALUE c 1 10\r\nEND\r\nEND\r\n\r\n"
        "END\r\n"
        "STORED\r\nNOT_STORED\r\nEXISTS\r\nNOT_FOUND\r\nDELETED\r\n"
        "TOUCHED\r\nOK\r\n12345\r\nVERSION 1.6.18\r\nERROR\r\n"
        "CLIENT_ERROR bad data chunk\r\nSERVER_ERROR out of memory\r\n";
    size_t off = 0, total = sizeof(stream) - 1, k;
    struct mc_rsp want, rsp;
    unsigned int units = 0;

    (void)state;
    while (off < total) {
        assert_int_equal(mc_parse_rsp(stream + off, total - off, &want),
                         PARSE_OK);
        for (k = 0; k < want.len; k++) {
            assert_int_equal(mc_parse_rsp(stream + off, k, &rsp), PARSE_AGAIN);
            assert_true(rsp.len == 0 || rsp.len == want.len);
        }
        assert_int_equal(mc_parse_rsp(stream + off, want.len, &rsp), PARSE_OK);
        assert_int_equal(rsp.type, want.type);
        assert_int_equal(rsp.len, want.len);
        assert_int_equal(rsp.key.off, want.key.off);
        assert_int_equal(rsp.key.len, want.key.len);
        assert_int_equal(rsp.vlen, want.vlen);
        assert_int_equal(rsp.is_error, want.is_error);
        off += want.len;
        units++;
    }
    assert_int_equal(units, 16);
}

static void
test_rsp_partial_value_is_cheap(void **state)
{
    struct guarded g;
    struct mc_rsp rsp;
    size_t len;

    (void)state;
    guarded_setup(&g, "VALUE key 0 %zu 12\r\n");
    for (len = 1; len < g.len; len += 997) {
        assert_int_equal(mc_parse_rsp(g.start, len, &rsp), PARSE_AGAIN);
        if (len >= g.head_len) {
            assert_int_equal(rsp.len, g.len);
        }
    }
    assert_int_equal(mc_parse_rsp(g.start, g.len, &rsp), PARSE_OK);
    assert_int_equal(rsp.type, MC_RSP_VALUE);
    assert_int_equal(rsp.len, g.len);
    guarded_teardown(&g);
}

/* ---------------------------------------------------------------------
 * Command helpers
 * ------------------------------------------------------------------- */

static void
test_cmd_helpers(void **state)
{
    unsigned int c;
    unsigned int nretrieval = 0, nstorage = 0;

    (void)state;
    for (c = 0; c < MC_CMD_COUNT; c++) {
        assert_non_null(mc_cmd_name((enum mc_cmd)c));
        nretrieval += mc_cmd_is_retrieval((enum mc_cmd)c);
        nstorage += mc_cmd_is_storage((enum mc_cmd)c);
        assert_false(mc_cmd_is_retrieval((enum mc_cmd)c) &&
                     mc_cmd_is_storage((enum mc_cmd)c));
    }
    assert_int_equal(nretrieval, 4);
    assert_int_equal(nstorage, 6);
    assert_string_equal(mc_cmd_name(MC_GET), "get");
    assert_string_equal(mc_cmd_name(MC_FLUSH_ALL), "flush_all");
    assert_string_equal(mc_cmd_name(MC_CAS), "cas");
    assert_string_equal(mc_cmd_name(MC_CMD_COUNT), "unknown");
    assert_true(mc_cmd_is_retrieval(MC_GATS));
    assert_true(mc_cmd_is_storage(MC_PREPEND));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_req_unknown_and_empty),
        cmocka_unit_test(test_req_line_endings),
        cmocka_unit_test(test_req_storage_errors),
        cmocka_unit_test(test_req_retrieval_errors),
        cmocka_unit_test(test_req_other_errors),
        cmocka_unit_test(test_req_key_length),
        cmocka_unit_test(test_req_storage_fields),
        cmocka_unit_test(test_req_number_quirks),
        cmocka_unit_test(test_req_other_fields),
        cmocka_unit_test(test_req_short_line_bound),
        cmocka_unit_test(test_req_long_line_bound),
        cmocka_unit_test(test_req_keys_cap),
        cmocka_unit_test(test_req_long_get),
        cmocka_unit_test(test_req_not_served),
        cmocka_unit_test(test_req_meta),
        cmocka_unit_test(test_req_passed_on),
        cmocka_unit_test(test_rsp_fits),
        cmocka_unit_test(test_req_value_bounds),
        cmocka_unit_test(test_req_partial_value_is_cheap),
        cmocka_unit_test(test_req_split_every_byte),
        cmocka_unit_test(test_rsp_units),
        cmocka_unit_test(test_rsp_value_fields),
        cmocka_unit_test(test_rsp_line_bound),
        cmocka_unit_test(test_rsp_split_every_byte),
        cmocka_unit_test(test_rsp_partial_value_is_cheap),
        cmocka_unit_test(test_cmd_helpers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
