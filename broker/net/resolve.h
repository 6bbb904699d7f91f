/* resolve.h - where a peer domain's XMPP server listens (RFC 6120 §3.2,
 * XEP-0368): a static route from the configuration, else DNS SRV
 * _xmpps-server._tcp (direct TLS) and _xmpp-server._tcp, else the domain's
 * own A/AAAA records on the default port. Lookups run on libuv's thread pool
 * (the loop never waits for DNS) and are bounded: one attempt of at most
 * two seconds per query. */
#ifndef HERALD_RESOLVE_H
#define HERALD_RESOLVE_H
#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <uv.h>

#define RESOLVE_MAX 8

struct resolve_addr {
    struct sockaddr_storage sa;
    bool direct_tls;        /* XEP-0368: TLS from the first byte */
};

struct resolve_result {
    struct resolve_addr addrs[RESOLVE_MAX];
    unsigned n;
    char how[300];          /* for logs: "SRV _xmpp-server._tcp", "A/AAAA", "static" */
};

typedef void resolve_cb(void *ud, const struct resolve_result *r);

/* Looks domain up (host/port: a static route, or NULL) and calls cb on the
 * loop with the addresses (n = 0: none). Returns 0 or HERALD_ENOMEM. The
 * lookup cannot be cancelled: cb always comes, so ud must outlive it. */
int resolve_peer(uv_loop_t *loop, const char *domain, const char *host, int port,
                 resolve_cb *cb, void *ud);

#endif
