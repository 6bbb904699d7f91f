/* session.c - session lifetime, connection limits, the bound-session table,
 * output with the slow-consumer policy, stream errors and timeouts.
 *
 * The slow-consumer policy (docs/architecture.md, "Back-pressure"): a
 * recipient's write queue has a soft bound (c2s.max_outq_bytes) and a hard
 * one (c2s.max_outq_hard_bytes). A send that leaves the queue past the soft
 * bound is still queued, and paces whoever produced it (conn_wait_for: the
 * connection whose input is being handled, or during a publish's fan-out the
 * publisher's sessions); only a send past the hard bound, or a queue that
 * made no write progress for c2s.write_timeout, closes the recipient. */
#include "session.h"

#include <openssl/rand.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "websocket.h"
#include "im.h"
#include "jid.h"
#include "pubsub.h"
#include "errors.h"
#include "log.h"
#include "outq.h"
#include "pubsub_xmpp.h"
#include "router.h"
#include "sasl.h"
#include "xml.h"
#include "xml_parser.h"

#define DRAIN_LIMIT_MS 5000
/* A bound session that read nothing for this long gives its parser's memory
 * back (xmlp_hibernate); its next bytes make a new one. */
#define HIBERNATE_IDLE_MS 1000

static void on_conn_closed(void *ud);
static bool framed_conn(const struct conn *c);
static int write_nonza(struct session *s, const char *data, size_t len, int flags);
static void write_stream_end(struct session *s);

static void on_drain(void *ud)
{
    struct session *s = ud;
    if (s->offline_pending && s->state == ST_BOUND)
        presence_offline_continue(s);
    if (s->durable != NULL && s->state == ST_BOUND)
        durable_continue(s);
}

static const struct conn_handler c2s_handler = {
    .on_data = stream_on_data,
    .on_close = on_conn_closed,
    .on_drain = on_drain,
};

static size_t outq_hard_bytes(const struct config *cfg)
{
    return cfg->max_outq_hard_bytes ? cfg->max_outq_hard_bytes : 8 * cfg->max_outq_bytes;
}

void session_accept(struct herald *h, struct conn *conn)
{
    struct session *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        conn_close(conn, false);
        return;
    }
    s->h = h;
    s->conn = conn;
    s->started_ms = uv_now(h->loop);
    unsigned char rnd[8];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        memset(rnd, 0, sizeof(rnd));
    for (int i = 0; i < 8; i++)
        snprintf(s->stream_id + 2 * i, 3, "%02x", rnd[i]);
    conn_ip_adjust(&h->ip_counts, conn->peer, +1);
    conn_set_limits(conn, h->cfg->max_outq_bytes, outq_hard_bytes(h->cfg));
    if (conn_start(conn, &c2s_handler, s) != 0)
        return; /* on_conn_closed frees s */
    /* A WebSocket arrives upgraded from HTTP(S): framed, and as secure as
     * the connection it came on. */
    s->framed = framed_conn(conn);
    s->tls = conn_is_tls(conn);
    if (stream_init(s) != 0 || (s->framed && xmlp_set_framed(s->parser) != 0)) {
        session_stream_error(s, "resource-constraint", NULL);
        return;
    }
    const struct config *cfg = h->cfg;
    /* The refusals name the setting, in the log and in the stream error's
     * <text/>, so that whoever hits a limit knows which one to raise. */
    static struct log_limit refused_log;
    char why[96];
    bool per_ip =
        cfg->max_connections_per_ip != 0 && (cfg->limit_loopback || !conn_addr_is_loopback(conn->peer));
    if (h->shutting_down) {
        session_stream_error(s, "system-shutdown", NULL);
    } else if (h->nconns - h->http_conns > cfg->max_connections) {
        /* HTTP connections have their own budget (http.max_connections). */
        h->stats.connections_refused++;
        snprintf(why, sizeof(why), "c2s.max_connections (%u) reached", cfg->max_connections);
        log_limited(&refused_log, LOG_WARN, "c2s", "refused %s: %s", conn->peer, why);
        session_stream_error(s, "resource-constraint", why);
    } else if (per_ip && conn_ip_adjust(&h->ip_counts, conn->peer, 0) > cfg->max_connections_per_ip) {
        h->stats.connections_refused++;
        snprintf(why, sizeof(why), "c2s.max_connections_per_ip (%u) reached",
                 cfg->max_connections_per_ip);
        log_limited(&refused_log, LOG_WARN, "c2s", "refused %s: %s", conn->peer, why);
        session_stream_error(s, "policy-violation", why);
    } else {
        h->stats.connections_accepted++;
        log_debug("c2s", "%s: connected (stream %s)", conn->peer, s->stream_id);
    }
}

static void free_session(struct session *s)
{
    session_unregister(s);
    sm_end(s);
    durable_end(s);
    if (s->conn != NULL)
        conn_ip_adjust(&s->h->ip_counts, s->conn->peer, -1);
    xmlp_free(s->parser);
    hsasl_free(s->sasl);
    free(s->bare);
    free(s->full);
    free(s);
}

static void on_conn_closed(void *ud)
{
    struct session *s = ud;
    /* XEP-0198: the connection is lost, the session waits to be resumed. */
    if (sm_detach(s))
        return;
    if (s->full)
        log_info("c2s", "%s: session %s ended", s->conn->peer, s->full);
    else
        log_debug("c2s", "%s: connection closed", s->conn->peer);
    stream_cancel_delay(s);
    free_session(s);
}

/* ---- the table of bound sessions ---- */

struct account *session_account(struct herald *h, const char *bare)
{
    struct account *a = NULL;
    HASH_FIND_STR(h->accounts, bare, a);
    return a;
}

struct session *session_find(struct herald *h, const char *bare, const char *resource)
{
    struct account *a = session_account(h, bare);
    for (struct session *s = a ? a->sessions : NULL; s; s = s->next_res)
        if (strcmp(s->resource, resource) == 0)
            return s;
    return NULL;
}

uint64_t session_lease_id(struct herald *h, const char *full)
{
    const char *slash = strchr(full, '/');
    char bare[JID_MAX + 1];
    size_t bl = slash ? (size_t)(slash - full) : 0;
    if (slash == NULL || bl >= sizeof(bare))
        return 0;
    memcpy(bare, full, bl);
    bare[bl] = '\0';
    struct session *s = session_find(h, bare, slash + 1);
    if (s == NULL)
        return 0;
    if (s->lease_id == 0)
        s->lease_id = ++h->lease_ids;
    return s->lease_id;
}

int session_register(struct session *s)
{
    struct herald *h = s->h;
    struct account *a = session_account(h, s->bare);
    if (a == NULL) {
        a = calloc(1, sizeof(*a));
        if (a == NULL || (a->bare = strdup(s->bare)) == NULL) {
            free(a);
            return HERALD_ENOMEM;
        }
        HASH_ADD_KEYPTR(hh, h->accounts, a->bare, strlen(a->bare), a);
    }
    s->next_res = a->sessions;
    a->sessions = s;
    s->registered = true;
    return 0;
}

void session_unregister(struct session *s)
{
    /* Contacts see us go before we leave the table (RFC 6121 §4.5). */
    presence_session_gone(s);
    if (!s->registered)
        return;
    s->registered = false;
    struct account *a = session_account(s->h, s->bare);
    if (a == NULL)
        return;
    for (struct session **pp = &a->sessions; *pp; pp = &(*pp)->next_res) {
        if (*pp == s) {
            *pp = s->next_res;
            break;
        }
    }
    s->next_res = NULL;
    if (a->sessions == NULL) {
        HASH_DEL(s->h->accounts, a);
        free(a->bare);
        free(a);
    }
    /* What the client did not acknowledge is re-routed (sm.c); durable
     * subscriptions keep what it had as their cursors. */
    sm_end(s);
    durable_end(s);
    /* Items leased to the session go with it (docs/leases.md). */
    if (s->lease_id)
        pubsub_leases_session_end(s->h->pubsub, s->lease_id);
}

void session_drop_conn(struct session *s)
{
    struct conn *c = s->conn;
    if (c == NULL)
        return;
    conn_ip_adjust(&s->h->ip_counts, c->peer, -1);
    conn_disown(c);
    conn_close(c, false);
    s->conn = NULL;
}

void session_replace_conn(struct session *old)
{
    static const char err[] = "<stream:error><conflict xmlns='" NS_STREAMS_ERR "'/>"
                              "<text xmlns='" NS_STREAMS_ERR "' xml:lang='en'>replaced by a "
                              "resumed stream</text></stream:error>";
    struct conn *c = old->conn;
    write_nonza(old, err, sizeof(err) - 1, CONN_SEND_FORCE);
    write_stream_end(old);
    conn_ip_adjust(&old->h->ip_counts, c->peer, -1);
    conn_disown(c);
    conn_close(c, true);
    old->conn = NULL;
}

void session_free_detached(struct session *s)
{
    s->state = ST_CLOSED;
    sm_forget_detached(s);
    free_session(s);
}

/* ---- output ---- */

/* ---- transport rendering ----
 *
 * Over TCP a stanza inherits jabber:client and the stream: prefix from the
 * stream header. Over WebSocket every message must stand alone (RFC 7395
 * §3.3.3): a stanza gets xmlns='jabber:client' on its root, an element named
 * stream:... its xmlns:stream, the header is <open/> and the end <close/>.
 * Stanzas are encoded once for every transport; only the first part (an
 * envelope, or a routed stanza) is copied with the declaration added. */

/* A copy of ch with decl inserted after the root element's name, behind
 * hdr_len bytes left for a frame header. */
static struct chunk *with_decl(const struct chunk *ch, const char *decl, size_t hdr_len)
{
    size_t name = 1, dl = strlen(decl);
    while (name < ch->len && ch->data[name] != ' ' && ch->data[name] != '>' &&
           ch->data[name] != '/')
        name++;
    struct chunk *out = chunk_alloc(hdr_len + ch->len + dl);
    if (out == NULL)
        return NULL;
    char *p = out->data + hdr_len;
    memcpy(p, ch->data, name);
    memcpy(p + name, decl, dl);
    memcpy(p + name + dl, ch->data + name, ch->len - name);
    return out;
}

/* WebSocket and BOSH carry elements, not a stream. */
static bool framed_conn(const struct conn *c) { return conn_is_ws(c) || conn_is_virtual(c); }

static int write_stanza(struct session *s, struct chunk *const *parts, size_t n, int flags)
{
    if (!framed_conn(s->conn) || n == 0 || n > SQ_PARTS)
        return conn_send_chunks(s->conn, parts, n, flags);
    static const char decl[] = " xmlns='" NS_CLIENT "'";
    if (!conn_is_ws(s->conn)) {
        struct chunk *first = with_decl(parts[0], decl, 0);
        struct chunk *framed[SQ_PARTS] = {first, n > 1 ? parts[1] : NULL};
        int rc = first ? conn_send_chunks(s->conn, framed, n, flags) : HERALD_ENOMEM;
        chunk_unref(first);
        return rc;
    }
    /* WebSocket: the frame header, the declaration and the first part are
     * one chunk, so a notification is two queue entries as over TCP (a
     * write carries at most 64), the shared body the second. */
    size_t total = sizeof(decl) - 1;
    for (size_t k = 0; k < n; k++)
        total += parts[k]->len;
    unsigned char hdr[10];
    size_t hl = ws_put_header(hdr, 1, total);
    struct chunk *first = with_decl(parts[0], decl, hl);
    if (first == NULL)
        return HERALD_ENOMEM;
    memcpy(first->data, hdr, hl);
    struct chunk *framed[SQ_PARTS] = {first, n > 1 ? parts[1] : NULL};
    int rc = conn_send_chunks(s->conn, framed, n, flags | CONN_SEND_FRAMED);
    chunk_unref(first);
    return rc;
}

/* Stream-level elements (features, SASL, stream management, errors). */
static int write_nonza(struct session *s, const char *data, size_t len, int flags)
{
    if (!framed_conn(s->conn) || len < 8 || memcmp(data, "<stream:", 8) != 0)
        return conn_send(s->conn, data, len, flags);
    struct chunk *ch = chunk_new(data, len);
    struct chunk *framed = ch ? with_decl(ch, " xmlns:stream='" NS_STREAM "'", 0) : NULL;
    chunk_unref(ch);
    if (framed == NULL)
        return HERALD_ENOMEM;
    int rc = conn_send_chunks(s->conn, &framed, 1, flags);
    chunk_unref(framed);
    return rc;
}

static void write_stream_end(struct session *s)
{
    if (conn_is_virtual(s->conn))
        return; /* BOSH: the connection's end is the session's terminate */
    if (conn_is_ws(s->conn))
        conn_send(s->conn, "<close xmlns='" NS_FRAMING "'/>", sizeof("<close xmlns='" NS_FRAMING "'/>") - 1,
                  CONN_SEND_FORCE);
    else
        conn_send(s->conn, "</stream:stream>", 16, CONN_SEND_FORCE);
}

int session_write_stanza(struct session *s, struct chunk *const *parts, size_t n, int flags)
{
    return write_stanza(s, parts, n, flags);
}

const char *session_transport(const struct session *s)
{
    if (s->conn == NULL)
        return "detached";
    if (conn_is_virtual(s->conn))
        return "bosh";
    return conn_is_ws(s->conn) ? "websocket" : "tcp";
}

void session_keepalive(struct session *s)
{
    /* RFC 7395 §3.4 has no whitespace between messages: a WebSocket ping;
     * BOSH keeps itself alive with its requests. */
    if (conn_is_virtual(s->conn))
        return;
    if (conn_is_ws(s->conn))
        ws_ping(s->conn);
    else
        session_send(s, " ", 1);
}

/* Anyone can make these happen at will (by not reading): rate-limited. */
static struct log_limit slow_log, stall_log;

static void slow_reader(struct session *s)
{
    s->h->stats.slow_reader_closes++;
    if (sm_detach(s))
        return; /* its queue is kept; the client may resume and get it */
    log_limited(&slow_log, LOG_WARN, "c2s", "%s: %s reads too slowly: output queue over %zu bytes "
                "(c2s.max_outq_hard_bytes), closing", s->conn->peer,
                s->full ? s->full : "client", s->conn->q_hard);
    session_stream_error(s, "policy-violation", "output queue full: reading too slowly");
}

/* s's queue is past its soft bound: whoever filled it waits until it drains. */
void session_pace_producers(struct herald *h, struct conn *recipient)
{
    if (h->input_conn != NULL) {
        conn_wait_for(h->input_conn, recipient);
        return;
    }
    struct account *a = h->pace_account ? session_account(h, h->pace_account) : NULL;
    for (struct session *p = a ? a->sessions : NULL; p; p = p->next_res)
        if (p->conn != NULL)
            conn_wait_for(p->conn, recipient);
}

/* The common tail of the senders: the slow-consumer policy on the result. */
static int sent(struct session *s, int rc)
{
    if (rc == HERALD_ELIMIT)
        slow_reader(s);
    else if (rc == 0 && s->conn->q_bytes > s->conn->q_max)
        session_pace_producers(s->h, s->conn);
    return rc;
}

int session_send_stanza(struct session *s, struct chunk *const *parts, size_t nparts)
{
    return session_send_tagged(s, parts, nparts, NULL);
}

int session_send_tagged(struct session *s, struct chunk *const *parts, size_t nparts,
                        const struct sq_tag *tag)
{
    if (s->state == ST_CLOSED)
        return HERALD_EUNAVAIL;
    if (s->sm.enabled) {
        int rc = sm_record(s, parts, nparts, tag);
        if (rc == HERALD_ELIMIT) {
            static struct log_limit lim;
            const struct config *cfg = s->h->cfg;
            log_limited(&lim, LOG_WARN, "c2s", "%s: over %u unacknowledged stanzas or %zu bytes "
                        "(c2s.sm_max_unacked_stanzas / _bytes); session ended", s->full,
                        cfg->sm_max_unacked, cfg->sm_max_unacked_bytes);
            session_stream_error(s, "policy-violation", "too many unacknowledged stanzas");
        }
        if (rc != 0)
            return rc;
    }
    s->h->stats.stanzas_out++;
    if (s->conn == NULL)
        return 0; /* detached: kept for its resumption */
    if (s->csi.inactive && csi_hold(s, parts, nparts))
        return 0;
    return sent(s, write_stanza(s, parts, nparts, 0));
}

int session_send_chunk(struct session *s, struct chunk *ch)
{
    return session_send_stanza(s, &ch, 1);
}

int session_send_xml(struct session *s, const struct xnode *e)
{
    struct chunk *ch = router_chunk(e);
    if (ch == NULL)
        return HERALD_ENOMEM;
    int rc = session_send_stanza(s, &ch, 1);
    chunk_unref(ch);
    return rc;
}

int session_send(struct session *s, const char *data, size_t len)
{
    if (s->state == ST_CLOSED || s->conn == NULL)
        return HERALD_EUNAVAIL;
    return sent(s, write_nonza(s, data, len, 0));
}

/* ---- closing ---- */

void session_send_header(struct session *s, int flags)
{
    s->header_sent = true;
    /* BOSH: the response <body/> carries what the header would (api/bosh.c). */
    if (conn_is_virtual(s->conn))
        return;
    struct buf b;
    buf_init(&b, 0);
    if (conn_is_ws(s->conn))
        buf_puts(&b, "<open xmlns='" NS_FRAMING "' version='1.0' from='");
    else
        buf_puts(&b, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                     "xmlns:stream='http://etherx.jabber.org/streams' version='1.0' from='");
    buf_xml_attr(&b, s->h->cfg->domain, strlen(s->h->cfg->domain));
    buf_printf(&b, "' id='%s' xml:lang='en'%s>", s->stream_id, conn_is_ws(s->conn) ? "/" : "");
    /* A forced header precedes a stream error: no slow-reader policy then. */
    if (buf_ok(&b) && (flags & CONN_SEND_FORCE))
        conn_send(s->conn, b.data, b.len, flags);
    else if (buf_ok(&b))
        sent(s, conn_send(s->conn, b.data, b.len, flags));
    buf_free(&b);
    s->header_sent = true;
}

static void send_header_if_needed(struct session *s)
{
    if (!s->header_sent)
        session_send_header(s, CONN_SEND_FORCE);
}

void session_stream_error(struct session *s, const char *condition, const char *text)
{
    if (s->state == ST_CLOSED)
        return;
    if (s->conn == NULL) {
        /* Detached: nobody to tell. It ends now and is freed by the next
         * sweep (a caller up the stack may still hold it). */
        log_info("c2s", "%s: detached session ended (%s)", s->full, condition);
        s->state = ST_CLOSED;
        session_unregister(s);
        return;
    }
    send_header_if_needed(s);
    struct buf b;
    buf_init(&b, 0);
    xml_stream_error(&b, condition, text);
    if (buf_ok(&b))
        write_nonza(s, b.data, b.len, CONN_SEND_FORCE);
    buf_free(&b);
    write_stream_end(s);
    /* A client can cause stream errors at will: the line is rate-limited. */
    static struct log_limit error_log;
    log_limited(&error_log, LOG_INFO, "c2s", "%s: stream error <%s/>%s%s%s", s->conn->peer,
                condition, text ? " (" : "", text ? text : "", text ? ")" : "");
    s->state = ST_CLOSED;
    session_unregister(s);
    conn_close(s->conn, true);
}

void session_close(struct session *s)
{
    if (s->state == ST_CLOSED)
        return;
    csi_release(s);
    if (s->header_sent)
        write_stream_end(s);
    s->state = ST_CLOSED;
    session_unregister(s);
    conn_close(s->conn, true);
}

static struct session *session_of(struct conn *c)
{
    return c->handler == &c2s_handler ? c->ud : NULL;
}

/* No write progress for c2s.write_timeout with output queued: the peer has
 * stopped reading (RFC 6120 §4.9.3.4, connection-timeout: it "has
 * permanently lost the ability to communicate"). The stream error cannot get
 * through a stalled queue, so the queue is dropped at once, and with it the
 * memory and the producers waiting for it. */
static void write_timeout(struct session *s)
{
    struct conn *c = s->conn;
    s->h->stats.slow_reader_closes++;
    if (sm_detach(s))
        return;
    log_limited(&stall_log, LOG_WARN, "c2s", "%s: %s read nothing of %zu queued bytes for %u s "
                "(c2s.write_timeout), closing", c->peer, s->full ? s->full : "client", c->q_bytes,
                s->h->cfg->write_timeout);
    session_stream_error(s, "connection-timeout", "no write progress: not reading");
    conn_close(c, false);
}

unsigned session_sweep(struct herald *h)
{
    const struct config *cfg = h->cfg;
    uint64_t now = uv_now(h->loop);
    unsigned hibernated = 0;
    struct conn *next;
    for (struct conn *c = h->conns; c; c = next) {
        next = c->next;
        if (c->close_after_flush && now - c->close_started_ms > DRAIN_LIMIT_MS) {
            conn_close(c, false);
            continue;
        }
        struct session *s = session_of(c);
        if (s == NULL || s->state == ST_CLOSED)
            continue;
        if (conn_write_stalled(c, now, (uint64_t)cfg->write_timeout * 1000)) {
            write_timeout(s);
            continue;
        }
        if (s->state != ST_BOUND) {
            if (now - s->started_ms > (uint64_t)cfg->login_timeout * 1000)
                session_stream_error(s, "connection-timeout", "login took too long");
            continue;
        }
        uint64_t idle = now - c->last_read_ms;
        if (cfg->idle_timeout && idle > (uint64_t)cfg->idle_timeout * 1000) {
            if (!sm_detach(s))
                session_stream_error(s, "connection-timeout", "idle for too long");
            continue;
        }
        if (s->sm.enabled && s->sm.unacked.len > 0)
            sm_request_ack(s); /* so that acknowledged stanzas leave the queue */
        if (s->durable != NULL)
            durable_flush(s); /* cursors of what was written without stream management */
        if (cfg->keepalive_interval && idle > (uint64_t)cfg->keepalive_interval * 1000 &&
            now - s->last_keepalive_ms > (uint64_t)cfg->keepalive_interval * 1000) {
            /* RFC 6120 §4.6.1: a whitespace keepalive. */
            s->last_keepalive_ms = now;
            session_keepalive(s);
        }
        if (s->state == ST_BOUND && idle >= HIBERNATE_IDLE_MS && xmlp_hibernate(s->parser))
            hibernated++;
    }
    sm_sweep(h, now);
    h->stats.parser_hibernations += hibernated;
    return hibernated;
}

void session_close_all(struct herald *h)
{
    sm_end_all_detached(h);
    struct conn *next;
    for (struct conn *c = h->conns; c; c = next) {
        next = c->next;
        struct session *s = session_of(c);
        if (s == NULL) {
            if (!c->closing)
                conn_close(c, true);
        } else
            session_stream_error(s, "system-shutdown", "the server is shutting down");
    }
}
