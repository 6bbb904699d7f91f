/* store.h - Herald's storage interface (implemented on LMDB in store_lmdb.c).
 *
 * The rest of Herald calls these domain-shaped functions and never LMDB
 * directly, so a second backend can sit behind this header later. Every call
 * returns 0 or a negative HERALD_E* code (errors.h). The environment lives in
 * the data directory; several processes may open it at once (the server and
 * `herald user add`), and a committed write is visible to the next read in any
 * of them.
 *
 * Layout (docs/storage-layout.md): named databases "meta" (schema version,
 * node id counter), "users" (bare JID -> credentials), "tokens" (REST bearer
 * tokens), for pubsub "nodes", "items", "item_ids", "subs", "affs", and for
 * IM "roster", "offline", "blocking", "acct_xml" (private XML, vCards),
 * for message archives "mam", "mam_acct", for webhooks "webhooks" and
 * "wh_outbox". */
#ifndef HERALD_STORE_H
#define HERALD_STORE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store_txn;

/* 2: item records v2 (leases) and node records v2 (quotas) may be written;
 * a store of version 1 is read as it is and marked 2 when opened for
 * writing, so a binary that knows only 1 refuses it instead of failing on
 * a record it cannot read. */
#define STORE_SCHEMA_VERSION 2u

struct store;

struct store_opts {
    size_t map_size;     /* bytes; 0 = default (1 GiB) */
    size_t max_map_size; /* ceiling for automatic growth; <= map_size: no growth */
    size_t reserve;      /* bytes kept for removals at the ceiling (at most 1/8 of it) */
    bool read_only;
};

/* Opens (creating when absent) the environment in dir, which is created with
 * mode 0700 if missing. Checks the schema version record: a newer version is
 * HERALD_ESCHEMA. *out is owned by the caller; close with store_close. */
int store_open(struct store **out, const char *dir, const struct store_opts *opts);
void store_close(struct store *s);

/* Backup and restore (herald backup / restore, docs/cli.md). */
/* Writes a compacted copy of the environment to fd (mdb_env_copyfd2 with
 * MDB_CP_COMPACT: free pages omitted). The copy is made from one LMDB read
 * snapshot, so it is consistent while a server (another process) writes;
 * writers are not blocked. fd may be a pipe; it is not closed. 0 or
 * HERALD_EIO. */
int store_backup_fd(struct store *s, int fd);
/* Checks that file is an LMDB data file (as store_backup_fd writes it)
 * holding Herald's schema record: 0 with *version set, HERALD_ESCHEMA when
 * it is LMDB but not a Herald store or a version this build does not know
 * (*version then 0 or the version found), HERALD_EIO when it cannot be
 * opened as LMDB. Opens read-only without a lock file; changes nothing. */
int store_backup_check(const char *file, uint32_t *version);
/* The data directory's lock (dir/herald.lock, flock(2)): a server holds it
 * shared for its lifetime; restore takes it exclusive while it replaces the
 * store, so neither runs while the other does. Non-blocking: the open file
 * descriptor (>= 0; the lock lasts until it is closed or the process
 * ends, even by kill -9), HERALD_ECONFLICT when another process holds a
 * conflicting lock, HERALD_EIO otherwise. dir must exist. */
int store_lock_dir(const char *dir, bool exclusive);

/* SCRAM credentials for one hash (RFC 5802 §3): never the password itself. */
#define STORE_SALT_LEN 16
#define STORE_KEY_MAX 32 /* SHA-256 */
struct store_scram {
    uint32_t iterations;
    uint8_t salt[STORE_SALT_LEN];
    uint8_t stored_key[STORE_KEY_MAX];
    uint8_t server_key[STORE_KEY_MAX];
};

struct store_user {
    struct store_scram sha1;    /* keys are 20 bytes */
    struct store_scram sha256;  /* keys are 32 bytes */
    uint64_t created;           /* unix seconds */
    /* Random, made with the account (scram_make_user) and copied into each
     * of its tokens; a token whose generation differs is refused, so one
     * made for a deleted account never works for a new account of that
     * name. 0 for accounts stored before generations existed. */
    uint64_t generation;
};

/* Users are keyed by prepared bare JID ("alice@localhost").
 * store_user_put: create=true fails with HERALD_EEXIST if present;
 * create=false fails with HERALD_ENOTFOUND if absent, and when it changes
 * the generation, deletes the account's tokens in the same transaction.
 * store_user_del deletes the account's tokens with it. */
int store_user_put(struct store *s, const char *bare_jid, const struct store_user *u,
                   bool create);
int store_user_get(struct store *s, const char *bare_jid, struct store_user *out);
int store_user_exists(struct store *s, const char *bare_jid);  /* 1, 0 or error */
int store_user_del(struct store *s, const char *bare_jid);
/* The same inside a caller's write transaction (the cluster's apply). */
int store_user_put_txn(struct store_txn *t, const char *bare_jid, const struct store_user *u,
                       bool create);
int store_user_del_txn(struct store_txn *t, const char *bare_jid);
/* Cluster mode: the last log sequence applied (0: none), in the same
 * transaction as the changes it covers (docs/cluster.md). */
int store_cluster_applied(struct store_txn *t, uint64_t *seq);
int store_cluster_set_applied(struct store_txn *t, uint64_t seq);
int store_cluster_applied_now(struct store *s, uint64_t *seq);
/* Calls fn for each user in key order; a nonzero return from fn stops the walk
 * and is returned. */
int store_user_each(struct store *s, int (*fn)(void *ud, const char *bare_jid), void *ud);

/* REST bearer tokens: a public id and SHA-256 of the secret, never the
 * secret itself. Each call is its own transaction (like users), so the CLI
 * and the server see each other's changes at once. */
#define STORE_TOKEN_ID_LEN 8
#define STORE_TOKEN_HASH_LEN 32
struct store_token {
    uint8_t id[STORE_TOKEN_ID_LEN];
    uint8_t hash[STORE_TOKEN_HASH_LEN];
    uint8_t scopes;        /* bit set, meaning defined by the REST layer */
    uint64_t created;      /* unix seconds */
    uint64_t expires;      /* unix seconds; 0 = never */
    char jid[3072];        /* the bare JID the token acts as */
    uint64_t generation;   /* the account's generation when it was made */
};
/* Fails with HERALD_EEXIST if the id is taken. */
int store_token_put(struct store *s, const struct store_token *tok);
int store_token_get(struct store *s, const uint8_t id[STORE_TOKEN_ID_LEN], struct store_token *out);
/* store_token_get, and *live = whether the token's account exists with the
 * token's generation (read in the same transaction). */
int store_token_get_live(struct store *s, const uint8_t id[STORE_TOKEN_ID_LEN],
                         struct store_token *out, bool *live);
int store_token_del(struct store *s, const uint8_t id[STORE_TOKEN_ID_LEN]);
int store_token_put_txn(struct store_txn *t, const struct store_token *tok);
int store_token_del_txn(struct store_txn *t, const uint8_t id[STORE_TOKEN_ID_LEN]);
int store_token_each(struct store *s, int (*fn)(void *ud, const struct store_token *tok), void *ud);

/* The server secret called name (at most 32 bytes long), made at random
 * and stored in "meta" the first time it is asked for, so it is the same
 * after a restart (sasl.c derives unknown users' fake SCRAM salts from it). */
#define STORE_SECRET_LEN 32
int store_secret(struct store *s, const char *name, uint8_t out[STORE_SECRET_LEN]);

/* Path of the environment's data file, for messages. */
const char *store_path(const struct store *s);

/* Could the writes of the next operation in the open write transaction
 * fail? LMDB writes fail for want of map space (MDB_MAP_FULL); other
 * failures (out of memory, an I/O error while spilling pages) are rare.
 * Risky when the transaction's estimated writes so far, doubled, plus a
 * margin for one large operation, approach the map's free space at its
 * start, or when test faults are set (HERALD_TEST_FAULTS without :direct).
 * The batch runs risky operations in nested transactions (batch.h). */
bool store_write_risky(const struct store *s);
/* Is the map at its ceiling with no more free pages than the reserve
 * (store_opts.reserve), counting what the open write transaction may have
 * used? Then only operations that remove data may write (batch.h): LMDB
 * copies every page a delete touches, so deleting needs free pages too,
 * and the reserve keeps them for it. Free pages include LMDB's free list
 * (pages of deleted data) once the map's unused tail runs short, so after
 * a removal has committed, adding data works again. */
bool store_reserve_reached(const struct store *s);
/* Write attempts (puts and deletes) so far: equal before and after an
 * operation means it wrote nothing. */
unsigned long store_write_count(const struct store *s);

/* Grows the map (doubling, up to max_map_size) when it is 80% used or a
 * write found it full since the last call. Only while no transaction of
 * this process is open (LMDB's rule for mdb_env_set_mapsize): the batch
 * calls it after each commit. Returns 1 when grown, 0 when not needed,
 * HERALD_EFULL when full at the ceiling (logged), or another error. */
int store_grow(struct store *s);

/* ---- transactions ----
 * Pubsub calls run inside a transaction: a write batch (one LMDB write
 * transaction shared by every change made in one loop turn: group commit) or
 * a read snapshot. Pointers returned by reads are valid until the
 * transaction ends. store_txn_commit of a top-level write transaction
 * syncs to disk before returning 0; on any error it is rolled back. */
struct store_txn;
int store_txn_begin(struct store *s, bool write, struct store_txn **out);
/* A nested write transaction: its changes join the parent's on commit, or
 * vanish on abort while the parent goes on (one operation that can fail
 * alone inside a group commit). The parent must not be used until the
 * child ends. */
int store_txn_begin_nested(struct store_txn *parent, struct store_txn **out);
int store_txn_commit(struct store_txn *t); /* frees t */
void store_txn_abort(struct store_txn *t); /* frees t */

/* ---- pubsub nodes ----
 * A node record: its never-reused numeric id (keys of everything below are
 * prefixed with it, so a deleted node's data can never reappear under a new
 * node of the same name), counters, and the configuration as an opaque blob
 * owned by the pubsub layer. */
struct store_node {
    uint64_t id;
    uint64_t created;     /* unix ms */
    uint64_t next_seq;    /* publish sequence of the next item */
    uint32_t item_count;
    const void *config;
    size_t config_len;
    /* Since record v2 (quotas, docs/pubsub.md "Quotas"): */
    uint64_t payload_bytes; /* the stored items' payload bytes: kept by every item call
                             * below; for a v1 record, counted from its items when read */
    uint64_t rate_at;       /* the publish-rate bucket, opaque here: the pubsub layer's, */
    uint64_t rate_debt;     /* written with the node so that a restart keeps it */
};

/* A fresh node id (a counter in "meta"; never reused). */
int store_node_new_id(struct store_txn *t, uint64_t *id);
int store_node_put(struct store_txn *t, const char *name, const struct store_node *n);
int store_node_get(struct store_txn *t, const char *name, struct store_node *out);
/* Deletes the node with all its items, subscriptions and affiliations. */
int store_node_del(struct store_txn *t, const char *name, uint64_t id);
int store_node_each(struct store_txn *t,
                    int (*fn)(void *ud, const char *name, const struct store_node *n), void *ud);

/* ---- items ---- */
struct store_item {
    uint64_t seq;          /* order of publication within the node */
    uint64_t published;    /* unix ms */
    const char *id;
    size_t id_len;
    const char *publisher; /* bare or full JID */
    size_t publisher_len;
    const char *payload;   /* serialized XML of the item's children, may be empty */
    size_t payload_len;
    /* A lease (docs/leases.md): STORE_LEASE_NONE, _TIMED (lease_until is
     * the expiry in unix ms, lease_secs its length) or _SESSION (lease_until
     * names the publisher's session). */
    uint8_t lease_kind;
    uint32_t lease_secs;
    uint64_t lease_until;
};
enum { STORE_LEASE_NONE, STORE_LEASE_TIMED, STORE_LEASE_SESSION };

/* Stores an item in node n (n->next_seq and n->item_count are updated and
 * the node record rewritten). An item with the same id is replaced (it
 * moves to the newest position; *replaced, may be NULL, says so). Then the
 * oldest items beyond max_items are deleted, in the same transaction;
 * *evicted (may be NULL) gets how many. */
int store_item_put(struct store_txn *t, const char *node_name, struct store_node *n,
                   struct store_item *it, uint32_t max_items, unsigned *evicted, bool *replaced);
/* Deletes the oldest items until at most keep remain (node record updated). */
int store_items_trim(struct store_txn *t, const char *node_name, struct store_node *n,
                     uint32_t keep, unsigned *evicted);
/* Deletes items published before cutoff_ms (oldest first; node record
 * updated). *evicted gets how many. */
int store_items_expire(struct store_txn *t, const char *node_name, struct store_node *n,
                       uint64_t cutoff_ms, unsigned *evicted);
int store_item_get(struct store_txn *t, uint64_t node_id, const char *id, size_t id_len,
                   struct store_item *out);
/* Deletes one item (updating the node's count); HERALD_ENOTFOUND if absent. */
int store_item_del(struct store_txn *t, const char *node_name, struct store_node *n,
                   const char *id, size_t id_len);
/* Deletes every item of the node. */
int store_items_purge(struct store_txn *t, const char *node_name, struct store_node *n);
/* The item of a node with sequence seq; HERALD_ENOTFOUND if gone. */
int store_item_get_seq(struct store_txn *t, uint64_t node_id, uint64_t seq,
                       struct store_item *out);

/* ---- leases (docs/leases.md) ----
 * An item published with a lease (store_item_put with lease_kind set) gets
 * an entry in "leases", ordered by expiry: (kind, until, node id, seq).
 * Deleting, replacing or trimming the item deletes its entry, and a
 * renewal replaces it. Purges and node deletions (range deletes) leave
 * entries behind: whoever walks them checks the item still exists with
 * that seq and that lease (store_lease_live), and drops the stale entry,
 * so one lives at most as long as its lease. */
struct store_lease {
    uint8_t kind;          /* STORE_LEASE_TIMED or _SESSION */
    uint64_t until;        /* expiry (unix ms) or session */
    uint64_t node_id;
    uint64_t seq;
};
/* Gives the item with seq a new timed lease (its record rewritten, a new
 * entry added); HERALD_ENOTFOUND if the item is gone. */
int store_lease_renew(struct store_txn *t, uint64_t node_id, uint64_t seq, uint32_t secs,
                      uint64_t until);
/* Up to max entries of kind in order, timed ones only up to until_max
 * (sessions: only session == until_max, or every session when until_max is
 * UINT64_MAX); fn returning nonzero stops the walk. */
int store_leases_each(struct store_txn *t, uint8_t kind, uint64_t until_max, unsigned max,
                      int (*fn)(void *ud, const struct store_lease *l), void *ud);
int store_lease_del(struct store_txn *t, const struct store_lease *l);
/* 1 when the entry's item still exists and holds that lease (out, may be
 * NULL, gets it), 0 when the entry is stale, or an error. */
int store_lease_live(struct store_txn *t, const struct store_lease *l, struct store_item *out);

/* Calls fn for up to max items, newest first, starting below before_seq
 * (UINT64_MAX: from the newest). fn returning nonzero stops the walk. */
int store_items_newest(struct store_txn *t, uint64_t node_id, uint64_t before_seq, unsigned max,
                       int (*fn)(void *ud, const struct store_item *it), void *ud);

/* Calls fn for up to max items, oldest first, starting above after_seq. */
int store_items_oldest(struct store_txn *t, uint64_t node_id, uint64_t after_seq, unsigned max,
                       int (*fn)(void *ud, const struct store_item *it), void *ud);

/* ---- subscriptions and affiliations ----
 * (node id, JID, subid) is the key: unique by construction. */
struct store_sub {
    const char *jid;
    const char *subid;
    uint8_t state;         /* pubsub layer's enum */
    const void *options;   /* opaque blob */
    size_t options_len;
};
int store_sub_put(struct store_txn *t, uint64_t node_id, const struct store_sub *sub);
int store_sub_del(struct store_txn *t, uint64_t node_id, const char *jid, const char *subid);
int store_subs_each(struct store_txn *t, uint64_t node_id,
                    int (*fn)(void *ud, const struct store_sub *sub), void *ud);

/* aff 0 deletes the record. */
int store_aff_put(struct store_txn *t, uint64_t node_id, const char *jid, uint8_t aff);
int store_affs_each(struct store_txn *t, uint64_t node_id,
                    int (*fn)(void *ud, const char *jid, uint8_t aff), void *ud);

/* ---- rosters (RFC 6121 §2) ----
 * Keyed by (owner bare JID, contact bare JID). A removed item stays as a
 * tombstone carrying the roster version of its removal, so that roster
 * versioning can tell a reconnecting client what went away. */
enum { ROSTER_NONE = 0, ROSTER_TO = 1, ROSTER_FROM = 2, ROSTER_BOTH = 3 };

struct store_roster_item {
    const char *contact;
    uint8_t sub;          /* ROSTER_* */
    bool ask;             /* outbound subscription pending */
    bool pending_in;      /* inbound subscription request waiting for an answer */
    bool approved;        /* pre-approved (RFC 6121 §3.4) */
    bool removed;         /* tombstone */
    uint64_t ver;         /* roster version of the last change */
    const char *name;     /* may be "" */
    const char *groups;   /* groups_len bytes: names separated by NUL */
    size_t groups_len;
    const char *request;  /* the stored inbound subscribe stanza, or empty */
    size_t request_len;
};

int store_roster_put(struct store_txn *t, const char *owner, const struct store_roster_item *it);
int store_roster_get(struct store_txn *t, const char *owner, const char *contact,
                     struct store_roster_item *out);
int store_roster_each(struct store_txn *t, const char *owner,
                      int (*fn)(void *ud, const struct store_roster_item *it), void *ud);
/* The owner's next roster version (a per-user counter, starting at 1). */
int store_roster_next_ver(struct store_txn *t, const char *owner, uint64_t *ver);
int store_roster_ver(struct store_txn *t, const char *owner, uint64_t *ver);

/* ---- offline messages (XEP-0160) ---- */
/* Appends a serialized message; HERALD_ELIMIT when the owner already has max. */
/* An account's pubsub notifications kept offline are a second list, named
 * by the bare JID and this suffix (no JID can end so: a resource cannot
 * hold U+0001); deleting the account deletes both lists. */
#define STORE_OFFLINE_NOTIFICATIONS_SUFFIX "/\001pubsub"
int store_offline_push(struct store_txn *t, const char *owner, const char *xml, size_t len,
                       unsigned max);
/* Calls fn for each stored message in arrival order. */
int store_offline_each(struct store_txn *t, const char *owner,
                       int (*fn)(void *ud, const char *xml, size_t len), void *ud);
int store_offline_clear(struct store_txn *t, const char *owner);
/* Deletes the owner's n oldest stored messages. */
int store_offline_drop(struct store_txn *t, const char *owner, size_t n);

/* ---- private XML (XEP-0049) and vCards (XEP-0054) ----
 * Per-account XML documents, each one element serialized with its own
 * xmlns (written back verbatim). Pointers from the gets are valid until
 * the transaction ends; absent documents are HERALD_ENOTFOUND. A put of
 * length 0 deletes. */
/* One private element per (ns, name) of owner. HERALD_EQUOTA when owner's
 * private elements would then number more than max_count or hold more
 * than max_bytes (the element being replaced no longer counts);
 * HERALD_ETOOBIG when owner, ns and name do not fit in a key. */
int store_private_put(struct store_txn *t, const char *owner, const char *ns, const char *name,
                      const char *xml, size_t len, unsigned max_count, size_t max_bytes);
int store_private_get(struct store_txn *t, const char *owner, const char *ns, const char *name,
                      const char **xml, size_t *len);
int store_vcard_put(struct store_txn *t, const char *owner, const char *xml, size_t len);
int store_vcard_get(struct store_txn *t, const char *owner, const char **xml, size_t *len);
/* ---- block lists (XEP-0191), store_blocking.c ----
 * Keyed by (owner bare JID, blocked JID in prepared form: a domain, bare or
 * full JID). The count of an owner's entries is bounded by the caller. */
/* Adds jid to owner's list (already there: no change). */
int store_block_put(struct store_txn *t, const char *owner, const char *jid);
/* Removes jid from owner's list (absent: no change). */
int store_block_del(struct store_txn *t, const char *owner, const char *jid);
/* Empties owner's list (also when the account is deleted). */
int store_block_clear(struct store_txn *t, const char *owner);
/* 1 when owner's list holds exactly jid, 0 when not, or an error. */
int store_block_has(struct store_txn *t, const char *owner, const char *jid);
/* Calls fn for each JID on owner's list in key order; jid is valid during
 * the call only. A nonzero return from fn stops the walk (negative: returned). */
int store_block_each(struct store_txn *t, const char *owner,
                     int (*fn)(void *ud, const char *jid), void *ud);
/* Calls fn once per owner with a non-empty list, with its entry count. */
int store_block_owners(struct store_txn *t,
                       int (*fn)(void *ud, const char *owner, unsigned count), void *ud);
/* ---- message archives (XEP-0313; storage/store_mam.c) ----
 * Per account: archived messages keyed by (owner, archive id), a message
 * count and the archiving preferences. Archive ids come from one
 * server-wide counter: microseconds since the epoch, bumped past the last
 * id handed out, so they are unique, ordered and never reused (even after
 * deletion or a restart), and an id is also the message's archive time. */
enum { MAM_PREF_ALWAYS = 0, MAM_PREF_NEVER = 1, MAM_PREF_ROSTER = 2 };

struct store_mam_msg {
    uint64_t id;
    bool outgoing;        /* the owner sent it */
    const char *with;     /* the other party's JID (full or bare), as routed */
    size_t with_len;
    const char *xml;      /* the serialized message */
    size_t xml_len;
};

/* n fresh archive ids, *first .. *first + n - 1, all >= now_us. */
int store_mam_next_ids(struct store_txn *t, uint64_t now_us, unsigned n, uint64_t *first);
/* Archives m for owner. Then deletes the owner's oldest messages while
 * there are more than max_msgs (0: no cap), and up to 64 of those with an
 * id below min_id (retention by age; the rest go on later inserts and
 * queries never return them). */
int store_mam_put(struct store_txn *t, const char *owner, const struct store_mam_msg *m,
                  unsigned max_msgs, uint64_t min_id);

struct store_mam_query {
    uint64_t lo, hi;      /* ids in [lo, hi] (time range, retention) */
    const char *with;     /* NULL, a bare JID (matches its resources too) or a full JID */
    bool with_full;
    uint64_t after;       /* 0: none; else page forward from after this id */
    uint64_t before;      /* 0: none; UINT64_MAX: the last page; else page back before it */
    unsigned max;         /* messages per page (0: only count) */
    size_t max_bytes;     /* the page ends early once its messages pass this many bytes */
};
struct store_mam_page {
    unsigned count;       /* matching messages in [lo, hi], paging aside */
    unsigned index;       /* matches before the page's first message (XEP-0059 §2.4) */
    unsigned n;           /* on this page */
    uint64_t first, last; /* ids of the page's first and last message (n > 0) */
    bool complete;        /* no match beyond the page in the paging direction */
};
/* A page of the owner's archive: fn gets its messages in chronological
 * order (pointers valid during the call). HERALD_ENOTFOUND when after or
 * before names no message of the owner's archive. */
int store_mam_page(struct store_txn *t, const char *owner, const struct store_mam_query *q,
                   struct store_mam_page *out,
                   int (*fn)(void *ud, const struct store_mam_msg *m), void *ud);
/* The owner's archived message count. */
int store_mam_count(struct store_txn *t, const char *owner, unsigned *count);

/* Preferences: JID lists are NUL-separated (each JID NUL-terminated). */
struct store_mam_prefs {
    uint8_t dflt;         /* MAM_PREF_* */
    const char *always;
    size_t always_len;
    const char *never;
    size_t never_len;
};
/* HERALD_ENOTFOUND when the owner never set any. */
int store_mam_prefs_get(struct store_txn *t, const char *owner, struct store_mam_prefs *out);
int store_mam_prefs_put(struct store_txn *t, const char *owner, const struct store_mam_prefs *p);
/* ---- end of message archives ---- */

/* ---- signed webhooks (api/webhooks.c; storage/store_webhooks.c) ----
 * A webhook record, and its outbox: the events still to be delivered, in
 * order, keyed (webhook id, outbox seq). Strings are NUL-terminated copies. */
#define STORE_WH_DOOMED 0x01 /* flags: its node is deleted; dropped once the outbox is empty */
struct store_webhook {
    uint64_t id;           /* never reused (a counter in "meta") */
    uint64_t node_id;
    uint64_t created;      /* unix ms */
    uint64_t delivered;    /* events delivered (2xx) */
    uint64_t failures;     /* events given up on (dead-lettered) */
    uint64_t dropped;      /* events not queued: the outbox was full */
    uint32_t max_attempts;
    uint8_t events;        /* bit set of the event kinds it wants (api/webhooks.h) */
    uint8_t flags;         /* STORE_WH_* */
    char node[257];
    char owner[3072];
    char url[2049];
    char secret[257];
    char dead_letter[257];
};
int store_webhook_new_id(struct store_txn *t, uint64_t *id);
int store_webhook_put(struct store_txn *t, const struct store_webhook *w);
/* Deletes the webhook and its whole outbox. */
int store_webhook_del(struct store_txn *t, uint64_t id);
/* Calls fn for every webhook in id order (w valid during the call); a
 * nonzero return stops the walk and is returned. */
int store_webhook_each(struct store_txn *t, int (*fn)(void *ud, const struct store_webhook *w),
                       void *ud);

struct store_outbox {
    uint64_t webhook_id;
    uint64_t seq;          /* order of delivery within the webhook */
    uint64_t created;      /* unix ms */
    uint32_t attempts;     /* failed attempts so far */
    uint16_t last_status;  /* HTTP status of the last failed attempt (0: none) */
    uint8_t event;
    const char *body;      /* the JSON body; from reads, valid until the txn ends */
    size_t body_len;
};
int store_outbox_put(struct store_txn *t, const struct store_outbox *o);
/* The webhook's first outbox record with seq > after_seq; HERALD_ENOTFOUND
 * when there is none. */
int store_outbox_next(struct store_txn *t, uint64_t wid, uint64_t after_seq,
                      struct store_outbox *out);
int store_outbox_del(struct store_txn *t, uint64_t wid, uint64_t seq);
/* How many records the webhook's outbox holds, the seqs of its first and
 * last (0 when empty) and their bytes: a walk of that webhook's records
 * (at start). */
int store_outbox_stats(struct store_txn *t, uint64_t wid, uint64_t *count, uint64_t *first_seq,
                       uint64_t *last_seq, uint64_t *bytes);

#endif
