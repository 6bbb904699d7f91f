/* vcard.c - XEP-0054 vcard-temp: each account publishes one vCard, which
 * any user of the server may read; and the router's hook for iqs of these
 * two old protocols (vcard-temp, XEP-0049) sent to another account.
 *
 * The vCard is kept serialized, exactly as the owner set it, in storage
 * (store_vcard_*), nothing in memory; a get answers with those bytes. Its
 * size is bounded by [im] max_vcard_bytes (not-acceptable beyond, so the
 * client can send a smaller photo). XEP-0153 avatars ride inside the
 * vCard and in presence, which the server passes on untouched: nothing
 * more is needed here for them. */
#include <string.h>

#include "batch.h"
#include "config.h"
#include "errors.h"
#include "herald.h"
#include "im.h"
#include "router.h"
#include "session.h"
#include "store.h"
#include "xml.h"

/* §3.1/§3.3: the vCard of owner, or an empty <vCard/> when there is none
 * (the XEP allows either that or item-not-found; clients handle an empty
 * one best). owner NULL means the server itself, which has none. */
static void vcard_get(struct session *s, struct xnode *iq, struct arena *a, const char *owner)
{
    int rc = 0;
    struct xnode *r = router_reply(a, iq, "result");
    if (r == NULL)
        return;
    if (xml_attr(iq, "to") == NULL)
        xml_del_attr(r, "from");
    struct store_txn *t = owner ? batch_read(s->h->batch, &rc) : NULL;
    if (owner && t == NULL) {
        router_error(s, iq, a, rc, NULL, NULL);
        return;
    }
    const char *xml;
    size_t len;
    rc = owner ? store_vcard_get(t, owner, &xml, &len) : HERALD_ENOTFOUND;
    if (rc == 0)
        rc = xml_add_raw(a, r, xml, len) == 0 ? 0 : HERALD_ENOMEM;
    else if (rc == HERALD_ENOTFOUND)
        rc = xml_add_elem(a, r, NS_VCARD, "vCard") ? 0 : HERALD_ENOMEM;
    if (t)
        batch_read_done(s->h->batch, t);
    if (rc != 0)
        router_error(s, iq, a, rc, NULL, NULL);
    else
        session_send_xml(s, r);
}

/* §3.2: the owner publishes (replaces) its vCard; an empty one deletes it. */
static void vcard_set(struct session *s, struct xnode *iq, struct xnode *v, struct arena *a)
{
    int rc;
    struct buf b;
    bool empty = im_xml_empty(v);
    buf_init(&b, s->h->cfg->max_vcard_bytes);
    if (!empty)
        xml_serialize(&b, v, NS_CLIENT);
    if (!buf_ok(&b)) {
        buf_free(&b);
        router_error(s, iq, a, HERALD_ETOOBIG, NULL, NULL);
        return;
    }
    /* Deleting may still write on a store down to its reserve. */
    struct store_txn *t = empty ? batch_op_begin_freeing(s->h->batch, &rc)
                                : batch_op_begin(s->h->batch, &rc);
    if (t != NULL)
        rc = batch_op_end(s->h->batch, t, store_vcard_put(t, s->bare, b.data, b.len));
    buf_free(&b);
    if (rc != 0)
        router_error(s, iq, a, rc, NULL, NULL);
    else
        im_result_after_commit(s, iq, a);
}

void vcard_handle_iq(struct session *s, struct xnode *iq, struct xnode *v, struct arena *a)
{
    const char *to = xml_attr(iq, "to");
    bool own = to == NULL || strcmp(to, s->bare) == 0;
    if (strcmp(xml_attr(iq, "type"), "get") == 0)
        vcard_get(s, iq, a, own ? s->bare : NULL);
    else if (!own)
        router_error(s, iq, a, HERALD_EFORBIDDEN, NULL, NULL); /* the server's vCard */
    else
        vcard_set(s, iq, v, a);
}

bool im_iq_to_other_account(struct session *s, struct xnode *iq, struct arena *a,
                            const char *bare)
{
    struct xnode *q = xml_first_elem(iq);
    if (q == NULL || xml_next_elem(q) != NULL)
        return false;
    bool get = strcmp(xml_attr(iq, "type"), "get") == 0;
    if (strcmp(q->ns, NS_VCARD) == 0 && strcmp(q->name, "vCard") == 0) {
        /* §3.3: anyone may read a user's vCard; only its owner may set it. */
        if (get)
            vcard_get(s, iq, a, bare);
        else
            router_error(s, iq, a, HERALD_EFORBIDDEN, NULL, NULL);
        return true;
    }
    if (strcmp(q->ns, NS_PRIVATE) == 0) {
        /* XEP-0049 §2.3: forbidden (preferred over service-unavailable). */
        router_error(s, iq, a, HERALD_EFORBIDDEN, NULL, NULL);
        return true;
    }
    return false;
}
