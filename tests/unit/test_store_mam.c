/* test_store_mam.c - message archive storage (store_mam.c): id allocation,
 * paging both ways with count/index/complete, `with` filters, id ranges,
 * the byte budget of a page, retention by count and age, preferences, and
 * forgetting an account. Each test uses a fresh environment in its own
 * temporary directory. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "errors.h"
#include "store.h"
#include "test.h"

#define OWNER "alice@localhost"

static struct store *open_store(char **dir)
{
    struct store *s = NULL;
    *dir = test_make_dir("herald-test-mam");
    CHECK_EQ_INT(store_open(&s, *dir, NULL), 0);
    return s;
}

static void close_store(struct store *s, char *dir)
{
    store_close(s);
    test_remove_dir(dir);
}

/* Archives n messages for OWNER with ids base+1 .. base+n; even ones with
 * bob, odd ones with carol/phone; body "<message>i</message>". */
static void fill(struct store *s, unsigned n, uint64_t base, unsigned max_msgs, uint64_t min_id)
{
    struct store_txn *t;
    CHECK_EQ_INT(store_txn_begin(s, true, &t), 0);
    for (unsigned i = 0; i < n; i++) {
        char xml[64];
        int len = snprintf(xml, sizeof(xml), "<message>%u</message>", i);
        const char *with = i % 2 ? "carol@localhost/phone" : "bob@localhost";
        struct store_mam_msg m = {base + 1 + i, i % 2 == 0, with, strlen(with), xml, (size_t)len};
        CHECK_EQ_INT(store_mam_put(t, OWNER, &m, max_msgs, min_id), 0);
    }
    CHECK_EQ_INT(store_txn_commit(t), 0);
}

struct got {
    uint64_t ids[64];
    unsigned n;
};

static int collect(void *ud, const struct store_mam_msg *m)
{
    struct got *g = ud;
    if (g->n < 64)
        g->ids[g->n++] = m->id;
    return 0;
}

static int page(struct store *s, const struct store_mam_query *q, struct store_mam_page *p,
                struct got *g)
{
    struct store_txn *t;
    memset(g, 0, sizeof(*g));
    int rc = store_txn_begin(s, false, &t);
    if (rc == 0) {
        rc = store_mam_page(t, OWNER, q, p, collect, g);
        store_txn_abort(t);
    }
    return rc;
}

static struct store_mam_query all(unsigned max)
{
    struct store_mam_query q = {0, UINT64_MAX, NULL, false, 0, 0, max, SIZE_MAX};
    return q;
}

static void test_ids_unique_and_increasing(void)
{
    char *dir;
    struct store *s = open_store(&dir);
    struct store_txn *t;
    uint64_t a = 0, b = 0, c = 0;
    CHECK_EQ_INT(store_txn_begin(s, true, &t), 0);
    CHECK_EQ_INT(store_mam_next_ids(t, 1000, 2, &a), 0);
    CHECK_EQ_INT(store_mam_next_ids(t, 500, 1, &b), 0); /* the clock went back */
    CHECK_EQ_INT(store_mam_next_ids(t, 5000, 1, &c), 0);
    CHECK_EQ_INT(store_txn_commit(t), 0);
    CHECK_EQ_INT(a, 1000);
    CHECK_EQ_INT(b, 1002);
    CHECK_EQ_INT(c, 5000);
    close_store(s, dir);
}

static void test_forward_and_backward_pages(void)
{
    char *dir;
    struct store *s = open_store(&dir);
    fill(s, 25, 100, 0, 0);
    struct store_mam_page p;
    struct got g;
    struct store_mam_query q = all(10);
    CHECK_EQ_INT(page(s, &q, &p, &g), 0);
    CHECK_EQ_INT(p.count, 25);
    CHECK_EQ_INT(p.n, 10);
    CHECK_EQ_INT(p.index, 0);
    CHECK_EQ_INT(p.first, 101);
    CHECK_EQ_INT(p.last, 110);
    CHECK(!p.complete);
    q.after = p.last;
    CHECK_EQ_INT(page(s, &q, &p, &g), 0);
    CHECK_EQ_INT(p.index, 10);
    q.after = 120;
    CHECK_EQ_INT(page(s, &q, &p, &g), 0);
    CHECK_EQ_INT(p.n, 5);
    CHECK_EQ_INT(g.ids[0], 121);
    CHECK(p.complete);
    /* The last page, then the one before it: each oldest first. */
    q = all(10);
    q.before = UINT64_MAX;
    CHECK_EQ_INT(page(s, &q, &p, &g), 0);
    CHECK_EQ_INT(p.first, 116);
    CHECK_EQ_INT(p.last, 125);
    CHECK_EQ_INT(g.ids[0], 116);
    CHECK_EQ_INT(g.ids[9], 125);
    CHECK_EQ_INT(p.index, 15);
    CHECK(!p.complete);
    q.before = 106;
    CHECK_EQ_INT(page(s, &q, &p, &g), 0);
    CHECK_EQ_INT(p.n, 5);
    CHECK_EQ_INT(p.first, 101);
    CHECK(p.complete);
    /* Unknown anchors. */
    q.before = 99;
    CHECK_EQ_INT(page(s, &q, &p, &g), HERALD_ENOTFOUND);
    q = all(10);
    q.after = 126;
    CHECK_EQ_INT(page(s, &q, &p, &g), HERALD_ENOTFOUND);
    close_store(s, dir);
}

static void test_filters_and_budget(void)
{
    char *dir;
    struct store *s = open_store(&dir);
    fill(s, 10, 0, 0, 0);
    struct store_mam_page p;
    struct got g;
    struct store_mam_query q = all(50);
    q.with = "carol@localhost";
    CHECK_EQ_INT(page(s, &q, &p, &g), 0);
    CHECK_EQ_INT(p.count, 5);
    CHECK_EQ_INT(g.ids[0], 2);
    q.with = "carol@localhost/laptop";
    q.with_full = true;
    CHECK_EQ_INT(page(s, &q, &p, &g), 0);
    CHECK_EQ_INT(p.count, 0);
    CHECK(p.complete);
    q.with = "bob@localhost";
    q.with_full = false;
    q.lo = 3;
    q.hi = 7;
    CHECK_EQ_INT(page(s, &q, &p, &g), 0);
    CHECK_EQ_INT(p.count, 3); /* ids 3, 5, 7 */
    CHECK_EQ_INT(g.ids[2], 7);
    /* "bob@localhostX" is not bob. */
    q = all(50);
    q.with = "bob@localhos";
    CHECK_EQ_INT(page(s, &q, &p, &g), 0);
    CHECK_EQ_INT(p.count, 0);
    /* A byte budget ends the page early but never empties it. */
    q = all(50);
    q.max_bytes = 40; /* two 20-byte messages */
    CHECK_EQ_INT(page(s, &q, &p, &g), 0);
    CHECK_EQ_INT(p.n, 2);
    CHECK(!p.complete);
    q.max_bytes = 1;
    CHECK_EQ_INT(page(s, &q, &p, &g), 0);
    CHECK_EQ_INT(p.n, 1);
    /* max 0: only the count. */
    q = all(0);
    CHECK_EQ_INT(page(s, &q, &p, &g), 0);
    CHECK_EQ_INT(p.n, 0);
    CHECK_EQ_INT(p.count, 10);
    close_store(s, dir);
}

static void test_retention(void)
{
    char *dir;
    struct store *s = open_store(&dir);
    fill(s, 10, 0, 4, 0);
    struct store_txn *t;
    unsigned count = 0;
    CHECK_EQ_INT(store_txn_begin(s, false, &t), 0);
    CHECK_EQ_INT(store_mam_count(t, OWNER, &count), 0);
    store_txn_abort(t);
    CHECK_EQ_INT(count, 4);
    struct store_mam_page p;
    struct got g;
    struct store_mam_query q = all(50);
    CHECK_EQ_INT(page(s, &q, &p, &g), 0);
    CHECK_EQ_INT(p.first, 7);
    /* By age: an insert deletes what is below min_id. */
    fill(s, 1, 100, 0, 100);
    CHECK_EQ_INT(page(s, &q, &p, &g), 0);
    CHECK_EQ_INT(p.count, 1);
    CHECK_EQ_INT(p.first, 101);
    close_store(s, dir);
}

static void test_prefs_and_forget(void)
{
    char *dir;
    struct store *s = open_store(&dir);
    struct store_txn *t;
    struct store_mam_prefs p = {MAM_PREF_ROSTER, "a@x\0b@x", 8, "c@x", 4}, got;
    CHECK_EQ_INT(store_txn_begin(s, true, &t), 0);
    CHECK_EQ_INT(store_mam_prefs_get(t, OWNER, &got), HERALD_ENOTFOUND);
    CHECK_EQ_INT(store_mam_prefs_put(t, OWNER, &p), 0);
    CHECK_EQ_INT(store_mam_prefs_get(t, OWNER, &got), 0);
    CHECK_EQ_INT(got.dflt, MAM_PREF_ROSTER);
    CHECK_EQ_MEM(got.always, got.always_len, "a@x\0b@x", 8);
    CHECK_EQ_MEM(got.never, got.never_len, "c@x", 4);
    CHECK_EQ_INT(store_txn_commit(t), 0);
    fill(s, 3, 0, 0, 0);
    CHECK_EQ_INT(store_user_del(s, OWNER), HERALD_ENOTFOUND);
    struct store_user u;
    memset(&u, 0, sizeof(u));
    CHECK_EQ_INT(store_user_put(s, OWNER, &u, true), 0);
    CHECK_EQ_INT(store_user_del(s, OWNER), 0);
    unsigned count = 1;
    CHECK_EQ_INT(store_txn_begin(s, false, &t), 0);
    CHECK_EQ_INT(store_mam_prefs_get(t, OWNER, &got), HERALD_ENOTFOUND);
    CHECK_EQ_INT(store_mam_count(t, OWNER, &count), 0);
    store_txn_abort(t);
    CHECK_EQ_INT(count, 0);
    struct store_mam_page pg;
    struct got g;
    struct store_mam_query q = all(50);
    CHECK_EQ_INT(page(s, &q, &pg, &g), 0);
    CHECK_EQ_INT(pg.count, 0);
    close_store(s, dir);
}

TEST_MAIN(TEST_CASE(test_ids_unique_and_increasing), TEST_CASE(test_forward_and_backward_pages),
          TEST_CASE(test_filters_and_budget), TEST_CASE(test_retention),
          TEST_CASE(test_prefs_and_forget))
