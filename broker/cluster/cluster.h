/* cluster.h - cluster mode on NATS JetStream (docs/cluster.md).
 *
 * With a [cluster] section, every request that changes replicated state
 * (a pubsub iq set, a REST write, an account or token from the CLI) is
 * proposed to one JetStream stream, the log, instead of being handled at
 * once. Every instance consumes the whole log and applies each entry, in
 * stream order, with the same handlers single mode runs, into its own
 * LMDB: the same rules on the same state give the same result everywhere.
 * The instance that accepted a request answers it when it has applied its
 * entry and committed that apply; the others apply it silently and notify
 * their own subscribers. Without [cluster] none of this runs: every
 * function here is a test of h->cluster == NULL. */
#ifndef HERALD_CLUSTER_H
#define HERALD_CLUSTER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct herald;
struct config;
struct xnode;
struct http_conn;
struct http_req;
struct buf;
struct cl_entry;

/* Before the listeners open: connects to NATS, makes the log stream and
 * this instance's consumer, and applies the log up to its end (blocking).
 * 0 (also without [cluster]) or -1 after logging why. */
int cluster_open(struct herald *h);
/* At shutdown, on the loop: stops applying, answers waiting requests. */
void cluster_stop(struct herald *h);
/* After the loop has ended: closes NATS and frees everything. */
void cluster_close(struct herald *h);
/* Once a second: retries unstored proposals, answers expired ones. */
void cluster_sweep(struct herald *h);

/* Whether a change must be proposed rather than made: cluster mode, and
 * not while an entry of the log is being applied. */
bool cluster_proposes(const struct herald *h);
/* Whether answers made now are for a requester on another instance (the
 * apply of an entry this instance is not waiting for). */
bool cluster_muted(const struct herald *h);
/* An apply failed in a way other instances may not share (memory): this
 * instance stops applying and says so; it must be restarted. */
void cluster_apply_failed(struct herald *h, int rc);

/* The seam (docs/cluster.md, "The seam"): service is the PEP service (an
 * account's bare JID) or NULL for pubsub.<domain>; node the node the change
 * is about (NULL: none), which names the log subject. 0 when proposed (the answer
 * comes after the apply, or an error after cluster.publish_timeout_ms), or
 * HERALD_ECLUSTER / HERALD_ENOMEM to answer now. */
int cluster_propose_iq(struct herald *h, const char *who, const char *service, const char *node,
                       const struct xnode *iq);
int cluster_propose_rest(struct herald *h, struct http_conn *hc, const struct http_req *req,
                         const char *jid, uint8_t scopes, const char *node);

/* Routing (docs/cluster.md, "IM and iq between instances"): st, a message
 * or iq to a JID of the domain with no session here for it, is offered to
 * the other instances; true when sent (if none takes it within 2 s, the
 * fallback is router_redeliver's: another resource here, offline storage
 * here, or an error to the sender), false when it could not be (then route
 * it as single mode does). */
bool cluster_route(struct herald *h, struct xnode *st);

/* A durable subscription's cursor moved (pubsub_durable.c): proposed to the
 * log, so that every instance's copy moves; nobody waits for it (a lost
 * proposal means items sent again, never a gap). 0 or HERALD_E*. */
int cluster_propose_cursor(struct herald *h, uint64_t node_id, const char *jid, uint64_t seq);

/* IM state through the log (docs/cluster.md, "Presence and rosters"): a
 * roster iq set of the requester `full` (answered after its apply, like a
 * pubsub change), and a presence subscription change (nobody waits). 0 or
 * HERALD_E* to answer now. */
int cluster_propose_roster(struct herald *h, const char *full, const struct xnode *iq);
int cluster_propose_subscription(struct herald *h, const char *user, const char *contact,
                                 const char *type, const struct xnode *st);
/* A presence stanza (parts, as sent) offered to the other instances, which
 * give it to their sessions it is for; nobody answers. */
struct chunk;
void cluster_offer(struct herald *h, struct chunk *const *parts, size_t n);

/* /healthz: NULL when well (also in single mode), else why not, as a line. */
const char *cluster_unhealthy(const struct herald *h);

/* /metrics lines (cluster mode only). */
void cluster_metrics(struct herald *h, struct buf *b);

/* The NATS names and connection options of cfg's [cluster] section. */
struct cl_nats_opts;
struct cluster_names {
    char stream[64];
    char subjects[96];
};
void cluster_nats_opts(const struct config *cfg, const char *client, struct cluster_names *nm,
                       struct cl_nats_opts *o);

/* The CLI: stores e in the log and waits (up to 10 s) until the instance
 * whose data directory `store` is has applied it. 0, or an error with err
 * set. */
struct store;
/* The CLI, before it checks anything: waits (up to 10 s) until the instance
 * whose data directory `store` is has applied the log as it is now, so that
 * what the CLI reads there includes every earlier change. */
int cluster_cli_sync(const struct config *cfg, struct store *store, char *err, size_t errlen);
int cluster_cli_submit(const struct config *cfg, struct store *store, struct cl_entry *e, char *err,
                       size_t errlen);

#endif
