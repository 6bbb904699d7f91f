/* errors.h - Herald's one error vocabulary.
 *
 * Every fallible function returns 0 or a negative HERALD_E* code. One table
 * (errors.c) maps each code to a message, to the XMPP stanza error it becomes
 * (RFC 6120 §8.3.3) and to an HTTP status, so handlers never spell error XML
 * or statuses by hand. */
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
    HERALD_EREMOTE = -13,    /* remote domain: no server-to-server support */
    HERALD_ECONFLICT = -14,  /* conflicting state (e.g. resource in use) */
    HERALD_ETOOBIG = -15,    /* too large */
    HERALD_E_COUNT_ = 16
};

/* Static English message for an error code; never NULL. */
const char *herald_strerror(int err);

/* The RFC 6120 §8.3.3 defined condition for an error code, and its error type
 * ("cancel", "modify", "wait", "auth"). Both static strings. */
const char *herald_stanza_condition(int err);
const char *herald_stanza_error_type(int err);

/* HTTP status for an error code (used by the REST bridge). */
int herald_http_status(int err);

#endif
