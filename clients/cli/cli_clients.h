/* cli_clients.h - the command-line clients built into the herald binary
 * (main.c dispatches): pub, sub and node talk to a running server over its
 * REST API; backup and restore work on the data directory's LMDB store.
 * Each returns the process exit status (docs/cli.md). argv[0] is the
 * command's name. */
#ifndef HERALD_CLI_CLIENTS_H
#define HERALD_CLI_CLIENTS_H
#include <stdio.h>

struct config;

int cli_pub(int argc, char **argv);
void cli_pub_usage(FILE *f);
int cli_sub(int argc, char **argv);
void cli_sub_usage(FILE *f);
int cli_node(int argc, char **argv);
void cli_node_usage(FILE *f);

/* cfg is loaded (--config, --data-dir). */
int cli_backup(struct config *cfg, int argc, char **argv);
void cli_backup_usage(FILE *f);
int cli_restore(struct config *cfg, int argc, char **argv);
void cli_restore_usage(FILE *f);

#endif
