/*
 * health: one server's ejection state, shared by the workers (see health.h).
 */
#include "memring/health.h"

#include "memring/conf.h"
#include "memring/shared.h"

#include <pthread.h>
#include <stdatomic.h>

struct health {
    pthread_mutex_t    lock;          /* guards state */
    struct eject_state state;
    /* Copies of state for lock-free readers: */
    _Atomic uint64_t   ejected_until; /* state.ejected_until */
    atomic_bool        dirty;         /* state.failures or state.probation */
    atomic_int         down;          /* the latest connect's error, or 0 */
};

static _Atomic uint64_t generation;

static int
health_init(void *obj)
{
    struct health *h = obj;

    return pthread_mutex_init(&h->lock, NULL);
}

static void
health_fini(void *obj)
{
    struct health *h = obj;

    pthread_mutex_destroy(&h->lock);
}

struct health *
health_acquire(const char *pool, const struct conf_server *cs)
{
    /* The same server: the same ring name at the same address. */
    return shared_acquire(sizeof(struct health), health_init, health_fini,
                          "health\n%s\n%s\n%s\n%u\n%d", pool,
                          cs->name != NULL ? cs->name : "",
                          cs->host != NULL ? cs->host : "",
                          (unsigned)cs->port, (int)cs->is_unix);
}

void
health_release(struct health **h)
{
    shared_release(h);
}

/* After a transition, under h->lock: republish for lock-free readers. */
static void
health_publish(struct health *h, bool ring_changed)
{
    atomic_store(&h->ejected_until, h->state.ejected_until);
    atomic_store(&h->dirty, h->state.failures != 0 || h->state.probation);
    if (ring_changed) {
        atomic_fetch_add(&generation, 1);
    }
}

bool
health_failure(struct health *h, const struct eject_policy *p, uint64_t now)
{
    bool ejected;

    pthread_mutex_lock(&h->lock);
    ejected = eject_failure(&h->state, p, now);
    health_publish(h, ejected);
    pthread_mutex_unlock(&h->lock);
    return ejected;
}

void
health_success(struct health *h)
{
    if (!atomic_load_explicit(&h->dirty, memory_order_relaxed)) {
        return;
    }
    pthread_mutex_lock(&h->lock);
    eject_success(&h->state);
    health_publish(h, false);
    pthread_mutex_unlock(&h->lock);
}

bool
health_readmit(struct health *h, uint64_t now)
{
    bool back;

    pthread_mutex_lock(&h->lock);
    back = eject_readmit(&h->state, now);
    health_publish(h, back);
    pthread_mutex_unlock(&h->lock);
    return back;
}

uint64_t
health_ejected_until(const struct health *h)
{
    return atomic_load(&h->ejected_until);
}

void
health_seen(struct health *h, int status)
{
    atomic_store_explicit(&h->down, status, memory_order_relaxed);
}

int
health_down(const struct health *h)
{
    return atomic_load_explicit(&h->down, memory_order_relaxed);
}

uint64_t
health_generation(void)
{
    return atomic_load_explicit(&generation, memory_order_acquire);
}
