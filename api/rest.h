/* rest.h - what rest.c and sse.c share. */
#ifndef HERALD_REST_H
#define HERALD_REST_H
#include <stdint.h>

#include "json.h"

struct http_conn;
struct ps_service;
struct ps_node;
struct store_item;
struct store_token;

#define NS_JSON "urn:xmpp:json:0"

/* An item as the API shows it: {"id", "seq", "published", "publisher",
 * "json" | "xml"}. */
void rest_item_json(yajl_gen g, const struct store_item *it);

/* sse.c: answers the request with an event stream of node n for the token's
 * JID; items with a seq >= next_seq that are (or become) stored are sent,
 * oldest first. The token and the JID's right to read the node are checked
 * again before every delivery: revoking either ends the stream. */
void sse_start(struct http_conn *hc, struct ps_service *ps, const struct ps_node *n,
               const struct store_token *tok, uint64_t next_seq);

#endif
