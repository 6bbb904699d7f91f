/* store_im.c - rosters and offline messages in LMDB.
 *
 * Keys:
 *   roster   owner 0x00 contact       -> v1 sub flags ver(8) namelen(2) name
 *                                       groupslen(2) groups request
 *   offline  owner 0x00 seq(8)        -> serialized message
 *   meta     "rv" 0x00 owner          -> roster version counter (u64)
 * Owner and contact are prepared bare JIDs. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "errors.h"
#include "store.h"
#include "store_impl.h"

#define REC_V1 1
#define KEY_MAX 511

enum { F_ASK = 1, F_PENDING_IN = 2, F_APPROVED = 4, F_REMOVED = 8 };

static size_t key2(uint8_t *k, const char *a, const char *b, size_t blen)
{
    size_t al = strlen(a);
    if (al + 1 + blen > KEY_MAX || al == 0)
        return 0;
    memcpy(k, a, al);
    k[al] = 0;
    memcpy(k + al + 1, b, blen);
    return al + 1 + blen;
}

int store_roster_put(struct store_txn *t, const char *owner, const struct store_roster_item *it)
{
    uint8_t k[KEY_MAX + 1];
    size_t kl = key2(k, owner, it->contact, strlen(it->contact));
    size_t nl = strlen(it->name ? it->name : "");
    if (kl == 0 || nl > 0xffff || it->groups_len > 0xffff)
        return HERALD_ETOOBIG;
    size_t len = 1 + 1 + 1 + 8 + 2 + nl + 2 + it->groups_len + it->request_len;
    uint8_t *rec = malloc(len), *p = rec;
    if (rec == NULL)
        return HERALD_ENOMEM;
    *p++ = REC_V1;
    *p++ = it->sub;
    *p++ = (uint8_t)((it->ask ? F_ASK : 0) | (it->pending_in ? F_PENDING_IN : 0) |
                     (it->approved ? F_APPROVED : 0) | (it->removed ? F_REMOVED : 0));
    put_be64(p, it->ver);
    p += 8;
    *p++ = (uint8_t)(nl >> 8);
    *p++ = (uint8_t)nl;
    if (nl)
        memcpy(p, it->name, nl);
    p += nl;
    *p++ = (uint8_t)(it->groups_len >> 8);
    *p++ = (uint8_t)it->groups_len;
    if (it->groups_len)
        memcpy(p, it->groups, it->groups_len);
    p += it->groups_len;
    if (it->request_len)
        memcpy(p, it->request, it->request_len);
    MDB_val key = {kl, k}, val = {len, rec};
    int rc = store_map_err_s(t->s, st_put(t->s, t->txn, t->s->roster, &key, &val, 0));
    free(rec);
    return rc;
}

static int decode(const MDB_val *k, size_t owner_len, const MDB_val *v, struct store_roster_item *out,
                  char *contact, size_t cap)
{
    const uint8_t *p = v->mv_data;
    size_t cl = k->mv_size - owner_len - 1;
    if (v->mv_size < 13 || p[0] != REC_V1 || cl >= cap)
        return HERALD_ESCHEMA;
    memcpy(contact, (const char *)k->mv_data + owner_len + 1, cl);
    contact[cl] = '\0';
    out->contact = contact;
    out->sub = p[1];
    out->ask = p[2] & F_ASK;
    out->pending_in = p[2] & F_PENDING_IN;
    out->approved = p[2] & F_APPROVED;
    out->removed = p[2] & F_REMOVED;
    out->ver = get_be64(p + 3);
    size_t nl = (size_t)p[11] << 8 | p[12];
    if (v->mv_size < 13 + nl + 2)
        return HERALD_ESCHEMA;
    size_t gl = (size_t)p[13 + nl] << 8 | p[14 + nl];
    if (v->mv_size < 15 + nl + gl)
        return HERALD_ESCHEMA;
    out->groups = (const char *)p + 15 + nl;
    out->groups_len = gl;
    out->request = (const char *)p + 15 + nl + gl;
    out->request_len = v->mv_size - 15 - nl - gl;
    /* The name is handed out NUL-terminated after the contact in the
     * caller's buffer. */
    if (cl + 1 + nl + 1 > cap)
        return HERALD_ESCHEMA;
    memcpy(contact + cl + 1, p + 13, nl);
    contact[cl + 1 + nl] = '\0';
    out->name = contact + cl + 1;
    return 0;
}

/* Buffer for a decoded contact + name. */
#define ITEM_BUF (KEY_MAX + 0x10000 + 2)

int store_roster_get(struct store_txn *t, const char *owner, const char *contact,
                     struct store_roster_item *out)
{
    static char buf[ITEM_BUF]; /* the loop is single-threaded; valid until the next call */
    uint8_t k[KEY_MAX + 1];
    size_t kl = key2(k, owner, contact, strlen(contact));
    if (kl == 0)
        return HERALD_ENOTFOUND;
    MDB_val key = {kl, k}, v;
    int rc = mdb_get(t->txn, t->s->roster, &key, &v);
    if (rc != 0)
        return store_map_err(rc);
    return decode(&key, strlen(owner), &v, out, buf, sizeof(buf));
}

int store_roster_each(struct store_txn *t, const char *owner,
                      int (*fn)(void *ud, const struct store_roster_item *it), void *ud)
{
    uint8_t pre[KEY_MAX + 1];
    size_t pl = key2(pre, owner, "", 0);
    if (pl == 0)
        return 0;
    char *buf = malloc(ITEM_BUF);
    MDB_cursor *c;
    if (buf == NULL)
        return HERALD_ENOMEM;
    int rc = mdb_cursor_open(t->txn, t->s->roster, &c);
    if (rc != 0) {
        free(buf);
        return store_map_err(rc);
    }
    MDB_val k = {pl, pre}, v;
    int ret = 0;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 && ret == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size <= pl || memcmp(k.mv_data, pre, pl) != 0)
            break;
        struct store_roster_item it;
        ret = decode(&k, pl - 1, &v, &it, buf, ITEM_BUF);
        if (ret == 0)
            ret = fn(ud, &it);
    }
    mdb_cursor_close(c);
    free(buf);
    if (ret)
        return ret > 0 ? 0 : ret;
    return (rc == 0 || rc == MDB_NOTFOUND) ? 0 : store_map_err(rc);
}

static size_t ver_key(uint8_t *k, const char *owner)
{
    size_t ol = strlen(owner);
    if (ol + 3 > KEY_MAX)
        return 0;
    memcpy(k, "rv", 2);
    k[2] = 0;
    memcpy(k + 3, owner, ol);
    return ol + 3;
}

int store_roster_ver(struct store_txn *t, const char *owner, uint64_t *ver)
{
    uint8_t k[KEY_MAX + 1];
    size_t kl = ver_key(k, owner);
    MDB_val key = {kl, k}, v;
    *ver = 0;
    if (kl == 0)
        return HERALD_ETOOBIG;
    int rc = mdb_get(t->txn, t->s->meta, &key, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return store_map_err(rc);
    if (v.mv_size == 8)
        *ver = get_be64(v.mv_data);
    return 0;
}

int store_roster_next_ver(struct store_txn *t, const char *owner, uint64_t *ver)
{
    uint8_t k[KEY_MAX + 1], buf[8];
    size_t kl = ver_key(k, owner);
    uint64_t cur;
    int rc = store_roster_ver(t, owner, &cur);
    if (rc != 0)
        return rc;
    put_be64(buf, cur + 1);
    MDB_val key = {kl, k}, v = {8, buf};
    rc = store_map_err_s(t->s, st_put(t->s, t->txn, t->s->meta, &key, &v, 0));
    if (rc == 0)
        *ver = cur + 1;
    return rc;
}

/* ---- offline messages ---- */

int store_offline_push(struct store_txn *t, const char *owner, const char *xml, size_t len,
                       unsigned max)
{
    uint8_t pre[KEY_MAX + 1];
    size_t pl = key2(pre, owner, "", 0);
    if (pl == 0 || pl + 8 > KEY_MAX)
        return HERALD_ETOOBIG;
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->s->offline, &c);
    if (rc != 0)
        return store_map_err(rc);
    unsigned count = 0;
    uint64_t last = 0;
    MDB_val k = {pl, pre}, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != pl + 8 || memcmp(k.mv_data, pre, pl) != 0)
            break;
        last = get_be64((const uint8_t *)k.mv_data + pl);
        count++;
    }
    mdb_cursor_close(c);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return store_map_err(rc);
    if (count >= max)
        return HERALD_ELIMIT;
    uint8_t key[KEY_MAX + 1];
    memcpy(key, pre, pl);
    put_be64(key + pl, last + 1);
    MDB_val kk = {pl + 8, key}, vv = {len, (void *)xml};
    return store_map_err_s(t->s, st_put(t->s, t->txn, t->s->offline, &kk, &vv, 0));
}

int store_offline_each(struct store_txn *t, const char *owner,
                       int (*fn)(void *ud, const char *xml, size_t len), void *ud)
{
    uint8_t pre[KEY_MAX + 1];
    size_t pl = key2(pre, owner, "", 0);
    if (pl == 0)
        return 0;
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->s->offline, &c);
    if (rc != 0)
        return store_map_err(rc);
    MDB_val k = {pl, pre}, v;
    int ret = 0;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 && ret == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != pl + 8 || memcmp(k.mv_data, pre, pl) != 0)
            break;
        ret = fn(ud, v.mv_data, v.mv_size);
    }
    mdb_cursor_close(c);
    if (ret)
        return ret > 0 ? 0 : ret;
    return (rc == 0 || rc == MDB_NOTFOUND) ? 0 : store_map_err(rc);
}

int store_offline_clear(struct store_txn *t, const char *owner)
{
    return store_offline_drop(t, owner, SIZE_MAX);
}

int store_offline_drop(struct store_txn *t, const char *owner, size_t n)
{
    uint8_t pre[KEY_MAX + 1];
    size_t pl = key2(pre, owner, "", 0);
    if (pl == 0)
        return 0;
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->s->offline, &c);
    if (rc != 0)
        return store_map_err(rc);
    for (size_t done = 0; done < n; done++) {
        MDB_val k = {pl, pre}, v;
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        if (rc != 0 || k.mv_size != pl + 8 || memcmp(k.mv_data, pre, pl) != 0)
            break;
        if ((rc = st_cursor_del(t->s, t->txn, t->s->offline, c)) != 0)
            break;
    }
    mdb_cursor_close(c);
    return (rc == 0 || rc == MDB_NOTFOUND) ? 0 : store_map_err_s(t->s, rc);
}

int store_del_prefix(struct store_txn *t, MDB_dbi dbi, const uint8_t *pre, size_t pl)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, dbi, &c);
    if (rc != 0)
        return store_map_err(rc);
    for (;;) {
        MDB_val k = {pl, (void *)pre}, v;
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        if (rc != 0 || k.mv_size < pl || memcmp(k.mv_data, pre, pl) != 0)
            break;
        if ((rc = st_cursor_del(t->s, t->txn, dbi, c)) != 0)
            break;
    }
    mdb_cursor_close(c);
    return (rc == 0 || rc == MDB_NOTFOUND) ? 0 : store_map_err_s(t->s, rc);
}

int store_im_forget_account(struct store_txn *t, const char *bare)
{
    uint8_t pre[KEY_MAX + 1];
    size_t pl = key2(pre, bare, "", 0);
    if (pl == 0)
        return 0; /* too long to appear in any roster or offline key */
    int rc = store_del_prefix(t, t->s->roster, pre, pl);
    if (rc == 0)
        rc = store_del_prefix(t, t->s->offline, pre, pl);
    char notif[KEY_MAX + 1];
    snprintf(notif, sizeof(notif), "%s" STORE_OFFLINE_NOTIFICATIONS_SUFFIX, bare);
    uint8_t npre[KEY_MAX + 1];
    size_t npl = key2(npre, notif, "", 0);
    if (rc == 0 && npl)
        rc = store_del_prefix(t, t->s->offline, npre, npl);
    uint8_t vk[KEY_MAX + 1];
    size_t vl = ver_key(vk, bare);
    if (rc == 0 && vl) {
        MDB_val k = {vl, vk};
        rc = st_del(t->s, t->txn, t->s->meta, &k, NULL);
        rc = (rc == MDB_NOTFOUND) ? 0 : store_map_err_s(t->s, rc);
    }
    if (rc != 0)
        return rc;
    /* Other rosters: items for this account lose every subscription state.
     * A full scan, collected first (the writes would move the cursor). */
    size_t bl = strlen(bare);
    char **owners = NULL;
    size_t n = 0, cap = 0;
    MDB_cursor *c;
    if ((rc = mdb_cursor_open(t->txn, t->s->roster, &c)) != 0)
        return store_map_err(rc);
    MDB_val k, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        const char *key = k.mv_data;
        if (k.mv_size <= bl + 1 || key[k.mv_size - bl - 1] != 0 ||
            memcmp(key + k.mv_size - bl, bare, bl) != 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **o = realloc(owners, cap * sizeof(*o));
            if (o == NULL) {
                rc = ENOMEM;
                break;
            }
            owners = o;
        }
        if ((owners[n] = strndup(key, k.mv_size - bl - 1)) == NULL) {
            rc = ENOMEM;
            break;
        }
        n++;
    }
    mdb_cursor_close(c);
    rc = (rc == MDB_NOTFOUND) ? 0 : store_map_err_s(t->s, rc);
    for (size_t i = 0; i < n; i++) {
        struct store_roster_item it;
        uint64_t ver;
        if (rc == 0 && (rc = store_roster_get(t, owners[i], bare, &it)) == 0 &&
            (rc = store_roster_next_ver(t, owners[i], &ver)) == 0) {
            it.sub = ROSTER_NONE;
            it.ask = it.pending_in = it.approved = false;
            it.ver = ver;
            rc = store_roster_put(t, owners[i], &it);
        }
        free(owners[i]);
    }
    free(owners);
    return rc;
}
