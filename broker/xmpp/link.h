/* link.h - a server-side XML stream that is not a client's: a federation
 * peer (s2s.c) or an external component (component.c).
 *
 * The link owns the parser and drives it from its connection's bytes; its
 * owner (struct link_ops) answers the header, gets each top-level element
 * (stanzas arrive in jabber:client, see xmlp_set_content_ns) and is told
 * once when the connection is gone, after which it frees itself. Output goes
 * straight to the connection's bounded queue, with the sessions' policy:
 * past the soft bound whoever produced it is paced, past the hard bound
 * the peer is closed with a policy-violation (link_send). */
#ifndef HERALD_LINK_H
#define HERALD_LINK_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct herald;
struct conn;
struct xmlp;
struct xnode;
struct arena;
struct chunk;
struct link;
struct conn_handler;

struct link_ops {
    const char *area;       /* log area: "s2s", "component" */
    void (*on_open)(struct link *l, const struct xnode *hdr, const char *default_ns);
    void (*on_element)(struct link *l, struct xnode *e, struct arena *a);
    /* The connection is gone; the owner unlinks and frees (link_free). */
    void (*on_gone)(struct link *l);
    /* Writes the stream header (stream errors before one need it). */
    void (*send_header)(struct link *l);
};

struct link {
    struct herald *h;
    struct conn *conn;      /* NULL once gone */
    struct xmlp *parser;
    const struct link_ops *ops;
    bool header_sent;
    bool closing;           /* stream error or </stream:stream> sent */
    char stream_id[24];
    char peer[48];          /* address, for logs (kept after the conn goes) */
};

/* Sets up l on a conn; content_ns is the stream's namespace (jabber:server,
 * jabber:component:accept). Returns 0 or HERALD_ENOMEM. link_accept also
 * starts reading an accepted conn; an outgoing one is made with
 * conn_connect(..., link_conn_handler(), l) first, and its on_connect
 * writes our header. */
int link_init(struct link *l, struct herald *h, struct conn *conn, const struct link_ops *ops,
              const char *content_ns);
int link_accept(struct link *l, struct herald *h, struct conn *conn, const struct link_ops *ops,
                const char *content_ns);
const struct conn_handler *link_conn_handler(void);
/* A fresh random stream id. */
void link_new_id(struct link *l);
/* Restarts the stream (after STARTTLS or SASL): the next bytes are a header. */
void link_restart(struct link *l);
int link_send(struct link *l, const char *data, size_t len);
int link_send_chunks(struct link *l, struct chunk *const *parts, size_t n);
/* Sends <stream:error> (after a header if none went out) and closes. */
void link_stream_error(struct link *l, const char *condition, const char *text);
/* Sends </stream:stream> and closes. */
void link_close(struct link *l);
void link_free(struct link *l);

#endif
