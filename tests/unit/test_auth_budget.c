/* test_auth_budget.c - the SASL failure budgets (auth_budget.c) on a fake
 * clock: free failures, doubling blocks up to the cap, the window that
 * forgets, clearing on success, the fixed table size under a flood of keys,
 * and the IPv6 /64 address key. */
#include <stdio.h>
#include <string.h>

#include "auth_budget.h"
#include "test.h"

#define K(s) (s), strlen(s)

static struct auth_budget *make(unsigned free_failures, unsigned window_s, unsigned max_s,
                                unsigned entries)
{
    struct auth_budget_opts o = {free_failures, window_s, max_s, entries};
    struct auth_budget *b = NULL;
    CHECK_EQ_INT(auth_budget_new(&o, &b), 0);
    return b;
}

static void test_backoff(void)
{
    struct auth_budget *b = make(3, 600, 8, 64);
    if (b == NULL)
        return;
    uint64_t t = 1000000;
    /* Three free failures: never blocked. */
    for (unsigned i = 1; i <= 3; i++) {
        CHECK_EQ_INT(auth_budget_wait(b, K("10.0.0.1"), t), 0);
        CHECK_EQ_INT(auth_budget_fail(b, K("10.0.0.1"), NULL, t), i);
    }
    CHECK_EQ_INT(auth_budget_wait(b, K("10.0.0.1"), t), 0);
    /* Then 1 s, 2 s, 4 s, 8 s, 8 s (the cap). */
    unsigned expect[] = {1, 2, 4, 8, 8, 8};
    for (unsigned i = 0; i < 6; i++) {
        auth_budget_fail(b, K("10.0.0.1"), NULL, t);
        CHECK_EQ_INT(auth_budget_wait(b, K("10.0.0.1"), t), expect[i]);
        CHECK_EQ_INT(auth_budget_wait(b, K("10.0.0.1"), t + expect[i] * 1000 - 1), 1);
        t += expect[i] * 1000;
        CHECK_EQ_INT(auth_budget_wait(b, K("10.0.0.1"), t), 0);
    }
    /* Other keys are untouched. */
    CHECK_EQ_INT(auth_budget_wait(b, K("10.0.0.2"), t), 0);
    CHECK_EQ_INT(auth_budget_failures(b, K("10.0.0.2"), t), 0);
    /* Success clears. */
    auth_budget_clear(b, K("10.0.0.1"), NULL);
    CHECK_EQ_INT(auth_budget_failures(b, K("10.0.0.1"), t), 0);
    CHECK_EQ_INT(auth_budget_fail(b, K("10.0.0.1"), NULL, t), 1);
    auth_budget_free(b);
}

/* A success clears an address's failures only when they were all against
 * the account that logged in. */
static void test_clear_by_tag(void)
{
    struct auth_budget *b = make(5, 600, 60, 64);
    if (b == NULL)
        return;
    auth_budget_fail(b, K("10.0.0.9"), "alice", 1000);
    auth_budget_fail(b, K("10.0.0.9"), "alice", 1000);
    auth_budget_clear(b, K("10.0.0.9"), "mallory"); /* the attacker's own account */
    CHECK_EQ_INT(auth_budget_failures(b, K("10.0.0.9"), 1000), 2);
    auth_budget_clear(b, K("10.0.0.9"), NULL);
    CHECK_EQ_INT(auth_budget_failures(b, K("10.0.0.9"), 1000), 2);
    auth_budget_clear(b, K("10.0.0.9"), "alice"); /* alice mistyped, then got in */
    CHECK_EQ_INT(auth_budget_failures(b, K("10.0.0.9"), 1000), 0);
    /* Failures against several accounts: no single success clears them. */
    auth_budget_fail(b, K("10.0.0.9"), "alice", 1000);
    auth_budget_fail(b, K("10.0.0.9"), "bob", 1000);
    auth_budget_clear(b, K("10.0.0.9"), "alice");
    auth_budget_clear(b, K("10.0.0.9"), "bob");
    CHECK_EQ_INT(auth_budget_failures(b, K("10.0.0.9"), 1000), 2);
    auth_budget_free(b);
}

static void test_window(void)
{
    struct auth_budget *b = make(2, 60, 300, 64);
    if (b == NULL)
        return;
    uint64_t t = 5000;
    auth_budget_fail(b, K("alice"), NULL, t);
    auth_budget_fail(b, K("alice"), NULL, t + 59000);
    CHECK_EQ_INT(auth_budget_failures(b, K("alice"), t + 59000), 2);
    /* 60 s after the latest failure (and no block): forgotten. */
    CHECK_EQ_INT(auth_budget_failures(b, K("alice"), t + 59000 + 59999), 2);
    CHECK_EQ_INT(auth_budget_failures(b, K("alice"), t + 59000 + 60000), 0);
    /* A block longer than the window outlives it. */
    for (unsigned i = 0; i < 12; i++)
        auth_budget_fail(b, K("bob"), NULL, t);
    CHECK_EQ_INT(auth_budget_wait(b, K("bob"), t + 61000), 300 - 61);
    CHECK_EQ_INT(auth_budget_wait(b, K("bob"), t + 300000), 0);
    CHECK_EQ_INT(auth_budget_failures(b, K("bob"), t + 300000), 0);
    auth_budget_free(b);
}

static void test_off_and_flood(void)
{
    struct auth_budget *off = make(0, 60, 60, 64);
    if (off != NULL) {
        for (unsigned i = 0; i < 100; i++)
            CHECK_EQ_INT(auth_budget_fail(off, K("x"), NULL, 1000), 0);
        CHECK_EQ_INT(auth_budget_wait(off, K("x"), 1000), 0);
        auth_budget_free(off);
    }
    /* 64 entries, 100,000 keys failing: the table keeps at most 64 and the
     * most recent key is still blocked. */
    struct auth_budget *b = make(1, 600, 60, 64);
    if (b == NULL)
        return;
    char key[32];
    for (unsigned i = 0; i < 100000; i++) {
        snprintf(key, sizeof(key), "10.%u.%u.%u", i >> 16, (i >> 8) & 255, i & 255);
        auth_budget_fail(b, K(key), NULL, 1000 + i);
    }
    unsigned live = 0;
    for (unsigned i = 0; i < 100000; i++) {
        snprintf(key, sizeof(key), "10.%u.%u.%u", i >> 16, (i >> 8) & 255, i & 255);
        live += auth_budget_failures(b, K(key), 200000) > 0;
    }
    CHECK(live <= 64);
    CHECK(live >= 8);
    auth_budget_fail(b, K("victim"), NULL, 300000);
    auth_budget_fail(b, K("victim"), NULL, 300000);
    CHECK_EQ_INT(auth_budget_wait(b, K("victim"), 300000), 1);
    auth_budget_free(b);
}

static void test_addr_key(void)
{
    char k[64];
    auth_budget_addr_key("127.0.0.2", k, sizeof(k));
    CHECK_EQ_STR(k, "127.0.0.2");
    auth_budget_addr_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd", k, sizeof(k));
    CHECK_EQ_STR(k, "2001:db8:1:2::/64");
    char k2[64];
    auth_budget_addr_key("2001:db8:1:2::99", k2, sizeof(k2));
    CHECK_EQ_STR(k2, k);
    auth_budget_addr_key("::ffff:10.0.0.1", k, sizeof(k));
    CHECK_EQ_STR(k, "::ffff:10.0.0.1");
    auth_budget_addr_key("?", k, sizeof(k));
    CHECK_EQ_STR(k, "?");
}

TEST_MAIN(TEST_CASE(test_backoff), TEST_CASE(test_clear_by_tag), TEST_CASE(test_window), TEST_CASE(test_off_and_flood),
          TEST_CASE(test_addr_key))
