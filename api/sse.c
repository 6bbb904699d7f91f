/* sse.c - Server-Sent Events streams of a node's items.
 *
 * One mechanism serves resume and live delivery: a stream remembers the
 * next publication seq it owes the client and, whenever the node has new
 * committed items (a pubsub watcher fires after the commit) or its write
 * queue has room again, reads the stored items from that seq on, oldest
 * first, from a committed snapshot. So a client resuming with Last-Event-ID
 * gets exactly the stored items it missed, then live ones, and a slow
 * client is paced by its queue rather than buffered without bound. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch.h"
#include "buf.h"
#include "errors.h"
#include "herald.h"
#include "http.h"
#include "pubsub.h"
#include "rest.h"
#include "store.h"

#define READ_BATCH 64 /* items per snapshot read */

struct sse {
    struct ps_watch watch;      /* first: the watcher callback finds the stream */
    struct http_conn *hc;
    struct ps_service *ps;
    struct herald *h;
    uint64_t next_seq;          /* the first seq not yet sent */
    uint8_t token_id[STORE_TOKEN_ID_LEN];
    char *jid;                  /* the token's JID */
    char *node;                 /* the node's name */
    unsigned refs;              /* the stream's own + a pending catch-up */
    bool gone;
    bool in_catch_up;
};

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
    if (!s->gone)
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

static int emit_item(void *ud, const struct store_item *it)
{
    struct emit *e = ud;
    yajl_gen g = json_gen_new();
    struct buf b;
    buf_init(&b, 0);
    if (g == NULL)
        return e->rc = HERALD_ENOMEM;
    rest_item_json(g, it);
    buf_printf(&b, "id: %llu\nevent: item\ndata: ", (unsigned long long)it->seq);
    if (json_gen_take(g, &b) != 0)
        e->rc = HERALD_ENOMEM;
    buf_puts(&b, "\n\n");
    yajl_gen_free(g);
    if (e->rc == 0 && !buf_ok(&b))
        e->rc = HERALD_ENOMEM;
    if (e->rc == 0)
        e->rc = send_event(e->s, b.data, b.len);
    buf_free(&b);
    if (e->rc != 0)
        return e->rc;
    e->s->next_seq = it->seq + 1;
    e->n++;
    /* Paced by the write queue: stop at half the bound, on_drain goes on. */
    return http_stream_backlog(e->s->hc) > http_stream_limit(e->s->hc) / 2 ? 1 : 0;
}

/* Is the stream's reader still allowed to read the node? (The token may
 * have been revoked or have expired, the JID made an outcast, the node's
 * access model changed.) */
static bool still_allowed(struct sse *s)
{
    struct store_token tok;
    struct ps_err e;
    const struct ps_node *n = pubsub_node(s->ps, s->node);
    return store_token_get(s->h->store, s->token_id, &tok) == 0 &&
           (tok.expires == 0 || (uint64_t)time(NULL) < tok.expires) && n != NULL &&
           n->id == s->watch.node_id && pubsub_can_read(s->ps, n, s->jid, &e) == 0;
}

/* Sends stored items from next_seq on while the write queue has room. */
static void catch_up(struct sse *s)
{
    if (s->gone || s->in_catch_up)
        return;
    if (!still_allowed(s)) {
        end_stream(s);
        return;
    }
    s->in_catch_up = true;
    for (;;) {
        if (s->gone || http_stream_backlog(s->hc) > http_stream_limit(s->hc) / 2)
            break; /* on_drain calls again */
        struct store_txn *t = NULL;
        if (store_txn_begin(s->h->store, false, &t) != 0) {
            end_stream(s);
            break;
        }
        struct emit e = {s, 0, 0};
        int rc = store_items_oldest(t, s->watch.node_id, s->next_seq - 1, READ_BATCH, emit_item, &e);
        store_txn_abort(t);
        if (rc != 0 || e.rc != 0) {
            end_stream(s);
            break;
        }
        if (e.n < READ_BATCH)
            break; /* all sent, or the queue is at half its bound */
    }
    s->in_catch_up = false;
}

static void on_watch(struct ps_watch *w, enum ps_watch_event ev, const char *item_id)
{
    struct sse *s = (struct sse *)w;
    if (s->gone)
        return;
    if (ev == PS_WATCH_ITEMS) {
        catch_up(s);
        return;
    }
    if (ev != PS_WATCH_DELETE && !still_allowed(s)) {
        end_stream(s);
        return;
    }
    struct buf b;
    buf_init(&b, 0);
    yajl_gen g = json_gen_new();
    if (g == NULL) {
        end_stream(s);
        return;
    }
    yajl_gen_map_open(g);
    if (ev == PS_WATCH_RETRACT && item_id)
        json_key_str(g, "id", item_id);
    yajl_gen_map_close(g);
    buf_printf(&b, "event: %s\ndata: ", ev == PS_WATCH_RETRACT ? "retract"
                                        : ev == PS_WATCH_PURGE ? "purge"
                                                               : "delete");
    int rc = json_gen_take(g, &b);
    yajl_gen_free(g);
    buf_puts(&b, "\n\n");
    if (rc == 0 && buf_ok(&b))
        send_event(s, b.data, b.len);
    buf_free(&b);
    if (ev == PS_WATCH_DELETE)
        end_stream(s); /* the watcher is already detached */
}

static void on_drain(void *ud) { catch_up(ud); }

static void on_gone(void *ud)
{
    struct sse *s = ud;
    s->gone = true;
    pubsub_unwatch(s->ps, &s->watch);
    sse_unref(s);
}

static const struct http_stream_ops stream_ops = {on_drain, on_gone};

/* Runs after this turn's commit, so that items published in the same turn
 * before the stream began are seen once they are durable. */
static void first_catch_up(void *ctx, int failed)
{
    struct sse *s = ctx;
    (void)failed;
    catch_up(s);
    sse_unref(s);
}

void sse_start(struct http_conn *hc, struct ps_service *ps, const struct ps_node *n,
               const struct store_token *tok, uint64_t next_seq)
{
    struct sse *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->jid = strdup(tok->jid)) == NULL || (s->node = strdup(n->name)) == NULL) {
        if (s)
            free(s->jid);
        free(s);
        http_problem(hc, 500, "internal-server-error", NULL, "out of memory");
        return;
    }
    s->hc = hc;
    s->ps = ps;
    s->h = http_herald(hc);
    s->next_seq = next_seq ? next_seq : 1;
    s->watch.node_id = n->id;
    s->watch.fn = on_watch;
    s->refs = 1;
    memcpy(s->token_id, tok->id, sizeof(s->token_id));
    if (pubsub_watch(ps, &s->watch) != 0) {
        sse_unref(s);
        http_problem(hc, 500, "internal-server-error", NULL, "out of memory");
        return;
    }
    if (http_stream_start(hc, &stream_ops, s) != 0) {
        pubsub_unwatch(ps, &s->watch);
        sse_unref(s);
        http_problem(hc, 500, "internal-server-error", NULL, "the stream could not start");
        return;
    }
    /* EventSource reconnects after this many ms. */
    send_event(s, "retry: 2000\n\n", 13);
    s->refs++;
    if (batch_after(s->h->batch, first_catch_up, s) != 0)
        first_catch_up(s, 0);
}
