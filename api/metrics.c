/* metrics.c - /metrics in the Prometheus text format (version 0.0.4):
 * connections, sessions, stanzas, logins, pubsub publishes and
 * notifications, write-queue bytes, HTTP requests by status class, and the
 * group-commit latency histogram. */
#include <stdio.h>
#include <string.h>

#include "batch.h"
#include "bosh.h"
#include "component.h"
#include "s2s.h"
#include "buf.h"
#include "cluster.h"
#include "conn.h"
#include "herald.h"
#include "http.h"
#include "pubsub.h"
#include "session.h"
#include "webhooks.h"

static void metric(struct buf *b, const char *name, const char *type, const char *help,
                   unsigned long long value)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, value);
}

/* A Prometheus label value: \\, \" and newlines escaped. */
static void label_value(struct buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            buf_printf(b, "\\%c", *s);
        else if (*s == '\n')
            buf_puts(b, "\\n");
        else
            buf_append(b, s, 1);
    }
}

static void quota_row(void *ud, const char *node, const uint64_t refused[PS_NQUOTAS])
{
    struct buf *b = ud;
    for (int q = 0; q < PS_NQUOTAS; q++) {
        buf_puts(b, "herald_quota_refusals_total{node=\"");
        label_value(b, node);
        buf_printf(b, "\",quota=\"%s\"} %llu\n", ps_quota_names[q],
                   (unsigned long long)refused[q]);
    }
}

/* Node quotas (docs/pubsub.md "Quotas"): one row per refused node, for at
 * most PS_QUOTA_NODES_MAX nodes, and node="" for the rest. */
static void quota_metrics(struct herald *h, struct buf *b)
{
    if (h->pubsub == NULL)
        return;
    buf_puts(b, "# HELP herald_quota_refusals_total Requests refused by a node quota "
                "(herald#max_publish_rate, max_subscribers, max_node_bytes), per node; node=\"\" "
                "counts PEP nodes and nodes past the first 100 refused.\n"
                "# TYPE herald_quota_refusals_total counter\n");
    pubsub_quota_refusals(h->pubsub, quota_row, b);
}

void metrics_render(struct herald *h, struct buf *b)
{
    const struct herald_stats *st = &h->stats;
    static const char *const transports[] = {"tcp", "websocket", "bosh", "detached"};
    unsigned long long by_transport[4] = {0}, queued = 0;
    for (struct account *a = h->accounts; a; a = a->hh.next)
        for (struct session *s = a->sessions; s; s = s->next_res)
            for (size_t i = 0; i < 4; i++)
                if (strcmp(session_transport(s), transports[i]) == 0)
                    by_transport[i]++;
    for (struct conn *c = h->conns; c; c = c->next)
        queued += c->q_bytes;
    metric(b, "herald_connections", "gauge", "Open TCP connections (XMPP and HTTP).", h->nconns);
    buf_puts(b, "# HELP herald_sessions Bound XMPP sessions by transport (detached: XEP-0198, "
                "waiting to be resumed).\n# TYPE herald_sessions gauge\n");
    for (size_t i = 0; i < 4; i++)
        buf_printf(b, "herald_sessions{transport=\"%s\"} %llu\n", transports[i], by_transport[i]);
    metric(b, "herald_bosh_sessions", "gauge", "BOSH sessions (XEP-0124).", bosh_count(h));
    unsigned s2s_in, s2s_out;
    s2s_counts(h, &s2s_in, &s2s_out);
    buf_puts(b, "# HELP herald_s2s_streams Server-to-server streams (docs/federation.md): in = peers "
                "sending to us, out = ours to peers (setting up or ready).\n"
                "# TYPE herald_s2s_streams gauge\n");
    buf_printf(b, "herald_s2s_streams{direction=\"in\"} %u\n", s2s_in);
    buf_printf(b, "herald_s2s_streams{direction=\"out\"} %u\n", s2s_out);
    metric(b, "herald_components_connected", "gauge",
           "External components (XEP-0114) connected now.", component_connected(h));
    metric(b, "herald_bosh_requests_total", "counter", "BOSH requests (POST and OPTIONS /http-bind).",
           st->bosh_requests);
    buf_puts(b, "# HELP herald_websocket_frames_total WebSocket messages (data and control).\n"
                "# TYPE herald_websocket_frames_total counter\n");
    buf_printf(b, "herald_websocket_frames_total{direction=\"in\"} %llu\n",
               (unsigned long long)st->ws_frames_in);
    buf_printf(b, "herald_websocket_frames_total{direction=\"out\"} %llu\n",
               (unsigned long long)st->ws_frames_out);
    metric(b, "herald_websocket_upgrades_refused_total", "counter",
           "GET /xmpp-websocket requests answered with an error.", st->ws_upgrades_refused);
    metric(b, "herald_connections_accepted_total", "counter", "XMPP connections accepted.",
           st->connections_accepted);
    metric(b, "herald_connections_refused_total", "counter",
           "XMPP connections refused by a connection limit.", st->connections_refused);
    metric(b, "herald_stanzas_in_total", "counter", "Top-level elements received from clients.",
           st->stanzas_in);
    metric(b, "herald_stanzas_out_total", "counter", "Stanzas queued to clients.", st->stanzas_out);
    metric(b, "herald_logins_total", "counter", "Successful SASL authentications.", st->auth_ok);
    metric(b, "herald_login_failures_total", "counter", "Failed SASL authentications.",
           st->auth_failed);
    metric(b, "herald_login_refusals_total", "counter",
           "SASL attempts refused unchecked because an address or account exhausted its "
           "failure budget.", st->auth_refused);
    metric(b, "herald_slow_reader_disconnects_total", "counter",
           "Sessions closed because their output queue was full.", st->slow_reader_closes);
    metric(b, "herald_parser_hibernations_total", "counter",
           "Idle sessions whose XML parser memory was released until they send again.",
           st->parser_hibernations);
    metric(b, "herald_sm_detached_sessions", "gauge",
           "XEP-0198 sessions whose connection is lost, waiting to be resumed.", h->sm_ndetached);
    metric(b, "herald_sm_resumptions_total", "counter", "XEP-0198 sessions resumed.",
           st->sm_resumed);
    metric(b, "herald_sm_resume_failures_total", "counter",
           "XEP-0198 resumptions refused (unknown or expired session, other account).",
           st->sm_resume_failed);
    metric(b, "herald_sm_redelivered_total", "counter",
           "Unacknowledged stanzas of ended sessions sent to another resource or stored offline.",
           st->sm_redelivered);
    metric(b, "herald_sm_bounced_total", "counter",
           "Unacknowledged stanzas of ended sessions answered with an error to their sender.",
           st->sm_bounced);
    metric(b, "herald_sm_dropped_total", "counter",
           "Unacknowledged stanzas of ended sessions not sent again (presence, headlines, "
           "carbon copies, archive results, iq results).", st->sm_dropped);
    metric(b, "herald_pubsub_publishes_total", "counter", "Pubsub items published.", st->publishes);
    metric(b, "herald_leases_expired_total", "counter",
           "Leased items retracted because their lease or session ended.",
           pubsub_leases_expired(h->pubsub));
    metric(b, "herald_pubsub_notifications_total", "counter",
           "Pubsub event messages queued to subscribers.", st->notifications);
    metric(b, "herald_http_connections_refused_total", "counter",
           "HTTP connections refused by http.max_connections or http.max_connections_per_ip.",
           st->http_refused);
    metric(b, "herald_http_write_timeouts_total", "counter",
           "HTTP connections and event streams closed: output unread for http.write_timeout.",
           st->http_write_timeouts);
    metric(b, "herald_output_queue_bytes", "gauge", "Bytes queued or in flight to all clients.",
           queued);
    buf_puts(b, "# HELP herald_http_requests_total HTTP responses by status class.\n"
                "# TYPE herald_http_requests_total counter\n");
    for (int c = 2; c <= 5; c++)
        buf_printf(b, "herald_http_requests_total{code=\"%dxx\"} %llu\n", c,
                   (unsigned long long)st->http_requests[c]);
    const struct batch_stats *bs = batch_stats(h->batch);
    buf_puts(b, "# HELP herald_commit_seconds LMDB group-commit latency (fsync included).\n"
                "# TYPE herald_commit_seconds histogram\n");
    for (int i = 0; i < BATCH_BUCKETS; i++) {
        if (i == BATCH_BUCKETS - 1)
            buf_puts(b, "herald_commit_seconds_bucket{le=\"+Inf\"}");
        else
            buf_printf(b, "herald_commit_seconds_bucket{le=\"%g\"}", batch_bucket_bounds[i]);
        buf_printf(b, " %llu\n", (unsigned long long)bs->buckets[i]);
    }
    buf_printf(b, "herald_commit_seconds_sum %.9f\nherald_commit_seconds_count %llu\n",
               bs->seconds_sum, (unsigned long long)bs->commits);
    metric(b, "herald_commit_failures_total", "counter", "Group commits that failed and rolled back.",
           bs->failures);
    metric(b, "herald_storage_operation_failures_total", "counter",
           "Single operations rolled back alone (storage full or I/O error); the rest of their "
           "group commit went on.", bs->op_failures);
    quota_metrics(h, b);
    webhooks_metrics(h, b);
    cluster_metrics(h, b);
}
