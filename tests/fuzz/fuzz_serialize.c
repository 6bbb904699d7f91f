/* fuzz_serialize.c - libFuzzer target for the serializer (xml.c) as a round
 * trip through the hardened parser (xml_parser.c).
 *
 * The input is the body of a client stream (a fixed header is fed first).
 * For every stanza the parser delivers, these must hold, or it aborts:
 *  - the serialization parses back (behind the same header) into exactly one
 *    stanza equal to the original (namespaces, names, attributes, text), and
 *    serializing that gives the same bytes (a fixed point);
 *  - its size is linear in the input: at most OUT_FACTOR times the
 *    input's bytes plus a constant (issue 11: one URI declared per element
 *    made 256 KB into gigabytes);
 *  - a copy of the tree built with the public builders (every element and
 *    attribute holding its own copy of its URI, as built trees do) gives the
 *    same bytes: namespaces are compared by content, not by pointer;
 *  - with a buffer cap below the full size, serialization either fails
 *    having written no more than the cap, or (when the plain form did not
 *    fit and the form that binds repeated namespaces once on the root does)
 *    it succeeds within the cap with a serialization that parses back into
 *    the same tree;
 *  - as a payload (nothing in scope, as pubsub stores it) the serialization
 *    is canonical: xmlp_parse_element gives it back byte for byte.
 * Limits are large enough (16 KiB, depth 16) for a long namespace used many
 * times, the shape that makes the serializer bind a prefix on the root. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xml.h"
#include "xml_parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char HDR[] = "<stream:stream xmlns='jabber:client'"
                          " xmlns:stream='http://etherx.jabber.org/streams' to='localhost'"
                          " version='1.0'>";

#define MAX_STANZA 16384
#define MAX_DEPTH 16
/* Escaping (at most 6 bytes per input byte, "'" as "&apos;") times the
 * declarations the serializer repeats within its 1 KiB budget per URI
 * (xml.c); a quadratic serializer is thousands of times over. */
#define OUT_FACTOR 16
#define OUT_SLACK 4096

static void die(const char *what, const struct buf *b)
{
    fprintf(stderr, "fuzz_serialize: %s\nserialized: %.*s\n", what,
            b->data ? (int)b->len : 0, b->data ? b->data : "");
    abort();
}

/* ---- the second parser, re-reading one serialization ---- */

struct reparse {
    const struct xnode *expect;
    int stanzas;
    bool equal;
    struct buf again;
};

static void re_open(void *ud, const struct xnode *hdr, const char *default_ns)
{
    (void)ud, (void)hdr, (void)default_ns;
}

static void re_close(void *ud) { (void)ud; }

static void re_stanza(void *ud, struct xnode *st, struct arena *a)
{
    struct reparse *r = ud;
    (void)a;
    r->stanzas++;
    r->equal = xml_equal(r->expect, st);
    xml_serialize(&r->again, st, NS_CLIENT);
}

static const struct xmlp_callbacks re_cb = {re_open, re_stanza, re_close};

/* fixed_point: serializing the reparsed tree (without a cap) must give b
 * again; not so for a compact form chosen because of a cap. */
static void check_reparse(const struct xnode *st, const struct buf *b, bool fixed_point)
{
    struct reparse r = {st, 0, false, {0}};
    buf_init(&r.again, 0);
    struct xmlp_limits lim = {b->len + sizeof(HDR) + 64, MAX_DEPTH};
    struct xmlp *q = xmlp_new(&lim, &re_cb, &r);
    if (q == NULL)
        abort();
    enum xmlp_error e = xmlp_feed(q, HDR, sizeof(HDR) - 1);
    if (e == XMLP_OK)
        e = xmlp_feed(q, b->data, b->len);
    if (e != XMLP_OK)
        die(xmlp_strerror(e), b);
    if (r.stanzas != 1)
        die("serialization is not exactly one stanza", b);
    if (!r.equal)
        die("reparsed tree differs", b);
    if (fixed_point && (r.again.len != b->len || memcmp(r.again.data, b->data, b->len) != 0))
        die("serialization is not a fixed point", b);
    xmlp_free(q);
    buf_free(&r.again);
}

/* ---- a built copy: every string copied, as the builders do ---- */

static struct xnode *copy_tree(struct arena *a, const struct xnode *n)
{
    struct xnode *e = xml_elem_new(a, n->ns, n->name);
    if (e == NULL)
        abort();
    for (const struct xattr *at = n->attrs; at; at = at->next)
        if (xml_set_attr_ns(a, e, at->ns, at->name, at->value, at->value_len) != 0)
            abort();
    for (const struct xnode *c = n->children; c; c = c->next) {
        if (c->kind == XN_ELEM)
            xml_append(e, copy_tree(a, c));
        else if (xml_add_text(a, e, c->text, c->text_len) != 0)
            abort();
    }
    return e;
}

static void check_copy(const struct xnode *st, const struct buf *b)
{
    struct arena a;
    arena_init(&a);
    struct buf c;
    buf_init(&c, 0);
    xml_serialize(&c, copy_tree(&a, st), NS_CLIENT);
    if (!buf_ok(&c) || c.len != b->len || memcmp(c.data, b->data, b->len) != 0)
        die("a built copy of the tree serializes differently", &c);
    buf_free(&c);
    arena_free(&a);
}

/* ---- stop at the cap ---- */

static void check_cap(const struct xnode *st, const struct buf *b)
{
    if (b->len < 2)
        return;
    struct buf c;
    buf_init(&c, b->len / 2);
    xml_serialize(&c, st, NS_CLIENT);
    if (c.len > c.max)
        die("serialization went over the cap", &c);
    /* A failure leaves at most the cap: a prefix of the plain form, or of
     * the compact one when the serializer switched forms after the plain
     * one failed (unit tests check the bytes, tests/unit/test_xml.c). */
    if (buf_ok(&c))
        check_reparse(st, &c, false);
    buf_free(&c);
}

/* ---- the payload form is canonical ---- */

static void check_payload(const struct xnode *st)
{
    /* Any element of the stanza may be a payload; take the first child
     * element, or the stanza itself. */
    const struct xnode *pl = xml_first_elem(st);
    if (pl == NULL)
        pl = st;
    struct buf b, c;
    buf_init(&b, 0);
    buf_init(&c, 0);
    xml_serialize(&b, pl, "\x01");
    if (!buf_ok(&b))
        die("payload serialization failed", &b);
    struct xmlp_limits lim = {b.len + 256, MAX_DEPTH}; /* its wrapper counts too */
    enum xmlp_error e = xmlp_parse_element(b.data, b.len, &lim, &c);
    /* An element in no namespace is refused as a payload; that is all. */
    if (e == XMLP_BAD_FORMAT && pl->ns[0] == '\0') {
        buf_free(&b);
        buf_free(&c);
        return;
    }
    if (e != XMLP_OK)
        die(xmlp_strerror(e), &b);
    if (c.len != b.len || memcmp(c.data, b.data, b.len) != 0)
        die("the payload form is not canonical", &c);
    buf_free(&b);
    buf_free(&c);
}

/* ---- the first parse ---- */

struct first {
    struct xmlp *p;
    size_t input; /* bytes of input: a bound on any stanza's size */
};

static void on_open(void *ud, const struct xnode *hdr, const char *default_ns)
{
    (void)ud, (void)hdr, (void)default_ns;
}

static void on_close(void *ud) { (void)ud; }

static void on_stanza(void *ud, struct xnode *st, struct arena *a)
{
    const struct first *f = ud;
    (void)a;
    struct buf b;
    buf_init(&b, 0);
    xml_serialize(&b, st, NS_CLIENT);
    if (!buf_ok(&b))
        die("serialization failed", &b);
    if (!xml_valid_chars(b.data, b.len))
        die("serialization holds invalid characters", &b);
    if (b.len > OUT_FACTOR * f->input + OUT_SLACK)
        die("serialization is not linear in the stanza", &b);
    check_reparse(st, &b, true);
    check_copy(st, &b);
    check_cap(st, &b);
    check_payload(st);
    buf_free(&b);
}

static const struct xmlp_callbacks cb = {on_open, on_stanza, on_close};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct xmlp_limits lim = {MAX_STANZA, MAX_DEPTH};
    struct first f = {NULL, size};
    f.p = xmlp_new(&lim, &cb, &f);
    if (f.p == NULL)
        abort();
    enum xmlp_error e = xmlp_feed(f.p, HDR, sizeof(HDR) - 1);
    if (e == XMLP_OK) {
        /* A private copy, so ASan sees any read past the input. */
        char *copy = malloc(size ? size : 1);
        memcpy(copy, data, size);
        xmlp_feed(f.p, copy, size);
        free(copy);
    }
    xmlp_free(f.p);
    return 0;
}
