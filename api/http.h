/* http.h - the HTTP/1.1 listeners' connections.
 *
 * Each accepted connection (plain, or TLS from the first byte on the HTTPS
 * port) gets an http_parser (Debian's libhttp-parser, the parser Node.js
 * used for years: small, no allocation, handles pipelining and keep-alive)
 * over the same conn.c transport as XMPP. Requests are bounded (URL,
 * headers, body) and answered strictly in order: while one request waits
 * for its answer (a change waits for its group commit), or while answers
 * over http.max_outq_bytes are unread, the parser is paused and later
 * pipelined bytes wait in a stash (reading stops at 64 KiB, at once when
 * the output is over its bound).
 *
 * http.c owns the transport side (parsing, limits, timeouts, ordering,
 * problem+json); rest.c owns the /v1 routes; sse.c the event streams. */
#ifndef HERALD_HTTP_H
#define HERALD_HTTP_H
#include <stdbool.h>
#include <stddef.h>

struct herald;
struct conn;
struct buf;

#define HTTP_MAX_URL 8192
#define HTTP_MAX_HEADERS 16384
#define HTTP_MAX_BODY (1024 * 1024)

struct http_conn;

/* One parsed request, valid until it is answered. Strings are NUL-terminated;
 * absent headers are NULL. */
struct http_req {
    int method;             /* enum http_method */
    const char *path;       /* still percent-encoded */
    size_t path_len;
    const char *query;      /* without '?', or NULL */
    size_t query_len;
    const char *authorization;
    const char *content_type;
    const char *last_event_id;
    const char *host;
    const char *origin;
    const char *upgrade;
    const char *connection;
    const char *ws_key;             /* Sec-WebSocket-Key */
    const char *ws_version;         /* Sec-WebSocket-Version */
    const char *ws_protocol;        /* Sec-WebSocket-Protocol */
    const char *body;
    size_t body_len;
};

/* Takes over an accepted connection on an HTTP listener (tls: HTTPS). */
void http_accept(struct herald *h, struct conn *c, bool tls);
/* Closes idle keep-alive connections and slow requests, keeps event streams
 * alive (from the once-a-second sweep). */
void http_sweep(struct herald *h);

struct herald *http_herald(const struct http_conn *hc);

/* Answers the current request. headers: extra header lines, each ending in
 * "\r\n", or NULL. May be called later than the handler returned (after a
 * commit): the connection's next request waits until then. Does nothing if
 * the connection has gone meanwhile. */
void http_respond(struct http_conn *hc, int status, const char *type, const char *headers,
                  const char *body, size_t len);
/* RFC 9457 problem details. condition/app: the XMPP stanza error condition
 * and pubsub condition it stands for, or NULL. detail is escaped. */
void http_problem(struct http_conn *hc, int status, const char *condition, const char *app,
                  const char *detail);
/* The same with extra header lines (e.g. "Allow: GET, HEAD\r\n" on a 405). */
void http_problem_h(struct http_conn *hc, int status, const char *condition, const char *app,
                    const char *detail, const char *headers);
/* A HERALD_E* code as problem details: status, condition and pubsub
 * condition from the one error table (errors.c); detail NULL or "" uses the
 * table's message. */
void http_problem_code(struct http_conn *hc, int code, const char *detail);

/* Answers the current request with 101 Switching Protocols (headers: the
 * extra lines, each ending in "\r\n") and hands the connection over: the
 * caller owns the returned conn (its handler, limits and budget), hc is
 * gone. NULL (answered 500) when the answer cannot be queued. */
struct conn *http_upgrade(struct http_conn *hc, const char *headers);

/* Keeps hc (not its connection) alive across a deferred answer. */
void http_ref(struct http_conn *hc);
void http_unref(struct http_conn *hc);
/* False once the connection has closed. */
bool http_alive(const struct http_conn *hc);
/* True when the request came over the HTTPS listener. */
bool http_is_tls(const struct http_conn *hc);
/* The client's address ("?" without a socket). */
const char *http_peer(const struct http_conn *hc);

/* Event streams: answers the current request with 200 text/event-stream and
 * no length; the connection then carries only http_stream_send output until
 * it closes. ud and on_gone belong to the stream's owner (sse.c): on_gone
 * runs once when the connection closes, on_drain when its write queue has
 * room again. */
struct http_stream_ops {
    void (*on_drain)(void *ud);
    void (*on_gone)(void *ud);
};
int http_stream_start(struct http_conn *hc, const struct http_stream_ops *ops, void *ud);
/* Queues bytes; HERALD_ELIMIT when the client is too far behind (the caller
 * closes the stream), 0 otherwise. */
int http_stream_send(struct http_conn *hc, const char *data, size_t len);
/* Bytes queued but not yet written. */
size_t http_stream_backlog(const struct http_conn *hc);
size_t http_stream_limit(const struct http_conn *hc);
void http_stream_close(struct http_conn *hc);

/* A seam for tests and tests/fuzz/fuzz_http.c: an HTTP connection without a
 * socket, with every limit, the ordering and the pausing of a real one.
 * Answers are appended to sink (owned by the caller, which must outlive the
 * connection) and count as unread until http_test_drain. */
struct http_conn *http_test_open(struct herald *h, struct buf *sink);
/* Hands bytes to the connection as a read would; false (nothing taken) once
 * it is closed or while its input is held. */
bool http_test_feed(struct http_conn *hc, const char *data, size_t len);
/* The peer has read every answer: parsing held by the output bound goes on. */
void http_test_drain(struct http_conn *hc);
/* The peer is gone: hc is freed (once deferred answers let go of it). */
void http_test_close(struct http_conn *hc);

/* rest.c: answers a /v1 request; false when the path is not under /v1. */
bool rest_dispatch(struct http_conn *hc, const struct http_req *req);

/* metrics.c: the Prometheus text exposition of the server's counters. */
void metrics_render(struct herald *h, struct buf *out);

#endif
