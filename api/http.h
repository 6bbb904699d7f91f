/* http.h - the HTTP/1.1 listener's connections (REST bridge foundation).
 *
 * Each accepted connection gets an http_parser (Debian's libhttp-parser,
 * the parser Node.js used for years: small, no allocation, handles
 * pipelining and keep-alive) over the same conn.c transport as XMPP.
 * Requests are bounded (URL, headers, body) and answered in order;
 * today the routes are the operations endpoints /healthz and /metrics. */
#ifndef HERALD_HTTP_H
#define HERALD_HTTP_H
#include <stddef.h>

struct herald;
struct conn;
struct buf;

#define HTTP_MAX_URL 8192
#define HTTP_MAX_HEADERS 16384
#define HTTP_MAX_BODY (1024 * 1024)

/* Takes over an accepted connection on the HTTP listener. */
void http_accept(struct herald *h, struct conn *c);
/* Closes idle keep-alive connections and slow requests (from the sweep). */
void http_sweep(struct herald *h);

/* metrics.c: the Prometheus text exposition of the server's counters. */
void metrics_render(struct herald *h, struct buf *out);

#endif
