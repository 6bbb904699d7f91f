/* pubsub_config.h - node configuration (XEP-0060 §8.2, §16.4.4) and
 * subscription options (§6.3), free of any protocol.
 *
 * One table of fields (pubsub_config.c) drives everything: defaults, the
 * stored record, setting a field from its text values (what a submitted
 * XEP-0004 form and a REST JSON body both come down to), publish-options
 * preconditions, and the walk the edges use to render forms and JSON.
 * A value over a service cap is refused (not clamped); a value the service
 * does not implement is refused with HERALD_EUNSUPPORTED and its feature. */
#ifndef HERALD_PUBSUB_CONFIG_H
#define HERALD_PUBSUB_CONFIG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ps_node_type { PS_LEAF = 0, PS_COLLECTION = 1 };
enum ps_access { PS_ACCESS_OPEN, PS_ACCESS_PRESENCE, PS_ACCESS_ROSTER, PS_ACCESS_AUTHORIZE,
                 PS_ACCESS_WHITELIST };
enum ps_publish_model { PS_PUBLISH_PUBLISHERS, PS_PUBLISH_SUBSCRIBERS, PS_PUBLISH_OPEN };
enum ps_send_last { PS_SEND_NEVER, PS_SEND_ON_SUB, PS_SEND_ON_SUB_AND_PRESENCE };
enum ps_notif_type { PS_NOTIF_HEADLINE, PS_NOTIF_NORMAL };

#define PS_MAX_ITEMS_MAX UINT32_MAX /* "max": the service cap */

struct ps_config {
    uint8_t node_type;
    uint8_t access_model;
    uint8_t publish_model;
    uint8_t send_last;
    uint8_t notification_type;
    bool deliver_notifications;
    bool deliver_payloads;
    bool notify_config;
    bool notify_delete;
    bool notify_retract;
    bool persist_items;
    bool presence_based_delivery;
    bool subscribe;               /* subscriptions allowed */
    uint32_t max_items;           /* PS_MAX_ITEMS_MAX = the cap */
    uint32_t item_expire;         /* seconds; 0 = never */
    uint32_t max_payload_size;    /* bytes */
    char title[256];
    char payload_type[256];       /* pubsub#type */
    char collection[256];         /* pubsub#collection: parent collection node, "" = none */
    char roster_groups[256];      /* pubsub#roster_groups_allowed: the owner's groups, '\n'-joined */
    /* Quotas (docs/pubsub.md "Quotas"); 0 = no limit. */
    uint32_t max_publish_rate;    /* herald#max_publish_rate: items per second (token bucket) */
    uint32_t max_subscribers;     /* herald#max_subscribers: subscriptions of the node */
    uint32_t max_node_bytes;      /* herald#max_node_bytes: stored payload bytes */
};
#define PS_MAX_PUBLISH_RATE "herald#max_publish_rate"
#define PS_MAX_SUBSCRIBERS "herald#max_subscribers"
#define PS_MAX_NODE_BYTES "herald#max_node_bytes"
/* The disco#info feature of a service whose nodes take the three fields. */
#define PS_QUOTAS_FEATURE "herald#quotas"

/* Service-wide caps, from [pubsub] settings. */
struct ps_caps {
    uint32_t max_items;
    uint32_t max_payload_size;
};

/* A (var, values) pair: a node configuration field ("pubsub#max_items") or
 * a subscription option ("pubsub#deliver"), values as form text. */
struct ps_field {
    const char *var;
    const char *const *values;
    size_t nvalues;
};

/* The detail of an error: the feature of HERALD_EUNSUPPORTED, and a
 * sentence for people ("pubsub#max_items must be a whole number"). */
struct ps_why {
    const char *feature;
    char text[160];
};

void ps_config_defaults(struct ps_config *c, const struct ps_caps *caps);
/* The number of items actually kept (resolves "max"; persist_items = false
 * keeps just the last item). */
uint32_t ps_config_keep(const struct ps_config *c, const struct ps_caps *caps);

/* Stored form: a small versioned binary record. encode returns the length
 * (0: cap too small). */
size_t ps_config_encode(const struct ps_config *c, uint8_t *out, size_t cap);
int ps_config_decode(struct ps_config *c, const void *data, size_t len);

/* Applies fields to c as one change: every field is parsed into a copy,
 * cross-field rules and caps are checked, and only then is c updated.
 * Fields fixed at creation (node_type) may change only at_create. Errors:
 * HERALD_ENOTACCEPTABLE (unknown field, bad value, over a cap),
 * HERALD_EUNSUPPORTED_ACCESS, HERALD_EUNSUPPORTED (why->feature set),
 * with why->text saying which field and why. why may be NULL. */
int ps_config_apply(struct ps_config *c, const struct ps_caps *caps, const struct ps_field *f,
                    size_t n, bool at_create, struct ps_why *why);

/* Publish-options preconditions (§7.1.5): 0 when every field equals the
 * node's value, else HERALD_EPRECONDITION (also for unknown fields). */
int ps_config_matches(const struct ps_config *c, const struct ps_caps *caps,
                      const struct ps_field *f, size_t n);

/* A field of the table, for rendering (forms, JSON). */
/* PS_FIELD_TEXT_MULTI: several text values, stored and rendered joined
 * with '\n' (which no value may hold). */
enum ps_field_kind { PS_FIELD_BOOL, PS_FIELD_UINT, PS_FIELD_LIST, PS_FIELD_TEXT, PS_FIELD_TEXT_MULTI };
struct ps_config_field {
    const char *var;               /* "pubsub#max_items" */
    const char *label;
    enum ps_field_kind kind;
    const char *const *options;    /* PS_FIELD_LIST: implemented values, NULL-terminated */
    const char *const *option_labels;
};
/* Calls fn for every field in table order with its current value as form
 * text (booleans "0"/"1", "max" for an unbounded max_items). */
typedef void ps_config_field_fn(void *ud, const struct ps_config_field *f, const char *value);
void ps_config_each(const struct ps_config *c, ps_config_field_fn *fn, void *ud);
/* Whether var names a configuration field. */
bool ps_config_known(const char *var);

/* Subscription options (§6.3): pubsub#deliver, and Herald's herald#durable
 * (docs/pubsub.md "Catch-up"): the subscription keeps a cursor, and items
 * published while the subscriber was away are replayed when it comes back. */
struct ps_sub_opts {
    bool deliver;
    bool durable;
};
#define PS_SUB_DURABLE "herald#durable"
/* Applies the fields to *o; a field not given keeps its value; an unknown
 * field or a value that is not a boolean ("1", "0", "true", "false") is
 * HERALD_EINVALID_OPTIONS (§6.3.6) and nothing changes. */
int ps_sub_options_apply(struct ps_sub_opts *o, const struct ps_field *f, size_t n,
                         struct ps_why *why);

#endif
