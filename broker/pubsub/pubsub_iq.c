/* pubsub_iq.c - the pubsub service's XMPP edge: iqs and messages addressed
 * to the service (XEP-0060, XEP-0248 collections, XEP-0059 paging, XEP-0050
 * for the §8.7 get-pending command) become calls of pubsub.h, and their
 * results and errors become stanzas.
 *
 * Main data structure: pubsub_iq_table, one row per request the edge
 * understands, keyed by (namespace, element, iq type) with its flags and
 * the features it implements. One dispatcher checks the iq's shape and the
 * row's flags before any handler runs, answers what no row handles, and the
 * service's disco#info features are generated from the same table, so what
 * is advertised is what is implemented. Access rules are never checked
 * here: every read and change goes through the service, which applies them.
 *
 * Answers. Every get/set gets exactly one answer. A handler returns 0 once
 * it has queued its result, or a HERALD_E* code that send_error (the one
 * place that writes error XML) renders through the error table: condition,
 * type, pubsub#errors condition and, for <unsupported/>, the feature. If
 * the answer itself cannot be built (out of memory), a resource-constraint
 * error goes out instead. Answers are serialized once and released by the
 * write batch after it commits (batch_after): a result never announces a
 * change a crash could still take back; if the commit fails the requester
 * gets the commit's error instead. */
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "cluster.h"
#include "errors.h"
#include "herald.h"
#include "im.h"
#include "jid.h"
#include "log.h"
#include "outq.h"
#include "pubsub.h"
#include "pubsub_form.h"
#include "pubsub_xmpp_impl.h"
#include "router.h"
#include "session.h"
#include "xml.h"

#define NS_PUBSUB "http://jabber.org/protocol/pubsub"
#define NS_OWNER "http://jabber.org/protocol/pubsub#owner"
#define NS_ERRORS "http://jabber.org/protocol/pubsub#errors"
#define NS_DATA "jabber:x:data"
#define NS_RSM "http://jabber.org/protocol/rsm"
#define NS_COMMANDS "http://jabber.org/protocol/commands"
#define NS_SUB_OPTIONS "http://jabber.org/protocol/pubsub#subscribe_options"
#define NS_SUB_AUTH "http://jabber.org/protocol/pubsub#subscribe_authorization"
#define NS_PUBLISH_OPTIONS "http://jabber.org/protocol/pubsub#publish-options"
#define NS_NODE_CONFIG "http://jabber.org/protocol/pubsub#node_config"
#define NODE_GET_PENDING "http://jabber.org/protocol/pubsub#get-pending" /* §8.7 */
#define GET_PENDING_NAME "Get pending subscription requests"

static const char *const aff_names[] = {"none",         "owner",  "publisher",
                                        "publish-only", "member", "outcast"};
static const char *const sub_names[] = {"none", "subscribed", "pending"};
#define NAFF (sizeof(aff_names) / sizeof(aff_names[0]))
#define NSUB (sizeof(sub_names) / sizeof(sub_names[0]))

/* One request being handled. */
struct req {
    struct ps_xmpp *x;
    struct pubsub *ps;
    struct xnode *iq;
    struct arena *a;
    const char *who; /* the requester's full JID */
    /* Detail for send_error. */
    const struct ps_why *why;  /* the service's, when the error came from it */
    struct ps_why why_copy;    /* kept across later service calls */
    const char *feature;       /* the edge's own <unsupported feature=/> */
    struct xnode *err_payload; /* refused entries (§8.8.2.4, §8.9.2.4) */
};

/* The error came from the service: its detail goes with it. */
static int from_service(struct req *r, int rc)
{
    if (rc != 0)
        r->why = pubsub_why(r->ps);
    return rc;
}

/* ---- answers ---- */

/* An answer waiting for the batch: one allocation with its strings. */
struct answer {
    struct herald *h;
    struct chunk *body; /* NULL: send the error `err` instead */
    int err;
    bool muted; /* cluster: another instance's request, answered there */
    const char *to, *id, *from;
};

static void answer_run(void *ctx, int failed)
{
    struct answer *p = ctx;
    if (p->muted) {
        /* Applied from the cluster log for a requester on another instance. */
    } else if (failed == HERALD_EUNAVAIL) {
        /* The server is shutting down: nothing was acknowledged. */
    } else if (failed != 0 || p->body == NULL) {
        /* The change is not durable (or no answer could be built): say so. */
        router_batch_failed(p->h, p->to, p->id, p->from, failed ? failed : p->err);
    } else {
        router_send(p->h, p->to, &p->body, 1, ROUTE_FULL);
    }
    chunk_unref(p->body);
    free(p);
}

static char *put_str(char *dst, const char *s, const char **out)
{
    size_t n = strlen(s) + 1;
    memcpy(dst, s, n);
    *out = dst;
    return dst + n;
}

/* Queues body (or, with body NULL, the error err) for the requester after
 * the commit. On success the answer is as good as sent: batch_after runs it
 * at once when no batch is open, and with the error when it cannot queue.
 * Returns HERALD_ENOMEM (nothing queued) only when no memory is left. */
static int queue_answer(struct req *r, struct chunk *body, int err)
{
    const char *to = xml_attr(r->iq, "from");
    const char *id = xml_attr(r->iq, "id");
    if (to == NULL)
        to = r->who;
    if (id == NULL)
        id = "";
    size_t len = strlen(to) + strlen(id) + strlen(r->x->jid) + 3;
    struct answer *p = malloc(sizeof(*p) + len);
    if (p == NULL)
        return HERALD_ENOMEM;
    char *s = (char *)(p + 1);
    s = put_str(s, to, &p->to);
    s = put_str(s, id, &p->id);
    put_str(s, r->x->jid, &p->from);
    p->h = r->x->h;
    p->body = body;
    p->err = err;
    p->muted = cluster_muted(p->h);
    /* Without memory to queue it, batch_after runs answer_run at once with
     * HERALD_ENOMEM: the requester is answered either way. */
    (void)batch_after(r->x->h->batch, answer_run, p);
    return 0;
}

/* Serializes st once and queues it. Returns 0 (the answer is on its way)
 * or HERALD_ENOMEM (nothing was queued; st NULL means building it failed). */
static int answer(struct req *r, const struct xnode *st)
{
    struct chunk *ch = st ? router_chunk(st) : NULL;
    if (ch == NULL)
        return HERALD_ENOMEM;
    int rc = queue_answer(r, ch, 0);
    if (rc != 0)
        chunk_unref(ch);
    return rc;
}

/* The one place error XML is written: the code's row of the error table
 * (RFC 6120 condition and type, XEP-0060 §7-8 pubsub#errors condition),
 * the feature of <unsupported/>, the service's explanation as <text/>, and
 * refused entries when a request partly failed. Always answers. */
static void send_error(struct req *r, int rc)
{
    const struct herald_error *e = herald_error(rc);
    struct arena *a = r->a;
    const char *feature = r->feature ? r->feature : r->why ? r->why->feature : NULL;
    const char *text = r->why && r->why->text[0] ? r->why->text : NULL;
    struct xnode *rep = router_reply(a, r->iq, "error");
    if (rep && r->err_payload)
        xml_append(rep, r->err_payload);
    struct xnode *er = rep ? xml_add_elem(a, rep, NS_CLIENT, "error") : NULL;
    struct xnode *app = NULL, *te = NULL;
    bool ok = er != NULL && xml_set_attr(a, er, "type", e->type) == 0 &&
              xml_add_elem(a, er, NS_STANZAS, e->cond) != NULL;
    if (ok && text) {
        te = xml_add_elem(a, er, NS_STANZAS, "text");
        ok = te != NULL && xml_add_text(a, te, text, strlen(text)) == 0;
    }
    if (ok && e->app) {
        app = xml_add_elem(a, er, NS_ERRORS, e->app);
        ok = app != NULL;
        if (ok && rc == HERALD_EUNSUPPORTED && feature && feature[0])
            ok = xml_set_attr(a, app, "feature", feature) == 0;
    }
    if (ok && answer(r, rep) == 0)
        return;
    /* Out of memory while building the error: the requester still gets an
     * answer, resource-constraint, sent now if it cannot even be queued. */
    if (queue_answer(r, NULL, HERALD_ENOMEM) != 0) {
        const char *to = xml_attr(r->iq, "from");
        router_batch_failed(r->x->h, to ? to : r->who, xml_attr(r->iq, "id"), r->x->jid,
                            HERALD_ENOMEM);
    }
}

/* ---- building blocks ---- */

static struct xnode *result(struct req *r)
{
    return router_reply(r->a, r->iq, "result");
}

/* <pubsub xmlns=ns><name node=...>: the usual wrapper of a result. NULL on
 * ENOMEM. */
static struct xnode *wrap(struct req *r, struct xnode *reply, const char *ns, const char *name,
                          const char *node)
{
    struct xnode *p = reply ? xml_add_elem(r->a, reply, ns, "pubsub") : NULL;
    struct xnode *e = p ? xml_add_elem(r->a, p, ns, name) : NULL;
    if (e && node && xml_set_attr(r->a, e, "node", node) != 0)
        return NULL;
    return e;
}

/* Sets attributes on e (NULL values are skipped). Returns 0 or -1 (e NULL
 * or ENOMEM), so that a chain of builders needs one check. */
static int attrs(struct arena *a, struct xnode *e, const char *n1, const char *v1, const char *n2,
                 const char *v2, const char *n3, const char *v3)
{
    if (e == NULL)
        return -1;
    if ((v1 && xml_set_attr(a, e, n1, v1) != 0) || (v2 && xml_set_attr(a, e, n2, v2) != 0) ||
        (v3 && xml_set_attr(a, e, n3, v3) != 0))
        return -1;
    return 0;
}

/* A data form field, with one value unless value is NULL (options follow). */
static struct xnode *form_field(struct arena *a, struct xnode *x, const char *var, const char *type,
                                const char *label, const char *value)
{
    struct xnode *f = xml_add_elem(a, x, NS_DATA, "field");
    if (attrs(a, f, "var", var, "type", type, "label", label) != 0)
        return NULL;
    if (value) {
        struct xnode *v = xml_add_elem(a, f, NS_DATA, "value");
        if (v == NULL || xml_add_text(a, v, value, strlen(value)) != 0)
            return NULL;
    }
    return f;
}

static bool is_true(const char *v)
{
    return v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
}

static bool eq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* A submitted form's fields (none when x is NULL). With form_type, the
 * form must be of that FORM_TYPE when it names one, and must name it when
 * require_type (a form of type 'cancel' needs none: it has no fields). */
static int form_fields(struct req *r, const struct xnode *x, const char *form_type,
                       bool require_type, struct ps_field **f, size_t *n)
{
    *f = NULL;
    *n = 0;
    if (x == NULL)
        return 0;
    const char *ft = ps_form_type(r->a, x);
    bool cancel = eq(xml_attr(x, "type"), "cancel");
    if (form_type && !cancel &&
        ((ft == NULL && require_type) || (ft && strcmp(ft, form_type) != 0)))
        return HERALD_EINVALID_OPTIONS;
    return ps_form_fields(r->a, x, f, n);
}

/* A positive whole number (XEP-0060 max_items, XEP-0059 <max/> when
 * zero_ok). Returns 0 or HERALD_EINVAL. */
static int parse_count(const char *s, bool zero_ok, unsigned *out)
{
    if (s == NULL || s[0] < '0' || s[0] > '9')
        return HERALD_EINVAL;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || (v == 0 && !zero_ok))
        return HERALD_EINVAL;
    *out = v > UINT32_MAX ? UINT32_MAX : (unsigned)v;
    return 0;
}

static int name_index(const char *s, const char *const *names, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return (int)i;
    return -1;
}

/* ---- the table ---- */

enum { IQ_GET = 1, IQ_SET = 2 };
/* Row flags. There is no owner-only flag: every owner use case is checked
 * by the service itself (pubsub.h), so the edge cannot forget one. */
enum {
    NEEDS_NODE = 1, /* a missing node attribute is <nodeid-required/> */
    READ_ONLY = 2,  /* a set that changes nothing: never through the cluster log */
};

/* op: the action element (the child of <pubsub/>, or the iq's child for
 * the other namespaces); pubsub: its <pubsub/> (or op again). */
typedef int ps_iq_fn(struct req *r, struct xnode *op, struct xnode *pubsub);

struct ps_iq_row {
    const char *ns;   /* of <pubsub/>, or of the iq's child */
    const char *elem; /* the action element */
    unsigned types;   /* IQ_GET | IQ_SET */
    unsigned flags;
    ps_iq_fn *fn;
    const char *const *features; /* XEP-0060 §10 names (pubsub#<name>) or URIs */
};

#define FEATURES(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NO_FEATURES NULL

static ps_iq_fn disco_info, disco_items, do_ping, do_create, do_publish, do_retract, do_subscribe,
    do_unsubscribe, do_options, do_items, do_own_subscriptions, do_own_affiliations, do_default_sub,
    owner_configure, owner_default, owner_delete, owner_purge, owner_subscriptions,
    owner_affiliations, do_command, do_mam;

/* Each feature sits on the row whose handler implements it (access models
 * and affiliations are set through configure and affiliations). */
static const struct ps_iq_row pubsub_iq_table[] = {
    {NS_DISCO_INFO, "query", IQ_GET, 0, disco_info, FEATURES(NS_DISCO_INFO, "meta-data")},
    {NS_DISCO_ITEMS, "query", IQ_GET, 0, disco_items, FEATURES(NS_DISCO_ITEMS)},
    {NS_PING, "ping", IQ_GET, 0, do_ping, NO_FEATURES},
    /* XEP-0060 §6-7: entity use cases. */
    {NS_PUBSUB, "create", IQ_SET, 0, do_create,
     FEATURES("create-nodes", "instant-nodes", "create-and-configure", "collections")},
    {NS_PUBSUB, "publish", IQ_SET, NEEDS_NODE, do_publish,
     FEATURES("publish", "publish-options", "item-ids", "persistent-items")},
    {NS_PUBSUB, "retract", IQ_SET, NEEDS_NODE, do_retract,
     FEATURES("retract-items", "delete-items")},
    {NS_PUBSUB, "subscribe", IQ_SET, NEEDS_NODE, do_subscribe,
     FEATURES("subscribe", "multi-subscribe", "last-published", "subscription-notifications")},
    {NS_PUBSUB, "unsubscribe", IQ_SET, NEEDS_NODE, do_unsubscribe, NO_FEATURES},
    {NS_PUBSUB, "options", IQ_GET | IQ_SET, NEEDS_NODE, do_options,
     FEATURES("subscription-options", PS_SUB_DURABLE)},
    {NS_PUBSUB, "items", IQ_GET, NEEDS_NODE, do_items, FEATURES("retrieve-items")},
    {NS_PUBSUB, "subscriptions", IQ_GET, 0, do_own_subscriptions,
     FEATURES("retrieve-subscriptions")},
    {NS_PUBSUB, "affiliations", IQ_GET, 0, do_own_affiliations, FEATURES("retrieve-affiliations")},
    {NS_PUBSUB, "default", IQ_GET, 0, do_default_sub, FEATURES("retrieve-default-sub")},
    /* XEP-0060 §8: owner use cases. */
    {NS_OWNER, "configure", IQ_GET | IQ_SET, NEEDS_NODE, owner_configure,
     FEATURES("config-node", "access-open", "access-presence", "access-authorize",
              "access-whitelist", PS_QUOTAS_FEATURE)},
    {NS_OWNER, "default", IQ_GET, 0, owner_default, FEATURES("retrieve-default")},
    {NS_OWNER, "delete", IQ_SET, NEEDS_NODE, owner_delete, FEATURES("delete-nodes")},
    {NS_OWNER, "purge", IQ_SET, NEEDS_NODE, owner_purge, FEATURES("purge-nodes")},
    {NS_OWNER, "subscriptions", IQ_GET | IQ_SET, NEEDS_NODE, owner_subscriptions,
     FEATURES("manage-subscriptions")},
    {NS_OWNER, "affiliations", IQ_GET | IQ_SET, NEEDS_NODE, owner_affiliations,
     FEATURES("modify-affiliations", "publisher-affiliation", "publish-only-affiliation",
              "member-affiliation", "outcast-affiliation")},
    /* §8.7 through XEP-0050. */
    {NS_COMMANDS, "command", IQ_SET, 0, do_command, FEATURES(NS_COMMANDS, "get-pending")},
    /* XEP-0313 on a node, as XEP-0442 describes (broker/im/mam.c). */
    {NS_MAM, "query", IQ_GET | IQ_SET, NEEDS_NODE | READ_ONLY, do_mam, FEATURES(NS_MAM)},
};
#define NROWS (sizeof(pubsub_iq_table) / sizeof(pubsub_iq_table[0]))

/* The node's items as an archive (XEP-0442): mam.c sends the results and
 * builds the <fin/>; access is checked by the service as for <items/>. */
static int do_mam(struct req *r, struct xnode *query, struct xnode *unused)
{
    struct xnode *rep = result(r), *payload = NULL;
    int rc = mam_node_query(r->x->h, r->ps, r->x->jid, r->who, r->iq, query, r->a, &payload);
    if (rc != 0)
        return from_service(r, rc);
    if (rep == NULL)
        return HERALD_ENOMEM;
    xml_append(rep, payload);
    return answer(r, rep);
}

static bool wrapped_ns(const char *ns)
{
    return strcmp(ns, NS_PUBSUB) == 0 || strcmp(ns, NS_OWNER) == 0;
}

/* XEP-0060 §14 (schema): one action per <pubsub/>, with only its known
 * companion (create+configure, publish+publish-options, subscribe+options)
 * and an XEP-0059 <set/> beside <items/>. */
static bool one_action(const struct xnode *pubsub, const struct xnode *op)
{
    static const char *const pairs[][2] = {
        {"create", "configure"},
        {"publish", "publish-options"},
        {"subscribe", "options"},
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

static int dispatch(struct req *r, unsigned type)
{
    /* RFC 6120 §8.2.3: a get or set has exactly one payload child. */
    struct xnode *child = xml_first_elem(r->iq);
    if (child == NULL || xml_next_elem(child) != NULL)
        return HERALD_EINVAL;
    struct xnode *op = child;
    bool wrapped = strcmp(child->name, "pubsub") == 0 && wrapped_ns(child->ns);
    if (wrapped) {
        op = xml_first_elem(child);
        if (op == NULL || strcmp(op->ns, child->ns) != 0 || !one_action(child, op))
            return HERALD_EINVAL;
    }
    for (size_t i = 0; i < NROWS; i++) {
        const struct ps_iq_row *row = &pubsub_iq_table[i];
        if (wrapped_ns(row->ns) != wrapped || strcmp(row->ns, op->ns) != 0 ||
            strcmp(row->elem, op->name) != 0 || !(row->types & type))
            continue;
        if ((row->flags & NEEDS_NODE) && xml_attr(op, "node") == NULL)
            return HERALD_ENODEID_REQUIRED;
        /* Cluster mode: a change goes through the log, and this handler runs
         * when every instance applies it (docs/cluster.md, "The seam"). */
        if (type == IQ_SET && !(row->flags & READ_ONLY) && cluster_proposes(r->x->h))
            return cluster_propose_iq(r->x->h, r->who,
                                      r->x == r->x->h->ps_xmpp ? NULL : r->x->jid,
                                      xml_attr(op, "node"), r->iq);
        return row->fn(r, op, child);
    }
    if (wrapped) {
        /* A pubsub request we do not implement (§7-8 "unsupported"). */
        r->feature = op->name;
        return HERALD_EUNSUPPORTED;
    }
    return HERALD_EUNAVAIL;
}

void ps_xmpp_handle_iq(struct ps_xmpp *x, const char *who, struct xnode *iq, struct arena *a)
{
    const char *type = xml_attr(iq, "type");
    unsigned t = eq(type, "get") ? IQ_GET : eq(type, "set") ? IQ_SET : 0;
    if (t == 0)
        return; /* results and errors need no answer */
    struct req r;
    memset(&r, 0, sizeof(r));
    r.x = x;
    r.ps = x->ps;
    r.iq = iq;
    r.a = a;
    r.who = who;
    int rc = dispatch(&r, t);
    if (rc != 0)
        send_error(&r, rc);
}

/* ---- disco (XEP-0030, XEP-0060 §5) ---- */

static char *concat(struct arena *a, const char *p, const char *s)
{
    size_t pl = strlen(p), sl = strlen(s);
    char *out = arena_alloc(a, pl + sl + 1);
    if (out) {
        memcpy(out, p, pl);
        memcpy(out + pl, s, sl + 1);
    }
    return out;
}

static int add_feature(struct arena *a, struct xnode *q, const char *var)
{
    struct xnode *f = xml_add_elem(a, q, NS_DISCO_INFO, "feature");
    return f && xml_set_attr(a, f, "var", var) == 0 ? 0 : HERALD_ENOMEM;
}

/* Whether feature k of row i already appeared in an earlier position. */
static bool seen_before(size_t i, size_t k, const char *f)
{
    for (size_t j = 0; j <= i; j++) {
        const char *const *fs = pubsub_iq_table[j].features;
        for (size_t m = 0; fs && fs[m] && (j < i || m < k); m++)
            if (strcmp(fs[m], f) == 0)
                return true;
    }
    return false;
}

/* §5.1: the service's features, generated from the table. */
static int service_features(struct req *r, struct xnode *q)
{
    int rc = add_feature(r->a, q, NS_PUBSUB);
    for (size_t i = 0; rc == 0 && i < NROWS; i++) {
        const char *const *fs = pubsub_iq_table[i].features;
        for (size_t k = 0; rc == 0 && fs && fs[k]; k++) {
            if (seen_before(i, k, fs[k]))
                continue;
            /* Short names are XEP-0060 features; a URI or Herald's own
             * option name (herald#durable) stands as it is. */
            const char *var = strchr(fs[k], ':') || strchr(fs[k], '#')
                                  ? fs[k]
                                  : concat(r->a, NS_PUBSUB "#", fs[k]);
            rc = var ? add_feature(r->a, q, var) : HERALD_ENOMEM;
        }
    }
    /* §7.1.4: only when publishing to a missing node creates it. */
    if (rc == 0 && pubsub_auto_create(r->ps))
        rc = add_feature(r->a, q, NS_PUBSUB "#auto-create");
    return rc;
}

static int disco_info(struct req *r, struct xnode *q, struct xnode *unused)
{
    struct arena *a = r->a;
    const char *node = xml_attr(q, "node");
    struct xnode *rep = result(r);
    struct xnode *res = rep ? xml_add_elem(a, rep, NS_DISCO_INFO, "query") : NULL;
    struct xnode *id = res ? xml_add_elem(a, res, NS_DISCO_INFO, "identity") : NULL;
    if (id == NULL)
        return HERALD_ENOMEM;
    if (node == NULL) {
        if (attrs(a, id, "category", "pubsub", "type", "service", "name", "Herald pubsub") != 0 ||
            service_features(r, res) != 0)
            return HERALD_ENOMEM;
        return answer(r, rep);
    }
    if (xml_set_attr(a, res, "node", node) != 0)
        return HERALD_ENOMEM;
    if (strcmp(node, NODE_GET_PENDING) == 0) {
        /* XEP-0050 §2.3: the command's own node. */
        if (attrs(a, id, "category", "automation", "type", "command-node", "name",
                  GET_PENDING_NAME) != 0 ||
            add_feature(a, res, NS_COMMANDS) != 0 || add_feature(a, res, NS_DATA) != 0)
            return HERALD_ENOMEM;
        return answer(r, rep);
    }
    /* §5.3, §5.4: the node's identity (clients such as Smack need leaf or
     * collection) and its meta-data form. */
    struct ps_node_info info;
    int rc = pubsub_node_get(r->ps, r->who, node, &info);
    if (rc != 0)
        return from_service(r, rc);
    struct xnode *md = ps_form_metadata(a, &info, pubsub_caps(r->ps));
    if (md == NULL ||
        attrs(a, id, "category", "pubsub", "type",
              info.config.node_type == PS_COLLECTION ? "collection" : "leaf", NULL, NULL) != 0 ||
        add_feature(a, res, NS_PUBSUB) != 0)
        return HERALD_ENOMEM;
    xml_append(res, md);
    return answer(r, rep);
}

struct list_ctx {
    struct req *r;
    struct xnode *parent;
    bool nomem; /* the walk stopped for lack of memory (ours, not the service's) */
};

static int add_node_item(void *ud, const struct ps_node_info *n)
{
    struct list_ctx *c = ud;
    struct xnode *it = xml_add_elem(c->r->a, c->parent, NS_DISCO_ITEMS, "item");
    if (attrs(c->r->a, it, "jid", c->r->x->jid, "node", n->name, "name",
              n->config.title[0] ? n->config.title : NULL) != 0) {
        c->nomem = true;
        return HERALD_ENOMEM;
    }
    return 0;
}

static int add_item_id(void *ud, const struct ps_item *it)
{
    struct list_ctx *c = ud;
    struct xnode *e = xml_add_elem(c->r->a, c->parent, NS_DISCO_ITEMS, "item");
    char *id = e ? arena_strndup(c->r->a, it->id, it->id_len) : NULL;
    if (id == NULL || attrs(c->r->a, e, "jid", c->r->x->jid, "name", id, NULL, NULL) != 0) {
        c->nomem = true;
        return HERALD_ENOMEM;
    }
    return 0;
}

/* XEP-0059 on a node list (disco#items on the service or a collection).
 * Cursors are node ids in decimal (opaque to the client): the order is
 * creation order, stable across pages and restarts, and a cursor stays
 * valid when its node is deleted. Without <set/> the service still returns
 * at most one page, with a <set/> so that a client can go on (XEP-0059
 * §2.1: the responding entity may limit what it returns). */
static int parse_cursor(const char *s, uint64_t *out)
{
    if (s[0] < '0' || s[0] > '9')
        return HERALD_ENOTFOUND;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || v == 0 || v == ULLONG_MAX)
        return HERALD_ENOTFOUND; /* XEP-0059 §2.5: no such item */
    *out = v;
    return 0;
}

static int nodes_rsm_query(struct req *r, const struct xnode *set, struct ps_nodes_query *q)
{
    unsigned page = pubsub_node_page_size(r->ps);
    memset(q, 0, sizeof(*q));
    q->max = page;
    q->count = true;
    if (set == NULL)
        return 0;
    if (xml_child(set, NS_RSM, "index"))
        return HERALD_ENOTIMPL;
    struct xnode *m = xml_child(set, NS_RSM, "max");
    struct xnode *b = xml_child(set, NS_RSM, "before");
    struct xnode *af = xml_child(set, NS_RSM, "after");
    const char *mt = m ? xml_text(r->a, m) : NULL;
    const char *bt = b ? xml_text(r->a, b) : NULL;
    const char *at = af ? xml_text(r->a, af) : NULL;
    if ((m && mt == NULL) || (b && bt == NULL) || (af && at == NULL))
        return HERALD_ENOMEM;
    if (mt && parse_count(mt, true, &q->max) != 0)
        return HERALD_EINVAL;
    if (q->max > page)
        q->max = page;
    int rc = 0;
    if (bt && bt[0])
        rc = parse_cursor(bt, &q->before);
    else if (b)
        q->last_page = true;
    else if (at && at[0])
        rc = parse_cursor(at, &q->after);
    return rc;
}

static struct xnode *add_text_elem(struct arena *a, struct xnode *parent, const char *name,
                                   uint64_t v)
{
    char num[24];
    int l = snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
    struct xnode *e = xml_add_elem(a, parent, NS_RSM, name);
    return e && l > 0 && xml_add_text(a, e, num, (size_t)l) == 0 ? e : NULL;
}

/* The nodes of the service (parent NULL) or of a collection, one page. */
static int node_page(struct req *r, struct list_ctx *c, const char *parent, const struct xnode *q)
{
    const struct xnode *set = xml_child(q, NS_RSM, "set");
    struct ps_nodes_query nq;
    struct ps_nodes_page pg;
    int rc = nodes_rsm_query(r, set, &nq);
    if (rc != 0)
        return rc;
    rc = pubsub_nodes_page(r->ps, r->who, parent, &nq, add_node_item, c, &pg);
    if (rc != 0)
        return c->nomem ? HERALD_ENOMEM : from_service(r, rc);
    if (set == NULL && !pg.more)
        return 0; /* everything fitted: an answer any client understands */
    struct xnode *rs = xml_add_elem(r->a, c->parent, NS_RSM, "set");
    if (rs == NULL)
        return HERALD_ENOMEM;
    if (pg.n) {
        /* §2.1: <first index=…/>, the page's position in the whole set. */
        char idx[16];
        struct xnode *fe = add_text_elem(r->a, rs, "first", pg.first);
        if (fe == NULL || snprintf(idx, sizeof(idx), "%u", pg.first_index) < 0 ||
            xml_set_attr(r->a, fe, "index", idx) != 0 ||
            add_text_elem(r->a, rs, "last", pg.last) == NULL)
            return HERALD_ENOMEM;
    }
    return add_text_elem(r->a, rs, "count", pg.count) ? 0 : HERALD_ENOMEM;
}

static int disco_items(struct req *r, struct xnode *q, struct xnode *unused)
{
    struct arena *a = r->a;
    const char *node = xml_attr(q, "node");
    struct xnode *rep = result(r);
    struct xnode *res = rep ? xml_add_elem(a, rep, NS_DISCO_ITEMS, "query") : NULL;
    struct list_ctx c = {r, res, false};
    int rc;
    if (res == NULL || (node && xml_set_attr(a, res, "node", node) != 0))
        return HERALD_ENOMEM;
    if (node == NULL) {
        /* §5.2: the nodes the requester may see (the service's listing
         * policy), a page at a time. */
        rc = node_page(r, &c, NULL, q);
    } else if (strcmp(node, NS_COMMANDS) == 0) {
        /* XEP-0050 §2.2: the commands the service offers. */
        struct xnode *it = xml_add_elem(a, res, NS_DISCO_ITEMS, "item");
        rc = attrs(a, it, "jid", r->x->jid, "node", NODE_GET_PENDING, "name", GET_PENDING_NAME);
        c.nomem = rc != 0;
    } else {
        struct ps_node_info info;
        rc = from_service(r, pubsub_node_get(r->ps, r->who, node, &info));
        if (rc == 0 && info.config.node_type == PS_COLLECTION) {
            /* XEP-0248: a collection's items are its child nodes. */
            rc = node_page(r, &c, node, q);
        } else if (rc == 0) {
            /* §5.5: a leaf's items, by id, oldest first. */
            struct ps_items_query iq;
            memset(&iq, 0, sizeof(iq));
            iq.oldest_first = true;
            rc = from_service(r, pubsub_items(r->ps, r->who, node, &iq, add_item_id, &c));
        }
    }
    if (rc != 0)
        return c.nomem ? HERALD_ENOMEM : rc;
    return answer(r, rep);
}

static int do_ping(struct req *r, struct xnode *op, struct xnode *unused)
{
    return answer(r, result(r));
}

/* ---- entity use cases (XEP-0060 §6-7) ---- */

static int do_create(struct req *r, struct xnode *create, struct xnode *pubsub)
{
    /* §8.1.3: create and configure in one request. */
    struct xnode *configure = xml_child(pubsub, NS_PUBSUB, "configure");
    struct xnode *form = configure ? xml_child(configure, NS_DATA, "x") : NULL;
    const char *node = xml_attr(create, "node");
    struct ps_field *f;
    size_t nf;
    char name[PS_NODE_NAME_MAX + 1];
    int rc = form_fields(r, form, NULL, false, &f, &nf);
    if (rc != 0)
        return rc;
    if ((rc = pubsub_create(r->ps, r->who, node, f, nf, name)) != 0)
        return from_service(r, rc);
    struct xnode *rep = result(r);
    /* §8.1.2: an instant node's name goes back to its owner. */
    if (node == NULL && wrap(r, rep, NS_PUBSUB, "create", name) == NULL)
        return HERALD_ENOMEM;
    return answer(r, rep);
}

/* Takes the publish-option herald#lease (docs/leases.md) out of the
 * preconditions: seconds, or "session" (the item lives as long as the
 * publisher's session). 0 or HERALD_E*. */
static int take_lease(struct req *r, struct ps_field *f, size_t *n, struct ps_publish *req)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(f[i].var, "herald#lease") != 0)
            continue;
        const char *v = f[i].nvalues == 1 ? f[i].values[0] : NULL;
        memmove(f + i, f + i + 1, (*n - i - 1) * sizeof(*f));
        (*n)--;
        if (r->x->h->cluster) {
            r->feature = "herald#lease"; /* leases are single-instance (docs/leases.md) */
            return HERALD_EUNSUPPORTED;
        }
        if (eq(v, "session")) {
            req->lease_session = session_lease_id(r->x->h, r->who);
            return req->lease_session ? 0 : HERALD_ENOTACCEPTABLE; /* no session of ours */
        }
        unsigned secs;
        if (parse_count(v, false, &secs) != 0 || secs > PS_LEASE_MAX_SECS)
            return HERALD_EINVAL;
        req->lease_secs = secs;
        return 0;
    }
    return 0;
}

static int do_publish(struct req *r, struct xnode *publish, struct xnode *pubsub)
{
    struct xnode *item = xml_child(publish, NS_PUBSUB, "item");
    struct xnode *pl = item ? xml_first_elem(item) : NULL;
    struct xnode *po = xml_child(pubsub, NS_PUBSUB, "publish-options");
    struct xnode *x = po ? xml_child(po, NS_DATA, "x") : NULL;
    struct xnode *rep, *p, *it;
    struct ps_field *opts;
    size_t nopts;
    struct ps_publish req;
    struct ps_published out;
    struct buf payload;
    int rc;
    memset(&req, 0, sizeof(req));
    buf_init(&payload, 0);
    req.node = xml_attr(publish, "node");
    /* §7.1.3.6: one item per publish, one payload element per item. */
    if (xml_count_elems(publish) > 1 || (item && xml_count_elems(item) > 1)) {
        rc = HERALD_EINVALID_PAYLOAD;
        goto done;
    }
    /* §7.1.5: the preconditions form must say what it is. */
    if ((rc = form_fields(r, x, NS_PUBLISH_OPTIONS, true, &opts, &nopts)) != 0 ||
        (rc = take_lease(r, opts, &nopts, &req)) != 0)
        goto done;
    req.options = opts;
    req.noptions = nopts;
    if (item) {
        req.has_item = true;
        req.item_id = xml_attr(item, "id");
    }
    if (pl) {
        /* "\x01" is no namespace: the payload root always declares its own. */
        xml_serialize(&payload, pl, "\x01");
        if (!buf_ok(&payload)) {
            rc = HERALD_ENOMEM;
            goto done;
        }
        req.payload = payload.data;
        req.payload_len = payload.len;
    }
    if ((rc = pubsub_publish(r->ps, r->who, &req, &out)) != 0) {
        rc = from_service(r, rc);
        goto done;
    }
    rep = result(r);
    p = wrap(r, rep, NS_PUBSUB, "publish", req.node);
    it = p ? xml_add_elem(r->a, p, NS_PUBSUB, "item") : NULL;
    rc =
        attrs(r->a, it, "id", out.id, NULL, NULL, NULL, NULL) != 0 ? HERALD_ENOMEM : answer(r, rep);
done:
    buf_free(&payload);
    return rc;
}

static int do_retract(struct req *r, struct xnode *retract, struct xnode *unused)
{
    struct xnode *item = xml_child(retract, NS_PUBSUB, "item");
    const char *id = item ? xml_attr(item, "id") : NULL;
    if (id == NULL || id[0] == '\0')
        return HERALD_EITEM_REQUIRED; /* §7.2.3.4 */
    int rc = pubsub_retract(r->ps, r->who, xml_attr(retract, "node"), id,
                            is_true(xml_attr(retract, "notify")));
    if (rc != 0)
        return from_service(r, rc);
    return answer(r, result(r));
}

static struct xnode *subscription_elem(struct req *r, struct xnode *parent, const char *ns,
                                       const char *node, const char *jid, const char *subid,
                                       uint8_t state)
{
    struct xnode *e = xml_add_elem(r->a, parent, ns, "subscription");
    if (attrs(r->a, e, "node", node, "jid", jid, "subid", subid) != 0 ||
        xml_set_attr(r->a, e, "subscription", sub_names[state < NSUB ? state : 0]) != 0)
        return NULL;
    return e;
}

static int do_subscribe(struct req *r, struct xnode *sub, struct xnode *pubsub)
{
    const char *node = xml_attr(sub, "node");
    const char *jid = xml_attr(sub, "jid");
    struct ps_field *f;
    size_t nf;
    struct ps_subscription s;
    if (jid == NULL)
        return HERALD_EINVALID_JID; /* §6.1.3.1: the jid names the subscriber */
    /* §6.3.7: subscribe and configure in one request; invalid options
     * refuse the whole request (no subscription is left behind). */
    struct xnode *opts = xml_child(pubsub, NS_PUBSUB, "options");
    struct xnode *x = opts ? xml_child(opts, NS_DATA, "x") : NULL;
    int rc = form_fields(r, x, NS_SUB_OPTIONS, false, &f, &nf);
    if (rc != 0)
        return rc;
    if ((rc = pubsub_subscribe(r->ps, r->who, node, jid, f, nf, &s)) != 0)
        return from_service(r, rc);
    struct xnode *rep = result(r);
    struct xnode *p = rep ? xml_add_elem(r->a, rep, NS_PUBSUB, "pubsub") : NULL;
    if (p == NULL || subscription_elem(r, p, NS_PUBSUB, node, s.jid, s.subid, s.state) == NULL)
        return HERALD_ENOMEM;
    /* The subscriber learns it is subscribed before it gets the node's last
     * item (§6.1.7, the service's PS_EV_LAST_ITEM): answer first. */
    char subscriber[JID_MAX + 1];
    snprintf(subscriber, sizeof(subscriber), "%s", s.jid);
    if ((rc = answer(r, rep)) == 0)
        pubsub_subscribed(r->ps, node, subscriber);
    return rc;
}

static int do_unsubscribe(struct req *r, struct xnode *un, struct xnode *unused)
{
    const char *jid = xml_attr(un, "jid");
    if (jid == NULL)
        return HERALD_EINVALID_JID;
    int rc = pubsub_unsubscribe(r->ps, r->who, xml_attr(un, "node"), jid, xml_attr(un, "subid"));
    if (rc != 0)
        return from_service(r, rc);
    return answer(r, result(r));
}

/* §6.3: request (get) or submit (set) subscription options. */
static int do_options(struct req *r, struct xnode *o, struct xnode *unused)
{
    const char *node = xml_attr(o, "node");
    const char *jid = xml_attr(o, "jid");
    const char *subid = xml_attr(o, "subid");
    int rc;
    if (jid == NULL)
        return HERALD_EINVALID_JID; /* §6.3.4.1 */
    if (eq(xml_attr(r->iq, "type"), "set")) {
        struct xnode *x = xml_child(o, NS_DATA, "x");
        struct ps_field *f;
        size_t nf;
        if (x == NULL)
            return HERALD_EINVALID_OPTIONS;
        if ((rc = form_fields(r, x, NS_SUB_OPTIONS, false, &f, &nf)) != 0)
            return rc;
        /* §6.3.5: a field left out keeps its value. */
        rc = pubsub_subscription_configure(r->ps, r->who, node, jid, subid, f, nf);
        if (rc != 0)
            return from_service(r, rc);
        return answer(r, result(r));
    }
    struct ps_subscription s;
    if ((rc = pubsub_subscription_get(r->ps, r->who, node, jid, subid, &s)) != 0)
        return from_service(r, rc);
    struct xnode *rep = result(r);
    struct xnode *oe = wrap(r, rep, NS_PUBSUB, "options", node);
    struct ps_sub_opts so = {s.deliver, s.durable};
    struct xnode *x = oe ? ps_form_sub_options(r->a, &so) : NULL;
    if (x == NULL || attrs(r->a, oe, "jid", s.jid, "subid", s.subid, NULL, NULL) != 0)
        return HERALD_ENOMEM;
    xml_append(oe, x);
    return answer(r, rep);
}

/* §6.4: the default subscription options. */
static int do_default_sub(struct req *r, struct xnode *op, struct xnode *unused)
{
    struct xnode *rep = result(r);
    struct xnode *d = wrap(r, rep, NS_PUBSUB, "default", NULL);
    static const struct ps_sub_opts defaults = {true, false};
    struct xnode *x = d ? ps_form_sub_options(r->a, &defaults) : NULL;
    if (x == NULL)
        return HERALD_ENOMEM;
    xml_append(d, x);
    return answer(r, rep);
}

/* Items of a retrieval, collected in the order the service walks them. */
struct items_ctx {
    struct arena *a;
    struct xnode **list;
    size_t n, cap;
    bool nomem;
};

static int collect_item(void *ud, const struct ps_item *it)
{
    struct items_ctx *c = ud;
    struct xnode *e = xml_elem_new(c->a, NS_PUBSUB, "item");
    char *id = e ? arena_strndup(c->a, it->id, it->id_len) : NULL;
    char *pub = id ? arena_strndup(c->a, it->publisher, it->publisher_len) : NULL;
    if (pub == NULL || xml_set_attr(c->a, e, "id", id) != 0 ||
        (it->publisher_len && xml_set_attr(c->a, e, "publisher", pub) != 0) ||
        (it->payload_len && xml_add_raw(c->a, e, it->payload, it->payload_len) != 0))
        goto nomem;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        struct xnode **l = arena_alloc(c->a, cap * sizeof(*l));
        if (l == NULL)
            goto nomem;
        if (c->n)
            memcpy(l, c->list, c->n * sizeof(*l));
        c->list = l;
        c->cap = cap;
    }
    c->list[c->n++] = e;
    return 0;
nomem:
    c->nomem = true;
    return HERALD_ENOMEM;
}

/* XEP-0059 <set/>: what the request asks for. */
struct rsm {
    bool present;
    bool count_only; /* <max>0</max>: just the count (§2.6) */
};

/* Translates <set/> into the query: the result set is the node's items in
 * publication order; without a cursor the first page is the oldest
 * (XEP-0059 §2.1), an empty <before/> asks for the last page (§2.5),
 * <after>id</after> pages forward (§2.2), <before>id</before> back (§2.4). */
static int parse_rsm(struct req *r, const struct xnode *set, struct ps_items_query *q,
                     struct rsm *out)
{
    struct xnode *m = xml_child(set, NS_RSM, "max");
    struct xnode *b = xml_child(set, NS_RSM, "before");
    struct xnode *af = xml_child(set, NS_RSM, "after");
    out->present = true;
    if (xml_child(set, NS_RSM, "index"))
        return HERALD_ENOTIMPL;
    if (m) {
        unsigned v;
        const char *mt = xml_text(r->a, m);
        if (mt == NULL)
            return HERALD_ENOMEM;
        if (parse_count(mt, true, &v) != 0)
            return HERALD_EINVAL;
        out->count_only = v == 0;
        if (q->max == 0 || v < q->max)
            q->max = v;
    }
    const char *bt = b ? xml_text(r->a, b) : NULL;
    const char *at = af ? xml_text(r->a, af) : NULL;
    if ((b && bt == NULL) || (af && at == NULL))
        return HERALD_ENOMEM;
    if (bt && bt[0]) {
        q->before_id = bt;
    } else if (at && at[0]) {
        q->oldest_first = true;
        q->after_id = at;
    } else if (b == NULL) {
        q->oldest_first = true; /* from the start */
    }
    return 0;
}

static int rsm_answer(struct req *r, struct xnode *pubsub, const char *node, size_t n,
                      const char *first, const char *last)
{
    struct ps_node_info info;
    int rc = pubsub_node_get(r->ps, r->who, node, &info);
    if (rc != 0)
        return from_service(r, rc);
    char cnt[16];
    int cl = snprintf(cnt, sizeof(cnt), "%u", (unsigned)info.item_count);
    struct xnode *rs = xml_add_elem(r->a, pubsub, NS_RSM, "set");
    struct xnode *ce = rs ? xml_add_elem(r->a, rs, NS_RSM, "count") : NULL;
    if (cl < 0 || (size_t)cl >= sizeof(cnt) || ce == NULL ||
        xml_add_text(r->a, ce, cnt, (size_t)cl) != 0)
        return HERALD_ENOMEM;
    if (n == 0)
        return 0;
    struct xnode *fe = xml_add_elem(r->a, rs, NS_RSM, "first");
    struct xnode *le = xml_add_elem(r->a, rs, NS_RSM, "last");
    if (fe == NULL || le == NULL || xml_add_text(r->a, fe, first, strlen(first)) != 0 ||
        xml_add_text(r->a, le, last, strlen(last)) != 0)
        return HERALD_ENOMEM;
    return 0;
}

/* §6.5: retrieve items: all, the max_items most recent (§6.5.7), particular
 * ones (§6.5.8), or a page (§6.5.4, XEP-0059). Items are listed oldest
 * first within what is returned. */
static int do_items(struct req *r, struct xnode *items, struct xnode *pubsub)
{
    const char *node = xml_attr(items, "node");
    const char *mi = xml_attr(items, "max_items");
    struct ps_items_query q;
    struct rsm rsm = {false, false};
    memset(&q, 0, sizeof(q));
    /* The access model first (§6.5.9): a refused requester learns nothing
     * more about the node. */
    int rc = pubsub_node_readable(r->ps, r->who, node);
    if (rc != 0)
        return from_service(r, rc);
    if (mi && parse_count(mi, false, &q.max) != 0)
        return HERALD_EINVAL; /* a positiveInteger (§14) */
    /* §6.5.8: particular items by id, in the order asked. */
    size_t nids = 0;
    for (struct xnode *it = xml_first_elem(items); it; it = xml_next_elem(it))
        nids += strcmp(it->name, "item") == 0 && strcmp(it->ns, NS_PUBSUB) == 0;
    struct xnode *set = nids ? NULL : xml_child(pubsub, NS_RSM, "set");
    if (nids) {
        const char **ids = arena_alloc(r->a, nids * sizeof(*ids));
        if (ids == NULL)
            return HERALD_ENOMEM;
        nids = 0;
        for (struct xnode *it = xml_first_elem(items); it; it = xml_next_elem(it))
            if (strcmp(it->name, "item") == 0 && strcmp(it->ns, NS_PUBSUB) == 0 &&
                xml_attr(it, "id") != NULL)
                ids[nids++] = xml_attr(it, "id");
        q.ids = ids;
        q.nids = nids;
    } else if (set && (rc = parse_rsm(r, set, &q, &rsm)) != 0) {
        return rc;
    }
    struct items_ctx c = {r->a, NULL, 0, 0, false};
    bool asked_ids = q.ids != NULL;
    if (!rsm.count_only && !(asked_ids && q.nids == 0)) {
        rc = pubsub_items(r->ps, r->who, node, &q, collect_item, &c);
        if (rc != 0)
            return c.nomem ? HERALD_ENOMEM : from_service(r, rc); /* a gone cursor: XEP-0059 §2.5 */
    }
    struct xnode *rep = result(r);
    struct xnode *ie = wrap(r, rep, NS_PUBSUB, "items", node);
    if (ie == NULL)
        return HERALD_ENOMEM;
    /* Newest-first walks are turned around: oldest first in the answer. */
    bool reverse = !asked_ids && !q.oldest_first;
    for (size_t i = 0; i < c.n; i++)
        xml_append(ie, c.list[reverse ? c.n - 1 - i : i]);
    if (rsm.present) {
        const char *first = c.n ? xml_attr(c.list[reverse ? c.n - 1 : 0], "id") : NULL;
        const char *last = c.n ? xml_attr(c.list[reverse ? 0 : c.n - 1], "id") : NULL;
        if ((rc = rsm_answer(r, xml_first_elem(rep), node, c.n, first, last)) != 0)
            return rc;
    }
    return answer(r, rep);
}

static int own_sub(void *ud, const struct ps_subscription *s)
{
    struct list_ctx *c = ud;
    if (subscription_elem(c->r, c->parent, NS_PUBSUB, s->node, s->jid, s->subid, s->state) ==
        NULL) {
        c->nomem = true;
        return HERALD_ENOMEM;
    }
    return 0;
}

/* §5.6: the requester's subscriptions, on every node or on one. */
static int do_own_subscriptions(struct req *r, struct xnode *op, struct xnode *unused)
{
    const char *only = xml_attr(op, "node");
    struct xnode *rep = result(r);
    struct xnode *list = wrap(r, rep, NS_PUBSUB, "subscriptions", only);
    struct list_ctx c = {r, list, false};
    if (list == NULL)
        return HERALD_ENOMEM;
    int rc = pubsub_subscriptions_own(r->ps, r->who, only, own_sub, &c);
    if (rc != 0)
        return c.nomem ? HERALD_ENOMEM : from_service(r, rc);
    return answer(r, rep);
}

static int own_aff(void *ud, const char *node, const char *jid, uint8_t aff)
{
    struct list_ctx *c = ud;
    if (aff == AFF_NONE || aff >= NAFF)
        return 0;
    struct xnode *e = xml_add_elem(c->r->a, c->parent, NS_PUBSUB, "affiliation");
    if (attrs(c->r->a, e, "node", node, "affiliation", aff_names[aff], NULL, NULL) != 0) {
        c->nomem = true;
        return HERALD_ENOMEM;
    }
    return 0;
}

/* §5.7: the requester's affiliations, on every node or on one. */
static int do_own_affiliations(struct req *r, struct xnode *op, struct xnode *unused)
{
    const char *only = xml_attr(op, "node");
    struct xnode *rep = result(r);
    struct xnode *list = wrap(r, rep, NS_PUBSUB, "affiliations", only);
    struct list_ctx c = {r, list, false};
    if (list == NULL)
        return HERALD_ENOMEM;
    int rc = pubsub_affiliations_own(r->ps, r->who, only, own_aff, &c);
    if (rc != 0)
        return c.nomem ? HERALD_ENOMEM : from_service(r, rc);
    return answer(r, rep);
}

/* ---- owner use cases (XEP-0060 §8) ---- */

static int config_answer(struct req *r, const char *name, const char *node,
                         const struct ps_config *cfg)
{
    struct xnode *rep = result(r);
    struct xnode *c = wrap(r, rep, NS_OWNER, name, node);
    struct xnode *x = c ? ps_form_config(r->a, cfg) : NULL;
    if (x == NULL)
        return HERALD_ENOMEM;
    xml_append(c, x);
    return answer(r, rep);
}

/* §8.2: the configuration form (get) or its submission (set). */
static int owner_configure(struct req *r, struct xnode *op, struct xnode *unused)
{
    const char *node = xml_attr(op, "node");
    struct ps_config cfg;
    int rc;
    if (eq(xml_attr(r->iq, "type"), "get")) {
        if ((rc = pubsub_config_get(r->ps, r->who, node, &cfg)) != 0)
            return from_service(r, rc);
        return config_answer(r, "configure", node, &cfg);
    }
    struct xnode *x = xml_child(op, NS_DATA, "x");
    struct ps_field *f;
    size_t nf;
    if (x == NULL)
        return HERALD_EINVAL;
    if ((rc = form_fields(r, x, NS_NODE_CONFIG, false, &f, &nf)) != 0)
        return rc;
    if (eq(xml_attr(x, "type"), "cancel")) {
        /* §8.2.4: a cancelled form changes nothing (and notifies nobody),
         * but only an owner may cancel. */
        rc = pubsub_config_get(r->ps, r->who, node, &cfg);
    } else {
        rc = pubsub_configure(r->ps, r->who, node, f, nf);
    }
    if (rc != 0)
        return from_service(r, rc);
    return answer(r, result(r));
}

/* §8.3: the default node configuration. */
static int owner_default(struct req *r, struct xnode *op, struct xnode *unused)
{
    struct ps_config cfg;
    pubsub_config_default(r->ps, &cfg);
    return config_answer(r, "default", NULL, &cfg);
}

/* §8.4 */
static int owner_delete(struct req *r, struct xnode *op, struct xnode *unused)
{
    struct xnode *redirect = xml_child(op, NS_OWNER, "redirect");
    int rc = pubsub_delete(r->ps, r->who, xml_attr(op, "node"),
                           redirect ? xml_attr(redirect, "uri") : NULL);
    if (rc != 0)
        return from_service(r, rc);
    return answer(r, result(r));
}

/* §8.5 */
static int owner_purge(struct req *r, struct xnode *op, struct xnode *unused)
{
    int rc = pubsub_purge(r->ps, r->who, xml_attr(op, "node"));
    if (rc != 0)
        return from_service(r, rc);
    return answer(r, result(r));
}

/* Owner lists: one walk both lists (get) and finds an entry's current
 * value (for a refused modification). */
struct owner_ctx {
    struct req *r;
    struct xnode *parent; /* NULL: only look up `find` */
    const char *find;
    int found; /* the value of `find`, -1 while not seen */
    bool nomem;
};

static int node_sub(void *ud, const struct ps_subscription *s)
{
    struct owner_ctx *c = ud;
    if (c->find && c->found < 0 && strcmp(s->jid, c->find) == 0)
        c->found = s->state;
    if (c->parent &&
        subscription_elem(c->r, c->parent, NS_OWNER, NULL, s->jid, s->subid, s->state) == NULL) {
        c->nomem = true;
        return HERALD_ENOMEM;
    }
    return 0;
}

static int node_aff(void *ud, const char *node, const char *jid, uint8_t aff)
{
    struct owner_ctx *c = ud;
    if (aff == AFF_NONE || aff >= NAFF)
        return 0; /* §8.9.1.2: 'none' is not listed */
    if (c->find && strcmp(jid, c->find) == 0)
        c->found = aff;
    if (c->parent) {
        struct xnode *e = xml_add_elem(c->r->a, c->parent, NS_OWNER, "affiliation");
        if (attrs(c->r->a, e, "jid", jid, "affiliation", aff_names[aff], NULL, NULL) != 0) {
            c->nomem = true;
            return HERALD_ENOMEM;
        }
    }
    return 0;
}

static int owner_walk(struct req *r, const char *node, bool affs, struct owner_ctx *c)
{
    int rc = affs ? pubsub_affiliations_node(r->ps, r->who, node, node_aff, c)
                  : pubsub_subscriptions_node(r->ps, r->who, node, node_sub, c);
    if (rc != 0)
        return c->nomem ? HERALD_ENOMEM : from_service(r, rc);
    return 0;
}

/* §8.8.2 / §8.9.2: applies each entry; entries the service refuses as not
 * acceptable (the last owner, §8.9.2.4) are returned in the error with
 * their current value, and the others take effect. */
static int owner_modify(struct req *r, struct xnode *op, bool affs)
{
    const char *node = xml_attr(op, "node");
    const char *child = affs ? "affiliation" : "subscription";
    int rc;
    /* Malformed entries refuse the whole request, before any change. */
    for (struct xnode *c = xml_first_elem(op); c; c = xml_next_elem(c)) {
        if (strcmp(c->name, child) != 0 || strcmp(c->ns, NS_OWNER) != 0)
            continue;
        int v = affs ? name_index(xml_attr(c, child), aff_names, NAFF)
                     : name_index(xml_attr(c, child), sub_names, NSUB);
        if (v < 0 || xml_attr(c, "jid") == NULL)
            return HERALD_EINVAL;
    }
    /* Only an owner may modify, even an empty list (§8.8.2.3, §8.9.2.3). */
    struct owner_ctx probe = {r, NULL, NULL, -1, false};
    if ((rc = owner_walk(r, node, affs, &probe)) != 0)
        return rc;
    struct xnode *rlist = NULL;
    int refused = 0;
    for (struct xnode *c = xml_first_elem(op); c; c = xml_next_elem(c)) {
        if (strcmp(c->name, child) != 0 || strcmp(c->ns, NS_OWNER) != 0)
            continue;
        const char *jid = xml_attr(c, "jid");
        int v = affs ? name_index(xml_attr(c, child), aff_names, NAFF)
                     : name_index(xml_attr(c, child), sub_names, NSUB);
        rc = affs ? pubsub_owner_set_affiliation(r->ps, r->who, node, jid, (uint8_t)v)
                  : pubsub_owner_set_subscription(r->ps, r->who, node, jid, (uint8_t)v);
        if (rc == 0)
            continue;
        if (rc != HERALD_ENOTACCEPTABLE)
            return from_service(r, rc); /* the entries before it stay applied */
        if (refused == 0) {
            refused = rc;
            r->why_copy = *pubsub_why(r->ps);
        }
        if (rlist == NULL) {
            struct xnode *p = xml_elem_new(r->a, NS_OWNER, "pubsub");
            rlist =
                p ? xml_add_elem(r->a, p, NS_OWNER, affs ? "affiliations" : "subscriptions") : NULL;
            if (rlist == NULL || xml_set_attr(r->a, rlist, "node", node) != 0)
                return HERALD_ENOMEM;
            r->err_payload = p;
        }
        struct owner_ctx cur = {r, NULL, jid, -1, false};
        if ((rc = owner_walk(r, node, affs, &cur)) != 0)
            return rc;
        const char *now = affs ? aff_names[cur.found > 0 ? cur.found : 0]
                               : sub_names[cur.found > 0 ? cur.found : 0];
        struct xnode *back = xml_add_elem(r->a, rlist, NS_OWNER, child);
        if (attrs(r->a, back, "jid", jid, child, now, NULL, NULL) != 0)
            return HERALD_ENOMEM;
    }
    if (refused != 0) {
        r->why = &r->why_copy;
        return refused;
    }
    return answer(r, result(r));
}

static int owner_list(struct req *r, struct xnode *op, bool affs)
{
    const char *node = xml_attr(op, "node");
    if (eq(xml_attr(r->iq, "type"), "set"))
        return owner_modify(r, op, affs);
    struct xnode *rep = result(r);
    struct xnode *list = wrap(r, rep, NS_OWNER, affs ? "affiliations" : "subscriptions", node);
    struct owner_ctx c = {r, list, NULL, -1, false};
    if (list == NULL)
        return HERALD_ENOMEM;
    int rc = owner_walk(r, node, affs, &c);
    if (rc != 0)
        return rc;
    return answer(r, rep);
}

/* §8.8 */
static int owner_subscriptions(struct req *r, struct xnode *op, struct xnode *unused)
{
    return owner_list(r, op, false);
}

/* §8.9 */
static int owner_affiliations(struct req *r, struct xnode *op, struct xnode *unused)
{
    return owner_list(r, op, true);
}

/* ---- §8.7 get-pending, an XEP-0050 ad-hoc command ---- */

static int add_pending_option(void *ud, const char *node)
{
    struct list_ctx *c = ud;
    struct xnode *o = xml_add_elem(c->r->a, c->parent, NS_DATA, "option");
    struct xnode *v = o ? xml_add_elem(c->r->a, o, NS_DATA, "value") : NULL;
    if (v == NULL || xml_add_text(c->r->a, v, node, strlen(node)) != 0) {
        c->nomem = true;
        return HERALD_ENOMEM;
    }
    return 0;
}

static struct xnode *command_reply(struct req *r, struct xnode *rep, const char *sessionid,
                                   const char *status)
{
    struct xnode *cmd = rep ? xml_add_elem(r->a, rep, NS_COMMANDS, "command") : NULL;
    if (attrs(r->a, cmd, "node", NODE_GET_PENDING, "sessionid", sessionid, "status", status) != 0)
        return NULL;
    return cmd;
}

/* The command is stateless: the first step (§8.7.1) lists the requester's
 * nodes with pending requests in a form (§8.7.2); the submitted form names
 * one (§8.7.4), the service then sends one §8.6 authorization form per
 * pending request (PS_EV_APPROVAL_PENDING, pubsub_notify.c). The session id
 * is only echoed, so a submission is accepted with or without it. */
static int do_command(struct req *r, struct xnode *cmd, struct xnode *unused)
{
    const char *node = xml_attr(cmd, "node");
    const char *action = xml_attr(cmd, "action");
    const char *sid = xml_attr(cmd, "sessionid");
    struct xnode *x = xml_child(cmd, NS_DATA, "x");
    const char *xtype = x ? xml_attr(x, "type") : NULL;
    int rc;
    if (!eq(node, NODE_GET_PENDING))
        return HERALD_ENOTFOUND; /* XEP-0050 §4.4: no such command */
    if (eq(action, "cancel") || eq(xtype, "cancel")) {
        struct xnode *rep = result(r);
        return command_reply(r, rep, sid, "canceled") ? answer(r, rep) : HERALD_ENOMEM;
    }
    bool submit = eq(xtype, "submit");
    if (action && !eq(action, "execute") && !eq(action, "complete") && !eq(action, "next"))
        return HERALD_EINVAL; /* 'prev': there is no earlier stage */
    if (submit) {
        const char *pick = ps_form_value(r->a, x, "pubsub#node");
        if (pick == NULL || pick[0] == '\0')
            return HERALD_ENODEID_REQUIRED;
        if ((rc = pubsub_pending_resend(r->ps, r->who, pick)) != 0)
            return from_service(r, rc);
        struct xnode *rep = result(r);
        return command_reply(r, rep, sid, "completed") ? answer(r, rep) : HERALD_ENOMEM;
    }
    if (action && !eq(action, "execute"))
        return HERALD_EINVAL; /* completing a command that has no form yet */
    char sbuf[48];
    int sl = snprintf(sbuf, sizeof(sbuf), "get-pending-%llu", (unsigned long long)++r->x->cmd_seq);
    if (sl < 0 || (size_t)sl >= sizeof(sbuf))
        return HERALD_ENOMEM;
    struct xnode *rep = result(r);
    struct xnode *c = command_reply(r, rep, sbuf, "executing");
    struct xnode *acts = c ? xml_add_elem(r->a, c, NS_COMMANDS, "actions") : NULL;
    struct xnode *form = acts ? xml_add_elem(r->a, c, NS_DATA, "x") : NULL;
    struct xnode *title = form ? xml_add_elem(r->a, form, NS_DATA, "title") : NULL;
    struct xnode *f = NULL;
    if (title == NULL || xml_set_attr(r->a, acts, "execute", "complete") != 0 ||
        xml_add_elem(r->a, acts, NS_COMMANDS, "complete") == NULL ||
        xml_set_attr(r->a, form, "type", "form") != 0 ||
        xml_add_text(r->a, title, GET_PENDING_NAME, strlen(GET_PENDING_NAME)) != 0 ||
        form_field(r->a, form, "FORM_TYPE", "hidden", NULL, NS_SUB_AUTH) == NULL ||
        (f = form_field(r->a, form, "pubsub#node", "list-single", "Node", NULL)) == NULL)
        return HERALD_ENOMEM;
    struct list_ctx lc = {r, f, false};
    if ((rc = pubsub_pending_nodes(r->ps, r->who, add_pending_option, &lc)) != 0)
        return lc.nomem ? HERALD_ENOMEM : from_service(r, rc);
    return answer(r, rep);
}

/* ---- messages to the service ---- */

/* §8.6: an owner answers a subscription request by submitting the form in
 * a message. Messages carry no result, so a refusal is only logged. */
void ps_xmpp_handle_message(struct ps_xmpp *x, struct session *from, struct xnode *msg,
                            struct arena *a)
{
    if (eq(xml_attr(msg, "type"), "error"))
        return;
    if (x->h->cluster) {
        /* Not through the log yet (docs/cluster.md): approve with the
         * owner's subscriptions iq instead. */
        log_info("pubsub", "%s: subscription approval by message ignored in cluster mode",
                 from->full);
        return;
    }
    struct xnode *form = xml_child(msg, NS_DATA, "x");
    const char *ft = form ? ps_form_type(a, form) : NULL;
    if (!eq(ft, NS_SUB_AUTH) || eq(xml_attr(form, "type"), "cancel"))
        return;
    const char *node = ps_form_value(a, form, "pubsub#node");
    const char *jid = ps_form_value(a, form, "pubsub#subscriber_jid");
    const char *subid = ps_form_value(a, form, "pubsub#subid");
    bool allow = is_true(ps_form_value(a, form, "pubsub#allow"));
    if (node == NULL || jid == NULL) {
        log_info("pubsub", "%s: subscription approval without node or subscriber ignored",
                 from->full);
        return;
    }
    int rc =
        pubsub_authorize(x->ps, from->full, node, jid, subid && subid[0] ? subid : NULL, allow);
    if (rc != 0)
        log_info("pubsub", "%s: subscription approval for %s on '%s' refused: %s", from->full, jid,
                 node, herald_strerror(rc));
}

/* ---- the edge ---- */

int ps_xmpp_open(struct herald *h, struct pubsub *ps, struct ps_xmpp **out)
{
    const struct config *cfg = h->cfg;
    int rc = HERALD_ENOMEM;
    struct ps_xmpp *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return HERALD_ENOMEM;
    x->h = h;
    x->ps = ps;
    if (cfg->pubsub_jid) {
        x->jid = strdup(cfg->pubsub_jid);
    } else {
        x->jid = malloc(strlen(cfg->domain) + sizeof("pubsub."));
        if (x->jid)
            memcpy(stpcpy(x->jid, "pubsub."), cfg->domain, strlen(cfg->domain) + 1);
    }
    if (x->jid == NULL || (rc = ps_notify_init(x)) != 0)
        goto fail;
    if ((rc = pubsub_sink_add(ps, ps_notify_sink, x)) != 0)
        goto fail;
    log_info("pubsub", "service at %s", x->jid);
    *out = x;
    return 0;
fail:
    log_error("pubsub", "cannot open the XMPP edge of the pubsub service: %s", herald_strerror(rc));
    ps_xmpp_close(x);
    return rc;
}

void ps_xmpp_close(struct ps_xmpp *x)
{
    if (x == NULL)
        return;
    free(x->jid);
    free(x->env_prefix);
    free(x);
}

const char *ps_xmpp_jid(const struct ps_xmpp *x)
{
    return x->jid;
}
