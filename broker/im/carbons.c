/* carbons.c - XEP-0280 Message Carbons (urn:xmpp:carbons:2, version 1.0).
 *
 * State is one flag per session (struct session.carbons, set by <enable/>
 * and cleared by <disable/>, §4-5); nothing is stored. The router calls two
 * hooks: carbons_sent() for a message an account's resource sends (§8) and
 * carbons_received() for a message delivered to an account (§7). Both first
 * walk the account's resources for one with carbons enabled and return when
 * there is none, so routing pays nothing while carbons are unused. A copy is
 *
 *   <message from='bare' to='full' type='T'><received|sent xmlns=carbons>
 *     <forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'
 *     ...original.../></forwarded></received|sent></message>
 *
 * The original with the closing tags after it is serialized once into a
 * refcounted chunk shared by every copy; each copy gets only its own
 * opening tags (the 'to' differs) in front. */
#include <string.h>

#include "herald.h"
#include "im.h"
#include "outq.h"
#include "router.h"
#include "session.h"
#include "xml.h"

#define NS_HINTS "urn:xmpp:hints"
#define NS_MUC_USER "http://jabber.org/protocol/muc#user"

void carbons_handle_iq(struct session *s, struct xnode *iq, struct xnode *child, struct arena *a)
{
    /* §10.1: enabling twice (or disabling twice) is not an error. */
    s->carbons = strcmp(child->name, "enable") == 0;
    struct xnode *r = router_reply(a, iq, "result");
    if (r == NULL)
        return;
    if (xml_attr(iq, "to") == NULL)
        xml_del_attr(r, "from");
    session_send_xml(s, r);
}

/* Is some resource of acct other than `except` carbons-enabled? */
static bool anyone_enabled(const struct account *acct, const struct session *except)
{
    for (const struct session *s = acct ? acct->sessions : NULL; s; s = s->next_res)
        if (s->carbons && s != except)
            return true;
    return false;
}

/* §6, the suggested rules: chat, or normal with a body; never groupchat,
 * headline or error (we do not track which message an error answers), nor
 * what comes from a MUC (its muc#user payload). §9: not <private/>. A
 * message that already carries a carbon wrapper (a client forging one, §11)
 * is not wrapped again. */
static bool eligible(const struct xnode *msg)
{
    const char *type = xml_attr(msg, "type");
    bool chat = type != NULL && strcmp(type, "chat") == 0;
    if (!chat && type != NULL && strcmp(type, "normal") != 0)
        return false;
    bool body = false;
    for (const struct xnode *c = xml_first_elem(msg); c; c = xml_next_elem(c)) {
        if (strcmp(c->ns, NS_CARBONS) == 0 || strcmp(c->ns, NS_MUC_USER) == 0)
            return false;
        if (strcmp(c->ns, NS_HINTS) == 0 && strcmp(c->name, "no-copy") == 0)
            return false;
        if (strcmp(c->ns, NS_CLIENT) == 0 && strcmp(c->name, "body") == 0)
            body = true;
    }
    return chat || body;
}

/* The shared part of every copy: the original inside <forwarded/> (so it
 * declares xmlns='jabber:client' itself), then the closing tags. */
static struct chunk *forwarded_chunk(const struct xnode *msg, const char *wrapper)
{
    struct buf b;
    buf_init(&b, 0);
    xml_serialize(&b, msg, NS_FORWARD);
    buf_printf(&b, "</forwarded></%s></message>", wrapper);
    struct chunk *ch = buf_ok(&b) ? chunk_new(b.data, b.len) : NULL;
    buf_free(&b);
    return ch;
}

/* Queues a copy on s: its own opening tags, then the shared body. */
static void send_copy(struct session *s, const char *type, const char *wrapper,
                      struct chunk *body)
{
    struct buf b;
    buf_init(&b, 0);
    /* §11: a copy comes from the account's own bare JID, nothing else. */
    buf_puts(&b, "<message from='");
    buf_xml_attr(&b, s->bare, strlen(s->bare));
    buf_puts(&b, "' to='");
    buf_xml_attr(&b, s->full, strlen(s->full));
    if (type != NULL) {
        buf_puts(&b, "' type='");
        buf_xml_attr(&b, type, strlen(type));
    }
    buf_printf(&b, "'><%s xmlns='" NS_CARBONS "'><forwarded xmlns='" NS_FORWARD "'>", wrapper);
    struct chunk *head = buf_ok(&b) ? chunk_new(b.data, b.len) : NULL;
    buf_free(&b);
    if (head == NULL)
        return;
    struct chunk *parts[2] = {head, body}; /* one stanza: a head and the shared original */
    session_send_stanza(s, parts, 2);
    chunk_unref(head);
}

/* Copies msg to every carbons-enabled resource of acct that is neither
 * `except` nor in skip[0..n). */
static void copy_to(struct account *acct, const struct xnode *msg, const char *wrapper,
                    const struct session *except, struct session *const *skip, size_t n)
{
    struct chunk *body = NULL;
    const char *type = xml_attr(msg, "type");
    for (struct session *s = acct->sessions; s; s = s->next_res) {
        if (!s->carbons || s == except)
            continue;
        bool delivered = false;
        for (size_t i = 0; i < n && !delivered; i++)
            delivered = skip[i] == s;
        if (delivered)
            continue;
        if (body == NULL && (body = forwarded_chunk(msg, wrapper)) == NULL)
            return;
        send_copy(s, type, wrapper, body);
    }
    if (body != NULL)
        chunk_unref(body);
}

void carbons_sent(struct session *from, const struct xnode *msg)
{
    struct account *acct = session_account(from->h, from->bare);
    if (!anyone_enabled(acct, from) || !eligible(msg))
        return;
    /* §8: every carbons-enabled resource but the sender, whether or not
     * the sender has carbons enabled. */
    copy_to(acct, msg, "sent", from, NULL, 0);
}

/* §9: the receiving server removes <private/> before delivery. */
static bool strip_private(struct xnode *msg)
{
    struct xnode *prev = NULL;
    for (struct xnode *c = msg->children; c; prev = c, c = c->next) {
        if (c->kind != XN_ELEM || strcmp(c->ns, NS_CARBONS) != 0 || strcmp(c->name, "private") != 0)
            continue;
        if (prev != NULL)
            prev->next = c->next;
        else
            msg->children = c->next;
        if (msg->last_child == c)
            msg->last_child = prev;
        return true;
    }
    return false;
}

void carbons_received(struct session *from, struct account *acct, struct xnode *msg,
                      struct session *const *to, size_t n)
{
    if (!anyone_enabled(acct, from))
        return;
    bool priv = strip_private(msg);
    if (priv || !eligible(msg))
        return;
    /* §7: not to the resources the original went to, and (a message
     * between two resources of one account) not back to its sender. */
    copy_to(acct, msg, "received", from, to, n);
}
