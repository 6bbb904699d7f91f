/* token.c - making and checking REST bearer tokens (see token.h). */
#include "token.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "errors.h"
#include "store.h"

#define SECRET_BYTES 32
#define SECRET_CHARS 43 /* base64url of 32 bytes, unpadded */

static const char *const scope_names[] = {"read", "publish", "manage"};

int token_scopes_parse(const char *s, uint8_t *out)
{
    uint8_t v = 0;
    while (*s) {
        size_t n = strcspn(s, ",");
        bool found = false;
        for (unsigned i = 0; i < 3; i++) {
            if (strlen(scope_names[i]) == n && memcmp(scope_names[i], s, n) == 0) {
                v |= (uint8_t)(1u << i);
                found = true;
            }
        }
        if (!found)
            return -1;
        s += n;
        if (*s == ',')
            s++;
    }
    if (v == 0)
        return -1;
    *out = v;
    return 0;
}

void token_scopes_format(uint8_t scopes, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < 3; i++) {
        if (!(scopes & (1u << i)))
            continue;
        int n = snprintf(out + used, cap - used, "%s%s", used ? "," : "", scope_names[i]);
        if (n < 0 || (size_t)n >= cap - used)
            return;
        used += (size_t)n;
    }
}

static void b64url(const uint8_t *in, size_t len, char *out)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = acc << 8 | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = al[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[o++] = al[(acc << (6 - bits)) & 63];
    out[o] = '\0';
}

int token_id_parse(const char *s, uint8_t id[8])
{
    for (int i = 0; i < 8; i++) {
        int hi = hex_value(s[2 * i]), lo = hi < 0 ? -1 : hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        id[i] = (uint8_t)(hi << 4 | lo);
    }
    return s[16] == '\0' || s[16] == '.' ? 0 : -1;
}

void token_id_format(const uint8_t id[8], char out[17])
{
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", id[i]);
}

/* store: put the record in s (false: the caller stores it, e.g. through the
 * cluster log; no retry on a taken id then: 2^-64 per pair). */
int token_make(struct store *s, const char *jid, uint8_t scopes, uint64_t expires, char *out,
               size_t cap, struct store_token *rec, bool store)
{
    if (cap < TOKEN_TEXT_MAX || strlen(jid) >= sizeof(rec->jid))
        return HERALD_EINVAL;
    uint8_t secret[SECRET_BYTES];
    char sec[SECRET_CHARS + 1];
    struct store_user u;
    memset(rec, 0, sizeof(*rec));
    /* The token is bound to this incarnation of the account. */
    int rc = store_user_get(s, jid, &u);
    if (rc != 0)
        return rc;
    rc = HERALD_EEXIST;
    for (int attempt = 0; attempt < 4 && rc == HERALD_EEXIST; attempt++) {
        if (RAND_bytes(rec->id, sizeof(rec->id)) != 1 || RAND_bytes(secret, sizeof(secret)) != 1)
            return HERALD_EIO;
        b64url(secret, sizeof(secret), sec);
        SHA256((const uint8_t *)sec, SECRET_CHARS, rec->hash);
        rec->scopes = scopes;
        rec->created = (uint64_t)time(NULL);
        rec->expires = expires;
        rec->generation = u.generation;
        memcpy(rec->jid, jid, strlen(jid) + 1);
        rc = store ? store_token_put(s, rec) : 0;
    }
    if (rc == 0) {
        char id[17];
        token_id_format(rec->id, id);
        snprintf(out, cap, "%s.%s", id, sec);
    }
    OPENSSL_cleanse(secret, sizeof(secret));
    OPENSSL_cleanse(sec, sizeof(sec));
    return rc;
}

int token_create(struct store *s, const char *jid, uint8_t scopes, uint64_t expires,
                 char *out, size_t cap, struct store_token *rec)
{
    return token_make(s, jid, scopes, expires, out, cap, rec, true);
}

int token_check(struct store *s, const char *text, size_t len, uint64_t now,
                struct store_token *rec)
{
    char buf[TOKEN_TEXT_MAX];
    uint8_t id[8], hash[SHA256_DIGEST_LENGTH];
    if (len != 16 + 1 + SECRET_CHARS)
        return HERALD_EFORBIDDEN;
    memcpy(buf, text, len);
    buf[len] = '\0';
    if (buf[16] != '.' || token_id_parse(buf, id) != 0)
        return HERALD_EFORBIDDEN;
    bool live = false;
    int rc = store_token_get_live(s, id, rec, &live);
    if (rc == HERALD_ENOTFOUND)
        return HERALD_EFORBIDDEN;
    if (rc != 0)
        return rc;
    /* The secret is compared as its hash, in constant time. */
    SHA256((const uint8_t *)buf + 17, SECRET_CHARS, hash);
    if (CRYPTO_memcmp(hash, rec->hash, sizeof(hash)) != 0)
        return HERALD_EFORBIDDEN;
    if (rec->expires != 0 && now >= rec->expires)
        return HERALD_EFORBIDDEN;
    /* A token outlives neither its account nor a new account of the same
     * name: the generations must match (store.h). */
    return live ? 0 : HERALD_EFORBIDDEN;
}
