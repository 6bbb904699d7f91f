/* test_websocket.c - the WebSocket pieces Herald writes itself
 * (websocket.c): the handshake's accept value (RFC 6455 §1.3 and §4.2.2,
 * with the RFC's own example) and the server frame header in its three
 * length forms (§5.2). Reading frames is wslay's, and is driven end to end
 * by tests/e2e/test_80_websocket.py and test_84_web_bad_input.py. */
#include <string.h>

#include "outq.h"
#include "test.h"
#include "websocket.h"

static void test_accept_value(void)
{
    char out[29];
    /* RFC 6455 §1.3: this key gives this accept value. */
    CHECK_EQ_INT(ws_accept_value("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
    CHECK_EQ_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /* Not 16 bytes of base64: refused (§4.2.1). */
    CHECK_EQ_INT(ws_accept_value("", out), -1);
    CHECK_EQ_INT(ws_accept_value("dGhlIHNhbXBsZSBub25jZQ", out), -1);
    CHECK_EQ_INT(ws_accept_value("dGhlIHNhbXBsZSBub25jZQ==x", out), -1);
    CHECK_EQ_INT(ws_accept_value("dGhlIHNhbXBsZSBub25j!Q==", out), -1);
    CHECK_EQ_INT(ws_accept_value("dGhlIHNhbXBsZSBub25jZQ=A", out), -1);
}

static void test_header_lengths(void)
{
    unsigned char h[10];
    CHECK_EQ_INT((int)ws_put_header(h, 1, 0), 2);
    CHECK_EQ_INT(h[0], 0x81);
    CHECK_EQ_INT(h[1], 0);
    CHECK_EQ_INT((int)ws_put_header(h, 1, 125), 2);
    CHECK_EQ_INT(h[1], 125);
    CHECK_EQ_INT((int)ws_put_header(h, 1, 126), 4);
    CHECK_EQ_INT(h[1], 126);
    CHECK_EQ_INT(h[2], 0);
    CHECK_EQ_INT(h[3], 126);
    CHECK_EQ_INT((int)ws_put_header(h, 1, 65535), 4);
    CHECK_EQ_INT(h[2], 0xff);
    CHECK_EQ_INT(h[3], 0xff);
    CHECK_EQ_INT((int)ws_put_header(h, 1, 65536), 10);
    CHECK_EQ_INT(h[1], 127);
    CHECK_EQ_INT(h[7], 1);
    CHECK_EQ_INT(h[8], 0);
    CHECK_EQ_INT(h[9], 0);
    /* Control frames: FIN set, opcode kept, no mask bit from a server. */
    CHECK_EQ_INT((int)ws_put_header(h, 9, 0), 2);
    CHECK_EQ_INT(h[0], 0x89);
    struct chunk *c = ws_text_header(300);
    CHECK(c != NULL);
    CHECK_EQ_INT((int)c->len, 4);
    CHECK_EQ_INT((unsigned char)c->data[0], 0x81);
    CHECK_EQ_INT((unsigned char)c->data[2] * 256 + (unsigned char)c->data[3], 300);
    chunk_unref(c);
}

TEST_MAIN(TEST_CASE(test_accept_value), TEST_CASE(test_header_lengths))
