/*
 * alloc_fail: the Nth malloc/calloc/realloc while armed fails (see
 * alloc_fail.h). Linked only into the tests that wrap those symbols: the
 * linker takes this object for the __wrap_ symbols they then need.
 */
#include "alloc_fail.h"

#include <stdbool.h>
#include <stddef.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

static bool armed;                  /* count (and maybe fail) allocations */
static unsigned long calls;         /* allocations since armed */
static unsigned long fail_at_call;  /* this one fails; 0: none */

static bool
fails(void)
{
    if (!armed) {
        return false;
    }
    return ++calls == fail_at_call;
}

void *
__wrap_malloc(size_t n)
{
    return fails() ? NULL : __real_malloc(n);
}

void *
__wrap_calloc(size_t n, size_t size)
{
    return fails() ? NULL : __real_calloc(n, size);
}

void *
__wrap_realloc(void *p, size_t n)
{
    return fails() ? NULL : __real_realloc(p, n);
}

void
alloc_fail_arm(unsigned long fail_at)
{
    calls = 0;
    fail_at_call = fail_at;
    armed = true;
}

unsigned long
alloc_fail_disarm(void)
{
    armed = false;
    return calls;
}
