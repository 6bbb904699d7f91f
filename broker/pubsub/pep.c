/* pep.c - PEP (XEP-0163): a pubsub service on every account's bare JID.
 *
 * PEP is the pubsub service of pubsub.c addressed with a scope (the
 * owner's bare JID, pubsub_scope), so the rules, storage and events are
 * the same code; this file is the XMPP around it:
 *   - iqs: a pubsub or pubsub#owner request to a bare JID (or with no
 *     'to': one's own) runs through the XEP-0060 edge (pubsub_iq.c) with a
 *     struct ps_xmpp whose JID is the owner's, inside the scope;
 *   - disco on an account: the pubsub/pep identity (§6.1), the features,
 *     the nodes the requester may see;
 *   - notifications: a sink that renders a PEP node's events through
 *     pubsub_notify.c from the owner's JID (type headline), to explicit
 *     subscribers and, through the pep_recipients hook, to the implicit
 *     ones of §4.3: every available resource of the owner and of a contact
 *     (owner's roster item from/both) that may read the node and whose
 *     XEP-0115 capabilities carry "<node>+notify" (§4.3.1);
 *   - presence: a resource's <c/> is looked up in the caps cache (caps.c)
 *     or queried; once its +notify features are known it gets the last
 *     item of each node it should hear about (§4.3.2).
 *
 * Main data structure: struct pep, with the caps cache and a uthash of
 * the resources that announced capabilities (full JID -> ver, and whether
 * their last items went out), one entry per session, removed when it ends. */
#include "pep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "batch.h"
#include "errors.h"
#include "herald.h"
#include "im.h"
#include "jid.h"
#include "log.h"
#include "outq.h"
#include "pubsub.h"
#include "pubsub_xmpp_impl.h"
#include "router.h"
#include "session.h"
#include "store.h"
#include "xml.h"

/* An unanswered capabilities query keeps others for the same ver from
 * being sent this long (XEP-0115 §8.1: clients answer at once). */
#define CAPS_QUERY_TIMEOUT_MS 10000

/* A resource that announced capabilities. */
struct pep_res {
    char *full;
    char ver[CAPS_VER_MAX + 1];
    bool served; /* its last items went out (§4.3.2), once per ver */
    UT_hash_handle hh;
};

struct pep {
    struct herald *h;
    struct caps *caps;
    struct pep_res *res; /* by full JID */
    uint64_t msg_seq;    /* notification ids of PEP events: 'ps-N' */
};

/* What PEP adds to an account's disco#info (XEP-0163 §6.1, XEP-0060 §10):
 * what the service does for PEP nodes. */
static const char *const pep_features[] = {
    NS_PUBSUB_PEP,
    NS_PUBSUB_PEP "#access-open",
    NS_PUBSUB_PEP "#access-presence",
    NS_PUBSUB_PEP "#access-roster",
    NS_PUBSUB_PEP "#access-whitelist",
    NS_PUBSUB_PEP "#auto-create",
    NS_PUBSUB_PEP "#config-node",
    NS_PUBSUB_PEP "#create-nodes",
    NS_PUBSUB_PEP "#delete-items",
    NS_PUBSUB_PEP "#delete-nodes",
    NS_PUBSUB_PEP "#filtered-notifications",
    NS_PUBSUB_PEP "#item-ids",
    NS_PUBSUB_PEP "#last-published",
    NS_PUBSUB_PEP "#persistent-items",
    NS_PUBSUB_PEP "#presence-notifications",
    NS_PUBSUB_PEP "#publish",
    NS_PUBSUB_PEP "#publish-options",
    NS_PUBSUB_PEP "#purge-nodes",
    NS_PUBSUB_PEP "#retract-items",
    NS_PUBSUB_PEP "#retrieve-items",
    NS_PUBSUB_PEP "#subscribe",
    NULL,
};

/* ---- capabilities per resource ---- */

static struct pep_res *res_find(struct pep *p, const char *full)
{
    struct pep_res *r = NULL;
    HASH_FIND_STR(p->res, full, r);
    return r;
}

static void res_drop(struct pep *p, struct pep_res *r)
{
    HASH_DEL(p->res, r);
    free(r->full);
    free(r);
}

/* Does the resource want notifications of nodes named ns (its caps list
 * "ns+notify")? A ver evicted from the cache reads as no until the
 * resource's next presence makes it known again. */
static bool wants(struct pep *p, const char *full, const char *ns)
{
    struct pep_res *r = res_find(p, full);
    struct caps_notify n;
    return r != NULL && r->ver[0] && caps_lookup(p->caps, r->ver, &n) && caps_notify_has(&n, ns);
}

/* ---- implicit recipients (§4.3) ---- */

struct implicit {
    struct pep *p;
    const char *service, *node;
    void (*fn)(void *fud, const char *jid, const char *const *subids, size_t nsubids,
               const char *via);
    void *fud;
};

static void resources_of(struct implicit *c, const char *bare, bool check_access)
{
    struct herald *h = c->p->h;
    struct account *acct = session_account(h, bare);
    for (struct session *s = acct ? acct->sessions : NULL; s; s = s->next_res) {
        if (!s->available || !wants(c->p, s->full, c->node))
            continue;
        if (check_access) {
            /* XEP-0191 §3.3: nothing of the account reaches a blocked contact. */
            if (!blocking_presence_ok(h, c->service, s->full))
                continue;
            pubsub_scope(h->pubsub, c->service);
            int rc = pubsub_node_readable(h->pubsub, s->full, c->node);
            pubsub_scope(h->pubsub, NULL);
            if (rc != 0)
                continue;
        }
        c->fn(c->fud, s->full, NULL, 0, NULL);
    }
}

static void contact_cb(void *ud, const char *contact)
{
    struct implicit *c = ud;
    if (strcmp(contact, c->service) != 0 && session_account(c->p->h, contact) != NULL)
        resources_of(c, contact, true);
}

void pep_recipients(void *ud, const char *service, const char *node,
                    void (*fn)(void *fud, const char *jid, const char *const *subids,
                               size_t nsubids, const char *via),
                    void *fud)
{
    struct herald *h = ud;
    if (h->pep == NULL)
        return;
    struct implicit c = {h->pep, service, node, fn, fud};
    resources_of(&c, service, false);
    /* Contacts with a presence subscription to the owner (its roster's
     * from/both): the presence default, and never anyone else (§4.3). */
    int rc = roster_each_sub(h, service, ROSTER_FROM, contact_cb, &c);
    if (rc != 0)
        log_error("pep", "notifications of %s's node %s: roster unreadable: %s", service, node,
                  herald_strerror(rc));
}

bool pep_in_roster_groups(void *ud, const char *owner, const char *contact, const char *groups)
{
    struct herald *h = ud;
    int rc;
    bool yes = false;
    struct ritem *it = malloc(sizeof(*it)); /* 6 KiB: not on the stack */
    struct store_txn *t = it ? batch_read(h->batch, &rc) : NULL;
    if (t != NULL && roster_load(t, owner, contact, it) == 0 && it->in_roster) {
        for (size_t off = 0; !yes && off < it->groups_len; off += strlen(it->groups + off) + 1) {
            const char *g = it->groups + off;
            size_t gl = strlen(g);
            for (const char *p = groups; !yes && *p; p += strcspn(p, "\n"), p += *p == '\n')
                yes = strcspn(p, "\n") == gl && strncmp(p, g, gl) == 0;
        }
    }
    if (t != NULL)
        batch_read_done(h->batch, t);
    free(it);
    return yes;
}

/* ---- the sink: PEP events rendered from the owner's JID ---- */

static void pep_sink(void *ud, struct pubsub *ps, const struct ps_event *ev)
{
    struct pep *p = ud;
    if (ev->service == NULL)
        return;
    /* The XEP-0060 renderer with an edge whose JID is the owner's: the
     * notification comes from the account (§4.3), and every part of it
     * (envelope, SHIM headers, bodies) is the service's code. */
    struct ps_xmpp x;
    memset(&x, 0, sizeof(x));
    x.h = p->h;
    x.ps = ps;
    x.jid = (char *)ev->service;
    x.msg_seq = p->msg_seq;
    if (ps_notify_init(&x) != 0) {
        log_error("pep", "event of %s's node %s not notified: out of memory", ev->service,
                  ev->node);
        return;
    }
    ps_notify_sink(&x, ps, ev);
    p->msg_seq = x.msg_seq;
    free(x.env_prefix);
}

/* ---- last items on presence (§4.3.2) ---- */

struct serve {
    struct pep *p;
    const char *full;
    struct caps_notify notify;
    struct contact *contacts; /* uthash: the bare JIDs whose nodes count, owner included */
    bool failed;
};

struct contact {
    UT_hash_handle hh;
    char bare[];
};

static bool listed_contact(const struct serve *sv, const char *bare)
{
    struct contact *c = NULL;
    HASH_FIND_STR(sv->contacts, bare, c);
    return c != NULL;
}

static int last_item_cb(void *ud, const struct ps_node_info *n)
{
    struct serve *sv = ud;
    struct pubsub *ps = sv->p->h->pubsub;
    if (!caps_notify_has(&sv->notify, n->name) || !listed_contact(sv, n->service) ||
        !blocking_presence_ok(sv->p->h, n->service, sv->full)) /* XEP-0191 §3.3 */
        return 0;
    pubsub_scope(ps, n->service);
    pubsub_last_item_to(ps, n->name, sv->full);
    pubsub_scope(ps, NULL);
    return 0;
}

static void add_contact(void *ud, const char *bare)
{
    struct serve *sv = ud;
    size_t l = strlen(bare);
    struct contact *c = listed_contact(sv, bare) ? NULL : malloc(sizeof(*c) + l + 1);
    if (c == NULL) {
        sv->failed = sv->failed || !listed_contact(sv, bare);
        return;
    }
    memcpy(c->bare, bare, l + 1);
    HASH_ADD_KEYPTR(hh, sv->contacts, c->bare, l, c);
}

/* The resource's +notify features are known: the last item of each node
 * of its own account and of the contacts whose presence it receives
 * (its roster's to/both), that it may read and wants. One walk of the
 * PEP nodes (pubsub_service_nodes), once per session and ver. */
static void serve_last_items(struct pep *p, struct session *s, struct pep_res *r)
{
    struct serve sv = {p, s->full, {NULL, 0}, NULL, false};
    r->served = true;
    if (!caps_lookup(p->caps, r->ver, &sv.notify) || sv.notify.len == 0)
        return;
    add_contact(&sv, s->bare);
    int rc = roster_each_sub(p->h, s->bare, ROSTER_TO, add_contact, &sv);
    if (rc == 0 && !sv.failed)
        pubsub_service_nodes(p->h->pubsub, NULL, s->full, last_item_cb, &sv);
    else
        log_error("pep", "last items for %s not sent: %s", s->full,
                  rc ? herald_strerror(rc) : "out of memory");
    struct contact *c, *tmp;
    HASH_ITER(hh, sv.contacts, c, tmp) {
        HASH_DEL(sv.contacts, c);
        free(c);
    }
}

/* <iq type='get' from=domain to=full id><query node='node#ver'/></iq>
 * (XEP-0115 §6.2). */
static void send_query(struct pep *p, struct session *s, const char *node, const char *ver,
                       const char *id)
{
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "<iq type='get' from='");
    buf_xml_attr(&b, p->h->cfg->domain, strlen(p->h->cfg->domain));
    buf_puts(&b, "' to='");
    buf_xml_attr(&b, s->full, strlen(s->full));
    buf_puts(&b, "' id='");
    buf_puts(&b, id);
    buf_puts(&b, "'><query xmlns='" NS_DISCO_INFO "' node='");
    buf_xml_attr(&b, node, strlen(node));
    buf_putc(&b, '#');
    buf_xml_attr(&b, ver, strlen(ver));
    buf_puts(&b, "'/></iq>");
    struct chunk *ch = buf_ok(&b) ? chunk_new(b.data, b.len) : NULL;
    buf_free(&b);
    if (ch == NULL)
        return;
    session_send_chunk(s, ch);
    chunk_unref(ch);
}

void pep_presence(struct session *s, const struct xnode *st)
{
    struct pep *p = s->h->pep;
    if (p == NULL || s->full == NULL)
        return;
    const struct xnode *c = xml_child(st, NS_CAPS, "c");
    const char *hash = c ? xml_attr(c, "hash") : NULL;
    const char *ver = c ? xml_attr(c, "ver") : NULL;
    const char *node = c ? xml_attr(c, "node") : NULL;
    struct pep_res *r = res_find(p, s->full);
    /* Only sha-1 is verified (§5.1, §8.4); legacy caps without a hash
     * cannot be and count as none. */
    if (hash == NULL || strcmp(hash, "sha-1") != 0 || ver == NULL || ver[0] == '\0' ||
        strlen(ver) > CAPS_VER_MAX || node == NULL || strlen(node) > 1024) {
        if (r != NULL)
            res_drop(p, r);
        return;
    }
    struct caps_notify known;
    bool is_known = caps_lookup(p->caps, ver, &known);
    if (r != NULL && strcmp(r->ver, ver) == 0 && r->served && is_known)
        return; /* the same capabilities again: its last items went out already */
    if (r == NULL) {
        r = calloc(1, sizeof(*r));
        if (r == NULL || (r->full = strdup(s->full)) == NULL) {
            free(r);
            return;
        }
        HASH_ADD_KEYPTR(hh, p->res, r->full, strlen(r->full), r);
    }
    if (strcmp(r->ver, ver) != 0) {
        snprintf(r->ver, sizeof(r->ver), "%s", ver);
        r->served = false;
    }
    if (is_known) {
        serve_last_items(p, s, r);
        return;
    }
    char id[24];
    if (caps_query_begin(p->caps, s->full, ver, id) == 1)
        send_query(p, s, node, ver, id);
}

void pep_session_gone(struct session *s)
{
    struct pep *p = s->h->pep;
    struct pep_res *r = p && s->full ? res_find(p, s->full) : NULL;
    if (r != NULL)
        res_drop(p, r);
}

void pep_iq_answer(struct session *from, const struct xnode *iq)
{
    struct pep *p = from->h->pep;
    char ver[CAPS_VER_MAX + 1];
    if (p == NULL || from->full == NULL || caps_query_answer(p->caps, from->full, iq, ver) != 1)
        return;
    /* Every resource waiting for this ver (one query was asked for all). */
    struct pep_res *r, *tmp;
    HASH_ITER(hh, p->res, r, tmp)
    {
        if (r->served || strcmp(r->ver, ver) != 0)
            continue;
        size_t bl = strcspn(r->full, "/");
        char bare[JID_MAX + 1];
        if (bl > JID_MAX || r->full[bl] != '/')
            continue;
        memcpy(bare, r->full, bl);
        bare[bl] = '\0';
        struct session *s = session_find(p->h, bare, r->full + bl + 1);
        if (s != NULL && s->available)
            serve_last_items(p, s, r);
    }
}

/* ---- iqs ---- */

void pep_pubsub_iq(struct herald *h, const char *who, struct xnode *iq, struct arena *a,
                   const char *service)
{
    struct ps_xmpp x;
    memset(&x, 0, sizeof(x));
    x.h = h;
    x.ps = h->pubsub;
    x.jid = (char *)service;
    pubsub_scope(h->pubsub, service);
    ps_xmpp_handle_iq(&x, who, iq, a);
    pubsub_scope(h->pubsub, NULL);
}

/* The XEP-0060 edge on the PEP service of `service`. */
static void pubsub_request(struct session *from, struct xnode *iq, struct arena *a,
                           const char *service)
{
    pep_pubsub_iq(from->h, from->full, iq, a, service);
}

void pep_handle_iq(struct session *from, struct xnode *iq, struct xnode *child, struct arena *a)
{
    (void)child;
    if (xml_attr(iq, "to") != NULL) /* to the server itself: it has no pubsub */
        router_error(from, iq, a, HERALD_EUNAVAIL, NULL, NULL);
    else
        pubsub_request(from, iq, a, from->bare);
}

static int add_features(struct arena *a, struct xnode *q, const char *const *list)
{
    for (const char *const *f = list; *f; f++) {
        struct xnode *fe = xml_add_elem(a, q, NS_DISCO_INFO, "feature");
        if (fe == NULL || xml_set_attr(a, fe, "var", *f) != 0)
            return -1;
    }
    return 0;
}

int pep_disco_info_add(struct herald *h, struct arena *a, struct xnode *query)
{
    (void)h;
    struct xnode *id = xml_add_elem(a, query, NS_DISCO_INFO, "identity");
    if (id == NULL || xml_set_attr(a, id, "category", "pubsub") != 0 ||
        xml_set_attr(a, id, "type", "pep") != 0)
        return -1;
    return add_features(a, query, pep_features);
}

struct items_ctx {
    struct pubsub *ps;
    struct arena *a;
    struct xnode *q;
    const char *owner, *who;
    unsigned n, max;
};

/* A PEP service lists only the nodes the requester may read: whether an
 * account has, say, a presence-only node is itself personal. */
static int add_item(void *ud, const struct ps_node_info *n)
{
    struct items_ctx *c = ud;
    if (c->n == c->max)
        return 1; /* the bound of one answer: [pep] max_nodes_per_account */
    pubsub_scope(c->ps, c->owner);
    int readable = pubsub_node_readable(c->ps, c->who, n->name);
    pubsub_scope(c->ps, NULL);
    if (readable != 0)
        return 0;
    struct xnode *it = xml_add_elem(c->a, c->q, NS_DISCO_ITEMS, "item");
    if (it == NULL || xml_set_attr(c->a, it, "jid", c->owner) != 0 ||
        xml_set_attr(c->a, it, "node", n->name) != 0)
        return -1;
    c->n++;
    return 0;
}

int pep_disco_items_add(struct herald *h, const char *owner, const char *who, struct arena *a,
                        struct xnode *query)
{
    unsigned max = h->cfg->pep_max_nodes ? h->cfg->pep_max_nodes : 1000;
    struct items_ctx c = {h->pubsub, a, query, owner, who, 0, max};
    return pubsub_service_nodes(h->pubsub, owner, who, add_item, &c) < 0 ? -1 : 0;
}

/* disco on another account's bare JID: the account and its PEP service. */
static void disco_other(struct session *from, struct xnode *iq, struct xnode *q, struct arena *a,
                        const char *bare)
{
    static const char *const account_features[] = {NS_DISCO_INFO, NS_DISCO_ITEMS, NULL};
    bool info = strcmp(q->ns, NS_DISCO_INFO) == 0;
    struct xnode *res = router_reply(a, iq, "result");
    struct xnode *out = xml_elem_new(a, q->ns, "query");
    if (res == NULL || out == NULL)
        return;
    xml_append(res, out);
    if (info) {
        struct xnode *id = xml_add_elem(a, out, NS_DISCO_INFO, "identity");
        if (id == NULL || xml_set_attr(a, id, "category", "account") != 0 ||
            xml_set_attr(a, id, "type", "registered") != 0 ||
            pep_disco_info_add(from->h, a, out) != 0 || add_features(a, out, account_features) != 0)
            return;
    } else if (pep_disco_items_add(from->h, bare, from->full, a, out) != 0) {
        return;
    }
    session_send_xml(from, res);
}

bool pep_route_iq(struct session *from, struct xnode *iq, struct arena *a, const char *bare)
{
    struct xnode *q = xml_first_elem(iq);
    if (q == NULL || from->h->pep == NULL)
        return false;
    if (strcmp(q->name, "pubsub") == 0 &&
        (strcmp(q->ns, NS_PUBSUB_PEP) == 0 || strcmp(q->ns, NS_PUBSUB_PEP_OWNER) == 0)) {
        pubsub_request(from, iq, a, bare);
        return true;
    }
    if (strcmp(q->name, "query") != 0 ||
        (strcmp(q->ns, NS_DISCO_INFO) != 0 && strcmp(q->ns, NS_DISCO_ITEMS) != 0))
        return false;
    const char *node = xml_attr(q, "node");
    if (node != NULL) {
        /* A PEP node (XEP-0060 §5.3-5.5 through the edge: identity,
         * meta-data, item ids), to those who may read it only. */
        struct pubsub *ps = from->h->pubsub;
        pubsub_scope(ps, bare);
        int rc = pubsub_node_readable(ps, from->full, node);
        pubsub_scope(ps, NULL);
        if (rc != 0)
            router_error(from, iq, a, HERALD_ENOTFOUND, NULL, NULL);
        else
            pubsub_request(from, iq, a, bare);
        return true;
    }
    /* disco on one's own JID is iq.c's (the account), with PEP's part. */
    if (strcmp(bare, from->bare) == 0)
        return false;
    disco_other(from, iq, q, a, bare);
    return true;
}

/* ---- life ---- */

int pep_open(struct herald *h)
{
    const struct config *cfg = h->cfg;
    struct pep *p = calloc(1, sizeof(*p));
    int rc = HERALD_ENOMEM;
    if (p == NULL)
        return rc;
    p->h = h;
    if ((rc = caps_open(cfg->pep_caps_cache_size, cfg->pep_caps_max_queries, CAPS_QUERY_TIMEOUT_MS,
                        &p->caps)) != 0 ||
        (rc = pubsub_sink_add(h->pubsub, pep_sink, p)) != 0) {
        caps_close(p->caps);
        free(p);
        log_error("pep", "cannot start PEP: %s", herald_strerror(rc));
        return rc;
    }
    h->pep = p;
    return 0;
}

void pep_close(struct herald *h)
{
    struct pep *p = h->pep;
    if (p == NULL)
        return;
    struct pep_res *r, *tmp;
    HASH_ITER(hh, p->res, r, tmp) res_drop(p, r);
    caps_close(p->caps);
    free(p);
    h->pep = NULL;
}
