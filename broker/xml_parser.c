/* xml_parser.c - expat, namespaces on, building one tree per stanza.
 *
 * depth 0 is outside everything; the stream header opens depth 1; a stanza is
 * an element opened at depth 1 (so its own depth is 2 in expat terms). We keep
 * `depth` as the number of open elements. Byte accounting uses
 * XML_GetCurrentByteIndex at event boundaries. */
#include "xml_parser.h"

#include <expat.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NS_SEP '\x01'

/* One interned namespace URI (see intern_ns). */
struct ns_slot {
    uint64_t hash;
    const char *uri;
    size_t len;
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
    const char *default_ns;  /* from the header's xmlns declaration */
    long long fed;           /* bytes fed since the parser was (re)started */
    long long mark;          /* byte index where the current unit began */
    long long idle_at;       /* byte index just past the last complete unit */
    /* The stream header's start tag as the client sent it: waking a
     * hibernated parser replays it, so the new expat parser has the same
     * namespace bindings and root prefix (see xmlp_hibernate). */
    char *hdr;
    size_t hdr_len;
    bool replaying;          /* parsing hdr on wake: no callbacks */
    /* Namespace URIs of the current unit, interned in the arena: open
     * addressing, emptied with the arena. */
    struct ns_slot *ns_tab;
    size_t ns_cap, ns_used;
    uint64_t ns_seed;
    /* Text of the current element not yet in the tree. expat delivers text
     * in pieces (every line, every entity reference); merging each piece
     * into the tree would copy the whole run each time, quadratic in bytes
     * and arena memory. The run goes into the tree once, at the next tag. */
    struct buf text;
};

/* Frees the current unit's tree (and with it the interned URIs). */
static void reset_unit(struct xmlp *p)
{
    arena_reset(&p->arena);
    p->ns_tab = NULL;
    p->ns_cap = p->ns_used = 0;
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

/* Hashes a URI by its length and at most 32 bytes at each end, so a lookup
 * costs one memcmp of the URI however long it is (expat itself copies it per
 * name at about that speed). Seeded per parser: colliding URIs cannot be
 * prepared in advance. */
static uint64_t hash_uri(uint64_t seed, const char *s, size_t len)
{
    uint64_t h = seed ^ ((uint64_t)len * 0x9E3779B97F4A7C15ull);
    size_t head = len < 32 ? len : 32;
    size_t tail = len - head < 32 ? len - head : 32;
    for (size_t i = 0; i < head; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull; /* FNV-1a step */
    for (size_t i = len - tail; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 31);
}

/* Returns the arena copy of a namespace URI, made once per unit. expat
 * names every element and attribute by its full URI; copying it per name
 * would let one long xmlns declaration followed by many short elements
 * allocate (max_stanza / 2)^2 bytes. Returns NULL on allocation failure. */
static const char *intern_ns(struct xmlp *p, const char *uri, size_t len)
{
    uint64_t h = hash_uri(p->ns_seed, uri, len);
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

/* Splits an expat "uri\x01local" name. Returns local; *ns gets the interned
 * uri ("" when none; NULL on allocation failure). */
static const char *split_name(struct xmlp *p, const char *name, const char **ns)
{
    const char *sep = strchr(name, NS_SEP);
    if (sep == NULL) {
        *ns = "";
        return name;
    }
    *ns = intern_ns(p, name, (size_t)(sep - name));
    return sep + 1;
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

static int add_attrs(struct xmlp *p, struct xnode *e, const char **atts)
{
    for (int i = 0; atts[i]; i += 2) {
        const char *ns;
        const char *local = split_name(p, atts[i], &ns);
        if (ns == NULL)
            return -1;
        int rc;
        if (strcmp(ns, NS_XML) == 0) {
            /* Any length: a long xml:* name is well-formed, not a resource
             * problem. */
            size_t l = strlen(local);
            char *qname = arena_alloc(&p->arena, l + 5);
            if (qname == NULL)
                return -1;
            memcpy(qname, "xml:", 4);
            memcpy(qname + 4, local, l + 1);
            rc = append_attr(p, e, "", qname, atts[i + 1]);
        } else {
            char *name = arena_strdup(&p->arena, local);
            rc = name ? append_attr(p, e, ns, name, atts[i + 1]) : -1;
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

static bool over_limit(struct xmlp *p)
{
    long long pos = XML_GetCurrentByteIndex(p->x);
    return pos >= 0 && pos - p->mark > (long long)p->lim.max_stanza;
}

/* End of the current event (a tag or a run of text) in expat's byte index. */
static long long event_end(struct xmlp *p)
{
    return XML_GetCurrentByteIndex(p->x) + XML_GetCurrentByteCount(p->x);
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
    const char *ns;
    const char *local = split_name(p, name, &ns);
    if (ns == NULL) {
        fail(p, XMLP_NOMEM);
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
        if (hdr == NULL || add_attrs(p, hdr, atts) != 0) {
            fail(p, XMLP_NOMEM);
            return;
        }
        p->depth = 1;
        p->mark = XML_GetCurrentByteIndex(p->x);
        p->idle_at = event_end(p);
        keep_header(p);
        p->in_callback = true;
        p->cb.on_open(p->ud, hdr, p->default_ns ? p->default_ns : "");
        p->in_callback = false;
        reset_unit(p);
        p->default_ns = NULL;
        return;
    }
    if (p->depth == 1)
        p->mark = XML_GetCurrentByteIndex(p->x);
    else if (over_limit(p)) {
        fail(p, XMLP_POLICY_VIOLATION);
        return;
    }
    /* The element being opened sits at stanza depth p->depth (the stream
     * header is open element 1, the stanza itself is depth 1). */
    if (p->depth > p->lim.max_depth) {
        fail(p, XMLP_POLICY_VIOLATION);
        return;
    }
    if (flush_text(p) != 0) {
        fail(p, XMLP_NOMEM);
        return;
    }
    struct xnode *e = new_elem(p, ns, local);
    if (e == NULL || add_attrs(p, e, atts) != 0) {
        fail(p, XMLP_NOMEM);
        return;
    }
    if (p->cur)
        xml_append(p->cur, e);
    else
        p->root = e;
    p->cur = e;
    p->depth++;
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
    if (over_limit(p)) {
        fail(p, XMLP_POLICY_VIOLATION);
        return;
    }
    p->cur = p->cur->parent;
    if (p->depth == 1) {
        struct xnode *st = p->root;
        p->root = p->cur = NULL;
        p->in_callback = true;
        p->cb.on_stanza(p->ud, st, &p->arena);
        p->in_callback = false;
        reset_unit(p);
        p->mark = XML_GetCurrentByteIndex(p->x);
        p->idle_at = event_end(p);
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
                fail(p, XMLP_BAD_FORMAT);
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

static void XMLCALL on_ns_start(void *ud, const char *prefix, const char *uri)
{
    struct xmlp *p = ud;
    if (p->depth == 0 && prefix == NULL) {
        p->default_ns = arena_strdup(&p->arena, uri ? uri : "");
        if (p->default_ns == NULL)
            fail(p, XMLP_NOMEM);
    }
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

/* A new expat parser for p (namespaces on). Returns false without memory. */
static bool create_expat(struct xmlp *p)
{
    p->x = XML_ParserCreateNS("UTF-8", NS_SEP);
    return p->x != NULL;
}

static int setup(struct xmlp *p)
{
    XML_SetUserData(p->x, p);
    XML_SetElementHandler(p->x, on_start, on_end);
    XML_SetCharacterDataHandler(p->x, on_text);
    XML_SetStartNamespaceDeclHandler(p->x, on_ns_start);
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
    p->default_ns = NULL;
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
    reset_unit(p);
    arena_free(&p->arena); /* the block a reset keeps, too */
    buf_free(&p->text);
    return true;
}

/* A new expat parser in the state the old one had between stanzas: the
 * client's own header replayed, no callback. */
static enum xmlp_error wake(struct xmlp *p)
{
    if (!create_expat(p))
        return p->err = XMLP_NOMEM;
    setup(p);
    p->replaying = true;
    enum XML_Status st = XML_Parse(p->x, p->hdr, (int)p->hdr_len, XML_FALSE);
    p->replaying = false;
    if (p->err != XMLP_OK)
        return p->err;
    if (st == XML_STATUS_ERROR || p->depth != 1)
        return p->err = XMLP_NOT_WELL_FORMED;
    reset_unit(p);
    p->default_ns = NULL;
    p->fed = p->mark = p->idle_at = (long long)p->hdr_len;
    return XMLP_OK;
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
    while (len > 0) {
        /* expat takes an int length; feed in bounded slices. */
        int n = len > (1u << 20) ? (1 << 20) : (int)len;
        enum XML_Status st = XML_Parse(p->x, data, n, XML_FALSE);
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
    case XMLP_OK: break;
    }
    return "undefined-condition";
}

size_t xmlp_memory(const struct xmlp *p) { return p->arena.total + p->text.cap; }

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
