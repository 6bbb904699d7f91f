/* http.c — one HTTP/1.1 keep-alive connection of herald-bench's http scenario.
 *
 * herald-bench.c builds each request into `req` and calls hconn_send; the
 * connection writes it, reads the response (status line, headers up to the
 * blank line, then Content-Length bytes of body; chunked bodies are refused,
 * Herald's REST bridge answers with a length) and reports it with
 * bench_http_response. One request is outstanding per connection, so no
 * pipelining bookkeeping is needed. */
#include "bench.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HTTP_MAX_RESPONSE (1u << 20)

static void hfail(struct hconn *h, const char *why)
{
    if (h->closed)
        return;
    bench_http_failed(h->b, h, why);
}

static void on_write(uv_write_t *req, int status)
{
    struct hconn *h = req->data;
    if (status < 0)
        hfail(h, uv_strerror(status));
}

int hconn_send(struct hconn *h)
{
    uv_buf_t buf = uv_buf_init(h->req.data, (unsigned)h->req.len);
    h->wreq.data = h;
    h->busy = 1;
    h->sent_ns = uv_hrtime();
    return uv_write(&h->wreq, (uv_stream_t *)&h->tcp, &buf, 1, on_write);
}

long bench_header_value(const char *hdr, const char *end, const char *name, const char **val)
{
    size_t nl = strlen(name);
    const char *p = hdr;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *val = v;
            return (long)(ve - v);
        }
        p = eol + 1;
    }
    return -1;
}

/* Consumes complete responses from h->in; returns -1 after a failure. */
static int parse_responses(struct hconn *h)
{
    for (;;) {
        char *data = h->in.data;
        size_t len = h->in.len;
        if (len == 0)
            return 0;
        char *hend = NULL;
        for (size_t i = 3; i < len; i++) {
            if (data[i] == '\n' && data[i - 1] == '\r' && data[i - 2] == '\n' && data[i - 3] == '\r') {
                hend = data + i + 1;
                break;
            }
        }
        if (!hend) {
            if (len > 65536) {
                hfail(h, "response headers too long");
                return -1;
            }
            return 0;
        }
        if (len < 12 || strncmp(data, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)data[9])) {
            hfail(h, "malformed HTTP status line");
            return -1;
        }
        int status = atoi(data + 9);
        const char *v = NULL;
        long vl = bench_header_value(data, hend, "Transfer-Encoding", &v);
        if (vl > 0 && strncasecmp(v, "chunked", 7) == 0) {
            hfail(h, "chunked responses are not supported");
            return -1;
        }
        size_t body = 0;
        vl = bench_header_value(data, hend, "Content-Length", &v);
        if (vl > 0) {
            char num[24];
            size_t n = (size_t)vl < sizeof num - 1 ? (size_t)vl : sizeof num - 1;
            memcpy(num, v, n);
            num[n] = '\0';
            body = strtoul(num, NULL, 10);
        } else if (!(status == 204 || status == 304 || (status >= 100 && status < 200))) {
            hfail(h, "response without Content-Length");
            return -1;
        }
        if (body > HTTP_MAX_RESPONSE) {
            hfail(h, "response body too large");
            return -1;
        }
        size_t hlen = (size_t)(hend - data);
        if (len < hlen + body)
            return 0;
        int close_after = 0;
        vl = bench_header_value(data, hend, "Connection", &v);
        if (vl > 0 && strncasecmp(v, "close", 5) == 0)
            close_after = 1;
        h->busy = 0;
        bench_http_response(h->b, h, status, hend, body);
        if (h->closed)
            return -1;
        size_t used = hlen + body;
        memmove(h->in.data, h->in.data + used, h->in.len - used);
        h->in.len -= used;
        if (close_after) {
            hfail(h, "the server closed the keep-alive connection (Connection: close)");
            return -1;
        }
    }
}

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct hconn *h = hd->data;
    if (bbuf_reserve(&h->in, 16384) != 0) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    buf->base = h->in.data + h->in.len;
    buf->len = h->in.cap - h->in.len;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct hconn *h = s->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        hfail(h, nread == UV_EOF ? "the server closed the connection" : uv_strerror((int)nread));
        return;
    }
    h->in.len += (size_t)nread;
    if (h->in.len > HTTP_MAX_RESPONSE + 65536) {
        hfail(h, "response too large");
        return;
    }
    (void)parse_responses(h);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct hconn *h = req->data;
    if (h->closed)
        return;
    if (status < 0) {
        hfail(h, uv_strerror(status));
        return;
    }
    int rc = uv_read_start((uv_stream_t *)&h->tcp, on_alloc, on_read);
    if (rc < 0) {
        hfail(h, uv_strerror(rc));
        return;
    }
    /* Ask for the first request: a response with status 0 means "connected". */
    bench_http_response(h->b, h, 0, NULL, 0);
}

int hconn_start(struct hconn *h)
{
    int rc = uv_tcp_init(h->b->loop, &h->tcp);
    if (rc < 0)
        return rc;
    h->tcp.data = h;
    h->creq.data = h;
    (void)uv_tcp_nodelay(&h->tcp, 1);
    rc = uv_tcp_connect(&h->creq, &h->tcp, (const struct sockaddr *)&h->b->http_addr, on_connect);
    if (rc < 0) {
        h->closed = 1;
        uv_close((uv_handle_t *)&h->tcp, NULL);
    }
    return rc;
}

void hconn_close(struct hconn *h)
{
    if (h->closed || !h->tcp.data)
        return;
    h->closed = 1;
    uv_close((uv_handle_t *)&h->tcp, NULL);
}

void hconn_free(struct hconn *h)
{
    bbuf_free(&h->in);
    bbuf_free(&h->req);
}
