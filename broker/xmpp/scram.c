/* scram.c - SCRAM key derivation with OpenSSL (PBKDF2, HMAC, digests). */
#include "scram.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "errors.h"

static const EVP_MD *md_of(enum scram_hash h) { return h == SCRAM_SHA1 ? EVP_sha1() : EVP_sha256(); }
static size_t keylen_of(enum scram_hash h) { return h == SCRAM_SHA1 ? 20 : 32; }

/* SaltedPassword = Hi(password, salt, i); ClientKey = HMAC(SP, "Client Key");
 * StoredKey = H(ClientKey); ServerKey = HMAC(SP, "Server Key"). */
static int derive(enum scram_hash h, const char *pw, size_t pwlen, const struct store_scram *in,
                  unsigned char *stored, unsigned char *server)
{
    const EVP_MD *md = md_of(h);
    size_t kl = keylen_of(h);
    unsigned char salted[32], client[32];
    unsigned int outl = 0;
    int ok = PKCS5_PBKDF2_HMAC(pw, (int)pwlen, in->salt, STORE_SALT_LEN, (int)in->iterations, md,
                               (int)kl, salted) == 1 &&
             HMAC(md, salted, (int)kl, (const unsigned char *)"Client Key", 10, client, &outl) &&
             EVP_Digest(client, kl, stored, NULL, md, NULL) == 1 &&
             HMAC(md, salted, (int)kl, (const unsigned char *)"Server Key", 10, server, &outl);
    OPENSSL_cleanse(salted, sizeof(salted));
    OPENSSL_cleanse(client, sizeof(client));
    return ok ? 0 : HERALD_EIO;
}

static int make_one(enum scram_hash h, struct store_scram *sc, const char *pw, size_t len,
                    unsigned iterations)
{
    memset(sc, 0, sizeof(*sc));
    sc->iterations = iterations;
    if (RAND_bytes(sc->salt, STORE_SALT_LEN) != 1)
        return HERALD_EIO;
    return derive(h, pw, len, sc, sc->stored_key, sc->server_key);
}

int scram_make_user(struct store_user *u, const char *password, size_t len, unsigned iterations)
{
    if (iterations < 4096)
        iterations = 4096; /* RFC 7677 §4 minimum */
    memset(u, 0, sizeof(*u));
    u->created = (uint64_t)time(NULL);
    /* Never 0: that is the generation of accounts made before generations. */
    while (u->generation == 0)
        if (RAND_bytes((unsigned char *)&u->generation, sizeof(u->generation)) != 1)
            return HERALD_EIO;
    int rc = make_one(SCRAM_SHA1, &u->sha1, password, len, iterations);
    if (rc == 0)
        rc = make_one(SCRAM_SHA256, &u->sha256, password, len, iterations);
    return rc;
}

/* HMAC-SHA-256(secret, label 0x00 bare) truncated to len bytes. */
static int prf(const uint8_t secret[STORE_SECRET_LEN], const char *label, const char *bare,
               uint8_t *out, size_t len)
{
    unsigned char msg[4096], mac[32];
    unsigned int outl = 0;
    size_t ll = strlen(label) + 1, bl = strlen(bare);
    if (ll + bl > sizeof(msg))
        return HERALD_EINVAL;
    memcpy(msg, label, ll);
    memcpy(msg + ll, bare, bl);
    int ok = HMAC(EVP_sha256(), secret, STORE_SECRET_LEN, msg, ll + bl, mac, &outl) != NULL &&
             outl == sizeof(mac);
    if (ok)
        memcpy(out, mac, len);
    OPENSSL_cleanse(mac, sizeof(mac));
    return ok ? 0 : HERALD_EIO;
}

int scram_fake_user(struct store_user *u, const uint8_t secret[STORE_SECRET_LEN], const char *bare,
                    unsigned iterations)
{
    memset(u, 0, sizeof(*u));
    if (iterations < 4096)
        iterations = 4096;
    u->sha1.iterations = u->sha256.iterations = iterations;
    int rc = prf(secret, "salt sha1", bare, u->sha1.salt, STORE_SALT_LEN);
    if (rc == 0)
        rc = prf(secret, "salt sha256", bare, u->sha256.salt, STORE_SALT_LEN);
    if (rc == 0)
        rc = prf(secret, "stored sha1", bare, u->sha1.stored_key, STORE_KEY_MAX);
    if (rc == 0)
        rc = prf(secret, "server sha1", bare, u->sha1.server_key, STORE_KEY_MAX);
    if (rc == 0)
        rc = prf(secret, "stored sha256", bare, u->sha256.stored_key, STORE_KEY_MAX);
    if (rc == 0)
        rc = prf(secret, "server sha256", bare, u->sha256.server_key, STORE_KEY_MAX);
    return rc;
}

static size_t b64(const unsigned char *in, size_t n, char *out)
{
    return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

int scram_auth_password(const struct store_user *u, enum scram_hash h, char *out, size_t cap)
{
    const struct store_scram *sc = h == SCRAM_SHA1 ? &u->sha1 : &u->sha256;
    size_t kl = keylen_of(h);
    char salt[32], stored[48], server[48];
    b64(sc->salt, STORE_SALT_LEN, salt);
    b64(sc->stored_key, kl, stored);
    b64(sc->server_key, kl, server);
    int n = snprintf(out, cap, "%s$%u:%s$%s:%s", h == SCRAM_SHA1 ? "SCRAM-SHA-1" : "SCRAM-SHA-256",
                     sc->iterations, salt, stored, server);
    return (n < 0 || (size_t)n >= cap) ? -1 : n;
}

bool scram_check_password(const struct store_user *u, const char *password, size_t len)
{
    unsigned char stored[32], server[32];
    if (derive(SCRAM_SHA256, password, len, &u->sha256, stored, server) != 0)
        return false;
    return CRYPTO_memcmp(stored, u->sha256.stored_key, 32) == 0;
}
