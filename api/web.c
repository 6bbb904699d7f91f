/* web.c - the HTTP side of XMPP for web pages.
 *
 *   GET /xmpp-websocket        RFC 6455 handshake checks, then 101 and the
 *                              connection becomes an XMPP session whose
 *                              conn carries WebSocket framing (websocket.c)
 *   POST, OPTIONS /http-bind   BOSH (bosh.c), with CORS
 *   GET /.well-known/host-meta XEP-0156 discovery (XRD and JSON)
 *
 * Each refusal is an HTTP answer a browser's console shows in words: 426
 * for a request that is not a WebSocket upgrade (or another protocol
 * version), 400 for a bad key or a missing 'xmpp' subprotocol, 403 for an
 * Origin outside [http] allowed_origins. */
#include "web.h"

#include <http_parser.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "bosh.h"
#include "buf.h"
#include "config.h"
#include "conn.h"
#include "herald.h"
#include "http.h"
#include "log.h"
#include "session.h"
#include "websocket.h"

#define WS_PATH "/xmpp-websocket"
#define BOSH_PATH "/http-bind"

/* True when the comma-separated header value list holds token (any case). */
static bool has_token(const char *list, const char *token)
{
    size_t tl = strlen(token);
    for (const char *p = list; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *end = p;
        while (*end && *end != ',')
            end++;
        const char *last = end;
        while (last > p && (last[-1] == ' ' || last[-1] == '\t'))
            last--;
        if ((size_t)(last - p) == tl && strncasecmp(p, token, tl) == 0)
            return true;
        p = end;
    }
    return false;
}

bool web_origin_allowed(const struct herald *h, const struct http_req *req)
{
    const char *allowed = h->cfg->http_allowed_origins;
    if (req->origin == NULL)
        return true;
    if (allowed == NULL || allowed[0] == '\0') {
        /* Same origin: "scheme://host[:port]" whose authority is Host. */
        const char *auth = strstr(req->origin, "://");
        return auth != NULL && req->host != NULL && strcasecmp(auth + 3, req->host) == 0;
    }
    size_t ol = strlen(req->origin);
    for (const char *p = allowed; *p;) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        const char *end = p;
        while (*end && *end != ' ' && *end != ',' && *end != '\t')
            end++;
        size_t n = (size_t)(end - p);
        if ((n == 1 && *p == '*') || (n == ol && strncasecmp(p, req->origin, n) == 0))
            return true;
        p = end;
    }
    return false;
}

/* ---- WebSocket (RFC 6455 §4.2, RFC 7395 §3.1-3.2) ---- */

static void ws_refuse(struct http_conn *hc, int status, const char *detail, const char *headers)
{
    struct herald *h = http_herald(hc);
    h->stats.ws_upgrades_refused++;
    static struct log_limit lim;
    log_limited(&lim, LOG_INFO, "ws", "%s: WebSocket refused (%d): %s", http_peer(hc), status,
                detail);
    http_problem_h(hc, status, NULL, NULL, detail, headers);
}

static void websocket(struct http_conn *hc, const struct http_req *req)
{
    struct herald *h = http_herald(hc);
    char accept[29];
    if (req->method != HTTP_GET) {
        ws_refuse(hc, 405, "the WebSocket endpoint takes GET only", "Allow: GET\r\n");
        return;
    }
    if (!has_token(req->upgrade, "websocket") || !has_token(req->connection, "upgrade")) {
        ws_refuse(hc, 426, "this is the XMPP WebSocket endpoint (RFC 7395): send an Upgrade: "
                  "websocket request", "Upgrade: websocket\r\nConnection: Upgrade\r\n");
        return;
    }
    if (req->ws_version == NULL || strcmp(req->ws_version, "13") != 0) {
        /* RFC 6455 §4.4: name the versions we speak. */
        ws_refuse(hc, 426, "WebSocket version 13 is required", "Sec-WebSocket-Version: 13\r\n");
        return;
    }
    if (req->ws_key == NULL || ws_accept_value(req->ws_key, accept) != 0) {
        ws_refuse(hc, 400, "Sec-WebSocket-Key is missing or not 16 bytes in base64", NULL);
        return;
    }
    if (!web_origin_allowed(h, req)) {
        ws_refuse(hc, 403, "this page's Origin is not in [http] allowed_origins", NULL);
        return;
    }
    if (!has_token(req->ws_protocol, "xmpp")) {
        ws_refuse(hc, 400, "the WebSocket subprotocol 'xmpp' is required (RFC 7395 3.1: "
                  "Sec-WebSocket-Protocol: xmpp)", NULL);
        return;
    }
    if (h->shutting_down) {
        http_problem(hc, 503, NULL, NULL, "the server is shutting down");
        return;
    }
    char headers[256];
    snprintf(headers, sizeof(headers),
             "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
             "Sec-WebSocket-Protocol: xmpp\r\n", accept);
    struct conn *c = http_upgrade(hc, headers);
    if (c == NULL)
        return;
    /* The message bound is the stanza bound: a message is one element. */
    if (ws_attach(c, h->cfg->max_stanza_size) != 0) {
        conn_close(c, false);
        return;
    }
    log_debug("ws", "%s: WebSocket opened", c->peer);
    session_accept(h, c);
}

/* ---- discovery (XEP-0156) ---- */

/* The Host header if it is a plain authority (it goes into the answer). */
static const char *safe_host(const struct http_req *req)
{
    const char *host = req->host;
    if (host == NULL || host[0] == '\0' || strlen(host) > 255)
        return NULL;
    for (const char *p = host; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '-' || *p == ':' || *p == '[' || *p == ']'))
            return NULL;
    return host;
}

static void host_meta(struct http_conn *hc, const struct http_req *req, bool json)
{
    if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
        http_problem_h(hc, 405, NULL, NULL, "this resource does not support that method",
                       "Allow: GET, HEAD\r\n");
        return;
    }
    const char *host = safe_host(req);
    if (host == NULL) {
        http_problem(hc, 400, NULL, NULL, "a Host header naming this server is required");
        return;
    }
    bool tls = http_is_tls(hc);
    char ws[300], bosh[300];
    snprintf(ws, sizeof(ws), "%s://%s" WS_PATH, tls ? "wss" : "ws", host);
    snprintf(bosh, sizeof(bosh), "%s://%s" BOSH_PATH, tls ? "https" : "http", host);
    struct buf b;
    buf_init(&b, 0);
    if (json)
        buf_printf(&b, "{\"links\":[{\"rel\":\"urn:xmpp:alt-connections:websocket\",\"href\":\"%s\"},"
                       "{\"rel\":\"urn:xmpp:alt-connections:xbosh\",\"href\":\"%s\"}]}\n", ws, bosh);
    else
        buf_printf(&b, "<?xml version='1.0' encoding='utf-8'?>\n"
                       "<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n"
                       "  <Link rel='urn:xmpp:alt-connections:websocket' href='%s'/>\n"
                       "  <Link rel='urn:xmpp:alt-connections:xbosh' href='%s'/>\n</XRD>\n",
                   ws, bosh);
    /* Discovery is public and read by pages of any origin (XEP-0156 §3). */
    if (buf_ok(&b))
        http_respond(hc, 200, json ? "application/json" : "application/xrd+xml; charset=utf-8",
                     "Access-Control-Allow-Origin: *\r\n", b.data, b.len);
    else
        http_problem(hc, 500, NULL, NULL, "out of memory");
    buf_free(&b);
}

bool web_dispatch(struct http_conn *hc, const struct http_req *req)
{
    if (strcmp(req->path, WS_PATH) == 0)
        websocket(hc, req);
    else if (strcmp(req->path, BOSH_PATH) == 0)
        bosh_request(hc, req);
    else if (strcmp(req->path, "/.well-known/host-meta") == 0)
        host_meta(hc, req, false);
    else if (strcmp(req->path, "/.well-known/host-meta.json") == 0)
        host_meta(hc, req, true);
    else
        return false;
    return true;
}
