/* websocket.h - the WebSocket framing of a connection (RFC 6455, server side).
 *
 * A filter on a conn, like TLS: once ws_attach has turned an upgraded HTTP
 * connection into a WebSocket, conn.c hands every byte read (after TLS) to
 * ws_input, and the handler's on_data receives one call per complete text
 * message. Reading frames is wslay's work (Debian's libwslay: masking,
 * fragments, control frames, the message size bound, automatic pong and
 * close replies); this file never parses a frame itself.
 *
 * Output stays zero-copy: conn_send* on a WebSocket connection queue one
 * text message per call, a frame header chunk (ws_text_header) followed by
 * the caller's chunks by reference, so a notification encoded once is still
 * shared by every subscriber's queue. A server frame is not masked (RFC
 * 6455 §5.1), so its header is all there is to write. wslay's own replies
 * (pong, close) go out through conn_send_bytes.
 *
 * Failures, each answered as RFC 6455 §7.4.1 says and then closed: a
 * malformed frame (unmasked, reserved bits, bad opcode, a control frame
 * fragmented or over 125 bytes) 1002, a binary message 1003 (RFC 7395
 * §3.2: XMPP messages are text), text that is not UTF-8 1007, a message
 * over the bound 1009.
 *
 * Ownership: the conn owns its struct ws (freed with the conn). */
#ifndef HERALD_WEBSOCKET_H
#define HERALD_WEBSOCKET_H
#include <stddef.h>
#include <stdint.h>

struct conn;
struct chunk;
struct ws;

/* The Sec-WebSocket-Accept value for a client's Sec-WebSocket-Key (RFC
 * 6455 §4.2.2: base64 of the SHA-1 of the key and the protocol's GUID).
 * out receives 28 characters and a NUL. Returns 0, or -1 for a key that is
 * not 16 bytes in base64. */
int ws_accept_value(const char *key, char out[29]);

/* Turns c into a WebSocket connection, once the 101 answer is queued.
 * max_message bounds a message's size (fragments reassembled). Returns 0 or
 * HERALD_ENOMEM. */
int ws_attach(struct conn *c, size_t max_message);
void ws_free(struct ws *ws);

/* conn.c: bytes read (after TLS) go through the framing. */
void ws_input(struct conn *c, const char *data, size_t len);

/* A new chunk holding the header of a text frame of len payload bytes (one
 * unfragmented message), or NULL. */
struct chunk *ws_text_header(size_t len);
/* The bytes of a frame header for len payload bytes: at most 10 written to
 * out; returns how many. */
size_t ws_put_header(unsigned char *out, uint8_t opcode, size_t len);

/* Queues a ping (keepalive: the pong is input, which resets the idle
 * clock). */
void ws_ping(struct conn *c);
/* Queues a close frame with code unless one went out already (conn_close
 * calls it, so every close of a WebSocket ends with one). */
void ws_send_close(struct conn *c, uint16_t code);

#endif
