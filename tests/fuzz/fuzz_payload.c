/* fuzz_payload.c - libFuzzer target for REST item bodies: JSON (yajl via
 * json.c) and one-element XML (xmlp_parse_element).
 *
 * The first byte picks the parser, the rest is the body. Properties: a body
 * accepted once is accepted again in its canonical form, and canonical forms
 * are fixed points (canonical(canonical(x)) == canonical(x)). Any violation
 * aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "json.h"
#include "xml_parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_fixed_point(const char *what, int rc2, const struct buf *a, const struct buf *b)
{
    if (rc2 != 0 || a->len != b->len || memcmp(a->data, b->data, a->len) != 0) {
        fprintf(stderr, "fuzz_payload: %s canonical form is not a fixed point\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    struct buf a, b;
    buf_init(&a, 0);
    buf_init(&b, 0);
    if (data[0] & 1) {
        if (json_canonical(body, len, &a) == 0)
            check_fixed_point("JSON", json_canonical(a.data, a.len, &b), &a, &b);
    } else {
        struct xmlp_limits lim = {65536, 32};
        if (xmlp_parse_element(body, len, &lim, &a) == XMLP_OK)
            check_fixed_point("XML", xmlp_parse_element(a.data, a.len, &lim, &b) == XMLP_OK ? 0 : -1,
                              &a, &b);
    }
    buf_free(&a);
    buf_free(&b);
    return 0;
}
