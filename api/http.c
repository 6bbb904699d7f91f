/* http.c - HTTP/1.1 on conn.c with libhttp-parser: bounded requests,
 * keep-alive, pipelining (answers in request order), problem+json errors
 * (RFC 9457), and the routing table of the operations endpoints. */
#include "http.h"

#include <http_parser.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "conn.h"
#include "herald.h"
#include "log.h"

#define HEADER_TIMEOUT_MS 10000 /* a request must arrive in full this fast */
#define IDLE_TIMEOUT_MS 60000   /* keep-alive connections with nothing to do */

struct http_conn {
    struct herald *h;
    struct conn *conn;
    http_parser parser;
    struct buf url;
    size_t header_bytes;
    size_t body_bytes;
    bool in_request;
    bool closing;
    uint64_t request_started_ms;
};

static void send_response(struct http_conn *hc, int status, const char *reason, const char *type,
                          const char *body, size_t len, bool keep_alive)
{
    struct buf b;
    buf_init(&b, 0);
    buf_printf(&b, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Cache-Control: no-store\r\n%s\r\n",
               status, reason, type, len, keep_alive ? "" : "Connection: close\r\n");
    if (hc->parser.method != HTTP_HEAD)
        buf_append(&b, body, len);
    if (buf_ok(&b))
        conn_send(hc->conn, b.data, b.len, CONN_SEND_FORCE);
    buf_free(&b);
    if (status >= 200 && status < 600)
        hc->h->stats.http_requests[status / 100]++;
    if (!keep_alive) {
        hc->closing = true;
        conn_close(hc->conn, true);
    }
}

/* RFC 9457 problem details. */
static void send_problem(struct http_conn *hc, int status, const char *title, const char *detail,
                         bool keep_alive)
{
    struct buf b;
    buf_init(&b, 0);
    /* title and detail are fixed ASCII strings from this file: no escaping needed. */
    buf_printf(&b, "{\"type\":\"about:blank\",\"title\":\"%s\",\"status\":%d,\"detail\":\"%s\"}\n",
               title, status, detail);
    if (buf_ok(&b))
        send_response(hc, status, title, "application/problem+json", b.data, b.len, keep_alive);
    buf_free(&b);
}

/* The routing table: method, exact path, handler. */
typedef void route_fn(struct http_conn *hc, bool keep_alive);

static void get_healthz(struct http_conn *hc, bool keep_alive)
{
    send_response(hc, 200, "OK", "text/plain; charset=utf-8", "ok\n", 3, keep_alive);
}

static void get_metrics(struct http_conn *hc, bool keep_alive)
{
    struct buf b;
    buf_init(&b, 0);
    metrics_render(hc->h, &b);
    if (buf_ok(&b))
        send_response(hc, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", b.data, b.len,
                      keep_alive);
    else
        send_problem(hc, 500, "Internal Server Error", "metrics could not be rendered", keep_alive);
    buf_free(&b);
}

static const struct route {
    enum http_method method;
    const char *path;
    route_fn *fn;
} routes[] = {
    {HTTP_GET, "/healthz", get_healthz},
    {HTTP_GET, "/metrics", get_metrics},
};

static void dispatch(struct http_conn *hc)
{
    bool keep_alive = http_should_keep_alive(&hc->parser) != 0;
    struct http_parser_url u;
    const char *url = hc->url.data ? hc->url.data : "";
    http_parser_url_init(&u);
    if (http_parser_parse_url(url, hc->url.len, 0, &u) != 0 || !(u.field_set & (1 << UF_PATH))) {
        send_problem(hc, 400, "Bad Request", "the request target is not a valid URL", keep_alive);
        return;
    }
    const char *path = url + u.field_data[UF_PATH].off;
    size_t plen = u.field_data[UF_PATH].len;
    bool path_known = false;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strlen(routes[i].path) != plen || memcmp(routes[i].path, path, plen) != 0)
            continue;
        path_known = true;
        if (routes[i].method == hc->parser.method ||
            (hc->parser.method == HTTP_HEAD && routes[i].method == HTTP_GET)) {
            routes[i].fn(hc, keep_alive);
            return;
        }
    }
    if (path_known)
        send_problem(hc, 405, "Method Not Allowed", "this resource does not support that method",
                     keep_alive);
    else
        send_problem(hc, 404, "Not Found", "no such resource", keep_alive);
}

/* ---- http_parser callbacks ---- */

static int on_message_begin(http_parser *p)
{
    struct http_conn *hc = p->data;
    buf_reset(&hc->url);
    hc->header_bytes = hc->body_bytes = 0;
    hc->in_request = true;
    hc->request_started_ms = uv_now(hc->h->loop);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct http_conn *hc = p->data;
    if (hc->url.len + len > HTTP_MAX_URL) {
        send_problem(hc, 414, "URI Too Long", "the request target is over 8 KiB", false);
        return -1;
    }
    buf_append(&hc->url, at, len);
    return 0;
}

static int on_header_bytes(http_parser *p, const char *at, size_t len)
{
    struct http_conn *hc = p->data;
    (void)at;
    hc->header_bytes += len;
    if (hc->header_bytes > HTTP_MAX_HEADERS) {
        send_problem(hc, 431, "Request Header Fields Too Large", "the headers are over 16 KiB", false);
        return -1;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct http_conn *hc = p->data;
    (void)at;
    hc->body_bytes += len;
    if (hc->body_bytes > HTTP_MAX_BODY) {
        send_problem(hc, 413, "Content Too Large", "the body is over 1 MiB", false);
        return -1;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct http_conn *hc = p->data;
    hc->in_request = false;
    if (!buf_ok(&hc->url)) {
        send_problem(hc, 500, "Internal Server Error", "out of memory", false);
        return -1;
    }
    dispatch(hc);
    return hc->closing ? -1 : 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_bytes,
    .on_header_value = on_header_bytes,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void on_data(void *ud, const char *data, size_t len)
{
    struct http_conn *hc = ud;
    if (hc->closing)
        return;
    size_t n = http_parser_execute(&hc->parser, &settings, data, len);
    if (hc->closing)
        return;
    if (HTTP_PARSER_ERRNO(&hc->parser) != HPE_OK || n != len) {
        /* A parse error, or an upgrade we do not offer: answer and close. */
        send_problem(hc, 400, "Bad Request", "the request is not valid HTTP/1.1", false);
    }
}

static void on_close(void *ud)
{
    struct http_conn *hc = ud;
    buf_free(&hc->url);
    free(hc);
}

static const struct conn_handler http_handler = {
    .on_data = on_data,
    .on_close = on_close,
};

void http_accept(struct herald *h, struct conn *c)
{
    struct http_conn *hc = calloc(1, sizeof(*hc));
    if (hc == NULL) {
        conn_close(c, false);
        return;
    }
    hc->h = h;
    hc->conn = c;
    buf_init(&hc->url, HTTP_MAX_URL + 1);
    http_parser_init(&hc->parser, HTTP_REQUEST);
    hc->parser.data = hc;
    if (conn_start(c, &http_handler, hc) != 0)
        return; /* on_close frees hc */
    if (h->shutting_down)
        send_problem(hc, 503, "Service Unavailable", "the server is shutting down", false);
}

void http_sweep(struct herald *h)
{
    uint64_t now = uv_now(h->loop);
    struct conn *next;
    for (struct conn *c = h->conns; c; c = next) {
        next = c->next;
        if (c->handler != &http_handler || c->closing)
            continue;
        struct http_conn *hc = c->ud;
        if (hc->in_request && now - hc->request_started_ms > HEADER_TIMEOUT_MS)
            send_problem(hc, 408, "Request Timeout", "the request took too long to arrive", false);
        else if (!hc->in_request && now - c->last_read_ms > IDLE_TIMEOUT_MS && !c->writing &&
                 c->q_head == NULL)
            conn_close(c, true);
    }
}
