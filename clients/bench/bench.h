/* bench.h — shared types of herald-bench, the load generator.
 *
 * One process, one libuv loop, one thread. `struct bench` holds the options,
 * the scenario's phase and every counter; `struct xclient` is one XMPP client
 * connection (xmpp.c) and `struct hconn` one HTTP/1.1 keep-alive connection
 * (http.c). A client speaks XMPP over TCP (RFC 6120) or over WebSocket
 * (RFC 7395; ws.c does the upgrade and the framing, xmpp.c the rest).
 * herald-bench.c drives the phases and prints the report; stats.c has the byte
 * buffer, the latency histogram and the /proc readers.
 *
 * Ownership: the bench owns every client and connection (arrays allocated in
 * main, freed at exit); a client owns its parser, its two output buffers and,
 * over WebSocket, its struct wsconn. */
#ifndef HERALD_BENCH_H
#define HERALD_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include <expat.h>
#include <uv.h>

/* ---- growable byte buffer (stats.c) ---- */

struct bbuf {
    char *data;
    size_t len, cap;
};

/* Each returns 0, or -1 when memory ran out (the buffer is unchanged). */
int bbuf_reserve(struct bbuf *b, size_t extra);
int bbuf_append(struct bbuf *b, const char *s, size_t n);
int bbuf_puts(struct bbuf *b, const char *s);
int bbuf_printf(struct bbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bbuf_free(struct bbuf *b);

/* ---- latency histogram in nanoseconds, about 1.6 % resolution (stats.c) ---- */

#define HIST_SUB 64
#define HIST_BUCKETS (64 * HIST_SUB)

struct hist {
    uint64_t count, max, sum;
    uint64_t b[HIST_BUCKETS];
};

void hist_add(struct hist *h, uint64_t ns);
/* The value below which a fraction p (0..1) of the samples lie; 0 when empty. */
uint64_t hist_pct(const struct hist *h, double p);

/* ---- process statistics (stats.c) ---- */

#define BENCH_MAX_PIDS 16  /* --server-pid list */
#define BENCH_MAX_PORTS 16 /* --sub-ports / --pub-ports lists */

struct procstat {
    int ok;        /* 0 when the process (any of the set) could not be read */
    double cpu_s;  /* user + system CPU seconds (/proc/PID/stat), summed over the set */
    long rss_kib;  /* VmRSS (/proc/PID/status), summed over the set */
    int n;         /* processes in the set (proc_sample_set) */
    double each_cpu_s[BENCH_MAX_PIDS]; /* per process, in the order of the set */
};

void proc_sample(int pid, struct procstat *out);
/* Samples n (<= BENCH_MAX_PIDS) processes and sums them; ok only if every one
 * was read. n == 0 leaves out zeroed and not ok. */
void proc_sample_set(const int *pids, int n, struct procstat *out);
double self_cpu_s(void);

/* ---- base64 (stats.c) ---- */

/* Writes the base64 of in[0..n) and a NUL into out (cap bytes); -1 if too small. */
int base64_encode(const unsigned char *in, size_t n, char *out, size_t cap);

/* ---- the bench ---- */

enum scenario { SC_FANOUT, SC_MANYNODES, SC_LATENCY, SC_IDLE, SC_HTTP, SC_REGISTER };

enum phase {
    PH_CONNECT,  /* log clients in */
    PH_CREATE,   /* owners create the nodes */
    PH_SUBSCRIBE,
    PH_PUBLISH,  /* XMPP publishes or HTTP POSTs */
    PH_DRAIN,    /* wait for the last notifications */
    PH_SETTLE,   /* idle: let the server settle before reading its RSS */
    PH_DONE
};

enum role { ROLE_IDLE, ROLE_PUB, ROLE_SUB };

enum transport {
    TR_TCP, /* XMPP on a TCP connection to the client port (RFC 6120) */
    TR_WS   /* XMPP over WebSocket (RFC 7395) on the HTTP port */
};

enum xstate {
    XS_NEW,
    XS_CONNECTING,
    XS_UPGRADE,   /* WebSocket: HTTP upgrade request sent, waiting for 101 */
    XS_FEATURES,  /* stream opened, waiting for the first features */
    XS_REGISTER,  /* in-band registration (XEP-0077) sent */
    XS_AUTH,      /* <auth mechanism='PLAIN'> sent */
    XS_FEATURES2, /* restarted stream, waiting for bind features */
    XS_BIND,
    XS_SESSION,
    XS_READY,
    XS_DEAD
};

struct bench;
struct wsconn; /* ws.c: the WebSocket side of a client */

struct xclient {
    struct bench *b;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    XML_Parser xp;
    struct bbuf out;   /* stanzas queued this loop turn */
    struct bbuf wbuf;  /* bytes handed to uv_write, until its callback */
    int writing, dirty, closed;
    int is_ready;      /* reached XS_READY once */
    int index;         /* 0-based; the account is users PREFIX(first_user + index) */
    int state;
    int role;
    int node;          /* subscriber: its node; publisher: its index among publishers */
    int port;          /* port it connects to: XMPP client port, or HTTP port (TR_WS) */
    const struct sockaddr_storage *addr; /* resolved address of that port */
    const char *host;  /* the address it connects to (--host or --sub-host): WebSocket Host */
    const char *domain; /* the domain it logs in to (--domain or --sub-domain) */
    int transport;     /* enum transport */
    struct wsconn *ws; /* TR_WS: framing state (ws.c), NULL over TCP */
    char jid[320];     /* full JID from bind */

    /* stanza splitter (xmpp.c) */
    struct bbuf pend;  /* partial top-level unit carried to the next read */
    size_t scan_pos;   /* where scanning resumes in pend */
    int sdepth;        /* element depth, 1 inside the stream */
    int in_tag, tag_kind;
    int in_msg;        /* inside a <message> stanza, looking for its end */
    char quote;

    /* expat state, per top-level stanza */
    int depth;
    int stanza;        /* enum in xmpp.c */
    int iq_type;       /* enum in xmpp.c */
    char iq_id[48];
    int in_error;      /* depth of <error/>, 0 if outside */
    char cond[48];     /* first error condition seen in the stanza */
    int collect;       /* collecting character data of the current element */
    char text[512];
    size_t text_len;
    int feat_plain, feat_bind, feat_session, feat_session_opt;
    int sub_pending;   /* subscription result said 'pending' */
    int restart;       /* <success/> seen: restart the stream after this feed */
    uint32_t sm_h;     /* XEP-0198: stanzas received since <enable/> (--sm) */
    int sm_on;

    /* publisher */
    uint64_t seq;          /* publishes sent */
    uint64_t acked;
    uint32_t outstanding;
    uint32_t rr;           /* round-robin position over its nodes */
    uint64_t *sent_ns;     /* ring of send times, 2 * window slots */
    uint16_t *sent_node;

    /* subscriber */
    uint64_t received;
};

struct hconn {
    struct bench *b;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    int index;
    int closed;
    int busy;          /* a request is outstanding */
    struct bbuf in;
    struct bbuf req;
    uint64_t seq;
    uint64_t sent_ns;
};

struct bench {
    uv_loop_t *loop;
    uv_prepare_t flush;
    uv_timer_t tick;

    /* options */
    const char *host;
    int port;
    const char *domain;
    const char *sub_host;   /* --sub-host: subscribers' server address; NULL: --host */
    const char *sub_domain; /* --sub-domain: subscribers' XMPP domain; NULL: --domain */
    const char *pubsub;
    const char *users;
    const char *password;
    int first_user;
    int scenario;
    int subscribers, publishers, nodes;
    uint64_t publishes;     /* 0: use duration */
    double duration;
    int window;
    int payload;
    int sessions;
    int server_pid;         /* the first of server_pids, 0 if none */
    int server_pids[BENCH_MAX_PIDS];
    int nserver_pids;
    int sub_transport;      /* --transport: subscribers, idle and register sessions */
    int pub_transport;      /* --pub-transport: publishers */
    const char *ws_path;    /* --ws-path: the WebSocket resource (default /xmpp-websocket) */
    int sub_ports[BENCH_MAX_PORTS];  /* --sub-ports; empty: --port (TR_WS: --http-port) */
    int nsub_ports;
    int pub_ports[BENCH_MAX_PORTS];  /* --pub-ports; empty: --port */
    int npub_ports;
    int json_only;
    int connect_window;
    double drain;
    double timeout;
    double settle;
    int do_register;
    int presence;
    unsigned sm_every;     /* > 0: XEP-0198 on every client, <a/> every N stanzas */
    const char *label;
    const char *node_prefix;
    int http_port;
    const char *token;
    int connections;
    int quiet;

    struct sockaddr_storage addr;
    struct sockaddr_storage http_addr;
    struct sockaddr_storage sub_addr;      /* --sub-host at --port */
    struct sockaddr_storage sub_http_addr; /* --sub-host at --http-port */
    struct sockaddr_storage sub_addrs[BENCH_MAX_PORTS];
    struct sockaddr_storage pub_addrs[BENCH_MAX_PORTS];

    /* clients */
    struct xclient *clients;
    int nclients;
    int next_connect;       /* next client to start */
    int logins_inflight;
    int ready, failed;
    struct xclient **dirtyq, **dirtyq2; /* clients with output this turn (two, swapped while flushing) */
    int ndirty;

    struct hconn *hconns;
    int nhconns;

    /* state */
    int phase;
    int error;              /* a fatal error ended the run */
    char errmsg[256];
    int pending;            /* creates/subscribes awaiting an answer */
    int next_create;        /* next node to create */
    int nodes_created, nodes_existed, subscribed, setup_errors;

    uint64_t pub_sent, pub_acked, pub_errors;
    uint64_t *node_acked;   /* acknowledged publishes per node */
    uint64_t *node_subs;    /* subscribers per node */
    uint64_t notif_received;
    uint64_t notif_expected;
    char first_error[160];

    struct hist lat;        /* publish -> notification */
    struct hist ack;        /* publish -> ack (or HTTP request -> response) */

    uint64_t t_start, t_connect_start, t_connect_end;
    uint64_t t_pub_start, t_pub_end, t_last_notif, t_drain_end;
    uint64_t t_progress;    /* last time something moved, for the watchdog */
    uint64_t t_report;      /* last progress line */
    uint64_t progress_mark; /* value of the progress counter at t_progress */
    uint64_t t_phase;

    struct procstat srv_start, srv_pub0, srv_pub1, srv_idle0, srv_idle1, srv_end;
    double self_cpu0, self_cpu_pub0, self_cpu_pub1;
};

/* xmpp.c */
int xclient_start(struct xclient *c);          /* connect; 0 or a libuv error */
/* Queues one whole stanza or nonza (over WebSocket: one text message);
 * xclient_sendv one made of n pieces. Written at the end of the loop turn. */
void xclient_send(struct xclient *c, const char *s, size_t n);
void xclient_sendv(struct xclient *c, const uv_buf_t *parts, int n);
void xclient_flush(struct xclient *c);
void xclient_close(struct xclient *c);
void xclient_free(struct xclient *c);
/* From ws.c: the upgrade succeeded; one complete text message; a failure. */
void xclient_ws_ready(struct xclient *c);
void xclient_ws_message(struct xclient *c, const char *s, size_t n);
void xclient_fail(struct xclient *c, const char *why);

/* ws.c: the client side of RFC 6455 for RFC 7395, framing by wslay.
 * ws_start allocates c->ws (freed by ws_free) and queues the HTTP upgrade
 * request on c->out; ws_send_message queues one masked text frame holding the
 * n pieces; ws_feed takes bytes read from the socket: first the 101 response
 * (checked: status, Upgrade, Sec-WebSocket-Accept, Sec-WebSocket-Protocol
 * xmpp), then frames, reassembled into messages for xclient_ws_message; pings
 * are answered, a close frame or a protocol error fails the client. */
int ws_start(struct xclient *c);               /* 0, or -1 (out of memory) */
int ws_send_message(struct xclient *c, const uv_buf_t *parts, int n); /* 0 or -1 */
void ws_feed(struct xclient *c, const char *data, size_t n);
void ws_free(struct xclient *c);

/* http.c */
int hconn_start(struct hconn *h);
int hconn_send(struct hconn *h);              /* writes h->req; 0 or a libuv error */
void hconn_close(struct hconn *h);
void hconn_free(struct hconn *h);

/* herald-bench.c: events from the clients */
void bench_client_ready(struct bench *b, struct xclient *c);
void bench_client_failed(struct bench *b, struct xclient *c, const char *why);
void bench_iq_answer(struct bench *b, struct xclient *c, const char *id, int ok, const char *cond);
void bench_notification(struct bench *b, struct xclient *c, uint64_t sent_ns, uint64_t now);
void bench_http_response(struct bench *b, struct hconn *h, int status, const char *body, size_t n);
void bench_http_failed(struct bench *b, struct hconn *h, const char *why);
void bench_mark_dirty(struct bench *b, struct xclient *c);
void bench_note_error(struct bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Current time for a received batch of bytes: set once per read callback. */
extern uint64_t bench_now_ns;

/* http.c: a header's value in the header lines [hdr, end) (name matched
 * without case; surrounding blanks and CR trimmed); its length, or -1 when
 * absent. Also used for the WebSocket upgrade's answer (ws.c). */
long bench_header_value(const char *hdr, const char *end, const char *name, const char **val);

#endif
