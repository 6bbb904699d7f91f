/* cli.h - subcommands other than serve (main.c dispatches). */
#ifndef HERALD_CLI_H
#define HERALD_CLI_H

struct config;
struct store;

/* Shared by the subcommands: parses arg as a bare JID on cfg->domain into
 * bare (a message on stderr and -1 if it is not); opens the data directory
 * (a message and NULL on failure). */
int cli_account_of(const struct config *cfg, const char *arg, char *bare, size_t cap);
struct store *cli_open_store(const struct config *cfg);

/* `herald user add|del|passwd|list`: argv[0] is "user". cfg is loaded. */
int cli_user(struct config *cfg, int argc, char **argv);
void cli_user_usage(void *stdio_file);

/* `herald token create|list|revoke` (REST bearer tokens). */
int cli_token(struct config *cfg, int argc, char **argv);
void cli_token_usage(void *stdio_file);

#endif
