/* pubsub_quota.c - the token bucket of herald#max_publish_rate and the
 * bounded table of quota refusals per node (pubsub_quota.h). */
#include "pubsub_quota.h"

#include <stdlib.h>
#include <string.h>

const char *const ps_quota_names[PS_NQUOTAS] = {"rate", "subscribers", "bytes"};

uint64_t ps_bucket_take(struct ps_bucket *b, uint32_t rate, uint64_t now_ms)
{
    const uint64_t cost = 1000, size = (uint64_t)(rate > 1 ? rate : 1) * cost;
    uint64_t elapsed = now_ms > b->at ? now_ms - b->at : 0;
    /* elapsed * rate could overflow: past debt / rate the bucket is full. */
    uint64_t debt = elapsed > b->debt / rate ? 0 : b->debt - elapsed * rate;
    if (debt > size)
        debt = size;
    if (debt + cost <= size) {
        b->debt = debt + cost;
        if (now_ms > b->at)
            b->at = now_ms;
        return 0;
    }
    uint64_t missing = debt + cost - size;
    return (missing + rate - 1) / rate;
}

unsigned ps_retry_seconds(uint64_t ms)
{
    uint64_t s = (ms + 999) / 1000;
    return s < 1 ? 1 : s > 86400 ? 86400 : (unsigned)s;
}

void ps_quota_count(struct ps_quota_tallies *t, uint64_t node_id, const char *name, enum ps_quota q)
{
    struct ps_quota_tally *e = NULL;
    if (name != NULL)
        HASH_FIND(hh, t->by_id, &node_id, sizeof(node_id), e);
    if (e == NULL && name != NULL && t->n < PS_QUOTA_NODES_MAX) {
        e = calloc(1, sizeof(*e));
        if (e != NULL && (e->node = strdup(name)) == NULL) {
            free(e);
            e = NULL;
        }
        if (e != NULL) {
            e->node_id = node_id;
            HASH_ADD(hh, t->by_id, node_id, sizeof(e->node_id), e);
            t->n++;
        }
    }
    if (e != NULL)
        e->refused[q]++;
    else
        t->other[q]++;
}

void ps_quota_forget(struct ps_quota_tallies *t, uint64_t node_id)
{
    struct ps_quota_tally *e = NULL;
    HASH_FIND(hh, t->by_id, &node_id, sizeof(node_id), e);
    if (e == NULL)
        return;
    HASH_DEL(t->by_id, e);
    t->n--;
    free(e->node);
    free(e);
}

void ps_quota_free(struct ps_quota_tallies *t)
{
    struct ps_quota_tally *e, *tmp;
    HASH_ITER(hh, t->by_id, e, tmp) {
        HASH_DEL(t->by_id, e);
        free(e->node);
        free(e);
    }
    memset(t, 0, sizeof(*t));
}
