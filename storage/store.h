/* store.h - Herald's storage interface (implemented on LMDB in store_lmdb.c).
 *
 * The rest of Herald calls these domain-shaped functions and never LMDB
 * directly, so a second backend can sit behind this header later. Every call
 * returns 0 or a negative HERALD_E* code (errors.h). The environment lives in
 * the data directory; several processes may open it at once (the server and
 * `herald user add`), and a committed write is visible to the next read in any
 * of them.
 *
 * Layout (docs/storage-layout.md): named databases "meta" (schema version)
 * and "users" (bare JID -> struct store_user record, versioned). */
#ifndef HERALD_STORE_H
#define HERALD_STORE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_SCHEMA_VERSION 1u

struct store;

struct store_opts {
    size_t map_size;    /* bytes; 0 = default (1 GiB) */
    bool read_only;
};

/* Opens (creating when absent) the environment in dir, which is created with
 * mode 0700 if missing. Checks the schema version record: a newer version is
 * HERALD_ESCHEMA. *out is owned by the caller; close with store_close. */
int store_open(struct store **out, const char *dir, const struct store_opts *opts);
void store_close(struct store *s);

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
};

/* Users are keyed by prepared bare JID ("alice@localhost").
 * store_user_put: create=true fails with HERALD_EEXIST if present;
 * create=false fails with HERALD_ENOTFOUND if absent. */
int store_user_put(struct store *s, const char *bare_jid, const struct store_user *u,
                   bool create);
int store_user_get(struct store *s, const char *bare_jid, struct store_user *out);
int store_user_exists(struct store *s, const char *bare_jid);  /* 1, 0 or error */
int store_user_del(struct store *s, const char *bare_jid);
/* Calls fn for each user in key order; a nonzero return from fn stops the walk
 * and is returned. */
int store_user_each(struct store *s, int (*fn)(void *ud, const char *bare_jid), void *ud);

/* Path of the environment's data file, for messages. */
const char *store_path(const struct store *s);

#endif
