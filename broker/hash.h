/* hash.h - the string hash of Herald's own tables (the login budgets, the
 * parser's prefix and namespace tables, the serializer's namespace table):
 * FNV-1a from a seed (a random one where an attacker chooses the keys), and
 * the splitmix64 finalizer, which spreads every input bit over the low bits
 * a table index keeps. uthash tables use uthash's own hash. */
#ifndef HERALD_HASH_H
#define HERALD_HASH_H
#include <stddef.h>
#include <stdint.h>

#define HASH_FNV_OFFSET 0xcbf29ce484222325ull

static inline uint64_t hash_fnv1a(uint64_t seed, const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = seed;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static inline uint64_t hash_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

#endif
