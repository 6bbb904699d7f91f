/* presence.c - RFC 6121 §3-4 and XEP-0160 between local accounts:
 * subscription state machine, presence broadcast and probes, directed
 * presence, unavailable on logout or broken connections, offline messages.
 *
 * A session keeps its last available presence serialized from just after
 * "<presence" (so every recipient gets "<presence to='...'" in front of the
 * same shared bytes). Rosters are read from LMDB through the batch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch.h"
#include "cluster.h"
#include "conn.h"
#include "errors.h"
#include "herald.h"
#include "im.h"
#include "jid.h"
#include "log.h"
#include "outq.h"
#include "pep.h"
#include "pubsub_xmpp.h"
#include "router.h"
#include "session.h"
#include "store.h"
#include "xml.h"

#define PRESENCE_TAG_LEN 9 /* strlen("<presence") */
#define MAX_DIRECTED 64

/* "<presence to='T'" + tail: one recipient of a session's presence. With
 * offer, in cluster mode, the other instances get it too, for their
 * sessions of T (docs/cluster.md, "Presence and rosters"). */
static void send_tail_x(struct herald *h, const char *to, struct chunk *tail, enum route_mode mode,
                        bool offer)
{
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "<presence to='");
    buf_xml_attr(&b, to, strlen(to));
    buf_puts(&b, "'");
    struct chunk *head = buf_ok(&b) ? chunk_new(b.data, b.len) : NULL;
    buf_free(&b);
    if (head == NULL)
        return;
    struct chunk *parts[2] = {head, tail};
    router_send(h, to, parts, 2, mode);
    if (offer)
        cluster_offer(h, parts, 2);
    chunk_unref(head);
}

static void send_tail(struct herald *h, const char *to, struct chunk *tail, enum route_mode mode)
{
    send_tail_x(h, to, tail, mode, false);
}

/* What only the instance that holds the sender's session sends (its
 * broadcast, directed presence, its resources' presence): offered to the
 * other instances too. */
static void send_tail_offer(struct herald *h, const char *to, struct chunk *tail,
                            enum route_mode mode)
{
    send_tail_x(h, to, tail, mode, true);
}

/* <presence from='F' to='T' type='X'/> (offered to the other instances too
 * with offer) */
static void send_simple_x(struct herald *h, const char *from, const char *to, const char *type,
                          enum route_mode mode, bool offer)
{
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "<presence from='");
    buf_xml_attr(&b, from, strlen(from));
    buf_puts(&b, "' to='");
    buf_xml_attr(&b, to, strlen(to));
    buf_printf(&b, "' type='%s'/>", type);
    struct chunk *ch = buf_ok(&b) ? chunk_new(b.data, b.len) : NULL;
    buf_free(&b);
    if (ch) {
        router_send(h, to, &ch, 1, mode);
        if (offer)
            cluster_offer(h, &ch, 1);
        chunk_unref(ch);
    }
}

static void send_simple(struct herald *h, const char *from, const char *to, const char *type,
                        enum route_mode mode)
{
    send_simple_x(h, from, to, type, mode, false);
}

/* A presence serialized without its 'to' and its first PRESENCE_TAG_LEN
 * bytes: each recipient gets its own "<presence to='...'" in front. */
static struct chunk *tail_of(struct xnode *st)
{
    xml_del_attr(st, "to");
    struct buf b;
    buf_init(&b, 0);
    xml_serialize(&b, st, NS_CLIENT);
    struct chunk *ch = (buf_ok(&b) && b.len > PRESENCE_TAG_LEN)
                           ? chunk_new(b.data + PRESENCE_TAG_LEN, b.len - PRESENCE_TAG_LEN)
                           : NULL;
    buf_free(&b);
    return ch;
}

/* Every available presence of account `bare` to `to` (probe answers, §4.3). */
static void send_account_presence(struct herald *h, const char *bare, const char *to,
                                  enum route_mode mode)
{
    struct account *acct = session_account(h, bare);
    for (struct session *s = acct ? acct->sessions : NULL; s; s = s->next_res)
        if (s->available && s->presence)
            send_tail_offer(h, to, s->presence, mode);
}

/* The unavailable presence of every available resource of `bare` to `to`. */
static void send_account_unavailable(struct herald *h, const char *bare, const char *to)
{
    struct account *acct = session_account(h, bare);
    for (struct session *s = acct ? acct->sessions : NULL; s; s = s->next_res)
        if (s->available)
            send_simple_x(h, s->full, to, "unavailable", ROUTE_PRESENCE, true);
}

static bool is_local_account(struct herald *h, const char *bare)
{
    const char *at = strchr(bare, '@');
    if (at == NULL || strcmp(at + 1, h->cfg->domain) != 0)
        return false;
    return session_account(h, bare) != NULL || store_user_exists(h->store, bare) == 1;
}

/* A contact on another server (or a component): its side of a
 * subscription is kept there, and stanzas go to it through router_send. */
static bool is_remote(struct herald *h, const char *bare)
{
    const char *at = strchr(bare, '@');
    return strcmp(at ? at + 1 : bare, h->cfg->domain) != 0;
}

/* ---- subscriptions (§3) ---- */

/* Loads, lets `change` edit, saves if it returns true. Returns 0 or error. */
static int update_item(struct herald *h, struct store_txn *t, const char *owner, const char *contact,
                       bool (*change)(struct ritem *it))
{
    struct ritem *it = malloc(sizeof(*it));
    int rc = it ? roster_load(t, owner, contact, it) : HERALD_ENOMEM;
    if (rc == 0 && change(it))
        rc = roster_save(h, t, owner, it);
    free(it);
    return rc;
}

static bool set_ask(struct ritem *it)
{
    if ((it->sub & ROSTER_TO) || it->ask)
        return false;
    it->ask = true;
    it->in_roster = true;
    return true;
}

static bool got_subscribed(struct ritem *it)
{
    if (!it->ask)
        return false; /* §3.1.6: no request pending: ignore */
    it->ask = false;
    it->sub |= ROSTER_TO;
    it->in_roster = true;
    return true;
}

static bool lose_to(struct ritem *it)
{
    if (!(it->sub & ROSTER_TO) && !it->ask)
        return false;
    it->sub &= (uint8_t)~ROSTER_TO;
    it->ask = false;
    return true;
}

static bool lose_from(struct ritem *it)
{
    if (!(it->sub & ROSTER_FROM) && !it->pending_in && !it->approved)
        return false;
    it->sub &= (uint8_t)~ROSTER_FROM;
    it->pending_in = it->approved = false;
    return true;
}

/* The user side of a "subscribed" from contact (§3.1.6). */
static int subscribed_at_user(struct herald *h, struct store_txn *t, const char *user,
                              const char *contact)
{
    struct ritem *it = malloc(sizeof(*it));
    int rc = it ? roster_load(t, user, contact, it) : HERALD_ENOMEM;
    if (rc == 0 && got_subscribed(it)) {
        rc = roster_save(h, t, user, it);
        if (rc == 0) {
            send_simple(h, contact, user, "subscribed", ROUTE_PRESENCE);
            send_account_presence(h, contact, user, ROUTE_PRESENCE);
        }
    }
    free(it);
    return rc;
}

/* The user side of an "unsubscribed" from contact (§3.2.3). The contact's
 * resources say unavailable only if the user could see them (§3.2.2). */
static int unsubscribed_at_user(struct herald *h, struct store_txn *t, const char *user,
                                const char *contact, bool was_visible)
{
    struct ritem *it = malloc(sizeof(*it));
    int rc = it ? roster_load(t, user, contact, it) : HERALD_ENOMEM;
    if (rc == 0 && lose_to(it)) {
        rc = roster_save(h, t, user, it);
        if (rc == 0) {
            send_simple(h, contact, user, "unsubscribed", ROUTE_PRESENCE);
            if (was_visible)
                send_account_unavailable(h, contact, user);
        }
    }
    free(it);
    return rc;
}

/* The request as the contact will see it: the user's stanza (status, nick,
 * id kept) from the user's bare JID to the contact's (§3.1.2), or a plain one. */
static size_t request_bytes(struct xnode *st, const char *user, const char *contact, char *out,
                            size_t cap)
{
    struct buf b;
    size_t n = 0;
    if (st == NULL)
        return 0;
    struct arena a;
    arena_init(&a);
    buf_init(&b, cap);
    if (xml_set_attr(&a, st, "from", user) == 0 && xml_set_attr(&a, st, "to", contact) == 0) {
        xml_serialize(&b, st, NS_CLIENT);
        if (buf_ok(&b) && b.len <= cap) {
            memcpy(out, b.data, b.len);
            n = b.len;
        }
    }
    buf_free(&b);
    arena_free(&a);
    return n;
}

static void deliver_request(struct herald *h, const struct ritem *c, const char *user,
                            const char *to, enum route_mode mode)
{
    if (c->request_len == 0) {
        send_simple(h, user, to, "subscribe", mode);
        return;
    }
    struct chunk *ch = chunk_new(c->request, c->request_len);
    if (ch) {
        router_send(h, to, &ch, 1, mode);
        chunk_unref(ch);
    }
}

static int contact_side_subscribe(struct herald *h, struct store_txn *t, const char *user,
                                  const char *contact, struct xnode *st);

/* The local contact approved user's subscription: a local user's roster
 * changes; a remote user's server is told, with the contact's presence
 * (§3.1.5). */
static int approved(struct herald *h, struct store_txn *t, const char *user, const char *contact)
{
    if (!is_remote(h, user))
        return subscribed_at_user(h, t, user, contact);
    send_simple(h, contact, user, "subscribed", ROUTE_PRESENCE);
    send_account_presence(h, contact, user, ROUTE_PRESENCE);
    return 0;
}

static int do_subscribe(struct herald *h, struct store_txn *t, const char *user, const char *contact,
                        struct xnode *st)
{
    int rc = update_item(h, t, user, contact, set_ask); /* §3.1.2 */
    if (rc != 0)
        return rc;
    if (is_remote(h, contact)) {
        /* §3.1.2: the request goes to the contact's server, from our bare JID. */
        char req[4096];
        size_t n = request_bytes(st, user, contact, req, sizeof(req));
        struct chunk *ch = n ? chunk_new(req, n) : NULL;
        if (ch) {
            router_send(h, contact, &ch, 1, ROUTE_PRESENCE);
            chunk_unref(ch);
        } else {
            send_simple(h, user, contact, "subscribe", ROUTE_PRESENCE);
        }
        return 0;
    }
    if (!is_local_account(h, contact)) /* §3.1.3: no such contact */
        return unsubscribed_at_user(h, t, user, contact, false);
    return contact_side_subscribe(h, t, user, contact, st);
}

/* The contact's side of user's request (§3.1.3): an automatic answer when
 * it approved already, else a pending request delivered to it. */
static int contact_side_subscribe(struct herald *h, struct store_txn *t, const char *user,
                                  const char *contact, struct xnode *st)
{
    int rc = 0;
    struct ritem *c = malloc(sizeof(*c));
    if (c == NULL || (rc = roster_load(t, contact, user, c)) != 0)
        goto done;
    if (c->sub & ROSTER_FROM) {
        rc = approved(h, t, user, contact); /* already approved: auto-reply */
    } else if (c->approved) {
        c->sub |= ROSTER_FROM; /* §3.4: pre-approved */
        c->approved = false;
        if ((rc = roster_save(h, t, contact, c)) == 0)
            rc = approved(h, t, user, contact);
    } else {
        if (!c->pending_in) {
            c->pending_in = true; /* kept until answered, even while offline (§3.1.3) */
            c->request_len = request_bytes(st, user, contact, c->request, sizeof(c->request));
            rc = roster_save(h, t, contact, c);
        }
        if (rc == 0)
            deliver_request(h, c, user, contact, ROUTE_PRESENCE);
    }
done:
    if (c == NULL)
        rc = HERALD_ENOMEM;
    free(c);
    return rc;
}

static int do_subscribed(struct herald *h, struct store_txn *t, const char *user, const char *contact)
{
    struct ritem *u = malloc(sizeof(*u));
    int rc = u ? roster_load(t, user, contact, u) : HERALD_ENOMEM;
    if (rc != 0)
        goto done;
    if (u->pending_in) {
        u->pending_in = false; /* §3.1.5: approve */
        u->sub |= ROSTER_FROM;
        u->in_roster = true;
        if ((rc = roster_save(h, t, user, u)) == 0 && is_remote(h, contact))
            rc = approved(h, t, contact, user);
        else if (rc == 0 && is_local_account(h, contact))
            rc = subscribed_at_user(h, t, contact, user);
    } else if (!(u->sub & ROSTER_FROM) && !u->approved) {
        u->approved = true; /* §3.4: pre-approval */
        u->in_roster = true;
        rc = roster_save(h, t, user, u);
    }
done:
    free(u);
    return rc;
}

static int contact_side_unsubscribe(struct herald *h, struct store_txn *t, const char *user,
                                    const char *contact);

static int do_unsubscribe(struct herald *h, struct store_txn *t, const char *user, const char *contact)
{
    int rc = update_item(h, t, user, contact, lose_to); /* §3.3.2 */
    if (rc == 0 && is_remote(h, contact))
        send_simple(h, user, contact, "unsubscribe", ROUTE_PRESENCE);
    if (rc != 0 || !is_local_account(h, contact))
        return rc;
    return contact_side_unsubscribe(h, t, user, contact);
}

/* The contact no longer shows its presence to user (§3.3.3). */
static int contact_side_unsubscribe(struct herald *h, struct store_txn *t, const char *user,
                                    const char *contact)
{
    int rc;
    struct ritem *c = malloc(sizeof(*c));
    if (c == NULL)
        return HERALD_ENOMEM;
    if ((rc = roster_load(t, contact, user, c)) == 0 && lose_from(c)) {
        if ((rc = roster_save(h, t, contact, c)) == 0) {
            send_simple(h, user, contact, "unsubscribe", ROUTE_PRESENCE);
            send_account_unavailable(h, contact, user); /* §3.3.3 */
        }
    }
    free(c);
    return rc;
}

static int do_unsubscribed(struct herald *h, struct store_txn *t, const char *user, const char *contact)
{
    struct ritem *u = malloc(sizeof(*u));
    int rc = u ? roster_load(t, user, contact, u) : HERALD_ENOMEM;
    bool was_visible = rc == 0 && (u->sub & ROSTER_FROM);
    if (rc == 0 && lose_from(u)) /* §3.2.2 */
        rc = roster_save(h, t, user, u);
    free(u);
    if (rc == 0 && is_remote(h, contact)) {
        send_simple(h, user, contact, "unsubscribed", ROUTE_PRESENCE);
        if (was_visible)
            send_account_unavailable(h, user, contact);
    } else if (rc == 0 && is_local_account(h, contact))
        rc = unsubscribed_at_user(h, t, contact, user, was_visible);
    return rc;
}

void presence_subscription(struct herald *h, const char *user, const char *contact, const char *type,
                           struct xnode *st)
{
    int rc;
    struct store_txn *t = batch_op_begin(h->batch, &rc);
    if (t == NULL) {
        log_error("im", "%s -> %s %s not stored: %s", user, contact, type, herald_strerror(rc));
        return;
    }
    if (strcmp(type, "subscribe") == 0)
        rc = do_subscribe(h, t, user, contact, st);
    else if (strcmp(type, "subscribed") == 0)
        rc = do_subscribed(h, t, user, contact);
    else if (strcmp(type, "unsubscribe") == 0)
        rc = do_unsubscribe(h, t, user, contact);
    else
        rc = do_unsubscribed(h, t, user, contact);
    if ((rc = batch_op_end(h->batch, t, rc)) != 0)
        log_error("im", "%s -> %s %s not stored: %s", user, contact, type, herald_strerror(rc));
}

/* A subscription stanza from a remote user to a local account (§3,
 * inbound): the local side of the state machine. */
void presence_inbound_subscription(struct herald *h, const char *remote, const char *local,
                                   const char *type, struct xnode *st)
{
    int rc;
    struct store_txn *t = batch_op_begin(h->batch, &rc);
    if (t == NULL) {
        log_error("im", "%s -> %s %s not stored: %s", remote, local, type, herald_strerror(rc));
        return;
    }
    if (strcmp(type, "subscribe") == 0)
        rc = contact_side_subscribe(h, t, remote, local, st);
    else if (strcmp(type, "subscribed") == 0)
        rc = subscribed_at_user(h, t, local, remote);
    else if (strcmp(type, "unsubscribe") == 0)
        rc = contact_side_unsubscribe(h, t, remote, local);
    else
        rc = unsubscribed_at_user(h, t, local, remote, false);
    if ((rc = batch_op_end(h->batch, t, rc)) != 0)
        log_error("im", "%s -> %s %s not stored: %s", remote, local, type, herald_strerror(rc));
}

/* ---- presence broadcast (§4) ---- */

struct bcast {
    struct herald *h;
    struct chunk *tail;
    const char *from_full;
};

static void to_contact(void *ud, const char *contact)
{
    struct bcast *b = ud;
    if (!blocking_presence_ok(b->h, b->from_full, contact)) /* XEP-0191 §3.3 */
        return;
    send_tail_offer(b->h, contact, b->tail, ROUTE_PRESENCE);
}

/* tail to every contact with a subscription from us, and to every available
 * resource of our own account, the sender included (§4.2.2, §4.4.2). */
static void broadcast(struct session *s, struct chunk *tail)
{
    struct bcast b = {s->h, tail, s->full};
    roster_each_sub(s->h, s->bare, ROSTER_FROM, to_contact, &b);
    struct account *acct = session_account(s->h, s->bare);
    for (struct session *o = acct ? acct->sessions : NULL; o; o = o->next_res)
        if (o->available)
            send_tail(s->h, o->full, tail, ROUTE_FULL);
    if (s->h->cluster) { /* our resources on other instances */
        struct chunk *head = chunk_new("<presence to='", 14);
        struct buf b2;
        buf_init(&b2, 0);
        buf_xml_attr(&b2, s->bare, strlen(s->bare));
        buf_putc(&b2, '\'');
        struct chunk *mid = buf_ok(&b2) ? chunk_new(b2.data, b2.len) : NULL;
        buf_free(&b2);
        if (head && mid) {
            struct chunk *parts[3] = {head, mid, tail};
            cluster_offer(s->h, parts, 3);
        }
        chunk_unref(head);
        chunk_unref(mid);
    }
}

static void probe_contact(void *ud, const char *contact)
{
    struct session *s = ud;
    if (!blocking_presence_ok(s->h, s->full, contact)) /* XEP-0191 §3.3 */
        return;
    if (is_remote(s->h, contact)) {
        /* §4.3.1: the contact's server answers, to our bare JID. */
        send_simple(s->h, s->bare, contact, "probe", ROUTE_PRESENCE);
        return;
    }
    send_account_presence(s->h, contact, s->full, ROUTE_FULL); /* §4.3 */
    /* Cluster mode: the instances holding the contact's other sessions answer
     * (presence_probe_local there); ROUTE_FULL to a bare JID gives it to no
     * session here. */
    if (s->h->cluster)
        send_simple_x(s->h, s->full, contact, "probe", ROUTE_FULL, true);
}

struct gone {
    struct herald *h;
    struct chunk *tail;
};

static void gone_to_contact(void *ud, const char *contact)
{
    struct gone *g = ud;
    send_tail(g->h, contact, g->tail, ROUTE_PRESENCE); /* the sessions here only */
}

/* The tail of <presence from='full' type='unavailable'/> (see tail_of). */
static struct chunk *unavailable_tail(const char *full)
{
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, " from='");
    buf_xml_attr(&b, full, strlen(full));
    buf_puts(&b, "' type='unavailable'/>");
    struct chunk *tail = buf_ok(&b) ? chunk_new(b.data, b.len) : NULL;
    buf_free(&b);
    return tail;
}

void presence_remote_gone(struct herald *h, const char *full)
{
    char bare[JID_MAX + 1];
    struct chunk *tail;
    if (jid_bare_of(full, bare) != 0 || (tail = unavailable_tail(full)) == NULL)
        return;
    struct gone g = {h, tail};
    roster_each_sub(h, bare, ROSTER_FROM, gone_to_contact, &g);
    send_tail(h, bare, tail, ROUTE_PRESENCE); /* the account's own resources here */
    chunk_unref(tail);
}

void presence_probe_local(struct herald *h, const char *contact, const char *from_full)
{
    char bare[JID_MAX + 1];
    if (jid_bare_of(from_full, bare) != 0)
        return;
    if (im_presence_subscribed(h, contact, bare) && blocking_presence_ok(h, from_full, contact))
        send_account_presence(h, contact, from_full, ROUTE_FULL);
}

static int pending_cb(void *ud, const struct store_roster_item *it)
{
    struct session *s = ud;
    if (!it->pending_in)
        return 0;
    if (it->request_len == 0) {
        send_simple(s->h, it->contact, s->full, "subscribe", ROUTE_FULL); /* §3.1.3 */
        return 0;
    }
    struct chunk *ch = chunk_new(it->request, it->request_len);
    if (ch) {
        session_send_chunk(s, ch);
        chunk_unref(ch);
    }
    return 0;
}

struct offline_list {
    char **msgs;
    size_t *lens;
    size_t n, cap;
};

static int offline_cb(void *ud, const char *xml, size_t len)
{
    struct offline_list *l = ud;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **m = realloc(l->msgs, cap * sizeof(*m));
        size_t *ls = m ? realloc(l->lens, cap * sizeof(*ls)) : NULL;
        if (m)
            l->msgs = m;
        if (ls == NULL)
            return HERALD_ENOMEM;
        l->lens = ls;
        l->cap = cap;
    }
    if ((l->msgs[l->n] = malloc(len)) == NULL)
        return HERALD_ENOMEM;
    memcpy(l->msgs[l->n], xml, len);
    l->lens[l->n++] = len;
    return 0;
}

/* The storage list of an account's offline stanzas of one kind: its bare
 * JID for messages, the bare JID with a suffix no JID can have (a resource
 * cannot hold U+0001) for pubsub notifications, which have their own bound. */
static const char *offline_list(const char *bare, enum im_offline_kind kind, char *buf, size_t cap)
{
    if (kind == IM_OFFLINE_MESSAGES)
        return bare;
    snprintf(buf, cap, "%s" STORE_OFFLINE_NOTIFICATIONS_SUFFIX, bare);
    return buf;
}

/* XEP-0160: stored stanzas of one list go to the session, in order, and
 * then leave storage (at-least-once: a failed commit means they are
 * delivered again later). Only what fits in half the write queue goes now;
 * the rest follows as the client reads (on_drain), so a backlog never trips
 * the slow-reader bound and nothing is deleted that was not queued.
 * Returns true when some are left for later. */
static bool deliver_list(struct session *s, enum im_offline_kind kind)
{
    int rc;
    char buf[JID_MAX + 16];
    const char *owner = offline_list(s->bare, kind, buf, sizeof(buf));
    struct offline_list l = {NULL, NULL, 0, 0};
    struct store_txn *t = batch_read(s->h->batch, &rc);
    if (t == NULL)
        return false;
    rc = store_offline_each(t, owner, offline_cb, &l);
    batch_read_done(s->h->batch, t);
    size_t sent = 0;
    bool pending = false;
    for (size_t i = 0; i < l.n; i++) {
        if (rc == 0 && !pending) {
            struct chunk *ch = NULL;
            if (s->conn == NULL ||
                (sent > 0 && s->conn->q_bytes + l.lens[i] > s->conn->q_max / 2))
                pending = true;
            else if ((ch = chunk_new(l.msgs[i], l.lens[i])) != NULL &&
                     session_send_chunk(s, ch) == 0)
                sent++;
            else
                pending = true;
            if (ch)
                chunk_unref(ch);
        }
        free(l.msgs[i]);
    }
    free(l.msgs);
    free(l.lens);
    if (rc != 0 || sent == 0)
        return pending;
    /* If the deletion fails, the delivered stanzas stay stored and come
     * again at the next login (offline delivery is at-least-once). */
    if ((t = batch_op_begin(s->h->batch, &rc)) != NULL)
        rc = batch_op_end(s->h->batch, t, store_offline_drop(t, owner, sent));
    if (rc != 0)
        log_error("im", "%s: delivered offline %s not deleted: %s", s->full,
                  kind == IM_OFFLINE_MESSAGES ? "messages" : "notifications", herald_strerror(rc));
    else
        log_info("im", "%s: delivered %zu offline %s%s", s->full, sent,
                 kind == IM_OFFLINE_MESSAGES ? "message(s)" : "notification(s)",
                 pending ? ", more to follow" : "");
    return pending;
}

/* Messages first, then pubsub notifications. */
static void deliver_offline(struct session *s)
{
    s->offline_pending = deliver_list(s, IM_OFFLINE_MESSAGES) ||
                         deliver_list(s, IM_OFFLINE_NOTIFICATIONS);
}

int im_offline_store_raw(struct herald *h, const char *bare, enum im_offline_kind kind,
                         const char *xml, size_t len)
{
    int rc = store_user_exists(h->store, bare);
    if (rc <= 0)
        return rc == 0 ? HERALD_ENOTFOUND : rc;
    char buf[JID_MAX + 16];
    const char *owner = offline_list(bare, kind, buf, sizeof(buf));
    unsigned max = kind == IM_OFFLINE_MESSAGES ? h->cfg->max_offline : h->cfg->pubsub_max_offline;
    struct store_txn *t = batch_op_begin(h->batch, &rc);
    if (t != NULL)
        rc = batch_op_end(h->batch, t, store_offline_push(t, owner, xml, len, max));
    return rc;
}

void presence_offline_continue(struct session *s)
{
    if (s->available && s->priority >= 0)
        deliver_offline(s);
}

static void available(struct session *s, struct xnode *st, struct arena *a)
{
    struct xnode *pr = xml_child(st, NS_CLIENT, "priority");
    long prio = 0;
    if (pr != NULL) {
        const char *txt = xml_text(a, pr);
        char *end = NULL;
        prio = txt ? strtol(txt, &end, 10) : 0;
        if (txt == NULL || end == txt || *end != '\0' || prio < -128 || prio > 127) {
            router_error(s, st, a, HERALD_EINVAL, NULL, NULL);
            return;
        }
    }
    struct chunk *tail = tail_of(st);
    if (tail == NULL)
        return;
    bool initial = !s->available;
    s->available = true;
    s->priority = (int)prio;
    chunk_unref(s->presence);
    s->presence = tail;
    broadcast(s, tail);
    if (initial) {
        /* §4.2.3: contacts we are subscribed to, and our own other resources. */
        roster_each_sub(s->h, s->bare, ROSTER_TO, probe_contact, s);
        struct account *acct = session_account(s->h, s->bare);
        for (struct session *o = acct ? acct->sessions : NULL; o; o = o->next_res)
            if (o != s && o->available && o->presence)
                send_tail(s->h, s->full, o->presence, ROUTE_FULL);
        int rc;
        struct store_txn *t = batch_read(s->h->batch, &rc);
        if (t != NULL) {
            store_roster_each(t, s->bare, pending_cb, s);
            batch_read_done(s->h->batch, t);
        }
    }
    if (s->priority >= 0) {
        deliver_offline(s);
        durable_available(s); /* herald#durable: items after each cursor */
    }
    pep_presence(s, st); /* XEP-0115 caps, XEP-0163 §4.3.2 last items (pep.c) */
}

static void forget_directed(struct session *s)
{
    for (unsigned i = 0; i < s->ndirected; i++)
        free(s->directed[i]);
    free(s->directed);
    s->directed = NULL;
    s->ndirected = 0;
}

static void unavailable(struct session *s, struct chunk *tail)
{
    s->available = false;
    chunk_unref(s->presence);
    s->presence = NULL;
    broadcast(s, tail);
    for (unsigned i = 0; i < s->ndirected; i++) /* §4.6.3 */
        send_tail_offer(s->h, s->directed[i], tail,
                        strchr(s->directed[i], '/') ? ROUTE_FULL : ROUTE_PRESENCE);
    forget_directed(s);
}

void presence_session_gone(struct session *s)
{
    pep_session_gone(s); /* its XEP-0115 caps (pep.c) */
    /* At shutdown every local session goes at once: nobody is left to tell. */
    if (s->available && s->full && !s->h->shutting_down) {
        /* §4.5.4 (broken connection) and logout: the server says unavailable. */
        struct chunk *tail = unavailable_tail(s->full);
        if (tail) {
            unavailable(s, tail);
            chunk_unref(tail);
        }
    }
    chunk_unref(s->presence);
    s->presence = NULL;
    s->available = false;
    forget_directed(s);
}

static void remember_directed(struct session *s, const char *to)
{
    /* Contacts allowed to see our presence get the unavailable broadcast
     * anyway; only others need remembering (§4.6.3). */
    char bare[JID_MAX + 1];
    snprintf(bare, sizeof(bare), "%.*s", (int)strcspn(to, "/"), to);
    if (strcmp(bare, s->bare) == 0 || im_presence_subscribed(s->h, s->bare, bare))
        return;
    for (unsigned i = 0; i < s->ndirected; i++)
        if (strcmp(s->directed[i], to) == 0)
            return;
    if (s->ndirected >= MAX_DIRECTED)
        return; /* bounded: beyond this, directed presence is not tracked */
    char **d = realloc(s->directed, (s->ndirected + 1) * sizeof(*d));
    if (d == NULL)
        return;
    s->directed = d;
    if ((d[s->ndirected] = strdup(to)) != NULL)
        s->ndirected++;
}

void presence_handle(struct session *from, struct xnode *st, struct arena *a, const char *to_full,
                     const char *to_bare, bool to_local_account)
{
    struct herald *h = from->h;
    const char *type = xml_attr(st, "type");
    if (to_bare == NULL) {
        if (type == NULL) {
            available(from, st, a);
        } else if (strcmp(type, "unavailable") == 0 && from->available) {
            struct chunk *tail = tail_of(st);
            if (tail) {
                unavailable(from, tail);
                chunk_unref(tail);
            }
        }
        return;
    }
    if (type && (!strcmp(type, "subscribe") || !strcmp(type, "subscribed") ||
                 !strcmp(type, "unsubscribe") || !strcmp(type, "unsubscribed"))) {
        if (strcmp(to_bare, from->bare) == 0)
            return;
        if (h->cluster == NULL) {
            presence_subscription(h, from->bare, to_bare, type, st);
        } else {
            /* Rosters are the same on every instance: the change goes
             * through the log and every instance applies it. */
            int rc = cluster_propose_subscription(h, from->bare, to_bare, type, st);
            if (rc != 0)
                log_warn("im", "%s -> %s %s not stored: %s", from->bare, to_bare, type,
                         herald_strerror(rc));
        }
        return;
    }
    if (type && strcmp(type, "probe") == 0) {
        /* §4.3.2: answered for contacts the target lets see its presence. */
        if (to_local_account && im_presence_subscribed(h, to_bare, from->bare))
            send_account_presence(h, to_bare, from->full, ROUTE_FULL);
        return;
    }
    /* Directed presence (§4.6), or an error presence. */
    struct chunk *tail = tail_of(st);
    if (tail == NULL)
        return;
    bool full = to_full && strchr(to_full, '/');
    send_tail_offer(h, full ? to_full : to_bare, tail, full ? ROUTE_FULL : ROUTE_PRESENCE);
    chunk_unref(tail);
    if (type == NULL && from->available)
        remember_directed(from, full ? to_full : to_bare);
}

/* ---- offline storage (XEP-0160) ---- */

int im_offline_store(struct herald *h, struct xnode *msg, struct arena *a, const char *bare)
{
    const char *type = xml_attr(msg, "type");
    if (type && strcmp(type, "chat") != 0 && strcmp(type, "normal") != 0)
        return -1;
    /* XEP-0203: when it was received (a message stored before keeps its
     * first stamp). */
    if (xml_child(msg, "urn:xmpp:delay", "delay") == NULL) {
        char stamp[32];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
        struct xnode *d = xml_add_elem(a, msg, "urn:xmpp:delay", "delay");
        if (d == NULL || xml_set_attr(a, d, "from", h->cfg->domain) ||
            xml_set_attr(a, d, "stamp", stamp))
            return HERALD_ENOMEM;
    }
    struct buf b;
    buf_init(&b, 0);
    xml_serialize(&b, msg, NS_CLIENT);
    int rc = HERALD_ENOMEM;
    struct store_txn *t = buf_ok(&b) ? batch_op_begin(h->batch, &rc) : NULL;
    if (t != NULL)
        rc = batch_op_end(h->batch, t, store_offline_push(t, bare, b.data, b.len, h->cfg->max_offline));
    buf_free(&b);
    if (rc == HERALD_ELIMIT) {
        static struct log_limit lim;
        log_limited(&lim, LOG_INFO, "im", "offline storage of %s is full (im.max_offline_messages)",
                    bare);
    }
    return rc;
}

int presence_offline_store(struct session *from, struct xnode *msg, struct arena *a,
                           const char *bare)
{
    int rc = im_offline_store(from->h, msg, a, bare);
    if (rc == -1)
        return -1;
    if (rc != 0) /* XEP-0160 §3: full storage is service-unavailable */
        router_error(from, msg, a, rc == HERALD_ELIMIT ? HERALD_EUNAVAIL : rc, NULL, NULL);
    return 0;
}

/* ---- hooks for pubsub ---- */

bool im_presence_subscribed(struct herald *h, const char *owner, const char *contact)
{
    int rc;
    struct ritem *it = malloc(sizeof(*it));
    struct store_txn *t = it ? batch_read(h->batch, &rc) : NULL;
    bool yes = false;
    if (t != NULL && roster_load(t, owner, contact, it) == 0)
        yes = it->in_roster && (it->sub & ROSTER_FROM);
    batch_read_done(h->batch, t);
    free(it);
    return yes;
}

bool im_available(struct herald *h, const char *full_jid)
{
    const char *slash = strchr(full_jid, '/');
    char bare[JID_MAX + 1];
    if (slash == NULL || (size_t)(slash - full_jid) > JID_MAX)
        return false;
    memcpy(bare, full_jid, (size_t)(slash - full_jid));
    bare[slash - full_jid] = '\0';
    struct session *s = session_find(h, bare, slash + 1);
    return s != NULL && s->available;
}
