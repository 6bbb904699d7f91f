/* caps.c - XEP-0115 entity capabilities for PEP's +notify filtering.
 *
 * A client's presence carries <c hash='sha-1' node ver/>: ver is a hash of
 * its disco#info. The server asks one full JID per unknown ver for that
 * disco#info (node 'node#ver'), recomputes the hash (§5.1) and, only when
 * it matches, remembers the ver's "+notify" features (XEP-0163 §4.3.1):
 * nothing else of the answer is needed, so an entry is its ver and the
 * NUL-separated namespaces (at most NOTIFY_BYTES; more are left out).
 *
 * Main data structures: a uthash of entries by ver, kept in least recently
 * used order (uthash keeps insertion order; a hit moves the entry to the
 * end), evicting the least recently used one at cache_size; and a ring of
 * max_queries outstanding queries, slot = query number % max_queries, so
 * an answer finds its query in O(1) and a new query past the bound takes
 * the oldest one's slot (that query's late answer is then ignored). */
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uthash.h>

#include "arena.h"
#include "buf.h"
#include "errors.h"
#include "log.h"
#include "pep.h"
#include "xml.h"

#define NS_DATA "jabber:x:data"
#define NOTIFY_BYTES 4096
#define NOTIFY_SUFFIX "+notify"
#define ITEMS_MAX 1024 /* identities, features, forms or fields of one answer */

struct entry {
    char ver[CAPS_VER_MAX + 1];
    size_t len;
    UT_hash_handle hh;
    char names[]; /* len bytes of NUL-terminated namespaces */
};

struct query {
    uint64_t num; /* 0: free */
    uint64_t asked_ms;
    char *full;
    char ver[CAPS_VER_MAX + 1];
};

struct caps {
    struct entry *by_ver;
    unsigned size;
    struct query *queries;
    unsigned max_queries;
    unsigned timeout_ms;
    uint64_t next_num;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int caps_open(unsigned cache_size, unsigned max_queries, unsigned timeout_ms, struct caps **out)
{
    struct caps *c = calloc(1, sizeof(*c));
    if (c == NULL ||
        (c->queries = calloc(max_queries ? max_queries : 1, sizeof(*c->queries))) == NULL) {
        free(c);
        return HERALD_ENOMEM;
    }
    c->size = cache_size ? cache_size : 1;
    c->max_queries = max_queries ? max_queries : 1;
    c->timeout_ms = timeout_ms;
    c->next_num = 1;
    *out = c;
    return 0;
}

void caps_close(struct caps *c)
{
    if (c == NULL)
        return;
    struct entry *e, *tmp;
    HASH_ITER(hh, c->by_ver, e, tmp)
    {
        HASH_DEL(c->by_ver, e);
        free(e);
    }
    for (unsigned i = 0; i < c->max_queries; i++)
        free(c->queries[i].full);
    free(c->queries);
    free(c);
}

unsigned caps_count(const struct caps *c)
{
    return HASH_CNT(hh, c->by_ver);
}

bool caps_lookup(struct caps *c, const char *ver, struct caps_notify *out)
{
    struct entry *e = NULL;
    HASH_FIND_STR(c->by_ver, ver, e);
    if (e == NULL)
        return false;
    /* Most recently used last: re-adding moves it to the end. */
    HASH_DEL(c->by_ver, e);
    HASH_ADD_STR(c->by_ver, ver, e);
    out->names = e->names;
    out->len = e->len;
    return true;
}

bool caps_notify_has(const struct caps_notify *n, const char *ns)
{
    for (size_t off = 0; off < n->len; off += strlen(n->names + off) + 1)
        if (strcmp(n->names + off, ns) == 0)
            return true;
    return false;
}

int caps_query_begin(struct caps *c, const char *full, const char *ver, char *id)
{
    uint64_t now = mono_ms();
    for (unsigned i = 0; i < c->max_queries; i++) {
        struct query *q = &c->queries[i];
        if (q->num == 0 || strcmp(q->ver, ver) != 0)
            continue;
        if (now - q->asked_ms < c->timeout_ms)
            return 0;
        /* Unanswered for too long (the entity asked left, or never
         * answers): ask this one instead, or the ver stays unknown. */
        free(q->full);
        q->full = NULL;
        q->num = 0;
    }
    char *copy = strdup(full);
    if (copy == NULL)
        return HERALD_ENOMEM;
    uint64_t num = c->next_num++;
    struct query *q = &c->queries[num % c->max_queries];
    free(q->full); /* the bound: the oldest outstanding query is forgotten */
    q->num = num;
    q->asked_ms = now;
    q->full = copy;
    snprintf(q->ver, sizeof(q->ver), "%s", ver);
    snprintf(id, 24, "caps-%llu", (unsigned long long)num);
    return 1;
}

/* ---- the verification string (§5.1) ---- */

struct ident {
    const char *category, *type, *lang, *name;
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_ident(const void *pa, const void *pb)
{
    const struct ident *a = pa, *b = pb;
    int r = strcmp(a->category, b->category);
    if (r == 0)
        r = strcmp(a->type, b->type);
    if (r == 0)
        r = strcmp(a->lang, b->lang);
    if (r == 0)
        r = strcmp(a->name, b->name);
    return r;
}

static const char *attr_or_empty(const struct xnode *e, const char *name)
{
    const char *v = xml_attr(e, name);
    return v ? v : "";
}

/* A form's fields: FORM_TYPE's value, then each other field's var and
 * sorted values (§5.1 step 6). */
struct form {
    const char *type;
    const struct xnode *x;
};

static int cmp_form(const void *a, const void *b)
{
    return strcmp(((const struct form *)a)->type, ((const struct form *)b)->type);
}

static int cmp_field(const void *a, const void *b)
{
    return strcmp(attr_or_empty(*(const struct xnode *const *)a, "var"),
                  attr_or_empty(*(const struct xnode *const *)b, "var"));
}

/* The FORM_TYPE of a form: NULL when absent or not hidden (§5.1 step 6:
 * such a form is ignored), "" marks several values (refused, §5.4). */
static const char *form_type(struct arena *a, const struct xnode *x)
{
    for (const struct xnode *f = xml_first_elem(x); f; f = xml_next_elem(f)) {
        if (strcmp(f->name, "field") != 0 || strcmp(attr_or_empty(f, "var"), "FORM_TYPE") != 0)
            continue;
        if (strcmp(attr_or_empty(f, "type"), "hidden") != 0)
            return NULL;
        const struct xnode *v = xml_child(f, NS_DATA, "value");
        if (v == NULL)
            return NULL;
        if (xml_next_elem(v) != NULL)
            return "";
        const char *t = xml_text(a, v);
        return t ? t : NULL;
    }
    return NULL;
}

static int put_form(struct buf *b, struct arena *a, const struct form *fm)
{
    const struct xnode *fields[ITEMS_MAX];
    const char *values[ITEMS_MAX];
    size_t nf = 0;
    buf_puts(b, fm->type);
    buf_putc(b, '<');
    for (const struct xnode *f = xml_first_elem(fm->x); f; f = xml_next_elem(f)) {
        if (strcmp(f->name, "field") != 0 || strcmp(attr_or_empty(f, "var"), "FORM_TYPE") == 0)
            continue;
        if (nf == ITEMS_MAX)
            return HERALD_EINVAL;
        fields[nf++] = f;
    }
    qsort(fields, nf, sizeof(fields[0]), cmp_field);
    for (size_t i = 0; i < nf; i++) {
        size_t nv = 0;
        buf_puts(b, attr_or_empty(fields[i], "var"));
        buf_putc(b, '<');
        for (const struct xnode *v = xml_first_elem(fields[i]); v; v = xml_next_elem(v)) {
            if (strcmp(v->name, "value") != 0)
                continue;
            const char *t = xml_text(a, v);
            if (t == NULL || nv == ITEMS_MAX)
                return t == NULL ? HERALD_ENOMEM : HERALD_EINVAL;
            values[nv++] = t;
        }
        qsort(values, nv, sizeof(values[0]), cmp_str);
        for (size_t k = 0; k < nv; k++) {
            buf_puts(b, values[k]);
            buf_putc(b, '<');
        }
    }
    return 0;
}

/* Sorted strings with a duplicate are refused (§5.4 step 3.3-3.5). */
static bool has_duplicates(const void *base, size_t n, size_t size,
                           int (*cmp)(const void *, const void *))
{
    for (size_t i = 1; i < n; i++)
        if (cmp((const char *)base + (i - 1) * size, (const char *)base + i * size) == 0)
            return true;
    return false;
}

static int verification_string(struct buf *b, struct arena *a, const struct xnode *query)
{
    /* Static: an answer can list ITEMS_MAX of each, too much for the stack;
     * the loop thread is the only caller. */
    static struct ident ids[ITEMS_MAX];
    static const char *feats[ITEMS_MAX];
    static struct form forms[ITEMS_MAX];
    size_t ni = 0, nf = 0, nx = 0;
    for (const struct xnode *e = xml_first_elem(query); e; e = xml_next_elem(e)) {
        if (strcmp(e->ns, NS_DISCO_INFO) == 0 && strcmp(e->name, "identity") == 0) {
            if (ni == ITEMS_MAX)
                return HERALD_EINVAL;
            ids[ni++] = (struct ident){attr_or_empty(e, "category"), attr_or_empty(e, "type"),
                                       attr_or_empty(e, "xml:lang"), attr_or_empty(e, "name")};
        } else if (strcmp(e->ns, NS_DISCO_INFO) == 0 && strcmp(e->name, "feature") == 0) {
            if (nf == ITEMS_MAX)
                return HERALD_EINVAL;
            feats[nf++] = attr_or_empty(e, "var");
        } else if (strcmp(e->ns, NS_DATA) == 0 && strcmp(e->name, "x") == 0) {
            const char *t = form_type(a, e);
            if (t != NULL && t[0] == '\0')
                return HERALD_EINVAL;
            if (t == NULL)
                continue;
            if (nx == ITEMS_MAX)
                return HERALD_EINVAL;
            forms[nx++] = (struct form){t, e};
        }
    }
    qsort(ids, ni, sizeof(ids[0]), cmp_ident);
    qsort(feats, nf, sizeof(feats[0]), cmp_str);
    qsort(forms, nx, sizeof(forms[0]), cmp_form);
    if (has_duplicates(ids, ni, sizeof(ids[0]), cmp_ident) ||
        has_duplicates(feats, nf, sizeof(feats[0]), cmp_str) ||
        has_duplicates(forms, nx, sizeof(forms[0]), cmp_form))
        return HERALD_EINVAL;
    for (size_t i = 0; i < ni; i++) {
        buf_printf(b, "%s/%s/%s/%s<", ids[i].category, ids[i].type, ids[i].lang, ids[i].name);
    }
    for (size_t i = 0; i < nf; i++) {
        buf_puts(b, feats[i]);
        buf_putc(b, '<');
    }
    for (size_t i = 0; i < nx; i++) {
        int rc = put_form(b, a, &forms[i]);
        if (rc != 0)
            return rc;
    }
    return buf_ok(b) ? 0 : HERALD_ENOMEM;
}

int caps_ver(const struct xnode *query, char *out)
{
    struct arena a;
    struct buf b;
    arena_init(&a);
    buf_init(&b, 0);
    int rc = verification_string(&b, &a, query);
    if (rc == 0) {
        unsigned char md[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)(b.data ? b.data : ""), b.len, md);
        EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH); /* 28 chars and a NUL */
    }
    buf_free(&b);
    arena_free(&a);
    return rc;
}

/* ---- answers ---- */

static int cache_put(struct caps *c, const char *ver, const struct xnode *query)
{
    size_t len = 0, suffix = strlen(NOTIFY_SUFFIX);
    char names[NOTIFY_BYTES];
    for (const struct xnode *e = xml_first_elem(query); e; e = xml_next_elem(e)) {
        const char *var = strcmp(e->name, "feature") == 0 ? xml_attr(e, "var") : NULL;
        size_t vl = var ? strlen(var) : 0;
        if (vl <= suffix || strcmp(var + vl - suffix, NOTIFY_SUFFIX) != 0)
            continue;
        if (len + vl - suffix + 1 > sizeof(names))
            break; /* the bound of one entry: later namespaces are left out */
        memcpy(names + len, var, vl - suffix);
        len += vl - suffix;
        names[len++] = '\0';
    }
    struct entry *e = malloc(sizeof(*e) + len);
    if (e == NULL)
        return HERALD_ENOMEM;
    snprintf(e->ver, sizeof(e->ver), "%s", ver);
    e->len = len;
    memcpy(e->names, names, len);
    if (HASH_CNT(hh, c->by_ver) >= c->size) {
        struct entry *old = c->by_ver; /* the least recently used */
        HASH_DEL(c->by_ver, old);
        free(old);
    }
    HASH_ADD_STR(c->by_ver, ver, e);
    return 0;
}

int caps_query_answer(struct caps *c, const char *from, const struct xnode *iq, char *ver_out)
{
    const char *id = xml_attr(iq, "id");
    char *end = NULL;
    if (id == NULL || strncmp(id, "caps-", 5) != 0 || from == NULL)
        return 0;
    unsigned long long num = strtoull(id + 5, &end, 10);
    struct query *q = &c->queries[num % c->max_queries];
    if (end == id + 5 || *end != '\0' || q->num != num || strcmp(q->full, from) != 0)
        return 0;
    char ver[CAPS_VER_MAX + 1], got[32];
    snprintf(ver, sizeof(ver), "%s", q->ver);
    free(q->full);
    q->full = NULL;
    q->num = 0;
    const char *type = xml_attr(iq, "type");
    const struct xnode *query = xml_child(iq, NS_DISCO_INFO, "query");
    if (type == NULL || strcmp(type, "result") != 0 || query == NULL)
        return 0;
    if (caps_ver(query, got) != 0 || strcmp(got, ver) != 0) {
        log_info("pep", "%s: disco#info does not hash to its caps ver %s: ignored", from, ver);
        return 0;
    }
    if (cache_put(c, ver, query) != 0)
        return 0;
    snprintf(ver_out, CAPS_VER_MAX + 1, "%s", ver);
    return 1;
}
