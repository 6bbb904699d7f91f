/* iq.h - the table of iq handlers the server itself answers.
 *
 * One row per (namespace, element, type): the dispatcher checks the iq shape
 * once (one child for get/set), finds the row or answers service-unavailable,
 * and the same table produces the server's disco#info features, so what is
 * advertised is what is implemented. */
#ifndef HERALD_IQ_H
#define HERALD_IQ_H

struct session;
struct xnode;
struct arena;

/* An iq of type get/set addressed to the server (or with no 'to'). */
void iq_dispatch(struct session *from, struct xnode *iq, struct arena *a);

/* An iq from a component or a remote server to the server JID: ping and
 * disco (info and items, configured nodes too) are answered through the
 * router; anything else gets service-unavailable. */
struct herald;
void iq_dispatch_external(struct herald *h, struct xnode *iq, struct arena *a);

/* Answers iq with a result carrying payload (may be NULL); for the
 * handlers of the table that live in other files (mam.c). */
void iq_result(struct session *from, struct xnode *iq, struct arena *a, struct xnode *payload);

/* The features the server advertises in disco#info, NULL-terminated. */
const char *const *iq_features(void);

#endif
