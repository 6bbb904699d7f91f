/* web.h - XMPP for web pages: the WebSocket endpoint (RFC 7395), BOSH
 * (XEP-0124/0206, api/bosh.c), their discovery (XEP-0156 host-meta) and the
 * Origin policy they share. docs/web.md is the reference. */
#ifndef HERALD_WEB_H
#define HERALD_WEB_H
#include <stdbool.h>

struct http_conn;
struct http_req;
struct herald;

/* Answers /xmpp-websocket, /http-bind and /.well-known/host-meta[.json];
 * false when the path is none of them. */
bool web_dispatch(struct http_conn *hc, const struct http_req *req);

/* [http] allowed_origins: a request without Origin (not from a browser) is
 * allowed; "*" allows every page; a list allows the origins in it; unset,
 * only the same origin (the Origin's host and port are the Host header). */
bool web_origin_allowed(const struct herald *h, const struct http_req *req);

#endif
