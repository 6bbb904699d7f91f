/* test_cluster_entry.c - the cluster log's entry format (broker/cluster/
 * entry.c): every kind round-trips field for field; absent strings stay
 * absent; an entry of an unknown version is refused as such (an instance
 * stops rather than skip it); every truncation and any trailing byte is
 * refused, never read past. */
#include <stdlib.h>
#include <string.h>

#include "entry.h"
#include "errors.h"
#include "test.h"

static void header(struct cl_entry *e, enum cl_kind k)
{
    memset(e, 0, sizeof(*e));
    e->kind = k;
    e->origin = "herald-2";
    e->boot = 0x0102030405060708ull;
    e->req = 77;
    e->time_ms = 1765000000123ull;
    e->seed = 0xfedcba9876543210ull;
}

static void same_header(const struct cl_entry *a, const struct cl_entry *b)
{
    CHECK_EQ_INT(a->kind, b->kind);
    CHECK_EQ_STR(a->origin, b->origin);
    CHECK(a->boot == b->boot);
    CHECK(a->req == b->req);
    CHECK(a->time_ms == b->time_ms);
    CHECK(a->seed == b->seed);
}

/* Encodes e, decodes it into out (store to free), and checks that every
 * shorter prefix and a longer copy are refused. */
static int round_trip(const struct cl_entry *e, struct cl_entry *out, char **store)
{
    uint8_t *data = NULL;
    size_t len = 0;
    CHECK_EQ_INT(cl_entry_encode(e, &data, &len), 0);
    if (data == NULL)
        return -1;
    for (size_t cut = 0; cut < len; cut++) {
        struct cl_entry tmp;
        char *st = NULL;
        int rc = cl_entry_decode(data, cut, &tmp, &st);
        CHECK(rc == HERALD_EINVAL);
        CHECK(st == NULL);
        free(st);
    }
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, data, len);
    longer[len] = 0;
    struct cl_entry tmp;
    char *st = NULL;
    CHECK_EQ_INT(cl_entry_decode(longer, len + 1, &tmp, &st), HERALD_EINVAL);
    free(st);
    free(longer);
    int rc = cl_entry_decode(data, len, out, store);
    CHECK_EQ_INT(rc, 0);
    free(data);
    return rc;
}

static void iq_round_trip(void)
{
    struct cl_entry e, d;
    header(&e, CL_IQ);
    e.jid = "alice@localhost/phone";
    static const char st[] = "<iq type='set' id='a1'><pubsub xmlns='x'/>\0binary</iq>";
    e.data = st;
    e.data_len = sizeof(st) - 1;
    char *store = NULL;
    if (round_trip(&e, &d, &store) != 0)
        return;
    same_header(&e, &d);
    CHECK_EQ_STR(d.jid, e.jid);
    CHECK_EQ_MEM(d.data, d.data_len, st, sizeof(st) - 1);
    free(store);
}

static void rest_round_trip(void)
{
    struct cl_entry e, d;
    header(&e, CL_REST);
    e.jid = "bob@localhost";
    e.scopes = 5;
    e.method = 3;
    e.path = "/v1/nodes/a%20b/items";
    e.query = NULL;
    e.content_type = "application/json";
    e.data = "{\"v\":1}";
    e.data_len = 7;
    char *store = NULL;
    if (round_trip(&e, &d, &store) != 0)
        return;
    same_header(&e, &d);
    CHECK_EQ_STR(d.jid, "bob@localhost");
    CHECK_EQ_INT(d.scopes, 5);
    CHECK_EQ_INT(d.method, 3);
    CHECK_EQ_STR(d.path, e.path);
    CHECK(d.query == NULL);
    CHECK_EQ_STR(d.content_type, "application/json");
    CHECK_EQ_MEM(d.data, d.data_len, "{\"v\":1}", 7);
    free(store);
    /* An empty query and no body are not the same as absent ones. */
    e.query = "";
    e.content_type = NULL;
    e.data = NULL;
    e.data_len = 0;
    if (round_trip(&e, &d, &store) != 0)
        return;
    CHECK(d.query != NULL && d.query[0] == '\0');
    CHECK(d.content_type == NULL);
    CHECK(d.data != NULL && d.data_len == 0);
    free(store);
}

static void account_round_trip(void)
{
    struct cl_entry e, d;
    header(&e, CL_USER_PUT);
    e.jid = "carol@localhost";
    e.create = true;
    e.user.created = 123;
    e.user.generation = 0xabcdef;
    e.user.sha1.iterations = 4096;
    e.user.sha256.iterations = 8192;
    memset(e.user.sha1.salt, 0x11, sizeof(e.user.sha1.salt));
    memset(e.user.sha256.stored_key, 0x22, sizeof(e.user.sha256.stored_key));
    memset(e.user.sha256.server_key, 0x33, sizeof(e.user.sha256.server_key));
    char *store = NULL;
    if (round_trip(&e, &d, &store) != 0)
        return;
    same_header(&e, &d);
    CHECK_EQ_STR(d.jid, "carol@localhost");
    CHECK(d.create);
    CHECK(memcmp(&d.user, &e.user, sizeof(e.user)) == 0);
    free(store);

    header(&e, CL_USER_DEL);
    e.jid = "carol@localhost";
    if (round_trip(&e, &d, &store) != 0)
        return;
    CHECK_EQ_INT(d.kind, CL_USER_DEL);
    CHECK_EQ_STR(d.jid, "carol@localhost");
    free(store);
}

static void token_round_trip(void)
{
    struct cl_entry *e = calloc(1, sizeof(*e)), *d = calloc(1, sizeof(*d));
    header(e, CL_TOKEN_PUT);
    memcpy(e->token.id, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    memset(e->token.hash, 0x5a, sizeof(e->token.hash));
    e->token.scopes = 7;
    e->token.created = 1;
    e->token.expires = 2;
    e->token.generation = 3;
    strcpy(e->token.jid, "dave@localhost");
    char *store = NULL;
    if (round_trip(e, d, &store) == 0) {
        CHECK(memcmp(&d->token, &e->token, sizeof(e->token)) == 0);
        free(store);
    }
    header(e, CL_TOKEN_DEL);
    memcpy(e->token.id, "abcdefgh", 8);
    if (round_trip(e, d, &store) == 0) {
        CHECK(memcmp(d->token.id, "abcdefgh", 8) == 0);
        free(store);
    }
    free(e);
    free(d);
}

static void cursor_round_trip(void)
{
    struct cl_entry e, d;
    header(&e, CL_CURSOR);
    e.jid = "erin@localhost/phone";
    e.node_id = 42;
    e.cursor = 0xffffffffffull + 7;
    char *store = NULL;
    if (round_trip(&e, &d, &store) != 0)
        return;
    same_header(&e, &d);
    CHECK_EQ_STR(d.jid, e.jid);
    CHECK(d.node_id == 42);
    CHECK(d.cursor == e.cursor);
    free(store);
}

static void versions_and_garbage(void)
{
    struct cl_entry e, d;
    header(&e, CL_USER_DEL);
    e.jid = "x@localhost";
    uint8_t *data = NULL;
    size_t len = 0;
    CHECK_EQ_INT(cl_entry_encode(&e, &data, &len), 0);
    char *store = NULL;
    data[3] = CL_ENTRY_VERSION + 1;
    CHECK_EQ_INT(cl_entry_decode(data, len, &d, &store), HERALD_ESCHEMA);
    data[3] = CL_ENTRY_VERSION;
    data[4] = 99; /* an unknown kind */
    CHECK_EQ_INT(cl_entry_decode(data, len, &d, &store), HERALD_EINVAL);
    data[0] = 'X';
    CHECK_EQ_INT(cl_entry_decode(data, len, &d, &store), HERALD_EINVAL);
    CHECK(store == NULL);
    free(data);
    /* A NUL inside a JID is refused (strings are C strings once decoded). */
    header(&e, CL_USER_DEL);
    e.jid = "nul@localhost";
    CHECK_EQ_INT(cl_entry_encode(&e, &data, &len), 0);
    uint8_t *p = memmem(data, len, "nul@", 4);
    CHECK(p != NULL);
    if (p)
        p[1] = 0;
    CHECK_EQ_INT(cl_entry_decode(data, len, &d, &store), HERALD_EINVAL);
    free(data);
    /* An unknown kind cannot be encoded either. */
    e.kind = (enum cl_kind)42;
    CHECK_EQ_INT(cl_entry_encode(&e, &data, &len), HERALD_EINVAL);
}

TEST_MAIN(TEST_CASE(iq_round_trip), TEST_CASE(rest_round_trip), TEST_CASE(account_round_trip),
          TEST_CASE(token_round_trip), TEST_CASE(cursor_round_trip),
          TEST_CASE(versions_and_garbage))
