/* test_jid.c - JID parsing and preparation (jid.c, RFC 7622 / RFC 6122).
 *
 * Valid addresses are checked part by part after preparation; invalid ones
 * must return HERALD_EJID. The table-driven cases cover the split rules
 * (first '/' ends the bare part, first '@' before it ends the localpart),
 * stringprep folding, length limits and byte-level validity. */
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "jid.h"
#include "test.h"

struct valid_case {
    const char *in;
    const char *local, *domain, *resource;
};

static const struct valid_case valid[] = {
    {"alice@example.com", "alice", "example.com", ""},
    {"alice@example.com/phone", "alice", "example.com", "phone"},
    {"example.com", "", "example.com", ""},
    {"example.com/res", "", "example.com", "res"},
    {"localhost", "", "localhost", ""},
    {"a@b", "a", "b", ""},
    /* IPv6 literals keep their brackets; hex is lower-cased. */
    {"[::1]", "", "[::1]", ""},
    {"alice@[2001:DB8::1]/r", "alice", "[2001:db8::1]", "r"},
    {"[::ffff:192.0.2.1]", "", "[::ffff:192.0.2.1]", ""},
    {"[2001:db8:0:0:0:0:2:1]", "", "[2001:db8:0:0:0:0:2:1]", ""},
    {"a@192.0.2.1", "a", "192.0.2.1", ""},
    /* RFC 7622 §3.2: a trailing dot is stripped. */
    {"alice@example.com.", "alice", "example.com", ""},
    {"example.com./r", "", "example.com", "r"},
    /* Nodeprep and Nameprep fold case; Resourceprep does not. */
    {"ALICE@EXAMPLE.COM/Phone", "alice", "example.com", "Phone"},
    {"Alice@Example.Com/MyRes", "alice", "example.com", "MyRes"},
    {"\xC3\x84LICE@Example.COM", "\xC3\xA4lice", "example.com", ""},
    {"Stra\xC3\x9F" "e@d", "strasse", "d", ""},                 /* B.2: sharp s -> ss */
    {"x@M\xC3\x9CNCHEN.DE", "x", "m\xC3\xBCnchen.de", ""},      /* MÜNCHEN.DE */
    {"x@example\xEF\xBC\x8E" "com", "x", "example.com", ""},    /* fullwidth full stop */
    /* The resource is everything after the first '/': it may hold '@' and '/'. */
    {"a@b/c@d/e", "a", "b", "c@d/e"},
    {"b/c@d", "", "b", "c@d"},
    {"a@b//", "a", "b", "/"},
    {"a@b/ spaced resource ", "a", "b", " spaced resource "},
    {"a@b/\xE2\x99\xA5", "a", "b", "\xE2\x99\xA5"},            /* U+2665 */
    {"a-b.c_d@sub-1.example.org", "a-b.c_d", "sub-1.example.org", ""},
};

static void test_valid(void)
{
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        struct jid j;
        int rc = jid_parse_str(&j, valid[i].in);
        if (rc != 0)
            fprintf(stderr, "case %zu: %s\n", i, valid[i].in);
        CHECK_EQ_INT(rc, 0);
        if (rc != 0)
            continue;
        CHECK_EQ_STR(j.local, valid[i].local);
        CHECK_EQ_STR(j.domain, valid[i].domain);
        CHECK_EQ_STR(j.resource, valid[i].resource);
        CHECK(jid_is_bare(&j) == (valid[i].resource[0] == '\0'));
    }
}

static const char *const invalid[] = {
    "",
    "@",
    "@d",                  /* empty localpart */
    "a@d/",                /* empty resource */
    "a@",                  /* empty domain */
    "a@/r",
    "/r",
    "/",
    ".",                   /* empty once the trailing dot is stripped */
    "a@.",
    "a@b..",
    "a@.b",
    "a@b..c",
    "a@d@e",               /* '@' in the domain */
    "a@exa mple.com",
    "a@exa_mple.com",
    "a@-example.com",
    "a@example-.com",
    "a\"b@d",              /* Nodeprep's prohibited ASCII */
    "a&b@d",
    "a'b@d",
    "a<b@d",
    "a>b@d",
    "a:b@d",
    "a b@d",
    "a\x01" "b@d",         /* control characters */
    "a@d/r\x7f",
    "a@d/r\x01",
    "\xC3@d",              /* truncated UTF-8 */
    "a@d/\xFF",
    "a@\xC0\xAF",          /* overlong '/' */
    "a@d/\xED\xA0\x80",    /* surrogate */
    "a@[::1",              /* unterminated IPv6 literal */
    "a@[]",
    "a@[g::1]",
    "a@[::1]x",
    "a@[:::::]",           /* IPv6 characters but not an address */
    "a@[1:2]",
    "a@[::1::]",
    "a@[....]",
    "a@[1.2.3.4]",         /* IPv4 goes without brackets */
    "a\xC2\xA0" "b@d",     /* no-break space is prohibited in a localpart */
    "a@d/\xE2\x80\x8E" "x", /* left-to-right mark: prohibited (C.8) */
};

static void test_invalid(void)
{
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        struct jid j;
        int rc = jid_parse_str(&j, invalid[i]);
        if (rc != HERALD_EJID) {
            fprintf(stderr, "case %zu accepted: ", i);
            test_print_bytes_(invalid[i], strlen(invalid[i]));
            fprintf(stderr, " -> local=%s domain=%s resource=%s\n", j.local, j.domain,
                    j.resource);
        }
        CHECK_EQ_INT(rc, HERALD_EJID);
    }
}

/* '/' and '@' never reach Nodeprep through jid_parse (they split the address),
 * so check the part-level function directly. */
static void test_nodeprep_direct(void)
{
    static const char *const bad[] = {"a/b", "a@b", "a\"b", "a&b", "a'b", "a<b", "a>b",
                                      "a:b", "a b", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char buf[JID_PART_MAX + 1];
        snprintf(buf, sizeof(buf), "%s", bad[i]);
        CHECK_EQ_INT(jid_nodeprep(buf), HERALD_EJID);
    }
    char buf[JID_PART_MAX + 1] = "J\xC3\x9CRGEN";
    CHECK_EQ_INT(jid_nodeprep(buf), 0);
    CHECK_EQ_STR(buf, "j\xC3\xBCrgen");
    snprintf(buf, sizeof(buf), "Res/With@Chars");
    CHECK_EQ_INT(jid_resourceprep(buf), 0);
    CHECK_EQ_STR(buf, "Res/With@Chars");
    buf[0] = '\0';
    CHECK_EQ_INT(jid_resourceprep(buf), HERALD_EJID);
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* A domain of n bytes made of 63-byte labels (DNS label limit). */
static char *long_domain(size_t n)
{
    char *s = repeat('d', n);
    for (size_t i = 63; i < n; i += 64)
        s[i] = '.';
    if (s[n - 1] == '.')
        s[n - 1] = 'd';
    return s;
}

static void test_lengths(void)
{
    struct jid j;
    char in[4 * JID_PART_MAX];
    char *l1023 = repeat('a', 1023), *l1024 = repeat('a', 1024);
    char *d1023 = long_domain(1023), *d1024 = long_domain(1024);

    snprintf(in, sizeof(in), "%s@d", l1023);
    CHECK_EQ_INT(jid_parse_str(&j, in), 0);
    CHECK_EQ_INT(strlen(j.local), 1023);
    snprintf(in, sizeof(in), "%s@d", l1024);
    CHECK_EQ_INT(jid_parse_str(&j, in), HERALD_EJID);

    CHECK_EQ_INT(jid_parse_str(&j, d1023), 0);
    CHECK_EQ_INT(strlen(j.domain), 1023);
    CHECK_EQ_INT(jid_parse_str(&j, d1024), HERALD_EJID);
    /* 1023 bytes plus a trailing dot: RFC 7622 does not say whether the
     * limit applies before or after stripping the dot; either answer is
     * fine as long as it is clean. */
    snprintf(in, sizeof(in), "%s.", d1023);
    int rc = jid_parse_str(&j, in);
    CHECK(rc == 0 || rc == HERALD_EJID);
    if (rc == 0)
        CHECK_EQ_STR(j.domain, d1023);

    snprintf(in, sizeof(in), "d/%s", l1023);
    CHECK_EQ_INT(jid_parse_str(&j, in), 0);
    CHECK_EQ_INT(strlen(j.resource), 1023);
    snprintf(in, sizeof(in), "d/%s", l1024);
    CHECK_EQ_INT(jid_parse_str(&j, in), HERALD_EJID);

    /* All three parts at their maximum: the longest valid JID. */
    snprintf(in, sizeof(in), "%s@%s/%s", l1023, d1023, l1023);
    CHECK_EQ_INT(strlen(in), JID_MAX);
    CHECK_EQ_INT(jid_parse_str(&j, in), 0);
    char out[JID_MAX + 1];
    CHECK_EQ_INT(jid_format(&j, false, out, sizeof(out)), JID_MAX);
    CHECK_EQ_STR(out, in);

    /* A DNS label over 63 bytes. */
    char *l64 = repeat('x', 64);
    CHECK_EQ_INT(jid_parse_str(&j, l64), HERALD_EJID);
    l64[63] = '\0';
    CHECK_EQ_INT(jid_parse_str(&j, l64), 0);

    /* Input over 1023 bytes is refused before preparation, even when
     * preparation would shrink it (U+00AD soft hyphen maps to nothing). */
    char *soft = repeat('a', 1024);
    soft[0] = '\xC2', soft[1] = '\xAD';
    snprintf(in, sizeof(in), "%s@d", soft);
    CHECK_EQ_INT(jid_parse_str(&j, in), HERALD_EJID);
    /* ...while a short part with a soft hyphen prepares to the bare letters. */
    CHECK_EQ_INT(jid_parse_str(&j, "a\xC2\xAD" "b@d"), 0);
    CHECK_EQ_STR(j.local, "ab");

    /* A part that grows past the limit under preparation: U+0149 (2 bytes)
     * becomes U+02BC U+006E (3 bytes) under NFKC; 511 of them are 1022 bytes
     * in and 1533 out. Refused, with no overflow of the 1024-byte part. */
    char grow[1100];
    size_t g = 0;
    for (int i = 0; i < 511; i++) {
        grow[g++] = '\xC5';
        grow[g++] = '\x89';
    }
    memcpy(grow + g, "@d", 3);
    CHECK_EQ_INT(jid_parse_str(&j, grow), HERALD_EJID);
    snprintf(in, sizeof(in), "d/%.*s", (int)g, grow); /* Resourceprep: NFKC too */
    CHECK_EQ_INT(jid_parse_str(&j, in), HERALD_EJID);
    /* A few of them fit and are expanded. */
    CHECK_EQ_INT(jid_parse_str(&j, "\xC5\x89@d"), 0);
    CHECK_EQ_STR(j.local, "\xCA\xBCn");

    /* Over the whole-JID limit. */
    char *huge = repeat('a', JID_MAX + 1);
    CHECK_EQ_INT(jid_parse(&j, huge, JID_MAX + 1), HERALD_EJID);

    free(l1023), free(l1024), free(d1023), free(d1024), free(l64), free(soft), free(huge);
}

static void test_explicit_length(void)
{
    struct jid j;
    /* Embedded NUL anywhere is refused, not truncated. */
    CHECK_EQ_INT(jid_parse(&j, "a\0b@d", 5), HERALD_EJID);
    CHECK_EQ_INT(jid_parse(&j, "a@d\0x", 5), HERALD_EJID);
    CHECK_EQ_INT(jid_parse(&j, "a@d/r\0", 6), HERALD_EJID);
    CHECK_EQ_INT(jid_parse(&j, "\0", 1), HERALD_EJID);
    /* The input need not be NUL-terminated: only len bytes are read. */
    char *p = malloc(9);
    memcpy(p, "a@d/rest", 8);
    p[8] = 'X';
    CHECK_EQ_INT(jid_parse(&j, p, 8), 0);
    CHECK_EQ_STR(j.resource, "rest");
    CHECK_EQ_INT(jid_parse(&j, p, 3), 0);
    CHECK_EQ_STR(j.domain, "d");
    CHECK_EQ_STR(j.resource, "");
    CHECK_EQ_INT(jid_parse(&j, p, 0), HERALD_EJID);
    free(p);
}

static void test_format(void)
{
    struct jid j;
    char out[64];
    CHECK_EQ_INT(jid_parse_str(&j, "Alice@Example.com/Res"), 0);
    CHECK_EQ_INT(jid_format(&j, false, out, sizeof(out)), 21);
    CHECK_EQ_STR(out, "alice@example.com/Res");
    CHECK_EQ_INT(jid_format(&j, true, out, sizeof(out)), 17);
    CHECK_EQ_STR(out, "alice@example.com");

    CHECK_EQ_INT(jid_parse_str(&j, "example.com/r"), 0);
    CHECK_EQ_INT(jid_format(&j, false, out, sizeof(out)), 13);
    CHECK_EQ_STR(out, "example.com/r");
    CHECK_EQ_INT(jid_format(&j, true, out, sizeof(out)), 11);
    CHECK_EQ_STR(out, "example.com");

    CHECK_EQ_INT(jid_parse_str(&j, "a@b"), 0);
    CHECK_EQ_INT(jid_format(&j, false, out, sizeof(out)), 3);
    CHECK_EQ_STR(out, "a@b");

    /* Too small: the exact length without room for the NUL fails. */
    CHECK_EQ_INT(jid_parse_str(&j, "alice@example.com/Res"), 0);
    CHECK_EQ_INT(jid_format(&j, false, out, 21), -1);
    CHECK_EQ_INT(jid_format(&j, false, out, 22), 21);
    CHECK_EQ_INT(jid_format(&j, true, out, 17), -1);
    CHECK_EQ_INT(jid_format(&j, true, out, 18), 17);
    CHECK_EQ_INT(jid_format(&j, false, out, 1), -1);
}

static void test_compare(void)
{
    struct jid a, b, c;
    CHECK_EQ_INT(jid_parse_str(&a, "ALICE@example.com/one"), 0);
    CHECK_EQ_INT(jid_parse_str(&b, "alice@EXAMPLE.COM./two"), 0);
    CHECK_EQ_INT(jid_parse_str(&c, "bob@example.com/one"), 0);
    CHECK(jid_bare_equal(&a, &b));
    CHECK(!jid_bare_equal(&a, &c));
    CHECK(!jid_is_bare(&a));
    struct jid d, e;
    CHECK_EQ_INT(jid_parse_str(&d, "example.com"), 0);
    CHECK_EQ_INT(jid_parse_str(&e, "x@example.com"), 0);
    CHECK(jid_is_bare(&d));
    CHECK(!jid_bare_equal(&d, &e));
}

/* format(parse(x)) re-parses to itself for every valid case. */
static void test_idempotent(void)
{
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        struct jid j1, j2;
        char f1[JID_MAX + 1], f2[JID_MAX + 1];
        if (jid_parse_str(&j1, valid[i].in) != 0)
            continue;
        CHECK(jid_format(&j1, false, f1, sizeof(f1)) > 0);
        CHECK_EQ_INT(jid_parse_str(&j2, f1), 0);
        CHECK(jid_format(&j2, false, f2, sizeof(f2)) > 0);
        CHECK_EQ_STR(f2, f1);
    }
}

TEST_MAIN(TEST_CASE(test_valid), TEST_CASE(test_invalid), TEST_CASE(test_nodeprep_direct),
          TEST_CASE(test_lengths), TEST_CASE(test_explicit_length), TEST_CASE(test_format),
          TEST_CASE(test_compare), TEST_CASE(test_idempotent))
