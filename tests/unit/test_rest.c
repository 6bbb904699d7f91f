/* test_rest.c - the REST bridge's parsers and token store: bearer tokens
 * (create, check, expiry, revocation, scopes), JSON checking and canonical
 * form (yajl), XML payload bodies (xmlp_parse_element), and the item
 * payloads of JSON bodies (the XEP-0335 container, byte for byte what the
 * XML serializer writes) read back as the API shows items. */
#include <stdint.h>
#include <time.h>

#include "arena.h"
#include "buf.h"
#include "errors.h"
#include "json.h"
#include "pubsub.h"
#include "rest.h"
#include "scram.h"
#include "store.h"
#include "test.h"
#include "token.h"
#include "xml.h"
#include "xml_parser.h"

static void test_scopes(void)
{
    uint8_t s = 0;
    CHECK_EQ_INT(token_scopes_parse("read", &s), 0);
    CHECK_EQ_INT(s, SCOPE_READ);
    CHECK_EQ_INT(token_scopes_parse("manage,read,publish", &s), 0);
    CHECK_EQ_INT(s, SCOPE_ALL);
    CHECK_EQ_INT(token_scopes_parse("", &s), -1);
    CHECK_EQ_INT(token_scopes_parse("read,admin", &s), -1);
    CHECK_EQ_INT(token_scopes_parse("rea", &s), -1);
    char out[64];
    token_scopes_format(SCOPE_READ | SCOPE_MANAGE, out, sizeof(out));
    CHECK_EQ_STR(out, "read,manage");
}

static int count_token(void *ud, const struct store_token *t)
{
    (*(unsigned *)ud)++;
    CHECK(t->jid[0] != '\0');
    return 0;
}

static void test_tokens(void)
{
    char *dir = test_make_dir("herald-test-rest");
    struct store *s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    if (s == NULL) {
        test_remove_dir(dir);
        return;
    }
    char text[TOKEN_TEXT_MAX];
    struct store_token rec, got;
    uint64_t now = (uint64_t)time(NULL);
    struct store_user u;
    CHECK_EQ_INT(scram_make_user(&u, "pw", 2, 4096), 0);
    CHECK_EQ_INT(token_create(s, "alice@localhost", SCOPE_READ, 0, text, sizeof(text), &rec),
                 HERALD_ENOTFOUND); /* no such account */
    CHECK_EQ_INT(store_user_put(s, "alice@localhost", &u, true), 0);
    CHECK_EQ_INT(store_user_put(s, "bob@localhost", &u, true), 0);
    CHECK_EQ_INT(token_create(s, "alice@localhost", SCOPE_READ, 0, text, sizeof(text), &rec), 0);
    CHECK_EQ_INT(strlen(text), 60);
    CHECK_EQ_INT(text[16], '.');
    CHECK_EQ_INT(token_check(s, text, strlen(text), now, &got), 0);
    CHECK_EQ_STR(got.jid, "alice@localhost");
    CHECK_EQ_INT(got.scopes, SCOPE_READ);
    /* Any changed character of the secret, a truncation, garbage: refused. */
    char bad[TOKEN_TEXT_MAX];
    memcpy(bad, text, sizeof(bad));
    bad[40] = bad[40] == 'A' ? 'B' : 'A';
    CHECK_EQ_INT(token_check(s, bad, strlen(bad), now, &got), HERALD_EFORBIDDEN);
    CHECK_EQ_INT(token_check(s, text, strlen(text) - 1, now, &got), HERALD_EFORBIDDEN);
    CHECK_EQ_INT(token_check(s, "x", 1, now, &got), HERALD_EFORBIDDEN);
    memcpy(bad, text, sizeof(bad));
    bad[0] = bad[0] == '0' ? '1' : '0'; /* another id */
    CHECK_EQ_INT(token_check(s, bad, strlen(bad), now, &got), HERALD_EFORBIDDEN);
    /* Expiry. */
    char text2[TOKEN_TEXT_MAX];
    struct store_token rec2;
    CHECK_EQ_INT(token_create(s, "bob@localhost", SCOPE_ALL, now + 10, text2, sizeof(text2), &rec2), 0);
    CHECK_EQ_INT(token_check(s, text2, strlen(text2), now + 9, &got), 0);
    CHECK_EQ_INT(token_check(s, text2, strlen(text2), now + 10, &got), HERALD_EFORBIDDEN);
    /* Listing: both; revocation: gone, the other stays. */
    unsigned count = 0;
    CHECK_EQ_INT(store_token_each(s, count_token, &count), 0);
    CHECK_EQ_INT(count, 2);
    CHECK_EQ_INT(store_token_del(s, rec.id), 0);
    CHECK_EQ_INT(token_check(s, text, strlen(text), now, &got), HERALD_EFORBIDDEN);
    CHECK_EQ_INT(store_token_del(s, rec.id), HERALD_ENOTFOUND);
    CHECK_EQ_INT(token_check(s, text2, strlen(text2), now, &got), 0);
    uint8_t id[8];
    char idtext[17];
    token_id_format(rec2.id, idtext);
    CHECK_EQ_INT(token_id_parse(idtext, id), 0);
    CHECK(memcmp(id, rec2.id, 8) == 0);
    CHECK_EQ_INT(token_id_parse(text2, id), 0); /* a whole token names its id */
    CHECK_EQ_INT(token_id_parse("12345", id), -1);
    CHECK_EQ_INT(token_id_parse("zz345678901234567", id), -1);
    store_close(s);
    test_remove_dir(dir);
}

/* Issue 11 finding 9: a token is bound to its account's generation. */
static void test_token_generations(void)
{
    char *dir = test_make_dir("herald-test-rest-gen");
    struct store *s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    if (s == NULL) {
        test_remove_dir(dir);
        return;
    }
    char text[TOKEN_TEXT_MAX], text2[TOKEN_TEXT_MAX];
    struct store_token rec, got;
    struct store_user u, u2, again;
    uint64_t now = (uint64_t)time(NULL);
    CHECK_EQ_INT(scram_make_user(&u, "pw", 2, 4096), 0);
    CHECK_EQ_INT(scram_make_user(&u2, "pw", 2, 4096), 0);
    CHECK(u.generation != 0 && u2.generation != 0 && u.generation != u2.generation);
    CHECK_EQ_INT(store_user_put(s, "alice@localhost", &u, true), 0);
    CHECK_EQ_INT(store_user_get(s, "alice@localhost", &again), 0);
    CHECK(again.generation == u.generation);
    CHECK_EQ_INT(token_create(s, "alice@localhost", SCOPE_ALL, 0, text, sizeof(text), &rec), 0);
    CHECK(rec.generation == u.generation);
    CHECK_EQ_INT(token_check(s, text, strlen(text), now, &got), 0);
    /* Deleted: refused, and the token record is gone with the account. */
    CHECK_EQ_INT(store_user_del(s, "alice@localhost"), 0);
    CHECK_EQ_INT(token_check(s, text, strlen(text), now, &got), HERALD_EFORBIDDEN);
    CHECK_EQ_INT(store_token_get(s, rec.id, &got), HERALD_ENOTFOUND);
    /* A token whose record survived (written by hand here) still fails
     * against a new account of the same name: another generation. */
    CHECK_EQ_INT(store_token_put(s, &rec), 0);
    CHECK_EQ_INT(store_user_put(s, "alice@localhost", &u2, true), 0);
    CHECK_EQ_INT(token_check(s, text, strlen(text), now, &got), HERALD_EFORBIDDEN);
    CHECK_EQ_INT(token_create(s, "alice@localhost", SCOPE_ALL, 0, text2, sizeof(text2), &rec), 0);
    CHECK_EQ_INT(token_check(s, text2, strlen(text2), now, &got), 0);
    /* Same generation (passwd --keep-tokens): the token stays. */
    u.generation = u2.generation;
    CHECK_EQ_INT(store_user_put(s, "alice@localhost", &u, false), 0);
    CHECK_EQ_INT(token_check(s, text2, strlen(text2), now, &got), 0);
    /* A new generation (passwd): refused and deleted. */
    CHECK_EQ_INT(scram_make_user(&u, "pw2", 3, 4096), 0);
    CHECK_EQ_INT(store_user_put(s, "alice@localhost", &u, false), 0);
    CHECK_EQ_INT(token_check(s, text2, strlen(text2), now, &got), HERALD_EFORBIDDEN);
    CHECK_EQ_INT(store_token_get(s, rec.id, &got), HERALD_ENOTFOUND);
    store_close(s);
    test_remove_dir(dir);
}

static void check_canonical(const char *in, const char *want)
{
    struct buf b;
    buf_init(&b, 0);
    int rc = json_canonical(in, strlen(in), &b);
    if (want == NULL) {
        CHECK_EQ_INT(rc, -1);
    } else {
        CHECK_EQ_INT(rc, 0);
        CHECK_EQ_MEM(b.data, b.len, want, strlen(want));
    }
    buf_free(&b);
}

static void test_json(void)
{
    check_canonical("{ \"a\" : [1, 2.50, true, null], \"b\": \"x\\u0041\" }",
                    "{\"a\":[1,2.50,true,null],\"b\":\"xA\"}");
    check_canonical("3.5", "3.5");
    check_canonical("\"s\"", "\"s\"");
    check_canonical("12345678901234567890123", "12345678901234567890123"); /* no precision lost */
    check_canonical("", NULL);
    check_canonical("{", NULL);
    check_canonical("{} {}", NULL);       /* one value only */
    check_canonical("[1,]", NULL);
    check_canonical("/* c */ 1", NULL);   /* no comments */
    check_canonical("\"\xff\"", NULL);    /* not UTF-8 */
    /* Nesting is bounded by yajl_gen (128): deeper is refused, not a crash. */
    char deep[600];
    memset(deep, '[', 300);
    memset(deep + 300, ']', 300);
    CHECK(!json_valid(deep, 600));
    CHECK(json_valid(deep + 250, 100));
}

static void check_xml(const char *in, enum xmlp_error want_err, const char *want)
{
    struct xmlp_limits lim = {4096, 16};
    struct buf b;
    buf_init(&b, 0);
    enum xmlp_error e = xmlp_parse_element(in, strlen(in), &lim, &b);
    CHECK_EQ_INT(e, want_err);
    if (want)
        CHECK_EQ_MEM(b.data, b.len, want, strlen(want));
    buf_free(&b);
}

static void test_xml_payload(void)
{
    check_xml("<m xmlns='urn:x'>hi <b>there</b></m>", XMLP_OK, "<m xmlns='urn:x'>hi <b>there</b></m>");
    check_xml("  <p:m xmlns:p='urn:y' a=\"1\"/>\n", XMLP_OK, "<m xmlns='urn:y' a='1'/>");
    check_xml("<?xml version='1.0' encoding='UTF-8'?>\n<m xmlns='urn:x'/>", XMLP_OK, "<m xmlns='urn:x'/>");
    check_xml("\xEF\xBB\xBF<m xmlns='urn:x'/>", XMLP_OK, "<m xmlns='urn:x'/>");
    check_xml("<?xml version='1.0'", XMLP_NOT_WELL_FORMED, NULL);
    check_xml("<?xml version='1.0'?><?xml version='1.0'?><m xmlns='urn:x'/>", XMLP_NOT_WELL_FORMED, NULL);
    check_xml("<m/>", XMLP_BAD_FORMAT, NULL);                          /* no namespace */
    check_xml("<m xmlns='urn:x'/><n xmlns='urn:x'/>", XMLP_BAD_FORMAT, NULL);
    check_xml("text<m xmlns='urn:x'/>", XMLP_BAD_FORMAT, NULL);
    check_xml("", XMLP_BAD_FORMAT, NULL);
    check_xml("<m xmlns='urn:x'>", XMLP_NOT_WELL_FORMED, NULL);
    check_xml("<m xmlns='urn:x'/></s:stream><n/>", XMLP_CLOSED, NULL);
    check_xml("<!DOCTYPE m><m xmlns='urn:x'/>", XMLP_NOT_WELL_FORMED, NULL); /* inside the wrapper */
    check_xml("<?pi x?><m xmlns='urn:x'/>", XMLP_RESTRICTED_XML, NULL);
    check_xml("<m xmlns='urn:x'><!-- c --></m>", XMLP_RESTRICTED_XML, NULL);
    check_xml("<m xmlns='urn:x'>&ent;</m>", XMLP_NOT_WELL_FORMED, NULL);
    check_xml("<a xmlns='urn:x'><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a/></a></a></a></a>"
              "</a></a></a></a></a></a></a></a></a></a></a></a></a>",
              XMLP_POLICY_VIOLATION, NULL);
}

/* The container of a JSON text as the XML serializer writes it (what the
 * service stored for REST items before payloads became bytes). */
static void serialized_container(const char *canonical, struct buf *out)
{
    struct arena a;
    arena_init(&a);
    struct xnode *x = xml_elem_new(&a, NS_JSON, "json");
    CHECK(x != NULL);
    if (x && xml_add_text(&a, x, canonical, strlen(canonical)) == 0)
        xml_serialize(out, x, "\x01");
    arena_free(&a);
}

/* An item's JSON view as text. */
static void item_view(const char *payload, struct buf *out)
{
    struct ps_item it = {17, 1764090001123ULL, "i1", 2, "alice@localhost", 15, payload,
                         payload ? strlen(payload) : 0,         0,  0, 0};
    yajl_gen g = json_gen_new();
    CHECK(g != NULL);
    if (g == NULL)
        return;
    rest_item_json(g, &it);
    CHECK_EQ_INT(json_gen_take(g, out), 0);
    yajl_gen_free(g);
}

static void test_json_payload(void)
{
    static const char *const values[] = {
        "{\"kW\": 3.5}",
        "{\"s\": \"a<b>&c\\\"d'e ]]> </json>\", \"nl\": \"l1\\nl2\\tt\\r\"}",
        "[1, \"two\", {\"three\": 3}, null, true, false]",
        "\"just a string\"",
        "42",
        "{\"u\": \"\\u00e9\u4e2d\", \"ctl\": \"\\u0001\\u001f\"}",
    };
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        struct buf got, canon, want, view, want_view;
        buf_init(&got, 0);
        buf_init(&canon, 0);
        buf_init(&want, 0);
        buf_init(&view, 0);
        buf_init(&want_view, 0);
        CHECK_EQ_INT(rest_json_payload(values[i], strlen(values[i]), &got), 0);
        CHECK_EQ_INT(json_canonical(values[i], strlen(values[i]), &canon), 0);
        CHECK_EQ_INT(buf_nul(&canon), 0);
        serialized_container(canon.data, &want);
        CHECK_EQ_MEM(got.data, got.len, want.data, want.len);
        /* Read back, the item shows the same JSON value. */
        CHECK_EQ_INT(buf_nul(&got), 0);
        item_view(got.data, &view);
        buf_puts(&want_view, "{\"id\":\"i1\",\"seq\":17,\"published\":"
                             "\"2025-11-25T17:00:01.123Z\",\"publisher\":\"alice@localhost\","
                             "\"json\":");
        buf_append(&want_view, canon.data, canon.len);
        buf_putc(&want_view, '}');
        CHECK_EQ_MEM(view.data, view.len, want_view.data, want_view.len);
        buf_free(&got);
        buf_free(&canon);
        buf_free(&want);
        buf_free(&view);
        buf_free(&want_view);
    }
    struct buf b;
    buf_init(&b, 0);
    CHECK_EQ_INT(rest_json_payload("{\"a\":", 5, &b), HERALD_EINVAL);
    CHECK_EQ_INT(rest_json_payload("", 0, &b), HERALD_EINVAL);
    buf_free(&b);
}

static void test_item_view_xml(void)
{
    struct buf view;
    /* Not a container, a container of something that is not JSON, and no
     * payload at all. */
    static const struct {
        const char *payload, *want;
    } cases[] = {
        {"<m xmlns='urn:x'>hi</m>", "\"xml\":\"<m xmlns='urn:x'>hi</m>\"}"},
        {"<json xmlns='urn:xmpp:json:0'>{not json</json>",
         "\"xml\":\"<json xmlns='urn:xmpp:json:0'>{not json</json>\"}"},
        {"<json xmlns='urn:xmpp:json:0'><b/></json>",
         "\"xml\":\"<json xmlns='urn:xmpp:json:0'><b/></json>\"}"},
        {NULL, "\"publisher\":\"alice@localhost\"}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        buf_init(&view, 0);
        item_view(cases[i].payload, &view);
        size_t wl = strlen(cases[i].want);
        CHECK(view.len > wl);
        if (view.len > wl)
            CHECK_EQ_MEM(view.data + view.len - wl, wl, cases[i].want, wl);
        buf_free(&view);
    }
}

TEST_MAIN(TEST_CASE(test_scopes), TEST_CASE(test_tokens), TEST_CASE(test_token_generations), TEST_CASE(test_json),
          TEST_CASE(test_xml_payload), TEST_CASE(test_json_payload), TEST_CASE(test_item_view_xml))
