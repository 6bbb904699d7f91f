/* cli_xmpp.h - a minimal blocking XMPP client for `herald pub --jid`:
 * TCP, STARTTLS (required, certificate verified against the JID's domain
 * unless insecure), SASL PLAIN over TLS, resource binding, XEP-0060 publish.
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
/* Closes the stream (</stream:stream>, TLS close_notify) and frees x. */
void cli_xmpp_close(struct cli_xmpp *x);

#endif
