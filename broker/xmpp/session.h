/* session.h - a client's XMPP session, and the table of bound sessions.
 *
 * struct session is the per-connection XMPP state: the stream parser, the
 * SASL exchange while authenticating, and after resource binding the full JID,
 * presence availability and priority. stream.c drives it from bytes;
 * session.c keeps the table bare JID -> bound resources that the router
 * reads. A session is removed from the table the moment it starts closing
 * (nothing is routed to a closing session) and freed when its connection is.
 *
 * A resumable session (XEP-0198, sm.h) outlives its connection: conn is NULL
 * while it is detached, and a resumed stream's session takes its state over.
 *
 * Ownership: the session owns parser, sasl, and its JID strings; the conn owns
 * the socket and the write queue. */
#ifndef HERALD_SESSION_H
#define HERALD_SESSION_H
#include <stdbool.h>
#include <stdint.h>
#include <uthash.h>

#include "herald.h"
#include "sm.h"

struct conn;
struct xmlp;
struct hsasl;
struct chunk;
struct xnode;
struct arena;

enum stream_state {
    ST_HEADER,  /* waiting for the client's stream header */
    ST_AUTH,    /* features sent: STARTTLS / SASL */
    ST_BIND,    /* authenticated: waiting for resource binding */
    ST_BOUND,   /* bound: stanzas are routed */
    ST_CLOSED,  /* stream closed or errored: input is ignored */
};

struct auth_delay;

struct session {
    struct herald *h;
    struct conn *conn;
    struct xmlp *parser;
    struct hsasl *sasl;
    struct auth_delay *delay;   /* a SASL failure waiting to be sent */
    enum stream_state state;
    bool header_sent;
    bool tls;
    bool framed;                /* one element per message (WebSocket, BOSH):
                                 * <open/> and <close/> instead of the header */
    bool registered;            /* in the account table */
    bool available;             /* sent available presence (RFC 6121 §4.2) */
    int priority;               /* from that presence, -128..127 */
    unsigned auth_failures;
    bool external_wait;         /* SASL EXTERNAL: empty challenge sent (stream.c) */
    uint64_t units_in;          /* top-level elements parsed (framing checks) */
    char stream_id[20];
    char *bare;                 /* "user@domain" once authenticated */
    char *full;                 /* "user@domain/resource" once bound */
    const char *resource;       /* points into full */
    struct session *next_res;   /* same account's other resources */
    bool roster_requested;      /* an "interested resource" (RFC 6121 §2.1.6) */
    bool offline_pending;       /* stored messages wait for room in the write queue */
    struct chunk *presence;     /* last available presence, from "<presence" on */
    char **directed;            /* JIDs given directed presence (§4.6), to get unavailable */
    unsigned ndirected;
    uint64_t started_ms;
    uint64_t last_keepalive_ms;
    struct sm_state sm;         /* XEP-0198 (sm.c) */
    struct durable_sub *durable; /* replay and delivery state of durable pubsub
                                  * subscriptions (pubsub_durable.c) */
    uint64_t durable_flushed_ms; /* cluster mode: cursors proposed at most once a second */
    bool durable_started;       /* built at the first available presence */
    struct csi_state csi;       /* XEP-0352 (sm.c) */
    /* carbons.c and blocking.c: */
    bool carbons;               /* XEP-0280: enabled for this resource */
    bool blocklist_requested;   /* XEP-0191 §3.2: gets block/unblock pushes */
    uint64_t lease_id;          /* items leased to this session (docs/leases.md); 0: none */
};

struct account {
    char *bare;
    struct session *sessions;   /* bound resources, newest first */
    UT_hash_handle hh;
};

/* Takes over an accepted connection (enforcing the connection limits). */
void session_accept(struct herald *h, struct conn *conn);

/* Registry of bound sessions. */
int session_register(struct session *s);
void session_unregister(struct session *s);
struct account *session_account(struct herald *h, const char *bare);
struct session *session_find(struct herald *h, const char *bare, const char *resource);
/* The lease id of the bound session with this full JID (made on first
 * use, unique in the process; pubsub_leases_session_end when the session
 * ends), or 0 when no session here has that JID. */
uint64_t session_lease_id(struct herald *h, const char *full);

/* Output, with the slow-consumer policy (session.c): 0 or a HERALD_E* code.
 * Past the queue's soft bound the data is queued and its producer paced;
 * past the hard bound the session is closed with a policy-violation stream
 * error (a resumable one is detached instead) and HERALD_ELIMIT is returned.
 *
 * session_send_stanza queues one stanza made of nparts chunks (at most
 * SQ_PARTS; the caller keeps its references): counted and kept for stream
 * management, held back for an inactive client (CSI), queued on a detached
 * session for its resumption. session_send_chunk and session_send_xml are
 * stanzas too; session_send writes stream-level bytes (headers, features,
 * SASL, SM elements), which are none of that. */
int session_send_stanza(struct session *s, struct chunk *const *parts, size_t nparts);
/* The same for a notification of a durable subscription (its
 * acknowledgement moves the subscription's cursor). */
int session_send_tagged(struct session *s, struct chunk *const *parts, size_t nparts,
                        const struct sq_tag *tag);
int session_send_chunk(struct session *s, struct chunk *ch);
/* recipient's queue is past its soft bound: whoever filled it (the
 * connection whose input is being handled, or during a publish's fan-out the
 * publisher's sessions) is not read until it drains. Sessions, s2s and
 * component streams share this policy. */
void session_pace_producers(struct herald *h, struct conn *recipient);
int session_send_xml(struct session *s, const struct xnode *e);
int session_send(struct session *s, const char *data, size_t len);

/* Writes a stanza as it is rendered for the session's transport, with no
 * accounting (stream management's resends, CSI's release). flags as for
 * conn_send. */
int session_write_stanza(struct session *s, struct chunk *const *parts, size_t n, int flags);

/* "tcp", "websocket", "bosh", or "detached" (XEP-0198, waiting to be
 * resumed): the transport the session's client is on now. */
const char *session_transport(const struct session *s);
/* Keeps an idle stream alive: whitespace over TCP, a ping over WebSocket. */
void session_keepalive(struct session *s);

/* Stream management's hooks (sm.c): the connection goes away from a session
 * that stays (detach); a stale connection is closed for a resumed stream; a
 * detached session that ended is freed. */
void session_drop_conn(struct session *s);
void session_replace_conn(struct session *old);
void session_free_detached(struct session *s);

/* Writes our stream header (RFC 6120 §4.7) with the session's stream id;
 * flags as for conn_send (CONN_SEND_FORCE before a stream error). */
void session_send_header(struct session *s, int flags);

/* Sends a stream error (RFC 6120 §4.9) and closes the stream. */
void session_stream_error(struct session *s, const char *condition, const char *text);
/* Closes the stream with </stream:stream> (shutdown, client close). */
void session_close(struct session *s);

/* Periodic checks: login timeout, idle timeout, whitespace keepalive; idle
 * bound sessions' parsers hibernate. Returns how many parsers hibernated. */
unsigned session_sweep(struct herald *h);
/* Graceful shutdown of every session. */
void session_close_all(struct herald *h);

/* stream.c: the XMPP stream state machine for one session. */
void stream_on_data(void *ud, const char *data, size_t len);
int stream_init(struct session *s);
/* Cancels a pending delayed SASL failure (the session is going away). */
void stream_cancel_delay(struct session *s);

#endif
