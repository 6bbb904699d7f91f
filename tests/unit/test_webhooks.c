/* test_webhooks.c - the pure pieces of webhooks (api/webhook_net.c): the
 * signature against a value computed independently (`openssl dgst` over
 * "t." + body), the SSRF guard's CIDR matcher and default refusals; and
 * the webhooks' storage (storage/store_webhooks.c): records round-trip,
 * the outbox reads in seq order per webhook, deleting a webhook deletes
 * its outbox and nobody else's. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "errors.h"
#include "store.h"
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
    CHECK_EQ_STR(refused6(NULL, 0, "::7f00:1"), "IPv4-compatible");
    CHECK_EQ_STR(refused6(NULL, 0, "64:ff9b:1::a00:1"), "reserved");
    CHECK_EQ_STR(refused6(NULL, 0, "2002:7f00:1::1"), "6to4");
    CHECK_EQ_STR(refused6(NULL, 0, "2001:0:4136:e378:8000:63bf:3fff:fdd2"), "Teredo");
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

static int count_hook(void *ud, const struct store_webhook *w)
{
    struct store_webhook *out = ud;
    if (w->id == 2)
        *out = *w;
    return 0;
}

static void put_event(struct store_txn *t, uint64_t wid, uint64_t seq, const char *body)
{
    struct store_outbox o = {.webhook_id = wid,
                             .seq = seq,
                             .created = 5,
                             .event = 1,
                             .body = body,
                             .body_len = strlen(body)};
    CHECK_EQ_INT(store_outbox_put(t, &o), 0);
}

static void test_store(void)
{
    char *dir = test_make_dir("herald-test-webhooks");
    struct store *s = NULL;
    struct store_txn *t = NULL;
    CHECK_EQ_INT(store_open(&s, dir, NULL), 0);
    CHECK_EQ_INT(store_txn_begin(s, true, &t), 0);
    uint64_t a, b;
    CHECK_EQ_INT(store_webhook_new_id(t, &a), 0);
    CHECK_EQ_INT(store_webhook_new_id(t, &b), 0);
    CHECK_EQ_INT((int)a, 1);
    CHECK_EQ_INT((int)b, 2);
    static struct store_webhook w;
    memset(&w, 0, sizeof(w));
    w.id = b;
    w.node_id = 77;
    w.created = 123456789;
    w.delivered = 5;
    w.failures = 6;
    w.dropped = 7;
    w.max_attempts = 9;
    w.events = 5;
    w.flags = STORE_WH_DOOMED;
    strcpy(w.node, "grid/feeder");
    strcpy(w.owner, "alice@localhost");
    strcpy(w.url, "https://example.org/hook?x=1");
    strcpy(w.secret, "s3cret");
    strcpy(w.dead_letter, "grid/feeder/dead-letter");
    CHECK_EQ_INT(store_webhook_put(t, &w), 0);
    w.id = a;
    CHECK_EQ_INT(store_webhook_put(t, &w), 0);
    /* Outboxes of webhooks 1 and 2, written out of order. */
    put_event(t, 2, 30, "{\"n\":30}");
    put_event(t, 2, 10, "{\"n\":10}");
    put_event(t, 1, 20, "{\"n\":20}");
    put_event(t, 2, 20, "{\"n\":20}");
    CHECK_EQ_INT(store_txn_commit(t), 0);

    CHECK_EQ_INT(store_txn_begin(s, true, &t), 0);
    static struct store_webhook got;
    memset(&got, 0, sizeof(got));
    CHECK_EQ_INT(store_webhook_each(t, count_hook, &got), 0);
    CHECK_EQ_INT((int)got.id, 2);
    CHECK_EQ_INT((int)got.node_id, 77);
    CHECK_EQ_INT((int)got.delivered, 5);
    CHECK_EQ_INT((int)got.failures, 6);
    CHECK_EQ_INT((int)got.dropped, 7);
    CHECK_EQ_INT((int)got.max_attempts, 9);
    CHECK_EQ_INT(got.events, 5);
    CHECK_EQ_INT(got.flags, STORE_WH_DOOMED);
    CHECK_EQ_STR(got.node, "grid/feeder");
    CHECK_EQ_STR(got.url, "https://example.org/hook?x=1");
    CHECK_EQ_STR(got.secret, "s3cret");
    CHECK_EQ_STR(got.dead_letter, "grid/feeder/dead-letter");
    struct store_outbox o;
    CHECK_EQ_INT(store_outbox_next(t, 2, 0, &o), 0);
    CHECK_EQ_INT((int)o.seq, 10);
    CHECK_EQ_MEM(o.body, o.body_len, "{\"n\":10}", 8);
    CHECK_EQ_INT(store_outbox_next(t, 2, 10, &o), 0);
    CHECK_EQ_INT((int)o.seq, 20);
    CHECK_EQ_INT(store_outbox_next(t, 2, 30, &o), HERALD_ENOTFOUND); /* not webhook 3's */
    uint64_t n, first, last, bytes;
    CHECK_EQ_INT(store_outbox_stats(t, 2, &n, &first, &last, &bytes), 0);
    CHECK_EQ_INT((int)n, 3);
    CHECK_EQ_INT((int)first, 10);
    CHECK_EQ_INT((int)last, 30);
    /* An attempt rewrites the record in place. */
    struct store_outbox again = {.webhook_id = 2,
                                 .seq = 10,
                                 .attempts = 3,
                                 .last_status = 503,
                                 .event = 1,
                                 .body = "{}",
                                 .body_len = 2};
    CHECK_EQ_INT(store_outbox_put(t, &again), 0);
    CHECK_EQ_INT(store_outbox_next(t, 2, 0, &o), 0);
    CHECK_EQ_INT((int)o.attempts, 3);
    CHECK_EQ_INT(o.last_status, 503);
    CHECK_EQ_INT(store_outbox_del(t, 2, 10), 0);
    CHECK_EQ_INT(store_outbox_next(t, 2, 0, &o), 0);
    CHECK_EQ_INT((int)o.seq, 20);
    /* Deleting webhook 2 takes its outbox, not webhook 1's. */
    CHECK_EQ_INT(store_webhook_del(t, 2), 0);
    CHECK_EQ_INT(store_outbox_stats(t, 2, &n, &first, &last, &bytes), 0);
    CHECK_EQ_INT((int)n, 0);
    CHECK_EQ_INT(store_outbox_stats(t, 1, &n, &first, &last, &bytes), 0);
    CHECK_EQ_INT((int)n, 1);
    memset(&got, 0, sizeof(got));
    CHECK_EQ_INT(store_webhook_each(t, count_hook, &got), 0);
    CHECK_EQ_INT((int)got.id, 0);
    store_txn_abort(t);
    store_close(s);
    test_remove_dir(dir);
}

TEST_MAIN(TEST_CASE(test_sign), TEST_CASE(test_cidr), TEST_CASE(test_guard), TEST_CASE(test_store))
