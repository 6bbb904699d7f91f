/* store_mam.c - message archives (XEP-0313) in LMDB.
 *
 * Keys (owner is a prepared bare JID, integers big-endian):
 *   mam       owner 0x00 id(8)   -> v1 flags(1) withlen(2) with xml
 *   mam_acct  owner 0x00 'c'     -> v1 count(4)      messages archived
 *   mam_acct  owner 0x00 'p'     -> v1 default(1) alwayslen(4) always never
 *   meta      "mam_last"         -> id(8)            the last id handed out
 * An archive id is microseconds since the epoch, bumped past the last id
 * handed out: so one account's messages sort by time in key order, a time
 * range is a key range, and an id is never reused. Records carry a version
 * byte; an unknown one is HERALD_ESCHEMA. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "store.h"
#include "store_impl.h"

#define REC_V1 1
#define KEY_MAX 511
#define F_OUT 1
/* Retention by age deletes at most this many expired messages per insert,
 * so one insert's work stays bounded; queries skip the rest. */
#define EXPIRE_PER_PUT 64
/* A page holds at most this many messages (the broker clamps max lower). */
#define PAGE_MAX 1024

static size_t prefix(uint8_t *k, const char *owner)
{
    size_t ol = strlen(owner);
    if (ol == 0 || ol + 1 + 8 > KEY_MAX)
        return 0;
    memcpy(k, owner, ol);
    k[ol] = 0;
    return ol + 1;
}

static size_t msg_key(uint8_t *k, const char *owner, uint64_t id)
{
    size_t pl = prefix(k, owner);
    if (pl)
        put_be64(k + pl, id);
    return pl ? pl + 8 : 0;
}

static size_t acct_key(uint8_t *k, const char *owner, char kind)
{
    size_t pl = prefix(k, owner);
    if (pl)
        k[pl] = (uint8_t)kind;
    return pl ? pl + 1 : 0;
}

int store_mam_next_ids(struct store_txn *t, uint64_t now_us, unsigned n, uint64_t *first)
{
    MDB_val k = {8, "mam_last"}, v;
    uint64_t last = 0;
    int rc = mdb_get(t->txn, t->s->meta, &k, &v);
    if (rc == 0 && v.mv_size == 8)
        last = get_be64(v.mv_data);
    else if (rc != 0 && rc != MDB_NOTFOUND)
        return store_map_err(rc);
    uint64_t id = now_us > last ? now_us : last + 1;
    uint8_t buf[8];
    put_be64(buf, id + n - 1);
    v.mv_size = 8;
    v.mv_data = buf;
    rc = store_map_err_s(t->s, st_put(t->s, t->txn, t->s->meta, &k, &v, 0));
    if (rc == 0)
        *first = id;
    return rc;
}

int store_mam_count(struct store_txn *t, const char *owner, unsigned *count)
{
    uint8_t k[KEY_MAX + 1];
    size_t kl = acct_key(k, owner, 'c');
    *count = 0;
    if (kl == 0)
        return 0;
    MDB_val key = {kl, k}, v;
    int rc = mdb_get(t->txn, t->s->mam_acct, &key, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return store_map_err(rc);
    if (v.mv_size != 5 || ((const uint8_t *)v.mv_data)[0] != REC_V1)
        return HERALD_ESCHEMA;
    *count = get_be32((const uint8_t *)v.mv_data + 1);
    return 0;
}

static int count_put(struct store_txn *t, const char *owner, unsigned count)
{
    uint8_t k[KEY_MAX + 1], buf[5];
    size_t kl = acct_key(k, owner, 'c');
    buf[0] = REC_V1;
    put_be32(buf + 1, count);
    MDB_val key = {kl, k}, v = {5, buf};
    return store_map_err_s(t->s, st_put(t->s, t->txn, t->s->mam_acct, &key, &v, 0));
}

/* Deletes the owner's oldest messages: all beyond keep, then up to limit
 * with an id below min_id. *count is updated. */
static int trim(struct store_txn *t, const uint8_t *pre, size_t pl, unsigned *count, unsigned keep,
                uint64_t min_id, unsigned limit)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->s->mam, &c);
    if (rc != 0)
        return store_map_err(rc);
    for (;;) {
        MDB_val k = {pl, (void *)pre}, v;
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        if (rc != 0 || k.mv_size != pl + 8 || memcmp(k.mv_data, pre, pl) != 0) {
            rc = 0;
            break;
        }
        bool over = keep && *count > keep;
        bool old = limit > 0 && get_be64((const uint8_t *)k.mv_data + pl) < min_id;
        if (!over && !old)
            break;
        if ((rc = st_cursor_del(t->s, t->txn, t->s->mam, c)) != 0)
            break;
        if (*count > 0)
            (*count)--;
        if (!over)
            limit--;
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : store_map_err_s(t->s, rc);
}

int store_mam_put(struct store_txn *t, const char *owner, const struct store_mam_msg *m,
                  unsigned max_msgs, uint64_t min_id)
{
    uint8_t k[KEY_MAX + 1];
    size_t kl = msg_key(k, owner, m->id);
    if (kl == 0 || m->with_len > 0xffff)
        return HERALD_ETOOBIG;
    unsigned count;
    int rc = store_mam_count(t, owner, &count);
    if (rc != 0)
        return rc;
    size_t len = 1 + 1 + 2 + m->with_len + m->xml_len;
    uint8_t *rec = malloc(len);
    if (rec == NULL)
        return HERALD_ENOMEM;
    rec[0] = REC_V1;
    rec[1] = m->outgoing ? F_OUT : 0;
    rec[2] = (uint8_t)(m->with_len >> 8);
    rec[3] = (uint8_t)m->with_len;
    memcpy(rec + 4, m->with, m->with_len);
    memcpy(rec + 4 + m->with_len, m->xml, m->xml_len);
    MDB_val key = {kl, k}, val = {len, rec};
    rc = store_map_err_s(t->s, st_put(t->s, t->txn, t->s->mam, &key, &val, MDB_NOOVERWRITE));
    free(rec);
    if (rc != 0)
        goto done;
    count++;
    if ((rc = trim(t, k, kl - 8, &count, max_msgs, min_id, EXPIRE_PER_PUT)) != 0)
        goto done;
    rc = count_put(t, owner, count);
done:
    return rc;
}

static int decode(const MDB_val *k, size_t pl, const MDB_val *v, struct store_mam_msg *m)
{
    const uint8_t *p = v->mv_data;
    if (v->mv_size < 4 || p[0] != REC_V1)
        return HERALD_ESCHEMA;
    m->id = get_be64((const uint8_t *)k->mv_data + pl);
    m->outgoing = p[1] & F_OUT;
    m->with_len = (size_t)p[2] << 8 | p[3];
    if (v->mv_size < 4 + m->with_len)
        return HERALD_ESCHEMA;
    m->with = (const char *)p + 4;
    m->xml = m->with + m->with_len;
    m->xml_len = v->mv_size - 4 - m->with_len;
    return 0;
}

/* Does the message at (k, v) match q's filter? ids are checked by the walk. */
static bool matches(const MDB_val *k, size_t pl, const MDB_val *v, const struct store_mam_query *q,
                    size_t *bytes)
{
    struct store_mam_msg m;
    if (decode(k, pl, v, &m) != 0)
        return false;
    *bytes = m.xml_len;
    if (q->with == NULL)
        return true;
    size_t wl = strlen(q->with);
    if (q->with_full)
        return m.with_len == wl && memcmp(m.with, q->with, wl) == 0;
    /* A bare JID matches the bare JID and every full JID under it. */
    return m.with_len >= wl && memcmp(m.with, q->with, wl) == 0 &&
           (m.with_len == wl || m.with[wl] == '/');
}

static bool in_archive(const MDB_val *k, const uint8_t *pre, size_t pl)
{
    return k->mv_size == pl + 8 && memcmp(k->mv_data, pre, pl) == 0;
}

static uint64_t key_id(const MDB_val *k, size_t pl)
{
    return get_be64((const uint8_t *)k->mv_data + pl);
}

static int exists(struct store_txn *t, const char *owner, uint64_t id)
{
    uint8_t k[KEY_MAX + 1];
    MDB_val key = {msg_key(k, owner, id), k}, v;
    int rc = mdb_get(t->txn, t->s->mam, &key, &v);
    return rc == 0 ? 0 : rc == MDB_NOTFOUND ? HERALD_ENOTFOUND : store_map_err(rc);
}

/* Positions c on the first message at or after id (forward) or at or
 * before it (backward) in the owner's archive; MDB_NOTFOUND when none. */
static int seek(MDB_cursor *c, const uint8_t *pre, size_t pl, uint64_t id, bool backward,
                MDB_val *k, MDB_val *v)
{
    uint8_t key[KEY_MAX + 1];
    memcpy(key, pre, pl);
    put_be64(key + pl, id);
    k->mv_size = pl + 8;
    k->mv_data = key;
    int rc = mdb_cursor_get(c, k, v, MDB_SET_RANGE);
    if (!backward)
        return rc;
    if (rc == MDB_NOTFOUND)
        return mdb_cursor_get(c, k, v, MDB_LAST);
    if (rc == 0 && (!in_archive(k, pre, pl) || key_id(k, pl) > id))
        return mdb_cursor_get(c, k, v, MDB_PREV);
    return rc;
}

int store_mam_page(struct store_txn *t, const char *owner, const struct store_mam_query *q,
                   struct store_mam_page *out,
                   int (*fn)(void *ud, const struct store_mam_msg *m), void *ud)
{
    uint8_t pre[KEY_MAX + 1];
    size_t pl = prefix(pre, owner);
    uint64_t *ids = NULL;
    MDB_cursor *c = NULL;
    MDB_val k, v;
    int rc = 0;
    memset(out, 0, sizeof(*out));
    out->complete = true;
    if (pl == 0)
        return HERALD_EINVAL;
    if ((q->after && (rc = exists(t, owner, q->after)) != 0) ||
        (q->before && q->before != UINT64_MAX && (rc = exists(t, owner, q->before)) != 0))
        return rc;
    unsigned max = q->max < PAGE_MAX ? q->max : PAGE_MAX;
    if ((ids = malloc((max ? max : 1) * sizeof(*ids))) == NULL)
        return HERALD_ENOMEM;
    if ((rc = mdb_cursor_open(t->txn, t->s->mam, &c)) != 0) {
        rc = store_map_err(rc);
        goto done;
    }
    size_t bytes;
    /* The page: from the anchor in the paging direction, until max
     * messages or max_bytes, then one more match decides `complete`. */
    bool back = q->before != 0;
    uint64_t lo = q->lo, hi = q->hi;
    if (q->after && q->after >= lo)
        lo = q->after + 1;
    if (back && q->before != UINT64_MAX && q->before <= hi)
        hi = q->before - 1;
    size_t total = 0;
    unsigned n = 0;
    if (lo <= hi && q->hi >= q->lo) {
        MDB_cursor_op step = back ? MDB_PREV : MDB_NEXT;
        for (rc = seek(c, pre, pl, back ? hi : lo, back, &k, &v); rc == 0 && in_archive(&k, pre, pl);
             rc = mdb_cursor_get(c, &k, &v, step)) {
            uint64_t id = key_id(&k, pl);
            if (id < lo || id > hi)
                break;
            if (!matches(&k, pl, &v, q, &bytes))
                continue;
            if (n == max || (n > 0 && total + bytes > q->max_bytes)) {
                out->complete = false;
                break;
            }
            ids[n++] = id;
            total += bytes;
        }
        if (rc != 0 && rc != MDB_NOTFOUND) {
            rc = store_map_err(rc);
            goto done;
        }
    }
    /* RSM count and index: every match in the range, whatever the page,
     * and those before the page's first message. */
    uint64_t first = n == 0 ? UINT64_MAX : back ? ids[n - 1] : ids[0];
    for (rc = seek(c, pre, pl, q->lo, false, &k, &v);
         rc == 0 && in_archive(&k, pre, pl) && key_id(&k, pl) <= q->hi;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
        if (matches(&k, pl, &v, q, &bytes)) {
            out->count++;
            out->index += key_id(&k, pl) < first;
        }
    if (rc != 0 && rc != MDB_NOTFOUND) {
        rc = store_map_err(rc);
        goto done;
    }
    rc = 0;
    /* Chronological order either way (XEP-0313 §4.1.2 leaves the order of
     * a reversed page to RSM: the page itself is still oldest first). */
    if (back)
        for (unsigned i = 0; i < n / 2; i++) {
            uint64_t x = ids[i];
            ids[i] = ids[n - 1 - i];
            ids[n - 1 - i] = x;
        }
    out->n = n;
    if (n > 0) {
        out->first = ids[0];
        out->last = ids[n - 1];
    }
    for (unsigned i = 0; i < n && rc == 0; i++) {
        uint8_t key[KEY_MAX + 1];
        MDB_val kk = {msg_key(key, owner, ids[i]), key};
        struct store_mam_msg m;
        if ((rc = mdb_get(t->txn, t->s->mam, &kk, &v)) != 0) {
            rc = store_map_err(rc);
            break;
        }
        if ((rc = decode(&kk, pl, &v, &m)) == 0)
            rc = fn(ud, &m);
    }
done:
    if (c)
        mdb_cursor_close(c);
    free(ids);
    return rc;
}

int store_mam_prefs_get(struct store_txn *t, const char *owner, struct store_mam_prefs *out)
{
    uint8_t k[KEY_MAX + 1];
    size_t kl = acct_key(k, owner, 'p');
    if (kl == 0)
        return HERALD_ENOTFOUND;
    MDB_val key = {kl, k}, v;
    int rc = mdb_get(t->txn, t->s->mam_acct, &key, &v);
    if (rc != 0)
        return store_map_err(rc);
    const uint8_t *p = v.mv_data;
    if (v.mv_size < 6 || p[0] != REC_V1)
        return HERALD_ESCHEMA;
    out->dflt = p[1];
    out->always_len = get_be32(p + 2);
    if (v.mv_size < 6 + out->always_len)
        return HERALD_ESCHEMA;
    out->always = (const char *)p + 6;
    out->never = out->always + out->always_len;
    out->never_len = v.mv_size - 6 - out->always_len;
    return 0;
}

int store_mam_prefs_put(struct store_txn *t, const char *owner, const struct store_mam_prefs *p)
{
    uint8_t k[KEY_MAX + 1];
    size_t kl = acct_key(k, owner, 'p');
    if (kl == 0 || p->always_len > UINT32_MAX)
        return HERALD_ETOOBIG;
    size_t len = 6 + p->always_len + p->never_len;
    uint8_t *rec = malloc(len);
    if (rec == NULL)
        return HERALD_ENOMEM;
    rec[0] = REC_V1;
    rec[1] = p->dflt;
    put_be32(rec + 2, (uint32_t)p->always_len);
    if (p->always_len)
        memcpy(rec + 6, p->always, p->always_len);
    if (p->never_len)
        memcpy(rec + 6 + p->always_len, p->never, p->never_len);
    MDB_val key = {kl, k}, v = {len, rec};
    int rc = store_map_err_s(t->s, st_put(t->s, t->txn, t->s->mam_acct, &key, &v, 0));
    free(rec);
    return rc;
}

int store_mam_forget_account(struct store_txn *t, const char *bare)
{
    uint8_t pre[KEY_MAX + 1];
    size_t pl = prefix(pre, bare);
    if (pl == 0)
        return 0; /* too long to have an archive */
    int rc = store_del_prefix(t, t->s->mam, pre, pl);
    return rc ? rc : store_del_prefix(t, t->s->mam_acct, pre, pl);
}
