/* entry.c - encoding and decoding of cluster log entries (entry.h). */
#include "entry.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "errors.h"

static const char MAGIC[3] = {'H', 'R', 'D'};

static void put_u64(struct buf *b, uint64_t v)
{
    uint8_t p[8];
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
    buf_append(b, p, 8);
}

static void put_u32(struct buf *b, uint32_t v)
{
    uint8_t p[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    buf_append(b, p, 4);
}

static void put_u8(struct buf *b, uint8_t v) { buf_append(b, &v, 1); }

/* A byte string; NULL is written as length 0xffffffff (absent). */
static void put_bytes(struct buf *b, const void *p, size_t n)
{
    if (p == NULL) {
        put_u32(b, UINT32_MAX);
        return;
    }
    if (n >= UINT32_MAX) {
        b->failed = true;
        return;
    }
    put_u32(b, (uint32_t)n);
    buf_append(b, p, n);
}

static void put_str(struct buf *b, const char *s) { put_bytes(b, s, s ? strlen(s) : 0); }

static void put_scram(struct buf *b, const struct store_scram *sc)
{
    put_u32(b, sc->iterations);
    buf_append(b, sc->salt, sizeof(sc->salt));
    buf_append(b, sc->stored_key, sizeof(sc->stored_key));
    buf_append(b, sc->server_key, sizeof(sc->server_key));
}

int cl_entry_encode(const struct cl_entry *e, uint8_t **out, size_t *len)
{
    struct buf b;
    buf_init(&b, 0);
    buf_append(&b, MAGIC, sizeof(MAGIC));
    put_u8(&b, CL_ENTRY_VERSION);
    put_u8(&b, (uint8_t)e->kind);
    put_str(&b, e->origin);
    put_u64(&b, e->boot);
    put_u64(&b, e->req);
    put_u64(&b, e->time_ms);
    put_u64(&b, e->seed);
    switch (e->kind) {
    case CL_IQ:
        put_str(&b, e->jid);
        put_str(&b, e->contact);
        put_bytes(&b, e->data, e->data_len);
        break;
    case CL_REST:
        put_str(&b, e->jid);
        put_u8(&b, e->scopes);
        put_u8(&b, e->method);
        put_str(&b, e->path);
        put_str(&b, e->query);
        put_str(&b, e->content_type);
        put_bytes(&b, e->data ? e->data : "", e->data_len);
        break;
    case CL_USER_PUT:
        put_str(&b, e->jid);
        put_u8(&b, e->create);
        put_u64(&b, e->user.created);
        put_u64(&b, e->user.generation);
        put_scram(&b, &e->user.sha1);
        put_scram(&b, &e->user.sha256);
        break;
    case CL_USER_DEL:
        put_str(&b, e->jid);
        break;
    case CL_TOKEN_PUT:
        buf_append(&b, e->token.id, sizeof(e->token.id));
        buf_append(&b, e->token.hash, sizeof(e->token.hash));
        put_u8(&b, e->token.scopes);
        put_u64(&b, e->token.created);
        put_u64(&b, e->token.expires);
        put_u64(&b, e->token.generation);
        put_str(&b, e->token.jid);
        break;
    case CL_TOKEN_DEL:
        buf_append(&b, e->token.id, sizeof(e->token.id));
        break;
    case CL_CURSOR:
        put_str(&b, e->jid);
        put_u64(&b, e->node_id);
        put_u64(&b, e->cursor);
        break;
    case CL_ROSTER:
        put_str(&b, e->jid);
        put_bytes(&b, e->data, e->data_len);
        break;
    case CL_SUBSCRIPTION:
        put_str(&b, e->jid);
        put_str(&b, e->contact);
        put_str(&b, e->ptype);
        put_bytes(&b, e->data, e->data_len);
        break;
    default:
        buf_free(&b);
        return HERALD_EINVAL;
    }
    if (!buf_ok(&b)) {
        buf_free(&b);
        return HERALD_ENOMEM;
    }
    *out = (uint8_t *)buf_take(&b, len);
    return *out ? 0 : HERALD_ENOMEM;
}

/* ---- decoding: a cursor that fails once and stays failed ---- */

struct rd {
    const uint8_t *p, *end;
    char *store, *sp; /* strings are copied here, NUL-terminated */
    bool bad;
};

static const uint8_t *take(struct rd *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *q = r->p;
    r->p += n;
    return q;
}

static uint64_t get_u64(struct rd *r)
{
    const uint8_t *q = take(r, 8);
    uint64_t v = 0;
    for (int i = 0; q && i < 8; i++)
        v = v << 8 | q[i];
    return v;
}

static uint32_t get_u32(struct rd *r)
{
    const uint8_t *q = take(r, 4);
    return q ? (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3] : 0;
}

static uint8_t get_u8(struct rd *r)
{
    const uint8_t *q = take(r, 1);
    return q ? q[0] : 0;
}

static void get_fixed(struct rd *r, void *out, size_t n)
{
    const uint8_t *q = take(r, n);
    if (q)
        memcpy(out, q, n);
}

/* A byte string copied into the store with a NUL after it (NULL: absent);
 * strings must not hold NUL (they are JIDs, paths, names). */
static const char *get_bytes(struct rd *r, size_t *len, bool text)
{
    uint32_t n = get_u32(r);
    if (r->bad || n == UINT32_MAX) {
        *len = 0;
        return NULL;
    }
    const uint8_t *q = take(r, n);
    if (q == NULL || (text && memchr(q, 0, n) != NULL)) {
        r->bad = true;
        return NULL;
    }
    char *s = r->sp;
    memcpy(s, q, n);
    s[n] = '\0';
    r->sp += n + 1;
    *len = n;
    return s;
}

static const char *get_str(struct rd *r)
{
    size_t n;
    return get_bytes(r, &n, true);
}

static void get_scram(struct rd *r, struct store_scram *sc)
{
    sc->iterations = get_u32(r);
    get_fixed(r, sc->salt, sizeof(sc->salt));
    get_fixed(r, sc->stored_key, sizeof(sc->stored_key));
    get_fixed(r, sc->server_key, sizeof(sc->server_key));
}

int cl_entry_decode(const void *data, size_t len, struct cl_entry *e, char **store)
{
    memset(e, 0, sizeof(*e));
    *store = NULL;
    if (len < sizeof(MAGIC) + 2 || memcmp(data, MAGIC, sizeof(MAGIC)) != 0)
        return HERALD_EINVAL;
    if (((const uint8_t *)data)[3] != CL_ENTRY_VERSION)
        return HERALD_ESCHEMA;
    /* Every string is shorter than the entry, plus one NUL per field. */
    char *st = malloc(len + 16);
    if (st == NULL)
        return HERALD_ENOMEM;
    struct rd r = {(const uint8_t *)data + 4, (const uint8_t *)data + len, st, st, false};
    size_t n;
    e->kind = (enum cl_kind)get_u8(&r);
    e->origin = get_str(&r);
    e->boot = get_u64(&r);
    e->req = get_u64(&r);
    e->time_ms = get_u64(&r);
    e->seed = get_u64(&r);
    switch (e->kind) {
    case CL_IQ:
        e->jid = get_str(&r);
        e->contact = get_str(&r);
        e->data = get_bytes(&r, &e->data_len, false);
        r.bad = r.bad || e->jid == NULL || e->data == NULL;
        break;
    case CL_REST:
        e->jid = get_str(&r);
        e->scopes = get_u8(&r);
        e->method = get_u8(&r);
        e->path = get_str(&r);
        e->query = get_str(&r);
        e->content_type = get_str(&r);
        e->data = get_bytes(&r, &e->data_len, false);
        r.bad = r.bad || e->jid == NULL || e->path == NULL || e->data == NULL;
        break;
    case CL_USER_PUT:
        e->jid = get_str(&r);
        switch (get_u8(&r)) { /* one encoding per entry: 0 or 1 */
        case 0: e->create = false; break;
        case 1: e->create = true; break;
        default: r.bad = true;
        }
        e->user.created = get_u64(&r);
        e->user.generation = get_u64(&r);
        get_scram(&r, &e->user.sha1);
        get_scram(&r, &e->user.sha256);
        r.bad = r.bad || e->jid == NULL;
        break;
    case CL_USER_DEL:
        e->jid = get_str(&r);
        r.bad = r.bad || e->jid == NULL;
        break;
    case CL_TOKEN_PUT: {
        get_fixed(&r, e->token.id, sizeof(e->token.id));
        get_fixed(&r, e->token.hash, sizeof(e->token.hash));
        e->token.scopes = get_u8(&r);
        e->token.created = get_u64(&r);
        e->token.expires = get_u64(&r);
        e->token.generation = get_u64(&r);
        const char *jid = get_bytes(&r, &n, true);
        if (jid == NULL || n == 0 || n >= sizeof(e->token.jid))
            r.bad = true;
        else
            memcpy(e->token.jid, jid, n + 1);
        break;
    }
    case CL_TOKEN_DEL:
        get_fixed(&r, e->token.id, sizeof(e->token.id));
        break;
    case CL_CURSOR:
        e->jid = get_str(&r);
        e->node_id = get_u64(&r);
        e->cursor = get_u64(&r);
        r.bad = r.bad || e->jid == NULL;
        break;
    case CL_ROSTER:
        e->jid = get_str(&r);
        e->data = get_bytes(&r, &e->data_len, false);
        r.bad = r.bad || e->jid == NULL || e->data == NULL;
        break;
    case CL_SUBSCRIPTION:
        e->jid = get_str(&r);
        e->contact = get_str(&r);
        e->ptype = get_str(&r);
        e->data = get_bytes(&r, &e->data_len, false);
        r.bad = r.bad || e->jid == NULL || e->contact == NULL || e->ptype == NULL;
        break;
    default:
        r.bad = true;
    }
    if (r.bad || e->origin == NULL || r.p != r.end) {
        free(st);
        memset(e, 0, sizeof(*e));
        return HERALD_EINVAL;
    }
    *store = st;
    return 0;
}
