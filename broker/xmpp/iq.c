/* iq.c - iqs the server answers itself: the handler table and its handlers
 * (XEP-0199 ping, XEP-0030 disco, XEP-0092 version, the RFC 3921 session
 * no-op). The disco#info feature list comes from the same table. */
#include "iq.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "errors.h"
#include "herald.h"
#include "im.h"
#include "jid.h"
#include "pep.h"
#include "router.h"
#include "outq.h"
#include "session.h"
#include "xml.h"

enum { IQ_GET = 1, IQ_SET = 2 };

typedef void iq_handler(struct session *from, struct xnode *iq, struct xnode *child,
                        struct arena *a);

struct iq_row {
    const char *ns, *name;
    unsigned types;
    iq_handler *fn;
    const char *feature;  /* advertised in disco#info, or NULL */
};

static iq_handler on_ping, on_disco_info, on_disco_items, on_version, on_session, on_roster;

static const struct iq_row table[] = {
    {NS_PING, "ping", IQ_GET, on_ping, NS_PING},
    {NS_DISCO_INFO, "query", IQ_GET, on_disco_info, NS_DISCO_INFO},
    {NS_DISCO_ITEMS, "query", IQ_GET, on_disco_items, NS_DISCO_ITEMS},
    {NS_VERSION, "query", IQ_GET, on_version, NS_VERSION},
    {NS_SESSION, "session", IQ_SET, on_session, NULL},
    {NS_ROSTER, "query", IQ_GET | IQ_SET, on_roster, NULL}, /* RFC 6121 §2 */
    {NS_PRIVATE, "query", IQ_GET | IQ_SET, private_handle_iq, NS_PRIVATE}, /* XEP-0049 */
    {NS_VCARD, "vCard", IQ_GET | IQ_SET, vcard_handle_iq, NS_VCARD},       /* XEP-0054 §2 */
    /* XEP-0280 (carbons.c), XEP-0191 (blocking.c) */
    {NS_CARBONS, "enable", IQ_SET, carbons_handle_iq, NS_CARBONS},
    {NS_CARBONS, "disable", IQ_SET, carbons_handle_iq, NULL},
    {NS_BLOCKING, "blocklist", IQ_GET, blocking_handle_iq, NS_BLOCKING},
    {NS_BLOCKING, "block", IQ_SET, blocking_handle_iq, NULL},
    {NS_BLOCKING, "unblock", IQ_SET, blocking_handle_iq, NULL},
    /* XEP-0313: the archive is the account's (advertised on its bare JID) */
    {NS_MAM, "query", IQ_GET | IQ_SET, mam_query_iq, NULL},
    {NS_MAM, "prefs", IQ_GET | IQ_SET, mam_prefs_iq, NULL},
    /* XEP-0163: pubsub with no 'to' is one's own PEP service (pep.c) */
    {NS_PUBSUB_PEP, "pubsub", IQ_GET | IQ_SET, pep_handle_iq, NULL},
    {NS_PUBSUB_PEP_OWNER, "pubsub", IQ_GET | IQ_SET, pep_handle_iq, NULL},
};
#define NROWS (sizeof(table) / sizeof(table[0]))

const char *const *iq_features(void)
{
    static const char *list[NROWS + 1];
    size_t n = 0;
    if (list[0] == NULL)
        for (size_t i = 0; i < NROWS; i++)
            if (table[i].feature)
                list[n++] = table[i].feature;
    return list;
}

static void reply(struct session *from, struct xnode *iq, struct arena *a, struct xnode *payload)
{
    struct xnode *r = router_reply(a, iq, "result");
    if (r == NULL)
        return;
    if (xml_attr(iq, "to") == NULL)
        xml_del_attr(r, "from");
    if (payload)
        xml_append(r, payload);
    session_send_xml(from, r);
}

void iq_result(struct session *from, struct xnode *iq, struct arena *a, struct xnode *payload)
{
    reply(from, iq, a, payload);
}

static void on_ping(struct session *from, struct xnode *iq, struct xnode *child, struct arena *a)
{
    reply(from, iq, a, NULL);
}

static void on_roster(struct session *from, struct xnode *iq, struct xnode *child, struct arena *a)
{
    roster_handle_iq(from, iq, a);
}

static void on_session(struct session *from, struct xnode *iq, struct xnode *child,
                       struct arena *a)
{
    reply(from, iq, a, NULL);
}

/* The router hands us iqs to the sender's own bare JID too (RFC 6121
 * §8.5.2.1.3: the server answers on behalf of the account); 'to' is in
 * prepared form by then. Disco must then describe the account, not the
 * server (XEP-0030 §3.1). */
static bool to_own_account(const struct session *from, const struct xnode *iq)
{
    const char *to = xml_attr(iq, "to");
    return to != NULL && from->bare != NULL && strcmp(to, from->bare) == 0;
}

static int add_features(struct arena *a, struct xnode *q, const char *const *features)
{
    for (const char *const *f = features; *f; f++) {
        struct xnode *fe = xml_add_elem(a, q, NS_DISCO_INFO, "feature");
        if (fe == NULL || xml_set_attr(a, fe, "var", *f))
            return -1;
    }
    return 0;
}

/* Calls fn for each word of a space/comma-separated configuration list. */
static int each_word(const char *list, int (*fn)(void *ud, const char *w), void *ud)
{
    for (const char *p = list; p && *p;) {
        size_t skip = strspn(p, " ,\t"), n;
        p += skip;
        if ((n = strcspn(p, " ,\t")) == 0)
            break;
        char w[JID_MAX + 1];
        snprintf(w, sizeof(w), "%.*s", (int)(n < sizeof(w) ? n : sizeof(w) - 1), p);
        int rc = fn(ud, w);
        if (rc != 0)
            return rc;
        p += n;
    }
    return 0;
}

struct add_ctx {
    struct arena *a;
    struct xnode *q;
};

static int add_feature_word(void *ud, const char *w)
{
    struct add_ctx *c = ud;
    struct xnode *fe = xml_add_elem(c->a, c->q, NS_DISCO_INFO, "feature");
    return fe == NULL || xml_set_attr(c->a, fe, "var", w) ? -1 : 0;
}

static int add_item(struct arena *a, struct xnode *q, const char *jid, const char *name)
{
    struct xnode *it = xml_add_elem(a, q, NS_DISCO_ITEMS, "item");
    return it == NULL || xml_set_attr(a, it, "jid", jid) || (name && xml_set_attr(a, it, "name", name))
               ? -1 : 0;
}

static int add_item_word(void *ud, const char *w)
{
    struct add_ctx *c = ud;
    return add_item(c->a, c->q, w, NULL);
}

static const struct config_disco_node *disco_node(const struct config *cfg, const char *node)
{
    for (const struct config_disco_node *d = cfg->disco_nodes; d; d = d->next)
        if (strcmp(d->node, node) == 0)
            return d;
    return NULL;
}

/* disco#info of the server JID, or of one of its configured nodes
 * ([disco], [disco_node:NAME]); NULL with *err set when there is none. */
static struct xnode *server_info(struct herald *h, struct arena *a, const char *node, int *err)
{
    const struct config_disco_node *d = node ? disco_node(h->cfg, node) : NULL;
    struct xnode *q = xml_elem_new(a, NS_DISCO_INFO, "query");
    struct xnode *id = q ? xml_add_elem(a, q, NS_DISCO_INFO, "identity") : NULL;
    *err = HERALD_ENOMEM;
    if (id == NULL)
        return NULL;
    struct add_ctx c = {a, q};
    if (node != NULL) {
        if (d == NULL) {
            *err = HERALD_ENOTFOUND;
            return NULL;
        }
        /* XEP-0030 §3.1: a node has an identity; a configured one is a
         * branch of the server's hierarchy, or a leaf without items. */
        if (xml_set_attr(a, q, "node", node) || xml_set_attr(a, id, "category", "hierarchy") ||
            xml_set_attr(a, id, "type", d->items ? "branch" : "leaf") ||
            each_word(d->features, add_feature_word, &c))
            return NULL;
        return q;
    }
    if (xml_set_attr(a, id, "category", "server") || xml_set_attr(a, id, "type", "im") ||
        xml_set_attr(a, id, "name", "Herald") || add_features(a, q, iq_features()) ||
        each_word(h->cfg->disco_features, add_feature_word, &c))
        return NULL;
    return q;
}

/* disco#items of the server JID: the pubsub service, the components and
 * [disco] items; or a configured node's items. */
static struct xnode *server_items(struct herald *h, struct arena *a, const char *node, int *err)
{
    const struct config *cfg = h->cfg;
    struct xnode *q = xml_elem_new(a, NS_DISCO_ITEMS, "query");
    *err = HERALD_ENOMEM;
    if (q == NULL)
        return NULL;
    struct add_ctx c = {a, q};
    if (node != NULL) {
        const struct config_disco_node *d = disco_node(cfg, node);
        if (d == NULL) {
            *err = HERALD_ENOTFOUND;
            return NULL;
        }
        if (xml_set_attr(a, q, "node", node) || each_word(d->items, add_item_word, &c))
            return NULL;
        return q;
    }
    /* XEP-0030 §4.1, XEP-0060 §5.1: clients find the pubsub service among
     * the server's items. The JID is derived as pubsub_open() does, from
     * the configuration alone. */
    char jid[JID_MAX + 1];
    const char *ps = cfg->pubsub_jid;
    if (ps == NULL) {
        int n = snprintf(jid, sizeof(jid), "pubsub.%s", cfg->domain);
        if (n < 0 || (size_t)n >= sizeof(jid))
            return NULL;
        ps = jid;
    }
    if (add_item(a, q, ps, "Publish-Subscribe service"))
        return NULL;
    for (const struct config_component *k = cfg->components; k; k = k->next)
        if (add_item(a, q, k->domain, NULL))
            return NULL;
    if (each_word(cfg->disco_items, add_item_word, &c))
        return NULL;
    return q;
}

static void on_disco_info(struct session *from, struct xnode *iq, struct xnode *child,
                          struct arena *a)
{
    bool account = to_own_account(from, iq);
    if (!account) {
        int err;
        struct xnode *q = server_info(from->h, a, xml_attr(child, "node"), &err);
        if (q == NULL)
            router_error(from, iq, a, err, NULL, NULL);
        else
            reply(from, iq, a, q);
        return;
    }
    if (xml_attr(child, "node") != NULL) {
        router_error(from, iq, a, HERALD_ENOTFOUND, NULL, NULL);
        return;
    }
    /* What an account offers itself: discovery and, when enabled, its
     * message archive; ping, version and the like are the server's. */
    static const char *const account_features[] = {NS_DISCO_INFO, NS_DISCO_ITEMS, NULL};
    /* XEP-0313 §7, XEP-0359 §4: archives and stanza ids are the account's. */
    static const char *const account_mam_features[] = {NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MAM,
                                                       NS_SID, NULL};
    struct xnode *q = xml_elem_new(a, NS_DISCO_INFO, "query");
    struct xnode *id = q ? xml_add_elem(a, q, NS_DISCO_INFO, "identity") : NULL;
    /* XEP-0030's schema: every identity before the features. */
    if (id == NULL || xml_set_attr(a, id, "category", "account") ||
        xml_set_attr(a, id, "type", "registered") ||
        pep_disco_info_add(from->h, a, q) != 0 || /* XEP-0163 §6.1 */
        add_features(a, q, from->h->cfg->mam_enabled ? account_mam_features : account_features))
        return;
    reply(from, iq, a, q);
}

static void on_disco_items(struct session *from, struct xnode *iq, struct xnode *child,
                           struct arena *a)
{
    if (!to_own_account(from, iq)) {
        int err;
        struct xnode *q = server_items(from->h, a, xml_attr(child, "node"), &err);
        if (q == NULL)
            router_error(from, iq, a, err, NULL, NULL);
        else
            reply(from, iq, a, q);
        return;
    }
    if (xml_attr(child, "node") != NULL) {
        router_error(from, iq, a, HERALD_ENOTFOUND, NULL, NULL);
        return;
    }
    /* The account's items: its PEP nodes (XEP-0163). */
    struct xnode *q = xml_elem_new(a, NS_DISCO_ITEMS, "query");
    if (q == NULL || pep_disco_items_add(from->h, from->bare, from->full, a, q) != 0)
        return;
    reply(from, iq, a, q);
}

static void on_version(struct session *from, struct xnode *iq, struct xnode *child,
                       struct arena *a)
{
    struct xnode *q = xml_elem_new(a, NS_VERSION, "query");
    struct xnode *n = q ? xml_add_elem(a, q, NS_VERSION, "name") : NULL;
    struct xnode *v = q ? xml_add_elem(a, q, NS_VERSION, "version") : NULL;
    if (n == NULL || v == NULL || xml_add_text(a, n, "Herald", 6) ||
        xml_add_text(a, v, HERALD_VERSION, strlen(HERALD_VERSION)))
        return;
    reply(from, iq, a, q);
}

/* The reply (or error) to an iq from a remote entity, routed back to it. */
static void external_reply(struct herald *h, struct xnode *iq, struct arena *a,
                           struct xnode *payload, int err)
{
    const char *to = xml_attr(iq, "from");
    struct xnode *r = router_reply(a, iq, err ? "error" : "result");
    if (r == NULL || to == NULL)
        return;
    if (payload)
        xml_append(r, payload);
    if (err) {
        struct xnode *e = xml_add_elem(a, r, NS_CLIENT, "error");
        if (e == NULL || xml_set_attr(a, e, "type", herald_stanza_error_type(err)) ||
            xml_add_elem(a, e, NS_STANZAS, herald_stanza_condition(err)) == NULL)
            return;
    }
    struct chunk *ch = router_chunk(r);
    if (ch) {
        router_send(h, to, &ch, 1, ROUTE_FULL);
        chunk_unref(ch);
    }
}

void iq_dispatch_external(struct herald *h, struct xnode *iq, struct arena *a)
{
    const char *type = xml_attr(iq, "type");
    if (strcmp(type, "get") != 0 && strcmp(type, "set") != 0)
        return;
    struct xnode *child = xml_first_elem(iq), *q = NULL;
    int err = HERALD_EUNAVAIL;
    if (child == NULL || xml_next_elem(child) != NULL)
        err = HERALD_EINVAL;
    else if (strcmp(type, "get") != 0)
        ;
    else if (strcmp(child->ns, NS_PING) == 0 && strcmp(child->name, "ping") == 0)
        err = 0;
    else if (strcmp(child->ns, NS_DISCO_INFO) == 0 && strcmp(child->name, "query") == 0)
        err = (q = server_info(h, a, xml_attr(child, "node"), &err)) ? 0 : err;
    else if (strcmp(child->ns, NS_DISCO_ITEMS) == 0 && strcmp(child->name, "query") == 0)
        err = (q = server_items(h, a, xml_attr(child, "node"), &err)) ? 0 : err;
    external_reply(h, iq, a, q, err);
}

void iq_dispatch(struct session *from, struct xnode *iq, struct arena *a)
{
    const char *type = xml_attr(iq, "type");
    unsigned t = strcmp(type, "get") == 0 ? IQ_GET : strcmp(type, "set") == 0 ? IQ_SET : 0;
    if (t == 0) {
        pep_iq_answer(from, iq); /* maybe a XEP-0115 disco#info answer (caps.c) */
        return; /* results and errors addressed to the server need no answer */
    }
    /* RFC 6120 §8.2.3: a get or set has exactly one payload child. */
    struct xnode *child = xml_first_elem(iq);
    if (child == NULL || xml_next_elem(child) != NULL) {
        router_error(from, iq, a, HERALD_EINVAL, NULL, NULL);
        return;
    }
    for (size_t i = 0; i < NROWS; i++) {
        const struct iq_row *r = &table[i];
        if ((r->types & t) && strcmp(r->ns, child->ns) == 0 && strcmp(r->name, child->name) == 0) {
            r->fn(from, iq, child, a);
            return;
        }
    }
    router_error(from, iq, a, HERALD_EUNAVAIL, NULL, NULL);
}
