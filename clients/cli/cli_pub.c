/* cli_pub.c - `herald pub NODE [PAYLOAD|-]`: publish items over the REST
 * bridge, like mosquitto_pub (docs/cli.md).
 *
 * The payload comes from the argument or standard input ('-'), is sent as
 * application/json or application/xml (detected from its first non-blank
 * character, or forced by --json/--xml), with PUT .../items/{id} when an id
 * is given and POST .../items otherwise, and ?lease=SECONDS for a lease
 * (docs/leases.md). For each item it prints "ID<TAB>SEQ" on stdout. With
 * --count N the same payload is published N times over one kept-alive
 * connection, stopping at the first refusal. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli_clients.h"
#include "cli_rest.h"
#include "cli_xmpp.h"
#include "json.h"
#include "xml_parser.h"

/* Bound of a payload read from stdin: the server's own cap is
 * max_payload_size (1 MiB at most); a bit more lets it say so itself. */
#define PUB_MAX_STDIN ((1u << 20) + 4096)

void cli_pub_usage(FILE *f)
{
    fprintf(f, "Usage: herald pub NODE PAYLOAD|- [OPTIONS]\n"
               "\n"
               "Publishes an item to NODE over the REST API (or over XMPP with --jid)\n"
               "and prints its id and sequence number (\"ID<TAB>SEQ\", one line per\n"
               "item; over XMPP \"ID<TAB>-\": XMPP answers carry no sequence number).\n"
               "PAYLOAD is JSON (over XMPP: in a XEP-0335 <json/> container) or one\n"
               "namespaced XML element; '-' reads it from standard input.\n"
               "\n"
               "  --id ID          item id (PUT: replaces an item with that id);\n"
               "                   default: the server chooses one. With --count N>1\n"
               "                   the items are ID-1 ... ID-N\n"
               "  --json, --xml    the payload's type (default: '<' first means XML,\n"
               "                   anything else JSON)\n"
               "  --lease SECONDS  publish with a lease: the item is retracted when it\n"
               "                   runs out (docs/leases.md)\n"
               "  --count N        publish N items (default 1), stopping at the first\n"
               "                   error; progress on stderr once a second\n"
               "  --interval SECS  wait SECS (decimals allowed) between items\n"
               "  --quiet          print nothing on success\n"
               "  -h, --help       show this help\n"
               "\n");
    cli_rest_usage(f, true);
    fprintf(f, "\n"
               "Exit status: 0 published; 1 the server refused (its problem+json title\n"
               "and detail on stderr); 2 usage; 3 no answer (connection failure).\n"
               "\n"
               "Examples:\n"
               "  export HERALD_TOKEN=$(herald token create --jid alice@localhost | tail -1)\n"
               "  herald pub grid/feeder-7 '{\"kW\": 3.5}'\n"
               "  herald pub sensors \"<t xmlns='urn:example'>21.5</t>\" --id t1\n"
               "  echo '{\"up\": true}' | herald pub services/api - --id host1 --lease 30\n"
               "  herald pub load '{\"n\": 1}' --count 1000 --interval 0.01\n"
               "  HERALD_PASSWORD=secret herald pub feed '{\"a\": 1}' --jid alice@example.org \\\n"
               "      --cacert /var/lib/herald/tls/cert.pem\n");
}

static int read_stdin(struct buf *b)
{
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
        buf_append(b, chunk, n);
    if (ferror(stdin))
        return -1;
    return buf_ok(b) ? 0 : -1;
}

static int parse_uint(const char *s, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (*s == '\0' || *s == '-' || *end != '\0' || errno)
        return -1;
    *out = v;
    return 0;
}

/* One publish over REST: PUT .../items/{id} or POST .../items, then
 * "ID<TAB>SEQ" on stdout. 0 or an exit code. */
static int rest_publish(struct cli_rest *c, const char *node, const char *item_id,
                        unsigned long lease, const char *ctype, const struct buf *payload,
                        bool quiet, struct buf *path, struct buf *resp)
{
    buf_reset(path);
    buf_puts(path, "/v1/nodes/");
    cli_rest_segment(path, node);
    buf_puts(path, "/items");
    if (item_id) {
        buf_putc(path, '/');
        cli_rest_segment(path, item_id);
    }
    if (lease)
        buf_printf(path, "?lease=%lu", lease);
    if (buf_nul(path) != 0) {
        fprintf(stderr, "herald pub: out of memory\n");
        return CLI_CONNECT;
    }
    long status = 0;
    int ret = cli_rest_request(c, item_id ? "PUT" : "POST", path->data, ctype, payload->data,
                               payload->len, &status, resp);
    if (ret != 0)
        return ret;
    if (status < 200 || status > 299)
        return cli_rest_refused(c, status, resp);
    yajl_val v = cli_json_parse(c, resp);
    const char *got = cli_json_str(v, "id");
    if (got == NULL) {
        fprintf(stderr, "herald pub: the server's answer names no item id\n");
        yajl_tree_free(v);
        return CLI_REFUSED;
    }
    long long seq = cli_json_int(v, "seq");
    if (!quiet) {
        if (seq >= 0)
            printf("%s\t%lld\n", got, seq);
        else /* a server from before the answer carried "seq" */
            printf("%s\t-\n", got);
        fflush(stdout);
    }
    yajl_tree_free(v);
    return 0;
}

/* The item payload for XMPP: JSON in a XEP-0335 container, XML as its
 * canonical serialization. Checked here, since a malformed element would
 * break the stream rather than be refused: 0, or CLI_REFUSED (as the REST
 * bridge refuses the same payload) after saying why. */
static int xmpp_payload(const char *ctype, const struct buf *in, struct buf *out)
{
    if (strcmp(ctype, "application/json") == 0) {
        if (!json_valid(in->data, in->len)) {
            fprintf(stderr, "herald pub: the payload is not valid JSON\n");
            return CLI_REFUSED;
        }
        buf_puts(out, "<json xmlns='urn:xmpp:json:0'>");
        buf_xml_text(out, in->data, in->len);
        buf_puts(out, "</json>");
    } else {
        struct xmlp_limits lim = {PUB_MAX_STDIN, 64};
        enum xmlp_error e = xmlp_parse_element(in->data, in->len, &lim, out);
        if (e != XMLP_OK) {
            fprintf(stderr,
                    "herald pub: the payload is not one well-formed namespaced XML "
                    "element: %s\n",
                    xmlp_strerror(e));
            return CLI_REFUSED;
        }
    }
    if (buf_nul(out) != 0) {
        fprintf(stderr, "herald pub: out of memory\n");
        return CLI_CONNECT;
    }
    return 0;
}

int cli_pub(int argc, char **argv)
{
    struct cli_rest c;
    struct buf payload, path, resp, item, xpayload;
    struct cli_xmpp *x = NULL;
    const char *node = NULL, *arg = NULL, *id = NULL, *ctype = NULL, *lease = NULL;
    unsigned long count = 1, lease_v = 0;
    double interval = 0;
    bool quiet = false;
    int ret = CLI_USAGE;
    cli_rest_init(&c, "herald pub");
    buf_init(&payload, PUB_MAX_STDIN);
    buf_init(&path, 0);
    buf_init(&resp, CLI_MAX_BODY);
    buf_init(&item, 0);
    buf_init(&xpayload, 6 * PUB_MAX_STDIN); /* escaping: at most 5 bytes a byte */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int o = cli_rest_option(&c, argc, argv, &i);
        if (o < 0)
            goto done;
        if (o > 0)
            continue;
        bool has_v = i + 1 < argc;
        if (strcmp(a, "--json") == 0) {
            ctype = "application/json";
        } else if (strcmp(a, "--xml") == 0) {
            ctype = "application/xml";
        } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            quiet = true;
        } else if (strcmp(a, "--id") == 0 && has_v) {
            id = argv[++i];
        } else if (strcmp(a, "--lease") == 0 && has_v) {
            lease = argv[++i];
            if (parse_uint(lease, &lease_v) != 0 || lease_v == 0) {
                fprintf(stderr, "herald pub: --lease takes a positive number of seconds\n");
                goto done;
            }
        } else if (strcmp(a, "--count") == 0 && has_v) {
            if (parse_uint(argv[++i], &count) != 0 || count == 0) {
                fprintf(stderr, "herald pub: --count takes a positive number\n");
                goto done;
            }
        } else if (strcmp(a, "--interval") == 0 && has_v) {
            char *end;
            interval = strtod(argv[++i], &end);
            if (*end != '\0' || end == argv[i] || !(interval >= 0 && interval <= 86400)) {
                fprintf(stderr, "herald pub: --interval takes seconds (0 to 86400)\n");
                goto done;
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "herald pub: unknown option %s (or it needs a value)\n", a);
            goto done;
        } else if (node == NULL) {
            node = a;
        } else if (arg == NULL) {
            arg = a;
        } else {
            fprintf(stderr, "herald pub: unexpected argument %s\n", a);
            goto done;
        }
    }
    if (node == NULL || arg == NULL) {
        fprintf(stderr, "herald pub: give NODE and PAYLOAD (or - to read it from stdin)\n"
                        "Run 'herald pub --help' for the options.\n");
        goto done;
    }
    if (strcmp(arg, "-") == 0) {
        if (read_stdin(&payload) != 0) {
            fprintf(stderr, "herald pub: cannot read the payload from stdin (at most %u bytes)\n",
                    PUB_MAX_STDIN);
            goto done;
        }
    } else {
        buf_puts(&payload, arg);
    }
    if (!buf_ok(&payload) || buf_nul(&payload) != 0) {
        fprintf(stderr, "herald pub: the payload is too large\n");
        goto done;
    }
    if (ctype == NULL) {
        const char *p = payload.data;
        while (*p && isspace((unsigned char)*p))
            p++;
        ctype = *p == '<' ? "application/xml" : "application/json";
    }
    bool xmpp = c.jid != NULL;
    if (xmpp) {
        if ((ret = xmpp_payload(ctype, &payload, &xpayload)) != 0)
            goto done;
        struct cli_xmpp_opts xo = {.prog = "herald pub",
                                   .jid = c.jid,
                                   .password = c.password ? c.password : getenv("HERALD_PASSWORD"),
                                   .host = c.host,
                                   .port = c.port,
                                   .service = c.service,
                                   .cacert = c.cacert,
                                   .insecure = c.insecure};
        if (xo.password == NULL) {
            fprintf(stderr, "herald pub: --jid needs --password or HERALD_PASSWORD\n");
            ret = CLI_USAGE;
            goto done;
        }
        if ((ret = cli_xmpp_connect(&x, &xo)) != 0)
            goto done;
    } else if ((ret = cli_rest_open(&c)) != 0) {
        goto done;
    }
    unsigned long long started = cli_now_ms(), last_progress = started;
    for (unsigned long k = 1; k <= count; k++) {
        /* The item id: --id, or --id-K with --count. */
        buf_reset(&item);
        if (id) {
            buf_puts(&item, id);
            if (count > 1)
                buf_printf(&item, "-%lu", k);
        }
        if (buf_nul(&item) != 0) {
            fprintf(stderr, "herald pub: out of memory\n");
            ret = CLI_CONNECT;
            goto done;
        }
        if (xmpp) {
            char got[1024];
            ret = cli_xmpp_publish(x, node, id ? item.data : NULL, xpayload.data, lease_v, got,
                                   sizeof(got));
            if (ret != 0)
                goto done;
            if (!quiet) {
                printf("%s\t-\n", got); /* XMPP answers carry no sequence number */
                fflush(stdout);
            }
        } else if ((ret = rest_publish(&c, node, id ? item.data : NULL, lease ? lease_v : 0, ctype,
                                       &payload, quiet, &path, &resp)) != 0) {
            goto done;
        }
        unsigned long long now = cli_now_ms();
        if (count > 1 && now - last_progress >= 1000) {
            fprintf(stderr, "herald pub: %lu of %lu published (%.0f/s)\n", k, count,
                    k * 1000.0 / (double)(now - started ? now - started : 1));
            last_progress = now;
        }
        if (interval > 0 && k < count) {
            struct timespec ts = {(time_t)interval,
                                  (long)((interval - (double)(time_t)interval) * 1e9)};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
                ;
        }
    }
    if (count > 1 && cli_now_ms() - started >= 1000)
        fprintf(stderr, "herald pub: %lu published\n", count);
    ret = CLI_OK;
done:
    cli_xmpp_close(x);
    cli_rest_close(&c);
    buf_free(&item);
    buf_free(&xpayload);
    buf_free(&payload);
    buf_free(&path);
    buf_free(&resp);
    return ret;
}
