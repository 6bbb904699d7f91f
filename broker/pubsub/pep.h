/* pep.h - PEP (XEP-0163) on every account's bare JID, and the XEP-0115
 * entity capabilities that decide who gets its notifications.
 *
 * pep.c is the PEP edge: pubsub iqs to a bare JID run through the XEP-0060
 * edge (pubsub_iq.c) with the service scoped to that account
 * (pubsub_scope), disco on an account, the notification sink of PEP events
 * (rendered by pubsub_notify.c from the owner's JID), the implicit
 * recipients of §4.3 and the last items of §4.3.2 on presence.
 *
 * caps.c is the capabilities cache: ver -> the namespaces an entity wants
 * notifications for (its "+notify" features), filled by disco#info queries
 * whose answers are verified against the ver hash (XEP-0115 §5). Bounded:
 * [pep] caps_cache_size entries (least recently used evicted) and
 * [pep] caps_max_queries outstanding queries (the oldest forgotten).
 * docs/pubsub.md "PEP". */
#ifndef HERALD_PEP_H
#define HERALD_PEP_H
#include <stdbool.h>
#include <stddef.h>

struct herald;
struct session;
struct xnode;
struct arena;

#define NS_CAPS "http://jabber.org/protocol/caps"
#define NS_PUBSUB_PEP "http://jabber.org/protocol/pubsub"
#define NS_PUBSUB_PEP_OWNER "http://jabber.org/protocol/pubsub#owner"
#define CAPS_VER_MAX 63

/* ---- pep.c ---- */

/* Made after the pubsub service and its XMPP edge (registers a sink). */
int pep_open(struct herald *h);
void pep_close(struct herald *h);

/* The pubsub_hooks.in_roster_groups hook (ud: the struct herald): is
 * contact in one of groups ('\n'-separated) in owner's roster? */
bool pep_in_roster_groups(void *ud, const char *owner, const char *contact, const char *groups);
/* The pubsub_hooks.pep_recipients hook (ud: the struct herald). */
void pep_recipients(void *ud, const char *service, const char *node,
                    void (*fn)(void *fud, const char *jid, const char *const *subids,
                               size_t nsubids, const char *via),
                    void *fud);

/* Router hook for an iq get/set to the local account `bare` (the
 * requester's own or another's): handles pubsub and pubsub#owner
 * requests, disco on a PEP node and disco on another account, and returns
 * true; false for any other payload (disco on one's own account is
 * iq.c's). */
bool pep_route_iq(struct session *from, struct xnode *iq, struct arena *a, const char *bare);
/* iq.c's table: a pubsub request with no 'to' (one's own PEP service). */
/* The XEP-0060 edge on the PEP service `service` (an account's bare JID) for
 * requester who; the cluster's apply of a PEP change calls it too. */
void pep_pubsub_iq(struct herald *h, const char *who, struct xnode *iq, struct arena *a,
                   const char *service);
void pep_handle_iq(struct session *from, struct xnode *iq, struct xnode *child, struct arena *a);
/* iq.c: what disco#info and disco#items on one's own bare JID add for
 * PEP (the pubsub/pep identity and features; the visible nodes). 0 or -1
 * (no memory). */
int pep_disco_info_add(struct herald *h, struct arena *a, struct xnode *query);
int pep_disco_items_add(struct herald *h, const char *owner, const char *who, struct arena *a,
                        struct xnode *query);

/* presence.c: s sent available presence st (broadcast); its XEP-0115
 * <c/> is looked up or queried, and once its +notify features are known
 * the last items it should have are sent (§4.3.2). */
void pep_presence(struct session *s, const struct xnode *st);
/* presence.c: s is gone (forget its capabilities). */
void pep_session_gone(struct session *s);
/* iq.c: an iq result or error addressed to the server (maybe the answer
 * to a capabilities query). */
void pep_iq_answer(struct session *from, const struct xnode *iq);

/* ---- caps.c ---- */

struct caps;
/* The +notify namespaces of one ver, NUL-separated (valid until the next
 * caps_* call). */
struct caps_notify {
    const char *names;
    size_t len;
};

/* timeout_ms: how long an unanswered query keeps others for its ver from
 * being asked. */
int caps_open(unsigned cache_size, unsigned max_queries, unsigned timeout_ms, struct caps **out);
void caps_close(struct caps *c);
unsigned caps_count(const struct caps *c);
/* Whether ver is known (and then, in *out, its +notify namespaces); a hit
 * makes the entry the most recently used. */
bool caps_lookup(struct caps *c, const char *ver, struct caps_notify *out);
bool caps_notify_has(const struct caps_notify *n, const char *ns);
/* A query of full (a full JID) for ver is due: 1 and its iq id in id
 * (at least 24 bytes) when it should be sent, 0 when one for ver is
 * already outstanding (for less than the timeout), or HERALD_ENOMEM. At
 * the bound the oldest outstanding query is forgotten. */
int caps_query_begin(struct caps *c, const char *full, const char *ver, char *id);
/* An iq result or error from `from`: when it answers an outstanding
 * query, the query ends; a result whose <query/> hashes to the ver asked
 * (sha-1, §5.1) is cached. Returns 1 and the ver in ver_out (CAPS_VER_MAX
 * + 1 bytes) when a ver became known, else 0. */
int caps_query_answer(struct caps *c, const char *from, const struct xnode *iq, char *ver_out);
/* XEP-0115 §5.1: the verification string of a disco#info <query/>, hashed
 * with sha-1 and base64-encoded into out (at least 29 bytes). 0, or
 * HERALD_EINVAL for a result §5.4 says to refuse (duplicate identities or
 * features, a form with several FORM_TYPE values), or HERALD_ENOMEM. */
int caps_ver(const struct xnode *query, char *out);

#endif
