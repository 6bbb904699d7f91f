/* router.c - stanza delivery by address (RFC 6120 §10, RFC 6121 §8.5).
 *
 * Decision table for a stanza from a bound local session:
 *   no 'to'            message: as if to the sender's bare JID (§10.3.1)
 *                      presence: availability/priority of the sender
 *                      iq: the server answers for the account (§10.3.3)
 *   a component's      to the component (component.c)
 *   remote domain      over s2s (s2s.c); remote-server-not-found when
 *                      federation is off; presence goes through presence.c
 *                      first (rosters)
 *   our domain         iq: the iq table; message/presence: ignored
 *   local full JID     that resource; if absent: message as to the bare JID,
 *                      iq service-unavailable, presence ignored (§8.5.3.2)
 *   local bare JID     message: highest non-negative priority resource(s);
 *                      presence: every available resource; iq: the server
 *                      answers for the account (§8.5.2)
 *   unknown account    message/iq: service-unavailable; presence ignored
 * The stanza is serialized once; every recipient queues the same chunk. */
#include "router.h"
#include "cluster.h"
#include "component.h"
#include "s2s.h"
#include "xml_parser.h"

#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "im.h"
#include "iq.h"
#include "jid.h"
#include "log.h"
#include "outq.h"
#include "pep.h"
#include "pubsub_xmpp.h"
#include "session.h"
#include "store.h"
#include "xml.h"

struct xnode *router_reply(struct arena *a, const struct xnode *req, const char *type)
{
    struct xnode *r = xml_elem_new(a, NS_CLIENT, req->name);
    const char *id = xml_attr(req, "id");
    const char *from = xml_attr(req, "from");
    const char *to = xml_attr(req, "to");
    if (r == NULL || xml_set_attr(a, r, "type", type) != 0 ||
        (id && xml_set_attr(a, r, "id", id) != 0) || (from && xml_set_attr(a, r, "to", from) != 0) ||
        (to && xml_set_attr(a, r, "from", to) != 0))
        return NULL;
    return r;
}

/* The error reply to stanza, or NULL when none is due (or no memory). */
static struct xnode *error_reply(const struct xnode *stanza, struct arena *a, int err,
                                 const char *cond, const char *type)
{
    const char *st_type = xml_attr(stanza, "type");
    /* RFC 6120 §8.3.1: never answer an error with an error; an iq result
     * needs no answer either. */
    if (st_type && (strcmp(st_type, "error") == 0 ||
                    (strcmp(stanza->name, "iq") == 0 && strcmp(st_type, "result") == 0)))
        return NULL;
    if (cond == NULL) {
        cond = herald_stanza_condition(err);
        type = herald_stanza_error_type(err);
    }
    struct xnode *r = router_reply(a, stanza, "error");
    if (r == NULL)
        return NULL;
    /* §8.3.1: the original payload may be included; we include it. */
    r->children = stanza->children;
    r->last_child = stanza->last_child;
    struct xnode *e = xml_add_elem(a, r, NS_CLIENT, "error");
    if (e == NULL || xml_set_attr(a, e, "type", type ? type : "cancel") != 0 ||
        xml_add_elem(a, e, NS_STANZAS, cond) == NULL)
        return NULL;
    return r;
}

void router_error(struct session *to, const struct xnode *stanza, struct arena *a, int err,
                  const char *cond, const char *type)
{
    struct xnode *r = error_reply(stanza, a, err, cond, type);
    if (r != NULL)
        session_send_xml(to, r);
}

struct chunk *router_chunk(const struct xnode *st)
{
    struct buf b;
    buf_init(&b, 0);
    xml_serialize(&b, st, NS_CLIENT);
    struct chunk *ch = buf_ok(&b) ? chunk_new(b.data, b.len) : NULL;
    buf_free(&b);
    return ch;
}

/* Serializes st once and queues it on each recipient. */
static void deliver(struct session **to, size_t n, const struct xnode *st)
{
    if (n == 0)
        return;
    struct chunk *ch = router_chunk(st);
    if (ch == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        session_send_chunk(to[i], ch);
    chunk_unref(ch);
}

static bool is_type(const char *type, const char *want)
{
    return type != NULL && strcmp(type, want) == 0;
}

/* RFC 6121 §8.5.2.1.1: chat/normal to a bare JID go to the available
 * resource(s) with the highest non-negative priority; headline to every
 * non-negative one. Returns how many sessions were chosen. */
static size_t pick_for_message(struct account *acct, const char *type, struct session **out,
                               size_t cap)
{
    int best = -1;
    bool all = is_type(type, "headline");
    for (struct session *s = acct ? acct->sessions : NULL; s; s = s->next_res)
        if (s->available && s->priority >= 0 && s->priority > best)
            best = s->priority;
    size_t n = 0;
    for (struct session *s = acct ? acct->sessions : NULL; s && n < cap; s = s->next_res)
        if (s->available && s->priority >= 0 && (all || s->priority == best))
            out[n++] = s;
    return n;
}

#define MAX_RECIPIENTS 64

void router_batch_failed(struct herald *h, const char *to, const char *id, const char *from,
                         int err)
{
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "<iq type='error' id='");
    buf_xml_attr(&b, id ? id : "", id ? strlen(id) : 0);
    buf_puts(&b, "' to='");
    buf_xml_attr(&b, to, strlen(to));
    if (from) {
        buf_puts(&b, "' from='");
        buf_xml_attr(&b, from, strlen(from));
    }
    buf_printf(&b, "'><error type='%s'><%s xmlns='" NS_STANZAS "'/></error></iq>",
               herald_stanza_error_type(err), herald_stanza_condition(err));
    struct chunk *ch = buf_ok(&b) ? chunk_new(b.data, b.len) : NULL;
    buf_free(&b);
    if (ch) {
        router_send(h, to, &ch, 1, ROUTE_FULL);
        chunk_unref(ch);
    }
}

/* ---- stanzas for other servers and components ---- */

/* Whether the domain of jid (a JID in prepared form) is served by the
 * router itself: the server's accounts and the pubsub service; if not, the
 * domain goes to domain. */
static bool local_jid(const struct herald *h, const char *jid, char *domain, size_t cap)
{
    /* One pass: the local part (up to '@', unless a '/' comes first), then
     * the domain (up to '/'); every notification goes through here. */
    size_t k = strcspn(jid, "@/");
    const char *d = jid[k] == '@' ? jid + k + 1 : jid;
    size_t n = strcspn(d, "/");
    if ((n == h->domain_len && memcmp(d, h->cfg->domain, n) == 0) ||
        (n == h->pubsub_jid_len && h->pubsub_jid_len && memcmp(d, ps_xmpp_jid(h->ps_xmpp), n) == 0))
        return true;
    snprintf(domain, cap, "%.*s", (int)(n < cap ? n : cap - 1), d);
    return false;
}

/* The domain of the 'from' in the start tag of a stanza this server
 * serialized (attribute values quoted with ' or "). */
static bool peek_from_domain(const char *data, size_t len, char *out, size_t cap)
{
    const char *end = memchr(data, '>', len);
    for (const char *p = data; end && p + 7 < end; p++) {
        if (memcmp(p, " from=", 6) != 0 || (p[6] != '\'' && p[6] != '"'))
            continue;
        const char *v = p + 7, *q = memchr(v, p[6], (size_t)(end - v));
        if (q == NULL)
            return false;
        const char *at = memchr(v, '@', (size_t)(q - v)), *slash = memchr(v, '/', (size_t)(q - v));
        const char *d = at && (!slash || at < slash) ? at + 1 : v;
        const char *de = slash ? slash : q;
        if (de <= d || (size_t)(de - d) >= cap)
            return false;
        memcpy(out, d, (size_t)(de - d));
        out[de - d] = '\0';
        return true;
    }
    return false;
}

/* A stanza's bytes for a domain served elsewhere: a component's, or a peer
 * server's over s2s. Returns 0 or HERALD_E*. */
static int send_remote(struct herald *h, const char *domain, struct chunk *ch)
{
    if (component_for(h, domain) != NULL)
        return component_send(h, domain, &ch, 1);
    char local[JID_PART_MAX + 1];
    if (!peek_from_domain(ch->data, ch->len, local, sizeof(local)) || !s2s_hosted(h, local))
        return HERALD_EFORBIDDEN;
    return s2s_send(h, local, domain, ch);
}

static struct chunk *join_parts(struct chunk *const *parts, size_t n)
{
    if (n == 1) {
        chunk_ref(parts[0]);
        return parts[0];
    }
    struct buf b;
    buf_init(&b, 0);
    for (size_t i = 0; i < n; i++)
        buf_append(&b, parts[i]->data, parts[i]->len);
    struct chunk *ch = buf_ok(&b) ? chunk_new(b.data, b.len) : NULL;
    buf_free(&b);
    return ch;
}

/* The error reply to st, routed to st's sender with mode; how many
 * sessions (or peers) got it. */
static size_t error_to_sender(struct herald *h, const struct xnode *st, struct arena *a, int err,
                              enum route_mode mode)
{
    const char *from = xml_attr(st, "from");
    struct xnode *r = from ? error_reply(st, a, err, NULL, NULL) : NULL;
    struct chunk *ch = r ? router_chunk(r) : NULL;
    size_t n = ch ? router_send(h, from, &ch, 1, mode) : 0;
    if (ch)
        chunk_unref(ch);
    return n;
}

/* st serialized for a component's or a peer's domain: 0 or HERALD_E* (a
 * full queue is a resource constraint to the sender). */
static int forward(struct herald *h, const struct xnode *st, const char *domain)
{
    struct chunk *ch = router_chunk(st);
    int rc = ch ? send_remote(h, domain, ch) : HERALD_ENOMEM;
    if (ch)
        chunk_unref(ch);
    return rc == HERALD_ELIMIT ? HERALD_ENOMEM : rc;
}

struct bounce_ctx {
    struct herald *h;
    int err;
};

static void bounce_parsed(void *ud, struct xnode *st, struct arena *a)
{
    struct bounce_ctx *c = ud;
    const char *from = xml_attr(st, "from");
    if (from != NULL)
        error_to_sender(c->h, st, a, c->err, strchr(from, '/') ? ROUTE_FULL : ROUTE_PRESENCE);
}

static void bounce_open(void *ud, const struct xnode *hdr, const char *ns)
{
    (void)ud;
    (void)hdr;
    (void)ns;
}

static void bounce_close(void *ud) { (void)ud; }

void router_bounce_bytes(struct herald *h, const char *data, size_t len, int err)
{
    static const struct xmlp_callbacks cb = {bounce_open, bounce_parsed, bounce_close};
    static const char hdr[] = "<stream:stream xmlns='" NS_CLIENT "' xmlns:stream='" NS_STREAM "'>";
    struct bounce_ctx c = {h, err};
    struct xmlp_limits lim = {h->cfg->max_stanza_size + sizeof(hdr), h->cfg->max_depth};
    struct xmlp *p = xmlp_new(&lim, &cb, &c);
    if (p == NULL)
        return;
    if (xmlp_feed(p, hdr, sizeof(hdr) - 1) == XMLP_OK)
        xmlp_feed(p, data, len);
    xmlp_free(p);
}

/* parts for a JID whose domain is not the router's: one sender-side copy. */
static size_t send_elsewhere(struct herald *h, const char *domain, struct chunk *const *parts,
                             size_t nparts)
{
    struct chunk *ch = join_parts(parts, nparts);
    if (ch == NULL)
        return 0;
    int rc = send_remote(h, domain, ch);
    if (rc != 0 && rc != HERALD_EFORBIDDEN)
        router_bounce_bytes(h, ch->data, ch->len, rc == HERALD_ELIMIT ? HERALD_ENOMEM : rc);
    chunk_unref(ch);
    return rc == 0;
}

size_t router_send(struct herald *h, const char *to, struct chunk *const *parts, size_t nparts,
                   enum route_mode mode)
{
    struct session *targets[MAX_RECIPIENTS];
    size_t n = 0;
    const char *slash = strchr(to, '/');
    if (slash != NULL) {
        char bare[JID_MAX + 1];
        size_t bl = (size_t)(slash - to);
        if (bl > JID_MAX)
            return 0;
        memcpy(bare, to, bl);
        bare[bl] = '\0';
        struct session *s = session_find(h, bare, slash + 1);
        if (s != NULL)
            targets[n++] = s;
    } else if (mode == ROUTE_MESSAGE) {
        n = pick_for_message(session_account(h, to), "headline", targets, MAX_RECIPIENTS);
    } else if (mode == ROUTE_PRESENCE) {
        struct account *acct = session_account(h, to);
        for (struct session *s = acct ? acct->sessions : NULL; s && n < MAX_RECIPIENTS; s = s->next_res)
            if (s->available)
                targets[n++] = s;
    }
    /* Only a JID with no session here can be another server's or a
     * component's: the local deliveries (every notification) never pay the
     * test. */
    char domain[JID_PART_MAX + 1];
    if (n == 0 && !local_jid(h, to, domain, sizeof(domain)))
        return send_elsewhere(h, domain, parts, nparts);
    for (size_t i = 0; i < n; i++)
        session_send_stanza(targets[i], parts, nparts);
    return n;
}

/* An error for a stanza whose sender has no session at hand: to its 'from'
 * if that is a local resource (the server and the pubsub service need no
 * error about their own stanzas). */
static bool bounce(struct herald *h, const struct xnode *st, struct arena *a, int err)
{
    const char *from = xml_attr(st, "from");
    return from && strchr(from, '/') && error_to_sender(h, st, a, err, ROUTE_FULL) > 0;
}

static bool has_child_ns(const struct xnode *st, const char *ns)
{
    for (const struct xnode *c = xml_first_elem(st); c; c = xml_next_elem(c))
        if (strcmp(c->ns, ns) == 0)
            return true;
    return false;
}

/* A notification of a durable subscription carries the item's seq as a
 * stanza-id by the service: the subscriber's cursor, not this copy, brings
 * it back (pubsub_durable.c). */
static bool durable_notification(struct herald *h, const struct xnode *st)
{
    const char *from = xml_attr(st, "from");
    const char *ps = h->ps_xmpp ? ps_xmpp_jid(h->ps_xmpp) : NULL;
    const struct xnode *sid = xml_child(st, "urn:xmpp:sid:0", "stanza-id");
    const char *by = sid ? xml_attr(sid, "by") : NULL;
    return ps && from && by && strcmp(from, ps) == 0 && strcmp(by, ps) == 0;
}

enum redeliver router_redeliver(struct herald *h, struct xnode *st, struct arena *a)
{
    const char *type = xml_attr(st, "type");
    const char *to = xml_attr(st, "to");
    char bare[JID_MAX + 1];
    if (to == NULL || strlen(to) > JID_MAX)
        return REDELIVER_DROPPED;
    snprintf(bare, sizeof(bare), "%.*s", (int)strcspn(to, "/"), to);
    if (strcmp(st->name, "iq") == 0) {
        /* A request the client never answered: the requester learns so. */
        if (is_type(type, "get") || is_type(type, "set"))
            return bounce(h, st, a, HERALD_EUNAVAIL) ? REDELIVER_BOUNCED : REDELIVER_DROPPED;
        return REDELIVER_DROPPED;
    }
    /* Presence is state: the next login gets it afresh. Headlines are
     * fire-and-forget (RFC 6121 §5.2.2); carbon copies and archive results
     * are copies of stanzas kept elsewhere. */
    if (strcmp(st->name, "message") != 0 || is_type(type, "headline") || is_type(type, "error") ||
        is_type(type, "groupchat") || has_child_ns(st, "urn:xmpp:carbons:2") ||
        has_child_ns(st, "urn:xmpp:mam:2") || durable_notification(h, st))
        return REDELIVER_DROPPED;
    /* chat and normal (pubsub notifications of nodes whose
     * pubsub#notification_type is normal among them): another available
     * resource, else offline storage, else an error to the sender. */
    struct session *targets[MAX_RECIPIENTS];
    size_t n = pick_for_message(session_account(h, bare), type, targets, MAX_RECIPIENTS);
    if (n > 0) {
        deliver(targets, n, st);
        return REDELIVER_ROUTED;
    }
    int rc = im_offline_store(h, st, a, bare);
    if (rc == 0)
        return REDELIVER_ROUTED;
    /* XEP-0160 §3: storage full (or refused) is service-unavailable. */
    int err = rc == HERALD_ELIMIT || rc == -1 ? HERALD_EUNAVAIL : rc;
    return bounce(h, st, a, err) ? REDELIVER_BOUNCED : REDELIVER_DROPPED;
}

size_t router_deliver_local(struct herald *h, struct xnode *st)
{
    const char *to = xml_attr(st, "to");
    struct jid j;
    char bare[JID_MAX + 1];
    if (to == NULL || jid_parse_str(&j, to) != 0 || jid_format(&j, true, bare, sizeof(bare)) < 0)
        return 0;
    struct session *targets[MAX_RECIPIENTS];
    size_t n = 0;
    bool presence = strcmp(st->name, "presence") == 0;
    if (presence && is_type(xml_attr(st, "type"), "probe")) {
        const char *from = xml_attr(st, "from");
        if (from != NULL && j.resource[0] == '\0')
            presence_probe_local(h, bare, from);
        return 0;
    }
    if (j.resource[0]) {
        struct session *s = session_find(h, bare, j.resource);
        if (s != NULL)
            targets[n++] = s;
    } else if (presence) {
        struct account *acct = session_account(h, bare);
        for (struct session *s = acct ? acct->sessions : NULL; s && n < MAX_RECIPIENTS;
             s = s->next_res)
            if (s->available)
                targets[n++] = s;
    } else if (strcmp(st->name, "message") == 0) {
        n = pick_for_message(session_account(h, bare), xml_attr(st, "type"), targets,
                             MAX_RECIPIENTS);
    }
    deliver(targets, n, st);
    return n;
}

static void to_bare(struct session *from, struct xnode *st, struct arena *a, const char *bare)
{
    struct herald *h = from->h;
    struct account *acct = session_account(h, bare);
    const char *type = xml_attr(st, "type");
    struct session *to[MAX_RECIPIENTS];
    size_t n = 0;

    if (acct == NULL && strcmp(st->name, "presence") != 0) {
        int exists = store_user_exists(h->store, bare);
        if (exists <= 0) {
            router_error(from, st, a, exists < 0 ? exists : HERALD_EUNAVAIL, NULL, NULL);
            return;
        }
    }
    if (strcmp(st->name, "message") == 0) {
        if (is_type(type, "groupchat")) {
            router_error(from, st, a, HERALD_EUNAVAIL, NULL, NULL);
            return;
        }
        n = pick_for_message(acct, type, to, MAX_RECIPIENTS);
        /* Cluster mode: resources on other instances first (cluster.c). */
        if (n == 0 && h->cluster && cluster_route(h, st))
            return;
        if (acct != NULL)
            carbons_received(from, acct, st, to, n); /* XEP-0280 §7 (carbons.c) */
        /* §8.5.2.2.1: nobody available: store chat/normal (XEP-0160). */
        if (n == 0 && presence_offline_store(from, st, a, bare) != 0 && !is_type(type, "headline") &&
            !is_type(type, "error"))
            router_error(from, st, a, HERALD_EUNAVAIL, NULL, NULL);
        deliver(to, n, st);
    } else if (strcmp(st->name, "presence") == 0) {
        presence_handle(from, st, a, NULL, bare, acct != NULL || store_user_exists(h->store, bare) == 1);
    } else if (is_type(type, "get") || is_type(type, "set")) {
        /* §8.5.2.1.3: the server answers for the account: for one's own
         * account with the server's handlers (the roster among them). */
        struct xnode *q = xml_first_elem(st);
        if (pep_route_iq(from, st, a, bare))
            ; /* XEP-0163: pubsub on the account's PEP service, disco of another (pep.c) */
        else if (strcmp(bare, from->bare) == 0)
            iq_dispatch(from, st, a);
        else if (q && strcmp(q->ns, NS_ROSTER) == 0)
            router_error(from, st, a, HERALD_EFORBIDDEN, NULL, NULL); /* RFC 6121 §2.1.5 */
        else if (im_iq_to_other_account(from, st, a, bare))
            ; /* XEP-0054 vCard get (or forbidden), XEP-0049 forbidden: vcard.c */
        else
            router_error(from, st, a, HERALD_EUNAVAIL, NULL, NULL);
    }
}

static void to_full(struct session *from, struct xnode *st, struct arena *a, const struct jid *j,
                    const char *bare)
{
    struct session *target = session_find(from->h, bare, j->resource);
    const char *type = xml_attr(st, "type");
    if (strcmp(st->name, "presence") == 0 && !is_type(type, "error")) {
        /* Subscriptions and probes are about the bare JID (§3, §4.3);
         * directed presence is remembered (§4.6). */
        char full[JID_MAX + 1];
        snprintf(full, sizeof(full), "%s/%s", bare, j->resource);
        presence_handle(from, st, a, full, bare, true);
        return;
    }
    /* Cluster mode: bound on another instance? (cluster.c) */
    if (target == NULL && from->h->cluster && cluster_route(from->h, st))
        return;
    if (target != NULL) {
        if (strcmp(st->name, "message") == 0) /* XEP-0280 §7 (carbons.c) */
            carbons_received(from, session_account(from->h, bare), st, &target, 1);
        deliver(&target, 1, st);
        return;
    }
    if (strcmp(st->name, "message") == 0) {
        /* §8.5.3.2.1: chat/normal fall back to the bare JID. */
        if (is_type(type, "groupchat"))
            router_error(from, st, a, HERALD_EUNAVAIL, NULL, NULL);
        else if (!is_type(type, "headline") && !is_type(type, "error"))
            to_bare(from, st, a, bare);
    } else if (strcmp(st->name, "iq") == 0) {
        router_error(from, st, a, HERALD_EUNAVAIL, NULL, NULL);
    }
}

static int check_iq(struct session *from, struct xnode *st, struct arena *a)
{
    const char *type = xml_attr(st, "type");
    if (xml_attr(st, "id") == NULL || type == NULL ||
        (strcmp(type, "get") && strcmp(type, "set") && strcmp(type, "result") && strcmp(type, "error"))) {
        router_error(from, st, a, HERALD_EINVAL, NULL, NULL);
        return -1;
    }
    return 0;
}

/* A stanza from a local session to a component or a remote server. */
static void route_out(struct session *from, struct xnode *st, struct arena *a, const struct jid *j)
{
    struct herald *h = from->h;
    bool component = component_for(h, j->domain) != NULL;
    if (!component && (h->cfg->s2s_port == 0 || h->s2s == NULL)) {
        router_error(from, st, a, HERALD_EREMOTE, NULL, NULL); /* federation is off */
        return;
    }
    char *prepared = arena_alloc(a, JID_MAX + 1), *bare = arena_alloc(a, JID_MAX + 1);
    if (prepared == NULL || bare == NULL || jid_format(j, false, prepared, JID_MAX + 1) < 0 ||
        jid_format(j, true, bare, JID_MAX + 1) < 0 || xml_set_attr(a, st, "to", prepared) != 0)
        return;
    if (strcmp(st->name, "presence") == 0) {
        /* Subscriptions change the roster; directed presence is remembered
         * (presence.c sends it on through router_send). */
        presence_handle(from, st, a, j->resource[0] ? prepared : NULL, bare, false);
        return;
    }
    if (strcmp(st->name, "message") == 0) {
        carbons_sent(from, st);         /* XEP-0280 §8 */
        mam_route_message(from, st, a, bare); /* the sender's archive */
    }
    int rc = forward(h, st, j->domain);
    if (rc != 0)
        router_error(from, st, a, rc, NULL, NULL);
}

/* An error for a stanza that came from a component or a peer. */
static void bounce_external(struct herald *h, const struct xnode *st, struct arena *a, int err)
{
    error_to_sender(h, st, a, err, ROUTE_FULL);
}

static void external_to_account(struct herald *h, struct xnode *st, struct arena *a,
                                 const struct jid *j, const char *bare)
{
    const char *type = xml_attr(st, "type"), *from = xml_attr(st, "from");
    char from_bare[JID_MAX + 1];
    if (jid_bare_of(from, from_bare) != 0)
        return;
    if (blocking_blocks(h, bare, from)) {
        /* XEP-0191 §3.6: as if the account did not exist; presence and iq
         * responses are dropped. */
        if (strcmp(st->name, "message") == 0 || is_type(type, "get") || is_type(type, "set"))
            bounce_external(h, st, a, HERALD_EUNAVAIL);
        return;
    }
    if (strcmp(st->name, "presence") == 0) {
        if (type && (!strcmp(type, "subscribe") || !strcmp(type, "subscribed") ||
                     !strcmp(type, "unsubscribe") || !strcmp(type, "unsubscribed")))
            presence_inbound_subscription(h, from_bare, bare, type, st);
        else
            router_deliver_local(h, st); /* availability, probes, errors */
        return;
    }
    bool is_msg = strcmp(st->name, "message") == 0;
    bool exists = session_account(h, bare) != NULL || store_user_exists(h->store, bare) == 1;
    if (!exists) {
        if (!is_type(type, "error") && !is_type(type, "result"))
            bounce_external(h, st, a, HERALD_EUNAVAIL);
        return;
    }
    if (is_msg)
        mam_route(h, from_bare, from, st, a, bare); /* XEP-0313, XEP-0359 */
    if (j->resource[0] && router_deliver_local(h, st) > 0)
        return;
    if (!is_msg) {
        /* iq: to an absent resource, or to the account (which answers
         * nothing for remote entities yet). */
        if (is_type(type, "get") || is_type(type, "set"))
            bounce_external(h, st, a, HERALD_EUNAVAIL);
        return;
    }
    if (is_type(type, "groupchat") || (j->resource[0] && is_type(type, "headline")))
        return;
    /* §8.5.2: to the available resources, else offline storage. */
    struct session *targets[MAX_RECIPIENTS];
    size_t n = pick_for_message(session_account(h, bare), type, targets, MAX_RECIPIENTS);
    if (n > 0) {
        deliver(targets, n, st);
        return;
    }
    int rc = im_offline_store(h, st, a, bare);
    if (rc != 0 && rc != -1)
        bounce_external(h, st, a, rc == HERALD_ELIMIT ? HERALD_EUNAVAIL : rc);
}

void router_route_external(struct herald *h, struct xnode *st, struct arena *a)
{
    const char *to = xml_attr(st, "to"), *from = xml_attr(st, "from");
    bool is_iq = strcmp(st->name, "iq") == 0;
    struct jid *j = arena_alloc(a, sizeof(*j));
    char *prepared = arena_alloc(a, JID_MAX + 1), *bare = arena_alloc(a, JID_MAX + 1);
    if (j == NULL || prepared == NULL || bare == NULL || from == NULL)
        return;
    if (to == NULL || jid_parse_str(j, to) != 0 || jid_format(j, false, prepared, JID_MAX + 1) < 0 ||
        jid_format(j, true, bare, JID_MAX + 1) < 0) {
        bounce_external(h, st, a, HERALD_EJID);
        return;
    }
    if (xml_set_attr(a, st, "to", prepared) != 0)
        return;
    if (is_iq && (xml_attr(st, "id") == NULL || xml_attr(st, "type") == NULL))
        return;
    const char *ps = h->ps_xmpp ? ps_xmpp_jid(h->ps_xmpp) : NULL;
    if (ps && strcmp(j->domain, ps) == 0) {
        if (is_iq && !j->local[0] && !j->resource[0])
            ps_xmpp_handle_iq(h->ps_xmpp, from, st, a);
        else if (is_iq)
            bounce_external(h, st, a, HERALD_EUNAVAIL);
        return;
    }
    if (strcmp(j->domain, h->cfg->domain) != 0) {
        /* A component's stanza for another component or a peer server. */
        int rc = forward(h, st, j->domain);
        if (rc != 0)
            bounce_external(h, st, a, rc);
        return;
    }
    if (j->local[0] == '\0') {
        if (is_iq && !j->resource[0])
            iq_dispatch_external(h, st, a);
        return; /* message/presence to the server itself: nothing to do */
    }
    external_to_account(h, st, a, j, bare);
}

void router_route(struct session *from, struct xnode *st, struct arena *a)
{
    struct herald *h = from->h;
    bool is_iq = strcmp(st->name, "iq") == 0;
    const char *to = xml_attr(st, "to");
    /* RFC 6120 §8.1.2.1: the server stamps the sender's full JID. */
    if (xml_set_attr(a, st, "from", from->full) != 0)
        return;
    if (is_iq && check_iq(from, st, a) != 0)
        return;
    if (to == NULL) {
        if (is_iq)
            iq_dispatch(from, st, a);
        else if (strcmp(st->name, "message") == 0) {
            mam_route_message(from, st, a, from->bare); /* XEP-0313 archive, XEP-0359 stanza-id */
            to_bare(from, st, a, from->bare);
        } else {
            presence_handle(from, st, a, NULL, NULL, false);
        }
        return;
    }
    struct jid *j = arena_alloc(a, sizeof(*j));
    char *bare = arena_alloc(a, JID_MAX + 1);
    if (j == NULL || bare == NULL)
        return;
    if (jid_parse_str(j, to) != 0) {
        router_error(from, st, a, HERALD_EJID, NULL, NULL);
        return;
    }
    /* XEP-0191 (blocking.c): looked at only while some account blocks. */
    if (h->blockers != NULL && blocking_route(from, st, a, j))
        return;
    const char *ps_jid = h->ps_xmpp ? ps_xmpp_jid(h->ps_xmpp) : NULL;
    if (ps_jid && strcmp(j->domain, ps_jid) == 0 && j->local[0] != '\0') {
        /* The service has no addressable entities under it. */
        router_error(from, st, a, HERALD_EUNAVAIL, NULL, NULL);
        return;
    }
    if (ps_jid && strcmp(j->domain, ps_jid) == 0) {
        if (xml_set_attr(a, st, "to", ps_jid) != 0)
            return;
        if (is_iq && j->resource[0] == '\0')
            ps_xmpp_handle_iq(h->ps_xmpp, from->full, st, a);
        else if (strcmp(st->name, "message") == 0)
            ps_xmpp_handle_message(h->ps_xmpp, from, st, a);
        else if (is_iq)
            router_error(from, st, a, HERALD_EUNAVAIL, NULL, NULL);
        return;
    }
    if (strcmp(j->domain, h->cfg->domain) != 0) {
        route_out(from, st, a, j);
        return;
    }
    /* Route and deliver with the prepared form of the address. */
    char *prepared = arena_alloc(a, JID_MAX + 1);
    if (prepared == NULL || jid_format(j, false, prepared, JID_MAX + 1) < 0 ||
        xml_set_attr(a, st, "to", prepared) != 0)
        return;
    if (j->local[0] == '\0') {
        if (is_iq && j->resource[0] == '\0')
            iq_dispatch(from, st, a);
        else if (is_iq)
            router_error(from, st, a, HERALD_EUNAVAIL, NULL, NULL);
        return; /* message/presence to the server itself: nothing to do */
    }
    jid_format(j, true, bare, JID_MAX + 1);
    if (!is_iq && strcmp(st->name, "message") == 0 && strcmp(bare, from->bare) != 0)
        carbons_sent(from, st); /* XEP-0280 §8 (carbons.c) */
    if (strcmp(st->name, "message") == 0)
        mam_route_message(from, st, a, bare); /* XEP-0313 archive, XEP-0359 stanza-id */
    if (j->resource[0])
        to_full(from, st, a, j, bare);
    else
        to_bare(from, st, a, bare);
}
