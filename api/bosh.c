/* bosh.c - BOSH sessions: <body/> in, held requests answered with what the
 * XMPP session queued (see bosh.h for the model).
 *
 * A request is parsed whole (the hardened XML parser, framed in a wrapper),
 * its rid checked against the window, its children handed to the session
 * one element at a time (conn_inject), and then it is held: the virtual
 * connection's flush (on_output, once per loop turn) answers the oldest
 * held request with everything queued. A request is answered empty when its
 * 'wait' ends, or when a newer one would make more than 'hold' held
 * (XEP-0124 §11). The last answers are kept for a client that resends a rid
 * (§14.3). Limits: hold 1 (so 'requests' 2), wait and inactivity and pause
 * bounded by [http] bosh_*; a session's queued output is the c2s bound, as
 * for every session. */
#include "bosh.h"

#include <http_parser.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "buf.h"
#include "config.h"
#include "conn.h"
#include "herald.h"
#include "http.h"
#include "log.h"
#include "session.h"
#include "web.h"
#include "xml.h"
#include "xml_parser.h"

#define NS_HTTPBIND "http://jabber.org/protocol/httpbind"
#define NS_XBOSH "urn:xmpp:xbosh"
#define HOLD_MAX 1
#define REQUESTS (HOLD_MAX + 1)
#define CORS_MAX 320

struct held {
    struct http_conn *hc;   /* a reference (http_ref) */
    uint64_t rid;
    uint64_t since_ms;
    bool first;             /* the session creation request */
    char cors[CORS_MAX];    /* the answer's CORS header lines */
};

struct bosh {
    struct herald *h;
    char sid[33];
    struct conn *vc;        /* the session's virtual connection; NULL once gone */
    uint64_t rid;           /* the last rid taken */
    unsigned wait, hold;
    uint64_t idle_since_ms; /* nothing held since; 0 while a request is held */
    uint64_t pause_ms;      /* > 0: paused for that long (from idle_since_ms) */
    struct held held[REQUESTS];
    unsigned nheld;
    struct {
        uint64_t rid;
        struct buf body;
    } replay[REQUESTS];     /* the last answers, by rid % REQUESTS */
    struct early {
        struct http_conn *hc; /* a reference; NULL: the slot is free */
        uint64_t since_ms;
        char cors[CORS_MAX];
        struct buf raw;     /* the request's body, parsed when its turn comes */
    } early[REQUESTS];      /* by rid % REQUESTS: ahead of a missing rid */
    UT_hash_handle hh;
};

static void parse_and_handle(struct herald *h, struct http_conn *hc, const char *cors,
                             const char *raw, size_t len);

static void respond(struct http_conn *hc, const char *cors, const char *body, size_t len)
{
    http_respond(hc, 200, "text/xml; charset=utf-8", cors, body, len);
}

/* A terminal binding error (XEP-0124 §17.2), answered with HTTP 200. */
static void terminal(struct http_conn *hc, const char *cors, const char *condition)
{
    char b[200];
    int n = snprintf(b, sizeof(b), "<body type='terminate' condition='%s' xmlns='" NS_HTTPBIND
                     "'/>", condition);
    respond(hc, cors, b, (size_t)n);
}

/* Answers held request i (and forgets it) with what the session queued.
 * terminate: the session has ended. */
static void answer(struct bosh *b, unsigned i, bool terminate)
{
    struct held q = b->held[i];
    memmove(&b->held[i], &b->held[i + 1], (b->nheld - i - 1) * sizeof(b->held[0]));
    b->nheld--;
    if (b->nheld == 0)
        b->idle_since_ms = uv_now(b->h->loop);
    const struct config *cfg = b->h->cfg;
    struct buf out;
    buf_init(&out, 0);
    buf_puts(&out, "<body xmlns='" NS_HTTPBIND "' xmlns:stream='" NS_STREAM "'");
    if (q.first) {
        buf_printf(&out, " sid='%s' wait='%u' requests='%u' hold='%u' inactivity='%u' "
                         "polling='1' maxpause='%u' ver='1.11' from='", b->sid, b->wait,
                   REQUESTS, b->hold, cfg->bosh_inactivity, cfg->bosh_max_pause);
        buf_xml_attr(&out, cfg->domain, strlen(cfg->domain));
        buf_puts(&out, "' xmlns:xmpp='" NS_XBOSH "' xmpp:version='1.0' xmpp:restartlogic='true'");
    }
    struct buf content;
    buf_init(&content, 0);
    if (b->vc != NULL)
        conn_take(b->vc, &content);
    /* XEP-0206 §8: a stream error ends the session with remote-stream-error. */
    if (terminate && b->h->shutting_down)
        buf_puts(&out, " type='terminate' condition='system-shutdown'");
    else if (terminate && content.len > 0 && memmem(content.data, content.len, "<stream:error", 13))
        buf_puts(&out, " type='terminate' condition='remote-stream-error'");
    else if (terminate)
        buf_puts(&out, " type='terminate'");
    if (content.len == 0) {
        buf_puts(&out, "/>");
    } else {
        buf_putc(&out, '>');
        buf_append(&out, content.data, content.len);
        buf_puts(&out, "</body>");
    }
    buf_free(&content);
    if (buf_ok(&out)) {
        respond(q.hc, q.cors, out.data, out.len);
        /* Kept for a resend of this rid; the older one goes. */
        struct buf *keep = &b->replay[q.rid % REQUESTS].body;
        buf_free(keep);
        *keep = out;
        b->replay[q.rid % REQUESTS].rid = q.rid;
    } else {
        buf_free(&out);
        http_problem(q.hc, 500, NULL, NULL, "out of memory");
    }
    http_unref(q.hc);
}

static void bosh_free(struct bosh *b)
{
    HASH_DEL(b->h->bosh, b);
    while (b->nheld > 0)
        answer(b, 0, true);
    for (unsigned i = 0; i < REQUESTS; i++) {
        buf_free(&b->replay[i].body);
        if (b->early[i].hc != NULL) {
            terminal(b->early[i].hc, b->early[i].cors, "item-not-found");
            http_unref(b->early[i].hc);
        }
        buf_free(&b->early[i].raw);
    }
    free(b);
}

/* Held requests whose client went away are forgotten unanswered: what is
 * queued waits for a request that can still carry it. */
static void drop_dead(struct bosh *b)
{
    for (unsigned i = 0; i < b->nheld;) {
        if (http_alive(b->held[i].hc)) {
            i++;
            continue;
        }
        http_unref(b->held[i].hc);
        memmove(&b->held[i], &b->held[i + 1], (b->nheld - i - 1) * sizeof(b->held[0]));
        if (--b->nheld == 0)
            b->idle_since_ms = uv_now(b->h->loop);
    }
}

/* ---- the virtual connection's owner side ---- */

static void on_output(void *ud)
{
    struct bosh *b = ud;
    drop_dead(b);
    if (b->nheld > 0) {
        answer(b, 0, b->vc->closing);
    } else if (b->vc->closing && b->h->shutting_down) {
        /* Nobody will come for it: let the connection end. */
        struct buf drop;
        buf_init(&drop, 0);
        conn_take(b->vc, &drop);
        buf_free(&drop);
    }
}

static void on_gone(void *ud)
{
    struct bosh *b = ud;
    b->vc = NULL;
    log_debug("bosh", "session %s ended", b->sid);
    bosh_free(b);
}

static const struct conn_sink sink = {on_output, on_gone};

/* ---- requests ---- */

static void inject(struct bosh *b, const char *xml, size_t len)
{
    if (b->vc != NULL && !b->vc->closing)
        conn_inject(b->vc, xml, len);
}

static void inject_open(struct bosh *b)
{
    struct buf o;
    buf_init(&o, 0);
    buf_puts(&o, "<open xmlns='" NS_FRAMING "' version='1.0' to='");
    buf_xml_attr(&o, b->h->cfg->domain, strlen(b->h->cfg->domain));
    buf_puts(&o, "'/>");
    if (buf_ok(&o))
        inject(b, o.data, o.len);
    buf_free(&o);
}

/* Holds the request until output or its wait's end. */
static void hold(struct bosh *b, struct http_conn *hc, uint64_t rid, bool first, const char *cors)
{
    drop_dead(b);
    /* XEP-0124 §11: past 'hold', the oldest is answered at once. */
    while (b->nheld >= (b->hold > 0 ? b->hold : 1) && b->nheld > 0)
        answer(b, 0, false);
    struct held *q = &b->held[b->nheld++];
    http_ref(hc);
    q->hc = hc;
    q->rid = rid;
    q->first = first;
    q->since_ms = uv_now(b->h->loop);
    snprintf(q->cors, sizeof(q->cors), "%s", cors);
    b->idle_since_ms = 0;
    /* Output already queued (or a session that ended) answers it now;
     * output that comes later (after the commit) at the flush. */
    if (b->vc != NULL && (b->vc->q_head != NULL || b->vc->closing))
        on_output(b);
}

static bool parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    if (s == NULL || *s == '\0' || strlen(s) > 19)
        return false;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

static const char *attr_ns(const struct xnode *e, const char *ns, const char *name)
{
    for (const struct xattr *a = e->attrs; a; a = a->next)
        if (strcmp(a->ns, ns) == 0 && strcmp(a->name, name) == 0)
            return a->value;
    return NULL;
}

/* Hands the body's children to the session, one element each. A child in
 * the body's own namespace is a stanza whose client left out jabber:client. */
static void children(struct bosh *b, struct xnode *body)
{
    struct buf x;
    buf_init(&x, 0);
    for (struct xnode *c = xml_first_elem(body); c && b->vc && !b->vc->closing;
         c = xml_next_elem(c)) {
        if (strcmp(c->ns, NS_HTTPBIND) == 0)
            c->ns = NS_CLIENT;
        buf_reset(&x);
        xml_serialize(&x, c, "\x01");
        if (buf_ok(&x))
            inject(b, x.data, x.len);
    }
    buf_free(&x);
}

static void create(struct http_conn *hc, const char *cors, struct xnode *body, uint64_t rid)
{
    struct herald *h = http_herald(hc);
    const struct config *cfg = h->cfg;
    const char *to = xml_attr(body, "to");
    uint64_t wait = cfg->bosh_max_wait, holdv = HOLD_MAX;
    if (to == NULL || strcmp(to, cfg->domain) != 0) {
        terminal(hc, cors, "host-unknown");
        return;
    }
    if (xml_attr(body, "wait") && !parse_uint(xml_attr(body, "wait"), UINT32_MAX, &wait)) {
        terminal(hc, cors, "bad-request");
        return;
    }
    if (xml_attr(body, "hold") && !parse_uint(xml_attr(body, "hold"), UINT32_MAX, &holdv)) {
        terminal(hc, cors, "bad-request");
        return;
    }
    if (h->shutting_down) {
        terminal(hc, cors, "system-shutdown");
        return;
    }
    struct bosh *b = calloc(1, sizeof(*b));
    unsigned char rnd[16];
    if (b == NULL || RAND_bytes(rnd, sizeof(rnd)) != 1) {
        free(b);
        terminal(hc, cors, "internal-server-error");
        return;
    }
    b->h = h;
    for (int i = 0; i < 16; i++)
        snprintf(b->sid + 2 * i, 3, "%02x", rnd[i]);
    b->rid = rid;
    b->wait = wait < cfg->bosh_max_wait ? (unsigned)wait : cfg->bosh_max_wait;
    b->hold = holdv < HOLD_MAX ? (unsigned)holdv : HOLD_MAX;
    b->idle_since_ms = uv_now(h->loop);
    for (unsigned i = 0; i < REQUESTS; i++) {
        buf_init(&b->replay[i].body, 0);
        buf_init(&b->early[i].raw, 0);
    }
    b->vc = conn_new_virtual(h, http_peer(hc), &sink, b);
    if (b->vc == NULL) {
        free(b);
        terminal(hc, cors, "internal-server-error");
        return;
    }
    b->vc->secure = http_is_tls(hc);
    HASH_ADD(hh, h->bosh, sid, strlen(b->sid), b);
    log_debug("bosh", "%s: session %s created (wait %u, hold %u)", http_peer(hc), b->sid,
              b->wait, b->hold);
    /* The session may refuse at once (limits): its stream error is then
     * the answer, with type='terminate'. */
    session_accept(h, b->vc);
    inject_open(b);
    if (b->vc != NULL)
        hold(b, hc, rid, true, cors);
    else
        terminal(hc, cors, "remote-connection-failed");
}

static void handle(struct bosh *b, struct http_conn *hc, const char *cors, struct xnode *body,
                   uint64_t rid);

static void session_request(struct bosh *b, struct http_conn *hc, const char *cors,
                            struct xnode *body, uint64_t rid, const char *raw, size_t raw_len)
{
    if (rid <= b->rid) {
        /* §14.3: a resent request gets the same answer again. */
        struct buf *old = &b->replay[rid % REQUESTS].body;
        if (b->replay[rid % REQUESTS].rid == rid && old->len > 0) {
            respond(hc, cors, old->data, old->len);
        } else {
            /* Older than the answers kept: terminal (§14.3). */
            terminal(hc, cors, "item-not-found");
            if (b->vc)
                conn_close(b->vc, false);
        }
        return;
    }
    if (rid > b->rid + REQUESTS) {
        /* §14.1: outside the window is a terminal error for the session. */
        terminal(hc, cors, "item-not-found");
        if (b->vc)
            conn_close(b->vc, false);
        return;
    }
    if (rid > b->rid + 1) {
        /* §14.2: ahead of a request still on its way; handled after it. */
        struct early *e = &b->early[rid % REQUESTS];
        if (e->hc != NULL) {
            terminal(hc, cors, "item-not-found");
            return;
        }
        buf_reset(&e->raw);
        buf_append(&e->raw, raw, raw_len);
        if (!buf_ok(&e->raw)) {
            terminal(hc, cors, "internal-server-error");
            return;
        }
        http_ref(hc);
        e->hc = hc;
        e->since_ms = uv_now(b->h->loop);
        snprintf(e->cors, sizeof(e->cors), "%s", cors);
        return;
    }
    b->rid = rid;
    handle(b, hc, cors, body, rid);
    /* The next request may have come first: its turn now. */
    struct early *e = &b->early[(b->rid + 1) % REQUESTS];
    if (e->hc != NULL && b->vc != NULL) {
        struct http_conn *next = e->hc;
        struct buf raw_next = e->raw;
        char cors_next[CORS_MAX];
        snprintf(cors_next, sizeof(cors_next), "%s", e->cors);
        e->hc = NULL;
        buf_init(&e->raw, 0);
        parse_and_handle(b->h, next, cors_next, raw_next.data, raw_next.len);
        buf_free(&raw_next);
        http_unref(next);
    }
}

/* Takes a request in its turn: restart, children, terminate or pause, then
 * holds it. */
static void handle(struct bosh *b, struct http_conn *hc, const char *cors, struct xnode *body,
                   uint64_t rid)
{
    const struct config *cfg = b->h->cfg;
    const char *type = xml_attr(body, "type");
    const char *pause = xml_attr(body, "pause");
    const char *restart = attr_ns(body, NS_XBOSH, "restart");
    if (restart != NULL && strcmp(restart, "true") == 0)
        inject_open(b);
    children(b, body);
    if (type != NULL && strcmp(type, "terminate") == 0) {
        /* §12: the client ends the session; its last stanzas went in. */
        while (b->nheld > 0)
            answer(b, 0, true);
        respond(hc, cors, "<body type='terminate' xmlns='" NS_HTTPBIND "'/>",
                sizeof("<body type='terminate' xmlns='" NS_HTTPBIND "'/>") - 1);
        inject(b, "<close xmlns='" NS_FRAMING "'/>", sizeof("<close xmlns='" NS_FRAMING "'/>") - 1);
        return;
    }
    if (pause != NULL) {
        uint64_t secs;
        if (!parse_uint(pause, UINT32_MAX, &secs) || secs > cfg->bosh_max_pause) {
            terminal(hc, cors, "policy-violation");
            if (b->vc)
                conn_close(b->vc, false);
            return;
        }
        /* §10: everything held is answered, and inactivity becomes the pause. */
        while (b->nheld > 0)
            answer(b, 0, false);
        b->pause_ms = secs * 1000;
        respond(hc, cors, "<body xmlns='" NS_HTTPBIND "'/>",
                sizeof("<body xmlns='" NS_HTTPBIND "'/>") - 1);
        b->idle_since_ms = uv_now(b->h->loop);
        return;
    }
    b->pause_ms = 0;
    if (b->vc != NULL)
        b->vc->last_read_ms = uv_now(b->h->loop);
    hold(b, hc, rid, false, cors);
}

struct parse_ctx {
    struct http_conn *hc;
    const char *cors;
    const char *raw;
    size_t raw_len;
    unsigned elements;
};

static void on_body(void *ud, struct xnode *body, struct arena *a)
{
    struct parse_ctx *x = ud;
    struct herald *h = http_herald(x->hc);
    (void)a;
    if (x->elements++ > 0)
        return;
    uint64_t rid;
    if (strcmp(body->ns, NS_HTTPBIND) != 0 || strcmp(body->name, "body") != 0 ||
        !parse_uint(xml_attr(body, "rid"), (1ull << 53) - 1, &rid)) {
        terminal(x->hc, x->cors, "bad-request");
        return;
    }
    const char *sid = xml_attr(body, "sid");
    if (sid == NULL) {
        create(x->hc, x->cors, body, rid);
        return;
    }
    struct bosh *b = NULL;
    HASH_FIND_STR(h->bosh, sid, b);
    if (b == NULL || b->vc == NULL) {
        terminal(x->hc, x->cors, "item-not-found");
        return;
    }
    session_request(b, x->hc, x->cors, body, rid, x->raw, x->raw_len);
}

static void on_open(void *ud, const struct xnode *hdr, const char *default_ns)
{
    (void)ud, (void)hdr, (void)default_ns;
}

static void on_close(void *ud) { (void)ud; }

void bosh_request(struct http_conn *hc, const struct http_req *req)
{
    struct herald *h = http_herald(hc);
    h->stats.bosh_requests++;
    char cors[CORS_MAX] = "";
    if (req->origin != NULL) {
        if (!web_origin_allowed(h, req) || strlen(req->origin) > 200) {
            http_problem(hc, 403, NULL, NULL, "this page's Origin is not in [http] allowed_origins");
            return;
        }
        snprintf(cors, sizeof(cors), "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n",
                 req->origin);
    }
    if (req->method == HTTP_OPTIONS) {
        /* The CORS preflight of a page on another origin. */
        char hdrs[CORS_MAX + 160];
        snprintf(hdrs, sizeof(hdrs), "%sAccess-Control-Allow-Methods: POST, OPTIONS\r\n"
                 "Access-Control-Allow-Headers: Content-Type\r\nAccess-Control-Max-Age: 86400\r\n",
                 cors);
        http_respond(hc, 204, NULL, hdrs, "", 0);
        return;
    }
    if (req->method != HTTP_POST) {
        char hdrs[CORS_MAX + 40];
        snprintf(hdrs, sizeof(hdrs), "%sAllow: POST, OPTIONS\r\n", cors);
        http_problem_h(hc, 405, NULL, NULL, "BOSH takes POST (XEP-0124 3)", hdrs);
        return;
    }
    parse_and_handle(h, hc, cors, req->body, req->body_len);
}

/* Parses one request body and handles it (bad XML: bad-request). */
static void parse_and_handle(struct herald *h, struct http_conn *hc, const char *cors,
                             const char *raw, size_t len)
{
    static const struct xmlp_callbacks cb = {on_open, on_body, on_close};
    static const char open[] = "<s:stream xmlns:s='" NS_STREAM "'>";
    struct xmlp_limits lim = {HTTP_MAX_BODY, h->cfg->max_depth + 1};
    struct parse_ctx x = {hc, cors, raw, len, 0};
    struct xmlp *p = xmlp_new(&lim, &cb, &x);
    if (p == NULL) {
        http_problem(hc, 500, NULL, NULL, "out of memory");
        return;
    }
    enum xmlp_error e = xmlp_feed(p, open, sizeof(open) - 1);
    if (e == XMLP_OK)
        e = xmlp_feed(p, raw, len);
    if (e == XMLP_OK && !xmlp_between_stanzas(p))
        e = XMLP_NOT_WELL_FORMED;
    xmlp_free(p);
    if (x.elements == 0)
        terminal(hc, cors, "bad-request");
}

void bosh_sweep(struct herald *h)
{
    uint64_t now = uv_now(h->loop);
    struct bosh *b, *tmp;
    HASH_ITER(hh, h->bosh, b, tmp) {
        /* Requests whose client has gone are dropped, expired ones
         * answered (empty: output would have answered them already). */
        drop_dead(b);
        for (unsigned i = 0; i < b->nheld;) {
            if (now - b->held[i].since_ms >= b->wait * 1000ull)
                answer(b, i, false);
            else
                i++;
        }
        /* A request ahead of one that never came: the client lost it. */
        bool lost = false;
        for (unsigned i = 0; i < REQUESTS; i++)
            if (b->early[i].hc != NULL && now - b->early[i].since_ms >= b->wait * 1000ull)
                lost = true;
        if (lost && b->vc != NULL) {
            log_debug("bosh", "session %s: a request never came, ending it", b->sid);
            conn_close(b->vc, false);
            continue;
        }
        uint64_t limit = b->pause_ms ? b->pause_ms : h->cfg->bosh_inactivity * 1000ull;
        if (b->nheld == 0 && b->vc != NULL && b->idle_since_ms != 0 &&
            now - b->idle_since_ms > limit) {
            log_debug("bosh", "session %s: no request for %" PRIu64 " ms, ending it", b->sid,
                      limit);
            conn_close(b->vc, false); /* the session sees its connection lost */
        }
    }
}

void bosh_close_all(struct herald *h)
{
    struct bosh *b, *tmp;
    HASH_ITER(hh, h->bosh, b, tmp) {
        while (b->nheld > 0)
            answer(b, 0, true);
    }
}

size_t bosh_count(const struct herald *h) { return HASH_COUNT(h->bosh); }
