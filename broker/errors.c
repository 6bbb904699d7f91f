/* errors.c - the one table of error conditions: name, message, XMPP stanza
 * error (RFC 6120 §8.3.3), XEP-0060 application condition, HTTP status. */
#include "errors.h"

#define ROW(code, msg, cond, type, app, http) [-(code)] = {#code, msg, cond, type, app, http}

/* Indexed by -code. */
static const struct herald_error rows[HERALD_E_COUNT_] = {
    ROW(HERALD_OK, "success", "undefined-condition", "cancel", 0, 200),
    ROW(HERALD_ENOMEM, "out of memory", "resource-constraint", "wait", 0, 503),
    ROW(HERALD_EINVAL, "malformed request", "bad-request", "modify", 0, 400),
    ROW(HERALD_ENOTFOUND, "not found", "item-not-found", "cancel", 0, 404),
    ROW(HERALD_EEXIST, "already exists", "conflict", "cancel", 0, 409),
    ROW(HERALD_EIO, "storage I/O error", "internal-server-error", "wait", 0, 500),
    ROW(HERALD_EFULL, "storage full", "resource-constraint", "wait", 0, 507),
    ROW(HERALD_ELIMIT, "limit reached", "policy-violation", "modify", 0, 429),
    ROW(HERALD_EFORBIDDEN, "forbidden", "forbidden", "auth", 0, 403),
    ROW(HERALD_EJID, "malformed address", "jid-malformed", "modify", 0, 400),
    ROW(HERALD_EUNAVAIL, "service unavailable", "service-unavailable", "cancel", 0, 503),
    ROW(HERALD_ENOTIMPL, "not implemented", "feature-not-implemented", "cancel", 0, 501),
    ROW(HERALD_ESCHEMA, "unknown storage schema version", "internal-server-error", "cancel", 0, 500),
    ROW(HERALD_EREMOTE, "remote server not found", "remote-server-not-found", "cancel", 0, 502),
    ROW(HERALD_ECONFLICT, "conflict", "conflict", "cancel", 0, 409),
    ROW(HERALD_ETOOBIG, "too large", "not-acceptable", "modify", 0, 413),
    ROW(HERALD_EAUTH, "not authorized: credentials missing or wrong", "not-authorized", "auth", 0,
        401),
    ROW(HERALD_ENOTACCEPTABLE, "not acceptable", "not-acceptable", "modify", 0, 400),
    ROW(HERALD_ENODEID_REQUIRED, "a node must be named", "bad-request", "modify", "nodeid-required",
        400),
    ROW(HERALD_EITEM_REQUIRED, "an item is required", "bad-request", "modify", "item-required", 400),
    ROW(HERALD_EPAYLOAD_REQUIRED, "the node requires a payload", "bad-request", "modify",
        "payload-required", 400),
    ROW(HERALD_EINVALID_PAYLOAD, "an item must hold exactly one payload element", "bad-request",
        "modify", "invalid-payload", 400),
    ROW(HERALD_EPAYLOAD_TOO_BIG, "the payload exceeds the node's max_payload_size",
        "not-acceptable", "modify", "payload-too-big", 413),
    ROW(HERALD_EINVALID_JID, "the JID does not name the requester", "bad-request", "modify",
        "invalid-jid", 400),
    ROW(HERALD_EINVALID_OPTIONS, "invalid options", "bad-request", "modify", "invalid-options", 400),
    ROW(HERALD_EINVALID_SUBID, "no subscription with that subid", "not-acceptable", "modify",
        "invalid-subid", 400),
    ROW(HERALD_ESUBID_REQUIRED, "several subscriptions: a subid is required", "bad-request",
        "modify", "subid-required", 400),
    ROW(HERALD_ENOT_SUBSCRIBED, "not subscribed", "unexpected-request", "cancel", "not-subscribed",
        404),
    ROW(HERALD_ENOT_SUBSCRIBED_READ, "the node's items need an approved subscription",
        "not-authorized", "auth", "not-subscribed", 403),
    ROW(HERALD_ECLOSED_NODE, "the node is whitelist-only", "not-allowed", "cancel", "closed-node",
        403),
    ROW(HERALD_EPENDING_SUBSCRIPTION, "a subscription request is already pending",
        "not-authorized", "auth", "pending-subscription", 409),
    ROW(HERALD_EPRESENCE_REQUIRED, "the node needs a presence subscription to its owner",
        "not-authorized", "auth", "presence-subscription-required", 403),
    ROW(HERALD_EUNSUPPORTED, "not supported", "feature-not-implemented", "cancel", "unsupported",
        501),
    ROW(HERALD_EPRECONDITION, "publish options do not match the node's configuration", "conflict",
        "cancel", "precondition-not-met", 409),
    ROW(HERALD_EUNSUPPORTED_ACCESS, "unsupported access model", "not-acceptable", "modify",
        "unsupported-access-model", 400),
    ROW(HERALD_EBADREQUEST_IQ, "unexpected request", "unexpected-request", "cancel", 0, 409),
    /* A quota is the service's policy for this account, not a lack of
     * resources (RFC 6120 §8.3.3.12 vs §8.3.3.18); retrying does not help
     * until the account frees some (cancel), so HTTP 403 rather than 429. */
    ROW(HERALD_EQUOTA, "the account's quota is reached", "policy-violation", "cancel", 0, 403),
    /* XEP-0060 §6.1.3.3, §6.5.9.5 */
    ROW(HERALD_ENOT_IN_ROSTER_GROUP, "the node is for the owner's allowed roster groups",
        "not-authorized", "auth", "not-in-roster-group", 403),
    ROW(HERALD_ECLUSTER, "the cluster could not store the change in time; retry",
        "resource-constraint", "wait", 0, 503),
    ROW(HERALD_EREMOTE_TIMEOUT, "remote server timeout", "remote-server-timeout", "wait", 0, 504),
    /* Node quotas: the node's policy (policy-violation), and waiting helps
     * (type wait, HTTP 429 with Retry-After): the bucket refills, a
     * subscriber leaves, items are retracted or expire. Unlike HERALD_EQUOTA,
     * which stays until the account itself frees something. */
    ROW(HERALD_ERATE, "the node's publish rate (herald#max_publish_rate) is exceeded",
        "policy-violation", "wait", 0, 429),
    /* XEP-0060 §6.1.3.9 */
    ROW(HERALD_ETOO_MANY_SUBS, "the node has as many subscriptions as herald#max_subscribers allows",
        "policy-violation", "wait", "too-many-subscriptions", 429),
    ROW(HERALD_ENODE_FULL, "the node's stored payloads would exceed herald#max_node_bytes",
        "policy-violation", "wait", 0, 429),
};

const struct herald_error *herald_error(int err)
{
    if (err > 0 || -err >= HERALD_E_COUNT_)
        return &rows[-HERALD_EIO];
    return &rows[-err];
}

const char *herald_strerror(int err) { return herald_error(err)->msg; }
const char *herald_stanza_condition(int err) { return herald_error(err)->cond; }
const char *herald_stanza_error_type(int err) { return herald_error(err)->type; }
int herald_http_status(int err) { return herald_error(err)->http; }
