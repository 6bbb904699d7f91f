/* test_pubsub_config.c - node configuration and subscription options
 * (pubsub_config.c) and their XEP-0004 forms (pubsub_form.c): defaults, the
 * number of items kept, the stored record, applying (var, values) fields,
 * publish-options preconditions, the field walk, subscription options, and
 * the node_config, meta-data and subscribe_options forms.
 *
 * Fields are given as ps_field arrays, as the service receives them; forms
 * are built with the tree API (xml.h) exactly as the parser would deliver
 * them and turned into fields by ps_form_fields; produced forms are checked
 * by walking the tree and by serializing them. The stored record is checked
 * against bytes written by the first layout, and decoded at every
 * truncation length and from random bytes, each copy in a buffer of
 * exactly its length so that AddressSanitizer sees any read past the end. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "buf.h"
#include "errors.h"
#include "pubsub.h"
#include "pubsub_config.h"
#include "pubsub_form.h"
#include "xml.h"
#include "test.h"

#define NS_DATA "jabber:x:data"
#define NS_NODE_CONFIG "http://jabber.org/protocol/pubsub#node_config"
#define NS_META_DATA "http://jabber.org/protocol/pubsub#meta-data"
#define NS_PUBLISH_OPTIONS "http://jabber.org/protocol/pubsub#publish-options"
#define NS_SUB_OPTIONS "http://jabber.org/protocol/pubsub#subscribe_options"

static const struct ps_caps caps = {100, 65536};

/* ---- helpers --------------------------------------------------------------- */

/* A data form of the given type. kv holds var, value pairs and ends with
 * NULL; a NULL value gives a field without <value/>. form_type NULL: no
 * FORM_TYPE field. */
static struct xnode *make_form(struct arena *a, const char *type, const char *form_type,
                               const char *const *kv)
{
    struct xnode *x = xml_elem_new(a, NS_DATA, "x");
    CHECK(x != NULL);
    if (x == NULL)
        return NULL;
    if (type)
        CHECK_EQ_INT(xml_set_attr(a, x, "type", type), 0);
    if (form_type) {
        struct xnode *f = xml_add_elem(a, x, NS_DATA, "field");
        CHECK_EQ_INT(xml_set_attr(a, f, "var", "FORM_TYPE"), 0);
        CHECK_EQ_INT(xml_set_attr(a, f, "type", "hidden"), 0);
        struct xnode *v = xml_add_elem(a, f, NS_DATA, "value");
        CHECK_EQ_INT(xml_add_text(a, v, form_type, strlen(form_type)), 0);
    }
    for (size_t i = 0; kv && kv[i]; i += 2) {
        struct xnode *f = xml_add_elem(a, x, NS_DATA, "field");
        CHECK(f != NULL);
        CHECK_EQ_INT(xml_set_attr(a, f, "var", kv[i]), 0);
        if (kv[i + 1]) {
            struct xnode *v = xml_add_elem(a, f, NS_DATA, "value");
            CHECK(v != NULL);
            CHECK_EQ_INT(xml_add_text(a, v, kv[i + 1], strlen(kv[i + 1])), 0);
        }
    }
    return x;
}

static struct xnode *submit(struct arena *a, const char *const *kv)
{
    return make_form(a, "submit", NS_NODE_CONFIG, kv);
}

/* The field element with this var in a produced form, or NULL. */
static const struct xnode *find_field(const struct xnode *x, const char *var)
{
    for (const struct xnode *f = xml_first_elem(x); f; f = xml_next_elem(f))
        if (strcmp(f->name, "field") == 0 && strcmp(f->ns, NS_DATA) == 0) {
            const char *v = xml_attr(f, "var");
            if (v && strcmp(v, var) == 0)
                return f;
        }
    return NULL;
}

/* Text of the first <value/> of field var, "(no field)" or "(no value)". */
static const char *field_val(struct arena *a, const struct xnode *x, const char *var)
{
    const struct xnode *f = find_field(x, var);
    if (f == NULL)
        return "(no field)";
    const struct xnode *v = xml_child(f, NS_DATA, "value");
    return v ? xml_text(a, v) : "(no value)";
}

/* The option values of a list field joined with ',' into out. */
static const char *field_options(struct arena *a, const struct xnode *x, const char *var,
                                 char *out, size_t cap)
{
    out[0] = '\0';
    const struct xnode *f = find_field(x, var);
    if (f == NULL)
        return "(no field)";
    size_t len = 0;
    for (const struct xnode *o = xml_first_elem(f); o; o = xml_next_elem(o)) {
        if (strcmp(o->name, "option") != 0)
            continue;
        const struct xnode *v = xml_child(o, NS_DATA, "value");
        len += (size_t)snprintf(out + len, len < cap ? cap - len : 0, "%s%s", len ? "," : "",
                                v ? xml_text(a, v) : "?");
    }
    return out;
}

static bool config_equal(const struct ps_config *a, const struct ps_config *b)
{
    return a->node_type == b->node_type && a->access_model == b->access_model &&
           a->publish_model == b->publish_model && a->send_last == b->send_last &&
           a->notification_type == b->notification_type &&
           a->deliver_notifications == b->deliver_notifications &&
           a->deliver_payloads == b->deliver_payloads && a->notify_config == b->notify_config &&
           a->notify_delete == b->notify_delete && a->notify_retract == b->notify_retract &&
           a->persist_items == b->persist_items &&
           a->presence_based_delivery == b->presence_based_delivery &&
           a->subscribe == b->subscribe && a->max_items == b->max_items &&
           a->item_expire == b->item_expire && a->max_payload_size == b->max_payload_size &&
           strcmp(a->title, b->title) == 0 && strcmp(a->payload_type, b->payload_type) == 0 &&
           strcmp(a->collection, b->collection) == 0;
}

/* A configuration with every field away from its default. */
static void unusual_config(struct ps_config *c)
{
    ps_config_defaults(c, &caps);
    c->node_type = PS_COLLECTION;
    c->access_model = PS_ACCESS_WHITELIST;
    c->publish_model = PS_PUBLISH_OPEN;
    c->send_last = PS_SEND_ON_SUB_AND_PRESENCE;
    c->notification_type = PS_NOTIF_NORMAL;
    c->deliver_notifications = false;
    c->deliver_payloads = false;
    c->notify_config = true;
    c->notify_delete = false;
    c->notify_retract = false;
    c->persist_items = false;
    c->presence_based_delivery = true;
    c->subscribe = false;
    c->max_items = 0x01020304;
    c->item_expire = 0xA0B0C0D0;
    c->max_payload_size = 0xFFFFFFFE;
    c->max_publish_rate = 0x11223344; /* quotas: every byte of the u32s */
    c->max_subscribers = 0xFFFFFFFE;
    c->max_node_bytes = 0x00010203;
    /* The longest titles that fit, with bytes that need care (two-byte
     * UTF-8, U+00C0-U+00FF: text values must be XML text). */
    for (int i = 0; i < 255; i++) {
        c->title[i] = (char)('A' + i % 26);
        c->payload_type[i] = i == 254 ? 'x' : i % 2 == 0 ? (char)0xC3 : (char)(0x80 + i / 2 % 64);
        c->collection[i] = (char)('a' + i % 26);
    }
    c->title[0] = '<';
    c->title[1] = '&';
    c->title[255] = '\0';
    c->payload_type[255] = '\0';
    c->collection[255] = '\0';
}

static bool lists_in_range(const struct ps_config *c)
{
    return c->node_type <= PS_COLLECTION && c->access_model <= PS_ACCESS_WHITELIST &&
           c->publish_model <= PS_PUBLISH_OPEN && c->send_last <= PS_SEND_ON_SUB_AND_PRESENCE &&
           c->notification_type <= PS_NOTIF_NORMAL;
}

/* Decodes a private copy of exactly len bytes. */
static int decode_copy(struct ps_config *c, const uint8_t *data, size_t len)
{
    if (len > 65536)
        return -1; /* no record is this big; also keeps gcc's size analysis quiet */
    uint8_t *copy = malloc(len ? len : 1);
    if (copy == NULL)
        return -1;
    if (len)
        memcpy(copy, data, len);
    int rc = ps_config_decode(c, copy, len);
    free(copy);
    return rc;
}

/* The byte position in the record of a field: encodes base and a copy
 * changed by one field and returns the first byte that differs. */
static long record_pos(const struct ps_config *base, const struct ps_config *changed)
{
    uint8_t a[1024], b[1024];
    size_t la = ps_config_encode(base, a, sizeof(a)), lb = ps_config_encode(changed, b, sizeof(b));
    for (size_t i = 0; i < la && i < lb; i++)
        if (a[i] != b[i])
            return (long)i;
    return -1;
}

/* ---- defaults and keep ----------------------------------------------------- */

static void test_defaults(void)
{
    struct ps_config c;
    memset(&c, 0xAB, sizeof(c));
    ps_config_defaults(&c, &caps);
    CHECK_EQ_INT(c.node_type, PS_LEAF);
    CHECK_EQ_INT(c.access_model, PS_ACCESS_OPEN);
    CHECK_EQ_INT(c.publish_model, PS_PUBLISH_PUBLISHERS);
    CHECK_EQ_INT(c.send_last, PS_SEND_NEVER);
    CHECK_EQ_INT(c.notification_type, PS_NOTIF_HEADLINE);
    CHECK(c.deliver_notifications);
    CHECK(c.deliver_payloads);
    CHECK(!c.notify_config);
    CHECK(c.notify_delete);
    CHECK(c.notify_retract);
    CHECK(c.persist_items);
    CHECK(!c.presence_based_delivery);
    CHECK(c.subscribe);
    CHECK_EQ_INT(c.max_items, 10);
    CHECK_EQ_INT(c.item_expire, 0);
    CHECK_EQ_INT(c.max_payload_size, 65536);
    CHECK_EQ_STR(c.title, "");
    CHECK_EQ_STR(c.payload_type, "");
    CHECK_EQ_STR(c.collection, "");

    /* A service cap under 10 lowers the default. */
    struct ps_caps small = {3, 1000};
    ps_config_defaults(&c, &small);
    CHECK_EQ_INT(c.max_items, 3);
    CHECK_EQ_INT(c.max_payload_size, 1000);
}

static void test_keep(void)
{
    struct ps_config c;
    ps_config_defaults(&c, &caps);
    CHECK_EQ_INT(ps_config_keep(&c, &caps), 10);
    c.max_items = 42;
    CHECK_EQ_INT(ps_config_keep(&c, &caps), 42);
    c.max_items = PS_MAX_ITEMS_MAX;
    CHECK_EQ_INT(ps_config_keep(&c, &caps), caps.max_items);
    struct ps_caps other = {7, 100};
    CHECK_EQ_INT(ps_config_keep(&c, &other), 7);
    /* Items that do not persist: the last one is kept. */
    c.persist_items = false;
    CHECK_EQ_INT(ps_config_keep(&c, &caps), 1);
    c.max_items = 42;
    CHECK_EQ_INT(ps_config_keep(&c, &caps), 1);
    c.max_items = 0;
    CHECK_EQ_INT(ps_config_keep(&c, &caps), 1);
}

/* ---- stored record --------------------------------------------------------- */

static void test_encode_decode_roundtrip(void)
{
    struct ps_config c, d;
    uint8_t buf[1024];

    ps_config_defaults(&c, &caps);
    size_t n = ps_config_encode(&c, buf, sizeof(buf));
    CHECK(n > 0);
    CHECK_EQ_INT(buf[0], 1); /* version */
    memset(&d, 0xCD, sizeof(d));
    CHECK_EQ_INT(decode_copy(&d, buf, n), 0);
    CHECK(config_equal(&c, &d));

    unusual_config(&c);
    n = ps_config_encode(&c, buf, sizeof(buf));
    CHECK(n > 765); /* the three 255-byte strings are in it */
    memset(&d, 0xCD, sizeof(d));
    CHECK_EQ_INT(decode_copy(&d, buf, n), 0);
    CHECK(config_equal(&c, &d));
    CHECK_EQ_INT(strlen(d.title), 255);
    CHECK_EQ_INT(strlen(d.payload_type), 255);
    CHECK_EQ_INT(strlen(d.collection), 255);
    CHECK_EQ_INT(d.max_items, 0x01020304);
    CHECK_EQ_INT(d.item_expire, 0xA0B0C0D0u);
    CHECK_EQ_INT(d.max_payload_size, 0xFFFFFFFEu);

    /* "max" survives. */
    c.max_items = PS_MAX_ITEMS_MAX;
    n = ps_config_encode(&c, buf, sizeof(buf));
    CHECK_EQ_INT(decode_copy(&d, buf, n), 0);
    CHECK_EQ_INT(d.max_items, PS_MAX_ITEMS_MAX);

    /* Every single field change is seen after a round trip. */
    struct ps_config base;
    ps_config_defaults(&base, &caps);
    for (int i = 0; i < 19; i++) {
        c = base;
        switch (i) {
        case 0: c.node_type = PS_COLLECTION; break;
        case 1: c.access_model = PS_ACCESS_AUTHORIZE; break;
        case 2: c.publish_model = PS_PUBLISH_SUBSCRIBERS; break;
        case 3: c.send_last = PS_SEND_ON_SUB; break;
        case 4: c.notification_type = PS_NOTIF_NORMAL; break;
        case 5: c.deliver_notifications = false; break;
        case 6: c.deliver_payloads = false; break;
        case 7: c.notify_config = true; break;
        case 8: c.notify_delete = false; break;
        case 9: c.notify_retract = false; break;
        case 10: c.persist_items = false; break;
        case 11: c.presence_based_delivery = true; break;
        case 12: c.subscribe = false; break;
        case 13: c.max_items = 77; break;
        case 14: c.item_expire = 3600; break;
        case 15: c.max_payload_size = 12; break;
        case 16: snprintf(c.title, sizeof(c.title), "%s", "T"); break;
        case 17: snprintf(c.payload_type, sizeof(c.payload_type), "%s", "urn:x"); break;
        case 18: snprintf(c.collection, sizeof(c.collection), "%s", "parent"); break;
        }
        CHECK(!config_equal(&c, &base));
        n = ps_config_encode(&c, buf, sizeof(buf));
        CHECK(n > 0);
        CHECK_EQ_INT(decode_copy(&d, buf, n), 0);
        if (!config_equal(&c, &d))
            fprintf(stderr, "    round trip lost field case %d\n", i);
        CHECK(config_equal(&c, &d));
    }
}

static void test_encode_small_buffer(void)
{
    struct ps_config c;
    unusual_config(&c);
    uint8_t full[1024];
    size_t n = ps_config_encode(&c, full, sizeof(full));
    CHECK(n > 0);
    /* Every buffer one byte or more too small: 0, and no write past it. */
    unsigned bad = 0;
    for (size_t cap = 0; cap < n; cap++) {
        uint8_t *b = malloc(cap ? cap : 1);
        if (ps_config_encode(&c, b, cap) != 0)
            bad++;
        free(b);
    }
    CHECK_EQ_INT(bad, 0);
    /* Exactly enough is enough. */
    uint8_t *b = malloc(n);
    CHECK_EQ_INT(ps_config_encode(&c, b, n), n);
    CHECK(memcmp(b, full, n) == 0);
    free(b);
}

/* Every truncation of a valid record is refused, except one: the record
 * cut just before pubsub#collection (its last field, added later), which is
 * what a node stored before that field existed looks like; it decodes with
 * no collection and every other field intact. */
static void test_decode_truncated(void)
{
    struct ps_config c, d;
    uint8_t buf[1024];
    for (int which = 0; which < 3; which++) {
        if (which == 0)
            ps_config_defaults(&c, &caps);
        else
            unusual_config(&c);
        if (which == 2)
            snprintf(c.collection, sizeof(c.collection), "%s", "parent");
        size_t n = ps_config_encode(&c, buf, sizeof(buf));
        CHECK(n > 0);
        /* Records written before the quota fields, before
         * pubsub#roster_groups_allowed, and before pubsub#collection too,
         * end early: they decode. */
        size_t no_quota_len = n - 12;
        size_t no_roster_len = no_quota_len - 2 - strlen(c.roster_groups);
        size_t old_len = no_roster_len - 2 - strlen(c.collection);
        unsigned accepted = 0;
        for (size_t len = 0; len < n; len++) {
            memset(&d, 0xEE, sizeof(d));
            int rc = decode_copy(&d, buf, len);
            if (len == old_len || len == no_roster_len || len == no_quota_len) {
                CHECK_EQ_INT(rc, 0);
                struct ps_config want = c;
                if (len == old_len)
                    want.collection[0] = '\0';
                if (len != no_quota_len)
                    want.roster_groups[0] = '\0';
                want.max_publish_rate = want.max_subscribers = want.max_node_bytes = 0;
                CHECK(config_equal(&d, &want));
            } else if (rc >= 0) {
                accepted++;
                fprintf(stderr, "    truncated record of %zu/%zu bytes accepted\n", len, n);
            }
        }
        CHECK_EQ_INT(accepted, 0);
        CHECK_EQ_INT(decode_copy(&d, buf, n), 0);
        CHECK(config_equal(&c, &d));
    }
}

static void test_decode_garbage(void)
{
    struct ps_config c, d;
    uint8_t buf[1024];
    ps_config_defaults(&c, &caps);
    size_t n = ps_config_encode(&c, buf, sizeof(buf));

    /* Unknown versions. */
    uint8_t bad[1024];
    memcpy(bad, buf, n);
    bad[0] = 0;
    CHECK(decode_copy(&d, bad, n) < 0);
    bad[0] = 2;
    CHECK(decode_copy(&d, bad, n) < 0);
    bad[0] = 0xFF;
    CHECK(decode_copy(&d, bad, n) < 0);
    CHECK(decode_copy(&d, bad, 0) < 0);

    /* A title length past the end, and one that does not fit the struct. */
    struct ps_config t = c;
    snprintf(t.title, sizeof(t.title), "%s", "abc");
    long pos = record_pos(&c, &t); /* first byte that differs: the length's low byte */
    CHECK(pos > 0);
    if (pos > 0) {
        n = ps_config_encode(&t, bad, sizeof(bad));
        bad[pos] = 0xFF; /* 255 bytes claimed, 3 present */
        CHECK(decode_copy(&d, bad, n) < 0);
        bad[pos - 1] = 0x01, bad[pos] = 0x00; /* 256: more than title[256] holds */
        uint8_t big[2048];
        memcpy(big, bad, (size_t)pos + 1);
        memset(big + pos + 1, 'x', 256);
        memcpy(big + pos + 1 + 256, bad + pos + 1 + 3, n - (size_t)pos - 1 - 3);
        CHECK(decode_copy(&d, big, n + 253) < 0);
        bad[pos - 1] = 0xFF, bad[pos] = 0xFF;
        CHECK(decode_copy(&d, bad, n) < 0);
    }

    /* Random bytes behind a valid version byte: never a crash, and what is
     * accepted is usable (NUL-terminated strings). */
    uint32_t seed = 12345;
    unsigned accepted = 0;
    for (int round = 0; round < 3000; round++) {
        size_t len = (size_t)(round % 120);
        uint8_t r[128];
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            r[i] = (uint8_t)(seed >> 16);
            /* Small string lengths now and then, so decoding goes deep. */
            if (i % 7 == 2 && (seed & 0x100))
                r[i] = 0;
        }
        if (len > 0 && round % 2)
            r[0] = 1;
        memset(&d, 0xEE, sizeof(d));
        int rc = decode_copy(&d, r, len);
        if (rc == 0) {
            accepted++;
            CHECK(strlen(d.title) < sizeof(d.title));
            CHECK(strlen(d.payload_type) < sizeof(d.payload_type));
            CHECK(strlen(d.collection) < sizeof(d.collection));
        } else {
            CHECK(rc < 0);
        }
    }
    (void)accepted;
}

/* A stored record whose list fields hold numbers no value has: decoding
 * must refuse it, as the field walk indexes the value tables with these
 * (ps_config_each on such a config read past the access model's values).
 * (Regression: decode used to accept them.) */
static void test_decode_rejects_out_of_range_lists(void)
{
    struct ps_config base, c, d;
    ps_config_defaults(&base, &caps);
    uint8_t buf[1024];
    size_t n = ps_config_encode(&base, buf, sizeof(buf));
    for (int f = 0; f < 5; f++) {
        c = base;
        switch (f) {
        case 0: c.node_type = PS_COLLECTION; break;
        case 1: c.access_model = PS_ACCESS_WHITELIST; break;
        case 2: c.publish_model = PS_PUBLISH_OPEN; break;
        case 3: c.send_last = PS_SEND_ON_SUB; break;
        case 4: c.notification_type = PS_NOTIF_NORMAL; break;
        }
        long pos = record_pos(&base, &c);
        CHECK(pos > 0);
        if (pos <= 0)
            continue;
        static const uint8_t values[] = {5, 17, 200, 255};
        for (size_t v = 0; v < sizeof(values); v++) {
            uint8_t rec[1024];
            memcpy(rec, buf, n);
            rec[pos] = values[v];
            int rc = decode_copy(&d, rec, n);
            if (rc == 0 && !lists_in_range(&d))
                fprintf(stderr, "    list field %d byte %u at %ld accepted\n", f, values[v], pos);
            CHECK(rc < 0);
        }
    }
}


/* The record as the first layout wrote it (before the split of the forms
 * out of pubsub_config.c): stored nodes must keep loading, and what is
 * written now must be the same bytes. */
static size_t unhex(const char *h, uint8_t *out, size_t cap)
{
    size_t n = 0;
    for (; h[0] && h[1] && n < cap; h += 2)
        out[n++] = (uint8_t)(hex_value(h[0]) << 4 | hex_value(h[1]));
    return n;
}

static void test_record_golden(void)
{
    static const char defaults_hex[] =
        "010000000101000101010000000a0000000001000000010000000000000000000000";
    static const char mixed_hex[] =
        "010004543c263e010100010101010102030400000e1001040200001000010001"
        "000575726e3a780006706172656e740000";
    uint8_t want[256], got[1024];
    struct ps_config c, d;

    /* Since quotas, the record goes on with three u32s (zero: no quota);
     * the golden records, written before them, still decode. */
    static const uint8_t no_quota[12] = {0};
    ps_config_defaults(&c, &caps);
    size_t wn = unhex(defaults_hex, want, sizeof(want));
    size_t n = ps_config_encode(&c, got, sizeof(got));
    CHECK_EQ_INT(n, wn + 12);
    CHECK_EQ_MEM((const char *)got, wn, (const char *)want, wn);
    CHECK_EQ_MEM((const char *)got + wn, n - wn, (const char *)no_quota, 12);
    CHECK_EQ_INT(decode_copy(&d, want, wn), 0);
    CHECK(config_equal(&c, &d));

    c.node_type = PS_COLLECTION;
    c.access_model = PS_ACCESS_WHITELIST;
    c.publish_model = PS_PUBLISH_OPEN;
    c.send_last = PS_SEND_ON_SUB;
    c.notification_type = PS_NOTIF_NORMAL;
    c.deliver_payloads = false;
    c.notify_config = true;
    c.max_items = 0x01020304;
    c.item_expire = 3600;
    c.max_payload_size = 4096;
    snprintf(c.title, sizeof(c.title), "%s", "T<&>");
    snprintf(c.payload_type, sizeof(c.payload_type), "%s", "urn:x");
    snprintf(c.collection, sizeof(c.collection), "%s", "parent");
    wn = unhex(mixed_hex, want, sizeof(want));
    n = ps_config_encode(&c, got, sizeof(got));
    CHECK_EQ_INT(n, wn + 12);
    CHECK_EQ_MEM((const char *)got, wn, (const char *)want, wn);
    CHECK_EQ_INT(decode_copy(&d, want, wn), 0);
    CHECK(config_equal(&c, &d));
}

/* ---- applying fields ------------------------------------------------------- */

#define MAX_FIELDS 32

/* kv (var, value pairs ending with NULL) as fields of one value each, the
 * value being kv's own slot; a NULL value gives a field without values. */
static size_t to_fields(const char *const *kv, struct ps_field *out)
{
    size_t n = 0;
    for (size_t i = 0; kv && kv[i]; i += 2) {
        if (n == MAX_FIELDS) {
            CHECK(!"too many fields for the test helper");
            break;
        }
        out[n].var = kv[i];
        out[n].values = kv[i + 1] ? &kv[i + 1] : NULL;
        out[n].nvalues = kv[i + 1] ? 1 : 0;
        n++;
    }
    return n;
}

static int apply_kv(struct ps_config *c, const char *const *kv, bool at_create, struct ps_why *why)
{
    struct ps_field f[MAX_FIELDS];
    size_t n = to_fields(kv, f);
    return ps_config_apply(c, &caps, f, n, at_create, why);
}

/* A submitted form through the XMPP edge: ps_form_fields, then apply. */
static int apply_form(struct arena *a, struct ps_config *c, const struct xnode *x, bool at_create,
                      struct ps_why *why)
{
    struct ps_field *f = NULL;
    size_t n = 0;
    int rc = ps_form_fields(a, x, &f, &n);
    CHECK_EQ_INT(rc, 0);
    if (rc != 0)
        return rc;
    return ps_config_apply(c, &caps, f, n, at_create, why);
}

static void test_apply_valid_changes(void)
{
    struct arena a;
    arena_init(&a);
    struct ps_config c, before;
    struct ps_why why;
    ps_config_defaults(&c, &caps);
    before = c;
    const char *kv[] = {"pubsub#title", "News <&> 'quotes'",
                        "pubsub#deliver_payloads", "0",
                        "pubsub#notify_config", "true",
                        "pubsub#notify_delete", "false",
                        "pubsub#notify_retract", "1",
                        "pubsub#max_items", "100",
                        "pubsub#item_expire", "3600",
                        "pubsub#subscribe", "0",
                        "pubsub#access_model", "whitelist",
                        "pubsub#publish_model", "open",
                        "pubsub#max_payload_size", "1024",
                        "pubsub#send_last_published_item", "on_sub",
                        "pubsub#notification_type", "normal",
                        "pubsub#type", "urn:example:tune",
                        "pubsub#node_type", "leaf",
                        "pubsub#presence_based_delivery", "0",
                        NULL};
    memset(&why, 0x55, sizeof(why));
    CHECK_EQ_INT(apply_kv(&c, kv, false, &why), 0);
    CHECK(why.feature == NULL);
    CHECK_EQ_STR(why.text, "");
    CHECK_EQ_STR(c.title, "News <&> 'quotes'");
    CHECK(!c.deliver_payloads);
    CHECK(c.notify_config);
    CHECK(!c.notify_delete);
    CHECK(c.notify_retract);
    CHECK_EQ_INT(c.max_items, 100);
    CHECK_EQ_INT(c.item_expire, 3600);
    CHECK(!c.subscribe);
    CHECK_EQ_INT(c.access_model, PS_ACCESS_WHITELIST);
    CHECK_EQ_INT(c.publish_model, PS_PUBLISH_OPEN);
    CHECK_EQ_INT(c.max_payload_size, 1024);
    CHECK_EQ_INT(c.send_last, PS_SEND_ON_SUB);
    CHECK_EQ_INT(c.notification_type, PS_NOTIF_NORMAL);
    CHECK_EQ_STR(c.payload_type, "urn:example:tune");
    CHECK_EQ_INT(c.node_type, PS_LEAF);
    /* Fields not given keep their values. */
    CHECK(c.deliver_notifications == before.deliver_notifications);
    CHECK(c.persist_items == before.persist_items);

    /* A second change touches only what it names; a field without values
     * clears a text (a <field/> without <value/>). */
    struct ps_config mid = c;
    const char *kv2[] = {"pubsub#access_model", "authorize", "pubsub#title", NULL, NULL};
    CHECK_EQ_INT(apply_kv(&c, kv2, false, NULL), 0);
    CHECK_EQ_INT(c.access_model, PS_ACCESS_AUTHORIZE);
    CHECK_EQ_STR(c.title, "");
    mid.access_model = PS_ACCESS_AUTHORIZE;
    mid.title[0] = '\0';
    CHECK(config_equal(&c, &mid));

    /* The longest title that fits. */
    char title[300];
    memset(title, 't', 255);
    title[255] = '\0';
    const char *kv3[] = {"pubsub#title", title, NULL};
    CHECK_EQ_INT(apply_kv(&c, kv3, false, &why), 0);
    CHECK_EQ_STR(c.title, title);

    /* The same through forms: one without FORM_TYPE or type attribute, a
     * field without <value/>, and an empty form. */
    const char *kv4[] = {"pubsub#publish_model", "subscribers", "pubsub#title", NULL, NULL};
    CHECK_EQ_INT(apply_form(&a, &c, make_form(&a, NULL, NULL, kv4), false, &why), 0);
    CHECK_EQ_INT(c.publish_model, PS_PUBLISH_SUBSCRIBERS);
    CHECK_EQ_STR(c.title, "");
    mid = c;
    CHECK_EQ_INT(apply_form(&a, &c, submit(&a, NULL), false, &why), 0);
    CHECK(config_equal(&c, &mid));
    /* No fields at all. */
    CHECK_EQ_INT(ps_config_apply(&c, &caps, NULL, 0, false, &why), 0);
    CHECK(config_equal(&c, &mid));

    /* Non-persistent items with max_items 0 are fine. */
    const char *kv5[] = {"pubsub#persist_items", "0", "pubsub#max_items", "0", NULL};
    CHECK_EQ_INT(apply_kv(&c, kv5, false, &why), 0);
    CHECK(!c.persist_items);
    CHECK_EQ_INT(c.max_items, 0);
    CHECK_EQ_INT(ps_config_keep(&c, &caps), 1);

    /* A field given twice: the last one counts. */
    const char *kv6[] = {"pubsub#title", "first", "pubsub#title", "second", NULL};
    CHECK_EQ_INT(apply_kv(&c, kv6, false, &why), 0);
    CHECK_EQ_STR(c.title, "second");
    arena_free(&a);
}

/* Applies kv to a config that is not quite the defaults (so a partial
 * apply would show): returns the code, fills why, and checks that the
 * config did not change. */
static int apply_refused(const char *const *kv, struct ps_why *why)
{
    struct ps_config c, before;
    ps_config_defaults(&c, &caps);
    snprintf(c.title, sizeof(c.title), "%s", "Original");
    c.max_items = 7;
    before = c;
    memset(why, 0x55, sizeof(*why));
    int rc = apply_kv(&c, kv, false, why);
    CHECK(rc < 0);
    CHECK(config_equal(&c, &before));
    CHECK(why->text[0] != '\0');
    CHECK(strlen(why->text) < sizeof(why->text));
    /* Without a why the result is the same. */
    CHECK_EQ_INT(apply_kv(&c, kv, false, NULL), rc);
    CHECK(config_equal(&c, &before));
    return rc;
}

static void test_apply_caps(void)
{
    struct ps_config c;
    struct ps_why why;

    /* Over the cap: refused, not clamped; the title change given with it
     * does not happen either. */
    const char *over[] = {"pubsub#title", "Changed", "pubsub#max_items", "101", NULL};
    CHECK_EQ_INT(apply_refused(over, &why), HERALD_ENOTACCEPTABLE);
    CHECK_EQ_STR(why.text, "pubsub#max_items is over this service's cap of 100");
    CHECK(why.feature == NULL);
    const char *huge[] = {"pubsub#max_items", "4294967294", NULL};
    CHECK_EQ_INT(apply_refused(huge, &why), HERALD_ENOTACCEPTABLE);

    /* At the cap, and "max". */
    ps_config_defaults(&c, &caps);
    const char *at[] = {"pubsub#max_items", "100", NULL};
    CHECK_EQ_INT(apply_kv(&c, at, false, &why), 0);
    CHECK_EQ_INT(c.max_items, 100);
    const char *max[] = {"pubsub#max_items", "max", NULL};
    CHECK_EQ_INT(apply_kv(&c, max, false, &why), 0);
    CHECK_EQ_INT(c.max_items, PS_MAX_ITEMS_MAX);
    CHECK_EQ_INT(ps_config_keep(&c, &caps), caps.max_items);
    /* "max" is a max_items word only. */
    const char *max2[] = {"pubsub#item_expire", "max", NULL};
    CHECK_EQ_INT(apply_refused(max2, &why), HERALD_ENOTACCEPTABLE);
    const char *max3[] = {"pubsub#max_items", "MAX", NULL};
    CHECK_EQ_INT(apply_refused(max3, &why), HERALD_ENOTACCEPTABLE);

    /* Persistent items need at least one. */
    const char *zero[] = {"pubsub#max_items", "0", NULL};
    CHECK_EQ_INT(apply_refused(zero, &why), HERALD_ENOTACCEPTABLE);
    CHECK_EQ_STR(why.text, "pubsub#max_items must be at least 1 when items persist");

    /* Payload size: 1 up to the cap. */
    const char *p_over[] = {"pubsub#max_payload_size", "65537", NULL};
    CHECK_EQ_INT(apply_refused(p_over, &why), HERALD_ENOTACCEPTABLE);
    CHECK_EQ_STR(why.text, "pubsub#max_payload_size must be from 1 to this service's cap of 65536");
    const char *p_zero[] = {"pubsub#max_payload_size", "0", NULL};
    CHECK_EQ_INT(apply_refused(p_zero, &why), HERALD_ENOTACCEPTABLE);
    ps_config_defaults(&c, &caps);
    const char *p_ok[] = {"pubsub#max_payload_size", "65536", NULL};
    CHECK_EQ_INT(apply_kv(&c, p_ok, false, &why), 0);
    CHECK_EQ_INT(c.max_payload_size, 65536);
    const char *p_one[] = {"pubsub#max_payload_size", "1", NULL};
    CHECK_EQ_INT(apply_kv(&c, p_one, false, &why), 0);
    CHECK_EQ_INT(c.max_payload_size, 1);
}

static void test_apply_unsupported(void)
{
    struct ps_why why;

    /* XEP-0060 §8.1.3: an access model the service lacks (roster groups):
     * not-acceptable with unsupported-access-model. */
    const char *roster[] = {"pubsub#title", "X", "pubsub#access_model", "roster", NULL};
    int rc = apply_refused(roster, &why);
    CHECK_EQ_INT(rc, HERALD_EUNSUPPORTED_ACCESS);
    CHECK_EQ_STR(herald_stanza_condition(rc), "not-acceptable");
    CHECK_EQ_STR(herald_error(rc)->app, "unsupported-access-model");
    CHECK(strstr(why.text, "roster") != NULL);
    CHECK(why.feature == NULL);

    /* Values that need what the service does not do: feature-not-implemented
     * with <unsupported feature=.../>. */
    const char *pbd[] = {"pubsub#presence_based_delivery", "1", NULL};
    rc = apply_refused(pbd, &why);
    CHECK_EQ_INT(rc, HERALD_EUNSUPPORTED);
    CHECK_EQ_STR(herald_stanza_condition(rc), "feature-not-implemented");
    CHECK_EQ_STR(herald_error(rc)->app, "unsupported");
    CHECK_EQ_STR(why.feature, "presence-notifications");
    const char *pbd2[] = {"pubsub#presence_based_delivery", "true", NULL};
    CHECK_EQ_INT(apply_refused(pbd2, &why), HERALD_EUNSUPPORTED);
    CHECK_EQ_STR(why.feature, "presence-notifications");

    const char *slp[] = {"pubsub#send_last_published_item", "on_sub_and_presence", NULL};
    CHECK_EQ_INT(apply_refused(slp, &why), HERALD_EUNSUPPORTED);
    CHECK_EQ_STR(why.feature, "presence-notifications");
    CHECK(strstr(why.text, "on_sub_and_presence") != NULL);
}

/* node_type is fixed at creation: a creation may make a collection, a
 * later change may only repeat the current type. */
static void test_apply_node_type_and_collection(void)
{
    struct ps_config c, before;
    struct ps_why why;
    const char *coll[] = {"pubsub#node_type", "collection", NULL};
    const char *leaf[] = {"pubsub#node_type", "leaf", NULL};

    ps_config_defaults(&c, &caps);
    before = c;
    CHECK_EQ_INT(apply_kv(&c, coll, false, &why), HERALD_ENOTACCEPTABLE);
    CHECK_EQ_STR(why.text, "pubsub#node_type cannot be changed");
    CHECK(config_equal(&c, &before));
    CHECK_EQ_INT(apply_kv(&c, leaf, false, &why), 0);
    CHECK_EQ_INT(c.node_type, PS_LEAF);

    CHECK_EQ_INT(apply_kv(&c, coll, true, &why), 0);
    CHECK_EQ_INT(c.node_type, PS_COLLECTION);
    CHECK_EQ_INT(apply_kv(&c, coll, false, &why), 0);
    before = c;
    CHECK_EQ_INT(apply_kv(&c, leaf, false, &why), HERALD_ENOTACCEPTABLE);
    CHECK(config_equal(&c, &before));
    /* Changing it and back in one request changes nothing, and is refused
     * all the same: each value is checked against the node's. */
    const char *flip[] = {"pubsub#node_type", "leaf", "pubsub#node_type", "collection", NULL};
    CHECK_EQ_INT(apply_kv(&c, flip, false, &why), HERALD_ENOTACCEPTABLE);
    CHECK(config_equal(&c, &before));

    /* At creation the other rules still hold. */
    ps_config_defaults(&c, &caps);
    before = c;
    const char *pres[] = {"pubsub#node_type", "collection", "pubsub#access_model", "roster",
                          NULL};
    CHECK_EQ_INT(apply_kv(&c, pres, true, &why), HERALD_EUNSUPPORTED_ACCESS);
    CHECK(config_equal(&c, &before));
    const char *over[] = {"pubsub#node_type", "collection", "pubsub#max_items", "1000", NULL};
    CHECK_EQ_INT(apply_kv(&c, over, true, &why), HERALD_ENOTACCEPTABLE);
    CHECK(config_equal(&c, &before));

    /* pubsub#collection is a text field (the service checks the name). */
    const char *parent[] = {"pubsub#collection", "parent/node", NULL};
    CHECK_EQ_INT(apply_kv(&c, parent, false, &why), 0);
    CHECK_EQ_STR(c.collection, "parent/node");
    char name[300];
    memset(name, 'n', 256);
    name[256] = '\0';
    const char *toolong[] = {"pubsub#collection", name, NULL};
    before = c;
    CHECK_EQ_INT(apply_kv(&c, toolong, false, &why), HERALD_ENOTACCEPTABLE);
    CHECK_EQ_STR(why.text, "pubsub#collection is too long");
    CHECK(config_equal(&c, &before));
    const char *none[] = {"pubsub#collection", "", NULL};
    CHECK_EQ_INT(apply_kv(&c, none, false, &why), 0);
    CHECK_EQ_STR(c.collection, "");
}

static void test_apply_bad_values(void)
{
    struct ps_why why;

    const char *unknown[] = {"pubsub#title", "X", "pubsub#bogus", "1", NULL};
    CHECK_EQ_INT(apply_refused(unknown, &why), HERALD_ENOTACCEPTABLE);
    CHECK_EQ_STR(why.text, "unknown field pubsub#bogus");
    /* Names of other forms are unknown here too. */
    const char *form_type[] = {"FORM_TYPE", NS_NODE_CONFIG, NULL};
    CHECK_EQ_INT(apply_refused(form_type, &why), HERALD_ENOTACCEPTABLE);
    const char *deliver[] = {"pubsub#deliver", "1", NULL};
    CHECK_EQ_INT(apply_refused(deliver, &why), HERALD_ENOTACCEPTABLE);
    const char *empty_var[] = {"", "1", NULL};
    CHECK_EQ_INT(apply_refused(empty_var, &why), HERALD_ENOTACCEPTABLE);

    static const char *const bad_bools[] = {"yes", "no", "TRUE", "2", "", " 1", "1 ", "01"};
    for (size_t i = 0; i < sizeof(bad_bools) / sizeof(bad_bools[0]); i++) {
        const char *kv[] = {"pubsub#deliver_payloads", bad_bools[i], NULL};
        int rc = apply_refused(kv, &why);
        if (rc != HERALD_ENOTACCEPTABLE)
            fprintf(stderr, "    boolean '%s' gave %d\n", bad_bools[i], rc);
        CHECK_EQ_INT(rc, HERALD_ENOTACCEPTABLE);
        CHECK_EQ_STR(why.text, "pubsub#deliver_payloads must be a boolean");
    }
    const char *nobool[] = {"pubsub#persist_items", NULL, NULL}; /* no values: "" */
    CHECK_EQ_INT(apply_refused(nobool, &why), HERALD_ENOTACCEPTABLE);

    static const char *const bad_nums[] = {"", "-1", "abc", "12abc", "1.5", "4294967295",
                                           "4294967296", "99999999999999999999", "0x10"};
    for (size_t i = 0; i < sizeof(bad_nums) / sizeof(bad_nums[0]); i++) {
        const char *kv[] = {"pubsub#item_expire", bad_nums[i], NULL};
        int rc = apply_refused(kv, &why);
        if (rc != HERALD_ENOTACCEPTABLE)
            fprintf(stderr, "    number '%s' gave %d\n", bad_nums[i], rc);
        CHECK_EQ_INT(rc, HERALD_ENOTACCEPTABLE);
        CHECK_EQ_STR(why.text, "pubsub#item_expire must be a whole number");
    }
    const char *neg[] = {"pubsub#max_items", "-5", NULL};
    CHECK_EQ_INT(apply_refused(neg, &why), HERALD_ENOTACCEPTABLE);

    const char *list[] = {"pubsub#access_model", "everyone", NULL};
    CHECK_EQ_INT(apply_refused(list, &why), HERALD_ENOTACCEPTABLE);
    CHECK_EQ_STR(why.text, "unknown value for pubsub#access_model");
    const char *list2[] = {"pubsub#notification_type", "chat", NULL};
    CHECK_EQ_INT(apply_refused(list2, &why), HERALD_ENOTACCEPTABLE);
    const char *list3[] = {"pubsub#publish_model", "", NULL};
    CHECK_EQ_INT(apply_refused(list3, &why), HERALD_ENOTACCEPTABLE);

    char title[300];
    memset(title, 't', 256);
    title[256] = '\0';
    const char *longt[] = {"pubsub#title", title, NULL};
    CHECK_EQ_INT(apply_refused(longt, &why), HERALD_ENOTACCEPTABLE);
    CHECK_EQ_STR(why.text, "pubsub#title is too long");
    const char *longp[] = {"pubsub#type", title, NULL};
    CHECK_EQ_INT(apply_refused(longp, &why), HERALD_ENOTACCEPTABLE);

    /* Every configuration field holds one value: several are refused, even
     * when they agree. */
    struct ps_config c, before;
    ps_config_defaults(&c, &caps);
    before = c;
    static const char *const two[] = {"1", "1"};
    struct ps_field f = {"pubsub#persist_items", two, 2};
    CHECK_EQ_INT(ps_config_apply(&c, &caps, &f, 1, false, &why), HERALD_ENOTACCEPTABLE);
    CHECK_EQ_STR(why.text, "pubsub#persist_items takes one value");
    CHECK(config_equal(&c, &before));

    /* A good field after a bad one is not applied either. */
    const char *mixed[] = {"pubsub#subscribe", "maybe", "pubsub#title", "New", NULL};
    CHECK_EQ_INT(apply_refused(mixed, &why), HERALD_ENOTACCEPTABLE);
}

/* One change: whatever fails, and wherever in the list, nothing of it is
 * applied. Each case sets a good first field, then a bad second one. */
static void test_apply_atomic(void)
{
    static const struct {
        const char *var, *value;
        int rc;
    } bad[] = {
        {"pubsub#deliver_payloads", "perhaps", HERALD_ENOTACCEPTABLE},
        {"pubsub#bogus", "1", HERALD_ENOTACCEPTABLE},
        {"pubsub#max_items", "lots", HERALD_ENOTACCEPTABLE},
        {"pubsub#max_items", "101", HERALD_ENOTACCEPTABLE},          /* over the cap */
        {"pubsub#max_items", "0", HERALD_ENOTACCEPTABLE},            /* cross-field */
        {"pubsub#max_payload_size", "0", HERALD_ENOTACCEPTABLE},
        {"pubsub#access_model", "roster", HERALD_EUNSUPPORTED_ACCESS},
        {"pubsub#access_model", "nobody", HERALD_ENOTACCEPTABLE},
        {"pubsub#send_last_published_item", "on_sub_and_presence", HERALD_EUNSUPPORTED},
        {"pubsub#presence_based_delivery", "1", HERALD_EUNSUPPORTED},
        {"pubsub#node_type", "collection", HERALD_ENOTACCEPTABLE},   /* not at creation */
        {"pubsub#type", NULL, 0},                                    /* a long value, below */
    };
    char longv[400];
    memset(longv, 'x', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct ps_config c, before;
        ps_config_defaults(&c, &caps);
        snprintf(c.title, sizeof(c.title), "%s", "Before");
        c.access_model = PS_ACCESS_AUTHORIZE;
        c.max_items = 5;
        before = c;
        const char *v1[] = {"A new and longer title"};
        const char *v2[] = {bad[i].value ? bad[i].value : longv};
        const char *v3[] = {"whitelist"};
        struct ps_field f[] = {
            {"pubsub#title", v1, 1},
            {bad[i].var, v2, 1},
            {"pubsub#access_model", v3, 1},
        };
        int want = bad[i].value ? bad[i].rc : HERALD_ENOTACCEPTABLE;
        struct ps_why why;
        int rc = ps_config_apply(&c, &caps, f, 3, false, &why);
        if (rc != want)
            fprintf(stderr, "    case %zu (%s) gave %d\n", i, bad[i].var, rc);
        CHECK_EQ_INT(rc, want);
        CHECK(config_equal(&c, &before));
        CHECK(why.text[0] != '\0');
        /* why may be NULL. */
        CHECK_EQ_INT(ps_config_apply(&c, &caps, f, 3, false, NULL), want);
        CHECK(config_equal(&c, &before));
        /* And the first and last fields alone do apply. */
        struct ps_field ok[] = {f[0], f[2]};
        CHECK_EQ_INT(ps_config_apply(&c, &caps, ok, 2, false, &why), 0);
        CHECK_EQ_STR(c.title, "A new and longer title");
        CHECK_EQ_INT(c.access_model, PS_ACCESS_WHITELIST);
    }
}

/* ---- the XMPP edge: submitted forms ------------------------------------------ */

static void test_form_fields(void)
{
    struct arena a;
    arena_init(&a);
    struct ps_field *f = NULL;
    size_t n = 99;

    /* FORM_TYPE, a field without var and a field of another namespace are
     * left out; every <value/> of each field is kept, in order. */
    const char *kv[] = {"pubsub#title", "T", "pubsub#persist_items", NULL, NULL};
    struct xnode *x = make_form(&a, "submit", NS_NODE_CONFIG, kv);
    struct xnode *multi = xml_add_elem(&a, x, NS_DATA, "field");
    CHECK_EQ_INT(xml_set_attr(&a, multi, "var", "pubsub#children"), 0);
    static const char *const vals[] = {"a", "", "c & d"};
    for (size_t i = 0; i < 3; i++) {
        struct xnode *v = xml_add_elem(&a, multi, NS_DATA, "value");
        CHECK_EQ_INT(xml_add_text(&a, v, vals[i], strlen(vals[i])), 0);
    }
    struct xnode *other = xml_add_elem(&a, multi, "urn:other", "value"); /* not a value */
    CHECK_EQ_INT(xml_add_text(&a, other, "no", 2), 0);
    struct xnode *novar = xml_add_elem(&a, x, NS_DATA, "field");
    xml_add_elem(&a, novar, NS_DATA, "value");
    struct xnode *foreign = xml_add_elem(&a, x, "urn:other", "field");
    CHECK_EQ_INT(xml_set_attr(&a, foreign, "var", "pubsub#title"), 0);
    xml_add_elem(&a, x, NS_DATA, "instructions");

    CHECK_EQ_INT(ps_form_fields(&a, x, &f, &n), 0);
    CHECK_EQ_INT(n, 3);
    if (n == 3 && f) {
        CHECK_EQ_STR(f[0].var, "pubsub#title");
        CHECK_EQ_INT(f[0].nvalues, 1);
        CHECK_EQ_STR(f[0].values[0], "T");
        CHECK_EQ_STR(f[1].var, "pubsub#persist_items");
        CHECK_EQ_INT(f[1].nvalues, 0);
        CHECK_EQ_STR(f[2].var, "pubsub#children");
        CHECK_EQ_INT(f[2].nvalues, 3);
        for (size_t i = 0; i < 3 && f[2].nvalues == 3; i++)
            CHECK_EQ_STR(f[2].values[i], vals[i]);
    }
    CHECK_EQ_STR(ps_form_type(&a, x), NS_NODE_CONFIG);
    CHECK_EQ_STR(ps_form_value(&a, x, "pubsub#title"), "T");
    CHECK_EQ_STR(ps_form_value(&a, x, "pubsub#persist_items"), "");
    CHECK_EQ_STR(ps_form_value(&a, x, "pubsub#children"), "a");
    CHECK(ps_form_value(&a, x, "pubsub#nope") == NULL);

    /* Only FORM_TYPE, and no fields at all. */
    CHECK_EQ_INT(ps_form_fields(&a, submit(&a, NULL), &f, &n), 0);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(ps_form_fields(&a, make_form(&a, "submit", NULL, NULL), &f, &n), 0);
    CHECK_EQ_INT(n, 0);
    CHECK(ps_form_type(&a, make_form(&a, "submit", NULL, NULL)) == NULL);
    arena_free(&a);
}

/* XEP-0004 §3.1: a cancelled form submits nothing, whatever it holds. */
static void test_form_cancel(void)
{
    struct arena a;
    arena_init(&a);
    struct ps_config c, before;
    struct ps_why why;
    struct ps_field *f;
    size_t n;
    ps_config_defaults(&c, &caps);
    before = c;
    const char *kv[] = {"pubsub#title", "Changed", "pubsub#max_items", "5",
                        "pubsub#access_model", "roster", "pubsub#bogus", "x", NULL};
    struct xnode *x = make_form(&a, "cancel", NS_NODE_CONFIG, kv);
    n = 99;
    f = (struct ps_field *)&n;
    CHECK_EQ_INT(ps_form_fields(&a, x, &f, &n), 0);
    CHECK_EQ_INT(n, 0);
    CHECK(f == NULL);
    CHECK_EQ_INT(apply_form(&a, &c, x, false, &why), 0);
    CHECK(config_equal(&c, &before));
    const char *kv2[] = {"pubsub#title", "Changed", NULL};
    CHECK_EQ_INT(apply_form(&a, &c, make_form(&a, "cancel", NULL, kv2), false, &why), 0);
    CHECK(config_equal(&c, &before));
    /* Also at creation. */
    const char *kv3[] = {"pubsub#node_type", "collection", NULL};
    CHECK_EQ_INT(apply_form(&a, &c, make_form(&a, "cancel", NS_NODE_CONFIG, kv3), true, &why), 0);
    CHECK(config_equal(&c, &before));
    arena_free(&a);
}

/* ---- publish-options preconditions ----------------------------------------- */

static int precond(const struct ps_config *c, const char *const *kv)
{
    struct ps_field f[MAX_FIELDS];
    size_t n = to_fields(kv, f);
    return ps_config_matches(c, &caps, f, n);
}

static void test_preconditions(void)
{
    struct arena a;
    arena_init(&a);
    struct ps_config c;
    ps_config_defaults(&c, &caps);
    snprintf(c.title, sizeof(c.title), "%s", "My <node>");
    c.access_model = PS_ACCESS_WHITELIST;

    /* Equal values pass, in any spelling the field accepts. */
    CHECK_EQ_INT(precond(&c, NULL), 0);
    CHECK_EQ_INT(ps_config_matches(&c, &caps, NULL, 0), 0);
    const char *eq[] = {"pubsub#access_model", "whitelist",
                        "pubsub#persist_items", "true",
                        "pubsub#deliver_payloads", "1",
                        "pubsub#notify_config", "false",
                        "pubsub#max_items", "10",
                        "pubsub#item_expire", "0",
                        "pubsub#title", "My <node>",
                        "pubsub#type", "",
                        "pubsub#collection", NULL,
                        "pubsub#node_type", "leaf",
                        "pubsub#send_last_published_item", "never",
                        "pubsub#presence_based_delivery", "false",
                        NULL};
    CHECK_EQ_INT(precond(&c, eq), 0);

    /* Different values fail. */
    const char *d1[] = {"pubsub#access_model", "open", NULL};
    CHECK_EQ_INT(precond(&c, d1), HERALD_EPRECONDITION);
    const char *d2[] = {"pubsub#persist_items", "0", NULL};
    CHECK_EQ_INT(precond(&c, d2), HERALD_EPRECONDITION);
    const char *d3[] = {"pubsub#max_items", "11", NULL};
    CHECK_EQ_INT(precond(&c, d3), HERALD_EPRECONDITION);
    const char *d4[] = {"pubsub#title", "My <node", NULL};
    CHECK_EQ_INT(precond(&c, d4), HERALD_EPRECONDITION);
    const char *d5[] = {"pubsub#title", "My <node> ", NULL};
    CHECK_EQ_INT(precond(&c, d5), HERALD_EPRECONDITION);
    const char *d6[] = {"pubsub#access_model", "whitelist", "pubsub#max_items", "max", NULL};
    CHECK_EQ_INT(precond(&c, d6), HERALD_EPRECONDITION);
    const char *d7[] = {"pubsub#title", NULL, NULL}; /* no value: "" */
    CHECK_EQ_INT(precond(&c, d7), HERALD_EPRECONDITION);
    /* Unknown fields, unparseable and unsupported values fail. */
    const char *u1[] = {"pubsub#bogus", "1", NULL};
    CHECK_EQ_INT(precond(&c, u1), HERALD_EPRECONDITION);
    const char *u2[] = {"pubsub#persist_items", "yes", NULL};
    CHECK_EQ_INT(precond(&c, u2), HERALD_EPRECONDITION);
    const char *u3[] = {"pubsub#access_model", "roster", NULL};
    CHECK_EQ_INT(precond(&c, u3), HERALD_EPRECONDITION);
    const char *u4[] = {"pubsub#max_items", "ten", NULL};
    CHECK_EQ_INT(precond(&c, u4), HERALD_EPRECONDITION);
    /* Several values: not a value the node can hold. */
    static const char *const two[] = {"whitelist", "whitelist"};
    struct ps_field f2 = {"pubsub#access_model", two, 2};
    CHECK_EQ_INT(ps_config_matches(&c, &caps, &f2, 1), HERALD_EPRECONDITION);

    /* "max" matches a node configured with max. */
    c.max_items = PS_MAX_ITEMS_MAX;
    const char *m[] = {"pubsub#max_items", "max", NULL};
    CHECK_EQ_INT(precond(&c, m), 0);

    /* A shorter title after a longer one (bytes past the NUL differ). */
    snprintf(c.title, sizeof(c.title), "%s", "a long title that was here first");
    const char *tl[] = {"pubsub#title", "short", NULL};
    CHECK_EQ_INT(apply_kv(&c, tl, false, NULL), 0);
    CHECK_EQ_STR(c.title, "short");
    CHECK_EQ_INT(precond(&c, tl), 0);

    /* Through a publish-options form. */
    struct ps_field *f;
    size_t n;
    const char *pf[] = {"pubsub#title", "short", "pubsub#access_model", "whitelist", NULL};
    CHECK_EQ_INT(ps_form_fields(&a, make_form(&a, "submit", NS_PUBLISH_OPTIONS, pf), &f, &n), 0);
    CHECK_EQ_INT(ps_config_matches(&c, &caps, f, n), 0);
    const char *pf2[] = {"pubsub#title", "short", "pubsub#access_model", "open", NULL};
    CHECK_EQ_INT(ps_form_fields(&a, make_form(&a, "submit", NS_PUBLISH_OPTIONS, pf2), &f, &n), 0);
    CHECK_EQ_INT(ps_config_matches(&c, &caps, f, n), HERALD_EPRECONDITION);
    arena_free(&a);
}

/* ---- the field walk ---------------------------------------------------------- */

struct walk {
    const struct ps_config_field *f[32];
    char value[32][300];
    size_t n;
};

static void walk_fn(void *ud, const struct ps_config_field *f, const char *value)
{
    struct walk *w = ud;
    CHECK(w->n < 32);
    if (w->n >= 32)
        return;
    w->f[w->n] = f;
    snprintf(w->value[w->n], sizeof(w->value[w->n]), "%s", value);
    w->n++;
}

static const char *walk_value(const struct walk *w, const char *var)
{
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->f[i]->var, var) == 0)
            return w->value[i];
    return "(no field)";
}

static void test_config_each(void)
{
    static const struct {
        const char *var;
        enum ps_field_kind kind;
    } order[] = {
        {"pubsub#title", PS_FIELD_TEXT},
        {"pubsub#node_type", PS_FIELD_LIST},
        {"pubsub#deliver_notifications", PS_FIELD_BOOL},
        {"pubsub#deliver_payloads", PS_FIELD_BOOL},
        {"pubsub#notify_config", PS_FIELD_BOOL},
        {"pubsub#notify_delete", PS_FIELD_BOOL},
        {"pubsub#notify_retract", PS_FIELD_BOOL},
        {"pubsub#persist_items", PS_FIELD_BOOL},
        {"pubsub#max_items", PS_FIELD_UINT},
        {"pubsub#item_expire", PS_FIELD_UINT},
        {"pubsub#subscribe", PS_FIELD_BOOL},
        {"pubsub#access_model", PS_FIELD_LIST},
        {"pubsub#publish_model", PS_FIELD_LIST},
        {"pubsub#max_payload_size", PS_FIELD_UINT},
        {"pubsub#send_last_published_item", PS_FIELD_LIST},
        {"pubsub#presence_based_delivery", PS_FIELD_BOOL},
        {"pubsub#notification_type", PS_FIELD_LIST},
        {"pubsub#type", PS_FIELD_TEXT},
        {"pubsub#collection", PS_FIELD_TEXT},
        {"pubsub#roster_groups_allowed", PS_FIELD_TEXT_MULTI},
        {"herald#max_publish_rate", PS_FIELD_UINT},
        {"herald#max_subscribers", PS_FIELD_UINT},
        {"herald#max_node_bytes", PS_FIELD_UINT},
    };
    const size_t nfields = sizeof(order) / sizeof(order[0]);
    struct ps_config c;
    ps_config_defaults(&c, &caps);
    snprintf(c.title, sizeof(c.title), "%s", "Walk");
    c.max_items = PS_MAX_ITEMS_MAX;
    struct walk w = {.n = 0};
    ps_config_each(&c, walk_fn, &w);
    CHECK_EQ_INT(w.n, nfields);
    for (size_t i = 0; i < w.n && i < nfields; i++) {
        const struct ps_config_field *f = w.f[i];
        CHECK_EQ_STR(f->var, order[i].var);
        CHECK_EQ_INT(f->kind, order[i].kind);
        CHECK(f->label != NULL && f->label[0] != '\0');
        CHECK(ps_config_known(f->var));
        if (f->kind != PS_FIELD_LIST) {
            CHECK(f->options == NULL && f->option_labels == NULL);
            continue;
        }
        /* Every offered value is one the service takes, with a label. */
        CHECK(f->options != NULL && f->option_labels != NULL);
        if (f->options == NULL || f->option_labels == NULL)
            continue;
        size_t k;
        for (k = 0; f->options[k]; k++) {
            CHECK(f->option_labels[k] != NULL);
            struct ps_config t;
            ps_config_defaults(&t, &caps);
            const char *v[] = {f->options[k]};
            struct ps_field pf = {f->var, v, 1};
            struct ps_why why;
            int rc = ps_config_apply(&t, &caps, &pf, 1, true, &why);
            if (rc != 0)
                fprintf(stderr, "    offered %s=%s refused: %s\n", f->var, f->options[k], why.text);
            CHECK_EQ_INT(rc, 0);
            CHECK_EQ_INT(ps_config_matches(&t, &caps, &pf, 1), 0);
        }
        CHECK(k > 0);
        CHECK(f->option_labels[k] == NULL);
        /* The value shown is one of them. */
        bool offered = false;
        for (k = 0; f->options[k]; k++)
            offered |= strcmp(f->options[k], w.value[i]) == 0;
        CHECK(offered);
    }
    /* Values as form text. */
    CHECK_EQ_STR(walk_value(&w, "pubsub#title"), "Walk");
    CHECK_EQ_STR(walk_value(&w, "pubsub#max_items"), "max");
    CHECK_EQ_STR(walk_value(&w, "pubsub#item_expire"), "0");
    CHECK_EQ_STR(walk_value(&w, "pubsub#persist_items"), "1");
    CHECK_EQ_STR(walk_value(&w, "pubsub#notify_config"), "0");
    CHECK_EQ_STR(walk_value(&w, "pubsub#access_model"), "open");
    CHECK_EQ_STR(walk_value(&w, "pubsub#collection"), "");

    /* What is not implemented is not offered. */
    for (size_t i = 0; i < w.n; i++) {
        if (w.f[i]->options == NULL)
            continue;
        for (size_t k = 0; w.f[i]->options[k]; k++) {
            CHECK(strcmp(w.f[i]->options[k], "roster") != 0);
            CHECK(strcmp(w.f[i]->options[k], "on_sub_and_presence") != 0);
        }
    }

    /* The field descriptions are the table's own: the same pointers on
     * every walk. */
    struct walk w2 = {.n = 0};
    unusual_config(&c);
    ps_config_each(&c, walk_fn, &w2);
    CHECK_EQ_INT(w2.n, w.n);
    for (size_t i = 0; i < w.n && i < w2.n; i++)
        CHECK(w.f[i] == w2.f[i]);
    /* A value held but not offered still shows as itself. */
    CHECK_EQ_STR(walk_value(&w2, "pubsub#send_last_published_item"), "on_sub_and_presence");
    CHECK_EQ_STR(walk_value(&w2, "pubsub#presence_based_delivery"), "1");
    CHECK_EQ_INT(strlen(walk_value(&w2, "pubsub#title")), 255);

    /* A configuration made by hand with a list index out of range. */
    ps_config_defaults(&c, &caps);
    c.access_model = 200;
    struct walk w3 = {.n = 0};
    ps_config_each(&c, walk_fn, &w3);
    CHECK_EQ_STR(walk_value(&w3, "pubsub#access_model"), "");

    CHECK(!ps_config_known("pubsub#bogus"));
    CHECK(!ps_config_known("FORM_TYPE"));
    CHECK(!ps_config_known("pubsub#deliver"));
    CHECK(!ps_config_known(""));
    CHECK(!ps_config_known("pubsub#title "));
    CHECK(!ps_config_known(NULL));
}

/* ---- subscription options -------------------------------------------------- */

static int sub_opts(struct ps_sub_opts *deliver, const char *var, const char *const *values, size_t n,
                    struct ps_why *why)
{
    struct ps_field f = {var, values, n};
    return ps_sub_options_apply(deliver, &f, 1, why);
}

static void test_sub_options(void)
{
    struct ps_why why;
    struct ps_sub_opts d = {false, false};

    /* The four booleans. */
    static const struct {
        const char *v;
        bool want;
    } ok[] = {{"1", true}, {"0", false}, {"true", true}, {"false", false}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        for (int from = 0; from < 2; from++) {
            d.deliver = from;
            memset(&why, 0x55, sizeof(why));
            CHECK_EQ_INT(sub_opts(&d, "pubsub#deliver", &ok[i].v, 1, &why), 0);
            CHECK_EQ_INT(d.deliver, ok[i].want);
            CHECK(why.feature == NULL);
            CHECK_EQ_STR(why.text, "");
        }
    }

    /* Not given: the value stays. */
    d.deliver = false;
    CHECK_EQ_INT(ps_sub_options_apply(&d, NULL, 0, &why), 0);
    CHECK(!d.deliver);
    d.deliver = true;
    CHECK_EQ_INT(ps_sub_options_apply(&d, NULL, 0, NULL), 0);
    CHECK(d.deliver);

    /* Not a boolean: invalid options, and nothing changes. */
    static const char *const bad[] = {"", "perhaps", "2", "yes", "TRUE", " 1", "1 ", "01", "-1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        for (int from = 0; from < 2; from++) {
            d.deliver = from;
            why.text[0] = '\0';
            int rc = sub_opts(&d, "pubsub#deliver", &bad[i], 1, &why);
            if (rc != HERALD_EINVALID_OPTIONS)
                fprintf(stderr, "    deliver '%s' gave %d\n", bad[i], rc);
            CHECK_EQ_INT(rc, HERALD_EINVALID_OPTIONS);
            CHECK_EQ_INT(d.deliver, from);
            CHECK_EQ_STR(why.text, "pubsub#deliver must be a boolean");
            CHECK_EQ_INT(sub_opts(&d, "pubsub#deliver", &bad[i], 1, NULL), HERALD_EINVALID_OPTIONS);
            CHECK_EQ_INT(d.deliver, from);
        }
    }
    CHECK_EQ_STR(herald_error(HERALD_EINVALID_OPTIONS)->app, "invalid-options");

    /* No value, or several (even agreeing ones). */
    static const char *const two[] = {"1", "1"};
    static const char *const mixed[] = {"0", "1"};
    d.deliver = true;
    CHECK_EQ_INT(sub_opts(&d, "pubsub#deliver", NULL, 0, &why), HERALD_EINVALID_OPTIONS);
    CHECK(why.text[0] != '\0');
    CHECK(d.deliver);
    CHECK_EQ_INT(sub_opts(&d, "pubsub#deliver", two, 2, &why), HERALD_EINVALID_OPTIONS);
    CHECK(d.deliver);
    CHECK_EQ_INT(sub_opts(&d, "pubsub#deliver", mixed, 2, &why), HERALD_EINVALID_OPTIONS);
    CHECK(d.deliver);

    /* Unknown options, including configuration fields. */
    static const char *const one[] = {"1"};
    static const char *const unknown[] = {"pubsub#digest", "pubsub#bogus", "pubsub#deliver ",
                                          "pubsub#persist_items", "FORM_TYPE", ""};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        d.deliver = false;
        why.text[0] = '\0';
        CHECK_EQ_INT(sub_opts(&d, unknown[i], one, 1, &why), HERALD_EINVALID_OPTIONS);
        CHECK(!d.deliver);
        CHECK(strstr(why.text, "unknown") != NULL);
    }
    d.deliver = false;
    CHECK_EQ_INT(sub_opts(&d, NULL, one, 1, &why), HERALD_EINVALID_OPTIONS);
    CHECK(!d.deliver);

    /* One bad field spoils the lot, wherever it is. */
    static const char *const zero[] = {"0"};
    struct ps_field fs[] = {{"pubsub#deliver", zero, 1}, {"pubsub#bogus", one, 1}};
    d.deliver = true;
    CHECK_EQ_INT(ps_sub_options_apply(&d, fs, 2, &why), HERALD_EINVALID_OPTIONS);
    CHECK(d.deliver);
    CHECK(strstr(why.text, "pubsub#bogus") != NULL);
    struct ps_field fs2[] = {{"pubsub#deliver", zero, 1}, {"pubsub#deliver", bad + 1, 1}};
    CHECK_EQ_INT(ps_sub_options_apply(&d, fs2, 2, &why), HERALD_EINVALID_OPTIONS);
    CHECK(d.deliver);
    /* Given twice: the last one counts. */
    struct ps_field fs3[] = {{"pubsub#deliver", zero, 1}, {"pubsub#deliver", one, 1}};
    d.deliver = false;
    CHECK_EQ_INT(ps_sub_options_apply(&d, fs3, 2, &why), 0);
    CHECK(d.deliver);
}

static void test_sub_options_form(void)
{
    struct arena a;
    arena_init(&a);
    for (int v = 0; v < 4; v++) {
        int deliver = v & 1, durable = v >> 1;
        struct ps_sub_opts o = {deliver, durable};
        struct xnode *x = ps_form_sub_options(&a, &o);
        CHECK(x != NULL);
        if (x == NULL)
            continue;
        struct buf b;
        buf_init(&b, 0);
        xml_serialize(&b, x, NS_CLIENT);
        buf_putc(&b, '\0');
        CHECK(buf_ok(&b));
        char want[512];
        snprintf(want, sizeof(want),
                 "<x xmlns='jabber:x:data' type='form'><field var='FORM_TYPE' type='hidden'>"
                 "<value>" NS_SUB_OPTIONS "</value></field><field var='pubsub#deliver' "
                 "type='boolean' label='Enable delivery?'><value>%d</value></field>"
                 "<field var='herald#durable' type='boolean' label='Keep a cursor and replay "
                 "what was published while away?'><value>%d</value></field></x>",
                 deliver, durable);
        if (buf_ok(&b))
            CHECK_EQ_STR(b.data, want);
        buf_free(&b);

        /* Submitted back as it is, it sets the same value. */
        xml_del_attr(x, "type");
        CHECK_EQ_INT(xml_set_attr(&a, x, "type", "submit"), 0);
        CHECK_EQ_STR(ps_form_type(&a, x), NS_SUB_OPTIONS);
        struct ps_field *f;
        size_t n;
        CHECK_EQ_INT(ps_form_fields(&a, x, &f, &n), 0);
        CHECK_EQ_INT(n, 2);
        struct ps_sub_opts d = {!deliver, !durable};
        CHECK_EQ_INT(ps_sub_options_apply(&d, f, n, NULL), 0);
        CHECK_EQ_INT(d.deliver, deliver);
        CHECK_EQ_INT(d.durable, durable);
    }
    /* A submitted <field var='pubsub#deliver'/> without a value is invalid. */
    const char *kv[] = {"pubsub#deliver", NULL, NULL};
    struct ps_field *f;
    size_t n;
    CHECK_EQ_INT(ps_form_fields(&a, make_form(&a, "submit", NS_SUB_OPTIONS, kv), &f, &n), 0);
    struct ps_sub_opts d = {true, false};
    CHECK_EQ_INT(ps_sub_options_apply(&d, f, n, NULL), HERALD_EINVALID_OPTIONS);
    CHECK(d.deliver);
    /* herald#durable is a boolean like pubsub#deliver. */
    const char *dv[] = {PS_SUB_DURABLE, "maybe", NULL};
    CHECK_EQ_INT(ps_form_fields(&a, make_form(&a, "submit", NS_SUB_OPTIONS, dv), &f, &n), 0);
    CHECK_EQ_INT(ps_sub_options_apply(&d, f, n, NULL), HERALD_EINVALID_OPTIONS);
    CHECK(!d.durable);
    const char *dt[] = {PS_SUB_DURABLE, "true", NULL};
    CHECK_EQ_INT(ps_form_fields(&a, make_form(&a, "submit", NS_SUB_OPTIONS, dt), &f, &n), 0);
    CHECK_EQ_INT(ps_sub_options_apply(&d, f, n, NULL), 0);
    CHECK(d.durable && d.deliver);
    arena_free(&a);
}

/* ---- produced forms -------------------------------------------------------- */

static void check_fields_match(struct arena *a, const struct xnode *x, const struct ps_config *c)
{
    static const char *const access[] = {"open", "presence", "roster", "authorize", "whitelist"};
    static const char *const publish[] = {"publishers", "subscribers", "open"};
    static const char *const sendl[] = {"never", "on_sub", "on_sub_and_presence"};
    static const char *const notif[] = {"headline", "normal"};
    char num[32];
    CHECK_EQ_STR(field_val(a, x, "pubsub#title"), c->title);
    CHECK_EQ_STR(field_val(a, x, "pubsub#type"), c->payload_type);
    CHECK_EQ_STR(field_val(a, x, "pubsub#collection"), c->collection);
    CHECK_EQ_STR(field_val(a, x, "pubsub#node_type"), c->node_type ? "collection" : "leaf");
    CHECK_EQ_STR(field_val(a, x, "pubsub#access_model"), access[c->access_model]);
    CHECK_EQ_STR(field_val(a, x, "pubsub#publish_model"), publish[c->publish_model]);
    CHECK_EQ_STR(field_val(a, x, "pubsub#send_last_published_item"), sendl[c->send_last]);
    CHECK_EQ_STR(field_val(a, x, "pubsub#notification_type"), notif[c->notification_type]);
    CHECK_EQ_STR(field_val(a, x, "pubsub#deliver_notifications"),
                 c->deliver_notifications ? "1" : "0");
    CHECK_EQ_STR(field_val(a, x, "pubsub#deliver_payloads"), c->deliver_payloads ? "1" : "0");
    CHECK_EQ_STR(field_val(a, x, "pubsub#notify_config"), c->notify_config ? "1" : "0");
    CHECK_EQ_STR(field_val(a, x, "pubsub#notify_delete"), c->notify_delete ? "1" : "0");
    CHECK_EQ_STR(field_val(a, x, "pubsub#notify_retract"), c->notify_retract ? "1" : "0");
    CHECK_EQ_STR(field_val(a, x, "pubsub#persist_items"), c->persist_items ? "1" : "0");
    CHECK_EQ_STR(field_val(a, x, "pubsub#subscribe"), c->subscribe ? "1" : "0");
    CHECK_EQ_STR(field_val(a, x, "pubsub#presence_based_delivery"),
                 c->presence_based_delivery ? "1" : "0");
    if (c->max_items == PS_MAX_ITEMS_MAX)
        snprintf(num, sizeof(num), "max");
    else
        snprintf(num, sizeof(num), "%u", c->max_items);
    CHECK_EQ_STR(field_val(a, x, "pubsub#max_items"), num);
    snprintf(num, sizeof(num), "%u", c->item_expire);
    CHECK_EQ_STR(field_val(a, x, "pubsub#item_expire"), num);
    snprintf(num, sizeof(num), "%u", c->max_payload_size);
    CHECK_EQ_STR(field_val(a, x, "pubsub#max_payload_size"), num);
    /* Field types a client renders by. */
    const struct xnode *f = find_field(x, "pubsub#persist_items");
    CHECK(f && xml_attr(f, "type") && strcmp(xml_attr(f, "type"), "boolean") == 0);
    f = find_field(x, "pubsub#access_model");
    CHECK(f && xml_attr(f, "type") && strcmp(xml_attr(f, "type"), "list-single") == 0);
    f = find_field(x, "pubsub#max_items");
    CHECK(f && xml_attr(f, "type") && strcmp(xml_attr(f, "type"), "text-single") == 0);
    f = find_field(x, "pubsub#title");
    CHECK(f && xml_attr(f, "type") && strcmp(xml_attr(f, "type"), "text-single") == 0);
    CHECK(f && xml_attr(f, "label") &&
          strcmp(xml_attr(f, "label"), "A friendly name for the node") == 0);
    f = find_field(x, "FORM_TYPE");
    CHECK(f && xml_attr(f, "type") && strcmp(xml_attr(f, "type"), "hidden") == 0);
}

static void test_config_form(void)
{
    struct arena a;
    arena_init(&a);
    struct ps_config c;
    char opts[512];
    ps_config_defaults(&c, &caps);
    snprintf(c.title, sizeof(c.title), "%s", "Tunes & <more>");
    snprintf(c.payload_type, sizeof(c.payload_type), "%s", "urn:xmpp:tune");
    c.access_model = PS_ACCESS_AUTHORIZE;
    c.publish_model = PS_PUBLISH_SUBSCRIBERS;
    c.send_last = PS_SEND_ON_SUB;
    c.notification_type = PS_NOTIF_NORMAL;
    c.notify_config = true;
    c.persist_items = false;
    c.item_expire = 86400;
    c.max_payload_size = 4096;

    struct xnode *x = ps_form_config(&a, &c);
    CHECK(x != NULL);
    if (x == NULL)
        goto out;
    CHECK_EQ_STR(x->ns, NS_DATA);
    CHECK_EQ_STR(x->name, "x");
    CHECK_EQ_STR(xml_attr(x, "type"), "form");
    CHECK_EQ_STR(field_val(&a, x, "FORM_TYPE"), NS_NODE_CONFIG);
    CHECK_EQ_STR(ps_form_type(&a, x), NS_NODE_CONFIG);
    check_fields_match(&a, x, &c);
    CHECK_EQ_STR(ps_form_value(&a, x, "pubsub#title"), "Tunes & <more>");
    CHECK(ps_form_value(&a, x, "pubsub#nope") == NULL);
    /* FORM_TYPE and the 23 fields of the table. */
    CHECK_EQ_INT(xml_count_elems(x), 24);
    /* Only what is implemented is offered. */
    CHECK_EQ_STR(field_options(&a, x, "pubsub#access_model", opts, sizeof(opts)),
                 "open,presence,authorize,whitelist");
    CHECK_EQ_STR(field_options(&a, x, "pubsub#node_type", opts, sizeof(opts)), "leaf,collection");
    CHECK_EQ_STR(field_options(&a, x, "pubsub#publish_model", opts, sizeof(opts)),
                 "publishers,subscribers,open");
    CHECK_EQ_STR(field_options(&a, x, "pubsub#send_last_published_item", opts, sizeof(opts)),
                 "never,on_sub");
    CHECK_EQ_STR(field_options(&a, x, "pubsub#notification_type", opts, sizeof(opts)),
                 "headline,normal");
    CHECK_EQ_STR(field_options(&a, x, "pubsub#title", opts, sizeof(opts)), "");

    /* Serialized: escaped, in the data forms namespace, options labelled. */
    struct buf b;
    buf_init(&b, 0);
    xml_serialize(&b, x, NS_CLIENT);
    buf_putc(&b, '\0');
    CHECK(buf_ok(&b));
    if (buf_ok(&b)) {
        CHECK(strncmp(b.data, "<x xmlns='jabber:x:data' type='form'>", 37) == 0);
        CHECK(strstr(b.data, "<value>" NS_NODE_CONFIG "</value>") != NULL);
        CHECK(strstr(b.data, "<value>Tunes &amp; &lt;more&gt;</value>") != NULL);
        CHECK(strstr(b.data, "var='pubsub#max_items'") != NULL);
        CHECK(strstr(b.data, "<value>authorize</value>") != NULL);
        CHECK(strstr(b.data, "<value>86400</value>") != NULL);
        CHECK(strstr(b.data, "<value>presence</value>") != NULL);
        CHECK(strstr(b.data, "<value>roster</value>") == NULL);
        CHECK(strstr(b.data, "<option label='Only entities the owner allows'><value>whitelist"
                             "</value></option>") != NULL);
        CHECK(strstr(b.data, "<field var='pubsub#send_last_published_item' type='list-single' "
                             "label='When to send the last published item'><value>on_sub</value>"
                             "<option label='Never'><value>never</value></option>") != NULL);
    }
    buf_free(&b);

    /* max_items "max" shows as the word. */
    c.max_items = PS_MAX_ITEMS_MAX;
    x = ps_form_config(&a, &c);
    CHECK(x != NULL);
    if (x)
        CHECK_EQ_STR(field_val(&a, x, "pubsub#max_items"), "max");

    /* The form sent back as it is configures the same node. */
    for (int round = 0; round < 2; round++) {
        c.persist_items = true;
        if (round == 1) {
            unusual_config(&c);
            c.node_type = PS_LEAF;
            c.send_last = PS_SEND_ON_SUB;
            c.presence_based_delivery = false;
            c.max_items = 50;
            c.max_payload_size = 100;
        }
        x = ps_form_config(&a, &c);
        CHECK(x != NULL);
        if (x == NULL)
            continue;
        check_fields_match(&a, x, &c);
        xml_del_attr(x, "type");
        CHECK_EQ_INT(xml_set_attr(&a, x, "type", "submit"), 0);
        struct ps_config back;
        struct ps_why why;
        ps_config_defaults(&back, &caps);
        CHECK_EQ_INT(apply_form(&a, &back, x, false, &why), 0);
        CHECK(config_equal(&back, &c));
        /* And every one of its values is a satisfied precondition. */
        struct ps_field *f;
        size_t n;
        CHECK_EQ_INT(ps_form_fields(&a, x, &f, &n), 0);
        CHECK_EQ_INT(n, 23);
        CHECK_EQ_INT(ps_config_matches(&c, &caps, f, n), 0);
    }
out:
    arena_free(&a);
}

static void test_metadata_form(void)
{
    struct arena a;
    arena_init(&a);
    struct ps_node_info n;
    memset(&n, 0, sizeof(n));
    n.name = "meta";
    n.created = 1700000000123ull;
    ps_config_defaults(&n.config, &caps);
    snprintf(n.config.title, sizeof(n.config.title), "%s", "Meta 'title'");
    snprintf(n.config.payload_type, sizeof(n.config.payload_type), "%s", "urn:example");
    n.config.access_model = PS_ACCESS_WHITELIST;
    n.config.max_items = PS_MAX_ITEMS_MAX;
    n.owners[0] = "alice@localhost";
    n.owners[1] = "bob@example.org";
    n.nowners = 2;

    struct xnode *x = ps_form_metadata(&a, &n, &caps);
    CHECK(x != NULL);
    if (x == NULL)
        goto out;
    CHECK_EQ_STR(x->ns, NS_DATA);
    CHECK_EQ_STR(xml_attr(x, "type"), "result");
    CHECK_EQ_STR(field_val(&a, x, "FORM_TYPE"), NS_META_DATA);
    CHECK_EQ_STR(ps_form_type(&a, x), NS_META_DATA);
    check_fields_match(&a, x, &n.config);
    CHECK_EQ_STR(field_val(&a, x, "pubsub#effective_max_items"), "100");
    CHECK_EQ_STR(field_val(&a, x, "pubsub#creation_date"), "2023-11-14T22:13:20Z");
    /* No options in a result form. */
    const struct xnode *f = find_field(x, "pubsub#access_model");
    CHECK(f != NULL && xml_child(f, NS_DATA, "option") == NULL);
    /* Both owners, in order. */
    f = find_field(x, "pubsub#owner");
    CHECK(f != NULL);
    if (f) {
        CHECK_EQ_STR(xml_attr(f, "type"), "jid-multi");
        const char *vals[3] = {NULL, NULL, NULL};
        int nv = 0;
        for (const struct xnode *v = xml_first_elem(f); v; v = xml_next_elem(v))
            if (strcmp(v->name, "value") == 0 && nv < 3)
                vals[nv++] = xml_text(&a, v);
        CHECK_EQ_INT(nv, 2);
        CHECK_EQ_STR(vals[0], "alice@localhost");
        CHECK_EQ_STR(vals[1], "bob@example.org");
    }
    struct buf b;
    buf_init(&b, 0);
    xml_serialize(&b, x, NS_CLIENT);
    buf_putc(&b, '\0');
    CHECK(buf_ok(&b));
    if (buf_ok(&b)) {
        CHECK(strncmp(b.data, "<x xmlns='jabber:x:data' type='result'>", 39) == 0);
        CHECK(strstr(b.data, "<value>" NS_META_DATA "</value>") != NULL);
        CHECK(strstr(b.data, "<value>Meta 'title'</value>") != NULL);
        CHECK(strstr(b.data, "<value>whitelist</value>") != NULL);
        CHECK(strstr(b.data, "<value>bob@example.org</value>") != NULL);
        CHECK(strstr(b.data, "<option") == NULL);
        CHECK(strstr(b.data, "<field var='pubsub#effective_max_items' type='text-single' "
                             "label='Items actually kept'><value>100</value></field>"
                             "<field var='pubsub#creation_date' type='text-single'>"
                             "<value>2023-11-14T22:13:20Z</value></field>"
                             "<field var='pubsub#owner' type='jid-multi'>") != NULL);
    }
    buf_free(&b);

    /* Non-persistent items: one is kept; no owners: an empty owner field. */
    n.config.persist_items = false;
    n.config.max_items = 5;
    n.created = 0;
    n.nowners = 0;
    x = ps_form_metadata(&a, &n, &caps);
    CHECK(x != NULL);
    if (x) {
        CHECK_EQ_STR(field_val(&a, x, "pubsub#effective_max_items"), "1");
        CHECK_EQ_STR(field_val(&a, x, "pubsub#max_items"), "5");
        CHECK_EQ_STR(field_val(&a, x, "pubsub#creation_date"), "1970-01-01T00:00:00Z");
        CHECK_EQ_STR(field_val(&a, x, "pubsub#owner"), "(no value)");
    }
    /* The effective number follows the caps given. */
    n.config.persist_items = true;
    n.config.max_items = PS_MAX_ITEMS_MAX;
    struct ps_caps small = {7, 100};
    x = ps_form_metadata(&a, &n, &small);
    if (x)
        CHECK_EQ_STR(field_val(&a, x, "pubsub#effective_max_items"), "7");
out:
    arena_free(&a);
}

/* Issue 11, finding 4: text values go out in disco#info and forms, so
 * each must be XML 1.0 text; a refused value changes nothing. */
static void test_apply_text_not_xml(void)
{
    struct ps_why why;
    static const char *const bad[] = {"a\x02" "b", "\xef\xbf\xbf", "\xef\xbf\xbe", "\xc0\xaf",
                                      "\xed\xa0\x80", "\xf4\x90\x80\x80", "\x1b[31m", "\xe2\x82"};
    static const char *const vars[] = {"pubsub#title", "pubsub#type", "pubsub#collection"};
    for (size_t v = 0; v < sizeof(vars) / sizeof(vars[0]); v++) {
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            const char *kv[] = {vars[v], bad[i], NULL};
            CHECK_EQ_INT(apply_refused(kv, &why), HERALD_ENOTACCEPTABLE);
            CHECK(strstr(why.text, vars[v]) != NULL && strstr(why.text, "XML 1.0") != NULL);
        }
    }
    struct ps_config c;
    ps_config_defaults(&c, &caps);
    const char *good[] = {"pubsub#title", "Caf\xc3\xa9 \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbd\ttab",
                          NULL};
    CHECK_EQ_INT(apply_kv(&c, good, false, &why), 0);
    CHECK_EQ_STR(c.title, "Caf\xc3\xa9 \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbd\ttab");
}

TEST_MAIN(TEST_CASE(test_defaults), TEST_CASE(test_keep), TEST_CASE(test_encode_decode_roundtrip),
          TEST_CASE(test_encode_small_buffer), TEST_CASE(test_decode_truncated),
          TEST_CASE(test_decode_garbage), TEST_CASE(test_decode_rejects_out_of_range_lists),
          TEST_CASE(test_record_golden), TEST_CASE(test_apply_valid_changes),
          TEST_CASE(test_apply_caps), TEST_CASE(test_apply_unsupported),
          TEST_CASE(test_apply_node_type_and_collection), TEST_CASE(test_apply_bad_values),
          TEST_CASE(test_apply_atomic), TEST_CASE(test_form_fields), TEST_CASE(test_form_cancel),
          TEST_CASE(test_preconditions), TEST_CASE(test_config_each), TEST_CASE(test_sub_options),
          TEST_CASE(test_sub_options_form), TEST_CASE(test_config_form),
          TEST_CASE(test_metadata_form), TEST_CASE(test_apply_text_not_xml))
