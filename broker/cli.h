/* cli.h - subcommands other than serve (main.c dispatches). */
#ifndef HERALD_CLI_H
#define HERALD_CLI_H

struct config;

/* `herald user add|del|passwd|list`: argv[0] is "user". cfg is loaded. */
int cli_user(struct config *cfg, int argc, char **argv);
void cli_user_usage(void *stdio_file);

#endif
