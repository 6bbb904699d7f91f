/* test_pubsub_config.c - node configuration (pubsub_config.c): defaults, the
 * number of items kept, the stored record, submitted forms, publish-options
 * preconditions and the node_config and meta-data forms.
 *
 * Submitted forms are built with the tree API (xml.h) exactly as the parser
 * would deliver them; produced forms are checked by walking the tree and by
 * serializing them. The stored record is decoded at every truncation length
 * and from random bytes, each copy in a buffer of exactly its length so that
 * AddressSanitizer sees any read past the end. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "buf.h"
#include "errors.h"
#include "pubsub_config.h"
#include "xml.h"
#include "test.h"

#define NS_DATA "jabber:x:data"
#define NS_NODE_CONFIG "http://jabber.org/protocol/pubsub#node_config"
#define NS_META_DATA "http://jabber.org/protocol/pubsub#meta-data"
#define NS_PUBLISH_OPTIONS "http://jabber.org/protocol/pubsub#publish-options"

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
    /* The longest titles that fit, with bytes that need care. */
    for (int i = 0; i < 255; i++) {
        c->title[i] = (char)('A' + i % 26);
        c->payload_type[i] = (char)(0x80 + i % 64);
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
        size_t old_len = n - 2 - strlen(c.collection);
        unsigned accepted = 0;
        for (size_t len = 0; len < n; len++) {
            memset(&d, 0xEE, sizeof(d));
            int rc = decode_copy(&d, buf, len);
            if (len == old_len) {
                CHECK_EQ_INT(rc, 0);
                struct ps_config want = c;
                want.collection[0] = '\0';
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

/* A stored record whose list fields hold numbers no choice has: decoding
 * must refuse it, as the forms index the choice tables with these
 * (ps_config_form on such a config reads past access_choices[]).
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

/* ---- submitted forms ------------------------------------------------------- */

static void test_apply_valid_changes(void)
{
    struct arena a;
    arena_init(&a);
    struct ps_config c, before;
    struct ps_form_error err;
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
    memset(&err, 0x55, sizeof(err));
    CHECK_EQ_INT(ps_config_apply_form(&c, &caps, submit(&a, kv), false, &a, &err), 0);
    CHECK(err.cond == NULL);
    CHECK(err.app == NULL);
    CHECK(err.feature == NULL);
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
    /* Fields the form did not name keep their values. */
    CHECK(c.deliver_notifications == before.deliver_notifications);
    CHECK(c.persist_items == before.persist_items);

    /* A second form changes only what it names. */
    struct ps_config mid = c;
    const char *kv2[] = {"pubsub#access_model", "authorize", "pubsub#title", NULL, NULL};
    CHECK_EQ_INT(ps_config_apply_form(&c, &caps, submit(&a, kv2), false, &a, &err), 0);
    CHECK_EQ_INT(c.access_model, PS_ACCESS_AUTHORIZE);
    CHECK_EQ_STR(c.title, ""); /* a field without a value clears a text */
    mid.access_model = PS_ACCESS_AUTHORIZE;
    mid.title[0] = '\0';
    CHECK(config_equal(&c, &mid));

    /* The longest title that fits. */
    char title[300];
    memset(title, 't', 255);
    title[255] = '\0';
    const char *kv3[] = {"pubsub#title", title, NULL};
    CHECK_EQ_INT(ps_config_apply_form(&c, &caps, submit(&a, kv3), false, &a, &err), 0);
    CHECK_EQ_STR(c.title, title);

    /* A form without FORM_TYPE or type attribute, and an empty form. */
    const char *kv4[] = {"pubsub#publish_model", "subscribers", NULL};
    CHECK_EQ_INT(
        ps_config_apply_form(&c, &caps, make_form(&a, NULL, NULL, kv4), false, &a, &err), 0);
    CHECK_EQ_INT(c.publish_model, PS_PUBLISH_SUBSCRIBERS);
    mid = c;
    CHECK_EQ_INT(ps_config_apply_form(&c, &caps, submit(&a, NULL), false, &a, &err), 0);
    CHECK(config_equal(&c, &mid));

    /* Non-persistent items with max_items 0 are fine. */
    const char *kv5[] = {"pubsub#persist_items", "0", "pubsub#max_items", "0", NULL};
    CHECK_EQ_INT(ps_config_apply_form(&c, &caps, submit(&a, kv5), false, &a, &err), 0);
    CHECK(!c.persist_items);
    CHECK_EQ_INT(c.max_items, 0);
    CHECK_EQ_INT(ps_config_keep(&c, &caps), 1);
    arena_free(&a);
}

/* Applies kv to a default config: the return code, with err filled, and
 * checks the config did not change when the form was refused. */
static int apply_refused(struct arena *a, const char *const *kv, struct ps_form_error *err)
{
    struct ps_config c, before;
    ps_config_defaults(&c, &caps);
    /* Not quite defaults, so a partial apply would show. */
    snprintf(c.title, sizeof(c.title), "%s", "Original");
    c.max_items = 7;
    before = c;
    int rc = ps_config_apply_form(&c, &caps, submit(a, kv), false, a, err);
    CHECK(rc < 0);
    CHECK(config_equal(&c, &before));
    return rc;
}

static void test_apply_caps(void)
{
    struct arena a;
    arena_init(&a);
    struct ps_config c;
    struct ps_form_error err;

    /* Over the cap: refused, not clamped; the title change in the same form
     * does not happen either. */
    const char *over[] = {"pubsub#title", "Changed", "pubsub#max_items", "101", NULL};
    CHECK_EQ_INT(apply_refused(&a, over, &err), HERALD_EINVAL);
    CHECK_EQ_STR(err.cond, "not-acceptable");
    CHECK_EQ_STR(err.type, "modify");
    CHECK(strstr(err.text, "100") != NULL);
    const char *huge[] = {"pubsub#max_items", "4294967294", NULL};
    CHECK_EQ_INT(apply_refused(&a, huge, &err), HERALD_EINVAL);
    CHECK_EQ_STR(err.cond, "not-acceptable");

    /* At the cap, and "max". */
    ps_config_defaults(&c, &caps);
    const char *at[] = {"pubsub#max_items", "100", NULL};
    CHECK_EQ_INT(ps_config_apply_form(&c, &caps, submit(&a, at), false, &a, &err), 0);
    CHECK_EQ_INT(c.max_items, 100);
    const char *max[] = {"pubsub#max_items", "max", NULL};
    CHECK_EQ_INT(ps_config_apply_form(&c, &caps, submit(&a, max), false, &a, &err), 0);
    CHECK_EQ_INT(c.max_items, PS_MAX_ITEMS_MAX);
    CHECK_EQ_INT(ps_config_keep(&c, &caps), caps.max_items);
    /* "max" is a max_items word only. */
    const char *max2[] = {"pubsub#item_expire", "max", NULL};
    CHECK_EQ_INT(apply_refused(&a, max2, &err), HERALD_EINVAL);
    const char *max3[] = {"pubsub#max_items", "MAX", NULL};
    CHECK_EQ_INT(apply_refused(&a, max3, &err), HERALD_EINVAL);

    /* Persistent items need at least one. */
    const char *zero[] = {"pubsub#max_items", "0", NULL};
    CHECK_EQ_INT(apply_refused(&a, zero, &err), HERALD_EINVAL);
    CHECK_EQ_STR(err.cond, "not-acceptable");

    /* Payload size: 1 up to the cap. */
    const char *p_over[] = {"pubsub#max_payload_size", "65537", NULL};
    CHECK_EQ_INT(apply_refused(&a, p_over, &err), HERALD_EINVAL);
    CHECK_EQ_STR(err.cond, "not-acceptable");
    const char *p_zero[] = {"pubsub#max_payload_size", "0", NULL};
    CHECK_EQ_INT(apply_refused(&a, p_zero, &err), HERALD_EINVAL);
    ps_config_defaults(&c, &caps);
    const char *p_ok[] = {"pubsub#max_payload_size", "65536", NULL};
    CHECK_EQ_INT(ps_config_apply_form(&c, &caps, submit(&a, p_ok), false, &a, &err), 0);
    CHECK_EQ_INT(c.max_payload_size, 65536);
    const char *p_one[] = {"pubsub#max_payload_size", "1", NULL};
    CHECK_EQ_INT(ps_config_apply_form(&c, &caps, submit(&a, p_one), false, &a, &err), 0);
    CHECK_EQ_INT(c.max_payload_size, 1);
    arena_free(&a);
}

static void test_apply_unsupported(void)
{
    struct arena a;
    arena_init(&a);
    struct ps_form_error err;

    /* XEP-0060 §8.1.3: an access model the service lacks (roster groups). */
    const char *roster[] = {"pubsub#title", "X", "pubsub#access_model", "roster", NULL};
    CHECK_EQ_INT(apply_refused(&a, roster, &err), HERALD_ENOTIMPL);
    CHECK_EQ_STR(err.cond, "not-acceptable");
    CHECK_EQ_STR(err.type, "modify");
    CHECK_EQ_STR(err.app, "unsupported-access-model");


    const char *pbd[] = {"pubsub#presence_based_delivery", "1", NULL};
    CHECK_EQ_INT(apply_refused(&a, pbd, &err), HERALD_ENOTIMPL);
    CHECK_EQ_STR(err.cond, "feature-not-implemented");
    CHECK_EQ_STR(err.app, "unsupported");
    CHECK(err.feature != NULL);
    const char *pbd2[] = {"pubsub#presence_based_delivery", "true", NULL};
    CHECK_EQ_INT(apply_refused(&a, pbd2, &err), HERALD_ENOTIMPL);

    const char *slp[] = {"pubsub#send_last_published_item", "on_sub_and_presence", NULL};
    CHECK_EQ_INT(apply_refused(&a, slp, &err), HERALD_ENOTIMPL);
    CHECK_EQ_STR(err.app, "unsupported");
    CHECK(err.feature != NULL);
    arena_free(&a);
}

/* node_type is fixed at creation: a creation form may make a collection,
 * a configuration form may only repeat the current type. */
static void test_apply_node_type_and_collection(void)
{
    struct arena a;
    arena_init(&a);
    struct ps_config c, before;
    struct ps_form_error err;
    const char *coll[] = {"pubsub#node_type", "collection", NULL};
    const char *leaf[] = {"pubsub#node_type", "leaf", NULL};

    ps_config_defaults(&c, &caps);
    before = c;
    CHECK_EQ_INT(ps_config_apply_form(&c, &caps, submit(&a, coll), false, &a, &err), HERALD_EINVAL);
    CHECK_EQ_STR(err.cond, "not-acceptable");
    CHECK(config_equal(&c, &before));
    CHECK_EQ_INT(ps_config_apply_form(&c, &caps, submit(&a, leaf), false, &a, &err), 0);
    CHECK_EQ_INT(c.node_type, PS_LEAF);

    CHECK_EQ_INT(ps_config_apply_form(&c, &caps, submit(&a, coll), true, &a, &err), 0);
    CHECK(err.cond == NULL);
    CHECK_EQ_INT(c.node_type, PS_COLLECTION);
    CHECK_EQ_INT(ps_config_apply_form(&c, &caps, submit(&a, coll), false, &a, &err), 0);
    before = c;
    CHECK_EQ_INT(ps_config_apply_form(&c, &caps, submit(&a, leaf), false, &a, &err), HERALD_EINVAL);
    CHECK_EQ_STR(err.cond, "not-acceptable");
    CHECK(config_equal(&c, &before));

    /* At creation the other rules still hold. */
    ps_config_defaults(&c, &caps);
    before = c;
    const char *pres[] = {"pubsub#node_type", "collection", "pubsub#access_model", "roster",
                          NULL};
    CHECK_EQ_INT(ps_config_apply_form(&c, &caps, submit(&a, pres), true, &a, &err),
                 HERALD_ENOTIMPL);
    CHECK_EQ_STR(err.app, "unsupported-access-model");
    CHECK(config_equal(&c, &before));
    const char *over[] = {"pubsub#node_type", "collection", "pubsub#max_items", "1000", NULL};
    CHECK_EQ_INT(ps_config_apply_form(&c, &caps, submit(&a, over), true, &a, &err), HERALD_EINVAL);
    CHECK_EQ_STR(err.cond, "not-acceptable");
    CHECK(config_equal(&c, &before));

    /* pubsub#collection is a text field (the service checks the name). */
    const char *parent[] = {"pubsub#collection", "parent/node", NULL};
    CHECK_EQ_INT(ps_config_apply_form(&c, &caps, submit(&a, parent), false, &a, &err), 0);
    CHECK_EQ_STR(c.collection, "parent/node");
    char name[300];
    memset(name, 'n', 256);
    name[256] = '\0';
    const char *toolong[] = {"pubsub#collection", name, NULL};
    before = c;
    CHECK_EQ_INT(ps_config_apply_form(&c, &caps, submit(&a, toolong), false, &a, &err),
                 HERALD_EINVAL);
    CHECK(config_equal(&c, &before));
    const char *none[] = {"pubsub#collection", "", NULL};
    CHECK_EQ_INT(ps_config_apply_form(&c, &caps, submit(&a, none), false, &a, &err), 0);
    CHECK_EQ_STR(c.collection, "");
    arena_free(&a);
}

static void test_apply_bad_values(void)
{
    struct arena a;
    arena_init(&a);
    struct ps_form_error err;

    const char *unknown[] = {"pubsub#title", "X", "pubsub#bogus", "1", NULL};
    CHECK_EQ_INT(apply_refused(&a, unknown, &err), HERALD_EINVAL);
    CHECK_EQ_STR(err.cond, "not-acceptable");
    CHECK(strstr(err.text, "pubsub#bogus") != NULL);

    static const char *const bad_bools[] = {"yes", "no", "TRUE", "2", "", " 1", "1 ", "01"};
    for (size_t i = 0; i < sizeof(bad_bools) / sizeof(bad_bools[0]); i++) {
        const char *kv[] = {"pubsub#deliver_payloads", bad_bools[i], NULL};
        int rc = apply_refused(&a, kv, &err);
        if (rc != HERALD_EINVAL)
            fprintf(stderr, "    boolean '%s' gave %d\n", bad_bools[i], rc);
        CHECK_EQ_INT(rc, HERALD_EINVAL);
        CHECK_EQ_STR(err.cond, "not-acceptable");
    }
    const char *nobool[] = {"pubsub#persist_items", NULL, NULL}; /* no <value/> */
    CHECK_EQ_INT(apply_refused(&a, nobool, &err), HERALD_EINVAL);

    static const char *const bad_nums[] = {"", "-1", "abc", "12abc", "1.5", "4294967295",
                                           "4294967296", "99999999999999999999", "0x10"};
    for (size_t i = 0; i < sizeof(bad_nums) / sizeof(bad_nums[0]); i++) {
        const char *kv[] = {"pubsub#item_expire", bad_nums[i], NULL};
        int rc = apply_refused(&a, kv, &err);
        if (rc != HERALD_EINVAL)
            fprintf(stderr, "    number '%s' gave %d\n", bad_nums[i], rc);
        CHECK_EQ_INT(rc, HERALD_EINVAL);
    }
    const char *neg[] = {"pubsub#max_items", "-5", NULL};
    CHECK_EQ_INT(apply_refused(&a, neg, &err), HERALD_EINVAL);

    const char *list[] = {"pubsub#access_model", "everyone", NULL};
    CHECK_EQ_INT(apply_refused(&a, list, &err), HERALD_EINVAL);
    CHECK_EQ_STR(err.cond, "not-acceptable");
    const char *list2[] = {"pubsub#notification_type", "chat", NULL};
    CHECK_EQ_INT(apply_refused(&a, list2, &err), HERALD_EINVAL);

    char title[300];
    memset(title, 't', 256);
    title[256] = '\0';
    const char *longt[] = {"pubsub#title", title, NULL};
    CHECK_EQ_INT(apply_refused(&a, longt, &err), HERALD_EINVAL);
    CHECK_EQ_STR(err.cond, "not-acceptable");
    const char *longp[] = {"pubsub#type", title, NULL};
    CHECK_EQ_INT(apply_refused(&a, longp, &err), HERALD_EINVAL);

    /* A good field after a bad one is not applied either. */
    const char *mixed[] = {"pubsub#subscribe", "maybe", "pubsub#title", "New", NULL};
    CHECK_EQ_INT(apply_refused(&a, mixed, &err), HERALD_EINVAL);
    arena_free(&a);
}

static void test_apply_cancel(void)
{
    struct arena a;
    arena_init(&a);
    struct ps_config c, before;
    struct ps_form_error err;
    ps_config_defaults(&c, &caps);
    before = c;
    /* Valid, invalid and unsupported values alike: a cancel changes nothing
     * and is not an error. */
    const char *kv[] = {"pubsub#title", "Changed", "pubsub#max_items", "5",
                        "pubsub#access_model", "presence", "pubsub#bogus", "x", NULL};
    struct xnode *x = make_form(&a, "cancel", NS_NODE_CONFIG, kv);
    CHECK_EQ_INT(ps_config_apply_form(&c, &caps, x, false, &a, &err), 0);
    CHECK(config_equal(&c, &before));
    CHECK(err.cond == NULL);
    const char *kv2[] = {"pubsub#title", "Changed", NULL};
    x = make_form(&a, "cancel", NULL, kv2);
    CHECK_EQ_INT(ps_config_apply_form(&c, &caps, x, false, &a, &err), 0);
    CHECK(config_equal(&c, &before));
    /* Also at creation. */
    const char *kv3[] = {"pubsub#node_type", "collection", NULL};
    x = make_form(&a, "cancel", NS_NODE_CONFIG, kv3);
    CHECK_EQ_INT(ps_config_apply_form(&c, &caps, x, true, &a, &err), 0);
    CHECK(config_equal(&c, &before));
    arena_free(&a);
}

/* ---- publish-options preconditions ----------------------------------------- */

static int precond(struct arena *a, const struct ps_config *c, const char *const *kv)
{
    return ps_config_check_preconditions(c, &caps, make_form(a, "submit", NS_PUBLISH_OPTIONS, kv),
                                         a);
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
    CHECK_EQ_INT(precond(&a, &c, NULL), 0);
    const char *eq[] = {"pubsub#access_model", "whitelist",
                        "pubsub#persist_items", "true",
                        "pubsub#deliver_payloads", "1",
                        "pubsub#notify_config", "false",
                        "pubsub#max_items", "10",
                        "pubsub#item_expire", "0",
                        "pubsub#title", "My <node>",
                        "pubsub#type", "",
                        "pubsub#node_type", "leaf",
                        "pubsub#send_last_published_item", "never",
                        NULL};
    CHECK_EQ_INT(precond(&a, &c, eq), 0);

    /* Different values fail. */
    const char *d1[] = {"pubsub#access_model", "open", NULL};
    CHECK_EQ_INT(precond(&a, &c, d1), -1);
    const char *d2[] = {"pubsub#persist_items", "0", NULL};
    CHECK_EQ_INT(precond(&a, &c, d2), -1);
    const char *d3[] = {"pubsub#max_items", "11", NULL};
    CHECK_EQ_INT(precond(&a, &c, d3), -1);
    const char *d4[] = {"pubsub#title", "My <node", NULL};
    CHECK_EQ_INT(precond(&a, &c, d4), -1);
    const char *d5[] = {"pubsub#title", "My <node> ", NULL};
    CHECK_EQ_INT(precond(&a, &c, d5), -1);
    const char *d6[] = {"pubsub#access_model", "whitelist", "pubsub#max_items", "max", NULL};
    CHECK_EQ_INT(precond(&a, &c, d6), -1);
    /* Unknown fields, unparseable and unsupported values fail. */
    const char *u1[] = {"pubsub#bogus", "1", NULL};
    CHECK_EQ_INT(precond(&a, &c, u1), -1);
    const char *u2[] = {"pubsub#persist_items", "yes", NULL};
    CHECK_EQ_INT(precond(&a, &c, u2), -1);
    const char *u3[] = {"pubsub#access_model", "presence", NULL};
    CHECK_EQ_INT(precond(&a, &c, u3), -1);
    const char *u4[] = {"pubsub#max_items", "ten", NULL};
    CHECK_EQ_INT(precond(&a, &c, u4), -1);

    /* "max" matches a node configured with max. */
    c.max_items = PS_MAX_ITEMS_MAX;
    const char *m[] = {"pubsub#max_items", "max", NULL};
    CHECK_EQ_INT(precond(&a, &c, m), 0);

    /* A shorter title after a longer one (bytes past the NUL differ). */
    snprintf(c.title, sizeof(c.title), "%s", "a long title that was here first");
    const char *tl[] = {"pubsub#title", "short", NULL};
    struct ps_form_error err;
    CHECK_EQ_INT(ps_config_apply_form(&c, &caps, submit(&a, tl), false, &a, &err), 0);
    CHECK_EQ_STR(c.title, "short");
    CHECK_EQ_INT(precond(&a, &c, tl), 0);
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

    struct xnode *x = ps_config_form(&a, &c, &caps);
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

    /* Serialized: escaped, in the data forms namespace. */
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
    }
    buf_free(&b);

    /* max_items "max" shows as the word. */
    c.max_items = PS_MAX_ITEMS_MAX;
    x = ps_config_form(&a, &c, &caps);
    CHECK(x != NULL);
    if (x)
        CHECK_EQ_STR(field_val(&a, x, "pubsub#max_items"), "max");

    /* The form sent back as it is configures the same node. */
    c.persist_items = true;
    x = ps_config_form(&a, &c, &caps);
    if (x) {
        xml_del_attr(x, "type");
        CHECK_EQ_INT(xml_set_attr(&a, x, "type", "submit"), 0);
        struct ps_config back;
        struct ps_form_error err;
        ps_config_defaults(&back, &caps);
        CHECK_EQ_INT(ps_config_apply_form(&back, &caps, x, false, &a, &err), 0);
        CHECK(config_equal(&back, &c));
        /* And every one of its values is a satisfied precondition. */
        CHECK_EQ_INT(ps_config_check_preconditions(&c, &caps, x, &a), 0);
    }
    /* With the longest titles. */
    unusual_config(&c);
    c.node_type = PS_LEAF;
    c.send_last = PS_SEND_ON_SUB;
    c.presence_based_delivery = false;
    x = ps_config_form(&a, &c, &caps);
    CHECK(x != NULL);
    if (x)
        check_fields_match(&a, x, &c);
out:
    arena_free(&a);
}

static void test_metadata_form(void)
{
    struct arena a;
    arena_init(&a);
    struct ps_config c;
    ps_config_defaults(&c, &caps);
    snprintf(c.title, sizeof(c.title), "%s", "Meta 'title'");
    snprintf(c.payload_type, sizeof(c.payload_type), "%s", "urn:example");
    c.access_model = PS_ACCESS_WHITELIST;
    c.max_items = PS_MAX_ITEMS_MAX;
    static const char *const owners[] = {"alice@localhost", "bob@example.org"};

    struct xnode *x = ps_config_metadata(&a, &c, &caps, 1700000000123ull, owners, 2);
    CHECK(x != NULL);
    if (x == NULL)
        goto out;
    CHECK_EQ_STR(x->ns, NS_DATA);
    CHECK_EQ_STR(xml_attr(x, "type"), "result");
    CHECK_EQ_STR(field_val(&a, x, "FORM_TYPE"), NS_META_DATA);
    CHECK_EQ_STR(ps_form_type(&a, x), NS_META_DATA);
    check_fields_match(&a, x, &c);
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
    }
    buf_free(&b);

    /* Non-persistent items: one is kept; no owners: an empty owner field. */
    c.persist_items = false;
    c.max_items = 5;
    x = ps_config_metadata(&a, &c, &caps, 0, NULL, 0);
    CHECK(x != NULL);
    if (x) {
        CHECK_EQ_STR(field_val(&a, x, "pubsub#effective_max_items"), "1");
        CHECK_EQ_STR(field_val(&a, x, "pubsub#max_items"), "5");
        CHECK_EQ_STR(field_val(&a, x, "pubsub#creation_date"), "1970-01-01T00:00:00Z");
        CHECK_EQ_STR(field_val(&a, x, "pubsub#owner"), "(no value)");
    }
out:
    arena_free(&a);
}


TEST_MAIN(TEST_CASE(test_defaults), TEST_CASE(test_keep), TEST_CASE(test_encode_decode_roundtrip),
          TEST_CASE(test_encode_small_buffer), TEST_CASE(test_decode_truncated),
          TEST_CASE(test_decode_garbage),
          TEST_CASE(test_apply_valid_changes), TEST_CASE(test_apply_caps),
          TEST_CASE(test_apply_unsupported), TEST_CASE(test_apply_node_type_and_collection),
          TEST_CASE(test_apply_bad_values),
          TEST_CASE(test_apply_cancel), TEST_CASE(test_preconditions), TEST_CASE(test_config_form),
          TEST_CASE(test_metadata_form), TEST_CASE(test_decode_rejects_out_of_range_lists))
