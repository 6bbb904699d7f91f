/* jid.h - XMPP addresses (RFC 7622 syntax, RFC 6122 stringprep preparation).
 *
 * jid_parse() splits "local@domain/resource", applies libidn's stringprep
 * profiles (Nodeprep, Nameprep, Resourceprep) and checks every length and
 * character rule; only prepared forms are compared anywhere in Herald.
 * struct jid holds each part inline; it is large (3 KiB) and meant for the
 * stack or short-lived use: long-lived owners keep the formatted string. */
#ifndef HERALD_JID_H
#define HERALD_JID_H
#include <stdbool.h>
#include <stddef.h>

#define JID_PART_MAX 1023 /* bytes per part, RFC 7622 §3.2-3.4 */
#define JID_MAX (3 * JID_PART_MAX + 2)

struct jid {
    char local[JID_PART_MAX + 1];    /* "" when absent */
    char domain[JID_PART_MAX + 1];   /* never empty after a successful parse */
    char resource[JID_PART_MAX + 1]; /* "" when absent */
};

/* Parses and prepares s (len bytes, need not be NUL-terminated). Returns 0 or
 * HERALD_EJID. On error *out is unspecified. */
int jid_parse(struct jid *out, const char *s, size_t len);
int jid_parse_str(struct jid *out, const char *s);

/* Prepares a single part in place (buf holds a NUL-terminated string of at
 * most JID_PART_MAX bytes, in a buffer of JID_PART_MAX + 1). Return 0 or
 * HERALD_EJID. */
int jid_nodeprep(char *buf);
int jid_resourceprep(char *buf);

/* Writes "local@domain/resource" (bare: without the resource) into out.
 * Returns the length, or -1 if it does not fit. */
int jid_format(const struct jid *j, bool bare, char *out, size_t cap);

bool jid_is_bare(const struct jid *j);
/* The bare part of a JID string as it stands (no preparation): what is
 * before the first '/'. -1 when it does not fit JID_MAX. */
int jid_bare_of(const char *jid, char out[JID_MAX + 1]);
/* Both prepared: compare bare parts exactly. */
bool jid_bare_equal(const struct jid *a, const struct jid *b);

#endif
