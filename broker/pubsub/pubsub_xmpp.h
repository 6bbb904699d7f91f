/* pubsub_xmpp.h - the pubsub service over XMPP (XEP-0060): the iq and
 * message handlers (pubsub_iq.c: a dispatch table of element, iq type and
 * flags, from which disco#info features are generated) and the event
 * notifications (pubsub_notify.c: a sink of the service's events that
 * renders each event once and sends it to every subscriber behind a
 * per-subscriber envelope). Replies leave after the batch commit. */
#ifndef HERALD_PUBSUB_XMPP_H
#define HERALD_PUBSUB_XMPP_H

struct herald;
struct pubsub;
struct session;
struct xnode;
struct arena;
struct ps_xmpp;

/* The service's JID is [pubsub] jid or pubsub.<domain>. Registers the
 * notification sink on ps. *out is owned by the caller. */
int ps_xmpp_open(struct herald *h, struct pubsub *ps, struct ps_xmpp **out);
void ps_xmpp_close(struct ps_xmpp *x);
const char *ps_xmpp_jid(const struct ps_xmpp *x);

/* Stanzas addressed to the service (router.c calls these). */
void ps_xmpp_handle_iq(struct ps_xmpp *x, const char *who, struct xnode *iq, struct arena *a);
void ps_xmpp_handle_message(struct ps_xmpp *x, struct session *from, struct xnode *msg,
                            struct arena *a);

/* Durable subscriptions (herald#durable) over XMPP (pubsub_durable.c;
 * docs/pubsub.md "Catch-up"). A session's durable state is built at its
 * first available presence, replays the items after each subscription's
 * cursor (paced by its write queue: continued on drain), and from then on
 * passes each item once, in order. Cursors move when XEP-0198 acknowledges
 * a notification (durable_acked, then durable_flush), or, without stream
 * management, when it is written (saved by the sweep and at the end). */
struct sq_entry;
void durable_available(struct session *s);
void durable_continue(struct session *s);
void durable_acked(void *ud, const struct sq_entry *e);
void durable_flush(struct session *s);
void durable_end(struct session *s);

#endif
