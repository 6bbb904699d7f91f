/* router.h - delivers stanzas by their 'to' address (RFC 6120 §10, RFC 6121 §8).
 *
 * Input is a stanza from a bound session, already checked by the stream
 * layer; the router stamps 'from', decides the target (the server itself, a
 * local account's resources, or a remote domain we cannot reach) and either
 * hands it to the iq table, queues it on the recipients' connections (the
 * serialized bytes shared by reference), or answers with a stanza error. */
#ifndef HERALD_ROUTER_H
#define HERALD_ROUTER_H
#include <stdbool.h>
#include <stddef.h>

struct session;
struct xnode;
struct arena;

void router_route(struct session *from, struct xnode *stanza, struct arena *a);

/* Replies to stanza (from its sender) with a stanza error built from a
 * HERALD_E* code or an explicit condition (cond non-NULL wins). Never
 * answers an error with an error. */
void router_error(struct session *to, const struct xnode *stanza, struct arena *a, int err,
                  const char *cond, const char *type);

struct herald;
struct chunk;

/* Which sessions a bare JID means for router_send. */
enum route_mode {
    ROUTE_FULL,      /* a full JID only (iq replies) */
    ROUTE_MESSAGE,   /* bare: highest non-negative priority resources (headline: all of them) */
    ROUTE_PRESENCE,  /* bare: every available resource (RFC 6121 §8.5.2.1.2) */
};

/* A stanza serialized once into a refcounted chunk (the caller owns one
 * reference), or NULL without memory. */
struct chunk *router_chunk(const struct xnode *st);

/* Queues the concatenation of parts on the session(s) `to` names: a full
 * JID's session, or for a bare JID the resources the mode selects. Returns
 * how many sessions got it. */
size_t router_send(struct herald *h, const char *to, struct chunk *const *parts, size_t nparts,
                   enum route_mode mode);

/* XEP-0198: what became of a stanza a session sent but the client never
 * acknowledged, once that session has ended for good (sm.c). */
enum redeliver {
    REDELIVER_ROUTED,   /* to another resource, or into offline storage */
    REDELIVER_BOUNCED,  /* an error went back to its sender */
    REDELIVER_DROPPED,  /* not re-sent: presence, headline, copies, results */
};
enum redeliver router_redeliver(struct herald *h, struct xnode *st, struct arena *a);

/* Cluster mode: a stanza another instance routed or offered here
 * (cluster.c), given to this instance's sessions only: the full JID's; for a
 * message to a bare JID the available resources chosen as RFC 6121 §8.5.2
 * says among those here; for presence to a bare JID every available one; a
 * probe is answered (presence_probe_local). Never forwards again. Returns
 * how many got it. */
size_t router_deliver_local(struct herald *h, struct xnode *st);

/* A stanza from a component or an authenticated peer server, its 'from'
 * checked by the stream (component.c, s2s.c): to the pubsub service, the
 * server, local accounts, or on to another component or peer. */
void router_route_external(struct herald *h, struct xnode *st, struct arena *a);
/* Answers a stanza that could not be delivered, given as its serialized
 * bytes (queued for a peer that never came), with the error err to its
 * sender. Never answers an error with an error. */
void router_bounce_bytes(struct herald *h, const char *data, size_t len, int err);

/* Tells `to` that its iq `id` failed after all because the write batch
 * holding its change could not be committed (err: HERALD_E*). from may be
 * NULL. */
void router_batch_failed(struct herald *h, const char *to, const char *id, const char *from,
                         int err);

/* A reply skeleton for req: same element name, its id, to = req's from,
 * from = req's to (when set), and the given type. NULL on ENOMEM. */
struct xnode *router_reply(struct arena *a, const struct xnode *req, const char *type);

#endif
