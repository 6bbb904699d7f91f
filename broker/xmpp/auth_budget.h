/* auth_budget.h - failure budgets for SASL authentication, with backoff.
 *
 * One budget counts failed logins per key (a client address, or an account
 * name) in a fixed-size table that never grows: 8-way buckets addressed by a
 * keyed 64-bit hash of the key, the least recently failed entry evicted when
 * a bucket is full, an entry forgotten once it has seen no failure for the
 * window and its block has ended. After `free_failures` failures within the
 * window, each further failure blocks the key for 1 s, 2 s, 4 s ... up to
 * `backoff_max_s`; while blocked, attempts are refused without verifying
 * anything (sasl.c), so a blocked guess costs no PBKDF2. A block only ever
 * lasts backoff_max_s: no key is locked out for good.
 *
 * Pure logic (time is a parameter), so tests/unit/test_auth_budget.c drives
 * it with a fake clock. Not thread-safe: the loop thread owns it. */
#ifndef HERALD_AUTH_BUDGET_H
#define HERALD_AUTH_BUDGET_H
#include <stddef.h>
#include <stdint.h>

struct auth_budget;

struct auth_budget_opts {
    unsigned free_failures; /* failures before the first block; 0: the budget is off */
    unsigned window_s;      /* an entry without a failure for this long is forgotten */
    unsigned backoff_max_s; /* cap on one block */
    unsigned entries;       /* table size (rounded up to a power of two, at least 8) */
};

/* *out is owned by the caller (auth_budget_free). Returns 0 or HERALD_ENOMEM. */
int auth_budget_new(const struct auth_budget_opts *o, struct auth_budget **out);
void auth_budget_free(struct auth_budget *b);

/* Seconds (rounded up, >= 1) until key may be tried again, or 0 if now. */
unsigned auth_budget_wait(struct auth_budget *b, const char *key, size_t len, uint64_t now_ms);
/* Failures counted for key within the window (0 if none). */
unsigned auth_budget_failures(struct auth_budget *b, const char *key, size_t len,
                              uint64_t now_ms);
/* Counts one failed (verified) attempt; returns the failures now counted.
 * tag (NUL-terminated, or NULL): what the attempt was against (the account
 * name, for an address's entry), remembered for auth_budget_clear. */
unsigned auth_budget_fail(struct auth_budget *b, const char *key, size_t len, const char *tag,
                          uint64_t now_ms);
/* Forgets key's failures if they were all made against tag (a successful
 * login from that address to that account: the user who mistyped). A
 * success on another account leaves them: otherwise an attacker could log
 * in to an account of their own between guesses and never be blocked. */
void auth_budget_clear(struct auth_budget *b, const char *key, size_t len, const char *tag);

/* The budget key of a peer address: IPv4 addresses as they are; IPv6
 * addresses by their /64 prefix, since one host commonly holds a whole /64
 * and could otherwise step to a fresh address per guess. out: >= 48 bytes. */
void auth_budget_addr_key(const char *peer, char *out, size_t cap);

#endif
