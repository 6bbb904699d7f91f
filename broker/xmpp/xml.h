/* xml.h - the stanza tree: elements, attributes and text, in an arena.
 *
 * A parsed stanza is a tree of struct xnode allocated from the stanza's arena
 * (see arena.h); nothing in it is freed individually. Element names are local
 * names with their namespace URI resolved (ns is "" when there is none).
 * Attribute names are local names; an attribute in the XML namespace keeps
 * the "xml:" prefix (xml:lang), any other namespaced attribute carries its URI
 * in attr->ns.
 *
 * The serializer escapes every attribute value and text node and declares
 * namespaces itself: an element whose ns differs from its parent's gets an
 * xmlns attribute, unless repeating that declaration would waste many bytes
 * (a long URI used on many elements), in which case the URI is bound once to
 * a prefix on the serialized root. Output size and time are linear in the
 * tree. Never build XML with printf of user data. */
#ifndef HERALD_XML_H
#define HERALD_XML_H
#include <stdbool.h>
#include <stddef.h>

#include "arena.h"
#include "buf.h"

#define NS_CLIENT "jabber:client"
#define NS_STREAM "http://etherx.jabber.org/streams"
#define NS_STREAMS_ERR "urn:ietf:params:xml:ns:xmpp-streams"
#define NS_FRAMING "urn:ietf:params:xml:ns:xmpp-framing" /* RFC 7395 */
#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIND "urn:ietf:params:xml:ns:xmpp-bind"
#define NS_SESSION "urn:ietf:params:xml:ns:xmpp-session"
#define NS_PING "urn:xmpp:ping"
#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define NS_VERSION "jabber:iq:version"
#define NS_XML "http://www.w3.org/XML/1998/namespace"

/* XN_RAW holds bytes that are already serialized XML (a stored pubsub
 * payload, produced by this serializer): written out verbatim. */
enum xnode_kind { XN_ELEM, XN_TEXT, XN_RAW };

struct xattr {
    struct xattr *next;
    const char *ns;    /* "" unless the attribute is namespaced (not xml:) */
    const char *name;
    const char *value;
    size_t value_len;
};

struct xnode {
    enum xnode_kind kind;
    struct xnode *parent, *next, *children, *last_child;
    /* XN_ELEM */
    const char *ns;
    const char *name;
    struct xattr *attrs, *last_attr;
    /* XN_TEXT, XN_RAW */
    const char *text;
    size_t text_len;
};

/* Builders. All return NULL (or -1) on allocation failure. Strings passed in
 * are copied into the arena. */
struct xnode *xml_elem_new(struct arena *a, const char *ns, const char *name);
struct xnode *xml_add_elem(struct arena *a, struct xnode *parent, const char *ns,
                           const char *name);
int xml_add_text(struct arena *a, struct xnode *parent, const char *text, size_t len);
/* Adds serialized XML to be written verbatim (copied into the arena). */
int xml_add_raw(struct arena *a, struct xnode *parent, const char *xml, size_t len);
int xml_set_attr(struct arena *a, struct xnode *e, const char *name, const char *value);
int xml_set_attr_ns(struct arena *a, struct xnode *e, const char *ns, const char *name,
                    const char *value, size_t len);
/* Links an existing node (from the same or a longer-lived arena) as the last
 * child of parent. */
void xml_append(struct xnode *parent, struct xnode *child);
/* Removes an attribute if present. */
void xml_del_attr(struct xnode *e, const char *name);

/* Lookups. xml_attr returns the value of an un-namespaced attribute or NULL. */
const char *xml_attr(const struct xnode *e, const char *name);
/* First child element with this ns and name (either may be NULL = any). */
struct xnode *xml_child(const struct xnode *e, const char *ns, const char *name);
/* First child element, or NULL. */
struct xnode *xml_first_elem(const struct xnode *e);
/* Next sibling element after e, or NULL. */
struct xnode *xml_next_elem(const struct xnode *e);
/* Number of child elements. */
size_t xml_count_elems(const struct xnode *e);
/* Concatenated text of e's direct text children, in the arena ("" if none;
 * NULL on allocation failure). */
const char *xml_text(struct arena *a, const struct xnode *e);

/* Serializes e and its subtree. parent_ns is the default namespace in scope
 * where e is written (NS_CLIENT for stanzas on a client stream; it is never
 * given a prefix); an element whose ns differs gets xmlns='...', or a prefix
 * bound on e (see above). Stops as soon as out fails (its cap): callers check
 * buf_ok. Without memory for its namespace table it fails out, too. */
void xml_serialize(struct buf *out, const struct xnode *e, const char *parent_ns);

/* Whether two trees are equal: kinds, namespaces (by content), names,
 * attributes in order, text and raw bytes, children in order. For tests and
 * fuzz targets (it compares URIs with strcmp, so it is not meant for
 * attacker-sized trees on a hot path). */
bool xml_equal(const struct xnode *a, const struct xnode *b);

/* True when s is valid UTF-8 without NUL or C0 controls other than TAB/LF/CR
 * (the XML 1.0 Char production, minus surrogates and U+FFFE/U+FFFF). */
bool xml_valid_chars(const char *s, size_t len);

/* Appends <stream:error><CONDITION/>[<text>TEXT</text>]</stream:error>
 * (RFC 6120 §4.9); text may be NULL. */
struct buf;
void xml_stream_error(struct buf *b, const char *condition, const char *text);

#endif
