/* test_json.c - the JSON edge (api/json.c): what may enter as JSON that
 * ends up in XML (issue 11, finding 4). json_check names what is wrong in
 * the raw bytes and the \u escapes, strictly for names and configuration
 * values (used unescaped: no NUL, no control escape); json_copy
 * (json_valid, json_canonical) refuses any string or key whose JSON text
 * would not be XML 1.0 text. */
#include <string.h>

#include "buf.h"
#include "errors.h"
#include "json.h"
#include "test.h"

struct text_case {
    const char *s;
    size_t len;
    const char *why_has; /* NULL: accepted; else a word the sentence must hold */
    bool item_ok;        /* refused as names, accepted in an item (an escaped control) */
};

#define T(lit, why) {lit, sizeof(lit) - 1, why, false}
#define CTL(lit, why) {lit, sizeof(lit) - 1, why, true}

static const struct text_case cases[] = {
    T("{\"v\":\"plain\"}", NULL),
    T("{\"v\":\"caf\xc3\xa9 \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbd \xef\xbf\xbd\"}", NULL),
    T("{\"v\":\"\\u00e9\\ud83d\\ude00\\udbff\\udffd\\t\\n\\r\\\\u0000\"}", NULL),
    T("{\"v\":\"\\uFFFD\\uE000\\u0020\"}", NULL),
    T("[1, 2.5e3, true, null]", NULL),
    /* Raw bytes. */
    T("{\"v\":\"\xef\xbf\xbf\"}", "UTF-8"),
    T("{\"v\":\"\xef\xbf\xbe\"}", "UTF-8"),
    T("{\"v\":\"\xc0\xaf\"}", "UTF-8"),
    T("{\"v\":\"\xe0\x80\xaf\"}", "UTF-8"),
    T("{\"v\":\"\xed\xa0\x80\"}", "UTF-8"),
    T("{\"v\":\"\xf4\x90\x80\x80\"}", "UTF-8"),
    T("{\"v\":\"\xf8\x88\x80\x80\x80\"}", "UTF-8"),
    T("{\"v\":\"\xc3\"}", "UTF-8"),
    T("{\"v\":\"\x01\"}", "UTF-8"),
    T("{\"v\":\"a\0b\"}", "UTF-8"),
    /* Escapes. */
    T("{\"v\":\"\\uffff\"}", "FFFF"),
    T("{\"v\":\"\\uFFFE\"}", "FFFE"),
    CTL("{\"v\":\"\\u0001\"}", "0001"),
    CTL("{\"v\":\"\\u001F\"}", "001F"),
    CTL("{\"v\":\"nul\\u0000tail\"}", "NUL"),
    T("{\"v\":\"\\ud800\"}", "high surrogate"),
    T("{\"v\":\"\\ud800x\"}", "high surrogate"),
    T("{\"v\":\"\\ud800\\u0041\"}", "high surrogate"),
    T("{\"v\":\"\\udbff\\ud800\"}", "high surrogate"),
    T("{\"v\":\"\\udc00\"}", "low surrogate"),
    T("{\"v\":\"\\udfff\\ud800\"}", "low surrogate"),
    CTL("{\"k\\u0002\":1}", "0002"),
    T("[\"ok\",{\"d\":[\"\\ufffe\"]}]", "FFFE"),
};

static void test_check(void)
{
    for (int names = 0; names < 2; names++) {
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            char why[160] = "";
            int rc = json_check(cases[i].s, cases[i].len, names, why, sizeof(why));
            bool ok = cases[i].why_has == NULL || (!names && cases[i].item_ok);
            if ((rc == 0) != ok || (!ok && strstr(why, cases[i].why_has) == NULL)) {
                fprintf(stderr, "case %zu (names %d): ", i, names);
                test_print_bytes_(cases[i].s, cases[i].len);
                fprintf(stderr, " -> %d \"%s\"\n", rc, why);
            }
            CHECK_EQ_INT(rc, ok ? 0 : HERALD_EINVAL);
            if (!ok)
                CHECK(strstr(why, cases[i].why_has) != NULL);
        }
    }
    /* Backslashes that are not \u escapes, and a truncated escape at the
     * end, are left to the JSON grammar (json_copy). */
    CHECK_EQ_INT(json_check("\"\\\\u0000\"", 9, true, (char[80]){0}, 80), 0);
    CHECK_EQ_INT(json_check("\"\\u00", 5, true, (char[80]){0}, 80), 0);
    CHECK(!json_valid("\"\\u00", 5));
}

/* The copy refuses strings and keys whose JSON text would not be XML
 * text, whatever json_check said: every JSON path goes through it. */
static void test_copy_refuses_non_xml_strings(void)
{
    static const char *const bad[] = {
        "{\"v\":\"\\uffff\"}", "{\"k\\ufffe\":1}", "{\"v\":\"\\udc00\"}",
        "{\"v\":\"\xc0\xaf\"}", "{\"v\":\"\xed\xa0\x80\"}", "{\"v\":\"\xf4\x90\x80\x80\"}",
        "{\"v\":\"\xef\xbf\xbf\"}", "[[[\"\\ufffe\"]]]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct buf b;
        buf_init(&b, 0);
        if (json_valid(bad[i], strlen(bad[i])))
            fprintf(stderr, "case %zu accepted: %s\n", i, bad[i]);
        CHECK(!json_valid(bad[i], strlen(bad[i])));
        CHECK_EQ_INT(json_canonical(bad[i], strlen(bad[i]), &b), -1);
        buf_free(&b);
    }
    /* Controls and NUL stay escapes in the JSON text: XML text. */
    struct buf b;
    buf_init(&b, 0);
    const char *good = "{ \"k\\u00e9\" : [\"\\ud83d\\ude00\", \"\\t\\u0000\\u0001\"] }";
    CHECK_EQ_INT(json_canonical(good, strlen(good), &b), 0);
    const char *want = "{\"k\xc3\xa9\":[\"\xf0\x9f\x98\x80\",\"\\t\\u0000\\u0001\"]}";
    CHECK_EQ_MEM(b.data, b.len, want, strlen(want));
    buf_free(&b);
}

TEST_MAIN(TEST_CASE(test_check), TEST_CASE(test_copy_refuses_non_xml_strings))
