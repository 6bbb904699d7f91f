/* cli_sub_xmpp.c - `herald sub NODE --jid JID`: follow a node over XMPP
 * (docs/cli.md), as mosquitto_sub follows a topic.
 *
 * Logs in with cli_xmpp.c, sends initial presence, subscribes the bound
 * full JID to the node (XEP-0060 §6.1) and prints each event notification
 * as one JSON line in the shape REST mode prints: an item as {"id",
 * "seq" (only when the notification carries a XEP-0359 stanza-id from the
 * service: a durable subscription's; live notifications carry none),
 * "published" (only with a XEP-0203 delay: a replayed item), "publisher"
 * (only when the service sets the attribute), "json" | "xml"}, the payload
 * rendered by the same function as REST's (rest_payload_json) from the
 * payload element serialized as the server stores it. A retract, purge and
 * delete are {"event":...} lines; delete ends the command.
 *
 * Whatever way it ends (--count, --timeout, the node deleted, SIGINT or
 * SIGTERM), the subscription is removed and the stream closed with
 * </stream:stream>, so that none is left behind; a client killed with
 * SIGKILL leaves its full-JID subscription on the server. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "buf.h"
#include "cli_rest.h"
#include "cli_sub_xmpp.h"
#include "cli_xmpp.h"
#include "json.h"
#include "rest.h"
#include "xml.h"

#define NS_EVENT "http://jabber.org/protocol/pubsub#event"
#define NS_SID "urn:xmpp:sid:0"
#define NS_DELAY "urn:xmpp:delay"
/* A parent namespace no element has: the payload is serialized with its
 * xmlns, byte for byte as the server stores it (api/rest.c). */
#define NS_NONE "\x01"

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

struct xsub {
    struct cli_xmpp *x;
    const char *node;
    unsigned long got, count;
    bool done, deleted, failed;
};

/* Prints g's one finished JSON object as a line; false on failure. */
static bool print_gen(yajl_gen g)
{
    const unsigned char *out;
    size_t len;
    if (yajl_gen_get_buf(g, &out, &len) != yajl_gen_status_ok)
        return false;
    return fwrite(out, 1, len, stdout) == len && putchar('\n') != EOF && fflush(stdout) == 0;
}

static void print_event(struct xsub *s, const char *event, const char *id)
{
    yajl_gen g = json_gen_new();
    if (g == NULL) {
        s->failed = true;
        return;
    }
    yajl_gen_map_open(g);
    json_key_str(g, "event", event);
    if (id)
        json_key_str(g, "id", id);
    yajl_gen_map_close(g);
    if (!print_gen(g))
        s->failed = true;
    yajl_gen_free(g);
}

static void print_item(struct xsub *s, const struct xnode *msg, const struct xnode *item,
                       struct arena *a)
{
    const char *id = xml_attr(item, "id"), *publisher = xml_attr(item, "publisher");
    const char *seq = NULL, *stamp = NULL;
    for (const struct xnode *c = xml_first_elem(msg); c; c = xml_next_elem(c)) {
        if (strcmp(c->ns, NS_SID) == 0 && strcmp(c->name, "stanza-id") == 0 && xml_attr(c, "by") &&
            strcmp(xml_attr(c, "by"), cli_xmpp_service(s->x)) == 0)
            seq = xml_attr(c, "id");
        else if (strcmp(c->ns, NS_DELAY) == 0 && strcmp(c->name, "delay") == 0)
            stamp = xml_attr(c, "stamp");
    }
    struct buf payload;
    buf_init(&payload, 0);
    const struct xnode *p = xml_first_elem(item);
    if (p)
        xml_serialize(&payload, p, NS_NONE);
    yajl_gen g = json_gen_new();
    if (g == NULL || !buf_ok(&payload)) {
        s->failed = true;
        goto done;
    }
    yajl_gen_map_open(g);
    json_key_str(g, "id", id ? id : "");
    char *end;
    unsigned long long v = seq ? strtoull(seq, &end, 10) : 0;
    if (seq && seq[0] >= '0' && seq[0] <= '9' && *end == '\0')
        json_key_uint(g, "seq", v);
    if (stamp)
        json_key_str(g, "published", stamp);
    if (publisher)
        json_key_str(g, "publisher", publisher);
    rest_payload_json(g, payload.data, payload.len);
    yajl_gen_map_close(g);
    if (!print_gen(g))
        s->failed = true;
    s->got++;
    if (s->count && s->got >= s->count)
        s->done = true;
done:
    if (g)
        yajl_gen_free(g);
    buf_free(&payload);
}

/* A <message/>: the node's events, in document order. Messages that are
 * not this node's notifications (a chat message, another node's event
 * through a bare-JID subscription) are ignored. */
static void on_message(void *ud, const struct xnode *msg, struct arena *a)
{
    struct xsub *s = ud;
    const struct xnode *ev = xml_child(msg, NS_EVENT, "event");
    const char *from = xml_attr(msg, "from");
    if (ev == NULL || from == NULL || strcmp(from, cli_xmpp_service(s->x)) != 0)
        return;
    for (const struct xnode *e = xml_first_elem(ev); e && !s->done; e = xml_next_elem(e)) {
        const char *node = xml_attr(e, "node");
        if (node == NULL || strcmp(node, s->node) != 0)
            continue;
        if (strcmp(e->name, "items") == 0) {
            for (const struct xnode *i = xml_first_elem(e); i && !s->done; i = xml_next_elem(i)) {
                if (strcmp(i->name, "item") == 0)
                    print_item(s, msg, i, a);
                else if (strcmp(i->name, "retract") == 0 && xml_attr(i, "id"))
                    print_event(s, "retract", xml_attr(i, "id"));
            }
        } else if (strcmp(e->name, "purge") == 0) {
            print_event(s, "purge", NULL);
        } else if (strcmp(e->name, "delete") == 0) {
            print_event(s, "delete", NULL);
            s->deleted = s->done = true;
        }
    }
}

int cli_sub_xmpp(const struct cli_rest *c, const char *node, unsigned long count,
                 unsigned long timeout, bool verbose)
{
    struct cli_xmpp_opts xo = {.prog = "herald sub",
                               .jid = c->jid,
                               .password = c->password ? c->password : getenv("HERALD_PASSWORD"),
                               .host = c->host,
                               .port = c->port,
                               .service = c->service,
                               .cacert = c->cacert,
                               .insecure = c->insecure};
    struct xsub s = {.node = node, .count = count};
    int ret;
    if (xo.password == NULL) {
        fprintf(stderr, "herald sub: --jid needs --password or HERALD_PASSWORD\n");
        return CLI_USAGE;
    }
    /* A closed socket or stdout pipe is an error return, not death. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        return CLI_CONNECT;
    if ((ret = cli_xmpp_connect(&s.x, &xo)) != 0)
        return ret;
    /* From here on SIGINT and SIGTERM end the wait (poll returns EINTR)
     * so that the subscription is removed before exiting; until now they
     * killed the process, which had nothing to undo. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0) {
        fprintf(stderr, "herald sub: cannot set the signal handlers\n");
        ret = CLI_CONNECT;
        goto close;
    }
    cli_xmpp_on_message(s.x, on_message, &s);
    setvbuf(stdout, NULL, _IOLBF, 0);
    unsigned long long deadline = timeout ? cli_now_ms() + timeout * 1000ull : 0;
    if ((ret = cli_xmpp_presence(s.x)) != 0 || (ret = cli_xmpp_subscribe(s.x, node)) != 0)
        goto close;
    if (verbose)
        fprintf(stderr, "herald sub: subscribed as %s\n", cli_xmpp_full_jid(s.x));
    bool timed_out = false;
    while (!s.done && !s.failed && !stop_signal) {
        /* One second at most per wait: a signal that lands just before
         * poll is then seen within a second. */
        int wait_ms = 1000;
        if (deadline) {
            unsigned long long now = cli_now_ms();
            if (now >= deadline) {
                timed_out = true;
                break;
            }
            if (deadline - now < 1000)
                wait_ms = (int)(deadline - now);
        }
        if ((ret = cli_xmpp_wait(s.x, wait_ms)) != 0)
            goto close; /* the connection is gone: so is the session's subscription */
    }
    /* Stop printing, then remove the subscription (a deleted node took it). */
    cli_xmpp_on_message(s.x, NULL, NULL);
    if (!s.deleted && cli_xmpp_unsubscribe(s.x, node) != 0)
        fprintf(stderr, "herald sub: the subscription of %s may be left behind\n",
                cli_xmpp_full_jid(s.x));
    if (s.failed) {
        fprintf(stderr, "herald sub: cannot write the output\n");
        ret = CLI_CONNECT;
    } else if (s.deleted && s.count && s.got < s.count) {
        fprintf(stderr, "herald sub: the node was deleted after %lu of %lu items\n", s.got,
                s.count);
        ret = CLI_REFUSED;
    } else if (timed_out && (s.count || s.got == 0)) {
        if (s.count)
            fprintf(stderr, "herald sub: timed out after %lu s with %lu of %lu items\n", timeout,
                    s.got, s.count);
        else
            fprintf(stderr, "herald sub: timed out after %lu s: no item arrived\n", timeout);
        ret = CLI_TIMEOUT;
    } else {
        ret = CLI_OK; /* --count reached, the node deleted, a signal, or a timeout after items */
    }
close:
    cli_xmpp_close(s.x);
    return ret;
}
