/* config.h - Herald's settings: embedded defaults, an INI file (libinih),
 * then command-line overrides, in that order. The struct is plain data owned
 * by the caller; strings are malloc'd and freed by config_free. Every option
 * is described in docs/configuration.md and docs/herald.conf.example. */
#ifndef HERALD_CONFIG_H
#define HERALD_CONFIG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Sections named by what they configure (docs/configuration.md): */
struct config_peer {          /* [s2s:DOMAIN]: a static route to a peer server */
    char *domain;
    char *host;               /* address or host name */
    int port;
    struct config_peer *next;
};
struct config_component {     /* [component:DOMAIN]: an external component (XEP-0114) */
    char *domain;
    char *secret;
    struct config_component *next;
};
/* [quotas] and [quota:BAREJID] (docs/pubsub.md "Quotas"): the quota fields
 * a new pubsub node starts from; 0 = no limit. */
enum { CONFIG_QUOTA_RATE, CONFIG_QUOTA_SUBSCRIBERS, CONFIG_QUOTA_BYTES, CONFIG_NQUOTAS };
struct config_quota {         /* [quota:BAREJID]: one account's overrides */
    char *jid;
    uint32_t value[CONFIG_NQUOTAS];
    bool set[CONFIG_NQUOTAS]; /* a key not given falls back to [quotas] */
    struct config_quota *next;
};
struct config_disco_node {    /* [disco_node:NODE]: a named disco node on the server JID */
    char *node;
    char *features;           /* space/comma-separated, or NULL */
    char *items;              /* JIDs, space/comma-separated, or NULL */
    struct config_disco_node *next;
};

struct config {
    /* [server] */
    char *domain;
    char *data_dir;
    /* Where data_dir was set, for the CLI's messages: NULL for the built-in
     * default, else the config file's path or "--data-dir" (not owned: the
     * strings passed to config_load and main's argv outlive the struct). */
    const char *data_dir_origin;
    char *log_level;
    /* [c2s] */
    char *c2s_bind;
    int c2s_port;
    bool require_tls;
    bool allow_plaintext;
    bool allow_plaintext_public; /* allow_plaintext on a non-loopback address */
    size_t max_stanza_size;
    unsigned max_depth;
    unsigned max_connections;
    unsigned max_connections_per_ip;
    bool limit_loopback;         /* apply max_connections_per_ip to 127.0.0.0/8 and ::1 too */
    unsigned max_resources;      /* bound resources per account */
    size_t max_outq_bytes;       /* soft bound: past it, producers are paced */
    size_t max_outq_hard_bytes;  /* hard bound: a send past it closes (0 = 8 x soft) */
    unsigned write_timeout;      /* seconds without write progress, output queued */
    size_t max_read_per_turn;    /* input bytes handled per connection per loop turn */
    unsigned idle_timeout;       /* seconds without traffic before closing */
    unsigned keepalive_interval; /* seconds idle before a whitespace ping */
    unsigned login_timeout;      /* seconds to authenticate and bind */
    unsigned resume_timeout;     /* XEP-0198: seconds a lost session waits; 0 = no resumption */
    unsigned sm_max_unacked;     /* unacknowledged stanzas kept per session */
    size_t sm_max_unacked_bytes; /* ... and their bytes */
    unsigned csi_queue_size;     /* XEP-0352: stanzas held for an inactive client */
    char *client_ca_file;        /* SASL EXTERNAL (XEP-0178): client certificates' CA */
    char *client_crl_file;       /* ... and its revocation list (PEM), optional */
    char *client_cert_identity;  /* xmppaddr, cn or email: where the JID is read */
    /* [s2s] federation (docs/federation.md) */
    int s2s_port;                /* 0: off */
    char *s2s_bind;              /* NULL: c2s.bind */
    bool s2s_secure_auth;        /* only peers whose certificate verifies */
    bool s2s_require_tls;        /* STARTTLS offered and required both ways */
    char *s2s_ca_file;           /* NULL: OpenSSL's default trust store */
    unsigned s2s_connect_timeout; /* seconds to reach and authenticate a peer */
    unsigned s2s_idle_timeout;   /* seconds without traffic before closing */
    unsigned s2s_max_queue;      /* stanzas queued per peer while connecting */
    struct config_peer *peers;
    /* [components] XEP-0114 (docs/components.md) */
    int components_port;         /* listens only when a component is configured */
    char *components_bind;       /* NULL: c2s.bind */
    struct config_component *components;
    /* [disco] extra features and items on the server JID, and named nodes */
    char *disco_features;
    char *disco_items;
    struct config_disco_node *disco_nodes;
    /* [auth] */
    char *mechanisms;
    unsigned failure_delay_ms;
    unsigned max_failures;
    unsigned scram_iterations;
    unsigned auth_address_failures;      /* free failures per address before backoff; 0: off */
    unsigned auth_account_failures;      /* free failures per account before backoff; 0: off */
    unsigned auth_failure_window_s;      /* failures are forgotten after this long without one */
    unsigned auth_address_backoff_max_s; /* cap on one block of an address */
    unsigned auth_account_backoff_max_s; /* cap on one block of an account */
    unsigned auth_budget_entries;        /* entries in each budget table (memory bound) */
    /* [tls] */
    char *tls_cert;  /* NULL: <data_dir>/tls/cert.pem, generated if absent */
    char *tls_key;
    char *tls_min_version;       /* TLSv1.2 or TLSv1.3 */
    char *tls_ciphers;           /* TLS 1.2 cipher list (OpenSSL syntax), NULL: OpenSSL's */
    char *tls_ciphersuites;      /* TLS 1.3 suites, NULL: OpenSSL's */
    /* [pubsub] */
    char *pubsub_jid;            /* NULL: pubsub.<domain> */
    uint32_t pubsub_max_items;   /* cap on pubsub#max_items */
    uint32_t pubsub_max_payload; /* cap on pubsub#max_payload_size; 0: min(64 KiB, max_stanza_size) */
    bool pubsub_auto_create;
    unsigned pubsub_max_nodes;   /* nodes one account may own; 0: no quota */
    unsigned pubsub_page_size;   /* nodes per disco#items / GET /v1/nodes page at most */
    unsigned pubsub_max_offline; /* notifications kept for an offline subscriber (catch-up) */
    /* [quotas] defaults of new nodes, and [quota:BAREJID] sections */
    uint32_t quota_max_publish_rate;
    uint32_t quota_max_subscribers;
    uint32_t quota_max_node_bytes;
    struct config_quota *quotas;
    /* [im] */
    unsigned max_offline;        /* stored messages per account */
    size_t max_private_bytes;         /* XEP-0049: one stored element, serialized */
    unsigned max_private_elements;    /* XEP-0049: stored elements per account */
    size_t max_private_account_bytes; /* XEP-0049: all of one account's elements */
    size_t max_vcard_bytes;           /* XEP-0054: one account's vCard, serialized */
    unsigned max_blocklist_items; /* XEP-0191: JIDs on one account's block list */
    /* [pep] XEP-0163 on accounts, XEP-0115 caps (docs/pubsub.md "PEP") */
    unsigned pep_max_nodes;      /* PEP nodes per account; 0: no quota */
    uint32_t pep_max_items;      /* cap on a PEP node's pubsub#max_items */
    unsigned pep_caps_cache_size; /* verified caps vers remembered (LRU) */
    unsigned pep_caps_max_queries; /* outstanding caps disco#info queries */
    /* [mam] message archives (docs/mam.md) */
    bool mam_enabled;
    char *mam_default;           /* always, never or roster: for accounts without preferences */
    unsigned mam_max_age;        /* seconds a message is kept; 0 = forever */
    unsigned mam_max_messages;   /* per account; storing past it drops the oldest; 0 = no cap */
    unsigned mam_max_page;       /* messages per query page at most (a larger max is clamped) */
    /* [storage] */
    size_t map_size_mb;
    size_t max_map_size_mb;   /* automatic growth stops here */
    size_t reserve_mb;        /* kept for deletions at the ceiling (at most 1/8 of it) */
    /* [http] (REST bridge: see docs/configuration.md for its status) */
    char *http_bind;
    int http_port;
    int https_port;              /* the same API over TLS; 0 = off */
    size_t http_max_outq_bytes;  /* answer bytes in flight per connection before parsing stops */
    unsigned http_write_timeout; /* seconds queued output may make no progress */
    unsigned http_header_timeout; /* seconds from a request's first byte to its end */
    unsigned http_idle_timeout;  /* seconds from accept or the last answer to the next request */
    unsigned http_max_connections;        /* HTTP and HTTPS together */
    unsigned http_max_connections_per_ip; /* 0 = no per-address limit */
    bool http_limit_loopback;    /* apply http.max_connections_per_ip to loopback peers too */
    char *http_allowed_origins;  /* web pages allowed to use WebSocket/BOSH: "*", a list of
                                  * origins, or NULL = the same origin only (docs/web.md) */
    unsigned bosh_max_wait;      /* seconds a BOSH request is held at most (XEP-0124 'wait') */
    unsigned bosh_inactivity;    /* seconds a BOSH session may have no request held */
    unsigned bosh_max_pause;     /* seconds a client may pause a BOSH session for */
    /* [cluster] (docs/cluster.md): cluster mode is on when name is set */
    char *cluster_name;          /* this instance, unique in the cluster */
    char *cluster_urls;          /* nats_urls: comma-separated nats:// URLs */
    unsigned cluster_replicas;   /* 1 or 3: the log stream's replicas */
    char *cluster_id;            /* names the NATS objects (HRD_<id>_LOG); the same everywhere */
    unsigned cluster_publish_timeout_ms; /* a change not stored by then is answered "wait" */
    unsigned cluster_max_inflight; /* changes proposed and not yet applied, per instance */
    char *cluster_credentials;   /* NATS .creds file (JWT + NKey seed), or NULL */
    char *cluster_tls_ca;        /* CA file: TLS to the nats-servers, verified against it */
    char *cluster_tls_cert;      /* client certificate and key for NATS TLS (optional) */
    char *cluster_tls_key;
    /* [webhooks] (docs/webhooks.md) */
    char *webhooks_allow;        /* CIDR list of destinations allowed despite the SSRF guard */
    unsigned webhooks_max_concurrent; /* requests in flight at once (one per webhook) */
    unsigned webhooks_timeout;   /* seconds a request may take, connecting included */
    unsigned webhooks_connect_timeout; /* seconds to connect */
    unsigned webhooks_max_attempts; /* attempts per event before the dead-letter node */
    unsigned webhooks_backoff_initial_ms; /* delay before the second attempt */
    unsigned webhooks_backoff_max_ms;     /* the delay's ceiling */
    unsigned webhooks_max_outbox; /* events waiting per webhook; more are dropped (counted) */
    size_t webhooks_max_outbox_bytes; /* ... and their bytes */
};

void config_defaults(struct config *c);
/* Reads an INI file over the current values. On error writes a message with
 * the file and line to err and returns -1. */
int config_load(struct config *c, const char *path, char *err, size_t errlen);
/* Checks values that depend on each other; fills err and returns -1 when a
 * setting is unusable. */
int config_validate(const struct config *c, char *err, size_t errlen);
/* Sets a string field, freeing the old value. Returns -1 on ENOMEM. */
int config_set_str(char **field, const char *value);
/* Prints the effective configuration in the file's own format. */
void config_print(const struct config *c, void *stdio_file);
void config_free(struct config *c);
/* The [component:DOMAIN] and [s2s:DOMAIN] sections for domain, or NULL. */
const struct config_component *config_component(const struct config *c, const char *domain);
const struct config_peer *config_peer(const struct config *c, const char *domain);
/* The quota defaults of a new node created by the account bare:
 * [quota:bare] where it sets a key, else [quotas]. */
void config_quota_defaults(const struct config *c, const char *bare,
                           uint32_t out[CONFIG_NQUOTAS]);

#endif
