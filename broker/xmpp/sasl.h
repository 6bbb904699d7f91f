/* sasl.h - SASL authentication (RFC 6120 §6) through Cyrus SASL.
 *
 * Cyrus SASL runs in-process with Herald's own credential store behind it:
 * an auxprop plugin registered here ("herald") answers the SCRAM plugin's
 * *authPassword lookups with RFC 5803 values built from the salted keys in
 * LMDB, and a checkpass callback verifies PLAIN passwords against the same
 * keys. No password is stored or handed to Cyrus in plaintext form.
 * Usernames are canonicalised with Nodeprep, so "Alice" logs in as alice.
 *
 * Cyrus SASL is process-global; hsasl_global_init binds it to one store.
 *
 * Against guessing (docs/security.md): failure budgets per client address
 * and per account name (auth.address_failures, auth.account_failures) refuse
 * attempts with temporary-auth-failure, before any password check, while a
 * key is blocked; an unknown user gets deterministic fake SCRAM credentials
 * (salt and iteration count as for a real account) and the same PBKDF2 cost
 * for PLAIN, and fails like a wrong password. */
#ifndef HERALD_SASL_H
#define HERALD_SASL_H
#include <stdbool.h>
#include <stddef.h>

struct store;
struct hsasl;
struct config;

/* Once per process, before any session: cfg's domain, auth.mechanisms,
 * scram_iterations and budget settings are copied. store must be writable
 * (the fake-salt secret is made in it on first start). */
int hsasl_global_init(struct store *store, const struct config *cfg);
void hsasl_global_done(void);

/* A server-side exchange for one stream. tls: the stream is encrypted;
 * plain_ok: PLAIN may be offered without TLS (allow_plaintext); peer: the
 * client's address (its budget key). */
struct hsasl *hsasl_new(const char *domain, bool tls, bool plain_ok, const char *peer);
void hsasl_free(struct hsasl *s);

/* Space-separated mechanism names to offer (static until hsasl_free). */
const char *hsasl_mechanisms(struct hsasl *s);

enum hsasl_status { HSASL_CONTINUE, HSASL_SUCCESS, HSASL_FAILURE };

struct hsasl_result {
    enum hsasl_status status;
    const char *out;      /* challenge or additional data (raw, not base64) */
    unsigned outlen;
    bool has_out;         /* distinguishes empty data from none */
    const char *failure;  /* RFC 6120 §6.5 condition on failure */
    unsigned retry_s;     /* > 0: a failure budget refused the attempt; retry after */
};

/* Starts mech with an optional initial response (in == NULL: none). */
void hsasl_start(struct hsasl *s, const char *mech, const char *in, unsigned inlen,
                 struct hsasl_result *r);
void hsasl_step(struct hsasl *s, const char *in, unsigned inlen, struct hsasl_result *r);
/* After success: the authenticated localpart (prepared). */
const char *hsasl_user(struct hsasl *s);
/* The authentication identity given (a prepared localpart, whether or not
 * such an account exists), or NULL if none was seen yet. */
const char *hsasl_account(struct hsasl *s);
/* The mechanism in use, or NULL. */
const char *hsasl_mech(struct hsasl *s);

#endif
