/* sm.h - XEP-0198 stream management and XEP-0352 client state indication:
 * what a session keeps so that a lost connection loses no stanza.
 *
 * A stanza queue (struct sq) is a ring of stanzas, each a few refcounted
 * chunks shared with the write queues (router.c serializes a stanza once;
 * the queue holds references, not copies). A session with stream management
 * enabled keeps every stanza it sent in its unacknowledged queue until the
 * client's <a h/> covers it; a client that said it is inactive (CSI) has its
 * non-urgent stanzas held in a second queue until something urgent comes.
 *
 * Lifetime of a resumable session (docs/stream-management.md):
 *   bound --enable resume--> resumable --connection lost--> detached
 *   detached --<resume previd/> on a new stream--> bound (new connection)
 *   detached --c2s.resume_timeout--> ended: its unacknowledged stanzas are
 *   re-routed (messages to other resources or offline storage, else an
 *   error to the sender; iq requests get an error reply), then it is freed.
 * A detached session stays in the account table: it is still available,
 * and what is sent to it waits in its queue (bounded: past the bound the
 * session ends as above). */
#ifndef HERALD_SM_H
#define HERALD_SM_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uthash.h>

#define NS_SM "urn:xmpp:sm:3"
#define NS_CSI "urn:xmpp:csi:0"

struct chunk;
struct herald;
struct session;
struct xnode;

/* At most this many chunks make one stanza (an envelope and a shared body). */
#define SQ_PARTS 2

/* What a stanza is, when its acknowledgement matters beyond the queue: a
 * notification of a durable pubsub subscription (node, item seq, and
 * whether the subscription is the session's bare JID's or its full JID's). */
struct sq_tag {
    uint64_t node_id;          /* 0: not a durable notification */
    uint64_t seq;
    bool bare;
};

struct sq_entry {
    struct chunk *part[SQ_PARTS];
    uint8_t n;
    struct sq_tag tag;
};

/* A ring of stanzas; owns one reference to each part. */
struct sq {
    struct sq_entry *e;
    uint32_t cap, head, len;
    size_t bytes;
};

/* Appends a stanza (takes its own references; tag may be NULL). 0 or
 * HERALD_ENOMEM. */
int sq_push(struct sq *q, struct chunk *const *parts, size_t n, const struct sq_tag *tag);
/* The i-th stanza from the oldest (i < len). */
const struct sq_entry *sq_at(const struct sq *q, uint32_t i);
/* Drops the n oldest stanzas (n <= len). */
void sq_pop(struct sq *q, uint32_t n);
void sq_clear(struct sq *q);

struct sm_state {
    bool enabled;
    bool resumable;        /* has an id in herald's table: can be resumed */
    bool detached;         /* its connection is gone: waiting for <resume/> */
    bool ack_requested;    /* our <r/> is unanswered */
    bool ack_due;          /* the client's <r/> waits for the commit */
    uint32_t h_in;         /* stanzas handled from the client (wraps at 2^32) */
    uint32_t h_out;        /* stanzas sent to the client since <enable/> */
    uint32_t acked;        /* the client's last h: h_out - acked are unacked */
    unsigned timeout_s;    /* how long a detached session waits */
    uint64_t detached_ms;
    struct sq unacked;
    char id[33];
    UT_hash_handle hh;     /* herald->sm_ids, by id (resumable sessions) */
    struct session *det_prev, *det_next; /* herald->sm_detached */
    struct session *ack_next;            /* herald->sm_ack_list */
};

struct csi_state {
    bool inactive;
    struct sq held;        /* non-urgent stanzas held while inactive */
};

/* The client has handled every stanza up to h (modulo 2^32): they leave
 * the queue, each seen by acked(ud, entry) first (acked may be NULL). Returns -1 when h acknowledges more than was sent (§4: the
 * stream is then in error, undefined-condition). */
typedef void sm_acked_fn(void *ud, const struct sq_entry *e);
int sm_ack(struct sm_state *sm, uint32_t h, sm_acked_fn *acked, void *ud);

/* Handles a top-level element in NS_SM or NS_CSI on a session that is
 * authenticated (bind state) or bound; returns false when el is neither. */
bool sm_element(struct session *s, const struct xnode *el);

/* Records a stanza about to be written to the client (SM enabled). Returns
 * 0, or HERALD_ELIMIT when the unacknowledged queue is past its bound (the
 * caller ends the session) or HERALD_ENOMEM. */
int sm_record(struct session *s, struct chunk *const *parts, size_t n, const struct sq_tag *tag);

/* CSI: true when the stanza was held back (the session is inactive and it
 * is not urgent); an urgent one first releases what is held. */
bool csi_hold(struct session *s, struct chunk *const *parts, size_t n);
/* Writes everything held (client active again, or before it leaves). */
void csi_release(struct session *s);

/* The connection under a resumable session is gone (or is being dropped by
 * a timeout): keep the session detached. False if it is not resumable. */
bool sm_detach(struct session *s);

/* The session is over for good (unregistered already): re-routes its
 * unacknowledged stanzas and frees the SM and CSI state. */
void sm_end(struct session *s);

/* Takes a detached session off the detached list (before it is freed). */
void sm_forget_detached(struct session *s);

/* Resumption: takes the state of the detached or stale session `old` into
 * `s` (authenticated as the same account, not bound), which keeps its own
 * connection and parser; old is freed. */
void sm_take_over(struct session *s, struct session *old);

/* Sends <r/> unless one is unanswered (the sweep asks idle clients). */
void sm_request_ack(struct session *s);

/* Before each batch commit: re-routes the unacknowledged stanzas of
 * sessions that ended since. */
void sm_prepare(struct herald *h);

/* Periodic: ends detached sessions whose time ran out, asks idle clients
 * for acknowledgements. */
void sm_sweep(struct herald *h, uint64_t now);
/* Shutdown: ends every detached session. */
void sm_end_all_detached(struct herald *h);

#endif
