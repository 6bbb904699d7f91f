/* bosh.h - XMPP over BOSH (XEP-0124, XEP-0206) at POST /http-bind.
 *
 * A BOSH session is an ordinary XMPP session (session.c, the same SASL,
 * binding, routing, limits and stream management) on a virtual connection
 * (conn_new_virtual): each request's <body/> children are handed to it as
 * framed elements, and what it queues is taken into the answer of a held
 * request. docs/web.md describes the parameters and errors.
 *
 * Ownership: the table of BOSH sessions (herald->bosh) owns each struct
 * bosh; the session owns its virtual conn as any session owns its conn. A
 * held request keeps a reference to its http_conn until it is answered. */
#ifndef HERALD_BOSH_H
#define HERALD_BOSH_H
#include <stddef.h>

struct http_conn;
struct http_req;
struct herald;

void bosh_request(struct http_conn *hc, const struct http_req *req);
/* Once a second: held requests past their 'wait' are answered empty;
 * sessions idle past 'inactivity' (or their pause) end. */
void bosh_sweep(struct herald *h);
/* Shutdown: answers what is held and frees the table. */
void bosh_close_all(struct herald *h);
size_t bosh_count(const struct herald *h);

#endif
