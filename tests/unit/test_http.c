/* test_http.c - http.c's request handling without sockets (http_test_open):
 * the output bound that stops parsing of pipelined requests until the
 * client reads, answers kept in request order across the pauses, and the
 * transfer-coding check (RFC 9112 §6.1: 501 for anything but "chunked").
 *
 * The herald has no pubsub service: /v1 routes answer 503 (unknown ones
 * 404), /healthz 200; nothing here needs more. */
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "herald.h"
#include "http.h"
#include "log.h"
#include "test.h"

#define OUTQ 16384

static struct herald herald;
static struct config cfg;

static struct http_conn *open_conn(struct buf *out)
{
    if (herald.loop == NULL) {
        config_defaults(&cfg);
        cfg.http_max_outq_bytes = OUTQ;
        herald.cfg = &cfg;
        herald.loop = uv_default_loop();
        log_set_level(LOG_ERROR);
    }
    buf_init(out, 0);
    return http_test_open(&herald, out);
}

static unsigned count(const struct buf *b, const char *needle)
{
    unsigned n = 0;
    size_t nl = strlen(needle);
    for (size_t i = 0; i + nl <= b->len; i++)
        if (memcmp(b->data + i, needle, nl) == 0)
            n++;
    return n;
}

/* 400 pipelined requests in one read: answers stop a little past the bound
 * (per request, not per read), input is held, and each drain lets the next
 * batch through until all 400 are answered, in order. */
static void test_pipelined_answers_stop_at_the_bound(void)
{
    struct buf out, all;
    struct http_conn *hc = open_conn(&out);
    buf_init(&all, 0);
    struct buf req;
    buf_init(&req, 0);
    for (int i = 0; i < 400; i++)
        buf_puts(&req, i % 2 ? "GET /healthz HTTP/1.1\r\n\r\n"
                            : "GET /v1/openapi.json HTTP/1.1\r\n\r\n");
    CHECK(http_test_feed(hc, req.data, req.len));
    size_t first = out.len;
    CHECK(first > OUTQ);
    CHECK(first < OUTQ + 512); /* one answer past the bound at most */
    CHECK(count(&out, "HTTP/1.1 ") < 400);
    CHECK(!http_test_feed(hc, "GET /healthz HTTP/1.1\r\n\r\n", 25)); /* input held */
    int drains = 0;
    while (count(&all, "HTTP/1.1 ") + count(&out, "HTTP/1.1 ") < 400 && drains < 100) {
        CHECK(out.len <= OUTQ + 512);
        buf_append(&all, out.data, out.len);
        buf_reset(&out);
        http_test_drain(hc);
        drains++;
    }
    buf_append(&all, out.data, out.len);
    CHECK(drains > 1);
    CHECK_EQ_INT(count(&all, "HTTP/1.1 "), 400);
    /* In order: 503 (/v1/openapi.json without a pubsub service), 200, ... */
    CHECK(buf_nul(&all) == 0);
    const char *p = all.data;
    bool ordered = true;
    for (int i = 0; i < 400 && p; i++) {
        const char *want = i % 2 ? "HTTP/1.1 200" : "HTTP/1.1 503";
        ordered = ordered && strncmp(p, want, strlen(want)) == 0;
        p = strstr(p + 1, "HTTP/1.1 ");
    }
    CHECK(ordered);
    CHECK(http_test_feed(hc, "GET /healthz HTTP/1.1\r\n\r\n", 25)); /* reading again */
    http_test_close(hc);
    buf_free(&req);
    buf_free(&all);
    buf_free(&out);
}

/* One transfer coding header value: the status of the answer. */
static int te_status(const char *te)
{
    struct buf out;
    struct http_conn *hc = open_conn(&out);
    char req[256];
    int n = snprintf(req, sizeof(req),
                     "POST /v1/x HTTP/1.1\r\nTransfer-Encoding: %s\r\n\r\n0\r\n\r\n"
                     "GET /healthz HTTP/1.1\r\n\r\n", te);
    int status = 0;
    if (n > 0 && (size_t)n < sizeof(req) && http_test_feed(hc, req, (size_t)n) &&
        buf_nul(&out) == 0)
        sscanf(out.data, "HTTP/1.1 %d", &status);
    bool closed = !http_test_feed(hc, "GET /healthz HTTP/1.1\r\n\r\n", 25);
    if (status == 501) /* refused: closed, the pipelined GET not answered */
        status = closed && count(&out, "HTTP/1.1 ") == 1 ? 501 : -501;
    http_test_close(hc);
    buf_free(&out);
    return status;
}

static void test_transfer_codings(void)
{
    CHECK_EQ_INT(te_status("gzip, chunked"), 501);
    CHECK_EQ_INT(te_status("chunked, chunked"), 501);
    CHECK_EQ_INT(te_status("identity"), 501);
    CHECK_EQ_INT(te_status("gzip\r\nTransfer-Encoding: chunked"), 501);
    CHECK_EQ_INT(te_status("chunked"), 404); /* read, then routed */
    CHECK_EQ_INT(te_status("CHUNKED"), 404);
    CHECK_EQ_INT(te_status(" chunked "), 404);
}

TEST_MAIN(TEST_CASE(test_pipelined_answers_stop_at_the_bound), TEST_CASE(test_transfer_codings))
