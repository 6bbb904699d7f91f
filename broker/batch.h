/* batch.h - group commit: one LMDB write transaction per loop turn, and the
 * output that may leave only after it is durable.
 *
 * Any module that changes stored state (pubsub, rosters, offline messages)
 * writes through batch_txn(): the first change of a loop turn opens the
 * transaction, every later change of the same turn joins it. Whatever must
 * not be seen before the change is durable (an iq result, a notification, a
 * roster push) is registered with batch_after(). Once per loop turn, before
 * write queues are flushed, batch_commit() commits (fsync) and then runs the
 * callbacks in registration order with failed = 0. If a write or the commit
 * fails, the transaction is rolled back, every callback runs with the error
 * code instead, and the rollback hooks let modules reload their in-memory
 * state from storage.
 *
 * LMDB allows one write transaction per environment at a time: nothing in
 * Herald's loop may open another while a batch is open. */
#ifndef HERALD_BATCH_H
#define HERALD_BATCH_H
#include <stdbool.h>
#include <stdint.h>

struct store;
struct store_txn;
struct batch;

typedef void batch_fn(void *ctx, int failed);

int batch_new(struct store *store, struct batch **out);
void batch_free(struct batch *b); /* aborts an open transaction: nothing was acknowledged */

/* The write transaction of this turn (opened on first use), or NULL with
 * *rc set. */
struct store_txn *batch_txn(struct batch *b, int *rc);
bool batch_open_now(const struct batch *b);

/* A read view: the open batch (so reads see this turn's writes) or a fresh
 * snapshot; end it with batch_read_done. */
struct store_txn *batch_read(struct batch *b, int *rc);
void batch_read_done(struct batch *b, struct store_txn *t);

/* Runs fn(ctx, failed) after the commit; with no batch open, at once. The
 * callback owns ctx. Returns -1 (and runs nothing) only on ENOMEM. */
int batch_after(struct batch *b, batch_fn *fn, void *ctx);

/* Called when a write inside the batch failed: rolls back now. */
void batch_abort(struct batch *b, int rc);
/* Once per loop turn. */
void batch_commit(struct batch *b);

/* Commit latency histogram (Prometheus buckets, seconds). */
#define BATCH_BUCKETS 12
extern const double batch_bucket_bounds[BATCH_BUCKETS]; /* last is +Inf */
struct batch_stats {
    uint64_t commits;
    uint64_t failures;
    double seconds_sum;
    uint64_t buckets[BATCH_BUCKETS]; /* cumulative counts */
};
const struct batch_stats *batch_stats(const struct batch *b);

/* A hook run after every rollback (to reload in-memory state). */
int batch_on_rollback(struct batch *b, void (*fn)(void *ctx), void *ctx);

#endif
