/* fuzz_xml.c - libFuzzer target for the XMPP stream parser (xml_parser.c)
 * and the serializer (xml.c).
 *
 * Input layout: the first byte picks how the rest is fed; the rest is the
 * stream. Bit 7 set: a fixed client stream header is fed first (so the
 * fuzzer need not rediscover it). Bits 0-6: the largest chunk size; chunk
 * sizes are drawn from a xorshift generator seeded by the whole first byte
 * (0 = everything in one call). Small limits (4096 bytes, depth 16) keep the
 * hardening paths within reach.
 *
 * Property checked for every stanza the parser delivers: its serialization
 * is valid XML characters, parses back without error behind a stream header
 * into exactly one stanza equal to the original node by node, and
 * serializing that gives the same bytes (the serializer's output is a fixed
 * point). The parser's memory stays linear in the input and errors are
 * sticky. A stanza named <proceed/> or <success/> restarts the stream, as
 * STARTTLS and SASL do. Each input is parsed twice, the second time with
 * xmlp_hibernate tried after every other chunk; when both runs succeed they
 * must deliver the same headers and stanzas, byte for byte. A third run in
 * framed mode (xmlp_set_framed: WebSocket and BOSH, where the client sends
 * no header) must deliver the same stanzas as the run behind the fixed
 * header, and never call on_open. A fourth run reads the stream as a server
 * or component stream does (xmlp_set_content_ns: jabber:server is read as
 * jabber:client): no element it delivers may keep jabber:server as its
 * namespace. Any violation aborts. */
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

#define MAX_STANZA 4096
#define MAX_DEPTH 16

/* The second parser, re-reading one serialized stanza. */
struct reparse {
    const struct xnode *expect;
    int stanzas;
    bool equal;
    struct buf again;
};

static void re_open(void *ud, const struct xnode *hdr, const char *default_ns) {}
static void re_close(void *ud) {}

static void re_stanza(void *ud, struct xnode *st, struct arena *a)
{
    struct reparse *r = ud;
    r->stanzas++;
    r->equal = xml_equal(r->expect, st);
    xml_serialize(&r->again, st, NS_CLIENT);
}

static const struct xmlp_callbacks re_cb = {re_open, re_stanza, re_close};

static void die(const char *what, const struct buf *b, enum xmlp_error e)
{
    fprintf(stderr, "fuzz_xml: %s (error %d: %s)\nserialized: %.*s\n", what, (int)e,
            xmlp_strerror(e), b->data ? (int)b->len : 0, b->data ? b->data : "");
    abort();
}

struct first {
    struct xmlp *p;
    bool content_ns;  /* run 4: jabber:server must have become jabber:client */
    unsigned opens;
    unsigned restarts;
    struct buf seen; /* every stanza's serialization, '|' after each */
};

static void on_open(void *ud, const struct xnode *hdr, const char *default_ns)
{
    struct first *f = ud;
    f->opens++;
    /* The header tree must be well-formed too: serialize it for ASan. */
    struct buf b;
    buf_init(&b, 0);
    xml_serialize(&b, hdr, NS_STREAM);
    buf_free(&b);
}

static void on_close(void *ud) {}

/* Whether any element under (and including) n is in jabber:server. */
static bool has_server_ns(const struct xnode *n)
{
    if (n->kind != XN_ELEM)
        return false;
    if (strcmp(n->ns, "jabber:server") == 0)
        return true;
    for (const struct xnode *c = n->children; c; c = c->next)
        if (has_server_ns(c))
            return true;
    return false;
}

static void on_stanza(void *ud, struct xnode *st, struct arena *a)
{
    struct first *f = ud;
    if (f->content_ns && has_server_ns(st)) {
        fprintf(stderr, "fuzz_xml: jabber:server survived xmlp_set_content_ns\n");
        abort();
    }
    struct buf b;
    buf_init(&b, 0);
    xml_serialize(&b, st, NS_CLIENT);
    if (!buf_ok(&b))
        die("serialization failed", &b, XMLP_OK);
    if (!xml_valid_chars(b.data, b.len))
        die("serialization holds invalid characters", &b, XMLP_OK);

    /* Escaping and namespace declarations can make the serialization larger
     * than the input, so the second parser's byte cap follows it; depth is
     * preserved exactly. */
    struct reparse r = {st, 0, false, {0}};
    buf_init(&r.again, 0);
    struct xmlp_limits lim = {b.len + sizeof(HDR) + 64, MAX_DEPTH};
    struct xmlp *q = xmlp_new(&lim, &re_cb, &r);
    if (q == NULL)
        abort();
    enum xmlp_error e = xmlp_feed(q, HDR, sizeof(HDR) - 1);
    if (e == XMLP_OK)
        e = xmlp_feed(q, b.data, b.len);
    if (e != XMLP_OK)
        die("serialization does not parse", &b, e);
    if (r.stanzas != 1)
        die("serialization is not exactly one stanza", &b, e);
    if (!r.equal)
        die("reparsed tree differs", &b, e);
    if (r.again.len != b.len || memcmp(r.again.data, b.data, b.len) != 0)
        die("serialization is not a fixed point", &b, e);
    buf_append(&f->seen, b.data, b.len);
    buf_putc(&f->seen, '|');
    xmlp_free(q);
    buf_free(&r.again);
    buf_free(&b);

    if (strcmp(st->name, "proceed") == 0 || strcmp(st->name, "success") == 0) {
        f->restarts++;
        xmlp_restart(f->p);
    }
}

static const struct xmlp_callbacks cb = {on_open, on_stanza, on_close};

/* Parses the stream as the mode byte says; with `hibernate`, tries
 * xmlp_hibernate after every other chunk; `framed` (WebSocket, BOSH: no
 * client header, the parser plays its own) instead of the fixed header. */
static enum xmlp_error run(const uint8_t *data, size_t size, uint8_t mode, bool hibernate,
                           bool framed, bool content_ns, struct first *f)
{
    struct xmlp_limits lim = {MAX_STANZA, MAX_DEPTH};
    f->content_ns = content_ns;
    f->opens = 0;
    f->restarts = 0;
    buf_init(&f->seen, 0);
    f->p = xmlp_new(&lim, &cb, f);
    if (f->p == NULL || (framed && xmlp_set_framed(f->p) != 0))
        abort();
    if (content_ns)
        xmlp_set_content_ns(f->p, "jabber:server");
    enum xmlp_error e = XMLP_OK;
    if ((mode & 0x80) && !framed)
        e = xmlp_feed(f->p, HDR, sizeof(HDR) - 1);
    unsigned max_chunk = mode & 0x7f;
    uint32_t rng = 0x9E3779B9u ^ ((uint32_t)mode * 0x01000193u);
    size_t off = 0;
    unsigned nchunk = 0;
    while (e == XMLP_OK && off < size) {
        size_t n = size - off;
        if (max_chunk) {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            size_t c = 1 + rng % max_chunk;
            if (c < n)
                n = c;
        }
        /* A private copy of each chunk, so ASan sees reads past it. */
        char *chunk = malloc(n);
        memcpy(chunk, data + off, n);
        e = xmlp_feed(f->p, chunk, n);
        free(chunk);
        off += n;
        /* A hibernated parser holds no arena or text buffer. */
        if (hibernate && (nchunk++ & 1) == 0 && xmlp_hibernate(f->p) && xmlp_memory(f->p) != 0)
            abort();
        /* Memory stays linear in the stanza's size: a tree node per few
         * bytes of input, never a copy of the text or a namespace URI per
         * piece or per name. */
        if (xmlp_memory(f->p) > 128 * MAX_STANZA) {
            fprintf(stderr, "fuzz_xml: parser holds %zu bytes\n", xmlp_memory(f->p));
            abort();
        }
    }
    /* Errors are sticky. */
    if (e != XMLP_OK && xmlp_feed(f->p, "<a/>", 4) != e)
        abort();
    xmlp_free(f->p);
    return e;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t mode = data[0];
    data++, size--;
    struct first a, b, c, d;
    enum xmlp_error ea = run(data, size, mode, false, false, false, &a);
    enum xmlp_error eb = run(data, size, mode, true, false, false, &b);
    run(data, size, mode, (mode & 2) != 0, false, true, &d);
    buf_free(&d.seen);
    /* Framed mode is the stream mode behind a header nobody sent: with the
     * header fed (bit 7) and no restart, the same stanzas, and no on_open. */
    enum xmlp_error ec = run(data, size, mode, (mode & 1) != 0, true, false, &c);
    if (c.opens != 0) {
        fprintf(stderr, "fuzz_xml: framed mode called on_open\n");
        abort();
    }
    if ((mode & 0x80) && ea == XMLP_OK && ec == XMLP_OK && a.restarts == 0 && a.opens == 1 &&
        (c.opens != 0 || a.seen.len != c.seen.len ||
         (a.seen.len && memcmp(a.seen.data, c.seen.data, a.seen.len) != 0))) {
        fprintf(stderr, "fuzz_xml: framed mode parsed differently\n");
        abort();
    }
    buf_free(&c.seen);
    if (ea == XMLP_OK && eb == XMLP_OK &&
        (a.opens != b.opens || a.seen.len != b.seen.len ||
         (a.seen.len && memcmp(a.seen.data, b.seen.data, a.seen.len) != 0))) {
        fprintf(stderr, "fuzz_xml: hibernation changed the result\n");
        abort();
    }
    buf_free(&a.seen);
    buf_free(&b.seen);
    return 0;
}
