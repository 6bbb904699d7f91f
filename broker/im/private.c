/* private.c - XEP-0049 private XML storage (jabber:iq:private), and the
 * iq result that leaves only after the write batch's commit, which this
 * file and vcard.c share.
 *
 * An account stores any element in its own namespace under
 * <query xmlns='jabber:iq:private'/> and gets it back later; nobody else
 * can read or write it. Each element is kept, serialized with its own
 * xmlns, under (account, namespace, local name) in storage (store.h,
 * store_private_*); nothing is held in memory. A set replaces the stored
 * element of the same name and namespace (an element with neither
 * children nor attributes deletes it: a get then answers with that same
 * empty element anyway). Bounds ([im] in docs/configuration.md): bytes per
 * element (max_private_bytes, not-acceptable: the request itself is
 * unacceptable and a smaller one would do) and per account
 * (max_private_elements, max_private_account_bytes: policy-violation, as
 * for every per-account quota in errors.c, since retrying cannot help
 * until the account frees some). */
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "config.h"
#include "errors.h"
#include "herald.h"
#include "im.h"
#include "outq.h"
#include "router.h"
#include "session.h"
#include "store.h"
#include "xml.h"

/* ---- results after the commit ---- */

struct after_commit {
    struct herald *h;
    struct chunk *ok;
    char *to, *id, *from; /* in the same allocation; from may be NULL */
};

static void after_commit_run(void *ctx, int failed)
{
    struct after_commit *d = ctx;
    /* HERALD_EUNAVAIL: the batch is freed at shutdown (batch_free), when
     * nothing was acknowledged and only the context is to be released. */
    if (failed == 0)
        router_send(d->h, d->to, &d->ok, 1, ROUTE_FULL);
    else if (failed != HERALD_EUNAVAIL)
        router_batch_failed(d->h, d->to, d->id, d->from, failed);
    chunk_unref(d->ok);
    free(d);
}

void im_result_after_commit(struct session *s, const struct xnode *iq, struct arena *a)
{
    const char *id = xml_attr(iq, "id");
    const char *from = xml_attr(iq, "to"); /* the answer comes from what was asked */
    struct xnode *r = router_reply(a, iq, "result");
    if (r == NULL || id == NULL)
        return;
    if (from == NULL)
        xml_del_attr(r, "from");
    size_t tl = strlen(s->full) + 1, il = strlen(id) + 1, fl = from ? strlen(from) + 1 : 0;
    struct after_commit *d = malloc(sizeof(*d) + tl + il + fl);
    if (d == NULL)
        return;
    d->h = s->h;
    d->to = (char *)(d + 1);
    d->id = d->to + tl;
    d->from = from ? d->id + il : NULL;
    memcpy(d->to, s->full, tl);
    memcpy(d->id, id, il);
    if (from)
        memcpy(d->from, from, fl);
    if ((d->ok = router_chunk(r)) == NULL) {
        free(d);
        return;
    }
    if (batch_after(s->h->batch, after_commit_run, d) != 0) {
        chunk_unref(d->ok);
        free(d);
    }
}

/* ---- jabber:iq:private ---- */

/* §2.3: the stored fragment's root must be in a namespace of its own; one
 * in the stream's or this protocol's namespace (or none) is refused with
 * not-acceptable. The XEP also allows refusing every jabber:* namespace;
 * we do not, since clients store preferences under such names. */
static bool reserved_ns(const char *ns)
{
    return ns[0] == '\0' || strcmp(ns, NS_CLIENT) == 0 || strcmp(ns, "jabber:server") == 0 ||
           strcmp(ns, NS_PRIVATE) == 0;
}

static void private_get(struct session *s, struct xnode *iq, struct xnode *want, struct arena *a)
{
    int rc;
    struct xnode *r = router_reply(a, iq, "result");
    struct xnode *q = r ? xml_add_elem(a, r, NS_PRIVATE, "query") : NULL;
    if (q == NULL)
        return;
    if (xml_attr(iq, "to") == NULL)
        xml_del_attr(r, "from");
    struct store_txn *t = batch_read(s->h->batch, &rc);
    if (t == NULL) {
        router_error(s, iq, a, rc, NULL, NULL);
        return;
    }
    const char *xml;
    size_t len;
    rc = store_private_get(t, s->bare, want->ns, want->name, &xml, &len);
    if (rc == 0)
        rc = xml_add_raw(a, q, xml, len) == 0 ? 0 : HERALD_ENOMEM;
    else if (rc == HERALD_ENOTFOUND) /* §2.3: nothing stored: the empty element */
        rc = xml_add_elem(a, q, want->ns, want->name) ? 0 : HERALD_ENOMEM;
    batch_read_done(s->h->batch, t);
    if (rc != 0)
        router_error(s, iq, a, rc, NULL, NULL);
    else
        session_send_xml(s, r);
}

bool im_xml_empty(const struct xnode *el)
{
    return el->children == NULL && el->attrs == NULL;
}

/* Stores one element of a set (or deletes it when empty). */
static int store_one(struct session *s, struct store_txn *t, const struct xnode *el)
{
    const struct config *cfg = s->h->cfg;
    if (im_xml_empty(el))
        return store_private_put(t, s->bare, el->ns, el->name, NULL, 0, 0, 0);
    struct buf b;
    buf_init(&b, cfg->max_private_bytes);
    xml_serialize(&b, el, NS_PRIVATE);
    int rc = buf_ok(&b) ? store_private_put(t, s->bare, el->ns, el->name, b.data, b.len,
                                            cfg->max_private_elements,
                                            cfg->max_private_account_bytes)
                        : HERALD_ETOOBIG;
    buf_free(&b);
    return rc;
}

static void private_set(struct session *s, struct xnode *iq, struct xnode *q, struct arena *a)
{
    int rc;
    bool deletes_only = true;
    for (struct xnode *el = xml_first_elem(q); el; el = xml_next_elem(el))
        deletes_only = deletes_only && im_xml_empty(el);
    /* One operation for every element of the set: all are stored or none.
     * Deletions alone may still write on a store down to its reserve. */
    struct store_txn *t = deletes_only ? batch_op_begin_freeing(s->h->batch, &rc)
                                       : batch_op_begin(s->h->batch, &rc);
    if (t == NULL) {
        router_error(s, iq, a, rc, NULL, NULL);
        return;
    }
    for (struct xnode *el = xml_first_elem(q); el && rc == 0; el = xml_next_elem(el))
        rc = store_one(s, t, el);
    if ((rc = batch_op_end(s->h->batch, t, rc)) != 0)
        router_error(s, iq, a, rc, NULL, NULL);
    else
        im_result_after_commit(s, iq, a);
}

void private_handle_iq(struct session *s, struct xnode *iq, struct xnode *q, struct arena *a)
{
    const char *to = xml_attr(iq, "to");
    /* §2.3: another entity's private XML (here: the server's, since the
     * router refuses other accounts' itself) is forbidden. */
    if (to != NULL && strcmp(to, s->bare) != 0) {
        router_error(s, iq, a, HERALD_EFORBIDDEN, NULL, NULL);
        return;
    }
    struct xnode *first = xml_first_elem(q);
    bool get = strcmp(xml_attr(iq, "type"), "get") == 0;
    /* §2.3: at least one child element, else not-acceptable; a get asks
     * for one namespace only (one element: bad-request otherwise). */
    if (first == NULL) {
        router_error(s, iq, a, HERALD_ENOTACCEPTABLE, NULL, NULL);
        return;
    }
    if (get && xml_next_elem(first) != NULL) {
        router_error(s, iq, a, HERALD_EINVAL, NULL, NULL);
        return;
    }
    for (struct xnode *el = first; el; el = xml_next_elem(el)) {
        if (reserved_ns(el->ns)) {
            router_error(s, iq, a, HERALD_ENOTACCEPTABLE, NULL, NULL);
            return;
        }
    }
    if (get)
        private_get(s, iq, first, a);
    else
        private_set(s, iq, q, a);
}
