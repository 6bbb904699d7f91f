/* test_store_private.c - per-account XML documents (store_private.c): XEP-0049
 * private elements keyed by (account, namespace, name) with a per-account
 * quota, XEP-0054 vCards, and their removal with the account. Each test
 * opens a fresh environment in its own temporary directory. */
#include <string.h>

#include "errors.h"
#include "store.h"
#include "test.h"

static struct store *open_store(char **dir)
{
    struct store *s = NULL;
    *dir = test_make_dir("herald-test-private");
    CHECK_EQ_INT(store_open(&s, *dir, NULL), 0);
    return s;
}

static void close_store(struct store *s, char *dir)
{
    store_close(s);
    test_remove_dir(dir);
}

static struct store_txn *begin(struct store *s, bool write)
{
    struct store_txn *t = NULL;
    CHECK_EQ_INT(store_txn_begin(s, write, &t), 0);
    return t;
}

#define BIG_QUOTA 100, 1 << 20

static void test_private_round_trip(void)
{
    char *dir;
    struct store *s = open_store(&dir);
    const char *bm = "<storage xmlns='storage:bookmarks'><url name='x' url='http://x'/></storage>";
    struct store_txn *t = begin(s, true);
    CHECK_EQ_INT(store_private_put(t, "a@l", "storage:bookmarks", "storage", bm, strlen(bm),
                                   BIG_QUOTA), 0);
    CHECK_EQ_INT(store_txn_commit(t), 0);

    const char *xml;
    size_t len;
    t = begin(s, false);
    CHECK_EQ_INT(store_private_get(t, "a@l", "storage:bookmarks", "storage", &xml, &len), 0);
    CHECK_EQ_MEM(xml, len, bm, strlen(bm));
    /* Another name, namespace or account is another record. */
    CHECK_EQ_INT(store_private_get(t, "a@l", "storage:bookmarks", "other", &xml, &len),
                 HERALD_ENOTFOUND);
    CHECK_EQ_INT(store_private_get(t, "a@l", "storage:rosternotes", "storage", &xml, &len),
                 HERALD_ENOTFOUND);
    CHECK_EQ_INT(store_private_get(t, "b@l", "storage:bookmarks", "storage", &xml, &len),
                 HERALD_ENOTFOUND);
    /* A private element is not the vCard, nor the other way round. */
    CHECK_EQ_INT(store_vcard_get(t, "a@l", &xml, &len), HERALD_ENOTFOUND);
    store_txn_abort(t);
    close_store(s, dir);
}

static void test_private_overwrite_and_delete(void)
{
    char *dir;
    struct store *s = open_store(&dir);
    const char *v1 = "<p xmlns='x:p'>1</p>", *v2 = "<p xmlns='x:p'>second</p>";
    struct store_txn *t = begin(s, true);
    CHECK_EQ_INT(store_private_put(t, "a@l", "x:p", "p", v1, strlen(v1), BIG_QUOTA), 0);
    CHECK_EQ_INT(store_private_put(t, "a@l", "x:p", "p", v2, strlen(v2), BIG_QUOTA), 0);
    const char *xml;
    size_t len;
    CHECK_EQ_INT(store_private_get(t, "a@l", "x:p", "p", &xml, &len), 0);
    CHECK_EQ_MEM(xml, len, v2, strlen(v2));
    CHECK_EQ_INT(store_private_put(t, "a@l", "x:p", "p", NULL, 0, BIG_QUOTA), 0);
    CHECK_EQ_INT(store_private_get(t, "a@l", "x:p", "p", &xml, &len), HERALD_ENOTFOUND);
    /* Deleting what is absent is no error. */
    CHECK_EQ_INT(store_private_put(t, "a@l", "x:p", "p", NULL, 0, BIG_QUOTA), 0);
    CHECK_EQ_INT(store_txn_commit(t), 0);
    close_store(s, dir);
}

static void test_private_quota(void)
{
    char *dir;
    struct store *s = open_store(&dir);
    struct store_txn *t = begin(s, true);
    const char *x = "0123456789"; /* 10 bytes */
    /* Count: 2 elements at most. */
    CHECK_EQ_INT(store_private_put(t, "a@l", "n:1", "e", x, 10, 2, 1000), 0);
    CHECK_EQ_INT(store_private_put(t, "a@l", "n:2", "e", x, 10, 2, 1000), 0);
    CHECK_EQ_INT(store_private_put(t, "a@l", "n:3", "e", x, 10, 2, 1000), HERALD_EQUOTA);
    /* Replacing one at the bound is no new element. */
    CHECK_EQ_INT(store_private_put(t, "a@l", "n:2", "e", x, 5, 2, 1000), 0);
    /* Another account has its own quota. */
    CHECK_EQ_INT(store_private_put(t, "b@l", "n:3", "e", x, 10, 2, 1000), 0);
    /* Bytes: 15 stored; 20 allowed. */
    CHECK_EQ_INT(store_private_put(t, "a@l", "n:2", "e", x, 10, 2, 20), 0);
    CHECK_EQ_INT(store_private_put(t, "a@l", "n:2", "e", x, 11, 2, 20), HERALD_EQUOTA);
    /* A deletion frees room. */
    CHECK_EQ_INT(store_private_put(t, "a@l", "n:1", "e", NULL, 0, 2, 20), 0);
    CHECK_EQ_INT(store_private_put(t, "a@l", "n:3", "e", x, 10, 2, 20), 0);
    /* The vCard counts for nothing here. */
    CHECK_EQ_INT(store_vcard_put(t, "a@l", x, 10), 0);
    CHECK_EQ_INT(store_private_put(t, "a@l", "n:3", "e", x, 10, 2, 20), 0);
    CHECK_EQ_INT(store_txn_commit(t), 0);
    close_store(s, dir);
}

static void test_key_too_long(void)
{
    char *dir;
    struct store *s = open_store(&dir);
    char ns[600];
    memset(ns, 'n', sizeof(ns) - 1);
    ns[sizeof(ns) - 1] = '\0';
    struct store_txn *t = begin(s, true);
    const char *xml;
    size_t len;
    CHECK_EQ_INT(store_private_put(t, "a@l", ns, "e", "<e/>", 4, BIG_QUOTA), HERALD_ETOOBIG);
    CHECK_EQ_INT(store_private_get(t, "a@l", ns, "e", &xml, &len), HERALD_ENOTFOUND);
    store_txn_abort(t);
    close_store(s, dir);
}

static void test_vcard_and_forget(void)
{
    char *dir;
    struct store *s = open_store(&dir);
    const char *vc = "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>";
    struct store_user u;
    memset(&u, 0, sizeof(u));
    CHECK_EQ_INT(store_user_put(s, "a@l", &u, true), 0);
    CHECK_EQ_INT(store_user_put(s, "b@l", &u, true), 0);
    struct store_txn *t = begin(s, true);
    CHECK_EQ_INT(store_vcard_put(t, "a@l", vc, strlen(vc)), 0);
    CHECK_EQ_INT(store_vcard_put(t, "b@l", vc, strlen(vc)), 0);
    CHECK_EQ_INT(store_private_put(t, "a@l", "x:p", "p", "<p xmlns='x:p'/>", 16, BIG_QUOTA), 0);
    CHECK_EQ_INT(store_txn_commit(t), 0);

    /* Deleting the account takes its documents, and only its own. */
    CHECK_EQ_INT(store_user_del(s, "a@l"), 0);
    const char *xml;
    size_t len;
    t = begin(s, false);
    CHECK_EQ_INT(store_vcard_get(t, "a@l", &xml, &len), HERALD_ENOTFOUND);
    CHECK_EQ_INT(store_private_get(t, "a@l", "x:p", "p", &xml, &len), HERALD_ENOTFOUND);
    CHECK_EQ_INT(store_vcard_get(t, "b@l", &xml, &len), 0);
    CHECK_EQ_MEM(xml, len, vc, strlen(vc));
    store_txn_abort(t);

    /* An empty put deletes the vCard. */
    t = begin(s, true);
    CHECK_EQ_INT(store_vcard_put(t, "b@l", NULL, 0), 0);
    CHECK_EQ_INT(store_vcard_get(t, "b@l", &xml, &len), HERALD_ENOTFOUND);
    CHECK_EQ_INT(store_txn_commit(t), 0);
    close_store(s, dir);
}

static void test_survives_reopen(void)
{
    char *dir;
    struct store *s = open_store(&dir);
    const char *vc = "<vCard xmlns='vcard-temp'><NICKNAME>a</NICKNAME></vCard>";
    struct store_txn *t = begin(s, true);
    CHECK_EQ_INT(store_vcard_put(t, "a@l", vc, strlen(vc)), 0);
    CHECK_EQ_INT(store_txn_commit(t), 0);
    store_close(s);
    s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    const char *xml;
    size_t len;
    t = begin(s, false);
    CHECK_EQ_INT(store_vcard_get(t, "a@l", &xml, &len), 0);
    CHECK_EQ_MEM(xml, len, vc, strlen(vc));
    store_txn_abort(t);
    close_store(s, dir);
}

TEST_MAIN(TEST_CASE(test_private_round_trip), TEST_CASE(test_private_overwrite_and_delete),
          TEST_CASE(test_private_quota), TEST_CASE(test_key_too_long),
          TEST_CASE(test_vcard_and_forget), TEST_CASE(test_survives_reopen))
