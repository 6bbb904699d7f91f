/* s2s.c - federation streams (s2s.h).
 *
 * Outgoing stream (we are the originating server, RFC 6120 §4-§6, XEP-0220):
 *   resolve -> connect -> header -> features: STARTTLS -> <proceed/> -> TLS
 *   -> header -> features: SASL EXTERNAL if the peer's certificate verified
 *   and names it (XEP-0178), else <db:result>key</db:result> (unless
 *   secure_auth) -> <db:result type='valid'/> -> READY: the queue goes out.
 *   The same stream carries our <db:verify/> questions for incoming streams.
 * Incoming stream (we are the receiving server):
 *   header -> features -> STARTTLS -> ... -> EXTERNAL (<success/>) or
 *   <db:result> checked by asking the claimed domain's server over an
 *   outgoing stream (<db:verify/>) -> <db:result type='valid'/>; then
 *   stanzas whose 'from' domain was authenticated on this stream. We answer
 *   <db:verify/> questions from peers about the keys we sent. */
#include "s2s.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utlist.h>

#include "buf.h"
#include "component.h"
#include "conn.h"
#include "errors.h"
#include "herald.h"
#include "jid.h"
#include "link.h"
#include "log.h"
#include "outq.h"
#include "pubsub_xmpp.h"
#include "resolve.h"
#include "router.h"
#include "tls.h"
#include "xml.h"

#define NS_SERVER "jabber:server"
#define NS_DB "jabber:server:dialback"
#define NS_DB_FEATURE "urn:xmpp:features:dialback"
#define MAX_DOMAINS 16   /* domains authenticated on one incoming stream */
#define MAX_VERIFY 64    /* dialback questions waiting on one outgoing stream */
#define DOMAIN_MAX 1024

enum out_state {
    OUT_RESOLVING,
    OUT_CONNECTING,      /* TCP, or waiting for the peer's header/features */
    OUT_STARTTLS,        /* <starttls/> sent */
    OUT_SASL,            /* <auth mechanism='EXTERNAL'/> sent */
    OUT_SASL_DONE,       /* <success/>: waiting for the restarted stream's features */
    OUT_DIALBACK,        /* <db:result/> sent */
    OUT_READY,
    OUT_FAILED,
};

struct pending {
    struct chunk *ch;
    struct pending *next;
};

struct verify_req {          /* an incoming stream's key, asked of its domain */
    char in_id[24];          /* the incoming stream's id */
    char key[130];
    bool sent;
    struct verify_req *next;
};

struct s2s_out {
    struct link link;        /* first */
    char local[DOMAIN_MAX], remote[DOMAIN_MAX];
    enum out_state state;
    bool has_conn;           /* link.conn was made (and on_gone will come) */
    bool tls;
    bool reached;            /* a TCP connection was made at least once */
    bool resolving;
    bool direct_tls;         /* this address wants TLS from the first byte */
    bool dead;               /* failed or closed: freed once nothing refers to it */
    bool features_seen;      /* of the current (post-TLS) stream */
    struct resolve_result addrs;
    unsigned next_addr;
    char peer_id[128];       /* the peer's stream id (dialback keys) */
    char why[160];           /* why EXTERNAL was not used, or the peer's stream error */
    struct pending *q_head, *q_tail;
    unsigned q_n;
    struct verify_req *verifies;
    unsigned nverify;
    uint64_t started_ms, last_ms;
    struct s2s_out *prev, *next; /* s2s->outs (utlist) */
};

struct s2s_in {
    struct link link;        /* first */
    char local[DOMAIN_MAX];  /* the header's 'to' */
    char claimed[DOMAIN_MAX]; /* the header's 'from' */
    bool tls;
    bool opened;
    bool sasl_done;          /* EXTERNAL succeeded: no mechanisms after the restart */
    char *domains[MAX_DOMAINS]; /* authenticated sender domains */
    unsigned ndomains;
    unsigned verifying;
    uint64_t last_ms;
    struct s2s_in *prev, *next;  /* s2s->ins (utlist) */
};

struct s2s {
    unsigned char secret[32];     /* dialback keys; new at every start */
    struct ssl_ctx_st *server_ctx; /* incoming: asks for (and checks) certificates */
    struct ssl_ctx_st *client_ctx; /* outgoing */
    struct s2s_in *ins;
    struct s2s_out *outs;
    unsigned nins, nouts;
};

static void out_fail(struct s2s_out *o, int err, const char *why);
static void out_connect_next(struct s2s_out *o);
static void in_verified(struct herald *h, const char *in_id, const char *domain, bool valid);

/* ---- helpers ---- */

void s2s_dialback_key(const unsigned char secret[32], const char *receiving,
                      const char *originating, const char *stream_id, char out[65])
{
    unsigned char k[SHA256_DIGEST_LENGTH], mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    SHA256(secret, 32, k);
    struct buf b;
    buf_init(&b, 0);
    buf_printf(&b, "%s %s %s", receiving, originating, stream_id);
    out[0] = '\0';
    if (buf_ok(&b) && HMAC(EVP_sha256(), k, sizeof(k), (const unsigned char *)b.data, b.len, mac,
                           &maclen) != NULL)
        for (unsigned i = 0; i < maclen && i < 32; i++)
            snprintf(out + 2 * i, 3, "%02x", mac[i]);
    buf_free(&b);
}

bool s2s_hosted(const struct herald *h, const char *domain)
{
    const char *ps = h->ps_xmpp ? ps_xmpp_jid(h->ps_xmpp) : NULL;
    return strcmp(domain, h->cfg->domain) == 0 || (ps && strcmp(domain, ps) == 0) ||
           component_for(h, domain) != NULL;
}

static bool valid_domain(const char *d)
{
    struct jid j;
    return d && strlen(d) < DOMAIN_MAX && jid_parse_str(&j, d) == 0 && !j.local[0] &&
           !j.resource[0] && strcmp(j.domain, d) == 0;
}

static bool is(const struct xnode *e, const char *ns, const char *name)
{
    return strcmp(e->ns, ns) == 0 && strcmp(e->name, name) == 0;
}

static void send_str(struct link *l, const char *s)
{
    link_send(l, s, strlen(s));
}

static void send_header(struct link *l, const char *from, const char *to, bool with_id)
{
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "<?xml version='1.0'?><stream:stream xmlns='" NS_SERVER "' xmlns:stream='" NS_STREAM
                 "' xmlns:db='" NS_DB "' version='1.0' from='");
    buf_xml_attr(&b, from, strlen(from));
    if (to && to[0]) {
        buf_puts(&b, "' to='");
        buf_xml_attr(&b, to, strlen(to));
    }
    if (with_id) {
        buf_puts(&b, "' id='");
        buf_puts(&b, l->stream_id);
    }
    buf_puts(&b, "'>");
    if (buf_ok(&b) && l->conn)
        conn_send(l->conn, b.data, b.len, CONN_SEND_FORCE);
    buf_free(&b);
    l->header_sent = true;
}

/* <db:NAME from to [id] type='T'/> or with a key as text. */
static void send_db(struct link *l, const char *name, const char *from, const char *to,
                    const char *id, const char *type, const char *key)
{
    struct buf b;
    buf_init(&b, 0);
    buf_printf(&b, "<db:%s from='", name);
    buf_xml_attr(&b, from, strlen(from));
    buf_puts(&b, "' to='");
    buf_xml_attr(&b, to, strlen(to));
    if (id) {
        buf_puts(&b, "' id='");
        buf_xml_attr(&b, id, strlen(id));
    }
    if (type)
        buf_printf(&b, "' type='%s", type);
    if (key)
        buf_printf(&b, "'>%s</db:%s>", key, name);
    else
        buf_puts(&b, "'/>");
    if (buf_ok(&b))
        link_send(l, b.data, b.len);
    buf_free(&b);
}

/* Does the TLS peer's certificate verify and name domain? why: for logs. */
static bool cert_names(struct conn *c, const char *domain, const char **why)
{
    if (c == NULL || c->tls == NULL) {
        *why = "no TLS";
        return false;
    }
    if (!tls_peer_verified(c->tls, why))
        return false;
    if (!tls_cert_names_domain(tls_peer_cert(c->tls), domain)) {
        *why = "the certificate does not name the domain";
        return false;
    }
    return true;
}

/* ---- outgoing streams ---- */

static struct s2s_out *out_of(struct link *l) { return (struct s2s_out *)l; }

static void out_free(struct s2s_out *o)
{
    struct s2s *s = o->link.h->s2s;
    DL_DELETE(s->outs, o);
    s->nouts--;
    while (o->q_head) {
        struct pending *p = o->q_head;
        o->q_head = p->next;
        chunk_unref(p->ch);
        free(p);
    }
    while (o->verifies) {
        struct verify_req *v = o->verifies;
        o->verifies = v->next;
        free(v);
    }
    link_free(&o->link);
    free(o);
}

/* Also link's on_connect: the TCP connection is up. */
static void out_send_header(struct link *l)
{
    struct s2s_out *o = out_of(l);
    o->reached = true;
    if (o->direct_tls && !o->tls) {
        if (conn_starttls_client(l->conn, l->h->s2s->client_ctx, o->remote) != 0) {
            conn_close(l->conn, false);
            return;
        }
        o->tls = true;
    }
    send_header(l, o->local, o->remote, false);
}

/* Lets go of the connection: politely once it is up, at once before. */
static void out_close_conn(struct s2s_out *o)
{
    if (!o->has_conn || o->link.conn == NULL)
        return;
    if (o->link.header_sent)
        link_close(&o->link);
    else
        conn_close(o->link.conn, false);
}

static void out_on_open(struct link *l, const struct xnode *hdr, const char *default_ns)
{
    struct s2s_out *o = out_of(l);
    const char *id = xml_attr(hdr, "id");
    if (strcmp(default_ns, NS_SERVER) != 0) {
        link_stream_error(l, "invalid-namespace", "expected " NS_SERVER);
        out_fail(o, HERALD_EREMOTE, "the peer's stream is not jabber:server");
        return;
    }
    snprintf(o->peer_id, sizeof(o->peer_id), "%s", id ? id : "");
    o->features_seen = false;
}

static void out_send_verifies(struct s2s_out *o)
{
    for (struct verify_req *v = o->verifies; v; v = v->next)
        if (!v->sent) {
            send_db(&o->link, "verify", o->local, o->remote, v->in_id, NULL, v->key);
            v->sent = true;
        }
}

static void out_ready(struct s2s_out *o, const char *how)
{
    o->state = OUT_READY;
    log_info("s2s", "%s authenticated (%s), outbound %s -> %s", o->remote, how, o->local, o->remote);
    while (o->q_head && o->state == OUT_READY) {
        struct pending *p = o->q_head;
        o->q_head = p->next;
        o->q_n--;
        link_send_chunks(&o->link, &p->ch, 1);
        chunk_unref(p->ch);
        free(p);
    }
    o->q_tail = NULL;
}

static void out_dialback(struct s2s_out *o)
{
    struct herald *h = o->link.h;
    if (h->cfg->s2s_secure_auth) {
        char why[300];
        snprintf(why, sizeof(why), "s2s.secure_auth and no SASL EXTERNAL (%s); dialback is off",
                 o->why[0] ? o->why : "not offered");
        out_fail(o, HERALD_EREMOTE, why);
        return;
    }
    char key[65];
    s2s_dialback_key(h->s2s->secret, o->remote, o->local, o->peer_id, key);
    send_db(&o->link, "result", o->local, o->remote, NULL, NULL, key);
    o->state = OUT_DIALBACK;
}

static bool offers_mech(const struct xnode *features, const char *mech, struct arena *a)
{
    const struct xnode *m = xml_child(features, NS_SASL, "mechanisms");
    for (const struct xnode *c = m ? xml_first_elem(m) : NULL; c; c = xml_next_elem(c)) {
        const char *t = xml_text(a, c);
        if (t && strcmp(t, mech) == 0)
            return true;
    }
    return false;
}

static void out_features(struct s2s_out *o, const struct xnode *f, struct arena *a)
{
    struct herald *h = o->link.h;
    struct link *l = &o->link;
    if (o->state == OUT_SASL_DONE) {
        out_ready(o, "EXTERNAL");
        return;
    }
    if (!o->tls && xml_child(f, NS_TLS, "starttls") && h->s2s->client_ctx) {
        send_str(l, "<starttls xmlns='" NS_TLS "'/>");
        o->state = OUT_STARTTLS;
        return;
    }
    if (!o->tls && h->cfg->s2s_require_tls) {
        link_close(l);
        out_fail(o, HERALD_EREMOTE, "the peer does not offer STARTTLS (s2s.require_tls)");
        return;
    }
    o->features_seen = true;
    out_send_verifies(o);
    const char *why = "";
    if (offers_mech(f, "EXTERNAL", a) && cert_names(l->conn, o->remote, &why)) {
        struct buf b;
        buf_init(&b, 0);
        buf_puts(&b, "<auth xmlns='" NS_SASL "' mechanism='EXTERNAL'>");
        buf_base64(&b, o->local, strlen(o->local));
        buf_puts(&b, "</auth>");
        if (buf_ok(&b))
            link_send(l, b.data, b.len);
        buf_free(&b);
        o->state = OUT_SASL;
        return;
    }
    bool offered = offers_mech(f, "EXTERNAL", a);
    snprintf(o->why, sizeof(o->why), "%s",
             !offered ? "the peer does not offer it" : why[0] ? why : "not usable");
    if (!h->cfg->s2s_secure_auth)
        log_debug("s2s", "%s: no EXTERNAL (%s): dialback", o->remote, o->why);
    out_dialback(o);
}

static struct s2s_in *in_by_id(struct herald *h, const char *id)
{
    for (struct s2s_in *i = h->s2s->ins; i; i = i->next)
        if (strcmp(i->link.stream_id, id) == 0)
            return i;
    return NULL;
}

static void out_on_element(struct link *l, struct xnode *e, struct arena *a)
{
    struct s2s_out *o = out_of(l);
    struct herald *h = l->h;
    o->last_ms = uv_now(h->loop);
    if (is(e, NS_STREAM, "features")) {
        out_features(o, e, a);
    } else if (is(e, NS_TLS, "proceed") && o->state == OUT_STARTTLS) {
        if (conn_starttls_client(l->conn, h->s2s->client_ctx, o->remote) != 0) {
            link_close(l);
            out_fail(o, HERALD_EREMOTE, "TLS setup failed");
            return;
        }
        o->tls = true;
        o->state = OUT_CONNECTING;
        link_restart(l);
        out_send_header(l);
    } else if (is(e, NS_TLS, "failure")) {
        out_fail(o, HERALD_EREMOTE, "the peer refused STARTTLS");
        link_close(l);
    } else if (is(e, NS_SASL, "success") && o->state == OUT_SASL) {
        o->state = OUT_SASL_DONE;
        link_restart(l);
        out_send_header(l);
    } else if (is(e, NS_SASL, "failure") && o->state == OUT_SASL) {
        const struct xnode *c = xml_first_elem(e);
        snprintf(o->why, sizeof(o->why), "the peer refused our certificate: <%s/>",
                 c ? c->name : "failure");
        log_info("s2s", "%s: SASL EXTERNAL refused (%s)%s", o->remote, c ? c->name : "?",
                 h->cfg->s2s_secure_auth ? "" : "; trying dialback");
        out_dialback(o);
    } else if (is(e, NS_DB, "result") && o->state == OUT_DIALBACK) {
        const char *type = xml_attr(e, "type");
        if (type && strcmp(type, "valid") == 0) {
            out_ready(o, "dialback");
        } else {
            link_close(l);
            out_fail(o, HERALD_EREMOTE, "the peer did not accept our dialback key");
        }
    } else if (is(e, NS_DB, "verify")) {
        /* The answer to a question about an incoming stream's key. */
        const char *id = xml_attr(e, "id"), *type = xml_attr(e, "type");
        struct verify_req **pp = &o->verifies;
        while (id && *pp && strcmp((*pp)->in_id, id) != 0)
            pp = &(*pp)->next;
        if (id == NULL || *pp == NULL)
            return; /* not ours, or answered already */
        struct verify_req *v = *pp;
        *pp = v->next;
        o->nverify--;
        free(v);
        in_verified(h, id, o->remote, type && strcmp(type, "valid") == 0);
    } else if (is(e, NS_STREAM, "error")) {
        const struct xnode *c = xml_first_elem(e);
        log_info("s2s", "%s: the peer sent a stream error <%s/>", o->remote, c ? c->name : "?");
        if (o->state != OUT_READY)
            snprintf(o->why, sizeof(o->why), "the peer sent a stream error <%s/>",
                     c ? c->name : "?");
    }
}

/* Bounces every queued stanza with err and answers the questions asked
 * through this stream as failed; the stream is not used again. */
static void out_fail(struct s2s_out *o, int err, const char *why)
{
    struct herald *h = o->link.h;
    if (o->state == OUT_FAILED)
        return;
    o->state = OUT_FAILED;
    o->dead = true;
    static struct log_limit lim;
    log_limited(&lim, h->shutting_down && o->q_n == 0 ? LOG_INFO : LOG_WARN, "s2s",
                "%s -> %s failed: %s (%u stanzas bounced)", o->local, o->remote, why, o->q_n);
    struct pending *p = o->q_head;
    o->q_head = o->q_tail = NULL;
    o->q_n = 0;
    while (p) {
        struct pending *n = p->next;
        router_bounce_bytes(h, p->ch->data, p->ch->len, err);
        chunk_unref(p->ch);
        free(p);
        p = n;
    }
    struct verify_req *v = o->verifies;
    o->verifies = NULL;
    o->nverify = 0;
    while (v) {
        struct verify_req *n = v->next;
        in_verified(h, v->in_id, o->remote, false);
        free(v);
        v = n;
    }
    if (!o->has_conn && !o->resolving)
        out_free(o);
}

static void out_on_gone(struct link *l)
{
    struct s2s_out *o = out_of(l);
    o->has_conn = false;
    link_free(l);
    if (!o->dead && o->state != OUT_READY && o->next_addr < o->addrs.n) {
        out_connect_next(o); /* the next address of the lookup */
        return;
    }
    if (!o->dead) {
        /* A refusal or a close during set-up is not a timeout (the sweep
         * gives those): remote-server-not-found. */
        char why[300];
        snprintf(why, sizeof(why), "%s%s%s",
                 o->state == OUT_READY ? "connection closed"
                 : o->reached          ? "connection closed during set-up"
                                       : "could not connect",
                 o->why[0] && o->state != OUT_READY ? ": " : "",
                 o->state != OUT_READY ? o->why : "");
        out_fail(o, HERALD_EREMOTE, why);
    } else if (!o->resolving) {
        out_free(o);
    }
}

static const struct link_ops out_ops = {
    .area = "s2s",
    .on_open = out_on_open,
    .on_element = out_on_element,
    .on_gone = out_on_gone,
    .send_header = out_send_header,
};

static void out_connect_next(struct s2s_out *o)
{
    struct herald *h = o->link.h;
    while (o->next_addr < o->addrs.n) {
        const struct resolve_addr *ra = &o->addrs.addrs[o->next_addr++];
        char peer[48] = "?";
        if (ra->sa.ss_family == AF_INET)
            uv_ip4_name((const struct sockaddr_in *)&ra->sa, peer, sizeof(peer));
        else
            uv_ip6_name((const struct sockaddr_in6 *)&ra->sa, peer, sizeof(peer));
        memset(&o->link, 0, sizeof(o->link));
        o->tls = false;
        o->direct_tls = ra->direct_tls;
        o->state = OUT_CONNECTING;
        const struct config *cfg = h->cfg;
        struct conn *c = conn_connect(h, (const struct sockaddr *)&ra->sa,
                                      cfg->s2s_bind ? cfg->s2s_bind : cfg->c2s_bind, peer,
                                      link_conn_handler(), &o->link);
        if (c == NULL)
            continue;
        o->has_conn = true;
        if (link_init(&o->link, h, c, &out_ops, NS_SERVER) != 0) {
            conn_close(c, false);
            return;
        }
        log_debug("s2s", "%s: connecting to %s%s", o->remote, peer, ra->direct_tls ? " (direct TLS)" : "");
        return;
    }
    out_fail(o, o->reached ? HERALD_EREMOTE_TIMEOUT : HERALD_EREMOTE, "no address could be reached");
}

static void on_resolved(void *ud, const struct resolve_result *r)
{
    struct s2s_out *o = ud;
    o->resolving = false;
    if (o->dead) {
        if (!o->has_conn)
            out_free(o);
        return;
    }
    o->addrs = *r;
    o->next_addr = 0;
    if (r->n == 0) {
        char why[400];
        snprintf(why, sizeof(why), "no address found (%s)", r->how[0] ? r->how : "DNS SRV and A/AAAA");
        out_fail(o, HERALD_EREMOTE, why);
        return;
    }
    log_debug("s2s", "%s: %u addresses by %s", o->remote, r->n, r->how);
    out_connect_next(o);
}

static struct s2s_out *out_find(struct herald *h, const char *local, const char *remote)
{
    for (struct s2s_out *o = h->s2s->outs; o; o = o->next)
        if (!o->dead && strcmp(o->local, local) == 0 && strcmp(o->remote, remote) == 0)
            return o;
    return NULL;
}

static struct s2s_out *out_get(struct herald *h, const char *local, const char *remote)
{
    struct s2s_out *o = out_find(h, local, remote);
    if (o != NULL)
        return o;
    if (strlen(local) >= DOMAIN_MAX || strlen(remote) >= DOMAIN_MAX ||
        (o = calloc(1, sizeof(*o))) == NULL)
        return NULL;
    struct s2s *s = h->s2s;
    o->link.h = h;
    snprintf(o->local, sizeof(o->local), "%s", local);
    snprintf(o->remote, sizeof(o->remote), "%s", remote);
    o->started_ms = o->last_ms = uv_now(h->loop);
    o->state = OUT_RESOLVING;
    DL_PREPEND(s->outs, o);
    s->nouts++;
    const struct config_peer *p = config_peer(h->cfg, remote);
    o->resolving = true;
    if (resolve_peer(h->loop, remote, p ? p->host : NULL, p ? p->port : 0, on_resolved, o) != 0) {
        o->resolving = false;
        out_free(o);
        return NULL;
    }
    return o;
}

int s2s_send(struct herald *h, const char *local, const char *remote, struct chunk *stanza)
{
    if (h->s2s == NULL || h->cfg->s2s_port == 0 || h->shutting_down)
        return HERALD_EREMOTE;
    struct s2s_out *o = out_get(h, local, remote);
    if (o == NULL)
        return HERALD_ENOMEM;
    o->last_ms = uv_now(h->loop);
    if (o->state == OUT_READY)
        return link_send_chunks(&o->link, &stanza, 1);
    if (o->q_n >= h->cfg->s2s_max_queue)
        return HERALD_ELIMIT;
    struct pending *p = malloc(sizeof(*p));
    if (p == NULL)
        return HERALD_ENOMEM;
    p->ch = stanza;
    chunk_ref(stanza);
    p->next = NULL;
    if (o->q_tail)
        o->q_tail->next = p;
    else
        o->q_head = p;
    o->q_tail = p;
    o->q_n++;
    return 0;
}

/* ---- incoming streams ---- */

static struct s2s_in *in_of(struct link *l) { return (struct s2s_in *)l; }

static bool in_has_domain(const struct s2s_in *i, const char *d)
{
    for (unsigned k = 0; k < i->ndomains; k++)
        if (strcmp(i->domains[k], d) == 0)
            return true;
    return false;
}

static void in_add_domain(struct s2s_in *i, const char *d, const char *how)
{
    if (in_has_domain(i, d) || i->ndomains >= MAX_DOMAINS)
        return;
    char *copy = strdup(d);
    if (copy == NULL)
        return;
    i->domains[i->ndomains++] = copy;
    log_info("s2s", "%s authenticated (%s), inbound %s -> %s (%s)", d, how, d, i->local, i->link.peer);
}

static void in_send_header(struct link *l)
{
    struct s2s_in *i = in_of(l);
    send_header(l, i->local[0] ? i->local : l->h->cfg->domain, i->claimed, true);
}

static void in_features(struct s2s_in *i)
{
    struct herald *h = i->link.h;
    const struct config *cfg = h->cfg;
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "<stream:features>");
    if (!i->tls && h->s2s->server_ctx) {
        buf_puts(&b, "<starttls xmlns='" NS_TLS "'>");
        if (cfg->s2s_require_tls)
            buf_puts(&b, "<required/>");
        buf_puts(&b, "</starttls>");
    }
    if (i->tls || !cfg->s2s_require_tls) {
        const char *why;
        /* RFC 6120 §6.4.6: after SASL the restarted stream offers no
         * mechanisms; dialback stays for further domains (XEP-0220 §2.5). */
        if (!i->sasl_done && i->claimed[0] && cert_names(i->link.conn, i->claimed, &why)) {
            buf_puts(&b, "<mechanisms xmlns='" NS_SASL "'><mechanism>EXTERNAL</mechanism></mechanisms>");
        } else if (!i->sasl_done && cfg->s2s_secure_auth) {
            static struct log_limit lim;
            log_limited(&lim, LOG_INFO, "s2s", "%s: %s cannot authenticate (secure_auth): %s",
                        i->link.peer, i->claimed[0] ? i->claimed : "a peer without 'from'",
                        i->claimed[0] ? why : "no domain claimed");
        }
        if (!cfg->s2s_secure_auth)
            buf_puts(&b, "<dialback xmlns='" NS_DB_FEATURE "'><errors/></dialback>");
    }
    buf_puts(&b, "</stream:features>");
    if (buf_ok(&b))
        link_send(&i->link, b.data, b.len);
    buf_free(&b);
}

static void in_on_open(struct link *l, const struct xnode *hdr, const char *default_ns)
{
    struct s2s_in *i = in_of(l);
    struct herald *h = l->h;
    const char *to = xml_attr(hdr, "to"), *from = xml_attr(hdr, "from");
    const char *version = xml_attr(hdr, "version");
    if (strcmp(default_ns, NS_SERVER) != 0) {
        link_stream_error(l, "invalid-namespace", "the default namespace must be " NS_SERVER);
        return;
    }
    if (to && !s2s_hosted(h, to)) {
        snprintf(i->local, sizeof(i->local), "%s", h->cfg->domain);
        link_stream_error(l, "host-unknown", "this server does not serve that domain");
        return;
    }
    snprintf(i->local, sizeof(i->local), "%s", to ? to : h->cfg->domain);
    snprintf(i->claimed, sizeof(i->claimed), "%s", from && valid_domain(from) ? from : "");
    if (i->opened)
        link_new_id(l); /* a restarted stream gets a new id */
    i->opened = true;
    in_send_header(l);
    if (version && strtol(version, NULL, 10) >= 1)
        in_features(i);
}

static void in_external(struct s2s_in *i, struct xnode *e, struct arena *a)
{
    struct link *l = &i->link;
    const char *t = xml_text(a, e);
    char authz[DOMAIN_MAX] = "";
    size_t tl = t ? strlen(t) : 0;
    if (tl > 1 && tl < 4 * sizeof(authz) / 3) {
        unsigned char dec[DOMAIN_MAX];
        long n = base64_decode(t, tl, dec);
        if (n > 0 && (size_t)n < sizeof(authz) && memchr(dec, 0, (size_t)n) == NULL) {
            memcpy(authz, dec, (size_t)n);
            authz[n] = '\0';
        }
    }
    const char *who = authz[0] ? authz : i->claimed;
    const char *why = "no domain claimed";
    if (who[0] && valid_domain(who) && cert_names(l->conn, who, &why)) {
        send_str(l, "<success xmlns='" NS_SASL "'/>");
        i->sasl_done = true;
        in_add_domain(i, who, "EXTERNAL");
        link_restart(l);
        return;
    }
    static struct log_limit lim;
    log_limited(&lim, LOG_WARN, "s2s", "%s: SASL EXTERNAL for '%s' refused: %s", l->peer, who, why);
    send_str(l, "<failure xmlns='" NS_SASL "'><not-authorized/></failure>");
}

static void in_dialback_result(struct s2s_in *i, struct xnode *e, struct arena *a)
{
    struct link *l = &i->link;
    struct herald *h = l->h;
    const char *from = xml_attr(e, "from"), *to = xml_attr(e, "to");
    const char *key = xml_text(a, e);
    if (h->cfg->s2s_secure_auth) {
        log_warn("s2s", "%s: dialback from %s refused: s2s.secure_auth needs a certificate", l->peer,
                 from ? from : "?");
        link_stream_error(l, "not-authorized", "dialback is off here (secure_auth): present a "
                                               "certificate that verifies");
        return;
    }
    if (!i->tls && h->cfg->s2s_require_tls) {
        link_stream_error(l, "policy-violation", "STARTTLS is required first");
        return;
    }
    if (!valid_domain(from) || !valid_domain(to) || key == NULL || key[0] == '\0' ||
        strlen(key) >= sizeof(((struct verify_req *)0)->key)) {
        link_stream_error(l, "invalid-xml", "a dialback result needs from, to and a key");
        return;
    }
    if (!s2s_hosted(h, to)) {
        link_stream_error(l, "host-unknown", "this server does not serve that domain");
        return;
    }
    if (in_has_domain(i, from)) {
        send_db(l, "result", to, from, NULL, "valid", NULL);
        return;
    }
    if (i->ndomains + i->verifying >= MAX_DOMAINS) {
        link_stream_error(l, "policy-violation", "too many domains on one stream");
        return;
    }
    /* Ask from's authoritative server whether it made this key (XEP-0220 §2.3). */
    struct s2s_out *o = out_get(h, to, from);
    if (o == NULL || o->nverify >= MAX_VERIFY) {
        send_db(l, "result", to, from, NULL, "invalid", NULL);
        return;
    }
    struct verify_req *v = calloc(1, sizeof(*v));
    if (v == NULL) {
        send_db(l, "result", to, from, NULL, "invalid", NULL);
        return;
    }
    snprintf(v->in_id, sizeof(v->in_id), "%s", l->stream_id);
    snprintf(v->key, sizeof(v->key), "%s", key);
    v->next = o->verifies;
    o->verifies = v;
    o->nverify++;
    i->verifying++;
    if (o->features_seen || o->state == OUT_READY)
        out_send_verifies(o);
}

/* The answer about a key from the incoming stream in_id, for domain. */
static void in_verified(struct herald *h, const char *in_id, const char *domain, bool valid)
{
    struct s2s_in *i = in_by_id(h, in_id);
    if (i == NULL || i->link.closing)
        return;
    if (i->verifying > 0)
        i->verifying--;
    send_db(&i->link, "result", i->local, domain, NULL, valid ? "valid" : "invalid", NULL);
    if (valid) {
        in_add_domain(i, domain, "dialback");
        return;
    }
    log_warn("s2s", "%s: dialback for %s failed: its server did not confirm the key", i->link.peer,
             domain);
    link_close(&i->link);
}

/* A peer asks whether we made a key (we are the originating server). */
static void in_dialback_verify(struct s2s_in *i, struct xnode *e, struct arena *a)
{
    struct link *l = &i->link;
    const char *from = xml_attr(e, "from"), *to = xml_attr(e, "to"), *id = xml_attr(e, "id");
    const char *key = xml_text(a, e);
    if (!valid_domain(from) || !valid_domain(to) || id == NULL || key == NULL) {
        link_stream_error(l, "invalid-xml", "a dialback verify needs from, to, id and a key");
        return;
    }
    char want[65];
    s2s_dialback_key(l->h->s2s->secret, from, to, id, want);
    bool ok = s2s_hosted(l->h, to) && strlen(key) == 64 && CRYPTO_memcmp(key, want, 64) == 0;
    send_db(l, "verify", to, from, id, ok ? "valid" : "invalid", NULL);
}

static void in_stanza(struct s2s_in *i, struct xnode *e, struct arena *a)
{
    struct link *l = &i->link;
    const char *from = xml_attr(e, "from"), *to = xml_attr(e, "to");
    struct jid jf, jt;
    if (from == NULL || to == NULL || jid_parse_str(&jf, from) != 0 || jid_parse_str(&jt, to) != 0) {
        link_stream_error(l, "improper-addressing", "a stanza needs valid from and to");
        return;
    }
    if (!in_has_domain(i, jf.domain)) {
        log_warn("s2s", "%s: stanza from '%s', a domain not authenticated on this stream: "
                        "invalid-from", l->peer, from);
        link_stream_error(l, "invalid-from", "that domain is not authenticated on this stream");
        return;
    }
    if (!s2s_hosted(l->h, jt.domain)) {
        link_stream_error(l, "host-unknown", "this server does not serve that domain");
        return;
    }
    router_route_external(l->h, e, a);
}

static void in_on_element(struct link *l, struct xnode *e, struct arena *a)
{
    struct s2s_in *i = in_of(l);
    struct herald *h = l->h;
    i->last_ms = uv_now(h->loop);
    if (is(e, NS_TLS, "starttls")) {
        if (i->tls || h->s2s->server_ctx == NULL) {
            send_str(l, "<failure xmlns='" NS_TLS "'/>");
            link_close(l);
            return;
        }
        send_str(l, "<proceed xmlns='" NS_TLS "'/>");
        if (conn_starttls(l->conn, h->s2s->server_ctx) != 0) {
            link_stream_error(l, "internal-server-error", "TLS setup failed");
            return;
        }
        i->tls = true;
        link_restart(l);
    } else if (is(e, NS_SASL, "auth")) {
        const char *mech = xml_attr(e, "mechanism");
        if (mech && strcmp(mech, "EXTERNAL") == 0 && (i->tls || !h->cfg->s2s_require_tls))
            in_external(i, e, a);
        else
            send_str(l, "<failure xmlns='" NS_SASL "'><invalid-mechanism/></failure>");
    } else if (is(e, NS_DB, "result")) {
        in_dialback_result(i, e, a);
    } else if (is(e, NS_DB, "verify")) {
        in_dialback_verify(i, e, a);
    } else if (strcmp(e->ns, NS_CLIENT) == 0 &&
               (!strcmp(e->name, "message") || !strcmp(e->name, "presence") || !strcmp(e->name, "iq"))) {
        if (i->ndomains == 0 || (!i->tls && h->cfg->s2s_require_tls))
            link_stream_error(l, "not-authorized", "authenticate first");
        else
            in_stanza(i, e, a);
    } else if (!is(e, NS_STREAM, "error")) {
        link_stream_error(l, "unsupported-stanza-type", NULL);
    }
}

static void in_on_gone(struct link *l)
{
    struct s2s_in *i = in_of(l);
    struct s2s *s = l->h->s2s;
    DL_DELETE(s->ins, i);
    s->nins--;
    for (unsigned k = 0; k < i->ndomains; k++)
        free(i->domains[k]);
    link_free(l);
    free(i);
}

static const struct link_ops in_ops = {
    .area = "s2s",
    .on_open = in_on_open,
    .on_element = in_on_element,
    .on_gone = in_on_gone,
    .send_header = in_send_header,
};

void s2s_accept(struct herald *h, struct conn *conn)
{
    struct s2s *s = h->s2s;
    struct s2s_in *i = calloc(1, sizeof(*i));
    if (i == NULL || s == NULL) {
        free(i);
        conn_close(conn, false);
        return;
    }
    i->last_ms = uv_now(h->loop);
    DL_PREPEND(s->ins, i);
    s->nins++;
    if (link_accept(&i->link, h, conn, &in_ops, NS_SERVER) != 0)
        conn_close(conn, false); /* in_on_gone frees i */
    else if (h->shutting_down)
        link_stream_error(&i->link, "system-shutdown", NULL);
}

/* ---- the whole ---- */

int s2s_init(struct herald *h)
{
    struct s2s *s = calloc(1, sizeof(*s));
    if (s == NULL || RAND_bytes(s->secret, sizeof(s->secret)) != 1) {
        free(s);
        return HERALD_ENOMEM;
    }
    h->s2s = s;
    const struct config *cfg = h->cfg;
    /* Federation off: no streams, so no TLS contexts (and no CA store read). */
    if (h->tls_cert_path == NULL || cfg->s2s_port == 0)
        return 0;
    s->server_ctx = tls_ctx_new(h->tls_cert_path, h->tls_key_path);
    s->client_ctx = tls_client_ctx_new(h->tls_cert_path, h->tls_key_path, cfg->s2s_ca_file);
    if (s->server_ctx == NULL || s->client_ctx == NULL ||
        tls_ctx_policy(s->server_ctx, cfg->tls_min_version, cfg->tls_ciphers, cfg->tls_ciphersuites) ||
        tls_ctx_policy(s->client_ctx, cfg->tls_min_version, cfg->tls_ciphers, cfg->tls_ciphersuites) ||
        tls_ctx_verify_peers(s->server_ctx, cfg->s2s_ca_file, NULL, true, s->client_ctx) != 0)
        return HERALD_EINVAL;
    return 0;
}

void s2s_sweep(struct herald *h, uint64_t now)
{
    struct s2s *s = h->s2s;
    if (s == NULL)
        return;
    const struct config *cfg = h->cfg;
    uint64_t setup = (uint64_t)cfg->s2s_connect_timeout * 1000;
    uint64_t idle = (uint64_t)cfg->s2s_idle_timeout * 1000;
    for (struct s2s_out *o = s->outs, *n; o; o = n) {
        n = o->next;
        if (o->dead)
            continue;
        if (o->state != OUT_READY && now - o->started_ms > setup) {
            bool had_conn = o->has_conn;
            out_fail(o, o->reached ? HERALD_EREMOTE_TIMEOUT : HERALD_EREMOTE,
                     o->reached ? "not authenticated in time (s2s.connect_timeout)"
                                : "not reached in time (s2s.connect_timeout)");
            if (had_conn)
                out_close_conn(o);
        } else if (o->state == OUT_READY && idle && o->link.conn && now - o->last_ms > idle &&
                   now - o->link.conn->last_read_ms > idle) {
            log_debug("s2s", "%s -> %s idle: closing", o->local, o->remote);
            o->dead = true;
            link_close(&o->link);
        }
    }
    for (struct s2s_in *i = s->ins; i; i = i->next)
        if (idle && i->link.conn && now - i->link.conn->last_read_ms > idle && !i->link.closing)
            link_close(&i->link);
}

void s2s_close_all(struct herald *h)
{
    struct s2s *s = h->s2s;
    if (s == NULL)
        return;
    for (struct s2s_in *i = s->ins; i; i = i->next)
        link_stream_error(&i->link, "system-shutdown", NULL);
    for (struct s2s_out *o = s->outs, *n; o; o = n) {
        n = o->next;
        if (o->dead)
            continue;
        bool had_conn = o->has_conn;
        out_fail(o, HERALD_EREMOTE, "server shutting down");
        if (had_conn)
            out_close_conn(o);
    }
}

void s2s_free(struct herald *h)
{
    struct s2s *s = h->s2s;
    if (s == NULL)
        return;
    tls_ctx_free(s->server_ctx);
    tls_ctx_free(s->client_ctx);
    free(s);
    h->s2s = NULL;
}

void s2s_counts(const struct herald *h, unsigned *in, unsigned *out)
{
    *in = h->s2s ? h->s2s->nins : 0;
    *out = h->s2s ? h->s2s->nouts : 0;
}
