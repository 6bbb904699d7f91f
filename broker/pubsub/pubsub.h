/* pubsub.h - the publish/subscribe service (XEP-0060 semantics), free of
 * any protocol.
 *
 * The service owns nodes, their configuration, affiliations, subscriptions
 * and items (in LMDB through store.h, with an index of nodes and subscribers
 * in memory). Front ends (the XMPP edge in pubsub_iq.c, the REST bridge in
 * api/rest.c) call the functions below with the requester's JID; every read
 * and every change applies the access rules here, so no front end can skip
 * a check. Nothing here knows XML or JSON: payloads are bytes the edges
 * serialize, configuration is (var, values) pairs, errors are HERALD_E*
 * codes (errors.h) with an optional detail (pubsub_why).
 *
 * Changes. Each change is one operation: a nested transaction inside the
 * loop turn's write batch (batch.h). A storage error (map full, I/O) fails
 * only that operation: its writes are rolled back, the in-memory index is
 * left as it was, and the call returns the code (HERALD_EFULL,
 * HERALD_EIO); other operations of the same turn go on and commit.
 *
 * Events. After the batch that holds a change has committed, the service
 * emits typed events (struct ps_event) to every registered sink, in the
 * order the changes were made. The XMPP notifications (pubsub_notify.c) and
 * the REST event streams (api/sse.c) are sinks. If the batch fails, no event
 * of it is emitted and the index is reloaded from storage.
 *
 * Lifetimes. Strings passed in are only read during the call. Pointers in
 * structs handed to callbacks are valid during the callback only; pointers
 * in out-structs (ps_node_info, ps_subscription) until the next call that
 * changes the service. */
#ifndef HERALD_PUBSUB_H
#define HERALD_PUBSUB_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pubsub_config.h"

struct pubsub;
struct store;
struct batch;

#define PS_NODE_NAME_MAX 256
#define PS_ITEM_ID_MAX 256
#define PS_SUBID_MAX 19

enum ps_aff { AFF_NONE, AFF_OWNER, AFF_PUBLISHER, AFF_PUBLISH_ONLY, AFF_MEMBER, AFF_OUTCAST };
enum ps_sub_state { SUB_NONE, SUB_SUBSCRIBED, SUB_PENDING };

/* What the service asks of the rest of the server (the presence access
 * model): does contact hold a presence subscription to owner? Both bare. */
struct pubsub_hooks {
    bool (*presence_subscribed)(void *ud, const char *owner, const char *contact);
    /* The roster access model (§4.5): is contact (bare) in one of groups
     * ('\n'-separated) in owner's roster? NULL: never. */
    bool (*in_roster_groups)(void *ud, const char *owner, const char *contact, const char *groups);
    /* PEP (XEP-0163 §4.3): calls fn for every full JID that gets a PEP
     * node's notifications without a subscription (service: the owner's
     * bare JID, node: the name within it). NULL: none. */
    void (*pep_recipients)(void *ud, const char *service, const char *node,
                           void (*fn)(void *fud, const char *jid, const char *const *subids,
                                      size_t nsubids, const char *via),
                           void *fud);
    /* A lease now ends at until (unix ms), earlier than pubsub_lease_next
     * said before: re-arm the timer. NULL: no timer (tests call expire). */
    void (*lease_armed)(void *ud, uint64_t until);
    /* Quotas ([quotas] and [quota:JID], docs/pubsub.md "Quotas"): sets the
     * quota fields (max_publish_rate, max_subscribers, max_node_bytes) a new
     * node of pubsub.<domain> created by owner (bare) starts from; fields
     * its creator gives apply over them. NULL: no quota. */
    void (*quota_defaults)(void *ud, const char *owner, struct ps_config *cfg);
    void *ud;
};

struct pubsub_opts {
    struct store *store;
    struct batch *batch;
    struct ps_caps caps;
    bool auto_create;          /* publishing to a missing node creates it (§7.1.4) */
    struct pubsub_hooks hooks;
    unsigned max_nodes_per_account; /* owner affiliations per bare JID; 0: no quota */
    unsigned node_page_size;   /* nodes per page of a node list at most (0: 100) */
    unsigned pep_max_nodes_per_account; /* PEP nodes per account; 0: no quota */
    uint32_t pep_max_items;    /* cap on a PEP node's pubsub#max_items (0: caps.max_items) */
};

/* Loads the index from storage. *out is owned by the caller. */
int pubsub_open(const struct pubsub_opts *o, struct pubsub **out);
void pubsub_close(struct pubsub *ps);

/* The detail of the last failed call (feature for HERALD_EUNSUPPORTED,
 * a sentence for configuration errors); fields may be NULL / "". */
const struct ps_why *pubsub_why(const struct pubsub *ps);
/* After a quota refusal (HERALD_ERATE, HERALD_ETOO_MANY_SUBS,
 * HERALD_ENODE_FULL): whole seconds until a retry may succeed (REST's
 * Retry-After); 0 after any other call. */
unsigned pubsub_retry_after(const struct pubsub *ps);

const struct ps_caps *pubsub_caps(const struct pubsub *ps);
bool pubsub_auto_create(const struct pubsub *ps);
unsigned pubsub_node_count(const struct pubsub *ps);
/* The most nodes one page of a node list holds, and its default size. */
unsigned pubsub_node_page_size(const struct pubsub *ps);

/* ---- reads ---- */

struct ps_node_info {
    const char *name;
    const char *service;       /* PEP: the owner's bare JID; NULL: pubsub.<domain> */
    uint64_t id;               /* never reused, even after the node is deleted */
    uint64_t created;          /* unix ms */
    uint32_t item_count;
    uint64_t last_seq;         /* sequence of the newest item ever published (0: none) */
    uint8_t affiliation;       /* the requester's */
    struct ps_config config;
    const char *owners[8];     /* the first owners (bare JIDs) */
    unsigned nowners;
    uint64_t payload_bytes;    /* of the stored items (herald#max_node_bytes counts them) */
    unsigned subscriptions;    /* all, pending too (herald#max_subscribers counts them) */
};

/* A node the requester may see (listing policy: docs/pubsub.md): whitelist
 * nodes only to affiliated entities, no node to its outcasts. */
int pubsub_node_get(struct pubsub *ps, const char *who, const char *node, struct ps_node_info *out);
/* Whether the requester may read the node's items (access model, §6.5):
 * 0 or the error a retrieval would get. */
int pubsub_node_readable(struct pubsub *ps, const char *who, const char *node);

typedef int ps_node_fn(void *ud, const struct ps_node_info *n);
/* One page of the nodes the requester may see: every node (parent NULL),
 * or the child nodes of collection `parent` (which the requester must be
 * able to read); fn returning nonzero stops the walk and is returned.
 * There is no unpaged list: a list of every node is what an account with
 * many nodes turns into an answer too large to send (XEP-0059 for
 * disco#items, ?after= for REST). The order is the nodes' creation order
 * (their ids, never reused), kept by the index, so a page costs a walk
 * from its cursor and no sort. A cursor is a node id: the page holds the
 * visible nodes after (or before) it, whether or not the cursor's node
 * still exists. */
struct ps_nodes_query {
    unsigned max;              /* page size (> 0) */
    uint64_t after;            /* ids > after (0: from the first) */
    uint64_t before;           /* ids < before, the page ending there (0: not asked) */
    bool last_page;            /* XEP-0059 §2.5 empty <before/>: the last page */
    bool count;                /* count every visible node (a full walk) */
};
struct ps_nodes_page {
    unsigned n;                /* nodes given to fn */
    uint64_t first, last;      /* ids of the first and last of them */
    bool more;                 /* visible nodes follow the last one */
    unsigned count;            /* all visible nodes, when asked */
    unsigned first_index;      /* with count: visible nodes before the first (XEP-0059 §2.1) */
};
int pubsub_nodes_page(struct pubsub *ps, const char *who, const char *parent,
                      const struct ps_nodes_query *q, ps_node_fn *fn, void *ud,
                      struct ps_nodes_page *out);

struct ps_item {
    uint64_t seq;              /* per-node publish sequence: later publishes have larger ones */
    uint64_t published;        /* unix ms */
    const char *id;
    size_t id_len;
    const char *publisher;     /* bare JID */
    size_t publisher_len;
    const char *payload;       /* serialized payload element, may be empty */
    size_t payload_len;
    uint8_t lease;             /* PS_LEASE_* (docs/leases.md) */
    uint32_t lease_secs;       /* PS_LEASE_TIMED: its length */
    uint64_t lease_until;      /* PS_LEASE_TIMED: when it ends (unix ms) */
};
typedef int ps_item_fn(void *ud, const struct ps_item *it);
enum { PS_LEASE_NONE, PS_LEASE_TIMED, PS_LEASE_SESSION };

struct ps_items_query {
    unsigned max;              /* 0: no limit */
    bool oldest_first;         /* else newest first */
    uint64_t before_seq;       /* newest first: items with seq < before_seq (0: from the newest) */
    uint64_t after_seq;        /* oldest first: items with seq > after_seq */
    const char *before_id;     /* a cursor item id instead of before_seq (HERALD_ENOTFOUND if gone) */
    const char *after_id;      /* a cursor item id instead of after_seq */
    const char *const *ids;    /* nids > 0: these items, in this order; missing ids are skipped */
    size_t nids;
    bool committed;            /* read committed data only (not this turn's open batch) */
};

/* Items of a leaf node the requester may read (§6.5). */
int pubsub_items(struct pubsub *ps, const char *who, const char *node,
                 const struct ps_items_query *q, ps_item_fn *fn, void *ud);

struct ps_subscription {
    const char *node;
    const char *jid;           /* as subscribed: bare or full */
    const char *subid;
    uint8_t state;             /* enum ps_sub_state */
    bool deliver;              /* pubsub#deliver subscription option */
    bool durable;              /* herald#durable subscription option */
};
typedef int ps_sub_fn(void *ud, const struct ps_subscription *s);

/* The requester's own subscriptions (its bare JID and its full JIDs) on
 * every node, or on `node` only (§5.6). */
int pubsub_subscriptions_own(struct pubsub *ps, const char *who, const char *node, ps_sub_fn *fn,
                             void *ud);
/* Every subscription of a node; owners only (§8.8.1). */
int pubsub_subscriptions_node(struct pubsub *ps, const char *who, const char *node, ps_sub_fn *fn,
                              void *ud);
/* The one subscription of jid (which must be the requester's) that a
 * request names (§6.3.2-6.3.4): subid may be NULL when there is one. */
int pubsub_subscription_get(struct pubsub *ps, const char *who, const char *node, const char *jid,
                            const char *subid, struct ps_subscription *out);

typedef int ps_aff_fn(void *ud, const char *node, const char *jid, uint8_t aff);
/* The requester's affiliations on every node or on `node` (§5.7). */
int pubsub_affiliations_own(struct pubsub *ps, const char *who, const char *node, ps_aff_fn *fn,
                            void *ud);
/* Every affiliation of a node; owners only (§8.9.1). */
int pubsub_affiliations_node(struct pubsub *ps, const char *who, const char *node, ps_aff_fn *fn,
                             void *ud);

/* The default configuration of a new node (§8.3). */
void pubsub_config_default(const struct pubsub *ps, struct ps_config *out);
/* A node's configuration; owners only (§8.2.1). */
int pubsub_config_get(struct pubsub *ps, const char *who, const char *node, struct ps_config *out);

/* Nodes owned by the requester that have pending subscriptions (§8.7). */
typedef int ps_name_fn(void *ud, const char *node);
int pubsub_pending_nodes(struct pubsub *ps, const char *who, ps_name_fn *fn, void *ud);

/* ---- changes (each one operation; results are durable once the batch
 * commits, and the edge answers after that) ---- */

/* Creates a node (name NULL: an instant node with a generated name, §8.1.2),
 * configured by fields over the defaults (§8.1.3). The name goes to
 * name_out (at least PS_NODE_NAME_MAX + 1 bytes). An account that owns
 * max_nodes_per_account nodes gets HERALD_EQUOTA. Joining a collection
 * (pubsub#collection, here or in pubsub_configure) needs the requester to
 * own that collection (XEP-0248 children_association_policy "owners"). */
int pubsub_create(struct pubsub *ps, const char *who, const char *name,
                  const struct ps_field *cfg, size_t ncfg, char *name_out);
/* Applies fields to the node's configuration (§8.2.4); a smaller max_items
 * trims at once. A new access model applies to existing subscriptions in
 * the same operation: those it no longer admits are removed and their
 * subscribers get a PS_EV_SUBSCRIPTION with state SUB_NONE (§8.8.4). */
int pubsub_configure(struct pubsub *ps, const char *who, const char *node,
                     const struct ps_field *cfg, size_t ncfg);
int pubsub_delete(struct pubsub *ps, const char *who, const char *node, const char *redirect);
int pubsub_purge(struct pubsub *ps, const char *who, const char *node);

struct ps_publish {
    const char *node;
    const char *item_id;       /* NULL or "": generated */
    bool has_item;             /* an <item/> was given (XMPP) */
    const char *payload;       /* serialized payload element; NULL: none */
    size_t payload_len;
    const struct ps_field *options; /* publish-options preconditions (§7.1.5) */
    size_t noptions;
    /* A lease (docs/leases.md): the item is retracted, with notification,
     * lease_secs after the publish, or when the session lease_session
     * (nonzero, chosen by the edge) ends (pubsub_leases_session_end). */
    uint32_t lease_secs;
    uint64_t lease_session;
};
#define PS_LEASE_MAX_SECS (10u * 365 * 86400) /* ten years */
struct ps_published {
    char id[PS_ITEM_ID_MAX + 1];
    uint64_t seq;
    bool replaced;             /* an item with this id existed */
};
int pubsub_publish(struct pubsub *ps, const char *who, const struct ps_publish *req,
                   struct ps_published *out);
/* Whether `who` may publish to `node` (§7.1.3): 0, or the error
 * pubsub_publish would return before looking at the payload (no such node,
 * a collection, forbidden by the publish model or an affiliation; for a
 * missing node under auto_create, what creating it needs). pubsub_publish
 * applies the same check, so an edge can refuse before parsing a body. */
int pubsub_publish_allowed(struct pubsub *ps, const char *who, const char *node);
/* Retracts an item (§7.2); subscribers are notified if notify or the node's
 * notify_retract says so. */
int pubsub_retract(struct pubsub *ps, const char *who, const char *node, const char *item_id,
                   bool notify);

/* Subscribes jid (the requester's bare or full JID) with the given
 * subscription options (§6.1, §6.3.7); invalid options fail the whole
 * request with HERALD_EINVALID_OPTIONS. out (may be NULL) describes the new
 * subscription. */
int pubsub_subscribe(struct pubsub *ps, const char *who, const char *node, const char *jid,
                     const struct ps_field *opts, size_t nopts, struct ps_subscription *out);
/* What follows a new subscription of jid, once the edge has queued its
 * answer (so the subscriber hears "subscribed" first): the node's last
 * published item when its send_last_published_item is on_sub (§6.1.7), as
 * a PS_EV_LAST_ITEM event. */
void pubsub_subscribed(struct pubsub *ps, const char *node, const char *jid);
int pubsub_unsubscribe(struct pubsub *ps, const char *who, const char *node, const char *jid,
                       const char *subid);
/* Sets subscription options (§6.3.5); a field not given keeps its value. */
int pubsub_subscription_configure(struct pubsub *ps, const char *who, const char *node,
                                  const char *jid, const char *subid, const struct ps_field *opts,
                                  size_t nopts);
/* Owner: sets jid's subscription state (SUB_NONE removes all of jid's;
 * §8.8.2). */
int pubsub_owner_set_subscription(struct pubsub *ps, const char *who, const char *node,
                                  const char *jid, uint8_t state);
/* Owner: sets jid's affiliation (AFF_NONE removes it; §8.9.2). A node keeps
 * at least one owner (HERALD_ENOTACCEPTABLE). Subscriptions of jid that the
 * new affiliation no longer admits (an outcast, or a former member of a
 * whitelist node) are removed as in pubsub_configure. Making an account
 * owner counts against its node quota (HERALD_EQUOTA). */
int pubsub_owner_set_affiliation(struct pubsub *ps, const char *who, const char *node,
                                 const char *jid, uint8_t aff);
/* Owner answers a pending subscription (§8.6). */
int pubsub_authorize(struct pubsub *ps, const char *who, const char *node, const char *jid,
                     const char *subid, bool allow);
/* Owner asks again for the pending subscriptions of a node (§8.7): one
 * PS_EV_APPROVAL_PENDING event each, to the requester. */
int pubsub_pending_resend(struct pubsub *ps, const char *who, const char *node);

/* Cluster mode (docs/cluster.md): while f is set, the service's clock reads
 * f->time_ms and its random choices (item ids, subids, instant node names)
 * come from f->seed, so applying one log entry on every instance gives the
 * same result; NULL goes back to the clock and the RNG. */
struct ps_fixed {
    uint64_t time_ms;
    uint64_t seed;
};
void pubsub_fix(struct pubsub *ps, const struct ps_fixed *f);

/* ---- leases (docs/leases.md) ----
 * A leased item is retracted when its lease ends, a retract with
 * notification (PS_EV_RETRACTED, notify set) like any other. Leases are
 * stored with their items and in an index ordered by expiry, so the work
 * of expiry is proportional to the leases that end, and leases survive a
 * restart with the clock running. */

/* Gives an item a new lease of secs seconds from now (0: its previous
 * length; an item without a timed lease then gets HERALD_EINVAL). The
 * publisher of the item or an owner of the node may renew. HERALD_ENOTFOUND
 * once the item is gone. *until (may be NULL) gets the new expiry. */
int pubsub_lease_renew(struct pubsub *ps, const char *who, const char *node, const char *item_id,
                       uint32_t secs, uint64_t *until);
/* When the earliest lease known ends (unix ms; UINT64_MAX: none). The
 * server arms a timer for it; hooks.lease_armed says when it moves earlier. */
uint64_t pubsub_lease_next(const struct pubsub *ps);
/* Retracts the items whose leases have ended, at most max of them (each
 * its own operation). Returns 1 when more are due (call again next loop
 * turn: the loop stays responsive when 100,000 leases end together), 0
 * when none is, or a HERALD_E* code (storage trouble: try again later). */
int pubsub_leases_expire(struct pubsub *ps, unsigned max);
/* Retracts the items leased to session (as pubsub_leases_expire does). */
void pubsub_leases_session_end(struct pubsub *ps, uint64_t session);
/* At start, once the sinks are registered: retracts every item leased to a
 * session of the previous run (no session survives a restart). */
void pubsub_leases_start(struct pubsub *ps);
/* Leases ended so far (for /metrics). */
uint64_t pubsub_leases_expired(const struct pubsub *ps);

/* Deletes items older than their node's item_expire (once a second). */
void pubsub_expire(struct pubsub *ps);

/* ---- quotas (docs/pubsub.md "Quotas") ----
 * A node's herald#max_publish_rate, herald#max_subscribers and
 * herald#max_node_bytes refuse a publish (HERALD_ERATE, HERALD_ENODE_FULL)
 * or a subscription (HERALD_ETOO_MANY_SUBS); pubsub_retry_after says when
 * to try again. Refusals are counted for /metrics. */
enum ps_quota { PS_QUOTA_RATE, PS_QUOTA_SUBSCRIBERS, PS_QUOTA_BYTES, PS_NQUOTAS };
extern const char *const ps_quota_names[PS_NQUOTAS]; /* "rate", "subscribers", "bytes" */
#define PS_QUOTA_NODES_MAX 100 /* nodes counted one by one; the others add up in node "" */
/* Calls fn for each counted node in the order of their first refusal, then
 * once with node "" for the rest (PEP nodes, nodes past the bound). */
typedef void ps_quota_fn(void *ud, const char *node, const uint64_t refused[PS_NQUOTAS]);
void pubsub_quota_refusals(struct pubsub *ps, ps_quota_fn *fn, void *ud);

/* ---- events ---- */

enum ps_event_kind {
    PS_EV_PUBLISHED,        /* item_*, seq, publisher, payload */
    PS_EV_RETRACTED,        /* item_id, notify */
    PS_EV_PURGED,
    PS_EV_DELETED,          /* redirect (may be NULL) */
    PS_EV_CONFIGURED,       /* config is the new configuration */
    PS_EV_SUBSCRIPTION,     /* to = jid, subid, state: the owner decided (§8.6.2), or
                             * an access change removed it (state SUB_NONE, §8.8.4) */
    PS_EV_APPROVAL_PENDING, /* to = an owner; jid, subid: the subscriber (§8.6.1) */
    PS_EV_LAST_ITEM,        /* to = the new subscriber; item_* and payload (§6.1.7) */
};

struct ps_event {
    enum ps_event_kind kind;
    const char *node;
    const char *service;       /* PEP: the owner's bare JID; NULL: pubsub.<domain> */
    uint64_t node_id;
    struct ps_config config;   /* the node's configuration when the change was made */
    const char *item_id;
    uint64_t seq;
    uint64_t published;
    const char *publisher;
    const char *payload;
    size_t payload_len;
    bool notify;               /* PS_EV_RETRACTED: subscribers are to be told */
    const char *redirect;
    const char *to;
    const char *jid;
    const char *subid;
    uint8_t state;
};

/* A sink sees every event after its commit. It must not change the service
 * from the callback. At most 8 sinks. */
typedef void ps_sink_fn(void *ud, struct pubsub *ps, const struct ps_event *ev);
int pubsub_sink_add(struct pubsub *ps, ps_sink_fn *fn, void *ud);

/* A journal sees every event when the change is made, before the commit,
 * in the same loop turn: what it writes through the batch (its own
 * operation) commits in the same LMDB transaction as the change, so a crash
 * loses both or neither (the webhooks' outbox, api/webhooks.c). It must not
 * change the service; a failure of its own is its to report (the change
 * stands). Pointers in ev are valid during the call. At most 4. */
typedef void ps_journal_fn(void *ud, struct pubsub *ps, const struct ps_event *ev);
int pubsub_journal_add(struct pubsub *ps, ps_journal_fn *fn, void *ud);

/* The subscribers an event of the node reaches, grouped by JID: for each
 * JID with delivery on, its subids (several when the JID holds several
 * subscriptions, §12.7), then the same for every collection above the node
 * with `via` naming it (XEP-0248); for PS_EV_DELETED the deleted node's
 * own subscribers only. Call from a sink only. */
typedef void ps_recipient_fn(void *ud, const char *jid, const char *const *subids, size_t nsubids,
                             const char *via);
void pubsub_event_recipients(struct pubsub *ps, const struct ps_event *ev, ps_recipient_fn *fn,
                             void *ud);

/* ---- durable subscriptions (herald#durable; docs/pubsub.md "Catch-up") ----
 * A durable subscription keeps a cursor: the seq of the last item its
 * subscriber has had (acknowledged through XEP-0198, or written to it
 * without stream management). The XMPP edge replays the items after it when
 * the subscriber comes back (broker/durable.c). */

/* Whether any subscription of the node is durable (one test per event). */
bool pubsub_node_has_durable(struct pubsub *ps, uint64_t node_id);
/* Whether jid (exactly: bare or full as subscribed) holds a delivering
 * durable subscription on the node; *cursor (may be NULL) gets its cursor. */
bool pubsub_durable_cursor(struct pubsub *ps, uint64_t node_id, const char *jid, uint64_t *cursor);
/* Every delivering durable subscription held by full or by bare (either may
 * be NULL): fn(ud, node name, node id, subscription JID, cursor). */
typedef void ps_durable_fn(void *ud, const char *node, uint64_t node_id, const char *jid,
                           uint64_t cursor);
void pubsub_durable_each(struct pubsub *ps, const char *full, const char *bare, ps_durable_fn *fn,
                         void *ud);
/* jid has had every item of the node up to seq: its durable subscriptions'
 * cursors move there (never back), as one operation. 0 or HERALD_E*. */
int pubsub_durable_advance(struct pubsub *ps, uint64_t node_id, const char *jid, uint64_t seq);

/* ---- services: PEP (XEP-0163), docs/pubsub.md "PEP" ----
 * Every node belongs to one service: pubsub.<domain> or an account's bare
 * JID. The calls above address pubsub.<domain>; after pubsub_scope(ps,
 * bare) they address that account's PEP nodes by their names within it,
 * with the same rules, plus PEP's: only the account creates (also by
 * publishing: auto-create is always on), its defaults (presence access,
 * one item, last item on presence), no collections, its own node quota
 * and max_items cap. The edge sets the scope around one request and sets
 * it back to NULL; service is only read during those calls. Events carry
 * the service (ps_event.service) and PEP node names. PEP nodes are never
 * in pubsub.<domain>'s lists. */
void pubsub_scope(struct pubsub *ps, const char *service);
/* The nodes of a service (a bare JID; NULL: of every PEP service) that
 * who may see (a walk of every node: for disco#items on an account and
 * presence, not per stanza). */
int pubsub_service_nodes(struct pubsub *ps, const char *service, const char *who, ps_node_fn *fn,
                         void *ud);
/* XEP-0163 §4.3.2: in the scope's service, a PS_EV_LAST_ITEM of node to
 * `to` (a full JID) when the node sends its last item on presence, has
 * one, and `to` may read it. */
void pubsub_last_item_to(struct pubsub *ps, const char *node, const char *to);

#endif
