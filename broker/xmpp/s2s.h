/* s2s.h - server-to-server federation (RFC 6120 for servers, XEP-0220
 * dialback, XEP-0178 SASL EXTERNAL, XEP-0185 keys, XEP-0368 lookups).
 *
 * Streams are one-way for stanzas: an outgoing stream (we send, as one of
 * our domains, to one peer domain) and incoming streams (a peer sends to
 * us). Both are struct link streams; TLS is STARTTLS (or direct TLS when
 * an _xmpps-server SRV record says so), required by default. A peer is
 * authenticated by SASL EXTERNAL when its certificate verifies and names
 * it, else by dialback (unless s2s.secure_auth). Stanzas for a peer queue,
 * bounded, while its stream is set up and go out in order; when it cannot
 * be reached and authenticated within s2s.connect_timeout they bounce
 * (remote-server-not-found / remote-server-timeout). docs/federation.md. */
#ifndef HERALD_S2S_H
#define HERALD_S2S_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct herald;
struct conn;
struct chunk;

/* Sets up keys and TLS contexts. Returns 0 or HERALD_E* (logged). */
int s2s_init(struct herald *h);
/* Takes over a connection accepted on the s2s port. */
void s2s_accept(struct herald *h, struct conn *conn);
/* Queues one stanza (its bytes, one chunk) from our domain `local` to the
 * peer domain `remote`. Returns 0, HERALD_ELIMIT (queue full) or another
 * HERALD_E* (federation off, no memory): the caller bounces it. */
int s2s_send(struct herald *h, const char *local, const char *remote, struct chunk *stanza);
/* Timeouts: set-up past s2s.connect_timeout fails, idle streams close. */
void s2s_sweep(struct herald *h, uint64_t now_ms);
/* Shutdown: every stream is closed, queued stanzas bounce. */
void s2s_close_all(struct herald *h);
void s2s_free(struct herald *h);
/* Streams now, for /metrics. */
void s2s_counts(const struct herald *h, unsigned *in, unsigned *out);
/* A domain this server answers for on s2s: its own, the pubsub service's,
 * a component's. */
bool s2s_hosted(const struct herald *h, const char *domain);

/* XEP-0185: hex(HMAC-SHA256(SHA-256(secret), receiving + ' ' + originating
 * + ' ' + stream_id)) into out (65 bytes). */
void s2s_dialback_key(const unsigned char secret[32], const char *receiving,
                      const char *originating, const char *stream_id, char out[65]);

#endif
