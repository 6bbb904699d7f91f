/* batch.c - the write transaction of the current loop turn and the queue of
 * callbacks waiting for its commit. */
#include "batch.h"

#include <stdlib.h>
#include <uv.h>

#include "errors.h"
#include "log.h"
#include "store.h"

struct after {
    struct after *next;
    batch_fn *fn;
    void *ctx;
};

struct hook {
    void (*fn)(void *ctx);
    void *ctx;
};

const double batch_bucket_bounds[BATCH_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                   0.05,   0.1,   0.25,   0.5,   1.0,  1e300};

struct batch {
    struct batch_stats stats;
    struct store *store;
    struct store_txn *txn;
    struct after *head, *tail;
    unsigned pending;
    struct hook hooks[4];
    unsigned nhooks;
};

int batch_new(struct store *store, struct batch **out)
{
    struct batch *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return HERALD_ENOMEM;
    b->store = store;
    *out = b;
    return 0;
}

static void run_all(struct batch *b, int failed)
{
    struct after *a = b->head;
    b->head = b->tail = NULL;
    b->pending = 0;
    while (a) {
        struct after *next = a->next;
        a->fn(a->ctx, failed);
        free(a);
        a = next;
    }
}

void batch_free(struct batch *b)
{
    if (b == NULL)
        return;
    store_txn_abort(b->txn);
    b->txn = NULL;
    /* Nothing was acknowledged: callbacks only release their contexts. */
    run_all(b, HERALD_EUNAVAIL);
    free(b);
}

struct store_txn *batch_txn(struct batch *b, int *rc)
{
    *rc = 0;
    if (b->txn == NULL)
        *rc = store_txn_begin(b->store, true, &b->txn);
    return b->txn;
}

bool batch_open_now(const struct batch *b) { return b->txn != NULL; }

struct store_txn *batch_read(struct batch *b, int *rc)
{
    struct store_txn *t = NULL;
    *rc = 0;
    if (b->txn)
        return b->txn;
    *rc = store_txn_begin(b->store, false, &t);
    return t;
}

void batch_read_done(struct batch *b, struct store_txn *t)
{
    if (t != NULL && t != b->txn)
        store_txn_abort(t);
}

int batch_after(struct batch *b, batch_fn *fn, void *ctx)
{
    if (b->txn == NULL && b->head == NULL) {
        fn(ctx, 0);
        return 0;
    }
    struct after *a = malloc(sizeof(*a));
    if (a == NULL) {
        fn(ctx, HERALD_ENOMEM);
        return -1;
    }
    a->next = NULL;
    a->fn = fn;
    a->ctx = ctx;
    if (b->tail)
        b->tail->next = a;
    else
        b->head = a;
    b->tail = a;
    b->pending++;
    return 0;
}

static void rolled_back(struct batch *b, int rc)
{
    log_error("batch", "write batch rolled back (%u waiting result(s) get an error): %s",
              b->pending, herald_strerror(rc));
    run_all(b, rc);
    for (unsigned i = 0; i < b->nhooks; i++)
        b->hooks[i].fn(b->hooks[i].ctx);
}

void batch_abort(struct batch *b, int rc)
{
    store_txn_abort(b->txn);
    b->txn = NULL;
    rolled_back(b, rc);
}

void batch_commit(struct batch *b)
{
    if (b->txn == NULL) {
        run_all(b, 0);
        return;
    }
    struct store_txn *t = b->txn;
    b->txn = NULL;
    uint64_t t0 = uv_hrtime();
    int rc = store_txn_commit(t);
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    b->stats.commits++;
    b->stats.seconds_sum += secs;
    for (int i = 0; i < BATCH_BUCKETS; i++)
        if (secs <= batch_bucket_bounds[i])
            b->stats.buckets[i]++;
    if (rc != 0) {
        b->stats.failures++;
        rolled_back(b, rc);
    } else {
        run_all(b, 0);
    }
}

const struct batch_stats *batch_stats(const struct batch *b) { return &b->stats; }

int batch_on_rollback(struct batch *b, void (*fn)(void *ctx), void *ctx)
{
    if (b->nhooks == sizeof(b->hooks) / sizeof(b->hooks[0]))
        return -1;
    b->hooks[b->nhooks].fn = fn;
    b->hooks[b->nhooks].ctx = ctx;
    b->nhooks++;
    return 0;
}
