/* herald-bench.c — the load generator: options, the phases of a scenario, and
 * the report.
 *
 * A run goes through phases (enum phase in bench.h): log N XMPP clients in
 * (connect window bounded), create the nodes, subscribe, publish with a window
 * of outstanding publishes per publisher (or POST over HTTP), then drain the
 * last notifications, or for `idle`, let the server settle and read its RSS.
 * Every publish carries its send time (uv_hrtime, the bench's monotonic
 * clock) in the payload, so the subscriber side computes publish→notification
 * latency without any clock agreement with the server. Loss is counted per
 * subscriber: acknowledged publishes on its node minus notifications it got.
 *
 * The server's CPU time and RSS come from /proc/PID of --server-pid, sampled
 * at phase boundaries (a list of pids, e.g. the instances of a cluster, is
 * summed, and each one's CPU time reported too); the bench's own CPU time from
 * getrusage, so a reader can see it was not the bottleneck. --sub-ports and
 * --pub-ports spread the clients round-robin over several XMPP ports (the
 * instances of a cluster). --transport ws puts subscribers (and idle or
 * register sessions) on XMPP over WebSocket (RFC 7395) on the HTTP port,
 * --pub-transport ws the publishers; the scenarios and the counting are the
 * same. --sub-host and --sub-domain log the subscribers in to another server
 * and domain than the publishers (a federated server whose users subscribe to
 * --pubsub over s2s). One human summary goes to stdout (unless --json), then
 * one JSON line. */
#include "bench.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

uint64_t bench_now_ns;

static const char *scenario_names[] = {"fanout", "manynodes", "latency", "idle", "http", "register"};
static const char *phase_names[] = {"login", "create", "subscribe", "publish", "drain", "settle", "done"};
static const char *transport_names[] = {"tcp", "ws"};

static char pad[65536]; /* 'x' filler for payloads */

static void usage(FILE *f)
{
    fprintf(f,
"Usage: herald-bench --scenario NAME [OPTIONS]\n"
"\n"
"Load generator for XMPP publish/subscribe servers (Herald, Prosody, ejabberd)\n"
"and Herald's REST bridge. Connects XMPP clients in plaintext with SASL PLAIN\n"
"(no TLS: use it on loopback only), logs them in as PREFIX1..PREFIXn, and runs\n"
"one scenario. Prints a summary and one JSON line on standard output,\n"
"progress on standard error. Exits 1 if the run failed (a login, a publish, a node\n"
"creation or a subscription failed, a connection dropped, or nothing moved\n"
"for --timeout seconds), 2 on bad options.\n"
"\n"
"Scenarios (defaults in brackets):\n"
"  fanout     1 node, 1 publisher, 100 subscribers, 200-byte payloads [window 32]\n"
"  manynodes  100 nodes, 10 publishers, 1000 subscribers [window 16 each]\n"
"  latency    1 publisher, 1 subscriber, window 1\n"
"  idle       --sessions authenticated sessions, then the server's RSS growth\n"
"             per session after --settle seconds [2000 sessions]\n"
"  http       POST /v1/nodes/NODE/items on --connections keep-alive connections,\n"
"             one request outstanding each (Herald's REST bridge, --token);\n"
"             optional XMPP --subscribers count notifications [8 connections]\n"
"  register   in-band registration (XEP-0077) of --sessions accounts, then exit\n"
"\n"
"Connection:\n"
"  --host ADDR         server address (default 127.0.0.1)\n"
"  --port N            XMPP client port (default 5222)\n"
"  --domain NAME       XMPP domain (default localhost)\n"
"  --pubsub JID        pubsub service (default pubsub.DOMAIN)\n"
"  --sub-host ADDR     subscribers (idle, register: every session) connect to\n"
"                      this address instead of --host, at --port (--sub-ports,\n"
"                      --http-port with --transport ws)\n"
"  --sub-domain NAME   subscribers log in to this domain instead of --domain\n"
"                      (accounts PREFIXn@NAME); their subscriptions still go\n"
"                      to --pubsub, e.g. over federation (s2s) from another\n"
"                      server to the publishers' one\n"
"  --users PREFIX      accounts are PREFIX1, PREFIX2, ... (default bench)\n"
"  --first-user N      number of the first account (default 1)\n"
"  --password PW       password of every account (default bench)\n"
"  --register          register each account in-band before logging in\n"
"  --no-presence       do not send initial presence after login\n"
"  --sm N              XEP-0198 stream management on every client, which\n"
"                      acknowledges every N stanzas (and answers <r/>)\n"
"  --connect-window N  logins in progress at once (default 50)\n"
"  --sub-ports P1,P2,...\n"
"                      subscribers (idle, register: every session) connect to\n"
"                      these ports round-robin instead of --port (up to %d;\n"
"                      e.g. the instances of a cluster); with --transport ws\n"
"                      these are HTTP ports\n"
"  --pub-ports P1,P2,...\n"
"                      publishers connect to these ports round-robin (node\n"
"                      creation goes through each node's publisher); HTTP\n"
"                      ports with --pub-transport ws\n"
"  --transport tcp|ws  how subscribers (idle, register: every session) connect:\n"
"                      XMPP on TCP to --port (default), or XMPP over WebSocket\n"
"                      (RFC 7395, subprotocol xmpp, unencrypted ws://) to\n"
"                      --http-port at --ws-path\n"
"  --pub-transport tcp|ws\n"
"                      the same for publishers (default tcp)\n"
"  --ws-path PATH      WebSocket resource (default /xmpp-websocket)\n"
"\n"
"Load:\n"
"  --publishers N --subscribers N --nodes N\n"
"  --publishes N       total publishes (default 20000; 2000 for latency)\n"
"  --duration S        publish for S seconds instead of a count\n"
"  --window W          outstanding publishes per publisher (HTTP: per connection, 1)\n"
"  --payload BYTES     size of the item payload element (default 200)\n"
"  --sessions N        idle/register: number of sessions (default 2000)\n"
"  --settle S          idle: seconds to wait before reading RSS (default 3)\n"
"  --node-prefix P     node names are P0, P1, ... (default bench-<random>-)\n"
"  --http-port N       HTTP port for the http scenario and WebSocket (default 5280)\n"
"  --token T           bearer token for the http scenario (herald token create;\n"
"                      its JID must be the first account, PREFIX<first-user>)\n"
"  --connections K     HTTP keep-alive connections (default 8)\n"
"\n"
"Measurement and output:\n"
"  --server-pid PID[,PID...]\n"
"                      read the server's CPU time and RSS from /proc/PID; with\n"
"                      several pids (up to %d) their sum, and each one's CPU\n"
"                      time in the JSON line (server_cpu_s_publish_each)\n"
"  --label NAME        server name put in the report\n"
"  --drain S           after publishing, wait up to S seconds without progress\n"
"                      for missing notifications before counting them lost (default 5)\n"
"  --timeout S         fail when nothing moves for S seconds (default 60)\n"
"  --json              print only the JSON line on standard output\n"
"  --quiet             no progress on standard error\n"
"  -h, --help          this help\n"
"\n"
"Example:\n"
"  herald-bench --scenario fanout --port 5222 --users bench --password pw \\\n"
"               --server-pid $(pgrep -n herald) --duration 10\n",
            BENCH_MAX_PORTS, BENCH_MAX_PIDS);
}

/* ---- small helpers ---- */

static double secs(uint64_t ns)
{
    return (double)ns / 1e9;
}

static double rate(uint64_t n, uint64_t ns)
{
    return ns ? (double)n / secs(ns) : 0.0;
}

void bench_note_error(struct bench *b, const char *fmt, ...)
{
    if (b->first_error[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->first_error, sizeof b->first_error, fmt, ap);
    va_end(ap);
}

static void fatal(struct bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void progress(struct bench *b)
{
    b->t_progress = uv_hrtime();
}

void bench_mark_dirty(struct bench *b, struct xclient *c)
{
    if (c->dirty)
        return;
    c->dirty = 1;
    b->dirtyq[b->ndirty++] = c;
}

static void on_flush(uv_prepare_t *p)
{
    struct bench *b = p->data;
    /* Flushing can fail a client, and that can start the next phase, which
     * queues stanzas for others: walk a swapped-out copy of the queue and
     * repeat until nothing is left, so no bytes wait for the next poll. A
     * client is on at most one of the two queues (its dirty flag), so each
     * holds at most nclients entries. */
    while (b->ndirty > 0) {
        struct xclient **q = b->dirtyq;
        int n = b->ndirty;
        b->dirtyq = b->dirtyq2;
        b->dirtyq2 = q;
        b->ndirty = 0;
        for (int i = 0; i < n; i++)
            xclient_flush(q[i]);
    }
}

static void sample_server(struct bench *b, struct procstat *out)
{
    proc_sample_set(b->server_pids, b->nserver_pids, out);
}

static int more_to_publish(struct bench *b)
{
    if (b->publishes)
        return b->pub_sent < b->publishes;
    return secs(uv_hrtime() - b->t_pub_start) < b->duration;
}

static uint64_t outstanding(const struct bench *b)
{
    return b->pub_sent - b->pub_acked - b->pub_errors;
}

/* ---- phases ---- */

static void finish(struct bench *b);
static void start_create(struct bench *b);
static void start_subscribe(struct bench *b);
static void start_publish(struct bench *b);

static void set_phase(struct bench *b, int ph)
{
    b->phase = ph;
    b->t_phase = uv_hrtime();
    progress(b);
}

static void pump_connects(struct bench *b)
{
    while (b->phase == PH_CONNECT && b->next_connect < b->nclients &&
           b->logins_inflight < b->connect_window) {
        struct xclient *c = &b->clients[b->next_connect++];
        int rc = xclient_start(c);
        if (rc < 0) {
            b->failed++;
            bench_note_error(b, "connect client %d: %s", c->index, uv_strerror(rc));
            continue;
        }
        b->logins_inflight++;
    }
}

static void check_connect_done(struct bench *b)
{
    if (b->phase != PH_CONNECT || b->ready + b->failed < b->nclients)
        return;
    b->t_connect_end = uv_hrtime();
    sample_server(b, &b->srv_idle0);
    if (b->failed > 0) {
        fatal(b, "%d of %d logins failed (first: %s)", b->failed, b->nclients, b->first_error);
        return;
    }
    switch (b->scenario) {
    case SC_REGISTER:
        finish(b);
        break;
    case SC_IDLE:
        set_phase(b, PH_SETTLE);
        break;
    default:
        start_create(b);
        break;
    }
}

void bench_client_ready(struct bench *b, struct xclient *c)
{
    c->is_ready = 1;
    b->logins_inflight--;
    b->ready++;
    progress(b);
    if (b->scenario == SC_REGISTER)
        xclient_close(c);
    pump_connects(b);
    check_connect_done(b);
}

void bench_client_failed(struct bench *b, struct xclient *c, const char *why)
{
    progress(b);
    if (!c->is_ready) {
        b->logins_inflight--;
        b->failed++;
        bench_note_error(b, "client %d (%s%d): %s", c->index, b->users, b->first_user + c->index, why);
        xclient_close(c);
        pump_connects(b);
        check_connect_done(b);
        return;
    }
    xclient_close(c);
    if (b->phase != PH_DONE && b->scenario != SC_REGISTER)
        fatal(b, "client %d (%s%d) lost its session in phase %s: %s", c->index, b->users,
              b->first_user + c->index, phase_names[b->phase], why);
}

static struct xclient *node_owner(struct bench *b, int node)
{
    if (b->scenario == SC_HTTP)
        return &b->clients[0];
    return &b->clients[node % b->publishers];
}

/* Nodes are created one at a time: creation is not measured, and ejabberd's
 * Mnesia aborts concurrent creations with internal-server-error (a lock
 * cycle on its pubsub_index table). */
static void send_create(struct bench *b)
{
    char msg[512];
    int n = b->next_create++;
    int len = snprintf(msg, sizeof msg,
                       "<iq type='set' to='%s' id='c%d'><pubsub xmlns='http://jabber.org/protocol/pubsub'>"
                       "<create node='%s%d'/></pubsub></iq>",
                       b->pubsub, n, b->node_prefix, n);
    if (len < 0 || (size_t)len >= sizeof msg) {
        fatal(b, "node name too long");
        return;
    }
    xclient_send(node_owner(b, n), msg, (size_t)len);
    b->pending++;
}

static void start_create(struct bench *b)
{
    set_phase(b, PH_CREATE);
    b->next_create = 0;
    send_create(b);
}

static void start_subscribe(struct bench *b)
{
    set_phase(b, PH_SUBSCRIBE);
    char msg[1024];
    for (int i = 0; i < b->nclients; i++) {
        struct xclient *c = &b->clients[i];
        if (c->role != ROLE_SUB)
            continue;
        int len = snprintf(msg, sizeof msg,
                           "<iq type='set' to='%s' id='s%d'><pubsub xmlns='http://jabber.org/protocol/pubsub'>"
                           "<subscribe node='%s%d' jid='%s'/></pubsub></iq>",
                           b->pubsub, i, b->node_prefix, c->node, c->jid);
        if (len < 0 || (size_t)len >= sizeof msg) {
            fatal(b, "subscribe stanza too long");
            return;
        }
        xclient_send(c, msg, (size_t)len);
        b->node_subs[c->node]++;
        b->pending++;
    }
    if (b->pending == 0)
        start_publish(b);
}

static void send_publish(struct bench *b, struct xclient *c)
{
    int p = c->node;
    int owned = (b->nodes - p + b->publishers - 1) / b->publishers;
    int node = p + (int)(c->rr++ % (uint32_t)owned) * b->publishers;
    uint64_t seq = ++c->seq;
    uint64_t now = uv_hrtime();
    unsigned slot = (unsigned)(seq % (2u * (unsigned)b->window));
    c->sent_ns[slot] = now;
    c->sent_node[slot] = (uint16_t)node;

    char head[512], body[256];
    int hl = snprintf(head, sizeof head,
                      "<iq type='set' to='%s' id='p%llu'><pubsub xmlns='http://jabber.org/protocol/pubsub'>"
                      "<publish node='%s%d'><item id='%d-%llu'>",
                      b->pubsub, (unsigned long long)seq, b->node_prefix, node, p, (unsigned long long)seq);
    int bl = snprintf(body, sizeof body, "<bench xmlns='urn:herald:bench' p='%d' s='%llu' t='%llu'>", p,
                      (unsigned long long)seq, (unsigned long long)now);
    if (hl < 0 || (size_t)hl >= sizeof head || bl < 0 || (size_t)bl >= sizeof body) {
        fatal(b, "publish stanza too long");
        return;
    }
    static const char tail[] = "</bench></item></publish></pubsub></iq>";
    long padn = (long)b->payload - bl - 8; /* 8 = strlen("</bench>") */
    if (padn < 0)
        padn = 0;
    uv_buf_t parts[4] = {uv_buf_init(head, (unsigned)hl), uv_buf_init(body, (unsigned)bl),
                         uv_buf_init(pad, (unsigned)padn), uv_buf_init((char *)tail, sizeof tail - 1)};
    xclient_sendv(c, parts, 4);
    c->outstanding++;
    b->pub_sent++;
}

static void publisher_fill(struct bench *b, struct xclient *c)
{
    while (b->phase == PH_PUBLISH && !c->closed && c->outstanding < (uint32_t)b->window && more_to_publish(b))
        send_publish(b, c);
}

static void http_next(struct bench *b, struct hconn *h)
{
    if (b->phase != PH_PUBLISH || h->closed || h->busy || !more_to_publish(b))
        return;
    uint64_t seq = ++h->seq;
    char body[256];
    int bl = snprintf(body, sizeof body, "{\"p\":%d,\"s\":%llu,\"t\":%llu,\"pad\":\"", h->index,
                      (unsigned long long)seq, (unsigned long long)uv_hrtime());
    if (bl < 0 || (size_t)bl >= sizeof body) {
        fatal(b, "HTTP body too long");
        return;
    }
    long padn = (long)b->payload - bl - 2;
    if (padn < 0)
        padn = 0;
    h->req.len = 0;
    if (bbuf_printf(&h->req,
                    "POST /v1/nodes/%s0/items HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n"
                    "Content-Type: application/json\r\nContent-Length: %ld\r\n\r\n%s",
                    b->node_prefix, b->host, b->http_port, b->token, (long)bl + padn + 2, body) != 0 ||
        bbuf_append(&h->req, pad, (size_t)padn) != 0 || bbuf_append(&h->req, "\"}", 2) != 0) {
        fatal(b, "out of memory");
        return;
    }
    int rc = hconn_send(h);
    if (rc < 0) {
        bench_http_failed(b, h, uv_strerror(rc));
        return;
    }
    b->pub_sent++;
}

static void start_drain(struct bench *b)
{
    b->t_pub_end = uv_hrtime();
    sample_server(b, &b->srv_pub1);
    b->self_cpu_pub1 = self_cpu_s();
    set_phase(b, PH_DRAIN);
    if (b->notif_received >= b->notif_expected)
        finish(b);
}

static void check_publish_done(struct bench *b)
{
    if (b->phase == PH_PUBLISH && !more_to_publish(b) && outstanding(b) == 0)
        start_drain(b);
}

static void start_publish(struct bench *b)
{
    set_phase(b, PH_PUBLISH);
    sample_server(b, &b->srv_pub0);
    b->self_cpu_pub0 = self_cpu_s();
    b->t_pub_start = uv_hrtime();
    if (b->scenario == SC_HTTP) {
        for (int i = 0; i < b->nhconns; i++) {
            int rc = hconn_start(&b->hconns[i]);
            if (rc < 0) {
                fatal(b, "HTTP connect: %s", uv_strerror(rc));
                return;
            }
        }
        return;
    }
    for (int i = 0; i < b->nclients; i++)
        if (b->clients[i].role == ROLE_PUB)
            publisher_fill(b, &b->clients[i]);
}

void bench_iq_answer(struct bench *b, struct xclient *c, const char *id, int ok, const char *cond)
{
    progress(b);
    switch (id[0]) {
    case 'c':
        if (b->phase != PH_CREATE)
            return;
        if (ok)
            b->nodes_created++;
        else if (strcmp(cond, "conflict") == 0)
            b->nodes_existed++;
        else {
            b->setup_errors++;
            bench_note_error(b, "create node %s%s: %s", b->node_prefix, id + 1, cond);
        }
        if (--b->pending == 0) {
            if (b->next_create < b->nodes)
                send_create(b);
            else if (b->setup_errors)
                fatal(b, "%d node creations failed (first: %s)", b->setup_errors, b->first_error);
            else
                start_subscribe(b);
        }
        return;
    case 's':
        if (b->phase != PH_SUBSCRIBE)
            return;
        if (ok)
            b->subscribed++;
        else {
            b->setup_errors++;
            bench_note_error(b, "subscribe client %d to %s%d: %s", c->index, b->node_prefix, c->node, cond);
        }
        if (--b->pending == 0) {
            if (b->setup_errors)
                fatal(b, "%d subscriptions failed (first: %s)", b->setup_errors, b->first_error);
            else
                start_publish(b);
        }
        return;
    case 'p': {
        uint64_t seq = strtoull(id + 1, NULL, 10);
        unsigned slot = (unsigned)(seq % (2u * (unsigned)b->window));
        if (c->outstanding == 0)
            return;
        c->outstanding--;
        if (ok) {
            int node = c->sent_node[slot];
            c->acked++;
            b->pub_acked++;
            b->node_acked[node]++;
            b->notif_expected += b->node_subs[node];
            hist_add(&b->ack, bench_now_ns - c->sent_ns[slot]);
        } else {
            b->pub_errors++;
            bench_note_error(b, "publish by client %d: %s", c->index, cond);
        }
        publisher_fill(b, c);
        check_publish_done(b);
        return;
    }
    default:
        return;
    }
}

void bench_notification(struct bench *b, struct xclient *c, uint64_t sent_ns, uint64_t now)
{
    c->received++;
    b->notif_received++;
    b->t_last_notif = now;
    b->t_progress = now;
    if (now > sent_ns && sent_ns > b->t_start)
        hist_add(&b->lat, now - sent_ns);
    if (b->phase == PH_DRAIN && b->notif_received >= b->notif_expected)
        finish(b);
}

void bench_http_response(struct bench *b, struct hconn *h, int status, const char *body, size_t n)
{
    progress(b);
    if (status != 0) {
        uint64_t now = uv_hrtime();
        if (status == 201) {
            b->pub_acked++;
            b->node_acked[0]++;
            b->notif_expected += b->node_subs[0];
            hist_add(&b->ack, now - h->sent_ns);
        } else {
            b->pub_errors++;
            int show = n > 120 ? 120 : (int)n;
            bench_note_error(b, "HTTP %d: %.*s", status, show, body ? body : "");
        }
    }
    http_next(b, h);
    check_publish_done(b);
}

void bench_http_failed(struct bench *b, struct hconn *h, const char *why)
{
    hconn_close(h);
    if (b->phase != PH_DONE)
        fatal(b, "HTTP connection %d: %s", h->index, why);
}

/* ---- ticks: progress lines, the watchdog, time-based phase ends ---- */

static void on_tick(uv_timer_t *t)
{
    struct bench *b = t->data;
    uint64_t now = uv_hrtime();

    if (b->phase == PH_PUBLISH) {
        if (b->scenario == SC_HTTP) {
            for (int i = 0; i < b->nhconns; i++)
                http_next(b, &b->hconns[i]);
        }
        check_publish_done(b);
    }
    if (b->phase == PH_DRAIN && secs(now - b->t_progress) >= b->drain) {
        finish(b);
        return;
    }
    if (b->phase == PH_SETTLE && secs(now - b->t_phase) >= b->settle) {
        finish(b);
        return;
    }
    if (b->phase == PH_DONE)
        return;
    if (b->phase != PH_DRAIN && b->phase != PH_SETTLE && secs(now - b->t_progress) >= b->timeout) {
        fatal(b, "nothing happened for %.0f s in phase %s (logged in %d/%d, publishes %llu/%llu acked, "
                 "notifications %llu/%llu)",
              b->timeout, phase_names[b->phase], b->ready, b->nclients, (unsigned long long)b->pub_acked,
              (unsigned long long)b->pub_sent, (unsigned long long)b->notif_received,
              (unsigned long long)b->notif_expected);
        return;
    }
    if (!b->quiet && secs(now - b->t_report) >= 1.0) {
        b->t_report = now;
        switch (b->phase) {
        case PH_CONNECT:
            fprintf(stderr, "herald-bench: logged in %d/%d\n", b->ready, b->nclients);
            break;
        case PH_PUBLISH:
            fprintf(stderr, "herald-bench: published %llu (%.0f/s), notifications %llu/%llu\n",
                    (unsigned long long)b->pub_acked, rate(b->pub_acked, now - b->t_pub_start),
                    (unsigned long long)b->notif_received, (unsigned long long)b->notif_expected);
            break;
        default:
            fprintf(stderr, "herald-bench: %s\n", phase_names[b->phase]);
            break;
        }
    }
}

/* ---- the report ---- */

static void hist_json(struct bbuf *o, const char *name, const struct hist *h)
{
    bbuf_printf(o, "\"%s\":{\"count\":%llu,\"p50\":%.1f,\"p95\":%.1f,\"p99\":%.1f,\"max\":%.1f,\"mean\":%.1f}", name,
                (unsigned long long)h->count, hist_pct(h, 0.50) / 1e3, hist_pct(h, 0.95) / 1e3,
                hist_pct(h, 0.99) / 1e3, h->max / 1e3, h->count ? (double)h->sum / (double)h->count / 1e3 : 0.0);
}

static void json_str(struct bbuf *o, const char *s)
{
    bbuf_puts(o, "\"");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            bbuf_printf(o, "\\%c", ch);
        else if (ch < 0x20)
            bbuf_printf(o, "\\u%04x", ch);
        else
            bbuf_append(o, (const char *)&ch, 1);
    }
    bbuf_puts(o, "\"");
}

static void int_array_json(struct bbuf *o, const char *name, const int *v, int n)
{
    bbuf_printf(o, ",\"%s\":[", name);
    for (int i = 0; i < n; i++)
        bbuf_printf(o, "%s%d", i ? "," : "", v[i]);
    bbuf_puts(o, "]");
}

static void report(struct bench *b)
{
    uint64_t lost = 0, dup = 0;
    for (int i = 0; i < b->nclients; i++) {
        struct xclient *c = &b->clients[i];
        if (c->role != ROLE_SUB)
            continue;
        uint64_t want = b->node_acked[c->node];
        if (c->received < want)
            lost += want - c->received;
        else
            dup += c->received - want;
    }
    int pubsub = b->scenario == SC_FANOUT || b->scenario == SC_MANYNODES || b->scenario == SC_LATENCY ||
                 b->scenario == SC_HTTP;
    uint64_t login_ns = b->t_connect_end > b->t_connect_start ? b->t_connect_end - b->t_connect_start : 0;
    uint64_t pub_ns = b->t_pub_end > b->t_pub_start ? b->t_pub_end - b->t_pub_start : 0;
    uint64_t notif_end = b->t_last_notif > b->t_pub_end ? b->t_last_notif : b->t_pub_end;
    uint64_t notif_ns = notif_end > b->t_pub_start ? notif_end - b->t_pub_start : 0;
    double srv_login_cpu = b->srv_idle0.ok && b->srv_start.ok ? b->srv_idle0.cpu_s - b->srv_start.cpu_s : NAN;
    double srv_pub_cpu = b->srv_end.ok && b->srv_pub0.ok ? b->srv_end.cpu_s - b->srv_pub0.cpu_s : NAN;
    double self_pub_cpu = b->self_cpu_pub1 - b->self_cpu_pub0;
    double self_total = self_cpu_s();
    double rss_per_session =
        b->scenario == SC_IDLE && b->srv_end.ok && b->srv_start.ok && b->ready > 0
            ? (double)(b->srv_end.rss_kib - b->srv_start.rss_kib) / (double)b->ready
            : NAN;
    double pubs_per_s = rate(b->pub_acked, pub_ns);
    double notifs_per_s = rate(b->notif_received, notif_ns);

    if (!b->json_only) {
        printf("herald-bench %s against %s (%s:%d)%s\n", scenario_names[b->scenario], b->label, b->host, b->port,
               b->error ? "  ** FAILED **" : "");
        if (b->error)
            printf("  error: %s\n", b->errmsg);
        if (b->npub_ports > 0 || b->nsub_ports > 0) {
            printf("  ports: publishers");
            for (int i = 0; i < (b->npub_ports ? b->npub_ports : 1); i++)
                printf("%c%d", i ? ',' : ' ', b->npub_ports ? b->pub_ports[i] : b->port);
            printf(", subscribers");
            for (int i = 0; i < (b->nsub_ports ? b->nsub_ports : 1); i++)
                printf("%c%d", i ? ',' : ' ', b->nsub_ports ? b->sub_ports[i] : b->port);
            printf(" (round-robin)\n");
        }
        if (b->sub_host || b->sub_domain)
            printf("  subscribers: on %s, domain %s (publishers: %s, domain %s; pubsub %s)\n",
                   b->sub_host ? b->sub_host : b->host, b->sub_domain ? b->sub_domain : b->domain, b->host,
                   b->domain, b->pubsub);
        if (b->sub_transport != TR_TCP || b->pub_transport != TR_TCP)
            printf("  transport: publishers %s, subscribers %s (WebSocket on HTTP port, %s)\n",
                   transport_names[b->pub_transport], transport_names[b->sub_transport], b->ws_path);
        printf("  sessions: %d logged in, %d failed, %.2f s, %.0f sessions/s", b->ready, b->failed, secs(login_ns),
               rate((uint64_t)b->ready, login_ns));
        if (!isnan(srv_login_cpu))
            printf(", server %.2f CPU-s (%.0f sessions per CPU-s)", srv_login_cpu,
                   srv_login_cpu > 0 ? b->ready / srv_login_cpu : 0.0);
        printf("\n");
        if (pubsub) {
            printf("  nodes %d, publishers %d, subscribers %d, window %d, payload %d bytes\n", b->nodes,
                   b->scenario == SC_HTTP ? b->nhconns : b->publishers, b->subscribers, b->window, b->payload);
            printf("  publishes: %llu acknowledged, %llu errors, %.2f s, %.0f/s\n", (unsigned long long)b->pub_acked,
                   (unsigned long long)b->pub_errors, secs(pub_ns), pubs_per_s);
            printf("  %s latency us: p50 %.0f  p95 %.0f  p99 %.0f  max %.0f\n",
                   b->scenario == SC_HTTP ? "request" : "ack", hist_pct(&b->ack, .5) / 1e3,
                   hist_pct(&b->ack, .95) / 1e3, hist_pct(&b->ack, .99) / 1e3, b->ack.max / 1e3);
            if (b->subscribers > 0) {
                printf("  notifications: %llu received of %llu expected, %llu lost, %llu extra, %.0f/s\n",
                       (unsigned long long)b->notif_received, (unsigned long long)b->notif_expected,
                       (unsigned long long)lost, (unsigned long long)dup, notifs_per_s);
                printf("  publish->notification latency us: p50 %.0f  p95 %.0f  p99 %.0f  max %.0f\n",
                       hist_pct(&b->lat, .5) / 1e3, hist_pct(&b->lat, .95) / 1e3, hist_pct(&b->lat, .99) / 1e3,
                       b->lat.max / 1e3);
            }
            if (!isnan(srv_pub_cpu))
                printf("  server: %.2f CPU-s while publishing: %.0f publishes and %.0f notifications per CPU-s\n",
                       srv_pub_cpu, srv_pub_cpu > 0 ? b->pub_acked / srv_pub_cpu : 0.0,
                       srv_pub_cpu > 0 ? b->notif_received / srv_pub_cpu : 0.0);
            if (!isnan(srv_pub_cpu) && b->nserver_pids > 1) {
                printf("  server CPU-s while publishing, per pid:");
                for (int i = 0; i < b->nserver_pids; i++)
                    printf(" %d: %.2f", b->server_pids[i], b->srv_end.each_cpu_s[i] - b->srv_pub0.each_cpu_s[i]);
                printf("\n");
            }
        }
        if (b->srv_end.ok)
            printf("  server RSS: %ld KiB at start, %ld KiB at end\n", b->srv_start.rss_kib, b->srv_end.rss_kib);
        if (!isnan(rss_per_session))
            printf("  idle sessions: %.1f KiB of server RSS per session\n", rss_per_session);
        printf("  bench: %.2f CPU-s in total", self_total);
        if (pub_ns)
            printf(", %.0f %% of one core while publishing", 100.0 * self_pub_cpu / secs(pub_ns));
        printf("\n");
        if (b->first_error[0] && !b->error)
            printf("  first error: %s\n", b->first_error);
    }

    struct bbuf o = {0};
    bbuf_printf(&o, "{\"bench\":\"herald-bench\",\"scenario\":\"%s\",\"server\":", scenario_names[b->scenario]);
    json_str(&o, b->label);
    bbuf_printf(&o, ",\"transport\":\"%s\",\"pub_transport\":\"%s\"", transport_names[b->sub_transport],
                transport_names[b->pub_transport]);
    if (b->sub_host) {
        bbuf_puts(&o, ",\"sub_host\":");
        json_str(&o, b->sub_host);
    }
    if (b->sub_domain) {
        bbuf_puts(&o, ",\"sub_domain\":");
        json_str(&o, b->sub_domain);
    }
    bbuf_printf(&o, ",\"ok\":%s,\"error\":", b->error ? "false" : "true");
    json_str(&o, b->error ? b->errmsg : b->first_error);
    bbuf_printf(&o,
                ",\"clients\":%d,\"publishers\":%d,\"subscribers\":%d,\"nodes\":%d,\"window\":%d,\"payload\":%d"
                ",\"sessions\":%d,\"login_failed\":%d,\"login_s\":%.3f,\"sessions_per_s\":%.1f",
                b->nclients, b->scenario == SC_HTTP ? b->nhconns : b->publishers, b->subscribers, b->nodes, b->window,
                b->payload, b->ready, b->failed, secs(login_ns), rate((uint64_t)b->ready, login_ns));
    bbuf_printf(&o,
                ",\"publishes\":%llu,\"publish_errors\":%llu,\"publish_s\":%.3f,\"publishes_per_s\":%.1f"
                ",\"notifications_expected\":%llu,\"notifications\":%llu,\"lost\":%llu,\"extra\":%llu"
                ",\"notifications_per_s\":%.1f,",
                (unsigned long long)b->pub_acked, (unsigned long long)b->pub_errors, secs(pub_ns), pubs_per_s,
                (unsigned long long)b->notif_expected, (unsigned long long)b->notif_received,
                (unsigned long long)lost, (unsigned long long)dup, notifs_per_s);
    hist_json(&o, "latency_us", &b->lat);
    bbuf_puts(&o, ",");
    hist_json(&o, "ack_latency_us", &b->ack);
    bbuf_printf(&o, ",\"server_pid\":%d", b->server_pid);
    if (b->nserver_pids > 1)
        int_array_json(&o, "server_pids", b->server_pids, b->nserver_pids);
    if (b->nsub_ports > 0)
        int_array_json(&o, "sub_ports", b->sub_ports, b->nsub_ports);
    if (b->npub_ports > 0)
        int_array_json(&o, "pub_ports", b->pub_ports, b->npub_ports);
    if (b->srv_end.ok) {
        bbuf_printf(&o, ",\"server_rss_kib_start\":%ld,\"server_rss_kib_end\":%ld", b->srv_start.rss_kib,
                    b->srv_end.rss_kib);
        if (!isnan(srv_login_cpu))
            bbuf_printf(&o, ",\"server_cpu_s_login\":%.3f", srv_login_cpu);
        if (!isnan(srv_pub_cpu) && pubsub) {
            bbuf_printf(&o,
                        ",\"server_cpu_s_publish\":%.3f,\"publishes_per_server_cpu_s\":%.1f"
                        ",\"notifications_per_server_cpu_s\":%.1f",
                        srv_pub_cpu, srv_pub_cpu > 0 ? b->pub_acked / srv_pub_cpu : 0.0,
                        srv_pub_cpu > 0 ? b->notif_received / srv_pub_cpu : 0.0);
            if (b->nserver_pids > 1) {
                bbuf_puts(&o, ",\"server_cpu_s_publish_each\":[");
                for (int i = 0; i < b->nserver_pids; i++)
                    bbuf_printf(&o, "%s%.3f", i ? "," : "", b->srv_end.each_cpu_s[i] - b->srv_pub0.each_cpu_s[i]);
                bbuf_puts(&o, "]");
            }
        }
        if (!isnan(rss_per_session))
            bbuf_printf(&o, ",\"rss_kib_per_session\":%.2f", rss_per_session);
    }
    bbuf_printf(&o, ",\"bench_cpu_s\":%.3f,\"bench_cpu_s_publish\":%.3f}\n", self_total,
                pub_ns ? self_pub_cpu : 0.0);
    if (o.data)
        fputs(o.data, stdout);
    fflush(stdout);
    bbuf_free(&o);
}

static void close_all(struct bench *b)
{
    for (int i = 0; i < b->nclients; i++)
        xclient_close(&b->clients[i]);
    for (int i = 0; i < b->nhconns; i++)
        hconn_close(&b->hconns[i]);
    if (!uv_is_closing((uv_handle_t *)&b->tick))
        uv_close((uv_handle_t *)&b->tick, NULL);
    if (!uv_is_closing((uv_handle_t *)&b->flush))
        uv_close((uv_handle_t *)&b->flush, NULL);
}

static void finish(struct bench *b)
{
    if (b->phase == PH_DONE)
        return;
    b->t_drain_end = uv_hrtime();
    sample_server(b, &b->srv_end);
    b->phase = PH_DONE;
    if (!b->error && b->pub_errors > 0) {
        /* A benchmark whose publishes were refused measured something else. */
        b->error = 1;
        snprintf(b->errmsg, sizeof b->errmsg, "%llu publishes failed (first: %s)",
                 (unsigned long long)b->pub_errors, b->first_error);
        fprintf(stderr, "herald-bench: %s\n", b->errmsg);
    }
    report(b);
    close_all(b);
}

static void fatal(struct bench *b, const char *fmt, ...)
{
    if (b->phase == PH_DONE)
        return;
    b->error = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->errmsg, sizeof b->errmsg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "herald-bench: %s\n", b->errmsg);
    finish(b);
}

/* ---- options ---- */

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

/* A comma-separated list of 1..max integers in [lo, hi]: 0, or -1. */
static int parse_int_list(const char *s, long lo, long hi, int *out, int max, int *n)
{
    char buf[512];
    if (strlen(s) >= sizeof buf)
        return -1;
    memcpy(buf, s, strlen(s) + 1);
    int k = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long v;
        if (k >= max || parse_int(tok, lo, hi, &v) != 0)
            return -1;
        out[k++] = (int)v;
    }
    if (k == 0)
        return -1;
    *n = k;
    return 0;
}

static int safe_name(const char *s)
{
    if (!*s || strlen(s) > 64)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
            return 0;
    return 1;
}

static int safe_xml(const char *s)
{
    for (; *s; s++)
        if (*s == '<' || *s == '>' || *s == '&' || *s == '\'' || *s == '"' || (unsigned char)*s < 0x20)
            return 0;
    return 1;
}

static int resolve(const char *host, int port, struct sockaddr_storage *out)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc != 0 || !res)
        return -1;
    memcpy(out, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

enum {
    O_HOST = 256, O_PORT, O_DOMAIN, O_PUBSUB, O_USERS, O_FIRST, O_PASSWORD, O_SCENARIO, O_SUBS, O_PUBS, O_NODES,
    O_PUBLISHES, O_DURATION, O_WINDOW, O_PAYLOAD, O_SESSIONS, O_PID, O_JSON, O_CWIN, O_DRAIN, O_TIMEOUT, O_SETTLE,
    O_REGISTER, O_NOPRES, O_LABEL, O_PREFIX, O_HTTPPORT, O_TOKEN, O_CONNS, O_QUIET, O_SM, O_SUBPORTS, O_PUBPORTS,
    O_TRANSPORT, O_PUBTRANSPORT, O_WSPATH, O_SUBHOST, O_SUBDOMAIN
};

static int parse_options(struct bench *b, int argc, char **argv)
{
    static const struct option opts[] = {
        {"host", required_argument, NULL, O_HOST},        {"port", required_argument, NULL, O_PORT},
        {"domain", required_argument, NULL, O_DOMAIN},    {"pubsub", required_argument, NULL, O_PUBSUB},
        {"users", required_argument, NULL, O_USERS},      {"first-user", required_argument, NULL, O_FIRST},
        {"password", required_argument, NULL, O_PASSWORD}, {"scenario", required_argument, NULL, O_SCENARIO},
        {"subscribers", required_argument, NULL, O_SUBS}, {"publishers", required_argument, NULL, O_PUBS},
        {"nodes", required_argument, NULL, O_NODES},      {"publishes", required_argument, NULL, O_PUBLISHES},
        {"duration", required_argument, NULL, O_DURATION}, {"window", required_argument, NULL, O_WINDOW},
        {"payload", required_argument, NULL, O_PAYLOAD},  {"sessions", required_argument, NULL, O_SESSIONS},
        {"server-pid", required_argument, NULL, O_PID},   {"json", no_argument, NULL, O_JSON},
        {"connect-window", required_argument, NULL, O_CWIN}, {"drain", required_argument, NULL, O_DRAIN},
        {"timeout", required_argument, NULL, O_TIMEOUT},  {"settle", required_argument, NULL, O_SETTLE},
        {"register", no_argument, NULL, O_REGISTER},      {"no-presence", no_argument, NULL, O_NOPRES},
        {"label", required_argument, NULL, O_LABEL},      {"node-prefix", required_argument, NULL, O_PREFIX},
        {"http-port", required_argument, NULL, O_HTTPPORT}, {"token", required_argument, NULL, O_TOKEN},
        {"connections", required_argument, NULL, O_CONNS}, {"quiet", no_argument, NULL, O_QUIET},
        {"sm", required_argument, NULL, O_SM},
        {"sub-ports", required_argument, NULL, O_SUBPORTS}, {"pub-ports", required_argument, NULL, O_PUBPORTS},
        {"transport", required_argument, NULL, O_TRANSPORT}, {"pub-transport", required_argument, NULL, O_PUBTRANSPORT},
        {"ws-path", required_argument, NULL, O_WSPATH},
        {"sub-host", required_argument, NULL, O_SUBHOST}, {"sub-domain", required_argument, NULL, O_SUBDOMAIN},
        {"help", no_argument, NULL, 'h'},                 {NULL, 0, NULL, 0}};
    long subs = -1, pubs = -1, nodes = -1, window = -1, payload = 200, sessions = 2000, conns = 8, v;
    long long publishes = -1;
    double d;
    int opt;
    b->host = "127.0.0.1";
    b->port = 5222;
    b->domain = "localhost";
    b->users = "bench";
    b->password = "bench";
    b->first_user = 1;
    b->scenario = -1;
    b->connect_window = 50;
    b->drain = 5;
    b->timeout = 60;
    b->settle = 3;
    b->presence = 1;
    b->label = "server";
    b->http_port = 5280;
    b->ws_path = "/xmpp-websocket";

    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            usage(stdout);
            exit(0);
        case O_HOST: b->host = optarg; break;
        case O_PORT:
            if (parse_int(optarg, 1, 65535, &v)) goto bad;
            b->port = (int)v;
            break;
        case O_HTTPPORT:
            if (parse_int(optarg, 1, 65535, &v)) goto bad;
            b->http_port = (int)v;
            break;
        case O_DOMAIN: b->domain = optarg; break;
        case O_SUBHOST: b->sub_host = optarg; break;
        case O_SUBDOMAIN: b->sub_domain = optarg; break;
        case O_PUBSUB: b->pubsub = optarg; break;
        case O_USERS: b->users = optarg; break;
        case O_FIRST:
            if (parse_int(optarg, 0, 100000000, &v)) goto bad;
            b->first_user = (int)v;
            break;
        case O_PASSWORD: b->password = optarg; break;
        case O_SCENARIO:
            for (int i = 0; i < (int)(sizeof scenario_names / sizeof *scenario_names); i++)
                if (strcmp(optarg, scenario_names[i]) == 0)
                    b->scenario = i;
            if (b->scenario < 0) goto bad;
            break;
        case O_SUBS: if (parse_int(optarg, 0, 1000000, &subs)) goto bad; break;
        case O_PUBS: if (parse_int(optarg, 1, 100000, &pubs)) goto bad; break;
        case O_NODES: if (parse_int(optarg, 1, 65535, &nodes)) goto bad; break;
        case O_PUBLISHES:
            if (parse_int(optarg, 1, 2000000000, &v)) goto bad;
            publishes = v;
            break;
        case O_DURATION:
            if (parse_double(optarg, 0.1, 86400, &d)) goto bad;
            b->duration = d;
            break;
        case O_WINDOW: if (parse_int(optarg, 1, 30000, &window)) goto bad; break;
        case O_PAYLOAD: if (parse_int(optarg, 0, 60000, &payload)) goto bad; break;
        case O_SESSIONS: if (parse_int(optarg, 1, 1000000, &sessions)) goto bad; break;
        case O_PID:
            if (parse_int_list(optarg, 1, 1L << 30, b->server_pids, BENCH_MAX_PIDS, &b->nserver_pids)) goto bad;
            b->server_pid = b->server_pids[0];
            break;
        case O_SUBPORTS:
            if (parse_int_list(optarg, 1, 65535, b->sub_ports, BENCH_MAX_PORTS, &b->nsub_ports)) goto bad;
            break;
        case O_PUBPORTS:
            if (parse_int_list(optarg, 1, 65535, b->pub_ports, BENCH_MAX_PORTS, &b->npub_ports)) goto bad;
            break;
        case O_TRANSPORT:
        case O_PUBTRANSPORT: {
            int t = strcmp(optarg, "tcp") == 0 ? TR_TCP : strcmp(optarg, "ws") == 0 ? TR_WS : -1;
            if (t < 0) goto bad;
            if (opt == O_TRANSPORT)
                b->sub_transport = t;
            else
                b->pub_transport = t;
            break;
        }
        case O_WSPATH:
            if (optarg[0] != '/' || strlen(optarg) > 200) goto bad;
            for (const char *q = optarg; *q; q++)
                if ((unsigned char)*q <= ' ' || (unsigned char)*q >= 0x7f) goto bad;
            b->ws_path = optarg;
            break;
        case O_JSON: b->json_only = 1; break;
        case O_QUIET: b->quiet = 1; break;
        case O_SM: b->sm_every = (unsigned)atoi(optarg); break;
        case O_CWIN:
            if (parse_int(optarg, 1, 100000, &v)) goto bad;
            b->connect_window = (int)v;
            break;
        case O_DRAIN: if (parse_double(optarg, 0, 3600, &b->drain)) goto bad; break;
        case O_TIMEOUT: if (parse_double(optarg, 1, 86400, &b->timeout)) goto bad; break;
        case O_SETTLE: if (parse_double(optarg, 0, 3600, &b->settle)) goto bad; break;
        case O_REGISTER: b->do_register = 1; break;
        case O_NOPRES: b->presence = 0; break;
        case O_LABEL: b->label = optarg; break;
        case O_PREFIX: b->node_prefix = optarg; break;
        case O_TOKEN: b->token = optarg; break;
        case O_CONNS: if (parse_int(optarg, 1, 10000, &conns)) goto bad; break;
        default:
            usage(stderr);
            return -1;
        }
        continue;
    bad:
        fprintf(stderr, "herald-bench: bad value for an option: %s\n", optarg ? optarg : "");
        return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "herald-bench: unexpected argument: %s\n", argv[optind]);
        return -1;
    }
    if (b->scenario < 0) {
        fprintf(stderr, "herald-bench: --scenario is required (see --help)\n");
        return -1;
    }

    /* Scenario defaults for whatever was not given. */
    switch (b->scenario) {
    case SC_FANOUT:
        b->publishers = pubs > 0 ? (int)pubs : 1;
        b->subscribers = subs >= 0 ? (int)subs : 100;
        b->nodes = nodes > 0 ? (int)nodes : 1;
        b->window = window > 0 ? (int)window : 32;
        break;
    case SC_MANYNODES:
        b->publishers = pubs > 0 ? (int)pubs : 10;
        b->subscribers = subs >= 0 ? (int)subs : 1000;
        b->nodes = nodes > 0 ? (int)nodes : 100;
        b->window = window > 0 ? (int)window : 16;
        break;
    case SC_LATENCY:
        b->publishers = pubs > 0 ? (int)pubs : 1;
        b->subscribers = subs >= 0 ? (int)subs : 1;
        b->nodes = nodes > 0 ? (int)nodes : 1;
        b->window = window > 0 ? (int)window : 1;
        if (publishes < 0 && b->duration == 0)
            publishes = 2000;
        break;
    case SC_HTTP:
        b->publishers = 0;
        b->subscribers = subs >= 0 ? (int)subs : 0;
        b->nodes = 1;
        b->window = 1;
        if (!b->token) {
            fprintf(stderr, "herald-bench: the http scenario needs --token (herald token create)\n");
            return -1;
        }
        if (!safe_xml(b->token) || strchr(b->token, ' ') || strchr(b->token, '\r') || strlen(b->token) > 512) {
            fprintf(stderr, "herald-bench: --token has characters a header cannot carry\n");
            return -1;
        }
        break;
    default:
        b->sessions = (int)sessions;
        if (b->scenario == SC_REGISTER)
            b->do_register = 1;
        break;
    }
    if (b->scenario <= SC_LATENCY && b->nodes < b->publishers) {
        fprintf(stderr, "herald-bench: each publisher publishes to nodes it owns: --nodes must be >= --publishers\n");
        return -1;
    }
    b->payload = (int)payload;
    b->publishes = publishes > 0 ? (uint64_t)publishes : (b->duration > 0 ? 0 : 20000);
    b->connections = (int)conns;
    if (!safe_name(b->users) || !safe_xml(b->password) || !safe_xml(b->domain) || strlen(b->domain) > 200) {
        fprintf(stderr, "herald-bench: --users must be letters, digits, '-', '_' or '.'; --password and "
                        "--domain must not contain XML special characters\n");
        return -1;
    }
    if (b->sub_domain && (!*b->sub_domain || !safe_xml(b->sub_domain) || strlen(b->sub_domain) > 200)) {
        fprintf(stderr, "herald-bench: --sub-domain must not be empty or contain XML special characters\n");
        return -1;
    }
    if (b->sub_host && !*b->sub_host) {
        fprintf(stderr, "herald-bench: --sub-host must not be empty\n");
        return -1;
    }
    if (b->node_prefix && !safe_name(b->node_prefix)) {
        fprintf(stderr, "herald-bench: --node-prefix must be letters, digits, '-', '_' or '.'\n");
        return -1;
    }
    if (b->pubsub && (!safe_xml(b->pubsub) || strlen(b->pubsub) > 250)) {
        fprintf(stderr, "herald-bench: bad --pubsub\n");
        return -1;
    }
    return 0;
}

/* ---- main ---- */

int main(int argc, char **argv)
{
    static struct bench bench; /* large (histograms): not on the stack */
    struct bench *b = &bench;
    char pubsub_buf[300], prefix_buf[64];
    int rc = 1;

    if (parse_options(b, argc, argv) != 0)
        return 2;
    memset(pad, 'x', sizeof pad);
    if (!b->pubsub) {
        snprintf(pubsub_buf, sizeof pubsub_buf, "pubsub.%s", b->domain);
        b->pubsub = pubsub_buf;
    }
    if (!b->node_prefix) {
        snprintf(prefix_buf, sizeof prefix_buf, "bench-%lx-%x-", (unsigned long)time(NULL), (unsigned)getpid());
        b->node_prefix = prefix_buf;
    }
    if (resolve(b->host, b->port, &b->addr) != 0 || resolve(b->host, b->http_port, &b->http_addr) != 0) {
        fprintf(stderr, "herald-bench: cannot resolve %s\n", b->host);
        return 2;
    }
    /* Subscribers: --sub-host when given, else --host. */
    const char *sub_host = b->sub_host ? b->sub_host : b->host;
    if (resolve(sub_host, b->port, &b->sub_addr) != 0 || resolve(sub_host, b->http_port, &b->sub_http_addr) != 0) {
        fprintf(stderr, "herald-bench: cannot resolve %s\n", sub_host);
        return 2;
    }
    for (int i = 0; i < b->nsub_ports; i++)
        if (resolve(sub_host, b->sub_ports[i], &b->sub_addrs[i]) != 0) {
            fprintf(stderr, "herald-bench: cannot resolve %s\n", sub_host);
            return 2;
        }
    for (int i = 0; i < b->npub_ports; i++)
        if (resolve(b->host, b->pub_ports[i], &b->pub_addrs[i]) != 0) {
            fprintf(stderr, "herald-bench: cannot resolve %s\n", b->host);
            return 2;
        }

    /* Enough descriptors for every connection. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }

    switch (b->scenario) {
    case SC_IDLE:
    case SC_REGISTER:
        b->nclients = b->sessions;
        break;
    case SC_HTTP:
        b->nclients = 1 + b->subscribers;
        b->nhconns = b->connections;
        break;
    default:
        b->nclients = b->publishers + b->subscribers;
        break;
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (rlim_t)(b->nclients + b->nhconns + 32) > rl.rlim_cur) {
        fprintf(stderr, "herald-bench: %d connections need more file descriptors than the limit (%lu)\n",
                b->nclients + b->nhconns, (unsigned long)rl.rlim_cur);
        return 2;
    }

    b->clients = calloc((size_t)b->nclients, sizeof *b->clients);
    b->dirtyq = calloc((size_t)b->nclients + 1, sizeof *b->dirtyq);
    b->dirtyq2 = calloc((size_t)b->nclients + 1, sizeof *b->dirtyq2);
    b->node_acked = calloc((size_t)b->nodes + 1, sizeof *b->node_acked);
    b->node_subs = calloc((size_t)b->nodes + 1, sizeof *b->node_subs);
    if (b->nhconns)
        b->hconns = calloc((size_t)b->nhconns, sizeof *b->hconns);
    if (!b->clients || !b->dirtyq || !b->dirtyq2 || !b->node_acked || !b->node_subs || (b->nhconns && !b->hconns)) {
        fprintf(stderr, "herald-bench: out of memory\n");
        goto done;
    }
    for (int i = 0; i < b->nclients; i++) {
        struct xclient *c = &b->clients[i];
        c->b = b;
        c->index = i;
        c->role = ROLE_IDLE;
        if (b->scenario == SC_HTTP) {
            if (i > 0) {
                c->role = ROLE_SUB;
                c->node = 0;
            }
        } else if (b->scenario <= SC_LATENCY) {
            if (i < b->publishers) {
                c->role = ROLE_PUB;
                c->node = i;
                c->sent_ns = calloc(2 * (size_t)b->window, sizeof *c->sent_ns);
                c->sent_node = calloc(2 * (size_t)b->window, sizeof *c->sent_node);
                if (!c->sent_ns || !c->sent_node) {
                    fprintf(stderr, "herald-bench: out of memory\n");
                    goto done;
                }
            } else {
                c->role = ROLE_SUB;
                c->node = (i - b->publishers) % b->nodes;
            }
        }
    }
    /* Transports and ports: publishers round-robin over --pub-ports,
     * subscribers (and the sessions of idle/register) over --sub-ports,
     * everyone else --port; over WebSocket the default is --http-port.
     * Subscribers go to --sub-host and --sub-domain when given. */
    int nsub = 0;
    for (int i = 0; i < b->nclients; i++) {
        struct xclient *c = &b->clients[i];
        int sub_side = c->role == ROLE_SUB || b->scenario == SC_IDLE || b->scenario == SC_REGISTER;
        c->transport = c->role == ROLE_PUB ? b->pub_transport : sub_side ? b->sub_transport : TR_TCP;
        c->host = sub_side ? sub_host : b->host;
        c->domain = sub_side && b->sub_domain ? b->sub_domain : b->domain;
        /* The HTTP scenario's node owner (client 0) stays on TCP. */
        if (c->transport == TR_WS) {
            c->port = b->http_port;
            c->addr = sub_side ? &b->sub_http_addr : &b->http_addr;
        } else {
            c->port = b->port;
            c->addr = sub_side ? &b->sub_addr : &b->addr;
        }
        if (c->role == ROLE_PUB && b->npub_ports > 0) {
            int k = c->node % b->npub_ports;
            c->port = b->pub_ports[k];
            c->addr = &b->pub_addrs[k];
        } else if (sub_side && b->nsub_ports > 0) {
            int k = nsub++ % b->nsub_ports;
            c->port = b->sub_ports[k];
            c->addr = &b->sub_addrs[k];
        }
    }
    for (int i = 0; i < b->nhconns; i++) {
        b->hconns[i].b = b;
        b->hconns[i].index = i;
    }

    b->loop = uv_default_loop();
    if (uv_prepare_init(b->loop, &b->flush) != 0 || uv_timer_init(b->loop, &b->tick) != 0) {
        fprintf(stderr, "herald-bench: libuv initialisation failed\n");
        goto done;
    }
    b->flush.data = b;
    b->tick.data = b;
    uv_prepare_start(&b->flush, on_flush);
    uv_timer_start(&b->tick, on_tick, 50, 50);

    if (b->nserver_pids > 0) {
        sample_server(b, &b->srv_start);
        for (int i = 0; i < b->nserver_pids; i++) {
            struct procstat one;
            proc_sample(b->server_pids[i], &one);
            if (!one.ok)
                fprintf(stderr, "herald-bench: warning: cannot read /proc/%d; no server CPU/RSS figures\n",
                        b->server_pids[i]);
        }
    }
    b->self_cpu0 = self_cpu_s();
    b->t_start = b->t_connect_start = b->t_report = uv_hrtime();
    set_phase(b, PH_CONNECT);
    pump_connects(b);
    check_connect_done(b);

    uv_run(b->loop, UV_RUN_DEFAULT);
    rc = b->error ? 1 : 0;

done:
    if (b->loop)
        (void)uv_loop_close(b->loop);
    for (int i = 0; b->clients && i < b->nclients; i++)
        xclient_free(&b->clients[i]);
    for (int i = 0; b->hconns && i < b->nhconns; i++)
        hconn_free(&b->hconns[i]);
    free(b->clients);
    free(b->dirtyq);
    free(b->dirtyq2);
    free(b->node_acked);
    free(b->node_subs);
    free(b->hconns);
    return rc;
}
