/* pubsub_config.c - node configuration and subscription options, free of
 * any protocol.
 *
 * One table of fields (`fields[]`) drives everything: the stored record
 * (every field in table order behind a version byte), setting fields from
 * their text values (ps_config_apply), publish-options preconditions
 * (ps_config_matches) and the walk the edges render forms and JSON from
 * (ps_config_each). Each row holds the public description of the field
 * (struct ps_config_field, handed out as is), where the value lives in
 * struct ps_config, and for lists every value by its stored index next to
 * the values the service implements. The XEP-0004 side is pubsub_form.c. */
#include "pubsub_config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "xml.h"

struct field {
    struct ps_config_field pub; /* var, label, kind, implemented options */
    size_t offset;
    size_t size;                /* PS_FIELD_TEXT buffer size / uint and list width */
    /* PS_FIELD_LIST: every value, by the index the record stores (the enum
     * order); a value missing from pub.options is not implemented and is
     * refused (HERALD_EUNSUPPORTED with this feature). */
    const char *const *values;
    const char *unsupported_feature;
    bool readonly;              /* fixed at creation (node_type) */
    bool max_word;              /* PS_FIELD_UINT accepts "max" */
};

/* List values. The *_values arrays are the stored order and must match the
 * enums in pubsub_config.h; the *_options arrays (with their labels) are
 * what the service implements and offers. */
static const char *const node_type_values[] = {"leaf", "collection", NULL};
static const char *const node_type_options[] = {"leaf", "collection", NULL};
static const char *const node_type_labels[] = {"A node that holds items",
                                               "A node that holds other nodes", NULL};

static const char *const access_values[] = {"open", "presence", "roster", "authorize", "whitelist",
                                            NULL};
static const char *const access_options[] = {"open", "presence", "authorize", "whitelist", NULL};
static const char *const access_labels[] = {"Anyone may subscribe and retrieve items",
                                            "Subscribers to the owner's presence",
                                            "Subscriptions need the owner's approval",
                                            "Only entities the owner allows", NULL};

static const char *const publish_values[] = {"publishers", "subscribers", "open", NULL};
static const char *const publish_options[] = {"publishers", "subscribers", "open", NULL};
static const char *const publish_labels[] = {"Owners and publishers", "Subscribers too", "Anyone",
                                             NULL};

static const char *const send_last_values[] = {"never", "on_sub", "on_sub_and_presence", NULL};
static const char *const send_last_options[] = {"never", "on_sub", NULL};
static const char *const send_last_labels[] = {"Never", "When a subscription is made", NULL};

static const char *const notif_values[] = {"headline", "normal", NULL};
static const char *const notif_options[] = {"headline", "normal", NULL};
static const char *const notif_labels[] = {"Messages of type headline", "Messages of type normal",
                                           NULL};

#define NVALUES(list) (sizeof(list) / sizeof(list[0]) - 1)
_Static_assert(NVALUES(node_type_values) == PS_COLLECTION + 1, "node_type values");
_Static_assert(NVALUES(access_values) == PS_ACCESS_WHITELIST + 1, "access_model values");
_Static_assert(NVALUES(publish_values) == PS_PUBLISH_OPEN + 1, "publish_model values");
_Static_assert(NVALUES(send_last_values) == PS_SEND_ON_SUB_AND_PRESENCE + 1, "send_last values");
_Static_assert(NVALUES(notif_values) == PS_NOTIF_NORMAL + 1, "notification_type values");

#define OFF(m) offsetof(struct ps_config, m), sizeof(((struct ps_config *)0)->m)
#define FIELD_BOOL(var, label, m)                                                                  \
    {{var, label, PS_FIELD_BOOL, NULL, NULL}, OFF(m), NULL, NULL, false, false}
#define FIELD_UINT(var, label, m, max_word)                                                        \
    {{var, label, PS_FIELD_UINT, NULL, NULL}, OFF(m), NULL, NULL, false, max_word}
#define FIELD_TEXT(var, label, m)                                                                  \
    {{var, label, PS_FIELD_TEXT, NULL, NULL}, OFF(m), NULL, NULL, false, false}
#define FIELD_TEXT_MULTI(var, label, m)                                                            \
    {{var, label, PS_FIELD_TEXT_MULTI, NULL, NULL}, OFF(m), NULL, NULL, false, false}
#define FIELD_LIST(var, label, m, list, feature, readonly)                                         \
    {{var, label, PS_FIELD_LIST, list##_options, list##_labels}, OFF(m), list##_values, feature,   \
     readonly, false}

/* The order is the stored record's: append only. */
static const struct field fields[] = {
    FIELD_TEXT("pubsub#title", "A friendly name for the node", title),
    FIELD_LIST("pubsub#node_type", "Node type", node_type, node_type, NULL, true),
    FIELD_BOOL("pubsub#deliver_notifications", "Deliver event notifications",
               deliver_notifications),
    FIELD_BOOL("pubsub#deliver_payloads", "Deliver payloads with event notifications",
               deliver_payloads),
    FIELD_BOOL("pubsub#notify_config", "Notify subscribers when the configuration changes",
               notify_config),
    FIELD_BOOL("pubsub#notify_delete", "Notify subscribers when the node is deleted",
               notify_delete),
    FIELD_BOOL("pubsub#notify_retract", "Notify subscribers when items are removed",
               notify_retract),
    FIELD_BOOL("pubsub#persist_items", "Persist items to storage", persist_items),
    FIELD_UINT("pubsub#max_items", "Maximum number of items to persist ('max' for the service cap)",
               max_items, true),
    FIELD_UINT("pubsub#item_expire", "Seconds after which items expire (0: never)", item_expire,
               false),
    FIELD_BOOL("pubsub#subscribe", "Allow subscriptions", subscribe),
    /* An access model not offered is refused as XEP-0060 §8.1.3 says
     * (HERALD_EUNSUPPORTED_ACCESS), with no feature. */
    FIELD_LIST("pubsub#access_model", "Who may subscribe and retrieve items", access_model, access,
               NULL, false),
    FIELD_LIST("pubsub#publish_model", "Who may publish", publish_model, publish, NULL, false),
    FIELD_UINT("pubsub#max_payload_size", "Maximum payload size in bytes", max_payload_size,
               false),
    FIELD_LIST("pubsub#send_last_published_item", "When to send the last published item",
               send_last, send_last, "presence-notifications", false),
    FIELD_BOOL("pubsub#presence_based_delivery", "Deliver only to available subscribers",
               presence_based_delivery),
    FIELD_LIST("pubsub#notification_type", "Message type of event notifications",
               notification_type, notif, NULL, false),
    FIELD_TEXT("pubsub#type", "Payload type (namespace of the item payload)", payload_type),
    /* Added after the first record layout: decode tolerates its absence. */
    FIELD_TEXT("pubsub#collection", "The collection node this node belongs to", collection),
    /* XEP-0060 §4.5 roster access model (added later, like collection). */
    FIELD_TEXT_MULTI("pubsub#roster_groups_allowed", "Roster groups allowed to subscribe",
                     roster_groups),
    /* Quotas (docs/pubsub.md "Quotas"), added later too. */
    FIELD_UINT(PS_MAX_PUBLISH_RATE, "Items published per second at most, in bursts of as many "
               "(0: no limit)", max_publish_rate, false),
    FIELD_UINT(PS_MAX_SUBSCRIBERS, "Subscriptions at most (0: no limit)", max_subscribers, false),
    FIELD_UINT(PS_MAX_NODE_BYTES, "Bytes of stored item payloads at most (0: no limit)",
               max_node_bytes, false),
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))
/* The record's earlier layouts end before these fields (appended later):
 * such a record decodes with them and the fields after them zero (no
 * collection, no roster groups, no quota). */
static bool layout_end(const char *var)
{
    return strcmp(var, "pubsub#collection") == 0 ||
           strcmp(var, "pubsub#roster_groups_allowed") == 0 ||
           strcmp(var, PS_MAX_PUBLISH_RATE) == 0;
}

#define PRESENCE_FEATURE "presence-notifications"

void ps_config_defaults(struct ps_config *c, const struct ps_caps *caps)
{
    memset(c, 0, sizeof(*c));
    c->node_type = PS_LEAF;
    c->access_model = PS_ACCESS_OPEN;
    c->publish_model = PS_PUBLISH_PUBLISHERS;
    c->send_last = PS_SEND_NEVER;
    c->notification_type = PS_NOTIF_HEADLINE;
    c->deliver_notifications = true;
    c->deliver_payloads = true;
    c->notify_config = false;
    c->notify_delete = true;
    c->notify_retract = true;
    c->persist_items = true;
    c->subscribe = true;
    c->max_items = caps->max_items < 10 ? caps->max_items : 10;
    c->max_payload_size = caps->max_payload_size;
}

uint32_t ps_config_keep(const struct ps_config *c, const struct ps_caps *caps)
{
    if (!c->persist_items)
        return 1; /* the last item is kept for send_last_published_item */
    return c->max_items == PS_MAX_ITEMS_MAX ? caps->max_items : c->max_items;
}

static const struct field *find_field(const char *var)
{
    if (var == NULL)
        return NULL;
    for (size_t i = 0; i < NFIELDS; i++)
        if (strcmp(fields[i].pub.var, var) == 0)
            return &fields[i];
    return NULL;
}

bool ps_config_known(const char *var)
{
    return find_field(var) != NULL;
}

static size_t count(const char *const *list)
{
    size_t n = 0;
    while (list[n])
        n++;
    return n;
}

static bool in_list(const char *const *list, const char *v)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(list[i], v) == 0)
            return true;
    return false;
}

/* ---- stored record: v1, then every field in table order ---- */

static uint32_t get_uint(const struct ps_config *c, const struct field *f)
{
    const char *p = (const char *)c + f->offset;
    if (f->size == 1)
        return *(const uint8_t *)p;
    return *(const uint32_t *)(const void *)p;
}

static void set_uint(struct ps_config *c, const struct field *f, uint32_t v)
{
    char *p = (char *)c + f->offset;
    if (f->size == 1)
        *(uint8_t *)p = (uint8_t)v;
    else
        *(uint32_t *)(void *)p = v;
}

size_t ps_config_encode(const struct ps_config *c, uint8_t *out, size_t cap)
{
    size_t n = 0;
#define EMIT(b)                                                                                    \
    do {                                                                                           \
        if (n >= cap)                                                                              \
            return 0;                                                                              \
        out[n++] = (uint8_t)(b);                                                                   \
    } while (0)
    EMIT(1);
    for (size_t i = 0; i < NFIELDS; i++) {
        const struct field *f = &fields[i];
        const char *p = (const char *)c + f->offset;
        switch (f->pub.kind) {
        case PS_FIELD_BOOL: EMIT(*(const bool *)p); break;
        case PS_FIELD_LIST: EMIT(get_uint(c, f)); break;
        case PS_FIELD_UINT: {
            uint32_t v = get_uint(c, f);
            EMIT(v >> 24);
            EMIT(v >> 16);
            EMIT(v >> 8);
            EMIT(v);
            break;
        }
        case PS_FIELD_TEXT_MULTI:
        case PS_FIELD_TEXT: {
            size_t l = strnlen(p, f->size - 1);
            EMIT(l >> 8);
            EMIT(l);
            if (cap - n < l)
                return 0;
            memcpy(out + n, p, l);
            n += l;
            break;
        }
        }
    }
#undef EMIT
    return n;
}

int ps_config_decode(struct ps_config *c, const void *data, size_t len)
{
    memset(c, 0, sizeof(*c));
    if (data == NULL || len < 1)
        return HERALD_ESCHEMA;
    const uint8_t *p = data, *end = p + len;
    if (p[0] != 1)
        return HERALD_ESCHEMA;
    p++;
    for (size_t i = 0; i < NFIELDS; i++) {
        const struct field *f = &fields[i];
        if (p == end && layout_end(f->pub.var))
            break; /* a record written before the field existed */
        char *dst = (char *)c + f->offset;
        switch (f->pub.kind) {
        case PS_FIELD_BOOL:
            if (end - p < 1)
                return HERALD_ESCHEMA;
            *(bool *)dst = *p++ != 0;
            break;
        case PS_FIELD_LIST:
            /* The renderers index the value table with it. */
            if (end - p < 1 || *p >= count(f->values))
                return HERALD_ESCHEMA;
            set_uint(c, f, *p++);
            break;
        case PS_FIELD_UINT:
            if (end - p < 4)
                return HERALD_ESCHEMA;
            set_uint(c, f, (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
            p += 4;
            break;
        case PS_FIELD_TEXT_MULTI:
        case PS_FIELD_TEXT: {
            if (end - p < 2)
                return HERALD_ESCHEMA;
            size_t l = (size_t)p[0] << 8 | p[1];
            p += 2;
            if ((size_t)(end - p) < l || l >= f->size)
                return HERALD_ESCHEMA;
            memcpy(dst, p, l);
            dst[l] = '\0';
            p += l;
            break;
        }
        }
    }
    return 0;
}

/* ---- setting fields from text ---- */

__attribute__((format(printf, 3, 4))) static void why_set(struct ps_why *why, const char *feature,
                                                          const char *fmt, ...)
{
    why->feature = feature;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why->text, sizeof(why->text), fmt, ap);
    va_end(ap);
}

static int parse_bool(const char *s, bool *out)
{
    if (!strcmp(s, "1") || !strcmp(s, "true")) {
        *out = true;
        return 0;
    }
    if (!strcmp(s, "0") || !strcmp(s, "false")) {
        *out = false;
        return 0;
    }
    return -1;
}

static int parse_uint(const char *s, bool max_word, uint32_t *out)
{
    if (max_word && strcmp(s, "max") == 0) {
        *out = PS_MAX_ITEMS_MAX;
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    /* UINT32_MAX itself is the "max" marker, never a number. */
    if (s[0] == '\0' || s[0] == '-' || *end != '\0' || errno || v >= UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* The one text value of a configuration field: a field without values is
 * "" (an XEP-0004 <field/> with no <value/>); several values are refused,
 * as every configuration field holds one. NULL: why is set. */
static const char *single_value(const struct ps_field *in, struct ps_why *why)
{
    if (in->nvalues == 0)
        return "";
    if (in->nvalues > 1) {
        why_set(why, NULL, "%s takes one value", in->var);
        return NULL;
    }
    return in->values[0] ? in->values[0] : "";
}

/* A PS_FIELD_TEXT_MULTI field's values, joined with '\n' into tmp (none:
 * empty). Each is XML text without '\n'; together they fit the field. */
static int parse_multi(struct ps_config *tmp, const struct field *f, const struct ps_field *in,
                       struct ps_why *why)
{
    char *dst = (char *)tmp + f->offset;
    size_t len = 0;
    for (size_t i = 0; i < in->nvalues; i++) {
        const char *v = in->values[i] ? in->values[i] : "";
        size_t l = strlen(v);
        if (l == 0 || memchr(v, '\n', l) != NULL || !xml_valid_chars(v, l)) {
            why_set(why, NULL, "%s values must be non-empty XML text of one line", f->pub.var);
            return HERALD_ENOTACCEPTABLE;
        }
        if (len + l + (len > 0) >= f->size) {
            why_set(why, NULL, "%s is too long", f->pub.var);
            return HERALD_ENOTACCEPTABLE;
        }
        if (len > 0)
            dst[len++] = '\n';
        memcpy(dst + len, v, l);
        len += l;
    }
    memset(dst + len, 0, f->size - len);
    return 0;
}

/* Parses text v for field f into tmp. Returns 0 or an error with why set. */
static int parse_field(struct ps_config *tmp, const struct field *f, const char *v,
                       struct ps_why *why)
{
    char *dst = (char *)tmp + f->offset;
    switch (f->pub.kind) {
    case PS_FIELD_TEXT_MULTI: { /* one value given as text (REST, a single form value) */
        const char *one[] = {v};
        struct ps_field in = {f->pub.var, one, v[0] ? 1 : 0};
        return parse_multi(tmp, f, &in, why);
    }
    case PS_FIELD_BOOL:
        if (parse_bool(v, (bool *)dst) != 0) {
            why_set(why, NULL, "%s must be a boolean", f->pub.var);
            return HERALD_ENOTACCEPTABLE;
        }
        break;
    case PS_FIELD_TEXT: {
        size_t l = strlen(v);
        if (l >= f->size) {
            why_set(why, NULL, "%s is too long", f->pub.var);
            return HERALD_ENOTACCEPTABLE;
        }
        /* Text values go out in every disco#info and configuration form
         * (XEP-0060 §5.4, §8.2): XML text only (XML 1.0 §2.2 Char). */
        if (!xml_valid_chars(v, l)) {
            why_set(why, NULL,
                    "%s must be UTF-8 text of XML 1.0 characters (no control characters, "
                    "surrogates, U+FFFE or U+FFFF)",
                    f->pub.var);
            return HERALD_ENOTACCEPTABLE;
        }
        memcpy(dst, v, l + 1);
        break;
    }
    case PS_FIELD_UINT: {
        uint32_t n;
        if (parse_uint(v, f->max_word, &n) != 0) {
            why_set(why, NULL, "%s must be a whole number", f->pub.var);
            return HERALD_ENOTACCEPTABLE;
        }
        set_uint(tmp, f, n);
        break;
    }
    case PS_FIELD_LIST: {
        size_t idx;
        for (idx = 0; f->values[idx]; idx++)
            if (strcmp(f->values[idx], v) == 0)
                break;
        if (f->values[idx] == NULL) {
            why_set(why, NULL, "unknown value for %s", f->pub.var);
            return HERALD_ENOTACCEPTABLE;
        }
        if (!in_list(f->pub.options, v)) {
            if (strcmp(f->pub.var, "pubsub#access_model") == 0) {
                /* XEP-0060 §8.1.3: an access model the service lacks. */
                why_set(why, NULL, "access model %s is not supported yet (needs roster groups)",
                        v);
                return HERALD_EUNSUPPORTED_ACCESS;
            }
            why_set(why, f->unsupported_feature, "%s is not supported yet (needs presence)", v);
            return HERALD_EUNSUPPORTED;
        }
        set_uint(tmp, f, (uint32_t)idx);
        break;
    }
    }
    return 0;
}

/* Caps and cross-field rules, checked once every field is parsed. Values
 * over a cap are refused loudly, never clamped. */
static int check_config(const struct ps_config *c, const struct ps_caps *caps, struct ps_why *why)
{
    if (c->max_items != PS_MAX_ITEMS_MAX && c->max_items > caps->max_items) {
        why_set(why, NULL, "pubsub#max_items is over this service's cap of %u", caps->max_items);
        return HERALD_ENOTACCEPTABLE;
    }
    if (c->max_items == 0 && c->persist_items) {
        why_set(why, NULL, "%s", "pubsub#max_items must be at least 1 when items persist");
        return HERALD_ENOTACCEPTABLE;
    }
    if (c->max_payload_size > caps->max_payload_size || c->max_payload_size == 0) {
        why_set(why, NULL, "pubsub#max_payload_size must be from 1 to this service's cap of %u",
                caps->max_payload_size);
        return HERALD_ENOTACCEPTABLE;
    }
    if (c->presence_based_delivery) {
        why_set(why, PRESENCE_FEATURE, "%s",
                "presence-based delivery is not supported yet (needs presence)");
        return HERALD_EUNSUPPORTED;
    }
    return 0;
}

int ps_config_apply(struct ps_config *c, const struct ps_caps *caps, const struct ps_field *f,
                    size_t n, bool at_create, struct ps_why *why)
{
    struct ps_why scratch;
    if (why == NULL)
        why = &scratch;
    why->feature = NULL;
    why->text[0] = '\0';

    /* Everything goes into a copy; c changes only when all of it holds. */
    struct ps_config tmp = *c;
    for (size_t i = 0; i < n; i++) {
        const struct field *fd = find_field(f[i].var);
        if (fd == NULL) {
            why_set(why, NULL, "unknown field %s", f[i].var ? f[i].var : "(none)");
            return HERALD_ENOTACCEPTABLE;
        }
        if (fd->pub.kind == PS_FIELD_TEXT_MULTI) {
            int rc = parse_multi(&tmp, fd, &f[i], why);
            if (rc != 0)
                return rc;
            continue;
        }
        const char *v = single_value(&f[i], why);
        if (v == NULL)
            return HERALD_ENOTACCEPTABLE;
        int rc = parse_field(&tmp, fd, v, why);
        if (rc != 0)
            return rc;
        if (fd->readonly && !at_create && get_uint(&tmp, fd) != get_uint(c, fd)) {
            why_set(why, NULL, "%s cannot be changed", fd->pub.var);
            return HERALD_ENOTACCEPTABLE;
        }
    }
    int rc = check_config(&tmp, caps, why);
    if (rc == 0)
        *c = tmp;
    return rc;
}

int ps_config_matches(const struct ps_config *c, const struct ps_caps *caps,
                      const struct ps_field *f, size_t n)
{
    struct ps_why why;
    for (size_t i = 0; i < n; i++) {
        const struct field *fd = find_field(f[i].var);
        if (fd == NULL)
            return HERALD_EPRECONDITION;
        const char *v = fd->pub.kind == PS_FIELD_TEXT_MULTI ? "" : single_value(&f[i], &why);
        if (v == NULL)
            return HERALD_EPRECONDITION;
        /* Parse into a copy of the node's own configuration, so that the
         * bytes of a text field past its NUL are the node's too. A value
         * the node cannot hold (unparseable, unsupported) cannot match. */
        struct ps_config want = *c;
        if (fd->pub.kind == PS_FIELD_TEXT_MULTI ? parse_multi(&want, fd, &f[i], &why) != 0
                                                     : parse_field(&want, fd, v, &why) != 0)
            return HERALD_EPRECONDITION;
        if (memcmp((const char *)&want + fd->offset, (const char *)c + fd->offset, fd->size) != 0)
            return HERALD_EPRECONDITION;
    }
    return 0;
}

/* ---- rendering ---- */

static void field_value(const struct ps_config *c, const struct field *f, char *buf, size_t cap)
{
    const char *p = (const char *)c + f->offset;
    switch (f->pub.kind) {
    case PS_FIELD_BOOL: snprintf(buf, cap, "%d", *(const bool *)p ? 1 : 0); break;
    case PS_FIELD_TEXT_MULTI:
    case PS_FIELD_TEXT: snprintf(buf, cap, "%.*s", (int)strnlen(p, f->size - 1), p); break;
    case PS_FIELD_UINT:
        if (f->max_word && get_uint(c, f) == PS_MAX_ITEMS_MAX)
            snprintf(buf, cap, "max");
        else
            snprintf(buf, cap, "%u", get_uint(c, f));
        break;
    case PS_FIELD_LIST: {
        /* A configuration built by hand may hold anything; decode never
         * yields an index out of range. */
        uint32_t idx = get_uint(c, f);
        snprintf(buf, cap, "%s", idx < count(f->values) ? f->values[idx] : "");
        break;
    }
    }
}

void ps_config_each(const struct ps_config *c, ps_config_field_fn *fn, void *ud)
{
    for (size_t i = 0; i < NFIELDS; i++) {
        char val[300];
        field_value(c, &fields[i], val, sizeof(val));
        fn(ud, &fields[i].pub, val);
    }
}

/* ---- subscription options ---- */

int ps_sub_options_apply(struct ps_sub_opts *o, const struct ps_field *f, size_t n,
                         struct ps_why *why)
{
    struct ps_why scratch;
    if (why == NULL)
        why = &scratch;
    why->feature = NULL;
    why->text[0] = '\0';

    struct ps_sub_opts tmp = *o;
    for (size_t i = 0; i < n; i++) {
        bool *dst = NULL;
        if (f[i].var != NULL && strcmp(f[i].var, "pubsub#deliver") == 0)
            dst = &tmp.deliver;
        else if (f[i].var != NULL && strcmp(f[i].var, PS_SUB_DURABLE) == 0)
            dst = &tmp.durable;
        if (dst == NULL) {
            why_set(why, NULL, "unknown subscription option %s", f[i].var ? f[i].var : "(none)");
            return HERALD_EINVALID_OPTIONS;
        }
        if (f[i].nvalues != 1 || f[i].values[0] == NULL) {
            why_set(why, NULL, "%s takes exactly one value", f[i].var);
            return HERALD_EINVALID_OPTIONS;
        }
        if (parse_bool(f[i].values[0], dst) != 0) {
            why_set(why, NULL, "%s must be a boolean", f[i].var);
            return HERALD_EINVALID_OPTIONS;
        }
    }
    *o = tmp;
    return 0;
}
