/* strophe_pubsub: an XEP-0060 end-to-end check of Herald driven by a second,
 * independent client library (libstrophe), so that interoperability is not
 * only proven against slixmpp.
 *
 * Usage: strophe_pubsub PORT
 *
 * Connects alice/wonderland (publisher) and bob/builder (subscriber) to
 * 127.0.0.1:PORT (domain localhost, STARTTLS required, the server's
 * self-signed certificate trusted) in one xmpp_ctx, then, on
 * pubsub.localhost:
 *
 *   1. alice creates node 'strophe-test' with a configure form setting
 *      pubsub#max_items=5;
 *   2. bob (available, after initial presence) subscribes his bare JID and
 *      must get subscription='subscribed';
 *   3. alice publishes s0..s7, payload <reading xmlns='urn:example:meter'>N
 *      </reading>, one at a time, each acknowledged with
 *      <publish node><item id/></publish>;
 *   4. bob must receive exactly 8 headline notifications, in order, with
 *      the same ids and payloads;
 *   5. bob retrieves the node's items: exactly s3..s7 (max_items=5), oldest
 *      first, with their payloads;
 *   6. alice retracts s7 with notify='true'; bob must get <retract id='s7'/>;
 *   7. alice deletes the node; bob must get <delete node='strophe-test'/>;
 *   8. both disconnect cleanly.
 *
 * Exit status 0 only when every step was verified; each failure is reported
 * on stderr. Progress ("ok: ...") goes to stdout. Everything is bounded by a
 * hard timeout of 20 s. Set STROPHE_PUBSUB_DEBUG=1 for libstrophe's debug log
 * (every stanza sent and received) on stderr.
 *
 * Only libstrophe and libc are used: no code of Herald's own. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strophe.h>

#define HOST "127.0.0.1"
#define DOMAIN "localhost"
#define PUBSUB_JID "pubsub." DOMAIN
#define NODE "strophe-test"
#define NS_PUBSUB "http://jabber.org/protocol/pubsub"
#define NS_PUBSUB_OWNER NS_PUBSUB "#owner"
#define NS_PUBSUB_EVENT NS_PUBSUB "#event"
#define NS_NODE_CONFIG NS_PUBSUB "#node_config"
#define NS_DATA "jabber:x:data"
#define NS_METER "urn:example:meter"
#define N_PUBLISH 8
#define MAX_ITEMS 5
#define RETRACT_ID "s7"
#define TIMEOUT_MS 20000UL

enum phase {
    PH_CONNECT,    /* both clients logging in */
    PH_CREATE,     /* alice's create sent */
    PH_SUBSCRIBE,  /* bob's subscribe sent */
    PH_PUBLISH,    /* alice publishing, bob receiving */
    PH_ITEMS,      /* bob's items request sent */
    PH_RETRACT,    /* alice's retract sent */
    PH_DELETE,     /* alice's delete sent */
    PH_DISCONNECT, /* every step passed; closing both streams */
    PH_DONE        /* both streams closed cleanly */
};

static const char *const phase_names[] = {
    "connect", "create node", "subscribe", "publish/notify", "retrieve items",
    "retract", "delete node", "disconnect", "done"};

enum cstate { C_CONNECTING, C_UP, C_DOWN };

struct client {
    const char *name;
    const char *jid;      /* full JID requested */
    const char *bare;
    const char *password;
    xmpp_conn_t *conn;
    enum cstate state;
};

static struct {
    xmpp_ctx_t *ctx;
    struct client alice, bob;
    enum phase phase;
    int failed;
    int stopping;     /* shutdown begun (success or failure) */
    int published;    /* publish acks verified */
    int notified;     /* item notifications verified at bob */
    int retract_acked, retract_seen;
    int delete_acked, delete_seen;
} T;

/* ---- reporting ---------------------------------------------------------- */

static void begin_shutdown(void);

#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))

static void fail(const char *fmt, ...) PRINTF_LIKE(1, 2);
static void ok(const char *fmt, ...) PRINTF_LIKE(1, 2);
static void fail_stanza(xmpp_stanza_t *st, const char *fmt, ...) PRINTF_LIKE(2, 3);

static void fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "strophe_pubsub: FAIL [%s]: ", phase_names[T.phase]);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    T.failed = 1;
    begin_shutdown();
}

static void ok(const char *fmt, ...)
{
    va_list ap;
    fputs("ok: ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

/* Out of memory or a misuse of the library: nothing sensible to go on with. */
static void fatal(const char *what, int rc)
{
    fprintf(stderr, "strophe_pubsub: FAIL [%s]: %s failed (libstrophe status %d)\n",
            phase_names[T.phase], what, rc);
    exit(1);
}

static void need(int rc, const char *what)
{
    if (rc != XMPP_EOK)
        fatal(what, rc);
}

static void *need_ptr(void *p, const char *what)
{
    if (p == NULL)
        fatal(what, XMPP_EMEM);
    return p;
}

/* The stanza as XML text, for messages, or NULL; the caller frees it with
 * xmpp_free(). */
static char *dump(xmpp_stanza_t *st)
{
    char *buf = NULL;
    size_t len = 0;
    if (st == NULL || xmpp_stanza_to_text(st, &buf, &len) != XMPP_EOK)
        return NULL;
    return buf;
}

static void fail_stanza(xmpp_stanza_t *st, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char *text = dump(st);
    fail("%s; stanza: %s", msg, text ? text : "<unprintable>");
    if (text)
        xmpp_free(T.ctx, text);
}

static int streq(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static const char *show(const char *s)
{
    return s ? s : "(absent)";
}

/* ---- stanza building (xmpp_stanza_* only, never printf'd XML) ------------ */

static xmpp_stanza_t *elem(const char *name, const char *ns)
{
    xmpp_stanza_t *s = need_ptr(xmpp_stanza_new(T.ctx), "xmpp_stanza_new");
    need(xmpp_stanza_set_name(s, name), "xmpp_stanza_set_name");
    if (ns)
        need(xmpp_stanza_set_ns(s, ns), "xmpp_stanza_set_ns");
    return s;
}

static void attr(xmpp_stanza_t *s, const char *key, const char *value)
{
    need(xmpp_stanza_set_attribute(s, key, value), "xmpp_stanza_set_attribute");
}

/* Adds a new element child (ownership passes to the parent). */
static xmpp_stanza_t *child(xmpp_stanza_t *parent, const char *name, const char *ns)
{
    xmpp_stanza_t *c = elem(name, ns);
    need(xmpp_stanza_add_child_ex(parent, c, 0), "xmpp_stanza_add_child_ex");
    return c;
}

static void text_child(xmpp_stanza_t *parent, const char *text)
{
    xmpp_stanza_t *t = need_ptr(xmpp_stanza_new(T.ctx), "xmpp_stanza_new");
    need(xmpp_stanza_set_text(t, text), "xmpp_stanza_set_text");
    need(xmpp_stanza_add_child_ex(parent, t, 0), "xmpp_stanza_add_child_ex");
}

/* <field var='VAR' [type='TYPE']><value>VALUE</value></field> */
static void form_field(xmpp_stanza_t *x, const char *var, const char *type, const char *value)
{
    xmpp_stanza_t *f = child(x, "field", NULL);
    attr(f, "var", var);
    if (type)
        attr(f, "type", type);
    text_child(child(f, "value", NULL), value);
}

/* Sends <iq type to='pubsub.localhost' id>payload</iq> on c and routes the
 * answer (result or error) to h. Takes ownership of payload. */
static void send_iq(struct client *c, const char *type, const char *id, xmpp_stanza_t *payload,
                    xmpp_handler h)
{
    xmpp_stanza_t *iq = need_ptr(xmpp_iq_new(T.ctx, type, id), "xmpp_iq_new");
    attr(iq, "to", PUBSUB_JID);
    need(xmpp_stanza_add_child_ex(iq, payload, 0), "xmpp_stanza_add_child_ex");
    xmpp_id_handler_add(c->conn, h, id, c);
    xmpp_send(c->conn, iq);
    (void)xmpp_stanza_release(iq); /* returns whether freed, not a status */
}

/* ---- stanza checking ------------------------------------------------------ */

/* The only element child of st, or NULL (with *count set) if there are
 * none or several. Text children (whitespace) are skipped. */
static xmpp_stanza_t *only_element(xmpp_stanza_t *st, int *count)
{
    xmpp_stanza_t *found = NULL;
    *count = 0;
    for (xmpp_stanza_t *c = xmpp_stanza_get_children(st); c; c = xmpp_stanza_get_next(c)) {
        if (xmpp_stanza_is_tag(c)) {
            found = c;
            (*count)++;
        }
    }
    return *count == 1 ? found : NULL;
}

/* An iq answer from pubsub.localhost of type result; else fails. */
static int iq_result(xmpp_stanza_t *st, const char *what)
{
    const char *type = xmpp_stanza_get_type(st);
    if (!streq(xmpp_stanza_get_name(st), "iq") || !streq(type, "result")) {
        fail_stanza(st, "%s: expected <iq type='result'/>, got type='%s'", what, show(type));
        return 0;
    }
    if (!streq(xmpp_stanza_get_from(st), PUBSUB_JID)) {
        fail_stanza(st, "%s: result from '%s', expected '%s'", what,
                    show(xmpp_stanza_get_from(st)), PUBSUB_JID);
        return 0;
    }
    return 1;
}

/* item must carry exactly one payload: <reading xmlns='urn:example:meter'>k</reading>. */
static int check_payload(xmpp_stanza_t *item, int k, const char *where, xmpp_stanza_t *ctx_st)
{
    int n;
    char want[16];
    snprintf(want, sizeof(want), "%d", k);
    xmpp_stanza_t *p = only_element(item, &n);
    if (p == NULL) {
        fail_stanza(ctx_st, "%s: item s%d has %d payload elements, expected 1", where, k, n);
        return 0;
    }
    if (!streq(xmpp_stanza_get_name(p), "reading") || !streq(xmpp_stanza_get_ns(p), NS_METER)) {
        fail_stanza(ctx_st, "%s: item s%d payload is {%s}%s, expected {%s}reading", where, k,
                    show(xmpp_stanza_get_ns(p)), show(xmpp_stanza_get_name(p)), NS_METER);
        return 0;
    }
    char *text = xmpp_stanza_get_text(p);
    int good = streq(text, want);
    if (!good)
        fail_stanza(ctx_st, "%s: item s%d payload text '%s', expected '%s'", where, k,
                    show(text), want);
    if (text)
        xmpp_free(T.ctx, text);
    return good;
}

/* ---- the scenario ----------------------------------------------------------- */

static int on_create(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud);
static int on_subscribe(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud);
static int on_publish(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud);
static int on_items(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud);
static int on_retract(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud);
static int on_delete(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud);

static void send_create(void)
{
    /* <pubsub><create node/><configure><x type='submit'>FORM_TYPE,
     * pubsub#max_items=5</x></configure></pubsub> */
    xmpp_stanza_t *ps = elem("pubsub", NS_PUBSUB);
    attr(child(ps, "create", NULL), "node", NODE);
    xmpp_stanza_t *x = child(child(ps, "configure", NULL), "x", NS_DATA);
    attr(x, "type", "submit");
    form_field(x, "FORM_TYPE", "hidden", NS_NODE_CONFIG);
    char max[16];
    snprintf(max, sizeof(max), "%d", MAX_ITEMS);
    form_field(x, "pubsub#max_items", NULL, max);
    T.phase = PH_CREATE;
    send_iq(&T.alice, "set", "create-1", ps, on_create);
}

static void send_subscribe(void)
{
    xmpp_stanza_t *ps = elem("pubsub", NS_PUBSUB);
    xmpp_stanza_t *sub = child(ps, "subscribe", NULL);
    attr(sub, "node", NODE);
    attr(sub, "jid", T.bob.bare);
    T.phase = PH_SUBSCRIBE;
    send_iq(&T.bob, "set", "subscribe-1", ps, on_subscribe);
}

static void send_publish(int k)
{
    char id[16], iq_id[32], val[16];
    snprintf(id, sizeof(id), "s%d", k);
    snprintf(iq_id, sizeof(iq_id), "publish-%d", k);
    snprintf(val, sizeof(val), "%d", k);
    xmpp_stanza_t *ps = elem("pubsub", NS_PUBSUB);
    xmpp_stanza_t *pub = child(ps, "publish", NULL);
    attr(pub, "node", NODE);
    xmpp_stanza_t *item = child(pub, "item", NULL);
    attr(item, "id", id);
    text_child(child(item, "reading", NS_METER), val);
    send_iq(&T.alice, "set", iq_id, ps, on_publish);
}

static void send_items(void)
{
    xmpp_stanza_t *ps = elem("pubsub", NS_PUBSUB);
    attr(child(ps, "items", NULL), "node", NODE);
    T.phase = PH_ITEMS;
    send_iq(&T.bob, "get", "items-1", ps, on_items);
}

static void send_retract(void)
{
    xmpp_stanza_t *ps = elem("pubsub", NS_PUBSUB);
    xmpp_stanza_t *r = child(ps, "retract", NULL);
    attr(r, "node", NODE);
    attr(r, "notify", "true");
    attr(child(r, "item", NULL), "id", RETRACT_ID);
    T.phase = PH_RETRACT;
    send_iq(&T.alice, "set", "retract-1", ps, on_retract);
}

static void send_delete(void)
{
    xmpp_stanza_t *ps = elem("pubsub", NS_PUBSUB_OWNER);
    attr(child(ps, "delete", NULL), "node", NODE);
    T.phase = PH_DELETE;
    send_iq(&T.alice, "set", "delete-1", ps, on_delete);
}

/* Moves on once both sides of a step (the ack at alice, the event at bob)
 * have been verified. */
static void advance(void)
{
    if (T.stopping)
        return;
    switch (T.phase) {
    case PH_PUBLISH:
        if (T.published == N_PUBLISH && T.notified == N_PUBLISH) {
            ok("bob received all %d notifications in order with matching payloads", N_PUBLISH);
            send_items();
        }
        break;
    case PH_RETRACT:
        if (T.retract_acked && T.retract_seen) {
            ok("retract of %s acknowledged and notified to bob", RETRACT_ID);
            send_delete();
        }
        break;
    case PH_DELETE:
        if (T.delete_acked && T.delete_seen) {
            ok("node deletion acknowledged and notified to bob");
            T.phase = PH_DISCONNECT;
            begin_shutdown();
        }
        break;
    default:
        break;
    }
}

static int on_create(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
    if (T.stopping || !iq_result(st, "create node '" NODE "' with pubsub#max_items=5"))
        return 0;
    /* XEP-0060 §8.1.1: the result may be empty or echo <create node/>. */
    xmpp_stanza_t *ps = xmpp_stanza_get_child_by_name_and_ns(st, "pubsub", NS_PUBSUB);
    xmpp_stanza_t *cr = ps ? xmpp_stanza_get_child_by_name(ps, "create") : NULL;
    if (cr && !streq(xmpp_stanza_get_attribute(cr, "node"), NODE)) {
        fail_stanza(st, "create result names node '%s', expected '%s'",
                    show(xmpp_stanza_get_attribute(cr, "node")), NODE);
        return 0;
    }
    ok("alice created node '%s' (max_items=%d)", NODE, MAX_ITEMS);
    send_subscribe();
    return 0;
}

static int on_subscribe(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
    if (T.stopping || !iq_result(st, "subscribe"))
        return 0;
    xmpp_stanza_t *ps = xmpp_stanza_get_child_by_name_and_ns(st, "pubsub", NS_PUBSUB);
    xmpp_stanza_t *sub = ps ? xmpp_stanza_get_child_by_name(ps, "subscription") : NULL;
    if (sub == NULL) {
        fail_stanza(st, "subscribe result without <pubsub><subscription/></pubsub>");
        return 0;
    }
    const char *state = xmpp_stanza_get_attribute(sub, "subscription");
    const char *node = xmpp_stanza_get_attribute(sub, "node");
    const char *jid = xmpp_stanza_get_attribute(sub, "jid");
    if (!streq(state, "subscribed")) {
        fail_stanza(st, "subscription='%s', expected 'subscribed'", show(state));
        return 0;
    }
    if (node && !streq(node, NODE)) {
        fail_stanza(st, "subscription for node '%s', expected '%s'", node, NODE);
        return 0;
    }
    if (jid) {
        char *bare = xmpp_jid_bare(T.ctx, jid);
        int same = streq(bare, T.bob.bare);
        if (bare)
            xmpp_free(T.ctx, bare);
        if (!same) {
            fail_stanza(st, "subscription jid '%s', expected '%s'", jid, T.bob.bare);
            return 0;
        }
    }
    ok("bob subscribed to '%s' (subscription='subscribed')", NODE);
    T.phase = PH_PUBLISH;
    send_publish(0);
    return 0;
}

static int on_publish(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
    char what[64], want[16];
    int k = T.published;
    snprintf(what, sizeof(what), "publish of s%d", k);
    snprintf(want, sizeof(want), "s%d", k);
    if (T.stopping || !iq_result(st, what))
        return 0;
    xmpp_stanza_t *ps = xmpp_stanza_get_child_by_name_and_ns(st, "pubsub", NS_PUBSUB);
    xmpp_stanza_t *pub = ps ? xmpp_stanza_get_child_by_name(ps, "publish") : NULL;
    xmpp_stanza_t *item = pub ? xmpp_stanza_get_child_by_name(pub, "item") : NULL;
    if (item == NULL) {
        fail_stanza(st, "%s: result without <pubsub><publish><item/></publish></pubsub>", what);
        return 0;
    }
    if (!streq(xmpp_stanza_get_attribute(pub, "node"), NODE)) {
        fail_stanza(st, "%s: result names node '%s', expected '%s'", what,
                    show(xmpp_stanza_get_attribute(pub, "node")), NODE);
        return 0;
    }
    if (!streq(xmpp_stanza_get_id(item), want)) {
        fail_stanza(st, "%s: result item id '%s', expected '%s'", what,
                    show(xmpp_stanza_get_id(item)), want);
        return 0;
    }
    T.published++;
    ok("alice's publish of %s acknowledged", want);
    if (T.published < N_PUBLISH)
        send_publish(T.published);
    else
        advance();
    return 0;
}

static int on_items(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
    if (T.stopping || !iq_result(st, "items retrieval"))
        return 0;
    xmpp_stanza_t *ps = xmpp_stanza_get_child_by_name_and_ns(st, "pubsub", NS_PUBSUB);
    xmpp_stanza_t *items = ps ? xmpp_stanza_get_child_by_name(ps, "items") : NULL;
    if (items == NULL) {
        fail_stanza(st, "items result without <pubsub><items/></pubsub>");
        return 0;
    }
    if (!streq(xmpp_stanza_get_attribute(items, "node"), NODE)) {
        fail_stanza(st, "items result names node '%s', expected '%s'",
                    show(xmpp_stanza_get_attribute(items, "node")), NODE);
        return 0;
    }
    int n = 0;
    const int first = N_PUBLISH - MAX_ITEMS;
    for (xmpp_stanza_t *c = xmpp_stanza_get_children(items); c; c = xmpp_stanza_get_next(c)) {
        if (!xmpp_stanza_is_tag(c))
            continue;
        if (!streq(xmpp_stanza_get_name(c), "item")) {
            fail_stanza(st, "unexpected <%s/> among the items", show(xmpp_stanza_get_name(c)));
            return 0;
        }
        int k = first + n;
        char want[16];
        snprintf(want, sizeof(want), "s%d", k);
        if (n >= MAX_ITEMS) {
            fail_stanza(st, "more than %d items returned although pubsub#max_items=%d",
                        MAX_ITEMS, MAX_ITEMS);
            return 0;
        }
        if (!streq(xmpp_stanza_get_id(c), want)) {
            fail_stanza(st, "item #%d has id '%s', expected '%s' (the %d newest, oldest first)",
                        n, show(xmpp_stanza_get_id(c)), want, MAX_ITEMS);
            return 0;
        }
        if (!check_payload(c, k, "items retrieval", st))
            return 0;
        n++;
    }
    if (n != MAX_ITEMS) {
        fail_stanza(st, "%d items returned, expected exactly %d (s%d..s%d)", n, MAX_ITEMS, first,
                    N_PUBLISH - 1);
        return 0;
    }
    ok("bob retrieved exactly s%d..s%d, oldest first", first, N_PUBLISH - 1);
    send_retract();
    return 0;
}

static int on_retract(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
    if (T.stopping || !iq_result(st, "retract of " RETRACT_ID))
        return 0;
    T.retract_acked = 1;
    advance();
    return 0;
}

static int on_delete(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
    if (T.stopping || !iq_result(st, "delete of node '" NODE "'"))
        return 0;
    T.delete_acked = 1;
    advance();
    return 0;
}

/* <item id='sK'>payload</item> inside an items event, at bob. */
static void event_item(xmpp_stanza_t *item, xmpp_stanza_t *msg)
{
    int k = T.notified;
    char want[16];
    if (T.phase != PH_PUBLISH || k >= N_PUBLISH) {
        fail_stanza(msg, "unexpected item notification (already had %d of %d)", T.notified,
                    N_PUBLISH);
        return;
    }
    snprintf(want, sizeof(want), "s%d", k);
    if (!streq(xmpp_stanza_get_id(item), want)) {
        fail_stanza(msg, "notification #%d carries item id '%s', expected '%s'", k,
                    show(xmpp_stanza_get_id(item)), want);
        return;
    }
    const char *publisher = xmpp_stanza_get_attribute(item, "publisher");
    if (publisher) {
        char *bare = xmpp_jid_bare(T.ctx, publisher);
        int same = streq(bare, T.alice.bare);
        if (bare)
            xmpp_free(T.ctx, bare);
        if (!same) {
            fail_stanza(msg, "notification of %s names publisher '%s', expected %s", want,
                        publisher, T.alice.bare);
            return;
        }
    }
    if (!check_payload(item, k, "notification", msg))
        return;
    T.notified++;
    ok("bob notified of %s", want);
    advance();
}

static int on_message(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
    struct client *c = ud;
    if (T.stopping)
        return 1;
    const char *type = xmpp_stanza_get_type(st);
    if (c != &T.bob) {
        fail_stanza(st, "%s received an unexpected message", c->name);
        return 1;
    }
    if (streq(type, "error")) {
        fail_stanza(st, "bob received a message error");
        return 1;
    }
    xmpp_stanza_t *ev = xmpp_stanza_get_child_by_name_and_ns(st, "event", NS_PUBSUB_EVENT);
    if (ev == NULL) {
        fail_stanza(st, "bob received a message without a pubsub <event/>");
        return 1;
    }
    if (!streq(xmpp_stanza_get_from(st), PUBSUB_JID)) {
        fail_stanza(st, "event from '%s', expected '%s'", show(xmpp_stanza_get_from(st)),
                    PUBSUB_JID);
        return 1;
    }
    if (!streq(type, "headline")) {
        fail_stanza(st, "event message of type '%s', expected 'headline'", show(type));
        return 1;
    }
    int n;
    xmpp_stanza_t *what = only_element(ev, &n);
    if (what == NULL) {
        fail_stanza(st, "<event/> has %d element children, expected 1", n);
        return 1;
    }
    const char *name = xmpp_stanza_get_name(what);
    const char *node = xmpp_stanza_get_attribute(what, "node");
    if (!streq(node, NODE)) {
        fail_stanza(st, "<event><%s/> names node '%s', expected '%s'", show(name), show(node),
                    NODE);
        return 1;
    }
    if (streq(name, "items")) {
        int seen = 0;
        for (xmpp_stanza_t *i = xmpp_stanza_get_children(what); i && !T.stopping;
             i = xmpp_stanza_get_next(i)) {
            if (!xmpp_stanza_is_tag(i))
                continue;
            seen++;
            const char *iname = xmpp_stanza_get_name(i);
            if (streq(iname, "item")) {
                event_item(i, st);
            } else if (streq(iname, "retract")) {
                if (T.phase != PH_RETRACT || T.retract_seen) {
                    fail_stanza(st, "unexpected retract notification");
                } else if (!streq(xmpp_stanza_get_id(i), RETRACT_ID)) {
                    fail_stanza(st, "retract notification for '%s', expected '%s'",
                                show(xmpp_stanza_get_id(i)), RETRACT_ID);
                } else {
                    T.retract_seen = 1;
                    advance();
                }
            } else {
                fail_stanza(st, "unexpected <%s/> in an items event", show(iname));
            }
        }
        if (seen == 0 && !T.stopping)
            fail_stanza(st, "items event without <item/> or <retract/>");
    } else if (streq(name, "delete")) {
        if (T.phase != PH_DELETE || T.delete_seen) {
            fail_stanza(st, "unexpected delete notification");
        } else {
            T.delete_seen = 1;
            advance();
        }
    } else {
        fail_stanza(st, "unexpected <event><%s/></event>", show(name));
    }
    return 1;
}

/* ---- connections ------------------------------------------------------------- */

static int all_down(void)
{
    return T.alice.state == C_DOWN && T.bob.state == C_DOWN;
}

static void begin_shutdown(void)
{
    if (T.stopping)
        return;
    T.stopping = 1;
    struct client *cs[] = {&T.alice, &T.bob};
    for (size_t i = 0; i < 2; i++)
        if (cs[i]->state != C_DOWN)
            xmpp_disconnect(cs[i]->conn);
    if (all_down())
        xmpp_stop(T.ctx);
}

static void on_conn(xmpp_conn_t *conn, xmpp_conn_event_t event, int error,
                    xmpp_stream_error_t *stream_error, void *ud)
{
    struct client *c = ud;
    if (event == XMPP_CONN_CONNECT) {
        c->state = C_UP;
        if (T.stopping) {
            xmpp_disconnect(conn);
            return;
        }
        if (!xmpp_conn_is_secured(conn)) {
            fail("%s's stream is not TLS-protected", c->name);
            return;
        }
        ok("%s logged in as %s", c->name, show(xmpp_conn_get_bound_jid(conn)));
        if (c == &T.bob) {
            /* Available, so that headline notifications to the bare JID reach
             * this resource (RFC 6121 §8.5.2.1.1). */
            xmpp_stanza_t *pres = need_ptr(xmpp_presence_new(T.ctx), "xmpp_presence_new");
            xmpp_send(conn, pres);
            (void)xmpp_stanza_release(pres);
        }
        if (T.alice.state == C_UP && T.bob.state == C_UP && T.phase == PH_CONNECT)
            send_create();
        return;
    }
    /* XMPP_CONN_DISCONNECT or XMPP_CONN_FAIL */
    enum cstate was = c->state;
    c->state = C_DOWN;
    if (T.phase == PH_DISCONNECT && !T.failed) {
        if (error != 0 || stream_error != NULL) {
            fprintf(stderr,
                    "strophe_pubsub: FAIL [disconnect]: %s's stream did not close cleanly "
                    "(socket error %d%s%s)\n",
                    c->name, error, stream_error ? ", stream error: " : "",
                    stream_error ? show(stream_error->text) : "");
            T.failed = 1;
        } else {
            ok("%s disconnected cleanly", c->name);
        }
    } else if (!T.stopping) {
        char *se = stream_error ? dump(stream_error->stanza) : NULL;
        fail("%s %s (libstrophe event %s, socket error %d%s%s)", c->name,
             was == C_CONNECTING ? "could not connect/log in" : "was disconnected unexpectedly",
             event == XMPP_CONN_FAIL ? "FAIL" : "DISCONNECT", error,
             se ? ", stream error: " : "", se ? se : "");
        if (se)
            xmpp_free(T.ctx, se);
    }
    if (all_down()) {
        if (T.phase == PH_DISCONNECT && !T.failed)
            T.phase = PH_DONE;
        xmpp_stop(T.ctx);
    }
}

static int on_timeout(xmpp_ctx_t *ctx, void *ud)
{
    if (T.phase != PH_DONE) {
        fprintf(stderr,
                "strophe_pubsub: FAIL [%s]: timed out after %lu ms (alice %s, bob %s; "
                "%d/%d publishes acknowledged, %d/%d notifications, retract ack %d/event %d, "
                "delete ack %d/event %d)\n",
                phase_names[T.phase], TIMEOUT_MS,
                T.alice.state == C_UP ? "up" : T.alice.state == C_DOWN ? "down" : "connecting",
                T.bob.state == C_UP ? "up" : T.bob.state == C_DOWN ? "down" : "connecting",
                T.published, N_PUBLISH, T.notified, N_PUBLISH, T.retract_acked, T.retract_seen,
                T.delete_acked, T.delete_seen);
        T.failed = 1;
    }
    T.stopping = 1;
    xmpp_stop(ctx);
    return 0;
}

static void setup_client(struct client *c, const char *name, const char *jid, const char *bare,
                         const char *password)
{
    c->name = name;
    c->jid = jid;
    c->bare = bare;
    c->password = password;
    c->state = C_CONNECTING;
    c->conn = need_ptr(xmpp_conn_new(T.ctx), "xmpp_conn_new");
    need(xmpp_conn_set_flags(c->conn, XMPP_CONN_FLAG_MANDATORY_TLS | XMPP_CONN_FLAG_TRUST_TLS),
         "xmpp_conn_set_flags");
    xmpp_conn_set_jid(c->conn, jid);
    xmpp_conn_set_pass(c->conn, password);
    if (!streq(xmpp_conn_get_jid(c->conn), jid) || !streq(xmpp_conn_get_pass(c->conn), password))
        fatal("xmpp_conn_set_jid/xmpp_conn_set_pass", XMPP_EMEM);
    xmpp_handler_add(c->conn, on_message, NULL, "message", NULL, c);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    char *end = NULL;
    long port = strtol(argv[1], &end, 10);
    if (end == argv[1] || *end != '\0' || port < 1 || port > 65535) {
        fprintf(stderr, "strophe_pubsub: invalid port '%s'\n", argv[1]);
        return 2;
    }
    if (setvbuf(stdout, NULL, _IOLBF, 0) != 0) {
        fprintf(stderr, "strophe_pubsub: setvbuf failed\n");
        return 2;
    }

    const char *dbg = getenv("STROPHE_PUBSUB_DEBUG");
    int debug = dbg != NULL && *dbg != '\0' && strcmp(dbg, "0") != 0;

    xmpp_initialize();
    xmpp_log_t *log = xmpp_get_default_logger(debug ? XMPP_LEVEL_DEBUG : XMPP_LEVEL_WARN);
    T.ctx = xmpp_ctx_new(NULL, log);
    if (T.ctx == NULL) {
        fprintf(stderr, "strophe_pubsub: xmpp_ctx_new failed\n");
        xmpp_shutdown();
        return 1;
    }
    T.phase = PH_CONNECT;

    setup_client(&T.alice, "alice", "alice@" DOMAIN "/strophe", "alice@" DOMAIN, "wonderland");
    setup_client(&T.bob, "bob", "bob@" DOMAIN "/strophe", "bob@" DOMAIN, "builder");

    /* A context-wide timer: per-connection timed handlers only run while
     * their connection is up, and this one must also bound connecting. */
    xmpp_global_timed_handler_add(T.ctx, on_timeout, TIMEOUT_MS, NULL);

    int rc = xmpp_connect_client(T.alice.conn, HOST, (unsigned short)port, on_conn, &T.alice);
    if (rc != XMPP_EOK) {
        fprintf(stderr, "strophe_pubsub: FAIL [connect]: xmpp_connect_client(alice) = %d\n", rc);
        T.failed = 1;
        T.alice.state = C_DOWN;
    }
    rc = xmpp_connect_client(T.bob.conn, HOST, (unsigned short)port, on_conn, &T.bob);
    if (rc != XMPP_EOK) {
        fprintf(stderr, "strophe_pubsub: FAIL [connect]: xmpp_connect_client(bob) = %d\n", rc);
        T.failed = 1;
        T.bob.state = C_DOWN;
    }
    if (!T.failed)
        xmpp_run(T.ctx);

    T.stopping = 1; /* releasing a live connection below calls on_conn */
    xmpp_global_timed_handler_delete(T.ctx, on_timeout);
    (void)xmpp_conn_release(T.alice.conn);
    (void)xmpp_conn_release(T.bob.conn);
    xmpp_ctx_free(T.ctx);
    xmpp_shutdown();

    if (T.failed || T.phase != PH_DONE) {
        fprintf(stderr, "strophe_pubsub: FAILED (stopped in phase '%s')\n", phase_names[T.phase]);
        return 1;
    }
    printf("PASS: libstrophe pubsub scenario verified\n");
    return 0;
}
