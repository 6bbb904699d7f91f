/* http.c - HTTP/1.1 on conn.c with libhttp-parser: bounded requests,
 * keep-alive, pipelining answered in order (a request whose answer waits
 * for a commit pauses the parser), event streams, problem+json errors
 * (RFC 9457), and the operations endpoints. /v1 goes to rest.c.
 *
 * Every bound an unauthenticated peer can reach is enforced here: the HTTP
 * connection budget (total and per address, apart from XMPP's), absolute
 * header and idle timeouts, answers in flight per connection (parsing of
 * pipelined requests stops above http.max_outq_bytes and goes on when the
 * queue drains), a write timeout for readers that stop reading, and only
 * the transfer coding we implement (chunked). See docs/http.md. */
#include "http.h"

#include <http_parser.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


#include "buf.h"
#include "cluster.h"
#include "conn.h"
#include "console.h"
#include "web.h"
#include "errors.h"
#include "herald.h"
#include "log.h"
#include "session.h"

#define STREAM_KEEPALIVE_MS 15000
#define HEADER_NAME_MAX 32
/* Pipelined bytes kept while an answer is pending. Input is held from this
 * size on (at once while answers are over the output bound), so the stash
 * never grows past it by more than one read (64 KiB, or its plaintext). */
#define STASH_HOLD 65536

enum {
    H_AUTH, H_CTYPE, H_LAST_EVENT_ID, H_TE, H_HOST, H_ORIGIN, H_UPGRADE, H_CONNECTION,
    H_WS_KEY, H_WS_VERSION, H_WS_PROTOCOL, H_COUNT_
};
static const char *const header_names[H_COUNT_] = {
    "authorization", "content-type", "last-event-id", "transfer-encoding", "host", "origin",
    "upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
    "sec-websocket-protocol"};

struct http_conn {
    struct herald *h;
    struct conn *conn;          /* NULL once closed */
    unsigned refs;              /* the connection's own + deferred answers' */
    http_parser parser;
    struct buf url, body, stash;
    struct buf headers[H_COUNT_];
    char header_name[HEADER_NAME_MAX + 1];
    size_t header_name_len;
    int header_cur;             /* H_* being read, or -1 */
    bool header_value_seen;
    size_t header_bytes;
    bool in_request;
    bool keep_alive;            /* of the request being answered */
    bool in_dispatch;
    bool answered;              /* the current request has its answer */
    bool paused;                /* waiting for a deferred answer */
    bool blocked;               /* answers in flight over the bound: waiting for on_drain */
    bool closing;
    bool counted;               /* in h->http_conns and h->http_ip_counts */
    unsigned te_lines;          /* Transfer-Encoding header lines of this request */
    uint64_t request_started_ms;
    uint64_t idle_since_ms;     /* accept, or the last answer */
    size_t outq_max;            /* http.max_outq_bytes */
    size_t peak_backlog;        /* the most output queued at once (heap given back at close) */
    /* the test seam (http_test_open): answers go to sink, no socket */
    struct buf *sink;
    size_t sink_backlog;
    bool sink_held;
    bool upgraded;              /* the connection went to another protocol */
    /* event stream mode */
    const struct http_stream_ops *stream_ops;
    void *stream_ud;
    uint64_t last_stream_send_ms;
};

static void feed(struct http_conn *hc, const char *data, size_t len);

struct herald *http_herald(const struct http_conn *hc) { return hc->h; }
/* hc may be NULL: a request applied from the cluster log on an instance
 * other than the one that accepted it has no connection to answer. */
bool http_alive(const struct http_conn *hc)
{
    return hc != NULL && (hc->conn != NULL || hc->sink != NULL) && !hc->closing;
}
bool http_is_tls(const struct http_conn *hc) { return hc->conn != NULL && conn_is_tls(hc->conn); }
const char *http_peer(const struct http_conn *hc) { return hc->conn ? hc->conn->peer : "?"; }

void http_ref(struct http_conn *hc)
{
    if (hc)
        hc->refs++;
}

void http_unref(struct http_conn *hc)
{
    if (hc == NULL || --hc->refs > 0)
        return;
    buf_free(&hc->url);
    buf_free(&hc->body);
    buf_free(&hc->stash);
    for (int i = 0; i < H_COUNT_; i++)
        buf_free(&hc->headers[i]);
    free(hc);
}

static void close_conn(struct http_conn *hc)
{
    hc->closing = true;
    if (hc->conn)
        conn_close(hc->conn, true);
}

/* ---- output: the connection's write queue, or the test seam's sink ---- */

static int out_send(struct http_conn *hc, const char *data, size_t len, int flags)
{
    if (hc->conn)
        return conn_send(hc->conn, data, len, flags);
    if (!(flags & CONN_SEND_FORCE) && hc->sink_backlog + len > hc->outq_max)
        return HERALD_ELIMIT;
    buf_append(hc->sink, data, len);
    if (!buf_ok(hc->sink))
        return HERALD_ENOMEM;
    hc->sink_backlog += len;
    return 0;
}

static size_t out_backlog(const struct http_conn *hc)
{
    if (hc->conn)
        return hc->conn->q_bytes;
    return hc->sink ? hc->sink_backlog : 0;
}

static void hold_input(struct http_conn *hc, bool hold)
{
    if (hc->conn)
        conn_hold_input(hc->conn, hold);
    else
        hc->sink_held = hold;
}

/* Called after each answer: above the bound, no further pipelined request
 * is parsed (and nothing more read) until the reader has taken most of it
 * (on_drain). Checked per request, so one read of small requests cannot
 * queue hundreds of answers. */
static bool over_bound(struct http_conn *hc)
{
    size_t q = out_backlog(hc);
    if (q > hc->peak_backlog)
        hc->peak_backlog = q;
    if (q <= hc->outq_max)
        return false;
    hc->blocked = true;
    hold_input(hc, true);
    return true;
}

/* Parsing was paused (a deferred answer, or answers over the bound): go on
 * with what the client pipelined meanwhile. */
static void resume(struct http_conn *hc)
{
    http_parser_pause(&hc->parser, 0);
    struct buf rest = hc->stash;
    buf_init(&hc->stash, 0);
    if (rest.len)
        feed(hc, rest.data, rest.len);
    buf_free(&rest);
    if (hc->upgraded) {
        http_unref(hc);
        return;
    }
    if (!hc->paused && !hc->blocked && http_alive(hc))
        hold_input(hc, false);
}

void http_respond(struct http_conn *hc, int status, const char *type, const char *headers,
                  const char *body, size_t len)
{
    if (!http_alive(hc) || hc->answered)
        return;
    hc->answered = true;
    struct buf b;
    buf_init(&b, 0);
    buf_printf(&b, "HTTP/1.1 %d %s\r\n", status, http_status_str((enum http_status)status));
    if (len || type)
        buf_printf(&b, "Content-Type: %s\r\n", type ? type : "application/octet-stream");
    if (status != 204 && status != 304)
        buf_printf(&b, "Content-Length: %zu\r\n", len);
    buf_printf(&b, "Cache-Control: no-store\r\n%s%s\r\n", headers ? headers : "",
               hc->keep_alive ? "" : "Connection: close\r\n");
    if (hc->parser.method != HTTP_HEAD)
        buf_append(&b, body, len);
    /* Forced past the bound: an answer larger than http.max_outq_bytes
     * still goes out; over_bound() then stops parsing until it is read. */
    if (buf_ok(&b))
        out_send(hc, b.data, b.len, CONN_SEND_FORCE);
    buf_free(&b);
    if (status >= 100 && status < 600)
        hc->h->stats.http_requests[status / 100]++;
    hc->idle_since_ms = uv_now(hc->h->loop);
    if (!hc->keep_alive) {
        close_conn(hc);
    } else if (hc->paused && !hc->in_dispatch) {
        hc->paused = false;
        if (!over_bound(hc))
            resume(hc);
    }
}

static void json_escape(struct buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            buf_printf(b, "\\%c", c);
        else if (c < 0x20)
            buf_printf(b, "\\u%04x", c);
        else
            buf_append(b, s, 1);
    }
}

void http_problem(struct http_conn *hc, int status, const char *condition, const char *app,
                  const char *detail)
{
    http_problem_h(hc, status, condition, app, detail, NULL);
}

void http_problem_h(struct http_conn *hc, int status, const char *condition, const char *app,
                    const char *detail, const char *headers)
{
    const char *title = http_status_str((enum http_status)status);
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "{\"type\":\"");
    if (condition) {
        buf_puts(&b, "urn:herald:problem:");
        json_escape(&b, app ? app : condition);
    } else {
        buf_puts(&b, "about:blank");
    }
    buf_puts(&b, "\",\"title\":\"");
    json_escape(&b, title);
    buf_printf(&b, "\",\"status\":%d,\"detail\":\"", status);
    json_escape(&b, detail ? detail : title);
    buf_puts(&b, "\"");
    if (condition) {
        buf_puts(&b, ",\"condition\":\"");
        json_escape(&b, condition);
        buf_puts(&b, "\"");
    }
    if (app) {
        buf_puts(&b, ",\"pubsub-condition\":\"");
        json_escape(&b, app);
        buf_puts(&b, "\"");
    }
    buf_puts(&b, "}\n");
    const char *extra = status == 401 ? "WWW-Authenticate: Bearer realm=\"herald\"\r\n" : headers;
    /* Every 429 says when to retry (RFC 6585 §4); callers that know better
     * pass their own Retry-After in headers. */
    if (status == 429 && extra == NULL)
        extra = "Retry-After: 1\r\n";
    if (buf_ok(&b))
        http_respond(hc, status, "application/problem+json", extra, b.data, b.len);
    else
        http_respond(hc, 500, "text/plain", NULL, "out of memory\n", 14);
    buf_free(&b);
}

void http_problem_code(struct http_conn *hc, int code, const char *detail)
{
    const struct herald_error *e = herald_error(code);
    http_problem(hc, e->http, e->cond, e->app, detail && detail[0] ? detail : e->msg);
}

/* An error found by the transport: answer and close (the stream of requests
 * cannot be trusted after it). */
static void fail(struct http_conn *hc, int status, const char *detail)
{
    hc->keep_alive = false;
    hc->answered = false;
    http_problem(hc, status, NULL, NULL, detail);
    close_conn(hc);
}

/* ---- event streams ---- */

int http_stream_start(struct http_conn *hc, const struct http_stream_ops *ops, void *ud)
{
    if (!http_alive(hc))
        return HERALD_EUNAVAIL;
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                               "Cache-Control: no-store\r\nX-Accel-Buffering: no\r\n"
                               "Connection: close\r\n\r\n";
    int rc = out_send(hc, head, sizeof(head) - 1, CONN_SEND_FORCE);
    if (rc != 0)
        return rc;
    hc->answered = true;
    hc->keep_alive = false;
    hc->stream_ops = ops;
    hc->stream_ud = ud;
    hc->last_stream_send_ms = uv_now(hc->h->loop);
    hc->h->stats.http_requests[2]++;
    return 0;
}

int http_stream_send(struct http_conn *hc, const char *data, size_t len)
{
    if (!http_alive(hc))
        return HERALD_EUNAVAIL;
    hc->last_stream_send_ms = uv_now(hc->h->loop);
    /* An event larger than the queue bound still goes out when nothing else
     * is queued: otherwise a reader could never get past it. */
    return out_send(hc, data, len, out_backlog(hc) == 0 ? CONN_SEND_FORCE : 0);
}

size_t http_stream_backlog(const struct http_conn *hc) { return out_backlog(hc); }
size_t http_stream_limit(const struct http_conn *hc) { return hc->outq_max; }
void http_stream_close(struct http_conn *hc) { close_conn(hc); }

struct conn *http_upgrade(struct http_conn *hc, const char *headers)
{
    struct conn *c = hc->conn;
    if (c == NULL || hc->closing) {
        fail(hc, 500, "this connection cannot change protocols");
        return NULL;
    }
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "HTTP/1.1 101 Switching Protocols\r\n");
    buf_puts(&b, headers);
    buf_puts(&b, "\r\n");
    int rc = buf_ok(&b) ? conn_send(c, b.data, b.len, 0) : HERALD_ENOMEM;
    buf_free(&b);
    if (rc != 0) {
        fail(hc, 500, "the upgrade could not be answered");
        return NULL;
    }
    hc->h->stats.http_requests[1]++;
    /* The connection leaves HTTP's budget and this struct; the caller's
     * protocol owns it from here (and counts it in its own budget). */
    if (hc->counted) {
        hc->h->http_conns--;
        conn_ip_adjust(&hc->h->http_ip_counts, c->peer, -1);
        hc->counted = false;
    }
    hc->answered = true;
    hc->upgraded = true;
    hc->closing = true;
    hc->conn = NULL;
    conn_disown(c);
    /* The connection's reference to hc is dropped once the parser has
     * unwound (on_data, resume): dispatch runs inside it. */
    return c;
}

/* ---- the operations endpoints ---- */

/* 200 while the process serves; in cluster mode 503 (with the reason) while
 * it cannot take changes: NATS unreachable, or applying the log stopped
 * here, so that a load balancer sends clients elsewhere. */
static void get_healthz(struct http_conn *hc)
{
    const char *why = cluster_unhealthy(hc->h);
    if (why != NULL)
        http_respond(hc, 503, "text/plain; charset=utf-8", "Retry-After: 2\r\n", why,
                     strlen(why));
    else
        http_respond(hc, 200, "text/plain; charset=utf-8", NULL, "ok\n", 3);
}

static void get_metrics(struct http_conn *hc)
{
    struct buf b;
    buf_init(&b, 0);
    metrics_render(hc->h, &b);
    if (buf_ok(&b))
        http_respond(hc, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, b.data, b.len);
    else
        http_problem(hc, 500, NULL, NULL, "metrics could not be rendered");
    buf_free(&b);
}

static const struct route {
    enum http_method method;
    const char *path;
    void (*fn)(struct http_conn *hc);
} routes[] = {
    {HTTP_GET, "/healthz", get_healthz},
    {HTTP_GET, "/metrics", get_metrics},
};

static const char *header(struct http_conn *hc, int i)
{
    return hc->headers[i].len ? hc->headers[i].data : NULL;
}

static void dispatch(struct http_conn *hc)
{
    struct http_parser_url u;
    const char *url = hc->url.data ? hc->url.data : "";
    http_parser_url_init(&u);
    if (http_parser_parse_url(url, hc->url.len, 0, &u) != 0 || !(u.field_set & (1 << UF_PATH))) {
        http_problem(hc, 400, NULL, NULL, "the request target is not a valid URL");
        return;
    }
    const char *path = url + u.field_data[UF_PATH].off;
    size_t plen = u.field_data[UF_PATH].len;
    for (int i = 0; i < H_COUNT_; i++)
        if (!buf_ok(&hc->headers[i]) || buf_nul(&hc->headers[i]) != 0) {
            http_problem(hc, 500, NULL, NULL, "out of memory");
            return;
        }
    if (!buf_ok(&hc->body) || buf_nul(&hc->body) != 0) {
        http_problem(hc, 500, NULL, NULL, "out of memory");
        return;
    }
    /* The URL buffer is NUL-terminated by buf_nul; cut the path and query
     * apart in place (the fragment, if any, is dropped). */
    char *mut = hc->url.data;
    struct http_req req = {
        .method = hc->parser.method,
        .path = path,
        .path_len = plen,
        .authorization = header(hc, H_AUTH),
        .content_type = header(hc, H_CTYPE),
        .last_event_id = header(hc, H_LAST_EVENT_ID),
        .host = header(hc, H_HOST),
        .origin = header(hc, H_ORIGIN),
        .upgrade = header(hc, H_UPGRADE),
        .connection = header(hc, H_CONNECTION),
        .ws_key = header(hc, H_WS_KEY),
        .ws_version = header(hc, H_WS_VERSION),
        .ws_protocol = header(hc, H_WS_PROTOCOL),
        .body = hc->body.data ? hc->body.data : "",
        .body_len = hc->body.len,
    };
    if (u.field_set & (1 << UF_QUERY)) {
        req.query = url + u.field_data[UF_QUERY].off;
        req.query_len = u.field_data[UF_QUERY].len;
        mut[u.field_data[UF_QUERY].off + u.field_data[UF_QUERY].len] = '\0';
    }
    mut[u.field_data[UF_PATH].off + plen] = '\0';
    if (rest_dispatch(hc, &req))
        return;
    if (console_dispatch(hc, &req))
        return;
    if (web_dispatch(hc, &req))
        return;
    bool path_known = false;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strlen(routes[i].path) != plen || memcmp(routes[i].path, path, plen) != 0)
            continue;
        path_known = true;
        if (routes[i].method == hc->parser.method ||
            (hc->parser.method == HTTP_HEAD && routes[i].method == HTTP_GET)) {
            routes[i].fn(hc);
            return;
        }
    }
    if (path_known) /* every operations endpoint is GET (and so HEAD) */
        http_problem_h(hc, 405, NULL, NULL, "this resource does not support that method",
                       "Allow: GET, HEAD\r\n");
    else
        http_problem(hc, 404, NULL, NULL, "no such resource");
}

/* ---- http_parser callbacks ---- */

static int on_message_begin(http_parser *p)
{
    struct http_conn *hc = p->data;
    buf_reset(&hc->url);
    buf_reset(&hc->body);
    for (int i = 0; i < H_COUNT_; i++)
        buf_reset(&hc->headers[i]);
    hc->header_bytes = 0;
    hc->header_cur = -1;
    hc->header_name_len = 0;
    hc->header_value_seen = false;
    hc->te_lines = 0;
    hc->in_request = true;
    hc->request_started_ms = uv_now(hc->h->loop);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct http_conn *hc = p->data;
    if (hc->url.len + len > HTTP_MAX_URL) {
        fail(hc, 414, "the request target is over 8 KiB");
        return -1;
    }
    buf_append(&hc->url, at, len);
    return 0;
}

static int count_header_bytes(struct http_conn *hc, size_t len)
{
    hc->header_bytes += len;
    if (hc->header_bytes > HTTP_MAX_HEADERS) {
        fail(hc, 431, "the headers are over 16 KiB");
        return -1;
    }
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct http_conn *hc = p->data;
    if (count_header_bytes(hc, len) != 0)
        return -1;
    if (hc->header_value_seen) { /* a new header begins */
        hc->header_name_len = 0;
        hc->header_value_seen = false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = at[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (hc->header_name_len < HEADER_NAME_MAX)
            hc->header_name[hc->header_name_len] = c;
        hc->header_name_len++; /* over the max: matches nothing */
    }
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct http_conn *hc = p->data;
    if (count_header_bytes(hc, len) != 0)
        return -1;
    if (!hc->header_value_seen) {
        hc->header_value_seen = true;
        hc->header_cur = -1;
        for (int i = 0; i < H_COUNT_; i++)
            if (hc->header_name_len == strlen(header_names[i]) &&
                memcmp(hc->header_name, header_names[i], hc->header_name_len) == 0) {
                hc->header_cur = i;
                buf_reset(&hc->headers[i]); /* a repeated header: the last one counts */
            }
        if (hc->header_cur == H_TE)
            hc->te_lines++; /* repeated, it is one list (RFC 9110 §5.3): refused below */
    }
    if (hc->header_cur >= 0)
        buf_append(&hc->headers[hc->header_cur], at, len);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct http_conn *hc = p->data;
    if (hc->body.len + len > HTTP_MAX_BODY) {
        fail(hc, 413, "the body is over 1 MiB");
        return -1;
    }
    buf_append(&hc->body, at, len);
    return 0;
}

/* The body's framing must be one we implement: RFC 9112 §6.1 has a server
 * answer 501 to a transfer coding it does not understand, and the only one
 * we decode is "chunked" alone (libhttp-parser would take "gzip, chunked"
 * as plain chunked and hand the compressed bytes on as the body). */
static bool te_acceptable(struct http_conn *hc)
{
    if (hc->te_lines == 0)
        return true;
    if (hc->te_lines > 1 || !buf_ok(&hc->headers[H_TE]))
        return false;
    const char *v = hc->headers[H_TE].data;
    size_t n = hc->headers[H_TE].len;
    while (n && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    return n == 7 && strncasecmp(v, "chunked", 7) == 0;
}

static int on_headers_complete(http_parser *p)
{
    struct http_conn *hc = p->data;
    if (!te_acceptable(hc)) {
        fail(hc, 501, "the only transfer coding supported is chunked");
        return -1;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct http_conn *hc = p->data;
    hc->in_request = false;
    /* A request for another protocol that is not switched to ends the
     * connection: what follows it is not HTTP. */
    hc->keep_alive = http_should_keep_alive(p) != 0 && !hc->h->shutting_down && !p->upgrade;
    hc->answered = false;
    if (!buf_ok(&hc->url)) {
        fail(hc, 500, "out of memory");
        return -1;
    }
    hc->in_dispatch = true;
    dispatch(hc);
    hc->in_dispatch = false;
    if (hc->closing || hc->stream_ops || hc->upgraded)
        return -1; /* nothing more is read from this connection (or by us: upgraded) */
    if (!hc->answered) {
        /* The answer waits for a commit: so does the next request. */
        hc->paused = true;
        http_parser_pause(p, 1);
    } else if (over_bound(hc)) {
        http_parser_pause(p, 1);
    }
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Keeps bytes that arrive while an answer is pending. Reading stops once
 * the stash holds STASH_HOLD bytes (not at once: a client that waits for its
 * answer costs no read_stop/read_start syscalls), or at once while answers
 * are over the bound (over_bound). */
static void stash(struct http_conn *hc, const char *data, size_t len)
{
    buf_append(&hc->stash, data, len);
    if (!buf_ok(&hc->stash))
        fail(hc, 500, "out of memory");
    else if (hc->stash.len >= STASH_HOLD)
        hold_input(hc, true);
}

static void feed(struct http_conn *hc, const char *data, size_t len)
{
    if (hc->paused || hc->blocked) {
        stash(hc, data, len);
        return;
    }
    size_t n = http_parser_execute(&hc->parser, &settings, data, len);
    if (hc->closing || hc->stream_ops || hc->upgraded)
        return;
    enum http_errno e = HTTP_PARSER_ERRNO(&hc->parser);
    if (e == HPE_PAUSED) {
        stash(hc, data + n, len - n);
    } else if (e != HPE_OK || n != len) {
        /* A parse error, or an upgrade we do not offer: answer and close. */
        fail(hc, 400, "the request is not valid HTTP/1.1");
    }
}

static void on_data(void *ud, const char *data, size_t len)
{
    struct http_conn *hc = ud;
    if (hc->closing || hc->stream_ops)
        return; /* an event stream's client has nothing more to say */
    feed(hc, data, len);
    if (hc->upgraded)
        http_unref(hc); /* the connection's reference (http_upgrade) */
}

static void on_drain(void *ud)
{
    struct http_conn *hc = ud;
    if (hc->stream_ops) {
        if (hc->stream_ops->on_drain)
            hc->stream_ops->on_drain(hc->stream_ud);
    } else if (hc->blocked && !hc->closing) {
        hc->blocked = false;
        resume(hc);
    }
}

/* ---- the HTTP connection budget (apart from c2s.max_connections) ---- */

/* Counts the new connection; fills why (naming the setting) when it is one
 * too many. */
static bool over_budget(struct http_conn *hc, char *why, size_t whylen)
{
    struct herald *h = hc->h;
    const struct config *cfg = h->cfg;
    hc->counted = true;
    h->http_conns++;
    unsigned from_ip = conn_ip_adjust(&h->http_ip_counts, hc->conn->peer, +1);
    if (h->http_conns > cfg->http_max_connections) {
        snprintf(why, whylen, "http.max_connections (%u) reached", cfg->http_max_connections);
        return true;
    }
    if (cfg->http_max_connections_per_ip != 0 &&
        (cfg->http_limit_loopback || !conn_addr_is_loopback(hc->conn->peer)) &&
        from_ip > cfg->http_max_connections_per_ip) {
        snprintf(why, whylen, "http.max_connections_per_ip (%u) reached",
                 cfg->http_max_connections_per_ip);
        return true;
    }
    return false;
}

static void on_close(void *ud)
{
    struct http_conn *hc = ud;
    struct conn *c = hc->conn;
    if (c && hc->counted) {
        hc->h->http_conns--;
        conn_ip_adjust(&hc->h->http_ip_counts, c->peer, -1);
    }
    /* What this connection held at its peak is free heap now: the sweep's
     * trim_heap gives it back to the system once enough has added up. */
    hc->h->heap_freed += hc->peak_backlog + hc->stash.cap;
    hc->conn = NULL;
    hc->closing = true;
    if (hc->stream_ops && hc->stream_ops->on_gone)
        hc->stream_ops->on_gone(hc->stream_ud);
    hc->stream_ops = NULL;
    http_unref(hc);
}

static const struct conn_handler http_handler = {
    .on_data = on_data,
    .on_close = on_close,
    .on_drain = on_drain,
};

static struct http_conn *http_conn_new(struct herald *h)
{
    struct http_conn *hc = calloc(1, sizeof(*hc));
    if (hc == NULL)
        return NULL;
    hc->h = h;
    hc->refs = 1;
    hc->outq_max = h->cfg->http_max_outq_bytes;
    hc->idle_since_ms = uv_now(h->loop);
    buf_init(&hc->url, HTTP_MAX_URL + 1);
    buf_init(&hc->body, HTTP_MAX_BODY + 1);
    buf_init(&hc->stash, 0);
    for (int i = 0; i < H_COUNT_; i++)
        buf_init(&hc->headers[i], HTTP_MAX_HEADERS + 1);
    http_parser_init(&hc->parser, HTTP_REQUEST);
    hc->parser.data = hc;
    return hc;
}

void http_accept(struct herald *h, struct conn *c, bool tls)
{
    static struct log_limit refused_log;
    char why[96];
    struct http_conn *hc = http_conn_new(h);
    if (hc == NULL) {
        conn_close(c, false);
        return;
    }
    hc->conn = c;
    conn_set_limits(c, hc->outq_max, hc->outq_max);
    if (conn_start(c, &http_handler, hc) != 0)
        return; /* on_close frees hc */
    if (over_budget(hc, why, sizeof(why))) {
        h->stats.http_refused++;
        log_limited(&refused_log, LOG_WARN, "http", "refused %s: %s", c->peer, why);
        /* In clear, a 503 says which limit; over TLS the handshake would
         * cost more than the refusal is worth: close at once. */
        if (tls) {
            hc->closing = true;
            conn_close(c, false);
            return;
        }
        hc->keep_alive = false;
        http_problem(hc, 503, NULL, NULL, why);
        return;
    }
    if (tls && (h->tls_ctx == NULL || conn_starttls(c, h->tls_ctx) != 0)) {
        log_warn("http", "%s: TLS setup failed", c->peer);
        hc->closing = true;
        conn_close(c, false);
        return;
    }
    if (h->shutting_down) {
        hc->keep_alive = false;
        http_problem(hc, 503, NULL, NULL, "the server is shutting down");
    }
}

/* Idle from the last answer, or from when its last write completed: a
 * client still reading a big answer is not idle, one that stopped reading
 * is the write timeout's (a write completes only when all of it is taken,
 * so a trickle of reads does not count as progress). */
static uint64_t idle_since(const struct http_conn *hc)
{
    uint64_t w = hc->conn->write_progress_ms;
    return w > hc->idle_since_ms ? w : hc->idle_since_ms;
}

/* The timeouts are absolute: a request has header_timeout from its first
 * byte, and a connection idle_timeout from accept or its last answer,
 * whatever trickles in meanwhile (CRLFs between requests, one byte of a TLS
 * handshake). Output that makes no progress for write_timeout closes the
 * connection, event streams included, without waiting for the queue. */
void http_sweep(struct herald *h)
{
    static struct log_limit stalled_log;
    const struct config *cfg = h->cfg;
    uint64_t now = uv_now(h->loop);
    struct conn *next;
    for (struct conn *c = h->conns; c; c = next) {
        next = c->next;
        if (c->handler != &http_handler || c->closing)
            continue;
        struct http_conn *hc = c->ud;
        if (conn_write_stalled(c, now, (uint64_t)cfg->http_write_timeout * 1000)) {
            h->stats.http_write_timeouts++;
            log_limited(&stalled_log, LOG_INFO, "http",
                        "%s: closed: %zu bytes unread for http.write_timeout (%u s)", c->peer,
                        c->q_bytes, cfg->http_write_timeout);
            hc->closing = true;
            conn_close(c, false);
        } else if (hc->stream_ops) {
            if (now - hc->last_stream_send_ms >= STREAM_KEEPALIVE_MS &&
                http_stream_send(hc, ": keepalive\n\n", 13) != 0)
                close_conn(hc);
        } else if (hc->in_request &&
                   now - hc->request_started_ms > (uint64_t)cfg->http_header_timeout * 1000) {
            fail(hc, 408, "the request took too long to arrive");
        } else if (!hc->in_request && !hc->paused && !hc->blocked &&
                   now - idle_since(hc) > (uint64_t)cfg->http_idle_timeout * 1000) {
            close_conn(hc);
        }
    }
}

/* ---- the test seam ---- */

struct http_conn *http_test_open(struct herald *h, struct buf *sink)
{
    struct http_conn *hc = http_conn_new(h);
    if (hc != NULL)
        hc->sink = sink;
    return hc;
}

bool http_test_feed(struct http_conn *hc, const char *data, size_t len)
{
    if (!http_alive(hc) || hc->sink_held)
        return false;
    on_data(hc, data, len);
    return true;
}

void http_test_drain(struct http_conn *hc)
{
    hc->sink_backlog = 0;
    if (http_alive(hc))
        on_drain(hc);
}

void http_test_close(struct http_conn *hc)
{
    hc->sink = NULL;
    on_close(hc);
}
