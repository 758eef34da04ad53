/*
 * buf tests: the growable byte buffer and array_reserve() through buf.h:
 * growth, lazy compaction, consume, reset and free.
 */
#include "memring/buf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <cmocka.h>

/* The ENOMEM tests ask for more than any allocator gives; buf refuses
 * those sizes itself, and should one reach the allocator under ASan
 * (MEMRING_ASAN) it must return NULL, not abort the test. */
const char *__asan_default_options(void);

const char *
__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}

static int
buf_setup(void **state)
{
    struct buf *b = calloc(1, sizeof(*b));

    if (b == NULL) {
        return -1;
    }
    *state = b;
    return 0;
}

static int
buf_teardown(void **state)
{
    struct buf *b = *state;

    buf_free(b);
    free(b);
    return 0;
}

static void
test_init_is_empty(void **state)
{
    struct buf b = BUF_INIT;

    (void)state;
    assert_null(b.data);
    assert_int_equal(buf_unread(&b), 0);
    assert_int_equal(b.cap, 0);
    /* appending nothing allocates nothing */
    assert_int_equal(buf_append(&b, "x", 0), 0);
    assert_null(b.data);
    buf_free(&b);
    assert_null(b.data);
}

static void
test_append_then_read(void **state)
{
    struct buf *b = *state;

    assert_int_equal(buf_append(b, "hello", 5), 0);
    assert_int_equal(buf_append_str(b, " world"), 0);
    assert_int_equal(buf_unread(b), 11);
    assert_memory_equal(buf_head(b), "hello world", 11);
    assert_true(b->cap >= b->len);
}

static void
test_reserve_gives_room(void **state)
{
    struct buf *b = *state;

    assert_int_equal(buf_reserve(b, 1), 0);
    assert_non_null(b->data);
    assert_true(b->cap - b->len >= 1);
    assert_int_equal(buf_reserve(b, 100000), 0);
    assert_true(b->cap - b->len >= 100000);
    assert_int_equal(b->len, 0);
}

/* Growth doubles: appending 1 MiB a byte at a time reallocates only a few
 * dozen times, seen as a capacity that is a power-of-two multiple of the
 * first one and never more than twice what is needed. */
static void
test_growth_doubles(void **state)
{
    struct buf *b = *state;
    size_t first, changes = 0, last_cap = 0;
    size_t i;

    assert_int_equal(buf_append(b, "a", 1), 0);
    first = b->cap;
    assert_true(first >= 1);
    for (i = 1; i < (1u << 20); i++) {
        assert_int_equal(buf_append(b, "a", 1), 0);
        if (b->cap != last_cap) {
            changes++;
            last_cap = b->cap;
        }
    }
    assert_int_equal(buf_unread(b), 1u << 20);
    assert_true(b->cap >= (1u << 20));
    assert_true(b->cap < (2u << 20));
    assert_int_equal(b->cap % first, 0);
    assert_true(changes < 32);
}

static void
test_consume_partial_and_all(void **state)
{
    struct buf *b = *state;

    assert_int_equal(buf_append_str(b, "abcdef"), 0);
    buf_consume(b, 2);
    assert_int_equal(buf_unread(b), 4);
    assert_memory_equal(buf_head(b), "cdef", 4);
    /* consuming everything rewinds to the start of the memory */
    buf_consume(b, 4);
    assert_int_equal(buf_unread(b), 0);
    assert_int_equal(b->pos, 0);
    assert_int_equal(b->len, 0);
    assert_int_equal(buf_append_str(b, "xy"), 0);
    assert_ptr_equal(buf_head(b), b->data);
    assert_memory_equal(buf_head(b), "xy", 2);
}

/* A reserve that does not fit slides the unread bytes to the front before
 * it grows: a read buffer consumed as it fills keeps its size. */
static void
test_reserve_compacts_before_growing(void **state)
{
    struct buf *b = *state;
    size_t cap;

    assert_int_equal(buf_reserve(b, 1), 0);
    cap = b->cap;
    memset(b->data, 'z', cap);
    b->len = cap;           /* full */
    buf_consume(b, cap - 3);
    assert_int_equal(buf_unread(b), 3);
    assert_int_equal(buf_reserve(b, cap - 3), 0);
    assert_int_equal(b->cap, cap);
    assert_int_equal(b->pos, 0);
    assert_int_equal(b->len, 3);
    assert_memory_equal(b->data, "zzz", 3);
    /* one byte more than the room left grows it, keeping the bytes */
    assert_int_equal(buf_reserve(b, cap - 2), 0);
    assert_true(b->cap > cap);
    assert_memory_equal(buf_head(b), "zzz", 3);
}

static void
test_reset_keeps_small_memory(void **state)
{
    struct buf *b = *state;
    char *data;

    assert_int_equal(buf_append_str(b, "keep me"), 0);
    data = b->data;
    buf_reset(b);
    assert_int_equal(buf_unread(b), 0);
    assert_ptr_equal(b->data, data);
    assert_true(b->cap > 0);
}

static void
test_reset_frees_large_memory(void **state)
{
    struct buf *b = *state;

    assert_int_equal(buf_reserve(b, 1024 * 1024), 0);
    assert_int_equal(buf_append_str(b, "big"), 0);
    buf_reset(b);
    assert_null(b->data);
    assert_int_equal(b->cap, 0);
    assert_int_equal(buf_unread(b), 0);
    /* and the buffer is usable again */
    assert_int_equal(buf_append_str(b, "again"), 0);
    assert_memory_equal(buf_head(b), "again", 5);
}

static void
test_free_then_reuse(void **state)
{
    struct buf *b = *state;

    assert_int_equal(buf_append_str(b, "one"), 0);
    buf_consume(b, 1);
    buf_free(b);
    assert_null(b->data);
    assert_int_equal(b->pos, 0);
    assert_int_equal(b->len, 0);
    assert_int_equal(b->cap, 0);
    buf_free(b);            /* twice is harmless */
    assert_int_equal(buf_append_str(b, "two"), 0);
    assert_memory_equal(buf_head(b), "two", 3);
}

/* Embedded NULs are bytes like any other. */
static void
test_append_binary(void **state)
{
    struct buf *b = *state;
    static const char bytes[] = { 'a', '\0', 'b', '\0' };

    assert_int_equal(buf_append(b, bytes, sizeof(bytes)), 0);
    assert_int_equal(buf_unread(b), 4);
    assert_memory_equal(buf_head(b), bytes, 4);
}

static void
test_reserve_too_much_is_enomem(void **state)
{
    struct buf *b = *state;

    assert_int_equal(buf_append_str(b, "x"), 0);
    /* no allocator gives SIZE_MAX / 2 bytes: refused, buffer unharmed */
    assert_int_equal(buf_reserve(b, SIZE_MAX / 2), UV_ENOMEM);
    assert_int_equal(buf_unread(b), 1);
    assert_memory_equal(buf_head(b), "x", 1);
}

/* n near SIZE_MAX: refused without asking the allocator (len + n and the
 * doubling would wrap). */
static void
test_reserve_wrapping_size_is_enomem(void **state)
{
    struct buf *b = *state;

    assert_int_equal(buf_append_str(b, "xy"), 0);
    assert_int_equal(buf_reserve(b, SIZE_MAX), UV_ENOMEM);
    assert_int_equal(buf_reserve(b, SIZE_MAX - 1), UV_ENOMEM);
    assert_int_equal(buf_unread(b), 2);
}

static void
test_array_reserve_grows_only(void **state)
{
    uint64_t *arr = NULL;
    uint32_t cap = 0;

    (void)state;
    assert_int_equal(array_reserve(&arr, &cap, 0, sizeof(*arr)), 0);
    assert_null(arr);
    assert_int_equal(cap, 0);
    assert_int_equal(array_reserve(&arr, &cap, 10, sizeof(*arr)), 0);
    assert_non_null(arr);
    assert_int_equal(cap, 10);
    arr[9] = 42;            /* all 10 are there (ASan would say) */
    /* asking for less, or the same, changes nothing */
    assert_int_equal(array_reserve(&arr, &cap, 4, sizeof(*arr)), 0);
    assert_int_equal(cap, 10);
    assert_int_equal(arr[9], 42);
    assert_int_equal(array_reserve(&arr, &cap, 1000, sizeof(*arr)), 0);
    assert_int_equal(cap, 1000);
    arr[999] = 7;
    assert_int_equal(arr[999], 7);
    free(arr);
}

static void
test_array_reserve_enomem_frees(void **state)
{
    char *arr = NULL;
    uint32_t cap = 0;

    (void)state;
    assert_int_equal(array_reserve(&arr, &cap, 16, 1), 0);
    assert_int_equal(cap, 16);
    /* UINT32_MAX elements of 1 GiB (4 EiB) cannot be had */
    assert_int_equal(array_reserve(&arr, &cap, UINT32_MAX, (size_t)1 << 30),
                     UV_ENOMEM);
    assert_null(arr);
    assert_int_equal(cap, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_is_empty),
        cmocka_unit_test_setup_teardown(test_append_then_read, buf_setup,
                                        buf_teardown),
        cmocka_unit_test_setup_teardown(test_reserve_gives_room, buf_setup,
                                        buf_teardown),
        cmocka_unit_test_setup_teardown(test_growth_doubles, buf_setup,
                                        buf_teardown),
        cmocka_unit_test_setup_teardown(test_consume_partial_and_all,
                                        buf_setup, buf_teardown),
        cmocka_unit_test_setup_teardown(test_reserve_compacts_before_growing,
                                        buf_setup, buf_teardown),
        cmocka_unit_test_setup_teardown(test_reset_keeps_small_memory,
                                        buf_setup, buf_teardown),
        cmocka_unit_test_setup_teardown(test_reset_frees_large_memory,
                                        buf_setup, buf_teardown),
        cmocka_unit_test_setup_teardown(test_free_then_reuse, buf_setup,
                                        buf_teardown),
        cmocka_unit_test_setup_teardown(test_append_binary, buf_setup,
                                        buf_teardown),
        cmocka_unit_test_setup_teardown(test_reserve_too_much_is_enomem,
                                        buf_setup, buf_teardown),
        cmocka_unit_test_setup_teardown(test_reserve_wrapping_size_is_enomem,
                                        buf_setup, buf_teardown),
        cmocka_unit_test(test_array_reserve_grows_only),
        cmocka_unit_test(test_array_reserve_enomem_frees),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
