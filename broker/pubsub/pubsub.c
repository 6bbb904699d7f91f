/* pubsub.c - the publish/subscribe service: XEP-0060 rules over nodes,
 * items, affiliations and subscriptions, with no protocol in it.
 *
 * Data: LMDB holds everything (store.h); memory holds an index of every
 * node (by name and by id) with its configuration, affiliations (a hash per
 * node) and subscriptions (a list per node, in subscription order, so a
 * publish never looks at other nodes). Items stay in LMDB only. The
 * by-name hash keeps the nodes in id order (sorted once at load, new ids
 * are larger), which is the stable order of paged node lists; a hash of
 * owners counts the nodes each account owns, for the node quota.
 *
 * Every change is one operation (batch_op_begin/_end: a nested transaction
 * of the loop turn's group commit). An operation first does all its
 * storage writes; only when they have succeeded does it change the index
 * and queue its events. A storage error therefore leaves memory untouched
 * and fails just that request. Events are queued with batch_after and go to
 * the sinks after the commit; if the commit fails they are dropped and the
 * index is reloaded from storage (the rollback hook). */
#include "pubsub.h"

#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uthash.h>

#include "batch.h"
#include "errors.h"
#include "jid.h"
#include "log.h"
#include "pubsub_quota.h"
#include "store.h"
#include "xml.h"

#define MAX_SINKS 8
#define MAX_JOURNALS 4
#define CFG_RECORD_MAX 2048 /* the record's four text fields alone may take 1028 */

/* PEP node keys (docs/pubsub.md "PEP"): PEP_MARK, the owner's bare JID,
 * PEP_MARK, the node name. Node names are XML text, and U+0001 is no XML
 * 1.0 Char (check_node_name refuses it), so no name of pubsub.<domain>
 * starts with it and its stored records stay as they were. */
#define PEP_MARK '\x01'
#define PEP_KEY_MAX (JID_MAX + PS_NODE_NAME_MAX + 3)

static int pep_key(const char *service, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%c%s%c%s", PEP_MARK, service, PEP_MARK, name);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* The key counting an account's PEP nodes in the owned hash. */
static void pep_owned_key(const char *service, char *out, size_t cap)
{
    snprintf(out, cap, "%c%s", PEP_MARK, service);
}

struct ps_sub {
    struct ps_sub *next;
    char *jid;          /* as subscribed: bare or full */
    char subid[PS_SUBID_MAX + 1];
    uint8_t state;
    struct ps_sub_opts opts; /* pubsub#deliver, herald#durable */
    uint64_t cursor;    /* durable: the last item seq delivered and acknowledged */
    bool revoke;        /* an access change being applied removes it */
};

/* How many nodes an account owns (pubsub.max_nodes_per_account). */
struct owned {
    char *jid;          /* bare JID */
    unsigned n;
    UT_hash_handle hh;
};

struct ps_aff_rec {
    char *jid;          /* bare JID */
    uint8_t aff;
    UT_hash_handle hh;
};

struct ps_node {
    char *key;             /* hash and storage key: the name, or PEP_MARK service PEP_MARK name */
    char *name;            /* the name within its service (points into key) */
    char *service;         /* PEP: the owner's bare JID; NULL: pubsub.<domain> */
    uint64_t id;
    uint64_t created;
    uint64_t next_seq;
    uint32_t item_count;
    struct ps_config cfg;
    struct ps_sub *subs;
    unsigned ndurable;     /* of subs, those with herald#durable */
    bool shared_jids;      /* some JID holds several subscriptions (sticky) */
    struct ps_aff_rec *affs;
    unsigned nsubs;        /* of subs: herald#max_subscribers counts them */
    uint64_t payload_bytes; /* stored (store_node.payload_bytes): herald#max_node_bytes */
    struct ps_bucket rate; /* herald#max_publish_rate (pubsub_quota.h) */
    UT_hash_handle hh;     /* by name */
    UT_hash_handle hh_id;  /* by id */
};

struct sink {
    ps_sink_fn *fn;
    void *ud;
};

struct pubsub {
    /* Cluster apply (pubsub_fix): time and random choices come from the
     * request's log entry, so every instance decides the same. */
    bool fixed;
    uint64_t fix_time_ms, fix_rng;
    struct store *store;
    struct batch *batch;
    struct ps_caps caps;
    bool auto_create;
    struct pubsub_hooks hooks;
    unsigned max_nodes;         /* per account; 0: no quota */
    unsigned page_size;         /* nodes per listed page at most */
    struct owned *owned;        /* by bare JID */
    struct ps_node *nodes;      /* by name; iteration in id order */
    struct ps_node *by_id;
    uint64_t last_stamp;        /* publish times never go backwards (item_expire) */
    struct sink sinks[MAX_SINKS];
    unsigned nsinks;
    struct journal {
        ps_journal_fn *fn;
        void *ud;
    } journals[MAX_JOURNALS];
    unsigned njournals;
    /* PEP (XEP-0163): the service of the calls being made (NULL:
     * pubsub.<domain>) and its bounds; see pubsub_scope. */
    const char *scope;
    unsigned pep_max_nodes;
    struct ps_caps pep_caps;
    struct ps_node *dead;       /* the deleted node of the event being emitted */
    struct ps_why why;
    uint64_t lease_next;        /* earliest lease entry known to end (UINT64_MAX: none) */
    uint64_t leases_expired;
    struct ps_quota_tallies quota; /* refusals, for /metrics */
    unsigned retry_after;       /* of the last failure (pubsub_retry_after) */
};

/* An event waiting for its commit: the struct and copies of its strings. */
struct queued {
    struct pubsub *ps;
    struct ps_node *dead;       /* PS_EV_DELETED: the node, freed after the sinks ran */
    struct ps_event ev;
};

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static uint64_t now_ms(const struct pubsub *ps)
{
    if (ps->fixed)
        return ps->fix_time_ms;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* SplitMix64: a fixed seed gives every instance the same "random" ids. */
static uint64_t fixed_next(struct pubsub *ps)
{
    uint64_t z = (ps->fix_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void random_hex(struct pubsub *ps, char *out, size_t bytes)
{
    unsigned char r[32];
    if (bytes > sizeof(r))
        bytes = sizeof(r);
    if (ps->fixed) {
        for (size_t i = 0; i < bytes; i += 8) {
            uint64_t v = fixed_next(ps);
            for (size_t k = 0; k < 8 && i + k < bytes; k++)
                r[i + k] = (unsigned char)(v >> (8 * k));
        }
    } else if (RAND_bytes(r, (int)bytes) != 1) {
        memset(r, 0, bytes); /* RAND_bytes does not fail once seeded */
    }
    for (size_t i = 0; i < bytes; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
}

void pubsub_fix(struct pubsub *ps, const struct ps_fixed *f)
{
    ps->fixed = f != NULL;
    ps->fix_time_ms = f ? f->time_ms : 0;
    ps->fix_rng = f ? f->seed : 0;
}

static void bare_of(const char *jid, char *out, size_t cap)
{
    size_t n = strcspn(jid, "/");
    if (n >= cap)
        n = cap - 1;
    memcpy(out, jid, n);
    out[n] = '\0';
}

/* Prepares jid (RFC 7622) into out, bare or full. Returns 0 or -1. */
static int prep_jid(const char *jid, bool bare, char *out, size_t cap)
{
    struct jid *j = malloc(sizeof(*j)); /* 3 KiB: not on the stack */
    int rc = (j == NULL || jid == NULL || jid_parse_str(j, jid) != 0 ||
              jid_format(j, bare, out, cap) < 0) ? -1 : 0;
    free(j);
    return rc;
}

/* Records the detail of a failure for pubsub_why and returns code. */
static int fail(struct pubsub *ps, int code, const char *feature, const char *text)
{
    ps->why.feature = feature;
    snprintf(ps->why.text, sizeof(ps->why.text), "%s", text ? text : "");
    return code;
}

static void clear_why(struct pubsub *ps)
{
    ps->why.feature = NULL;
    ps->why.text[0] = '\0';
    ps->retry_after = 0;
}

const struct ps_why *pubsub_why(const struct pubsub *ps) { return &ps->why; }
unsigned pubsub_retry_after(const struct pubsub *ps) { return ps->retry_after; }
const struct ps_caps *pubsub_caps(const struct pubsub *ps)
{
    return ps->scope ? &ps->pep_caps : &ps->caps; /* PEP's within pubsub_scope */
}
bool pubsub_auto_create(const struct pubsub *ps) { return ps->auto_create; }
unsigned pubsub_node_count(const struct pubsub *ps) { return HASH_CNT(hh, ps->nodes); }
unsigned pubsub_node_page_size(const struct pubsub *ps) { return ps->page_size; }

/* PEP: the caps of the service being addressed, and whether a node
 * belongs to it. */
static const struct ps_caps *caps_for(const struct pubsub *ps)
{
    return ps->scope ? &ps->pep_caps : &ps->caps;
}

static bool in_scope(const struct pubsub *ps, const struct ps_node *n)
{
    if (ps->scope == NULL || n->service == NULL)
        return ps->scope == n->service;
    return strcmp(ps->scope, n->service) == 0;
}

/* ---- the index ---- */

static void free_node(struct ps_node *n)
{
    if (n == NULL)
        return;
    struct ps_sub *s = n->subs;
    while (s) {
        struct ps_sub *next = s->next;
        free(s->jid);
        free(s);
        s = next;
    }
    struct ps_aff_rec *a, *tmp;
    HASH_ITER(hh, n->affs, a, tmp) {
        HASH_DEL(n->affs, a);
        free(a->jid);
        free(a);
    }
    free(n->key);
    free(n->service);
    free(n);
}

static void unlink_node(struct pubsub *ps, struct ps_node *n)
{
    HASH_DELETE(hh, ps->nodes, n);
    HASH_DELETE(hh_id, ps->by_id, n);
}

static unsigned owned_count(const struct pubsub *ps, const char *bare)
{
    struct owned *o = NULL;
    HASH_FIND_STR(ps->owned, bare, o);
    return o ? o->n : 0;
}

/* Counts one node more (delta 1) or less (-1) for an owner. The count
 * only bounds creations: should memory run out here, the account's count
 * stays low until the next load, which is logged. */
static void owned_add(struct pubsub *ps, const char *bare, int delta)
{
    struct owned *o = NULL;
    HASH_FIND_STR(ps->owned, bare, o);
    if (o == NULL && delta > 0) {
        o = calloc(1, sizeof(*o));
        if (o == NULL || (o->jid = strdup(bare)) == NULL) {
            free(o);
            log_error("pubsub", "out of memory: the node count of %s is not kept", bare);
            return;
        }
        HASH_ADD_KEYPTR(hh, ps->owned, o->jid, strlen(o->jid), o);
    }
    if (o == NULL)
        return;
    if (delta < 0 && o->n > 0)
        o->n--;
    else if (delta > 0)
        o->n++;
    if (o->n == 0) {
        HASH_DEL(ps->owned, o);
        free(o->jid);
        free(o);
    }
}

static void owners_add(struct pubsub *ps, const struct ps_node *n, int delta)
{
    if (n->service != NULL) { /* PEP nodes count against [pep] max_nodes_per_account */
        char key[JID_MAX + 2];
        pep_owned_key(n->service, key, sizeof(key));
        owned_add(ps, key, delta);
        return;
    }
    const struct ps_aff_rec *r, *tmp;
    HASH_ITER(hh, n->affs, r, tmp) {
        if (r->aff == AFF_OWNER)
            owned_add(ps, r->jid, delta);
    }
}

static void free_all_nodes(struct pubsub *ps)
{
    struct ps_node *n, *tmp;
    HASH_ITER(hh, ps->nodes, n, tmp) {
        unlink_node(ps, n);
        free_node(n);
    }
    struct owned *o, *otmp;
    HASH_ITER(hh, ps->owned, o, otmp) {
        HASH_DEL(ps->owned, o);
        free(o->jid);
        free(o);
    }
}

static struct ps_node *find_node(struct pubsub *ps, const char *name)
{
    struct ps_node *n = NULL;
    char key[PEP_KEY_MAX];
    if (name && ps->scope && pep_key(ps->scope, name, key, sizeof(key)) == 0)
        HASH_FIND_STR(ps->nodes, key, n);
    else if (name && ps->scope == NULL)
        HASH_FIND_STR(ps->nodes, name, n);
    return n;
}

static struct ps_node *node_by_id(struct pubsub *ps, uint64_t id)
{
    struct ps_node *n = NULL;
    HASH_FIND(hh_id, ps->by_id, &id, sizeof(id), n);
    return n;
}

static uint8_t affiliation(const struct ps_node *n, const char *jid)
{
    char bare[JID_MAX + 1];
    bare_of(jid, bare, sizeof(bare));
    struct ps_aff_rec *a = NULL;
    HASH_FIND_STR(n->affs, bare, a);
    return a ? a->aff : AFF_NONE;
}

static int mem_set_aff(struct ps_node *n, const char *bare, uint8_t aff)
{
    struct ps_aff_rec *a = NULL;
    HASH_FIND_STR(n->affs, bare, a);
    if (aff == AFF_NONE) {
        if (a) {
            HASH_DEL(n->affs, a);
            free(a->jid);
            free(a);
        }
        return 0;
    }
    if (a == NULL) {
        a = calloc(1, sizeof(*a));
        if (a == NULL || (a->jid = strdup(bare)) == NULL) {
            free(a);
            return HERALD_ENOMEM;
        }
        HASH_ADD_KEYPTR(hh, n->affs, a->jid, strlen(a->jid), a);
    }
    a->aff = aff;
    return 0;
}

static struct ps_sub *sub_new(const char *jid, const char *subid, uint8_t state,
                              const struct ps_sub_opts *opts)
{
    struct ps_sub *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->jid = strdup(jid)) == NULL) {
        free(s);
        return NULL;
    }
    snprintf(s->subid, sizeof(s->subid), "%s", subid);
    s->state = state;
    s->opts = *opts;
    return s;
}

/* Appends: notification order follows subscription order. */
static void sub_link(struct ps_node *n, struct ps_sub *s)
{
    struct ps_sub **pp = &n->subs;
    while (*pp) {
        if (strcmp((*pp)->jid, s->jid) == 0)
            n->shared_jids = true;
        pp = &(*pp)->next;
    }
    *pp = s;
    n->ndurable += s->opts.durable;
    n->nsubs++;
}

static void sub_unlink_free(struct ps_node *n, struct ps_sub *victim)
{
    for (struct ps_sub **pp = &n->subs; *pp; pp = &(*pp)->next) {
        if (*pp == victim) {
            *pp = victim->next;
            n->ndurable -= victim->opts.durable;
            n->nsubs--;
            free(victim->jid);
            free(victim);
            return;
        }
    }
}

/* key is the node's stored name: a PEP node's carries its service. */
static struct ps_node *node_new(const char *key, uint64_t id, uint64_t created,
                                const struct ps_config *cfg)
{
    struct ps_node *n = calloc(1, sizeof(*n));
    if (n == NULL || (n->key = strdup(key)) == NULL) {
        free(n);
        return NULL;
    }
    n->name = n->key;
    const char *end = key[0] == PEP_MARK ? strchr(key + 1, PEP_MARK) : NULL;
    if (end != NULL) {
        n->name = n->key + (end - key) + 1;
        if ((n->service = strndup(key + 1, (size_t)(end - key - 1))) == NULL) {
            free(n->key);
            free(n);
            return NULL;
        }
    }
    n->id = id;
    n->created = created;
    n->cfg = *cfg;
    return n;
}

static void node_link(struct pubsub *ps, struct ps_node *n)
{
    HASH_ADD_KEYPTR(hh, ps->nodes, n->key, strlen(n->key), n);
    HASH_ADD(hh_id, ps->by_id, id, sizeof(n->id), n);
}

/* ---- loading ---- */

struct load_ctx {
    struct pubsub *ps;
    struct store_txn *t;
    struct ps_node *node;
};

static int load_sub(void *ud, const struct store_sub *s)
{
    struct load_ctx *c = ud;
    /* Options record: deliver, then (since durable subscriptions) durable
     * and the cursor, big-endian; an older one-byte record is not durable. */
    const uint8_t *o = s->options;
    struct ps_sub_opts opts = {!(s->options_len >= 1 && o[0] == 0), s->options_len >= 10 && o[1]};
    struct ps_sub *sub = sub_new(s->jid, s->subid, s->state, &opts);
    if (sub == NULL)
        return HERALD_ENOMEM;
    if (opts.durable)
        sub->cursor = get_be64(o + 2);
    sub_link(c->node, sub);
    return 0;
}

static int load_aff(void *ud, const char *jid, uint8_t aff)
{
    struct load_ctx *c = ud;
    return mem_set_aff(c->node, jid, aff);
}

static int load_node(void *ud, const char *name, const struct store_node *sn)
{
    struct load_ctx *c = ud;
    struct ps_config cfg;
    int rc = ps_config_decode(&cfg, sn->config, sn->config_len);
    if (rc != 0) {
        log_error("pubsub", "node '%s': unreadable configuration record", name);
        return rc;
    }
    struct ps_node *n = node_new(name, sn->id, sn->created, &cfg);
    if (n == NULL)
        return HERALD_ENOMEM;
    node_link(c->ps, n);
    n->next_seq = sn->next_seq;
    n->item_count = sn->item_count;
    n->payload_bytes = sn->payload_bytes;
    n->rate = (struct ps_bucket){sn->rate_at, sn->rate_debt};
    c->node = n;
    if ((rc = store_subs_each(c->t, n->id, load_sub, c)) != 0)
        return rc;
    return store_affs_each(c->t, n->id, load_aff, c);
}

static int by_id_order(const struct ps_node *a, const struct ps_node *b)
{
    return a->id < b->id ? -1 : a->id > b->id;
}

static int load(struct pubsub *ps)
{
    struct store_txn *t;
    int rc = store_txn_begin(ps->store, false, &t);
    if (rc != 0)
        return rc;
    struct load_ctx c = {ps, t, NULL};
    rc = store_node_each(t, load_node, &c);
    store_txn_abort(t);
    if (rc != 0)
        return rc;
    /* Storage gives the nodes by name; paged lists walk them by id, and
     * node_link appends new (larger) ids, so one sort here keeps it. */
    HASH_SRT(hh, ps->nodes, by_id_order);
    struct ps_node *n, *tmp;
    HASH_ITER(hh, ps->nodes, n, tmp) owners_add(ps, n, 1);
    return 0;
}

/* Rollback hook: a commit failed, so memory must match LMDB again. It runs
 * from batch_commit, when no request is being handled. */
static void lease_armed(struct pubsub *ps, uint64_t until);

static void reload(void *ctx)
{
    struct pubsub *ps = ctx;
    free_all_nodes(ps);
    int rc = load(ps);
    if (rc != 0)
        log_error("pubsub", "reloading pubsub state failed: %s", herald_strerror(rc));
    /* Lease ends of the lost turn are back in the index: look again now. */
    ps->lease_next = UINT64_MAX;
    lease_armed(ps, 0);
}

int pubsub_open(const struct pubsub_opts *o, struct pubsub **out)
{
    struct pubsub *ps = calloc(1, sizeof(*ps));
    if (ps == NULL)
        return HERALD_ENOMEM;
    ps->store = o->store;
    ps->batch = o->batch;
    ps->caps = o->caps;
    ps->auto_create = o->auto_create;
    ps->hooks = o->hooks;
    ps->max_nodes = o->max_nodes_per_account;
    ps->page_size = o->node_page_size ? o->node_page_size : 100;
    ps->pep_max_nodes = o->pep_max_nodes_per_account;
    ps->pep_caps.max_items = o->pep_max_items ? o->pep_max_items : o->caps.max_items;
    ps->pep_caps.max_payload_size = o->caps.max_payload_size;
    ps->lease_next = UINT64_MAX; /* until pubsub_leases_start reads the index */
    int rc = load(ps);
    if (rc == 0 && batch_on_rollback(ps->batch, reload, ps) != 0)
        rc = HERALD_ENOMEM;
    if (rc != 0) {
        log_error("pubsub", "cannot load pubsub state: %s", herald_strerror(rc));
        pubsub_close(ps);
        return rc;
    }
    log_info("pubsub", "%u node(s) loaded", HASH_CNT(hh, ps->nodes));
    *out = ps;
    return 0;
}

void pubsub_close(struct pubsub *ps)
{
    if (ps == NULL)
        return;
    free_all_nodes(ps);
    ps_quota_free(&ps->quota);
    free(ps);
}

int pubsub_sink_add(struct pubsub *ps, ps_sink_fn *fn, void *ud)
{
    if (ps->nsinks == MAX_SINKS)
        return HERALD_ELIMIT;
    ps->sinks[ps->nsinks].fn = fn;
    ps->sinks[ps->nsinks].ud = ud;
    ps->nsinks++;
    return 0;
}

int pubsub_journal_add(struct pubsub *ps, ps_journal_fn *fn, void *ud)
{
    if (ps->njournals == MAX_JOURNALS)
        return HERALD_ELIMIT;
    ps->journals[ps->njournals].fn = fn;
    ps->journals[ps->njournals].ud = ud;
    ps->njournals++;
    return 0;
}

/* ---- events ---- */

static void event_run(void *ctx, int failed)
{
    struct queued *q = ctx;
    struct pubsub *ps = q->ps;
    if (!failed) {
        ps->dead = q->dead;
        for (unsigned i = 0; i < ps->nsinks; i++)
            ps->sinks[i].fn(ps->sinks[i].ud, ps, &q->ev);
        ps->dead = NULL;
    }
    free_node(q->dead);
    free(q);
}

static size_t slen(const char *s) { return s ? strlen(s) + 1 : 0; }

static const char *scopy(char **p, const char *s)
{
    if (s == NULL)
        return NULL;
    size_t l = strlen(s) + 1;
    memcpy(*p, s, l);
    const char *r = *p;
    *p += l;
    return r;
}

/* Queues ev (its strings and payload copied) for the sinks after the
 * commit; dead (may be NULL) is a deleted node the event owns. Sinks that
 * cannot be told for lack of memory are logged: the change itself stands. */
static void emit(struct pubsub *ps, const struct ps_event *ev, struct ps_node *dead)
{
    for (unsigned i = 0; i < ps->njournals; i++)
        ps->journals[i].fn(ps->journals[i].ud, ps, ev);
    if (ps->nsinks == 0) {
        free_node(dead);
        return;
    }
    size_t extra = slen(ev->node) + slen(ev->item_id) + slen(ev->publisher) + slen(ev->redirect) +
                   slen(ev->to) + slen(ev->jid) + slen(ev->subid) + slen(ev->service) +
                   ev->payload_len + 1;
    struct queued *q = malloc(sizeof(*q) + extra);
    if (q == NULL) {
        log_error("pubsub", "out of memory: an event of node '%s' is not announced", ev->node);
        free_node(dead);
        return;
    }
    q->ps = ps;
    q->dead = dead;
    q->ev = *ev;
    char *p = (char *)(q + 1);
    q->ev.node = scopy(&p, ev->node);
    q->ev.item_id = scopy(&p, ev->item_id);
    q->ev.publisher = scopy(&p, ev->publisher);
    q->ev.redirect = scopy(&p, ev->redirect);
    q->ev.to = scopy(&p, ev->to);
    q->ev.jid = scopy(&p, ev->jid);
    q->ev.subid = scopy(&p, ev->subid);
    q->ev.service = scopy(&p, ev->service);
    if (ev->payload_len)
        memcpy(p, ev->payload, ev->payload_len);
    p[ev->payload_len] = '\0';
    q->ev.payload = ev->payload ? p : NULL;
    batch_after(ps->batch, event_run, q);
}

static struct ps_event node_event(const struct ps_node *n, enum ps_event_kind kind)
{
    struct ps_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.kind = kind;
    ev.node = n->name;
    ev.service = n->service;
    ev.node_id = n->id;
    ev.config = n->cfg;
    return ev;
}

static bool wants(const struct ps_sub *s)
{
    return s->state == SUB_SUBSCRIBED && s->opts.deliver;
}

/* One call per subscribed JID, directly or through a collection (via).
 * Without shared JIDs a plain walk; otherwise each JID once, with all its
 * subids. */
static void recipients_of(const struct ps_node *n, const char *via, ps_recipient_fn *fn, void *ud)
{
    if (!n->shared_jids) {
        for (const struct ps_sub *s = n->subs; s; s = s->next) {
            const char *one = s->subid;
            if (wants(s))
                fn(ud, s->jid, &one, 1, via);
        }
        return;
    }
    for (const struct ps_sub *s = n->subs; s; s = s->next) {
        if (!wants(s))
            continue;
        bool seen = false;
        for (const struct ps_sub *p = n->subs; p != s && !seen; p = p->next)
            seen = wants(p) && strcmp(p->jid, s->jid) == 0;
        if (seen)
            continue; /* this JID was called with its first subscription */
        const char *ids[32];
        size_t k = 0;
        for (const struct ps_sub *p = s; p && k < 32; p = p->next)
            if (wants(p) && strcmp(p->jid, s->jid) == 0)
                ids[k++] = p->subid;
        fn(ud, s->jid, ids, k, via);
    }
}

/* XEP-0163 §4.3: the implicit recipients of a PEP node (pubsub_hooks),
 * leaving out those an explicit subscription already reached. */
struct implicit {
    const struct ps_node *n;
    ps_recipient_fn *fn;
    void *ud;
};

static void implicit_one(void *ud, const char *jid, const char *const *subids, size_t nsubids,
                         const char *via)
{
    struct implicit *c = ud;
    size_t bl = strcspn(jid, "/");
    for (const struct ps_sub *s = c->n->subs; s; s = s->next) {
        if (wants(s) && (strcmp(s->jid, jid) == 0 ||
                         (strlen(s->jid) == bl && strncmp(s->jid, jid, bl) == 0)))
            return;
    }
    c->fn(c->ud, jid, subids, nsubids, via);
}

static void implicit_recipients(struct pubsub *ps, const struct ps_node *n, ps_recipient_fn *fn,
                                void *ud)
{
    if (n->service == NULL || ps->hooks.pep_recipients == NULL)
        return;
    struct implicit c = {n, fn, ud};
    ps->hooks.pep_recipients(ps->hooks.ud, n->service, n->name, implicit_one, &c);
}

void pubsub_event_recipients(struct pubsub *ps, const struct ps_event *ev, ps_recipient_fn *fn,
                             void *ud)
{
    if (ev->kind == PS_EV_DELETED) {
        if (ps->dead)
            recipients_of(ps->dead, NULL, fn, ud);
        if (ps->dead)
            implicit_recipients(ps, ps->dead, fn, ud);
        return;
    }
    struct ps_node *n = node_by_id(ps, ev->node_id);
    if (n == NULL)
        return; /* deleted later in the same turn */
    recipients_of(n, NULL, fn, ud);
    implicit_recipients(ps, n, fn, ud); /* PEP (XEP-0163 §4.3); PEP nodes have no collection */
    for (int depth = 0; depth < 10 && n->cfg.collection[0]; depth++) {
        n = find_node(ps, n->cfg.collection);
        if (n == NULL)
            break;
        recipients_of(n, n->name, fn, ud);
    }
}

/* ---- access rules ---- */

static struct ps_node *need_node(struct pubsub *ps, const char *name, int *rc)
{
    struct ps_node *n = find_node(ps, name);
    *rc = name == NULL ? fail(ps, HERALD_ENODEID_REQUIRED, NULL, NULL)
          : n == NULL  ? fail(ps, HERALD_ENOTFOUND, NULL, "no such node")
                       : 0;
    return n;
}

/* The node, if `who` owns it (XEP-0060 §8.*.3: item-not-found, forbidden). */
static struct ps_node *owned_node(struct pubsub *ps, const char *name, const char *who, int *rc)
{
    struct ps_node *n = need_node(ps, name, rc);
    if (n != NULL && affiliation(n, who) != AFF_OWNER) {
        *rc = fail(ps, HERALD_EFORBIDDEN, NULL, "only an owner of the node may do this");
        return NULL;
    }
    return n;
}

/* The presence access model (§4.5): who holds a presence subscription
 * (from/both in an owner's roster) to one of the owners. */
static bool sees_owner_presence(struct pubsub *ps, const struct ps_node *n, const char *who)
{
    char bare[JID_MAX + 1];
    bare_of(who, bare, sizeof(bare));
    if (ps->hooks.presence_subscribed == NULL)
        return false;
    struct ps_aff_rec *r, *tmp;
    HASH_ITER(hh, n->affs, r, tmp) {
        if (r->aff == AFF_OWNER && ps->hooks.presence_subscribed(ps->hooks.ud, r->jid, bare))
            return true;
    }
    return false;
}

/* The roster access model (§4.5): who is in one of the node's
 * pubsub#roster_groups_allowed in an owner's roster. */
static bool in_allowed_groups(struct pubsub *ps, const struct ps_node *n, const char *who)
{
    char bare[JID_MAX + 1];
    bare_of(who, bare, sizeof(bare));
    if (ps->hooks.in_roster_groups == NULL || n->cfg.roster_groups[0] == '\0')
        return false;
    struct ps_aff_rec *r, *tmp;
    HASH_ITER(hh, n->affs, r, tmp) {
        if (r->aff == AFF_OWNER &&
            ps->hooks.in_roster_groups(ps->hooks.ud, r->jid, bare, n->cfg.roster_groups))
            return true;
    }
    return false;
}

static bool has_subscription(const struct ps_node *n, const char *who)
{
    char bare[JID_MAX + 1];
    bare_of(who, bare, sizeof(bare));
    for (const struct ps_sub *s = n->subs; s; s = s->next) {
        if (s->state == SUB_SUBSCRIBED && (strcmp(s->jid, who) == 0 || strcmp(s->jid, bare) == 0))
            return true;
    }
    return false;
}

static bool affiliated(uint8_t aff)
{
    return aff == AFF_OWNER || aff == AFF_PUBLISHER || aff == AFF_PUBLISH_ONLY || aff == AFF_MEMBER;
}

/* The listing policy (docs/pubsub.md): nobody sees a node they are outcast
 * from, and a whitelist node shows only to entities affiliated with it. */
static bool visible(const struct ps_node *n, const char *who)
{
    uint8_t aff = affiliation(n, who);
    if (aff == AFF_OUTCAST)
        return false;
    return n->cfg.access_model != PS_ACCESS_WHITELIST || affiliated(aff);
}

/* May `who` read the node's items (§6.5.9)? */
static int can_read(struct pubsub *ps, const struct ps_node *n, const char *who)
{
    uint8_t aff = affiliation(n, who);
    if (aff == AFF_OUTCAST)
        return fail(ps, HERALD_EFORBIDDEN, NULL, "outcast");
    if (aff == AFF_OWNER || aff == AFF_PUBLISHER || aff == AFF_MEMBER)
        return 0;
    switch (n->cfg.access_model) {
    case PS_ACCESS_OPEN: return 0;
    case PS_ACCESS_WHITELIST: return fail(ps, HERALD_ECLOSED_NODE, NULL, NULL); /* §6.5.9.4 */
    case PS_ACCESS_AUTHORIZE:
        return has_subscription(n, who) ? 0 : fail(ps, HERALD_ENOT_SUBSCRIBED_READ, NULL, NULL);
    case PS_ACCESS_PRESENCE:
        return sees_owner_presence(ps, n, who) ? 0 : fail(ps, HERALD_EPRESENCE_REQUIRED, NULL, NULL);
    case PS_ACCESS_ROSTER: /* §6.5.9.5 */
        return in_allowed_groups(ps, n, who) ? 0
                                             : fail(ps, HERALD_ENOT_IN_ROSTER_GROUP, NULL, NULL);
    default: return fail(ps, HERALD_EUNSUPPORTED, "access-roster", NULL);
    }
}

static bool can_publish(const struct ps_node *n, const char *who)
{
    uint8_t aff = affiliation(n, who);
    if (aff == AFF_OUTCAST)
        return false;
    if (aff == AFF_OWNER || aff == AFF_PUBLISHER || aff == AFF_PUBLISH_ONLY)
        return true;
    if (n->cfg.publish_model == PS_PUBLISH_OPEN)
        return true;
    return n->cfg.publish_model == PS_PUBLISH_SUBSCRIBERS && has_subscription(n, who);
}

/* Prepares `jid` and checks it names the requester (§6.1.3.1). */
static int check_jid(struct pubsub *ps, const char *who, const char *jid, char *out, size_t cap)
{
    char bare_who[JID_MAX + 1], bare_j[JID_MAX + 1];
    bare_of(who, bare_who, sizeof(bare_who));
    if (prep_jid(jid, false, out, cap) != 0)
        return fail(ps, HERALD_EINVALID_JID, NULL, "the JID is malformed");
    bare_of(out, bare_j, sizeof(bare_j));
    if (strcmp(bare_j, bare_who) != 0)
        return fail(ps, HERALD_EINVALID_JID, NULL, "the JID is not the requester's");
    return 0;
}

/* XEP-0248: a node's pubsub#collection must name an existing collection
 * node, and following parents must never lead back to the node. Joining a
 * collection (a value other than `was`, the node's current one) needs the
 * requester to own it: the collection's subscribers get the child's items,
 * so a child is a way to publish to them. This is XEP-0248's
 * children_association_policy "owners"; a publisher of the collection does
 * not qualify, since a collection holds no items of its own to publish and
 * its structure is the owner's to manage (§8.2 of XEP-0060 gives
 * configuration to owners only). */
static int check_collection(struct pubsub *ps, const char *who, const char *name,
                            const struct ps_config *cfg, const char *was)
{
    const char *p = cfg->collection;
    for (int depth = 0; p[0] != '\0'; depth++) {
        struct ps_node *parent = find_node(ps, p);
        if (parent == NULL)
            return fail(ps, HERALD_ENOTFOUND, NULL, "pubsub#collection names no node");
        if (parent->cfg.node_type != PS_COLLECTION || strcmp(parent->name, name) == 0 || depth > 8)
            return fail(ps, HERALD_ENOTACCEPTABLE, NULL,
                        "pubsub#collection must name a collection node, without cycles");
        if (depth == 0 && strcmp(p, was) != 0 && affiliation(parent, who) != AFF_OWNER)
            return fail(ps, HERALD_EFORBIDDEN, NULL,
                        "only an owner of a collection may add nodes to it");
        p = parent->cfg.collection;
    }
    return 0;
}

/* Whether subscription s still holds when the node's access model goes
 * from `was` to `model` and its holder's affiliation is aff: what
 * subscribing would need now (§6.1.3), except that under authorize a
 * subscription approved before stays approved. */
static bool sub_admitted(struct pubsub *ps, const struct ps_node *n, uint8_t was, uint8_t model,
                         const struct ps_sub *s, uint8_t aff)
{
    if (aff == AFF_OUTCAST)
        return false;
    if (aff == AFF_OWNER || aff == AFF_PUBLISHER || aff == AFF_MEMBER)
        return true;
    switch (model) {
    case PS_ACCESS_OPEN: return true;
    case PS_ACCESS_AUTHORIZE: return was == PS_ACCESS_AUTHORIZE;
    case PS_ACCESS_PRESENCE: return sees_owner_presence(ps, n, s->jid);
    default: return false; /* whitelist; roster (groups are not kept) */
    }
}

/* Marks the subscriptions an access change removes: every one (bare NULL)
 * or those of one bare JID. Returns how many. */
static unsigned revoke_mark(struct pubsub *ps, struct ps_node *n, uint8_t model, const char *bare,
                            uint8_t aff)
{
    unsigned marked = 0;
    for (struct ps_sub *s = n->subs; s; s = s->next) {
        char sb[JID_MAX + 1];
        bare_of(s->jid, sb, sizeof(sb));
        s->revoke = false;
        if (bare && strcmp(sb, bare) != 0)
            continue;
        uint8_t a = bare ? aff : affiliation(n, sb);
        s->revoke = !sub_admitted(ps, n, n->cfg.access_model, model, s, a);
        marked += s->revoke;
    }
    return marked;
}

static int revoke_write(struct store_txn *t, const struct ps_node *n)
{
    int rc = 0;
    for (const struct ps_sub *s = n->subs; s && rc == 0; s = s->next)
        if (s->revoke)
            rc = store_sub_del(t, n->id, s->jid, s->subid);
    return rc;
}

static void revoke_clear(struct ps_node *n)
{
    for (struct ps_sub *s = n->subs; s; s = s->next)
        s->revoke = false;
}

/* The change is stored: the marked subscriptions go, and each subscriber
 * is told its subscription is now none (XEP-0060 §8.8.4: the service
 * notifies an entity whose subscription the owner changed). */
static void revoke_apply(struct pubsub *ps, struct ps_node *n)
{
    for (struct ps_sub *s = n->subs, *next; s; s = next) {
        next = s->next;
        if (!s->revoke)
            continue;
        struct ps_event ev = node_event(n, PS_EV_SUBSCRIPTION);
        ev.to = s->jid;
        ev.jid = s->jid;
        ev.subid = s->subid;
        ev.state = SUB_NONE;
        emit(ps, &ev, NULL);
        sub_unlink_free(n, s);
    }
}

/* ---- storage helpers ---- */

static void to_store_node(const struct ps_node *n, struct store_node *sn, uint8_t *cfg, size_t cap)
{
    memset(sn, 0, sizeof(*sn));
    sn->id = n->id;
    sn->created = n->created;
    sn->next_seq = n->next_seq;
    sn->item_count = n->item_count;
    sn->payload_bytes = n->payload_bytes;
    sn->rate_at = n->rate.at;
    sn->rate_debt = n->rate.debt;
    sn->config = cfg;
    sn->config_len = ps_config_encode(&n->cfg, cfg, cap);
}

/* The counters an item change left in sn (committed): every path that
 * changes a node's items ends here, so that memory and storage agree. */
static void node_stored(struct ps_node *n, const struct store_node *sn)
{
    n->next_seq = sn->next_seq;
    n->item_count = sn->item_count;
    n->payload_bytes = sn->payload_bytes;
    n->rate = (struct ps_bucket){sn->rate_at, sn->rate_debt};
}

static int write_node(struct store_txn *t, const struct ps_node *n, const struct ps_config *cfg)
{
    uint8_t rec[CFG_RECORD_MAX];
    struct store_node sn;
    to_store_node(n, &sn, rec, sizeof(rec));
    sn.config_len = ps_config_encode(cfg, rec, sizeof(rec));
    if (sn.config_len == 0)
        return HERALD_EIO;
    return store_node_put(t, n->key, &sn);
}

/* Writes s with the given state, options and cursor (the change may yet
 * fail: the caller updates s only after the operation committed). */
static int save_sub_as(struct store_txn *t, uint64_t node_id, const struct ps_sub *s,
                       uint8_t state, const struct ps_sub_opts *opts, uint64_t cursor)
{
    uint8_t rec[10] = {opts->deliver ? 1 : 0, opts->durable ? 1 : 0};
    put_be64(rec + 2, cursor);
    struct store_sub ss = {s->jid, s->subid, state, rec, opts->durable ? 10 : 1};
    return store_sub_put(t, node_id, &ss);
}

static int save_sub(struct store_txn *t, uint64_t node_id, const struct ps_sub *s, uint8_t state)
{
    return save_sub_as(t, node_id, s, state, &s->opts, s->cursor);
}

/* Begins an operation; NULL with *rc set (and the detail) on failure. */
static struct store_txn *op_begin(struct pubsub *ps, int *rc)
{
    struct store_txn *t = batch_op_begin(ps->batch, rc);
    if (t == NULL)
        fail(ps, *rc, NULL, *rc == HERALD_EFULL ? "storage is full" : "storage is not writable now");
    return t;
}

/* Begins an operation that removes data (delete, purge, retract, trim,
 * unsubscribe): it may use the store's reserve, so that a full store can
 * always be emptied (batch_op_begin_freeing). */
static struct store_txn *op_begin_freeing(struct pubsub *ps, int *rc)
{
    struct store_txn *t = batch_op_begin_freeing(ps->batch, rc);
    if (t == NULL)
        fail(ps, *rc, NULL, "storage is not writable now");
    return t;
}

/* Ends it: 0, or the code with the detail set. */
static int op_end(struct pubsub *ps, struct store_txn *t, int rc)
{
    rc = batch_op_end(ps->batch, t, rc);
    if (rc == HERALD_EFULL)
        return fail(ps, rc, NULL, "storage is full");
    if (rc != 0 && ps->why.text[0] == '\0')
        return fail(ps, rc, NULL, "the change could not be stored");
    return rc;
}

/* ---- reads ---- */

static void fill_info(const struct ps_node *n, const char *who, struct ps_node_info *out)
{
    memset(out, 0, sizeof(*out));
    out->name = n->name;
    out->service = n->service;
    out->id = n->id;
    out->created = n->created;
    out->item_count = n->item_count;
    out->last_seq = n->next_seq ? n->next_seq - 1 : 0;
    out->affiliation = who ? affiliation(n, who) : AFF_NONE;
    out->config = n->cfg;
    out->payload_bytes = n->payload_bytes;
    out->subscriptions = n->nsubs;
    struct ps_aff_rec *r, *tmp;
    HASH_ITER(hh, n->affs, r, tmp) {
        if (r->aff == AFF_OWNER && out->nowners < sizeof(out->owners) / sizeof(out->owners[0]))
            out->owners[out->nowners++] = r->jid;
    }
}

int pubsub_node_get(struct pubsub *ps, const char *who, const char *node, struct ps_node_info *out)
{
    int rc;
    clear_why(ps);
    struct ps_node *n = need_node(ps, node, &rc);
    if (n == NULL)
        return rc;
    if (!visible(n, who))
        return fail(ps, HERALD_ENOTFOUND, NULL, "no such node");
    fill_info(n, who, out);
    return 0;
}

int pubsub_node_readable(struct pubsub *ps, const char *who, const char *node)
{
    int rc;
    clear_why(ps);
    struct ps_node *n = need_node(ps, node, &rc);
    return n ? can_read(ps, n, who) : rc;
}

/* The requester of a listing, prepared once: a page may look at every
 * node (counting them), so the per-node test is one hash probe with a
 * precomputed hash. */
struct lister {
    char bare[JID_MAX + 1];
    size_t len;
    unsigned hv;
    const char *parent;
};

static void lister_init(struct lister *l, const char *who, const char *parent)
{
    bare_of(who, l->bare, sizeof(l->bare));
    l->len = strlen(l->bare);
    HASH_VALUE(l->bare, l->len, l->hv);
    l->parent = parent;
}

/* visible() for the lister, within its collection if it names one. */
static bool listed(const struct ps_node *n, const struct lister *l)
{
    if (n->service != NULL)
        return false; /* a PEP node: listed on its owner's JID only */
    if (l->parent && strcmp(n->cfg.collection, l->parent) != 0)
        return false;
    struct ps_aff_rec *a = NULL;
    HASH_FIND_BYHASHVALUE(hh, n->affs, l->bare, l->len, l->hv, a);
    uint8_t aff = a ? a->aff : AFF_NONE;
    if (aff == AFF_OUTCAST)
        return false;
    return n->cfg.access_model != PS_ACCESS_WHITELIST || affiliated(aff);
}

static struct ps_node *next_node(const struct ps_node *n) { return n->hh.next; }
static struct ps_node *prev_node(const struct ps_node *n) { return n->hh.prev; }

static struct ps_node *last_node(const struct pubsub *ps)
{
    if (ps->nodes == NULL)
        return NULL;
    const UT_hash_table *tbl = ps->nodes->hh.tbl;
    return (struct ps_node *)((char *)tbl->tail - tbl->hho);
}

/* The first node with an id above `after`: O(1) from the cursor's node,
 * a walk when it is gone. */
static struct ps_node *first_after(struct pubsub *ps, uint64_t after)
{
    if (after == 0)
        return ps->nodes;
    struct ps_node *c = node_by_id(ps, after);
    if (c)
        return next_node(c);
    for (c = ps->nodes; c && c->id <= after; c = next_node(c))
        ;
    return c;
}

/* The last node with an id below `before` (0: the last node). */
static struct ps_node *last_before(struct pubsub *ps, uint64_t before)
{
    if (before == 0)
        return last_node(ps);
    struct ps_node *c = node_by_id(ps, before);
    if (c)
        return prev_node(c);
    for (c = last_node(ps); c && c->id >= before; c = prev_node(c))
        ;
    return c;
}

int pubsub_nodes_page(struct pubsub *ps, const char *who, const char *parent,
                      const struct ps_nodes_query *q, ps_node_fn *fn, void *ud,
                      struct ps_nodes_page *out)
{
    int rc;
    clear_why(ps);
    memset(out, 0, sizeof(*out));
    if (parent) {
        struct ps_node *p = need_node(ps, parent, &rc);
        if (p == NULL || (rc = can_read(ps, p, who)) != 0)
            return rc;
    }
    struct lister l;
    lister_init(&l, who, parent);
    struct ps_node *start;
    uint64_t stop = 0; /* a backward page ends before this id */
    if (q->before || q->last_page) {
        /* XEP-0059 §2.4, §2.5: the page that ends where the cursor is:
         * back up over max listed nodes, then walk forward. */
        struct ps_node *c = last_before(ps, q->before);
        unsigned k = 0;
        start = NULL;
        for (; c && k < q->max; c = prev_node(c)) {
            if (listed(c, &l)) {
                start = c;
                k++;
            }
        }
        stop = q->before;
    } else {
        start = first_after(ps, q->after);
    }
    struct ps_node *n = start;
    for (; n && out->n < q->max && (stop == 0 || n->id < stop); n = next_node(n)) {
        if (!listed(n, &l))
            continue;
        struct ps_node_info info;
        fill_info(n, who, &info);
        if ((rc = fn(ud, &info)) != 0)
            return rc;
        if (out->n++ == 0)
            out->first = n->id;
        out->last = n->id;
    }
    for (; n && !out->more; n = next_node(n))
        out->more = listed(n, &l);
    if (q->count) {
        for (n = ps->nodes; n; n = next_node(n)) {
            bool shown = listed(n, &l);
            out->count += shown;
            out->first_index += shown && out->n && n->id < out->first;
        }
    }
    return 0;
}

struct item_tramp {
    ps_item_fn *fn;
    void *ud;
};

static int item_tramp(void *ud, const struct store_item *it)
{
    struct item_tramp *tr = ud;
    struct ps_item pi = {it->seq,        it->published,     it->id,      it->id_len,
                         it->publisher, it->publisher_len, it->payload, it->payload_len,
                         it->lease_kind, it->lease_secs,    it->lease_until};
    return tr->fn(tr->ud, &pi);
}

static int cursor_seq(struct store_txn *t, uint64_t node_id, const char *id, uint64_t *seq)
{
    struct store_item it;
    int rc = store_item_get(t, node_id, id, strlen(id), &it);
    if (rc == 0)
        *seq = it.seq;
    return rc;
}

int pubsub_items(struct pubsub *ps, const char *who, const char *node,
                 const struct ps_items_query *q, ps_item_fn *fn, void *ud)
{
    int rc;
    clear_why(ps);
    struct ps_node *n = need_node(ps, node, &rc);
    if (n == NULL || (rc = can_read(ps, n, who)) != 0)
        return rc;
    if (n->cfg.node_type == PS_COLLECTION) /* a collection holds nodes (XEP-0248) */
        return fail(ps, HERALD_EUNSUPPORTED, "retrieve-items", "a collection node has no items");
    struct store_txn *t = NULL;
    if (q->committed)
        rc = store_txn_begin(ps->store, false, &t);
    else
        t = batch_read(ps->batch, &rc);
    if (t == NULL)
        return fail(ps, rc ? rc : HERALD_EIO, NULL, "storage is not readable now");
    struct item_tramp tr = {fn, ud};
    unsigned max = q->max ? q->max : UINT32_MAX;
    if (q->nids) {
        for (size_t i = 0; i < q->nids && rc == 0; i++) {
            struct store_item it;
            if (q->ids[i] == NULL)
                continue;
            rc = store_item_get(t, n->id, q->ids[i], strlen(q->ids[i]), &it);
            if (rc == HERALD_ENOTFOUND)
                rc = 0;
            else if (rc == 0)
                rc = item_tramp(&tr, &it);
        }
    } else if (q->oldest_first) {
        uint64_t after = q->after_seq;
        if (q->after_id && (rc = cursor_seq(t, n->id, q->after_id, &after)) != 0)
            goto done;
        rc = store_items_oldest(t, n->id, after, max, item_tramp, &tr);
    } else {
        uint64_t before = q->before_seq ? q->before_seq : UINT64_MAX;
        if (q->before_id && (rc = cursor_seq(t, n->id, q->before_id, &before)) != 0)
            goto done;
        rc = store_items_newest(t, n->id, before, max, item_tramp, &tr);
    }
done:
    if (q->committed)
        store_txn_abort(t);
    else
        batch_read_done(ps->batch, t);
    if (rc == HERALD_ENOTFOUND)
        return fail(ps, rc, NULL, "no item with that id"); /* XEP-0059 §2.5 */
    return rc < 0 ? fail(ps, rc, NULL, "the items could not be read") : rc;
}

static struct ps_subscription sub_view(const struct ps_node *n, const struct ps_sub *s)
{
    struct ps_subscription v = {n->name, s->jid, s->subid, s->state, s->opts.deliver,
                                s->opts.durable};
    return v;
}

static bool is_own(const char *jid, const char *bare)
{
    size_t bl = strlen(bare);
    return strncmp(jid, bare, bl) == 0 && (jid[bl] == '\0' || jid[bl] == '/');
}

int pubsub_subscriptions_own(struct pubsub *ps, const char *who, const char *node, ps_sub_fn *fn,
                             void *ud)
{
    int rc;
    char bare[JID_MAX + 1];
    clear_why(ps);
    bare_of(who, bare, sizeof(bare));
    struct ps_node *only = node ? need_node(ps, node, &rc) : NULL;
    if (node && only == NULL)
        return rc;
    struct ps_node *n, *tmp;
    HASH_ITER(hh, ps->nodes, n, tmp) {
        if ((only && n != only) || !in_scope(ps, n))
            continue;
        for (const struct ps_sub *s = n->subs; s; s = s->next) {
            struct ps_subscription v = sub_view(n, s);
            if (is_own(s->jid, bare) && (rc = fn(ud, &v)) != 0)
                return rc;
        }
    }
    return 0;
}

int pubsub_subscriptions_node(struct pubsub *ps, const char *who, const char *node, ps_sub_fn *fn,
                              void *ud)
{
    int rc;
    clear_why(ps);
    struct ps_node *n = owned_node(ps, node, who, &rc);
    if (n == NULL)
        return rc;
    for (const struct ps_sub *s = n->subs; s; s = s->next) {
        struct ps_subscription v = sub_view(n, s);
        if ((rc = fn(ud, &v)) != 0)
            return rc;
    }
    return 0;
}

static struct ps_sub *find_sub(struct ps_node *n, const char *jid, const char *subid, unsigned *count)
{
    struct ps_sub *found = NULL;
    *count = 0;
    for (struct ps_sub *s = n->subs; s; s = s->next) {
        if (strcmp(s->jid, jid) != 0)
            continue;
        (*count)++;
        if ((subid == NULL || strcmp(s->subid, subid) == 0) && found == NULL)
            found = s;
    }
    return found;
}

/* The one subscription a request names (§6.2.3, §6.3.4). */
static struct ps_sub *pick_sub(struct pubsub *ps, struct ps_node *n, const char *jid,
                               const char *subid, int *rc)
{
    unsigned count;
    struct ps_sub *s = find_sub(n, jid, subid, &count);
    *rc = 0;
    if (count == 0)
        *rc = fail(ps, HERALD_ENOT_SUBSCRIBED, NULL, NULL);
    else if (subid == NULL && count > 1)
        *rc = fail(ps, HERALD_ESUBID_REQUIRED, NULL, NULL);
    else if (s == NULL)
        *rc = fail(ps, HERALD_EINVALID_SUBID, NULL, NULL);
    return *rc ? NULL : s;
}

int pubsub_subscription_get(struct pubsub *ps, const char *who, const char *node, const char *jid,
                            const char *subid, struct ps_subscription *out)
{
    int rc;
    char prepared[JID_MAX + 1];
    clear_why(ps);
    struct ps_node *n = need_node(ps, node, &rc);
    if (n == NULL)
        return rc;
    if ((rc = check_jid(ps, who, jid, prepared, sizeof(prepared))) != 0) {
        /* §6.3.4.2: asking for another entity's options is forbidden. */
        if (prep_jid(jid, false, prepared, sizeof(prepared)) == 0)
            return fail(ps, HERALD_EFORBIDDEN, NULL, "the subscription is not the requester's");
        return rc;
    }
    struct ps_sub *s = pick_sub(ps, n, prepared, subid, &rc);
    if (s == NULL)
        return rc;
    *out = sub_view(n, s);
    return 0;
}

int pubsub_affiliations_own(struct pubsub *ps, const char *who, const char *node, ps_aff_fn *fn,
                            void *ud)
{
    int rc;
    clear_why(ps);
    struct ps_node *only = node ? need_node(ps, node, &rc) : NULL;
    if (node && only == NULL)
        return rc;
    struct ps_node *n, *tmp;
    HASH_ITER(hh, ps->nodes, n, tmp) {
        if ((only && n != only) || !in_scope(ps, n))
            continue;
        uint8_t aff = affiliation(n, who);
        if (aff != AFF_NONE && (rc = fn(ud, n->name, NULL, aff)) != 0)
            return rc;
    }
    return 0;
}

int pubsub_affiliations_node(struct pubsub *ps, const char *who, const char *node, ps_aff_fn *fn,
                             void *ud)
{
    int rc;
    clear_why(ps);
    struct ps_node *n = owned_node(ps, node, who, &rc);
    if (n == NULL)
        return rc;
    struct ps_aff_rec *r, *tmp;
    HASH_ITER(hh, n->affs, r, tmp) {
        if ((rc = fn(ud, n->name, r->jid, r->aff)) != 0)
            return rc;
    }
    return 0;
}

void pubsub_config_default(const struct pubsub *ps, struct ps_config *out)
{
    ps_config_defaults(out, &ps->caps);
}

int pubsub_config_get(struct pubsub *ps, const char *who, const char *node, struct ps_config *out)
{
    int rc;
    clear_why(ps);
    struct ps_node *n = owned_node(ps, node, who, &rc);
    if (n == NULL)
        return rc;
    *out = n->cfg;
    return 0;
}

int pubsub_pending_nodes(struct pubsub *ps, const char *who, ps_name_fn *fn, void *ud)
{
    int rc;
    clear_why(ps);
    struct ps_node *n, *tmp;
    HASH_ITER(hh, ps->nodes, n, tmp) {
        if (affiliation(n, who) != AFF_OWNER || !in_scope(ps, n))
            continue;
        const struct ps_sub *s = n->subs;
        while (s && s->state != SUB_PENDING)
            s = s->next;
        if (s && (rc = fn(ud, n->name)) != 0)
            return rc;
    }
    return 0;
}

/* ---- quotas (docs/pubsub.md "Quotas"; arithmetic in pubsub_quota.c) ---- */

/* [quotas] and [quota:JID]: a new node of pubsub.<domain> starts from its
 * creator's quota defaults (PEP nodes have [pep]'s defaults instead). */
static void quota_defaults(struct pubsub *ps, const char *who, struct ps_config *cfg)
{
    char owner[JID_MAX + 1];
    if (ps->scope != NULL || ps->hooks.quota_defaults == NULL)
        return;
    bare_of(who, owner, sizeof(owner));
    ps->hooks.quota_defaults(ps->hooks.ud, owner, cfg);
}

/* Counts a refusal and fails with code, retry_after and a sentence. */
__attribute__((format(printf, 6, 7))) static int quota_refuse(struct pubsub *ps,
                                                              const struct ps_node *n,
                                                              enum ps_quota q, int code,
                                                              unsigned retry_after,
                                                              const char *fmt, ...)
{
    char text[sizeof(ps->why.text)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    ps_quota_count(&ps->quota, n->id, n->service ? NULL : n->name, q);
    fail(ps, code, NULL, text);
    ps->retry_after = retry_after;
    return code;
}

/* herald#max_publish_rate: takes a token from a copy of the node's bucket
 * (*b), which the publish stores only if it succeeds. */
static int quota_rate(struct pubsub *ps, const struct ps_node *n, struct ps_bucket *b)
{
    uint32_t rate = n->cfg.max_publish_rate;
    uint64_t wait_ms = rate ? ps_bucket_take(b, rate, now_ms(ps)) : 0;
    if (wait_ms == 0)
        return 0;
    unsigned s = ps_retry_seconds(wait_ms);
    return quota_refuse(ps, n, PS_QUOTA_RATE, HERALD_ERATE, s,
                        "the node takes %u item(s) per second (herald#max_publish_rate); "
                        "retry in %u s", rate, s);
}

/* What store_item_put will free when it stores an item under id: the
 * version it replaces, then the oldest items beyond keep. */
struct freed {
    uint64_t skip_seq;  /* the replaced version (0: none) */
    uint64_t evict;     /* oldest items still to count */
    uint64_t bytes;
};

static int freed_item(void *ud, const struct store_item *it)
{
    struct freed *f = ud;
    if (it->seq == f->skip_seq)
        return 0;
    if (f->evict == 0)
        return 1;
    f->evict--;
    f->bytes += it->payload_len;
    return 0;
}

/* herald#max_node_bytes, before anything is written (a failure after a
 * write would cost the whole loop turn, batch.h): the bytes the node holds
 * once the item is stored, its replaced version and trimmed items no
 * longer counted, must fit. The bytes are freed by retracts, purges, trims
 * or expiry: the retry hint QUOTA_RETRY_S is for polling, not a promise. */
#define QUOTA_RETRY_S 30
static int quota_bytes(struct pubsub *ps, const struct ps_node *n, const char *id, size_t len)
{
    uint32_t max = n->cfg.max_node_bytes;
    if (max == 0 || n->payload_bytes + len <= max)
        return 0;
    int rc;
    struct store_txn *t = batch_read(ps->batch, &rc);
    if (t == NULL)
        return fail(ps, rc ? rc : HERALD_EIO, NULL, "storage is not readable now");
    struct store_item old;
    struct freed f = {0, 0, 0};
    uint64_t count = n->item_count + 1;
    if ((rc = store_item_get(t, n->id, id, strlen(id), &old)) == 0) {
        f.skip_seq = old.seq;
        f.bytes = old.payload_len;
        count--;
    }
    uint32_t keep = ps_config_keep(&n->cfg, caps_for(ps));
    f.evict = count > keep ? count - keep : 0;
    if (rc == 0 || rc == HERALD_ENOTFOUND)
        rc = f.evict ? store_items_oldest(t, n->id, 0, (unsigned)(f.evict + 1), freed_item, &f)
                     : 0;
    batch_read_done(ps->batch, t);
    if (rc < 0)
        return fail(ps, rc, NULL, "the node's items could not be read");
    uint64_t after = n->payload_bytes - (f.bytes < n->payload_bytes ? f.bytes : n->payload_bytes);
    after += len;
    if (after <= max)
        return 0;
    return quota_refuse(ps, n, PS_QUOTA_BYTES, HERALD_ENODE_FULL, QUOTA_RETRY_S,
                        "the node's items would hold %llu payload bytes, over its %u "
                        "(herald#max_node_bytes)", (unsigned long long)after, max);
}

/* herald#max_subscribers: every subscription of the node counts (pending
 * ones too, and each subid of a JID); owners' §8.8.2 changes do not ask. */
static int quota_subscribers(struct pubsub *ps, const struct ps_node *n)
{
    uint32_t max = n->cfg.max_subscribers;
    if (max == 0 || n->nsubs < max)
        return 0;
    return quota_refuse(ps, n, PS_QUOTA_SUBSCRIBERS, HERALD_ETOO_MANY_SUBS, QUOTA_RETRY_S,
                        "the node has %u subscription(s), its herald#max_subscribers", n->nsubs);
}

void pubsub_quota_refusals(struct pubsub *ps, ps_quota_fn *fn, void *ud)
{
    for (const struct ps_quota_tally *e = ps->quota.by_id; e; e = e->hh.next)
        fn(ud, e->node, e->refused);
    fn(ud, "", ps->quota.other);
}

/* ---- owner use cases (§8) ---- */

/* PEP offers the roster access model (XEP-0060 §4.5), which the table of
 * pubsub_config.c does not (pubsub.<domain> refuses it): on a PEP node the
 * field access_model = roster is taken out of the fields and applied here. */
static bool roster_field(const struct pubsub *ps, const struct ps_field *f)
{
    return ps->scope && f->var && strcmp(f->var, "pubsub#access_model") == 0 &&
           f->nvalues == 1 && f->values[0] && strcmp(f->values[0], "roster") == 0;
}

/* Copies f without the roster field into out (n entries); how many. */
static size_t without_roster(const struct pubsub *ps, const struct ps_field *f, size_t n,
                             struct ps_field *out, bool *roster)
{
    size_t k = 0;
    *roster = false;
    for (size_t i = 0; i < n; i++) {
        if (roster_field(ps, &f[i]))
            *roster = true;
        else
            out[k++] = f[i];
    }
    return k;
}

static int apply_config(struct pubsub *ps, struct ps_config *cfg, const struct ps_field *f,
                        size_t n, bool at_create)
{
    struct ps_why why = {NULL, ""};
    struct ps_field *rest = n ? malloc(n * sizeof(*rest)) : NULL;
    bool roster = false;
    if (n && rest == NULL)
        return fail(ps, HERALD_ENOMEM, NULL, NULL);
    size_t k = n ? without_roster(ps, f, n, rest, &roster) : 0;
    struct ps_config tmp = *cfg;
    int rc = ps_config_apply(&tmp, caps_for(ps), rest, k, at_create, &why);
    free(rest);
    if (rc != 0)
        return fail(ps, rc, why.feature, why.text);
    if (roster)
        tmp.access_model = PS_ACCESS_ROSTER;
    *cfg = tmp;
    return 0;
}

/* Publish-options preconditions (§7.1.5), with PEP's roster model. */
static int config_matches(struct pubsub *ps, const struct ps_config *cfg, const struct ps_field *f,
                          size_t n)
{
    struct ps_field *rest = malloc(n * sizeof(*rest));
    bool roster = false;
    if (rest == NULL)
        return fail(ps, HERALD_ENOMEM, NULL, NULL);
    size_t k = without_roster(ps, f, n, rest, &roster);
    int rc = ps_config_matches(cfg, caps_for(ps), rest, k);
    free(rest);
    if (rc == 0 && roster && cfg->access_model != PS_ACCESS_ROSTER)
        rc = HERALD_EPRECONDITION;
    return rc ? fail(ps, rc, NULL, NULL) : 0;
}

/* A node name is XML text in every disco#items answer and notification
 * (XEP-0060 §5.2, §7.1.2.1): one Char the listing cannot carry would break
 * it for every client, so names are checked here for XMPP and REST alike. */
static int check_node_name(struct pubsub *ps, const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > PS_NODE_NAME_MAX)
        return fail(ps, HERALD_ENOTACCEPTABLE, NULL, "a node name has 1 to 256 bytes");
    if (!xml_valid_chars(name, len))
        return fail(ps, HERALD_ENOTACCEPTABLE, NULL,
                    "a node name must be UTF-8 text of XML 1.0 characters (no control "
                    "characters, surrogates, U+FFFE or U+FFFF)");
    return 0;
}

/* XEP-0163 §4.3: only the account creates nodes on its JID (here, or
 * by publishing), with PEP's defaults (§8: presence access, the last item
 * kept and sent on presence), within [pep] max_nodes_per_account. key
 * gets the node's stored name. */
static int pep_create_check(struct pubsub *ps, const char *who, const char *name,
                            struct ps_config *cfg, char *key, size_t cap)
{
    char owner[JID_MAX + 1], counted[JID_MAX + 2];
    bare_of(who, owner, sizeof(owner));
    if (strcmp(owner, ps->scope) != 0)
        return fail(ps, HERALD_EFORBIDDEN, NULL, "only the account may create its PEP nodes");
    pep_owned_key(ps->scope, counted, sizeof(counted));
    if (ps->pep_max_nodes && owned_count(ps, counted) >= ps->pep_max_nodes) {
        static struct log_limit lim;
        log_limited(&lim, LOG_WARN, "pubsub",
                    "%s has %u PEP nodes (pep.max_nodes_per_account): creation refused", owner,
                    owned_count(ps, counted));
        return fail(ps, HERALD_EQUOTA, NULL,
                    "the account has as many PEP nodes as pep.max_nodes_per_account allows");
    }
    /* A stored key holds 511 bytes (docs/storage-layout.md). */
    if (pep_key(ps->scope, name, key, cap) != 0 || strlen(key) > 511)
        return fail(ps, HERALD_ENOTACCEPTABLE, NULL,
                    "the account's JID and the node name are too long for a PEP node");
    cfg->access_model = PS_ACCESS_PRESENCE;
    cfg->max_items = 1;
    cfg->persist_items = true;
    cfg->send_last = PS_SEND_ON_SUB_AND_PRESENCE;
    return 0;
}

/* PEP nodes are leaves outside any collection: the collection walk of
 * the notifications is pubsub.<domain>'s alone. */
static int pep_config_check(struct pubsub *ps, const struct ps_config *cfg)
{
    if (ps->scope && (cfg->node_type != PS_LEAF || cfg->collection[0] != '\0'))
        return fail(ps, HERALD_ENOTACCEPTABLE, NULL, "PEP nodes are leaves outside collections");
    return 0;
}

int pubsub_create(struct pubsub *ps, const char *who, const char *name,
                  const struct ps_field *cfgf, size_t ncfg, char *name_out)
{
    char instant[40];
    int rc;
    struct ps_config cfg;
    clear_why(ps);
    ps_config_defaults(&cfg, caps_for(ps));
    if (name == NULL) {
        /* §8.1.2: instant node, a unique name chosen by the service. */
        random_hex(ps, instant, 12);
        name = instant;
    }
    if ((rc = check_node_name(ps, name)) != 0)
        return rc;
    if (find_node(ps, name) != NULL)
        return fail(ps, HERALD_EEXIST, NULL, "a node of that name exists"); /* §8.1.1 */
    char key[PEP_KEY_MAX];
    if (ps->scope && (rc = pep_create_check(ps, who, name, &cfg, key, sizeof(key))) != 0)
        return rc;
    quota_defaults(ps, who, &cfg);
    if ((rc = apply_config(ps, &cfg, cfgf, ncfg, true)) != 0 ||
        (rc = check_collection(ps, who, name, &cfg, "")) != 0 ||
        (rc = pep_config_check(ps, &cfg)) != 0)
        return rc;
    char owner[JID_MAX + 1];
    bare_of(who, owner, sizeof(owner));
    if (ps->scope == NULL && ps->max_nodes && owned_count(ps, owner) >= ps->max_nodes) {
        static struct log_limit lim;
        log_limited(&lim, LOG_WARN, "pubsub",
                    "%s owns %u nodes (pubsub.max_nodes_per_account): creation refused", owner,
                    owned_count(ps, owner));
        return fail(ps, HERALD_EQUOTA, NULL,
                    "the account owns as many nodes as pubsub.max_nodes_per_account allows");
    }
    struct ps_node *n = node_new(ps->scope ? key : name, 0, now_ms(ps), &cfg);
    if (n == NULL || mem_set_aff(n, owner, AFF_OWNER) != 0) {
        free_node(n);
        return fail(ps, HERALD_ENOMEM, NULL, NULL);
    }
    n->next_seq = 1; /* sequence 0 means "before the first item" when paging */
    struct store_txn *t = op_begin(ps, &rc);
    if (t == NULL) {
        free_node(n);
        return rc;
    }
    if ((rc = store_node_new_id(t, &n->id)) == 0 && (rc = write_node(t, n, &n->cfg)) == 0)
        rc = store_aff_put(t, n->id, owner, AFF_OWNER);
    if ((rc = op_end(ps, t, rc)) != 0) {
        free_node(n);
        return rc;
    }
    node_link(ps, n);
    owners_add(ps, n, 1);
    memcpy(name_out, n->name, strlen(n->name) + 1);
    log_info("pubsub", "%s created node '%s'", owner, n->name);
    return 0;
}

int pubsub_configure(struct pubsub *ps, const char *who, const char *node,
                     const struct ps_field *cfgf, size_t ncfg)
{
    int rc;
    clear_why(ps);
    struct ps_node *n = owned_node(ps, node, who, &rc); /* §8.2.3 */
    if (n == NULL)
        return rc;
    struct ps_config cfg = n->cfg;
    if ((rc = apply_config(ps, &cfg, cfgf, ncfg, false)) != 0 ||
        (rc = check_collection(ps, who, n->name, &cfg, n->cfg.collection)) != 0 ||
        (rc = pep_config_check(ps, &cfg)) != 0)
        return rc;
    /* A new access model holds for existing subscriptions too, in the
     * same operation: nobody it refuses gets the next item. */
    if (cfg.access_model != n->cfg.access_model)
        revoke_mark(ps, n, cfg.access_model, NULL, AFF_NONE);
    /* Rewriting the small node record and trimming free more than they
     * take: a full store can still be reconfigured. */
    struct store_txn *t = op_begin_freeing(ps, &rc);
    if (t == NULL) {
        revoke_clear(n);
        return rc;
    }
    struct store_node sn;
    uint8_t cb[CFG_RECORD_MAX];
    to_store_node(n, &sn, cb, sizeof(cb));
    sn.config_len = ps_config_encode(&cfg, cb, sizeof(cb));
    rc = sn.config_len ? store_node_put(t, n->key, &sn) : HERALD_EIO;
    /* A smaller max_items holds at once: trim in the same operation. */
    uint32_t keep = ps_config_keep(&cfg, caps_for(ps));
    if (rc == 0 && sn.item_count > keep)
        rc = store_items_trim(t, n->key, &sn, keep, NULL);
    if (rc == 0)
        rc = revoke_write(t, n);
    if ((rc = op_end(ps, t, rc)) != 0) {
        revoke_clear(n);
        return rc;
    }
    revoke_apply(ps, n);
    n->cfg = cfg;
    node_stored(n, &sn);
    emit(ps, &(struct ps_event){.kind = PS_EV_CONFIGURED, .node = n->name, .node_id = n->id,
                                .service = n->service,
                                .config = n->cfg},
         NULL);
    return 0;
}

int pubsub_delete(struct pubsub *ps, const char *who, const char *node, const char *redirect)
{
    int rc;
    clear_why(ps);
    struct ps_node *n = owned_node(ps, node, who, &rc); /* §8.4.3 */
    if (n == NULL)
        return rc;
    struct store_txn *t = op_begin_freeing(ps, &rc);
    if (t == NULL)
        return rc;
    rc = store_node_del(t, n->key, n->id);
    /* Children of a deleted collection stay, outside any collection. */
    struct ps_node *c, *ctmp;
    HASH_ITER(hh, ps->nodes, c, ctmp) {
        if (rc != 0)
            break;
        if (strcmp(c->cfg.collection, n->name) != 0)
            continue;
        struct ps_config orphan = c->cfg;
        orphan.collection[0] = '\0';
        rc = write_node(t, c, &orphan);
    }
    if ((rc = op_end(ps, t, rc)) != 0)
        return rc;
    HASH_ITER(hh, ps->nodes, c, ctmp) {
        if (strcmp(c->cfg.collection, n->name) == 0)
            c->cfg.collection[0] = '\0';
    }
    log_info("pubsub", "node '%s' deleted", n->name);
    ps_quota_forget(&ps->quota, n->id);
    owners_add(ps, n, -1);
    unlink_node(ps, n);
    struct ps_event ev = node_event(n, PS_EV_DELETED);
    ev.redirect = redirect;
    emit(ps, &ev, n); /* the event owns the node now */
    return 0;
}

int pubsub_purge(struct pubsub *ps, const char *who, const char *node)
{
    int rc;
    clear_why(ps);
    struct ps_node *n = owned_node(ps, node, who, &rc); /* §8.5.3 */
    if (n == NULL)
        return rc;
    struct store_txn *t = op_begin_freeing(ps, &rc);
    if (t == NULL)
        return rc;
    uint8_t cb[CFG_RECORD_MAX];
    struct store_node sn;
    to_store_node(n, &sn, cb, sizeof(cb));
    if ((rc = op_end(ps, t, store_items_purge(t, n->key, &sn))) != 0)
        return rc;
    node_stored(n, &sn);
    struct ps_event ev = node_event(n, PS_EV_PURGED);
    emit(ps, &ev, NULL);
    return 0;
}

void pubsub_expire(struct pubsub *ps)
{
    uint64_t now = now_ms(ps);
    struct ps_node *n, *tmp;
    HASH_ITER(hh, ps->nodes, n, tmp) {
        if (n->cfg.item_expire == 0 || n->item_count == 0)
            continue;
        uint64_t cutoff = now - (uint64_t)n->cfg.item_expire * 1000;
        int rc;
        struct store_txn *t = op_begin_freeing(ps, &rc);
        if (t == NULL)
            return;
        struct store_node sn;
        uint8_t cb[CFG_RECORD_MAX];
        unsigned gone = 0;
        to_store_node(n, &sn, cb, sizeof(cb));
        if ((rc = op_end(ps, t, store_items_expire(t, n->key, &sn, cutoff, &gone))) != 0) {
            log_error("pubsub", "node '%s': expiring items failed: %s", n->name,
                      herald_strerror(rc));
            continue;
        }
        node_stored(n, &sn);
        if (gone)
            log_debug("pubsub", "node '%s': %u item(s) expired", n->name, gone);
    }
}

/* ---- leases ---- */

uint64_t pubsub_lease_next(const struct pubsub *ps) { return ps->lease_next; }
uint64_t pubsub_leases_expired(const struct pubsub *ps) { return ps->leases_expired; }

static void lease_armed(struct pubsub *ps, uint64_t until)
{
    if (until >= ps->lease_next)
        return;
    ps->lease_next = until;
    if (ps->hooks.lease_armed)
        ps->hooks.lease_armed(ps->hooks.ud, until);
}

/* One lease entry that ended: its item retracted with notification, or
 * the entry dropped when the item went another way; one operation. */
static int lease_end(struct pubsub *ps, const struct store_lease *l)
{
    int rc;
    struct store_txn *t = op_begin_freeing(ps, &rc);
    if (t == NULL)
        return rc;
    struct store_item it;
    struct ps_node *n = node_by_id(ps, l->node_id);
    char id[PS_ITEM_ID_MAX + 1] = "";
    struct store_node sn;
    uint8_t cb[CFG_RECORD_MAX];
    int live = store_lease_live(t, l, &it);
    if (live == HERALD_ESCHEMA) {
        /* An item this binary cannot read: drop the entry, or expiry
         * would stop at it for ever. */
        log_error("pubsub", "a lease entry's item is unreadable: the entry is dropped");
        live = 0;
    }
    if (live == 1 && n != NULL && it.id_len <= PS_ITEM_ID_MAX) {
        memcpy(id, it.id, it.id_len); /* it points into the map: copied before any write */
        id[it.id_len] = '\0';
        to_store_node(n, &sn, cb, sizeof(cb));
        /* Deleting the item deletes its lease entry too. */
        rc = store_item_del(t, n->key, &sn, id, it.id_len);
    } else {
        rc = live < 0 ? live : store_lease_del(t, l); /* stale */
        live = 0;
    }
    if ((rc = op_end(ps, t, rc)) != 0 || !live)
        return rc;
    node_stored(n, &sn);
    ps->leases_expired++;
    log_debug("pubsub", "node '%s': the lease of item '%s' ended", n->name, id);
    struct ps_event ev = node_event(n, PS_EV_RETRACTED);
    ev.item_id = id;
    ev.notify = true;
    emit(ps, &ev, NULL);
    return 0;
}

#define LEASE_BATCH 256

struct lease_batch {
    struct store_lease l[LEASE_BATCH];
    unsigned n;
};

static int lease_collect(void *ud, const struct store_lease *l)
{
    struct lease_batch *b = ud;
    b->l[b->n++] = *l;
    return 0;
}

/* Reads up to LEASE_BATCH entries of kind (store_leases_each's filter);
 * 0 or an error. */
static int lease_read(struct pubsub *ps, uint8_t kind, uint64_t until_max, unsigned max,
                      struct lease_batch *b)
{
    int rc;
    b->n = 0;
    struct store_txn *t = batch_read(ps->batch, &rc);
    if (t == NULL)
        return rc ? rc : HERALD_EIO;
    rc = store_leases_each(t, kind, until_max, max < LEASE_BATCH ? max : LEASE_BATCH,
                           lease_collect, b);
    batch_read_done(ps->batch, t);
    return rc;
}

/* Ends every entry of b; 0, or the first failure (the rest wait). */
static int lease_end_all(struct pubsub *ps, const struct lease_batch *b)
{
    for (unsigned i = 0; i < b->n; i++) {
        int rc = lease_end(ps, &b->l[i]);
        if (rc != 0) {
            log_error("pubsub", "ending a lease failed: %s (tried again later)",
                      herald_strerror(rc));
            return rc;
        }
    }
    return 0;
}

int pubsub_leases_expire(struct pubsub *ps, unsigned max)
{
    uint64_t now = now_ms(ps);
    struct lease_batch *b = malloc(sizeof(*b));
    if (b == NULL)
        return HERALD_ENOMEM;
    unsigned done = 0;
    int rc = 0;
    while (done < max) {
        if ((rc = lease_read(ps, STORE_LEASE_TIMED, now, max - done, b)) != 0 ||
            (rc = lease_end_all(ps, b)) != 0)
            break;
        done += b->n;
        if (b->n < LEASE_BATCH)
            break;
    }
    /* The next entry to end (a stale one may wake the timer early: it
     * is dropped then). */
    ps->lease_next = UINT64_MAX;
    if (lease_read(ps, STORE_LEASE_TIMED, UINT64_MAX, 1, b) == 0 && b->n == 1)
        ps->lease_next = b->l[0].until;
    free(b);
    return rc != 0 ? rc : done >= max;
}

static void leases_session(struct pubsub *ps, uint64_t session)
{
    struct lease_batch *b = malloc(sizeof(*b));
    if (b == NULL) {
        log_error("pubsub", "out of memory: session leases not ended");
        return;
    }
    do {
        if (lease_read(ps, STORE_LEASE_SESSION, session, LEASE_BATCH, b) != 0 ||
            lease_end_all(ps, b) != 0)
            break;
    } while (b->n == LEASE_BATCH);
    free(b);
}

void pubsub_leases_session_end(struct pubsub *ps, uint64_t session)
{
    if (session != 0 && session != UINT64_MAX)
        leases_session(ps, session);
}

void pubsub_leases_start(struct pubsub *ps)
{
    uint64_t before = ps->leases_expired;
    leases_session(ps, UINT64_MAX);
    if (ps->leases_expired > before)
        log_info("pubsub", "%llu item(s) leased to sessions of the previous run retracted",
                 (unsigned long long)(ps->leases_expired - before));
    struct lease_batch *b = malloc(sizeof(*b));
    ps->lease_next = UINT64_MAX;
    if (b && lease_read(ps, STORE_LEASE_TIMED, UINT64_MAX, 1, b) == 0 && b->n == 1)
        ps->lease_next = b->l[0].until;
    free(b);
}

int pubsub_lease_renew(struct pubsub *ps, const char *who, const char *node, const char *item_id,
                       uint32_t secs, uint64_t *until)
{
    int rc;
    clear_why(ps);
    struct ps_node *n = need_node(ps, node, &rc);
    if (n == NULL)
        return rc;
    if (secs > PS_LEASE_MAX_SECS)
        return fail(ps, HERALD_EINVAL, NULL, "a lease lasts at most ten years");
    struct store_txn *t = op_begin(ps, &rc);
    if (t == NULL)
        return rc;
    struct store_item it;
    char publisher[JID_MAX + 1];
    bare_of(who, publisher, sizeof(publisher));
    uint64_t end = 0;
    rc = store_item_get(t, n->id, item_id, strlen(item_id), &it);
    if (rc == HERALD_ENOTFOUND) {
        fail(ps, rc, NULL, "no such item");
    } else if (rc == 0 && affiliation(n, who) != AFF_OWNER &&
               (it.publisher_len != strlen(publisher) ||
                memcmp(it.publisher, publisher, it.publisher_len) != 0)) {
        rc = fail(ps, HERALD_EFORBIDDEN, NULL, "only its publisher or an owner renews a lease");
    } else if (rc == 0 && secs == 0 && it.lease_kind != STORE_LEASE_TIMED) {
        rc = fail(ps, HERALD_EINVAL, NULL, "the item has no timed lease: give its length");
    } else if (rc == 0) {
        if (secs == 0)
            secs = it.lease_secs;
        end = now_ms(ps) + (uint64_t)secs * 1000;
        rc = store_lease_renew(t, n->id, it.seq, secs, end);
    }
    if ((rc = op_end(ps, t, rc)) != 0)
        return rc;
    lease_armed(ps, end);
    if (until)
        *until = end;
    return 0;
}

/* ---- publisher use cases (§7) ---- */

/* The publish check (§7.1.3) before any payload is looked at. *out gets
 * the node, or NULL when it is missing and auto-create applies (§7.1.4:
 * the publisher becomes its owner; only the name can be wrong). */
static int publish_check(struct pubsub *ps, const char *who, const char *node,
                         struct ps_node **out)
{
    *out = NULL;
    if (node == NULL)
        return fail(ps, HERALD_ENODEID_REQUIRED, NULL, NULL);
    struct ps_node *n = find_node(ps, node);
    if (n == NULL)
        return ps->auto_create || ps->scope ? check_node_name(ps, node) /* XEP-0163 §4.3 */
                               : fail(ps, HERALD_ENOTFOUND, NULL, "no such node"); /* §7.1.3.3 */
    if (n->cfg.node_type == PS_COLLECTION)
        return fail(ps, HERALD_EUNSUPPORTED, "publish", "a collection node holds no items");
    if (!can_publish(n, who))
        return fail(ps, HERALD_EFORBIDDEN, NULL, "the requester may not publish here"); /* §7.1.3.1 */
    *out = n;
    return 0;
}

int pubsub_publish_allowed(struct pubsub *ps, const char *who, const char *node)
{
    struct ps_node *n;
    clear_why(ps);
    return publish_check(ps, who, node, &n);
}

int pubsub_publish(struct pubsub *ps, const char *who, const struct ps_publish *req,
                   struct ps_published *out)
{
    struct ps_node *n;
    clear_why(ps);
    int rc = publish_check(ps, who, req->node, &n);
    if (rc != 0)
        return rc;
    if (n == NULL) {
        /* §7.1.4: auto-create, configured by the publish-options. It is an
         * operation of its own: if the publish then fails, the node stays.
         * The new node's options (a collection?) are checked again. */
        char name[PS_NODE_NAME_MAX + 1];
        if ((rc = pubsub_create(ps, who, req->node, req->options, req->noptions, name)) != 0 ||
            (rc = publish_check(ps, who, name, &n)) != 0)
            return rc;
    }
    if (req->noptions && (rc = config_matches(ps, &n->cfg, req->options, req->noptions)) != 0)
        return rc; /* §7.1.5 */
    if (req->lease_secs > PS_LEASE_MAX_SECS)
        return fail(ps, HERALD_EINVAL, NULL, "a lease lasts at most ten years");
    if (req->payload) {
        if (req->payload_len > n->cfg.max_payload_size)
            return fail(ps, HERALD_EPAYLOAD_TOO_BIG, NULL, NULL); /* §7.1.3.6 */
    } else if (!req->has_item && n->cfg.persist_items) {
        return fail(ps, HERALD_EITEM_REQUIRED, NULL, NULL); /* §7.1.3.6 */
    } else if (n->cfg.persist_items || n->cfg.deliver_payloads) {
        return fail(ps, HERALD_EPAYLOAD_REQUIRED, NULL, NULL); /* §7.1.3.7 */
    }
    char genid[32];
    const char *id = req->item_id;
    if (id == NULL || id[0] == '\0') {
        random_hex(ps, genid, 12);
        id = genid;
    }
    size_t idl = strlen(id);
    if (idl > PS_ITEM_ID_MAX)
        return fail(ps, HERALD_ENOTACCEPTABLE, NULL, "an item id has at most 256 bytes");
    char publisher[JID_MAX + 1];
    bare_of(who, publisher, sizeof(publisher));
    /* Expiry walks items in publication order: keep their times in that
     * order even if the wall clock steps back. */
    struct ps_bucket rate = n->rate;
    if ((rc = quota_rate(ps, n, &rate)) != 0 ||
        (rc = quota_bytes(ps, n, id, req->payload ? req->payload_len : 0)) != 0)
        return rc;
    uint64_t stamp = now_ms(ps);
    if (stamp < ps->last_stamp)
        stamp = ps->last_stamp;
    ps->last_stamp = stamp;
    struct store_txn *t = op_begin(ps, &rc);
    if (t == NULL)
        return rc;
    bool replaced = false;
    struct store_item it = {0,         stamp,  id, idl, publisher, strlen(publisher),
                            req->payload ? req->payload : "", req->payload ? req->payload_len : 0,
                            STORE_LEASE_NONE, 0, 0};
    if (req->lease_session) {
        it.lease_kind = STORE_LEASE_SESSION;
        it.lease_until = req->lease_session;
    } else if (req->lease_secs) {
        it.lease_kind = STORE_LEASE_TIMED;
        it.lease_secs = req->lease_secs;
        it.lease_until = stamp + (uint64_t)req->lease_secs * 1000;
    }
    struct store_node sn;
    uint8_t cb[CFG_RECORD_MAX];
    to_store_node(n, &sn, cb, sizeof(cb));
    sn.rate_at = rate.at;
    sn.rate_debt = rate.debt;
    rc = store_item_put(t, n->key, &sn, &it, ps_config_keep(&n->cfg, caps_for(ps)), NULL,
                        &replaced);
    if ((rc = op_end(ps, t, rc)) != 0)
        return rc;
    node_stored(n, &sn);
    if (it.lease_kind == STORE_LEASE_TIMED)
        lease_armed(ps, it.lease_until);
    struct ps_event ev = node_event(n, PS_EV_PUBLISHED);
    ev.item_id = id;
    ev.seq = it.seq;
    ev.published = stamp;
    ev.publisher = publisher;
    ev.payload = it.payload;
    ev.payload_len = it.payload_len;
    emit(ps, &ev, NULL);
    memcpy(out->id, id, idl + 1);
    out->seq = it.seq;
    out->replaced = replaced;
    return 0;
}

int pubsub_retract(struct pubsub *ps, const char *who, const char *node, const char *item_id,
                   bool notify)
{
    int rc;
    clear_why(ps);
    struct ps_node *n = need_node(ps, node, &rc); /* §7.2.3.3 */
    if (n == NULL)
        return rc;
    if (item_id == NULL || item_id[0] == '\0')
        return fail(ps, HERALD_EITEM_REQUIRED, NULL, NULL); /* §7.2.3.4 */
    uint8_t aff = affiliation(n, who);
    if (aff != AFF_OWNER && aff != AFF_PUBLISHER && aff != AFF_PUBLISH_ONLY)
        return fail(ps, HERALD_EFORBIDDEN, NULL, "the requester may not retract here"); /* §7.2.3.1 */
    struct store_txn *t = op_begin_freeing(ps, &rc);
    if (t == NULL)
        return rc;
    struct store_node sn;
    uint8_t cb[CFG_RECORD_MAX];
    to_store_node(n, &sn, cb, sizeof(cb));
    rc = store_item_del(t, n->key, &sn, item_id, strlen(item_id));
    if (rc == HERALD_ENOTFOUND) {
        batch_op_end(ps->batch, t, rc);
        return fail(ps, rc, NULL, "no such item"); /* §7.2.3.5 */
    }
    if ((rc = op_end(ps, t, rc)) != 0)
        return rc;
    node_stored(n, &sn);
    struct ps_event ev = node_event(n, PS_EV_RETRACTED);
    ev.item_id = item_id;
    ev.notify = notify || n->cfg.notify_retract;
    emit(ps, &ev, NULL);
    return 0;
}

/* ---- subscriber use cases (§6) ---- */

static void emit_pending(struct pubsub *ps, const struct ps_node *n, const struct ps_sub *s,
                         const char *only_to)
{
    struct ps_aff_rec *r, *tmp;
    HASH_ITER(hh, n->affs, r, tmp) {
        if (r->aff != AFF_OWNER || (only_to && strcmp(r->jid, only_to) != 0))
            continue;
        struct ps_event ev = node_event(n, PS_EV_APPROVAL_PENDING);
        ev.to = r->jid;
        ev.jid = s->jid;
        ev.subid = s->subid;
        ev.state = s->state;
        emit(ps, &ev, NULL);
    }
}

static int newest_item_cb(void *ud, const struct store_item *it)
{
    struct store_item *out = ud;
    *out = *it;
    return 1;
}

/* §6.1.7: the node's newest item for a new subscriber. */
static void emit_last_item(struct pubsub *ps, const struct ps_node *n, const char *jid)
{
    int rc;
    struct store_txn *t = batch_read(ps->batch, &rc);
    if (t == NULL)
        return;
    struct store_item it;
    memset(&it, 0, sizeof(it));
    if (store_items_newest(t, n->id, UINT64_MAX, 1, newest_item_cb, &it) >= 0 && it.id != NULL) {
        char id[PS_ITEM_ID_MAX + 1], publisher[JID_MAX + 1];
        snprintf(id, sizeof(id), "%.*s", (int)it.id_len, it.id);
        snprintf(publisher, sizeof(publisher), "%.*s", (int)it.publisher_len, it.publisher);
        struct ps_event ev = node_event(n, PS_EV_LAST_ITEM);
        ev.to = jid;
        ev.item_id = id;
        ev.seq = it.seq;
        ev.published = it.published;
        ev.publisher = publisher;
        ev.payload = it.payload;
        ev.payload_len = it.payload_len;
        emit(ps, &ev, NULL);
    }
    batch_read_done(ps->batch, t);
}

int pubsub_subscribe(struct pubsub *ps, const char *who, const char *node, const char *jid,
                     const struct ps_field *opts, size_t nopts, struct ps_subscription *out)
{
    char prepared[JID_MAX + 1];
    int rc;
    clear_why(ps);
    struct ps_node *n = need_node(ps, node, &rc); /* §6.1.3.12 */
    if (n == NULL || (rc = check_jid(ps, who, jid, prepared, sizeof(prepared))) != 0)
        return rc;
    uint8_t aff = affiliation(n, prepared);
    if (aff == AFF_OUTCAST)
        return fail(ps, HERALD_EFORBIDDEN, NULL, "outcast"); /* §6.1.3.8 */
    if (!n->cfg.subscribe)
        return fail(ps, HERALD_EUNSUPPORTED, "subscribe", "the node does not allow subscriptions");
    bool privileged = aff == AFF_OWNER || aff == AFF_PUBLISHER || aff == AFF_MEMBER;
    uint8_t state = SUB_SUBSCRIBED;
    if (!privileged && n->cfg.access_model == PS_ACCESS_WHITELIST)
        return fail(ps, HERALD_ECLOSED_NODE, NULL, NULL); /* §6.1.3.4 */
    if (!privileged && n->cfg.access_model == PS_ACCESS_AUTHORIZE) {
        for (struct ps_sub *s = n->subs; s; s = s->next)
            if (s->state == SUB_PENDING && strcmp(s->jid, prepared) == 0)
                return fail(ps, HERALD_EPENDING_SUBSCRIPTION, NULL, NULL); /* §6.1.3.7 */
        state = SUB_PENDING;
    }
    if (!privileged && n->cfg.access_model == PS_ACCESS_PRESENCE &&
        !sees_owner_presence(ps, n, prepared)) /* §6.1.3.2 */
        return fail(ps, HERALD_EPRESENCE_REQUIRED, NULL, NULL);
    if (!privileged && n->cfg.access_model == PS_ACCESS_ROSTER &&
        !in_allowed_groups(ps, n, prepared)) /* §6.1.3.3 */
        return fail(ps, HERALD_ENOT_IN_ROSTER_GROUP, NULL, NULL);
    struct ps_sub_opts o = {true, false};
    struct ps_why why = {NULL, ""};
    if ((rc = ps_sub_options_apply(&o, opts, nopts, &why)) != 0) /* §6.3.7 */
        return fail(ps, rc, why.feature, why.text);
    if ((rc = quota_subscribers(ps, n)) != 0)
        return rc;
    char subid[PS_SUBID_MAX + 1];
    random_hex(ps, subid, 8);
    struct ps_sub *s = sub_new(prepared, subid, state, &o);
    if (s == NULL)
        return fail(ps, HERALD_ENOMEM, NULL, NULL);
    /* A durable subscription replays what is published from now on. */
    s->cursor = n->next_seq ? n->next_seq - 1 : 0;
    struct store_txn *t = op_begin(ps, &rc);
    if (t == NULL || (rc = op_end(ps, t, save_sub(t, n->id, s, state))) != 0) {
        free(s->jid);
        free(s);
        return rc;
    }
    sub_link(n, s);
    if (state == SUB_PENDING)
        emit_pending(ps, n, s, NULL);
    if (out)
        *out = sub_view(n, s);
    return 0;
}

void pubsub_subscribed(struct pubsub *ps, const char *node, const char *jid)
{
    struct ps_node *n = find_node(ps, node);
    unsigned count;
    struct ps_sub *s = n ? find_sub(n, jid, NULL, &count) : NULL;
    if (s && s->state == SUB_SUBSCRIBED && n->cfg.send_last != PS_SEND_NEVER)
        emit_last_item(ps, n, s->jid);
}

int pubsub_unsubscribe(struct pubsub *ps, const char *who, const char *node, const char *jid,
                       const char *subid)
{
    char prepared[JID_MAX + 1];
    int rc;
    clear_why(ps);
    struct ps_node *n = need_node(ps, node, &rc);
    if (n == NULL)
        return rc;
    if ((rc = check_jid(ps, who, jid, prepared, sizeof(prepared))) != 0) {
        /* §6.2.3.3: unsubscribing another entity is forbidden. */
        if (prep_jid(jid, false, prepared, sizeof(prepared)) == 0)
            return fail(ps, HERALD_EFORBIDDEN, NULL, "the subscription is not the requester's");
        return rc;
    }
    struct ps_sub *s = pick_sub(ps, n, prepared, subid, &rc);
    if (s == NULL)
        return rc;
    struct store_txn *t = op_begin_freeing(ps, &rc);
    if (t == NULL || (rc = op_end(ps, t, store_sub_del(t, n->id, s->jid, s->subid))) != 0)
        return rc;
    sub_unlink_free(n, s);
    return 0;
}

int pubsub_subscription_configure(struct pubsub *ps, const char *who, const char *node,
                                  const char *jid, const char *subid, const struct ps_field *opts,
                                  size_t nopts)
{
    char prepared[JID_MAX + 1];
    int rc;
    clear_why(ps);
    struct ps_node *n = need_node(ps, node, &rc);
    if (n == NULL || (rc = check_jid(ps, who, jid, prepared, sizeof(prepared))) != 0)
        return rc;
    struct ps_sub *s = pick_sub(ps, n, prepared, subid, &rc);
    if (s == NULL)
        return rc;
    struct ps_sub_opts o = s->opts;
    struct ps_why why = {NULL, ""};
    if ((rc = ps_sub_options_apply(&o, opts, nopts, &why)) != 0) /* §6.3.6 */
        return fail(ps, rc, why.feature, why.text);
    /* Made durable now: the replay starts from what is published next. */
    uint64_t cursor = o.durable && !s->opts.durable ? (n->next_seq ? n->next_seq - 1 : 0) : s->cursor;
    struct store_txn *t = op_begin(ps, &rc);
    if (t == NULL || (rc = op_end(ps, t, save_sub_as(t, n->id, s, s->state, &o, cursor))) != 0)
        return rc;
    if (o.durable != s->opts.durable) {
        if (o.durable)
            n->ndurable++;
        else
            n->ndurable--;
    }
    s->opts = o;
    s->cursor = cursor;
    return 0;
}

int pubsub_authorize(struct pubsub *ps, const char *who, const char *node, const char *jid,
                     const char *subid, bool allow)
{
    int rc;
    clear_why(ps);
    struct ps_node *n = owned_node(ps, node, who, &rc);
    if (n == NULL)
        return rc;
    struct ps_sub *s = NULL;
    for (struct ps_sub *p = n->subs; p && !s; p = p->next)
        if (p->state == SUB_PENDING && jid && strcmp(p->jid, jid) == 0 &&
            (subid == NULL || subid[0] == '\0' || strcmp(p->subid, subid) == 0))
            s = p;
    if (s == NULL)
        return fail(ps, HERALD_ENOTFOUND, NULL, "no such pending subscription");
    struct store_txn *t = op_begin(ps, &rc);
    if (t == NULL)
        return rc;
    rc = allow ? save_sub(t, n->id, s, SUB_SUBSCRIBED)
               : store_sub_del(t, n->id, s->jid, s->subid);
    if ((rc = op_end(ps, t, rc)) != 0)
        return rc;
    /* §8.6.2: the subscriber learns the owner's decision. */
    struct ps_event ev = node_event(n, PS_EV_SUBSCRIPTION);
    ev.to = s->jid;
    ev.jid = s->jid;
    ev.subid = s->subid;
    ev.state = allow ? SUB_SUBSCRIBED : SUB_NONE;
    emit(ps, &ev, NULL);
    if (allow)
        s->state = SUB_SUBSCRIBED;
    else
        sub_unlink_free(n, s);
    return 0;
}

int pubsub_pending_resend(struct pubsub *ps, const char *who, const char *node)
{
    int rc;
    clear_why(ps);
    struct ps_node *n = owned_node(ps, node, who, &rc);
    if (n == NULL)
        return rc;
    char bare[JID_MAX + 1];
    bare_of(who, bare, sizeof(bare));
    for (const struct ps_sub *s = n->subs; s; s = s->next)
        if (s->state == SUB_PENDING)
            emit_pending(ps, n, s, bare);
    return 0;
}

/* ---- owner: subscriptions and affiliations (§8.8, §8.9) ---- */

int pubsub_owner_set_subscription(struct pubsub *ps, const char *who, const char *node,
                                  const char *jid, uint8_t state)
{
    int rc;
    char prepared[JID_MAX + 1];
    clear_why(ps);
    struct ps_node *n = owned_node(ps, node, who, &rc); /* §8.8.2.3 */
    if (n == NULL)
        return rc;
    if (prep_jid(jid, false, prepared, sizeof(prepared)) != 0)
        return fail(ps, HERALD_EINVAL, NULL, "the JID is malformed");
    unsigned count;
    struct ps_sub *fresh = NULL;
    if (state != SUB_NONE && find_sub(n, prepared, NULL, &count) == NULL) {
        char subid[PS_SUBID_MAX + 1];
        random_hex(ps, subid, 8);
        static const struct ps_sub_opts plain = {true, false};
        if ((fresh = sub_new(prepared, subid, state, &plain)) == NULL)
            return fail(ps, HERALD_ENOMEM, NULL, NULL);
    }
    struct store_txn *t = state == SUB_NONE ? op_begin_freeing(ps, &rc) : op_begin(ps, &rc);
    if (t == NULL) {
        if (fresh)
            free(fresh->jid);
        free(fresh);
        return rc;
    }
    if (fresh)
        rc = save_sub(t, n->id, fresh, state);
    for (struct ps_sub *p = n->subs; p && rc == 0; p = p->next) {
        if (strcmp(p->jid, prepared) != 0)
            continue;
        rc = state == SUB_NONE ? store_sub_del(t, n->id, p->jid, p->subid)
                               : save_sub(t, n->id, p, state);
    }
    if ((rc = op_end(ps, t, rc)) != 0) {
        if (fresh)
            free(fresh->jid);
        free(fresh);
        return rc;
    }
    for (struct ps_sub *p = n->subs, *next; p; p = next) {
        next = p->next;
        if (strcmp(p->jid, prepared) != 0)
            continue;
        if (state == SUB_NONE)
            sub_unlink_free(n, p);
        else
            p->state = state;
    }
    if (fresh)
        sub_link(n, fresh);
    return 0;
}

int pubsub_owner_set_affiliation(struct pubsub *ps, const char *who, const char *node,
                                 const char *jid, uint8_t aff)
{
    int rc;
    char bare[JID_MAX + 1];
    clear_why(ps);
    struct ps_node *n = owned_node(ps, node, who, &rc); /* §8.9.2.3 */
    if (n == NULL)
        return rc;
    if (prep_jid(jid, true, bare, sizeof(bare)) != 0)
        return fail(ps, HERALD_EINVAL, NULL, "the JID is malformed");
    if (aff != AFF_OWNER && affiliation(n, bare) == AFF_OWNER) {
        unsigned owners = 0;
        struct ps_aff_rec *r, *tmp;
        HASH_ITER(hh, n->affs, r, tmp) owners += r->aff == AFF_OWNER;
        if (owners <= 1) /* §8.9.2.4: a node keeps at least one owner */
            return fail(ps, HERALD_ENOTACCEPTABLE, NULL, "a node keeps at least one owner");
    }
    uint8_t old = affiliation(n, bare);
    /* XEP-0163: the account is its PEP nodes' one owner. */
    if (n->service != NULL && (aff == AFF_OWNER || old == AFF_OWNER))
        return fail(ps, HERALD_ENOTACCEPTABLE, NULL, "a PEP node has its account as its one owner");
    if (aff == AFF_OWNER && old != AFF_OWNER && ps->max_nodes &&
        owned_count(ps, bare) >= ps->max_nodes)
        return fail(ps, HERALD_EQUOTA, NULL,
                    "that account owns as many nodes as pubsub.max_nodes_per_account allows");
    /* The record first, so that a failed write leaves memory as it was. */
    struct ps_aff_rec *rec = NULL;
    HASH_FIND_STR(n->affs, bare, rec);
    if (rec == NULL && aff != AFF_NONE) {
        if ((rc = mem_set_aff(n, bare, aff)) != 0)
            return fail(ps, rc, NULL, NULL);
        HASH_FIND_STR(n->affs, bare, rec);
        rec->aff = AFF_NONE; /* not in effect until the write succeeded */
    }
    /* The subscriptions the new affiliation no longer admits go with it:
     * an outcast keeps none (§8.9.2.4), a former member of a whitelist node
     * none either. */
    revoke_mark(ps, n, n->cfg.access_model, bare, aff);
    struct store_txn *t = op_begin(ps, &rc);
    if (t != NULL) {
        rc = store_aff_put(t, n->id, bare, aff);
        if (rc == 0)
            rc = revoke_write(t, n);
        rc = op_end(ps, t, rc);
    }
    if (rc != 0) {
        revoke_clear(n);
        if (rec && rec->aff == AFF_NONE)
            mem_set_aff(n, bare, AFF_NONE);
        return rc;
    }
    mem_set_aff(n, bare, aff); /* an existing record: no allocation */
    if (old == AFF_OWNER && aff != AFF_OWNER)
        owned_add(ps, bare, -1);
    else if (old != AFF_OWNER && aff == AFF_OWNER)
        owned_add(ps, bare, 1);
    revoke_apply(ps, n);
    return 0;
}

/* ---- durable subscriptions (herald#durable, docs/pubsub.md "Catch-up") ---- */

bool pubsub_node_has_durable(struct pubsub *ps, uint64_t node_id)
{
    struct ps_node *n = node_by_id(ps, node_id);
    return n != NULL && n->ndurable > 0 && n->service == NULL;
}

bool pubsub_durable_cursor(struct pubsub *ps, uint64_t node_id, const char *jid, uint64_t *cursor)
{
    struct ps_node *n = node_by_id(ps, node_id);
    for (struct ps_sub *s = n && n->ndurable ? n->subs : NULL; s; s = s->next) {
        if (s->opts.durable && wants(s) && strcmp(s->jid, jid) == 0) {
            if (cursor)
                *cursor = s->cursor;
            return true;
        }
    }
    return false;
}

void pubsub_durable_each(struct pubsub *ps, const char *full, const char *bare, ps_durable_fn *fn,
                         void *ud)
{
    /* Only nodes with a durable subscription are looked into; a login of
     * an account that has none costs a walk over the nodes' counters. */
    for (struct ps_node *n = ps->nodes; n; n = n->hh.next) {
        if (n->ndurable == 0 || n->service != NULL) /* PEP nodes are not replayed */
            continue;
        for (struct ps_sub *s = n->subs; s; s = s->next)
            if (s->opts.durable && wants(s) &&
                ((full && strcmp(s->jid, full) == 0) || (bare && strcmp(s->jid, bare) == 0)))
                fn(ud, n->name, n->id, s->jid, s->cursor);
    }
}

int pubsub_durable_advance(struct pubsub *ps, uint64_t node_id, const char *jid, uint64_t seq)
{
    struct ps_node *n = node_by_id(ps, node_id);
    if (n == NULL || n->ndurable == 0)
        return 0;
    int rc = 0;
    bool any = false;
    for (struct ps_sub *s = n->subs; s; s = s->next)
        any = any || (s->opts.durable && s->cursor < seq && strcmp(s->jid, jid) == 0);
    if (!any)
        return 0;
    struct store_txn *t = op_begin(ps, &rc);
    if (t == NULL)
        return rc;
    for (struct ps_sub *s = n->subs; s && rc == 0; s = s->next)
        if (s->opts.durable && s->cursor < seq && strcmp(s->jid, jid) == 0)
            rc = save_sub_as(t, n->id, s, s->state, &s->opts, seq);
    if ((rc = op_end(ps, t, rc)) != 0)
        return rc;
    for (struct ps_sub *s = n->subs; s; s = s->next)
        if (s->opts.durable && s->cursor < seq && strcmp(s->jid, jid) == 0)
            s->cursor = seq;
    return 0;
}

/* ---- services (PEP, XEP-0163) ---- */

void pubsub_scope(struct pubsub *ps, const char *service)
{
    ps->scope = service;
}

int pubsub_service_nodes(struct pubsub *ps, const char *service, const char *who, ps_node_fn *fn,
                         void *ud)
{
    int rc;
    struct ps_node *n, *tmp;
    HASH_ITER(hh, ps->nodes, n, tmp) {
        if (n->service == NULL || (service && strcmp(n->service, service) != 0) ||
            !visible(n, who))
            continue;
        struct ps_node_info info;
        fill_info(n, who, &info);
        if ((rc = fn(ud, &info)) != 0)
            return rc;
    }
    return 0;
}

void pubsub_last_item_to(struct pubsub *ps, const char *node, const char *to)
{
    struct ps_node *n = find_node(ps, node);
    if (n != NULL && n->item_count > 0 && n->cfg.send_last == PS_SEND_ON_SUB_AND_PRESENCE &&
        can_read(ps, n, to) == 0)
        emit_last_item(ps, n, to);
}
