/* sm.c - XEP-0198 stream management and XEP-0352 client state indication.
 *
 * The unacknowledged queue (struct sq, a ring of chunk references) holds
 * every stanza sent since <enable/> until the client's h covers it; h
 * counters are uint32_t and wrap at 2^32 as §4 requires. A resumable session
 * whose connection is lost is detached: it stays registered (available,
 * routable) and queues what it is sent; <resume/> on a new authenticated
 * stream moves its state there (sm_take_over) and retransmits the queue.
 *
 * When a session with unacknowledged stanzas ends for good, the queue is
 * handed to herald->sm_orphans and re-routed at the next prepare, before the
 * batch commits (never from inside a send, which may be iterating the
 * account table): the bytes are parsed back into stanzas and router.c's
 * router_redeliver decides per stanza (docs/stream-management.md).
 *
 * Acknowledgements of the client's stanzas (<a/> answering its <r/>) leave
 * after the loop turn's batch has committed, so "handled" means durable. */
#include "sm.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "conn.h"
#include "errors.h"
#include "herald.h"
#include "im.h"
#include "log.h"
#include "outq.h"
#include "pubsub_xmpp.h"
#include "router.h"
#include "sasl.h"
#include "session.h"
#include "xml.h"
#include "xml_parser.h"


/* ---- the stanza queue ---- */

int sq_push(struct sq *q, struct chunk *const *parts, size_t n, const struct sq_tag *tag)
{
    if (n == 0 || n > SQ_PARTS)
        return HERALD_EINVAL;
    if (q->len == q->cap) {
        uint32_t cap = q->cap ? q->cap * 2 : 16;
        struct sq_entry *e = malloc((size_t)cap * sizeof(*e));
        if (e == NULL)
            return HERALD_ENOMEM;
        /* Unroll the ring into the new array, oldest first. */
        for (uint32_t i = 0; i < q->len; i++)
            e[i] = q->e[(q->head + i) % q->cap];
        free(q->e);
        q->e = e;
        q->cap = cap;
        q->head = 0;
    }
    struct sq_entry *slot = &q->e[(q->head + q->len) % q->cap];
    slot->n = (uint8_t)n;
    if (tag)
        slot->tag = *tag;
    else
        memset(&slot->tag, 0, sizeof(slot->tag));
    for (size_t k = 0; k < n; k++) {
        slot->part[k] = chunk_ref(parts[k]);
        q->bytes += parts[k]->len;
    }
    q->len++;
    return 0;
}

const struct sq_entry *sq_at(const struct sq *q, uint32_t i)
{
    return &q->e[(q->head + i) % q->cap];
}

void sq_pop(struct sq *q, uint32_t n)
{
    for (uint32_t i = 0; i < n && q->len > 0; i++) {
        struct sq_entry *e = &q->e[q->head];
        for (uint8_t k = 0; k < e->n; k++) {
            q->bytes -= e->part[k]->len;
            chunk_unref(e->part[k]);
        }
        q->head = (q->head + 1) % q->cap;
        q->len--;
    }
    if (q->len == 0)
        q->head = 0;
}

void sq_clear(struct sq *q)
{
    sq_pop(q, q->len);
    free(q->e);
    memset(q, 0, sizeof(*q));
}

/* ---- output ---- */

static void send_str(struct session *s, const char *str)
{
    session_send(s, str, strlen(str));
}

static void send_failed(struct session *s, const char *condition)
{
    char b[160];
    snprintf(b, sizeof(b), "<failed xmlns='" NS_SM "'><%s xmlns='" NS_STANZAS "'/></failed>",
             condition);
    send_str(s, b);
}

void sm_request_ack(struct session *s)
{
    if (s->conn == NULL || s->sm.ack_requested)
        return;
    s->sm.ack_requested = true;
    send_str(s, "<r xmlns='" NS_SM "'/>");
}

/* Writes a queued stanza again (resumption): not counted a second time. */
static void resend(struct session *s, const struct sq_entry *e)
{
    session_write_stanza(s, e->part, e->n, CONN_SEND_FORCE);
}

int sm_record(struct session *s, struct chunk *const *parts, size_t n, const struct sq_tag *tag)
{
    const struct config *cfg = s->h->cfg;
    int rc = sq_push(&s->sm.unacked, parts, n, tag);
    if (rc != 0)
        return rc;
    s->sm.h_out++;
    if (s->sm.unacked.len > cfg->sm_max_unacked || s->sm.unacked.bytes > cfg->sm_max_unacked_bytes)
        return HERALD_ELIMIT;
    /* Most clients acknowledge on their own; ask when an eighth of the
     * bound waits (and the sweep asks idle ones), so that a burst costs no
     * extra round trips. */
    if (s->sm.unacked.len >= cfg->sm_max_unacked / 8)
        sm_request_ack(s);
    return 0;
}

/* ---- acknowledgements ---- */

/* Sessions whose <r/> waits for the batch commit: herald->sm_ack_list. */
static void acks_after_commit(void *ctx, int failed)
{
    struct herald *h = ctx;
    (void)failed; /* stanzas whose change failed got their own error replies */
    h->sm_acks_scheduled = false;
    struct session *s = h->sm_ack_list;
    h->sm_ack_list = NULL;
    while (s != NULL) {
        struct session *next = s->sm.ack_next;
        s->sm.ack_next = NULL;
        s->sm.ack_due = false;
        char b[64];
        snprintf(b, sizeof(b), "<a xmlns='" NS_SM "' h='%" PRIu32 "'/>", s->sm.h_in);
        send_str(s, b);
        s = next;
    }
}

static void answer_request(struct session *s)
{
    struct herald *h = s->h;
    if (s->sm.ack_due)
        return;
    s->sm.ack_due = true;
    s->sm.ack_next = h->sm_ack_list;
    h->sm_ack_list = s;
    if (!h->sm_acks_scheduled) {
        h->sm_acks_scheduled = true;
        if (batch_after(h->batch, acks_after_commit, h) != 0)
            acks_after_commit(h, 0);
    }
}

static void ack_list_remove(struct session *s)
{
    if (!s->sm.ack_due)
        return;
    for (struct session **pp = &s->h->sm_ack_list; *pp; pp = &(*pp)->sm.ack_next) {
        if (*pp == s) {
            *pp = s->sm.ack_next;
            break;
        }
    }
    s->sm.ack_next = NULL;
    s->sm.ack_due = false;
}

/* Parses an h attribute: decimal, 0..2^32-1. */
static int parse_h(const char *v, uint32_t *out)
{
    if (v == NULL || *v < '0' || *v > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0' || x > UINT32_MAX)
        return -1;
    *out = (uint32_t)x;
    return 0;
}

int sm_ack(struct sm_state *sm, uint32_t h, sm_acked_fn *acked, void *ud)
{
    uint32_t n = h - sm->acked; /* modulo 2^32 */
    if (n > sm->unacked.len)
        return -1;
    for (uint32_t i = 0; acked && i < n; i++)
        acked(ud, sq_at(&sm->unacked, i));
    sq_pop(&sm->unacked, n);
    sm->acked = h;
    return 0;
}

static void count_too_high(struct session *s, uint32_t h)
{
    char text[128];
    snprintf(text, sizeof(text), "h='%" PRIu32 "' acknowledges more than the %" PRIu32
             " stanzas sent", h, s->sm.h_out);
    session_stream_error(s, "undefined-condition", text);
}

/* ---- the elements ---- */

static bool table_add(struct session *s)
{
    unsigned char rnd[16];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return false;
    for (int i = 0; i < 16; i++)
        snprintf(s->sm.id + 2 * i, 3, "%02x", rnd[i]);
    HASH_ADD(sm.hh, s->h->sm_ids, sm.id, strlen(s->sm.id), s);
    s->sm.resumable = true;
    return true;
}

static void table_remove(struct session *s)
{
    if (!s->sm.resumable)
        return;
    HASH_DELETE(sm.hh, s->h->sm_ids, s);
    s->sm.resumable = false;
}

/* §3: <enable/> after binding; resumption if asked for and allowed. */
static void on_enable(struct session *s, const struct xnode *el)
{
    const struct config *cfg = s->h->cfg;
    if (s->state != ST_BOUND || s->sm.enabled) {
        send_failed(s, "unexpected-request");
        return;
    }
    const char *resume = xml_attr(el, "resume");
    const char *max = xml_attr(el, "max");
    bool want = resume && (strcmp(resume, "true") == 0 || strcmp(resume, "1") == 0);
    unsigned timeout = cfg->resume_timeout;
    uint32_t client_max;
    /* §5: the client's max is a preference; the server's bound wins. */
    if (max != NULL && parse_h(max, &client_max) == 0 && client_max > 0 && client_max < timeout)
        timeout = client_max;
    s->sm.enabled = true;
    s->sm.h_in = s->sm.h_out = s->sm.acked = 0;
    s->sm.timeout_s = timeout;
    char b[160];
    if (want && timeout > 0 && table_add(s))
        snprintf(b, sizeof(b), "<enabled xmlns='" NS_SM "' id='%s' resume='true' max='%u'/>",
                 s->sm.id, timeout);
    else
        snprintf(b, sizeof(b), "<enabled xmlns='" NS_SM "'/>");
    send_str(s, b);
    log_debug("c2s", "%s: stream management enabled%s", s->full, s->sm.resumable ? ", resumable" : "");
}

static void on_ack(struct session *s, const struct xnode *el)
{
    uint32_t h;
    if (!s->sm.enabled) {
        session_stream_error(s, "unsupported-stanza-type", "stream management is not enabled");
        return;
    }
    if (parse_h(xml_attr(el, "h"), &h) != 0) {
        session_stream_error(s, "bad-format", "<a/> needs h, a number below 2^32");
        return;
    }
    s->sm.ack_requested = false;
    if (sm_ack(&s->sm, h, durable_acked, s) != 0)
        count_too_high(s, h);
    durable_flush(s);
}

/* §5: <resume/> instead of binding, on a stream authenticated as the same
 * account. A session still attached to a connection the server has not yet
 * found dead is taken over too: the new stream is the client's word. */
static void on_resume(struct session *s, const struct xnode *el)
{
    struct herald *h = s->h;
    const char *previd = xml_attr(el, "previd");
    uint32_t hv;
    if (s->state != ST_BIND) {
        send_failed(s, "unexpected-request");
        return;
    }
    if (previd == NULL || parse_h(xml_attr(el, "h"), &hv) != 0) {
        send_failed(s, "bad-request");
        return;
    }
    struct session *old = NULL;
    HASH_FIND(sm.hh, h->sm_ids, previd, strlen(previd), old);
    if (old == NULL || old->state != ST_BOUND || strcmp(old->bare, s->bare) != 0) {
        h->stats.sm_resume_failed++;
        log_info("c2s", "%s: %s cannot resume %s: no such session (ended, timed out or not "
                 "this account's)", s->conn->peer, s->bare, previd);
        /* §5: no h: what the old session handled is forgotten. */
        send_failed(s, "item-not-found");
        return;
    }
    if (sm_ack(&old->sm, hv, durable_acked, old) != 0) {
        char text[128];
        snprintf(text, sizeof(text), "h='%" PRIu32 "' acknowledges more than the %" PRIu32
                 " stanzas sent", hv, old->sm.h_out);
        session_stream_error(s, "undefined-condition", text);
        return;
    }
    durable_flush(old);
    bool was_attached = old->conn != NULL;
    sm_take_over(s, old);
    h->stats.sm_resumed++;
    char b[160];
    snprintf(b, sizeof(b), "<resumed xmlns='" NS_SM "' previd='%s' h='%" PRIu32 "'/>", s->sm.id,
             s->sm.h_in);
    send_str(s, b);
    for (uint32_t i = 0; i < s->sm.unacked.len; i++)
        resend(s, sq_at(&s->sm.unacked, i));
    log_info("c2s", "%s: %s resumed%s; %" PRIu32 " unacknowledged stanza(s) sent again",
             s->conn->peer, s->full, was_attached ? " (replacing a connection still open)" : "",
             s->sm.unacked.len);
    if (s->sm.unacked.len > 0)
        sm_request_ack(s);
    if (s->offline_pending)
        presence_offline_continue(s);
}

/* ---- client state indication (XEP-0352) ---- */

static bool starts_with(const struct chunk *c, const char *p)
{
    size_t n = strlen(p);
    return c->len >= n && memcmp(c->data, p, n) == 0;
}

static bool contains(const struct chunk *c, const char *p)
{
    return memmem(c->data, c->len, p, strlen(p)) != NULL;
}

/* What may wait while the client is inactive: presence that is not about a
 * subscription, and messages without a body (pubsub notifications, chat
 * states, receipts). Everything else is urgent (§6 leaves the choice to the
 * server). The serializer writes attributes with single quotes. */
static bool urgent(struct chunk *const *parts, size_t n)
{
    const struct chunk *first = parts[0];
    if (starts_with(first, "<presence"))
        return contains(first, "type='subscribe") || contains(first, "type='unsubscribe");
    if (!starts_with(first, "<message"))
        return true;
    for (size_t k = 0; k < n; k++)
        if (contains(parts[k], "<body"))
            return true;
    return false;
}

void csi_release(struct session *s)
{
    struct sq *q = &s->csi.held;
    for (uint32_t i = 0; i < q->len && s->conn != NULL && s->state != ST_CLOSED; i++) {
        const struct sq_entry *e = sq_at(q, i);
        if (session_write_stanza(s, e->part, e->n, 0) != 0)
            break;
    }
    sq_clear(q);
}

bool csi_hold(struct session *s, struct chunk *const *parts, size_t n)
{
    const struct config *cfg = s->h->cfg;
    if (urgent(parts, n)) {
        csi_release(s);
        return false;
    }
    if (sq_push(&s->csi.held, parts, n, NULL) != 0)
        return false;
    /* Bounded: a full hold goes out at once. */
    if (s->csi.held.len >= cfg->csi_queue_size || s->csi.held.bytes > cfg->max_outq_bytes / 2)
        csi_release(s);
    return true;
}

static void on_csi(struct session *s, const struct xnode *el)
{
    if (s->state != ST_BOUND)
        return; /* §5.1: only after binding; ignored before */
    if (strcmp(el->name, "inactive") == 0) {
        s->csi.inactive = true;
    } else if (strcmp(el->name, "active") == 0) {
        s->csi.inactive = false;
        csi_release(s);
    }
}

bool sm_element(struct session *s, const struct xnode *el)
{
    if (strcmp(el->ns, NS_CSI) == 0) {
        on_csi(s, el);
        return true;
    }
    if (strcmp(el->ns, NS_SM) != 0)
        return false;
    if (strcmp(el->name, "enable") == 0)
        on_enable(s, el);
    else if (strcmp(el->name, "resume") == 0)
        on_resume(s, el);
    else if (strcmp(el->name, "r") == 0 && s->sm.enabled)
        answer_request(s);
    else if (strcmp(el->name, "a") == 0)
        on_ack(s, el);
    else
        session_stream_error(s, "unsupported-stanza-type", NULL);
    return true;
}

/* ---- detaching, resuming, ending ---- */

static void detached_add(struct session *s)
{
    struct herald *h = s->h;
    s->sm.detached = true;
    s->sm.det_prev = NULL;
    s->sm.det_next = h->sm_detached;
    if (h->sm_detached)
        h->sm_detached->sm.det_prev = s;
    h->sm_detached = s;
    h->sm_ndetached++;
}

static void detached_remove(struct session *s)
{
    struct herald *h = s->h;
    if (!s->sm.detached)
        return;
    if (s->sm.det_prev)
        s->sm.det_prev->sm.det_next = s->sm.det_next;
    else
        h->sm_detached = s->sm.det_next;
    if (s->sm.det_next)
        s->sm.det_next->sm.det_prev = s->sm.det_prev;
    s->sm.det_prev = s->sm.det_next = NULL;
    s->sm.detached = false;
    h->sm_ndetached--;
}

bool sm_detach(struct session *s)
{
    struct herald *h = s->h;
    if (!s->sm.resumable || s->state != ST_BOUND || h->shutting_down || s->sm.detached)
        return false;
    session_drop_conn(s);
    /* Held stanzas are in the unacknowledged queue too. */
    sq_clear(&s->csi.held);
    s->csi.inactive = false;
    ack_list_remove(s);
    s->sm.ack_requested = false;
    s->sm.detached_ms = uv_now(h->loop);
    detached_add(s);
    log_info("c2s", "%s: connection lost; kept for resumption for %u s (%" PRIu32
             " unacknowledged stanza(s))", s->full, s->sm.timeout_s, s->sm.unacked.len);
    return true;
}

void sm_take_over(struct session *s, struct session *old)
{
    struct herald *h = s->h;
    if (old->conn != NULL)
        session_replace_conn(old);
    table_remove(old);
    detached_remove(old);
    ack_list_remove(old);
    sq_clear(&old->csi.held);
    struct account *acct = session_account(h, old->bare);
    for (struct session **pp = acct ? &acct->sessions : NULL; pp && *pp; pp = &(*pp)->next_res) {
        if (*pp == old) {
            *pp = s;
            break;
        }
    }
    /* The logical session is old's; the transport (connection, parser,
     * stream id, TLS) is s's. */
    struct session mine = *s;
    *s = *old;
    s->conn = mine.conn;
    s->parser = mine.parser;
    s->sasl = mine.sasl;
    s->delay = mine.delay;
    s->tls = mine.tls;
    s->framed = mine.framed;
    s->units_in = mine.units_in;
    s->header_sent = mine.header_sent;
    memcpy(s->stream_id, mine.stream_id, sizeof(s->stream_id));
    s->auth_failures = mine.auth_failures;
    s->started_ms = mine.started_ms;
    s->last_keepalive_ms = mine.last_keepalive_ms;
    s->state = ST_BOUND;
    s->csi.inactive = false; /* XEP-0352 §5.1: a new stream starts active */
    s->sm.ack_requested = false;
    free(mine.bare);
    free(mine.full);
    HASH_ADD(sm.hh, h->sm_ids, sm.id, strlen(s->sm.id), s);
    s->sm.resumable = true;
    /* The old transport's parser and SASL state are not taken over. */
    xmlp_free(old->parser);
    hsasl_free(old->sasl);
    free(old);
}

/* Unacknowledged stanzas of ended sessions, re-routed at the next prepare. */
struct sm_orphan {
    struct sm_orphan *next;
    struct sq q;
    char full[];
};

void sm_forget_detached(struct session *s) { detached_remove(s); }

void sm_end(struct session *s)
{
    struct herald *h = s->h;
    table_remove(s);
    ack_list_remove(s);
    sq_clear(&s->csi.held);
    if (s->sm.unacked.len == 0) {
        sq_clear(&s->sm.unacked);
        return;
    }
    const char *full = s->full ? s->full : "";
    struct sm_orphan *o = malloc(sizeof(*o) + strlen(full) + 1);
    if (o == NULL) {
        log_error("c2s", "%s: %" PRIu32 " unacknowledged stanza(s) lost: out of memory", full,
                  s->sm.unacked.len);
        sq_clear(&s->sm.unacked);
        return;
    }
    o->q = s->sm.unacked;
    memset(&s->sm.unacked, 0, sizeof(s->sm.unacked));
    memcpy(o->full, full, strlen(full) + 1);
    /* Oldest first: keep arrival order across sessions. */
    struct sm_orphan **pp = &h->sm_orphans;
    while (*pp)
        pp = &(*pp)->next;
    o->next = NULL;
    *pp = o;
}

struct redeliver_ctx {
    struct herald *h;
    const char *full;
};

static void rd_open(void *ud, const struct xnode *hdr, const char *default_ns)
{
    (void)ud;
    (void)hdr;
    (void)default_ns;
}

static void rd_stanza(void *ud, struct xnode *st, struct arena *a)
{
    struct redeliver_ctx *c = ud;
    switch (router_redeliver(c->h, st, a)) {
    case REDELIVER_ROUTED:
        c->h->stats.sm_redelivered++;
        break;
    case REDELIVER_BOUNCED:
        c->h->stats.sm_bounced++;
        break;
    case REDELIVER_DROPPED:
        c->h->stats.sm_dropped++;
        break;
    }
}

static void rd_close(void *ud) { (void)ud; }

static void redeliver(struct herald *h, struct sm_orphan *o)
{
    static const char header[] = "<stream:stream xmlns='jabber:client' "
                                 "xmlns:stream='http://etherx.jabber.org/streams'>";
    static const struct xmlp_callbacks cb = {rd_open, rd_stanza, rd_close};
    struct redeliver_ctx ctx = {h, o->full};
    /* The stanzas were written by this server; the bound only has to admit
     * the largest it writes (a notification wraps a stanza-sized payload). */
    struct xmlp_limits lim = {4 * h->cfg->max_stanza_size + 65536, 4 * h->cfg->max_depth + 16};
    struct xmlp *p = xmlp_new(&lim, &cb, &ctx);
    uint64_t before = h->stats.sm_redelivered + h->stats.sm_bounced + h->stats.sm_dropped;
    enum xmlp_error e = p ? xmlp_feed(p, header, sizeof(header) - 1) : XMLP_NOMEM;
    for (uint32_t i = 0; i < o->q.len && e == XMLP_OK; i++) {
        const struct sq_entry *en = sq_at(&o->q, i);
        for (uint8_t k = 0; k < en->n && e == XMLP_OK; k++)
            e = xmlp_feed(p, en->part[k]->data, en->part[k]->len);
    }
    uint64_t done = h->stats.sm_redelivered + h->stats.sm_bounced + h->stats.sm_dropped - before;
    if (e != XMLP_OK)
        log_error("c2s", "%s: %" PRIu64 " of %" PRIu32 " unacknowledged stanza(s) could not be "
                  "re-routed: %s", o->full, (uint64_t)o->q.len - done, o->q.len, xmlp_strerror(e));
    else
        log_info("c2s", "%s: session ended with %" PRIu32 " unacknowledged stanza(s): re-routed "
                 "or stored, errors to their senders, or dropped (see herald_sm_* metrics)",
                 o->full, o->q.len);
    xmlp_free(p);
}

void sm_prepare(struct herald *h)
{
    while (h->sm_orphans != NULL) {
        struct sm_orphan *o = h->sm_orphans;
        h->sm_orphans = o->next;
        redeliver(h, o);
        sq_clear(&o->q);
        free(o);
    }
}

void sm_sweep(struct herald *h, uint64_t now)
{
    struct session *next;
    for (struct session *s = h->sm_detached; s; s = next) {
        next = s->sm.det_next;
        if (s->state == ST_CLOSED || now - s->sm.detached_ms >= (uint64_t)s->sm.timeout_s * 1000) {
            if (s->state != ST_CLOSED)
                log_info("c2s", "%s: not resumed within %u s; session ended", s->full,
                         s->sm.timeout_s);
            session_free_detached(s);
        }
    }
}

void sm_end_all_detached(struct herald *h)
{
    while (h->sm_detached != NULL)
        session_free_detached(h->sm_detached);
}
