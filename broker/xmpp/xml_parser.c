/* xml_parser.c - expat as a tokenizer, our own namespace processing,
 * building one tree per stanza.
 *
 * depth 0 is outside everything; the stream header opens depth 1; a stanza is
 * an element opened at depth 1 (so its own depth is 2 in expat terms). We keep
 * `depth` as the number of open elements. Byte accounting uses
 * XML_GetCurrentByteIndex at event boundaries.
 *
 * Namespaces (Namespaces in XML 1.0) are resolved here, not by expat: expat's
 * namespace mode copies and hashes the whole URI for every prefixed
 * attribute, so one 256 KB start tag binding a 128 KB URI and using it on
 * 16,000 attributes cost 20 s of CPU. Here each declaration is interned once
 * per unit and a name is resolved by hashing its prefix only: a prefix table
 * maps each prefix to its innermost binding, which remembers the binding it
 * shadows; an element's bindings are undone at its end tag. The stream
 * header's bindings live on the heap for the whole stream. */
#include "xml_parser.h"

#include <expat.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

/* One interned namespace URI (see intern_ns). */
struct ns_slot {
    uint64_t hash;
    const char *uri;
    size_t len;
};

/* One namespace binding in scope (xmlns or xmlns:prefix on an element). */
struct nsbind {
    const char *prefix;       /* "" = the default namespace */
    const char *uri;          /* "" = none (xmlns='') */
    size_t uri_len;
    struct nsbind *shadowed;  /* the binding of the same prefix this one hides */
    struct nsbind *next;      /* the next binding made on the same element */
    bool header;              /* the stream header's: on the heap, lives with the stream */
    unsigned long gen;        /* header binding: unit in which `interned` is valid */
    const char *interned;     /* header binding: its URI interned in that unit */
};

/* A prefix and its innermost binding (NULL: none in scope). */
struct pfx_slot {
    const char *prefix;
    size_t len;
    struct nsbind *top;
};

/* Prefixes to bindings, open addressing; keys point into the bindings. */
struct pfx_table {
    struct pfx_slot *slots;
    size_t cap, used;
    struct arena *arena; /* where the slots live; NULL = the heap */
};

struct xmlp {
    XML_Parser x;
    struct xmlp_limits lim;
    struct xmlp_callbacks cb;
    void *ud;
    struct arena arena;
    struct xnode *cur;       /* element being built (NULL between stanzas) */
    struct xnode *root;      /* stanza root */
    unsigned depth;          /* open elements, stream header included */
    enum xmlp_error err;
    bool in_callback;
    bool restart_pending;
    bool closed;
    long long fed;           /* bytes fed since the parser was (re)started */
    long long mark;          /* byte index where the current unit began */
    long long idle_at;       /* byte index just past the last complete unit */
    /* The stream header's start tag as the client sent it: waking a
     * hibernated parser replays it, so the new expat parser has the same
     * namespace bindings and root prefix (see xmlp_hibernate). */
    char *hdr;
    size_t hdr_len;
    bool replaying;          /* parsing hdr on wake: no callbacks */
    bool framed;             /* xmlp_set_framed: hdr is ours, replayed at
                              * every (re)start */
    const char *slice;       /* the bytes XML_Parse is parsing now, and where */
    size_t slice_len;        /* they start in the stream (framed mode's check) */
    long long slice_at;
    /* Namespace URIs of the current unit, interned in the arena: open
     * addressing, emptied with the arena. */
    struct ns_slot *ns_tab;
    size_t ns_cap, ns_used;
    const char *content_ns;  /* xmlp_set_content_ns: read as jabber:client */
    uint64_t ns_seed;
    unsigned long unit_gen;  /* counts units (header, stanzas) */
    /* Prefixes in scope: the header's table lives with the stream; the
     * unit's table (bindings made inside a stanza, which may shadow the
     * header's) lives in the arena and goes with it, so a stanza never pays
     * for the header's bindings however many there are. */
    struct pfx_table hdr_pfx, unit_pfx;
    struct nsbind *def;           /* the default namespace's binding: kept
                                   * out of the tables, as it is looked up
                                   * for nearly every element */
    struct nsbind *hdr_binds;     /* the stream header's bindings (heap) */
    struct nsbind **elem_binds;   /* per open depth: bindings made there */
    /* Text of the current element not yet in the tree. expat delivers text
     * in pieces (every line, every entity reference); merging each piece
     * into the tree would copy the whole run each time, quadratic in bytes
     * and arena memory. The run goes into the tree once, at the next tag. */
    struct buf text;
};

static uint64_t hash_bytes(uint64_t seed, const char *s, size_t len)
{
    return hash_mix(hash_fnv1a(seed, s, len) ^ len);
}

/* The slot of a prefix in t (cap > 0): its entry, or the empty slot where
 * it would go. */
static struct pfx_slot *pfx_slot(const struct xmlp *p, struct pfx_table *t, const char *prefix,
                                 size_t len)
{
    size_t i = hash_bytes(p->ns_seed, prefix, len) & (t->cap - 1);
    for (; t->slots[i].prefix != NULL; i = (i + 1) & (t->cap - 1))
        if (t->slots[i].len == len && memcmp(t->slots[i].prefix, prefix, len) == 0)
            break;
    return &t->slots[i];
}

/* The innermost binding of a prefix, or NULL. */
static struct nsbind *pfx_lookup(struct xmlp *p, const char *prefix, size_t len)
{
    if (len == 0)
        return p->def;
    if (p->unit_pfx.cap > 0) {
        struct pfx_slot *sl = pfx_slot(p, &p->unit_pfx, prefix, len);
        if (sl->top != NULL)
            return sl->top;
    }
    return p->hdr_pfx.cap > 0 ? pfx_slot(p, &p->hdr_pfx, prefix, len)->top : NULL;
}

/* Makes b the innermost binding of its prefix: in the header's table for a
 * header binding, else in the unit's. Returns -1 without memory. */
static int pfx_bind(struct xmlp *p, struct nsbind *b)
{
    size_t len = strlen(b->prefix);
    if (len == 0) {
        b->shadowed = p->def;
        p->def = b;
        return 0;
    }
    b->shadowed = pfx_lookup(p, b->prefix, len);
    struct pfx_table *t = b->header ? &p->hdr_pfx : &p->unit_pfx;
    if (2 * (t->used + 1) > t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 16;
        struct pfx_slot *slots = t->arena ? arena_alloc(t->arena, cap * sizeof(*slots))
                                          : malloc(cap * sizeof(*slots));
        if (slots == NULL)
            return -1;
        memset(slots, 0, cap * sizeof(*slots));
        struct pfx_table old = *t;
        t->slots = slots;
        t->cap = cap;
        for (size_t i = 0; i < old.cap; i++)
            if (old.slots[i].prefix != NULL)
                *pfx_slot(p, t, old.slots[i].prefix, old.slots[i].len) = old.slots[i];
        if (t->arena == NULL)
            free(old.slots);
    }
    struct pfx_slot *sl = pfx_slot(p, t, b->prefix, len);
    if (sl->prefix == NULL) {
        *sl = (struct pfx_slot){b->prefix, len, NULL};
        t->used++;
    }
    sl->top = b;
    return 0;
}

/* Undoes the bindings an element made, at its end tag (never the
 * header's: the stream's end tag ends everything). */
static void pfx_unbind(struct xmlp *p, struct nsbind *list)
{
    for (struct nsbind *b = list; b; b = b->next) {
        if (b->prefix[0] == '\0')
            p->def = b->shadowed;
        else
            pfx_slot(p, &p->unit_pfx, b->prefix, strlen(b->prefix))->top = b->shadowed;
    }
}

/* Forgets the stream header's bindings (stream restart, hibernation). */
static void hdr_binds_free(struct xmlp *p)
{
    while (p->hdr_binds) {
        struct nsbind *b = p->hdr_binds;
        p->hdr_binds = b->next;
        free(b);
    }
    if (p->elem_binds)
        p->elem_binds[0] = NULL;
    free(p->hdr_pfx.slots);
    p->hdr_pfx = (struct pfx_table){NULL, 0, 0, NULL};
    p->def = NULL;
}

/* Frees the current unit's tree (and with it the interned URIs). */
static void reset_unit(struct xmlp *p)
{
    arena_reset(&p->arena);
    p->ns_tab = NULL;
    p->ns_cap = p->ns_used = 0;
    p->unit_gen++;
    /* Every stanza binding has been undone at its end tag (or the parser
     * has failed); the unit's table goes with the arena. */
    p->unit_pfx = (struct pfx_table){NULL, 0, 0, &p->arena};
    if (p->text.cap > 4096)
        buf_free(&p->text); /* do not keep a big stanza's buffer per stream */
    buf_reset(&p->text);
}

/* Moves the pending text run into the tree under p->cur. */
static int flush_text(struct xmlp *p)
{
    if (p->text.len == 0)
        return buf_ok(&p->text) ? 0 : -1;
    int rc = buf_ok(&p->text) ? xml_add_text(&p->arena, p->cur, p->text.data, p->text.len) : -1;
    buf_reset(&p->text);
    return rc;
}

static void fail(struct xmlp *p, enum xmlp_error e)
{
    if (p->err == XMLP_OK)
        p->err = e;
    XML_StopParser(p->x, XML_FALSE);
}

/* Returns the arena copy of a namespace URI, made once per unit, so that
 * equal URIs are one pointer in a stanza's tree (the serializer compares them
 * by pointer). Called once per declaration (and once per unit for a header
 * binding in use), so hashing the whole URI is linear in the input; a hash of
 * a few bytes would let URIs that differ only in the middle all collide.
 * Returns NULL on allocation failure. */
static const char *intern_ns(struct xmlp *p, const char *uri, size_t len)
{
    if (p->content_ns && len == strlen(p->content_ns) && memcmp(uri, p->content_ns, len) == 0) {
        uri = NS_CLIENT;
        len = sizeof(NS_CLIENT) - 1;
    }
    uint64_t h = hash_bytes(p->ns_seed, uri, len);
    if (2 * (p->ns_used + 1) > p->ns_cap) {
        size_t cap = p->ns_cap ? 2 * p->ns_cap : 16;
        struct ns_slot *tab = arena_alloc(&p->arena, cap * sizeof(*tab));
        if (tab == NULL)
            return NULL;
        for (size_t i = 0; i < p->ns_cap; i++) {
            if (p->ns_tab[i].uri == NULL)
                continue;
            size_t j = p->ns_tab[i].hash & (cap - 1);
            while (tab[j].uri != NULL)
                j = (j + 1) & (cap - 1);
            tab[j] = p->ns_tab[i];
        }
        p->ns_tab = tab;
        p->ns_cap = cap;
    }
    size_t i = h & (p->ns_cap - 1);
    for (; p->ns_tab[i].uri != NULL; i = (i + 1) & (p->ns_cap - 1)) {
        const struct ns_slot *sl = &p->ns_tab[i];
        if (sl->hash == h && sl->len == len && memcmp(sl->uri, uri, len) == 0)
            return sl->uri;
    }
    char *copy = arena_strndup(&p->arena, uri, len);
    if (copy == NULL)
        return NULL;
    p->ns_tab[i] = (struct ns_slot){h, copy, len};
    p->ns_used++;
    return copy;
}

/* The URI a binding stands for in the current unit (interned). */
static const char *bind_uri(struct xmlp *p, struct nsbind *b)
{
    if (!b->header)
        return b->uri;
    if (b->gen != p->unit_gen) {
        b->interned = intern_ns(p, b->uri, b->uri_len);
        b->gen = p->unit_gen;
    }
    return b->interned;
}

#define NS_XMLNS "http://www.w3.org/2000/xmlns/"

/* Whether s starts like an NCName (Namespaces in XML 1.0 §3). expat has
 * checked that the whole qualified name is an XML Name, so the part after a
 * colon holds only NameChars; what remains is to refuse those that may not
 * start a name: '-', '.', digits, U+00B7, U+0300-U+036F, U+203F-U+2040. */
static bool ncname_start(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] == '\0' || u[0] == '-' || u[0] == '.' || (u[0] >= '0' && u[0] <= '9'))
        return false;
    if (u[0] == 0xC2 && u[1] == 0xB7)
        return false;
    if ((u[0] == 0xCC && u[1] >= 0x80) || (u[0] == 0xCD && u[1] <= 0xAF))
        return false;
    return !(u[0] == 0xE2 && ((u[1] == 0x80 && u[2] == 0xBF) || (u[1] == 0x81 && u[2] == 0x80)));
}

/* The "xml" prefix is bound by definition; names in it share this string. */
static const char ns_xml[] = NS_XML;

static bool is_xmlns_attr(const char *name)
{
    return name[0] == 'x' && strncmp(name, "xmlns", 5) == 0 && (name[5] == '\0' || name[5] == ':');
}

/* Makes the bindings declared by a start tag's xmlns attributes, checking
 * Namespaces in XML 1.0 §3: a prefix is a non-empty NCName other than
 * xmlns, is never undeclared (xmlns:p=''), "xml" only ever means the XML
 * namespace and nothing else does, nothing binds the xmlns namespace. On the
 * stream header (depth 0) they go on the heap. Returns 0, or an error. */
static enum xmlp_error declare(struct xmlp *p, const char **atts, struct nsbind **list)
{
    bool header = p->depth == 0;
    for (int i = 0; atts[i]; i += 2) {
        const char *name = atts[i], *uri = atts[i + 1];
        if (!is_xmlns_attr(name))
            continue;
        const char *prefix = name[5] ? name + 6 : "";
        size_t plen = strlen(prefix), ulen = strlen(uri);
        bool is_xml_uri = strcmp(uri, NS_XML) == 0;
        if ((name[5] && (!ncname_start(prefix) || ulen == 0 || strchr(prefix, ':') != NULL ||
                         strcmp(prefix, "xmlns") == 0)) ||
            (strcmp(prefix, "xml") == 0) != is_xml_uri || strcmp(uri, NS_XMLNS) == 0)
            return XMLP_NOT_WELL_FORMED;
        struct nsbind *b;
        if (header) {
            b = malloc(sizeof(*b) + plen + 1 + ulen + 1);
            if (b == NULL)
                return XMLP_NOMEM;
            char *mem = (char *)(b + 1);
            memcpy(mem, prefix, plen + 1);
            memcpy(mem + plen + 1, uri, ulen + 1);
            *b = (struct nsbind){.prefix = mem, .uri = mem + plen + 1, .uri_len = ulen,
                                 .header = true};
            b->next = p->hdr_binds;
            p->hdr_binds = b;
        } else {
            b = arena_alloc(&p->arena, sizeof(*b));
            if (b == NULL)
                return XMLP_NOMEM;
            *b = (struct nsbind){.prefix = arena_strndup(&p->arena, prefix, plen),
                                 .uri = ulen ? intern_ns(p, uri, ulen) : "",
                                 .uri_len = ulen};
            if (b->prefix == NULL || b->uri == NULL)
                return XMLP_NOMEM;
            b->next = *list;
            *list = b;
        }
        if (pfx_bind(p, b) != 0)
            return XMLP_NOMEM;
    }
    return XMLP_OK;
}

/* Resolves a qualified name (Namespaces in XML 1.0 §4, §6): *local gets the
 * local part, *ns the interned URI. An unprefixed attribute has no
 * namespace; an unprefixed element has the default one. Returns 0, or an
 * error (an unbound prefix or a name that is not a QName). */
static enum xmlp_error resolve(struct xmlp *p, const char *qname, bool attr, const char **ns,
                               const char **local)
{
    const char *colon = strchr(qname, ':');
    if (colon == NULL) {
        *local = qname;
        struct nsbind *b = attr ? NULL : pfx_lookup(p, "", 0);
        *ns = b ? bind_uri(p, b) : "";
        return *ns ? XMLP_OK : XMLP_NOMEM;
    }
    *local = colon + 1;
    size_t plen = (size_t)(colon - qname);
    if (plen == 0 || !ncname_start(*local) || strchr(*local, ':') != NULL)
        return XMLP_NOT_WELL_FORMED;
    if (plen == 3 && memcmp(qname, "xml", 3) == 0) {
        *ns = ns_xml;
        return XMLP_OK;
    }
    struct nsbind *b = pfx_lookup(p, qname, plen);
    if (b == NULL || (plen == 5 && memcmp(qname, "xmlns", 5) == 0))
        return XMLP_NOT_WELL_FORMED;
    *ns = bind_uri(p, b);
    return *ns ? XMLP_OK : XMLP_NOMEM;
}

/* Builds an element without xml_elem_new: ns is already in the arena. */
static struct xnode *new_elem(struct xmlp *p, const char *ns, const char *local)
{
    struct xnode *e = arena_alloc(&p->arena, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->kind = XN_ELEM;
    e->ns = ns;
    e->name = arena_strdup(&p->arena, local);
    return e->name ? e : NULL;
}

/* Appends an attribute. Unlike xml_set_attr_ns there is no search for an
 * existing one (expat has already refused duplicates), so a start tag with
 * many attributes costs linear, not quadratic, time. */
static int append_attr(struct xmlp *p, struct xnode *e, const char *ns, const char *name,
                       const char *value)
{
    struct xattr *at = arena_alloc(&p->arena, sizeof(*at));
    if (at == NULL)
        return -1;
    at->ns = ns;
    at->name = name;
    at->value_len = strlen(value);
    at->value = arena_strndup(&p->arena, value, at->value_len);
    if (at->value == NULL)
        return -1;
    if (e->last_attr)
        e->last_attr->next = at;
    else
        e->attrs = at;
    e->last_attr = at;
    return 0;
}

/* Namespaces in XML 1.0 §6.3: no two attributes of a tag may have the same
 * namespace and local name (expat has already refused equal qualified
 * names). A hash set of the n namespaced attributes, so a tag with many
 * costs linear time; URIs are interned, so compared by pointer. */
static enum xmlp_error check_dup_attrs(struct xmlp *p, const struct xnode *e, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    const struct xattr **set = arena_alloc(&p->arena, cap * sizeof(*set));
    if (set == NULL)
        return XMLP_NOMEM;
    memset(set, 0, cap * sizeof(*set));
    for (const struct xattr *at = e->attrs; at; at = at->next) {
        if (at->ns[0] == '\0')
            continue;
        uint64_t h = hash_bytes((uint64_t)(uintptr_t)at->ns, at->name, strlen(at->name));
        size_t i = h & (cap - 1);
        for (; set[i] != NULL; i = (i + 1) & (cap - 1))
            if (set[i]->ns == at->ns && strcmp(set[i]->name, at->name) == 0)
                return XMLP_NOT_WELL_FORMED;
        set[i] = at;
    }
    return XMLP_OK;
}

static enum xmlp_error add_attrs(struct xmlp *p, struct xnode *e, const char **atts)
{
    size_t namespaced = 0;
    for (int i = 0; atts[i]; i += 2) {
        if (is_xmlns_attr(atts[i]))
            continue; /* a declaration, not an attribute */
        const char *ns, *local;
        enum xmlp_error err = resolve(p, atts[i], true, &ns, &local);
        if (err != XMLP_OK)
            return err;
        /* An attribute in the XML namespace keeps its "xml:" name (xml.h);
         * any length: a long xml:* name is well-formed, not a resource
         * problem. */
        bool xml = ns == ns_xml;
        char *name = arena_strdup(&p->arena, xml ? atts[i] : local);
        if (name == NULL || append_attr(p, e, xml ? "" : ns, name, atts[i + 1]) != 0)
            return XMLP_NOMEM;
        namespaced += !xml && ns[0] != '\0';
    }
    return namespaced > 1 ? check_dup_attrs(p, e, namespaced) : XMLP_OK;
}

/* End of the current event (a tag or a run of text) in expat's byte index;
 * for the end of an empty element tag, the end of that tag. */
static long long event_end(struct xmlp *p)
{
    return XML_GetCurrentByteIndex(p->x) + XML_GetCurrentByteCount(p->x);
}

/* Whether the current unit, up to the end of the current event, is over the
 * cap. Counting to the end of the event (not its start) makes the limit
 * exact: a stanza's last event is its end tag, so a stanza of max_stanza
 * bytes passes and one byte more fails, whatever the length of its names. */
static bool over_limit(struct xmlp *p)
{
    long long pos = XML_GetCurrentByteIndex(p->x);
    return pos >= 0 && event_end(p) - p->mark > (long long)p->lim.max_stanza;
}

/* Keeps a copy of the stream header's start tag, the current event. Without
 * it (expat built without context bytes, or no memory) the parser simply
 * never hibernates. */
static void keep_header(struct xmlp *p)
{
    int off = 0, size = 0;
    const char *ctx = XML_GetInputContext(p->x, &off, &size);
    int n = XML_GetCurrentByteCount(p->x);
    free(p->hdr);
    p->hdr = NULL;
    p->hdr_len = 0;
    if (ctx == NULL || n <= 0 || off < 0 || off > size || n > size - off)
        return;
    p->hdr = malloc((size_t)n);
    if (p->hdr == NULL)
        return;
    memcpy(p->hdr, ctx + off, (size_t)n);
    p->hdr_len = (size_t)n;
}

static void XMLCALL on_start(void *ud, const char *name, const char **atts)
{
    struct xmlp *p = ud;
    if (p->err != XMLP_OK)
        return;
    if (p->depth == 1)
        p->mark = XML_GetCurrentByteIndex(p->x);
    if (p->depth > 0 && over_limit(p)) {
        fail(p, XMLP_POLICY_VIOLATION);
        return;
    }
    /* The element being opened sits at stanza depth p->depth (the stream
     * header is open element 1, the stanza itself is depth 1). */
    if (p->depth > p->lim.max_depth) {
        fail(p, XMLP_POLICY_VIOLATION);
        return;
    }
    if (p->depth > 0 && flush_text(p) != 0) {
        fail(p, XMLP_NOMEM);
        return;
    }
    const char *ns = NULL, *local = NULL;
    enum xmlp_error err = declare(p, atts, &p->elem_binds[p->depth]);
    if (err == XMLP_OK)
        err = resolve(p, name, false, &ns, &local);
    if (err != XMLP_OK) {
        fail(p, err);
        return;
    }
    if (p->depth == 0) {
        if (strcmp(ns, NS_STREAM) != 0 || strcmp(local, "stream") != 0) {
            fail(p, XMLP_INVALID_NAMESPACE);
            return;
        }
        if (p->replaying) {
            p->depth = 1;
            return;
        }
        struct xnode *hdr = new_elem(p, ns, local);
        err = hdr ? add_attrs(p, hdr, atts) : XMLP_NOMEM;
        if (err != XMLP_OK) {
            fail(p, err);
            return;
        }
        const struct nsbind *def = pfx_lookup(p, "", 0);
        p->depth = 1;
        p->mark = XML_GetCurrentByteIndex(p->x);
        p->idle_at = event_end(p);
        keep_header(p);
        p->in_callback = true;
        p->cb.on_open(p->ud, hdr, def ? def->uri : "");
        p->in_callback = false;
        reset_unit(p);
        return;
    }
    struct xnode *e = new_elem(p, ns, local);
    err = e ? add_attrs(p, e, atts) : XMLP_NOMEM;
    if (err != XMLP_OK) {
        fail(p, err);
        return;
    }
    if (p->cur)
        xml_append(p->cur, e);
    else
        p->root = e;
    p->cur = e;
    p->depth++;
}

/* Framed mode: what the current message holds after the element that just
 * ended must be whitespace (RFC 7395 §3.3.3: one element per message). */
static bool framed_rest_blank(struct xmlp *p)
{
    long long end = event_end(p) - p->slice_at;
    if (p->slice == NULL || end < 0)
        return true;
    for (size_t i = (size_t)end; i < p->slice_len; i++)
        if (p->slice[i] != ' ' && p->slice[i] != '\t' && p->slice[i] != '\r' && p->slice[i] != '\n')
            return false;
    return true;
}

static void XMLCALL on_end(void *ud, const char *name)
{
    struct xmlp *p = ud;
    (void)name; /* expat has already matched start and end tags */
    /* After XML_StopParser expat still reports the end of an empty element
     * whose start handler failed (<foo/>); that element was never opened. */
    if (p->err != XMLP_OK || p->depth == 0)
        return;
    if (p->depth == 1) {
        p->depth = 0;
        p->closed = true;
        p->in_callback = true;
        p->cb.on_close(p->ud);
        p->in_callback = false;
        XML_StopParser(p->x, XML_FALSE);
        return;
    }
    if (flush_text(p) != 0) {
        fail(p, XMLP_NOMEM);
        return;
    }
    p->depth--;
    pfx_unbind(p, p->elem_binds[p->depth]);
    p->elem_binds[p->depth] = NULL;
    if (over_limit(p)) {
        fail(p, XMLP_POLICY_VIOLATION);
        return;
    }
    p->cur = p->cur->parent;
    if (p->depth == 1 && p->framed && !framed_rest_blank(p)) {
        fail(p, XMLP_FRAMING);
        return;
    }
    if (p->depth == 1) {
        struct xnode *st = p->root;
        p->root = p->cur = NULL;
        p->in_callback = true;
        p->cb.on_stanza(p->ud, st, &p->arena);
        p->in_callback = false;
        reset_unit(p);
        /* The end tag belongs to the stanza; the gap starts after it. */
        p->mark = event_end(p);
        p->idle_at = p->mark;
        if (p->restart_pending)
            XML_StopParser(p->x, XML_FALSE);
    }
}

static void XMLCALL on_text(void *ud, const char *s, int len)
{
    struct xmlp *p = ud;
    if (p->err != XMLP_OK)
        return;
    if (p->depth <= 1) {
        /* Between stanzas only whitespace (keepalives) is allowed. */
        for (int i = 0; i < len; i++) {
            if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') {
                fail(p, p->framed ? XMLP_FRAMING : XMLP_BAD_FORMAT);
                return;
            }
        }
        /* Whitespace keepalives are consumed, not buffered: they start a new
         * gap, so a long idle session never accumulates toward the cap. */
        p->mark = XML_GetCurrentByteIndex(p->x) + len;
        p->idle_at = event_end(p);
        return;
    }
    if (over_limit(p)) {
        fail(p, XMLP_POLICY_VIOLATION);
        return;
    }
    buf_append(&p->text, s, (size_t)len);
    if (!buf_ok(&p->text))
        fail(p, XMLP_NOMEM);
}

static void XMLCALL on_restricted_doctype(void *ud, const char *n, const char *s,
                                          const char *pub, int internal)
{
    fail(ud, XMLP_RESTRICTED_XML);
}

static void XMLCALL on_restricted_entity(void *ud, const char *n, int pe, const char *v,
                                         int vl, const char *b, const char *s,
                                         const char *pub, const char *nn)
{
    fail(ud, XMLP_RESTRICTED_XML);
}

static void XMLCALL on_restricted_pi(void *ud, const char *t, const char *d)
{
    fail(ud, XMLP_RESTRICTED_XML);
}

static void XMLCALL on_restricted_comment(void *ud, const char *d)
{
    fail(ud, XMLP_RESTRICTED_XML);
}

/* A new expat parser for p (namespace processing is ours, see the top).
 * Returns false without memory. */
static bool create_expat(struct xmlp *p)
{
    p->x = XML_ParserCreate("UTF-8");
    return p->x != NULL;
}

static int setup(struct xmlp *p)
{
    XML_SetUserData(p->x, p);
    XML_SetElementHandler(p->x, on_start, on_end);
    XML_SetCharacterDataHandler(p->x, on_text);
    XML_SetStartDoctypeDeclHandler(p->x, on_restricted_doctype);
    XML_SetEntityDeclHandler(p->x, on_restricted_entity);
    XML_SetProcessingInstructionHandler(p->x, on_restricted_pi);
    XML_SetCommentHandler(p->x, on_restricted_comment);
    /* Never read external entities or DTDs. */
    XML_SetParamEntityParsing(p->x, XML_PARAM_ENTITY_PARSING_NEVER);
#if XML_MAJOR_VERSION > 2 || (XML_MAJOR_VERSION == 2 && XML_MINOR_VERSION >= 6)
    /* expat >= 2.6 may defer parsing a completed token until more bytes
     * arrive; a stanza must be delivered as soon as its last byte is fed. */
    XML_SetReparseDeferralEnabled(p->x, XML_FALSE);
#endif
    p->cur = p->root = NULL;
    p->depth = 0;
    p->fed = 0;
    p->mark = 0;
    p->idle_at = -1;
    p->closed = false;
    p->restart_pending = false;
    hdr_binds_free(p);
    memset(p->elem_binds, 0, (p->lim.max_depth + 2) * sizeof(*p->elem_binds));
    reset_unit(p);
    return 0;
}

struct xmlp *xmlp_new(const struct xmlp_limits *lim, const struct xmlp_callbacks *cb,
                      void *ud)
{
    struct xmlp *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    if (!create_expat(p)) {
        free(p);
        return NULL;
    }
    p->ns_seed = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)&p->arena;
    p->lim = *lim;
    if (p->lim.max_depth < 2)
        p->lim.max_depth = 2;
    p->elem_binds = calloc(p->lim.max_depth + 2, sizeof(*p->elem_binds));
    if (p->elem_binds == NULL) {
        XML_ParserFree(p->x);
        free(p);
        return NULL;
    }
    p->cb = *cb;
    p->ud = ud;
    arena_init(&p->arena);
    buf_init(&p->text, 0);
    setup(p);
    return p;
}

void xmlp_free(struct xmlp *p)
{
    if (p == NULL)
        return;
    if (p->x)
        XML_ParserFree(p->x);
    arena_free(&p->arena);
    buf_free(&p->text);
    hdr_binds_free(p);
    free(p->elem_binds);
    free(p->hdr);
    free(p);
}

static void do_restart(struct xmlp *p)
{
    if (p->x)
        XML_ParserReset(p->x, "UTF-8");
    else if (!create_expat(p)) {
        p->err = XMLP_NOMEM;
        return;
    }
    setup(p);
}

bool xmlp_hibernate(struct xmlp *p)
{
    /* Only between stanzas, with every byte fed consumed by a complete
     * event: expat then holds nothing but the open header's context. */
    if (p->x == NULL || p->hdr == NULL || p->err != XMLP_OK || p->closed || p->in_callback ||
        p->restart_pending || p->depth != 1 || p->cur != NULL || p->fed != p->idle_at)
        return false;
    XML_ParserFree(p->x);
    p->x = NULL;
    hdr_binds_free(p); /* the replay on wake makes them again */
    reset_unit(p);
    arena_free(&p->arena); /* the block a reset keeps, too */
    buf_free(&p->text);
    return true;
}

/* Parses the kept header without callbacks: the parser is then between
 * stanzas, as after the client's own header. */
static enum xmlp_error replay_header(struct xmlp *p)
{
    p->replaying = true;
    enum XML_Status st = XML_Parse(p->x, p->hdr, (int)p->hdr_len, XML_FALSE);
    p->replaying = false;
    if (p->err != XMLP_OK)
        return p->err;
    if (st == XML_STATUS_ERROR || p->depth != 1)
        return p->err = XMLP_NOT_WELL_FORMED;
    reset_unit(p);
    p->fed = p->mark = p->idle_at = (long long)p->hdr_len;
    return XMLP_OK;
}

/* A new expat parser in the state the old one had between stanzas: the
 * client's own header replayed, no callback. */
static enum xmlp_error wake(struct xmlp *p)
{
    if (!create_expat(p))
        return p->err = XMLP_NOMEM;
    setup(p);
    return replay_header(p);
}

void xmlp_restart(struct xmlp *p)
{
    if (p->in_callback)
        p->restart_pending = true;
    else
        do_restart(p);
}

enum xmlp_error xmlp_feed(struct xmlp *p, const char *data, size_t len)
{
    if (p->err != XMLP_OK)
        return p->err;
    if (p->closed)
        return len ? XMLP_CLOSED : XMLP_OK;
    if (p->x == NULL && len > 0 && wake(p) != XMLP_OK)
        return p->err;
    if (p->framed && p->depth == 0 && len > 0 && replay_header(p) != XMLP_OK)
        return p->err;
    while (len > 0) {
        /* expat takes an int length; feed in bounded slices. */
        int n = len > (1u << 20) ? (1 << 20) : (int)len;
        p->slice = data;
        p->slice_len = (size_t)n;
        p->slice_at = p->fed;
        enum XML_Status st = XML_Parse(p->x, data, n, XML_FALSE);
        p->slice = NULL;
        if (st == XML_STATUS_ERROR) {
            if (p->err != XMLP_OK)
                return p->err;
            if (p->restart_pending) {
                do_restart(p);
                return XMLP_OK; /* the rest of this buffer is discarded */
            }
            if (p->closed)
                return XMLP_OK;
            p->err = XMLP_NOT_WELL_FORMED;
            return p->err;
        }
        p->fed += n;
        data += n;
        len -= (size_t)n;
        /* Bound expat's buffering between events: a unit (header, stanza, or
         * the gap between stanzas) may not exceed max_stanza bytes. */
        if (p->fed - p->mark > (long long)p->lim.max_stanza) {
            p->err = XMLP_POLICY_VIOLATION;
            return p->err;
        }
    }
    return XMLP_OK;
}

int xmlp_set_framed(struct xmlp *p)
{
    static const char hdr[] = "<stream:stream xmlns='" NS_CLIENT "' xmlns:stream='" NS_STREAM "'>";
    char *copy = malloc(sizeof(hdr) - 1);
    if (copy == NULL)
        return -1;
    memcpy(copy, hdr, sizeof(hdr) - 1);
    free(p->hdr);
    p->hdr = copy;
    p->hdr_len = sizeof(hdr) - 1;
    p->framed = true;
    return 0;
}

void xmlp_set_content_ns(struct xmlp *p, const char *ns) { p->content_ns = ns; }

bool xmlp_between_stanzas(const struct xmlp *p)
{
    return p->err == XMLP_OK && !p->closed &&
           (p->x == NULL || (p->depth <= 1 && p->cur == NULL));
}

const char *xmlp_strerror(enum xmlp_error e)
{
    switch (e) {
    case XMLP_OK: return "ok";
    case XMLP_NOT_WELL_FORMED: return "XML not well-formed";
    case XMLP_RESTRICTED_XML: return "DTD, entity, comment or processing instruction refused";
    case XMLP_POLICY_VIOLATION: return "stanza too large or too deeply nested";
    case XMLP_INVALID_NAMESPACE: return "stream root or namespace is wrong";
    case XMLP_BAD_FORMAT: return "text outside any stanza";
    case XMLP_NOMEM: return "out of memory";
    case XMLP_CLOSED: return "data after stream close";
    case XMLP_FRAMING: return "a message must hold exactly one complete element";
    }
    return "unknown";
}

const char *xmlp_condition(enum xmlp_error e)
{
    switch (e) {
    case XMLP_NOT_WELL_FORMED: return "not-well-formed";
    case XMLP_RESTRICTED_XML: return "restricted-xml";
    case XMLP_POLICY_VIOLATION: return "policy-violation";
    case XMLP_INVALID_NAMESPACE: return "invalid-namespace";
    case XMLP_BAD_FORMAT: return "bad-format";
    case XMLP_NOMEM: return "resource-constraint";
    case XMLP_CLOSED: return "not-well-formed";
    case XMLP_FRAMING: return "not-well-formed";
    case XMLP_OK: break;
    }
    return "undefined-condition";
}

size_t xmlp_memory(const struct xmlp *p)
{
    return p->arena.total + p->text.cap + p->hdr_pfx.cap * sizeof(*p->hdr_pfx.slots);
}

/* ---- one element outside a stream ---- */

struct one_elem {
    struct buf *out;
    unsigned count;
    bool no_ns;
};

static void one_open(void *ud, const struct xnode *hdr, const char *default_ns)
{
    (void)ud, (void)hdr, (void)default_ns;
}

static void one_stanza(void *ud, struct xnode *el, struct arena *a)
{
    struct one_elem *o = ud;
    (void)a;
    if (o->count++ == 0) {
        o->no_ns = el->ns[0] == '\0';
        /* "\x01" is no namespace: the root always declares its own. */
        xml_serialize(o->out, el, "\x01");
    }
}

static void one_close(void *ud) { (void)ud; }

enum xmlp_error xmlp_parse_element(const char *data, size_t len, const struct xmlp_limits *lim,
                                   struct buf *out)
{
    static const struct xmlp_callbacks cb = {one_open, one_stanza, one_close};
    static const char open[] = "<s:stream xmlns:s='" NS_STREAM "'>";
    static const char close[] = "</s:stream>";
    struct one_elem o = {out, 0, false};
    /* A document may start with a byte order mark and an XML declaration
     * (most serializers write one): both are skipped, the rest is parsed
     * inside the wrapper. */
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
        data += 3, len -= 3;
    if (len >= 6 && memcmp(data, "<?xml", 5) == 0 &&
        (data[5] == ' ' || data[5] == '\t' || data[5] == '\r' || data[5] == '\n')) {
        const char *end = memmem(data, len, "?>", 2);
        if (end == NULL)
            return XMLP_NOT_WELL_FORMED;
        len -= (size_t)(end + 2 - data);
        data = end + 2;
    }
    struct xmlp *p = xmlp_new(lim, &cb, &o);
    if (p == NULL)
        return XMLP_NOMEM;
    enum xmlp_error e = xmlp_feed(p, open, sizeof(open) - 1);
    if (e == XMLP_OK)
        e = xmlp_feed(p, data, len);
    if (e == XMLP_OK)
        e = xmlp_feed(p, close, sizeof(close) - 1);
    xmlp_free(p);
    if (e == XMLP_OK && (o.count != 1 || o.no_ns))
        e = XMLP_BAD_FORMAT;
    if (e == XMLP_OK && !buf_ok(out))
        e = XMLP_NOMEM;
    return e;
}
