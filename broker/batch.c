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
    /* Open operations, innermost last: an operation may run another (a
     * roster removal cancels presence subscriptions), each one nested in
     * the one before. mark: the last callback registered before it began.
     * A direct operation writes straight into the batch (no savepoint);
     * writes: the store's write count when it began. */
    struct {
        struct store_txn *txn;
        struct after *mark;
        bool direct;
        unsigned long writes;
    } ops[8];
    unsigned nops;
    int failed;                 /* a direct operation failed after writing: the turn is lost */
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

/* Aborts the open operations' own (nested) transactions. */
static void drop_ops(struct batch *b)
{
    while (b->nops) {
        b->nops--;
        if (!b->ops[b->nops].direct)
            store_txn_abort(b->ops[b->nops].txn);
    }
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
    drop_ops(b);
    store_txn_abort(b->txn);
    b->txn = NULL;
    /* Nothing was acknowledged: callbacks only release their contexts. */
    run_all(b, HERALD_EUNAVAIL);
    free(b);
}

static struct store_txn *innermost(const struct batch *b)
{
    return b->nops ? b->ops[b->nops - 1].txn : b->txn;
}

/* A nested transaction costs a copy of every page the batch has already
 * dirtied that the operation touches again (LMDB must be able to drop the
 * child alone): about a third more work per publish. It is worth it only
 * when a write can plausibly fail, which in LMDB means the map running out
 * (store_write_risky). Otherwise the operation writes straight into the
 * batch; should it still fail after writing (out of memory, an I/O error
 * while LMDB spills pages), the whole turn is rolled back instead: its
 * other requests get the error at the commit, and memory is reloaded then,
 * when no handler runs. */
/* A failure of this process or its storage (not of a rule): another
 * process applying the same change may well succeed (cluster.c). */
static bool local_failure(int rc)
{
    return rc == HERALD_EFULL || rc == HERALD_EIO || rc == HERALD_ENOMEM;
}

static struct store_txn *op_begin_inner(struct batch *b, bool freeing, int *rc);

static struct store_txn *op_begin(struct batch *b, bool freeing, int *rc)
{
    struct store_txn *t = op_begin_inner(b, freeing, rc);
    if (t == NULL && local_failure(*rc))
        b->stats.local_failures++;
    return t;
}

static struct store_txn *op_begin_inner(struct batch *b, bool freeing, int *rc)
{
    *rc = 0;
    if (b->failed) {
        *rc = b->failed;
        return NULL;
    }
    if (b->nops == sizeof(b->ops) / sizeof(b->ops[0])) {
        log_error("batch", "operations nested too deep");
        *rc = HERALD_EIO;
        return NULL;
    }
    if (b->txn == NULL && (*rc = store_txn_begin(b->store, true, &b->txn)) != 0)
        return NULL;
    if (!freeing && store_reserve_reached(b->store)) {
        static struct log_limit lim;
        log_limited(&lim, LOG_ERROR, "batch",
                    "%s is full down to its reserve (storage.reserve_mb) at the ceiling "
                    "storage.max_map_size_mb: changes that add data get resource-constraint "
                    "(507) until data is deleted or the ceiling is raised",
                    store_path(b->store));
        *rc = HERALD_EFULL;
        return NULL;
    }
    bool direct = !store_write_risky(b->store) && (b->nops == 0 || b->ops[b->nops - 1].direct);
    struct store_txn *t = innermost(b);
    if (!direct && (*rc = store_txn_begin_nested(t, &t)) != 0)
        return NULL;
    b->ops[b->nops].txn = t;
    b->ops[b->nops].mark = b->tail;
    b->ops[b->nops].direct = direct;
    b->ops[b->nops].writes = store_write_count(b->store);
    b->nops++;
    return t;
}

struct store_txn *batch_op_begin(struct batch *b, int *rc) { return op_begin(b, false, rc); }

struct store_txn *batch_op_begin_freeing(struct batch *b, int *rc)
{
    return op_begin(b, true, rc);
}

/* Callbacks registered by a rolled-back operation learn of it now: what
 * they would announce will never commit. */
static void cancel_since(struct batch *b, struct after *mark, int rc)
{
    struct after *a = mark ? mark->next : b->head;
    if (a == NULL)
        return;
    if (mark)
        mark->next = NULL;
    else
        b->head = NULL;
    b->tail = mark;
    while (a) {
        struct after *next = a->next;
        b->pending--;
        a->fn(a->ctx, rc);
        free(a);
        a = next;
    }
}

int batch_op_end(struct batch *b, struct store_txn *op, int rc)
{
    if (op == NULL || b->nops == 0 || op != b->ops[b->nops - 1].txn) {
        log_error("batch", "an operation ended out of order");
        return rc ? rc : HERALD_EIO;
    }
    b->nops--;
    struct after *mark = b->ops[b->nops].mark;
    if (b->ops[b->nops].direct) {
        if (rc == 0 && b->failed)
            rc = b->failed; /* an operation inside this one lost the turn */
        if (rc != 0 && !b->failed && store_write_count(b->store) != b->ops[b->nops].writes) {
            /* It wrote and failed without a savepoint: the batch may hold
             * half of it, so the turn goes. */
            log_error("batch", "a write failed outside a savepoint (%s): every change of this "
                               "loop turn is rolled back", herald_strerror(rc));
            b->failed = rc;
        }
        /* The transaction goes when the outermost operation ends: the
         * operations around this one still hold it (and fail on it). */
        if (b->failed && b->nops == 0) {
            store_txn_abort(b->txn);
            b->txn = NULL;
        }
    } else if (rc == 0) {
        rc = store_txn_commit(op);
    } else {
        store_txn_abort(op);
    }
    if (rc != 0) {
        b->stats.op_failures++;
        if (local_failure(rc))
            b->stats.local_failures++;
        cancel_since(b, mark, rc);
    }
    return rc;
}

bool batch_open_now(const struct batch *b) { return b->txn != NULL; }

struct store_txn *batch_read(struct batch *b, int *rc)
{
    struct store_txn *t = NULL;
    *rc = 0;
    if (b->txn) /* LMDB: while a child is open, only the child may be used */
        return innermost(b);
    *rc = store_txn_begin(b->store, false, &t);
    return t;
}

void batch_read_done(struct batch *b, struct store_txn *t)
{
    if (t != NULL && t != b->txn && (b->nops == 0 || t != innermost(b)))
        store_txn_abort(t);
}

int batch_after(struct batch *b, batch_fn *fn, void *ctx)
{
    if (b->txn == NULL && b->head == NULL && !b->failed) {
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

void batch_commit(struct batch *b)
{
    if (b->failed) {
        int rc = b->failed;
        b->failed = 0;
        store_txn_abort(b->txn);
        b->txn = NULL;
        b->stats.failures++;
        rolled_back(b, rc);
        return;
    }
    if (b->txn == NULL) {
        run_all(b, 0);
        return;
    }
    if (b->nops) { /* cannot happen: operations end before the turn does */
        log_error("batch", "an operation was left open; rolling it back");
        drop_ops(b);
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
    /* No transaction of this process is open now: the one moment the map
     * may be resized. */
    store_grow(b->store);
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
