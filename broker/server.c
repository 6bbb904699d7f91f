/* server.c - `herald serve`: builds struct herald, opens storage, TLS and
 * SASL, starts the listener and runs the loop until a signal, then closes
 * every stream cleanly and LMDB last. */
#include <openssl/ssl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

#include "batch.h"
#include "bosh.h"
#include "cluster.h"
#include "component.h"
#include "s2s.h"
#include "sm.h"
#include "conn.h"
#include "errors.h"
#include "herald.h"
#include "http.h"
#include "listener.h"
#include "im.h"
#include "log.h"
#include "pep.h"
#include "pubsub.h"
#include "pubsub_xmpp.h"
#include "rest.h"
#include "sse.h"
#include "webhooks.h"
#include "sasl.h"
#include "session.h"
#include "store.h"
#include "tls.h"

#define SHUTDOWN_GRACE_MS 5000
#define SWEEP_MS 1000

static void close_handle(uv_handle_t *hd)
{
    if (!uv_is_closing(hd))
        uv_close(hd, NULL);
}

/* Called once the last connection is gone during shutdown. */
static void finish(struct herald *h)
{
    close_handle((uv_handle_t *)&h->flush_prepare);
    close_handle((uv_handle_t *)&h->sweep_timer);
    close_handle((uv_handle_t *)&h->lease_timer);
    close_handle((uv_handle_t *)&h->shutdown_timer);
    close_handle((uv_handle_t *)&h->sig_term);
    close_handle((uv_handle_t *)&h->sig_int);
}

static void on_prepare(uv_prepare_t *p)
{
    struct herald *h = p->data;
    /* What ended sessions never acknowledged is re-routed first, so that
     * what goes to offline storage commits with this turn (sm.c). */
    sm_prepare(h);
    /* Group commit: this turn's changes become durable, then their results
     * and notifications join the write queues flushed below. */
    batch_commit(h->batch);
    /* The commit's callbacks may start new changes (an HTTP connection goes
     * on with a pipelined request once its answer is out): commit those too
     * before the loop sleeps. */
    while (batch_open_now(h->batch))
        batch_commit(h->batch);
    conn_flush_all(h);
    if (h->shutting_down && h->nconns == 0)
        finish(h);
}

/* A login costs far more memory (SASL, TLS handshake, parser buffers) than
 * the idle session it leaves behind, and glibc keeps freed heap mapped: after
 * a burst of logins, or once many idle parsers have hibernated, give it back
 * so that RSS tracks live sessions. */
#define TRIM_AFTER_HIBERNATED 64 /* about 700 KiB of parsers */
/* Connections that close with big buffers (an HTTP client's unread answers)
 * add to h->heap_freed; past this many bytes the heap is trimmed too. */
#define TRIM_AFTER_FREED (4u << 20)

static void trim_heap(struct herald *h, unsigned hibernated)
{
#ifdef __GLIBC__
    /* A login burst is over when logins happened and none in the last second. */
    static uint64_t logins_at_trim, logins_seen;
    static unsigned hibernated_since_trim;
    uint64_t now = h->stats.auth_ok;
    hibernated_since_trim += hibernated;
    bool burst_over = now != logins_at_trim && now == logins_seen;
    if (burst_over || hibernated_since_trim >= TRIM_AFTER_HIBERNATED ||
        h->heap_freed >= TRIM_AFTER_FREED) {
        logins_at_trim = now;
        hibernated_since_trim = 0;
        h->heap_freed = 0;
        malloc_trim(0);
    }
    logins_seen = now;
#else
    (void)hibernated;
    h->heap_freed = 0;
#endif
}

static void on_sweep(uv_timer_t *t)
{
    struct herald *h = t->data;
    unsigned hibernated = session_sweep(h);
    http_sweep(h);
    bosh_sweep(h);
    cluster_sweep(h);
    s2s_sweep(h, uv_now(h->loop));
    pubsub_expire(h->pubsub);
    trim_heap(h, hibernated);
}

/* ---- leases (docs/leases.md): one timer armed for the next lease to end ---- */

#define LEASES_PER_TURN 1000

static void on_lease_timer(uv_timer_t *t);

static void arm_leases(struct herald *h, uint64_t until)
{
    if (h->loop == NULL || until == UINT64_MAX)
        return;
    uint64_t now = wall_ms();
    uint64_t delay = until > now ? until - now : 0;
    uv_timer_start(&h->lease_timer, on_lease_timer, delay, 0);
}

static void on_lease_timer(uv_timer_t *t)
{
    struct herald *h = t->data;
    /* At most LEASES_PER_TURN retracts a turn: when 100,000 leases end
     * together the loop commits and serves others between the slices. */
    int rc = pubsub_leases_expire(h->pubsub, LEASES_PER_TURN);
    if (rc > 0)
        uv_timer_start(&h->lease_timer, on_lease_timer, 0, 0);
    else if (rc < 0) /* storage trouble (logged): try again in a second */
        uv_timer_start(&h->lease_timer, on_lease_timer, 1000, 0);
    else
        arm_leases(h, pubsub_lease_next(h->pubsub));
}

static void lease_armed(void *ud, uint64_t until)
{
    arm_leases(ud, until);
}

static void on_shutdown_timeout(uv_timer_t *t)
{
    struct herald *h = t->data;
    log_warn("herald", "%u connection(s) did not close in time; dropping them", h->nconns);
    for (struct conn *c = h->conns; c; c = c->next)
        conn_close(c, false);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    struct herald *h = sig->data;
    if (h->shutting_down)
        return;
    h->shutting_down = true;
    log_info("herald", "received %s: closing %u connection(s) and shutting down",
             signum == SIGTERM ? "SIGTERM" : "SIGINT", h->nconns);
    listener_stop(h);
    cluster_stop(h);
    bosh_close_all(h); /* held requests are answered before HTTP closes */
    s2s_close_all(h);  /* their streams end with a stream error, before */
    component_close_all(h); /* session_close_all closes every other conn */
    session_close_all(h);
    uv_timer_start(&h->shutdown_timer, on_shutdown_timeout, SHUTDOWN_GRACE_MS, 0);
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int setup_tls(struct herald *h)
{
    char *cert = NULL, *key = NULL;
    int rc;
    if (h->cfg->tls_cert) {
        cert = strdup(h->cfg->tls_cert);
        key = strdup(h->cfg->tls_key);
        rc = (cert && key) ? 0 : HERALD_ENOMEM;
    } else {
        rc = tls_ensure_cert(h->cfg->data_dir, h->cfg->domain, &cert, &key);
    }
    const struct config *cfg = h->cfg;
    if (rc == 0) {
        h->tls_ctx = tls_ctx_new(cert, key);
        if (h->tls_ctx == NULL ||
            tls_ctx_policy(h->tls_ctx, cfg->tls_min_version, cfg->tls_ciphers, cfg->tls_ciphersuites))
            rc = HERALD_EIO;
        else
            log_info("tls", "certificate %s", cert);
    }
    /* c2s STARTTLS: with c2s.client_ca_file, a context of its own that asks
     * clients for a certificate (SASL EXTERNAL); HTTPS never asks. */
    if (rc == 0 && cfg->client_ca_file) {
        h->c2s_tls_ctx = tls_ctx_new(cert, key);
        if (h->c2s_tls_ctx == NULL ||
            tls_ctx_policy(h->c2s_tls_ctx, cfg->tls_min_version, cfg->tls_ciphers,
                           cfg->tls_ciphersuites) ||
            tls_ctx_verify_peers(h->c2s_tls_ctx, cfg->client_ca_file, cfg->client_crl_file, false,
                                 NULL))
            rc = HERALD_EIO;
        else
            log_info("tls", "client certificates verified against %s%s%s (SASL EXTERNAL)",
                     cfg->client_ca_file, cfg->client_crl_file ? ", CRL " : "",
                     cfg->client_crl_file ? cfg->client_crl_file : "");
    } else if (rc == 0) {
        SSL_CTX_up_ref(h->tls_ctx);
        h->c2s_tls_ctx = h->tls_ctx;
    }
    h->tls_cert_path = cert;
    h->tls_key_path = key;
    return rc;
}

/* The presence access model's question, answered from rosters. */
static bool presence_subscribed(void *ud, const char *owner, const char *contact)
{
    return im_presence_subscribed(ud, owner, contact);
}

/* [quotas] and [quota:BAREJID]: a new node's quota fields (pubsub.h). */
static void quota_defaults(void *ud, const char *owner, struct ps_config *cfg)
{
    const struct herald *h = ud;
    uint32_t q[CONFIG_NQUOTAS];
    config_quota_defaults(h->cfg, owner, q);
    cfg->max_publish_rate = q[CONFIG_QUOTA_RATE];
    cfg->max_subscribers = q[CONFIG_QUOTA_SUBSCRIBERS];
    cfg->max_node_bytes = q[CONFIG_QUOTA_BYTES];
}

/* The pubsub service, then its edges (XMPP handlers and notifications). */
static int open_pubsub(struct herald *h)
{
    const struct config *cfg = h->cfg;
    struct pubsub_opts o = {
        .store = h->store,
        .batch = h->batch,
        .caps = {.max_items = cfg->pubsub_max_items, .max_payload_size = cfg->pubsub_max_payload},
        .auto_create = cfg->pubsub_auto_create,
        .hooks = {.presence_subscribed = presence_subscribed,
                  .pep_recipients = pep_recipients, /* XEP-0163 §4.3 (pep.c) */
                  .in_roster_groups = pep_in_roster_groups, /* roster access model */
                  .lease_armed = lease_armed,
                  .quota_defaults = quota_defaults,
                  .ud = h},
        .max_nodes_per_account = cfg->pubsub_max_nodes,
        .node_page_size = cfg->pubsub_page_size,
        .pep_max_nodes_per_account = cfg->pep_max_nodes, /* [pep] */
        .pep_max_items = cfg->pep_max_items,
    };
    if (o.caps.max_payload_size == 0)
        o.caps.max_payload_size =
            cfg->max_stanza_size < 65536 ? (uint32_t)cfg->max_stanza_size : 65536;
    int rc = pubsub_open(&o, &h->pubsub);
    if (rc == 0)
        rc = ps_xmpp_open(h, h->pubsub, &h->ps_xmpp);
    if (rc == 0)
        rc = pep_open(h); /* PEP (XEP-0163): a sink too */
    if (rc == 0)
        rc = sse_init(h); /* the REST event streams: a sink too */
    return rc;
}

int herald_serve(struct config *cfg)
{
    struct herald *h = calloc(1, sizeof(*h));
    uv_loop_t loop;
    int rc;
    if (h == NULL)
        return 1;
    h->cfg = cfg;
    log_set_level((enum log_level)log_level_parse(cfg->log_level));
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    struct store_opts so = {.map_size = cfg->map_size_mb << 20,
                            .max_map_size = cfg->max_map_size_mb << 20,
                            .reserve = cfg->reserve_mb << 20};
    /* The data directory's lock, shared, for the server's lifetime: `herald
     * restore` takes it exclusive, so it never replaces the store under a
     * running server, and a server does not start in the middle of a
     * restore. The kernel drops it when the process ends, even by kill -9. */
    if (mkdir(cfg->data_dir, 0700) != 0 && errno != EEXIST) {
        log_error("herald", "cannot create the data directory %s: %s", cfg->data_dir,
                  strerror(errno));
        free(h);
        return 1;
    }
    int lock_fd = store_lock_dir(cfg->data_dir, false);
    if (lock_fd < 0) {
        if (lock_fd == HERALD_ECONFLICT)
            log_error("herald", "the data directory %s is being restored ('herald restore' "
                                "holds %s/herald.lock)", cfg->data_dir, cfg->data_dir);
        free(h);
        return 1;
    }
    if ((rc = store_open(&h->store, cfg->data_dir, &so)) != 0) {
        log_error("herald", "cannot open the data directory %s: %s", cfg->data_dir,
                  herald_strerror(rc));
        close(lock_fd);
        free(h);
        return 1;
    }
    int exit_code = 1;
    if (setup_tls(h) != 0)
        goto out_tls;
    if (hsasl_global_init(h->store, cfg) != 0)
        goto out_tls;
    if (batch_new(h->store, &h->batch) != 0 || open_pubsub(h) != 0)
        goto out_sasl;
    if (blocking_open(h) != 0) /* XEP-0191 (blocking.c) */
        goto out_sasl;
    if (s2s_init(h) != 0) /* federation: keys and TLS contexts */
        goto out_sasl;
    h->domain_len = strlen(cfg->domain);
    h->pubsub_jid_len = h->ps_xmpp ? strlen(ps_xmpp_jid(h->ps_xmpp)) : 0;
    if (uv_loop_init(&loop) != 0)
        goto out_sasl;
    h->loop = &loop;
    uv_prepare_init(&loop, &h->flush_prepare);
    h->flush_prepare.data = h;
    uv_prepare_start(&h->flush_prepare, on_prepare);
    uv_timer_init(&loop, &h->sweep_timer);
    h->sweep_timer.data = h;
    uv_timer_start(&h->sweep_timer, on_sweep, SWEEP_MS, SWEEP_MS);
    uv_unref((uv_handle_t *)&h->sweep_timer);
    uv_timer_init(&loop, &h->lease_timer);
    h->lease_timer.data = h;
    uv_unref((uv_handle_t *)&h->lease_timer);
    uv_timer_init(&loop, &h->shutdown_timer);
    h->shutdown_timer.data = h;
    uv_signal_init(&loop, &h->sig_term);
    uv_signal_init(&loop, &h->sig_int);
    h->sig_term.data = h->sig_int.data = h;
    uv_signal_start(&h->sig_term, on_signal, SIGTERM);
    uv_signal_start(&h->sig_int, on_signal, SIGINT);

    h->rest_apply = rest_apply; /* REST writes from the cluster log (cluster.c) */
    /* Cluster mode: caught up with the log before any client is served. */
    /* Webhooks need the loop (curl's sockets and timers live on it). */
    int rc_hooks = webhooks_open(h);
    if (rc_hooks == 0) {
        /* Session leases of the previous run end now, timed ones that ran
         * out while the server was down at the first tick; after the
         * webhooks' journal is registered, so they hear of it too
         * (docs/leases.md). */
        pubsub_leases_start(h->pubsub);
        arm_leases(h, pubsub_lease_next(h->pubsub));
    }
    if (rc_hooks != 0 || cluster_open(h) != 0 || listener_start(h) != 0) {
        listener_stop(h);
        cluster_stop(h);
        h->shutting_down = true;
    } else {
        exit_code = 0;
        log_info("herald", "Herald %s serving %s: clients on %s:%d (%s), data in %s",
                 HERALD_VERSION, cfg->domain, cfg->c2s_bind, cfg->c2s_port,
                 cfg->allow_plaintext ? "TLS optional"
                 : cfg->require_tls   ? "STARTTLS required"
                                      : "STARTTLS offered",
                 store_path(h->store));
        if (cfg->allow_plaintext)
            log_warn("herald", "c2s.allow_plaintext is on: passwords may cross the network "
                     "in clear (PLAIN without TLS). Use it for loopback tests only.");
        if (cfg->http_port)
            log_info("http", "REST API on http://%s:%d/v1/ (and /healthz, /metrics)",
                     cfg->http_bind, cfg->http_port);
        if (cfg->https_port)
            log_info("http", "REST API on https://%s:%d/v1/", cfg->http_bind, cfg->https_port);
        if (cfg->s2s_port)
            log_info("s2s", "federation on %s:%d (%s%s)", cfg->s2s_bind ? cfg->s2s_bind : cfg->c2s_bind,
                     cfg->s2s_port, cfg->s2s_require_tls ? "STARTTLS required" : "STARTTLS offered",
                     cfg->s2s_secure_auth ? ", certificates required (secure_auth)"
                                          : ", dialback allowed");
        else
            log_info("s2s", "federation is off (s2s.port = 0)");
        for (const struct config_component *k = cfg->components; k; k = k->next)
            log_info("component", "%s may connect on %s:%d", k->domain,
                     cfg->components_bind ? cfg->components_bind : cfg->c2s_bind,
                     cfg->components_port);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    if (h->nconns != 0 || !h->shutting_down) {
        /* Defensive: close anything left so the loop can be closed. */
        finish(h);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    /* Webhook requests in flight are dropped (their events stay in the
     * outbox) and their handles closed. */
    webhooks_stop(h);
    uv_run(&loop, UV_RUN_DEFAULT);
    /* NATS last: its threads stop before anything they feed is freed. */
    cluster_close(h);
    uv_loop_close(&loop);
    log_info("herald", "stopped");
out_sasl:
    /* Anything still uncommitted was never acknowledged: drop it. */
    batch_free(h->batch);
    webhooks_free(h); /* after the batch: its callbacks may still name it */
    blocking_close(h);
    pep_close(h);
    ps_xmpp_close(h->ps_xmpp);
    pubsub_close(h->pubsub);
    sse_close(h);
    hsasl_global_done();
out_tls:
    s2s_free(h);
    tls_ctx_free(h->tls_ctx);
    tls_ctx_free(h->c2s_tls_ctx);
    free(h->tls_cert_path);
    free(h->tls_key_path);
    store_close(h->store);
    close(lock_fd);
    free(h);
    return exit_code;
}
