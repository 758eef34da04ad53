/*
 * shared: named objects the workers share (see shared.h).
 */
#include "memring/shared.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Precedes each object in the same allocation. */
struct entry {
    alignas(max_align_t) struct entry *next;
    char     *key;
    uint32_t refs;
    void     (*fini)(void *obj);
};

/* Few objects, looked up only when pools are built: a list will do. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry    *registry;

static void *
entry_obj(struct entry *e)
{
    return e + 1;
}

static void
entry_free(struct entry *e)
{
    if (e != NULL) {
        if (e->fini != NULL) {
            e->fini(entry_obj(e));
        }
        free(e->key);
        free(e);
    }
}

/* key_fmt and its arguments, printed into a fresh string; or NULL. */
static char *
key_print(const char *key_fmt, va_list ap)
{
    va_list ap2;
    char *key;
    int n;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, key_fmt, ap2);
    va_end(ap2);
    key = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (key != NULL) {
        vsnprintf(key, (size_t)n + 1, key_fmt, ap);
    }
    return key;
}

void *
shared_acquire(size_t size, int (*init)(void *obj), void (*fini)(void *obj),
               const char *key_fmt, ...)
{
    struct entry *e;
    va_list ap;
    char *key;

    va_start(ap, key_fmt);
    key = key_print(key_fmt, ap);
    va_end(ap);
    if (key == NULL) {
        return NULL;
    }
    pthread_mutex_lock(&registry_lock);
    for (e = registry; e != NULL && strcmp(e->key, key) != 0; e = e->next) {
    }
    if (e == NULL) {
        e = calloc(1, sizeof(*e) + size);
        if (e != NULL && init != NULL && init(entry_obj(e)) != 0) {
            free(e);
            e = NULL;
        }
        if (e != NULL) {
            e->key = key;
            key = NULL;
            e->fini = fini;
            e->next = registry;
            registry = e;
        }
    }
    if (e != NULL) {
        e->refs++;
    }
    pthread_mutex_unlock(&registry_lock);
    free(key);      /* unless the new entry took it */
    return e != NULL ? entry_obj(e) : NULL;
}

void
shared_release(void *objp)
{
    static void *const none = NULL;
    struct entry *e, **link;
    void *obj;

    /* objp points at some T *: copied, not read through a void **, which
     * would alias a T * against the language's rules. */
    memcpy(&obj, objp, sizeof(obj));
    if (obj == NULL) {
        return;
    }
    memcpy(objp, &none, sizeof(none));
    e = (struct entry *)obj - 1;
    pthread_mutex_lock(&registry_lock);
    if (--e->refs > 0) {
        e = NULL;
    } else {
        for (link = &registry; *link != e; link = &(*link)->next) {
        }
        *link = e->next;
    }
    pthread_mutex_unlock(&registry_lock);
    entry_free(e);
}
