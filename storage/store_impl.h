/* store_impl.h - what the LMDB store's source files share; not for callers. */
#ifndef HERALD_STORE_IMPL_H
#define HERALD_STORE_IMPL_H
#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>

struct store {
    MDB_env *env;
    MDB_dbi meta, users, nodes, items, item_ids, subs, affs, roster, offline, tokens;
    char path[4096];
};

/* A transaction (store_pubsub.c defines it; every domain file uses it). */
struct store_txn {
    struct store *s;
    MDB_txn *txn;
    bool write;
};

/* store_im.c: deletes an account's roster, roster version and offline
 * messages, and turns every other roster's item for it into subscription
 * none (RFC 6121 has the server cancel subscriptions of a deleted account). */
int store_im_forget_account(struct store_txn *t, const char *bare);

/* Maps an LMDB or errno code to a HERALD_E* code. */
int store_map_err(int rc);

static inline void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static inline uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static inline uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

#endif
