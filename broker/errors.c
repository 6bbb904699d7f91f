/* errors.c - the table that maps HERALD_E* codes to messages, XMPP stanza
 * error conditions (RFC 6120 §8.3.3) and HTTP statuses. */
#include "errors.h"

struct err_row {
    const char *msg;
    const char *cond;
    const char *type;
    int http;
};

/* Indexed by -code. */
static const struct err_row rows[HERALD_E_COUNT_] = {
    [0] = {"success", "undefined-condition", "cancel", 200},
    [1] = {"out of memory", "resource-constraint", "wait", 503},
    [2] = {"malformed request", "bad-request", "modify", 400},
    [3] = {"not found", "item-not-found", "cancel", 404},
    [4] = {"already exists", "conflict", "cancel", 409},
    [5] = {"storage I/O error", "internal-server-error", "wait", 500},
    [6] = {"storage full", "resource-constraint", "wait", 507},
    [7] = {"limit reached", "policy-violation", "modify", 429},
    [8] = {"forbidden", "forbidden", "auth", 403},
    [9] = {"malformed address", "jid-malformed", "modify", 400},
    [10] = {"service unavailable", "service-unavailable", "cancel", 503},
    [11] = {"not implemented", "feature-not-implemented", "cancel", 501},
    [12] = {"unknown storage schema version", "internal-server-error", "cancel", 500},
    [13] = {"remote server not found", "remote-server-not-found", "cancel", 502},
    [14] = {"conflict", "conflict", "cancel", 409},
    [15] = {"too large", "not-acceptable", "modify", 413},
};

static const struct err_row *row(int err)
{
    if (err > 0 || -err >= HERALD_E_COUNT_)
        return &rows[-HERALD_EIO];
    return &rows[-err];
}

const char *herald_strerror(int err) { return row(err)->msg; }
const char *herald_stanza_condition(int err) { return row(err)->cond; }
const char *herald_stanza_error_type(int err) { return row(err)->type; }
int herald_http_status(int err) { return row(err)->http; }
