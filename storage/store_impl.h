/* store_impl.h - what the LMDB store's source files share; not for callers. */
#ifndef HERALD_STORE_IMPL_H
#define HERALD_STORE_IMPL_H
#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>

/* Test-only fault injection (HERALD_TEST_FAULTS, docs/testing.md): the
 * n-th write (put or delete) on database dbi fails with err. */
struct store_fault {
    MDB_dbi dbi;
    unsigned long n;
    int err;                /* MDB_MAP_FULL or EIO */
    bool direct;            /* does not make writes risky (tests the unsavepointed path) */
};
#define STORE_MAX_FAULTS 8
#define STORE_MAX_DBS 24

struct store {
    MDB_env *env;
    MDB_dbi meta, users, nodes, items, item_ids, subs, affs, roster, offline, tokens;
    MDB_dbi acct_xml; /* private XML and vCards (store_private.c) */
    MDB_dbi blocking;       /* XEP-0191 block lists (store_blocking.c) */
    MDB_dbi mam, mam_acct;  /* message archives (store_mam.c) */
    MDB_dbi leases;         /* item leases by expiry (store_pubsub.c) */
    MDB_dbi webhooks, wh_outbox; /* signed webhooks (store_webhooks.c) */
    size_t map_size;        /* current map size, bytes */
    size_t max_map_size;    /* ceiling for automatic growth */
    bool hit_full;          /* a write found the map full since the last growth check */
    struct store_fault faults[STORE_MAX_FAULTS];
    unsigned nfaults;
    unsigned long writes[STORE_MAX_DBS]; /* by dbi, counted only with faults set */
    MDB_txn *poisoned;      /* the transaction an injected fault hit (LMDB marks it failed) */
    bool fault_fired;       /* the error being mapped now was injected */
    bool faults_risky;      /* a fault without :direct is set: every write is risky */
    unsigned long write_attempts; /* puts and deletes since the store opened */
    unsigned long turn_pages;      /* pages the open top-level write txn may have dirtied (estimate) */
    unsigned long turn_free_pages; /* free pages of the map when it began */
    size_t reserve;                /* bytes kept for removals at the ceiling (store_reserve_reached) */
    unsigned long reserve_pages;   /* the same in pages of the map */
    bool at_ceiling;               /* the map cannot grow any more */
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
/* store_lmdb.c: the generation of account bare_jid, read in txn
 * (HERALD_ENOTFOUND if there is no such account). */
int store_user_generation_txn(struct store *s, MDB_txn *txn, const char *bare_jid, uint64_t *gen);
/* Deletes bare's private XML and vCard (store_private.c), in t. */
int store_private_forget_account(struct store_txn *t, const char *bare);
/* Deletes bare's PEP nodes with their items, subscriptions and
 * affiliations (store_pep.c), in t. */
int store_pep_forget_account(struct store_txn *t, const char *bare);
/* Deletes every REST token of bare (store_tokens.c), in t. */
int store_tokens_forget_account(struct store_txn *t, const char *bare);

/* store_im.c: deletes every key of dbi that starts with pre (pl bytes). */
int store_del_prefix(struct store_txn *t, MDB_dbi dbi, const uint8_t *pre, size_t pl);
/* store_mam.c: deletes an account's archive, count and preferences. */
int store_mam_forget_account(struct store_txn *t, const char *bare);

/* Maps an LMDB or errno code to a HERALD_E* code (and notes a full map). */
int store_map_err(int rc);
int store_map_err_s(struct store *s, int rc);

/* A top-level write transaction began: estimate the map's free pages. */
void store_turn_begin(struct store *s);

/* The injected error for the next write on dbi in txn, or 0. */
int store_fault_check(struct store *s, MDB_txn *txn, MDB_dbi dbi);

/* Every write goes through these, so fault injection sees it. They
 * return LMDB codes, like the calls they wrap. */
/* A put may dirty a path of pages from the root to a leaf (about 4 in a
 * Herald-sized tree) plus the overflow pages of a large value. */
static inline void st_count(struct store *s, size_t value_bytes)
{
    s->write_attempts++;
    s->turn_pages += 4 + value_bytes / 4096;
}

static inline int st_put(struct store *s, MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v,
                         unsigned flags)
{
    st_count(s, v->mv_size);
    int rc = s->nfaults ? store_fault_check(s, txn, dbi) : 0;
    return rc ? rc : mdb_put(txn, dbi, k, v, flags);
}

static inline int st_del(struct store *s, MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v)
{
    st_count(s, 0);
    int rc = s->nfaults ? store_fault_check(s, txn, dbi) : 0;
    return rc ? rc : mdb_del(txn, dbi, k, v);
}

static inline int st_cursor_del(struct store *s, MDB_txn *txn, MDB_dbi dbi, MDB_cursor *c)
{
    st_count(s, 0);
    int rc = s->nfaults ? store_fault_check(s, txn, dbi) : 0;
    return rc ? rc : mdb_cursor_del(c, 0);
}

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
