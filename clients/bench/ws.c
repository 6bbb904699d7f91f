/* ws.c — the WebSocket side of a herald-bench client (RFC 6455, for XMPP over
 * WebSocket, RFC 7395).
 *
 * A client with --transport ws connects to the HTTP port, sends a GET upgrade
 * request for --ws-path with subprotocol `xmpp`, and checks the 101 answer
 * (Upgrade, Connection, Sec-WebSocket-Accept against its key,
 * Sec-WebSocket-Protocol: xmpp). From then on every stanza or nonza goes out
 * as one masked text frame and comes in as one text message; xmpp.c sees only
 * whole messages (xclient_ws_message), so it needs no stream splitter there.
 *
 * Framing is wslay's frame layer (wslay_frame_send / wslay_frame_recv), not
 * its event layer: the frame layer is sans-I/O through two callbacks, which fit
 * the bench's model (reads handled synchronously from one shared buffer,
 * output appended to the client's `out` buffer and written once per loop
 * turn), and it allocates nothing per message. The event layer would copy
 * every message twice into fresh allocations and validate its UTF-8 byte by
 * byte, which at a million notifications a second would make the load
 * generator, not the server, the thing measured. What the event layer would
 * have done besides is done here: reassembly of fragmented messages, answers
 * to pings, refusal of masked, reserved-bit and binary frames.
 *
 * A received frame arrives from wslay in chunks of at most its 4 KiB input
 * buffer. A message whose single frame arrives in one chunk (nearly every
 * notification) is handed to xmpp.c in place; any other is collected in
 * `msg` first. Masking keys come from getrandom(2) (RFC 6455 §5.3 asks for a
 * strong source of entropy), drawn 4 KiB at a time. */
#include "bench.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <openssl/evp.h>
#include <wslay/wslay.h>

#define WS_MAX_RESPONSE_HEADER 16384
#define WS_MAX_MESSAGE ((size_t)16 << 20)

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

struct wsconn {
    struct xclient *c;
    wslay_frame_context_ptr frame;
    int upgraded;           /* the 101 answer was accepted */
    int oom;                /* the send callback could not append */
    char accept[32];        /* expected Sec-WebSocket-Accept */
    struct bbuf hdr;        /* the HTTP answer until its blank line */
    const char *in;         /* bytes of the current read not yet given to wslay */
    size_t in_len;
    /* the frame being received */
    uint64_t frame_got;     /* payload bytes of it seen so far */
    int in_msg;             /* a fragmented text message is being collected */
    struct bbuf msg;        /* its bytes so far (or a text frame split in chunks) */
    unsigned char ctl[125]; /* a control frame's payload (RFC 6455 caps it at 125) */
    size_t ctl_len;
};

/* ---- randomness for keys and masks ---- */

static unsigned char rnd_pool[4096];
static size_t rnd_left;

static int random_bytes(unsigned char *out, size_t n)
{
    while (n > 0) {
        if (rnd_left == 0) {
            ssize_t r = getrandom(rnd_pool, sizeof rnd_pool, 0);
            if (r <= 0)
                return -1;
            rnd_left = (size_t)r;
        }
        size_t k = n < rnd_left ? n : rnd_left;
        memcpy(out, rnd_pool + sizeof rnd_pool - rnd_left, k);
        rnd_left -= k;
        out += k;
        n -= k;
    }
    return 0;
}

/* ---- wslay frame callbacks ---- */

static ssize_t on_send(const uint8_t *data, size_t len, int flags, void *ud)
{
    (void)flags;
    struct wsconn *w = ud;
    if (bbuf_append(&w->c->out, (const char *)data, len) != 0) {
        w->oom = 1;
        return -1;
    }
    return (ssize_t)len;
}

static ssize_t on_recv(uint8_t *buf, size_t len, int flags, void *ud)
{
    (void)flags;
    struct wsconn *w = ud;
    size_t n = len < w->in_len ? len : w->in_len;
    if (n == 0)
        return 0; /* wslay: WSLAY_ERR_WANT_READ */
    memcpy(buf, w->in, n);
    w->in += n;
    w->in_len -= n;
    return (ssize_t)n;
}

static int on_genmask(uint8_t *buf, size_t len, void *ud)
{
    (void)ud;
    return random_bytes(buf, len);
}

/* ---- sending ---- */

/* One frame of `opcode`, fin set, masked, whose payload is the n pieces. */
static int send_frame(struct xclient *c, int opcode, const uv_buf_t *parts, int n)
{
    struct wsconn *w = c->ws;
    uint64_t total = 0;
    for (int i = 0; i < n; i++)
        total += parts[i].len;
    if (bbuf_reserve(&c->out, (size_t)total + 14) != 0)
        return -1;
    struct wslay_frame_iocb io = {0};
    io.fin = 1;
    io.opcode = (uint8_t)opcode;
    io.mask = 1;
    io.payload_length = total;
    /* The first call writes the header (and the first piece); later calls
     * continue the same frame's payload, masking at the right offset. The send
     * callback takes every byte, so nothing is left half-sent. */
    int i = 0;
    do {
        io.data = n ? (const uint8_t *)parts[i].base : NULL;
        io.data_length = n ? parts[i].len : 0;
        ssize_t r = wslay_frame_send(w->frame, &io);
        if (r < 0 || (size_t)r != io.data_length || w->oom)
            return -1;
        i++;
    } while (i < n);
    bench_mark_dirty(c->b, c);
    return 0;
}

int ws_send_message(struct xclient *c, const uv_buf_t *parts, int n)
{
    return send_frame(c, WSLAY_TEXT_FRAME, parts, n);
}

int ws_start(struct xclient *c)
{
    static const struct wslay_frame_callbacks cbs = {on_send, on_recv, on_genmask};
    struct wsconn *w = c->ws;
    if (!w) {
        w = calloc(1, sizeof *w);
        if (!w)
            return -1;
        w->c = c;
        if (wslay_frame_context_init(&w->frame, &cbs, w) != 0) {
            free(w);
            return -1;
        }
        c->ws = w;
    }

    unsigned char raw[16], digest[EVP_MAX_MD_SIZE];
    char key[32], material[96];
    unsigned dlen = 0;
    if (random_bytes(raw, sizeof raw) != 0 || base64_encode(raw, sizeof raw, key, sizeof key) != 0)
        return -1;
    int ml = snprintf(material, sizeof material, "%s%s", key, ws_guid);
    if (ml < 0 || (size_t)ml >= sizeof material ||
        !EVP_Digest(material, (size_t)ml, digest, &dlen, EVP_sha1(), NULL) ||
        base64_encode(digest, dlen, w->accept, sizeof w->accept) != 0)
        return -1;

    const char *host = c->host;
    int v6 = strchr(host, ':') != NULL;
    if (bbuf_printf(&c->out,
                    "GET %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n",
                    c->b->ws_path, v6 ? "[" : "", host, v6 ? "]" : "", c->port, key) != 0)
        return -1;
    bench_mark_dirty(c->b, c);
    return 0;
}

/* ---- the upgrade answer ---- */


static int header_is(const char *h, const char *end, const char *name, const char *want)
{
    const char *v;
    long n = bench_header_value(h, end, name, &v);
    return n == (long)strlen(want) && strncasecmp(v, want, (size_t)n) == 0;
}

/* Does the comma-separated header `name` list `token`? */
static int header_lists(const char *h, const char *end, const char *name, const char *token)
{
    const char *v;
    long n = bench_header_value(h, end, name, &v);
    size_t tl = strlen(token);
    for (long i = 0; i < n;) {
        while (i < n && (v[i] == ' ' || v[i] == ',' || v[i] == '\t'))
            i++;
        long j = i;
        while (j < n && v[j] != ',' && v[j] != ' ' && v[j] != '\t')
            j++;
        if ((size_t)(j - i) == tl && strncasecmp(v + i, token, tl) == 0)
            return 1;
        i = j;
    }
    return 0;
}

/* Checks the answer in w->hdr, [0, hlen); 0, or -1 after failing the client. */
static int check_upgrade(struct wsconn *w, size_t hlen)
{
    const char *d = w->hdr.data, *end = d + hlen;
    char why[160];
    if (hlen < 12 || strncmp(d, "HTTP/1.", 7) != 0 || strncmp(d + 8, " 101", 4) != 0) {
        const char *eol = memchr(d, '\r', hlen);
        int show = eol ? (int)(eol - d) : (int)(hlen < 60 ? hlen : 60);
        snprintf(why, sizeof why, "WebSocket upgrade refused: %.*s", show > 100 ? 100 : show, d);
        xclient_fail(w->c, why);
        return -1;
    }
    const char *h = memchr(d, '\n', hlen);
    h = h ? h + 1 : end;
    const char *acc;
    long al = bench_header_value(h, end, "Sec-WebSocket-Accept", &acc);
    if (!header_is(h, end, "Upgrade", "websocket") || !header_lists(h, end, "Connection", "upgrade"))
        xclient_fail(w->c, "WebSocket upgrade: 101 without Upgrade: websocket and Connection: Upgrade");
    else if (al != (long)strlen(w->accept) || memcmp(acc, w->accept, (size_t)al) != 0)
        xclient_fail(w->c, "WebSocket upgrade: wrong Sec-WebSocket-Accept");
    else if (!header_is(h, end, "Sec-WebSocket-Protocol", "xmpp"))
        /* RFC 7395 §3.2: without the xmpp subprotocol the client must close. */
        xclient_fail(w->c, "WebSocket upgrade: the server did not select the xmpp subprotocol");
    else
        return 0;
    return -1;
}

/* ---- receiving ---- */

static void fail_frame(struct xclient *c, const char *why)
{
    char msg[128];
    snprintf(msg, sizeof msg, "WebSocket: %s", why);
    xclient_fail(c, msg);
}

static void control_done(struct xclient *c, int opcode)
{
    struct wsconn *w = c->ws;
    if (opcode == WSLAY_PING) {
        uv_buf_t b = uv_buf_init((char *)w->ctl, (unsigned)w->ctl_len);
        if (send_frame(c, WSLAY_PONG, &b, 1) != 0)
            xclient_fail(c, "out of memory");
    } else if (opcode == WSLAY_CONNECTION_CLOSE) {
        char why[192];
        unsigned code = w->ctl_len >= 2 ? (unsigned)w->ctl[0] << 8 | w->ctl[1] : 0;
        int rl = w->ctl_len > 2 ? (int)w->ctl_len - 2 : 0;
        snprintf(why, sizeof why, "the server closed the WebSocket (code %u%s%.*s)", code, rl ? ": " : "", rl,
                 (const char *)w->ctl + 2);
        xclient_fail(c, why);
    }
    /* WSLAY_PONG: unsolicited, ignored (RFC 6455 §5.5.3). */
}

/* One chunk of a frame from wslay; -1 when the client failed or closed. */
static int frame_chunk(struct xclient *c, const struct wslay_frame_iocb *io)
{
    struct wsconn *w = c->ws;
    int first = w->frame_got == 0;
    w->frame_got += io->data_length;
    int complete = w->frame_got == io->payload_length;
    if (complete)
        w->frame_got = 0;

    if (first && (io->mask || io->rsv)) {
        fail_frame(c, io->mask ? "a masked frame from the server" : "reserved bits set (no extension was negotiated)");
        return -1;
    }
    if (io->opcode & 0x8) {
        if (first) {
            if (io->opcode != WSLAY_PING && io->opcode != WSLAY_PONG && io->opcode != WSLAY_CONNECTION_CLOSE) {
                fail_frame(c, "unknown control frame");
                return -1;
            }
            w->ctl_len = 0;
        }
        /* wslay refuses control frames over 125 bytes: this fits. */
        memcpy(w->ctl + w->ctl_len, io->data, io->data_length);
        w->ctl_len += io->data_length;
        if (complete)
            control_done(c, io->opcode);
        return c->closed || c->state == XS_DEAD ? -1 : 0;
    }
    if (first) {
        if (io->opcode == WSLAY_TEXT_FRAME) {
            if (w->in_msg) {
                fail_frame(c, "a new message inside a fragmented one");
                return -1;
            }
            if (io->fin && complete) {
                /* The whole message in one chunk: no copy. */
                xclient_ws_message(c, (const char *)io->data, io->data_length);
                return c->closed || c->state == XS_DEAD ? -1 : 0;
            }
            w->in_msg = 1;
            w->msg.len = 0;
        } else if (io->opcode == WSLAY_CONTINUATION_FRAME) {
            if (!w->in_msg) {
                fail_frame(c, "a continuation frame outside a message");
                return -1;
            }
        } else {
            fail_frame(c, io->opcode == WSLAY_BINARY_FRAME ? "a binary frame (RFC 7395 uses text frames)"
                                                          : "unknown data frame");
            return -1;
        }
    }
    if (bbuf_append(&w->msg, (const char *)io->data, io->data_length) != 0) {
        xclient_fail(c, "out of memory");
        return -1;
    }
    if (w->msg.len > WS_MAX_MESSAGE) {
        fail_frame(c, "a message from the server is larger than 16 MiB");
        return -1;
    }
    if (complete && io->fin) {
        w->in_msg = 0;
        xclient_ws_message(c, w->msg.data, w->msg.len);
        w->msg.len = 0;
        return c->closed || c->state == XS_DEAD ? -1 : 0;
    }
    return 0;
}

static void feed_frames(struct xclient *c, const char *data, size_t n)
{
    struct wsconn *w = c->ws;
    w->in = data;
    w->in_len = n;
    for (;;) {
        struct wslay_frame_iocb io = {0};
        ssize_t r = wslay_frame_recv(w->frame, &io);
        if (r == WSLAY_ERR_WANT_READ)
            break;
        if (r < 0) {
            fail_frame(c, r == WSLAY_ERR_PROTO ? "malformed frame from the server" : "frame layer error");
            break;
        }
        if (frame_chunk(c, &io) != 0)
            break;
    }
    w->in = NULL;
    w->in_len = 0;
}

void ws_feed(struct xclient *c, const char *data, size_t n)
{
    struct wsconn *w = c->ws;
    if (w->upgraded) {
        feed_frames(c, data, n);
        return;
    }
    size_t old = w->hdr.len;
    if (bbuf_append(&w->hdr, data, n) != 0) {
        xclient_fail(c, "out of memory");
        return;
    }
    /* The blank line may straddle reads: search from 3 bytes before the new ones. */
    size_t from = old > 3 ? old - 3 : 0;
    const char *hend = memmem(w->hdr.data + from, w->hdr.len - from, "\r\n\r\n", 4);
    if (!hend) {
        if (w->hdr.len > WS_MAX_RESPONSE_HEADER)
            xclient_fail(c, "WebSocket upgrade: response headers too long");
        return;
    }
    size_t hlen = (size_t)(hend - w->hdr.data) + 4;
    if (check_upgrade(w, hlen) != 0)
        return;
    w->upgraded = 1;
    xclient_ws_ready(c);
    if (c->closed || c->state == XS_DEAD)
        return;
    /* Frames that came with the answer. The header buffer is not touched
     * again, so they are read from it in place. */
    if (w->hdr.len > hlen)
        feed_frames(c, w->hdr.data + hlen, w->hdr.len - hlen);
}

void ws_free(struct xclient *c)
{
    struct wsconn *w = c->ws;
    if (!w)
        return;
    wslay_frame_context_free(w->frame);
    bbuf_free(&w->hdr);
    bbuf_free(&w->msg);
    free(w);
    c->ws = NULL;
}
