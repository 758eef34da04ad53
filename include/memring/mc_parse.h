/*
 * mc_parse: resumable parser for memcached's text protocol, requests from
 * clients and responses from servers. It works on contiguous bytes, does no
 * I/O and allocates nothing. PARSE_AGAIN consumes nothing: call again with
 * the same bytes plus more.
 */
#ifndef MEMRING_MC_PARSE_H
#define MEMRING_MC_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MC_KEY_MAX      250      /* memcached's KEY_MAX_LENGTH */
#define MC_TEXT_LINE_MAX 16384   /* longest line but get/gets/gat/gats, \n
                                  * incl.: memcached's read buffer */
#define MC_BINARY_MAGIC 0x80     /* first byte of a binary-protocol request */
#define MC_BINARY_HEADER 24      /* its fixed header */
#define MC_VALUE_MAX    (1024ULL * 1024 * 1024) /* longest value passed on */
#define MC_RSP_LINE_MAX 1024     /* longest reply line taken from a server */

enum parse_status {
    PARSE_OK = 0,
    PARSE_AGAIN,
    PARSE_ERROR
};

enum mc_cmd {
    MC_UNKNOWN = 0,
    MC_GET,
    MC_GETS,
    MC_GAT,
    MC_GATS,
    MC_SET,
    MC_ADD,
    MC_REPLACE,
    MC_APPEND,
    MC_PREPEND,
    MC_CAS,
    MC_DELETE,
    MC_INCR,
    MC_DECR,
    MC_TOUCH,
    MC_VERSION,
    MC_VERBOSITY,
    MC_QUIT,
    MC_FLUSH_ALL,
    MC_STATS,
    MC_MG,              /* meta commands a client sends: passed on with */
    MC_MS,              /* their flags (quiet ones followed by mn, see */
    MC_MD,              /* mc_compose_meta_request()); mn is answered */
    MC_MA,
    MC_MN,
    MC_ME,
    /* Meta commands memring sends to servers itself (a warm-up window's
     * lookups on a previous owner and copies to the new one, see warmup.h);
     * a client's "mg"/"ms" is not read as these. */
    MC_META_GET,        /* mg <key> v f t */
    MC_META_ADD,        /* ms <key> <n> F<flags> T<ttl> ME [c] */
    MC_META_CHUNK,      /* mg <key> v f t: a split value's chunk (split.h) */
    MC_CMD_COUNT
};

/* The last command a client's line can name. */
#define MC_CLIENT_CMD_LAST MC_ME

/* A slice of the parsed buffer: buf + off, len bytes. */
struct mc_span {
    uint32_t off;
    uint32_t len;
};

/*
 * A parsed client request. Offsets are from the start of the buffer handed
 * to mc_parse_req(). On PARSE_ERROR only the error fields are meaningful;
 * on PARSE_AGAIN only total_len is.
 */
struct mc_req {
    enum mc_cmd    cmd;
    size_t         line_len;   /* request line including its \r\n or \n */
    size_t         text_len;   /* the line as memcached reads it: up to a
                                * NUL, without its \r\n (or \n) */
    size_t         total_len;  /* line + data block (+ its \r\n), if any.
                                * PARSE_AGAIN: bytes needed when known (a
                                * storage header was read), else 0 */
    bool           noreply;
    size_t         noreply_off; /* noreply: end of the token before
                                 * "noreply"; buf[0..noreply_off) + "\r\n"
                                 * is the line without it */
    uint32_t       nkeys;      /* keys written to the caller's array */
    uint32_t       flags;      /* storage: client flags (memcached keeps
                                * the low 32 bits of a larger number) */
    int64_t        exptime;    /* storage, touch, gat/gats: the int32 that
                                * memcached reads (it wraps, as there) */
    uint64_t       vlen;       /* storage: value length (data block) */
    uint64_t       cas;        /* cas: unique */
    uint64_t       delta;      /* incr/decr */
    int64_t        arg;        /* verbosity level, flush_all delay (-1: none;
                                * memcached treats a delay <= 0 as none) */
    size_t         data_off;   /* storage: where the data block starts */
    struct mc_span args;       /* stats: the arguments after "stats", if any */

    /* PARSE_ERROR: what memcached 1.6 would do with these bytes */
    const char     *error;     /* reply line without \r\n, e.g. "ERROR";
                                * NULL: send nothing (noreply, or a silent
                                * close). Not always an error: "gat 10" with
                                * no key gets "END" */
    size_t         skip;       /* bytes to drop (line, or line + data);
                                * never more than len */
    bool           close;      /* close the connection after the reply */
    bool           bad_chunk;  /* a storage request whose data block does
                                * not end in \r\n: the other fields are as
                                * for PARSE_OK (skip == total_len). memcached
                                * may answer it otherwise (a value over its
                                * item size is refused first, and a set's
                                * old value deleted), so a proxy may pass it
                                * on for the server to answer */
    uint64_t       swallow;    /* bytes after skip to drop as they arrive:
                                * the data block of a request memring does
                                * not serve (ms, a binary request's body) */
    bool           meta_quiet; /* meta: a q flag (the server may send
                                * nothing: memring asks an mn after it) */
    bool           meta_b;     /* meta: a b flag (the key is base64) */
    bool           binary;     /* a binary-protocol request: answer with
                                * mc_binary_error() instead of error */
    uint8_t        bin_opcode; /* binary: its opcode and opaque, echoed */
    uint32_t       bin_opaque;
};

/*
 * What mc_parse_req_scan() learnt of a line whose \n has not arrived, so
 * that a long get line is scanned once, not once per read. The caller
 * zeroes it whenever it consumes bytes (a new request starts).
 */
struct mc_scan {
    size_t   nl_off;    /* no \n in buf[0..nl_off) */
    size_t   tok_off;   /* tokens counted in buf[0..tok_off) */
    uint32_t ntok;      /* tokens begun there */
    bool     in_tok;    /* buf[tok_off - 1] is inside a token */
    bool     cut;       /* a NUL was seen: the line's text ended there */
};

/*
 * Parses one request from buf[0..len). keys/keys_cap receive the key spans
 * (get-family may have many). PARSE_ERROR fills req->error/skip/close/
 * swallow; the caller replies error (if not NULL; binary: the binary
 * error), drops skip bytes and then swallow more as they come, and goes on
 * (or closes).
 * Bounds, so that a client cannot make the proxy buffer without end: a
 * get/gets/gat/gats line may be of any length, but one with more than
 * keys_cap keys gets "CLIENT_ERROR line too long" and close; any other
 * line whose \n is not in its first MC_TEXT_LINE_MAX bytes closes silently
 * (memcached, whose read buffer is that long, does the same). These hold
 * whether or not the \n has arrived, so the result never depends on how
 * the bytes were split.
 * A value longer than MC_VALUE_MAX gets "SERVER_ERROR object too large for
 * cache" and close (memcached would swallow the data block instead).
 * Keys are what memcached takes: 1 to MC_KEY_MAX bytes of anything but
 * space and \n (a NUL ends the line, as there).
 * A first byte MC_BINARY_MAGIC is a binary-protocol request: PARSE_ERROR
 * with binary set, its header skipped and its body swallowed.
 */
enum parse_status mc_parse_req(const char *buf, size_t len, struct mc_req *req,
                               struct mc_span *keys, uint32_t keys_cap);

/* mc_parse_req() resuming the search for the line's end where an earlier
 * call on the same bytes left it: scan is the caller's, zeroed for each new
 * request. Keys longer than key_max (<= MC_KEY_MAX; less where a pool's
 * prefix takes room) get memcached's answer for a key over MC_KEY_MAX. */
enum parse_status mc_parse_req_scan(const char *buf, size_t len,
                                    struct mc_req *req, struct mc_span *keys,
                                    uint32_t keys_cap, size_t key_max,
                                    struct mc_scan *scan);

/* memcached's binary reply "unknown command" (status 0x0081) to the binary
 * request req: its opcode and opaque echoed, the message as body. Writes
 * MC_BINARY_ERROR_LEN bytes to out. */
#define MC_BINARY_ERROR_LEN (MC_BINARY_HEADER + 15)
void mc_binary_error(const struct mc_req *req, char *out);

enum mc_rsp_type {
    MC_RSP_VALUE = 0,   /* VALUE <key> <flags> <bytes> [<cas>]\r\n<data>\r\n */
    MC_RSP_END,         /* END\r\n */
    MC_RSP_LINE,        /* any other one-line reply: STORED, 42, ERROR ... */
    MC_RSP_META_VALUE   /* VA <bytes> <flags>*\r\n<data>\r\n (meta mg hit) */
};

/* Which one-line reply it is (LINE units). */
enum mc_rsp_word {
    MC_WORD_NUMBER = 0, /* incr/decr's new value */
    MC_WORD_STORED,
    MC_WORD_NOT_STORED,
    MC_WORD_EXISTS,
    MC_WORD_NOT_FOUND,
    MC_WORD_DELETED,
    MC_WORD_TOUCHED,
    MC_WORD_OK,
    MC_WORD_VERSION,
    MC_WORD_ERROR,      /* ERROR, CLIENT_ERROR, SERVER_ERROR */
    MC_WORD_META_HD,    /* meta: HD <flags>* (stored, or a hit without v) */
    MC_WORD_META_EN,    /* meta: EN (mg miss) */
    MC_WORD_META_NS,    /* meta: NS <flags>* (not stored) */
    MC_WORD_META_EX,    /* meta: EX <flags>* (CAS mismatch) */
    MC_WORD_META_NF,    /* meta: NF <flags>* (not found) */
    MC_WORD_META_ME,    /* meta: ME <key> <details> (me's answer) */
    MC_WORD_META_MN     /* meta: MN (no-op) */
};

/* One unit of a server's reply stream. */
struct mc_rsp {
    enum mc_rsp_type type;
    enum mc_rsp_word word;     /* LINE: which one */
    size_t           len;      /* bytes of this unit, data block included.
                                * PARSE_AGAIN: bytes needed when known (a
                                * VALUE header was read), else 0 */
    struct mc_span   key;      /* VALUE: the key */
    uint64_t         vlen;     /* VALUE, META_VALUE: data length */
    struct mc_span   meta;     /* META_VALUE, meta words: the return
                                * flags after the code ("f5 t-1 c9") */
    bool             is_error; /* LINE: ERROR, CLIENT_ERROR or SERVER_ERROR */
};

/*
 * Parses the next unit of a server reply from buf[0..len). Lines must end
 * in \r\n (memcached always sends it). PARSE_ERROR means the stream cannot
 * be trusted (garbage, bad framing, a line longer than MC_RSP_LINE_MAX, a
 * VALUE longer than MC_VALUE_MAX): the caller closes the server connection
 * and fails what it had in flight.
 */
enum parse_status mc_parse_rsp(const char *buf, size_t len, struct mc_rsp *rsp);

/* True when a one-line reply rsp is one memcached sends to cmd (an error
 * line always is): STORED is no answer to incr. */
bool mc_rsp_fits(enum mc_cmd cmd, const struct mc_rsp *rsp);

/* The value of return flag `flag` in a meta reply's flags (rsp->meta of
 * the unit at buf): "t-1" gives -1. False when the flag is absent or not a
 * number. */
bool mc_meta_number(const char *buf, const struct mc_rsp *rsp, char flag,
                    int64_t *out);

const char *mc_cmd_name(enum mc_cmd cmd);

/* True for get, gets, gat and gats: replies are VALUE ... END. */
bool mc_cmd_is_retrieval(enum mc_cmd cmd);

/* True for set, add, replace, append, prepend and cas. */
bool mc_cmd_is_storage(enum mc_cmd cmd);

/* True for a command with a data block: storage, and meta set. */
bool mc_cmd_has_value(enum mc_cmd cmd);

/* True for a client's meta command forwarded to a server (mg, ms, md, ma,
 * me). */
bool mc_cmd_is_meta(enum mc_cmd cmd);

/* A base64 key (meta's b flag) decoded into out (room for len * 3 / 4
 * bytes); its length, or -1 when it is not base64. */
long mc_base64_decode(const char *in, size_t len, unsigned char *out);

#endif /* MEMRING_MC_PARSE_H */
