/* cli_sub_xmpp.h - the XMPP transport of `herald sub` (--jid), in
 * cli_sub_xmpp.c; cli_sub.c parses the options and calls it. */
#ifndef HERALD_CLI_SUB_XMPP_H
#define HERALD_CLI_SUB_XMPP_H
#include <stdbool.h>

struct cli_rest;

/* Follows node over XMPP with c's XMPP options (jid, password, host, port,
 * service, cacert, insecure) until count items (0: no bound), timeout
 * seconds (0: none), the node's deletion, or SIGINT / SIGTERM; verbose:
 * say on stderr when the subscription is made. Returns the exit status
 * (docs/cli.md). */
int cli_sub_xmpp(const struct cli_rest *c, const char *node, unsigned long count,
                 unsigned long timeout, bool verbose);

#endif
