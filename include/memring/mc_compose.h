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

/* Request m (parsed from buf) as a server should get it: the client's
 * bytes without " noreply" (the proxy answers for the client), data block
 * included. 0 or UV_ENOMEM. */
int mc_compose_request(struct buf *out, const char *buf,
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
