/* pubsub_iq.c - XEP-0060 over XMPP: parses the service's iqs and messages,
 * calls pubsub.c, and builds results, errors (with their pubsub#errors
 * conditions) and disco answers. `pubsub_features` is the single list of
 * what is implemented: disco#info advertises exactly it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "herald.h"
#include "jid.h"
#include "log.h"
#include "pubsub.h"
#include "router.h"
#include "session.h"
#include "store.h"
#include "xml.h"

#define NS_PUBSUB "http://jabber.org/protocol/pubsub"
#define NS_OWNER "http://jabber.org/protocol/pubsub#owner"
#define NS_ERRORS "http://jabber.org/protocol/pubsub#errors"
#define NS_DATA "jabber:x:data"
#define NS_RSM "http://jabber.org/protocol/rsm"
#define NS_SUB_OPTIONS "http://jabber.org/protocol/pubsub#subscribe_options"
#define NS_SUB_AUTH "http://jabber.org/protocol/pubsub#subscribe_authorization"
#define NS_PUBLISH_OPTIONS "http://jabber.org/protocol/pubsub#publish-options"
#define NS_NODE_CONFIG "http://jabber.org/protocol/pubsub#node_config"

/* XEP-0060 §10: the features this service implements, advertised as
 * http://jabber.org/protocol/pubsub#<feature>. */
static const char *const pubsub_features[] = {
    "access-authorize",
    "access-open",
    "access-presence",
    "access-whitelist",
    "collections",
    "config-node",
    "create-and-configure",
    "create-nodes",
    "delete-items",
    "delete-nodes",
    "instant-nodes",
    "item-ids",
    "last-published",
    "manage-subscriptions",
    "member-affiliation",
    "meta-data",
    "modify-affiliations",
    "multi-subscribe",
    "outcast-affiliation",
    "persistent-items",
    "publish",
    "publish-only-affiliation",
    "publish-options",
    "publisher-affiliation",
    "purge-nodes",
    "retract-items",
    "retrieve-affiliations",
    "retrieve-default",
    "retrieve-default-sub",
    "retrieve-items",
    "retrieve-subscriptions",
    "subscribe",
    "subscription-notifications",
    "subscription-options",
};

static const char *const aff_names[] = {"none", "owner", "publisher", "publish-only", "member",
                                        "outcast"};
static const char *const sub_names[] = {"none", "subscribed", "pending"};

static int aff_parse(const char *s)
{
    for (int i = 0; s && i < 6; i++)
        if (strcmp(s, aff_names[i]) == 0)
            return i;
    return -1;
}

static int sub_parse(const char *s)
{
    for (int i = 0; s && i < 3; i++)
        if (strcmp(s, sub_names[i]) == 0)
            return i;
    return -1;
}

struct req {
    struct ps_service *ps;
    struct session *from;
    struct xnode *iq;
    struct arena *a;
    const char *who;
};

/* ---- replies ---- */

static struct xnode *result(struct req *r)
{
    return router_reply(r->a, r->iq, "result");
}

static void send_reply(struct req *r, struct xnode *reply)
{
    if (reply != NULL)
        pubsub_send(r->ps, r->who, reply, true, xml_attr(r->iq, "id"));
}

/* The error reply, carrying payload (e.g. refused entries) when given. */
static void send_error_with(struct req *r, const struct ps_err *e, struct xnode *payload)
{
    struct arena *a = r->a;
    struct xnode *rep = router_reply(a, r->iq, "error");
    if (rep && payload)
        xml_append(rep, payload);
    struct xnode *er = rep ? xml_add_elem(a, rep, NS_CLIENT, "error") : NULL;
    if (er == NULL || xml_set_attr(a, er, "type", e->type ? e->type : "cancel") ||
        xml_add_elem(a, er, NS_STANZAS, e->cond ? e->cond : "internal-server-error") == NULL)
        return;
    if (e->app) {
        struct xnode *app = xml_add_elem(a, er, NS_ERRORS, e->app);
        if (app == NULL || (e->feature && xml_set_attr(a, app, "feature", e->feature)))
            return;
    }
    send_reply(r, rep);
}

static void send_error(struct req *r, const struct ps_err *e)
{
    send_error_with(r, e, NULL);
}

static void fail(struct req *r, const char *cond, const char *type, const char *app,
                 const char *feature)
{
    struct ps_err e = {cond, type, app, feature, NULL};
    send_error(r, &e);
}

/* <pubsub xmlns=ns><name node=...>: the usual wrapper of a result. */
static struct xnode *wrap(struct req *r, struct xnode *reply, const char *ns, const char *name,
                          const char *node)
{
    struct xnode *p = reply ? xml_add_elem(r->a, reply, ns, "pubsub") : NULL;
    struct xnode *e = p ? xml_add_elem(r->a, p, ns, name) : NULL;
    if (e && node && xml_set_attr(r->a, e, "node", node))
        return NULL;
    return e;
}

/* ---- disco (XEP-0030, XEP-0060 §5) ---- */

static void disco_info(struct req *r, struct xnode *q)
{
    struct arena *a = r->a;
    const char *node = xml_attr(q, "node");
    struct xnode *rep = result(r);
    struct xnode *res = rep ? xml_add_elem(a, rep, NS_DISCO_INFO, "query") : NULL;
    struct xnode *id = res ? xml_add_elem(a, res, NS_DISCO_INFO, "identity") : NULL;
    if (id == NULL || xml_set_attr(a, id, "category", "pubsub"))
        return;
    if (node == NULL) {
        if (xml_set_attr(a, id, "type", "service") || xml_set_attr(a, id, "name", "Herald pubsub"))
            return;
        struct xnode *f = xml_add_elem(a, res, NS_DISCO_INFO, "feature");
        if (f == NULL || xml_set_attr(a, f, "var", NS_PUBSUB))
            return;
        f = xml_add_elem(a, res, NS_DISCO_INFO, "feature");
        if (f == NULL || xml_set_attr(a, f, "var", NS_DISCO_INFO))
            return;
        f = xml_add_elem(a, res, NS_DISCO_INFO, "feature");
        if (f == NULL || xml_set_attr(a, f, "var", NS_DISCO_ITEMS))
            return;
        size_t nf = sizeof(pubsub_features) / sizeof(pubsub_features[0]);
        for (size_t i = 0; i <= nf; i++) {
            const char *name = i < nf ? pubsub_features[i] : (r->ps->auto_create ? "auto-create" : NULL);
            if (name == NULL)
                break;
            char var[128];
            snprintf(var, sizeof(var), NS_PUBSUB "#%s", name);
            f = xml_add_elem(a, res, NS_DISCO_INFO, "feature");
            if (f == NULL || xml_set_attr(a, f, "var", var))
                return;
        }
        send_reply(r, rep);
        return;
    }
    struct ps_node *n = pubsub_node(r->ps, node);
    if (n == NULL) {
        fail(r, "item-not-found", "cancel", NULL, NULL);
        return;
    }
    /* Smack and others need the leaf/collection identity on a node. */
    if (xml_set_attr(a, id, "type", n->cfg.node_type == PS_COLLECTION ? "collection" : "leaf") ||
        xml_set_attr(a, res, "node", node))
        return;
    struct xnode *f = xml_add_elem(a, res, NS_DISCO_INFO, "feature");
    if (f == NULL || xml_set_attr(a, f, "var", NS_PUBSUB))
        return;
    const char *owners[16];
    size_t no = 0;
    struct ps_aff_rec *ar, *tmp;
    HASH_ITER(hh, n->affs, ar, tmp) if (ar->aff == AFF_OWNER && no < 16) owners[no++] = ar->jid;
    struct xnode *md = ps_config_metadata(a, &n->cfg, &r->ps->caps, n->created, owners, no);
    if (md == NULL)
        return;
    xml_append(res, md);
    send_reply(r, rep);
}

struct items_ctx {
    struct arena *a;
    struct xnode *parent;
    const char *jid;
    bool payloads;
    bool ids_only;
    struct xnode **list;
    size_t n, cap;
    const char *first, *last;
};

static int collect_item(void *ud, const struct store_item *it)
{
    struct items_ctx *c = ud;
    struct xnode *e = xml_elem_new(c->a, c->ids_only ? NS_DISCO_ITEMS : NS_PUBSUB, "item");
    char *id = e ? arena_strndup(c->a, it->id, it->id_len) : NULL;
    if (id == NULL)
        return HERALD_ENOMEM;
    if (c->ids_only) {
        if (xml_set_attr(c->a, e, "jid", c->jid) || xml_set_attr(c->a, e, "name", id))
            return HERALD_ENOMEM;
    } else {
        char *pub = arena_strndup(c->a, it->publisher, it->publisher_len);
        if (pub == NULL || xml_set_attr(c->a, e, "id", id) ||
            (it->publisher_len && xml_set_attr(c->a, e, "publisher", pub)))
            return HERALD_ENOMEM;
        if (c->payloads && it->payload_len && xml_add_raw(c->a, e, it->payload, it->payload_len))
            return HERALD_ENOMEM;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        struct xnode **l = arena_alloc(c->a, cap * sizeof(*l));
        if (l == NULL)
            return HERALD_ENOMEM;
        if (c->n)
            memcpy(l, c->list, c->n * sizeof(*l));
        c->list = l;
        c->cap = cap;
    }
    c->list[c->n++] = e;
    if (c->first == NULL)
        c->first = id; /* the first one collected */
    c->last = id;      /* the last one collected */
    return 0;
}

static void disco_items(struct req *r, struct xnode *q)
{
    struct arena *a = r->a;
    const char *node = xml_attr(q, "node");
    struct xnode *rep = result(r);
    struct xnode *res = rep ? xml_add_elem(a, rep, NS_DISCO_ITEMS, "query") : NULL;
    if (res == NULL)
        return;
    if (node == NULL) {
        struct ps_node *n, *tmp;
        HASH_ITER(hh, r->ps->nodes, n, tmp) {
            struct xnode *it = xml_add_elem(a, res, NS_DISCO_ITEMS, "item");
            if (it == NULL || xml_set_attr(a, it, "jid", r->ps->jid) ||
                xml_set_attr(a, it, "node", n->name) ||
                (n->cfg.title[0] && xml_set_attr(a, it, "name", n->cfg.title)))
                return;
        }
        send_reply(r, rep);
        return;
    }
    struct ps_node *n = pubsub_node(r->ps, node);
    struct ps_err e;
    if (n == NULL) {
        fail(r, "item-not-found", "cancel", NULL, NULL);
        return;
    }
    if (pubsub_can_read(r->ps, n, r->who, &e) != 0) {
        send_error(r, &e);
        return;
    }
    if (xml_set_attr(a, res, "node", node))
        return;
    if (n->cfg.node_type == PS_COLLECTION) {
        /* XEP-0248: a collection's items are its child nodes. */
        struct ps_node *c, *tmp;
        HASH_ITER(hh, r->ps->nodes, c, tmp) {
            if (strcmp(c->cfg.collection, n->name) != 0)
                continue;
            struct xnode *it = xml_add_elem(a, res, NS_DISCO_ITEMS, "item");
            if (it == NULL || xml_set_attr(a, it, "jid", r->ps->jid) || xml_set_attr(a, it, "node", c->name))
                return;
        }
        send_reply(r, rep);
        return;
    }
    /* XEP-0060 §5.5: item ids as disco items. */
    int rc;
    struct store_txn *t = pubsub_txn(r->ps, &rc);
    if (t == NULL) {
        fail(r, "internal-server-error", "wait", NULL, NULL);
        return;
    }
    struct items_ctx c = {a, res, r->ps->jid, false, true, NULL, 0, 0, NULL, NULL};
    rc = store_items_newest(t, n->id, UINT64_MAX, UINT32_MAX, collect_item, &c);
    pubsub_txn_done(r->ps, t);
    if (rc != 0) {
        fail(r, "internal-server-error", "wait", NULL, NULL);
        return;
    }
    for (size_t i = c.n; i-- > 0;)
        xml_append(res, c.list[i]);
    send_reply(r, rep);
}

/* ---- entity requests (http://jabber.org/protocol/pubsub) ---- */

static void do_create(struct req *r, struct xnode *create, struct xnode *pubsub)
{
    struct xnode *configure = xml_child(pubsub, NS_PUBSUB, "configure");
    struct xnode *form = configure ? xml_child(configure, NS_DATA, "x") : NULL;
    const char *node = xml_attr(create, "node");
    char *name = NULL;
    struct ps_err e;
    if (pubsub_create(r->ps, r->who, node, form, r->a, &name, &e) != 0) {
        send_error(r, &e);
        return;
    }
    struct xnode *rep = result(r);
    if (node == NULL) {
        /* §8.1.2: tell the owner the instant node's name. */
        if (wrap(r, rep, NS_PUBSUB, "create", name) == NULL)
            return;
    }
    send_reply(r, rep);
}

static void do_publish(struct req *r, struct xnode *publish, struct xnode *pubsub)
{
    struct ps_publish_req req = {xml_attr(publish, "node"), NULL, false, NULL, NULL};
    struct xnode *item = xml_child(publish, NS_PUBSUB, "item");
    if (xml_count_elems(publish) > 1) {
        fail(r, "bad-request", "modify", "invalid-payload", NULL); /* one item per publish */
        return;
    }
    if (item) {
        req.has_item = true;
        req.item_id = xml_attr(item, "id");
        if (xml_count_elems(item) > 1) {
            fail(r, "bad-request", "modify", "invalid-payload", NULL); /* §7.1.3.5 */
            return;
        }
        req.payload = xml_first_elem(item);
    }
    struct xnode *po = xml_child(pubsub, NS_PUBSUB, "publish-options");
    if (po) {
        req.options = xml_child(po, NS_DATA, "x");
        const char *ft = req.options ? ps_form_type(r->a, req.options) : NULL;
        if (req.options && (ft == NULL || strcmp(ft, NS_PUBLISH_OPTIONS) != 0)) {
            fail(r, "bad-request", "modify", "invalid-options", NULL);
            return;
        }
    }
    char id[300];
    struct ps_err e;
    if (pubsub_publish(r->ps, r->who, &req, r->a, id, sizeof(id), &e) != 0) {
        send_error(r, &e);
        return;
    }
    struct xnode *rep = result(r);
    struct xnode *p = wrap(r, rep, NS_PUBSUB, "publish", req.node);
    struct xnode *it = p ? xml_add_elem(r->a, p, NS_PUBSUB, "item") : NULL;
    if (it == NULL || xml_set_attr(r->a, it, "id", id))
        return;
    send_reply(r, rep);
}

static void do_retract(struct req *r, struct xnode *retract)
{
    struct xnode *item = xml_child(retract, NS_PUBSUB, "item");
    const char *notify = xml_attr(retract, "notify");
    bool n = notify && (strcmp(notify, "true") == 0 || strcmp(notify, "1") == 0);
    struct ps_err e;
    if (pubsub_retract(r->ps, r->who, xml_attr(retract, "node"), item ? xml_attr(item, "id") : NULL,
                       n, &e) != 0) {
        send_error(r, &e);
        return;
    }
    send_reply(r, result(r));
}

static struct xnode *subscription_elem(struct req *r, struct xnode *parent, const char *ns,
                                       const char *node, const struct ps_sub *s)
{
    struct xnode *e = xml_add_elem(r->a, parent, ns, "subscription");
    if (e == NULL || (node && xml_set_attr(r->a, e, "node", node)) ||
        xml_set_attr(r->a, e, "jid", s->jid) || xml_set_attr(r->a, e, "subid", s->subid) ||
        xml_set_attr(r->a, e, "subscription", sub_names[s->state]))
        return NULL;
    return e;
}

static bool form_bool(struct arena *a, const struct xnode *x, const char *var, bool dflt)
{
    const char *v = ps_form_value(a, x, var);
    if (v == NULL)
        return dflt;
    return strcmp(v, "1") == 0 || strcmp(v, "true") == 0;
}

static void do_subscribe(struct req *r, struct xnode *sub, struct xnode *pubsub)
{
    const char *node = xml_attr(sub, "node");
    struct ps_sub *s = NULL;
    struct ps_err e;
    if (node == NULL) {
        fail(r, "bad-request", "modify", "nodeid-required", NULL);
        return;
    }
    if (pubsub_subscribe(r->ps, r->who, node, xml_attr(sub, "jid"), &s, &e) != 0) {
        send_error(r, &e);
        return;
    }
    /* §6.3.7: subscribe and configure in one request. */
    struct xnode *opts = xml_child(pubsub, NS_PUBSUB, "options");
    struct xnode *x = opts ? xml_child(opts, NS_DATA, "x") : NULL;
    if (x && !form_bool(r->a, x, "pubsub#deliver", true))
        pubsub_set_sub_options(r->ps, r->who, node, s->jid, s->subid, false, &e);
    struct xnode *rep = result(r);
    struct xnode *p = rep ? xml_add_elem(r->a, rep, NS_PUBSUB, "pubsub") : NULL;
    if (p == NULL || subscription_elem(r, p, NS_PUBSUB, node, s) == NULL)
        return;
    send_reply(r, rep);
    struct ps_node *n = pubsub_node(r->ps, node);
    if (n && s->state == SUB_SUBSCRIBED && n->cfg.send_last == PS_SEND_ON_SUB)
        pubsub_send_last(r->ps, n, s->jid); /* §6.1.7 */
}

static void do_unsubscribe(struct req *r, struct xnode *un)
{
    struct ps_err e;
    const char *node = xml_attr(un, "node");
    if (node == NULL) {
        fail(r, "bad-request", "modify", "nodeid-required", NULL);
        return;
    }
    if (pubsub_unsubscribe(r->ps, r->who, node, xml_attr(un, "jid"), xml_attr(un, "subid"), &e)) {
        send_error(r, &e);
        return;
    }
    send_reply(r, result(r));
}

static struct xnode *sub_options_form(struct arena *a, bool deliver)
{
    struct xnode *x = xml_elem_new(a, NS_DATA, "x");
    struct xnode *ft = x ? xml_add_elem(a, x, NS_DATA, "field") : NULL;
    struct xnode *ftv = ft ? xml_add_elem(a, ft, NS_DATA, "value") : NULL;
    struct xnode *d = x ? xml_add_elem(a, x, NS_DATA, "field") : NULL;
    struct xnode *dv = d ? xml_add_elem(a, d, NS_DATA, "value") : NULL;
    if (dv == NULL || ftv == NULL || xml_set_attr(a, x, "type", "form") ||
        xml_set_attr(a, ft, "var", "FORM_TYPE") || xml_set_attr(a, ft, "type", "hidden") ||
        xml_add_text(a, ftv, NS_SUB_OPTIONS, strlen(NS_SUB_OPTIONS)) ||
        xml_set_attr(a, d, "var", "pubsub#deliver") || xml_set_attr(a, d, "type", "boolean") ||
        xml_set_attr(a, d, "label", "Enable delivery?") || xml_add_text(a, dv, deliver ? "1" : "0", 1))
        return NULL;
    return x;
}

static void do_options(struct req *r, struct xnode *o, bool set)
{
    const char *node = xml_attr(o, "node");
    const char *jid = xml_attr(o, "jid");
    const char *subid = xml_attr(o, "subid");
    struct ps_err e;
    struct ps_node *n = node ? pubsub_node(r->ps, node) : NULL;
    if (node == NULL) {
        fail(r, "bad-request", "modify", "nodeid-required", NULL);
        return;
    }
    if (n == NULL) {
        fail(r, "item-not-found", "cancel", NULL, NULL);
        return;
    }
    if (set) {
        struct xnode *x = xml_child(o, NS_DATA, "x");
        if (x == NULL) {
            fail(r, "bad-request", "modify", "invalid-options", NULL);
            return;
        }
        if (pubsub_set_sub_options(r->ps, r->who, node, jid, subid,
                                   form_bool(r->a, x, "pubsub#deliver", true), &e) != 0) {
            send_error(r, &e);
            return;
        }
        send_reply(r, result(r));
        return;
    }
    /* §6.3.2: find the subscription the request names. */
    struct jid *j = arena_alloc(r->a, sizeof(*j));
    char prepared[JID_MAX + 1], bare_who[JID_MAX + 1];
    if (j == NULL || jid == NULL || jid_parse_str(j, jid) != 0 ||
        jid_format(j, false, prepared, sizeof(prepared)) < 0) {
        fail(r, "bad-request", "modify", "invalid-jid", NULL);
        return;
    }
    snprintf(bare_who, sizeof(bare_who), "%.*s", (int)strcspn(r->who, "/"), r->who);
    if (strncmp(prepared, bare_who, strlen(bare_who)) != 0 ||
        (prepared[strlen(bare_who)] != '\0' && prepared[strlen(bare_who)] != '/')) {
        fail(r, "forbidden", "auth", NULL, NULL); /* §6.3.4.2 */
        return;
    }
    const struct ps_sub *found = NULL;
    unsigned count = 0;
    for (const struct ps_sub *s = n->subs; s; s = s->next) {
        if (strcmp(s->jid, prepared) != 0)
            continue;
        count++;
        if (subid == NULL || strcmp(subid, s->subid) == 0)
            found = found ? found : s;
    }
    if (count == 0) {
        fail(r, "unexpected-request", "cancel", "not-subscribed", NULL);
        return;
    }
    if (subid == NULL && count > 1) {
        fail(r, "bad-request", "modify", "subid-required", NULL);
        return;
    }
    if (found == NULL) {
        fail(r, "not-acceptable", "modify", "invalid-subid", NULL);
        return;
    }
    struct xnode *rep = result(r);
    struct xnode *oe = wrap(r, rep, NS_PUBSUB, "options", node);
    struct xnode *x = oe ? sub_options_form(r->a, found->deliver) : NULL;
    if (x == NULL || xml_set_attr(r->a, oe, "jid", found->jid) ||
        xml_set_attr(r->a, oe, "subid", found->subid))
        return;
    xml_append(oe, x);
    send_reply(r, rep);
}

static void do_items(struct req *r, struct xnode *items, struct xnode *pubsub)
{
    struct arena *a = r->a;
    const char *node = xml_attr(items, "node");
    struct ps_err e;
    if (node == NULL) {
        fail(r, "bad-request", "modify", "nodeid-required", NULL);
        return;
    }
    struct ps_node *n = pubsub_node(r->ps, node);
    if (n == NULL) {
        fail(r, "item-not-found", "cancel", NULL, NULL); /* §6.5.9.11 */
        return;
    }
    if (pubsub_can_read(r->ps, n, r->who, &e) != 0) {
        send_error(r, &e);
        return;
    }
    if (n->cfg.node_type == PS_COLLECTION) {
        /* A collection holds nodes, not items (XEP-0248). */
        fail(r, "feature-not-implemented", "cancel", "unsupported", "retrieve-items");
        return;
    }
    unsigned max = UINT32_MAX;
    const char *mi = xml_attr(items, "max_items");
    if (mi) {
        char *end;
        unsigned long v = strtoul(mi, &end, 10);
        if (*mi < '0' || *mi > '9' || *end != '\0' || v == 0) {
            fail(r, "bad-request", "modify", NULL, NULL);
            return;
        }
        max = v > UINT32_MAX ? UINT32_MAX : (unsigned)v;
    }
    /* XEP-0059 paging over the node's items in publication order:
     * <before/> pages back (older), <after/> pages forward (newer). */
    struct xnode *set = xml_child(pubsub, NS_RSM, "set");
    uint64_t before = UINT64_MAX, after = UINT64_MAX;
    int rc;
    struct store_txn *t = pubsub_txn(r->ps, &rc);
    if (t == NULL) {
        fail(r, "internal-server-error", "wait", NULL, NULL);
        return;
    }
    struct xnode *rep = result(r);
    struct xnode *ie = wrap(r, rep, NS_PUBSUB, "items", node);
    struct items_ctx c = {a, ie, NULL, true, false, NULL, 0, 0, NULL, NULL};
    if (ie == NULL)
        goto done;
    if (set) {
        struct xnode *m = xml_child(set, NS_RSM, "max");
        struct xnode *b = xml_child(set, NS_RSM, "before");
        struct xnode *af = xml_child(set, NS_RSM, "after");
        if (xml_child(set, NS_RSM, "index")) {
            pubsub_txn_done(r->ps, t);
            fail(r, "feature-not-implemented", "cancel", NULL, NULL);
            return;
        }
        if (m) {
            const char *mt = xml_text(a, m);
            char *end = NULL;
            unsigned long v = mt ? strtoul(mt, &end, 10) : 0;
            if (mt == NULL || *mt < '0' || *mt > '9' || *end != '\0') {
                pubsub_txn_done(r->ps, t);
                fail(r, "bad-request", "modify", NULL, NULL);
                return;
            }
            if (v < max)
                max = (unsigned)v;
        }
        const char *bt = b ? xml_text(a, b) : NULL;
        const char *at = af ? xml_text(a, af) : NULL;
        const char *cursor = (bt && bt[0]) ? bt : (at && at[0]) ? at : NULL;
        /* XEP-0059 §2: the set is the items in publication order; without
         * a cursor the first page is the oldest, <before/> asks for the last. */
        if (cursor == NULL && b == NULL)
            after = 0;
        if (cursor) {
            struct store_item it;
            if (store_item_get(t, n->id, cursor, strlen(cursor), &it) != 0) {
                pubsub_txn_done(r->ps, t);
                fail(r, "item-not-found", "cancel", NULL, NULL); /* XEP-0059 §2.5 */
                return;
            }
            if (cursor == bt)
                before = it.seq;
            else
                after = it.seq;
        }
    }
    if (xml_child(items, NS_PUBSUB, "item")) {
        /* §6.5.8: particular items by id. */
        for (struct xnode *it = xml_first_elem(items); it; it = xml_next_elem(it)) {
            const char *id = xml_attr(it, "id");
            struct store_item si;
            if (id == NULL)
                continue;
            rc = store_item_get(t, n->id, id, strlen(id), &si);
            if (rc == HERALD_ENOTFOUND)
                continue;
            if (rc != 0 || collect_item(&c, &si) != 0)
                goto fail;
        }
        for (size_t i = 0; i < c.n; i++)
            xml_append(ie, c.list[i]);
    } else {
        const char *first, *last;
        if (after != UINT64_MAX) {
            rc = store_items_oldest(t, n->id, after, max, collect_item, &c);
            for (size_t i = 0; i < c.n; i++)
                xml_append(ie, c.list[i]);
            first = c.first, last = c.last; /* collected oldest first */
        } else {
            rc = store_items_newest(t, n->id, before, max, collect_item, &c);
            /* Oldest first within the returned set. */
            for (size_t i = c.n; i-- > 0;)
                xml_append(ie, c.list[i]);
            first = c.last, last = c.first;
        }
        if (rc != 0)
            goto fail;
        if (set) {
            struct xnode *rs = xml_add_elem(a, xml_first_elem(rep), NS_RSM, "set");
            char cnt[16];
            snprintf(cnt, sizeof(cnt), "%u", n->item_count);
            struct xnode *ce = rs ? xml_add_elem(a, rs, NS_RSM, "count") : NULL;
            if (ce == NULL || xml_add_text(a, ce, cnt, strlen(cnt)))
                goto fail;
            if (c.n) {
                struct xnode *fe = xml_add_elem(a, rs, NS_RSM, "first");
                struct xnode *le = xml_add_elem(a, rs, NS_RSM, "last");
                if (fe == NULL || le == NULL || xml_add_text(a, fe, first, strlen(first)) ||
                    xml_add_text(a, le, last, strlen(last)))
                    goto fail;
            }
        }
    }
done:
    pubsub_txn_done(r->ps, t);
    send_reply(r, rep);
    return;
fail:
    pubsub_txn_done(r->ps, t);
    fail(r, "internal-server-error", "wait", NULL, NULL);
}

/* §5.6 and §5.7: what the requester has, across nodes or for one. */
static void do_own_list(struct req *r, struct xnode *q, bool affs)
{
    const char *only = xml_attr(q, "node");
    char bare[JID_MAX + 1];
    snprintf(bare, sizeof(bare), "%.*s", (int)strcspn(r->who, "/"), r->who);
    struct xnode *rep = result(r);
    struct xnode *list = wrap(r, rep, NS_PUBSUB, affs ? "affiliations" : "subscriptions", only);
    if (list == NULL)
        return;
    struct ps_node *n, *tmp;
    HASH_ITER(hh, r->ps->nodes, n, tmp) {
        if (only && strcmp(only, n->name) != 0)
            continue;
        if (affs) {
            uint8_t aff = pubsub_affiliation(n, bare);
            if (aff == AFF_NONE)
                continue;
            struct xnode *e = xml_add_elem(r->a, list, NS_PUBSUB, "affiliation");
            if (e == NULL || xml_set_attr(r->a, e, "node", n->name) ||
                xml_set_attr(r->a, e, "affiliation", aff_names[aff]))
                return;
            continue;
        }
        for (struct ps_sub *s = n->subs; s; s = s->next) {
            size_t bl = strlen(bare);
            if (strncmp(s->jid, bare, bl) != 0 || (s->jid[bl] != '\0' && s->jid[bl] != '/'))
                continue;
            if (subscription_elem(r, list, NS_PUBSUB, n->name, s) == NULL)
                return;
        }
    }
    send_reply(r, rep);
}

static void do_default_sub(struct req *r)
{
    struct xnode *rep = result(r);
    struct xnode *d = wrap(r, rep, NS_PUBSUB, "default", NULL);
    struct xnode *x = d ? sub_options_form(r->a, true) : NULL;
    if (x == NULL)
        return;
    xml_append(d, x);
    send_reply(r, rep);
}

/* XEP-0060 §6-7: one action per <pubsub/>, with only its known companion
 * (create+configure, publish+publish-options, subscribe+options) and an
 * XEP-0059 <set/> for items. */
static bool one_action(const struct xnode *pubsub, const struct xnode *op)
{
    static const char *const pairs[][2] = {
        {"create", "configure"}, {"publish", "publish-options"}, {"subscribe", "options"},
    };
    for (struct xnode *c = xml_first_elem(pubsub); c; c = xml_next_elem(c)) {
        if (c == op)
            continue;
        bool ok = strcmp(c->ns, NS_RSM) == 0 && strcmp(op->name, "items") == 0;
        for (size_t i = 0; !ok && i < sizeof(pairs) / sizeof(pairs[0]); i++)
            ok = strcmp(op->name, pairs[i][0]) == 0 && strcmp(c->name, pairs[i][1]) == 0 &&
                 strcmp(c->ns, NS_PUBSUB) == 0;
        if (!ok)
            return false;
    }
    return true;
}

static void entity(struct req *r, struct xnode *pubsub, bool set)
{
    struct xnode *op = xml_first_elem(pubsub);
    if (op == NULL || strcmp(op->ns, NS_PUBSUB) != 0 || !one_action(pubsub, op)) {
        fail(r, "bad-request", "modify", NULL, NULL);
        return;
    }
    const char *name = op->name;
    if (set && strcmp(name, "create") == 0)
        do_create(r, op, pubsub);
    else if (set && strcmp(name, "publish") == 0)
        do_publish(r, op, pubsub);
    else if (set && strcmp(name, "retract") == 0)
        do_retract(r, op);
    else if (set && strcmp(name, "subscribe") == 0)
        do_subscribe(r, op, pubsub);
    else if (set && strcmp(name, "unsubscribe") == 0)
        do_unsubscribe(r, op);
    else if (strcmp(name, "options") == 0)
        do_options(r, op, set);
    else if (!set && strcmp(name, "items") == 0)
        do_items(r, op, pubsub);
    else if (!set && strcmp(name, "subscriptions") == 0)
        do_own_list(r, op, false);
    else if (!set && strcmp(name, "affiliations") == 0)
        do_own_list(r, op, true);
    else if (!set && strcmp(name, "default") == 0)
        do_default_sub(r);
    else
        fail(r, "feature-not-implemented", "cancel", "unsupported", name);
}

/* ---- owner requests (http://jabber.org/protocol/pubsub#owner, §8) ---- */

static struct ps_node *owned(struct req *r, const char *node)
{
    struct ps_node *n = node ? pubsub_node(r->ps, node) : NULL;
    if (node == NULL)
        fail(r, "bad-request", "modify", "nodeid-required", NULL);
    else if (n == NULL)
        fail(r, "item-not-found", "cancel", NULL, NULL);
    else if (pubsub_affiliation(n, r->who) != AFF_OWNER)
        fail(r, "forbidden", "auth", NULL, NULL);
    else
        return n;
    return NULL;
}

static void owner_configure(struct req *r, struct xnode *op, bool set)
{
    const char *node = xml_attr(op, "node");
    struct ps_err e;
    if (set) {
        struct xnode *x = xml_child(op, NS_DATA, "x");
        if (x == NULL) {
            fail(r, "bad-request", "modify", NULL, NULL);
            return;
        }
        const char *ft = ps_form_type(r->a, x);
        const char *type = xml_attr(x, "type");
        if ((type == NULL || strcmp(type, "cancel") != 0) && ft && strcmp(ft, NS_NODE_CONFIG) != 0) {
            fail(r, "bad-request", "modify", "invalid-options", NULL);
            return;
        }
        if (pubsub_configure(r->ps, r->who, node, x, r->a, &e) != 0) {
            send_error(r, &e);
            return;
        }
        send_reply(r, result(r));
        return;
    }
    struct ps_node *n = owned(r, node);
    if (n == NULL)
        return;
    struct xnode *rep = result(r);
    struct xnode *c = wrap(r, rep, NS_OWNER, "configure", node);
    struct xnode *x = c ? ps_config_form(r->a, &n->cfg, &r->ps->caps) : NULL;
    if (x == NULL)
        return;
    xml_append(c, x);
    send_reply(r, rep);
}

static void owner_list(struct req *r, struct xnode *op, bool set, bool affs)
{
    const char *node = xml_attr(op, "node");
    struct ps_node *n = owned(r, node);
    struct ps_err e;
    if (n == NULL)
        return;
    if (set) {
        /* §8.8.2.4, §8.9.2.4: entries that cannot be applied are returned
         * in the error with their current value; the others take effect. */
        const char *child = affs ? "affiliation" : "subscription";
        struct xnode *refused = xml_elem_new(r->a, NS_OWNER, "pubsub");
        struct xnode *rlist = refused ? xml_add_elem(r->a, refused, NS_OWNER,
                                                     affs ? "affiliations" : "subscriptions") : NULL;
        struct ps_err first = {NULL, NULL, NULL, NULL, NULL};
        if (rlist == NULL || xml_set_attr(r->a, rlist, "node", node))
            return;
        for (struct xnode *c = xml_first_elem(op); c; c = xml_next_elem(c)) {
            if (strcmp(c->name, child) != 0)
                continue;
            const char *jid = xml_attr(c, "jid");
            int v = affs ? aff_parse(xml_attr(c, child)) : sub_parse(xml_attr(c, child));
            if (v < 0 || jid == NULL) {
                fail(r, "bad-request", "modify", NULL, NULL);
                return;
            }
            int rc = affs ? pubsub_owner_set_aff(r->ps, r->who, node, jid, (uint8_t)v, &e)
                          : pubsub_owner_set_sub(r->ps, r->who, node, jid, (uint8_t)v, &e);
            if (rc == 0)
                continue;
            if (strcmp(e.cond, "not-acceptable") != 0 || (n = pubsub_node(r->ps, node)) == NULL) {
                send_error(r, &e);
                return;
            }
            if (first.cond == NULL)
                first = e;
            struct xnode *back = xml_add_elem(r->a, rlist, NS_OWNER, child);
            const char *now = affs ? aff_names[pubsub_affiliation(n, jid)] : "none";
            if (back == NULL || xml_set_attr(r->a, back, "jid", jid) || xml_set_attr(r->a, back, child, now))
                return;
        }
        if (first.cond != NULL)
            send_error_with(r, &first, refused);
        else
            send_reply(r, result(r));
        return;
    }
    struct xnode *rep = result(r);
    struct xnode *list = wrap(r, rep, NS_OWNER, affs ? "affiliations" : "subscriptions", node);
    if (list == NULL)
        return;
    if (affs) {
        struct ps_aff_rec *ar, *tmp;
        HASH_ITER(hh, n->affs, ar, tmp) {
            struct xnode *e2 = xml_add_elem(r->a, list, NS_OWNER, "affiliation");
            if (e2 == NULL || xml_set_attr(r->a, e2, "jid", ar->jid) ||
                xml_set_attr(r->a, e2, "affiliation", aff_names[ar->aff]))
                return;
        }
    } else {
        for (struct ps_sub *s = n->subs; s; s = s->next)
            if (subscription_elem(r, list, NS_OWNER, NULL, s) == NULL)
                return;
    }
    send_reply(r, rep);
}

static void owner(struct req *r, struct xnode *pubsub, bool set)
{
    struct xnode *op = xml_first_elem(pubsub);
    struct ps_err e;
    if (op == NULL || strcmp(op->ns, NS_OWNER) != 0) {
        fail(r, "bad-request", "modify", NULL, NULL);
        return;
    }
    const char *name = op->name;
    if (strcmp(name, "configure") == 0) {
        owner_configure(r, op, set);
    } else if (!set && strcmp(name, "default") == 0) {
        struct ps_config cfg;
        ps_config_defaults(&cfg, &r->ps->caps);
        struct xnode *rep = result(r);
        struct xnode *d = wrap(r, rep, NS_OWNER, "default", NULL);
        struct xnode *x = d ? ps_config_form(r->a, &cfg, &r->ps->caps) : NULL;
        if (x == NULL)
            return;
        xml_append(d, x);
        send_reply(r, rep);
    } else if (set && strcmp(name, "delete") == 0) {
        struct xnode *redirect = xml_child(op, NS_OWNER, "redirect");
        if (pubsub_delete(r->ps, r->who, xml_attr(op, "node"),
                          redirect ? xml_attr(redirect, "uri") : NULL, &e) != 0)
            send_error(r, &e);
        else
            send_reply(r, result(r));
    } else if (set && strcmp(name, "purge") == 0) {
        if (pubsub_purge(r->ps, r->who, xml_attr(op, "node"), &e) != 0)
            send_error(r, &e);
        else
            send_reply(r, result(r));
    } else if (strcmp(name, "subscriptions") == 0) {
        owner_list(r, op, set, false);
    } else if (strcmp(name, "affiliations") == 0) {
        owner_list(r, op, set, true);
    } else {
        fail(r, "feature-not-implemented", "cancel", "unsupported", name);
    }
}

void pubsub_handle_iq(struct ps_service *ps, struct session *from, struct xnode *iq, struct arena *a)
{
    const char *type = xml_attr(iq, "type");
    bool set = strcmp(type, "set") == 0;
    if (!set && strcmp(type, "get") != 0)
        return; /* results and errors need no answer */
    struct req r = {ps, from, iq, a, from->full};
    struct xnode *child = xml_first_elem(iq);
    if (child == NULL || xml_next_elem(child) != NULL) {
        fail(&r, "bad-request", "modify", NULL, NULL);
        return;
    }
    if (!set && strcmp(child->ns, NS_DISCO_INFO) == 0 && strcmp(child->name, "query") == 0)
        disco_info(&r, child);
    else if (!set && strcmp(child->ns, NS_DISCO_ITEMS) == 0 && strcmp(child->name, "query") == 0)
        disco_items(&r, child);
    else if (strcmp(child->ns, NS_PUBSUB) == 0 && strcmp(child->name, "pubsub") == 0)
        entity(&r, child, set);
    else if (strcmp(child->ns, NS_OWNER) == 0 && strcmp(child->name, "pubsub") == 0)
        owner(&r, child, set);
    else if (!set && strcmp(child->ns, NS_PING) == 0 && strcmp(child->name, "ping") == 0)
        send_reply(&r, result(&r));
    else
        fail(&r, "service-unavailable", "cancel", NULL, NULL);
}

/* §8.6: an owner answers a subscription request with the submitted form. */
void pubsub_handle_message(struct ps_service *ps, struct session *from, struct xnode *msg,
                           struct arena *a)
{
    const char *type = xml_attr(msg, "type");
    if (type && strcmp(type, "error") == 0)
        return;
    struct xnode *x = xml_child(msg, NS_DATA, "x");
    const char *ft = x ? ps_form_type(a, x) : NULL;
    if (ft == NULL || strcmp(ft, NS_SUB_AUTH) != 0)
        return;
    const char *xt = xml_attr(x, "type");
    if (xt && strcmp(xt, "cancel") == 0)
        return;
    struct ps_err e;
    const char *node = ps_form_value(a, x, "pubsub#node");
    const char *jid = ps_form_value(a, x, "pubsub#subscriber_jid");
    const char *subid = ps_form_value(a, x, "pubsub#subid");
    bool allow = form_bool(a, x, "pubsub#allow", false);
    if (pubsub_authorize(ps, from->full, node, jid, subid, allow, &e) != 0)
        log_info("pubsub", "%s: subscription approval for %s on '%s' refused: %s", from->full,
                 jid ? jid : "?", node ? node : "?", e.cond);
}
