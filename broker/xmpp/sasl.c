/* sasl.c - Cyrus SASL server glue: options, username canonicalisation, the
 * "herald" auxprop plugin and the PLAIN checkpass callback, and the failure
 * budgets (auth_budget.h) that stand between a guesser and the password
 * check: per client address and per account name.
 *
 * Where the budgets act: hsasl_start refuses a blocked address before Cyrus
 * sees anything; the per-connection canon_user callback, which Cyrus calls
 * with the authentication identity before it looks up credentials (PLAIN and
 * SCRAM alike), refuses a blocked account. Either way no PBKDF2 runs. Only
 * verified failures (wrong password or unknown user) are counted. */
#include "sasl.h"

#include <openssl/crypto.h>
#include <sasl/sasl.h>
#include <sasl/saslplug.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "auth_budget.h"
#include "config.h"
#include "errors.h"
#include "jid.h"
#include "log.h"
#include "scram.h"
#include "store.h"

/* Cyrus SASL is process-wide state; these mirror it. */
static struct store *g_store;
static char g_domain[JID_PART_MAX + 1];
static char g_mechs[256];
static unsigned g_iterations;           /* for unknown users' fake credentials */
static uint8_t g_secret[STORE_SECRET_LEN]; /* keys unknown users' fake salts */
static struct auth_budget *g_by_addr, *g_by_account;

struct hsasl {
    sasl_conn_t *conn;
    char mechs[256];
    char mech[32];
    bool tls;
    char addr[64];                  /* budget key of the peer address */
    char user[JID_PART_MAX + 1];    /* the authentication identity, once known */
    unsigned refused_s;             /* a budget refused this attempt: retry after */
    sasl_callback_t callbacks[2];   /* per-connection canon_user, with this as context */
};

static uint64_t now_ms(void) { return uv_hrtime() / 1000000u; }

/* "alice" or "alice@domain" -> prepared localpart in out. */
static int user_localpart(const char *in, size_t inlen, char *out)
{
    const char *at = memchr(in, '@', inlen);
    size_t ll = at ? (size_t)(at - in) : inlen;
    if (ll == 0 || ll > JID_PART_MAX)
        return -1;
    if (at != NULL) {
        char dom[JID_PART_MAX + 1];
        size_t dl = inlen - ll - 1;
        struct jid j;
        if (dl > JID_PART_MAX)
            return -1;
        memcpy(dom, at + 1, dl);
        dom[dl] = '\0';
        if (jid_parse_str(&j, dom) != 0 || strcmp(j.domain, g_domain) != 0)
            return -1;
    }
    memcpy(out, in, ll);
    out[ll] = '\0';
    return jid_nodeprep(out) == 0 ? 0 : -1;
}

static int bare_of(const char *user, size_t len, char *bare, size_t cap)
{
    char local[JID_PART_MAX + 1];
    if (user_localpart(user, len, local) != 0)
        return -1;
    int n = snprintf(bare, cap, "%s@%s", local, g_domain);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

static int cb_getopt(void *ctx, const char *plugin, const char *option, const char **result,
                     unsigned *len)
{
    const char *v = NULL;
    if (strcmp(option, "mech_list") == 0)
        v = g_mechs;
    else if (strcmp(option, "auxprop_plugin") == 0)
        v = "herald";
    else if (strcmp(option, "pwcheck_method") == 0)
        v = "auxprop";
    if (v == NULL)
        return SASL_FAIL;
    *result = v;
    if (len)
        *len = (unsigned)strlen(v);
    return SASL_OK;
}

static int cb_log(void *ctx, int level, const char *msg)
{
    /* Cyrus logs failed exchanges, which a client causes at will. */
    static struct log_limit warn_lim, debug_lim;
    if (level <= SASL_LOG_ERR)
        log_limited(&warn_lim, LOG_WARN, "sasl", "%s", msg);
    else
        log_limited(&debug_lim, LOG_DEBUG, "sasl", "%s", msg);
    return SASL_OK;
}

static int cb_canon(sasl_conn_t *conn, void *ctx, const char *in, unsigned inlen,
                    unsigned flags, const char *realm, char *out, unsigned out_max,
                    unsigned *out_len)
{
    char local[JID_PART_MAX + 1];
    if (user_localpart(in, inlen, local) != 0) {
        sasl_seterror(conn, 0, "username does not prepare as an XMPP localpart");
        return SASL_BADPROT;
    }
    size_t n = strlen(local);
    if (n >= out_max)
        return SASL_BUFOVER;
    struct hsasl *s = ctx;
    if (s != NULL && (flags & SASL_CU_AUTHID)) {
        memcpy(s->user, local, n + 1);
        /* The account budget refuses only addresses that have failed
         * recently themselves: an attacker spraying one account from many
         * addresses is slowed down, while the real user, from an address
         * with no failures, always gets to try (no lockout by a third party). */
        uint64_t now = now_ms();
        unsigned wait = auth_budget_failures(g_by_addr, s->addr, strlen(s->addr), now) > 0
                            ? auth_budget_wait(g_by_account, local, n, now)
                            : 0;
        if (wait > 0) {
            s->refused_s = wait;
            sasl_seterror(conn, 0, "too many failed attempts on this account");
            return SASL_FAIL;
        }
    }
    memcpy(out, local, n + 1);
    *out_len = (unsigned)n;
    return SASL_OK;
}

static int cb_checkpass(sasl_conn_t *conn, void *ctx, const char *user, const char *pass,
                        unsigned passlen, struct propctx *propctx)
{
    char bare[2 * JID_PART_MAX + 2];
    struct store_user u;
    if (bare_of(user, strlen(user), bare, sizeof(bare)) != 0)
        return SASL_NOUSER;
    int rc = store_user_get(g_store, bare, &u);
    if (rc == HERALD_ENOTFOUND) {
        /* The same PBKDF2 as for a real account, so that timing does not
         * tell which accounts exist. */
        if (scram_fake_user(&u, g_secret, bare, g_iterations) != 0)
            return SASL_FAIL;
        (void)scram_check_password(&u, pass, passlen);
        return SASL_NOUSER;
    }
    if (rc != 0)
        return SASL_FAIL;
    return scram_check_password(&u, pass, passlen) ? SASL_OK : SASL_BADAUTH;
}

/* The auxprop plugin: fills *authPassword with one RFC 5803 value per hash. */
static int auxprop_lookup(void *glob, sasl_server_params_t *sp, unsigned flags,
                          const char *user, unsigned ulen)
{
    if (flags & SASL_AUXPROP_AUTHZID)
        return SASL_OK; /* nothing is stored about authorization identities */
    const struct propval *want = sp->utils->prop_get(sp->propctx);
    bool asked = false;
    for (const struct propval *p = want; p && p->name; p++)
        if (strcmp(p->name, "*authPassword") == 0 && p->values == NULL)
            asked = true;
    if (!asked)
        return SASL_OK;
    char bare[2 * JID_PART_MAX + 2];
    struct store_user u;
    if (bare_of(user, ulen, bare, sizeof(bare)) != 0)
        return SASL_NOUSER;
    int rc = store_user_get(g_store, bare, &u);
    /* An unknown user gets deterministic fake credentials: SCRAM then sends
     * a salt and iteration count as for a real account and fails at the
     * client's proof, like a wrong password, instead of failing at once. */
    if (rc == HERALD_ENOTFOUND)
        rc = scram_fake_user(&u, g_secret, bare, g_iterations);
    if (rc != 0) {
        static struct log_limit lim;
        log_limited(&lim, LOG_ERROR, "sasl", "credential lookup for %s failed: %s", bare,
                    herald_strerror(rc));
        return SASL_FAIL;
    }
    char v[256];
    if (scram_auth_password(&u, SCRAM_SHA256, v, sizeof(v)) > 0)
        sp->utils->prop_set(sp->propctx, "*authPassword", v, (int)strlen(v));
    if (scram_auth_password(&u, SCRAM_SHA1, v, sizeof(v)) > 0)
        sp->utils->prop_set(sp->propctx, "*authPassword", v, (int)strlen(v));
    return SASL_OK;
}

static sasl_auxprop_plug_t auxprop_plugin = {
    0, 0, NULL, NULL, auxprop_lookup, "herald", NULL,
};

static int auxprop_init(const sasl_utils_t *utils, int max_version, int *out_version,
                        sasl_auxprop_plug_t **plug, const char *plugname)
{
    if (max_version < SASL_AUXPROP_PLUG_VERSION)
        return SASL_BADVERS;
    *out_version = SASL_AUXPROP_PLUG_VERSION;
    *plug = &auxprop_plugin;
    return SASL_OK;
}

/* Cyrus's callback table stores every callback as int (*)(void). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wcast-function-type"
static const sasl_callback_t global_callbacks[] = {
    {SASL_CB_GETOPT, (int (*)(void))cb_getopt, NULL},
    {SASL_CB_LOG, (int (*)(void))cb_log, NULL},
    {SASL_CB_CANON_USER, (int (*)(void))cb_canon, NULL},
    {SASL_CB_SERVER_USERDB_CHECKPASS, (int (*)(void))cb_checkpass, NULL},
    {SASL_CB_LIST_END, NULL, NULL},
};
#pragma GCC diagnostic pop

int hsasl_global_init(struct store *store, const struct config *cfg)
{
    g_store = store;
    snprintf(g_domain, sizeof(g_domain), "%s", cfg->domain);
    snprintf(g_mechs, sizeof(g_mechs), "%s", cfg->mechanisms);
    g_iterations = cfg->scram_iterations;
    struct auth_budget_opts by_addr = {cfg->auth_address_failures, cfg->auth_failure_window_s,
                                       cfg->auth_address_backoff_max_s, cfg->auth_budget_entries};
    struct auth_budget_opts by_account = {cfg->auth_account_failures, cfg->auth_failure_window_s,
                                          cfg->auth_account_backoff_max_s,
                                          cfg->auth_budget_entries};
    int rc = store_secret(store, "fake-scram-salt", g_secret);
    if (rc == 0)
        rc = auth_budget_new(&by_addr, &g_by_addr);
    if (rc == 0)
        rc = auth_budget_new(&by_account, &g_by_account);
    if (rc != 0) {
        log_error("sasl", "cannot set up authentication: %s", herald_strerror(rc));
        goto fail;
    }
    rc = sasl_server_init(global_callbacks, "herald");
    if (rc == SASL_OK)
        rc = sasl_auxprop_add_plugin("herald", auxprop_init);
    if (rc != SASL_OK) {
        log_error("sasl", "Cyrus SASL initialisation failed: %s", sasl_errstring(rc, NULL, NULL));
        goto fail;
    }
    return 0;
fail:
    auth_budget_free(g_by_addr);
    auth_budget_free(g_by_account);
    g_by_addr = g_by_account = NULL;
    return HERALD_EIO;
}

void hsasl_global_done(void)
{
    sasl_server_done();
    auth_budget_free(g_by_addr);
    auth_budget_free(g_by_account);
    g_by_addr = g_by_account = NULL;
    OPENSSL_cleanse(g_secret, sizeof(g_secret));
    g_store = NULL;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wcast-function-type"
struct hsasl *hsasl_new(const char *domain, bool tls, bool plain_ok, const char *peer)
{
    struct hsasl *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->tls = tls;
    auth_budget_addr_key(peer, s->addr, sizeof(s->addr));
    s->callbacks[0] = (sasl_callback_t){SASL_CB_CANON_USER, (int (*)(void))cb_canon, s};
    s->callbacks[1] = (sasl_callback_t){SASL_CB_LIST_END, NULL, NULL};
    /* RFC 6120 §6.3.10: additional data travels in <success/>. */
    int rc = sasl_server_new("xmpp", domain, NULL, NULL, NULL, s->callbacks, SASL_SUCCESS_DATA,
                             &s->conn);
    if (rc != SASL_OK)
        goto fail;
    sasl_security_properties_t sec;
    memset(&sec, 0, sizeof(sec));
    sec.max_ssf = 0; /* no SASL security layer: TLS does that */
    sec.maxbufsize = 0;
    /* PLAIN is a plaintext mechanism: only under TLS unless allowed. */
    sec.security_flags = SASL_SEC_NOANONYMOUS | ((tls || plain_ok) ? 0 : SASL_SEC_NOPLAINTEXT);
    if ((rc = sasl_setprop(s->conn, SASL_SEC_PROPS, &sec)) != SASL_OK)
        goto fail;
    if (tls) {
        sasl_ssf_t ext = 256;
        if ((rc = sasl_setprop(s->conn, SASL_SSF_EXTERNAL, &ext)) != SASL_OK)
            goto fail;
    }
    const char *list = NULL;
    unsigned len = 0;
    int count = 0;
    rc = sasl_listmech(s->conn, NULL, "", " ", "", &list, &len, &count);
    if (rc == SASL_OK && list)
        snprintf(s->mechs, sizeof(s->mechs), "%s", list);
    return s;
fail:
    log_error("sasl", "cannot start a SASL exchange: %s", sasl_errstring(rc, NULL, NULL));
    if (s->conn)
        sasl_dispose(&s->conn);
    free(s);
    return NULL;
}
#pragma GCC diagnostic pop

void hsasl_free(struct hsasl *s)
{
    if (s == NULL)
        return;
    if (s->conn)
        sasl_dispose(&s->conn);
    free(s);
}

const char *hsasl_mechanisms(struct hsasl *s) { return s->mechs; }
const char *hsasl_mech(struct hsasl *s) { return s->mech[0] ? s->mech : NULL; }

/* RFC 6120 §6.5 conditions for Cyrus results. Unknown users and wrong
 * passwords look the same (not-authorized) so accounts cannot be probed. */
static const char *failure_of(int rc)
{
    switch (rc) {
    case SASL_BADAUTH:
    case SASL_NOUSER:
    case SASL_NOVERIFY: return "not-authorized";
    case SASL_NOAUTHZ: return "invalid-authzid";
    case SASL_BADPROT:
    case SASL_BADPARAM: return "malformed-request";
    case SASL_NOMECH: return "invalid-mechanism";
    case SASL_TOOWEAK:
    case SASL_ENCRYPT: return "encryption-required";
    case SASL_EXPIRED: return "credentials-expired";
    case SASL_DISABLED: return "account-disabled";
    default: return "temporary-auth-failure";
    }
}

/* RFC 6120 §6.5.12: temporary-auth-failure, "advisable ... to try again
 * later", for an attempt a budget refused. */
static void refused(struct hsasl *s, struct hsasl_result *r)
{
    memset(r, 0, sizeof(*r));
    r->status = HSASL_FAILURE;
    r->failure = "temporary-auth-failure";
    r->retry_s = s->refused_s;
}

static void result_of(struct hsasl *s, int rc, const char *out, unsigned outlen,
                      struct hsasl_result *r)
{
    if (s->refused_s > 0) {
        refused(s, r);
        return;
    }
    memset(r, 0, sizeof(*r));
    r->out = out;
    r->outlen = outlen;
    r->has_out = out != NULL;
    if (rc == SASL_OK) {
        r->status = HSASL_SUCCESS;
        auth_budget_clear(g_by_addr, s->addr, strlen(s->addr), s->user[0] ? s->user : NULL);
    } else if (rc == SASL_CONTINUE) {
        r->status = HSASL_CONTINUE;
    } else {
        static struct log_limit lim;
        r->status = HSASL_FAILURE;
        r->failure = failure_of(rc);
        log_limited(&lim, LOG_DEBUG, "sasl", "%s failed: %s", s->mech, sasl_errdetail(s->conn));
        /* Only a checked credential counts against the budgets: a
         * malformed exchange tried no password. */
        if (rc == SASL_BADAUTH || rc == SASL_NOUSER || rc == SASL_NOVERIFY) {
            uint64_t now = now_ms();
            const char *user = s->user[0] != '\0' ? s->user : NULL;
            auth_budget_fail(g_by_addr, s->addr, strlen(s->addr), user, now);
            if (user != NULL)
                auth_budget_fail(g_by_account, user, strlen(user), NULL, now);
        }
    }
}

void hsasl_start(struct hsasl *s, const char *mech, const char *in, unsigned inlen,
                 struct hsasl_result *r)
{
    const char *out = NULL;
    unsigned outlen = 0;
    snprintf(s->mech, sizeof(s->mech), "%s", mech);
    s->refused_s = auth_budget_wait(g_by_addr, s->addr, strlen(s->addr), now_ms());
    if (s->refused_s > 0) {
        refused(s, r);
        return;
    }
    int rc = sasl_server_start(s->conn, mech, in, inlen, &out, &outlen);
    result_of(s, rc, out, outlen, r);
}

void hsasl_step(struct hsasl *s, const char *in, unsigned inlen, struct hsasl_result *r)
{
    const char *out = NULL;
    unsigned outlen = 0;
    int rc = sasl_server_step(s->conn, in, inlen, &out, &outlen);
    result_of(s, rc, out, outlen, r);
}

const char *hsasl_account(struct hsasl *s) { return s->user[0] ? s->user : NULL; }

const char *hsasl_user(struct hsasl *s)
{
    const void *u = NULL;
    if (sasl_getprop(s->conn, SASL_USERNAME, &u) != SASL_OK)
        return NULL;
    return u;
}
