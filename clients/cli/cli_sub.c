/* cli_sub.c - `herald sub NODE`: follow a node's event stream (Server-Sent
 * Events, GET /v1/nodes/{node}/events) and print one JSON object per line,
 * like mosquitto_sub (docs/cli.md).
 *
 * Items are printed as the server sends them (the REST item shape: id, seq,
 * published, publisher, json or xml); a retract as {"event":"retract",
 * "id":...}, a purge as {"event":"purge"}, the node's deletion as
 * {"event":"delete"} (the stream then ends). The SSE wire format (WHATWG
 * HTML §9.2.6) is parsed from curl's write callback line by line; a line
 * longer than SUB_MAX_LINE ends the connection (the server's events are
 * bounded by max_payload_size, 1 MiB).
 *
 * A dropped stream is resumed with Last-Event-ID (the seq of the last item
 * seen, or --since), so nothing still stored is missed; reconnecting is
 * bounded by --retries with a growing pause, each attempt said on stderr. A
 * connection that delivered its headers resets the count.
 *
 * With --jid the node is followed over XMPP instead (cli_sub_xmpp.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_clients.h"
#include "cli_rest.h"
#include "cli_sub_xmpp.h"

#define SUB_MAX_LINE ((2u << 20))
#define SUB_DEFAULT_RETRIES 5
/* The server sends a keepalive comment every 15 s of silence: a stream
 * quiet for longer than this is dead (a half-open TCP connection). */
#define SUB_SILENCE_S 45L

void cli_sub_usage(FILE *f)
{
    fprintf(f,
            "Usage: herald sub NODE [OPTIONS]\n"
            "\n"
            "Follows NODE's event stream over the REST API (Server-Sent Events), or\n"
            "over XMPP with --jid, and prints one JSON object per line on stdout,\n"
            "flushed per line:\n"
            "  an item     {\"id\":...,\"seq\":N,\"published\":...,\"publisher\":...,\n"
            "               \"json\":VALUE} (or \"xml\":\"<...>\" for an XML payload)\n"
            "  a retract   {\"event\":\"retract\",\"id\":...}  (also a lease running out)\n"
            "  a purge     {\"event\":\"purge\"}\n"
            "  deletion    {\"event\":\"delete\"}  (then the stream ends)\n"
            "\n"
            "  --since SEQ      first print the stored items published after sequence\n"
            "                   SEQ (0: every stored item), then live ones; default:\n"
            "                   only items published from now on (REST only)\n"
            "  --count N        exit 0 after N items (retracts etc. do not count)\n"
            "  --timeout SECS   give up after SECS seconds: exit 4 if fewer than\n"
            "                   --count items (without --count: no item) arrived\n"
            "  --retries N      reconnect at most N times in a row after the stream\n"
            "                   drops or cannot connect (default %d; 0: never),\n"
            "                   resuming with Last-Event-ID; each attempt is said\n"
            "                   on stderr (REST only)\n"
            "  -v, --verbose    say on stderr when the stream is open (XMPP: when\n"
            "                   subscribed, with the full JID)\n"
            "  -h, --help       show this help\n"
            "\n",
            SUB_DEFAULT_RETRIES);
    cli_rest_usage(f, true);
    fprintf(f, "\n"
               "Over XMPP (--jid) the client sends presence, subscribes its full JID\n"
               "to NODE and prints the notifications: \"seq\" only when one carries a\n"
               "stanza-id (live ones do not), \"published\" only for a replayed item,\n"
               "\"publisher\" when the service sets it. However it ends (--count,\n"
               "--timeout, SIGINT or SIGTERM, the last two with exit 0) it unsubscribes\n"
               "and closes the stream; a killed client (SIGKILL) leaves its\n"
               "subscription on the server. No reconnect over XMPP.\n"
               "\n"
               "Exit status: 0 --count items arrived (or the stream ended: node deleted,\n"
               "or --timeout without --count after at least one item); 1 the server\n"
               "refused (problem+json on stderr; XMPP: the condition, e.g. not-authorized)\n"
               "or the node was deleted before --count items; 2 usage; 3 no connection\n"
               "after the retries (XMPP: or the connection dropped); 4 --timeout ran out.\n"
               "\n"
               "Examples:\n"
               "  herald sub grid/feeder-7\n"
               "  herald sub sensors --since 0 --count 10 --timeout 30 | jq .json\n"
               "  herald sub services/api --since 41   # resume after sequence 41\n"
               "  HERALD_PASSWORD=secret herald sub sensors --jid bob@example.org \\\n"
               "      --cacert /var/lib/herald/tls/cert.pem --count 1\n");
}

struct sub {
    struct cli_rest *c;
    struct buf line; /* the current, unfinished line */
    struct buf data; /* the event's data lines, joined by '\n' */
    struct buf err;  /* the body of a non-200 answer */
    char event[32];
    char id[32];       /* the event's id field, pending dispatch */
    long long last_id; /* Last-Event-ID for a reconnect; -1: none */
    unsigned long got, count;
    unsigned long long deadline; /* cli_now_ms() bound; 0: none */
    long status;                 /* of the current connection; 0 until known */
    bool verbose, opened, done, deleted, timed_out, too_long;
};

static void dispatch(struct sub *s)
{
    if (s->id[0]) {
        char *end;
        long long v = strtoll(s->id, &end, 10);
        if (*end == '\0' && v >= 0)
            s->last_id = v;
        s->id[0] = '\0';
    }
    if (s->data.len == 0 && s->event[0] == '\0')
        return;
    if (buf_nul(&s->data) != 0) {
        s->too_long = true;
        return;
    }
    const char *ev = s->event[0] ? s->event : "item";
    const char *d = s->data.data;
    if (strcmp(ev, "item") == 0) {
        printf("%s\n", d);
        s->got++;
        if (s->count && s->got >= s->count)
            s->done = true;
    } else if (strcmp(ev, "retract") == 0 && d[0] == '{' && d[1] != '}') {
        printf("{\"event\":\"retract\",%s\n", d + 1);
    } else if (strcmp(ev, "delete") == 0) {
        printf("{\"event\":\"delete\"}\n");
        s->deleted = true;
        s->done = true;
    } else {
        /* purge, and any event a newer server adds: its name, and its
         * data's fields when it has any. */
        if (d[0] == '{' && d[1] != '}' && d[1] != '\0')
            printf("{\"event\":\"%s\",%s\n", ev, d + 1);
        else
            printf("{\"event\":\"%s\"}\n", ev);
    }
    fflush(stdout);
    buf_reset(&s->data);
    s->event[0] = '\0';
}

static void on_line(struct sub *s, char *l, size_t n)
{
    if (n && l[n - 1] == '\r')
        l[--n] = '\0';
    if (n == 0) {
        dispatch(s);
        return;
    }
    if (l[0] == ':')
        return; /* a comment: the server's keepalive */
    char *colon = memchr(l, ':', n);
    const char *val = "";
    if (colon) {
        *colon = '\0';
        val = colon + 1;
        if (*val == ' ')
            val++;
    }
    if (strcmp(l, "data") == 0) {
        if (s->data.len)
            buf_putc(&s->data, '\n');
        buf_puts(&s->data, val);
    } else if (strcmp(l, "event") == 0) {
        snprintf(s->event, sizeof(s->event), "%s", val);
    } else if (strcmp(l, "id") == 0) {
        snprintf(s->id, sizeof(s->id), "%s", val);
    }
}

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    struct sub *s = ud;
    size_t len = size * n;
    if (s->status == 0)
        curl_easy_getinfo(s->c->curl, CURLINFO_RESPONSE_CODE, &s->status);
    if (s->status != 200) {
        buf_append(&s->err, p, len);
        return buf_ok(&s->err) ? len : 0;
    }
    for (size_t i = 0; i < len && !s->done; i++) {
        if (p[i] != '\n') {
            buf_putc(&s->line, p[i]);
            continue;
        }
        if (buf_nul(&s->line) != 0) {
            s->too_long = true;
            return 0;
        }
        on_line(s, s->line.data, s->line.len);
        buf_reset(&s->line);
        if (s->too_long)
            return 0;
    }
    if (!buf_ok(&s->line)) {
        s->too_long = true;
        return 0;
    }
    return s->done ? 0 : len; /* 0 ends the transfer once done */
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct sub *s = ud;
    size_t len = size * n;
    if (len <= 2 && (p[0] == '\r' || p[0] == '\n')) {
        long st = 0;
        curl_easy_getinfo(s->c->curl, CURLINFO_RESPONSE_CODE, &st);
        if (st == 200) {
            s->opened = true;
            if (s->verbose)
                fprintf(stderr, "herald sub: stream open\n");
        }
    }
    return len;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    struct sub *s = ud;
    if (s->deadline && cli_now_ms() >= s->deadline) {
        s->timed_out = true;
        return 1;
    }
    return 0;
}

/* One connection: returns the curl result; s->status says what came. */
static CURLcode stream_once(struct sub *s, const char *url)
{
    struct cli_rest *c = s->c;
    struct curl_slist *hdrs = NULL, *h;
    char auth[1200], last[64];
    CURLcode cc = CURLE_OUT_OF_MEMORY;
    if ((size_t)snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token) >= sizeof(auth))
        return CURLE_BAD_FUNCTION_ARGUMENT;
    if ((h = curl_slist_append(hdrs, auth)) == NULL)
        goto done;
    hdrs = h;
    if ((h = curl_slist_append(hdrs, "Accept: text/event-stream")) == NULL)
        goto done;
    hdrs = h;
    if (s->last_id >= 0) {
        snprintf(last, sizeof(last), "Last-Event-ID: %lld", s->last_id);
        if ((h = curl_slist_append(hdrs, last)) == NULL)
            goto done;
        hdrs = h;
    }
    CURL *e = c->curl;
    s->status = 0;
    s->opened = false;
    buf_reset(&s->line);
    buf_reset(&s->data);
    buf_reset(&s->err);
    s->event[0] = s->id[0] = '\0';
    bool ok = cli_rest_easy(c, url, hdrs);
    CLI_SETOPT(ok, e, CURLOPT_WRITEFUNCTION, on_data);
    CLI_SETOPT(ok, e, CURLOPT_WRITEDATA, s);
    CLI_SETOPT(ok, e, CURLOPT_HEADERFUNCTION, on_header);
    CLI_SETOPT(ok, e, CURLOPT_HEADERDATA, s);
    CLI_SETOPT(ok, e, CURLOPT_NOPROGRESS, 0L);
    CLI_SETOPT(ok, e, CURLOPT_XFERINFOFUNCTION, on_progress);
    CLI_SETOPT(ok, e, CURLOPT_XFERINFODATA, s);
    CLI_SETOPT(ok, e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    CLI_SETOPT(ok, e, CURLOPT_LOW_SPEED_TIME, SUB_SILENCE_S);
    CLI_SETOPT(ok, e, CURLOPT_TCP_KEEPALIVE, 1L);
    if (!ok) {
        cc = CURLE_BAD_FUNCTION_ARGUMENT; /* an option libcurl refused */
        goto done;
    }
    cc = curl_easy_perform(e);
    if (s->status == 0)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &s->status);
done:
    curl_slist_free_all(hdrs);
    return cc;
}

/* Sleeps ms, but not past the deadline: false if the deadline came. */
static bool pause_ms(struct sub *s, unsigned long long ms)
{
    unsigned long long now = cli_now_ms();
    if (s->deadline && now + ms >= s->deadline) {
        ms = s->deadline > now ? s->deadline - now : 0;
        s->timed_out = true;
    }
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return !s->timed_out;
}

static int parse_ulong(const char *s, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (*s == '\0' || *s == '-' || *end != '\0' || errno)
        return -1;
    *out = v;
    return 0;
}

int cli_sub(int argc, char **argv)
{
    struct cli_rest c;
    struct sub s;
    struct buf url;
    const char *node = NULL;
    unsigned long retries = SUB_DEFAULT_RETRIES, timeout = 0, since = 0;
    bool has_since = false, has_retries = false;
    int ret = CLI_USAGE;
    cli_rest_init(&c, "herald sub");
    memset(&s, 0, sizeof(s));
    s.c = &c;
    s.last_id = -1;
    buf_init(&s.line, SUB_MAX_LINE);
    buf_init(&s.data, SUB_MAX_LINE);
    buf_init(&s.err, 64 * 1024);
    buf_init(&url, 0);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int o = cli_rest_option(&c, argc, argv, &i);
        if (o < 0)
            goto done;
        if (o > 0)
            continue;
        bool has_v = i + 1 < argc;
        unsigned long *num = NULL;
        if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            s.verbose = true;
            continue;
        }
        if (strcmp(a, "--since") == 0 && has_v) {
            num = &since;
            has_since = true;
        } else if (strcmp(a, "--count") == 0 && has_v) {
            num = &s.count;
        } else if (strcmp(a, "--timeout") == 0 && has_v) {
            num = &timeout;
        } else if (strcmp(a, "--retries") == 0 && has_v) {
            num = &retries;
            has_retries = true;
        } else if (a[0] == '-') {
            fprintf(stderr, "herald sub: unknown option %s (or it needs a value)\n", a);
            goto done;
        } else if (node == NULL) {
            node = a;
            continue;
        } else {
            fprintf(stderr, "herald sub: unexpected argument %s\n", a);
            goto done;
        }
        if (parse_ulong(argv[++i], num) != 0) {
            fprintf(stderr, "herald sub: %s takes a number\n", a);
            goto done;
        }
    }
    if (node == NULL) {
        fprintf(stderr, "herald sub: give the NODE to follow\n"
                        "Run 'herald sub --help' for the options.\n");
        goto done;
    }
    if (c.jid) {
        if (has_since || has_retries) {
            fprintf(stderr,
                    "herald sub: %s is for REST only: XMPP notifications carry no "
                    "sequence to resume from\n",
                    has_since ? "--since" : "--retries");
            goto done;
        }
        ret = cli_sub_xmpp(&c, node, s.count, timeout, s.verbose);
        goto done;
    }
    if (c.password || c.host || c.port || c.service) {
        fprintf(stderr, "herald sub: --password, --host, --port and --service need --jid\n");
        goto done;
    }
    if ((ret = cli_rest_open(&c)) != 0)
        goto done;
    /* Each line must reach a pipe's reader at once. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (has_since)
        s.last_id = (long long)since;
    if (timeout)
        s.deadline = cli_now_ms() + timeout * 1000ull;
    buf_puts(&url, c.url);
    buf_puts(&url, "/v1/nodes/");
    cli_rest_segment(&url, node);
    buf_puts(&url, "/events");
    if (buf_nul(&url) != 0) {
        fprintf(stderr, "herald sub: out of memory\n");
        ret = CLI_CONNECT;
        goto done;
    }
    unsigned long failures = 0;
    for (;;) {
        CURLcode cc = stream_once(&s, url.data);
        if (s.done) {
            if (s.deleted && s.count && s.got < s.count) {
                fprintf(stderr, "herald sub: the node was deleted after %lu of %lu items\n", s.got,
                        s.count);
                ret = CLI_REFUSED;
            } else {
                ret = CLI_OK;
            }
            break;
        }
        if (s.timed_out)
            break;
        if (s.status >= 400 && s.status != 503) {
            buf_nul(&s.err);
            ret = cli_rest_refused(&c, s.status, &s.err);
            break;
        }
        if (s.opened)
            failures = 0;
        char why[CURL_ERROR_SIZE + 64];
        if (s.too_long)
            snprintf(why, sizeof(why), "a line longer than %u bytes", SUB_MAX_LINE);
        else if (s.status == 503)
            snprintf(why, sizeof(why), "the server is unavailable (503)");
        else if (cc == CURLE_OK)
            snprintf(why, sizeof(why), "the server ended the stream");
        else
            snprintf(why, sizeof(why), "%s", c.errbuf[0] ? c.errbuf : curl_easy_strerror(cc));
        if (failures >= retries) {
            fprintf(stderr, "herald sub: %s; giving up after %lu reconnect attempt%s\n", why,
                    failures, failures == 1 ? "" : "s");
            ret = CLI_CONNECT;
            break;
        }
        failures++;
        unsigned long long wait = 500ull << (failures < 5 ? failures - 1 : 4); /* up to 8 s */
        if (s.last_id >= 0)
            fprintf(stderr,
                    "herald sub: %s; reconnecting in %.1f s with Last-Event-ID: %lld "
                    "(attempt %lu of %lu)\n",
                    why, (double)wait / 1000.0, s.last_id, failures, retries);
        else
            fprintf(stderr, "herald sub: %s; reconnecting in %.1f s (attempt %lu of %lu)\n", why,
                    (double)wait / 1000.0, failures, retries);
        if (!pause_ms(&s, wait))
            break;
    }
    if (s.timed_out && !s.done) {
        if (s.count == 0 && s.got > 0) {
            ret = CLI_OK;
        } else {
            if (s.count)
                fprintf(stderr, "herald sub: timed out after %lu s with %lu of %lu items\n",
                        timeout, s.got, s.count);
            else
                fprintf(stderr, "herald sub: timed out after %lu s: no item arrived\n", timeout);
            ret = CLI_TIMEOUT;
        }
    }
done:
    cli_rest_close(&c);
    buf_free(&s.line);
    buf_free(&s.data);
    buf_free(&s.err);
    buf_free(&url);
    return ret;
}
