/* test_federation.c - the pieces of federation that need no network:
 * dialback keys (XEP-0185), the configuration's named sections, and what a
 * certificate says about its holder (tls_cert.c). */
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "s2s.h"
#include "test.h"
#include "tls.h"

static void test_dialback_key_vector(void)
{
    unsigned char secret[32];
    for (int i = 0; i < 32; i++)
        secret[i] = (unsigned char)i;
    char key[65];
    s2s_dialback_key(secret, "b.test", "a.test", "abc", key);
    /* hex(HMAC-SHA256(SHA-256(secret), "b.test a.test abc")), computed
     * independently with Python's hmac and hashlib. */
    CHECK_EQ_STR(key, "a0b6ae8a1f8f605e6d6324601ecf9078a80c6260640bf649d2f34b40382b3a6f");
    char other[65];
    s2s_dialback_key(secret, "b.test", "a.test", "abd", other);
    CHECK(strcmp(key, other) != 0);
    s2s_dialback_key(secret, "a.test", "b.test", "abc", other);
    CHECK(strcmp(key, other) != 0); /* the direction is part of the key */
}

static int load(struct config *c, const char *text, char *err, size_t errlen)
{
    char path[] = "/tmp/herald-test-fed-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -2;
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    config_defaults(c);
    int rc = config_load(c, path, err, errlen);
    if (rc == 0)
        rc = config_validate(c, err, errlen);
    unlink(path);
    return rc;
}

static void test_named_sections(void)
{
    struct config c;
    char err[512] = "";
    int rc = load(&c,
                  "[server]\ndomain = herald.test\n"
                  "[s2s]\nport = 5270\nsecure_auth = true\n"
                  "[s2s:prosody.test]\nhost = 127.0.0.2\nport = 5299\n"
                  "[component:events.herald.test]\nsecret = s3cret\n"
                  "[disco]\nfeatures = urn:a urn:b\nitems = events.herald.test\n"
                  "[disco_node:http://openadr.org/openadr2]\nfeatures = x\nitems = a.test, b.test\n",
                  err, sizeof(err));
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_STR(err, "");
    CHECK_EQ_INT(c.s2s_port, 5270);
    CHECK(c.s2s_secure_auth);
    const struct config_peer *p = config_peer(&c, "prosody.test");
    CHECK(p != NULL);
    if (p) {
        CHECK_EQ_STR(p->host, "127.0.0.2");
        CHECK_EQ_INT(p->port, 5299);
    }
    CHECK(config_peer(&c, "other.test") == NULL);
    const struct config_component *k = config_component(&c, "events.herald.test");
    CHECK(k != NULL && k->secret && strcmp(k->secret, "s3cret") == 0);
    CHECK(c.disco_nodes != NULL && strcmp(c.disco_nodes->node, "http://openadr.org/openadr2") == 0);
    CHECK(c.disco_nodes && c.disco_nodes->items && strcmp(c.disco_nodes->items, "a.test, b.test") == 0);
    config_free(&c);
}

static void test_named_section_errors(void)
{
    struct config c;
    char err[512];
    static const struct {
        const char *ini, *want;
    } cases[] = {
        {"[component:events.test]\n[s2s]\nport=1\n", NULL}, /* an empty section makes nothing */
        {"[component:events.test]\nsecret =\n", "needs a secret"},
        {"[component:localhost]\nsecret = x\n", "the server's own"},
        {"[component:Bad..Domain]\nsecret = x\n", "prepared domain"},
        {"[component:events.test]\ncolour = red\n", "unknown option"},
        {"[s2s:peer.test]\nport = 5269\n", "needs a host"},
        {"[s2s:peer.test]\nhost = h\nport = 0\n", "port from 1 to 65535"},
        {"[disco]\nitems = ok.test not@a@jid\n", "not a JID"},
        {"[disco_node:n]\nitems = @bad\n", "not a JID"},
        {"[c2s]\nclient_cert_identity = dn\n", "xmppaddr, cn or email"},
        {"[tls]\nmin_version = SSLv3\n", "TLSv1.2 or TLSv1.3"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        int rc = load(&c, cases[i].ini, err, sizeof(err));
        if (cases[i].want == NULL) {
            CHECK_EQ_INT(rc, 0);
        } else {
            CHECK_EQ_INT(rc, -1);
            if (strstr(err, cases[i].want) == NULL)
                fprintf(stderr, "  case %zu: '%s' lacks '%s'\n", i, err, cases[i].want);
            CHECK(strstr(err, cases[i].want) != NULL);
        }
        config_free(&c);
    }
}

/* A certificate (not signed by anyone: tls_cert.c reads names only) with
 * the given subject CN and subjectAltName entries. */
static X509 *make_cert(const char *cn, const char *san)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_get_subject_name(x);
    if (cn)
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    if (san) {
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
        CHECK(ext != NULL);
        if (ext) {
            X509_add_ext(x, ext, -1);
            X509_EXTENSION_free(ext);
        }
    }
    return x;
}

struct seen {
    char ids[4][256];
    int n;
};

static void collect(void *ud, const char *id)
{
    struct seen *s = ud;
    if (s->n < 4)
        snprintf(s->ids[s->n++], sizeof(s->ids[0]), "%s", id);
}

static void test_cert_identities(void)
{
    X509 *x = make_cert("alice", "otherName:1.3.6.1.5.5.7.8.5;UTF8:alice@herald.test,"
                                 "email:alice@example.org,DNS:herald.test");
    struct seen s = {0};
    tls_cert_identities(x, "xmppaddr", collect, &s);
    CHECK_EQ_INT(s.n, 1);
    CHECK_EQ_STR(s.ids[0], "alice@herald.test");
    memset(&s, 0, sizeof(s));
    tls_cert_identities(x, "cn", collect, &s);
    CHECK_EQ_INT(s.n, 1);
    CHECK_EQ_STR(s.ids[0], "alice");
    memset(&s, 0, sizeof(s));
    tls_cert_identities(x, "email", collect, &s);
    CHECK_EQ_INT(s.n, 1);
    CHECK_EQ_STR(s.ids[0], "alice@example.org");
    X509_free(x);
}

static void test_cert_names_domain(void)
{
    X509 *dns = make_cert("ignored.test", "DNS:herald.test,DNS:*.herald.test");
    CHECK(tls_cert_names_domain(dns, "herald.test"));
    CHECK(tls_cert_names_domain(dns, "pubsub.herald.test"));  /* RFC 6125 wildcard */
    CHECK(!tls_cert_names_domain(dns, "a.pubsub.herald.test")); /* one label only */
    CHECK(!tls_cert_names_domain(dns, "ignored.test")); /* a CN is not read beside DNS names */
    CHECK(!tls_cert_names_domain(dns, "evil.test"));
    X509_free(dns);
    X509 *xmpp = make_cert(NULL, "otherName:1.3.6.1.5.5.7.8.5;UTF8:peer.test");
    CHECK(tls_cert_names_domain(xmpp, "peer.test"));
    CHECK(!tls_cert_names_domain(xmpp, "other.test"));
    X509_free(xmpp);
    X509 *srv = make_cert(NULL, "otherName:1.3.6.1.5.5.7.8.7;IA5:_xmpp-server.srv.test");
    CHECK(tls_cert_names_domain(srv, "srv.test"));
    X509_free(srv);
    X509 *cn = make_cert("cn-only.test", NULL);
    CHECK(tls_cert_names_domain(cn, "cn-only.test")); /* no DNS name: the CN */
    X509_free(cn);
}

TEST_MAIN(TEST_CASE(test_dialback_key_vector), TEST_CASE(test_named_sections),
          TEST_CASE(test_named_section_errors), TEST_CASE(test_cert_identities),
          TEST_CASE(test_cert_names_domain))
