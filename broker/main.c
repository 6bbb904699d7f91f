/* main.c - the `herald` command: parses the command line and dispatches to
 * serve (server.c), user (cli_user.c), token (cli_token.c), cluster
 * (cli_cluster.c), the clients pub, sub, node, backup and restore
 * (clients/cli/), check-config and version. */
#include <expat.h>
#include <lmdb.h>
#include <openssl/crypto.h>
#include <sasl/sasl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "nats_link.h"
#include "cli.h"
#include "cli_clients.h"
#include "config.h"
#include "herald.h"

static void usage_main(FILE *f)
{
    fprintf(f,
            "herald - an XMPP publish/subscribe broker\n"
            "\n"
            "Usage: herald COMMAND [OPTIONS]\n"
            "\n"
            "Commands:\n"
            "  serve         run the server; with no options it serves the domain\n"
            "                'localhost' on 127.0.0.1:5222 with data in ./herald-data\n"
            "                and a self-signed certificate made on first start\n"
            "  user          add, delete and list accounts, change passwords\n"
            "  token         create, list and revoke bearer tokens for the REST API\n"
            "  cluster       cluster status: the replicated log and each instance's\n"
            "                consumer (cluster mode, docs/cluster.md)\n"
            "  pub           publish an item to a node, over REST or XMPP (mosquitto_pub)\n"
            "  sub           print a node's items as they arrive, one JSON object a line\n"
            "  node          create, list, inspect, configure, purge and delete nodes\n"
            "  backup        copy the data directory's store, also while the server runs\n"
            "  restore       put a backup back as the data directory's store\n"
            "  check-config  validate a configuration file and print the settings\n"
            "  version       print the version of herald and of its libraries\n"
            "\n"
            "Run 'herald COMMAND --help' for the options of a command.\n"
            "Documentation: docs/ in the source tree (configuration.md, architecture.md,\n"
            "cli.md for pub, sub, node, backup and restore).\n");
}

static void usage_serve(FILE *f)
{
    fprintf(f,
            "Usage: herald serve [OPTIONS]\n"
            "\n"
            "Runs the broker in the foreground, logging to standard error, until\n"
            "SIGTERM or SIGINT, which close every client stream cleanly.\n"
            "Settings come from the built-in defaults, then --config FILE, then\n"
            "these options:\n"
            "\n"
            "  --config FILE       read settings from FILE (see docs/herald.conf.example)\n"
            "  --domain NAME       XMPP domain to serve (default localhost)\n"
            "  --data-dir DIR      data directory: LMDB store and TLS files\n"
            "                      (default ./herald-data)\n"
            "  --bind ADDR         address of the client listener (default 127.0.0.1)\n"
            "  --c2s-port N        client port (default 5222)\n"
            "  --http-port N       HTTP port of the REST API, /healthz, /metrics, XMPP\n"
            "                      over WebSocket (/xmpp-websocket) and BOSH (/http-bind),\n"
            "                      and the web console (/console/)\n"
            "                      (default 5280, 0 turns it off)\n"
            "  --https-port N      the same over TLS (default 5281, 0 turns it off)\n"
            "  --s2s-port N        server-to-server (federation) port (default 5269,\n"
            "                      0 turns federation off); see docs/federation.md\n"
            "  --allow-plaintext   make STARTTLS optional and offer PLAIN without TLS,\n"
            "                      for loopback tests and benchmarks; refused on a\n"
            "                      non-loopback --bind unless given twice\n"
            "  --log-level LEVEL   debug, info, warn or error (default info)\n"
            "  -h, --help          show this help\n"
            "\n"
            "Example: herald serve --domain example.org --data-dir /var/lib/herald\n");
}

static void usage_check(FILE *f)
{
    fprintf(f,
            "Usage: herald check-config [--config FILE] [OPTIONS]\n"
            "\n"
            "Reads the configuration (defaults, FILE, then the same options as\n"
            "'herald serve'), checks every value and prints the effective settings\n"
            "in the file's own format. Exits 0 when the configuration is usable,\n"
            "1 with a message naming the bad setting otherwise.\n");
}

static void usage_version(FILE *f)
{
    fprintf(f, "Usage: herald version\n\nPrints the version of herald and of the libraries it runs on.\n");
}

static int print_version(void)
{
    printf("herald %s\n", HERALD_VERSION);
    printf("libuv %s, %s, %s, LMDB %d.%d.%d, Cyrus SASL %d.%d.%d\n", uv_version_string(),
           XML_ExpatVersion(), OpenSSL_version(OPENSSL_VERSION), MDB_VERSION_MAJOR,
           MDB_VERSION_MINOR, MDB_VERSION_PATCH, SASL_VERSION_MAJOR, SASL_VERSION_MINOR,
           SASL_VERSION_STEP);
    printf("libnats %s (cluster mode)\n", cl_nats_version());
    return 0;
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    return false;
}

/* Reads the configuration: defaults, --config FILE, then the override flags.
 * Recognised flags are removed from argv; *argc is updated. With strict, an
 * unknown option is an error (serve, check-config). Returns 0, or 1/2 after
 * printing why. */
static int load_config(struct config *cfg, int *argc, char **argv, bool strict)
{
    char err[512];
    config_defaults(cfg);
    for (int i = 1; i + 1 < *argc; i++) {
        if (strcmp(argv[i], "--config") == 0) {
            if (config_load(cfg, argv[i + 1], err, sizeof(err)) != 0) {
                fprintf(stderr, "herald: %s\n", err);
                return 1;
            }
        }
    }
    int plaintext = 0;
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < *argc ? argv[i + 1] : NULL;
        char **field = NULL;
        int *port = NULL;
        if (strcmp(a, "--config") == 0) {
            i++;
            continue;
        }
        if (strcmp(a, "--allow-plaintext") == 0) {
            plaintext++;
            continue;
        }
        if (strcmp(a, "--domain") == 0)
            field = &cfg->domain;
        else if (strcmp(a, "--data-dir") == 0)
            field = &cfg->data_dir;
        else if (strcmp(a, "--bind") == 0)
            field = &cfg->c2s_bind;
        else if (strcmp(a, "--log-level") == 0)
            field = &cfg->log_level;
        else if (strcmp(a, "--c2s-port") == 0)
            port = &cfg->c2s_port;
        else if (strcmp(a, "--http-port") == 0)
            port = &cfg->http_port;
        else if (strcmp(a, "--https-port") == 0)
            port = &cfg->https_port;
        else if (strcmp(a, "--s2s-port") == 0)
            port = &cfg->s2s_port;
        if (field || port) {
            if (v == NULL) {
                fprintf(stderr, "herald: %s needs a value\n", a);
                return 2;
            }
            if (field && config_set_str(field, v) != 0)
                return 1;
            if (field == &cfg->data_dir)
                cfg->data_dir_origin = "--data-dir";
            if (port) {
                char *end;
                long p = strtol(v, &end, 10);
                if (*v == '\0' || *end != '\0' || p < 0 || p > 65535) {
                    fprintf(stderr, "herald: %s: '%s' is not a port number\n", a, v);
                    return 2;
                }
                *port = (int)p;
            }
            i++;
            continue;
        }
        if (strict && a[0] == '-') {
            fprintf(stderr, "herald: unknown option %s\n", a);
            return 2;
        }
        if (strict) {
            fprintf(stderr, "herald: unexpected argument %s\n", a);
            return 2;
        }
        argv[out++] = argv[i];
    }
    *argc = out;
    argv[out] = NULL;
    if (plaintext) {
        cfg->allow_plaintext = true;
        if (plaintext > 1)
            cfg->allow_plaintext_public = true;
    }
    if (config_validate(cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "herald: configuration error: %s\n", err);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage_main(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    argc--;
    argv++;
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage_main(stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        if (wants_help(argc, argv)) {
            usage_version(stdout);
            return 0;
        }
        return print_version();
    }
    struct config cfg;
    int rc;
    if (strcmp(cmd, "serve") == 0) {
        if (wants_help(argc, argv)) {
            usage_serve(stdout);
            return 0;
        }
        rc = load_config(&cfg, &argc, argv, true);
        if (rc == 0)
            rc = herald_serve(&cfg);
    } else if (strcmp(cmd, "check-config") == 0) {
        if (wants_help(argc, argv)) {
            usage_check(stdout);
            return 0;
        }
        rc = load_config(&cfg, &argc, argv, true);
        if (rc == 0) {
            config_print(&cfg, stdout);
            fprintf(stderr, "herald: configuration OK\n");
        }
    } else if (strcmp(cmd, "user") == 0) {
        if (wants_help(argc, argv)) {
            cli_user_usage(stdout);
            return 0;
        }
        rc = load_config(&cfg, &argc, argv, false);
        if (rc == 0)
            rc = cli_user(&cfg, argc, argv);
    } else if (strcmp(cmd, "token") == 0) {
        if (wants_help(argc, argv)) {
            cli_token_usage(stdout);
            return 0;
        }
        rc = load_config(&cfg, &argc, argv, false);
        if (rc == 0)
            rc = cli_token(&cfg, argc, argv);
    } else if (strcmp(cmd, "cluster") == 0) {
        if (wants_help(argc, argv)) {
            cli_cluster_usage(stdout);
            return 0;
        }
        rc = load_config(&cfg, &argc, argv, false);
        if (rc == 0)
            rc = cli_cluster(&cfg, argc, argv);
    } else if (strcmp(cmd, "pub") == 0 || strcmp(cmd, "sub") == 0 || strcmp(cmd, "node") == 0) {
        /* REST clients of a running server: no configuration to load. */
        bool pub = cmd[0] == 'p', sub = cmd[0] == 's';
        if (wants_help(argc, argv)) {
            (pub ? cli_pub_usage : sub ? cli_sub_usage : cli_node_usage)(stdout);
            return 0;
        }
        return (pub ? cli_pub : sub ? cli_sub : cli_node)(argc, argv);
    } else if (strcmp(cmd, "backup") == 0 || strcmp(cmd, "restore") == 0) {
        bool backup = cmd[0] == 'b';
        if (wants_help(argc, argv)) {
            (backup ? cli_backup_usage : cli_restore_usage)(stdout);
            return 0;
        }
        rc = load_config(&cfg, &argc, argv, false);
        if (rc == 0)
            rc = (backup ? cli_backup : cli_restore)(&cfg, argc, argv);
    } else {
        fprintf(stderr, "herald: unknown command '%s'\n\n", cmd);
        usage_main(stderr);
        return 2;
    }
    config_free(&cfg);
    return rc;
}
