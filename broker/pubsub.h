/* pubsub.h - the XEP-0060 publish/subscribe service.
 *
 * pubsub.c holds the service's state and rules: nodes with their
 * configuration, affiliations and subscriptions in memory (loaded from LMDB
 * at start; subscribers indexed per node so a publish never looks at other
 * nodes), every change written into the current write batch, and the
 * deferred output that goes out only after that batch commits. It knows no
 * XML beyond the payload bytes it stores; pubsub_iq.c translates stanzas to
 * these calls and results back to stanzas.
 *
 * Durability contract (docs/pubsub.md): every change joins the loop turn's
 * write batch (batch.h, group commit); iq results and event notifications
 * are released by batch callbacks only after the commit. If the batch fails,
 * every queued result becomes an error reply, nothing is notified, and the
 * in-memory state is reloaded from LMDB. */
#ifndef HERALD_PUBSUB_H
#define HERALD_PUBSUB_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uthash.h>

#include "pubsub_config.h"

struct herald;
struct store_txn;
struct chunk;
struct xnode;
struct arena;
struct session;

enum ps_aff { AFF_NONE, AFF_OWNER, AFF_PUBLISHER, AFF_PUBLISH_ONLY, AFF_MEMBER, AFF_OUTCAST };
enum ps_sub_state { SUB_NONE, SUB_SUBSCRIBED, SUB_PENDING };

struct ps_sub {
    struct ps_sub *next;
    char *jid;          /* as subscribed: bare or full */
    char subid[20];
    uint8_t state;
    bool deliver;       /* pubsub#deliver subscription option */
};

struct ps_aff_rec {
    char *jid;          /* bare JID */
    uint8_t aff;
    UT_hash_handle hh;
};

struct ps_node {
    char *name;
    uint64_t id;
    uint64_t created;
    uint64_t next_seq;
    uint32_t item_count;
    struct ps_config cfg;
    struct ps_sub *subs;
    bool shared_jids;      /* some JID holds several subscriptions (sticky) */
    struct ps_aff_rec *affs;
    UT_hash_handle hh;     /* by name */
    UT_hash_handle hh_id;  /* by id */
};

struct ps_out;

/* A local watcher of one node (the REST bridge's event streams). Its fn runs
 * after a change of the node has committed: PS_WATCH_ITEMS (items were
 * published: read them from storage), PS_WATCH_RETRACT (item_id), PS_WATCH_PURGE,
 * PS_WATCH_DELETE (the watcher is detached before fn runs). */
enum ps_watch_event { PS_WATCH_ITEMS, PS_WATCH_RETRACT, PS_WATCH_PURGE, PS_WATCH_DELETE };
struct ps_watch {
    struct ps_watch *prev, *next;
    uint64_t node_id;
    void (*fn)(struct ps_watch *w, enum ps_watch_event ev, const char *item_id);
};
struct ps_watch_set;

struct ps_service {
    struct herald *h;
    char *jid;                  /* pubsub.<domain> */
    struct ps_caps caps;
    bool auto_create;
    struct ps_node *nodes;      /* by name */
    struct ps_node *by_id;
    uint64_t msg_seq;
    char *env_prefix;           /* "<message from='<jid>' to='", escaped once */
    size_t env_prefix_len;
    uint64_t last_stamp;        /* publish times never go backwards (item_expire) */
    struct ps_watch_set *watch_sets; /* by node id */
};

/* An error for the requester: RFC 6120 condition, type, and the optional
 * pubsub#errors condition and feature (XEP-0060 §7, §12). */
struct ps_err {
    const char *cond;
    const char *type;
    const char *app;
    const char *feature;
    const char *text;
};

int pubsub_open(struct herald *h, struct ps_service **out);
void pubsub_close(struct ps_service *ps);

/* Deletes items older than their node's pubsub#item_expire (called from the
 * server's once-a-second sweep; the deletions join the current batch). */
void pubsub_expire(struct ps_service *ps);

/* A read view (the open batch, so reads see this turn's writes, or a
 * snapshot); end it with pubsub_txn_done. */
struct store_txn *pubsub_txn(struct ps_service *ps, int *rc);
void pubsub_txn_done(struct ps_service *ps, struct store_txn *t);

/* Sends a stanza (serialized once) to a local JID: now if no batch is open,
 * else after the commit. `reply_to`/`reply_id` let a failed commit turn it
 * into an error reply instead. */
void pubsub_send(struct ps_service *ps, const char *to, const struct xnode *st,
                 bool is_reply, const char *reply_id);

struct ps_node *pubsub_node(struct ps_service *ps, const char *name);
uint8_t pubsub_affiliation(const struct ps_node *n, const char *bare);

/* ---- use cases (XEP-0060 §6-8). `who` is the requester's full JID. ---- */
int pubsub_create(struct ps_service *ps, const char *who, const char *name,
                  const struct xnode *config_form, struct arena *a, char **created_name,
                  struct ps_err *err);
int pubsub_delete(struct ps_service *ps, const char *who, const char *name, const char *redirect,
                  struct ps_err *err);
int pubsub_purge(struct ps_service *ps, const char *who, const char *name, struct ps_err *err);
int pubsub_configure(struct ps_service *ps, const char *who, const char *name,
                     const struct xnode *form, struct arena *a, struct ps_err *err);

struct ps_publish_req {
    const char *node;
    const char *item_id;        /* NULL: generate */
    bool has_item;                /* an <item/> was given */
    const struct xnode *payload;  /* the item's one child element, or NULL */
    const struct xnode *options;  /* publish-options form, or NULL */
};
int pubsub_publish(struct ps_service *ps, const char *who, const struct ps_publish_req *req,
                   struct arena *a, char *id_out, size_t id_cap, struct ps_err *err);
int pubsub_retract(struct ps_service *ps, const char *who, const char *node, const char *item_id,
                   bool notify, struct ps_err *err);

int pubsub_subscribe(struct ps_service *ps, const char *who, const char *node, const char *jid,
                     struct ps_sub **out, struct ps_err *err);
int pubsub_unsubscribe(struct ps_service *ps, const char *who, const char *node, const char *jid,
                       const char *subid, struct ps_err *err);
int pubsub_set_sub_options(struct ps_service *ps, const char *who, const char *node,
                           const char *jid, const char *subid, bool deliver, struct ps_err *err);
/* Owner: set a subscription state (SUB_NONE removes all of jid's). */
int pubsub_owner_set_sub(struct ps_service *ps, const char *who, const char *node, const char *jid,
                         uint8_t state, struct ps_err *err);
int pubsub_owner_set_aff(struct ps_service *ps, const char *who, const char *node, const char *jid,
                         uint8_t aff, struct ps_err *err);
/* Owner answers a pending subscription (XEP-0060 §8.6). */
int pubsub_authorize(struct ps_service *ps, const char *who, const char *node, const char *jid,
                     const char *subid, bool allow, struct ps_err *err);

/* May `who` read items / see the node (access model, affiliation)? */
int pubsub_can_read(struct ps_service *ps, const struct ps_node *n, const char *who,
                    struct ps_err *err);

/* Queues the node's newest item for jid (send_last_published_item). */
void pubsub_send_last(struct ps_service *ps, const struct ps_node *n, const char *jid);

/* Watching a node: w->node_id and w->fn set by the caller. Unwatching an
 * unwatched w does nothing. */
int pubsub_watch(struct ps_service *ps, struct ps_watch *w);
void pubsub_unwatch(struct ps_service *ps, struct ps_watch *w);

/* Stanzas addressed to the service (router.c calls these). */
void pubsub_handle_iq(struct ps_service *ps, struct session *from, struct xnode *iq, struct arena *a);
void pubsub_handle_message(struct ps_service *ps, struct session *from, struct xnode *msg,
                           struct arena *a);

#endif
