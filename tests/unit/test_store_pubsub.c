/* test_store_pubsub.c - the pubsub part of the LMDB store (store_pubsub.c):
 * transactions, nodes, items, subscriptions and affiliations.
 *
 * Every test opens a fresh environment in its own mkdtemp directory under
 * $TMPDIR and removes it afterwards. Writes go through one write transaction
 * at a time (LMDB allows a single writer); what a transaction left behind is
 * checked through a fresh read transaction, and where the public interface
 * cannot show it (item-id index entries of a deleted node) by reading the
 * closed environment with LMDB itself. */
#include <dirent.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "store.h"
#include "test.h"

/* ---- helpers --------------------------------------------------------------- */

static char *make_dir(void) { return test_make_dir("herald-test-pubsub"); }

static void remove_dir(char *dir) { test_remove_dir(dir); }

static struct store_txn *begin(struct store *s, bool write)
{
    struct store_txn *t = NULL;
    int rc = store_txn_begin(s, write, &t);
    CHECK_EQ_INT(rc, 0);
    CHECK(t != NULL);
    return rc == 0 ? t : NULL;
}

static void commit(struct store_txn *t)
{
    if (t != NULL)
        CHECK_EQ_INT(store_txn_commit(t), 0);
}

/* Creates a node record with a fresh id; n gets the record as stored. */
static int make_node(struct store_txn *t, const char *name, struct store_node *n, const char *cfg)
{
    memset(n, 0, sizeof(*n));
    int rc = store_node_new_id(t, &n->id);
    if (rc != 0)
        return rc;
    n->created = 1700000000000ull + n->id;
    n->next_seq = 1;
    n->item_count = 0;
    n->config = cfg;
    n->config_len = cfg ? strlen(cfg) : 0;
    return store_node_put(t, name, n);
}

/* Publishes an item with a NUL-terminated id, publisher and payload. */
static int put_item(struct store_txn *t, const char *node, struct store_node *n, const char *id,
                    uint64_t published, const char *payload, uint32_t max, unsigned *evicted)
{
    struct store_item it;
    memset(&it, 0, sizeof(it));
    it.published = published;
    it.id = id;
    it.id_len = strlen(id);
    it.publisher = "alice@localhost/phone";
    it.publisher_len = strlen(it.publisher);
    it.payload = payload;
    it.payload_len = payload ? strlen(payload) : 0;
    return store_item_put(t, node, n, &it, max, evicted, NULL);
}

/* What store_items_newest delivered. */
struct seen {
    char ids[64][32];
    uint64_t seqs[64];
    uint64_t published[64];
    int n;
    int stop_after; /* return 7 from the callback once n reaches it */
};

static int seen_cb(void *ud, const struct store_item *it)
{
    struct seen *s = ud;
    if (s->n < 64) {
        snprintf(s->ids[s->n], sizeof(s->ids[0]), "%.*s", (int)it->id_len, it->id);
        s->seqs[s->n] = it->seq;
        s->published[s->n] = it->published;
    }
    s->n++;
    return (s->stop_after && s->n >= s->stop_after) ? 7 : 0;
}

/* The ids newest-first, joined with ',' ("" for none). */
static const char *newest_ids(struct store_txn *t, uint64_t node_id, uint64_t before, unsigned max,
                              char *out, size_t cap)
{
    struct seen s;
    memset(&s, 0, sizeof(s));
    int rc = store_items_newest(t, node_id, before, max, seen_cb, &s);
    CHECK_EQ_INT(rc, 0);
    out[0] = '\0';
    size_t len = 0;
    for (int i = 0; i < s.n && i < 64; i++)
        len += (size_t)snprintf(out + len, len < cap ? cap - len : 0, "%s%s", i ? "," : "",
                                s.ids[i]);
    return out;
}

/* The same for store_items_oldest. */
static const char *oldest_ids(struct store_txn *t, uint64_t node_id, uint64_t after, unsigned max,
                              char *out, size_t cap)
{
    struct seen s;
    memset(&s, 0, sizeof(s));
    int rc = store_items_oldest(t, node_id, after, max, seen_cb, &s);
    CHECK_EQ_INT(rc, 0);
    out[0] = '\0';
    size_t len = 0;
    for (int i = 0; i < s.n && i < 64; i++)
        len += (size_t)snprintf(out + len, len < cap ? cap - len : 0, "%s%s", i ? "," : "",
                                s.ids[i]);
    return out;
}

static int count_items(struct store_txn *t, uint64_t node_id)
{
    struct seen s;
    memset(&s, 0, sizeof(s));
    int rc = store_items_newest(t, node_id, UINT64_MAX, UINT32_MAX, seen_cb, &s);
    CHECK_EQ_INT(rc, 0);
    return s.n;
}

/* Subscriptions, as "jid|subid|state|options" lines joined with ';'. */
struct subs_seen {
    char text[4096];
    size_t len;
    int n;
    int stop_after;
};

static int subs_cb(void *ud, const struct store_sub *sub)
{
    struct subs_seen *s = ud;
    if (s->len < sizeof(s->text))
        s->len += (size_t)snprintf(s->text + s->len, sizeof(s->text) - s->len, "%s%s|%s|%u|%.*s",
                                   s->n ? ";" : "", sub->jid, sub->subid, sub->state,
                                   (int)(sub->options_len > 64 ? 64 : sub->options_len),
                                   (const char *)sub->options);
    s->n++;
    return (s->stop_after && s->n >= s->stop_after) ? 9 : 0;
}

static const char *subs_text(struct store_txn *t, uint64_t node_id, struct subs_seen *s)
{
    memset(s, 0, sizeof(*s));
    CHECK_EQ_INT(store_subs_each(t, node_id, subs_cb, s), 0);
    return s->text;
}

struct affs_seen {
    char text[4096];
    size_t len;
    int n;
    int stop_after;
};

static int affs_cb(void *ud, const char *jid, uint8_t aff)
{
    struct affs_seen *s = ud;
    if (s->len < sizeof(s->text))
        s->len += (size_t)snprintf(s->text + s->len, sizeof(s->text) - s->len, "%s%s=%u",
                                   s->n ? ";" : "", jid, aff);
    s->n++;
    return (s->stop_after && s->n >= s->stop_after) ? 5 : 0;
}

static const char *affs_text(struct store_txn *t, uint64_t node_id, struct affs_seen *s)
{
    memset(s, 0, sizeof(*s));
    CHECK_EQ_INT(store_affs_each(t, node_id, affs_cb, s), 0);
    return s->text;
}

/* Nodes, as "name#id" joined with ',' */
struct nodes_seen {
    char text[2048];
    size_t len;
    int n;
    int stop_after;
};

static int nodes_cb(void *ud, const char *name, const struct store_node *n)
{
    struct nodes_seen *s = ud;
    if (s->len < sizeof(s->text))
        s->len += (size_t)snprintf(s->text + s->len, sizeof(s->text) - s->len, "%s%s#%llu",
                                   s->n ? "," : "", name, (unsigned long long)n->id);
    s->n++;
    return (s->stop_after && s->n >= s->stop_after) ? 3 : 0;
}

/* Counts the keys of one named database that start with the 8-byte node id,
 * reading the (closed) environment with LMDB itself. -1 on error. */
static long raw_count(const char *dir, const char *db, uint64_t node_id)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    MDB_cursor *c = NULL;
    long n = -1;
    uint8_t pre[8];
    for (int i = 7; i >= 0; i--)
        pre[7 - i] = (uint8_t)(node_id >> (8 * i));
    if (mdb_env_create(&env) != 0)
        return -1;
    mdb_env_set_maxdbs(env, 16);
    if (mdb_env_open(env, dir, MDB_RDONLY, 0600) != 0)
        goto done;
    if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
        goto done;
    if (mdb_dbi_open(txn, db, 0, &dbi) != 0 || mdb_cursor_open(txn, dbi, &c) != 0)
        goto abort;
    n = 0;
    MDB_val k, v;
    for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
        if (k.mv_size >= 8 && memcmp(k.mv_data, pre, 8) == 0)
            n++;
    mdb_cursor_close(c);
abort:
    mdb_txn_abort(txn);
done:
    mdb_env_close(env);
    return n;
}

static bool node_equal(const struct store_node *a, const struct store_node *b)
{
    return a->id == b->id && a->created == b->created && a->next_seq == b->next_seq &&
           a->item_count == b->item_count && a->config_len == b->config_len &&
           (a->config_len == 0 || memcmp(a->config, b->config, a->config_len) == 0);
}

/* ---- transactions ---------------------------------------------------------- */

static void test_txn_commit_and_abort(void)
{
    char *dir = make_dir();
    struct store *s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    if (s == NULL)
        goto done;
    struct store_node n, got;
    struct store_txn *t;

    /* An aborted transaction with a node, items, a subscription and an
     * affiliation leaves nothing behind. */
    uint64_t aborted_id = 0;
    if ((t = begin(s, true)) != NULL) {
        CHECK_EQ_INT(make_node(t, "gone", &n, "cfg"), 0);
        aborted_id = n.id;
        CHECK_EQ_INT(put_item(t, "gone", &n, "i1", 1000, "<p/>", 10, NULL), 0);
        CHECK_EQ_INT(put_item(t, "gone", &n, "i2", 1001, "<p/>", 10, NULL), 0);
        struct store_sub sub = {"bob@localhost", "s1", 2, "o", 1};
        CHECK_EQ_INT(store_sub_put(t, n.id, &sub), 0);
        CHECK_EQ_INT(store_aff_put(t, n.id, "alice@localhost", 1), 0);
        /* Visible inside the transaction itself. */
        CHECK_EQ_INT(store_node_get(t, "gone", &got), 0);
        CHECK_EQ_INT(got.item_count, 2);
        CHECK_EQ_INT(count_items(t, n.id), 2);
        store_txn_abort(t);
    }
    store_txn_abort(NULL); /* harmless */
    if ((t = begin(s, false)) != NULL) {
        CHECK_EQ_INT(store_node_get(t, "gone", &got), HERALD_ENOTFOUND);
        struct store_item it;
        CHECK_EQ_INT(store_item_get(t, aborted_id, "i1", 2, &it), HERALD_ENOTFOUND);
        CHECK_EQ_INT(count_items(t, aborted_id), 0);
        struct subs_seen ss;
        struct affs_seen as;
        CHECK_EQ_STR(subs_text(t, aborted_id, &ss), "");
        CHECK_EQ_INT(ss.n, 0);
        CHECK_EQ_STR(affs_text(t, aborted_id, &as), "");
        CHECK_EQ_INT(as.n, 0);
        struct nodes_seen ns;
        memset(&ns, 0, sizeof(ns));
        CHECK_EQ_INT(store_node_each(t, nodes_cb, &ns), 0);
        CHECK_EQ_INT(ns.n, 0);
        commit(t); /* committing a read snapshot just ends it */
    }

    /* A committed one is visible to the next read transaction. */
    if ((t = begin(s, true)) != NULL) {
        CHECK_EQ_INT(make_node(t, "kept", &n, "cfg"), 0);
        CHECK_EQ_INT(put_item(t, "kept", &n, "i1", 1000, "<p/>", 10, NULL), 0);
        commit(t);
    }
    if ((t = begin(s, false)) != NULL) {
        CHECK_EQ_INT(store_node_get(t, "kept", &got), 0);
        CHECK(node_equal(&got, &n));
        CHECK_EQ_INT(got.item_count, 1);
        store_txn_abort(t);
    }
    /* A read transaction cannot write. */
    if ((t = begin(s, false)) != NULL) {
        uint64_t id = 0;
        CHECK(store_node_new_id(t, &id) < 0);
        CHECK(store_node_put(t, "ro", &n) < 0);
        store_txn_abort(t);
    }
    store_close(s);
done:
    remove_dir(dir);
}

/* ---- nodes ----------------------------------------------------------------- */

static void test_node_ids_never_reused(void)
{
    char *dir = make_dir();
    struct store *s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    if (s == NULL)
        goto done;
    struct store_txn *t;
    struct store_node a, b, got;
    uint64_t ids[5] = {0};
    if ((t = begin(s, true)) != NULL) {
        for (int i = 0; i < 3; i++)
            CHECK_EQ_INT(store_node_new_id(t, &ids[i]), 0);
        CHECK(ids[0] > 0);
        CHECK(ids[1] > ids[0]);
        CHECK(ids[2] > ids[1]);
        CHECK_EQ_INT(make_node(t, "a", &a, NULL), 0);
        CHECK(a.id > ids[2]);
        commit(t);
    }
    /* Deleting the node with the highest id does not hand that id out again. */
    if ((t = begin(s, true)) != NULL) {
        CHECK_EQ_INT(store_node_del(t, "a", a.id), 0);
        commit(t);
    }
    if ((t = begin(s, true)) != NULL) {
        CHECK_EQ_INT(make_node(t, "a", &b, NULL), 0);
        CHECK(b.id > a.id);
        commit(t);
    }
    store_close(s);

    /* Nor after a reopen, with every node deleted. */
    s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    if (s == NULL)
        goto done;
    if ((t = begin(s, true)) != NULL) {
        CHECK_EQ_INT(store_node_get(t, "a", &got), 0);
        CHECK_EQ_INT(got.id, b.id);
        CHECK_EQ_INT(store_node_del(t, "a", b.id), 0);
        commit(t);
    }
    store_close(s);
    s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    if (s == NULL)
        goto done;
    if ((t = begin(s, true)) != NULL) {
        CHECK_EQ_INT(store_node_new_id(t, &ids[3]), 0);
        CHECK(ids[3] > b.id);
        commit(t);
    }
    if ((t = begin(s, true)) != NULL) {
        CHECK_EQ_INT(store_node_new_id(t, &ids[4]), 0);
        CHECK(ids[4] > ids[3]);
        commit(t);
    }
    store_close(s);
done:
    remove_dir(dir);
}

static void test_node_crud(void)
{
    char *dir = make_dir();
    struct store *s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    if (s == NULL)
        goto done;
    struct store_txn *t = begin(s, true);
    if (t == NULL)
        goto close;
    struct store_node n1, n2, n3, got;
    /* A config blob larger than the store's stack buffer, with NUL bytes. */
    size_t biglen = 3000;
    uint8_t *big = malloc(biglen);
    for (size_t i = 0; i < biglen; i++)
        big[i] = (uint8_t)(i * 31);
    CHECK_EQ_INT(make_node(t, "news", &n1, "small-config"), 0);
    CHECK_EQ_INT(make_node(t, "alpha", &n2, NULL), 0);
    memset(&n3, 0, sizeof(n3));
    CHECK_EQ_INT(store_node_new_id(t, &n3.id), 0);
    n3.created = 123;
    n3.next_seq = 77;
    n3.item_count = 0;
    n3.config = big;
    n3.config_len = biglen;
    CHECK_EQ_INT(store_node_put(t, "zeta/with spaces", &n3), 0);

    memset(&got, 0, sizeof(got));
    CHECK_EQ_INT(store_node_get(t, "news", &got), 0);
    CHECK(node_equal(&got, &n1));
    CHECK_EQ_MEM((const char *)got.config, got.config_len, "small-config", strlen("small-config"));
    CHECK_EQ_INT(store_node_get(t, "alpha", &got), 0);
    CHECK(node_equal(&got, &n2));
    CHECK_EQ_INT(got.config_len, 0);
    CHECK_EQ_INT(store_node_get(t, "zeta/with spaces", &got), 0);
    CHECK(node_equal(&got, &n3));
    CHECK_EQ_INT(got.next_seq, 77);
    CHECK_EQ_INT(store_node_get(t, "nope", &got), HERALD_ENOTFOUND);
    CHECK_EQ_INT(store_node_get(t, "News", &got), HERALD_ENOTFOUND); /* bytes, no folding */
    commit(t);

    if ((t = begin(s, true)) == NULL)
        goto close;
    /* Put replaces the record. */
    n1.item_count = 5;
    n1.next_seq = 9;
    n1.config = "other";
    n1.config_len = 5;
    CHECK_EQ_INT(store_node_put(t, "news", &n1), 0);
    CHECK_EQ_INT(store_node_get(t, "news", &got), 0);
    CHECK(node_equal(&got, &n1));

    struct nodes_seen ns;
    memset(&ns, 0, sizeof(ns));
    CHECK_EQ_INT(store_node_each(t, nodes_cb, &ns), 0);
    CHECK_EQ_INT(ns.n, 3);
    char want[256];
    snprintf(want, sizeof(want), "alpha#%llu,news#%llu,zeta/with spaces#%llu",
             (unsigned long long)n2.id, (unsigned long long)n1.id, (unsigned long long)n3.id);
    CHECK_EQ_STR(ns.text, want);
    memset(&ns, 0, sizeof(ns));
    ns.stop_after = 2;
    CHECK_EQ_INT(store_node_each(t, nodes_cb, &ns), 3);
    CHECK_EQ_INT(ns.n, 2);

    CHECK_EQ_INT(store_node_del(t, "news", n1.id), 0);
    CHECK_EQ_INT(store_node_get(t, "news", &got), HERALD_ENOTFOUND);
    CHECK_EQ_INT(store_node_del(t, "news", n1.id), HERALD_ENOTFOUND);
    memset(&ns, 0, sizeof(ns));
    CHECK_EQ_INT(store_node_each(t, nodes_cb, &ns), 0);
    CHECK_EQ_INT(ns.n, 2);
    commit(t);
    free(big);
close:
    store_close(s);
done:
    remove_dir(dir);
}

/* ---- items ----------------------------------------------------------------- */

static void test_item_put_get(void)
{
    char *dir = make_dir();
    struct store *s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    if (s == NULL)
        goto done;
    struct store_txn *t = begin(s, true);
    if (t == NULL)
        goto close;
    struct store_node n, got;
    struct store_item it;
    CHECK_EQ_INT(make_node(t, "n", &n, "cfg"), 0);
    CHECK_EQ_INT(n.next_seq, 1);

    /* An item whose payload holds a NUL byte, and one with no payload. */
    static const char payload[] = "<entry xmlns='urn:x'>a\0b</entry>";
    struct store_item in;
    memset(&in, 0, sizeof(in));
    in.published = 1700000000123ull;
    in.id = "first";
    in.id_len = 5;
    in.publisher = "alice@localhost";
    in.publisher_len = strlen(in.publisher);
    in.payload = payload;
    in.payload_len = sizeof(payload) - 1;
    unsigned ev = 99;
    CHECK_EQ_INT(store_item_put(t, "n", &n, &in, 10, &ev, NULL), 0);
    CHECK_EQ_INT(ev, 0);
    CHECK_EQ_INT(in.seq, 1);
    CHECK_EQ_INT(n.next_seq, 2);
    CHECK_EQ_INT(n.item_count, 1);
    ev = 99;
    CHECK_EQ_INT(put_item(t, "n", &n, "second", 1700000000200ull, NULL, 10, &ev), 0);
    CHECK_EQ_INT(ev, 0);
    CHECK_EQ_INT(n.next_seq, 3);
    CHECK_EQ_INT(n.item_count, 2);
    CHECK_EQ_INT(put_item(t, "n", &n, "third", 1700000000300ull, "<x/>", 10, NULL), 0);
    CHECK_EQ_INT(n.item_count, 3);

    /* The node record in the store follows the in-memory one. */
    CHECK_EQ_INT(store_node_get(t, "n", &got), 0);
    CHECK(node_equal(&got, &n));
    CHECK_EQ_MEM((const char *)got.config, got.config_len, "cfg", 3);

    memset(&it, 0, sizeof(it));
    CHECK_EQ_INT(store_item_get(t, n.id, "first", 5, &it), 0);
    CHECK_EQ_INT(it.seq, 1);
    CHECK_EQ_INT(it.published, 1700000000123ull);
    CHECK_EQ_MEM(it.id, it.id_len, "first", 5);
    CHECK_EQ_MEM(it.publisher, it.publisher_len, "alice@localhost", strlen("alice@localhost"));
    CHECK_EQ_MEM(it.payload, it.payload_len, payload, sizeof(payload) - 1);
    CHECK_EQ_INT(store_item_get(t, n.id, "second", 6, &it), 0);
    CHECK_EQ_INT(it.seq, 2);
    CHECK_EQ_INT(it.payload_len, 0);
    CHECK_EQ_MEM(it.publisher, it.publisher_len, "alice@localhost/phone",
                 strlen("alice@localhost/phone"));
    /* Ids are exact byte strings: a prefix or another length is not found. */
    CHECK_EQ_INT(store_item_get(t, n.id, "firs", 4, &it), HERALD_ENOTFOUND);
    CHECK_EQ_INT(store_item_get(t, n.id, "first", 4, &it), HERALD_ENOTFOUND);
    CHECK_EQ_INT(store_item_get(t, n.id, "firstx", 6, &it), HERALD_ENOTFOUND);
    CHECK_EQ_INT(store_item_get(t, n.id + 1, "first", 5, &it), HERALD_ENOTFOUND);

    char ids[512];
    CHECK_EQ_STR(newest_ids(t, n.id, UINT64_MAX, 100, ids, sizeof(ids)), "third,second,first");
    commit(t);

    /* And in a later read transaction. */
    if ((t = begin(s, false)) != NULL) {
        CHECK_EQ_INT(store_item_get(t, n.id, "third", 5, &it), 0);
        CHECK_EQ_INT(it.seq, 3);
        CHECK_EQ_MEM(it.payload, it.payload_len, "<x/>", 4);
        CHECK_EQ_INT(store_node_get(t, "n", &got), 0);
        CHECK_EQ_INT(got.item_count, 3);
        CHECK_EQ_INT(got.next_seq, 4);
        store_txn_abort(t);
    }
close:
    store_close(s);
done:
    remove_dir(dir);
}

static void test_item_replace_moves_to_newest(void)
{
    char *dir = make_dir();
    struct store *s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    if (s == NULL)
        goto done;
    struct store_txn *t = begin(s, true);
    if (t == NULL)
        goto close;
    struct store_node n, got;
    struct store_item it;
    char ids[512];
    CHECK_EQ_INT(make_node(t, "n", &n, NULL), 0);
    CHECK_EQ_INT(put_item(t, "n", &n, "a", 1, "<a1/>", 10, NULL), 0);
    CHECK_EQ_INT(put_item(t, "n", &n, "b", 2, "<b1/>", 10, NULL), 0);
    CHECK_EQ_INT(put_item(t, "n", &n, "c", 3, "<c1/>", 10, NULL), 0);
    unsigned ev = 99;
    CHECK_EQ_INT(put_item(t, "n", &n, "b", 4, "<b2/>", 10, &ev), 0);
    CHECK_EQ_INT(ev, 0);
    CHECK_EQ_INT(n.item_count, 3);
    CHECK_EQ_INT(n.next_seq, 5);
    CHECK_EQ_STR(newest_ids(t, n.id, UINT64_MAX, 10, ids, sizeof(ids)), "b,c,a");
    CHECK_EQ_INT(count_items(t, n.id), 3);
    CHECK_EQ_INT(store_item_get(t, n.id, "b", 1, &it), 0);
    CHECK_EQ_INT(it.seq, 4);
    CHECK_EQ_INT(it.published, 4);
    CHECK_EQ_MEM(it.payload, it.payload_len, "<b2/>", 5);
    CHECK_EQ_INT(store_node_get(t, "n", &got), 0);
    CHECK(node_equal(&got, &n));
    /* Replacing the newest item again keeps one copy. */
    CHECK_EQ_INT(put_item(t, "n", &n, "b", 5, "<b3/>", 10, NULL), 0);
    CHECK_EQ_INT(put_item(t, "n", &n, "b", 6, "<b4/>", 10, NULL), 0);
    CHECK_EQ_INT(n.item_count, 3);
    CHECK_EQ_STR(newest_ids(t, n.id, UINT64_MAX, 10, ids, sizeof(ids)), "b,c,a");
    CHECK_EQ_INT(store_item_get(t, n.id, "b", 1, &it), 0);
    CHECK_EQ_MEM(it.payload, it.payload_len, "<b4/>", 5);
    commit(t);
    store_close(s);

    /* After a reopen the replaced versions are still gone. */
    s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    if (s == NULL)
        goto done;
    if ((t = begin(s, false)) != NULL) {
        CHECK_EQ_INT(count_items(t, n.id), 3);
        CHECK_EQ_STR(newest_ids(t, n.id, UINT64_MAX, 10, ids, sizeof(ids)), "b,c,a");
        store_txn_abort(t);
    }
close:
    store_close(s);
done:
    remove_dir(dir);
}

static void test_max_items_and_trim(void)
{
    char *dir = make_dir();
    struct store *s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    if (s == NULL)
        goto done;
    struct store_txn *t = begin(s, true);
    if (t == NULL)
        goto close;
    struct store_node n, got;
    struct store_item it;
    char ids[512];
    CHECK_EQ_INT(make_node(t, "n", &n, NULL), 0);
    static const char *names[] = {"i1", "i2", "i3", "i4", "i5"};
    static const unsigned want_ev[] = {0, 0, 0, 1, 1};
    for (int i = 0; i < 5; i++) {
        unsigned ev = 99;
        CHECK_EQ_INT(put_item(t, "n", &n, names[i], 100 + (uint64_t)i, "<p/>", 3, &ev), 0);
        CHECK_EQ_INT(ev, want_ev[i]);
    }
    CHECK_EQ_INT(n.item_count, 3);
    CHECK_EQ_INT(n.next_seq, 6);
    CHECK_EQ_STR(newest_ids(t, n.id, UINT64_MAX, 10, ids, sizeof(ids)), "i5,i4,i3");
    CHECK_EQ_INT(store_item_get(t, n.id, "i1", 2, &it), HERALD_ENOTFOUND);
    CHECK_EQ_INT(store_item_get(t, n.id, "i2", 2, &it), HERALD_ENOTFOUND);
    CHECK_EQ_INT(store_item_get(t, n.id, "i3", 2, &it), 0);
    CHECK_EQ_INT(store_node_get(t, "n", &got), 0);
    CHECK(node_equal(&got, &n));
    commit(t);

    if ((t = begin(s, true)) == NULL)
        goto close;
    /* Replacing an item at the limit evicts nothing. */
    unsigned ev = 99;
    CHECK_EQ_INT(put_item(t, "n", &n, "i3", 200, "<p2/>", 3, &ev), 0);
    CHECK_EQ_INT(ev, 0);
    CHECK_EQ_STR(newest_ids(t, n.id, UINT64_MAX, 10, ids, sizeof(ids)), "i3,i5,i4");
    /* An evicted id published again is a new item. */
    CHECK_EQ_INT(put_item(t, "n", &n, "i1", 201, "<p/>", 3, &ev), 0);
    CHECK_EQ_INT(ev, 1);
    CHECK_EQ_STR(newest_ids(t, n.id, UINT64_MAX, 10, ids, sizeof(ids)), "i1,i3,i5");
    /* A lower limit on the next publish evicts down to it at once. */
    CHECK_EQ_INT(put_item(t, "n", &n, "i6", 202, "<p/>", 1, &ev), 0);
    CHECK_EQ_INT(ev, 3);
    CHECK_EQ_INT(n.item_count, 1);
    CHECK_EQ_STR(newest_ids(t, n.id, UINT64_MAX, 10, ids, sizeof(ids)), "i6");
    CHECK_EQ_INT(store_item_get(t, n.id, "i5", 2, &it), HERALD_ENOTFOUND);
    CHECK_EQ_INT(store_item_get(t, n.id, "i6", 2, &it), 0);
    commit(t);

    if ((t = begin(s, true)) == NULL)
        goto close;
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(put_item(t, "n", &n, names[i], 300 + (uint64_t)i, "<p/>", 100, NULL), 0);
    CHECK_EQ_INT(n.item_count, 6);
    /* store_items_trim: to a larger keep evicts nothing. */
    ev = 99;
    CHECK_EQ_INT(store_items_trim(t, "n", &n, 10, &ev), 0);
    CHECK_EQ_INT(ev, 0);
    CHECK_EQ_INT(n.item_count, 6);
    ev = 99;
    CHECK_EQ_INT(store_items_trim(t, "n", &n, 6, &ev), 0);
    CHECK_EQ_INT(ev, 0);
    ev = 99;
    CHECK_EQ_INT(store_items_trim(t, "n", &n, 2, &ev), 0);
    CHECK_EQ_INT(ev, 4);
    CHECK_EQ_INT(n.item_count, 2);
    CHECK_EQ_STR(newest_ids(t, n.id, UINT64_MAX, 10, ids, sizeof(ids)), "i5,i4");
    CHECK_EQ_INT(store_item_get(t, n.id, "i6", 2, &it), HERALD_ENOTFOUND);
    CHECK_EQ_INT(store_node_get(t, "n", &got), 0);
    CHECK(node_equal(&got, &n));
    /* evicted may be NULL; keep 0 empties the node. */
    CHECK_EQ_INT(store_items_trim(t, "n", &n, 0, NULL), 0);
    CHECK_EQ_INT(n.item_count, 0);
    CHECK_EQ_INT(count_items(t, n.id), 0);
    CHECK_EQ_INT(store_item_get(t, n.id, "i5", 2, &it), HERALD_ENOTFOUND);
    uint64_t seq_before = n.next_seq;
    commit(t);

    if ((t = begin(s, false)) != NULL) {
        CHECK_EQ_INT(store_node_get(t, "n", &got), 0);
        CHECK_EQ_INT(got.item_count, 0);
        CHECK_EQ_INT(got.next_seq, seq_before);
        store_txn_abort(t);
    }
    store_close(s);
    /* No item-id index entry outlives its item. */
    CHECK_EQ_INT(raw_count(dir, "items", n.id), 0);
    CHECK_EQ_INT(raw_count(dir, "item_ids", n.id), 0);
    goto done;
close:
    store_close(s);
done:
    remove_dir(dir);
}

static void test_item_del_and_purge(void)
{
    char *dir = make_dir();
    struct store *s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    if (s == NULL)
        goto done;
    struct store_txn *t = begin(s, true);
    if (t == NULL)
        goto close;
    struct store_node n, got;
    struct store_item it;
    char ids[512];
    CHECK_EQ_INT(make_node(t, "n", &n, NULL), 0);
    CHECK_EQ_INT(put_item(t, "n", &n, "a", 1, "<a/>", 10, NULL), 0);
    CHECK_EQ_INT(put_item(t, "n", &n, "b", 2, "<b/>", 10, NULL), 0);
    CHECK_EQ_INT(put_item(t, "n", &n, "c", 3, "<c/>", 10, NULL), 0);
    commit(t);

    if ((t = begin(s, true)) == NULL)
        goto close;
    CHECK_EQ_INT(store_item_del(t, "n", &n, "b", 1), 0);
    CHECK_EQ_INT(n.item_count, 2);
    CHECK_EQ_INT(store_item_get(t, n.id, "b", 1, &it), HERALD_ENOTFOUND);
    CHECK_EQ_STR(newest_ids(t, n.id, UINT64_MAX, 10, ids, sizeof(ids)), "c,a");
    CHECK_EQ_INT(store_item_del(t, "n", &n, "b", 1), HERALD_ENOTFOUND);
    CHECK_EQ_INT(store_item_del(t, "n", &n, "zz", 2), HERALD_ENOTFOUND);
    CHECK_EQ_INT(n.item_count, 2);
    CHECK_EQ_INT(store_node_get(t, "n", &got), 0);
    CHECK(node_equal(&got, &n));
    /* A deleted id can be published again. */
    CHECK_EQ_INT(put_item(t, "n", &n, "b", 4, "<b2/>", 10, NULL), 0);
    CHECK_EQ_STR(newest_ids(t, n.id, UINT64_MAX, 10, ids, sizeof(ids)), "b,c,a");
    CHECK_EQ_INT(n.item_count, 3);
    commit(t);

    if ((t = begin(s, true)) == NULL)
        goto close;
    uint64_t seq = n.next_seq;
    CHECK_EQ_INT(store_items_purge(t, "n", &n), 0);
    CHECK_EQ_INT(n.item_count, 0);
    CHECK_EQ_INT(n.next_seq, seq); /* sequence numbers are never reused */
    CHECK_EQ_INT(count_items(t, n.id), 0);
    CHECK_EQ_INT(store_item_get(t, n.id, "a", 1, &it), HERALD_ENOTFOUND);
    CHECK_EQ_INT(store_item_get(t, n.id, "b", 1, &it), HERALD_ENOTFOUND);
    CHECK_EQ_INT(store_node_get(t, "n", &got), 0);
    CHECK(node_equal(&got, &n));
    /* Purging an empty node is fine. */
    CHECK_EQ_INT(store_items_purge(t, "n", &n), 0);
    CHECK_EQ_INT(put_item(t, "n", &n, "a", 5, "<a2/>", 10, NULL), 0);
    CHECK_EQ_INT(store_item_get(t, n.id, "a", 1, &it), 0);
    CHECK_EQ_INT(it.seq, seq);
    CHECK_EQ_MEM(it.payload, it.payload_len, "<a2/>", 5);
    CHECK_EQ_INT(n.item_count, 1);
    commit(t);
    store_close(s);
    CHECK_EQ_INT(raw_count(dir, "items", n.id), 1);
    CHECK_EQ_INT(raw_count(dir, "item_ids", n.id), 1);
    goto done;
close:
    store_close(s);
done:
    remove_dir(dir);
}

static void test_items_expire(void)
{
    char *dir = make_dir();
    struct store *s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    if (s == NULL)
        goto done;
    struct store_txn *t = begin(s, true);
    if (t == NULL)
        goto close;
    struct store_node n, empty, got;
    struct store_item it;
    char ids[512];
    unsigned ev;
    CHECK_EQ_INT(make_node(t, "n", &n, NULL), 0);
    CHECK_EQ_INT(make_node(t, "empty", &empty, NULL), 0);
    CHECK_EQ_INT(put_item(t, "n", &n, "t1000", 1000, "<p/>", 100, NULL), 0);
    CHECK_EQ_INT(put_item(t, "n", &n, "t2000", 2000, "<p/>", 100, NULL), 0);
    CHECK_EQ_INT(put_item(t, "n", &n, "t3000", 3000, "<p/>", 100, NULL), 0);
    CHECK_EQ_INT(put_item(t, "n", &n, "t4000", 4000, "<p/>", 100, NULL), 0);
    commit(t);

    /* Nothing older than the cutoff: succeeds, evicts nothing, and the
     * transaction still commits. */
    if ((t = begin(s, true)) == NULL)
        goto close;
    ev = 99;
    CHECK_EQ_INT(store_items_expire(t, "n", &n, 1000, &ev), 0);
    CHECK_EQ_INT(ev, 0);
    CHECK_EQ_INT(n.item_count, 4);
    ev = 99;
    CHECK_EQ_INT(store_items_expire(t, "empty", &empty, 5000, &ev), 0);
    CHECK_EQ_INT(ev, 0);
    CHECK_EQ_INT(empty.item_count, 0);
    commit(t);

    if ((t = begin(s, true)) == NULL)
        goto close;
    /* Strictly before the cutoff: 2500 takes t1000 and t2000 only. */
    ev = 99;
    CHECK_EQ_INT(store_items_expire(t, "n", &n, 2500, &ev), 0);
    CHECK_EQ_INT(ev, 2);
    CHECK_EQ_INT(n.item_count, 2);
    CHECK_EQ_STR(newest_ids(t, n.id, UINT64_MAX, 10, ids, sizeof(ids)), "t4000,t3000");
    CHECK_EQ_INT(store_item_get(t, n.id, "t1000", 5, &it), HERALD_ENOTFOUND);
    CHECK_EQ_INT(store_item_get(t, n.id, "t2000", 5, &it), HERALD_ENOTFOUND);
    /* An item published exactly at the cutoff stays. */
    ev = 99;
    CHECK_EQ_INT(store_items_expire(t, "n", &n, 3000, &ev), 0);
    CHECK_EQ_INT(ev, 0);
    CHECK_EQ_INT(store_item_get(t, n.id, "t3000", 5, &it), 0);
    ev = 99;
    CHECK_EQ_INT(store_items_expire(t, "n", &n, 3001, &ev), 0);
    CHECK_EQ_INT(ev, 1);
    CHECK_EQ_INT(n.item_count, 1);
    CHECK_EQ_INT(store_node_get(t, "n", &got), 0);
    CHECK(node_equal(&got, &n));
    commit(t);

    if ((t = begin(s, true)) == NULL)
        goto close;
    ev = 99;
    CHECK_EQ_INT(store_items_expire(t, "n", &n, UINT64_MAX, &ev), 0);
    CHECK_EQ_INT(ev, 1);
    CHECK_EQ_INT(n.item_count, 0);
    CHECK_EQ_INT(count_items(t, n.id), 0);
    /* And again on the now empty node, evicted may be NULL. */
    CHECK_EQ_INT(store_items_expire(t, "n", &n, UINT64_MAX, NULL), 0);
    commit(t);

    if ((t = begin(s, false)) != NULL) {
        CHECK_EQ_INT(store_node_get(t, "n", &got), 0);
        CHECK_EQ_INT(got.item_count, 0);
        CHECK_EQ_INT(got.next_seq, 5);
        store_txn_abort(t);
    }
    store_close(s);
    CHECK_EQ_INT(raw_count(dir, "item_ids", n.id), 0);
    goto done;
close:
    store_close(s);
done:
    remove_dir(dir);
}

static void test_items_newest_paging(void)
{
    char *dir = make_dir();
    struct store *s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    if (s == NULL)
        goto done;
    struct store_txn *t = begin(s, true);
    if (t == NULL)
        goto close;
    struct store_node a, b, c, d;
    char ids[512], id[16];
    /* Four nodes with consecutive ids: a and c hold items, b sits between
     * them empty, d is the newest node and empty. */
    CHECK_EQ_INT(make_node(t, "a", &a, NULL), 0);
    CHECK_EQ_INT(make_node(t, "b", &b, NULL), 0);
    CHECK_EQ_INT(make_node(t, "c", &c, NULL), 0);
    CHECK_EQ_INT(make_node(t, "d", &d, NULL), 0);
    for (int i = 1; i <= 10; i++) {
        snprintf(id, sizeof(id), "a%d", i);
        CHECK_EQ_INT(put_item(t, "a", &a, id, (uint64_t)i, "<p/>", 100, NULL), 0);
        snprintf(id, sizeof(id), "c%d", i);
        CHECK_EQ_INT(put_item(t, "c", &c, id, (uint64_t)i, "<p/>", 100, NULL), 0);
    }
    commit(t);

    if ((t = begin(s, false)) == NULL)
        goto close;
    CHECK_EQ_STR(newest_ids(t, a.id, UINT64_MAX, 3, ids, sizeof(ids)), "a10,a9,a8");
    CHECK_EQ_STR(newest_ids(t, a.id, 8, 3, ids, sizeof(ids)), "a7,a6,a5");
    CHECK_EQ_STR(newest_ids(t, a.id, 5, 3, ids, sizeof(ids)), "a4,a3,a2");
    CHECK_EQ_STR(newest_ids(t, a.id, 2, 3, ids, sizeof(ids)), "a1");
    CHECK_EQ_STR(newest_ids(t, a.id, 1, 3, ids, sizeof(ids)), "");
    CHECK_EQ_STR(newest_ids(t, a.id, 0, 3, ids, sizeof(ids)), "");
    CHECK_EQ_STR(newest_ids(t, a.id, 1000, 2, ids, sizeof(ids)), "a10,a9");
    CHECK_EQ_STR(newest_ids(t, a.id, 11, 1, ids, sizeof(ids)), "a10");
    CHECK_EQ_STR(newest_ids(t, a.id, 10, 1, ids, sizeof(ids)), "a9");
    CHECK_EQ_STR(newest_ids(t, a.id, UINT64_MAX, 0, ids, sizeof(ids)), "");
    CHECK_EQ_STR(newest_ids(t, a.id, UINT64_MAX, 100, ids, sizeof(ids)),
                 "a10,a9,a8,a7,a6,a5,a4,a3,a2,a1");
    /* Never another node's items, whichever side of it they are. */
    CHECK_EQ_STR(newest_ids(t, b.id, UINT64_MAX, 100, ids, sizeof(ids)), "");
    CHECK_EQ_STR(newest_ids(t, b.id, 5, 100, ids, sizeof(ids)), "");
    CHECK_EQ_STR(newest_ids(t, c.id, UINT64_MAX, 2, ids, sizeof(ids)), "c10,c9");
    CHECK_EQ_STR(newest_ids(t, c.id, 3, 100, ids, sizeof(ids)), "c2,c1");
    CHECK_EQ_STR(newest_ids(t, d.id, UINT64_MAX, 100, ids, sizeof(ids)), "");
    CHECK_EQ_STR(newest_ids(t, d.id + 100, UINT64_MAX, 100, ids, sizeof(ids)), "");
    CHECK_EQ_STR(newest_ids(t, 0, UINT64_MAX, 100, ids, sizeof(ids)), "");

    /* Sequence numbers and published times come with each item. */
    struct seen sn;
    memset(&sn, 0, sizeof(sn));
    CHECK_EQ_INT(store_items_newest(t, c.id, UINT64_MAX, 3, seen_cb, &sn), 0);
    CHECK_EQ_INT(sn.n, 3);
    CHECK_EQ_INT(sn.seqs[0], 10);
    CHECK_EQ_INT(sn.seqs[2], 8);
    CHECK_EQ_INT(sn.published[1], 9);

    /* A nonzero return from the callback stops the walk. */
    memset(&sn, 0, sizeof(sn));
    sn.stop_after = 2;
    int rc = store_items_newest(t, a.id, UINT64_MAX, 100, seen_cb, &sn);
    CHECK(rc >= 0);
    CHECK_EQ_INT(sn.n, 2);
    CHECK_EQ_STR(sn.ids[1], "a9");
    memset(&sn, 0, sizeof(sn));
    sn.stop_after = 1;
    CHECK(store_items_newest(t, a.id, 4, 100, seen_cb, &sn) >= 0);
    CHECK_EQ_INT(sn.n, 1);
    CHECK_EQ_STR(sn.ids[0], "a3");
    store_txn_abort(t);

    /* Paging over a node with holes (deleted and replaced items). */
    if ((t = begin(s, true)) == NULL)
        goto close;
    CHECK_EQ_INT(store_item_del(t, "a", &a, "a9", 2), 0);
    CHECK_EQ_INT(store_item_del(t, "a", &a, "a8", 2), 0);
    CHECK_EQ_INT(put_item(t, "a", &a, "a2", 11, "<p/>", 100, NULL), 0); /* seq 11 */
    CHECK_EQ_STR(newest_ids(t, a.id, UINT64_MAX, 3, ids, sizeof(ids)), "a2,a10,a7");
    CHECK_EQ_STR(newest_ids(t, a.id, 10, 3, ids, sizeof(ids)), "a7,a6,a5");
    CHECK_EQ_STR(newest_ids(t, a.id, 4, 3, ids, sizeof(ids)), "a3,a1");
    commit(t);
close:
    store_close(s);
done:
    remove_dir(dir);
}

static void test_items_oldest_paging(void)
{
    char *dir = make_dir();
    struct store *s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    if (s == NULL)
        goto done;
    struct store_txn *t = begin(s, true);
    if (t == NULL)
        goto close;
    struct store_node a, b, c;
    char ids[512], id[16];
    CHECK_EQ_INT(make_node(t, "a", &a, NULL), 0);
    CHECK_EQ_INT(make_node(t, "b", &b, NULL), 0);
    CHECK_EQ_INT(make_node(t, "c", &c, NULL), 0);
    for (int i = 1; i <= 6; i++) {
        snprintf(id, sizeof(id), "a%d", i);
        CHECK_EQ_INT(put_item(t, "a", &a, id, (uint64_t)i, "<p/>", 100, NULL), 0);
        snprintf(id, sizeof(id), "c%d", i);
        CHECK_EQ_INT(put_item(t, "c", &c, id, (uint64_t)i, "<p/>", 100, NULL), 0);
    }
    commit(t);
    if ((t = begin(s, false)) == NULL)
        goto close;
    CHECK_EQ_STR(oldest_ids(t, a.id, 0, 2, ids, sizeof(ids)), "a1,a2");
    CHECK_EQ_STR(oldest_ids(t, a.id, 2, 2, ids, sizeof(ids)), "a3,a4");
    CHECK_EQ_STR(oldest_ids(t, a.id, 4, 10, ids, sizeof(ids)), "a5,a6");
    CHECK_EQ_STR(oldest_ids(t, a.id, 6, 10, ids, sizeof(ids)), "");
    CHECK_EQ_STR(oldest_ids(t, a.id, 1000, 10, ids, sizeof(ids)), "");
    CHECK_EQ_STR(oldest_ids(t, a.id, UINT64_MAX, 10, ids, sizeof(ids)), "");
    CHECK_EQ_STR(oldest_ids(t, a.id, 0, 0, ids, sizeof(ids)), "");
    CHECK_EQ_STR(oldest_ids(t, b.id, 0, 10, ids, sizeof(ids)), "");
    CHECK_EQ_STR(oldest_ids(t, c.id, 3, 10, ids, sizeof(ids)), "c4,c5,c6");
    CHECK_EQ_STR(oldest_ids(t, c.id + 1, 0, 10, ids, sizeof(ids)), "");
    struct seen sn;
    memset(&sn, 0, sizeof(sn));
    sn.stop_after = 2;
    CHECK(store_items_oldest(t, c.id, 0, 100, seen_cb, &sn) >= 0);
    CHECK_EQ_INT(sn.n, 2);
    CHECK_EQ_STR(sn.ids[1], "c2");
    CHECK_EQ_INT(sn.seqs[1], 2);
    store_txn_abort(t);
close:
    store_close(s);
done:
    remove_dir(dir);
}

static void test_items_separate_per_node(void)
{
    char *dir = make_dir();
    struct store *s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    if (s == NULL)
        goto done;
    struct store_txn *t = begin(s, true);
    if (t == NULL)
        goto close;
    struct store_node a, b;
    struct store_item it;
    CHECK_EQ_INT(make_node(t, "a", &a, NULL), 0);
    CHECK_EQ_INT(make_node(t, "b", &b, NULL), 0);
    /* The same item id in two nodes is two items. */
    CHECK_EQ_INT(put_item(t, "a", &a, "same", 1, "<in-a/>", 10, NULL), 0);
    CHECK_EQ_INT(put_item(t, "b", &b, "same", 2, "<in-b/>", 10, NULL), 0);
    CHECK_EQ_INT(store_item_get(t, a.id, "same", 4, &it), 0);
    CHECK_EQ_MEM(it.payload, it.payload_len, "<in-a/>", 7);
    CHECK_EQ_INT(store_item_get(t, b.id, "same", 4, &it), 0);
    CHECK_EQ_MEM(it.payload, it.payload_len, "<in-b/>", 7);
    /* Trimming, purging and deleting in one leaves the other alone. */
    CHECK_EQ_INT(store_items_trim(t, "a", &a, 0, NULL), 0);
    CHECK_EQ_INT(store_item_get(t, b.id, "same", 4, &it), 0);
    CHECK_EQ_INT(put_item(t, "a", &a, "same", 3, "<in-a2/>", 10, NULL), 0);
    CHECK_EQ_INT(store_items_purge(t, "b", &b), 0);
    CHECK_EQ_INT(store_item_get(t, a.id, "same", 4, &it), 0);
    CHECK_EQ_MEM(it.payload, it.payload_len, "<in-a2/>", 8);
    CHECK_EQ_INT(put_item(t, "b", &b, "same", 4, "<in-b2/>", 10, NULL), 0);
    CHECK_EQ_INT(store_item_del(t, "a", &a, "same", 4), 0);
    CHECK_EQ_INT(store_item_get(t, b.id, "same", 4, &it), 0);
    CHECK_EQ_MEM(it.payload, it.payload_len, "<in-b2/>", 8);
    CHECK_EQ_INT(store_items_expire(t, "b", &b, UINT64_MAX, NULL), 0);
    CHECK_EQ_INT(count_items(t, b.id), 0);
    CHECK_EQ_INT(put_item(t, "a", &a, "x", 5, "<x/>", 10, NULL), 0);
    CHECK_EQ_INT(count_items(t, a.id), 1);
    commit(t);
close:
    store_close(s);
done:
    remove_dir(dir);
}

/* ---- subscriptions and affiliations ---------------------------------------- */

static void test_subscriptions(void)
{
    char *dir = make_dir();
    struct store *s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    if (s == NULL)
        goto done;
    struct store_txn *t = begin(s, true);
    if (t == NULL)
        goto close;
    struct store_node a, b;
    struct subs_seen ss;
    CHECK_EQ_INT(make_node(t, "a", &a, NULL), 0);
    CHECK_EQ_INT(make_node(t, "b", &b, NULL), 0);
    CHECK_EQ_STR(subs_text(t, a.id, &ss), "");

    struct store_sub s1 = {"bob@localhost", "s1", 1, "opt1", 4};
    struct store_sub s2 = {"bob@localhost", "s2", 2, "opt2", 4};
    struct store_sub s3 = {"alice@localhost/res", "x", 3, NULL, 0};
    struct store_sub s4 = {"carol@localhost", "", 1, "o", 1};
    CHECK_EQ_INT(store_sub_put(t, a.id, &s1), 0);
    CHECK_EQ_INT(store_sub_put(t, a.id, &s2), 0);
    CHECK_EQ_INT(store_sub_put(t, a.id, &s3), 0);
    CHECK_EQ_INT(store_sub_put(t, a.id, &s4), 0);
    CHECK_EQ_INT(store_sub_put(t, b.id, &s1), 0);
    CHECK_EQ_STR(subs_text(t, a.id, &ss),
                 "alice@localhost/res|x|3|;bob@localhost|s1|1|opt1;bob@localhost|s2|2|opt2;"
                 "carol@localhost||1|o");
    CHECK_EQ_INT(ss.n, 4);
    CHECK_EQ_STR(subs_text(t, b.id, &ss), "bob@localhost|s1|1|opt1");

    /* The same (node, jid, subid) twice: one record, the newer one. */
    struct store_sub s1b = {"bob@localhost", "s1", 5, "changed", 7};
    CHECK_EQ_INT(store_sub_put(t, a.id, &s1b), 0);
    CHECK_EQ_INT(store_sub_put(t, a.id, &s1b), 0);
    CHECK_EQ_STR(subs_text(t, a.id, &ss),
                 "alice@localhost/res|x|3|;bob@localhost|s1|5|changed;bob@localhost|s2|2|opt2;"
                 "carol@localhost||1|o");
    CHECK_EQ_INT(ss.n, 4);
    CHECK_EQ_STR(subs_text(t, b.id, &ss), "bob@localhost|s1|1|opt1");

    /* Options larger than the store's stack buffer. */
    char bigopt[2000];
    memset(bigopt, 'o', sizeof(bigopt));
    struct store_sub s5 = {"dave@localhost", "d", 4, bigopt, sizeof(bigopt)};
    CHECK_EQ_INT(store_sub_put(t, b.id, &s5), 0);
    char want[256];
    snprintf(want, sizeof(want), "bob@localhost|s1|1|opt1;dave@localhost|d|4|%.64s", bigopt);
    CHECK_EQ_STR(subs_text(t, b.id, &ss), want);
    CHECK_EQ_INT(ss.n, 2);
    commit(t);

    if ((t = begin(s, true)) == NULL)
        goto close;
    memset(&ss, 0, sizeof(ss));
    ss.stop_after = 2;
    CHECK_EQ_INT(store_subs_each(t, a.id, subs_cb, &ss), 9);
    CHECK_EQ_INT(ss.n, 2);

    CHECK_EQ_INT(store_sub_del(t, a.id, "bob@localhost", "s1"), 0);
    CHECK_EQ_INT(store_sub_del(t, a.id, "bob@localhost", "s1"), HERALD_ENOTFOUND);
    CHECK_EQ_INT(store_sub_del(t, a.id, "bob@localhost", "s9"), HERALD_ENOTFOUND);
    CHECK_EQ_INT(store_sub_del(t, a.id, "bob@localhost", "s"), HERALD_ENOTFOUND);
    CHECK_EQ_INT(store_sub_del(t, a.id, "carol@localhost", ""), 0);
    CHECK_EQ_STR(subs_text(t, a.id, &ss), "alice@localhost/res|x|3|;bob@localhost|s2|2|opt2");
    /* b's copy of the same key is untouched. */
    memset(&ss, 0, sizeof(ss));
    CHECK_EQ_INT(store_subs_each(t, b.id, subs_cb, &ss), 0);
    CHECK_EQ_INT(ss.n, 2);
    commit(t);

    if ((t = begin(s, false)) != NULL) {
        CHECK_EQ_STR(subs_text(t, a.id, &ss), "alice@localhost/res|x|3|;bob@localhost|s2|2|opt2");
        store_txn_abort(t);
    }
close:
    store_close(s);
done:
    remove_dir(dir);
}

static void test_affiliations(void)
{
    char *dir = make_dir();
    struct store *s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    if (s == NULL)
        goto done;
    struct store_txn *t = begin(s, true);
    if (t == NULL)
        goto close;
    struct store_node a, b;
    struct affs_seen as;
    CHECK_EQ_INT(make_node(t, "a", &a, NULL), 0);
    CHECK_EQ_INT(make_node(t, "b", &b, NULL), 0);
    CHECK_EQ_STR(affs_text(t, a.id, &as), "");
    CHECK_EQ_INT(store_aff_put(t, a.id, "owner@localhost", 1), 0);
    CHECK_EQ_INT(store_aff_put(t, a.id, "pub@localhost", 2), 0);
    CHECK_EQ_INT(store_aff_put(t, a.id, "bad@localhost", 5), 0);
    CHECK_EQ_INT(store_aff_put(t, b.id, "owner@localhost", 3), 0);
    CHECK_EQ_STR(affs_text(t, a.id, &as), "bad@localhost=5;owner@localhost=1;pub@localhost=2");
    CHECK_EQ_STR(affs_text(t, b.id, &as), "owner@localhost=3");
    /* Same key again: one record with the new value. */
    CHECK_EQ_INT(store_aff_put(t, a.id, "pub@localhost", 4), 0);
    CHECK_EQ_INT(store_aff_put(t, a.id, "pub@localhost", 4), 0);
    CHECK_EQ_STR(affs_text(t, a.id, &as), "bad@localhost=5;owner@localhost=1;pub@localhost=4");
    CHECK_EQ_INT(as.n, 3);
    /* 0 deletes; deleting a missing record is not an error. */
    CHECK_EQ_INT(store_aff_put(t, a.id, "bad@localhost", 0), 0);
    CHECK_EQ_INT(store_aff_put(t, a.id, "bad@localhost", 0), 0);
    CHECK_EQ_INT(store_aff_put(t, a.id, "never@localhost", 0), 0);
    CHECK_EQ_STR(affs_text(t, a.id, &as), "owner@localhost=1;pub@localhost=4");
    CHECK_EQ_STR(affs_text(t, b.id, &as), "owner@localhost=3");
    memset(&as, 0, sizeof(as));
    as.stop_after = 1;
    CHECK_EQ_INT(store_affs_each(t, a.id, affs_cb, &as), 5);
    CHECK_EQ_INT(as.n, 1);
    commit(t);
    if ((t = begin(s, false)) != NULL) {
        CHECK_EQ_STR(affs_text(t, a.id, &as), "owner@localhost=1;pub@localhost=4");
        store_txn_abort(t);
    }
close:
    store_close(s);
done:
    remove_dir(dir);
}

/* ---- node deletion --------------------------------------------------------- */

/* Fills node name with 3 items, 2 subscriptions and 2 affiliations. */
static void fill_node(struct store_txn *t, const char *name, struct store_node *n, const char *tag)
{
    char id[32];
    for (int i = 1; i <= 3; i++) {
        snprintf(id, sizeof(id), "%s-item%d", tag, i);
        CHECK_EQ_INT(put_item(t, name, n, id, (uint64_t)i, tag, 10, NULL), 0);
    }
    struct store_sub s1 = {"bob@localhost", tag, 1, "o", 1};
    struct store_sub s2 = {"carol@localhost", tag, 2, NULL, 0};
    CHECK_EQ_INT(store_sub_put(t, n->id, &s1), 0);
    CHECK_EQ_INT(store_sub_put(t, n->id, &s2), 0);
    CHECK_EQ_INT(store_aff_put(t, n->id, "owner@localhost", 1), 0);
    CHECK_EQ_INT(store_aff_put(t, n->id, "pub@localhost", 2), 0);
}

static void test_node_delete_removes_everything(void)
{
    char *dir = make_dir();
    struct store *s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    if (s == NULL)
        goto done;
    struct store_txn *t = begin(s, true);
    if (t == NULL)
        goto close;
    struct store_node a, b, c, a2, got;
    struct store_item it;
    struct subs_seen ss;
    struct affs_seen as;
    char ids[512];
    /* b's id sits between a's and c's, so its records have neighbours on
     * both sides in every database; deleting b must touch neither. */
    CHECK_EQ_INT(make_node(t, "a", &a, "cfg-a"), 0);
    CHECK_EQ_INT(make_node(t, "b", &b, "cfg-b"), 0);
    CHECK_EQ_INT(make_node(t, "c", &c, "cfg-c"), 0);
    fill_node(t, "a", &a, "A");
    fill_node(t, "b", &b, "B");
    fill_node(t, "c", &c, "C");
    commit(t);

    if ((t = begin(s, true)) == NULL)
        goto close;
    CHECK_EQ_INT(store_node_del(t, "b", b.id), 0);
    CHECK_EQ_INT(store_node_get(t, "b", &got), HERALD_ENOTFOUND);
    CHECK_EQ_INT(count_items(t, b.id), 0);
    CHECK_EQ_INT(store_item_get(t, b.id, "B-item1", 7, &it), HERALD_ENOTFOUND);
    CHECK_EQ_STR(subs_text(t, b.id, &ss), "");
    CHECK_EQ_STR(affs_text(t, b.id, &as), "");
    /* The neighbours on both sides are intact. */
    CHECK_EQ_STR(newest_ids(t, a.id, UINT64_MAX, 10, ids, sizeof(ids)), "A-item3,A-item2,A-item1");
    CHECK_EQ_STR(newest_ids(t, c.id, UINT64_MAX, 10, ids, sizeof(ids)), "C-item3,C-item2,C-item1");
    CHECK_EQ_INT(store_item_get(t, a.id, "A-item1", 7, &it), 0);
    CHECK_EQ_INT(store_item_get(t, c.id, "C-item1", 7, &it), 0);
    CHECK_EQ_STR(subs_text(t, a.id, &ss), "bob@localhost|A|1|o;carol@localhost|A|2|");
    CHECK_EQ_STR(subs_text(t, c.id, &ss), "bob@localhost|C|1|o;carol@localhost|C|2|");
    CHECK_EQ_STR(affs_text(t, a.id, &as), "owner@localhost=1;pub@localhost=2");
    CHECK_EQ_STR(affs_text(t, c.id, &as), "owner@localhost=1;pub@localhost=2");
    CHECK_EQ_INT(store_node_get(t, "a", &got), 0);
    CHECK(node_equal(&got, &a));
    CHECK_EQ_INT(store_node_get(t, "c", &got), 0);
    CHECK(node_equal(&got, &c));
    commit(t);

    /* A new node of the same name gets a new id and none of the old data. */
    if ((t = begin(s, true)) == NULL)
        goto close;
    CHECK_EQ_INT(make_node(t, "b", &a2, NULL), 0);
    CHECK(a2.id > c.id);
    CHECK_EQ_INT(count_items(t, a2.id), 0);
    CHECK_EQ_INT(store_item_get(t, a2.id, "B-item1", 7, &it), HERALD_ENOTFOUND);
    CHECK_EQ_STR(subs_text(t, a2.id, &ss), "");
    CHECK_EQ_STR(affs_text(t, a2.id, &as), "");
    CHECK_EQ_INT(put_item(t, "b", &a2, "B-item2", 50, "<new/>", 10, NULL), 0);
    CHECK_EQ_INT(a2.item_count, 1);
    CHECK_EQ_STR(newest_ids(t, a2.id, UINT64_MAX, 10, ids, sizeof(ids)), "B-item2");
    CHECK_EQ_INT(store_item_get(t, a2.id, "B-item2", 7, &it), 0);
    CHECK_EQ_MEM(it.payload, it.payload_len, "<new/>", 6);
    commit(t);
    store_close(s);
    s = NULL;

    /* Underneath: every record of the old id is gone, the others remain. */
    static const char *const dbs[] = {"items", "item_ids", "subs", "affs"};
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(raw_count(dir, dbs[i], b.id), 0);
        CHECK_EQ_INT(raw_count(dir, dbs[i], a.id), i < 2 ? 3 : 2);
        CHECK_EQ_INT(raw_count(dir, dbs[i], c.id), i < 2 ? 3 : 2);
        CHECK_EQ_INT(raw_count(dir, dbs[i], a2.id), i < 2 ? 1 : 0);
    }
    goto done;
close:
    store_close(s);
done:
    remove_dir(dir);
}

/* ---- persistence ----------------------------------------------------------- */

static void test_reopen_persists(void)
{
    char *dir = make_dir();
    struct store *s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    if (s == NULL)
        goto done;
    struct store_txn *t = begin(s, true);
    struct store_node a, b, got;
    struct store_item it;
    struct subs_seen ss;
    struct affs_seen as;
    char ids[512];
    if (t == NULL)
        goto close;
    CHECK_EQ_INT(make_node(t, "a", &a, "config-a"), 0);
    CHECK_EQ_INT(make_node(t, "b", &b, "config-b"), 0);
    fill_node(t, "a", &a, "A");
    fill_node(t, "b", &b, "B");
    commit(t);
    store_close(s);

    s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    if (s == NULL)
        goto done;
    if ((t = begin(s, false)) == NULL)
        goto close;
    CHECK_EQ_INT(store_node_get(t, "a", &got), 0);
    CHECK(node_equal(&got, &a));
    CHECK_EQ_MEM((const char *)got.config, got.config_len, "config-a", 8);
    CHECK_EQ_INT(got.item_count, 3);
    CHECK_EQ_INT(got.next_seq, 4);
    CHECK_EQ_INT(store_node_get(t, "b", &got), 0);
    CHECK(node_equal(&got, &b));
    CHECK_EQ_STR(newest_ids(t, a.id, UINT64_MAX, 10, ids, sizeof(ids)), "A-item3,A-item2,A-item1");
    CHECK_EQ_STR(newest_ids(t, b.id, UINT64_MAX, 10, ids, sizeof(ids)), "B-item3,B-item2,B-item1");
    CHECK_EQ_INT(store_item_get(t, b.id, "B-item2", 7, &it), 0);
    CHECK_EQ_INT(it.seq, 2);
    CHECK_EQ_INT(it.published, 2);
    CHECK_EQ_MEM(it.payload, it.payload_len, "B", 1);
    CHECK_EQ_STR(subs_text(t, a.id, &ss), "bob@localhost|A|1|o;carol@localhost|A|2|");
    CHECK_EQ_STR(affs_text(t, b.id, &as), "owner@localhost=1;pub@localhost=2");
    store_txn_abort(t);

    /* Deletions persist too. */
    if ((t = begin(s, true)) == NULL)
        goto close;
    CHECK_EQ_INT(store_node_get(t, "a", &got), 0);
    CHECK_EQ_INT(store_item_del(t, "a", &got, "A-item2", 7), 0);
    CHECK_EQ_INT(store_sub_del(t, a.id, "bob@localhost", "A"), 0);
    CHECK_EQ_INT(store_aff_put(t, a.id, "pub@localhost", 0), 0);
    CHECK_EQ_INT(store_node_del(t, "b", b.id), 0);
    commit(t);
    store_close(s);

    s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    if (s == NULL)
        goto done;
    if ((t = begin(s, false)) == NULL)
        goto close;
    CHECK_EQ_INT(store_node_get(t, "a", &got), 0);
    CHECK_EQ_INT(got.item_count, 2);
    CHECK_EQ_STR(newest_ids(t, a.id, UINT64_MAX, 10, ids, sizeof(ids)), "A-item3,A-item1");
    CHECK_EQ_STR(subs_text(t, a.id, &ss), "carol@localhost|A|2|");
    CHECK_EQ_STR(affs_text(t, a.id, &as), "owner@localhost=1");
    CHECK_EQ_INT(store_node_get(t, "b", &got), HERALD_ENOTFOUND);
    CHECK_EQ_INT(count_items(t, b.id), 0);
    CHECK_EQ_STR(subs_text(t, b.id, &ss), "");
    store_txn_abort(t);
close:
    store_close(s);
done:
    remove_dir(dir);
}

/* ---- limits ---------------------------------------------------------------- */

static void test_too_long_keys(void)
{
    char *dir = make_dir();
    struct store *s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    if (s == NULL)
        goto done;
    struct store_txn *t = begin(s, true);
    if (t == NULL)
        goto close;
    struct store_node n, got;
    struct store_item it;
    struct subs_seen ss;
    struct affs_seen as;
    char big[601];
    memset(big, 'x', 600);
    big[600] = '\0';
    CHECK_EQ_INT(make_node(t, "n", &n, NULL), 0);
    CHECK_EQ_INT(put_item(t, "n", &n, "ok", 1, "<p/>", 10, NULL), 0);
    struct store_node before = n;

    /* A 600-byte item id: an error, nothing written, n untouched. */
    unsigned ev = 99;
    int rc = put_item(t, "n", &n, big, 2, "<p/>", 10, &ev);
    CHECK(rc < 0);
    CHECK_EQ_INT(rc, HERALD_ETOOBIG);
    CHECK(node_equal(&n, &before));
    CHECK(store_item_get(t, n.id, big, 600, &it) < 0);
    CHECK(store_item_del(t, "n", &n, big, 600) < 0);
    CHECK(node_equal(&n, &before));
    CHECK_EQ_INT(count_items(t, n.id), 1);

    /* The longest id that fits: 511 - 8 bytes of node id prefix. */
    big[503] = '\0';
    CHECK_EQ_INT(put_item(t, "n", &n, big, 3, "<p/>", 10, NULL), 0);
    CHECK_EQ_INT(store_item_get(t, n.id, big, 503, &it), 0);
    CHECK_EQ_MEM(it.id, it.id_len, big, 503);
    CHECK_EQ_INT(store_item_del(t, "n", &n, big, 503), 0);
    big[503] = 'x';
    big[504] = '\0';
    CHECK(put_item(t, "n", &n, big, 4, "<p/>", 10, NULL) < 0);
    big[504] = 'x';

    /* A long publisher is a value, not a key: fine. */
    struct store_item in;
    memset(&in, 0, sizeof(in));
    in.published = 5;
    in.id = "longpub";
    in.id_len = 7;
    in.publisher = big;
    in.publisher_len = 600;
    CHECK_EQ_INT(store_item_put(t, "n", &n, &in, 10, NULL, NULL), 0);
    CHECK_EQ_INT(store_item_get(t, n.id, "longpub", 7, &it), 0);
    CHECK_EQ_MEM(it.publisher, it.publisher_len, big, 600);

    /* A 600-byte JID in subscriptions and affiliations. */
    struct store_sub sub = {big, "s1", 1, NULL, 0};
    CHECK(store_sub_put(t, n.id, &sub) < 0);
    CHECK(store_sub_del(t, n.id, big, "s1") < 0);
    struct store_sub sub2 = {"bob@localhost", big, 1, NULL, 0}; /* a long subid */
    CHECK(store_sub_put(t, n.id, &sub2) < 0);
    CHECK(store_aff_put(t, n.id, big, 1) < 0);
    CHECK(store_aff_put(t, n.id, big, 0) < 0);
    CHECK_EQ_STR(subs_text(t, n.id, &ss), "");
    CHECK_EQ_STR(affs_text(t, n.id, &as), "");

    /* A 600-byte node name. */
    struct store_node bn = n;
    CHECK(store_node_put(t, big, &bn) < 0);
    CHECK(store_node_get(t, big, &got) < 0);
    CHECK(store_node_del(t, big, n.id) < 0);

    /* The transaction is still good after every refusal. */
    CHECK_EQ_INT(put_item(t, "n", &n, "after", 6, "<p/>", 10, NULL), 0);
    commit(t);
    if ((t = begin(s, false)) != NULL) {
        CHECK_EQ_INT(store_node_get(t, "n", &got), 0);
        CHECK_EQ_INT(got.item_count, 3);
        CHECK(node_equal(&got, &n));
        store_txn_abort(t);
    }
close:
    store_close(s);
done:
    remove_dir(dir);
}

TEST_MAIN(TEST_CASE(test_txn_commit_and_abort), TEST_CASE(test_node_ids_never_reused),
          TEST_CASE(test_node_crud), TEST_CASE(test_item_put_get),
          TEST_CASE(test_item_replace_moves_to_newest), TEST_CASE(test_max_items_and_trim),
          TEST_CASE(test_item_del_and_purge), TEST_CASE(test_items_expire),
          TEST_CASE(test_items_newest_paging), TEST_CASE(test_items_oldest_paging),
          TEST_CASE(test_items_separate_per_node),
          TEST_CASE(test_subscriptions), TEST_CASE(test_affiliations),
          TEST_CASE(test_node_delete_removes_everything), TEST_CASE(test_reopen_persists),
          TEST_CASE(test_too_long_keys))
