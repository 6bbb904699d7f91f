/* pubsub.c - XEP-0060 service state and rules, the write batch (group
 * commit) and the deferred output released after each commit. */
#include "pubsub.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch.h"
#include "errors.h"
#include "herald.h"
#include "im.h"
#include "jid.h"
#include "log.h"
#include "outq.h"
#include "router.h"
#include "store.h"
#include "xml.h"

#define NS_PUBSUB "http://jabber.org/protocol/pubsub"
#define NS_EVENT "http://jabber.org/protocol/pubsub#event"
#define NS_DATA "jabber:x:data"
#define NAME_MAX_LEN 256
#define ITEM_ID_MAX 256

/* Output waiting for the batch to commit. */
enum out_kind {
    OUT_STANZA,  /* a complete stanza for `to` */
    OUT_EVENT,   /* an event body for `to`, sent behind its own envelope */
    OUT_FANOUT,  /* an event body for every subscriber of node_id */
    OUT_WATCH,   /* a change for the local watchers of node_id */
};

struct ps_out {
    struct ps_service *ps;
    enum out_kind kind;
    char *to;
    char *reply_id;        /* OUT_STANZA replies: iq id, for an error if the commit fails */
    bool is_reply;
    uint64_t node_id;
    uint8_t notif_type;
    uint8_t watch_event;
    struct chunk *body;
};

struct ps_watch_set {
    uint64_t node_id;
    struct ps_watch *head;
    UT_hash_handle hh;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void random_hex(char *out, size_t bytes)
{
    unsigned char r[32];
    if (bytes > sizeof(r))
        bytes = sizeof(r);
    if (RAND_bytes(r, (int)bytes) != 1)
        memset(r, 0, bytes); /* RAND_bytes does not fail once seeded */
    for (size_t i = 0; i < bytes; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
}

static void bare_of(const char *jid, char *out, size_t cap)
{
    size_t n = strcspn(jid, "/");
    if (n >= cap)
        n = cap - 1;
    memcpy(out, jid, n);
    out[n] = '\0';
}

static int set_err(struct ps_err *e, int code, const char *cond, const char *type, const char *app)
{
    memset(e, 0, sizeof(*e));
    e->cond = cond;
    e->type = type;
    e->app = app;
    return code;
}

/* ---- in-memory state ---- */

static void free_node(struct ps_node *n)
{
    struct ps_sub *s = n->subs;
    while (s) {
        struct ps_sub *next = s->next;
        free(s->jid);
        free(s);
        s = next;
    }
    struct ps_aff_rec *a, *tmp;
    HASH_ITER(hh, n->affs, a, tmp) {
        HASH_DEL(n->affs, a);
        free(a->jid);
        free(a);
    }
    free(n->name);
    free(n);
}

static void unlink_node(struct ps_service *ps, struct ps_node *n)
{
    HASH_DELETE(hh, ps->nodes, n);
    HASH_DELETE(hh_id, ps->by_id, n);
}

static void free_all_nodes(struct ps_service *ps)
{
    struct ps_node *n, *tmp;
    HASH_ITER(hh, ps->nodes, n, tmp) {
        unlink_node(ps, n);
        free_node(n);
    }
}

struct ps_node *pubsub_node(struct ps_service *ps, const char *name)
{
    struct ps_node *n = NULL;
    HASH_FIND_STR(ps->nodes, name, n);
    return n;
}

static struct ps_node *node_by_id(struct ps_service *ps, uint64_t id)
{
    struct ps_node *n = NULL;
    HASH_FIND(hh_id, ps->by_id, &id, sizeof(id), n);
    return n;
}

uint8_t pubsub_affiliation(const struct ps_node *n, const char *jid)
{
    char bare[JID_MAX + 1];
    bare_of(jid, bare, sizeof(bare));
    struct ps_aff_rec *a = NULL;
    HASH_FIND_STR(n->affs, bare, a);
    return a ? a->aff : AFF_NONE;
}

static int mem_set_aff(struct ps_node *n, const char *bare, uint8_t aff)
{
    struct ps_aff_rec *a = NULL;
    HASH_FIND_STR(n->affs, bare, a);
    if (aff == AFF_NONE) {
        if (a) {
            HASH_DEL(n->affs, a);
            free(a->jid);
            free(a);
        }
        return 0;
    }
    if (a == NULL) {
        a = calloc(1, sizeof(*a));
        if (a == NULL || (a->jid = strdup(bare)) == NULL) {
            free(a);
            return HERALD_ENOMEM;
        }
        HASH_ADD_KEYPTR(hh, n->affs, a->jid, strlen(a->jid), a);
    }
    a->aff = aff;
    return 0;
}

static struct ps_sub *mem_add_sub(struct ps_node *n, const char *jid, const char *subid, uint8_t state,
                                  bool deliver)
{
    struct ps_sub *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->jid = strdup(jid)) == NULL) {
        free(s);
        return NULL;
    }
    snprintf(s->subid, sizeof(s->subid), "%s", subid);
    s->state = state;
    s->deliver = deliver;
    /* Append: notification order follows subscription order. */
    struct ps_sub **pp = &n->subs;
    while (*pp) {
        if (strcmp((*pp)->jid, jid) == 0)
            n->shared_jids = true;
        pp = &(*pp)->next;
    }
    *pp = s;
    return s;
}

static void mem_del_sub(struct ps_node *n, struct ps_sub *victim)
{
    for (struct ps_sub **pp = &n->subs; *pp; pp = &(*pp)->next) {
        if (*pp == victim) {
            *pp = victim->next;
            free(victim->jid);
            free(victim);
            return;
        }
    }
}

static struct ps_node *mem_new_node(struct ps_service *ps, const char *name, uint64_t id,
                                    uint64_t created, const struct ps_config *cfg)
{
    struct ps_node *n = calloc(1, sizeof(*n));
    if (n == NULL || (n->name = strdup(name)) == NULL) {
        free(n);
        return NULL;
    }
    n->id = id;
    n->created = created;
    n->cfg = *cfg;
    HASH_ADD_KEYPTR(hh, ps->nodes, n->name, strlen(n->name), n);
    HASH_ADD(hh_id, ps->by_id, id, sizeof(n->id), n);
    return n;
}

/* ---- loading ---- */

struct load_ctx {
    struct ps_service *ps;
    struct store_txn *t;
    struct ps_node *node;
};

static int load_sub(void *ud, const struct store_sub *s)
{
    struct load_ctx *c = ud;
    bool deliver = !(s->options_len >= 1 && ((const uint8_t *)s->options)[0] == 0);
    return mem_add_sub(c->node, s->jid, s->subid, s->state, deliver) ? 0 : HERALD_ENOMEM;
}

static int load_aff(void *ud, const char *jid, uint8_t aff)
{
    struct load_ctx *c = ud;
    return mem_set_aff(c->node, jid, aff);
}

static int load_node(void *ud, const char *name, const struct store_node *sn)
{
    struct load_ctx *c = ud;
    struct ps_config cfg;
    int rc = ps_config_decode(&cfg, sn->config, sn->config_len);
    if (rc != 0) {
        log_error("pubsub", "node '%s': unreadable configuration record", name);
        return rc;
    }
    struct ps_node *n = mem_new_node(c->ps, name, sn->id, sn->created, &cfg);
    if (n == NULL)
        return HERALD_ENOMEM;
    n->next_seq = sn->next_seq;
    n->item_count = sn->item_count;
    c->node = n;
    if ((rc = store_subs_each(c->t, n->id, load_sub, c)) != 0)
        return rc;
    return store_affs_each(c->t, n->id, load_aff, c);
}

static int load(struct ps_service *ps)
{
    struct store_txn *t;
    int rc = store_txn_begin(ps->h->store, false, &t);
    if (rc != 0)
        return rc;
    struct load_ctx c = {ps, t, NULL};
    rc = store_node_each(t, load_node, &c);
    store_txn_abort(t);
    return rc;
}

/* Rollback hook: the batch failed, so memory must match LMDB again. */
static void reload(void *ctx)
{
    struct ps_service *ps = ctx;
    free_all_nodes(ps);
    int rc = load(ps);
    if (rc != 0)
        log_error("pubsub", "reloading pubsub state failed: %s", herald_strerror(rc));
}

int pubsub_open(struct herald *h, struct ps_service **out)
{
    struct ps_service *ps = calloc(1, sizeof(*ps));
    if (ps == NULL)
        return HERALD_ENOMEM;
    ps->h = h;
    const struct config *cfg = h->cfg;
    if (cfg->pubsub_jid) {
        ps->jid = strdup(cfg->pubsub_jid);
    } else {
        size_t n = strlen(cfg->domain) + 8;
        ps->jid = malloc(n);
        if (ps->jid)
            snprintf(ps->jid, n, "pubsub.%s", cfg->domain);
    }
    if (ps->jid) {
        size_t jl = strlen(ps->jid);
        ps->env_prefix_len = 15 + xml_attr_len(ps->jid, jl) + 6;
        if ((ps->env_prefix = malloc(ps->env_prefix_len + 1)) != NULL) {
            char *p = ps->env_prefix;
            memcpy(p, "<message from='", 15);
            p = xml_attr_put(p + 15, ps->jid, jl);
            memcpy(p, "' to='", 7);
        }
    }
    ps->caps.max_items = cfg->pubsub_max_items;
    ps->caps.max_payload_size = cfg->pubsub_max_payload;
    if (ps->caps.max_payload_size == 0)
        ps->caps.max_payload_size = cfg->max_stanza_size < 65536 ? (uint32_t)cfg->max_stanza_size : 65536;
    ps->auto_create = cfg->pubsub_auto_create;
    int rc = ps->jid ? load(ps) : HERALD_ENOMEM;
    if (rc == 0 && batch_on_rollback(h->batch, reload, ps) != 0)
        rc = HERALD_ENOMEM;
    if (rc != 0) {
        log_error("pubsub", "cannot load pubsub state: %s", herald_strerror(rc));
        pubsub_close(ps);
        return rc;
    }
    unsigned nodes = HASH_CNT(hh, ps->nodes);
    log_info("pubsub", "service %s: %u node(s) loaded", ps->jid, nodes);
    *out = ps;
    return 0;
}

static void free_out(struct ps_out *o)
{
    free(o->to);
    free(o->reply_id);
    chunk_unref(o->body);
    free(o);
}

void pubsub_close(struct ps_service *ps)
{
    if (ps == NULL)
        return;
    free_all_nodes(ps);
    struct ps_watch_set *set, *tmp;
    HASH_ITER(hh, ps->watch_sets, set, tmp) {
        HASH_DEL(ps->watch_sets, set);
        free(set);
    }
    free(ps->jid);
    free(ps->env_prefix);
    free(ps);
}

/* ---- the batch and its output ---- */

struct store_txn *pubsub_txn(struct ps_service *ps, int *rc)
{
    return batch_read(ps->h->batch, rc);
}

void pubsub_txn_done(struct ps_service *ps, struct store_txn *t)
{
    batch_read_done(ps->h->batch, t);
}

static void out_run(void *ctx, int failed);

/* Output waits for the batch: a result must not announce a change that a
 * crash could still take back. */
static void queue_out(struct ps_service *ps, struct ps_out *o)
{
    o->ps = ps;
    batch_after(ps->h->batch, out_run, o);
}

static struct chunk *serialize(const struct xnode *st)
{
    struct buf b;
    buf_init(&b, 0);
    xml_serialize(&b, st, NS_CLIENT);
    struct chunk *ch = buf_ok(&b) ? chunk_new(b.data, b.len) : NULL;
    buf_free(&b);
    return ch;
}

void pubsub_send(struct ps_service *ps, const char *to, const struct xnode *st, bool is_reply,
                 const char *reply_id)
{
    struct chunk *ch = serialize(st);
    if (ch == NULL)
        return;
    struct ps_out *o = calloc(1, sizeof(*o));
    if (o == NULL || (o->to = strdup(to)) == NULL ||
        (reply_id && (o->reply_id = strdup(reply_id)) == NULL)) {
        if (o)
            free(o->to);
        free(o);
        chunk_unref(ch);
        return;
    }
    o->kind = OUT_STANZA;
    o->is_reply = is_reply;
    o->body = ch;
    queue_out(ps, o);
}

/* Queues an event for every subscriber of node: body is "<event>...</event>
 * </message>", each subscriber gets its own envelope in front of it. */
static void queue_fanout(struct ps_service *ps, struct ps_node *n, struct chunk *body)
{
    struct ps_out *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        chunk_unref(body);
        return;
    }
    o->kind = OUT_FANOUT;
    o->node_id = n->id;
    o->notif_type = n->cfg.notification_type;
    o->body = body;
    queue_out(ps, o);
}

/* Queues an event body for one JID (it gets an envelope when sent). */
static void queue_event(struct ps_service *ps, const char *to, uint8_t notif_type,
                        struct chunk *body)
{
    struct ps_out *o = calloc(1, sizeof(*o));
    if (o == NULL || (o->to = strdup(to)) == NULL) {
        free(o);
        return;
    }
    o->kind = OUT_EVENT;
    o->notif_type = notif_type;
    o->body = chunk_ref(body);
    queue_out(ps, o);
}

/* Sends envelope + body; subids non-NULL adds SHIM headers naming the
 * subscriptions the notification is for (XEP-0060 §12.7). The envelope
 * "<message from='S' to='T' type='headline' id='ps-N'>" is the only
 * per-subscriber work of a fan-out: it is written straight into a chunk of
 * its exact size (no printf, no intermediate buffer). */
static void send_envelope(struct ps_service *ps, const char *to, uint8_t notif_type,
                          struct chunk *body, const struct buf *subids)
{
    static const char type_headline[] = "' type='headline' id='ps-";
    static const char type_normal[] = "' type='normal' id='ps-";
    const char *type = notif_type == PS_NOTIF_NORMAL ? type_normal : type_headline;
    size_t type_len = notif_type == PS_NOTIF_NORMAL ? sizeof(type_normal) - 1
                                                    : sizeof(type_headline) - 1;
    char num[24];
    size_t nl = 0;
    for (uint64_t v = ++ps->msg_seq; v || nl == 0; v /= 10)
        num[sizeof(num) - 1 - nl++] = (char)('0' + v % 10);
    size_t tl = strlen(to), sl = subids ? subids->len : 0;
    if (ps->env_prefix == NULL)
        return;
    struct chunk *env =
        chunk_alloc(ps->env_prefix_len + xml_attr_len(to, tl) + type_len + nl + 2 + sl);
    if (env == NULL)
        return;
    char *p = env->data;
    memcpy(p, ps->env_prefix, ps->env_prefix_len);
    p = xml_attr_put(p + ps->env_prefix_len, to, tl);
    memcpy(p, type, type_len);
    memcpy(p += type_len, num + sizeof(num) - nl, nl);
    p += nl;
    *p++ = '\'';
    *p++ = '>';
    if (sl)
        memcpy(p, subids->data, sl);
    struct chunk *parts[2] = {env, body};
    if (router_send(ps->h, to, parts, 2, ROUTE_MESSAGE) > 0)
        ps->h->stats.notifications++;
    chunk_unref(env);
}

static bool wants(const struct ps_sub *s)
{
    return s->state == SUB_SUBSCRIBED && s->deliver;
}

/* One notification per subscribed JID. The fast path (no JID with several
 * subscriptions) is a plain walk; otherwise each JID gets one message with
 * SHIM headers listing its subids. via: the collection the event reached
 * this node's subscribers through (XEP-0248), named in a header. */
static void notify_subscribers(struct ps_service *ps, struct ps_node *n, const struct ps_out *o,
                               const char *via)
{
    if (!n->shared_jids || via) {
        struct buf h;
        buf_init(&h, 0);
        if (via) {
            buf_puts(&h, "<headers xmlns='http://jabber.org/protocol/shim'><header name='Collection'>");
            buf_xml_text(&h, via, strlen(via));
            buf_puts(&h, "</header></headers>");
        }
        for (struct ps_sub *s = n->subs; s; s = s->next)
            if (wants(s))
                send_envelope(ps, s->jid, o->notif_type, o->body, via && buf_ok(&h) ? &h : NULL);
        buf_free(&h);
        return;
    }
    for (struct ps_sub *s = n->subs; s; s = s->next) {
        if (!wants(s))
            continue;
        bool seen = false, shared = false;
        for (struct ps_sub *p = n->subs; p != s && !seen; p = p->next)
            seen = wants(p) && strcmp(p->jid, s->jid) == 0;
        if (seen)
            continue; /* this JID was notified with its first subscription */
        struct buf h;
        buf_init(&h, 0);
        buf_puts(&h, "<headers xmlns='http://jabber.org/protocol/shim'>");
        for (struct ps_sub *p = s; p; p = p->next) {
            if (wants(p) && strcmp(p->jid, s->jid) == 0) {
                buf_printf(&h, "<header name='SubID'>%s</header>", p->subid);
                shared = shared || p != s;
            }
        }
        buf_puts(&h, "</headers>");
        send_envelope(ps, s->jid, o->notif_type, o->body, shared && buf_ok(&h) ? &h : NULL);
        buf_free(&h);
    }
}

/* The node's own subscribers, then those of the collections above it. */
static void fan_out(struct ps_service *ps, struct ps_node *n, const struct ps_out *o)
{
    if (n == NULL)
        return;
    notify_subscribers(ps, n, o, NULL);
    struct ps_node *p = n;
    for (int depth = 0; depth < 10 && p->cfg.collection[0]; depth++) {
        p = pubsub_node(ps, p->cfg.collection);
        if (p == NULL)
            break;
        notify_subscribers(ps, p, o, p->name);
    }
}

/* ---- local watchers ---- */

int pubsub_watch(struct ps_service *ps, struct ps_watch *w)
{
    struct ps_watch_set *set;
    HASH_FIND(hh, ps->watch_sets, &w->node_id, sizeof(w->node_id), set);
    if (set == NULL) {
        if ((set = calloc(1, sizeof(*set))) == NULL)
            return HERALD_ENOMEM;
        set->node_id = w->node_id;
        HASH_ADD(hh, ps->watch_sets, node_id, sizeof(set->node_id), set);
    }
    w->prev = NULL;
    w->next = set->head;
    if (set->head)
        set->head->prev = w;
    set->head = w;
    return 0;
}

void pubsub_unwatch(struct ps_service *ps, struct ps_watch *w)
{
    struct ps_watch_set *set;
    HASH_FIND(hh, ps->watch_sets, &w->node_id, sizeof(w->node_id), set);
    if (set == NULL || (w->prev == NULL && set->head != w))
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        set->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    if (set->head == NULL) {
        HASH_DEL(ps->watch_sets, set);
        free(set);
    }
}

static bool watched(struct ps_service *ps, uint64_t node_id)
{
    struct ps_watch_set *set;
    HASH_FIND(hh, ps->watch_sets, &node_id, sizeof(node_id), set);
    return set != NULL;
}

static void queue_watch(struct ps_service *ps, uint64_t node_id, enum ps_watch_event ev,
                        const char *item_id)
{
    if (!watched(ps, node_id))
        return;
    struct ps_out *o = calloc(1, sizeof(*o));
    if (o == NULL || (item_id && (o->to = strdup(item_id)) == NULL)) {
        free(o);
        return;
    }
    o->kind = OUT_WATCH;
    o->node_id = node_id;
    o->watch_event = (uint8_t)ev;
    queue_out(ps, o);
}

static void run_watchers(struct ps_service *ps, uint64_t node_id, enum ps_watch_event ev,
                         const char *item_id)
{
    struct ps_watch_set *set;
    HASH_FIND(hh, ps->watch_sets, &node_id, sizeof(node_id), set);
    struct ps_watch *w = set ? set->head : NULL;
    while (w) {
        /* fn may unwatch w (or close its stream): step first. */
        struct ps_watch *next = w->next;
        if (ev == PS_WATCH_DELETE)
            pubsub_unwatch(ps, w);
        w->fn(w, ev, item_id);
        w = next;
    }
}

static void out_run(void *ctx, int failed)
{
    struct ps_out *o = ctx;
    struct ps_service *ps = o->ps;
    if (!failed && o->kind == OUT_WATCH) {
        run_watchers(ps, o->node_id, (enum ps_watch_event)o->watch_event, o->to);
    } else if (!failed) {
        if (o->kind == OUT_STANZA)
            router_send(ps->h, o->to, &o->body, 1, o->is_reply ? ROUTE_FULL : ROUTE_MESSAGE);
        else if (o->kind == OUT_EVENT)
            send_envelope(ps, o->to, o->notif_type, o->body, NULL);
        else
            fan_out(ps, node_by_id(ps, o->node_id), o);
    } else if (o->is_reply && failed != HERALD_EUNAVAIL) {
        /* The change is not durable: tell the requester. */
        router_batch_failed(ps->h, o->to, o->reply_id, ps->jid, failed);
    }
    free_out(o);
}

/* Begins (or joins) the batch for a change. */
static struct store_txn *begin_change(struct ps_service *ps, struct ps_err *err, int *rc)
{
    struct store_txn *t = batch_txn(ps->h->batch, rc);
    if (t == NULL)
        set_err(err, *rc, "internal-server-error", "wait", NULL);
    return t;
}

/* A store call inside the batch failed: the batch is lost. */
static int change_failed(struct ps_service *ps, int rc, struct ps_err *err)
{
    batch_abort(ps->h->batch, rc); /* runs reload() */
    return set_err(err, rc, rc == HERALD_EFULL ? "resource-constraint" : "internal-server-error",
                   "wait", NULL);
}

static int write_node(struct store_txn *t, struct ps_node *n)
{
    uint8_t cfg[1024];
    size_t len = ps_config_encode(&n->cfg, cfg, sizeof(cfg));
    if (len == 0)
        return HERALD_EIO;
    struct store_node sn = {n->id, n->created, n->next_seq, n->item_count, cfg, len};
    return store_node_put(t, n->name, &sn);
}

static void to_store_node(const struct ps_node *n, struct store_node *sn, uint8_t *cfg, size_t cap)
{
    sn->id = n->id;
    sn->created = n->created;
    sn->next_seq = n->next_seq;
    sn->item_count = n->item_count;
    sn->config = cfg;
    sn->config_len = ps_config_encode(&n->cfg, cfg, cap);
}

/* ---- access rules ---- */

static struct ps_node *need_node(struct ps_service *ps, const char *name, struct ps_err *err)
{
    struct ps_node *n = name ? pubsub_node(ps, name) : NULL;
    if (n == NULL)
        set_err(err, HERALD_ENOTFOUND, "item-not-found", "cancel", NULL);
    return n;
}

static bool is_owner(const struct ps_node *n, const char *who)
{
    return pubsub_affiliation(n, who) == AFF_OWNER;
}

/* The node named `name`, if `who` owns it; else NULL with err set
 * (item-not-found, or forbidden: XEP-0060 §8.*.3). */
static struct ps_node *owned_node(struct ps_service *ps, const char *name, const char *who,
                                  struct ps_err *err)
{
    struct ps_node *n = need_node(ps, name, err);
    if (n != NULL && !is_owner(n, who)) {
        set_err(err, HERALD_EFORBIDDEN, "forbidden", "auth", NULL);
        return NULL;
    }
    return n;
}

/* Prepares jid (RFC 7622) into out, bare or full. Returns 0 or -1. */
static int prep_jid(const char *jid, bool bare, char *out, size_t cap)
{
    struct jid *j = malloc(sizeof(*j)); /* 3 KiB: not on the stack */
    int rc = (j == NULL || jid == NULL || jid_parse_str(j, jid) != 0 ||
              jid_format(j, bare, out, cap) < 0) ? -1 : 0;
    free(j);
    return rc;
}

/* The presence access model (XEP-0060 §4.5): who holds a presence
 * subscription (from/both in an owner's roster) to one of the owners. */
static bool sees_owner_presence(struct ps_service *ps, const struct ps_node *n, const char *who)
{
    char bare[JID_MAX + 1];
    bare_of(who, bare, sizeof(bare));
    struct ps_aff_rec *r, *tmp;
    HASH_ITER(hh, n->affs, r, tmp) {
        if (r->aff == AFF_OWNER && im_presence_subscribed(ps->h, r->jid, bare))
            return true;
    }
    return false;
}

static bool has_subscription(const struct ps_node *n, const char *who)
{
    char bare[JID_MAX + 1];
    bare_of(who, bare, sizeof(bare));
    for (const struct ps_sub *s = n->subs; s; s = s->next) {
        if (s->state != SUB_SUBSCRIBED)
            continue;
        if (strcmp(s->jid, who) == 0 || strcmp(s->jid, bare) == 0)
            return true;
    }
    return false;
}

int pubsub_can_read(struct ps_service *ps, const struct ps_node *n, const char *who,
                    struct ps_err *err)
{
    uint8_t aff = pubsub_affiliation(n, who);
    if (aff == AFF_OUTCAST)
        return set_err(err, HERALD_EFORBIDDEN, "forbidden", "auth", NULL);
    if (aff == AFF_OWNER || aff == AFF_PUBLISHER || aff == AFF_MEMBER)
        return 0;
    switch (n->cfg.access_model) {
    case PS_ACCESS_OPEN: return 0;
    case PS_ACCESS_WHITELIST:
        /* XEP-0060 §6.5.9.4 */
        return set_err(err, HERALD_EFORBIDDEN, "not-allowed", "cancel", "closed-node");
    case PS_ACCESS_AUTHORIZE:
        if (has_subscription(n, who))
            return 0;
        /* §6.5.9.5 */
        return set_err(err, HERALD_EFORBIDDEN, "not-authorized", "auth", "not-subscribed");
    case PS_ACCESS_PRESENCE:
        if (sees_owner_presence(ps, n, who))
            return 0;
        /* §6.5.9.2 */
        return set_err(err, HERALD_EFORBIDDEN, "not-authorized", "auth",
                       "presence-subscription-required");
    default:
        return set_err(err, HERALD_ENOTIMPL, "feature-not-implemented", "cancel", "unsupported");
    }
}

static bool can_publish(const struct ps_node *n, const char *who)
{
    uint8_t aff = pubsub_affiliation(n, who);
    if (aff == AFF_OUTCAST)
        return false;
    if (aff == AFF_OWNER || aff == AFF_PUBLISHER || aff == AFF_PUBLISH_ONLY)
        return true;
    if (n->cfg.publish_model == PS_PUBLISH_OPEN)
        return true;
    return n->cfg.publish_model == PS_PUBLISH_SUBSCRIBERS && has_subscription(n, who);
}

/* XEP-0248: a node's pubsub#collection must name an existing collection
 * node, and following parents must never lead back to the node. */
static int check_collection(struct ps_service *ps, const char *name, const struct ps_config *cfg,
                            struct ps_err *err)
{
    if (cfg->collection[0] == '\0')
        return 0;
    const char *p = cfg->collection;
    for (int depth = 0; p[0] != '\0'; depth++) {
        struct ps_node *parent = pubsub_node(ps, p);
        if (parent == NULL)
            return set_err(err, HERALD_ENOTFOUND, "item-not-found", "cancel", NULL);
        if (parent->cfg.node_type != PS_COLLECTION || strcmp(parent->name, name) == 0 || depth > 8)
            return set_err(err, HERALD_EINVAL, "not-acceptable", "modify", NULL);
        p = parent->cfg.collection;
    }
    return 0;
}

/* ---- owner use cases (XEP-0060 §8) ---- */

int pubsub_create(struct ps_service *ps, const char *who, const char *name,
                  const struct xnode *config_form, struct arena *a, char **created_name,
                  struct ps_err *err)
{
    char instant[40];
    int rc;
    struct ps_config cfg;
    ps_config_defaults(&cfg, &ps->caps);
    if (name == NULL) {
        /* §8.1.2: instant node, a unique name chosen by the service. */
        random_hex(instant, 12);
        name = instant;
    }
    if (name[0] == '\0' || strlen(name) > NAME_MAX_LEN)
        return set_err(err, HERALD_EINVAL, "not-acceptable", "modify", NULL);
    if (pubsub_node(ps, name) != NULL)
        return set_err(err, HERALD_EEXIST, "conflict", "cancel", NULL); /* §8.1.1 */
    if (config_form != NULL) {
        struct ps_form_error fe;
        rc = ps_config_apply_form(&cfg, &ps->caps, config_form, true, a, &fe);
        if (rc != 0) {
            set_err(err, rc, fe.cond, fe.type, fe.app);
            err->feature = fe.feature;
            return rc;
        }
    }
    if ((rc = check_collection(ps, name, &cfg, err)) != 0)
        return rc;
    struct store_txn *t = begin_change(ps, err, &rc);
    if (t == NULL)
        return rc;
    uint64_t id;
    if ((rc = store_node_new_id(t, &id)) != 0)
        return change_failed(ps, rc, err);
    struct ps_node *n = mem_new_node(ps, name, id, now_ms(), &cfg);
    if (n == NULL)
        return change_failed(ps, HERALD_ENOMEM, err);
    n->next_seq = 1; /* sequence 0 means "before the first item" when paging */
    char owner[JID_MAX + 1];
    bare_of(who, owner, sizeof(owner));
    if ((rc = mem_set_aff(n, owner, AFF_OWNER)) != 0 || (rc = write_node(t, n)) != 0 ||
        (rc = store_aff_put(t, id, owner, AFF_OWNER)) != 0)
        return change_failed(ps, rc, err);
    *created_name = n->name;
    log_info("pubsub", "%s created node '%s'", owner, n->name);
    return 0;
}

static struct chunk *event_chunk(const char *inner_fmt_node, const char *node, const char *extra)
{
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "<event xmlns='" NS_EVENT "'><");
    buf_puts(&b, inner_fmt_node);
    buf_puts(&b, " node='");
    buf_xml_attr(&b, node, strlen(node));
    buf_puts(&b, "'");
    if (extra)
        buf_puts(&b, extra);
    else
        buf_puts(&b, "/>");
    buf_puts(&b, "</event></message>");
    struct chunk *ch = buf_ok(&b) ? chunk_new(b.data, b.len) : NULL;
    buf_free(&b);
    return ch;
}

int pubsub_delete(struct ps_service *ps, const char *who, const char *name, const char *redirect,
                  struct ps_err *err)
{
    struct ps_node *n = owned_node(ps, name, who, err); /* §8.4.3 */
    int rc;
    if (n == NULL)
        return HERALD_EFORBIDDEN;
    struct store_txn *t = begin_change(ps, err, &rc);
    if (t == NULL)
        return rc;
    if ((rc = store_node_del(t, n->name, n->id)) != 0)
        return change_failed(ps, rc, err);
    if (n->cfg.notify_delete) {
        /* §8.4.2: subscribers learn of the deletion (with a redirect if given).
         * The node leaves memory now, so each subscriber gets its own entry. */
        struct chunk *body;
        if (redirect) {
            struct buf b;
            buf_init(&b, 0);
            buf_puts(&b, "><redirect uri='");
            buf_xml_attr(&b, redirect, strlen(redirect));
            buf_puts(&b, "'/></delete>");
            body = buf_ok(&b) ? event_chunk("delete", n->name, b.data) : NULL;
            buf_free(&b);
        } else {
            body = event_chunk("delete", n->name, NULL);
        }
        for (struct ps_sub *s = body ? n->subs : NULL; s; s = s->next)
            if (s->state == SUB_SUBSCRIBED && s->deliver)
                queue_event(ps, s->jid, n->cfg.notification_type, body);
        chunk_unref(body);
    }
    /* Children of a deleted collection stay, outside any collection. */
    struct ps_node *c, *ctmp;
    HASH_ITER(hh, ps->nodes, c, ctmp) {
        if (strcmp(c->cfg.collection, n->name) != 0)
            continue;
        c->cfg.collection[0] = '\0';
        if ((rc = write_node(t, c)) != 0)
            return change_failed(ps, rc, err);
    }
    queue_watch(ps, n->id, PS_WATCH_DELETE, NULL);
    log_info("pubsub", "node '%s' deleted", n->name);
    unlink_node(ps, n);
    free_node(n);
    return 0;
}

int pubsub_purge(struct ps_service *ps, const char *who, const char *name, struct ps_err *err)
{
    struct ps_node *n = owned_node(ps, name, who, err); /* §8.5.3 */
    int rc;
    if (n == NULL)
        return HERALD_EFORBIDDEN;
    struct store_txn *t = begin_change(ps, err, &rc);
    if (t == NULL)
        return rc;
    uint8_t cfg[1024];
    struct store_node sn;
    to_store_node(n, &sn, cfg, sizeof(cfg));
    if ((rc = store_items_purge(t, n->name, &sn)) != 0)
        return change_failed(ps, rc, err);
    n->item_count = 0;
    queue_watch(ps, n->id, PS_WATCH_PURGE, NULL);
    if (n->cfg.notify_retract) {
        struct chunk *body = event_chunk("purge", n->name, NULL); /* §8.5.2 */
        if (body)
            queue_fanout(ps, n, body);
    }
    return 0;
}

int pubsub_configure(struct ps_service *ps, const char *who, const char *name,
                     const struct xnode *form, struct arena *a, struct ps_err *err)
{
    struct ps_node *n = owned_node(ps, name, who, err); /* §8.2.3 */
    int rc;
    if (n == NULL)
        return HERALD_EFORBIDDEN;
    struct ps_config cfg = n->cfg;
    struct ps_form_error fe;
    rc = ps_config_apply_form(&cfg, &ps->caps, form, false, a, &fe);
    if (rc != 0) {
        set_err(err, rc, fe.cond, fe.type, fe.app);
        err->feature = fe.feature;
        return rc;
    }
    if ((rc = check_collection(ps, n->name, &cfg, err)) != 0)
        return rc;
    struct store_txn *t = begin_change(ps, err, &rc);
    if (t == NULL)
        return rc;
    struct ps_config old = n->cfg;
    n->cfg = cfg;
    if ((rc = write_node(t, n)) != 0) {
        n->cfg = old;
        return change_failed(ps, rc, err);
    }
    /* A smaller max_items holds at once: trim in the same transaction. */
    uint32_t keep = ps_config_keep(&cfg, &ps->caps);
    if (n->item_count > keep) {
        struct store_node sn;
        uint8_t cb[1024];
        to_store_node(n, &sn, cb, sizeof(cb));
        if ((rc = store_items_trim(t, n->name, &sn, keep, NULL)) != 0)
            return change_failed(ps, rc, err);
        n->item_count = sn.item_count;
    }
    if (cfg.notify_config) {
        /* §8.2.5.2: with deliver_payloads the notification carries the form. */
        struct chunk *body = NULL;
        struct xnode *x = cfg.deliver_payloads ? ps_config_form(a, &cfg, &ps->caps) : NULL;
        if (x != NULL) {
            xml_set_attr(a, x, "type", "result");
            struct buf b;
            buf_init(&b, 0);
            buf_putc(&b, '>');
            xml_serialize(&b, x, NS_EVENT);
            buf_puts(&b, "</configuration>");
            body = buf_ok(&b) ? event_chunk("configuration", n->name, b.data) : NULL;
            buf_free(&b);
        } else {
            body = event_chunk("configuration", n->name, NULL);
        }
        if (body)
            queue_fanout(ps, n, body);
    }
    return 0;
}

void pubsub_expire(struct ps_service *ps)
{
    uint64_t now = now_ms();
    struct ps_node *n, *tmp;
    HASH_ITER(hh, ps->nodes, n, tmp) {
        if (n->cfg.item_expire == 0 || n->item_count == 0)
            continue;
        uint64_t cutoff = now - (uint64_t)n->cfg.item_expire * 1000;
        struct ps_err err;
        int rc;
        struct store_txn *t = begin_change(ps, &err, &rc);
        if (t == NULL)
            return;
        struct store_node sn;
        uint8_t cb[1024];
        unsigned gone = 0;
        to_store_node(n, &sn, cb, sizeof(cb));
        if ((rc = store_items_expire(t, n->name, &sn, cutoff, &gone)) != 0) {
            change_failed(ps, rc, &err);
            return; /* state was reloaded: the iteration is over */
        }
        n->item_count = sn.item_count;
        if (gone)
            log_debug("pubsub", "node '%s': %u item(s) expired", n->name, gone);
    }
}

/* ---- publisher use cases (XEP-0060 §7) ---- */

/* "<event><items node='N'><item id='I' publisher='P'>payload</item></items>
 *  </event></message>": the shared body of a publish notification. */
static struct chunk *item_event(const char *node, const char *id, size_t id_len,
                                const char *publisher, const char *payload, size_t payload_len)
{
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "<event xmlns='" NS_EVENT "'><items node='");
    buf_xml_attr(&b, node, strlen(node));
    buf_puts(&b, "'><item id='");
    buf_xml_attr(&b, id, id_len);
    if (publisher) {
        buf_puts(&b, "' publisher='");
        buf_xml_attr(&b, publisher, strlen(publisher));
    }
    if (payload_len) {
        buf_puts(&b, "'>");
        buf_append(&b, payload, payload_len);
        buf_puts(&b, "</item></items></event></message>");
    } else {
        buf_puts(&b, "'/></items></event></message>");
    }
    struct chunk *ch = buf_ok(&b) ? chunk_new(b.data, b.len) : NULL;
    buf_free(&b);
    return ch;
}

int pubsub_publish(struct ps_service *ps, const char *who, const struct ps_publish_req *req,
                   struct arena *a, char *id_out, size_t id_cap, struct ps_err *err)
{
    int rc;
    struct ps_node *n = req->node ? pubsub_node(ps, req->node) : NULL;
    if (req->node == NULL)
        return set_err(err, HERALD_EINVAL, "bad-request", "modify", "nodeid-required");
    if (n == NULL && ps->auto_create) {
        /* §7.1.4: auto-create, configured by publish-options if given. */
        char *name;
        if ((rc = pubsub_create(ps, who, req->node, req->options, a, &name, err)) != 0)
            return rc;
        n = pubsub_node(ps, name);
    }
    if (n == NULL)
        return set_err(err, HERALD_ENOTFOUND, "item-not-found", "cancel", NULL); /* §7.1.3.3 */
    if (n->cfg.node_type == PS_COLLECTION) {
        set_err(err, HERALD_ENOTIMPL, "feature-not-implemented", "cancel", "unsupported");
        err->feature = "publish";
        return HERALD_ENOTIMPL;
    }
    if (!can_publish(n, who))
        return set_err(err, HERALD_EFORBIDDEN, "forbidden", "auth", NULL); /* §7.1.3.1 */
    if (req->options && ps_config_check_preconditions(&n->cfg, &ps->caps, req->options, a) != 0)
        return set_err(err, HERALD_ECONFLICT, "conflict", "cancel", "precondition-not-met"); /* §7.1.5 */
    struct buf payload;
    buf_init(&payload, (size_t)n->cfg.max_payload_size + 1);
    if (req->payload) {
        /* "\x01" is no namespace: the payload root always declares its own. */
        xml_serialize(&payload, req->payload, "\x01");
        if (!buf_ok(&payload) || payload.len > n->cfg.max_payload_size) {
            buf_free(&payload);
            return set_err(err, HERALD_ETOOBIG, "not-acceptable", "modify", "payload-too-big"); /* §7.1.3.6 */
        }
    } else if (!req->has_item && n->cfg.persist_items) {
        return set_err(err, HERALD_EINVAL, "bad-request", "modify", "item-required"); /* §7.1.3.6 */
    } else if (n->cfg.persist_items || n->cfg.deliver_payloads) {
        return set_err(err, HERALD_EINVAL, "bad-request", "modify", "payload-required"); /* §7.1.3.7 */
    }
    char genid[32];
    const char *id = req->item_id;
    if (id == NULL || id[0] == '\0') {
        random_hex(genid, 12);
        id = genid;
    }
    if (strlen(id) > ITEM_ID_MAX || strlen(id) >= id_cap) {
        buf_free(&payload);
        return set_err(err, HERALD_EINVAL, "not-acceptable", "modify", NULL);
    }
    struct store_txn *t = begin_change(ps, err, &rc);
    if (t == NULL) {
        buf_free(&payload);
        return rc;
    }
    char publisher[JID_MAX + 1];
    bare_of(who, publisher, sizeof(publisher));
    /* Expiry walks items in publication order: keep their times in that
     * order even if the wall clock steps back. */
    uint64_t stamp = now_ms();
    if (stamp < ps->last_stamp)
        stamp = ps->last_stamp;
    ps->last_stamp = stamp;
    struct store_item it = {0, stamp, id, strlen(id), publisher, strlen(publisher), payload.data,
                            payload.len};
    struct store_node sn;
    uint8_t cb[1024];
    to_store_node(n, &sn, cb, sizeof(cb));
    rc = store_item_put(t, n->name, &sn, &it, ps_config_keep(&n->cfg, &ps->caps), NULL);
    if (rc != 0) {
        buf_free(&payload);
        return change_failed(ps, rc, err);
    }
    n->next_seq = sn.next_seq;
    n->item_count = sn.item_count;
    ps->h->stats.publishes++;
    queue_watch(ps, n->id, PS_WATCH_ITEMS, NULL);
    if (n->cfg.deliver_notifications) {
        struct chunk *body = item_event(n->name, id, strlen(id), publisher, payload.data,
                                        n->cfg.deliver_payloads ? payload.len : 0);
        if (body)
            queue_fanout(ps, n, body);
    }
    buf_free(&payload);
    memcpy(id_out, id, strlen(id) + 1);
    return 0;
}

int pubsub_retract(struct ps_service *ps, const char *who, const char *node, const char *item_id,
                   bool notify, struct ps_err *err)
{
    int rc;
    if (node == NULL)
        return set_err(err, HERALD_EINVAL, "bad-request", "modify", "nodeid-required"); /* §7.2.3.3 */
    struct ps_node *n = need_node(ps, node, err);
    if (n == NULL)
        return HERALD_ENOTFOUND;
    if (item_id == NULL || item_id[0] == '\0')
        return set_err(err, HERALD_EINVAL, "bad-request", "modify", "item-required"); /* §7.2.3.4 */
    uint8_t aff = pubsub_affiliation(n, who);
    if (aff != AFF_OWNER && aff != AFF_PUBLISHER && aff != AFF_PUBLISH_ONLY)
        return set_err(err, HERALD_EFORBIDDEN, "forbidden", "auth", NULL); /* §7.2.3.1 */
    struct store_txn *t = begin_change(ps, err, &rc);
    if (t == NULL)
        return rc;
    struct store_node sn;
    uint8_t cb[1024];
    to_store_node(n, &sn, cb, sizeof(cb));
    rc = store_item_del(t, n->name, &sn, item_id, strlen(item_id));
    if (rc == HERALD_ENOTFOUND)
        return set_err(err, rc, "item-not-found", "cancel", NULL); /* §7.2.3.5 */
    if (rc != 0)
        return change_failed(ps, rc, err);
    n->item_count = sn.item_count;
    queue_watch(ps, n->id, PS_WATCH_RETRACT, item_id);
    if (notify || n->cfg.notify_retract) {
        struct buf b;
        buf_init(&b, 0);
        buf_puts(&b, "<event xmlns='" NS_EVENT "'><items node='");
        buf_xml_attr(&b, n->name, strlen(n->name));
        buf_puts(&b, "'><retract id='");
        buf_xml_attr(&b, item_id, strlen(item_id));
        buf_puts(&b, "'/></items></event></message>");
        struct chunk *body = buf_ok(&b) ? chunk_new(b.data, b.len) : NULL;
        buf_free(&b);
        if (body)
            queue_fanout(ps, n, body);
    }
    return 0;
}

/* ---- subscriber use cases (XEP-0060 §6) ---- */

/* Prepares `jid` and checks it names the requester (§6.1.3.1). */
static int check_jid(const char *who, const char *jid, char *out, size_t cap, struct ps_err *err)
{
    char bare_who[JID_MAX + 1], bare_j[JID_MAX + 1];
    bare_of(who, bare_who, sizeof(bare_who));
    if (prep_jid(jid, false, out, cap) != 0)
        return set_err(err, HERALD_EJID, "bad-request", "modify", "invalid-jid");
    bare_of(out, bare_j, sizeof(bare_j));
    if (strcmp(bare_j, bare_who) != 0)
        return set_err(err, HERALD_EJID, "bad-request", "modify", "invalid-jid");
    return 0;
}

static int save_sub(struct store_txn *t, const struct ps_node *n, const struct ps_sub *s)
{
    uint8_t opts[1] = {s->deliver ? 1 : 0};
    struct store_sub ss = {s->jid, s->subid, s->state, opts, 1};
    return store_sub_put(t, n->id, &ss);
}

static void notify_owners_pending(struct ps_service *ps, struct ps_node *n, const struct ps_sub *s)
{
    struct arena a;
    arena_init(&a);
    struct ps_aff_rec *r, *tmp;
    HASH_ITER(hh, n->affs, r, tmp) {
        if (r->aff != AFF_OWNER)
            continue;
        /* §8.6: a data form asking the owner to approve. */
        struct xnode *m = xml_elem_new(&a, NS_CLIENT, "message");
        struct xnode *x = m ? xml_add_elem(&a, m, NS_DATA, "x") : NULL;
        struct xnode *title = x ? xml_add_elem(&a, x, NS_DATA, "title") : NULL;
        if (title == NULL || xml_set_attr(&a, m, "to", r->jid) || xml_set_attr(&a, m, "from", ps->jid) ||
            xml_set_attr(&a, x, "type", "form") || xml_add_text(&a, title, "PubSub subscriber request", 25))
            break;
        const char *fields[][3] = {
            {"FORM_TYPE", "hidden", "http://jabber.org/protocol/pubsub#subscribe_authorization"},
            {"pubsub#subid", "hidden", s->subid},
            {"pubsub#node", "text-single", n->name},
            {"pubsub#subscriber_jid", "jid-single", s->jid},
            {"pubsub#allow", "boolean", "false"},
        };
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
            struct xnode *f = xml_add_elem(&a, x, NS_DATA, "field");
            struct xnode *v = f ? xml_add_elem(&a, f, NS_DATA, "value") : NULL;
            if (v == NULL || xml_set_attr(&a, f, "var", fields[i][0]) ||
                xml_set_attr(&a, f, "type", fields[i][1]) ||
                xml_add_text(&a, v, fields[i][2], strlen(fields[i][2])))
                break;
        }
        pubsub_send(ps, r->jid, m, false, NULL);
        arena_reset(&a);
    }
    arena_free(&a);
}

int pubsub_subscribe(struct ps_service *ps, const char *who, const char *node, const char *jid,
                     struct ps_sub **out, struct ps_err *err)
{
    char prepared[JID_MAX + 1];
    int rc;
    struct ps_node *n = need_node(ps, node, err);
    if (n == NULL)
        return HERALD_ENOTFOUND; /* §6.1.3.12 */
    if ((rc = check_jid(who, jid, prepared, sizeof(prepared), err)) != 0)
        return rc;
    uint8_t aff = pubsub_affiliation(n, prepared);
    if (aff == AFF_OUTCAST)
        return set_err(err, HERALD_EFORBIDDEN, "forbidden", "auth", NULL); /* §6.1.3.8 */
    if (!n->cfg.subscribe) {
        set_err(err, HERALD_ENOTIMPL, "feature-not-implemented", "cancel", "unsupported");
        err->feature = "subscribe";
        return HERALD_ENOTIMPL;
    }
    bool privileged = aff == AFF_OWNER || aff == AFF_PUBLISHER || aff == AFF_MEMBER;
    uint8_t state = SUB_SUBSCRIBED;
    if (!privileged && n->cfg.access_model == PS_ACCESS_WHITELIST)
        return set_err(err, HERALD_EFORBIDDEN, "not-allowed", "cancel", "closed-node"); /* §6.1.3.4 */
    if (!privileged && n->cfg.access_model == PS_ACCESS_AUTHORIZE) {
        for (struct ps_sub *s = n->subs; s; s = s->next)
            if (s->state == SUB_PENDING && strcmp(s->jid, prepared) == 0)
                return set_err(err, HERALD_ECONFLICT, "not-authorized", "auth",
                               "pending-subscription"); /* §6.1.3.7 */
        state = SUB_PENDING;
    }
    if (!privileged && n->cfg.access_model == PS_ACCESS_PRESENCE &&
        !sees_owner_presence(ps, n, prepared)) /* §6.1.3.2 */
        return set_err(err, HERALD_EFORBIDDEN, "not-authorized", "auth",
                       "presence-subscription-required");
    if (n->cfg.access_model == PS_ACCESS_ROSTER) {
        set_err(err, HERALD_ENOTIMPL, "feature-not-implemented", "cancel", "unsupported");
        err->feature = "access-roster";
        return HERALD_ENOTIMPL;
    }
    struct store_txn *t = begin_change(ps, err, &rc);
    if (t == NULL)
        return rc;
    char subid[20];
    random_hex(subid, 8);
    struct ps_sub *s = mem_add_sub(n, prepared, subid, state, true);
    if (s == NULL)
        return change_failed(ps, HERALD_ENOMEM, err);
    if ((rc = save_sub(t, n, s)) != 0)
        return change_failed(ps, rc, err);
    if (state == SUB_PENDING)
        notify_owners_pending(ps, n, s);
    *out = s;
    return 0;
}

static int newest_item_cb(void *ud, const struct store_item *it)
{
    struct store_item *out = ud;
    *out = *it;
    return 1;
}

void pubsub_send_last(struct ps_service *ps, const struct ps_node *n, const char *jid)
{
    int rc;
    struct store_txn *t = pubsub_txn(ps, &rc);
    if (t == NULL)
        return;
    struct store_item it;
    memset(&it, 0, sizeof(it));
    if (store_items_newest(t, n->id, UINT64_MAX, 1, newest_item_cb, &it) == 0 && it.id != NULL) {
        char publisher[JID_MAX + 1];
        snprintf(publisher, sizeof(publisher), "%.*s", (int)it.publisher_len, it.publisher);
        struct chunk *body = item_event(n->name, it.id, it.id_len, publisher, it.payload,
                                        n->cfg.deliver_payloads ? it.payload_len : 0);
        if (body) {
            queue_event(ps, jid, n->cfg.notification_type, body);
            chunk_unref(body);
        }
    }
    pubsub_txn_done(ps, t);
}

static struct ps_sub *find_sub(struct ps_node *n, const char *jid, const char *subid, unsigned *count)
{
    struct ps_sub *found = NULL;
    *count = 0;
    for (struct ps_sub *s = n->subs; s; s = s->next) {
        if (strcmp(s->jid, jid) != 0)
            continue;
        (*count)++;
        if (subid == NULL || strcmp(s->subid, subid) == 0)
            found = found ? found : s;
    }
    return found;
}

/* The one subscription a request names (§6.2.3, §6.3.4). */
static struct ps_sub *pick_sub(struct ps_node *n, const char *jid, const char *subid,
                               struct ps_err *err, int *rc)
{
    unsigned count;
    struct ps_sub *s = find_sub(n, jid, subid, &count);
    *rc = 0;
    if (count == 0)
        *rc = set_err(err, HERALD_ENOTFOUND, "unexpected-request", "cancel", "not-subscribed");
    else if (subid == NULL && count > 1)
        *rc = set_err(err, HERALD_EINVAL, "bad-request", "modify", "subid-required");
    else if (s == NULL)
        *rc = set_err(err, HERALD_EINVAL, "not-acceptable", "modify", "invalid-subid");
    return *rc ? NULL : s;
}

int pubsub_unsubscribe(struct ps_service *ps, const char *who, const char *node, const char *jid,
                       const char *subid, struct ps_err *err)
{
    char prepared[JID_MAX + 1];
    int rc;
    struct ps_node *n = need_node(ps, node, err);
    if (n == NULL)
        return HERALD_ENOTFOUND;
    if ((rc = check_jid(who, jid, prepared, sizeof(prepared), err)) != 0) {
        /* §6.2.3.3: unsubscribing another entity is forbidden. */
        if (strcmp(err->app ? err->app : "", "invalid-jid") == 0 && prep_jid(jid, false, prepared,
                                                                         sizeof(prepared)) == 0)
            return set_err(err, HERALD_EFORBIDDEN, "forbidden", "auth", NULL);
        return rc;
    }
    struct ps_sub *s = pick_sub(n, prepared, subid, err, &rc);
    if (s == NULL)
        return rc;
    struct store_txn *t = begin_change(ps, err, &rc);
    if (t == NULL)
        return rc;
    if ((rc = store_sub_del(t, n->id, s->jid, s->subid)) != 0)
        return change_failed(ps, rc, err);
    mem_del_sub(n, s);
    return 0;
}

int pubsub_set_sub_options(struct ps_service *ps, const char *who, const char *node,
                           const char *jid, const char *subid, bool deliver, struct ps_err *err)
{
    char prepared[JID_MAX + 1];
    int rc;
    struct ps_node *n = need_node(ps, node, err);
    if (n == NULL)
        return HERALD_ENOTFOUND;
    if ((rc = check_jid(who, jid, prepared, sizeof(prepared), err)) != 0)
        return rc;
    struct ps_sub *s = pick_sub(n, prepared, subid, err, &rc);
    if (s == NULL)
        return rc;
    struct store_txn *t = begin_change(ps, err, &rc);
    if (t == NULL)
        return rc;
    bool old = s->deliver;
    s->deliver = deliver;
    if ((rc = save_sub(t, n, s)) != 0) {
        s->deliver = old;
        return change_failed(ps, rc, err);
    }
    return 0;
}

static void notify_subscription(struct ps_service *ps, struct ps_node *n, const struct ps_sub *s,
                                const char *state)
{
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "<event xmlns='" NS_EVENT "'><subscription node='");
    buf_xml_attr(&b, n->name, strlen(n->name));
    buf_puts(&b, "' jid='");
    buf_xml_attr(&b, s->jid, strlen(s->jid));
    buf_printf(&b, "' subid='%s' subscription='%s'/></event></message>", s->subid, state);
    struct chunk *body = buf_ok(&b) ? chunk_new(b.data, b.len) : NULL;
    buf_free(&b);
    if (body) {
        queue_event(ps, s->jid, n->cfg.notification_type, body);
        chunk_unref(body);
    }
}

int pubsub_authorize(struct ps_service *ps, const char *who, const char *node, const char *jid,
                     const char *subid, bool allow, struct ps_err *err)
{
    int rc;
    struct ps_node *n = owned_node(ps, node, who, err);
    if (n == NULL)
        return HERALD_EFORBIDDEN;
    struct ps_sub *s = NULL;
    for (struct ps_sub *p = n->subs; p && !s; p = p->next)
        if (p->state == SUB_PENDING && jid && strcmp(p->jid, jid) == 0 &&
            (subid == NULL || subid[0] == '\0' || strcmp(p->subid, subid) == 0))
            s = p;
    if (s == NULL)
        return set_err(err, HERALD_ENOTFOUND, "item-not-found", "cancel", NULL);
    struct store_txn *t = begin_change(ps, err, &rc);
    if (t == NULL)
        return rc;
    if (allow) {
        s->state = SUB_SUBSCRIBED;
        if ((rc = save_sub(t, n, s)) != 0)
            return change_failed(ps, rc, err);
        notify_subscription(ps, n, s, "subscribed"); /* §8.6.2 */
    } else {
        if ((rc = store_sub_del(t, n->id, s->jid, s->subid)) != 0)
            return change_failed(ps, rc, err);
        notify_subscription(ps, n, s, "none");
        mem_del_sub(n, s);
    }
    return 0;
}

/* ---- owner: subscriptions and affiliations (§8.8, §8.9) ---- */

int pubsub_owner_set_sub(struct ps_service *ps, const char *who, const char *node, const char *jid,
                         uint8_t state, struct ps_err *err)
{
    int rc;
    char prepared[JID_MAX + 1];
    struct ps_node *n = owned_node(ps, node, who, err); /* §8.8.2.3 */
    if (n == NULL)
        return HERALD_EFORBIDDEN;
    if (prep_jid(jid, false, prepared, sizeof(prepared)) != 0)
        return set_err(err, HERALD_EJID, "bad-request", "modify", NULL);
    struct store_txn *t = begin_change(ps, err, &rc);
    if (t == NULL)
        return rc;
    unsigned count;
    struct ps_sub *s = find_sub(n, prepared, NULL, &count);
    if (state == SUB_NONE) {
        while ((s = find_sub(n, prepared, NULL, &count)) != NULL) {
            if ((rc = store_sub_del(t, n->id, s->jid, s->subid)) != 0)
                return change_failed(ps, rc, err);
            mem_del_sub(n, s);
        }
        return 0;
    }
    if (s == NULL) {
        char subid[20];
        random_hex(subid, 8);
        s = mem_add_sub(n, prepared, subid, state, true);
        if (s == NULL)
            return change_failed(ps, HERALD_ENOMEM, err);
    }
    for (struct ps_sub *p = n->subs; p; p = p->next) {
        if (strcmp(p->jid, prepared) != 0)
            continue;
        p->state = state;
        if ((rc = save_sub(t, n, p)) != 0)
            return change_failed(ps, rc, err);
    }
    return 0;
}

int pubsub_owner_set_aff(struct ps_service *ps, const char *who, const char *node, const char *jid,
                         uint8_t aff, struct ps_err *err)
{
    int rc;
    char bare[JID_MAX + 1];
    struct ps_node *n = owned_node(ps, node, who, err); /* §8.9.2.3 */
    if (n == NULL)
        return HERALD_EFORBIDDEN;
    if (prep_jid(jid, true, bare, sizeof(bare)) != 0)
        return set_err(err, HERALD_EJID, "bad-request", "modify", NULL);
    if (aff != AFF_OWNER && pubsub_affiliation(n, bare) == AFF_OWNER) {
        unsigned owners = 0;
        struct ps_aff_rec *r, *tmp;
        HASH_ITER(hh, n->affs, r, tmp) owners += r->aff == AFF_OWNER;
        if (owners <= 1) /* §8.9.2.4: a node keeps at least one owner */
            return set_err(err, HERALD_EINVAL, "not-acceptable", "modify", NULL);
    }
    struct store_txn *t = begin_change(ps, err, &rc);
    if (t == NULL)
        return rc;
    if ((rc = store_aff_put(t, n->id, bare, aff)) != 0 || (rc = mem_set_aff(n, bare, aff)) != 0)
        return change_failed(ps, rc, err);
    if (aff == AFF_OUTCAST) {
        /* An outcast keeps no subscription, bare or full. */
        for (struct ps_sub *s = n->subs, *next; s; s = next) {
            next = s->next;
            char sb[JID_MAX + 1];
            bare_of(s->jid, sb, sizeof(sb));
            if (strcmp(sb, bare) != 0)
                continue;
            if ((rc = store_sub_del(t, n->id, s->jid, s->subid)) != 0)
                return change_failed(ps, rc, err);
            mem_del_sub(n, s);
        }
    }
    return 0;
}
