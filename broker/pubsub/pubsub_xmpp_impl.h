/* pubsub_xmpp_impl.h - private to the pubsub XMPP edge (pubsub_iq.c and
 * pubsub_notify.c): the edge's state and the notification sink.
 *
 * struct ps_xmpp holds the service JID, the envelope prefix every
 * notification starts with ("<message from='<jid>' to='", escaped once when
 * the edge opens) and the counters that number notifications ('ps-N') and
 * XEP-0050 command sessions. Nothing outside the two files sees it. */
#ifndef HERALD_PUBSUB_XMPP_IMPL_H
#define HERALD_PUBSUB_XMPP_IMPL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pubsub_xmpp.h"

struct ps_event;
struct chunk;

struct ps_xmpp {
    struct herald *h;
    struct pubsub *ps;
    char *jid;        /* [pubsub] jid or pubsub.<domain> */
    char *env_prefix; /* "<message from='<jid>' to='", attribute-escaped */
    size_t env_prefix_len;
    uint64_t msg_seq; /* notification ids: 'ps-N' */
    uint64_t cmd_seq; /* XEP-0050 session ids of get-pending */
};

/* Builds x->env_prefix from x->jid. Returns 0 or HERALD_ENOMEM. */
int ps_notify_init(struct ps_xmpp *x);

/* The head of a notification to `to` ("<message from to type id>" and the
 * SHIM headers a recipient needs), in a chunk of its own (refs = 1), or
 * NULL without memory. */
struct chunk *ps_notify_envelope(struct ps_xmpp *x, const char *to, uint8_t notif_type,
                                 const char *const *subids, size_t nsubids, const char *via);

/* The rest of an item notification: <event><items><item/></items></event>,
 * then with published != 0 a XEP-0203 delay stamp, with seq != 0 a XEP-0359
 * stanza-id naming the item's seq, and </message>. */
struct ps_notify_item_args {
    const char *node, *item_id, *publisher, *payload;
    size_t payload_len;
    bool with_payload;
    uint64_t published;        /* unix ms, or 0 */
    uint64_t seq;              /* or 0 */
};
struct chunk *ps_notify_item(const struct ps_xmpp *x, const struct ps_notify_item_args *it);
/* ISO 8601 UTC of unix_ms (0: now, in whole seconds). */
void ps_notify_stamp(char *out, size_t cap, uint64_t unix_ms);

/* Durable subscriptions (pubsub_durable.c): a published item for jid, a
 * durable subscriber, delivered once per session in seq order. */
void durable_live(struct ps_xmpp *x, const struct ps_event *ev, const char *jid,
                  uint8_t notif_type);

/* The sink registered with pubsub_sink_add (ud is the struct ps_xmpp):
 * renders each event once and sends it to its recipients. */
void ps_notify_sink(void *ud, struct pubsub *ps, const struct ps_event *ev);

#endif
