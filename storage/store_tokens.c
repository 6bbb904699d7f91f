/* store_tokens.c - REST bearer tokens in the "tokens" database.
 *
 * Key: the 8-byte public id. Value v2: version byte, scopes byte, created and
 * expires (big-endian u64), the 32-byte SHA-256 of the secret, the account
 * generation (u64), then the JID (no terminator). v1 records lack the
 * generation and read as generation 0, like v1 user records. */
#include <lmdb.h>
#include <string.h>

#include "errors.h"
#include "store.h"
#include "store_impl.h"

#define TOKEN_RECORD_V1 1
#define TOKEN_RECORD_V2 2
#define TOKEN_FIXED_V1 (1 + 1 + 8 + 8 + STORE_TOKEN_HASH_LEN)
#define TOKEN_FIXED (TOKEN_FIXED_V1 + 8)

static int decode(const MDB_val *k, const MDB_val *v, struct store_token *out)
{
    const uint8_t *p = v->mv_data;
    if (k->mv_size != STORE_TOKEN_ID_LEN || v->mv_size == 0)
        return HERALD_EIO;
    size_t fixed = p[0] == TOKEN_RECORD_V2 ? TOKEN_FIXED : TOKEN_FIXED_V1;
    if ((p[0] != TOKEN_RECORD_V1 && p[0] != TOKEN_RECORD_V2) || v->mv_size <= fixed ||
        v->mv_size - fixed >= sizeof(out->jid))
        return HERALD_EIO;
    size_t jid_len = v->mv_size - fixed;
    memcpy(out->id, k->mv_data, STORE_TOKEN_ID_LEN);
    out->scopes = p[1];
    out->created = get_be64(p + 2);
    out->expires = get_be64(p + 10);
    memcpy(out->hash, p + 18, STORE_TOKEN_HASH_LEN);
    out->generation = p[0] == TOKEN_RECORD_V2 ? get_be64(p + TOKEN_FIXED_V1) : 0;
    memcpy(out->jid, p + fixed, jid_len);
    out->jid[jid_len] = '\0';
    return 0;
}

int store_token_put_txn(struct store_txn *t, const struct store_token *tok)
{
    size_t jid_len = strnlen(tok->jid, sizeof(tok->jid));
    if (jid_len == 0 || jid_len >= sizeof(tok->jid))
        return HERALD_EINVAL;
    uint8_t rec[TOKEN_FIXED + sizeof(tok->jid)];
    rec[0] = TOKEN_RECORD_V2;
    rec[1] = tok->scopes;
    put_be64(rec + 2, tok->created);
    put_be64(rec + 10, tok->expires);
    memcpy(rec + 18, tok->hash, STORE_TOKEN_HASH_LEN);
    put_be64(rec + TOKEN_FIXED_V1, tok->generation);
    memcpy(rec + TOKEN_FIXED, tok->jid, jid_len);
    MDB_val k = {STORE_TOKEN_ID_LEN, (void *)tok->id}, v = {TOKEN_FIXED + jid_len, rec};
    return store_map_err(st_put(t->s, t->txn, t->s->tokens, &k, &v, MDB_NOOVERWRITE));
}

int store_token_put(struct store *s, const struct store_token *tok)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return store_map_err(rc);
    struct store_txn t = {s, txn, true};
    if ((rc = store_token_put_txn(&t, tok)) != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    return store_map_err(mdb_txn_commit(txn));
}

int store_token_get(struct store *s, const uint8_t id[STORE_TOKEN_ID_LEN], struct store_token *out)
{
    return store_token_get_live(s, id, out, NULL);
}

int store_token_get_live(struct store *s, const uint8_t id[STORE_TOKEN_ID_LEN],
                         struct store_token *out, bool *live)
{
    MDB_val k = {STORE_TOKEN_ID_LEN, (void *)id}, v;
    MDB_txn *txn;
    uint64_t gen = 0;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return store_map_err(rc);
    rc = mdb_get(txn, s->tokens, &k, &v);
    rc = rc == 0 ? decode(&k, &v, out) : store_map_err(rc);
    /* The account in the same snapshot: one read transaction per check. */
    if (rc == 0 && live != NULL) {
        rc = store_user_generation_txn(s, txn, out->jid, &gen);
        *live = rc == 0 && gen == out->generation;
        if (rc == HERALD_ENOTFOUND)
            rc = 0;
    }
    mdb_txn_abort(txn);
    return rc;
}

int store_token_del_txn(struct store_txn *t, const uint8_t id[STORE_TOKEN_ID_LEN])
{
    MDB_val k = {STORE_TOKEN_ID_LEN, (void *)id};
    return store_map_err(st_del(t->s, t->txn, t->s->tokens, &k, NULL));
}

int store_token_del(struct store *s, const uint8_t id[STORE_TOKEN_ID_LEN])
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return store_map_err(rc);
    struct store_txn t = {s, txn, true};
    if ((rc = store_token_del_txn(&t, id)) != 0) {
        mdb_txn_abort(txn);
        return rc;
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

int store_tokens_forget_account(struct store_txn *t, const char *bare)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    size_t len = strlen(bare);
    int rc = mdb_cursor_open(t->txn, t->s->tokens, &cur);
    if (rc != 0)
        goto done;
    /* Tokens are keyed by id, so this walks them all: account deletion and
     * password changes are rare operator actions, not a hot path. */
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        struct store_token tok;
        if (decode(&k, &v, &tok) != 0 || strlen(tok.jid) != len || memcmp(tok.jid, bare, len) != 0)
            continue;
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            goto done;
    }
    if (rc == MDB_NOTFOUND)
        rc = 0;
done:
    if (cur)
        mdb_cursor_close(cur);
    return store_map_err(rc);
}
