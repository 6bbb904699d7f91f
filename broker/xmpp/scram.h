/* scram.h - SCRAM key derivation (RFC 5802 §3) for Herald's credential store.
 *
 * Herald stores, per user and per hash, the salt, iteration count, StoredKey
 * and ServerKey; never the password. These helpers derive them from a
 * password (`herald user add|passwd`), format them as RFC 5803 authPassword
 * values for Cyrus SASL's SCRAM plugin, and check a PLAIN password against
 * them. */
#ifndef HERALD_SCRAM_H
#define HERALD_SCRAM_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

enum scram_hash { SCRAM_SHA1, SCRAM_SHA256 };

#define SCRAM_DEFAULT_ITERATIONS 4096u

/* Fills both hashes' keys with fresh random salts, and a fresh random
 * nonzero generation. Returns 0 or HERALD_E*. */
int scram_make_user(struct store_user *u, const char *password, size_t len,
                    unsigned iterations);

/* Credentials for an account that does not exist, for answering like a
 * real one (RFC 5802 §5.1 leaves this to the server; this is the usual
 * defence against enumeration): salts and keys are HMAC-SHA-256 of bare
 * under the server secret, so repeated attempts see the same salt, with the
 * given iteration count. No password matches them. Returns 0 or HERALD_E*. */
int scram_fake_user(struct store_user *u, const uint8_t secret[STORE_SECRET_LEN], const char *bare,
                    unsigned iterations);

/* "SCRAM-SHA-256$<iter>:<salt b64>$<StoredKey b64>:<ServerKey b64>"
 * (RFC 5803 §3). Returns the length, or -1 if cap is too small. */
int scram_auth_password(const struct store_user *u, enum scram_hash h, char *out, size_t cap);

/* True when password matches the stored SHA-256 keys (constant-time compare). */
bool scram_check_password(const struct store_user *u, const char *password, size_t len);

#endif
