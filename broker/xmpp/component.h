/* component.h - external components (XEP-0114, jabber:component:accept).
 *
 * Each [component:DOMAIN] in the configuration is a subdomain a backend
 * service serves by connecting to the component port and proving the shared
 * secret (<handshake/>). Stanzas to DOMAIN, to any JID at it or at its
 * subdomains go to that connection; what it sends must come from those JIDs
 * and is routed like a remote server's stanzas (router_route_external). */
#ifndef HERALD_COMPONENT_H
#define HERALD_COMPONENT_H
#include <stdbool.h>
#include <stddef.h>

struct herald;
struct conn;
struct chunk;

/* Takes over a connection accepted on the component port. */
void component_accept(struct herald *h, struct conn *conn);
/* The configured component whose domain is domain or a parent of it, or NULL. */
const char *component_for(const struct herald *h, const char *domain);
/* Queues a stanza for the component serving domain: 0, HERALD_EUNAVAIL
 * when it is not connected, HERALD_ELIMIT when it does not read. */
int component_send(struct herald *h, const char *domain, struct chunk *const *parts, size_t n);
/* How many components are connected now (metrics). */
unsigned component_connected(const struct herald *h);
/* Shutdown: every component stream is closed. */
void component_close_all(struct herald *h);

#endif
