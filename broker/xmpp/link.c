/* link.c - the stream plumbing shared by s2s and components (link.h). */
#include "link.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "conn.h"
#include "errors.h"
#include "herald.h"
#include "log.h"
#include "outq.h"
#include "session.h"
#include "xml.h"
#include "xml_parser.h"

static void on_open(void *ud, const struct xnode *hdr, const char *default_ns)
{
    struct link *l = ud;
    l->ops->on_open(l, hdr, default_ns);
}

static void on_stanza(void *ud, struct xnode *st, struct arena *a)
{
    struct link *l = ud;
    if (l->closing)
        return;
    l->h->stats.stanzas_in++;
    l->ops->on_element(l, st, a);
}

static void on_close(void *ud)
{
    link_close(ud);
}

static const struct xmlp_callbacks link_cb = {on_open, on_stanza, on_close};

static void on_data(void *ud, const char *data, size_t len)
{
    struct link *l = ud;
    if (l->closing)
        return;
    enum xmlp_error e = xmlp_feed(l->parser, data, len);
    if (e != XMLP_OK && !l->closing)
        link_stream_error(l, xmlp_condition(e), xmlp_strerror(e));
}

static void on_conn_closed(void *ud)
{
    struct link *l = ud;
    l->conn = NULL;
    l->closing = true;
    l->ops->on_gone(l);
}

static void on_connect(void *ud)
{
    struct link *l = ud;
    l->ops->send_header(l);
}

static const struct conn_handler link_handler = {
    .on_data = on_data,
    .on_close = on_conn_closed,
    .on_connect = on_connect,
};

const struct conn_handler *link_conn_handler(void) { return &link_handler; }

void link_new_id(struct link *l)
{
    unsigned char rnd[10];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        memset(rnd, 0x5a, sizeof(rnd));
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(l->stream_id + 2 * i, 3, "%02x", rnd[i]);
}

int link_init(struct link *l, struct herald *h, struct conn *conn, const struct link_ops *ops,
              const char *content_ns)
{
    const struct config *cfg = h->cfg;
    struct xmlp_limits lim = {cfg->max_stanza_size, cfg->max_depth};
    l->h = h;
    l->conn = conn;
    l->ops = ops;
    snprintf(l->peer, sizeof(l->peer), "%s", conn->peer);
    link_new_id(l);
    l->parser = xmlp_new(&lim, &link_cb, l);
    if (l->parser == NULL)
        return HERALD_ENOMEM;
    xmlp_set_content_ns(l->parser, content_ns);
    /* As for c2s: a soft bound that paces producers, a hard one that closes. */
    conn_set_limits(conn, cfg->max_outq_bytes,
                    cfg->max_outq_hard_bytes ? cfg->max_outq_hard_bytes : 8 * cfg->max_outq_bytes);
    return 0;
}

int link_accept(struct link *l, struct herald *h, struct conn *conn, const struct link_ops *ops,
                const char *content_ns)
{
    int rc = link_init(l, h, conn, ops, content_ns);
    if (rc == 0)
        rc = conn_start(conn, &link_handler, l);
    return rc;
}

void link_restart(struct link *l)
{
    l->header_sent = false;
    xmlp_restart(l->parser);
}

int link_send(struct link *l, const char *data, size_t len)
{
    struct chunk *ch = chunk_new(data, len);
    if (ch == NULL)
        return HERALD_ENOMEM;
    int rc = link_send_chunks(l, &ch, 1);
    chunk_unref(ch);
    return rc;
}

int link_send_chunks(struct link *l, struct chunk *const *parts, size_t n)
{
    if (l->conn == NULL || l->closing)
        return HERALD_EUNAVAIL;
    int rc = conn_send_chunks(l->conn, parts, n, 0);
    if (rc == HERALD_ELIMIT) {
        /* The peer does not read: its queue is at the hard bound. */
        log_warn(l->ops->area, "%s: output queue full: closing", l->peer);
        link_stream_error(l, "policy-violation", "output queue full: reading too slowly");
    } else if (rc == 0) {
        l->h->stats.stanzas_out++;
        if (l->conn->q_bytes > l->conn->q_max)
            session_pace_producers(l->h, l->conn);
    }
    return rc;
}

static void send_end(struct link *l)
{
    static const char end[] = "</stream:stream>";
    conn_send(l->conn, end, sizeof(end) - 1, CONN_SEND_FORCE);
    l->closing = true;
    conn_close(l->conn, true);
}

void link_stream_error(struct link *l, const char *condition, const char *text)
{
    if (l->conn == NULL || l->closing)
        return;
    if (!l->header_sent)
        l->ops->send_header(l);
    struct buf b;
    buf_init(&b, 0);
    xml_stream_error(&b, condition, text);
    if (buf_ok(&b))
        conn_send(l->conn, b.data, b.len, CONN_SEND_FORCE);
    buf_free(&b);
    /* A peer can cause stream errors at will: the line is rate-limited. */
    static struct log_limit lim;
    log_limited(&lim, LOG_INFO, l->ops->area, "%s: stream error <%s/>%s%s%s", l->peer, condition,
                text ? " (" : "", text ? text : "", text ? ")" : "");
    send_end(l);
}

void link_close(struct link *l)
{
    if (l->conn == NULL || l->closing)
        return;
    if (!l->header_sent)
        l->ops->send_header(l);
    send_end(l);
}

void link_free(struct link *l)
{
    xmlp_free(l->parser);
    l->parser = NULL;
}
