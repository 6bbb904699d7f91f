/* stream.c - the client stream state machine (RFC 6120 §4-7).
 *
 *   bytes -> xmlp -> on_open  : check header, send header + features
 *                 -> on_stanza: STARTTLS (§5), SASL (§6), bind (§7), then
 *                               stanzas go to the router
 *                 -> on_close : answer </stream:stream> and close
 *
 * Stream restarts (after TLS and after SASL success) reset the parser; the
 * state moves back to ST_HEADER and the next header gets the next features. */
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "errors.h"
#include "jid.h"
#include "log.h"
#include "router.h"
#include "sasl.h"
#include "session.h"
#include "sm.h"
#include "store.h"
#include "tls.h"
#include "xml.h"
#include "xml_parser.h"

struct auth_delay {
    uv_timer_t timer;
    struct session *s;   /* NULL once the session has gone */
    char condition[32];
    unsigned retry_s;    /* > 0: a failure budget refused; say when to retry */
};

static void on_open(void *ud, const struct xnode *hdr, const char *default_ns);
static void on_stanza(void *ud, struct xnode *st, struct arena *a);
static void on_close(void *ud);

static const struct xmlp_callbacks parser_cb = {on_open, on_stanza, on_close};

int stream_init(struct session *s)
{
    const struct config *cfg = s->h->cfg;
    struct xmlp_limits lim = {cfg->max_stanza_size, cfg->max_depth};
    s->parser = xmlp_new(&lim, &parser_cb, s);
    return s->parser ? 0 : HERALD_ENOMEM;
}

void stream_on_data(void *ud, const char *data, size_t len)
{
    struct session *s = ud;
    if (s->state == ST_CLOSED)
        return;
    uint64_t units = s->units_in;
    enum xmlp_error e = xmlp_feed(s->parser, data, len);
    if (e != XMLP_OK && s->state != ST_CLOSED)
        session_stream_error(s, xmlp_condition(e), xmlp_strerror(e));
    /* RFC 7395 §3.3.3: a message is one complete element, no more, no less. */
    else if (s->framed && s->state != ST_CLOSED &&
             (s->units_in - units != 1 || !xmlp_between_stanzas(s->parser)))
        session_stream_error(s, "not-well-formed",
                             "a WebSocket message must hold exactly one complete element");
}

static bool tls_required(const struct session *s)
{
    return s->h->cfg->require_tls && !s->h->cfg->allow_plaintext;
}

/* ---- stream header and features ---- */

/* XEP-0178: the client presented a certificate that verified against
 * c2s.client_ca_file (and its CRL). */
static bool external_offered(const struct session *s)
{
    const char *why;
    return s->tls && s->h->cfg->client_ca_file && s->conn && s->conn->tls &&
           tls_peer_verified(s->conn->tls, &why);
}

static void send_features(struct session *s)
{
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "<stream:features>");
    if (s->bare == NULL) {
        /* RFC 7395 §3.8: no STARTTLS over WebSocket (wss:// is TLS). */
        if (!s->tls && s->h->c2s_tls_ctx && !s->framed) {
            buf_puts(&b, "<starttls xmlns='" NS_TLS "'>");
            if (tls_required(s))
                buf_puts(&b, "<required/>");
            buf_puts(&b, "</starttls>");
        }
        if (s->tls || !tls_required(s)) {
            if (s->sasl == NULL)
                s->sasl = hsasl_new(s->h->cfg->domain, s->tls, s->h->cfg->allow_plaintext, s->conn->peer);
            bool external = external_offered(s);
            if (s->sasl != NULL && (hsasl_mechanisms(s->sasl)[0] != '\0' || external)) {
                buf_puts(&b, "<mechanisms xmlns='" NS_SASL "'>");
                if (external) /* XEP-0178 §3: first, as the one that needs no password */
                    buf_puts(&b, "<mechanism>EXTERNAL</mechanism>");
                char list[256];
                snprintf(list, sizeof(list), "%s", hsasl_mechanisms(s->sasl));
                char *save = NULL;
                for (char *m = strtok_r(list, " ", &save); m; m = strtok_r(NULL, " ", &save)) {
                    buf_puts(&b, "<mechanism>");
                    buf_xml_text(&b, m, strlen(m));
                    buf_puts(&b, "</mechanism>");
                }
                buf_puts(&b, "</mechanisms>");
            }
        }
    } else {
        buf_puts(&b, "<bind xmlns='" NS_BIND "'/>"
                     "<session xmlns='" NS_SESSION "'><optional/></session>"
                     "<ver xmlns='urn:xmpp:features:rosterver'/>"      /* RFC 6121 §2.6 */
                     "<sub xmlns='urn:xmpp:features:pre-approval'/>"   /* RFC 6121 §3.4 */
                     "<sm xmlns='" NS_SM "'/>"                         /* XEP-0198 */
                     "<csi xmlns='" NS_CSI "'/>");                     /* XEP-0352 */
    }
    buf_puts(&b, "</stream:features>");
    if (buf_ok(&b))
        session_send(s, b.data, b.len);
    buf_free(&b);
}

static void on_open(void *ud, const struct xnode *hdr, const char *default_ns)
{
    struct session *s = ud;
    const char *version = xml_attr(hdr, "version");
    const char *to = xml_attr(hdr, "to");
    struct jid j;

    if (strcmp(default_ns, NS_CLIENT) != 0) {
        session_stream_error(s, "invalid-namespace", "the default namespace must be jabber:client");
        return;
    }
    if (to != NULL && (jid_parse_str(&j, to) != 0 || j.local[0] || j.resource[0] ||
                       strcmp(j.domain, s->h->cfg->domain) != 0)) {
        session_stream_error(s, "host-unknown", "this server does not serve that domain");
        return;
    }
    /* RFC 6120 §4.7.5: no version means 0.9, which we do not speak. */
    if (version == NULL || strtol(version, NULL, 10) < 1) {
        session_stream_error(s, "unsupported-version", "XMPP 1.0 is required");
        return;
    }
    /* A restarted stream gets a fresh stream id. */
    if (s->header_sent) {
        unsigned char rnd[8];
        if (RAND_bytes(rnd, sizeof(rnd)) == 1)
            for (int i = 0; i < 8; i++)
                snprintf(s->stream_id + 2 * i, 3, "%02x", rnd[i]);
    }
    session_send_header(s, 0);
    s->state = s->bare ? ST_BIND : ST_AUTH;
    send_features(s);
}

static void on_close(void *ud)
{
    session_close(ud);
}

/* ---- STARTTLS (RFC 6120 §5.4.2) ---- */

static void do_starttls(struct session *s)
{
    static const char failure[] = "<failure xmlns='" NS_TLS "'/>";
    static const char proceed[] = "<proceed xmlns='" NS_TLS "'/>";
    if (s->tls || s->h->c2s_tls_ctx == NULL || s->framed) {
        /* §5.4.2.2: failure, then the stream is closed (and never over
         * WebSocket or BOSH, RFC 7395 §3.8: TLS is the HTTP layer's). */
        session_send(s, failure, sizeof(failure) - 1);
        session_close(s);
        return;
    }
    session_send(s, proceed, sizeof(proceed) - 1);
    if (conn_starttls(s->conn, s->h->c2s_tls_ctx) != 0) {
        session_stream_error(s, "internal-server-error", "TLS setup failed");
        return;
    }
    s->tls = true;
    hsasl_free(s->sasl);  /* mechanisms change under TLS */
    s->sasl = NULL;
    s->state = ST_HEADER;
    xmlp_restart(s->parser);
}

/* ---- SASL (RFC 6120 §6) ---- */

static void send_sasl(struct session *s, const char *elem, const char *data, unsigned len,
                      bool has_data)
{
    struct buf b;
    buf_init(&b, 0);
    buf_printf(&b, "<%s xmlns='" NS_SASL "'", elem);
    if (!has_data) {
        buf_puts(&b, "/>");
    } else {
        buf_putc(&b, '>');
        if (len == 0)
            buf_putc(&b, '=');
        else
            buf_base64(&b, data, len);
        buf_printf(&b, "</%s>", elem);
    }
    if (buf_ok(&b))
        session_send(s, b.data, b.len);
    buf_free(&b);
}

static void send_failure(struct session *s, const char *condition, unsigned retry_s)
{
    struct buf b;
    buf_init(&b, 0);
    buf_printf(&b, "<failure xmlns='" NS_SASL "'><%s/>", condition);
    /* RFC 6120 §6.4.5: a failure may carry descriptive text. */
    if (retry_s > 0)
        buf_printf(&b, "<text xml:lang='en'>too many failed attempts; try again in %u s</text>",
                   retry_s);
    buf_puts(&b, "</failure>");
    if (buf_ok(&b))
        session_send(s, b.data, b.len);
    buf_free(&b);
    if (s->auth_failures >= s->h->cfg->max_failures)
        session_stream_error(s, "policy-violation", "too many failed authentication attempts");
}

static void delay_closed(uv_handle_t *hd) { free(hd->data); }

static void delay_fired(uv_timer_t *t)
{
    struct auth_delay *d = t->data;
    struct session *s = d->s;
    uv_close((uv_handle_t *)t, delay_closed);
    if (s == NULL)
        return;
    s->delay = NULL;
    conn_hold_input(s->conn, false);
    send_failure(s, d->condition, d->retry_s);
}

void stream_cancel_delay(struct session *s)
{
    if (s->delay == NULL)
        return;
    s->delay->s = NULL;
    uv_timer_stop(&s->delay->timer);
    uv_close((uv_handle_t *)&s->delay->timer, delay_closed);
    s->delay = NULL;
}

/* A failed attempt: answer after auth.failure_delay_ms (input is held
 * meanwhile), so that guessing passwords is slow on each connection; the
 * budgets in sasl.c bound guesses across connections. retry_s > 0: a budget
 * refused the attempt. Every line here can be caused at will, so each is
 * rate-limited. */
static void auth_failed(struct session *s, const char *condition, bool delay, unsigned retry_s)
{
    static struct log_limit fail_lim, refuse_lim;
    const char *account = s->sasl ? hsasl_account(s->sasl) : NULL;
    s->external_wait = false;
    if (strcmp(condition, "aborted") != 0) {
        s->auth_failures++;
        if (retry_s > 0) {
            s->h->stats.auth_refused++;
            /* sasl.c checks the address before the name is known, the
             * account once it is: a name here means the account's budget. */
            if (account != NULL)
                log_limited(&refuse_lim, LOG_WARN, "c2s",
                            "%s: authentication refused for %u s: too many failed logins on "
                            "account '%s'", s->conn->peer, retry_s, account);
            else
                log_limited(&refuse_lim, LOG_WARN, "c2s",
                            "%s: authentication refused for %u s: too many failed logins "
                            "from this address", s->conn->peer, retry_s);
        } else {
            s->h->stats.auth_failed++;
            log_limited(&fail_lim, LOG_INFO, "c2s",
                        "%s: authentication failed: %s (attempt %u of %u)", s->conn->peer,
                        condition, s->auth_failures, s->h->cfg->max_failures);
        }
    }
    hsasl_free(s->sasl);
    s->sasl = NULL;
    unsigned ms = s->h->cfg->failure_delay_ms;
    if (!delay || ms == 0) {
        send_failure(s, condition, retry_s);
        return;
    }
    struct auth_delay *d = calloc(1, sizeof(*d));
    if (d == NULL || uv_timer_init(s->h->loop, &d->timer) != 0) {
        free(d);
        send_failure(s, condition, retry_s);
        return;
    }
    d->s = s;
    d->timer.data = d;
    d->retry_s = retry_s;
    snprintf(d->condition, sizeof(d->condition), "%s", condition);
    s->delay = d;
    conn_hold_input(s->conn, true);
    uv_timer_start(&d->timer, delay_fired, ms, 0);
}

static void auth_succeeded(struct session *s, const char *bare, const char *mech, const char *out,
                           unsigned outlen);

static void sasl_result(struct session *s, const struct hsasl_result *r)
{
    if (r->status == HSASL_CONTINUE) {
        send_sasl(s, "challenge", r->out, r->outlen, true);
        return;
    }
    if (r->status == HSASL_FAILURE) {
        auth_failed(s, r->failure, true, r->retry_s);
        return;
    }
    const char *user = hsasl_user(s->sasl);
    char bare[2 * JID_PART_MAX + 2];
    if (user == NULL || snprintf(bare, sizeof(bare), "%s@%s", user, s->h->cfg->domain) >=
                            (int)sizeof(bare)) {
        auth_failed(s, "temporary-auth-failure", false, 0);
        return;
    }
    auth_succeeded(s, bare, hsasl_mech(s->sasl), r->out, r->has_out ? r->outlen : 0);
}

/* §6.4.6: <success/>, then the stream restarts. */
static void auth_succeeded(struct session *s, const char *bare, const char *mech, const char *out,
                           unsigned outlen)
{
    if ((s->bare = strdup(bare)) == NULL) {
        auth_failed(s, "temporary-auth-failure", false, 0);
        return;
    }
    send_sasl(s, "success", out, outlen, outlen > 0);
    s->h->stats.auth_ok++;
    log_info("c2s", "%s: %s authenticated with %s%s", s->conn->peer, s->bare, mech,
             s->tls ? " over TLS" : " without TLS");
    hsasl_free(s->sasl);
    s->sasl = NULL;
    s->state = ST_HEADER;
    xmlp_restart(s->parser);
}

/* ---- SASL EXTERNAL with a client certificate (XEP-0178 §3) ---- */

struct cert_ids {
    const struct config *cfg;
    char jids[16][2 * JID_PART_MAX + 2]; /* bare JIDs of local accounts, prepared */
    unsigned n;
};

static void cert_id(void *ud, const char *id)
{
    struct cert_ids *c = ud;
    char buf[2 * JID_PART_MAX + 2];
    struct jid j;
    /* A CN that is only a name means an account here. */
    if (strchr(id, '@') == NULL)
        snprintf(buf, sizeof(buf), "%s@%s", id, c->cfg->domain);
    else
        snprintf(buf, sizeof(buf), "%s", id);
    if (c->n >= 16 || jid_parse_str(&j, buf) != 0 || !j.local[0] || j.resource[0] ||
        strcmp(j.domain, c->cfg->domain) != 0)
        return;
    jid_format(&j, true, c->jids[c->n], sizeof(c->jids[0]));
    c->n++;
}

static void sasl_external(struct session *s, const char *authz, unsigned authzlen)
{
    static struct log_limit lim;
    struct cert_ids *ids = calloc(1, sizeof(*ids));
    if (ids == NULL) {
        auth_failed(s, "temporary-auth-failure", false, 0);
        return;
    }
    ids->cfg = s->h->cfg;
    tls_cert_identities(tls_peer_cert(s->conn->tls), s->h->cfg->client_cert_identity, cert_id, ids);
    const char *who = NULL;
    const char *cond = "not-authorized";
    char want[2 * JID_PART_MAX + 2];
    struct jid j;
    if (authz != NULL && authzlen > 0) {
        /* §3: an authorization identity must be one the certificate names. */
        snprintf(want, sizeof(want), "%.*s", (int)authzlen, authz);
        cond = "invalid-authzid";
        if (memchr(authz, 0, authzlen) == NULL && jid_parse_str(&j, want) == 0 && !j.resource[0] &&
            jid_format(&j, true, want, sizeof(want)) >= 0)
            for (unsigned i = 0; i < ids->n; i++)
                if (strcmp(ids->jids[i], want) == 0)
                    who = ids->jids[i];
    } else if (ids->n == 1) {
        who = ids->jids[0];
    } else if (ids->n > 1) {
        cond = "invalid-authzid"; /* §3: several identities need an authzid */
    }
    if (who != NULL && store_user_exists(s->h->store, who) != 1) {
        log_limited(&lim, LOG_INFO, "c2s", "%s: EXTERNAL: no account %s", s->conn->peer, who);
        who = NULL;
        cond = "not-authorized";
    }
    if (who == NULL) {
        log_limited(&lim, LOG_INFO, "c2s", "%s: EXTERNAL refused (%s; %u identities in the "
                    "certificate)", s->conn->peer, cond, ids->n);
        free(ids);
        auth_failed(s, cond, true, 0);
        return;
    }
    snprintf(want, sizeof(want), "%s", who);
    free(ids);
    auth_succeeded(s, want, "EXTERNAL", NULL, 0);
}

/* Decodes the base64 text of an <auth/> or <response/>. RFC 6120 §6.4.2:
 * no text = no data, "=" = empty data. Returns 0, or -1 if malformed. */
static int sasl_payload(struct arena *a, const struct xnode *e, const char **out,
                        unsigned *outlen)
{
    const char *t = xml_text(a, e);
    if (t == NULL)
        return -1;
    size_t len = strlen(t);
    *out = NULL;
    *outlen = 0;
    if (len == 0)
        return 0;
    if (len == 1 && t[0] == '=') {
        *out = "";
        return 0;
    }
    unsigned char *dec = arena_alloc(a, len / 4 * 3 + 1);
    long n = dec ? base64_decode(t, len, dec) : -1;
    if (n < 0)
        return -1;
    *out = (const char *)dec;
    *outlen = (unsigned)n;
    return 0;
}

static bool mech_offered(const char *list, const char *mech)
{
    size_t ml = strlen(mech);
    for (const char *p = list; (p = strstr(p, mech)) != NULL; p += ml)
        if ((p == list || p[-1] == ' ') && (p[ml] == ' ' || p[ml] == '\0'))
            return true;
    return false;
}

static void sasl_auth(struct session *s, const struct xnode *st, struct arena *a)
{
    const char *mech = xml_attr(st, "mechanism");
    const char *in;
    unsigned inlen;
    if (s->delay)
        return;
    if (!s->tls && tls_required(s)) {
        auth_failed(s, "encryption-required", false, 0);
        return;
    }
    if (s->sasl == NULL)
        s->sasl = hsasl_new(s->h->cfg->domain, s->tls, s->h->cfg->allow_plaintext, s->conn->peer);
    if (s->sasl == NULL) {
        auth_failed(s, "temporary-auth-failure", false, 0);
        return;
    }
    if (mech != NULL && strcmp(mech, "EXTERNAL") == 0 && external_offered(s)) {
        if (sasl_payload(a, st, &in, &inlen) != 0) {
            auth_failed(s, "incorrect-encoding", true, 0);
        } else if (in == NULL) {
            /* RFC 4422 §3.3, RFC 6120 §6.4.3: no initial response: an empty
             * challenge, and the authzid (or "=") comes in <response/>. */
            s->external_wait = true;
            send_sasl(s, "challenge", "", 0, true);
        } else {
            sasl_external(s, in, inlen);
        }
        return;
    }
    if (mech == NULL || !mech_offered(hsasl_mechanisms(s->sasl), mech)) {
        bool plain_needs_tls = mech && strcmp(mech, "PLAIN") == 0 && !s->tls &&
                               mech_offered(s->h->cfg->mechanisms, "PLAIN");
        auth_failed(s, plain_needs_tls ? "encryption-required" : "invalid-mechanism", false, 0);
        return;
    }
    if (sasl_payload(a, st, &in, &inlen) != 0) {
        auth_failed(s, "incorrect-encoding", true, 0);
        return;
    }
    struct hsasl_result r;
    hsasl_start(s->sasl, mech, in, inlen, &r);
    sasl_result(s, &r);
}

static void sasl_response(struct session *s, const struct xnode *st, struct arena *a)
{
    const char *in;
    unsigned inlen;
    if (s->delay)
        return;
    if (s->external_wait) {
        s->external_wait = false;
        if (sasl_payload(a, st, &in, &inlen) != 0)
            auth_failed(s, "incorrect-encoding", true, 0);
        else
            sasl_external(s, in, inlen);
        return;
    }
    if (s->sasl == NULL || hsasl_mech(s->sasl) == NULL) {
        auth_failed(s, "malformed-request", false, 0);
        return;
    }
    if (sasl_payload(a, st, &in, &inlen) != 0) {
        auth_failed(s, "incorrect-encoding", true, 0);
        return;
    }
    struct hsasl_result r;
    hsasl_step(s->sasl, in ? in : "", inlen, &r);
    sasl_result(s, &r);
}

static void pre_auth(struct session *s, struct xnode *st, struct arena *a)
{
    if (strcmp(st->ns, NS_TLS) == 0 && strcmp(st->name, "starttls") == 0)
        do_starttls(s);
    else if (strcmp(st->ns, NS_SASL) == 0 && strcmp(st->name, "auth") == 0)
        sasl_auth(s, st, a);
    else if (strcmp(st->ns, NS_SASL) == 0 && strcmp(st->name, "response") == 0)
        sasl_response(s, st, a);
    else if (strcmp(st->ns, NS_SASL) == 0 && strcmp(st->name, "abort") == 0)
        auth_failed(s, "aborted", false, 0);
    else
        session_stream_error(s, "not-authorized", "authenticate first");
}

/* ---- resource binding (RFC 6120 §7) ---- */

static void iq_bind_error(struct session *s, const struct xnode *iq, struct arena *a,
                          const char *cond, const char *type)
{
    router_error(s, iq, a, 0, cond, type);
}

static void do_bind(struct session *s, struct xnode *iq, struct xnode *bind, struct arena *a)
{
    char res[JID_PART_MAX + 1];
    struct xnode *re = xml_child(bind, NS_BIND, "resource");
    const char *want = re ? xml_text(a, re) : "";
    if (want == NULL) {
        iq_bind_error(s, iq, a, "internal-server-error", "wait");
        return;
    }
    if (want[0] != '\0') {
        if (strlen(want) > JID_PART_MAX) {
            iq_bind_error(s, iq, a, "bad-request", "modify");
            return;
        }
        snprintf(res, sizeof(res), "%s", want);
        if (jid_resourceprep(res) != 0) {
            iq_bind_error(s, iq, a, "bad-request", "modify");
            return;
        }
    } else {
        /* §7.6.2.1: the server generates a resource. */
        unsigned char rnd[8];
        if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
            iq_bind_error(s, iq, a, "internal-server-error", "wait");
            return;
        }
        memcpy(res, "herald-", 7);
        for (int i = 0; i < 8; i++)
            snprintf(res + 7 + 2 * i, 3, "%02x", rnd[i]);
    }
    size_t bl = strlen(s->bare), rl = strlen(res);
    if (bl + 1 + rl > JID_MAX) {
        iq_bind_error(s, iq, a, "bad-request", "modify");
        return;
    }
    char *full = malloc(bl + rl + 2);
    if (full == NULL) {
        iq_bind_error(s, iq, a, "resource-constraint", "wait");
        return;
    }
    memcpy(full, s->bare, bl);
    full[bl] = '/';
    memcpy(full + bl + 1, res, rl + 1);
    /* §7.7.2.2: a new session with the same resource replaces the old one. */
    struct session *old = session_find(s->h, s->bare, res);
    struct account *acct = session_account(s->h, s->bare);
    unsigned nres = 0;
    for (struct session *o = acct ? acct->sessions : NULL; o; o = o->next_res)
        nres++;
    if (old == NULL && nres >= s->h->cfg->max_resources) {
        /* §7.6.2.1: presence fan-out between resources is quadratic; bound it. */
        free(full);
        iq_bind_error(s, iq, a, "resource-constraint", "wait");
        return;
    }
    if (old != NULL)
        session_stream_error(old, "conflict", "replaced by a new session with the same resource");
    s->full = full;
    s->resource = full + bl + 1;
    if (session_register(s) != 0) {
        iq_bind_error(s, iq, a, "resource-constraint", "wait");
        return;
    }
    s->state = ST_BOUND;
    struct xnode *r = router_reply(a, iq, "result");
    struct xnode *b = r ? xml_add_elem(a, r, NS_BIND, "bind") : NULL;
    struct xnode *j = b ? xml_add_elem(a, b, NS_BIND, "jid") : NULL;
    if (j == NULL || xml_add_text(a, j, full, strlen(full)) != 0) {
        session_stream_error(s, "internal-server-error", NULL);
        return;
    }
    xml_del_attr(r, "from");
    session_send_xml(s, r);
    log_info("c2s", "%s: bound %s%s", s->conn->peer, full, old ? " (replaced an older session)" : "");
}

static bool is_iq_with(const struct xnode *st, const char *ns, const char *name, struct xnode **child)
{
    if (strcmp(st->ns, NS_CLIENT) != 0 || strcmp(st->name, "iq") != 0)
        return false;
    const char *type = xml_attr(st, "type");
    if (type == NULL || strcmp(type, "set") != 0)
        return false;
    *child = xml_child(st, ns, name);
    return *child != NULL;
}

static void pre_bind(struct session *s, struct xnode *st, struct arena *a)
{
    struct xnode *child;
    if (is_iq_with(st, NS_BIND, "bind", &child))
        do_bind(s, st, child, a);
    else if (!sm_element(s, st)) /* XEP-0198 <resume/> comes here */
        session_stream_error(s, "not-authorized", "bind a resource first");
}

/* Framed streams (RFC 7395 §3.3.2, §3.6): <open/> starts the stream and
 * each restart, <close/> ends it. */
static bool framing_element(struct session *s, struct xnode *st)
{
    if (!s->framed)
        return false;
    bool is_framing = strcmp(st->ns, NS_FRAMING) == 0;
    if (is_framing && strcmp(st->name, "open") == 0 && s->state == ST_HEADER)
        on_open(s, st, NS_CLIENT);
    else if (is_framing && strcmp(st->name, "close") == 0)
        session_close(s);
    else if (s->state == ST_HEADER || is_framing)
        session_stream_error(s, "invalid-xml", "expected <open xmlns='" NS_FRAMING "'/>");
    else
        return false;
    return true;
}

static void on_stanza(void *ud, struct xnode *st, struct arena *a)
{
    struct session *s = ud;
    s->units_in++;
    if (framing_element(s, st))
        return;
    s->h->stats.stanzas_in++;
    switch (s->state) {
    case ST_AUTH:
        pre_auth(s, st, a);
        break;
    case ST_BIND:
        pre_bind(s, st, a);
        break;
    case ST_BOUND: {
        struct xnode *child;
        if (strcmp(st->ns, NS_CLIENT) != 0 ||
            (strcmp(st->name, "message") && strcmp(st->name, "presence") && strcmp(st->name, "iq"))) {
            if (!sm_element(s, st))
                session_stream_error(s, "unsupported-stanza-type", NULL);
            break;
        }
        /* XEP-0198 §4: every stanza counts as handled once dispatched. */
        if (s->sm.enabled)
            s->sm.h_in++;
        /* What a session that ended earlier in this turn left unacknowledged
         * is re-routed before anything sent after it. */
        if (s->h->sm_orphans)
            sm_prepare(s->h);
        if (is_iq_with(st, NS_BIND, "bind", &child)) {
            router_error(s, st, a, 0, "not-allowed", "cancel");
        } else {
            router_route(s, st, a);
        }
        break;
    }
    case ST_HEADER:
    case ST_CLOSED:
        break;
    }
}
