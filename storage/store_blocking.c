/* store_blocking.c - XEP-0191 block lists in LMDB.
 *
 * Keys:
 *   blocking  owner 0x00 jid  -> v1 (one byte: the record version)
 * Owner is a prepared bare JID; jid is the blocked JID in prepared form as
 * the user gave it (a domain, a bare JID or a full JID). The list of one
 * owner is the key range "owner 0x00": a prefix walk lists it in JID order,
 * and an owner's entry count is that walk's length (the broker bounds it
 * with im.max_blocklist_items, so the walk is short). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "store.h"
#include "store_impl.h"

#define REC_V1 1
#define KEY_MAX 511

/* "owner 0x00 jid" into k (KEY_MAX + 1 bytes); 0 when it does not fit. */
static size_t block_key(uint8_t *k, const char *owner, const char *jid)
{
    size_t ol = strlen(owner), jl = strlen(jid);
    if (ol == 0 || ol + 1 + jl > KEY_MAX)
        return 0;
    memcpy(k, owner, ol);
    k[ol] = 0;
    memcpy(k + ol + 1, jid, jl);
    return ol + 1 + jl;
}

int store_block_put(struct store_txn *t, const char *owner, const char *jid)
{
    uint8_t k[KEY_MAX + 1], rec = REC_V1;
    size_t kl = block_key(k, owner, jid);
    if (kl == 0 || jid[0] == '\0')
        return HERALD_ETOOBIG;
    MDB_val key = {kl, k}, v = {1, &rec};
    return store_map_err_s(t->s, st_put(t->s, t->txn, t->s->blocking, &key, &v, 0));
}

int store_block_del(struct store_txn *t, const char *owner, const char *jid)
{
    uint8_t k[KEY_MAX + 1];
    size_t kl = block_key(k, owner, jid);
    if (kl == 0)
        return 0; /* too long to have been stored */
    MDB_val key = {kl, k};
    int rc = st_del(t->s, t->txn, t->s->blocking, &key, NULL);
    return rc == MDB_NOTFOUND ? 0 : store_map_err_s(t->s, rc);
}

int store_block_has(struct store_txn *t, const char *owner, const char *jid)
{
    uint8_t k[KEY_MAX + 1];
    size_t kl = block_key(k, owner, jid);
    if (kl == 0)
        return 0;
    MDB_val key = {kl, k}, v;
    int rc = mdb_get(t->txn, t->s->blocking, &key, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    return rc == 0 ? 1 : store_map_err(rc);
}

/* Walks owner's list in key order, calling fn (may be NULL) for each
 * entry, and with del deleting each entry after it (the cursor is placed
 * again at the prefix: a delete moves it). */
static int walk(struct store_txn *t, const char *owner, bool del,
                int (*fn)(void *ud, const char *jid), void *ud)
{
    uint8_t pre[KEY_MAX + 1];
    size_t pl = block_key(pre, owner, "");
    if (pl == 0)
        return 0;
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->s->blocking, &c);
    if (rc != 0)
        return store_map_err(rc);
    int ret = 0;
    char jid[KEY_MAX + 1];
    MDB_val k = {pl, pre}, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 && ret == 0;
         rc = mdb_cursor_get(c, &k, &v, del ? MDB_SET_RANGE : MDB_NEXT)) {
        if (k.mv_size <= pl || memcmp(k.mv_data, pre, pl) != 0)
            break;
        memcpy(jid, (const char *)k.mv_data + pl, k.mv_size - pl);
        jid[k.mv_size - pl] = '\0';
        /* A newer record version is not ours to interpret. */
        if (fn != NULL && v.mv_size >= 1 && ((const uint8_t *)v.mv_data)[0] == REC_V1)
            ret = fn(ud, jid);
        if (del && ret == 0 && (rc = st_cursor_del(t->s, t->txn, t->s->blocking, c)) != 0)
            break;
        k.mv_size = pl;
        k.mv_data = pre;
    }
    mdb_cursor_close(c);
    if (ret)
        return ret > 0 ? 0 : ret;
    return (rc == 0 || rc == MDB_NOTFOUND) ? 0 : store_map_err_s(t->s, rc);
}

int store_block_each(struct store_txn *t, const char *owner,
                     int (*fn)(void *ud, const char *jid), void *ud)
{
    return walk(t, owner, false, fn, ud);
}

int store_block_clear(struct store_txn *t, const char *owner)
{
    return walk(t, owner, true, NULL, NULL);
}

int store_block_owners(struct store_txn *t,
                       int (*fn)(void *ud, const char *owner, unsigned count), void *ud)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->s->blocking, &c);
    if (rc != 0)
        return store_map_err(rc);
    int ret = 0;
    char owner[KEY_MAX + 1] = "";
    unsigned count = 0;
    MDB_val k, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && ret == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        const char *key = k.mv_data;
        size_t ol = strnlen(key, k.mv_size);
        if (ol == k.mv_size || ol > KEY_MAX)
            continue; /* no separator: not a block list key */
        if (count > 0 && (strlen(owner) != ol || memcmp(owner, key, ol) != 0)) {
            ret = fn(ud, owner, count);
            count = 0;
        }
        memcpy(owner, key, ol);
        owner[ol] = '\0';
        count++;
    }
    mdb_cursor_close(c);
    if (ret == 0 && count > 0 && (rc == 0 || rc == MDB_NOTFOUND))
        ret = fn(ud, owner, count);
    if (ret)
        return ret > 0 ? 0 : ret;
    return (rc == 0 || rc == MDB_NOTFOUND) ? 0 : store_map_err(rc);
}
