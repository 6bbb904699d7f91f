/* xml.c - stanza tree builders, lookups and the escaping serializer. */
#include "xml.h"

#include <string.h>

struct xnode *xml_elem_new(struct arena *a, const char *ns, const char *name)
{
    struct xnode *e = arena_alloc(a, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->kind = XN_ELEM;
    e->ns = arena_strdup(a, ns ? ns : "");
    e->name = arena_strdup(a, name);
    if (e->ns == NULL || e->name == NULL)
        return NULL;
    return e;
}

void xml_append(struct xnode *parent, struct xnode *child)
{
    child->parent = parent;
    child->next = NULL;
    if (parent->last_child)
        parent->last_child->next = child;
    else
        parent->children = child;
    parent->last_child = child;
}

struct xnode *xml_add_elem(struct arena *a, struct xnode *parent, const char *ns,
                           const char *name)
{
    struct xnode *e = xml_elem_new(a, ns, name);
    if (e != NULL)
        xml_append(parent, e);
    return e;
}

int xml_add_text(struct arena *a, struct xnode *parent, const char *text, size_t len)
{
    /* Merge with a preceding text node: expat delivers text in pieces. */
    struct xnode *last = parent->last_child;
    if (last != NULL && last->kind == XN_TEXT) {
        char *t = arena_alloc(a, last->text_len + len + 1);
        if (t == NULL)
            return -1;
        memcpy(t, last->text, last->text_len);
        memcpy(t + last->text_len, text, len);
        t[last->text_len + len] = '\0';
        last->text = t;
        last->text_len += len;
        return 0;
    }
    struct xnode *n = arena_alloc(a, sizeof(*n));
    if (n == NULL)
        return -1;
    n->kind = XN_TEXT;
    n->text = arena_strndup(a, text, len);
    if (n->text == NULL)
        return -1;
    n->text_len = len;
    xml_append(parent, n);
    return 0;
}

int xml_add_raw(struct arena *a, struct xnode *parent, const char *xml, size_t len)
{
    struct xnode *n = arena_alloc(a, sizeof(*n));
    if (n == NULL)
        return -1;
    n->kind = XN_RAW;
    n->text = arena_strndup(a, xml, len);
    if (n->text == NULL)
        return -1;
    n->text_len = len;
    xml_append(parent, n);
    return 0;
}

int xml_set_attr_ns(struct arena *a, struct xnode *e, const char *ns, const char *name,
                    const char *value, size_t len)
{
    const char *want_ns = ns ? ns : "";
    for (struct xattr *at = e->attrs; at; at = at->next) {
        if (strcmp(at->name, name) == 0 && strcmp(at->ns, want_ns) == 0) {
            char *v = arena_strndup(a, value, len);
            if (v == NULL)
                return -1;
            at->value = v;
            at->value_len = len;
            return 0;
        }
    }
    struct xattr *at = arena_alloc(a, sizeof(*at));
    if (at == NULL)
        return -1;
    at->ns = (want_ns[0] == '\0') ? "" : arena_strdup(a, want_ns);
    at->name = arena_strdup(a, name);
    at->value = arena_strndup(a, value, len);
    if (at->ns == NULL || at->name == NULL || at->value == NULL)
        return -1;
    at->value_len = len;
    if (e->last_attr)
        e->last_attr->next = at;
    else
        e->attrs = at;
    e->last_attr = at;
    return 0;
}

int xml_set_attr(struct arena *a, struct xnode *e, const char *name, const char *value)
{
    return xml_set_attr_ns(a, e, "", name, value, strlen(value));
}

void xml_del_attr(struct xnode *e, const char *name)
{
    struct xattr *prev = NULL;
    for (struct xattr *at = e->attrs; at; prev = at, at = at->next) {
        if (at->ns[0] == '\0' && strcmp(at->name, name) == 0) {
            if (prev)
                prev->next = at->next;
            else
                e->attrs = at->next;
            if (e->last_attr == at)
                e->last_attr = prev;
            return;
        }
    }
}

const char *xml_attr(const struct xnode *e, const char *name)
{
    for (const struct xattr *at = e->attrs; at; at = at->next)
        if (at->ns[0] == '\0' && strcmp(at->name, name) == 0)
            return at->value;
    return NULL;
}

struct xnode *xml_child(const struct xnode *e, const char *ns, const char *name)
{
    for (struct xnode *c = e->children; c; c = c->next) {
        if (c->kind != XN_ELEM)
            continue;
        if (ns && strcmp(c->ns, ns) != 0)
            continue;
        if (name && strcmp(c->name, name) != 0)
            continue;
        return c;
    }
    return NULL;
}

struct xnode *xml_first_elem(const struct xnode *e) { return xml_child(e, NULL, NULL); }

struct xnode *xml_next_elem(const struct xnode *e)
{
    for (struct xnode *c = e->next; c; c = c->next)
        if (c->kind == XN_ELEM)
            return c;
    return NULL;
}

size_t xml_count_elems(const struct xnode *e)
{
    size_t n = 0;
    for (struct xnode *c = e->children; c; c = c->next)
        n += (c->kind == XN_ELEM);
    return n;
}

const char *xml_text(struct arena *a, const struct xnode *e)
{
    size_t len = 0, ntext = 0;
    const struct xnode *only = NULL;
    for (const struct xnode *c = e->children; c; c = c->next) {
        if (c->kind == XN_TEXT) {
            len += c->text_len;
            ntext++;
            only = c;
        }
    }
    if (ntext == 0)
        return "";
    if (ntext == 1)
        return only->text;
    char *t = arena_alloc(a, len + 1);
    if (t == NULL)
        return NULL;
    size_t off = 0;
    for (const struct xnode *c = e->children; c; c = c->next) {
        if (c->kind == XN_TEXT) {
            memcpy(t + off, c->text, c->text_len);
            off += c->text_len;
        }
    }
    t[off] = '\0';
    return t;
}

static void serialize(struct buf *out, const struct xnode *e, const char *parent_ns)
{
    if (e->kind == XN_TEXT) {
        buf_xml_text(out, e->text, e->text_len);
        return;
    }
    if (e->kind == XN_RAW) {
        buf_append(out, e->text, e->text_len);
        return;
    }
    /* The XML namespace cannot be a default namespace (Namespaces in XML
     * §3); an element in it (parsed from <xml:foo/>) keeps the fixed "xml:"
     * prefix, and its children stay in the default namespace around it. */
    bool xml_ns = strcmp(e->ns, NS_XML) == 0;
    const char *scope = xml_ns ? parent_ns : e->ns;
    buf_putc(out, '<');
    if (xml_ns)
        buf_puts(out, "xml:");
    buf_puts(out, e->name);
    if (!xml_ns && strcmp(e->ns, parent_ns) != 0) {
        buf_puts(out, " xmlns='");
        buf_xml_attr(out, e->ns, strlen(e->ns));
        buf_putc(out, '\'');
    }
    int prefix = 0;
    for (const struct xattr *at = e->attrs; at; at = at->next) {
        buf_putc(out, ' ');
        if (at->ns[0] != '\0') {
            /* A namespaced attribute gets a prefix declared on this element. */
            buf_printf(out, "xmlns:a%d='", prefix);
            buf_xml_attr(out, at->ns, strlen(at->ns));
            buf_printf(out, "' a%d:", prefix);
            prefix++;
        }
        buf_puts(out, at->name);
        buf_puts(out, "='");
        buf_xml_attr(out, at->value, at->value_len);
        buf_putc(out, '\'');
    }
    if (e->children == NULL) {
        buf_puts(out, "/>");
        return;
    }
    buf_putc(out, '>');
    for (const struct xnode *c = e->children; c; c = c->next)
        serialize(out, c, scope);
    buf_puts(out, "</");
    if (xml_ns)
        buf_puts(out, "xml:");
    buf_puts(out, e->name);
    buf_putc(out, '>');
}

void xml_serialize(struct buf *out, const struct xnode *e, const char *parent_ns)
{
    serialize(out, e, parent_ns ? parent_ns : "");
}

bool xml_valid_chars(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        unsigned cp, n;
        if (c < 0x80) {
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
                return false;
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            cp = c & 0x1F, n = 1;
        } else if ((c & 0xF0) == 0xE0) {
            cp = c & 0x0F, n = 2;
        } else if ((c & 0xF8) == 0xF0) {
            cp = c & 0x07, n = 3;
        } else {
            return false;
        }
        if (len - i <= n)
            return false;
        for (unsigned k = 1; k <= n; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        /* Overlong forms, surrogates, out of range, non-characters. */
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0xFFFE || cp == 0xFFFF)
            return false;
        i += n + 1;
    }
    return true;
}
