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

static void on_disco_info(struct session *from, struct xnode *iq, struct xnode *child,
                          struct arena *a)
{
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
    bool account = to_own_account(from, iq);
    struct xnode *q = xml_elem_new(a, NS_DISCO_INFO, "query");
    struct xnode *id = q ? xml_add_elem(a, q, NS_DISCO_INFO, "identity") : NULL;
    if (id == NULL)
        return;
    if (account) {
        /* XEP-0030's schema: every identity before the features. */
        if (xml_set_attr(a, id, "category", "account") ||
            xml_set_attr(a, id, "type", "registered") ||
            pep_disco_info_add(from->h, a, q) != 0 || /* XEP-0163 §6.1 */
            add_features(a, q, from->h->cfg->mam_enabled ? account_mam_features : account_features))
            return;
    } else if (xml_set_attr(a, id, "category", "server") || xml_set_attr(a, id, "type", "im") ||
               xml_set_attr(a, id, "name", "Herald") || add_features(a, q, iq_features())) {
        return;
    }
    reply(from, iq, a, q);
}

static void on_disco_items(struct session *from, struct xnode *iq, struct xnode *child,
                           struct arena *a)
{
    if (xml_attr(child, "node") != NULL) {
        router_error(from, iq, a, HERALD_ENOTFOUND, NULL, NULL);
        return;
    }
    struct xnode *q = xml_elem_new(a, NS_DISCO_ITEMS, "query");
    if (q == NULL)
        return;
    /* XEP-0030 §4.1, XEP-0060 §5.1: clients find the pubsub service among
     * the server's items. The account itself has none (no PEP). The JID is
     * derived as pubsub_open() does, from the configuration alone. */
    if (!to_own_account(from, iq)) {
        const struct config *cfg = from->h->cfg;
        char jid[JID_MAX + 1];
        const char *ps = cfg->pubsub_jid;
        if (ps == NULL) {
            int n = snprintf(jid, sizeof(jid), "pubsub.%s", cfg->domain);
            if (n < 0 || (size_t)n >= sizeof(jid))
                return;
            ps = jid;
        }
        struct xnode *it = xml_add_elem(a, q, NS_DISCO_ITEMS, "item");
        if (it == NULL || xml_set_attr(a, it, "jid", ps) ||
            xml_set_attr(a, it, "name", "Publish-Subscribe service"))
            return;
    } else if (pep_disco_items_add(from->h, from->bare, from->full, a, q) != 0) { /* XEP-0163 */
        return;
    }
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
