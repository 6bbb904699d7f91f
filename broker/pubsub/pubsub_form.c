/* pubsub_form.c - the XEP-0004 data forms of the pubsub XMPP edge.
 *
 * Submitted forms (<x xmlns='jabber:x:data' type='submit'>) become arrays
 * of (var, values) fields for the service (pubsub_config.h), and a node's
 * configuration, its meta-data and a subscription's options become forms.
 * The node_config and meta-data forms are rendered by walking the one
 * field table (ps_config_each), so a field added there shows up here with
 * no change. Everything is allocated from the caller's arena. */
#include "pubsub_form.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "errors.h"
#include "xml.h"

#define NS_DATA "jabber:x:data"
#define NS_NODE_CONFIG "http://jabber.org/protocol/pubsub#node_config"
#define NS_META_DATA "http://jabber.org/protocol/pubsub#meta-data"
#define NS_SUB_OPTIONS "http://jabber.org/protocol/pubsub#subscribe_options"

static bool is_field(const struct xnode *f)
{
    return strcmp(f->name, "field") == 0 && strcmp(f->ns, NS_DATA) == 0;
}

const char *ps_form_value(struct arena *a, const struct xnode *x, const char *var)
{
    for (struct xnode *f = xml_first_elem(x); f; f = xml_next_elem(f)) {
        if (!is_field(f))
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

/* A submitted field: has a var, and is not the FORM_TYPE. */
static bool is_submitted(const struct xnode *f)
{
    if (!is_field(f))
        return false;
    const char *var = xml_attr(f, "var");
    return var != NULL && strcmp(var, "FORM_TYPE") != 0;
}

int ps_form_fields(struct arena *a, const struct xnode *x, struct ps_field **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    /* XEP-0004 §3.1: the submitter cancelled; nothing is submitted. */
    const char *type = xml_attr(x, "type");
    if (type && strcmp(type, "cancel") == 0)
        return 0;

    size_t nfields = 0;
    for (const struct xnode *f = xml_first_elem(x); f; f = xml_next_elem(f))
        if (is_submitted(f))
            nfields++;
    if (nfields == 0)
        return 0;
    struct ps_field *fields = arena_alloc(a, nfields * sizeof(*fields));
    if (fields == NULL)
        return HERALD_ENOMEM;

    size_t i = 0;
    for (const struct xnode *f = xml_first_elem(x); f; f = xml_next_elem(f)) {
        if (!is_submitted(f))
            continue;
        size_t nvalues = 0;
        for (const struct xnode *v = xml_first_elem(f); v; v = xml_next_elem(v))
            if (strcmp(v->name, "value") == 0 && strcmp(v->ns, NS_DATA) == 0)
                nvalues++;
        const char **values = NULL;
        if (nvalues > 0) {
            values = arena_alloc(a, nvalues * sizeof(*values));
            if (values == NULL)
                return HERALD_ENOMEM;
            size_t j = 0;
            for (const struct xnode *v = xml_first_elem(f); v; v = xml_next_elem(v)) {
                if (strcmp(v->name, "value") != 0 || strcmp(v->ns, NS_DATA) != 0)
                    continue;
                if ((values[j++] = xml_text(a, v)) == NULL)
                    return HERALD_ENOMEM;
            }
        }
        fields[i].var = xml_attr(f, "var");
        fields[i].values = values;
        fields[i].nvalues = nvalues;
        i++;
    }
    *out = fields;
    *n = nfields;
    return 0;
}

/* Adds <field var= type= label=> with one <value/> (none when value is
 * NULL). type and label may be NULL. */
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

/* An empty form: <x type=x_type> with its hidden FORM_TYPE. */
static struct xnode *new_form(struct arena *a, const char *x_type, const char *form_type)
{
    struct xnode *x = xml_elem_new(a, NS_DATA, "x");
    if (x == NULL || xml_set_attr(a, x, "type", x_type) ||
        add_field(a, x, "FORM_TYPE", "hidden", NULL, form_type) == NULL)
        return NULL;
    return x;
}

/* One <value/> per line of a PS_FIELD_TEXT_MULTI value. */
static int add_lines(struct arena *a, struct xnode *fe, const char *value)
{
    while (*value) {
        size_t l = strcspn(value, "\n");
        struct xnode *v = xml_add_elem(a, fe, NS_DATA, "value");
        if (v == NULL || xml_add_text(a, v, value, l) != 0)
            return -1;
        value += l + (value[l] == '\n');
    }
    return 0;
}

struct render {
    struct arena *a;
    struct xnode *x;
    bool options;   /* offer the choices of list fields (a form to fill in) */
    bool failed;
};

static void render_field(void *ud, const struct ps_config_field *f, const char *value)
{
    struct render *r = ud;
    if (r->failed)
        return;
    const char *type = f->kind == PS_FIELD_BOOL   ? "boolean"
                       : f->kind == PS_FIELD_LIST ? "list-single"
                       : f->kind == PS_FIELD_TEXT_MULTI ? "text-multi"
                                                  : "text-single";
    bool multi = f->kind == PS_FIELD_TEXT_MULTI;
    struct xnode *fe = add_field(r->a, r->x, f->var, type, f->label, multi ? NULL : value);
    if (fe == NULL || (multi && add_lines(r->a, fe, value) != 0)) {
        r->failed = true;
        return;
    }
    if (!r->options || f->kind != PS_FIELD_LIST || f->options == NULL)
        return;
    for (size_t i = 0; f->options[i]; i++) {
        struct xnode *o = xml_add_elem(r->a, fe, NS_DATA, "option");
        struct xnode *ov = o ? xml_add_elem(r->a, o, NS_DATA, "value") : NULL;
        const char *label = f->option_labels ? f->option_labels[i] : NULL;
        if (ov == NULL || (label && xml_set_attr(r->a, o, "label", label)) ||
            xml_add_text(r->a, ov, f->options[i], strlen(f->options[i]))) {
            r->failed = true;
            return;
        }
    }
}

/* A form holding every configuration field of c. */
static struct xnode *config_form(struct arena *a, const char *x_type, const char *form_type,
                                 const struct ps_config *c, bool options)
{
    struct render r = {a, new_form(a, x_type, form_type), options, false};
    if (r.x == NULL)
        return NULL;
    ps_config_each(c, render_field, &r);
    return r.failed ? NULL : r.x;
}

struct xnode *ps_form_config(struct arena *a, const struct ps_config *c)
{
    return config_form(a, "form", NS_NODE_CONFIG, c, true);
}

struct xnode *ps_form_metadata(struct arena *a, const struct ps_node_info *n,
                               const struct ps_caps *caps)
{
    struct xnode *x = config_form(a, "result", NS_META_DATA, &n->config, false);
    if (x == NULL)
        return NULL;
    /* Effective limits, so clients see what the service really keeps. */
    char buf[64];
    snprintf(buf, sizeof(buf), "%u", ps_config_keep(&n->config, caps));
    if (add_field(a, x, "pubsub#effective_max_items", "text-single", "Items actually kept", buf) ==
        NULL)
        return NULL;
    time_t secs = (time_t)(n->created / 1000);
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, sizeof(buf), "%s", "1970-01-01T00:00:00Z");
    if (add_field(a, x, "pubsub#creation_date", "text-single", NULL, buf) == NULL)
        return NULL;
    struct xnode *of = add_field(a, x, "pubsub#owner", "jid-multi", NULL, NULL);
    if (of == NULL)
        return NULL;
    size_t nowners = n->nowners;
    if (nowners > sizeof(n->owners) / sizeof(n->owners[0]))
        nowners = sizeof(n->owners) / sizeof(n->owners[0]);
    for (size_t i = 0; i < nowners; i++) {
        if (n->owners[i] == NULL)
            continue;
        struct xnode *v = xml_add_elem(a, of, NS_DATA, "value");
        if (v == NULL || xml_add_text(a, v, n->owners[i], strlen(n->owners[i])))
            return NULL;
    }
    return x;
}

struct xnode *ps_form_sub_options(struct arena *a, const struct ps_sub_opts *o)
{
    struct xnode *x = new_form(a, "form", NS_SUB_OPTIONS);
    if (x == NULL ||
        add_field(a, x, "pubsub#deliver", "boolean", "Enable delivery?", o->deliver ? "1" : "0") ==
            NULL ||
        add_field(a, x, PS_SUB_DURABLE, "boolean",
                  "Keep a cursor and replay what was published while away?",
                  o->durable ? "1" : "0") == NULL)
        return NULL;
    return x;
}
