/* cli_cluster.c - `herald cluster status`: what an operator checks first
 * (docs/cluster.md, "Configuration and operations"). */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
            "replica is current), each instance's consumer (how far it has been\n"
            "delivered and acknowledged, and how far behind the log it is), and the\n"
            "instances heard sending heartbeats (name and boot id) over 2.5 s.\n"
            "\n"
            "  --config FILE    the configuration with the [cluster] section\n"
            "\n"
            "Exit status: 0 when the stream has a leader and every replica is current,\n"
            "1 when not (or NATS cannot be reached), 2 on bad usage.\n");
}

/* Heartbeats heard ("<name> <boot id>"), filled on a library thread. */
#define MAX_SEEN 64
struct seen {
    pthread_mutex_t mu;
    unsigned n;
    char who[MAX_SEEN][96];
};

static void on_heartbeat(void *ud, const char *subject, const char *reply, const void *data,
                         size_t len)
{
    (void)subject, (void)reply;
    struct seen *s = ud;
    char msg[96];
    snprintf(msg, sizeof(msg), "%.*s", (int)(len < sizeof(msg) ? len : sizeof(msg) - 1),
             (const char *)data);
    pthread_mutex_lock(&s->mu);
    bool known = false;
    for (unsigned i = 0; i < s->n && !known; i++)
        known = strcmp(s->who[i], msg) == 0;
    if (!known && s->n < MAX_SEEN)
        snprintf(s->who[s->n++], sizeof(s->who[0]), "%s", msg);
    pthread_mutex_unlock(&s->mu);
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
    struct seen seen = {PTHREAD_MUTEX_INITIALIZER, 0, {{0}}};
    char hb[96];
    snprintf(hb, sizeof(hb), "hrd.%s.hb", cfg->cluster_id);
    int rc = cl_nats_subscribe(n, hb, on_heartbeat, &seen, err, sizeof(err));
    if (rc == 0)
        rc = cl_nats_print_status(n, stdout, &healthy, err, sizeof(err));
    if (rc == 0) {
        /* Instances send a heartbeat every 2 s: listen a little longer. */
        usleep(2500 * 1000);
        pthread_mutex_lock(&seen.mu);
        printf("instances sending heartbeats: %u\n", seen.n);
        for (unsigned i = 0; i < seen.n; i++)
            printf("  %s\n", seen.who[i]);
        pthread_mutex_unlock(&seen.mu);
    }
    cl_nats_close(n);
    if (rc != 0) {
        fprintf(stderr, "herald cluster status: %s\n", err);
        return 1;
    }
    return healthy ? 0 : 1;
}
