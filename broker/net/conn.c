/* conn.c - socket reads through the TLS filter to the handler; the bounded
 * write queue flushed once per loop turn; flow control between connections.
 *
 * Write queue: a singly linked list of entries, each a reference to a chunk
 * plus a `raw` flag (bytes queued before STARTTLS must go out in clear even
 * if TLS has started by the time they are flushed). At most one uv_write is
 * in flight; its request owns the entries (plaintext path, zero-copy iovecs)
 * or one ciphertext buffer (TLS path).
 *
 * Reading is on when nothing holds it off: the connection's own queue past
 * half its bound (reading_paused), a SASL delay or an HTTP pipeline
 * (input_held), this turn's read budget spent (turn_spent, on
 * herald->resume_list until the next prepare), or a recipient it waits for
 * (waiting_on, pacing). update_reading() is the one place that starts and
 * stops libuv reads from those flags. */
#include "conn.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "errors.h"
#include "herald.h"
#include "log.h"
#include "outq.h"
#include "tls.h"
#include "websocket.h"

#define MAX_IOV 64
/* One write request carries at most this much (or one larger chunk): the
 * write timeout counts completed requests as progress, so a client reading
 * slowly but steadily (more than this per c2s.write_timeout) is never taken
 * for one that stopped. */
#define MAX_WRITE_BYTES (256 * 1024)

struct outq_entry {
    struct outq_entry *next;
    struct chunk *ch;
    bool raw;
};

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void schedule_flush(struct conn *c);
static void close_now(struct conn *c);

struct write_req {
    uv_write_t req;
    struct conn *c;
    size_t bytes;
    struct outq_entry *entries;  /* plaintext path */
    char *cipher;                /* TLS path */
};

static void on_handle_closed(uv_handle_t *hd)
{
    struct conn *c = hd->data;
    struct herald *h = c->h;
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    h->nconns--;
    struct outq_entry *e = c->q_head;
    while (e) {
        struct outq_entry *n = e->next;
        chunk_unref(e->ch);
        free(e);
        e = n;
    }
    tls_free(c->tls);
    ws_free(c->ws);
    if (c->handler && c->handler->on_close)
        c->handler->on_close(c->ud);
    if (c->sink && c->sink->on_gone)
        c->sink->on_gone(c->sink_ud);
    free(c);
}

/* Starts or stops libuv reads to match the flags (see the file comment).
 * A closing connection keeps reading, and discards, to see the peer's FIN. */
static void update_reading(struct conn *c)
{
    if (c->handle_closed || c->sink)
        return; /* a virtual connection has nothing to read */
    bool want = c->closing ||
                !(c->reading_paused || c->input_held || c->turn_spent || c->waiting_on != NULL);
    if (want == c->reading)
        return;
    c->reading = want;
    if (!want) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        return;
    }
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc != 0) {
        log_warn("conn", "%s: cannot read: %s", c->peer, uv_strerror(rc));
        close_now(c);
    }
}

static void wait_unlink(struct conn *p)
{
    struct conn *r = p->waiting_on;
    if (r == NULL)
        return;
    if (p->wait_prev)
        p->wait_prev->wait_next = p->wait_next;
    else
        r->waiters = p->wait_next;
    if (p->wait_next)
        p->wait_next->wait_prev = p->wait_prev;
    p->waiting_on = p->wait_prev = p->wait_next = NULL;
}

/* c drained or is going away: every producer waiting for it reads again. */
static void release_waiters(struct conn *c)
{
    while (c->waiters) {
        struct conn *p = c->waiters;
        wait_unlink(p);
        update_reading(p);
    }
}

void conn_wait_for(struct conn *producer, struct conn *recipient)
{
    if (producer == recipient || producer->waiting_on || producer->closing || recipient->closing)
        return;
    producer->waiting_on = recipient;
    producer->wait_prev = NULL;
    producer->wait_next = recipient->waiters;
    if (recipient->waiters)
        recipient->waiters->wait_prev = producer;
    recipient->waiters = producer;
    update_reading(producer);
}

static void remove_from_resume_list(struct conn *c)
{
    if (!c->turn_spent)
        return;
    struct conn **pp = &c->h->resume_list;
    while (*pp && *pp != c)
        pp = &(*pp)->resume_next;
    if (*pp)
        *pp = c->resume_next;
    c->turn_spent = false;
}

static void remove_from_flush_list(struct conn *c)
{
    if (!c->in_flush_list)
        return;
    struct conn **pp = &c->h->flush_list;
    while (*pp && *pp != c)
        pp = &(*pp)->flush_next;
    if (*pp)
        *pp = c->flush_next;
    c->in_flush_list = false;
}

static void close_now(struct conn *c)
{
    if (c->handle_closed)
        return;
    c->handle_closed = true;
    c->closing = true;
    remove_from_flush_list(c);
    remove_from_resume_list(c);
    release_waiters(c);
    wait_unlink(c);
    c->reading = false;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;
    if (status < 0 && !c->handle_closed)
        close_now(c);
}

/* Everything queued is out: send FIN and wait for the peer's. */
static void start_shutdown(struct conn *c)
{
    if (c->shutdown_started || c->handle_closed)
        return;
    c->shutdown_started = true;
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        close_now(c);
}

void conn_close(struct conn *c, bool drain)
{
    if (c->handle_closed)
        return;
    if (!drain) {
        close_now(c);
        return;
    }
    /* RFC 6455 §7.1.2: a WebSocket ends with a close frame. */
    if (c->ws && !c->closing)
        ws_send_close(c, 1000);
    c->closing = true;
    if (!c->close_after_flush) {
        c->close_after_flush = true;
        c->close_started_ms = uv_now(c->h->loop);
    }
    /* Nothing more is queued here by producers: let them go on. */
    release_waiters(c);
    wait_unlink(c);
    /* Keep reading (and discarding) so the peer's FIN is seen. */
    update_reading(c);
    if (c->tls) {
        /* close_notify goes out after everything queued: at once when the
         * queue is empty, else flush() adds it once the queue has drained. */
        if (c->q_head == NULL && !c->writing)
            tls_close_notify(c->tls);
        else
            c->notify_pending = true;
        schedule_flush(c);
        return;
    }
    if (c->q_head == NULL && !c->writing)
        start_shutdown(c);
}

static void schedule_flush(struct conn *c)
{
    if (c->in_flush_list || c->handle_closed)
        return;
    c->in_flush_list = true;
    c->flush_next = c->h->flush_list;
    c->h->flush_list = c;
}

static int enqueue(struct conn *c, struct chunk *ch, int flags)
{
    if (c->handle_closed || (c->closing && !(flags & CONN_SEND_FORCE)))
        return HERALD_EUNAVAIL;
    if (!(flags & CONN_SEND_FORCE) && c->q_bytes + ch->len > c->q_hard)
        return HERALD_ELIMIT;
    struct outq_entry *e = malloc(sizeof(*e));
    if (e == NULL)
        return HERALD_ENOMEM;
    if (c->q_bytes == 0)
        c->write_progress_ms = uv_now(c->h->loop);
    e->next = NULL;
    e->ch = chunk_ref(ch);
    e->raw = false;
    if (c->q_tail)
        c->q_tail->next = e;
    else
        c->q_head = e;
    c->q_tail = e;
    c->q_bytes += ch->len;
    schedule_flush(c);
    return 0;
}

int conn_send_chunk(struct conn *c, struct chunk *ch, int flags)
{
    return c->ws ? conn_send_chunks(c, &ch, 1, flags) : enqueue(c, ch, flags);
}

int conn_send_chunks(struct conn *c, struct chunk *const *parts, size_t n, int flags)
{
    if (c->handle_closed || (c->closing && !(flags & CONN_SEND_FORCE)))
        return HERALD_EUNAVAIL;
    size_t total = 0;
    for (size_t k = 0; k < n; k++)
        total += parts[k]->len;
    if (!(flags & CONN_SEND_FORCE) && c->q_bytes + total + (c->ws ? 10 : 0) > c->q_hard)
        return HERALD_ELIMIT;
    /* Past the check a part can fail only without memory or on a closing
     * connection; either way the connection is not used again. */
    if (c->ws && (flags & CONN_SEND_FRAMED)) {
        c->h->stats.ws_frames_out++;
    } else if (c->ws) {
        struct chunk *hdr = ws_text_header(total);
        int rc = hdr ? enqueue(c, hdr, flags | CONN_SEND_FORCE) : HERALD_ENOMEM;
        chunk_unref(hdr);
        if (rc != 0)
            return rc;
        c->h->stats.ws_frames_out++;
    }
    for (size_t k = 0; k < n; k++) {
        int rc = enqueue(c, parts[k], flags | CONN_SEND_FORCE);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void disowned_data(void *ud, const char *data, size_t len)
{
    (void)ud;
    (void)data;
    (void)len;
}

static void disowned_close(void *ud) { (void)ud; }

static const struct conn_handler disowned = {.on_data = disowned_data, .on_close = disowned_close};

void conn_disown(struct conn *c)
{
    c->handler = &disowned;
    c->ud = NULL;
}

/* One chunk: the data, after a WebSocket frame header when framed. */
static int send_copy(struct conn *c, const void *data, size_t len, int flags, bool framed)
{
    if (c->handle_closed || (c->closing && !(flags & CONN_SEND_FORCE)))
        return HERALD_EUNAVAIL;
    unsigned char hdr[10];
    size_t hl = framed ? ws_put_header(hdr, 1, len) : 0;
    if (!(flags & CONN_SEND_FORCE) && c->q_bytes + hl + len > c->q_hard)
        return HERALD_ELIMIT;
    struct chunk *ch = chunk_alloc(hl + len);
    if (ch == NULL)
        return HERALD_ENOMEM;
    memcpy(ch->data, hdr, hl);
    memcpy(ch->data + hl, data, len);
    int rc = enqueue(c, ch, flags);
    chunk_unref(ch);
    if (rc == 0 && framed)
        c->h->stats.ws_frames_out++;
    return rc;
}

int conn_send(struct conn *c, const void *data, size_t len, int flags)
{
    return send_copy(c, data, len, flags, c->ws != NULL);
}

int conn_send_bytes(struct conn *c, const void *data, size_t len, int flags)
{
    return send_copy(c, data, len, flags, false);
}

static void on_write(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct conn *c = w->c;
    struct outq_entry *e = w->entries;
    while (e) {
        struct outq_entry *n = e->next;
        chunk_unref(e->ch);
        free(e);
        e = n;
    }
    free(w->cipher);
    c->q_bytes -= w->bytes;
    c->writing = false;
    c->write_progress_ms = uv_now(c->h->loop);
    free(w);
    if (c->handle_closed)
        return;
    if (status < 0) {
        log_debug("conn", "%s: write failed: %s", c->peer, uv_strerror(status));
        conn_close(c, false);
        return;
    }
    if (!c->closing && c->q_bytes <= c->q_max / 4) {
        if (c->reading_paused) {
            c->reading_paused = false;
            update_reading(c);
        }
        release_waiters(c);
        if (c->handler->on_drain)
            c->handler->on_drain(c->ud);
    }
    if (c->q_head || c->notify_pending)
        schedule_flush(c);
    else if (c->close_after_flush)
        start_shutdown(c);
}

/* Plaintext: hand up to MAX_IOV chunks to one uv_write, zero-copy. */
static int flush_plain(struct conn *c, struct write_req *w)
{
    uv_buf_t iov[MAX_IOV];
    unsigned n = 0;
    struct outq_entry *last = NULL;
    for (struct outq_entry *e = c->q_head; e && n < MAX_IOV && w->bytes < MAX_WRITE_BYTES;
         e = e->next) {
        iov[n++] = uv_buf_init(e->ch->data, (unsigned)e->ch->len);
        w->bytes += e->ch->len;
        last = e;
    }
    w->entries = c->q_head;
    c->q_head = last->next;
    if (c->q_head == NULL)
        c->q_tail = NULL;
    last->next = NULL;
    return uv_write(&w->req, (uv_stream_t *)&c->tcp, iov, n, on_write);
}

/* TLS: encrypt what is queued, up to MAX_WRITE_BYTES, into one buffer (raw
 * entries copied in clear, in order), then one uv_write. */
static int flush_tls(struct conn *c, struct write_req *w)
{
    size_t plain = 0, cap = 0, len = 0;
    char *out = NULL;
    int rc = 0;
    struct outq_entry *e = c->q_head;
    /* Plaintext waits for the handshake to finish (our side of an outgoing
     * connection may queue its stream header at once). */
    while (e && plain < MAX_WRITE_BYTES && (e->raw || tls_established(c->tls))) {
        struct outq_entry *n = e->next;
        plain += e->ch->len;
        if (rc == 0) {
            if (!e->raw && tls_write(c->tls, e->ch->data, e->ch->len) != 0)
                rc = -1;
            size_t need = len + tls_pending(c->tls) + (e->raw ? e->ch->len : 0);
            if (rc == 0 && need > cap) {
                cap = need + 1024;
                char *p = realloc(out, cap);
                if (p == NULL)
                    rc = -1;
                else
                    out = p;
            }
            if (rc == 0 && e->raw) {
                memcpy(out + len, e->ch->data, e->ch->len);
                len += e->ch->len;
            }
            if (rc == 0)
                len += tls_take(c->tls, out + len, cap - len);
        }
        chunk_unref(e->ch);
        free(e);
        e = n;
    }
    c->q_head = e;
    if (e == NULL)
        c->q_tail = NULL;
    /* Handshake records produced by reads are in the BIO too. */
    size_t pend = tls_pending(c->tls);
    if (rc == 0 && pend > 0) {
        char *p = realloc(out, len + pend);
        if (p == NULL) {
            rc = -1;
        } else {
            out = p;
            len += tls_take(c->tls, out + len, pend);
        }
    }
    /* q_bytes counted plaintext; from here on the ciphertext is in flight. */
    c->q_bytes -= plain;
    c->q_bytes += len;
    w->bytes = len;
    w->cipher = out;
    if (rc != 0) {
        log_warn("conn", "%s: TLS write failed: %s", c->peer, tls_error(c->tls));
        return -1;
    }
    if (len == 0)
        return 1; /* nothing to write */
    uv_buf_t b = uv_buf_init(out, (unsigned)len);
    return uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
}

static void flush(struct conn *c)
{
    if (c->writing || c->handle_closed)
        return;
    if (c->sink) {
        /* The owner takes the output when it has a request to answer. */
        if (c->q_head)
            c->sink->on_output(c->sink_ud);
        else if (c->close_after_flush)
            close_now(c);
        return;
    }
    if (c->notify_pending && c->q_head == NULL) {
        c->notify_pending = false;
        tls_close_notify(c->tls);
    }
    if (c->q_head == NULL && !(c->tls && tls_pending(c->tls) > 0)) {
        if (c->close_after_flush)
            start_shutdown(c);
        return;
    }
    struct write_req *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        conn_close(c, false);
        return;
    }
    w->c = c;
    int rc = (c->tls && !(c->q_head && c->q_head->raw && c->q_tail->raw)) ? flush_tls(c, w)
                                                                           : flush_plain(c, w);
    if (rc == 0) {
        c->writing = true;
        return;
    }
    /* Not written: undo the in-flight accounting. */
    struct outq_entry *e = w->entries;
    while (e) {
        struct outq_entry *n = e->next;
        chunk_unref(e->ch);
        free(e);
        e = n;
    }
    c->q_bytes -= w->bytes;
    free(w->cipher);
    free(w);
    if (rc < 0)
        conn_close(c, false);
    else if (c->close_after_flush && c->q_head == NULL)
        start_shutdown(c);
}

bool conn_write_stalled(const struct conn *c, uint64_t now, uint64_t limit_ms)
{
    return c->q_bytes > 0 && now - c->write_progress_ms > limit_ms;
}

void conn_flush_all(struct herald *h)
{
    while (h->flush_list) {
        struct conn *c = h->flush_list;
        h->flush_list = c->flush_next;
        c->in_flush_list = false;
        flush(c);
    }
    /* A new turn: budgets start again, after this turn's output went out. */
    h->turn++;
    while (h->resume_list) {
        struct conn *c = h->resume_list;
        h->resume_list = c->resume_next;
        c->turn_spent = false;
        update_reading(c);
    }
}

unsigned conn_ip_adjust(struct ip_count **table, const char *ip, int delta)
{
    struct ip_count *ic = NULL;
    HASH_FIND_STR(*table, ip, ic);
    if (ic == NULL) {
        if (delta <= 0)
            return 0;
        ic = calloc(1, sizeof(*ic));
        if (ic == NULL)
            return 0;
        snprintf(ic->ip, sizeof(ic->ip), "%s", ip);
        HASH_ADD_STR(*table, ip, ic);
    }
    if (delta > 0)
        ic->n++;
    else if (delta < 0 && ic->n > 0)
        ic->n--;
    unsigned n = ic->n;
    if (n == 0) {
        HASH_DEL(*table, ic);
        free(ic);
    }
    return n;
}

bool conn_addr_is_loopback(const char *addr)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, addr, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, addr, &a6) != 1)
        return false;
    return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
}

void conn_set_limits(struct conn *c, size_t soft, size_t hard)
{
    c->q_max = soft;
    c->q_hard = hard < soft ? soft : hard;
}

int conn_starttls(struct conn *c, struct ssl_ctx_st *ctx)
{
    if (c->tls)
        return -1;
    c->tls = tls_new(ctx);
    if (c->tls == NULL)
        return -1;
    for (struct outq_entry *e = c->q_head; e; e = e->next)
        e->raw = true;
    return 0;
}

int conn_starttls_client(struct conn *c, struct ssl_ctx_st *ctx, const char *sni)
{
    if (c->tls)
        return -1;
    c->tls = tls_new_client(ctx, sni);
    if (c->tls == NULL)
        return -1;
    for (struct outq_entry *e = c->q_head; e; e = e->next)
        e->raw = true;
    schedule_flush(c);
    return 0;
}

bool conn_is_tls(const struct conn *c) { return c->tls != NULL || c->secure; }

void conn_hold_input(struct conn *c, bool hold)
{
    if (c->closing || c->input_held == hold)
        return;
    c->input_held = hold;
    update_reading(c);
}

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = hd->data;
    /* Never read past this turn's budget (it may be below the buffer). */
    size_t used = c->turn_id == c->h->turn ? c->turn_bytes : 0;
    size_t room = used < c->read_budget ? c->read_budget - used : 0;
    buf->base = c->h->rbuf;
    /* A closing connection only discards: it reads whole buffers. */
    buf->len = room > 0 && room < sizeof(c->h->rbuf) && !c->closing ? room : sizeof(c->h->rbuf);
}

static void deliver(struct conn *c, const char *data, size_t len)
{
    if (c->closing)
        return;
    if (c->ws)
        ws_input(c, data, len);
    else
        c->handler->on_data(c->ud, data, len);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (nread != UV_EOF)
            log_debug("conn", "%s: read error: %s", c->peer, uv_strerror((int)nread));
        /* The peer is gone: whatever is queued cannot be delivered. */
        close_now(c);
        return;
    }
    if (c->closing)
        return; /* lingering close: input is discarded */
    struct herald *h = c->h;
    c->last_read_ms = uv_now(h->loop);
    /* Output queued on others while this input is handled is c's doing:
     * conn_wait_for paces c if it fills someone's queue. */
    h->input_conn = c;
    if (c->tls == NULL) {
        deliver(c, buf->base, (size_t)nread);
    } else if (tls_feed(c->tls, buf->base, (size_t)nread) != 0) {
        close_now(c);
    } else {
        char plain[16384];
        for (;;) {
            int n = tls_read(c->tls, plain, sizeof(plain));
            if (n < 0) {
                log_info("conn", "%s: TLS: %s", c->peer, tls_error(c->tls));
                /* Send any alert OpenSSL queued, then close. */
                schedule_flush(c);
                conn_close(c, true);
                break;
            }
            if (n == 0 || c->closing)
                break;
            deliver(c, plain, (size_t)n);
        }
        if (tls_pending(c->tls) > 0 || (c->q_head && tls_established(c->tls)))
            schedule_flush(c);
    }
    h->input_conn = NULL;
    if (c->closing)
        return;
    /* The read budget: libuv hands over up to 32 reads of one socket in a
     * row; past the budget, c waits for the next turn, so that what its
     * input produced (answers, messages, this turn's commit and its
     * notifications) is flushed first and other connections are served. */
    if (c->turn_id != h->turn) {
        c->turn_id = h->turn;
        c->turn_bytes = 0;
    }
    c->turn_bytes += (size_t)nread;
    if (c->turn_bytes >= c->read_budget && !c->turn_spent) {
        c->turn_spent = true;
        c->resume_next = h->resume_list;
        h->resume_list = c;
    }
    /* Back-pressure: a client that does not read its replies stops being
     * read until its queue drains (see docs/architecture.md). */
    if (c->q_bytes > c->q_max / 2)
        c->reading_paused = true;
    update_reading(c);
}

/* A conn with its (not yet connected) handle, linked and counted. */
static struct conn *conn_alloc(struct herald *h)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->h = h;
    c->q_max = c->q_hard = h->cfg->max_outq_bytes;
    c->read_budget = h->cfg->max_read_per_turn;
    if (uv_tcp_init(h->loop, &c->tcp) != 0) {
        free(c);
        return NULL;
    }
    c->tcp.data = c;
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->nconns++;
    c->last_read_ms = uv_now(h->loop);
    return c;
}

struct conn *conn_accept(struct herald *h, uv_stream_t *server)
{
    struct conn *c = conn_alloc(h);
    if (c == NULL)
        return NULL;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        close_now(c);
        return NULL;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    strcpy(c->peer, "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&ss, c->peer, sizeof(c->peer));
        else if (ss.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer, sizeof(c->peer));
    }
    return c;
}

static void on_connected(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    free(req);
    if (c->handle_closed)
        return;
    if (status != 0) {
        log_info("conn", "%s: connect failed: %s", c->peer, uv_strerror(status));
        close_now(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->last_read_ms = c->write_progress_ms = uv_now(c->h->loop);
    c->input_held = false;
    update_reading(c);
    if (c->handler->on_connect)
        c->handler->on_connect(c->ud);
}

/* Binds c's socket to bind_ip (port 0) when it is a specific address of
 * addr's family. */
static void bind_source(struct conn *c, const struct sockaddr *addr, const char *bind_ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (bind_ip == NULL || strcmp(bind_ip, "0.0.0.0") == 0 || strcmp(bind_ip, "::") == 0)
        return;
    int rc = addr->sa_family == AF_INET    ? uv_ip4_addr(bind_ip, 0, (struct sockaddr_in *)&ss)
             : addr->sa_family == AF_INET6 ? uv_ip6_addr(bind_ip, 0, (struct sockaddr_in6 *)&ss)
                                           : -1;
    if (rc != 0)
        return; /* another family: the kernel chooses */
    rc = uv_tcp_bind(&c->tcp, (const struct sockaddr *)&ss, 0);
    if (rc != 0)
        log_debug("conn", "%s: cannot bind the source address %s: %s", c->peer, bind_ip,
                  uv_strerror(rc));
}

struct conn *conn_connect(struct herald *h, const struct sockaddr *addr, const char *bind_ip,
                          const char *peer, const struct conn_handler *handler, void *ud)
{
    struct conn *c = conn_alloc(h);
    uv_connect_t *req = c ? malloc(sizeof(*req)) : NULL;
    if (req == NULL) {
        if (c)
            close_now(c);
        return NULL;
    }
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    c->handler = handler;
    c->ud = ud;
    c->input_held = true; /* no reads before the connection is up */
    req->data = c;
    bind_source(c, addr, bind_ip);
    int rc = uv_tcp_connect(req, &c->tcp, addr, on_connected);
    if (rc != 0) {
        log_info("conn", "%s: connect failed: %s", peer, uv_strerror(rc));
        free(req);
        c->handler = NULL; /* the caller learns of it from NULL, not on_close */
        close_now(c);
        return NULL;
    }
    return c;
}

struct conn *conn_new_virtual(struct herald *h, const char *peer, const struct conn_sink *sink,
                              void *ud)
{
    /* A handle without a socket: closing it is still deferred to libuv's
     * close callback, so a virtual connection is freed like any other. */
    struct conn *c = conn_alloc(h);
    if (c == NULL)
        return NULL;
    c->sink = sink;
    c->sink_ud = ud;
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    return c;
}

void conn_inject(struct conn *c, const char *data, size_t len)
{
    struct herald *h = c->h;
    c->last_read_ms = uv_now(h->loop);
    struct conn *prev = h->input_conn;
    h->input_conn = c;
    deliver(c, data, len);
    h->input_conn = prev;
}

size_t conn_take(struct conn *c, struct buf *out)
{
    size_t taken = 0;
    while (c->q_head) {
        struct outq_entry *e = c->q_head;
        c->q_head = e->next;
        buf_append(out, e->ch->data, e->ch->len);
        taken += e->ch->len;
        chunk_unref(e->ch);
        free(e);
    }
    c->q_tail = NULL;
    c->q_bytes -= taken;
    c->write_progress_ms = uv_now(c->h->loop);
    if (!c->closing) {
        release_waiters(c);
        if (c->handler->on_drain)
            c->handler->on_drain(c->ud);
    }
    if (c->q_head == NULL && c->close_after_flush)
        close_now(c);
    return taken;
}

int conn_start(struct conn *c, const struct conn_handler *handler, void *ud)
{
    c->handler = handler;
    c->ud = ud;
    update_reading(c);
    return c->handle_closed ? HERALD_EIO : 0;
}
