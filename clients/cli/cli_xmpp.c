/* cli_xmpp.c - the XMPP transport of `herald pub` and `herald sub`
 * (docs/cli.md): a minimal blocking client, one connection, one request at
 * a time.
 *
 * Bytes go through a blocking socket, and through OpenSSL (SSL_set_fd)
 * once STARTTLS is done; what the server sends is fed to Herald's own
 * stream parser (xmlp), whose on_stanza callback copies the few facts the
 * client needs out of each stanza into struct xin (the tree lives only
 * during the callback). Each step then waits, with a bound (XMPP_WAIT_S),
 * for the kind of element it expects; anything else is skipped, except that
 * a <message/> goes to the caller's callback (herald sub's notifications),
 * a ping (XEP-0199) is answered and any other request gets
 * service-unavailable (RFC 6120 §8.4), so that the server never waits on
 * us. STARTTLS is required: a server that does not offer it is refused,
 * because the password must not cross in the clear. SASL is PLAIN, over
 * that TLS. */
#include "cli_xmpp.h"

#include <errno.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "buf.h"
#include "cli_rest.h"
#include "jid.h"
#include "xml.h"
#include "xml_parser.h"

#define XMPP_WAIT_S 30
/* Our whitespace keepalive (RFC 6120 §4.6.1) after this much silence:
 * well under the server's c2s idle_timeout (default 600 s). */
#define XMPP_KEEPALIVE_S 60
#define NS_STREAMS "http://etherx.jabber.org/streams"
#define NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIND "urn:ietf:params:xml:ns:xmpp-bind"
#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NS_PUBSUB "http://jabber.org/protocol/pubsub"
#define NS_PING "urn:xmpp:ping"

enum xkind {
    K_NONE,
    K_FEATURES,
    K_PROCEED,
    K_TLS_FAILURE,
    K_SUCCESS,
    K_SASL_FAILURE,
    K_IQ,
    K_STREAM_ERROR,
    K_CLOSED,
    K_OTHER
};

/* What the client keeps of the last element that mattered. */
struct xin {
    enum xkind kind;
    bool starttls, plain, bind;
    char iq_id[32], iq_type[16];
    char cond[64], text[256]; /* an error's condition and text */
    char item_id[1024];       /* a publish result's item id */
};

struct cli_xmpp {
    struct cli_xmpp_opts o;
    struct jid jid;
    char service[1100];
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    struct xmlp *p;
    struct xin in;
    char full_jid[3072]; /* as bound (RFC 6120 §7.6.3) */
    char subid[256];     /* of the last subscribe's answer; "" if none */
    char substate[32];   /* its subscription state */
    cli_xmpp_message_fn on_message;
    void *on_message_ud;
    unsigned long long last_write_ms;
    bool write_failed; /* an answer written from the parser callback failed */
    unsigned long next_id;
    bool closing; /* cli_xmpp_close: failures are no longer worth a message */
};

static void read_stanza(struct cli_xmpp *x, struct xin *in, struct xnode *e, struct arena *a);
static int io_write(struct cli_xmpp *x, const char *p, size_t n);

static void copy_text(struct arena *a, const struct xnode *e, char *out, size_t cap)
{
    const char *t = e ? xml_text(a, e) : NULL;
    snprintf(out, cap, "%s", t ? t : "");
}

/* The first child element's name (an error condition), with its text. */
static void error_of(struct xin *in, struct arena *a, const struct xnode *err, const char *ns)
{
    in->cond[0] = in->text[0] = '\0';
    if (err == NULL)
        return;
    for (const struct xnode *c = xml_first_elem(err); c; c = xml_next_elem(c)) {
        if (strcmp(c->ns, ns) != 0)
            continue;
        if (strcmp(c->name, "text") == 0)
            copy_text(a, c, in->text, sizeof(in->text));
        else if (in->cond[0] == '\0')
            snprintf(in->cond, sizeof(in->cond), "%s", c->name);
    }
}

/* A request from the server: a ping gets its result, anything else
 * service-unavailable. Written at once, from inside the parser callback
 * (the socket is blocking); a failure is noted for the caller. */
static void answer_request(struct cli_xmpp *x, const struct xnode *e)
{
    const char *id = xml_attr(e, "id"), *from = xml_attr(e, "from");
    const char *type = xml_attr(e, "type");
    const struct xnode *q = xml_first_elem(e);
    bool ping = type && strcmp(type, "get") == 0 && q && strcmp(q->ns, NS_PING) == 0 &&
                strcmp(q->name, "ping") == 0;
    struct buf b;
    if (x->closing || id == NULL)
        return;
    buf_init(&b, 0);
    buf_printf(&b, "<iq type='%s' id='", ping ? "result" : "error");
    buf_xml_attr(&b, id, strlen(id));
    if (from) {
        buf_puts(&b, "' to='");
        buf_xml_attr(&b, from, strlen(from));
    }
    buf_puts(&b, ping ? "'/>"
                      : "'><error type='cancel'><service-unavailable xmlns='" NS_STANZAS
                        "'/></error></iq>");
    if (!buf_ok(&b) || io_write(x, b.data, b.len) != 0)
        x->write_failed = true;
    buf_free(&b);
}

/* One read may bring several elements (the server flushes a loop turn's
 * output at once: a publish's result and a notification can share a
 * write). The client waits for one thing at a time, so an element that
 * matters is kept until it is consumed: later ones of no interest (K_OTHER)
 * do not overwrite it. */
static void on_stanza(void *ud, struct xnode *e, struct arena *a)
{
    struct cli_xmpp *x = ud;
    struct xin t;
    memset(&t, 0, sizeof(t));
    read_stanza(x, &t, e, a);
    if (t.kind == K_OTHER && x->in.kind != K_NONE)
        return;
    x->in = t;
}

static void read_stanza(struct cli_xmpp *x, struct xin *in, struct xnode *e, struct arena *a)
{
    in->kind = K_OTHER;
    if (strcmp(e->ns, NS_STREAMS) == 0 && strcmp(e->name, "features") == 0) {
        in->kind = K_FEATURES;
        in->starttls = xml_child(e, NS_TLS, "starttls") != NULL;
        in->bind = xml_child(e, NS_BIND, "bind") != NULL;
        in->plain = false;
        const struct xnode *mechs = xml_child(e, NS_SASL, "mechanisms");
        for (const struct xnode *m = mechs ? xml_first_elem(mechs) : NULL; m;
             m = xml_next_elem(m)) {
            const char *t = xml_text(a, m);
            if (t && strcmp(t, "PLAIN") == 0)
                in->plain = true;
        }
    } else if (strcmp(e->ns, NS_STREAMS) == 0 && strcmp(e->name, "error") == 0) {
        in->kind = K_STREAM_ERROR;
        error_of(in, a, e, "urn:ietf:params:xml:ns:xmpp-streams");
    } else if (strcmp(e->ns, NS_TLS) == 0) {
        in->kind = strcmp(e->name, "proceed") == 0 ? K_PROCEED : K_TLS_FAILURE;
        if (in->kind == K_PROCEED)
            xmlp_restart(x->p); /* the server's next bytes are a new stream, over TLS */
    } else if (strcmp(e->ns, NS_SASL) == 0 && strcmp(e->name, "success") == 0) {
        in->kind = K_SUCCESS;
        xmlp_restart(x->p);
    } else if (strcmp(e->ns, NS_SASL) == 0 && strcmp(e->name, "failure") == 0) {
        in->kind = K_SASL_FAILURE;
        error_of(in, a, e, NS_SASL);
    } else if (strcmp(e->name, "message") == 0) {
        if (x->on_message && !x->closing)
            x->on_message(x->on_message_ud, e, a);
    } else if (strcmp(e->name, "iq") == 0) {
        const char *id = xml_attr(e, "id"), *type = xml_attr(e, "type");
        if (type == NULL || (strcmp(type, "get") == 0 || strcmp(type, "set") == 0)) {
            answer_request(x, e);
            return;
        }
        if (strcmp(type, "result") != 0 && strcmp(type, "error") != 0)
            return;
        in->kind = K_IQ;
        snprintf(in->iq_id, sizeof(in->iq_id), "%s", id ? id : "");
        snprintf(in->iq_type, sizeof(in->iq_type), "%s", type);
        in->item_id[0] = '\0';
        error_of(in, a, xml_child(e, e->ns, "error"), NS_STANZAS);
        const struct xnode *ps = xml_child(e, NS_PUBSUB, "pubsub");
        const struct xnode *pub = ps ? xml_child(ps, NS_PUBSUB, "publish") : NULL;
        const struct xnode *item = pub ? xml_child(pub, NS_PUBSUB, "item") : NULL;
        const char *iid = item ? xml_attr(item, "id") : NULL;
        if (iid)
            snprintf(in->item_id, sizeof(in->item_id), "%s", iid);
        const struct xnode *sub = ps ? xml_child(ps, NS_PUBSUB, "subscription") : NULL;
        if (sub) {
            const char *v = xml_attr(sub, "subid");
            snprintf(x->subid, sizeof(x->subid), "%s", v ? v : "");
            v = xml_attr(sub, "subscription");
            snprintf(x->substate, sizeof(x->substate), "%s", v ? v : "");
        }
        const struct xnode *bind = xml_child(e, NS_BIND, "bind");
        const struct xnode *bjid = bind ? xml_child(bind, NS_BIND, "jid") : NULL;
        if (bjid)
            copy_text(a, bjid, x->full_jid, sizeof(x->full_jid));
    }
}

static void on_open(void *ud, const struct xnode *hdr, const char *default_ns)
{
    /* Nothing to keep from the server's header: the features follow. */
}

static void on_close(void *ud)
{
    struct cli_xmpp *x = ud;
    if (x->in.kind == K_NONE || x->in.kind == K_OTHER)
        x->in.kind = K_CLOSED; /* else seen after the element that is pending */
}

static int io_write(struct cli_xmpp *x, const char *p, size_t n)
{
    x->last_write_ms = cli_now_ms();
    while (n > 0) {
        ssize_t w;
        if (x->ssl) {
            int r = SSL_write(x->ssl, p, n > 1 << 30 ? 1 << 30 : (int)n);
            w = r > 0 ? r : -1;
        } else {
            w = send(x->fd, p, n, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
        }
        if (w <= 0) {
            if (!x->closing)
                fprintf(stderr, "%s: XMPP: the connection failed while sending\n", x->o.prog);
            return CLI_CONNECT;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int send_buf(struct cli_xmpp *x, struct buf *b)
{
    if (!buf_ok(b)) {
        fprintf(stderr, "%s: out of memory\n", x->o.prog);
        return CLI_CONNECT;
    }
    return io_write(x, b->data, b->len);
}

/* Waits at most timeout_ms for bytes and feeds them to the parser (which
 * calls on_stanza for each complete element): 0 when some came, -1 when
 * none did (the time ran out, or a signal interrupted the wait), or
 * CLI_CONNECT after saying why. */
static int read_once(struct cli_xmpp *x, int timeout_ms)
{
    char chunk[16384];
    if (!(x->ssl && SSL_pending(x->ssl) > 0)) {
        struct pollfd pfd = {.fd = x->fd, .events = POLLIN};
        int pr = poll(&pfd, 1, timeout_ms < 0 ? 0 : timeout_ms);
        if (pr == 0 || (pr < 0 && errno == EINTR))
            return -1;
        if (pr < 0) {
            if (!x->closing)
                fprintf(stderr, "%s: XMPP: poll: %s\n", x->o.prog, strerror(errno));
            return CLI_CONNECT;
        }
    }
    ssize_t n;
    if (x->ssl) {
        int r = SSL_read(x->ssl, chunk, sizeof(chunk));
        n = r > 0 ? r : (SSL_get_error(x->ssl, r) == SSL_ERROR_ZERO_RETURN ? 0 : -1);
    } else {
        while ((n = recv(x->fd, chunk, sizeof(chunk), 0)) < 0 && errno == EINTR)
            ;
    }
    if (n <= 0) {
        if (!x->closing)
            fprintf(stderr, "%s: XMPP: the connection was closed\n", x->o.prog);
        return CLI_CONNECT;
    }
    /* Feed element by element is not needed: after <proceed/> and
     * <success/> the server sends nothing until our new header, and the
     * parser drops the rest of a feed after a restart. */
    enum xmlp_error e = xmlp_feed(x->p, chunk, (size_t)n);
    if (e != XMLP_OK) {
        if (!x->closing)
            fprintf(stderr, "%s: XMPP: the server's stream does not parse: %s\n", x->o.prog,
                    xmlp_strerror(e));
        return CLI_CONNECT;
    }
    if (x->write_failed)
        return CLI_CONNECT; /* io_write said why */
    return 0;
}

/* A stream error or close that arrived: reported, as an exit code; 0 if
 * neither did. */
static int stream_ended(struct cli_xmpp *x)
{
    if (x->in.kind == K_STREAM_ERROR) {
        if (!x->closing)
            fprintf(stderr, "%s: XMPP stream error: %s%s%s\n", x->o.prog, x->in.cond,
                    x->in.text[0] ? ": " : "", x->in.text);
        return CLI_REFUSED;
    }
    if (x->in.kind == K_CLOSED) {
        if (!x->closing)
            fprintf(stderr, "%s: XMPP: the server closed the stream\n", x->o.prog);
        return CLI_CONNECT;
    }
    return 0;
}

/* Reads and parses until an element of one of the wanted kinds arrived
 * (its facts in x->in), XMPP_WAIT_S at most. A stream error or close is
 * reported here. */
static int wait_for(struct cli_xmpp *x, unsigned wanted_mask)
{
    unsigned long long deadline = cli_now_ms() + XMPP_WAIT_S * 1000ull;
    for (;;) {
        if (x->in.kind != K_NONE && (wanted_mask & (1u << x->in.kind)))
            return 0;
        int rc = stream_ended(x);
        if (rc != 0)
            return rc;
        x->in.kind = K_NONE;
        unsigned long long now = cli_now_ms();
        if (now >= deadline) {
            if (!x->closing)
                fprintf(stderr, "%s: XMPP: no answer within %d s\n", x->o.prog, XMPP_WAIT_S);
            return CLI_CONNECT;
        }
        rc = read_once(x, (int)(deadline - now));
        if (rc > 0)
            return rc;
    }
}

static int open_stream(struct cli_xmpp *x)
{
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                 "xmlns:stream='" NS_STREAMS "' version='1.0' to='");
    buf_xml_attr(&b, x->jid.domain, strlen(x->jid.domain));
    buf_puts(&b, "'>");
    x->in.kind = K_NONE;
    int rc = send_buf(x, &b);
    buf_free(&b);
    if (rc == 0)
        rc = wait_for(x, 1u << K_FEATURES);
    return rc;
}

static int tcp_connect(struct cli_xmpp *x)
{
    char port[16];
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    const char *host = x->o.host ? x->o.host : x->jid.domain;
    snprintf(port, sizeof(port), "%d", x->o.port ? x->o.port : 5222);
    int g = getaddrinfo(host, port, &hints, &res);
    if (g != 0) {
        fprintf(stderr, "%s: XMPP: cannot resolve %s: %s\n", x->o.prog, host, gai_strerror(g));
        return CLI_CONNECT;
    }
    int err = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            x->fd = fd;
            break;
        }
        err = errno;
        close(fd);
    }
    freeaddrinfo(res);
    if (x->fd < 0) {
        fprintf(stderr, "%s: XMPP: cannot connect to %s port %s: %s\n", x->o.prog, host, port,
                strerror(err));
        return CLI_CONNECT;
    }
    return 0;
}

static int start_tls(struct cli_xmpp *x)
{
    const char *why = NULL;
    if ((x->ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
        SSL_CTX_set_min_proto_version(x->ctx, TLS1_2_VERSION) != 1) {
        why = "cannot make a TLS context";
        goto fail;
    }
    if (!x->o.insecure) {
        SSL_CTX_set_verify(x->ctx, SSL_VERIFY_PEER, NULL);
        int ok = x->o.cacert ? SSL_CTX_load_verify_locations(x->ctx, x->o.cacert, NULL)
                             : SSL_CTX_set_default_verify_paths(x->ctx);
        if (ok != 1) {
            why = "cannot load the CA certificates (--cacert)";
            goto fail;
        }
    }
    if ((x->ssl = SSL_new(x->ctx)) == NULL || SSL_set_fd(x->ssl, x->fd) != 1 ||
        SSL_set_tlsext_host_name(x->ssl, x->jid.domain) != 1 ||
        (!x->o.insecure && SSL_set1_host(x->ssl, x->jid.domain) != 1)) {
        why = "cannot set up TLS";
        goto fail;
    }
    if (SSL_connect(x->ssl) != 1) {
        long v = SSL_get_verify_result(x->ssl);
        if (v != X509_V_OK)
            fprintf(stderr,
                    "%s: XMPP: the server's certificate does not verify for %s: %s "
                    "(--cacert FILE to trust it, --insecure to skip)\n",
                    x->o.prog, x->jid.domain, X509_verify_cert_error_string(v));
        else {
            unsigned long e = ERR_get_error();
            const char *r = e ? ERR_reason_error_string(e) : NULL;
            fprintf(stderr, "%s: XMPP: the TLS handshake failed: %s\n", x->o.prog,
                    r ? r : "the connection was closed");
        }
        return CLI_CONNECT;
    }
    return 0;
fail:
    fprintf(stderr, "%s: XMPP: %s\n", x->o.prog, why);
    return CLI_CONNECT;
}

static int auth_plain(struct cli_xmpp *x)
{
    struct buf raw, b;
    buf_init(&raw, 0);
    buf_init(&b, 0);
    buf_putc(&raw, '\0');
    buf_puts(&raw, x->jid.local);
    buf_putc(&raw, '\0');
    buf_puts(&raw, x->o.password);
    buf_puts(&b, "<auth xmlns='" NS_SASL "' mechanism='PLAIN'>");
    if (buf_ok(&raw))
        buf_base64(&b, raw.data, raw.len);
    buf_puts(&b, "</auth>");
    OPENSSL_cleanse(raw.data, raw.len);
    x->in.kind = K_NONE;
    int rc = buf_ok(&raw) ? send_buf(x, &b) : CLI_CONNECT;
    if (b.data)
        OPENSSL_cleanse(b.data, b.len);
    buf_free(&raw);
    buf_free(&b);
    if (rc == 0)
        rc = wait_for(x, 1u << K_SUCCESS | 1u << K_SASL_FAILURE);
    if (rc == 0 && x->in.kind == K_SASL_FAILURE) {
        fprintf(stderr, "%s: XMPP: authentication as %s@%s failed: %s%s%s\n", x->o.prog,
                x->jid.local, x->jid.domain, x->in.cond, x->in.text[0] ? ": " : "", x->in.text);
        rc = CLI_REFUSED;
    }
    return rc;
}

/* Sends one iq (body: its payload) and waits for its answer. */
static int iq(struct cli_xmpp *x, const char *type, const char *to, const char *body)
{
    struct buf b;
    char id[32];
    snprintf(id, sizeof(id), "h%lu", ++x->next_id);
    buf_init(&b, 0);
    buf_printf(&b, "<iq type='%s' id='%s'", type, id);
    if (to) {
        buf_puts(&b, " to='");
        buf_xml_attr(&b, to, strlen(to));
        buf_puts(&b, "'");
    }
    buf_puts(&b, ">");
    buf_puts(&b, body);
    buf_puts(&b, "</iq>");
    int rc = send_buf(x, &b);
    buf_free(&b);
    for (;;) {
        x->in.kind = K_NONE;
        if (rc != 0 || (rc = wait_for(x, 1u << K_IQ)) != 0)
            return rc;
        if (strcmp(x->in.iq_id, id) == 0)
            break;
    }
    return strcmp(x->in.iq_type, "result") == 0 ? 0 : CLI_REFUSED;
}

int cli_xmpp_connect(struct cli_xmpp **out, const struct cli_xmpp_opts *o)
{
    struct cli_xmpp *x = calloc(1, sizeof(*x));
    int rc = CLI_CONNECT;
    if (x == NULL) {
        fprintf(stderr, "%s: out of memory\n", o->prog);
        return CLI_CONNECT;
    }
    x->o = *o;
    x->fd = -1;
    if (jid_parse_str(&x->jid, o->jid) != 0 || x->jid.local[0] == '\0') {
        fprintf(stderr, "%s: --jid '%s' is not an account's JID (local@domain)\n", o->prog, o->jid);
        rc = CLI_USAGE;
        goto fail;
    }
    if ((size_t)snprintf(x->service, sizeof(x->service), "%s%s", o->service ? "" : "pubsub.",
                         o->service ? o->service : x->jid.domain) >= sizeof(x->service)) {
        rc = CLI_USAGE;
        goto fail;
    }
    struct xmlp_limits lim = {1u << 20, 64};
    struct xmlp_callbacks cb = {on_open, on_stanza, on_close};
    if ((x->p = xmlp_new(&lim, &cb, x)) == NULL) {
        fprintf(stderr, "%s: out of memory\n", o->prog);
        goto fail;
    }
    if ((rc = tcp_connect(x)) != 0 || (rc = open_stream(x)) != 0)
        goto fail;
    if (!x->in.starttls) {
        fprintf(stderr,
                "%s: XMPP: the server does not offer STARTTLS; refusing to send the "
                "password in the clear\n",
                o->prog);
        rc = CLI_CONNECT;
        goto fail;
    }
    x->in.kind = K_NONE;
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "<starttls xmlns='" NS_TLS "'/>");
    rc = send_buf(x, &b);
    buf_free(&b);
    if (rc != 0 || (rc = wait_for(x, 1u << K_PROCEED | 1u << K_TLS_FAILURE)) != 0)
        goto fail;
    if (x->in.kind != K_PROCEED) {
        fprintf(stderr, "%s: XMPP: the server refused STARTTLS\n", o->prog);
        rc = CLI_CONNECT;
        goto fail;
    }
    if ((rc = start_tls(x)) != 0 || (rc = open_stream(x)) != 0)
        goto fail;
    if (!x->in.plain) {
        fprintf(stderr, "%s: XMPP: the server does not offer SASL PLAIN over TLS\n", o->prog);
        rc = CLI_REFUSED;
        goto fail;
    }
    if ((rc = auth_plain(x)) != 0 || (rc = open_stream(x)) != 0)
        goto fail;
    if (!x->in.bind) {
        fprintf(stderr, "%s: XMPP: the server offers no resource binding\n", o->prog);
        rc = CLI_REFUSED;
        goto fail;
    }
    char bind[160];
    snprintf(bind, sizeof(bind),
             "<bind xmlns='" NS_BIND "'><resource>herald-cli-%ld</resource></bind>",
             (long)getpid());
    if ((rc = iq(x, "set", NULL, bind)) != 0) {
        if (rc == CLI_REFUSED)
            fprintf(stderr, "%s: XMPP: binding a resource failed: %s\n", o->prog, x->in.cond);
        goto fail;
    }
    *out = x;
    return 0;
fail:
    cli_xmpp_close(x);
    return rc;
}

int cli_xmpp_publish(struct cli_xmpp *x, const char *node, const char *item_id, const char *payload,
                     unsigned long lease, char *id_out, size_t cap)
{
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "<pubsub xmlns='" NS_PUBSUB "'><publish node='");
    buf_xml_attr(&b, node, strlen(node));
    buf_puts(&b, "'><item");
    if (item_id) {
        buf_puts(&b, " id='");
        buf_xml_attr(&b, item_id, strlen(item_id));
        buf_puts(&b, "'");
    }
    buf_puts(&b, ">");
    buf_puts(&b, payload);
    buf_puts(&b, "</item></publish>");
    if (lease)
        buf_printf(&b,
                   "<publish-options><x xmlns='jabber:x:data' type='submit'>"
                   "<field var='FORM_TYPE' type='hidden'><value>" NS_PUBSUB
                   "#publish-options</value></field>"
                   "<field var='herald#lease'><value>%lu</value></field></x></publish-options>",
                   lease);
    buf_puts(&b, "</pubsub>");
    int rc = buf_nul(&b) == 0 ? iq(x, "set", x->service, b.data) : CLI_CONNECT;
    buf_free(&b);
    if (rc == CLI_REFUSED) {
        fprintf(stderr, "%s: XMPP: the publish was refused: %s%s%s\n", x->o.prog, x->in.cond,
                x->in.text[0] ? ": " : "", x->in.text);
        return rc;
    }
    if (rc == 0)
        snprintf(id_out, cap, "%s", x->in.item_id[0] ? x->in.item_id : item_id ? item_id : "?");
    return rc;
}

void cli_xmpp_on_message(struct cli_xmpp *x, cli_xmpp_message_fn fn, void *ud)
{
    x->on_message = fn;
    x->on_message_ud = ud;
}

const char *cli_xmpp_full_jid(const struct cli_xmpp *x)
{
    return x->full_jid;
}

const char *cli_xmpp_service(const struct cli_xmpp *x)
{
    return x->service;
}

int cli_xmpp_presence(struct cli_xmpp *x)
{
    static const char p[] = "<presence/>";
    return io_write(x, p, sizeof(p) - 1);
}

/* <subscribe/> or <unsubscribe/> of the full JID to node. */
static int subscription(struct cli_xmpp *x, const char *what, const char *node)
{
    struct buf b;
    buf_init(&b, 0);
    buf_printf(&b, "<pubsub xmlns='" NS_PUBSUB "'><%s node='", what);
    buf_xml_attr(&b, node, strlen(node));
    buf_puts(&b, "' jid='");
    buf_xml_attr(&b, x->full_jid, strlen(x->full_jid));
    if (strcmp(what, "unsubscribe") == 0 && x->subid[0]) {
        buf_puts(&b, "' subid='");
        buf_xml_attr(&b, x->subid, strlen(x->subid));
    }
    buf_puts(&b, "'/></pubsub>");
    int rc = buf_nul(&b) == 0 ? iq(x, "set", x->service, b.data) : CLI_CONNECT;
    buf_free(&b);
    if (rc == CLI_REFUSED)
        fprintf(stderr, "%s: XMPP: %s %s failed: %s%s%s\n", x->o.prog, what, node, x->in.cond,
                x->in.text[0] ? ": " : "", x->in.text);
    return rc;
}

int cli_xmpp_subscribe(struct cli_xmpp *x, const char *node)
{
    if (x->full_jid[0] == '\0') {
        fprintf(stderr, "%s: XMPP: the server bound no JID\n", x->o.prog);
        return CLI_REFUSED;
    }
    x->subid[0] = x->substate[0] = '\0';
    int rc = subscription(x, "subscribe", node);
    if (rc == 0 && x->substate[0] && strcmp(x->substate, "subscribed") != 0)
        fprintf(stderr,
                "%s: XMPP: the subscription to %s is %s (the node's owner must approve it)\n",
                x->o.prog, node, x->substate);
    return rc;
}

int cli_xmpp_unsubscribe(struct cli_xmpp *x, const char *node)
{
    return subscription(x, "unsubscribe", node);
}

int cli_xmpp_wait(struct cli_xmpp *x, int timeout_ms)
{
    unsigned long long now = cli_now_ms(), ka = x->last_write_ms + XMPP_KEEPALIVE_S * 1000ull;
    if (now >= ka) {
        if (io_write(x, " ", 1) != 0)
            return CLI_CONNECT;
        ka = now + XMPP_KEEPALIVE_S * 1000ull;
    }
    if ((unsigned long long)timeout_ms > ka - now)
        timeout_ms = (int)(ka - now);
    x->in.kind = K_NONE;
    int rc = read_once(x, timeout_ms);
    if (rc > 0)
        return rc;
    return stream_ended(x);
}

void cli_xmpp_close(struct cli_xmpp *x)
{
    if (x == NULL)
        return;
    x->closing = true;
    if (x->fd >= 0 && x->p) {
        static const char end[] = "</stream:stream>";
        if (io_write(x, end, sizeof(end) - 1) == 0) {
            /* Wait (bounded) for the server's close, so that it ends the
             * session cleanly rather than seeing a broken connection. */
            x->in.kind = K_NONE;
            (void)wait_for(x, 1u << K_CLOSED);
        }
    }
    if (x->ssl) {
        SSL_shutdown(x->ssl);
        SSL_free(x->ssl);
    }
    if (x->ctx)
        SSL_CTX_free(x->ctx);
    if (x->fd >= 0)
        close(x->fd);
    if (x->p)
        xmlp_free(x->p);
    free(x);
}
