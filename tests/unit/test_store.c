/* test_store.c - the LMDB user store (store_lmdb.c).
 *
 * Every test opens a fresh environment in its own mkdtemp directory under
 * $TMPDIR and removes it afterwards. The sharing test uses a child process
 * for the second handle, as `herald user add` is a separate process from the
 * running server (LMDB forbids opening one environment twice in a process). */
#include <dirent.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "errors.h"
#include "store.h"
#include "test.h"

static char *make_dir(void) { return test_make_dir("herald-test-store"); }

static void remove_dir(char *dir) { test_remove_dir(dir); }

static void fill_user(struct store_user *u, unsigned seed)
{
    memset(u, 0, sizeof(*u));
    u->created = 1700000000ull + seed;
    u->sha1.iterations = 4096 + seed;
    u->sha256.iterations = 8192 + seed;
    for (int i = 0; i < STORE_SALT_LEN; i++) {
        u->sha1.salt[i] = (uint8_t)(seed * 7 + (unsigned)i);
        u->sha256.salt[i] = (uint8_t)(seed * 11 + (unsigned)i);
    }
    for (int i = 0; i < STORE_KEY_MAX; i++) {
        u->sha1.stored_key[i] = (uint8_t)(seed + 3u * (unsigned)i);
        u->sha1.server_key[i] = (uint8_t)(seed + 5u * (unsigned)i);
        u->sha256.stored_key[i] = (uint8_t)(seed ^ (unsigned)i);
        u->sha256.server_key[i] = (uint8_t)(~seed + (unsigned)i);
    }
}

static bool user_equal(const struct store_user *a, const struct store_user *b)
{
    return a->created == b->created && memcmp(&a->sha1, &b->sha1, sizeof(a->sha1)) == 0 &&
           memcmp(&a->sha256, &b->sha256, sizeof(a->sha256)) == 0;
}

/* Reads the raw schema record through LMDB itself. Returns the value or -1. */
static long read_schema_raw(const char *dir)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    long ver = -1;
    if (mdb_env_create(&env) != 0)
        return -1;
    mdb_env_set_maxdbs(env, 16);
    if (mdb_env_open(env, dir, MDB_RDONLY, 0600) != 0)
        goto done;
    if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
        goto done;
    if (mdb_dbi_open(txn, "meta", 0, &dbi) == 0) {
        MDB_val k = {6, "schema"}, v;
        if (mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size == 4) {
            const uint8_t *p = v.mv_data;
            ver = (long)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
        }
    }
    mdb_txn_abort(txn);
done:
    mdb_env_close(env);
    return ver;
}

/* Writes the schema record through LMDB itself (4-byte big-endian). */
static int write_schema_raw(const char *dir, const void *val, size_t len)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    int rc = mdb_env_create(&env);
    if (rc != 0)
        return rc;
    mdb_env_set_maxdbs(env, 16);
    if ((rc = mdb_env_open(env, dir, 0, 0600)) != 0)
        goto done;
    if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0)
        goto done;
    if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &dbi)) != 0) {
        mdb_txn_abort(txn);
        goto done;
    }
    MDB_val k = {6, "schema"}, v = {len, (void *)val};
    if ((rc = mdb_put(txn, dbi, &k, &v, 0)) != 0) {
        mdb_txn_abort(txn);
        goto done;
    }
    rc = mdb_txn_commit(txn);
done:
    mdb_env_close(env);
    return rc;
}

static void test_open_creates_schema(void)
{
    char *dir = make_dir();
    char sub[4200];
    snprintf(sub, sizeof(sub), "%s/data", dir);
    struct store *s = NULL;
    CHECK_EQ_INT(store_open(&s, sub, NULL), 0); /* creates the directory */
    CHECK(s != NULL);
    struct stat st;
    CHECK_EQ_INT(stat(sub, &st), 0);
    CHECK_EQ_INT(st.st_mode & 0777, 0700);
    char want[4300];
    snprintf(want, sizeof(want), "%s/data.mdb", sub);
    CHECK_EQ_STR(store_path(s), want);
    store_close(s);
    CHECK_EQ_INT(read_schema_raw(sub), STORE_SCHEMA_VERSION);
    /* Reopening keeps the record as it is. */
    CHECK_EQ_INT(store_open(&s, sub, NULL), 0);
    store_close(s);
    CHECK_EQ_INT(read_schema_raw(sub), STORE_SCHEMA_VERSION);
    store_close(NULL);
    remove_dir(strdup(sub));
    remove_dir(dir);
}

struct each_ctx {
    char names[16][64];
    int n;
    int stop_after;
};

static int each_cb(void *ud, const char *jid)
{
    struct each_ctx *c = ud;
    if (c->n < 16)
        snprintf(c->names[c->n], sizeof(c->names[0]), "%s", jid);
    c->n++;
    return (c->stop_after && c->n >= c->stop_after) ? 42 : 0;
}

static void test_user_crud(void)
{
    char *dir = make_dir();
    struct store *s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    if (s == NULL)
        goto done;
    struct store_user u1, u2, got;
    fill_user(&u1, 1);
    fill_user(&u2, 2);

    CHECK_EQ_INT(store_user_exists(s, "alice@localhost"), 0);
    CHECK_EQ_INT(store_user_get(s, "alice@localhost", &got), HERALD_ENOTFOUND);
    CHECK_EQ_INT(store_user_del(s, "alice@localhost"), HERALD_ENOTFOUND);
    /* create=false on a missing user: not found, and nothing is written. */
    CHECK_EQ_INT(store_user_put(s, "alice@localhost", &u1, false), HERALD_ENOTFOUND);
    CHECK_EQ_INT(store_user_exists(s, "alice@localhost"), 0);

    CHECK_EQ_INT(store_user_put(s, "alice@localhost", &u1, true), 0);
    CHECK_EQ_INT(store_user_exists(s, "alice@localhost"), 1);
    memset(&got, 0xEE, sizeof(got));
    CHECK_EQ_INT(store_user_get(s, "alice@localhost", &got), 0);
    CHECK(user_equal(&got, &u1));

    /* create=true on an existing user: exists, and the old record stays. */
    CHECK_EQ_INT(store_user_put(s, "alice@localhost", &u2, true), HERALD_EEXIST);
    CHECK_EQ_INT(store_user_get(s, "alice@localhost", &got), 0);
    CHECK(user_equal(&got, &u1));

    /* create=false on an existing user replaces it. */
    CHECK_EQ_INT(store_user_put(s, "alice@localhost", &u2, false), 0);
    CHECK_EQ_INT(store_user_get(s, "alice@localhost", &got), 0);
    CHECK(user_equal(&got, &u2));

    CHECK_EQ_INT(store_user_put(s, "carol@localhost", &u1, true), 0);
    CHECK_EQ_INT(store_user_put(s, "bob@localhost", &u1, true), 0);

    /* Keys are bytes: no folding in the store. */
    CHECK_EQ_INT(store_user_exists(s, "Alice@localhost"), 0);

    struct each_ctx c;
    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(store_user_each(s, each_cb, &c), 0);
    CHECK_EQ_INT(c.n, 3);
    CHECK_EQ_STR(c.names[0], "alice@localhost");
    CHECK_EQ_STR(c.names[1], "bob@localhost");
    CHECK_EQ_STR(c.names[2], "carol@localhost");
    memset(&c, 0, sizeof(c));
    c.stop_after = 2;
    CHECK_EQ_INT(store_user_each(s, each_cb, &c), 42);
    CHECK_EQ_INT(c.n, 2);

    CHECK_EQ_INT(store_user_del(s, "bob@localhost"), 0);
    CHECK_EQ_INT(store_user_exists(s, "bob@localhost"), 0);
    CHECK_EQ_INT(store_user_get(s, "bob@localhost", &got), HERALD_ENOTFOUND);
    CHECK_EQ_INT(store_user_del(s, "bob@localhost"), HERALD_ENOTFOUND);
    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(store_user_each(s, each_cb, &c), 0);
    CHECK_EQ_INT(c.n, 2);

    /* Invalid keys: empty and over LMDB's key limit. */
    char big[600];
    memset(big, 'k', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    CHECK_EQ_INT(store_user_put(s, "", &u1, true), HERALD_EINVAL);
    CHECK_EQ_INT(store_user_put(s, big, &u1, true), HERALD_EINVAL);
    CHECK_EQ_INT(store_user_get(s, big, &got), HERALD_EINVAL);
    CHECK_EQ_INT(store_user_exists(s, big), 0);
    CHECK_EQ_INT(store_user_del(s, ""), HERALD_EINVAL);
    big[511] = '\0'; /* exactly at the limit */
    CHECK_EQ_INT(store_user_put(s, big, &u1, true), 0);
    CHECK_EQ_INT(store_user_get(s, big, &got), 0);
    CHECK(user_equal(&got, &u1));

    /* An empty store walks zero users. */
    CHECK_EQ_INT(store_user_del(s, big), 0);
    CHECK_EQ_INT(store_user_del(s, "alice@localhost"), 0);
    CHECK_EQ_INT(store_user_del(s, "carol@localhost"), 0);
    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(store_user_each(s, each_cb, &c), 0);
    CHECK_EQ_INT(c.n, 0);
    store_close(s);
done:
    remove_dir(dir);
}

static void test_reopen_persists(void)
{
    char *dir = make_dir();
    struct store *s = NULL;
    struct store_user u, got;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    for (unsigned i = 0; i < 50; i++) {
        char jid[64];
        snprintf(jid, sizeof(jid), "user%02u@localhost", i);
        fill_user(&u, i);
        CHECK_EQ_INT(store_user_put(s, jid, &u, true), 0);
    }
    store_close(s);

    s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    unsigned ok = 0;
    for (unsigned i = 0; i < 50; i++) {
        char jid[64];
        snprintf(jid, sizeof(jid), "user%02u@localhost", i);
        fill_user(&u, i);
        ok += store_user_get(s, jid, &got) == 0 && user_equal(&got, &u);
    }
    CHECK_EQ_INT(ok, 50);
    store_close(s);

    /* Read-only open sees the data and cannot write. */
    struct store_opts ro = {.read_only = true};
    s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, &ro), 0);
    CHECK_EQ_INT(store_user_exists(s, "user07@localhost"), 1);
    fill_user(&u, 99);
    CHECK(store_user_put(s, "new@localhost", &u, true) < 0);
    store_close(s);
    remove_dir(dir);
}

/* Runs fn in a child process with its own store handle on dir; returns the
 * child's exit status (0 = all its checks passed). */
static int in_child(const char *dir, int (*fn)(struct store *s))
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        struct store *s = NULL;
        int rc = store_open(&s, dir, NULL);
        if (rc == 0) {
            rc = fn(s);
            store_close(s);
        }
        _exit(rc == 0 ? 0 : 1);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static int child_add_bob(struct store *s)
{
    struct store_user u;
    fill_user(&u, 22);
    return store_user_put(s, "bob@localhost", &u, true);
}

static int child_sees_carol(struct store *s)
{
    struct store_user u, got;
    fill_user(&u, 33);
    if (store_user_get(s, "carol@localhost", &got) != 0 || !user_equal(&got, &u))
        return 1;
    /* And the child's delete is visible to the parent. */
    return store_user_del(s, "alice@localhost");
}

static void test_shared_between_processes(void)
{
    char *dir = make_dir();
    struct store *s = NULL;
    struct store_user u, got;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    if (s == NULL)
        goto done;
    fill_user(&u, 11);
    CHECK_EQ_INT(store_user_put(s, "alice@localhost", &u, true), 0);
    /* Warm the parent's handle with a read before the child writes. */
    CHECK_EQ_INT(store_user_exists(s, "bob@localhost"), 0);

    /* `herald user add` in another process while the server holds the store. */
    CHECK_EQ_INT(in_child(dir, child_add_bob), 0);
    CHECK_EQ_INT(store_user_exists(s, "bob@localhost"), 1);
    fill_user(&u, 22);
    CHECK_EQ_INT(store_user_get(s, "bob@localhost", &got), 0);
    CHECK(user_equal(&got, &u));

    /* And the other way round. */
    fill_user(&u, 33);
    CHECK_EQ_INT(store_user_put(s, "carol@localhost", &u, true), 0);
    CHECK_EQ_INT(in_child(dir, child_sees_carol), 0);
    CHECK_EQ_INT(store_user_exists(s, "alice@localhost"), 0);
    store_close(s);
done:
    remove_dir(dir);
}

static void test_map_full(void)
{
    char *dir = make_dir();
    struct store *s = NULL;
    struct store_opts opts = {.map_size = 64 * 1024};
    CHECK_EQ_INT(store_open(&s, dir, &opts), 0);
    if (s == NULL)
        goto done;
    struct store_user u, got;
    fill_user(&u, 5);
    int rc = 0;
    unsigned n = 0;
    char jid[128];
    for (; n < 100000; n++) {
        snprintf(jid, sizeof(jid), "user-with-a-longish-name-%06u@localhost", n);
        rc = store_user_put(s, jid, &u, true);
        if (rc != 0)
            break;
    }
    CHECK_EQ_INT(rc, HERALD_EFULL);
    CHECK(n > 10);
    /* The failed write left nothing behind and the store still works. */
    CHECK_EQ_INT(store_user_exists(s, jid), 0);
    CHECK_EQ_INT(store_user_get(s, "user-with-a-longish-name-000000@localhost", &got), 0);
    CHECK(user_equal(&got, &u));
    CHECK_EQ_INT(store_user_put(s, jid, &u, true), HERALD_EFULL);
    /* A delete needs fresh copy-on-write pages too, so on a full map it may
     * fail as well; either way it fails cleanly. */
    int del = store_user_del(s, "user-with-a-longish-name-000001@localhost");
    CHECK(del == 0 || del == HERALD_EFULL);
    store_close(s);

    /* Reopen with the same small map: the data is intact, still full. */
    s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, &opts), 0);
    if (s) {
        CHECK_EQ_INT(store_user_get(s, "user-with-a-longish-name-000002@localhost", &got), 0);
        CHECK_EQ_INT(store_user_exists(s, jid), 0);
        store_close(s);
    }
    /* A larger map makes room. */
    struct store_opts bigger = {.map_size = 1024 * 1024};
    s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, &bigger), 0);
    if (s) {
        CHECK_EQ_INT(store_user_put(s, jid, &u, true), 0);
        CHECK_EQ_INT(store_user_exists(s, jid), 1);
        CHECK_EQ_INT(store_user_del(s, "user-with-a-longish-name-000003@localhost"), 0);
        store_close(s);
    }
done:
    remove_dir(dir);
}

static void test_schema_version(void)
{
    char *dir = make_dir();
    struct store *s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    store_close(s);

    /* A newer schema than this build knows. */
    uint32_t v = STORE_SCHEMA_VERSION + 1;
    uint8_t be[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    CHECK_EQ_INT(write_schema_raw(dir, be, 4), 0);
    s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), HERALD_ESCHEMA);
    CHECK(s == NULL);
    struct store_opts ro = {.read_only = true};
    CHECK_EQ_INT(store_open(&s, dir, &ro), HERALD_ESCHEMA);
    /* The refusal did not rewrite the record. */
    CHECK_EQ_INT(read_schema_raw(dir), STORE_SCHEMA_VERSION + 1);

    /* A big-endian value, not host order: 0x01000000 is not version 1. */
    uint8_t le1[4] = {1, 0, 0, 0};
    CHECK_EQ_INT(write_schema_raw(dir, le1, 4), 0);
    CHECK_EQ_INT(store_open(&s, dir, NULL), HERALD_ESCHEMA);

    /* Malformed records: version 0, wrong length. */
    uint8_t zero[4] = {0, 0, 0, 0};
    CHECK_EQ_INT(write_schema_raw(dir, zero, 4), 0);
    CHECK_EQ_INT(store_open(&s, dir, NULL), HERALD_ESCHEMA);
    uint8_t three[3] = {0, 0, 1};
    CHECK_EQ_INT(write_schema_raw(dir, three, 3), 0);
    CHECK_EQ_INT(store_open(&s, dir, NULL), HERALD_ESCHEMA);

    /* Version 1 (before leases and quotas) opens as it is read-only, and
     * is marked current when opened for writing. */
    uint8_t one[4] = {0, 0, 0, 1};
    CHECK_EQ_INT(write_schema_raw(dir, one, 4), 0);
    s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, &ro), 0);
    store_close(s);
    CHECK_EQ_INT(read_schema_raw(dir), 1);
    s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    store_close(s);
    CHECK_EQ_INT(read_schema_raw(dir), STORE_SCHEMA_VERSION);

    /* The current version opens again. */
    uint8_t cur[4] = {0, 0, 0, STORE_SCHEMA_VERSION};
    CHECK_EQ_INT(write_schema_raw(dir, cur, 4), 0);
    s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    store_close(s);
    remove_dir(dir);
}

static void test_open_errors(void)
{
    struct store *s = NULL;
    /* A path under a regular file cannot be created. */
    char *dir = make_dir();
    char file[4200], sub[4300];
    snprintf(file, sizeof(file), "%s/file", dir);
    FILE *f = fopen(file, "w");
    CHECK(f != NULL);
    if (f)
        fclose(f);
    snprintf(sub, sizeof(sub), "%s/x", file);
    CHECK(store_open(&s, sub, NULL) < 0);
    /* Read-only open of an empty directory: nothing to read. */
    char empty[4300];
    snprintf(empty, sizeof(empty), "%s/empty", dir);
    mkdir(empty, 0700);
    struct store_opts ro = {.read_only = true};
    CHECK(store_open(&s, empty, &ro) < 0);
    remove_dir(strdup(empty));
    remove_dir(dir);
}

/* herald backup / restore's storage side: a compacted copy that opens as a
 * store with the same data, the schema check of a file, the directory
 * lock's shared/exclusive rules. */
static void test_backup_and_lock(void)
{
    char *dir = make_dir();
    struct store *s = NULL;
    struct store_user u, got;
    char jid[64], path[4300], copydir[4300], junk[4300], data[4400];
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    for (unsigned i = 0; i < 2000; i++) {
        snprintf(jid, sizeof(jid), "user%04u@localhost", i);
        fill_user(&u, i);
        CHECK_EQ_INT(store_user_put(s, jid, &u, true), 0);
    }
    for (unsigned i = 100; i < 2000; i++) {
        snprintf(jid, sizeof(jid), "user%04u@localhost", i);
        CHECK_EQ_INT(store_user_del(s, jid), 0);
    }
    snprintf(path, sizeof(path), "%s/backup.mdb", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    CHECK(fd >= 0);
    CHECK_EQ_INT(store_backup_fd(s, fd), 0);
    close(fd);
    store_close(s);
    uint32_t version = 0;
    CHECK_EQ_INT(store_backup_check(path, &version), 0);
    CHECK_EQ_INT(version, STORE_SCHEMA_VERSION);
    /* Compaction: the freed pages are not copied. */
    struct stat st_data, st_copy;
    snprintf(data, sizeof(data), "%s/data.mdb", dir);
    CHECK_EQ_INT(stat(data, &st_data), 0);
    CHECK_EQ_INT(stat(path, &st_copy), 0);
    CHECK(st_copy.st_size < st_data.st_size);
    /* The copy, as another directory's data.mdb, is the same store. */
    snprintf(copydir, sizeof(copydir), "%s/restored", dir);
    CHECK_EQ_INT(mkdir(copydir, 0700), 0);
    snprintf(data, sizeof(data), "%s/data.mdb", copydir);
    CHECK_EQ_INT(rename(path, data), 0);
    s = NULL;
    CHECK_EQ_INT(store_open(&s, copydir, NULL), 0);
    unsigned ok = 0;
    for (unsigned i = 0; i < 2000; i++) {
        snprintf(jid, sizeof(jid), "user%04u@localhost", i);
        fill_user(&u, i);
        if (i < 100)
            ok += store_user_get(s, jid, &got) == 0 && user_equal(&got, &u);
        else
            ok += store_user_exists(s, jid) == 0;
    }
    CHECK_EQ_INT(ok, 2000);
    store_close(s);
    /* Not LMDB at all. */
    snprintf(junk, sizeof(junk), "%s/junk", dir);
    FILE *f = fopen(junk, "w");
    CHECK(f != NULL);
    for (int i = 0; f && i < 1000; i++)
        fputs("not an lmdb file\n", f);
    if (f)
        fclose(f);
    CHECK(store_backup_check(junk, &version) < 0);
    /* The lock: shared with shared, not with exclusive, free once closed
     * (flock locks belong to the open file, so one process shows it). */
    int a = store_lock_dir(dir, false), b = store_lock_dir(dir, false);
    CHECK(a >= 0 && b >= 0);
    CHECK_EQ_INT(store_lock_dir(dir, true), HERALD_ECONFLICT);
    close(a);
    close(b);
    int x = store_lock_dir(dir, true);
    CHECK(x >= 0);
    CHECK_EQ_INT(store_lock_dir(dir, false), HERALD_ECONFLICT);
    close(x);
    remove_dir(strdup(copydir));
    remove_dir(dir);
}

TEST_MAIN(TEST_CASE(test_open_creates_schema), TEST_CASE(test_user_crud),
          TEST_CASE(test_reopen_persists), TEST_CASE(test_shared_between_processes),
          TEST_CASE(test_map_full), TEST_CASE(test_schema_version), TEST_CASE(test_open_errors),
          TEST_CASE(test_backup_and_lock))
