/* nats_link.h - the only door to libnats (docs/cluster.md, "Threading").
 *
 * One NATS connection per process, used without an event-loop adapter: the
 * library's own threads read and write the socket, so the loop never does
 * NATS I/O and never waits for a reply (a synchronous call on the loop
 * thread of the libuv adapter could not receive its answer), and libnats
 * 3.4.1's crash when a connection is destroyed during an adapter read
 * (nats.c #888) cannot happen. Subscriptions live as long as the
 * connection: nothing is unsubscribed or destroyed while it is open
 * (nats.c #637). Entries of the log arrive on the fetch thread, in stream
 * order, through the callback given to cl_nats_consume. */
#ifndef HERALD_CLUSTER_NATS_LINK_H
#define HERALD_CLUSTER_NATS_LINK_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cl_nats;

struct cl_nats_opts {
    const char *urls;      /* comma-separated nats:// URLs */
    const char *client;    /* the connection's name (the instance, or herald-cli) */
    const char *stream;    /* HRD_<id>_LOG */
    const char *subjects;  /* hrd.<id>.log.> */
    unsigned replicas;     /* 1 or 3 */
    int timeout_ms;        /* connecting and each administrative call */
    bool no_create;        /* only look: fail if the stream does not exist */
    /* Authentication and TLS (each may be NULL): a .creds file; a CA file
     * (TLS, the servers verified against it); a client certificate+key. */
    const char *credentials, *tls_ca, *tls_cert, *tls_key;
};

/* Connects and creates the log stream unless it exists. On failure err
 * says why (in words) and nothing is left open: HERALD_EINVAL when trying
 * again cannot help (TLS verification, credentials, bad files, a stream
 * with other replicas), HERALD_ECLUSTER when it may. Blocking. */
int cl_nats_open(struct cl_nats **out, const struct cl_nats_opts *o, char *err, size_t errlen);

/* The stream's first and last sequences now. Blocking (not on the loop). */
int cl_nats_stream_seqs(struct cl_nats *n, uint64_t *first, uint64_t *last, char *err,
                        size_t errlen);

/* Called on the fetch thread for each entry, in the order delivered (the
 * stream's, except that after a server failure an entry lost in flight
 * comes again later, after AckWait); it returns once the entry is queued
 * (it may wait for room: the back-pressure). ack is the subject that
 * acknowledges it (cl_nats_ack), once applied. */
typedef void cl_entry_fn(void *ud, uint64_t seq, const char *ack, const void *data, size_t len);

/* (Re)creates the durable pull consumer `durable` to deliver from
 * start_seq on, and starts the fetch thread. Blocking. */
int cl_nats_consume(struct cl_nats *n, const char *durable, uint64_t start_seq, cl_entry_fn *fn,
                    void *ud, char *err, size_t errlen);

/* Acknowledges an applied entry and every entry before it (any thread,
 * without waiting). An entry never acknowledged is delivered again after
 * the consumer's AckWait. */
void cl_nats_ack(struct cl_nats *n, const char *ack);

/* Publishes one entry to the stream without waiting (any thread): JetStream
 * stores it unless one with the same msg_id is in its duplicate window.
 * 0, or HERALD_ECLUSTER when the connection cannot take it now. */
int cl_nats_propose(struct cl_nats *n, const char *subject, const char *msg_id, const void *data,
                    size_t len);

/* The same, waiting for the stream's acknowledgement (the CLI): *seq is
 * the entry's sequence. Blocking. */
int cl_nats_propose_sync(struct cl_nats *n, const char *subject, const char *msg_id,
                         const void *data, size_t len, uint64_t *seq, char *err, size_t errlen);

/* Core NATS (no JetStream): at most once, for soft state and routing. */
typedef void cl_msg_fn(void *ud, const char *subject, const char *reply, const void *data,
                       size_t len);
/* Subscribes for the connection's lifetime; fn runs on the library's
 * delivery thread and must only copy and queue. Blocking (not on the loop). */
int cl_nats_subscribe(struct cl_nats *n, const char *subject, cl_msg_fn *fn, void *ud, char *err,
                      size_t errlen);
/* Publishes without waiting (any thread); reply may be NULL. */
int cl_nats_publish(struct cl_nats *n, const char *subject, const char *reply, const void *data,
                    size_t len);

/* `herald cluster status`: the stream (size, sequences, leader, replicas)
 * and every consumer (delivered, acknowledged, pending), printed to f
 * (a FILE *); *healthy is whether the stream has a leader and every
 * replica is current. Blocking. */
int cl_nats_print_status(struct cl_nats *n, void *f, bool *healthy, char *err, size_t errlen);

/* Whether the connection is up now. */
bool cl_nats_connected(struct cl_nats *n);

/* Stops the fetch thread (joins it: at most one fetch timeout), closes the
 * connection, then destroys everything. Not from a NATS callback. */
void cl_nats_close(struct cl_nats *n);

/* "3.4.1" */
const char *cl_nats_version(void);

#endif
