/* rest.h - what rest.c and sse.c share. */
#ifndef HERALD_REST_H
#define HERALD_REST_H
#include <stdint.h>

#include "json.h"

struct http_conn;
struct ps_service;
struct ps_node;
struct store_item;

#define NS_JSON "urn:xmpp:json:0"

/* An item as the API shows it: {"id", "seq", "published", "publisher",
 * "json" | "xml"}. */
void rest_item_json(yajl_gen g, const struct store_item *it);

/* sse.c: answers the request with an event stream of node n; items with a
 * seq >= next_seq that are (or become) stored are sent first, oldest first. */
void sse_start(struct http_conn *hc, struct ps_service *ps, const struct ps_node *n,
               uint64_t next_seq);

#endif
