/*
 * mc_parse: memcached's text protocol, one request or reply unit per call.
 * Malformed requests get what memcached 1.6 answers (the table at the top of
 * tests/unit/test_mc_parse.c). No state between calls, no allocation.
 */
#include "memring/mc_parse.h"

#include <limits.h>
#include <string.h>

/*
 * memcached closes a connection that has buffered more than 2048 bytes with
 * no newline, unless they start (after at most 100 spaces) with "get " or
 * "gets ": only multigets may be longer than its 16 KiB read buffer. A
 * complete line that fits that buffer is answered, however long. memring
 * waits for the \n of any line up to MC_TEXT_LINE_MAX, so that the answer
 * does not depend on how reads were split. gat/gats lines are held to
 * 16 KiB as there: memring would have to pass them on to memcached.
 */
#define SHORT_LINE_MAX  2048
#define LEAD_SPACES_MAX 100

/*
 * memcached's tokenizer keeps 23 tokens (MAX_TOKENS less its terminator);
 * the rest of a longer line is one unsplit remainder. Arity checks, the
 * noreply test and the HTTP test look only at those 23.
 */
#define TOKENS_MAX 23

#define ERR_ERROR     "ERROR"
#define ERR_FORMAT    "CLIENT_ERROR bad command line format"
#define ERR_EXPTIME   "CLIENT_ERROR invalid exptime argument"
#define ERR_DELTA     "CLIENT_ERROR invalid numeric delta argument"
#define ERR_DELETE    "CLIENT_ERROR bad command line format.  " \
                      "Usage: delete <key> [noreply]"
#define ERR_CHUNK     "CLIENT_ERROR bad data chunk"
#define ERR_TOO_LARGE "SERVER_ERROR object too large for cache"
#define ERR_LINE      "CLIENT_ERROR line too long"

#define CRLF_LEN 2

struct token {
    const char *p;
    size_t     len;
};

/* A request whose line has been found; the parse_* steps share it. */
struct req_line {
    const char     *buf;
    size_t         len;                /* bytes available in buf */
    const char     *end;               /* end of the line's text */
    const char     *cur;               /* tokenizer position */
    struct mc_req  *req;
    struct mc_span *keys;              /* caller's array */
    uint32_t       keys_cap;
    size_t         key_max;            /* longest key taken */
    struct token   tok[TOKENS_MAX];    /* tokens memcached would keep */
    size_t         ntok;
};

static const struct {
    const char *name;
    size_t     len;
} cmd_table[MC_CMD_COUNT] = {
#define CMD(c, s) [c] = { s, sizeof(s) - 1 }
    CMD(MC_UNKNOWN, "unknown"),
    CMD(MC_GET, "get"),
    CMD(MC_GETS, "gets"),
    CMD(MC_GAT, "gat"),
    CMD(MC_GATS, "gats"),
    CMD(MC_SET, "set"),
    CMD(MC_ADD, "add"),
    CMD(MC_REPLACE, "replace"),
    CMD(MC_APPEND, "append"),
    CMD(MC_PREPEND, "prepend"),
    CMD(MC_CAS, "cas"),
    CMD(MC_DELETE, "delete"),
    CMD(MC_INCR, "incr"),
    CMD(MC_DECR, "decr"),
    CMD(MC_TOUCH, "touch"),
    CMD(MC_VERSION, "version"),
    CMD(MC_VERBOSITY, "verbosity"),
    CMD(MC_QUIT, "quit"),
    CMD(MC_FLUSH_ALL, "flush_all"),
    CMD(MC_STATS, "stats"),
    CMD(MC_MG, "mg"),
    CMD(MC_MS, "ms"),
    CMD(MC_MD, "md"),
    CMD(MC_MA, "ma"),
    CMD(MC_MN, "mn"),
    CMD(MC_ME, "me"),
    CMD(MC_META_GET, "mg"),
    CMD(MC_META_ADD, "ms"),
    CMD(MC_META_CHUNK, "mg"),
#undef CMD
};

const char *
mc_cmd_name(enum mc_cmd cmd)
{
    if ((unsigned int)cmd >= MC_CMD_COUNT) {
        cmd = MC_UNKNOWN;
    }
    return cmd_table[cmd].name;
}

bool
mc_cmd_is_retrieval(enum mc_cmd cmd)
{
    return cmd == MC_GET || cmd == MC_GETS || cmd == MC_GAT ||
           cmd == MC_GATS;
}

bool
mc_cmd_is_storage(enum mc_cmd cmd)
{
    return cmd == MC_SET || cmd == MC_ADD || cmd == MC_REPLACE ||
           cmd == MC_APPEND || cmd == MC_PREPEND || cmd == MC_CAS;
}

bool
mc_cmd_has_value(enum mc_cmd cmd)
{
    return mc_cmd_is_storage(cmd) || cmd == MC_MS;
}

bool
mc_cmd_is_meta(enum mc_cmd cmd)
{
    return cmd == MC_MG || cmd == MC_MS || cmd == MC_MD || cmd == MC_MA ||
           cmd == MC_ME;
}

/* ---------------------------------------------------------------------
 * Tokens and numbers, as memcached reads them
 * ------------------------------------------------------------------- */

static bool
tok_is(const struct token *t, const char *s, size_t n)
{
    return t->len == n && memcmp(t->p, s, n) == 0;
}

/* memcached's tokenize_command(): only ' ' separates, runs of it too. */
static bool
next_token(const char **cur, const char *end, struct token *t)
{
    const char *p = *cur;
    const char *s;

    while (p < end && *p == ' ') {
        p++;
    }
    if (p == end) {
        *cur = p;
        return false;
    }
    /* tokens are short: a plain loop beats a memchr() call on each */
    for (s = p; s < end && *s != ' '; s++) {
    }
    t->p = p;
    t->len = (size_t)(s - p);
    *cur = s;
    return true;
}

/* isspace() in the C locale: it ends a number for memcached's strto*(). */
static bool
is_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/*
 * The part of strtoull()/strtol() that memcached's safe_strto*() rely on:
 * leading white space, a sign, at least one digit, then the token's end or
 * white space (after which anything goes: "5\tx" reads as 5). False where
 * they fail or set ERANGE, i.e. the magnitude is beyond 64 bits.
 */
static bool
scan_number(const struct token *t, bool *neg, uint64_t *mag)
{
    const char *p = t->p;
    const char *e = t->p + t->len;
    const char *digits;
    uint64_t v = 0;

    while (p < e && is_space(*p)) {
        p++;
    }
    *neg = false;
    if (p < e && (*p == '+' || *p == '-')) {
        *neg = *p == '-';
        p++;
    }
    digits = p;
    while (p < e && *p >= '0' && *p <= '9') {
        uint64_t d = (uint64_t)(*p - '0');

        if (v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
        p++;
    }
    if (p == digits || (p < e && !is_space(*p))) {
        return false;
    }
    *mag = v;
    return true;
}

/*
 * safe_strtoull(): strtoull() negates a "-n" in 64 bits; the result is
 * refused only if it then looks negative as a signed number.
 */
static bool
num_u64(const struct token *t, uint64_t *out)
{
    uint64_t mag, v;
    bool neg;

    if (!scan_number(t, &neg, &mag)) {
        return false;
    }
    v = neg ? (uint64_t)0 - mag : mag;
    if (neg && v > (uint64_t)INT64_MAX) {
        return false;
    }
    *out = v;
    return true;
}

/*
 * safe_strtoul() on a 64-bit build: the same test with unsigned long, then
 * the value is stored into 32 bits, dropping the high half
 * ("4294967297" reads as 1).
 */
static bool
num_u32(const struct token *t, uint32_t *out)
{
    uint64_t v;

    if (!num_u64(t, &v)) {
        return false;
    }
    *out = (uint32_t)(v & UINT32_MAX);
    return true;
}

/*
 * safe_strtol() on a 64-bit build: strtol() into a 64-bit long, then
 * stored into an int32_t, which wraps ("2147483648" reads as INT32_MIN).
 */
static bool
num_i32(const struct token *t, int32_t *out)
{
    uint64_t mag, low;
    bool neg;

    if (!scan_number(t, &neg, &mag)) {
        return false;
    }
    if (mag > (uint64_t)INT64_MAX + (neg ? 1 : 0)) {
        return false;
    }
    low = (neg ? (uint64_t)0 - mag : mag) & UINT32_MAX;
    *out = low > INT32_MAX ? (int32_t)((int64_t)low - ((int64_t)1 << 32))
                           : (int32_t)low;
    return true;
}

/* ---------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------- */

static enum parse_status
req_fail(struct mc_req *req, const char *error, size_t skip, bool close)
{
    /* memcached's out_string() stays silent once noreply was seen. */
    req->error = req->noreply ? NULL : error;
    req->skip = skip;
    req->close = close;
    return PARSE_ERROR;
}

static enum parse_status
line_fail(struct req_line *l, const char *error)
{
    return req_fail(l->req, error, l->req->line_len, false);
}

/*
 * memcached's set_noreply_maybe(): the last token it kept decides, where
 * ever that is ("set k 0 0 noreply" is a noreply set with a bad length).
 */
static bool
noreply_maybe(struct req_line *l)
{
    const struct token *last = &l->tok[l->ntok - 1];
    const struct token *prev;

    if (l->ntok >= 2 && tok_is(last, "noreply", 7)) {
        prev = last - 1;
        l->req->noreply = true;
        l->req->noreply_off = (size_t)(prev->p + prev->len - l->buf);
    }
    return l->req->noreply;
}

/*
 * memcached checks only the length: a key is any bytes but space and \n
 * (the tokenizer's separators), and its clients use that (libmemcached's
 * memcaslap puts 0x10 in front of its keys). Everything downstream handles
 * such keys as bytes with a length.
 */
static bool
key_ok(const struct token *t, size_t max)
{
    return t->len <= max;
}

static bool
add_key(struct req_line *l, const struct token *t)
{
    struct mc_req *req = l->req;

    if (req->nkeys == l->keys_cap) {
        return false;
    }
    l->keys[req->nkeys].off = (uint32_t)(t->p - l->buf);
    l->keys[req->nkeys].len = (uint32_t)t->len;
    req->nkeys++;
    return true;
}

/* The line starts, after at most LEAD_SPACES_MAX spaces, with "get " or
 * "gets ": it may be longer than a read buffer. memcached lets no other
 * line past its buffer, gat/gats included, so memring, which passes those
 * on to memcached, does not either. */
static bool
retrieval_prefix(const char *buf, size_t len)
{
    size_t i = 0;

    while (i < len && i <= LEAD_SPACES_MAX && buf[i] == ' ') {
        i++;
    }
    if (i > LEAD_SPACES_MAX || len - i < 5) {
        return false;
    }
    return memcmp(buf + i, "get ", 4) == 0 || memcmp(buf + i, "gets ", 5) == 0;
}

/* "Too many keys": a multi-get with more than the caller has room for. It
 * closes (the rest of an unfinished line cannot be skipped without reading
 * it), whether or not the line's end has arrived. */
static enum parse_status
too_many_keys(struct mc_req *req, size_t len)
{
    return req_fail(req, ERR_LINE, len, true);
}

/*
 * A line with more than SHORT_LINE_MAX bytes and no \n in buf[0..len) yet.
 * Other lines wait up to MC_TEXT_LINE_MAX bytes, then close silently (what
 * memcached does once its read buffer is full of one line). A multi-get
 * waits for its end, its keys counted as they come (from where scan left
 * off), until it has more than keys_cap.
 */
static enum parse_status
long_line_pending(const char *buf, size_t len, struct mc_req *req,
                  uint32_t keys_cap, struct mc_scan *scan)
{
    const char *p, *end = buf + len;

    if (!retrieval_prefix(buf, len)) {
        if (len >= MC_TEXT_LINE_MAX) {
            return req_fail(req, NULL, len, true);
        }
        return PARSE_AGAIN;
    }
    for (p = buf + scan->tok_off; p < end && !scan->cut; p++) {
        bool sep = *p == ' ';

        scan->cut = *p == '\0';        /* the line ends there (strlen) */
        if (!sep && !scan->cut && !scan->in_tok) {
            scan->ntok++;
        }
        scan->in_tok = !sep;
    }
    scan->tok_off = len;
    /* Tokens but the command are keys, less one of slack: a last "\r" may
     * yet turn out to be the line's end. The complete line's count is
     * exact (parse_retrieval()). */
    if (scan->ntok > 2 && scan->ntok - 2 > keys_cap) {
        return too_many_keys(req, len);
    }
    return PARSE_AGAIN;
}

/*
 * A binary-protocol request (memcached tells it by its first byte). memring
 * does not serve the binary protocol yet: rather than read its bytes as
 * text lines, where a value could carry commands, it answers "unknown
 * command" and drops the body by the length in the header.
 */
static enum parse_status
parse_binary(const unsigned char *b, size_t len, struct mc_req *req)
{
    if (len < MC_BINARY_HEADER) {
        return PARSE_AGAIN;
    }
    req->binary = true;
    req->bin_opcode = b[1];
    req->bin_opaque = (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 |
                      (uint32_t)b[14] << 8 | (uint32_t)b[15];
    req->swallow = (uint64_t)b[8] << 24 | (uint64_t)b[9] << 16 |
                   (uint64_t)b[10] << 8 | (uint64_t)b[11];
    return req_fail(req, NULL, MC_BINARY_HEADER, false);
}

void
mc_binary_error(const struct mc_req *req, char *out)
{
    static const char msg[] = "Unknown command";
    unsigned char *o = (unsigned char *)out;
    uint32_t body = sizeof(msg) - 1;

    memset(o, 0, MC_BINARY_HEADER);
    o[0] = 0x81;                        /* response magic */
    o[1] = req->bin_opcode;
    o[6] = 0x00;                        /* status 0x0081: unknown command */
    o[7] = 0x81;
    o[8] = (unsigned char)(body >> 24);
    o[9] = (unsigned char)(body >> 16);
    o[10] = (unsigned char)(body >> 8);
    o[11] = (unsigned char)body;
    o[12] = (unsigned char)(req->bin_opaque >> 24);
    o[13] = (unsigned char)(req->bin_opaque >> 16);
    o[14] = (unsigned char)(req->bin_opaque >> 8);
    o[15] = (unsigned char)req->bin_opaque;
    memcpy(o + MC_BINARY_HEADER, msg, body);
}

static enum parse_status
parse_storage(struct req_line *l)
{
    struct mc_req *req = l->req;
    bool cas = req->cmd == MC_CAS;
    size_t want = cas ? 6 : 5;
    uint64_t unique = 0;
    uint32_t flags;
    int32_t exptime, vlen;
    size_t total;

    if (l->ntok != want && l->ntok != want + 1) {
        return line_fail(l, ERR_ERROR);
    }
    noreply_maybe(l);
    if (!key_ok(&l->tok[1], l->key_max)) {
        return line_fail(l, ERR_FORMAT);
    }
    if (!num_u32(&l->tok[2], &flags) || !num_i32(&l->tok[3], &exptime) ||
        !num_i32(&l->tok[4], &vlen) ||
        (cas && !num_u64(&l->tok[5], &unique))) {
        return line_fail(l, ERR_FORMAT);
    }
    if (vlen < 0 || vlen > INT_MAX - CRLF_LEN) {
        return line_fail(l, ERR_FORMAT);
    }
    if ((uint64_t)vlen > MC_VALUE_MAX) {
        /*
         * memcached swallows the data block and goes on. Holding or
         * dropping a gigabyte is not worth it for a proxy: close instead.
         */
        return req_fail(req, ERR_TOO_LARGE, req->line_len, true);
    }
    if (!add_key(l, &l->tok[1])) {
        return line_fail(l, ERR_LINE);
    }
    req->flags = flags;
    req->exptime = exptime;
    req->vlen = (uint64_t)vlen;
    req->cas = unique;
    req->data_off = req->line_len;
    total = req->line_len + (size_t)vlen + CRLF_LEN;
    req->total_len = total;
    if (l->len < total) {
        return PARSE_AGAIN;
    }
    /* memcached reads exactly vlen + 2 bytes, whatever they are. */
    if (l->buf[total - 2] != '\r' || l->buf[total - 1] != '\n') {
        req->bad_chunk = true;
        return req_fail(req, ERR_CHUNK, total, false);
    }
    return PARSE_OK;
}

/* get/gets/gat/gats: keys are not capped at TOKENS_MAX, so walk them all. */
static enum parse_status
parse_retrieval(struct req_line *l)
{
    struct mc_req *req = l->req;
    const char *cur = l->cur;
    struct token t;
    bool more, bad = false;
    uint32_t n = 0;
    int32_t exptime;

    if (!next_token(&cur, l->end, &t)) {
        return line_fail(l, ERR_ERROR);
    }
    more = true;
    if (req->cmd == MC_GAT || req->cmd == MC_GATS) {
        if (!num_i32(&t, &exptime)) {
            return line_fail(l, ERR_EXPTIME);
        }
        req->exptime = exptime;
        more = next_token(&cur, l->end, &t);
    }
    for (; more; more = next_token(&cur, l->end, &t)) {
        /* Too many keys is found whether or not the line is complete (see
         * long_line_pending()), so it wins over a bad key. */
        if (n++ == l->keys_cap) {
            return too_many_keys(req, req->line_len);
        }
        /* One bad key fails the whole request, as in memcached. */
        if (!key_ok(&t, l->key_max)) {
            bad = true;
        }
        if (!bad) {
            add_key(l, &t);
        }
    }
    if (bad) {
        return line_fail(l, ERR_FORMAT);
    }
    if (req->nkeys == 0) {
        return line_fail(l, "END");   /* "gat 10": nothing to fetch */
    }
    return PARSE_OK;
}

static enum parse_status
parse_delete(struct req_line *l)
{
    bool zero, noreply;

    if (l->ntok < 2 || l->ntok > 4) {
        return line_fail(l, ERR_ERROR);
    }
    if (l->ntok > 2) {
        /* Only "delete <key> 0" survives of the old hold time. */
        zero = tok_is(&l->tok[2], "0", 1);
        noreply = noreply_maybe(l);
        if (!((l->ntok == 3 && (zero || noreply)) ||
              (l->ntok == 4 && zero && noreply))) {
            return line_fail(l, ERR_DELETE);
        }
    }
    if (!key_ok(&l->tok[1], l->key_max)) {
        return line_fail(l, ERR_FORMAT);
    }
    if (!add_key(l, &l->tok[1])) {
        return line_fail(l, ERR_LINE);
    }
    return PARSE_OK;
}

/* incr, decr and touch: <cmd> <key> <number> [noreply]. */
static enum parse_status
parse_key_number(struct req_line *l)
{
    struct mc_req *req = l->req;
    int32_t exptime;

    if (l->ntok != 3 && l->ntok != 4) {
        return line_fail(l, ERR_ERROR);
    }
    noreply_maybe(l);
    if (!key_ok(&l->tok[1], l->key_max)) {
        return line_fail(l, ERR_FORMAT);
    }
    if (req->cmd == MC_TOUCH) {
        if (!num_i32(&l->tok[2], &exptime)) {
            return line_fail(l, ERR_EXPTIME);
        }
        req->exptime = exptime;
    } else if (!num_u64(&l->tok[2], &req->delta)) {
        return line_fail(l, ERR_DELTA);
    }
    if (!add_key(l, &l->tok[1])) {
        return line_fail(l, ERR_LINE);
    }
    return PARSE_OK;
}

static enum parse_status
parse_verbosity(struct req_line *l)
{
    uint32_t level;

    if (l->ntok != 2 && l->ntok != 3) {
        return line_fail(l, ERR_ERROR);
    }
    noreply_maybe(l);
    if (!num_u32(&l->tok[1], &level)) {
        return line_fail(l, ERR_FORMAT);
    }
    l->req->arg = level;
    return PARSE_OK;
}

static enum parse_status
parse_flush_all(struct req_line *l)
{
    struct mc_req *req = l->req;
    int32_t delay;

    if (l->ntok > 3) {
        return line_fail(l, ERR_ERROR);
    }
    noreply_maybe(l);
    /* memcached reads a delay whenever the token count says there is one,
     * so "flush_all noreply 10" fails on "noreply" and "flush_all 1 2"
     * flushes in 1 second. */
    if (l->ntok != (req->noreply ? 2u : 1u)) {
        if (!num_i32(&l->tok[1], &delay)) {
            return line_fail(l, ERR_EXPTIME);
        }
        req->arg = delay;
    }
    return PARSE_OK;
}

/* stats: the caller decides what to do with the arguments, if any. */
static enum parse_status
parse_stats(struct req_line *l)
{
    const char *p = l->cur;
    const char *e = l->end;

    while (p < e && *p == ' ') {
        p++;
    }
    while (e > p && e[-1] == ' ') {
        e--;
    }
    l->req->args.off = (uint32_t)(p - l->buf);
    l->req->args.len = (uint32_t)(e - p);
    return PARSE_OK;
}

/*
 * Not a command memring serves. memcached answers ERROR, except that a name
 * falling through all of its branches with an HTTP version as the last kept
 * token ("GET / HTTP/1.1") makes it close the connection without a word.
 */
/* memcached 1.6 refuses a meta command of this many tokens or more
 * (MFLAG_MAX_OPT_LENGTH, its count including the line's end). */
#define META_TOKENS_MAX 20
#define ERR_META_FLAGS "CLIENT_ERROR options flags too long"

/*
 * mg, ms, md, ma, mn, me, checked as far as memcached 1.6 checks them
 * before it looks at the flags: what it answers then (and, for ms, that it
 * has not yet read the data block's length, so that the block is read as
 * the next command) is answered here. Flags are the server's to check: a
 * request passed on gets the server's own answer, data block included.
 */
static enum parse_status
parse_meta(struct req_line *l)
{
    struct mc_req *req = l->req;
    size_t flags_from = 2, i;
    int32_t vlen;

    if (req->cmd == MC_MN) {
        return PARSE_OK;
    }
    if (l->ntok < 2) {
        return line_fail(l, req->cmd == MC_ME ? ERR_FORMAT : ERR_ERROR);
    }
    if (!key_ok(&l->tok[1], l->key_max)) {
        return line_fail(l, ERR_FORMAT);
    }
    if (req->cmd == MC_MS) {
        if (l->ntok == 2) {
            return line_fail(l, ERR_FORMAT);
        }
        if (l->ntok >= META_TOKENS_MAX) {
            return line_fail(l, ERR_META_FLAGS);
        }
        if (!num_i32(&l->tok[2], &vlen) || vlen < 0 ||
            vlen > INT_MAX - CRLF_LEN) {
            return line_fail(l, ERR_FORMAT);
        }
        if ((uint64_t)vlen > MC_VALUE_MAX) {
            return req_fail(req, ERR_TOO_LARGE, req->line_len, true);
        }
        req->vlen = (uint64_t)vlen;
        req->data_off = req->line_len;
        req->total_len = req->line_len + (size_t)vlen + CRLF_LEN;
        flags_from = 3;
    } else if (req->cmd != MC_ME && l->ntok >= META_TOKENS_MAX) {
        return line_fail(l, req->cmd == MC_MG ?
                         "CLIENT_ERROR options flags are too long" :
                         ERR_META_FLAGS);
    }
    if (!add_key(l, &l->tok[1])) {
        return line_fail(l, ERR_LINE);
    }
    /* memcached reads a flag by its first byte ("qx" is q) */
    for (i = flags_from; i < l->ntok; i++) {
        req->meta_quiet |= l->tok[i].p[0] == 'q';
        req->meta_b |= l->tok[i].p[0] == 'b';
    }
    if (req->cmd == MC_ME) {
        /* me reads no flags but a b right after the key */
        req->meta_quiet = false;
        req->meta_b = l->ntok >= 3 && tok_is(&l->tok[2], "b", 1);
    }
    return l->len < req->total_len ? PARSE_AGAIN : PARSE_OK;
}

static enum parse_status
parse_unknown(struct req_line *l)
{
    static const char *const known[] = {
        "bget", "lru_crawler", "watch", "lru", "extstore", "refresh_certs",
    };
    const struct token *t = &l->tok[0];
    const struct token *last = &l->tok[l->ntok - 1];
    size_t i;

    int32_t vlen;

    /* A meta set declares a data block: drop it with the line, or its
     * bytes would be read as commands. memring does not serve meta
     * commands yet. */
    if (tok_is(t, "ms", 2) && l->ntok >= 3 && num_i32(&l->tok[2], &vlen) &&
        vlen >= 0) {
        l->req->swallow = (uint64_t)vlen + CRLF_LEN;
        return line_fail(l, ERR_ERROR);
    }
    /* Its 'g', 's', 'a', 'c', 'i', 'd', 't' and two-letter 'm' (meta)
     * branches end in ERROR. */
    if (memchr("gsacidt", t->p[0], 7) != NULL ||
        (t->p[0] == 'm' && t->len == 2)) {
        return line_fail(l, ERR_ERROR);
    }
    for (i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (tok_is(t, known[i], strlen(known[i]))) {
            return line_fail(l, ERR_ERROR);
        }
    }
    if (last->len >= 5 && memcmp(last->p, "HTTP/", 5) == 0) {
        return req_fail(l->req, NULL, l->req->line_len, true);
    }
    return line_fail(l, ERR_ERROR);
}

static enum mc_cmd
cmd_lookup(const struct token *t)
{
    unsigned int c;

    for (c = MC_UNKNOWN + 1; c <= MC_CLIENT_CMD_LAST; c++) {
        if (tok_is(t, cmd_table[c].name, cmd_table[c].len)) {
            return (enum mc_cmd)c;
        }
    }
    return MC_UNKNOWN;
}

enum parse_status
mc_parse_req(const char *buf, size_t len, struct mc_req *req,
             struct mc_span *keys, uint32_t keys_cap)
{
    struct mc_scan scan;

    memset(&scan, 0, sizeof(scan));
    return mc_parse_req_scan(buf, len, req, keys, keys_cap, MC_KEY_MAX,
                             &scan);
}

enum parse_status
mc_parse_req_scan(const char *buf, size_t len, struct mc_req *req,
                  struct mc_span *keys, uint32_t keys_cap, size_t key_max,
                  struct mc_scan *scan)
{
    struct req_line l;
    const char *nl, *nul;
    size_t text, from;

    memset(req, 0, sizeof(*req));
    req->arg = -1;

    if (len > 0 && (unsigned char)buf[0] == MC_BINARY_MAGIC) {
        return parse_binary((const unsigned char *)buf, len, req);
    }
    from = scan->nl_off < len ? scan->nl_off : len;
    nl = memchr(buf + from, '\n', len - from);
    if (nl == NULL) {
        scan->nl_off = len;
        if (len <= SHORT_LINE_MAX) {
            return PARSE_AGAIN;
        }
        return long_line_pending(buf, len, req, keys_cap, scan);
    }
    text = (size_t)(nl - buf);
    if (text >= MC_TEXT_LINE_MAX && !retrieval_prefix(buf, text)) {
        /* memcached's buffer filled up before the \n came */
        return req_fail(req, NULL, len, true);
    }
    req->line_len = text + 1;
    req->total_len = req->line_len;

    /* As memcached: drop one \r before the \n (but not from "\r\n"
     * alone), then the line ends at a NUL since it is read with
     * strlen(). */
    if (text > 1 && buf[text - 1] == '\r') {
        text--;
    }
    nul = memchr(buf, '\0', text);
    if (nul != NULL) {
        text = (size_t)(nul - buf);
    }
    req->text_len = text;

    l.buf = buf;
    l.len = len;
    l.end = buf + text;
    l.cur = buf;
    l.req = req;
    l.keys = keys;
    l.keys_cap = keys_cap;
    l.key_max = key_max;
    if (!next_token(&l.cur, l.end, &l.tok[0]) || l.tok[0].len < 2) {
        return line_fail(&l, ERR_ERROR);
    }
    req->cmd = cmd_lookup(&l.tok[0]);
    if (mc_cmd_is_retrieval(req->cmd)) {
        return parse_retrieval(&l);
    }
    if (req->cmd == MC_STATS) {
        return parse_stats(&l);
    }
    l.ntok = 1;
    while (l.ntok < TOKENS_MAX && next_token(&l.cur, l.end, &l.tok[l.ntok])) {
        l.ntok++;
    }

    switch (req->cmd) {
    case MC_SET:
    case MC_ADD:
    case MC_REPLACE:
    case MC_APPEND:
    case MC_PREPEND:
    case MC_CAS:
        return parse_storage(&l);
    case MC_DELETE:
        return parse_delete(&l);
    case MC_INCR:
    case MC_DECR:
    case MC_TOUCH:
        return parse_key_number(&l);
    case MC_VERBOSITY:
        return parse_verbosity(&l);
    case MC_FLUSH_ALL:
        return parse_flush_all(&l);
    case MC_VERSION:
    case MC_QUIT:
        return PARSE_OK;            /* memcached ignores any arguments */
    case MC_MG:
    case MC_MS:
    case MC_MD:
    case MC_MA:
    case MC_MN:
    case MC_ME:
        return parse_meta(&l);
    case MC_GET:
    case MC_GETS:
    case MC_GAT:
    case MC_GATS:
    case MC_STATS:
    case MC_UNKNOWN:
    case MC_META_GET:
    case MC_META_ADD:
    case MC_META_CHUNK:
    case MC_CMD_COUNT:
        break;
    }
    req->cmd = MC_UNKNOWN;
    return parse_unknown(&l);
}

/* ---------------------------------------------------------------------
 * Responses
 * ------------------------------------------------------------------- */

/* Digits only up to ' ' or e, at most max: the server writes them so. */
static bool
rsp_number(const char **pp, const char *e, uint64_t max, uint64_t *out)
{
    const char *p = *pp;
    uint64_t v = 0;

    if (p == e || *p < '0' || *p > '9') {
        return false;
    }
    for (; p < e && *p != ' '; p++) {
        uint64_t d;

        if (*p < '0' || *p > '9') {
            return false;
        }
        d = (uint64_t)(*p - '0');
        if (v > (max - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    *pp = p;
    *out = v;
    return true;
}

/* The header line (text bytes) of a unit with a data block of rsp->vlen
 * bytes: the whole unit, when it is in. */
static enum parse_status
data_block(const char *buf, size_t len, size_t text, struct mc_rsp *rsp)
{
    size_t total = text + CRLF_LEN + (size_t)rsp->vlen + CRLF_LEN;

    rsp->len = total;
    if (len < total) {
        return PARSE_AGAIN;
    }
    if (buf[total - 2] != '\r' || buf[total - 1] != '\n') {
        return PARSE_ERROR;
    }
    return PARSE_OK;
}

/* VALUE <key> <flags> <bytes> [<cas>]\r\n<data>\r\n */
static enum parse_status
parse_value(const char *buf, size_t len, size_t text, struct mc_rsp *rsp)
{
    const char *p = buf + 6;
    const char *e = buf + text;
    const char *sp;
    struct token key;
    uint64_t v;

    sp = memchr(p, ' ', (size_t)(e - p));
    if (sp == NULL) {
        return PARSE_ERROR;
    }
    key.p = p;
    key.len = (size_t)(sp - p);
    if (key.len == 0 || !key_ok(&key, MC_KEY_MAX)) {
        return PARSE_ERROR;
    }
    p = sp + 1;
    if (!rsp_number(&p, e, UINT32_MAX, &v) || p == e) {
        return PARSE_ERROR;
    }
    p++;
    if (!rsp_number(&p, e, MC_VALUE_MAX, &rsp->vlen)) {
        return PARSE_ERROR;
    }
    if (p < e) {
        p++;
        if (!rsp_number(&p, e, UINT64_MAX, &v) || p != e) {
            return PARSE_ERROR;
        }
    }
    rsp->type = MC_RSP_VALUE;
    rsp->key.off = (uint32_t)(key.p - buf);
    rsp->key.len = (uint32_t)key.len;
    return data_block(buf, len, text, rsp);
}

/* VA <bytes>[ <flags>]\r\n<data>\r\n: meta mg's hit. */
static enum parse_status
parse_meta_value(const char *buf, size_t len, size_t text, struct mc_rsp *rsp)
{
    const char *p = buf + 3;
    const char *e = buf + text;

    if (!rsp_number(&p, e, MC_VALUE_MAX, &rsp->vlen)) {
        return PARSE_ERROR;
    }
    if (p < e) {
        p++;
        rsp->meta.off = (uint32_t)(p - buf);
        rsp->meta.len = (uint32_t)(e - p);
    }
    rsp->type = MC_RSP_META_VALUE;
    return data_block(buf, len, text, rsp);
}

bool
mc_meta_number(const char *buf, const struct mc_rsp *rsp, char flag,
               int64_t *out)
{
    const char *p = buf + rsp->meta.off;
    const char *e = p + rsp->meta.len;

    while (p < e) {
        const char *end = memchr(p, ' ', (size_t)(e - p));
        bool neg;
        uint64_t v;

        if (end == NULL) {
            end = e;
        }
        if (*p == flag) {
            p++;
            neg = p < end && *p == '-';
            p += neg;
            if (!rsp_number(&p, end, INT64_MAX, &v) || p != end) {
                return false;
            }
            *out = neg ? -(int64_t)v : (int64_t)v;
            return true;
        }
        p = end + (end < e);
    }
    return false;
}

static const struct {
    const char       *text;
    size_t           len;
    bool             more;  /* " <anything>" may follow */
    enum mc_rsp_word word;
} rsp_words[] = {
#define WORD(s, more, word) { s, sizeof(s) - 1, more, word }
    WORD("STORED", false, MC_WORD_STORED),
    WORD("NOT_STORED", false, MC_WORD_NOT_STORED),
    WORD("EXISTS", false, MC_WORD_EXISTS),
    WORD("NOT_FOUND", false, MC_WORD_NOT_FOUND),
    WORD("DELETED", false, MC_WORD_DELETED),
    WORD("TOUCHED", false, MC_WORD_TOUCHED),
    WORD("OK", false, MC_WORD_OK),
    WORD("VERSION", true, MC_WORD_VERSION),
    WORD("ERROR", true, MC_WORD_ERROR),
    WORD("CLIENT_ERROR", true, MC_WORD_ERROR),
    WORD("SERVER_ERROR", true, MC_WORD_ERROR),
    WORD("HD", true, MC_WORD_META_HD),
    WORD("EN", true, MC_WORD_META_EN),
    WORD("ME", true, MC_WORD_META_ME),
    WORD("MN", false, MC_WORD_META_MN),
    WORD("NS", true, MC_WORD_META_NS),
    WORD("EX", true, MC_WORD_META_EX),
    WORD("NF", true, MC_WORD_META_NF),
#undef WORD
};

bool
mc_rsp_fits(enum mc_cmd cmd, const struct mc_rsp *rsp)
{
    enum mc_rsp_word w = rsp->word;

    if (rsp->type == MC_RSP_META_VALUE) {
        return cmd == MC_META_GET || cmd == MC_META_CHUNK || cmd == MC_MG ||
               cmd == MC_MA;
    }
    if (rsp->type != MC_RSP_LINE) {
        return mc_cmd_is_retrieval(cmd);
    }
    if (w == MC_WORD_ERROR) {
        return true;
    }
    if (cmd == MC_META_GET || cmd == MC_META_CHUNK) {
        return w == MC_WORD_META_EN;
    }
    switch (cmd) {
    case MC_MG:
        return w == MC_WORD_META_HD || w == MC_WORD_META_EN;
    case MC_MS:
    case MC_MA:
        return w == MC_WORD_META_HD || w == MC_WORD_META_NS ||
               w == MC_WORD_META_EX || w == MC_WORD_META_NF;
    case MC_MD:
        return w == MC_WORD_META_HD || w == MC_WORD_META_EX ||
               w == MC_WORD_META_NF;
    case MC_ME:
        return w == MC_WORD_META_ME || w == MC_WORD_META_EN;
    default:
        break;
    }
    if (cmd == MC_META_ADD) {
        return w == MC_WORD_META_HD || w == MC_WORD_META_NS ||
               w == MC_WORD_META_EX || w == MC_WORD_META_NF;
    }
    if (w >= MC_WORD_META_HD) {
        return false;           /* a meta answer to a classic command */
    }
    if (mc_cmd_is_retrieval(cmd)) {
        return false;           /* VALUE ... END, or an error */
    }
    if (mc_cmd_is_storage(cmd)) {
        return w == MC_WORD_STORED || w == MC_WORD_NOT_STORED ||
               w == MC_WORD_EXISTS || w == MC_WORD_NOT_FOUND;
    }
    switch (cmd) {
    case MC_DELETE:
        return w == MC_WORD_DELETED || w == MC_WORD_NOT_FOUND;
    case MC_INCR:
    case MC_DECR:
        return w == MC_WORD_NUMBER || w == MC_WORD_NOT_FOUND;
    case MC_TOUCH:
        return w == MC_WORD_TOUCHED || w == MC_WORD_NOT_FOUND;
    case MC_FLUSH_ALL:
    case MC_VERBOSITY:
        return w == MC_WORD_OK;
    case MC_VERSION:
        return w == MC_WORD_VERSION;
    default:
        return true;            /* not passed on to a server */
    }
}

enum parse_status
mc_parse_rsp(const char *buf, size_t len, struct mc_rsp *rsp)
{
    const char *nl, *p;
    size_t text, i;
    uint64_t v;

    memset(rsp, 0, sizeof(*rsp));
    nl = memchr(buf, '\n', len < MC_RSP_LINE_MAX ? len : MC_RSP_LINE_MAX);
    if (nl == NULL) {
        return len >= MC_RSP_LINE_MAX ? PARSE_ERROR : PARSE_AGAIN;
    }
    if (nl == buf || nl[-1] != '\r') {
        return PARSE_ERROR;
    }
    text = (size_t)(nl - buf) - 1;
    if (text > 6 && memcmp(buf, "VALUE ", 6) == 0) {
        return parse_value(buf, len, text, rsp);
    }
    if (text > 3 && memcmp(buf, "VA ", 3) == 0) {
        return parse_meta_value(buf, len, text, rsp);
    }
    rsp->len = text + CRLF_LEN;
    if (text == 3 && memcmp(buf, "END", 3) == 0) {
        rsp->type = MC_RSP_END;
        return PARSE_OK;
    }
    rsp->type = MC_RSP_LINE;
    p = buf;
    if (rsp_number(&p, buf + text, UINT64_MAX, &v) && p == buf + text) {
        return PARSE_OK;            /* incr/decr */
    }
    for (i = 0; i < sizeof(rsp_words) / sizeof(rsp_words[0]); i++) {
        size_t n = rsp_words[i].len;

        if (text >= n && memcmp(buf, rsp_words[i].text, n) == 0 &&
            (text == n || (rsp_words[i].more && buf[n] == ' '))) {
            rsp->word = rsp_words[i].word;
            rsp->is_error = rsp->word == MC_WORD_ERROR;
            if (rsp->word >= MC_WORD_META_HD && text > n) {
                rsp->meta.off = (uint32_t)n + 1;
                rsp->meta.len = (uint32_t)(text - n - 1);
            }
            return PARSE_OK;
        }
    }
    return PARSE_ERROR;
}

/* memcached's base64 alphabet value of c, or -1. */
static int
base64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

long
mc_base64_decode(const char *in, size_t len, unsigned char *out)
{
    uint32_t acc = 0;
    size_t i, pad = 0;
    long n = 0;
    int bits = 0;

    if (len == 0 || len % 4 != 0) {
        return -1;
    }
    while (pad < 2 && in[len - 1 - pad] == '=') {
        pad++;
    }
    for (i = 0; i < len - pad; i++) {
        int v = base64_value((unsigned char)in[i]);

        if (v < 0) {
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    return n;
}
