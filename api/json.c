/* json.c - yajl glue: a parser whose callbacks drive a generator, which both
 * validates JSON and yields its canonical text. */
#include "json.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_parse.h>

#include "buf.h"

#define G(ctx) ((yajl_gen)(ctx))
#define OK(x) ((x) == yajl_gen_status_ok)

static int cb_null(void *c) { return OK(yajl_gen_null(G(c))); }
static int cb_bool(void *c, int v) { return OK(yajl_gen_bool(G(c), v)); }
static int cb_number(void *c, const char *s, size_t n) { return OK(yajl_gen_number(G(c), s, n)); }
static int cb_string(void *c, const unsigned char *s, size_t n) { return OK(yajl_gen_string(G(c), s, n)); }
static int cb_start_map(void *c) { return OK(yajl_gen_map_open(G(c))); }
static int cb_end_map(void *c) { return OK(yajl_gen_map_close(G(c))); }
static int cb_start_array(void *c) { return OK(yajl_gen_array_open(G(c))); }
static int cb_end_array(void *c) { return OK(yajl_gen_array_close(G(c))); }

static const yajl_callbacks copy_callbacks = {
    cb_null, cb_bool, NULL, NULL, cb_number, cb_string,
    cb_start_map, cb_string, cb_end_map, cb_start_array, cb_end_array,
};

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
