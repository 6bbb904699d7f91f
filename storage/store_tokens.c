/* store_tokens.c - REST bearer tokens in the "tokens" database.
 *
 * Key: the 8-byte public id. Value: version byte, scopes byte, created and
 * expires (big-endian u64), the 32-byte SHA-256 of the secret, then the JID
 * (no terminator). */
#include <lmdb.h>
#include <string.h>

#include "errors.h"
#include "store.h"
#include "store_impl.h"

#define TOKEN_RECORD_V1 1
#define TOKEN_FIXED (1 + 1 + 8 + 8 + STORE_TOKEN_HASH_LEN)

static int decode(const MDB_val *k, const MDB_val *v, struct store_token *out)
{
    const uint8_t *p = v->mv_data;
    size_t jid_len = v->mv_size - TOKEN_FIXED;
    if (k->mv_size != STORE_TOKEN_ID_LEN || v->mv_size <= TOKEN_FIXED || p[0] != TOKEN_RECORD_V1 ||
        jid_len >= sizeof(out->jid))
        return HERALD_EIO;
    memcpy(out->id, k->mv_data, STORE_TOKEN_ID_LEN);
    out->scopes = p[1];
    out->created = get_be64(p + 2);
    out->expires = get_be64(p + 10);
    memcpy(out->hash, p + 18, STORE_TOKEN_HASH_LEN);
    memcpy(out->jid, p + TOKEN_FIXED, jid_len);
    out->jid[jid_len] = '\0';
    return 0;
}

int store_token_put(struct store *s, const struct store_token *tok)
{
    size_t jid_len = strnlen(tok->jid, sizeof(tok->jid));
    if (jid_len == 0 || jid_len >= sizeof(tok->jid))
        return HERALD_EINVAL;
    uint8_t rec[TOKEN_FIXED + sizeof(tok->jid)];
    rec[0] = TOKEN_RECORD_V1;
    rec[1] = tok->scopes;
    put_be64(rec + 2, tok->created);
    put_be64(rec + 10, tok->expires);
    memcpy(rec + 18, tok->hash, STORE_TOKEN_HASH_LEN);
    memcpy(rec + TOKEN_FIXED, tok->jid, jid_len);
    MDB_val k = {STORE_TOKEN_ID_LEN, (void *)tok->id}, v = {TOKEN_FIXED + jid_len, rec};
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return store_map_err(rc);
    if ((rc = st_put(s, txn, s->tokens, &k, &v, MDB_NOOVERWRITE)) != 0) {
        mdb_txn_abort(txn);
        return store_map_err(rc);
    }
    return store_map_err(mdb_txn_commit(txn));
}

int store_token_get(struct store *s, const uint8_t id[STORE_TOKEN_ID_LEN], struct store_token *out)
{
    MDB_val k = {STORE_TOKEN_ID_LEN, (void *)id}, v;
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return store_map_err(rc);
    rc = mdb_get(txn, s->tokens, &k, &v);
    rc = rc == 0 ? decode(&k, &v, out) : store_map_err(rc);
    mdb_txn_abort(txn);
    return rc;
}

int store_token_del(struct store *s, const uint8_t id[STORE_TOKEN_ID_LEN])
{
    MDB_val k = {STORE_TOKEN_ID_LEN, (void *)id};
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return store_map_err(rc);
    if ((rc = st_del(s, txn, s->tokens, &k, NULL)) != 0) {
        mdb_txn_abort(txn);
        return store_map_err(rc);
    }
    return store_map_err(mdb_txn_commit(txn));
}

int store_token_each(struct store *s, int (*fn)(void *ud, const struct store_token *tok), void *ud)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return store_map_err(rc);
    if ((rc = mdb_cursor_open(txn, s->tokens, &cur)) != 0) {
        mdb_txn_abort(txn);
        return store_map_err(rc);
    }
    MDB_val k, v;
    int ret = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && ret == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        struct store_token tok;
        ret = decode(&k, &v, &tok);
        if (ret == 0)
            ret = fn(ud, &tok);
    }
    if (ret == 0 && rc != MDB_NOTFOUND)
        ret = store_map_err(rc);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return ret;
}
