/*
 * tally: client counts shared by the workers (see tally.h).
 */
#include "memring/tally.h"

#include "memring/shared.h"

#include <stdatomic.h>

struct tally {
    _Atomic uint64_t clients;   /* of this pool, all workers */
};

static _Atomic uint64_t all_clients;
static _Atomic uint64_t value_bytes;  /* values held, all clients */
static _Atomic uint64_t output_bytes; /* replies unsent, all clients */

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

/* Adds n to *count unless that goes past limit; optimistic, because a
 * refusal is rare and two racing takers must not both squeeze in. */
static bool
take(_Atomic uint64_t *count, uint64_t n, uint64_t limit)
{
    if (atomic_fetch_add(count, n) + n > limit) {
        atomic_fetch_sub(count, n);
        return false;
    }
    return true;
}

bool
tally_take(struct tally *t, uint32_t per_pool, uint32_t total)
{
    if (!take(&all_clients, 1, total)) {
        return false;
    }
    if (!take(&t->clients, 1, per_pool > 0 ? per_pool : UINT64_MAX)) {
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
    return take(&value_bytes, n, limit);
}

void
tally_value_bytes_give(uint64_t n)
{
    atomic_fetch_sub(&value_bytes, n);
}

void
tally_output_bytes_change(uint64_t from, uint64_t to)
{
    /* unsigned wrap-around makes a shrink a subtraction */
    atomic_fetch_add(&output_bytes, to - from);
}

uint64_t
tally_output_bytes(void)
{
    return atomic_load(&output_bytes);
}
