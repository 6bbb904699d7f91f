/* test_pep.c - the pure parts of PEP: the XEP-0115 verification string and
 * the capabilities cache (broker/pubsub/caps.c), and the service core's PEP rules
 * (broker/pubsub/pubsub.c with pubsub_scope) over a real LMDB store in a
 * temporary directory: separate name spaces per service, PEP defaults,
 * owner-only creation, the PEP quota, lists that leave PEP nodes out,
 * events that carry the service, the implicit recipients hook (without the
 * JIDs an explicit subscription already reaches), and stored keys that
 * load back after a reopen. No sockets. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "batch.h"
#include "errors.h"
#include "log.h"
#include "pep.h"
#include "pubsub.h"
#include "store.h"
#include "test.h"
#include "xml.h"

#define ALICE "alice@localhost"
#define BOB "bob@localhost"
#define NS_DATA "jabber:x:data"

/* ---- XEP-0115 §5 ---- */

static struct xnode *ident(struct arena *a, struct xnode *q, const char *cat, const char *type,
                           const char *lang, const char *name)
{
    struct xnode *i = xml_add_elem(a, q, NS_DISCO_INFO, "identity");
    xml_set_attr(a, i, "category", cat);
    xml_set_attr(a, i, "type", type);
    if (lang)
        xml_set_attr(a, i, "xml:lang", lang);
    xml_set_attr(a, i, "name", name);
    return i;
}

static void feature(struct arena *a, struct xnode *q, const char *var)
{
    xml_set_attr(a, xml_add_elem(a, q, NS_DISCO_INFO, "feature"), "var", var);
}

static void field(struct arena *a, struct xnode *x, const char *var, const char *type,
                  const char *const *values)
{
    struct xnode *f = xml_add_elem(a, x, NS_DATA, "field");
    xml_set_attr(a, f, "var", var);
    if (type)
        xml_set_attr(a, f, "type", type);
    for (; *values; values++) {
        struct xnode *v = xml_add_elem(a, f, NS_DATA, "value");
        xml_add_text(a, v, *values, strlen(*values));
    }
}

/* §5.2: the simple example. */
static void test_ver_simple(void)
{
    struct arena a;
    arena_init(&a);
    struct xnode *q = xml_elem_new(&a, NS_DISCO_INFO, "query");
    ident(&a, q, "client", "pc", NULL, "Exodus 0.9.1");
    feature(&a, q, "http://jabber.org/protocol/muc");
    feature(&a, q, "http://jabber.org/protocol/disco#info");
    feature(&a, q, "http://jabber.org/protocol/caps");
    feature(&a, q, "http://jabber.org/protocol/disco#items");
    char ver[32];
    CHECK_EQ_INT(caps_ver(q, ver), 0);
    CHECK_EQ_STR(ver, "QgayPKawpkPSDYmwT/WM94uAlu0=");
    /* §5.4: a duplicate feature is refused. */
    feature(&a, q, "http://jabber.org/protocol/muc");
    CHECK_EQ_INT(caps_ver(q, ver), HERALD_EINVAL);
    arena_free(&a);
}

/* §5.3: the complex example (two identities with xml:lang, a form). */
static void test_ver_complex(void)
{
    static const char *const ft[] = {"urn:xmpp:dataforms:softwareinfo", NULL};
    static const char *const ip[] = {"ipv4", "ipv6", NULL};
    static const char *const os[] = {"Mac", NULL};
    static const char *const osv[] = {"10.5.1", NULL};
    static const char *const sw[] = {"Psi", NULL};
    static const char *const swv[] = {"0.11", NULL};
    struct arena a;
    arena_init(&a);
    struct xnode *q = xml_elem_new(&a, NS_DISCO_INFO, "query");
    ident(&a, q, "client", "pc", "en", "Psi 0.11");
    ident(&a, q, "client", "pc", "el", "\xce\xa8 0.11");
    feature(&a, q, "http://jabber.org/protocol/caps");
    feature(&a, q, "http://jabber.org/protocol/disco#info");
    feature(&a, q, "http://jabber.org/protocol/disco#items");
    feature(&a, q, "http://jabber.org/protocol/muc");
    struct xnode *x = xml_add_elem(&a, q, NS_DATA, "x");
    xml_set_attr(&a, x, "type", "result");
    field(&a, x, "FORM_TYPE", "hidden", ft);
    field(&a, x, "ip_version", NULL, ip);
    field(&a, x, "os", NULL, os);
    field(&a, x, "os_version", NULL, osv);
    field(&a, x, "software", NULL, sw);
    field(&a, x, "software_version", NULL, swv);
    char ver[32];
    CHECK_EQ_INT(caps_ver(q, ver), 0);
    CHECK_EQ_STR(ver, "q07IKJEyjvHSyhy//CH0CxmKi8w=");
    arena_free(&a);
}

/* An answer to query number id of `full` with one +notify feature. */
static struct xnode *answer(struct arena *a, const char *id, const char *notify, char *ver)
{
    struct xnode *iq = xml_elem_new(a, NS_CLIENT, "iq");
    xml_set_attr(a, iq, "type", "result");
    xml_set_attr(a, iq, "id", id);
    struct xnode *q = xml_add_elem(a, iq, NS_DISCO_INFO, "query");
    ident(a, q, "client", "pc", NULL, "t");
    feature(a, q, NS_DISCO_INFO);
    char var[128];
    snprintf(var, sizeof(var), "%s+notify", notify);
    feature(a, q, var);
    caps_ver(q, ver);
    return iq;
}

/* Asks for ver and answers the query; returns what caps_query_answer did. */
static int learn(struct caps *c, struct arena *a, const char *notify)
{
    char ver[32], id[24], got[CAPS_VER_MAX + 1];
    struct xnode *iq = answer(a, "", notify, ver);
    if (caps_query_begin(c, "bob@localhost/r", ver, id) != 1)
        return -100;
    xml_set_attr(a, iq, "id", id);
    return caps_query_answer(c, "bob@localhost/r", iq, got);
}

static void test_caps_cache_lru(void)
{
    struct caps *c;
    struct arena a;
    arena_init(&a);
    CHECK_EQ_INT(caps_open(2, 4, 10000, &c), 0);
    char v1[32], v2[32], v3[32];
    answer(&a, "", "urn:a", v1);
    answer(&a, "", "urn:b", v2);
    answer(&a, "", "urn:c", v3);
    CHECK_EQ_INT(learn(c, &a, "urn:a"), 1);
    CHECK_EQ_INT(learn(c, &a, "urn:b"), 1);
    struct caps_notify n;
    CHECK(caps_lookup(c, v1, &n)); /* v1 is now the most recently used */
    CHECK(caps_notify_has(&n, "urn:a"));
    CHECK(!caps_notify_has(&n, "urn:b"));
    CHECK_EQ_INT(learn(c, &a, "urn:c"), 1);
    CHECK_EQ_INT((int)caps_count(c), 2);
    CHECK(caps_lookup(c, v1, &n));
    CHECK(!caps_lookup(c, v2, &n)); /* the least recently used went */
    CHECK(caps_lookup(c, v3, &n));
    /* A wrong answer (another hash) and a stranger's answer are ignored. */
    char id[24], got[CAPS_VER_MAX + 1], ver[32];
    CHECK_EQ_INT(caps_query_begin(c, "bob@localhost/r", "bm90LWEtaGFzaA==", id), 1);
    CHECK_EQ_INT(caps_query_begin(c, "bob@localhost/x", "bm90LWEtaGFzaA==", id + 0), 0);
    struct xnode *iq = answer(&a, id, "urn:d", ver);
    CHECK_EQ_INT(caps_query_answer(c, "eve@localhost/r", iq, got), 0);
    CHECK_EQ_INT(caps_query_answer(c, "bob@localhost/r", iq, got), 0);
    CHECK(!caps_lookup(c, "bm90LWEtaGFzaA==", &n));
    caps_close(c);
    arena_free(&a);
}

/* The query ring: past the bound the oldest query is forgotten. */
static void test_caps_query_bound(void)
{
    struct caps *c;
    struct arena a;
    arena_init(&a);
    CHECK_EQ_INT(caps_open(8, 2, 10000, &c), 0);
    char v1[32], v2[32], v3[32], id1[24], id2[24], id3[24], got[CAPS_VER_MAX + 1];
    struct xnode *a1 = answer(&a, "", "urn:a", v1);
    struct xnode *a2 = answer(&a, "", "urn:b", v2);
    struct xnode *a3 = answer(&a, "", "urn:c", v3);
    CHECK_EQ_INT(caps_query_begin(c, "b@localhost/r", v1, id1), 1);
    CHECK_EQ_INT(caps_query_begin(c, "b@localhost/r", v2, id2), 1);
    CHECK_EQ_INT(caps_query_begin(c, "b@localhost/r", v3, id3), 1);
    xml_set_attr(&a, a1, "id", id1);
    xml_set_attr(&a, a2, "id", id2);
    xml_set_attr(&a, a3, "id", id3);
    CHECK_EQ_INT(caps_query_answer(c, "b@localhost/r", a1, got), 0); /* forgotten */
    CHECK_EQ_INT(caps_query_answer(c, "b@localhost/r", a2, got), 1);
    CHECK_EQ_STR(got, v2);
    CHECK_EQ_INT(caps_query_answer(c, "b@localhost/r", a3, got), 1);
    CHECK_EQ_INT(caps_query_answer(c, "b@localhost/r", a3, got), 0); /* answered once */
    caps_close(c);
    arena_free(&a);
}

/* A query unanswered past the timeout no longer holds its ver: the next
 * resource announcing it is asked, and the late answer is ignored. */
static void test_caps_query_timeout(void)
{
    struct caps *c;
    struct arena a;
    arena_init(&a);
    CHECK_EQ_INT(caps_open(8, 4, 50, &c), 0);
    char v[32], id1[24], id2[24], got[CAPS_VER_MAX + 1];
    struct xnode *late = answer(&a, "", "urn:a", v);
    CHECK_EQ_INT(caps_query_begin(c, "mute@localhost/r", v, id1), 1);
    CHECK_EQ_INT(caps_query_begin(c, "b@localhost/r", v, id2), 0);
    usleep(80 * 1000);
    CHECK_EQ_INT(caps_query_begin(c, "b@localhost/r", v, id2), 1);
    xml_set_attr(&a, late, "id", id1);
    CHECK_EQ_INT(caps_query_answer(c, "mute@localhost/r", late, got), 0);
    struct xnode *ok = answer(&a, id2, "urn:a", v);
    CHECK_EQ_INT(caps_query_answer(c, "b@localhost/r", ok, got), 1);
    caps_close(c);
    arena_free(&a);
}

/* ---- the service core with scopes ---- */

struct fx {
    char *dir;
    struct store *st;
    struct batch *b;
    struct pubsub *ps;
};

struct seen {
    char services[8][64];
    char nodes[8][64];
    int n;
    char recipients[512];
};
static struct seen SEEN;

static void rcpt(void *ud, const char *jid, const char *const *subids, size_t nsubids,
                 const char *via)
{
    (void)ud, (void)subids, (void)nsubids, (void)via;
    size_t l = strlen(SEEN.recipients);
    snprintf(SEEN.recipients + l, sizeof(SEEN.recipients) - l, "%s%s", l ? ";" : "", jid);
}

static void sink(void *ud, struct pubsub *ps, const struct ps_event *ev)
{
    (void)ud;
    if (SEEN.n == 8)
        return;
    snprintf(SEEN.services[SEEN.n], 64, "%s", ev->service ? ev->service : "-");
    snprintf(SEEN.nodes[SEEN.n], 64, "%s", ev->node);
    SEEN.n++;
    if (ev->kind == PS_EV_PUBLISHED)
        pubsub_event_recipients(ps, ev, rcpt, NULL);
}

/* The implicit recipients: two of bob's resources. */
static void implicit(void *ud, const char *service, const char *node,
                     void (*fn)(void *, const char *, const char *const *, size_t, const char *),
                     void *fud)
{
    (void)ud, (void)service, (void)node;
    fn(fud, BOB "/phone", NULL, 0, NULL);
    fn(fud, BOB "/desk", NULL, 0, NULL);
}

static bool fx_open(struct fx *f)
{
    struct store_opts so = {.map_size = 16u << 20, .max_map_size = 64u << 20};
    struct pubsub_opts o = {
        .caps = {.max_items = 100, .max_payload_size = 4096},
        .hooks = {.pep_recipients = implicit},
        .max_nodes_per_account = 1,
        .pep_max_nodes_per_account = 2,
        .pep_max_items = 5,
    };
    if (store_open(&f->st, f->dir, &so) != 0 || batch_new(f->st, &f->b) != 0)
        return false;
    o.store = f->st;
    o.batch = f->b;
    if (pubsub_open(&o, &f->ps) != 0)
        return false;
    return pubsub_sink_add(f->ps, sink, NULL) == 0;
}

static void fx_close(struct fx *f)
{
    batch_commit(f->b);
    pubsub_close(f->ps);
    batch_free(f->b);
    store_close(f->st);
}

static int publish(struct pubsub *ps, const char *who, const char *node, const char *id)
{
    struct ps_publish req = {.node = node,
                             .item_id = id,
                             .has_item = true,
                             .payload = "<x xmlns='urn:x'/>",
                             .payload_len = 18};
    struct ps_published out;
    return pubsub_publish(ps, who, &req, &out);
}

static int count_node(void *ud, const struct ps_node_info *n)
{
    (void)n;
    ++*(int *)ud;
    return 0;
}

static void test_scopes(void)
{
    struct fx f;
    memset(&f, 0, sizeof(f));
    memset(&SEEN, 0, sizeof(SEEN));
    log_set_level(LOG_ERROR);
    f.dir = test_make_dir("herald-test-pep");
    CHECK(f.dir != NULL && fx_open(&f));
    char name[PS_NODE_NAME_MAX + 1];
    /* pubsub.<domain> has no auto-create here; PEP always has. */
    CHECK_EQ_INT(pubsub_create(f.ps, ALICE, "urn:x:nick", NULL, 0, name), 0);
    pubsub_scope(f.ps, ALICE);
    CHECK_EQ_INT(publish(f.ps, ALICE "/r", "urn:x:nick", "current"), 0);
    /* A collection is refused on PEP. */
    static const char *const coll[] = {"collection"};
    struct ps_field fcoll = {"pubsub#node_type", coll, 1};
    CHECK_EQ_INT(pubsub_create(f.ps, ALICE, "c", &fcoll, 1, name), HERALD_ENOTACCEPTABLE);
    CHECK_EQ_INT(publish(f.ps, ALICE "/r", "urn:x:avatar", "a1"), 0);
    CHECK_EQ_INT(publish(f.ps, ALICE "/r", "urn:x:third", "t"), HERALD_EQUOTA);
    struct ps_config cfg;
    CHECK_EQ_INT(pubsub_config_get(f.ps, ALICE, "urn:x:nick", &cfg), 0);
    CHECK_EQ_INT(cfg.access_model, PS_ACCESS_PRESENCE);
    CHECK_EQ_INT((int)cfg.max_items, 1);
    CHECK_EQ_INT(cfg.send_last, PS_SEND_ON_SUB_AND_PRESENCE);
    /* Only alice creates or publishes on her JID. */
    CHECK_EQ_INT(publish(f.ps, BOB "/r", "urn:x:nick", "b"), HERALD_EFORBIDDEN);
    pubsub_scope(f.ps, NULL);
    pubsub_scope(f.ps, BOB);
    CHECK_EQ_INT(pubsub_create(f.ps, ALICE, "urn:x:nick", NULL, 0, name), HERALD_EFORBIDDEN);
    pubsub_scope(f.ps, NULL);
    /* The PEP quota is not pubsub's: alice's one pubsub node still fits
     * although she has two PEP nodes; a second pubsub node does not. */
    CHECK_EQ_INT(pubsub_create(f.ps, ALICE, "other", NULL, 0, name), HERALD_EQUOTA);
    /* Lists of pubsub.<domain> hold its node only. */
    int n = 0;
    struct ps_nodes_query nq = {.max = 10};
    struct ps_nodes_page page;
    CHECK_EQ_INT(pubsub_nodes_page(f.ps, ALICE, NULL, &nq, count_node, &n, &page), 0);
    CHECK_EQ_INT(n, 1);
    n = 0;
    CHECK_EQ_INT(pubsub_service_nodes(f.ps, ALICE, ALICE, count_node, &n), 0);
    CHECK_EQ_INT(n, 2);
    /* Events so far: alice's PEP nodes to the implicit recipients alone. */
    SEEN.recipients[0] = '\0';
    batch_commit(f.b);
    CHECK_EQ_STR(SEEN.recipients, BOB "/phone;" BOB "/desk;" BOB "/phone;" BOB "/desk");
    pubsub_scope(f.ps, ALICE);
    /* An explicit bare subscription of bob: his resources are not told twice. */
    struct ps_subscription sub;
    /* presence access: bob holds no presence subscription here */
    CHECK_EQ_INT(pubsub_subscribe(f.ps, BOB "/phone", "urn:x:avatar", BOB, NULL, 0, &sub),
                 HERALD_EPRESENCE_REQUIRED);
    static const char *const open[] = {"open"};
    struct ps_field fopen = {"pubsub#access_model", open, 1};
    CHECK_EQ_INT(pubsub_configure(f.ps, ALICE, "urn:x:avatar", &fopen, 1), 0);
    CHECK_EQ_INT(pubsub_subscribe(f.ps, BOB "/phone", "urn:x:avatar", BOB, NULL, 0, &sub), 0);
    CHECK_EQ_INT(publish(f.ps, ALICE "/r", "urn:x:avatar", "a2"), 0);
    pubsub_scope(f.ps, NULL);
    SEEN.n = 0;
    SEEN.recipients[0] = '\0';
    batch_commit(f.b);
    CHECK_EQ_STR(SEEN.services[SEEN.n - 1], ALICE);
    CHECK_EQ_STR(SEEN.nodes[SEEN.n - 1], "urn:x:avatar");
    CHECK_EQ_STR(SEEN.recipients, BOB);
    /* Stored keys load back into the right services. */
    fx_close(&f);
    CHECK(fx_open(&f));
    pubsub_scope(f.ps, ALICE);
    struct ps_node_info info;
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "urn:x:nick", &info), 0);
    CHECK_EQ_STR(info.name, "urn:x:nick");
    CHECK_EQ_STR(info.service, ALICE);
    pubsub_scope(f.ps, NULL);
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "urn:x:nick", &info), 0);
    CHECK(info.service == NULL);
    CHECK_EQ_INT(pubsub_node_get(f.ps, ALICE, "urn:x:avatar", &info), HERALD_ENOTFOUND);
    fx_close(&f);
    test_remove_dir(f.dir);
}

TEST_MAIN(TEST_CASE(test_ver_simple), TEST_CASE(test_ver_complex), TEST_CASE(test_caps_cache_lru),
          TEST_CASE(test_caps_query_bound), TEST_CASE(test_caps_query_timeout),
          TEST_CASE(test_scopes))
