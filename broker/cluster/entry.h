/* entry.h - the cluster log's entries (docs/cluster.md, "The log").
 *
 * An entry is one request that changes replicated state, as the instance
 * that accepted it received it (an XMPP iq, a REST request) or as the CLI
 * made it (an account, a token), plus what the accepting instance fixed so
 * that every instance applies it alike: the time and a random seed. The
 * encoding is versioned binary: "HRD", version, kind, then fields in a fixed
 * order per kind, integers big-endian, strings and byte strings as a 32-bit
 * length and the bytes. An instance refuses (and stops applying at) a
 * version it does not know, never skips an entry. */
#ifndef HERALD_CLUSTER_ENTRY_H
#define HERALD_CLUSTER_ENTRY_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define CL_ENTRY_VERSION 1

enum cl_kind {
    CL_IQ = 1,        /* a pubsub iq set: jid (who, a full JID), contact (the PEP service,
                       * an account's bare JID; absent: pubsub.<domain>), data (the iq) */
    CL_REST = 2,      /* a REST write: jid, scopes, method, path, query, content type, body */
    CL_USER_PUT = 3,  /* herald user add/passwd: jid, create, user */
    CL_USER_DEL = 4,  /* herald user del: jid */
    CL_TOKEN_PUT = 5, /* herald token create: token */
    CL_TOKEN_DEL = 6, /* herald token revoke: token.id */
    CL_CURSOR = 7,    /* a durable subscription's cursor moved: jid, node_id, cursor */
    CL_ROSTER = 8,    /* a roster iq set: jid (the requester's full JID), data (the iq) */
    CL_SUBSCRIPTION = 9, /* a presence subscription change: jid (the user's bare JID),
                          * contact, ptype, data (the stanza, or absent) */
};

struct cl_entry {
    enum cl_kind kind;
    const char *origin;  /* instance name ("cli" for the CLI) */
    uint64_t boot;       /* the origin's boot id: request numbers restart with it */
    uint64_t req;        /* the origin's request number */
    uint64_t time_ms;    /* the service's clock for this entry */
    uint64_t seed;       /* its random choices */
    /* CL_IQ, CL_REST, CL_USER_*: the requester or the account; CL_CURSOR: the
     * subscription's JID */
    const char *jid;
    /* CL_IQ: the stanza; CL_REST: the body */
    const char *data;
    size_t data_len;
    /* CL_REST */
    uint8_t scopes;
    uint8_t method;
    const char *path, *query, *content_type; /* query, content_type: NULL when absent */
    /* CL_USER_PUT */
    bool create;
    struct store_user user;
    /* CL_CURSOR */
    uint64_t node_id, cursor;
    /* CL_SUBSCRIPTION (and CL_IQ: the PEP service) */
    const char *contact, *ptype;
    /* CL_TOKEN_PUT, CL_TOKEN_DEL (id only) */
    struct store_token token;
};

/* Appends the encoding of e to a malloc'd buffer: *out (free it), *len.
 * HERALD_ENOMEM or HERALD_EINVAL (an unknown kind). */
int cl_entry_encode(const struct cl_entry *e, uint8_t **out, size_t *len);

/* Decodes data into e; strings point into *store (one allocation, free it
 * after use). HERALD_EINVAL: malformed; HERALD_ESCHEMA: an unknown version. */
int cl_entry_decode(const void *data, size_t len, struct cl_entry *e, char **store);

#endif
