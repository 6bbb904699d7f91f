/* herald.h - the process: one struct herald made in server.c and passed down.
 *
 * No hidden globals: the loop, configuration, store, TLS context, listeners,
 * connection list and session table hang off this struct; libuv handles point
 * back to their owners through handle->data. One loop thread owns all of it. */
#ifndef HERALD_HERALD_H
#define HERALD_HERALD_H
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"

struct store;
struct conn;
struct account;
struct ip_count;
struct ssl_ctx_st;
struct pubsub;
struct ps_xmpp;
struct sse_hub;
struct webhooks;
struct batch;
struct session;
struct bosh;
struct sm_orphan;
struct block_owner;
struct pep;
struct cluster;
struct http_conn;
struct http_req;
struct s2s;
struct component;

struct herald_stats {
    uint64_t connections_accepted;
    uint64_t connections_refused;
    uint64_t stanzas_in;
    uint64_t stanzas_out;
    uint64_t ws_frames_in;       /* WebSocket messages received (text, binary, control) */
    uint64_t ws_frames_out;      /* WebSocket messages sent (text and pings) */
    uint64_t ws_upgrades_refused; /* GET /xmpp-websocket answered with an error */
    uint64_t bosh_requests;      /* POST /http-bind requests */
    uint64_t auth_ok;
    uint64_t auth_failed;
    uint64_t auth_refused;       /* SASL attempts refused by a failure budget (sasl.c) */
    uint64_t slow_reader_closes;
    uint64_t parser_hibernations; /* idle sessions' parsers released */
    uint64_t publishes;          /* pubsub items committed */
    uint64_t notifications;      /* pubsub event messages queued */
    uint64_t http_requests[6];   /* by status class: [2] = 2xx ... [5] = 5xx */
    uint64_t http_refused;       /* HTTP connections refused by http.max_connections* */
    uint64_t http_write_timeouts; /* HTTP connections and event streams closed: no write progress */
    uint64_t sm_resumed;         /* XEP-0198 resumptions */
    uint64_t sm_resume_failed;   /* <resume/> refused (unknown, expired, other account) */
    uint64_t sm_redelivered;     /* unacknowledged stanzas of ended sessions re-routed or stored */
    uint64_t sm_bounced;         /* ... answered with an error to their sender */
    uint64_t sm_dropped;         /* ... not re-sent (headlines, copies, results, presence) */
};

struct herald {
    uv_loop_t *loop;
    struct config *cfg;
    struct store *store;
    struct ssl_ctx_st *tls_ctx;
    struct batch *batch;         /* this loop turn's write transaction (group commit) */
    struct pubsub *pubsub;       /* the pubsub service (protocol-free) */
    struct ps_xmpp *ps_xmpp;     /* its XMPP edge: handlers and notifications */
    struct sse_hub *sse;         /* the REST event streams (a sink of the service) */
    struct webhooks *webhooks;   /* signed webhooks (a journal of the service; api/webhooks.c) */

    uv_tcp_t c2s_listener;
    bool listening;
    uv_tcp_t http_listener;
    bool http_listening;
    uv_tcp_t https_listener;
    bool https_listening;
    uv_tcp_t s2s_listener;
    bool s2s_listening;
    uv_tcp_t components_listener;
    bool components_listening;
    char *tls_cert_path;         /* the certificate c2s, HTTPS and s2s present */
    char *tls_key_path;
    struct ssl_ctx_st *c2s_tls_ctx; /* STARTTLS on c2s: tls_ctx, or with client
                                     * certificates checked (c2s.client_ca_file) */
    struct s2s *s2s;             /* federation (s2s.c) */
    size_t domain_len, pubsub_jid_len; /* strlen of cfg->domain and the pubsub JID
                                  * (router_send's test for JIDs served here) */
    struct component *components; /* component streams (component.c) */
    uv_signal_t sig_term, sig_int;
    uv_prepare_t flush_prepare;  /* flushes write queues once per loop turn */
    uv_timer_t sweep_timer;      /* idle/login timeouts and keepalives */
    uv_timer_t shutdown_timer;   /* bounds a graceful shutdown */

    struct conn *conns;          /* every open connection (doubly linked) */
    unsigned nconns;
    struct conn *flush_list;     /* connections with queued output */
    /* Flow control (conn.c, docs/architecture.md "Back-pressure"): */
    struct conn *resume_list;    /* spent this turn's read budget; read again next turn */
    struct conn *input_conn;     /* whose input is being handled: the producer to pace */
    const char *pace_account;    /* or, during a publish's fan-out, the publisher's account */
    uint64_t turn;               /* loop turns so far (read budgets are per turn) */
    struct ip_count *ip_counts;  /* uthash: connections per peer address */
    unsigned http_conns;         /* of nconns, those on the HTTP listeners (http.c) */
    struct ip_count *http_ip_counts; /* uthash: HTTP connections per peer address */
    size_t heap_freed;           /* big buffers freed since the last malloc_trim (trim_heap) */
    struct account *accounts;    /* uthash: bare JID -> bound sessions */
    struct bosh *bosh;           /* uthash on sid: BOSH sessions (api/bosh.c) */
    /* Stream management (sm.c): */
    struct session *sm_ids;      /* uthash on sm.id: resumable sessions */
    struct session *sm_detached; /* sessions waiting for <resume/> (doubly linked) */
    unsigned sm_ndetached;
    struct session *sm_ack_list; /* <r/> answered after this turn's commit */
    bool sm_acks_scheduled;
    struct sm_orphan *sm_orphans; /* unacknowledged stanzas of ended sessions */
    struct block_owner *blockers; /* uthash: accounts with a non-empty block list (blocking.c) */
    struct pep *pep;             /* PEP and the XEP-0115 caps cache (pep.c, caps.c) */
    struct cluster *cluster;     /* cluster mode (broker/cluster/); NULL: single process */
    uint64_t lease_ids;          /* session lease ids given so far (session_lease_id) */
    uv_timer_t lease_timer;      /* armed for the next lease to end (pubsub_lease_next) */
    /* The REST bridge's apply of a write from the cluster log (rest_apply,
     * set by server.c: the cluster code does not link the REST code). */
    void (*rest_apply)(struct herald *h, struct http_conn *hc, const struct http_req *req,
                       const char *jid, uint8_t scopes);

    char rbuf[65536];            /* shared read buffer: reads are handled synchronously */
    bool shutting_down;
    int exit_code;
    struct herald_stats stats;
};

/* Runs the server until SIGTERM/SIGINT. Returns the process exit code. */
int herald_serve(struct config *cfg);

#endif
