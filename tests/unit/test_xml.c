/* test_xml.c - the stanza tree and serializer (xml.c) and the hardened stream
 * parser (xml_parser.c).
 *
 * Most checks are round trips: build a tree with awkward text and attribute
 * values, serialize it, feed the bytes to a parser behind a stream header and
 * compare the tree it delivers with the one built, node by node. The parser
 * tests feed streams whole, one byte at a time and split at every offset, and
 * check each stream error (not-well-formed, restricted-xml, policy-violation,
 * invalid-namespace, bad-format), stickiness and stream restarts. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xml.h"
#include "xml_parser.h"
#include "test.h"

#define HDR                                                                          \
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'" \
    " to='localhost' version='1.0'>"

/* ---- helpers --------------------------------------------------------------- */

static bool tree_equal(const struct xnode *a, const struct xnode *b);

static bool attrs_equal(const struct xattr *a, const struct xattr *b)
{
    for (; a && b; a = a->next, b = b->next) {
        if (strcmp(a->ns, b->ns) != 0 || strcmp(a->name, b->name) != 0 ||
            a->value_len != b->value_len || memcmp(a->value, b->value, a->value_len) != 0)
            return false;
    }
    return a == NULL && b == NULL;
}

static bool tree_equal(const struct xnode *a, const struct xnode *b)
{
    if (a->kind != b->kind)
        return false;
    if (a->kind == XN_TEXT)
        return a->text_len == b->text_len && memcmp(a->text, b->text, a->text_len) == 0;
    if (strcmp(a->ns, b->ns) != 0 || strcmp(a->name, b->name) != 0 ||
        !attrs_equal(a->attrs, b->attrs))
        return false;
    const struct xnode *ca = a->children, *cb = b->children;
    for (; ca && cb; ca = ca->next, cb = cb->next) {
        if (ca->parent != a || cb->parent != b || !tree_equal(ca, cb))
            return false;
    }
    return ca == NULL && cb == NULL;
}

/* What the callbacks saw. Each stanza is serialized (with NS_CLIENT in scope)
 * into `out`, followed by '|'. */
struct rec {
    struct xmlp *p;
    int opens, stanzas, closes;
    char default_ns[128];
    char hdr_to[128];
    struct buf out;
    const struct xnode *expect; /* compared with every stanza when set */
    int equal, unequal;
    const char *restart_on;     /* stanza name that triggers xmlp_restart */
    int stanza_after_close;
};

static void rec_open(void *ud, const struct xnode *hdr, const char *default_ns)
{
    struct rec *r = ud;
    r->opens++;
    snprintf(r->default_ns, sizeof(r->default_ns), "%s", default_ns);
    const char *to = xml_attr(hdr, "to");
    snprintf(r->hdr_to, sizeof(r->hdr_to), "%s", to ? to : "(none)");
    CHECK_EQ_STR(hdr->name, "stream");
    CHECK_EQ_STR(hdr->ns, NS_STREAM);
}

static void rec_stanza(void *ud, struct xnode *st, struct arena *a)
{
    struct rec *r = ud;
    r->stanzas++;
    if (r->closes)
        r->stanza_after_close++;
    CHECK(st->parent == NULL);
    CHECK(a != NULL);
    xml_serialize(&r->out, st, NS_CLIENT);
    buf_putc(&r->out, '|');
    if (r->expect) {
        if (tree_equal(r->expect, st))
            r->equal++;
        else
            r->unequal++;
    }
    if (r->restart_on && strcmp(st->name, r->restart_on) == 0)
        xmlp_restart(r->p);
}

static void rec_close(void *ud)
{
    struct rec *r = ud;
    r->closes++;
}

static const struct xmlp_callbacks rec_cb = {rec_open, rec_stanza, rec_close};

static void rec_init(struct rec *r, size_t max_stanza, unsigned max_depth)
{
    memset(r, 0, sizeof(*r));
    struct xmlp_limits lim = {max_stanza, max_depth};
    r->p = xmlp_new(&lim, &rec_cb, r);
    buf_init(&r->out, 0);
    CHECK(r->p != NULL);
}

static void rec_free(struct rec *r)
{
    xmlp_free(r->p);
    buf_free(&r->out);
}

static const char *rec_out(const struct rec *r) { return r->out.data ? r->out.data : ""; }

/* Feeds len bytes in chunks of `chunk` (0 = all at once). Returns the first
 * error, or XMLP_OK. */
static enum xmlp_error feed(struct rec *r, const char *s, size_t len, size_t chunk)
{
    if (chunk == 0)
        chunk = len ? len : 1;
    enum xmlp_error e = XMLP_OK;
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        /* A private copy so ASan sees any read past the chunk. */
        char *copy = malloc(n);
        memcpy(copy, s + off, n);
        e = xmlp_feed(r->p, copy, n);
        free(copy);
        if (e != XMLP_OK)
            break;
    }
    return e;
}

static enum xmlp_error feed_str(struct rec *r, const char *s, size_t chunk)
{
    return feed(r, s, strlen(s), chunk);
}

/* Parses HDR + s with generous limits; returns what was seen. */
static enum xmlp_error parse_once(const char *s, size_t chunk, struct rec *r)
{
    rec_init(r, 1 << 20, 64);
    enum xmlp_error e = feed_str(r, HDR, chunk);
    if (e == XMLP_OK)
        e = feed_str(r, s, chunk);
    return e;
}

static enum xmlp_error parse_err(const char *stream, size_t max_stanza, unsigned depth)
{
    struct rec r;
    rec_init(&r, max_stanza, depth);
    enum xmlp_error e = feed_str(&r, stream, 0);
    rec_free(&r);
    return e;
}

static char *serialize(const struct xnode *e)
{
    struct buf b;
    buf_init(&b, 0);
    xml_serialize(&b, e, NS_CLIENT);
    CHECK(buf_ok(&b));
    return buf_take(&b, NULL);
}

/* Serializes e, parses it back (whole and byte by byte) and checks that the
 * delivered tree equals e. */
static void check_round_trip(const struct xnode *e)
{
    char *s = serialize(e);
    static const size_t chunks[] = {0, 1, 7};
    for (size_t i = 0; i < 3; i++) {
        struct rec r;
        enum xmlp_error err = parse_once(s, chunks[i], &r);
        /* parse_once set no expectation; compare by re-serializing too. */
        CHECK_EQ_INT(err, XMLP_OK);
        CHECK_EQ_INT(r.stanzas, 1);
        size_t slen = strlen(s);
        CHECK_EQ_MEM(rec_out(&r), r.out.len ? r.out.len - 1 : 0, s, slen);
        rec_free(&r);

        rec_init(&r, 1 << 20, 64);
        r.expect = e;
        CHECK_EQ_INT(feed_str(&r, HDR, chunks[i]), XMLP_OK);
        CHECK_EQ_INT(feed_str(&r, s, chunks[i]), XMLP_OK);
        CHECK_EQ_INT(r.equal, 1);
        CHECK_EQ_INT(r.unequal, 0);
        if (r.unequal)
            fprintf(stderr, "  serialized: %s\n  reparsed:   %s\n", s, rec_out(&r));
        rec_free(&r);
    }
    free(s);
}

/* ---- tree and serializer ---------------------------------------------------- */

static void test_builders_and_lookups(void)
{
    struct arena a;
    arena_init(&a);
    struct xnode *iq = xml_elem_new(&a, NS_CLIENT, "iq");
    CHECK(iq != NULL);
    CHECK_EQ_INT(xml_set_attr(&a, iq, "type", "get"), 0);
    CHECK_EQ_INT(xml_set_attr(&a, iq, "id", "1"), 0);
    CHECK_EQ_INT(xml_set_attr(&a, iq, "type", "set"), 0); /* replaces */
    CHECK_EQ_STR(xml_attr(iq, "type"), "set");
    CHECK_EQ_STR(xml_attr(iq, "id"), "1");
    CHECK(xml_attr(iq, "to") == NULL);
    CHECK_EQ_INT(xml_set_attr_ns(&a, iq, "urn:x", "type", "nsval", 5), 0);
    CHECK_EQ_STR(xml_attr(iq, "type"), "set"); /* xml_attr: un-namespaced only */

    struct xnode *q = xml_add_elem(&a, iq, NS_DISCO_INFO, "query");
    CHECK_EQ_INT(xml_add_text(&a, iq, "hello ", 6), 0);
    struct xnode *p = xml_add_elem(&a, iq, NS_PING, "ping");
    CHECK_EQ_INT(xml_add_text(&a, iq, "world", 5), 0);
    CHECK_EQ_INT(xml_count_elems(iq), 2);
    CHECK(xml_first_elem(iq) == q);
    CHECK(xml_next_elem(q) == p);
    CHECK(xml_next_elem(p) == NULL);
    CHECK(xml_child(iq, NS_PING, "ping") == p);
    CHECK(xml_child(iq, NULL, "ping") == p);
    CHECK(xml_child(iq, NS_DISCO_INFO, NULL) == q);
    CHECK(xml_child(iq, NS_PING, "query") == NULL);
    CHECK_EQ_STR(xml_text(&a, iq), "hello world");
    CHECK_EQ_STR(xml_text(&a, q), "");
    CHECK(q->parent == iq);

    /* Adjacent text merges into one node. */
    struct xnode *body = xml_elem_new(&a, NS_CLIENT, "body");
    CHECK_EQ_INT(xml_add_text(&a, body, "ab", 2), 0);
    CHECK_EQ_INT(xml_add_text(&a, body, "cd", 2), 0);
    CHECK(body->children == body->last_child);
    CHECK_EQ_MEM(body->children->text, body->children->text_len, "abcd", 4);

    xml_del_attr(iq, "id");
    CHECK(xml_attr(iq, "id") == NULL);
    xml_del_attr(iq, "type"); /* the un-namespaced one; the urn:x one stays */
    CHECK(xml_attr(iq, "type") == NULL);
    CHECK(iq->attrs != NULL && strcmp(iq->attrs->ns, "urn:x") == 0);
    CHECK(iq->last_attr == iq->attrs);
    CHECK_EQ_INT(xml_set_attr(&a, iq, "id", "2"), 0); /* appends after a delete */
    CHECK_EQ_STR(xml_attr(iq, "id"), "2");
    xml_del_attr(iq, "nope");
    arena_free(&a);
}

static void test_serialize_exact(void)
{
    struct arena a;
    arena_init(&a);
    struct xnode *iq = xml_elem_new(&a, NS_CLIENT, "iq");
    xml_set_attr(&a, iq, "type", "get");
    xml_set_attr(&a, iq, "id", "1");
    struct xnode *q = xml_add_elem(&a, iq, NS_VERSION, "query");
    xml_add_elem(&a, q, NS_VERSION, "name"); /* same ns as parent: no xmlns */
    xml_add_elem(&a, q, "", "bare");         /* no namespace: undeclares */
    char *s = serialize(iq);
    CHECK_EQ_STR(s, "<iq type='get' id='1'><query xmlns='jabber:iq:version'><name/>"
                    "<bare xmlns=''/></query></iq>");
    free(s);

    /* The same tree written where another default ns is in scope. */
    struct buf b;
    buf_init(&b, 0);
    xml_serialize(&b, q, NS_VERSION);
    CHECK_EQ_STR(b.data, "<query><name/><bare xmlns=''/></query>");
    buf_reset(&b);
    xml_serialize(&b, q, NULL);
    CHECK_EQ_STR(b.data, "<query xmlns='jabber:iq:version'><name/><bare xmlns=''/></query>");
    buf_free(&b);

    struct xnode *m = xml_elem_new(&a, NS_CLIENT, "message");
    xml_set_attr(&a, m, "to", "a&b<c>'\"\t\n\r");
    struct xnode *body = xml_add_elem(&a, m, NS_CLIENT, "body");
    xml_add_text(&a, body, "a&b<c>'\"\t\n\r]]>", 14);
    s = serialize(m);
    CHECK_EQ_STR(s, "<message to='a&amp;b&lt;c&gt;&apos;&quot;&#9;&#10;&#13;'>"
                    "<body>a&amp;b&lt;c&gt;'\"\t\n&#13;]]&gt;</body></message>");
    free(s);

    struct xnode *x = xml_elem_new(&a, NS_CLIENT, "message");
    xml_set_attr(&a, x, "xml:lang", "en");
    xml_set_attr_ns(&a, x, "urn:a'b", "foo", "1", 1);
    xml_set_attr_ns(&a, x, "urn:c", "bar", "2", 1);
    s = serialize(x);
    CHECK_EQ_STR(s, "<message xml:lang='en' xmlns:a0='urn:a&apos;b' a0:foo='1'"
                    " xmlns:a1='urn:c' a1:bar='2'/>");
    free(s);
    arena_free(&a);
}

static void test_round_trip_escaping(void)
{
    struct arena a;
    arena_init(&a);
    static const char *const values[] = {
        "plain",
        "",
        "a&b",
        "<tag>",
        "it's \"quoted\"",
        "tab\there",
        "line\nfeed",
        "carriage\rreturn",
        "crlf\r\n and lfcr\n\r",
        "  leading and trailing spaces  ",
        "&amp; already escaped &lt;",
        "]]> cdata end",
        "\xC3\xBC" "n" "\xC3\xAF" "c" "\xC3\xB8" "d" "\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 "
        "\xEF\xBF\xBD",
        "mixed &<>'\"\t\n\r\xE2\x99\xA5 all",
    };
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        const char *v = values[i];
        struct xnode *m = xml_elem_new(&a, NS_CLIENT, "message");
        xml_set_attr(&a, m, "to", "user@example.com/res");
        xml_set_attr(&a, m, "id", v);
        xml_set_attr(&a, m, "xml:lang", "de");
        struct xnode *body = xml_add_elem(&a, m, NS_CLIENT, "body");
        if (v[0])
            xml_add_text(&a, body, v, strlen(v));
        struct xnode *ext = xml_add_elem(&a, m, "urn:example:ext", "data");
        xml_set_attr(&a, ext, "v", v);
        xml_set_attr_ns(&a, ext, "urn:example:attr", "w", v, strlen(v));
        if (v[0])
            xml_add_text(&a, ext, v, strlen(v));
        struct xnode *inner = xml_add_elem(&a, ext, "urn:example:ext", "inner");
        xml_add_elem(&a, inner, NS_CLIENT, "back-to-client");
        xml_add_elem(&a, inner, "", "no-ns");
        if (v[0])
            xml_add_text(&a, m, v, strlen(v)); /* mixed content after elements */
        check_round_trip(m);
        arena_reset(&a);
    }
    arena_free(&a);
}

static void test_round_trip_namespaces(void)
{
    struct arena a;
    arena_init(&a);
    /* Parsed input with prefixes comes back as default-namespace declarations
     * with the same names, namespaces and attributes. */
    const char *in =
        "<iq type='set' id='p1' xmlns:ps='http://jabber.org/protocol/pubsub'>"
        "<ps:pubsub><ps:publish node='n'><ps:item id='i'>"
        "<entry xmlns='http://www.w3.org/2005/Atom' xmlns:x='urn:x' x:a='1' b='2' xml:lang='fr'>"
        "<title>T&amp;T</title><x:ext/></entry>"
        "</ps:item></ps:publish></ps:pubsub></iq>";
    struct rec r;
    CHECK_EQ_INT(parse_once(in, 0, &r), XMLP_OK);
    CHECK_EQ_INT(r.stanzas, 1);
    const char *want =
        "<iq type='set' id='p1'><pubsub xmlns='http://jabber.org/protocol/pubsub'>"
        "<publish node='n'><item id='i'>"
        "<entry xmlns='http://www.w3.org/2005/Atom' xmlns:a0='urn:x' a0:a='1' b='2'"
        " xml:lang='fr'><title>T&amp;T</title><ext xmlns='urn:x'/></entry>"
        "</item></publish></pubsub></iq>|";
    CHECK_EQ_STR(rec_out(&r), want);
    rec_free(&r);

    /* And the canonical form is a fixed point. */
    char *canon = strdup(want);
    canon[strlen(canon) - 1] = '\0';
    CHECK_EQ_INT(parse_once(canon, 1, &r), XMLP_OK);
    CHECK_EQ_STR(rec_out(&r), want);
    rec_free(&r);
    free(canon);

    /* A tree whose elements move in and out of namespaces. */
    struct xnode *root = xml_elem_new(&a, NS_CLIENT, "presence");
    struct xnode *c = xml_add_elem(&a, root, "urn:one", "c");
    struct xnode *d = xml_add_elem(&a, c, "urn:two", "d");
    xml_add_elem(&a, d, "urn:one", "e");
    xml_add_elem(&a, d, NS_CLIENT, "f");
    xml_add_elem(&a, c, "urn:one", "g");
    check_round_trip(root);

    /* A stanza with no namespace at all. */
    struct xnode *nons = xml_elem_new(&a, "", "x");
    xml_add_elem(&a, nons, "", "y");
    char *s = serialize(nons);
    CHECK_EQ_STR(s, "<x xmlns=''><y/></x>");
    free(s);
    check_round_trip(nons);
    arena_free(&a);
}

static void test_xml_lang(void)
{
    struct rec r;
    CHECK_EQ_INT(parse_once("<message xml:lang='en-GB' to='a@b'><body xml:lang='de'>x</body>"
                            "</message>", 0, &r),
                 XMLP_OK);
    CHECK_EQ_STR(rec_out(&r), "<message xml:lang='en-GB' to='a@b'><body xml:lang='de'>x</body>"
                              "</message>|");
    rec_free(&r);
}

/* ---- parser ------------------------------------------------------------------ */

static const char stream_body[] =
    "<message to='a@b' id='1'><body>hi &amp; &lt;there&gt; &#x263A; &#9731;</body></message>"
    "<presence/>"
    "<iq type='get' id='2'><query xmlns='http://jabber.org/protocol/disco#info'"
    " node='n&apos;1'/></iq>"
    "<message><body>multi\nline\r\ntext</body><x xmlns='urn:x' a='1\t2\n3'>"
    "<y><z>deep</z></y></x></message>"
    "<message><body><![CDATA[<not a tag> & ]]]]></body></message>";

static void test_open_and_stanzas(void)
{
    struct rec r;
    CHECK_EQ_INT(parse_once(stream_body, 0, &r), XMLP_OK);
    CHECK_EQ_INT(r.opens, 1);
    CHECK_EQ_INT(r.stanzas, 5);
    CHECK_EQ_INT(r.closes, 0);
    CHECK_EQ_STR(r.default_ns, "jabber:client");
    CHECK_EQ_STR(r.hdr_to, "localhost");
    CHECK_EQ_STR(rec_out(&r),
                 "<message to='a@b' id='1'><body>hi &amp; &lt;there&gt; \xE2\x98\xBA"
                 " \xE2\x98\x83</body></message>|"
                 "<presence/>|"
                 "<iq type='get' id='2'><query xmlns='http://jabber.org/protocol/disco#info'"
                 " node='n&apos;1'/></iq>|"
                 "<message><body>multi\nline\ntext</body><x xmlns='urn:x' a='1 2 3'>"
                 "<y><z>deep</z></y></x></message>|"
                 "<message><body>&lt;not a tag&gt; &amp; ]]</body></message>|");
    rec_free(&r);

    /* An XML declaration before the header is fine (it is not a PI). */
    rec_init(&r, 4096, 8);
    CHECK_EQ_INT(feed_str(&r, "<?xml version='1.0' encoding='UTF-8'?>\n" HDR "<presence/>", 0),
                 XMLP_OK);
    CHECK_EQ_INT(r.opens, 1);
    CHECK_EQ_INT(r.stanzas, 1);
    rec_free(&r);

    /* A header without a default namespace reports "". */
    rec_init(&r, 4096, 8);
    CHECK_EQ_INT(feed_str(&r, "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
                          0),
                 XMLP_OK);
    CHECK_EQ_INT(r.opens, 1);
    CHECK_EQ_STR(r.default_ns, "");
    rec_free(&r);
}

/* HDR + stream_body into whole, and what one parser delivers for it in ref. */
static size_t parse_reference(char *whole, size_t cap, struct rec *ref)
{
    snprintf(whole, cap, "%s%s", HDR, stream_body);
    size_t len = strlen(whole);
    rec_init(ref, 1 << 16, 16);
    CHECK_EQ_INT(feed(ref, whole, len, 0), XMLP_OK);
    CHECK_EQ_INT(ref->stanzas, 5);
    return len;
}

static void test_split_boundaries(void)
{
    char whole[sizeof(HDR) + sizeof(stream_body)];
    struct rec ref;
    size_t len = parse_reference(whole, sizeof(whole), &ref);

    /* One byte at a time, and a few other chunk sizes. */
    static const size_t chunks[] = {1, 2, 3, 5, 13, 64};
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        struct rec r;
        rec_init(&r, 1 << 16, 16);
        CHECK_EQ_INT(feed(&r, whole, len, chunks[i]), XMLP_OK);
        CHECK_EQ_INT(r.opens, 1);
        CHECK_EQ_STR(rec_out(&r), rec_out(&ref));
        rec_free(&r);
    }
    /* Every two-piece split (this crosses every multi-byte UTF-8 sequence,
     * entity reference and tag). */
    unsigned bad = 0;
    for (size_t cut = 1; cut < len; cut++) {
        struct rec r;
        rec_init(&r, 1 << 16, 16);
        enum xmlp_error e = xmlp_feed(r.p, whole, cut);
        if (e == XMLP_OK)
            e = xmlp_feed(r.p, whole + cut, len - cut);
        if (e != XMLP_OK || r.out.len != ref.out.len ||
            memcmp(rec_out(&r), rec_out(&ref), ref.out.len) != 0) {
            if (bad++ == 0)
                fprintf(stderr, "split at %zu differs (err %d)\n", cut, (int)e);
        }
        rec_free(&r);
    }
    CHECK_EQ_INT(bad, 0);
    rec_free(&ref);
}

static void test_keepalives(void)
{
    struct rec r;
    rec_init(&r, 256, 8);
    CHECK_EQ_INT(feed_str(&r, HDR, 0), XMLP_OK);
    CHECK_EQ_INT(feed_str(&r, " \n\t\r\n  ", 0), XMLP_OK);
    CHECK_EQ_INT(feed_str(&r, "<presence/>", 0), XMLP_OK);
    CHECK_EQ_INT(feed_str(&r, "\n \n", 1), XMLP_OK);
    CHECK_EQ_INT(feed_str(&r, "<presence/>  <presence/>\n", 0), XMLP_OK);
    CHECK_EQ_INT(r.stanzas, 3);
    /* A long idle session: many single-space keepalives, far more bytes in
     * total than max_stanza, then a stanza. Whitespace between stanzas is
     * consumed as it arrives and must not count against the next stanza. */
    enum xmlp_error e = XMLP_OK;
    for (int i = 0; i < 2000 && e == XMLP_OK; i++)
        e = xmlp_feed(r.p, " ", 1);
    CHECK_EQ_INT(e, XMLP_OK);
    CHECK_EQ_INT(feed_str(&r, "<presence/>", 0), XMLP_OK);
    CHECK_EQ_INT(r.stanzas, 4);
    rec_free(&r);

    /* The same right after the header, before any stanza. */
    rec_init(&r, 256, 8);
    CHECK_EQ_INT(feed_str(&r, HDR, 0), XMLP_OK);
    e = XMLP_OK;
    for (int i = 0; i < 2000 && e == XMLP_OK; i++)
        e = xmlp_feed(r.p, "\n", 1);
    CHECK_EQ_INT(e, XMLP_OK);
    CHECK_EQ_INT(feed_str(&r, "<presence/>", 0), XMLP_OK);
    CHECK_EQ_INT(r.stanzas, 1);
    rec_free(&r);
}

static void test_many_stanzas_under_limit(void)
{
    /* The byte cap is per stanza, not per stream. */
    struct rec r;
    rec_init(&r, 512, 8);
    CHECK_EQ_INT(feed_str(&r, HDR, 0), XMLP_OK);
    char st[400];
    memset(st, 0, sizeof(st));
    memcpy(st, "<message><body>", 15);
    memset(st + 15, 'x', 300);
    strcat(st, "</body></message>");
    struct buf all;
    buf_init(&all, 0);
    for (int i = 0; i < 200; i++)
        buf_puts(&all, st);
    CHECK_EQ_INT(feed(&r, all.data, all.len, 0), XMLP_OK);
    CHECK_EQ_INT(feed(&r, all.data, all.len, 1), XMLP_OK);
    CHECK_EQ_INT(feed(&r, all.data, all.len, 97), XMLP_OK);
    CHECK_EQ_INT(r.stanzas, 600);
    /* The arena is reset per stanza: memory stays at one small block (plus
     * the small pending-text buffer). */
    CHECK(xmlp_memory(r.p) <= 2048 + 4096);
    buf_free(&all);
    rec_free(&r);
}

static void test_close(void)
{
    struct rec r;
    rec_init(&r, 4096, 8);
    CHECK_EQ_INT(feed_str(&r, HDR "<presence/></stream:stream>", 0), XMLP_OK);
    CHECK_EQ_INT(r.stanzas, 1);
    CHECK_EQ_INT(r.closes, 1);
    CHECK_EQ_INT(feed_str(&r, "<presence/>", 0), XMLP_CLOSED);
    CHECK_EQ_INT(xmlp_feed(r.p, "", 0), XMLP_OK);
    CHECK_EQ_INT(r.stanzas, 1);
    rec_free(&r);

    /* Byte by byte; bytes after the close in the same buffer are ignored
     * and never delivered. */
    rec_init(&r, 4096, 8);
    CHECK_EQ_INT(feed_str(&r, HDR "<presence/>\n</stream:stream>", 1), XMLP_OK);
    CHECK_EQ_INT(r.closes, 1);
    rec_free(&r);
    rec_init(&r, 4096, 8);
    CHECK_EQ_INT(feed_str(&r, HDR "</stream:stream><message/>", 0), XMLP_OK);
    CHECK_EQ_INT(r.closes, 1);
    CHECK_EQ_INT(r.stanzas, 0);
    CHECK_EQ_INT(r.stanza_after_close, 0);
    rec_free(&r);
}

static void test_not_well_formed(void)
{
    static const char *const cases[] = {
        HDR "<message><body></message>",
        HDR "<message></body>",
        HDR "<message a='1' a='2'/>",
        HDR "<message a=1/>",
        HDR "<message><body>&undefined;</body></message>",
        HDR "<message><body>&#0;</body></message>",
        HDR "<message><body>\x01</body></message>",
        HDR "<message><body>\xFF</body></message>",
        HDR "<message><body>\xC0\xAF</body></message>",
        HDR "<message><body>\xED\xA0\x80</body></message>",
        HDR "<undeclared:prefix/>",
        HDR "<message xmlns:p='' p:a='1'/>",
        HDR "<1message/>",
        HDR "<message><!ENTITY x 'y'></message>",
        HDR "</stream:wrong>",
        "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' a='<'>",
        "\xEF\xBB\xBF\xEF\xBB\xBF<x/>",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum xmlp_error e = parse_err(cases[i], 4096, 8);
        if (e != XMLP_NOT_WELL_FORMED)
            fprintf(stderr, "case %zu\n", i);
        CHECK_EQ_INT(e, XMLP_NOT_WELL_FORMED);
    }
    CHECK_EQ_STR(xmlp_condition(XMLP_NOT_WELL_FORMED), "not-well-formed");
}

static void test_restricted_xml(void)
{
    static const char *const cases[] = {
        "<!DOCTYPE stream:stream>" HDR,
        "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]>" HDR,
        "<!DOCTYPE x [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;&lol;'>]><x>&lol2;</x>",
        "<!DOCTYPE x SYSTEM 'file:///etc/passwd'><x/>",
        HDR "<?pi data?>",
        HDR "<message><?pi?></message>",
        "<?pi?>" HDR,
        HDR "<!-- comment -->",
        HDR "<message><!-- comment --></message>",
        HDR "<message><body>x<!---->y</body></message>",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum xmlp_error e = parse_err(cases[i], 4096, 8);
        if (e != XMLP_RESTRICTED_XML)
            fprintf(stderr, "case %zu\n", i);
        CHECK_EQ_INT(e, XMLP_RESTRICTED_XML);
        /* Byte by byte too: the refusal does not depend on chunking. */
        struct rec r;
        rec_init(&r, 4096, 8);
        CHECK_EQ_INT(feed_str(&r, cases[i], 1), XMLP_RESTRICTED_XML);
        CHECK_EQ_INT(r.stanzas, 0);
        rec_free(&r);
    }
    CHECK_EQ_STR(xmlp_condition(XMLP_RESTRICTED_XML), "restricted-xml");
}

static void test_policy_size(void)
{
    const size_t max = 1024;
    struct rec r;
    char body[4000];

    /* A stanza just under the cap passes; one well over it fails. */
    rec_init(&r, max, 8);
    CHECK_EQ_INT(feed_str(&r, HDR, 0), XMLP_OK);
    snprintf(body, sizeof(body), "<message><body>%0900d</body></message>", 0);
    CHECK_EQ_INT(feed_str(&r, body, 0), XMLP_OK);
    CHECK_EQ_INT(r.stanzas, 1);
    snprintf(body, sizeof(body), "<message><body>%02000d</body></message>", 0);
    CHECK_EQ_INT(feed_str(&r, body, 0), XMLP_POLICY_VIOLATION);
    CHECK_EQ_INT(r.stanzas, 1);
    rec_free(&r);

    /* The same, fed in small chunks: text is counted as it arrives. */
    rec_init(&r, max, 8);
    CHECK_EQ_INT(feed_str(&r, HDR, 0), XMLP_OK);
    CHECK_EQ_INT(feed_str(&r, body, 16), XMLP_POLICY_VIOLATION);
    CHECK_EQ_INT(r.stanzas, 0);
    rec_free(&r);

    /* Many small children add up. */
    rec_init(&r, max, 8);
    CHECK_EQ_INT(feed_str(&r, HDR "<message>", 0), XMLP_OK);
    enum xmlp_error e = XMLP_OK;
    for (int i = 0; i < 500 && e == XMLP_OK; i++)
        e = feed_str(&r, "<x/>", 0);
    CHECK_EQ_INT(e, XMLP_POLICY_VIOLATION);
    rec_free(&r);
    CHECK_EQ_STR(xmlp_condition(XMLP_POLICY_VIOLATION), "policy-violation");
}

/* A single start tag whose attribute value never ends: expat would buffer it
 * forever; the parser must give up after about max_stanza bytes, without the
 * tag ever completing. */
static void check_giant_tag(const char *prefix, const char *open, size_t max, size_t chunk)
{
    struct rec r;
    rec_init(&r, max, 8);
    CHECK_EQ_INT(feed_str(&r, prefix, 0), XMLP_OK);
    CHECK_EQ_INT(feed_str(&r, open, 0), XMLP_OK);
    char *piece = malloc(chunk);
    memset(piece, 'a', chunk);
    size_t sent = strlen(open);
    enum xmlp_error e = XMLP_OK;
    while (sent < 100 * max) {
        e = xmlp_feed(r.p, piece, chunk);
        sent += chunk;
        if (e != XMLP_OK)
            break;
    }
    CHECK_EQ_INT(e, XMLP_POLICY_VIOLATION);
    /* Refused within one chunk of the cap (the prefix counts too). */
    CHECK(sent <= max + chunk + 1);
    if (sent > max + chunk + 1)
        fprintf(stderr, "  refused only after %zu bytes of tag (max %zu)\n", sent, max);
    CHECK_EQ_INT(r.stanzas, 0);
    CHECK(xmlp_memory(r.p) <= 4 * max);
    /* Sticky. */
    CHECK_EQ_INT(xmlp_feed(r.p, "'/>", 3), XMLP_POLICY_VIOLATION);
    CHECK_EQ_INT(r.stanzas, 0);
    free(piece);
    rec_free(&r);
}

static void test_policy_giant_start_tag(void)
{
    check_giant_tag(HDR, "<message to='", 1024, 16);
    check_giant_tag(HDR, "<message to='", 1024, 1);
    check_giant_tag(HDR, "<message to='", 4096, 100);
    /* A giant tag nested inside a stanza. */
    check_giant_tag(HDR "<message>", "<x y='", 1024, 16);
    /* A giant element name. */
    check_giant_tag(HDR, "<m", 1024, 16);
    /* A giant stream header. */
    check_giant_tag("", "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' to='",
                    1024, 16);
}

static void make_nested(char *out, size_t cap, unsigned depth)
{
    size_t n = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < depth; i++)
        n += (size_t)snprintf(out + n, cap - n, "<e%u>", i);
    for (unsigned i = depth; i-- > 0;)
        n += (size_t)snprintf(out + n, cap - n, "</e%u>", i);
}

static void test_policy_depth(void)
{
    /* max_depth counts the stanza itself as depth 1 (xml_parser.h). */
    char s[4096];
    for (unsigned max = 2; max <= 20; max += 3) {
        make_nested(s, sizeof(s), max);
        struct rec r;
        rec_init(&r, 1 << 16, max);
        CHECK_EQ_INT(feed_str(&r, HDR, 0), XMLP_OK);
        enum xmlp_error e = feed_str(&r, s, 0);
        if (e != XMLP_OK)
            fprintf(stderr, "  depth %u refused with max_depth %u\n", max, max);
        CHECK_EQ_INT(e, XMLP_OK);
        CHECK_EQ_INT(r.stanzas, 1);
        make_nested(s, sizeof(s), max + 1);
        CHECK_EQ_INT(feed_str(&r, s, 0), XMLP_POLICY_VIOLATION);
        CHECK_EQ_INT(r.stanzas, 1);
        rec_free(&r);
    }
    /* Very deep input with a small limit is refused early, byte by byte too. */
    make_nested(s, sizeof(s), 300);
    struct rec r;
    rec_init(&r, 1 << 16, 16);
    CHECK_EQ_INT(feed_str(&r, HDR, 0), XMLP_OK);
    CHECK_EQ_INT(feed_str(&r, s, 1), XMLP_POLICY_VIOLATION);
    CHECK_EQ_INT(r.stanzas, 0);
    rec_free(&r);
}

static void test_invalid_namespace(void)
{
    static const char *const cases[] = {
        "<foo/>",
        "<stream xmlns='http://etherx.jabber.org/streams'/>" /* right ns and name: ok */,
        "<stream:stream xmlns:stream='urn:wrong'>",
        "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>",
        "<stream:stream xmlns:stream='http://etherx.jabber.org/streams/'>",
    };
    CHECK_EQ_INT(parse_err(cases[0], 4096, 8), XMLP_INVALID_NAMESPACE);
    CHECK_EQ_INT(parse_err(cases[1], 4096, 8), XMLP_OK);
    for (size_t i = 2; i < sizeof(cases) / sizeof(cases[0]); i++)
        CHECK_EQ_INT(parse_err(cases[i], 4096, 8), XMLP_INVALID_NAMESPACE);
    CHECK_EQ_STR(xmlp_condition(XMLP_INVALID_NAMESPACE), "invalid-namespace");
}

static void test_bad_format(void)
{
    CHECK_EQ_INT(parse_err(HDR "hello", 4096, 8), XMLP_BAD_FORMAT);
    CHECK_EQ_INT(parse_err(HDR "<presence/>x<presence/>", 4096, 8), XMLP_BAD_FORMAT);
    CHECK_EQ_INT(parse_err(HDR "&amp;", 4096, 8), XMLP_BAD_FORMAT);
    CHECK_EQ_INT(parse_err(HDR "  \xC2\xA0", 4096, 8), XMLP_BAD_FORMAT); /* nbsp */
    struct rec r;
    rec_init(&r, 4096, 8);
    CHECK_EQ_INT(feed_str(&r, HDR "  <presence/>  x", 1), XMLP_BAD_FORMAT);
    CHECK_EQ_INT(r.stanzas, 1);
    rec_free(&r);
    CHECK_EQ_STR(xmlp_condition(XMLP_BAD_FORMAT), "bad-format");
}

static void test_sticky_errors(void)
{
    struct rec r;
    rec_init(&r, 4096, 8);
    CHECK_EQ_INT(feed_str(&r, HDR "<message></body>", 0), XMLP_NOT_WELL_FORMED);
    CHECK_EQ_INT(feed_str(&r, "<presence/>", 0), XMLP_NOT_WELL_FORMED);
    CHECK_EQ_INT(xmlp_feed(r.p, "", 0), XMLP_NOT_WELL_FORMED);
    /* Not even a restart clears an error (the stream is dead). */
    CHECK_EQ_INT(feed_str(&r, HDR "<presence/>", 0), XMLP_NOT_WELL_FORMED);
    CHECK_EQ_INT(r.stanzas, 0);
    rec_free(&r);

    rec_init(&r, 4096, 8);
    CHECK_EQ_INT(feed_str(&r, HDR "<presence/><?pi?><presence/>", 0), XMLP_RESTRICTED_XML);
    CHECK_EQ_INT(r.stanzas, 1);
    CHECK_EQ_INT(feed_str(&r, "<presence/>", 0), XMLP_RESTRICTED_XML);
    CHECK_EQ_INT(r.stanzas, 1);
    rec_free(&r);
}

static void test_restart_from_callback(void)
{
    static const char *const hdr2 =
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client'"
        " xmlns:stream='http://etherx.jabber.org/streams' to='second' version='1.0'>";
    static const size_t chunks[] = {0, 1, 5};
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        struct rec r;
        rec_init(&r, 4096, 8);
        r.restart_on = "starttls";
        CHECK_EQ_INT(feed_str(&r, HDR "<presence/><starttls xmlns='urn:ietf:params:xml:ns:"
                                  "xmpp-tls'/>",
                              chunks[i]),
                     XMLP_OK);
        CHECK_EQ_INT(r.stanzas, 2);
        /* A new header (with an XML declaration) parses as a fresh stream. */
        CHECK_EQ_INT(feed_str(&r, hdr2, chunks[i]), XMLP_OK);
        CHECK_EQ_INT(r.opens, 2);
        CHECK_EQ_STR(r.hdr_to, "second");
        CHECK_EQ_STR(r.default_ns, "jabber:client");
        CHECK_EQ_INT(feed_str(&r, "<message><body>after</body></message>", chunks[i]),
                     XMLP_OK);
        CHECK_EQ_INT(r.stanzas, 3);
        CHECK_EQ_INT(feed_str(&r, "</stream:stream>", chunks[i]), XMLP_OK);
        CHECK_EQ_INT(r.closes, 1);
        rec_free(&r);
    }

    /* Bytes after the restarting stanza in the same buffer are discarded:
     * here they would be an error if parsed (text before a root element). */
    struct rec r;
    rec_init(&r, 4096, 8);
    r.restart_on = "success";
    CHECK_EQ_INT(feed_str(&r, HDR "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>junk<x", 0),
                 XMLP_OK);
    CHECK_EQ_INT(r.stanzas, 1);
    CHECK_EQ_INT(feed_str(&r, HDR "<presence/>", 0), XMLP_OK);
    CHECK_EQ_INT(r.opens, 2);
    CHECK_EQ_INT(r.stanzas, 2);
    rec_free(&r);

    /* After a restart the old stream's elements are gone: a close tag for the
     * old stream is an error in the new one, and so is a stanza without a
     * header. */
    rec_init(&r, 4096, 8);
    r.restart_on = "proceed";
    CHECK_EQ_INT(feed_str(&r, HDR "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", 0),
                 XMLP_OK);
    CHECK_EQ_INT(feed_str(&r, "<presence/>", 0), XMLP_INVALID_NAMESPACE);
    rec_free(&r);

    /* Restart outside a callback takes effect at once, mid-stream. */
    rec_init(&r, 4096, 8);
    CHECK_EQ_INT(feed_str(&r, HDR "<presence/><message><bo", 0), XMLP_OK);
    xmlp_restart(r.p);
    CHECK_EQ_INT(feed_str(&r, HDR "<presence/>", 1), XMLP_OK);
    CHECK_EQ_INT(r.opens, 2);
    CHECK_EQ_INT(r.stanzas, 2);
    rec_free(&r);

    /* Many restarts in a row do not leak or wedge the parser. */
    rec_init(&r, 4096, 8);
    r.restart_on = "r";
    for (int i = 0; i < 100; i++)
        CHECK_EQ_INT(feed_str(&r, HDR "<r/>", 0), XMLP_OK);
    CHECK_EQ_INT(r.opens, 100);
    CHECK_EQ_INT(r.stanzas, 100);
    rec_free(&r);
}

static void test_valid_chars(void)
{
    struct {
        const char *s;
        size_t len;
        bool ok;
    } cases[] = {
        {"", 0, true},
        {"abc", 3, true},
        {"\t\n\r", 3, true},
        {"\x7f", 1, true},                /* DEL is an XML Char */
        {"\xC3\xA9", 2, true},            /* U+00E9 */
        {"\xC2\x80", 2, true},            /* U+0080, smallest 2-byte */
        {"\xDF\xBF", 2, true},            /* U+07FF */
        {"\xE0\xA0\x80", 3, true},        /* U+0800, smallest 3-byte */
        {"\xE2\x82\xAC", 3, true},        /* U+20AC */
        {"\xED\x9F\xBF", 3, true},        /* U+D7FF, below the surrogates */
        {"\xEE\x80\x80", 3, true},        /* U+E000, above them */
        {"\xEF\xBF\xBD", 3, true},        /* U+FFFD */
        {"\xF0\x90\x80\x80", 4, true},    /* U+10000 */
        {"\xF0\x9F\x98\x80", 4, true},    /* U+1F600 */
        {"\xF4\x8F\xBF\xBF", 4, true},    /* U+10FFFF */
        {"a\xC3\xA9z\xF0\x9F\x98\x80!", 8, true},
        {"\0", 1, false},                 /* NUL */
        {"a\0b", 3, false},
        {"\x01", 1, false},
        {"\x08", 1, false},
        {"\x0b", 1, false},
        {"\x0c", 1, false},
        {"\x1f", 1, false},
        {"\x80", 1, false},               /* lone continuation byte */
        {"\xBF", 1, false},
        {"\xC0\x80", 2, false},           /* overlong NUL */
        {"\xC0\xAF", 2, false},           /* overlong '/' */
        {"\xC1\xBF", 2, false},
        {"\xE0\x80\x80", 3, false},       /* overlong 3-byte */
        {"\xE0\x9F\xBF", 3, false},
        {"\xF0\x80\x80\x80", 4, false},   /* overlong 4-byte */
        {"\xF0\x8F\xBF\xBF", 4, false},
        {"\xED\xA0\x80", 3, false},       /* U+D800 */
        {"\xED\xBF\xBF", 3, false},       /* U+DFFF */
        {"\xEF\xBF\xBE", 3, false},       /* U+FFFE */
        {"\xEF\xBF\xBF", 3, false},       /* U+FFFF */
        {"\xF4\x90\x80\x80", 4, false},   /* U+110000 */
        {"\xF5\x80\x80\x80", 4, false},
        {"\xF8\x88\x80\x80\x80", 5, false}, /* 5-byte form */
        {"\xFE", 1, false},
        {"\xFF", 1, false},
        {"\xC3", 1, false},               /* truncated */
        {"a\xC3", 2, false},
        {"\xE2\x82", 2, false},
        {"\xF0\x9F\x98", 3, false},
        {"\xC3\x41", 2, false},           /* bad continuation */
        {"\xE2\x41\xAC", 3, false},
        {"\xF0\x9F\xC3\xA9", 4, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool got = xml_valid_chars(cases[i].s, cases[i].len);
        if (got != cases[i].ok) {
            fprintf(stderr, "case %zu: ", i);
            test_print_bytes_(cases[i].s, cases[i].len);
            fputc('\n', stderr);
        }
        CHECK_EQ_INT(got, cases[i].ok);
    }
    /* The length is honoured: bytes past it are not read. */
    CHECK(xml_valid_chars("ab\x01", 2));
    CHECK(!xml_valid_chars("\xC3\xA9", 1));
}

/* Regressions, each named for what broke. */
static void test_regressions(void)
{
    struct rec r;
    /* An empty root element with the wrong name: expat reports its end after
     * the start handler stopped the parser; that used to walk a NULL tree. */
    CHECK_EQ_INT(parse_err("<foo/>", 4096, 8), XMLP_INVALID_NAMESPACE);
    CHECK_EQ_INT(parse_err("<?xml version='1.0'?><a:b xmlns:a='urn:a'/>", 4096, 8),
                 XMLP_INVALID_NAMESPACE);
    /* The same for an empty element refused by the depth or size limit. */
    CHECK_EQ_INT(parse_err(HDR "<a><b><c/></b></a>", 4096, 2), XMLP_POLICY_VIOLATION);
    rec_init(&r, 130, 8);
    CHECK_EQ_INT(feed_str(&r, HDR, 0), XMLP_OK);
    CHECK_EQ_INT(feed_str(&r, "<message><body>0123456789012345678901234567890123456789"
                              "0123456789012345678901234567890123456789"
                              "0123456789012345678901234567890123456789</body>"
                              "<x/><y/></message>", 0),
                 XMLP_POLICY_VIOLATION);
    rec_free(&r);

    /* An element in the XML namespace (<xml:foo/>) used to serialize as
     * xmlns='http://www.w3.org/XML/1998/namespace', which is not
     * well-formed: one such payload would break every subscriber's stream. */
    const char *in = "<message><xml:foo a='1'><bar/><xml:baz>t</xml:baz></xml:foo>"
                     "<q xmlns='urn:q'><xml:foo><r/></xml:foo></q></message>";
    const char *want = "<message><xml:foo a='1'><bar/><xml:baz>t</xml:baz></xml:foo>"
                       "<q xmlns='urn:q'><xml:foo><r/></xml:foo></q></message>|";
    CHECK_EQ_INT(parse_once(in, 0, &r), XMLP_OK);
    CHECK_EQ_STR(rec_out(&r), want);
    rec_free(&r);
    char *canon = strdup(want);
    canon[strlen(canon) - 1] = '\0';
    CHECK_EQ_INT(parse_once(canon, 0, &r), XMLP_OK);
    CHECK_EQ_STR(rec_out(&r), want);
    rec_free(&r);
    free(canon);

    /* A long xml:* attribute name is well-formed; it used to be refused as
     * out of memory (a fixed 64-byte buffer). */
    char long_attr[512] = "<message xml:";
    memset(long_attr + 13, 'a', 200);
    strcpy(long_attr + 213, "='v'/>");
    CHECK_EQ_INT(parse_once(long_attr, 0, &r), XMLP_OK);
    CHECK_EQ_INT(r.stanzas, 1);
    CHECK(r.out.len > 200);
    rec_free(&r);
}

static void test_memory_linear(void)
{
    struct rec r;
    /* Memory per stanza is linear in its size. Every element names its
     * namespace by URI; copying the URI per element let one long xmlns
     * declaration followed by many <a/> allocate ~1000x the input (GiBs at
     * the default 256 KiB cap, before authentication). */
    size_t max = 64 * 1024, urilen = 30000;
    rec_init(&r, max, 8);
    CHECK_EQ_INT(feed_str(&r, HDR, 0), XMLP_OK);
    char *decl = malloc(urilen + 32);
    memcpy(decl, "<m xmlns='", 10);
    memset(decl + 10, 'u', urilen);
    memcpy(decl + 10 + urilen, "'>", 3);
    enum xmlp_error e = feed_str(&r, decl, 0);
    size_t fed = strlen(decl), peak = 0;
    while (e == XMLP_OK) {
        e = xmlp_feed(r.p, "<a/>", 4);
        fed += 4;
        if (xmlp_memory(r.p) > peak)
            peak = xmlp_memory(r.p);
    }
    CHECK_EQ_INT(e, XMLP_POLICY_VIOLATION);
    CHECK(peak < 40 * max);
    if (peak >= 40 * max)
        fprintf(stderr, "  arena peaked at %zu bytes for %zu bytes of input\n", peak, fed);
    free(decl);
    rec_free(&r);

    /* The same with the URI cycling through several prefixes. */
    rec_init(&r, max, 8);
    CHECK_EQ_INT(feed_str(&r, HDR "<m", 0), XMLP_OK);
    char *d = malloc(2100);
    for (int i = 0; i < 5; i++) {
        int n = snprintf(d, 64, " xmlns:p%d='", i);
        memset(d + n, 'v', 2000);
        snprintf(d + n + 2000, 64, "%d'", i);
        CHECK_EQ_INT(feed_str(&r, d, 0), XMLP_OK);
    }
    free(d);
    CHECK_EQ_INT(feed_str(&r, ">", 0), XMLP_OK);
    e = XMLP_OK;
    peak = 0;
    for (int i = 0; e == XMLP_OK; i++) {
        char el[16];
        snprintf(el, sizeof(el), "<p%d:a/>", i % 5);
        e = feed_str(&r, el, 0);
        if (xmlp_memory(r.p) > peak)
            peak = xmlp_memory(r.p);
    }
    CHECK_EQ_INT(e, XMLP_POLICY_VIOLATION);
    CHECK(peak < 40 * max);
    rec_free(&r);
}

/* Peak parser memory while feeding HDR + s in chunks. */
static size_t peak_memory(const char *s, size_t max, size_t chunk, enum xmlp_error *err,
                          struct rec *r)
{
    rec_init(r, max, 8);
    CHECK_EQ_INT(feed_str(r, HDR, 0), XMLP_OK);
    size_t len = strlen(s), peak = 0;
    *err = XMLP_OK;
    for (size_t off = 0; off < len && *err == XMLP_OK; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        *err = xmlp_feed(r->p, s + off, n);
        if (xmlp_memory(r->p) > peak)
            peak = xmlp_memory(r->p);
    }
    return peak;
}

static void test_text_linear(void)
{
    /* expat reports text in pieces: every line and every entity reference
     * separately, and whatever a read returned. Merging each piece into the
     * tree used to copy the whole run so far: a 64 KiB body of newlines took
     * 2 GiB of arena. */
    static const char *const fills[] = {"\n", "&lt;", "ab", "\xC3\xA9"};
    static const size_t chunks[] = {1 << 20, 3};
    size_t max = 64 * 1024;
    for (size_t f = 0; f < 4; f++) {
        struct buf b, want;
        buf_init(&b, 0);
        buf_init(&want, 0);
        buf_puts(&b, "<message><body>");
        buf_puts(&want, "<message><body>");
        while (b.len < max - 1024) {
            buf_puts(&b, fills[f]);
            buf_xml_text(&want, f == 1 ? "<" : fills[f], f == 1 ? 1 : strlen(fills[f]));
        }
        buf_puts(&b, "</body></message>");
        buf_puts(&want, "</body></message>|");
        for (size_t c = 0; c < 2; c++) {
            struct rec r;
            enum xmlp_error e;
            size_t peak = peak_memory(b.data, max, chunks[c], &e, &r);
            CHECK_EQ_INT(e, XMLP_OK);
            CHECK_EQ_INT(r.stanzas, 1);
            CHECK(peak < 8 * max);
            if (peak >= 8 * max)
                fprintf(stderr, "  fill %zu chunk %zu: peak %zu for %zu bytes\n", f, chunks[c],
                        peak, b.len);
            CHECK(r.out.len == want.len && memcmp(r.out.data, want.data, want.len) == 0);
            rec_free(&r);
        }
        buf_free(&b);
        buf_free(&want);
    }
    /* Text split by child elements stays in separate nodes, in order. */
    struct rec r;
    CHECK_EQ_INT(parse_once("<m>a&amp;b<x/>c\nd<y>e</y>&lt;f</m>", 1, &r), XMLP_OK);
    CHECK_EQ_STR(rec_out(&r), "<m>a&amp;b<x/>c\nd<y>e</y>&lt;f</m>|");
    rec_free(&r);
}

static void test_attributes_linear(void)
{
    struct rec r;
    /* Attributes are appended without a duplicate search (expat refuses
     * duplicates, also by expanded name), in document order. */
    CHECK_EQ_INT(parse_err(HDR "<m xmlns:p='urn:u' xmlns:q='urn:u' p:a='1' q:a='2'/>", 4096, 8),
                 XMLP_NOT_WELL_FORMED);
    CHECK_EQ_INT(parse_err(HDR "<m a='1' xml:lang='en' xml:lang='de'/>", 4096, 8),
                 XMLP_NOT_WELL_FORMED);
    struct buf many, wantb;
    buf_init(&many, 0);
    buf_init(&wantb, 0);
    buf_puts(&many, "<m xmlns:p='urn:p'");
    /* 1,000 uses of urn:p: declared once, on the root (see xml.c). */
    buf_puts(&wantb, "<m xmlns:n='urn:p'");
    for (int i = 0; i < 3000; i++) {
        if (i % 3) {
            buf_printf(&many, " a%d='%d'", i, i);
            buf_printf(&wantb, " a%d='%d'", i, i);
        } else {
            buf_printf(&many, " p:a%d='%d'", i, i);
            buf_printf(&wantb, " n:a%d='%d'", i, i);
        }
    }
    buf_puts(&many, "/>");
    buf_puts(&wantb, "/>|");
    CHECK_EQ_INT(parse_once(many.data, 0, &r), XMLP_OK);
    CHECK_EQ_INT(r.stanzas, 1);
    CHECK_EQ_STR(rec_out(&r), wantb.data);
    buf_free(&many);
    buf_free(&wantb);
    rec_free(&r);
}

static void test_strings(void)
{
    for (int e = XMLP_OK; e <= XMLP_CLOSED; e++) {
        CHECK(xmlp_strerror((enum xmlp_error)e) != NULL);
        CHECK(xmlp_condition((enum xmlp_error)e) != NULL);
    }
    CHECK_EQ_STR(xmlp_condition(XMLP_NOMEM), "resource-constraint");
    CHECK_EQ_STR(xmlp_strerror(XMLP_OK), "ok");
}

/* Feeds len bytes in chunks of `chunk`, trying xmlp_hibernate after every
 * chunk; counts how often it released the parser. */
static enum xmlp_error feed_hibernating(struct rec *r, const char *s, size_t len, size_t chunk,
                                        unsigned *slept)
{
    enum xmlp_error e = XMLP_OK;
    for (size_t off = 0; off < len && e == XMLP_OK; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        char *copy = malloc(n);
        memcpy(copy, s + off, n);
        e = xmlp_feed(r->p, copy, n);
        free(copy);
        if (xmlp_hibernate(r->p))
            (*slept)++;
    }
    return e;
}

/* A hibernated parser wakes into the same state: the same stanzas, one
 * on_open, the header's own prefixes and namespaces, limits and close. */
static void test_hibernate(void)
{
    char whole[sizeof(HDR) + sizeof(stream_body)];
    struct rec ref;
    size_t len = parse_reference(whole, sizeof(whole), &ref);

    static const size_t chunks[] = {1, 2, 3, 5, 13, 64, 4096};
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        struct rec r;
        unsigned slept = 0;
        rec_init(&r, 1 << 16, 16);
        CHECK_EQ_INT(feed_hibernating(&r, whole, len, chunks[i], &slept), XMLP_OK);
        CHECK_EQ_INT(r.opens, 1);
        CHECK_EQ_INT(r.stanzas, 5);
        CHECK_EQ_STR(rec_out(&r), rec_out(&ref));
        CHECK(slept >= 1); /* at least after the last stanza */
        CHECK_EQ_INT(xmlp_memory(r.p), 0);
        rec_free(&r);
    }
    rec_free(&ref);

    /* Not mid-stanza, not with unparsed bytes, not twice. */
    struct rec r;
    rec_init(&r, 4096, 8);
    CHECK(!xmlp_hibernate(r.p)); /* no header yet */
    CHECK_EQ_INT(feed_str(&r, HDR, 0), XMLP_OK);
    CHECK(xmlp_hibernate(r.p));  /* right after the header */
    CHECK(!xmlp_hibernate(r.p)); /* already */
    CHECK_EQ_INT(feed_str(&r, "<message><body>x", 0), XMLP_OK);
    CHECK(!xmlp_hibernate(r.p));
    CHECK_EQ_INT(feed_str(&r, "</body></message><pres", 0), XMLP_OK);
    CHECK(!xmlp_hibernate(r.p)); /* '<pres' is still in expat's buffer */
    CHECK_EQ_INT(feed_str(&r, "ence/>", 0), XMLP_OK);
    CHECK_EQ_INT(r.stanzas, 2);
    CHECK(xmlp_hibernate(r.p));
    CHECK_EQ_INT(feed_str(&r, "  \n", 0), XMLP_OK); /* keepalives wake it too */
    CHECK(xmlp_hibernate(r.p));
    /* The per-stanza cap still holds after waking. */
    char big[5000];
    memset(big, 'x', sizeof(big));
    CHECK_EQ_INT(feed_str(&r, "<message><body>", 0), XMLP_OK);
    CHECK_EQ_INT(feed(&r, big, sizeof(big), 0), XMLP_POLICY_VIOLATION);
    CHECK(!xmlp_hibernate(r.p)); /* failed parsers stay as they are */
    rec_free(&r);

    /* A header with its own prefixes: the stream prefix 's', a prefix
     * declared on the header and used in stanzas, the close tag. */
    rec_init(&r, 4096, 8);
    CHECK_EQ_INT(feed_str(&r, "<?xml version='1.0'?><s:stream xmlns='jabber:client'"
                              " xmlns:s='http://etherx.jabber.org/streams'"
                              " xmlns:e='urn:example' to='localhost' version='1.0'>", 0),
                 XMLP_OK);
    CHECK(xmlp_hibernate(r.p));
    CHECK_EQ_INT(feed_str(&r, "<message><e:x e:a='1'/></message>", 0), XMLP_OK);
    CHECK(xmlp_hibernate(r.p));
    CHECK_EQ_INT(feed_str(&r, "<e:y/>", 0), XMLP_OK);
    CHECK(xmlp_hibernate(r.p));
    CHECK_EQ_INT(feed_str(&r, "</s:stream>", 0), XMLP_OK);
    CHECK_EQ_INT(r.opens, 1);
    CHECK_EQ_INT(r.stanzas, 2);
    CHECK_EQ_INT(r.closes, 1);
    CHECK_EQ_STR(rec_out(&r), "<message><x xmlns='urn:example' xmlns:a0='urn:example' a0:a='1'/>"
                              "</message>|<y xmlns='urn:example'/>|");
    rec_free(&r);

    /* A wrong close tag after waking is still an error. */
    rec_init(&r, 4096, 8);
    CHECK_EQ_INT(feed_str(&r, HDR, 0), XMLP_OK);
    CHECK(xmlp_hibernate(r.p));
    CHECK_EQ_INT(feed_str(&r, "</stream:other>", 0), XMLP_NOT_WELL_FORMED);
    rec_free(&r);

    /* A restart requested by a stanza after waking (STARTTLS, SASL), and a
     * new header afterwards. */
    rec_init(&r, 4096, 8);
    r.restart_on = "success";
    CHECK_EQ_INT(feed_str(&r, HDR, 0), XMLP_OK);
    CHECK(xmlp_hibernate(r.p));
    CHECK_EQ_INT(feed_str(&r, "<success/>", 0), XMLP_OK);
    CHECK_EQ_INT(feed_str(&r, HDR "<presence/>", 0), XMLP_OK);
    CHECK(xmlp_hibernate(r.p));
    CHECK_EQ_INT(feed_str(&r, "<presence/>", 0), XMLP_OK);
    CHECK_EQ_INT(r.opens, 2);
    CHECK_EQ_INT(r.stanzas, 3);
    rec_free(&r);
}

/* The sized attribute writer (fan-out envelopes) agrees with buf_xml_attr. */
static void test_sized_attr_escape(void)
{
    const char *cases[] = {"", "alice@localhost/r", "a&b<c>d'e\"f\tg\nh\ri", "&&&&", "x'"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct buf b;
        buf_init(&b, 0);
        buf_xml_attr(&b, cases[i], strlen(cases[i]));
        char out[128];
        size_t n = xml_attr_len(cases[i], strlen(cases[i]));
        char *end = xml_attr_put(out, cases[i], strlen(cases[i]));
        CHECK_EQ_INT(n, b.len);
        CHECK_EQ_MEM(out, (size_t)(end - out), b.data ? b.data : "", b.len);
        buf_free(&b);
    }
}

/* ---- issue 11: linear serialization and the exact stanza limit ------------- */

/* The attack shape of issue 11 finding 2: a prefix bound to a uri_len-byte
 * URI, used on n empty elements of a message. */
static char *attack_stanza(size_t uri_len, size_t n, bool attrs, size_t *len)
{
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "<message to='b@localhost' xmlns:p='urn:");
    for (size_t i = 4; i < uri_len; i++)
        buf_putc(&b, (char)('a' + i % 26));
    buf_puts(&b, "'>");
    for (size_t i = 0; i < n; i++)
        buf_puts(&b, attrs ? "<a p:x=''/>" : "<p:a/>");
    buf_puts(&b, "</message>");
    CHECK(buf_ok(&b));
    return buf_take(&b, len);
}

/* Parses one stanza behind HDR; returns its serialization (NUL-terminated,
 * without the '|') and its byte count. out_max caps the serializer's buffer
 * (0 = default); *ok says whether it stayed within it. */
static char *parse_serialize(const char *st, size_t out_max, size_t *len, bool *ok)
{
    struct rec r;
    rec_init(&r, 1 << 20, 64);
    if (out_max)
        r.out.max = out_max;
    CHECK_EQ_INT(feed_str(&r, HDR, 0), XMLP_OK);
    CHECK_EQ_INT(feed_str(&r, st, 0), out_max ? XMLP_OK : XMLP_OK);
    CHECK_EQ_INT(r.stanzas, 1);
    *ok = buf_ok(&r.out);
    if (*ok && r.out.len > 0)
        r.out.len--; /* the '|' */
    char *s = *ok ? buf_take(&r.out, len) : NULL;
    rec_free(&r);
    return s;
}

static void test_serialize_ns_reuse(void)
{
    struct arena a;
    arena_init(&a);
    char uri[700];
    memset(uri, 'u', sizeof(uri) - 1);
    memcpy(uri, "urn:", 4);
    uri[sizeof(uri) - 1] = '\0';

    /* A short URI repeated a few times keeps the plain form, byte for byte. */
    struct xnode *m = xml_elem_new(&a, NS_CLIENT, "message");
    xml_add_elem(&a, m, "urn:x", "a");
    xml_add_elem(&a, m, "urn:x", "a");
    char *s = serialize(m);
    CHECK_EQ_STR(s, "<message><a xmlns='urn:x'/><a xmlns='urn:x'/></message>");
    free(s);

    /* A long URI declared three times would waste 1,398 bytes: bound once on
     * the root, used as a prefix; the default namespace does not move, so a
     * child in jabber:client needs no declaration. Each element has its own
     * copy of the URI (built trees do): equal content is one namespace. */
    m = xml_elem_new(&a, NS_CLIENT, "message");
    struct xnode *x = xml_add_elem(&a, m, uri, "a");
    xml_add_elem(&a, x, NS_CLIENT, "body");
    xml_add_elem(&a, x, uri, "b");
    xml_add_elem(&a, m, uri, "a");
    x = xml_add_elem(&a, m, uri, "c");
    xml_set_attr_ns(&a, x, uri, "k", "v", 1);
    s = serialize(m);
    char want[2000];
    snprintf(want, sizeof(want),
             "<message xmlns:n='%s'><n:a><body/><n:b/></n:a><n:a/><n:c n:k='v'/>"
             "</message>", uri);
    CHECK_EQ_STR(s, want);
    free(s);
    check_round_trip(m);

    /* As a payload (nothing in scope), the root keeps the default form and
     * its descendants inherit it. */
    struct xnode *pl = xml_elem_new(&a, uri, "entry");
    struct xnode *o = xml_add_elem(&a, pl, "urn:o", "o");
    for (int i = 0; i < 3; i++)
        xml_add_elem(&a, o, uri, "i");
    struct buf b;
    buf_init(&b, 0);
    xml_serialize(&b, pl, "\x01");
    snprintf(want, sizeof(want),
             "<entry xmlns='%s' xmlns:n='%s'><o xmlns='urn:o'><n:i/><n:i/><n:i/></o></entry>",
             uri, uri);
    CHECK_EQ_STR(b.data, want);
    buf_free(&b);

    /* The content namespace is never prefixed (RFC 6120 §4.8.5), however
     * often it is redeclared. */
    m = xml_elem_new(&a, NS_CLIENT, "message");
    for (int i = 0; i < 200; i++)
        xml_add_elem(&a, xml_add_elem(&a, m, "urn:o", "o"), NS_CLIENT, "body");
    s = serialize(m);
    CHECK(strstr(s, "xmlns:") == NULL);
    CHECK(strstr(s, "<o xmlns='urn:o'><body xmlns='jabber:client'/></o>") != NULL);
    free(s);
    check_round_trip(m);
    arena_free(&a);
}

/* Output size is linear in the input for the attack shape (it was 21,812 x
 * 128 KB, over the 64 MiB cap), elements and attributes alike, and the
 * output parses back to the same tree (a fixed point). */
static void test_serialize_attack_linear(void)
{
    for (int attrs = 0; attrs <= 1; attrs++) {
        size_t in_len, out_len, again_len;
        bool ok;
        char *st = attack_stanza(128 * 1024, attrs ? 12000 : 21812, attrs, &in_len);
        char *out = parse_serialize(st, 0, &out_len, &ok);
        CHECK(ok);
        CHECK(out != NULL && out_len <= in_len);
        if (out != NULL && out_len > in_len)
            fprintf(stderr, "  %zu bytes in, %zu out\n", in_len, out_len);
        char *again = out ? parse_serialize(out, 0, &again_len, &ok) : NULL;
        CHECK(again != NULL && again_len == out_len && memcmp(again, out, out_len) == 0);
        free(again);
        free(out);
        free(st);
    }
}

/* Once the buffer is over its cap, serialization stops: the bytes written
 * stay within the cap and a failed buffer gets nothing more. */
static void test_serialize_cap_stop(void)
{
    size_t in_len, len;
    bool ok = true;
    char *st = attack_stanza(4096, 20000, false, &in_len);
    /* Under the plain scheme this is 80 MB; with a 64 KiB cap it fails. */
    char *out = parse_serialize(st, 64 * 1024, &len, &ok);
    CHECK(!ok);
    CHECK(out == NULL);
    free(st);

    /* A cap the final form fits, though the plain form (one declaration per
     * element, tried first) would not: it succeeds. */
    st = attack_stanza(100, 20, false, &in_len);
    out = parse_serialize(st, in_len + 64, &len, &ok);
    CHECK(ok);
    CHECK(out != NULL && len <= in_len);
    free(out);
    free(st);

    struct arena a;
    arena_init(&a);
    struct xnode *m = xml_elem_new(&a, NS_CLIENT, "message");
    struct xnode *body = xml_add_elem(&a, m, NS_CLIENT, "body");
    xml_add_text(&a, body, "0123456789", 10);
    struct buf b;
    buf_init(&b, 16);
    xml_serialize(&b, m, NS_CLIENT);
    CHECK(!buf_ok(&b));
    CHECK(b.len <= 16);
    size_t was = b.len;
    xml_serialize(&b, m, NS_CLIENT);
    CHECK_EQ_INT(b.len, was);
    buf_free(&b);
    arena_free(&a);
}

/* A stanza of exactly size bytes: a root <P:message xmlns:P='jabber:client'>
 * with a prefix of prefix_len characters (none when 0) and a body of filler. */
static char *sized_stanza(size_t size, size_t prefix_len)
{
    char *pfx = malloc(prefix_len + 2);
    memset(pfx, 'p', prefix_len);
    pfx[prefix_len] = prefix_len ? ':' : '\0';
    pfx[prefix_len + 1] = '\0';
    struct buf head, tail;
    buf_init(&head, 0);
    buf_init(&tail, 0);
    buf_printf(&head, "<%smessage", pfx);
    if (prefix_len) {
        buf_puts(&head, " xmlns:");
        buf_append(&head, pfx, prefix_len);
        buf_puts(&head, "='jabber:client'");
    }
    buf_puts(&head, "><body>");
    buf_printf(&tail, "</body></%smessage>", pfx);
    CHECK(size > head.len + tail.len);
    if (size <= head.len + tail.len)
        abort();
    size_t fill = size - head.len - tail.len;
    char *s = malloc(size + 1);
    memcpy(s, head.data, head.len);
    memset(s + head.len, 'x', fill);
    memcpy(s + head.len + fill, tail.data, tail.len);
    s[size] = '\0';
    buf_free(&head);
    buf_free(&tail);
    free(pfx);
    return s;
}

/* Issue 11 finding 12: max bytes pass and max + 1 fail with
 * policy-violation, whatever the prefix length and however the bytes
 * arrive. */
static void check_exact_limit(size_t max, size_t prefix_len, size_t chunk)
{
    for (size_t extra = 0; extra <= 1; extra++) {
        char *st = sized_stanza(max + extra, prefix_len);
        CHECK_EQ_INT(strlen(st), max + extra);
        struct rec r;
        rec_init(&r, max, 8);
        CHECK_EQ_INT(feed_str(&r, HDR, 0), XMLP_OK);
        enum xmlp_error e = feed_str(&r, st, chunk);
        if (e == XMLP_OK)
            e = feed_str(&r, "<message/>", 0);
        CHECK_EQ_INT(e, extra ? XMLP_POLICY_VIOLATION : XMLP_OK);
        CHECK_EQ_INT(r.stanzas, extra ? 0 : 2);
        if (e != (extra ? XMLP_POLICY_VIOLATION : XMLP_OK))
            fprintf(stderr, "  max %zu, prefix %zu, chunk %zu, size %zu\n", max, prefix_len,
                    chunk, max + extra);
        rec_free(&r);
        free(st);
    }
}

static void test_policy_size_exact(void)
{
    static const size_t chunks[] = {0, 1, 7, 1000};
    for (size_t i = 0; i < 4; i++) {
        check_exact_limit(4096, 0, chunks[i]);
        check_exact_limit(4096, 500, chunks[i]);
        check_exact_limit(4096, 1, chunks[i]);
    }
    check_exact_limit(262144, 0, 0);
    check_exact_limit(262144, 60000, 0);
    check_exact_limit(262144, 60000, 4096);

    /* An empty-element stanza counts to the end of its tag. */
    struct buf st;
    buf_init(&st, 0);
    buf_puts(&st, "<message to='");
    while (st.len < 4096 - 3)
        buf_putc(&st, 'x');
    buf_puts(&st, "'/>");
    CHECK_EQ_INT(parse_err(HDR, 4096, 8), XMLP_OK);
    struct rec r;
    rec_init(&r, 4096, 8);
    CHECK_EQ_INT(feed_str(&r, HDR, 0), XMLP_OK);
    CHECK_EQ_INT(feed_str(&r, st.data, 0), XMLP_OK);
    CHECK_EQ_INT(r.stanzas, 1);
    rec_free(&r);
    rec_init(&r, 4095, 8);
    CHECK_EQ_INT(feed_str(&r, HDR, 0), XMLP_OK);
    CHECK_EQ_INT(feed_str(&r, st.data, 0), XMLP_POLICY_VIOLATION);
    CHECK_EQ_INT(r.stanzas, 0);
    rec_free(&r);
    buf_free(&st);
}

/* Feeds s whole and returns the CPU seconds it took (parse, callbacks and
 * the serialization in rec_stanza), or -1 on a parse error. */
static double timed_feed(struct rec *r, const char *s, size_t len)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    enum xmlp_error e = feed(r, s, len, 0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    if (e != XMLP_OK)
        return -1;
    return (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
}

/* Namespace processing is the parser's own (xml_parser.c): the rules of
 * Namespaces in XML 1.0 that expat's namespace mode used to check. */
static void test_namespace_rules(void)
{
    static const char *const bad[] = {
        "<m><p:a/></m>",                                   /* unbound prefix */
        "<m xmlns:p='urn:p'><a q:x='1'/></m>",             /* unbound attribute prefix */
        "<m xmlns:p=''/>",                                 /* undeclaring a prefix */
        "<m xmlns:xml='urn:x'/>",                          /* xml is the XML ns only */
        "<m xmlns:x='http://www.w3.org/XML/1998/namespace'/>",
        "<m xmlns:xmlns='urn:x'/>",
        "<m xmlns='http://www.w3.org/2000/xmlns/'/>",
        "<m xmlns:p='urn:p' xmlns:q='urn:p' p:a='1' q:a='2'/>", /* same expanded name */
        "<m xmlns:p='urn:p'><p:a:b/></m>",                 /* not a QName */
        "<m xmlns:p='urn:p'><:a/></m>",
        "<m xmlns:p='urn:p'><p:/></m>",
        "<m><xmlns:a/></m>",
        "<m xmlns:p='urn:p'><p:-/></m>",                   /* local part not an NCName */
        "<m xmlns:p='urn:p'><p:1a/></m>",
        "<m xmlns:p='urn:p'><p:\xCC\x80/></m>",
        "<m xmlns:p='urn:p' p:.a='1'/>",
        "<m xmlns:-='urn:p'/>",
        "<m><a xmlns:p='urn:p'/><p:b/></m>",               /* out of scope after </a> */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char st[512];
        snprintf(st, sizeof(st), HDR "%s", bad[i]);
        CHECK_EQ_INT(parse_err(st, 4096, 8), XMLP_NOT_WELL_FORMED);
    }
    /* Shadowing, undeclaring the default, xml:*, header prefixes in a
     * stanza, and a stanza's bindings not leaking into the next one. */
    struct rec r;
    CHECK_EQ_INT(parse_once("<m xmlns:p='urn:1'><p:a xmlns:p='urn:2'><p:b/></p:a><p:c/>"
                            "<d xmlns=''><e xml:lang='en' p:k='v'/></d><stream:x/>"
                            "<xml:y xmlns:xml='http://www.w3.org/XML/1998/namespace'/></m>"
                            "<n/>",
                            0, &r),
                 XMLP_OK);
    CHECK_EQ_INT(r.stanzas, 2);
    CHECK_EQ_STR(rec_out(&r),
                 "<m><a xmlns='urn:2'><b/></a><c xmlns='urn:1'/><d xmlns=''>"
                 "<e xml:lang='en' xmlns:a0='urn:1' a0:k='v'/></d>"
                 "<x xmlns='http://etherx.jabber.org/streams'/><xml:y/></m>|<n/>|");
    rec_free(&r);
    CHECK_EQ_INT(parse_err(HDR "<m xmlns:p='urn:p'/><p:a/>", 4096, 8), XMLP_NOT_WELL_FORMED);
}

/* expat's namespace mode copied and hashed the whole URI per prefixed
 * attribute: one start tag binding a 128 KB URI and using it on 16,000
 * attributes cost 20 s. Parsing it is now linear (well under a second even
 * under sanitizers; it used to take minutes there). */
static void test_namespace_attrs_linear(void)
{
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "<message xmlns:p='urn:");
    for (size_t i = 4; i < 128 * 1024; i++)
        buf_putc(&b, 'u');
    buf_puts(&b, "'");
    for (int i = 0; i < 16000; i++)
        buf_printf(&b, " p:x%x=''", i);
    buf_puts(&b, "/>");
    struct rec r;
    rec_init(&r, 1 << 20, 8);
    CHECK_EQ_INT(feed_str(&r, HDR, 0), XMLP_OK);
    double secs = timed_feed(&r, b.data, b.len);
    CHECK_EQ_INT(r.stanzas, 1);
    CHECK(secs >= 0 && secs < 2.0);
    if (secs >= 2.0)
        fprintf(stderr, "  parse and serialize took %.2f s\n", secs);
    CHECK(strstr(rec_out(&r), " n:x3e7f=''/>|") != NULL);
    rec_free(&r);
    buf_free(&b);
}

/* A stream header may declare thousands of prefixes; a stanza that declares
 * one of its own must not pay for them (the header's bindings used to be
 * bound again after every such stanza). Header prefixes stay usable, and a
 * stanza may shadow them. */
static void test_namespace_header_many(void)
{
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "<stream:stream xmlns='jabber:client' "
                 "xmlns:stream='http://etherx.jabber.org/streams'");
    for (int i = 0; i < 20000; i++)
        buf_printf(&b, " xmlns:h%d='urn:h%d'", i, i);
    buf_puts(&b, ">");
    struct rec r;
    rec_init(&r, 1 << 20, 8);
    CHECK_EQ_INT(feed(&r, b.data, b.len, 0), XMLP_OK);
    buf_reset(&b);
    for (int i = 0; i < 5000; i++)
        buf_puts(&b, "<m xmlns:q='urn:q'><q:a/></m>");
    double secs = timed_feed(&r, b.data, b.len);
    CHECK_EQ_INT(r.stanzas, 5000);
    CHECK(secs >= 0 && secs < 0.5);
    if (secs >= 0.5)
        fprintf(stderr, "  5,000 stanzas took %.2f s\n", secs);
    buf_reset(&r.out);
    CHECK_EQ_INT(feed_str(&r, "<m><h7:a/><h7:b xmlns:h7='urn:x'><h7:c/></h7:b><h7:d/></m>", 0),
                 XMLP_OK);
    CHECK_EQ_STR(rec_out(&r), "<m><a xmlns='urn:h7'/><b xmlns='urn:x'><c/></b>"
                              "<d xmlns='urn:h7'/></m>|");
    rec_free(&r);
    buf_free(&b);
}

TEST_MAIN(TEST_CASE(test_sized_attr_escape), TEST_CASE(test_builders_and_lookups), TEST_CASE(test_serialize_exact),
          TEST_CASE(test_round_trip_escaping), TEST_CASE(test_round_trip_namespaces),
          TEST_CASE(test_xml_lang), TEST_CASE(test_open_and_stanzas),
          TEST_CASE(test_split_boundaries), TEST_CASE(test_keepalives),
          TEST_CASE(test_many_stanzas_under_limit), TEST_CASE(test_close),
          TEST_CASE(test_not_well_formed), TEST_CASE(test_restricted_xml),
          TEST_CASE(test_policy_size), TEST_CASE(test_policy_giant_start_tag),
          TEST_CASE(test_policy_depth), TEST_CASE(test_invalid_namespace),
          TEST_CASE(test_bad_format), TEST_CASE(test_sticky_errors),
          TEST_CASE(test_restart_from_callback), TEST_CASE(test_valid_chars),
          TEST_CASE(test_regressions), TEST_CASE(test_memory_linear),
          TEST_CASE(test_text_linear),
          TEST_CASE(test_attributes_linear), TEST_CASE(test_strings),
          TEST_CASE(test_hibernate), TEST_CASE(test_serialize_ns_reuse),
          TEST_CASE(test_serialize_attack_linear), TEST_CASE(test_serialize_cap_stop),
          TEST_CASE(test_policy_size_exact), TEST_CASE(test_namespace_rules),
          TEST_CASE(test_namespace_attrs_linear), TEST_CASE(test_namespace_header_many))
