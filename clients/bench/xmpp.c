/* xmpp.c — one minimal XMPP client connection of herald-bench.
 *
 * The state machine: TCP connect → stream header → features → (optional
 * XEP-0077 registration) → SASL PLAIN → stream restart → bind → (session, if
 * required) → initial presence (if asked) → ready. After that the client only
 * sends what herald-bench.c asks (pubsub iqs) and reports what comes back:
 * iq answers by id and pubsub notifications carrying a bench payload.
 *
 * Over WebSocket (RFC 7395, --transport ws) the same machine runs after the
 * HTTP upgrade (ws.c): the stream header is an <open/> message, and each
 * message the server sends is one top-level unit, so the stanza splitter below
 * is skipped (xclient_ws_message); expat is given a stream element of its own
 * when the server's <open/> arrives, so the callbacks see the same depths.
 *
 * Parsing: expat without namespace processing (element names are matched on
 * their local part, after any prefix) for speed, since a fan-out run parses
 * every notification the server sends. Per top-level stanza the parser keeps
 * only the few fields the bench needs (no tree). Reads go into one shared
 * 64 KiB buffer (reads are handled synchronously); output is appended to the
 * client's `out` buffer and written once per loop turn by bench's uv_prepare
 * handle, one uv_write per client. */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ST_OTHER, ST_FEATURES, ST_SUCCESS, ST_FAILURE, ST_IQ, ST_MESSAGE, ST_STREAM_ERROR };
enum { IQ_NONE, IQ_GET, IQ_SET, IQ_RESULT, IQ_ERROR };
enum { COL_NONE, COL_MECHANISM, COL_JID, COL_JSON };

static const char *local_name(const char *name)
{
    const char *p = strrchr(name, ':');
    return p ? p + 1 : name;
}

static const char *attr(const XML_Char **atts, const char *name)
{
    for (int i = 0; atts[i]; i += 2)
        if (strcmp(local_name(atts[i]), name) == 0 && strncmp(atts[i], "xmlns", 5) != 0)
            return atts[i + 1];
    return NULL;
}

static void fail(struct xclient *c, const char *why)
{
    if (c->state == XS_DEAD)
        return;
    c->state = XS_DEAD;
    bench_client_failed(c->b, c, why);
}

void xclient_fail(struct xclient *c, const char *why)
{
    fail(c, why);
}

void xclient_sendv(struct xclient *c, const uv_buf_t *parts, int n)
{
    if (c->closed)
        return;
    if (c->ws) {
        /* One stanza, one message (RFC 7395 §3.3.3). A message is parsed on its own, so a
         * stanza must declare its namespace: add xmlns='jabber:client' to a top-level iq,
         * presence or message that has none (Prosody's mod_websocket otherwise sees an
         * element in no namespace and closes the stream with unsupported-stanza-type). */
        static const char ns[] = " xmlns='jabber:client'";
        const char *s = parts[0].base, *gt;
        size_t l = parts[0].len, nl = 0;
        if (l > 3 && s[0] == '<')
            nl = strncmp(s, "<iq", 3) == 0 ? 3 : (l > 9 && strncmp(s, "<presence", 9) == 0) ? 9
               : (l > 8 && strncmp(s, "<message", 8) == 0) ? 8 : 0;
        if (nl > 0 && (s[nl] == ' ' || s[nl] == '/' || s[nl] == '>') && n < 16
            && (gt = memchr(s, '>', l)) != NULL && !memmem(s, (size_t)(gt - s), "xmlns=", 6)) {
            uv_buf_t v[18];
            v[0] = uv_buf_init((char *)s, (unsigned)nl);
            v[1] = uv_buf_init((char *)ns, sizeof ns - 1);
            v[2] = uv_buf_init((char *)s + nl, (unsigned)(l - nl));
            for (int i = 1; i < n; i++)
                v[i + 2] = parts[i];
            if (ws_send_message(c, v, n + 2) != 0)
                fail(c, "out of memory");
            return;
        }
        if (ws_send_message(c, parts, n) != 0)
            fail(c, "out of memory");
        return;
    }
    for (int i = 0; i < n; i++) {
        if (bbuf_append(&c->out, parts[i].base, parts[i].len) != 0) {
            fail(c, "out of memory");
            return;
        }
    }
    bench_mark_dirty(c->b, c);
}

void xclient_send(struct xclient *c, const char *s, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)s, (unsigned)n);
    xclient_sendv(c, &b, 1);
}

static void send_str(struct xclient *c, const char *s)
{
    xclient_send(c, s, strlen(s));
}

static void on_write(uv_write_t *req, int status)
{
    struct xclient *c = req->data;
    c->writing = 0;
    c->wbuf.len = 0;
    if (status < 0) {
        if (!c->closed)
            fail(c, uv_strerror(status));
        return;
    }
    if (c->out.len > 0)
        bench_mark_dirty(c->b, c);
}

void xclient_flush(struct xclient *c)
{
    c->dirty = 0;
    if (c->writing || c->closed || c->out.len == 0)
        return;
    struct bbuf t = c->wbuf;
    c->wbuf = c->out;
    c->out = t;
    c->out.len = 0;
    uv_buf_t buf = uv_buf_init(c->wbuf.data, (unsigned)c->wbuf.len);
    c->wreq.data = c;
    int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
    if (rc < 0) {
        fail(c, uv_strerror(rc));
        return;
    }
    c->writing = 1;
}

static void send_header(struct xclient *c)
{
    char hdr[512];
    int n = c->ws ? snprintf(hdr, sizeof hdr,
                             "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='%s' version='1.0'/>",
                             c->domain)
                  : snprintf(hdr, sizeof hdr,
                             "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                             "xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>",
                             c->domain);
    if (n < 0 || (size_t)n >= sizeof hdr) {
        fail(c, "domain too long");
        return;
    }
    xclient_send(c, hdr, (size_t)n);
}

static void user_name(const struct xclient *c, char *out, size_t cap)
{
    snprintf(out, cap, "%s%d", c->b->users, c->b->first_user + c->index);
}

static void send_auth(struct xclient *c)
{
    if (!c->feat_plain) {
        fail(c, "the server does not offer SASL PLAIN on this stream");
        return;
    }
    char user[128], raw[384], b64[600], msg[768];
    user_name(c, user, sizeof user);
    size_t ul = strlen(user), pl = strlen(c->b->password);
    if (2 + ul + pl > sizeof raw) {
        fail(c, "user name or password too long");
        return;
    }
    /* authzid empty, then authcid and password, NUL-separated (RFC 4616). */
    raw[0] = '\0';
    memcpy(raw + 1, user, ul);
    raw[1 + ul] = '\0';
    memcpy(raw + 2 + ul, c->b->password, pl);
    if (base64_encode((const unsigned char *)raw, 2 + ul + pl, b64, sizeof b64) != 0) {
        fail(c, "credentials too long");
        return;
    }
    int n = snprintf(msg, sizeof msg,
                     "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>", b64);
    if (n < 0 || (size_t)n >= sizeof msg) {
        fail(c, "credentials too long");
        return;
    }
    xclient_send(c, msg, (size_t)n);
    c->state = XS_AUTH;
}

static void send_register(struct xclient *c)
{
    char user[128], msg[640];
    user_name(c, user, sizeof user);
    int n = snprintf(msg, sizeof msg,
                     "<iq type='set' id='reg'><query xmlns='jabber:iq:register'>"
                     "<username>%s</username><password>%s</password></query></iq>",
                     user, c->b->password);
    if (n < 0 || (size_t)n >= sizeof msg) {
        fail(c, "user name or password too long");
        return;
    }
    xclient_send(c, msg, (size_t)n);
    c->state = XS_REGISTER;
}

/* XEP-0198 (--sm N): count every stanza; acknowledge every N, and when asked. */
static void sm_ack(struct xclient *c)
{
    char a[64];
    int n = snprintf(a, sizeof a, "<a xmlns='urn:xmpp:sm:3' h='%u'/>", c->sm_h);
    xclient_send(c, a, (size_t)n);
}

static void sm_stanza(struct xclient *c)
{
    if (c->sm_on && ++c->sm_h % c->b->sm_every == 0)
        sm_ack(c);
}

static void become_ready(struct xclient *c)
{
    if (c->b->sm_every) {
        send_str(c, "<enable xmlns='urn:xmpp:sm:3' resume='true'/>");
        c->sm_on = 1;
        c->sm_h = 0;
    }
    if (c->b->presence)
        send_str(c, "<presence/>");
    c->state = XS_READY;
    bench_client_ready(c->b, c);
}

/* ---- expat callbacks ---- */

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    struct xclient *c = ud;
    c->depth++;
    if (c->closed || c->depth == 1)
        return;
    const char *ln = local_name(name);

    if (c->depth == 2) {
        c->stanza = ST_OTHER;
        c->iq_type = IQ_NONE;
        c->iq_id[0] = '\0';
        c->cond[0] = '\0';
        c->in_error = 0;
        c->collect = COL_NONE;
        c->sub_pending = 0;
        if (strcmp(ln, "message") == 0) {
            c->stanza = ST_MESSAGE;
        } else if (strcmp(ln, "iq") == 0) {
            c->stanza = ST_IQ;
            const char *t = attr(atts, "type");
            const char *id = attr(atts, "id");
            if (t)
                c->iq_type = strcmp(t, "result") == 0  ? IQ_RESULT
                             : strcmp(t, "error") == 0 ? IQ_ERROR
                             : strcmp(t, "get") == 0   ? IQ_GET
                             : strcmp(t, "set") == 0   ? IQ_SET
                                                       : IQ_NONE;
            if (id)
                snprintf(c->iq_id, sizeof c->iq_id, "%s", id);
        } else if (strcmp(ln, "features") == 0) {
            c->stanza = ST_FEATURES;
            c->feat_plain = c->feat_bind = c->feat_session = c->feat_session_opt = 0;
        } else if (strcmp(ln, "success") == 0) {
            c->stanza = ST_SUCCESS;
        } else if (strcmp(ln, "failure") == 0) {
            c->stanza = ST_FAILURE;
        } else if (strcmp(ln, "error") == 0) {
            c->stanza = ST_STREAM_ERROR;
        }
        return;
    }

    switch (c->stanza) {
    case ST_MESSAGE:
        if (strcmp(ln, "bench") == 0) {
            const char *t = attr(atts, "t");
            if (t)
                bench_notification(c->b, c, strtoull(t, NULL, 10), bench_now_ns);
        } else if (strcmp(ln, "json") == 0) {
            c->collect = COL_JSON;
            c->text_len = 0;
        }
        break;
    case ST_IQ:
        if (c->depth == 3 && strcmp(ln, "error") == 0) {
            c->in_error = 3;
        } else if (c->in_error && c->depth == 4 && !c->cond[0] && strcmp(ln, "text") != 0) {
            snprintf(c->cond, sizeof c->cond, "%s", ln);
        } else if (strcmp(ln, "jid") == 0) {
            c->collect = COL_JID;
            c->text_len = 0;
        } else if (strcmp(ln, "subscription") == 0) {
            const char *s = attr(atts, "subscription");
            if (s && strcmp(s, "subscribed") != 0)
                c->sub_pending = 1;
        }
        break;
    case ST_FEATURES:
        if (strcmp(ln, "mechanism") == 0) {
            c->collect = COL_MECHANISM;
            c->text_len = 0;
        } else if (c->depth == 3 && strcmp(ln, "bind") == 0) {
            c->feat_bind = 1;
        } else if (c->depth == 3 && strcmp(ln, "session") == 0) {
            c->feat_session = 1;
        } else if (c->depth == 4 && strcmp(ln, "optional") == 0) {
            c->feat_session_opt = 1;
        }
        break;
    case ST_FAILURE:
    case ST_STREAM_ERROR:
        if (c->depth == 3 && !c->cond[0] && strcmp(ln, "text") != 0)
            snprintf(c->cond, sizeof c->cond, "%s", ln);
        break;
    default:
        break;
    }
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    struct xclient *c = ud;
    if (c->collect == COL_NONE || len <= 0)
        return;
    size_t room = sizeof c->text - 1 - c->text_len;
    size_t n = (size_t)len < room ? (size_t)len : room;
    memcpy(c->text + c->text_len, s, n);
    c->text_len += n;
    c->text[c->text_len] = '\0';
}

static void end_collect(struct xclient *c)
{
    c->text[c->text_len] = '\0';
    switch (c->collect) {
    case COL_MECHANISM:
        if (strcmp(c->text, "PLAIN") == 0)
            c->feat_plain = 1;
        break;
    case COL_JID:
        if (c->text_len < sizeof c->jid)
            memcpy(c->jid, c->text, c->text_len + 1);
        break;
    case COL_JSON: {
        /* The HTTP scenario's JSON body: {"p":..,"s":..,"t":..,"pad":".."} */
        const char *t = strstr(c->text, "\"t\":");
        if (t)
            bench_notification(c->b, c, strtoull(t + 4, NULL, 10), bench_now_ns);
        break;
    }
    default:
        break;
    }
    c->collect = COL_NONE;
}

static void stanza_done(struct xclient *c)
{
    switch (c->stanza) {
    case ST_FEATURES:
        if (c->state == XS_FEATURES) {
            if (c->b->do_register)
                send_register(c);
            else
                send_auth(c);
        } else if (c->state == XS_FEATURES2) {
            if (!c->feat_bind) {
                fail(c, "no resource binding offered after authentication");
                return;
            }
            send_str(c, "<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
            c->state = XS_BIND;
        }
        break;
    case ST_SUCCESS:
        if (c->state == XS_AUTH) {
            c->restart = 1;
            c->state = XS_FEATURES2;
            XML_StopParser(c->xp, XML_FALSE);
        }
        break;
    case ST_FAILURE: {
        char why[96];
        snprintf(why, sizeof why, "authentication failed: %s", c->cond[0] ? c->cond : "?");
        fail(c, why);
        break;
    }
    case ST_STREAM_ERROR: {
        char why[96];
        snprintf(why, sizeof why, "stream error: %s", c->cond[0] ? c->cond : "?");
        fail(c, why);
        break;
    }
    case ST_IQ:
        if (c->iq_type == IQ_GET || c->iq_type == IQ_SET) {
            /* A server ping or probe: answer it so the session stays up. */
            char msg[128];
            int n = snprintf(msg, sizeof msg, "<iq type='result' id='%s'/>", c->iq_id);
            if (n > 0 && (size_t)n < sizeof msg)
                xclient_send(c, msg, (size_t)n);
            break;
        }
        if (c->iq_type != IQ_RESULT && c->iq_type != IQ_ERROR)
            break;
        if (c->state == XS_REGISTER && strcmp(c->iq_id, "reg") == 0) {
            if (c->iq_type == IQ_RESULT || strcmp(c->cond, "conflict") == 0) {
                send_auth(c);
            } else {
                char why[96];
                snprintf(why, sizeof why, "registration failed: %s", c->cond[0] ? c->cond : "?");
                fail(c, why);
            }
        } else if (c->state == XS_BIND && strcmp(c->iq_id, "bind") == 0) {
            if (c->iq_type != IQ_RESULT || !c->jid[0]) {
                char why[96];
                snprintf(why, sizeof why, "bind failed: %s", c->cond[0] ? c->cond : "?");
                fail(c, why);
            } else if (c->feat_session && !c->feat_session_opt) {
                send_str(c, "<iq type='set' id='sess'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>");
                c->state = XS_SESSION;
            } else {
                become_ready(c);
            }
        } else if (c->state == XS_SESSION && strcmp(c->iq_id, "sess") == 0) {
            if (c->iq_type != IQ_RESULT)
                fail(c, "session establishment failed");
            else
                become_ready(c);
        } else if (c->state == XS_READY) {
            const char *cond = c->cond[0] ? c->cond : "undefined-condition";
            if (c->iq_type == IQ_RESULT && c->sub_pending)
                cond = "subscription-pending";
            bench_iq_answer(c->b, c, c->iq_id, c->iq_type == IQ_RESULT && !c->sub_pending, cond);
        }
        break;
    default:
        break;
    }
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    (void)name;
    struct xclient *c = ud;
    if (!c->closed) {
        if (c->collect != COL_NONE && c->depth >= 3)
            end_collect(c);
        if (c->depth == 2)
            stanza_done(c);
        else if (c->depth == 1)
            fail(c, "the server closed the stream");
    }
    c->depth--;
}

static int parser_setup(struct xclient *c)
{
    if (!c->xp) {
        c->xp = XML_ParserCreate(NULL);
        if (!c->xp)
            return -1;
    } else if (!XML_ParserReset(c->xp, NULL)) {
        return -1;
    }
    XML_SetUserData(c->xp, c);
    XML_SetElementHandler(c->xp, on_start, on_end);
    XML_SetCharacterDataHandler(c->xp, on_text);
    c->depth = 0;
    c->collect = COL_NONE;
    return 0;
}

/* ---- the stanza splitter ----
 *
 * A light scanner finds the top-level elements of the stream (tags are
 * tracked with their quoted attribute values; text between tags cannot hold
 * '<'). Every unit that is not a <message> stanza (the stream header, stream
 * features, SASL, iq answers, presence, stream errors, the stream close) goes
 * to expat as it is, in order, so expat still sees a well-formed stream. A
 * <message> is read by fast_message, which only looks for the bench payload's
 * send time: pubsub notifications are nearly all the traffic of a fan-out run,
 * and expat costs about 5 us for each (measured with perf), which made the
 * load generator use more CPU than the server it measured. A partial unit at
 * the end of a read is kept in `pend` with the scanner's state. The servers
 * are trusted here (loopback benchmarks): a malformed <message> is not
 * diagnosed, only skipped. */

enum { TAG_FIRST, TAG_START, TAG_END, TAG_DECL };

/* The next '<' in [p, end) that starts `tag` (tlen bytes), or NULL. Hops from
 * tag to tag with memchr: text and payload padding are skipped at memchr
 * speed. */
static const char *find_tag(const char *p, const char *end, const char *tag, size_t tlen)
{
    while (p < end) {
        p = memchr(p, '<', (size_t)(end - p));
        if (!p || (size_t)(end - p) < tlen)
            return NULL;
        if (memcmp(p, tag, tlen) == 0)
            return p;
        p++;
    }
    return NULL;
}

static void fast_message(struct xclient *c, const char *s, size_t n)
{
    const char *end = s + n;
    const char *p = find_tag(s + 1, end, "<bench ", 7);
    if (p) {
        const char *gt = memchr(p, '>', (size_t)(end - p));
        if (!gt)
            return;
        const char *t = memmem(p, (size_t)(gt - p), " t=", 3);
        if (t && t + 4 < gt)
            bench_notification(c->b, c, strtoull(t + 4, NULL, 10), bench_now_ns);
        return;
    }
    p = find_tag(s + 1, end, "<json", 5);
    if (p) {
        /* JSON text: the quotes may arrive as &quot; */
        const char *t = memmem(p, (size_t)(end - p), "\"t\":", 4);
        size_t skip = 4;
        if (!t) {
            t = memmem(p, (size_t)(end - p), "t&quot;:", 8);
            skip = 8;
        }
        if (t)
            bench_notification(c->b, c, strtoull(t + skip, NULL, 10), bench_now_ns);
    }
}

static void restart_stream(struct xclient *c)
{
    /* After <success/> the server waits for our new header, so nothing of
     * the old stream follows it. */
    c->restart = 0;
    c->in_msg = 0;
    c->sdepth = 0;
    c->in_tag = 0;
    c->pend.len = 0;
    c->scan_pos = 0;
    if (parser_setup(c) != 0) {
        fail(c, "parser reset failed");
        return;
    }
    send_header(c);
}

/* One complete unit of the stream; returns -1 when scanning must stop. */
static int emit_unit(struct xclient *c, const char *u, size_t n)
{
    if (c->sdepth == 1 && n > 8 && memcmp(u, "<message", 8) == 0 && (u[8] == ' ' || u[8] == '>')) {
        sm_stanza(c);
        fast_message(c, u, n);
        return c->closed ? -1 : 0;
    }
    if (c->sm_on && c->sdepth == 1 && n > 3) {
        if (memcmp(u, "<iq", 3) == 0 || (n > 9 && memcmp(u, "<presence", 9) == 0)) {
            sm_stanza(c);
        } else if (memcmp(u, "<r ", 3) == 0 || memcmp(u, "<r/", 3) == 0) {
            sm_ack(c);
            return 0;
        } else if (memcmp(u, "<a ", 3) == 0 || (n > 8 && memcmp(u, "<enabled", 8) == 0)) {
            return 0;
        }
    }
    enum XML_Status st = XML_Parse(c->xp, u, (int)n, 0);
    if (c->closed)
        return -1;
    if (c->restart) {
        restart_stream(c);
        return -1;
    }
    if (st != XML_STATUS_OK) {
        char why[128];
        snprintf(why, sizeof why, "XML from the server: %s", XML_ErrorString(XML_GetErrorCode(c->xp)));
        fail(c, why);
        return -1;
    }
    return 0;
}

static void scan_feed(struct xclient *c, const char *data, size_t n)
{
    const char *d = data;
    size_t len = n;
    if (c->pend.len) {
        if (bbuf_append(&c->pend, data, n) != 0) {
            fail(c, "out of memory");
            return;
        }
        d = c->pend.data;
        len = c->pend.len;
    }
    /* The scanner's state lives in locals in the loop (it runs over every
     * byte of every tag) and is saved at the end. */
    size_t i = c->scan_pos, start = 0;
    int sdepth = c->sdepth, in_tag = c->in_tag, kind = c->tag_kind;
    char quote = c->quote;
    while (i < len) {
        if (c->in_msg) {
            /* Inside a <message> stanza: hop to its end tag. "</message>"
             * cannot occur in text or attribute values ('<' is escaped
             * there), and the bench's payloads nest no messages. */
            const char *q = find_tag(d + i, d + len, "</message>", 10);
            if (!q) {
                /* Resume at the last '<' that may start the end tag. */
                const char *lt = memrchr(d + i, '<', len - i);
                i = lt && (size_t)(d + len - lt) < 10 ? (size_t)(lt - d) : len;
                break;
            }
            i = (size_t)(q - d) + 10;
            c->in_msg = 0;
            sm_stanza(c);
            fast_message(c, d + start, i - start);
            if (c->closed)
                return;
            start = i;
            continue;
        }
        if (!in_tag) {
            const char *lt = memchr(d + i, '<', len - i);
            if (!lt) {
                i = len;
                if (sdepth <= 1)
                    start = len; /* whitespace between stanzas: dropped */
                break;
            }
            i = (size_t)(lt - d);
            if (sdepth <= 1) {
                start = i;
                if (sdepth == 1) {
                    /* A stanza starts: is it a (not self-closing) <message>? */
                    if (len - i < 10) {
                        i = len;
                        break;
                    }
                    if (memcmp(lt, "<message", 8) == 0 && (lt[8] == ' ' || lt[8] == '>')) {
                        const char *gt = memchr(lt, '>', len - i);
                        if (!gt) {
                            i = len;
                            break;
                        }
                        if (gt[-1] != '/') {
                            c->in_msg = 1;
                            i = (size_t)(gt - d) + 1;
                            continue;
                        }
                    }
                }
            }
            in_tag = 1;
            kind = TAG_FIRST;
            quote = 0;
            i++;
            continue;
        }
        if (kind == TAG_FIRST) {
            char ch = d[i++];
            kind = ch == '/' ? TAG_END : (ch == '?' || ch == '!') ? TAG_DECL : TAG_START;
            continue;
        }
        if (quote) {
            const char *q = memchr(d + i, quote, len - i);
            if (!q) {
                i = len;
                break;
            }
            i = (size_t)(q - d) + 1;
            quote = 0;
            continue;
        }
        char ch = 0;
        while (i < len) {
            ch = d[i];
            if (ch == '>' || ch == '\'' || ch == '"')
                break;
            i++;
        }
        if (i == len)
            break;
        i++;
        if (ch != '>') {
            if (kind != TAG_END)
                quote = ch;
            continue;
        }
        /* The tag ended at d[i-1]; everything since `start` is in d, so
         * d[i-2] is the byte before '>'. */
        in_tag = 0;
        if (kind == TAG_START && d[i - 2] != '/')
            sdepth++;
        else if (kind == TAG_END)
            sdepth--;
        if (sdepth <= 1) {
            /* A unit ended: the XML declaration, the stream header, a stanza
             * or the stream close. */
            c->sdepth = sdepth;
            c->in_tag = 0;
            if (emit_unit(c, d + start, i - start) != 0)
                return;
            start = i;
        }
    }
    c->sdepth = sdepth;
    c->in_tag = in_tag;
    c->tag_kind = kind;
    c->quote = quote;
    /* Keep the partial unit [start, len) for the next read. */
    size_t rest = len - start;
    if (d == c->pend.data) {
        memmove(c->pend.data, c->pend.data + start, rest);
        c->pend.len = rest;
    } else if (rest > 0) {
        c->pend.len = 0;
        if (bbuf_append(&c->pend, d + start, rest) != 0) {
            fail(c, "out of memory");
            return;
        }
    }
    /* Resume where scanning stopped (relative to the kept bytes); a stanza
     * start too short to classify is looked at again from its '<'. */
    c->scan_pos = i >= start ? i - start : 0;
    if (!c->in_msg && !in_tag && sdepth == 1)
        c->scan_pos = 0;
    if (c->pend.len > (size_t)16 << 20)
        fail(c, "a stanza from the server is larger than 16 MiB");
}

/* ---- over WebSocket: one message, one unit ---- */

static int starts_with_tag(const char *s, size_t n, const char *tag, size_t tlen)
{
    return n > tlen && memcmp(s, tag, tlen) == 0 &&
           (s[tlen] == ' ' || s[tlen] == '/' || s[tlen] == '>' || s[tlen] == '\t' || s[tlen] == '\n' ||
            s[tlen] == '\r');
}

void xclient_ws_ready(struct xclient *c)
{
    c->state = XS_FEATURES;
    send_header(c);
}

void xclient_ws_message(struct xclient *c, const char *s, size_t n)
{
    if (c->closed || c->state == XS_DEAD)
        return;
    /* RFC 7395 has no whitespace keepalives and no XML declarations, but
     * neither would hurt: skip them. */
    while (n > 0 && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')) {
        s++;
        n--;
    }
    if (n >= 5 && memcmp(s, "<?xml", 5) == 0) {
        const char *q = memmem(s, n, "?>", 2);
        if (!q) {
            fail(c, "XML from the server: an unterminated XML declaration");
            return;
        }
        n -= (size_t)(q + 2 - s);
        s = q + 2;
        while (n > 0 && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')) {
            s++;
            n--;
        }
    }
    if (n == 0)
        return;
    if (starts_with_tag(s, n, "<open", 5)) {
        if (c->sdepth != 0) {
            fail(c, "a second <open/> from the server without a stream restart");
            return;
        }
        /* The stream element expat expects around the stanzas; the server's
         * <open/> carries nothing the bench needs. */
        static const char hdr[] = "<stream:stream xmlns='jabber:client' "
                                  "xmlns:stream='http://etherx.jabber.org/streams'>";
        c->sdepth = 1;
        if (XML_Parse(c->xp, hdr, (int)sizeof hdr - 1, 0) != XML_STATUS_OK)
            fail(c, "parser setup failed");
        return;
    }
    if (starts_with_tag(s, n, "<close", 6)) {
        fail(c, "the server closed the stream");
        return;
    }
    if (c->sdepth != 1) {
        fail(c, "a stanza from the server before its <open/>");
        return;
    }
    (void)emit_unit(c, s, n);
}

/* ---- libuv callbacks ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static char rbuf[65536];
    buf->base = rbuf;
    buf->len = sizeof rbuf;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct xclient *c = s->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        fail(c, nread == UV_EOF ? "the server closed the connection" : uv_strerror((int)nread));
        return;
    }
    bench_now_ns = uv_hrtime();
    if (c->ws)
        ws_feed(c, buf->base, (size_t)nread);
    else
        scan_feed(c, buf->base, (size_t)nread);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct xclient *c = req->data;
    if (c->closed)
        return;
    if (status < 0) {
        fail(c, uv_strerror(status));
        return;
    }
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0) {
        fail(c, uv_strerror(rc));
        return;
    }
    if (c->transport == TR_WS) {
        c->state = XS_UPGRADE;
        if (ws_start(c) != 0)
            fail(c, "WebSocket setup failed (memory or getrandom)");
        return;
    }
    c->state = XS_FEATURES;
    send_header(c);
}

int xclient_start(struct xclient *c)
{
    if (parser_setup(c) != 0)
        return UV_ENOMEM;
    int rc = uv_tcp_init(c->b->loop, &c->tcp);
    if (rc < 0)
        return rc;
    c->tcp.data = c;
    c->creq.data = c;
    (void)uv_tcp_nodelay(&c->tcp, 1);
    c->state = XS_CONNECTING;
    rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)(c->addr ? c->addr : &c->b->addr), on_connect);
    if (rc < 0) {
        c->closed = 1;
        uv_close((uv_handle_t *)&c->tcp, NULL);
        return rc;
    }
    return 0;
}

void xclient_close(struct xclient *c)
{
    if (c->closed || c->state == XS_NEW)
        return;
    c->closed = 1;
    uv_close((uv_handle_t *)&c->tcp, NULL);
}

void xclient_free(struct xclient *c)
{
    if (c->xp)
        XML_ParserFree(c->xp);
    c->xp = NULL;
    bbuf_free(&c->out);
    bbuf_free(&c->wbuf);
    bbuf_free(&c->pend);
    ws_free(c);
    free(c->sent_ns);
    free(c->sent_node);
    c->sent_ns = NULL;
    c->sent_node = NULL;
}
