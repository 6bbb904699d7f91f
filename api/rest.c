/* rest.c - the /v1 REST bridge (docs/rest-api.md): bearer tokens, one
 * route table, and handlers that call the same pubsub service as XMPP.
 *
 * Everything about pubsub data goes through pubsub.h: the service applies
 * the access rules to every read and change, so a handler never checks
 * affiliations or walks the service's tables itself. JSON maps straight
 * onto the service's vocabulary: a "config" object becomes (var, values)
 * fields, a JSON item body becomes the serialized XEP-0335 container the
 * service stores, and an error is a HERALD_E* code rendered as
 * problem+json from the one table in errors.c.
 *
 * Reads ask the service for committed data only (an HTTP reader never sees
 * a change a crash could take back). Changes join the loop turn's write
 * batch like XMPP requests do, and their answers (201/200/204) are released
 * by a batch callback only after the commit; until then the connection's
 * next pipelined request waits (http.c). */
#include <http_parser.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <yajl/yajl_tree.h>

#include "batch.h"
#include "buf.h"
#include "cluster.h"
#include "conn.h"
#include "errors.h"
#include "herald.h"
#include "http.h"
#include "log.h"
#include "pubsub.h"
#include "rest.h"
#include "session.h"
#include "sse.h"
#include "store.h"
#include "token.h"
#include "webhooks.h"
#include "xml.h"
#include "xml_parser.h"

extern const char herald_openapi_json[];
extern const size_t herald_openapi_json_len;

#define MAX_PAGE 500
#define DEFAULT_PAGE 20
#define MAX_CONFIG_FIELDS 64
#define SESSIONS_PAGE 100
#define MAX_SESSIONS_PAGE 1000

/* One request being handled. */
struct rctx {
    struct http_conn *hc;
    struct herald *h;
    struct pubsub *ps;
    const struct http_req *req;
    struct store_token tok;           /* who: tok.jid */
    char node[PS_NODE_NAME_MAX + 1];  /* {node}, decoded */
    char id[PS_ITEM_ID_MAX + 1];      /* {id}, decoded */
};

/* ---- answers ---- */

static void problem(struct rctx *r, int code, const char *detail)
{
    http_problem_code(r->hc, code, detail);
}

/* A failed pubsub call: the service's own sentence when it gave one ("no
 * such node", "no such item", which field is wrong ...), else the table's
 * message for a XEP-0060 condition (it names the rule), else fallback. */
static void ps_problem(struct rctx *r, int code, const char *fallback)
{
    const struct ps_why *why = pubsub_why(r->ps);
    const char *text = why->text[0] ? why->text : herald_error(code)->app ? NULL : fallback;
    const struct herald_error *e = herald_error(code);
    unsigned retry = pubsub_retry_after(r->ps);
    char hdr[40];
    /* A quota refusal (429) says when to come back (RFC 9110 §10.2.3). */
    if (e->http == 429 && retry > 0 &&
        snprintf(hdr, sizeof(hdr), "Retry-After: %u\r\n", retry) < (int)sizeof(hdr)) {
        http_problem_h(r->hc, e->http, e->cond, e->app, text && text[0] ? text : e->msg, hdr);
        return;
    }
    problem(r, code, text);
}

static void respond_json(struct rctx *r, int status, yajl_gen g, const char *headers)
{
    struct buf b;
    buf_init(&b, 0);
    if (json_gen_take(g, &b) == 0) {
        buf_putc(&b, '\n');
        http_respond(r->hc, status, "application/json", headers, b.data, b.len);
    } else {
        problem(r, HERALD_EIO, "the answer could not be encoded");
    }
    buf_free(&b);
}

/* An answer that may leave only once the change is durable. */
struct pending {
    struct http_conn *hc;
    int status;
    char *headers;
    char *body;
    size_t len;
};

static void pending_run(void *ctx, int failed)
{
    struct pending *p = ctx;
    if (failed == 0)
        http_respond(p->hc, p->status, p->len ? "application/json" : NULL, p->headers, p->body,
                     p->len);
    else if (failed == HERALD_EFULL)
        http_problem_code(p->hc, failed, "the change could not be stored: storage is full");
    else if (failed == HERALD_EUNAVAIL)
        http_problem_code(p->hc, failed, "the server is shutting down");
    else
        http_problem_code(p->hc, failed, "the change could not be stored");
    http_unref(p->hc);
    free(p->headers);
    free(p->body);
    free(p);
}

/* Answers after the commit of this loop turn's batch (at once if nothing
 * was written). g may be NULL (no body). */
void rest_answer_after_commit(struct herald *h, struct http_conn *hc, int status, yajl_gen g,
                              const char *headers)
{
    struct pending *p = calloc(1, sizeof(*p));
    struct buf b;
    buf_init(&b, 0);
    int rc = g ? json_gen_take(g, &b) : 0;
    if (g)
        buf_putc(&b, '\n');
    if (p == NULL || rc != 0 || !buf_ok(&b) ||
        (headers && (p->headers = strdup(headers)) == NULL)) {
        if (p)
            free(p->headers);
        free(p);
        http_problem_code(hc, HERALD_ENOMEM, "out of memory");
        goto done;
    }
    p->hc = hc;
    p->status = status;
    p->body = b.len ? buf_take(&b, &p->len) : NULL;
    http_ref(hc);
    if (batch_after(h->batch, pending_run, p) != 0)
        pending_run(p, HERALD_ENOMEM);
done:
    buf_free(&b);
}

static void respond_after_commit(struct rctx *r, int status, yajl_gen g, const char *headers)
{
    rest_answer_after_commit(r->h, r->hc, status, g, headers);
}

/* ---- paths ---- */

/* Percent-decodes one path segment into out. -1: bad escape, too long, or
 * not valid text. */
static int decode_segment(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return o > 0 && xml_valid_chars(out, o) ? 0 : -1;
}

static void encode_segment(struct buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~')
            buf_putc(b, (char)c);
        else
            buf_printf(b, "%%%02X", c);
    }
}

enum match { NO_MATCH, MATCH, BAD_SEGMENT };

/* Matches a path against a template whose {node} and {id} segments capture
 * (decoded) into r. */
static enum match match_path(const char *tpl, const char *path, size_t plen, struct rctx *r)
{
    const char *p = path, *end = path + plen;
    while (*tpl) {
        if (p >= end || *p != '/' || *tpl != '/')
            return NO_MATCH;
        tpl++, p++;
        size_t tl = strcspn(tpl, "/");
        const char *seg_end = memchr(p, '/', (size_t)(end - p));
        size_t sl = seg_end ? (size_t)(seg_end - p) : (size_t)(end - p);
        if (tl == 6 && memcmp(tpl, "{node}", 6) == 0) {
            if (sl == 0)
                return NO_MATCH;
            if (decode_segment(p, sl, r->node, sizeof(r->node)) != 0)
                return BAD_SEGMENT;
        } else if (tl == 4 && memcmp(tpl, "{id}", 4) == 0) {
            if (sl == 0)
                return NO_MATCH;
            if (decode_segment(p, sl, r->id, sizeof(r->id)) != 0)
                return BAD_SEGMENT;
        } else if (tl != sl || memcmp(tpl, p, sl) != 0) {
            return NO_MATCH;
        }
        tpl += tl;
        p += sl;
    }
    return p == end ? MATCH : NO_MATCH;
}

/* The value of a query parameter (not decoded: ours are numbers), or NULL. */
static const char *query_param(const struct http_req *req, const char *name, char *out, size_t cap)
{
    const char *q = req->query;
    size_t nl = strlen(name);
    while (q && *q) {
        size_t l = strcspn(q, "&");
        if (l > nl && q[nl] == '=' && memcmp(q, name, nl) == 0) {
            size_t vl = l - nl - 1;
            if (vl >= cap)
                return NULL;
            memcpy(out, q + nl + 1, vl);
            out[vl] = '\0';
            return out;
        }
        q += l;
        if (*q == '&')
            q++;
    }
    return NULL;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || v == ULLONG_MAX)
        return -1;
    *out = v;
    return 0;
}

/* ---- JSON views ---- */

static const char *aff_name(uint8_t aff)
{
    static const char *const names[] = {"none", "owner", "publisher", "publish-only", "member",
                                        "outcast"};
    return aff < sizeof(names) / sizeof(names[0]) ? names[aff] : "none";
}

static const char *type_name(uint8_t node_type)
{
    return node_type == PS_COLLECTION ? "collection" : "leaf";
}

static void config_field_json(void *ud, const struct ps_config_field *f, const char *value)
{
    yajl_gen g = ud;
    json_str(g, strncmp(f->var, "pubsub#", 7) == 0 ? f->var + 7 : f->var);
    if (f->kind == PS_FIELD_BOOL)
        yajl_gen_bool(g, strcmp(value, "1") == 0);
    else if (f->kind == PS_FIELD_UINT && strcmp(value, "max") != 0)
        yajl_gen_number(g, value, strlen(value));
    else
        json_str(g, value);
}

static void node_json(yajl_gen g, const struct ps_node_info *n)
{
    yajl_gen_map_open(g);
    json_key_str(g, "node", n->name);
    json_key_str(g, "type", type_name(n->config.node_type));
    json_key_time(g, "created", n->created);
    json_key_uint(g, "items", n->item_count);
    json_key_uint(g, "payload_bytes", n->payload_bytes); /* what herald#max_node_bytes counts */
    json_key_str(g, "affiliation", aff_name(n->affiliation));
    json_str(g, "config");
    yajl_gen_map_open(g);
    ps_config_each(&n->config, config_field_json, g);
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
}

static const char json_open[] = "<json xmlns='" NS_JSON "'>", json_close[] = "</json>";

/* The JSON text of an XEP-0335 container as stored (rest_json_payload's
 * output, which is also what the XMPP edge's serializer makes of any
 * container), unescaped into out; -1 when the payload is anything else. */
static int json_container_text(const char *p, size_t n, struct buf *out)
{
    size_t ol = sizeof(json_open) - 1, cl = sizeof(json_close) - 1;
    if (n < ol + cl || memcmp(p, json_open, ol) != 0 || memcmp(p + n - cl, json_close, cl) != 0)
        return -1;
    static const struct {
        const char *ent;
        char c;
    } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''},
                {"&#13;", '\r'}, {"&#xD;", '\r'}, {"&#9;", '\t'}, {"&#10;", '\n'}};
    const char *s = p + ol, *end = p + n - cl;
    while (s < end) {
        if (*s == '<')
            return -1;
        if (*s != '&') {
            buf_putc(out, *s++);
            continue;
        }
        size_t i, left = (size_t)(end - s);
        for (i = 0; i < sizeof(ents) / sizeof(ents[0]); i++) {
            size_t el = strlen(ents[i].ent);
            if (left >= el && memcmp(s, ents[i].ent, el) == 0) {
                buf_putc(out, ents[i].c);
                s += el;
                break;
            }
        }
        if (i == sizeof(ents) / sizeof(ents[0]))
            return -1;
    }
    return buf_ok(out) ? 0 : -1;
}

int rest_json_payload(const char *json, size_t len, struct buf *out)
{
    struct buf text;
    int rc = 0;
    buf_init(&text, 0);
    if (json_canonical(json, len, &text) != 0) {
        rc = HERALD_EINVAL;
        goto done;
    }
    /* Byte for byte what xml_serialize(out, <json/> with one text child,
     * "\x01") writes: the stored bytes of an item do not depend on the
     * protocol it came in by. */
    buf_puts(out, json_open);
    buf_xml_text(out, text.data, text.len);
    buf_puts(out, json_close);
    if (!buf_ok(out))
        rc = HERALD_ENOMEM;
done:
    buf_free(&text);
    return rc;
}

void rest_payload_json(yajl_gen g, const char *payload, size_t len)
{
    if (len == 0)
        return;
    struct buf text;
    buf_init(&text, 0);
    if (json_container_text(payload, len, &text) == 0 && json_valid(text.data, text.len)) {
        json_str(g, "json");
        json_copy(g, text.data, text.len);
    } else {
        json_str(g, "xml");
        json_strn(g, payload, len);
    }
    buf_free(&text);
}

void rest_item_json(yajl_gen g, const struct ps_item *it)
{
    yajl_gen_map_open(g);
    json_str(g, "id");
    json_strn(g, it->id, it->id_len);
    json_key_uint(g, "seq", it->seq);
    json_key_time(g, "published", it->published);
    json_str(g, "publisher");
    json_strn(g, it->publisher, it->publisher_len);
    if (it->lease == PS_LEASE_TIMED) {
        uint64_t now = wall_ms();
        json_str(g, "lease");
        yajl_gen_map_open(g);
        json_key_uint(g, "seconds", it->lease_secs);
        json_key_uint(g, "remaining", it->lease_until > now ? (it->lease_until - now + 999) / 1000 : 0);
        json_key_time(g, "expires", it->lease_until);
        yajl_gen_map_close(g);
    } else if (it->lease == PS_LEASE_SESSION) {
        json_str(g, "lease");
        yajl_gen_map_open(g);
        json_str(g, "session");
        yajl_gen_bool(g, 1);
        yajl_gen_map_close(g);
    }
    rest_payload_json(g, it->payload, it->payload_len);
    yajl_gen_map_close(g);
}

/* ---- request bodies ---- */

enum body_kind { BODY_NONE, BODY_JSON, BODY_XML, BODY_OTHER };

static enum body_kind body_kind(const struct http_req *req)
{
    const char *ct = req->content_type;
    if (ct == NULL)
        return BODY_NONE;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strcspn(ct, "; \t");
    if (n == 16 && strncasecmp(ct, "application/json", n) == 0)
        return BODY_JSON;
    if ((n == 15 && strncasecmp(ct, "application/xml", n) == 0) ||
        (n == 8 && strncasecmp(ct, "text/xml", n) == 0))
        return BODY_XML;
    return BODY_OTHER;
}

/* A JSON request body as a yajl tree (depth-checked first), or NULL after
 * answering 400/415. */
static yajl_val json_body(struct rctx *r, bool required)
{
    if (r->req->body_len == 0 && !required)
        return NULL;
    return rest_json_object(r->hc, r->req);
}

yajl_val rest_json_object(struct http_conn *hc, const struct http_req *req)
{
    if (body_kind(req) != BODY_JSON) {
        http_problem(hc, 415, NULL, NULL, "the body must be application/json");
        return NULL;
    }
    char err[160];
    yajl_val v = NULL;
    /* yajl_tree hands out C strings: json_check first, so no string holds
     * a NUL that would cut it short ("nul\u0000tail" naming node "nul"). */
    if (json_check(req->body, req->body_len, true, err, sizeof(err)) != 0) {
        http_problem_code(hc, HERALD_EINVAL, err);
        return NULL;
    }
    if (json_valid(req->body, req->body_len))
        v = yajl_tree_parse(req->body, err, sizeof(err));
    if (v == NULL || !YAJL_IS_OBJECT(v)) {
        yajl_tree_free(v);
        http_problem_code(hc, HERALD_EINVAL, "the body is not a JSON object");
        return NULL;
    }
    return v;
}

/* How much of a client's string a problem detail quotes: at most max
 * bytes, never half a UTF-8 sequence (the answer must stay valid JSON). */
static int echo_len(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    return (int)n;
}

/* A "config" object as (var, values) fields for the service. The strings
 * point into the yajl tree, which must outlive the fields. */
struct config_fields {
    struct ps_field f[MAX_CONFIG_FIELDS];
    size_t n;
    char vars[MAX_CONFIG_FIELDS][72];
    const char **values;          /* one malloc'd array for every field's values */
};

static void config_fields_free(struct config_fields *c)
{
    free(c->values);
    c->values = NULL;
}

/* {"max_items": 10, "pubsub#title": "x", "children": ["a", "b"]} -> fields
 * pubsub#max_items = "10", pubsub#title = "x", pubsub#children = "a", "b";
 * true/false are "1"/"0". -1 after answering 400 (unknown field, a value
 * that is not a string, number or boolean) or 503 (no memory). */
static int config_fields(struct rctx *r, yajl_val cfg, struct config_fields *c)
{
    char msg[200];
    int rc = -1;
    c->n = 0;
    c->values = NULL;
    if (!YAJL_IS_OBJECT(cfg)) {
        problem(r, HERALD_EINVAL, "\"config\" must be a JSON object");
        goto done;
    }
    if (cfg->u.object.len > MAX_CONFIG_FIELDS) {
        problem(r, HERALD_EINVAL, "\"config\" has too many fields");
        goto done;
    }
    size_t nvalues = 0;
    for (size_t i = 0; i < cfg->u.object.len; i++) {
        yajl_val v = cfg->u.object.values[i];
        nvalues += YAJL_IS_ARRAY(v) ? v->u.array.len : 1;
    }
    c->values = calloc(nvalues ? nvalues : 1, sizeof(*c->values));
    if (c->values == NULL) {
        problem(r, HERALD_ENOMEM, "out of memory");
        goto done;
    }
    size_t used = 0;
    for (size_t i = 0; i < cfg->u.object.len; i++) {
        const char *key = cfg->u.object.keys[i];
        yajl_val v = cfg->u.object.values[i];
        char *var = c->vars[i];
        /* Fields go by their full names, or pubsub#'s without the prefix;
         * Herald's own (herald#max_publish_rate) by their full names only. */
        int n = snprintf(var, sizeof(c->vars[i]), "%s%s",
                         strchr(key, '#') != NULL ? "" : "pubsub#", key);
        if (n < 0 || (size_t)n >= sizeof(c->vars[i]) || !ps_config_known(var)) {
            snprintf(msg, sizeof(msg), "unknown configuration field \"%.*s\"", echo_len(key, 100),
                     key);
            problem(r, HERALD_EINVAL, msg);
            goto done;
        }
        struct ps_field *f = &c->f[c->n++];
        f->var = var;
        f->values = c->values + used;
        f->nvalues = YAJL_IS_ARRAY(v) ? v->u.array.len : 1;
        for (size_t j = 0; j < f->nvalues; j++) {
            yajl_val e = YAJL_IS_ARRAY(v) ? v->u.array.values[j] : v;
            const char *text = YAJL_IS_STRING(e)   ? e->u.string
                               : YAJL_IS_NUMBER(e) ? e->u.number.r
                               : YAJL_IS_TRUE(e)   ? "1"
                               : YAJL_IS_FALSE(e)  ? "0"
                                                   : NULL;
            if (text == NULL) {
                snprintf(msg, sizeof(msg), "\"%.*s\" needs a string, number or boolean",
                         echo_len(key, 100), key);
                problem(r, HERALD_EINVAL, msg);
                goto done;
            }
            c->values[used++] = text;
        }
    }
    rc = 0;
done:
    if (rc != 0)
        config_fields_free(c);
    return rc;
}

/* The request body as a serialized item payload into out, or -1 after
 * answering (400, 413, 415). */
static int item_payload(struct rctx *r, struct buf *out)
{
    char msg[160];
    int rc = -1;
    uint32_t cap = pubsub_caps(r->ps)->max_payload_size;
    switch (body_kind(r->req)) {
    case BODY_JSON:
        if (json_check(r->req->body, r->req->body_len, false, msg, sizeof(msg)) != 0) {
            problem(r, HERALD_EINVAL, msg);
            break;
        }
        rc = rest_json_payload(r->req->body, r->req->body_len, out);
        if (rc == HERALD_EINVAL)
            problem(r, rc, "the body is not valid JSON");
        else if (rc != 0)
            problem(r, rc, "out of memory");
        break;
    case BODY_XML: {
        /* xmlp_parse_element's output is canonical: carried verbatim. The
         * hardened parser's own limits hold here too: no more bytes than a
         * payload may have, the stanza depth. */
        struct xmlp_limits lim = {cap, r->h->cfg->max_depth};
        enum xmlp_error e = xmlp_parse_element(r->req->body, r->req->body_len, &lim, out);
        if (e == XMLP_OK && !buf_ok(out)) {
            problem(r, HERALD_ENOMEM, "out of memory");
        } else if (e != XMLP_OK) {
            snprintf(msg, sizeof(msg),
                     "the body must be one well-formed, namespaced XML element (%s)",
                     e == XMLP_BAD_FORMAT ? "not exactly one namespaced element"
                                          : xmlp_strerror(e));
            problem(r, HERALD_EINVAL, msg);
        } else {
            rc = 0;
        }
        break;
    }
    default:
        http_problem(r->hc, 415, NULL, NULL,
                     "an item body must be application/json or application/xml");
        break;
    }
    if (rc == 0 && out->len > cap) {
        snprintf(msg, sizeof(msg), "the payload (%zu bytes) exceeds max_payload_size (%u bytes)",
                 out->len, (unsigned)cap);
        problem(r, HERALD_EPAYLOAD_TOO_BIG, msg);
        rc = -1;
    }
    return rc;
}

/* ---- handlers ---- */

/* 0 when the token's JID may read the node in the path, else -1 after
 * answering (404 no such node, 403 ...). */
static int check_readable(struct rctx *r)
{
    int rc = pubsub_node_readable(r->ps, r->tok.jid, r->node);
    if (rc != 0) {
        ps_problem(r, rc, "the node's access model does not allow this JID to read it");
        return -1;
    }
    return 0;
}

static void get_openapi(struct rctx *r)
{
    http_respond(r->hc, 200, "application/json", NULL, herald_openapi_json, herald_openapi_json_len);
}

static void node_location(struct buf *b, const char *node, const char *item)
{
    buf_puts(b, "Location: /v1/nodes/");
    encode_segment(b, node);
    if (item) {
        buf_puts(b, "/items/");
        encode_segment(b, item);
    }
    buf_puts(b, "\r\n");
}

/* Answers a node change (create, configure) with the node object once the
 * change has committed. */
static void node_changed(struct rctx *r, const char *name, int status, bool location)
{
    struct ps_node_info n;
    struct buf loc;
    yajl_gen g = NULL;
    buf_init(&loc, 0);
    int rc = pubsub_node_get(r->ps, r->tok.jid, name, &n);
    if (rc != 0) {
        ps_problem(r, rc, "the node cannot be read back");
        goto done;
    }
    if ((g = json_gen_new()) == NULL) {
        problem(r, HERALD_ENOMEM, "out of memory");
        goto done;
    }
    node_json(g, &n);
    if (location)
        node_location(&loc, name, NULL);
    if (!buf_ok(&loc) || buf_nul(&loc) != 0) {
        problem(r, HERALD_ENOMEM, "out of memory");
        goto done;
    }
    respond_after_commit(r, status, g, location ? loc.data : NULL);
done:
    if (g)
        yajl_gen_free(g);
    buf_free(&loc);
}

static void post_nodes(struct rctx *r)
{
    struct config_fields cf = {.n = 0};
    yajl_val body = json_body(r, false);
    if (body == NULL && r->req->body_len)
        return;
    const char *path_name[] = {"node", NULL}, *path_cfg[] = {"config", NULL};
    yajl_val name = body ? yajl_tree_get(body, path_name, yajl_t_any) : NULL;
    yajl_val cfg = body ? yajl_tree_get(body, path_cfg, yajl_t_any) : NULL;
    if (name && !YAJL_IS_STRING(name)) {
        problem(r, HERALD_EINVAL, "\"node\" must be a string");
        goto done;
    }
    if (cfg && config_fields(r, cfg, &cf) != 0)
        goto done;
    char created[PS_NODE_NAME_MAX + 1];
    int rc = pubsub_create(r->ps, r->tok.jid, name ? name->u.string : NULL, cf.f, cf.n, created);
    if (rc != 0) {
        ps_problem(r, rc, "the node could not be created");
        goto done;
    }
    node_changed(r, created, 201, true);
done:
    config_fields_free(&cf);
    yajl_tree_free(body);
}

static int list_node(void *ud, const struct ps_node_info *n)
{
    yajl_gen g = ud;
    yajl_gen_map_open(g);
    json_key_str(g, "node", n->name);
    json_key_str(g, "type", type_name(n->config.node_type));
    json_key_uint(g, "items", n->item_count);
    yajl_gen_map_close(g);
    return 0;
}

/* "next": the cursor of the following page, or null at the end. */
static void next_cursor(yajl_gen g, bool more, uint64_t cursor)
{
    char cur[24];
    json_str(g, "next");
    if (more && snprintf(cur, sizeof(cur), "%llu", (unsigned long long)cursor) > 0)
        json_str(g, cur);
    else
        yajl_gen_null(g);
}

/* ?max=N&after=C: one page of the nodes the token's JID may see, in
 * creation order; "next" is the cursor of the following page (a node id,
 * valid even once that node is deleted) or null. The page size is bounded
 * by pubsub.node_page_size, which is also the default. */
static void get_nodes(struct rctx *r)
{
    char v[32];
    const char *s;
    uint64_t max = pubsub_node_page_size(r->ps), after = 0;
    if ((s = query_param(r->req, "max", v, sizeof(v))) &&
        (parse_u64(s, &max) || max < 1 || max > pubsub_node_page_size(r->ps))) {
        char msg[80];
        snprintf(msg, sizeof(msg), "max must be a number from 1 to %u",
                 pubsub_node_page_size(r->ps));
        problem(r, HERALD_EINVAL, msg);
        return;
    }
    if ((s = query_param(r->req, "after", v, sizeof(v))) && parse_u64(s, &after)) {
        problem(r, HERALD_EINVAL, "after must be a cursor from \"next\"");
        return;
    }
    yajl_gen g = json_gen_new();
    if (g == NULL) {
        problem(r, HERALD_ENOMEM, "out of memory");
        return;
    }
    yajl_gen_map_open(g);
    json_str(g, "nodes");
    yajl_gen_array_open(g);
    struct ps_nodes_query q = {.max = (unsigned)max, .after = after};
    struct ps_nodes_page pg;
    int rc = pubsub_nodes_page(r->ps, r->tok.jid, NULL, &q, list_node, g, &pg);
    yajl_gen_array_close(g);
    next_cursor(g, pg.more, pg.last);
    yajl_gen_map_close(g);
    if (rc < 0)
        ps_problem(r, rc, "the nodes could not be listed");
    else
        respond_json(r, 200, g, NULL);
    yajl_gen_free(g);
}

static void get_node(struct rctx *r)
{
    struct ps_node_info n;
    yajl_gen g = NULL;
    if (check_readable(r) != 0)
        return;
    int rc = pubsub_node_get(r->ps, r->tok.jid, r->node, &n);
    if (rc != 0) {
        ps_problem(r, rc, "the node cannot be read");
        goto done;
    }
    if ((g = json_gen_new()) == NULL) {
        problem(r, HERALD_ENOMEM, "out of memory");
        goto done;
    }
    node_json(g, &n);
    respond_json(r, 200, g, NULL);
done:
    if (g)
        yajl_gen_free(g);
}

static void patch_node(struct rctx *r)
{
    struct config_fields cf = {.n = 0};
    yajl_val body = json_body(r, true);
    if (body == NULL)
        return;
    const char *path_cfg[] = {"config", NULL};
    yajl_val cfg = yajl_tree_get(body, path_cfg, yajl_t_any);
    if (cfg == NULL) {
        problem(r, HERALD_EINVAL, "the body needs a \"config\" object");
        goto done;
    }
    if (config_fields(r, cfg, &cf) != 0)
        goto done;
    int rc = pubsub_configure(r->ps, r->tok.jid, r->node, cf.f, cf.n);
    if (rc != 0) {
        ps_problem(r, rc, "the node could not be reconfigured");
        goto done;
    }
    node_changed(r, r->node, 200, false);
done:
    config_fields_free(&cf);
    yajl_tree_free(body);
}

static void delete_node(struct rctx *r)
{
    int rc = pubsub_delete(r->ps, r->tok.jid, r->node, NULL);
    if (rc != 0)
        ps_problem(r, rc, "the node could not be deleted");
    else
        respond_after_commit(r, 204, NULL, NULL);
}

static void purge_node(struct rctx *r)
{
    int rc = pubsub_purge(r->ps, r->tok.jid, r->node);
    if (rc != 0)
        ps_problem(r, rc, "the node could not be purged");
    else
        respond_after_commit(r, 204, NULL, NULL);
}

/* The ?lease=SECONDS of a publish or renewal (docs/leases.md): 0 when
 * absent, else 1..PS_LEASE_MAX_SECS; -1 after answering 400/501. */
static int64_t lease_param(struct rctx *r)
{
    char v[32];
    uint64_t secs;
    const char *s = query_param(r->req, "lease", v, sizeof(v));
    if (s == NULL)
        return 0;
    if (r->h->cluster) {
        problem(r, HERALD_EUNSUPPORTED, "leases are not available in cluster mode");
        return -1;
    }
    if (parse_u64(s, &secs) != 0 || secs == 0 || secs > PS_LEASE_MAX_SECS) {
        problem(r, HERALD_EINVAL,
                "lease must be a whole number of seconds from 1 to 315360000 (session "
                "leases belong to XMPP sessions)");
        return -1;
    }
    return (int64_t)secs;
}

static void publish(struct rctx *r, const char *item_id)
{
    struct buf payload, loc;
    yajl_gen g = NULL;
    buf_init(&payload, 0);
    buf_init(&loc, 0);
    /* Every check comes before any work on the body (issue 11, finding
     * 2): a body is parsed only for a publish that could succeed. Creating
     * a node by publishing ([pubsub] auto_create) needs 'manage'. */
    if (pubsub_auto_create(r->ps) && !(r->tok.scopes & SCOPE_MANAGE) &&
        pubsub_node_readable(r->ps, r->tok.jid, r->node) == HERALD_ENOTFOUND) {
        problem(r, HERALD_ENOTFOUND, "no such node");
        goto done;
    }
    int rc = pubsub_publish_allowed(r->ps, r->tok.jid, r->node);
    if (rc != 0) {
        ps_problem(r, rc, "the item could not be published");
        goto done;
    }
    /* No payload can be larger than the service's cap, so a body over it
     * is refused unread. */
    uint32_t cap = pubsub_caps(r->ps)->max_payload_size;
    if (r->req->body_len > cap) {
        char msg[128];
        snprintf(msg, sizeof(msg), "the body (%zu bytes) exceeds max_payload_size (%u bytes)",
                 r->req->body_len, (unsigned)cap);
        problem(r, HERALD_EPAYLOAD_TOO_BIG, msg);
        goto done;
    }
    int64_t lease = lease_param(r);
    if (lease < 0 || item_payload(r, &payload) != 0)
        goto done;
    struct ps_publish req = {
        .node = r->node,
        .item_id = item_id,
        .has_item = true,
        .payload = payload.data,
        .payload_len = payload.len,
        .lease_secs = (uint32_t)lease,
    };
    struct ps_published out;
    rc = pubsub_publish(r->ps, r->tok.jid, &req, &out);
    if (rc != 0) {
        ps_problem(r, rc, "the item could not be published");
        goto done;
    }
    node_location(&loc, r->node, out.id);
    if ((g = json_gen_new()) == NULL || !buf_ok(&loc) || buf_nul(&loc) != 0) {
        problem(r, HERALD_ENOMEM, "out of memory");
        goto done;
    }
    yajl_gen_map_open(g);
    json_key_str(g, "node", r->node);
    json_key_str(g, "id", out.id);
    json_key_uint(g, "seq", out.seq); /* what `herald pub` prints, and SSE's resume point */
    yajl_gen_map_close(g);
    /* PUT: 200 when it replaced an item, 201 when it is new. */
    respond_after_commit(r, out.replaced ? 200 : 201, g, loc.data);
done:
    if (g)
        yajl_gen_free(g);
    buf_free(&loc);
    buf_free(&payload);
}

static void post_item(struct rctx *r) { publish(r, NULL); }
static void put_item(struct rctx *r) { publish(r, r->id); }

/* POST /v1/nodes/{node}/items/{id}/lease: a new lease from now, of
 * ?lease= or {"lease": N} seconds, or of the item's previous length. */
static void renew_lease(struct rctx *r)
{
    yajl_gen g = NULL;
    yajl_val body = NULL;
    int64_t secs = lease_param(r);
    if (secs < 0)
        goto done;
    if (secs == 0 && r->req->body_len) {
        if ((body = json_body(r, false)) == NULL)
            goto done;
        const char *path[] = {"lease", NULL};
        yajl_val v = yajl_tree_get(body, path, yajl_t_number);
        if (v == NULL || !YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 1 ||
            YAJL_GET_INTEGER(v) > PS_LEASE_MAX_SECS) {
            problem(r, HERALD_EINVAL, "\"lease\" must be a whole number of seconds from 1 to "
                                      "315360000");
            goto done;
        }
        secs = YAJL_GET_INTEGER(v);
    }
    if (secs == 0 && r->h->cluster) {
        problem(r, HERALD_EUNSUPPORTED, "leases are not available in cluster mode");
        goto done;
    }
    uint64_t until;
    int rc = pubsub_lease_renew(r->ps, r->tok.jid, r->node, r->id, (uint32_t)secs, &until);
    if (rc != 0) {
        ps_problem(r, rc, "the lease could not be renewed");
        goto done;
    }
    if ((g = json_gen_new()) == NULL) {
        problem(r, HERALD_ENOMEM, "out of memory");
        goto done;
    }
    yajl_gen_map_open(g);
    json_key_str(g, "node", r->node);
    json_key_str(g, "id", r->id);
    json_key_time(g, "expires", until);
    yajl_gen_map_close(g);
    respond_after_commit(r, 200, g, NULL);
done:
    if (g)
        yajl_gen_free(g);
    yajl_tree_free(body);
}

struct page {
    yajl_gen g;
    unsigned n, max;
    uint64_t last_seq;
    bool more;
};

static int page_item(void *ud, const struct ps_item *it)
{
    struct page *p = ud;
    if (p->n == p->max) {
        p->more = true;
        return 1;
    }
    rest_item_json(p->g, it);
    p->n++;
    p->last_seq = it->seq;
    return 0;
}

static void get_items(struct rctx *r)
{
    char v[32];
    uint64_t max = DEFAULT_PAGE, before = 0;
    const char *s;
    yajl_gen g = NULL;
    if ((s = query_param(r->req, "max", v, sizeof(v))) &&
        (parse_u64(s, &max) || max < 1 || max > MAX_PAGE)) {
        problem(r, HERALD_EINVAL, "max must be a number from 1 to 500");
        return;
    }
    bool has_before = (s = query_param(r->req, "before", v, sizeof(v))) != NULL;
    if (has_before && parse_u64(s, &before)) {
        problem(r, HERALD_EINVAL, "before must be a cursor from \"next\"");
        return;
    }
    if ((g = json_gen_new()) == NULL) {
        problem(r, HERALD_ENOMEM, "out of memory");
        return;
    }
    yajl_gen_map_open(g);
    json_str(g, "items");
    yajl_gen_array_open(g);
    /* One more than a page tells whether there is a next one. before=0 is
     * before every item: an empty page (the service still checks access). */
    struct page p = {g, 0, has_before && before == 0 ? 0 : (unsigned)max, 0, false};
    struct ps_items_query q = {.max = (unsigned)max + 1, .before_seq = before, .committed = true};
    int rc = pubsub_items(r->ps, r->tok.jid, r->node, &q, page_item, &p);
    if (p.max == 0)
        p.more = false;
    yajl_gen_array_close(g);
    json_str(g, "next");
    if (p.more) {
        char cur[24];
        snprintf(cur, sizeof(cur), "%llu", (unsigned long long)p.last_seq);
        json_str(g, cur);
    } else {
        yajl_gen_null(g);
    }
    yajl_gen_map_close(g);
    if (rc < 0)
        ps_problem(r, rc, "the items could not be read");
    else
        respond_json(r, 200, g, NULL);
    yajl_gen_free(g);
}

struct one_item {
    yajl_gen g;
    bool found;
};

static int one_item(void *ud, const struct ps_item *it)
{
    struct one_item *o = ud;
    if (o->found)
        return 1;
    rest_item_json(o->g, it);
    o->found = true;
    return 0;
}

static void get_item(struct rctx *r)
{
    struct one_item o = {json_gen_new(), false};
    if (o.g == NULL) {
        problem(r, HERALD_ENOMEM, "out of memory");
        return;
    }
    const char *ids[] = {r->id};
    struct ps_items_query q = {.ids = ids, .nids = 1, .committed = true};
    int rc = pubsub_items(r->ps, r->tok.jid, r->node, &q, one_item, &o);
    if (rc < 0)
        ps_problem(r, rc, "the item could not be read");
    else if (!o.found)
        problem(r, HERALD_ENOTFOUND, "no such item");
    else
        respond_json(r, 200, o.g, NULL);
    yajl_gen_free(o.g);
}

static void delete_item(struct rctx *r)
{
    int rc = pubsub_retract(r->ps, r->tok.jid, r->node, r->id, true);
    if (rc != 0)
        ps_problem(r, rc, rc == HERALD_ENOTFOUND ? "no such item" : "the item could not be retracted");
    else
        respond_after_commit(r, 204, NULL, NULL);
}

static int list_subscription(void *ud, const struct ps_subscription *s)
{
    yajl_gen g = ud;
    yajl_gen_map_open(g);
    json_key_str(g, "jid", s->jid);
    json_key_str(g, "subid", s->subid);
    json_key_str(g, "state", s->state == SUB_PENDING ? "pending" : "subscribed");
    yajl_gen_map_close(g);
    return 0;
}

static void get_subscriptions(struct rctx *r)
{
    yajl_gen g = json_gen_new();
    if (g == NULL) {
        problem(r, HERALD_ENOMEM, "out of memory");
        return;
    }
    yajl_gen_map_open(g);
    json_str(g, "subscriptions");
    yajl_gen_array_open(g);
    int rc = pubsub_subscriptions_node(r->ps, r->tok.jid, r->node, list_subscription, g);
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    if (rc < 0) /* XEP-0060 §8.8.1.3 */
        ps_problem(r, rc, "only an owner of the node may list its subscriptions");
    else
        respond_json(r, 200, g, NULL);
    yajl_gen_free(g);
}

static void get_events(struct rctx *r)
{
    if (check_readable(r) != 0)
        return;
    /* Resume after the last event the client saw (the HTML EventSource
     * sends Last-Event-ID itself when it reconnects). */
    char v[32];
    const char *last = r->req->last_event_id ? r->req->last_event_id
                                             : query_param(r->req, "last_event_id", v, sizeof(v));
    uint64_t last_seq = 0;
    if (last && (parse_u64(last, &last_seq) != 0 || last_seq == UINT64_MAX)) {
        problem(r, HERALD_EINVAL, "Last-Event-ID must be an event id (a number)");
        return;
    }
    if (r->req->method == HTTP_HEAD) { /* RFC 9110 §9.3.2: the headers only */
        http_respond(r->hc, 200, "text/event-stream", NULL, "", 0);
        return;
    }
    struct ps_node_info n;
    int rc = pubsub_node_get(r->ps, r->tok.jid, r->node, &n);
    if (rc != 0) {
        ps_problem(r, rc, "the node cannot be read");
        return;
    }
    /* Without Last-Event-ID the stream starts with the next item published. */
    sse_start(r->hc, r->ps, &n, &r->tok, last ? last_seq : n.last_seq);
}

/* One bound session: its full JID, the transport its client is on now
 * (session_transport), the client's address (null while a XEP-0198 session
 * is detached) and when its connection was accepted. started_ms is loop
 * time: now_ms - (loop_ms - started_ms) turns it into wall-clock time. */
static void session_json(yajl_gen g, const struct session *s, uint64_t now_ms, uint64_t loop_ms)
{
    uint64_t age = loop_ms > s->started_ms ? loop_ms - s->started_ms : 0;
    yajl_gen_map_open(g);
    json_key_str(g, "jid", s->full ? s->full : s->bare);
    json_key_str(g, "transport", session_transport(s));
    json_str(g, "peer");
    if (s->conn)
        json_str(g, s->conn->peer);
    else
        yajl_gen_null(g);
    json_key_time(g, "since", now_ms > age ? now_ms - age : 0);
    yajl_gen_map_close(g);
}

/* ?max=N&after=C: one page of the XMPP sessions bound on this instance, in
 * the order of the account table; "total" counts them all and "next" is
 * the cursor of the following page (a position: a session that binds or
 * ends between two pages may shift the rest by one) or null. It names
 * every account's JIDs and addresses, so it takes 'manage' (docs/rest-api.md,
 * "Sessions"). */
static void get_sessions(struct rctx *r)
{
    char v[32];
    const char *q;
    uint64_t max = SESSIONS_PAGE, after = 0, total = 0, n = 0;
    struct timespec ts;
    if ((q = query_param(r->req, "max", v, sizeof(v))) &&
        (parse_u64(q, &max) || max < 1 || max > MAX_SESSIONS_PAGE)) {
        problem(r, HERALD_EINVAL, "max must be a number from 1 to 1000");
        return;
    }
    if ((q = query_param(r->req, "after", v, sizeof(v))) && parse_u64(q, &after)) {
        problem(r, HERALD_EINVAL, "after must be a cursor from \"next\"");
        return;
    }
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        problem(r, HERALD_EIO, "the clock cannot be read");
        return;
    }
    uint64_t now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    uint64_t loop_ms = uv_now(r->h->loop);
    yajl_gen g = json_gen_new();
    if (g == NULL) {
        problem(r, HERALD_ENOMEM, "out of memory");
        return;
    }
    yajl_gen_map_open(g);
    json_str(g, "sessions");
    yajl_gen_array_open(g);
    for (struct account *a = r->h->accounts; a; a = a->hh.next)
        for (struct session *s = a->sessions; s; s = s->next_res) {
            if (total++ < after || n == max)
                continue;
            session_json(g, s, now_ms, loop_ms);
            n++;
        }
    yajl_gen_array_close(g);
    json_key_uint(g, "total", total);
    next_cursor(g, after + n < total, after + n);
    yajl_gen_map_close(g);
    respond_json(r, 200, g, NULL);
    yajl_gen_free(g);
}

/* ---- webhooks (api/webhooks.c) ---- */

static void post_webhooks(struct rctx *r)
{
    webhooks_rest_create(r->h, r->hc, r->req, r->tok.jid, r->node);
}

static void get_webhooks(struct rctx *r) { webhooks_rest_list(r->h, r->hc, r->tok.jid, r->node); }

static void delete_webhook(struct rctx *r)
{
    webhooks_rest_delete(r->h, r->hc, r->tok.jid, r->node, r->id);
}

/* ---- dispatch ---- */

static const struct route {
    enum http_method method;
    const char *path;
    void (*fn)(struct rctx *r);
    uint8_t scope; /* 0: no token needed */
} routes[] = {
    {HTTP_GET, "/v1/openapi.json", get_openapi, 0},
    {HTTP_POST, "/v1/nodes", post_nodes, SCOPE_MANAGE},
    {HTTP_GET, "/v1/nodes", get_nodes, SCOPE_READ},
    {HTTP_GET, "/v1/nodes/{node}", get_node, SCOPE_READ},
    {HTTP_PATCH, "/v1/nodes/{node}", patch_node, SCOPE_MANAGE},
    {HTTP_DELETE, "/v1/nodes/{node}", delete_node, SCOPE_MANAGE},
    {HTTP_POST, "/v1/nodes/{node}/purge", purge_node, SCOPE_MANAGE},
    {HTTP_POST, "/v1/nodes/{node}/items", post_item, SCOPE_PUBLISH},
    {HTTP_GET, "/v1/nodes/{node}/items", get_items, SCOPE_READ},
    {HTTP_PUT, "/v1/nodes/{node}/items/{id}", put_item, SCOPE_PUBLISH},
    {HTTP_GET, "/v1/nodes/{node}/items/{id}", get_item, SCOPE_READ},
    {HTTP_DELETE, "/v1/nodes/{node}/items/{id}", delete_item, SCOPE_PUBLISH},
    {HTTP_POST, "/v1/nodes/{node}/items/{id}/lease", renew_lease, SCOPE_PUBLISH},
    {HTTP_GET, "/v1/nodes/{node}/subscriptions", get_subscriptions, SCOPE_READ},
    {HTTP_GET, "/v1/nodes/{node}/events", get_events, SCOPE_READ},
    {HTTP_POST, "/v1/nodes/{node}/webhooks", post_webhooks, SCOPE_MANAGE},
    {HTTP_GET, "/v1/nodes/{node}/webhooks", get_webhooks, SCOPE_MANAGE},
    {HTTP_DELETE, "/v1/nodes/{node}/webhooks/{id}", delete_webhook, SCOPE_MANAGE},
    {HTTP_GET, "/v1/sessions", get_sessions, SCOPE_MANAGE},
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

/* 0 with r->tok filled, or -1 after answering 401/403 (or the storage
 * error's status). */
static int authenticate(struct rctx *r, uint8_t scope)
{
    const char *auth = r->req->authorization;
    if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0) {
        problem(r, HERALD_EAUTH, "a bearer token is required (Authorization: Bearer ...)");
        return -1;
    }
    const char *tok = auth + 7;
    while (*tok == ' ')
        tok++;
    size_t len = strlen(tok);
    while (len && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
        len--;
    /* token_check also refuses a token whose account was deleted or made
     * again (the account generation, docs/rest-api.md). */
    int rc = token_check(r->h->store, tok, len, (uint64_t)time(NULL), &r->tok);
    if (rc == HERALD_EFORBIDDEN) {
        problem(r, HERALD_EAUTH, "the token is unknown, revoked or expired");
        return -1;
    }
    if (rc != 0) {
        problem(r, rc, "tokens cannot be checked now");
        return -1;
    }
    if (!(r->tok.scopes & scope)) {
        char need[32], msg[96];
        token_scopes_format(scope, need, sizeof(need));
        snprintf(msg, sizeof(msg), "the token lacks the '%s' scope", need);
        problem(r, HERALD_EFORBIDDEN, msg);
        return -1;
    }
    return 0;
}

/* The route of req (NULL after answering 404/405/400). */
static const struct route *find_route(struct rctx *r)
{
    const struct http_req *req = r->req;
    struct http_conn *hc = r->hc;
    const struct route *found = NULL;
    char allow[96] = "";
    bool bad = false;
    for (size_t i = 0; i < NROUTES && !found; i++) {
        enum match m = match_path(routes[i].path, req->path, req->path_len, r);
        if (m == BAD_SEGMENT)
            bad = true;
        if (m != MATCH)
            continue;
        bool head = req->method == HTTP_HEAD && routes[i].method == HTTP_GET;
        if ((int)routes[i].method == req->method || head) {
            found = &routes[i];
        } else {
            size_t l = strlen(allow);
            snprintf(allow + l, sizeof(allow) - l, "%s%s%s", l ? ", " : "",
                     http_method_str(routes[i].method), routes[i].method == HTTP_GET ? ", HEAD" : "");
        }
    }
    if (found == NULL) {
        if (allow[0]) {
            char hdr[128];
            snprintf(hdr, sizeof(hdr), "Allow: %s\r\n", allow);
            http_problem_h(hc, 405, NULL, NULL, "this resource does not support that method", hdr);
        } else if (bad) {
            http_problem_code(hc, HERALD_EINVAL,
                              "a path segment is not valid percent-encoded UTF-8 or is too long");
        } else {
            http_problem(hc, 404, NULL, NULL, "no such resource");
        }
    }
    return found;
}

/* A change that goes through the cluster log in cluster mode. Webhooks
 * are single-instance (docs/webhooks.md): their handlers answer 501 in
 * cluster mode themselves. */
static bool changes(const struct route *rt)
{
    return rt->method != HTTP_GET && rt->method != HTTP_HEAD && rt->fn != post_webhooks &&
           rt->fn != delete_webhook;
}

bool rest_dispatch(struct http_conn *hc, const struct http_req *req)
{
    if (req->path_len < 3 || memcmp(req->path, "/v1", 3) != 0 ||
        (req->path_len > 3 && req->path[3] != '/'))
        return false;
    struct rctx *r = calloc(1, sizeof(*r)); /* holds a 3 KiB JID: not on the stack */
    if (r == NULL) {
        http_problem_code(hc, HERALD_ENOMEM, "out of memory");
        return true;
    }
    r->hc = hc;
    r->h = http_herald(hc);
    r->ps = r->h->pubsub;
    r->req = req;
    const struct route *found = find_route(r);
    if (found == NULL) {
        /* answered */
    } else if (r->ps == NULL) {
        http_problem_code(hc, HERALD_EUNAVAIL, "the pubsub service is not running");
    } else if (found->scope == 0 || authenticate(r, found->scope) == 0) {
        /* Cluster mode: a change goes through the log; rest_apply runs it
         * when every instance applies it (docs/cluster.md, "The seam"). */
        if (changes(found) && cluster_proposes(r->h)) {
            int rc = cluster_propose_rest(r->h, hc, req, r->tok.jid, r->tok.scopes,
                                          r->node[0] ? r->node : NULL);
            if (rc != 0)
                http_problem_h(hc, herald_error(rc)->http, herald_error(rc)->cond, NULL,
                               herald_strerror(rc), rc == HERALD_ECLUSTER ? "Retry-After: 2\r\n"
                                                                          : NULL);
        } else {
            found->fn(r);
        }
    }
    free(r);
    return true;
}

void rest_apply(struct herald *h, struct http_conn *hc, const struct http_req *req,
                const char *jid, uint8_t scopes)
{
    struct rctx *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        /* Every instance must apply the entry alike: without memory this
         * one cannot, and the cluster code stops applying (cluster.c). */
        cluster_apply_failed(h, HERALD_ENOMEM);
        return;
    }
    r->hc = hc;
    r->h = h;
    r->ps = h->pubsub;
    r->req = req;
    snprintf(r->tok.jid, sizeof(r->tok.jid), "%s", jid);
    r->tok.scopes = scopes;
    const struct route *found = find_route(r);
    if (found && changes(found) && r->ps)
        found->fn(r);
    free(r);
}
