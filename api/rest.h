/* rest.h - what rest.c shares with sse.c and the unit tests: the JSON view
 * of an item and the XEP-0335 container a JSON item body becomes. */
#ifndef HERALD_REST_H
#define HERALD_REST_H
#include <stddef.h>

#include <yajl/yajl_tree.h>

#include "json.h"

struct buf;
struct ps_item;

#define NS_JSON "urn:xmpp:json:0"

/* An item as the API shows it: {"id", "seq", "published", "publisher",
 * "json" | "xml"}: "json" when the payload is a urn:xmpp:json:0 container
 * holding valid JSON, else "xml" (the payload's text) when there is one. */
void rest_item_json(yajl_gen g, const struct ps_item *it);
/* The "json" or "xml" member of that view for a stored payload (nothing
 * when len is 0): the webhooks' event bodies show payloads the same way. */
void rest_payload_json(yajl_gen g, const char *payload, size_t len);

/* A JSON text as the stored payload of an item: the XEP-0335 container
 * <json xmlns='urn:xmpp:json:0'>canonical JSON, XML-escaped</json>,
 * appended to out, byte for byte what the XML serializer (xml.h) writes for
 * that element. HERALD_EINVAL when the text is not one JSON value,
 * HERALD_ENOMEM when out failed. */
int rest_json_payload(const char *json, size_t len, struct buf *out);

struct herald;
struct http_conn;
struct http_req;

/* The request's body as a JSON object (a yajl tree the caller frees), or
 * NULL after answering 415 (not application/json) or 400. */
yajl_val rest_json_object(struct http_conn *hc, const struct http_req *req);
/* Answers once this loop turn's batch has committed (at once if nothing
 * was written; the commit's error instead if it failed). g (may be NULL:
 * no body) is only read. */
void rest_answer_after_commit(struct herald *h, struct http_conn *hc, int status, yajl_gen g,
                              const char *headers);

/* Cluster mode: runs a write request taken from the log as the account jid
 * with the token scopes it was checked with; hc is its connection on the
 * instance that accepted it, NULL on the others (nothing is answered). */
void rest_apply(struct herald *h, struct http_conn *hc, const struct http_req *req,
                const char *jid, uint8_t scopes);

#endif
