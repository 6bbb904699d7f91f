/* store_pubsub.c - pubsub nodes, items, subscriptions and affiliations in LMDB.
 *
 * Keys (big-endian numbers, so LMDB's byte order is numeric order):
 *   nodes     name                          -> v2 id created next_seq count payload_bytes
 *                                               rate_at rate_debt config
 *                                               (v1: no payload_bytes or rate fields)
 *   items     node_id(8) seq(8)             -> v1 published idlen id publen publisher payload
 *                                              (v2: published lease_kind(1) lease_secs(4)
 *                                               lease_until(8) idlen ...: a leased item)
 *   leases    kind(1) until(8) node_id(8) seq(8) -> (empty): leases by expiry
 *   item_ids  node_id(8) item id            -> seq(8)
 *   subs      node_id(8) jid 0x00 subid     -> v1 state options
 *   affs      node_id(8) jid                -> affiliation(1)
 *   meta      "next_node_id"                -> u64
 * Everything a node owns is prefixed by its id, so deleting a node is a range
 * delete in each database, in one transaction. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "store.h"
#include "store_impl.h"

#define REC_V1 1
#define REC_V2 2 /* an item with a lease */
#define LEASE_HDR 13
#define LEASE_KEY 25
#define KEY_MAX 511 /* LMDB's default maximum key size */

static int txn_begin(struct store *s, struct store_txn *parent, bool write, struct store_txn **out)
{
    struct store_txn *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return HERALD_ENOMEM;
    MDB_txn *ptxn = parent ? parent->txn : NULL;
    unsigned flags = write ? 0 : MDB_RDONLY;
    int rc = mdb_txn_begin(s->env, ptxn, flags, &t->txn);
    if (rc == MDB_MAP_RESIZED) {
        /* Another process (a CLI command) grew the map: adopt its size. */
        if ((rc = mdb_env_set_mapsize(s->env, 0)) == 0)
            rc = mdb_txn_begin(s->env, ptxn, flags, &t->txn);
    }
    if (rc != 0) {
        free(t);
        return store_map_err(rc);
    }
    t->s = s;
    t->write = write;
    if (write && parent == NULL)
        store_turn_begin(s);
    *out = t;
    return 0;
}

int store_txn_begin(struct store *s, bool write, struct store_txn **out)
{
    return txn_begin(s, NULL, write, out);
}

int store_txn_begin_nested(struct store_txn *parent, struct store_txn **out)
{
    return txn_begin(parent->s, parent, true, out);
}

int store_txn_commit(struct store_txn *t)
{
    struct store *s = t->s;
    int rc;
    if (t->txn == s->poisoned) {
        /* LMDB refuses to commit a transaction a write failed in; so does
         * a transaction an injected fault hit. */
        mdb_txn_abort(t->txn);
        rc = EIO;
    } else {
        rc = t->write ? mdb_txn_commit(t->txn) : (mdb_txn_abort(t->txn), 0);
    }
    s->poisoned = NULL;
    free(t);
    return store_map_err_s(s, rc);
}

void store_txn_abort(struct store_txn *t)
{
    if (t == NULL)
        return;
    if (t->txn == t->s->poisoned)
        t->s->poisoned = NULL;
    mdb_txn_abort(t->txn);
    free(t);
}

/* ---- helpers ---- */

static int put(struct store_txn *t, MDB_dbi dbi, const void *k, size_t kl, const void *v, size_t vl)
{
    if (kl == 0 || kl > KEY_MAX)
        return HERALD_ETOOBIG;
    MDB_val key = {kl, (void *)k}, val = {vl, (void *)v};
    return store_map_err_s(t->s, st_put(t->s, t->txn, dbi, &key, &val, 0));
}

static int get(struct store_txn *t, MDB_dbi dbi, const void *k, size_t kl, MDB_val *v)
{
    if (kl == 0 || kl > KEY_MAX)
        return HERALD_ENOTFOUND;
    MDB_val key = {kl, (void *)k};
    return store_map_err(mdb_get(t->txn, dbi, &key, v));
}

static int del(struct store_txn *t, MDB_dbi dbi, const void *k, size_t kl)
{
    if (kl == 0 || kl > KEY_MAX)
        return HERALD_ENOTFOUND;
    MDB_val key = {kl, (void *)k};
    return store_map_err_s(t->s, st_del(t->s, t->txn, dbi, &key, NULL));
}

/* Deletes every key starting with the 8-byte node id prefix. */
static int del_prefix(struct store_txn *t, MDB_dbi dbi, uint64_t node_id)
{
    uint8_t pre[8];
    put_be64(pre, node_id);
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, dbi, &c);
    if (rc != 0)
        return store_map_err(rc);
    for (;;) {
        MDB_val k = {8, pre}, v;
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        if (rc != 0 || k.mv_size < 8 || memcmp(k.mv_data, pre, 8) != 0)
            break;
        if ((rc = st_cursor_del(t->s, t->txn, dbi, c)) != 0)
            break;
    }
    if (rc == 0)
        rc = MDB_NOTFOUND; /* left the prefix: done */
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : store_map_err(rc);
}

/* Builds "node_id | bytes [| 0x00 | more]" into buf (KEY_MAX + 1). */
static size_t make_key(uint8_t *buf, uint64_t node_id, const char *a, size_t al, const char *b)
{
    size_t bl = b ? strlen(b) : 0;
    size_t n = 8 + al + (b ? 1 + bl : 0);
    if (n > KEY_MAX)
        return 0;
    put_be64(buf, node_id);
    memcpy(buf + 8, a, al);
    if (b) {
        buf[8 + al] = 0;
        memcpy(buf + 9 + al, b, bl);
    }
    return n;
}

/* ---- nodes ---- */

int store_node_new_id(struct store_txn *t, uint64_t *id)
{
    static const char key[] = "next_node_id";
    MDB_val v;
    uint64_t next = 1;
    int rc = get(t, t->s->meta, key, sizeof(key) - 1, &v);
    if (rc == 0 && v.mv_size == 8)
        next = get_be64(v.mv_data);
    else if (rc != 0 && rc != HERALD_ENOTFOUND)
        return rc;
    uint8_t buf[8];
    put_be64(buf, next + 1);
    rc = put(t, t->s->meta, key, sizeof(key) - 1, buf, 8);
    if (rc == 0)
        *id = next;
    return rc;
}

#define NODE_HDR (1 + 8 + 8 + 8 + 4)
#define NODE_HDR_V2 (NODE_HDR + 8 + 8 + 8)
#define NODE_REC_V2 2

int store_node_put(struct store_txn *t, const char *name, const struct store_node *n)
{
    size_t len = NODE_HDR_V2 + n->config_len;
    uint8_t stackbuf[1024], *rec = len <= sizeof(stackbuf) ? stackbuf : malloc(len);
    if (rec == NULL)
        return HERALD_ENOMEM;
    rec[0] = NODE_REC_V2;
    put_be64(rec + 1, n->id);
    put_be64(rec + 9, n->created);
    put_be64(rec + 17, n->next_seq);
    put_be32(rec + 25, n->item_count);
    put_be64(rec + NODE_HDR, n->payload_bytes);
    put_be64(rec + NODE_HDR + 8, n->rate_at);
    put_be64(rec + NODE_HDR + 16, n->rate_debt);
    if (n->config_len)
        memcpy(rec + NODE_HDR_V2, n->config, n->config_len);
    int rc = put(t, t->s->nodes, name, strlen(name), rec, len);
    if (rec != stackbuf)
        free(rec);
    return rc;
}

static int items_bytes(struct store_txn *t, uint64_t node_id, uint64_t *out);

/* A v1 record (written before quotas) has no byte count: it is counted
 * from the node's items here, once per read, until the node is next
 * written (as v2). Its rate bucket starts full. */
static int decode_node(struct store_txn *t, const MDB_val *v, struct store_node *out)
{
    const uint8_t *p = v->mv_data;
    size_t hdr = v->mv_size >= 1 && p[0] == NODE_REC_V2 ? NODE_HDR_V2 : NODE_HDR;
    if (v->mv_size < hdr || (p[0] != REC_V1 && p[0] != NODE_REC_V2))
        return HERALD_ESCHEMA;
    memset(out, 0, sizeof(*out));
    out->id = get_be64(p + 1);
    out->created = get_be64(p + 9);
    out->next_seq = get_be64(p + 17);
    out->item_count = get_be32(p + 25);
    out->config = p + hdr;
    out->config_len = v->mv_size - hdr;
    if (p[0] == REC_V1)
        return items_bytes(t, out->id, &out->payload_bytes);
    out->payload_bytes = get_be64(p + NODE_HDR);
    out->rate_at = get_be64(p + NODE_HDR + 8);
    out->rate_debt = get_be64(p + NODE_HDR + 16);
    return 0;
}

int store_node_get(struct store_txn *t, const char *name, struct store_node *out)
{
    MDB_val v;
    int rc = get(t, t->s->nodes, name, strlen(name), &v);
    return rc ? rc : decode_node(t, &v, out);
}

int store_node_del(struct store_txn *t, const char *name, uint64_t id)
{
    int rc = del(t, t->s->nodes, name, strlen(name));
    if (rc == 0)
        rc = del_prefix(t, t->s->items, id);
    if (rc == 0)
        rc = del_prefix(t, t->s->item_ids, id);
    if (rc == 0)
        rc = del_prefix(t, t->s->subs, id);
    if (rc == 0)
        rc = del_prefix(t, t->s->affs, id);
    return rc;
}

int store_node_each(struct store_txn *t,
                    int (*fn)(void *ud, const char *name, const struct store_node *n), void *ud)
{
    MDB_cursor *c;
    MDB_val k, v;
    int rc = mdb_cursor_open(t->txn, t->s->nodes, &c);
    if (rc != 0)
        return store_map_err(rc);
    int ret = 0;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && ret == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        char name[KEY_MAX + 1];
        struct store_node n;
        memcpy(name, k.mv_data, k.mv_size);
        name[k.mv_size] = '\0';
        ret = decode_node(t, &v, &n);
        if (ret == 0)
            ret = fn(ud, name, &n);
    }
    mdb_cursor_close(c);
    if (ret)
        return ret;
    return rc == MDB_NOTFOUND ? 0 : store_map_err(rc);
}

/* ---- items ---- */

static int decode_item(const MDB_val *k, const MDB_val *v, struct store_item *out)
{
    const uint8_t *p = v->mv_data, *end = p + v->mv_size;
    if (k->mv_size != 16 || v->mv_size < 1 + 8 + 2 + 2 || (p[0] != REC_V1 && p[0] != REC_V2))
        return HERALD_ESCHEMA;
    out->seq = get_be64((const uint8_t *)k->mv_data + 8);
    out->published = get_be64(p + 1);
    out->lease_kind = STORE_LEASE_NONE;
    out->lease_secs = 0;
    out->lease_until = 0;
    bool leased = p[0] == REC_V2;
    p += 9;
    if (leased) {
        if ((size_t)(end - p) < LEASE_HDR + 4)
            return HERALD_ESCHEMA;
        out->lease_kind = p[0];
        out->lease_secs = get_be32(p + 1);
        out->lease_until = get_be64(p + 5);
        p += LEASE_HDR;
    }
    out->id_len = (size_t)p[0] << 8 | p[1];
    p += 2;
    if ((size_t)(end - p) < out->id_len + 2)
        return HERALD_ESCHEMA;
    out->id = (const char *)p;
    p += out->id_len;
    out->publisher_len = (size_t)p[0] << 8 | p[1];
    p += 2;
    if ((size_t)(end - p) < out->publisher_len)
        return HERALD_ESCHEMA;
    out->publisher = (const char *)p;
    p += out->publisher_len;
    out->payload = (const char *)p;
    out->payload_len = (size_t)(end - p);
    return 0;
}

/* The record of it, malloc'd (*len its size): v1, or v2 with its lease. */
static uint8_t *encode_item(const struct store_item *it, size_t *len)
{
    bool leased = it->lease_kind != STORE_LEASE_NONE;
    *len = 1 + 8 + (leased ? LEASE_HDR : 0) + 2 + it->id_len + 2 + it->publisher_len +
           it->payload_len;
    uint8_t *rec = malloc(*len), *p = rec;
    if (rec == NULL)
        return NULL;
    *p++ = leased ? REC_V2 : REC_V1;
    put_be64(p, it->published);
    p += 8;
    if (leased) {
        p[0] = it->lease_kind;
        put_be32(p + 1, it->lease_secs);
        put_be64(p + 5, it->lease_until);
        p += LEASE_HDR;
    }
    *p++ = (uint8_t)(it->id_len >> 8), *p++ = (uint8_t)it->id_len;
    memcpy(p, it->id, it->id_len);
    p += it->id_len;
    *p++ = (uint8_t)(it->publisher_len >> 8), *p++ = (uint8_t)it->publisher_len;
    memcpy(p, it->publisher, it->publisher_len);
    p += it->publisher_len;
    if (it->payload_len)
        memcpy(p, it->payload, it->payload_len);
    return rec;
}

static void lease_key(uint8_t k[LEASE_KEY], uint8_t kind, uint64_t until, uint64_t node_id,
                      uint64_t seq)
{
    k[0] = kind;
    put_be64(k + 1, until);
    put_be64(k + 9, node_id);
    put_be64(k + 17, seq);
}

/* Deletes the item at seq (and its id record when del_id) from node n,
 * taking its payload off n->payload_bytes. */
/* Deletes the lease entry of an item (decoded it) that goes or changes its
 * lease, so republishing or renewing leaves no stale entry behind. */
static int lease_entry_del(struct store_txn *t, uint64_t node_id, const struct store_item *it)
{
    if (it->lease_kind == STORE_LEASE_NONE)
        return 0;
    uint8_t lk[LEASE_KEY];
    lease_key(lk, it->lease_kind, it->lease_until, node_id, it->seq);
    int rc = del(t, t->s->leases, lk, LEASE_KEY);
    return rc == HERALD_ENOTFOUND ? 0 : rc;
}

static int item_del_seq(struct store_txn *t, struct store_node *n, uint64_t seq, bool del_id)
{
    uint8_t k[16];
    put_be64(k, n->id);
    put_be64(k + 8, seq);
    MDB_val v;
    struct store_item it;
    MDB_val kv = {16, k};
    int rc = get(t, t->s->items, k, 16, &v);
    if (rc != 0)
        return rc;
    if ((rc = decode_item(&kv, &v, &it)) != 0)
        return rc;
    if (del_id) {
        uint8_t ik[KEY_MAX + 1];
        size_t il = make_key(ik, n->id, it.id, it.id_len, NULL);
        if (il && (rc = del(t, t->s->item_ids, ik, il)) != 0)
            return rc;
    }
    if ((rc = lease_entry_del(t, n->id, &it)) != 0)
        return rc;
    size_t gone = it.payload_len;
    if ((rc = del(t, t->s->items, k, 16)) == 0)
        n->payload_bytes -= gone < n->payload_bytes ? gone : n->payload_bytes;
    return rc;
}

int store_item_put(struct store_txn *t, const char *node_name, struct store_node *n,
                   struct store_item *it, uint32_t max_items, unsigned *evicted, bool *replaced)
{
    uint8_t ik[KEY_MAX + 1];
    size_t il = make_key(ik, n->id, it->id, it->id_len, NULL);
    if (il == 0 || it->id_len > 0xffff || it->publisher_len > 0xffff)
        return HERALD_ETOOBIG;
    MDB_val old;
    int rc = get(t, t->s->item_ids, ik, il, &old);
    if (replaced)
        *replaced = rc == 0;
    if (rc == 0 && old.mv_size == 8) {
        /* Same id: the old version goes, the new one is the newest. */
        if ((rc = item_del_seq(t, n, get_be64(old.mv_data), false)) != 0)
            return rc;
        n->item_count--;
    } else if (rc != HERALD_ENOTFOUND) {
        return rc ? rc : HERALD_ESCHEMA;
    }
    it->seq = n->next_seq++;
    size_t len;
    uint8_t *rec = encode_item(it, &len);
    if (rec == NULL)
        return HERALD_ENOMEM;
    uint8_t k[16], seqbuf[8];
    put_be64(k, n->id);
    put_be64(k + 8, it->seq);
    put_be64(seqbuf, it->seq);
    rc = put(t, t->s->items, k, 16, rec, len);
    free(rec);
    if (rc == 0)
        rc = put(t, t->s->item_ids, ik, il, seqbuf, 8);
    if (rc == 0 && it->lease_kind != STORE_LEASE_NONE) {
        uint8_t lk[LEASE_KEY];
        lease_key(lk, it->lease_kind, it->lease_until, n->id, it->seq);
        rc = put(t, t->s->leases, lk, LEASE_KEY, "", 0);
    }
    if (rc != 0)
        return rc;
    n->item_count++;
    n->payload_bytes += it->payload_len;
    /* max_items trimming, oldest first, in this same transaction. */
    return store_items_trim(t, node_name, n, max_items, evicted);
}

/* Deletes oldest items while more than keep remain or while they were
 * published before cutoff_ms. */
static int drop_oldest(struct store_txn *t, const char *node_name, struct store_node *n,
                       uint32_t keep, uint64_t cutoff_ms, unsigned *evicted)
{
    unsigned gone = 0;
    int rc = 0;
    if (n->item_count > keep || cutoff_ms > 0) {
        MDB_cursor *c;
        uint8_t ik[KEY_MAX + 1];
        if ((rc = mdb_cursor_open(t->txn, t->s->items, &c)) != 0)
            return store_map_err(rc);
        uint8_t pre[16];
        put_be64(pre, n->id);
        put_be64(pre + 8, 0);
        while (rc == 0 && n->item_count > 0) {
            MDB_val ck = {16, pre}, cv;
            rc = mdb_cursor_get(c, &ck, &cv, MDB_SET_RANGE);
            if (rc != 0 || ck.mv_size != 16 || memcmp(ck.mv_data, pre, 8) != 0)
                break;
            struct store_item victim;
            if ((rc = decode_item(&ck, &cv, &victim)) != 0)
                break;
            if (n->item_count <= keep && victim.published >= cutoff_ms)
                break;
            size_t vl = make_key(ik, n->id, victim.id, victim.id_len, NULL);
            if (vl && (rc = del(t, t->s->item_ids, ik, vl)) != 0)
                break;
            if ((rc = lease_entry_del(t, n->id, &victim)) != 0)
                break;
            size_t victim_bytes = victim.payload_len; /* cv is gone after the delete */
            if ((rc = st_cursor_del(t->s, t->txn, t->s->items, c)) != 0) {
                rc = store_map_err_s(t->s, rc);
                break;
            }
            n->item_count--;
            n->payload_bytes -= victim_bytes < n->payload_bytes ? victim_bytes : n->payload_bytes;
            gone++;
        }
        mdb_cursor_close(c);
        if (rc == MDB_NOTFOUND)
            rc = 0;
        if (rc != 0)
            return rc > 0 ? store_map_err(rc) : rc;
    }
    if (evicted)
        *evicted = gone;
    if (gone == 0 && cutoff_ms > 0)
        return 0; /* nothing expired: leave the transaction clean (no sync) */
    return store_node_put(t, node_name, n);
}

int store_items_trim(struct store_txn *t, const char *node_name, struct store_node *n,
                     uint32_t keep, unsigned *evicted)
{
    return drop_oldest(t, node_name, n, keep, 0, evicted);
}

int store_items_expire(struct store_txn *t, const char *node_name, struct store_node *n,
                       uint64_t cutoff_ms, unsigned *evicted)
{
    return drop_oldest(t, node_name, n, UINT32_MAX, cutoff_ms, evicted);
}

int store_item_get(struct store_txn *t, uint64_t node_id, const char *id, size_t id_len,
                   struct store_item *out)
{
    uint8_t ik[KEY_MAX + 1];
    size_t il = make_key(ik, node_id, id, id_len, NULL);
    MDB_val sv, v;
    if (il == 0)
        return HERALD_ENOTFOUND;
    int rc = get(t, t->s->item_ids, ik, il, &sv);
    if (rc != 0)
        return rc;
    if (sv.mv_size != 8)
        return HERALD_ESCHEMA;
    uint8_t k[16];
    put_be64(k, node_id);
    memcpy(k + 8, sv.mv_data, 8);
    if ((rc = get(t, t->s->items, k, 16, &v)) != 0)
        return rc;
    MDB_val kv = {16, k};
    struct store_item tmp;
    rc = decode_item(&kv, &v, &tmp);
    if (rc == 0) {
        /* kv points at our stack buffer: re-point seq only. */
        *out = tmp;
        out->seq = get_be64(k + 8);
    }
    return rc;
}

int store_item_del(struct store_txn *t, const char *node_name, struct store_node *n,
                   const char *id, size_t id_len)
{
    uint8_t ik[KEY_MAX + 1];
    size_t il = make_key(ik, n->id, id, id_len, NULL);
    MDB_val sv;
    if (il == 0)
        return HERALD_ENOTFOUND;
    int rc = get(t, t->s->item_ids, ik, il, &sv);
    if (rc != 0)
        return rc;
    uint64_t seq = sv.mv_size == 8 ? get_be64(sv.mv_data) : 0;
    if ((rc = item_del_seq(t, n, seq, false)) != 0 || (rc = del(t, t->s->item_ids, ik, il)) != 0)
        return rc;
    n->item_count--;
    return store_node_put(t, node_name, n);
}

int store_items_purge(struct store_txn *t, const char *node_name, struct store_node *n)
{
    int rc = del_prefix(t, t->s->items, n->id);
    if (rc == 0)
        rc = del_prefix(t, t->s->item_ids, n->id);
    if (rc != 0)
        return rc;
    n->item_count = 0;
    n->payload_bytes = 0;
    return store_node_put(t, node_name, n);
}

int store_item_get_seq(struct store_txn *t, uint64_t node_id, uint64_t seq,
                       struct store_item *out)
{
    uint8_t k[16];
    put_be64(k, node_id);
    put_be64(k + 8, seq);
    MDB_val v, kv = {16, k};
    int rc = get(t, t->s->items, k, 16, &v);
    if (rc == 0)
        rc = decode_item(&kv, &v, out);
    return rc;
}

/* ---- leases ---- */

int store_lease_renew(struct store_txn *t, uint64_t node_id, uint64_t seq, uint32_t secs,
                      uint64_t until)
{
    struct store_item it;
    int rc = store_item_get_seq(t, node_id, seq, &it);
    if (rc != 0 || (rc = lease_entry_del(t, node_id, &it)) != 0)
        return rc;
    it.lease_kind = STORE_LEASE_TIMED;
    it.lease_secs = secs;
    it.lease_until = until;
    size_t len;
    uint8_t *rec = encode_item(&it, &len); /* it points into the map: copy first */
    if (rec == NULL)
        return HERALD_ENOMEM;
    uint8_t k[16], lk[LEASE_KEY];
    put_be64(k, node_id);
    put_be64(k + 8, seq);
    rc = put(t, t->s->items, k, 16, rec, len);
    free(rec);
    lease_key(lk, STORE_LEASE_TIMED, until, node_id, seq);
    return rc ? rc : put(t, t->s->leases, lk, LEASE_KEY, "", 0);
}

int store_leases_each(struct store_txn *t, uint8_t kind, uint64_t until_max, unsigned max,
                      int (*fn)(void *ud, const struct store_lease *l), void *ud)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->s->leases, &c);
    if (rc != 0)
        return store_map_err(rc);
    bool one_session = kind == STORE_LEASE_SESSION && until_max != UINT64_MAX;
    uint8_t start[LEASE_KEY];
    lease_key(start, kind, one_session ? until_max : 0, 0, 0);
    MDB_val k = {LEASE_KEY, start}, v;
    unsigned n = 0;
    int ret = 0;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 && ret == 0 && n < max;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT), n++) {
        const uint8_t *p = k.mv_data;
        if (k.mv_size != LEASE_KEY || p[0] != kind)
            break;
        struct store_lease l = {kind, get_be64(p + 1), get_be64(p + 9), get_be64(p + 17)};
        if (kind == STORE_LEASE_TIMED ? l.until > until_max : one_session && l.until != until_max)
            break;
        ret = fn(ud, &l);
    }
    mdb_cursor_close(c);
    if (ret)
        return ret;
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : store_map_err(rc);
}

int store_lease_del(struct store_txn *t, const struct store_lease *l)
{
    uint8_t lk[LEASE_KEY];
    lease_key(lk, l->kind, l->until, l->node_id, l->seq);
    int rc = del(t, t->s->leases, lk, LEASE_KEY);
    return rc == HERALD_ENOTFOUND ? 0 : rc;
}

int store_lease_live(struct store_txn *t, const struct store_lease *l, struct store_item *out)
{
    struct store_item it;
    int rc = store_item_get_seq(t, l->node_id, l->seq, &it);
    if (rc == HERALD_ENOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    if (it.lease_kind != l->kind || it.lease_until != l->until)
        return 0; /* renewed, or republished without this lease */
    if (out)
        *out = it;
    return 1;
}

int store_items_newest(struct store_txn *t, uint64_t node_id, uint64_t before_seq, unsigned max,
                       int (*fn)(void *ud, const struct store_item *it), void *ud)
{
    MDB_cursor *c;
    MDB_val k, v;
    uint8_t start[16];
    int rc = mdb_cursor_open(t->txn, t->s->items, &c);
    if (rc != 0)
        return store_map_err(rc);
    /* Position on the first key >= (node, before_seq), then step back. */
    put_be64(start, node_id);
    put_be64(start + 8, before_seq);
    k.mv_size = 16;
    k.mv_data = start;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND)
        rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    else if (rc == 0)
        rc = mdb_cursor_get(c, &k, &v, MDB_PREV);
    /* MDB_LAST lands on the newest key overall; it may be at or past start. */
    if (rc == 0 && k.mv_size == 16 && memcmp(k.mv_data, start, 16) >= 0)
        rc = mdb_cursor_get(c, &k, &v, MDB_PREV);
    int ret = 0;
    unsigned n = 0;
    while (rc == 0 && n < max && ret == 0) {
        if (k.mv_size != 16 || memcmp(k.mv_data, start, 8) != 0)
            break;
        struct store_item it;
        ret = decode_item(&k, &v, &it);
        if (ret == 0)
            ret = fn(ud, &it);
        n++;
        rc = mdb_cursor_get(c, &k, &v, MDB_PREV);
    }
    mdb_cursor_close(c);
    if (ret)
        return ret > 0 ? 0 : ret;
    return (rc == 0 || rc == MDB_NOTFOUND) ? 0 : store_map_err(rc);
}

int store_items_oldest(struct store_txn *t, uint64_t node_id, uint64_t after_seq, unsigned max,
                       int (*fn)(void *ud, const struct store_item *it), void *ud)
{
    MDB_cursor *c;
    MDB_val k, v;
    uint8_t start[16];
    if (after_seq == UINT64_MAX)
        return 0;
    int rc = mdb_cursor_open(t->txn, t->s->items, &c);
    if (rc != 0)
        return store_map_err(rc);
    put_be64(start, node_id);
    put_be64(start + 8, after_seq + 1);
    k.mv_size = 16;
    k.mv_data = start;
    int ret = 0;
    unsigned n = 0;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 && n < max && ret == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 16 || memcmp(k.mv_data, start, 8) != 0)
            break;
        struct store_item it;
        ret = decode_item(&k, &v, &it);
        if (ret == 0)
            ret = fn(ud, &it);
        n++;
    }
    mdb_cursor_close(c);
    if (ret)
        return ret > 0 ? 0 : ret;
    return (rc == 0 || rc == MDB_NOTFOUND) ? 0 : store_map_err(rc);
}

static int add_bytes(void *ud, const struct store_item *it)
{
    *(uint64_t *)ud += it->payload_len;
    return 0;
}

static int items_bytes(struct store_txn *t, uint64_t node_id, uint64_t *out)
{
    *out = 0;
    return store_items_oldest(t, node_id, 0, UINT32_MAX, add_bytes, out);
}

/* ---- subscriptions ---- */

int store_sub_put(struct store_txn *t, uint64_t node_id, const struct store_sub *sub)
{
    uint8_t k[KEY_MAX + 1];
    size_t kl = make_key(k, node_id, sub->jid, strlen(sub->jid), sub->subid);
    if (kl == 0)
        return HERALD_ETOOBIG;
    size_t len = 2 + sub->options_len;
    uint8_t stackbuf[512], *rec = len <= sizeof(stackbuf) ? stackbuf : malloc(len);
    if (rec == NULL)
        return HERALD_ENOMEM;
    rec[0] = REC_V1;
    rec[1] = sub->state;
    if (sub->options_len)
        memcpy(rec + 2, sub->options, sub->options_len);
    int rc = put(t, t->s->subs, k, kl, rec, len);
    if (rec != stackbuf)
        free(rec);
    return rc;
}

int store_sub_del(struct store_txn *t, uint64_t node_id, const char *jid, const char *subid)
{
    uint8_t k[KEY_MAX + 1];
    size_t kl = make_key(k, node_id, jid, strlen(jid), subid);
    return kl ? del(t, t->s->subs, k, kl) : HERALD_ENOTFOUND;
}

/* Calls row for every record of dbi whose key starts with the node id;
 * a nonzero return from row stops the walk and is returned. */
static int each_in_node(struct store_txn *t, MDB_dbi dbi, uint64_t node_id,
                        int (*row)(void *ud, const MDB_val *k, const MDB_val *v), void *ud)
{
    MDB_cursor *c;
    uint8_t pre[8];
    put_be64(pre, node_id);
    int rc = mdb_cursor_open(t->txn, dbi, &c);
    if (rc != 0)
        return store_map_err(rc);
    MDB_val k = {8, pre}, v;
    int ret = 0;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 && ret == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size < 9 || memcmp(k.mv_data, pre, 8) != 0)
            break;
        ret = row(ud, &k, &v);
    }
    mdb_cursor_close(c);
    if (ret)
        return ret;
    return (rc == 0 || rc == MDB_NOTFOUND) ? 0 : store_map_err(rc);
}

struct subs_walk {
    int (*fn)(void *ud, const struct store_sub *sub);
    void *ud;
};

static int sub_row(void *ud, const MDB_val *k, const MDB_val *v)
{
    struct subs_walk *w = ud;
    const uint8_t *rec = v->mv_data;
    if (k->mv_size < 10 || v->mv_size < 2 || rec[0] != REC_V1)
        return HERALD_ESCHEMA;
    char key[KEY_MAX + 1];
    memcpy(key, (const char *)k->mv_data + 8, k->mv_size - 8);
    key[k->mv_size - 8] = '\0';
    size_t jl = strlen(key);
    if (jl >= k->mv_size - 8)
        return HERALD_ESCHEMA;
    struct store_sub sub = {key, key + jl + 1, rec[1], rec + 2, v->mv_size - 2};
    return w->fn(w->ud, &sub);
}

int store_subs_each(struct store_txn *t, uint64_t node_id,
                    int (*fn)(void *ud, const struct store_sub *sub), void *ud)
{
    struct subs_walk w = {fn, ud};
    return each_in_node(t, t->s->subs, node_id, sub_row, &w);
}

/* ---- affiliations ---- */

int store_aff_put(struct store_txn *t, uint64_t node_id, const char *jid, uint8_t aff)
{
    uint8_t k[KEY_MAX + 1];
    size_t kl = make_key(k, node_id, jid, strlen(jid), NULL);
    if (kl == 0)
        return HERALD_ETOOBIG;
    if (aff == 0) {
        int rc = del(t, t->s->affs, k, kl);
        return rc == HERALD_ENOTFOUND ? 0 : rc;
    }
    return put(t, t->s->affs, k, kl, &aff, 1);
}

struct affs_walk {
    int (*fn)(void *ud, const char *jid, uint8_t aff);
    void *ud;
};

static int aff_row(void *ud, const MDB_val *k, const MDB_val *v)
{
    struct affs_walk *w = ud;
    char jid[KEY_MAX + 1];
    memcpy(jid, (const char *)k->mv_data + 8, k->mv_size - 8);
    jid[k->mv_size - 8] = '\0';
    return w->fn(w->ud, jid, v->mv_size ? *(const uint8_t *)v->mv_data : 0);
}

int store_affs_each(struct store_txn *t, uint64_t node_id,
                    int (*fn)(void *ud, const char *jid, uint8_t aff), void *ud)
{
    struct affs_walk w = {fn, ud};
    return each_in_node(t, t->s->affs, node_id, aff_row, &w);
}
