/*
 * hash tests: published check values where the function is a textbook one,
 * twemproxy's quirks on bytes >= 0x80, names, and the hash_tag rule. Whole
 * placements recorded from nutcracker are replayed in test_ring.c.
 */
#include "memring/hash.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

struct vector {
    enum hash_type t;
    const char     *key;
    uint32_t       want;
};

static void
check_vectors(const struct vector *v, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        uint32_t got = hash_key(v[i].t, v[i].key, strlen(v[i].key));

        if (got != v[i].want) {
            fail_msg("%s(\"%s\") = %08x, want %08x", hash_name(v[i].t),
                     v[i].key, got, v[i].want);
        }
    }
}

#define FOX "The quick brown fox jumps over the lazy dog"

/*
 * Published values: CRC catalogue check strings, RFC 1321, the FNV test
 * suite (64-bit values cut to their low 32 bits, which is all twemproxy
 * keeps), Wikipedia's one-at-a-time examples.
 */
static void
test_published_vectors(void **state)
{
    static const struct vector v[] = {
        /* CRC-32: crc32a is the full value, crc32 bits 16..30 of it */
        {HASH_CRC32A, "123456789", 0xcbf43926},
        {HASH_CRC32A, FOX, 0x414fa339},
        {HASH_CRC32, "123456789", 0x4bf4},
        {HASH_CRC32, FOX, 0x414f},
        /* MD5 "abc" = 90015098 3cd24fb0...: first four bytes, LE */
        {HASH_MD5, "abc", 0x98500190},
        {HASH_MD5, "a", 0xb975c10c},
        {HASH_MD5, "message digest", 0x7d696bf9},
        {HASH_FNV1_32, "a", 0x050c5d7e},
        {HASH_FNV1_32, "foobar", 0x31f0b262},
        {HASH_FNV1A_32, "a", 0xe40c292c},
        {HASH_FNV1A_32, "foobar", 0xbf9cf968},
        {HASH_FNV1_64, "a", 0x8601b7be},        /* af63bd4c8601b7be */
        {HASH_FNV1_64, "foobar", 0xa4dda9c2},   /* 340d8765a4dda9c2 */
        {HASH_FNV1A_64, "a", 0x8601ec8c},       /* af63dc4c8601ec8c */
        {HASH_FNV1A_64, "foobar", 0xf73967e8},  /* 85944171f73967e8 */
        {HASH_ONE_AT_A_TIME, "a", 0xca2e9442},
        {HASH_ONE_AT_A_TIME, FOX, 0x519e91f5},
    };

    (void)state;
    check_vectors(v, sizeof(v) / sizeof(v[0]));
}

/*
 * twemproxy's crc16 is CRC-16/XMODEM in an unmasked 32-bit state: the low
 * 16 bits are the catalogue check value 0x31c3, the high ones are left
 * over from earlier steps.
 */
static void
test_crc16_unmasked_state(void **state)
{
    (void)state;
    assert_int_equal(hash_key(HASH_CRC16, "123456789", 9) & 0xffff, 0x31c3);
    assert_int_equal(hash_key(HASH_CRC16, "123456789", 9), 0x869031c3);
    assert_int_equal(hash_key(HASH_CRC16, "A", 1), 0x58e5);
}

/*
 * Values for the functions without a published check value with
 * twemproxy's parameters (hsieh, libmemcached's murmur seed, lookup3 with
 * initval 13). They pin what the nutcracker placement vectors proved.
 */
static void
test_regression_vectors(void **state)
{
    static const struct vector v[] = {
        {HASH_HSIEH, "123456789", 0xe4fc1670},
        {HASH_HSIEH, "a", 0x93642e87},
        {HASH_HSIEH, "foobar", 0x07a5862c},
        {HASH_MURMUR, "123456789", 0xb7760690},
        {HASH_MURMUR, "a", 0x4b41757c},
        {HASH_MURMUR, "foobar", 0xabecff17},
        {HASH_JENKINS, "123456789", 0x19777af6},
        {HASH_JENKINS, "a", 0xe0a38690},
        {HASH_JENKINS, "foobar", 0x0fdd8b60},
    };

    (void)state;
    check_vectors(v, sizeof(v) / sizeof(v[0]));
}

/*
 * Bytes >= 0x80 are read as signed char by one_at_a_time, the four FNVs
 * and hsieh's third tail byte (amd64 nutcracker); the values below follow
 * that, and differ from the unsigned reading.
 */
static void
test_signed_char_quirks(void **state)
{
    static const struct vector v[] = {
        {HASH_ONE_AT_A_TIME, "\x80", 0xc31d4e27},
        {HASH_ONE_AT_A_TIME, "caf\xc3\xa9", 0xd99c709e},
        {HASH_FNV1_64, "\x80", 0x79fe485f},
        {HASH_FNV1_64, "caf\xc3\xa9", 0x8a06fef1},
        {HASH_FNV1A_64, "\x80", 0x79fdec5f},
        {HASH_FNV1A_64, "caf\xc3\xa9", 0xcef6bb89},
        {HASH_FNV1_32, "\x80", 0xfaf3a29f},
        {HASH_FNV1_32, "caf\xc3\xa9", 0xd682f171},
        {HASH_FNV1A_32, "\x80", 0x04f3b29f},
        {HASH_FNV1A_32, "caf\xc3\xa9", 0x7572c049},
        {HASH_HSIEH, "ab\xff", 0x75dc9fd6},
        {HASH_HSIEH, "\xff\xfe\xfd", 0xd989515e},
        {HASH_HSIEH, "key:\xe9t\xe9", 0x73df5ab9},
    };

    (void)state;
    check_vectors(v, sizeof(v) / sizeof(v[0]));
    /* unsigned FNV-1a of 0x80 would be (0x811c9dc5 ^ 0x80) * prime */
    assert_int_not_equal(hash_key(HASH_FNV1A_32, "\x80", 1),
                         (0x811c9dc5u ^ 0x80u) * 16777619u);
}

/* Unaligned keys hash like aligned ones (jenkins, murmur, hsieh). */
static void
test_alignment_independent(void **state)
{
    char buf[64 + 8];
    const char *key = "an-unaligned-key-of-some-length:0123456789";
    size_t len = strlen(key);
    int t, off;

    (void)state;
    for (t = 0; t < HASH_COUNT; t++) {
        uint32_t want = hash_key((enum hash_type)t, key, len);

        for (off = 1; off < 8; off++) {
            memcpy(buf + off, key, len);
            assert_int_equal(hash_key((enum hash_type)t, buf + off, len),
                             want);
        }
    }
}

/* server_pool_hash() sends an empty key to hash 0, whatever the function. */
static void
test_empty_key(void **state)
{
    int t;

    (void)state;
    for (t = 0; t < HASH_ALL_COUNT; t++) {
        assert_int_equal(hash_key((enum hash_type)t, "", 0), 0);
    }
    assert_int_equal(hash_key(HASH_ALL_COUNT, "a", 1), 0);
}

/* libmc's FNVs read bytes unsigned: the same below 0x80, not above. */
static void
test_fnv_unsigned(void **state)
{
    (void)state;
    assert_int_equal(hash_key(HASH_FNV1_32_UNSIGNED, "key:1", 5),
                     hash_key(HASH_FNV1_32, "key:1", 5));
    assert_int_equal(hash_key(HASH_FNV1A_32_UNSIGNED, "key:1", 5),
                     hash_key(HASH_FNV1A_32, "key:1", 5));
    assert_int_not_equal(hash_key(HASH_FNV1_32_UNSIGNED, "k\xe9", 2),
                         hash_key(HASH_FNV1_32, "k\xe9", 2));
    /* FNV-1a 32 of 0xe9 alone, by its definition: (basis ^ 0xe9) * prime */
    assert_int_equal(hash_key(HASH_FNV1A_32_UNSIGNED, "\xe9", 1),
                     (uint32_t)((UINT32_C(2166136261) ^ 0xe9) *
                                UINT32_C(16777619)));
}

static void
test_md5_digest(void **state)
{
    static const uint8_t empty[16] = {
        0xd4, 0x1d, 0x8c, 0xd9, 0x8f, 0x00, 0xb2, 0x04,
        0xe9, 0x80, 0x09, 0x98, 0xec, 0xf8, 0x42, 0x7e,
    };
    uint8_t d[16];

    (void)state;
    hash_md5("", 0, d);
    assert_memory_equal(d, empty, 16);
}

static void
test_names(void **state)
{
    static const char *const names[HASH_COUNT] = {
        "one_at_a_time", "md5", "crc16", "crc32", "crc32a", "fnv1_64",
        "fnv1a_64", "fnv1_32", "fnv1a_32", "hsieh", "murmur", "jenkins",
    };
    int t;

    (void)state;
    for (t = 0; t < HASH_COUNT; t++) {
        assert_string_equal(hash_name((enum hash_type)t), names[t]);
        assert_int_equal(hash_from_name(names[t], strlen(names[t])), t);
    }
    assert_string_equal(hash_name(HASH_ALL_COUNT), "unknown");
    /* libmc's FNVs print as libmc spells them, and are not config names
     * of their own */
    assert_string_equal(hash_name(HASH_FNV1_32_UNSIGNED), "fnv1_32");
    assert_int_equal(hash_from_name("fnv1_32", 7), HASH_FNV1_32);
    assert_int_equal(hash_from_name("fnv1a", 5), -1);
    assert_int_equal(hash_from_name("fnv1a_64x", 9), -1);
    assert_int_equal(hash_from_name("MD5", 3), -1);
    assert_int_equal(hash_from_name("crc32a", 5), HASH_CRC32);
    assert_int_equal(hash_from_name("", 0), -1);
    assert_int_equal(HASH_DEFAULT, HASH_FNV1A_64);
}

/* ---------------------------------------------------------- hash_tag */

static void
check_slice(const char *tag, const char *key, const char *want)
{
    const char *k = key;
    size_t len = strlen(key);

    hash_tag_slice(tag, &k, &len);
    if (len != strlen(want) || memcmp(k, want, len) != 0) {
        fail_msg("tag %s key \"%s\": got \"%.*s\", want \"%s\"",
                 tag != NULL ? tag : "NULL", key, (int)len, k, want);
    }
}

static void
test_hash_tag(void **state)
{
    (void)state;
    check_slice("{}", "{user1}:a", "user1");
    check_slice("{}", "pre{tag}post{x}", "tag");
    check_slice("{}", "x}y{z}", "z");          /* a '}' before any '{' */
    check_slice("{}", "{{inner}}", "{inner");  /* first '{', next '}' */
    check_slice("{}", "{}key", "{}key");       /* empty: whole key */
    check_slice("{}", "{}{a}", "{}{a}");       /* only the first '{' */
    check_slice("{}", "a{b", "a{b");           /* no closing char */
    check_slice("{}", "plain", "plain");
    check_slice("{}", "{", "{");
    check_slice("{}", "}{", "}{");
    check_slice("{}", "{x}", "x");
    check_slice("::", "user:12:profile", "12"); /* same char both ends */
    check_slice("::", "::1::", "::1::");
    check_slice("::", "a:1:b:c", "1");
    check_slice(NULL, "{user1}:a", "{user1}:a");
    check_slice("", "{user1}:a", "{user1}:a");
    check_slice("{", "{user1}:a", "{user1}:a");
    check_slice("{}", "", "");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_published_vectors),
        cmocka_unit_test(test_crc16_unmasked_state),
        cmocka_unit_test(test_regression_vectors),
        cmocka_unit_test(test_signed_char_quirks),
        cmocka_unit_test(test_alignment_independent),
        cmocka_unit_test(test_empty_key),
        cmocka_unit_test(test_md5_digest),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_fnv_unsigned),
        cmocka_unit_test(test_hash_tag),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
