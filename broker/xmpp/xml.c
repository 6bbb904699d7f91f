/* xml.c - stanza tree builders, lookups and the escaping serializer. */
#include "xml.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

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

/* ---- serializer ----
 *
 * Namespaces are written as default-namespace declarations (xmlns='...')
 * where an element's namespace differs from the one in scope, so ordinary
 * stanzas come out as clients write them. Done blindly that is quadratic: a
 * stanza that binds a prefix to a 128 KB URI once and uses it on 20,000
 * elements would be written with 20,000 copies of the URI. So the plain
 * scheme is tried first, summing the bytes of the declarations it writes;
 * in all but namespace-heavy trees they stay under NS_BIND_WASTE and that
 * one walk is the result. Past it the output is dropped and the tree walked
 * twice: the first walk counts, per distinct URI, the declarations the plain
 * scheme would write; a URI whose repeated declarations would waste more
 * than NS_BIND_WASTE bytes is instead bound once to a prefix (xmlns:n,
 * xmlns:n1...) on the root and written as n:name wherever it is not the
 * default (Namespaces in XML 1.0 §6.1: a binding on the root is in scope in
 * the whole subtree). Everything else stays as before, so the output is at
 * most a constant factor larger than the tree, and a given tree always gives
 * the same bytes.
 *
 * URIs are compared by their first 64 bytes (short_cmp) or, when those
 * cannot tell, by identity: each distinct string pointer is hashed once and
 * mapped to an entry for its content (the parser interns URIs per stanza,
 * so a parsed tree has one pointer per URI; built trees may have several
 * copies). Comparing or hashing a long URI per element would itself be
 * quadratic. */

/* Bytes of repeated default-namespace declarations tolerated per URI before
 * it is bound to a prefix instead. Real namespace URIs are short and rarely
 * repeated this much, so real stanzas keep their usual form. */
#define NS_BIND_WASTE 1024

/* Small trees never touch the heap. */
#define SER_INLINE 16

struct ns_ent {
    const char *uri;
    size_t len;
    uint64_t hash;
    size_t decls;  /* declarations the plain scheme writes */
    int prefix;    /* >= 0: bound on the root (put_prefix names it) */
    bool bindable; /* a prefix may be bound to it */
};

struct ns_ptr {
    const char *ptr; /* NULL = empty slot */
    uint32_t ent;
};

struct ser {
    struct buf *out;
    bool nomem;
    /* First try: the plain scheme, summing the declaration bytes written;
     * past NS_BIND_WASTE some URI might deserve a root binding, so the
     * output is dropped (restart) and the tree counted and written again. */
    bool plain, restart;
    size_t decl_bytes;
    struct ns_ent *ents;
    size_t nents, ents_cap;
    struct ns_ptr *ptrs; /* pointer -> entry, open addressing */
    size_t ptrs_used, ptrs_cap;
    uint32_t *by_hash; /* content -> entry + 1 (0 = empty), open addressing */
    size_t hash_cap;
    int nbound;
    struct ns_ent ents_inline[SER_INLINE];
    struct ns_ptr ptrs_inline[2 * SER_INLINE];
    uint32_t hash_inline[2 * SER_INLINE];
};

/* FNV-1a over the whole string, once per distinct pointer; also its length. */
static uint64_t uri_hash(const char *s, size_t *len)
{
    *len = strlen(s);
    return hash_mix(hash_fnv1a(HASH_FNV_OFFSET, s, *len) ^ *len);
}

/* A zeroed table of cap slots of n bytes, or NULL (and nomem). */
static void *table_new(struct ser *s, size_t cap, size_t n)
{
    void *t = calloc(cap, n);
    if (t == NULL)
        s->nomem = true;
    return t;
}

static bool ptrs_grow(struct ser *s)
{
    size_t cap = 2 * s->ptrs_cap;
    struct ns_ptr *t = table_new(s, cap, sizeof(*t));
    if (t == NULL)
        return false;
    for (size_t i = 0; i < s->ptrs_cap; i++) {
        if (s->ptrs[i].ptr == NULL)
            continue;
        size_t j = hash_mix((uintptr_t)s->ptrs[i].ptr) & (cap - 1);
        while (t[j].ptr != NULL)
            j = (j + 1) & (cap - 1);
        t[j] = s->ptrs[i];
    }
    if (s->ptrs != s->ptrs_inline)
        free(s->ptrs);
    s->ptrs = t;
    s->ptrs_cap = cap;
    return true;
}

static bool ents_grow(struct ser *s)
{
    size_t cap = 2 * s->ents_cap;
    uint32_t *h = table_new(s, 2 * cap, sizeof(*h));
    struct ns_ent *e = h ? malloc(cap * sizeof(*e)) : NULL;
    if (e == NULL) {
        free(h);
        s->nomem = true;
        return false;
    }
    memcpy(e, s->ents, s->nents * sizeof(*e));
    for (size_t i = 0; i < s->nents; i++) {
        size_t j = e[i].hash & (2 * cap - 1);
        while (h[j] != 0)
            j = (j + 1) & (2 * cap - 1);
        h[j] = (uint32_t)i + 1;
    }
    if (s->ents != s->ents_inline)
        free(s->ents);
    if (s->by_hash != s->hash_inline)
        free(s->by_hash);
    s->ents = e;
    s->ents_cap = cap;
    s->by_hash = h;
    s->hash_cap = 2 * cap;
    return true;
}

/* The entry for a URI's content, made on first sight. Returns its index, or
 * -1 without memory. */
static long ent_for_content(struct ser *s, const char *uri)
{
    size_t len;
    uint64_t h = uri_hash(uri, &len);
    size_t i = h & (s->hash_cap - 1);
    for (; s->by_hash[i] != 0; i = (i + 1) & (s->hash_cap - 1)) {
        const struct ns_ent *e = &s->ents[s->by_hash[i] - 1];
        if (e->hash == h && e->len == len && memcmp(e->uri, uri, len) == 0)
            return (long)s->by_hash[i] - 1;
    }
    if (s->nents == s->ents_cap) {
        if (!ents_grow(s))
            return -1;
        return ent_for_content(s, uri);
    }
    /* No prefix can be bound to no namespace or to the XML namespace
     * (Namespaces in XML 1.0 §3, §6.2). */
    bool xml = len == sizeof(NS_XML) - 1 && memcmp(uri, NS_XML, len) == 0;
    s->ents[s->nents] = (struct ns_ent){uri, len, h, 0, -1, len > 0 && !xml};
    s->by_hash[i] = (uint32_t)s->nents + 1;
    return (long)s->nents++;
}

/* The entry index of a URI string, by pointer (hashing it the first time
 * this pointer is seen). -1 without memory. */
static long ns_id(struct ser *s, const char *uri)
{
    if (s->ptrs_cap == 0) {
        /* First use: most stanzas never get here (see in_scope). */
        s->ents = s->ents_inline;
        s->ents_cap = SER_INLINE;
        s->ptrs = s->ptrs_inline;
        s->ptrs_cap = 2 * SER_INLINE;
        memset(s->ptrs_inline, 0, sizeof(s->ptrs_inline));
        s->by_hash = s->hash_inline;
        s->hash_cap = 2 * SER_INLINE;
        memset(s->hash_inline, 0, sizeof(s->hash_inline));
    }
    size_t i = hash_mix((uintptr_t)uri) & (s->ptrs_cap - 1);
    for (; s->ptrs[i].ptr != NULL; i = (i + 1) & (s->ptrs_cap - 1))
        if (s->ptrs[i].ptr == uri)
            return s->ptrs[i].ent;
    long id = ent_for_content(s, uri);
    if (id < 0)
        return -1;
    if (2 * (s->ptrs_used + 1) > s->ptrs_cap) {
        if (!ptrs_grow(s))
            return -1;
        i = hash_mix((uintptr_t)uri) & (s->ptrs_cap - 1);
        while (s->ptrs[i].ptr != NULL)
            i = (i + 1) & (s->ptrs_cap - 1);
    }
    s->ptrs[i] = (struct ns_ptr){uri, (uint32_t)id};
    s->ptrs_used++;
    return id;
}

/* The default namespace in scope: its string, and its entry once known
 * (-1 until some comparison needed it). */
struct scope {
    const char *ptr;
    long id;
};

/* Compares two URIs by at most their first NS_SHORT bytes: the same pointer
 * or a difference or an end within them decides; longer equal starts need
 * the entries (1 = same, 0 = different, -1 = cannot tell). Real namespace
 * URIs are short, so entries are made only for declarations, whose URI is
 * written out anyway. */
#define NS_SHORT 64
static int short_cmp(const char *a, const char *b)
{
    if (a == b)
        return 1;
    for (size_t i = 0; i < NS_SHORT; i++) {
        if (a[i] != b[i])
            return 0;
        if (a[i] == '\0')
            return 1;
    }
    return -1;
}

/* Sets *same to whether uri is the scope's namespace. -1 without memory. */
static int in_scope(struct ser *s, const char *uri, struct scope *sc, bool *same)
{
    int c = short_cmp(uri, sc->ptr);
    if (c >= 0) {
        *same = c == 1;
        return 0;
    }
    if (sc->id < 0 && (sc->id = ns_id(s, sc->ptr)) < 0)
        return -1;
    long id = ns_id(s, uri);
    if (id < 0)
        return -1;
    *same = id == sc->id;
    return 0;
}

/* The XML namespace cannot be a default namespace (Namespaces in XML §3);
 * strcmp stops within its 36 bytes. */
static bool is_xml_ns(const char *uri) { return strcmp(uri, NS_XML) == 0; }

/* How an element is written where sc is the default namespace. */
struct elem_ns {
    long id;                  /* its entry when it is not the default (else -1); an
                               * index: the table may move as entries are added */
    bool xml;                 /* "xml:" prefix */
    bool prefixed;            /* bound on the root: nK:name */
    bool declare;             /* xmlns='...' on it */
    struct scope inner;       /* the default namespace for its children */
};

/* Decides how e is written (write pass: root bindings known; root: e is
 * the serialized root, which never takes a prefix). -1 without memory. */
static int elem_ns(struct ser *s, const struct xnode *e, struct scope sc, bool root,
                   struct elem_ns *out)
{
    bool same = true;
    *out = (struct elem_ns){-1, is_xml_ns(e->ns), false, false, sc};
    /* An element in the XML namespace (parsed from <xml:foo/>) keeps the
     * fixed "xml:" prefix, and its children stay in the default namespace
     * around it. A prefixed element leaves the default namespace as it is. */
    if (out->xml)
        return 0;
    if (in_scope(s, e->ns, &sc, &same) != 0)
        return -1;
    if (same) {
        out->inner = (struct scope){e->ns, sc.id};
        return 0;
    }
    /* sc.id names the parent's namespace, not this one: unknown until a
     * comparison needs it (found by fuzz_serialize). */
    out->inner = (struct scope){e->ns, -1};
    out->declare = true;
    if (s->plain)
        return 0; /* no binding yet: the plain try needs no entry */
    long id = ns_id(s, e->ns);
    if (id < 0)
        return -1;
    out->id = id;
    out->prefixed = !root && s->ents[id].prefix >= 0;
    out->declare = !out->prefixed;
    out->inner = out->prefixed ? sc : (struct scope){e->ns, id};
    return 0;
}

/* First walk: counts the declarations the plain scheme would write (no
 * prefix is bound yet, so every change of namespace declares). */
static void count(struct ser *s, const struct xnode *e, struct scope sc)
{
    struct elem_ns en;
    if (e->kind != XN_ELEM || s->nomem || elem_ns(s, e, sc, true, &en) != 0)
        return;
    if (en.declare)
        s->ents[en.id].decls++;
    for (const struct xattr *at = e->attrs; at; at = at->next) {
        if (at->ns[0] == '\0')
            continue;
        long a = ns_id(s, at->ns);
        if (a < 0)
            return;
        s->ents[a].decls++;
    }
    for (const struct xnode *c = e->children; c; c = c->next)
        count(s, c, en.inner);
}

static void put_prefix(struct buf *out, const char *letter, int n)
{
    char p[24];
    int l = (letter[0] == 'n' && n == 0) ? snprintf(p, sizeof(p), "n")
                                          : snprintf(p, sizeof(p), "%s%d", letter, n);
    buf_append(out, p, (size_t)l);
}

/* Writes the start of an element's name: "xml:", a root prefix or nothing. */
static void put_elem_prefix(struct ser *s, const struct elem_ns *en)
{
    if (en->xml)
        buf_puts(s->out, "xml:");
    else if (en->prefixed) {
        put_prefix(s->out, "n", s->ents[en->id].prefix);
        buf_putc(s->out, ':');
    }
}

static void put_decl(struct buf *out, const char *letter, int n, const char *uri, size_t len)
{
    buf_puts(out, " xmlns");
    if (letter != NULL) {
        buf_putc(out, ':');
        put_prefix(out, letter, n);
    }
    buf_puts(out, "='");
    buf_xml_attr(out, uri, len);
    buf_putc(out, '\'');
}

/* Writes a declaration; in the plain try, adds its bytes and gives up
 * (restart) past NS_BIND_WASTE. Returns false after giving up. */
static bool decl(struct ser *s, const char *letter, int n, const char *uri)
{
    size_t before = s->out->len;
    put_decl(s->out, letter, n, uri, strlen(uri));
    if (!s->plain)
        return true;
    s->decl_bytes += s->out->len - before;
    s->restart = s->decl_bytes > NS_BIND_WASTE;
    return !s->restart;
}

/* Second walk: writes e where sc is the default namespace. Returns at once
 * when the buffer has failed (over its cap): nothing more can be written,
 * so nothing more is worth doing. */
static void write_node(struct ser *s, const struct xnode *e, struct scope sc, bool root)
{
    struct buf *out = s->out;
    if (!buf_ok(out))
        return;
    if (e->kind == XN_TEXT) {
        buf_xml_text(out, e->text, e->text_len);
        return;
    }
    if (e->kind == XN_RAW) {
        buf_append(out, e->text, e->text_len);
        return;
    }
    struct elem_ns en;
    if (elem_ns(s, e, sc, root, &en) != 0) {
        out->failed = true;
        return;
    }
    buf_putc(out, '<');
    put_elem_prefix(s, &en);
    buf_puts(out, e->name);
    if (en.declare && !decl(s, NULL, 0, e->ns))
        return;
    if (root && s->nbound > 0) {
        for (size_t i = 0; i < s->nents; i++)
            if (s->ents[i].prefix >= 0)
                put_decl(out, "n", s->ents[i].prefix, s->ents[i].uri, s->ents[i].len);
    }
    int local = 0;
    for (const struct xattr *at = e->attrs; at; at = at->next) {
        /* The plain try binds nothing, so needs no entry. */
        long a = at->ns[0] == '\0' || s->plain ? -1 : ns_id(s, at->ns);
        if (at->ns[0] != '\0' && !s->plain && a < 0) {
            out->failed = true;
            return;
        }
        bool xml = at->ns[0] != '\0' && is_xml_ns(at->ns);
        bool bound = a >= 0 && s->ents[a].prefix >= 0;
        if (at->ns[0] != '\0' && !xml && !bound) {
            /* A namespaced attribute gets a prefix declared on this element
             * (attributes never take the default namespace). */
            if (!decl(s, "a", local, at->ns))
                return;
            buf_putc(out, ' ');
            put_prefix(out, "a", local++);
            buf_putc(out, ':');
        } else {
            buf_putc(out, ' ');
            if (xml)
                buf_puts(out, "xml:"); /* bound by definition, never declared */
            else if (bound) {
                put_prefix(out, "n", s->ents[a].prefix);
                buf_putc(out, ':');
            }
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
    for (const struct xnode *c = e->children; c && buf_ok(out) && !s->restart; c = c->next)
        write_node(s, c, en.inner, false);
    buf_puts(out, "</");
    put_elem_prefix(s, &en);
    buf_puts(out, e->name);
    buf_putc(out, '>');
}

void xml_serialize(struct buf *out, const struct xnode *e, const char *parent_ns)
{
    /* The inline tables are set up on first use (ns_id), not zeroed here. */
    struct ser s;
    s.out = out;
    s.nomem = false;
    s.ents = NULL;
    s.nents = s.ents_cap = 0;
    s.ptrs = NULL;
    s.ptrs_used = s.ptrs_cap = 0;
    s.by_hash = NULL;
    s.hash_cap = 0;
    s.nbound = 0;
    s.plain = true;
    s.restart = false;
    s.decl_bytes = 0;
    if (!buf_ok(out))
        return;
    struct scope top = {parent_ns ? parent_ns : "", -1};
    size_t start = out->len;
    /* Under NS_BIND_WASTE bytes of declarations in all, no URI wastes more
     * than that, so the plain output is the final one: one walk for
     * ordinary stanzas. A try that failed (over the cap) before it could
     * tell is redone too: the final form may be shorter. */
    write_node(&s, e, top, true);
    if (!s.restart && (buf_ok(out) || s.decl_bytes == 0))
        goto done;
    buf_truncate(out, start);
    s.plain = s.restart = false;
    count(&s, e, top);
    for (size_t i = 0; i < s.nents && !s.nomem; i++) {
        struct ns_ent *ent = &s.ents[i];
        /* Counted as written (escaped): "'" is 6 bytes in a declaration.
         * RFC 6120 §4.8.5: the content namespace is never prefixed. */
        if (ent->bindable && ent->decls >= 2 &&
            (ent->decls - 1) * xml_attr_len(ent->uri, ent->len) > NS_BIND_WASTE &&
            strcmp(ent->uri, top.ptr) != 0)
            ent->prefix = s.nbound++;
    }
    if (s.nomem)
        out->failed = true;
    else
        write_node(&s, e, top, true);
done:
    if (s.ents != s.ents_inline)
        free(s.ents);
    if (s.ptrs != s.ptrs_inline)
        free(s.ptrs);
    if (s.by_hash != s.hash_inline)
        free(s.by_hash);
}

bool xml_equal(const struct xnode *a, const struct xnode *b)
{
    if (a->kind != b->kind)
        return false;
    if (a->kind != XN_ELEM)
        return a->text_len == b->text_len && memcmp(a->text, b->text, a->text_len) == 0;
    if (strcmp(a->ns, b->ns) != 0 || strcmp(a->name, b->name) != 0)
        return false;
    const struct xattr *x = a->attrs, *y = b->attrs;
    for (; x && y; x = x->next, y = y->next)
        if (strcmp(x->ns, y->ns) != 0 || strcmp(x->name, y->name) != 0 ||
            x->value_len != y->value_len || memcmp(x->value, y->value, x->value_len) != 0)
            return false;
    if (x || y)
        return false;
    const struct xnode *c = a->children, *d = b->children;
    for (; c && d; c = c->next, d = d->next)
        if (!xml_equal(c, d))
            return false;
    return c == NULL && d == NULL;
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

void xml_stream_error(struct buf *b, const char *condition, const char *text)
{
    buf_printf(b, "<stream:error><%s xmlns='" NS_STREAMS_ERR "'/>", condition);
    if (text) {
        buf_puts(b, "<text xmlns='" NS_STREAMS_ERR "' xml:lang='en'>");
        buf_xml_text(b, text, strlen(text));
        buf_puts(b, "</text>");
    }
    buf_puts(b, "</stream:error>");
}
