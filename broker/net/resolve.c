/* resolve.c - SRV and address lookups on the thread pool (resolve.h). */
#include "resolve.h"

#include <arpa/nameser.h>
#include <netdb.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

#define DEFAULT_PORT 5269
#define MAX_TARGETS 4

struct lookup {
    uv_work_t work;
    char domain[256];
    char host[256];         /* static route, or "" */
    int port;
    resolve_cb *cb;
    void *ud;
    struct resolve_result r;
};

struct target {
    char host[NS_MAXDNAME];
    int port;
    unsigned prio;
    unsigned order;         /* as found: ties keep it (_xmpps-server first) */
    bool tls;
};

/* Adds the addresses of host:port (at most what is left of the result). */
static void add_addresses(struct resolve_result *r, const char *host, int port, bool tls)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC}, *ai = NULL;
    char ps[8];
    snprintf(ps, sizeof(ps), "%d", port);
    if (getaddrinfo(host, ps, &hints, &ai) != 0)
        return;
    for (struct addrinfo *p = ai; p && r->n < RESOLVE_MAX; p = p->ai_next) {
        if (p->ai_addrlen > sizeof(r->addrs[0].sa))
            continue;
        memcpy(&r->addrs[r->n].sa, p->ai_addr, p->ai_addrlen);
        r->addrs[r->n].direct_tls = tls;
        r->n++;
    }
    freeaddrinfo(ai);
}

/* SRV records of name into t. Returns how many; *none is set when the
 * answer is the single record "." (RFC 2782: the service is decidedly not
 * offered at this domain); none may be NULL. */
static unsigned srv_lookup(res_state rs, const char *name, bool tls, struct target *t, unsigned cap,
                           bool *none)
{
    unsigned char ans[4096];
    int len = res_nquery(rs, name, ns_c_in, ns_t_srv, ans, sizeof(ans));
    ns_msg msg;
    if (len <= 0 || ns_initparse(ans, len, &msg) != 0)
        return 0;
    unsigned n = 0;
    for (int i = 0; i < ns_msg_count(msg, ns_s_an) && n < cap; i++) {
        ns_rr rr;
        if (ns_parserr(&msg, ns_s_an, i, &rr) != 0 || ns_rr_type(rr) != ns_t_srv ||
            ns_rr_rdlen(rr) < 7)
            continue;
        const unsigned char *rd = ns_rr_rdata(rr);
        unsigned prio = ns_get16(rd), port = ns_get16(rd + 4);
        if (dn_expand(ns_msg_base(msg), ns_msg_end(msg), rd + 6, t[n].host, sizeof(t[n].host)) < 0)
            continue;
        /* RFC 2782: a target of "." means the service is not offered. */
        if (t[n].host[0] == '\0' || strcmp(t[n].host, ".") == 0) {
            if (none != NULL && ns_msg_count(msg, ns_s_an) == 1)
                *none = true;
            continue;
        }
        t[n].port = (int)port;
        t[n].prio = prio;
        t[n].tls = tls;
        n++;
    }
    return n;
}

static int by_prio(const void *a, const void *b)
{
    const struct target *x = a, *y = b;
    if (x->prio != y->prio)
        return (x->prio > y->prio) - (x->prio < y->prio);
    return (x->order > y->order) - (x->order < y->order);
}

static void work(uv_work_t *w)
{
    struct lookup *l = w->data;
    struct resolve_result *r = &l->r;
    if (l->host[0]) {
        snprintf(r->how, sizeof(r->how), "static route %s:%d", l->host, l->port);
        add_addresses(r, l->host, l->port, false);
        return;
    }
    struct __res_state rs;
    memset(&rs, 0, sizeof(rs));
    struct target t[2 * MAX_TARGETS];
    unsigned n = 0;
    bool none = false;
    if (res_ninit(&rs) == 0) {
        rs.retrans = 2;
        rs.retry = 1;
        char name[300];
        snprintf(name, sizeof(name), "_xmpps-server._tcp.%s", l->domain);
        n = srv_lookup(&rs, name, true, t, MAX_TARGETS, NULL); /* "." there: no direct TLS */
        snprintf(name, sizeof(name), "_xmpp-server._tcp.%s", l->domain);
        n += srv_lookup(&rs, name, false, t + n, MAX_TARGETS, &none);
        res_nclose(&rs);
    }
    if (n == 0 && none) {
        /* RFC 2782, RFC 6120 §3.2.1: "." alone: no XMPP service here, and
         * no fallback to the domain's addresses. */
        snprintf(r->how, sizeof(r->how), "SRV: the domain says it offers no XMPP service");
        return;
    }
    if (n > 0) {
        /* By priority; weights are not used (ties keep the order found). */
        for (unsigned i = 0; i < n; i++)
            t[i].order = i;
        qsort(t, n, sizeof(t[0]), by_prio);
        snprintf(r->how, sizeof(r->how), "SRV (%u targets)", n);
        for (unsigned i = 0; i < n; i++)
            add_addresses(r, t[i].host, t[i].port, t[i].tls);
        return;
    }
    snprintf(r->how, sizeof(r->how), "A/AAAA, port %d", DEFAULT_PORT);
    add_addresses(r, l->domain, DEFAULT_PORT, false);
}

static void done(uv_work_t *w, int status)
{
    struct lookup *l = w->data;
    if (status != 0)
        l->r.n = 0;
    l->cb(l->ud, &l->r);
    free(l);
}

int resolve_peer(uv_loop_t *loop, const char *domain, const char *host, int port,
                 resolve_cb *cb, void *ud)
{
    struct lookup *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return HERALD_ENOMEM;
    snprintf(l->domain, sizeof(l->domain), "%s", domain);
    if (host)
        snprintf(l->host, sizeof(l->host), "%s", host);
    l->port = port;
    l->cb = cb;
    l->ud = ud;
    l->work.data = l;
    if (uv_queue_work(loop, &l->work, work, done) != 0) {
        free(l);
        return HERALD_ENOMEM;
    }
    return 0;
}
