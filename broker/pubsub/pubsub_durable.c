/* pubsub_durable.c - durable pubsub subscriptions over XMPP (herald#durable;
 * docs/pubsub.md "Catch-up").
 *
 * A durable subscription has a cursor in the service (pubsub.c): the seq of
 * the last item its subscriber has had. Each session of the subscriber keeps
 * a struct durable_sub per subscription it receives:
 *   delivered  the newest seq written to this session; a live item at or
 *              below it is not sent again, one beyond delivered + 1 means
 *              items were missed and the session replays from storage first;
 *   acked      the newest seq the client has acknowledged (XEP-0198) or,
 *              without stream management, that was written; saved as the
 *              cursor by durable_flush;
 *   replaying  items after `delivered` are read from committed storage
 *              (pubsub_items, oldest first, REPLAY_BATCH at a time) while
 *              the write queue has room, continued on drain; live items
 *              wait meanwhile (the replay reaches them).
 * Each notification carries <stanza-id by=service id=seq/> and a replayed
 * one a <delay/> stamp of its publication. */
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "conn.h"
#include "errors.h"
#include "herald.h"
#include "jid.h"
#include "log.h"
#include "outq.h"
#include "pubsub.h"
#include "pubsub_xmpp_impl.h"
#include "session.h"

#define REPLAY_BATCH 32

struct durable_sub {
    struct durable_sub *next;
    uint64_t node_id;
    char *node;
    char *jid;          /* the subscription's JID: the session's bare or full JID */
    bool bare;
    bool replaying;
    uint64_t delivered;
    uint64_t acked;
    uint64_t saved;     /* the cursor as last saved */
};

static struct ps_xmpp *edge(struct session *s) { return s->h->ps_xmpp; }

static struct durable_sub *find(struct session *s, uint64_t node_id, bool bare)
{
    for (struct durable_sub *d = s->durable; d; d = d->next)
        if (d->node_id == node_id && d->bare == bare)
            return d;
    return NULL;
}

static struct durable_sub *add(struct session *s, const char *node, uint64_t node_id,
                               const char *jid, uint64_t cursor)
{
    struct durable_sub *d = calloc(1, sizeof(*d));
    if (d == NULL || (d->node = strdup(node)) == NULL || (d->jid = strdup(jid)) == NULL) {
        if (d)
            free(d->node);
        free(d);
        log_error("pubsub", "%s: durable subscription to '%s' not followed: out of memory",
                  s->full, node);
        return NULL;
    }
    d->node_id = node_id;
    d->bare = strchr(jid, '/') == NULL;
    d->delivered = d->acked = d->saved = cursor;
    d->replaying = true;
    d->next = s->durable;
    s->durable = d;
    return d;
}

static void add_cb(void *ud, const char *node, uint64_t node_id, const char *jid, uint64_t cursor)
{
    struct session *s = ud;
    if (find(s, node_id, strchr(jid, '/') == NULL) == NULL)
        add(s, node, node_id, jid, cursor);
}

/* Writes one notification of item seq to s, tagged for XEP-0198. */
static int send_item(struct session *s, struct durable_sub *d, uint8_t notif_type,
                     struct chunk *body, uint64_t seq)
{
    struct chunk *env = ps_notify_envelope(edge(s), d->jid, notif_type, NULL, 0, NULL);
    if (env == NULL)
        return HERALD_ENOMEM;
    struct chunk *parts[2] = {env, body};
    struct sq_tag tag = {d->node_id, seq, d->bare};
    int rc = session_send_tagged(s, parts, 2, &tag);
    chunk_unref(env);
    if (rc != 0)
        return rc;
    s->h->stats.notifications++;
    d->delivered = seq;
    if (!s->sm.enabled)
        d->acked = seq; /* written is all we will know (saved by the sweep) */
    return 0;
}

struct replay {
    struct session *s;
    struct durable_sub *d;
    const struct ps_node_info *info;
    unsigned got;
    int rc;
};

static int replay_item(void *ud, const struct ps_item *it)
{
    struct replay *r = ud;
    r->got++;
    if (r->rc != 0 || it->seq <= r->d->delivered)
        return 0;
    char id[PS_ITEM_ID_MAX + 1], publisher[JID_MAX + 1];
    snprintf(id, sizeof(id), "%.*s", (int)it->id_len, it->id);
    snprintf(publisher, sizeof(publisher), "%.*s", (int)it->publisher_len,
             it->publisher ? it->publisher : "");
    struct ps_notify_item_args a = {r->d->node, id, publisher, it->payload, it->payload_len,
                                    r->info->config.deliver_payloads, it->published, it->seq};
    struct chunk *body = ps_notify_item(edge(r->s), &a);
    r->rc = body ? send_item(r->s, r->d, r->info->config.notification_type, body, it->seq)
                 : HERALD_ENOMEM;
    if (body)
        chunk_unref(body);
    return 0;
}

/* Replays d's items after `delivered` while s's write queue has room. */
static void pump(struct session *s, struct durable_sub *d)
{
    struct pubsub *ps = s->h->pubsub;
    struct ps_node_info info;
    if (pubsub_node_get(ps, s->bare, d->node, &info) != 0 ||
        !pubsub_durable_cursor(ps, d->node_id, d->jid, NULL)) {
        d->replaying = false; /* the node or the subscription is gone */
        return;
    }
    while (d->replaying && s->conn != NULL && s->state == ST_BOUND) {
        if (s->conn->q_bytes > s->conn->q_max / 2)
            return; /* on_drain continues */
        struct replay r = {s, d, &info, 0, 0};
        struct ps_items_query q = {.max = REPLAY_BATCH, .oldest_first = true,
                                   .after_seq = d->delivered, .committed = true};
        int rc = pubsub_items(ps, s->bare, d->node, &q, replay_item, &r);
        if (rc != 0 || r.rc != 0) {
            static struct log_limit lim;
            log_limited(&lim, LOG_WARN, "pubsub", "%s: replay of '%s' stopped: %s", s->full,
                        d->node, herald_strerror(rc ? rc : r.rc));
            d->replaying = false;
            return;
        }
        if (r.got < REPLAY_BATCH)
            d->replaying = false; /* caught up: live items flow from now on */
    }
}

void durable_continue(struct session *s)
{
    for (struct durable_sub *d = s->durable; d; d = d->next)
        if (d->replaying)
            pump(s, d);
}

void durable_available(struct session *s)
{
    if (!s->durable_started) {
        s->durable_started = true;
        pubsub_durable_each(s->h->pubsub, s->full, s->bare, add_cb, s);
    }
    durable_continue(s);
}

/* The sessions a notification to jid reaches: its session for a full JID,
 * every available resource of non-negative priority for a bare one (as a
 * headline to a bare JID goes, RFC 6121 §8.5.2.1.1). */
#define MAX_TARGETS 64

void durable_live(struct ps_xmpp *x, const struct ps_event *ev, const char *jid, uint8_t notif_type)
{
    struct herald *h = x->h;
    struct session *targets[MAX_TARGETS];
    size_t n = 0;
    const char *slash = strchr(jid, '/');
    char bare[JID_MAX + 1];
    snprintf(bare, sizeof(bare), "%.*s", (int)(slash ? (size_t)(slash - jid) : strlen(jid)), jid);
    struct account *acct = session_account(h, bare);
    for (struct session *s = acct ? acct->sessions : NULL; s && n < MAX_TARGETS; s = s->next_res)
        if (slash ? strcmp(s->resource, slash + 1) == 0 : (s->available && s->priority >= 0))
            targets[n++] = s;
    struct chunk *body = NULL;
    for (size_t i = 0; i < n; i++) {
        struct session *s = targets[i];
        struct durable_sub *d = find(s, ev->node_id, slash == NULL);
        if (d == NULL) {
            /* Made durable (or subscribed) after this session came: from
             * the cursor, which is where its delivery starts. */
            uint64_t cursor = 0;
            if (!pubsub_durable_cursor(x->ps, ev->node_id, jid, &cursor) ||
                (d = add(s, ev->node, ev->node_id, jid, cursor)) == NULL)
                continue;
            s->durable_started = true;
            d->replaying = cursor + 1 < ev->seq;
        }
        if (!d->replaying && ev->seq > d->delivered + 1)
            d->replaying = true; /* missed some (not available then): storage first */
        if (d->replaying) {
            pump(s, d); /* reaches this item too: it is committed */
            continue;
        }
        if (ev->seq <= d->delivered)
            continue;
        if (body == NULL) {
            struct ps_notify_item_args a = {ev->node,        ev->item_id,
                                            ev->publisher,   ev->payload,
                                            ev->payload_len, ev->config.deliver_payloads,
                                            0,               ev->seq};
            if ((body = ps_notify_item(x, &a)) == NULL)
                return;
        }
        send_item(s, d, notif_type, body, ev->seq);
    }
    if (body)
        chunk_unref(body);
}

void durable_acked(void *ud, const struct sq_entry *e)
{
    struct session *s = ud;
    if (e->tag.node_id == 0)
        return;
    struct durable_sub *d = find(s, e->tag.node_id, e->tag.bare);
    if (d != NULL && e->tag.seq > d->acked)
        d->acked = e->tag.seq;
}

/* Saves the cursors that moved. Cluster mode: through the log, at most once
 * a second per session (coalesced) unless the session ends. */
static void flush(struct session *s, bool ending)
{
    struct herald *h = s->h;
    if (h->cluster && !ending) {
        uint64_t now = uv_now(h->loop);
        if (now - s->durable_flushed_ms < 1000)
            return;
        s->durable_flushed_ms = now;
    }
    for (struct durable_sub *d = s->durable; d; d = d->next) {
        if (d->acked <= d->saved)
            continue;
        int rc = h->cluster ? cluster_propose_cursor(h, d->node_id, d->jid, d->acked)
                            : pubsub_durable_advance(h->pubsub, d->node_id, d->jid, d->acked);
        if (rc == 0) {
            d->saved = d->acked;
        } else {
            static struct log_limit lim;
            log_limited(&lim, LOG_WARN, "pubsub", "%s: cursor of '%s' not saved: %s (the items "
                        "after the old one will be sent again)", s->full, d->node,
                        herald_strerror(rc));
        }
    }
}

void durable_flush(struct session *s) { flush(s, false); }

void durable_end(struct session *s)
{
    flush(s, true);
    while (s->durable) {
        struct durable_sub *d = s->durable;
        s->durable = d->next;
        free(d->node);
        free(d->jid);
        free(d);
    }
}
