/*
 * mc_compose: the writing half of the classic text protocol codec (its
 * reading half is mc_parse): request lines toward servers, reply lines
 * toward clients. Every byte of text memring itself writes is composed
 * here; everything else on the request path passes parsed units along.
 */
#ifndef MEMRING_MC_COMPOSE_H
#define MEMRING_MC_COMPOSE_H

#include "memring/mc_parse.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

#define MC_END_LINE "END\r\n"

/*
 * A pool's key prefix (prefix: in the config): servers see it in every
 * key, clients never do. It goes in front of the key, or, with after_q
 * (libmc's normalize_key()), after the '?' a key may start with.
 */
struct mc_prefix {
    const char *s;      /* NULL: no prefix */
    size_t     len;     /* 0: no prefix; else < MC_KEY_MAX */
    bool       after_q; /* libmc: "?k" becomes "?" prefix "k" */
};

/* Where p goes in key[0..len): 0, or 1 after a leading '?' (after_q). */
size_t mc_prefix_at(const struct mc_prefix *p, const char *key, size_t len);

/* Writes the key servers see for key[0..len) to out (len + p->len
 * bytes); returns that length. */
size_t mc_prefix_key(const struct mc_prefix *p, const char *key, size_t len,
                     char *out);

/* Request m (parsed from buf) as a server should get it: the client's
 * bytes without " noreply" (the proxy answers for the client), data block
 * included. 0 or UV_ENOMEM. */
int mc_compose_request(struct buf *out, const char *buf,
                       const struct mc_req *m);

/* mc_compose_request() with p in m's key (one key: storage, delete,
 * incr/decr, touch). 0 or UV_ENOMEM. */
int mc_compose_request_prefixed(struct buf *out, const char *buf,
                                const struct mc_req *m,
                                const struct mc_span *key,
                                const struct mc_prefix *p);

/* Retrieval m (parsed from buf, keys[0..m->nkeys)) as a server should
 * get it with p in every key: its text up to the first key, the keys
 * with p, one space apart, then \r\n. pkeys[i] receives key i's span in
 * out (from out->len on entry). 0 or UV_ENOMEM. */
int mc_compose_retrieval_prefixed(struct buf *out, const char *buf,
                                  const struct mc_req *m,
                                  const struct mc_span *keys,
                                  struct mc_span *pkeys,
                                  const struct mc_prefix *p);

/* VALUE unit u (its bytes at unit) as the client should get it: strip
 * bytes taken out of its key, after its leading '?' when after_q (the
 * inverse of mc_prefix_key(), for a key known to carry the prefix: the
 * caller matched it against the keys it sent). 0 or UV_ENOMEM. */
int mc_compose_value_unprefixed(struct buf *out, const char *unit,
                                const struct mc_rsp *u, size_t strip,
                                bool after_q);

/* Meta command m (parsed from buf) as a server should get it: as the
 * client wrote it, data block included; in quiet mode followed by "mn",
 * whose MN says the server has sent whatever quiet mode lets through.
 * 0 or UV_ENOMEM. */
int mc_compose_meta_request(struct buf *out, const char *buf,
                            const struct mc_req *m);

/* A retrieval line for a subset of keys: mc_compose_retrieval_head(),
 * then mc_compose_key() for each key, then mc_compose_eol(). exptime is
 * used by gat/gats only. 0 or UV_ENOMEM. */
int mc_compose_retrieval_head(struct buf *out, enum mc_cmd cmd,
                              int64_t exptime);
int mc_compose_key(struct buf *out, const char *key, size_t len);
int mc_compose_eol(struct buf *out);

/* "delete <key>\r\n". 0 or UV_ENOMEM. */
int mc_compose_delete(struct buf *out, const char *key, size_t len);

/* Meta commands memring sends a server on its own account (warmup.h):
 * "mg <key> v f t\r\n" (the value, its client flags and remaining TTL);
 * "ms <key> <dlen> F<flags> T<ttl> ME[ c]\r\n<data>\r\n", an add that
 * never overwrites (want_cas asks for the new item's CAS back).
 * 0 or UV_ENOMEM. */
int mc_compose_meta_get(struct buf *out, const char *key, size_t len);
int mc_compose_meta_add(struct buf *out, const char *key, size_t klen,
                        uint32_t flags, int64_t ttl, const char *data,
                        size_t dlen, bool want_cas);

/* "set <key> <flags> <exptime> <dlen>\r\n<data>\r\n" (a split value's
 * chunk or index). 0 or UV_ENOMEM. */
int mc_compose_set(struct buf *out, const char *key, size_t klen,
                   uint32_t flags, int64_t exptime, const char *data,
                   size_t dlen);

/* "VALUE <key> <flags> <dlen>[ <cas>]\r\n<data>\r\n" (cas NULL: none).
 * 0 or UV_ENOMEM. */
int mc_compose_value(struct buf *out, const char *key, size_t klen,
                     uint32_t flags, const char *data, size_t dlen,
                     const uint64_t *cas);

/* One reply line: text, then \r\n. 0 or UV_ENOMEM. */
int mc_compose_line(struct buf *out, const char *text);

/* "SERVER_ERROR <why>\r\n". 0 or UV_ENOMEM. */
int mc_compose_server_error(struct buf *out, const char *why);

/* "STAT <name> <v>\r\n" or, with text, "STAT <name> <text>\r\n".
 * 0 or UV_ENOMEM. */
int mc_compose_stat(struct buf *out, const char *name, uint64_t v);
int mc_compose_stat_text(struct buf *out, const char *name,
                         const char *text);

#endif /* MEMRING_MC_COMPOSE_H */
