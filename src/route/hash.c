/*
 * hash: twemproxy 0.5.0's twelve key hashes, reproduced bit for bit as the
 * Debian amd64 build computes them, plus its hash_tag rule. MD5 comes from
 * libmd and CRC-32 from zlib; the rest must be hand-written because each
 * carries a quirk of its original (libmemcached) code that placement depends
 * on.
 */
#include "memring/hash.h"

#include <md5.h>
#include <stdbool.h>
#include <string.h>
#include <zlib.h>

static const char *const hash_names[HASH_ALL_COUNT] = {
    [HASH_ONE_AT_A_TIME] = "one_at_a_time",
    [HASH_MD5] = "md5",
    [HASH_CRC16] = "crc16",
    [HASH_CRC32] = "crc32",
    [HASH_CRC32A] = "crc32a",
    [HASH_FNV1_64] = "fnv1_64",
    [HASH_FNV1A_64] = "fnv1a_64",
    [HASH_FNV1_32] = "fnv1_32",
    [HASH_FNV1A_32] = "fnv1a_32",
    [HASH_HSIEH] = "hsieh",
    [HASH_MURMUR] = "murmur",
    [HASH_JENKINS] = "jenkins",
    [HASH_FNV1_32_UNSIGNED] = "fnv1_32",       /* libmc's spelling */
    [HASH_FNV1A_32_UNSIGNED] = "fnv1a_32",
};

/* FNV parameters; the 64-bit ones as twemproxy truncates them (see fnv()) */
#define FNV64_INIT  UINT32_C(0x84222325)    /* low half of 0xcbf29ce484222325 */
#define FNV64_PRIME UINT32_C(0x000001b3)    /* low half of 0x100000001b3 */
#define FNV32_INIT  UINT32_C(2166136261)
#define FNV32_PRIME UINT32_C(16777619)

/*
 * twemproxy reads key bytes through plain `char`, which is signed on the
 * amd64 build we must match, and widens them to 32 bits: byte 0x80 adds
 * 0xffffff80, not 0x80. Spelled out here so that memring gives nutcracker's
 * placement even where char is unsigned (arm64).
 */
static inline uint32_t
schar(const char *p)
{
    return (uint32_t)(int32_t)(signed char)*p;
}

static inline uint32_t
load_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static inline uint32_t
load_le16(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static inline uint32_t
rotl32(uint32_t x, unsigned int k)
{
    return (x << k) | (x >> (32 - k));
}

void
hash_md5(const void *data, size_t len, uint8_t digest[16])
{
    MD5_CTX ctx;

    MD5Init(&ctx);
    MD5Update(&ctx, data, len);
    MD5Final(digest, &ctx);
}

static uint32_t
hash_one_at_a_time(const char *key, size_t len)
{
    uint32_t h = 0;
    size_t i;

    for (i = 0; i < len; i++) {
        h += schar(&key[i]);
        h += h << 10;
        h ^= h >> 6;
    }
    h += h << 3;
    h ^= h >> 11;
    h += h << 15;
    return h;
}

/* The first four digest bytes, read little-endian. */
static uint32_t
hash_md5_key(const char *key, size_t len)
{
    uint8_t d[16];

    hash_md5(key, len, d);
    return load_le32(d);
}

/*
 * CRC-16/XMODEM (poly 0x1021, init 0, not reflected), but twemproxy keeps
 * the state in 32 bits and never masks it: each step shifts the old state
 * up by 8, so bits 16..31 of the result carry earlier states. Only the low
 * 16 bits are the textbook CRC.
 */
static uint32_t
hash_crc16(const char *key, size_t len)
{
    uint32_t crc = 0, t;
    size_t i;
    int bit;

    for (i = 0; i < len; i++) {
        /* t = the table entry twemproxy would look up */
        t = (((crc >> 8) ^ (unsigned char)key[i]) & 0xff) << 8;
        for (bit = 0; bit < 8; bit++) {
            t = (t & 0x8000) != 0 ? (t << 1) ^ 0x1021 : t << 1;
        }
        crc = (crc << 8) ^ (t & 0xffff);
    }
    return crc;
}

/*
 * The byte loop of both twemproxy CRCs masks with 0xff, so signedness does
 * not matter and zlib's CRC-32 is the same function. crc32 then keeps only
 * bits 16..30, as libmemcached did; crc32a is the whole standard CRC-32.
 */
static uint32_t
hash_crc32a(const char *key, size_t len)
{
    return (uint32_t)crc32_z(0, (const Bytef *)key, len);
}

static uint32_t
hash_crc32(const char *key, size_t len)
{
    return (hash_crc32a(key, len) >> 16) & 0x7fff;
}

/*
 * All four FNVs fit one 32-bit loop. fnv1a_64 is not 64-bit FNV-1a at all:
 * like libmemcached, twemproxy cuts the 64-bit offset basis and prime to 32
 * bits and keeps a 32-bit state. fnv1_64 does keep 64 bits but returns the
 * low 32, and those depend only on the low 32 bits of state, prime and
 * (sign-extended) byte, so the same cut gives the same value.
 */
static inline uint32_t
fnv(const char *key, size_t len, uint32_t h, uint32_t prime, bool xor_first,
    bool sign)
{
    size_t i;

    for (i = 0; i < len; i++) {
        uint32_t b = sign ? schar(&key[i]) : (uint32_t)(unsigned char)key[i];

        if (xor_first) {
            h ^= b;
            h *= prime;
        } else {
            h *= prime;
            h ^= b;
        }
    }
    return h;
}

/*
 * Paul Hsieh's SuperFastHash. 16-bit reads are unsigned, but the lone third
 * tail byte goes through signed char, so 0x80 there xors in 0xfe000000
 * rather than 0x02000000.
 */
static uint32_t
hash_hsieh(const char *key, size_t len)
{
    const unsigned char *p = (const unsigned char *)key;
    size_t blocks = len >> 2;
    uint32_t h = 0;
    uint32_t tmp;

    if (len == 0) {
        return 0;
    }
    for (; blocks > 0; blocks--) {
        h += load_le16(p);
        tmp = (load_le16(p + 2) << 11) ^ h;
        h = (h << 16) ^ tmp;
        p += 4;
        h += h >> 11;
    }
    switch (len & 3) {
    case 3:
        h += load_le16(p);
        h ^= h << 16;
        h ^= schar((const char *)p + 2) << 18;
        h += h >> 11;
        break;
    case 2:
        h += load_le16(p);
        h ^= h << 11;
        h += h >> 17;
        break;
    case 1:
        h += p[0];
        h ^= h << 10;
        h += h >> 1;
        break;
    default:
        break;
    }
    h ^= h << 3;
    h += h >> 5;
    h ^= h << 4;
    h += h >> 17;
    h ^= h << 25;
    h += h >> 6;
    return h;
}

/* MurmurHash2 with libmemcached's length-derived seed; little-endian words. */
static uint32_t
hash_murmur(const char *key, size_t len)
{
    const uint32_t m = 0x5bd1e995;
    const unsigned char *p = (const unsigned char *)key;
    uint32_t h = (UINT32_C(0xdeadbeef) * (uint32_t)len) ^ (uint32_t)len;
    uint32_t k;

    while (len >= 4) {
        k = load_le32(p);
        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
        p += 4;
        len -= 4;
    }
    switch (len) {
    case 3:
        h ^= (uint32_t)p[2] << 16;
        /* fall through */
    case 2:
        h ^= (uint32_t)p[1] << 8;
        /* fall through */
    case 1:
        h ^= p[0];
        h *= m;
        break;
    default:
        break;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return h;
}

#define JENKINS_MIX(a, b, c)                                               \
    do {                                                                   \
        a -= c; a ^= rotl32(c, 4);  c += b;                                \
        b -= a; b ^= rotl32(a, 6);  a += c;                                \
        c -= b; c ^= rotl32(b, 8);  b += a;                                \
        a -= c; a ^= rotl32(c, 16); c += b;                                \
        b -= a; b ^= rotl32(a, 19); a += c;                                \
        c -= b; c ^= rotl32(b, 4);  b += a;                                \
    } while (0)

#define JENKINS_FINAL(a, b, c)                                             \
    do {                                                                   \
        c ^= b; c -= rotl32(b, 14);                                        \
        a ^= c; a -= rotl32(c, 11);                                        \
        b ^= a; b -= rotl32(a, 25);                                        \
        c ^= b; c -= rotl32(b, 16);                                        \
        a ^= c; a -= rotl32(c, 4);                                         \
        b ^= a; b -= rotl32(a, 14);                                        \
        c ^= b; c -= rotl32(b, 24);                                        \
    } while (0)

/*
 * Bob Jenkins' lookup3 hashlittle() with initval 13. twemproxy picks an
 * aligned-word, half-word or byte loop by the key's address; on a
 * little-endian host all three compute this byte loop's value.
 */
static uint32_t
hash_jenkins(const char *key, size_t len)
{
    const unsigned char *p = (const unsigned char *)key;
    uint32_t a, b, c;
    unsigned char tail[12];

    a = b = c = UINT32_C(0xdeadbeef) + (uint32_t)len + 13;
    if (len == 0) {
        return c;       /* no final mix for the empty key */
    }
    while (len > 12) {
        a += load_le32(p);
        b += load_le32(p + 4);
        c += load_le32(p + 8);
        JENKINS_MIX(a, b, c);
        p += 12;
        len -= 12;
    }
    /* The last 1..12 bytes, zero padded, add in the same way. */
    memset(tail, 0, sizeof(tail));
    memcpy(tail, p, len);
    a += load_le32(tail);
    b += load_le32(tail + 4);
    c += load_le32(tail + 8);
    JENKINS_FINAL(a, b, c);
    return c;
}

uint32_t
hash_key(enum hash_type t, const char *key, size_t len)
{
    /* server_pool_hash() never hashes an empty key: it goes to hash 0. */
    if (len == 0) {
        return 0;
    }
    switch (t) {
    case HASH_ONE_AT_A_TIME:
        return hash_one_at_a_time(key, len);
    case HASH_MD5:
        return hash_md5_key(key, len);
    case HASH_CRC16:
        return hash_crc16(key, len);
    case HASH_CRC32:
        return hash_crc32(key, len);
    case HASH_CRC32A:
        return hash_crc32a(key, len);
    case HASH_FNV1_64:
        return fnv(key, len, FNV64_INIT, FNV64_PRIME, false, true);
    case HASH_FNV1A_64:
        return fnv(key, len, FNV64_INIT, FNV64_PRIME, true, true);
    case HASH_FNV1_32:
        return fnv(key, len, FNV32_INIT, FNV32_PRIME, false, true);
    case HASH_FNV1A_32:
        return fnv(key, len, FNV32_INIT, FNV32_PRIME, true, true);
    case HASH_FNV1_32_UNSIGNED:
        return fnv(key, len, FNV32_INIT, FNV32_PRIME, false, false);
    case HASH_FNV1A_32_UNSIGNED:
        return fnv(key, len, FNV32_INIT, FNV32_PRIME, true, false);
    case HASH_HSIEH:
        return hash_hsieh(key, len);
    case HASH_MURMUR:
        return hash_murmur(key, len);
    case HASH_JENKINS:
        return hash_jenkins(key, len);
    case HASH_ALL_COUNT:
        break;
    }
    return 0;
}

const char *
hash_name(enum hash_type t)
{
    if ((unsigned int)t >= HASH_ALL_COUNT) {
        return "unknown";
    }
    return hash_names[t];
}

int
hash_from_name(const char *name, size_t len)
{
    int t;

    for (t = 0; t < HASH_COUNT; t++) {
        if (strlen(hash_names[t]) == len &&
            memcmp(hash_names[t], name, len) == 0) {
            return t;
        }
    }
    return -1;
}

void
hash_tag_slice(const char *tag, const char **key, size_t *len)
{
    const char *start, *end;
    size_t rest;

    if (tag == NULL || tag[0] == '\0' || tag[1] == '\0' || *len == 0) {
        return;
    }
    start = memchr(*key, tag[0], *len);
    if (start == NULL) {
        return;
    }
    start++;
    rest = *len - (size_t)(start - *key);
    end = memchr(start, tag[1], rest);
    if (end == NULL || end == start) {
        return;         /* no closing char, or nothing between the two */
    }
    *key = start;
    *len = (size_t)(end - start);
}
