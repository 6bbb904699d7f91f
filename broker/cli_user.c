/* cli_user.c - `herald user add|del|passwd|list`: account administration.
 *
 * Works directly on the LMDB environment, so it works whether or not the
 * server is running; the server reads the same environment and sees changes
 * at its next lookup. Passwords come from --password, else from a no-echo
 * prompt on a terminal, else from the first line of standard input. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "cluster.h"
#include "config.h"
#include "entry.h"
#include "errors.h"
#include "jid.h"
#include "scram.h"
#include "store.h"

struct token_count {
    const char *jid;
    unsigned n;
};

void cli_user_usage(void *stdio_file)
{
    fprintf(stdio_file,
            "Usage: herald user add JID [--password PW]   create an account\n"
            "       herald user passwd JID [--password PW] [--keep-tokens]\n"
            "                                             change its password\n"
            "       herald user del JID                   delete an account\n"
            "       herald user list                      list accounts, one per line\n"
            "       herald user import [FILE]             create many accounts from lines\n"
            "                                             'JID PASSWORD' (FILE or stdin)\n"
            "\n"
            "Common options (before or after the action):\n"
            "  --data-dir DIR   data directory (default from the config, ./herald-data;\n"
            "                   without this option the one used is named on stderr)\n"
            "  --config FILE    read settings from FILE\n"
            "\n"
            "JID is a bare address on the served domain, e.g. alice@localhost. Without\n"
            "--password the password is asked for on the terminal (twice, not echoed),\n"
            "or read as one line from standard input when that is not a terminal.\n"
            "Passwords are stored only as salted SCRAM-SHA-1 and SCRAM-SHA-256 keys.\n"
            "REST tokens (herald token) belong to one incarnation of an account: del\n"
            "deletes them, and a new account of the same name never accepts them.\n"
            "passwd revokes them too (a password is changed when it may have leaked,\n"
            "and so may tokens made while it had); --keep-tokens keeps them valid.\n"
            "import reads one account per line (the password is the rest of the line\n"
            "after the JID and its blanks; empty lines and lines starting with '#' are\n"
            "skipped), reports progress every 1,000 accounts on stderr and a summary\n"
            "at the end; existing accounts are left unchanged and counted.\n"
            "Works whether or not the server is running; a running server sees the\n"
            "change at once.\n");
}

static int count_tokens(void *ud, const struct store_token *t)
{
    struct token_count *c = ud;
    if (strcmp(t->jid, c->jid) == 0)
        c->n++;
    return 0;
}

/* How many tokens bare has (0 if they cannot be counted: a message only). */
static unsigned tokens_of(struct store *st, const char *bare)
{
    struct token_count c = {bare, 0};
    return store_token_each(st, count_tokens, &c) == 0 ? c.n : 0;
}

static int read_line(const char *prompt, char *out, size_t cap)
{
    bool tty = isatty(STDIN_FILENO);
    struct termios old, quiet;
    if (tty) {
        fprintf(stderr, "%s", prompt);
        fflush(stderr);
        if (tcgetattr(STDIN_FILENO, &old) == 0) {
            quiet = old;
            quiet.c_lflag &= ~(tcflag_t)ECHO;
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
        } else {
            tty = false;
        }
    }
    char *r = fgets(out, (int)cap, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (r == NULL)
        return -1;
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

static int get_password(const char *given, char *out, size_t cap)
{
    if (given) {
        if (strlen(given) >= cap)
            return -1;
        memcpy(out, given, strlen(given) + 1);
        return 0;
    }
    if (read_line("Password: ", out, cap) != 0)
        return -1;
    if (isatty(STDIN_FILENO)) {
        char again[1024];
        if (read_line("Again: ", again, sizeof(again)) != 0 || strcmp(again, out) != 0) {
            fprintf(stderr, "herald: passwords do not match\n");
            return -1;
        }
    }
    return 0;
}

int cli_account_of(const struct config *cfg, const char *arg, char *bare, size_t cap)
{
    struct jid j;
    if (jid_parse_str(&j, arg) != 0 || j.local[0] == '\0' || j.resource[0] != '\0') {
        fprintf(stderr, "herald: '%s' is not a valid bare JID such as alice@%s\n", arg, cfg->domain);
        return -1;
    }
    if (strcmp(j.domain, cfg->domain) != 0) {
        fprintf(stderr, "herald: '%s' is not on the served domain %s (set server.domain "
                "or --domain)\n", arg, cfg->domain);
        return -1;
    }
    return jid_format(&j, true, bare, cap) < 0 ? -1 : 0;
}

struct store *cli_open_store(const struct config *cfg, bool create, bool *absent)
{
    *absent = false;
    /* The default is relative to the working directory, so a command run
     * from elsewhere silently sees (or makes) another, empty store: say
     * which directory this is unless the command line named it. */
    if (cfg->data_dir_origin == NULL)
        fprintf(stderr, "herald: using data directory %s (default; --data-dir to change)\n",
                cfg->data_dir);
    else if (strcmp(cfg->data_dir_origin, "--data-dir") != 0)
        fprintf(stderr, "herald: using data directory %s (from %s; --data-dir to change)\n",
                cfg->data_dir, cfg->data_dir_origin);
    size_t n = strlen(cfg->data_dir) + sizeof("/data.mdb");
    char *mdb = malloc(n);
    if (mdb == NULL) {
        fprintf(stderr, "herald: out of memory\n");
        return NULL;
    }
    snprintf(mdb, n, "%s/data.mdb", cfg->data_dir);
    struct stat sb;
    bool missing = stat(mdb, &sb) != 0 && errno == ENOENT;
    free(mdb);
    if (missing && !create) {
        fprintf(stderr,
                "herald: warning: %s holds no store yet (no data.mdb), so no accounts or "
                "tokens; not creating one\n",
                cfg->data_dir);
        *absent = true;
        return NULL;
    }
    if (missing)
        fprintf(stderr, "herald: warning: %s holds no store yet (no data.mdb); creating one\n",
                cfg->data_dir);
    struct store *st = NULL;
    struct store_opts so = {.map_size = cfg->map_size_mb << 20,
                            .max_map_size = cfg->max_map_size_mb << 20};
    int rc = store_open(&st, cfg->data_dir, &so);
    if (rc != 0) {
        fprintf(stderr, "herald: cannot open data directory %s: %s\n", cfg->data_dir,
                herald_strerror(rc));
        return NULL;
    }
    return st;
}

static int print_user(void *ud, const char *bare)
{
    printf("%s\n", bare);
    return 0;
}

/* `herald user import [FILE]`: one account per line, "JID PASSWORD". */
int cli_cluster_sync(const struct config *cfg, struct store *st)
{
    char err[512];
    if (cfg->cluster_name == NULL || cluster_cli_sync(cfg, st, err, sizeof(err)) == 0)
        return 0;
    fprintf(stderr, "herald: %s\n", err);
    return -1;
}

/* Writes an account (u NULL: deletes it). Single mode: into the store.
 * Cluster mode: into the cluster log, which every instance applies; this
 * returns once the instance of this data directory has, and says whether
 * this write is what it holds (another add of the name may have come
 * first: HERALD_EEXIST). */
static int user_write(const struct config *cfg, struct store *st, const char *bare,
                      const struct store_user *u, bool create)
{
    if (cfg->cluster_name == NULL)
        return u ? store_user_put(st, bare, u, create) : store_user_del(st, bare);
    struct cl_entry *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return HERALD_ENOMEM;
    e->kind = u ? CL_USER_PUT : CL_USER_DEL;
    e->jid = bare;
    e->create = create;
    if (u)
        e->user = *u;
    char err[512];
    int rc = cluster_cli_submit(cfg, st, e, err, sizeof(err));
    free(e);
    if (rc != 0) {
        fprintf(stderr, "herald: %s\n", err);
        return rc;
    }
    struct store_user now;
    rc = store_user_get(st, bare, &now);
    if (u == NULL)
        return rc == HERALD_ENOTFOUND ? 0 : rc == 0 ? HERALD_EEXIST : rc;
    if (rc == 0 && memcmp(now.sha256.stored_key, u->sha256.stored_key,
                          sizeof(now.sha256.stored_key)) != 0)
        rc = create ? HERALD_EEXIST : HERALD_ECONFLICT;
    return rc;
}

static int user_import(const struct config *cfg, const char *path)
{
    FILE *in = stdin;
    if (path && strcmp(path, "-") != 0 && (in = fopen(path, "r")) == NULL) {
        fprintf(stderr, "herald: cannot read %s: %s\n", path, strerror(errno));
        return 1;
    }
    bool absent;
    struct store *st = cli_open_store(cfg, true, &absent);
    if (st == NULL) {
        if (in != stdin)
            fclose(in);
        return 1;
    }
    if (cli_cluster_sync(cfg, st) != 0) {
        store_close(st);
        if (in != stdin)
            fclose(in);
        return 1;
    }
    char line[2048], bare[JID_MAX + 1];
    unsigned long lineno = 0, created = 0, existing = 0, bad = 0;
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), in) != NULL) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(in)) {
            fprintf(stderr, "herald: line %lu: longer than %zu bytes, skipped\n", lineno, sizeof(line) - 2);
            int ch;
            while ((ch = fgetc(in)) != EOF && ch != '\n')
                ;
            bad++;
            continue;
        }
        line[strcspn(line, "\r\n")] = '\0';
        char *jid = line + strspn(line, " \t");
        if (*jid == '\0' || *jid == '#')
            continue;
        char *pw = jid + strcspn(jid, " \t");
        if (*pw != '\0')
            *pw++ = '\0';
        pw += strspn(pw, " \t");
        if (*pw == '\0' || cli_account_of(cfg, jid, bare, sizeof(bare)) != 0) {
            fprintf(stderr, "herald: line %lu: expected 'JID PASSWORD', skipped\n", lineno);
            bad++;
            continue;
        }
        if (store_user_exists(st, bare) == 1) {
            existing++;
            continue;
        }
        struct store_user u;
        rc = scram_make_user(&u, pw, strlen(pw), cfg->scram_iterations);
        memset(line, 0, sizeof(line));
        if (rc == 0)
            rc = user_write(cfg, st, bare, &u, true);
        if (rc == HERALD_EEXIST) {
            existing++;
            rc = 0;
        } else if (rc == 0 && ++created % 1000 == 0) {
            fprintf(stderr, "herald: %lu accounts created...\n", created);
        }
    }
    if (rc != 0)
        fprintf(stderr, "herald: import stopped at line %lu: %s\n", lineno, herald_strerror(rc));
    fprintf(stderr, "herald: import: %lu created, %lu already existed, %lu lines skipped\n", created,
            existing, bad);
    store_close(st);
    if (in != stdin)
        fclose(in);
    return rc != 0 || bad != 0 ? 1 : 0;
}

int cli_user(struct config *cfg, int argc, char **argv)
{
    const char *action = NULL, *who = NULL, *password = NULL;
    bool keep_tokens = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--password") == 0 && i + 1 < argc) {
            password = argv[++i];
        } else if (strcmp(argv[i], "--keep-tokens") == 0) {
            keep_tokens = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            cli_user_usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') { /* "-": standard input */
            fprintf(stderr, "herald user: unknown option %s\n", argv[i]);
            cli_user_usage(stderr);
            return 2;
        } else if (action == NULL) {
            action = argv[i];
        } else if (who == NULL) {
            who = argv[i];
        } else {
            fprintf(stderr, "herald user: unexpected argument %s\n", argv[i]);
            return 2;
        }
    }
    if (action == NULL) {
        cli_user_usage(stderr);
        return 2;
    }
    bool list = strcmp(action, "list") == 0;
    bool add = strcmp(action, "add") == 0, passwd = strcmp(action, "passwd") == 0;
    bool del = strcmp(action, "del") == 0;
    if (strcmp(action, "import") == 0)
        return user_import(cfg, who);
    if (!list && !add && !passwd && !del) {
        fprintf(stderr, "herald user: unknown action '%s'\n", action);
        cli_user_usage(stderr);
        return 2;
    }
    if (!list && who == NULL) {
        fprintf(stderr, "herald user %s: a JID is required\n", action);
        return 2;
    }
    char bare[JID_MAX + 1];
    if (!list && cli_account_of(cfg, who, bare, sizeof(bare)) != 0)
        return 1;
    bool absent;
    struct store *st = cli_open_store(cfg, add, &absent);
    if (st == NULL && absent) {
        /* No store: no accounts. list shows that (an empty list); del and
         * passwd fail as for any missing account. */
        if (list)
            return 0;
        fprintf(stderr, "herald: no such account: %s\n", bare);
        return 1;
    }
    if (st == NULL)
        return 1;
    if (cli_cluster_sync(cfg, st) != 0) {
        store_close(st);
        return 1;
    }
    int rc, ret = 1;
    if (keep_tokens && !passwd) {
        fprintf(stderr, "herald user %s: --keep-tokens applies to passwd only\n", action);
        ret = 2;
        goto done;
    }
    if (list) {
        rc = store_user_each(st, print_user, NULL);
        if (rc == 0)
            ret = 0;
    } else if (del) {
        unsigned ntok = tokens_of(st, bare);
        rc = user_write(cfg, st, bare, NULL, false);
        if (rc == 0) {
            fprintf(stderr, "herald: deleted %s and its %u REST token%s\n", bare, ntok,
                    ntok == 1 ? "" : "s");
            ret = 0;
        }
    } else {
        if (add && store_user_exists(st, bare) == 1) {
            rc = HERALD_EEXIST;
            goto report;
        }
        if (passwd && store_user_exists(st, bare) == 0) {
            rc = HERALD_ENOTFOUND;
            goto report;
        }
        char pw[1024];
        if (get_password(password, pw, sizeof(pw)) != 0 || pw[0] == '\0') {
            fprintf(stderr, "herald: no password given\n");
            goto done;
        }
        struct store_user u, old;
        rc = scram_make_user(&u, pw, strlen(pw), cfg->scram_iterations);
        memset(pw, 0, sizeof(pw));
        /* passwd makes a new generation, which revokes the account's
         * tokens, unless they are to be kept. */
        if (rc == 0 && passwd && keep_tokens && (rc = store_user_get(st, bare, &old)) == 0)
            u.generation = old.generation;
        unsigned ntok = passwd && !keep_tokens ? tokens_of(st, bare) : 0;
        if (rc == 0)
            rc = user_write(cfg, st, bare, &u, add);
        if (rc == 0 && add) {
            fprintf(stderr, "herald: created %s\n", bare);
            ret = 0;
        } else if (rc == 0) {
            if (keep_tokens)
                fprintf(stderr, "herald: changed the password of %s; its REST tokens stay "
                                "valid\n", bare);
            else
                fprintf(stderr, "herald: changed the password of %s and revoked its %u REST "
                                "token%s (--keep-tokens keeps them)\n", bare, ntok,
                        ntok == 1 ? "" : "s");
            ret = 0;
        }
    }
report:
    if (rc == HERALD_EEXIST)
        fprintf(stderr, "herald: %s already exists\n", bare);
    else if (rc == HERALD_ENOTFOUND)
        fprintf(stderr, "herald: no such account: %s\n", bare);
    else if (rc != 0)
        fprintf(stderr, "herald: %s failed: %s\n", action, herald_strerror(rc));
done:
    store_close(st);
    return ret;
}
