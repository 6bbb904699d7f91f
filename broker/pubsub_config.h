/* pubsub_config.h - node configuration (XEP-0060 §8.2, §16.4.4): the struct,
 * its defaults, its stored form, and the XEP-0004 forms that carry it.
 *
 * Parsing a submitted form checks every field against what the service
 * implements and against the service's caps: a value over a cap is refused
 * (not clamped), an access model that needs rosters (presence, roster) is
 * refused with feature-not-implemented until rosters exist. */
#ifndef HERALD_PUBSUB_CONFIG_H
#define HERALD_PUBSUB_CONFIG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct arena;
struct xnode;
struct buf;

enum ps_node_type { PS_LEAF = 0, PS_COLLECTION = 1 };
enum ps_access { PS_ACCESS_OPEN, PS_ACCESS_PRESENCE, PS_ACCESS_ROSTER, PS_ACCESS_AUTHORIZE,
                 PS_ACCESS_WHITELIST };
enum ps_publish { PS_PUBLISH_PUBLISHERS, PS_PUBLISH_SUBSCRIBERS, PS_PUBLISH_OPEN };
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
};

/* Service-wide caps, from [pubsub] settings. */
struct ps_caps {
    uint32_t max_items;
    uint32_t max_payload_size;
};

void ps_config_defaults(struct ps_config *c, const struct ps_caps *caps);
/* The number of items actually kept (resolves "max", and persist_items =
 * false keeps just the last item). */
uint32_t ps_config_keep(const struct ps_config *c, const struct ps_caps *caps);

/* Stored form: a small versioned binary record. */
size_t ps_config_encode(const struct ps_config *c, uint8_t *out, size_t cap);
int ps_config_decode(struct ps_config *c, const void *data, size_t len);

/* Applies the fields of a submitted form (<x xmlns='jabber:x:data'
 * type='submit'>) to c; fields fixed at creation (node_type) may only be
 * given at_create. On error returns a HERALD_E* code and sets *cond /
 * *pubsub_cond / *feature (static strings, may stay NULL) for the reply. */
struct ps_form_error {
    const char *cond;        /* RFC 6120 condition */
    const char *type;        /* error type */
    const char *app;         /* pubsub#errors condition or NULL */
    const char *feature;     /* for <unsupported feature=.../> */
    char text[160];
};
int ps_config_apply_form(struct ps_config *c, const struct ps_caps *caps, const struct xnode *x,
                         bool at_create, struct arena *a, struct ps_form_error *err);

/* Checks publish-options preconditions (XEP-0060 §7.1.5): every field of the
 * form must equal the node's value. Returns 0 or -1 (precondition not met). */
int ps_config_check_preconditions(const struct ps_config *c, const struct ps_caps *caps,
                                  const struct xnode *x, struct arena *a);

/* The pubsub#node_config form (type form) describing c. */
struct xnode *ps_config_form(struct arena *a, const struct ps_config *c, const struct ps_caps *caps);
/* The pubsub#meta-data form (type result) for disco#info on a node. */
struct xnode *ps_config_metadata(struct arena *a, const struct ps_config *c,
                                 const struct ps_caps *caps, uint64_t created_ms,
                                 const char *const *owners, size_t nowners);

/* Calls fn for every configuration field in table order: its var
 * ("pubsub#max_items"), kind and current value as form text (booleans "0"
 * or "1", "max" for an unbounded max_items). Drives the REST bridge's JSON. */
enum ps_field_kind { PS_FIELD_BOOL, PS_FIELD_UINT, PS_FIELD_LIST, PS_FIELD_TEXT };
void ps_config_each(const struct ps_config *c,
                    void (*fn)(void *ud, const char *var, enum ps_field_kind kind, const char *value),
                    void *ud);

/* Returns the value of a form field (first <value/>), or NULL. */
const char *ps_form_value(struct arena *a, const struct xnode *x, const char *var);
/* The FORM_TYPE of a data form, or NULL. */
const char *ps_form_type(struct arena *a, const struct xnode *x);

#endif
