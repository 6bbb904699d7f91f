/* auth_budget.c - per-key failure budgets with exponential backoff, in a
 * fixed-size set-associative table (see auth_budget.h). An entry is 40
 * bytes. */
#include "auth_budget.h"

#include <arpa/inet.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "hash.h"

#define WAYS 8u
#define FIRST_BLOCK_MS 1000u

#define TAG_SEVERAL UINT64_MAX

struct entry {
    uint64_t key;      /* keyed hash of the key; 0: empty */
    uint64_t tag;      /* hash of what the failures were against; TAG_SEVERAL: mixed */
    uint64_t last_ms;  /* the latest failure */
    uint64_t until_ms; /* blocked until then */
    uint32_t failures;
};

struct auth_budget {
    struct auth_budget_opts o;
    uint64_t seed[2];    /* random: an attacker cannot aim keys at one bucket */
    size_t nbuckets;     /* a power of two */
    struct entry *slots; /* nbuckets * WAYS */
};

int auth_budget_new(const struct auth_budget_opts *o, struct auth_budget **out)
{
    int rc = HERALD_ENOMEM;
    struct auth_budget *b = calloc(1, sizeof(*b));
    if (b == NULL)
        goto done;
    b->o = *o;
    size_t want = o->entries < WAYS ? WAYS : o->entries;
    b->nbuckets = 1;
    while (b->nbuckets * WAYS < want)
        b->nbuckets <<= 1;
    b->slots = calloc(b->nbuckets * WAYS, sizeof(*b->slots));
    if (b->slots == NULL)
        goto done;
    if (RAND_bytes((unsigned char *)b->seed, sizeof(b->seed)) != 1) {
        rc = HERALD_EIO;
        goto done;
    }
    *out = b;
    b = NULL;
    rc = 0;
done:
    auth_budget_free(b);
    return rc;
}

void auth_budget_free(struct auth_budget *b)
{
    if (b == NULL)
        return;
    free(b->slots);
    free(b);
}

/* FNV-1a over the key from a random start, then a finalizer; never 0. */
static uint64_t hash_of(const struct auth_budget *b, const char *key, size_t len)
{
    uint64_t h = hash_mix(hash_fnv1a(b->seed[0], key, len) ^ b->seed[1]);
    return h ? h : 1;
}

static struct entry *bucket_of(const struct auth_budget *b, uint64_t h)
{
    return b->slots + (size_t)(h & (b->nbuckets - 1)) * WAYS;
}

static bool expired(const struct auth_budget *b, const struct entry *e, uint64_t now)
{
    return now >= e->until_ms && now - e->last_ms >= (uint64_t)b->o.window_s * 1000u;
}

/* The live entry for key, or NULL (an expired one is emptied on the way). */
static struct entry *find(struct auth_budget *b, const char *key, size_t len, uint64_t now)
{
    uint64_t h = hash_of(b, key, len);
    struct entry *bk = bucket_of(b, h);
    for (unsigned i = 0; i < WAYS; i++) {
        if (bk[i].key != h)
            continue;
        if (!expired(b, &bk[i], now))
            return &bk[i];
        memset(&bk[i], 0, sizeof(bk[i]));
    }
    return NULL;
}

unsigned auth_budget_wait(struct auth_budget *b, const char *key, size_t len, uint64_t now_ms)
{
    if (b == NULL || b->o.free_failures == 0)
        return 0;
    const struct entry *e = find(b, key, len, now_ms);
    if (e == NULL || now_ms >= e->until_ms)
        return 0;
    return (unsigned)((e->until_ms - now_ms + 999) / 1000);
}

unsigned auth_budget_failures(struct auth_budget *b, const char *key, size_t len,
                              uint64_t now_ms)
{
    if (b == NULL || b->o.free_failures == 0)
        return 0;
    const struct entry *e = find(b, key, len, now_ms);
    return e ? e->failures : 0;
}

/* The tag's hash (0 for none; never TAG_SEVERAL). */
static uint64_t tag_of(const struct auth_budget *b, const char *tag)
{
    if (tag == NULL)
        return 0;
    uint64_t h = hash_of(b, tag, strlen(tag));
    return h == TAG_SEVERAL ? h - 1 : h;
}

unsigned auth_budget_fail(struct auth_budget *b, const char *key, size_t len, const char *tag,
                          uint64_t now_ms)
{
    if (b == NULL || b->o.free_failures == 0)
        return 0;
    uint64_t t = tag_of(b, tag);
    struct entry *e = find(b, key, len, now_ms);
    if (e == NULL) {
        /* A free or expired way, else the one whose latest failure is
         * oldest: the table stays the same size under a flood of keys. */
        uint64_t h = hash_of(b, key, len);
        struct entry *bk = bucket_of(b, h);
        e = &bk[0];
        for (unsigned i = 0; i < WAYS; i++) {
            if (bk[i].key == 0 || expired(b, &bk[i], now_ms)) {
                e = &bk[i];
                break;
            }
            if (bk[i].last_ms < e->last_ms)
                e = &bk[i];
        }
        memset(e, 0, sizeof(*e));
        e->key = h;
        e->tag = t;
    }
    if (e->tag != t)
        e->tag = TAG_SEVERAL;
    if (e->failures < UINT32_MAX)
        e->failures++;
    e->last_ms = now_ms;
    if (e->failures > b->o.free_failures) {
        unsigned over = e->failures - b->o.free_failures - 1;
        uint64_t cap = (uint64_t)b->o.backoff_max_s * 1000u;
        uint64_t block = over >= 32 ? cap : (uint64_t)FIRST_BLOCK_MS << over;
        if (block > cap)
            block = cap;
        e->until_ms = now_ms + block;
    }
    return e->failures;
}

void auth_budget_clear(struct auth_budget *b, const char *key, size_t len, const char *tag)
{
    if (b == NULL)
        return;
    uint64_t h = hash_of(b, key, len), t = tag_of(b, tag);
    struct entry *bk = bucket_of(b, h);
    for (unsigned i = 0; i < WAYS; i++)
        if (bk[i].key == h && bk[i].tag == t)
            memset(&bk[i], 0, sizeof(bk[i]));
}

void auth_budget_addr_key(const char *peer, char *out, size_t cap)
{
    struct in6_addr a6;
    char text[INET6_ADDRSTRLEN];
    if (strchr(peer, ':') != NULL && inet_pton(AF_INET6, peer, &a6) == 1 &&
        !IN6_IS_ADDR_V4MAPPED(&a6)) {
        memset(a6.s6_addr + 8, 0, 8);
        if (inet_ntop(AF_INET6, &a6, text, sizeof(text)) != NULL) {
            snprintf(out, cap, "%s/64", text);
            return;
        }
    }
    snprintf(out, cap, "%s", peer);
}
