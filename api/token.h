/* token.h - REST bearer tokens: "ID.SECRET", ID 16 hex digits (public, used
 * by list and revoke), SECRET 43 base64url characters (32 random bytes).
 * Only SHA-256(SECRET) is stored (storage/store_tokens.c). */
#ifndef HERALD_TOKEN_H
#define HERALD_TOKEN_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;
struct store_token;

enum { SCOPE_READ = 1, SCOPE_PUBLISH = 2, SCOPE_MANAGE = 4, SCOPE_ALL = 7 };

#define TOKEN_TEXT_MAX 64 /* 16 + 1 + 43 + NUL, rounded */

/* Parses "read,publish,manage" (any subset, comma separated). -1 if a name
 * is unknown or the list is empty. */
int token_scopes_parse(const char *s, uint8_t *out);
/* Writes the scope names, comma separated. */
void token_scopes_format(uint8_t scopes, char *out, size_t cap);

/* Makes and stores a token for jid, bound to the account's current
 * generation; the text goes to out (cap >= TOKEN_TEXT_MAX), the record to
 * rec. HERALD_ENOTFOUND if the account does not exist. */
int token_create(struct store *s, const char *jid, uint8_t scopes, uint64_t expires,
                 char *out, size_t cap, struct store_token *rec);
/* token_create without storing the record (store false: the caller stores
 * it, e.g. through the cluster log). */
int token_make(struct store *s, const char *jid, uint8_t scopes, uint64_t expires, char *out,
               size_t cap, struct store_token *rec, bool store);
/* Looks a token text up and checks its secret, expiry (now: unix seconds)
 * and account: the account must exist with the generation the token was
 * made for. 0 with *rec filled, or HERALD_EFORBIDDEN when it is malformed,
 * unknown, wrong, expired or its account was deleted or replaced (the
 * caller answers 401 alike), or a storage error. */
int token_check(struct store *s, const char *text, size_t len, uint64_t now,
                struct store_token *rec);
/* Parses a 16-hex-digit token id (or a whole token, whose id is used). */
int token_id_parse(const char *s, uint8_t id[8]);
void token_id_format(const uint8_t id[8], char out[17]);

#endif
