/* test_pubsub_quota.c - node quotas (docs/pubsub.md "Quotas"): the token
 * bucket of herald#max_publish_rate alone (broker/pubsub/pubsub_quota.c),
 * then the three quotas through the service over a real LMDB store.
 *
 * The clock. The service reads its clock through now_ms, which pubsub_fix
 * replaces with a fixed time (what cluster mode does for each log entry).
 * The tests fix the time, so the bucket's refill is exact and no test
 * sleeps or depends on how fast it runs. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "errors.h"
#include "log.h"
#include "pubsub.h"
#include "pubsub_quota.h"
#include "store.h"
#include "store_impl.h"
#include "test.h"

#define CHECK_EQ_U64(a, b) CHECK_EQ_INT((long long)(a), (long long)(b))

/* ---- the bucket alone ---- */

static void test_bucket_burst_and_refill(void)
{
    struct ps_bucket b = {0, 0};
    /* Rate 5: a burst of 5 at once, then one every 200 ms. */
    for (int i = 0; i < 5; i++)
        CHECK_EQ_U64(ps_bucket_take(&b, 5, 10000), 0);
    CHECK_EQ_U64(ps_bucket_take(&b, 5, 10000), 200);
    CHECK_EQ_U64(ps_bucket_take(&b, 5, 10100), 100); /* half refilled */
    CHECK_EQ_U64(ps_bucket_take(&b, 5, 10200), 0);
    CHECK_EQ_U64(ps_bucket_take(&b, 5, 10200), 200);
    /* A long pause refills to the burst, not beyond. */
    for (int i = 0; i < 5; i++)
        CHECK_EQ_U64(ps_bucket_take(&b, 5, 60000), 0);
    CHECK(ps_bucket_take(&b, 5, 60000) > 0);
}

static void test_bucket_rate_one_and_edges(void)
{
    struct ps_bucket b = {0, 0};
    CHECK_EQ_U64(ps_bucket_take(&b, 1, 5000), 0);
    CHECK_EQ_U64(ps_bucket_take(&b, 1, 5000), 1000); /* burst of max(1, rate) = 1 */
    CHECK_EQ_U64(ps_bucket_take(&b, 1, 5999), 1);
    CHECK_EQ_U64(ps_bucket_take(&b, 1, 6000), 0);
    /* A clock that went back refills nothing and does not move `at` back. */
    CHECK_EQ_U64(ps_bucket_take(&b, 1, 1000), 1000);
    CHECK_EQ_U64(b.at, 6000);
    /* Lowered rate: the debt of a larger bucket counts as an empty one. */
    struct ps_bucket big = {0, 0};
    for (int i = 0; i < 100; i++)
        CHECK_EQ_U64(ps_bucket_take(&big, 100, 0), 0);
    CHECK_EQ_U64(ps_bucket_take(&big, 1, 0), 1000);
    /* No overflow with the largest rate after a long time. */
    struct ps_bucket huge = {1, UINT64_MAX / 2};
    CHECK_EQ_U64(ps_bucket_take(&huge, UINT32_MAX - 1, UINT64_MAX), 0);
    /* Retry-After: whole seconds, rounded up, at least 1. */
    CHECK_EQ_INT(ps_retry_seconds(0), 1);
    CHECK_EQ_INT(ps_retry_seconds(1), 1);
    CHECK_EQ_INT(ps_retry_seconds(1000), 1);
    CHECK_EQ_INT(ps_retry_seconds(1001), 2);
}

static void test_tallies_bounded(void)
{
    struct ps_quota_tallies t;
    memset(&t, 0, sizeof(t));
    for (uint64_t id = 1; id <= PS_QUOTA_NODES_MAX + 5; id++) {
        char name[32];
        snprintf(name, sizeof(name), "n%llu", (unsigned long long)id);
        ps_quota_count(&t, id, name, PS_QUOTA_RATE);
    }
    ps_quota_count(&t, 1, "n1", PS_QUOTA_BYTES);
    ps_quota_count(&t, 999, NULL, PS_QUOTA_SUBSCRIBERS); /* PEP */
    CHECK_EQ_INT(t.n, PS_QUOTA_NODES_MAX);
    CHECK_EQ_U64(t.other[PS_QUOTA_RATE], 5);
    CHECK_EQ_U64(t.other[PS_QUOTA_SUBSCRIBERS], 1);
    CHECK_EQ_U64(t.by_id->refused[PS_QUOTA_BYTES], 1);
    ps_quota_forget(&t, 1); /* deleted: its place is free for another node */
    ps_quota_count(&t, 500, "n500", PS_QUOTA_RATE);
    CHECK_EQ_INT(t.n, PS_QUOTA_NODES_MAX);
    CHECK_EQ_U64(t.other[PS_QUOTA_RATE], 5);
    ps_quota_free(&t);
}

/* ---- through the service ---- */

struct fx {
    char *dir;
    struct store *st;
    struct batch *b;
    struct pubsub *ps;
    bool open;
};

static uint32_t DEF_RATE; /* what the quota_defaults hook hands out */

static void defaults_cb(void *ud, const char *owner, struct ps_config *cfg)
{
    (void)ud;
    if (strcmp(owner, "limited@localhost") == 0)
        cfg->max_publish_rate = DEF_RATE;
}

static bool fx_open(struct fx *f)
{
    struct store_opts so = {.map_size = 16u << 20, .max_map_size = 64u << 20};
    int rc = store_open(&f->st, f->dir, &so);
    CHECK_EQ_INT(rc, 0);
    if (rc != 0)
        return false;
    CHECK_EQ_INT(batch_new(f->st, &f->b), 0);
    struct pubsub_opts o = {
        .store = f->st,
        .batch = f->b,
        .caps = {.max_items = 100, .max_payload_size = 4096},
        .hooks = {.quota_defaults = defaults_cb},
    };
    rc = pubsub_open(&o, &f->ps);
    CHECK_EQ_INT(rc, 0);
    f->open = rc == 0;
    return f->open;
}

static void fx_close(struct fx *f)
{
    if (!f->open)
        return;
    batch_commit(f->b);
    pubsub_close(f->ps);
    batch_free(f->b);
    store_close(f->st);
    f->open = false;
}

static bool fx_start(struct fx *f)
{
    memset(f, 0, sizeof(*f));
    log_set_level(LOG_ERROR);
    f->dir = test_make_dir("herald-test-quota");
    return f->dir != NULL && fx_open(f);
}

static void fx_end(struct fx *f)
{
    fx_close(f);
    test_remove_dir(f->dir);
}

static void at(struct fx *f, uint64_t ms)
{
    struct ps_fixed fix = {ms, 42};
    pubsub_fix(f->ps, &fix);
}

#define ALICE "alice@localhost"
#define BOB "bob@localhost"
#define FIELD(var, val) ((struct ps_field){(var), (const char *const[]){(val)}, 1})

static int pub(struct fx *f, const char *node, const char *id, size_t len)
{
    char payload[512];
    memset(payload, 'x', sizeof(payload));
    struct ps_publish req = {
        .node = node, .item_id = id, .has_item = true, .payload = payload, .payload_len = len};
    struct ps_published out;
    int rc = pubsub_publish(f->ps, ALICE, &req, &out);
    batch_commit(f->b);
    return rc;
}

static int make(struct fx *f, const char *who, const char *node, const struct ps_field *cfg,
                size_t n)
{
    char out[PS_NODE_NAME_MAX + 1];
    int rc = pubsub_create(f->ps, who, node, cfg, n, out);
    batch_commit(f->b);
    return rc;
}

struct tally_sum {
    char node[64];
    uint64_t refused[PS_NQUOTAS];
    uint64_t other[PS_NQUOTAS];
};

static void tally_cb(void *ud, const char *node, const uint64_t refused[PS_NQUOTAS])
{
    struct tally_sum *t = ud;
    uint64_t *dst = node[0] ? t->refused : t->other;
    if (node[0])
        snprintf(t->node, sizeof(t->node), "%s", node);
    for (int i = 0; i < PS_NQUOTAS; i++)
        dst[i] += refused[i];
}

static void test_rate_through_service(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    struct ps_field cfg[] = {FIELD(PS_MAX_PUBLISH_RATE, "2")};
    CHECK_EQ_INT(make(&f, ALICE, "r", cfg, 1), 0);
    at(&f, 1000000);
    CHECK_EQ_INT(pub(&f, "r", "a", 10), 0);
    CHECK_EQ_INT(pub(&f, "r", "b", 10), 0);
    CHECK_EQ_INT(pub(&f, "r", "c", 10), HERALD_ERATE);
    CHECK_EQ_INT(pubsub_retry_after(f.ps), 1);
    at(&f, 1000499);
    CHECK_EQ_INT(pub(&f, "r", "c", 10), HERALD_ERATE);
    at(&f, 1000500);
    CHECK_EQ_INT(pub(&f, "r", "c", 10), 0);
    CHECK_EQ_INT(pub(&f, "r", "d", 10), HERALD_ERATE);
    /* The bucket is stored with the node: a restart gives no fresh burst. */
    fx_close(&f);
    CHECK(fx_open(&f));
    at(&f, 1000500);
    CHECK_EQ_INT(pub(&f, "r", "d", 10), HERALD_ERATE);
    at(&f, 1001000);
    CHECK_EQ_INT(pub(&f, "r", "d", 10), 0);
    /* 0 = no limit. */
    struct ps_field off[] = {FIELD(PS_MAX_PUBLISH_RATE, "0")};
    CHECK_EQ_INT(pubsub_configure(f.ps, ALICE, "r", off, 1), 0);
    batch_commit(f.b);
    for (int i = 0; i < 10; i++)
        CHECK_EQ_INT(pub(&f, "r", "e", 10), 0);
    struct tally_sum t;
    memset(&t, 0, sizeof(t));
    pubsub_quota_refusals(f.ps, tally_cb, &t);
    CHECK_EQ_STR(t.node, "r");
    CHECK_EQ_U64(t.refused[PS_QUOTA_RATE], 1); /* counters start at 0 with the process */
    CHECK_EQ_U64(t.other[PS_QUOTA_RATE], 0);
    fx_end(&f);
}

static void test_bytes_through_service(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    struct ps_field cfg[] = {FIELD(PS_MAX_NODE_BYTES, "100")};
    CHECK_EQ_INT(make(&f, ALICE, "b", cfg, 1), 0);
    CHECK_EQ_INT(pub(&f, "b", "a", 60), 0);
    CHECK_EQ_INT(pub(&f, "b", "b", 60), HERALD_ENODE_FULL);
    CHECK_EQ_INT(pubsub_retry_after(f.ps), 30);
    /* Replacing an item counts only the new version: 90 <= 100. */
    CHECK_EQ_INT(pub(&f, "b", "a", 90), 0);
    CHECK_EQ_INT(pub(&f, "b", "b", 11), HERALD_ENODE_FULL);
    CHECK_EQ_INT(pub(&f, "b", "b", 10), 0);
    /* Stored with the node: the same after a restart. */
    fx_close(&f);
    CHECK(fx_open(&f));
    CHECK_EQ_INT(pub(&f, "b", "c", 1), HERALD_ENODE_FULL);
    CHECK_EQ_INT(pubsub_retract(f.ps, ALICE, "b", "a", false), 0);
    batch_commit(f.b);
    CHECK_EQ_INT(pub(&f, "b", "c", 90), 0);
    CHECK_EQ_INT(pub(&f, "b", "d", 1), HERALD_ENODE_FULL);
    CHECK_EQ_INT(pubsub_purge(f.ps, ALICE, "b"), 0);
    batch_commit(f.b);
    CHECK_EQ_INT(pub(&f, "b", "d", 100), 0);
    /* Lowering the quota below the usage keeps the items, refuses more. */
    struct ps_field low[] = {FIELD(PS_MAX_NODE_BYTES, "50")};
    CHECK_EQ_INT(pubsub_configure(f.ps, ALICE, "b", low, 1), 0);
    batch_commit(f.b);
    struct ps_node_info info;
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "b", &info), 0);
    CHECK_EQ_INT(info.item_count, 1);
    CHECK_EQ_INT(pub(&f, "b", "e", 1), HERALD_ENODE_FULL);
    /* Trimming (max_items 1) frees what it deletes, in the same operation:
     * replacing the one item with a smaller one fits. */
    struct ps_field one[] = {FIELD("pubsub#max_items", "1"), FIELD(PS_MAX_NODE_BYTES, "120")};
    CHECK_EQ_INT(pubsub_configure(f.ps, ALICE, "b", one, 2), 0);
    batch_commit(f.b);
    CHECK_EQ_INT(pub(&f, "b", "f", 120), 0); /* "d" (100) is trimmed: 120 */
    CHECK_EQ_INT(pub(&f, "b", "g", 121), HERALD_ENODE_FULL);
    fx_end(&f);
}

static void test_subscribers_through_service(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    struct ps_field cfg[] = {FIELD(PS_MAX_SUBSCRIBERS, "1")};
    CHECK_EQ_INT(make(&f, ALICE, "s", cfg, 1), 0);
    struct ps_subscription out;
    CHECK_EQ_INT(pubsub_subscribe(f.ps, BOB, "s", BOB, NULL, 0, &out), 0);
    batch_commit(f.b);
    CHECK_EQ_INT(pubsub_subscribe(f.ps, ALICE, "s", ALICE, NULL, 0, &out), HERALD_ETOO_MANY_SUBS);
    CHECK_EQ_STR(herald_error(HERALD_ETOO_MANY_SUBS)->app, "too-many-subscriptions");
    /* Survives a restart (the count is rebuilt from the subscriptions). */
    fx_close(&f);
    CHECK(fx_open(&f));
    CHECK_EQ_INT(pubsub_subscribe(f.ps, ALICE, "s", ALICE, NULL, 0, &out), HERALD_ETOO_MANY_SUBS);
    CHECK_EQ_INT(pubsub_unsubscribe(f.ps, BOB, "s", BOB, NULL), 0);
    batch_commit(f.b);
    CHECK_EQ_INT(pubsub_subscribe(f.ps, ALICE, "s", ALICE, NULL, 0, &out), 0);
    batch_commit(f.b);
    fx_end(&f);
}

static void test_account_defaults(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    DEF_RATE = 7;
    CHECK_EQ_INT(make(&f, "limited@localhost/r", "d1", NULL, 0), 0);
    struct ps_field own[] = {FIELD(PS_MAX_PUBLISH_RATE, "3")};
    CHECK_EQ_INT(make(&f, "limited@localhost", "d2", own, 1), 0);
    CHECK_EQ_INT(make(&f, ALICE, "d3", NULL, 0), 0);
    struct ps_config c;
    CHECK_EQ_INT(pubsub_config_get(f.ps, "limited@localhost", "d1", &c), 0);
    CHECK_EQ_INT(c.max_publish_rate, 7);
    CHECK_EQ_INT(pubsub_config_get(f.ps, "limited@localhost", "d2", &c), 0);
    CHECK_EQ_INT(c.max_publish_rate, 3); /* the creator's own value wins */
    CHECK_EQ_INT(pubsub_config_get(f.ps, ALICE, "d3", &c), 0);
    CHECK_EQ_INT(c.max_publish_rate, 0);
    /* Bad values are refused, nothing applied. */
    struct ps_field bad[] = {FIELD(PS_MAX_SUBSCRIBERS, "-1")};
    CHECK_EQ_INT(pubsub_configure(f.ps, ALICE, "d3", bad, 1), HERALD_ENOTACCEPTABLE);
    struct ps_field text[] = {FIELD(PS_MAX_NODE_BYTES, "lots")};
    CHECK_EQ_INT(pubsub_configure(f.ps, ALICE, "d3", text, 1), HERALD_ENOTACCEPTABLE);
    DEF_RATE = 0;
    fx_end(&f);
}

/* A configuration record and a node record written before quotas read as
 * "no quota", with the node's payload bytes counted from its items. */
static void test_old_records(void)
{
    struct ps_config c, d;
    struct ps_caps caps = {100, 4096};
    ps_config_defaults(&c, &caps);
    c.max_publish_rate = 5;
    uint8_t rec[2048];
    size_t len = ps_config_encode(&c, rec, sizeof(rec));
    CHECK(len > 12);
    CHECK_EQ_INT(ps_config_decode(&d, rec, len - 12), 0); /* without the three fields */
    CHECK_EQ_INT(d.max_publish_rate, 0);
    CHECK_EQ_INT(ps_config_decode(&d, rec, len), 0);
    CHECK_EQ_INT(d.max_publish_rate, 5);

    struct fx f;
    if (!fx_start(&f))
        return;
    CHECK_EQ_INT(make(&f, ALICE, "old", NULL, 0), 0);
    CHECK_EQ_INT(pub(&f, "old", "a", 40), 0);
    CHECK_EQ_INT(pub(&f, "old", "b", 2), 0);
    fx_close(&f);
    /* Rewrite the node record as v1: header, then the configuration. */
    struct store *st;
    struct store_opts so = {.map_size = 16u << 20, .max_map_size = 64u << 20};
    CHECK_EQ_INT(store_open(&st, f.dir, &so), 0);
    struct store_txn *t;
    CHECK_EQ_INT(store_txn_begin(st, true, &t), 0);
    struct store_node sn;
    CHECK_EQ_INT(store_node_get(t, "old", &sn), 0);
    CHECK_EQ_U64(sn.payload_bytes, 42);
    uint8_t v1[1 + 28 + 2048];
    v1[0] = 1;
    for (int i = 0; i < 8; i++) {
        v1[1 + i] = (uint8_t)(sn.id >> (56 - 8 * i));
        v1[9 + i] = (uint8_t)(sn.created >> (56 - 8 * i));
        v1[17 + i] = (uint8_t)(sn.next_seq >> (56 - 8 * i));
    }
    for (int i = 0; i < 4; i++)
        v1[25 + i] = (uint8_t)(sn.item_count >> (24 - 8 * i));
    memcpy(v1 + 29, sn.config, sn.config_len);
    MDB_val k = {3, (void *)"old"}, v = {29 + sn.config_len, v1};
    CHECK_EQ_INT(mdb_put(t->txn, st->nodes, &k, &v, 0), 0);
    CHECK_EQ_INT(store_txn_commit(t), 0);
    CHECK_EQ_INT(store_txn_begin(st, false, &t), 0);
    memset(&sn, 0, sizeof(sn));
    CHECK_EQ_INT(store_node_get(t, "old", &sn), 0);
    CHECK_EQ_U64(sn.payload_bytes, 42); /* counted from the items */
    CHECK_EQ_U64(sn.rate_debt, 0);
    CHECK_EQ_INT(sn.item_count, 2);
    store_txn_abort(t);
    store_close(st);
    /* The service opens it and limits by the counted bytes. */
    CHECK(fx_open(&f));
    struct ps_field cfg[] = {FIELD(PS_MAX_NODE_BYTES, "50")};
    CHECK_EQ_INT(pubsub_configure(f.ps, ALICE, "old", cfg, 1), 0);
    batch_commit(f.b);
    CHECK_EQ_INT(pub(&f, "old", "c", 9), HERALD_ENODE_FULL);
    CHECK_EQ_INT(pub(&f, "old", "c", 8), 0);
    fx_end(&f);
}

TEST_MAIN(TEST_CASE(test_bucket_burst_and_refill), TEST_CASE(test_bucket_rate_one_and_edges),
          TEST_CASE(test_tallies_bounded), TEST_CASE(test_rate_through_service),
          TEST_CASE(test_bytes_through_service), TEST_CASE(test_subscribers_through_service),
          TEST_CASE(test_account_defaults), TEST_CASE(test_old_records))
