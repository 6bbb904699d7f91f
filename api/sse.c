/* sse.c - Server-Sent Events streams of a node's items, a sink of the
 * pubsub service's events.
 *
 * One mechanism serves resume and live delivery: a stream remembers the
 * newest publication seq it has sent and, whenever the node has new
 * committed items (a PS_EV_PUBLISHED event, which the service emits after
 * the commit) or its write queue has room again, asks the service for the
 * committed items after that seq, oldest first, as the stream's JID. So a
 * client resuming with Last-Event-ID gets exactly the stored items it
 * missed, then live ones, and a slow client is paced by its queue rather
 * than buffered without bound. Retractions, purges and the node's deletion
 * are rendered from their events directly.
 *
 * The index: one hub per server (registered once as a sink, reached as
 * h->sse), holding a uthash of node id -> the node's open streams (a doubly
 * linked list). A stream is in the index from its start until its
 * connection is gone or its node is deleted. */
#include "sse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uthash.h>

#include "batch.h"
#include "buf.h"
#include "errors.h"
#include "herald.h"
#include "http.h"
#include "pubsub.h"
#include "rest.h"
#include "store.h"

#define READ_BATCH 64 /* items per read */

struct sse;

/* The open streams of one node. */
struct sse_set {
    uint64_t node_id;
    struct sse *head;
    UT_hash_handle hh;
};

struct sse_hub {
    struct herald *h;
    struct pubsub *ps;
    struct sse_set *sets;       /* by node id */
};

struct sse {
    struct sse *prev, *next;    /* in its node's set, while linked */
    struct sse_hub *hub;        /* NULL once out of the index */
    struct http_conn *hc;
    uint64_t node_id;
    uint64_t last_seq;          /* the newest seq sent (or to resume after) */
    uint8_t token_id[STORE_TOKEN_ID_LEN];
    char *jid;                  /* the token's JID */
    char *node;                 /* the node's name */
    unsigned refs;              /* the stream's own + a pending first catch-up */
    bool gone;                  /* the connection has closed */
    bool ending;                /* we asked it to close */
    bool in_catch_up;
};

static struct sse_hub *hub_of(const struct herald *h) { return h->sse; }

/* ---- the index ---- */

static int link_stream(struct sse_hub *hub, struct sse *s)
{
    struct sse_set *set;
    HASH_FIND(hh, hub->sets, &s->node_id, sizeof(s->node_id), set);
    if (set == NULL) {
        if ((set = calloc(1, sizeof(*set))) == NULL)
            return HERALD_ENOMEM;
        set->node_id = s->node_id;
        HASH_ADD(hh, hub->sets, node_id, sizeof(set->node_id), set);
    }
    s->prev = NULL;
    s->next = set->head;
    if (set->head)
        set->head->prev = s;
    set->head = s;
    s->hub = hub;
    return 0;
}

static void unlink_stream(struct sse *s)
{
    struct sse_hub *hub = s->hub;
    struct sse_set *set;
    if (hub == NULL)
        return;
    HASH_FIND(hh, hub->sets, &s->node_id, sizeof(s->node_id), set);
    if (set) {
        if (s->prev)
            s->prev->next = s->next;
        else
            set->head = s->next;
        if (s->next)
            s->next->prev = s->prev;
        if (set->head == NULL) {
            HASH_DEL(hub->sets, set);
            free(set);
        }
    }
    s->prev = s->next = NULL;
    s->hub = NULL;
}

/* ---- one stream ---- */

static void sse_unref(struct sse *s)
{
    if (--s->refs > 0)
        return;
    free(s->jid);
    free(s->node);
    free(s);
}

static void end_stream(struct sse *s)
{
    if (s->gone || s->ending)
        return;
    s->ending = true;
    http_stream_close(s->hc);
}

static int send_event(struct sse *s, const char *text, size_t len)
{
    int rc = http_stream_send(s->hc, text, len);
    if (rc != 0)
        end_stream(s); /* too far behind: the client resumes from storage */
    return rc;
}

struct emit {
    struct sse *s;
    unsigned n;
    int rc;
};

static int emit_item(void *ud, const struct ps_item *it)
{
    struct emit *e = ud;
    struct buf b;
    buf_init(&b, 0);
    yajl_gen g = json_gen_new();
    if (g == NULL) {
        e->rc = HERALD_ENOMEM;
        goto done;
    }
    rest_item_json(g, it);
    buf_printf(&b, "id: %llu\nevent: item\ndata: ", (unsigned long long)it->seq);
    if (json_gen_take(g, &b) != 0)
        e->rc = HERALD_ENOMEM;
    buf_puts(&b, "\n\n");
    if (e->rc == 0 && !buf_ok(&b))
        e->rc = HERALD_ENOMEM;
    if (e->rc == 0)
        e->rc = send_event(e->s, b.data, b.len);
done:
    if (g)
        yajl_gen_free(g);
    buf_free(&b);
    if (e->rc != 0)
        return 1;
    e->s->last_seq = it->seq;
    e->n++;
    /* Paced by the write queue: stop at half the bound, on_drain goes on. */
    return http_stream_backlog(e->s->hc) > http_stream_limit(e->s->hc) / 2 ? 1 : 0;
}

/* Is the stream's reader still allowed to read the node? (The token may
 * have been revoked or have expired, the JID made an outcast, the node's
 * access model changed, the node deleted and made again under its name.) */
static bool still_allowed(struct sse *s, struct pubsub *ps)
{
    struct store_token tok;
    struct ps_node_info n;
    struct herald *h = http_herald(s->hc);
    return store_token_get(h->store, s->token_id, &tok) == 0 &&
           (tok.expires == 0 || (uint64_t)time(NULL) < tok.expires) &&
           pubsub_node_get(ps, s->jid, s->node, &n) == 0 && n.id == s->node_id &&
           pubsub_node_readable(ps, s->jid, s->node) == 0;
}

/* Sends the committed items after last_seq while the write queue has room. */
static void catch_up(struct sse *s, struct pubsub *ps)
{
    if (s->gone || s->ending || s->in_catch_up)
        return;
    if (!still_allowed(s, ps)) {
        end_stream(s);
        return;
    }
    s->in_catch_up = true;
    for (;;) {
        if (s->gone || s->ending || http_stream_backlog(s->hc) > http_stream_limit(s->hc) / 2)
            break; /* on_drain calls again */
        struct emit e = {s, 0, 0};
        struct ps_items_query q = {.max = READ_BATCH, .oldest_first = true,
                                   .after_seq = s->last_seq, .committed = true};
        int rc = pubsub_items(ps, s->jid, s->node, &q, emit_item, &e);
        if (rc < 0 || e.rc != 0) {
            end_stream(s);
            break;
        }
        if (e.n < READ_BATCH)
            break; /* all sent, or the queue is at half its bound */
    }
    s->in_catch_up = false;
}

/* event: retract / purge / delete. */
static void send_change(struct sse *s, const char *name, const char *item_id)
{
    struct buf b;
    buf_init(&b, 0);
    yajl_gen g = json_gen_new();
    if (g == NULL) {
        end_stream(s);
        goto done;
    }
    yajl_gen_map_open(g);
    if (item_id)
        json_key_str(g, "id", item_id);
    yajl_gen_map_close(g);
    buf_printf(&b, "event: %s\ndata: ", name);
    int rc = json_gen_take(g, &b);
    buf_puts(&b, "\n\n");
    if (rc == 0 && buf_ok(&b))
        send_event(s, b.data, b.len);
    else
        end_stream(s);
done:
    if (g)
        yajl_gen_free(g);
    buf_free(&b);
}

static void on_stream_event(struct sse *s, struct pubsub *ps, const struct ps_event *ev)
{
    if (s->gone || s->ending)
        return;
    switch (ev->kind) {
    case PS_EV_PUBLISHED:
        if (ev->seq > s->last_seq) /* else a read of this batch sent it already */
            catch_up(s, ps);
        break;
    case PS_EV_RETRACTED:
    case PS_EV_PURGED:
        if (!still_allowed(s, ps))
            end_stream(s);
        else
            send_change(s, ev->kind == PS_EV_PURGED ? "purge" : "retract",
                        ev->kind == PS_EV_RETRACTED ? ev->item_id : NULL);
        break;
    case PS_EV_DELETED:
        unlink_stream(s);
        send_change(s, "delete", NULL);
        end_stream(s);
        break;
    default:
        break;
    }
}

/* The sink: the node's streams, each told in turn. A stream may leave the
 * index (even be freed) while it is told, so the next one is taken first. */
static void on_event(void *ud, struct pubsub *ps, const struct ps_event *ev)
{
    struct sse_hub *hub = ud;
    struct sse_set *set;
    HASH_FIND(hh, hub->sets, &ev->node_id, sizeof(ev->node_id), set);
    struct sse *s = set ? set->head : NULL;
    while (s) {
        struct sse *next = s->next;
        on_stream_event(s, ps, ev);
        s = next;
    }
}

static void on_drain(void *ud)
{
    struct sse *s = ud;
    if (s->hub)
        catch_up(s, s->hub->ps);
}

static void on_gone(void *ud)
{
    struct sse *s = ud;
    s->gone = true;
    unlink_stream(s);
    sse_unref(s);
}

static const struct http_stream_ops stream_ops = {on_drain, on_gone};

/* Runs after this turn's commit, so that items published in the same turn
 * before the stream began are seen once they are durable. */
static void first_catch_up(void *ctx, int failed)
{
    struct sse *s = ctx;
    (void)failed;
    if (s->hub)
        catch_up(s, s->hub->ps);
    sse_unref(s);
}

void sse_start(struct http_conn *hc, struct pubsub *ps, const struct ps_node_info *n,
               const struct store_token *tok, uint64_t after_seq)
{
    struct herald *h = http_herald(hc);
    struct sse_hub *hub = hub_of(h);
    struct sse *s = NULL;
    if (hub == NULL || hub->ps != ps) {
        http_problem_code(hc, HERALD_EUNAVAIL, "event streams are not available");
        return;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL || (s->jid = strdup(tok->jid)) == NULL || (s->node = strdup(n->name)) == NULL)
        goto nomem;
    s->hc = hc;
    s->node_id = n->id;
    s->last_seq = after_seq;
    s->refs = 1;
    memcpy(s->token_id, tok->id, sizeof(s->token_id));
    if (link_stream(hub, s) != 0)
        goto nomem;
    int rc = http_stream_start(hc, &stream_ops, s);
    if (rc != 0) {
        unlink_stream(s);
        sse_unref(s);
        http_problem_code(hc, rc, "the stream could not start");
        return;
    }
    /* EventSource reconnects after this many ms. */
    if (send_event(s, "retry: 2000\n\n", 13) != 0)
        return; /* closing: on_gone frees it */
    s->refs++;
    if (batch_after(h->batch, first_catch_up, s) != 0)
        first_catch_up(s, 0);
    return;
nomem:
    if (s) {
        free(s->jid);
        free(s->node);
        free(s);
    }
    http_problem_code(hc, HERALD_ENOMEM, "out of memory");
}

int sse_init(struct herald *h)
{
    struct sse_hub *hub = calloc(1, sizeof(*hub));
    if (hub == NULL)
        return HERALD_ENOMEM;
    hub->h = h;
    hub->ps = h->pubsub;
    int rc = pubsub_sink_add(h->pubsub, on_event, hub);
    if (rc != 0) {
        free(hub);
        return rc;
    }
    h->sse = hub;
    return 0;
}

void sse_close(struct herald *h)
{
    struct sse_hub *hub = h->sse;
    if (hub == NULL)
        return;
    h->sse = NULL;
    /* Streams still open (there should be none: every connection has closed
     * by now) leave the index and live on until their on_gone. */
    struct sse_set *set, *tmp;
    HASH_ITER(hh, hub->sets, set, tmp) {
        for (struct sse *s = set->head, *next; s; s = next) {
            next = s->next;
            s->prev = s->next = NULL;
            s->hub = NULL;
        }
        HASH_DEL(hub->sets, set);
        free(set);
    }
    free(hub);
}
