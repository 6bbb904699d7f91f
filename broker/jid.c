/* jid.c - JID parsing and stringprep preparation with libidn.
 *
 * RFC 7622 §3.1: the resource is everything after the first '/', the
 * localpart everything before the first '@' that precedes that '/'. Each part
 * is then prepared with the RFC 6122 stringprep profile libidn provides and its
 * length checked after preparation (preparation can change it). */
#include "jid.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <stringprep.h>

#include "errors.h"
#include "xml.h"

static int prep(char *buf, const Stringprep_profile *profile)
{
    /* Stringprep works on valid UTF-8 only; reject anything else first. */
    size_t len = strlen(buf);
    if (len == 0 || len > JID_PART_MAX || !xml_valid_chars(buf, len))
        return HERALD_EJID;
    if (stringprep(buf, JID_PART_MAX + 1, STRINGPREP_NO_UNASSIGNED, profile) != STRINGPREP_OK)
        return HERALD_EJID;
    len = strlen(buf);
    if (len == 0 || len > JID_PART_MAX)
        return HERALD_EJID;
    return 0;
}

int jid_nodeprep(char *buf)
{
    int rc = prep(buf, stringprep_xmpp_nodeprep);
    /* RFC 6122 Appendix A.5: Nodeprep prohibits these ASCII characters
     * (libidn's table covers them; keep the check explicit and cheap). */
    if (rc == 0 && strpbrk(buf, "\"&'/:<>@ ") != NULL)
        rc = HERALD_EJID;
    return rc;
}

int jid_resourceprep(char *buf) { return prep(buf, stringprep_xmpp_resourceprep); }

static int domainprep(char *buf)
{
    size_t len = strlen(buf);
    /* RFC 7622 §3.2: a trailing dot is stripped before any other step. */
    if (len > 0 && buf[len - 1] == '.')
        buf[--len] = '\0';
    if (len == 0)
        return HERALD_EJID;
    if (buf[0] == '[') {
        /* IPv6 literal: keep as given, lower-cased, bracketed hex and colons. */
        if (buf[len - 1] != ']' || len < 4)
            return HERALD_EJID;
        for (size_t i = 1; i < len - 1; i++) {
            char c = buf[i];
            if (c >= 'A' && c <= 'F')
                buf[i] = (char)(c - 'A' + 'a');
            else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == ':' || c == '.'))
                return HERALD_EJID;
        }
        /* The characters alone admit "[:::::]"; the address must parse. */
        char inner[64];
        struct in6_addr addr;
        if (len - 2 >= sizeof(inner))
            return HERALD_EJID;
        memcpy(inner, buf + 1, len - 2);
        inner[len - 2] = '\0';
        if (inet_pton(AF_INET6, inner, &addr) != 1)
            return HERALD_EJID;
        return 0;
    }
    if (prep(buf, stringprep_nameprep) != 0)
        return HERALD_EJID;
    /* Labels: 1..63 bytes, no ASCII that is not a letter, digit or hyphen
     * (RFC 5890 / STD 3 rules for the ASCII range), not starting or ending
     * with a hyphen. Non-ASCII labels pass as prepared by Nameprep. */
    const char *label = buf;
    for (const char *p = buf;; p++) {
        if (*p == '.' || *p == '\0') {
            size_t ll = (size_t)(p - label);
            if (ll == 0 || ll > 63 || label[0] == '-' || p[-1] == '-')
                return HERALD_EJID;
            if (*p == '\0')
                break;
            label = p + 1;
            continue;
        }
        unsigned char c = (unsigned char)*p;
        if (c < 0x80 && !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                          (c >= 'A' && c <= 'Z')))
            return HERALD_EJID;
    }
    return 0;
}

int jid_parse(struct jid *out, const char *s, size_t len)
{
    out->local[0] = out->domain[0] = out->resource[0] = '\0';
    if (len == 0 || len > JID_MAX || memchr(s, '\0', len) != NULL)
        return HERALD_EJID;
    const char *slash = memchr(s, '/', len);
    size_t head = slash ? (size_t)(slash - s) : len;
    const char *at = memchr(s, '@', head);
    const char *dom = at ? at + 1 : s;
    size_t domlen = (size_t)(s + head - dom);

    if (at != NULL) {
        size_t ll = (size_t)(at - s);
        if (ll == 0 || ll > JID_PART_MAX)
            return HERALD_EJID;
        memcpy(out->local, s, ll);
        out->local[ll] = '\0';
        if (jid_nodeprep(out->local) != 0)
            return HERALD_EJID;
    }
    if (domlen == 0 || domlen > JID_PART_MAX)
        return HERALD_EJID;
    memcpy(out->domain, dom, domlen);
    out->domain[domlen] = '\0';
    if (domainprep(out->domain) != 0)
        return HERALD_EJID;
    if (slash != NULL) {
        size_t rl = len - head - 1;
        if (rl == 0 || rl > JID_PART_MAX)
            return HERALD_EJID;
        memcpy(out->resource, slash + 1, rl);
        out->resource[rl] = '\0';
        if (jid_resourceprep(out->resource) != 0)
            return HERALD_EJID;
    }
    return 0;
}

int jid_parse_str(struct jid *out, const char *s) { return jid_parse(out, s, strlen(s)); }

int jid_format(const struct jid *j, bool bare, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s%s%s%s%s", j->local, j->local[0] ? "@" : "", j->domain,
                     (!bare && j->resource[0]) ? "/" : "", bare ? "" : j->resource);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    return n;
}

bool jid_is_bare(const struct jid *j) { return j->resource[0] == '\0'; }

bool jid_bare_equal(const struct jid *a, const struct jid *b)
{
    return strcmp(a->local, b->local) == 0 && strcmp(a->domain, b->domain) == 0;
}

int jid_bare_of(const char *jid, char out[JID_MAX + 1])
{
    size_t n = strcspn(jid, "/");
    if (n > JID_MAX)
        return -1;
    memcpy(out, jid, n);
    out[n] = '\0';
    return 0;
}
