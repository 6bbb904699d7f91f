/* fuzz_http.c - libFuzzer target for Herald's HTTP request handling (http.c
 * through its socket-free seam, http_test_open).
 *
 * The input is a script of steps, each led by a control byte: feed the next
 * 1-64 bytes, or 64-4096 bytes, to the connection as a read would; let the
 * client read every answer (drain); or answer the request the stub /v1
 * handler left pending (a deferred answer, as a change waits for its commit).
 * This drives the parser, the URL/header/body limits, header capture, the
 * transfer-coding check, pipelining, pausing for deferred answers and for the
 * output bound, and resuming from the stash. http.max_outq_bytes is at its
 * minimum (16 KiB) so that the bound is hit often.
 *
 * Checked on every step: unread output never exceeds the bound by more than
 * one answer (parsing stops above it); what was written is a sequence of
 * HTTP/1.1 answers; every request handed to the handler is well formed
 * (NUL-terminated path and query of the stated lengths, body within 1 MiB).
 * rest.c is replaced by a stub (its routes need a pubsub service and a
 * store); the stub also answers /metrics, whose renderer reads the group
 * commit's statistics. So is bosh.c (a BOSH session is a whole XMPP
 * session); /http-bind answers 204 here. The WebSocket handshake checks of
 * web.c run for real (an upgrade cannot succeed without a socket: 500).
 * Any violation aborts. */
#include <http_parser.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "errors.h"
#include "herald.h"
#include "bosh.h"
#include "http.h"
#include "log.h"
#include "webhooks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OUTQ_MAX 16384
#define BIG_ANSWER 40000     /* over the bound on its own: it must still go out */
#define MAX_ANSWER (BIG_ANSWER + 1024)

static struct herald herald;
static struct config cfg;
static struct http_conn *pending; /* a request whose answer is deferred */
static char big[BIG_ANSWER];

static void die(const char *what)
{
    fprintf(stderr, "fuzz_http: %s\n", what);
    abort();
}

static void check_request(const struct http_req *req)
{
    if (req->path == NULL || strlen(req->path) != req->path_len)
        die("the path is not NUL-terminated at path_len");
    if (req->query && strlen(req->query) != req->query_len)
        die("the query is not NUL-terminated at query_len");
    if (req->body == NULL || req->body_len > HTTP_MAX_BODY)
        die("the body is missing or over HTTP_MAX_BODY");
    const char *hdrs[] = {req->authorization, req->content_type, req->last_event_id};
    for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++)
        if (hdrs[i] && strlen(hdrs[i]) > HTTP_MAX_HEADERS)
            die("a header value is over HTTP_MAX_HEADERS");
}

/* The stubs of bosh.c. */
void bosh_request(struct http_conn *hc, const struct http_req *req)
{
    check_request(req);
    http_respond(hc, 204, NULL, NULL, "", 0);
}
void bosh_sweep(struct herald *h) { (void)h; }
void bosh_close_all(struct herald *h) { (void)h; }
size_t bosh_count(const struct herald *h)
{
    (void)h;
    return 0;
}

/* The stub of webhooks.c (metrics.c asks it for its lines; the real one
 * would bring the REST code, which this target stubs). */
void webhooks_metrics(struct herald *h, struct buf *b)
{
    (void)h;
    (void)b;
}

/* The stub of rest.c: /v1/defer answers later, /v1/big with more than the
 * output bound, other /v1 paths 404; /metrics is answered here too. */
bool rest_dispatch(struct http_conn *hc, const struct http_req *req)
{
    check_request(req);
    if (strcmp(req->path, "/metrics") == 0) {
        http_respond(hc, 200, "text/plain", NULL, "# none\n", 7);
        return true;
    }
    if (strncmp(req->path, "/v1", 3) != 0)
        return false;
    if (strcmp(req->path, "/v1/defer") == 0 && pending == NULL) {
        http_ref(hc);
        pending = hc;
    } else if (strcmp(req->path, "/v1/big") == 0) {
        http_respond(hc, 200, "application/octet-stream", NULL, big, sizeof(big));
    } else {
        http_problem_code(hc, HERALD_ENOTFOUND, NULL);
    }
    return true;
}

static void answer_pending(size_t len)
{
    if (pending == NULL)
        return;
    struct http_conn *hc = pending;
    pending = NULL;
    http_respond(hc, 201, "application/json", NULL, big, len);
    http_unref(hc);
}

/* What was written since the last drain: a whole number of answers is not
 * required (an answer may be cut by a close), but it starts like one. */
static void check_output(const struct buf *out)
{
    if (out->len > OUTQ_MAX + MAX_ANSWER)
        die("unread answers exceed http.max_outq_bytes by more than one answer");
    if (out->len >= 9 && memcmp(out->data, "HTTP/1.1 ", 9) != 0)
        die("the output does not start with an HTTP/1.1 status line");
}

static void setup(void)
{
    if (herald.loop)
        return;
    config_defaults(&cfg);
    cfg.http_max_outq_bytes = OUTQ_MAX;
    herald.cfg = &cfg;
    herald.loop = uv_default_loop();
    memset(big, 'b', sizeof(big));
    log_set_level(LOG_ERROR);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    struct buf out;
    buf_init(&out, 0);
    struct http_conn *hc = http_test_open(&herald, &out);
    if (hc == NULL)
        return 0;
    size_t i = 0;
    while (i < size) {
        uint8_t c = data[i++];
        unsigned op = c >> 6;
        size_t n = (size_t)(c & 0x3f) + 1;
        if (op == 2) {
            check_output(&out);
            buf_reset(&out);
            http_test_drain(hc);
        } else if (op == 3) {
            answer_pending(n * 512);
        } else {
            n = op == 1 ? n * 64 : n;
            if (n > size - i)
                n = size - i;
            /* Held input stays with the client, as in the socket's buffer
             * while libuv does not read: the client reads, then sends. */
            int tries = 0;
            while (!http_test_feed(hc, (const char *)data + i, n) && http_alive(hc) &&
                   tries++ < 64) {
                check_output(&out);
                buf_reset(&out);
                http_test_drain(hc);
                answer_pending(16);
            }
            if (!http_alive(hc))
                break;
            i += n;
        }
        check_output(&out);
    }
    http_test_close(hc);
    answer_pending(0);
    buf_free(&out);
    return 0;
}
