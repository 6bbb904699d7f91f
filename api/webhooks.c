/* webhooks.c - signed webhooks (docs/webhooks.md): the REST resource, the
 * outbox written by the pubsub journal, and the dispatcher.
 *
 * Data. Every webhook is a struct wh in a uthash keyed by its id, plus an
 * index by node id (struct wh_node) that the journal consults once per
 * event: a node without webhooks costs one failed hash lookup. Per webhook
 * the outbox holds the events still to deliver, keyed (webhook id, seq)
 * in LMDB (storage/store_webhooks.c); memory keeps only counters: the seq
 * of the last record handled (done_seq) and how many follow (pending).
 *
 * Flow. The journal sees a change before its commit and writes the
 * event's JSON body as one outbox record per interested webhook, in an
 * operation of the same batch. After the commit (batch_after) the touched
 * webhooks join the ready queue; the dispatcher takes them in turn, at
 * most [webhooks] max_concurrent requests at once and one per webhook, so
 * each webhook sees its events in order. It reads the next record from a
 * committed snapshot (never a change a crash could take back), signs it and
 * POSTs it with libcurl's multi interface, whose sockets and timer are
 * uv_poll_t/uv_timer_t handles on Herald's loop: nothing blocks. A 2xx
 * deletes the record; anything else records the attempt and retries after
 * an exponential backoff with jitter; after max_attempts the event is
 * published to the webhook's dead-letter node and deleted. A record is
 * deleted only after its delivery, so a crash or kill -9 at any point
 * delivers it again after the restart (at least once).
 *
 * Guard. Destinations are resolved when a webhook is made (every address
 * must pass the guard, webhook_net.c) and checked again on every connect
 * (CURLOPT_OPENSOCKETFUNCTION sees the address curl is about to connect
 * to), so a DNS answer that changes later (rebinding) cannot reach a
 * refused address. No proxy, no redirects, http and https only. */
#include <curl/curl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uthash.h>
#include <uv.h>
#include <yajl/yajl_tree.h>

#include "batch.h"
#include "buf.h"
#include "errors.h"
#include "herald.h"
#include "http.h"
#include "log.h"
#include "pubsub.h"
#include "rest.h"
#include "store.h"
#include "webhooks.h"

#define WH_PER_NODE_MAX 16    /* webhooks on one node */
#define WH_ALLOW_MAX 64       /* blocks in [webhooks] allow */
#define WH_RESPONSE_CAP 65536 /* response bytes read before the body is cut off */
#define WH_MAX_ATTEMPTS_CAP 100
#define DEAD_LETTER_SUFFIX "/dead-letter"

enum wh_state { WH_IDLE, WH_SENDING, WH_BACKOFF };

struct wh {
    struct webhooks *W;
    struct store_webhook rec; /* as stored; counters kept current */
    UT_hash_handle hh;        /* W->by_id */
    struct wh *node_next;     /* the node index's list */
    enum wh_state state;
    bool queued;            /* in the ready queue */
    bool touched;           /* in the touched list (woken after the commit) */
    bool seen;              /* reload: found in storage */
    uint64_t next_seq;      /* seq of the next outbox record */
    uint64_t done_seq;      /* records up to this seq are handled */
    uint64_t pending;       /* records after done_seq */
    uint64_t pending_bytes; /* their size (stored records at start, event bodies since) */
    uint64_t head_seq;      /* the record being delivered, and its attempts: */
    uint32_t head_attempts; /* ... newer than a snapshot until they commit */
    int last_status;
    char last_error[160];
    uv_timer_t timer; /* backoff */
};

struct wh_node {
    uint64_t node_id;
    struct wh *list;
    unsigned n;
    UT_hash_handle hh;
};

/* One request in flight. */
struct delivery {
    struct wh *w;
    struct delivery *next, *prev; /* W->deliveries */
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    size_t body_len;
    uint64_t seq;
    uint32_t attempts; /* failed attempts before this one */
    uint8_t event;
    size_t received;
    bool capped;
    const char *refused; /* the guard refused the address it connected to */
    char errbuf[CURL_ERROR_SIZE];
};

struct wh_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct webhooks *W;
    struct wh_sock *next, *prev;
};

/* A ring of webhook ids (the ready queue): ids, not pointers, so a webhook
 * can be freed while queued (a lookup then misses). */
struct id_ring {
    uint64_t *ids;
    size_t head, len, cap;
};

struct webhooks {
    struct herald *h;
    CURLM *multi;
    uv_timer_t curl_timer;
    struct wh_sock *socks;
    struct delivery *deliveries; /* in flight */
    struct wh *by_id;
    struct wh_node *nodes;
    struct id_ring ready;
    struct id_ring touched;
    bool wake_armed;
    bool stopping;
    unsigned inflight;
    struct wh_cidr allow[WH_ALLOW_MAX];
    size_t nallow;
    uint64_t rng;
    /* /metrics */
    uint64_t n_ok, n_retry, n_dead, n_dropped, n_dead_failed;
};

static const char *const event_names[] = {"publish", "retract", "purge", "delete"};

static const char *event_name(uint8_t bit)
{
    for (unsigned i = 0; i < 4; i++)
        if (bit == 1u << i)
            return event_names[i];
    return "?";
}

static uint64_t now_ms(void) { return wall_ms(); }

static uint64_t rng_next(struct webhooks *W)
{
    uint64_t x = W->rng;
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return W->rng = x;
}

static int ring_push(struct id_ring *r, uint64_t id)
{
    if (r->len == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        uint64_t *ids = malloc(cap * sizeof(*ids));
        if (ids == NULL)
            return HERALD_ENOMEM;
        for (size_t i = 0; i < r->len; i++)
            ids[i] = r->ids[(r->head + i) % r->cap];
        free(r->ids);
        r->ids = ids;
        r->head = 0;
        r->cap = cap;
    }
    r->ids[(r->head + r->len) % r->cap] = id;
    r->len++;
    return 0;
}

static bool ring_pop(struct id_ring *r, uint64_t *id)
{
    if (r->len == 0)
        return false;
    *id = r->ids[r->head];
    r->head = (r->head + 1) % r->cap;
    r->len--;
    return true;
}

static struct wh *find(struct webhooks *W, uint64_t id)
{
    struct wh *w;
    HASH_FIND(hh, W->by_id, &id, sizeof(id), w);
    return w;
}

static void pump(struct webhooks *W);

static void ready(struct wh *w)
{
    if (w->queued || w->state != WH_IDLE)
        return;
    if (ring_push(&w->W->ready, w->rec.id) == 0)
        w->queued = true;
    else
        log_error("webhooks", "out of memory: webhook %llu waits for the next event",
                  (unsigned long long)w->rec.id);
}

/* ---- the node index ---- */

static void index_rebuild(struct webhooks *W)
{
    struct wh_node *n, *ntmp;
    HASH_ITER(hh, W->nodes, n, ntmp)
    {
        HASH_DEL(W->nodes, n);
        free(n);
    }
    struct wh *w, *tmp;
    HASH_ITER(hh, W->by_id, w, tmp)
    {
        w->node_next = NULL;
        if (w->rec.flags & STORE_WH_DOOMED)
            continue;
        HASH_FIND(hh, W->nodes, &w->rec.node_id, sizeof(uint64_t), n);
        if (n == NULL) {
            if ((n = calloc(1, sizeof(*n))) == NULL) {
                log_error("webhooks", "out of memory: webhook %llu sees no events",
                          (unsigned long long)w->rec.id);
                continue;
            }
            n->node_id = w->rec.node_id;
            HASH_ADD(hh, W->nodes, node_id, sizeof(uint64_t), n);
        }
        w->node_next = n->list;
        n->list = w;
        n->n++;
    }
}

static unsigned node_count(struct webhooks *W, uint64_t node_id)
{
    struct wh_node *n;
    HASH_FIND(hh, W->nodes, &node_id, sizeof(node_id), n);
    return n ? n->n : 0;
}

/* ---- lifetimes ---- */

static void wh_closed(uv_handle_t *hd)
{
    free(hd->data);
}

/* Frees w (unlinked from the table by the caller) once its timer closes;
 * a webhook with a request in flight is freed by the request's end. */
static void wh_free_later(struct wh *w)
{
    if (w->state == WH_SENDING) {
        w->W = NULL; /* the request's end sees it is gone */
        return;
    }
    uv_close((uv_handle_t *)&w->timer, wh_closed);
}

static struct wh *wh_new(struct webhooks *W, const struct store_webhook *rec)
{
    struct wh *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->W = W;
    w->rec = *rec;
    w->next_seq = 1;
    if (uv_timer_init(W->h->loop, &w->timer) != 0) {
        free(w);
        return NULL;
    }
    uv_unref((uv_handle_t *)&w->timer);
    w->timer.data = w;
    HASH_ADD(hh, W->by_id, rec.id, sizeof(uint64_t), w);
    return w;
}

static void wh_remove(struct webhooks *W, struct wh *w)
{
    HASH_DEL(W->by_id, w);
    wh_free_later(w);
}

/* Loads webhooks and outbox counters from committed storage, merging into
 * memory: at start, and after a failed commit (what memory assumed of the
 * lost batch is taken back). */
struct load {
    struct webhooks *W;
    struct store_txn *t;
    int rc;
};

static int load_one(void *ud, const struct store_webhook *rec)
{
    struct load *L = ud;
    struct wh *w = find(L->W, rec->id);
    if (w == NULL && (w = wh_new(L->W, rec)) == NULL)
        return HERALD_ENOMEM;
    w->seen = true;
    w->rec = *rec;
    uint64_t count, first, last, bytes;
    int rc = store_outbox_stats(L->t, rec->id, &count, &first, &last, &bytes);
    if (rc != 0)
        return rc;
    w->pending = count;
    w->pending_bytes = bytes;
    if (count) {
        w->done_seq = first - 1;
        if (w->next_seq <= last)
            w->next_seq = last + 1;
    } else {
        w->done_seq = w->next_seq - 1;
    }
    return 0;
}

static int reload(struct webhooks *W)
{
    struct load L = {W, NULL, 0};
    struct wh *w, *tmp;
    HASH_ITER(hh, W->by_id, w, tmp) w->seen = false;
    int rc = store_txn_begin(W->h->store, false, &L.t);
    if (rc == 0) {
        rc = store_webhook_each(L.t, load_one, &L);
        store_txn_abort(L.t);
    }
    if (rc != 0) {
        log_error("webhooks", "cannot load webhooks: %s", herald_strerror(rc));
        return rc;
    }
    HASH_ITER(hh, W->by_id, w, tmp)
    {
        if (!w->seen && w->state != WH_SENDING)
            wh_remove(W, w);
        else if (w->state == WH_IDLE && (w->pending || (w->rec.flags & STORE_WH_DOOMED)))
            ready(w);
    }
    index_rebuild(W);
    return 0;
}

static void on_rollback(void *ctx)
{
    struct webhooks *W = ctx;
    if (!W->stopping)
        reload(W);
}

/* ---- the journal: outbox records with the change ---- */

static void wake(void *ctx, int failed)
{
    struct webhooks *W = ctx;
    W->wake_armed = false;
    uint64_t id;
    while (ring_pop(&W->touched, &id)) {
        struct wh *w = find(W, id);
        if (w == NULL)
            continue;
        w->touched = false;
        if (failed == 0)
            ready(w);
    }
    if (failed == 0 && !W->stopping)
        pump(W);
}

static void touch(struct webhooks *W, struct wh *w)
{
    if (!w->touched && ring_push(&W->touched, w->rec.id) == 0)
        w->touched = true;
    if (!W->wake_armed && batch_after(W->h->batch, wake, W) == 0)
        W->wake_armed = true;
}

static int render_event(const struct ps_event *ev, uint8_t bit, struct buf *out)
{
    yajl_gen g = json_gen_new();
    if (g == NULL)
        return HERALD_ENOMEM;
    yajl_gen_map_open(g);
    json_key_str(g, "event", event_name(bit));
    json_key_str(g, "node", ev->node);
    if (ev->item_id && (bit == WH_EV_PUBLISH || bit == WH_EV_RETRACT))
        json_key_str(g, "id", ev->item_id);
    if (bit == WH_EV_PUBLISH) {
        json_key_uint(g, "seq", ev->seq);
        if (ev->publisher)
            json_key_str(g, "publisher", ev->publisher);
        rest_payload_json(g, ev->payload, ev->payload_len);
    }
    json_key_time(g, "timestamp", bit == WH_EV_PUBLISH && ev->published ? ev->published : now_ms());
    yajl_gen_map_close(g);
    int rc = json_gen_take(g, out) == 0 && buf_ok(out) ? 0 : HERALD_ENOMEM;
    yajl_gen_free(g);
    return rc;
}

static void journal(void *ud, struct pubsub *ps, const struct ps_event *ev)
{
    struct webhooks *W = ud;
    uint8_t bit;
    switch (ev->kind) {
    case PS_EV_PUBLISHED:
        bit = WH_EV_PUBLISH;
        break;
    case PS_EV_RETRACTED:
        bit = WH_EV_RETRACT;
        break;
    case PS_EV_PURGED:
        bit = WH_EV_PURGE;
        break;
    case PS_EV_DELETED:
        bit = WH_EV_DELETE;
        break;
    default:
        return;
    }
    if (ev->service != NULL || W->stopping)
        return; /* PEP nodes have no webhooks */
    struct wh_node *n;
    HASH_FIND(hh, W->nodes, &ev->node_id, sizeof(ev->node_id), n);
    if (n == NULL)
        return; /* the common case: costs this lookup */

    struct buf body;
    buf_init(&body, 0);
    struct wh *ws[WH_PER_NODE_MAX];
    bool queued[WH_PER_NODE_MAX] = {false};
    uint64_t seqs[WH_PER_NODE_MAX], was_dropped[WH_PER_NODE_MAX];
    uint8_t was_flags[WH_PER_NODE_MAX];
    unsigned nw = 0;
    int rc = render_event(ev, bit, &body);
    /* The event of a change that frees data (retract, purge, delete) is
     * written as such: it may use the store's reserve as its change did,
     * so a full store does not lose it. */
    struct store_txn *t = rc != 0         ? NULL
                          : bit != WH_EV_PUBLISH ? batch_op_begin_freeing(W->h->batch, &rc)
                                               : batch_op_begin(W->h->batch, &rc);
    uint64_t stamp = now_ms() * 1000;
    for (struct wh *w = n->list; t && w && rc == 0 && nw < WH_PER_NODE_MAX; w = w->node_next) {
        ws[nw] = w;
        bool want = (w->rec.events & bit) != 0;
        bool rewrite = bit == WH_EV_DELETE;
        struct store_webhook *rec = &w->rec;
        was_dropped[nw] = rec->dropped;
        was_flags[nw] = rec->flags;
        if (want && (w->pending >= W->h->cfg->webhooks_max_outbox ||
                     w->pending_bytes + body.len > W->h->cfg->webhooks_max_outbox_bytes)) {
            /* The bound: the newest event is not queued (docs/webhooks.md). */
            want = false;
            rec->dropped++;
            rewrite = true;
        }
        if (bit == WH_EV_DELETE)
            rec->flags |= STORE_WH_DOOMED;
        /* Seqs are microsecond stamps bumped past the last one: unique for
         * the webhook's life, even across restarts with an empty outbox, so
         * Herald-Delivery ids are never reused. */
        seqs[nw] = w->next_seq > stamp ? w->next_seq : stamp;
        if (want) {
            struct store_outbox o = {.webhook_id = rec->id,
                                     .seq = seqs[nw],
                                     .created = now_ms(),
                                     .event = bit,
                                     .body = body.data,
                                     .body_len = body.len};
            rc = store_outbox_put(t, &o);
            queued[nw] = rc == 0;
        }
        if (rc == 0 && rewrite)
            rc = store_webhook_put(t, rec);
        nw++;
    }
    if (t)
        rc = batch_op_end(W->h->batch, t, rc);
    if (rc != 0) {
        /* The change stands (pubsub.h); its event cannot reach the node's
         * webhooks: said loudly, counted as dropped. */
        log_error("webhooks", "an event of node '%s' could not be queued for its webhooks: %s",
                  ev->node, herald_strerror(rc));
        for (unsigned i = 0; i < nw; i++) { /* memory as storage: rolled back */
            ws[i]->rec.dropped = was_dropped[i];
            ws[i]->rec.flags = was_flags[i];
        }
        W->n_dropped += n->n;
        if (bit == WH_EV_DELETE) {
            /* The node is gone all the same: its webhooks deliver what
             * they hold, then drop_doomed removes them. */
            for (struct wh *w = n->list; w; w = w->node_next) {
                w->rec.flags |= STORE_WH_DOOMED;
                touch(W, w);
            }
            index_rebuild(W);
        }
        goto done;
    }
    for (unsigned i = 0; i < nw; i++) {
        struct wh *w = ws[i];
        if (queued[i]) {
            w->next_seq = seqs[i] + 1;
            w->pending++;
            w->pending_bytes += body.len;
        } else if ((w->rec.events & bit) != 0) {
            W->n_dropped++;
            log_warn("webhooks",
                     "webhook %llu: outbox full (%llu events, %llu bytes): a %s event of '%s' "
                     "is dropped",
                     (unsigned long long)w->rec.id, (unsigned long long)w->pending,
                     (unsigned long long)w->pending_bytes, event_name(bit), ev->node);
        }
        touch(W, w);
    }
    if (bit == WH_EV_DELETE)
        index_rebuild(W); /* the node's webhooks see nothing more */
done:
    buf_free(&body);
}

/* ---- curl on the libuv loop ---- */

static void check_done(struct webhooks *W);

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct wh_sock *s = p->data;
    int flags = 0, running;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    struct webhooks *W = s->W;
    curl_multi_socket_action(W->multi, s->fd, flags, &running);
    check_done(W);
}

static void sock_closed(uv_handle_t *hd)
{
    free(hd->data);
}

static void sock_close(struct webhooks *W, struct wh_sock *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        W->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, sock_closed);
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct webhooks *W = userp;
    struct wh_sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(W->multi, fd, NULL);
            sock_close(W, s);
        }
        return 0;
    }
    if (s == NULL) {
        if ((s = calloc(1, sizeof(*s))) == NULL)
            return -1;
        if (uv_poll_init_socket(W->h->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        uv_unref((uv_handle_t *)&s->poll);
        s->poll.data = s;
        s->fd = fd;
        s->W = W;
        s->next = W->socks;
        if (W->socks)
            W->socks->prev = s;
        W->socks = s;
        curl_multi_assign(W->multi, fd, s);
    }
    int ev = ((what & CURL_POLL_IN) ? UV_READABLE : 0) | ((what & CURL_POLL_OUT) ? UV_WRITABLE : 0);
    /* -1 makes libcurl fail the transfer: an attempt that failed, retried. */
    return uv_poll_start(&s->poll, ev, on_poll) == 0 ? 0 : -1;
}

static void on_curl_timer(uv_timer_t *t)
{
    struct webhooks *W = t->data;
    int running;
    curl_multi_socket_action(W->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(W);
}

static int on_timer(CURLM *m, long timeout_ms, void *userp)
{
    struct webhooks *W = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&W->curl_timer);
    else
        uv_timer_start(&W->curl_timer, on_curl_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* The guard on every connect: the address curl is about to use. */
static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct delivery *d = ud;
    struct webhooks *W = d->w->W;
    const char *why = W ? wh_sockaddr_refused(W->allow, W->nallow, &a->addr) : "stopping";
    if (why != NULL) {
        d->refused = why;
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype, a->protocol);
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    struct delivery *d = ud;
    d->received += size * n;
    if (d->received > WH_RESPONSE_CAP) {
        d->capped = true;
        return 0; /* ends the transfer: the status is what counts */
    }
    return size * n;
}

/* ---- delivery ---- */

static void delivery_free(struct delivery *d)
{
    if (d->easy)
        curl_easy_cleanup(d->easy);
    curl_slist_free_all(d->headers);
    free(d->body);
    free(d);
}

static int header(struct delivery *d, const char *line)
{
    struct curl_slist *l = curl_slist_append(d->headers, line);
    if (l == NULL)
        return HERALD_ENOMEM;
    d->headers = l;
    return 0;
}

static int send_one(struct webhooks *W, struct wh *w, struct delivery *d)
{
    const struct config *cfg = W->h->cfg;
    char sig[65], ev[40], id[64], sighdr[120];
    uint64_t now = (uint64_t)time(NULL);
    if (wh_sign(w->rec.secret, strlen(w->rec.secret), now, d->body, d->body_len, sig) != 0)
        return HERALD_EIO;
    snprintf(ev, sizeof(ev), "Herald-Event: %s", event_name(d->event));
    /* The same id on every attempt of one event (and after a restart): a
     * receiver can drop the duplicates at-least-once delivery may bring. */
    snprintf(id, sizeof(id), "Herald-Delivery: %llu-%llu", (unsigned long long)w->rec.id,
             (unsigned long long)d->seq);
    snprintf(sighdr, sizeof(sighdr), "Herald-Signature: t=%llu,v1=%s", (unsigned long long)now,
             sig);
    if (header(d, "Content-Type: application/json") != 0 || header(d, ev) != 0 ||
        header(d, id) != 0 || header(d, sighdr) != 0 ||
        header(d, "User-Agent: Herald/" HERALD_VERSION " webhooks") != 0 ||
        header(d, "Expect:") != 0)
        return HERALD_ENOMEM;
    CURL *e = d->easy = curl_easy_init();
    if (e == NULL)
        return HERALD_ENOMEM;
    /* Every option is checked: an older libcurl without one of them must
     * not send a request that lacks a bound. */
    bool bad = false;
    bad |= curl_easy_setopt(e, CURLOPT_URL, w->rec.url) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, d) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, d->headers) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, d->body) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)d->body_len) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)cfg->webhooks_timeout * 1000L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                            (long)cfg->webhooks_connect_timeout * 1000L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
    /* Never through a proxy from the environment (http_proxy). */
    bad |= curl_easy_setopt(e, CURLOPT_PROXY, "") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, d) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, d) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, d->errbuf) != CURLE_OK;
    if (bad)
        return HERALD_EIO;
    if (curl_multi_add_handle(W->multi, e) != CURLM_OK)
        return HERALD_ENOMEM;
    d->next = W->deliveries;
    if (W->deliveries)
        W->deliveries->prev = d;
    W->deliveries = d;
    return 0;
}

/* Drops a webhook whose node is gone once its outbox is empty. */
static void drop_doomed(struct webhooks *W, struct wh *w)
{
    int rc;
    struct store_txn *t = batch_op_begin_freeing(W->h->batch, &rc);
    if (t)
        rc = batch_op_end(W->h->batch, t, store_webhook_del(t, w->rec.id));
    if (rc != 0) {
        log_error("webhooks", "webhook %llu of deleted node '%s' cannot be removed: %s",
                  (unsigned long long)w->rec.id, w->rec.node, herald_strerror(rc));
        return;
    }
    log_info("webhooks", "webhook %llu removed with its node '%s'", (unsigned long long)w->rec.id,
             w->rec.node);
    wh_remove(W, w);
}

static void dead_letter(struct webhooks *W, struct wh *w, const char *body, size_t len,
                        uint32_t attempts, int status, const char *error);
static void on_backoff(uv_timer_t *t);

static void start(struct webhooks *W, struct wh *w)
{
    struct store_txn *t = NULL;
    struct store_outbox o;
    struct delivery *d = NULL;
    int rc = store_txn_begin(W->h->store, false, &t);
    if (rc == 0)
        rc = store_outbox_next(t, w->rec.id, w->done_seq, &o);
    if (rc == HERALD_ENOTFOUND) {
        /* Nothing committed after done_seq (yet: the wake after the commit
         * queues it again). */
        if (w->pending == 0 && (w->rec.flags & STORE_WH_DOOMED))
            drop_doomed(W, w);
        goto done;
    }
    if (rc != 0)
        goto fail;
    uint32_t attempts = o.attempts;
    if (o.seq == w->head_seq && w->head_attempts > attempts)
        attempts = w->head_attempts;
    w->head_seq = o.seq;
    w->head_attempts = attempts;
    if (attempts >= w->rec.max_attempts) {
        /* Given up before a crash, not yet moved: move it now. */
        dead_letter(W, w, o.body, o.body_len, attempts, o.last_status, "attempts exhausted");
        if (w->pending || (w->rec.flags & STORE_WH_DOOMED))
            ready(w);
        goto done;
    }
    if ((d = calloc(1, sizeof(*d))) == NULL || (d->body = malloc(o.body_len + 1)) == NULL) {
        rc = HERALD_ENOMEM;
        goto fail;
    }
    memcpy(d->body, o.body, o.body_len);
    d->body[o.body_len] = '\0';
    d->body_len = o.body_len;
    d->w = w;
    d->seq = o.seq;
    d->attempts = attempts;
    d->event = o.event;
    store_txn_abort(t);
    t = NULL;
    if ((rc = send_one(W, w, d)) != 0)
        goto fail;
    w->state = WH_SENDING;
    W->inflight++;
    return;
fail:
    log_error("webhooks", "webhook %llu: cannot send: %s (tried again after %u ms)",
              (unsigned long long)w->rec.id, herald_strerror(rc),
              W->h->cfg->webhooks_backoff_initial_ms);
    if (d)
        delivery_free(d);
    w->state = WH_BACKOFF;
    uv_timer_start(&w->timer, on_backoff, W->h->cfg->webhooks_backoff_initial_ms, 0);
done:
    if (t)
        store_txn_abort(t);
}

static void pump(struct webhooks *W)
{
    uint64_t id;
    while (!W->stopping && W->inflight < W->h->cfg->webhooks_max_concurrent &&
           ring_pop(&W->ready, &id)) {
        struct wh *w = find(W, id);
        if (w == NULL)
            continue;
        w->queued = false;
        if (w->state == WH_IDLE)
            start(W, w);
    }
}

/* The record at the head of w's outbox is done with (delivered or dead-
 * lettered): delete it with the counters, in one operation. */
static void finish_head(struct webhooks *W, struct wh *w, uint64_t seq, size_t len,
                        bool delivered)
{
    int rc;
    if (delivered)
        w->rec.delivered++;
    else
        w->rec.failures++;
    struct store_txn *t = batch_op_begin_freeing(W->h->batch, &rc);
    if (t) {
        rc = store_outbox_del(t, w->rec.id, seq);
        if (rc == 0)
            rc = store_webhook_put(t, &w->rec);
        rc = batch_op_end(W->h->batch, t, rc);
    }
    if (rc != 0)
        log_error("webhooks",
                  "webhook %llu: delivered event %llu cannot be removed from the "
                  "outbox (%s): it is sent again after a restart",
                  (unsigned long long)w->rec.id, (unsigned long long)seq, herald_strerror(rc));
    w->done_seq = seq;
    if (w->pending)
        w->pending--;
    w->pending_bytes = w->pending == 0 || len > w->pending_bytes ? 0 : w->pending_bytes - len;
    w->head_attempts = 0;
}

static void dead_letter(struct webhooks *W, struct wh *w, const char *body, size_t len,
                        uint32_t attempts, int status, const char *error)
{
    struct buf json, payload;
    buf_init(&json, 0);
    buf_init(&payload, 0);
    char id[24];
    snprintf(id, sizeof(id), "%llu", (unsigned long long)w->rec.id);
    yajl_gen g = json_gen_new();
    int rc = HERALD_ENOMEM;
    if (g) {
        yajl_gen_map_open(g);
        json_key_str(g, "webhook", id);
        json_key_str(g, "url", w->rec.url);
        json_key_uint(g, "attempts", attempts);
        json_str(g, "last_status");
        if (status)
            yajl_gen_integer(g, status);
        else
            yajl_gen_null(g);
        json_key_str(g, "last_error", error);
        json_str(g, "event");
        json_copy(g, body, len);
        yajl_gen_map_close(g);
        if (json_gen_take(g, &json) == 0 && buf_ok(&json))
            rc = rest_json_payload(json.data, json.len, &payload);
        yajl_gen_free(g);
    }
    uint64_t seq = w->head_seq;
    if (rc == 0) {
        struct ps_publish req = {.node = w->rec.dead_letter,
                                 .has_item = true,
                                 .payload = payload.data,
                                 .payload_len = payload.len};
        struct ps_published out;
        pubsub_scope(W->h->pubsub, NULL);
        rc = pubsub_publish(W->h->pubsub, w->rec.owner, &req, &out);
    }
    if (rc != 0) {
        /* The event stays at the head of the outbox (at least once): the
         * move is tried again after backoff_max_ms, until the dead-letter
         * node takes it (storage room, its quotas, the owner's rights). */
        W->n_dead_failed++;
        static struct log_limit lim;
        log_limited(&lim, LOG_ERROR, "webhooks",
                    "webhook %llu: an undeliverable event could not be published to its "
                    "dead-letter node '%s': %s; it stays in the outbox and is tried again",
                    (unsigned long long)w->rec.id, w->rec.dead_letter, herald_strerror(rc));
        w->state = WH_BACKOFF;
        uv_timer_start(&w->timer, on_backoff, W->h->cfg->webhooks_backoff_max_ms, 0);
    } else {
        W->n_dead++;
        log_warn("webhooks", "webhook %llu: an event failed %u attempts (%s): moved to '%s'",
                 (unsigned long long)w->rec.id, attempts, error, w->rec.dead_letter);
        finish_head(W, w, seq, len, false);
    }
    buf_free(&json);
    buf_free(&payload);
}

static void on_backoff(uv_timer_t *t)
{
    struct wh *w = t->data;
    w->state = WH_IDLE;
    ready(w);
    pump(w->W);
}

static void finished(struct webhooks *W, struct delivery *d, CURLcode res)
{
    long code = 0;
    curl_easy_getinfo(d->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_multi_remove_handle(W->multi, d->easy);
    if (d->prev)
        d->prev->next = d->next;
    else
        W->deliveries = d->next;
    if (d->next)
        d->next->prev = d->prev;
    W->inflight--;
    struct wh *w = d->w;
    if (w->W == NULL) {
        /* Deleted while its request was in flight. */
        uv_close((uv_handle_t *)&w->timer, wh_closed);
        goto done;
    }
    w->state = WH_IDLE;
    bool ok2xx = code >= 200 && code < 300;
    if (ok2xx && (res == CURLE_OK || (res == CURLE_WRITE_ERROR && d->capped))) {
        W->n_ok++;
        w->last_status = (int)code;
        w->last_error[0] = '\0';
        finish_head(W, w, d->seq, d->body_len, true);
    } else {
        uint32_t attempts = d->attempts + 1;
        if (d->refused)
            snprintf(w->last_error, sizeof(w->last_error), "destination refused (%s address)",
                     d->refused);
        else if (res != CURLE_OK)
            snprintf(w->last_error, sizeof(w->last_error), "%.150s",
                     d->errbuf[0] ? d->errbuf : curl_easy_strerror(res));
        else
            snprintf(w->last_error, sizeof(w->last_error), "HTTP status %ld", code);
        w->last_status = (int)code;
        w->head_seq = d->seq;
        w->head_attempts = attempts;
        if (attempts >= w->rec.max_attempts) {
            dead_letter(W, w, d->body, d->body_len, attempts, (int)code, w->last_error);
        } else {
            W->n_retry++;
            int rc;
            struct store_txn *t = batch_op_begin(W->h->batch, &rc);
            if (t) {
                struct store_outbox o = {.webhook_id = w->rec.id,
                                         .seq = d->seq,
                                         .created = now_ms(),
                                         .attempts = attempts,
                                         .last_status =
                                             (uint16_t)(code > 0 && code < 65536 ? code : 0),
                                         .event = d->event,
                                         .body = d->body,
                                         .body_len = d->body_len};
                rc = batch_op_end(W->h->batch, t, store_outbox_put(t, &o));
            }
            if (rc != 0)
                log_warn("webhooks", "webhook %llu: attempt count not stored: %s",
                         (unsigned long long)w->rec.id, herald_strerror(rc));
            /* Exponential backoff with jitter: a delay drawn from the upper
             * half of initial * 2^(attempts - 1), at most backoff_max_ms. */
            const struct config *cfg = W->h->cfg;
            uint64_t delay = cfg->webhooks_backoff_initial_ms;
            for (uint32_t i = 1; i < attempts && delay < cfg->webhooks_backoff_max_ms; i++)
                delay *= 2;
            if (delay > cfg->webhooks_backoff_max_ms)
                delay = cfg->webhooks_backoff_max_ms;
            delay = delay / 2 + rng_next(W) % (delay / 2 + 1);
            w->state = WH_BACKOFF;
            uv_timer_start(&w->timer, on_backoff, delay, 0);
        }
    }
    if (w->state == WH_IDLE && (w->pending || (w->rec.flags & STORE_WH_DOOMED)))
        ready(w);
done:
    delivery_free(d);
}

static void check_done(struct webhooks *W)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(W->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct delivery *d = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&d);
        if (d)
            finished(W, d, m->data.result);
    }
    pump(W);
}

/* ---- opening and closing ---- */

int webhooks_open(struct herald *h)
{
    if (h->cfg->cluster_name && h->cfg->cluster_name[0]) {
        /* Single-instance: every instance would deliver every event. */
        log_info("webhooks", "off in cluster mode (docs/webhooks.md)");
        return 0;
    }
    struct webhooks *W = calloc(1, sizeof(*W));
    if (W == NULL)
        return HERALD_ENOMEM;
    W->h = h;
    W->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
    int rc = wh_cidr_list_parse(h->cfg->webhooks_allow, W->allow, WH_ALLOW_MAX, &W->nallow);
    if (rc != 0) {
        log_error("webhooks",
                  "webhooks.allow: expected a list of up to %d CIDR blocks "
                  "(10.0.0.0/8, ::1/128), got '%s'",
                  WH_ALLOW_MAX, h->cfg->webhooks_allow);
        free(W);
        return HERALD_EINVAL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
        (W->multi = curl_multi_init()) == NULL) {
        free(W);
        return HERALD_ENOMEM;
    }
    if (curl_multi_setopt(W->multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
        curl_multi_setopt(W->multi, CURLMOPT_SOCKETDATA, W) != CURLM_OK ||
        curl_multi_setopt(W->multi, CURLMOPT_TIMERFUNCTION, on_timer) != CURLM_OK ||
        curl_multi_setopt(W->multi, CURLMOPT_TIMERDATA, W) != CURLM_OK ||
        uv_timer_init(h->loop, &W->curl_timer) != 0) {
        curl_multi_cleanup(W->multi);
        free(W);
        return HERALD_ENOMEM;
    }
    uv_unref((uv_handle_t *)&W->curl_timer);
    W->curl_timer.data = W;
    h->webhooks = W;
    if ((rc = reload(W)) != 0 || (rc = pubsub_journal_add(h->pubsub, journal, W)) != 0 ||
        (rc = batch_on_rollback(h->batch, on_rollback, W)) != 0)
        return rc; /* webhooks_stop/free clean up */
    unsigned n = HASH_COUNT(W->by_id);
    if (n)
        log_info("webhooks", "%u webhook(s) loaded", n);
    pump(W);
    return 0;
}

void webhooks_stop(struct herald *h)
{
    struct webhooks *W = h->webhooks;
    if (W == NULL || W->stopping)
        return;
    W->stopping = true;
    struct wh *w, *tmp;
    HASH_ITER(hh, W->by_id, w, tmp)
    {
        HASH_DEL(W->by_id, w);
        uv_close((uv_handle_t *)&w->timer, wh_closed);
    }
    /* Requests in flight are abandoned: their records stay in the outbox. */
    while (W->deliveries) {
        struct delivery *d = W->deliveries;
        W->deliveries = d->next;
        curl_multi_remove_handle(W->multi, d->easy);
        if (d->w->W == NULL) /* deleted while in flight: not in the table any more */
            uv_close((uv_handle_t *)&d->w->timer, wh_closed);
        delivery_free(d);
    }
    if (W->multi)
        curl_multi_cleanup(W->multi);
    W->multi = NULL;
    while (W->socks)
        sock_close(W, W->socks);
    uv_close((uv_handle_t *)&W->curl_timer, NULL);
}

void webhooks_free(struct herald *h)
{
    struct webhooks *W = h->webhooks;
    if (W == NULL)
        return;
    struct wh_node *n, *ntmp;
    HASH_ITER(hh, W->nodes, n, ntmp)
    {
        HASH_DEL(W->nodes, n);
        free(n);
    }
    free(W->ready.ids);
    free(W->touched.ids);
    free(W);
    h->webhooks = NULL;
    curl_global_cleanup();
}

void webhooks_metrics(struct herald *h, struct buf *b)
{
    struct webhooks *W = h->webhooks;
    if (W == NULL)
        return;
    unsigned long long pending = 0;
    struct wh *w, *tmp;
    HASH_ITER(hh, W->by_id, w, tmp) pending += w->pending;
    buf_puts(b, "# HELP herald_webhook_deliveries_total Webhook delivery outcomes: ok (2xx), retry "
                "(an attempt failed, retried later), dead_letter (gave up: sent to the dead-letter "
                "node), dead_letter_failed (the dead-letter node refused it: tried again), dropped "
                "(not queued: the outbox was full or could not be written).\n"
                "# TYPE herald_webhook_deliveries_total counter\n");
    buf_printf(b, "herald_webhook_deliveries_total{result=\"ok\"} %llu\n",
               (unsigned long long)W->n_ok);
    buf_printf(b, "herald_webhook_deliveries_total{result=\"retry\"} %llu\n",
               (unsigned long long)W->n_retry);
    buf_printf(b, "herald_webhook_deliveries_total{result=\"dead_letter\"} %llu\n",
               (unsigned long long)W->n_dead);
    buf_printf(b, "herald_webhook_deliveries_total{result=\"dead_letter_failed\"} %llu\n",
               (unsigned long long)W->n_dead_failed);
    buf_printf(b, "herald_webhook_deliveries_total{result=\"dropped\"} %llu\n",
               (unsigned long long)W->n_dropped);
    buf_printf(b,
               "# HELP herald_webhook_failures_total Events webhooks gave up on after their "
               "last attempt (moved to the dead-letter node).\n"
               "# TYPE herald_webhook_failures_total counter\nherald_webhook_failures_total "
               "%llu\n",
               (unsigned long long)W->n_dead);
    buf_printf(b,
               "# HELP herald_webhook_outbox_pending Events waiting in webhook outboxes.\n"
               "# TYPE herald_webhook_outbox_pending gauge\nherald_webhook_outbox_pending "
               "%llu\n",
               pending);
    buf_printf(b,
               "# HELP herald_webhook_requests_in_flight Webhook requests in flight.\n"
               "# TYPE herald_webhook_requests_in_flight gauge\n"
               "herald_webhook_requests_in_flight %u\n",
               W->inflight);
}

/* ---- REST ---- */

/* 0, or answered: webhooks are single-instance, and only a node's owners
 * manage them (pubsub_config_get is the service's owner check). */
static int rest_gate(struct herald *h, struct http_conn *hc, const char *who, const char *node,
                     uint64_t *node_id)
{
    if (h->cluster != NULL || (h->cfg->cluster_name && h->cfg->cluster_name[0])) {
        http_problem_code(hc, HERALD_ENOTIMPL,
                          "webhooks are single-instance: not available in cluster mode");
        return -1;
    }
    if (h->webhooks == NULL || h->webhooks->stopping) {
        http_problem_code(hc, HERALD_EUNAVAIL, "webhooks are not running");
        return -1;
    }
    struct ps_config cfg;
    struct ps_node_info info;
    pubsub_scope(h->pubsub, NULL);
    int rc = pubsub_config_get(h->pubsub, who, node, &cfg);
    if (rc == 0)
        rc = pubsub_node_get(h->pubsub, who, node, &info);
    if (rc != 0) {
        const struct ps_why *why = pubsub_why(h->pubsub);
        http_problem_code(hc, rc,
                          rc == HERALD_EFORBIDDEN ? "only the node's owners manage its "
                                                    "webhooks"
                          : why->text[0]          ? why->text
                                                  : NULL);
        return -1;
    }
    *node_id = info.id;
    return 0;
}

static void webhook_json(yajl_gen g, const struct wh *w, bool full)
{
    char id[24];
    snprintf(id, sizeof(id), "%llu", (unsigned long long)w->rec.id);
    yajl_gen_map_open(g);
    json_key_str(g, "id", id);
    json_key_str(g, "node", w->rec.node);
    json_key_str(g, "url", w->rec.url);
    json_str(g, "events");
    yajl_gen_array_open(g);
    for (unsigned i = 0; i < 4; i++)
        if (w->rec.events & (1u << i))
            json_str(g, event_names[i]);
    yajl_gen_array_close(g);
    json_key_str(g, "dead_letter", w->rec.dead_letter);
    json_key_uint(g, "max_attempts", w->rec.max_attempts);
    json_key_time(g, "created", w->rec.created);
    if (full) {
        json_key_uint(g, "delivered", w->rec.delivered);
        json_key_uint(g, "failures", w->rec.failures);
        json_key_uint(g, "dropped", w->rec.dropped);
        json_key_uint(g, "pending", w->pending);
        json_key_str(g, "state",
                     w->state == WH_SENDING   ? "sending"
                     : w->state == WH_BACKOFF ? "retrying"
                                              : "idle");
        if (w->last_error[0]) {
            json_key_str(g, "last_error", w->last_error);
            if (w->last_status)
                json_key_uint(g, "last_status", (uint64_t)w->last_status);
        }
    }
    yajl_gen_map_close(g);
}

/* A creation waiting for its host name to resolve. */
struct creation {
    uv_getaddrinfo_t req;
    struct herald *h;
    struct http_conn *hc;
    struct store_webhook rec;
    char host[256];
};

static void create_now(struct creation *c)
{
    struct herald *h = c->h;
    struct webhooks *W = h->webhooks;
    struct store_webhook *rec = &c->rec;
    yajl_gen g = NULL;
    uint64_t node_id;
    /* Checked again: the node or the ownership may have changed while the
     * name resolved. */
    if (rest_gate(h, c->hc, rec->owner, rec->node, &node_id) != 0)
        return;
    if (node_count(W, node_id) >= WH_PER_NODE_MAX) {
        http_problem_code(c->hc, HERALD_ELIMIT,
                          "the node has as many webhooks as it may have (16)");
        return;
    }
    rec->node_id = node_id;
    /* The dead-letter node: made for the owner when missing. */
    struct ps_node_info dl;
    char made[PS_NODE_NAME_MAX + 1];
    int rc = pubsub_node_get(h->pubsub, rec->owner, rec->dead_letter, &dl);
    if (rc == HERALD_ENOTFOUND) {
        /* Made to keep what it is given: the service's item cap, and no
         * quota from the owner's [quotas] defaults (an owner may still set
         * one; an event the node refuses waits in the outbox). */
        static const char *const max[] = {"max"}, *const zero[] = {"0"};
        const struct ps_field f[] = {{"pubsub#max_items", max, 1},
                                     {"herald#max_publish_rate", zero, 1},
                                     {"herald#max_subscribers", zero, 1},
                                     {"herald#max_node_bytes", zero, 1}};
        rc = pubsub_create(h->pubsub, rec->owner, rec->dead_letter, f, 4, made);
    }
    if (rc == 0)
        rc = pubsub_publish_allowed(h->pubsub, rec->owner, rec->dead_letter);
    if (rc != 0) {
        char msg[600];
        const struct ps_why *why = pubsub_why(h->pubsub);
        snprintf(msg, sizeof(msg), "the dead-letter node '%s' cannot be used: %.200s",
                 rec->dead_letter, why->text[0] ? why->text : herald_strerror(rc));
        http_problem_code(c->hc, rc, msg);
        return;
    }
    struct store_txn *t = batch_op_begin(h->batch, &rc);
    if (t) {
        rc = store_webhook_new_id(t, &rec->id);
        if (rc == 0)
            rc = store_webhook_put(t, rec);
        rc = batch_op_end(h->batch, t, rc);
    }
    if (rc != 0) {
        http_problem_code(c->hc, rc, "the webhook could not be stored");
        return;
    }
    struct wh *w = wh_new(W, rec);
    if (w == NULL) {
        /* Stored, not in memory: the next start loads it. */
        http_problem_code(c->hc, HERALD_ENOMEM, "out of memory");
        return;
    }
    w->next_seq = 1;
    w->done_seq = 0;
    index_rebuild(W);
    log_info("webhooks", "webhook %llu on '%s' by %s to %s", (unsigned long long)rec->id, rec->node,
             rec->owner, rec->url);
    struct buf loc;
    buf_init(&loc, 0);
    buf_printf(&loc, "Location: /v1/nodes/");
    for (const char *s = rec->node; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~')
            buf_putc(&loc, (char)ch);
        else
            buf_printf(&loc, "%%%02X", ch);
    }
    buf_printf(&loc, "/webhooks/%llu\r\n", (unsigned long long)rec->id);
    if ((g = json_gen_new()) == NULL || !buf_ok(&loc) || buf_nul(&loc) != 0)
        http_problem_code(c->hc, HERALD_ENOMEM, "out of memory");
    else {
        webhook_json(g, w, false);
        rest_answer_after_commit(h, c->hc, 201, g, loc.data);
    }
    if (g)
        yajl_gen_free(g);
    buf_free(&loc);
}

static void resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct creation *c = req->data;
    struct webhooks *W = c->h->webhooks;
    char msg[400];
    if (!http_alive(c->hc) || W == NULL || W->stopping)
        goto done;
    if (status < 0) {
        snprintf(msg, sizeof(msg), "the host '%s' cannot be resolved: %s", c->host,
                 uv_strerror(status));
        http_problem(c->hc, 422, NULL, NULL, msg);
        goto done;
    }
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        const char *why = wh_sockaddr_refused(W->allow, W->nallow, a->ai_addr);
        if (why != NULL) {
            char addr[64] = "?";
            getnameinfo(a->ai_addr, a->ai_addrlen, addr, sizeof(addr), NULL, 0, NI_NUMERICHOST);
            snprintf(msg, sizeof(msg),
                     "the destination %.100s (%s) is a %s address: refused "
                     "(an operator may allow it with [webhooks] allow)",
                     c->host, addr, why);
            http_problem(c->hc, 422, NULL, NULL, msg);
            goto done;
        }
    }
    create_now(c);
done:
    if (res)
        uv_freeaddrinfo(res);
    http_unref(c->hc);
    free(c);
}

/* The url's host after checking its form: http or https, a host, nothing
 * curl would not parse. 0 or -1 with msg set. */
static int check_url(const char *url, char *host, size_t cap, char *msg, size_t mcap)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *h = NULL;
    int rc = -1;
    if (u == NULL) {
        snprintf(msg, mcap, "out of memory");
        return -1;
    }
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK) {
        snprintf(msg, mcap, "\"url\" is not an absolute http or https URL");
        goto done;
    }
    if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
        snprintf(msg, mcap, "\"url\" must be http or https, not %.20s", scheme);
        goto done;
    }
    size_t n = strlen(h);
    const char *p = h;
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']')
        p++, n -= 2; /* an IPv6 literal */
    if (n == 0 || n >= cap) {
        snprintf(msg, mcap, "\"url\" has no usable host");
        goto done;
    }
    memcpy(host, p, n);
    host[n] = '\0';
    rc = 0;
done:
    curl_free(scheme);
    curl_free(h);
    curl_url_cleanup(u);
    return rc;
}

void webhooks_rest_create(struct herald *h, struct http_conn *hc, const struct http_req *req,
                          const char *who, const char *node)
{
    uint64_t node_id;
    char msg[300];
    struct creation *c = NULL;
    yajl_val body = NULL;
    if (rest_gate(h, hc, who, node, &node_id) != 0)
        return;
    if ((body = rest_json_object(hc, req)) == NULL)
        return;
    if ((c = calloc(1, sizeof(*c))) == NULL) {
        http_problem_code(hc, HERALD_ENOMEM, "out of memory");
        goto done;
    }
    const char *p_url[] = {"url", NULL}, *p_secret[] = {"secret", NULL},
               *p_events[] = {"events", NULL}, *p_dl[] = {"dead_letter", NULL},
               *p_max[] = {"max_attempts", NULL};
    yajl_val url = yajl_tree_get(body, p_url, yajl_t_any);
    yajl_val secret = yajl_tree_get(body, p_secret, yajl_t_any);
    yajl_val events = yajl_tree_get(body, p_events, yajl_t_any);
    yajl_val dl = yajl_tree_get(body, p_dl, yajl_t_any);
    yajl_val max = yajl_tree_get(body, p_max, yajl_t_any);
    struct store_webhook *rec = &c->rec;
    if (!YAJL_IS_STRING(url) || strlen(url->u.string) >= sizeof(rec->url)) {
        http_problem_code(hc, HERALD_EINVAL, "\"url\" must be a string of at most 2048 bytes");
        goto done;
    }
    if (!YAJL_IS_STRING(secret) || secret->u.string[0] == '\0' ||
        strlen(secret->u.string) >= sizeof(rec->secret)) {
        http_problem_code(hc, HERALD_EINVAL, "\"secret\" must be a string of 1 to 256 bytes");
        goto done;
    }
    rec->events = WH_EV_ALL;
    if (events) {
        rec->events = 0;
        if (!YAJL_IS_ARRAY(events) || events->u.array.len == 0) {
            http_problem_code(hc, HERALD_EINVAL,
                              "\"events\" must be a non-empty array of "
                              "\"publish\", \"retract\", \"purge\", \"delete\"");
            goto done;
        }
        for (size_t i = 0; i < events->u.array.len; i++) {
            yajl_val e = events->u.array.values[i];
            unsigned k = 0;
            while (k < 4 && !(YAJL_IS_STRING(e) && strcmp(e->u.string, event_names[k]) == 0))
                k++;
            if (k == 4) {
                http_problem_code(hc, HERALD_EINVAL,
                                  "\"events\" may hold \"publish\", "
                                  "\"retract\", \"purge\" and \"delete\"");
                goto done;
            }
            rec->events |= (uint8_t)(1u << k);
        }
    }
    rec->max_attempts = h->cfg->webhooks_max_attempts;
    if (max) {
        if (!YAJL_IS_INTEGER(max) || YAJL_GET_INTEGER(max) < 1 ||
            YAJL_GET_INTEGER(max) > WH_MAX_ATTEMPTS_CAP) {
            http_problem_code(hc, HERALD_EINVAL,
                              "\"max_attempts\" must be a whole number from 1 "
                              "to 100");
            goto done;
        }
        rec->max_attempts = (uint32_t)YAJL_GET_INTEGER(max);
    }
    int n =
        dl ? (YAJL_IS_STRING(dl)
                  ? snprintf(rec->dead_letter, sizeof(rec->dead_letter), "%s", dl->u.string)
                  : -1)
           : snprintf(rec->dead_letter, sizeof(rec->dead_letter), "%s" DEAD_LETTER_SUFFIX, node);
    if (n <= 0 || (size_t)n >= sizeof(rec->dead_letter) || strcmp(rec->dead_letter, node) == 0) {
        http_problem_code(hc, HERALD_EINVAL,
                          dl ? "\"dead_letter\" must name another node (at most 256 bytes)"
                             : "the node's name is too long for the default dead-letter node "
                               "(name one with \"dead_letter\")");
        goto done;
    }
    if (check_url(url->u.string, c->host, sizeof(c->host), msg, sizeof(msg)) != 0) {
        http_problem_code(hc, HERALD_EINVAL, msg);
        goto done;
    }
    snprintf(rec->url, sizeof(rec->url), "%s", url->u.string);
    snprintf(rec->secret, sizeof(rec->secret), "%s", secret->u.string);
    snprintf(rec->node, sizeof(rec->node), "%s", node);
    snprintf(rec->owner, sizeof(rec->owner), "%s", who);
    rec->created = now_ms();
    c->h = h;
    c->hc = hc;
    c->req.data = c;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc = uv_getaddrinfo(h->loop, &c->req, resolved, c->host, NULL, &hints);
    if (rc != 0) {
        snprintf(msg, sizeof(msg), "the host '%s' cannot be resolved: %s", c->host,
                 uv_strerror(rc));
        http_problem(hc, 422, NULL, NULL, msg);
        goto done;
    }
    http_ref(hc);
    c = NULL; /* resolved() owns it */
done:
    free(c);
    yajl_tree_free(body);
}

void webhooks_rest_list(struct herald *h, struct http_conn *hc, const char *who, const char *node)
{
    uint64_t node_id;
    if (rest_gate(h, hc, who, node, &node_id) != 0)
        return;
    yajl_gen g = json_gen_new();
    if (g == NULL) {
        http_problem_code(hc, HERALD_ENOMEM, "out of memory");
        return;
    }
    /* In id order (creation order): the table's order is insertion order. */
    yajl_gen_map_open(g);
    json_str(g, "webhooks");
    yajl_gen_array_open(g);
    struct wh *w, *tmp;
    HASH_ITER(hh, h->webhooks->by_id, w, tmp)
    {
        if (w->rec.node_id == node_id && !(w->rec.flags & STORE_WH_DOOMED))
            webhook_json(g, w, true);
    }
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    struct buf b;
    buf_init(&b, 0);
    int rc = json_gen_take(g, &b);
    buf_putc(&b, '\n');
    if (rc == 0 && buf_ok(&b))
        http_respond(hc, 200, "application/json", NULL, b.data, b.len);
    else
        http_problem_code(hc, HERALD_ENOMEM, "out of memory");
    buf_free(&b);
    yajl_gen_free(g);
}

void webhooks_rest_delete(struct herald *h, struct http_conn *hc, const char *who, const char *node,
                          const char *id)
{
    uint64_t node_id;
    if (rest_gate(h, hc, who, node, &node_id) != 0)
        return;
    char *end;
    unsigned long long v = strtoull(id, &end, 10);
    struct wh *w = (*id >= '0' && *id <= '9' && *end == '\0') ? find(h->webhooks, v) : NULL;
    if (w == NULL || w->rec.node_id != node_id || (w->rec.flags & STORE_WH_DOOMED)) {
        http_problem_code(hc, HERALD_ENOTFOUND, "no such webhook on this node");
        return;
    }
    int rc;
    struct store_txn *t = batch_op_begin_freeing(h->batch, &rc);
    if (t)
        rc = batch_op_end(h->batch, t, store_webhook_del(t, w->rec.id));
    if (rc != 0) {
        http_problem_code(hc, rc, "the webhook could not be deleted");
        return;
    }
    log_info("webhooks", "webhook %llu on '%s' deleted with %llu pending event(s)",
             (unsigned long long)w->rec.id, node, (unsigned long long)w->pending);
    wh_remove(h->webhooks, w);
    index_rebuild(h->webhooks);
    rest_answer_after_commit(h, hc, 204, NULL, NULL);
}
