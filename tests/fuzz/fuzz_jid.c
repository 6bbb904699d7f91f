/* fuzz_jid.c - libFuzzer target for JID parsing and preparation (jid.c).
 *
 * The whole input is one address (any bytes, any length). When jid_parse
 * accepts it, the prepared parts must obey RFC 7622's shape (non-empty
 * domain, parts within 1023 bytes, valid UTF-8, no '@' or '/' where they
 * would change the split), and preparation must be idempotent: formatting
 * the result and parsing it again gives the same parts and the same string,
 * for the full and the bare form. Any violation aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jid.h"
#include "xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const uint8_t *in, size_t len, const char *f1, const char *f2)
{
    fprintf(stderr, "fuzz_jid: %s\ninput: ", what);
    for (size_t i = 0; i < len; i++)
        fprintf(stderr, "\\x%02x", in[i]);
    fprintf(stderr, "\nfirst:  %s\nsecond: %s\n", f1 ? f1 : "", f2 ? f2 : "");
    abort();
}

static bool part_ok(const char *s, bool may_be_empty)
{
    size_t n = strlen(s);
    if (n == 0)
        return may_be_empty;
    return n <= JID_PART_MAX && xml_valid_chars(s, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* struct jid is 3 KiB; keep the three off the stack frame. */
    static struct jid j1, j2, j3;
    static char f1[JID_MAX + 1], f2[JID_MAX + 1], b1[JID_MAX + 1], b2[JID_MAX + 1];

    if (jid_parse(&j1, (const char *)data, size) != 0)
        return 0;

    if (!part_ok(j1.local, true) || !part_ok(j1.domain, false) || !part_ok(j1.resource, true))
        die("prepared part out of shape", data, size, j1.domain, NULL);
    if (strpbrk(j1.local, "@/\"&'<>: ") != NULL || strpbrk(j1.domain, "@/") != NULL)
        die("separator inside local or domain", data, size, j1.local, j1.domain);
    if (j1.domain[strlen(j1.domain) - 1] == '.')
        die("trailing dot kept", data, size, j1.domain, NULL);

    int n1 = jid_format(&j1, false, f1, sizeof(f1));
    if (n1 <= 0 || (size_t)n1 != strlen(f1))
        die("format failed", data, size, NULL, NULL);
    /* Formatting one byte short must fail cleanly. */
    if (jid_format(&j1, false, f2, (size_t)n1) != -1)
        die("format into a short buffer did not fail", data, size, f1, NULL);

    if (jid_parse(&j2, f1, (size_t)n1) != 0)
        die("formatted JID does not parse", data, size, f1, NULL);
    int n2 = jid_format(&j2, false, f2, sizeof(f2));
    if (n2 != n1 || memcmp(f1, f2, (size_t)n1) != 0)
        die("preparation is not idempotent", data, size, f1, f2);
    if (strcmp(j1.local, j2.local) != 0 || strcmp(j1.domain, j2.domain) != 0 ||
        strcmp(j1.resource, j2.resource) != 0)
        die("parts changed on re-parse", data, size, f1, f2);
    if (!jid_bare_equal(&j1, &j2))
        die("bare parts differ", data, size, f1, f2);

    /* The bare form parses to the same bare parts and no resource. */
    int nb = jid_format(&j1, true, b1, sizeof(b1));
    if (nb <= 0 || jid_parse(&j3, b1, (size_t)nb) != 0 || !jid_is_bare(&j3) ||
        !jid_bare_equal(&j1, &j3))
        die("bare form does not round-trip", data, size, f1, b1);
    if (jid_format(&j3, true, b2, sizeof(b2)) != nb || strcmp(b1, b2) != 0)
        die("bare form is not idempotent", data, size, b1, b2);
    if (jid_is_bare(&j1) != (j1.resource[0] == '\0'))
        die("jid_is_bare disagrees", data, size, f1, NULL);
    return 0;
}
