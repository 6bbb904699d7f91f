/* cli.h - subcommands other than serve (main.c dispatches). */
#ifndef HERALD_CLI_H
#define HERALD_CLI_H
#include <stdbool.h>
#include <stddef.h>

struct config;
struct store;

/* Shared by the subcommands: parses arg as a bare JID on cfg->domain into
 * bare (a message on stderr and -1 if it is not). */
int cli_account_of(const struct config *cfg, const char *arg, char *bare, size_t cap);

/* Opens the store in cfg->data_dir. Says on stderr which directory that is
 * unless --data-dir named it, and warns when it holds no store yet (no
 * data.mdb). With create, a missing store is then made (add, import);
 * without, nothing is created: NULL is returned with *absent set, and the
 * caller reports that there is nothing there (list, del, passwd, tokens).
 * Any other failure: a message, NULL, *absent false. */
struct store *cli_open_store(const struct config *cfg, bool create, bool *absent);
/* Cluster mode: waits until the data directory's instance has applied the
 * cluster log as of now, so that what the CLI checks there is current
 * (0; -1 after saying why). Single mode: 0 at once. */
int cli_cluster_sync(const struct config *cfg, struct store *st);

/* `herald cluster status` (cli_cluster.c): argv[0] is "cluster". */
int cli_cluster(struct config *cfg, int argc, char **argv);
void cli_cluster_usage(void *stdio_file);

/* `herald user add|del|passwd|list`: argv[0] is "user". cfg is loaded. */
int cli_user(struct config *cfg, int argc, char **argv);
void cli_user_usage(void *stdio_file);

/* `herald token create|list|revoke` (REST bearer tokens). */
int cli_token(struct config *cfg, int argc, char **argv);
void cli_token_usage(void *stdio_file);

#endif
