/* test_webhooks.c - the pure pieces of webhooks (api/webhook_net.c): the
 * signature against a value computed independently (`openssl dgst` over
 * "t." + body), and the SSRF guard's CIDR matcher and default refusals. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "errors.h"
#include "test.h"
#include "webhooks.h"

static void test_sign(void)
{
    char out[65];
    /* printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec */
    CHECK_EQ_INT(wh_sign("whsec", 5, 1700000000, "{\"a\":1}", 7, out), 0);
    CHECK_EQ_STR(out, "8ad37ba156048ae0e0a5533c75cdf26fee88b07f93cb57ee4c80adb053012032");
    /* An empty body still signs "t." */
    CHECK_EQ_INT(wh_sign("k", 1, 0, "", 0, out), 0);
    CHECK_EQ_INT((int)strlen(out), 64);
}

static bool in(const char *cidr, const char *ip)
{
    struct wh_cidr c;
    uint8_t a[16];
    int fam = strchr(ip, ':') ? 6 : 4;
    if (wh_cidr_parse(cidr, strlen(cidr), &c) != 0)
        return false;
    if (inet_pton(fam == 6 ? AF_INET6 : AF_INET, ip, a) != 1)
        return false;
    return wh_cidr_match(&c, fam, a);
}

static void test_cidr(void)
{
    CHECK(in("127.0.0.0/8", "127.1.2.3"));
    CHECK(!in("127.0.0.0/8", "128.0.0.1"));
    CHECK(in("10.1.0.0/16", "10.1.255.255"));
    CHECK(!in("10.1.0.0/16", "10.2.0.0"));
    CHECK(in("192.168.1.7", "192.168.1.7"));
    CHECK(!in("192.168.1.7", "192.168.1.8"));
    CHECK(in("172.16.0.0/12", "172.31.0.1"));
    CHECK(!in("172.16.0.0/12", "172.32.0.1"));
    CHECK(in("0.0.0.0/0", "8.8.8.8"));
    CHECK(in("::1/128", "::1"));
    CHECK(!in("::1/128", "::2"));
    CHECK(in("fd00::/8", "fd12:3456::1"));
    CHECK(in("2001:db8::/33", "2001:db8:7fff::1"));
    CHECK(!in("2001:db8::/33", "2001:db8:8000::1"));
    CHECK(!in("127.0.0.0/8", "::1")); /* families never match each other */
    struct wh_cidr c, list[4];
    size_t n;
    CHECK_EQ_INT(wh_cidr_parse("10.0.0.0/33", 11, &c), HERALD_EINVAL);
    CHECK_EQ_INT(wh_cidr_parse("::/129", 6, &c), HERALD_EINVAL);
    CHECK_EQ_INT(wh_cidr_parse("10.0.0/8", 8, &c), HERALD_EINVAL);
    CHECK_EQ_INT(wh_cidr_parse("host.example", 12, &c), HERALD_EINVAL);
    CHECK_EQ_INT(wh_cidr_parse("10.0.0.0/", 9, &c), HERALD_EINVAL);
    CHECK_EQ_INT(wh_cidr_list_parse("127.0.0.0/8, ::1/128 10.0.0.0/8", list, 4, &n), 0);
    CHECK_EQ_INT((int)n, 3);
    CHECK_EQ_INT(wh_cidr_list_parse("", list, 4, &n), 0);
    CHECK_EQ_INT((int)n, 0);
    CHECK_EQ_INT(wh_cidr_list_parse(NULL, list, 4, &n), 0);
    CHECK_EQ_INT(wh_cidr_list_parse("1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4,5.5.5.5", list, 4, &n),
                 HERALD_ELIMIT);
    CHECK_EQ_INT(wh_cidr_list_parse("127.0.0.0/8,bogus", list, 4, &n), HERALD_EINVAL);
}

static const char *refused4(const struct wh_cidr *allow, size_t n, const char *ip)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, ip, &sa.sin_addr);
    return wh_sockaddr_refused(allow, n, (struct sockaddr *)&sa);
}

static const char *refused6(const struct wh_cidr *allow, size_t n, const char *ip)
{
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, ip, &sa.sin6_addr);
    return wh_sockaddr_refused(allow, n, (struct sockaddr *)&sa);
}

static void test_guard(void)
{
    CHECK_EQ_STR(refused4(NULL, 0, "127.0.0.1"), "loopback");
    CHECK_EQ_STR(refused4(NULL, 0, "10.1.2.3"), "private");
    CHECK_EQ_STR(refused4(NULL, 0, "172.20.0.1"), "private");
    CHECK_EQ_STR(refused4(NULL, 0, "192.168.0.1"), "private");
    CHECK_EQ_STR(refused4(NULL, 0, "169.254.169.254"), "link-local");
    CHECK_EQ_STR(refused4(NULL, 0, "0.0.0.0"), "unspecified");
    CHECK_EQ_STR(refused4(NULL, 0, "224.0.0.1"), "multicast");
    CHECK_EQ_STR(refused4(NULL, 0, "100.64.0.1"), "private");
    CHECK(refused4(NULL, 0, "93.184.216.34") == NULL);
    CHECK(refused4(NULL, 0, "8.8.8.8") == NULL);
    CHECK_EQ_STR(refused6(NULL, 0, "::1"), "loopback");
    CHECK_EQ_STR(refused6(NULL, 0, "::"), "unspecified");
    CHECK_EQ_STR(refused6(NULL, 0, "fe80::1"), "link-local");
    CHECK_EQ_STR(refused6(NULL, 0, "fd00::1"), "private");
    CHECK_EQ_STR(refused6(NULL, 0, "ff02::1"), "multicast");
    CHECK_EQ_STR(refused6(NULL, 0, "::ffff:127.0.0.1"), "loopback"); /* IPv4-mapped */
    CHECK_EQ_STR(refused6(NULL, 0, "::ffff:10.0.0.1"), "private");
    CHECK(refused6(NULL, 0, "2606:2800:220:1:248:1893:25c8:1946") == NULL);
    /* The allow list opens exactly its blocks. */
    struct wh_cidr allow[2];
    size_t n;
    CHECK_EQ_INT(wh_cidr_list_parse("127.0.0.0/8 fd00::/16", allow, 2, &n), 0);
    CHECK(refused4(allow, n, "127.0.0.1") == NULL);
    CHECK(refused6(allow, n, "::ffff:127.0.0.1") == NULL);
    CHECK(refused6(allow, n, "fd00::5") == NULL);
    CHECK_EQ_STR(refused6(allow, n, "fd01::5"), "private");
    CHECK_EQ_STR(refused6(allow, n, "::1"), "loopback");
    CHECK_EQ_STR(refused4(allow, n, "10.0.0.1"), "private");
    CHECK_EQ_STR(refused4(allow, n, "169.254.1.1"), "link-local");
}

TEST_MAIN(TEST_CASE(test_sign), TEST_CASE(test_cidr), TEST_CASE(test_guard))
