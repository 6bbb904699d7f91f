/* json.h - JSON through yajl: checking and copying JSON text, and small
 * generator helpers for the REST bridge's answers. */
#ifndef HERALD_JSON_H
#define HERALD_JSON_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_gen.h>

struct buf;

/* Parses one JSON value from text and replays it into g (so the output is
 * g's canonical, minified form). Nesting deeper than yajl_gen allows (128)
 * counts as invalid. Returns 0, or -1 with g left in an undefined state. */
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
