/* conn.h - one TCP connection: socket, optional TLS filter, bounded write queue.
 *
 * The only place (with listener.c) that does socket I/O. Upward, a protocol
 * handler (the XMPP stream, later HTTP) gets plaintext bytes and a close
 * notification; downward it queues bytes with conn_send*(), which never block
 * and never write at once: queued output is flushed once per loop turn with a
 * single uv_write of every queued chunk (plaintext) or of one ciphertext
 * buffer (TLS).
 *
 * Lifetime: conn_close() marks the connection closing (no more input is
 * delivered), optionally lets queued output drain, then shuts down our
 * sending side and discards input until the peer closes too (a lingering
 * close, so that a client still sending does not get a reset that would
 * swallow our last bytes, e.g. a stream error); the sweep bounds all of this
 * in time. Then the socket is closed; on_close is called once and the struct is freed in the
 * libuv close callback. The handler must not use the conn after on_close.
 *
 * Flow control (docs/architecture.md, "Back-pressure"): a connection's input
 * is handled at most max_read_per_turn bytes per loop turn, so the output of
 * one read is flushed before the next read and other connections are served
 * in between; a connection whose own queue passes half its soft bound stops
 * being read until it drains; a producer (the connection whose input is being
 * handled) that pushes another connection's queue past its soft bound waits,
 * unread, until that queue drains (conn_wait_for). The hard bound q_hard is
 * never passed except by CONN_SEND_FORCE. */
#ifndef HERALD_CONN_H
#define HERALD_CONN_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uthash.h>
#include <uv.h>

struct herald;
struct chunk;
struct tls;
struct ws;
struct ssl_ctx_st;
struct buf;

struct conn_handler {
    /* Plaintext bytes arrived. The handler may close the conn from here. */
    void (*on_data)(void *ud, const char *data, size_t len);
    /* The connection is gone (peer closed, error, or conn_close finished). */
    void (*on_close)(void *ud);
    /* Optional: the write queue has drained below a quarter of its bound. */
    void (*on_drain)(void *ud);
    /* Outgoing connections (conn_connect): the TCP connection is up; a
     * failed connect goes to on_close without it. */
    void (*on_connect)(void *ud);
};

struct outq_entry;

/* A connection without a socket (conn_new_virtual): its owner (BOSH,
 * api/bosh.c) pushes input with conn_inject and takes output with
 * conn_take when it has an HTTP request to answer. */
struct conn_sink {
    /* Output is queued (once per loop turn at most, like a flush). */
    void (*on_output)(void *ud);
    /* The connection is gone (after the handler's on_close). */
    void (*on_gone)(void *ud);
};

struct conn {
    uv_tcp_t tcp;
    struct herald *h;
    const struct conn_handler *handler;
    void *ud;
    struct conn *prev, *next;         /* herald->conns */
    struct conn *flush_next;          /* herald->flush_list */
    struct tls *tls;
    struct ws *ws;                    /* WebSocket framing (websocket.h), or NULL */
    const struct conn_sink *sink;     /* virtual connection's owner, or NULL */
    void *sink_ud;
    bool secure;                      /* virtual: the requests come over TLS */
    struct outq_entry *q_head, *q_tail;
    size_t q_bytes;                   /* queued + in flight */
    size_t q_max;                     /* soft bound (pacing, back-pressure) */
    size_t q_hard;                    /* hard bound: sends past it fail */
    size_t read_budget;               /* input bytes handled per loop turn */
    size_t turn_bytes;                /* handled in loop turn turn_id */
    uint64_t turn_id;
    struct conn *resume_next;         /* herald->resume_list */
    struct conn *waiting_on;          /* pacing: the recipient this producer waits for */
    struct conn *waiters;             /* pacing: producers waiting for this queue */
    struct conn *wait_prev, *wait_next; /* in waiting_on->waiters */
    uint64_t last_read_ms;            /* uv_now at the last bytes received */
    uint64_t close_started_ms;        /* uv_now when a draining close began */
    uint64_t write_progress_ms;       /* uv_now when output last moved: the queue
                                       * became non-empty or a write completed */
    char peer[48];                    /* textual peer address */
    bool in_flush_list;
    bool writing;                     /* one uv_write in flight at most */
    bool reading_paused;              /* back-pressure: our queue is long */
    bool input_held;                  /* conn_hold_input */
    bool turn_spent;                  /* read budget of this turn used up */
    bool reading;                     /* uv_read_start in effect */
    bool closing;                     /* conn_close called or peer gone */
    bool close_after_flush;
    bool shutdown_started;            /* our side sent FIN; discarding input */
    bool notify_pending;              /* TLS close_notify after the queue drains */
    uv_shutdown_t shutdown_req;
    bool handle_closed;
};

/* Accepts a pending connection on server. Returns NULL on failure (logged). */
struct conn *conn_accept(struct herald *h, uv_stream_t *server);
/* Opens an outgoing connection to addr with handler (reads start once it
 * is up), from the local address bind_ip when it is a specific address of
 * addr's family (NULL, 0.0.0.0 or ::: the kernel chooses). NULL when it
 * cannot even start (logged); a connect that fails later ends in on_close
 * without on_connect. peer names it in logs. */
struct conn *conn_connect(struct herald *h, const struct sockaddr *addr, const char *bind_ip,
                          const char *peer, const struct conn_handler *handler, void *ud);
/* A virtual connection (no socket; see struct conn_sink) for peer, linked
 * and counted like an accepted one. NULL without memory. */
struct conn *conn_new_virtual(struct herald *h, const char *peer, const struct conn_sink *sink,
                              void *ud);
/* Hands input to the handler as a read would (one call, one element for a
 * framed handler). */
void conn_inject(struct conn *c, const char *data, size_t len);
/* Moves everything queued to out (appended) and counts it written: drain
 * callbacks and a pending close follow. Returns the bytes taken. */
size_t conn_take(struct conn *c, struct buf *out);
static inline bool conn_is_virtual(const struct conn *c) { return c->sink != NULL; }

/* Sets the protocol handler and starts reading. */
int conn_start(struct conn *c, const struct conn_handler *handler, void *ud);

enum {
    CONN_SEND_FORCE = 1,  /* ignore q_max (final stream errors) */
    CONN_SEND_FRAMED = 2, /* WebSocket: the first part begins with its frame header
                           * (ws_put_header), so no header chunk is added */
};

/* On a WebSocket connection (ws_attach) each conn_send* call queues one
 * text message: the frame header, then the data. */

/* Queues a copy of data. Returns 0, HERALD_ELIMIT when the hard bound q_hard
 * would be exceeded (nothing queued) or HERALD_ENOMEM. */
int conn_send(struct conn *c, const void *data, size_t len, int flags);
/* Queues a reference to a shared chunk (the conn takes its own reference). */
int conn_send_chunk(struct conn *c, struct chunk *ch, int flags);

/* Queues the parts of one message as a whole: HERALD_ELIMIT (nothing
 * queued) when together they would pass the hard bound. */
int conn_send_chunks(struct conn *c, struct chunk *const *parts, size_t n, int flags);

/* Queues a copy of data outside any framing (the WebSocket layer's own
 * control frames); flags as for conn_send. */
int conn_send_bytes(struct conn *c, const void *data, size_t len, int flags);
static inline bool conn_is_ws(const struct conn *c) { return c->ws != NULL; }

/* The handler lets go of the connection: from now on nothing is delivered
 * to it and on_close is not called (stream management keeps a session
 * whose connection is dropped). The caller then closes the conn. */
void conn_disown(struct conn *c);

/* Output queued so far goes out in clear; everything after is TLS. Returns 0
 * or -1. */
int conn_starttls(struct conn *c, struct ssl_ctx_st *ctx);
bool conn_is_tls(const struct conn *c);
/* The client side of STARTTLS (outgoing s2s): the ClientHello goes out at
 * the next flush. Returns 0 or -1. */
int conn_starttls_client(struct conn *c, struct ssl_ctx_st *ctx, const char *sni);

/* Stops (hold = true) or resumes delivering input; used while a SASL
 * failure is being delayed. */
void conn_hold_input(struct conn *c, bool hold);

/* Closes the connection; with drain, queued output is sent first (bounded
 * by a short timer). Safe to call more than once. */
void conn_close(struct conn *c, bool drain);

/* True when output is queued and none of it has been written for limit_ms:
 * the peer does not read (sweeps close such connections). */
bool conn_write_stalled(const struct conn *c, uint64_t now, uint64_t limit_ms);

/* Sets the write queue's soft bound (q_max: pacing, back-pressure, drain)
 * and its hard bound (q_hard, at least the soft one: a send past it fails).
 * conn_accept sets both to c2s.max_outq_bytes. */
void conn_set_limits(struct conn *c, size_t soft, size_t hard);

/* Pacing: producer stops being read until recipient's queue drains to a
 * quarter of its soft bound, or recipient closes. A producer waits for one
 * recipient at a time (a second call while waiting does nothing), so waiter
 * lists hold each connection at most once; waiting for oneself does nothing
 * (a client's own replies use the half-bound back-pressure instead). */
void conn_wait_for(struct conn *producer, struct conn *recipient);

/* Connections per peer address (a uthash table per listener kind: c2s and
 * HTTP have separate budgets). Adds delta (+1, -1, or 0 to read) to ip's
 * count and returns the new count; an entry is freed when it reaches 0. If
 * an entry cannot be allocated the connection is not counted (0): the
 * total limits still hold. */
struct ip_count {
    char ip[48];
    unsigned n;
    UT_hash_handle hh;
};
unsigned conn_ip_adjust(struct ip_count **table, const char *ip, int delta);
/* True for 127.0.0.0/8, ::1 and IPv4-mapped ::ffff:127.x (how a dual-stack
 * listener sees IPv4 loopback): peers on this machine, which the
 * per-address limits exempt unless *.limit_loopback. */
bool conn_addr_is_loopback(const char *addr);

/* Called once per loop turn by the server's prepare handle: flushes every
 * write queue, then lets connections that spent their read budget read
 * again. */
void conn_flush_all(struct herald *h);

#endif
