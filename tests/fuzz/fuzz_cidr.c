/* fuzz_cidr.c - libFuzzer target for the webhooks' destination guard
 * (webhook_net.c): the CIDR list of [webhooks] allow and single blocks.
 *
 * The input is a list (any bytes). When wh_cidr_list_parse accepts it,
 * every block must be well formed (family 4 or 6, prefix within the
 * family's bits), match its own address, and print back (inet_ntop +
 * "/bits") to text that parses to the same block; the guard must give an
 * answer for each block's address with and without the list. Any
 * violation aborts. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "webhooks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_BLOCKS 32

static void die(const char *what)
{
    fprintf(stderr, "fuzz_cidr: %s\n", what);
    abort();
}

static void check_block(const struct wh_cidr *c, const struct wh_cidr *all, size_t n)
{
    if ((c->family != 4 && c->family != 6) || c->bits > (c->family == 4 ? 32 : 128))
        die("a parsed block has a bad family or prefix length");
    if (!wh_cidr_match(c, c->family, c->addr))
        die("a block does not match its own address");
    char text[INET6_ADDRSTRLEN + 8];
    if (inet_ntop(c->family == 4 ? AF_INET : AF_INET6, c->addr, text, INET6_ADDRSTRLEN) == NULL)
        die("inet_ntop refused a parsed address");
    size_t l = strlen(text);
    snprintf(text + l, sizeof(text) - l, "/%u", c->bits);
    struct wh_cidr again;
    if (wh_cidr_parse(text, strlen(text), &again) != 0 || again.family != c->family ||
        again.bits != c->bits || !wh_cidr_match(&again, c->family, c->addr))
        die("a block does not parse back from its printed form");
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (c->family == 4) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        memcpy(&in->sin_addr, c->addr, 4);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        memcpy(&in6->sin6_addr, c->addr, 16);
    }
    if (wh_sockaddr_refused(all, n, (const struct sockaddr *)&ss) != NULL)
        die("an address inside the allow list is refused");
    (void)wh_sockaddr_refused(NULL, 0, (const struct sockaddr *)&ss);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    struct wh_cidr blocks[MAX_BLOCKS];
    size_t n = 0;
    if (wh_cidr_list_parse(s, blocks, MAX_BLOCKS, &n) == 0) {
        if (n > MAX_BLOCKS)
            die("more blocks than asked for");
        for (size_t i = 0; i < n; i++)
            check_block(&blocks[i], blocks, n);
    }
    struct wh_cidr one;
    if (wh_cidr_parse(s, size, &one) == 0)
        check_block(&one, &one, 1);
    free(s);
    return 0;
}
