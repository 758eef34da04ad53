/*
 * fuzz_conf: conf_parse() on arbitrary YAML (from memory, not
 * NUL-terminated, so ASan sees any read past the end). A refused config
 * leaves one "conf: ..." message and nothing allocated (LeakSanitizer); an
 * accepted one holds values the rest of memring may rely on, and its pools
 * build rings that place keys on their servers.
 */
#include "memring/conf.h"

#include "memring/hash.h"
#include "memring/ring.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#define KEY_MAX 250         /* memcached's longest key */

/* twemproxy's server order: shorter name first, then bytewise; no ties. */
static bool
name_before(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    return la != lb ? la < lb : memcmp(a, b, la) < 0;
}

static void
check_pool(const struct conf_pool *cp, const uint8_t *data, size_t size)
{
    struct ring_node *nodes;
    struct ring *r;
    uint32_t i;
    size_t tag = strlen(cp->hash_tag);

    CHECK(cp->name != NULL);
    CHECK(cp->listen.text != NULL);
    CHECK((cp->listen.host != NULL) != (cp->listen.path != NULL));
    CHECK(cp->listen.path != NULL || cp->listen.port > 0);
    CHECK((unsigned int)cp->hash < HASH_COUNT);
    CHECK((unsigned int)cp->distribution < DIST_COUNT);
    CHECK(tag == 0 || tag == 2);
    CHECK(cp->timeout >= -1);
    CHECK(cp->server_connections >= 1);
    CHECK(cp->server_retry_timeout >= 0);
    CHECK(cp->nservers >= 1 && cp->servers != NULL);

    nodes = calloc(cp->nservers, sizeof(*nodes));
    if (nodes == NULL) {
        abort();
    }
    for (i = 0; i < cp->nservers; i++) {
        const struct conf_server *s = &cp->servers[i];

        CHECK(s->text != NULL && s->host != NULL && s->name != NULL);
        CHECK(s->name[0] != '\0');
        CHECK(s->weight >= 1 && s->weight <= INT32_MAX);
        CHECK(s->is_unix || s->port > 0);
        if (i > 0) {
            CHECK(name_before(cp->servers[i - 1].name, s->name));
        }
        nodes[i].name = s->name;
        nodes[i].name_len = strlen(s->name);
        nodes[i].weight = s->weight;
        nodes[i].live = true;
    }

    /* Place a few keys taken from the input, as a worker would. */
    r = ring_create(cp->distribution, nodes, cp->nservers);
    CHECK(r != NULL);
    for (i = 0; i < 8 && i <= size; i++) {
        const char *key = (const char *)data + i;
        size_t len = (size - i) < KEY_MAX ? (size - i) : KEY_MAX;
        int32_t at;

        hash_tag_slice(tag == 2 ? cp->hash_tag : NULL, &key, &len);
        CHECK(key >= (const char *)data && key + len <= (const char *)data +
                                                           size);
        at = ring_lookup(r, hash_key(cp->hash, key, len));
        CHECK(at >= -1 && at < (int32_t)cp->nservers);
    }
    ring_destroy(&r);
    CHECK(r == NULL);
    free(nodes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[CONF_ERR_LEN];
    char tiny[8];
    struct conf *c, *again;
    uint32_t i;

    memset(err, 'x', sizeof(err));
    c = conf_parse((const char *)data, size, "fuzz.yml", err, sizeof(err));
    CHECK(memchr(err, '\0', sizeof(err)) != NULL);
    if (c == NULL) {
        CHECK(strncmp(err, "conf: ", 6) == 0);

        /* A short buffer is cut, and still terminated. */
        memset(tiny, 'x', sizeof(tiny));
        again = conf_parse((const char *)data, size, "fuzz.yml", tiny,
                           sizeof(tiny));
        CHECK(again == NULL);
        CHECK(memchr(tiny, '\0', sizeof(tiny)) != NULL);
        CHECK(strncmp(tiny, err, strlen(tiny)) == 0);

        again = conf_parse((const char *)data, size, NULL, NULL, 0);
        CHECK(again == NULL);
        return 0;
    }
    CHECK(err[0] == '\0');
    CHECK(c->path != NULL && strcmp(c->path, "fuzz.yml") == 0);
    CHECK(c->npools >= 1 && c->pools != NULL);
    for (i = 0; i < c->npools; i++) {
        check_pool(&c->pools[i], data, size);
    }
    conf_destroy(&c);
    CHECK(c == NULL);
    conf_destroy(&c);               /* NULL is a no-op */
    return 0;
}
