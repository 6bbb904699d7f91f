/* nats_link.c - the only file that calls libnats (nats_link.h; docs/cluster.md). */
#include "nats_link.h"

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errors.h"

#define FETCH_BATCH 256
#define FETCH_WAIT_MS 1000
#define NOWAIT_EXPIRES_MS 500
#define DUPLICATE_WINDOW_NS (600LL * 1000000000LL) /* 10 min: retries stay inside it */
#define LOG_MAX_AGE_NS (7LL * 86400 * 1000000000LL)
#define MAX_ACK_PENDING 4096
#define ACK_WAIT_S 10

#define MAX_CORE_SUBS 4

struct core_sub {
    natsSubscription *sub;
    cl_msg_fn *fn;
    void *ud;
};

struct cl_nats {
    natsConnection *nc;
    jsCtx *js;
    natsSubscription *sub;
    struct core_sub core[MAX_CORE_SUBS];
    int ncore;
    char *stream, *subjects;
    int timeout_ms;
    bool no_create;
    pthread_t fetcher;
    bool fetching;
    atomic_bool stop;
    cl_entry_fn *fn;
    void *ud;
};

static void say(char *err, size_t errlen, const char *what, natsStatus s, jsErrCode jerr)
{
    if (jerr)
        snprintf(err, errlen, "%s: %s (JetStream error %d)", what, natsStatus_GetText(s),
                 (int)jerr);
    else
        snprintf(err, errlen, "%s: %s", what, natsStatus_GetText(s));
}

const char *cl_nats_version(void) { return nats_GetVersion(); }

/* The URL list as libnats wants it: an array of strings. */
static int split_urls(const char *urls, char **copy, const char **list, int cap)
{
    *copy = strdup(urls);
    if (*copy == NULL)
        return -1;
    int n = 0;
    char *save = NULL;
    for (char *u = strtok_r(*copy, ", ", &save); u && n < cap; u = strtok_r(NULL, ", ", &save))
        list[n++] = u;
    return n;
}

static int ensure_stream(struct cl_nats *n, unsigned replicas, char *err, size_t errlen)
{
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char *subjects[1] = {n->subjects};
    cfg.Name = n->stream;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Retention = js_LimitsPolicy;
    cfg.Discard = js_DiscardOld;
    cfg.Replicas = (int64_t)replicas;
    cfg.Duplicates = DUPLICATE_WINDOW_NS;
    cfg.MaxAge = LOG_MAX_AGE_NS;
    cfg.DenyDelete = true;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, n->js, n->stream, NULL, &jerr);
    if (s == NATS_OK) {
        int64_t have = si->Config->Replicas;
        jsStreamInfo_Destroy(si);
        if (have != (int64_t)replicas) {
            snprintf(err, errlen, "the stream %s has %lld replicas, cluster.replicas says %u",
                     n->stream, (long long)have, replicas);
            return HERALD_EINVAL;
        }
        return 0;
    }
    if (s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr) {
        say(err, errlen, "reading the log stream", s, jerr);
        return HERALD_ECLUSTER;
    }
    if (n->no_create) {
        snprintf(err, errlen, "the stream %s does not exist (no instance has started yet)",
                 n->stream);
        return HERALD_ENOTFOUND;
    }
    jerr = 0;
    s = js_AddStream(&si, n->js, &cfg, NULL, &jerr);
    if (s == NATS_OK) {
        jsStreamInfo_Destroy(si);
        return 0;
    }
    if (jerr == JSStreamNameExistErr) /* another instance made it meanwhile */
        return 0;
    say(err, errlen, "creating the log stream", s, jerr);
    return HERALD_ECLUSTER;
}

int cl_nats_open(struct cl_nats **out, const struct cl_nats_opts *o, char *err, size_t errlen)
{
    struct cl_nats *n = calloc(1, sizeof(*n));
    natsOptions *opts = NULL;
    char *copy = NULL;
    const char *urls[16];
    int rc = HERALD_ENOMEM;
    *out = NULL;
    if (n == NULL || (n->stream = strdup(o->stream)) == NULL ||
        (n->subjects = strdup(o->subjects)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    n->timeout_ms = o->timeout_ms;
    n->no_create = o->no_create;
    int nurls = split_urls(o->urls, &copy, urls, 16);
    if (nurls <= 0) {
        snprintf(err, errlen, "cluster.nats_urls names no server");
        rc = HERALD_EINVAL;
        goto fail;
    }
    natsStatus s = natsOptions_Create(&opts);
    if (s == NATS_OK)
        s = natsOptions_SetServers(opts, urls, nurls);
    if (s == NATS_OK)
        s = natsOptions_SetName(opts, o->client);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(opts, o->timeout_ms);
    /* One connection for the process lifetime: never give up reconnecting
     * (docs/cluster.md 7.4). */
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(opts, 250);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectBufSize(opts, 8 * 1024 * 1024);
    if (s == NATS_OK)
        s = natsOptions_SetPingInterval(opts, 2000);
    if (s == NATS_OK)
        s = natsOptions_SetMaxPingsOut(opts, 2);
    if (s == NATS_OK && o->credentials)
        s = natsOptions_SetUserCredentialsFromFiles(opts, o->credentials, NULL);
    if (s == NATS_OK && (o->tls_ca || o->tls_cert))
        s = natsOptions_SetSecure(opts, true);
    if (s == NATS_OK && o->tls_ca)
        s = natsOptions_LoadCATrustedCertificates(opts, o->tls_ca);
    if (s == NATS_OK && o->tls_cert)
        s = natsOptions_LoadCertificatesChain(opts, o->tls_cert, o->tls_key);
    if (s != NATS_OK) {
        say(err, errlen, "NATS credentials or TLS files", s, 0);
        rc = HERALD_EINVAL;
        goto fail;
    }
    s = natsConnection_Connect(&n->nc, opts);
    if (s != NATS_OK) {
        say(err, errlen, "connecting to NATS", s, 0);
        /* A certificate that does not verify or refused credentials will
         * not change by retrying (nats_link.h: HERALD_EINVAL). */
        bool fatal = s == NATS_SSL_ERROR || s == NATS_CONNECTION_AUTH_FAILED ||
                     s == NATS_NOT_PERMITTED;
        rc = fatal ? HERALD_EINVAL : HERALD_ECLUSTER;
        goto fail;
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = o->timeout_ms;
    if ((s = natsConnection_JetStream(&n->js, n->nc, &jo)) != NATS_OK) {
        say(err, errlen, "opening JetStream", s, 0);
        rc = HERALD_ECLUSTER;
        goto fail;
    }
    if ((rc = ensure_stream(n, o->replicas, err, errlen)) != 0)
        goto fail;
    natsOptions_Destroy(opts);
    free(copy);
    *out = n;
    return 0;
fail:
    natsOptions_Destroy(opts);
    free(copy);
    if (n)
        cl_nats_close(n);
    return rc;
}

/* The log stream's information (destroy it), or HERALD_ECLUSTER with err. */
static int stream_info(struct cl_nats *n, jsStreamInfo **si, char *err, size_t errlen)
{
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(si, n->js, n->stream, NULL, &jerr);
    if (s == NATS_OK)
        return 0;
    say(err, errlen, "reading the log stream", s, jerr);
    return HERALD_ECLUSTER;
}

int cl_nats_stream_seqs(struct cl_nats *n, uint64_t *first, uint64_t *last, char *err,
                        size_t errlen)
{
    jsStreamInfo *si = NULL;
    if (stream_info(n, &si, err, errlen) != 0)
        return HERALD_ECLUSTER;
    *first = si->State.FirstSeq;
    *last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    return 0;
}

/* Hands each message to fn with its acknowledgement subject; the loop
 * acknowledges it once applied (or found applied already). An entry it
 * cannot apply yet (one before it is missing) stays unacknowledged and
 * comes again. */
static void deliver(struct cl_nats *n, natsMsgList *list)
{
    for (int i = 0; i < list->Count; i++) {
        natsMsg *m = list->Msgs[i];
        jsMsgMetaData *meta = NULL;
        const char *ack = natsMsg_GetReply(m);
        if (ack != NULL && natsMsg_GetMetaData(&meta, m) == NATS_OK) {
            n->fn(n->ud, meta->Sequence.Stream, ack, natsMsg_GetData(m),
                  (size_t)natsMsg_GetDataLength(m));
            jsMsgMetaData_Destroy(meta);
        }
    }
    natsMsgList_Destroy(list);
}

void cl_nats_ack(struct cl_nats *n, const char *ack)
{
    /* What natsMsg_Ack sends for an explicit ack, without the message. */
    natsConnection_PublishString(n->nc, ack, "+ACK");
}

static void *fetch_main(void *arg)
{
    struct cl_nats *n = arg;
    while (!atomic_load(&n->stop)) {
        natsMsgList list = {0};
        jsErrCode jerr = 0;
        /* What is there now, without waiting; when nothing is, wait for one
         * entry at most FETCH_WAIT_MS (a larger simple fetch would wait to
         * fill its whole batch). */
        jsFetchRequest req;
        jsFetchRequest_Init(&req);
        req.Batch = FETCH_BATCH;
        req.NoWait = true;
        /* The server answers a no-wait request at once (the entries, then a
         * 404 status); the expiry only bounds the wait for that answer, so
         * that no stray status is left to end the next fetch early. */
        req.Expires = (int64_t)NOWAIT_EXPIRES_MS * 1000000;
        natsStatus s = natsSubscription_FetchRequest(&list, n->sub, &req);
        if (s == NATS_OK && list.Count > 0) {
            deliver(n, &list);
            continue;
        }
        natsMsgList_Destroy(&list);
        s = natsSubscription_Fetch(&list, n->sub, 1, FETCH_WAIT_MS, &jerr);
        if (s == NATS_OK) {
            deliver(n, &list);
        } else {
            natsMsgList_Destroy(&list);
            /* Nothing came (timeout, or a status such as 404/408): ask
             * again at once; anything else (disconnected, a leader
             * election) after a pause. */
            if (s != NATS_TIMEOUT && s != NATS_NOT_FOUND && !atomic_load(&n->stop))
                nats_Sleep(200);
        }
    }
    return NULL;
}

int cl_nats_consume(struct cl_nats *n, const char *durable, uint64_t start_seq, cl_entry_fn *fn,
                    void *ud, char *err, size_t errlen)
{
    jsErrCode jerr = 0;
    /* Made again from the instance's own applied position (docs/cluster.md
     * 5.1): whatever the old consumer had acknowledged does not matter. */
    natsStatus s = js_DeleteConsumer(n->js, n->stream, durable, NULL, &jerr);
    if (s != NATS_OK && s != NATS_NOT_FOUND && jerr != JSConsumerNotFoundErr) {
        say(err, errlen, "removing the old consumer", s, jerr);
        return HERALD_ECLUSTER;
    }
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = durable;
    cc.FilterSubject = n->subjects;
    /* Acknowledging an entry acknowledges every entry before it: the loop
     * acknowledges the last one it applied, once per batch it applies. */
    cc.AckPolicy = js_AckAll;
    /* An entry lost in flight when a server fails comes again after
     * AckWait; until then the entries after it wait unacknowledged. */
    cc.AckWait = (int64_t)ACK_WAIT_S * 1000000000LL;
    cc.MaxAckPending = MAX_ACK_PENDING;
    if (start_seq > 1) {
        cc.DeliverPolicy = js_DeliverByStartSequence;
        cc.OptStartSeq = start_seq;
    } else {
        cc.DeliverPolicy = js_DeliverAll;
    }
    jsConsumerInfo *ci = NULL;
    jerr = 0;
    if ((s = js_AddConsumer(&ci, n->js, n->stream, &cc, NULL, &jerr)) != NATS_OK) {
        say(err, errlen, "creating the consumer", s, jerr);
        return HERALD_ECLUSTER;
    }
    jsConsumerInfo_Destroy(ci);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = n->stream;
    so.Consumer = durable;
    jerr = 0;
    if ((s = js_PullSubscribe(&n->sub, n->js, n->subjects, durable, NULL, &so, &jerr)) !=
        NATS_OK) {
        say(err, errlen, "subscribing to the consumer", s, jerr);
        return HERALD_ECLUSTER;
    }
    n->fn = fn;
    n->ud = ud;
    if (pthread_create(&n->fetcher, NULL, fetch_main, n) != 0) {
        snprintf(err, errlen, "cannot start the fetch thread");
        return HERALD_ENOMEM;
    }
    n->fetching = true;
    return 0;
}

static natsMsg *entry_msg(struct cl_nats *n, const char *subject, const char *msg_id,
                          const void *data, size_t len)
{
    natsMsg *m = NULL;
    if (natsMsg_Create(&m, subject, NULL, data, (int)len) != NATS_OK)
        return NULL;
    if (natsMsgHeader_Set(m, "Nats-Msg-Id", msg_id) != NATS_OK ||
        natsMsgHeader_Set(m, "Nats-Expected-Stream", n->stream) != NATS_OK) {
        natsMsg_Destroy(m);
        return NULL;
    }
    return m;
}

int cl_nats_propose(struct cl_nats *n, const char *subject, const char *msg_id, const void *data,
                    size_t len)
{
    natsMsg *m = entry_msg(n, subject, msg_id, data, len);
    if (m == NULL)
        return HERALD_ENOMEM;
    /* Without an adapter this only appends to the connection's buffer (or
     * to the reconnect buffer while reconnecting); the library's flusher
     * thread writes it. */
    natsStatus s = natsConnection_PublishMsg(n->nc, m);
    natsMsg_Destroy(m);
    return s == NATS_OK ? 0 : HERALD_ECLUSTER;
}

int cl_nats_propose_sync(struct cl_nats *n, const char *subject, const char *msg_id,
                         const void *data, size_t len, uint64_t *seq, char *err, size_t errlen)
{
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = msg_id;
    po.ExpectStream = n->stream;
    po.MaxWait = n->timeout_ms;
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_Publish(&pa, n->js, subject, data, (int)len, &po, &jerr);
    if (s != NATS_OK) {
        say(err, errlen, "storing the change in the cluster log", s, jerr);
        return HERALD_ECLUSTER;
    }
    *seq = pa->Sequence;
    jsPubAck_Destroy(pa);
    return 0;
}

static void on_core_msg(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    (void)nc, (void)sub;
    struct core_sub *cs = closure;
    cs->fn(cs->ud, natsMsg_GetSubject(m), natsMsg_GetReply(m), natsMsg_GetData(m),
           (size_t)natsMsg_GetDataLength(m));
    natsMsg_Destroy(m);
}

int cl_nats_subscribe(struct cl_nats *n, const char *subject, cl_msg_fn *fn, void *ud, char *err,
                      size_t errlen)
{
    if (n->ncore == MAX_CORE_SUBS) {
        snprintf(err, errlen, "too many subscriptions");
        return HERALD_ELIMIT;
    }
    struct core_sub *cs = &n->core[n->ncore];
    cs->fn = fn;
    cs->ud = ud;
    natsStatus s = natsConnection_Subscribe(&cs->sub, n->nc, subject, on_core_msg, cs);
    if (s != NATS_OK) {
        say(err, errlen, "subscribing", s, 0);
        return HERALD_ECLUSTER;
    }
    n->ncore++;
    return 0;
}

int cl_nats_publish(struct cl_nats *n, const char *subject, const char *reply, const void *data,
                    size_t len)
{
    natsStatus s = reply ? natsConnection_PublishRequest(n->nc, subject, reply, data, (int)len)
                         : natsConnection_Publish(n->nc, subject, data, (int)len);
    return s == NATS_OK ? 0 : HERALD_ECLUSTER;
}

static bool print_cluster(FILE *f, const jsClusterInfo *ci)
{
    bool ok = ci != NULL && ci->Leader != NULL && ci->Leader[0];
    fprintf(f, "  leader %s;", ok ? ci->Leader : "(none)");
    for (int i = 0; ci && i < ci->ReplicasLen; i++) {
        const jsPeerInfo *p = ci->Replicas[i];
        bool good = p->Current && !p->Offline;
        ok = ok && good;
        fprintf(f, " replica %s %s (lag %llu)", p->Name,
                p->Offline ? "offline" : p->Current ? "current" : "behind",
                (unsigned long long)p->Lag);
    }
    fputc('\n', f);
    return ok;
}

int cl_nats_print_status(struct cl_nats *n, void *file, bool *healthy, char *err, size_t errlen)
{
    FILE *f = file;
    jsStreamInfo *si = NULL;
    if (stream_info(n, &si, err, errlen) != 0)
        return HERALD_ECLUSTER;
    fprintf(f, "stream %s: %llu entries, %llu bytes, sequences %llu to %llu, %lld replica(s)\n",
            n->stream, (unsigned long long)si->State.Msgs, (unsigned long long)si->State.Bytes,
            (unsigned long long)si->State.FirstSeq, (unsigned long long)si->State.LastSeq,
            (long long)si->Config->Replicas);
    bool replicated = si->Config->Replicas > 1;
    *healthy = print_cluster(f, si->Cluster) || !replicated;
    uint64_t last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    jsConsumerInfoList *list = NULL;
    jsErrCode jerr = 0;
    natsStatus s;
    if ((s = js_Consumers(&list, n->js, n->stream, NULL, &jerr)) != NATS_OK) {
        say(err, errlen, "listing the consumers", s, jerr);
        return HERALD_ECLUSTER;
    }
    for (int i = 0; i < list->Count; i++) {
        const jsConsumerInfo *ci = list->List[i];
        fprintf(f, "consumer %s: delivered up to %llu, acknowledged up to %llu, %llu to "
                   "deliver, %lld unacknowledged (%llu behind the log)\n",
                ci->Name, (unsigned long long)ci->Delivered.Stream,
                (unsigned long long)ci->AckFloor.Stream, (unsigned long long)ci->NumPending,
                (long long)ci->NumAckPending,
                (unsigned long long)(last > ci->AckFloor.Stream ? last - ci->AckFloor.Stream : 0));
        if (!print_cluster(f, ci->Cluster) && replicated)
            *healthy = false;
    }
    jsConsumerInfoList_Destroy(list);
    return 0;
}

bool cl_nats_connected(struct cl_nats *n)
{
    return n && n->nc && natsConnection_Status(n->nc) == NATS_CONN_STATUS_CONNECTED;
}

void cl_nats_close(struct cl_nats *n)
{
    if (n->fetching) {
        atomic_store(&n->stop, true);
        pthread_join(n->fetcher, NULL);
    }
    /* Close first (the library's threads stop), then destroy: nothing is
     * unsubscribed while the connection is open (nats.c #637). */
    if (n->nc)
        natsConnection_Close(n->nc);
    if (n->sub)
        natsSubscription_Destroy(n->sub);
    for (int i = 0; i < n->ncore; i++)
        natsSubscription_Destroy(n->core[i].sub);
    if (n->js)
        jsCtx_Destroy(n->js);
    if (n->nc)
        natsConnection_Destroy(n->nc);
    free(n->stream);
    free(n->subjects);
    free(n);
}
