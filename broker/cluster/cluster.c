/* cluster.c - proposals, the inbound queue and the apply (cluster.h;
 * docs/cluster.md). NATS itself is behind nats_link.h. */
#include "cluster.h"

#include <ctype.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uthash.h>
#include <uv.h>

#include "arena.h"
#include "batch.h"
#include "buf.h"
#include "entry.h"
#include "errors.h"
#include "hash.h"
#include "herald.h"
#include "http.h"
#include "im.h"
#include "jid.h"
#include "log.h"
#include "nats_link.h"
#include "outq.h"
#include "pep.h"
#include "pubsub.h"
#include "pubsub_xmpp.h"
#include "router.h"
#include "session.h"
#include "store.h"
#include "xml.h"
#include "xml_parser.h"

#define INQ_RECORDS 16384
#define INQ_BYTES (64u << 20)
#define DRAIN_PER_TURN 1024
#define RETRY_MS 1000
#define NATS_TIMEOUT_MS 5000
#define ROUTE_TIMEOUT_MS 2000
#define MAX_ROUTES 65536
#define JOIN_ATTEMPTS 30

/* What NATS delivered, on its way from a library thread to the loop: an
 * entry of the log, a stanza another instance routes, or an answer to one
 * this instance routed. */
enum in_kind { IN_LOG, IN_ROUTE, IN_REPLY, IN_HEARTBEAT };

struct inrec {
    enum in_kind kind;
    uint64_t seq;   /* IN_LOG: the stream sequence; IN_REPLY: the route id */
    uint8_t *data;
    size_t len;
    char *reply;    /* IN_ROUTE: where to answer */
};

/* A stanza offered to the other instances, kept until one takes it. */
struct route_wait {
    uint64_t id;
    UT_hash_handle hh;
    uint8_t *data;
    size_t len;
    uint64_t deadline_ms;
};

/* A request this instance proposed and has not yet applied. */
struct pending {
    uint64_t req;
    UT_hash_handle hh;
    enum cl_kind kind;
    char subject[192];          /* the log subject it was published to (retries) */
    uint8_t *data; /* the encoded entry, for retries */
    size_t len;
    uint64_t deadline_ms, retry_ms;
    struct http_conn *hc;       /* CL_REST (a reference) */
    char *to, *id, *from;       /* CL_IQ: whom to answer, the iq id, the service */
};

/* A resource on another instance whose available presence was delivered
 * here (offers carry their instance's name): when that instance stops
 * sending heartbeats, or comes back with a new boot id, the sessions here
 * are told it went unavailable. */
struct remote_avail {
    char *full;
    char origin[33];
    UT_hash_handle hh;
};

#define MAX_INSTANCES 64
#define HEARTBEAT_MS 2000
#define HEARTBEAT_MISSED_MS 6000 /* three heartbeats */

struct peer {
    char name[33];
    uint64_t boot;
    uint64_t seen_ms;
    bool alive;
};

struct cluster {
    struct herald *h;
    struct cl_nats *nats;
    char name[33];
    char subject_log[96], subject_cursor[96], subject_im[96];
    char durable[64];
    uint64_t boot, next_req;
    uint64_t applied;       /* the last entry applied (committed, or in this turn's batch) */
    int failed;             /* an apply failed here: applying stopped */
    /* The inbound queue: the fetch thread pushes, the loop drains. */
    pthread_mutex_t mu;
    pthread_cond_t room, avail;
    struct inrec *ring;
    size_t head, count, bytes;
    bool stopping;
    uv_async_t wake;
    bool wake_open;
    /* Proposals waiting for their apply. */
    struct pending *pending;
    unsigned inflight;
    /* Routing between instances (core NATS). */
    char subject_route[96], reply_prefix[160], subject_hb[96];
    struct remote_avail *remote;  /* by full JID */
    struct peer peers[MAX_INSTANCES];
    unsigned npeers;
    uint64_t hb_sent_ms;
    struct route_wait *routes;
    unsigned nroutes;
    uint64_t next_route;
    /* During one apply. */
    bool applying, muted;
    /* Counters for /metrics. */
    uint64_t proposals, proposal_failures, retries, late_applies, applied_total;
    uint64_t routed, route_delivered, route_fallbacks, routes_in, offered, out_of_order;
    uint64_t gap_logged; /* the position a gap was last logged at */
    char ack_pending[512]; /* the last applied entry's ack subject, this drain */
};

static uint64_t random64(void)
{
    uint64_t v = 0;
    if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1)
        v = wall_ms() ^ ((uint64_t)getpid() << 32);
    return v;
}

void cluster_nats_opts(const struct config *cfg, const char *client, struct cluster_names *nm,
                       struct cl_nats_opts *o)
{
    snprintf(nm->stream, sizeof(nm->stream), "HRD_%s_LOG", cfg->cluster_id);
    snprintf(nm->subjects, sizeof(nm->subjects), "hrd.%s.log.>", cfg->cluster_id);
    *o = (struct cl_nats_opts){.urls = cfg->cluster_urls,
                               .client = client,
                               .stream = nm->stream,
                               .subjects = nm->subjects,
                               .replicas = cfg->cluster_replicas,
                               .timeout_ms = NATS_TIMEOUT_MS,
                               .credentials = cfg->cluster_credentials,
                               .tls_ca = cfg->cluster_tls_ca,
                               .tls_cert = cfg->cluster_tls_cert,
                               .tls_key = cfg->cluster_tls_key};
}

bool cluster_proposes(const struct herald *h) { return h->cluster && !h->cluster->applying; }

bool cluster_muted(const struct herald *h) { return h->cluster && h->cluster->muted; }

void cluster_apply_failed(struct herald *h, int rc)
{
    struct cluster *c = h->cluster;
    if (c && !c->failed) {
        c->failed = rc ? rc : HERALD_EIO;
        log_error("cluster", "applying log entry %llu failed here (%s): this instance stops "
                  "applying the log and must be restarted",
                  (unsigned long long)c->applied + 1, herald_strerror(c->failed));
    }
}

/* ---- the inbound queue ---- */

/* On a library thread: copy, queue, wake the loop; waits while full (the
 * fetch thread then stops fetching: the back-pressure). */
static void push(struct cluster *c, enum in_kind kind, uint64_t seq, const void *data, size_t len,
                 const char *reply)
{
    uint8_t *copy = malloc(len ? len : 1);
    char *rcopy = reply ? strdup(reply) : NULL;
    if (copy == NULL || (reply && rcopy == NULL)) {
        /* A log entry is fetched again at the next start; a routed stanza
         * times out at its sender, which falls back. */
        free(copy);
        free(rcopy);
        return;
    }
    memcpy(copy, data, len);
    pthread_mutex_lock(&c->mu);
    while (!c->stopping && (c->count == INQ_RECORDS || c->bytes + len > INQ_BYTES))
        pthread_cond_wait(&c->room, &c->mu);
    if (c->stopping) {
        pthread_mutex_unlock(&c->mu);
        free(copy);
        free(rcopy);
        return;
    }
    c->ring[(c->head + c->count) % INQ_RECORDS] = (struct inrec){kind, seq, copy, len, rcopy};
    c->count++;
    c->bytes += len;
    pthread_cond_signal(&c->avail);
    pthread_mutex_unlock(&c->mu);
    if (c->wake_open)
        uv_async_send(&c->wake);
}

static void enqueue(void *ud, uint64_t seq, const char *ack, const void *data, size_t len)
{
    push(ud, IN_LOG, seq, data, len, ack);
}

/* Core NATS: a stanza routed by another instance, or an answer to ours
 * (its route id ends the subject). */
static void on_core(void *ud, const char *subject, const char *reply, const void *data, size_t len)
{
    struct cluster *c = ud;
    size_t pl = strlen(c->reply_prefix);
    if (strncmp(subject, c->reply_prefix, pl) == 0)
        push(c, IN_REPLY, strtoull(subject + pl, NULL, 10), data, len, NULL);
    else if (strcmp(subject, c->subject_hb) == 0)
        push(c, IN_HEARTBEAT, 0, data, len, NULL);
    else
        push(c, IN_ROUTE, 0, data, len, reply); /* no reply: an offer (presence) */
}

static bool dequeue(struct cluster *c, struct inrec *out)
{
    pthread_mutex_lock(&c->mu);
    bool got = c->count > 0;
    if (got) {
        *out = c->ring[c->head];
        c->head = (c->head + 1) % INQ_RECORDS;
        c->count--;
        c->bytes -= out->len;
        pthread_cond_signal(&c->room);
    }
    pthread_mutex_unlock(&c->mu);
    return got;
}

/* ---- proposals ---- */

static void pending_free(struct pending *p)
{
    http_unref(p->hc);
    free(p->data);
    free(p->to);
    free(p->id);
    free(p->from);
    free(p);
}

static void msg_id(const struct cluster *c, uint64_t req, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%016llx/%llu", c->name, (unsigned long long)c->boot,
             (unsigned long long)req);
}

/* The log subject of a change to a node (docs/cluster.md, "The log"):
 * hrd.<id>.log.node.<token> for pubsub.<domain>, .pep.<token> for a PEP
 * service, the token being the node name when it is a plain NATS token
 * (letters, digits, '-', '_', at most 64), else 'h' and 16 hex digits of
 * a hash of it; '_' when the change names no node (an instant node). For
 * operators' tools: every instance consumes every subject. */
static void node_subject(const struct cluster *c, const char *service, const char *node, char *out,
                         size_t cap)
{
    char token[72];
    size_t n = node ? strlen(node) : 0;
    bool plain = n > 0 && n <= 64;
    for (size_t i = 0; plain && i < n; i++)
        plain = isalnum((unsigned char)node[i]) || node[i] == '-' || node[i] == '_';
    if (n == 0) {
        snprintf(token, sizeof(token), "_");
    } else if (plain && service == NULL) {
        snprintf(token, sizeof(token), "%s", node);
    } else {
        uint64_t hv = hash_fnv1a(HASH_FNV_OFFSET, service ? service : "", service ? strlen(service) : 0);
        hv = hash_mix(hash_fnv1a(hv, node, n));
        snprintf(token, sizeof(token), "h%016llx", (unsigned long long)hv);
    }
    snprintf(out, cap, "%s%s.%s", c->subject_log, service ? "pep" : "node", token);
}

/* Encodes and publishes e; on success the pending p (filled by the caller
 * with its kind and whom to answer) waits for the apply. */
static int propose(struct cluster *c, struct cl_entry *e, const char *subject, struct pending *p)
{
    /* A cursor may still go out while sessions end at shutdown: the next
     * start applies it from the log. */
    if (c->failed || (c->stopping && e->kind != CL_CURSOR))
        return HERALD_ECLUSTER;
    if (c->inflight >= c->h->cfg->cluster_max_inflight) {
        c->proposal_failures++;
        return HERALD_ECLUSTER; /* answered "wait": the log is behind */
    }
    e->origin = c->name;
    e->boot = c->boot;
    e->req = ++c->next_req;
    e->time_ms = wall_ms();
    e->seed = random64();
    int rc = cl_entry_encode(e, &p->data, &p->len);
    if (rc != 0)
        return rc;
    char id[96];
    msg_id(c, e->req, id, sizeof(id));
    if ((rc = cl_nats_propose(c->nats, subject, id, p->data, p->len)) != 0) {
        c->proposal_failures++;
        free(p->data);
        p->data = NULL;
        return rc;
    }
    uint64_t now = uv_now(c->h->loop);
    p->req = e->req;
    p->kind = e->kind;
    snprintf(p->subject, sizeof(p->subject), "%s", subject);
    p->deadline_ms = now + c->h->cfg->cluster_publish_timeout_ms;
    p->retry_ms = now + RETRY_MS;
    HASH_ADD(hh, c->pending, req, sizeof(p->req), p);
    c->inflight++;
    c->proposals++;
    return 0;
}

int cluster_propose_iq(struct herald *h, const char *who, const char *service, const char *node,
                       const struct xnode *iq)
{
    struct cluster *c = h->cluster;
    struct buf b;
    buf_init(&b, 0);
    xml_serialize(&b, iq, NS_CLIENT);
    struct pending *p = calloc(1, sizeof(*p));
    const char *from = xml_attr(iq, "from"), *id = xml_attr(iq, "id"), *to = xml_attr(iq, "to");
    int rc = HERALD_ENOMEM;
    if (p && buf_ok(&b) && (p->to = strdup(from ? from : who)) && (p->id = strdup(id ? id : "")) &&
        (p->from = strdup(to ? to : h->cfg->domain))) {
        struct cl_entry e = {.kind = CL_IQ, .jid = who, .contact = service, .data = b.data,
                             .data_len = b.len};
        char subject[192];
        node_subject(c, service, node, subject, sizeof(subject));
        rc = propose(c, &e, subject, p);
    }
    if (rc != 0 && p)
        pending_free(p);
    buf_free(&b);
    return rc;
}

int cluster_propose_rest(struct herald *h, struct http_conn *hc, const struct http_req *req,
                         const char *jid, uint8_t scopes, const char *node)
{
    struct cluster *c = h->cluster;
    struct pending *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return HERALD_ENOMEM;
    char path[8192];
    if (req->path_len >= sizeof(path) || req->query_len >= sizeof(path)) {
        free(p);
        return HERALD_ETOOBIG;
    }
    memcpy(path, req->path, req->path_len);
    path[req->path_len] = '\0';
    char query[8192];
    if (req->query) {
        memcpy(query, req->query, req->query_len);
        query[req->query_len] = '\0';
    }
    struct cl_entry e = {.kind = CL_REST,
                         .jid = jid,
                         .scopes = scopes,
                         .method = (uint8_t)req->method,
                         .path = path,
                         .query = req->query ? query : NULL,
                         .content_type = req->content_type,
                         .data = req->body,
                         .data_len = req->body_len};
    char subject[192];
    node_subject(c, NULL, node, subject, sizeof(subject));
    int rc = propose(c, &e, subject, p);
    if (rc != 0) {
        free(p);
        return rc;
    }
    http_ref(hc);
    p->hc = hc;
    return 0;
}

int cluster_propose_roster(struct herald *h, const char *full, const struct xnode *iq)
{
    struct cluster *c = h->cluster;
    struct buf b;
    buf_init(&b, 0);
    xml_serialize(&b, iq, NS_CLIENT);
    struct pending *p = calloc(1, sizeof(*p));
    const char *id = xml_attr(iq, "id");
    int rc = HERALD_ENOMEM;
    if (p && buf_ok(&b) && (p->to = strdup(full)) && (p->id = strdup(id ? id : ""))) {
        struct cl_entry e = {.kind = CL_ROSTER, .jid = full, .data = b.data, .data_len = b.len};
        rc = propose(c, &e, c->subject_im, p);
    }
    if (rc != 0 && p)
        pending_free(p);
    buf_free(&b);
    return rc;
}

int cluster_propose_subscription(struct herald *h, const char *user, const char *contact,
                                 const char *type, const struct xnode *st)
{
    struct cluster *c = h->cluster;
    struct buf b;
    buf_init(&b, 0);
    if (st)
        xml_serialize(&b, st, NS_CLIENT);
    struct pending *p = calloc(1, sizeof(*p));
    int rc = HERALD_ENOMEM;
    if (p && buf_ok(&b)) {
        struct cl_entry e = {.kind = CL_SUBSCRIPTION, .jid = user, .contact = contact,
                             .ptype = type, .data = st ? b.data : NULL, .data_len = b.len};
        rc = propose(c, &e, c->subject_im, p);
    }
    if (rc != 0)
        free(p);
    buf_free(&b);
    return rc;
}

void cluster_offer(struct herald *h, struct chunk *const *parts, size_t n)
{
    struct cluster *c = h->cluster;
    if (c == NULL || c->stopping || !cl_nats_connected(c->nats))
        return;
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, c->name);
    buf_putc(&b, '\n');
    for (size_t i = 0; i < n; i++)
        buf_append(&b, parts[i]->data, parts[i]->len);
    if (buf_ok(&b) && cl_nats_publish(c->nats, c->subject_route, NULL, b.data, b.len) == 0)
        c->offered++;
    buf_free(&b);
}

int cluster_propose_cursor(struct herald *h, uint64_t node_id, const char *jid, uint64_t seq)
{
    struct cluster *c = h->cluster;
    struct pending *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return HERALD_ENOMEM;
    struct cl_entry e = {.kind = CL_CURSOR, .jid = jid, .node_id = node_id, .cursor = seq};
    int rc = propose(c, &e, c->subject_cursor, p);
    if (rc != 0)
        free(p);
    return rc;
}

/* The deadline passed: the requester hears "wait" (the entry may still be
 * stored and applied later: a late apply, counted). */
static void expire(struct cluster *c, struct pending *p)
{
    c->proposal_failures++;
    if (p->kind == CL_IQ || p->kind == CL_ROSTER)
        router_batch_failed(c->h, p->to, p->id, p->from, HERALD_ECLUSTER);
    else if (p->kind == CL_REST)
        http_problem_h(p->hc, 503, "resource-constraint", NULL,
                       "the cluster could not store the change in time; retry",
                       "Retry-After: 2\r\n");
}

static void route_expire(struct cluster *c, uint64_t now);
static void heartbeats(struct cluster *c, uint64_t now);
static void heartbeat_send(struct cluster *c, uint64_t now);

void cluster_sweep(struct herald *h)
{
    struct cluster *c = h->cluster;
    if (c == NULL)
        return;
    uint64_t now = uv_now(h->loop);
    route_expire(c, now);
    heartbeats(c, now);
    struct pending *p, *tmp;
    HASH_ITER(hh, c->pending, p, tmp) {
        if (now >= p->deadline_ms) {
            HASH_DEL(c->pending, p);
            c->inflight--;
            expire(c, p);
            pending_free(p);
        } else if (now >= p->retry_ms) {
            /* The same message id: JetStream keeps one copy (its duplicate
             * window), so a retry never stores the request twice. */
            char id[96];
            msg_id(c, p->req, id, sizeof(id));
            if (cl_nats_propose(c->nats, p->subject, id, p->data, p->len) == 0)
                c->retries++;
            p->retry_ms = now + RETRY_MS;
        }
    }
}

/* ---- the apply ---- */

static const char STREAM_HDR[] = "<stream:stream xmlns='jabber:client'"
                                 " xmlns:stream='http://etherx.jabber.org/streams'>";

/* Parses one serialized stanza (as xml_serialize wrote it under
 * jabber:client) and calls fn with its tree. 0, or HERALD_EINVAL. */
typedef void stanza_fn(void *ud, struct xnode *st, struct arena *a);

struct one_stanza {
    stanza_fn *fn;
    void *ud;
    bool done;
};

static void one_open(void *ud, const struct xnode *hdr, const char *ns) { (void)ud, (void)hdr, (void)ns; }
static void one_close(void *ud) { (void)ud; }

static void one_stanza(void *ud, struct xnode *st, struct arena *a)
{
    struct one_stanza *o = ud;
    if (o->done)
        return;
    o->done = true;
    o->fn(o->ud, st, a);
}

static const struct xmlp_callbacks one_cb = {one_open, one_stanza, one_close};

static int parse_stanza(struct herald *h, const char *data, size_t len, stanza_fn *fn, void *ud)
{
    struct one_stanza o = {fn, ud, false};
    struct xmlp_limits lim = {len + sizeof(STREAM_HDR) + 64, h->cfg->max_depth};
    struct xmlp *q = xmlp_new(&lim, &one_cb, &o);
    if (q == NULL)
        return HERALD_ENOMEM;
    enum xmlp_error x = xmlp_feed(q, STREAM_HDR, sizeof(STREAM_HDR) - 1);
    if (x == XMLP_OK)
        x = xmlp_feed(q, data, len);
    xmlp_free(q);
    return x == XMLP_OK && o.done ? 0 : HERALD_EINVAL;
}

struct iq_apply {
    struct herald *h;
    const char *who, *service;
};

static void iq_apply_fn(void *ud, struct xnode *st, struct arena *a)
{
    struct iq_apply *ia = ud;
    if (ia->service)
        pep_pubsub_iq(ia->h, ia->who, st, a, ia->service);
    else
        ps_xmpp_handle_iq(ia->h->ps_xmpp, ia->who, st, a);
}

static int apply_iq(struct herald *h, const struct cl_entry *e)
{
    struct iq_apply ia = {h, e->jid, e->contact};
    return parse_stanza(h, e->data, e->data_len, iq_apply_fn, &ia);
}

/* The session of a full JID on this instance, or NULL. */
static struct session *find_full(struct herald *h, const char *full)
{
    const char *slash = strchr(full, '/');
    char bare[JID_MAX + 1];
    if (slash == NULL || jid_bare_of(full, bare) != 0)
        return NULL;
    return session_find(h, bare, slash + 1);
}

struct im_apply {
    struct herald *h;
    const char *full;
    struct session *s;
};

static void roster_apply_fn(void *ud, struct xnode *st, struct arena *a)
{
    struct im_apply *ia = ud;
    roster_apply(ia->h, ia->s, ia->full, st, a);
}

struct sub_apply {
    struct herald *h;
    const struct cl_entry *e;
};

static void subscription_apply_fn(void *ud, struct xnode *st, struct arena *a)
{
    (void)a;
    struct sub_apply *sa = ud;
    presence_subscription(sa->h, sa->e->jid, sa->e->contact, sa->e->ptype, st);
}

static void apply_rest(struct herald *h, const struct cl_entry *e, struct http_conn *hc)
{
    struct http_req req = {.method = e->method,
                           .path = e->path,
                           .path_len = strlen(e->path),
                           .query = e->query,
                           .query_len = e->query ? strlen(e->query) : 0,
                           .content_type = e->content_type,
                           .body = e->data,
                           .body_len = e->data_len};
    if (h->rest_apply)
        h->rest_apply(h, hc, &req, e->jid, e->scopes);
}

/* Accounts and tokens: one operation of the batch; a refusal (an account
 * that exists) is the same everywhere and changes nothing. */
static int apply_account(struct herald *h, const struct cl_entry *e)
{
    int rc = 0;
    struct store_txn *t = batch_op_begin(h->batch, &rc);
    if (t == NULL)
        return rc;
    switch (e->kind) {
    case CL_USER_PUT: rc = store_user_put_txn(t, e->jid, &e->user, e->create); break;
    case CL_USER_DEL: rc = store_user_del_txn(t, e->jid); break;
    case CL_TOKEN_PUT: rc = store_token_put_txn(t, &e->token); break;
    case CL_TOKEN_DEL: rc = store_token_del_txn(t, e->token.id); break;
    default: rc = HERALD_EINVAL;
    }
    rc = batch_op_end(h->batch, t, rc);
    if (rc != 0 && rc != HERALD_EEXIST && rc != HERALD_ENOTFOUND)
        return rc;
    return 0;
}

/* The acknowledgement subject of the last entry applied (or found applied)
 * in this drain: acknowledged once at its end, covering the ones before. */
static void remember_ack(struct cluster *c, const char *ack)
{
    snprintf(c->ack_pending, sizeof(c->ack_pending), "%s", ack ? ack : "");
}

/* Applies entry seq if it is the next one. An entry applied already is
 * acknowledged again; one after a gap (an entry lost in flight when a
 * nats-server failed) is left unacknowledged: the consumer delivers the
 * missing one and everything after it again once their AckWait passes.
 * Never past a gap: every instance applies every entry, in order. */
static void apply_entry(struct cluster *c, uint64_t seq, const char *ack, const uint8_t *data,
                        size_t len)
{
    struct herald *h = c->h;
    if (seq <= c->applied) { /* delivered again */
        remember_ack(c, ack);
        return;
    }
    if (seq != c->applied + 1) {
        if (c->gap_logged != c->applied) {
            c->gap_logged = c->applied;
            log_info("cluster", "log entry %llu arrived before %llu (lost in flight, it comes "
                     "again): waiting for it", (unsigned long long)seq,
                     (unsigned long long)c->applied + 1);
        }
        c->out_of_order++;
        return;
    }
    struct cl_entry e;
    char *store = NULL;
    int rc = cl_entry_decode(data, len, &e, &store);
    if (rc == HERALD_ESCHEMA) {
        log_error("cluster", "log entry %llu has a newer format than this Herald knows: upgrade "
                  "this instance", (unsigned long long)seq);
        cluster_apply_failed(h, rc);
        return;
    }
    struct pending *p = NULL;
    if (rc == 0 && strcmp(e.origin, c->name) == 0 && e.boot == c->boot) {
        HASH_FIND(hh, c->pending, &e.req, sizeof(e.req), p);
        if (p) {
            HASH_DEL(c->pending, p);
            c->inflight--;
        } else {
            c->late_applies++;
        }
    }
    /* One operation holds the applied position and every change of the
     * entry (the handlers' operations nest in it): both commit, or neither. */
    int orc = 0;
    uint64_t local_before = batch_stats(h->batch)->local_failures;
    struct store_txn *outer = batch_op_begin(h->batch, &orc);
    if (outer != NULL)
        orc = store_cluster_set_applied(outer, seq);
    if (orc != 0) {
        if (outer != NULL)
            batch_op_end(h->batch, outer, orc);
        if (p) { /* not answered: its deadline answers it */
            HASH_ADD(hh, c->pending, req, sizeof(p->req), p);
            c->inflight++;
        }
        cluster_apply_failed(h, orc);
        free(store);
        return;
    }
    c->applying = true;
    c->muted = p == NULL;
    if (rc != 0) {
        log_warn("cluster", "log entry %llu is malformed: skipped", (unsigned long long)seq);
    } else {
        struct ps_fixed fix = {e.time_ms, e.seed};
        if (h->pubsub)
            pubsub_fix(h->pubsub, &fix);
        switch (e.kind) {
        case CL_IQ:
            if (apply_iq(h, &e) != 0)
                log_warn("cluster", "log entry %llu: the iq does not parse: skipped",
                         (unsigned long long)seq);
            break;
        case CL_REST: apply_rest(h, &e, p ? p->hc : NULL); break;
        case CL_ROSTER: {
            /* The requester's session answers only where it was accepted. */
            struct im_apply ia = {h, e.jid, p ? find_full(h, e.jid) : NULL};
            if (parse_stanza(h, e.data, e.data_len, roster_apply_fn, &ia) != 0)
                log_warn("cluster", "log entry %llu: the roster iq does not parse: skipped",
                         (unsigned long long)seq);
            break;
        }
        case CL_SUBSCRIPTION: {
            struct sub_apply sa = {h, &e};
            if (e.data == NULL)
                presence_subscription(h, e.jid, e.contact, e.ptype, NULL);
            else if (parse_stanza(h, e.data, e.data_len, subscription_apply_fn, &sa) != 0)
                log_warn("cluster", "log entry %llu: the presence does not parse: skipped",
                         (unsigned long long)seq);
            break;
        }
        case CL_CURSOR:
            /* Never back; a subscription gone meanwhile is gone everywhere. */
            if (h->pubsub)
                (void)pubsub_durable_advance(h->pubsub, e.node_id, e.jid, e.cursor);
            break;
        default:
            if ((rc = apply_account(h, &e)) != 0)
                cluster_apply_failed(h, rc);
        }
        if (h->pubsub)
            pubsub_fix(h->pubsub, NULL);
    }
    /* Storage full, an I/O error or no memory here, where other instances
     * may have succeeded: the entry is not recorded as applied (the outer
     * operation rolls back; its answers learn so) and this instance stops;
     * a restart applies it again from the committed position. */
    bool local = batch_stats(h->batch)->local_failures != local_before;
    orc = batch_op_end(h->batch, outer, local ? HERALD_EFULL : 0);
    c->applying = c->muted = false;
    if (local || orc != 0) {
        cluster_apply_failed(h, local ? HERALD_EFULL : orc);
        if (p)
            pending_free(p);
        free(store);
        return;
    }
    c->applied = seq;
    c->applied_total++;
    remember_ack(c, ack);
    if (p)
        pending_free(p);
    free(store);
}

/* ---- routing between instances (docs/cluster.md, "IM and iq") ---- */

bool cluster_route(struct herald *h, struct xnode *st)
{
    struct cluster *c = h->cluster;
    if (c == NULL || c->stopping || c->nroutes >= MAX_ROUTES || !cl_nats_connected(c->nats))
        return false;
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, c->name);
    buf_putc(&b, '\n');
    xml_serialize(&b, st, NS_CLIENT);
    struct route_wait *w = calloc(1, sizeof(*w));
    if (!buf_ok(&b) || w == NULL) {
        buf_free(&b);
        free(w);
        return false;
    }
    char reply[192];
    w->id = ++c->next_route;
    snprintf(reply, sizeof(reply), "%s%llu", c->reply_prefix, (unsigned long long)w->id);
    if (cl_nats_publish(c->nats, c->subject_route, reply, b.data, b.len) != 0) {
        buf_free(&b);
        free(w);
        return false;
    }
    w->data = (uint8_t *)buf_take(&b, &w->len);
    w->deadline_ms = uv_now(h->loop) + ROUTE_TIMEOUT_MS;
    HASH_ADD(hh, c->routes, id, sizeof(w->id), w);
    c->nroutes++;
    c->routed++;
    return true;
}

struct route_ctx {
    struct cluster *c;
    const char *origin;
    size_t delivered;
};

static struct peer *peer_of(struct cluster *c, const char *name, uint64_t boot);

static void remote_forget(struct cluster *c, struct remote_avail *r)
{
    HASH_DEL(c->remote, r);
    free(r->full);
    free(r);
}

/* Remembers which resources of other instances are available here, from
 * the presence they offer (a full JID 'from', no type: available). */
static void remote_track(struct cluster *c, const char *origin, const struct xnode *st)
{
    const char *from = xml_attr(st, "from"), *type = xml_attr(st, "type");
    if (from == NULL || strchr(from, '/') == NULL || (type && strcmp(type, "unavailable") != 0))
        return;
    struct remote_avail *r;
    HASH_FIND_STR(c->remote, from, r);
    if (type != NULL) {
        if (r != NULL)
            remote_forget(c, r);
        return;
    }
    if (r == NULL && HASH_COUNT(c->remote) < (unsigned)c->h->cfg->max_connections * 4u) {
        r = calloc(1, sizeof(*r));
        if (r == NULL || (r->full = strdup(from)) == NULL) {
            free(r);
            return;
        }
        HASH_ADD_KEYPTR(hh, c->remote, r->full, strlen(r->full), r);
    }
    if (r != NULL) {
        snprintf(r->origin, sizeof(r->origin), "%s", origin);
        /* Watched even if its first heartbeat has not come yet. */
        struct peer *p = peer_of(c, origin, 0);
        if (p != NULL && !p->alive) {
            p->alive = true;
            p->seen_ms = uv_now(c->h->loop);
        }
    }
}

static void route_deliver_fn(void *ud, struct xnode *st, struct arena *a)
{
    (void)a;
    struct route_ctx *rc = ud;
    if (strcmp(st->name, "presence") == 0)
        remote_track(rc->c, rc->origin, st);
    rc->delivered = router_deliver_local(rc->c->h, st);
}

/* Instance `name` is gone (or restarted): its resources' presence here
 * turns unavailable (RFC 6121 §4.5.4, as for a broken connection). */
static void peer_gone(struct cluster *c, const char *name)
{
    struct remote_avail *r, *tmp;
    HASH_ITER(hh, c->remote, r, tmp) {
        if (strcmp(r->origin, name) != 0)
            continue;
        presence_remote_gone(c->h, r->full);
        remote_forget(c, r);
    }
}

/* The peer called name, made (alive, seen now) on first sight; NULL when
 * the table is full. boot 0: not known yet (from an offer). */
static struct peer *peer_of(struct cluster *c, const char *name, uint64_t boot)
{
    for (unsigned i = 0; i < c->npeers; i++)
        if (strcmp(c->peers[i].name, name) == 0)
            return &c->peers[i];
    if (c->npeers == MAX_INSTANCES)
        return NULL;
    struct peer *p = &c->peers[c->npeers++];
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->boot = boot;
    p->seen_ms = uv_now(c->h->loop);
    p->alive = true;
    return p;
}

/* "<name> <boot>": heartbeats of the other instances. */
static void heartbeat_in(struct cluster *c, const uint8_t *data, size_t len)
{
    char msg[96], name[33];
    unsigned long long boot;
    if (len >= sizeof(msg))
        return;
    memcpy(msg, data, len);
    msg[len] = '\0';
    if (sscanf(msg, "%32s %llx", name, &boot) != 2)
        return;
    if (strcmp(name, c->name) == 0) {
        /* Two processes with one name share one consumer: the later one
         * re-created it, so this one no longer receives the log. */
        if (boot != c->boot && !c->failed) {
            log_error("cluster", "another instance runs with the name %s (cluster.name must be "
                      "unique)", c->name);
            cluster_apply_failed(c->h, HERALD_ECONFLICT);
        }
        return;
    }
    struct peer *p = peer_of(c, name, boot);
    if (p == NULL)
        return;
    if (p->boot != boot && p->boot != 0) /* restarted: its old sessions are gone */
        peer_gone(c, name);
    p->boot = boot;
    p->seen_ms = uv_now(c->h->loop);
    p->alive = true;
}

static void heartbeat_send(struct cluster *c, uint64_t now)
{
    char msg[96];
    int n = snprintf(msg, sizeof(msg), "%s %016llx", c->name, (unsigned long long)c->boot);
    if (cl_nats_publish(c->nats, c->subject_hb, NULL, msg, (size_t)n) == 0)
        c->hb_sent_ms = now;
}

/* From the sweep: send ours, and notice instances that went silent. */
static void heartbeats(struct cluster *c, uint64_t now)
{
    if (now - c->hb_sent_ms >= HEARTBEAT_MS)
        heartbeat_send(c, now);
    for (unsigned i = 0; i < c->npeers; i++) {
        struct peer *p = &c->peers[i];
        if (p->alive && now - p->seen_ms > HEARTBEAT_MISSED_MS) {
            p->alive = false;
            log_warn("cluster", "instance %s sent no heartbeat for %d s: its users' presence "
                     "turns unavailable here", p->name, HEARTBEAT_MISSED_MS / 1000);
            peer_gone(c, p->name);
        }
    }
}

/* A stanza another instance offers: delivered to the sessions here that it
 * is for, and the sender told whether any took it. */
static void route_in(struct cluster *c, const uint8_t *data, size_t len, const char *reply)
{
    const uint8_t *nl = memchr(data, '\n', len);
    if (nl == NULL)
        return;
    size_t ol = (size_t)(nl - data);
    if (ol == strlen(c->name) && memcmp(data, c->name, ol) == 0)
        return; /* our own offer */
    char origin[33];
    snprintf(origin, sizeof(origin), "%.*s", (int)(ol < 32 ? ol : 32), (const char *)data);
    struct route_ctx rc = {c, origin, 0};
    c->routes_in++;
    if (parse_stanza(c->h, (const char *)nl + 1, len - ol - 1, route_deliver_fn, &rc) != 0)
        return;
    if (reply != NULL)
        cl_nats_publish(c->nats, reply, NULL, rc.delivered ? "1" : "0", 1);
}

static void route_free(struct cluster *c, struct route_wait *w)
{
    HASH_DEL(c->routes, w);
    c->nroutes--;
    free(w->data);
    free(w);
}

static void route_reply(struct cluster *c, uint64_t id, const uint8_t *data, size_t len)
{
    struct route_wait *w;
    HASH_FIND(hh, c->routes, &id, sizeof(id), w);
    if (w != NULL && len == 1 && data[0] == '1') {
        c->route_delivered++;
        route_free(c, w);
    }
}

static void route_fallback_fn(void *ud, struct xnode *st, struct arena *a)
{
    router_redeliver(ud, st, a);
}

/* Nobody took it in time: what single mode does for a recipient that is
 * not there (router_redeliver: another resource here, offline storage, or
 * an error to the sender). */
static void route_expire(struct cluster *c, uint64_t now)
{
    struct route_wait *w, *tmp;
    HASH_ITER(hh, c->routes, w, tmp) {
        if (now < w->deadline_ms)
            continue;
        const uint8_t *nl = memchr(w->data, '\n', w->len);
        c->route_fallbacks++;
        if (nl)
            parse_stanza(c->h, (const char *)nl + 1, w->len - (size_t)(nl - w->data) - 1,
                         route_fallback_fn, c->h);
        route_free(c, w);
    }
}

/* Handles what NATS delivered, at most `max` records per loop turn so that
 * clients are served between bursts; the turn's group commit covers the
 * applies. */
static void drain(struct cluster *c, size_t max)
{
    struct inrec r;
    c->ack_pending[0] = '\0';
    for (size_t i = 0; i < max && !c->failed && dequeue(c, &r); i++) {
        if (r.kind == IN_LOG)
            apply_entry(c, r.seq, r.reply, r.data, r.len);
        else if (r.kind == IN_ROUTE && !c->stopping)
            route_in(c, r.data, r.len, r.reply);
        else if (r.kind == IN_REPLY)
            route_reply(c, r.seq, r.data, r.len);
        else if (r.kind == IN_HEARTBEAT)
            heartbeat_in(c, r.data, r.len);
        free(r.data);
        free(r.reply);
    }
    if (c->ack_pending[0])
        cl_nats_ack(c->nats, c->ack_pending);
}

static void on_wake(uv_async_t *a)
{
    struct cluster *c = a->data;
    drain(c, DRAIN_PER_TURN);
    pthread_mutex_lock(&c->mu);
    bool more = c->count > 0 && !c->failed;
    pthread_mutex_unlock(&c->mu);
    if (more)
        uv_async_send(&c->wake);
}

/* A failed commit took back this turn's applies: the position in memory
 * is no longer the stored one. */
static void on_rollback(void *ctx)
{
    struct cluster *c = ctx;
    cluster_apply_failed(c->h, HERALD_EIO);
}

/* ---- life cycle ---- */

static void commit_all(struct herald *h)
{
    batch_commit(h->batch);
    while (batch_open_now(h->batch))
        batch_commit(h->batch);
}

/* Connects, checks this store against the stream and starts consuming from
 * the applied position; *last is the stream's end now. Leaves nothing open
 * on failure. HERALD_EINVAL: this store cannot serve (do not retry). */
static int join(struct cluster *c, const struct cl_nats_opts *o, uint64_t *last, char *err,
                size_t errlen)
{
    uint64_t first = 0;
    int rc = cl_nats_open(&c->nats, o, err, errlen);
    if (rc != 0)
        return rc;
    if ((rc = store_cluster_applied_now(c->h->store, &c->applied)) != 0) {
        snprintf(err, errlen, "reading the applied position: %s", herald_strerror(rc));
        rc = HERALD_EINVAL;
    } else if ((rc = cl_nats_stream_seqs(c->nats, &first, last, err, errlen)) != 0) {
        /* err set */
    } else if (*last >= first && first > c->applied + 1) {
        snprintf(err, errlen, "this instance applied the log up to %llu but the stream starts "
                 "at %llu (retention): re-seed this instance (docs/cluster.md)",
                 (unsigned long long)c->applied, (unsigned long long)first);
        rc = HERALD_EINVAL;
    } else if (c->applied > *last) {
        snprintf(err, errlen, "this instance applied the log up to %llu but the stream ends at "
                 "%llu: the stream lost entries (docs/cluster.md, section 3.3)",
                 (unsigned long long)c->applied, (unsigned long long)*last);
        rc = HERALD_EINVAL;
    } else {
        rc = cl_nats_consume(c->nats, c->durable, c->applied + 1, enqueue, c, err, errlen);
    }
    if (rc != 0) {
        cl_nats_close(c->nats);
        c->nats = NULL;
    }
    return rc;
}

int cluster_open(struct herald *h)
{
    const struct config *cfg = h->cfg;
    if (cfg->cluster_name == NULL)
        return 0;
    struct cluster *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->ring = calloc(INQ_RECORDS, sizeof(*c->ring))) == NULL) {
        free(c);
        log_error("cluster", "out of memory");
        return -1;
    }
    h->cluster = c;
    c->h = h;
    snprintf(c->name, sizeof(c->name), "%s", cfg->cluster_name);
    snprintf(c->subject_log, sizeof(c->subject_log), "hrd.%s.log.", cfg->cluster_id);
    snprintf(c->subject_cursor, sizeof(c->subject_cursor), "hrd.%s.log.cursor", cfg->cluster_id);
    snprintf(c->subject_im, sizeof(c->subject_im), "hrd.%s.log.im", cfg->cluster_id);
    snprintf(c->durable, sizeof(c->durable), "herald-%s", cfg->cluster_name);
    snprintf(c->subject_route, sizeof(c->subject_route), "hrd.%s.route", cfg->cluster_id);
    snprintf(c->subject_hb, sizeof(c->subject_hb), "hrd.%s.hb", cfg->cluster_id);
    snprintf(c->reply_prefix, sizeof(c->reply_prefix), "hrd.%s.reply.%s.", cfg->cluster_id,
             cfg->cluster_name);
    c->boot = random64();
    c->gap_logged = UINT64_MAX;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->room, NULL);
    pthread_cond_init(&c->avail, NULL);
    uv_async_init(h->loop, &c->wake, on_wake);
    c->wake.data = c;
    c->wake_open = true;
    batch_on_rollback(h->batch, on_rollback, c);

    char err[512];
    struct cluster_names nm;
    struct cl_nats_opts o;
    cluster_nats_opts(cfg, c->name, &nm, &o);
    log_info("cluster", "instance %s joining cluster '%s' through %s (libnats %s)", c->name,
             cfg->cluster_id, cfg->cluster_urls, cl_nats_version());
    if (cfg->cluster_replicas == 1)
        log_warn("cluster", "cluster.replicas = 1: one nats-server holds the log; its loss may "
                 "lose acknowledged changes not yet applied elsewhere (tests only)");
    uint64_t last = 0;
    int rc;
    /* NATS may come up after Herald, and JetStream may still be electing
     * its leaders: try for a while before giving up. */
    for (int attempt = 1;; attempt++) {
        rc = join(c, &o, &last, err, sizeof(err));
        if (rc == 0 || rc == HERALD_EINVAL || rc == HERALD_ENOMEM || attempt == JOIN_ATTEMPTS)
            break;
        if (attempt % 5 == 1)
            log_warn("cluster", "%s; retrying (attempt %d of %d)", err, attempt, JOIN_ATTEMPTS);
        sleep(1);
    }
    if (rc != 0) {
        log_error("cluster", "%s", rc == HERALD_ENOMEM ? "out of memory" : err);
        return -1;
    }
    /* Catch up before serving: no client sees a state older than the log
     * was at start (the loop does not run yet; nothing to answer). */
    log_info("cluster", "applied up to %llu; the log ends at %llu: catching up",
             (unsigned long long)c->applied, (unsigned long long)last);
    while (c->applied < last && !c->failed) {
        pthread_mutex_lock(&c->mu);
        while (c->count == 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&c->avail, &c->mu, &ts);
            if (c->count == 0 && !cl_nats_connected(c->nats))
                break;
        }
        pthread_mutex_unlock(&c->mu);
        drain(c, DRAIN_PER_TURN);
        commit_all(h);
    }
    if (c->failed)
        return -1;
    char replies[192];
    snprintf(replies, sizeof(replies), "%s*", c->reply_prefix);
    if (cl_nats_subscribe(c->nats, c->subject_route, on_core, c, err, sizeof(err)) != 0 ||
        cl_nats_subscribe(c->nats, replies, on_core, c, err, sizeof(err)) != 0 ||
        cl_nats_subscribe(c->nats, c->subject_hb, on_core, c, err, sizeof(err)) != 0) {
        log_error("cluster", "%s", err);
        return -1;
    }
    heartbeat_send(c, uv_now(h->loop)); /* the others learn of us at once */
    log_info("cluster", "instance %s serving at log position %llu", c->name,
             (unsigned long long)c->applied);
    return 0;
}

void cluster_stop(struct herald *h)
{
    struct cluster *c = h->cluster;
    if (c == NULL || c->stopping)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_cond_broadcast(&c->room);
    pthread_mutex_unlock(&c->mu);
    /* Requests still waiting were never acknowledged: they may or may not
     * be applied (by every instance) later. */
    struct pending *p, *tmp;
    HASH_ITER(hh, c->pending, p, tmp) {
        HASH_DEL(c->pending, p);
        c->inflight--;
        if (p->kind == CL_IQ || p->kind == CL_ROSTER)
            router_batch_failed(h, p->to, p->id, p->from, HERALD_EUNAVAIL);
        else if (p->kind == CL_REST)
            http_problem_code(p->hc, HERALD_EUNAVAIL, "the server is shutting down");
        pending_free(p);
    }
    if (c->wake_open) {
        c->wake_open = false;
        uv_close((uv_handle_t *)&c->wake, NULL);
    }
}

void cluster_close(struct herald *h)
{
    struct cluster *c = h->cluster;
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_cond_broadcast(&c->room);
    pthread_mutex_unlock(&c->mu);
    if (c->nats)
        cl_nats_close(c->nats); /* joins the fetch thread */
    struct inrec r;
    while (dequeue(c, &r)) {
        free(r.data);
        free(r.reply);
    }
    struct route_wait *w, *wt;
    HASH_ITER(hh, c->routes, w, wt)
        route_free(c, w);
    struct remote_avail *ra, *rt;
    HASH_ITER(hh, c->remote, ra, rt)
        remote_forget(c, ra);
    struct pending *p, *tmp;
    HASH_ITER(hh, c->pending, p, tmp) {
        HASH_DEL(c->pending, p);
        pending_free(p);
    }
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->room);
    pthread_cond_destroy(&c->avail);
    free(c->ring);
    free(c);
    h->cluster = NULL;
}

const char *cluster_unhealthy(const struct herald *h)
{
    const struct cluster *c = h->cluster;
    if (c == NULL)
        return NULL;
    if (c->failed)
        return "applying the cluster log stopped here: restart this instance\n";
    if (!cl_nats_connected(c->nats))
        return "not connected to NATS: changes cannot be stored\n";
    return NULL;
}

void cluster_metrics(struct herald *h, struct buf *b)
{
    struct cluster *c = h->cluster;
    if (c == NULL)
        return;
    buf_printf(b,
               "# HELP herald_cluster_connected 1 while the NATS connection is up.\n"
               "# TYPE herald_cluster_connected gauge\nherald_cluster_connected %d\n"
               "# HELP herald_cluster_applied_seq Last log sequence applied here.\n"
               "# TYPE herald_cluster_applied_seq gauge\nherald_cluster_applied_seq %llu\n"
               "# HELP herald_cluster_apply_failed 1 when applying stopped here (restart it).\n"
               "# TYPE herald_cluster_apply_failed gauge\nherald_cluster_apply_failed %d\n"
               "# HELP herald_cluster_inflight Changes proposed and not yet applied.\n"
               "# TYPE herald_cluster_inflight gauge\nherald_cluster_inflight %u\n"
               "# HELP herald_cluster_proposals_total Changes proposed to the log.\n"
               "# TYPE herald_cluster_proposals_total counter\nherald_cluster_proposals_total "
               "%llu\n"
               "# HELP herald_cluster_proposal_failures_total Changes answered wait/503.\n"
               "# TYPE herald_cluster_proposal_failures_total counter\n"
               "herald_cluster_proposal_failures_total %llu\n"
               "# HELP herald_cluster_proposal_retries_total Re-publishes with the same id.\n"
               "# TYPE herald_cluster_proposal_retries_total counter\n"
               "herald_cluster_proposal_retries_total %llu\n"
               "# HELP herald_cluster_late_applies_total Own changes applied after their "
               "requester got an error.\n"
               "# TYPE herald_cluster_late_applies_total counter\n"
               "herald_cluster_late_applies_total %llu\n"
               "# HELP herald_cluster_routed_total Stanzas offered to other instances.\n"
               "# TYPE herald_cluster_routed_total counter\nherald_cluster_routed_total %llu\n"
               "# HELP herald_cluster_route_delivered_total Offered stanzas another instance "
               "delivered.\n"
               "# TYPE herald_cluster_route_delivered_total counter\n"
               "herald_cluster_route_delivered_total %llu\n"
               "# HELP herald_cluster_route_fallbacks_total Offered stanzas nobody took in 2 s "
               "(stored offline here or bounced).\n"
               "# TYPE herald_cluster_route_fallbacks_total counter\n"
               "herald_cluster_route_fallbacks_total %llu\n"
               "# HELP herald_cluster_routes_in_total Stanzas other instances offered here.\n"
               "# TYPE herald_cluster_routes_in_total counter\nherald_cluster_routes_in_total "
               "%llu\n"
               "# HELP herald_cluster_out_of_order_total Log entries that arrived after a gap "
               "and were left to come again.\n"
               "# TYPE herald_cluster_out_of_order_total counter\n"
               "herald_cluster_out_of_order_total %llu\n"
               "# HELP herald_cluster_applied_total Log entries applied since start.\n"
               "# TYPE herald_cluster_applied_total counter\nherald_cluster_applied_total %llu\n",
               cl_nats_connected(c->nats) ? 1 : 0, (unsigned long long)c->applied,
               c->failed ? 1 : 0, c->inflight, (unsigned long long)c->proposals,
               (unsigned long long)c->proposal_failures, (unsigned long long)c->retries,
               (unsigned long long)c->late_applies, (unsigned long long)c->routed,
               (unsigned long long)c->route_delivered, (unsigned long long)c->route_fallbacks,
               (unsigned long long)c->routes_in, (unsigned long long)c->out_of_order,
               (unsigned long long)c->applied_total);
}

/* ---- the CLI ---- */

/* Waits (up to 10 s) until the instance of this data directory has
 * applied the log up to seq. */
static int wait_applied(struct store *store, uint64_t seq, char *err, size_t errlen)
{
    for (int i = 0; i < 200; i++) {
        uint64_t applied = 0;
        if (store_cluster_applied_now(store, &applied) == 0 && applied >= seq)
            return 0;
        usleep(50000);
    }
    snprintf(err, errlen, "the instance of this data directory has not applied the cluster log "
             "up to entry %llu within 10 s (is it running?)", (unsigned long long)seq);
    return HERALD_ECLUSTER;
}

static int cli_connect(const struct config *cfg, struct cl_nats **n, char *err, size_t errlen)
{
    struct cluster_names nm;
    struct cl_nats_opts o;
    cluster_nats_opts(cfg, "herald-cli", &nm, &o);
    return cl_nats_open(n, &o, err, errlen);
}

int cluster_cli_sync(const struct config *cfg, struct store *store, char *err, size_t errlen)
{
    struct cl_nats *n = NULL;
    uint64_t first, last;
    int rc = cli_connect(cfg, &n, err, errlen);
    if (rc == 0)
        rc = cl_nats_stream_seqs(n, &first, &last, err, errlen);
    if (n)
        cl_nats_close(n);
    return rc == 0 ? wait_applied(store, last, err, errlen) : rc;
}

int cluster_cli_submit(const struct config *cfg, struct store *store, struct cl_entry *e, char *err,
                       size_t errlen)
{
    char subject[96], id[96];
    snprintf(subject, sizeof(subject), "hrd.%s.log.acct", cfg->cluster_id);
    struct cl_nats *n = NULL;
    int rc = cli_connect(cfg, &n, err, errlen);
    if (rc != 0)
        return rc;
    e->origin = "cli";
    e->boot = random64();
    e->req = 1;
    e->time_ms = wall_ms();
    e->seed = random64();
    uint8_t *data = NULL;
    size_t len = 0;
    uint64_t seq = 0;
    if ((rc = cl_entry_encode(e, &data, &len)) != 0) {
        snprintf(err, errlen, "%s", herald_strerror(rc));
    } else {
        snprintf(id, sizeof(id), "cli/%016llx/1", (unsigned long long)e->boot);
        rc = cl_nats_propose_sync(n, subject, id, data, len, &seq, err, errlen);
    }
    free(data);
    cl_nats_close(n);
    if (rc != 0)
        return rc;
    return wait_applied(store, seq, err, errlen);
}
