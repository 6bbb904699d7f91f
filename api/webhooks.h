/* webhooks.h - signed webhooks (docs/webhooks.md): a node's events POSTed
 * to an HTTP endpoint, delivered from a persistent outbox after the commit.
 *
 * The module is a journal of the pubsub service (pubsub_journal_add): when
 * a change is made to a node that has webhooks, it writes one outbox record
 * per webhook in its own operation of the same write batch, so the record
 * commits with the change or not at all. After the commit it wakes a
 * dispatcher that sends each webhook's records in order, one request in
 * flight per webhook, with libcurl's multi interface on the libuv loop.
 * Failed attempts are retried with exponential backoff and jitter; after
 * max_attempts the event goes to the webhook's dead-letter node.
 *
 * The pure pieces (the destination guard and the signature) are in
 * webhook_net.c and declared here for the unit tests. */
#ifndef HERALD_WEBHOOKS_H
#define HERALD_WEBHOOKS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct herald;
struct http_conn;
struct http_req;
struct buf;
struct sockaddr;

/* Event kinds, as bits of a webhook's event set. */
enum { WH_EV_PUBLISH = 1, WH_EV_RETRACT = 2, WH_EV_PURGE = 4, WH_EV_DELETE = 8 };
#define WH_EV_ALL 15

/* Opens the module after the loop exists: loads webhooks and outbox counts
 * from storage, registers the journal and starts delivering. 0 or
 * HERALD_E* (a bad [webhooks] allow list is HERALD_EINVAL, logged). */
int webhooks_open(struct herald *h);
/* Stops every request and closes the module's handles; run the loop once
 * more afterwards for their close callbacks, then webhooks_free. Nothing
 * pending is lost: it is in the outbox. */
void webhooks_stop(struct herald *h);
void webhooks_free(struct herald *h);

/* REST (api/rest.c routes; owner of the node only, the 'manage' scope). */
void webhooks_rest_create(struct herald *h, struct http_conn *hc, const struct http_req *req,
                          const char *who, const char *node);
void webhooks_rest_list(struct herald *h, struct http_conn *hc, const char *who, const char *node);
void webhooks_rest_delete(struct herald *h, struct http_conn *hc, const char *who, const char *node,
                          const char *id);

/* /metrics lines. */
void webhooks_metrics(struct herald *h, struct buf *b);

/* ---- webhook_net.c: the destination guard and the signature ---- */

/* One CIDR block: family 4 or 6, the address in network order. */
struct wh_cidr {
    uint8_t family;
    uint8_t bits;
    uint8_t addr[16];
};
/* "10.0.0.0/8", "::1/128", "127.0.0.1" (a host). 0 or HERALD_EINVAL. */
int wh_cidr_parse(const char *s, size_t len, struct wh_cidr *out);
/* A list separated by commas and/or spaces; at most max blocks
 * (HERALD_ELIMIT past it), HERALD_EINVAL naming nothing on a bad one. */
int wh_cidr_list_parse(const char *list, struct wh_cidr *out, size_t max, size_t *n);
/* Whether addr (4 or 16 bytes, by family 4 or 6) lies in c. */
bool wh_cidr_match(const struct wh_cidr *c, int family, const uint8_t *addr);
/* The SSRF guard's default: NULL when the address may be reached, else
 * what it is ("loopback", "private", "link-local", "unspecified",
 * "multicast", "reserved"). IPv4-mapped IPv6 addresses count as IPv4. */
const char *wh_addr_refused(int family, const uint8_t *addr);
/* The guard: an address in allow passes; any other passes unless
 * wh_addr_refused names it. NULL (allowed) or the reason. */
const char *wh_sockaddr_refused(const struct wh_cidr *allow, size_t nallow,
                                const struct sockaddr *sa);
/* Herald-Signature's v1: lowercase hex of HMAC-SHA256(secret,
 * "<t>." + body), NUL-terminated in out. 0 or HERALD_EIO. */
int wh_sign(const char *secret, size_t secret_len, uint64_t t, const char *body, size_t body_len,
            char out[65]);

#endif
