/* xml_parser.h - sans-I/O XMPP stream parser on expat.
 *
 * Feed it the bytes of one XML stream (already decrypted); it calls back with
 * the stream header (depth 0 open), each complete top-level child (a stanza or
 * a stream-level element such as <auth/>, built as a tree in the parser's
 * arena) and the stream close. It does no I/O and knows nothing of sockets,
 * which is what makes it fuzzable.
 *
 * Hardening, each failure a named RFC 6120 §4.9.3 stream error:
 *  - DOCTYPE, entity declarations, processing instructions and comments are
 *    refused (RFC 6120 §11.1: restricted-xml); entities are never expanded.
 *  - a stanza larger than max_stanza bytes (counted from the '<' of its
 *    start tag to the '>' of its end tag, exactly), or nested deeper than
 *    max_depth, is a policy-violation; the byte cap also bounds expat's own
 *    buffer between events (a giant start tag is caught before it is
 *    complete).
 *  - namespaces are resolved by the parser, not expat (whose namespace mode
 *    costs the URI's length per prefixed attribute), with the checks of
 *    Namespaces in XML 1.0; any violation is not-well-formed.
 *  - any other XML error is not-well-formed. Errors are sticky: after one,
 *    feeding does nothing and returns the same error.
 *
 * The stanza tree handed to on_stanza lives until the callback returns (the
 * arena is reset after it). */
#ifndef HERALD_XML_PARSER_H
#define HERALD_XML_PARSER_H
#include <stdbool.h>
#include <stddef.h>

#include "xml.h"

enum xmlp_error {
    XMLP_OK = 0,
    XMLP_NOT_WELL_FORMED,
    XMLP_RESTRICTED_XML,
    XMLP_POLICY_VIOLATION,   /* stanza too big or too deep */
    XMLP_INVALID_NAMESPACE,  /* root is not stream:stream / default ns wrong */
    XMLP_BAD_FORMAT,         /* text at stream level */
    XMLP_NOMEM,
    XMLP_CLOSED,             /* bytes after </stream:stream> */
    XMLP_FRAMING,            /* framed mode: a feed held more than one element
                              * or text outside it */
};

struct xmlp_callbacks {
    /* Stream header: hdr is the <stream:stream> element with its attributes;
     * default_ns is the stream's declared default namespace ("" if none). */
    void (*on_open)(void *ud, const struct xnode *hdr, const char *default_ns);
    void (*on_stanza)(void *ud, struct xnode *stanza, struct arena *arena);
    void (*on_close)(void *ud);
};

struct xmlp_limits {
    size_t max_stanza;  /* bytes per top-level child, and per stream header */
    unsigned max_depth; /* element depth within a stanza (stanza itself = 1) */
};

struct xmlp;

struct xmlp *xmlp_new(const struct xmlp_limits *lim, const struct xmlp_callbacks *cb,
                      void *ud);
void xmlp_free(struct xmlp *p);

/* Parses len bytes. Returns XMLP_OK or an error (sticky). A callback may call
 * xmlp_restart(); the rest of the current buffer is then discarded (a client
 * must not send more before the server's <proceed/> or <success/>). */
enum xmlp_error xmlp_feed(struct xmlp *p, const char *data, size_t len);

/* Requests a stream restart (RFC 6120 §4.3.3: after STARTTLS and SASL). When
 * called from a callback it takes effect when the callback returns; otherwise
 * at once. The next bytes must be a new stream header. */
void xmlp_restart(struct xmlp *p);

/* Releases expat's parser, the arena and the text buffer of a stream that
 * is between stanzas with no partial input (an idle session keeps about 11
 * KiB there), keeping only a copy of the stream header's start tag. The next
 * xmlp_feed creates a new expat parser and replays that tag without calling
 * on_open, so parsing goes on exactly as before. Returns whether it did;
 * false (nothing changed) when the parser is mid-stanza, holds unparsed
 * bytes, is in a callback, closed or failed, or is already hibernating. */
bool xmlp_hibernate(struct xmlp *p);

/* Framed mode (XMPP over WebSocket, RFC 7395 §3.3; BOSH, XEP-0206): the
 * client never sends a stream header; every element arrives on its own,
 * in the default namespace jabber:client unless it declares another. The
 * parser plays a header of its own at the start and after each restart,
 * without on_open; the framing's <open/> and <close/> come to on_stanza
 * like any element. Each xmlp_feed is one message: an element followed by
 * anything but whitespace in the same feed, or text outside the element, is
 * XMLP_FRAMING, found before the element is delivered. Returns 0 or -1 (no
 * memory). */
int xmlp_set_framed(struct xmlp *p);

/* Server and component streams (RFC 6120 §4.8.3, XEP-0114): stanzas in
 * their content namespace ns (jabber:server, jabber:component:accept) are
 * the same stanzas as jabber:client's, and are built with that namespace, so
 * that the router and the services see one namespace whatever the stream.
 * The header's default namespace is reported to on_open as declared. */
void xmlp_set_content_ns(struct xmlp *p, const char *ns);
/* True when no element is partly parsed (the state a framed message must
 * leave the parser in) and no error or close happened. */
bool xmlp_between_stanzas(const struct xmlp *p);

/* Short text for an error, and its RFC 6120 stream error condition. */
const char *xmlp_strerror(enum xmlp_error e);
const char *xmlp_condition(enum xmlp_error e);

/* Parses data as exactly one namespaced element (an XML payload from
 * outside a stream, e.g. a REST body) with the same hardening, and appends
 * its canonical serialization (as a pubsub payload is stored) to out.
 * XMLP_BAD_FORMAT: not exactly one element, text around it, or no
 * namespace. */
enum xmlp_error xmlp_parse_element(const char *data, size_t len, const struct xmlp_limits *lim,
                                   struct buf *out);

/* Bytes held by the parser's arena and text buffer right now (memory accounting). */
size_t xmlp_memory(const struct xmlp *p);

#endif
