/* webhook_net.c - the pure pieces of webhooks (webhooks.h): the SSRF guard
 * that decides which addresses a webhook may reach (a CIDR allow list over
 * a default that refuses loopback, private, link-local, unspecified,
 * multicast and reserved ranges) and the HMAC-SHA256 signature a receiver
 * checks. No I/O here: the unit tests call these directly. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "errors.h"
#include "webhooks.h"

int wh_cidr_parse(const char *s, size_t len, struct wh_cidr *out)
{
    char text[64];
    if (len == 0 || len >= sizeof(text))
        return HERALD_EINVAL;
    memcpy(text, s, len);
    text[len] = '\0';
    char *slash = strchr(text, '/');
    long bits = -1;
    if (slash) {
        *slash = '\0';
        char *end;
        if (slash[1] < '0' || slash[1] > '9')
            return HERALD_EINVAL;
        bits = strtol(slash + 1, &end, 10);
        if (*end != '\0')
            return HERALD_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, text, out->addr) == 1) {
        out->family = 4;
        if (bits < 0)
            bits = 32;
        if (bits > 32)
            return HERALD_EINVAL;
    } else if (inet_pton(AF_INET6, text, out->addr) == 1) {
        out->family = 6;
        if (bits < 0)
            bits = 128;
        if (bits > 128)
            return HERALD_EINVAL;
    } else {
        return HERALD_EINVAL;
    }
    out->bits = (uint8_t)bits;
    return 0;
}

int wh_cidr_list_parse(const char *list, struct wh_cidr *out, size_t max, size_t *n)
{
    *n = 0;
    const char *p = list ? list : "";
    for (;;) {
        p += strspn(p, ", \t");
        if (*p == '\0')
            return 0;
        size_t l = strcspn(p, ", \t");
        if (*n == max)
            return HERALD_ELIMIT;
        int rc = wh_cidr_parse(p, l, &out[*n]);
        if (rc != 0)
            return rc;
        (*n)++;
        p += l;
    }
}

bool wh_cidr_match(const struct wh_cidr *c, int family, const uint8_t *addr)
{
    if (c->family != family)
        return false;
    unsigned full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->addr, addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (c->addr[full] & mask) == (addr[full] & mask);
}

/* The ranges nobody may reach by default (RFC 6890 special-purpose
 * registries: the ones that lead inside the server's own network). */
static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static const struct refused {
    const char *cidr;
    const char *why;
} refused[] = {
    {"0.0.0.0/8", "unspecified"}, {"10.0.0.0/8", "private"},        {"100.64.0.0/10", "private"},
    {"127.0.0.0/8", "loopback"},  {"169.254.0.0/16", "link-local"}, {"172.16.0.0/12", "private"},
    {"192.0.0.0/24", "reserved"}, {"192.168.0.0/16", "private"},    {"198.18.0.0/15", "reserved"},
    {"224.0.0.0/4", "multicast"}, {"240.0.0.0/4", "reserved"},      {"::/128", "unspecified"},
    {"::1/128", "loopback"},      {"fc00::/7", "private"},          {"fe80::/10", "link-local"},
    {"fec0::/10", "private"},     {"ff00::/8", "multicast"},        {"64:ff9b::/96", "reserved"},
    /* IPv6 forms that carry an IPv4 address a translator or tunnel may
     * turn into an inside one: IPv4-compatible (deprecated), local-use
     * NAT64 (RFC 8215), 6to4 (RFC 3056), Teredo (RFC 4380). */
    {"::/96", "IPv4-compatible"}, {"64:ff9b:1::/48", "reserved"},   {"2002::/16", "6to4"},
    {"2001::/32", "Teredo"},
};

const char *wh_addr_refused(int family, const uint8_t *addr)
{
    if (family == 6 && memcmp(addr, v4mapped, 12) == 0) {
        family = 4;
        addr += 12;
    }
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        struct wh_cidr c;
        if (wh_cidr_parse(refused[i].cidr, strlen(refused[i].cidr), &c) == 0 &&
            wh_cidr_match(&c, family, addr))
            return refused[i].why;
    }
    return NULL;
}

const char *wh_sockaddr_refused(const struct wh_cidr *allow, size_t nallow,
                                const struct sockaddr *sa)
{
    int family;
    const uint8_t *addr;
    if (sa->sa_family == AF_INET) {
        family = 4;
        addr = (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    } else if (sa->sa_family == AF_INET6) {
        family = 6;
        addr = (const uint8_t *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    } else {
        return "not an IP address";
    }
    for (size_t i = 0; i < nallow; i++)
        if (wh_cidr_match(&allow[i], family, addr))
            return NULL;
    /* An allowed IPv4 block also allows its IPv4-mapped IPv6 form. */
    if (family == 6 && memcmp(addr, v4mapped, 12) == 0)
        for (size_t i = 0; i < nallow; i++)
            if (wh_cidr_match(&allow[i], 4, addr + 12))
                return NULL;
    return wh_addr_refused(family, addr);
}

int wh_sign(const char *secret, size_t secret_len, uint64_t t, const char *body, size_t body_len,
            char out[65])
{
    char prefix[24];
    unsigned char mac[EVP_MAX_MD_SIZE];
    int pl = snprintf(prefix, sizeof(prefix), "%llu.", (unsigned long long)t);
    /* EVP_MAC: OpenSSL 3's interface (HMAC_CTX is deprecated there), fed
     * in two parts so the body is never copied. */
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = m ? EVP_MAC_CTX_new(m) : NULL;
    size_t mac_len = 0;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    int ok = ctx != NULL &&
             EVP_MAC_init(ctx, (const unsigned char *)secret, secret_len, params) == 1 &&
             EVP_MAC_update(ctx, (const unsigned char *)prefix, (size_t)pl) == 1 &&
             EVP_MAC_update(ctx, (const unsigned char *)body, body_len) == 1 &&
             EVP_MAC_final(ctx, mac, &mac_len, sizeof(mac)) == 1 && mac_len == 32;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(m);
    if (!ok)
        return HERALD_EIO;
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[64] = '\0';
    return 0;
}
