/* mam.c - message archives for accounts (XEP-0313 urn:xmpp:mam:2) and
 * stanza ids (XEP-0359).
 *
 * The router calls mam_route_message for every message between local
 * accounts before it is serialized: it strips stanza-ids that claim to be
 * ours, and when the message is archivable (chat/normal with a body, or an
 * XEP-0334 <store/> hint) and the owners' preferences want it, writes the
 * sender's outgoing and the recipient's incoming copy in one operation of
 * the turn's write batch, then adds <stanza-id by=recipient/> to the copy
 * the recipient gets. Archives live in storage (store_mam.c); nothing is
 * kept in memory. Queries page through them with XEP-0059 and send each
 * page's results through the requester's bounded output queue: a page is
 * bounded by `max` and by half of c2s.max_outq_bytes (docs/mam.md).
 *
 * The same query on a pubsub node (XEP-0442) reads the node's items
 * through pubsub_items, so the service's access rules apply; the pubsub
 * service's iq table calls mam_node_query. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch.h"
#include "config.h"
#include "errors.h"
#include "herald.h"
#include "im.h"
#include "iq.h"
#include "jid.h"
#include "log.h"
#include "outq.h"
#include "pubsub.h"
#include "router.h"
#include "session.h"
#include "store.h"
#include "xml.h"

#define NS_FORWARD "urn:xmpp:forward:0"
#define NS_DELAY "urn:xmpp:delay"
#define NS_HINTS "urn:xmpp:hints"
#define NS_RSM "http://jabber.org/protocol/rsm"
#define NS_DATA "jabber:x:data"
#define ID_LEN 16         /* an archive id as text: 16 hex digits, so text order is id order */
#define ID_TEXT_MAX 24    /* room for either kind of id as text */
#define PREFS_MAX_JIDS 100 /* JIDs per preference list; more is policy-violation */

static bool is(const char *s, const char *want)
{
    return s != NULL && strcmp(s, want) == 0;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Account archive ids are 16 hex digits; a node's are its item sequence
 * numbers in decimal (XEP-0442 leaves ids to the service). */
static void id_text(bool node, uint64_t id, char out[ID_TEXT_MAX])
{
    snprintf(out, ID_TEXT_MAX, node ? "%llu" : "%016llx", (unsigned long long)id);
}

/* An id we could have handed out, or 0 (never one of ours) for anything
 * else. */
static uint64_t id_parse(bool node, const char *s)
{
    uint64_t v = 0;
    size_t len = s ? strlen(s) : 0;
    if (len == 0 || len > (node ? 19 : ID_LEN) || (!node && len != ID_LEN))
        return 0;
    for (const char *p = s; *p; p++) {
        int d = node ? (isdigit((unsigned char)*p) ? *p - '0' : -1) : hex_value(*p);
        if (d < 0)
            return 0;
        v = node ? v * 10 + (uint64_t)d : v << 4 | (uint64_t)d;
    }
    return v;
}

/* XEP-0082 DateTime: CCYY-MM-DDThh:mm:ss[.sss]TZD, TZD = Z or (+|-)hh:mm.
 * Returns 0 and microseconds since the epoch, or HERALD_EINVAL. */
static int parse_datetime(const char *s, uint64_t *out)
{
    int Y, M, D, h, m, sec, n = 0;
    if (s == NULL || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &sec, &n) != 6 ||
        n != 19)
        return HERALD_EINVAL;
    const char *p = s + n;
    uint64_t frac = 0, scale = 1000000;
    if (*p == '.') {
        if (!isdigit((unsigned char)p[1]))
            return HERALD_EINVAL;
        for (p++; isdigit((unsigned char)*p); p++)
            if (scale > 1) {
                scale /= 10;
                frac += (uint64_t)(*p - '0') * scale;
            }
    }
    long off = 0;
    if (*p == 'Z') {
        p++;
    } else if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) &&
               isdigit((unsigned char)p[2]) && p[3] == ':' && isdigit((unsigned char)p[4]) &&
               isdigit((unsigned char)p[5])) {
        long oh = (p[1] - '0') * 10 + (p[2] - '0'), om = (p[4] - '0') * 10 + (p[5] - '0');
        if (oh > 23 || om > 59)
            return HERALD_EINVAL;
        off = (*p == '+' ? 1 : -1) * (oh * 3600 + om * 60);
        p += 6;
    } else {
        return HERALD_EINVAL;
    }
    if (*p != '\0' || Y < 1970 || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 ||
        sec > 60)
        return HERALD_EINVAL;
    struct tm tm = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h,
                    .tm_min = m, .tm_sec = sec};
    time_t t = timegm(&tm);
    if (t == (time_t)-1 || tm.tm_mday != D || (long long)t - off < 0)
        return HERALD_EINVAL;
    *out = (uint64_t)((long long)t - off) * 1000000u + frac;
    return 0;
}

static void stamp_text(uint64_t us, char out[40])
{
    time_t t = (time_t)(us / 1000000u);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%06uZ", (unsigned)(us % 1000000u));
}

/* ---- archiving ---- */

/* XEP-0359 §5: a stanza-id whose 'by' is one of the two accounts could
 * only be a spoof (we add ours after this), so it goes. */
static void strip_stanza_ids(struct xnode *msg, const char *a, const char *b)
{
    struct xnode *prev = NULL;
    for (struct xnode *c = msg->children; c;) {
        struct xnode *next = c->next;
        const char *by = c->kind == XN_ELEM && strcmp(c->ns, NS_SID) == 0 &&
                                 strcmp(c->name, "stanza-id") == 0
                             ? xml_attr(c, "by")
                             : NULL;
        if (by != NULL && (strcmp(by, a) == 0 || strcmp(by, b) == 0)) {
            if (prev)
                prev->next = next;
            else
                msg->children = next;
            if (msg->last_child == c)
                msg->last_child = prev;
        } else {
            prev = c;
        }
        c = next;
    }
}

/* XEP-0313 §6 / XEP-0334: chat and normal messages with a body, or with a
 * <store/> hint; never with <no-store/> or <no-permanent-store/>. */
static bool archivable(const struct xnode *msg)
{
    const char *type = xml_attr(msg, "type");
    if (type != NULL && !is(type, "chat") && !is(type, "normal"))
        return false;
    bool body = false, store = false;
    for (const struct xnode *c = xml_first_elem(msg); c; c = xml_next_elem(c)) {
        if (strcmp(c->ns, NS_CLIENT) == 0 && strcmp(c->name, "body") == 0) {
            body = true;
        } else if (strcmp(c->ns, NS_HINTS) == 0) {
            if (strcmp(c->name, "no-store") == 0 || strcmp(c->name, "no-permanent-store") == 0)
                return false;
            store = store || strcmp(c->name, "store") == 0;
        }
    }
    return body || store;
}

static bool in_list(const char *list, size_t len, const char *bare, const char *full)
{
    for (size_t i = 0; i < len;) {
        const char *j = list + i;
        size_t l = strnlen(j, len - i);
        if (strcmp(j, bare) == 0 || (full && strcmp(j, full) == 0))
            return true;
        i += l + 1;
    }
    return false;
}

static int default_pref(const struct config *cfg)
{
    return is(cfg->mam_default, "never") ? MAM_PREF_NEVER
           : is(cfg->mam_default, "roster") ? MAM_PREF_ROSTER
                                            : MAM_PREF_ALWAYS;
}

/* Do owner's preferences (§7) archive a message with other? 1, 0 or an error. */
static int wanted(struct herald *h, struct store_txn *t, const char *owner, const char *other_bare,
                  const char *other_full)
{
    struct store_mam_prefs p;
    int dflt = default_pref(h->cfg);
    int rc = store_mam_prefs_get(t, owner, &p);
    if (rc == 0) {
        if (in_list(p.never, p.never_len, other_bare, other_full))
            return 0;
        if (in_list(p.always, p.always_len, other_bare, other_full))
            return 1;
        dflt = p.dflt;
    } else if (rc != HERALD_ENOTFOUND) {
        return rc;
    }
    if (dflt != MAM_PREF_ROSTER)
        return dflt == MAM_PREF_ALWAYS;
    struct ritem *it = malloc(sizeof(*it));
    if (it == NULL)
        return HERALD_ENOMEM;
    rc = roster_load(t, owner, other_bare, it);
    int yes = rc == 0 && it->in_roster;
    free(it);
    return rc == 0 || rc == HERALD_ENOTFOUND ? yes : rc;
}

/* Archives msg in the archives of the accounts that want it; *rcpt_id gets
 * the recipient's archive id (0 when it has none). */
static int archive(struct herald *h, struct store_txn *t, const char *from_bare,
                   const char *from_full, const char *to_bare, const char *to, bool from_local,
                   bool to_local, const struct buf *xml, uint64_t *rcpt_id)
{
    const struct config *cfg = h->cfg;
    bool self = strcmp(from_bare, to_bare) == 0;
    /* Only local accounts have archives here (a remote party's is its
     * server's business). */
    int out = self || !from_local ? 0 : wanted(h, t, from_bare, to_bare, to);
    int in = to_local ? wanted(h, t, to_bare, from_bare, from_full) : 0;
    if (out < 0 || in < 0)
        return out < 0 ? out : in;
    if (out + in == 0)
        return 0;
    uint64_t now = now_us(), id;
    uint64_t min_id = cfg->mam_max_age ? now - (uint64_t)cfg->mam_max_age * 1000000u : 0;
    int rc = store_mam_next_ids(t, now, (unsigned)(out + in), &id);
    if (rc == 0 && out) {
        struct store_mam_msg m = {id++, true, to, strlen(to), xml->data, xml->len};
        rc = store_mam_put(t, from_bare, &m, cfg->mam_max_messages, min_id);
    }
    if (rc == 0 && in) {
        struct store_mam_msg m = {id, false, from_full, strlen(from_full), xml->data, xml->len};
        rc = store_mam_put(t, to_bare, &m, cfg->mam_max_messages, min_id);
        if (rc == 0)
            *rcpt_id = id;
    }
    return rc;
}

void mam_route_message(struct session *from, struct xnode *msg, struct arena *a,
                       const char *to_bare)
{
    mam_route(from->h, from->bare, from->full, msg, a, to_bare);
}

static bool local_domain(const struct herald *h, const char *bare)
{
    const char *at = strchr(bare, '@');
    return at != NULL && strcmp(at + 1, h->cfg->domain) == 0;
}

void mam_route(struct herald *h, const char *from_bare, const char *from_full, struct xnode *msg,
               struct arena *a, const char *to_bare)
{
    static struct log_limit lim;
    if (!h->cfg->mam_enabled)
        return;
    strip_stanza_ids(msg, to_bare, from_bare);
    if (!archivable(msg))
        return;
    /* Only to accounts that exist (the router bounces the rest). */
    bool to_local = local_domain(h, to_bare) &&
                    (session_account(h, to_bare) != NULL || store_user_exists(h->store, to_bare) == 1);
    bool from_local = local_domain(h, from_bare);
    if (!to_local && (!from_local || local_domain(h, to_bare)))
        return; /* no such account here: the router bounces it */
    const char *to = xml_attr(msg, "to");
    struct buf xml;
    uint64_t rcpt_id = 0;
    int rc = HERALD_ENOMEM;
    /* Serialized for a place inside <forwarded/>, so it declares
     * jabber:client itself. */
    buf_init(&xml, 0);
    xml_serialize(&xml, msg, NS_FORWARD);
    struct store_txn *t = buf_ok(&xml) ? batch_op_begin(h->batch, &rc) : NULL;
    if (t != NULL)
        rc = batch_op_end(h->batch, t,
                          archive(h, t, from_bare, from_full, to_bare, to ? to : to_bare,
                                  from_local, to_local, &xml, &rcpt_id));
    buf_free(&xml);
    if (rc != 0) {
        /* The delivery goes on without an archive entry (and without a
         * stanza-id naming one). */
        log_limited(&lim, LOG_WARN, "mam", "message %s -> %s not archived: %s", from_bare,
                    to_bare, herald_strerror(rc));
        return;
    }
    if (rcpt_id == 0)
        return;
    char id[ID_TEXT_MAX];
    id_text(false, rcpt_id, id);
    struct xnode *sid = xml_add_elem(a, msg, NS_SID, "stanza-id");
    if (sid == NULL || xml_set_attr(a, sid, "id", id) || xml_set_attr(a, sid, "by", to_bare))
        log_limited(&lim, LOG_WARN, "mam", "stanza-id not added: out of memory");
}

/* ---- queries (§4) ---- */

struct results {
    struct session *s;
    const char *queryid;
    struct buf b;
};

static int send_result(void *ud, const struct store_mam_msg *m)
{
    struct results *r = ud;
    char id[ID_TEXT_MAX], stamp[40];
    id_text(false, m->id, id);
    stamp_text(m->id, stamp);
    buf_reset(&r->b);
    buf_puts(&r->b, "<message to='");
    buf_xml_attr(&r->b, r->s->full, strlen(r->s->full));
    buf_puts(&r->b, "' from='");
    buf_xml_attr(&r->b, r->s->bare, strlen(r->s->bare));
    buf_puts(&r->b, "'><result xmlns='" NS_MAM "'");
    if (r->queryid) {
        buf_puts(&r->b, " queryid='");
        buf_xml_attr(&r->b, r->queryid, strlen(r->queryid));
        buf_putc(&r->b, '\'');
    }
    buf_printf(&r->b,
               " id='%s'><forwarded xmlns='" NS_FORWARD "'><delay xmlns='" NS_DELAY
               "' stamp='%s'/>",
               id, stamp);
    buf_append(&r->b, m->xml, m->xml_len);
    buf_puts(&r->b, "</forwarded></result></message>");
    if (!buf_ok(&r->b))
        return HERALD_ENOMEM;
    struct chunk *ch = chunk_new(r->b.data, r->b.len);
    if (ch == NULL)
        return HERALD_ENOMEM;
    int rc = session_send_chunk(r->s, ch); /* a stanza: counted by stream management */
    chunk_unref(ch);
    return rc;
}

static const char *field_value(struct arena *a, const struct xnode *field)
{
    const struct xnode *v = xml_child(field, NS_DATA, "value");
    return v ? xml_text(a, v) : NULL;
}

/* Reads the data form (§4.1.1) into q (time range, with) and the id
 * bounds *id_lo, *id_hi (inclusive). */
static int parse_form(struct arena *a, const struct xnode *x, bool node, struct store_mam_query *q,
                      uint64_t *id_lo, uint64_t *id_hi, char *with, size_t with_cap)
{
    for (const struct xnode *f = xml_first_elem(x); f; f = xml_next_elem(f)) {
        if (strcmp(f->ns, NS_DATA) != 0 || strcmp(f->name, "field") != 0)
            continue;
        const char *var = xml_attr(f, "var"), *val = field_value(a, f);
        uint64_t v;
        if (var == NULL)
            return HERALD_EINVAL;
        if (is(var, "FORM_TYPE")) {
            if (!is(val, NS_MAM))
                return HERALD_EINVAL;
        } else if (val == NULL || val[0] == '\0') {
            continue; /* an empty field filters nothing */
        } else if (is(var, "with")) {
            struct jid j;
            if (jid_parse_str(&j, val) != 0 || jid_format(&j, false, with, with_cap) < 0)
                return HERALD_EINVAL;
            q->with = with;
            q->with_full = j.resource[0] != '\0';
        } else if (is(var, "start") || is(var, "end")) {
            if (parse_datetime(val, &v) != 0)
                return HERALD_EINVAL;
            if (is(var, "start") && v > q->lo)
                q->lo = v;
            else if (is(var, "end") && v < q->hi)
                q->hi = v;
        } else if (is(var, "after-id") || is(var, "before-id")) {
            /* mam:2#extended: exclusive bounds by archive id. */
            if ((v = id_parse(node, val)) == 0)
                return HERALD_ENOTFOUND;
            if (is(var, "after-id") && v + 1 > *id_lo)
                *id_lo = v + 1;
            else if (is(var, "before-id") && v - 1 < *id_hi)
                *id_hi = v - 1;
        } else {
            return HERALD_EINVAL; /* §4.1.1: a field we did not offer */
        }
    }
    return 0;
}

/* Reads the RSM <set/> (XEP-0059 §2) into q. */
static int parse_rsm(struct arena *a, const struct xnode *set, bool node,
                     struct store_mam_query *q, unsigned cap)
{
    q->max = cap;
    if (set == NULL)
        return 0;
    const struct xnode *e;
    if ((e = xml_child(set, NS_RSM, "max")) != NULL) {
        const char *t = xml_text(a, e);
        char *end;
        if (t == NULL || !isdigit((unsigned char)t[0]))
            return HERALD_EINVAL;
        unsigned long long m = strtoull(t, &end, 10);
        if (*end != '\0')
            return HERALD_EINVAL;
        q->max = m < cap ? (unsigned)m : cap;
    }
    if ((e = xml_child(set, NS_RSM, "after")) != NULL &&
        (q->after = id_parse(node, xml_text(a, e))) == 0)
        return HERALD_ENOTFOUND;
    if ((e = xml_child(set, NS_RSM, "before")) != NULL) {
        const char *t = xml_text(a, e);
        /* An empty <before/> asks for the last page. */
        if (t == NULL || t[0] == '\0')
            q->before = UINT64_MAX;
        else if ((q->before = id_parse(node, t)) == 0)
            return HERALD_ENOTFOUND;
    }
    if (q->after && q->before)
        return HERALD_EINVAL;
    return 0;
}

/* Queries are on one's own archive only: the iq is to the account's bare
 * JID or has no 'to' (§4). */
static bool own_archive(const struct session *from, const struct xnode *iq)
{
    const char *to = xml_attr(iq, "to");
    return to == NULL || strcmp(to, from->bare) == 0;
}

static int add_field(struct arena *a, struct xnode *x, const char *var, const char *type,
                     const char *value)
{
    struct xnode *f = xml_add_elem(a, x, NS_DATA, "field");
    if (f == NULL || xml_set_attr(a, f, "var", var) || xml_set_attr(a, f, "type", type))
        return -1;
    struct xnode *v = value ? xml_add_elem(a, f, NS_DATA, "value") : NULL;
    return value && (v == NULL || xml_add_text(a, v, value, strlen(value))) ? -1 : 0;
}

/* §4.1.1: the fields a query may use. NULL on ENOMEM. */
static struct xnode *query_form(struct arena *a)
{
    struct xnode *q = xml_elem_new(a, NS_MAM, "query");
    struct xnode *x = q ? xml_add_elem(a, q, NS_DATA, "x") : NULL;
    if (x == NULL || xml_set_attr(a, x, "type", "form") ||
        add_field(a, x, "FORM_TYPE", "hidden", NS_MAM) ||
        add_field(a, x, "with", "jid-single", NULL) ||
        add_field(a, x, "start", "text-single", NULL) ||
        add_field(a, x, "end", "text-single", NULL) ||
        add_field(a, x, "after-id", "text-single", NULL) ||
        add_field(a, x, "before-id", "text-single", NULL))
        return NULL;
    return q;
}

static int add_text_elem(struct arena *a, struct xnode *parent, const char *ns, const char *name,
                         const char *text)
{
    struct xnode *e = xml_add_elem(a, parent, ns, name);
    return e == NULL || xml_add_text(a, e, text, strlen(text)) ? -1 : 0;
}

/* <fin complete?><set><first index/><last/><count/></set></fin>, or NULL
 * on ENOMEM. */
static struct xnode *fin_elem(struct arena *a, bool node, const struct store_mam_page *p)
{
    char num[16], index[16], id[ID_TEXT_MAX];
    struct xnode *f = xml_elem_new(a, NS_MAM, "fin");
    struct xnode *set = f ? xml_add_elem(a, f, NS_RSM, "set") : NULL;
    if (set == NULL || (p->complete && xml_set_attr(a, f, "complete", "true")))
        return NULL;
    if (p->n > 0) {
        struct xnode *first = xml_add_elem(a, set, NS_RSM, "first");
        id_text(node, p->first, id);
        snprintf(index, sizeof(index), "%u", p->index);
        if (first == NULL || xml_set_attr(a, first, "index", index) ||
            xml_add_text(a, first, id, strlen(id)))
            return NULL;
        id_text(node, p->last, id);
        if (add_text_elem(a, set, NS_RSM, "last", id))
            return NULL;
    }
    snprintf(num, sizeof(num), "%u", p->count);
    return add_text_elem(a, set, NS_RSM, "count", num) ? NULL : f;
}

void mam_query_iq(struct session *from, struct xnode *iq, struct xnode *child, struct arena *a)
{
    struct herald *h = from->h;
    const struct config *cfg = h->cfg;
    char *with = NULL;
    struct store_txn *t = NULL;
    struct results r = {from, xml_attr(child, "queryid"), {0}};
    buf_init(&r.b, 0);
    int rc = 0;
    if (!cfg->mam_enabled || !own_archive(from, iq)) {
        rc = HERALD_EUNAVAIL;
        goto done;
    }
    struct xnode *answer;
    if (is(xml_attr(iq, "type"), "get")) {
        if ((answer = query_form(a)) == NULL)
            rc = HERALD_ENOMEM;
        else
            iq_result(from, iq, a, answer);
        goto done;
    }
    if (xml_attr(child, "node") != NULL) {
        rc = HERALD_EUNAVAIL; /* node archives are the pubsub service's */
        goto done;
    }
    struct store_mam_query q = {0, UINT64_MAX, NULL, false, 0, 0, 0, cfg->max_outq_bytes / 2};
    /* Retention by age: what is older does not exist any more, whether or
     * not a later insert has deleted it yet. */
    uint64_t now = now_us();
    if (cfg->mam_max_age && now > (uint64_t)cfg->mam_max_age * 1000000u)
        q.lo = now - (uint64_t)cfg->mam_max_age * 1000000u;
    const struct xnode *x = xml_child(child, NS_DATA, "x");
    if (x && (with = arena_alloc(a, JID_MAX + 1)) == NULL) {
        rc = HERALD_ENOMEM;
        goto done;
    }
    uint64_t id_lo = 0, id_hi = UINT64_MAX;
    if ((x && (rc = parse_form(a, x, false, &q, &id_lo, &id_hi, with, JID_MAX + 1)) != 0) ||
        (rc = parse_rsm(a, xml_child(child, NS_RSM, "set"), false, &q, cfg->mam_max_page)) != 0)
        goto done;
    /* An account's ids are times: one range. */
    q.lo = id_lo > q.lo ? id_lo : q.lo;
    q.hi = id_hi < q.hi ? id_hi : q.hi;
    struct store_mam_page page;
    if ((t = batch_read(h->batch, &rc)) == NULL)
        goto done;
    if ((rc = store_mam_page(t, from->bare, &q, &page, send_result, &r)) != 0)
        goto done;
    if ((answer = fin_elem(a, false, &page)) == NULL) {
        rc = HERALD_ENOMEM;
        goto done;
    }
    iq_result(from, iq, a, answer);
done:
    batch_read_done(h->batch, t);
    buf_free(&r.b);
    if (rc != 0)
        router_error(from, iq, a, rc, NULL, NULL);
}

/* ---- pubsub node archives (XEP-0313 with `node`, as XEP-0442 describes) ----
 * A node's archive is its items: archive ids are the items' publish
 * sequence numbers, the archive time their publish time. Two walks over
 * the node's items through pubsub_items (which applies the access model
 * on every read): the first counts the matches and picks the page's
 * sequence numbers, the second sends the page. */

#define NS_PUBSUB_EVENT "http://jabber.org/protocol/pubsub#event"

struct page_pick {
    const struct store_mam_query *q;
    uint64_t id_lo, id_hi;     /* sequence bounds from after-id/before-id */
    bool anchor_seen;          /* the RSM after/before item exists */
    struct store_mam_page *out;
    uint64_t *seqs;            /* forward: the page; backward: a ring of the last max */
    size_t *bytes;
    unsigned pushed;           /* backward: matches before the anchor */
    size_t total;              /* forward: bytes on the page so far */
    bool full;                 /* forward: the page is closed */
};

static bool item_matches(const struct store_mam_query *q, uint64_t id_lo, uint64_t id_hi,
                         const struct ps_item *it)
{
    uint64_t t = it->published * 1000u;
    if (it->seq < id_lo || it->seq > id_hi || t < q->lo || t > q->hi)
        return false;
    if (q->with == NULL)
        return true;
    /* `with` filters by publisher, as for an account's correspondents. */
    size_t wl = strlen(q->with);
    if (q->with_full)
        return it->publisher_len == wl && memcmp(it->publisher, q->with, wl) == 0;
    return it->publisher_len >= wl && memcmp(it->publisher, q->with, wl) == 0 &&
           (it->publisher_len == wl || it->publisher[wl] == '/');
}

static int pick(void *ud, const struct ps_item *it)
{
    struct page_pick *p = ud;
    const struct store_mam_query *q = p->q;
    if (it->seq == q->after || it->seq == q->before)
        p->anchor_seen = true;
    /* Past the range (and past both anchors, which must be seen): stop. */
    if (it->seq > p->id_hi && it->seq > q->after && (q->before == UINT64_MAX || it->seq > q->before))
        return 1;
    if (!item_matches(q, p->id_lo, p->id_hi, it))
        return 0;
    struct store_mam_page *out = p->out;
    out->count++;
    size_t bytes = it->payload_len + it->id_len + it->publisher_len;
    if (q->before == 0) {
        if (it->seq <= q->after) {
            out->index++;
        } else if (p->full || out->n == q->max ||
                   (out->n > 0 && p->total + bytes > q->max_bytes)) {
            p->full = true;
            out->complete = false;
        } else {
            p->seqs[out->n++] = it->seq;
            p->total += bytes;
        }
    } else if (it->seq < q->before && q->max > 0) {
        p->seqs[p->pushed % q->max] = it->seq;
        p->bytes[p->pushed % q->max] = bytes;
        p->pushed++;
    } else if (it->seq < q->before) {
        p->pushed++;
    }
    return 0;
}

/* Backward: the page is the newest of the ring that fit the byte budget. */
static void pick_backward(struct page_pick *p)
{
    const struct store_mam_query *q = p->q;
    struct store_mam_page *out = p->out;
    unsigned have = p->pushed < q->max ? p->pushed : q->max;
    size_t total = 0;
    unsigned keep = 0;
    while (keep < have) {
        size_t b = p->bytes[(p->pushed - 1 - keep) % q->max];
        if (keep > 0 && total + b > q->max_bytes)
            break;
        total += b;
        keep++;
    }
    out->n = keep;
    out->index = p->pushed - keep;
    out->complete = out->index == 0;
    if (keep > 0) {
        out->first = p->seqs[(p->pushed - keep) % q->max];
        out->last = p->seqs[(p->pushed - 1) % q->max];
    }
}

struct node_send {
    struct herald *h;
    const struct store_mam_query *q;
    uint64_t id_lo, id_hi, first, last;
    const char *service, *who, *node, *queryid;
    struct buf b;
};

static void put_attr(struct buf *b, const char *name, const char *v, size_t len)
{
    buf_printf(b, " %s='", name);
    buf_xml_attr(b, v, len);
    buf_putc(b, '\'');
}

static int send_item(void *ud, const struct ps_item *it)
{
    struct node_send *s = ud;
    if (it->seq > s->last)
        return 1;
    if (it->seq < s->first || !item_matches(s->q, s->id_lo, s->id_hi, it))
        return 0;
    char id[ID_TEXT_MAX], stamp[40];
    id_text(true, it->seq, id);
    stamp_text(it->published * 1000u, stamp);
    struct buf *b = &s->b;
    buf_reset(b);
    buf_puts(b, "<message");
    put_attr(b, "to", s->who, strlen(s->who));
    put_attr(b, "from", s->service, strlen(s->service));
    buf_puts(b, "><result xmlns='" NS_MAM "'");
    if (s->queryid)
        put_attr(b, "queryid", s->queryid, strlen(s->queryid));
    buf_printf(b, " id='%s'><forwarded xmlns='" NS_FORWARD "'><delay xmlns='" NS_DELAY
                  "' stamp='%s'/><message xmlns='" NS_CLIENT "'", id, stamp);
    put_attr(b, "from", s->service, strlen(s->service));
    buf_puts(b, "><event xmlns='" NS_PUBSUB_EVENT "'><items");
    put_attr(b, "node", s->node, strlen(s->node));
    buf_puts(b, "><item");
    put_attr(b, "id", it->id, it->id_len);
    if (it->publisher_len)
        put_attr(b, "publisher", it->publisher, it->publisher_len);
    buf_putc(b, '>');
    buf_append(b, it->payload, it->payload_len);
    buf_puts(b, "</item></items></event></message></forwarded></result></message>");
    struct chunk *ch = buf_ok(b) ? chunk_new(b->data, b->len) : NULL;
    if (ch == NULL)
        return HERALD_ENOMEM;
    router_send(s->h, s->who, &ch, 1, ROUTE_FULL);
    chunk_unref(ch);
    return 0;
}

int mam_node_query(struct herald *h, struct pubsub *ps, const char *service, const char *who,
                   const struct xnode *iq, const struct xnode *query, struct arena *a,
                   struct xnode **answer)
{
    const struct config *cfg = h->cfg;
    const char *node = xml_attr(query, "node");
    struct node_send send = {h, NULL, 0, UINT64_MAX, 0, 0, service, who, node,
                             xml_attr(query, "queryid"), {0}};
    buf_init(&send.b, 0);
    /* The access model first, as for <items/> (XEP-0060 §6.5.9). */
    int rc = pubsub_node_readable(ps, who, node);
    if (rc != 0)
        goto done;
    if (is(xml_attr(iq, "type"), "get")) {
        rc = (*answer = query_form(a)) ? 0 : HERALD_ENOMEM;
        goto done;
    }
    struct store_mam_query q = {0, UINT64_MAX, NULL, false, 0, 0, 0, cfg->max_outq_bytes / 2};
    struct store_mam_page page = {0, 0, 0, 0, 0, true};
    struct page_pick p = {&q, 0, UINT64_MAX, false, &page, NULL, NULL, 0, 0, false};
    const struct xnode *x = xml_child(query, NS_DATA, "x");
    char *with = x ? arena_alloc(a, JID_MAX + 1) : NULL;
    if (x && with == NULL) {
        rc = HERALD_ENOMEM;
        goto done;
    }
    if ((x && (rc = parse_form(a, x, true, &q, &p.id_lo, &p.id_hi, with, JID_MAX + 1)) != 0) ||
        (rc = parse_rsm(a, xml_child(query, NS_RSM, "set"), true, &q, cfg->mam_max_page)) != 0)
        goto done;
    p.seqs = arena_alloc(a, (q.max ? q.max : 1) * sizeof(*p.seqs));
    p.bytes = arena_alloc(a, (q.max ? q.max : 1) * sizeof(*p.bytes));
    if (p.seqs == NULL || p.bytes == NULL) {
        rc = HERALD_ENOMEM;
        goto done;
    }
    struct ps_items_query walk;
    memset(&walk, 0, sizeof(walk));
    walk.oldest_first = true;
    walk.after_seq = p.id_lo ? p.id_lo - 1 : 0;
    /* Start early enough to see the anchor. */
    if (q.after && q.after <= walk.after_seq)
        walk.after_seq = q.after - 1;
    if (q.before && q.before != UINT64_MAX && q.before <= walk.after_seq)
        walk.after_seq = q.before - 1;
    if ((rc = pubsub_items(ps, who, node, &walk, pick, &p)) < 0)
        goto done;
    if ((q.after || (q.before && q.before != UINT64_MAX)) && !p.anchor_seen) {
        rc = HERALD_ENOTFOUND; /* XEP-0059 §2.5: the cursor item is gone */
        goto done;
    }
    if (q.before) {
        pick_backward(&p);
    } else if (page.n > 0) {
        page.first = p.seqs[0];
        page.last = p.seqs[page.n - 1];
    }
    if (page.n > 0) {
        send.q = &q;
        send.id_lo = p.id_lo;
        send.id_hi = p.id_hi;
        send.first = page.first;
        send.last = page.last;
        walk.after_seq = page.first - 1;
        if ((rc = pubsub_items(ps, who, node, &walk, send_item, &send)) < 0)
            goto done;
    }
    rc = (*answer = fin_elem(a, true, &page)) ? 0 : HERALD_ENOMEM;
done:
    buf_free(&send.b);
    return rc < 0 ? rc : 0;
}

/* ---- preferences (§6.1) ---- */

static const char *const pref_names[] = {"always", "never", "roster"};

static int prefs_list(struct arena *a, struct xnode *prefs, const char *name, const char *list,
                      size_t len)
{
    struct xnode *l = xml_add_elem(a, prefs, NS_MAM, name);
    if (l == NULL)
        return -1;
    for (size_t i = 0; i < len; i += strlen(list + i) + 1)
        if (add_text_elem(a, l, NS_MAM, "jid", list + i))
            return -1;
    return 0;
}

static struct xnode *prefs_elem(struct arena *a, const struct store_mam_prefs *p)
{
    struct xnode *e = xml_elem_new(a, NS_MAM, "prefs");
    if (e == NULL || xml_set_attr(a, e, "default", pref_names[p->dflt % 3]) ||
        prefs_list(a, e, "always", p->always, p->always_len) ||
        prefs_list(a, e, "never", p->never, p->never_len))
        return NULL;
    return e;
}

/* Collects the prepared JIDs of an <always/> or <never/> list. */
static int read_list(struct arena *a, const struct xnode *prefs, const char *name, struct buf *out)
{
    const struct xnode *l = xml_child(prefs, NS_MAM, name);
    unsigned n = 0;
    for (const struct xnode *j = l ? xml_first_elem(l) : NULL; j; j = xml_next_elem(j)) {
        if (strcmp(j->ns, NS_MAM) != 0 || strcmp(j->name, "jid") != 0)
            continue;
        struct jid jid;
        char s[JID_MAX + 1];
        const char *text = xml_text(a, j);
        if (text == NULL || jid_parse_str(&jid, text) != 0 || jid_format(&jid, false, s, sizeof(s)) < 0)
            return HERALD_EINVAL;
        if (++n > PREFS_MAX_JIDS)
            return HERALD_ELIMIT;
        buf_append(out, s, strlen(s) + 1);
    }
    return buf_ok(out) ? 0 : HERALD_ENOMEM;
}

struct prefs_reply {
    struct herald *h;
    struct chunk *ok;
    char to[JID_MAX + 1];
    char id[256];
};

static void prefs_reply_run(void *ctx, int failed)
{
    struct prefs_reply *d = ctx;
    if (!failed)
        router_send(d->h, d->to, &d->ok, 1, ROUTE_FULL);
    else
        router_batch_failed(d->h, d->to, d->id, NULL, failed);
    chunk_unref(d->ok);
    free(d);
}

/* The answer to a set leaves after the commit, like roster results. */
static int reply_after_commit(struct session *from, struct xnode *iq, struct arena *a,
                              struct xnode *payload)
{
    struct xnode *r = router_reply(a, iq, "result");
    struct prefs_reply *d = r ? calloc(1, sizeof(*d)) : NULL;
    if (d == NULL)
        return HERALD_ENOMEM;
    if (xml_attr(iq, "to") == NULL)
        xml_del_attr(r, "from");
    xml_append(r, payload);
    d->h = from->h;
    snprintf(d->to, sizeof(d->to), "%s", from->full);
    snprintf(d->id, sizeof(d->id), "%s", xml_attr(iq, "id"));
    if ((d->ok = router_chunk(r)) == NULL) {
        free(d);
        return HERALD_ENOMEM;
    }
    return batch_after(from->h->batch, prefs_reply_run, d) == 0 ? 0 : HERALD_ENOMEM;
}

void mam_prefs_iq(struct session *from, struct xnode *iq, struct xnode *child, struct arena *a)
{
    struct herald *h = from->h;
    struct store_mam_prefs p = {(uint8_t)default_pref(h->cfg), "", 0, "", 0};
    struct store_txn *t = NULL;
    struct buf always, never;
    buf_init(&always, 0);
    buf_init(&never, 0);
    struct xnode *e;
    int rc = 0;
    if (!h->cfg->mam_enabled || !own_archive(from, iq)) {
        rc = HERALD_EUNAVAIL;
        goto done;
    }
    if (is(xml_attr(iq, "type"), "get")) {
        if ((t = batch_read(h->batch, &rc)) == NULL)
            goto done;
        rc = store_mam_prefs_get(t, from->bare, &p);
        if (rc == 0 || rc == HERALD_ENOTFOUND) {
            rc = (e = prefs_elem(a, &p)) ? 0 : HERALD_ENOMEM;
            if (rc == 0)
                iq_result(from, iq, a, e);
        }
        goto done;
    }
    const char *d = xml_attr(child, "default");
    p.dflt = is(d, "always") ? MAM_PREF_ALWAYS : is(d, "never") ? MAM_PREF_NEVER
                                                : is(d, "roster") ? MAM_PREF_ROSTER : 0xff;
    if (p.dflt == 0xff) {
        rc = HERALD_EINVAL;
        goto done;
    }
    if ((rc = read_list(a, child, "always", &always)) != 0 ||
        (rc = read_list(a, child, "never", &never)) != 0)
        goto done;
    p.always = always.data ? always.data : "";
    p.always_len = always.len;
    p.never = never.data ? never.data : "";
    p.never_len = never.len;
    if ((e = prefs_elem(a, &p)) == NULL) {
        rc = HERALD_ENOMEM;
        goto done;
    }
    struct store_txn *op = batch_op_begin(h->batch, &rc);
    if (op == NULL || (rc = batch_op_end(h->batch, op, store_mam_prefs_put(op, from->bare, &p))) != 0)
        goto done;
    rc = reply_after_commit(from, iq, a, e);
done:
    batch_read_done(h->batch, t);
    buf_free(&always);
    buf_free(&never);
    if (rc != 0 && rc != HERALD_ENOTFOUND)
        router_error(from, iq, a, rc, NULL, NULL);
}
