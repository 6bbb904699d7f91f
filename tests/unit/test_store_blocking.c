/* test_store_blocking.c - XEP-0191 block lists in the LMDB store
 * (store_blocking.c): put/has/del, per-owner isolation and key order, clear,
 * the owner census the server loads at start, persistence across a reopen,
 * and removal with the account.
 *
 * Every test opens a fresh environment in its own mkdtemp directory under
 * $TMPDIR and removes it afterwards. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "store.h"
#include "test.h"

static struct store_txn *begin(struct store *s, bool write)
{
    struct store_txn *t = NULL;
    CHECK_EQ_INT(store_txn_begin(s, write, &t), 0);
    return t;
}

/* The JIDs of one owner's list, joined by spaces. */
struct joined {
    char text[1024];
};

static int join_cb(void *ud, const char *jid)
{
    struct joined *j = ud;
    size_t l = strlen(j->text);
    snprintf(j->text + l, sizeof(j->text) - l, "%s%s", l ? " " : "", jid);
    return 0;
}

static const char *list_of(struct store_txn *t, const char *owner, struct joined *j)
{
    j->text[0] = '\0';
    CHECK_EQ_INT(store_block_each(t, owner, join_cb, j), 0);
    return j->text;
}

static int census_cb(void *ud, const char *owner, unsigned count)
{
    struct joined *j = ud;
    size_t l = strlen(j->text);
    snprintf(j->text + l, sizeof(j->text) - l, "%s%s=%u", l ? " " : "", owner, count);
    return 0;
}

static void test_put_has_del(void)
{
    char *dir = test_make_dir("herald-test-blocking");
    struct store *s = NULL;
    struct joined j;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    struct store_txn *t = begin(s, true);
    CHECK_EQ_INT(store_block_put(t, "alice@localhost", "bob@localhost"), 0);
    CHECK_EQ_INT(store_block_put(t, "alice@localhost", "evil.example"), 0);
    CHECK_EQ_INT(store_block_put(t, "alice@localhost", "carol@localhost/phone"), 0);
    CHECK_EQ_INT(store_block_put(t, "alice@localhost", "bob@localhost"), 0); /* idempotent */
    CHECK_EQ_INT(store_block_put(t, "alicex@localhost", "zed@localhost"), 0);
    CHECK_EQ_INT(store_block_put(t, "alice@localhost", ""), HERALD_ETOOBIG);
    CHECK_EQ_INT(store_txn_commit(t), 0);

    t = begin(s, false);
    CHECK_EQ_INT(store_block_has(t, "alice@localhost", "bob@localhost"), 1);
    CHECK_EQ_INT(store_block_has(t, "alice@localhost", "bob@localhost/x"), 0);
    CHECK_EQ_INT(store_block_has(t, "alice@localhost", "zed@localhost"), 0);
    CHECK_EQ_INT(store_block_has(t, "bob@localhost", "alice@localhost"), 0);
    /* Key order, and a longer owner sharing a prefix is a different list. */
    CHECK_EQ_STR(list_of(t, "alice@localhost", &j),
                 "bob@localhost carol@localhost/phone evil.example");
    CHECK_EQ_STR(list_of(t, "alicex@localhost", &j), "zed@localhost");
    CHECK_EQ_STR(list_of(t, "nobody@localhost", &j), "");
    j.text[0] = '\0';
    CHECK_EQ_INT(store_block_owners(t, census_cb, &j), 0);
    CHECK_EQ_STR(j.text, "alice@localhost=3 alicex@localhost=1");
    store_txn_abort(t);

    t = begin(s, true);
    CHECK_EQ_INT(store_block_del(t, "alice@localhost", "bob@localhost"), 0);
    CHECK_EQ_INT(store_block_del(t, "alice@localhost", "bob@localhost"), 0); /* absent: fine */
    CHECK_EQ_STR(list_of(t, "alice@localhost", &j), "carol@localhost/phone evil.example");
    CHECK_EQ_INT(store_block_clear(t, "alice@localhost"), 0);
    CHECK_EQ_STR(list_of(t, "alice@localhost", &j), "");
    CHECK_EQ_STR(list_of(t, "alicex@localhost", &j), "zed@localhost");
    CHECK_EQ_INT(store_txn_commit(t), 0);
    store_close(s);
    test_remove_dir(dir);
}

static void test_persists_and_goes_with_account(void)
{
    char *dir = test_make_dir("herald-test-blocking");
    struct store *s = NULL;
    struct store_user u;
    struct joined j;
    memset(&u, 0, sizeof(u));
    u.sha1.iterations = u.sha256.iterations = 4096;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    CHECK_EQ_INT(store_user_put(s, "alice@localhost", &u, true), 0);
    struct store_txn *t = begin(s, true);
    CHECK_EQ_INT(store_block_put(t, "alice@localhost", "bob@localhost"), 0);
    CHECK_EQ_INT(store_block_put(t, "dave@localhost", "bob@localhost"), 0);
    CHECK_EQ_INT(store_txn_commit(t), 0);
    store_close(s);

    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    t = begin(s, false);
    CHECK_EQ_STR(list_of(t, "alice@localhost", &j), "bob@localhost");
    store_txn_abort(t);
    CHECK_EQ_INT(store_user_del(s, "alice@localhost"), 0);
    t = begin(s, false);
    CHECK_EQ_STR(list_of(t, "alice@localhost", &j), "");
    CHECK_EQ_STR(list_of(t, "dave@localhost", &j), "bob@localhost");
    store_txn_abort(t);
    store_close(s);
    test_remove_dir(dir);
}

TEST_MAIN(TEST_CASE(test_put_has_del), TEST_CASE(test_persists_and_goes_with_account))
