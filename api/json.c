/* json.c - yajl glue: a parser whose callbacks drive a generator, which both
 * validates JSON and yields its canonical text.
 *
 * JSON that enters becomes XML text that XMPP clients parse (XML 1.0 §2.2
 * Char): an item's JSON text inside its XEP-0335 container, and node names
 * and configuration values, which are used unescaped. json_check names what
 * is wrong in the raw bytes and the \u escapes; the copy refuses any string
 * or key whose JSON text would not be XML text. Strings are checked by
 * length, never as C strings, so an escaped NUL cannot cut one short. */
#include "json.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_parse.h>

#include "buf.h"
#include "errors.h"
#include "xml.h"

#define G(ctx) ((yajl_gen)(ctx))
#define OK(x) ((x) == yajl_gen_status_ok)

static int cb_null(void *c) { return OK(yajl_gen_null(G(c))); }
static int cb_bool(void *c, int v) { return OK(yajl_gen_bool(G(c), v)); }
static int cb_number(void *c, const char *s, size_t n) { return OK(yajl_gen_number(G(c), s, n)); }
/* Whether a string, once written as JSON text, is XML text: the generator
 * escapes U+0000-U+001F (RFC 8259 §7 requires it), every other character
 * goes out as it is and must be an XML 1.0 Char. A control byte never
 * occurs inside a UTF-8 sequence, so the runs between them are checked. */
static bool json_text_ok(const unsigned char *s, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] < 0x20) {
            if (!xml_valid_chars((const char *)s + start, i - start))
                return false;
            start = i + 1;
        }
    }
    return true;
}

/* Strings and keys, unescaped by yajl. */
static int cb_string(void *c, const unsigned char *s, size_t n)
{
    return json_text_ok(s, n) && OK(yajl_gen_string(G(c), s, n));
}
static int cb_start_map(void *c) { return OK(yajl_gen_map_open(G(c))); }
static int cb_end_map(void *c) { return OK(yajl_gen_map_close(G(c))); }
static int cb_start_array(void *c) { return OK(yajl_gen_array_open(G(c))); }
static int cb_end_array(void *c) { return OK(yajl_gen_array_close(G(c))); }

static const yajl_callbacks copy_callbacks = {
    cb_null, cb_bool, NULL, NULL, cb_number, cb_string,
    cb_start_map, cb_string, cb_end_map, cb_start_array, cb_end_array,
};

/* The code point of the four hex digits at s, or -1. */
static long hex4(const char *s)
{
    long cp = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_value(s[i]);
        if (d < 0)
            return -1;
        cp = cp << 4 | d;
    }
    return cp;
}

/* XML 1.0 §2.2 Char, for a code point of four hex digits that is not a
 * surrogate. */
static bool xml_char(long cp)
{
    return cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xFFFD);
}

int json_check(const char *text, size_t len, bool names, char *why, size_t cap)
{
    if (!xml_valid_chars(text, len)) {
        snprintf(why, cap, "%s",
                 "the body is not valid UTF-8 or holds a character XML 1.0 does not allow "
                 "(a control character, a surrogate, U+FFFE or U+FFFF)");
        return HERALD_EINVAL;
    }
    /* Outside strings JSON has no backslash, so every one starts an escape
     * (RFC 8259 §7); yajl itself turns a lone high surrogate into '?' and
     * pairs one with any following escape, so pairs are checked here. */
    for (const char *p = memchr(text, '\\', len), *end = text + len; p != NULL;
         p = memchr(p, '\\', (size_t)(end - p))) {
        if (end - p < 2)
            break; /* yajl refuses the text */
        if (p[1] != 'u') {
            p += 2;
            continue;
        }
        long cp = end - p >= 6 ? hex4(p + 2) : -1;
        if (cp < 0)
            break;
        const char *what = NULL;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            long lo = end - p >= 12 && p[6] == '\\' && p[7] == 'u' ? hex4(p + 8) : -1;
            if (lo < 0xDC00 || lo > 0xDFFF)
                what = "is a high surrogate without its low surrogate";
            p += 6;
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            what = "is a low surrogate without its high surrogate";
        } else if (cp == 0xFFFE || cp == 0xFFFF || (names && !xml_char(cp))) {
            what = cp == 0 ? "is NUL, which no name or XML text may hold"
                           : "is a character XML 1.0 does not allow";
        }
        if (what != NULL) {
            snprintf(why, cap, "the escape \\u%04lX %s", (unsigned long)cp, what);
            return HERALD_EINVAL;
        }
        p += 6;
    }
    return 0;
}

int json_copy(yajl_gen g, const char *text, size_t len)
{
    if (len == 0)
        return -1;
    yajl_handle p = yajl_alloc(&copy_callbacks, NULL, g);
    if (p == NULL)
        return -1;
    /* Numbers go through as their text (yajl_number), so no precision is lost. */
    yajl_config(p, yajl_allow_comments, 0);
    yajl_config(p, yajl_dont_validate_strings, 0);
    int rc = yajl_parse(p, (const unsigned char *)text, len) == yajl_status_ok &&
                     yajl_complete_parse(p) == yajl_status_ok
                 ? 0
                 : -1;
    yajl_free(p);
    return rc;
}

yajl_gen json_gen_new(void)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (g)
        yajl_gen_config(g, yajl_gen_validate_utf8, 1);
    return g;
}

bool json_valid(const char *text, size_t len)
{
    yajl_gen g = json_gen_new();
    if (g == NULL)
        return false;
    int rc = json_copy(g, text, len);
    yajl_gen_free(g);
    return rc == 0;
}

int json_canonical(const char *text, size_t len, struct buf *out)
{
    yajl_gen g = json_gen_new();
    if (g == NULL)
        return -1;
    int rc = json_copy(g, text, len);
    if (rc == 0)
        rc = json_gen_take(g, out);
    yajl_gen_free(g);
    return rc;
}

void json_strn(yajl_gen g, const char *s, size_t n)
{
    yajl_gen_string(g, (const unsigned char *)s, n);
}

void json_str(yajl_gen g, const char *s) { json_strn(g, s, strlen(s)); }

void json_key_str(yajl_gen g, const char *key, const char *value)
{
    json_str(g, key);
    json_str(g, value);
}

void json_key_uint(yajl_gen g, const char *key, uint64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
    json_str(g, key);
    yajl_gen_number(g, num, (size_t)n);
}

void json_key_time(yajl_gen g, const char *key, uint64_t ms)
{
    char out[40] = "1970-01-01T00:00:00", full[48];
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&secs, &tm))
        strftime(out, sizeof(out), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(full, sizeof(full), "%s.%03uZ", out, (unsigned)(ms % 1000));
    json_key_str(g, key, full);
}

int json_gen_take(yajl_gen g, struct buf *out)
{
    const unsigned char *data;
    size_t len;
    if (yajl_gen_get_buf(g, &data, &len) != yajl_gen_status_ok || len == 0)
        return -1;
    buf_append(out, data, len);
    return buf_ok(out) ? 0 : -1;
}
