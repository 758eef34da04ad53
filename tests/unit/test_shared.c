/*
 * shared tests: named, reference-counted objects through shared.h: one
 * object per key, created zeroed and initialised once, finalised and freed
 * by the last release, a failed init failing the acquire, and all of it
 * from racing threads.
 */
#include "memring/shared.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

struct thing {
    uint64_t words[8];
    int      magic;      /* set by thing_init */
};

static atomic_int inits;        /* thing_init calls */
static atomic_int finis;        /* thing_fini calls */
static int        init_result;  /* what thing_init returns */

static int
thing_init(void *obj)
{
    struct thing *t = obj;

    atomic_fetch_add(&inits, 1);
    if (init_result == 0) {
        t->magic = 42;
    }
    return init_result;
}

static void
thing_fini(void *obj)
{
    struct thing *t = obj;

    assert_int_equal(t->magic, 42);
    atomic_fetch_add(&finis, 1);
}

static int
counters_reset(void **state)
{
    (void)state;
    atomic_store(&inits, 0);
    atomic_store(&finis, 0);
    init_result = 0;
    return 0;
}

static void
test_one_object_per_key(void **state)
{
    struct thing *a, *b, *c;
    size_t i;

    (void)state;
    a = shared_acquire(sizeof(*a), thing_init, thing_fini, "thing %s", "a");
    assert_non_null(a);
    assert_int_equal(a->magic, 42);
    for (i = 0; i < 8; i++) {
        assert_int_equal(a->words[i], 0);   /* created zeroed */
    }
    /* the key is the printed string, however it was formatted */
    b = shared_acquire(sizeof(*b), thing_init, thing_fini, "thing a");
    assert_ptr_equal(a, b);
    c = shared_acquire(sizeof(*c), thing_init, thing_fini, "thing %c", 'c');
    assert_non_null(c);
    assert_ptr_not_equal(a, c);
    assert_int_equal(atomic_load(&inits), 2);
    /* state written through one reference is the other's */
    a->words[3] = 7;
    assert_int_equal(b->words[3], 7);
    assert_int_equal(c->words[3], 0);
    shared_release(&a);
    shared_release(&b);
    shared_release(&c);
    assert_int_equal(atomic_load(&finis), 2);
}

static void
test_last_release_finalises(void **state)
{
    struct thing *a, *b;

    (void)state;
    a = shared_acquire(sizeof(*a), thing_init, thing_fini, "last");
    b = shared_acquire(sizeof(*b), thing_init, thing_fini, "last");
    assert_non_null(a);
    a->words[0] = 99;
    shared_release(&a);
    assert_null(a);
    assert_int_equal(atomic_load(&finis), 0);   /* b still holds it */
    assert_int_equal(b->words[0], 99);
    shared_release(&b);
    assert_null(b);
    assert_int_equal(atomic_load(&finis), 1);
    /* a new acquire of the name starts over: zeroed, initialised again */
    a = shared_acquire(sizeof(*a), thing_init, thing_fini, "last");
    assert_non_null(a);
    assert_int_equal(a->words[0], 0);
    assert_int_equal(atomic_load(&inits), 2);
    shared_release(&a);
    assert_int_equal(atomic_load(&finis), 2);
}

static void
test_release_null_is_noop(void **state)
{
    struct thing *none = NULL;

    (void)state;
    shared_release(&none);
    assert_null(none);
    assert_int_equal(atomic_load(&finis), 0);
}

static void
test_failed_init_fails_acquire(void **state)
{
    struct thing *t;

    (void)state;
    init_result = -12;
    t = shared_acquire(sizeof(*t), thing_init, thing_fini, "fails");
    assert_null(t);
    assert_int_equal(atomic_load(&inits), 1);
    assert_int_equal(atomic_load(&finis), 0);   /* never initialised */
    /* nothing was registered: the next acquire tries init again */
    init_result = 0;
    t = shared_acquire(sizeof(*t), thing_init, thing_fini, "fails");
    assert_non_null(t);
    assert_int_equal(t->magic, 42);
    assert_int_equal(atomic_load(&inits), 2);
    shared_release(&t);
    assert_int_equal(atomic_load(&finis), 1);
}

static void
test_no_init_no_fini(void **state)
{
    uint64_t *a, *b;

    (void)state;
    a = shared_acquire(sizeof(*a), NULL, NULL, "plain\n%d", 1);
    b = shared_acquire(sizeof(*b), NULL, NULL, "plain\n%d", 2);
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    assert_int_equal(*a, 0);
    /* suitably aligned for any type */
    assert_int_equal((uintptr_t)a % _Alignof(max_align_t), 0);
    assert_int_equal((uintptr_t)b % _Alignof(max_align_t), 0);
    shared_release(&a);
    shared_release(&b);
    assert_int_equal(atomic_load(&inits), 0);
    assert_int_equal(atomic_load(&finis), 0);
}

/* A long key is kept whole: two keys that differ only at the end are two
 * objects. */
static void
test_long_keys(void **state)
{
    char key[2000];
    uint64_t *a, *b;

    (void)state;
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    a = shared_acquire(sizeof(*a), NULL, NULL, "%s1", key);
    b = shared_acquire(sizeof(*b), NULL, NULL, "%s2", key);
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    shared_release(&a);
    shared_release(&b);
}

/* ------------------------------------------------------------ threads */

#define NTHREADS 8
#define ROUNDS   5000

struct race {
    struct thing *held;     /* the main thread's reference */
    atomic_int   mismatches;
};

static void *
race_main(void *arg)
{
    struct race *r = arg;
    struct thing *t;
    int i;

    for (i = 0; i < ROUNDS; i++) {
        t = shared_acquire(sizeof(*t), thing_init, thing_fini, "race");
        if (t != r->held) {
            atomic_fetch_add(&r->mismatches, 1);
        }
        shared_release(&t);
    }
    return NULL;
}

/* Threads acquiring and releasing a name the main thread holds always
 * get that one object; it is initialised once and finalised once, by the
 * main thread's release at the end. */
static void
test_racing_acquires(void **state)
{
    pthread_t th[NTHREADS];
    struct race r;
    int i;

    (void)state;
    atomic_init(&r.mismatches, 0);
    r.held = shared_acquire(sizeof(*r.held), thing_init, thing_fini, "race");
    assert_non_null(r.held);
    for (i = 0; i < NTHREADS; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, race_main, &r), 0);
    }
    for (i = 0; i < NTHREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
    }
    assert_int_equal(atomic_load(&r.mismatches), 0);
    assert_int_equal(atomic_load(&inits), 1);
    assert_int_equal(atomic_load(&finis), 0);
    shared_release(&r.held);
    assert_int_equal(atomic_load(&finis), 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_one_object_per_key, counters_reset),
        cmocka_unit_test_setup(test_last_release_finalises, counters_reset),
        cmocka_unit_test_setup(test_release_null_is_noop, counters_reset),
        cmocka_unit_test_setup(test_failed_init_fails_acquire,
                               counters_reset),
        cmocka_unit_test_setup(test_no_init_no_fini, counters_reset),
        cmocka_unit_test_setup(test_long_keys, counters_reset),
        cmocka_unit_test_setup(test_racing_acquires, counters_reset),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
