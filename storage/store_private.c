/* store_private.c - per-account XML documents in LMDB: XEP-0049 private XML
 * storage and XEP-0054 vCards.
 *
 * One database, "acct_xml", keyed by account and kind:
 *   owner 0x00 'p' ns 0x00 name  -> v1 | serialized element (private XML)
 *   owner 0x00 'v'               -> v1 | serialized <vCard/>
 * Owner is the prepared bare JID; ns and name are the stored element's
 * namespace URI and local name (neither can contain a NUL, so the key is
 * unambiguous). A value is a version byte followed by the element exactly
 * as the broker serialized it, with its own xmlns declared, so it can be
 * written out verbatim under any parent. The private elements of one
 * account are adjacent, which makes the quota a short prefix walk. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "store.h"
#include "store_impl.h"

#define REC_V1 1
#define KEY_MAX 511
#define KIND_PRIVATE 'p'
#define KIND_VCARD 'v'

/* owner 0x00 kind [a 0x00 b]; 0 when it does not fit in a key. */
static size_t make_key(uint8_t *k, const char *owner, char kind, const char *a, const char *b)
{
    size_t ol = strlen(owner), al = a ? strlen(a) : 0, bl = b ? strlen(b) : 0;
    size_t len = ol + 2 + (a ? al + 1 + bl : 0);
    if (ol == 0 || len > KEY_MAX)
        return 0;
    memcpy(k, owner, ol);
    k[ol] = 0;
    k[ol + 1] = (uint8_t)kind;
    if (a) {
        memcpy(k + ol + 2, a, al);
        k[ol + 2 + al] = 0;
        memcpy(k + ol + 3 + al, b, bl);
    }
    return len;
}

static int get_rec(struct store_txn *t, const uint8_t *k, size_t kl, const char **xml, size_t *len)
{
    MDB_val key = {kl, (void *)k}, v;
    int rc = mdb_get(t->txn, t->s->acct_xml, &key, &v);
    if (rc != 0)
        return store_map_err(rc);
    const uint8_t *p = v.mv_data;
    if (v.mv_size < 1 || p[0] != REC_V1)
        return HERALD_ESCHEMA;
    *xml = (const char *)p + 1;
    *len = v.mv_size - 1;
    return 0;
}

/* Writes (len > 0) or deletes (len == 0) one record. */
static int put_rec(struct store_txn *t, const uint8_t *k, size_t kl, const char *xml, size_t len)
{
    MDB_val key = {kl, (void *)k};
    int rc;
    if (len == 0) {
        rc = st_del(t->s, t->txn, t->s->acct_xml, &key, NULL);
        return rc == MDB_NOTFOUND ? 0 : store_map_err_s(t->s, rc);
    }
    /* MDB_RESERVE: LMDB hands out the value's space and we fill it, so the
     * version byte needs no second copy of a large vCard. */
    MDB_val v = {len + 1, NULL};
    rc = st_put(t->s, t->txn, t->s->acct_xml, &key, &v, MDB_RESERVE);
    if (rc != 0)
        return store_map_err_s(t->s, rc);
    uint8_t *p = v.mv_data;
    p[0] = REC_V1;
    memcpy(p + 1, xml, len);
    return 0;
}

/* Count and bytes of owner's private elements, leaving out the one at
 * (skip, skip_len), which the caller is about to replace. */
static int private_usage(struct store_txn *t, const uint8_t *pre, size_t pl, const uint8_t *skip,
                         size_t skip_len, unsigned *count, size_t *bytes)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->s->acct_xml, &c);
    if (rc != 0)
        return store_map_err(rc);
    *count = 0;
    *bytes = 0;
    MDB_val k = {pl, (void *)pre}, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size <= pl || memcmp(k.mv_data, pre, pl) != 0)
            break;
        if (k.mv_size == skip_len && memcmp(k.mv_data, skip, skip_len) == 0)
            continue;
        (*count)++;
        *bytes += v.mv_size - 1;
    }
    mdb_cursor_close(c);
    return (rc == 0 || rc == MDB_NOTFOUND) ? 0 : store_map_err(rc);
}

int store_private_put(struct store_txn *t, const char *owner, const char *ns, const char *name,
                      const char *xml, size_t len, unsigned max_count, size_t max_bytes)
{
    uint8_t k[KEY_MAX + 1];
    size_t kl = make_key(k, owner, KIND_PRIVATE, ns, name);
    if (kl == 0)
        return HERALD_ETOOBIG;
    if (len > 0) {
        unsigned count = 0;
        size_t bytes = 0;
        size_t pl = strlen(owner) + 2; /* owner 0x00 'p' */
        int rc = private_usage(t, k, pl, k, kl, &count, &bytes);
        if (rc != 0)
            return rc;
        if (count + 1 > max_count || bytes + len > max_bytes)
            return HERALD_EQUOTA;
    }
    return put_rec(t, k, kl, xml, len);
}

int store_private_get(struct store_txn *t, const char *owner, const char *ns, const char *name,
                      const char **xml, size_t *len)
{
    uint8_t k[KEY_MAX + 1];
    size_t kl = make_key(k, owner, KIND_PRIVATE, ns, name);
    if (kl == 0)
        return HERALD_ENOTFOUND; /* too long to have been stored */
    return get_rec(t, k, kl, xml, len);
}

int store_vcard_put(struct store_txn *t, const char *owner, const char *xml, size_t len)
{
    uint8_t k[KEY_MAX + 1];
    size_t kl = make_key(k, owner, KIND_VCARD, NULL, NULL);
    if (kl == 0)
        return HERALD_ETOOBIG;
    return put_rec(t, k, kl, xml, len);
}

int store_vcard_get(struct store_txn *t, const char *owner, const char **xml, size_t *len)
{
    uint8_t k[KEY_MAX + 1];
    size_t kl = make_key(k, owner, KIND_VCARD, NULL, NULL);
    if (kl == 0)
        return HERALD_ENOTFOUND;
    return get_rec(t, k, kl, xml, len);
}

int store_private_forget_account(struct store_txn *t, const char *bare)
{
    uint8_t pre[KEY_MAX + 1];
    size_t ol = strlen(bare);
    if (ol == 0 || ol + 1 > KEY_MAX)
        return 0; /* too long to appear in any key */
    memcpy(pre, bare, ol);
    pre[ol] = 0;
    size_t pl = ol + 1;
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->s->acct_xml, &c);
    if (rc != 0)
        return store_map_err(rc);
    for (;;) {
        MDB_val k = {pl, pre}, v;
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        if (rc != 0 || k.mv_size <= pl || memcmp(k.mv_data, pre, pl) != 0)
            break;
        if ((rc = st_cursor_del(t->s, t->txn, t->s->acct_xml, c)) != 0)
            break;
    }
    mdb_cursor_close(c);
    return (rc == 0 || rc == MDB_NOTFOUND) ? 0 : store_map_err_s(t->s, rc);
}
