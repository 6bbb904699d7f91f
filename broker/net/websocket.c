/* websocket.c - a connection's WebSocket framing: wslay reads, we write
 * headers (see websocket.h for the model).
 *
 * ws_input hands the bytes just read to wslay through recv_cb (a window on
 * the caller's buffer: nothing is copied twice) and runs wslay_event_recv;
 * on_message passes each complete text message to the connection's handler.
 * wslay queues its pong and close replies itself; ws_input then flushes
 * them with wslay_event_send into the connection's queue, and once a close
 * frame has gone out either way the connection is closed. */
#include "websocket.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

#include "conn.h"
#include "errors.h"
#include "herald.h"
#include "log.h"
#include "outq.h"

struct ws {
    wslay_event_context_ptr ctx;
    struct conn *c;
    const char *in;     /* the bytes ws_input is handing over */
    size_t in_len;
    bool close_sent;    /* by us (ws_send_close) */
};

int ws_accept_value(const char *key, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char raw[32], digest[SHA_DIGEST_LENGTH];
    size_t kl = strlen(key);
    /* RFC 6455 §4.2.1: the key is 16 random bytes in base64 (24 chars). */
    if (kl != 24 || EVP_DecodeBlock(raw, (const unsigned char *)key, 24) != 18 ||
        key[22] != '=' || key[23] != '=')
        return -1;
    char msg[24 + sizeof(guid) - 1];
    memcpy(msg, key, 24);
    memcpy(msg + 24, guid, sizeof(guid) - 1);
    unsigned dlen = 0;
    if (EVP_Digest(msg, sizeof(msg), digest, &dlen, EVP_sha1(), NULL) != 1 || dlen != sizeof(digest))
        return -1;
    return EVP_EncodeBlock((unsigned char *)out, digest, sizeof(digest)) == 28 ? 0 : -1;
}

size_t ws_put_header(unsigned char *out, uint8_t opcode, size_t len)
{
    /* RFC 6455 §5.2: FIN + opcode, then a 7-bit, 16-bit or 64-bit length;
     * no mask from a server. */
    out[0] = (unsigned char)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (unsigned char)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (unsigned char)(len >> 8);
        out[3] = (unsigned char)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

struct chunk *ws_text_header(size_t len)
{
    unsigned char h[10];
    size_t n = ws_put_header(h, WSLAY_TEXT_FRAME, len);
    return chunk_new(h, n);
}

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *ud)
{
    struct ws *ws = ud;
    (void)flags;
    if (ws->in_len == 0 || ws->c->closing) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < ws->in_len ? len : ws->in_len;
    memcpy(buf, ws->in, n);
    ws->in += n;
    ws->in_len -= n;
    return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *ud)
{
    struct ws *ws = ud;
    (void)flags;
    /* Control frames are tiny and must not be refused by the queue bound. */
    if (conn_send_bytes(ws->c, data, len, CONN_SEND_FORCE) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static void on_message(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                       void *ud)
{
    struct ws *ws = ud;
    struct conn *c = ws->c;
    if (c->closing)
        return;
    c->h->stats.ws_frames_in++;
    if (arg->opcode == WSLAY_TEXT_FRAME) {
        c->handler->on_data(c->ud, (const char *)arg->msg, arg->msg_length);
    } else if (arg->opcode == WSLAY_BINARY_FRAME) {
        static const char why[] = "XMPP messages are text (RFC 7395 3.2)";
        wslay_event_queue_close(ctx, WSLAY_CODE_UNSUPPORTED_DATA, (const uint8_t *)why,
                                sizeof(why) - 1);
    }
    /* Pings are answered and closes echoed by wslay itself. */
}

int ws_attach(struct conn *c, size_t max_message)
{
    static const struct wslay_event_callbacks cb = {
        .recv_callback = recv_cb,
        .send_callback = send_cb,
        .on_msg_recv_callback = on_message,
    };
    struct ws *ws = calloc(1, sizeof(*ws));
    if (ws == NULL)
        return HERALD_ENOMEM;
    ws->c = c;
    if (wslay_event_context_server_init(&ws->ctx, &cb, ws) != 0) {
        free(ws);
        return HERALD_ENOMEM;
    }
    wslay_event_config_set_max_recv_msg_length(ws->ctx, max_message);
    c->ws = ws;
    return 0;
}

void ws_free(struct ws *ws)
{
    if (ws == NULL)
        return;
    wslay_event_context_free(ws->ctx);
    free(ws);
}

void ws_input(struct conn *c, const char *data, size_t len)
{
    struct ws *ws = c->ws;
    ws->in = data;
    ws->in_len = len;
    int rc = wslay_event_recv(ws->ctx);
    ws->in_len = 0;
    if (rc != 0) {
        /* wslay gives up on some malformed frames (a control frame that is
         * fragmented or over 125 bytes) without queueing a close itself. */
        log_debug("ws", "%s: WebSocket input failed (%d)", c->peer, rc);
        ws_send_close(c, rc == WSLAY_ERR_NOMEM ? 1011 : 1002);
        conn_close(c, true);
        return;
    }
    /* Closed by the session meanwhile: its close frame is the last one. */
    if (c->closing)
        return;
    if (wslay_event_want_write(ws->ctx) && wslay_event_send(ws->ctx) != 0) {
        conn_close(c, false);
        return;
    }
    /* A close went out (an echo of the peer's, or a protocol error's): the
     * WebSocket is over (RFC 6455 §7.1.1: the server closes TCP first). */
    if (wslay_event_get_close_sent(ws->ctx)) {
        if (!ws->close_sent)
            log_debug("ws", "%s: WebSocket closed (code %u)", c->peer,
                      (unsigned)wslay_event_get_status_code_sent(ws->ctx));
        ws->close_sent = true;
        conn_close(c, true);
    }
}

void ws_ping(struct conn *c)
{
    unsigned char f[2];
    size_t n = ws_put_header(f, WSLAY_PING, 0);
    if (conn_send_bytes(c, f, n, 0) == 0)
        c->h->stats.ws_frames_out++;
}

void ws_send_close(struct conn *c, uint16_t code)
{
    struct ws *ws = c->ws;
    if (ws == NULL || ws->close_sent || wslay_event_get_close_sent(ws->ctx))
        return;
    ws->close_sent = true;
    unsigned char f[12];
    size_t n = ws_put_header(f, WSLAY_CONNECTION_CLOSE, 2);
    f[n++] = (unsigned char)(code >> 8);
    f[n++] = (unsigned char)code;
    conn_send_bytes(c, f, n, CONN_SEND_FORCE);
}
