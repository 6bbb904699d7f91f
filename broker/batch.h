/* batch.h - group commit: one LMDB write transaction per loop turn, and the
 * output that may leave only after it is durable.
 *
 * Any module that changes stored state (pubsub, rosters, offline messages)
 * does so in an operation: batch_op_begin() opens a nested transaction
 * inside the turn's write transaction (the first operation of a turn opens
 * that too), batch_op_end() merges it into the batch or, when the
 * operation failed, rolls back just that operation: one request's storage
 * error (map full, I/O) never fails the others of the same turn. Whatever
 * must not be seen before the change is durable (an iq result, a
 * notification, a roster push) is registered with batch_after(). Once per
 * loop turn, before write queues are flushed, batch_commit() commits
 * (fsync) and then runs the callbacks in registration order with
 * failed = 0. If the commit itself fails, every callback runs with the
 * error code instead, and the rollback hooks let modules reload their
 * in-memory state from storage (no handler is running then).
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

/* Begins an operation: a nested write transaction of this turn's batch
 * (opened on first use), or NULL with *rc set. An operation may begin
 * another inside it (up to 8 deep); they end in reverse order. */
struct store_txn *batch_op_begin(struct batch *b, int *rc);
/* The same for an operation that removes data (deletes a node, purges,
 * retracts, trims, unsubscribes). Only these may write once the store is
 * down to its reserve (store_reserve_reached): batch_op_begin then fails
 * with HERALD_EFULL before anything is written, so a full store can
 * always be emptied without a restart. */
struct store_txn *batch_op_begin_freeing(struct batch *b, int *rc);
/* Ends the operation: rc == 0 merges it into the batch and returns 0 (or
 * the error of merging, the operation then rolled back); rc != 0 rolls the
 * operation back and returns rc. Callbacks registered with batch_after
 * during a rolled-back operation run at once with its code (so register an
 * answer to the requester after batch_op_end, not inside the operation). */
int batch_op_end(struct batch *b, struct store_txn *op, int rc);
bool batch_open_now(const struct batch *b);

/* A read view: the open operation or batch (so reads see this turn's
 * writes) or a fresh snapshot; end it with batch_read_done. */
struct store_txn *batch_read(struct batch *b, int *rc);
void batch_read_done(struct batch *b, struct store_txn *t);

/* Runs fn(ctx, failed) after the commit; with no batch open, at once. The
 * callback owns ctx. Returns -1 (and runs nothing) only on ENOMEM. */
int batch_after(struct batch *b, batch_fn *fn, void *ctx);

/* Once per loop turn. Afterwards the store's map grows if it is nearly
 * full (store_grow). */
void batch_commit(struct batch *b);

/* Commit latency histogram (Prometheus buckets, seconds). */
#define BATCH_BUCKETS 12
extern const double batch_bucket_bounds[BATCH_BUCKETS]; /* last is +Inf */
struct batch_stats {
    uint64_t commits;
    uint64_t failures;          /* commits that failed (every change of the turn lost) */
    uint64_t op_failures;       /* operations rolled back alone */
    uint64_t local_failures;    /* ... or refused, for storage full, I/O or memory (not a rule) */
    double seconds_sum;
    uint64_t buckets[BATCH_BUCKETS]; /* cumulative counts */
};
const struct batch_stats *batch_stats(const struct batch *b);

/* A hook run after every rollback (to reload in-memory state). */
int batch_on_rollback(struct batch *b, void (*fn)(void *ctx), void *ctx);

#endif
