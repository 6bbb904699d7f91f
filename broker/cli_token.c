/* cli_token.c - `herald token create|list|revoke`: REST bearer tokens.
 *
 * Like `herald user`, works on the LMDB environment directly, whether or not
 * the server runs; the server looks tokens up on every request, so a revoked
 * token stops working at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cluster.h"
#include "config.h"
#include "entry.h"
#include "errors.h"
#include "jid.h"
#include "store.h"
#include "token.h"

void cli_token_usage(void *stdio_file)
{
    fprintf(stdio_file,
            "Usage: herald token create --jid JID [--scope SCOPES] [--expires TIME]\n"
            "       herald token list\n"
            "       herald token revoke ID\n"
            "\n"
            "Bearer tokens for the REST bridge (docs/rest-api.md). A token acts as\n"
            "its JID: node affiliations and access models apply as for XMPP.\n"
            "\n"
            "  --jid JID        the account the token acts as (must exist)\n"
            "  --scope SCOPES   comma-separated subset of read,publish,manage\n"
            "                   (default: all three)\n"
            "  --expires TIME   lifetime: seconds, or a number followed by s, m, h\n"
            "                   or d (e.g. 30d); default: never expires\n"
            "  --data-dir DIR   data directory (default from the config, ./herald-data;\n"
            "                   without this option the one used is named on stderr)\n"
            "  --config FILE    read settings from FILE\n"
            "\n"
            "create prints the token's id, JID, scopes and expiry, then the token\n"
            "itself as the last line; it is shown only this once (only a hash of\n"
            "its secret is stored). revoke takes the id shown by list (or the\n"
            "whole token).\n");
}

static int parse_duration(const char *s, uint64_t *secs)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || v == 0)
        return -1;
    uint64_t mul = 1;
    if (*end == 'm')
        mul = 60;
    else if (*end == 'h')
        mul = 3600;
    else if (*end == 'd')
        mul = 86400;
    else if (*end != 's' && *end != '\0')
        return -1;
    if (*end && end[1] != '\0')
        return -1;
    if (v > UINT64_MAX / mul / 2)
        return -1;
    *secs = v * mul;
    return 0;
}

static void format_time(uint64_t t, char *out, size_t cap)
{
    if (t == 0) {
        snprintf(out, cap, "never");
        return;
    }
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, cap, "%llu", (unsigned long long)t);
}

static int print_token(void *ud, const struct store_token *tok)
{
    char id[17], scopes[64], created[32], expires[32];
    uint64_t now = *(const uint64_t *)ud;
    token_id_format(tok->id, id);
    token_scopes_format(tok->scopes, scopes, sizeof(scopes));
    format_time(tok->created, created, sizeof(created));
    format_time(tok->expires, expires, sizeof(expires));
    printf("%s  %-30s  %-20s  created %s  expires %s%s\n", id, tok->jid, scopes, created, expires,
           tok->expires && tok->expires <= now ? " (expired)" : "");
    return 0;
}

/* Cluster mode: a token record or its removal through the cluster log
 * (cluster_cli_submit waits until this data directory's instance has it). */
static int token_submit(const struct config *cfg, struct store *st, const struct store_token *rec,
                        const uint8_t *del_id)
{
    struct cl_entry *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return HERALD_ENOMEM;
    e->kind = rec ? CL_TOKEN_PUT : CL_TOKEN_DEL;
    if (rec)
        e->token = *rec;
    else
        memcpy(e->token.id, del_id, sizeof(e->token.id));
    char err[512];
    int rc = cluster_cli_submit(cfg, st, e, err, sizeof(err));
    free(e);
    if (rc != 0)
        fprintf(stderr, "herald: %s\n", err);
    return rc;
}

int cli_token(struct config *cfg, int argc, char **argv)
{
    const char *action = NULL, *arg = NULL, *jid_arg = NULL, *scope_arg = NULL, *exp_arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--jid") == 0 && i + 1 < argc) {
            jid_arg = argv[++i];
        } else if (strcmp(argv[i], "--scope") == 0 && i + 1 < argc) {
            scope_arg = argv[++i];
        } else if (strcmp(argv[i], "--expires") == 0 && i + 1 < argc) {
            exp_arg = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "herald token: unknown option %s\n", argv[i]);
            cli_token_usage(stderr);
            return 2;
        } else if (action == NULL) {
            action = argv[i];
        } else if (arg == NULL) {
            arg = argv[i];
        } else {
            fprintf(stderr, "herald token: unexpected argument %s\n", argv[i]);
            return 2;
        }
    }
    bool create = action && strcmp(action, "create") == 0;
    bool list = action && strcmp(action, "list") == 0;
    bool revoke = action && strcmp(action, "revoke") == 0;
    if (!create && !list && !revoke) {
        if (action)
            fprintf(stderr, "herald token: unknown action '%s'\n", action);
        cli_token_usage(stderr);
        return 2;
    }
    uint8_t scopes = SCOPE_ALL, id[8];
    uint64_t now = (uint64_t)time(NULL), lifetime = 0;
    char bare[JID_MAX + 1];
    if (create) {
        if (jid_arg == NULL) {
            fprintf(stderr, "herald token create: --jid is required\n");
            return 2;
        }
        if (cli_account_of(cfg, jid_arg, bare, sizeof(bare)) != 0)
            return 2;
        if (scope_arg && token_scopes_parse(scope_arg, &scopes) != 0) {
            fprintf(stderr, "herald token: --scope takes read,publish,manage (comma separated)\n");
            return 2;
        }
        if (exp_arg && parse_duration(exp_arg, &lifetime) != 0) {
            fprintf(stderr, "herald token: --expires takes a duration such as 3600, 90m, 12h, 30d\n");
            return 2;
        }
    }
    if (revoke && (arg == NULL || token_id_parse(arg, id) != 0)) {
        fprintf(stderr, "herald token revoke: give the 16-hex-digit id shown by 'herald token list'\n");
        return 2;
    }
    bool absent;
    struct store *st = cli_open_store(cfg, false, &absent);
    if (st == NULL && absent) {
        /* No store: no accounts and no tokens. Only list succeeds (empty). */
        if (create)
            fprintf(stderr, "herald: no such account: %s (create it with 'herald user add')\n",
                    bare);
        else if (revoke)
            fprintf(stderr, "herald: no token with id %.16s\n", arg);
        return list ? 0 : 1;
    }
    if (st == NULL)
        return 1;
    if (cli_cluster_sync(cfg, st) != 0) {
        store_close(st);
        return 1;
    }
    int rc, ret = 1;
    if (list) {
        rc = store_token_each(st, print_token, &now);
        ret = rc == 0 ? 0 : 1;
    } else if (revoke) {
        if (cfg->cluster_name) {
            struct store_token cur;
            rc = store_token_get(st, id, &cur);
            if (rc == 0)
                rc = token_submit(cfg, st, NULL, id);
        } else {
            rc = store_token_del(st, id);
        }
        if (rc == 0) {
            fprintf(stderr, "herald: revoked token %.16s\n", arg);
            ret = 0;
        } else if (rc == HERALD_ENOTFOUND) {
            fprintf(stderr, "herald: no token with id %.16s\n", arg);
            rc = 0;
        }
    } else if ((rc = store_user_exists(st, bare)) != 1) {
        if (rc == 0)
            fprintf(stderr, "herald: no such account: %s (create it with 'herald user add')\n", bare);
        rc = rc < 0 ? rc : 0;
    } else {
        char text[TOKEN_TEXT_MAX], idtext[17], scopes_text[64], exp_text[32];
        struct store_token rec;
        bool cluster = cfg->cluster_name != NULL;
        rc = token_make(st, bare, scopes, lifetime ? now + lifetime : 0, text, sizeof(text), &rec,
                        !cluster);
        if (rc == 0 && cluster)
            rc = token_submit(cfg, st, &rec, NULL);
        if (rc == 0) {
            token_id_format(rec.id, idtext);
            token_scopes_format(rec.scopes, scopes_text, sizeof(scopes_text));
            format_time(rec.expires, exp_text, sizeof(exp_text));
            printf("id:      %s\njid:     %s\nscopes:  %s\nexpires: %s\n%s\n", idtext, rec.jid,
                   scopes_text, exp_text, text);
            ret = 0;
        }
    }
    if (rc != 0)
        fprintf(stderr, "herald token %s failed: %s\n", action, herald_strerror(rc));
    store_close(st);
    return ret;
}
