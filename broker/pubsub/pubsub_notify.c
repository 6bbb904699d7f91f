/* pubsub_notify.c - XEP-0060 event notifications: the XMPP sink of the
 * pubsub service's events.
 *
 * The service calls ps_notify_sink after the batch holding a change has
 * committed (pubsub.h, "Events"). Each event is rendered ONCE into a shared,
 * refcounted chunk holding everything after the envelope ("<event ...>...
 * </event></message>"); every recipient then gets its own small envelope
 * chunk ("<message from='S' to='T' type='headline' id='ps-N'>", plus SHIM
 * headers when it needs them) and the router queues both chunks by
 * reference, so a fan-out to N subscribers costs N envelopes and one body.
 * The envelope is written straight into a chunk of its exact size: measured
 * first, then written, with no printf and no intermediate buffer.
 *
 * Who gets what (XEP-0060 §7.1.2, §7.2.2, §8.2.5.3, §8.4.2, §8.5.2, §8.6,
 * §6.1.7): the node's event recipients (pubsub_event_recipients) for item,
 * retraction, purge, deletion and configuration events, each gated by the
 * node configuration the change was made under; ev->to alone for the
 * subscription outcome, the owner's approval request and the last item
 * sent to a new subscriber. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
#include "xml.h"

#define NS_EVENT "http://jabber.org/protocol/pubsub#event"
#define NS_DATA "jabber:x:data"
#define NS_SUB_AUTH "http://jabber.org/protocol/pubsub#subscribe_authorization"

#define LIT(s) s, sizeof(s) - 1

int ps_notify_init(struct ps_xmpp *x)
{
    static const char open[] = "<message from='";
    static const char mid[] = "' to='";
    size_t jl = strlen(x->jid);
    size_t len = sizeof(open) - 1 + xml_attr_len(x->jid, jl) + sizeof(mid) - 1;
    char *p = malloc(len + 1);
    if (p == NULL)
        return HERALD_ENOMEM;
    memcpy(p, open, sizeof(open) - 1);
    char *end = xml_attr_put(p + sizeof(open) - 1, x->jid, jl);
    memcpy(end, mid, sizeof(mid)); /* with its NUL */
    x->env_prefix = p;
    x->env_prefix_len = len;
    return 0;
}

/* ---- envelopes ---- */

/* A writer that first measures (p == NULL) and then writes into memory of
 * exactly the measured size: the same code path does both, so the two can
 * never disagree. */
struct out {
    char *p;
    size_t len;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->p)
        memcpy(o->p + o->len, s, n);
    o->len += n;
}

/* Attribute escaping is also valid in text (it escapes a superset). */
static void put_esc(struct out *o, const char *s)
{
    size_t n = strlen(s);
    if (o->p)
        xml_attr_put(o->p + o->len, s, n);
    o->len += xml_attr_len(s, n);
}

/* The per-recipient head of a notification. SHIM headers (XEP-0060 §12.7,
 * XEP-0131): a JID holding several subscriptions learns which ones the
 * notification is for (SubID); a subscriber reached through a collection
 * learns which one (Collection, XEP-0248). */
static void envelope(struct out *o, const struct ps_xmpp *x, const char *to, uint8_t notif_type,
                     const char *num, size_t nl, const char *const *subids, size_t nsubids,
                     const char *via)
{
    put(o, x->env_prefix, x->env_prefix_len);
    put_esc(o, to);
    if (notif_type == PS_NOTIF_NORMAL)
        put(o, LIT("' type='normal' id='ps-"));
    else
        put(o, LIT("' type='headline' id='ps-"));
    put(o, num, nl);
    put(o, LIT("'>"));
    if (via == NULL && nsubids < 2)
        return;
    put(o, LIT("<headers xmlns='http://jabber.org/protocol/shim'>"));
    if (via) {
        put(o, LIT("<header name='Collection'>"));
        put_esc(o, via);
        put(o, LIT("</header>"));
    } else {
        for (size_t i = 0; i < nsubids; i++) {
            put(o, LIT("<header name='SubID'>"));
            put_esc(o, subids[i]);
            put(o, LIT("</header>"));
        }
    }
    put(o, LIT("</headers>"));
}

struct chunk *ps_notify_envelope(struct ps_xmpp *x, const char *to, uint8_t notif_type,
                                 const char *const *subids, size_t nsubids, const char *via)
{
    char num[24];
    size_t nl = 0;
    for (uint64_t v = ++x->msg_seq; v || nl == 0; v /= 10)
        num[sizeof(num) - 1 - nl++] = (char)('0' + v % 10);
    const char *digits = num + sizeof(num) - nl;
    struct chunk *env;
    if (via == NULL && nsubids < 2) {
        /* The common case, once per subscriber of a fan-out: no headers,
         * so the size is known from the JID's escaped length alone and the
         * envelope is written in one pass. */
        static const char headline[] = "' type='headline' id='ps-";
        static const char normal[] = "' type='normal' id='ps-";
        const char *type = notif_type == PS_NOTIF_NORMAL ? normal : headline;
        size_t type_len = notif_type == PS_NOTIF_NORMAL ? sizeof(normal) - 1 : sizeof(headline) - 1;
        size_t tl = strlen(to);
        env = chunk_alloc(x->env_prefix_len + xml_attr_len(to, tl) + type_len + nl + 2);
        if (env != NULL) {
            char *p = env->data;
            memcpy(p, x->env_prefix, x->env_prefix_len);
            p = xml_attr_put(p + x->env_prefix_len, to, tl);
            memcpy(p, type, type_len);
            memcpy(p + type_len, digits, nl);
            p += type_len + nl;
            p[0] = '\'';
            p[1] = '>';
        }
    } else {
        struct out o = {NULL, 0};
        envelope(&o, x, to, notif_type, digits, nl, subids, nsubids, via);
        if ((env = chunk_alloc(o.len)) != NULL) {
            o.p = env->data;
            o.len = 0;
            envelope(&o, x, to, notif_type, digits, nl, subids, nsubids, via);
        }
    }
    return env;
}

/* Catch-up (docs/pubsub.md): a notification of a node whose
 * pubsub#notification_type is normal, for a subscriber with no available
 * resource, waits in the account's offline storage for notifications
 * (bounded by pubsub.max_offline_notifications), with a delay stamp. */
static void store_for_later(struct ps_xmpp *x, const char *to, struct chunk *env,
                            struct chunk *body)
{
    static const char tail[] = "</message>";
    size_t tl = sizeof(tail) - 1;
    if (body->len < tl || memcmp(body->data + body->len - tl, tail, tl) != 0)
        return;
    char bare[JID_MAX + 1];
    snprintf(bare, sizeof(bare), "%.*s", (int)strcspn(to, "/"), to);
    struct buf b;
    buf_init(&b, 0);
    buf_append(&b, env->data, env->len);
    buf_append(&b, body->data, body->len - tl);
    char stamp[32];
    ps_notify_stamp(stamp, sizeof(stamp), 0);
    buf_puts(&b, "<delay xmlns='urn:xmpp:delay' from='");
    buf_xml_attr(&b, x->jid, strlen(x->jid));
    buf_printf(&b, "' stamp='%s'/></message>", stamp);
    int rc = buf_ok(&b) ? im_offline_store_raw(x->h, bare, IM_OFFLINE_NOTIFICATIONS, b.data, b.len)
                        : HERALD_ENOMEM;
    buf_free(&b);
    static struct log_limit lim;
    if (rc == HERALD_ELIMIT)
        log_limited(&lim, LOG_INFO, "pubsub", "offline notifications of %s are full "
                    "(pubsub.max_offline_notifications): a notification is not kept", bare);
    else if (rc != 0 && rc != HERALD_ENOTFOUND)
        log_limited(&lim, LOG_WARN, "pubsub", "notification for %s not kept offline: %s", bare,
                    herald_strerror(rc));
}

/* Sends envelope + body to one JID; the body chunk is shared, not copied. */
static void send_one(struct ps_xmpp *x, const char *to, uint8_t notif_type, struct chunk *body,
                     const char *const *subids, size_t nsubids, const char *via, bool keep)
{
    struct chunk *env = ps_notify_envelope(x, to, notif_type, subids, nsubids, via);
    if (env == NULL) {
        log_error("pubsub", "notification to %s dropped: out of memory", to);
        return;
    }
    struct chunk *parts[2] = {env, body};
    if (router_send(x->h, to, parts, 2, ROUTE_MESSAGE) > 0)
        x->h->stats.notifications++;
    else if (keep && notif_type == PS_NOTIF_NORMAL)
        store_for_later(x, to, env, body);
    chunk_unref(env);
}

struct fan {
    struct ps_xmpp *x;
    struct chunk *body;
    uint8_t notif_type;
    const struct ps_event *ev;
    bool durable;              /* a published item on a node with durable subscriptions */
};

static void fan_one(void *ud, const char *jid, const char *const *subids, size_t nsubids,
                    const char *via)
{
    struct fan *f = ud;
    /* Durable subscribers get each item once per session, in order, with
     * its seq (pubsub_durable.c); only a direct subscription is durable. */
    if (f->durable && via == NULL && pubsub_durable_cursor(f->x->ps, f->ev->node_id, jid, NULL)) {
        durable_live(f->x, f->ev, jid, f->notif_type);
        return;
    }
    /* Catch-up keeps what happened to items, retractions (and ended
     * leases) included, so a subscriber coming back also learns what went. */
    send_one(f->x, jid, f->notif_type, f->body, subids, nsubids, via,
             f->ev->kind == PS_EV_PUBLISHED || f->ev->kind == PS_EV_RETRACTED);
}

/* ---- bodies (rendered once per event) ---- */

static struct chunk *take(struct buf *b)
{
    struct chunk *ch = buf_ok(b) ? chunk_new(b->data, b->len) : NULL;
    buf_free(b);
    return ch;
}

static void open_event(struct buf *b, const char *what, const char *node)
{
    buf_puts(b, "<event xmlns='" NS_EVENT "'><");
    buf_puts(b, what);
    buf_puts(b, " node='");
    buf_xml_attr(b, node, strlen(node));
    buf_putc(b, '\'');
}

/* <items node><item id publisher>payload</item></items> (§7.1.2.1, and
 * without the payload §7.1.2.2). */
void ps_notify_stamp(char *out, size_t cap, uint64_t unix_ms)
{
    time_t t = unix_ms ? (time_t)(unix_ms / 1000) : time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    if (unix_ms)
        snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (unsigned)(unix_ms % 1000));
    else
        strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

struct chunk *ps_notify_item(const struct ps_xmpp *x, const struct ps_notify_item_args *it)
{
    struct buf b;
    buf_init(&b, 0);
    open_event(&b, "items", it->node);
    buf_puts(&b, "><item id='");
    buf_xml_attr(&b, it->item_id, strlen(it->item_id));
    if (it->publisher && it->publisher[0]) {
        buf_puts(&b, "' publisher='");
        buf_xml_attr(&b, it->publisher, strlen(it->publisher));
    }
    if (it->with_payload && it->payload_len) {
        buf_puts(&b, "'>");
        buf_append(&b, it->payload, it->payload_len);
        buf_puts(&b, "</item></items></event>");
    } else {
        buf_puts(&b, "'/></items></event>");
    }
    if (it->published) {
        /* XEP-0203: when it was published (a replayed item is late). */
        char stamp[40];
        ps_notify_stamp(stamp, sizeof(stamp), it->published);
        buf_puts(&b, "<delay xmlns='urn:xmpp:delay' from='");
        buf_xml_attr(&b, x->jid, strlen(x->jid));
        buf_printf(&b, "' stamp='%s'/>", stamp);
    }
    if (it->seq) {
        /* XEP-0359: the item's place in the node (its node-archive id,
         * XEP-0313/0442), for a durable subscriber to check order by. */
        buf_puts(&b, "<stanza-id xmlns='urn:xmpp:sid:0' by='");
        buf_xml_attr(&b, x->jid, strlen(x->jid));
        buf_printf(&b, "' id='%llu'/>", (unsigned long long)it->seq);
    }
    buf_puts(&b, "</message>");
    return take(&b);
}

static struct chunk *item_body(const struct ps_xmpp *x, const struct ps_event *ev,
                               bool with_payload)
{
    struct ps_notify_item_args it = {ev->node,    ev->item_id,     ev->publisher, ev->payload,
                                     ev->payload_len, with_payload, 0, 0};
    return ps_notify_item(x, &it);
}

/* §7.2.2.1 */
static struct chunk *retract_body(const struct ps_event *ev)
{
    struct buf b;
    buf_init(&b, 0);
    open_event(&b, "items", ev->node);
    buf_puts(&b, "><retract id='");
    buf_xml_attr(&b, ev->item_id, strlen(ev->item_id));
    buf_puts(&b, "'/></items></event></message>");
    return take(&b);
}

/* <purge node/> (§8.5.2) and <delete node>[<redirect uri/>]</delete> (§8.4.2). */
static struct chunk *node_body(const char *what, const struct ps_event *ev, const char *redirect)
{
    struct buf b;
    buf_init(&b, 0);
    open_event(&b, what, ev->node);
    if (redirect) {
        buf_puts(&b, "><redirect uri='");
        buf_xml_attr(&b, redirect, strlen(redirect));
        buf_puts(&b, "'/></");
        buf_puts(&b, what);
        buf_puts(&b, "></event></message>");
    } else {
        buf_puts(&b, "/></event></message>");
    }
    return take(&b);
}

/* §8.2.5.3: with deliver_payloads the notification carries the new
 * configuration as a node_config form of type 'result'. */
static struct chunk *config_body(const struct ps_event *ev)
{
    struct arena a;
    struct buf b;
    struct chunk *ch = NULL;
    arena_init(&a);
    buf_init(&b, 0);
    open_event(&b, "configuration", ev->node);
    if (ev->config.deliver_payloads) {
        struct xnode *form = ps_form_config(&a, &ev->config);
        if (form == NULL || xml_set_attr(&a, form, "type", "result") != 0)
            goto done;
        buf_putc(&b, '>');
        xml_serialize(&b, form, NS_EVENT);
        buf_puts(&b, "</configuration></event></message>");
    } else {
        buf_puts(&b, "/></event></message>");
    }
    ch = take(&b);
done:
    buf_free(&b);
    arena_free(&a);
    return ch;
}

static const char *state_name(uint8_t state)
{
    return state == SUB_SUBSCRIBED ? "subscribed" : state == SUB_PENDING ? "pending" : "none";
}

/* §8.6: the subscriber learns the owner's decision (§8.6.2: subscribed, or
 * none when denied). */
static struct chunk *subscription_body(const struct ps_event *ev)
{
    struct buf b;
    buf_init(&b, 0);
    open_event(&b, "subscription", ev->node);
    buf_puts(&b, " jid='");
    buf_xml_attr(&b, ev->jid, strlen(ev->jid));
    if (ev->subid && ev->subid[0]) {
        buf_puts(&b, "' subid='");
        buf_xml_attr(&b, ev->subid, strlen(ev->subid));
    }
    buf_puts(&b, "' subscription='");
    buf_puts(&b, state_name(ev->state));
    buf_puts(&b, "'/></event></message>");
    return take(&b);
}

/* §8.6 (Example 179): the data form asking an owner to approve a pending
 * subscription; the owner answers with it submitted in a message to the
 * service (pubsub_iq.c). */
static struct chunk *approval_body(const struct ps_event *ev)
{
    static const struct {
        const char *var, *type, *label;
    } fields[] = {
        {"FORM_TYPE", "hidden", NULL},
        {"pubsub#subid", "hidden", NULL},
        {"pubsub#node", "text-single", "Node ID"},
        {"pubsub#subscriber_jid", "jid-single", "Subscriber Address"},
        {"pubsub#allow", "boolean", "Allow this JID to subscribe to this pubsub node?"},
    };
    const char *values[] = {NS_SUB_AUTH, ev->subid ? ev->subid : "", ev->node, ev->jid, "false"};
    struct arena a;
    struct buf b;
    struct chunk *ch = NULL;
    arena_init(&a);
    buf_init(&b, 0);
    struct xnode *x = xml_elem_new(&a, NS_DATA, "x");
    struct xnode *title = x ? xml_add_elem(&a, x, NS_DATA, "title") : NULL;
    if (title == NULL || xml_set_attr(&a, x, "type", "form") != 0 ||
        xml_add_text(&a, title, LIT("PubSub subscriber request")) != 0)
        goto done;
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        struct xnode *f = xml_add_elem(&a, x, NS_DATA, "field");
        struct xnode *v = f ? xml_add_elem(&a, f, NS_DATA, "value") : NULL;
        if (v == NULL || xml_set_attr(&a, f, "var", fields[i].var) != 0 ||
            xml_set_attr(&a, f, "type", fields[i].type) != 0 ||
            (fields[i].label && xml_set_attr(&a, f, "label", fields[i].label) != 0) ||
            xml_add_text(&a, v, values[i], strlen(values[i])) != 0)
            goto done;
    }
    xml_serialize(&b, x, NS_CLIENT);
    buf_puts(&b, "</message>");
    ch = take(&b);
done:
    buf_free(&b);
    arena_free(&a);
    return ch;
}

/* ---- the sink ---- */

void ps_notify_sink(void *ud, struct pubsub *ps, const struct ps_event *ev)
{
    struct ps_xmpp *x = ud;
    const struct ps_config *c = &ev->config;
    struct chunk *body = NULL;
    const char *single = NULL; /* one recipient (ev->to) instead of the node's */
    uint8_t notif_type = c->notification_type;

    /* An event of another service's node (a PEP node: pep.c renders it
     * through this sink with an edge of the owner's JID). */
    if (ev->service != NULL && strcmp(ev->service, x->jid) != 0)
        return;
    if (ev->kind == PS_EV_PUBLISHED)
        x->h->stats.publishes++;
    /* What each kind names (pubsub.h); an event without it says nothing. */
    bool complete = ev->node != NULL;
    if (ev->kind == PS_EV_PUBLISHED || ev->kind == PS_EV_RETRACTED || ev->kind == PS_EV_LAST_ITEM)
        complete = complete && ev->item_id != NULL;
    if (ev->kind == PS_EV_SUBSCRIPTION || ev->kind == PS_EV_APPROVAL_PENDING)
        complete = complete && ev->jid != NULL;
    if (ev->kind == PS_EV_SUBSCRIPTION || ev->kind == PS_EV_APPROVAL_PENDING ||
        ev->kind == PS_EV_LAST_ITEM)
        complete = complete && ev->to != NULL;
    if (!complete)
        return;

    switch (ev->kind) {
    case PS_EV_PUBLISHED:
        if (!c->deliver_notifications)
            return;
        body = item_body(x, ev, c->deliver_payloads);
        break;
    case PS_EV_RETRACTED:
        if (!ev->notify)
            return;
        body = retract_body(ev);
        break;
    case PS_EV_PURGED:
        if (!c->notify_retract)
            return;
        body = node_body("purge", ev, NULL);
        break;
    case PS_EV_DELETED:
        if (!c->notify_delete)
            return;
        body = node_body("delete", ev, ev->redirect);
        break;
    case PS_EV_CONFIGURED:
        if (!c->notify_config)
            return;
        body = config_body(ev);
        break;
    case PS_EV_SUBSCRIPTION:
        single = ev->to;
        body = subscription_body(ev);
        break;
    case PS_EV_APPROVAL_PENDING:
        single = ev->to;
        notif_type = PS_NOTIF_NORMAL; /* §8.6: a form for a person, not a headline */
        body = approval_body(ev);
        break;
    case PS_EV_LAST_ITEM:
        single = ev->to;
        body = item_body(x, ev, c->deliver_payloads);
        break;
    default:
        return;
    }
    if (body == NULL) {
        log_error("pubsub", "event on node '%s' not notified: out of memory", ev->node);
        return;
    }
    if (single != NULL) {
        send_one(x, single, notif_type, body, NULL, 0, NULL, false);
    } else {
        /* A subscriber whose queue this fan-out fills paces the publisher's
         * sessions (session.c, pace_producers): the publish was handled in
         * an earlier read, so its connection is known only by account. */
        struct fan f = {x, body, notif_type, ev,
                        ev->kind == PS_EV_PUBLISHED && pubsub_node_has_durable(ps, ev->node_id)};
        x->h->pace_account = ev->kind == PS_EV_PUBLISHED ? ev->publisher : NULL;
        pubsub_event_recipients(ps, ev, fan_one, &f);
        x->h->pace_account = NULL;
    }
    chunk_unref(body);
}
