/* test_pubsub.c - the protocol-free pubsub service (broker/pubsub/pubsub.c) over a
 * real LMDB store in a temporary directory.
 *
 * Each test drives the service the way the server does: store_open ->
 * batch_new -> pubsub_open, then calls (one "loop turn"), then batch_commit
 * to commit the turn and run the deferred output. A recording sink copies
 * every event (kind, node, item id, seq, payload, to, jid, subid, state,
 * and, when asked, the recipients pubsub_event_recipients gives from inside
 * the sink) so a test can check what was announced, in which order, and
 * that nothing was announced before the commit. No sockets, no XML.
 *
 * Contained failures: HERALD_TEST_FAULTS ("DB:N:full|io", read by
 * store_open; the N-th write on that database after the open fails) makes
 * one operation of a turn fail; the others of the same turn must commit,
 * and the failed one must leave no trace in storage, in the in-memory index
 * or in the events. The write counters start at every store_open, so the
 * fixture sets the variable right before reopening the store and clears it
 * right after. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "batch.h"
#include "errors.h"
#include "log.h"
#include "pubsub.h"
#include "store.h"
#include "test.h"

/* ---- the recording sink -------------------------------------------------- */

#define MAX_EVENTS 128
#define STR_MAX 160

struct rec_event {
    int kind;
    char node[PS_NODE_NAME_MAX + 1];
    uint64_t node_id;
    bool has_item_id;
    char item_id[PS_ITEM_ID_MAX + 1];
    uint64_t seq;
    bool has_payload;
    char payload[1024];
    size_t payload_len;
    char publisher[STR_MAX];
    char to[STR_MAX];
    char jid[STR_MAX];
    char subid[PS_SUBID_MAX + 1];
    bool has_redirect;
    char redirect[STR_MAX];
    uint8_t state;
    bool notify;
    uint32_t cfg_max_items;
    char recipients[1024]; /* "jid*nsubids[@via]" joined with ';' (when asked) */
};

struct recorder {
    struct rec_event ev[MAX_EVENTS];
    int n;
    int overflow;
    bool with_recipients;
};

static struct recorder REC;

static void rec_reset(void)
{
    memset(&REC, 0, sizeof(REC));
}

static void copy_str(char *dst, size_t cap, const char *s)
{
    snprintf(dst, cap, "%s", s ? s : "");
}

struct rcpt_buf {
    char *text;
    size_t cap, len;
};

static void rcpt_cb(void *ud, const char *jid, const char *const *subids, size_t nsubids,
                    const char *via)
{
    struct rcpt_buf *r = ud;
    bool subids_ok = true;
    for (size_t i = 0; i < nsubids; i++)
        subids_ok = subids_ok && subids[i] != NULL && subids[i][0] != '\0';
    if (r->len < r->cap)
        r->len += (size_t)snprintf(r->text + r->len, r->cap - r->len, "%s%s*%zu%s%s%s",
                                   r->len ? ";" : "", jid, nsubids, via ? "@" : "", via ? via : "",
                                   subids_ok ? "" : "!badsubid");
}

static void record_sink(void *ud, struct pubsub *ps, const struct ps_event *ev)
{
    struct recorder *r = ud;
    if (r->n >= MAX_EVENTS) {
        r->overflow++;
        return;
    }
    struct rec_event *e = &r->ev[r->n++];
    memset(e, 0, sizeof(*e));
    e->kind = (int)ev->kind;
    copy_str(e->node, sizeof(e->node), ev->node);
    e->node_id = ev->node_id;
    e->has_item_id = ev->item_id != NULL;
    copy_str(e->item_id, sizeof(e->item_id), ev->item_id);
    e->seq = ev->seq;
    e->has_payload = ev->payload != NULL;
    if (ev->payload && ev->payload_len <= sizeof(e->payload)) {
        memcpy(e->payload, ev->payload, ev->payload_len);
        e->payload_len = ev->payload_len;
    } else if (ev->payload) {
        e->payload_len = ev->payload_len; /* too long to keep: length only */
    }
    copy_str(e->publisher, sizeof(e->publisher), ev->publisher);
    copy_str(e->to, sizeof(e->to), ev->to);
    copy_str(e->jid, sizeof(e->jid), ev->jid);
    copy_str(e->subid, sizeof(e->subid), ev->subid);
    e->has_redirect = ev->redirect != NULL;
    copy_str(e->redirect, sizeof(e->redirect), ev->redirect);
    e->state = ev->state;
    e->notify = ev->notify;
    e->cfg_max_items = ev->config.max_items;
    if (r->with_recipients) {
        struct rcpt_buf rb = {e->recipients, sizeof(e->recipients), 0};
        pubsub_event_recipients(ps, ev, rcpt_cb, &rb);
    }
}

/* The kinds of the recorded events, e.g. "PUB,RETR,CONF". */
static const char *kind_name(int k)
{
    switch (k) {
    case PS_EV_PUBLISHED: return "PUB";
    case PS_EV_RETRACTED: return "RETR";
    case PS_EV_PURGED: return "PURGE";
    case PS_EV_DELETED: return "DEL";
    case PS_EV_CONFIGURED: return "CONF";
    case PS_EV_SUBSCRIPTION: return "SUB";
    case PS_EV_APPROVAL_PENDING: return "PENDING";
    case PS_EV_LAST_ITEM: return "LAST";
    default: return "?";
    }
}

static char KINDS_BUF[2048];

/* "KIND:node[:item]" for each recorded event, joined with ','. */
static const char *rec_summary(void)
{
    size_t len = 0;
    KINDS_BUF[0] = '\0';
    for (int i = 0; i < REC.n && len < sizeof(KINDS_BUF); i++) {
        const struct rec_event *e = &REC.ev[i];
        len += (size_t)snprintf(KINDS_BUF + len, sizeof(KINDS_BUF) - len, "%s%s:%s%s%s",
                                i ? "," : "", kind_name(e->kind), e->node,
                                e->has_item_id ? ":" : "", e->has_item_id ? e->item_id : "");
    }
    return KINDS_BUF;
}

/* ---- the presence hook stub -------------------------------------------- */

struct presence_stub {
    char allowed[8][STR_MAX]; /* "owner|contact" pairs that hold a subscription */
    int nallowed;
    int calls;
    char last_owner[STR_MAX];
    char last_contact[STR_MAX];
};

static struct presence_stub PRES;

static bool presence_cb(void *ud, const char *owner, const char *contact)
{
    struct presence_stub *p = ud;
    p->calls++;
    copy_str(p->last_owner, sizeof(p->last_owner), owner);
    copy_str(p->last_contact, sizeof(p->last_contact), contact);
    char pair[2 * STR_MAX + 2];
    snprintf(pair, sizeof(pair), "%s|%s", owner, contact);
    for (int i = 0; i < p->nallowed; i++)
        if (strcmp(p->allowed[i], pair) == 0)
            return true;
    return false;
}

static void presence_allow(const char *owner, const char *contact)
{
    if (PRES.nallowed < 8)
        snprintf(PRES.allowed[PRES.nallowed++], STR_MAX, "%s|%s", owner, contact);
}

/* ---- the fixture ---------------------------------------------------------- */

struct fx {
    char *dir;
    struct store *st;
    struct batch *b;
    struct pubsub *ps;
    bool auto_create;
    bool open;
};

#define CAP_MAX_ITEMS 100
#define CAP_MAX_PAYLOAD 4096
static unsigned FX_MAX_NODES; /* pubsub.max_nodes_per_account of the next open (0: none) */
static size_t FX_MAP_MB;      /* map size and ceiling of the next open (0: 64 and 256 MiB) */
static uint32_t FX_CAP_ITEMS; /* the max_items cap of the next open (0: CAP_MAX_ITEMS) */

static bool fx_open(struct fx *f)
{
    struct store_opts so = {.map_size = 64u << 20, .max_map_size = 256u << 20};
    if (FX_MAP_MB) {
        so.map_size = so.max_map_size = FX_MAP_MB << 20;
        so.reserve = FX_MAP_MB << 17; /* an eighth */
    }
    int rc = store_open(&f->st, f->dir, &so);
    CHECK_EQ_INT(rc, 0);
    if (rc != 0)
        return false;
    rc = batch_new(f->st, &f->b);
    CHECK_EQ_INT(rc, 0);
    struct pubsub_opts o = {
        .store = f->st,
        .batch = f->b,
        .caps = {.max_items = FX_CAP_ITEMS ? FX_CAP_ITEMS : CAP_MAX_ITEMS,
                 .max_payload_size = CAP_MAX_PAYLOAD},
        .auto_create = f->auto_create,
        .hooks = {.presence_subscribed = presence_cb, .ud = &PRES},
        .max_nodes_per_account = FX_MAX_NODES,
    };
    rc = pubsub_open(&o, &f->ps);
    CHECK_EQ_INT(rc, 0);
    if (rc != 0)
        return false;
    CHECK_EQ_INT(pubsub_sink_add(f->ps, record_sink, &REC), 0);
    f->open = true;
    return true;
}

static void fx_close(struct fx *f)
{
    if (!f->open)
        return;
    batch_commit(f->b);
    pubsub_close(f->ps);
    batch_free(f->b);
    store_close(f->st);
    f->ps = NULL;
    f->b = NULL;
    f->st = NULL;
    f->open = false;
}

static bool fx_start(struct fx *f)
{
    memset(f, 0, sizeof(*f));
    log_set_level(LOG_ERROR); /* injected faults log warnings on purpose */
    unsetenv("HERALD_TEST_FAULTS");
    rec_reset();
    memset(&PRES, 0, sizeof(PRES));
    f->dir = test_make_dir("herald-test-ps");
    return f->dir != NULL && fx_open(f);
}

static void fx_end(struct fx *f)
{
    fx_close(f);
    unsetenv("HERALD_TEST_FAULTS");
    test_remove_dir(f->dir);
    f->dir = NULL;
}

/* Closes service and store and opens them again, with faults (NULL: none):
 * everything the service knows afterwards came from LMDB. */
static bool fx_reopen(struct fx *f, const char *faults)
{
    fx_close(f);
    if (faults)
        setenv("HERALD_TEST_FAULTS", faults, 1);
    else
        unsetenv("HERALD_TEST_FAULTS");
    bool ok = fx_open(f);
    unsetenv("HERALD_TEST_FAULTS"); /* read by store_open only */
    return ok;
}

static void commit(struct fx *f) { batch_commit(f->b); }

/* ---- call helpers --------------------------------------------------------- */

#define FIELD(var, val) ((struct ps_field){(var), (const char *const[]){(val)}, 1})

#define ALICE "alice@localhost"
#define BOB "bob@localhost"
#define CAROL "carol@localhost"
#define DAVE "dave@localhost"
#define ERIN "erin@localhost"

static int create(struct fx *f, const char *who, const char *name, const struct ps_field *cfg,
                  size_t ncfg)
{
    char out[PS_NODE_NAME_MAX + 1];
    return pubsub_create(f->ps, who, name, cfg, ncfg, out);
}

static int publish_len(struct fx *f, const char *who, const char *node, const char *id,
                       const char *payload, size_t len, struct ps_published *out)
{
    struct ps_publish req = {.node = node, .item_id = id, .has_item = true, .payload = payload,
                             .payload_len = len};
    struct ps_published tmp;
    return pubsub_publish(f->ps, who, &req, out ? out : &tmp);
}

static int publish(struct fx *f, const char *who, const char *node, const char *id,
                   struct ps_published *out)
{
    char payload[128];
    snprintf(payload, sizeof(payload), "<entry xmlns='urn:test'>%s</entry>", id ? id : "");
    return publish_len(f, who, node, id, payload, strlen(payload), out);
}

static int subscribe(struct fx *f, const char *who, const char *node, const char *jid,
                     const struct ps_field *opts, size_t nopts)
{
    struct ps_subscription out;
    int rc = pubsub_subscribe(f->ps, who, node, jid, opts, nopts, &out);
    if (rc == 0) /* as the edges do, once the answer is queued */
        pubsub_subscribed(f->ps, node, out.jid);
    return rc;
}

/* Items as "id" joined with ','; seqs (may be NULL) get the sequences. */
struct items_seen {
    char text[2048];
    size_t len;
    int n;
    uint64_t seqs[64];
    char payloads[8][256];
    size_t payload_lens[8];
    char publishers[8][STR_MAX];
};

static int items_cb(void *ud, const struct ps_item *it)
{
    struct items_seen *s = ud;
    if (s->len < sizeof(s->text))
        s->len += (size_t)snprintf(s->text + s->len, sizeof(s->text) - s->len, "%s%.*s",
                                   s->n ? "," : "", (int)it->id_len, it->id);
    if (s->n < 64)
        s->seqs[s->n] = it->seq;
    if (s->n < 8) {
        size_t pl = it->payload_len < 256 ? it->payload_len : 256;
        memcpy(s->payloads[s->n], it->payload, pl);
        s->payload_lens[s->n] = it->payload_len;
        snprintf(s->publishers[s->n], STR_MAX, "%.*s", (int)it->publisher_len, it->publisher);
    }
    s->n++;
    return 0;
}

static int items_q(struct fx *f, const char *who, const char *node, const struct ps_items_query *q,
                   struct items_seen *s)
{
    memset(s, 0, sizeof(*s));
    return pubsub_items(f->ps, who, node, q, items_cb, s);
}

/* All items, newest first, as text (or "ERR<code>"). */
static char ITEMS_BUF[2048];
static const char *items_all(struct fx *f, const char *who, const char *node, bool committed)
{
    struct ps_items_query q = {.committed = committed};
    struct items_seen s;
    int rc = items_q(f, who, node, &q, &s);
    if (rc != 0)
        snprintf(ITEMS_BUF, sizeof(ITEMS_BUF), "ERR%d", rc);
    else
        snprintf(ITEMS_BUF, sizeof(ITEMS_BUF), "%s", s.text);
    return ITEMS_BUF;
}

/* Subscriptions as "jid:state:deliver" joined with ';'. */
struct subs_seen {
    char text[2048];
    size_t len;
    int n;
    char subids[16][PS_SUBID_MAX + 1];
};

static int subs_cb(void *ud, const struct ps_subscription *s)
{
    struct subs_seen *w = ud;
    char st = s->state == SUB_SUBSCRIBED ? 's' : s->state == SUB_PENDING ? 'p' : 'n';
    if (w->len < sizeof(w->text))
        w->len += (size_t)snprintf(w->text + w->len, sizeof(w->text) - w->len, "%s%s:%c:%d",
                                   w->n ? ";" : "", s->jid, st, s->deliver ? 1 : 0);
    if (w->n < 16)
        copy_str(w->subids[w->n], sizeof(w->subids[0]), s->subid);
    w->n++;
    return 0;
}

static char SUBS_BUF[2048];
static const char *subs_node(struct fx *f, const char *owner, const char *node)
{
    struct subs_seen w;
    memset(&w, 0, sizeof(w));
    int rc = pubsub_subscriptions_node(f->ps, owner, node, subs_cb, &w);
    if (rc != 0)
        snprintf(SUBS_BUF, sizeof(SUBS_BUF), "ERR%d", rc);
    else
        snprintf(SUBS_BUF, sizeof(SUBS_BUF), "%s", w.text);
    return SUBS_BUF;
}

static const char *subs_own(struct fx *f, const char *who, const char *node)
{
    struct subs_seen w;
    memset(&w, 0, sizeof(w));
    int rc = pubsub_subscriptions_own(f->ps, who, node, subs_cb, &w);
    if (rc != 0)
        snprintf(SUBS_BUF, sizeof(SUBS_BUF), "ERR%d", rc);
    else
        snprintf(SUBS_BUF, sizeof(SUBS_BUF), "%s", w.text);
    return SUBS_BUF;
}

/* Sorted "a,b,c" of strings collected by the walks below. */
struct names {
    char v[32][PS_NODE_NAME_MAX + 1];
    int n;
};

static int cmp_str(const void *a, const void *b) { return strcmp(a, b); }

static char NAMES_BUF[4096];
static const char *names_join(struct names *nm)
{
    qsort(nm->v, (size_t)nm->n, sizeof(nm->v[0]), cmp_str);
    size_t len = 0;
    NAMES_BUF[0] = '\0';
    for (int i = 0; i < nm->n && len < sizeof(NAMES_BUF); i++)
        len += (size_t)snprintf(NAMES_BUF + len, sizeof(NAMES_BUF) - len, "%s%s", i ? "," : "",
                                nm->v[i]);
    return NAMES_BUF;
}

static int node_name_cb(void *ud, const struct ps_node_info *n)
{
    struct names *nm = ud;
    if (nm->n < 32)
        copy_str(nm->v[nm->n++], sizeof(nm->v[0]), n->name);
    return 0;
}

static const char *nodes_of(struct fx *f, const char *who, const char *parent)
{
    struct names nm;
    memset(&nm, 0, sizeof(nm));
    struct ps_nodes_query q = {.max = UINT32_MAX};
    struct ps_nodes_page pg;
    int rc = pubsub_nodes_page(f->ps, who, parent, &q, node_name_cb, &nm, &pg);
    if (rc != 0) {
        snprintf(NAMES_BUF, sizeof(NAMES_BUF), "ERR%d", rc);
        return NAMES_BUF;
    }
    return names_join(&nm);
}

static int aff_cb(void *ud, const char *node, const char *jid, uint8_t aff)
{
    struct names *nm = ud;
    if (nm->n < 32)
        snprintf(nm->v[nm->n++], sizeof(nm->v[0]), "%s=%u", jid ? jid : node, aff);
    return 0;
}

static const char *affs_node(struct fx *f, const char *owner, const char *node)
{
    struct names nm;
    memset(&nm, 0, sizeof(nm));
    int rc = pubsub_affiliations_node(f->ps, owner, node, aff_cb, &nm);
    if (rc != 0) {
        snprintf(NAMES_BUF, sizeof(NAMES_BUF), "ERR%d", rc);
        return NAMES_BUF;
    }
    return names_join(&nm);
}

static int pending_cb(void *ud, const char *node)
{
    struct names *nm = ud;
    if (nm->n < 32)
        copy_str(nm->v[nm->n++], sizeof(nm->v[0]), node);
    return 0;
}

static const char *pending_of(struct fx *f, const char *who)
{
    struct names nm;
    memset(&nm, 0, sizeof(nm));
    int rc = pubsub_pending_nodes(f->ps, who, pending_cb, &nm);
    if (rc != 0) {
        snprintf(NAMES_BUF, sizeof(NAMES_BUF), "ERR%d", rc);
        return NAMES_BUF;
    }
    return names_join(&nm);
}

/* ---- nodes: create, configure, delete, purge ------------------------------ */

static void test_create_and_owner_checks(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    CHECK_EQ_INT(create(&f, ALICE "/phone", "news", NULL, 0), 0);
    CHECK_EQ_INT(create(&f, ALICE, "news", NULL, 0), HERALD_EEXIST);
    CHECK_EQ_INT(create(&f, BOB, "news", NULL, 0), HERALD_EEXIST);
    CHECK_EQ_INT(create(&f, BOB, "", NULL, 0), HERALD_ENOTACCEPTABLE);
    /* Instant node: the service picks a unique name. */
    char inst1[PS_NODE_NAME_MAX + 1] = "", inst2[PS_NODE_NAME_MAX + 1] = "";
    CHECK_EQ_INT(pubsub_create(f.ps, BOB, NULL, NULL, 0, inst1), 0);
    CHECK_EQ_INT(pubsub_create(f.ps, BOB, NULL, NULL, 0, inst2), 0);
    CHECK(inst1[0] != '\0' && inst2[0] != '\0' && strcmp(inst1, inst2) != 0);
    commit(&f);
    CHECK_EQ_INT(pubsub_node_count(f.ps), 3);

    struct ps_node_info info;
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "news", &info), 0);
    CHECK_EQ_STR(info.name, "news");
    CHECK_EQ_INT(info.affiliation, AFF_OWNER);
    CHECK_EQ_INT(info.nowners, 1);
    CHECK_EQ_STR(info.owners[0], ALICE); /* bare, though created from a full JID */
    CHECK_EQ_INT(info.item_count, 0);
    CHECK_EQ_INT(info.last_seq, 0);
    CHECK_EQ_INT(info.config.max_items, 10);
    CHECK_EQ_INT(pubsub_node_get(f.ps, BOB, "news", &info), 0);
    CHECK_EQ_INT(info.affiliation, AFF_NONE);
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "nope", &info), HERALD_ENOTFOUND);
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, NULL, &info), HERALD_ENODEID_REQUIRED);

    /* Create with configuration fields; bad fields refuse the creation. */
    struct ps_field cfg[] = {FIELD("pubsub#max_items", "3"), FIELD("pubsub#title", "T")};
    CHECK_EQ_INT(create(&f, ALICE, "cfgd", cfg, 2), 0);
    struct ps_field bad[] = {FIELD("pubsub#max_items", "lots")};
    CHECK_EQ_INT(create(&f, ALICE, "bad", bad, 1), HERALD_ENOTACCEPTABLE);
    CHECK(pubsub_why(f.ps)->text[0] != '\0');
    struct ps_field roster[] = {FIELD("pubsub#access_model", "roster")};
    CHECK_EQ_INT(create(&f, ALICE, "bad", roster, 1), HERALD_EUNSUPPORTED_ACCESS);
    commit(&f);
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "bad", &info), HERALD_ENOTFOUND);
    struct ps_config c;
    CHECK_EQ_INT(pubsub_config_get(f.ps, ALICE, "cfgd", &c), 0);
    CHECK_EQ_INT(c.max_items, 3);
    CHECK_EQ_STR(c.title, "T");
    CHECK_EQ_INT(pubsub_config_get(f.ps, BOB, "cfgd", &c), HERALD_EFORBIDDEN);
    CHECK_EQ_INT(pubsub_config_get(f.ps, ALICE, "nope", &c), HERALD_ENOTFOUND);
    CHECK_EQ_INT(REC.n, 0); /* creating announces nothing */
    fx_end(&f);
}

static void test_configure_delete_purge(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    CHECK_EQ_INT(create(&f, ALICE, "n", NULL, 0), 0);
    commit(&f);
    struct ps_field mi[] = {FIELD("pubsub#max_items", "5")};
    CHECK_EQ_INT(pubsub_configure(f.ps, BOB, "n", mi, 1), HERALD_EFORBIDDEN);
    CHECK_EQ_INT(pubsub_configure(f.ps, ALICE, "missing", mi, 1), HERALD_ENOTFOUND);
    CHECK_EQ_INT(pubsub_configure(f.ps, ALICE "/laptop", "n", mi, 1), 0);
    struct ps_field node_type[] = {FIELD("pubsub#node_type", "collection")};
    CHECK_EQ_INT(pubsub_configure(f.ps, ALICE, "n", node_type, 1), HERALD_ENOTACCEPTABLE);
    CHECK_EQ_INT(REC.n, 0);
    commit(&f);
    CHECK_EQ_STR(rec_summary(), "CONF:n");
    CHECK_EQ_INT(REC.ev[0].cfg_max_items, 5);
    struct ps_config c;
    CHECK_EQ_INT(pubsub_config_get(f.ps, ALICE, "n", &c), 0);
    CHECK_EQ_INT(c.max_items, 5);
    CHECK_EQ_INT(c.node_type, PS_LEAF);

    /* A smaller max_items trims at once, oldest first. */
    for (int i = 1; i <= 5; i++) {
        char id[8];
        snprintf(id, sizeof(id), "i%d", i);
        CHECK_EQ_INT(publish(&f, ALICE, "n", id, NULL), 0);
    }
    commit(&f);
    CHECK_EQ_STR(items_all(&f, ALICE, "n", true), "i5,i4,i3,i2,i1");
    struct ps_field mi2[] = {FIELD("pubsub#max_items", "2")};
    CHECK_EQ_INT(pubsub_configure(f.ps, ALICE, "n", mi2, 1), 0);
    commit(&f);
    CHECK_EQ_STR(items_all(&f, ALICE, "n", true), "i5,i4");
    struct ps_node_info info;
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "n", &info), 0);
    CHECK_EQ_INT(info.item_count, 2);
    CHECK_EQ_INT(info.last_seq, 5);

    /* Purge: owners only. */
    rec_reset();
    CHECK_EQ_INT(pubsub_purge(f.ps, BOB, "n"), HERALD_EFORBIDDEN);
    CHECK_EQ_INT(pubsub_purge(f.ps, ALICE, "missing"), HERALD_ENOTFOUND);
    CHECK_EQ_INT(pubsub_purge(f.ps, ALICE, "n"), 0);
    CHECK_EQ_INT(REC.n, 0);
    commit(&f);
    CHECK_EQ_STR(rec_summary(), "PURGE:n");
    CHECK_EQ_STR(items_all(&f, ALICE, "n", true), "");
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "n", &info), 0);
    CHECK_EQ_INT(info.item_count, 0);
    uint64_t old_id = info.id;
    /* The sequence goes on after a purge. */
    struct ps_published pp;
    CHECK_EQ_INT(publish(&f, ALICE, "n", "after", &pp), 0);
    CHECK_EQ_INT(pp.seq, 6);
    commit(&f);

    /* Delete: owners only; the redirect travels with the event. */
    rec_reset();
    CHECK_EQ_INT(pubsub_delete(f.ps, BOB, "n", NULL), HERALD_EFORBIDDEN);
    CHECK_EQ_INT(pubsub_delete(f.ps, ALICE, "missing", NULL), HERALD_ENOTFOUND);
    CHECK_EQ_INT(pubsub_delete(f.ps, ALICE, "n", "xmpp:pubsub.localhost?;node=other"), 0);
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "n", &info), HERALD_ENOTFOUND);
    CHECK_EQ_INT(REC.n, 0);
    commit(&f);
    CHECK_EQ_STR(rec_summary(), "DEL:n");
    CHECK(REC.ev[0].has_redirect);
    CHECK_EQ_STR(REC.ev[0].redirect, "xmpp:pubsub.localhost?;node=other");
    CHECK_EQ_INT(REC.ev[0].node_id, old_id);
    CHECK_EQ_INT(pubsub_delete(f.ps, ALICE, "n", NULL), HERALD_ENOTFOUND);

    /* A new node of the same name is a new node: new id, no old items. */
    CHECK_EQ_INT(create(&f, ALICE, "n", NULL, 0), 0);
    commit(&f);
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "n", &info), 0);
    CHECK(info.id > old_id);
    CHECK_EQ_INT(info.item_count, 0);
    CHECK_EQ_STR(items_all(&f, ALICE, "n", true), "");
    CHECK_EQ_INT(publish(&f, ALICE, "n", "x", &pp), 0);
    CHECK_EQ_INT(pp.seq, 1);
    commit(&f);
    fx_end(&f);
}

/* ---- publish and events -------------------------------------------------- */

static void test_publish_events(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    struct ps_field cfg[] = {FIELD("pubsub#max_items", "3")};
    CHECK_EQ_INT(create(&f, ALICE, "n", cfg, 1), 0);
    commit(&f);

    /* Payload bytes arrive intact, NUL and high bytes included. */
    static const char bin[] = "<p xmlns='x'>\x01\xff\xc3\xa9\0tail</p>";
    size_t binlen = sizeof(bin) - 1;
    struct ps_published p1, p2, p3, p4;
    CHECK_EQ_INT(publish_len(&f, ALICE "/phone", "n", "a", bin, binlen, &p1), 0);
    CHECK_EQ_INT(publish(&f, ALICE, "n", "b", &p2), 0);
    CHECK_EQ_INT(publish(&f, ALICE, "n", "c", &p3), 0);
    CHECK_EQ_INT(p1.seq, 1);
    CHECK_EQ_INT(p2.seq, 2);
    CHECK_EQ_INT(p3.seq, 3);
    CHECK(!p1.replaced && !p2.replaced && !p3.replaced);
    CHECK_EQ_STR(p1.id, "a");
    /* Nothing leaves before the commit. */
    CHECK_EQ_INT(REC.n, 0);
    commit(&f);
    CHECK_EQ_STR(rec_summary(), "PUB:n:a,PUB:n:b,PUB:n:c");
    CHECK_EQ_INT(REC.ev[0].seq, 1);
    CHECK_EQ_INT(REC.ev[1].seq, 2);
    CHECK_EQ_INT(REC.ev[2].seq, 3);
    CHECK(REC.ev[0].has_payload);
    CHECK_EQ_MEM(REC.ev[0].payload, REC.ev[0].payload_len, bin, binlen);
    CHECK_EQ_STR(REC.ev[0].publisher, ALICE);
    /* And the same bytes come back from storage. */
    const char *ids[] = {"a"};
    struct ps_items_query q = {.ids = ids, .nids = 1};
    struct items_seen s;
    CHECK_EQ_INT(items_q(&f, ALICE, "n", &q, &s), 0);
    CHECK_EQ_INT(s.n, 1);
    CHECK_EQ_MEM(s.payloads[0], s.payload_lens[0], bin, binlen);
    CHECK_EQ_STR(s.publishers[0], ALICE);
    CHECK_EQ_INT(s.seqs[0], 1);

    /* Same id: replaced, and it becomes the newest with a new seq. */
    rec_reset();
    CHECK_EQ_INT(publish(&f, ALICE, "n", "a", &p4), 0);
    CHECK(p4.replaced);
    CHECK_EQ_INT(p4.seq, 4);
    commit(&f);
    CHECK_EQ_STR(rec_summary(), "PUB:n:a");
    CHECK_EQ_INT(REC.ev[0].seq, 4);
    CHECK_EQ_STR(items_all(&f, ALICE, "n", true), "a,c,b");

    /* max_items = 3: a fourth distinct item pushes the oldest out. */
    CHECK_EQ_INT(publish(&f, ALICE, "n", "d", &p4), 0);
    CHECK_EQ_INT(p4.seq, 5);
    CHECK(!p4.replaced);
    commit(&f);
    CHECK_EQ_STR(items_all(&f, ALICE, "n", true), "d,a,c");
    struct ps_node_info info;
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "n", &info), 0);
    CHECK_EQ_INT(info.item_count, 3);
    CHECK_EQ_INT(info.last_seq, 5);
    /* b was evicted: publishing it again is not a replacement. */
    CHECK_EQ_INT(publish(&f, ALICE, "n", "b", &p4), 0);
    CHECK(!p4.replaced);
    commit(&f);

    /* A generated id. */
    struct ps_published g;
    CHECK_EQ_INT(publish(&f, ALICE, "n", NULL, &g), 0);
    CHECK(strlen(g.id) > 0);
    struct ps_published g2;
    CHECK_EQ_INT(publish(&f, ALICE, "n", "", &g2), 0);
    CHECK(strlen(g2.id) > 0 && strcmp(g.id, g2.id) != 0);
    commit(&f);

    /* Refusals announce nothing. */
    rec_reset();
    CHECK_EQ_INT(publish(&f, BOB, "n", "x", NULL), HERALD_EFORBIDDEN);
    CHECK_EQ_INT(publish(&f, ALICE, "missing", "x", NULL), HERALD_ENOTFOUND);
    char big[CAP_MAX_PAYLOAD + 1];
    memset(big, 'x', sizeof(big));
    CHECK_EQ_INT(publish_len(&f, ALICE, "n", "big", big, sizeof(big), NULL),
                 HERALD_EPAYLOAD_TOO_BIG);
    struct ps_publish noitem = {.node = "n"};
    struct ps_published out;
    CHECK_EQ_INT(pubsub_publish(f.ps, ALICE, &noitem, &out), HERALD_EITEM_REQUIRED);
    /* Publish-options preconditions. */
    struct ps_field pre_ok[] = {FIELD("pubsub#max_items", "3")};
    struct ps_field pre_bad[] = {FIELD("pubsub#max_items", "7")};
    struct ps_publish withopt = {.node = "n", .item_id = "po", .has_item = true,
                                 .payload = "<x/>", .payload_len = 4, .options = pre_bad,
                                 .noptions = 1};
    CHECK_EQ_INT(pubsub_publish(f.ps, ALICE, &withopt, &out), HERALD_EPRECONDITION);
    commit(&f);
    CHECK_EQ_INT(REC.n, 0);
    withopt.options = pre_ok;
    CHECK_EQ_INT(pubsub_publish(f.ps, ALICE, &withopt, &out), 0);
    commit(&f);
    CHECK_EQ_STR(rec_summary(), "PUB:n:po");

    /* Publish models: subscribers, open (never outcasts). */
    struct ps_field subs_pm[] = {FIELD("pubsub#publish_model", "subscribers")};
    struct ps_field open_pm[] = {FIELD("pubsub#publish_model", "open")};
    CHECK_EQ_INT(create(&f, ALICE, "bysubs", subs_pm, 1), 0);
    CHECK_EQ_INT(create(&f, ALICE, "byall", open_pm, 1), 0);
    CHECK_EQ_INT(subscribe(&f, CAROL, "bysubs", CAROL, NULL, 0), 0);
    CHECK_EQ_INT(pubsub_owner_set_affiliation(f.ps, ALICE, "byall", ERIN, AFF_OUTCAST), 0);
    CHECK_EQ_INT(publish(&f, CAROL, "bysubs", "c", NULL), 0);
    CHECK_EQ_INT(publish(&f, DAVE, "bysubs", "d", NULL), HERALD_EFORBIDDEN);
    CHECK_EQ_INT(publish(&f, DAVE, "byall", "d", NULL), 0);
    CHECK_EQ_INT(publish(&f, ERIN, "byall", "e", NULL), HERALD_EFORBIDDEN);
    commit(&f);

    /* A publisher affiliation may publish. */
    CHECK_EQ_INT(pubsub_owner_set_affiliation(f.ps, ALICE, "n", BOB, AFF_PUBLISHER), 0);
    CHECK_EQ_INT(publish(&f, BOB "/tab", "n", "by-bob", NULL), 0);
    commit(&f);
    CHECK_EQ_STR(REC.ev[REC.n - 1].publisher, BOB);
    fx_end(&f);
}

static void test_auto_create(void)
{
    struct fx f;
    memset(&f, 0, sizeof(f));
    if (!fx_start(&f))
        return;
    CHECK_EQ_INT(publish(&f, ALICE, "auto", "1", NULL), HERALD_ENOTFOUND);
    f.auto_create = true;
    CHECK(fx_reopen(&f, NULL));
    struct ps_field opt[] = {FIELD("pubsub#max_items", "1")};
    struct ps_publish req = {.node = "auto", .item_id = "1", .has_item = true,
                             .payload = "<x/>", .payload_len = 4, .options = opt, .noptions = 1};
    struct ps_published out;
    CHECK_EQ_INT(pubsub_publish(f.ps, ALICE, &req, &out), 0);
    commit(&f);
    struct ps_config c;
    CHECK_EQ_INT(pubsub_config_get(f.ps, ALICE, "auto", &c), 0);
    CHECK_EQ_INT(c.max_items, 1);
    CHECK_EQ_STR(rec_summary(), "PUB:auto:1");
    fx_end(&f);
}

/* Events come after the commit, in the order of the changes, across
 * nodes and kinds; refused calls in between add nothing. */
static void test_event_order(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    CHECK_EQ_INT(create(&f, ALICE, "a", NULL, 0), 0);
    CHECK_EQ_INT(create(&f, ALICE, "b", NULL, 0), 0);
    commit(&f);
    CHECK_EQ_INT(REC.n, 0);

    struct ps_field t[] = {FIELD("pubsub#title", "B")};
    CHECK_EQ_INT(publish(&f, ALICE, "a", "1", NULL), 0);
    CHECK_EQ_INT(publish(&f, ALICE, "b", "1", NULL), 0);
    CHECK_EQ_INT(publish(&f, BOB, "a", "x", NULL), HERALD_EFORBIDDEN);
    CHECK_EQ_INT(pubsub_configure(f.ps, ALICE, "b", t, 1), 0);
    CHECK_EQ_INT(publish(&f, ALICE, "a", "2", NULL), 0);
    CHECK_EQ_INT(pubsub_retract(f.ps, ALICE, "a", "1", false), 0);
    CHECK_EQ_INT(pubsub_purge(f.ps, ALICE, "b"), 0);
    CHECK_EQ_INT(pubsub_delete(f.ps, ALICE, "b", NULL), 0);
    CHECK_EQ_INT(publish(&f, ALICE, "a", "3", NULL), 0);
    CHECK_EQ_INT(REC.n, 0);
    commit(&f);
    CHECK_EQ_STR(rec_summary(),
                 "PUB:a:1,PUB:b:1,CONF:b,PUB:a:2,RETR:a:1,PURGE:b,DEL:b,PUB:a:3");
    CHECK_EQ_INT(REC.ev[0].seq, 1);
    CHECK_EQ_INT(REC.ev[3].seq, 2);
    CHECK_EQ_INT(REC.ev[7].seq, 3);
    CHECK_EQ_INT(REC.ev[1].seq, 1); /* per-node sequences */
    /* A second commit with nothing new announces nothing again. */
    commit(&f);
    CHECK_EQ_INT(REC.n, 8);
    fx_end(&f);
}

static void test_retract(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    struct ps_field quiet[] = {FIELD("pubsub#notify_retract", "false")};
    struct ps_field loud[] = {FIELD("pubsub#notify_retract", "true")};
    CHECK_EQ_INT(create(&f, ALICE, "q", quiet, 1), 0);
    CHECK_EQ_INT(create(&f, ALICE, "l", loud, 1), 0);
    for (int i = 1; i <= 3; i++) {
        char id[4];
        snprintf(id, sizeof(id), "%d", i);
        CHECK_EQ_INT(publish(&f, ALICE, "q", id, NULL), 0);
        CHECK_EQ_INT(publish(&f, ALICE, "l", id, NULL), 0);
    }
    commit(&f);
    rec_reset();
    CHECK_EQ_INT(pubsub_retract(f.ps, ALICE, "q", "1", false), 0);
    CHECK_EQ_INT(pubsub_retract(f.ps, ALICE, "q", "2", true), 0);
    CHECK_EQ_INT(pubsub_retract(f.ps, ALICE, "l", "1", false), 0);
    CHECK_EQ_INT(pubsub_retract(f.ps, ALICE, "q", "1", false), HERALD_ENOTFOUND);
    CHECK_EQ_INT(pubsub_retract(f.ps, ALICE, "q", "", false), HERALD_EITEM_REQUIRED);
    CHECK_EQ_INT(pubsub_retract(f.ps, ALICE, "q", NULL, false), HERALD_EITEM_REQUIRED);
    CHECK_EQ_INT(pubsub_retract(f.ps, BOB, "q", "3", false), HERALD_EFORBIDDEN);
    CHECK_EQ_INT(pubsub_retract(f.ps, ALICE, "missing", "3", false), HERALD_ENOTFOUND);
    CHECK_EQ_INT(REC.n, 0);
    commit(&f);
    CHECK_EQ_STR(rec_summary(), "RETR:q:1,RETR:q:2,RETR:l:1");
    CHECK(!REC.ev[0].notify);
    CHECK(REC.ev[1].notify);
    CHECK(REC.ev[2].notify);
    CHECK_EQ_STR(items_all(&f, ALICE, "q", true), "3");
    CHECK_EQ_STR(items_all(&f, ALICE, "l", true), "3,2");
    struct ps_node_info info;
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "q", &info), 0);
    CHECK_EQ_INT(info.item_count, 1);
    /* A retracted id may be published again, as a new item. */
    struct ps_published p;
    CHECK_EQ_INT(publish(&f, ALICE, "q", "1", &p), 0);
    CHECK(!p.replaced);
    CHECK_EQ_INT(p.seq, 4);
    commit(&f);
    fx_end(&f);
}

/* ---- reading items -------------------------------------------------------- */

static void test_items_queries(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    CHECK_EQ_INT(create(&f, ALICE, "n", NULL, 0), 0);
    for (int i = 1; i <= 5; i++) {
        char id[8];
        snprintf(id, sizeof(id), "i%d", i);
        CHECK_EQ_INT(publish(&f, ALICE, "n", id, NULL), 0);
    }
    commit(&f);
    struct items_seen s;
    struct ps_items_query q;

    memset(&q, 0, sizeof(q));
    CHECK_EQ_INT(items_q(&f, BOB, "n", &q, &s), 0);
    CHECK_EQ_STR(s.text, "i5,i4,i3,i2,i1");
    CHECK_EQ_INT(s.seqs[0], 5);
    CHECK_EQ_INT(s.seqs[4], 1);
    CHECK_EQ_MEM(s.payloads[0], s.payload_lens[0], "<entry xmlns='urn:test'>i5</entry>",
                 strlen("<entry xmlns='urn:test'>i5</entry>"));

    q.max = 2;
    CHECK_EQ_INT(items_q(&f, BOB, "n", &q, &s), 0);
    CHECK_EQ_STR(s.text, "i5,i4");

    memset(&q, 0, sizeof(q));
    q.oldest_first = true;
    CHECK_EQ_INT(items_q(&f, BOB, "n", &q, &s), 0);
    CHECK_EQ_STR(s.text, "i1,i2,i3,i4,i5");
    q.max = 2;
    CHECK_EQ_INT(items_q(&f, BOB, "n", &q, &s), 0);
    CHECK_EQ_STR(s.text, "i1,i2");

    /* Sequence cursors. */
    memset(&q, 0, sizeof(q));
    q.before_seq = 4;
    CHECK_EQ_INT(items_q(&f, BOB, "n", &q, &s), 0);
    CHECK_EQ_STR(s.text, "i3,i2,i1");
    q.before_seq = 1;
    CHECK_EQ_INT(items_q(&f, BOB, "n", &q, &s), 0);
    CHECK_EQ_STR(s.text, "");
    memset(&q, 0, sizeof(q));
    q.oldest_first = true;
    q.after_seq = 2;
    CHECK_EQ_INT(items_q(&f, BOB, "n", &q, &s), 0);
    CHECK_EQ_STR(s.text, "i3,i4,i5");
    q.after_seq = 5;
    CHECK_EQ_INT(items_q(&f, BOB, "n", &q, &s), 0);
    CHECK_EQ_STR(s.text, "");
    q.after_seq = 1;
    q.max = 2;
    CHECK_EQ_INT(items_q(&f, BOB, "n", &q, &s), 0);
    CHECK_EQ_STR(s.text, "i2,i3");

    /* Id cursors. */
    memset(&q, 0, sizeof(q));
    q.before_id = "i3";
    CHECK_EQ_INT(items_q(&f, BOB, "n", &q, &s), 0);
    CHECK_EQ_STR(s.text, "i2,i1");
    q.max = 1;
    CHECK_EQ_INT(items_q(&f, BOB, "n", &q, &s), 0);
    CHECK_EQ_STR(s.text, "i2");
    memset(&q, 0, sizeof(q));
    q.oldest_first = true;
    q.after_id = "i3";
    CHECK_EQ_INT(items_q(&f, BOB, "n", &q, &s), 0);
    CHECK_EQ_STR(s.text, "i4,i5");
    /* An unknown cursor is item-not-found (XEP-0059 §2.5), not an empty page. */
    q.after_id = "gone";
    CHECK_EQ_INT(items_q(&f, BOB, "n", &q, &s), HERALD_ENOTFOUND);
    CHECK_EQ_INT(s.n, 0);
    memset(&q, 0, sizeof(q));
    q.before_id = "gone";
    CHECK_EQ_INT(items_q(&f, BOB, "n", &q, &s), HERALD_ENOTFOUND);
    CHECK_EQ_INT(s.n, 0);

    /* By id, in the order asked; missing ids are skipped. */
    const char *ids[] = {"i4", "zz", "i1", "i4"};
    memset(&q, 0, sizeof(q));
    q.ids = ids;
    q.nids = 4;
    CHECK_EQ_INT(items_q(&f, BOB, "n", &q, &s), 0);
    CHECK_EQ_STR(s.text, "i4,i1,i4");
    CHECK_EQ_INT(s.seqs[0], 4);
    CHECK_EQ_INT(s.seqs[1], 1);

    /* Unknown node. */
    memset(&q, 0, sizeof(q));
    CHECK_EQ_INT(items_q(&f, BOB, "missing", &q, &s), HERALD_ENOTFOUND);

    /* committed=true does not see this turn's open batch; false does. */
    CHECK_EQ_INT(publish(&f, ALICE, "n", "i6", NULL), 0);
    CHECK(batch_open_now(f.b));
    CHECK_EQ_STR(items_all(&f, BOB, "n", true), "i5,i4,i3,i2,i1");
    CHECK_EQ_STR(items_all(&f, BOB, "n", false), "i6,i5,i4,i3,i2,i1");
    const char *id6[] = {"i6"};
    memset(&q, 0, sizeof(q));
    q.ids = id6;
    q.nids = 1;
    q.committed = true;
    CHECK_EQ_INT(items_q(&f, BOB, "n", &q, &s), 0);
    CHECK_EQ_INT(s.n, 0);
    q.committed = false;
    CHECK_EQ_INT(items_q(&f, BOB, "n", &q, &s), 0);
    CHECK_EQ_INT(s.n, 1);
    /* A cursor naming an uncommitted item is unknown to a committed read. */
    memset(&q, 0, sizeof(q));
    q.before_id = "i6";
    q.committed = true;
    CHECK_EQ_INT(items_q(&f, BOB, "n", &q, &s), HERALD_ENOTFOUND);
    q.committed = false;
    CHECK_EQ_INT(items_q(&f, BOB, "n", &q, &s), 0);
    CHECK_EQ_STR(s.text, "i5,i4,i3,i2,i1");
    commit(&f);
    CHECK_EQ_STR(items_all(&f, BOB, "n", true), "i6,i5,i4,i3,i2,i1");

    /* A collection has no items. */
    struct ps_field coll[] = {FIELD("pubsub#node_type", "collection")};
    CHECK_EQ_INT(create(&f, ALICE, "c", coll, 1), 0);
    commit(&f);
    memset(&q, 0, sizeof(q));
    CHECK_EQ_INT(items_q(&f, ALICE, "c", &q, &s), HERALD_EUNSUPPORTED);
    CHECK_EQ_INT(publish(&f, ALICE, "c", "x", NULL), HERALD_EUNSUPPORTED);
    fx_end(&f);
}

/* ---- access models --------------------------------------------------------- */

static void test_access_whitelist_and_listing(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    struct ps_field wl[] = {FIELD("pubsub#access_model", "whitelist")};
    CHECK_EQ_INT(create(&f, ALICE, "wl", wl, 1), 0);
    CHECK_EQ_INT(create(&f, ALICE, "open", NULL, 0), 0);
    CHECK_EQ_INT(publish(&f, ALICE, "wl", "1", NULL), 0);
    commit(&f);

    CHECK_EQ_INT(subscribe(&f, BOB, "wl", BOB, NULL, 0), HERALD_ECLOSED_NODE);
    CHECK_EQ_STR(items_all(&f, BOB, "wl", true), "ERR-29");
    CHECK_EQ_INT(pubsub_node_readable(f.ps, BOB, "wl"), HERALD_ECLOSED_NODE);
    struct ps_node_info info;
    CHECK_EQ_INT(pubsub_node_get(f.ps, BOB, "wl", &info), HERALD_ENOTFOUND);
    CHECK_EQ_STR(nodes_of(&f, BOB, NULL), "open");
    CHECK_EQ_STR(nodes_of(&f, ALICE, NULL), "open,wl");
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "wl", &info), 0);
    commit(&f);
    CHECK_EQ_STR(subs_node(&f, ALICE, "wl"), "");

    /* A member sees, reads and subscribes. */
    CHECK_EQ_INT(pubsub_owner_set_affiliation(f.ps, BOB, "wl", BOB, AFF_MEMBER), HERALD_EFORBIDDEN);
    CHECK_EQ_INT(pubsub_owner_set_affiliation(f.ps, ALICE, "wl", BOB, AFF_MEMBER), 0);
    commit(&f);
    CHECK_EQ_INT(pubsub_node_get(f.ps, BOB "/res", "wl", &info), 0);
    CHECK_EQ_INT(info.affiliation, AFF_MEMBER);
    CHECK_EQ_STR(nodes_of(&f, BOB, NULL), "open,wl");
    CHECK_EQ_STR(items_all(&f, BOB, "wl", true), "1");
    CHECK_EQ_INT(subscribe(&f, BOB, "wl", BOB "/res", NULL, 0), 0);
    commit(&f);
    CHECK_EQ_STR(subs_node(&f, ALICE, "wl"), BOB "/res:s:1");
    /* A subscriber must not subscribe another entity. */
    CHECK_EQ_INT(subscribe(&f, BOB, "open", CAROL, NULL, 0), HERALD_EINVALID_JID);

    /* Outcasts see no node, whatever its model, and may do nothing. */
    CHECK_EQ_INT(subscribe(&f, CAROL, "open", CAROL, NULL, 0), 0);
    commit(&f);
    CHECK_EQ_INT(pubsub_owner_set_affiliation(f.ps, ALICE, "open", CAROL, AFF_OUTCAST), 0);
    commit(&f);
    CHECK_EQ_INT(pubsub_node_get(f.ps, CAROL, "open", &info), HERALD_ENOTFOUND);
    CHECK_EQ_STR(nodes_of(&f, CAROL, NULL), "");
    CHECK_EQ_STR(nodes_of(&f, DAVE, NULL), "open");
    CHECK_EQ_INT(subscribe(&f, CAROL, "open", CAROL, NULL, 0), HERALD_EFORBIDDEN);
    CHECK_EQ_STR(items_all(&f, CAROL "/x", "open", true), "ERR-8");
    CHECK_EQ_STR(subs_node(&f, ALICE, "open"), ""); /* the outcast lost its subscription */
    CHECK_EQ_INT(publish(&f, CAROL, "open", "x", NULL), HERALD_EFORBIDDEN);
    /* The last owner cannot go. */
    CHECK_EQ_INT(pubsub_owner_set_affiliation(f.ps, ALICE, "open", ALICE, AFF_NONE),
                 HERALD_ENOTACCEPTABLE);
    commit(&f);
    CHECK_EQ_STR(affs_node(&f, ALICE, "open"), ALICE "=1," CAROL "=5");
    fx_end(&f);
}

static void test_access_authorize(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    struct ps_field auth[] = {FIELD("pubsub#access_model", "authorize")};
    CHECK_EQ_INT(create(&f, ALICE, "a", auth, 1), 0);
    CHECK_EQ_INT(create(&f, ALICE, "other", auth, 1), 0);
    CHECK_EQ_INT(pubsub_owner_set_affiliation(f.ps, ALICE, "a", DAVE, AFF_OWNER), 0);
    CHECK_EQ_INT(publish(&f, ALICE, "a", "1", NULL), 0);
    commit(&f);
    rec_reset();

    struct ps_subscription sub;
    CHECK_EQ_INT(pubsub_subscribe(f.ps, BOB, "a", BOB, NULL, 0, &sub), 0);
    CHECK_EQ_INT(sub.state, SUB_PENDING);
    char subid[PS_SUBID_MAX + 1];
    copy_str(subid, sizeof(subid), sub.subid);
    CHECK(subid[0] != '\0');
    CHECK_EQ_INT(REC.n, 0);
    commit(&f);
    /* One approval request to each owner. */
    CHECK_EQ_INT(REC.n, 2);
    char tos[2][STR_MAX];
    for (int i = 0; i < 2 && i < REC.n; i++) {
        CHECK_EQ_INT(REC.ev[i].kind, PS_EV_APPROVAL_PENDING);
        CHECK_EQ_STR(REC.ev[i].jid, BOB);
        CHECK_EQ_STR(REC.ev[i].subid, subid);
        CHECK_EQ_STR(REC.ev[i].node, "a");
        copy_str(tos[i], STR_MAX, REC.ev[i].to);
    }
    CHECK((strcmp(tos[0], ALICE) == 0 && strcmp(tos[1], DAVE) == 0) ||
          (strcmp(tos[0], DAVE) == 0 && strcmp(tos[1], ALICE) == 0));

    /* A second request while one is pending. */
    CHECK_EQ_INT(subscribe(&f, BOB, "a", BOB, NULL, 0), HERALD_EPENDING_SUBSCRIPTION);
    /* Pending is not subscribed: no items yet. */
    CHECK_EQ_STR(items_all(&f, BOB, "a", true), "ERR-28");
    CHECK_EQ_STR(subs_node(&f, ALICE, "a"), BOB ":p:1");
    CHECK_EQ_STR(pending_of(&f, ALICE), "a");
    CHECK_EQ_STR(pending_of(&f, DAVE), "a");
    CHECK_EQ_STR(pending_of(&f, BOB), "");

    /* The owner asks again: one event, to that owner only. */
    rec_reset();
    CHECK_EQ_INT(pubsub_pending_resend(f.ps, BOB, "a"), HERALD_EFORBIDDEN);
    CHECK_EQ_INT(pubsub_pending_resend(f.ps, DAVE "/desk", "a"), 0);
    commit(&f);
    CHECK_EQ_INT(REC.n, 1);
    CHECK_EQ_INT(REC.ev[0].kind, PS_EV_APPROVAL_PENDING);
    CHECK_EQ_STR(REC.ev[0].to, DAVE);
    CHECK_EQ_STR(REC.ev[0].jid, BOB);
    CHECK_EQ_STR(REC.ev[0].subid, subid);

    /* Authorization: owners only; then the subscriber learns the decision. */
    rec_reset();
    CHECK_EQ_INT(pubsub_authorize(f.ps, BOB, "a", BOB, subid, true), HERALD_EFORBIDDEN);
    CHECK_EQ_INT(pubsub_authorize(f.ps, ALICE, "a", CAROL, NULL, true), HERALD_ENOTFOUND);
    CHECK_EQ_INT(pubsub_authorize(f.ps, ALICE, "a", BOB, "wrong", true), HERALD_ENOTFOUND);
    CHECK_EQ_INT(pubsub_authorize(f.ps, ALICE, "a", BOB, subid, true), 0);
    CHECK_EQ_INT(REC.n, 0);
    commit(&f);
    CHECK_EQ_STR(rec_summary(), "SUB:a");
    CHECK_EQ_STR(REC.ev[0].to, BOB);
    CHECK_EQ_STR(REC.ev[0].jid, BOB);
    CHECK_EQ_STR(REC.ev[0].subid, subid);
    CHECK_EQ_INT(REC.ev[0].state, SUB_SUBSCRIBED);
    CHECK_EQ_STR(subs_node(&f, ALICE, "a"), BOB ":s:1");
    CHECK_EQ_STR(items_all(&f, BOB, "a", true), "1");
    CHECK_EQ_STR(pending_of(&f, ALICE), "");
    CHECK_EQ_INT(pubsub_authorize(f.ps, ALICE, "a", BOB, subid, true), HERALD_ENOTFOUND);

    /* Denial removes the request. */
    rec_reset();
    CHECK_EQ_INT(pubsub_subscribe(f.ps, CAROL, "a", CAROL "/x", NULL, 0, &sub), 0);
    CHECK_EQ_INT(sub.state, SUB_PENDING);
    commit(&f);
    CHECK_EQ_STR(pending_of(&f, ALICE), "a");
    rec_reset();
    CHECK_EQ_INT(pubsub_authorize(f.ps, DAVE, "a", CAROL "/x", NULL, false), 0);
    commit(&f);
    CHECK_EQ_STR(rec_summary(), "SUB:a");
    CHECK_EQ_STR(REC.ev[0].to, CAROL "/x");
    CHECK_EQ_INT(REC.ev[0].state, SUB_NONE);
    CHECK_EQ_STR(subs_node(&f, ALICE, "a"), BOB ":s:1");
    CHECK_EQ_STR(pending_of(&f, ALICE), "");
    CHECK_EQ_STR(items_all(&f, CAROL, "a", true), "ERR-28");

    /* Affiliated entities subscribe at once. */
    CHECK_EQ_INT(pubsub_owner_set_affiliation(f.ps, ALICE, "a", ERIN, AFF_MEMBER), 0);
    CHECK_EQ_INT(pubsub_subscribe(f.ps, ERIN, "a", ERIN, NULL, 0, &sub), 0);
    CHECK_EQ_INT(sub.state, SUB_SUBSCRIBED);
    commit(&f);

    /* Pending requests survive a restart. */
    CHECK_EQ_INT(subscribe(&f, CAROL, "other", CAROL, NULL, 0), 0);
    commit(&f);
    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_STR(pending_of(&f, ALICE), "other");
    CHECK_EQ_STR(subs_node(&f, ALICE, "other"), CAROL ":p:1");
    fx_end(&f);
}

static void test_access_presence(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    struct ps_field pr[] = {FIELD("pubsub#access_model", "presence")};
    CHECK_EQ_INT(create(&f, ALICE "/home", "p", pr, 1), 0);
    CHECK_EQ_INT(publish(&f, ALICE, "p", "1", NULL), 0);
    commit(&f);
    CHECK_EQ_INT(subscribe(&f, BOB "/phone", "p", BOB "/phone", NULL, 0),
                 HERALD_EPRESENCE_REQUIRED);
    CHECK(PRES.calls > 0);
    /* The hook is asked with bare JIDs. */
    CHECK_EQ_STR(PRES.last_owner, ALICE);
    CHECK_EQ_STR(PRES.last_contact, BOB);
    CHECK_EQ_STR(items_all(&f, BOB, "p", true), "ERR-31");
    struct ps_node_info info;
    CHECK_EQ_INT(pubsub_node_get(f.ps, BOB, "p", &info), 0); /* listed, not readable */
    presence_allow(ALICE, BOB);
    CHECK_EQ_STR(items_all(&f, BOB "/phone", "p", true), "1");
    CHECK_EQ_INT(subscribe(&f, BOB "/phone", "p", BOB "/phone", NULL, 0), 0);
    commit(&f);
    CHECK_EQ_STR(subs_node(&f, ALICE, "p"), BOB "/phone:s:1");
    /* The owner itself needs no hook. */
    int calls = PRES.calls;
    CHECK_EQ_STR(items_all(&f, ALICE, "p", true), "1");
    CHECK_EQ_INT(PRES.calls, calls);
    CHECK_EQ_STR(items_all(&f, CAROL, "p", true), "ERR-31");
    fx_end(&f);
}

/* ---- subscription options --------------------------------------------------- */

static void test_subscription_options(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    CHECK_EQ_INT(create(&f, ALICE, "n", NULL, 0), 0);
    commit(&f);
    static const char *const bad_values[] = {"perhaps", "", "2"};
    for (size_t i = 0; i < 3; i++) {
        struct ps_field o[] = {FIELD("pubsub#deliver", bad_values[i])};
        CHECK_EQ_INT(subscribe(&f, BOB, "n", BOB, o, 1), HERALD_EINVALID_OPTIONS);
    }
    struct ps_field unknown[] = {FIELD("pubsub#include_body", "1")};
    CHECK_EQ_INT(subscribe(&f, BOB, "n", BOB, unknown, 1), HERALD_EINVALID_OPTIONS);
    struct ps_field mixed[] = {FIELD("pubsub#deliver", "0"), FIELD("x-bogus", "1")};
    CHECK_EQ_INT(subscribe(&f, BOB, "n", BOB, mixed, 2), HERALD_EINVALID_OPTIONS);
    struct ps_field two_values = {"pubsub#deliver", (const char *const[]){"1", "0"}, 2};
    CHECK_EQ_INT(subscribe(&f, BOB, "n", BOB, &two_values, 1), HERALD_EINVALID_OPTIONS);
    commit(&f);
    CHECK_EQ_STR(subs_node(&f, ALICE, "n"), "");
    CHECK_EQ_STR(subs_own(&f, BOB, NULL), "");
    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_STR(subs_node(&f, ALICE, "n"), "");

    /* deliver=false is kept, and a configure without the field keeps it. */
    struct ps_field off[] = {FIELD("pubsub#deliver", "false")};
    struct ps_subscription sub;
    CHECK_EQ_INT(pubsub_subscribe(f.ps, BOB, "n", BOB, off, 1, &sub), 0);
    CHECK(!sub.deliver);
    CHECK_EQ_INT(sub.state, SUB_SUBSCRIBED);
    char subid[PS_SUBID_MAX + 1];
    copy_str(subid, sizeof(subid), sub.subid);
    commit(&f);
    CHECK_EQ_STR(subs_own(&f, BOB, "n"), BOB ":s:0");
    CHECK_EQ_INT(pubsub_subscription_configure(f.ps, BOB, "n", BOB, NULL, NULL, 0), 0);
    commit(&f);
    CHECK_EQ_STR(subs_own(&f, BOB, "n"), BOB ":s:0");
    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_STR(subs_own(&f, BOB, "n"), BOB ":s:0");
    /* A bad value changes nothing. */
    struct ps_field bad[] = {FIELD("pubsub#deliver", "perhaps")};
    CHECK_EQ_INT(pubsub_subscription_configure(f.ps, BOB, "n", BOB, subid, bad, 1),
                 HERALD_EINVALID_OPTIONS);
    CHECK_EQ_INT(pubsub_subscription_configure(f.ps, BOB, "n", BOB, subid, unknown, 1),
                 HERALD_EINVALID_OPTIONS);
    commit(&f);
    CHECK_EQ_STR(subs_own(&f, BOB, "n"), BOB ":s:0");
    struct ps_field on[] = {FIELD("pubsub#deliver", "1")};
    CHECK_EQ_INT(pubsub_subscription_configure(f.ps, BOB, "n", BOB, subid, on, 1), 0);
    commit(&f);
    CHECK_EQ_STR(subs_own(&f, BOB, "n"), BOB ":s:1");
    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_STR(subs_own(&f, BOB, "n"), BOB ":s:1");
    struct ps_subscription got;
    CHECK_EQ_INT(pubsub_subscription_get(f.ps, BOB, "n", BOB, NULL, &got), 0);
    CHECK_EQ_STR(got.subid, subid);
    CHECK(got.deliver);

    /* Naming rules (§6.2, §6.3): other entity, no subscription, subid. */
    CHECK_EQ_INT(pubsub_subscription_configure(f.ps, BOB, "n", BOB, "nope", on, 1),
                 HERALD_EINVALID_SUBID);
    CHECK_EQ_INT(pubsub_subscription_configure(f.ps, CAROL, "n", CAROL, NULL, on, 1),
                 HERALD_ENOT_SUBSCRIBED);
    CHECK_EQ_INT(pubsub_subscription_get(f.ps, CAROL, "n", BOB, NULL, &got), HERALD_EFORBIDDEN);
    CHECK_EQ_INT(subscribe(&f, BOB, "n", BOB, NULL, 0), 0); /* a second subscription */
    commit(&f);
    CHECK_EQ_INT(pubsub_subscription_get(f.ps, BOB, "n", BOB, NULL, &got), HERALD_ESUBID_REQUIRED);
    CHECK_EQ_INT(pubsub_unsubscribe(f.ps, BOB, "n", BOB, NULL), HERALD_ESUBID_REQUIRED);
    CHECK_EQ_INT(pubsub_unsubscribe(f.ps, CAROL, "n", BOB, subid), HERALD_EFORBIDDEN);
    CHECK_EQ_INT(pubsub_unsubscribe(f.ps, BOB, "n", BOB, subid), 0);
    commit(&f);
    CHECK_EQ_INT(pubsub_subscription_get(f.ps, BOB, "n", BOB, NULL, &got), 0);
    CHECK(strcmp(got.subid, subid) != 0);
    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_STR(subs_own(&f, BOB, NULL), BOB ":s:1");
    fx_end(&f);
}

/* ---- recipients ------------------------------------------------------------- */

static void test_recipients(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    struct ps_field coll[] = {FIELD("pubsub#node_type", "collection")};
    struct ps_field child[] = {FIELD("pubsub#collection", "top")};
    struct ps_field child2[] = {FIELD("pubsub#collection", "mid"),
                                FIELD("pubsub#node_type", "leaf")};
    struct ps_field midcfg[] = {FIELD("pubsub#node_type", "collection"),
                                FIELD("pubsub#collection", "top")};
    CHECK_EQ_INT(create(&f, ALICE, "top", coll, 1), 0);
    CHECK_EQ_INT(create(&f, ALICE, "mid", midcfg, 2), 0);
    CHECK_EQ_INT(create(&f, ALICE, "leaf", child2, 2), 0);
    CHECK_EQ_INT(create(&f, ALICE, "direct", child, 1), 0);
    struct ps_field nocoll[] = {FIELD("pubsub#collection", "nope")};
    CHECK_EQ_INT(create(&f, ALICE, "orphan", nocoll, 1), HERALD_ENOTFOUND);
    struct ps_field leafparent[] = {FIELD("pubsub#collection", "direct")};
    CHECK_EQ_INT(create(&f, ALICE, "orphan", leafparent, 1), HERALD_ENOTACCEPTABLE);
    commit(&f);
    CHECK_EQ_STR(nodes_of(&f, BOB, "top"), "direct,mid");
    CHECK_EQ_STR(nodes_of(&f, BOB, "mid"), "leaf");

    struct ps_field off[] = {FIELD("pubsub#deliver", "0")};
    struct ps_field on[] = {FIELD("pubsub#deliver", "1")};
    CHECK_EQ_INT(subscribe(&f, BOB, "leaf", BOB, NULL, 0), 0);
    CHECK_EQ_INT(subscribe(&f, CAROL, "leaf", CAROL, off, 1), 0);  /* deliver=false */
    CHECK_EQ_INT(subscribe(&f, DAVE, "leaf", DAVE, NULL, 0), 0);
    CHECK_EQ_INT(subscribe(&f, DAVE, "leaf", DAVE, on, 1), 0);     /* a second one */
    CHECK_EQ_INT(subscribe(&f, DAVE, "leaf", DAVE "/r", NULL, 0), 0); /* another JID */
    CHECK_EQ_INT(subscribe(&f, ERIN, "top", ERIN, NULL, 0), 0);
    CHECK_EQ_INT(subscribe(&f, BOB, "mid", BOB, NULL, 0), 0);
    commit(&f);

    REC.with_recipients = true;
    CHECK_EQ_INT(publish(&f, ALICE, "leaf", "1", NULL), 0);
    CHECK_EQ_INT(publish(&f, ALICE, "direct", "1", NULL), 0);
    commit(&f);
    CHECK_EQ_INT(REC.n, 2);
    CHECK_EQ_STR(REC.ev[0].recipients,
                 BOB "*1;" DAVE "*2;" DAVE "/r*1;" BOB "*1@mid;" ERIN "*1@top");
    CHECK_EQ_STR(REC.ev[1].recipients, ERIN "*1@top");

    /* Turning delivery off removes a JID; a configure keeps the rest. */
    rec_reset();
    REC.with_recipients = true;
    struct ps_subscription got;
    struct subs_seen w;
    memset(&w, 0, sizeof(w));
    CHECK_EQ_INT(pubsub_subscriptions_own(f.ps, DAVE, "leaf", subs_cb, &w), 0);
    CHECK_EQ_INT(w.n, 3);
    CHECK_EQ_INT(pubsub_subscription_configure(f.ps, DAVE, "leaf", DAVE, w.subids[0], off, 1), 0);
    CHECK_EQ_INT(pubsub_subscription_get(f.ps, DAVE, "leaf", DAVE, w.subids[1], &got), 0);
    CHECK(got.deliver);
    CHECK_EQ_INT(publish(&f, ALICE, "leaf", "2", NULL), 0);
    commit(&f);
    CHECK_EQ_STR(REC.ev[0].recipients,
                 BOB "*1;" DAVE "*1;" DAVE "/r*1;" BOB "*1@mid;" ERIN "*1@top");

    /* A JID with two subscriptions to a collection: one call too. */
    rec_reset();
    REC.with_recipients = true;
    CHECK_EQ_INT(subscribe(&f, ERIN, "top", ERIN, NULL, 0), 0);
    CHECK_EQ_INT(publish(&f, ALICE, "direct", "2", NULL), 0);
    commit(&f);
    CHECK_EQ_STR(REC.ev[REC.n - 1].recipients, ERIN "*2@top");

    /* Pending subscribers are no recipients. */
    struct ps_field auth[] = {FIELD("pubsub#access_model", "authorize")};
    CHECK_EQ_INT(create(&f, ALICE, "auth", auth, 1), 0);
    CHECK_EQ_INT(subscribe(&f, BOB, "auth", BOB, NULL, 0), 0);
    commit(&f);
    rec_reset();
    REC.with_recipients = true;
    CHECK_EQ_INT(publish(&f, ALICE, "auth", "1", NULL), 0);
    commit(&f);
    CHECK_EQ_STR(rec_summary(), "PUB:auth:1");
    CHECK_EQ_STR(REC.ev[0].recipients, "");

    /* A deleted node's event reaches its own subscribers (not the
     * collection's), and its children leave the collection. */
    rec_reset();
    REC.with_recipients = true;
    CHECK_EQ_INT(pubsub_delete(f.ps, ALICE, "leaf", NULL), 0);
    CHECK_EQ_INT(pubsub_delete(f.ps, ALICE, "top", NULL), 0);
    commit(&f);
    CHECK_EQ_STR(rec_summary(), "DEL:leaf,DEL:top");
    CHECK_EQ_STR(REC.ev[0].recipients, BOB "*1;" DAVE "*1;" DAVE "/r*1");
    CHECK_EQ_STR(REC.ev[1].recipients, ERIN "*2");
    struct ps_config c;
    CHECK_EQ_INT(pubsub_config_get(f.ps, ALICE, "mid", &c), 0);
    CHECK_EQ_STR(c.collection, "");
    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_INT(pubsub_config_get(f.ps, ALICE, "mid", &c), 0);
    CHECK_EQ_STR(c.collection, "");
    CHECK_EQ_INT(pubsub_config_get(f.ps, ALICE, "direct", &c), 0);
    CHECK_EQ_STR(c.collection, "");
    fx_end(&f);
}

/* ---- send_last_published_item ---------------------------------------------- */

static void test_send_last_on_sub(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    struct ps_field sl[] = {FIELD("pubsub#send_last_published_item", "on_sub")};
    CHECK_EQ_INT(create(&f, ALICE, "sl", sl, 1), 0);
    CHECK_EQ_INT(create(&f, ALICE, "never", NULL, 0), 0);
    CHECK_EQ_INT(create(&f, ALICE, "empty", sl, 1), 0);
    CHECK_EQ_INT(publish(&f, ALICE, "sl", "old", NULL), 0);
    CHECK_EQ_INT(publish(&f, ALICE, "sl", "new", NULL), 0);
    CHECK_EQ_INT(publish(&f, ALICE, "never", "x", NULL), 0);
    commit(&f);
    rec_reset();
    CHECK_EQ_INT(subscribe(&f, BOB, "sl", BOB "/phone", NULL, 0), 0);
    CHECK_EQ_INT(subscribe(&f, BOB, "never", BOB, NULL, 0), 0);
    CHECK_EQ_INT(subscribe(&f, BOB, "empty", BOB, NULL, 0), 0);
    CHECK_EQ_INT(REC.n, 0);
    commit(&f);
    CHECK_EQ_STR(rec_summary(), "LAST:sl:new");
    CHECK_EQ_STR(REC.ev[0].to, BOB "/phone");
    CHECK_EQ_INT(REC.ev[0].seq, 2);
    CHECK_EQ_STR(REC.ev[0].publisher, ALICE);
    const char *want = "<entry xmlns='urn:test'>new</entry>";
    CHECK_EQ_MEM(REC.ev[0].payload, REC.ev[0].payload_len, want, strlen(want));

    /* Published and subscribed in the same turn: the new item is the last. */
    rec_reset();
    CHECK_EQ_INT(publish(&f, ALICE, "sl", "newest", NULL), 0);
    CHECK_EQ_INT(subscribe(&f, CAROL, "sl", CAROL, NULL, 0), 0);
    commit(&f);
    CHECK_EQ_STR(rec_summary(), "PUB:sl:newest,LAST:sl:newest");
    CHECK_EQ_STR(REC.ev[1].to, CAROL);
    fx_end(&f);
}

/* ---- state across restarts ----------------------------------------------- */

static void test_persist_reopen(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    struct ps_field cfg[] = {FIELD("pubsub#max_items", "4"), FIELD("pubsub#title", "Persisted"),
                             FIELD("pubsub#access_model", "whitelist")};
    CHECK_EQ_INT(create(&f, ALICE, "p", cfg, 3), 0);
    CHECK_EQ_INT(create(&f, ALICE, "gone", NULL, 0), 0);
    CHECK_EQ_INT(pubsub_owner_set_affiliation(f.ps, ALICE, "p", BOB, AFF_PUBLISHER), 0);
    CHECK_EQ_INT(pubsub_owner_set_affiliation(f.ps, ALICE, "p", CAROL, AFF_MEMBER), 0);
    for (int i = 1; i <= 6; i++) {
        char id[8];
        snprintf(id, sizeof(id), "i%d", i);
        CHECK_EQ_INT(publish(&f, i % 2 ? ALICE : BOB, "p", id, NULL), 0);
    }
    struct ps_field off[] = {FIELD("pubsub#deliver", "0")};
    CHECK_EQ_INT(subscribe(&f, CAROL, "p", CAROL "/a", off, 1), 0);
    CHECK_EQ_INT(subscribe(&f, BOB, "p", BOB, NULL, 0), 0);
    struct ps_node_info info;
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "gone", &info), 0);
    uint64_t gone_id = info.id;
    CHECK_EQ_INT(pubsub_delete(f.ps, ALICE, "gone", NULL), 0);
    commit(&f);
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "p", &info), 0);
    uint64_t p_id = info.id;
    uint64_t created = info.created;

    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_INT(pubsub_node_count(f.ps), 1);
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "p", &info), 0);
    CHECK_EQ_INT(info.id, p_id);
    CHECK_EQ_INT(info.created, created);
    CHECK_EQ_INT(info.item_count, 4);
    CHECK_EQ_INT(info.last_seq, 6);
    CHECK_EQ_INT(info.config.max_items, 4);
    CHECK_EQ_STR(info.config.title, "Persisted");
    CHECK_EQ_INT(info.config.access_model, PS_ACCESS_WHITELIST);
    CHECK_EQ_INT(pubsub_node_get(f.ps, DAVE, "p", &info), HERALD_ENOTFOUND);
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "gone", &info), HERALD_ENOTFOUND);
    CHECK_EQ_STR(items_all(&f, CAROL, "p", true), "i6,i5,i4,i3");
    CHECK_EQ_STR(affs_node(&f, ALICE, "p"), ALICE "=1," BOB "=2," CAROL "=4");
    CHECK_EQ_STR(affs_node(&f, BOB, "p"), "ERR-8");
    struct names own;
    memset(&own, 0, sizeof(own));
    CHECK_EQ_INT(pubsub_affiliations_own(f.ps, BOB "/r", NULL, aff_cb, &own), 0);
    CHECK_EQ_STR(names_join(&own), "p=2");
    memset(&own, 0, sizeof(own));
    CHECK_EQ_INT(pubsub_affiliations_own(f.ps, DAVE, NULL, aff_cb, &own), 0);
    CHECK_EQ_INT(own.n, 0);
    CHECK_EQ_INT(pubsub_affiliations_own(f.ps, BOB, "nope", aff_cb, &own), HERALD_ENOTFOUND);
    CHECK_EQ_STR(subs_node(&f, ALICE, "p"), BOB ":s:1;" CAROL "/a:s:0");
    struct ps_published pp;
    CHECK_EQ_INT(publish(&f, BOB, "p", "i7", &pp), 0);
    CHECK_EQ_INT(pp.seq, 7);
    CHECK_EQ_INT(publish(&f, BOB, "p", "i4", &pp), 0);
    CHECK(pp.replaced);
    CHECK_EQ_INT(create(&f, ALICE, "gone", NULL, 0), 0);
    commit(&f);
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "gone", &info), 0);
    CHECK(info.id > gone_id && info.id > p_id); /* never reused */
    CHECK_EQ_INT(pubsub_publish(f.ps, DAVE, &(struct ps_publish){.node = "p", .has_item = true,
                                                               .payload = "<x/>",
                                                               .payload_len = 4},
                                &pp),
                 HERALD_EFORBIDDEN);
    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_STR(items_all(&f, ALICE, "p", true), "i4,i7,i6,i5");
    fx_end(&f);
}

/* ---- contained failures ---------------------------------------------------- */

/* Without a savepoint (the map far from full, and a fault that does not
 * force one: ":direct"), a write failing after others of its operation
 * loses the whole turn: A, B and C all fail or are rolled back, no event
 * goes out, memory is reloaded at the commit, and the next turn works. */
static void test_fault_without_savepoint(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    CHECK_EQ_INT(create(&f, ALICE, "n", NULL, 0), 0);
    commit(&f);
    CHECK(fx_reopen(&f, "item_ids:2:io:direct"));
    rec_reset();
    struct ps_published pa, pb, pc;
    CHECK_EQ_INT(publish(&f, ALICE, "n", "A", &pa), 0);
    CHECK_EQ_INT(publish(&f, ALICE, "n", "B", &pb), HERALD_EIO);
    CHECK_EQ_INT(publish(&f, ALICE, "n", "C", &pc), HERALD_EIO); /* the turn is lost */
    commit(&f);
    CHECK_EQ_INT(REC.n, 0);
    CHECK_EQ_INT(batch_stats(f.b)->failures, 1);
    struct ps_node_info info;
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "n", &info), 0);
    CHECK_EQ_INT(info.item_count, 0); /* reloaded: A was rolled back too */
    CHECK_EQ_STR(items_all(&f, ALICE, "n", true), "");
    CHECK_EQ_INT(publish(&f, ALICE, "n", "D", &pa), 0);
    commit(&f);
    CHECK_EQ_STR(rec_summary(), "PUB:n:D");
    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_STR(items_all(&f, ALICE, "n", true), "D");
    fx_end(&f);
}

/* One turn: A succeeds, B fails on the items write, C succeeds. */
static void test_fault_publish(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    CHECK_EQ_INT(create(&f, ALICE, "n", NULL, 0), 0);
    CHECK_EQ_INT(subscribe(&f, BOB, "n", BOB, NULL, 0), 0);
    commit(&f);
    CHECK(fx_reopen(&f, "items:2:full"));
    rec_reset();
    REC.with_recipients = true;
    struct ps_published pa, pb, pc;
    memset(&pb, 0, sizeof(pb));
    CHECK_EQ_INT(publish(&f, ALICE, "n", "A", &pa), 0);
    CHECK_EQ_INT(publish(&f, ALICE, "n", "B", &pb), HERALD_EFULL);
    CHECK(strstr(pubsub_why(f.ps)->text, "full") != NULL);
    CHECK_EQ_INT(publish(&f, ALICE, "n", "C", &pc), 0);
    CHECK_EQ_INT(pa.seq, 1);
    CHECK_EQ_INT(pc.seq, 2); /* B took no sequence number */
    CHECK_EQ_STR(items_all(&f, ALICE, "n", false), "C,A");
    struct ps_node_info info;
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "n", &info), 0);
    CHECK_EQ_INT(info.item_count, 2);
    CHECK_EQ_INT(info.last_seq, 2);
    CHECK_EQ_INT(REC.n, 0);
    commit(&f);
    CHECK_EQ_INT(batch_stats(f.b)->op_failures, 1);
    CHECK_EQ_INT(batch_stats(f.b)->failures, 0);
    CHECK_EQ_STR(rec_summary(), "PUB:n:A,PUB:n:C");
    CHECK_EQ_INT(REC.ev[0].seq, 1);
    CHECK_EQ_INT(REC.ev[1].seq, 2);
    CHECK_EQ_STR(REC.ev[1].recipients, BOB "*1");
    CHECK_EQ_STR(items_all(&f, ALICE, "n", true), "C,A");

    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_STR(items_all(&f, ALICE, "n", true), "C,A");
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "n", &info), 0);
    CHECK_EQ_INT(info.item_count, 2);
    CHECK_EQ_INT(info.last_seq, 2);
    CHECK_EQ_INT(publish(&f, ALICE, "n", "B", &pb), 0);
    CHECK(!pb.replaced);
    CHECK_EQ_INT(pb.seq, 3);
    commit(&f);

    /* A failing replacement keeps the old version where it was. */
    CHECK(fx_reopen(&f, "item_ids:2:io"));
    rec_reset();
    CHECK_EQ_INT(publish(&f, ALICE, "n", "D", &pa), 0);       /* item_ids write 1 */
    CHECK_EQ_INT(publish(&f, ALICE, "n", "A", &pb), HERALD_EIO); /* item_ids write 2 */
    CHECK_EQ_INT(publish(&f, ALICE, "n", "E", &pc), 0);
    commit(&f);
    CHECK_EQ_STR(rec_summary(), "PUB:n:D,PUB:n:E");
    CHECK_EQ_INT(REC.ev[0].seq, 4);
    CHECK_EQ_INT(REC.ev[1].seq, 5);
    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_STR(items_all(&f, ALICE, "n", true), "E,D,B,C,A");
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "n", &info), 0);
    CHECK_EQ_INT(info.item_count, 5);
    CHECK_EQ_INT(info.last_seq, 5);
    fx_end(&f);
}

/* Subscribe with options failing on the subs write (once a use after free). */
static void test_fault_subscribe(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    struct ps_field sl[] = {FIELD("pubsub#send_last_published_item", "on_sub")};
    CHECK_EQ_INT(create(&f, ALICE, "n", sl, 1), 0);
    CHECK_EQ_INT(publish(&f, ALICE, "n", "last", NULL), 0);
    commit(&f);
    CHECK(fx_reopen(&f, "subs:2:io"));
    rec_reset();
    struct ps_field off[] = {FIELD("pubsub#deliver", "0")};
    struct ps_field on[] = {FIELD("pubsub#deliver", "1")};
    struct ps_subscription out;
    memset(&out, 0, sizeof(out));
    CHECK_EQ_INT(subscribe(&f, BOB, "n", BOB, NULL, 0), 0);
    CHECK_EQ_INT(pubsub_subscribe(f.ps, CAROL, "n", CAROL, off, 1, &out), HERALD_EIO);
    CHECK(out.node == NULL && out.jid == NULL); /* out untouched */
    CHECK_EQ_INT(subscribe(&f, DAVE, "n", DAVE "/x", on, 1), 0);
    CHECK_EQ_STR(subs_node(&f, ALICE, "n"), BOB ":s:1;" DAVE "/x:s:1");
    CHECK_EQ_STR(subs_own(&f, CAROL, NULL), "");
    struct ps_subscription got;
    CHECK_EQ_INT(pubsub_subscription_get(f.ps, CAROL, "n", CAROL, NULL, &got),
                 HERALD_ENOT_SUBSCRIBED);
    CHECK_EQ_INT(REC.n, 0);
    commit(&f);
    CHECK_EQ_STR(rec_summary(), "LAST:n:last,LAST:n:last");
    CHECK_EQ_STR(REC.ev[0].to, BOB);
    CHECK_EQ_STR(REC.ev[1].to, DAVE "/x");
    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_STR(subs_node(&f, ALICE, "n"), BOB ":s:1;" DAVE "/x:s:1");
    CHECK_EQ_STR(subs_own(&f, CAROL, NULL), "");
    /* Carol may subscribe now. */
    CHECK_EQ_INT(subscribe(&f, CAROL, "n", CAROL, off, 1), 0);
    commit(&f);
    CHECK_EQ_STR(subs_own(&f, CAROL, NULL), CAROL ":s:0");

    /* The first subs write of a turn failing, on an authorize node: no
     * approval request for the failed one. */
    struct ps_field auth[] = {FIELD("pubsub#access_model", "authorize")};
    CHECK_EQ_INT(create(&f, ALICE, "auth", auth, 1), 0);
    commit(&f);
    CHECK(fx_reopen(&f, "subs:1:io"));
    rec_reset();
    CHECK_EQ_INT(publish(&f, ALICE, "auth", "1", NULL), 0);
    CHECK_EQ_INT(subscribe(&f, CAROL, "auth", CAROL, off, 1), HERALD_EIO);
    CHECK_EQ_INT(subscribe(&f, DAVE, "auth", DAVE, on, 1), 0);
    CHECK_EQ_STR(subs_node(&f, ALICE, "auth"), DAVE ":p:1");
    commit(&f);
    CHECK_EQ_STR(rec_summary(), "PUB:auth:1,PENDING:auth");
    CHECK_EQ_STR(REC.ev[1].jid, DAVE);
    CHECK_EQ_STR(REC.ev[1].to, ALICE);
    CHECK_EQ_STR(pending_of(&f, ALICE), "auth");
    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_STR(subs_node(&f, ALICE, "auth"), DAVE ":p:1");
    CHECK_EQ_STR(items_all(&f, ALICE, "auth", true), "1");
    /* Carol's failed request is not pending: she may ask. */
    CHECK_EQ_INT(subscribe(&f, CAROL, "auth", CAROL, NULL, 0), 0);
    commit(&f);
    fx_end(&f);
}

/* Unsubscribe, authorize, subscription options and owner changes of
 * subscriptions failing in the middle of a turn. */
static void test_fault_subscription_changes(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    struct ps_field auth[] = {FIELD("pubsub#access_model", "authorize")};
    CHECK_EQ_INT(create(&f, ALICE, "n", NULL, 0), 0);
    CHECK_EQ_INT(create(&f, ALICE, "auth", auth, 1), 0);
    CHECK_EQ_INT(subscribe(&f, BOB, "n", BOB, NULL, 0), 0);
    CHECK_EQ_INT(subscribe(&f, CAROL, "n", CAROL, NULL, 0), 0);
    CHECK_EQ_INT(subscribe(&f, DAVE, "n", DAVE, NULL, 0), 0);
    CHECK_EQ_INT(subscribe(&f, BOB, "auth", BOB, NULL, 0), 0);
    CHECK_EQ_INT(subscribe(&f, CAROL, "auth", CAROL, NULL, 0), 0);
    commit(&f);

    CHECK(fx_reopen(&f, "subs:2:full"));
    rec_reset();
    CHECK_EQ_INT(pubsub_unsubscribe(f.ps, BOB, "n", BOB, NULL), 0);            /* subs 1 */
    CHECK_EQ_INT(pubsub_unsubscribe(f.ps, CAROL, "n", CAROL, NULL), HERALD_EFULL); /* subs 2 */
    CHECK_EQ_INT(pubsub_owner_set_subscription(f.ps, ALICE, "n", DAVE, SUB_NONE), 0); /* 3 */
    CHECK_EQ_STR(subs_node(&f, ALICE, "n"), CAROL ":s:1");
    commit(&f);
    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_STR(subs_node(&f, ALICE, "n"), CAROL ":s:1");

    CHECK(fx_reopen(&f, "subs:1:io"));
    rec_reset();
    struct ps_field off[] = {FIELD("pubsub#deliver", "0")};
    CHECK_EQ_INT(pubsub_authorize(f.ps, ALICE, "auth", BOB, NULL, true), HERALD_EIO); /* 1 */
    CHECK_EQ_INT(pubsub_authorize(f.ps, ALICE, "auth", CAROL, NULL, true), 0);       /* 2 */
    CHECK_EQ_INT(pubsub_subscription_configure(f.ps, CAROL, "n", CAROL, NULL, off, 1), 0);
    CHECK_EQ_STR(subs_node(&f, ALICE, "auth"), BOB ":p:1;" CAROL ":s:1");
    CHECK_EQ_STR(pending_of(&f, ALICE), "auth");
    commit(&f);
    CHECK_EQ_STR(rec_summary(), "SUB:auth");
    CHECK_EQ_STR(REC.ev[0].to, CAROL);
    CHECK_EQ_INT(REC.ev[0].state, SUB_SUBSCRIBED);
    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_STR(subs_node(&f, ALICE, "auth"), BOB ":p:1;" CAROL ":s:1");
    CHECK_EQ_STR(subs_node(&f, ALICE, "n"), CAROL ":s:0");

    /* Subscription options failing keep the old value. */
    CHECK(fx_reopen(&f, "subs:1:full"));
    struct ps_field on[] = {FIELD("pubsub#deliver", "1")};
    CHECK_EQ_INT(pubsub_subscription_configure(f.ps, CAROL, "n", CAROL, NULL, on, 1),
                 HERALD_EFULL);
    CHECK_EQ_STR(subs_node(&f, ALICE, "n"), CAROL ":s:0");
    CHECK_EQ_INT(pubsub_authorize(f.ps, ALICE, "auth", BOB, NULL, false), 0); /* subs 2 */
    commit(&f);
    CHECK_EQ_STR(subs_node(&f, ALICE, "n"), CAROL ":s:0");
    CHECK_EQ_STR(subs_node(&f, ALICE, "auth"), CAROL ":s:1");
    /* The owner's denial failing keeps the request (and announces nothing). */
    CHECK(fx_reopen(&f, "subs:1:io"));
    CHECK_EQ_INT(subscribe(&f, DAVE, "auth", DAVE, NULL, 0), HERALD_EIO);
    CHECK_EQ_INT(subscribe(&f, ERIN, "auth", ERIN, NULL, 0), 0);
    commit(&f);
    CHECK(fx_reopen(&f, "subs:1:io"));
    rec_reset();
    CHECK_EQ_INT(pubsub_authorize(f.ps, ALICE, "auth", ERIN, NULL, false), HERALD_EIO);
    CHECK_EQ_STR(subs_node(&f, ALICE, "auth"), CAROL ":s:1;" ERIN ":p:1");
    commit(&f);
    CHECK_EQ_INT(REC.n, 0);
    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_STR(subs_node(&f, ALICE, "auth"), CAROL ":s:1;" ERIN ":p:1");
    fx_end(&f);
}

/* Affiliation changes: the failed one leaves no record (in memory either)
 * and keeps the subscriptions an outcast would have lost. */
static void test_fault_affiliations(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    CHECK_EQ_INT(create(&f, ALICE, "n", NULL, 0), 0);
    CHECK_EQ_INT(subscribe(&f, CAROL, "n", CAROL "/r", NULL, 0), 0);
    CHECK_EQ_INT(subscribe(&f, DAVE, "n", DAVE, NULL, 0), 0);
    commit(&f);
    CHECK(fx_reopen(&f, "affs:2:full"));
    rec_reset();
    CHECK_EQ_INT(pubsub_owner_set_affiliation(f.ps, ALICE, "n", BOB, AFF_PUBLISHER), 0);
    CHECK_EQ_INT(pubsub_owner_set_affiliation(f.ps, ALICE, "n", CAROL, AFF_OUTCAST),
                 HERALD_EFULL);
    CHECK_EQ_INT(pubsub_owner_set_affiliation(f.ps, ALICE, "n", DAVE, AFF_OUTCAST), 0);
    CHECK_EQ_STR(affs_node(&f, ALICE, "n"), ALICE "=1," BOB "=2," DAVE "=5");
    CHECK_EQ_STR(subs_node(&f, ALICE, "n"), CAROL "/r:s:1");
    struct ps_node_info info;
    CHECK_EQ_INT(pubsub_node_get(f.ps, CAROL, "n", &info), 0);
    CHECK_EQ_INT(info.affiliation, AFF_NONE);
    CHECK_EQ_INT(publish(&f, BOB, "n", "by-bob", NULL), 0);
    commit(&f);
    /* dave, made outcast, is told his subscription is gone (§8.8.4). */
    CHECK_EQ_STR(rec_summary(), "SUB:n,PUB:n:by-bob");
    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_STR(affs_node(&f, ALICE, "n"), ALICE "=1," BOB "=2," DAVE "=5");
    CHECK_EQ_STR(subs_node(&f, ALICE, "n"), CAROL "/r:s:1");
    CHECK_EQ_STR(items_all(&f, CAROL, "n", true), "by-bob");

    /* Changing an existing affiliation failing keeps the old one. */
    CHECK(fx_reopen(&f, "affs:1:io"));
    CHECK_EQ_INT(pubsub_owner_set_affiliation(f.ps, ALICE, "n", BOB, AFF_MEMBER), HERALD_EIO);
    CHECK_EQ_INT(pubsub_owner_set_affiliation(f.ps, ALICE, "n", DAVE, AFF_NONE), 0);
    CHECK_EQ_STR(affs_node(&f, ALICE, "n"), ALICE "=1," BOB "=2");
    CHECK_EQ_INT(publish(&f, BOB, "n", "still", NULL), 0);
    commit(&f);
    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_STR(affs_node(&f, ALICE, "n"), ALICE "=1," BOB "=2");

    /* Creating nodes: the failed one does not exist anywhere. */
    CHECK(fx_reopen(&f, "affs:2:full"));
    rec_reset();
    CHECK_EQ_INT(create(&f, ALICE, "x1", NULL, 0), 0);
    CHECK_EQ_INT(create(&f, ALICE, "x2", NULL, 0), HERALD_EFULL);
    CHECK_EQ_INT(create(&f, ALICE, "x3", NULL, 0), 0);
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "x2", &info), HERALD_ENOTFOUND);
    CHECK_EQ_STR(nodes_of(&f, ALICE, NULL), "n,x1,x3");
    CHECK_EQ_INT(publish(&f, ALICE, "x3", "1", NULL), 0);
    commit(&f);
    CHECK_EQ_STR(rec_summary(), "PUB:x3:1");
    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_STR(nodes_of(&f, ALICE, NULL), "n,x1,x3");
    uint64_t id1 = 0, id3 = 0;
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "x1", &info), 0);
    id1 = info.id;
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "x3", &info), 0);
    id3 = info.id;
    CHECK(id3 > id1);
    CHECK_EQ_STR(items_all(&f, ALICE, "x3", true), "1");
    CHECK_EQ_INT(create(&f, ALICE, "x2", NULL, 0), 0);
    commit(&f);
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "x2", &info), 0);
    CHECK(info.id > id3);
    fx_end(&f);
}

/* Node record writes: delete, configure (with trimming) and purge failing. */
static void test_fault_nodes(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    CHECK_EQ_INT(create(&f, ALICE, "n1", NULL, 0), 0);
    CHECK_EQ_INT(create(&f, ALICE, "n2", NULL, 0), 0);
    CHECK_EQ_INT(publish(&f, ALICE, "n1", "a", NULL), 0);
    CHECK_EQ_INT(subscribe(&f, BOB, "n1", BOB, NULL, 0), 0);
    commit(&f);

    CHECK(fx_reopen(&f, "nodes:3:full"));
    rec_reset();
    REC.with_recipients = true;
    struct ps_field title[] = {FIELD("pubsub#title", "two")};
    CHECK_EQ_INT(publish(&f, ALICE, "n1", "b", NULL), 0);           /* nodes 1 */
    CHECK_EQ_INT(pubsub_configure(f.ps, ALICE, "n2", title, 1), 0);  /* nodes 2 */
    CHECK_EQ_INT(pubsub_delete(f.ps, ALICE, "n1", NULL), HERALD_EFULL); /* nodes 3 */
    CHECK_EQ_INT(publish(&f, ALICE, "n1", "c", NULL), 0);           /* nodes 4 */
    struct ps_node_info info;
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "n1", &info), 0);
    CHECK_EQ_INT(info.item_count, 3);
    CHECK_EQ_STR(subs_node(&f, ALICE, "n1"), BOB ":s:1");
    commit(&f);
    CHECK_EQ_STR(rec_summary(), "PUB:n1:b,CONF:n2,PUB:n1:c");
    CHECK_EQ_STR(REC.ev[2].recipients, BOB "*1");
    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_STR(items_all(&f, ALICE, "n1", true), "c,b,a");
    CHECK_EQ_STR(subs_node(&f, ALICE, "n1"), BOB ":s:1");
    struct ps_config c;
    CHECK_EQ_INT(pubsub_config_get(f.ps, ALICE, "n2", &c), 0);
    CHECK_EQ_STR(c.title, "two");

    /* Configure with trimming failing on the items delete: neither the
     * configuration nor the items change. */
    CHECK(fx_reopen(&f, "items:1:full"));
    rec_reset();
    struct ps_field mi[] = {FIELD("pubsub#max_items", "1")};
    struct ps_field t3[] = {FIELD("pubsub#title", "three")};
    CHECK_EQ_INT(pubsub_configure(f.ps, ALICE, "n2", t3, 1), 0);
    CHECK_EQ_INT(pubsub_configure(f.ps, ALICE, "n1", mi, 1), HERALD_EFULL);
    CHECK_EQ_INT(pubsub_config_get(f.ps, ALICE, "n1", &c), 0);
    CHECK_EQ_INT(c.max_items, 10);
    CHECK_EQ_STR(items_all(&f, ALICE, "n1", false), "c,b,a");
    CHECK_EQ_INT(publish(&f, ALICE, "n1", "d", NULL), 0);
    commit(&f);
    CHECK_EQ_STR(rec_summary(), "CONF:n2,PUB:n1:d");
    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_INT(pubsub_config_get(f.ps, ALICE, "n1", &c), 0);
    CHECK_EQ_INT(c.max_items, 10);
    CHECK_EQ_STR(items_all(&f, ALICE, "n1", true), "d,c,b,a");
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "n1", &info), 0);
    CHECK_EQ_INT(info.item_count, 4);

    /* Purge and retract failing. */
    CHECK(fx_reopen(&f, "item_ids:2:io"));
    rec_reset();
    CHECK_EQ_INT(pubsub_retract(f.ps, ALICE, "n1", "a", true), 0); /* item_ids 1 */
    CHECK_EQ_INT(pubsub_retract(f.ps, ALICE, "n1", "b", true), HERALD_EIO);
    CHECK_EQ_INT(pubsub_purge(f.ps, ALICE, "n2"), 0); /* no items: no item_ids write */
    CHECK_EQ_INT(pubsub_retract(f.ps, ALICE, "n1", "c", true), 0);
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "n1", &info), 0);
    CHECK_EQ_INT(info.item_count, 2);
    commit(&f);
    CHECK_EQ_STR(rec_summary(), "RETR:n1:a,PURGE:n2,RETR:n1:c");
    CHECK(fx_reopen(&f, "items:1:io"));
    rec_reset();
    CHECK_EQ_INT(pubsub_purge(f.ps, ALICE, "n1"), HERALD_EIO);
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "n1", &info), 0);
    CHECK_EQ_INT(info.item_count, 2);
    commit(&f);
    CHECK_EQ_INT(REC.n, 0);
    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_STR(items_all(&f, ALICE, "n1", true), "d,b");
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "n1", &info), 0);
    CHECK_EQ_INT(info.item_count, 2);
    fx_end(&f);
}

/* Collections: cycles refused; deleting a collection whose child record
 * cannot be rewritten leaves both as they were. */
static void test_fault_collection_delete(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    struct ps_field coll[] = {FIELD("pubsub#node_type", "collection")};
    struct ps_field in_top[] = {FIELD("pubsub#collection", "top")};
    struct ps_field midcfg[] = {FIELD("pubsub#node_type", "collection"),
                                FIELD("pubsub#collection", "top")};
    CHECK_EQ_INT(create(&f, ALICE, "top", coll, 1), 0);
    CHECK_EQ_INT(create(&f, ALICE, "mid", midcfg, 2), 0);
    CHECK_EQ_INT(create(&f, ALICE, "k1", in_top, 1), 0);
    CHECK_EQ_INT(create(&f, ALICE, "k2", in_top, 1), 0);
    CHECK_EQ_INT(create(&f, ALICE, "solo", NULL, 0), 0);
    commit(&f);
    /* No cycles, no leaf parents, no self. */
    struct ps_field to_mid[] = {FIELD("pubsub#collection", "mid")};
    struct ps_field to_self[] = {FIELD("pubsub#collection", "top")};
    CHECK_EQ_INT(pubsub_configure(f.ps, ALICE, "top", to_mid, 1), HERALD_ENOTACCEPTABLE);
    CHECK_EQ_INT(pubsub_configure(f.ps, ALICE, "top", to_self, 1), HERALD_ENOTACCEPTABLE);
    struct ps_field to_k1[] = {FIELD("pubsub#collection", "k1")};
    CHECK_EQ_INT(pubsub_configure(f.ps, ALICE, "solo", to_k1, 1), HERALD_ENOTACCEPTABLE);
    commit(&f);
    CHECK_EQ_STR(nodes_of(&f, ALICE, "top"), "k1,k2,mid");

    /* Deleting top rewrites its children's records: the third nodes write
     * (top's delete is the first) fails, and the whole delete with it. */
    CHECK(fx_reopen(&f, "nodes:3:full"));
    rec_reset();
    CHECK_EQ_INT(pubsub_delete(f.ps, ALICE, "top", NULL), HERALD_EFULL);
    CHECK_EQ_INT(pubsub_delete(f.ps, ALICE, "solo", NULL), 0);
    struct ps_config c;
    CHECK_EQ_INT(pubsub_config_get(f.ps, ALICE, "k1", &c), 0);
    CHECK_EQ_STR(c.collection, "top");
    CHECK_EQ_STR(nodes_of(&f, ALICE, "top"), "k1,k2,mid");
    commit(&f);
    CHECK_EQ_STR(rec_summary(), "DEL:solo");
    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_STR(nodes_of(&f, ALICE, NULL), "k1,k2,mid,top");
    CHECK_EQ_STR(nodes_of(&f, ALICE, "top"), "k1,k2,mid");
    CHECK_EQ_INT(pubsub_delete(f.ps, ALICE, "top", NULL), 0);
    commit(&f);
    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_STR(nodes_of(&f, ALICE, NULL), "k1,k2,mid");
    CHECK_EQ_INT(pubsub_config_get(f.ps, ALICE, "mid", &c), 0);
    CHECK_EQ_STR(c.collection, "");
    fx_end(&f);
}

/* The owner creating a subscription for someone (§8.8.2) failing. */
static void test_fault_owner_subscription(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    CHECK_EQ_INT(create(&f, ALICE, "n", NULL, 0), 0);
    commit(&f);
    CHECK(fx_reopen(&f, "subs:2:io"));
    CHECK_EQ_INT(pubsub_owner_set_subscription(f.ps, BOB, "n", CAROL, SUB_SUBSCRIBED),
                 HERALD_EFORBIDDEN);
    CHECK_EQ_INT(pubsub_owner_set_subscription(f.ps, ALICE, "n", BOB, SUB_SUBSCRIBED), 0);
    CHECK_EQ_INT(pubsub_owner_set_subscription(f.ps, ALICE, "n", CAROL, SUB_SUBSCRIBED),
                 HERALD_EIO);
    CHECK_EQ_INT(pubsub_owner_set_subscription(f.ps, ALICE, "n", DAVE "/x", SUB_PENDING), 0);
    CHECK_EQ_STR(subs_node(&f, ALICE, "n"), BOB ":s:1;" DAVE "/x:p:1");
    commit(&f);
    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_STR(subs_node(&f, ALICE, "n"), BOB ":s:1;" DAVE "/x:p:1");
    CHECK_EQ_STR(pending_of(&f, ALICE), "n");
    CHECK_EQ_INT(pubsub_owner_set_subscription(f.ps, ALICE, "n", DAVE "/x", SUB_SUBSCRIBED), 0);
    commit(&f);
    CHECK_EQ_STR(subs_node(&f, ALICE, "n"), BOB ":s:1;" DAVE "/x:s:1");
    fx_end(&f);
}

/* item_expire: old items go once pubsub_expire runs; a node whose expiry
 * fails keeps its items, and the other nodes still expire. */
static void test_expire(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    struct ps_field ex[] = {FIELD("pubsub#item_expire", "1")};
    CHECK_EQ_INT(create(&f, ALICE, "e1", ex, 1), 0);
    CHECK_EQ_INT(create(&f, ALICE, "e2", ex, 1), 0);
    CHECK_EQ_INT(create(&f, ALICE, "e3", ex, 1), 0);
    CHECK_EQ_INT(create(&f, ALICE, "keep", NULL, 0), 0);
    CHECK_EQ_INT(publish(&f, ALICE, "e1", "old", NULL), 0);
    CHECK_EQ_INT(publish(&f, ALICE, "e2", "old", NULL), 0);
    CHECK_EQ_INT(publish(&f, ALICE, "e3", "old", NULL), 0);
    CHECK_EQ_INT(publish(&f, ALICE, "keep", "old", NULL), 0);
    commit(&f);
    usleep(1200 * 1000);
    CHECK(fx_reopen(&f, "items:2:io"));
    CHECK_EQ_INT(publish(&f, ALICE, "e1", "new", NULL), 0); /* items write 1 */
    commit(&f);
    /* e1's expiry is items write 2 and fails; e2 and e3 expire (the walk
     * goes on in name order, as loaded from LMDB). */
    rec_reset();
    pubsub_expire(f.ps);
    commit(&f);
    CHECK_EQ_INT(REC.n, 0); /* expiry announces nothing */
    CHECK_EQ_STR(items_all(&f, ALICE, "e1", true), "new,old");
    CHECK_EQ_STR(items_all(&f, ALICE, "e2", true), "");
    CHECK_EQ_STR(items_all(&f, ALICE, "e3", true), "");
    CHECK_EQ_STR(items_all(&f, ALICE, "keep", true), "old");
    struct ps_node_info info;
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "e1", &info), 0);
    CHECK_EQ_INT(info.item_count, 2);
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "e2", &info), 0);
    CHECK_EQ_INT(info.item_count, 0);
    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_STR(items_all(&f, ALICE, "e1", true), "new,old");
    CHECK_EQ_STR(items_all(&f, ALICE, "e2", true), "");
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "e3", &info), 0);
    CHECK_EQ_INT(info.item_count, 0);
    pubsub_expire(f.ps);
    commit(&f);
    CHECK_EQ_STR(items_all(&f, ALICE, "e1", true), "new");
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "e1", &info), 0);
    CHECK_EQ_INT(info.item_count, 1);
    fx_end(&f);
}

/* The commit itself failing (the data file may not grow: RLIMIT_FSIZE makes
 * LMDB's page writes fail with EFBIG): every change of the turn is lost, no
 * event is emitted, and the rollback hook reloads the index from LMDB. */
static void test_commit_failure_reloads(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    CHECK_EQ_INT(create(&f, ALICE, "n", NULL, 0), 0);
    CHECK_EQ_INT(create(&f, ALICE, "d", NULL, 0), 0);
    CHECK_EQ_INT(publish(&f, ALICE, "n", "a", NULL), 0);
    CHECK_EQ_INT(subscribe(&f, BOB, "n", BOB, NULL, 0), 0);
    commit(&f);
    rec_reset();

    char path[4200];
    snprintf(path, sizeof(path), "%s/data.mdb", f.dir);
    struct stat st;
    CHECK_EQ_INT(stat(path, &st), 0);
    struct rlimit old, lim;
    CHECK_EQ_INT(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);

    struct ps_field mi[] = {FIELD("pubsub#max_items", "100")};
    CHECK_EQ_INT(pubsub_configure(f.ps, ALICE, "n", mi, 1), 0);
    static char big[3000];
    memset(big, 'p', sizeof(big));
    for (int i = 0; i < 60; i++) {
        char id[16];
        snprintf(id, sizeof(id), "big%d", i);
        CHECK_EQ_INT(publish_len(&f, ALICE, "n", id, big, sizeof(big), NULL), 0);
    }
    CHECK_EQ_INT(create(&f, ALICE, "m", NULL, 0), 0);
    CHECK_EQ_INT(subscribe(&f, CAROL, "n", CAROL, NULL, 0), 0);
    CHECK_EQ_INT(pubsub_delete(f.ps, ALICE, "d", NULL), 0);
    CHECK_EQ_INT(pubsub_node_count(f.ps), 2);
    lim = old;
    lim.rlim_cur = (rlim_t)st.st_size;
    CHECK_EQ_INT(setrlimit(RLIMIT_FSIZE, &lim), 0);
    commit(&f);
    CHECK_EQ_INT(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);

    CHECK_EQ_INT(batch_stats(f.b)->failures, 1);
    CHECK_EQ_INT(REC.n, 0);
    /* Memory is what LMDB holds again. */
    CHECK_EQ_INT(pubsub_node_count(f.ps), 2);
    CHECK_EQ_STR(nodes_of(&f, ALICE, NULL), "d,n");
    CHECK_EQ_STR(items_all(&f, ALICE, "n", false), "a");
    struct ps_node_info info;
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "n", &info), 0);
    CHECK_EQ_INT(info.item_count, 1);
    CHECK_EQ_INT(info.last_seq, 1);
    CHECK_EQ_INT(info.config.max_items, 10);
    CHECK_EQ_STR(subs_node(&f, ALICE, "n"), BOB ":s:1");
    /* And the service goes on. */
    struct ps_published pp;
    CHECK_EQ_INT(publish(&f, ALICE, "n", "b", &pp), 0);
    CHECK_EQ_INT(pp.seq, 2);
    commit(&f);
    CHECK_EQ_STR(rec_summary(), "PUB:n:b");
    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_STR(items_all(&f, ALICE, "n", true), "b,a");
    CHECK_EQ_STR(nodes_of(&f, ALICE, NULL), "d,n");
    fx_end(&f);
}

/* Issue 11 (findings 4 and 2): node names XML 1.0 cannot carry are refused
 * for every front end, and pubsub_publish_allowed is the check
 * pubsub_publish makes before it looks at a payload. */
static void test_node_names_and_publish_allowed(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    static const char *const bad[] = {"a\x01" "b", "\xef\xbf\xbf", "x\xef\xbf\xbe", "\xc0\xaf",
                                      "\xed\xa0\x80", "\xf4\x90\x80\x80", "tab\x1f", "\xc3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_EQ_INT(create(&f, ALICE, bad[i], NULL, 0), HERALD_ENOTACCEPTABLE);
        CHECK(strstr(pubsub_why(f.ps)->text, "XML 1.0") != NULL);
    }
    /* Non-ASCII, astral and the last Char (U+10FFFD) are names. */
    CHECK_EQ_INT(create(&f, ALICE, "caf\xc3\xa9-\xf0\x9f\x98\x80-\xf4\x8f\xbf\xbd", NULL, 0), 0);
    CHECK_EQ_INT(create(&f, ALICE, "news", NULL, 0), 0);
    struct ps_field coll[] = {FIELD("pubsub#node_type", "collection")};
    CHECK_EQ_INT(create(&f, ALICE, "coll", coll, 1), 0);
    commit(&f);
    CHECK_EQ_INT(pubsub_node_count(f.ps), 3);

    CHECK_EQ_INT(pubsub_publish_allowed(f.ps, ALICE "/r", "news"), 0);
    CHECK_EQ_INT(pubsub_publish_allowed(f.ps, BOB, "news"), HERALD_EFORBIDDEN);
    CHECK_EQ_INT(publish(&f, BOB, "news", "1", NULL), HERALD_EFORBIDDEN);
    CHECK_EQ_INT(pubsub_publish_allowed(f.ps, ALICE, "nope"), HERALD_ENOTFOUND);
    CHECK_EQ_INT(pubsub_publish_allowed(f.ps, ALICE, NULL), HERALD_ENODEID_REQUIRED);
    CHECK_EQ_INT(pubsub_publish_allowed(f.ps, ALICE, "coll"), HERALD_EUNSUPPORTED);
    struct ps_field open_model[] = {FIELD("pubsub#publish_model", "open")};
    CHECK_EQ_INT(pubsub_configure(f.ps, ALICE, "news", open_model, 1), 0);
    CHECK_EQ_INT(pubsub_publish_allowed(f.ps, BOB, "news"), 0);
    CHECK_EQ_INT(pubsub_owner_set_affiliation(f.ps, ALICE, "news", BOB, AFF_OUTCAST), 0);
    CHECK_EQ_INT(pubsub_publish_allowed(f.ps, BOB, "news"), HERALD_EFORBIDDEN);
    CHECK_EQ_INT(publish(&f, BOB, "news", "1", NULL), HERALD_EFORBIDDEN);
    commit(&f);

    /* auto_create: a missing node needs what creating it needs. */
    f.auto_create = true;
    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_INT(pubsub_publish_allowed(f.ps, BOB, "fresh"), 0);
    CHECK_EQ_INT(pubsub_publish_allowed(f.ps, BOB, "bad\x02"), HERALD_ENOTACCEPTABLE);
    CHECK_EQ_INT(publish(&f, BOB, "bad\x02", "1", NULL), HERALD_ENOTACCEPTABLE);
    /* A node auto-created as a collection takes no item. */
    struct ps_publish req = {.node = "made-coll", .item_id = "1", .has_item = true,
                             .payload = "<x/>", .payload_len = 4, .options = coll, .noptions = 1};
    struct ps_published out;
    CHECK_EQ_INT(pubsub_publish(f.ps, BOB, &req, &out), HERALD_EUNSUPPORTED);
    CHECK_EQ_INT(publish(&f, BOB, "fresh", "1", NULL), 0);
    commit(&f);
    CHECK_EQ_STR(nodes_of(&f, ALICE, NULL), "caf\xc3\xa9-\xf0\x9f\x98\x80-\xf4\x8f\xbf\xbd,coll,"
                                            "fresh,made-coll,news");
    fx_end(&f);
}

/* ---- issue 11: paging, quota, access changes, collection rights ---- */

/* One page as "name,name|first-last|more|count" (ids as numbers). */
static char PAGE_BUF[1024];
static const char *page_of(struct fx *f, const char *who, const char *parent,
                           struct ps_nodes_query q, struct ps_nodes_page *pg)
{
    struct names nm;
    memset(&nm, 0, sizeof(nm));
    int rc = pubsub_nodes_page(f->ps, who, parent, &q, node_name_cb, &nm, pg);
    if (rc != 0) {
        snprintf(PAGE_BUF, sizeof(PAGE_BUF), "ERR%d", rc);
        return PAGE_BUF;
    }
    size_t len = 0; /* in the page's order (names_join sorts) */
    PAGE_BUF[0] = '\0';
    for (int i = 0; i < nm.n && len < sizeof(PAGE_BUF); i++)
        len += (size_t)snprintf(PAGE_BUF + len, sizeof(PAGE_BUF) - len, "%s%s", i ? "," : "",
                                nm.v[i]);
    if (len < sizeof(PAGE_BUF))
        snprintf(PAGE_BUF + len, sizeof(PAGE_BUF) - len, "|%s|%u", pg->more ? "more" : "end",
                 pg->count);
    return PAGE_BUF;
}

static void test_nodes_paged(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    /* Creation order, not name order. */
    const char *names[] = {"z", "a", "m", "b", "y", "c", "x"};
    for (size_t i = 0; i < 7; i++)
        CHECK_EQ_INT(create(&f, ALICE, names[i], NULL, 0), 0);
    struct ps_field wl[] = {FIELD("pubsub#access_model", "whitelist")};
    CHECK_EQ_INT(pubsub_configure(f.ps, ALICE, "b", wl, 1), 0); /* hidden from bob */
    commit(&f);
    struct ps_nodes_page pg;
    struct ps_nodes_query q = {.max = 3, .count = true};
    CHECK_EQ_STR(page_of(&f, BOB, NULL, q, &pg), "z,a,m|more|6");
    q.after = pg.last;
    CHECK_EQ_STR(page_of(&f, BOB, NULL, q, &pg), "y,c,x|end|6");
    q.after = pg.last;
    CHECK_EQ_STR(page_of(&f, BOB, NULL, q, &pg), "|end|6");
    CHECK_EQ_INT(pg.n, 0);
    q.after = 0;
    CHECK_EQ_STR(page_of(&f, ALICE, NULL, q, &pg), "z,a,m|more|7");
    uint64_t after_m = pg.last;
    /* The cursor's node deleted: the page after it is the same. */
    CHECK_EQ_INT(pubsub_delete(f.ps, ALICE, "m", NULL), 0);
    commit(&f);
    q.after = after_m;
    CHECK_EQ_STR(page_of(&f, ALICE, NULL, q, &pg), "b,y,c|more|6");
    /* Backwards: the last page, then the one before it. */
    struct ps_nodes_query back = {.max = 2, .last_page = true};
    CHECK_EQ_STR(page_of(&f, ALICE, NULL, back, &pg), "c,x|end|0");
    back.last_page = false;
    back.before = pg.first;
    CHECK_EQ_STR(page_of(&f, ALICE, NULL, back, &pg), "b,y|more|0");
    back.before = pg.first;
    CHECK_EQ_STR(page_of(&f, ALICE, NULL, back, &pg), "z,a|more|0");
    back.before = pg.first;
    CHECK_EQ_STR(page_of(&f, ALICE, NULL, back, &pg), "|end|0");
    /* The order survives a reload from storage. */
    CHECK(fx_reopen(&f, NULL));
    q.after = 0;
    q.max = 10;
    CHECK_EQ_STR(page_of(&f, ALICE, NULL, q, &pg), "z,a,b,y,c,x|end|6");
    CHECK_EQ_INT(create(&f, ALICE, "new", NULL, 0), 0);
    CHECK_EQ_STR(page_of(&f, ALICE, NULL, q, &pg), "z,a,b,y,c,x,new|end|7");
    fx_end(&f);
}

static void test_nodes_paged_collection(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    struct ps_field coll[] = {FIELD("pubsub#node_type", "collection")};
    struct ps_field in[] = {FIELD("pubsub#collection", "c")};
    CHECK_EQ_INT(create(&f, ALICE, "c", coll, 1), 0);
    CHECK_EQ_INT(create(&f, ALICE, "k1", in, 1), 0);
    CHECK_EQ_INT(create(&f, ALICE, "out", NULL, 0), 0);
    CHECK_EQ_INT(create(&f, ALICE, "k2", in, 1), 0);
    CHECK_EQ_INT(create(&f, ALICE, "k3", in, 1), 0);
    commit(&f);
    struct ps_nodes_page pg;
    struct ps_nodes_query q = {.max = 2, .count = true};
    CHECK_EQ_STR(page_of(&f, BOB, "c", q, &pg), "k1,k2|more|3");
    q.after = pg.last;
    CHECK_EQ_STR(page_of(&f, BOB, "c", q, &pg), "k3|end|3");
    CHECK_EQ_INT(pg.first_index, 2);
    CHECK_EQ_STR(page_of(&f, BOB, "nope", q, &pg), "ERR-3");
    fx_end(&f);
}

static void test_node_quota(void)
{
    struct fx f;
    FX_MAX_NODES = 2;
    if (!fx_start(&f)) {
        FX_MAX_NODES = 0;
        return;
    }
    CHECK_EQ_INT(create(&f, ALICE, "a1", NULL, 0), 0);
    CHECK_EQ_INT(create(&f, ALICE, "a2", NULL, 0), 0);
    CHECK_EQ_INT(create(&f, ALICE, "a3", NULL, 0), HERALD_EQUOTA);
    CHECK_EQ_INT(create(&f, ALICE, NULL, NULL, 0), HERALD_EQUOTA);
    CHECK_EQ_INT(create(&f, BOB, "b1", NULL, 0), 0);
    /* Ownership given to a full account is refused; to another, counted. */
    CHECK_EQ_INT(pubsub_owner_set_affiliation(f.ps, BOB, "b1", ALICE, AFF_OWNER), HERALD_EQUOTA);
    CHECK_EQ_INT(pubsub_owner_set_affiliation(f.ps, BOB, "b1", CAROL, AFF_OWNER), 0);
    CHECK_EQ_INT(create(&f, CAROL, "c1", NULL, 0), 0);
    CHECK_EQ_INT(create(&f, CAROL, "c2", NULL, 0), HERALD_EQUOTA);
    /* Giving ownership up makes room. */
    CHECK_EQ_INT(pubsub_owner_set_affiliation(f.ps, CAROL, "b1", CAROL, AFF_NONE), 0);
    CHECK_EQ_INT(create(&f, CAROL, "c2", NULL, 0), 0);
    commit(&f);
    /* Counts are rebuilt from storage. */
    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_INT(create(&f, ALICE, "a3", NULL, 0), HERALD_EQUOTA);
    CHECK_EQ_INT(pubsub_delete(f.ps, ALICE, "a1", NULL), 0);
    CHECK_EQ_INT(create(&f, ALICE, "a3", NULL, 0), 0);
    CHECK_EQ_INT(create(&f, ALICE, "a4", NULL, 0), HERALD_EQUOTA);
    commit(&f);
    FX_MAX_NODES = 0;
    fx_end(&f);
}

static void test_access_change_revokes(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    CHECK_EQ_INT(create(&f, ALICE, "n", NULL, 0), 0);
    CHECK_EQ_INT(subscribe(&f, BOB, "n", BOB "/r", NULL, 0), 0);
    CHECK_EQ_INT(subscribe(&f, CAROL, "n", CAROL, NULL, 0), 0);
    CHECK_EQ_INT(subscribe(&f, DAVE, "n", DAVE, NULL, 0), 0);
    CHECK_EQ_INT(pubsub_owner_set_affiliation(f.ps, ALICE, "n", CAROL, AFF_MEMBER), 0);
    commit(&f);
    rec_reset();
    /* Open to presence: dave can see an owner's presence, bob cannot. */
    presence_allow(ALICE, DAVE);
    struct ps_field pr[] = {FIELD("pubsub#access_model", "presence")};
    CHECK_EQ_INT(pubsub_configure(f.ps, ALICE, "n", pr, 1), 0);
    CHECK_EQ_STR(subs_node(&f, ALICE, "n"), CAROL ":s:1;" DAVE ":s:1");
    CHECK_EQ_INT(publish(&f, ALICE, "n", "i1", NULL), 0);
    commit(&f);
    CHECK_EQ_STR(rec_summary(), "SUB:n,CONF:n,PUB:n:i1");
    /* To whitelist: dave goes too; carol (member) stays. */
    rec_reset();
    struct ps_field wl[] = {FIELD("pubsub#access_model", "whitelist")};
    CHECK_EQ_INT(pubsub_configure(f.ps, ALICE, "n", wl, 1), 0);
    commit(&f);
    CHECK_EQ_STR(rec_summary(), "SUB:n,CONF:n");
    CHECK_EQ_STR(subs_node(&f, ALICE, "n"), CAROL ":s:1");
    /* Losing the membership loses the subscription. */
    rec_reset();
    CHECK_EQ_INT(pubsub_owner_set_affiliation(f.ps, ALICE, "n", CAROL, AFF_NONE), 0);
    commit(&f);
    CHECK_EQ_STR(rec_summary(), "SUB:n");
    CHECK_EQ_STR(subs_node(&f, ALICE, "n"), "");
    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_STR(subs_node(&f, ALICE, "n"), "");
    /* A failed change keeps every subscription. */
    struct ps_field op[] = {FIELD("pubsub#access_model", "open")};
    CHECK_EQ_INT(pubsub_configure(f.ps, ALICE, "n", op, 1), 0);
    CHECK_EQ_INT(subscribe(&f, BOB, "n", BOB, NULL, 0), 0);
    commit(&f);
    CHECK(fx_reopen(&f, "subs:1:full"));
    rec_reset();
    CHECK_EQ_INT(pubsub_configure(f.ps, ALICE, "n", wl, 1), HERALD_EFULL);
    commit(&f);
    CHECK_EQ_INT(REC.n, 0);
    CHECK_EQ_STR(subs_node(&f, ALICE, "n"), BOB ":s:1");
    fx_end(&f);
}

static void test_collection_association(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    struct ps_field coll[] = {FIELD("pubsub#node_type", "collection")};
    struct ps_field in[] = {FIELD("pubsub#collection", "c")};
    CHECK_EQ_INT(create(&f, ALICE, "c", coll, 1), 0);
    CHECK_EQ_INT(create(&f, BOB, "intruder", in, 1), HERALD_EFORBIDDEN);
    CHECK_EQ_INT(create(&f, BOB, "leaf", NULL, 0), 0);
    CHECK_EQ_INT(pubsub_configure(f.ps, BOB, "leaf", in, 1), HERALD_EFORBIDDEN);
    /* A publisher of the collection does not qualify either. */
    CHECK_EQ_INT(pubsub_owner_set_affiliation(f.ps, ALICE, "c", BOB, AFF_PUBLISHER), 0);
    CHECK_EQ_INT(pubsub_configure(f.ps, BOB, "leaf", in, 1), HERALD_EFORBIDDEN);
    /* An owner may; a child already in it may be reconfigured by its own
     * owner (the collection does not change). */
    CHECK_EQ_INT(create(&f, ALICE, "kid", in, 1), 0);
    CHECK_EQ_INT(pubsub_owner_set_affiliation(f.ps, ALICE, "kid", BOB, AFF_OWNER), 0);
    struct ps_field title[] = {FIELD("pubsub#title", "t"), FIELD("pubsub#collection", "c")};
    CHECK_EQ_INT(pubsub_configure(f.ps, BOB, "kid", title, 2), 0);
    commit(&f);
    CHECK_EQ_STR(nodes_of(&f, BOB, "c"), "kid");
    fx_end(&f);
}

/* Finding 11: at the ceiling, adding data stops at the reserve; deleting,
 * purging and trimming still work, and then adding works again. */
static void test_full_store_deletes(void)
{
    struct fx f;
    FX_MAP_MB = 1;
    if (!fx_start(&f)) {
        FX_MAP_MB = 0;
        return;
    }
    struct ps_field many[] = {FIELD("pubsub#max_items", "100")};
    const char *nodes[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(create(&f, ALICE, nodes[i], many, 1), 0);
    commit(&f);
    char big[3000];
    memset(big, 'x', sizeof(big));
    memcpy(big, "<e>", 3);
    memcpy(big + sizeof(big) - 4, "</e>", 4);
    int rc = 0, acked = 0;
    for (int i = 0; i < 1000 && rc == 0; i++) {
        char id[16];
        snprintf(id, sizeof(id), "i%d", i);
        rc = publish_len(&f, ALICE, nodes[i % 3], id, big, sizeof(big), NULL);
        acked += rc == 0;
        commit(&f); /* one turn per publish: the reserve, not the turn estimate, stops it */
    }
    CHECK_EQ_INT(rc, HERALD_EFULL);
    CHECK(acked > 100);
    CHECK_EQ_INT(create(&f, ALICE, "d", NULL, 0), HERALD_EFULL);
    struct ps_field fewer[] = {FIELD("pubsub#max_items", "1")};
    CHECK_EQ_INT(pubsub_configure(f.ps, ALICE, "a", fewer, 1), 0);
    commit(&f);
    CHECK_EQ_INT(pubsub_purge(f.ps, ALICE, "b"), 0);
    commit(&f);
    CHECK_EQ_INT(pubsub_delete(f.ps, ALICE, "c", NULL), 0);
    commit(&f);
    CHECK_EQ_INT(publish_len(&f, ALICE, "a", "again", big, sizeof(big), NULL), 0);
    CHECK_EQ_INT(create(&f, ALICE, "d", NULL, 0), 0);
    commit(&f);
    CHECK(fx_reopen(&f, NULL));
    CHECK_EQ_STR(items_all(&f, ALICE, "a", true), "again");
    CHECK_EQ_STR(items_all(&f, ALICE, "b", true), "");
    CHECK_EQ_STR(nodes_of(&f, ALICE, NULL), "a,b,d");
    FX_MAP_MB = 0;
    fx_end(&f);
}

struct durable_seen {
    char node[64];
    uint64_t node_id;
    uint64_t cursor;
    unsigned n;
};

static void durable_cb(void *ud, const char *node, uint64_t node_id, const char *jid,
                       uint64_t cursor)
{
    struct durable_seen *d = ud;
    (void)jid;
    copy_str(d->node, sizeof(d->node), node);
    d->node_id = node_id;
    d->cursor = cursor;
    d->n++;
}

/* herald#durable: the option is stored with the subscription, its cursor
 * starts at the node's newest item, moves only forward, survives a
 * reopen, and an older one-byte options record still loads (not durable). */
static void test_durable_cursor(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    CHECK_EQ_INT(create(&f, ALICE, "feed", NULL, 0), 0);
    CHECK_EQ_INT(create(&f, ALICE, "plain", NULL, 0), 0);
    CHECK_EQ_INT(publish(&f, ALICE, "feed", "a", NULL), 0);
    CHECK_EQ_INT(publish(&f, ALICE, "feed", "b", NULL), 0);
    commit(&f);
    struct ps_field durable[] = {FIELD(PS_SUB_DURABLE, "1")};
    CHECK_EQ_INT(subscribe(&f, BOB, "feed", BOB, durable, 1), 0);
    CHECK_EQ_INT(subscribe(&f, BOB, "plain", BOB, NULL, 0), 0);
    commit(&f);
    struct durable_seen d = {"", 0, 0, 0};
    pubsub_durable_each(f.ps, BOB "/r", BOB, durable_cb, &d);
    CHECK_EQ_INT(d.n, 1);
    CHECK_EQ_STR(d.node, "feed");
    CHECK_EQ_INT(d.cursor, 2); /* from the newest item at subscription time */
    CHECK(pubsub_node_has_durable(f.ps, d.node_id));
    uint64_t cur = 0;
    CHECK(pubsub_durable_cursor(f.ps, d.node_id, BOB, &cur));
    CHECK(!pubsub_durable_cursor(f.ps, d.node_id, BOB "/r", &cur)); /* exactly the JID */
    CHECK_EQ_INT(pubsub_durable_advance(f.ps, d.node_id, BOB, 5), 0);
    CHECK_EQ_INT(pubsub_durable_advance(f.ps, d.node_id, BOB, 3), 0); /* never back */
    commit(&f);
    CHECK(pubsub_durable_cursor(f.ps, d.node_id, BOB, &cur));
    CHECK_EQ_INT(cur, 5);
    CHECK(fx_reopen(&f, NULL));
    d.n = 0;
    pubsub_durable_each(f.ps, NULL, BOB, durable_cb, &d);
    CHECK_EQ_INT(d.n, 1);
    CHECK_EQ_INT(d.cursor, 5);
    struct ps_subscription got;
    CHECK_EQ_INT(pubsub_subscription_get(f.ps, BOB, "feed", BOB, NULL, &got), 0);
    CHECK(got.durable && got.deliver);
    CHECK_EQ_INT(pubsub_subscription_get(f.ps, BOB, "plain", BOB, NULL, &got), 0);
    CHECK(!got.durable);
    /* Turned off: no longer durable, and the node has none left. */
    struct ps_field off[] = {FIELD(PS_SUB_DURABLE, "false")};
    CHECK_EQ_INT(pubsub_subscription_configure(f.ps, BOB, "feed", BOB, NULL, off, 1), 0);
    commit(&f);
    CHECK(!pubsub_node_has_durable(f.ps, d.node_id));
    d.n = 0;
    pubsub_durable_each(f.ps, NULL, BOB, durable_cb, &d);
    CHECK_EQ_INT(d.n, 0);
    /* Turned on again later: the cursor starts at the newest item then. */
    CHECK_EQ_INT(publish(&f, ALICE, "feed", "c", NULL), 0);
    CHECK_EQ_INT(pubsub_subscription_configure(f.ps, BOB, "feed", BOB, NULL, durable, 1), 0);
    commit(&f);
    pubsub_durable_each(f.ps, NULL, BOB, durable_cb, &d);
    CHECK_EQ_INT(d.n, 1);
    CHECK_EQ_INT(d.cursor, 3);
    /* Unsubscribing removes it. */
    CHECK_EQ_INT(pubsub_unsubscribe(f.ps, BOB, "feed", BOB, NULL), 0);
    commit(&f);
    CHECK(!pubsub_node_has_durable(f.ps, d.node_id));
    fx_end(&f);
}

/* ---- leases (docs/leases.md) ---------------------------------------------- */

#define T0 1800000000000ull /* the service's clock, fixed (pubsub_fix) */

static void at(struct fx *f, uint64_t ms)
{
    struct ps_fixed fx = {T0 + ms, 1};
    pubsub_fix(f->ps, &fx);
}

static int publish_leased(struct fx *f, const char *node, const char *id, uint32_t secs,
                          uint64_t session)
{
    struct ps_publish req = {.node = node, .item_id = id, .has_item = true,
                             .payload = "<v xmlns='urn:t'/>", .payload_len = 18,
                             .lease_secs = secs, .lease_session = session};
    struct ps_published out;
    return pubsub_publish(f->ps, ALICE, &req, &out);
}

/* Runs expiry as the server's timer does (a commit after each slice);
 * returns the slices it took. */
static unsigned expire_all(struct fx *f, unsigned per_slice)
{
    unsigned slices = 1;
    while (pubsub_leases_expire(f->ps, per_slice) > 0) {
        commit(f);
        slices++;
    }
    commit(f);
    return slices;
}

static int count_cb(void *ud, const struct store_lease *l)
{
    (void)l;
    (*(unsigned *)ud)++;
    return 0;
}

/* Entries in the lease index (timed and session). */
static unsigned lease_entries(struct fx *f)
{
    unsigned n = 0;
    struct store_txn *t = NULL;
    CHECK_EQ_INT(store_txn_begin(f->st, false, &t), 0);
    if (t == NULL)
        return 0;
    CHECK_EQ_INT(store_leases_each(t, STORE_LEASE_TIMED, UINT64_MAX, UINT32_MAX, count_cb, &n), 0);
    CHECK_EQ_INT(store_leases_each(t, STORE_LEASE_SESSION, UINT64_MAX, UINT32_MAX, count_cb, &n),
                 0);
    store_txn_abort(t);
    return n;
}

static void test_leases(void)
{
    struct fx f;
    if (!fx_start(&f))
        return;
    at(&f, 0);
    CHECK_EQ_INT(create(&f, ALICE, "svc", NULL, 0), 0);
    CHECK_EQ_INT(publish_leased(&f, "svc", "a", 10, 0), 0);
    CHECK_EQ_INT(publish_leased(&f, "svc", "b", 20, 0), 0);
    CHECK_EQ_INT(publish(&f, ALICE, "svc", "c", NULL), 0);
    CHECK_EQ_INT(publish_leased(&f, "svc", "d", 0, 7), 0);
    CHECK_EQ_INT(publish_leased(&f, "svc", "e", 0, 8), 0);
    CHECK_EQ_INT(publish_leased(&f, "svc", "g", 1, 0), 0);
    CHECK_EQ_INT(publish(&f, ALICE, "svc", "g", NULL), 0); /* republished: no lease now */
    CHECK_EQ_INT(publish_leased(&f, "svc", "big", PS_LEASE_MAX_SECS + 1, 0), HERALD_EINVAL);
    commit(&f);
    CHECK_EQ_INT(pubsub_lease_next(f.ps), T0 + 1000);
    rec_reset();
    /* Nothing ends early; g's stale entry goes without an event. */
    at(&f, 9999);
    CHECK_EQ_INT(expire_all(&f, 100), 1);
    CHECK_EQ_STR(rec_summary(), "");
    CHECK_EQ_INT(pubsub_lease_next(f.ps), T0 + 10000);
    at(&f, 10000);
    expire_all(&f, 100);
    CHECK_EQ_STR(rec_summary(), "RETR:svc:a");
    CHECK(REC.ev[0].notify);
    CHECK_EQ_INT(pubsub_leases_expired(f.ps), 1);
    /* Retracted before its end: the entry is dropped silently then. */
    CHECK_EQ_INT(pubsub_retract(f.ps, ALICE, "svc", "b", false), 0);
    commit(&f);
    rec_reset();
    at(&f, 20000);
    expire_all(&f, 100);
    CHECK_EQ_STR(rec_summary(), "");
    /* Renewal: from now, by the publisher or an owner; 404 once gone. */
    CHECK_EQ_INT(publish_leased(&f, "svc", "f", 5, 0), 0);
    commit(&f);
    at(&f, 24000);
    uint64_t until = 0;
    CHECK_EQ_INT(pubsub_lease_renew(f.ps, BOB, "svc", "f", 10, &until), HERALD_EFORBIDDEN);
    CHECK_EQ_INT(pubsub_lease_renew(f.ps, ALICE, "svc", "f", 10, &until), 0);
    CHECK_EQ_INT(until, T0 + 34000);
    CHECK_EQ_INT(pubsub_lease_renew(f.ps, ALICE, "svc", "c", 0, NULL), HERALD_EINVAL);
    CHECK_EQ_INT(pubsub_lease_renew(f.ps, ALICE, "svc", "nope", 3, NULL), HERALD_ENOTFOUND);
    commit(&f);
    rec_reset();
    at(&f, 25000);
    expire_all(&f, 100);
    CHECK_EQ_STR(rec_summary(), "");
    at(&f, 34000);
    expire_all(&f, 100);
    CHECK_EQ_STR(rec_summary(), "RETR:svc:f");
    CHECK_EQ_INT(pubsub_lease_renew(f.ps, ALICE, "svc", "f", 10, NULL), HERALD_ENOTFOUND);
    /* A session's items go when it ends, not before, not others'. */
    rec_reset();
    pubsub_leases_session_end(f.ps, 9);
    pubsub_leases_session_end(f.ps, 7);
    commit(&f);
    CHECK_EQ_STR(rec_summary(), "RETR:svc:d");
    /* The item reads back with its lease. */
    CHECK_EQ_INT(publish_leased(&f, "svc", "h", 30, 0), 0);
    commit(&f);
    CHECK_EQ_STR(items_all(&f, ALICE, "svc", true), "h,g,e,c");
    /* Reopened (a restart): session leases of the previous run end at
     * start, timed ones keep their end. */
    CHECK(fx_reopen(&f, NULL));
    rec_reset();
    pubsub_leases_start(f.ps);
    commit(&f);
    CHECK_EQ_STR(rec_summary(), "RETR:svc:e");
    CHECK_EQ_INT(pubsub_lease_next(f.ps), T0 + 34000 + 30000);
    at(&f, 64000);
    rec_reset();
    expire_all(&f, 100);
    CHECK_EQ_STR(rec_summary(), "RETR:svc:h");
    CHECK_EQ_STR(items_all(&f, ALICE, "svc", true), "g,c");
    CHECK_EQ_INT(pubsub_lease_next(f.ps), UINT64_MAX);
    /* A heartbeat (republishing, renewing, a trim by max_items) leaves no
     * stale entry behind: one item, one entry. */
    CHECK_EQ_INT(lease_entries(&f), 0);
    for (unsigned i = 0; i < 5; i++) {
        CHECK_EQ_INT(publish_leased(&f, "svc", "beat", 3600, 0), 0);
        CHECK_EQ_INT(publish_leased(&f, "svc", "sess", 0, 42), 0);
        CHECK_EQ_INT(pubsub_lease_renew(f.ps, ALICE, "svc", "beat", 60, NULL), 0);
        commit(&f);
    }
    CHECK_EQ_INT(lease_entries(&f), 2);
    CHECK_EQ_INT(pubsub_retract(f.ps, ALICE, "svc", "beat", false), 0);
    commit(&f);
    CHECK_EQ_INT(lease_entries(&f), 1);
    fx_end(&f);
}

/* 100,000 leases ending together: retracted in slices of the given size,
 * every one of them, and leases that do not end are never touched. */
static void test_leases_many(void)
{
    struct fx f;
    /* A map far from full, as a server's is: operations write straight
     * into the batch (near the limit each would be a nested transaction). */
    FX_CAP_ITEMS = 200000;
    FX_MAP_MB = 1024;
    bool ok = fx_start(&f);
    FX_CAP_ITEMS = 0;
    FX_MAP_MB = 0;
    if (!ok)
        return;
    at(&f, 0);
    struct ps_field cfg[] = {FIELD("pubsub#max_items", "200000")};
    CHECK_EQ_INT(create(&f, ALICE, "many", cfg, 1), 0);
    char id[32];
    for (unsigned i = 0; i < 100000; i++) {
        snprintf(id, sizeof(id), "w%u", i);
        if (publish_leased(&f, "many", id, 100, 0) != 0) {
            CHECK(false);
            break;
        }
        if (i % 1000 == 999)
            commit(&f);
    }
    for (unsigned i = 0; i < 5; i++) {
        snprintf(id, sizeof(id), "e%u", i);
        CHECK_EQ_INT(publish_leased(&f, "many", id, 10, 0), 0);
    }
    commit(&f);
    rec_reset();
    at(&f, 10000);
    CHECK_EQ_INT(expire_all(&f, 1000), 1);
    CHECK_EQ_INT(REC.n + REC.overflow, 5);
    CHECK_EQ_INT(pubsub_lease_next(f.ps), T0 + 100000);
    rec_reset();
    at(&f, 100000);
    CHECK_EQ_INT(expire_all(&f, 1000), 101);
    CHECK_EQ_INT(REC.n + REC.overflow, 100000);
    CHECK_EQ_INT(pubsub_leases_expired(f.ps), 100005);
    CHECK_EQ_STR(items_all(&f, ALICE, "many", true), "");
    fx_end(&f);
}

TEST_MAIN(TEST_CASE(test_create_and_owner_checks), TEST_CASE(test_configure_delete_purge),
          TEST_CASE(test_publish_events), TEST_CASE(test_auto_create), TEST_CASE(test_event_order),
          TEST_CASE(test_retract), TEST_CASE(test_items_queries),
          TEST_CASE(test_access_whitelist_and_listing), TEST_CASE(test_access_authorize),
          TEST_CASE(test_access_presence), TEST_CASE(test_subscription_options),
          TEST_CASE(test_recipients), TEST_CASE(test_send_last_on_sub),
          TEST_CASE(test_persist_reopen), TEST_CASE(test_fault_publish),
          TEST_CASE(test_fault_without_savepoint),
          TEST_CASE(test_fault_subscribe), TEST_CASE(test_fault_subscription_changes),
          TEST_CASE(test_fault_affiliations), TEST_CASE(test_fault_nodes),
          TEST_CASE(test_fault_collection_delete), TEST_CASE(test_fault_owner_subscription),
          TEST_CASE(test_expire), TEST_CASE(test_commit_failure_reloads),
          TEST_CASE(test_nodes_paged), TEST_CASE(test_nodes_paged_collection),
          TEST_CASE(test_node_quota), TEST_CASE(test_access_change_revokes),
          TEST_CASE(test_collection_association), TEST_CASE(test_full_store_deletes),
          TEST_CASE(test_node_names_and_publish_allowed), TEST_CASE(test_durable_cursor),
          TEST_CASE(test_leases), TEST_CASE(test_leases_many))
