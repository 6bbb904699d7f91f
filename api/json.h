/* json.h - JSON through yajl: checking and copying JSON text, and small
 * generator helpers for the REST bridge's answers. */
#ifndef HERALD_JSON_H
#define HERALD_JSON_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_gen.h>

struct buf;

/* Whether text may enter as JSON that ends up in XML: valid UTF-8 of XML
 * 1.0 Chars (XML 1.0 §2.2), and every \u escape a proper surrogate pair or
 * a character other than U+FFFE/U+FFFF. names: the strings are used
 * unescaped (node names, configuration values), so escapes of NUL and the
 * other C0 controls XML forbids are refused too; otherwise (an item's JSON,
 * kept as JSON text) they stay escapes and are fine. 0, or HERALD_EINVAL
 * with a sentence naming what is wrong in why (cap bytes). Does not check
 * the JSON grammar (json_copy does). */
int json_check(const char *text, size_t len, bool names, char *why, size_t cap);
/* Parses one JSON value from text and replays it into g (so the output is
 * g's canonical, minified form). Nesting deeper than yajl_gen allows (128)
 * and a string or key whose JSON text would not be XML text (U+FFFE,
 * U+FFFF, a surrogate: the generator writes them raw) count as invalid.
 * Returns 0, or -1 with g left in an undefined state. */
int json_copy(yajl_gen g, const char *text, size_t len);
/* True when text is exactly one valid JSON value. */
bool json_valid(const char *text, size_t len);
/* Canonical (minified) form of one JSON value, into out. */
int json_canonical(const char *text, size_t len, struct buf *out);

/* A generator that validates UTF-8 of strings; NULL on ENOMEM. */
yajl_gen json_gen_new(void);
void json_str(yajl_gen g, const char *s);
void json_strn(yajl_gen g, const char *s, size_t n);
void json_key_str(yajl_gen g, const char *key, const char *value);
void json_key_uint(yajl_gen g, const char *key, uint64_t v);
/* RFC 3339 UTC with milliseconds, from unix milliseconds. */
void json_key_time(yajl_gen g, const char *key, uint64_t ms);
/* Copies the generated text into out; -1 if generation failed. */
int json_gen_take(yajl_gen g, struct buf *out);

#endif
