/* store_lmdb.c - the storage interface on LMDB.
 *
 * One environment per data directory, MDB_NOTLS so that a later writer thread
 * can own write transactions. Records are fixed binary layouts with a leading
 * version byte so that a future schema can read old records. LMDB errors map
 * to HERALD_E* codes in one place (map_err). */
#include "store.h"

#include <errno.h>
#include <lmdb.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "errors.h"
#include "log.h"
#include "store_impl.h"

#define DEFAULT_MAP_SIZE (1ull << 30)
#define USER_RECORD_V1 1
#define USER_RECORD_V2 2 /* v1 plus the account generation (u64) at the end */
#define USER_RECORD_LEN (1 + 8 + 2 * (4 + STORE_SALT_LEN + 2 * STORE_KEY_MAX))
#define USER_RECORD_V2_LEN (USER_RECORD_LEN + 8)

int store_map_err(int rc)
{
    switch (rc) {
    case 0: return 0;
    case MDB_NOTFOUND: return HERALD_ENOTFOUND;
    case MDB_KEYEXIST: return HERALD_EEXIST;
    case MDB_MAP_FULL: return HERALD_EFULL;
    case ENOSPC: return HERALD_EFULL;
    case ENOMEM: return HERALD_ENOMEM;
    case MDB_VERSION_MISMATCH:
    case MDB_INVALID: return HERALD_ESCHEMA;
    default: return HERALD_EIO;
    }
}
#define map_err store_map_err

int store_map_err_s(struct store *s, int rc)
{
    /* An injected fault is not a reason to grow the map. */
    if (rc == MDB_MAP_FULL && !s->fault_fired)
        s->hit_full = true;
    s->fault_fired = false;
    return map_err(rc);
}

#define NDBS 17

/* The named databases, for fault injection and its messages. */
static void db_list(const struct store *s, const char *names[NDBS], MDB_dbi dbis[NDBS])
{
    static const char *const n[NDBS] = {"meta", "users", "nodes", "items", "item_ids",
                                        "subs", "affs",  "roster", "offline", "tokens",
                                        "blocking", "acct_xml", "mam", "mam_acct",
                                        "webhooks", "wh_outbox", "leases"};
    const MDB_dbi d[NDBS] = {s->meta, s->users, s->nodes,  s->items,   s->item_ids,
                             s->subs, s->affs,  s->roster, s->offline, s->tokens,
                             s->blocking, s->acct_xml, s->mam, s->mam_acct,
                             s->webhooks, s->wh_outbox, s->leases};
    for (size_t i = 0; i < NDBS; i++) {
        names[i] = n[i];
        dbis[i] = d[i];
    }
}

static const char *db_name(const struct store *s, MDB_dbi dbi)
{
    const char *names[NDBS];
    MDB_dbi dbis[NDBS];
    db_list(s, names, dbis);
    for (size_t i = 0; i < NDBS; i++)
        if (dbis[i] == dbi)
            return names[i];
    return "?";
}

int store_fault_check(struct store *s, MDB_txn *txn, MDB_dbi dbi)
{
    if (dbi >= STORE_MAX_DBS)
        return 0;
    unsigned long n = ++s->writes[dbi];
    for (unsigned i = 0; i < s->nfaults; i++) {
        if (s->faults[i].dbi == dbi && s->faults[i].n == n) {
            log_warn("store", "injected fault: write %lu on database %s fails (%s)", n,
                     db_name(s, dbi), mdb_strerror(s->faults[i].err));
            s->poisoned = txn;
            s->fault_fired = true;
            return s->faults[i].err;
        }
    }
    return 0;
}

/* HERALD_TEST_FAULTS="DB:N:KIND,...": see docs/testing.md. Malformed
 * entries are refused, so a typo cannot silently test nothing. */
static int parse_faults(struct store *s, const char *spec)
{
    const char *names[NDBS];
    MDB_dbi dbis[NDBS];
    db_list(s, names, dbis);
    char buf[512];
    if (strlen(spec) >= sizeof(buf))
        return HERALD_EINVAL;
    memcpy(buf, spec, strlen(spec) + 1);
    char *save = NULL;
    for (char *e = strtok_r(buf, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
        char name[32], kind[16], mode[16] = "";
        unsigned long n;
        int got = sscanf(e, "%31[a-z_]:%lu:%15[a-z]:%15[a-z]", name, &n, kind, mode);
        if (got < 3 || n == 0 || s->nfaults == STORE_MAX_FAULTS ||
            (got == 4 && strcmp(mode, "direct") != 0))
            return HERALD_EINVAL;
        struct store_fault *f = &s->faults[s->nfaults];
        f->direct = got == 4;
        s->faults_risky = s->faults_risky || !f->direct;
        f->err = strcmp(kind, "full") == 0 ? MDB_MAP_FULL : strcmp(kind, "io") == 0 ? EIO : 0;
        size_t i;
        for (i = 0; i < NDBS && strcmp(names[i], name) != 0; i++)
            ;
        if (f->err == 0 || i == NDBS)
            return HERALD_EINVAL;
        f->dbi = dbis[i];
        f->n = n;
        s->nfaults++;
    }
    return 0;
}

static int open_added(MDB_txn *txn, const char *name, unsigned flags, bool read_only,
                      MDB_dbi *dbi)
{
    int rc = mdb_dbi_open(txn, name, flags, dbi);
    return rc == MDB_NOTFOUND && read_only ? 0 : rc;
}

static int init_schema(struct store *s, bool read_only)
{
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(s->env, NULL, read_only ? MDB_RDONLY : 0, &txn);
    if (rc != 0)
        goto done;
    unsigned flags = read_only ? 0 : MDB_CREATE;
    if ((rc = mdb_dbi_open(txn, "meta", flags, &s->meta)) != 0)
        goto done;
    if ((rc = mdb_dbi_open(txn, "users", flags, &s->users)) != 0 ||
        (rc = mdb_dbi_open(txn, "nodes", flags, &s->nodes)) != 0 ||
        (rc = mdb_dbi_open(txn, "items", flags, &s->items)) != 0 ||
        (rc = mdb_dbi_open(txn, "item_ids", flags, &s->item_ids)) != 0 ||
        (rc = mdb_dbi_open(txn, "subs", flags, &s->subs)) != 0 ||
        (rc = mdb_dbi_open(txn, "affs", flags, &s->affs)) != 0 ||
        (rc = mdb_dbi_open(txn, "roster", flags, &s->roster)) != 0 ||
        (rc = mdb_dbi_open(txn, "offline", flags, &s->offline)) != 0 ||
        (rc = mdb_dbi_open(txn, "tokens", flags, &s->tokens)) != 0)
        goto done;
    /* Databases added in issue 12: a data directory from before them lacks
     * them until the server opens it for writing; read-only users (the
     * CLI) never read them. */
    if ((rc = open_added(txn, "acct_xml", flags, read_only, &s->acct_xml)) != 0 ||
        (rc = open_added(txn, "blocking", flags, read_only, &s->blocking)) != 0 ||
        (rc = open_added(txn, "mam", flags, read_only, &s->mam)) != 0 ||
        (rc = open_added(txn, "mam_acct", flags, read_only, &s->mam_acct)) != 0)
        goto done;
    /* Added in issue 16 (webhooks, leases), the same way. */
    if ((rc = open_added(txn, "webhooks", flags, read_only, &s->webhooks)) != 0 ||
        (rc = open_added(txn, "wh_outbox", flags, read_only, &s->wh_outbox)) != 0 ||
        (rc = open_added(txn, "leases", flags, read_only, &s->leases)) != 0)
        goto done;
    MDB_val k = {6, "schema"}, v;
    rc = mdb_get(txn, s->meta, &k, &v);
    if (rc == MDB_NOTFOUND && !read_only) {
        uint8_t ver[4];
        put_be32(ver, STORE_SCHEMA_VERSION);
        v.mv_size = 4;
        v.mv_data = ver;
        rc = mdb_put(txn, s->meta, &k, &v, 0);
    } else if (rc == 0) {
        uint32_t have = v.mv_size == 4 ? get_be32(v.mv_data) : 0;
        if (have == 0 || have > STORE_SCHEMA_VERSION) {
            log_error("store", "%s has schema version %u; this herald knows up to %u", s->path,
                      have, STORE_SCHEMA_VERSION);
            mdb_txn_abort(txn);
            return HERALD_ESCHEMA;
        }
        if (have < STORE_SCHEMA_VERSION && !read_only) {
            /* Older stores read as they are; this binary may write records
             * they did not have (version 2: leased items, node records with
             * quotas), so older binaries must refuse the store from now on. */
            uint8_t ver[4];
            put_be32(ver, STORE_SCHEMA_VERSION);
            MDB_val nv = {4, ver};
            rc = mdb_put(txn, s->meta, &k, &nv, 0);
            if (rc == 0)
                log_info("store", "%s: schema version %u -> %u", s->path, have,
                         STORE_SCHEMA_VERSION);
        }
    }
    if (rc != 0)
        goto done;
    /* Commit even a read-only transaction: aborting it would also close the
     * database handles opened in it (mdb_dbi_open). */
    rc = mdb_txn_commit(txn);
    txn = NULL;
done:
    if (txn)
        mdb_txn_abort(txn);
    if (rc != 0)
        log_error("store", "%s: %s", s->path, mdb_strerror(rc));
    return map_err(rc);
}

int store_open(struct store **out, const char *dir, const struct store_opts *opts)
{
    int rc;
    struct store *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return HERALD_ENOMEM;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        log_error("store", "cannot create data directory %s: %s", dir, strerror(errno));
        free(s);
        return HERALD_EIO;
    }
    snprintf(s->path, sizeof(s->path), "%s/data.mdb", dir);
    if ((rc = mdb_env_create(&s->env)) != 0)
        goto fail;
    size_t map = (opts && opts->map_size) ? opts->map_size : DEFAULT_MAP_SIZE;
    s->map_size = map;
    s->max_map_size = (opts && opts->max_map_size > map) ? opts->max_map_size : map;
    /* The reserve must leave most of a small map usable. */
    size_t reserve = opts ? opts->reserve : 0;
    if (reserve > s->max_map_size / 8)
        reserve = s->max_map_size / 8;
    s->reserve = reserve;
    if ((rc = mdb_env_set_mapsize(s->env, map)) != 0 || (rc = mdb_env_set_maxdbs(s->env, 32)) != 0 ||
        (rc = mdb_env_set_maxreaders(s->env, 126)) != 0)
        goto fail;
    unsigned flags = MDB_NOTLS | ((opts && opts->read_only) ? MDB_RDONLY : 0);
    if ((rc = mdb_env_open(s->env, dir, flags, 0600)) != 0)
        goto fail;
    rc = init_schema(s, opts && opts->read_only);
    const char *faults = getenv("HERALD_TEST_FAULTS");
    if (rc == 0 && faults && faults[0]) {
        if (parse_faults(s, faults) != 0) {
            log_error("store", "HERALD_TEST_FAULTS=%s: expected DB:N:full|io[,...]", faults);
            rc = HERALD_EINVAL;
        } else {
            log_warn("store", "TEST FAULT INJECTION ON (HERALD_TEST_FAULTS=%s): storage writes "
                              "will fail on purpose", faults);
        }
    }
    if (rc != 0) {
        mdb_env_close(s->env);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
fail:
    log_error("store", "cannot open LMDB environment in %s: %s", dir, mdb_strerror(rc));
    if (s->env)
        mdb_env_close(s->env);
    free(s);
    return map_err(rc);
}

void store_close(struct store *s)
{
    if (s == NULL)
        return;
    mdb_env_close(s->env);
    free(s);
}

const char *store_path(const struct store *s) { return s->path; }

int store_backup_fd(struct store *s, int fd)
{
    int rc = mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT);
    if (rc != 0) {
        log_error("store", "backup of %s: %s", s->path, mdb_strerror(rc));
        return HERALD_EIO;
    }
    return 0;
}

int store_backup_check(const char *file, uint32_t *version)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi meta;
    int ret = HERALD_EIO;
    *version = 0;
    /* No lock file (MDB_NOLOCK): nothing else opens a backup, and a check
     * must not leave FILE-lock beside it. */
    if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 32) != 0)
        goto done;
    int rc = mdb_env_open(env, file, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK, 0600);
    if (rc != 0) {
        log_error("store", "%s is not an LMDB file: %s", file, mdb_strerror(rc));
        goto done;
    }
    if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
        goto done;
    ret = HERALD_ESCHEMA;
    if (mdb_dbi_open(txn, "meta", 0, &meta) != 0)
        goto done;
    MDB_val k = {6, "schema"}, v;
    if (mdb_get(txn, meta, &k, &v) != 0 || v.mv_size != 4)
        goto done;
    *version = get_be32(v.mv_data);
    if (*version >= 1 && *version <= STORE_SCHEMA_VERSION)
        ret = 0;
done:
    if (txn)
        mdb_txn_abort(txn);
    if (env)
        mdb_env_close(env);
    return ret;
}

int store_lock_dir(const char *dir, bool exclusive)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s/herald.lock", dir) >= sizeof(path))
        return HERALD_EIO;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_error("store", "cannot open %s: %s", path, strerror(errno));
        return HERALD_EIO;
    }
    if (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return HERALD_ECONFLICT;
        log_error("store", "cannot lock %s: %s", path, strerror(e));
        return HERALD_EIO;
    }
    return fd;
}


bool store_write_risky(const struct store *s)
{
    /* Margin: what one operation may write (a 1 MiB HTTP body is 256
     * pages), doubled, on top of twice the estimate for the turn so far. */
    return s->faults_risky || 2 * s->turn_pages + 2048 > s->turn_free_pages;
}

unsigned long store_write_count(const struct store *s) { return s->write_attempts; }

bool store_reserve_reached(const struct store *s)
{
    return s->at_ceiling && s->reserve_pages && s->turn_pages + s->reserve_pages > s->turn_free_pages;
}

/* Pages on LMDB's free list (freed by committed transactions, reusable):
 * each record of the free database (dbi 0) is a list of page numbers
 * that starts with its length. LMDB opens a cursor on it in a read-only
 * transaction only (MDB_NOTLS allows one beside the open write). */
static unsigned long freelist_pages(struct store *s)
{
    MDB_txn *rtxn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    unsigned long pages = 0;
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &rtxn) != 0)
        return 0;
    if (mdb_cursor_open(rtxn, 0, &cur) != 0)
        goto done;
    int rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (v.mv_size >= sizeof(size_t)) {
            size_t n;
            memcpy(&n, v.mv_data, sizeof(n));
            pages += n;
        }
    }
    mdb_cursor_close(cur);
done:
    mdb_txn_abort(rtxn);
    return pages;
}

void store_turn_begin(struct store *s)
{
    MDB_envinfo info;
    MDB_stat st;
    s->turn_pages = 0;
    s->turn_free_pages = 0;
    if (mdb_env_info(s->env, &info) == 0 && mdb_env_stat(s->env, &st) == 0 && st.ms_psize) {
        size_t pages = info.me_mapsize / st.ms_psize;
        s->turn_free_pages = pages > info.me_last_pgno + 1 ? pages - info.me_last_pgno - 1 : 0;
        s->at_ceiling = info.me_mapsize >= s->max_map_size;
        s->reserve_pages = (unsigned long)(s->reserve / st.ms_psize);
        /* Far from the end of the map its unused tail is enough to judge
         * by; close to it, deleted data's pages count as well (a walk of
         * the free list's records, only then). */
        if (s->turn_free_pages < s->reserve_pages + 4096)
            s->turn_free_pages += freelist_pages(s);
    }
}

int store_grow(struct store *s)
{
    MDB_envinfo info;
    MDB_stat st;
    if (mdb_env_info(s->env, &info) != 0 || mdb_env_stat(s->env, &st) != 0)
        return 0;
    s->map_size = info.me_mapsize;
    double used = (double)(info.me_last_pgno + 1) * st.ms_psize;
    bool full = s->hit_full;
    s->hit_full = false;
    if (!full && used < 0.8 * (double)s->map_size)
        return 0;
    if (s->map_size >= s->max_map_size) {
        if (full)
            log_error("store", "%s is full at the ceiling storage.max_map_size_mb = %zu: writes "
                               "fail with resource-constraint until data is removed or the "
                               "ceiling is raised", s->path, s->max_map_size >> 20);
        return full ? HERALD_EFULL : 0;
    }
    size_t grown = s->map_size * 2;
    if (grown < s->map_size || grown > s->max_map_size)
        grown = s->max_map_size;
    int rc = mdb_env_set_mapsize(s->env, grown);
    if (rc != 0) {
        log_error("store", "cannot grow the map of %s to %zu MiB: %s", s->path, grown >> 20,
                  mdb_strerror(rc));
        return map_err(rc);
    }
    log_info("store", "map of %s grown from %zu to %zu MiB (%.0f%% used; ceiling %zu MiB)",
             s->path, s->map_size >> 20, grown >> 20, 100.0 * used / (double)s->map_size,
             s->max_map_size >> 20);
    s->map_size = grown;
    return 1;
}

static void encode_scram(uint8_t **p, const struct store_scram *sc)
{
    put_be32(*p, sc->iterations);
    *p += 4;
    memcpy(*p, sc->salt, STORE_SALT_LEN);
    *p += STORE_SALT_LEN;
    memcpy(*p, sc->stored_key, STORE_KEY_MAX);
    *p += STORE_KEY_MAX;
    memcpy(*p, sc->server_key, STORE_KEY_MAX);
    *p += STORE_KEY_MAX;
}

static void decode_scram(const uint8_t **p, struct store_scram *sc)
{
    sc->iterations = get_be32(*p);
    *p += 4;
    memcpy(sc->salt, *p, STORE_SALT_LEN);
    *p += STORE_SALT_LEN;
    memcpy(sc->stored_key, *p, STORE_KEY_MAX);
    *p += STORE_KEY_MAX;
    memcpy(sc->server_key, *p, STORE_KEY_MAX);
    *p += STORE_KEY_MAX;
}

static int key_of(MDB_val *k, const char *bare_jid)
{
    size_t len = strlen(bare_jid);
    /* LMDB's default maximum key size is 511 bytes. */
    if (len == 0 || len > 511)
        return HERALD_EINVAL;
    k->mv_size = len;
    k->mv_data = (void *)bare_jid;
    return 0;
}

/* The generation of the account stored under k in txn, or an LMDB error. */
static int user_generation(MDB_txn *txn, MDB_dbi users, MDB_val *k, uint64_t *gen)
{
    MDB_val v;
    int rc = mdb_get(txn, users, k, &v);
    if (rc != 0)
        return rc;
    const uint8_t *p = v.mv_data;
    if (v.mv_size == USER_RECORD_LEN && p[0] == USER_RECORD_V1)
        *gen = 0;
    else if (v.mv_size == USER_RECORD_V2_LEN && p[0] == USER_RECORD_V2)
        *gen = get_be64(p + USER_RECORD_LEN);
    else
        return MDB_INVALID;
    return 0;
}

int store_user_generation_txn(struct store *s, MDB_txn *txn, const char *bare_jid, uint64_t *gen)
{
    MDB_val k;
    int rc = key_of(&k, bare_jid);
    return rc != 0 ? rc : map_err(user_generation(txn, s->users, &k, gen));
}

int store_user_put_txn(struct store_txn *t, const char *bare_jid, const struct store_user *u,
                       bool create)
{
    struct store *s = t->s;
    MDB_val k, v;
    uint8_t rec[USER_RECORD_V2_LEN], *p = rec;
    int rc = key_of(&k, bare_jid);
    if (rc != 0)
        return rc;
    *p++ = USER_RECORD_V2;
    put_be64(p, u->created);
    p += 8;
    encode_scram(&p, &u->sha1);
    encode_scram(&p, &u->sha256);
    put_be64(p, u->generation);
    v.mv_size = sizeof(rec);
    v.mv_data = rec;
    if (!create) {
        uint64_t old;
        if ((rc = user_generation(t->txn, s->users, &k, &old)) != 0)
            return map_err(rc);
        /* A new generation revokes the account's tokens: drop them too. */
        if (old != u->generation && (rc = store_tokens_forget_account(t, bare_jid)) != 0)
            return rc;
    }
    return map_err(st_put(s, t->txn, s->users, &k, &v, create ? MDB_NOOVERWRITE : 0));
}

/* Runs fn in a write transaction of its own, committed when fn returns 0. */
static int in_write_txn(struct store *s, int (*fn)(struct store_txn *t, void *arg), void *arg)
{
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return map_err(rc);
    struct store_txn t = {s, txn, true};
    if ((rc = fn(&t, arg)) != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    return map_err(mdb_txn_commit(txn));
}

struct user_put_args {
    const char *bare;
    const struct store_user *u;
    bool create;
};

static int user_put_fn(struct store_txn *t, void *arg)
{
    const struct user_put_args *a = arg;
    return store_user_put_txn(t, a->bare, a->u, a->create);
}

int store_user_put(struct store *s, const char *bare_jid, const struct store_user *u,
                   bool create)
{
    struct user_put_args a = {bare_jid, u, create};
    return in_write_txn(s, user_put_fn, &a);
}

int store_user_get(struct store *s, const char *bare_jid, struct store_user *out)
{
    MDB_val k, v;
    MDB_txn *txn = NULL;
    int rc = key_of(&k, bare_jid);
    if (rc != 0)
        return rc;
    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0)
        return map_err(rc);
    rc = mdb_get(txn, s->users, &k, &v);
    if (rc == 0) {
        const uint8_t *p = v.mv_data;
        /* v1 records (written before account generations) read as
         * generation 0, which is also what their tokens carry. */
        bool v1 = v.mv_size == USER_RECORD_LEN && p[0] == USER_RECORD_V1;
        bool v2 = v.mv_size == USER_RECORD_V2_LEN && p[0] == USER_RECORD_V2;
        if (!v1 && !v2) {
            rc = MDB_INVALID;
        } else {
            out->created = get_be64(p + 1);
            p += 9;
            decode_scram(&p, &out->sha1);
            decode_scram(&p, &out->sha256);
            out->generation = v2 ? get_be64(p) : 0;
        }
    }
    mdb_txn_abort(txn);
    return map_err(rc);
}

int store_user_exists(struct store *s, const char *bare_jid)
{
    MDB_val k, v;
    MDB_txn *txn = NULL;
    int rc = key_of(&k, bare_jid);
    if (rc != 0)
        return 0;
    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0)
        return map_err(rc);
    rc = mdb_get(txn, s->users, &k, &v);
    mdb_txn_abort(txn);
    if (rc == MDB_NOTFOUND)
        return 0;
    return rc == 0 ? 1 : map_err(rc);
}

int store_user_del_txn(struct store_txn *t, const char *bare_jid)
{
    MDB_val k;
    int rc = key_of(&k, bare_jid);
    if (rc != 0)
        return rc;
    if ((rc = st_del(t->s, t->txn, t->s->users, &k, NULL)) != 0)
        return map_err(rc);
    /* The account's roster, offline messages, subscriptions and REST tokens
     * go with it, in the same transaction: a new account of that name starts
     * clean (and has a new generation, which old tokens would not match).
     * Its private XML and vCard, too (XEP-0049, XEP-0054), and its PEP
     * nodes (XEP-0163). */
    if ((rc = store_im_forget_account(t, bare_jid)) != 0 ||
        (rc = store_tokens_forget_account(t, bare_jid)) != 0 ||
        (rc = store_block_clear(t, bare_jid)) != 0 ||
        (rc = store_mam_forget_account(t, bare_jid)) != 0 ||
        (rc = store_private_forget_account(t, bare_jid)) != 0 ||
        (rc = store_pep_forget_account(t, bare_jid)) != 0)
        return rc;
    return 0;
}

static int user_del_fn(struct store_txn *t, void *arg) { return store_user_del_txn(t, arg); }

int store_user_del(struct store *s, const char *bare_jid)
{
    return in_write_txn(s, user_del_fn, (void *)bare_jid);
}

#define CLUSTER_APPLIED_KEY "cluster.applied"

int store_cluster_applied(struct store_txn *t, uint64_t *seq)
{
    MDB_val k = {sizeof(CLUSTER_APPLIED_KEY) - 1, (void *)CLUSTER_APPLIED_KEY}, v;
    int rc = mdb_get(t->txn, t->s->meta, &k, &v);
    *seq = 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return map_err(rc);
    if (v.mv_size != 8)
        return HERALD_ESCHEMA;
    *seq = get_be64(v.mv_data);
    return 0;
}

int store_cluster_set_applied(struct store_txn *t, uint64_t seq)
{
    uint8_t b[8];
    put_be64(b, seq);
    MDB_val k = {sizeof(CLUSTER_APPLIED_KEY) - 1, (void *)CLUSTER_APPLIED_KEY}, v = {8, b};
    return map_err(st_put(t->s, t->txn, t->s->meta, &k, &v, 0));
}

int store_cluster_applied_now(struct store *s, uint64_t *seq)
{
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return map_err(rc);
    struct store_txn t = {s, txn, false};
    rc = store_cluster_applied(&t, seq);
    mdb_txn_abort(txn);
    return rc;
}

int store_secret(struct store *s, const char *name, uint8_t out[STORE_SECRET_LEN])
{
    char key[64];
    uint8_t fresh[STORE_SECRET_LEN];
    MDB_txn *txn = NULL;
    int n = snprintf(key, sizeof(key), "secret.%s", name);
    if (n < 0 || (size_t)n >= sizeof(key))
        return HERALD_EINVAL;
    MDB_val k = {(size_t)n, key}, v;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        goto done;
    rc = mdb_get(txn, s->meta, &k, &v);
    if (rc == 0 && v.mv_size == STORE_SECRET_LEN) {
        memcpy(out, v.mv_data, STORE_SECRET_LEN);
        goto done;
    }
    if (rc != MDB_NOTFOUND && rc != 0)
        goto done;
    if (RAND_bytes(fresh, sizeof(fresh)) != 1) {
        rc = EIO;
        goto done;
    }
    v.mv_size = sizeof(fresh);
    v.mv_data = fresh;
    if ((rc = st_put(s, txn, s->meta, &k, &v, 0)) != 0)
        goto done;
    if ((rc = mdb_txn_commit(txn)) == 0)
        memcpy(out, fresh, STORE_SECRET_LEN);
    txn = NULL;
done:
    if (txn)
        mdb_txn_abort(txn);
    OPENSSL_cleanse(fresh, sizeof(fresh));
    return map_err(rc);
}

int store_user_each(struct store *s, int (*fn)(void *ud, const char *bare_jid), void *ud)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return map_err(rc);
    if ((rc = mdb_cursor_open(txn, s->users, &cur)) != 0)
        goto done;
    int ret = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && ret == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        char name[512];
        if (k.mv_size >= sizeof(name))
            continue;
        memcpy(name, k.mv_data, k.mv_size);
        name[k.mv_size] = '\0';
        ret = fn(ud, name);
    }
    if (rc == MDB_NOTFOUND)
        rc = 0;
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc ? map_err(rc) : ret;
done:
    mdb_txn_abort(txn);
    return map_err(rc);
}
