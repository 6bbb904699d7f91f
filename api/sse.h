/* sse.h - Server-Sent Events streams of a node's items (api/sse.c), a sink
 * of the pubsub service's events. */
#ifndef HERALD_SSE_H
#define HERALD_SSE_H
#include <stdint.h>

struct herald;
struct http_conn;
struct pubsub;
struct ps_node_info;
struct store_token;

/* Registers the event streams as a sink of h->pubsub (once, right after the
 * service is opened). 0 or HERALD_ENOMEM / the service's error. */
int sse_init(struct herald *h);
/* Frees the streams' index. Call after h->pubsub is closed (a sink cannot
 * be removed from a running service) and every connection has closed.
 * Does nothing without a successful sse_init. */
void sse_close(struct herald *h);

/* Answers the request with an event stream of node n for the token's JID:
 * the stored items with a seq > after_seq, oldest first, then live ones,
 * retractions, purges and the node's deletion. The token and the JID's
 * right to read the node are checked again before every delivery: revoking
 * either ends the stream. */
void sse_start(struct http_conn *hc, struct pubsub *ps, const struct ps_node_info *n,
               const struct store_token *tok, uint64_t after_seq);

#endif
