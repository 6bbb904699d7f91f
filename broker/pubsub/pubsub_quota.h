/* pubsub_quota.h - the arithmetic of node quotas (docs/pubsub.md "Quotas"),
 * apart from the service so that it can be tested alone.
 *
 * The publish rate is a token bucket in integer milli-tokens: a node with
 * herald#max_publish_rate = R refills R tokens per second (R milli-tokens
 * per millisecond) and holds max(1, R) tokens; a publish takes one. The
 * state is what the bucket lacks from full (debt) at a time (at), so a
 * zeroed bucket is full and a refusal changes nothing: refilling is a
 * function of the elapsed time alone. The service stores the state with
 * the node (store_node.rate_at, rate_debt) and reads time from its own
 * clock, which cluster mode fixes per log entry (pubsub_fix): every
 * instance then computes the same answer.
 *
 * Refusal counters for /metrics: per node of pubsub.<domain>, for at most
 * PS_QUOTA_NODES_MAX nodes (the first that are refused keep their place
 * until deleted); the rest, and PEP nodes, add up in one "other" row. */
#ifndef HERALD_PUBSUB_QUOTA_H
#define HERALD_PUBSUB_QUOTA_H
#include <stdint.h>
#include <uthash.h>

#include "pubsub.h"

struct ps_bucket {
    uint64_t at;   /* unix ms of the last take (never moves back) */
    uint64_t debt; /* milli-tokens missing from a full bucket at `at` */
};

/* Takes one token at now_ms from the bucket of rate tokens per second
 * (rate > 0). Returns 0 with *b updated, or the milliseconds until a token
 * is there (at least 1), b unchanged. A clock that went back refills
 * nothing. A debt over the bucket's size (the rate was lowered) counts as
 * an empty bucket. */
uint64_t ps_bucket_take(struct ps_bucket *b, uint32_t rate, uint64_t now_ms);

/* Whole seconds to wait for ms milliseconds: rounded up, at least 1. */
unsigned ps_retry_seconds(uint64_t ms);

struct ps_quota_tally {
    uint64_t node_id;
    char *node;
    uint64_t refused[PS_NQUOTAS];
    UT_hash_handle hh;
};

struct ps_quota_tallies {
    struct ps_quota_tally *by_id; /* insertion order: the order /metrics lists them in */
    unsigned n;
    uint64_t other[PS_NQUOTAS];
};

/* Counts one refusal of quota q on the node (name NULL: a PEP node). A
 * node without a place, when every place is taken or memory is short,
 * counts in `other`. */
void ps_quota_count(struct ps_quota_tallies *t, uint64_t node_id, const char *name,
                    enum ps_quota q);
/* The node is deleted: its row goes and its place is free again. */
void ps_quota_forget(struct ps_quota_tallies *t, uint64_t node_id);
void ps_quota_free(struct ps_quota_tallies *t);

#endif
