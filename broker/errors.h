/* errors.h - Herald's one error vocabulary.
 *
 * Every fallible function returns 0 or a negative HERALD_E* code. One table
 * (errors.c) gives each code a name, an English message, the XMPP stanza
 * error it becomes (RFC 6120 §8.3.3 condition and type), the XEP-0060
 * application condition (pubsub#errors) when there is one, and the HTTP
 * status the REST bridge answers with. Handlers never spell an error
 * condition or a status by hand: they return a code, and the edge renders it.
 *
 * not-authorized vs forbidden (RFC 6120 §8.3.3.12 and §8.3.3.6):
 * not-authorized is about credentials (HTTP 401, HERALD_EAUTH); XEP-0060
 * reuses it for "you lack a presence subscription / an approved
 * subscription", which is authorization, so those rows carry HTTP 403. */
#ifndef HERALD_ERRORS_H
#define HERALD_ERRORS_H

enum {
    HERALD_OK = 0,
    HERALD_ENOMEM = -1,      /* allocation failed */
    HERALD_EINVAL = -2,      /* malformed request or argument */
    HERALD_ENOTFOUND = -3,   /* no such user, node, item, session */
    HERALD_EEXIST = -4,      /* already exists */
    HERALD_EIO = -5,         /* storage or system I/O failed */
    HERALD_EFULL = -6,       /* storage full (LMDB map or disk) */
    HERALD_ELIMIT = -7,      /* a configured limit was hit */
    HERALD_EFORBIDDEN = -8,  /* not allowed for this entity */
    HERALD_EJID = -9,        /* address does not prepare (RFC 7622) */
    HERALD_EUNAVAIL = -10,   /* no such service or recipient */
    HERALD_ENOTIMPL = -11,   /* feature not implemented */
    HERALD_ESCHEMA = -12,    /* stored data has an unknown schema version */
    HERALD_EREMOTE = -13,    /* remote domain not reachable (or federation off) */
    HERALD_ECONFLICT = -14,  /* conflicting state (e.g. resource in use) */
    HERALD_ETOOBIG = -15,    /* too large */
    HERALD_EAUTH = -16,      /* no or wrong credentials */
    HERALD_ENOTACCEPTABLE = -17, /* well-formed but refused (a name, the last owner) */
    /* XEP-0060 §7-8 and §12: pubsub#errors application conditions. */
    HERALD_ENODEID_REQUIRED = -18,
    HERALD_EITEM_REQUIRED = -19,
    HERALD_EPAYLOAD_REQUIRED = -20,
    HERALD_EINVALID_PAYLOAD = -21,
    HERALD_EPAYLOAD_TOO_BIG = -22,
    HERALD_EINVALID_JID = -23,
    HERALD_EINVALID_OPTIONS = -24,
    HERALD_EINVALID_SUBID = -25,
    HERALD_ESUBID_REQUIRED = -26,
    HERALD_ENOT_SUBSCRIBED = -27,       /* unsubscribe/options without a subscription */
    HERALD_ENOT_SUBSCRIBED_READ = -28,  /* authorize model: items need a subscription */
    HERALD_ECLOSED_NODE = -29,          /* whitelist model */
    HERALD_EPENDING_SUBSCRIPTION = -30,
    HERALD_EPRESENCE_REQUIRED = -31,
    HERALD_EUNSUPPORTED = -32,          /* feature-not-implemented + <unsupported feature=/> */
    HERALD_EPRECONDITION = -33,         /* publish-options not met */
    HERALD_EUNSUPPORTED_ACCESS = -34,   /* not-acceptable + unsupported-access-model */
    HERALD_EBADREQUEST_IQ = -35,        /* unexpected-request (wrong state) */
    HERALD_EQUOTA = -36,                /* an account's quota (pubsub.max_nodes_per_account) */
    HERALD_ENOT_IN_ROSTER_GROUP = -37,  /* roster model: not in an allowed group */
    HERALD_ECLUSTER = -38,              /* the cluster log did not store it in time (retry) */
    HERALD_EREMOTE_TIMEOUT = -39,       /* a peer server did not authenticate in time */
    /* Node quotas (docs/pubsub.md "Quotas"): policy-violation, HTTP 429. */
    HERALD_ERATE = -40,                 /* herald#max_publish_rate: publish again later */
    HERALD_ETOO_MANY_SUBS = -41,        /* herald#max_subscribers (XEP-0060 §6.1.3.9) */
    HERALD_ENODE_FULL = -42,            /* herald#max_node_bytes */
    HERALD_E_COUNT_ = 43
};

struct herald_error {
    const char *name;   /* "HERALD_EFULL": for logs */
    const char *msg;    /* English, for logs and problem+json titles */
    const char *cond;   /* RFC 6120 §8.3.3 defined condition */
    const char *type;   /* "cancel", "modify", "wait", "auth" */
    const char *app;    /* XEP-0060 pubsub#errors condition, or NULL */
    int http;           /* HTTP status */
};

/* The table row for a code (unknown codes get HERALD_EIO's); never NULL. */
const struct herald_error *herald_error(int err);

/* Shorthands for the row's fields. */
const char *herald_strerror(int err);
const char *herald_stanza_condition(int err);
const char *herald_stanza_error_type(int err);
int herald_http_status(int err);

#endif
