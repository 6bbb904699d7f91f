/* pubsub_xmpp_impl.h - private to the pubsub XMPP edge (pubsub_iq.c and
 * pubsub_notify.c): the edge's state and the notification sink.
 *
 * struct ps_xmpp holds the service JID, the envelope prefix every
 * notification starts with ("<message from='<jid>' to='", escaped once when
 * the edge opens) and the counters that number notifications ('ps-N') and
 * XEP-0050 command sessions. Nothing outside the two files sees it. */
#ifndef HERALD_PUBSUB_XMPP_IMPL_H
#define HERALD_PUBSUB_XMPP_IMPL_H
#include <stddef.h>
#include <stdint.h>

#include "pubsub_xmpp.h"

struct ps_event;

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

/* The sink registered with pubsub_sink_add (ud is the struct ps_xmpp):
 * renders each event once and sends it to its recipients. */
void ps_notify_sink(void *ud, struct pubsub *ps, const struct ps_event *ev);

#endif
