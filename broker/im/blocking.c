/* blocking.c - XEP-0191 Blocking Command (urn:xmpp:blocking, version 1.3).
 *
 * Block lists live in LMDB (store_blocking.c), written through the loop
 * turn's write batch like rosters; results and pushes leave after the
 * commit. In memory there is only h->blockers, a hash of the accounts whose
 * list is non-empty with their entry counts: the router and presence hooks
 * look there first, so while nobody blocks anyone (or neither party of a
 * stanza does) a stanza costs a pointer test or a hash lookup and no
 * storage read. The hash is rebuilt from storage when a commit fails.
 *
 * Matching follows privacy lists (XEP-0016 §2.1, which XEP-0191 §3.3
 * refers to): a stanza's JID user@domain/resource is blocked by an entry
 * equal to it, to user@domain, to domain/resource or to domain; so a bare
 * JID blocks all of its resources and a domain every JID under it. */
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
#include "router.h"
#include "session.h"
#include "store.h"
#include "xml.h"

struct block_owner {
    char *bare;
    unsigned count; /* entries on the stored list */
    UT_hash_handle hh;
};

static struct block_owner *owner_find(struct herald *h, const char *bare)
{
    struct block_owner *o = NULL;
    if (h->blockers != NULL)
        HASH_FIND_STR(h->blockers, bare, o);
    return o;
}

/* Records owner's entry count; 0 forgets the owner. */
static int owner_set(struct herald *h, const char *bare, unsigned count)
{
    struct block_owner *o = owner_find(h, bare);
    if (count == 0) {
        if (o != NULL) {
            HASH_DEL(h->blockers, o);
            free(o->bare);
            free(o);
        }
        return 0;
    }
    if (o == NULL) {
        if ((o = calloc(1, sizeof(*o))) == NULL || (o->bare = strdup(bare)) == NULL) {
            free(o);
            return HERALD_ENOMEM;
        }
        HASH_ADD_KEYPTR(hh, h->blockers, o->bare, strlen(o->bare), o);
    }
    o->count = count;
    return 0;
}

static void owners_free(struct herald *h)
{
    struct block_owner *o, *tmp;
    HASH_ITER(hh, h->blockers, o, tmp) {
        HASH_DEL(h->blockers, o);
        free(o->bare);
        free(o);
    }
}

static int load_cb(void *ud, const char *owner, unsigned count)
{
    return owner_set(ud, owner, count);
}

static int owners_load(struct herald *h)
{
    int rc;
    owners_free(h);
    struct store_txn *t = batch_read(h->batch, &rc);
    if (t == NULL)
        return rc;
    rc = store_block_owners(t, load_cb, h);
    batch_read_done(h->batch, t);
    return rc;
}

/* A failed commit lost this turn's block list changes: read them again. */
static void on_rollback(void *ctx)
{
    struct herald *h = ctx;
    int rc = owners_load(h);
    if (rc != 0)
        log_error("im", "block lists not reloaded after a failed commit: %s", herald_strerror(rc));
}

int blocking_open(struct herald *h)
{
    int rc = owners_load(h);
    if (rc == 0 && batch_on_rollback(h->batch, on_rollback, h) != 0)
        rc = HERALD_ENOMEM;
    return rc;
}

void blocking_close(struct herald *h)
{
    owners_free(h);
}

/* ---- matching ---- */

/* Does owner's stored list block jid (prepared: domain, bare or full)?
 * 1, 0 or an error (read in t). */
static int list_blocks(struct store_txn *t, const char *owner, const char *jid)
{
    char buf[JID_MAX + 1];
    size_t slash = strcspn(jid, "/");
    const char *at = memchr(jid, '@', slash);
    const char *domain = at ? at + 1 : jid;
    size_t dl = (size_t)(jid + slash - domain);
    int rc = store_block_has(t, owner, jid);
    if (rc == 0 && jid[slash] != '\0') { /* user@domain, domain/resource */
        snprintf(buf, sizeof(buf), "%.*s", (int)slash, jid);
        rc = store_block_has(t, owner, buf);
        if (rc == 0 && at != NULL) {
            snprintf(buf, sizeof(buf), "%.*s%s", (int)dl, domain, jid + slash);
            rc = store_block_has(t, owner, buf);
        }
    }
    if (rc == 0 && (at != NULL || jid[slash] != '\0')) { /* domain */
        snprintf(buf, sizeof(buf), "%.*s", (int)dl, domain);
        rc = store_block_has(t, owner, buf);
    }
    return rc;
}

/* Does owner (a bare JID) block jid? Storage errors count as not blocked:
 * a read that fails once must not cut an account off. */
static bool blocks(struct herald *h, const char *owner, const char *jid)
{
    if (owner_find(h, owner) == NULL)
        return false;
    int rc;
    struct store_txn *t = batch_read(h->batch, &rc);
    if (t == NULL)
        return false;
    rc = list_blocks(t, owner, jid);
    batch_read_done(h->batch, t);
    if (rc < 0)
        log_error("im", "block list of %s not read: %s", owner, herald_strerror(rc));
    return rc == 1;
}

bool blocking_blocks(struct herald *h, const char *owner, const char *jid)
{
    return h->blockers != NULL && blocks(h, owner, jid);
}

bool blocking_presence_ok(struct herald *h, const char *a, const char *b)
{
    if (h->blockers == NULL)
        return true;
    char abare[JID_MAX + 1], bbare[JID_MAX + 1];
    snprintf(abare, sizeof(abare), "%.*s", (int)strcspn(a, "/"), a);
    snprintf(bbare, sizeof(bbare), "%.*s", (int)strcspn(b, "/"), b);
    return !blocks(h, abare, b) && !blocks(h, bbare, a);
}

/* §3.7: <not-acceptable/> with the application condition <blocked/>,
 * the original payload kept as router_error keeps it. */
static void reply_blocked(struct session *from, const struct xnode *st, struct arena *a)
{
    const char *type = xml_attr(st, "type");
    if (type && (strcmp(type, "error") == 0 ||
                 (strcmp(st->name, "iq") == 0 && strcmp(type, "result") == 0)))
        return;
    struct xnode *r = router_reply(a, st, "error");
    if (r == NULL)
        return;
    r->children = st->children;
    r->last_child = st->last_child;
    struct xnode *e = xml_add_elem(a, r, NS_CLIENT, "error");
    if (e == NULL || xml_set_attr(a, e, "type", "cancel") != 0 ||
        xml_add_elem(a, e, NS_STANZAS, "not-acceptable") == NULL ||
        xml_add_elem(a, e, NS_BLOCKING_ERRORS, "blocked") == NULL)
        return;
    session_send_xml(from, r);
}

bool blocking_route(struct session *from, struct xnode *st, struct arena *a, const struct jid *to)
{
    struct herald *h = from->h;
    bool ours = strcmp(to->domain, h->cfg->domain) == 0;
    char target[JID_MAX + 1], tbare[JID_MAX + 1];
    /* The server itself and one's own account are not contacts. */
    if ((ours && to->local[0] == '\0') || jid_format(to, false, target, sizeof(target)) < 0 ||
        jid_format(to, true, tbare, sizeof(tbare)) < 0 || strcmp(tbare, from->bare) == 0)
        return false;
    if (blocks(h, from->bare, target)) {
        reply_blocked(from, st, a); /* §3.7 */
        return true;
    }
    if (!ours || !blocks(h, tbare, from->full))
        return false;
    /* §3.6: nothing from a blocked entity is delivered; messages and iq
     * requests get <service-unavailable/> (as if the account did not
     * exist), presence and iq responses are dropped silently. */
    const char *type = xml_attr(st, "type");
    if (strcmp(st->name, "message") == 0 ||
        (strcmp(st->name, "iq") == 0 && type && (!strcmp(type, "get") || !strcmp(type, "set"))))
        router_error(from, st, a, HERALD_EUNAVAIL, NULL, NULL);
    return true;
}

/* ---- the protocol (§3.2-3.5) ---- */

static int count_cb(void *ud, const char *jid)
{
    (void)jid;
    (*(unsigned *)ud)++;
    return 0;
}

static int item_cb(void *ud, const char *jid)
{
    void **p = ud;
    struct arena *a = p[0];
    struct xnode *item = xml_add_elem(a, p[1], NS_BLOCKING, "item");
    return (item == NULL || xml_set_attr(a, item, "jid", jid) != 0) ? HERALD_ENOMEM : 0;
}

static void blocklist_get(struct session *s, struct xnode *iq, struct arena *a)
{
    int rc;
    struct xnode *r = router_reply(a, iq, "result");
    struct xnode *list = xml_elem_new(a, NS_BLOCKING, "blocklist");
    struct store_txn *t = (r && list) ? batch_read(s->h->batch, &rc) : NULL;
    if (t == NULL) {
        router_error(s, iq, a, r && list ? rc : HERALD_ENOMEM, NULL, NULL);
        return;
    }
    void *ud[2] = {a, list};
    rc = store_block_each(t, s->bare, item_cb, ud);
    batch_read_done(s->h->batch, t);
    if (rc != 0) {
        router_error(s, iq, a, rc, NULL, NULL);
        return;
    }
    /* §3.2: from now on this resource gets the pushes. */
    s->blocklist_requested = true;
    if (xml_attr(iq, "to") == NULL)
        xml_del_attr(r, "from");
    xml_append(r, list);
    session_send_xml(s, r);
}

/* The JIDs of a <block/> or <unblock/>, prepared, into out (arena); *n of
 * them. 0, HERALD_EINVAL (not an <item jid/>), HERALD_EJID or ELIMIT. */
static int parse_items(struct xnode *op, struct arena *a, unsigned max, char ***out, unsigned *n)
{
    unsigned cnt = 0;
    for (struct xnode *c = xml_first_elem(op); c; c = xml_next_elem(c))
        cnt++;
    if (cnt > max)
        return HERALD_EQUOTA;
    char **list = arena_alloc(a, (cnt + 1) * sizeof(*list));
    struct jid *j = arena_alloc(a, sizeof(*j));
    if (list == NULL || j == NULL)
        return HERALD_ENOMEM;
    *n = 0;
    for (struct xnode *c = xml_first_elem(op); c; c = xml_next_elem(c)) {
        const char *jid = xml_attr(c, "jid");
        if (strcmp(c->ns, NS_BLOCKING) != 0 || strcmp(c->name, "item") != 0 || jid == NULL)
            return HERALD_EINVAL;
        char *p = arena_alloc(a, JID_MAX + 1);
        if (p == NULL)
            return HERALD_ENOMEM;
        if (jid_parse_str(j, jid) != 0 || jid_format(j, false, p, JID_MAX + 1) < 0)
            return HERALD_EJID;
        list[(*n)++] = p;
    }
    *out = list;
    return 0;
}

/* Roster contacts that may see the user's presence (subscription from or
 * both): the ones a block or unblock changes presence for. */
struct contacts {
    char **jid;
    bool *was;   /* blocked before the change */
    size_t n, cap;
};

static void contact_cb(void *ud, const char *contact)
{
    struct contacts *c = ud;
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        char **j = realloc(c->jid, cap * sizeof(*j));
        if (j == NULL)
            return;
        c->jid = j;
        bool *w = realloc(c->was, cap * sizeof(*w));
        if (w == NULL)
            return;
        c->was = w;
        c->cap = cap;
    }
    if ((c->jid[c->n] = strdup(contact)) != NULL)
        c->n++;
}

static void contacts_free(struct contacts *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->jid[i]);
    free(c->jid);
    free(c->was);
}

static bool any_available(struct account *acct)
{
    for (struct session *s = acct ? acct->sessions : NULL; s; s = s->next_res)
        if (s->available)
            return true;
    return false;
}

/* "<presence to='contact'" in front of a session's stored presence, or
 * <presence from to type='unavailable'/>. */
static void presence_to(struct herald *h, struct session *s, const char *contact, bool avail)
{
    struct buf b;
    buf_init(&b, 0);
    if (avail) {
        buf_puts(&b, "<presence to='");
        buf_xml_attr(&b, contact, strlen(contact));
        buf_puts(&b, "'");
    } else {
        buf_puts(&b, "<presence from='");
        buf_xml_attr(&b, s->full, strlen(s->full));
        buf_puts(&b, "' to='");
        buf_xml_attr(&b, contact, strlen(contact));
        buf_puts(&b, "' type='unavailable'/>");
    }
    struct chunk *head = buf_ok(&b) ? chunk_new(b.data, b.len) : NULL;
    buf_free(&b);
    if (head == NULL)
        return;
    struct chunk *parts[2] = {head, s->presence};
    router_send(h, contact, parts, avail ? 2 : 1, ROUTE_PRESENCE);
    chunk_unref(head);
}

/* §3.3: a contact that becomes blocked gets unavailable presence from
 * each available resource; §3.4: one that becomes unblocked gets the
 * current presence again. */
static void presence_changes(struct herald *h, const char *owner, struct contacts *c)
{
    struct account *acct = session_account(h, owner);
    for (size_t i = 0; i < c->n; i++) {
        bool now = blocks(h, owner, c->jid[i]);
        /* A contact that blocks the user gets no presence either way. */
        if (now == c->was[i] || blocks(h, c->jid[i], owner))
            continue;
        for (struct session *s = acct ? acct->sessions : NULL; s; s = s->next_res)
            if (s->available && (now || s->presence != NULL))
                presence_to(h, s, c->jid[i], !now);
    }
}

/* After the commit: the result to the requester, then the same <block/> or
 * <unblock/> to every resource that asked for the list (§3.3). */
struct after {
    struct herald *h;
    char *owner, *full, *id;
    struct chunk *payload; /* "<block ...>...</block></iq>" (or unblock) */
};

static void after_run(void *ctx, int failed)
{
    struct after *d = ctx;
    struct buf b;
    buf_init(&b, 0);
    if (failed) {
        if (failed != HERALD_EUNAVAIL)
            router_batch_failed(d->h, d->full, d->id, NULL, failed);
        goto done;
    }
    buf_puts(&b, "<iq type='result' id='");
    buf_xml_attr(&b, d->id, strlen(d->id));
    buf_puts(&b, "' to='");
    buf_xml_attr(&b, d->full, strlen(d->full));
    buf_puts(&b, "'/>");
    struct chunk *ok = buf_ok(&b) ? chunk_new(b.data, b.len) : NULL;
    if (ok != NULL) {
        router_send(d->h, d->full, &ok, 1, ROUTE_FULL);
        chunk_unref(ok);
    }
    static unsigned long long seq;
    struct account *acct = session_account(d->h, d->owner);
    for (struct session *s = acct ? acct->sessions : NULL; s; s = s->next_res) {
        if (!s->blocklist_requested)
            continue;
        buf_reset(&b);
        buf_printf(&b, "<iq type='set' id='block-push-%llu' to='", ++seq);
        buf_xml_attr(&b, s->full, strlen(s->full));
        buf_puts(&b, "'>");
        struct chunk *head = buf_ok(&b) ? chunk_new(b.data, b.len) : NULL;
        if (head != NULL) {
            struct chunk *parts[2] = {head, d->payload}; /* one stanza */
            session_send_stanza(s, parts, 2);
            chunk_unref(head);
        }
    }
done:
    buf_free(&b);
    chunk_unref(d->payload);
    free(d->owner);
    free(d->full);
    free(d->id);
    free(d);
}

/* The push carries the JIDs as stored (prepared), in the request's order. */
static int queue_after(struct session *s, const char *id, bool block, char **items, unsigned n)
{
    struct after *d = calloc(1, sizeof(*d));
    struct buf b;
    buf_init(&b, 0);
    buf_printf(&b, "<%s xmlns='" NS_BLOCKING "'", block ? "block" : "unblock");
    buf_puts(&b, n ? ">" : "/>");
    for (unsigned i = 0; i < n; i++) {
        buf_puts(&b, "<item jid='");
        buf_xml_attr(&b, items[i], strlen(items[i]));
        buf_puts(&b, "'/>");
    }
    if (n)
        buf_printf(&b, "</%s>", block ? "block" : "unblock");
    buf_puts(&b, "</iq>");
    int rc = HERALD_ENOMEM;
    if (d == NULL || !buf_ok(&b) || (d->payload = chunk_new(b.data, b.len)) == NULL ||
        (d->owner = strdup(s->bare)) == NULL || (d->full = strdup(s->full)) == NULL ||
        (d->id = strdup(id)) == NULL)
        goto done;
    d->h = s->h;
    if (batch_after(s->h->batch, after_run, d) != 0)
        goto done;
    d = NULL;
    rc = 0;
done:
    buf_free(&b);
    if (d != NULL) {
        if (d->payload)
            chunk_unref(d->payload);
        free(d->owner);
        free(d->full);
        free(d->id);
        free(d);
    }
    return rc;
}

/* Writes the change in op; *count gets the list's length after it. */
static int apply(struct store_txn *t, const char *owner, bool block, char **items, unsigned n,
                 unsigned max, unsigned *count)
{
    int rc = 0;
    for (unsigned i = 0; rc == 0 && i < n; i++)
        rc = block ? store_block_put(t, owner, items[i]) : store_block_del(t, owner, items[i]);
    if (rc == 0 && !block && n == 0)
        rc = store_block_clear(t, owner); /* §3.5: unblock all */
    *count = 0;
    if (rc == 0)
        rc = store_block_each(t, owner, count_cb, count);
    /* The bound refuses the whole request: nothing of it is kept. */
    if (rc == 0 && block && *count > max)
        rc = HERALD_EQUOTA;
    return rc;
}

static void block_set(struct session *s, struct xnode *iq, struct xnode *op, struct arena *a)
{
    struct herald *h = s->h;
    bool block = strcmp(op->name, "block") == 0;
    char **items = NULL;
    unsigned n = 0, count = 0;
    struct contacts c = {NULL, NULL, 0, 0};
    int rc = parse_items(op, a, h->cfg->max_blocklist_items, &items, &n);
    if (rc == 0 && block && n == 0)
        rc = HERALD_EINVAL; /* §3.3: a block needs at least one item */
    if (rc != 0) {
        router_error(s, iq, a, rc, NULL, NULL);
        return;
    }
    /* Presence only changes for contacts while the user is available. */
    if (any_available(session_account(h, s->bare))) {
        rc = roster_each_sub(h, s->bare, ROSTER_FROM, contact_cb, &c);
        for (size_t i = 0; rc == 0 && i < c.n; i++)
            c.was[i] = blocks(h, s->bare, c.jid[i]);
    }
    struct store_txn *t = rc == 0 ? batch_op_begin(h->batch, &rc) : NULL;
    if (t != NULL)
        rc = batch_op_end(h->batch, t, apply(t, s->bare, block, items, n,
                                             h->cfg->max_blocklist_items, &count));
    if (rc == 0)
        rc = owner_set(h, s->bare, count);
    if (rc != 0) {
        router_error(s, iq, a, rc, NULL, NULL);
        goto done;
    }
    presence_changes(h, s->bare, &c);
    if (queue_after(s, xml_attr(iq, "id"), block, items, n) != 0)
        log_error("im", "%s: block list changed, but its result and pushes were not queued",
                  s->full);
done:
    contacts_free(&c);
}

void blocking_handle_iq(struct session *s, struct xnode *iq, struct xnode *child, struct arena *a)
{
    const char *to = xml_attr(iq, "to");
    /* Only the account's own resources see or change its list. */
    if (to != NULL && strcmp(to, s->bare) != 0) {
        router_error(s, iq, a, HERALD_EFORBIDDEN, NULL, NULL);
        return;
    }
    if (strcmp(child->name, "blocklist") == 0)
        blocklist_get(s, iq, a);
    else
        block_set(s, iq, child, a);
}
