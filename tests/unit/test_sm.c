/* test_sm.c - stream management's bookkeeping (sm.c): the stanza queue (a
 * ring of chunk references that grows while wrapped around) and the
 * acknowledgement arithmetic of XEP-0198 §4, whose h counters wrap at 2^32. */
#include <stdint.h>

#include "errors.h"
#include "outq.h"
#include "sm.h"
#include "test.h"

static struct chunk *mk(const char *s) { return chunk_new(s, strlen(s)); }

static void push_str(struct sq *q, const char *s)
{
    struct chunk *c = mk(s);
    CHECK(c != NULL);
    CHECK_EQ_INT(sq_push(q, &c, 1, NULL), 0);
    chunk_unref(c);
}

static void test_ring_grows_while_wrapped(void)
{
    struct sq q = {0};
    char name[16];
    /* Fill, pop some (head moves), push past the capacity: the ring is
     * unrolled oldest first into a bigger array. */
    for (int i = 0; i < 16; i++) {
        snprintf(name, sizeof(name), "s%d", i);
        push_str(&q, name);
    }
    sq_pop(&q, 10);
    for (int i = 16; i < 40; i++) {
        snprintf(name, sizeof(name), "s%d", i);
        push_str(&q, name);
    }
    CHECK_EQ_INT(q.len, 30);
    for (uint32_t i = 0; i < q.len; i++) {
        snprintf(name, sizeof(name), "s%u", 10 + i);
        const struct sq_entry *e = sq_at(&q, i);
        CHECK_EQ_INT(e->n, 1);
        CHECK_EQ_MEM(e->part[0]->data, e->part[0]->len, name, strlen(name));
    }
    size_t bytes = 0;
    for (int i = 10; i < 40; i++)
        bytes += (size_t)snprintf(name, sizeof(name), "s%d", i);
    CHECK_EQ_INT(q.bytes, bytes);
    sq_clear(&q);
    CHECK_EQ_INT(q.len, 0);
    CHECK_EQ_INT(q.bytes, 0);
}

static void test_parts_share_references(void)
{
    struct sq q = {0};
    struct chunk *env = mk("<message to='x'>"), *body = mk("<body>b</body></message>");
    struct chunk *parts[2] = {env, body};
    CHECK_EQ_INT(sq_push(&q, parts, 2, NULL), 0);
    CHECK_EQ_INT(sq_push(&q, parts, 2, NULL), 0);
    CHECK_EQ_INT(body->refs, 3); /* ours and one per queued stanza: no copies */
    struct chunk *three[3] = {env, body, body};
    CHECK_EQ_INT(sq_push(&q, three, 3, NULL), HERALD_EINVAL);
    sq_pop(&q, 1);
    CHECK_EQ_INT(body->refs, 2);
    sq_clear(&q);
    CHECK_EQ_INT(body->refs, 1);
    chunk_unref(env);
    chunk_unref(body);
}

static void test_ack_counts_modulo_2_32(void)
{
    struct sm_state sm;
    memset(&sm, 0, sizeof(sm));
    /* The client acknowledged up to 2^32 - 2; four more stanzas went out,
     * so h_out wrapped to 2. */
    sm.acked = UINT32_MAX - 1;
    for (int i = 0; i < 4; i++)
        push_str(&sm.unacked, "<iq/>");
    sm.h_out = sm.acked + 4;
    CHECK_EQ_INT(sm.h_out, 2);
    CHECK_EQ_INT(sm_ack(&sm, UINT32_MAX, NULL, NULL), 0);  /* one handled */
    CHECK_EQ_INT(sm.unacked.len, 3);
    CHECK_EQ_INT(sm_ack(&sm, 1, NULL, NULL), 0);           /* two more, across the wrap */
    CHECK_EQ_INT(sm.unacked.len, 1);
    CHECK_EQ_INT(sm_ack(&sm, 1, NULL, NULL), 0);           /* the same h again: nothing */
    CHECK_EQ_INT(sm.unacked.len, 1);
    CHECK_EQ_INT(sm_ack(&sm, 3, NULL, NULL), -1);          /* more than was sent */
    CHECK_EQ_INT(sm.unacked.len, 1);
    CHECK_EQ_INT(sm.acked, 1);
    CHECK_EQ_INT(sm_ack(&sm, UINT32_MAX, NULL, NULL), -1); /* behind: 2^32 - 2 "ahead" */
    CHECK_EQ_INT(sm_ack(&sm, 2, NULL, NULL), 0);
    CHECK_EQ_INT(sm.unacked.len, 0);
    sq_clear(&sm.unacked);
}

TEST_MAIN(TEST_CASE(test_ring_grows_while_wrapped), TEST_CASE(test_parts_share_references),
          TEST_CASE(test_ack_counts_modulo_2_32))
