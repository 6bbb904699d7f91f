/* component.c - XEP-0114 external components.
 *
 *   header (to = DOMAIN, jabber:component:accept) -> our header with an id
 *   <handshake>hex(SHA-1(id + secret))</handshake> -> <handshake/>
 *   then stanzas both ways; a new connection for DOMAIN replaces the old.
 * Wrong secret: not-authorized; unknown DOMAIN: host-unknown (§3). */
#include "component.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utlist.h>

#include "buf.h"
#include "conn.h"
#include "errors.h"
#include "herald.h"
#include "jid.h"
#include "link.h"
#include "log.h"
#include "router.h"
#include "xml.h"

#define NS_COMPONENT "jabber:component:accept"

struct component {
    struct link link;               /* first: a struct link * is a component * */
    const char *domain;             /* the configured domain, once the header named it */
    bool ready;                     /* handshake done */
    struct component *prev, *next;  /* h->components (utlist) */
};

static struct component *from_link(struct link *l) { return (struct component *)l; }

static void send_header(struct link *l)
{
    struct component *k = from_link(l);
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "<?xml version='1.0'?><stream:stream xmlns:stream='" NS_STREAM
                 "' xmlns='" NS_COMPONENT "' id='");
    buf_puts(&b, l->stream_id);
    if (k->domain) {
        buf_puts(&b, "' from='");
        buf_xml_attr(&b, k->domain, strlen(k->domain));
    }
    buf_puts(&b, "'>");
    if (buf_ok(&b))
        conn_send(l->conn, b.data, b.len, CONN_SEND_FORCE);
    buf_free(&b);
    l->header_sent = true;
}

static void on_open(struct link *l, const struct xnode *hdr, const char *default_ns)
{
    struct component *k = from_link(l);
    const char *to = xml_attr(hdr, "to");
    const struct config_component *cc = to ? config_component(l->h->cfg, to) : NULL;
    if (strcmp(default_ns, NS_COMPONENT) != 0) {
        link_stream_error(l, "invalid-namespace", "the default namespace must be " NS_COMPONENT);
        return;
    }
    if (cc == NULL) {
        log_warn("component", "%s: refused: no component '%s' is configured", l->peer,
                 to ? to : "(none)");
        link_stream_error(l, "host-unknown", "no such component is configured");
        return;
    }
    k->domain = cc->domain;
    send_header(l);
}

static bool secret_ok(const struct component *k, const char *digest)
{
    const struct config_component *cc = config_component(k->link.h->cfg, k->domain);
    struct buf in;
    buf_init(&in, 0);
    buf_puts(&in, k->link.stream_id);
    buf_puts(&in, cc->secret);
    unsigned char md[SHA_DIGEST_LENGTH];
    char hex[2 * SHA_DIGEST_LENGTH + 1];
    bool ok = false;
    if (buf_ok(&in) && SHA1((const unsigned char *)in.data, in.len, md) != NULL) {
        for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
        /* Hex digits in either case (XEP-0114 §3 does not say). */
        char low[sizeof(hex)];
        size_t n = strlen(digest);
        for (size_t i = 0; i < n && i < sizeof(low) - 1; i++)
            low[i] = (char)(digest[i] >= 'A' && digest[i] <= 'F' ? digest[i] + 32 : digest[i]);
        ok = n == sizeof(hex) - 1 && CRYPTO_memcmp(low, hex, n) == 0;
    }
    buf_free(&in);
    return ok;
}

static void handshake(struct component *k, struct xnode *e, struct arena *a)
{
    struct link *l = &k->link;
    const char *digest = xml_text(a, e);
    if (digest == NULL || !secret_ok(k, digest)) {
        log_warn("component", "%s: %s: not-authorized (wrong secret)", l->peer, k->domain);
        link_stream_error(l, "not-authorized", "wrong handshake");
        return;
    }
    for (struct component *o = l->h->components; o; o = o->next)
        if (o != k && o->ready && strcmp(o->domain, k->domain) == 0) {
            log_info("component", "%s: %s: replaced by a new connection", o->link.peer, o->domain);
            o->ready = false;
            link_stream_error(&o->link, "conflict", "replaced by a new connection");
        }
    k->ready = true;
    static const char ok[] = "<handshake/>";
    link_send(l, ok, sizeof(ok) - 1);
    log_info("component", "%s: %s connected", l->peer, k->domain);
}

/* The component may speak for its domain, any JID at it and its subdomains. */
static bool own_jid(const struct component *k, const char *jid)
{
    struct jid j;
    if (jid == NULL || jid_parse_str(&j, jid) != 0)
        return false;
    const char *owner = component_for(k->link.h, j.domain);
    return owner != NULL && strcmp(owner, k->domain) == 0;
}

static void on_element(struct link *l, struct xnode *e, struct arena *a)
{
    struct component *k = from_link(l);
    bool stanza = strcmp(e->ns, NS_CLIENT) == 0 &&
                  (!strcmp(e->name, "message") || !strcmp(e->name, "presence") || !strcmp(e->name, "iq"));
    if (!k->ready) {
        if (strcmp(e->name, "handshake") == 0 && strcmp(e->ns, NS_CLIENT) == 0)
            handshake(k, e, a);
        else
            link_stream_error(l, "not-authorized", "handshake first");
        return;
    }
    if (!stanza) {
        link_stream_error(l, "unsupported-stanza-type", NULL);
        return;
    }
    const char *from = xml_attr(e, "from");
    if (!own_jid(k, from)) {
        log_warn("component", "%s: %s sent from '%s': invalid-from", l->peer, k->domain,
                 from ? from : "(none)");
        link_stream_error(l, "invalid-from", "stanzas must come from the component's domain");
        return;
    }
    if (xml_attr(e, "to") == NULL) {
        link_stream_error(l, "improper-addressing", "a stanza needs a 'to'");
        return;
    }
    router_route_external(l->h, e, a);
}

static void on_gone(struct link *l)
{
    struct component *k = from_link(l);
    struct herald *h = l->h;
    if (k->ready)
        log_info("component", "%s: %s disconnected", l->peer, k->domain);
    DL_DELETE(h->components, k);
    link_free(l);
    free(k);
}

static const struct link_ops component_ops = {
    .area = "component",
    .on_open = on_open,
    .on_element = on_element,
    .on_gone = on_gone,
    .send_header = send_header,
};

void component_accept(struct herald *h, struct conn *conn)
{
    struct component *k = calloc(1, sizeof(*k));
    if (k == NULL) {
        conn_close(conn, false);
        return;
    }
    DL_PREPEND(h->components, k);
    if (link_accept(&k->link, h, conn, &component_ops, NS_COMPONENT) != 0)
        conn_close(conn, false); /* on_gone frees k */
    else if (h->shutting_down)
        link_stream_error(&k->link, "system-shutdown", NULL);
}

const char *component_for(const struct herald *h, const char *domain)
{
    size_t dl = strlen(domain);
    for (const struct config_component *cc = h->cfg->components; cc; cc = cc->next) {
        size_t cl = strlen(cc->domain);
        if (strcmp(domain, cc->domain) == 0 ||
            (dl > cl + 1 && domain[dl - cl - 1] == '.' && strcmp(domain + dl - cl, cc->domain) == 0))
            return cc->domain;
    }
    return NULL;
}

int component_send(struct herald *h, const char *domain, struct chunk *const *parts, size_t n)
{
    const char *owner = component_for(h, domain);
    for (struct component *k = h->components; owner && k; k = k->next)
        if (k->ready && strcmp(k->domain, owner) == 0)
            return link_send_chunks(&k->link, parts, n);
    return HERALD_EUNAVAIL;
}

unsigned component_connected(const struct herald *h)
{
    unsigned n = 0;
    for (const struct component *k = h->components; k; k = k->next)
        n += k->ready;
    return n;
}

void component_close_all(struct herald *h)
{
    for (struct component *k = h->components; k; k = k->next)
        link_stream_error(&k->link, "system-shutdown", NULL);
}
