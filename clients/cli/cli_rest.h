/* cli_rest.h - what the command-line clients (herald pub, sub, node) share:
 * the connection options (--url, --token, --cacert, --insecure), a small
 * blocking REST client on libcurl's easy interface, and the exit codes.
 *
 * One struct cli_rest per command run; it owns one CURL easy handle, reused
 * for every request so that `herald pub --count N` keeps one connection. */
#ifndef HERALD_CLI_REST_H
#define HERALD_CLI_REST_H
#include <stdbool.h>
#include <stdio.h>

#include <curl/curl.h>
#include <yajl/yajl_tree.h>

#include "buf.h"

/* Exit codes shared by pub, sub and node (docs/cli.md). */
enum {
    CLI_OK = 0,
    CLI_REFUSED = 1, /* the server answered with an error (problem+json) */
    CLI_USAGE = 2,
    CLI_CONNECT = 3, /* no answer: connection refused, DNS, TLS, timeout */
    CLI_TIMEOUT = 4, /* herald sub --timeout ran out before --count items */
};

#define CLI_DEFAULT_URL "http://127.0.0.1:5280"
/* Bound of an answer's body kept in memory (a node page or an item is far
 * smaller; more is a connection failure rather than unbounded growth). */
#define CLI_MAX_BODY (16u << 20)

struct cli_rest {
    const char *prog; /* "herald pub": the prefix of messages on stderr */
    const char *url;  /* base URL without a trailing '/' (owned by argv or url_buf) */
    char url_buf[1024];
    const char *token;  /* --token or $HERALD_TOKEN */
    const char *cacert; /* --cacert FILE */
    bool insecure;      /* --insecure: no certificate verification */
    /* XMPP transport (herald pub, herald sub): --jid selects it. */
    const char *jid, *password, *host, *service; /* --password or $HERALD_PASSWORD */
    int port;                                    /* --port; 0: 5222 */
    CURL *curl;                                  /* owned; cli_rest_close frees it */
    char errbuf[CURL_ERROR_SIZE];
};

/* Sets the defaults (prog is not copied). */
void cli_rest_init(struct cli_rest *c, const char *prog);
/* Consumes one connection option at argv[*i] (advancing *i past its value):
 * 1 when it was one, 0 when it is not a connection option, -1 after saying
 * on stderr why it is wrong (a missing value, a bad port). */
int cli_rest_option(struct cli_rest *c, int argc, char **argv, int *i);
/* The help text of those options, for each command's --help; with_xmpp:
 * the command has the XMPP transport (pub, sub). */
void cli_rest_usage(FILE *f, bool with_xmpp);
/* For commands without an XMPP transport (node): CLI_USAGE after
 * saying so when --jid or another XMPP option was given, else 0. */
int cli_rest_only(struct cli_rest *c);
/* Checks the options and makes the curl handle: 0, or CLI_USAGE after
 * saying why (no token, a URL that is not http(s)://). */
int cli_rest_open(struct cli_rest *c);
void cli_rest_close(struct cli_rest *c);

/* Resets the handle and sets what every request sets: url, headers, the
 * error buffer, no signals, a 10 s connect timeout, the TLS trust options.
 * Returns false when libcurl refuses an option (the request is not made). */
bool cli_rest_easy(struct cli_rest *c, const char *url, struct curl_slist *hdrs);
/* curl_easy_setopt that records a refusal in ok (checked before the
 * transfer). */
#define CLI_SETOPT(ok, e, opt, val) ((ok) = curl_easy_setopt((e), (opt), (val)) == CURLE_OK && (ok))
/* Appends s to b percent-encoded as one path segment ('/' included). */
void cli_rest_segment(struct buf *b, const char *s);

/* One request: method, path (starting with "/v1/..."), optional body with
 * its content type. On an answer, *status and body (owned by the caller,
 * initialised by it) hold it and 0 is returned; CLI_CONNECT after saying on
 * stderr why no answer came. */
int cli_rest_request(struct cli_rest *c, const char *method, const char *path, const char *ctype,
                     const char *body, size_t body_len, long *status, struct buf *resp);
/* Prints a non-2xx answer on stderr as "PROG: STATUS TITLE: DETAIL" (from
 * problem+json when it is one) and returns CLI_REFUSED. */
int cli_rest_refused(struct cli_rest *c, long status, const struct buf *resp);

/* Parses body as JSON (NULL after a message if it is not). */
yajl_val cli_json_parse(struct cli_rest *c, const struct buf *body);
/* The string / integer at key of object v, or NULL / -1. */
const char *cli_json_str(yajl_val v, const char *key);
long long cli_json_int(yajl_val v, const char *key);

/* Milliseconds of a monotonic clock. */
unsigned long long cli_now_ms(void);

#endif
