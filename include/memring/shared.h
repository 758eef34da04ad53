/*
 * shared: named, reference-counted objects that the workers share, such
 * as one backend server's ejection state (health.h) or one pool's client
 * count (tally.h). Each worker builds its own pools and servers, and finds
 * the shared part by name; the last worker to let go frees it. A reload
 * matches by name too, so state survives it whenever the name does.
 */
#ifndef MEMRING_SHARED_H
#define MEMRING_SHARED_H

#include <stddef.h>

/* The object named by the printf-style key, created zeroed (size bytes)
 * and passed to init (may be NULL) on first use; init returns 0 or fails
 * the acquire. fini (may be NULL) runs before the object is freed. NULL
 * when out of memory. Thread-safe. */
void *shared_acquire(size_t size, int (*init)(void *obj),
                     void (*fini)(void *obj), const char *key_fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Drops one reference to *objp and sets it NULL. Thread-safe. */
void shared_release(void *objp);

#endif /* MEMRING_SHARED_H */
