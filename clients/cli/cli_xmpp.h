/* cli_xmpp.h - a minimal blocking XMPP client for `herald pub --jid` and
 * `herald sub --jid`: TCP, STARTTLS (required, certificate verified against
 * the JID's domain unless insecure), SASL PLAIN over TLS, resource binding,
 * XEP-0060 publish, subscribe and unsubscribe, and a wait that hands each
 * received <message/> to a callback.
 * Stanzas are parsed by Herald's own hardened stream parser (xml_parser.h).
 * One struct per connection, owned by the caller (cli_xmpp_close frees). */
#ifndef HERALD_CLI_XMPP_H
#define HERALD_CLI_XMPP_H
#include <stdbool.h>
#include <stddef.h>

struct cli_xmpp_opts {
    const char *prog; /* "herald pub": prefix of messages on stderr */
    const char *jid;  /* account: local@domain (a resource is ignored) */
    const char *password;
    const char *host;    /* default: the JID's domain */
    int port;            /* default 5222 */
    const char *service; /* pubsub service JID; default pubsub.DOMAIN */
    const char *cacert;  /* trust anchors; default: the system's */
    bool insecure;       /* no certificate verification */
};

struct cli_xmpp;
struct xnode;
struct arena;

/* Called for each <message/> the server sends, while the tree lives (a
 * and msg are valid only during the call). */
typedef void (*cli_xmpp_message_fn)(void *ud, const struct xnode *msg, struct arena *a);

/* Connects, secures, authenticates and binds. Returns 0 with *out set, or
 * an exit code after saying why on stderr: CLI_REFUSED (authentication
 * failed, stream error), CLI_CONNECT (no connection, TLS failure, no
 * STARTTLS offered, timeout), CLI_USAGE (a bad JID). */
int cli_xmpp_connect(struct cli_xmpp **out, const struct cli_xmpp_opts *o);
/* Publishes payload (one serialized XML element) as an item of node, with
 * item_id (NULL: the service chooses) and a lease (0: none; publish-option
 * herald#lease). The id the item got goes to id_out. 0, CLI_REFUSED (the
 * service's error condition and text on stderr) or CLI_CONNECT. */
int cli_xmpp_publish(struct cli_xmpp *x, const char *node, const char *item_id, const char *payload,
                     unsigned long lease, char *id_out, size_t cap);
/* Where received messages go (NULL: ignored, the default). */
void cli_xmpp_on_message(struct cli_xmpp *x, cli_xmpp_message_fn fn, void *ud);
/* The full JID the server bound, and the pubsub service's JID. */
const char *cli_xmpp_full_jid(const struct cli_xmpp *x);
const char *cli_xmpp_service(const struct cli_xmpp *x);
/* Sends initial presence (<presence/>). 0 or CLI_CONNECT. */
int cli_xmpp_presence(struct cli_xmpp *x);
/* Subscribes the full JID to node (XEP-0060 §6.1) / removes that
 * subscription (§6.2). 0, CLI_REFUSED (the condition on stderr) or
 * CLI_CONNECT. A subscription left 'pending' (an authorize node) is said on
 * stderr and counts as made. */
int cli_xmpp_subscribe(struct cli_xmpp *x, const char *node);
int cli_xmpp_unsubscribe(struct cli_xmpp *x, const char *node);
/* Waits at most timeout_ms for the server's next bytes and handles them
 * (messages to the callback, pings answered, other requests refused). A
 * whitespace keepalive is sent after XMPP_KEEPALIVE_S of our silence. 0
 * also when the time ran out or a signal interrupted the wait; CLI_CONNECT
 * when the connection or stream ended, CLI_REFUSED on a stream error. */
int cli_xmpp_wait(struct cli_xmpp *x, int timeout_ms);
/* Closes the stream (</stream:stream>, TLS close_notify) and frees x. */
void cli_xmpp_close(struct cli_xmpp *x);

#endif
