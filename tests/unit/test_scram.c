/* test_scram.c - SCRAM key derivation (scram.c, RFC 5802 §3, RFC 5803).
 *
 * scram.c's derive() is private, so the test carries its own reference
 * derivation written directly against OpenSSL. The reference is first proven
 * against the published exchanges of RFC 5802 §5 (SCRAM-SHA-1) and RFC 7677 §3
 * (SCRAM-SHA-256): from the RFC's salt and password it must reproduce the
 * RFC's ClientProof and ServerSignature. Then scram.c is checked against the
 * reference: keys made by scram_make_user, scram_check_password on a record
 * holding the RFC 7677 salt and reference keys, and the authPassword strings.
 * A wrong derive() fails these checks.
 *
 * RFC 5802's salt decodes to 12 bytes while struct store_scram holds exactly
 * STORE_SALT_LEN (16), so that vector validates the reference (SHA-1 path)
 * only; scram.c's SHA-1 keys are checked against the reference with the
 * salts scram_make_user picks. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "scram.h"
#include "test.h"

struct ref_keys {
    unsigned char client_key[32], stored_key[32], server_key[32];
    size_t len;
};

static const EVP_MD *ref_md(enum scram_hash h) { return h == SCRAM_SHA1 ? EVP_sha1() : EVP_sha256(); }

/* RFC 5802 §3, written out step by step. */
static void ref_derive(enum scram_hash h, const char *pw, size_t pwlen, const unsigned char *salt,
                       size_t saltlen, unsigned iter, struct ref_keys *k)
{
    const EVP_MD *md = ref_md(h);
    size_t len = (size_t)EVP_MD_size(md);
    unsigned char salted[32];
    unsigned int outl;
    memset(k, 0, sizeof(*k));
    k->len = len;
    CHECK_EQ_INT(PKCS5_PBKDF2_HMAC(pw, (int)pwlen, salt, (int)saltlen, (int)iter, md, (int)len,
                                   salted),
                 1);
    CHECK(HMAC(md, salted, (int)len, (const unsigned char *)"Client Key", 10, k->client_key,
               &outl) != NULL);
    CHECK_EQ_INT(outl, len);
    CHECK_EQ_INT(EVP_Digest(k->client_key, len, k->stored_key, &outl, md, NULL), 1);
    CHECK_EQ_INT(outl, len);
    CHECK(HMAC(md, salted, (int)len, (const unsigned char *)"Server Key", 10, k->server_key,
               &outl) != NULL);
}

static size_t b64_decode(const char *in, unsigned char *out)
{
    size_t n = strlen(in);
    int len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
    CHECK(len >= 0);
    /* EVP_DecodeBlock counts padding as zero bytes. */
    if (n >= 1 && in[n - 1] == '=')
        len--;
    if (n >= 2 && in[n - 2] == '=')
        len--;
    return (size_t)len;
}

static void b64_encode(const unsigned char *in, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

/* ClientProof and ServerSignature for an AuthMessage (RFC 5802 §3). */
static void ref_proofs(enum scram_hash h, const struct ref_keys *k, const char *auth_message,
                       char *proof_b64, char *sig_b64)
{
    const EVP_MD *md = ref_md(h);
    unsigned char csig[32], proof[32], ssig[32];
    unsigned int outl;
    HMAC(md, k->stored_key, (int)k->len, (const unsigned char *)auth_message,
         strlen(auth_message), csig, &outl);
    for (size_t i = 0; i < k->len; i++)
        proof[i] = k->client_key[i] ^ csig[i];
    HMAC(md, k->server_key, (int)k->len, (const unsigned char *)auth_message,
         strlen(auth_message), ssig, &outl);
    b64_encode(proof, k->len, proof_b64);
    b64_encode(ssig, k->len, sig_b64);
}

struct vector {
    enum scram_hash h;
    const char *salt_b64;
    const char *client_first_bare, *server_first, *client_final_no_proof;
    const char *proof, *server_sig;
};

static const struct vector rfc5802 = {
    SCRAM_SHA1,
    "QSXCR+Q6sek8bf92",
    "n=user,r=fyko+d2lbbFgONRv9qkxdawL",
    "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
    "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j",
    "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    "rmF9pqV8S7suAoZWja4dJRkFsKQ=",
};

static const struct vector rfc7677 = {
    SCRAM_SHA256,
    "W22ZaJ0SNY7soEsUEjb6gQ==",
    "n=user,r=rOprNGfwEbeRWgbNEkqO",
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
};

/* Derives the vector's keys with the reference and checks them against the
 * RFC's proof and signature. Returns the salt length; salt gets the bytes. */
static size_t check_vector(const struct vector *v, struct ref_keys *k, unsigned char salt[64])
{
    size_t saltlen = b64_decode(v->salt_b64, salt);
    ref_derive(v->h, "pencil", 6, salt, saltlen, 4096, k);
    char auth[512], proof[64], sig[64];
    snprintf(auth, sizeof(auth), "%s,%s,%s", v->client_first_bare, v->server_first,
             v->client_final_no_proof);
    ref_proofs(v->h, k, auth, proof, sig);
    CHECK_EQ_STR(proof, v->proof);
    CHECK_EQ_STR(sig, v->server_sig);
    return saltlen;
}

static void test_reference_matches_rfcs(void)
{
    struct ref_keys k;
    unsigned char salt[64];
    CHECK_EQ_INT(check_vector(&rfc5802, &k, salt), 12);
    /* RFC 5803 §4's authPassword example is this exchange's keys. */
    char stored[64], server[64];
    b64_encode(k.stored_key, 20, stored);
    b64_encode(k.server_key, 20, server);
    CHECK_EQ_STR(stored, "6dlGYMOdZcOPutkcNY8U2g7vK9Y=");
    CHECK_EQ_STR(server, "D+CSWLOshSulAsxiupA+qs2/fTE=");
    CHECK_EQ_INT(check_vector(&rfc7677, &k, salt), STORE_SALT_LEN);
}

/* A store_user whose keys for hash h come from the reference with the RFC
 * vector's salt. */
static void user_from_vector(struct store_user *u, const struct vector *v)
{
    struct ref_keys k;
    unsigned char salt[64];
    CHECK_EQ_INT(check_vector(v, &k, salt), STORE_SALT_LEN);
    struct store_scram *sc = v->h == SCRAM_SHA1 ? &u->sha1 : &u->sha256;
    memset(sc, 0, sizeof(*sc));
    sc->iterations = 4096;
    memcpy(sc->salt, salt, STORE_SALT_LEN);
    memcpy(sc->stored_key, k.stored_key, k.len);
    memcpy(sc->server_key, k.server_key, k.len);
}

static void test_check_password_rfc7677(void)
{
    struct store_user u;
    memset(&u, 0, sizeof(u));
    user_from_vector(&u, &rfc7677);
    CHECK(scram_check_password(&u, "pencil", 6));
    CHECK(!scram_check_password(&u, "Pencil", 6));
    CHECK(!scram_check_password(&u, "pencil ", 7));
    CHECK(!scram_check_password(&u, "pencil", 5));
    CHECK(!scram_check_password(&u, "", 0));
    /* The salt and the count take part. */
    u.sha256.iterations = 4097;
    CHECK(!scram_check_password(&u, "pencil", 6));
    u.sha256.iterations = 4096;
    u.sha256.salt[0] ^= 1;
    CHECK(!scram_check_password(&u, "pencil", 6));
    u.sha256.salt[0] ^= 1;
    CHECK(scram_check_password(&u, "pencil", 6));
    /* Only the StoredKey is compared (ServerKey is not needed for PLAIN). */
    u.sha256.stored_key[31] ^= 0x80;
    CHECK(!scram_check_password(&u, "pencil", 6));
}

static void test_auth_password_rfc(void)
{
    struct store_user u;
    memset(&u, 0, sizeof(u));
    user_from_vector(&u, &rfc7677);
    char out[256];
    struct ref_keys k;
    unsigned char salt[64];
    check_vector(&rfc7677, &k, salt);
    char stored[64], server[64], want256[256];
    b64_encode(k.stored_key, 32, stored);
    b64_encode(k.server_key, 32, server);
    snprintf(want256, sizeof(want256), "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$%s:%s",
             stored, server);
    int n = scram_auth_password(&u, SCRAM_SHA256, out, sizeof(out));
    CHECK_EQ_INT(n, (long long)strlen(want256));
    CHECK_EQ_STR(out, want256);
    /* Too small a buffer. */
    CHECK_EQ_INT(scram_auth_password(&u, SCRAM_SHA256, out, (size_t)n), -1);
    CHECK_EQ_INT(scram_auth_password(&u, SCRAM_SHA256, out, (size_t)n + 1), n);
    CHECK_EQ_INT(scram_auth_password(&u, SCRAM_SHA256, out, 1), -1);
}

/* Keys from scram_make_user equal the reference derivation with the random
 * salt it chose, for both hashes. */
static void check_made_keys(const struct store_user *u, const char *pw, size_t len)
{
    struct ref_keys k;
    ref_derive(SCRAM_SHA1, pw, len, u->sha1.salt, STORE_SALT_LEN, u->sha1.iterations, &k);
    CHECK_EQ_MEM((const char *)u->sha1.stored_key, 20, (const char *)k.stored_key, 20);
    CHECK_EQ_MEM((const char *)u->sha1.server_key, 20, (const char *)k.server_key, 20);
    static const unsigned char zero[12];
    CHECK(memcmp(u->sha1.stored_key + 20, zero, 12) == 0);
    CHECK(memcmp(u->sha1.server_key + 20, zero, 12) == 0);
    ref_derive(SCRAM_SHA256, pw, len, u->sha256.salt, STORE_SALT_LEN, u->sha256.iterations, &k);
    CHECK_EQ_MEM((const char *)u->sha256.stored_key, 32, (const char *)k.stored_key, 32);
    CHECK_EQ_MEM((const char *)u->sha256.server_key, 32, (const char *)k.server_key, 32);
}

static void test_make_user(void)
{
    struct store_user u, v;
    CHECK_EQ_INT(scram_make_user(&u, "s3cret", 6, SCRAM_DEFAULT_ITERATIONS), 0);
    CHECK_EQ_INT(u.sha1.iterations, 4096);
    CHECK_EQ_INT(u.sha256.iterations, 4096);
    CHECK(u.created > 1600000000u);
    check_made_keys(&u, "s3cret", 6);
    CHECK(scram_check_password(&u, "s3cret", 6));
    CHECK(!scram_check_password(&u, "s3cret!", 7));
    CHECK(!scram_check_password(&u, "S3cret", 6));
    CHECK(!scram_check_password(&u, "", 0));

    /* Fresh salts every time: the same password gives different records. */
    CHECK_EQ_INT(scram_make_user(&v, "s3cret", 6, SCRAM_DEFAULT_ITERATIONS), 0);
    CHECK(memcmp(u.sha256.salt, v.sha256.salt, STORE_SALT_LEN) != 0);
    CHECK(memcmp(u.sha1.salt, u.sha256.salt, STORE_SALT_LEN) != 0);
    CHECK(memcmp(u.sha256.stored_key, v.sha256.stored_key, 32) != 0);
    CHECK(scram_check_password(&v, "s3cret", 6));

    /* Below the RFC 7677 minimum the count is raised; above it is kept. */
    CHECK_EQ_INT(scram_make_user(&u, "pw", 2, 1), 0);
    CHECK_EQ_INT(u.sha256.iterations, 4096);
    CHECK_EQ_INT(scram_make_user(&u, "pw", 2, 5000), 0);
    CHECK_EQ_INT(u.sha1.iterations, 5000);
    CHECK_EQ_INT(u.sha256.iterations, 5000);
    check_made_keys(&u, "pw", 2);
    CHECK(scram_check_password(&u, "pw", 2));

    /* Passwords are bytes with a length: UTF-8 and embedded NUL. */
    const char pw_nul[] = {'a', '\0', 'b'};
    CHECK_EQ_INT(scram_make_user(&u, pw_nul, 3, 4096), 0);
    check_made_keys(&u, pw_nul, 3);
    CHECK(scram_check_password(&u, pw_nul, 3));
    CHECK(!scram_check_password(&u, "a", 1));
    CHECK_EQ_INT(scram_make_user(&u, "p\xC3\xA4ss", 5, 4096), 0);
    check_made_keys(&u, "p\xC3\xA4ss", 5);
    CHECK(scram_check_password(&u, "p\xC3\xA4ss", 5));
    CHECK_EQ_INT(scram_make_user(&u, "", 0, 4096), 0);
    CHECK(scram_check_password(&u, "", 0));
    CHECK(!scram_check_password(&u, "x", 1));
}

/* "SCRAM-SHA-256$4096:<salt b64>$<StoredKey b64>:<ServerKey b64>", each
 * piece decoding to the record's bytes. */
static void test_auth_password_format(void)
{
    struct store_user u;
    CHECK_EQ_INT(scram_make_user(&u, "hunter2", 7, 4096), 0);
    static const struct {
        enum scram_hash h;
        const char *prefix;
        size_t keylen;
    } forms[] = {{SCRAM_SHA256, "SCRAM-SHA-256$4096:", 32}, {SCRAM_SHA1, "SCRAM-SHA-1$4096:", 20}};
    for (size_t f = 0; f < 2; f++) {
        const struct store_scram *sc = forms[f].h == SCRAM_SHA1 ? &u.sha1 : &u.sha256;
        char out[256];
        int n = scram_auth_password(&u, forms[f].h, out, sizeof(out));
        CHECK(n > 0);
        CHECK_EQ_INT((size_t)n, strlen(out));
        size_t plen = strlen(forms[f].prefix);
        CHECK(strncmp(out, forms[f].prefix, plen) == 0);
        char *salt = out + plen;
        char *dollar = strchr(salt, '$');
        CHECK(dollar != NULL);
        if (dollar == NULL)
            continue;
        *dollar = '\0';
        char *stored = dollar + 1;
        char *colon = strchr(stored, ':');
        CHECK(colon != NULL);
        if (colon == NULL)
            continue;
        *colon = '\0';
        char *server = colon + 1;
        CHECK(strchr(server, ':') == NULL && strchr(server, '$') == NULL);
        CHECK_EQ_INT(strlen(salt), 24);
        CHECK_EQ_INT(strlen(stored), forms[f].keylen == 32 ? 44 : 28);
        CHECK_EQ_INT(strlen(server), forms[f].keylen == 32 ? 44 : 28);
        unsigned char raw[64];
        CHECK_EQ_INT(b64_decode(salt, raw), STORE_SALT_LEN);
        CHECK(memcmp(raw, sc->salt, STORE_SALT_LEN) == 0);
        CHECK_EQ_INT(b64_decode(stored, raw), forms[f].keylen);
        CHECK(memcmp(raw, sc->stored_key, forms[f].keylen) == 0);
        CHECK_EQ_INT(b64_decode(server, raw), forms[f].keylen);
        CHECK(memcmp(raw, sc->server_key, forms[f].keylen) == 0);
    }
}

/* Unknown users' fake credentials (issue 11 #8): deterministic per name
 * and secret, the secret kept in the store across a reopen, the configured
 * iteration count, salts that differ by hash and by name, no password that
 * matches. */
static void test_fake_user(void)
{
    char *dir = test_make_dir("herald-test-scram");
    struct store *s = NULL;
    uint8_t sec[STORE_SECRET_LEN], again[STORE_SECRET_LEN], zero[STORE_SECRET_LEN] = {0};
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    if (s == NULL) {
        test_remove_dir(dir);
        return;
    }
    CHECK_EQ_INT(store_secret(s, "fake-scram-salt", sec), 0);
    CHECK(memcmp(sec, zero, sizeof(sec)) != 0);
    CHECK_EQ_INT(store_secret(s, "fake-scram-salt", again), 0);
    CHECK(memcmp(again, sec, sizeof(sec)) == 0);
    CHECK_EQ_INT(store_secret(s, "another", again), 0);
    CHECK(memcmp(again, sec, sizeof(sec)) != 0);
    store_close(s);
    s = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    if (s != NULL) {
        CHECK_EQ_INT(store_secret(s, "fake-scram-salt", again), 0);
        CHECK(memcmp(again, sec, sizeof(sec)) == 0);
        store_close(s);
    }
    test_remove_dir(dir);

    struct store_user a, b, c;
    CHECK_EQ_INT(scram_fake_user(&a, sec, "ghost@localhost", 5000), 0);
    CHECK_EQ_INT(scram_fake_user(&b, sec, "ghost@localhost", 5000), 0);
    CHECK(memcmp(&a, &b, sizeof(a)) == 0);
    CHECK_EQ_INT(a.sha1.iterations, 5000);
    CHECK_EQ_INT(a.sha256.iterations, 5000);
    CHECK(memcmp(a.sha1.salt, a.sha256.salt, STORE_SALT_LEN) != 0);
    CHECK_EQ_INT(scram_fake_user(&c, sec, "ghost2@localhost", 5000), 0);
    CHECK(memcmp(a.sha256.salt, c.sha256.salt, STORE_SALT_LEN) != 0);
    sec[0] ^= 1;
    CHECK_EQ_INT(scram_fake_user(&c, sec, "ghost@localhost", 5000), 0);
    CHECK(memcmp(a.sha256.salt, c.sha256.salt, STORE_SALT_LEN) != 0);
    CHECK(!scram_check_password(&a, "", 0));
    CHECK(!scram_check_password(&a, "ghost", 5));
    char v[256];
    CHECK(scram_auth_password(&a, SCRAM_SHA256, v, sizeof(v)) > 0);
    CHECK(strncmp(v, "SCRAM-SHA-256$5000:", 19) == 0);
}

TEST_MAIN(TEST_CASE(test_reference_matches_rfcs), TEST_CASE(test_check_password_rfc7677),
          TEST_CASE(test_auth_password_rfc), TEST_CASE(test_make_user),
          TEST_CASE(test_auth_password_format), TEST_CASE(test_fake_user))
