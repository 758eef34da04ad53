/*
 * alloc_fail: makes one chosen allocation fail, for the tests that check
 * what out of memory leaves behind. It takes effect in a test whose
 * malloc, calloc and realloc are wrapped (MEMRING_UNIT_WRAP_<test> in
 * CMakeLists.txt: -Wl,--wrap); the wrappers live in alloc_fail.c.
 */
#ifndef MEMRING_TEST_ALLOC_FAIL_H
#define MEMRING_TEST_ALLOC_FAIL_H

/* Counts allocations from now on; the fail_at-th fails (0: none). */
void alloc_fail_arm(unsigned long fail_at);

/* Stops counting; how many allocations were tried while armed. */
unsigned long alloc_fail_disarm(void);

#endif /* MEMRING_TEST_ALLOC_FAIL_H */
