/* im.h - instant messaging and presence (RFC 6121): rosters, presence
 * subscriptions, presence broadcast, offline messages.
 *
 * roster.c keeps each account's roster in LMDB (no copy in memory: rosters
 * are small and read when presence changes) with per-user roster versions
 * and tombstones for versioning. presence.c runs the subscription state
 * machine (RFC 6121 Appendix A) between local accounts, presence broadcast
 * and probes, directed presence, and offline message storage (XEP-0160).
 * Every change goes through the loop turn's write batch; roster pushes and
 * results leave after its commit. */
#ifndef HERALD_IM_H
#define HERALD_IM_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct herald;
struct session;
struct xnode;
struct arena;
struct store_txn;

#define NS_ROSTER "jabber:iq:roster"

/* An account's roster entry for one contact, as roster.c reads and writes it. */
struct ritem {
    char contact[512];
    uint8_t sub;        /* ROSTER_* (store.h) */
    bool ask, pending_in, approved;
    bool in_roster;     /* false: unknown, or only a stored request / tombstone */
    char name[256];
    char groups[1024];  /* NUL-separated */
    size_t groups_len;
    char request[4096]; /* stored inbound subscribe stanza (§3.1.3), if it fit */
    size_t request_len;
};

/* roster.c */
void roster_handle_iq(struct session *s, struct xnode *iq, struct arena *a);
/* Cluster mode: a roster set from the log (cluster.c), applied as
 * roster_handle_iq would for the requester `full`; s is its session on the
 * instance that accepted it (answered there), else NULL. */
void roster_apply(struct herald *h, struct session *s, const char *full, struct xnode *iq,
                  struct arena *a);
/* Loads owner's item for contact (in_roster false and zeroed when absent). */
int roster_load(struct store_txn *t, const char *owner, const char *contact, struct ritem *it);
/* Writes it with a new roster version and pushes it to owner's interested
 * resources after the commit. Returns 0 or a HERALD_E* code (the batch is
 * then aborted). */
int roster_save(struct herald *h, struct store_txn *t, const char *owner, struct ritem *it);
/* Every roster item of owner with `want` bits in its subscription, then fn. */
int roster_each_sub(struct herald *h, const char *owner, uint8_t want,
                    void (*fn)(void *ud, const char *contact), void *ud);

/* presence.c */
/* A presence stanza from a bound session (no 'to', or 'to' parsed into
 * to_bare/to_full, both prepared). */
void presence_handle(struct session *from, struct xnode *st, struct arena *a, const char *to_full,
                     const char *to_bare, bool to_local_account);
/* Handles an outbound subscription-type presence (subscribe, subscribed,
 * unsubscribe, unsubscribed) from user to contact, both bare (§3). */
/* Cluster mode: a probe of contact (bare) from from_full, offered by another
 * instance: answered with the presence of contact's sessions here when
 * from_full's account may see it (RFC 6121 §4.3.2). */
void presence_probe_local(struct herald *h, const char *contact, const char *from_full);
/* Cluster mode: the resource full, on an instance that died or restarted,
 * turns unavailable for the sessions here (its contacts and the account's
 * own resources), as for a broken connection (RFC 6121 §4.5.4). */
void presence_remote_gone(struct herald *h, const char *full);
void presence_subscription(struct herald *h, const char *user, const char *contact,
                           const char *type, struct xnode *st);
/* Federation: a subscription stanza (type subscribe, subscribed,
 * unsubscribe, unsubscribed) from remote (bare) to the local account local. */
void presence_inbound_subscription(struct herald *h, const char *remote, const char *local,
                                   const char *type, struct xnode *st);
/* The session is going away: broadcast its unavailable presence. */
void presence_session_gone(struct session *s);
/* Stores a message for an account with no available resource. Returns 0
 * when stored (or an error was returned to the sender), -1 if the message
 * is not storable (the caller answers). */
int presence_offline_store(struct session *from, struct xnode *msg, struct arena *a,
                           const char *bare);

/* The same without a sending session (stream management re-routing what a
 * session that ended never acknowledged): 0 stored, -1 not storable (not
 * chat/normal), HERALD_ELIMIT storage full, or another HERALD_E* code. */
int im_offline_store(struct herald *h, struct xnode *msg, struct arena *a, const char *bare);

/* Offline storage has two lists per account, each with its bound: messages
 * ([im] max_offline_messages) and pubsub notifications of nodes whose
 * notification type is normal ([pubsub] max_offline_notifications). Both
 * are delivered, messages first, at the next available presence. */
enum im_offline_kind { IM_OFFLINE_MESSAGES, IM_OFFLINE_NOTIFICATIONS };
/* Stores a serialized stanza for an existing local account: 0,
 * HERALD_ENOTFOUND (no such account), HERALD_ELIMIT (the list is full). */
int im_offline_store_raw(struct herald *h, const char *bare, enum im_offline_kind kind,
                         const char *xml, size_t len);

/* Delivers more stored messages once the write queue has room again. */
void presence_offline_continue(struct session *s);

/* Pubsub hooks: does contact hold a presence subscription to owner
 * (owner's roster item for contact is from/both)? Is a full JID available? */
bool im_presence_subscribed(struct herald *h, const char *owner, const char *contact);
bool im_available(struct herald *h, const char *full_jid);

/* private.c, vcard.c: XEP-0049 private XML storage and XEP-0054 vcard-temp.
 * The handlers take the iq and its payload child, as iq.c's table calls
 * them, and answer sets only after the batch's commit. */
#define NS_PRIVATE "jabber:iq:private"
#define NS_VCARD "vcard-temp"
void private_handle_iq(struct session *s, struct xnode *iq, struct xnode *q, struct arena *a);
void vcard_handle_iq(struct session *s, struct xnode *iq, struct xnode *v, struct arena *a);
/* An iq get or set from s to another account, bare (router.c): answers a
 * vcard-temp get, refuses a vCard set or any private XML request with
 * forbidden, and returns true; false for any other payload. */
bool im_iq_to_other_account(struct session *s, struct xnode *iq, struct arena *a,
                            const char *bare);
/* Is el empty (no children, no attributes)? Setting such an element (or
 * vCard) deletes the stored one. */
bool im_xml_empty(const struct xnode *el);
/* Sends the empty result of iq to s once the write batch has committed
 * (or the commit's error instead). */
void im_result_after_commit(struct session *s, const struct xnode *iq, struct arena *a);
/* ---- message carbons (carbons.c) and blocking (blocking.c) ---- */
#define NS_CARBONS "urn:xmpp:carbons:2"
#define NS_FORWARD "urn:xmpp:forward:0"
#define NS_BLOCKING "urn:xmpp:blocking"
#define NS_BLOCKING_ERRORS "urn:xmpp:blocking:errors"
struct account;
struct jid;

/* XEP-0280 §4-5: <enable/> and <disable/> (iq table rows). */
void carbons_handle_iq(struct session *s, struct xnode *iq, struct xnode *child, struct arena *a);
/* A message from `from` about to be routed to another account (or a
 * remote JID): <sent/> copies to from's other carbons-enabled resources
 * (§8). Nothing is done unless one of them has carbons enabled. */
void carbons_sent(struct session *from, const struct xnode *msg);
/* A message about to be delivered to acct's sessions to[0..n) (n may be 0:
 * stored offline): removes <private/> (§9) and sends <received/> copies to
 * acct's other carbons-enabled resources (§7), never to `from`. */
void carbons_received(struct session *from, struct account *acct, struct xnode *msg,
                      struct session *const *to, size_t n);

/* XEP-0191 §3.2-3.5: <blocklist/>, <block/>, <unblock/> (iq table rows). */
void blocking_handle_iq(struct session *s, struct xnode *iq, struct xnode *child, struct arena *a);
/* Loads the accounts that have a block list (server start); 0 or error. */
int blocking_open(struct herald *h);
void blocking_close(struct herald *h);
/* Router hook, called only while some account has a block list
 * (h->blockers != NULL): true when st (from `from` to `to`) was refused
 * (§3.6, §3.7) and answered or dropped here. */
bool blocking_route(struct session *from, struct xnode *st, struct arena *a, const struct jid *to);
/* Presence hook: may presence pass between bare JID `a` and JID `b` in
 * either direction (neither blocks the other)? */
bool blocking_presence_ok(struct herald *h, const char *a, const char *b);
/* Does the local account owner (bare) block jid (a remote sender: full,
 * bare or domain entries match, §3.6)? */
bool blocking_blocks(struct herald *h, const char *owner, const char *jid);
/* ---- mam.c: message archives (XEP-0313 urn:xmpp:mam:2) and stanza ids
 * (XEP-0359), docs/mam.md ---- */
#define NS_MAM "urn:xmpp:mam:2"
#define NS_SID "urn:xmpp:sid:0"
/* For a message from a local session to the existing or unknown local
 * account to_bare, before it is serialized: strips spoofed stanza-ids,
 * archives it for both accounts when wanted and adds the recipient's
 * <stanza-id/>. Delivery never waits for or fails with the archive. */
void mam_route_message(struct session *from, struct xnode *msg, struct arena *a,
                       const char *to_bare);
/* The same for a message between any two JIDs of which one is a local
 * account (federation: from or to a remote party). */
void mam_route(struct herald *h, const char *from_bare, const char *from_full, struct xnode *msg,
               struct arena *a, const char *to_bare);
/* iq handlers (iq.c's table): <query/> get (the form) and set (a query),
 * <prefs/> get and set, on the requester's own archive. */
void mam_query_iq(struct session *from, struct xnode *iq, struct xnode *child, struct arena *a);
void mam_prefs_iq(struct session *from, struct xnode *iq, struct xnode *child, struct arena *a);
/* XEP-0313 on a pubsub node (XEP-0442), for the service's iq table:
 * checks read access as <items/> does, sends the results to who (the
 * requester's full JID) from service, and sets *answer to the <fin/> (or
 * the form, for a get) to put in the iq result. 0 or a HERALD_E* code
 * (the service's pubsub_why() explains access errors). */
struct pubsub;
int mam_node_query(struct herald *h, struct pubsub *ps, const char *service, const char *who,
                   const struct xnode *iq, const struct xnode *query, struct arena *a,
                   struct xnode **answer);
/* ---- end of mam.c ---- */

#endif
