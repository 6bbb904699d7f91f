/* config.c - defaults, INI parsing through libinih, validation. */
#include <ctype.h>
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h"
#include "jid.h"
#include "log.h"

int config_set_str(char **field, const char *value)
{
    char *v = value ? strdup(value) : NULL;
    if (value && v == NULL)
        return -1;
    free(*field);
    *field = v;
    return 0;
}

void config_defaults(struct config *c)
{
    memset(c, 0, sizeof(*c));
    config_set_str(&c->domain, "localhost");
    config_set_str(&c->data_dir, "./herald-data");
    config_set_str(&c->log_level, "info");
    config_set_str(&c->c2s_bind, "127.0.0.1");
    c->c2s_port = 5222;
    c->require_tls = true;
    c->max_stanza_size = 256 * 1024;
    c->max_depth = 32;
    c->max_connections = 20000;
    c->max_connections_per_ip = 100;
    c->max_resources = 100;
    c->max_outq_bytes = 1024 * 1024;
    c->write_timeout = 60;
    c->max_read_per_turn = 64 * 1024;
    c->idle_timeout = 600;
    c->keepalive_interval = 60;
    c->login_timeout = 30;
    c->resume_timeout = 300;
    c->sm_max_unacked = 5000;
    c->sm_max_unacked_bytes = 8u << 20;
    c->csi_queue_size = 256;
    config_set_str(&c->client_cert_identity, "xmppaddr");
    c->s2s_port = 5269;
    c->s2s_require_tls = true;
    c->s2s_connect_timeout = 10;
    c->s2s_idle_timeout = 600;
    c->s2s_max_queue = 1000;
    c->components_port = 5347;
    config_set_str(&c->tls_min_version, "TLSv1.2");
    config_set_str(&c->mechanisms, "SCRAM-SHA-256 SCRAM-SHA-1 PLAIN");
    c->failure_delay_ms = 1000;
    c->max_failures = 3;
    c->scram_iterations = 4096;
    c->auth_address_failures = 5;
    c->auth_account_failures = 10;
    c->auth_failure_window_s = 600;
    c->auth_address_backoff_max_s = 300;
    c->auth_account_backoff_max_s = 60;
    c->auth_budget_entries = 8192;
    c->pubsub_max_items = 10000;
    c->pubsub_max_nodes = 1000;
    c->pubsub_page_size = 100;
    c->pubsub_max_offline = 1000;
    c->pep_max_nodes = 100; /* [pep] */
    c->pep_max_items = 1000;
    c->webhooks_max_concurrent = 16; /* [webhooks] */
    c->webhooks_timeout = 10;
    c->webhooks_connect_timeout = 5;
    c->webhooks_max_attempts = 8;
    c->webhooks_backoff_initial_ms = 1000;
    c->webhooks_backoff_max_ms = 300000;
    c->webhooks_max_outbox = 10000;
    c->webhooks_max_outbox_bytes = 64u << 20;
    c->pep_caps_cache_size = 10000;
    c->pep_caps_max_queries = 256;
    c->max_offline = 100;
    c->max_private_bytes = 64 * 1024;
    c->max_private_elements = 100;
    c->max_private_account_bytes = 1024 * 1024;
    c->max_vcard_bytes = 128 * 1024;
    c->max_blocklist_items = 1000; /* XEP-0191 */
    c->mam_enabled = true;
    config_set_str(&c->mam_default, "always");
    c->mam_max_age = 604800;
    c->mam_max_messages = 10000;
    c->mam_max_page = 250;
    c->map_size_mb = 1024;
    c->max_map_size_mb = 16384;
    c->reserve_mb = 64;
    config_set_str(&c->http_bind, "127.0.0.1");
    c->http_port = 5280;
    c->https_port = 5281;
    c->http_max_outq_bytes = 256 * 1024;
    c->http_write_timeout = 30;
    c->http_header_timeout = 10;
    c->http_idle_timeout = 60;
    c->http_max_connections = 10000;
    c->http_max_connections_per_ip = 100;
    c->bosh_max_wait = 60;
    c->bosh_inactivity = 60;
    c->bosh_max_pause = 120;
    c->cluster_replicas = 3;
    config_set_str(&c->cluster_id, "herald");
    c->cluster_publish_timeout_ms = 5000;
    c->cluster_max_inflight = 4096;
}

void config_free(struct config *c)
{
    free(c->domain);
    free(c->data_dir);
    free(c->log_level);
    free(c->c2s_bind);
    free(c->mechanisms);
    free(c->tls_cert);
    free(c->tls_key);
    free(c->http_bind);
    free(c->http_allowed_origins);
    free(c->pubsub_jid);
    free(c->mam_default);
    free(c->cluster_name);
    free(c->cluster_urls);
    free(c->cluster_id);
    free(c->cluster_credentials);
    free(c->cluster_tls_ca);
    free(c->cluster_tls_cert);
    free(c->cluster_tls_key);
    free(c->webhooks_allow);
    free(c->client_ca_file);
    free(c->client_crl_file);
    free(c->client_cert_identity);
    free(c->s2s_bind);
    free(c->s2s_ca_file);
    free(c->components_bind);
    free(c->tls_min_version);
    free(c->tls_ciphers);
    free(c->tls_ciphersuites);
    free(c->disco_features);
    free(c->disco_items);
    while (c->peers) {
        struct config_peer *p = c->peers;
        c->peers = p->next;
        free(p->domain);
        free(p->host);
        free(p);
    }
    while (c->components) {
        struct config_component *k = c->components;
        c->components = k->next;
        free(k->domain);
        free(k->secret);
        free(k);
    }
    while (c->quotas) {
        struct config_quota *q = c->quotas;
        c->quotas = q->next;
        free(q->jid);
        free(q);
    }
    while (c->disco_nodes) {
        struct config_disco_node *d = c->disco_nodes;
        c->disco_nodes = d->next;
        free(d->node);
        free(d->features);
        free(d->items);
        free(d);
    }
    memset(c, 0, sizeof(*c));
}

enum kind { K_STR, K_BOOL, K_INT, K_UINT, K_SIZE, K_U32 };

struct option {
    const char *section, *name;
    enum kind kind;
    size_t offset;
    unsigned long long min, max;
};

#define OPT(sec, nm, k, field, lo, hi) {sec, nm, k, offsetof(struct config, field), lo, hi}
static const struct option options[] = {
    OPT("server", "domain", K_STR, domain, 0, 0),
    OPT("server", "data_dir", K_STR, data_dir, 0, 0),
    OPT("server", "log_level", K_STR, log_level, 0, 0),
    OPT("c2s", "bind", K_STR, c2s_bind, 0, 0),
    OPT("c2s", "port", K_INT, c2s_port, 0, 65535),
    OPT("c2s", "require_tls", K_BOOL, require_tls, 0, 0),
    OPT("c2s", "allow_plaintext", K_BOOL, allow_plaintext, 0, 0),
    OPT("c2s", "allow_plaintext_public", K_BOOL, allow_plaintext_public, 0, 0),
    OPT("c2s", "max_stanza_size", K_SIZE, max_stanza_size, 1024, 64ull << 20),
    OPT("c2s", "max_depth", K_UINT, max_depth, 4, 1000),
    OPT("c2s", "max_connections", K_UINT, max_connections, 1, 10000000),
    OPT("c2s", "max_connections_per_ip", K_UINT, max_connections_per_ip, 0, 10000000),
    OPT("c2s", "limit_loopback", K_BOOL, limit_loopback, 0, 0),
    OPT("c2s", "max_resources_per_account", K_UINT, max_resources, 1, 1000000),
    OPT("c2s", "max_outq_bytes", K_SIZE, max_outq_bytes, 16384, 1ull << 32),
    OPT("c2s", "max_outq_hard_bytes", K_SIZE, max_outq_hard_bytes, 0, 1ull << 35),
    OPT("c2s", "write_timeout", K_UINT, write_timeout, 1, 86400),
    OPT("c2s", "max_read_per_turn", K_SIZE, max_read_per_turn, 4096, 64ull << 20),
    OPT("c2s", "idle_timeout", K_UINT, idle_timeout, 0, 86400 * 7),
    OPT("c2s", "keepalive_interval", K_UINT, keepalive_interval, 0, 86400),
    OPT("c2s", "login_timeout", K_UINT, login_timeout, 1, 3600),
    OPT("c2s", "resume_timeout", K_UINT, resume_timeout, 0, 86400),
    OPT("c2s", "sm_max_unacked_stanzas", K_UINT, sm_max_unacked, 16, 10000000),
    OPT("c2s", "sm_max_unacked_bytes", K_SIZE, sm_max_unacked_bytes, 65536, 1ull << 34),
    OPT("c2s", "csi_queue_size", K_UINT, csi_queue_size, 1, 100000),
    OPT("c2s", "client_ca_file", K_STR, client_ca_file, 0, 0),
    OPT("c2s", "client_crl_file", K_STR, client_crl_file, 0, 0),
    OPT("c2s", "client_cert_identity", K_STR, client_cert_identity, 0, 0),
    OPT("auth", "mechanisms", K_STR, mechanisms, 0, 0),
    OPT("auth", "failure_delay_ms", K_UINT, failure_delay_ms, 0, 60000),
    OPT("auth", "max_failures", K_UINT, max_failures, 1, 100),
    OPT("auth", "scram_iterations", K_UINT, scram_iterations, 4096, 10000000),
    OPT("auth", "address_failures", K_UINT, auth_address_failures, 0, 100000),
    OPT("auth", "account_failures", K_UINT, auth_account_failures, 0, 100000),
    OPT("auth", "failure_window_s", K_UINT, auth_failure_window_s, 1, 86400 * 7),
    OPT("auth", "address_backoff_max_s", K_UINT, auth_address_backoff_max_s, 1, 86400),
    OPT("auth", "account_backoff_max_s", K_UINT, auth_account_backoff_max_s, 1, 86400),
    OPT("auth", "budget_entries", K_UINT, auth_budget_entries, 8, 1u << 24),
    OPT("tls", "cert", K_STR, tls_cert, 0, 0),
    OPT("tls", "key", K_STR, tls_key, 0, 0),
    OPT("tls", "min_version", K_STR, tls_min_version, 0, 0),
    OPT("tls", "ciphers", K_STR, tls_ciphers, 0, 0),
    OPT("tls", "ciphersuites", K_STR, tls_ciphersuites, 0, 0),
    OPT("s2s", "port", K_INT, s2s_port, 0, 65535),
    OPT("s2s", "bind", K_STR, s2s_bind, 0, 0),
    OPT("s2s", "secure_auth", K_BOOL, s2s_secure_auth, 0, 0),
    OPT("s2s", "require_tls", K_BOOL, s2s_require_tls, 0, 0),
    OPT("s2s", "ca_file", K_STR, s2s_ca_file, 0, 0),
    OPT("s2s", "connect_timeout", K_UINT, s2s_connect_timeout, 1, 3600),
    OPT("s2s", "idle_timeout", K_UINT, s2s_idle_timeout, 0, 86400 * 7),
    OPT("s2s", "max_queue", K_UINT, s2s_max_queue, 1, 1000000),
    OPT("components", "port", K_INT, components_port, 0, 65535),
    OPT("components", "bind", K_STR, components_bind, 0, 0),
    OPT("disco", "features", K_STR, disco_features, 0, 0),
    OPT("disco", "items", K_STR, disco_items, 0, 0),
    OPT("pubsub", "jid", K_STR, pubsub_jid, 0, 0),
    OPT("pubsub", "max_items_cap", K_U32, pubsub_max_items, 1, 1000000),
    OPT("pubsub", "max_payload_size_cap", K_U32, pubsub_max_payload, 0, 64ull << 20),
    OPT("pubsub", "auto_create", K_BOOL, pubsub_auto_create, 0, 0),
    OPT("pubsub", "max_nodes_per_account", K_UINT, pubsub_max_nodes, 0, 100000000),
    OPT("pubsub", "node_page_size", K_UINT, pubsub_page_size, 1, 10000),
    OPT("pubsub", "max_offline_notifications", K_UINT, pubsub_max_offline, 0, 1000000),
    OPT("quotas", "max_publish_rate", K_U32, quota_max_publish_rate, 0, UINT32_MAX - 1),
    OPT("quotas", "max_subscribers", K_U32, quota_max_subscribers, 0, UINT32_MAX - 1),
    OPT("quotas", "max_node_bytes", K_U32, quota_max_node_bytes, 0, UINT32_MAX - 1),
    OPT("im", "max_offline_messages", K_UINT, max_offline, 0, 100000),
    OPT("im", "max_private_bytes", K_SIZE, max_private_bytes, 64, 64ull << 20),
    OPT("im", "max_private_elements", K_UINT, max_private_elements, 0, 100000),
    OPT("im", "max_private_account_bytes", K_SIZE, max_private_account_bytes, 0, 1ull << 30),
    OPT("im", "max_vcard_bytes", K_SIZE, max_vcard_bytes, 64, 64ull << 20),
    OPT("im", "max_blocklist_items", K_UINT, max_blocklist_items, 1, 100000),
    OPT("pep", "max_nodes_per_account", K_UINT, pep_max_nodes, 0, 100000),
    OPT("pep", "max_items_per_node", K_U32, pep_max_items, 1, 1000000),
    OPT("pep", "caps_cache_size", K_UINT, pep_caps_cache_size, 1, 10000000),
    OPT("pep", "caps_max_queries", K_UINT, pep_caps_max_queries, 1, 100000),
    OPT("mam", "enabled", K_BOOL, mam_enabled, 0, 0),
    OPT("mam", "default", K_STR, mam_default, 0, 0),
    OPT("mam", "max_age", K_UINT, mam_max_age, 0, 86400u * 36500),
    OPT("mam", "max_messages_per_account", K_UINT, mam_max_messages, 0, 100000000),
    OPT("mam", "max_page", K_UINT, mam_max_page, 1, 1000),
    OPT("storage", "map_size_mb", K_SIZE, map_size_mb, 1, 1ull << 24),
    OPT("storage", "max_map_size_mb", K_SIZE, max_map_size_mb, 1, 1ull << 24),
    OPT("storage", "reserve_mb", K_SIZE, reserve_mb, 0, 1ull << 24),
    OPT("http", "bind", K_STR, http_bind, 0, 0),
    OPT("http", "port", K_INT, http_port, 0, 65535),
    OPT("http", "tls_port", K_INT, https_port, 0, 65535),
    OPT("http", "max_outq_bytes", K_SIZE, http_max_outq_bytes, 16384, 1ull << 32),
    OPT("http", "write_timeout", K_UINT, http_write_timeout, 1, 3600),
    OPT("http", "header_timeout", K_UINT, http_header_timeout, 1, 3600),
    OPT("http", "idle_timeout", K_UINT, http_idle_timeout, 1, 86400),
    OPT("http", "max_connections", K_UINT, http_max_connections, 1, 10000000),
    OPT("http", "max_connections_per_ip", K_UINT, http_max_connections_per_ip, 0, 10000000),
    OPT("http", "limit_loopback", K_BOOL, http_limit_loopback, 0, 0),
    OPT("http", "allowed_origins", K_STR, http_allowed_origins, 0, 0),
    OPT("http", "bosh_max_wait", K_UINT, bosh_max_wait, 1, 3600),
    OPT("http", "bosh_inactivity", K_UINT, bosh_inactivity, 5, 3600),
    OPT("http", "bosh_max_pause", K_UINT, bosh_max_pause, 0, 86400),
    OPT("cluster", "name", K_STR, cluster_name, 0, 0),
    OPT("cluster", "nats_urls", K_STR, cluster_urls, 0, 0),
    OPT("cluster", "replicas", K_UINT, cluster_replicas, 1, 3),
    OPT("cluster", "cluster_id", K_STR, cluster_id, 0, 0),
    OPT("cluster", "publish_timeout_ms", K_UINT, cluster_publish_timeout_ms, 100, 600000),
    OPT("cluster", "max_inflight", K_UINT, cluster_max_inflight, 1, 1000000),
    OPT("cluster", "credentials", K_STR, cluster_credentials, 0, 0),
    OPT("cluster", "tls_ca", K_STR, cluster_tls_ca, 0, 0),
    OPT("cluster", "tls_cert", K_STR, cluster_tls_cert, 0, 0),
    OPT("cluster", "tls_key", K_STR, cluster_tls_key, 0, 0),
    OPT("webhooks", "allow", K_STR, webhooks_allow, 0, 0),
    OPT("webhooks", "max_concurrent", K_UINT, webhooks_max_concurrent, 1, 10000),
    OPT("webhooks", "timeout", K_UINT, webhooks_timeout, 1, 3600),
    OPT("webhooks", "connect_timeout", K_UINT, webhooks_connect_timeout, 1, 3600),
    OPT("webhooks", "max_attempts", K_UINT, webhooks_max_attempts, 1, 100),
    OPT("webhooks", "backoff_initial_ms", K_UINT, webhooks_backoff_initial_ms, 1, 3600000),
    OPT("webhooks", "backoff_max_ms", K_UINT, webhooks_backoff_max_ms, 1, 86400000),
    OPT("webhooks", "max_outbox", K_UINT, webhooks_max_outbox, 1, 100000000),
    OPT("webhooks", "max_outbox_bytes", K_SIZE, webhooks_max_outbox_bytes, 1024, 1ull << 40),
};

struct load_ctx {
    struct config *c;
    char *err;
    size_t errlen;
    const char *path;
    int lineno;
    int failed;
};

static int set_option(struct config *c, const struct option *o, const char *value, char *err,
                      size_t errlen)
{
    void *field = (char *)c + o->offset;
    switch (o->kind) {
    case K_STR:
        return config_set_str((char **)field, value[0] ? value : NULL) == 0 ? 0
               : (snprintf(err, errlen, "out of memory"), -1);
    case K_BOOL:
        if (!strcasecmp(value, "true") || !strcasecmp(value, "yes") || !strcmp(value, "1") ||
            !strcasecmp(value, "on")) {
            *(bool *)field = true;
            return 0;
        }
        if (!strcasecmp(value, "false") || !strcasecmp(value, "no") || !strcmp(value, "0") ||
            !strcasecmp(value, "off")) {
            *(bool *)field = false;
            return 0;
        }
        snprintf(err, errlen, "%s.%s: expected true or false, got '%s'", o->section, o->name, value);
        return -1;
    default: {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        if (errno || end == value || *end != '\0' || value[0] == '-' || v < o->min || v > o->max) {
            snprintf(err, errlen, "%s.%s: expected a whole number from %llu to %llu, got '%s'",
                     o->section, o->name, o->min, o->max, value);
            return -1;
        }
        if (o->kind == K_INT)
            *(int *)field = (int)v;
        else if (o->kind == K_UINT)
            *(unsigned *)field = (unsigned)v;
        else if (o->kind == K_U32)
            *(uint32_t *)field = (uint32_t)v;
        else
            *(size_t *)field = (size_t)v;
        return 0;
    }
    }
}

const struct config_component *config_component(const struct config *c, const char *domain)
{
    for (const struct config_component *k = c->components; k; k = k->next)
        if (strcmp(k->domain, domain) == 0)
            return k;
    return NULL;
}

const struct config_peer *config_peer(const struct config *c, const char *domain)
{
    for (const struct config_peer *p = c->peers; p; p = p->next)
        if (strcmp(p->domain, domain) == 0)
            return p;
    return NULL;
}

/* The line of `name` in [section] of the file (inih does not say), or 0:
 * the last such line, as inih hands over keys in file order and stops at
 * the first failure. */
static int find_line(const char *path, const char *section, const char *name)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char line[1024], cur[256] = "";
    int n = 0, found = 0;
    size_t nl = strlen(name);
    while (fgets(line, sizeof(line), f)) {
        n++;
        char *p = line + strspn(line, " \t");
        if (*p == '[') {
            size_t len = strcspn(p + 1, "]");
            snprintf(cur, sizeof(cur), "%.*s", (int)len, p + 1);
        } else if (strcmp(cur, section) == 0 && strncmp(p, name, nl) == 0 &&
                   (p[nl] == '=' || p[nl] == ' ' || p[nl] == '\t' || p[nl] == ':')) {
            found = n;
        }
    }
    fclose(f);
    return found;
}

static int ini_fail(struct load_ctx *ctx, const char *section, const char *name, const char *why)
{
    int line = find_line(ctx->path, section, name);
    if (line > 0)
        snprintf(ctx->err, ctx->errlen, "%s:%d: [%s] %s: %s", ctx->path, line, section, name, why);
    else
        snprintf(ctx->err, ctx->errlen, "%s: [%s] %s: %s", ctx->path, section, name, why);
    ctx->failed = 1;
    return 0;
}

/* A space/comma-separated list of JIDs; the first bad one in why. */
static bool jid_list_ok(const char *list, char *why, size_t cap)
{
    char *copy = list ? strdup(list) : NULL, *save = NULL;
    bool ok = true;
    struct jid j;
    for (char *w = copy ? strtok_r(copy, " ,", &save) : NULL; w; w = strtok_r(NULL, " ,", &save))
        if (jid_parse_str(&j, w) != 0) {
            snprintf(why, cap, "'%s' is not a JID", w);
            ok = false;
            break;
        }
    free(copy);
    return ok;
}

/* A domain as a section name must be a prepared domain JID. */
static bool prepared_domain(const char *d)
{
    struct jid j;
    return jid_parse_str(&j, d) == 0 && !j.local[0] && !j.resource[0] && strcmp(j.domain, d) == 0;
}

static const char *const quota_keys[CONFIG_NQUOTAS] = {"max_publish_rate", "max_subscribers",
                                                        "max_node_bytes"};

void config_quota_defaults(const struct config *c, const char *bare,
                           uint32_t out[CONFIG_NQUOTAS])
{
    out[CONFIG_QUOTA_RATE] = c->quota_max_publish_rate;
    out[CONFIG_QUOTA_SUBSCRIBERS] = c->quota_max_subscribers;
    out[CONFIG_QUOTA_BYTES] = c->quota_max_node_bytes;
    for (const struct config_quota *q = c->quotas; q; q = q->next) {
        if (strcmp(q->jid, bare) != 0)
            continue;
        for (int i = 0; i < CONFIG_NQUOTAS; i++)
            if (q->set[i])
                out[i] = q->value[i];
    }
}

/* A bare JID as a section name must be in prepared form (what the
 * service compares creators with). */
static bool prepared_bare(const char *s)
{
    struct jid j;
    char buf[JID_MAX + 1];
    return jid_parse_str(&j, s) == 0 && j.local[0] && !j.resource[0] &&
           jid_format(&j, true, buf, sizeof(buf)) >= 0 && strcmp(buf, s) == 0;
}

/* [quota:BAREJID]: one account's quota defaults. */
static int quota_section(struct load_ctx *ctx, const char *section, const char *name,
                         const char *value)
{
    struct config *c = ctx->c;
    const char *arg = section + 6;
    if (!prepared_bare(arg))
        return ini_fail(ctx, section, name, "the section must name a bare JID in prepared form "
                                            "(user@domain, lower case)");
    int k = 0;
    while (k < CONFIG_NQUOTAS && strcmp(name, quota_keys[k]) != 0)
        k++;
    if (k == CONFIG_NQUOTAS)
        return ini_fail(ctx, section, name,
                        "unknown option (max_publish_rate, max_subscribers, max_node_bytes)");
    char *end;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (errno || end == value || *end != '\0' || value[0] == '-' || v >= UINT32_MAX)
        return ini_fail(ctx, section, name, "expected a whole number from 0 to 4294967294");
    struct config_quota *q = c->quotas;
    while (q && strcmp(q->jid, arg) != 0)
        q = q->next;
    if (q == NULL) {
        if ((q = calloc(1, sizeof(*q))) == NULL || (q->jid = strdup(arg)) == NULL) {
            free(q);
            return ini_fail(ctx, section, name, "out of memory");
        }
        q->next = c->quotas;
        c->quotas = q;
    }
    q->value[k] = (uint32_t)v;
    q->set[k] = true;
    return 1;
}

/* [s2s:DOMAIN], [component:DOMAIN] and [disco_node:NODE]: one entry each,
 * made at the section's first key. Returns 1 (handled), 0 (failed, ctx
 * says why) or -1 (not such a section). */
static int named_section(struct load_ctx *ctx, const char *section, const char *name,
                         const char *value)
{
    struct config *c = ctx->c;
    const char *arg;
    if (strncmp(section, "s2s:", 4) == 0) {
        arg = section + 4;
        if (!prepared_domain(arg))
            return ini_fail(ctx, section, name, "the section must name a prepared domain");
        struct config_peer *p = (struct config_peer *)config_peer(c, arg);
        if (p == NULL) {
            if ((p = calloc(1, sizeof(*p))) == NULL || (p->domain = strdup(arg)) == NULL) {
                free(p);
                return ini_fail(ctx, section, name, "out of memory");
            }
            p->port = 5269;
            p->next = c->peers;
            c->peers = p;
        }
        if (strcmp(name, "host") == 0)
            return config_set_str(&p->host, value) == 0 ? 1 : ini_fail(ctx, section, name, "out of memory");
        if (strcmp(name, "port") == 0) {
            char *end;
            long v = strtol(value, &end, 10);
            if (end == value || *end || v < 1 || v > 65535)
                return ini_fail(ctx, section, name, "expected a port from 1 to 65535");
            p->port = (int)v;
            return 1;
        }
        return ini_fail(ctx, section, name, "unknown option (host, port)");
    }
    if (strncmp(section, "component:", 10) == 0) {
        arg = section + 10;
        if (!prepared_domain(arg))
            return ini_fail(ctx, section, name, "the section must name a prepared domain");
        struct config_component *k = (struct config_component *)config_component(c, arg);
        if (k == NULL) {
            if ((k = calloc(1, sizeof(*k))) == NULL || (k->domain = strdup(arg)) == NULL) {
                free(k);
                return ini_fail(ctx, section, name, "out of memory");
            }
            k->next = c->components;
            c->components = k;
        }
        if (strcmp(name, "secret") == 0)
            return config_set_str(&k->secret, value[0] ? value : NULL) == 0
                   ? 1 : ini_fail(ctx, section, name, "out of memory");
        return ini_fail(ctx, section, name, "unknown option (secret)");
    }
    if (strncmp(section, "quota:", 6) == 0)
        return quota_section(ctx, section, name, value);
    if (strncmp(section, "disco_node:", 11) == 0) {
        arg = section + 11;
        if (arg[0] == '\0')
            return ini_fail(ctx, section, name, "the section must name a node");
        struct config_disco_node *d = c->disco_nodes;
        while (d && strcmp(d->node, arg) != 0)
            d = d->next;
        if (d == NULL) {
            if ((d = calloc(1, sizeof(*d))) == NULL || (d->node = strdup(arg)) == NULL) {
                free(d);
                return ini_fail(ctx, section, name, "out of memory");
            }
            d->next = c->disco_nodes;
            c->disco_nodes = d;
        }
        char **field = strcmp(name, "features") == 0 ? &d->features
                     : strcmp(name, "items") == 0  ? &d->items : NULL;
        char why[300];
        if (field == NULL)
            return ini_fail(ctx, section, name, "unknown option (features, items)");
        if (field == &d->items && !jid_list_ok(value, why, sizeof(why)))
            return ini_fail(ctx, section, name, why);
        return config_set_str(field, value[0] ? value : NULL) == 0
               ? 1 : ini_fail(ctx, section, name, "out of memory");
    }
    return -1;
}

static int on_ini(void *ud, const char *section, const char *name, const char *value)
{
    struct load_ctx *ctx = ud;
    if (ctx->failed)
        return 0;
    int named = named_section(ctx, section, name, value);
    if (named >= 0)
        return named;
    for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
        const struct option *o = &options[i];
        if (strcmp(o->section, section) == 0 && strcmp(o->name, name) == 0) {
            char msg[256];
            if (set_option(ctx->c, o, value, msg, sizeof(msg)) != 0) {
                int line = find_line(ctx->path, section, name);
                if (line > 0)
                    snprintf(ctx->err, ctx->errlen, "%s:%d: %s", ctx->path, line, msg);
                else
                    snprintf(ctx->err, ctx->errlen, "%s: %s", ctx->path, msg);
                ctx->failed = 1;
                return 0;
            }
            if (o->offset == offsetof(struct config, data_dir))
                ctx->c->data_dir_origin = ctx->path;
            if (o->offset == offsetof(struct config, disco_items) &&
                !jid_list_ok(value, msg, sizeof(msg)))
                return ini_fail(ctx, section, name, msg);
            return 1;
        }
    }
    snprintf(ctx->err, ctx->errlen, "%s: unknown option '%s' in section [%s]", ctx->path, name,
             section);
    ctx->failed = 1;
    return 0;
}

int config_load(struct config *c, const char *path, char *err, size_t errlen)
{
    struct load_ctx ctx = {c, err, errlen, path, 0, 0};
    int rc = ini_parse(path, on_ini, &ctx);
    if (rc < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (ctx.failed)
        return -1;
    if (rc > 0) {
        snprintf(err, errlen, "%s:%d: syntax error", path, rc);
        return -1;
    }
    return 0;
}

static bool is_loopback(const char *addr)
{
    return conn_addr_is_loopback(addr) || strcmp(addr, "localhost") == 0;
}

/* NATS subject and stream name tokens: [A-Za-z0-9_-], 1..32. */
static bool cluster_token(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 32)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
            return false;
    return true;
}

static int config_check_cluster(const struct config *c, char *err, size_t errlen)
{
    if (!cluster_token(c->cluster_name) || !cluster_token(c->cluster_id)) {
        snprintf(err, errlen, "cluster.name and cluster.cluster_id must be 1 to 32 of "
                 "A-Z a-z 0-9 _ -");
        return -1;
    }
    if (c->cluster_urls == NULL || strncmp(c->cluster_urls, "nats://", 7) != 0) {
        snprintf(err, errlen, "cluster.nats_urls must list nats:// URLs, comma-separated");
        return -1;
    }
    if ((c->cluster_tls_cert == NULL) != (c->cluster_tls_key == NULL)) {
        snprintf(err, errlen, "cluster.tls_cert and cluster.tls_key must be set together");
        return -1;
    }
    if (c->cluster_replicas != 1 && c->cluster_replicas != 3) {
        snprintf(err, errlen, "cluster.replicas must be 1 or 3");
        return -1;
    }
    return 0;
}

static int config_check_federation(const struct config *c, char *err, size_t errlen)
{
    for (const struct config_component *k = c->components; k; k = k->next) {
        if (k->secret == NULL) {
            snprintf(err, errlen, "[component:%s] needs a secret", k->domain);
            return -1;
        }
        if (strcmp(k->domain, c->domain) == 0 ||
            (c->pubsub_jid && strcmp(k->domain, c->pubsub_jid) == 0)) {
            snprintf(err, errlen, "[component:%s]: that domain is the server's own", k->domain);
            return -1;
        }
    }
    for (const struct config_peer *p = c->peers; p; p = p->next)
        if (p->host == NULL) {
            snprintf(err, errlen, "[s2s:%s] needs a host", p->domain);
            return -1;
        }
    if (c->client_cert_identity == NULL || (strcmp(c->client_cert_identity, "xmppaddr") &&
                                            strcmp(c->client_cert_identity, "cn") &&
                                            strcmp(c->client_cert_identity, "email"))) {
        snprintf(err, errlen, "c2s.client_cert_identity must be xmppaddr, cn or email");
        return -1;
    }
    if (c->tls_min_version == NULL || (strcmp(c->tls_min_version, "TLSv1.2") &&
                                       strcmp(c->tls_min_version, "TLSv1.3"))) {
        snprintf(err, errlen, "tls.min_version must be TLSv1.2 or TLSv1.3");
        return -1;
    }
    return 0; /* disco items are checked as they are read (on_ini) */
}

int config_validate(const struct config *c, char *err, size_t errlen)
{
    struct jid j;
    if (c->domain == NULL || jid_parse_str(&j, c->domain) != 0 || j.local[0] || j.resource[0]) {
        snprintf(err, errlen, "server.domain '%s' is not a valid domain name",
                 c->domain ? c->domain : "");
        return -1;
    }
    if (strcmp(j.domain, c->domain) != 0) {
        snprintf(err, errlen, "server.domain must be given in prepared form: '%s'", j.domain);
        return -1;
    }
    if (c->data_dir == NULL) {
        snprintf(err, errlen, "server.data_dir must be set");
        return -1;
    }
    if (c->mam_default == NULL || (strcmp(c->mam_default, "always") != 0 &&
                                   strcmp(c->mam_default, "never") != 0 &&
                                   strcmp(c->mam_default, "roster") != 0)) {
        snprintf(err, errlen, "mam.default must be always, never or roster");
        return -1;
    }
    if (c->log_level == NULL || log_level_parse(c->log_level) < 0) {
        snprintf(err, errlen, "server.log_level must be debug, info, warn or error");
        return -1;
    }
    struct in_addr a4;
    struct in6_addr a6;
    if (c->c2s_bind == NULL ||
        (inet_pton(AF_INET, c->c2s_bind, &a4) != 1 && inet_pton(AF_INET6, c->c2s_bind, &a6) != 1)) {
        snprintf(err, errlen, "c2s.bind must be an IPv4 or IPv6 address, got '%s'",
                 c->c2s_bind ? c->c2s_bind : "");
        return -1;
    }
    if (c->allow_plaintext && !is_loopback(c->c2s_bind) && !c->allow_plaintext_public) {
        snprintf(err, errlen,
                 "c2s.allow_plaintext on the non-loopback address %s sends passwords in clear; "
                 "set c2s.allow_plaintext_public = true (or pass --allow-plaintext twice) if you "
                 "really mean it",
                 c->c2s_bind);
        return -1;
    }
    if ((c->tls_cert == NULL) != (c->tls_key == NULL)) {
        snprintf(err, errlen, "tls.cert and tls.key must be set together");
        return -1;
    }
    if (c->mechanisms == NULL || c->mechanisms[0] == '\0') {
        snprintf(err, errlen, "auth.mechanisms must list at least one mechanism");
        return -1;
    }
    char *copy = strdup(c->mechanisms), *save = NULL;
    if (copy == NULL)
        return -1;
    for (char *m = strtok_r(copy, " ,", &save); m; m = strtok_r(NULL, " ,", &save)) {
        if (strcmp(m, "SCRAM-SHA-256") && strcmp(m, "SCRAM-SHA-1") && strcmp(m, "PLAIN")) {
            snprintf(err, errlen, "auth.mechanisms: unsupported mechanism '%s' "
                     "(supported: SCRAM-SHA-256 SCRAM-SHA-1 PLAIN)", m);
            free(copy);
            return -1;
        }
    }
    free(copy);
    if (c->pubsub_jid && (jid_parse_str(&j, c->pubsub_jid) != 0 || j.local[0] || j.resource[0] ||
                          strcmp(j.domain, c->pubsub_jid) != 0 || strcmp(j.domain, c->domain) == 0)) {
        snprintf(err, errlen, "pubsub.jid must be a prepared domain other than server.domain");
        return -1;
    }
    if (c->pubsub_max_payload > c->max_stanza_size) {
        snprintf(err, errlen, "pubsub.max_payload_size_cap (%u) must not exceed "
                 "c2s.max_stanza_size (%zu)", c->pubsub_max_payload, c->max_stanza_size);
        return -1;
    }
    if (c->keepalive_interval && c->idle_timeout && c->keepalive_interval >= c->idle_timeout) {
        snprintf(err, errlen, "c2s.keepalive_interval must be shorter than c2s.idle_timeout");
        return -1;
    }
    if (c->cluster_name && config_check_cluster(c, err, errlen) != 0)
        return -1;
    if (config_check_federation(c, err, errlen) != 0)
        return -1;
    if (c->max_outq_hard_bytes && c->max_outq_hard_bytes < c->max_outq_bytes) {
        snprintf(err, errlen, "c2s.max_outq_hard_bytes (%zu) must be at least c2s.max_outq_bytes "
                 "(%zu)", c->max_outq_hard_bytes, c->max_outq_bytes);
        return -1;
    }
    return 0;
}

void config_print(const struct config *c, void *stdio_file)
{
    FILE *f = stdio_file;
    const char *section = "";
    for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
        const struct option *o = &options[i];
        const void *field = (const char *)c + o->offset;
        if (strcmp(section, o->section) != 0) {
            fprintf(f, "%s[%s]\n", i ? "\n" : "", o->section);
            section = o->section;
        }
        switch (o->kind) {
        case K_STR: {
            const char *s = *(char *const *)field;
            fprintf(f, "%s = %s\n", o->name, s ? s : "");
            break;
        }
        case K_BOOL: fprintf(f, "%s = %s\n", o->name, *(const bool *)field ? "true" : "false"); break;
        case K_INT: fprintf(f, "%s = %d\n", o->name, *(const int *)field); break;
        case K_UINT: fprintf(f, "%s = %u\n", o->name, *(const unsigned *)field); break;
        case K_SIZE: fprintf(f, "%s = %zu\n", o->name, *(const size_t *)field); break;
        case K_U32: fprintf(f, "%s = %u\n", o->name, *(const uint32_t *)field); break;
        }
    }
    for (const struct config_peer *p = c->peers; p; p = p->next)
        fprintf(f, "\n[s2s:%s]\nhost = %s\nport = %d\n", p->domain, p->host ? p->host : "",
                p->port);
    /* The secret stays out of the output (it is a credential). */
    for (const struct config_component *k = c->components; k; k = k->next)
        fprintf(f, "\n[component:%s]\n; secret is set\n", k->domain);
    for (const struct config_quota *q = c->quotas; q; q = q->next) {
        fprintf(f, "\n[quota:%s]\n", q->jid);
        for (int i = 0; i < CONFIG_NQUOTAS; i++)
            if (q->set[i])
                fprintf(f, "%s = %u\n", quota_keys[i], q->value[i]);
    }
    for (const struct config_disco_node *d = c->disco_nodes; d; d = d->next)
        fprintf(f, "\n[disco_node:%s]\nfeatures = %s\nitems = %s\n", d->node,
                d->features ? d->features : "", d->items ? d->items : "");
}
