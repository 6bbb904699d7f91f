/* pubsub_config.c - one table of node configuration fields drives the
 * stored record, the node_config form, form submission, publish-options
 * preconditions and the meta-data form. */
#include "pubsub_config.h"

#include <errno.h>
#include <stdarg.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "xml.h"

#define NS_DATA "jabber:x:data"
#define NS_NODE_CONFIG "http://jabber.org/protocol/pubsub#node_config"
#define NS_META_DATA "http://jabber.org/protocol/pubsub#meta-data"

enum kind { F_BOOL, F_UINT, F_LIST, F_TEXT };

struct choice {
    const char *value;
    const char *label;
    const char *feature; /* non-NULL: not implemented yet; refused with this feature */
};

struct field {
    const char *var;
    const char *label;
    enum kind kind;
    size_t offset;
    size_t size;                 /* F_TEXT buffer size / F_UINT and F_LIST width */
    const struct choice *choices;
    bool readonly;               /* fixed at creation (node_type) */
    bool max_word;               /* F_UINT accepts "max" */
};

static const struct choice access_choices[] = {
    {"open", "Anyone may subscribe and retrieve items", NULL},
    {"presence", "Subscribers to the owner's presence", NULL},
    {"roster", "Contacts in allowed roster groups", "access-roster"},
    {"authorize", "Subscriptions need the owner's approval", NULL},
    {"whitelist", "Only entities the owner allows", NULL},
    {NULL, NULL, NULL},
};
static const struct choice publish_choices[] = {
    {"publishers", "Owners and publishers", NULL},
    {"subscribers", "Subscribers too", NULL},
    {"open", "Anyone", NULL},
    {NULL, NULL, NULL},
};
static const struct choice send_last_choices[] = {
    {"never", "Never", NULL},
    {"on_sub", "When a subscription is made", NULL},
    {"on_sub_and_presence", "On subscription and when the subscriber comes online",
     "presence-notifications"},
    {NULL, NULL, NULL},
};
static const struct choice notif_choices[] = {
    {"headline", "Messages of type headline", NULL},
    {"normal", "Messages of type normal", NULL},
    {NULL, NULL, NULL},
};
static const struct choice node_type_choices[] = {
    {"leaf", "A node that holds items", NULL},
    {"collection", "A node that holds other nodes", NULL},
    {NULL, NULL, NULL},
};

#define OFF(f) offsetof(struct ps_config, f), sizeof(((struct ps_config *)0)->f)
static const struct field fields[] = {
    {"pubsub#title", "A friendly name for the node", F_TEXT, OFF(title), NULL, false, false},
    {"pubsub#node_type", "Node type", F_LIST, OFF(node_type), node_type_choices, true, false},
    {"pubsub#deliver_notifications", "Deliver event notifications", F_BOOL,
     OFF(deliver_notifications), NULL, false, false},
    {"pubsub#deliver_payloads", "Deliver payloads with event notifications", F_BOOL,
     OFF(deliver_payloads), NULL, false, false},
    {"pubsub#notify_config", "Notify subscribers when the configuration changes", F_BOOL,
     OFF(notify_config), NULL, false, false},
    {"pubsub#notify_delete", "Notify subscribers when the node is deleted", F_BOOL,
     OFF(notify_delete), NULL, false, false},
    {"pubsub#notify_retract", "Notify subscribers when items are removed", F_BOOL,
     OFF(notify_retract), NULL, false, false},
    {"pubsub#persist_items", "Persist items to storage", F_BOOL, OFF(persist_items), NULL, false,
     false},
    {"pubsub#max_items", "Maximum number of items to persist ('max' for the service cap)",
     F_UINT, OFF(max_items), NULL, false, true},
    {"pubsub#item_expire", "Seconds after which items expire (0: never)", F_UINT,
     OFF(item_expire), NULL, false, false},
    {"pubsub#subscribe", "Allow subscriptions", F_BOOL, OFF(subscribe), NULL, false, false},
    {"pubsub#access_model", "Who may subscribe and retrieve items", F_LIST, OFF(access_model),
     access_choices, false, false},
    {"pubsub#publish_model", "Who may publish", F_LIST, OFF(publish_model), publish_choices, false,
     false},
    {"pubsub#max_payload_size", "Maximum payload size in bytes", F_UINT, OFF(max_payload_size),
     NULL, false, false},
    {"pubsub#send_last_published_item", "When to send the last published item", F_LIST,
     OFF(send_last), send_last_choices, false, false},
    {"pubsub#presence_based_delivery", "Deliver only to available subscribers", F_BOOL,
     OFF(presence_based_delivery), NULL, false, false},
    {"pubsub#notification_type", "Message type of event notifications", F_LIST,
     OFF(notification_type), notif_choices, false, false},
    {"pubsub#type", "Payload type (namespace of the item payload)", F_TEXT, OFF(payload_type), NULL,
     false, false},
    /* Added after the first record layout: decode tolerates its absence. */
    {"pubsub#collection", "The collection node this node belongs to", F_TEXT, OFF(collection), NULL,
     false, false},
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

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
        switch (f->kind) {
        case F_BOOL: EMIT(*(const bool *)p); break;
        case F_LIST: EMIT(get_uint(c, f)); break;
        case F_UINT: {
            uint32_t v = get_uint(c, f);
            EMIT(v >> 24);
            EMIT(v >> 16);
            EMIT(v >> 8);
            EMIT(v);
            break;
        }
        case F_TEXT: {
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
        if (p == end && strcmp(f->var, "pubsub#collection") == 0)
            break; /* a record written before the field existed */
        char *dst = (char *)c + f->offset;
        switch (f->kind) {
        case F_BOOL:
            if (end - p < 1)
                return HERALD_ESCHEMA;
            *(bool *)dst = *p++ != 0;
            break;
        case F_LIST: {
            size_t nchoices = 0;
            while (f->choices[nchoices].value)
                nchoices++;
            if (end - p < 1 || *p >= nchoices)
                return HERALD_ESCHEMA;
            set_uint(c, f, *p++);
            break;
        }
        case F_UINT:
            if (end - p < 4)
                return HERALD_ESCHEMA;
            set_uint(c, f, (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
            p += 4;
            break;
        case F_TEXT: {
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

/* ---- forms ---- */

const char *ps_form_value(struct arena *a, const struct xnode *x, const char *var)
{
    for (struct xnode *f = xml_first_elem(x); f; f = xml_next_elem(f)) {
        if (strcmp(f->name, "field") != 0 || strcmp(f->ns, NS_DATA) != 0)
            continue;
        const char *v = xml_attr(f, "var");
        if (v && strcmp(v, var) == 0) {
            struct xnode *val = xml_child(f, NS_DATA, "value");
            return val ? xml_text(a, val) : "";
        }
    }
    return NULL;
}

const char *ps_form_type(struct arena *a, const struct xnode *x)
{
    return ps_form_value(a, x, "FORM_TYPE");
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
    if (s[0] == '\0' || s[0] == '-' || *end != '\0' || errno || v >= UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static const struct choice *find_choice(const struct choice *ch, const char *v, int *index)
{
    for (int i = 0; ch[i].value; i++) {
        if (strcmp(ch[i].value, v) == 0) {
            *index = i;
            return &ch[i];
        }
    }
    return NULL;
}

__attribute__((format(printf, 6, 7))) static void form_err(struct ps_form_error *e,
                                                           const char *cond, const char *type,
                                                           const char *app, const char *feature,
                                                           const char *fmt, ...)
{
    e->cond = cond;
    e->type = type;
    e->app = app;
    e->feature = feature;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->text, sizeof(e->text), fmt, ap);
    va_end(ap);
}

/* Parses one field's value into tmp. Returns 0 or fills err. */
static int apply_field(struct ps_config *tmp, const struct ps_caps *caps, const struct field *f,
                       const char *v, struct ps_form_error *err)
{
    char *dst = (char *)tmp + f->offset;
    switch (f->kind) {
    case F_BOOL:
        if (parse_bool(v, (bool *)dst) != 0) {
            form_err(err, "not-acceptable", "modify", NULL, NULL, "%s must be a boolean", f->var);
            return HERALD_EINVAL;
        }
        break;
    case F_TEXT:
        if (strlen(v) >= f->size) {
            form_err(err, "not-acceptable", "modify", NULL, NULL, "%s is too long", f->var);
            return HERALD_EINVAL;
        }
        memcpy(dst, v, strlen(v) + 1);
        break;
    case F_UINT: {
        uint32_t n;
        if (parse_uint(v, f->max_word, &n) != 0) {
            form_err(err, "not-acceptable", "modify", NULL, NULL, "%s must be a whole number", f->var);
            return HERALD_EINVAL;
        }
        set_uint(tmp, f, n);
        break;
    }
    case F_LIST: {
        int idx;
        const struct choice *ch = find_choice(f->choices, v, &idx);
        if (ch == NULL) {
            form_err(err, "not-acceptable", "modify", NULL, NULL, "unknown value for %s", f->var);
            return HERALD_EINVAL;
        }
        if (ch->feature && strcmp(f->var, "pubsub#access_model") == 0) {
            /* XEP-0060 §8.1.3: an access model the service lacks. */
            form_err(err, "not-acceptable", "modify", "unsupported-access-model", NULL,
                     "access model %s is not supported yet (needs rosters and presence)", v);
            return HERALD_ENOTIMPL;
        }
        if (ch->feature) {
            form_err(err, "feature-not-implemented", "cancel", "unsupported", ch->feature,
                     "%s is not supported yet (needs presence)", v);
            return HERALD_ENOTIMPL;
        }
        set_uint(tmp, f, (uint32_t)idx);
        break;
    }
    }
    return 0;
}

/* Caps and cross-field rules, checked after all fields are applied. Values
 * over a cap are refused loudly, never clamped. */
static int check_config(const struct ps_config *c, const struct ps_caps *caps,
                        struct ps_form_error *err)
{
    char num[32];
    if (c->max_items != PS_MAX_ITEMS_MAX && c->max_items > caps->max_items) {
        snprintf(num, sizeof(num), "%u", caps->max_items);
        form_err(err, "not-acceptable", "modify", NULL, NULL,
                 "pubsub#max_items is over this service's cap of %s", num);
        return HERALD_EINVAL;
    }
    if (c->max_items == 0 && c->persist_items) {
        form_err(err, "not-acceptable", "modify", NULL, NULL, "%s",
                 "pubsub#max_items must be at least 1 when items persist");
        return HERALD_EINVAL;
    }
    if (c->max_payload_size > caps->max_payload_size || c->max_payload_size == 0) {
        snprintf(num, sizeof(num), "%u", caps->max_payload_size);
        form_err(err, "not-acceptable", "modify", NULL, NULL,
                 "pubsub#max_payload_size must be from 1 to this service's cap of %s", num);
        return HERALD_EINVAL;
    }
    if (c->presence_based_delivery) {
        form_err(err, "feature-not-implemented", "cancel", "unsupported", "presence-notifications",
                 "%s", "presence-based delivery is not supported yet (needs presence)");
        return HERALD_ENOTIMPL;
    }
    return 0;
}

int ps_config_apply_form(struct ps_config *c, const struct ps_caps *caps, const struct xnode *x,
                         bool at_create, struct arena *a, struct ps_form_error *err)
{
    struct ps_config tmp = *c;
    memset(err, 0, sizeof(*err));
    const char *type = xml_attr(x, "type");
    if (type && strcmp(type, "cancel") == 0)
        return 0;
    for (struct xnode *f = xml_first_elem(x); f; f = xml_next_elem(f)) {
        if (strcmp(f->name, "field") != 0 || strcmp(f->ns, NS_DATA) != 0)
            continue;
        const char *var = xml_attr(f, "var");
        if (var == NULL || strcmp(var, "FORM_TYPE") == 0)
            continue;
        struct xnode *vn = xml_child(f, NS_DATA, "value");
        const char *v = vn ? xml_text(a, vn) : "";
        if (v == NULL)
            return HERALD_ENOMEM;
        const struct field *fd = NULL;
        for (size_t i = 0; i < NFIELDS; i++)
            if (strcmp(fields[i].var, var) == 0)
                fd = &fields[i];
        if (fd == NULL) {
            form_err(err, "not-acceptable", "modify", NULL, NULL, "unknown field %s", var);
            return HERALD_EINVAL;
        }
        int rc = apply_field(&tmp, caps, fd, v, err);
        if (rc != 0)
            return rc;
        if (fd->readonly && !at_create && get_uint(&tmp, fd) != get_uint(c, fd)) {
            form_err(err, "not-acceptable", "modify", NULL, NULL, "%s cannot be changed", var);
            return HERALD_EINVAL;
        }
    }
    int rc = check_config(&tmp, caps, err);
    if (rc == 0)
        *c = tmp;
    return rc;
}

int ps_config_check_preconditions(const struct ps_config *c, const struct ps_caps *caps,
                                  const struct xnode *x, struct arena *a)
{
    for (struct xnode *f = xml_first_elem(x); f; f = xml_next_elem(f)) {
        if (strcmp(f->name, "field") != 0 || strcmp(f->ns, NS_DATA) != 0)
            continue;
        const char *var = xml_attr(f, "var");
        if (var == NULL || strcmp(var, "FORM_TYPE") == 0)
            continue;
        const struct field *fd = NULL;
        for (size_t i = 0; i < NFIELDS; i++)
            if (strcmp(fields[i].var, var) == 0)
                fd = &fields[i];
        struct xnode *vn = xml_child(f, NS_DATA, "value");
        const char *v = vn ? xml_text(a, vn) : "";
        if (fd == NULL || v == NULL)
            return -1;
        struct ps_config want = *c;
        struct ps_form_error err;
        if (apply_field(&want, caps, fd, v, &err) != 0)
            return -1;
        if (memcmp((const char *)&want + fd->offset, (const char *)c + fd->offset, fd->size) != 0)
            return -1;
    }
    return 0;
}

static struct xnode *add_field(struct arena *a, struct xnode *x, const char *var, const char *type,
                               const char *label, const char *value)
{
    struct xnode *f = xml_add_elem(a, x, NS_DATA, "field");
    if (f == NULL || xml_set_attr(a, f, "var", var) || (type && xml_set_attr(a, f, "type", type)) ||
        (label && xml_set_attr(a, f, "label", label)))
        return NULL;
    if (value) {
        struct xnode *v = xml_add_elem(a, f, NS_DATA, "value");
        if (v == NULL || xml_add_text(a, v, value, strlen(value)))
            return NULL;
    }
    return f;
}

static int field_value(const struct ps_config *c, const struct field *f, char *buf, size_t cap)
{
    const char *p = (const char *)c + f->offset;
    switch (f->kind) {
    case F_BOOL: snprintf(buf, cap, "%d", *(const bool *)p ? 1 : 0); break;
    case F_TEXT: snprintf(buf, cap, "%s", p); break;
    case F_UINT:
        if (f->max_word && get_uint(c, f) == PS_MAX_ITEMS_MAX)
            snprintf(buf, cap, "max");
        else
            snprintf(buf, cap, "%u", get_uint(c, f));
        break;
    case F_LIST: snprintf(buf, cap, "%s", f->choices[get_uint(c, f)].value); break;
    }
    return 0;
}

static struct xnode *build_form(struct arena *a, const char *form_type, const char *x_type,
                                const struct ps_config *c, bool options)
{
    struct xnode *x = xml_elem_new(a, NS_DATA, "x");
    if (x == NULL || xml_set_attr(a, x, "type", x_type))
        return NULL;
    if (add_field(a, x, "FORM_TYPE", "hidden", NULL, form_type) == NULL)
        return NULL;
    for (size_t i = 0; i < NFIELDS; i++) {
        const struct field *f = &fields[i];
        char val[300];
        field_value(c, f, val, sizeof(val));
        const char *type = f->kind == F_BOOL ? "boolean" : f->kind == F_LIST ? "list-single"
                                                                            : "text-single";
        struct xnode *fe = add_field(a, x, f->var, type, f->label, val);
        if (fe == NULL)
            return NULL;
        if (options && f->kind == F_LIST) {
            for (const struct choice *ch = f->choices; ch->value; ch++) {
                if (ch->feature)
                    continue; /* offer only what is implemented */
                struct xnode *o = xml_add_elem(a, fe, NS_DATA, "option");
                struct xnode *ov = o ? xml_add_elem(a, o, NS_DATA, "value") : NULL;
                if (ov == NULL || xml_set_attr(a, o, "label", ch->label) ||
                    xml_add_text(a, ov, ch->value, strlen(ch->value)))
                    return NULL;
            }
        }
    }
    return x;
}

void ps_config_each(const struct ps_config *c,
                    void (*fn)(void *ud, const char *var, enum ps_field_kind kind, const char *value),
                    void *ud)
{
    for (size_t i = 0; i < NFIELDS; i++) {
        const struct field *f = &fields[i];
        char val[300];
        field_value(c, f, val, sizeof(val));
        enum ps_field_kind k = f->kind == F_BOOL   ? PS_FIELD_BOOL
                               : f->kind == F_UINT ? PS_FIELD_UINT
                               : f->kind == F_LIST ? PS_FIELD_LIST
                                                   : PS_FIELD_TEXT;
        fn(ud, f->var, k, val);
    }
}

struct xnode *ps_config_form(struct arena *a, const struct ps_config *c, const struct ps_caps *caps)
{
    return build_form(a, NS_NODE_CONFIG, "form", c, true);
}

struct xnode *ps_config_metadata(struct arena *a, const struct ps_config *c,
                                 const struct ps_caps *caps, uint64_t created_ms,
                                 const char *const *owners, size_t nowners)
{
    struct xnode *x = build_form(a, NS_META_DATA, "result", c, false);
    if (x == NULL)
        return NULL;
    /* Effective limits, so clients see what the service really keeps. */
    char buf[64];
    snprintf(buf, sizeof(buf), "%u", ps_config_keep(c, caps));
    if (add_field(a, x, "pubsub#effective_max_items", "text-single", "Items actually kept", buf) == NULL)
        return NULL;
    time_t secs = (time_t)(created_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (add_field(a, x, "pubsub#creation_date", "text-single", NULL, buf) == NULL)
        return NULL;
    struct xnode *of = add_field(a, x, "pubsub#owner", "jid-multi", NULL, NULL);
    for (size_t i = 0; of && i < nowners; i++) {
        struct xnode *v = xml_add_elem(a, of, NS_DATA, "value");
        if (v == NULL || xml_add_text(a, v, owners[i], strlen(owners[i])))
            return NULL;
    }
    return of ? x : NULL;
}
