/* roster.c - RFC 6121 §2: roster get/set/remove, pushes to interested
 * resources, and roster versioning (§2.6) from per-user version counters and
 * tombstones of removed items. */
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
#include "router.h"
#include "session.h"
#include "store.h"
#include "xml.h"

static const char *const sub_names[] = {"none", "to", "from", "both"};

int roster_load(struct store_txn *t, const char *owner, const char *contact, struct ritem *it)
{
    struct store_roster_item si;
    memset(it, 0, sizeof(*it));
    snprintf(it->contact, sizeof(it->contact), "%s", contact);
    int rc = store_roster_get(t, owner, contact, &si);
    if (rc == HERALD_ENOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    it->sub = si.sub & 3;
    it->ask = si.ask;
    it->pending_in = si.pending_in;
    it->approved = si.approved;
    it->in_roster = !si.removed;
    snprintf(it->name, sizeof(it->name), "%s", si.name);
    if (si.groups_len < sizeof(it->groups)) {
        memcpy(it->groups, si.groups, si.groups_len);
        it->groups_len = si.groups_len;
    }
    if (si.request_len <= sizeof(it->request)) {
        memcpy(it->request, si.request, si.request_len);
        it->request_len = si.request_len;
    }
    return 0;
}

/* <item jid name subscription ask approved><group/>...</item> */
static void item_xml(struct buf *b, const char *contact, const char *name, uint8_t sub, bool ask,
                     bool approved, const char *groups, size_t groups_len, bool removed)
{
    buf_puts(b, "<item jid='");
    buf_xml_attr(b, contact, strlen(contact));
    buf_puts(b, "'");
    if (removed) {
        buf_puts(b, " subscription='remove'/>");
        return;
    }
    if (name && name[0]) {
        buf_puts(b, " name='");
        buf_xml_attr(b, name, strlen(name));
        buf_puts(b, "'");
    }
    buf_printf(b, " subscription='%s'%s%s", sub_names[sub & 3], ask ? " ask='subscribe'" : "",
               approved ? " approved='true'" : "");
    if (groups_len == 0) {
        buf_puts(b, "/>");
        return;
    }
    buf_puts(b, ">");
    for (size_t off = 0; off < groups_len;) {
        size_t l = strnlen(groups + off, groups_len - off);
        buf_puts(b, "<group>");
        buf_xml_text(b, groups + off, l);
        buf_puts(b, "</group>");
        off += l + 1;
    }
    buf_puts(b, "</item>");
}

/* A roster push waiting for the commit: the same query for every
 * interested resource, each behind its own iq envelope. */
struct push {
    struct herald *h;
    char owner[512];
    struct chunk *query; /* "<query ...>...</query></iq>" */
};

static void push_run(void *ctx, int failed)
{
    struct push *p = ctx;
    struct account *acct = failed ? NULL : session_account(p->h, p->owner);
    static unsigned long long seq;
    for (struct session *s = acct ? acct->sessions : NULL; s; s = s->next_res) {
        if (!s->roster_requested)
            continue;
        char head[1200];
        struct buf b;
        buf_init(&b, 0);
        buf_puts(&b, "<iq type='set' id='");
        snprintf(head, sizeof(head), "push-%llu", ++seq);
        buf_puts(&b, head);
        buf_puts(&b, "' to='");
        buf_xml_attr(&b, s->full, strlen(s->full));
        buf_puts(&b, "'>");
        struct chunk *hd = buf_ok(&b) ? chunk_new(b.data, b.len) : NULL;
        buf_free(&b);
        if (hd == NULL)
            continue;
        struct chunk *parts[2] = {hd, p->query};
        session_send_stanza(s, parts, 2);
        chunk_unref(hd);
    }
    chunk_unref(p->query);
    free(p);
}

static void queue_push(struct herald *h, const char *owner, uint64_t ver, const struct ritem *it,
                       bool removed)
{
    struct buf b;
    buf_init(&b, 0);
    buf_printf(&b, "<query xmlns='" NS_ROSTER "' ver='%llu'>", (unsigned long long)ver);
    item_xml(&b, it->contact, it->name, it->sub, it->ask, it->approved, it->groups, it->groups_len,
             removed);
    buf_puts(&b, "</query></iq>");
    struct push *p = calloc(1, sizeof(*p));
    if (p == NULL || !buf_ok(&b) || (p->query = chunk_new(b.data, b.len)) == NULL) {
        free(p);
        buf_free(&b);
        return;
    }
    buf_free(&b);
    p->h = h;
    snprintf(p->owner, sizeof(p->owner), "%s", owner);
    batch_after(h->batch, push_run, p);
}

int roster_save(struct herald *h, struct store_txn *t, const char *owner, struct ritem *it)
{
    uint64_t ver;
    struct ritem before;
    int rc = roster_load(t, owner, it->contact, &before);
    if (rc == 0)
        rc = store_roster_next_ver(t, owner, &ver);
    if (rc != 0)
        return rc;
    /* The stored request matters only while it is pending. */
    struct store_roster_item si = {it->contact, it->sub, it->ask, it->pending_in, it->approved,
                                   !it->in_roster, ver, it->name, it->groups, it->groups_len,
                                   it->request, it->pending_in ? it->request_len : 0};
    if ((rc = store_roster_put(t, owner, &si)) != 0)
        return rc;
    /* §2.1.6: a push for every change that interested resources can see. */
    if (it->in_roster)
        queue_push(h, owner, ver, it, false);
    else if (before.in_roster)
        queue_push(h, owner, ver, it, true);
    return 0;
}

struct collect {
    uint8_t want;
    char **list;
    size_t n, cap;
    int err;
};

static int collect_cb(void *ud, const struct store_roster_item *it)
{
    struct collect *c = ud;
    if (it->removed || !(it->sub & c->want))
        return 0;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        char **l = realloc(c->list, cap * sizeof(*l));
        if (l == NULL)
            return HERALD_ENOMEM;
        c->list = l;
        c->cap = cap;
    }
    if ((c->list[c->n] = strdup(it->contact)) == NULL)
        return HERALD_ENOMEM;
    c->n++;
    return 0;
}

int roster_each_sub(struct herald *h, const char *owner, uint8_t want,
                    void (*fn)(void *ud, const char *contact), void *ud)
{
    int rc;
    struct collect c = {want, NULL, 0, 0, 0};
    struct store_txn *t = batch_read(h->batch, &rc);
    if (t == NULL)
        return rc;
    rc = store_roster_each(t, owner, collect_cb, &c);
    batch_read_done(h->batch, t);
    /* Called after the walk: fn may write to the roster. */
    for (size_t i = 0; i < c.n; i++) {
        if (rc == 0)
            fn(ud, c.list[i]);
        free(c.list[i]);
    }
    free(c.list);
    return rc;
}

/* ---- the roster iq (§2.1-2.5) ---- */

struct get_ctx {
    struct buf *b;
    uint64_t since;  /* 0: full roster */
};

static int get_cb(void *ud, const struct store_roster_item *it)
{
    struct get_ctx *g = ud;
    if (g->since == 0) {
        if (!it->removed)
            item_xml(g->b, it->contact, it->name, it->sub, it->ask, it->approved, it->groups,
                     it->groups_len, false);
    } else if (it->ver > g->since) {
        item_xml(g->b, it->contact, it->name, it->sub, it->ask, it->approved, it->groups,
                 it->groups_len, it->removed);
    }
    return 0;
}

/* A stanza built as text (a roster result). */
static void send_raw(struct session *s, struct buf *b)
{
    struct chunk *ch = buf_ok(b) ? chunk_new(b->data, b->len) : NULL;
    if (ch) {
        session_send_chunk(s, ch);
        chunk_unref(ch);
    }
}

static void reply_head(struct buf *b, struct session *s, const char *id, const char *type)
{
    buf_printf(b, "<iq type='%s' id='", type);
    buf_xml_attr(b, id, strlen(id));
    buf_puts(b, "' to='");
    buf_xml_attr(b, s->full, strlen(s->full));
    buf_puts(b, "'");
}

struct deferred_reply {
    char to[1100];
    struct chunk *ok;
    char id[256];
    struct herald *h;
};

static void deferred_run(void *ctx, int failed)
{
    struct deferred_reply *d = ctx;
    if (!failed) {
        router_send(d->h, d->to, &d->ok, 1, ROUTE_FULL);
    } else if (failed != HERALD_EUNAVAIL) {
        router_batch_failed(d->h, d->to, d->id, NULL, failed);
    }
    chunk_unref(d->ok);
    free(d);
}

/* A result that must follow the batch's commit. */
static void reply_after_commit(struct session *s, const char *id)
{
    struct deferred_reply *d = calloc(1, sizeof(*d));
    struct buf b;
    buf_init(&b, 0);
    reply_head(&b, s, id, "result");
    buf_puts(&b, "/>");
    if (d == NULL || !buf_ok(&b) || (d->ok = chunk_new(b.data, b.len)) == NULL) {
        free(d);
        buf_free(&b);
        return;
    }
    buf_free(&b);
    d->h = s->h;
    snprintf(d->to, sizeof(d->to), "%s", s->full);
    snprintf(d->id, sizeof(d->id), "%s", id);
    batch_after(s->h->batch, deferred_run, d);
}

static void roster_get(struct session *s, struct xnode *iq, struct xnode *q, struct arena *a)
{
    const char *id = xml_attr(iq, "id");
    const char *ver_s = xml_attr(q, "ver");
    int rc;
    uint64_t cur = 0;
    struct store_txn *t = batch_read(s->h->batch, &rc);
    if (t == NULL || store_roster_ver(t, s->bare, &cur) != 0) {
        batch_read_done(s->h->batch, t);
        router_error(s, iq, a, HERALD_EIO, NULL, NULL);
        return;
    }
    s->roster_requested = true;
    /* A version we handed out (0 is the empty roster's) is known. */
    uint64_t since = 0;
    bool known = false;
    if (ver_s && ver_s[0] >= '0' && ver_s[0] <= '9') {
        char *end;
        unsigned long long v = strtoull(ver_s, &end, 10);
        if (*end == '\0' && v <= cur) {
            since = v;
            known = true;
        }
    }
    struct buf b;
    buf_init(&b, 0);
    if (known) {
        /* §2.6.3: an empty result, then pushes for what changed since. */
        reply_head(&b, s, id, "result");
        buf_puts(&b, "/>");
        send_raw(s, &b);
        buf_reset(&b);
        if (since < cur) {
            struct buf items;
            buf_init(&items, 0);
            struct get_ctx g = {&items, since};
            rc = store_roster_each(t, s->bare, get_cb, &g);
            /* One push per changed item, each carrying the current version. */
            const char *p = items.data ? items.data : "";
            size_t len = items.len;
            static unsigned long long seq;
            for (size_t off = 0; rc == 0 && off < len;) {
                const char *next = strstr(p + off + 1, "<item ");
                size_t end = next ? (size_t)(next - p) : len;
                buf_printf(&b, "<iq type='set' id='push-v%llu' to='", ++seq);
                buf_xml_attr(&b, s->full, strlen(s->full));
                buf_printf(&b, "'><query xmlns='" NS_ROSTER "' ver='%llu'>", (unsigned long long)cur);
                buf_append(&b, p + off, end - off);
                buf_puts(&b, "</query></iq>");
                off = end;
            }
            send_raw(s, &b);
            buf_free(&items);
        }
    } else {
        reply_head(&b, s, id, "result");
        buf_printf(&b, "><query xmlns='" NS_ROSTER "' ver='%llu'>", (unsigned long long)cur);
        struct get_ctx g = {&b, 0};
        rc = store_roster_each(t, s->bare, get_cb, &g);
        buf_puts(&b, "</query></iq>");
        if (rc == 0)
            send_raw(s, &b);
        else
            router_error(s, iq, a, rc, NULL, NULL);
    }
    buf_free(&b);
    batch_read_done(s->h->batch, t);
}

/* The requester's answer: only where its session is (in cluster mode the
 * set is applied on every instance, and s is NULL on all but one). */
static void set_error(struct session *s, struct xnode *iq, struct arena *a, int err,
                      const char *cond, const char *type)
{
    if (s != NULL)
        router_error(s, iq, a, err, cond, type);
}

static void roster_set(struct herald *h, struct session *s, const char *bare, struct xnode *iq,
                       struct xnode *q, struct arena *a)
{
    struct xnode *item = xml_child(q, NS_ROSTER, "item");
    if (item == NULL || xml_next_elem(item) != NULL || xml_attr(item, "jid") == NULL) {
        set_error(s, iq, a, 0, "bad-request", "modify"); /* §2.3.3 */
        return;
    }
    struct jid *j = arena_alloc(a, sizeof(*j));
    char contact[JID_MAX + 1];
    if (j == NULL || jid_parse_str(j, xml_attr(item, "jid")) != 0 ||
        jid_format(j, true, contact, sizeof(contact)) < 0 || strlen(contact) >= 512) {
        set_error(s, iq, a, 0, "jid-malformed", "modify");
        return;
    }
    const char *subscription = xml_attr(item, "subscription");
    int rc;
    /* One operation: a storage error fails this request alone. */
    struct store_txn *t = batch_op_begin(h->batch, &rc);
    struct ritem *it = t ? calloc(1, sizeof(*it)) : NULL;
    if (it == NULL) {
        if (t)
            batch_op_end(h->batch, t, HERALD_ENOMEM);
        set_error(s, iq, a, t ? HERALD_ENOMEM : rc, NULL, NULL);
        return;
    }
    if ((rc = roster_load(t, bare, contact, it)) != 0)
        goto fail;
    if (subscription && strcmp(subscription, "remove") == 0) {
        /* §2.5: remove, cancelling subscriptions both ways first. */
        if (!it->in_roster) {
            free(it);
            batch_op_end(h->batch, t, HERALD_EINVAL);
            set_error(s, iq, a, 0, "item-not-found", "cancel");
            return;
        }
        if (it->sub & ROSTER_TO)
            presence_subscription(h, bare, contact, "unsubscribe", NULL);
        if (it->sub & ROSTER_FROM)
            presence_subscription(h, bare, contact, "unsubscribed", NULL);
        if ((rc = roster_load(t, bare, contact, it)) != 0)
            goto fail;
        it->in_roster = false;
        it->sub = ROSTER_NONE;
        it->ask = it->approved = false;
        it->name[0] = '\0';
        it->groups_len = 0;
    } else {
        const char *name = xml_attr(item, "name");
        size_t gl = 0;
        char groups[sizeof(it->groups)];
        for (struct xnode *g = xml_first_elem(item); g; g = xml_next_elem(g)) {
            if (strcmp(g->name, "group") != 0)
                continue;
            const char *gn = xml_text(a, g);
            size_t l = gn ? strlen(gn) : 0;
            if (l == 0) { /* §2.3.3: empty group name */
                free(it);
                batch_op_end(h->batch, t, HERALD_EINVAL);
                set_error(s, iq, a, 0, "not-acceptable", "modify");
                return;
            }
            for (size_t off = 0; off < gl; off += strlen(groups + off) + 1) {
                if (strcmp(groups + off, gn) == 0) { /* §2.3.3: duplicate group */
                    free(it);
                    set_error(s, iq, a, 0, "bad-request", "modify");
                    return;
                }
            }
            if (gl + l + 1 > sizeof(groups) || (name && strlen(name) >= sizeof(it->name))) {
                free(it);
                batch_op_end(h->batch, t, HERALD_EINVAL);
                set_error(s, iq, a, 0, "not-acceptable", "modify");
                return;
            }
            memcpy(groups + gl, gn, l + 1);
            gl += l + 1;
        }
        if (name && strlen(name) >= sizeof(it->name)) {
            free(it);
            batch_op_end(h->batch, t, HERALD_EINVAL);
            set_error(s, iq, a, 0, "not-acceptable", "modify");
            return;
        }
        /* §2.1.2.5: a client cannot set subscription states; ignored. */
        snprintf(it->name, sizeof(it->name), "%s", name ? name : "");
        memcpy(it->groups, groups, gl);
        it->groups_len = gl;
        it->in_roster = true;
    }
    rc = roster_save(h, t, bare, it);
fail:
    free(it);
    if ((rc = batch_op_end(h->batch, t, rc)) != 0) {
        set_error(s, iq, a, rc, NULL, NULL);
        return;
    }
    if (s != NULL)
        reply_after_commit(s, xml_attr(iq, "id"));
}

void roster_handle_iq(struct session *s, struct xnode *iq, struct arena *a)
{
    const char *type = xml_attr(iq, "type");
    struct xnode *q = xml_child(iq, NS_ROSTER, "query");
    const char *to = xml_attr(iq, "to");
    /* §2.1.5: only the account's own resources may touch its roster. */
    if (to != NULL && strcmp(to, s->bare) != 0) {
        router_error(s, iq, a, 0, "forbidden", "auth");
        return;
    }
    if (strcmp(type, "get") == 0) {
        roster_get(s, iq, q, a);
    } else if (s->h->cluster) {
        /* Cluster mode: rosters are the same on every instance, so a change
         * goes through the log and roster_apply runs it everywhere. */
        int rc = cluster_propose_roster(s->h, s->full, iq);
        if (rc != 0)
            router_error(s, iq, a, rc, NULL, NULL);
    } else {
        roster_set(s->h, s, s->bare, iq, q, a);
    }
}

void roster_apply(struct herald *h, struct session *s, const char *full, struct xnode *iq,
                  struct arena *a)
{
    char bare[JID_MAX + 1];
    struct xnode *q = xml_child(iq, NS_ROSTER, "query");
    if (jid_bare_of(full, bare) == 0 && q != NULL)
        roster_set(h, s, bare, iq, q, a);
}
