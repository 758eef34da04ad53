/*
 * tally: client counts shared by the workers (see tally.h).
 */
#include "memring/tally.h"

#include "memring/shared.h"

#include <stdatomic.h>

struct tally {
    _Atomic uint32_t clients;   /* of this pool, all workers */
};

static _Atomic uint32_t all_clients;
static _Atomic uint64_t value_bytes;  /* values half received, all clients */

struct tally *
tally_acquire(const char *pool)
{
    return shared_acquire(sizeof(struct tally), NULL, NULL, "tally\n%s",
                          pool);
}

void
tally_release(struct tally **t)
{
    shared_release(t);
}

/* Counts one more in *n unless that goes past limit; optimistic, because
 * a refusal is rare and two racing takers must not both squeeze in. */
static bool
take_one(_Atomic uint32_t *n, uint32_t limit)
{
    if (atomic_fetch_add(n, 1) + 1 > limit) {
        atomic_fetch_sub(n, 1);
        return false;
    }
    return true;
}

bool
tally_take(struct tally *t, uint32_t per_pool, uint32_t total)
{
    if (!take_one(&all_clients, total)) {
        return false;
    }
    if (!take_one(&t->clients, per_pool > 0 ? per_pool : UINT32_MAX)) {
        atomic_fetch_sub(&all_clients, 1);
        return false;
    }
    return true;
}

void
tally_give(struct tally *t)
{
    atomic_fetch_sub(&t->clients, 1);
    atomic_fetch_sub(&all_clients, 1);
}

bool
tally_value_bytes_take(uint64_t n, uint64_t limit)
{
    if (atomic_fetch_add(&value_bytes, n) + n > limit) {
        atomic_fetch_sub(&value_bytes, n);
        return false;
    }
    return true;
}

void
tally_value_bytes_give(uint64_t n)
{
    atomic_fetch_sub(&value_bytes, n);
}
