/* cli_cluster.c - `herald cluster status`: what an operator checks first
 * (docs/cluster.md, "Configuration and operations"). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cluster.h"
#include "config.h"
#include "nats_link.h"

void cli_cluster_usage(void *stdio_file)
{
    fprintf(stdio_file,
            "Usage: herald cluster status --config FILE\n"
            "\n"
            "Shows the cluster's replicated log on NATS JetStream (docs/cluster.md): the\n"
            "stream (entries, bytes, first and last sequence, its leader and whether each\n"
            "replica is current) and each instance's consumer (how far it has been\n"
            "delivered and acknowledged, and how far behind the log it is).\n"
            "\n"
            "  --config FILE    the configuration with the [cluster] section\n"
            "\n"
            "Exit status: 0 when the stream has a leader and every replica is current,\n"
            "1 when not (or NATS cannot be reached), 2 on bad usage.\n");
}

int cli_cluster(struct config *cfg, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "status") != 0 || argc > 2) {
        cli_cluster_usage(stderr);
        return 2;
    }
    if (cfg->cluster_name == NULL) {
        fprintf(stderr, "herald cluster: the configuration has no [cluster] section "
                        "(give it with --config)\n");
        return 2;
    }
    char err[512];
    struct cluster_names nm;
    struct cl_nats_opts o;
    cluster_nats_opts(cfg, "herald-cli", &nm, &o);
    o.no_create = true;
    struct cl_nats *n = NULL;
    if (cl_nats_open(&n, &o, err, sizeof(err)) != 0) {
        fprintf(stderr, "herald cluster status: %s\n", err);
        return 1;
    }
    bool healthy = false;
    int rc = cl_nats_print_status(n, stdout, &healthy, err, sizeof(err));
    cl_nats_close(n);
    if (rc != 0) {
        fprintf(stderr, "herald cluster status: %s\n", err);
        return 1;
    }
    return healthy ? 0 : 1;
}
