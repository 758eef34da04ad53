/*
 * hash: the twelve key hash functions of twemproxy 0.5.0, bit for bit, so
 * that a key lands on the same server under memring as under nutcracker.
 * Pure functions: no state, no I/O.
 */
#ifndef MEMRING_HASH_H
#define MEMRING_HASH_H

#include <stddef.h>
#include <stdint.h>

/* Order and spelling follow twemproxy's hash names in its YAML config. */
enum hash_type {
    HASH_ONE_AT_A_TIME = 0,
    HASH_MD5,
    HASH_CRC16,
    HASH_CRC32,
    HASH_CRC32A,
    HASH_FNV1_64,
    HASH_FNV1A_64,
    HASH_FNV1_32,
    HASH_FNV1A_32,
    HASH_HSIEH,
    HASH_MURMUR,
    HASH_JENKINS,
    HASH_COUNT,
    /* Not twemproxy's, so no config name of their own: libmc's FNVs,
     * which read key bytes unsigned (`hash: fnv1_32` with placement
     * libmc). */
    HASH_FNV1_32_UNSIGNED = HASH_COUNT,
    HASH_FNV1A_32_UNSIGNED,
    HASH_ALL_COUNT
};

#define HASH_DEFAULT HASH_FNV1A_64 /* twemproxy's default */

/*
 * Hash of key[0..len) with function t, exactly as nutcracker 0.5.0 on amd64
 * computes it (bytes >= 0x80 as signed char where it reads them so). An
 * empty key hashes to 0 whatever t is, as in twemproxy's server_pool_hash().
 */
uint32_t hash_key(enum hash_type t, const char *key, size_t len);

/* The config name of t ("fnv1a_64"...); "unknown" when out of range. */
const char *hash_name(enum hash_type t);

/* The hash named name[0..len), or -1 when there is none by that name. */
int hash_from_name(const char *name, size_t len);

/* MD5 digest of data (used by hash_key(HASH_MD5) and ketama points). */
void hash_md5(const void *data, size_t len, uint8_t digest[16]);

/*
 * twemproxy's hash_tag: when tag is two characters ("{}") and the key holds
 * the first one followed later by the second, the bytes between the first
 * tag[0] and the next tag[1] after it are what is hashed, if there is at
 * least one. Otherwise the whole key. tag == NULL or a tag shorter than two
 * characters leaves the key as it is. Narrows *key and *len in place.
 */
void hash_tag_slice(const char *tag, const char **key, size_t *len);

#endif /* MEMRING_HASH_H */
