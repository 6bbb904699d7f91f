/* rest.c - the /v1 REST bridge (docs/rest-api.md): bearer tokens, one
 * route table, and handlers that call the same pubsub service as XMPP.
 *
 * Reads use a committed snapshot (an HTTP reader never sees a change a crash
 * could take back). Changes join the loop turn's write batch like XMPP
 * requests do, and their answers (201/200/204) are released by a batch
 * callback only after the commit; until then the connection's next
 * pipelined request waits (http.c). */
#include <http_parser.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <yajl/yajl_tree.h>

#include "arena.h"
#include "batch.h"
#include "buf.h"
#include "errors.h"
#include "herald.h"
#include "http.h"
#include "log.h"
#include "pubsub.h"
#include "rest.h"
#include "store.h"
#include "token.h"
#include "xml.h"
#include "xml_parser.h"

extern const char herald_openapi_json[];
extern const size_t herald_openapi_json_len;

#define MAX_PAGE 500
#define DEFAULT_PAGE 20
#define NODE_NAME_MAX 256
#define ITEM_ID_MAX 256

/* One request being handled. */
struct rctx {
    struct http_conn *hc;
    struct herald *h;
    struct ps_service *ps;
    const struct http_req *req;
    struct arena *a;
    struct store_token tok;       /* who: tok.jid */
    char node[NODE_NAME_MAX + 1]; /* {node}, decoded */
    char id[ITEM_ID_MAX + 1];     /* {id}, decoded */
};

/* ---- answers ---- */

static int status_of(const struct ps_err *e)
{
    static const struct {
        const char *cond;
        int status;
    } map[] = {
        {"bad-request", 400},     {"jid-malformed", 400},         {"not-acceptable", 400},
        {"policy-violation", 400}, {"not-authorized", 403},        {"forbidden", 403},
        {"not-allowed", 403},     {"registration-required", 403}, {"subscription-required", 403},
        {"item-not-found", 404},  {"conflict", 409},              {"feature-not-implemented", 501},
        {"resource-constraint", 507}, {"service-unavailable", 503}, {"internal-server-error", 500},
    };
    if (e->app && strcmp(e->app, "payload-too-big") == 0)
        return 413;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (e->cond && strcmp(map[i].cond, e->cond) == 0)
            return map[i].status;
    return 500;
}

static void ps_problem(struct rctx *r, const struct ps_err *e, const char *detail)
{
    const char *text = e->text ? e->text : detail;
    if (e->cond && strcmp(e->cond, "item-not-found") == 0 && r->node[0] &&
        pubsub_node(r->ps, r->node) == NULL)
        text = "no such node";
    http_problem(r->hc, status_of(e), e->cond ? e->cond : "internal-server-error", e->app, text);
}

static void respond_json(struct rctx *r, int status, yajl_gen g, const char *headers)
{
    struct buf b;
    buf_init(&b, 0);
    if (json_gen_take(g, &b) == 0) {
        buf_putc(&b, '\n');
        http_respond(r->hc, status, "application/json", headers, b.data, b.len);
    } else {
        http_problem(r->hc, 500, "internal-server-error", NULL, "the answer could not be encoded");
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
        http_problem(p->hc, 507, "resource-constraint", NULL, "the change could not be stored: storage is full");
    else if (failed == HERALD_EUNAVAIL)
        http_problem(p->hc, 503, "service-unavailable", NULL, "the server is shutting down");
    else
        http_problem(p->hc, 500, "internal-server-error", NULL, "the change could not be stored");
    http_unref(p->hc);
    free(p->headers);
    free(p->body);
    free(p);
}

/* Answers after the commit of this loop turn's batch (at once if nothing
 * was written). g may be NULL (no body). */
static void respond_after_commit(struct rctx *r, int status, yajl_gen g, const char *headers)
{
    struct pending *p = calloc(1, sizeof(*p));
    struct buf b;
    buf_init(&b, 0);
    if (g && json_gen_take(g, &b) == 0)
        buf_putc(&b, '\n');
    if (p == NULL || (g && !buf_ok(&b)) || (headers && (p->headers = strdup(headers)) == NULL)) {
        if (p)
            free(p->headers);
        free(p);
        buf_free(&b);
        http_problem(r->hc, 500, "internal-server-error", NULL, "out of memory");
        return;
    }
    p->hc = r->hc;
    p->status = status;
    p->body = b.len ? buf_take(&b, &p->len) : NULL;
    buf_free(&b);
    http_ref(r->hc);
    if (batch_after(r->h->batch, pending_run, p) != 0) {
        pending_run(p, HERALD_ENOMEM);
    }
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

static void config_field_json(void *ud, const char *var, enum ps_field_kind kind, const char *value)
{
    yajl_gen g = ud;
    json_str(g, strncmp(var, "pubsub#", 7) == 0 ? var + 7 : var);
    if (kind == PS_FIELD_BOOL)
        yajl_gen_bool(g, strcmp(value, "1") == 0);
    else if (kind == PS_FIELD_UINT && strcmp(value, "max") != 0)
        yajl_gen_number(g, value, strlen(value));
    else
        json_str(g, value);
}

static void node_json(yajl_gen g, const struct ps_node *n, const char *who)
{
    yajl_gen_map_open(g);
    json_key_str(g, "node", n->name);
    json_key_str(g, "type", n->cfg.node_type == PS_COLLECTION ? "collection" : "leaf");
    json_key_time(g, "created", n->created);
    json_key_uint(g, "items", n->item_count);
    json_key_str(g, "affiliation", aff_name(pubsub_affiliation(n, who)));
    json_str(g, "config");
    yajl_gen_map_open(g);
    ps_config_each(&n->cfg, config_field_json, g);
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
}

/* The JSON text of an XEP-0335 container as stored (this serializer's
 * output: "<json xmlns='urn:xmpp:json:0'>escaped text</json>"), unescaped
 * into out; -1 when the payload is anything else. */
static int json_container_text(const char *p, size_t n, struct buf *out)
{
    static const char open[] = "<json xmlns='" NS_JSON "'>", close[] = "</json>";
    size_t ol = sizeof(open) - 1, cl = sizeof(close) - 1;
    if (n < ol + cl || memcmp(p, open, ol) != 0 || memcmp(p + n - cl, close, cl) != 0)
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

void rest_item_json(yajl_gen g, const struct store_item *it)
{
    yajl_gen_map_open(g);
    json_str(g, "id");
    json_strn(g, it->id, it->id_len);
    json_key_uint(g, "seq", it->seq);
    json_key_time(g, "published", it->published);
    json_str(g, "publisher");
    json_strn(g, it->publisher, it->publisher_len);
    if (it->payload_len) {
        struct buf text;
        buf_init(&text, 0);
        if (json_container_text(it->payload, it->payload_len, &text) == 0 &&
            json_valid(text.data, text.len)) {
            json_str(g, "json");
            json_copy(g, text.data, text.len);
        } else {
            json_str(g, "xml");
            json_strn(g, it->payload, it->payload_len);
        }
        buf_free(&text);
    }
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
    if (body_kind(r->req) != BODY_JSON) {
        http_problem(r->hc, 415, NULL, NULL, "the body must be application/json");
        return NULL;
    }
    char err[128];
    yajl_val v = NULL;
    if (json_valid(r->req->body, r->req->body_len))
        v = yajl_tree_parse(r->req->body, err, sizeof(err));
    if (v == NULL || !YAJL_IS_OBJECT(v)) {
        yajl_tree_free(v);
        http_problem(r->hc, 400, "bad-request", NULL, "the body is not a JSON object");
        return NULL;
    }
    return v;
}

struct known_ctx {
    const char *var;
    bool found;
};

static void is_known(void *ud, const char *var, enum ps_field_kind kind, const char *value)
{
    struct known_ctx *k = ud;
    (void)kind, (void)value;
    k->found = k->found || strcmp(k->var, var) == 0;
}

/* {"max_items": 10, ...} -> a submitted pubsub#node_config form. NULL after
 * answering 400. */
static struct xnode *config_form(struct rctx *r, yajl_val cfg)
{
    if (!YAJL_IS_OBJECT(cfg)) {
        http_problem(r->hc, 400, "bad-request", NULL, "\"config\" must be a JSON object");
        return NULL;
    }
    struct xnode *x = xml_elem_new(r->a, "jabber:x:data", "x");
    struct xnode *ft = x ? xml_add_elem(r->a, x, "jabber:x:data", "field") : NULL;
    struct xnode *ftv = ft ? xml_add_elem(r->a, ft, "jabber:x:data", "value") : NULL;
    static const char form_type[] = "http://jabber.org/protocol/pubsub#node_config";
    if (ftv == NULL || xml_set_attr(r->a, x, "type", "submit") ||
        xml_set_attr(r->a, ft, "var", "FORM_TYPE") ||
        xml_add_text(r->a, ftv, form_type, sizeof(form_type) - 1))
        goto nomem;
    for (size_t i = 0; i < cfg->u.object.len; i++) {
        const char *key = cfg->u.object.keys[i];
        yajl_val v = cfg->u.object.values[i];
        char var[128];
        snprintf(var, sizeof(var), "%s%s", strncmp(key, "pubsub#", 7) == 0 ? "" : "pubsub#", key);
        struct known_ctx k = {var, false};
        ps_config_each(&(struct ps_config){0}, is_known, &k);
        if (!k.found) {
            char msg[200];
            snprintf(msg, sizeof(msg), "unknown configuration field \"%.100s\"", key);
            http_problem(r->hc, 400, "bad-request", NULL, msg);
            return NULL;
        }
        struct xnode *f = xml_add_elem(r->a, x, "jabber:x:data", "field");
        if (f == NULL || xml_set_attr(r->a, f, "var", var))
            goto nomem;
        size_t nvals = YAJL_IS_ARRAY(v) ? v->u.array.len : 1;
        for (size_t j = 0; j < nvals; j++) {
            yajl_val e = YAJL_IS_ARRAY(v) ? v->u.array.values[j] : v;
            const char *text = YAJL_IS_STRING(e)   ? e->u.string
                               : YAJL_IS_NUMBER(e) ? e->u.number.r
                               : YAJL_IS_TRUE(e)   ? "1"
                               : YAJL_IS_FALSE(e)  ? "0"
                                                   : NULL;
            if (text == NULL) {
                char msg[200];
                snprintf(msg, sizeof(msg), "\"%.100s\" needs a string, number or boolean", key);
                http_problem(r->hc, 400, "bad-request", NULL, msg);
                return NULL;
            }
            struct xnode *ve = xml_add_elem(r->a, f, "jabber:x:data", "value");
            if (ve == NULL || xml_add_text(r->a, ve, text, strlen(text)))
                goto nomem;
        }
    }
    return x;
nomem:
    http_problem(r->hc, 500, "internal-server-error", NULL, "out of memory");
    return NULL;
}

/* The request body as an item payload, or NULL after answering. */
static const struct xnode *item_payload(struct rctx *r)
{
    struct buf text;
    buf_init(&text, HTTP_MAX_BODY * 2);
    struct xnode *payload = NULL;
    switch (body_kind(r->req)) {
    case BODY_JSON:
        if (json_canonical(r->req->body, r->req->body_len, &text) != 0) {
            http_problem(r->hc, 400, "bad-request", NULL, "the body is not valid JSON");
            break;
        }
        payload = xml_elem_new(r->a, NS_JSON, "json");
        if (payload == NULL || xml_add_text(r->a, payload, text.data, text.len)) {
            payload = NULL;
            http_problem(r->hc, 500, "internal-server-error", NULL, "out of memory");
        }
        break;
    case BODY_XML: {
        struct xmlp_limits lim = {HTTP_MAX_BODY, r->h->cfg->max_depth};
        enum xmlp_error e = xmlp_parse_element(r->req->body, r->req->body_len, &lim, &text);
        if (e != XMLP_OK) {
            char msg[160];
            snprintf(msg, sizeof(msg), "the body must be one well-formed, namespaced XML element (%s)",
                     e == XMLP_BAD_FORMAT ? "not exactly one namespaced element" : xmlp_strerror(e));
            http_problem(r->hc, 400, "bad-request", NULL, msg);
            break;
        }
        /* Already canonical: carried verbatim. */
        struct xnode *holder = xml_elem_new(r->a, "", "x");
        if (holder == NULL || xml_add_raw(r->a, holder, text.data, text.len))
            http_problem(r->hc, 500, "internal-server-error", NULL, "out of memory");
        else
            payload = holder->last_child;
        break;
    }
    default:
        http_problem(r->hc, 415, NULL, NULL,
                     "an item body must be application/json or application/xml");
        break;
    }
    buf_free(&text);
    return payload;
}

/* ---- handlers ---- */

/* The node named in the path, readable by the token's JID; NULL after
 * answering 404/403. */
static struct ps_node *readable_node(struct rctx *r)
{
    struct ps_node *n = pubsub_node(r->ps, r->node);
    struct ps_err e = {0};
    if (n == NULL) {
        http_problem(r->hc, 404, "item-not-found", NULL, "no such node");
        return NULL;
    }
    if (pubsub_can_read(r->ps, n, r->tok.jid, &e) != 0) {
        ps_problem(r, &e, "the node's access model does not allow this JID to read it");
        return NULL;
    }
    return n;
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

static void post_nodes(struct rctx *r)
{
    yajl_val body = json_body(r, false);
    if (body == NULL && r->req->body_len)
        return;
    const char *path_name[] = {"node", NULL}, *path_cfg[] = {"config", NULL};
    yajl_val name = body ? yajl_tree_get(body, path_name, yajl_t_any) : NULL;
    yajl_val cfg = body ? yajl_tree_get(body, path_cfg, yajl_t_any) : NULL;
    struct xnode *form = NULL;
    if (name && !YAJL_IS_STRING(name)) {
        http_problem(r->hc, 400, "bad-request", NULL, "\"node\" must be a string");
        goto done;
    }
    if (cfg && (form = config_form(r, cfg)) == NULL)
        goto done;
    char *created = NULL;
    struct ps_err e = {0};
    if (pubsub_create(r->ps, r->tok.jid, name ? name->u.string : NULL, form, r->a, &created, &e) != 0) {
        ps_problem(r, &e, "the node could not be created");
        goto done;
    }
    struct ps_node *n = pubsub_node(r->ps, created);
    yajl_gen g = json_gen_new();
    struct buf loc;
    buf_init(&loc, 0);
    if (n && g) {
        node_json(g, n, r->tok.jid);
        node_location(&loc, n->name, NULL);
        respond_after_commit(r, 201, g, buf_ok(&loc) ? loc.data : NULL);
    } else {
        http_problem(r->hc, 500, "internal-server-error", NULL, "out of memory");
    }
    buf_free(&loc);
    if (g)
        yajl_gen_free(g);
done:
    yajl_tree_free(body);
}

static void get_nodes(struct rctx *r)
{
    yajl_gen g = json_gen_new();
    if (g == NULL) {
        http_problem(r->hc, 500, "internal-server-error", NULL, "out of memory");
        return;
    }
    yajl_gen_map_open(g);
    json_str(g, "nodes");
    yajl_gen_array_open(g);
    struct ps_node *n, *tmp;
    HASH_ITER(hh, r->ps->nodes, n, tmp) {
        struct ps_err e;
        if (pubsub_can_read(r->ps, n, r->tok.jid, &e) != 0)
            continue;
        yajl_gen_map_open(g);
        json_key_str(g, "node", n->name);
        json_key_str(g, "type", n->cfg.node_type == PS_COLLECTION ? "collection" : "leaf");
        json_key_uint(g, "items", n->item_count);
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    respond_json(r, 200, g, NULL);
    yajl_gen_free(g);
}

static void get_node(struct rctx *r)
{
    struct ps_node *n = readable_node(r);
    if (n == NULL)
        return;
    yajl_gen g = json_gen_new();
    if (g == NULL) {
        http_problem(r->hc, 500, "internal-server-error", NULL, "out of memory");
        return;
    }
    node_json(g, n, r->tok.jid);
    respond_json(r, 200, g, NULL);
    yajl_gen_free(g);
}

static void patch_node(struct rctx *r)
{
    yajl_val body = json_body(r, true);
    if (body == NULL)
        return;
    const char *path_cfg[] = {"config", NULL};
    yajl_val cfg = yajl_tree_get(body, path_cfg, yajl_t_any);
    struct xnode *form = NULL;
    struct ps_err e = {0};
    if (cfg == NULL)
        http_problem(r->hc, 400, "bad-request", NULL, "the body needs a \"config\" object");
    else if ((form = config_form(r, cfg)) == NULL)
        ;
    else if (pubsub_configure(r->ps, r->tok.jid, r->node, form, r->a, &e) != 0)
        ps_problem(r, &e, "the node could not be reconfigured");
    else {
        struct ps_node *n = pubsub_node(r->ps, r->node);
        yajl_gen g = json_gen_new();
        if (n && g) {
            node_json(g, n, r->tok.jid);
            respond_after_commit(r, 200, g, NULL);
        } else {
            http_problem(r->hc, 500, "internal-server-error", NULL, "out of memory");
        }
        if (g)
            yajl_gen_free(g);
    }
    yajl_tree_free(body);
}

static void delete_node(struct rctx *r)
{
    struct ps_err e = {0};
    if (pubsub_delete(r->ps, r->tok.jid, r->node, NULL, &e) != 0)
        ps_problem(r, &e, "the node could not be deleted");
    else
        respond_after_commit(r, 204, NULL, NULL);
}

static void purge_node(struct rctx *r)
{
    struct ps_err e = {0};
    if (pubsub_purge(r->ps, r->tok.jid, r->node, &e) != 0)
        ps_problem(r, &e, "the node could not be purged");
    else
        respond_after_commit(r, 204, NULL, NULL);
}

static void publish(struct rctx *r, const char *item_id)
{
    const struct xnode *payload = item_payload(r);
    if (payload == NULL)
        return;
    /* PUT: 200 when it replaces an item, 201 when it is new. The check sees
     * this turn's uncommitted writes too; the answer waits for the commit. */
    bool existed = false;
    struct ps_node *n = pubsub_node(r->ps, r->node);
    if (n == NULL && !(r->ps->auto_create && (r->tok.scopes & SCOPE_MANAGE))) {
        /* Creating a node by publishing ([pubsub] auto_create) needs 'manage'. */
        http_problem(r->hc, 404, "item-not-found", NULL, "no such node");
        return;
    }
    if (item_id && n) {
        int rc;
        struct store_txn *t = pubsub_txn(r->ps, &rc);
        struct store_item it;
        existed = t && store_item_get(t, n->id, item_id, strlen(item_id), &it) == 0;
        if (t)
            pubsub_txn_done(r->ps, t);
    }
    struct ps_publish_req preq = {r->node, item_id, true, payload, NULL};
    char id[ITEM_ID_MAX + 8];
    struct ps_err e = {0};
    if (pubsub_publish(r->ps, r->tok.jid, &preq, r->a, id, sizeof(id), &e) != 0) {
        ps_problem(r, &e, "the item could not be published");
        return;
    }
    yajl_gen g = json_gen_new();
    struct buf loc;
    buf_init(&loc, 0);
    node_location(&loc, r->node, id);
    if (g == NULL || !buf_ok(&loc)) {
        http_problem(r->hc, 500, "internal-server-error", NULL, "out of memory");
    } else {
        yajl_gen_map_open(g);
        json_key_str(g, "node", r->node);
        json_key_str(g, "id", id);
        yajl_gen_map_close(g);
        respond_after_commit(r, existed ? 200 : 201, g, loc.data);
    }
    buf_free(&loc);
    if (g)
        yajl_gen_free(g);
}

static void post_item(struct rctx *r) { publish(r, NULL); }
static void put_item(struct rctx *r) { publish(r, r->id); }

/* Items are read from a committed snapshot, not the open batch. */
static struct store_txn *snapshot(struct rctx *r)
{
    struct store_txn *t = NULL;
    if (store_txn_begin(r->h->store, false, &t) != 0) {
        http_problem(r->hc, 503, "internal-server-error", NULL, "storage is not readable now");
        return NULL;
    }
    return t;
}

struct page {
    yajl_gen g;
    unsigned n, max;
    uint64_t last_seq;
    bool more;
};

static int page_item(void *ud, const struct store_item *it)
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
    struct ps_node *n = readable_node(r);
    if (n == NULL)
        return;
    char v[32];
    uint64_t max = DEFAULT_PAGE, before = UINT64_MAX;
    const char *s;
    if ((s = query_param(r->req, "max", v, sizeof(v))) && (parse_u64(s, &max) || max < 1 || max > MAX_PAGE)) {
        http_problem(r->hc, 400, "bad-request", NULL, "max must be a number from 1 to 500");
        return;
    }
    if ((s = query_param(r->req, "before", v, sizeof(v))) && parse_u64(s, &before)) {
        http_problem(r->hc, 400, "bad-request", NULL, "before must be a cursor from \"next\"");
        return;
    }
    struct store_txn *t = snapshot(r);
    yajl_gen g = t ? json_gen_new() : NULL;
    if (g == NULL) {
        if (t) {
            store_txn_abort(t);
            http_problem(r->hc, 500, "internal-server-error", NULL, "out of memory");
        }
        return;
    }
    yajl_gen_map_open(g);
    json_str(g, "items");
    yajl_gen_array_open(g);
    struct page p = {g, 0, (unsigned)max, 0, false};
    int rc = store_items_newest(t, n->id, before, (unsigned)max + 1, page_item, &p);
    store_txn_abort(t);
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
    if (rc != 0)
        http_problem(r->hc, 500, "internal-server-error", NULL, "the items could not be read");
    else
        respond_json(r, 200, g, NULL);
    yajl_gen_free(g);
}

static void get_item(struct rctx *r)
{
    struct ps_node *n = readable_node(r);
    if (n == NULL)
        return;
    struct store_txn *t = snapshot(r);
    if (t == NULL)
        return;
    struct store_item it;
    int rc = store_item_get(t, n->id, r->id, strlen(r->id), &it);
    yajl_gen g = rc == 0 ? json_gen_new() : NULL;
    if (g)
        rest_item_json(g, &it);
    store_txn_abort(t);
    if (rc == HERALD_ENOTFOUND)
        http_problem(r->hc, 404, "item-not-found", NULL, "no such item");
    else if (g == NULL)
        http_problem(r->hc, 500, "internal-server-error", NULL, "the item could not be read");
    else
        respond_json(r, 200, g, NULL);
    if (g)
        yajl_gen_free(g);
}

static void delete_item(struct rctx *r)
{
    struct ps_err e = {0};
    if (pubsub_retract(r->ps, r->tok.jid, r->node, r->id, true, &e) != 0)
        ps_problem(r, &e, "the item could not be retracted");
    else
        respond_after_commit(r, 204, NULL, NULL);
}

static void get_subscriptions(struct rctx *r)
{
    struct ps_node *n = pubsub_node(r->ps, r->node);
    if (n == NULL) {
        http_problem(r->hc, 404, "item-not-found", NULL, "no such node");
        return;
    }
    if (pubsub_affiliation(n, r->tok.jid) != AFF_OWNER) { /* XEP-0060 §8.8.1.3 */
        http_problem(r->hc, 403, "forbidden", NULL, "only an owner of the node may list its subscriptions");
        return;
    }
    yajl_gen g = json_gen_new();
    if (g == NULL) {
        http_problem(r->hc, 500, "internal-server-error", NULL, "out of memory");
        return;
    }
    yajl_gen_map_open(g);
    json_str(g, "subscriptions");
    yajl_gen_array_open(g);
    for (const struct ps_sub *s = n->subs; s; s = s->next) {
        yajl_gen_map_open(g);
        json_key_str(g, "jid", s->jid);
        json_key_str(g, "subid", s->subid);
        json_key_str(g, "state", s->state == SUB_PENDING ? "pending" : "subscribed");
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    respond_json(r, 200, g, NULL);
    yajl_gen_free(g);
}

static void get_events(struct rctx *r)
{
    struct ps_node *n = readable_node(r);
    if (n == NULL)
        return;
    /* Resume after the last event the client saw (the HTML EventSource
     * sends Last-Event-ID itself when it reconnects). */
    char v[32];
    const char *last = r->req->last_event_id ? r->req->last_event_id
                                             : query_param(r->req, "last_event_id", v, sizeof(v));
    uint64_t last_seq = 0;
    if (last && (parse_u64(last, &last_seq) != 0 || last_seq == UINT64_MAX)) {
        http_problem(r->hc, 400, "bad-request", NULL, "Last-Event-ID must be an event id (a number)");
        return;
    }
    if (r->req->method == HTTP_HEAD) { /* RFC 9110 §9.3.2: the headers only */
        http_respond(r->hc, 200, "text/event-stream", NULL, "", 0);
        return;
    }
    sse_start(r->hc, r->ps, n, &r->tok, last ? last_seq + 1 : n->next_seq);
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
    {HTTP_GET, "/v1/nodes/{node}/subscriptions", get_subscriptions, SCOPE_READ},
    {HTTP_GET, "/v1/nodes/{node}/events", get_events, SCOPE_READ},
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

/* 0 with r->tok filled, or -1 after answering 401/403/503. */
static int authenticate(struct rctx *r, uint8_t scope)
{
    const char *auth = r->req->authorization;
    if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0) {
        http_problem(r->hc, 401, "not-authorized", NULL, "a bearer token is required (Authorization: Bearer ...)");
        return -1;
    }
    const char *tok = auth + 7;
    while (*tok == ' ')
        tok++;
    size_t len = strlen(tok);
    while (len && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
        len--;
    int rc = token_check(r->h->store, tok, len, (uint64_t)time(NULL), &r->tok);
    if (rc == 0 && store_user_exists(r->h->store, r->tok.jid) != 1)
        rc = HERALD_EFORBIDDEN; /* the account was deleted */
    if (rc == HERALD_EFORBIDDEN) {
        http_problem(r->hc, 401, "not-authorized", NULL, "the token is unknown, revoked or expired");
        return -1;
    }
    if (rc != 0) {
        http_problem(r->hc, 503, "internal-server-error", NULL, "tokens cannot be checked now");
        return -1;
    }
    if (!(r->tok.scopes & scope)) {
        char need[32], msg[96];
        token_scopes_format(scope, need, sizeof(need));
        snprintf(msg, sizeof(msg), "the token lacks the '%s' scope", need);
        http_problem(r->hc, 403, "forbidden", NULL, msg);
        return -1;
    }
    return 0;
}

bool rest_dispatch(struct http_conn *hc, const struct http_req *req)
{
    if (req->path_len < 3 || memcmp(req->path, "/v1", 3) != 0 ||
        (req->path_len > 3 && req->path[3] != '/'))
        return false;
    struct arena a;
    arena_init(&a);
    struct rctx *r = calloc(1, sizeof(*r)); /* holds a 3 KiB JID: not on the stack */
    if (r == NULL) {
        http_problem(hc, 500, NULL, NULL, "out of memory");
        return true;
    }
    r->hc = hc;
    r->h = http_herald(hc);
    r->ps = r->h->pubsub;
    r->req = req;
    r->a = &a;
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
            http_problem(hc, 400, "bad-request", NULL,
                         "a path segment is not valid percent-encoded UTF-8 or is too long");
        } else {
            http_problem(hc, 404, NULL, NULL, "no such resource");
        }
    } else if (r->ps == NULL) {
        http_problem(hc, 503, "service-unavailable", NULL, "the pubsub service is not running");
    } else if (found->scope == 0 || authenticate(r, found->scope) == 0) {
        found->fn(r);
    }
    free(r);
    arena_free(&a);
    return true;
}
