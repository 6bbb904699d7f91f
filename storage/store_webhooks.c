/* store_webhooks.c - signed webhooks (api/webhooks.c): their records in
 * "webhooks" and their outbox in "wh_outbox" (docs/storage-layout.md).
 *
 * webhooks:  key  webhook id (be64, from the "next_webhook_id" counter in
 *                 "meta": never reused, so a delivery id stays unique)
 *            v1   version byte, flags, events bit set, max_attempts (be32),
 *                 node id, created ms, delivered, failures, dropped (be64
 *                 each), then node, owner, url, secret, dead_letter, each
 *                 a be16 length and its bytes.
 * wh_outbox: key  webhook id (be64) | outbox seq (be64): in delivery order
 *            v1   version byte, event kind, attempts (be32), last HTTP
 *                 status (be16), created ms (be64), then the JSON body the
 *                 receiver gets.
 * A webhook's outbox records are written in the same transaction as the
 * change they announce (the pubsub journal), and removed with the webhook. */
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "store.h"
#include "store_impl.h"

#define WH_RECORD_V1 1
#define WH_FIXED (1 + 1 + 1 + 4 + 8 * 5)
#define OUTBOX_RECORD_V1 1
#define OUTBOX_FIXED (1 + 1 + 4 + 2 + 8)

static int put_str(uint8_t **p, const uint8_t *end, const char *s)
{
    size_t n = strlen(s);
    if (n > 0xffff || (size_t)(end - *p) < 2 + n)
        return HERALD_ETOOBIG;
    (*p)[0] = (uint8_t)(n >> 8);
    (*p)[1] = (uint8_t)n;
    memcpy(*p + 2, s, n);
    *p += 2 + n;
    return 0;
}

static int get_str(const uint8_t **p, const uint8_t *end, char *out, size_t cap)
{
    if (end - *p < 2)
        return HERALD_EIO;
    size_t n = (size_t)(*p)[0] << 8 | (*p)[1];
    if ((size_t)(end - *p) < 2 + n || n >= cap)
        return HERALD_EIO;
    memcpy(out, *p + 2, n);
    out[n] = '\0';
    *p += 2 + n;
    return 0;
}

int store_webhook_new_id(struct store_txn *t, uint64_t *id)
{
    static const char key[] = "next_webhook_id";
    MDB_val k = {sizeof(key) - 1, (void *)key}, v;
    uint64_t next = 1;
    int rc = mdb_get(t->txn, t->s->meta, &k, &v);
    if (rc == 0 && v.mv_size == 8)
        next = get_be64(v.mv_data);
    else if (rc != 0 && rc != MDB_NOTFOUND)
        return store_map_err(rc);
    uint8_t buf[8];
    put_be64(buf, next + 1);
    v.mv_size = 8;
    v.mv_data = buf;
    rc = store_map_err_s(t->s, st_put(t->s, t->txn, t->s->meta, &k, &v, 0));
    if (rc == 0)
        *id = next;
    return rc;
}

int store_webhook_put(struct store_txn *t, const struct store_webhook *w)
{
    uint8_t rec[WH_FIXED + 5 * 2 + sizeof(w->node) + sizeof(w->owner) + sizeof(w->url) +
                sizeof(w->secret) + sizeof(w->dead_letter)];
    uint8_t *p = rec, *end = rec + sizeof(rec), kb[8];
    *p++ = WH_RECORD_V1;
    *p++ = w->flags;
    *p++ = w->events;
    put_be32(p, w->max_attempts), p += 4;
    put_be64(p, w->node_id), p += 8;
    put_be64(p, w->created), p += 8;
    put_be64(p, w->delivered), p += 8;
    put_be64(p, w->failures), p += 8;
    put_be64(p, w->dropped), p += 8;
    int rc;
    if ((rc = put_str(&p, end, w->node)) != 0 || (rc = put_str(&p, end, w->owner)) != 0 ||
        (rc = put_str(&p, end, w->url)) != 0 || (rc = put_str(&p, end, w->secret)) != 0 ||
        (rc = put_str(&p, end, w->dead_letter)) != 0)
        return rc;
    put_be64(kb, w->id);
    MDB_val k = {8, kb}, v = {(size_t)(p - rec), rec};
    return store_map_err_s(t->s, st_put(t->s, t->txn, t->s->webhooks, &k, &v, 0));
}

static int decode_webhook(const MDB_val *k, const MDB_val *v, struct store_webhook *w)
{
    const uint8_t *p = v->mv_data, *end = p + v->mv_size;
    if (k->mv_size != 8 || v->mv_size < WH_FIXED || p[0] != WH_RECORD_V1)
        return HERALD_EIO;
    w->id = get_be64(k->mv_data);
    w->flags = p[1];
    w->events = p[2];
    w->max_attempts = get_be32(p + 3);
    w->node_id = get_be64(p + 7);
    w->created = get_be64(p + 15);
    w->delivered = get_be64(p + 23);
    w->failures = get_be64(p + 31);
    w->dropped = get_be64(p + 39);
    p += WH_FIXED;
    int rc;
    if ((rc = get_str(&p, end, w->node, sizeof(w->node))) != 0 ||
        (rc = get_str(&p, end, w->owner, sizeof(w->owner))) != 0 ||
        (rc = get_str(&p, end, w->url, sizeof(w->url))) != 0 ||
        (rc = get_str(&p, end, w->secret, sizeof(w->secret))) != 0 ||
        (rc = get_str(&p, end, w->dead_letter, sizeof(w->dead_letter))) != 0)
        return rc;
    return 0;
}

int store_webhook_del(struct store_txn *t, uint64_t id)
{
    uint8_t kb[8];
    put_be64(kb, id);
    MDB_val k = {8, kb};
    int rc = store_map_err_s(t->s, st_del(t->s, t->txn, t->s->webhooks, &k, NULL));
    if (rc != 0)
        return rc;
    return store_del_prefix(t, t->s->wh_outbox, kb, 8);
}

int store_webhook_each(struct store_txn *t, int (*fn)(void *ud, const struct store_webhook *w),
                       void *ud)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(t->txn, t->s->webhooks, &cur);
    if (rc != 0)
        return store_map_err(rc);
    /* One record at a time in a heap copy: a record holds up to ~6 KiB. */
    struct store_webhook *w = malloc(sizeof(*w));
    int ret = w ? 0 : HERALD_ENOMEM;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && ret == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        ret = decode_webhook(&k, &v, w);
        if (ret == 0)
            ret = fn(ud, w);
    }
    if (ret == 0 && rc != MDB_NOTFOUND)
        ret = store_map_err(rc);
    free(w);
    mdb_cursor_close(cur);
    return ret;
}

static void outbox_key(uint8_t kb[16], uint64_t wid, uint64_t seq)
{
    put_be64(kb, wid);
    put_be64(kb + 8, seq);
}

int store_outbox_put(struct store_txn *t, const struct store_outbox *o)
{
    size_t len = OUTBOX_FIXED + o->body_len;
    uint8_t *rec = malloc(len), kb[16];
    if (rec == NULL)
        return HERALD_ENOMEM;
    rec[0] = OUTBOX_RECORD_V1;
    rec[1] = o->event;
    put_be32(rec + 2, o->attempts);
    rec[6] = (uint8_t)(o->last_status >> 8);
    rec[7] = (uint8_t)o->last_status;
    put_be64(rec + 8, o->created);
    memcpy(rec + OUTBOX_FIXED, o->body, o->body_len);
    outbox_key(kb, o->webhook_id, o->seq);
    MDB_val k = {16, kb}, v = {len, rec};
    int rc = store_map_err_s(t->s, st_put(t->s, t->txn, t->s->wh_outbox, &k, &v, 0));
    free(rec);
    return rc;
}

int store_outbox_next(struct store_txn *t, uint64_t wid, uint64_t after_seq,
                      struct store_outbox *out)
{
    MDB_cursor *cur;
    uint8_t kb[16];
    if (after_seq == UINT64_MAX)
        return HERALD_ENOTFOUND;
    outbox_key(kb, wid, after_seq + 1);
    MDB_val k = {16, kb}, v;
    int rc = mdb_cursor_open(t->txn, t->s->wh_outbox, &cur);
    if (rc != 0)
        return store_map_err(rc);
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (rc == 0 && (k.mv_size != 16 || get_be64(k.mv_data) != wid))
        rc = MDB_NOTFOUND;
    if (rc == 0) {
        const uint8_t *p = v.mv_data;
        if (v.mv_size < OUTBOX_FIXED || p[0] != OUTBOX_RECORD_V1) {
            mdb_cursor_close(cur);
            return HERALD_EIO;
        }
        out->webhook_id = wid;
        out->seq = get_be64((const uint8_t *)k.mv_data + 8);
        out->event = p[1];
        out->attempts = get_be32(p + 2);
        out->last_status = (uint16_t)(p[6] << 8 | p[7]);
        out->created = get_be64(p + 8);
        out->body = (const char *)p + OUTBOX_FIXED;
        out->body_len = v.mv_size - OUTBOX_FIXED;
    }
    mdb_cursor_close(cur);
    return store_map_err(rc);
}

int store_outbox_del(struct store_txn *t, uint64_t wid, uint64_t seq)
{
    uint8_t kb[16];
    outbox_key(kb, wid, seq);
    MDB_val k = {16, kb};
    return store_map_err_s(t->s, st_del(t->s, t->txn, t->s->wh_outbox, &k, NULL));
}

int store_outbox_stats(struct store_txn *t, uint64_t wid, uint64_t *count, uint64_t *first_seq,
                       uint64_t *last_seq, uint64_t *bytes)
{
    MDB_cursor *cur;
    uint8_t kb[16];
    outbox_key(kb, wid, 0);
    MDB_val k = {16, kb}, v;
    *count = *first_seq = *last_seq = *bytes = 0;
    int rc = mdb_cursor_open(t->txn, t->s->wh_outbox, &cur);
    if (rc != 0)
        return store_map_err(rc);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         rc == 0 && k.mv_size == 16 && get_be64(k.mv_data) == wid;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint64_t seq = get_be64((const uint8_t *)k.mv_data + 8);
        if (*count == 0)
            *first_seq = seq;
        *last_seq = seq;
        (*count)++;
        *bytes += v.mv_size;
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : store_map_err(rc);
}
